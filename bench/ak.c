/* qkdn-bench ak: key supply over Ak (ITU-T Q.4160 I.1) on a two-node
 * network of its own. It writes a network file in a fresh temporary
 * directory, starts qkdn-qkdsim and two qkdn-km next to this executable,
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
#include "qkdn_err.h"
#include "qkdn_netconf.h"
#include "qkdn_rpc.h"

#include <getopt.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_BITS          256
#define KEY_BYTES         (KEY_BITS / 8)
#define BATCH             64
#define MILLION           1000000
#define FILL_BATCH        4096
#define FILL_THREADS      4
#define FILL_DEADLINE_S   300
#define RATE_BPS          400000000ull
#define BLOCK_BYTES       65536
#define POOL_MAX_BYTES    (256ull << 20)
#define MAP_SIZE_MB       4096
#define KEY_TTL_S         3600
#define CALL_TIMEOUT_MS   10000
#define PROBE_TIMEOUT_MS  1000
#define START_DEADLINE_MS 15000
#define KEY_DEADLINE_MS   60000
#define KEY_READY_BYTES   (16u << 20)   /* for each keys/s run */
#define KEY_TOPUP_BYTES   (64ull << 20) /* filled to before pausing the link */
#define CLIENTS_MAX       256
#define FLOOR_CLIENTS     16
#define CLIENT_LISTS_MAX  16
#define MIB               (1024.0 * 1024.0)

/* aims, printed next to the figures */
#define AIM_DST_X      1.3
#define AIM_SRC_X      2.5
#define AIM_KEYS_PER_S 100000
#define AIM_MEM_MIB    32

enum { P_BENCH, P_KM_A, P_KM_B, P_SIM, N_PROCS };

struct opts {
	double seconds;
	int clients[CLIENT_LISTS_MAX];
	int n_clients;
	bool million, json, keep;
	bool pause; /* pause the link while measuring */
};

struct net {
	char dir[PATH_MAX];
	char cnf[PATH_MAX + 16];
	int kx_port[2];
	int pairs; /* SAE pairs in the network file */
	struct qkdn_net *conf;
	struct bench_proc procs[N_PROCS]; /* P_BENCH unused */
	struct qkdn_ak *probe[2];         /* status at A and at B */
	struct bench_echo echo;           /* the floor's echo server */
	bool pause, paused;
};

/* ---- the network ---- */

static void
sae_name(char out[QKDN_NAME_MAX], int side, int pair)
{
	const char *base = side == 0 ? "alice" : "bob";
	if (pair == 0)
		snprintf(out, QKDN_NAME_MAX, "%s", base);
	else
		snprintf(out, QKDN_NAME_MAX, "%s%d", base, pair);
}

static int
write_network(struct net *n)
{
	char name[QKDN_NAME_MAX];
	FILE *f = fopen(n->cnf, "w");
	if (f == NULL) {
		bench_note("cannot write %s", n->cnf);
		return QKDN_E_IO;
	}
	fprintf(f,
	        "# written by qkdn-bench ak\n[qkdn]\nnodes = A, B\n"
	        "links = A_B\ncontroller = distributed\nrun_dir = %s\n"
	        "saes = ",
	        n->dir);
	for (int p = 0; p < n->pairs; p++)
		for (int side = 0; side < 2; side++) {
			sae_name(name, side, p);
			fprintf(f, "%s%s", p + side > 0 ? ", " : "", name);
		}
	fprintf(f, "\n");
	for (int i = 0; i < 2; i++)
		fprintf(f,
		        "\n[%c]\nkx = tcp://127.0.0.1:%d\nmap_size_mb = %d\n"
		        "key_ttl = %d\n",
		        'A' + i, n->kx_port[i], MAP_SIZE_MB, KEY_TTL_S);
	fprintf(f,
	        "\n[A_B]\nnodes = A, B\nrate = %llu\nblock_bytes = %d\n"
	        "pool_max_bytes = %llu\n",
	        RATE_BPS, BLOCK_BYTES, POOL_MAX_BYTES);
	for (int p = 0; p < n->pairs; p++)
		for (int side = 0; side < 2; side++) {
			sae_name(name, side, p);
			fprintf(f, "\n[%s]\nnode = %c\n", name, 'A' + side);
		}
	return fclose(f) == 0 ? 0 : QKDN_E_IO;
}

