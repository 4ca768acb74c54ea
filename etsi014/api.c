#include "api.h"

#include "kmc.h"
#include "qkdn_err.h"
#include "qkdn_netconf.h"
#include "stock.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "/api/v1/keys/"
/* What a request may ask before it goes to the KM: the codec's limits,
 * which libqkdn and the KM's Ak decoder enforce too. Status reports what
 * the KM says it enforces (its status reply). */
#define MIN_BITS        8u
#define MAX_BITS        (QKDN_KEY_BYTES_MAX * 8u)
#define MAX_PER_REQUEST QKDN_KEYS_MAX
#define B64_MAX                                                                \
	sodium_base64_ENCODED_LEN(QKDN_KEY_BYTES_MAX,                          \
	                          sodium_base64_VARIANT_ORIGINAL)
/* The longest a stocked key waits in the gateway (docs/etsi014.md). */
#define STOCK_AGE_MAX_MS 60000u

/* ---- replies ---- */

static void
json_reply(struct https_rsp *rs, int status, cJSON *doc)
{
	rs->status = status;
	rs->body = doc != NULL ? cJSON_PrintUnformatted(doc) : NULL;
	rs->len = rs->body != NULL ? strlen(rs->body) : 0;
	cJSON_Delete(doc);
	if (rs->body == NULL)
		https_rsp_text(rs, 503, "{\"message\":\"out of memory\"}");
}

/* The spec's Error object: message, and details (an array of objects). */
static void
error_reply(struct https_rsp *rs, int status, const char *message,
            const char *reason, int code)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "message", message);
	if (reason != NULL) {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "reason", reason);
		if (code != 0)
			cJSON_AddStringToObject(d, "code", qkdn_errname(code));
		cJSON_AddItemToArray(cJSON_AddArrayToObject(doc, "details"), d);
	}
	json_reply(rs, status, doc);
}

/* What the spec's status codes say of a KM refusal: 401 the caller is not
 * the SAE the keys were made for (or not one of this KME), 400 a request
 * the KM will not serve as asked, 503 key material, a peer KM or the KM
 * itself unavailable. */
static int
http_status(int rv)
{
	switch (rv) {
	case QKDN_E_NOT_AUTHORISED:
		return 401;
	case QKDN_E_UNKNOWN_KEY_ID:
	case QKDN_E_ALREADY_SUPPLIED:
	case QKDN_E_BAD_REQUEST:
	case QKDN_E_RANGE:
	case QKDN_E_TOO_LARGE:
	case QKDN_E_UNSUPPORTED:
	case QKDN_E_MISSING_FIELD:
	case QKDN_E_WRONG_TYPE:
		return 400;
	default:
		return 503;
	}
}

static void
km_error(struct https_rsp *rs, int rv)
{
	const char *msg =
	    rv == QKDN_E_UNKNOWN_KEY_ID || rv == QKDN_E_ALREADY_SUPPLIED
	        ? "keys not found"
	        : qkdn_strerror(rv);
	error_reply(rs, http_status(rv), msg, qkdn_ak_last_error(), rv);
}

/* ---- request fields ---- */

/* A whole decimal in [lo, hi] from query text. */
static int
query_uint(const char *v, uint64_t lo, uint64_t hi, uint32_t *out)
{
	char *end;
	if (v == NULL || v[0] < '0' || v[0] > '9')
		return -1;
	errno = 0;
	unsigned long long u = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0' || u < lo || u > hi)
		return -1;
	*out = (uint32_t)u;
	return 0;
}

/* A JSON integer member in [lo, hi]; absent leaves *out. */
static int
json_uint(const cJSON *obj, const char *name, uint64_t lo, uint64_t hi,
          uint32_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (v == NULL)
		return 0;
	double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
	if (d != (double)(uint64_t)d || d < (double)lo || d > (double)hi)
		return -1;
	*out = (uint32_t)d;
	return 0;
}

struct key_req {
	uint32_t number, bits;
};

