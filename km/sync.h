/* KEY_SYNC on Kx: how a KM names a batch of keys to its peer and proves it
 * (docs/protocol.md). The pool bits a sync names are: a 32-byte one-time
 * key for the sync's tag, a 32-byte one-time key for the peer's
 * acknowledgement, then the keys. A KEY_SYNC is encoded once; those exact
 * bytes travel inside a KEY_SYNC_AUTH with a one-time Poly1305 tag over the
 * sync bytes followed by the rest of the bits (acknowledgement key and
 * keys). The receiver decodes the sync, reads the same bits from its own
 * pool and checks the tag before anything is stored: a forged or altered
 * sync, or a pool that differs between the two ends, fails here and no key
 * is supplied. Once it has stored the keys it acknowledges with a tag over
 * the sync's tag under the acknowledgement key, which only a holder of the
 * bits can make: the source supplies its keys only on such an ack. */
#ifndef KM_SYNC_H
#define KM_SYNC_H

#include "qkdn_msg.h"

#include <stddef.h>
#include <stdint.h>

#define KM_SYNC_MAC_KEY_BYTES 32
/* where the keys start in the bits a sync names: after both MAC keys */
#define KM_SYNC_KEYS_AT (2 * KM_SYNC_MAC_KEY_BYTES)

/* Encode sync (type QKDN_KEY_SYNC) and wrap it, with its tag over bits
 * (both MAC keys, then the keys: len bytes), into out, an encoded
 * KEY_SYNC_AUTH; the tag is also copied to tag. */
int km_sync_seal(const struct qkdn_msg *sync, const uint8_t *bits, size_t len,
                 struct qkdn_buf *out, uint8_t tag[16])
    __attribute__((warn_unused_result));

/* The KEY_SYNC that auth carries, decoded (not yet authenticated). */
int km_sync_unwrap(const struct qkdn_key_sync_auth *auth, struct qkdn_msg *sync,
                   struct qkdn_decode_error *err)
    __attribute__((warn_unused_result));

/* 0 if auth's tag authenticates its sync bytes and bits (len bytes, MAC key
 * first); QKDN_E_AUTH_FAILED otherwise. */
int km_sync_verify(const struct qkdn_key_sync_auth *auth, const uint8_t *bits,
                   size_t len) __attribute__((warn_unused_result));

/* The acknowledgement tag of a stored sync: over the sync's own tag, under
 * the acknowledgement key (bits + KM_SYNC_MAC_KEY_BYTES, 32 bytes). */
void km_sync_ack_tag(uint8_t ack[16], const uint8_t sync_tag[16],
                     const uint8_t *ack_key);
/* 0 if ack (ack_len bytes) is that tag; QKDN_E_AUTH_FAILED otherwise. */
int km_sync_ack_verify(const uint8_t *ack, size_t ack_len,
                       const uint8_t sync_tag[16], const uint8_t *ack_key)
    __attribute__((warn_unused_result));

/* The tag of a sync (and of a KME_KEYS): one-time Poly1305 under bits'
 * first 32 bytes (the MAC key) over msg, then the rest of bits (the
 * acknowledgement key and the keys: len bytes in all). */
void km_mac_bits_tag(uint8_t tag[16], const uint8_t *msg, size_t msg_len,
                     const uint8_t *bits, size_t len);

/* The same one-time Poly1305 MAC over any message: a KEY_RELAY_AUTH tag is
 * over exactly the encoded KEY_RELAY bytes under the hop's MAC key (the
 * first 32 bytes of its pool bits). The completion (RELAY_DONE_NOTIF) tag
 * of a hop is km_sync_ack_tag over the hop's KEY_RELAY_AUTH tag. */
void km_mac_tag(uint8_t tag[16], const uint8_t *msg, size_t len,
                const uint8_t *mac_key);

/* dst = a XOR b, n bytes (the one-time pad; dst may be a or b), a word
 * at a time: a relay hop pads kilobytes of keys twice. */
void km_xor(uint8_t *dst, const uint8_t *a, const uint8_t *b, size_t n);
/* 0 if tag (tag_len bytes) authenticates msg under mac_key;
 * QKDN_E_AUTH_FAILED otherwise. */
int km_mac_verify(const uint8_t *tag, size_t tag_len, const uint8_t *msg,
                  size_t len, const uint8_t *mac_key)
    __attribute__((warn_unused_result));

#endif
