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
 * Kx between the KMs is tcp:// or (--kx tls) tls+tcp://; --kx both
 * builds a second network with Kx on tls+tcp:// next to the tcp:// one
 * and measures (b) and (c) on the two in turn, to give TLS's cost as
 * ratios. docs/bench.md explains each figure. */
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
	int kx;     /* enum kx_mode */
};

/* ---- the networks measured ---- */

enum kx_mode { KX_TCP, KX_TLS, KX_BOTH };
static const char *const kx_words[] = {"tcp", "tls", "both", NULL};

/* A network measured, and where its figures go in JSON. With --kx both
 * there are two, measured in turn, so that both see the same moments of
 * this machine's load: [0] with Kx on tcp:// (its figures where a tcp run
 * puts them) and [1] on tls+tcp:// (under "kx_tls", each figure also over
 * [0]'s). */
struct kxnet {
	struct bench_net *n;
	cJSON *j;
};

#define KXNETS_MAX 2

static double
ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

/* "tcp" or "tls": a network's short name in tables */
static const char *
kx_word(const struct bench_net *n)
{
	return n->kx_tls ? "tls" : "tcp";
}

/* ---- (b) latency ---- */

#define LAT_WARMUP 50 /* requests of each kind before the samples */

/* the lines of (b) */
enum { L_FLOOR, L_SRC, L_DST, L_STATUS, L_N };

static const struct {
	const char *what, *key, *how;
} lat_lines[L_N] = {
    {"floor request", "floor", NULL},
    {"source request at A", "source",
     "(app -> KM A -> key sync to KM B, ack -> KM A -> app)"},
    {"destination fetch at B", "destination",
     "(app -> KM B: by key ID from B's store -> app)"},
    {"status request at A", "status", NULL},
};

struct latency {
	struct bench_samples s[L_N];
	uint64_t mismatches;
};

static void
latency_free(struct latency *lat)
{
	for (int i = 0; i < L_N; i++)
		bench_samples_free(&lat->s[i]);
}

/* When a measurement of seconds that starts now ends. The clock starts
 * after the warm-up, which may take a while: the first key sync of a
 * tls+tcp:// Kx may pay a handshake, and with --kx both there are two
 * warm-ups. */
static uint64_t
clock_after_warmup(double seconds)
{
	return bench_now_ns() + (uint64_t)(seconds * 1e9);
}

/* The Ak clients of one network's pairs: alice at A, bob at B. */
struct pair_ak {
	struct qkdn_ak *a, *b;
};

static int
pair_ak_open(const struct bench_net *n, struct pair_ak *c)
{
	int rv = qkdn_ak_open(&c->a, n->conf->nodes[0].ak_url, "alice",
	                      CALL_TIMEOUT_MS);
	if (rv == 0)
		rv = qkdn_ak_open(&c->b, n->conf->nodes[1].ak_url, "bob",
		                  CALL_TIMEOUT_MS);
	return rv;
}

/* A floor request (the Ak client to the stub of (a)), then a source
 * request at A and the destination fetch at B; the three times go into lat
 * if record. *done: when the fetch ended. */
static int
one_pair(struct qkdn_ak *stub, const struct pair_ak *c,
         const struct bench_net *n, struct latency *lat, bool record,
         uint64_t *done)
{
	struct qkdn_ak_key ka = {0}, kb = {0};
	uint64_t tf = bench_now_ns(), t0, t1;
	int rv;
	if ((rv = bench_status_once(stub)) != 0) {
		bench_note("floor request: %s", qkdn_ak_last_error());
		return rv;
	}
	t0 = bench_now_ns();
	if ((rv = qkdn_ak_get_keys(c->a, "bob", KEY_BITS, 1, &ka)) != 0) {
		bench_note("source request at A, Kx %s: %s",
		           bench_net_kx_scheme(n), qkdn_ak_last_error());
		return rv;
	}
	t1 = bench_now_ns();
	rv = qkdn_ak_get_keys_by_id(c->b, &ka.id, 1, &kb);
	*done = bench_now_ns();
	if (rv != 0)
		bench_note("destination fetch at B, Kx %s: %s",
		           bench_net_kx_scheme(n), qkdn_ak_last_error());
	else if (ka.len != kb.len || memcmp(ka.bytes, kb.bytes, ka.len) != 0)
		lat->mismatches++;
	qkdn_ak_keys_wipe(&ka, 1);
	qkdn_ak_keys_wipe(&kb, 1);
	if (rv != 0 || !record)
		return rv;
	if (bench_samples_add(&lat->s[L_FLOOR], t0 - tf) != 0 ||
	    bench_samples_add(&lat->s[L_SRC], t1 - t0) != 0 ||
	    bench_samples_add(&lat->s[L_DST], *done - t1) != 0)
		return QKDN_E_NOMEM;
	return 0;
}