/* One request to the emulator's control socket, on a socket of its own
 * (as the CLI does) and tried up to three times: control requests are
 * idempotent. */
static int
sim_call(struct net *n, const struct qkdn_msg *req, struct qkdn_msg *rsp,
         struct qkdn_decode_error *err)
{
	int rv = QKDN_E_UNREACHABLE;
	for (int i = 0; i < 3; i++) {
		nng_socket s;
		if ((rv = qkdn_rpc_dial(&s, n->conf->sim_url)) != 0)
			return rv;
		rv = qkdn_rpc_call(s, req, rsp, PROBE_TIMEOUT_MS, err);
		nng_close(s);
		if (rv != QKDN_E_TIMEOUT)
			break;
	}
	return rv;
}

static int
sim_status(struct net *n, struct qkdn_msg *rsp)
{
	struct qkdn_msg req = {.type = QKDN_STATUS_REQ};
	struct qkdn_decode_error err;
	return sim_call(n, &req, rsp, &err);
}

static bool
all_alive(struct net *n)
{
	for (int i = P_KM_A; i < N_PROCS; i++)
		if (!bench_alive(&n->procs[i])) {
			bench_log_tail(&n->procs[i], 20);
			return false;
		}
	return true;
}

static int
start_network(struct net *n)
{
	static const char *const names[N_PROCS] = {"", "KM A", "KM B",
	                                           "qkdn-qkdsim"};
	char km[PATH_MAX], sim[PATH_MAX], log[PATH_MAX + 16];
	int rv;
	if (bench_find_program("qkdn-km", km, sizeof(km)) != 0 ||
	    bench_find_program("qkdn-qkdsim", sim, sizeof(sim)) != 0) {
		bench_note("qkdn-km and qkdn-qkdsim must sit next to "
		           "qkdn-bench (make -C build qkdn-km qkdn-qkdsim)");
		return QKDN_E_CONFIG;
	}
	char *sim_argv[] = {sim, "--config", n->cnf, NULL};
	snprintf(log, sizeof(log), "%s/qkdsim.log", n->dir);
	if ((rv = bench_spawn(&n->procs[P_SIM], names[P_SIM], sim_argv, log)) !=
	    0)
		return rv;
	for (int i = 0; i < 2; i++) {
		char node[2] = {(char)('A' + i), '\0'};
		char *km_argv[] = {km,       "--config", n->cnf,
		                   "--node", node,       NULL};
		snprintf(log, sizeof(log), "%s/%s.log", n->dir, node);
		if ((rv = bench_spawn(&n->procs[P_KM_A + i], names[P_KM_A + i],
		                      km_argv, log)) != 0)
			return rv;
	}
	return 0;
}

/* Poll status until the emulator and both KMs answer. */
static int
wait_ready(struct net *n)
{
	uint64_t deadline = qkdn_now_ms() + START_DEADLINE_MS;
	bool up[3] = {false, false, false};
	int rv;
	for (int i = 0; i < 2; i++) {
		char sae[QKDN_NAME_MAX];
		sae_name(sae, i, 0);
		if ((rv = qkdn_ak_open(&n->probe[i], n->conf->nodes[i].ak_url,
		                       sae, PROBE_TIMEOUT_MS)) != 0)
			return rv;
	}
	while (!(up[0] && up[1] && up[2])) {
		struct qkdn_msg st;
		if (!all_alive(n))
			return QKDN_E_UNREACHABLE;
		if (qkdn_now_ms() > deadline) {
			bench_note("%s did not answer a status request within "
			           "%d ms",
			           !up[0]   ? "KM A"
			           : !up[1] ? "KM B"
			                    : "qkdsim",
			           START_DEADLINE_MS);
			return QKDN_E_TIMEOUT;
		}
		for (int i = 0; i < 2; i++)
			if (!up[i] && qkdn_ak_status(n->probe[i], &st) == 0) {
				up[i] = true;
				qkdn_msg_clear(&st);
			}
		if (!up[2] && sim_status(n, &st) == 0) {
			up[2] = true;
			qkdn_msg_clear(&st);
		}
		if (!(up[0] && up[1] && up[2]))
			bench_sleep_ms(20);
	}
	return 0;
}

