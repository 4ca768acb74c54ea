/* Server-side key cache: with batch > 1 one KM request fetches `batch`
 * keys for a destination SAE and later handshakes with that SAE take them
 * one by one, each exactly once.
 *
 * Keys live in sodium_malloc memory (guard pages, wiped when freed). At
 * most SLOTS destinations are kept (least recently used goes first), and a
 * key older than TTL_MS is wiped and dropped: the KM of the other end
 * expires its copy anyway.
 *
 * Refills are single-flight: while one thread fetches a batch for a
 * destination, others wanting a key for it wait for that batch (at most
 * the KM timeout) rather than each fetching a batch of their own, which
 * would waste QKD key.
 *
 * Fork: a child must never hand out a key its parent also holds. Each
 * cache is in libqkdn's fork registry (qkdn_fork.h), which holds its lock
 * across fork(), and in the child its hook wipes and empties it; each
 * access also compares getpid() with the cache's owner, for processes that
 * fork without running the atfork handlers. */
#include "qprov.h"

#include "qkdn_clock.h"
#include "qkdn_fork.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOTS  64
#define TTL_MS 60000

struct entry {
	qkdn_key_id id;
	uint8_t key[QPROV_KEY_LEN];
	uint64_t born_ms;
};

struct slot {
	char dst[QKDN_AK_NAME_MAX]; /* "" if free */
	uint64_t used_ms;
	int fetching;    /* a thread is fetching a batch for dst */
	size_t n;        /* entries e[0..n), oldest first */
	struct entry *e; /* cap entries, sodium_allocarray */
};

struct qprov_cache {
	pthread_mutex_t mtx;
	pthread_cond_t refilled; /* a fetch ended */
	pid_t pid;               /* the process these keys belong to */
	size_t cap;
	struct slot slots[SLOTS];
	struct qkdn_fork_obj fork; /* in libqkdn's fork registry */
};

static void
wipe_all(struct qprov_cache *c)
{
	for (size_t i = 0; i < SLOTS; i++) {
		struct slot *s = &c->slots[i];
		if (s->e != NULL)
			sodium_memzero(s->e, c->cap * sizeof(*s->e));
		s->n = 0;
		s->fetching = 0;
		s->dst[0] = '\0';
	}
}

static void
cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

/* The fork registry's child hook: only the forking thread exists here,
 * and it holds the lock; waiters and fetchers of the parent are gone. */
static void
fork_child(void *arg)
{
	struct qprov_cache *c = arg;
	wipe_all(c);
	c->pid = getpid();
	cond_init(&c->refilled);
}

int
qprov_cache_new(struct qprov_cache **out, unsigned batch)
{
	struct qprov_cache *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -1;
	pthread_mutex_init(&c->mtx, NULL);
	cond_init(&c->refilled);
	c->pid = getpid();
	c->cap = batch > 1 ? batch : 1;
	c->fork = (struct qkdn_fork_obj){
	    .mtx = &c->mtx, .child = fork_child, .arg = c};
	qkdn_fork_register(&c->fork);
	*out = c;
	return 0;
}

void
qprov_cache_free(struct qprov_cache *c)
{
	if (c == NULL)
		return;
	qkdn_fork_unregister(&c->fork);
	for (size_t i = 0; i < SLOTS; i++)
		sodium_free(c->slots[i].e); /* wipes */
	pthread_cond_destroy(&c->refilled);
	pthread_mutex_destroy(&c->mtx);
	free(c);
}

/* Called with the lock held: forget a parent's keys, drop expired ones. */
static void
refresh(struct qprov_cache *c, uint64_t now)
{
	if (c->pid != getpid()) {
		wipe_all(c);
		c->pid = getpid();
	}
	for (size_t i = 0; i < SLOTS; i++) {
		struct slot *s = &c->slots[i];
		size_t old = 0;
		/* born_ms may be a moment after now: another thread stored
		 * the batch after this caller read the clock */
		while (old < s->n && now > s->e[old].born_ms &&
		       now - s->e[old].born_ms > TTL_MS)
			old++;
		if (old == 0)
			continue;
		memmove(s->e, s->e + old, (s->n - old) * sizeof(*s->e));
		sodium_memzero(s->e + s->n - old, old * sizeof(*s->e));
		s->n -= old;
	}
}

