#include "stock.h"

#include "kmc.h"
#include "qkdn_err.h"
#include "qkdn_log.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SRC "stock"
/* Bounded memory: at most this many triples, each dropped (its keys
 * wiped) once no request asked for it for IDLE_MS. */
#define TRIPLES_MAX 256
#define IDLE_MS     (5u * 60 * 1000)
/* A failed refill is retried after 100 ms, doubling up to 5 s: a KM that
 * has no key, a link down, is not hammered by the gateway. */
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
/* The refill thread wakes at least this often (expiry, idle triples). */
#define WAIT_MAX_MS 1000u
/* A KM too old to report its limits: the codec's (and the KM's) own. */
#define REQUEST_BYTES_DEFAULT (512u << 10)

/* A stocked key's ID and when the KM was asked for it (its age starts
 * before the KM took it: never younger than it is). IDs are not secret;
 * the bytes are in the triple's guarded slab. */
struct slot {
	qkdn_key_id id;
	uint64_t born_ms;
};

struct triple {
	char sae[QKDN_AK_NAME_MAX], dst[QKDN_AK_NAME_MAX];
	uint32_t bits, bytes;
	uint32_t max_age_ms;
	uint32_t head, count; /* a FIFO in a ring of target slots */
	struct slot *slots;
	uint8_t *keys;       /* sodium_allocarray(target, bytes) */
	uint64_t used_ms;    /* last request for it */
	uint64_t retry_ms;   /* no refill before (after a failure) */
	uint32_t backoff_ms; /* 0: the last refill worked */
	/* asked for since the stock was last at half its target or more: an
	 * unused stock whose keys expired is not refilled, so it costs at
	 * most one stock of key */
	bool wanted;
};

struct stock {
	struct kmc *kmc;
	uint32_t target;
	pthread_mutex_t mtx;
	pthread_cond_t cv; /* CLOCK_MONOTONIC; the refill thread waits */
	pthread_t thread;
	bool stopping;
	struct triple *t[TRIPLES_MAX];
	size_t next; /* where the next search for a refill starts */
	/* the KM's limits of one key request (refill thread only) */
	bool limits;
	uint32_t max_keys;
	uint64_t max_bytes;
	struct qkdn_log_limit fail_log, full_log, new_log;
	/* enc_keys served from a stock, and those a stock could not serve
	 * (logged at stop: how well the stock's size fits the load) */
	uint64_t hits, misses;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- one triple (under the mutex) ---- */

static uint8_t *
key_at(const struct triple *t, uint32_t i)
{
	return t->keys + (size_t)i * t->bytes;
}

static bool
below_half(const struct stock *s, const struct triple *t)
{
	return (uint64_t)t->count * 2 < s->target;
}

/* The oldest key leaves the FIFO, wiped. */
static void
drop_head(const struct stock *s, struct triple *t)
{
	sodium_memzero(key_at(t, t->head), t->bytes);
	t->head = (t->head + 1) % s->target;
	t->count--;
}

/* Keys past their max age are wiped, never handed out: the peer KM
 * forgets unfetched keys after its key_ttl, and dec_keys must still find
 * them. The FIFO is in age order: only the head need be looked at. */
static void
expire(const struct stock *s, struct triple *t, uint64_t now)
{
	while (t->count > 0 && now - t->slots[t->head].born_ms >= t->max_age_ms)
		drop_head(s, t);
}

static void
triple_free(struct triple *t)
{
	if (t == NULL)
		return;
	sodium_free(t->keys); /* wipes every slot */
	free(t->slots);
	free(t);
}

static struct triple *
triple_new(const struct stock *s, const char *sae, const char *dst,
           uint32_t bits, uint32_t max_age_ms)
{
	struct triple *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	snprintf(t->sae, sizeof(t->sae), "%s", sae);
	snprintf(t->dst, sizeof(t->dst), "%s", dst);
	t->bits = bits;
	t->bytes = bits / 8;
	t->max_age_ms = max_age_ms;
	t->slots = calloc(s->target, sizeof(*t->slots));
	/* guarded, mlocked, wiped by sodium_free */
	t->keys = sodium_allocarray(s->target, t->bytes);
	if (t->slots == NULL || t->keys == NULL) {
		triple_free(t);
		return NULL;
	}
	return t;
}

static int
find(const struct stock *s, const char *sae, const char *dst, uint32_t bits)
{
	for (int i = 0; i < TRIPLES_MAX; i++) {
		const struct triple *t = s->t[i];
		if (t != NULL && t->bits == bits && strcmp(t->sae, sae) == 0 &&
		    strcmp(t->dst, dst) == 0)
			return i;
	}
	return -1;
}

/* ---- the workers' side ---- */

bool
stock_take(struct stock *s, const char *sae, const char *dst, uint32_t bits,
           uint32_t n, struct qkdn_ak_key *out)
{
	if (s == NULL || n > s->target)
		return false;
	bool ok = false;
	pthread_mutex_lock(&s->mtx);
	int i = find(s, sae, dst, bits);
	if (i >= 0) {
		struct triple *t = s->t[i];
		uint64_t now = now_ms();
		expire(s, t, now);
		t->used_ms = now;
		t->wanted = true;
		ok = t->count >= n;
		/* copied out and wiped before the mutex is released: no
		 * other request can see these keys */
		for (uint32_t k = 0; ok && k < n; k++) {
			out[k].id = t->slots[t->head].id;
			out[k].len = t->bytes;
			memcpy(out[k].bytes, key_at(t, t->head), t->bytes);
			drop_head(s, t);
		}
		if (below_half(s, t))
			pthread_cond_signal(&s->cv);
	}
	if (ok)
		s->hits++;
	else
		s->misses++;
	pthread_mutex_unlock(&s->mtx);
	return ok;
}

/* A free place in the table, or -1. */
static int
free_place(const struct stock *s)
{
	for (int i = 0; i < TRIPLES_MAX; i++)
		if (s->t[i] == NULL)
			return i;
	return -1;
}

void
stock_start(struct stock *s, const char *sae, const char *dst, uint32_t bits,
            uint32_t max_age_ms)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mtx);
	bool known = find(s, sae, dst, bits) >= 0;
	bool full = !known && free_place(s) < 0;
	pthread_mutex_unlock(&s->mtx);
	if (full)
		QLOG_LIMITED(&s->full_log, QKDN_LOG_WARN, SRC,
		             "no stock for %s -> %s (%u bits): %d stocks "
		             "already",
		             sae, dst, bits, TRIPLES_MAX);
	if (known || full)
		return;
	/* allocated outside the mutex (mmap, mlock): the workers' takes
	 * need not wait for it */
	struct triple *t = triple_new(s, sae, dst, bits, max_age_ms);
	if (t == NULL) {
		QLOG_LIMITED(&s->full_log, QKDN_LOG_WARN, SRC,
		             "no stock for %s -> %s (%u bits): out of memory",
		             sae, dst, bits);
		return;
	}
	pthread_mutex_lock(&s->mtx);
	/* another worker may have started it (or taken the place) since */
	int at = find(s, sae, dst, bits) < 0 ? free_place(s) : -1;
	if (at >= 0) {
		t->used_ms = now_ms();
		t->wanted = true;
		s->t[at] = t;
		pthread_cond_signal(&s->cv);
	}
	pthread_mutex_unlock(&s->mtx);
	if (at < 0) {
		triple_free(t);
		return;
	}
	QLOG_LIMITED(&s->new_log, QKDN_LOG_INFO, SRC,
	             "stock for %s -> %s (%u bits): %u keys, each kept at most "
	             "%u ms",
	             sae, dst, bits, s->target, max_age_ms);
}