/* Key A can start (its out direction) and B can match (its in direction),
 * and whether A's Kx link to B is up. */
static int
link_state(struct net *n, uint64_t *out_a, uint64_t *in_b, bool *up,
           uint64_t *pending_b)
{
	struct qkdn_msg st;
	int rv;
	if ((rv = qkdn_ak_status(n->probe[0], &st)) != 0)
		return rv;
	*out_a = st.u.status_rsp.n_links > 0
	             ? st.u.status_rsp.links[0].out_bytes
	             : 0;
	*up = st.u.status_rsp.n_links > 0 && st.u.status_rsp.links[0].up;
	qkdn_msg_clear(&st);
	if ((rv = qkdn_ak_status(n->probe[1], &st)) != 0)
		return rv;
	*in_b =
	    st.u.status_rsp.n_links > 0 ? st.u.status_rsp.links[0].in_bytes : 0;
	if (pending_b != NULL)
		*pending_b = st.u.status_rsp.keys_pending;
	qkdn_msg_clear(&st);
	return 0;
}

static int
wait_key(struct net *n, uint64_t need)
{
	uint64_t deadline = qkdn_now_ms() + KEY_DEADLINE_MS, out_a = 0,
	         in_b = 0, start = qkdn_now_ms();
	bool up = false, told = false;
	for (;;) {
		int rv = link_state(n, &out_a, &in_b, &up, NULL);
		if (rv != 0) {
			bench_note("status: %s", qkdn_ak_last_error());
			return rv;
		}
		if (up && out_a >= need && in_b >= need)
			return 0;
		if (!all_alive(n))
			return QKDN_E_UNREACHABLE;
		if (qkdn_now_ms() > deadline) {
			bench_note("no key after %d ms: A holds %.1f MiB to "
			           "start keys, B %.1f MiB to match, Kx %s",
			           KEY_DEADLINE_MS, (double)out_a / MIB,
			           (double)in_b / MIB, up ? "up" : "down");
			return QKDN_E_INSUFFICIENT_KEY;
		}
		if (!told && qkdn_now_ms() - start > 1000) {
			bench_note("waiting for %.0f MiB of link key (A holds "
			           "%.1f MiB)",
			           (double)need / MIB, (double)out_a / MIB);
			told = true;
		}
		bench_sleep_ms(50);
	}
}

/* Pause or resume the emulated link: taking in key at this rate costs
 * the KMs much CPU, which would otherwise be measured with the rest. */
static int
link_run(struct net *n, bool run)
{
	struct qkdn_msg req = {.type = QKDN_LINK_CTL}, rsp;
	struct qkdn_decode_error err;
	memcpy(req.u.link_ctl.link, n->conf->links[0].id, sizeof(qkdn_name));
	req.u.link_ctl.action = run ? QKDN_LINK_RESUME : QKDN_LINK_PAUSE;
	int rv = sim_call(n, &req, &rsp, &err);
	qkdn_msg_clear(&rsp);
	if (rv != 0)
		bench_note("cannot %s the link: %s", run ? "resume" : "pause",
		           err.reason);
	else
		n->paused = !run;
	return rv;
}

/* At least need bytes of key at both ends; with --pause, tops the pool
 * up with the link running, then pauses it again. */
static int
ensure_key(struct net *n, uint64_t need)
{
	uint64_t out_a, in_b;
	bool up;
	int rv;
	if (!n->paused)
		return wait_key(n, need);
	if ((rv = link_state(n, &out_a, &in_b, &up, NULL)) != 0)
		return rv;
	if (up && out_a >= need && in_b >= need)
		return 0;
	if ((rv = link_run(n, true)) != 0 ||
	    (rv = wait_key(n, need > KEY_TOPUP_BYTES ? need
	                                             : KEY_TOPUP_BYTES)) != 0)
		return rv;
	return link_run(n, false);
}

