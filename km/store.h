/* Key store of one KM: an LMDB environment holding the link key blocks
 * (sealed), the pool marks, and the keys waiting for their destination
 * application (sealed), under a node storage key (libsodium AEAD).
 *
 * Commits are not synced one by one (MDB_NOSYNC | MDB_WRITEMAP: a commit
 * lands in the page cache, which survives a killed process, not a power
 * cut); what must survive a power cut is synced explicitly:
 * the pool lease marks (see pool.h) and the clean-shutdown flag. After a
 * power cut (a new boot ID with an unclean flag) every waiting key is
 * dropped, since a lost tombstone could otherwise let a key be supplied
 * twice. */
#ifndef KM_STORE_H
#define KM_STORE_H

#include "qkdn_msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct km_store;

/* A position in one direction of a link pool. */
struct km_pos {
	uint64_t blk;
	uint32_t off;
};

enum km_mark_kind { KM_MARK_OUT_LEASE = 'o', KM_MARK_IN = 'i' };

/* A key waiting for its destination application. */
struct km_key_record {
	qkdn_uuid id;
	const char *src_sae;
	const char *dst_sae;
	uint64_t expires_ms; /* Unix time */
	uint32_t len;
	const uint8_t *bytes;
};

int km_store_open(struct km_store **out, const char *dir, uint64_t map_bytes)
    __attribute__((warn_unused_result));
/* The same with the storage key at key_path (made there on first start);
 * NULL: <dir>/storage.key. A store whose key is still at <dir>/storage.key
 * keeps reading it there while key_path does not exist. */
int km_store_open_keyed(struct km_store **out, const char *dir,
                        const char *key_path, uint64_t map_bytes)
    __attribute__((warn_unused_result));
/* Close the store; with clean, first mark it cleanly closed (synced).
 * A KM that failed to start closes without marking. */
void km_store_close(struct km_store *st, bool clean);
/* True if the last run ended without km_store_close on this boot or an
 * earlier one (for logging). */
bool km_store_recovered(const struct km_store *st);

/* Link key blocks (len even). Each half is sealed on its own, one per
 * direction of the link (pool.h), so taking key unseals only the half
 * its direction uses. */
int km_store_block_put(struct km_store *st, const char *link, uint64_t id,
                       const uint8_t *bytes, uint32_t len)
    __attribute__((warn_unused_result));
/* Unseal block id into out (len bytes). QKDN_E_BLOCK_MISSING if absent. */
int km_store_block_get(struct km_store *st, const char *link, uint64_t id,
                       uint8_t *out, uint32_t len)
    __attribute__((warn_unused_result));
/* Unseal half `which` (0: the first len bytes, 1: the next) of block id,
 * a block of 2 * len bytes, into out. */
int km_store_block_half_get(struct km_store *st, const char *link, uint64_t id,
                            int which, uint8_t *out, uint32_t len)
    __attribute__((warn_unused_result));
int km_store_block_delete(struct km_store *st, const char *link, uint64_t id);
/* Delete n blocks in one transaction (absent ones are skipped). */
int km_store_blocks_delete(struct km_store *st, const char *link,
                           const uint64_t *ids, size_t n);
/* Call fn for every stored block ID of link in ascending order. */
int km_store_block_ids(struct km_store *st, const char *link,
                       void (*fn)(void *arg, uint64_t id), void *arg);

/* Pool marks; absent marks read as {0, 0}. sync forces it to disk. */
int km_store_mark_get(struct km_store *st, const char *link,
                      enum km_mark_kind kind, struct km_pos *out);
int km_store_mark_put(struct km_store *st, const char *link,
                      enum km_mark_kind kind, const struct km_pos *pos,
                      bool sync) __attribute__((warn_unused_result));

/* Store n waiting keys and the new in-mark of link in one transaction.
 * QKDN_E_REPLAY (and nothing stored) if any ID is already known. */
int km_store_keys_put(struct km_store *st, const struct km_key_record *recs,
                      size_t n, const char *link, const struct km_pos *in_mark)
    __attribute__((warn_unused_result));

/* Take the keys of n IDs for dst_sae: all or nothing. Each is replaced by a
 * tombstone in a committed transaction before this returns, and its bytes
 * are unsealed into keys[i] (bytes allocated in msg). Errors:
 * QKDN_E_UNKNOWN_KEY_ID, QKDN_E_ALREADY_SUPPLIED, QKDN_E_NOT_AUTHORISED
 * (another SAE's key); *bad is then the index of the offending ID. */
int km_store_keys_take(struct km_store *st, const char *dst_sae,
                       const qkdn_uuid *ids, size_t n, struct qkdn_msg *msg,
                       struct qkdn_key *keys, size_t *bad)
    __attribute__((warn_unused_result));
/* The same, and each key must have been requested by src_sae (NULL: any
 * source): another source's key is QKDN_E_NOT_AUTHORISED, and nothing is
 * taken. */
int km_store_keys_take_from(struct km_store *st, const char *src_sae,
                            const char *dst_sae, const qkdn_uuid *ids, size_t n,
                            struct qkdn_msg *msg, struct qkdn_key *keys,
                            size_t *bad) __attribute__((warn_unused_result));

/* Remove up to max expired keys and tombstones; returns how many. */
size_t km_store_sweep(struct km_store *st, uint64_t now_ms, size_t max);

/* Keys waiting for their destination. */
uint64_t km_store_pending(struct km_store *st);

/* Unix time in milliseconds. */
uint64_t km_wall_ms(void);

#endif
