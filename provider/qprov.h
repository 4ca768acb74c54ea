/* qkdn OpenSSL 3 provider: TLS 1.3 KEM groups "qkd" and "x25519_qkd" whose
 * shared secret is a QKD key supplied by the node's key manager over Ak.
 *
 *   client keygen      key share = 0x01 len SAE          (no KM call)
 *   server encapsulate KM key request for the client SAE; ciphertext = ID
 *   client decapsulate KM key request with ID; secret = the key
 *
 * The hybrid prefixes an X25519 key share, ciphertext and secret, computed
 * by OpenSSL's own X25519 through a child library context. docs/provider.md
 * describes the mapping, configuration, cache and errors. */
#ifndef QPROV_H
#define QPROV_H

#include "qkdn_ak.h"
#include "qkdn_err.h"

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/types.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define QPROV_PROPS     "provider=qkdn"
#define QPROV_ALG_QKD   "qkd"
#define QPROV_ALG_HYB   "x25519_qkd"
#define QPROV_KEY_LEN   32 /* QKD key: 256 bits */
#define QPROV_ID_LEN    16 /* key ID (UUID) */
#define QPROV_X_LEN     32 /* X25519 public key and shared secret */
#define QPROV_SHARE_MAX (2 + QKDN_AK_NAME_MAX) /* 0x01 len SAE */
#define QPROV_SHARE_TAG 0x01

/* Defaults of the configuration keys (docs/provider.md). */
#define QPROV_TIMEOUT_MS_DEFAULT 3000
#define QPROV_BATCH_DEFAULT      16
#define QPROV_BATCH_MAX          256
#define QPROV_GROUP_QKD_DEFAULT  0xFE60
#define QPROV_GROUP_HYB_DEFAULT  0xFE61
#define QPROV_PATH_MAX           1024 /* ca, cert, key */

/* Reason codes on OpenSSL's error queue (library "qkdn"). Stable. A failed
 * KM call raises the qkdn error code itself (1 .. -QKDN_E_LAST_ - 1, with
 * the text of QKDN_ERRORS in qkdn_err.h); the provider's own reasons start
 * at 100. */
enum qprov_reason {
	QPROV_R_NO_MEMORY = -QKDN_E_NOMEM,
	QPROV_R_NO_KM = 101,
	QPROV_R_NO_SAE = 102,
	QPROV_R_BAD_KEY_SHARE = 103,
	QPROV_R_BAD_CIPHERTEXT = 104,
	QPROV_R_BAD_CONFIG = 105,
	QPROV_R_X25519 = 106,
	QPROV_R_BUFFER_TOO_SMALL = 107,
	QPROV_R_WRONG_GROUP = 108,
	QPROV_R_NO_PRIVATE_KEY = 109,
};

struct qprov_cache;

/* One loaded instance of the provider (it may be loaded into several
 * library contexts of one process, each with its own configuration). */
struct qprov_ctx {
	const OSSL_CORE_HANDLE *handle;
	OSSL_LIB_CTX *libctx; /* child of the application's context */
	OSSL_FUNC_core_new_error_fn *new_error;
	OSSL_FUNC_core_set_error_debug_fn *set_error_debug;
	OSSL_FUNC_core_vset_error_fn *vset_error;

	/* configuration, fixed after init */
	char km[256];
	char sae[QKDN_AK_NAME_MAX];
	/* a tls+tcp:// KM: PEM files and the KM's node ID ("" unset) */
	char ca[QPROV_PATH_MAX], cert[QPROV_PATH_MAX], key[QPROV_PATH_MAX];
	char km_name[QKDN_AK_NAME_MAX];
	unsigned timeout_ms;
	unsigned batch;
	unsigned group_qkd, group_hyb;
	char config_error[320]; /* first bad setting, "" if none */

	/* opened at load (that contacts no KM) unless the configuration is
	 * bad; shared by threads */
	struct qkdn_ak *ak;
	struct qprov_cache *cache;
};

