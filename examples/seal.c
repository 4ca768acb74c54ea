/* qkdn-seal: encrypt a file for an application on another node of a QKD
 * network, with a key the network supplies, using nothing but OpenSSL's
 * EVP KEM API and the qkdn provider (loaded through OPENSSL_CONF).
 *
 *   qkdn-seal --recipient PUBFILE IN OUT
 *
 * PUBFILE is the recipient's "qkd" public key (qkdn-open --export-pub).
 * Encapsulating to it asks this application's KM for a fresh key shared
 * with the recipient's SAE: the KEM ciphertext is the key ID, the secret
 * the key. The input is encrypted with AES-256-GCM under a key derived
 * from it; see sealed.h for the format. IN may be "-" for stdin; OUT must
 * be a regular file (the tag is written into the header at the end). */
#include "sealed.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PUB_MAX 1024

static void
usage(FILE *f)
{
	fprintf(f, "usage: qkdn-seal --recipient PUBFILE IN OUT\n"
	           "  Encrypt IN (\"-\" for stdin) into OUT for the "
	           "application whose \"qkd\"\n"
	           "  public key is in PUBFILE (made with qkdn-open "
	           "--export-pub), with a fresh\n"
	           "  key from the QKD network. OPENSSL_CONF must load "
	           "the qkdn provider with\n"
	           "  this application's km and sae.\n");
}