/* number and size against the limits status reports. */
static bool
check_key_req(const struct key_req *k, struct https_rsp *rs)
{
	char why[160];
	if (k->number < 1 || k->number > MAX_PER_REQUEST) {
		snprintf(why, sizeof(why),
		         "number must be 1..%u (max_key_per_request)",
		         MAX_PER_REQUEST);
		error_reply(rs, 400, "too many keys requested", why, 0);
		return false;
	}
	if (k->bits < MIN_BITS || k->bits > MAX_BITS || k->bits % 8 != 0) {
		snprintf(why, sizeof(why),
		         "size must be a multiple of 8 in %u..%u bits",
		         MIN_BITS, MAX_BITS);
		error_reply(rs, 400, "bad key size", why, 0);
		return false;
	}
	return true;
}

/* The spec's Key request: number, size, additional_slave_SAE_IDs (this
 * KME supports none: max_SAE_ID_count 0), extension_mandatory (none is
 * supported: refused, naming them) and extension_optional (ignored). */
static bool
parse_key_req_json(const char *body, size_t len, struct key_req *k,
                   struct https_rsp *rs)
{
	cJSON *doc =
	    len > 0 ? cJSON_ParseWithLength(body, len) : cJSON_CreateObject();
	bool ok = false;
	if (!cJSON_IsObject(doc)) {
		error_reply(rs, 400, "bad request format",
		            "the body is not a JSON object", 0);
		goto out;
	}
	if (json_uint(doc, "number", 0, UINT32_MAX, &k->number) != 0 ||
	    json_uint(doc, "size", 0, UINT32_MAX, &k->bits) != 0) {
		error_reply(rs, 400, "bad request format",
		            "number and size must be whole numbers", 0);
		goto out;
	}
	const cJSON *extra =
	    cJSON_GetObjectItemCaseSensitive(doc, "additional_slave_SAE_IDs");
	if (extra != NULL &&
	    (!cJSON_IsArray(extra) || cJSON_GetArraySize(extra) > 0)) {
		error_reply(rs, 400, "additional_slave_SAE_IDs not supported",
		            "max_SAE_ID_count is 0", 0);
		goto out;
	}
	const cJSON *mand =
	    cJSON_GetObjectItemCaseSensitive(doc, "extension_mandatory");
	if (mand != NULL && !cJSON_IsArray(mand)) {
		error_reply(rs, 400, "bad request format",
		            "extension_mandatory must be an array", 0);
		goto out;
	}
	if (cJSON_GetArraySize(mand) > 0) {
		/* the spec: refuse, and name each unsupported extension */
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(
		    e, "message",
		    "not all extension_mandatory parameters are supported");
		cJSON *det = cJSON_AddArrayToObject(e, "details");
		const cJSON *x, *m;
		cJSON_ArrayForEach(x, mand) cJSON_ArrayForEach(m, x)
		{
			cJSON *d = cJSON_CreateObject();
			cJSON_AddStringToObject(
			    d, "extension_mandatory_unsupported", m->string);
			cJSON_AddItemToArray(det, d);
		}
		json_reply(rs, 400, e);
		goto out;
	}
	ok = true;
out:
	cJSON_Delete(doc);
	return ok;
}

/* ---- endpoints ---- */

struct call {
	struct api *api;
	const struct https_req *rq;
	const char *sae_id;    /* the URL's SAE */
	int sae;               /* its index */
	const char *self_node; /* this gateway's node ID */
};

static cJSON *
container(const struct qkdn_ak_key *keys, uint32_t n)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(doc, "keys");
	char id[QKDN_KEY_ID_TEXT_LEN], b64[B64_MAX];
	for (uint32_t i = 0; i < n; i++) {
		cJSON *k = cJSON_CreateObject();
		qkdn_key_id_format(&keys[i].id, id);
		sodium_bin2base64(b64, sizeof(b64), keys[i].bytes, keys[i].len,
		                  sodium_base64_VARIANT_ORIGINAL);
		cJSON_AddStringToObject(k, "key_ID", id);
		cJSON_AddStringToObject(k, "key", b64);
		cJSON_AddItemToArray(arr, k);
	}
	sodium_memzero(b64, sizeof(b64));
	return doc;
}