static struct slot *
find(struct qprov_cache *c, const char *dst)
{
	for (size_t i = 0; i < SLOTS; i++)
		if (strcmp(c->slots[i].dst, dst) == 0)
			return &c->slots[i];
	return NULL;
}

/* The slot of dst, made from a free or the least recently used idle slot;
 * NULL if every slot has a fetch in flight. */
static struct slot *
find_or_make(struct qprov_cache *c, const char *dst)
{
	struct slot *s = find(c, dst), *lru = NULL;
	if (s != NULL)
		return s;
	for (size_t i = 0; i < SLOTS; i++) {
		struct slot *t = &c->slots[i];
		if (t->fetching)
			continue;
		if (t->dst[0] == '\0') {
			lru = t;
			break;
		}
		if (lru == NULL || t->used_ms < lru->used_ms)
			lru = t;
	}
	if (lru == NULL)
		return NULL;
	if (lru->e != NULL)
		sodium_memzero(lru->e, c->cap * sizeof(*lru->e));
	lru->n = 0;
	snprintf(lru->dst, sizeof(lru->dst), "%s", dst);
	return lru;
}

int
qprov_cache_take(struct qprov_cache *c, const char *dst, qkdn_key_id *id,
                 uint8_t key[QPROV_KEY_LEN], int wait_ms)
{
	uint64_t now = qkdn_now_ms(), deadline = now + (uint64_t)wait_ms;
	struct timespec until = {.tv_sec = (time_t)(deadline / 1000),
	                         .tv_nsec = (long)(deadline % 1000) * 1000000};
	struct slot *s;
	int rv = QPROV_CACHE_FETCH;
	if (strlen(dst) >= QKDN_AK_NAME_MAX)
		return QPROV_CACHE_FETCH;
	pthread_mutex_lock(&c->mtx);
	for (;;) {
		refresh(c, now);
		s = find_or_make(c, dst);
		if (s == NULL)
			break; /* fetch without a claim */
		s->used_ms = now;
		if (s->n > 0) {
			*id = s->e[0].id;
			memcpy(key, s->e[0].key, QPROV_KEY_LEN);
			s->n--;
			memmove(s->e, s->e + 1, s->n * sizeof(*s->e));
			sodium_memzero(s->e + s->n, sizeof(*s->e));
			rv = QPROV_CACHE_HIT;
			break;
		}
		if (!s->fetching) {
			s->fetching = 1;
			rv = QPROV_CACHE_CLAIMED;
			break;
		}
		/* the condition clock is monotonic, as qkdn_now_ms */
		if (pthread_cond_timedwait(&c->refilled, &c->mtx, &until) != 0)
			break; /* timed out: fetch without a claim */
		now = qkdn_now_ms();
	}
	pthread_mutex_unlock(&c->mtx);
	return rv;
}

void
qprov_cache_done(struct qprov_cache *c, const char *dst, int claimed,
                 const struct qkdn_ak_key *keys, size_t n)
{
	uint64_t now = qkdn_now_ms();
	struct slot *s;
	if (strlen(dst) >= QKDN_AK_NAME_MAX)
		return;
	pthread_mutex_lock(&c->mtx);
	refresh(c, now);
	s = n > 0 ? find_or_make(c, dst) : find(c, dst);
	if (s != NULL && s->e == NULL && n > 0)
		s->e = sodium_allocarray(c->cap, sizeof(*s->e));
	/* out of memory or full (a fetch that timed out waiting raced a
	 * claimed one): the rest are not kept, and the caller wipes them */
	for (size_t i = 0; s != NULL && s->e != NULL && i < n && s->n < c->cap;
	     i++) {
		if (keys[i].len != QPROV_KEY_LEN)
			continue;
		s->e[s->n].id = keys[i].id;
		memcpy(s->e[s->n].key, keys[i].bytes, QPROV_KEY_LEN);
		s->e[s->n].born_ms = now;
		s->n++;
	}
	if (s != NULL && claimed)
		s->fetching = 0;
	if (s != NULL)
		s->used_ms = now;
	pthread_cond_broadcast(&c->refilled);
	pthread_mutex_unlock(&c->mtx);
}
