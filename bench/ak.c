/* qkdn-bench ak: key supply over Ak (ITU-T Q.4160 I.1) on a two-node
 * network of its own (net.c: a network file in a fresh temporary
 * directory, qkdn-qkdsim and two qkdn-km next to this executable). It
 * waits for them and for key, and prints:
 *   (a) the floor: a bare nng REQ/REP echo over the same transport;
 *   (b) latency of one key: the source request at A and the fetch by ID
 *       at B, also as multiples of the floor;
 *   (c) keys/s with N concurrent client pairs, one key and 64 keys a
 *       request, with the CPU each process used;
 *   (d) the KMs' memory, and with --million, B's memory with a million
 *       keys waiting in its store.
 * docs/bench.md explains each figure. */
#include "bench.h"

#include "qkdn_ak.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_netconf.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_BITS         256
#define KEY_BYTES        (KEY_BITS / 8)
#define BATCH            64
#define MILLION          1000000
#define FILL_BATCH       4096
#define FILL_THREADS     4
#define FILL_DEADLINE_S  300
#define CALL_TIMEOUT_MS  10000
#define KEY_READY_BYTES  (16u << 20) /* for each keys/s run */
#define CLIENTS_MAX      256
#define FLOOR_CLIENTS    16
#define CLIENT_LISTS_MAX 16
#define MIB              (1024.0 * 1024.0)

/* aims, printed next to the figures */
#define AIM_DST_X      1.3
#define AIM_SRC_X      2.5
#define AIM_KEYS_PER_S 100000
#define AIM_MEM_MIB    32

struct opts {
	double seconds;
	int clients[CLIENT_LISTS_MAX];
	int n_clients;
	bool million, json, keep;
	bool pause; /* pause the link while measuring */
};

/* ---- (b) latency ---- */

struct latency {
	struct bench_samples floor, src, dst;
	uint64_t mismatches;
};

static void
latency_free(struct latency *lat)
{
	bench_samples_free(&lat->floor);
	bench_samples_free(&lat->src);
	bench_samples_free(&lat->dst);
}

/* Source request at A, then destination fetch at B, one key at a time;
 * each pair follows a floor request (the Ak client to the stub of (a)), so
 * that the ratios compare requests made by the same client code under the
 * same conditions (this machine may be busy with others). */
static int
measure_pairs(struct bench_net *n, double seconds, struct latency *lat)
{
	struct qkdn_ak *a = NULL, *b = NULL;
	struct qkdn_ak_key ka, kb;
	struct qkdn_ak *stub = NULL;
	int rv;
	memset(lat, 0, sizeof(*lat));
	if ((rv = bench_stub_open(&stub, n->echo.url)) != 0 ||
	    (rv = qkdn_ak_open(&a, n->conf->nodes[0].ak_url, "alice",
	                       CALL_TIMEOUT_MS)) != 0 ||
	    (rv = qkdn_ak_open(&b, n->conf->nodes[1].ak_url, "bob",
	                       CALL_TIMEOUT_MS)) != 0)
		goto out;
	uint64_t start = bench_now_ns(),
	         end = start + (uint64_t)(seconds * 1e9);
	for (int i = 0;; i++) {
		uint64_t tf = bench_now_ns();
		if ((rv = bench_status_once(stub)) != 0) {
			bench_note("floor request: %s", qkdn_ak_last_error());
			goto out;
		}
		uint64_t t0 = bench_now_ns();
		if ((rv = qkdn_ak_get_keys(a, "bob", KEY_BITS, 1, &ka)) != 0) {
			bench_note("source request at A: %s",
			           qkdn_ak_last_error());
			goto out;
		}
		uint64_t t1 = bench_now_ns();
		if ((rv = qkdn_ak_get_keys_by_id(b, &ka.id, 1, &kb)) != 0) {
			bench_note("destination fetch at B: %s",
			           qkdn_ak_last_error());
			goto out;
		}
		uint64_t t2 = bench_now_ns();
		if (ka.len != kb.len || memcmp(ka.bytes, kb.bytes, ka.len) != 0)
			lat->mismatches++;
		qkdn_ak_keys_wipe(&ka, 1);
		qkdn_ak_keys_wipe(&kb, 1);
		if (i < 50)
			continue; /* warm-up */
		if (bench_samples_add(&lat->floor, t0 - tf) != 0 ||
		    bench_samples_add(&lat->src, t1 - t0) != 0 ||
		    bench_samples_add(&lat->dst, t2 - t1) != 0) {
			rv = QKDN_E_NOMEM;
			goto out;
		}
		if (t2 >= end)
			break;
	}
out:
	qkdn_ak_keys_wipe(&ka, 1);
	qkdn_ak_keys_wipe(&kb, 1);
	qkdn_ak_close(stub);
	qkdn_ak_close(a);
	qkdn_ak_close(b);
	return rv;
}

