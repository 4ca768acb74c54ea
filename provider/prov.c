/* Provider entry point: configuration, algorithm tables, errors and the
 * shared Ak handle. */
#include "qprov.h"

#include "qkdn_err.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QPROV_VERSION "0.1"

static const OSSL_ITEM reason_strings[] = {
#define KM_REASON(num, sym, name, text) {num, text},
    QKDN_ERRORS(KM_REASON)
#undef KM_REASON
        {QPROV_R_NO_KM, "no KM configured"},
    {QPROV_R_NO_SAE, "no SAE configured"},
    {QPROV_R_BAD_KEY_SHARE, "bad key share"},
    {QPROV_R_BAD_CIPHERTEXT, "bad ciphertext"},
    {QPROV_R_BAD_CONFIG, "bad configuration"},
    {QPROV_R_X25519, "X25519 failure"},
    {QPROV_R_BUFFER_TOO_SMALL, "output buffer too small"},
    {QPROV_R_WRONG_GROUP, "wrong group"},
    {QPROV_R_NO_PRIVATE_KEY, "no private key"},
    {0, NULL}};

const OSSL_ITEM *
qprov_reason_strings(void)
{
	return reason_strings;
}

void
qprov_raise(const struct qprov_ctx *ctx, int reason, const char *file, int line,
            const char *func, const char *fmt, ...)
{
	va_list ap;
	if (ctx == NULL || ctx->new_error == NULL ||
	    ctx->set_error_debug == NULL || ctx->vset_error == NULL)
		return;
	ctx->new_error(ctx->handle);
	ctx->set_error_debug(ctx->handle, file, line, func);
	va_start(ap, fmt);
	ctx->vset_error(ctx->handle, (uint32_t)reason, fmt, ap);
	va_end(ap);
}

void
qprov_raise_ak(const struct qprov_ctx *ctx, int rv, const char *file, int line,
               const char *func)
{
	/* every qkdn code is a reason of its own, with the same text */
	int reason = rv < 0 && rv > QKDN_E_LAST_ ? -rv : -QKDN_E_INTERNAL;
	/* the thread's Ak reason names the cause as the KM gave it */
	qprov_raise(ctx, reason, file, line, func, "KM %s: %s", ctx->km,
	            qkdn_ak_last_error());
}

int
qprov_check_config(const struct qprov_ctx *ctx)
{
	if (ctx->config_error[0] != '\0') {
		QPROV_RAISE(ctx, QPROV_R_BAD_CONFIG, "%s", ctx->config_error);
		return 0;
	}
	if (ctx->km[0] == '\0') {
		QPROV_RAISE(ctx, QPROV_R_NO_KM,
		            "set km in the provider's section or QKDN_KM");
		return 0;
	}
	if (ctx->sae[0] == '\0') {
		QPROV_RAISE(ctx, QPROV_R_NO_SAE,
		            "set sae in the provider's section or QKDN_SAE");
		return 0;
	}
	return 1;
}

struct qkdn_ak *
qprov_ak(struct qprov_ctx *ctx)
{
	if (!qprov_check_config(ctx))
		return NULL;
	return ctx->ak; /* opened at load: no lock for fork() to catch */
}

/* Configuration: the provider's section of openssl.cnf through the core,
 * then environment overrides. A bad value does not stop loading (that
 * would break every program using the system's openssl.cnf): it is
 * remembered and reported by every use of the groups. */

static void
bad_setting(struct qprov_ctx *ctx, const char *key, const char *value,
            const char *why)
{
	if (ctx->config_error[0] == '\0')
		snprintf(ctx->config_error, sizeof(ctx->config_error),
		         "%s = \"%.40s\": %s", key, value, why);
}

/* "0x..." hex or decimal, within [lo, hi]. */
static int
parse_uint(const char *s, unsigned long lo, unsigned long hi,
           unsigned long *out)
{
	int base = 10;
	char *end;
	while (isspace((unsigned char)*s))
		s++;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!isxdigit((unsigned char)*s))
		return 0;
	errno = 0;
	unsigned long v = strtoul(s, &end, base);
	while (isspace((unsigned char)*end))
		end++;
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return 0;
	*out = v;
	return 1;
}

enum setting_type { S_URL, S_NAME, S_PATH, S_UINT };

/* The provider's settings: key in openssl.cnf, environment override,
 * type, range, and where the value goes. */
