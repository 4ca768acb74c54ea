/* The line network of `qkdn-bench relay`: N1 - N2 - N3 - N4 - N5 in a
 * directory of its own, with the controller(s) of its mode, one emulator
 * and five KMs, started as `qkdn net up` starts them (emulator, then the
 * controllers, awaited, then the KMs, which report to them from the
 * start), but as children of this process (they die with it). alice is at
 * N1 and one destination SAE at each other node, so that one network
 * gives relays of 1 to 4 hops; the nodes past a measured destination only
 * report their links. */
#include "relay.h"

#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_netconf.h"
#include "qkdn_rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROBE_TIMEOUT_MS 1000
/* the emulator answers control requests between blocks of four links:
 * on a busy machine a reply may take a while */
#define CTL_TIMEOUT_MS    3000
#define CTL_TRIES         4
#define START_DEADLINE_MS 20000
#define KEY_DEADLINE_MS   60000
#define MIB               (1024.0 * 1024.0)

static const char *const sae_base[RNET_NODES] = {"alice", "bob", "carol",
                                                 "dave", "erin"};

const char *
rnet_mode_word(enum rnet_mode m)
{
	return m == RNET_CENTRALIZED ? "centralized" : "distributed";
}

void
rnet_sae(char *out, size_t len, int node, int pair)
{
	if (pair == 0)
		snprintf(out, len, "%s", sae_base[node]);
	else
		snprintf(out, len, "%s%d", sae_base[node], pair);
}

int
rnet_dir(struct rnet *n, const char *parent, const char *name)
{
	if (snprintf(n->dir, sizeof(n->dir), "%s/%s", parent, name) >=
	        (int)sizeof(n->dir) ||
	    mkdir(n->dir, 0700) != 0) {
		bench_note("cannot make %s/%s", parent, name);
		n->dir[0] = '\0';
		return QKDN_E_IO;
	}
	snprintf(n->cnf, sizeof(n->cnf), "%s/network.cnf", n->dir);
	/* distinct ports, picked just before the start: a port picked
	 * early may meanwhile be the source port of another connection */
	for (int i = 0; i < RNET_NODES; i++) {
		int p, tries = 0;
		bool taken;
		do {
			if ((p = bench_free_port()) < 0 || ++tries > 100)
				return QKDN_E_IO;
			taken = false;
			for (int k = 0; k < i; k++)
				taken |= n->kx_port[k] == p;
		} while (taken);
		n->kx_port[i] = p;
	}
	return 0;
}

static int
write_network(struct rnet *n, const char *who)
{
	char name[QKDN_NAME_MAX];
	FILE *f = fopen(n->cnf, "w");
	if (f == NULL) {
		bench_note("cannot write %s", n->cnf);
		return QKDN_E_IO;
	}
	fprintf(f, "# written by %s\n[qkdn]\nnodes = ", who);
	for (int i = 0; i < RNET_NODES; i++)
		fprintf(f, "%sN%d", i ? ", " : "", i + 1);
	fprintf(f, "\nlinks = ");
	for (int i = 0; i < RNET_HOPS_MAX; i++)
		fprintf(f, "%sN%d_N%d", i ? ", " : "", i + 1, i + 2);
	fprintf(f, "\ncontroller = %s\nrun_dir = %s\nsaes = ",
	        rnet_mode_word(n->mode), n->dir);
	for (int i = 0; i < RNET_NODES; i++)
		for (int p = 0; p < n->pairs; p++) {
			rnet_sae(name, sizeof(name), i, p);
			fprintf(f, "%s%s", i + p > 0 ? ", " : "", name);
		}
	fprintf(f, "\n");
	for (int i = 0; i < RNET_NODES; i++)
		fprintf(f,
		        "\n[N%d]\nkx = tcp://127.0.0.1:%d\nmap_size_mb = %d\n"
		        "key_ttl = %d\n",
		        i + 1, n->kx_port[i], BENCH_NET_MAP_SIZE_MB,
		        BENCH_NET_KEY_TTL_S);
	for (int i = 0; i < RNET_HOPS_MAX; i++)
		fprintf(f,
		        "\n[N%d_N%d]\nnodes = N%d, N%d\nrate = %llu\n"
		        "block_bytes = %d\npool_max_bytes = %llu\n",
		        i + 1, i + 2, i + 1, i + 2, RNET_RATE_BPS,
		        BENCH_NET_BLOCK_BYTES, BENCH_NET_POOL_MAX_BYTES);
	for (int i = 0; i < RNET_NODES; i++)
		for (int p = 0; p < n->pairs; p++) {
			rnet_sae(name, sizeof(name), i, p);
			fprintf(f, "\n[%s]\nnode = N%d\n", name, i + 1);
		}
	return fclose(f) == 0 ? 0 : QKDN_E_IO;
}

