/* Link key pool of one KM: the key blocks a QKD link delivered, split by
 * direction so that both ends can take key concurrently without talking.
 *
 * Direction rule: each block of B bytes is cut in half; the first half
 * belongs to keys started by the link end whose node ID sorts first, the
 * second half to keys started by the other end. Within a direction, key is
 * taken in block ID order, and a position is (block ID, offset in half).
 *
 * Out direction (keys this KM starts): a cursor, and a lease mark synced to
 * disk ahead of it: after any crash the cursor restarts past the lease, so
 * no bit is ever taken twice; at most one lease of key is wasted (64 KiB,
 * longer while key is taken fast: pool.c).
 * In direction (keys the peer starts): the peer names segments; they must
 * lie after the in-mark, which advances in the same transaction that stores
 * the keys. All functions expect the caller to hold the KM lock. */
#ifndef KM_POOL_H
#define KM_POOL_H

#include "qkdn_msg.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct km_pool {
	qkdn_name link;
	struct km_store *st;
	uint32_t block_bytes;
	uint32_t half;
	bool first_half_out; /* this node's ID sorts first on the link */
	size_t max_blocks;
	uint32_t lease_blocks; /* the next lease's length (pool.c) */
	uint32_t lease_min_blocks, lease_max_blocks;
	uint64_t lease_ms; /* qkdn_now_ms of the last lease synced */
	/* stored block IDs, ascending: ids[head .. head + n) */
	uint64_t *ids;
	size_t head, n, cap;
	struct km_pos out;   /* next unused position of the out direction */
	struct km_pos lease; /* synced: nothing at or after it has been used */
	struct km_pos in;    /* end of what the peer has used */
	struct km_block_cache {
		uint8_t *buf; /* one unsealed half block (sodium_malloc) */
		uint64_t id;
		int which; /* the half of the block: 0 or 1 */
		bool valid;
	} out_cache, in_cache;
	uint64_t blocks_received, blocks_dropped;
};

/* Load the pool of link from the store. */
int km_pool_init(struct km_pool *p, struct km_store *st, const char *link,
                 uint32_t block_bytes, uint64_t max_bytes, bool first_half_out)
    __attribute__((warn_unused_result));
void km_pool_fini(struct km_pool *p);

/* Add a block from the QKD module (stored sealed); drops the oldest block
 * when the pool is full. The same in two steps, so the block is written to
 * the store without the KM lock: km_store_block_put(), then, with the
 * lock, km_pool_note_block(). */
int km_pool_add_block(struct km_pool *p, uint64_t id, const uint8_t *bytes,
                      uint32_t len) __attribute__((warn_unused_result));
int km_pool_note_block(struct km_pool *p, uint64_t id)
    __attribute__((warn_unused_result));

/* Bytes left in each direction. */
uint64_t km_pool_out_avail(const struct km_pool *p);
uint64_t km_pool_in_avail(const struct km_pool *p);

/* Take len bytes of the out direction: fills segs (at most max, returns the
 * count in *nsegs) and copies the key bytes to out. The lease is advanced
 * (synced) first when needed. QKDN_E_INSUFFICIENT_KEY if there is not
 * enough. */
int km_pool_take_out(struct km_pool *p, uint32_t len, struct qkdn_segment *segs,
                     uint32_t max, uint32_t *nsegs, uint8_t *out)
    __attribute__((warn_unused_result));

/* The lease is synced to disk before any bit at or after it is used. So
 * that the sync (an fsync) does not run under the KM lock, the one thread
 * that takes from the out direction leases ahead: with the lock,
 * km_pool_lease_wanted (true: a take of len bytes needs *lease); without
 * it, km_pool_lease_write; with it again, km_pool_lease_set. Should the
 * pool have moved meanwhile, km_pool_take_out syncs what is still
 * missing itself. */
bool km_pool_lease_wanted(const struct km_pool *p, uint32_t len,
                          struct km_pos *lease);
int km_pool_lease_write(const struct km_pool *p, struct km_pos lease)
    __attribute__((warn_unused_result));
void km_pool_lease_set(struct km_pool *p, struct km_pos lease);

/* Give up the out direction up to the end of block id (the peer lacks it). */
void km_pool_skip_out_block(struct km_pool *p, uint64_t id);

/* Read the peer's segments from the in direction into out (total bytes
 * *len), checking they follow the in-mark and each other.
 * QKDN_E_BLOCK_MISSING (*missing = ID) if a block is absent: *later says
 * whether it is newer than every block held (may still arrive). */
int km_pool_read_in(struct km_pool *p, const struct qkdn_segments *segs,
                    uint8_t *out, uint32_t cap, uint32_t *len,
                    uint64_t *missing, bool *later)
    __attribute__((warn_unused_result));

/* Position just after the last segment (the new in-mark), and moving the
 * in-mark there once the keys are stored (never backwards). */
struct km_pos km_pool_segs_end(const struct qkdn_segments *segs);
void km_pool_advance_in(struct km_pool *p, struct km_pos end);
/* Claim segs for one consumer once its tag verified: true (and the in-mark
 * moved to their end) if they still start at or after the in-mark, false if
 * another message took positions there meanwhile (a replay raced the
 * original). Relays advance the in-mark before their keys move on. */
bool km_pool_claim_in(struct km_pool *p, const struct qkdn_segments *segs);

/* ID of the last block of which the in direction has used any part (0 if
 * none). */
uint64_t km_pool_in_used_through(const struct km_pool *p);

/* ID of the newest block held (0 if none). */
uint64_t km_pool_newest(const struct km_pool *p);

/* The last ID of the gap that block id (not held) lies in: just below the
 * next block held after it, or id itself if none is held after it. */
uint64_t km_pool_gap_end(const struct km_pool *p, uint64_t id);

/* Delete blocks both directions are done with. */
void km_pool_gc(struct km_pool *p);

/* Sync the lease to the exact cursor (clean stop: a restart wastes
 * nothing). */
int km_pool_save(struct km_pool *p);

#endif