static const struct setting {
	const char *key, *env;
	enum setting_type type;
	unsigned long lo, hi;
	size_t off; /* of the char[] or unsigned field in struct qprov_ctx */
	const char *why;
} settings[] = {
    {"km", "QKDN_KM", S_URL, 0, 0, offsetof(struct qprov_ctx, km),
     "expected ipc://PATH, tcp://HOST:PORT or tls+tcp://HOST:PORT"},
    {"sae", "QKDN_SAE", S_NAME, 0, 0, offsetof(struct qprov_ctx, sae),
     "expected an SAE ID of 1..63 bytes"},
    {"ca", "QKDN_CA", S_PATH, 0, 0, offsetof(struct qprov_ctx, ca),
     "expected a file name"},
    {"cert", "QKDN_CERT", S_PATH, 0, 0, offsetof(struct qprov_ctx, cert),
     "expected a file name"},
    {"key", "QKDN_KEY", S_PATH, 0, 0, offsetof(struct qprov_ctx, key),
     "expected a file name"},
    {"km_name", "QKDN_KM_NAME", S_NAME, 0, 0,
     offsetof(struct qprov_ctx, km_name), "expected a node ID of 1..63 bytes"},
    {"timeout_ms", "QKDN_TIMEOUT_MS", S_UINT, 1, 600000,
     offsetof(struct qprov_ctx, timeout_ms),
     "expected milliseconds in 1..600000"},
    {"batch", "QKDN_BATCH", S_UINT, 1, QPROV_BATCH_MAX,
     offsetof(struct qprov_ctx, batch), "expected a key count in 1..256"},
    {"qkd_group_id", NULL, S_UINT, 1, 0xFFFF,
     offsetof(struct qprov_ctx, group_qkd),
     "expected a TLS group code point in 0x0001..0xFFFF"},
    {"x25519_qkd_group_id", NULL, S_UINT, 1, 0xFFFF,
     offsetof(struct qprov_ctx, group_hyb),
     "expected a TLS group code point in 0x0001..0xFFFF"},
};

/* The scheme's length if value starts with one the Ak client speaks. */
static size_t
km_scheme(const char *value)
{
	static const char *const schemes[] = {"ipc://", "tcp://", "tls+tcp://"};
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncmp(value, schemes[i], strlen(schemes[i])) == 0)
			return strlen(schemes[i]);
	return 0;
}

static size_t
field_size(const struct setting *s)
{
	switch (s->type) {
	case S_URL:
		return sizeof(((struct qprov_ctx *)0)->km);
	case S_PATH:
		return QPROV_PATH_MAX;
	default:
		return QKDN_AK_NAME_MAX;
	}
}

static void
apply_setting(struct qprov_ctx *ctx, const struct setting *s, const char *value)
{
	char *field = (char *)ctx + s->off;
	size_t size = field_size(s), scheme;
	unsigned long v;
	switch (s->type) {
	case S_URL:
		scheme = km_scheme(value);
		if (scheme == 0 || strlen(value) <= scheme ||
		    strlen(value) >= size)
			bad_setting(ctx, s->key, value, s->why);
		else
			snprintf(field, size, "%s", value);
		return;
	case S_NAME:
	case S_PATH:
		if (value[0] == '\0' || strlen(value) >= size)
			bad_setting(ctx, s->key, value, s->why);
		else
			snprintf(field, size, "%s", value);
		return;
	case S_UINT:
		if (parse_uint(value, s->lo, s->hi, &v))
			*(unsigned *)(void *)field = (unsigned)v;
		else
			bad_setting(ctx, s->key, value, s->why);
		return;
	}
}

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static void
read_config(struct qprov_ctx *ctx, OSSL_FUNC_core_get_params_fn *get_params)
{
	const char *values[N_SETTINGS] = {0};
	OSSL_PARAM params[N_SETTINGS + 1];

	ctx->timeout_ms = QPROV_TIMEOUT_MS_DEFAULT;
	ctx->batch = QPROV_BATCH_DEFAULT;
	ctx->group_qkd = QPROV_GROUP_QKD_DEFAULT;
	ctx->group_hyb = QPROV_GROUP_HYB_DEFAULT;
	for (size_t i = 0; i < N_SETTINGS; i++)
		params[i] = OSSL_PARAM_construct_utf8_ptr(
		    settings[i].key, (char **)&values[i], 0);
	params[N_SETTINGS] = OSSL_PARAM_construct_end();
	if (get_params != NULL && !get_params(ctx->handle, params))
		bad_setting(ctx, "provider section", "",
		            "the core did not give the settings");
	for (size_t i = 0; i < N_SETTINGS; i++) {
		/* secure_getenv: a set-uid program takes no KM from its
		 * caller's environment */
		const char *env = settings[i].env != NULL
		                      ? secure_getenv(settings[i].env)
		                      : NULL;
		if (env != NULL && env[0] != '\0')
			values[i] = env;
		if (values[i] != NULL && values[i][0] != '\0') /* "" unset */
			apply_setting(ctx, &settings[i], values[i]);
	}
	if (ctx->group_qkd == ctx->group_hyb)
		bad_setting(ctx, "x25519_qkd_group_id", "",
		            "must differ from qkd_group_id");
}

/* The Ak handle, with the TLS settings (the Ak client ignores them for
 * ipc:// and tcp://). */
