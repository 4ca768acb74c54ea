/* The KM key store: keys are tombstoned in a committed transaction before
 * they are handed out (and stay so across a restart or a killed process),
 * takes and puts are all or nothing, secrets are sealed at rest under the
 * storage key, expired keys are swept, and marks persist. */
#include "qkdn_err.h"
#include "qkdn_msg.h"
#include "store.h"

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>
#include <sodium.h>

#define MAP_BYTES (16u << 20)
#define KEY_LEN   32
#define BLOCK_LEN 4096
#define LINK      "alpha-beta"

struct fx {
	char dir[64];
	struct km_store *st;
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
	snprintf(f->dir, sizeof(f->dir), "/tmp/qkdn-store-XXXXXX");
	if (mkdtemp(f->dir) == NULL ||
	    km_store_open(&f->st, f->dir, MAP_BYTES) != 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	km_store_close(f->st, true);
	rm_tree(f->dir);
	free(f);
	return 0;
}

static void
reopen(struct fx *f)
{
	km_store_close(f->st, true);
	f->st = NULL;
	assert_int_equal(km_store_open(&f->st, f->dir, MAP_BYTES), 0);
}

/* n records for alice -> bob with random IDs and key bytes. */
static void
make_recs(struct km_key_record *recs, uint8_t (*bytes)[KEY_LEN], size_t n,
          uint64_t expires_ms)
{
	for (size_t i = 0; i < n; i++) {
		randombytes_buf(bytes[i], KEY_LEN);
		qkdn_uuid_random(&recs[i].id);
		recs[i].src_sae = "alice";
		recs[i].dst_sae = "bob";
		recs[i].expires_ms = expires_ms;
		recs[i].len = KEY_LEN;
		recs[i].bytes = bytes[i];
	}
}

static uint64_t
later_ms(void)
{
	return km_wall_ms() + 3600u * 1000u;
}

/* Take one ID for sae: returns the error and, on success, checks bytes. */
static int
take1(struct km_store *st, const char *sae, const qkdn_uuid *id,
      const uint8_t *want, size_t *bad)
{
	struct qkdn_msg m = {0};
	struct qkdn_key key = {0};
	size_t b = 99;
	int rv = km_store_keys_take(st, sae, id, 1, &m, &key, &b);
	if (rv == 0) {
		assert_memory_equal(key.id.b, id->b, 16);
		assert_int_equal(key.len, KEY_LEN);
		assert_non_null(key.bytes);
		if (want != NULL)
			assert_memory_equal(key.bytes, want, KEY_LEN);
	}
	if (bad != NULL)
		*bad = b;
	qkdn_msg_clear(&m);
	return rv;
}

static void
test_commit_before_supply(void **state)
{
	struct fx *f = *state;
	struct km_key_record recs[3];
	uint8_t bytes[3][KEY_LEN];
	qkdn_uuid ids[3];
	struct qkdn_key keys[3];
	struct qkdn_msg m = {0};
	struct km_pos mark = {7, 100}, got;
	size_t bad = 99;

	make_recs(recs, bytes, 3, later_ms());
	for (int i = 0; i < 3; i++)
		ids[i] = recs[i].id;
	assert_int_equal(km_store_pending(f->st), 0);
	assert_int_equal(km_store_keys_put(f->st, recs, 3, LINK, &mark), 0);
	assert_int_equal(km_store_pending(f->st), 3);
	assert_int_equal(km_store_mark_get(f->st, LINK, KM_MARK_IN, &got), 0);
	assert_int_equal(got.blk, 7);
	assert_int_equal(got.off, 100);

	/* the bytes come back equal, in request order */
	qkdn_uuid order[3] = {ids[2], ids[0], ids[1]};
	memset(keys, 0, sizeof(keys));
	assert_int_equal(
	    km_store_keys_take(f->st, "bob", order, 3, &m, keys, &bad), 0);
	assert_memory_equal(keys[0].id.b, ids[2].b, 16);
	assert_memory_equal(keys[0].bytes, bytes[2], KEY_LEN);
	assert_memory_equal(keys[1].id.b, ids[0].b, 16);
	assert_memory_equal(keys[1].bytes, bytes[0], KEY_LEN);
	assert_memory_equal(keys[2].id.b, ids[1].b, 16);
	assert_memory_equal(keys[2].bytes, bytes[1], KEY_LEN);
	for (int i = 0; i < 3; i++)
		assert_int_equal(keys[i].len, KEY_LEN);
	qkdn_msg_clear(&m);
	assert_int_equal(km_store_pending(f->st), 0);

	/* supplied once only */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(take1(f->st, "bob", &ids[i], NULL, &bad),
		                 QKDN_E_ALREADY_SUPPLIED);
		assert_int_equal(bad, 0);
	}