static int
measure_status(struct bench_net *n, double seconds, struct bench_samples *s)
{
	struct qkdn_ak *a;
	struct qkdn_ak_status st;
	int rv = qkdn_ak_open(&a, n->conf->nodes[0].ak_url, "alice",
	                      CALL_TIMEOUT_MS);
	if (rv != 0)
		return rv;
	uint64_t end = bench_now_ns() + (uint64_t)(seconds * 1e9);
	for (int i = 0; rv == 0; i++) {
		uint64_t t0 = bench_now_ns();
		if ((rv = qkdn_ak_status(a, &st)) != 0)
			break;
		uint64_t t1 = bench_now_ns();
		qkdn_ak_status_free(&st);
		if (i >= 50 && bench_samples_add(s, t1 - t0) != 0)
			rv = QKDN_E_NOMEM;
		if (t1 >= end)
			break;
	}
	qkdn_ak_close(a);
	return rv;
}

/* One latency line: p50 as a multiple of the floor measured alongside
 * (floor) and of the floor of (a) (floor_a). */
static void
say_lat(const struct bench_out *o, const char *what, double p50, double p99,
        double floor, double floor_a, const char *aim)
{
	bench_say(o,
	          "    %-23s p50 %7.1f us = %5.2fx (%5.2fx)   p99 %7.1f us%s%s",
	          what, p50, floor > 0 ? p50 / floor : 0,
	          floor_a > 0 ? p50 / floor_a : 0, p99,
	          aim[0] != '\0' ? "   " : "", aim);
}

static cJSON *
lat_json(double p50, double p99, double floor, double floor_a)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "p50_us", p50);
	cJSON_AddNumberToObject(j, "p99_us", p99);
	cJSON_AddNumberToObject(j, "p50_x_floor", floor > 0 ? p50 / floor : 0);
	cJSON_AddNumberToObject(j, "p50_x_floor_a",
	                        floor_a > 0 ? p50 / floor_a : 0);
	return j;
}

static int
run_latency(const struct bench_out *o, struct bench_net *n, double seconds,
            const struct bench_floor *f)
{
	struct latency lat;
	struct bench_samples status = {0};
	char aim[64], cnt[32];
	int rv;
	if ((rv = measure_pairs(n, seconds, &lat)) != 0 ||
	    (rv = measure_status(n, seconds / 2, &status)) != 0)
		goto out;
	double fp50 = bench_samples_pct_us(&lat.floor, 50),
	       fp99 = bench_samples_pct_us(&lat.floor, 99),
	       sp50 = bench_samples_pct_us(&lat.src, 50),
	       sp99 = bench_samples_pct_us(&lat.src, 99),
	       dp50 = bench_samples_pct_us(&lat.dst, 50),
	       dp99 = bench_samples_pct_us(&lat.dst, 99),
	       tp50 = bench_samples_pct_us(&status, 50),
	       tp99 = bench_samples_pct_us(&status, 99);
	bench_say(o, "(b) I.1 latency of one %d-bit key, 1 client, %s pairs",
	          KEY_BITS, bench_group(cnt, (double)lat.src.n));
	bench_say(o, "    ratios: to the p50 of a floor request (Ak client to "
	             "the stub) made before each pair;");
	bench_say(o, "    in brackets, to the p50 of (a)'s bare nng echo");
	say_lat(o, "floor request", fp50, fp99, fp50, f->p50_us, "");
	snprintf(aim, sizeof(aim), "aim <= %.1fx floor", AIM_SRC_X);
	say_lat(o, "source request at A", sp50, sp99, fp50, f->p50_us, aim);
	bench_say(o, "      (app -> KM A -> key sync to KM B, ack -> KM A -> "
	             "app)");
	snprintf(aim, sizeof(aim), "aim <= %.1fx floor", AIM_DST_X);
	say_lat(o, "destination fetch at B", dp50, dp99, fp50, f->p50_us, aim);
	bench_say(o, "      (app -> KM B: by key ID from B's store -> app)");
	say_lat(o, "status request at A", tp50, tp99, fp50, f->p50_us,
	        "(no key work; run after)");
	if (lat.mismatches > 0)
		bench_say(o, "    %llu pairs did NOT match",
		          (unsigned long long)lat.mismatches);
	bench_blank(o);

	cJSON *j = cJSON_AddObjectToObject(o->root, "latency");
	cJSON_AddNumberToObject(j, "key_bits", KEY_BITS);
	cJSON_AddNumberToObject(j, "pairs", (double)lat.src.n);
	cJSON_AddNumberToObject(j, "mismatches", (double)lat.mismatches);
	cJSON_AddItemToObject(j, "floor",
	                      lat_json(fp50, fp99, fp50, f->p50_us));
	cJSON_AddItemToObject(j, "source",
	                      lat_json(sp50, sp99, fp50, f->p50_us));
	cJSON_AddItemToObject(j, "destination",
	                      lat_json(dp50, dp99, fp50, f->p50_us));
	cJSON_AddItemToObject(j, "status",
	                      lat_json(tp50, tp99, fp50, f->p50_us));
out:
	latency_free(&lat);
	bench_samples_free(&status);
	return rv;
}