/* The recipient's public key: a "qkd" key with only its public part. */
static EVP_PKEY *
load_recipient(const char *path)
{
	uint8_t pub[PUB_MAX];
	size_t n;
	EVP_PKEY *key = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		sealed_error("cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	n = fread(pub, 1, sizeof(pub), f);
	if (ferror(f) || n == 0 || n == sizeof(pub)) {
		sealed_error("%s: not a public key (%zu bytes)", path, n);
		fclose(f);
		return NULL;
	}
	fclose(f);
	if ((ctx = sealed_kem_ctx()) == NULL)
		return NULL;
	if (EVP_PKEY_paramgen_init(ctx) <= 0 ||
	    EVP_PKEY_paramgen(ctx, &key) <= 0) {
		sealed_error("cannot make an empty \"%s\" key", SEALED_KEM);
	} else if (EVP_PKEY_set1_encoded_public_key(key, pub, n) <= 0) {
		sealed_error("%s: not a \"%s\" public key", path, SEALED_KEM);
		EVP_PKEY_free(key);
		key = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	return key;
}

/* Ask the KM (through the provider) for a key shared with the recipient:
 * h->ct gets the key ID, secret the key. Returns 1 or 0. */
static int
encapsulate(EVP_PKEY *recipient, struct sealed_header *h, uint8_t *secret,
            size_t *secret_len)
{
	size_t ct_len = 0, need = 0;
	int ok = 0;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, recipient, NULL);
	if (ctx == NULL || EVP_PKEY_encapsulate_init(ctx, NULL) <= 0 ||
	    EVP_PKEY_encapsulate(ctx, NULL, &ct_len, NULL, &need) <= 0) {
		sealed_error("cannot set up the \"%s\" KEM", SEALED_KEM);
		goto out;
	}
	if (ct_len > SEALED_CT_MAX || need > *secret_len) {
		sealed_error("the KEM's sizes do not fit (%zu, %zu)", ct_len,
		             need);
		goto out;
	}
	*secret_len = need;
	if (EVP_PKEY_encapsulate(ctx, h->ct, &ct_len, secret, secret_len) <=
	    0) {
		sealed_error("no key from the KM for the recipient");
		goto out;
	}
	h->ct_len = (uint8_t)ct_len;
	ok = 1;
out:
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/* Encrypt in to out after a header with a zero tag, then write the tag in
 * place. Returns an exit status. */
static int
encrypt_stream(FILE *in, FILE *out, const char *out_path,
               struct sealed_header *h, const uint8_t key[SEALED_KEY_LEN])
{
	static uint8_t buf[SEALED_CHUNK], ctbuf[SEALED_CHUNK + 16];
	uint8_t aad[SEALED_MAGIC_LEN + 2 + SEALED_CT_MAX + SEALED_NONCE_LEN];
	size_t aad_len = sealed_aad_len(h), n;
	long tag_at = (long)aad_len;
	int len, rc = SEALED_EIO;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

	sealed_aad(aad, h);
	memset(h->tag, 0, sizeof(h->tag));
	if (fwrite(aad, 1, aad_len, out) != aad_len ||
	    fwrite(h->tag, 1, sizeof(h->tag), out) != sizeof(h->tag)) {
		sealed_error("cannot write %s: %s", out_path, strerror(errno));
		goto out;
	}
	if (c == NULL ||
	    !EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), key, h->nonce, NULL) ||
	    !EVP_EncryptUpdate(c, NULL, &len, aad, (int)aad_len)) {
		sealed_error("cannot start AES-256-GCM");
		rc = SEALED_EKEY;
		goto out;
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
		if (!EVP_EncryptUpdate(c, ctbuf, &len, buf, (int)n) ||
		    fwrite(ctbuf, 1, (size_t)len, out) != (size_t)len) {
			sealed_error("cannot write %s: %s", out_path,
			             strerror(errno));
			goto out;
		}
	}
	if (ferror(in)) {
		sealed_error("cannot read the input: %s", strerror(errno));
		goto out;
	}
	if (!EVP_EncryptFinal_ex(c, ctbuf, &len) ||
	    fwrite(ctbuf, 1, (size_t)len, out) != (size_t)len ||
	    !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, SEALED_TAG_LEN,
	                         h->tag)) {
		sealed_error("AES-256-GCM failed");
		goto out;
	}
	if (fseek(out, tag_at, SEEK_SET) != 0 ||
	    fwrite(h->tag, 1, sizeof(h->tag), out) != sizeof(h->tag)) {
		sealed_error("cannot write the tag into %s (it must be a "
		             "regular file): %s",
		             out_path, strerror(errno));
		goto out;
	}
	rc = SEALED_OK;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	EVP_CIPHER_CTX_free(c);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *pub_path = NULL, *in_path = NULL, *out_path = NULL;
	struct sealed_header h = {0};
	uint8_t secret[256], key[SEALED_KEY_LEN];
	size_t secret_len = sizeof(secret);
	char id[64];
	EVP_PKEY *recipient = NULL;
	FILE *in = NULL, *out = NULL;
	int c, created = 0, rc = SEALED_EUSAGE;

	sealed_prog = "qkdn-seal";
	if ((c = sealed_args(argc, argv, "recipient", usage, &pub_path)) >= 0)
		return c;
	if (pub_path == NULL || argc - optind != 2) {
		usage(stderr);
		return SEALED_EUSAGE;
	}
	in_path = argv[optind];
	out_path = argv[optind + 1];

	rc = SEALED_EKEY;
	if (!sealed_init() || (recipient = load_recipient(pub_path)) == NULL)
		goto out;
	/* open both files before taking a key, so an I/O error wastes none */
	rc = SEALED_EIO;
	in = strcmp(in_path, "-") == 0 ? stdin : fopen(in_path, "rb");
	if (in == NULL) {
		sealed_error("cannot open %s: %s", in_path, strerror(errno));
		goto out;
	}
	if ((out = fopen(out_path, "wb")) == NULL) {
		sealed_error("cannot create %s: %s", out_path, strerror(errno));
		goto out;
	}
	created = 1;
	rc = SEALED_EKEY;
	if (RAND_bytes(h.nonce, sizeof(h.nonce)) != 1) {
		sealed_error("no random nonce");
		goto out;
	}
	if (!encapsulate(recipient, &h, secret, &secret_len) ||
	    !sealed_derive_key(key, secret, secret_len))
		goto out;
	rc = encrypt_stream(in, out, out_path, &h, key);
	if (rc == SEALED_OK && fclose(out) != 0) {
		sealed_error("cannot write %s: %s", out_path, strerror(errno));
		rc = SEALED_EIO;
	}
	out = NULL;
	if (rc == SEALED_OK) {
		sealed_key_id_text(id, sizeof(id), h.ct, h.ct_len);
		fprintf(stderr, "qkdn-seal: sealed %s with key %s\n", out_path,
		        id);
	}
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(key, sizeof(key));
	if (out != NULL)
		fclose(out);
	if (in != NULL && in != stdin)
		fclose(in);
	if (rc != SEALED_OK && created)
		remove(out_path);
	EVP_PKEY_free(recipient);
	return rc;
}
