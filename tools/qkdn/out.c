/* Output of the CLI: error names, error reports and JSON documents. */
#include "cli.h"

#include "qkdn_err.h"

#include <malloc.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stable names for scripts, indexed by -code. */
static const char *const err_names[] = {
    [0] = "ok",
    [-QKDN_E_BAD_REQUEST] = "bad_request",
    [-QKDN_E_INSUFFICIENT_KEY] = "insufficient_key_material",
    [-QKDN_E_UNKNOWN_KEY_ID] = "unknown_key_id",
    [-QKDN_E_NOT_AUTHORISED] = "not_authorised",
    [-QKDN_E_NO_ROUTE] = "no_route",
    [-QKDN_E_TIMEOUT] = "timeout",
    [-QKDN_E_UNREACHABLE] = "unreachable",
    [-QKDN_E_INTERNAL] = "internal_error",
    [-QKDN_E_STORE] = "key_store_error",
    [-QKDN_E_NOMEM] = "out_of_memory",
    [-QKDN_E_VERSION] = "unsupported_version",
    [-QKDN_E_UNKNOWN_TYPE] = "unknown_message_type",
    [-QKDN_E_TRUNCATED] = "truncated_message",
    [-QKDN_E_WRONG_TYPE] = "wrong_field_type",
    [-QKDN_E_RANGE] = "out_of_range",
    [-QKDN_E_TOO_LARGE] = "too_large",
    [-QKDN_E_MISSING_FIELD] = "missing_field",
    [-QKDN_E_CONFIG] = "bad_configuration",
    [-QKDN_E_ALREADY_SUPPLIED] = "already_supplied",
    [-QKDN_E_AUTH_FAILED] = "authentication_failed",
    [-QKDN_E_REPLAY] = "replayed_key_material",
    [-QKDN_E_SHUTDOWN] = "shutting_down",
    [-QKDN_E_BLOCK_MISSING] = "block_missing",
    [-QKDN_E_UNSUPPORTED] = "unsupported",
    [-QKDN_E_IO] = "io_error",
};
/* A code appended to qkdn_err.h needs a name here. */
_Static_assert(sizeof(err_names) / sizeof(err_names[0]) == -QKDN_E_LAST_,
               "every qkdn error code needs a CLI name");

const char *
cli_err_name(int code)
{
	if (code > 0 || code <= QKDN_E_LAST_)
		return "unknown_error";
	return err_names[-code];
}

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
		        cli_err_name(QKDN_E_NOMEM));
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
		cJSON_AddStringToObject(e, "name", cli_err_name(code));
		cJSON_AddStringToObject(e, "reason", reason);
	}
	cli_emit(a, doc);
}

int
cli_fail_reason(const struct cli_args *a, cJSON *doc, int code,
                const char *reason)
{
	fprintf(stderr, "qkdn: %s: %s\n", cli_err_name(code), reason);
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