	/* the tombstones were committed: a restart does not bring keys back */
	reopen(f);
	assert_false(km_store_recovered(f->st));
	for (int i = 0; i < 3; i++)
		assert_int_equal(take1(f->st, "bob", &ids[i], NULL, NULL),
		                 QKDN_E_ALREADY_SUPPLIED);
	assert_int_equal(km_store_pending(f->st), 0);
}

/* A killed process (no km_store_close) loses neither keys nor tombstones on
 * the same boot. */
static void
test_killed_process_keeps_tombstones(void **state)
{
	struct fx *f = *state;
	struct km_key_record recs[2];
	uint8_t bytes[2][KEY_LEN];
	struct km_pos mark = {1, 1};

	make_recs(recs, bytes, 2, later_ms());
	km_store_close(f->st, true);
	f->st = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct km_store *st;
		struct qkdn_msg m = {0};
		struct qkdn_key key;
		size_t bad;
		if (km_store_open(&st, f->dir, MAP_BYTES) != 0 ||
		    km_store_keys_put(st, recs, 2, LINK, &mark) != 0 ||
		    km_store_keys_take(st, "bob", &recs[0].id, 1, &m, &key,
		                       &bad) != 0)
			_exit(1);
		_exit(0); /* no close: killed */
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	assert_int_equal(km_store_open(&f->st, f->dir, MAP_BYTES), 0);
	assert_true(km_store_recovered(f->st));
	assert_int_equal(km_store_pending(f->st), 1);
	assert_int_equal(take1(f->st, "bob", &recs[0].id, NULL, NULL),
	                 QKDN_E_ALREADY_SUPPLIED);
	assert_int_equal(take1(f->st, "bob", &recs[1].id, bytes[1], NULL), 0);
}

/* A crash followed by a reboot: NOSYNC commits since the last sync may be
 * lost, so every waiting key is dropped (a lost tombstone must not allow a
 * second supply) and the in-mark moves past every held block, so a
 * KEY_SYNC recorded before the crash cannot be replayed. */
static void
test_power_cut_drops_waiting_keys(void **state)
{
	struct fx *f = *state;
	struct km_key_record recs[2];
	uint8_t bytes[2][KEY_LEN], block[64] = {1};
	struct km_pos mark = {100, 32}, in;

	make_recs(recs, bytes, 2, later_ms());
	assert_int_equal(km_store_block_put(f->st, LINK, 100, block, 64), 0);
	assert_int_equal(km_store_block_put(f->st, LINK, 105, block, 64), 0);
	assert_int_equal(km_store_block_put(f->st, "other", 7, block, 64), 0);
	km_store_close(f->st, true);
	f->st = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct km_store *st;
		if (km_store_open(&st, f->dir, MAP_BYTES) != 0 ||
		    km_store_keys_put(st, recs, 2, LINK, &mark) != 0)
			_exit(1);
		_exit(0); /* no close: crashed */
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	setenv("QKDN_TEST_BOOT_ID", "a-later-boot", 1);
	int rv = km_store_open(&f->st, f->dir, MAP_BYTES);
	unsetenv("QKDN_TEST_BOOT_ID");
	assert_int_equal(rv, 0);
	assert_true(km_store_recovered(f->st));
	assert_int_equal(km_store_pending(f->st), 0);
	assert_int_equal(take1(f->st, "bob", &recs[0].id, NULL, NULL),
	                 QKDN_E_UNKNOWN_KEY_ID);
	assert_int_equal(km_store_mark_get(f->st, LINK, KM_MARK_IN, &in), 0);
	assert_int_equal(in.blk, 106);
	assert_int_equal(in.off, 0);
	assert_int_equal(km_store_mark_get(f->st, "other", KM_MARK_IN, &in), 0);
	assert_int_equal(in.blk, 8);
}

