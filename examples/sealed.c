/* What qkdn-seal and qkdn-open share: errors, the command line, provider
 * start-up, the "qkd" algorithm and the own key, the header's authenticated
 * bytes and the key derivation. */
#include "sealed.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sealed_prog = "qkdn";

void
sealed_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", sealed_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ERR_print_errors_fp(stderr);
}

int
sealed_args(int argc, char **argv, const char *opt, void (*usage)(FILE *f),
            const char **value)
{
	const struct option lopts[] = {{opt, required_argument, NULL, 'o'},
	                               {"help", no_argument, NULL, 'h'},
	                               {NULL, 0, NULL, 0}};
	int c;
	*value = NULL;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			*value = optarg;
			break;
		case 'h':
			usage(stdout);
			return SEALED_OK;
		default:
			usage(stderr);
			return SEALED_EUSAGE;
		}
	}
	return -1;
}

int
sealed_init(void)
{
	if (!OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL)) {
		sealed_error("cannot load the OpenSSL configuration (%s)",
		             getenv("OPENSSL_CONF") ? getenv("OPENSSL_CONF")
		                                    : "default file");
		return 0;
	}
	return 1;
}

EVP_PKEY_CTX *
sealed_kem_ctx(void)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, SEALED_KEM, NULL);
	if (ctx == NULL)
		sealed_error("no \"%s\" algorithm: does OPENSSL_CONF name a "
		             "configuration that loads the qkdn provider?",
		             SEALED_KEM);
	return ctx;
}

EVP_PKEY *
sealed_own_key(void)
{
	EVP_PKEY *key = NULL;
	EVP_PKEY_CTX *ctx = sealed_kem_ctx();
	if (ctx == NULL)
		return NULL;
	if (EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, &key) <= 0)
		sealed_error("cannot make this application's \"%s\" key "
		             "(is sae set in the provider's configuration?)",
		             SEALED_KEM);
	EVP_PKEY_CTX_free(ctx);
	return key;
}

size_t
sealed_aad_len(const struct sealed_header *h)
{
	return SEALED_MAGIC_LEN + 2 + h->ct_len + SEALED_NONCE_LEN;
}

void
sealed_aad(uint8_t *out, const struct sealed_header *h)
{
	memcpy(out, SEALED_MAGIC, SEALED_MAGIC_LEN);
	out[SEALED_MAGIC_LEN] = SEALED_VERSION;
	out[SEALED_MAGIC_LEN + 1] = h->ct_len;
	memcpy(out + SEALED_MAGIC_LEN + 2, h->ct, h->ct_len);
	memcpy(out + SEALED_MAGIC_LEN + 2 + h->ct_len, h->nonce,
	       SEALED_NONCE_LEN);
}

int
sealed_derive_key(uint8_t out[SEALED_KEY_LEN], const uint8_t *secret,
                  size_t secret_len)
{
	static const char info[] = "qkdn-seal v1 AES-256-GCM";
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
	    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret,
	                            secret_len),
	    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_INFO, (void *)info,
	                            sizeof(info) - 1),
	    OSSL_PARAM_END};
	int ok =
	    ctx != NULL && EVP_KDF_derive(ctx, out, SEALED_KEY_LEN, params) > 0;
	if (!ok)
		sealed_error("HKDF-SHA256 failed");
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return ok;
}

void
sealed_key_id_text(char *out, size_t out_len, const uint8_t *ct, size_t ct_len)
{
	size_t o = 0;
	if (out_len == 0)
		return;
	out[0] = '\0';
	for (size_t i = 0; i < ct_len && o + 4 < out_len; i++) {
		int dash =
		    ct_len == 16 && (i == 4 || i == 6 || i == 8 || i == 10);
		if (dash)
			out[o++] = '-';
		o += (size_t)snprintf(out + o, out_len - o, "%02x", ct[i]);
	}
}
