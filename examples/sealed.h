/* The sealed file format of qkdn-seal and qkdn-open, and what both share.
 *
 *   offset      size    field
 *   0           8       magic "QKDNSEAL"
 *   8           1       version (1)
 *   9           1       n: length of the KEM ciphertext
 *   10          n       KEM ciphertext of the "qkd" algorithm: the key ID
 *   10+n        12      AES-256-GCM nonce
 *   22+n        16      AES-256-GCM tag
 *   38+n        ...     AES-256-GCM ciphertext of the input
 *
 * The GCM key is HKDF-SHA256 of the KEM secret (the QKD key); the header
 * up to the nonce is authenticated as additional data, so the key ID, the
 * nonce and the version cannot be changed without the tag failing. */
#ifndef QKDN_SEALED_H
#define QKDN_SEALED_H

#include <openssl/evp.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SEALED_MAGIC     "QKDNSEAL"
#define SEALED_MAGIC_LEN 8
#define SEALED_VERSION   1
#define SEALED_KEM       "qkd"
#define SEALED_CT_MAX    255
#define SEALED_NONCE_LEN 12
#define SEALED_TAG_LEN   16
#define SEALED_KEY_LEN   32
#define SEALED_CHUNK     65536

/* Exit status of both programs (documented in examples/README.md). */
enum sealed_exit {
	SEALED_OK = 0,
	SEALED_EKEY = 1,   /* the key exchange failed: provider or KM refused */
	SEALED_EUSAGE = 2, /* bad command line */
	SEALED_EFILE = 3,  /* not a sealed file, or altered: tag mismatch */
	SEALED_EIO = 4,    /* a file could not be read or written */
};

struct sealed_header {
	uint8_t ct_len;
	uint8_t ct[SEALED_CT_MAX];
	uint8_t nonce[SEALED_NONCE_LEN];
	uint8_t tag[SEALED_TAG_LEN];
};

/* Prefix of every message: the program name. */
extern const char *sealed_prog;

/* Print "prog: fmt..." and then OpenSSL's error queue, on stderr. */
void sealed_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The command line's one option, --OPT VALUE (*value, else NULL), and
 * --help. Returns -1 to go on, else the exit status: SEALED_OK after
 * --help (usage on stdout), SEALED_EUSAGE after a usage error (usage on
 * stderr). The words after the options start at argv[optind]. */
int sealed_args(int argc, char **argv, const char *opt, void (*usage)(FILE *f),
                const char **value) __attribute__((warn_unused_result));

/* Load OpenSSL's configuration (OPENSSL_CONF), which loads the provider.
 * Returns 1 or 0. */
int sealed_init(void) __attribute__((warn_unused_result));

/* A context of the "qkd" algorithm; NULL on failure (reported: the
 * provider is not loaded). */
EVP_PKEY_CTX *sealed_kem_ctx(void) __attribute__((warn_unused_result));

/* This application's own "qkd" key: its SAE comes from the provider's
 * configuration; keygen talks to nobody. NULL on failure (reported). */
EVP_PKEY *sealed_own_key(void) __attribute__((warn_unused_result));

/* The header bytes that go before the tag (and are authenticated as
 * additional data). out must hold sealed_aad_len(h) bytes. */
size_t sealed_aad_len(const struct sealed_header *h);
void sealed_aad(uint8_t *out, const struct sealed_header *h);

/* The GCM key from the KEM secret. Returns 1 or 0. */
int sealed_derive_key(uint8_t out[SEALED_KEY_LEN], const uint8_t *secret,
                      size_t secret_len) __attribute__((warn_unused_result));

/* The key ID (a 16-byte ciphertext) as a UUID, other lengths as hex. */
void sealed_key_id_text(char *out, size_t out_len, const uint8_t *ct,
                        size_t ct_len);

#endif