/* Keys of the KM's reply to the caller: the container, then wiped. */
static void
keys_reply(struct https_rsp *rs, struct qkdn_ak_key *keys, uint32_t n)
{
	json_reply(rs, 200, container(keys, n));
	qkdn_ak_keys_wipe(keys, n);
	free(keys);
}

/* A stocked key must still be at the slave's KM when dec_keys asks for
 * it: a KM forgets unfetched keys after its key_ttl. A quarter of the
 * shorter key_ttl of the two nodes leaves the application three quarters
 * of it, and at most a minute keeps the time a key sits outside the KM's
 * store short. */
static uint32_t
stock_max_age_ms(const struct call *c)
{
	const struct qkdn_net *net = c->api->net;
	uint64_t ttl = net->nodes[c->api->node].key_ttl_s;
	uint64_t peer = net->nodes[net->saes[c->sae].node].key_ttl_s;
	uint64_t ms = (ttl < peer ? ttl : peer) * 1000 / 4;
	return ms < STOCK_AGE_MAX_MS ? (uint32_t)ms : STOCK_AGE_MAX_MS;
}

static void
enc_keys(struct call *c, struct https_rsp *rs)
{
	const struct https_req *rq = c->rq;
	struct key_req k = {.number = 1, .bits = c->api->key_bits};
	if (strcmp(rq->method, "GET") == 0) {
		struct evkeyvalq q;
		const char *v;
		int bad = 0;
		if (evhttp_parse_query_str(rq->query != NULL ? rq->query : "",
		                           &q) != 0) {
			error_reply(rs, 400, "bad request format",
			            "bad query string", 0);
			return;
		}
		if ((v = evhttp_find_header(&q, "number")) != NULL)
			bad |= query_uint(v, 0, UINT32_MAX, &k.number);
		if ((v = evhttp_find_header(&q, "size")) != NULL)
			bad |= query_uint(v, 0, UINT32_MAX, &k.bits);
		evhttp_clear_headers(&q);
		if (bad) {
			error_reply(rs, 400, "bad request format",
			            "number and size must be whole numbers", 0);
			return;
		}
	} else if (!parse_key_req_json(rq->body, rq->body_len, &k, rs)) {
		return;
	}
	if (!check_key_req(&k, rs))
		return;
	struct qkdn_ak_key *keys = calloc(k.number, sizeof(*keys));
	if (keys == NULL) {
		error_reply(rs, 503, "out of memory", NULL, 0);
		return;
	}
	/* keys the KM supplied ahead of the request, if it holds enough;
	 * else the whole request goes to the KM as ever */
	if (stock_take(c->api->stock, rq->sae, c->sae_id, k.bits, k.number,
	               keys)) {
		keys_reply(rs, keys, k.number);
		return;
	}
	int rv = kmc_get_keys(c->api->kmc, rq->sae, c->sae_id, k.bits, k.number,
	                      keys);
	if (rv != 0) {
		free(keys);
		km_error(rs, rv);
		return;
	}
	/* the KM served this caller toward this slave: stock from now on */
	stock_start(c->api->stock, rq->sae, c->sae_id, k.bits,
	            stock_max_age_ms(c));
	keys_reply(rs, keys, k.number);
}

/* The spec's Key IDs: key_IDs (an array of {key_ID, key_ID_extension}),
 * key_IDs_extension (ignored), or ?key_ID= for one. */
