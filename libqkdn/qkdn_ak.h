/* qkdn Ak client: how an application (the CLI, the OpenSSL provider, your
 * program) gets keys from its key manager, as in ITU-T Q.4160 I.1.
 *
 *   struct qkdn_ak *ak;
 *   qkdn_ak_open(&ak, "ipc:///run/qkdn/A.ak", "alice", 2000);
 *   qkdn_ak_get_keys(ak, "bob", 256, 1, keys);       // source side
 *   qkdn_ak_get_keys_by_id(ak, &keys[0].id, 1, out); // destination side
 *
 * A handle may be used from several threads at once. Every call waits at
 * most the handle's timeout. Calls return 0 or a negative qkdn error code
 * (qkdn_err.h); qkdn_ak_last_error() then gives the reason. */
#ifndef QKDN_AK_H
#define QKDN_AK_H

#include "qkdn_msg.h"

#include <stddef.h>
#include <stdint.h>

struct qkdn_ak;

struct qkdn_ak_key {
	qkdn_uuid id;
	uint32_t len; /* bytes */
	uint8_t bytes[QKDN_KEY_BYTES_MAX];
};

int qkdn_ak_open(struct qkdn_ak **out, const char *km_url, const char *sae,
                 int timeout_ms) __attribute__((warn_unused_result));
void qkdn_ak_close(struct qkdn_ak *ak);

/* Key request: count keys of bits each, shared with dst_sae. out must hold
 * count entries. */
int qkdn_ak_get_keys(struct qkdn_ak *ak, const char *dst_sae, uint32_t bits,
                     uint32_t count, struct qkdn_ak_key *out)
    __attribute__((warn_unused_result));

/* Key request with ID: the keys for count IDs made for this SAE. */
int qkdn_ak_get_keys_by_id(struct qkdn_ak *ak, const qkdn_uuid *ids,
                           uint32_t count, struct qkdn_ak_key *out)
    __attribute__((warn_unused_result));

/* Status of the KM; the caller clears out with qkdn_msg_clear(). */
int qkdn_ak_status(struct qkdn_ak *ak, struct qkdn_msg *out)
    __attribute__((warn_unused_result));

/* Reason for the last failure of this thread's calls (never NULL). */
const char *qkdn_ak_last_error(void);

/* Wipe n keys. */
void qkdn_ak_keys_wipe(struct qkdn_ak_key *keys, size_t n);

#endif
