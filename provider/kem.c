/* KEM for qkd and x25519_qkd.
 *
 *   encapsulate (server, peer key = client share): ask this node's KM for a
 *     256-bit key shared with the client's SAE; ciphertext = key ID
 *   decapsulate (client): fetch the key by ID from this node's KM, which
 *     refuses unknown IDs and IDs made for another SAE
 *
 * Hybrid: ciphertext = X25519 ephemeral public (32) || key ID (16); secret =
 * X25519 secret (32) || QKD key (32). The X25519 half is done first, so a
 * bad share or ciphertext costs no QKD key. Size queries (out == NULL)
 * never call the KM. */
#include "qprov.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static OSSL_FUNC_kem_newctx_fn newctx_qkd, newctx_hyb;
static OSSL_FUNC_kem_freectx_fn kem_freectx;
static OSSL_FUNC_kem_dupctx_fn kem_dupctx;
static OSSL_FUNC_kem_encapsulate_init_fn kem_encapsulate_init;
static OSSL_FUNC_kem_encapsulate_fn kem_encapsulate;
static OSSL_FUNC_kem_decapsulate_init_fn kem_decapsulate_init;
static OSSL_FUNC_kem_decapsulate_fn kem_decapsulate;
static OSSL_FUNC_kem_set_ctx_params_fn kem_set_ctx_params;
static OSSL_FUNC_kem_settable_ctx_params_fn kem_settable_ctx_params;

struct kem_ctx {
	struct qprov_ctx *ctx;
	int hybrid;
	/* borrowed: the EVP_PKEY_CTX holds the key for the ctx's lifetime */
	struct qprov_key *key;
};

static void *
kem_newctx(struct qprov_ctx *ctx, int hybrid)
{
	struct kem_ctx *k = OPENSSL_zalloc(sizeof(*k));
	if (k == NULL) {
		QPROV_RAISE(ctx, QPROV_R_NO_MEMORY, "allocating a KEM context");
		return NULL;
	}
	k->ctx = ctx;
	k->hybrid = hybrid;
	return k;
}

static void *
newctx_qkd(void *provctx)
{
	return kem_newctx(provctx, 0);
}

static void *
newctx_hyb(void *provctx)
{
	return kem_newctx(provctx, 1);
}

static void
kem_freectx(void *vk)
{
	OPENSSL_free(vk);
}

static void *
kem_dupctx(void *vk)
{
	struct kem_ctx *src = vk, *k = OPENSSL_memdup(src, sizeof(*src));
	if (k == NULL)
		QPROV_RAISE(src->ctx, QPROV_R_NO_MEMORY,
		            "copying a KEM context");
	return k;
}

static int
kem_set_ctx_params(void *vk, const OSSL_PARAM params[])
{
	(void)vk;
	(void)params;
	return 1; /* nothing to set: the KM decides */
}

static const OSSL_PARAM settable[] = {OSSL_PARAM_END};

static const OSSL_PARAM *
kem_settable_ctx_params(void *vk, void *provctx)
{
	(void)vk;
	(void)provctx;
	return settable;
}

static int
kem_init(struct kem_ctx *k, struct qprov_key *key, int need_priv,
         const OSSL_PARAM params[])
{
	if (key == NULL || key->hybrid != k->hybrid) {
		QPROV_RAISE(k->ctx, QPROV_R_WRONG_GROUP,
		            "the %s KEM needs a %s key",
		            k->hybrid ? QPROV_ALG_HYB : QPROV_ALG_QKD,
		            k->hybrid ? QPROV_ALG_HYB : QPROV_ALG_QKD);
		return 0;
	}
	if (!key->has_pub) {
		QPROV_RAISE(k->ctx, QPROV_R_BAD_KEY_SHARE,
		            "the key has no key share");
		return 0;
	}
	if (need_priv && !key->has_priv) {
		QPROV_RAISE(k->ctx, QPROV_R_NO_PRIVATE_KEY,
		            "decapsulation needs the key this client made");
		return 0;
	}
	k->key = key;
	return kem_set_ctx_params(k, params);
}