static void
test_take_wrong_sae(void **state)
{
	struct fx *f = *state;
	struct km_key_record rec;
	uint8_t bytes[1][KEY_LEN];
	size_t bad = 99;

	make_recs(&rec, bytes, 1, later_ms());
	assert_int_equal(km_store_keys_put(f->st, &rec, 1, NULL, NULL), 0);
	assert_int_equal(take1(f->st, "eve", &rec.id, NULL, &bad),
	                 QKDN_E_NOT_AUTHORISED);
	assert_int_equal(bad, 0);
	/* names that share a prefix are other SAEs; so is the source SAE */
	assert_int_equal(take1(f->st, "bo", &rec.id, NULL, NULL),
	                 QKDN_E_NOT_AUTHORISED);
	assert_int_equal(take1(f->st, "bobby", &rec.id, NULL, NULL),
	                 QKDN_E_NOT_AUTHORISED);
	assert_int_equal(take1(f->st, "alice", &rec.id, NULL, NULL),
	                 QKDN_E_NOT_AUTHORISED);
	/* nothing changed: the right SAE still gets it, once */
	assert_int_equal(km_store_pending(f->st), 1);
	assert_int_equal(take1(f->st, "bob", &rec.id, bytes[0], NULL), 0);
	assert_int_equal(take1(f->st, "bob", &rec.id, NULL, NULL),
	                 QKDN_E_ALREADY_SUPPLIED);
}

static void
test_take_unknown_all_or_nothing(void **state)
{
	struct fx *f = *state;
	struct km_key_record recs[2];
	uint8_t bytes[2][KEY_LEN];
	struct qkdn_key keys[3];
	struct qkdn_msg m = {0};
	qkdn_uuid unknown, req[3];
	size_t bad = 99;

	make_recs(recs, bytes, 2, later_ms());
	qkdn_uuid_random(&unknown);
	assert_int_equal(km_store_keys_put(f->st, recs, 2, NULL, NULL), 0);

	assert_int_equal(take1(f->st, "bob", &unknown, NULL, &bad),
	                 QKDN_E_UNKNOWN_KEY_ID);
	assert_int_equal(bad, 0);

	/* [good, unknown]: fails at index 1, the good one stays */
	req[0] = recs[0].id;
	req[1] = unknown;
	memset(keys, 0, sizeof(keys));
	assert_int_equal(
	    km_store_keys_take(f->st, "bob", req, 2, &m, keys, &bad),
	    QKDN_E_UNKNOWN_KEY_ID);
	assert_int_equal(bad, 1);
	qkdn_msg_clear(&m);
	assert_int_equal(km_store_pending(f->st), 2);

	/* the same ID twice in one request fails and consumes nothing */
	req[0] = recs[0].id;
	req[1] = recs[1].id;
	req[2] = recs[0].id;
	assert_int_equal(
	    km_store_keys_take(f->st, "bob", req, 3, &m, keys, &bad),
	    QKDN_E_ALREADY_SUPPLIED);
	assert_int_equal(bad, 2);
	qkdn_msg_clear(&m);
	assert_int_equal(km_store_pending(f->st), 2);

	assert_int_equal(take1(f->st, "bob", &recs[0].id, bytes[0], NULL), 0);
	assert_int_equal(take1(f->st, "bob", &recs[1].id, bytes[1], NULL), 0);
	assert_int_equal(km_store_pending(f->st), 0);
}

