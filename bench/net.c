/* The two-node network the benchmarks measure: a network file in a fresh
 * temporary directory, qkdn-qkdsim and two qkdn-km started next to this
 * executable, status polled until they answer and hold key, and the link
 * paused while measuring (taking in key costs the KMs CPU that would
 * otherwise be measured along with the rest). Kx is tcp:// or, with
 * kx_tls, tls+tcp:// with certificates made by qkdn-certs. docs/bench.md
 * describes it. */
#include "bench.h"

#include "qkdn_ak.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_netconf.h"
#include "qkdn_rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROBE_TIMEOUT_MS  1000
#define START_DEADLINE_MS 15000
#define KEY_DEADLINE_MS   60000
#define CERTS_DEADLINE_MS 30000
#define MIB               (1024.0 * 1024.0)

void
bench_net_sae(char *out, size_t len, int side, int pair)
{
	const char *base = side == 0 ? "alice" : "bob";
	if (pair == 0)
		snprintf(out, len, "%s", base);
	else
		snprintf(out, len, "%s%d", base, pair);
}

/* Two free Kx ports for n, distinct from each other and from avoid's (may
 * be NULL). */
static int
pick_ports(struct bench_net *n, const struct bench_net *avoid)
{
	for (int tries = 0; tries < 100; tries++) {
		int a = bench_free_port(), b = bench_free_port();
		if (a < 0 || b < 0)
			return QKDN_E_IO;
		bool taken =
		    a == b ||
		    (avoid != NULL &&
		     (a == avoid->kx_port[0] || a == avoid->kx_port[1] ||
		      b == avoid->kx_port[0] || b == avoid->kx_port[1]));
		if (!taken) {
			n->kx_port[0] = a;
			n->kx_port[1] = b;
			return 0;
		}
	}
	return QKDN_E_IO;
}

int
bench_net_dir(struct bench_net *n)
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
		n->dir[0] = '\0';
		return QKDN_E_IO;
	}
	snprintf(n->cnf, sizeof(n->cnf), "%s/network.cnf", n->dir);
	return pick_ports(n, NULL);
}

int
bench_net_sub(struct bench_net *parent, const char *name,
              struct bench_net **out)
{
	struct bench_net *n = calloc(1, sizeof(*n));
	if ((*out = parent->also = n) == NULL)
		return QKDN_E_NOMEM;
	if (snprintf(n->dir, sizeof(n->dir), "%s/%s", parent->dir, name) >=
	        (int)sizeof(n->dir) ||
	    mkdir(n->dir, 0700) != 0) {
		bench_note("cannot make %s/%s", parent->dir, name);
		n->dir[0] = '\0';
		return QKDN_E_IO;
	}
	snprintf(n->cnf, sizeof(n->cnf), "%s/network.cnf", n->dir);
	return pick_ports(n, parent);
}

const char *
bench_net_kx_scheme(const struct bench_net *n)
{
	return n->kx_tls ? "tls+tcp://" : "tcp://";
}

/* The network's CA and the certificates of nodes A and B, in n->dir, by
 * qkdn-certs (scripts/make-certs.sh) run as a child without a shell; its
 * output goes to certs.log there, shown if it fails. */
static int
make_certs(struct bench_net *n)
{
	char prog[PATH_MAX], why[PATH_MAX + 128], how[96];
	struct qkdn_proc p = {.name = "certs"};
	if (qkdn_launch_find_program("qkdn-certs", false, prog, sizeof(prog)) !=
	    0) {
		bench_note("qkdn-certs must sit next to qkdn-bench (it is "
		           "scripts/make-certs.sh, copied there by cmake)");
		return QKDN_E_CONFIG;
	}
	/* one day is plenty: the certificates die with the run directory */
	char *argv[] = {prog, n->dir, "--days", "1", "node", "A", "B", NULL};
	int rv = qkdn_launch_spawn(&p, n->dir, argv, QKDN_LAUNCH_CHILD, why,
	                           sizeof(why));
	if (rv != 0) {
		bench_note("%s", why);
		return rv;
	}
	qkdn_launch_await_exit(&p, 1, CERTS_DEADLINE_MS);
	if (p.state == QKDN_PROC_EXITED && p.status >= 0 &&
	    WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0)
		return 0;
	if (p.state == QKDN_PROC_RUNNING) {
		bench_stop(&p, 1);
		bench_note("qkdn-certs took over %d ms", CERTS_DEADLINE_MS);
	} else {
		qkdn_launch_describe(&p, how, sizeof(how));
		bench_note("qkdn-certs %s", how);
	}
	qkdn_launch_log_tail(stderr, "qkdn-bench", n->dir, &p, 20);
	return QKDN_E_CONFIG;
}

