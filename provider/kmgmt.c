/* Key management for qkd and x25519_qkd. A client's key is its SAE ID (and
 * an X25519 key pair): generating it talks to no KM, so an abandoned
 * handshake or a HelloRetryRequest wastes no QKD key. TLS moves the public
 * part as OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY:
 *
 *   qkd        0x01 len SAE-ID           (2 + len bytes, len 1..63)
 *   x25519_qkd X25519 public (32) || qkd share */
#include "qprov.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <string.h>
#include <strings.h>

static OSSL_FUNC_keymgmt_new_fn new_qkd, new_hyb;
static OSSL_FUNC_keymgmt_free_fn key_free;
static OSSL_FUNC_keymgmt_has_fn key_has;
static OSSL_FUNC_keymgmt_match_fn key_match;
static OSSL_FUNC_keymgmt_dup_fn key_dup;
static OSSL_FUNC_keymgmt_get_params_fn key_get_params;
static OSSL_FUNC_keymgmt_gettable_params_fn key_gettable_params;
static OSSL_FUNC_keymgmt_set_params_fn key_set_params;
static OSSL_FUNC_keymgmt_settable_params_fn key_settable_params;
static OSSL_FUNC_keymgmt_gen_init_fn gen_init_qkd, gen_init_hyb;
static OSSL_FUNC_keymgmt_gen_set_params_fn gen_set_params;
static OSSL_FUNC_keymgmt_gen_settable_params_fn gen_settable_params;
static OSSL_FUNC_keymgmt_gen_fn gen;
static OSSL_FUNC_keymgmt_gen_cleanup_fn gen_cleanup;
static OSSL_FUNC_keymgmt_import_fn key_import;
static OSSL_FUNC_keymgmt_import_types_fn key_io_types;
static OSSL_FUNC_keymgmt_export_fn key_export;

size_t
qprov_share_len(const struct qprov_key *key)
{
	return (key->hybrid ? QPROV_X_LEN : 0) + 2 + key->sae_len;
}

size_t
qprov_ct_len(int hybrid)
{
	return (hybrid ? QPROV_X_LEN : 0) + QPROV_ID_LEN;
}

size_t
qprov_secret_len(int hybrid)
{
	return (hybrid ? QPROV_X_LEN : 0) + QPROV_KEY_LEN;
}

static const char *
alg_name(int hybrid)
{
	return hybrid ? QPROV_ALG_HYB : QPROV_ALG_QKD;
}

static struct qprov_key *
key_new(struct qprov_ctx *ctx, int hybrid)
{
	struct qprov_key *key = OPENSSL_zalloc(sizeof(*key));
	if (key == NULL) {
		QPROV_RAISE(ctx, QPROV_R_NO_MEMORY, "allocating a %s key",
		            alg_name(hybrid));
		return NULL;
	}
	key->ctx = ctx;
	key->hybrid = hybrid;
	return key;
}

static void *
new_qkd(void *provctx)
{
	return key_new(provctx, 0);
}

static void *
new_hyb(void *provctx)
{
	return key_new(provctx, 1);
}

static void
drop_private(struct qprov_key *key)
{
	EVP_PKEY_free(key->xpriv);
	key->xpriv = NULL;
	key->has_priv = 0;
}

static void
key_free(void *vkey)
{
	struct qprov_key *key = vkey;
	if (key == NULL)
		return;
	drop_private(key);
	OPENSSL_clear_free(key, sizeof(*key));
}

static int
key_has(const void *vkey, int selection)
{
	const struct qprov_key *key = vkey;
	if (key == NULL)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0 && !key->has_pub)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 &&
	    !key->has_priv)
		return 0;
	return 1; /* no domain parameters */
}

static int
key_match(const void *va, const void *vb, int selection)
{
	const struct qprov_key *a = va, *b = vb;
	if (a->hybrid != b->hybrid)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) == 0)
		return 1;
	/* the public part identifies the key; both must have one */
	if (!a->has_pub || !b->has_pub || a->sae_len != b->sae_len ||
	    CRYPTO_memcmp(a->sae, b->sae, a->sae_len) != 0)
		return 0;
	return !a->hybrid || CRYPTO_memcmp(a->xpub, b->xpub, QPROV_X_LEN) == 0;
}

static void *
key_dup(const void *vsrc, int selection)
{
	const struct qprov_key *src = vsrc;
	struct qprov_key *key = key_new(src->ctx, src->hybrid);
	if (key == NULL)
		return NULL;
	if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0 && src->has_pub) {
		key->has_pub = 1;
		key->sae_len = src->sae_len;
		memcpy(key->sae, src->sae, sizeof(key->sae));
		memcpy(key->xpub, src->xpub, sizeof(key->xpub));
	}
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 &&
	    src->has_priv && key->has_pub) {
		if (src->xpriv != NULL && !EVP_PKEY_up_ref(src->xpriv)) {
			key_free(key);
			return NULL;
		}
		key->xpriv = src->xpriv;
		key->has_priv = 1;
	}
	return key;
}

