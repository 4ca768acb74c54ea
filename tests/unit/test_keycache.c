/* The provider's server-side key cache (provider/keycache.c), white-box:
 * the source is included so the test sees the slots and their entries.
 *
 *   - a key cached for one destination SAE is never handed out for another
 *     (not for a name that merely shares a prefix either);
 *   - each cached key is handed out exactly once, in the order stored; a
 *     batch is kept only up to the cache's capacity;
 *   - a key handed out, dropped by expiry (born_ms moved back past TTL_MS)
 *     or dropped with its slot (LRU eviction beyond SLOTS destinations)
 *     leaves no copy of its bytes anywhere in the cache's memory, and every
 *     key still cached is there exactly once;
 *   - after fork(), in the child, before any cache call, none of the
 *     parent's key bytes remain (the atfork child handler wiped them) and a
 *     take gets no parent key; the parent still has all of its keys;
 *   - a cache whose owner is another process (a child made without the
 *     atfork handlers) forgets every key on its first use.
 *
 * Keys are random (randombytes_buf), so a scan cannot match by chance. */
#include "../../provider/keycache.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>

#include <cmocka.h>

#define BATCH 4 /* cap: a batch of 4, of which 3 are cached */
#define KEPT  (BATCH - 1)

/* n random keys for a destination */
static void
make_keys(struct qkdn_ak_key *k, size_t n)
{
	memset(k, 0, n * sizeof(*k));
	for (size_t i = 0; i < n; i++) {
		randombytes_buf(k[i].id.b, sizeof(k[i].id.b));
		randombytes_buf(k[i].bytes, QPROV_KEY_LEN);
		k[i].len = QPROV_KEY_LEN;
	}
}

/* occurrences of n bytes at p in [mem, mem + len) */
static size_t
count_in(const void *mem, size_t len, const void *p, size_t n)
{
	const uint8_t *at = mem, *end = at + len, *hit;
	size_t count = 0;
	while (at < end && (hit = memmem(at, (size_t)(end - at), p, n))) {
		count++;
		at = hit + 1;
	}
	return count;
}

/* Occurrences of a key's bytes in the cache's memory: the cache itself and
 * every slot's whole array e[0..cap), in use or not. */
static size_t
copies(const struct qprov_cache *c, const uint8_t key[QPROV_KEY_LEN])
{
	size_t count = count_in(c, sizeof(*c), key, QPROV_KEY_LEN);
	for (size_t i = 0; i < SLOTS; i++)
		if (c->slots[i].e != NULL)
			count += count_in(c->slots[i].e,
			                  c->cap * sizeof(*c->slots[i].e), key,
			                  QPROV_KEY_LEN);
	return count;
}

static struct qprov_cache *
new_cache(void)
{
	struct qprov_cache *c = NULL;
	assert_int_equal(qprov_cache_new(&c, BATCH), 0);
	assert_non_null(c);
	assert_int_equal(c->cap, BATCH);
	return c;
}

/* Fail with a line "FAIL: what broke" (the helpers below name the caller's
 * line); the format must be a string literal. */
#define fail_with(...)                                                         \
	do {                                                                   \
		print_error("FAIL: " __VA_ARGS__);                             \
		print_error("\n");                                             \
		fail();                                                        \
	} while (0)
#define expect_at(cond, ...)                                                   \
	do {                                                                   \
		if (!(cond))                                                   \
			fail_with(__VA_ARGS__);                                \
	} while (0)

static const char *
rv_name(int rv)
{
	return rv == QPROV_CACHE_HIT       ? "HIT (a key handed out)"
	       : rv == QPROV_CACHE_CLAIMED ? "CLAIMED"
	       : rv == QPROV_CACHE_FETCH   ? "FETCH"
	                                   : "?";
}

/* What kem.c does for a miss: claim the slot of dst, then store the n keys
 * of the batch it kept. */
