#include "kme_http.h"

#include "qkdn_err.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <malloc.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_BODY_MAX 16384
/* a key container: per key its ID, base64 key and JSON around them */
#define KEY_JSON_BYTES 96

struct km_kme_http {
	CURL *curl;
	char base[QKDN_REASON_MAX];
	const atomic_bool *stop;
	char err[CURL_ERROR_SIZE];
};

/* A response body, in sodium_malloc'd memory of a fixed capacity: it
 * carries keys in base64. */
struct body {
	char *p;
	size_t len, cap;
};

/* cJSON copies key text into its nodes: wipe them when freed. */
static void
json_free_wiped(void *p)
{
	if (p != NULL)
		sodium_memzero(p, malloc_usable_size(p));
	free(p);
}

int
km_kme_http_global_init(void)
{
	cJSON_Hooks hooks = {.malloc_fn = malloc, .free_fn = json_free_wiped};
	cJSON_InitHooks(&hooks);
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK
	           ? 0
	           : QKDN_E_INTERNAL;
}

void
km_kme_http_global_fini(void)
{
	curl_global_cleanup();
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb;
	if (n > b->cap - b->len)
		return 0; /* larger than any honest answer: abort */
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return n;
}

static int
on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
            curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	const atomic_bool *stop = arg;
	return atomic_load(stop) ? 1 : 0;
}

int
km_kme_http_new(struct km_kme_http **out, const char *base, const char *ca,
                const char *cert, const char *key, uint32_t timeout_ms,
                const atomic_bool *stop)
{
	struct km_kme_http *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return QKDN_E_NOMEM;
	snprintf(h->base, sizeof(h->base), "%s", base);
	h->stop = stop;
	if ((h->curl = curl_easy_init()) == NULL) {
		free(h);
		return QKDN_E_NOMEM;
	}
	CURL *c = h->curl;
	/* HTTPS only, the peer verified against the KMEs' CA, our client
	 * certificate shown; no signals (threads), bounded waits */
	if (curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CAINFO, ca) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSLCERT, cert) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSLKEY, key) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms) !=
	        CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms) !=
	        CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress) !=
	        CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)stop) !=
	        CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->err) != CURLE_OK) {
		km_kme_http_free(h);
		return QKDN_E_INTERNAL;
	}
	*out = h;
	return 0;
}

void
km_kme_http_free(struct km_kme_http *h)
{
	if (h == NULL)
		return;
	curl_easy_cleanup(h->curl);
	free(h);
}

/* The KME's error message, if the body is an ETSI 014 Error object. */
static void
error_message(const struct body *b, char *out, size_t outlen)
{
	out[0] = '\0';
	cJSON *j = cJSON_ParseWithLength(b->p, b->len);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
	if (cJSON_IsString(m))
		snprintf(out, outlen, ": %.120s", m->valuestring);
	cJSON_Delete(j);
}

/* One request: GET when post is NULL, else POST of that JSON. 0 with the
 * body of a 200 answer in b. */
static int
call(struct km_kme_http *h, const char *what, const char *sae, const char *post,
     struct body *b, char *why, size_t whylen)
{
	char url[QKDN_REASON_MAX + 128];
	struct curl_slist *hdr = NULL;
	long status = 0;
	int rv = 0;
	snprintf(url, sizeof(url), "%s/api/v1/keys/%s/%s", h->base, sae, what);
	h->err[0] = '\0';
	b->len = 0;
	if (post != NULL &&
	    (hdr = curl_slist_append(NULL, "Content-Type: application/json")) ==
	        NULL)
		return QKDN_E_NOMEM;
	curl_easy_setopt(h->curl, CURLOPT_URL, url);
	curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdr);
	if (post != NULL)
		curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, post);
	else
		curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);
	CURLcode cc = curl_easy_perform(h->curl);
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdr);
	if (cc != CURLE_OK) {
		snprintf(why, whylen, "KME %.120s: %s: %.100s", h->base, what,
		         h->err[0] != '\0' ? h->err : curl_easy_strerror(cc));
		return cc == CURLE_OPERATION_TIMEDOUT    ? QKDN_E_TIMEOUT
		       : cc == CURLE_ABORTED_BY_CALLBACK ? QKDN_E_SHUTDOWN
		                                         : QKDN_E_UNREACHABLE;
	}
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		char msg[160];
		error_message(b, msg, sizeof(msg));
		snprintf(why, whylen, "KME %.120s: %s: HTTP %ld%s", h->base,
		         what, status, msg);
		rv = status == 401   ? QKDN_E_NOT_AUTHORISED
		     : status == 400 ? QKDN_E_BAD_REQUEST
		     : status == 503 ? QKDN_E_INSUFFICIENT_KEY
		                     : QKDN_E_UNREACHABLE;
	}
	return rv;
}

static int
body_alloc(struct body *b, size_t cap)
{
	b->len = 0;
	b->cap = cap;
	b->p = sodium_malloc(cap);
	return b->p != NULL ? 0 : QKDN_E_NOMEM;
}

static void
body_free(struct body *b)
{
	if (b->p != NULL)
		sodium_free(b->p); /* wipes */
	b->p = NULL;
}

static uint64_t
json_uint(const cJSON *o, const char *key, int *present)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	bool ok =
	    cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15;
	if (present != NULL)
		*present = ok;
	return ok ? (uint64_t)v->valuedouble : 0;
}