static int
km_answers(void *ak)
{
	return bench_status_once(ak);
}

static int
spawn(struct qkdn_proc *p, const char *dir, char *const argv[])
{
	char why[PATH_MAX + 128];
	int rv = qkdn_launch_spawn(p, dir, argv, QKDN_LAUNCH_CHILD, why,
	                           sizeof(why));
	if (rv != 0)
		bench_note("%s", why);
	return rv;
}

static int
await(struct qkdn_launch_wait *w, size_t nw, const char *dir)
{
	char why[1024];
	int rv =
	    qkdn_launch_await(w, nw, START_DEADLINE_MS, NULL, why, sizeof(why));
	if (rv != 0) {
		bench_note("%s", why);
		for (size_t i = 0; i < nw; i++)
			if (w[i].failed)
				qkdn_launch_log_tail(stderr, "qkdn-bench", dir,
				                     w[i].p, 20);
	}
	return rv;
}

/* The emulator and the controller(s) first, awaited (a controller
 * answers STATUS_REQ with CTL_STATUS; the launcher's probe takes any
 * reply but ERROR), then the KMs. */
static int
start_procs(struct rnet *n)
{
	char km[PATH_MAX], sim[PATH_MAX], ctl[PATH_MAX];
	struct qkdn_launch_wait w[2 * RNET_NODES + 1];
	size_t nw = 0;
	int rv;
	if (qkdn_launch_find_program("qkdn-km", false, km, sizeof(km)) != 0 ||
	    qkdn_launch_find_program("qkdn-qkdsim", false, sim, sizeof(sim)) !=
	        0 ||
	    qkdn_launch_find_program("qkdn-controller", false, ctl,
	                             sizeof(ctl)) != 0) {
		bench_note("qkdn-km, qkdn-qkdsim and qkdn-controller must sit "
		           "next to qkdn-bench (make -C build qkdn-km "
		           "qkdn-qkdsim qkdn-controller)");
		return QKDN_E_CONFIG;
	}
	char *sim_argv[] = {sim, "--config", n->cnf, NULL};
	snprintf(n->sim.name, QKDN_PROC_NAME_MAX, "qkdsim");
	if ((rv = spawn(&n->sim, n->dir, sim_argv)) != 0)
		return rv;
	w[nw++] =
	    (struct qkdn_launch_wait){.p = &n->sim, .url = n->conf->sim_url};
	n->n_ctl = n->mode == RNET_CENTRALIZED ? 1 : RNET_NODES;
	for (int i = 0; i < n->n_ctl; i++) {
		char node[16]; /* "N" and any int */
		snprintf(node, sizeof(node), "N%d", i + 1);
		char *argv[] = {ctl, "--config", n->cnf, "--node", node, NULL};
		if (n->mode == RNET_CENTRALIZED)
			argv[3] = NULL;
		snprintf(n->ctl[i].name, QKDN_PROC_NAME_MAX, "ctl-%s",
		         n->mode == RNET_CENTRALIZED ? "central" : node);
		if ((rv = spawn(&n->ctl[i], n->dir, argv)) != 0)
			return rv;
		w[nw++] = (struct qkdn_launch_wait){
		    .p = &n->ctl[i],
		    .url = n->mode == RNET_CENTRALIZED
		               ? n->conf->central_ck_url
		               : n->conf->nodes[i].ck_url};
	}
	if ((rv = await(w, nw, n->dir)) != 0)
		return rv;
	nw = 0;
	for (int i = 0; i < RNET_NODES; i++) {
		char node[16], sae[QKDN_AK_NAME_MAX];
		snprintf(node, sizeof(node), "N%d", i + 1);
		char *argv[] = {km, "--config", n->cnf, "--node", node, NULL};
		snprintf(n->km[i].name, QKDN_PROC_NAME_MAX, "km-%s", node);
		if ((rv = spawn(&n->km[i], n->dir, argv)) != 0)
			return rv;
		rnet_sae(sae, sizeof(sae), i, 0);
		if ((rv = qkdn_ak_open(&n->probe[i], n->conf->nodes[i].ak_url,
		                       sae, PROBE_TIMEOUT_MS)) != 0) {
			bench_note("%s", qkdn_ak_last_error());
			return rv;
		}
		w[nw++] =
		    (struct qkdn_launch_wait){.p = &n->km[i],
		                              .url = n->conf->nodes[i].ak_url,
		                              .probe = km_answers,
		                              .arg = n->probe[i]};
	}
	return await(w, nw, n->dir);
}