/* Source request at A, then destination fetch at B, one key at a time,
 * on each of the nn networks in turn (lat[k] for nets[k]); each pair
 * follows a floor request to nets[0]'s stub, so that the ratios compare
 * requests made by the same client code under the same conditions (this
 * machine may be busy with others). */
static int
measure_pairs(struct bench_net *const *nets, size_t nn, double seconds,
              struct latency *lat)
{
	struct pair_ak c[KXNETS_MAX] = {{NULL, NULL}};
	struct qkdn_ak *stub = NULL;
	uint64_t end = UINT64_MAX, done = 0;
	int rv;
	memset(lat, 0, nn * sizeof(*lat));
	rv = bench_stub_open(&stub, nets[0]->echo.url);
	for (size_t k = 0; k < nn && rv == 0; k++)
		rv = pair_ak_open(nets[k], &c[k]);
	/* each round starts with the next network: neither always goes
	 * first */
	for (int i = 0; rv == 0 && done < end; i++) {
		if (i == LAT_WARMUP)
			end = clock_after_warmup(seconds);
		for (size_t j = 0; j < nn && rv == 0; j++) {
			size_t k = ((size_t)i + j) % nn;
			rv = one_pair(stub, &c[k], nets[k], &lat[k],
			              i >= LAT_WARMUP, &done);
		}
	}
	qkdn_ak_close(stub);
	for (size_t k = 0; k < nn; k++) {
		qkdn_ak_close(c[k].a);
		qkdn_ak_close(c[k].b);
	}
	return rv;
}

/* Status requests at A, on each network in turn, into lat[k]. */
static int
measure_status(struct bench_net *const *nets, size_t nn, double seconds,
               struct latency *lat)
{
	struct qkdn_ak *a[KXNETS_MAX] = {NULL};
	struct qkdn_ak_status st;
	uint64_t end = UINT64_MAX, t1 = 0;
	int rv = 0;
	for (size_t k = 0; k < nn && rv == 0; k++)
		rv = qkdn_ak_open(&a[k], nets[k]->conf->nodes[0].ak_url,
		                  "alice", CALL_TIMEOUT_MS);
	for (int i = 0; rv == 0 && t1 < end; i++) {
		if (i == LAT_WARMUP)
			end = clock_after_warmup(seconds);
		for (size_t j = 0; j < nn && rv == 0; j++) {
			size_t k = ((size_t)i + j) % nn;
			uint64_t t0 = bench_now_ns();
			if ((rv = qkdn_ak_status(a[k], &st)) != 0)
				break;
			t1 = bench_now_ns();
			qkdn_ak_status_free(&st);
			if (i >= LAT_WARMUP &&
			    bench_samples_add(&lat[k].s[L_STATUS], t1 - t0) !=
			        0)
				rv = QKDN_E_NOMEM;
		}
	}
	for (size_t k = 0; k < nn; k++)
		qkdn_ak_close(a[k]);
	return rv;
}

/* p50 and p99 of each line, microseconds */
struct lat_figs {
	double p50[L_N], p99[L_N];
};

static void
lat_figs_of(struct latency *lat, struct lat_figs *f)
{
	for (int i = 0; i < L_N; i++) {
		f->p50[i] = bench_samples_pct_us(&lat->s[i], 50);
		f->p99[i] = bench_samples_pct_us(&lat->s[i], 99);
	}
}

/* One latency line: p50 as a multiple of the floor measured alongside
 * (floor) and of the floor of (a) (floor_a). */