static int
parse_ids(const struct https_req *rq, qkdn_key_id **ids, uint32_t *n,
          struct https_rsp *rs)
{
	if (strcmp(rq->method, "GET") == 0) {
		struct evkeyvalq q;
		if (evhttp_parse_query_str(rq->query != NULL ? rq->query : "",
		                           &q) != 0) {
			error_reply(rs, 400, "bad request format",
			            "bad query string", 0);
			return -1;
		}
		const char *v = evhttp_find_header(&q, "key_ID");
		int rv = -1;
		*n = 1;
		if ((*ids = calloc(1, sizeof(**ids))) == NULL)
			error_reply(rs, 503, "out of memory", NULL, 0);
		else if (v == NULL || qkdn_key_id_parse(v, *ids) != 0)
			error_reply(rs, 400, "bad request format",
			            "key_ID must be one UUID", 0);
		else
			rv = 0;
		evhttp_clear_headers(&q);
		return rv;
	}
	cJSON *doc = cJSON_ParseWithLength(rq->body, rq->body_len);
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "key_IDs"), *e;
	int rv = -1, count = cJSON_GetArraySize(arr);
	if (!cJSON_IsArray(arr) || count < 1) {
		error_reply(rs, 400, "bad request format",
		            "key_IDs must be a non-empty array", 0);
		goto out;
	}
	if (count > MAX_PER_REQUEST) {
		error_reply(rs, 400, "too many keys requested",
		            "more key_IDs than max_key_per_request", 0);
		goto out;
	}
	if ((*ids = calloc((size_t)count, sizeof(**ids))) == NULL) {
		error_reply(rs, 503, "out of memory", NULL, 0);
		goto out;
	}
	*n = 0;
	cJSON_ArrayForEach(e, arr)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "key_ID");
		if (!cJSON_IsString(id) ||
		    qkdn_key_id_parse(id->valuestring, &(*ids)[*n]) != 0) {
			error_reply(rs, 400, "bad request format",
			            "each key_ID must be a UUID", 0);
			goto out;
		}
		(*n)++;
	}
	rv = 0;
out:
	cJSON_Delete(doc);
	return rv;
}

static void
dec_keys(struct call *c, struct https_rsp *rs)
{
	qkdn_key_id *ids = NULL;
	uint32_t n = 0;
	struct qkdn_ak_key *keys = NULL;
	if (parse_ids(c->rq, &ids, &n, rs) != 0)
		goto out;
	if ((keys = calloc(n, sizeof(*keys))) == NULL) {
		error_reply(rs, 503, "out of memory", NULL, 0);
		goto out;
	}
	/* the URL's master_SAE_ID must be the SAE that asked for the keys:
	 * the KM checks it with the key's source (401 otherwise) */
	int rv = kmc_get_keys_by_id(c->api->kmc, c->rq->sae, c->sae_id, ids, n,
	                            keys);
	if (rv != 0) {
		km_error(rs, rv);
		goto out;
	}
	keys_reply(rs, keys, n);
	keys = NULL;
out:
	free(keys);
	free(ids);
}

/* This node's link toward the slave's node in the KM's status, or NULL
 * (a relayed destination: its hops are other KMs'). */
static const struct qkdn_ak_link_status *
link_toward(const struct call *c, const struct qkdn_ak_status *st)
{
	const struct qkdn_net *net = c->api->net;
	int l =
	    qkdn_net_link_between(net, c->api->node, net->saes[c->sae].node);
	for (size_t i = 0; l >= 0 && i < st->n_links; i++)
		if (strcmp(st->links[i].link, net->links[l].id) == 0)
			return &st->links[i];
	return NULL;
}

