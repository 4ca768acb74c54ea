/* qkdn-bench tls (a): TLS 1.3 handshakes/s for X25519, qkd and x25519_qkd
 * with one P-256 certificate, client and server in this process over a
 * BIO pair, on 1 thread and on --threads threads, each group as a
 * multiple of X25519 in the same run, the keys each KM supplied per
 * handshake and the CPU each process spent per handshake; qkd with
 * batch = 1 on 1 thread shows what the server's key cache buys. */
#include "tls.h"

#include "qkdn_err.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define KEY_NEED_BYTES (4u << 20) /* before each measurement */
#define WARMUP         2          /* handshakes per thread and slice */
#define MAX_FLIGHTS    8          /* client/server steps per handshake */
#define EXPORT_LABEL   "EXPORTER-qkdn-bench"

enum { G_X25519, G_QKD, G_HYB, G_QKD_B1, N_GROUPS };

static const struct {
	const char *group; /* TLS group name */
	const char *label; /* in the report */
	bool batch1;       /* the server with batch = 1 */
	bool qkd;          /* spends QKD key */
} groups[N_GROUPS] = {
    {"X25519", "X25519", false, false},
    {"qkd", "qkd", false, true},
    {"x25519_qkd", "x25519_qkd", false, true},
    {"qkd", "qkd, batch 1", true, true},
};

/* What (a) measures with: library contexts, and one SSL_CTX per group and
 * end. */
struct rate {
	const struct bench_tls_opts *op;
	struct bench_net *net;
	OSSL_LIB_CTX *server_lib[2], *client_lib;
	SSL_CTX *sctx[N_GROUPS], *cctx[N_GROUPS];
};

static int
step(SSL *ssl, bool *done)
{
	int rv;
	if (*done)
		return 1;
	rv = SSL_do_handshake(ssl);
	if (rv == 1) {
		*done = true;
		return 1;
	}
	rv = SSL_get_error(ssl, rv);
	return rv == SSL_ERROR_WANT_READ || rv == SSL_ERROR_WANT_WRITE;
}

/* One full handshake over a BIO pair, checked: the group is the one
 * asked and both ends export the same keying material. */
static int
handshake(SSL_CTX *sctx, SSL_CTX *cctx, const char *group, char *why,
          size_t whylen)
{
	SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
	BIO *bc = NULL, *bs = NULL;
	bool cdone = false, sdone = false;
	unsigned char ec[32], es[32];
	int rv = QKDN_E_INTERNAL;

	ERR_clear_error();
	if (c == NULL || s == NULL || !BIO_new_bio_pair(&bc, 0, &bs, 0)) {
		bench_tls_errors(why, whylen, "SSL_new");
		goto out;
	}
	SSL_set_bio(c, bc, bc);
	SSL_set_bio(s, bs, bs);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (int i = 0; i < MAX_FLIGHTS && !(cdone && sdone); i++) {
		if (!step(c, &cdone)) {
			bench_tls_errors(why, whylen, "client");
			goto out;
		}
		if (!step(s, &sdone)) {
			bench_tls_errors(why, whylen, "server");
			goto out;
		}
	}
	if (!(cdone && sdone)) {
		snprintf(why, whylen, "handshake did not complete");
		goto out;
	}
	const char *name = SSL_group_to_name(c, SSL_get_negotiated_group(c));
	if (name == NULL || strcasecmp(name, group) != 0) {
		snprintf(why, whylen, "negotiated %s, asked %s",
		         name != NULL ? name : "?", group);
		goto out;
	}
	if (SSL_export_keying_material(c, ec, sizeof(ec), EXPORT_LABEL,
	                               strlen(EXPORT_LABEL), NULL, 0, 0) != 1 ||
	    SSL_export_keying_material(s, es, sizeof(es), EXPORT_LABEL,
	                               strlen(EXPORT_LABEL), NULL, 0, 0) != 1 ||
	    CRYPTO_memcmp(ec, es, sizeof(ec)) != 0) {
		snprintf(why, whylen, "the ends exported different keys");
		goto out;
	}
	rv = 0;
out:
	SSL_free(c);
	SSL_free(s);
	OPENSSL_cleanse(ec, sizeof(ec));
	OPENSSL_cleanse(es, sizeof(es));
	return rv;
}