/* ---- the refill thread ---- */

/* How many keys of t's size one key request may take (the KM's limits,
 * asked once). */
static uint32_t
batch_cap(struct stock *s, const struct triple *t)
{
	if (!s->limits) {
		struct qkdn_ak_status st = {0};
		s->max_keys = QKDN_AK_KEYS_MAX;
		s->max_bytes = REQUEST_BYTES_DEFAULT;
		if (kmc_status(s->kmc, &st) == 0) {
			if (st.limits.max_keys != 0)
				s->max_keys = st.limits.max_keys;
			if (st.limits.max_request_bytes != 0)
				s->max_bytes = st.limits.max_request_bytes;
			s->limits = true;
			qkdn_ak_status_free(&st);
		}
	}
	uint64_t cap = s->max_bytes / t->bytes;
	cap = cap < s->max_keys ? cap : s->max_keys;
	return cap > 0 ? (uint32_t)cap : 1;
}

/* The next triple to refill (below half its target, asked for, not
 * backing off), round robin so one cannot starve the others; NULL if
 * none. */
static struct triple *
pick(struct stock *s, uint64_t now)
{
	for (size_t k = 0; k < TRIPLES_MAX; k++) {
		size_t i = (s->next + k) % TRIPLES_MAX;
		struct triple *t = s->t[i];
		if (t != NULL && t->wanted && below_half(s, t) &&
		    now >= t->retry_ms) {
			s->next = i + 1;
			return t;
		}
	}
	return NULL;
}

/* Add a batch the KM gave (its keys then wiped by the caller). */
static void
append(struct stock *s, struct triple *t, const struct qkdn_ak_key *keys,
       uint32_t n, uint64_t born)
{
	for (uint32_t k = 0; k < n && t->count < s->target; k++) {
		uint32_t i = (t->head + t->count) % s->target;
		t->slots[i] = (struct slot){.id = keys[k].id, .born_ms = born};
		memcpy(key_at(t, i), keys[k].bytes, t->bytes);
		t->count++;
	}
	if (!below_half(s, t))
		t->wanted = false;
}

/* One key request for target minus what t holds. Called and returns with
 * the mutex held; releases it while the KM answers. Only this thread adds
 * keys or frees triples, so t stays and its room only grows meanwhile. */