#define fill(c, dst, k, n) fill_at((c), (dst), (k), (n), __FILE__, __LINE__)
static void
fill_at(struct qprov_cache *c, const char *dst, const struct qkdn_ak_key *k,
        size_t n, const char *file, int line)
{
	qkdn_key_id id;
	uint8_t key[QPROV_KEY_LEN];
	int rv = qprov_cache_take(c, dst, &id, key, 0);
	expect_at(rv == QPROV_CACHE_CLAIMED,
	          "%s:%d: take for %s before its batch: %s, expected CLAIMED",
	          file, line, dst, rv_name(rv));
	qprov_cache_done(c, dst, 1, k, n);
	expect_at(find(c, dst) != NULL && find(c, dst)->n == n &&
	              !find(c, dst)->fetching,
	          "%s:%d: %s's batch of %zu not kept (or the claim not ended)",
	          file, line, dst, n);
}

/* take for dst must be a miss that claims the slot (no key for dst is
 * cached): id and key stay untouched. Ends the claim (a failed fetch). */
#define assert_miss(c, dst) miss_at((c), (dst), __FILE__, __LINE__)
static void
miss_at(struct qprov_cache *c, const char *dst, const char *file, int line)
{
	qkdn_key_id id, id0;
	uint8_t key[QPROV_KEY_LEN], key0[QPROV_KEY_LEN];
	int rv;
	memset(&id0, 0xA5, sizeof(id0));
	memset(key0, 0xA5, sizeof(key0));
	id = id0;
	memcpy(key, key0, sizeof(key));
	rv = qprov_cache_take(c, dst, &id, key, 0);
	expect_at(rv == QPROV_CACHE_CLAIMED,
	          "%s:%d: take for %s: %s, expected CLAIMED: no key for %s "
	          "is cached",
	          file, line, dst, rv_name(rv), dst);
	expect_at(memcmp(&id, &id0, sizeof(id)) == 0 &&
	              memcmp(key, key0, sizeof(key)) == 0,
	          "%s:%d: take for %s wrote a key out on a miss", file, line,
	          dst);
	qprov_cache_done(c, dst, 1, NULL, 0);
	expect_at(find(c, dst) != NULL && !find(c, dst)->fetching,
	          "%s:%d: %s's claim not ended", file, line, dst);
}

/* take for dst must hand out exactly k (the next cached key of dst), and
 * leave no copy of it behind */
#define assert_hit(c, dst, k) hit_at((c), (dst), (k), #k, __FILE__, __LINE__)
static void
hit_at(struct qprov_cache *c, const char *dst, const struct qkdn_ak_key *k,
       const char *what, const char *file, int line)
{
	qkdn_key_id id;
	uint8_t key[QPROV_KEY_LEN];
	size_t left;
	int rv = qprov_cache_take(c, dst, &id, key, 0);
	expect_at(rv == QPROV_CACHE_HIT, "%s:%d: take for %s: %s, expected HIT",
	          file, line, dst, rv_name(rv));
	expect_at(memcmp(id.b, k->id.b, sizeof(id.b)) == 0 &&
	              memcmp(key, k->bytes, QPROV_KEY_LEN) == 0,
	          "%s:%d: take for %s handed out another key than %s, the "
	          "next one cached for %s",
	          file, line, dst, what, dst);
	left = copies(c, k->bytes);
	expect_at(left == 0,
	          "%s:%d: the key handed out for %s (%s) is still in the "
	          "cache's memory: %zu copies",
	          file, line, dst, what, left);
}