static int
write_network(struct bench_net *n, const char *who)
{
	char name[QKDN_NAME_MAX];
	FILE *f = fopen(n->cnf, "w");
	if (f == NULL) {
		bench_note("cannot write %s", n->cnf);
		return QKDN_E_IO;
	}
	fprintf(f,
	        "# written by %s\n[qkdn]\nnodes = A, B\n"
	        "links = A_B\ncontroller = distributed\nrun_dir = %s\n"
	        "saes = ",
	        who, n->dir);
	for (int p = 0; p < n->pairs; p++)
		for (int side = 0; side < 2; side++) {
			bench_net_sae(name, sizeof(name), side, p);
			fprintf(f, "%s%s", p + side > 0 ? ", " : "", name);
		}
	fprintf(f, "\n");
	if (n->kx_tls)
		fprintf(f, "ca = %s/ca.pem\n", n->dir);
	for (int i = 0; i < 2; i++) {
		fprintf(f,
		        "\n[%c]\nkx = %s127.0.0.1:%d\nmap_size_mb = %d\n"
		        "key_ttl = %d\n",
		        'A' + i, bench_net_kx_scheme(n), n->kx_port[i],
		        BENCH_NET_MAP_SIZE_MB, BENCH_NET_KEY_TTL_S);
		if (n->kx_tls)
			fprintf(f, "cert = %s/%c.pem\nkey = %s/%c.key\n",
			        n->dir, 'A' + i, n->dir, 'A' + i);
	}
	fprintf(f,
	        "\n[A_B]\nnodes = A, B\nrate = %llu\nblock_bytes = %d\n"
	        "pool_max_bytes = %llu\n",
	        BENCH_NET_RATE_BPS, BENCH_NET_BLOCK_BYTES,
	        BENCH_NET_POOL_MAX_BYTES);
	for (int p = 0; p < n->pairs; p++)
		for (int side = 0; side < 2; side++) {
			bench_net_sae(name, sizeof(name), side, p);
			fprintf(f, "\n[%s]\nnode = %c\n", name, 'A' + side);
		}
	return fclose(f) == 0 ? 0 : QKDN_E_IO;
}

/* One request to the emulator's control socket, on a socket of its own
 * (as the CLI does) and tried up to three times: control requests are
 * idempotent. */
