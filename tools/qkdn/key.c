/* key get: key request (--to) or key request with ID (--id, --ids-from).
 * Printing keys is this command's purpose; every buffer that held one is
 * wiped (stdout's buffer included, and cJSON's through out.c's hooks). */
#include "cli.h"

#include "qkdn_ak.h"
#include "qkdn_err.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BITS 256
#define HEX_MAX      (2 * QKDN_AK_KEY_BYTES_MAX + 1)

static char stdout_buf[BUFSIZ];

struct id_list {
	qkdn_key_id *v;
	size_t n, cap;
};

static int
add_id(struct id_list *l, const qkdn_key_id *id)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		qkdn_key_id *v = realloc(l->v, cap * sizeof(*v));
		if (v == NULL)
			return QKDN_E_NOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *id;
	return 0;
}

/* One UUID per line; the first field counts, so the output of a key
 * request can be fed back. Blank lines and '#' comments are skipped. */
static int
read_ids_file(const struct cli_cmd *cmd, const char *path, struct id_list *l)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	int rv = 0;
	if (f == NULL)
		return cli_usage(cmd, "--ids-from: cannot open %s: %s", path,
		                 strerror(errno));
	while (rv == 0 && getline(&line, &cap, f) >= 0) {
		char *s = line, *e;
		qkdn_key_id id;
		lineno++;
		while (isspace((unsigned char)*s))
			s++;
		if (*s == '\0' || *s == '#')
			continue;
		for (e = s; *e != '\0' && !isspace((unsigned char)*e); e++)
			;
		*e = '\0';
		if (qkdn_key_id_parse(s, &id) != 0)
			rv = cli_usage(cmd, "%s:%zu: '%s' is not a key ID",
			               path, lineno, s);
		else if (add_id(l, &id) != 0)
			rv = cli_usage(cmd, "out of memory reading %s", path);
	}
	if (rv == 0 && ferror(f))
		rv = cli_usage(cmd, "--ids-from: cannot read %s", path);
	if (line != NULL)
		sodium_memzero(line, cap); /* may hold key bytes in hex */
	free(line);
	if (f != stdin)
		fclose(f);
	return rv;
}

static int
collect_ids(const struct cli_cmd *cmd, const struct cli_args *a,
            struct id_list *l)
{
	for (size_t i = 0; i < a->ids.n; i++) {
		qkdn_key_id id;
		if (qkdn_key_id_parse(a->ids.v[i], &id) != 0)
			return cli_usage(cmd, "--id: '%s' is not a key ID",
			                 a->ids.v[i]);
		if (add_id(l, &id) != 0)
			return cli_usage(cmd, "out of memory");
	}
	if (a->ids_from != NULL) {
		int rv = read_ids_file(cmd, a->ids_from, l);
		if (rv != 0)
			return rv;
	}
	if (l->n == 0)
		return cli_usage(cmd, "no key IDs in %s", a->ids_from);
	return CLI_OK;
}

static int
check_mode(const struct cli_cmd *cmd, const struct cli_args *a)
{
	bool by_id = (a->seen & (OPT_ID | OPT_IDS_FROM)) != 0;
	if (a->sae == NULL)
		return cli_usage(cmd, "--sae SAE is required");
	if (by_id && (a->seen & (OPT_TO | OPT_BITS | OPT_COUNT)))
		return cli_usage(cmd, "--id/--ids-from fetch existing keys; "
		                      "--to, --bits and --count ask for new "
		                      "ones: give one kind");
	if (!by_id && a->to == NULL)
		return cli_usage(cmd, "give --to SAE (new keys) or --id UUID "
		                      "(keys made for you)");
	return CLI_OK;
}

/* Print or collect n keys; 0 or QKDN_E_NOMEM. */
static int
put_keys(const struct cli_args *a, cJSON *arr, const struct qkdn_ak_key *k,
         size_t n)
{
	char id[QKDN_KEY_ID_TEXT_LEN], hex[HEX_MAX];
	int rv = 0;
	for (size_t i = 0; i < n && rv == 0; i++) {
		qkdn_key_id_format(&k[i].id, id);
		sodium_bin2hex(hex, sizeof(hex), k[i].bytes, k[i].len);
		if (!a->json) {
			printf("%s %s\n", id, hex);
			continue;
		}
		cJSON *o = cJSON_CreateObject();
		if (o == NULL || cJSON_AddStringToObject(o, "id", id) == NULL ||
		    cJSON_AddStringToObject(o, "key", hex) == NULL ||
		    !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			rv = QKDN_E_NOMEM;
		}
	}
	sodium_memzero(hex, sizeof(hex));
	return rv;
}