static OSSL_LIB_CTX *
load_lib(const char *cnf)
{
	OSSL_LIB_CTX *l = OSSL_LIB_CTX_new();
	if (l == NULL || !OSSL_LIB_CTX_load_config(l, cnf) ||
	    !OSSL_PROVIDER_available(l, "qkdn")) {
		char why[600];
		bench_tls_errors(why, sizeof(why), cnf);
		bench_note("cannot load the provider: %s", why);
		OSSL_LIB_CTX_free(l);
		return NULL;
	}
	return l;
}

/* Library contexts and one SSL_CTX per group and end; X25519 uses the
 * same contexts as the QKD groups. */
static int
load_contexts(struct rate *t, const struct bench_tls *tls)
{
	if ((t->server_lib[0] = load_lib(tls->server_cnf[0])) == NULL ||
	    (t->server_lib[1] = load_lib(tls->server_cnf[1])) == NULL ||
	    (t->client_lib = load_lib(tls->client_cnf)) == NULL)
		return QKDN_E_CONFIG;
	for (int g = 0; g < N_GROUPS; g++) {
		OSSL_LIB_CTX *sl = t->server_lib[groups[g].batch1 ? 1 : 0];
		t->sctx[g] =
		    bench_tls_ctx(sl, true, groups[g].group, &tls->cert);
		t->cctx[g] =
		    bench_tls_ctx(t->client_lib, false, groups[g].group, NULL);
		if (t->sctx[g] == NULL || t->cctx[g] == NULL) {
			char why[600];
			bench_tls_errors(why, sizeof(why), groups[g].group);
			bench_note("cannot make the TLS contexts: %s", why);
			return QKDN_E_CONFIG;
		}
	}
	return 0;
}

static void
free_contexts(struct rate *t)
{
	for (int g = 0; g < N_GROUPS; g++) {
		SSL_CTX_free(t->sctx[g]);
		SSL_CTX_free(t->cctx[g]);
	}
	for (int i = 0; i < 2; i++)
		OSSL_LIB_CTX_free(t->server_lib[i]);
	OSSL_LIB_CTX_free(t->client_lib);
}

/* One measurement: a group on a number of threads, summed over its
 * slices. */
struct result {
	double elapsed_s;
	uint64_t handshakes, errors;
	uint64_t supplied[2]; /* keys supplied by KM A and KM B */
	double cpu_s[BENCH_N_PROCS];
	double machine_s; /* busy time of all CPUs, every process */
	struct bench_samples lat;
	char first_error[256];
};

/* What the X25519 line of the same thread count measured. */
struct base {
	double per_s;  /* handshakes/s */
	double cpu_us; /* CPU of every process of ours per handshake */
};

struct slice {
	struct rate *t;
	int g;
	struct bench_cpu cpu;
	uint64_t supplied[2][2]; /* [KM][before, after] */
	double busy[2];          /* machine_busy_s() before, after */
	int status_rv;
};

/* Busy time of the whole machine since boot, seconds: every CPU's user,
 * nice, system, irq and softirq time in /proc/stat. */
static double
machine_busy_s(void)
{
	unsigned long long user, nice, sys, idle, iowait, irq, softirq;
	FILE *f = fopen("/proc/stat", "r");
	int n = f != NULL
	            ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &user,
	                     &nice, &sys, &idle, &iowait, &irq, &softirq)
	            : 0;
	if (f != NULL)
		fclose(f);
	if (n != 7)
		return 0;
	return (double)(user + nice + sys + irq + softirq) /
	       (double)sysconf(_SC_CLK_TCK);
}

static int
hs_op(struct bench_worker *w, char *why, size_t whylen)
{
	struct slice *s = w->arg;
	int rv = handshake(s->t->sctx[s->g], s->t->cctx[s->g],
	                   groups[s->g].group, why, whylen);
	return rv != 0 ? rv : 1;
}