/* ---- (c) keys/s with N client pairs ---- */

struct pairs_run {
	struct bench_cpu cpu;
	struct bench_net *net;
	uint32_t batch;
};

struct pair {
	struct qkdn_ak *a, *b;
	char dst[QKDN_AK_NAME_MAX];
	struct qkdn_ak_key *ka, *kb;
	qkdn_key_id *ids;
};

static void
pair_teardown(struct bench_worker *w)
{
	struct pair *p = w->priv;
	if (p == NULL)
		return;
	qkdn_ak_close(p->a);
	qkdn_ak_close(p->b);
	free(p->ka);
	free(p->kb);
	free(p->ids);
	free(p);
	w->priv = NULL;
}

static int
pair_setup(struct bench_worker *w)
{
	struct pairs_run *r = w->arg;
	struct pair *p = calloc(1, sizeof(*p));
	char src[QKDN_AK_NAME_MAX];
	if ((w->priv = p) == NULL)
		return QKDN_E_NOMEM;
	bench_net_sae(src, sizeof(src), 0, w->idx);
	bench_net_sae(p->dst, sizeof(p->dst), 1, w->idx);
	p->ka = calloc(r->batch, sizeof(*p->ka));
	p->kb = calloc(r->batch, sizeof(*p->kb));
	p->ids = calloc(r->batch, sizeof(*p->ids));
	if (p->ka == NULL || p->kb == NULL || p->ids == NULL ||
	    qkdn_ak_open(&p->a, r->net->conf->nodes[0].ak_url, src,
	                 CALL_TIMEOUT_MS) != 0 ||
	    qkdn_ak_open(&p->b, r->net->conf->nodes[1].ak_url, p->dst,
	                 CALL_TIMEOUT_MS) != 0) {
		pair_teardown(w);
		return QKDN_E_NOMEM;
	}
	return 0;
}

static int
pair_op(struct bench_worker *w, char *why, size_t whylen)
{
	struct pairs_run *r = w->arg;
	struct pair *p = w->priv;
	uint32_t n = r->batch;
	int rv = qkdn_ak_get_keys(p->a, p->dst, KEY_BITS, n, p->ka);
	if (rv != 0) {
		snprintf(why, whylen, "source request at A: %s",
		         qkdn_ak_last_error());
		return rv;
	}
	for (uint32_t i = 0; i < n; i++)
		p->ids[i] = p->ka[i].id;
	rv = qkdn_ak_get_keys_by_id(p->b, p->ids, n, p->kb);
	if (rv != 0) {
		snprintf(why, whylen, "destination fetch at B: %s",
		         qkdn_ak_last_error());
		qkdn_ak_keys_wipe(p->ka, n);
		return rv;
	}
	for (uint32_t i = 0; i < n && rv == 0; i++)
		if (memcmp(p->ka[i].bytes, p->kb[i].bytes, KEY_BYTES) != 0) {
			snprintf(why, whylen,
			         "the two ends got different keys");
			rv = QKDN_E_INTERNAL;
		}
	qkdn_ak_keys_wipe(p->ka, n);
	qkdn_ak_keys_wipe(p->kb, n);
	return rv != 0 ? rv : (int)n;
}

static void
pairs_mark(void *arg, int phase)
{
	bench_cpu_mark(&((struct pairs_run *)arg)->cpu, phase);
}

