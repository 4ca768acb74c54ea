/* Link key pools: both ends of a link split each block by direction without
 * talking, so what one end takes out is what the other reads in and the two
 * directions never share a byte; the in direction refuses replays, ranges
 * and blocks it lacks; the out direction spans blocks in ID order, leases
 * ahead so a crash never reuses key (and a clean stop wastes none), and the
 * pool skips, collects and caps blocks. */
#include "pool.h"
#include "qkdn_err.h"
#include "qkdn_msg.h"
#include "store.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#define MAP_BYTES (16u << 20)
#define BB        4096u /* block bytes */
#define HALF      (BB / 2)
#define BIG       (1ull << 30) /* a pool cap never reached */
#define LINK      "nodeA-nodeB"
#define NSEG      64

struct fx {
	char dir[2][64];
	struct km_store *st[2];
	struct km_pool a, b; /* a: node A (first half out), b: node B */
};

static void
rm_tree(const char *dir)
{
	char path[512];
	DIR *d = opendir(dir);
	struct dirent *e;
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	for (int i = 0; i < 2; i++) {
		snprintf(f->dir[i], sizeof(f->dir[i]), "/tmp/qkdn-pool-XXXXXX");
		if (mkdtemp(f->dir[i]) == NULL ||
		    km_store_open(&f->st[i], f->dir[i], MAP_BYTES) != 0)
			return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	km_pool_fini(&f->a); /* safe on a zeroed or finished pool */
	km_pool_fini(&f->b);
	for (int i = 0; i < 2; i++) {
		km_store_close(f->st[i], true);
		rm_tree(f->dir[i]);
	}
	free(f);
	return 0;
}

/* The bytes the QKD link delivers to both ends as block id. */
static void
block_bytes(uint64_t id, uint8_t out[BB])
{
	uint8_t seed[randombytes_SEEDBYTES] = {0};
	memcpy(seed, &id, sizeof(id));
	randombytes_buf_deterministic(out, BB, seed);
}

static void
add(struct km_pool *p, uint64_t id)
{
	uint8_t b[BB];
	block_bytes(id, b);
	assert_int_equal(km_pool_add_block(p, id, b, BB), 0);
}

static void
init_pools(struct fx *f, uint64_t max_bytes)
{
	assert_int_equal(
	    km_pool_init(&f->a, f->st[0], LINK, BB, max_bytes, true), 0);
	assert_int_equal(
	    km_pool_init(&f->b, f->st[1], LINK, BB, max_bytes, false), 0);
}

/* bytes are exactly the given half of the blocks the segments name */
static void
assert_from_half(const struct qkdn_segment *segs, uint32_t n,
                 const uint8_t *bytes, bool first_half)
{
	uint8_t b[BB];
	uint32_t at = 0;
	for (uint32_t i = 0; i < n; i++) {
		assert_true(segs[i].offset + segs[i].len <= HALF);
		block_bytes(segs[i].block_id, b);
		assert_memory_equal(
		    bytes + at, b + (first_half ? 0 : HALF) + segs[i].offset,
		    segs[i].len);
		at += segs[i].len;
	}
}

static void
assert_seg(const struct qkdn_segment *s, uint64_t id, uint32_t off,
           uint32_t len)
{
	assert_int_equal(s->block_id, id);
	assert_int_equal(s->offset, off);
	assert_int_equal(s->len, len);
}

static int
pos_cmp(struct km_pos a, struct km_pos b)
{
	if (a.blk != b.blk)
		return a.blk < b.blk ? -1 : 1;
	return a.off < b.off ? -1 : a.off > b.off;
}

static void
test_direction_split(void **state)
{
	struct fx *f = *state;
	struct qkdn_segment sa[NSEG], sb[NSEG];
	uint32_t na = 0, nb = 0, len = 0;
	uint8_t outa[3000], outb[2500], ina[2500], inb[3000];
	uint64_t missing = 0;
	bool later = false;

	init_pools(f, BIG);
	for (uint64_t id = 1; id <= 8; id++) {
		add(&f->a, id);
		add(&f->b, id);
	}
	assert_int_equal(km_pool_out_avail(&f->a), 8 * HALF);
	assert_int_equal(km_pool_out_avail(&f->b), 8 * HALF);
	assert_int_equal(km_pool_in_avail(&f->a), 8 * HALF);
	assert_int_equal(km_pool_in_avail(&f->b), 8 * HALF);

	/* A -> B */
	assert_int_equal(
	    km_pool_take_out(&f->a, sizeof(outa), sa, NSEG, &na, outa), 0);
	assert_int_equal(na, 2);
	assert_seg(&sa[0], 1, 0, HALF);
	assert_seg(&sa[1], 2, 0, sizeof(outa) - HALF);
	assert_from_half(sa, na, outa, true);
	struct qkdn_segments ga = {na, sa};
	assert_int_equal(km_pool_read_in(&f->b, &ga, inb, sizeof(inb), &len,
	                                 &missing, &later),
	                 0);
	assert_int_equal(len, sizeof(outa));
	assert_memory_equal(inb, outa, sizeof(outa));
	f->b.in = km_pool_segs_end(&ga);

	/* B -> A */
	assert_int_equal(
	    km_pool_take_out(&f->b, sizeof(outb), sb, NSEG, &nb, outb), 0);
	assert_int_equal(nb, 2);
	assert_seg(&sb[0], 1, 0, HALF);
	assert_seg(&sb[1], 2, 0, sizeof(outb) - HALF);
	assert_from_half(sb, nb, outb, false);
	struct qkdn_segments gb = {nb, sb};
	assert_int_equal(km_pool_read_in(&f->a, &gb, ina, sizeof(ina), &len,
	                                 &missing, &later),
	                 0);
	assert_int_equal(len, sizeof(outb));
	assert_memory_equal(ina, outb, sizeof(outb));
	f->a.in = km_pool_segs_end(&gb);

	/* the same segment names differ in key: A's came from the first
	 * halves, B's from the second, so no byte is shared */
	assert_memory_not_equal(outa, outb, sizeof(outb));
	uint8_t blk[BB];
	for (uint64_t id = 1; id <= 2; id++) {
		block_bytes(id, blk);
		for (uint32_t at = 0; at + 16 <= sizeof(outa); at += 16)
			assert_null(memmem(blk + HALF, HALF, outa + at, 16));
		for (uint32_t at = 0; at + 16 <= sizeof(outb); at += 16)
			assert_null(memmem(blk, HALF, outb + at, 16));
	}

	/* both ends agree on what is left in each direction */
	assert_int_equal(km_pool_out_avail(&f->a), 8 * HALF - sizeof(outa));
	assert_int_equal(km_pool_in_avail(&f->b), 8 * HALF - sizeof(outa));
	assert_int_equal(km_pool_out_avail(&f->b), 8 * HALF - sizeof(outb));
	assert_int_equal(km_pool_in_avail(&f->a), 8 * HALF - sizeof(outb));
}

static void
test_in_positions(void **state)
{
	struct fx *f = *state;
	struct qkdn_segment s[NSEG], bad[2];
	struct qkdn_segments g = {0, s}, gbad = {0, bad};
	uint32_t n = 0, len = 0;
	uint8_t out[200], in[200];
	uint64_t missing = 0;
	bool later = true;

	init_pools(f, BIG);
	for (uint64_t id = 1; id <= 4; id++) {
		add(&f->a, id);
		if (id != 3)
			add(&f->b, id); /* B never got block 3 */
	}

	assert_int_equal(km_pool_take_out(&f->a, 100, s, NSEG, &n, out), 0);
	g.n = n;
	assert_int_equal(
	    km_pool_read_in(&f->b, &g, in, sizeof(in), &len, &missing, &later),
	    0);
	assert_memory_equal(in, out, 100);
	/* the KM stores the keys, then advances the in-mark */
	f->b.in = km_pool_segs_end(&g);
	assert_int_equal(f->b.in.blk, 1);
	assert_int_equal(f->b.in.off, 100);
	assert_int_equal(
	    km_pool_read_in(&f->b, &g, in, sizeof(in), &len, &missing, &later),
	    QKDN_E_REPLAY);

	/* the next take starts exactly at the mark and is accepted */
	assert_int_equal(km_pool_take_out(&f->a, 50, s, NSEG, &n, out), 0);
	assert_seg(&s[0], 1, 100, 50);
	g.n = n;
	assert_int_equal(
	    km_pool_read_in(&f->b, &g, in, sizeof(in), &len, &missing, &later),
	    0);
	assert_memory_equal(in, out, 50);
	f->b.in = km_pool_segs_end(&g);

	/* overlapping the used part, or going back within one request */
	gbad.n = 1;
	bad[0] = (struct qkdn_segment){1, 149, 10};
	assert_int_equal(km_pool_read_in(&f->b, &gbad, in, sizeof(in), &len,
	                                 &missing, &later),
	                 QKDN_E_REPLAY);
	gbad.n = 2;
	bad[0] = (struct qkdn_segment){1, 200, 10};
	bad[1] = (struct qkdn_segment){1, 205, 5};
	assert_int_equal(km_pool_read_in(&f->b, &gbad, in, sizeof(in), &len,
	                                 &missing, &later),
	                 QKDN_E_REPLAY);

	/* out of range: past the half, running over it, or over cap */
	gbad.n = 1;
	bad[0] = (struct qkdn_segment){2, HALF, 1};
	assert_int_equal(km_pool_read_in(&f->b, &gbad, in, sizeof(in), &len,
	                                 &missing, &later),
	                 QKDN_E_RANGE);
	bad[0] = (struct qkdn_segment){2, HALF - 10, 11};
	assert_int_equal(km_pool_read_in(&f->b, &gbad, in, sizeof(in), &len,
	                                 &missing, &later),
	                 QKDN_E_RANGE);
	bad[0] = (struct qkdn_segment){2, 0, 20};
	assert_int_equal(
	    km_pool_read_in(&f->b, &gbad, in, 19, &len, &missing, &later),
	    QKDN_E_RANGE);

	/* a block B lacks among those it holds: it will not come */
	bad[0] = (struct qkdn_segment){3, 0, 10};
	later = true;
	assert_int_equal(km_pool_read_in(&f->b, &gbad, in, sizeof(in), &len,
	                                 &missing, &later),
	                 QKDN_E_BLOCK_MISSING);
	assert_int_equal(missing, 3);
	assert_false(later);
	/* one newer than all B holds: it may still arrive */
	bad[0] = (struct qkdn_segment){9, 0, 10};
	assert_int_equal(km_pool_read_in(&f->b, &gbad, in, sizeof(in), &len,
	                                 &missing, &later),
	                 QKDN_E_BLOCK_MISSING);
	assert_int_equal(missing, 9);
	assert_true(later);
	/* a failed read leaves no key bytes behind */
	gbad.n = 2;
	bad[0] = (struct qkdn_segment){2, 0, 10};
	bad[1] = (struct qkdn_segment){3, 0, 10};
	memset(in, 0xa5, sizeof(in));
	assert_int_equal(km_pool_read_in(&f->b, &gbad, in, sizeof(in), &len,
	                                 &missing, &later),
	                 QKDN_E_BLOCK_MISSING);
	assert_int_equal(missing, 3);
	assert_false(later);
	for (int i = 0; i < 10; i++)
		assert_int_equal(in[i], 0);

	/* none of that moved the mark: the next real take still reads */
	assert_int_equal(f->b.in.off, 150);
	assert_int_equal(km_pool_take_out(&f->a, 30, s, NSEG, &n, out), 0);
	g.n = n;
	assert_int_equal(
	    km_pool_read_in(&f->b, &g, in, sizeof(in), &len, &missing, &later),
	    0);
	assert_memory_equal(in, out, 30);
}

static void
test_take_spans_blocks(void **state)
{
	struct fx *f = *state;
	struct qkdn_segment s[NSEG], all[NSEG];
	uint32_t n = 0, nall = 0, len = 0;
	uint8_t out[5000], rest[3182], in[8192];
	uint64_t missing = 0;
	bool later = false;

	init_pools(f, BIG);
	/* IDs are not indices, and a late block is slotted in ID order */
	static const uint64_t ids[] = {10, 20, 40, 30};
	for (int i = 0; i < 4; i++) {
		add(&f->a, ids[i]);
		add(&f->b, ids[i]);
	}
	assert_int_equal(km_pool_out_avail(&f->a), 4 * HALF);

	assert_int_equal(km_pool_take_out(&f->a, 5000, s, NSEG, &n, out), 0);
	assert_int_equal(n, 3);
	assert_seg(&s[0], 10, 0, HALF);
	assert_seg(&s[1], 20, 0, HALF);
	assert_seg(&s[2], 30, 0, 5000 - 2 * HALF);
	assert_from_half(s, n, out, true);
	assert_int_equal(km_pool_out_avail(&f->a), 4 * HALF - 5000);
	memcpy(all, s, n * sizeof(*s));
	nall = n;

	/* taking nothing names no segment and moves nothing */
	n = 99;
	assert_int_equal(km_pool_take_out(&f->a, 0, s, NSEG, &n, out), 0);
	assert_int_equal(n, 0);
	assert_int_equal(km_pool_out_avail(&f->a), 4 * HALF - 5000);

	assert_int_equal(km_pool_take_out(&f->a, 10, s, NSEG, &n, out), 0);
	assert_int_equal(n, 1);
	assert_seg(&s[0], 30, 5000 - 2 * HALF, 10);
	assert_from_half(s, n, out, true);
	assert_int_equal(km_pool_out_avail(&f->a), 4 * HALF - 5010);
	all[nall++] = s[0];

	/* not enough: refused, nothing consumed */
	assert_int_equal(km_pool_take_out(&f->a, 3183, s, NSEG, &n, rest),
	                 QKDN_E_INSUFFICIENT_KEY);
	assert_int_equal(km_pool_out_avail(&f->a), 3182);
	/* more segments than the caller has room for: same */
	assert_int_equal(km_pool_take_out(&f->a, 2000, s, 1, &n, rest),
	                 QKDN_E_TOO_LARGE);
	assert_int_equal(km_pool_out_avail(&f->a), 3182);

	assert_int_equal(km_pool_take_out(&f->a, 3182, s, NSEG, &n, rest), 0);
	assert_int_equal(n, 2);
	assert_seg(&s[0], 30, 5010 - 2 * HALF, HALF - (5010 - 2 * HALF));
	assert_seg(&s[1], 40, 0, HALF);
	assert_from_half(s, n, rest, true);
	assert_int_equal(km_pool_out_avail(&f->a), 0);
	all[nall++] = s[0];
	all[nall++] = s[1];
	assert_int_equal(km_pool_take_out(&f->a, 1, s, NSEG, &n, rest),
	                 QKDN_E_INSUFFICIENT_KEY);

	/* B reads the whole first half of every block in one go */
	struct qkdn_segments g = {nall, all};
	assert_int_equal(
	    km_pool_read_in(&f->b, &g, in, sizeof(in), &len, &missing, &later),
	    0);
	assert_int_equal(len, 4 * HALF);
	assert_from_half(all, nall, in, true);
}

/* Where a segment starts, as a pool position. */
static struct km_pos
seg_start(const struct qkdn_segment *s)
{
	return (struct km_pos){s->block_id, s->offset};
}

static void
test_lease_crash_and_clean_stop(void **state)
{
	struct fx *f = *state;
	struct qkdn_segment s[NSEG];
	struct qkdn_segments g = {0, s};
	uint32_t n = 0;
	uint8_t out[3000];
	struct km_pos end = {0, 0}, mark;

	assert_int_equal(km_pool_init(&f->a, f->st[0], LINK, BB, BIG, true), 0);
	uint32_t lease_blocks = f->a.lease_blocks;
	assert_true(lease_blocks >= 1);
	for (uint64_t id = 1; id <= 3 * lease_blocks + 10; id++)
		add(&f->a, id);

	/* hand out some key */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(
		    km_pool_take_out(&f->a, sizeof(out), s, NSEG, &n, out), 0);
		assert_from_half(s, n, out, true);
		g.n = n;
		struct km_pos e = km_pool_segs_end(&g);
		assert_true(pos_cmp(seg_start(&s[0]), end) >= 0);
		end = e;
	}
	/* the lease on disk covers everything handed out, and is bounded */
	assert_int_equal(
	    km_store_mark_get(f->st[0], LINK, KM_MARK_OUT_LEASE, &mark), 0);
	assert_true(pos_cmp(mark, end) > 0);
	assert_true(mark.blk <= end.blk + lease_blocks);

	/* crash: no km_pool_save */
	km_pool_fini(&f->a);
	assert_int_equal(km_pool_init(&f->a, f->st[0], LINK, BB, BIG, true), 0);
	assert_int_equal(km_pool_take_out(&f->a, 100, s, NSEG, &n, out), 0);
	assert_int_equal(n, 1);
	/* strictly after anything handed out, in a block never touched */
	assert_true(pos_cmp(seg_start(&s[0]), end) > 0);
	assert_true(s[0].block_id > end.blk);
	assert_true(s[0].block_id <= end.blk + lease_blocks);
	assert_from_half(s, n, out, true);
	g.n = n;
	end = km_pool_segs_end(&g);
	uint64_t avail = km_pool_out_avail(&f->a);

	/* clean stop: the next take continues exactly at the end */
	assert_int_equal(km_pool_save(&f->a), 0);
	assert_int_equal(
	    km_store_mark_get(f->st[0], LINK, KM_MARK_OUT_LEASE, &mark), 0);
	assert_int_equal(mark.blk, end.blk);
	assert_int_equal(mark.off, end.off);
	km_pool_fini(&f->a);
	assert_int_equal(km_pool_init(&f->a, f->st[0], LINK, BB, BIG, true), 0);
	assert_int_equal(km_pool_out_avail(&f->a), avail);
	assert_int_equal(km_pool_take_out(&f->a, 100, s, NSEG, &n, out), 0);
	assert_int_equal(n, 1);
	assert_seg(&s[0], end.blk, end.off, 100);
	assert_from_half(s, n, out, true);
	assert_int_equal(km_pool_out_avail(&f->a), avail - 100);

	/* and a crash after that still never goes back */
	g.n = n;
	end = km_pool_segs_end(&g);
	km_pool_fini(&f->a);
	assert_int_equal(km_pool_init(&f->a, f->st[0], LINK, BB, BIG, true), 0);
	assert_int_equal(km_pool_take_out(&f->a, 100, s, NSEG, &n, out), 0);
	assert_true(pos_cmp(seg_start(&s[0]), end) > 0);
}