static void
encode_share(const struct qprov_key *key, uint8_t *out)
{
	if (key->hybrid) {
		memcpy(out, key->xpub, QPROV_X_LEN);
		out += QPROV_X_LEN;
	}
	out[0] = QPROV_SHARE_TAG;
	out[1] = key->sae_len;
	memcpy(out + 2, key->sae, key->sae_len);
}

/* Set the public part from a key share; the old private part goes. */
static int
decode_share(struct qprov_key *key, const uint8_t *in, size_t len)
{
	size_t off = key->hybrid ? QPROV_X_LEN : 0;
	if (len < off + 3 || in[off] != QPROV_SHARE_TAG || in[off + 1] == 0 ||
	    in[off + 1] >= QKDN_AK_NAME_MAX || len != off + 2 + in[off + 1] ||
	    memchr(in + off + 2, 0, in[off + 1]) != NULL) {
		QPROV_RAISE(key->ctx, QPROV_R_BAD_KEY_SHARE,
		            "%s key share of %zu bytes is not %s0x01, length "
		            "(1..63), SAE ID",
		            alg_name(key->hybrid), len,
		            key->hybrid ? "X25519 public key (32), " : "");
		return 0;
	}
	drop_private(key);
	memcpy(key->xpub, in, off);
	key->sae_len = in[off + 1];
	memset(key->sae, 0, sizeof(key->sae));
	memcpy(key->sae, in + off + 2, key->sae_len);
	key->has_pub = 1;
	return 1;
}

static int
set_encoded(struct qprov_key *key, const OSSL_PARAM *p)
{
	const void *data;
	size_t len;
	if (!OSSL_PARAM_get_octet_string_ptr(p, &data, &len)) {
		QPROV_RAISE(key->ctx, QPROV_R_BAD_KEY_SHARE,
		            "encoded public key is not an octet string");
		return 0;
	}
	return decode_share(key, data, len);
}

static int
key_get_params(void *vkey, OSSL_PARAM params[])
{
	struct qprov_key *key = vkey;
	OSSL_PARAM *p;
	p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS);
	if (p != NULL && !OSSL_PARAM_set_int(p, 8 * QPROV_KEY_LEN))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS);
	if (p != NULL && !OSSL_PARAM_set_int(p, key->hybrid ? 128 : 256))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE);
	if (p != NULL && !OSSL_PARAM_set_int(p, (int)qprov_ct_len(key->hybrid)))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY);
	if (p != NULL && key->has_pub) {
		uint8_t share[QPROV_X_LEN + QPROV_SHARE_MAX];
		encode_share(key, share);
		if (!OSSL_PARAM_set_octet_string(p, share,
		                                 qprov_share_len(key)))
			return 0;
	}
	return 1;
}

static const OSSL_PARAM gettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
    OSSL_PARAM_END};

static const OSSL_PARAM *
key_gettable_params(void *provctx)
{
	(void)provctx;
	return gettable;
}

static int
key_set_params(void *vkey, const OSSL_PARAM params[])
{
	const OSSL_PARAM *p =
	    OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY);
	return p == NULL || set_encoded(vkey, p);
}

static const OSSL_PARAM public_key_types[] = {
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
    OSSL_PARAM_END};

static const OSSL_PARAM *
key_settable_params(void *provctx)
{
	(void)provctx;
	return public_key_types;
}

/* Import and export carry the public part only: the private part is this
 * process being the SAE, which cannot move elsewhere. */
static int
key_import(void *vkey, int selection, const OSSL_PARAM params[])
{
	struct qprov_key *key = vkey;
	const OSSL_PARAM *p;
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) == 0)
		return 1;
	p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY);
	return p != NULL && set_encoded(key, p);
}

static int
key_export(void *vkey, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
	struct qprov_key *key = vkey;
	uint8_t share[QPROV_X_LEN + QPROV_SHARE_MAX];
	OSSL_PARAM params[2];
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 ||
	    (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) == 0 || !key->has_pub)
		return 0;
	encode_share(key, share);
	params[0] = OSSL_PARAM_construct_octet_string(
	    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, share, qprov_share_len(key));
	params[1] = OSSL_PARAM_construct_end();
	return cb(params, cbarg);
}