static void
test_put_replay(void **state)
{
	struct fx *f = *state;
	struct km_key_record a[2], b[2], batch[2];
	uint8_t ab[2][KEY_LEN], bb[2][KEY_LEN];
	struct km_pos m1 = {1, 10}, m2 = {2, 20}, got;

	make_recs(a, ab, 2, later_ms());
	make_recs(b, bb, 2, later_ms());
	assert_int_equal(km_store_keys_put(f->st, a, 2, LINK, &m1), 0);

	/* [new, pending] */
	batch[0] = b[0];
	batch[1] = a[1];
	assert_int_equal(km_store_keys_put(f->st, batch, 2, LINK, &m2),
	                 QKDN_E_REPLAY);
	assert_int_equal(km_store_pending(f->st), 2);
	assert_int_equal(take1(f->st, "bob", &b[0].id, NULL, NULL),
	                 QKDN_E_UNKNOWN_KEY_ID);
	assert_int_equal(km_store_mark_get(f->st, LINK, KM_MARK_IN, &got), 0);
	assert_int_equal(got.blk, m1.blk);
	assert_int_equal(got.off, m1.off);
	/* the pending one was not overwritten */
	assert_int_equal(take1(f->st, "bob", &a[1].id, ab[1], NULL), 0);

	/* [new, supplied] */
	batch[0] = b[0];
	batch[1] = a[1];
	assert_int_equal(km_store_keys_put(f->st, batch, 2, LINK, &m2),
	                 QKDN_E_REPLAY);
	assert_int_equal(take1(f->st, "bob", &b[0].id, NULL, NULL),
	                 QKDN_E_UNKNOWN_KEY_ID);
	assert_int_equal(take1(f->st, "bob", &a[1].id, NULL, NULL),
	                 QKDN_E_ALREADY_SUPPLIED);
	assert_int_equal(km_store_mark_get(f->st, LINK, KM_MARK_IN, &got), 0);
	assert_int_equal(got.blk, m1.blk);
	assert_int_equal(got.off, m1.off);

	/* the same new ID twice in one call */
	batch[0] = b[1];
	batch[1] = b[1];
	assert_int_equal(km_store_keys_put(f->st, batch, 2, LINK, &m2),
	                 QKDN_E_REPLAY);
	assert_int_equal(take1(f->st, "bob", &b[1].id, NULL, NULL),
	                 QKDN_E_UNKNOWN_KEY_ID);
	assert_int_equal(km_store_pending(f->st), 1);

	/* new IDs are still accepted and advance the mark */
	assert_int_equal(km_store_keys_put(f->st, b, 2, LINK, &m2), 0);
	assert_int_equal(km_store_mark_get(f->st, LINK, KM_MARK_IN, &got), 0);
	assert_int_equal(got.blk, m2.blk);
	assert_int_equal(got.off, m2.off);
	assert_int_equal(km_store_pending(f->st), 3);
}

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	struct stat sb;
	uint8_t *buf;
	assert_non_null(fp);
	assert_int_equal(fstat(fileno(fp), &sb), 0);
	buf = malloc((size_t)sb.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)sb.st_size, fp),
	                 (size_t)sb.st_size);
	fclose(fp);
	*len = (size_t)sb.st_size;
	return buf;
}

static void
test_sealed_at_rest(void **state)
{
	struct fx *f = *state;
	static const uint8_t key[KEY_LEN] = "QKDN-SECRET-KEY-0123456789abcde";
	static const char dst[] = "dst-sae-marker-7f3a";
	uint8_t blk[BLOCK_LEN], got[BLOCK_LEN];
	char path[128];
	struct km_key_record rec = {.src_sae = "alice",
	                            .dst_sae = dst,
	                            .expires_ms = later_ms(),
	                            .len = KEY_LEN,
	                            .bytes = key};
	size_t len;

	qkdn_uuid_random(&rec.id);
	for (size_t i = 0; i < sizeof(blk); i++)
		blk[i] = (uint8_t)("BLOCK-PLAINTEXT-"[i % 16] + i / 16 % 7);
	assert_int_equal(km_store_keys_put(f->st, &rec, 1, NULL, NULL), 0);
	assert_int_equal(km_store_block_put(f->st, LINK, 42, blk, BLOCK_LEN),
	                 0);
	reopen(f);

	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	uint8_t *file = read_file(path, &len);
	/* the search works: the SAE names are stored in the clear */
	assert_non_null(memmem(file, len, dst, strlen(dst)));
	assert_null(memmem(file, len, key, 16));
	assert_null(memmem(file, len, key + 16, 16));
	for (size_t at = 0; at + 32 <= BLOCK_LEN; at += 32)
		assert_null(memmem(file, len, blk + at, 32));
	free(file);

	/* and the secrets are really there, under the storage key */
	assert_int_equal(km_store_block_get(f->st, LINK, 42, got, BLOCK_LEN),
	                 0);
	assert_memory_equal(got, blk, BLOCK_LEN);
	assert_int_equal(take1(f->st, dst, &rec.id, key, NULL), 0);
}