/* A KM process killed mid-run (store never closed): the next run never
 * hands out a byte the dead one did. */
/* Taken fast (many leases a second), each lease is twice the last, up to
 * the cap; the lease on disk still covers everything handed out, and a
 * restart still begins past it. */
static void
test_lease_grows_when_fast(void **state)
{
	struct fx *f = *state;
	struct qkdn_segment s[NSEG];
	struct qkdn_segments g = {0, s};
	uint32_t n = 0;
	uint8_t out[BB / 2];
	struct km_pos end = {0, 0}, mark;

	assert_int_equal(km_pool_init(&f->a, f->st[0], LINK, BB, BIG, true), 0);
	uint32_t first = f->a.lease_blocks;
	for (uint64_t id = 1; id <= 4 * (uint64_t)first + 10; id++)
		add(&f->a, id);
	for (uint32_t i = 0; i < 3 * first; i++) {
		assert_int_equal(
		    km_pool_take_out(&f->a, sizeof(out), s, NSEG, &n, out), 0);
		g.n = n;
		end = km_pool_segs_end(&g);
		assert_int_equal(
		    km_store_mark_get(f->st[0], LINK, KM_MARK_OUT_LEASE, &mark),
		    0);
		assert_true(pos_cmp(mark, end) > 0);
		assert_true(mark.blk <= end.blk + f->a.lease_blocks);
	}
	assert_true(f->a.lease_blocks > first);
	assert_true(f->a.lease_blocks <= f->a.lease_max_blocks);

	/* crash: the next take starts past the grown lease */
	km_pool_fini(&f->a);
	assert_int_equal(km_pool_init(&f->a, f->st[0], LINK, BB, BIG, true), 0);
	assert_int_equal(f->a.lease_blocks, first);
	assert_int_equal(km_pool_take_out(&f->a, 100, s, NSEG, &n, out), 0);
	assert_true(pos_cmp(seg_start(&s[0]), mark) >= 0);
	km_pool_fini(&f->a);
}