static void
refill(struct stock *s, struct triple *t)
{
	char sae[QKDN_AK_NAME_MAX], dst[QKDN_AK_NAME_MAX];
	char why[QKDN_AK_REASON_MAX] = "";
	memcpy(sae, t->sae, sizeof(sae));
	memcpy(dst, t->dst, sizeof(dst));
	uint32_t bits = t->bits, n = s->target - t->count;
	pthread_mutex_unlock(&s->mtx);

	uint32_t cap = batch_cap(s, t);
	n = n < cap ? n : cap;
	uint64_t born = now_ms();
	/* the KM's answer in guarded memory, wiped by sodium_free */
	struct qkdn_ak_key *keys = sodium_allocarray(n, sizeof(*keys));
	int rv = keys != NULL ? kmc_get_keys(s->kmc, sae, dst, bits, n, keys)
	                      : QKDN_E_NOMEM;
	for (uint32_t k = 0; rv == 0 && k < n; k++)
		if (keys[k].len != bits / 8)
			rv = QKDN_E_BAD_REQUEST; /* never: the KM's size */
	if (rv != 0)
		snprintf(why, sizeof(why), "%s", qkdn_ak_last_error());

	pthread_mutex_lock(&s->mtx);
	bool back = rv == 0 && t->backoff_ms != 0;
	if (rv == 0) {
		append(s, t, keys, n, born);
		t->backoff_ms = 0;
		t->retry_ms = 0;
	} else {
		/* the stock stays as it is; requests it cannot serve go
		 * to the KM and get its refusal */
		t->backoff_ms = t->backoff_ms == 0 ? BACKOFF_MIN_MS
		                : t->backoff_ms * 2 > BACKOFF_MAX_MS
		                    ? BACKOFF_MAX_MS
		                    : t->backoff_ms * 2;
		t->retry_ms = now_ms() + t->backoff_ms;
		if (rv == QKDN_E_TOO_LARGE || rv == QKDN_E_RANGE)
			s->limits = false; /* the KM's limits changed */
	}
	uint32_t backoff = t->backoff_ms;
	pthread_mutex_unlock(&s->mtx);

	sodium_free(keys);
	if (rv != 0)
		QLOG_LIMITED(&s->fail_log, QKDN_LOG_WARN, SRC,
		             "stock for %s -> %s (%u bits): refill of %u keys "
		             "failed: %s: %s; next try in %u ms",
		             sae, dst, bits, n, qkdn_strerror(rv), why,
		             backoff);
	else if (back)
		QLOG_LIMITED(&s->fail_log, QKDN_LOG_INFO, SRC,
		             "stock for %s -> %s (%u bits): refilled again",
		             sae, dst, bits);
	pthread_mutex_lock(&s->mtx);
}

static uint64_t
min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Wipe expired keys, drop idle triples; the time of the next thing to
 * do (an expiry, the end of a backoff) in *wake. */
static void
sweep(struct stock *s, uint64_t now, uint64_t *wake)
{
	for (int i = 0; i < TRIPLES_MAX; i++) {
		struct triple *t = s->t[i];
		if (t == NULL)
			continue;
		if (now - t->used_ms >= IDLE_MS) {
			s->t[i] = NULL;
			triple_free(t);
			continue;
		}
		expire(s, t, now);
		if (t->count > 0)
			*wake = min_u64(*wake, t->slots[t->head].born_ms +
			                           t->max_age_ms);
		if (t->wanted && below_half(s, t))
			*wake = min_u64(*wake, t->retry_ms);
	}
}

static void
wait_until(struct stock *s, uint64_t wake, uint64_t now)
{
	if (wake <= now)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + (wake - now) * 1000000;
	ts.tv_sec += (time_t)(ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	pthread_cond_timedwait(&s->cv, &s->mtx, &ts);
}

static void *
refill_main(void *arg)
{
	struct stock *s = arg;
	pthread_mutex_lock(&s->mtx);
	while (!s->stopping) {
		uint64_t now = now_ms(), wake = now + WAIT_MAX_MS;
		sweep(s, now, &wake);
		struct triple *t = pick(s, now);
		if (t != NULL)
			refill(s, t);
		else
			wait_until(s, wake, now);
	}
	pthread_mutex_unlock(&s->mtx);
	return NULL;
}

/* ---- life ---- */

int
stock_open(struct stock **out, const struct stock_config *cfg)
{
	*out = NULL;
	if (cfg->target == 0)
		return 0;
	struct stock *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return QKDN_E_NOMEM;
	s->kmc = cfg->kmc;
	s->target = cfg->target;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&s->mtx, NULL);
	if (pthread_create(&s->thread, NULL, refill_main, s) != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mtx);
		free(s);
		return QKDN_E_NOMEM;
	}
	*out = s;
	return 0;
}

void
stock_close(struct stock *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mtx);
	s->stopping = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mtx);
	pthread_join(s->thread, NULL); /* at most one KM timeout */
	QLOG_INFO(SRC, "%llu enc_keys served from the stock, %llu by the KM",
	          (unsigned long long)s->hits, (unsigned long long)s->misses);
	for (int i = 0; i < TRIPLES_MAX; i++)
		triple_free(s->t[i]);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mtx);
	free(s);
}