static void
write_key_file(const char *dir, const uint8_t *key, size_t len)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/storage.key", dir);
	int fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, key, len), (ssize_t)len);
	close(fd);
}

static void
test_wrong_storage_key(void **state)
{
	struct fx *f = *state;
	uint8_t blk[BLOCK_LEN], got[BLOCK_LEN], orig[64], other[32];
	uint8_t bytes[1][KEY_LEN];
	struct km_key_record rec;
	char path[128];
	size_t bad = 99;

	randombytes_buf(blk, sizeof(blk));
	make_recs(&rec, bytes, 1, later_ms());
	assert_int_equal(km_store_block_put(f->st, LINK, 5, blk, BLOCK_LEN), 0);
	assert_int_equal(km_store_keys_put(f->st, &rec, 1, NULL, NULL), 0);
	km_store_close(f->st, true);
	f->st = NULL;

	snprintf(path, sizeof(path), "%s/storage.key", f->dir);
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(orig, 1, sizeof(orig), fp), 32);
	fclose(fp);
	memcpy(other, orig, 32);
	other[31] ^= 1;
	write_key_file(f->dir, other, sizeof(other));

	assert_int_equal(km_store_open(&f->st, f->dir, MAP_BYTES), 0);
	memset(got, 0xa5, sizeof(got));
	assert_int_not_equal(km_store_block_get(f->st, LINK, 5, got, BLOCK_LEN),
	                     0);
	assert_memory_not_equal(got, blk, BLOCK_LEN);
	/* a key that cannot be unsealed is not consumed either */
	assert_int_not_equal(take1(f->st, "bob", &rec.id, NULL, &bad), 0);
	assert_int_equal(km_store_pending(f->st), 1);

	/* a short key file stops the store from opening */
	km_store_close(f->st, true);
	f->st = NULL;
	write_key_file(f->dir, orig, 16);
	assert_int_not_equal(km_store_open(&f->st, f->dir, MAP_BYTES), 0);
	f->st = NULL;

	/* the right key opens everything again */
	write_key_file(f->dir, orig, 32);
	assert_int_equal(km_store_open(&f->st, f->dir, MAP_BYTES), 0);
	assert_int_equal(km_store_block_get(f->st, LINK, 5, got, BLOCK_LEN), 0);
	assert_memory_equal(got, blk, BLOCK_LEN);
	assert_int_equal(take1(f->st, "bob", &rec.id, bytes[0], NULL), 0);
}