int
km_kme_http_status(struct km_kme_http *h, const char *peer_sae,
                   struct km_kme_status *st, char *why, size_t whylen)
{
	struct body b;
	int rv = body_alloc(&b, STATUS_BODY_MAX);
	if (rv != 0)
		return rv;
	memset(st, 0, sizeof(*st));
	if ((rv = call(h, "status", peer_sae, NULL, &b, why, whylen)) == 0) {
		cJSON *j = cJSON_ParseWithLength(b.p, b.len);
		if (!cJSON_IsObject(j)) {
			snprintf(why, whylen, "KME %.120s: status: not JSON",
			         h->base);
			rv = QKDN_E_BAD_REQUEST;
		} else {
			st->key_size = (uint32_t)json_uint(j, "key_size", NULL);
			st->max_key_per_request =
			    (uint32_t)json_uint(j, "max_key_per_request", NULL);
			st->stored_key_count =
			    json_uint(j, "stored_key_count", &st->has_stored);
		}
		cJSON_Delete(j);
	}
	body_free(&b);
	return rv;
}

/* Read a Key container of n keys of klen bytes. With want (dec_keys), key
 * i goes where want names its ID; else in the order sent, IDs to ids. */
static int
parse_keys(const struct km_kme_http *h, const char *what, const struct body *b,
           uint32_t n, size_t klen, const qkdn_uuid *want, qkdn_uuid *ids,
           uint8_t *out, char *why, size_t whylen)
{
	cJSON *j = cJSON_ParseWithLength(b->p, b->len);
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(j, "keys");
	uint8_t *seen = calloc(n ? n : 1, 1);
	const cJSON *k;
	uint32_t i = 0;
	int rv = 0;
	if (seen == NULL) {
		cJSON_Delete(j);
		return QKDN_E_NOMEM;
	}
	if (!cJSON_IsArray(keys) || (uint32_t)cJSON_GetArraySize(keys) != n) {
		snprintf(why, whylen,
		         "KME %.120s: %s: not a container of %u keys", h->base,
		         what, n);
		rv = QKDN_E_BAD_REQUEST;
	}
	cJSON_ArrayForEach(k, keys)
	{
		if (rv != 0)
			break;
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(k, "key_ID");
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(k, "key");
		qkdn_uuid u;
		size_t got = 0;
		uint32_t at = i;
		if (!cJSON_IsString(id) || !cJSON_IsString(key) ||
		    qkdn_uuid_parse(id->valuestring, &u) != 0) {
			snprintf(
			    why, whylen,
			    "KME %.120s: %s: key %u has no UUID key_ID or key",
			    h->base, what, i);
			rv = QKDN_E_BAD_REQUEST;
			break;
		}
		if (want != NULL) {
			for (at = 0; at < n; at++)
				if (memcmp(&want[at], &u, sizeof(u)) == 0)
					break;
			if (at == n || seen[at]) {
				snprintf(why, whylen,
				         "KME %.120s: %s: key %.40s was not "
				         "asked for",
				         h->base, what, id->valuestring);
				rv = QKDN_E_BAD_REQUEST;
				break;
			}
		} else {
			ids[at] = u;
		}
		seen[at] = 1;
		if (sodium_base642bin(
		        out + (size_t)at * klen, klen, key->valuestring,
		        strlen(key->valuestring), NULL, &got, NULL,
		        sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    got != klen) {
			snprintf(why, whylen,
			         "KME %.120s: %s: key %.40s is not %zu bytes "
			         "of base64",
			         h->base, what, id->valuestring, klen);
			rv = QKDN_E_BAD_REQUEST;
		}
		i++;
	}
	free(seen);
	cJSON_Delete(j); /* wipes the key text (json_free_wiped) */
	return rv;
}

int
km_kme_http_enc(struct km_kme_http *h, const char *slave_sae, uint32_t n,
                uint32_t bits, qkdn_uuid *ids, uint8_t *out, char *why,
                size_t whylen)
{
	char post[64];
	struct body b;
	size_t klen = bits / 8;
	int rv =
	    body_alloc(&b, 4096 + (size_t)n * (klen * 4 / 3 + KEY_JSON_BYTES));
	if (rv != 0)
		return rv;
	snprintf(post, sizeof(post), "{\"number\":%u,\"size\":%u}", n, bits);
	if ((rv = call(h, "enc_keys", slave_sae, post, &b, why, whylen)) == 0)
		rv = parse_keys(h, "enc_keys", &b, n, klen, NULL, ids, out, why,
		                whylen);
	body_free(&b);
	if (rv != 0)
		sodium_memzero(out, (size_t)n * klen);
	return rv;
}

int
km_kme_http_dec(struct km_kme_http *h, const char *master_sae, uint32_t n,
                uint32_t bits, const qkdn_uuid *ids, uint8_t *out, char *why,
                size_t whylen)
{
	size_t klen = bits / 8, cap = 32 + (size_t)n * 64;
	char *post = malloc(cap);
	struct body b = {0};
	int rv = QKDN_E_NOMEM;
	if (post == NULL)
		return rv;
	size_t at = (size_t)snprintf(post, cap, "{\"key_IDs\":[");
	for (uint32_t i = 0; i < n; i++) {
		char text[37];
		qkdn_uuid_format(&ids[i], text);
		at += (size_t)snprintf(post + at, cap - at,
		                       "%s{\"key_ID\":\"%s\"}",
		                       i > 0 ? "," : "", text);
	}
	snprintf(post + at, cap - at, "]}");
	if ((rv = body_alloc(&b, 4096 + (size_t)n * (klen * 4 / 3 +
	                                             KEY_JSON_BYTES))) == 0 &&
	    (rv = call(h, "dec_keys", master_sae, post, &b, why, whylen)) == 0)
		rv = parse_keys(h, "dec_keys", &b, n, klen, ids, NULL, out, why,
		                whylen);
	body_free(&b);
	free(post);
	if (rv != 0)
		sodium_memzero(out, (size_t)n * klen);
	return rv;
}