static uint64_t
min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* The spec's Status, for the caller (master) and the URL's slave SAE. Its
 * limits are those the KM reports enforcing (a KM too old to report them:
 * its codec's, which this gateway shares). */
static void
status(struct call *c, struct https_rsp *rs)
{
	const struct qkdn_net *net = c->api->net;
	struct qkdn_ak_status st = {0};
	int rv = kmc_status(c->api->kmc, &st);
	if (rv != 0) {
		km_error(rs, rv);
		return;
	}
	const struct qkdn_ak_limits *km = &st.limits;
	uint64_t kb = c->api->key_bits / 8;
	uint32_t min_bits = km->min_bits != 0 ? km->min_bits : MIN_BITS;
	uint32_t max_bits = km->max_bits != 0 ? km->max_bits : MAX_BITS;
	uint64_t per_req = km->max_keys != 0 ? km->max_keys : MAX_PER_REQUEST;
	/* keys of key_size one request may take: the KM caps both the
	 * count and the bytes */
	if (km->max_request_bytes != 0)
		per_req = min_u64(per_req, km->max_request_bytes / kb);
	/* the link's out direction: what is left, and the pool's cap */
	const struct qkdn_ak_link_status *l = link_toward(c, &st);
	uint64_t max = l != NULL ? l->out_max_bytes / kb : 0;
	uint64_t stored = l != NULL ? min_u64(l->out_bytes / kb, max) : 0;
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "source_KME_ID", c->self_node);
	cJSON_AddStringToObject(doc, "target_KME_ID",
	                        net->nodes[net->saes[c->sae].node].id);
	cJSON_AddStringToObject(doc, "master_SAE_ID", c->rq->sae);
	cJSON_AddStringToObject(doc, "slave_SAE_ID", c->sae_id);
	cJSON_AddNumberToObject(doc, "key_size", c->api->key_bits);
	cJSON_AddNumberToObject(doc, "stored_key_count", (double)stored);
	cJSON_AddNumberToObject(doc, "max_key_count", (double)max);
	cJSON_AddNumberToObject(doc, "max_key_per_request", (double)per_req);
	cJSON_AddNumberToObject(doc, "max_key_size", max_bits);
	cJSON_AddNumberToObject(doc, "min_key_size", min_bits);
	cJSON_AddNumberToObject(doc, "max_SAE_ID_count", 0);
	qkdn_ak_status_free(&st);
	json_reply(rs, 200, doc);
}

static const struct route {
	const char *name;
	bool post;
	void (*fn)(struct call *c, struct https_rsp *rs);
} routes[] = {
    {"status", false, status},
    {"enc_keys", true, enc_keys},
    {"dec_keys", true, dec_keys},
};

void
api_handle(void *arg, const struct https_req *rq, struct https_rsp *rs)
{
	struct api *api = arg;
	const struct qkdn_net *net = api->net;
	char sae[QKDN_NAME_MAX];
	const char *p = rq->path, *slash;
	if (strncmp(p, PREFIX, strlen(PREFIX)) != 0 ||
	    (slash = strchr(p + strlen(PREFIX), '/')) == NULL ||
	    slash == p + strlen(PREFIX) ||
	    (size_t)(slash - p - strlen(PREFIX)) >= sizeof(sae)) {
		error_reply(rs, 404, "not found",
		            "paths are /api/v1/keys/{SAE_ID}/status, enc_keys "
		            "or dec_keys",
		            0);
		return;
	}
	size_t n = (size_t)(slash - p - strlen(PREFIX));
	memcpy(sae, p + strlen(PREFIX), n);
	sae[n] = '\0';
	const struct route *r = NULL;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(slash + 1, routes[i].name) == 0)
			r = &routes[i];
	if (r == NULL) {
		error_reply(rs, 404, "not found", "no such endpoint", 0);
		return;
	}
	if (strcmp(rq->method, "POST") == 0 && !r->post) {
		error_reply(rs, 405, "method not allowed", "use GET", 0);
		return;
	}
	/* the caller is an SAE of this KME, the URL's SAE one of the
	 * network's */
	int me = qkdn_net_sae_index(net, rq->sae);
	if (me < 0 || net->saes[me].node != api->node) {
		error_reply(rs, 401, "unauthorized",
		            "the client certificate names no SAE of this KME",
		            0);
		return;
	}
	int other = qkdn_net_sae_index(net, sae);
	if (other < 0) {
		error_reply(rs, 400, "bad request format", "unknown SAE ID", 0);
		return;
	}
	struct call c = {.api = api,
	                 .rq = rq,
	                 .sae_id = sae,
	                 .sae = other,
	                 .self_node = net->nodes[api->node].id};
	r->fn(&c, rs);
}

static void
wiping_free(void *p)
{
	if (p == NULL)
		return;
	sodium_memzero(p, malloc_usable_size(p));
	free(p);
}

void
api_json_wipe_hooks(void)
{
	cJSON_Hooks h = {.malloc_fn = malloc, .free_fn = wiping_free};
	cJSON_InitHooks(&h);
}