/* Ask in batches of at most QKDN_AK_KEYS_MAX; keys of batches already
 * supplied are output even if a later one fails, since the KM will not
 * supply them again. *from_km tells whether a failure is the KM's (its
 * reason in qkdn_ak_last_error()) or ours (out of memory). */
static int
fetch(const struct cli_args *a, struct qkdn_ak *ak, const struct id_list *ids,
      size_t total, cJSON *arr, size_t *done, bool *from_km)
{
	size_t batch = total < QKDN_AK_KEYS_MAX ? total : QKDN_AK_KEYS_MAX;
	struct qkdn_ak_key *keys = sodium_malloc(batch * sizeof(*keys));
	int rv = 0;
	*from_km = false;
	if (keys == NULL)
		return QKDN_E_NOMEM;
	while (*done < total && rv == 0) {
		uint32_t m =
		    (uint32_t)(total - *done < batch ? total - *done : batch);
		if (ids != NULL)
			rv =
			    qkdn_ak_get_keys_by_id(ak, ids->v + *done, m, keys);
		else
			rv = qkdn_ak_get_keys(ak, a->to,
			                      a->bits ? a->bits : DEFAULT_BITS,
			                      m, keys);
		if (rv != 0) {
			*from_km = true;
			break;
		}
		rv = put_keys(a, arr, keys, m);
		qkdn_ak_keys_wipe(keys, m);
		*done += m;
	}
	sodium_free(keys);
	return rv;
}

int
cli_key_get(const struct cli_cmd *cmd, struct cli_args *a)
{
	struct id_list ids = {0};
	struct qkdn_ak *ak = NULL;
	cJSON *doc = NULL, *arr = NULL;
	struct cli_km km;
	const char *url = km.url;
	char reason[QKDN_REASON_MAX + QKDN_NET_URL_MAX + 64] = "";
	size_t total, done = 0;
	bool from_km = true;
	int rv;

	/* before any output: stdout's buffer is ours to wipe */
	setvbuf(stdout, stdout_buf, _IOFBF, sizeof(stdout_buf));
	if ((rv = check_mode(cmd, a)) != 0 ||
	    (rv = cli_km_find(cmd, a, &km)) != 0)
		goto out;
	if ((a->to == NULL && (rv = collect_ids(cmd, a, &ids)) != 0) ||
	    (rv = cli_ak_open(a, &km, a->sae, &ak)) != 0)
		goto out;
	total = a->to != NULL ? (a->count ? a->count : 1) : ids.n;
	if (a->json) {
		doc = cJSON_CreateObject();
		arr = cJSON_AddArrayToObject(doc, "keys");
	}
	if (sodium_init() < 0 || (a->json && arr == NULL)) {
		rv = QKDN_E_NOMEM;
		from_km = false;
	} else {
		rv = fetch(a, ak, a->to != NULL ? NULL : &ids, total, arr,
		           &done, &from_km);
	}
	if (rv == 0) {
		rv = a->json ? cli_emit(a, doc) : CLI_OK;
	} else {
		if (from_km &&
		    (rv == QKDN_E_TIMEOUT || rv == QKDN_E_UNREACHABLE) &&
		    cli_conn_error(url, reason, sizeof(reason)))
			rv = QKDN_E_UNREACHABLE;
		else if (from_km)
			snprintf(reason, sizeof(reason), "%s (%s)",
			         qkdn_ak_last_error(), url);
		else
			snprintf(reason, sizeof(reason), "%s: holding keys",
			         qkdn_strerror(rv));
		if (done > 0)
			snprintf(reason + strlen(reason),
			         sizeof(reason) - strlen(reason),
			         " (after %zu of %zu keys)", done, total);
		rv = cli_fail_reason(a, doc, rv, reason);
	}
	doc = NULL; /* taken by cli_emit / cli_fail_reason */
out:
	cJSON_Delete(doc);
	qkdn_ak_close(ak);
	free(ids.v);
	fflush(stdout);
	sodium_memzero(stdout_buf, sizeof(stdout_buf));
	return rv;
}