static void
hs_mark(void *arg, int phase)
{
	struct slice *s = arg;
	for (int km = 0; km < 2; km++) {
		int rv =
		    bench_net_supplied(s->t->net, km, &s->supplied[km][phase]);
		if (rv != 0)
			s->status_rv = rv;
	}
	bench_cpu_mark(&s->cpu, phase);
	s->busy[phase] = machine_busy_s();
}

static int
run_slice(struct rate *t, int g, int threads, double seconds, struct result *r)
{
	struct slice s = {.t = t, .g = g, .cpu.net = t->net};
	struct bench_load l = {.threads = threads,
	                       .seconds = seconds,
	                       .warmup_ops = WARMUP,
	                       .latency = true,
	                       .arg = &s,
	                       .op = hs_op,
	                       .mark = hs_mark};
	int rv;
	if ((rv = bench_net_ensure_key(t->net, KEY_NEED_BYTES)) != 0)
		return rv;
	if ((rv = bench_load_run(&l)) != 0 || (rv = s.status_rv) != 0) {
		bench_note("%s, %d threads: %s", groups[g].label, threads,
		           l.first_error[0] != '\0' ? l.first_error
		                                    : qkdn_strerror(rv));
		bench_load_free(&l);
		return rv;
	}
	r->elapsed_s += l.elapsed_s;
	r->handshakes += l.ops;
	r->errors += l.errors;
	for (int km = 0; km < 2; km++)
		r->supplied[km] += s.supplied[km][1] - s.supplied[km][0];
	for (int p = 0; p < BENCH_N_PROCS; p++)
		r->cpu_s[p] += s.cpu.t1[p] - s.cpu.t0[p];
	r->machine_s += s.busy[1] - s.busy[0];
	if (r->first_error[0] == '\0' && l.first_error[0] != '\0')
		snprintf(r->first_error, sizeof(r->first_error), "%s",
		         l.first_error);
	rv = bench_samples_merge(&r->lat, &l.lat);
	bench_load_free(&l);
	return rv;
}

static const char *const proc_keys[BENCH_N_PROCS] = {"bench", "km_a", "km_b",
                                                     "qkdsim"};

static double
cpu_us_per_hs(const struct result *r)
{
	double total = 0;
	for (int p = 0; p < BENCH_N_PROCS; p++)
		total += r->cpu_s[p];
	return r->handshakes > 0 ? total / (double)r->handshakes * 1e6 : 0;
}

static double
per_s(const struct result *r)
{
	return r->elapsed_s > 0 ? (double)r->handshakes / r->elapsed_s : 0;
}

