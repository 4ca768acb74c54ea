/* Closed-loop load: N threads each repeat one synchronous operation, all
 * starting together on a barrier; the clock runs from the barrier to the
 * last thread's return, so operations in flight at the stop are counted
 * and so is their time. */
#include "bench.h"

#include "qkdn_err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_BACKOFF_MS 1 /* a refusing server must not become a spin */

struct shared {
	struct bench_load *l;
	pthread_barrier_t start;
	atomic_bool stop;
};

struct thread {
	pthread_t t;
	struct shared *sh;
	struct bench_worker w;
	int setup_rv;
};

static void
note_error(struct bench_worker *w, const char *why)
{
	if (w->first_error[0] == '\0')
		snprintf(w->first_error, sizeof(w->first_error), "%s", why);
}

static void *
worker_main(void *arg)
{
	struct thread *t = arg;
	struct bench_load *l = t->sh->l;
	struct bench_worker *w = &t->w;
	char why[256];
	int rv;

	t->setup_rv = l->setup != NULL ? l->setup(w) : 0;
	if (t->setup_rv != 0)
		note_error(w, "setup failed");
	for (int i = 0; t->setup_rv == 0 && i < l->warmup_ops; i++)
		if (l->op(w, why, sizeof(why)) < 0)
			break;
	pthread_barrier_wait(&t->sh->start);
	while (t->setup_rv == 0 && !atomic_load(&t->sh->stop)) {
		uint64_t t0 = bench_now_ns();
		why[0] = '\0';
		rv = l->op(w, why, sizeof(why));
		uint64_t t1 = bench_now_ns();
		if (rv == 0)
			break; /* nothing left to do */
		if (rv < 0) {
			w->errors++;
			note_error(w, why[0] != '\0' ? why : qkdn_strerror(rv));
			bench_sleep_ms(ERROR_BACKOFF_MS);
			continue;
		}
		w->ops++;
		w->units += (uint64_t)rv;
		if (l->latency && bench_samples_add(&w->lat, t1 - t0) != 0)
			note_error(w, "out of memory for samples");
	}
	if (l->teardown != NULL)
		l->teardown(w);
	return NULL;
}

int
bench_load_run(struct bench_load *l)
{
	struct shared sh = {.l = l};
	struct thread *ts = calloc((size_t)l->threads, sizeof(*ts));
	int started = 0, rv = 0;

	l->elapsed_s = 0;
	l->units = l->ops = l->errors = 0;
	l->first_error[0] = '\0';
	if (ts == NULL)
		return QKDN_E_NOMEM;
	if (pthread_barrier_init(&sh.start, NULL, (unsigned)l->threads + 1) !=
	    0) {
		free(ts);
		return QKDN_E_INTERNAL;
	}
	atomic_init(&sh.stop, false);
	for (; started < l->threads; started++) {
		struct thread *t = &ts[started];
		t->sh = &sh;
		t->w.idx = started;
		t->w.arg = l->arg;
		if (pthread_create(&t->t, NULL, worker_main, t) != 0)
			break;
	}
	if (started < l->threads) {
		/* the barrier would never open: abandon the run. The threads
		 * started are stuck on it; this is a benchmark, so exit. */
		bench_note("cannot start %d threads", l->threads);
		exit(1);
	}
	pthread_barrier_wait(&sh.start);
	if (l->mark != NULL)
		l->mark(l->arg, 0);
	uint64_t t0 = bench_now_ns();
	if (l->seconds > 0) {
		bench_sleep_ms((int)(l->seconds * 1000));
		atomic_store(&sh.stop, true);
	}
	for (int i = 0; i < started; i++)
		pthread_join(ts[i].t, NULL);
	l->elapsed_s = (double)(bench_now_ns() - t0) / 1e9;
	if (l->mark != NULL)
		l->mark(l->arg, 1);

	for (int i = 0; i < started; i++) {
		struct bench_worker *w = &ts[i].w;
		l->units += w->units;
		l->ops += w->ops;
		l->errors += w->errors;
		if (ts[i].setup_rv != 0)
			rv = ts[i].setup_rv;
		if (l->first_error[0] == '\0' && w->first_error[0] != '\0')
			snprintf(l->first_error, sizeof(l->first_error), "%s",
			         w->first_error);
		if (rv == 0 && bench_samples_merge(&l->lat, &w->lat) != 0)
			rv = QKDN_E_NOMEM;
		bench_samples_free(&w->lat);
	}
	pthread_barrier_destroy(&sh.start);
	free(ts);
	return rv;
}

void
bench_load_free(struct bench_load *l)
{
	bench_samples_free(&l->lat);
}