static void
say_lat(const struct bench_out *o, const char *what, double p50, double p99,
        double floor, double floor_a, const char *tail)
{
	bench_say(o,
	          "    %-23s p50 %7.1f us = %5.2fx (%5.2fx)   p99 %7.1f us%s%s",
	          what, p50, ratio(p50, floor), ratio(p50, floor_a), p99,
	          tail[0] != '\0' ? "   " : "", tail);
}

static cJSON *
lat_json(double p50, double p99, double floor, double floor_a)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "p50_us", p50);
	cJSON_AddNumberToObject(j, "p99_us", p99);
	cJSON_AddNumberToObject(j, "p50_x_floor", ratio(p50, floor));
	cJSON_AddNumberToObject(j, "p50_x_floor_a", ratio(p50, floor_a));
	return j;
}

/* What follows line i: its aim, or with ref (Kx tcp://'s figures, with
 * --kx both) its ratios to ref's. */
static void
lat_tail(char *out, size_t len, int i, const struct lat_figs *f,
         const struct lat_figs *ref)
{
	if (ref != NULL)
		snprintf(out, len, "tls/tcp: p50 %.2fx, p99 %.2fx",
		         ratio(f->p50[i], ref->p50[i]),
		         ratio(f->p99[i], ref->p99[i]));
	else if (i == L_SRC)
		snprintf(out, len, "aim <= %.1fx floor", AIM_SRC_X);
	else if (i == L_DST)
		snprintf(out, len, "aim <= %.1fx floor", AIM_DST_X);
	else if (i == L_STATUS)
		snprintf(out, len, "(no key work; run after)");
	else
		out[0] = '\0';
}

/* The lines of one network, in text and into j; with ref, each also as a
 * ratio to ref's. */
static void
report_latency(const struct bench_out *o, cJSON *j, const struct lat_figs *f,
               const struct lat_figs *ref, double floor_a)
{
	char tail[96];
	double fl = f->p50[L_FLOOR];
	for (int i = 0; i < L_N; i++) {
		lat_tail(tail, sizeof(tail), i, f, ref);
		say_lat(o, lat_lines[i].what, f->p50[i], f->p99[i], fl, floor_a,
		        tail);
		if (ref == NULL && lat_lines[i].how != NULL)
			bench_say(o, "      %s", lat_lines[i].how);
		cJSON *e = lat_json(f->p50[i], f->p99[i], fl, floor_a);
		if (ref != NULL) {
			cJSON_AddNumberToObject(e, "p50_x_tcp",
			                        ratio(f->p50[i], ref->p50[i]));
			cJSON_AddNumberToObject(e, "p99_x_tcp",
			                        ratio(f->p99[i], ref->p99[i]));
		}
		cJSON_AddItemToObject(j, lat_lines[i].key, e);
	}
}

static void
say_latency_head(const struct bench_out *o, size_t nn, double pairs)
{
	char cnt[32];
	bench_say(o, "(b) I.1 latency of one %d-bit key, 1 client, %s pairs%s",
	          KEY_BITS, bench_group(cnt, pairs),
	          nn > 1 ? " on each Kx, tcp:// and tls+tcp:// in turn" : "");
	bench_say(o, "    ratios: to the p50 of a floor request (Ak client to "
	             "the stub) made before each pair;");
	bench_say(o, "    in brackets, to the p50 of (a)'s bare nng echo");
}

