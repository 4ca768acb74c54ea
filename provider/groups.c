/* TLS-GROUP capability: how libssl learns of the qkd and x25519_qkd
 * groups, their code points (configurable) and that they are KEMs. */
#include "qprov.h"

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/prov_ssl.h>
#include <string.h>
#include <strings.h>

struct group {
	const char *name; /* TLS group name, keymgmt and KEM algorithm */
	unsigned secbits;
	int hybrid;
};

static const struct group groups[] = {
    {QPROV_ALG_QKD, 256, 0},
    {QPROV_ALG_HYB, 128, 1},
};

static int
tls_group(const struct qprov_ctx *ctx, const struct group *g, OSSL_CALLBACK *cb,
          void *arg)
{
	unsigned id = g->hybrid ? ctx->group_hyb : ctx->group_qkd;
	unsigned secbits = g->secbits, is_kem = 1;
	size_t len = strlen(g->name);
	int min_tls = TLS1_3_VERSION, max_tls = 0, min_dtls = -1, max_dtls = -1;
	OSSL_PARAM p[] = {
	    OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_NAME,
	                           (char *)g->name, len),
	    OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_NAME_INTERNAL,
	                           (char *)g->name, len),
	    OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_ALG,
	                           (char *)g->name, len),
	    OSSL_PARAM_uint(OSSL_CAPABILITY_TLS_GROUP_ID, &id),
	    OSSL_PARAM_uint(OSSL_CAPABILITY_TLS_GROUP_SECURITY_BITS, &secbits),
	    OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MIN_TLS, &min_tls),
	    OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MAX_TLS, &max_tls),
	    OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MIN_DTLS, &min_dtls),
	    OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MAX_DTLS, &max_dtls),
	    OSSL_PARAM_uint(OSSL_CAPABILITY_TLS_GROUP_IS_KEM, &is_kem),
	    OSSL_PARAM_END};
	return cb(p, arg);
}

int
qprov_get_capabilities(void *provctx, const char *capability, OSSL_CALLBACK *cb,
                       void *arg)
{
	const struct qprov_ctx *ctx = provctx;
	if (strcasecmp(capability, "TLS-GROUP") != 0)
		return 0;
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (!tls_group(ctx, &groups[i], cb, arg))
			return 0;
	return 1;
}