static void
stop_network(struct net *n)
{
	for (int i = 0; i < 2; i++)
		qkdn_ak_close(n->probe[i]);
	/* KMs first: the emulator only feeds them */
	for (int i = P_KM_A; i <= P_KM_B; i++)
		bench_stop(&n->procs[i]);
	bench_stop(&n->procs[P_SIM]);
}

/* ---- CPU accounting ---- */

struct cpu {
	struct net *net;
	double t0[N_PROCS], t1[N_PROCS];
};

static void
cpu_read(const struct net *n, double t[N_PROCS])
{
	t[P_BENCH] = bench_cpu_s(0);
	for (int i = P_KM_A; i < N_PROCS; i++)
		t[i] = bench_cpu_s(n->procs[i].pid);
}

static void
cpu_mark(struct cpu *c, int phase)
{
	cpu_read(c->net, phase == 0 ? c->t0 : c->t1);
}

/* percent of one core */
static double
cpu_pct(const struct cpu *c, int p, double seconds)
{
	return seconds > 0 ? (c->t1[p] - c->t0[p]) / seconds * 100.0 : 0;
}

static cJSON *
cpu_json(const struct cpu *c, double seconds)
{
	static const char *const keys[N_PROCS] = {"bench", "km_a", "km_b",
	                                          "qkdsim"};
	cJSON *j = cJSON_CreateObject();
	for (int p = 0; p < N_PROCS; p++)
		cJSON_AddNumberToObject(j, keys[p], cpu_pct(c, p, seconds));
	return j;
}

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
measure_pairs(struct net *n, double seconds, struct latency *lat)
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
		if ((rv = bench_stub_once(stub)) != 0) {
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
	qkdn_ak_close(stub);
	qkdn_ak_close(a);
	qkdn_ak_close(b);
	return rv;
}

static int
measure_status(struct net *n, double seconds, struct bench_samples *s)
{
	struct qkdn_ak *a;
	struct qkdn_msg st;
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
		qkdn_msg_clear(&st);
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
run_latency(const struct bench_out *o, struct net *n, double seconds,
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
	struct cpu cpu;
	struct net *net;
	uint32_t batch;
};

struct pair {
	struct qkdn_ak *a, *b;
	char dst[QKDN_NAME_MAX];
	struct qkdn_ak_key *ka, *kb;
	qkdn_uuid *ids;
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
	char src[QKDN_NAME_MAX];
	if ((w->priv = p) == NULL)
		return QKDN_E_NOMEM;
	sae_name(src, 0, w->idx);
	sae_name(p->dst, 1, w->idx);
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
	cpu_mark(&((struct pairs_run *)arg)->cpu, phase);
}

static int
run_throughput(const struct bench_out *o, struct net *n, const struct opts *op)
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
			if ((rv = ensure_key(n, KEY_READY_BYTES)) != 0)
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
			bench_say(o,
			          "    %5d  %8u  %10s  %10s  %6llu   %10.0f  "
			          "%5.0f  %5.0f  %6.0f",
			          op->clients[c], batches[b],
			          bench_group(k, kps), bench_group(q, rps),
			          (unsigned long long)l.errors,
			          cpu_pct(&r.cpu, P_BENCH, l.elapsed_s),
			          cpu_pct(&r.cpu, P_KM_A, l.elapsed_s),
			          cpu_pct(&r.cpu, P_KM_B, l.elapsed_s),
			          cpu_pct(&r.cpu, P_SIM, l.elapsed_s));
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
			cJSON_AddItemToObject(j, "cpu_pct",
			                      cpu_json(&r.cpu, l.elapsed_s));
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
	struct cpu cpu;
	struct net *net;
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
	cpu_mark(&((struct fill *)arg)->cpu, phase);
}