static int
kem_encapsulate_init(void *vk, void *vkey, const OSSL_PARAM params[])
{
	return kem_init(vk, vkey, 0, params);
}

static int
kem_decapsulate_init(void *vk, void *vkey, const OSSL_PARAM params[])
{
	return kem_init(vk, vkey, 1, params);
}

/* One fresh key shared with dst, from the cache or the KM. */
static int
server_key(struct qprov_ctx *ctx, const char *dst, qkdn_key_id *id,
           uint8_t key[QPROV_KEY_LEN])
{
	struct qkdn_ak_key *keys = NULL;
	struct qkdn_ak *ak;
	unsigned n = ctx->batch;
	int claim = QPROV_CACHE_FETCH, ok = 0, rv;

	if (n > 1) {
		claim = qprov_cache_take(ctx->cache, dst, id, key,
		                         (int)ctx->timeout_ms);
		if (claim == QPROV_CACHE_HIT)
			return 1;
	}
	if ((ak = qprov_ak(ctx)) == NULL)
		goto done;
	/* a transient buffer, wiped below: the keys kept for later go to
	 * the cache's guarded memory (a guarded allocation per refill costs
	 * mmap/mprotect/munmap, which showed in the TLS benchmark) */
	if ((keys = calloc(n, sizeof(*keys))) == NULL) {
		QPROV_RAISE(ctx, QPROV_R_NO_MEMORY, "room for %u keys", n);
		goto done;
	}
	if ((rv = qkdn_ak_get_keys(ak, dst, 8 * QPROV_KEY_LEN, n, keys)) != 0) {
		QPROV_RAISE_AK(ctx, rv);
		goto done;
	}
	*id = keys[0].id;
	memcpy(key, keys[0].bytes, QPROV_KEY_LEN);
	ok = 1;
done:
	if (n > 1)
		qprov_cache_done(ctx->cache, dst, claim == QPROV_CACHE_CLAIMED,
		                 ok ? keys + 1 : NULL, ok ? n - 1 : 0);
	if (keys != NULL) {
		qkdn_ak_keys_wipe(keys, n);
		free(keys);
	}
	return ok;
}

static int
kem_encapsulate(void *vk, unsigned char *out, size_t *outlen,
                unsigned char *secret, size_t *secretlen)
{
	struct kem_ctx *k = vk;
	struct qprov_ctx *ctx = k->ctx;
	struct qprov_key *key = k->key;
	size_t ct_len = qprov_ct_len(k->hybrid);
	size_t ss_len = qprov_secret_len(k->hybrid);
	size_t off = k->hybrid ? QPROV_X_LEN : 0;
	EVP_PKEY *eph = NULL;
	qkdn_key_id id;
	int ok = 0;

	if (out == NULL) {
		if (outlen != NULL)
			*outlen = ct_len;
		if (secretlen != NULL)
			*secretlen = ss_len;
		return 1;
	}
	if (secret == NULL || outlen == NULL || secretlen == NULL ||
	    *outlen < ct_len || *secretlen < ss_len) {
		QPROV_RAISE(ctx, QPROV_R_BUFFER_TOO_SMALL,
		            "need %zu bytes of ciphertext and %zu of secret",
		            ct_len, ss_len);
		return 0;
	}
	if (key == NULL || !qprov_check_config(ctx))
		return 0;
	if (k->hybrid && ((eph = qprov_x25519_keygen(ctx, out)) == NULL ||
	                  !qprov_x25519_derive(ctx, eph, key->xpub, secret)))
		goto err;
	if (!server_key(ctx, key->sae, &id, secret + off))
		goto err;
	memcpy(out + off, id.b, QPROV_ID_LEN);
	*outlen = ct_len;
	*secretlen = ss_len;
	ok = 1;
err:
	if (!ok)
		OPENSSL_cleanse(secret, ss_len);
	EVP_PKEY_free(eph);
	return ok;
}