static int
sim_call(struct bench_net *n, const struct qkdn_msg *req, struct qkdn_msg *rsp,
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

/* Whether the emulator and both KMs still run; the log of one that ended
 * is shown. */
static bool
all_alive(struct bench_net *n)
{
	for (int i = BENCH_P_KM_A; i < BENCH_N_PROCS; i++) {
		struct qkdn_proc *p = &n->procs[i];
		char how[96];
		if (qkdn_launch_alive(p))
			continue;
		qkdn_launch_describe(p, how, sizeof(how));
		bench_note("%s %s", p->name, how);
		qkdn_launch_log_tail(stderr, "qkdn-bench", n->dir, p, 20);
		return false;
	}
	return true;
}

/* A status request through the Ak client (the KMs' probe while they
 * start): its fresh connection sees a KM come up at once. */
static int
km_answers(void *ak)
{
	return bench_status_once(ak);
}

/* Start the emulator and both KMs and wait until each answers a status
 * request. */
static int
start_procs(struct bench_net *n)
{
	char km[PATH_MAX], sim[PATH_MAX], why[PATH_MAX + 128];
	struct qkdn_launch_wait w[BENCH_N_PROCS - 1];
	int rv = 0;
	if (qkdn_launch_find_program("qkdn-km", false, km, sizeof(km)) != 0 ||
	    qkdn_launch_find_program("qkdn-qkdsim", false, sim, sizeof(sim)) !=
	        0) {
		bench_note("qkdn-km and qkdn-qkdsim must sit next to "
		           "qkdn-bench (make -C build qkdn-km qkdn-qkdsim)");
		return QKDN_E_CONFIG;
	}
	char *sim_argv[] = {sim, "--config", n->cnf, NULL};
	snprintf(n->procs[BENCH_P_SIM].name, QKDN_PROC_NAME_MAX, "qkdsim");
	rv = qkdn_launch_spawn(&n->procs[BENCH_P_SIM], n->dir, sim_argv,
	                       QKDN_LAUNCH_CHILD, why, sizeof(why));
	for (int i = 0; i < 2 && rv == 0; i++) {
		char node[2] = {(char)('A' + i), '\0'};
		char *km_argv[] = {km,       "--config", n->cnf,
		                   "--node", node,       NULL};
		struct qkdn_proc *p = &n->procs[BENCH_P_KM_A + i];
		snprintf(p->name, QKDN_PROC_NAME_MAX, "km-%s", node);
		rv = qkdn_launch_spawn(p, n->dir, km_argv, QKDN_LAUNCH_CHILD,
		                       why, sizeof(why));
	}
	if (rv != 0) {
		bench_note("%s", why);
		return rv;
	}
	for (int i = 0; i < 2; i++) {
		char sae[QKDN_AK_NAME_MAX];
		bench_net_sae(sae, sizeof(sae), i, 0);
		if ((rv = qkdn_ak_open(&n->probe[i], n->conf->nodes[i].ak_url,
		                       sae, PROBE_TIMEOUT_MS)) != 0) {
			bench_note("%s", qkdn_ak_last_error());
			return rv;
		}
		w[i] =
		    (struct qkdn_launch_wait){.p = &n->procs[BENCH_P_KM_A + i],
		                              .url = n->conf->nodes[i].ak_url,
		                              .probe = km_answers,
		                              .arg = n->probe[i]};
	}
	w[2] = (struct qkdn_launch_wait){.p = &n->procs[BENCH_P_SIM],
	                                 .url = n->conf->sim_url};
	if ((rv = qkdn_launch_await(w, BENCH_N_PROCS - 1, START_DEADLINE_MS,
	                            NULL, why, sizeof(why))) != 0) {
		bench_note("%s", why);
		for (int i = 0; i < BENCH_N_PROCS - 1; i++)
			if (w[i].failed)
				qkdn_launch_log_tail(stderr, "qkdn-bench",
				                     n->dir, w[i].p, 20);
	}
	return rv;
}

int
bench_net_start(struct bench_net *n, const char *who)
{
	char err[QKDN_REASON_MAX + QKDN_NET_PATH_MAX];
	uint64_t t0 = qkdn_now_ms();
	int rv;
	if (n->kx_tls && (rv = make_certs(n)) != 0)
		return rv;
	n->certs_ms = qkdn_now_ms() - t0;
	if ((rv = write_network(n, who)) != 0)
		return rv;
	if ((n->conf = calloc(1, sizeof(*n->conf))) == NULL)
		return QKDN_E_NOMEM;
	if ((rv = qkdn_net_load(n->cnf, NULL, n->conf, err, sizeof(err))) !=
	    0) {
		bench_note("%s", err);
		return rv;
	}
	return start_procs(n);
}

const char *
bench_net_ak_url(const struct bench_net *n, int node)
{
	return n->conf->nodes[node].ak_url;
}

int
bench_net_link_state(struct bench_net *n, uint64_t *out_a, uint64_t *in_b,
                     bool *up, uint64_t *pending_b)
{
	struct qkdn_ak_status st;
	int rv;
	if ((rv = qkdn_ak_status(n->probe[0], &st)) != 0)
		return rv;
	*out_a = st.n_links > 0 ? st.links[0].out_bytes : 0;
	*up = st.n_links > 0 && st.links[0].up;
	qkdn_ak_status_free(&st);
	if ((rv = qkdn_ak_status(n->probe[1], &st)) != 0)
		return rv;
	*in_b = st.n_links > 0 ? st.links[0].in_bytes : 0;
	if (pending_b != NULL)
		*pending_b = st.pending;
	qkdn_ak_status_free(&st);
	return 0;
}

int
bench_net_supplied(struct bench_net *n, int node, uint64_t *supplied)
{
	struct qkdn_ak_status st;
	int rv = qkdn_ak_status(n->probe[node], &st);
	if (rv != 0)
		return rv;
	*supplied = st.supplied;
	qkdn_ak_status_free(&st);
	return 0;
}

int
bench_net_wait_key(struct bench_net *n, uint64_t need)
{
	uint64_t deadline = qkdn_now_ms() + KEY_DEADLINE_MS, out_a = 0,
	         in_b = 0, start = qkdn_now_ms();
	bool up = false, told = false;
	for (;;) {
		int rv = bench_net_link_state(n, &out_a, &in_b, &up, NULL);
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

int
bench_net_link_run(struct bench_net *n, bool run)
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

int
bench_net_ensure_key(struct bench_net *n, uint64_t need)
{
	uint64_t out_a, in_b;
	bool up;
	int rv;
	if (!n->paused)
		return bench_net_wait_key(n, need);
	if ((rv = bench_net_link_state(n, &out_a, &in_b, &up, NULL)) != 0)
		return rv;
	if (up && out_a >= need && in_b >= need)
		return 0;
	if ((rv = bench_net_link_run(n, true)) != 0 ||
	    (rv = bench_net_wait_key(n, need > BENCH_NET_TOPUP_BYTES
	                                    ? need
	                                    : BENCH_NET_TOPUP_BYTES)) != 0)
		return rv;
	return bench_net_link_run(n, false);
}

void
bench_net_stop(struct bench_net *n)
{
	if (n->also != NULL)
		bench_net_stop(n->also);
	for (int i = 0; i < 2; i++) {
		qkdn_ak_close(n->probe[i]);
		n->probe[i] = NULL;
	}
	/* KMs first: the emulator only feeds them */
	bench_stop(&n->procs[BENCH_P_KM_A], 2);
	bench_stop(&n->procs[BENCH_P_SIM], 1);
}

void
bench_net_free(struct bench_net *n)
{
	if (n->also != NULL) {
		bench_net_free(n->also);
		free(n->also);
		n->also = NULL;
	}
	free(n->conf);
	n->conf = NULL;
}

void
bench_net_log_tails(const struct bench_net *n, int lines)
{
	for (int i = BENCH_P_KM_A; i < BENCH_N_PROCS; i++)
		if (n->procs[i].name[0] != '\0')
			qkdn_launch_log_tail(stderr, "qkdn-bench", n->dir,
			                     &n->procs[i], lines);
	if (n->also != NULL)
		bench_net_log_tails(n->also, lines);
}

/* ---- CPU accounting ---- */

static void
cpu_read(const struct bench_net *n, double t[BENCH_N_PROCS])
{
	t[BENCH_P_SELF] = bench_cpu_s(0);
	for (int i = BENCH_P_KM_A; i < BENCH_N_PROCS; i++)
		t[i] = bench_cpu_s(n->procs[i].pid);
}

void
bench_cpu_mark(struct bench_cpu *c, int phase)
{
	cpu_read(c->net, phase == 0 ? c->t0 : c->t1);
}

double
bench_cpu_pct(const struct bench_cpu *c, int p, double seconds)
{
	return seconds > 0 ? (c->t1[p] - c->t0[p]) / seconds * 100.0 : 0;
}

cJSON *
bench_cpu_json(const struct bench_cpu *c, double seconds)
{
	static const char *const keys[BENCH_N_PROCS] = {"bench", "km_a", "km_b",
	                                                "qkdsim"};
	cJSON *j = cJSON_CreateObject();
	for (int p = 0; p < BENCH_N_PROCS; p++)
		cJSON_AddNumberToObject(j, keys[p],
		                        bench_cpu_pct(c, p, seconds));
	return j;
}
