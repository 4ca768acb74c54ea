/* Output of the CLI: error names, error reports and JSON documents. */
#include "cli.h"

#include "qkdn_err.h"

#include <malloc.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cJSON frees through this: JSON output may hold keys, and whatever cJSON
 * frees (strings, print buffers it outgrew) is wiped first. With hooks
 * other than malloc/free, cJSON never uses realloc. */
static void
wiping_free(void *p)
{
	if (p != NULL) {
		sodium_memzero(p, malloc_usable_size(p));
		free(p);
	}
}

void
cli_json_init(void)
{
	cJSON_Hooks hooks = {.malloc_fn = malloc, .free_fn = wiping_free};
	cJSON_InitHooks(&hooks);
}

int
cli_emit(const struct cli_args *a, cJSON *doc)
{
	(void)a;
	char *text = doc != NULL ? cJSON_PrintUnformatted(doc) : NULL;
	cJSON_Delete(doc);
	if (text == NULL) {
		fprintf(stderr, "qkdn: %s: out of memory printing JSON\n",
		        qkdn_errname(QKDN_E_NOMEM));
		return CLI_FAILED;
	}
	puts(text);
	cJSON_free(text);
	return CLI_OK;
}

/* doc (created if NULL) with "error": {"code", "name", "reason"}; the code
 * is positive, as on the wire. */
static void
emit_error(const struct cli_args *a, cJSON *doc, int code, const char *reason)
{
	if (doc == NULL)
		doc = cJSON_CreateObject();
	cJSON *e = cJSON_AddObjectToObject(doc, "error");
	if (e != NULL) {
		cJSON_AddNumberToObject(e, "code", code < 0 ? -code : code);
		cJSON_AddStringToObject(e, "name", qkdn_errname(code));
		cJSON_AddStringToObject(e, "reason", reason);
	}
	cli_emit(a, doc);
}

int
cli_fail_reason(const struct cli_args *a, cJSON *doc, int code,
                const char *reason)
{
	fprintf(stderr, "qkdn: %s: %s\n", qkdn_errname(code), reason);
	if (!a->json) {
		cJSON_Delete(doc);
		return CLI_FAILED;
	}
	emit_error(a, doc, code, reason);
	return CLI_FAILED;
}

int
cli_fail(const struct cli_args *a, cJSON *doc, int code, const char *fmt, ...)
{
	char detail[1024], reason[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	snprintf(reason, sizeof(reason), "%s: %s", qkdn_strerror(code), detail);
	return cli_fail_reason(a, doc, code, reason);
}

int
cli_fail_config(const struct cli_args *a, const char *reason)
{
	fprintf(stderr, "qkdn: %s\n", reason);
	if (a->json)
		emit_error(a, NULL, QKDN_E_CONFIG, reason);
	return CLI_USAGE;
}