static int
run_latency(const struct bench_out *o, const struct kxnet *kns, size_t nn,
            double seconds, const struct bench_floor *f)
{
	struct bench_net *nets[KXNETS_MAX];
	struct latency lat[KXNETS_MAX];
	struct lat_figs figs[KXNETS_MAX];
	int rv;
	for (size_t k = 0; k < nn; k++)
		nets[k] = kns[k].n;
	if ((rv = measure_pairs(nets, nn, seconds, lat)) != 0 ||
	    (rv = measure_status(nets, nn, seconds / 2, lat)) != 0)
		goto out;
	say_latency_head(o, nn, (double)lat[0].s[L_SRC].n);
	for (size_t k = 0; k < nn; k++) {
		lat_figs_of(&lat[k], &figs[k]);
		if (nn > 1)
			bench_say(o, "    Kx %s%s",
			          bench_net_kx_scheme(nets[k]),
			          k > 0 ? " (only the source request crosses "
			                  "Kx; the other lines show the noise)"
			                : "");
		cJSON *j = cJSON_AddObjectToObject(kns[k].j, "latency");
		cJSON_AddNumberToObject(j, "key_bits", KEY_BITS);
		cJSON_AddNumberToObject(j, "pairs", (double)lat[k].s[L_SRC].n);
		cJSON_AddNumberToObject(j, "mismatches",
		                        (double)lat[k].mismatches);
		report_latency(o, j, &figs[k], k > 0 ? &figs[0] : NULL,
		               f->p50_us);
		if (lat[k].mismatches > 0)
			bench_say(o, "    %llu pairs did NOT match",
			          (unsigned long long)lat[k].mismatches);
	}
	bench_blank(o);
out:
	for (size_t k = 0; k < nn; k++)
		latency_free(&lat[k]);
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

/* the figures of one line of (c) */
struct row {
	double kps, rps;
	double km_cpu_us; /* KM A + KM B CPU per key, microseconds */
};

static double
km_cpu_us_per_key(const struct bench_cpu *c, uint64_t keys)
{
	double s = 0;
	for (int p = BENCH_P_KM_A; p <= BENCH_P_KM_B; p++)
		s += c->t1[p] - c->t0[p];
	return keys > 0 ? s / (double)keys * 1e6 : 0;
}

/* The table's first columns; with label (--kx both) the Kx of the line. */
static void
say_row(const struct bench_out *o, const struct bench_net *n, bool label,
        int pairs, const struct bench_load *l, const struct pairs_run *r,
        const struct row *row)
{
	char kx[8] = "", k[32], q[32];
	if (label)
		snprintf(kx, sizeof(kx), "  %-3s", kx_word(n));
	bench_say(o,
	          "    %5d  %8u%s  %10s  %10s  %6llu   %10.0f  %5.0f  %5.0f  "
	          "%6.0f",
	          pairs, r->batch, kx, bench_group(k, row->kps),
	          bench_group(q, row->rps), (unsigned long long)l->errors,
	          bench_cpu_pct(&r->cpu, BENCH_P_SELF, l->elapsed_s),
	          bench_cpu_pct(&r->cpu, BENCH_P_KM_A, l->elapsed_s),
	          bench_cpu_pct(&r->cpu, BENCH_P_KM_B, l->elapsed_s),
	          bench_cpu_pct(&r->cpu, BENCH_P_SIM, l->elapsed_s));
	if (l->errors > 0)
		bench_say(o, "           first error: %s", l->first_error);
}

static cJSON *
row_json(int pairs, const struct bench_load *l, const struct pairs_run *r,
         const struct row *row, const struct row *ref)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "pairs", pairs);
	cJSON_AddNumberToObject(j, "keys_per_request", r->batch);
	cJSON_AddNumberToObject(j, "keys_per_s", row->kps);
	cJSON_AddNumberToObject(j, "requests_per_s", row->rps);
	cJSON_AddNumberToObject(j, "errors", (double)l->errors);
	if (l->errors > 0)
		cJSON_AddStringToObject(j, "first_error", l->first_error);
	cJSON_AddItemToObject(j, "cpu_pct",
	                      bench_cpu_json(&r->cpu, l->elapsed_s));
	cJSON_AddNumberToObject(j, "km_cpu_us_per_key", row->km_cpu_us);
	if (ref != NULL) {
		cJSON_AddNumberToObject(j, "keys_per_s_x_tcp",
		                        ratio(row->kps, ref->kps));
		cJSON_AddNumberToObject(j, "requests_per_s_x_tcp",
		                        ratio(row->rps, ref->rps));
		cJSON_AddNumberToObject(j, "km_cpu_per_key_x_tcp",
		                        ratio(row->km_cpu_us, ref->km_cpu_us));
	}
	return j;
}

/* One line of (c): pairs client pairs taking batch keys a request on
 * kn's network for seconds; its figures into *row and kn's JSON array arr.
 * With ref (the same line on Kx tcp://, with --kx both) a line of ratios
 * follows. */