static const OSSL_PARAM *
key_io_types(int selection)
{
	return (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0
	           ? public_key_types
	           : NULL;
}

/* Generation. TLS asks for parameters only on the server (an empty key
 * that then receives the client's share) and for a key pair on the
 * client. Neither calls the KM. */

struct gen_ctx {
	struct qprov_ctx *ctx;
	int hybrid;
	int selection;
};

static void *
gen_init(struct qprov_ctx *ctx, int hybrid, int selection,
         const OSSL_PARAM params[])
{
	struct gen_ctx *g = OPENSSL_zalloc(sizeof(*g));
	if (g == NULL) {
		QPROV_RAISE(ctx, QPROV_R_NO_MEMORY,
		            "allocating a key generator");
		return NULL;
	}
	g->ctx = ctx;
	g->hybrid = hybrid;
	g->selection = selection;
	if (!gen_set_params(g, params)) {
		OPENSSL_free(g);
		return NULL;
	}
	return g;
}

static void *
gen_init_qkd(void *provctx, int selection, const OSSL_PARAM params[])
{
	return gen_init(provctx, 0, selection, params);
}

static void *
gen_init_hyb(void *provctx, int selection, const OSSL_PARAM params[])
{
	return gen_init(provctx, 1, selection, params);
}

static int
gen_set_params(void *vg, const OSSL_PARAM params[])
{
	struct gen_ctx *g = vg;
	const char *name = NULL;
	const OSSL_PARAM *p =
	    OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_GROUP_NAME);
	if (p == NULL)
		return 1;
	if (!OSSL_PARAM_get_utf8_string_ptr(p, &name) ||
	    strcasecmp(name, alg_name(g->hybrid)) != 0) {
		QPROV_RAISE(g->ctx, QPROV_R_WRONG_GROUP,
		            "group %s asked of the %s key generator",
		            name != NULL ? name : "(not a string)",
		            alg_name(g->hybrid));
		return 0;
	}
	return 1;
}

static const OSSL_PARAM gen_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_END};

static const OSSL_PARAM *
gen_settable_params(void *vg, void *provctx)
{
	(void)vg;
	(void)provctx;
	return gen_settable;
}

static void *
gen(void *vg, OSSL_CALLBACK *cb, void *cbarg)
{
	struct gen_ctx *g = vg;
	struct qprov_ctx *ctx = g->ctx;
	struct qprov_key *key;
	(void)cb;
	(void)cbarg;
	if ((g->selection & OSSL_KEYMGMT_SELECT_KEYPAIR) == 0)
		return key_new(ctx, g->hybrid);
	/* a client without a usable KM would make the server spend a key
	 * it can never fetch: fail before the share leaves */
	if (!qprov_check_config(ctx) || (key = key_new(ctx, g->hybrid)) == NULL)
		return NULL;
	key->sae_len = (uint8_t)strlen(ctx->sae);
	memcpy(key->sae, ctx->sae, key->sae_len);
	if (g->hybrid &&
	    (key->xpriv = qprov_x25519_keygen(ctx, key->xpub)) == NULL) {
		key_free(key);
		return NULL;
	}
	key->has_pub = key->has_priv = 1;
	return key;
}

static void
gen_cleanup(void *vg)
{
	OPENSSL_free(vg);
}

/* The two tables differ only in the constructors, which fix the type. */
#define KMGMT_TABLE(name, new_fn, gen_init_fn)                                 \
	const OSSL_DISPATCH name[] = {                                         \
	    {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))new_fn},                   \
	    {OSSL_FUNC_KEYMGMT_GEN_INIT, (void (*)(void))gen_init_fn},         \
	    {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))key_free},                \
	    {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))key_has},                  \
	    {OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))key_match},              \
	    {OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))key_dup},                  \
	    {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))key_get_params},    \
	    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS,                                \
	     (void (*)(void))key_gettable_params},                             \
	    {OSSL_FUNC_KEYMGMT_SET_PARAMS, (void (*)(void))key_set_params},    \
	    {OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS,                                \
	     (void (*)(void))key_settable_params},                             \
	    {OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS,                                 \
	     (void (*)(void))gen_set_params},                                  \
	    {OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS,                            \
	     (void (*)(void))gen_settable_params},                             \
	    {OSSL_FUNC_KEYMGMT_GEN, (void (*)(void))gen},                      \
	    {OSSL_FUNC_KEYMGMT_GEN_CLEANUP, (void (*)(void))gen_cleanup},      \
	    {OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))key_import},            \
	    {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))key_io_types},    \
	    {OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))key_export},            \
	    {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))key_io_types},    \
	    {0, NULL}}

KMGMT_TABLE(qprov_kmgmt_qkd_functions, new_qkd, gen_init_qkd);
KMGMT_TABLE(qprov_kmgmt_hyb_functions, new_hyb, gen_init_hyb);