static int
run_throughput(const struct bench_out *o, struct bench_net *n,
               const struct opts *op)
{
	static const uint32_t batches[] = {1, BATCH};
	char k[32], q[32];
	double best = 0;
	int rv = 0;
	bench_say(o,
	          "(c) keys/s with N client pairs: each takes %d-bit keys "
	          "at A and fetches them by ID at B",
	          KEY_BITS);
	bench_say(o,
	          "    (every key counted once; CPU in %% of one core, 200%% "
	          "is this whole machine)");
	bench_say(o, "    pairs  keys/req      keys/s  requests/s  errors   "
	             "CPU: bench   KM A   KM B  qkdsim");
	cJSON *arr = cJSON_AddArrayToObject(o->root, "throughput");
	for (int c = 0; c < op->n_clients && rv == 0; c++) {
		for (size_t b = 0; b < 2 && rv == 0; b++) {
			struct pairs_run r = {
			    .cpu.net = n, .net = n, .batch = batches[b]};
			struct bench_load l = {.threads = op->clients[c],
			                       .seconds = op->seconds,
			                       .warmup_ops = 5,
			                       .arg = &r,
			                       .setup = pair_setup,
			                       .op = pair_op,
			                       .teardown = pair_teardown,
			                       .mark = pairs_mark};
			if ((rv = bench_net_ensure_key(n, KEY_READY_BYTES)) !=
			    0)
				break;
			if ((rv = bench_load_run(&l)) != 0) {
				bench_note("%d pairs: cannot start: %s",
				           op->clients[c], l.first_error);
				bench_load_free(&l);
				break;
			}
			double kps = (double)l.units / l.elapsed_s,
			       rps = (double)l.ops / l.elapsed_s;
			if (batches[b] > 1 && kps > best)
				best = kps;
			bench_say(
			    o,
			    "    %5d  %8u  %10s  %10s  %6llu   %10.0f  "
			    "%5.0f  %5.0f  %6.0f",
			    op->clients[c], batches[b], bench_group(k, kps),
			    bench_group(q, rps), (unsigned long long)l.errors,
			    bench_cpu_pct(&r.cpu, BENCH_P_SELF, l.elapsed_s),
			    bench_cpu_pct(&r.cpu, BENCH_P_KM_A, l.elapsed_s),
			    bench_cpu_pct(&r.cpu, BENCH_P_KM_B, l.elapsed_s),
			    bench_cpu_pct(&r.cpu, BENCH_P_SIM, l.elapsed_s));
			if (l.errors > 0)
				bench_say(o, "           first error: %s",
				          l.first_error);
			cJSON *j = cJSON_CreateObject();
			cJSON_AddNumberToObject(j, "pairs", op->clients[c]);
			cJSON_AddNumberToObject(j, "keys_per_request",
			                        batches[b]);
			cJSON_AddNumberToObject(j, "keys_per_s", kps);
			cJSON_AddNumberToObject(j, "requests_per_s", rps);
			cJSON_AddNumberToObject(j, "errors", (double)l.errors);
			if (l.errors > 0)
				cJSON_AddStringToObject(j, "first_error",
				                        l.first_error);
			cJSON_AddItemToObject(
			    j, "cpu_pct", bench_cpu_json(&r.cpu, l.elapsed_s));
			cJSON_AddItemToArray(arr, j);
			bench_load_free(&l);
		}
	}
	if (rv == 0)
		bench_say(o,
		          "    best with batches: %s keys/s   aim >= %s "
		          "keys/s per KM pair",
		          bench_group(k, best), bench_group(q, AIM_KEYS_PER_S));
	bench_blank(o);
	return rv;
}

/* ---- (d) memory and the million keys ---- */

static void
say_mem(const struct bench_out *o, const char *who, const struct bench_mem *m)
{
	bench_say(o, "    %-30s %7.1f  %7.1f  %7.1f  %8.1f", who,
	          (double)m->rss_kib / 1024, (double)m->hwm_kib / 1024,
	          (double)m->private_kib / 1024, (double)m->mdb_kib / 1024);
}

static cJSON *
mem_json(const struct bench_mem *m)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "vm_rss_mib", (double)m->rss_kib / 1024);
	cJSON_AddNumberToObject(j, "vm_hwm_mib", (double)m->hwm_kib / 1024);
	cJSON_AddNumberToObject(j, "private_mib",
	                        (double)m->private_kib / 1024);
	cJSON_AddNumberToObject(j, "lmdb_mapped_mib",
	                        (double)m->mdb_kib / 1024);
	return j;
}

