#include "pool.h"

#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_log.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SRC "pool"
/* Each synced lease covers at least this much key of one direction; while
 * a lease lasts less than LEASE_FAST_MS the next is twice as long, up to
 * LEASE_MAX_BYTES, and a lease that lasted LEASE_SLOW_MS or more brings
 * the next back to LEASE_BYTES. So a busy link syncs about once a second
 * instead of every 64 KiB (an fsync each: milliseconds a hop with 512
 * keys), and a crash wastes at most about two seconds of key at the pace
 * it was being used, never less than 64 KiB. */
#define LEASE_BYTES     (64u * 1024u)
#define LEASE_MAX_BYTES (4u * 1024u * 1024u)
#define LEASE_FAST_MS   1000
#define LEASE_SLOW_MS   10000

static int
pos_cmp(struct km_pos a, struct km_pos b)
{
	if (a.blk != b.blk)
		return a.blk < b.blk ? -1 : 1;
	return a.off < b.off ? -1 : a.off > b.off;
}

/* Index (relative to head) of the first stored block with ID >= id. */
static size_t
lower_bound(const struct km_pool *p, uint64_t id)
{
	size_t lo = 0, hi = p->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p->ids[p->head + mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint64_t
id_at(const struct km_pool *p, size_t i)
{
	return p->ids[p->head + i];
}

/* Where a direction position really starts: block index and offset. */
static void
resolve(const struct km_pool *p, struct km_pos pos, size_t *i, uint32_t *off)
{
	*i = lower_bound(p, pos.blk);
	*off = *i < p->n && id_at(p, *i) == pos.blk ? pos.off : 0;
	if (*off >= p->half) {
		(*i)++;
		*off = 0;
	}
}

static uint64_t
avail(const struct km_pool *p, struct km_pos pos)
{
	size_t i;
	uint32_t off;
	resolve(p, pos, &i, &off);
	return i >= p->n ? 0 : (uint64_t)(p->n - i) * p->half - off;
}

uint64_t
km_pool_out_avail(const struct km_pool *p)
{
	return avail(p, p->out);
}

uint64_t
km_pool_in_avail(const struct km_pool *p)
{
	return avail(p, p->in);
}

static int
push_id(struct km_pool *p, uint64_t id)
{
	if (p->head + p->n == p->cap) {
		if (p->head > 0) {
			memmove(p->ids, p->ids + p->head,
			        p->n * sizeof(*p->ids));
			p->head = 0;
		} else {
			size_t cap = p->cap ? p->cap * 2 : 256;
			uint64_t *ids = realloc(p->ids, cap * sizeof(*ids));
			if (ids == NULL)
				return QKDN_E_NOMEM;
			p->ids = ids;
			p->cap = cap;
		}
	}
	/* blocks arrive in ID order; an older one is slotted in place */
	size_t i = lower_bound(p, id);
	uint64_t *base = p->ids + p->head;
	memmove(base + i + 1, base + i, (p->n - i) * sizeof(*base));
	base[i] = id;
	p->n++;
	return 0;
}

struct loader {
	struct km_pool *p;
	int rv;
};

static void
load_id(void *arg, uint64_t id)
{
	struct loader *ld = arg;
	if (ld->rv == 0)
		ld->rv = push_id(ld->p, id);
}

int
km_pool_init(struct km_pool *p, struct km_store *st, const char *link,
             uint32_t block_bytes, uint64_t max_bytes, bool first_half_out)
{
	int rv;
	memset(p, 0, sizeof(*p));
	if ((rv = qkdn_name_set(p->link, link)) != 0)
		return rv;
	p->st = st;
	p->block_bytes = block_bytes;
	p->half = block_bytes / 2;
	p->first_half_out = first_half_out;
	p->max_blocks =
	    max_bytes / block_bytes > 2 ? max_bytes / block_bytes : 2;
	p->lease_min_blocks = (LEASE_BYTES + p->half - 1) / p->half;
	p->lease_max_blocks = (LEASE_MAX_BYTES + p->half - 1) / p->half;
	p->lease_blocks = p->lease_min_blocks;
	p->out_cache.buf = sodium_malloc(p->half);
	p->in_cache.buf = sodium_malloc(p->half);
	p->out_cache.which = first_half_out ? 0 : 1;
	p->in_cache.which = first_half_out ? 1 : 0;
	if (p->out_cache.buf == NULL || p->in_cache.buf == NULL) {
		km_pool_fini(p);
		return QKDN_E_NOMEM;
	}
	struct loader ld = {p, 0};
	if ((rv = km_store_block_ids(st, link, load_id, &ld)) != 0 ||
	    (rv = ld.rv) != 0 ||
	    (rv = km_store_mark_get(st, link, KM_MARK_OUT_LEASE, &p->lease)) !=
	        0 ||
	    (rv = km_store_mark_get(st, link, KM_MARK_IN, &p->in)) != 0) {
		km_pool_fini(p);
		return rv;
	}
	/* whatever the last run leased may have been used: start past it */
	p->out = p->lease;
	return 0;
}

void
km_pool_fini(struct km_pool *p)
{
	sodium_free(p->out_cache.buf);
	sodium_free(p->in_cache.buf);
	free(p->ids);
	memset(p, 0, sizeof(*p));
}

/* Forget the k oldest blocks, deleting them from the store in one
 * transaction. */
static void
drop_oldest(struct km_pool *p, size_t k)
{
	if (k > p->n)
		k = p->n;
	if (k == 0)
		return;
	(void)km_store_blocks_delete(p->st, p->link, p->ids + p->head, k);
	for (size_t i = 0; i < k; i++) {
		uint64_t id = id_at(p, i);
		if (p->out_cache.id == id)
			p->out_cache.valid = false;
		if (p->in_cache.id == id)
			p->in_cache.valid = false;
	}
	p->head += k;
	p->n -= k;
}

int
km_pool_note_block(struct km_pool *p, uint64_t id)
{
	int rv = push_id(p, id);
	if (rv != 0)
		return rv;
	p->blocks_received++;
	if (p->n > p->max_blocks) {
		p->blocks_dropped += p->n - p->max_blocks;
		drop_oldest(p, p->n - p->max_blocks);
	}
	return 0;
}

int
km_pool_add_block(struct km_pool *p, uint64_t id, const uint8_t *bytes,
                  uint32_t len)
{
	int rv;
	if (len != p->block_bytes)
		return QKDN_E_BAD_REQUEST;
	if ((rv = km_store_block_put(p->st, p->link, id, bytes, len)) != 0)
		return rv;
	return km_pool_note_block(p, id);
}

/* The half of block id that c's direction uses, unsealed. */
static const uint8_t *
block(struct km_pool *p, struct km_block_cache *c, uint64_t id, int *rv)
{
	if (!c->valid || c->id != id) {
		c->valid = false;
		if ((*rv = km_store_block_half_get(p->st, p->link, id, c->which,
		                                   c->buf, p->half)) != 0)
			return NULL;
		c->id = id;
		c->valid = true;
	}
	return c->buf;
}

/* Where len bytes of the out direction from the cursor would lie: the
 * segments (if segs is not NULL; at most max) and the end position. */
static int
plan_out(const struct km_pool *p, uint32_t len, struct qkdn_segment *segs,
         uint32_t max, uint32_t *nsegs, struct km_pos *end)
{
	size_t i;
	uint32_t off, left = len, k = 0;
	resolve(p, p->out, &i, &off);
	while (left > 0) {
		if (segs != NULL && k == max)
			return QKDN_E_TOO_LARGE;
		uint32_t take = p->half - off < left ? p->half - off : left;
		if (segs != NULL)
			segs[k] = (struct qkdn_segment){id_at(p, i), off, take};
		*end = (struct km_pos){id_at(p, i), off + take};
		k++;
		left -= take;
		off += take;
		if (off == p->half && left > 0) {
			i++;
			off = 0;
		}
	}
	*nsegs = k;
	return 0;
}

bool
km_pool_lease_wanted(const struct km_pool *p, uint32_t len,
                     struct km_pos *lease)
{
	struct km_pos end;
	uint32_t n;
	if (len == 0 || km_pool_out_avail(p) < len ||
	    plan_out(p, len, NULL, 0, &n, &end) != 0 ||
	    pos_cmp(end, p->lease) <= 0)
		return false;
	*lease = (struct km_pos){end.blk + p->lease_blocks, 0};
	return true;
}

int
km_pool_lease_write(const struct km_pool *p, struct km_pos lease)
{
	return km_store_mark_put(p->st, p->link, KM_MARK_OUT_LEASE, &lease,
	                         true);
}

/* A new lease is synced: the next one's length follows the pace. */
static void
lease_moved(struct km_pool *p, struct km_pos lease)
{
	uint64_t now = qkdn_now_ms();
	p->lease = lease;
	if (p->lease_ms != 0 && now - p->lease_ms < LEASE_FAST_MS &&
	    p->lease_blocks < p->lease_max_blocks)
		p->lease_blocks *= 2;
	else if (p->lease_ms != 0 && now - p->lease_ms >= LEASE_SLOW_MS)
		p->lease_blocks = p->lease_min_blocks;
	if (p->lease_blocks > p->lease_max_blocks)
		p->lease_blocks = p->lease_max_blocks;
	p->lease_ms = now;
}

void
km_pool_lease_set(struct km_pool *p, struct km_pos lease)
{
	if (pos_cmp(lease, p->lease) > 0)
		lease_moved(p, lease);
}

int
km_pool_take_out(struct km_pool *p, uint32_t len, struct qkdn_segment *segs,
                 uint32_t max, uint32_t *nsegs, uint8_t *out)
{
	struct km_pos end;
	uint32_t k;
	int rv = 0;
	if (km_pool_out_avail(p) < len)
		return QKDN_E_INSUFFICIENT_KEY;
	if (len == 0) {
		/* no segment, so no end position to move the cursor to */
		*nsegs = 0;
		return 0;
	}
	/* plan the segments first: nothing is taken if any step fails */
	if ((rv = plan_out(p, len, segs, max, &k, &end)) != 0)
		return rv;
	if (pos_cmp(end, p->lease) > 0) {
		/* not leased ahead by the caller: sync here */
		struct km_pos lease = {end.blk + p->lease_blocks, 0};
		if ((rv = km_pool_lease_write(p, lease)) != 0)
			return rv;
		lease_moved(p, lease);
	}
	uint32_t at = 0;
	for (uint32_t s = 0; s < k; s++) {
		const uint8_t *b =
		    block(p, &p->out_cache, segs[s].block_id, &rv);
		if (b == NULL) {
			sodium_memzero(out, at);
			return rv;
		}
		memcpy(out + at, b + segs[s].offset, segs[s].len);
		at += segs[s].len;
	}
	p->out = end;
	*nsegs = k;
	return 0;
}

void
km_pool_skip_out_block(struct km_pool *p, uint64_t id)
{
	struct km_pos next = {id + 1, 0};
	if (pos_cmp(p->out, next) < 0)
		p->out = next;
}

struct km_pos
km_pool_segs_end(const struct qkdn_segments *segs)
{
	const struct qkdn_segment *last = &segs->v[segs->n - 1];
	return (struct km_pos){last->block_id, last->offset + last->len};
}

void
km_pool_advance_in(struct km_pool *p, struct km_pos end)
{
	if (pos_cmp(end, p->in) > 0)
		p->in = end;
}

uint64_t
km_pool_newest(const struct km_pool *p)
{
	return p->n > 0 ? id_at(p, p->n - 1) : 0;
}

uint64_t
km_pool_gap_end(const struct km_pool *p, uint64_t id)
{
	size_t i = id < UINT64_MAX ? lower_bound(p, id + 1) : p->n;
	return i < p->n ? id_at(p, i) - 1 : id;
}

uint64_t
km_pool_in_used_through(const struct km_pool *p)
{
	return p->in.off > 0 ? p->in.blk : p->in.blk - (p->in.blk > 0);
}

int
km_pool_read_in(struct km_pool *p, const struct qkdn_segments *segs,
                uint8_t *out, uint32_t cap, uint32_t *len, uint64_t *missing,
                bool *later)
{
	struct km_pos prev = p->in;
	uint32_t at = 0;
	int rv = 0;
	for (uint32_t s = 0; s < segs->n; s++) {
		const struct qkdn_segment *g = &segs->v[s];
		struct km_pos start = {g->block_id, g->offset};
		if (pos_cmp(start, prev) < 0) {
			rv = QKDN_E_REPLAY;
			goto fail;
		}
		if (g->offset >= p->half || g->len > p->half - g->offset ||
		    g->len > cap - at) {
			rv = QKDN_E_RANGE;
			goto fail;
		}
		size_t i = lower_bound(p, g->block_id);
		if (i == p->n || id_at(p, i) != g->block_id) {
			*missing = g->block_id;
			*later = p->n == 0 || g->block_id > id_at(p, p->n - 1);
			rv = QKDN_E_BLOCK_MISSING;
			goto fail;
		}
		const uint8_t *b = block(p, &p->in_cache, g->block_id, &rv);
		if (b == NULL)
			goto fail;
		memcpy(out + at, b + g->offset, g->len);
		at += g->len;
		prev = (struct km_pos){g->block_id, g->offset + g->len};
	}
	*len = at;
	return 0;
fail:
	sodium_memzero(out, at);
	return rv;
}

void
km_pool_gc(struct km_pool *p)
{
	uint64_t lim = p->out.blk < p->in.blk ? p->out.blk : p->in.blk;
	size_t k = 0;
	while (k < 4096 && k < p->n && id_at(p, k) < lim)
		k++;
	drop_oldest(p, k);
}

int
km_pool_save(struct km_pool *p)
{
	int rv =
	    km_store_mark_put(p->st, p->link, KM_MARK_OUT_LEASE, &p->out, true);
	if (rv == 0)
		p->lease = p->out;
	return rv;
}

bool
km_pool_claim_in(struct km_pool *p, const struct qkdn_segments *segs)
{
	if (segs->n == 0)
		return false;
	struct km_pos start = {segs->v[0].block_id, segs->v[0].offset};
	if (pos_cmp(start, p->in) < 0)
		return false;
	p->in = km_pool_segs_end(segs);
	return true;
}