int
rnet_start(struct rnet *n, const char *who)
{
	char err[QKDN_REASON_MAX + QKDN_NET_PATH_MAX];
	int rv;
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
rnet_ak_url(const struct rnet *n, int node)
{
	return n->conf->nodes[node].ak_url;
}

/* The status entry of link `link` in st, or NULL. */
static const struct qkdn_ak_link_status *
find_link(const struct qkdn_ak_status *st, const char *link)
{
	for (size_t i = 0; i < st->n_links; i++)
		if (strcmp(st->links[i].link, link) == 0)
			return &st->links[i];
	return NULL;
}

int
rnet_links_read(struct rnet *n, struct rnet_links *l)
{
	memset(l, 0, sizeof(*l));
	for (int i = 0; i < RNET_NODES; i++) {
		struct qkdn_ak_status st;
		char left[16], right[16];
		int rv = qkdn_ak_status(n->probe[i], &st);
		if (rv != 0) {
			bench_note("status of N%d: %s", i + 1,
			           qkdn_ak_last_error());
			return rv;
		}
		snprintf(left, sizeof(left), "N%d_N%d", i, i + 1);
		snprintf(right, sizeof(right), "N%d_N%d", i + 1, i + 2);
		const struct qkdn_ak_link_status *ls;
		/* N(i+1) sends on its right link and matches on its left */
		if (i < RNET_HOPS_MAX && (ls = find_link(&st, right)) != NULL) {
			l->out[i] = ls->out_bytes;
			l->up[i] = ls->up;
		}
		if (i > 0 && (ls = find_link(&st, left)) != NULL)
			l->in[i - 1] = ls->in_bytes;
		l->relay[i] = st.relay;
		l->pending[i] = st.pending;
		qkdn_ak_status_free(&st);
	}
	return 0;
}

/* A link control request to the emulator, on a socket of its own and
 * tried up to CTL_TRIES times (the requests are idempotent). */
static int
link_ctl(struct rnet *n, int link, bool run)
{
	struct qkdn_msg req = {.type = QKDN_LINK_CTL}, rsp;
	struct qkdn_decode_error err = {0};
	int rv = QKDN_E_UNREACHABLE;
	memcpy(req.u.link_ctl.link, n->conf->links[link].id, sizeof(qkdn_name));
	req.u.link_ctl.action = run ? QKDN_LINK_RESUME : QKDN_LINK_PAUSE;
	for (int i = 0; i < CTL_TRIES; i++) {
		nng_socket s;
		if ((rv = qkdn_rpc_dial(&s, n->conf->sim_url)) != 0)
			break;
		rv = qkdn_rpc_call(s, &req, &rsp, CTL_TIMEOUT_MS, &err);
		qkdn_msg_clear(&rsp);
		nng_close(s);
		if (rv != QKDN_E_TIMEOUT)
			break;
	}
	if (rv != 0)
		bench_note("cannot %s link %s: %s", run ? "resume" : "pause",
		           n->conf->links[link].id,
		           err.reason[0] ? err.reason : qkdn_strerror(rv));
	return rv;
}

int
rnet_link_run(struct rnet *n, bool run)
{
	int rv = 0;
	for (size_t i = 0; i < n->conf->n_links && rv == 0; i++)
		rv = link_ctl(n, (int)i, run);
	if (rv == 0)
		n->paused = !run;
	return rv;
}

bool
rnet_alive(struct rnet *n)
{
	struct qkdn_proc *all[2 * RNET_NODES + 1];
	size_t k = 0;
	all[k++] = &n->sim;
	for (int i = 0; i < n->n_ctl; i++)
		all[k++] = &n->ctl[i];
	for (int i = 0; i < RNET_NODES; i++)
		all[k++] = &n->km[i];
	for (size_t i = 0; i < k; i++) {
		char how[96];
		if (all[i]->state == QKDN_PROC_UNUSED ||
		    qkdn_launch_alive(all[i]))
			continue;
		qkdn_launch_describe(all[i], how, sizeof(how));
		bench_note("%s %s", all[i]->name, how);
		qkdn_launch_log_tail(stderr, "qkdn-bench", n->dir, all[i], 20);
		return false;
	}
	return true;
}

static bool
enough(const struct rnet_links *l, uint64_t need)
{
	for (int i = 0; i < RNET_HOPS_MAX; i++)
		if (!l->up[i] || l->out[i] < need || l->in[i] < need)
			return false;
	return true;
}

int
rnet_wait_key(struct rnet *n, uint64_t need)
{
	uint64_t start = qkdn_now_ms(), deadline = start + KEY_DEADLINE_MS;
	struct rnet_links l;
	bool told = false;
	for (;;) {
		int rv = rnet_links_read(n, &l);
		if (rv != 0)
			return rv;
		if (enough(&l, need))
			return 0;
		if (!rnet_alive(n))
			return QKDN_E_UNREACHABLE;
		if (qkdn_now_ms() > deadline) {
			for (int i = 0; i < RNET_HOPS_MAX; i++)
				bench_note("no key after %d ms: N%d_N%d: N%d "
				           "holds %.1f MiB to send, N%d %.1f "
				           "MiB to match, Kx %s",
				           KEY_DEADLINE_MS, i + 1, i + 2, i + 1,
				           (double)l.out[i] / MIB, i + 2,
				           (double)l.in[i] / MIB,
				           l.up[i] ? "up" : "down");
			return QKDN_E_INSUFFICIENT_KEY;
		}
		if (!told && qkdn_now_ms() - start > 2000) {
			bench_note("waiting for %.0f MiB of key on each link",
			           (double)need / MIB);
			told = true;
		}
		bench_sleep_ms(50);
	}
}

int
rnet_ensure_key(struct rnet *n, uint64_t need)
{
	struct rnet_links l;
	int rv;
	if (!n->paused)
		return rnet_wait_key(n, need);
	if ((rv = rnet_links_read(n, &l)) != 0)
		return rv;
	if (enough(&l, need))
		return 0;
	if ((rv = rnet_link_run(n, true)) != 0 ||
	    (rv = rnet_wait_key(
	         n, need > RNET_TOPUP_BYTES ? need : RNET_TOPUP_BYTES)) != 0)
		return rv;
	return rnet_link_run(n, false);
}

void
rnet_cpu(const struct rnet *n, double t[RNET_CPU_N])
{
	t[0] = bench_cpu_s(0);
	t[1] = t[2] = 0;
	for (int i = 0; i < RNET_NODES; i++)
		if (n->km[i].state == QKDN_PROC_RUNNING)
			t[1] += bench_cpu_s(n->km[i].pid);
	for (int i = 0; i < n->n_ctl; i++)
		if (n->ctl[i].state == QKDN_PROC_RUNNING)
			t[2] += bench_cpu_s(n->ctl[i].pid);
	t[3] = n->sim.state == QKDN_PROC_RUNNING ? bench_cpu_s(n->sim.pid) : 0;
}

void
rnet_stop(struct rnet *n)
{
	for (int i = 0; i < RNET_NODES; i++) {
		qkdn_ak_close(n->probe[i]);
		n->probe[i] = NULL;
	}
	/* the KMs first (they report to the controllers), then the
	 * controllers, then the emulator that fed the KMs */
	bench_stop(n->km, RNET_NODES);
	bench_stop(n->ctl, (size_t)n->n_ctl);
	bench_stop(&n->sim, 1);
}

void
rnet_log_tails(const struct rnet *n, int lines)
{
	if (n->sim.name[0] != '\0')
		qkdn_launch_log_tail(stderr, "qkdn-bench", n->dir, &n->sim,
		                     lines);
	for (int i = 0; i < n->n_ctl; i++)
		qkdn_launch_log_tail(stderr, "qkdn-bench", n->dir, &n->ctl[i],
		                     lines);
	for (int i = 0; i < RNET_NODES; i++)
		if (n->km[i].name[0] != '\0')
			qkdn_launch_log_tail(stderr, "qkdn-bench", n->dir,
			                     &n->km[i], lines);
}

void
rnet_free(struct rnet *n)
{
	free(n->conf);
	n->conf = NULL;
}