struct fill {
	struct bench_cpu cpu;
	struct bench_net *net;
	atomic_int_fast64_t left;
	uint64_t deadline_ms;
};

struct filler {
	struct qkdn_ak *a;
	struct qkdn_ak_key *keys;
};

static void
fill_teardown(struct bench_worker *w)
{
	struct filler *f = w->priv;
	if (f == NULL)
		return;
	qkdn_ak_close(f->a);
	free(f->keys);
	free(f);
	w->priv = NULL;
}

static int
fill_setup(struct bench_worker *w)
{
	struct fill *fl = w->arg;
	struct filler *f = calloc(1, sizeof(*f));
	if ((w->priv = f) == NULL)
		return QKDN_E_NOMEM;
	if ((f->keys = calloc(FILL_BATCH, sizeof(*f->keys))) == NULL ||
	    qkdn_ak_open(&f->a, fl->net->conf->nodes[0].ak_url, "alice",
	                 CALL_TIMEOUT_MS) != 0) {
		fill_teardown(w);
		return QKDN_E_NOMEM;
	}
	return 0;
}

static int
fill_op(struct bench_worker *w, char *why, size_t whylen)
{
	struct fill *fl = w->arg;
	struct filler *f = w->priv;
	int_fast64_t left = atomic_load(&fl->left), n;
	do {
		if (left <= 0 || qkdn_now_ms() > fl->deadline_ms)
			return 0;
		n = left < FILL_BATCH ? left : FILL_BATCH;
	} while (!atomic_compare_exchange_weak(&fl->left, &left, left - n));
	int rv = qkdn_ak_get_keys(f->a, "bob", KEY_BITS, (uint32_t)n, f->keys);
	if (rv != 0) {
		atomic_fetch_add(&fl->left, n); /* someone tries again */
		snprintf(why, whylen, "source request at A: %s",
		         qkdn_ak_last_error());
		return rv;
	}
	qkdn_ak_keys_wipe(f->keys, (size_t)n);
	return (int)n;
}

static void
fill_mark(void *arg, int phase)
{
	bench_cpu_mark(&((struct fill *)arg)->cpu, phase);
}