static int
throughput_line(const struct bench_out *o, const struct kxnet *kn, bool label,
                int pairs, uint32_t batch, double seconds, struct row *row,
                const struct row *ref, cJSON *arr)
{
	struct pairs_run r = {.cpu.net = kn->n, .net = kn->n, .batch = batch};
	struct bench_load l = {.threads = pairs,
	                       .seconds = seconds,
	                       .warmup_ops = 5,
	                       .arg = &r,
	                       .setup = pair_setup,
	                       .op = pair_op,
	                       .teardown = pair_teardown,
	                       .mark = pairs_mark};
	int rv;
	if ((rv = bench_net_ensure_key(kn->n, KEY_READY_BYTES)) != 0)
		return rv;
	if ((rv = bench_load_run(&l)) != 0) {
		bench_note("%d pairs, Kx %s: cannot start: %s", pairs,
		           bench_net_kx_scheme(kn->n), l.first_error);
		bench_load_free(&l);
		return rv;
	}
	*row = (struct row){.kps = (double)l.units / l.elapsed_s,
	                    .rps = (double)l.ops / l.elapsed_s,
	                    .km_cpu_us = km_cpu_us_per_key(&r.cpu, l.units)};
	say_row(o, kn->n, label, pairs, &l, &r, row);
	if (ref != NULL)
		bench_say(o,
		          "                     tls/tcp: keys/s %.2fx, KM A+B "
		          "CPU per key %.2fx",
		          ratio(row->kps, ref->kps),
		          ratio(row->km_cpu_us, ref->km_cpu_us));
	cJSON_AddItemToArray(arr, row_json(pairs, &l, &r, row, ref));
	bench_load_free(&l);
	return 0;
}

static void
say_best(const struct bench_out *o, const struct kxnet *kns, size_t nn,
         const double *best)
{
	char k[32], q[32], t[32];
	if (nn == 1) {
		bench_say(o,
		          "    best with batches: %s keys/s   aim >= %s "
		          "keys/s per KM pair",
		          bench_group(k, best[0]),
		          bench_group(q, AIM_KEYS_PER_S));
		return;
	}
	bench_say(o,
	          "    best with batches: %s keys/s on Kx %s, %s on %s "
	          "(%.2fx)   aim >= %s keys/s per KM pair",
	          bench_group(k, best[0]), bench_net_kx_scheme(kns[0].n),
	          bench_group(t, best[1]), bench_net_kx_scheme(kns[1].n),
	          ratio(best[1], best[0]), bench_group(q, AIM_KEYS_PER_S));
}

