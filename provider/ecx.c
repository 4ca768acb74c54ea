/* The X25519 half of x25519_qkd: OpenSSL's own X25519, fetched through the
 * provider's child library context from the application's providers. */
#include "qprov.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

EVP_PKEY *
qprov_x25519_keygen(struct qprov_ctx *ctx, uint8_t pub[QPROV_X_LEN])
{
	size_t len = QPROV_X_LEN;
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(ctx->libctx, NULL, "X25519");
	if (pk == NULL || !EVP_PKEY_get_raw_public_key(pk, pub, &len) ||
	    len != QPROV_X_LEN) {
		EVP_PKEY_free(pk);
		QPROV_RAISE(ctx, QPROV_R_X25519,
		            "X25519 key generation failed (is the default "
		            "provider loaded?)");
		return NULL;
	}
	return pk;
}

int
qprov_x25519_derive(struct qprov_ctx *ctx, EVP_PKEY *priv,
                    const uint8_t peer[QPROV_X_LEN],
                    uint8_t secret[QPROV_X_LEN])
{
	EVP_PKEY_CTX *dc = NULL;
	EVP_PKEY *pp;
	size_t len = QPROV_X_LEN;
	int ok = 0;

	pp = EVP_PKEY_new_raw_public_key_ex(ctx->libctx, "X25519", NULL, peer,
	                                    QPROV_X_LEN);
	if (pp == NULL ||
	    (dc = EVP_PKEY_CTX_new_from_pkey(ctx->libctx, priv, NULL)) ==
	        NULL ||
	    EVP_PKEY_derive_init(dc) <= 0 ||
	    EVP_PKEY_derive_set_peer(dc, pp) <= 0)
		goto err;
	/* OpenSSL refuses a low-order peer point (all-zero secret) here */
	if (EVP_PKEY_derive(dc, secret, &len) <= 0 || len != QPROV_X_LEN)
		goto err;
	ok = 1;
err:
	if (!ok) {
		OPENSSL_cleanse(secret, QPROV_X_LEN);
		QPROV_RAISE(ctx, QPROV_R_X25519,
		            "X25519 key agreement failed (peer share refused)");
	}
	EVP_PKEY_CTX_free(dc);
	EVP_PKEY_free(pp);
	return ok;
}