static void
say_result(const struct bench_out *o, int g, int threads, struct result *r,
           const struct base *base, cJSON *arr)
{
	double hps = per_s(r), cpu = cpu_us_per_hs(r),
	       n = r->handshakes > 0 ? (double)r->handshakes : 1, total = 0,
	       us[BENCH_N_PROCS];
	double p50 = bench_samples_pct_us(&r->lat, 50) / 1000,
	       p99 = bench_samples_pct_us(&r->lat, 99) / 1000;
	double x_rate = base->per_s > 0 ? hps / base->per_s : 0,
	       x_cpu = cpu > 0 ? base->cpu_us / cpu : 0;
	char a[32], ka[16] = "-", kb[16] = "-";
	for (int p = 0; p < BENCH_N_PROCS; p++) {
		us[p] = r->cpu_s[p] / n * 1e6;
		total += r->cpu_s[p];
	}
	double all_pct = r->elapsed_s > 0 ? total / r->elapsed_s * 100 : 0,
	       other_pct = r->elapsed_s > 0
	                       ? (r->machine_s - total) / r->elapsed_s * 100
	                       : 0;
	if (other_pct < 0)
		other_pct = 0; /* clock-tick rounding */
	if (groups[g].qkd) {
		snprintf(ka, sizeof(ka), "%.3f", (double)r->supplied[0] / n);
		snprintf(kb, sizeof(kb), "%.3f", (double)r->supplied[1] / n);
	}
	bench_say(o,
	          "    %-13s %3d  %7s  %5.2fx  %5.2fx  %5.2f  %6s %6s  %5.0f "
	          "%5.0f %5.0f %4.0f  %4.0f%% %4.0f%%",
	          groups[g].label, threads, bench_group(a, hps), x_rate, x_cpu,
	          p50, ka, kb, us[BENCH_P_SELF], us[BENCH_P_KM_A],
	          us[BENCH_P_KM_B], us[BENCH_P_SIM], all_pct, other_pct);
	if (r->errors > 0)
		bench_say(o, "        %llu errors; first: %s",
		          (unsigned long long)r->errors, r->first_error);

	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "group", groups[g].group);
	cJSON_AddNumberToObject(j, "server_batch",
	                        groups[g].batch1 ? 1 : BENCH_TLS_BATCH);
	cJSON_AddNumberToObject(j, "threads", threads);
	cJSON_AddNumberToObject(j, "handshakes", (double)r->handshakes);
	cJSON_AddNumberToObject(j, "seconds", r->elapsed_s);
	cJSON_AddNumberToObject(j, "handshakes_per_s", hps);
	cJSON_AddNumberToObject(j, "x_x25519", x_rate);
	cJSON_AddNumberToObject(j, "x_x25519_by_cpu", x_cpu);
	cJSON_AddNumberToObject(j, "p50_ms", p50);
	cJSON_AddNumberToObject(j, "p99_ms", p99);
	cJSON_AddNumberToObject(j, "errors", (double)r->errors);
	if (r->errors > 0)
		cJSON_AddStringToObject(j, "first_error", r->first_error);
	cJSON_AddNumberToObject(j, "keys_per_handshake_km_a",
	                        (double)r->supplied[0] / n);
	cJSON_AddNumberToObject(j, "keys_per_handshake_km_b",
	                        (double)r->supplied[1] / n);
	cJSON *c = cJSON_AddObjectToObject(j, "cpu_us_per_handshake");
	cJSON *pc = cJSON_AddObjectToObject(j, "cpu_pct");
	for (int p = 0; p < BENCH_N_PROCS; p++) {
		cJSON_AddNumberToObject(c, proc_keys[p], us[p]);
		cJSON_AddNumberToObject(
		    pc, proc_keys[p],
		    r->elapsed_s > 0 ? r->cpu_s[p] / r->elapsed_s * 100 : 0);
	}
	cJSON_AddNumberToObject(c, "all", cpu);
	cJSON_AddNumberToObject(pc, "all", all_pct);
	cJSON_AddNumberToObject(pc, "other_work", other_pct);
	cJSON_AddItemToArray(arr, j);
}

/* The groups on one number of threads, in BENCH_TLS_ROUNDS interleaved slices
 * (each round starting with the next group) so that a change in the machine's
 * load falls on every group alike. ratio: x25519_qkd / X25519 by rate
 * and by CPU per handshake. */
static int
run_threads(const struct bench_out *o, struct rate *t, int threads, cJSON *arr,
            double ratio[2])
{
	struct result r[N_GROUPS];
	struct base base;
	int n = threads == 1 ? N_GROUPS : G_QKD_B1; /* batch 1: 1 thread */
	int rv = 0;
	memset(r, 0, sizeof(r));
	for (int round = 0; round < BENCH_TLS_ROUNDS && rv == 0; round++)
		for (int i = 0; i < n && rv == 0; i++)
			rv = run_slice(t, (i + round) % n, threads,
			               t->op->seconds / BENCH_TLS_ROUNDS,
			               &r[(i + round) % n]);
	if (rv == 0) {
		base.per_s = per_s(&r[G_X25519]);
		base.cpu_us = cpu_us_per_hs(&r[G_X25519]);
		for (int g = 0; g < n; g++)
			say_result(o, g, threads, &r[g], &base, arr);
		ratio[0] = base.per_s > 0 ? per_s(&r[G_HYB]) / base.per_s : 0;
		ratio[1] = cpu_us_per_hs(&r[G_HYB]) > 0
		               ? base.cpu_us / cpu_us_per_hs(&r[G_HYB])
		               : 0;
	}
	for (int g = 0; g < N_GROUPS; g++)
		bench_samples_free(&r[g].lat);
	return rv;
}