/* prov.c: errors and the Ak handle */
void qprov_raise(const struct qprov_ctx *ctx, int reason, const char *file,
                 int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
#define QPROV_RAISE(ctx, reason, ...)                                          \
	qprov_raise((ctx), (reason), __FILE__, __LINE__, __func__, __VA_ARGS__)
/* Raise the reason for a failed Ak call (rv < 0), with the KM's text. */
void qprov_raise_ak(const struct qprov_ctx *ctx, int rv, const char *file,
                    int line, const char *func);
#define QPROV_RAISE_AK(ctx, rv)                                                \
	qprov_raise_ak((ctx), (rv), __FILE__, __LINE__, __func__)
const OSSL_ITEM *qprov_reason_strings(void);
/* 1 if KM and SAE are configured and every setting is valid; else raises
 * why and returns 0. Every group operation that makes or uses a key checks
 * it, so an unconfigured provider loads but its groups fail cleanly. */
int qprov_check_config(const struct qprov_ctx *ctx);
/* The shared Ak handle once the configuration is checked; NULL with an
 * error raised. */
struct qkdn_ak *qprov_ak(struct qprov_ctx *ctx);

/* groups.c: the TLS-GROUP capability */
int qprov_get_capabilities(void *provctx, const char *capability,
                           OSSL_CALLBACK *cb, void *arg);

/* kmgmt.c */
extern const OSSL_DISPATCH qprov_kmgmt_qkd_functions[];
extern const OSSL_DISPATCH qprov_kmgmt_hyb_functions[];

/* A qkd or x25519_qkd key. The public part is the client's key share; the
 * private part is "this process is that SAE" (and, for the hybrid, the
 * X25519 private key). */
struct qprov_key {
	struct qprov_ctx *ctx;
	int hybrid;
	int has_pub, has_priv;
	uint8_t sae_len;
	char sae[QKDN_AK_NAME_MAX]; /* NUL-terminated */
	uint8_t xpub[QPROV_X_LEN];
	EVP_PKEY *xpriv; /* X25519 key pair (hybrid, has_priv), child ctx */
};

size_t qprov_share_len(const struct qprov_key *key);
size_t qprov_ct_len(int hybrid);
size_t qprov_secret_len(int hybrid);

/* kem.c */
extern const OSSL_DISPATCH qprov_kem_qkd_functions[];
extern const OSSL_DISPATCH qprov_kem_hyb_functions[];

/* ecx.c: X25519 through the child library context */
EVP_PKEY *qprov_x25519_keygen(struct qprov_ctx *ctx, uint8_t pub[QPROV_X_LEN]);
int qprov_x25519_derive(struct qprov_ctx *ctx, EVP_PKEY *priv,
                        const uint8_t peer[QPROV_X_LEN],
                        uint8_t secret[QPROV_X_LEN])
    __attribute__((warn_unused_result));

/* keycache.c: keys fetched ahead for destination SAEs (server side).
 * Each cached key is handed out once; a forked child never sees the
 * parent's keys. */
enum {
	QPROV_CACHE_HIT = 1,     /* a key for dst was taken out */
	QPROV_CACHE_CLAIMED = 0, /* none: fetch, then qprov_cache_done */
	QPROV_CACHE_FETCH = -1,  /* none, and no claim: fetch anyway */
};
int qprov_cache_new(struct qprov_cache **out, unsigned batch)
    __attribute__((warn_unused_result));
void qprov_cache_free(struct qprov_cache *c);
/* Take a key for dst. While another thread's fetch for dst is in flight,
 * wait for it up to wait_ms. */
int qprov_cache_take(struct qprov_cache *c, const char *dst, qkdn_key_id *id,
                     uint8_t key[QPROV_KEY_LEN], int wait_ms);
/* After a fetch (n keys to keep, 0 if it failed): keep what fits, end the
 * claim if claimed, wake the waiters. The caller wipes keys. */
void qprov_cache_done(struct qprov_cache *c, const char *dst, int claimed,
                      const struct qkdn_ak_key *keys, size_t n);

#endif