static void
test_expiry(void **state)
{
	struct fx *f = *state;
	struct km_key_record old[3], live[1];
	uint8_t ob[3][KEY_LEN], lb[1][KEY_LEN];
	uint64_t now = km_wall_ms();

	make_recs(old, ob, 3, now - 1000);
	make_recs(live, lb, 1, now + 3600u * 1000u);
	assert_int_equal(km_store_keys_put(f->st, old, 3, NULL, NULL), 0);
	assert_int_equal(km_store_keys_put(f->st, live, 1, NULL, NULL), 0);
	assert_int_equal(km_store_pending(f->st), 4);

	/* max bounds the work of one sweep */
	assert_int_equal(km_store_sweep(f->st, now, 1), 1);
	assert_int_equal(km_store_pending(f->st), 3);
	assert_int_equal(km_store_sweep(f->st, now, 100), 2);
	assert_int_equal(km_store_pending(f->st), 1);
	assert_int_equal(km_store_sweep(f->st, now, 100), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(take1(f->st, "bob", &old[i].id, NULL, NULL),
		                 QKDN_E_UNKNOWN_KEY_ID);

	/* the live key is untouched; its tombstone lives until it expires */
	assert_int_equal(take1(f->st, "bob", &live[0].id, lb[0], NULL), 0);
	assert_int_equal(km_store_pending(f->st), 0);
	assert_int_equal(km_store_sweep(f->st, now, 100), 0);
	assert_int_equal(take1(f->st, "bob", &live[0].id, NULL, NULL),
	                 QKDN_E_ALREADY_SUPPLIED);
	assert_int_equal(km_store_sweep(f->st, now + 3601u * 1000u, 100), 1);
	assert_int_equal(take1(f->st, "bob", &live[0].id, NULL, NULL),
	                 QKDN_E_UNKNOWN_KEY_ID);
}

static void
test_marks(void **state)
{
	struct fx *f = *state;
	struct km_pos got = {99, 99};
	struct km_pos lease = {5, 17}, in = {3, 9}, other = {1ull << 40, 7};

	/* absent marks read as {0, 0} */
	assert_int_equal(
	    km_store_mark_get(f->st, LINK, KM_MARK_OUT_LEASE, &got), 0);
	assert_int_equal(got.blk, 0);
	assert_int_equal(got.off, 0);

	assert_int_equal(
	    km_store_mark_put(f->st, LINK, KM_MARK_OUT_LEASE, &lease, true), 0);
	assert_int_equal(km_store_mark_put(f->st, LINK, KM_MARK_IN, &in, false),
	                 0);
	assert_int_equal(
	    km_store_mark_put(f->st, LINK "-2", KM_MARK_IN, &other, false), 0);
	assert_int_equal(
	    km_store_mark_get(f->st, LINK, KM_MARK_OUT_LEASE, &got), 0);
	assert_int_equal(got.blk, 5);
	assert_int_equal(got.off, 17);
	assert_int_equal(km_store_mark_get(f->st, LINK, KM_MARK_IN, &got), 0);
	assert_int_equal(got.blk, 3);
	assert_int_equal(got.off, 9);

	reopen(f);
	assert_int_equal(
	    km_store_mark_get(f->st, LINK, KM_MARK_OUT_LEASE, &got), 0);
	assert_int_equal(got.blk, 5);
	assert_int_equal(got.off, 17);
	assert_int_equal(km_store_mark_get(f->st, LINK, KM_MARK_IN, &got), 0);
	assert_int_equal(got.blk, 3);
	assert_int_equal(got.off, 9);
	assert_int_equal(km_store_mark_get(f->st, LINK "-2", KM_MARK_IN, &got),
	                 0);
	assert_int_equal(got.blk, 1ull << 40);
	assert_int_equal(got.off, 7);
	assert_int_equal(
	    km_store_mark_get(f->st, LINK "-2", KM_MARK_OUT_LEASE, &got), 0);
	assert_int_equal(got.blk, 0);
	assert_int_equal(got.off, 0);
}

static void
collect_id(void *arg, uint64_t id)
{
	uint64_t *v = arg;
	v[++v[0]] = id;
}

/* A second KM on the same store is refused before it reads anything, so
 * it can never write back a lease behind the running one's. */
static void
test_one_km_per_store(void **state)
{
	struct fx *f = *state;
	struct km_store *second = NULL;
	struct km_pos lease = {42, 0}, got;
	assert_int_equal(
	    km_store_mark_put(f->st, "L", KM_MARK_OUT_LEASE, &lease, true), 0);
	assert_int_equal(km_store_open(&second, f->dir, MAP_BYTES),
	                 QKDN_E_STORE);
	assert_null(second);
	assert_int_equal(km_store_mark_get(f->st, "L", KM_MARK_OUT_LEASE, &got),
	                 0);
	assert_int_equal(got.blk, 42);
	reopen(f); /* once the first has closed, a new KM may open it */
}

static void
test_blocks(void **state)
{
	struct fx *f = *state;
	uint8_t blk[BLOCK_LEN], got[BLOCK_LEN];
	uint64_t ids[8] = {0};

	randombytes_buf(blk, sizeof(blk));
	/* "L1" must not see "L10"'s blocks; IDs sort numerically */
	assert_int_equal(km_store_block_put(f->st, "L1", 300, blk, BLOCK_LEN),
	                 0);
	assert_int_equal(km_store_block_put(f->st, "L1", 5, blk, BLOCK_LEN), 0);
	assert_int_equal(km_store_block_put(f->st, "L10", 2, blk, BLOCK_LEN),
	                 0);
	assert_int_equal(km_store_block_put(f->st, "L1", 1, blk, BLOCK_LEN), 0);
	assert_int_equal(km_store_block_put(f->st, "L1", 5, blk, BLOCK_LEN),
	                 QKDN_E_REPLAY);
	assert_int_equal(km_store_block_ids(f->st, "L1", collect_id, ids), 0);
	assert_int_equal(ids[0], 3);
	assert_int_equal(ids[1], 1);
	assert_int_equal(ids[2], 5);
	assert_int_equal(ids[3], 300);

	assert_int_equal(km_store_block_get(f->st, "L1", 2, got, BLOCK_LEN),
	                 QKDN_E_BLOCK_MISSING);
	assert_int_equal(km_store_block_get(f->st, "L10", 2, got, BLOCK_LEN),
	                 0);
	assert_memory_equal(got, blk, BLOCK_LEN);
	/* the link and ID are bound to the sealed bytes' size */
	assert_int_not_equal(
	    km_store_block_get(f->st, "L1", 5, got, BLOCK_LEN / 2), 0);
	assert_int_equal(km_store_block_delete(f->st, "L1", 5), 0);
	assert_int_equal(km_store_block_get(f->st, "L1", 5, got, BLOCK_LEN),
	                 QKDN_E_BLOCK_MISSING);
}

/* The stored record of block id of link in the closed store at dir, as
 * someone with access to the file sees it (malloc'd, *len bytes); with
 * swap, its two sealed halves are first swapped in the file. */
static uint8_t *
raw_block(const char *dir, const char *link, uint64_t id, bool swap,
          size_t *len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t kb[64];
	size_t n = strlen(link);
	memcpy(kb, link, n + 1);
	for (int i = 0; i < 8; i++)
		kb[n + 1 + i] = (uint8_t)(id >> (56 - 8 * i));
	MDB_val k = {n + 9, kb}, v;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_set_mapsize(env, MAP_BYTES), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "blocks", 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	size_t half = v.mv_size / 2;
	uint8_t *rec = malloc(v.mv_size);
	assert_non_null(rec);
	*len = v.mv_size;
	if (swap) {
		memcpy(rec, (uint8_t *)v.mv_data + half, half);
		memcpy(rec + half, v.mv_data, half);
		MDB_val nv = {v.mv_size, rec};
		assert_int_equal(mdb_put(txn, dbi, &k, &nv, 0), 0);
		assert_int_equal(mdb_txn_commit(txn), 0);
	} else {
		memcpy(rec, v.mv_data, v.mv_size);
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	return rec;
}

/* Blocks sealed by two openings of the store: each opening seals under
 * its own subkey (its ID heads every sealed half), and one opening never
 * repeats a nonce; both still unseal. */
static void
test_block_seal_per_opening(void **state)
{
	struct fx *f = *state;
	uint8_t blk[BLOCK_LEN], got[BLOCK_LEN];
	size_t len[3];

	randombytes_buf(blk, sizeof(blk));
	assert_int_equal(km_store_block_put(f->st, LINK, 1, blk, BLOCK_LEN), 0);
	assert_int_equal(km_store_block_put(f->st, LINK, 2, blk, BLOCK_LEN), 0);
	reopen(f);
	assert_int_equal(km_store_block_put(f->st, LINK, 3, blk, BLOCK_LEN), 0);
	km_store_close(f->st, true);
	f->st = NULL;
	uint8_t *r[3];
	for (int i = 0; i < 3; i++)
		r[i] = raw_block(f->dir, LINK, (uint64_t)i + 1, false, &len[i]);
	size_t h = len[0] / 2;
	/* opening IDs: the same within an opening, new for the next */
	assert_memory_equal(r[0], r[0] + h, 16);
	assert_memory_equal(r[0], r[1], 16);
	assert_memory_not_equal(r[0], r[2], 16);
	/* counters: never the same twice within one opening */
	assert_memory_not_equal(r[0] + 16, r[0] + h + 16, 8);
	assert_memory_not_equal(r[0] + 16, r[1] + 16, 8);
	assert_memory_not_equal(r[0] + h + 16, r[1] + h + 16, 8);
	for (int i = 0; i < 3; i++)
		free(r[i]);
	assert_int_equal(km_store_open(&f->st, f->dir, MAP_BYTES), 0);
	for (uint64_t id = 1; id <= 3; id++) {
		assert_int_equal(
		    km_store_block_get(f->st, LINK, id, got, BLOCK_LEN), 0);
		assert_memory_equal(got, blk, BLOCK_LEN);
	}
}

/* Each half of a block is sealed on its own (one per direction): either
 * unseals alone, and the two cannot trade places. */
static void
test_block_halves(void **state)
{
	struct fx *f = *state;
	uint8_t blk[BLOCK_LEN], got[BLOCK_LEN];

	randombytes_buf(blk, sizeof(blk));
	assert_int_equal(km_store_block_put(f->st, LINK, 9, blk, BLOCK_LEN), 0);
	assert_int_equal(km_store_block_put(f->st, LINK, 10, blk, 101),
	                 QKDN_E_BAD_REQUEST);
	for (int w = 0; w < 2; w++) {
		memset(got, 0, sizeof(got));
		assert_int_equal(km_store_block_half_get(f->st, LINK, 9, w, got,
		                                         BLOCK_LEN / 2),
		                 0);
		assert_memory_equal(got, blk + w * (BLOCK_LEN / 2),
		                    BLOCK_LEN / 2);
	}
	assert_int_equal(
	    km_store_block_half_get(f->st, LINK, 9, 2, got, BLOCK_LEN / 2),
	    QKDN_E_BAD_REQUEST);
	assert_int_not_equal(
	    km_store_block_half_get(f->st, LINK, 9, 0, got, BLOCK_LEN / 4), 0);
	assert_int_equal(
	    km_store_block_half_get(f->st, LINK, 8, 0, got, BLOCK_LEN / 2),
	    QKDN_E_BLOCK_MISSING);

	km_store_close(f->st, true);
	f->st = NULL;
	size_t len;
	free(raw_block(f->dir, LINK, 9, true, &len));
	assert_int_equal(km_store_open(&f->st, f->dir, MAP_BYTES), 0);
	memset(got, 0xa5, sizeof(got));
	for (int w = 0; w < 2; w++)
		assert_int_equal(km_store_block_half_get(f->st, LINK, 9, w, got,
		                                         BLOCK_LEN / 2),
		                 QKDN_E_STORE);
	assert_int_equal(km_store_block_get(f->st, LINK, 9, got, BLOCK_LEN),
	                 QKDN_E_STORE);
	/* nothing of the block is left in the caller's buffer */
	for (size_t i = 0; i < sizeof(got); i++)
		assert_int_equal(got[i], 0);
}

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_commit_before_supply, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_killed_process_keeps_tombstones, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_power_cut_drops_waiting_keys,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_take_wrong_sae, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_take_unknown_all_or_nothing,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_put_replay, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sealed_at_rest, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_storage_key, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_marks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_one_km_per_store, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_blocks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_block_halves, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_block_seal_per_opening, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