static int
run_million(const struct bench_out *o, struct bench_net *n, double seconds,
            double floor_a, cJSON *jm)
{
	struct fill f = {.cpu.net = n, .net = n};
	struct bench_mem m;
	struct latency lat;
	uint64_t out_a, in_b, pending = 0;
	bool up;
	char a[32], b[32];
	int rv;

	/* the fill takes MILLION keys and a MAC key per sync at once */
	if ((rv = bench_net_ensure_key(n, (uint64_t)MILLION * KEY_BYTES +
	                                      (4u << 20))) != 0)
		return rv;
	atomic_init(&f.left, MILLION);
	f.deadline_ms = qkdn_now_ms() + FILL_DEADLINE_S * 1000;
	struct bench_load l = {.threads = FILL_THREADS,
	                       .seconds = 0, /* until all are taken */
	                       .arg = &f,
	                       .setup = fill_setup,
	                       .op = fill_op,
	                       .teardown = fill_teardown,
	                       .mark = fill_mark};
	if ((rv = bench_load_run(&l)) != 0) {
		bench_note("filling: %s", l.first_error);
		bench_load_free(&l);
		return rv;
	}
	double kps = (double)l.units / l.elapsed_s;
	bench_say(o,
	          "    filling B's store: %s keys of %d bits (requests of "
	          "%d at A, %d clients, never fetched)",
	          bench_group(a, (double)l.units), KEY_BITS, FILL_BATCH,
	          FILL_THREADS);
	bench_say(o,
	          "      took %.1f s = %s keys/s; CPU: bench %.0f%%, KM A "
	          "%.0f%%, KM B %.0f%%, qkdsim %.0f%%",
	          l.elapsed_s, bench_group(b, kps),
	          bench_cpu_pct(&f.cpu, BENCH_P_SELF, l.elapsed_s),
	          bench_cpu_pct(&f.cpu, BENCH_P_KM_A, l.elapsed_s),
	          bench_cpu_pct(&f.cpu, BENCH_P_KM_B, l.elapsed_s),
	          bench_cpu_pct(&f.cpu, BENCH_P_SIM, l.elapsed_s));
	if (l.errors > 0)
		bench_say(o, "      %llu errors; first: %s",
		          (unsigned long long)l.errors, l.first_error);
	cJSON *jf = cJSON_AddObjectToObject(jm, "fill");
	cJSON_AddNumberToObject(jf, "keys", (double)l.units);
	cJSON_AddNumberToObject(jf, "seconds", l.elapsed_s);
	cJSON_AddNumberToObject(jf, "keys_per_s", kps);
	cJSON_AddNumberToObject(jf, "errors", (double)l.errors);
	cJSON_AddItemToObject(jf, "cpu_pct",
	                      bench_cpu_json(&f.cpu, l.elapsed_s));
	bench_load_free(&l);

	if ((rv = bench_net_link_state(n, &out_a, &in_b, &up, &pending)) != 0)
		return rv;
	cJSON_AddNumberToObject(jm, "keys_pending_b", (double)pending);
	if ((rv = bench_mem_read(n->procs[BENCH_P_KM_B].pid, &m)) != 0)
		return rv;
	char who[64];
	snprintf(who, sizeof(who), "KM B, %s keys waiting",
	         bench_group(a, (double)pending));
	say_mem(o, who, &m);
	cJSON_AddItemToObject(jm, "km_b_full", mem_json(&m));
	if ((rv = bench_mem_read(n->procs[BENCH_P_KM_A].pid, &m)) != 0)
		return rv;
	say_mem(o, "KM A after the fill", &m);
	cJSON_AddItemToObject(jm, "km_a_after_fill", mem_json(&m));

	/* does a full store slow the fetch down? */
	if ((rv = measure_pairs(n, seconds / 2, &lat)) == 0) {
		double fp50 = bench_samples_pct_us(&lat.floor, 50),
		       sp50 = bench_samples_pct_us(&lat.src, 50),
		       dp50 = bench_samples_pct_us(&lat.dst, 50);
		bench_say(
		    o,
		    "    then, one key at a time: source request p50 %.1f "
		    "us = %.2fx floor, destination fetch",
		    sp50, sp50 / fp50);
		bench_say(o,
		          "      p50 %.1f us = %.2fx floor (floor request "
		          "alongside: p50 %.1f us)",
		          dp50, dp50 / fp50, fp50);
		cJSON *jl = cJSON_AddObjectToObject(jm, "latency_full");
		cJSON_AddItemToObject(
		    jl, "floor",
		    lat_json(fp50, bench_samples_pct_us(&lat.floor, 99), fp50,
		             floor_a));
		cJSON_AddItemToObject(
		    jl, "source",
		    lat_json(sp50, bench_samples_pct_us(&lat.src, 99), fp50,
		             floor_a));
		cJSON_AddItemToObject(
		    jl, "destination",
		    lat_json(dp50, bench_samples_pct_us(&lat.dst, 99), fp50,
		             floor_a));
	}
	latency_free(&lat);
	return rv;
}

static int
run_memory(const struct bench_out *o, struct bench_net *n,
           const struct opts *op, double floor_a)
{
	struct bench_mem m[2];
	int rv;
	bench_say(o,
	          "(d) KM memory, MiB   aim: the KM's own memory under %d "
	          "MiB, whatever the store holds",
	          AIM_MEM_MIB);
	bench_say(o, "                                     VmRSS    VmHWM  "
	             "private  LMDB map");
	cJSON *j = cJSON_AddObjectToObject(o->root, "memory");
	cJSON_AddNumberToObject(j, "aim_mib", AIM_MEM_MIB);
	for (int i = 0; i < 2; i++) {
		if ((rv = bench_mem_read(n->procs[BENCH_P_KM_A + i].pid,
		                         &m[i])) != 0)
			return rv;
		say_mem(o,
		        i == 0 ? "KM A after (b) and (c)"
		               : "KM B after (b) and (c)",
		        &m[i]);
	}
	cJSON_AddItemToObject(j, "km_a", mem_json(&m[0]));
	cJSON_AddItemToObject(j, "km_b", mem_json(&m[1]));
	if (op->million) {
		cJSON *jm = cJSON_AddObjectToObject(o->root, "million");
		if ((rv = run_million(o, n, op->seconds, floor_a, jm)) != 0)
			return rv;
	}
	bench_say(o, "    private: Private_Dirty of anonymous mappings, [heap] "
	             "and [stack] (smaps);");
	bench_say(o, "    LMDB map: data.mdb pages in VmRSS (file cache, "
	             "shared and reclaimable, not the KM's own)");
	return 0;
}

