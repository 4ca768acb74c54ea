/* qkdn-open: decrypt a file made by qkdn-seal, fetching its key by ID from
 * this application's KM through the qkdn provider (OPENSSL_CONF).
 *
 *   qkdn-open --export-pub PUBFILE   this application's "qkd" public key
 *   qkdn-open IN OUT                 decrypt IN ("-" for stdin) into OUT
 *
 * The KM supplies each key once, so a sealed file opens once. The
 * plaintext goes to a temporary file beside OUT (mode 0600) that is renamed
 * to OUT only after the GCM tag has been checked: nothing unauthenticated
 * is ever left behind. */
#include "sealed.h"

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
usage(FILE *f)
{
	fprintf(f, "usage: qkdn-open --export-pub PUBFILE\n"
	           "       qkdn-open IN OUT\n"
	           "  --export-pub writes this application's \"qkd\" public "
	           "key (\"-\" for stdout)\n"
	           "  for the sender's qkdn-seal --recipient. Otherwise "
	           "decrypt IN (\"-\" for\n"
	           "  stdin), made by qkdn-seal, into OUT; the key is "
	           "fetched from the KM once.\n"
	           "  OPENSSL_CONF must load the qkdn provider with this "
	           "application's km and sae.\n");
}

static int
export_pub(const char *path)
{
	unsigned char *pub = NULL;
	size_t n;
	int rc = SEALED_EKEY;
	FILE *f = NULL;
	EVP_PKEY *key = sealed_own_key();
	if (key == NULL)
		goto out;
	if ((n = EVP_PKEY_get1_encoded_public_key(key, &pub)) == 0) {
		sealed_error("cannot encode the public key");
		goto out;
	}
	rc = SEALED_EIO;
	f = strcmp(path, "-") == 0 ? stdout : fopen(path, "wb");
	if (f == NULL || fwrite(pub, 1, n, f) != n || fflush(f) != 0) {
		sealed_error("cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	rc = SEALED_OK;
out:
	if (f != NULL && f != stdout && fclose(f) != 0 && rc == SEALED_OK) {
		sealed_error("cannot write %s: %s", path, strerror(errno));
		rc = SEALED_EIO;
	}
	OPENSSL_free(pub);
	EVP_PKEY_free(key);
	return rc;
}

static int
read_exact(FILE *f, void *buf, size_t n)
{
	return fread(buf, 1, n, f) == n;
}

/* Returns an exit status. */
static int
read_header(FILE *in, const char *path, struct sealed_header *h)
{
	uint8_t magic[SEALED_MAGIC_LEN], v[2];
	if (!read_exact(in, magic, sizeof(magic)) ||
	    memcmp(magic, SEALED_MAGIC, sizeof(magic)) != 0 ||
	    !read_exact(in, v, sizeof(v))) {
		if (ferror(in))
			goto io;
		sealed_error("%s: not a file made by qkdn-seal", path);
		return SEALED_EFILE;
	}
	if (v[0] != SEALED_VERSION) {
		sealed_error("%s: format version %u, this program reads %u",
		             path, v[0], SEALED_VERSION);
		return SEALED_EFILE;
	}
	h->ct_len = v[1];
	if (!read_exact(in, h->ct, h->ct_len) ||
	    !read_exact(in, h->nonce, sizeof(h->nonce)) ||
	    !read_exact(in, h->tag, sizeof(h->tag))) {
		if (ferror(in))
			goto io;
		sealed_error("%s: truncated header", path);
		return SEALED_EFILE;
	}
	return SEALED_OK;
io:
	sealed_error("cannot read %s: %s", path, strerror(errno));
	return SEALED_EIO;
}

/* Fetch the key named by the header from the KM: secret gets the key. */
static int
decapsulate(const struct sealed_header *h, uint8_t *secret, size_t *secret_len)
{
	size_t need = 0;
	char id[64];
	int ok = 0;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *own = sealed_own_key();
	if (own == NULL)
		return 0;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, own, NULL);
	if (ctx == NULL || EVP_PKEY_decapsulate_init(ctx, NULL) <= 0 ||
	    EVP_PKEY_decapsulate(ctx, NULL, &need, h->ct, h->ct_len) <= 0 ||
	    need > *secret_len) {
		sealed_error("cannot set up the \"%s\" KEM", SEALED_KEM);
		goto out;
	}
	*secret_len = need;
	if (EVP_PKEY_decapsulate(ctx, secret, secret_len, h->ct, h->ct_len) <=
	    0) {
		sealed_key_id_text(id, sizeof(id), h->ct, h->ct_len);
		sealed_error("the KM did not supply key %s (a key is supplied "
		             "once, and only to the SAE it was made for: a "
		             "sealed file opens only once, for its recipient)",
		             id);
		goto out;
	}
	ok = 1;
out:
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(own);
	return ok;
}

/* Decrypt the rest of in into out; succeeds only if the tag matches. */
static int
decrypt_stream(FILE *in, const char *in_path, FILE *out,
               const struct sealed_header *h, const uint8_t key[SEALED_KEY_LEN])
{
	static uint8_t buf[SEALED_CHUNK], pt[SEALED_CHUNK + 16];
	uint8_t aad[SEALED_MAGIC_LEN + 2 + SEALED_CT_MAX + SEALED_NONCE_LEN];
	size_t aad_len = sealed_aad_len(h), n;
	int len, rc = SEALED_EIO;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

	sealed_aad(aad, h);
	if (c == NULL ||
	    !EVP_DecryptInit_ex2(c, EVP_aes_256_gcm(), key, h->nonce, NULL) ||
	    !EVP_DecryptUpdate(c, NULL, &len, aad, (int)aad_len) ||
	    !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, SEALED_TAG_LEN,
	                         (void *)h->tag)) {
		sealed_error("cannot start AES-256-GCM");
		rc = SEALED_EKEY;
		goto out;
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
		if (!EVP_DecryptUpdate(c, pt, &len, buf, (int)n) ||
		    fwrite(pt, 1, (size_t)len, out) != (size_t)len) {
			sealed_error("cannot write the output: %s",
			             strerror(errno));
			goto out;
		}
	}
	if (ferror(in)) {
		sealed_error("cannot read %s: %s", in_path, strerror(errno));
		goto out;
	}
	if (EVP_DecryptFinal_ex(c, pt, &len) <= 0) {
		sealed_error("%s: authentication failed: the file was altered "
		             "or damaged; no output written",
		             in_path);
		rc = SEALED_EFILE;
		goto out;
	}
	rc = SEALED_OK;
out:
	OPENSSL_cleanse(pt, sizeof(pt));
	EVP_CIPHER_CTX_free(c);
	return rc;
}