static int
kem_decapsulate(void *vk, unsigned char *out, size_t *outlen,
                const unsigned char *in, size_t inlen)
{
	struct kem_ctx *k = vk;
	struct qprov_ctx *ctx = k->ctx;
	struct qprov_key *key = k->key;
	size_t ct_len = qprov_ct_len(k->hybrid);
	size_t ss_len = qprov_secret_len(k->hybrid);
	size_t off = k->hybrid ? QPROV_X_LEN : 0;
	struct qkdn_ak_key got;
	struct qkdn_ak *ak;
	qkdn_key_id id;
	int ok = 0, rv;

	if (out == NULL) {
		if (outlen != NULL)
			*outlen = ss_len;
		return 1;
	}
	if (outlen == NULL || *outlen < ss_len) {
		QPROV_RAISE(ctx, QPROV_R_BUFFER_TOO_SMALL,
		            "need %zu bytes of secret", ss_len);
		return 0;
	}
	if (in == NULL || inlen != ct_len) {
		QPROV_RAISE(ctx, QPROV_R_BAD_CIPHERTEXT,
		            "%s ciphertext of %zu bytes, expected %zu",
		            k->hybrid ? QPROV_ALG_HYB : QPROV_ALG_QKD, inlen,
		            ct_len);
		return 0;
	}
	if (key == NULL || !key->has_priv || !qprov_check_config(ctx))
		return 0;
	memset(&got, 0, sizeof(got));
	if (k->hybrid && !qprov_x25519_derive(ctx, key->xpriv, in, out))
		goto err;
	if ((ak = qprov_ak(ctx)) == NULL)
		goto err;
	memcpy(id.b, in + off, QPROV_ID_LEN);
	/* the KM checks that the ID exists and was made for this SAE */
	if ((rv = qkdn_ak_get_keys_by_id(ak, &id, 1, &got)) != 0) {
		QPROV_RAISE_AK(ctx, rv);
		goto err;
	}
	if (got.len != QPROV_KEY_LEN) {
		QPROV_RAISE(ctx, QPROV_R_BAD_CIPHERTEXT,
		            "key ID names a %u-bit key, expected %d bits",
		            8 * got.len, 8 * QPROV_KEY_LEN);
		goto err;
	}
	memcpy(out + off, got.bytes, QPROV_KEY_LEN);
	*outlen = ss_len;
	ok = 1;
err:
	if (!ok)
		OPENSSL_cleanse(out, ss_len);
	qkdn_ak_keys_wipe(&got, 1);
	return ok;
}

/* The two tables differ only in the constructor, which fixes the type. */
#define KEM_TABLE(name, newctx_fn)                                             \
	const OSSL_DISPATCH name[] = {                                         \
	    {OSSL_FUNC_KEM_NEWCTX, (void (*)(void))newctx_fn},                 \
	    {OSSL_FUNC_KEM_FREECTX, (void (*)(void))kem_freectx},              \
	    {OSSL_FUNC_KEM_DUPCTX, (void (*)(void))kem_dupctx},                \
	    {OSSL_FUNC_KEM_ENCAPSULATE_INIT,                                   \
	     (void (*)(void))kem_encapsulate_init},                            \
	    {OSSL_FUNC_KEM_ENCAPSULATE, (void (*)(void))kem_encapsulate},      \
	    {OSSL_FUNC_KEM_DECAPSULATE_INIT,                                   \
	     (void (*)(void))kem_decapsulate_init},                            \
	    {OSSL_FUNC_KEM_DECAPSULATE, (void (*)(void))kem_decapsulate},      \
	    {OSSL_FUNC_KEM_SET_CTX_PARAMS,                                     \
	     (void (*)(void))kem_set_ctx_params},                              \
	    {OSSL_FUNC_KEM_SETTABLE_CTX_PARAMS,                                \
	     (void (*)(void))kem_settable_ctx_params},                         \
	    {0, NULL}}

KEM_TABLE(qprov_kem_qkd_functions, newctx_qkd);
KEM_TABLE(qprov_kem_hyb_functions, newctx_hyb);