/* ---- the command ---- */

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: qkdn-bench ak [--seconds S] [--clients N,N,...] "
	        "[--million | --no-million] [--json] [--no-pause] [--keep]\n"
	        "  --seconds S     per measurement (default 2)\n"
	        "  --clients LIST  concurrent client pairs for keys/s "
	        "(default 1,4,16; each 1..%d)\n"
	        "  --no-million    skip filling B's store with a million "
	        "keys\n"
	        "  --json          one JSON document on stdout instead of "
	        "text\n"
	        "  --no-pause      keep the link delivering key while "
	        "measuring (by default it\n"
	        "                  is paused once the pools hold key, and "
	        "resumed to top them up)\n"
	        "  --keep          keep the run directory (network file, "
	        "logs, stores)\n",
	        CLIENTS_MAX);
}

static int
parse(struct opts *o, int argc, char **argv)
{
	const struct bench_opt opts[] = {
	    {"seconds", BENCH_OPT_SECONDS, .dst = &o->seconds, .min = 0.1},
	    {"clients", BENCH_OPT_LIST, .dst = o->clients, .n = &o->n_clients,
	     .max = CLIENT_LISTS_MAX, .hi = CLIENTS_MAX, .dflt = "1,4,16"},
	    {"million", BENCH_OPT_FLAG, .dst = &o->million, .value = true},
	    {"no-million", BENCH_OPT_FLAG, .dst = &o->million, .value = false},
	    {"json", BENCH_OPT_FLAG, .dst = &o->json, .value = true},
	    {"keep", BENCH_OPT_FLAG, .dst = &o->keep, .value = true},
	    {"no-pause", BENCH_OPT_FLAG, .dst = &o->pause, .value = false},
	    {"help", BENCH_OPT_HELP, .dst = NULL},
	};
	*o = (struct opts){.seconds = 2, .million = true, .pause = true};
	return bench_parse("ak", usage, opts, sizeof(opts) / sizeof(opts[0]),
	                   argc, argv);
}

static int
setup_network(const struct bench_out *o, struct bench_net *n, bool pause)
{
	int rv;
	uint64_t t0 = qkdn_now_ms();
	if ((rv = bench_net_start(n, "qkdn-bench ak")) != 0)
		return rv;
	uint64_t t1 = qkdn_now_ms();
	if ((rv = bench_net_wait_key(n, KEY_READY_BYTES)) != 0)
		return rv;
	uint64_t t2 = qkdn_now_ms();

	/* what taking in key costs when nothing else happens */
	struct bench_cpu intake = {.net = n}, idle = {.net = n};
	bench_cpu_mark(&intake, 0);
	bench_sleep_ms(1000);
	bench_cpu_mark(&intake, 1);
	bench_say(o,
	          "network: KMs and qkdsim answered in %llu ms, %.0f MiB of "
	          "key after %llu ms more",
	          (unsigned long long)(t1 - t0), KEY_READY_BYTES / MIB,
	          (unsigned long long)(t2 - t1));
	bench_say(o,
	          "  taking in key at %llu Mbit/s costs KM A %.0f%%, KM B "
	          "%.0f%%, qkdsim %.0f%% of one core",
	          BENCH_NET_RATE_BPS / 1000000,
	          bench_cpu_pct(&intake, BENCH_P_KM_A, 1.0),
	          bench_cpu_pct(&intake, BENCH_P_KM_B, 1.0),
	          bench_cpu_pct(&intake, BENCH_P_SIM, 1.0));
	cJSON *j = cJSON_AddObjectToObject(o->root, "network");
	cJSON_AddNumberToObject(j, "start_ms", (double)(t1 - t0));
	cJSON_AddNumberToObject(j, "first_key_ms", (double)(t2 - t1));
	cJSON_AddItemToObject(j, "intake_cpu_pct",
	                      bench_cpu_json(&intake, 1.0));
	cJSON_AddBoolToObject(j, "link_paused_while_measuring", pause);
	if (pause) {
		if ((rv = bench_net_wait_key(n, BENCH_NET_TOPUP_BYTES)) != 0 ||
		    (rv = bench_net_link_run(n, false)) != 0)
			return rv;
		bench_sleep_ms(200); /* blocks in flight */
		bench_cpu_mark(&idle, 0);
		bench_sleep_ms(500);
		bench_cpu_mark(&idle, 1);
		bench_say(
		    o,
		    "  so the link is paused while measuring, and resumed "
		    "only to top the pool up to %.0f MiB",
		    BENCH_NET_TOPUP_BYTES / MIB);
		bench_say(
		    o,
		    "  idle with the link paused: KM A %.0f%%, KM B %.0f%%, "
		    "qkdsim %.0f%%",
		    bench_cpu_pct(&idle, BENCH_P_KM_A, 0.5),
		    bench_cpu_pct(&idle, BENCH_P_KM_B, 0.5),
		    bench_cpu_pct(&idle, BENCH_P_SIM, 0.5));
		cJSON_AddItemToObject(j, "paused_idle_cpu_pct",
		                      bench_cpu_json(&idle, 0.5));
	} else {
		bench_say(o, "  (the link keeps running while measuring: "
		             "--no-pause)");
	}
	bench_blank(o);
	return 0;
}