static int
open_file(const char *in_path, const char *out_path)
{
	struct sealed_header h = {0};
	uint8_t secret[256], key[SEALED_KEY_LEN];
	size_t secret_len = sizeof(secret);
	char *tmp = NULL;
	int fd = -1, rc;
	FILE *in = NULL, *out = NULL;

	rc = SEALED_EIO;
	in = strcmp(in_path, "-") == 0 ? stdin : fopen(in_path, "rb");
	if (in == NULL) {
		sealed_error("cannot open %s: %s", in_path, strerror(errno));
		goto out;
	}
	if ((rc = read_header(in, in_path, &h)) != SEALED_OK)
		goto out;
	rc = SEALED_EIO;
	if ((tmp = malloc(strlen(out_path) + 8)) == NULL)
		goto out;
	sprintf(tmp, "%s.XXXXXX", out_path);
	if ((fd = mkstemp(tmp)) < 0 || (out = fdopen(fd, "wb")) == NULL) {
		sealed_error("cannot create a file beside %s: %s", out_path,
		             strerror(errno));
		goto out;
	}
	fd = -1;
	rc = SEALED_EKEY;
	if (!decapsulate(&h, secret, &secret_len) ||
	    !sealed_derive_key(key, secret, secret_len))
		goto out;
	rc = decrypt_stream(in, in_path, out, &h, key);
	if (rc != SEALED_OK)
		goto out;
	if (fclose(out) != 0 || rename(tmp, out_path) != 0) {
		out = NULL;
		sealed_error("cannot write %s: %s", out_path, strerror(errno));
		rc = SEALED_EIO;
		goto out;
	}
	out = NULL;
	free(tmp);
	tmp = NULL;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(key, sizeof(key));
	if (fd >= 0)
		close(fd);
	if (out != NULL)
		fclose(out);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	if (in != NULL && in != stdin)
		fclose(in);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *pub_path = NULL;
	int c;

	sealed_prog = "qkdn-open";
	if ((c = sealed_args(argc, argv, "export-pub", usage, &pub_path)) >= 0)
		return c;
	if (pub_path != NULL ? argc != optind : argc - optind != 2) {
		usage(stderr);
		return SEALED_EUSAGE;
	}
	if (!sealed_init())
		return SEALED_EKEY;
	if (pub_path != NULL)
		return export_pub(pub_path);
	return open_file(argv[optind], argv[optind + 1]);
}