static int
run_handshakes(const struct bench_out *o, struct rate *t)
{
	double ratio[BENCH_TLS_THREAD_LISTS + 1][2];
	int lists[BENCH_TLS_THREAD_LISTS + 1], n = 0, rv = 0;
	char line[256];
	size_t at = 0;
	lists[n++] = 1;
	for (int i = 0; i < t->op->n_threads; i++)
		if (t->op->threads[i] != 1)
			lists[n++] = t->op->threads[i];
	bench_say(o, "(a) TLS 1.3 handshakes/s, client and server in this "
	             "process over a BIO pair, P-256 certificate,");
	bench_say(o,
	          "    %.1f s per line in %d interleaved slices; the "
	          "server caches %d keys per KM request (batch)",
	          t->op->seconds, BENCH_TLS_ROUNDS, BENCH_TLS_BATCH);
	bench_say(o,
	          "%33sx X25519 by      p50   keys per hs   CPU us per "
	          "handshake     CPU %%",
	          "");
	bench_say(o,
	          "    group         thr     hs/s    rate     CPU     ms    KM "
	          "A   KM B  bench  KM A  KM B  sim   ours other");
	cJSON *arr = cJSON_AddArrayToObject(o->root, "handshakes");
	for (int i = 0; i < n && rv == 0; i++)
		rv = run_threads(o, t, lists[i], arr, ratio[i]);
	if (rv != 0)
		return rv;
	cJSON *jr = cJSON_AddObjectToObject(o->root, "x25519_qkd_x_x25519");
	for (int i = 0; i < n; i++) {
		char key[32];
		if (lists[i] > 1)
			at += (size_t)snprintf(
			    line + at, sizeof(line) - at,
			    "%s%d threads %.2fx (by CPU %.2fx)",
			    at > 0 ? ", " : "", lists[i], ratio[i][0],
			    ratio[i][1]);
		snprintf(key, sizeof(key), "threads_%d", lists[i]);
		cJSON *k = cJSON_AddObjectToObject(jr, key);
		cJSON_AddNumberToObject(k, "rate", ratio[i][0]);
		cJSON_AddNumberToObject(k, "by_cpu", ratio[i][1]);
	}
	bench_say(o, "    x25519_qkd / X25519: %s", at > 0 ? line : "-");
	bench_say(o, "      aim >= %.2fx with threads", BENCH_TLS_AIM_RATIO);
	bench_say(o, "    x X25519 by rate: handshakes/s over X25519's on as "
	             "many threads; by CPU: X25519's");
	bench_say(o, "    CPU per handshake (all our processes) over this "
	             "line's, what the rate would be if");
	bench_say(o, "    CPU were the only limit and every line got the "
	             "same. keys per hs: keys each KM");
	bench_say(o, "    supplied per handshake (status counters); A counts "
	             "the server's batch when it is");
	bench_say(o, "    fetched, so the cache saves KM requests (KM A's "
	             "CPU), not key. CPU %%: ours = bench,");
	bench_say(o, "    KMs and qkdsim, other = the rest of the machine "
	             "(/proc/stat), in %% of one core");
	bench_say(o, "    (%ld cores: %ld%% is the whole machine)",
	          sysconf(_SC_NPROCESSORS_ONLN),
	          100 * sysconf(_SC_NPROCESSORS_ONLN));
	bench_blank(o);
	return 0;
}

int
bench_tls_rate(const struct bench_out *o, const struct bench_tls *tls)
{
	struct rate t = {.op = tls->op, .net = tls->net};
	int rv = load_contexts(&t, tls);
	if (rv == 0)
		rv = run_handshakes(o, &t);
	free_contexts(&t);
	return rv;
}