static void
open_ak(struct qprov_ctx *ctx)
{
	struct qkdn_ak_opts o = {
	    .timeout_ms = (int)ctx->timeout_ms,
	    .ca = ctx->ca[0] != '\0' ? ctx->ca : NULL,
	    .cert = ctx->cert[0] != '\0' ? ctx->cert : NULL,
	    .key = ctx->key[0] != '\0' ? ctx->key : NULL,
	    .km_name = ctx->km_name[0] != '\0' ? ctx->km_name : NULL,
	};
	if (qkdn_ak_open_opts(&ctx->ak, ctx->km, ctx->sae, &o) != 0)
		snprintf(ctx->config_error, sizeof(ctx->config_error),
		         "km = \"%.60s\": %.240s", ctx->km,
		         qkdn_ak_last_error());
}

/* Provider dispatch */

static const OSSL_ALGORITHM keymgmt_algs[] = {
    {QPROV_ALG_QKD, QPROV_PROPS, qprov_kmgmt_qkd_functions,
     "QKD key from a Q.4160 key manager (TLS 1.3 KEM group)"},
    {QPROV_ALG_HYB, QPROV_PROPS, qprov_kmgmt_hyb_functions,
     "X25519 and a QKD key (TLS 1.3 KEM group)"},
    {NULL, NULL, NULL, NULL}};

static const OSSL_ALGORITHM kem_algs[] = {
    {QPROV_ALG_QKD, QPROV_PROPS, qprov_kem_qkd_functions,
     "QKD key from a Q.4160 key manager"},
    {QPROV_ALG_HYB, QPROV_PROPS, qprov_kem_hyb_functions,
     "X25519 and a QKD key"},
    {NULL, NULL, NULL, NULL}};

static const OSSL_ALGORITHM *
prov_query(void *provctx, int operation_id, int *no_cache)
{
	(void)provctx;
	*no_cache = 0;
	switch (operation_id) {
	case OSSL_OP_KEYMGMT:
		return keymgmt_algs;
	case OSSL_OP_KEM:
		return kem_algs;
	default:
		return NULL;
	}
}

static const OSSL_PARAM prov_param_types[] = {
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, 0),
    OSSL_PARAM_END};

static const OSSL_PARAM *
prov_gettable_params(void *provctx)
{
	(void)provctx;
	return prov_param_types;
}

static int
prov_get_params(void *provctx, OSSL_PARAM params[])
{
	OSSL_PARAM *p;
	(void)provctx;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
	if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, "qkdn QKD provider"))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION);
	if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, QPROV_VERSION))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO);
	if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, OPENSSL_FULL_VERSION_STR))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
	if (p != NULL && !OSSL_PARAM_set_int(p, 1))
		return 0;
	return 1;
}

static const OSSL_ITEM *
prov_reason_strings(void *provctx)
{
	(void)provctx;
	return reason_strings;
}

static void
ctx_free(struct qprov_ctx *ctx)
{
	if (ctx == NULL)
		return;
	qkdn_ak_close(ctx->ak);
	qprov_cache_free(ctx->cache);
	OSSL_LIB_CTX_free(ctx->libctx);
	free(ctx);
}

static void
prov_teardown(void *provctx)
{
	ctx_free(provctx);
}

static const OSSL_DISPATCH prov_functions[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))prov_teardown},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))prov_gettable_params},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))prov_get_params},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))prov_query},
    {OSSL_FUNC_PROVIDER_GET_CAPABILITIES,
     (void (*)(void))qprov_get_capabilities},
    {OSSL_FUNC_PROVIDER_GET_REASON_STRINGS,
     (void (*)(void))prov_reason_strings},
    {0, NULL}};

__attribute__((visibility("default"))) int
OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                   const OSSL_DISPATCH **out, void **provctx)
{
	OSSL_FUNC_core_get_params_fn *get_params = NULL;
	struct qprov_ctx *ctx;

	if (sodium_init() < 0)
		return 0;
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
		return 0;
	ctx->handle = handle;
	for (const OSSL_DISPATCH *f = in; f->function_id != 0; f++) {
		switch (f->function_id) {
		case OSSL_FUNC_CORE_GET_PARAMS:
			get_params = OSSL_FUNC_core_get_params(f);
			break;
		case OSSL_FUNC_CORE_NEW_ERROR:
			ctx->new_error = OSSL_FUNC_core_new_error(f);
			break;
		case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
			ctx->set_error_debug =
			    OSSL_FUNC_core_set_error_debug(f);
			break;
		case OSSL_FUNC_CORE_VSET_ERROR:
			ctx->vset_error = OSSL_FUNC_core_vset_error(f);
			break;
		default:
			break;
		}
	}
	read_config(ctx, get_params);
	/* opening the Ak handle contacts nobody (connections are made per
	 * call) but reads the TLS files; doing it here leaves no lazily
	 * taken lock for a fork() */
	if (ctx->config_error[0] == '\0' && ctx->km[0] != '\0' &&
	    ctx->sae[0] != '\0')
		open_ak(ctx);
	/* X25519 comes from the application's providers (default) through
	 * a child context, fetched when first used */
	if ((ctx->libctx = OSSL_LIB_CTX_new_child(handle, in)) == NULL ||
	    qprov_cache_new(&ctx->cache, ctx->batch) != 0) {
		ctx_free(ctx);
		return 0;
	}
	*out = prov_functions;
	*provctx = ctx;
	return 1;
}