static void
test_lease_killed_process(void **state)
{
	struct fx *f = *state;
	struct qkdn_segment s[NSEG];
	struct qkdn_segments g = {0, s};
	uint32_t n = 0;
	uint8_t out[BB], seen[2][BB];
	int fds[2];

	km_store_close(f->st[0], true);
	f->st[0] = NULL;
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct km_store *st;
		struct km_pool p;
		uint8_t b[BB];
		close(fds[0]);
		if (km_store_open(&st, f->dir[0], MAP_BYTES) != 0 ||
		    km_pool_init(&p, st, LINK, BB, BIG, true) != 0)
			_exit(1);
		for (uint64_t id = 1; id <= 3 * p.lease_blocks + 10; id++) {
			block_bytes(id, b);
			if (km_pool_add_block(&p, id, b, BB) != 0)
				_exit(1);
		}
		for (int i = 0; i < 2; i++) {
			if (km_pool_take_out(&p, 3000, s, NSEG, &n, out) != 0 ||
			    write(fds[1], &n, sizeof(n)) != sizeof(n) ||
			    write(fds[1], s, n * sizeof(*s)) !=
			        (ssize_t)(n * sizeof(*s)) ||
			    write(fds[1], out, 3000) != 3000)
				_exit(1);
		}
		_exit(0); /* killed: no save, no close */
	}
	close(fds[1]);
	struct km_pos end = {0, 0};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(read(fds[0], &n, sizeof(n)), sizeof(n));
		assert_true(n > 0 && n <= NSEG);
		assert_int_equal(read(fds[0], s, n * sizeof(*s)),
		                 n * sizeof(*s));
		assert_int_equal(read(fds[0], seen[i], 3000), 3000);
		g.n = n;
		end = km_pool_segs_end(&g);
	}
	close(fds[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	assert_int_equal(km_store_open(&f->st[0], f->dir[0], MAP_BYTES), 0);
	assert_true(km_store_recovered(f->st[0]));
	assert_int_equal(km_pool_init(&f->a, f->st[0], LINK, BB, BIG, true), 0);
	assert_int_equal(km_pool_take_out(&f->a, BB, s, NSEG, &n, out), 0);
	assert_true(pos_cmp(seg_start(&s[0]), end) > 0);
	assert_from_half(s, n, out, true);
	for (int i = 0; i < 2; i++)
		for (uint32_t at = 0; at + 16 <= 3000; at += 16)
			assert_null(memmem(out, BB, seen[i] + at, 16));
}

static void
test_skip_out_block(void **state)
{
	struct fx *f = *state;
	struct qkdn_segment s[NSEG];
	uint32_t n = 0;
	uint8_t out[100];

	init_pools(f, BIG);
	for (uint64_t id = 1; id <= 4; id++)
		add(&f->a, id);
	assert_int_equal(km_pool_take_out(&f->a, 100, s, NSEG, &n, out), 0);
	assert_seg(&s[0], 1, 0, 100);

	km_pool_skip_out_block(&f->a, 1);
	assert_int_equal(km_pool_out_avail(&f->a), 3 * HALF);
	assert_int_equal(km_pool_take_out(&f->a, 10, s, NSEG, &n, out), 0);
	assert_seg(&s[0], 2, 0, 10);
	assert_from_half(s, n, out, true);

	/* skipping a block already passed never moves back */
	km_pool_skip_out_block(&f->a, 1);
	assert_int_equal(km_pool_take_out(&f->a, 10, s, NSEG, &n, out), 0);
	assert_seg(&s[0], 2, 10, 10);

	/* skipping ahead gives up the rest up to that block's end */
	km_pool_skip_out_block(&f->a, 3);
	assert_int_equal(km_pool_out_avail(&f->a), HALF);
	assert_int_equal(km_pool_take_out(&f->a, 10, s, NSEG, &n, out), 0);
	assert_seg(&s[0], 4, 0, 10);
	assert_from_half(s, n, out, true);
}

/* What a receiver names to a sender that used a block it lacks: the whole
 * gap up to the next block it holds, so one round trip skips it all. */
static void
test_gap_end(void **state)
{
	struct fx *f = *state;
	init_pools(f, BIG);
	assert_int_equal(km_pool_gap_end(&f->b, 7), 7); /* nothing held */
	for (uint64_t id = 10; id <= 11; id++)
		add(&f->b, id);
	for (uint64_t id = 15; id <= 16; id++)
		add(&f->b, id);
	assert_int_equal(km_pool_gap_end(&f->b, 5), 9);   /* before all */
	assert_int_equal(km_pool_gap_end(&f->b, 12), 14); /* in a gap */
	assert_int_equal(km_pool_gap_end(&f->b, 14), 14);
	assert_int_equal(km_pool_gap_end(&f->b, 17), 17); /* after all */
	assert_int_equal(km_pool_gap_end(&f->b, UINT64_MAX), UINT64_MAX);
}

static void
collect_id(void *arg, uint64_t id)
{
	uint64_t *v = arg;
	v[++v[0]] = id;
}

static void
assert_stored_ids(struct km_store *st, const uint64_t *want, size_t n)
{
	uint64_t got[32] = {0};
	assert_int_equal(km_store_block_ids(st, LINK, collect_id, got), 0);
	assert_int_equal(got[0], n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(got[i + 1], want[i]);
}

static void
test_gc(void **state)
{
	struct fx *f = *state;
	struct qkdn_segment s[NSEG];
	uint32_t n = 0;
	uint8_t out[2 * HALF + 10], b[BB];

	init_pools(f, BIG);
	for (uint64_t id = 1; id <= 6; id++)
		add(&f->a, id);
	assert_int_equal(km_pool_take_out(&f->a, sizeof(out), s, NSEG, &n, out),
	                 0);
	assert_int_equal(f->a.out.blk, 3);

	/* the peer has used nothing: every block is still needed */
	km_pool_gc(&f->a);
	assert_int_equal(f->a.n, 6);
	assert_stored_ids(f->st[0], (const uint64_t[]){1, 2, 3, 4, 5, 6}, 6);

	/* the peer is in block 2: only block 1 is done both ways */
	f->a.in = (struct km_pos){2, 5};
	km_pool_gc(&f->a);
	assert_int_equal(f->a.n, 5);
	assert_int_equal(km_store_block_get(f->st[0], LINK, 1, b, BB),
	                 QKDN_E_BLOCK_MISSING);
	assert_stored_ids(f->st[0], (const uint64_t[]){2, 3, 4, 5, 6}, 5);

	/* the peer is past our cursor: our cursor's block stays */
	f->a.in = (struct km_pos){5, 0};
	km_pool_gc(&f->a);
	assert_int_equal(f->a.n, 4);
	assert_stored_ids(f->st[0], (const uint64_t[]){3, 4, 5, 6}, 4);

	/* the pool still works where it was */
	assert_int_equal(km_pool_out_avail(&f->a), 4 * HALF - 10);
	assert_int_equal(km_pool_take_out(&f->a, 10, s, NSEG, &n, out), 0);
	assert_seg(&s[0], 3, 10, 10);
	assert_from_half(s, n, out, true);
	assert_int_equal(km_pool_in_avail(&f->a), 2 * HALF);
}

static void
test_cap_and_add(void **state)
{
	struct fx *f = *state;
	struct qkdn_segment s[NSEG], bad = {1, 0, 10};
	struct qkdn_segments g = {1, &bad};
	uint32_t n = 0, len = 0;
	uint8_t out[100], b[BB];
	uint64_t missing = 0;
	bool later = true;

	init_pools(f, 4 * BB);
	block_bytes(1, b);
	assert_int_equal(km_pool_add_block(&f->a, 1, b, BB - 1),
	                 QKDN_E_BAD_REQUEST);
	assert_int_equal(f->a.n, 0);
	for (uint64_t id = 1; id <= 6; id++) {
		add(&f->a, id);
		add(&f->b, id);
	}
	/* a block delivered twice is refused and counted once */
	assert_int_equal(km_pool_add_block(&f->a, 6, b, BB), QKDN_E_REPLAY);

	/* the oldest two went, from memory and from the store */
	assert_int_equal(f->a.n, 4);
	assert_int_equal(f->a.blocks_received, 6);
	assert_int_equal(f->a.blocks_dropped, 2);
	assert_int_equal(km_pool_out_avail(&f->a), 4 * HALF);
	assert_stored_ids(f->st[0], (const uint64_t[]){3, 4, 5, 6}, 4);
	assert_int_equal(km_pool_take_out(&f->a, 10, s, NSEG, &n, out), 0);
	assert_seg(&s[0], 3, 0, 10);
	assert_from_half(s, n, out, true);

	/* the peer naming a dropped block: it will never come */
	assert_int_equal(km_pool_read_in(&f->b, &g, out, sizeof(out), &len,
	                                 &missing, &later),
	                 QKDN_E_BLOCK_MISSING);
	assert_int_equal(missing, 1);
	assert_false(later);

	/* dropping the block the cursor is in moves it to the next one */
	add(&f->a, 7);
	assert_int_equal(f->a.n, 4);
	assert_int_equal(km_pool_take_out(&f->a, 10, s, NSEG, &n, out), 0);
	assert_seg(&s[0], 4, 0, 10);
	assert_from_half(s, n, out, true);

	/* a restart loads exactly the blocks kept */
	km_pool_fini(&f->a);
	assert_int_equal(km_pool_init(&f->a, f->st[0], LINK, BB, 4 * BB, true),
	                 0);
	assert_int_equal(f->a.n, 4);
	assert_stored_ids(f->st[0], (const uint64_t[]){4, 5, 6, 7}, 4);
}

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_direction_split, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_in_positions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_take_spans_blocks, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_lease_crash_and_clean_stop,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lease_grows_when_fast, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_lease_killed_process, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_skip_out_block, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_gap_end, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gc, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cap_and_add, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