static void
say_header(const struct bench_out *o, const struct opts *op,
           const struct bench_net *n)
{
	char list[128] = "";
	size_t at = 0;
	for (int i = 0; i < op->n_clients; i++)
		at += (size_t)snprintf(list + at, sizeof(list) - at, "%s%d",
		                       i ? "," : "", op->clients[i]);
	bench_say(o,
	          "qkdn-bench ak: %.1f s per measurement, client pairs %s, "
	          "million-key fill %s",
	          op->seconds, list, op->million ? "on" : "off");
	bench_say(o,
	          "network: nodes A and B, link A_B at %llu Mbit/s in %d-byte "
	          "blocks, pool max %llu MiB;",
	          BENCH_NET_RATE_BPS / 1000000, BENCH_NET_BLOCK_BYTES,
	          BENCH_NET_POOL_MAX_BYTES >> 20);
	bench_say(o,
	          "  Kx tcp://127.0.0.1:%d and :%d, Ak ipc://, %d SAE "
	          "pairs; run dir %s",
	          n->kx_port[0], n->kx_port[1], n->pairs, n->dir);
	cJSON *j = bench_header_end(o, op->seconds);
	cJSON_AddItemToObject(j, "clients",
	                      cJSON_CreateIntArray(op->clients, op->n_clients));
	cJSON_AddBoolToObject(j, "million", op->million);
	cJSON_AddNumberToObject(j, "rate_bps", (double)BENCH_NET_RATE_BPS);
	cJSON_AddNumberToObject(j, "block_bytes", BENCH_NET_BLOCK_BYTES);
	cJSON_AddNumberToObject(j, "pool_max_bytes",
	                        (double)BENCH_NET_POOL_MAX_BYTES);
	cJSON_AddNumberToObject(j, "key_bits", KEY_BITS);
	cJSON_AddNumberToObject(j, "batch", BATCH);
	cJSON_AddStringToObject(j, "run_dir", n->dir);
	cJSON *a = cJSON_AddObjectToObject(o->root, "aims");
	cJSON_AddNumberToObject(a, "destination_x_floor", AIM_DST_X);
	cJSON_AddNumberToObject(a, "source_x_floor", AIM_SRC_X);
	cJSON_AddNumberToObject(a, "keys_per_s_batched", AIM_KEYS_PER_S);
	cJSON_AddNumberToObject(a, "km_memory_mib", AIM_MEM_MIB);
}

int
bench_ak(int argc, char **argv)
{
	struct opts op;
	struct bench_out o = {0};
	struct bench_floor fl;
	struct bench_net *n = calloc(1, sizeof(*n));
	int rv = parse(&op, argc, argv);
	if (rv != 0 || n == NULL) {
		free(n);
		return rv == 1 ? 0 : 2;
	}
	if ((rv = bench_begin(&o, op.json, n)) != 0)
		goto out;
	/* one SAE pair per client thread of the largest run */
	n->pairs = 1;
	for (int i = 0; i < op.n_clients; i++)
		if (op.clients[i] > n->pairs)
			n->pairs = op.clients[i];

	/* the floor first, on a quiet machine; its echo server before any
	 * nng thread, and kept for (b) */
	say_header(&o, &op, n);
	if ((rv = bench_echo_start(&n->echo, n->dir)) != 0 ||
	    (rv = bench_floor_run(&o, &n->echo, op.seconds, FLOOR_CLIENTS,
	                          &fl)) != 0)
		goto out;
	bench_note("starting qkdn-qkdsim and two qkdn-km");
	if ((rv = setup_network(&o, n, op.pause)) != 0 ||
	    (rv = run_latency(&o, n, op.seconds, &fl)) != 0 ||
	    (rv = run_throughput(&o, n, &op)) != 0 ||
	    (rv = run_memory(&o, n, &op, fl.p50_us)) != 0)
		goto out;
out:
	bench_net_stop(n);
	bench_echo_stop(&n->echo);
	return bench_finish(&o, n, rv, op.keep);
}
