/* KEY_SYNC on Kx: how a KM names a batch of keys to its peer and proves it
 * (docs/protocol.md). A KEY_SYNC is encoded once; those exact bytes travel
 * inside a KEY_SYNC_AUTH with a one-time Poly1305 tag, keyed by the first
 * 32 bytes of the pool bits the sync names and computed over the sync
 * bytes followed by the rest of those bits (the keys). The receiver
 * decodes the sync, reads the same bits from its own pool and checks the
 * tag before anything is stored: a forged or altered sync, or a pool that
 * differs between the two ends, fails here and no key is supplied. */
#ifndef KM_SYNC_H
#define KM_SYNC_H

#include "qkdn_msg.h"

#include <stddef.h>
#include <stdint.h>

#define KM_SYNC_MAC_KEY_BYTES 32

/* Encode sync (type QKDN_KEY_SYNC) and wrap it, with its tag over bits
 * (the MAC key, then the keys: len bytes), into out, an encoded
 * KEY_SYNC_AUTH. */
int km_sync_seal(const struct qkdn_msg *sync, const uint8_t *bits, size_t len,
                 struct qkdn_buf *out) __attribute__((warn_unused_result));

/* The KEY_SYNC that auth carries, decoded (not yet authenticated). */
int km_sync_unwrap(const struct qkdn_key_sync_auth *auth, struct qkdn_msg *sync,
                   struct qkdn_decode_error *err)
    __attribute__((warn_unused_result));

/* 0 if auth's tag authenticates its sync bytes and bits (len bytes, MAC key
 * first); QKDN_E_AUTH_FAILED otherwise. */
int km_sync_verify(const struct qkdn_key_sync_auth *auth, const uint8_t *bits,
                   size_t len) __attribute__((warn_unused_result));

#endif