/* each of k[0..n) is in the cache's memory exactly `want` times */
#define assert_copies(c, k, n, want)                                           \
	check_copies((c), (k), (n), (want), #k, __FILE__, __LINE__)
static void
check_copies(const struct qprov_cache *c, const struct qkdn_ak_key *k, size_t n,
             size_t want, const char *what, const char *file, int line)
{
	for (size_t i = 0; i < n; i++) {
		size_t have = copies(c, k[i].bytes);
		if (have != want)
			fail_with("%s:%d: key %zu of %s: %zu copies in the "
			          "cache's memory, expected %zu",
			          file, line, i, what, have, want);
	}
}

/* (a) bob's keys are never handed out for carol (nor "bo", "bobby"), and
 * each SAE gets its own batch. */
static void
test_no_cross_sae(void **state)
{
	struct qprov_cache *c = new_cache();
	struct qkdn_ak_key bob[KEPT], carol[KEPT];
	(void)state;
	make_keys(bob, KEPT);
	make_keys(carol, KEPT);

	fill(c, "bob", bob, KEPT);
	assert_miss(c, "carol");
	assert_miss(c, "bobby");
	assert_miss(c, "bo");
	assert_copies(c, bob, KEPT, 1);

	fill(c, "carol", carol, KEPT);
	/* interleaved: each gets its own keys, in order */
	for (size_t i = 0; i < KEPT; i++) {
		assert_hit(c, "carol", &carol[i]);
		assert_hit(c, "bob", &bob[i]);
	}
	assert_miss(c, "bob");
	assert_miss(c, "carol");
	qprov_cache_free(c);
}

/* (b) each cached key once, in order; then the cache is empty for bob;
 * (c) a key handed out leaves no copy, the others stay exactly once. */
static void
test_once_in_order_wiped(void **state)
{
	struct qprov_cache *c = new_cache();
	struct qkdn_ak_key bob[KEPT];
	(void)state;
	make_keys(bob, KEPT);
	fill(c, "bob", bob, KEPT);
	assert_copies(c, bob, KEPT, 1);
	for (size_t i = 0; i < KEPT; i++) {
		assert_hit(c, "bob", &bob[i]); /* no copy of bob[i] left */
		assert_copies(c, bob, i + 1, 0);
		assert_copies(c, bob + i + 1, KEPT - i - 1, 1);
		expect_at(find(c, "bob")->n == KEPT - i - 1,
		          "bob: %zu keys cached after %zu taken, expected %zu",
		          find(c, "bob")->n, i + 1, KEPT - i - 1);
	}
	assert_miss(c, "bob");

	/* a batch larger than what fits: only cap keys are kept, the rest
	 * never enter the cache */
	struct qkdn_ak_key many[BATCH + 2];
	make_keys(many, BATCH + 2);
	fill(c, "bob", many, BATCH);
	qprov_cache_done(c, "bob", 0, many + BATCH, 2);
	expect_at(find(c, "bob")->n == BATCH,
	          "bob: %zu keys cached, at most cap = %d fit",
	          find(c, "bob")->n, BATCH);
	assert_copies(c, many + BATCH, 2, 0);
	for (size_t i = 0; i < BATCH; i++)
		assert_hit(c, "bob", &many[i]);
	assert_copies(c, many, BATCH + 2, 0);
	assert_miss(c, "bob");
	qprov_cache_free(c);
}

/* (c) expiry: keys older than TTL_MS are dropped on the next use of the
 * cache, for any destination, and wiped; younger ones stay. */
static void
test_expiry_wipes(void **state)
{
	struct qprov_cache *c = new_cache();
	struct qkdn_ak_key bob[KEPT], eve[KEPT];
	uint64_t now = qkdn_now_ms();
	struct slot *s;
	(void)state;
	/* the monotonic clock must be far enough from 0 to go back TTL_MS */
	expect_at(now > TTL_MS + 10000,
	          "the monotonic clock (%llu ms) is too close to 0 to date a "
	          "key back past TTL_MS",
	          (unsigned long long)now);
	make_keys(bob, KEPT);
	make_keys(eve, KEPT);

	/* the two oldest of bob's expired, the third not */
	fill(c, "bob", bob, KEPT);
	s = find(c, "bob");
	s->e[0].born_ms = now - TTL_MS - 5000;
	s->e[1].born_ms = now - TTL_MS - 5000;
	/* every one of eve's expired */
	fill(c, "eve", eve, KEPT);
	for (size_t i = 0; i < KEPT; i++)
		find(c, "eve")->e[i].born_ms = now - TTL_MS - 5000;

	/* a use of the cache for a third SAE drops them all */
	assert_miss(c, "carol");
	expect_at(find(c, "bob")->n == 1,
	          "bob: %zu keys cached, expected 1 (two of three expired)",
	          find(c, "bob")->n);
	expect_at(find(c, "eve")->n == 0,
	          "eve: %zu keys cached, expected 0 (all expired)",
	          find(c, "eve")->n);
	assert_copies(c, bob, 2, 0);
	assert_copies(c, bob + 2, 1, 1);
	assert_copies(c, eve, KEPT, 0);

	/* never handed out: bob gets only the young key, eve none */
	assert_hit(c, "bob", &bob[2]);
	assert_miss(c, "bob");
	assert_miss(c, "eve");
	qprov_cache_free(c);
}

/* (c) LRU eviction: a 65th destination takes the slot of the least
 * recently used one, whose keys are wiped and never handed out; the other
 * 63 keep theirs. */
static void
test_evict_wipes(void **state)
{
	struct qprov_cache *c = new_cache();
	static struct qkdn_ak_key k[SLOTS][KEPT];
	char name[32];
	const size_t victim = 17;
	uint64_t now = qkdn_now_ms();
	struct slot *vs;
	(void)state;
	for (size_t i = 0; i < SLOTS; i++) {
		snprintf(name, sizeof(name), "sae%zu", i);
		make_keys(k[i], KEPT);
		fill(c, name, k[i], KEPT);
	}
	for (size_t i = 0; i < SLOTS; i++) {
		assert_string_not_equal(c->slots[i].dst, "");
		assert_copies(c, k[i], KEPT, 1);
	}
	/* white-box: victim is the least recently used, then sae0, sae1... */
	assert_true(now > 2 * SLOTS);
	for (size_t i = 0; i < SLOTS; i++) {
		snprintf(name, sizeof(name), "sae%zu", i);
		find(c, name)->used_ms = now - SLOTS + i;
	}
	snprintf(name, sizeof(name), "sae%zu", victim);
	vs = find(c, name);
	vs->used_ms = now - 2 * SLOTS;

	/* the 65th destination: its claim evicts the victim at once */
	qkdn_key_id id;
	uint8_t key[QPROV_KEY_LEN];
	int rv = qprov_cache_take(c, "newcomer", &id, key, 0);
	expect_at(rv == QPROV_CACHE_CLAIMED,
	          "take for the newcomer: %s, expected CLAIMED", rv_name(rv));
	expect_at(find(c, "newcomer") == vs && find(c, name) == NULL,
	          "the newcomer did not take the slot of the least recently "
	          "used destination, %s",
	          name);
	assert_copies(c, k[victim], KEPT, 0);
	/* the newcomer's batch (one key) lands in the victim's array */
	struct qkdn_ak_key nk[1];
	make_keys(nk, 1);
	qprov_cache_done(c, "newcomer", 1, nk, 1);
	assert_copies(c, k[victim], KEPT, 0);
	assert_copies(c, nk, 1, 1);

	for (size_t i = 0; i < SLOTS; i++)
		if (i != victim)
			assert_copies(c, k[i], KEPT, 1);
	/* the victim's keys are gone for it (its claim evicts the next LRU,
	 * sae0, whose keys are wiped in turn) */
	assert_miss(c, name);
	assert_copies(c, k[0], KEPT, 0);
	assert_hit(c, "newcomer", &nk[0]);
	for (size_t i = 1; i < SLOTS; i++) {
		if (i == victim)
			continue;
		snprintf(name, sizeof(name), "sae%zu", i);
		for (size_t j = 0; j < KEPT; j++)
			assert_hit(c, name, &k[i][j]);
		assert_miss(c, name);
	}
	qprov_cache_free(c);
}

/* The child's verdict, as its exit status. */
enum {
	CHILD_OK = 0,
	CHILD_KEY_IN_MEMORY = 10, /* + index of the key found */
	CHILD_SLOT_KEPT = 20,
	CHILD_HIT = 30,
	CHILD_NOT_CLAIMED = 31,
};

static int
child_check(struct qprov_cache *c, const struct qkdn_ak_key *k, size_t n)
{
	qkdn_key_id id;
	uint8_t key[QPROV_KEY_LEN];
	int rv;
	/* before any cache call: the atfork child handler wiped */
	for (size_t i = 0; i < n; i++)
		if (copies(c, k[i].bytes) != 0)
			return CHILD_KEY_IN_MEMORY + (int)i;
	for (size_t i = 0; i < SLOTS; i++)
		if (c->slots[i].n != 0)
			return CHILD_SLOT_KEPT;
	rv = qprov_cache_take(c, "bob", &id, key, 0);
	if (rv == QPROV_CACHE_HIT)
		return CHILD_HIT;
	return rv == QPROV_CACHE_CLAIMED ? CHILD_OK : CHILD_NOT_CLAIMED;
}

/* (d) fork: the child starts with nothing of the parent's; the parent
 * keeps its keys. */
static void
test_fork_child_wiped(void **state)
{
	struct qprov_cache *c = new_cache();
	struct qkdn_ak_key bob[KEPT];
	int status;
	pid_t pid;
	(void)state;
	make_keys(bob, KEPT);
	fill(c, "bob", bob, KEPT);
	assert_copies(c, bob, KEPT, 1);

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_check(c, bob, KEPT));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) >= CHILD_KEY_IN_MEMORY &&
	    WEXITSTATUS(status) < CHILD_SLOT_KEPT)
		fail_with("child: the parent's key %d is still in the cache's "
		          "memory after fork()",
		          WEXITSTATUS(status) - CHILD_KEY_IN_MEMORY);
	if (WEXITSTATUS(status) == CHILD_SLOT_KEPT)
		fail_with("child: a slot still counts the parent's keys");
	if (WEXITSTATUS(status) == CHILD_HIT)
		fail_with("child: take handed out a key of the parent");
	if (WEXITSTATUS(status) == CHILD_NOT_CLAIMED)
		fail_with("child: take for bob did not claim a fetch");
	assert_int_equal(WEXITSTATUS(status), CHILD_OK);

	/* the parent is untouched: its keys, once each, in order */
	assert_copies(c, bob, KEPT, 1);
	for (size_t i = 0; i < KEPT; i++)
		assert_hit(c, "bob", &bob[i]);
	assert_miss(c, "bob");
	qprov_cache_free(c);
}

/* A process that got the cache without the atfork handlers (the owner pid
 * differs): the first use wipes every slot. */
static void
test_foreign_owner_wiped(void **state)
{
	struct qprov_cache *c = new_cache();
	struct qkdn_ak_key bob[KEPT], carol[KEPT];
	(void)state;
	make_keys(bob, KEPT);
	make_keys(carol, KEPT);
	fill(c, "bob", bob, KEPT);
	fill(c, "carol", carol, KEPT);
	c->pid = getpid() + 1;
	assert_miss(c, "bob");
	expect_at(c->pid == getpid(), "the cache did not take this process "
	                              "as its owner");
	assert_copies(c, bob, KEPT, 0);
	assert_copies(c, carol, KEPT, 0);
	assert_miss(c, "carol");
	qprov_cache_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_cross_sae),
	    cmocka_unit_test(test_once_in_order_wiped),
	    cmocka_unit_test(test_expiry_wipes),
	    cmocka_unit_test(test_evict_wipes),
	    cmocka_unit_test(test_fork_child_wiped),
	    cmocka_unit_test(test_foreign_owner_wiped),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
