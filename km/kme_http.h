/* An ETSI GS QKD 014 client toward one KME (southbound Kq-1, docs/etsi014.md):
 * status, enc_keys and dec_keys over HTTPS with a client certificate, through
 * libcurl (OpenSSL). One handle per link end keeps its connection alive; it
 * is not thread-safe (its owner serialises calls). Keys arrive in
 * sodium_malloc'd memory the caller gives; response bodies are wiped. */
#ifndef KM_KME_HTTP_H
#define KM_KME_HTTP_H

#include "qkdn_msg.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct km_kme_http;

/* The process-wide setup libcurl needs before any thread uses it, and
 * cJSON's allocator set to wipe what it frees (key text passes through it).
 * Call once from the main thread. */
int km_kme_http_global_init(void) __attribute__((warn_unused_result));
void km_kme_http_global_fini(void);

/* base: "https://HOST[:PORT]"; ca, cert, key: PEM paths. Calls give up
 * after timeout_ms, or at once when *stop becomes true. */
int km_kme_http_new(struct km_kme_http **out, const char *base, const char *ca,
                    const char *cert, const char *key, uint32_t timeout_ms,
                    const atomic_bool *stop)
    __attribute__((warn_unused_result));
void km_kme_http_free(struct km_kme_http *h);

/* What GET .../{peer_sae}/status says (fields absent: 0). */
struct km_kme_status {
	uint32_t key_size; /* bits */
	uint32_t max_key_per_request;
	uint64_t stored_key_count;
	int has_stored;
};

/* Every call returns 0, or an error with a reason in why naming the KME,
 * the call and the cause (HTTP status and the KME's message). */
int km_kme_http_status(struct km_kme_http *h, const char *peer_sae,
                       struct km_kme_status *st, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* POST enc_keys for slave_sae: n keys of bits each; ids[n] and the keys,
 * concatenated in the order the KME sent them, into out (n * bits / 8). */
int km_kme_http_enc(struct km_kme_http *h, const char *slave_sae, uint32_t n,
                    uint32_t bits, qkdn_uuid *ids, uint8_t *out, char *why,
                    size_t whylen) __attribute__((warn_unused_result));

/* POST dec_keys from master_sae: the keys ids[n] (bits each), into out in
 * the order of ids, whatever order the KME answers in. */
int km_kme_http_dec(struct km_kme_http *h, const char *master_sae, uint32_t n,
                    uint32_t bits, const qkdn_uuid *ids, uint8_t *out,
                    char *why, size_t whylen)
    __attribute__((warn_unused_result));

#endif