static int
run_million(const struct bench_out *o, struct net *n, double seconds,
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
	if ((rv = ensure_key(n, (uint64_t)MILLION * KEY_BYTES + (4u << 20))) !=
	    0)
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
	          cpu_pct(&f.cpu, P_BENCH, l.elapsed_s),
	          cpu_pct(&f.cpu, P_KM_A, l.elapsed_s),
	          cpu_pct(&f.cpu, P_KM_B, l.elapsed_s),
	          cpu_pct(&f.cpu, P_SIM, l.elapsed_s));
	if (l.errors > 0)
		bench_say(o, "      %llu errors; first: %s",
		          (unsigned long long)l.errors, l.first_error);
	cJSON *jf = cJSON_AddObjectToObject(jm, "fill");
	cJSON_AddNumberToObject(jf, "keys", (double)l.units);
	cJSON_AddNumberToObject(jf, "seconds", l.elapsed_s);
	cJSON_AddNumberToObject(jf, "keys_per_s", kps);
	cJSON_AddNumberToObject(jf, "errors", (double)l.errors);
	cJSON_AddItemToObject(jf, "cpu_pct", cpu_json(&f.cpu, l.elapsed_s));
	bench_load_free(&l);

	if ((rv = link_state(n, &out_a, &in_b, &up, &pending)) != 0)
		return rv;
	cJSON_AddNumberToObject(jm, "keys_pending_b", (double)pending);
	if ((rv = bench_mem_read(n->procs[P_KM_B].pid, &m)) != 0)
		return rv;
	char who[64];
	snprintf(who, sizeof(who), "KM B, %s keys waiting",
	         bench_group(a, (double)pending));
	say_mem(o, who, &m);
	cJSON_AddItemToObject(jm, "km_b_full", mem_json(&m));
	if ((rv = bench_mem_read(n->procs[P_KM_A].pid, &m)) != 0)
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
run_memory(const struct bench_out *o, struct net *n, const struct opts *op,
           double floor_a)
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
		if ((rv = bench_mem_read(n->procs[P_KM_A + i].pid, &m[i])) != 0)
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
parse_clients(struct opts *o, const char *text)
{
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", text);
	o->n_clients = 0;
	for (char *t = strtok_r(buf, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		char *end;
		long v = strtol(t, &end, 10);
		if (*end != '\0' || v < 1 || v > CLIENTS_MAX ||
		    o->n_clients == CLIENT_LISTS_MAX)
			return -1;
		o->clients[o->n_clients++] = (int)v;
	}
	return o->n_clients > 0 ? 0 : -1;
}

static int
parse(struct opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"seconds", required_argument, NULL, 's'},
	    {"clients", required_argument, NULL, 'c'},
	    {"million", no_argument, NULL, 'm'},
	    {"no-million", no_argument, NULL, 'M'},
	    {"json", no_argument, NULL, 'j'},
	    {"keep", no_argument, NULL, 'k'},
	    {"no-pause", no_argument, NULL, 'P'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	int c;
	*o = (struct opts){.seconds = 2, .million = true, .pause = true};
	parse_clients(o, "1,4,16");
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 's':
			o->seconds = strtod(optarg, &end);
			if (*end != '\0' || o->seconds < 0.1 ||
			    o->seconds > 600) {
				fprintf(stderr, "qkdn-bench ak: --seconds "
				                "takes 0.1..600\n");
				return 2;
			}
			break;
		case 'c':
			if (parse_clients(o, optarg) != 0) {
				fprintf(stderr,
				        "qkdn-bench ak: --clients takes up to "
				        "%d numbers 1..%d, e.g. 1,4,16\n",
				        CLIENT_LISTS_MAX, CLIENTS_MAX);
				return 2;
			}
			break;
		case 'm':
			o->million = true;
			break;
		case 'M':
			o->million = false;
			break;
		case 'j':
			o->json = true;
			break;
		case 'k':
			o->keep = true;
			break;
		case 'P':
			o->pause = false;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return 0;
}

static int
make_dir(struct net *n)
{
	const char *tmp = getenv("TMPDIR");
	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	/* ipc socket paths must stay short */
	if (snprintf(n->dir, sizeof(n->dir), "%s/qkdn-bench.XXXXXX", tmp) >=
	        80 ||
	    mkdtemp(n->dir) == NULL) {
		bench_note("cannot make a directory in %s (set TMPDIR to a "
		           "short path)",
		           tmp);
		return QKDN_E_IO;
	}
	snprintf(n->cnf, sizeof(n->cnf), "%s/network.cnf", n->dir);
	return 0;
}

static int
setup_network(const struct bench_out *o, struct net *n)
{
	char err[QKDN_REASON_MAX + QKDN_NET_PATH_MAX];
	int rv;
	if ((rv = write_network(n)) != 0)
		return rv;
	if ((n->conf = calloc(1, sizeof(*n->conf))) == NULL)
		return QKDN_E_NOMEM;
	if ((rv = qkdn_net_load(n->cnf, NULL, n->conf, err, sizeof(err))) !=
	    0) {
		bench_note("%s", err);
		return rv;
	}
	uint64_t t0 = qkdn_now_ms();
	if ((rv = start_network(n)) != 0 || (rv = wait_ready(n)) != 0)
		return rv;
	uint64_t t1 = qkdn_now_ms();
	if ((rv = wait_key(n, KEY_READY_BYTES)) != 0)
		return rv;
	uint64_t t2 = qkdn_now_ms();

	/* what taking in key costs when nothing else happens */
	struct cpu intake = {.net = n}, idle = {.net = n};
	cpu_mark(&intake, 0);
	bench_sleep_ms(1000);
	cpu_mark(&intake, 1);
	bench_say(o,
	          "network: KMs and qkdsim answered in %llu ms, %.0f MiB of "
	          "key after %llu ms more",
	          (unsigned long long)(t1 - t0), KEY_READY_BYTES / MIB,
	          (unsigned long long)(t2 - t1));
	bench_say(o,
	          "  taking in key at %llu Mbit/s costs KM A %.0f%%, KM B "
	          "%.0f%%, qkdsim %.0f%% of one core",
	          RATE_BPS / 1000000, cpu_pct(&intake, P_KM_A, 1.0),
	          cpu_pct(&intake, P_KM_B, 1.0), cpu_pct(&intake, P_SIM, 1.0));
	cJSON *j = cJSON_AddObjectToObject(o->root, "network");
	cJSON_AddNumberToObject(j, "start_ms", (double)(t1 - t0));
	cJSON_AddNumberToObject(j, "first_key_ms", (double)(t2 - t1));
	cJSON_AddItemToObject(j, "intake_cpu_pct", cpu_json(&intake, 1.0));
	cJSON_AddBoolToObject(j, "link_paused_while_measuring", n->pause);
	if (n->pause) {
		if ((rv = wait_key(n, KEY_TOPUP_BYTES)) != 0 ||
		    (rv = link_run(n, false)) != 0)
			return rv;
		bench_sleep_ms(200); /* blocks in flight */
		cpu_mark(&idle, 0);
		bench_sleep_ms(500);
		cpu_mark(&idle, 1);
		bench_say(
		    o,
		    "  so the link is paused while measuring, and resumed "
		    "only to top the pool up to %.0f MiB",
		    KEY_TOPUP_BYTES / MIB);
		bench_say(
		    o,
		    "  idle with the link paused: KM A %.0f%%, KM B %.0f%%, "
		    "qkdsim %.0f%%",
		    cpu_pct(&idle, P_KM_A, 0.5), cpu_pct(&idle, P_KM_B, 0.5),
		    cpu_pct(&idle, P_SIM, 0.5));
		cJSON_AddItemToObject(j, "paused_idle_cpu_pct",
		                      cpu_json(&idle, 0.5));
	} else {
		bench_say(o, "  (the link keeps running while measuring: "
		             "--no-pause)");
	}
	bench_blank(o);
	return 0;
}

static void
say_header(const struct bench_out *o, const struct opts *op,
           const struct net *n)
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
	          RATE_BPS / 1000000, BLOCK_BYTES, POOL_MAX_BYTES >> 20);
	bench_say(o,
	          "  Kx tcp://127.0.0.1:%d and :%d, Ak ipc://, %d SAE "
	          "pairs; run dir %s",
	          n->kx_port[0], n->kx_port[1], n->pairs, n->dir);
	double load = bench_loadavg();
	bench_say(o,
	          "  load average at the start: %.2f on %ld cores (other "
	          "work on this machine shows in every figure)",
	          load, sysconf(_SC_NPROCESSORS_ONLN));
	bench_blank(o);

	cJSON_AddNumberToObject(o->root, "loadavg_start", load);
	cJSON *j = cJSON_AddObjectToObject(o->root, "config");
	cJSON_AddNumberToObject(j, "seconds", op->seconds);
	cJSON *c = cJSON_AddArrayToObject(j, "clients");
	for (int i = 0; i < op->n_clients; i++)
		cJSON_AddItemToArray(c, cJSON_CreateNumber(op->clients[i]));
	cJSON_AddBoolToObject(j, "million", op->million);
	cJSON_AddNumberToObject(j, "rate_bps", (double)RATE_BPS);
	cJSON_AddNumberToObject(j, "block_bytes", BLOCK_BYTES);
	cJSON_AddNumberToObject(j, "pool_max_bytes", (double)POOL_MAX_BYTES);
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
	struct net *n = calloc(1, sizeof(*n));
	int rv = parse(&op, argc, argv);
	if (rv != 0 || n == NULL) {
		free(n);
		return rv == 1 ? 0 : 2;
	}
	o.json = op.json;
	n->pause = op.pause;
	o.root = cJSON_CreateObject();
	if ((rv = make_dir(n)) != 0)
		goto out;
	/* one SAE pair per client thread of the largest run */
	n->pairs = 1;
	for (int i = 0; i < op.n_clients; i++)
		if (op.clients[i] > n->pairs)
			n->pairs = op.clients[i];
	do {
		n->kx_port[0] = bench_free_port();
		n->kx_port[1] = bench_free_port();
	} while (n->kx_port[0] == n->kx_port[1] && n->kx_port[0] > 0);
	if (n->kx_port[0] < 0 || n->kx_port[1] < 0) {
		rv = QKDN_E_IO;
		goto out;
	}
	bench_note("run dir %s", n->dir);

	/* the floor first, on a quiet machine; its echo server before any
	 * nng thread, and kept for (b) */
	say_header(&o, &op, n);
	if ((rv = bench_echo_start(&n->echo, n->dir)) != 0 ||
	    (rv = bench_floor_run(&o, &n->echo, op.seconds, FLOOR_CLIENTS,
	                          &fl)) != 0)
		goto out;
	bench_note("starting qkdn-qkdsim and two qkdn-km");
	if ((rv = setup_network(&o, n)) != 0 ||
	    (rv = run_latency(&o, n, op.seconds, &fl)) != 0 ||
	    (rv = run_throughput(&o, n, &op)) != 0 ||
	    (rv = run_memory(&o, n, &op, fl.p50_us)) != 0)
		goto out;
out:
	stop_network(n);
	bench_echo_stop(&n->echo);
	double load = bench_loadavg();
	bench_say(&o, "load average at the end: %.2f", load);
	cJSON_AddNumberToObject(o.root, "loadavg_end", load);
	if (rv != 0) {
		bench_note("stopped early: %s; run dir kept: %s",
		           qkdn_strerror(rv), n->dir);
		for (int i = P_KM_A; i < N_PROCS; i++)
			if (n->procs[i].name != NULL)
				bench_log_tail(&n->procs[i], 10);
	} else if (op.keep) {
		bench_note("run dir kept: %s", n->dir);
	} else if (n->dir[0] != '\0') {
		bench_rm_tree(n->dir);
	}
	if (o.json && rv == 0) {
		char *text = cJSON_Print(o.root);
		if (text != NULL)
			printf("%s\n", text);
		free(text);
	}
	cJSON_Delete(o.root);
	free(n->conf);
	free(n);
	return rv == 0 ? 0 : 1;
}