static int
run_throughput(const struct bench_out *o, const struct kxnet *kns, size_t nn,
               const struct opts *op)
{
	static const uint32_t batches[] = {1, BATCH};
	double best[KXNETS_MAX] = {0};
	cJSON *arr[KXNETS_MAX];
	int rv = 0;
	bench_say(o,
	          "(c) keys/s with N client pairs: each takes %d-bit keys "
	          "at A and fetches them by ID at B",
	          KEY_BITS);
	bench_say(o,
	          "    (every key counted once; CPU in %% of one core, 200%% "
	          "is this whole machine)");
	bench_say(o,
	          "    pairs  keys/req%s      keys/s  requests/s  errors   "
	          "CPU: bench   KM A   KM B  qkdsim",
	          nn > 1 ? "  Kx " : "");
	for (size_t k = 0; k < nn; k++)
		arr[k] = cJSON_AddArrayToObject(kns[k].j, "throughput");
	for (int c = 0; c < op->n_clients && rv == 0; c++)
		for (size_t b = 0; b < 2 && rv == 0; b++) {
			struct row row[KXNETS_MAX];
			for (size_t k = 0; k < nn && rv == 0; k++) {
				rv = throughput_line(
				    o, &kns[k], nn > 1, op->clients[c],
				    batches[b], op->seconds, &row[k],
				    k > 0 ? &row[0] : NULL, arr[k]);
				if (rv == 0 && batches[b] > 1 &&
				    row[k].kps > best[k])
					best[k] = row[k].kps;
			}
		}
	if (rv == 0)
		say_best(o, kns, nn, best);
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

/* One more latency measurement, with B's store full. */
static void
report_full(const struct bench_out *o, struct latency *lat, double floor_a,
            cJSON *jm)
{
	struct lat_figs f;
	lat_figs_of(lat, &f);
	double fp50 = f.p50[L_FLOOR];
	bench_say(o,
	          "    then, one key at a time: source request p50 %.1f "
	          "us = %.2fx floor, destination fetch",
	          f.p50[L_SRC], ratio(f.p50[L_SRC], fp50));
	bench_say(o,
	          "      p50 %.1f us = %.2fx floor (floor request "
	          "alongside: p50 %.1f us)",
	          f.p50[L_DST], ratio(f.p50[L_DST], fp50), fp50);
	cJSON *jl = cJSON_AddObjectToObject(jm, "latency_full");
	for (int i = L_FLOOR; i <= L_DST; i++)
		cJSON_AddItemToObject(
		    jl, lat_lines[i].key,
		    lat_json(f.p50[i], f.p99[i], fp50, floor_a));
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
	if ((rv = measure_pairs(&n, 1, seconds / 2, &lat)) == 0)
		report_full(o, &lat, floor_a, jm);
	latency_free(&lat);
	return rv;
}

/* VmRSS etc. of both KMs of kn's network; label: its Kx in the line */
static int
say_km_memory(const struct bench_out *o, const struct kxnet *kn, bool label,
              cJSON *j)
{
	static const char *const keys[2] = {"km_a", "km_b"};
	struct bench_mem m;
	char who[64];
	int rv;
	for (int i = 0; i < 2; i++) {
		if ((rv = bench_mem_read(kn->n->procs[BENCH_P_KM_A + i].pid,
		                         &m)) != 0)
			return rv;
		snprintf(who, sizeof(who), "KM %c after (b) and (c)%s%s",
		         'A' + i, label ? ", " : "",
		         label ? kx_word(kn->n) : "");
		say_mem(o, who, &m);
		cJSON_AddItemToObject(j, keys[i], mem_json(&m));
	}
	return 0;
}

/* Both KMs of each network; the million keys on the first only. */
static int
run_memory(const struct bench_out *o, const struct kxnet *kns, size_t nn,
           const struct opts *op, double floor_a)
{
	int rv;
	bench_say(o,
	          "(d) KM memory, MiB   aim: the KM's own memory under %d "
	          "MiB, whatever the store holds",
	          AIM_MEM_MIB);
	bench_say(o, "                                     VmRSS    VmHWM  "
	             "private  LMDB map");
	for (size_t k = 0; k < nn; k++) {
		cJSON *j = cJSON_AddObjectToObject(kns[k].j, "memory");
		cJSON_AddNumberToObject(j, "aim_mib", AIM_MEM_MIB);
		if ((rv = say_km_memory(o, &kns[k], nn > 1, j)) != 0)
			return rv;
	}
	if (op->million) {
		cJSON *jm = cJSON_AddObjectToObject(kns[0].j, "million");
		if ((rv = run_million(o, kns[0].n, op->seconds, floor_a, jm)) !=
		    0)
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
	        "[--kx tcp|tls|both]\n"
	        "                     [--million | --no-million] [--json] "
	        "[--no-pause] [--keep]\n"
	        "  --seconds S     per measurement (default 2)\n"
	        "  --clients LIST  concurrent client pairs for keys/s "
	        "(default 1,4,16; each 1..%d)\n"
	        "  --kx WHICH      Kx between the KMs: tcp (default: "
	        "tcp://), tls (tls+tcp://,\n"
	        "                  certificates made by qkdn-certs), or both: "
	        "a second network with\n"
	        "                  Kx on tls+tcp://, (b) and (c) measured on "
	        "the two in turn and\n"
	        "                  each tls figure also given over its tcp "
	        "twin\n"
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
	    {"kx", BENCH_OPT_CHOICE, .dst = &o->kx, .choices = kx_words},
	    {"million", BENCH_OPT_FLAG, .dst = &o->million, .value = true},
	    {"no-million", BENCH_OPT_FLAG, .dst = &o->million, .value = false},
	    {"json", BENCH_OPT_FLAG, .dst = &o->json, .value = true},
	    {"keep", BENCH_OPT_FLAG, .dst = &o->keep, .value = true},
	    {"no-pause", BENCH_OPT_FLAG, .dst = &o->pause, .value = false},
	    {"help", BENCH_OPT_HELP, .dst = NULL},
	};
	*o = (struct opts){
	    .seconds = 2, .million = true, .pause = true, .kx = KX_TCP};
	return bench_parse("ak", usage, opts, sizeof(opts) / sizeof(opts[0]),
	                   argc, argv);
}

/* The link is paused once it holds key; what the KMs and the emulator
 * then spend doing nothing, into j. */
static int
pause_link(const struct bench_out *o, struct bench_net *n, cJSON *j)
{
	struct bench_cpu idle = {.net = n};
	int rv;
	if ((rv = bench_net_wait_key(n, BENCH_NET_TOPUP_BYTES)) != 0 ||
	    (rv = bench_net_link_run(n, false)) != 0)
		return rv;
	bench_sleep_ms(200); /* blocks in flight */
	bench_cpu_mark(&idle, 0);
	bench_sleep_ms(500);
	bench_cpu_mark(&idle, 1);
	bench_say(o,
	          "  so the link is paused while measuring, and resumed "
	          "only to top the pool up to %.0f MiB",
	          BENCH_NET_TOPUP_BYTES / MIB);
	bench_say(o,
	          "  idle with the link paused: KM A %.0f%%, KM B %.0f%%, "
	          "qkdsim %.0f%%",
	          bench_cpu_pct(&idle, BENCH_P_KM_A, 0.5),
	          bench_cpu_pct(&idle, BENCH_P_KM_B, 0.5),
	          bench_cpu_pct(&idle, BENCH_P_SIM, 0.5));
	cJSON_AddItemToObject(j, "paused_idle_cpu_pct",
	                      bench_cpu_json(&idle, 0.5));
	return 0;
}

/* How the start went, into the text and j: ms until the daemons
 * answered and until they held key (certificates not counted, shown
 * apart), and the CPU of taking in key. */
static void
say_start(const struct bench_out *o, const struct bench_net *n,
          uint64_t start_ms, uint64_t key_ms, const struct bench_cpu *intake,
          cJSON *j)
{
	bench_say(o,
	          "network: KMs and qkdsim answered in %llu ms, %.0f MiB of "
	          "key after %llu ms more",
	          (unsigned long long)start_ms, KEY_READY_BYTES / MIB,
	          (unsigned long long)key_ms);
	if (n->kx_tls)
		bench_say(o,
		          "  (and before them, certificates made by qkdn-certs "
		          "in %llu ms)",
		          (unsigned long long)n->certs_ms);
	bench_say(o,
	          "  taking in key at %llu Mbit/s costs KM A %.0f%%, KM B "
	          "%.0f%%, qkdsim %.0f%% of one core",
	          BENCH_NET_RATE_BPS / 1000000,
	          bench_cpu_pct(intake, BENCH_P_KM_A, 1.0),
	          bench_cpu_pct(intake, BENCH_P_KM_B, 1.0),
	          bench_cpu_pct(intake, BENCH_P_SIM, 1.0));
	cJSON_AddStringToObject(j, "kx", bench_net_kx_scheme(n));
	if (n->kx_tls)
		cJSON_AddNumberToObject(j, "certs_ms", (double)n->certs_ms);
	cJSON_AddNumberToObject(j, "start_ms", (double)start_ms);
	cJSON_AddNumberToObject(j, "first_key_ms", (double)key_ms);
	cJSON_AddItemToObject(j, "intake_cpu_pct", bench_cpu_json(intake, 1.0));
}

/* Start kn's network and wait for key; label (--kx both): a line first
 * saying which network this is. */
static int
setup_network(const struct bench_out *o, const struct kxnet *kn, bool pause,
              bool label)
{
	struct bench_net *n = kn->n;
	struct bench_cpu intake = {.net = n};
	int rv;
	if (label)
		bench_say(o, "Kx %s127.0.0.1:%d and :%d, run dir %s:",
		          bench_net_kx_scheme(n), n->kx_port[0], n->kx_port[1],
		          n->dir);
	uint64_t t0 = qkdn_now_ms();
	if ((rv = bench_net_start(n, "qkdn-bench ak")) != 0)
		return rv;
	uint64_t t1 = qkdn_now_ms();
	if ((rv = bench_net_wait_key(n, KEY_READY_BYTES)) != 0)
		return rv;
	uint64_t t2 = qkdn_now_ms();

	/* what taking in key costs when nothing else happens */
	bench_cpu_mark(&intake, 0);
	bench_sleep_ms(1000);
	bench_cpu_mark(&intake, 1);
	cJSON *j = cJSON_AddObjectToObject(kn->j, "network");
	say_start(o, n, t1 - t0 - n->certs_ms, t2 - t1, &intake, j);
	cJSON_AddBoolToObject(j, "link_paused_while_measuring", pause);
	if (pause)
		rv = pause_link(o, n, j);
	else
		bench_say(o, "  (the link keeps running while measuring: "
		             "--no-pause)");
	bench_blank(o);
	return rv;
}

/* --kx both: the second network, like n but with Kx on tls+tcp://, in
 * n->dir/tls; started once n's link is paused, so that neither start-up
 * is measured along with the other's intake of key. */
static int
setup_tls_twin(const struct bench_out *o, struct bench_net *n, struct kxnet *kn,
               bool pause)
{
	int rv = bench_net_sub(n, "tls", &kn->n);
	if (rv != 0)
		return rv;
	kn->n->pairs = n->pairs;
	kn->n->kx_tls = true;
	kn->j = cJSON_AddObjectToObject(o->root, "kx_tls");
	bench_note("starting a second qkdn-qkdsim and two qkdn-km, Kx on "
	           "tls+tcp://");
	return setup_network(o, kn, pause, true);
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
	          "  Kx %s127.0.0.1:%d and :%d, Ak ipc://, %d SAE "
	          "pairs; run dir %s",
	          bench_net_kx_scheme(n), n->kx_port[0], n->kx_port[1],
	          n->pairs, n->dir);
	if (op->kx == KX_TLS)
		bench_say(o, "  (Kx certificates made by qkdn-certs in the run "
		             "dir)");
	if (op->kx == KX_BOTH) {
		bench_say(o, "  --kx both: and a second network like it with "
		             "Kx on tls+tcp:// (in tls/ there);");
		bench_say(o, "  (b) and (c) take turns between the two, each "
		             "tls figure also over its tcp one");
	}
	cJSON *j = bench_header_end(o, op->seconds);
	cJSON_AddStringToObject(j, "kx", kx_words[op->kx]);
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

/* Everything after the floor: the network(s), then (b), (c) and (d). */
static int
run_on_networks(const struct bench_out *o, struct bench_net *n,
                const struct opts *op, const struct bench_floor *fl)
{
	struct kxnet kns[KXNETS_MAX] = {{.n = n, .j = o->root}};
	size_t nn = op->kx == KX_BOTH ? 2 : 1;
	int rv;
	bench_note("starting qkdn-qkdsim and two qkdn-km%s",
	           n->kx_tls ? ", Kx on tls+tcp://" : "");
	if ((rv = setup_network(o, &kns[0], op->pause, nn > 1)) != 0 ||
	    (nn > 1 && (rv = setup_tls_twin(o, n, &kns[1], op->pause)) != 0))
		return rv;
	if ((rv = run_latency(o, kns, nn, op->seconds, fl)) != 0 ||
	    (rv = run_throughput(o, kns, nn, op)) != 0)
		return rv;
	return run_memory(o, kns, nn, op, fl->p50_us);
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
	/* with both, this one is the tcp:// network, its tls twin comes
	 * later */
	n->kx_tls = op.kx == KX_TLS;

	/* the floor first, on a quiet machine; its echo server before any
	 * nng thread, and kept for (b) */
	say_header(&o, &op, n);
	if ((rv = bench_echo_start(&n->echo, n->dir)) != 0 ||
	    (rv = bench_floor_run(&o, &n->echo, op.seconds, FLOOR_CLIENTS,
	                          &fl)) != 0)
		goto out;
	rv = run_on_networks(&o, n, &op, &fl);
out:
	bench_net_stop(n);
	bench_echo_stop(&n->echo);
	return bench_finish(&o, n, rv, op.keep);
}
