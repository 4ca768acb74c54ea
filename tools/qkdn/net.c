/* net up / net down: a whole local network (emulator plus one KM per node)
 * as detached daemons of one run directory. */
#include "cli.h"

#include "qkdn_err.h"
#include "qkdn_rpc.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UP_TIMEOUT_MS 15000
#define DOWN_GRACE_MS 10000
#define PROBE_MS      200 /* one status call while waiting */
#define PROBE_MIN_MS  20  /* least time between two calls to one daemon */

static const char SIM_NAME[] = "qkdsim";

/* Ctrl-C while waiting: stop what was started rather than leave it. */
static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void
catch_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* A daemon being waited for, and the address it must answer on. */
struct waiter {
	struct cli_proc *p;
	const char *url;
	nng_socket sock;
	bool dialled, ready;
};

static void
nap_until(uint64_t t)
{
	uint64_t now = qkdn_now_ms();
	if (now >= t)
		return;
	struct timespec ts = {.tv_sec = (time_t)((t - now) / 1000),
	                      .tv_nsec = (long)((t - now) % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* One status call; 0 once the daemon answers. */
static int
probe_once(struct waiter *w, uint64_t deadline)
{
	struct qkdn_msg req = {.type = QKDN_STATUS_REQ}, rsp;
	struct qkdn_decode_error err;
	uint64_t start = qkdn_now_ms();
	uint64_t left = deadline > start ? deadline - start : 0;
	if (left == 0)
		return QKDN_E_TIMEOUT;
	int rv = qkdn_rpc_call(w->sock, &req, &rsp,
	                       (int)(left < PROBE_MS ? left : PROBE_MS), &err);
	if (rv == 0) {
		qkdn_msg_clear(&rsp);
		return 0;
	}
	/* a refused call returns at once: do not spin on it */
	nap_until(start + PROBE_MIN_MS);
	return rv;
}

/* Poll every daemon until each answers a status request. Returns 0, or a
 * qkdn error with why filled and failed[i] set for those to blame. */
static int
await_ready(struct waiter *w, size_t n, int timeout_ms, bool *failed, char *why,
            size_t whylen)
{
	uint64_t deadline = qkdn_now_ms() + (uint64_t)timeout_ms;
	for (size_t i = 0; i < n; i++) {
		if (w[i].url[0] == '\0') {
			w[i].ready = true; /* no address to ask: alive is all */
			continue;
		}
		int rv = qkdn_rpc_dial(&w[i].sock, w[i].url);
		if (rv != 0) {
			failed[i] = true;
			snprintf(why, whylen, "%s: cannot dial %s",
			         w[i].p->name, w[i].url);
			return rv;
		}
		w[i].dialled = true;
	}
	for (;;) {
		size_t pending = 0;
		if (interrupted) {
			snprintf(why, whylen, "interrupted");
			return QKDN_E_SHUTDOWN;
		}
		for (size_t i = 0; i < n; i++) {
			char how[96];
			if (cli_proc_alive(w[i].p))
				continue;
			failed[i] = true;
			cli_proc_describe(w[i].p, how, sizeof(how));
			snprintf(why, whylen, "%s %s %s %s", w[i].p->name, how,
			         w[i].ready ? "after answering on"
			                    : "before answering on",
			         w[i].url[0] != '\0' ? w[i].url
			                             : "(no address)");
			return QKDN_E_UNREACHABLE;
		}
		for (size_t i = 0; i < n; i++) {
			if (w[i].ready)
				continue;
			w[i].ready = probe_once(&w[i], deadline) == 0;
			pending += !w[i].ready;
		}
		if (pending == 0)
			return 0;
		if (qkdn_now_ms() >= deadline)
			break;
	}
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		if (w[i].ready)
			continue;
		failed[i] = true;
		if (len < whylen) {
			int k = snprintf(why + len, whylen - len, "%s%s (%s)",
			                 len == 0 ? "" : ", ", w[i].p->name,
			                 w[i].url);
			len += k > 0 ? (size_t)k : 0;
		}
	}
	if (len < whylen)
		snprintf(why + len, whylen - len, ": no answer within %d ms",
		         timeout_ms);
	return QKDN_E_TIMEOUT;
}

static cJSON *
up_json(const struct qkdn_net *net, const char *dir,
        const struct cli_proc *procs)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "run_dir", dir);
	cJSON *nodes = cJSON_AddArrayToObject(doc, "nodes");
	for (size_t i = 0; i < net->n_nodes; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", net->nodes[i].id);
		cJSON_AddStringToObject(o, "ak", net->nodes[i].ak_url);
		cJSON_AddStringToObject(o, "kx", net->nodes[i].kx_url);
		cJSON_AddNumberToObject(o, "pid", procs[i + 1].pid);
		cJSON_AddItemToArray(nodes, o);
	}
	cJSON *sim = cJSON_AddObjectToObject(doc, "sim");
	cJSON_AddStringToObject(sim, "url", net->sim_url);
	cJSON_AddNumberToObject(sim, "pid", procs[0].pid);
	return doc;
}

static void
up_text(const struct qkdn_net *net, const char *dir)
{
	for (size_t i = 0; i < net->n_nodes; i++)
		printf("%s ak=%s kx=%s\n", net->nodes[i].id,
		       net->nodes[i].ak_url, net->nodes[i].kx_url);
	printf("%s ctl=%s\n", SIM_NAME, net->sim_url);
	printf("run dir: %s\n", dir);
}

/* Refuse a run dir whose daemons still run; clear stale pid files. */
static int
check_not_running(const struct cli_args *a, const char *dir)
{
	struct cli_proc *v;
	size_t n;
	char list[512] = "";
	int rv = cli_read_pid_files(dir, &v, &n);
	if (rv != 0)
		return cli_fail(a, NULL, rv, "cannot read the pid files in %s",
		                dir);
	for (size_t i = 0, len = 0; i < n; i++) {
		if (v[i].state != PROC_RUNNING || len >= sizeof(list))
			continue;
		int k =
		    snprintf(list + len, sizeof(list) - len, "%s%s (pid %ld)",
		             len > 0 ? ", " : "", v[i].name, (long)v[i].pid);
		len += k > 0 ? (size_t)k : 0;
	}
	if (list[0] != '\0') {
		free(v);
		return cli_fail(a, NULL, QKDN_E_BAD_REQUEST,
		                "daemons of %s are already running: %s; stop "
		                "them with 'qkdn net down --run-dir %s'",
		                dir, list, dir);
	}
	cli_stop(dir, v, n, 0); /* removes the stale pid files */
	free(v);
	return CLI_OK;
}

/* Start every daemon; on failure stop those started. */
static int
start_all(const struct cli_args *a, const struct qkdn_net *net, const char *dir,
          const char *config, struct cli_proc *procs)
{
	char sim_bin[PATH_MAX], km_bin[PATH_MAX], why[PATH_MAX + 128];
	size_t n = net->n_nodes + 1, started = 0;
	int rv = 0;
	static const char *const progs[] = {"qkdn-qkdsim", "qkdn-km"};
	char *bins[] = {sim_bin, km_bin};
	for (size_t i = 0; i < 2; i++)
		if (cli_find_program(progs[i], bins[i], PATH_MAX) != 0)
			return cli_fail(
			    a, NULL, QKDN_E_CONFIG,
			    "cannot find %s next to qkdn or on PATH", progs[i]);
	for (size_t i = 0; i < net->n_nodes; i++)
		if (strchr(net->nodes[i].id, '/') != NULL)
			return cli_fail(a, NULL, QKDN_E_CONFIG,
			                "node ID '%s' cannot name a log file",
			                net->nodes[i].id);
	snprintf(procs[0].name, sizeof(procs[0].name), "%s", SIM_NAME);
	for (size_t i = 0; i < n && rv == 0; i++, started++) {
		char *sim_argv[] = {sim_bin,     "--config",  (char *)config,
		                    "--run-dir", (char *)dir, NULL};
		char *km_argv[] = {km_bin,
		                   "--config",
		                   (char *)config,
		                   "--node",
		                   i > 0 ? (char *)net->nodes[i - 1].id : NULL,
		                   "--run-dir",
		                   (char *)dir,
		                   NULL};
		if (i > 0)
			snprintf(procs[i].name, sizeof(procs[i].name), "km-%s",
			         net->nodes[i - 1].id);
		rv = cli_spawn(dir, &procs[i], i == 0 ? sim_argv : km_argv, why,
		               sizeof(why));
	}
	if (rv == 0)
		return CLI_OK;
	cli_stop(dir, procs, started, DOWN_GRACE_MS);
	return cli_fail(a, NULL, rv, "%s; all daemons stopped", why);
}

int
cli_net_up(const struct cli_cmd *cmd, struct cli_args *a)
{
	struct qkdn_net *net = NULL;
	struct cli_proc *procs = NULL;
	struct waiter *w = NULL;
	bool *failed = NULL;
	char dir[PATH_MAX], config[PATH_MAX], why[1024];
	size_t n = 0;
	int rv;
	(void)cmd;

	if ((rv = cli_load_net(a, a->arg[0], a->run_dir, &net)) != 0)
		return rv;
	if ((rv = cli_make_run_dir(net->run_dir, dir, sizeof(dir), why,
	                           sizeof(why))) != 0) {
		rv = cli_fail(a, NULL, rv, "%s", why);
		goto out;
	}
	/* Daemons get absolute paths, and the addresses printed are those
	 * they derive from the canonical run dir. */
	free(net);
	net = NULL;
	if (realpath(a->arg[0], config) == NULL) {
		rv = cli_fail(a, NULL, QKDN_E_IO, "%s: %s", a->arg[0],
		              strerror(errno));
		goto out;
	}
	if ((rv = cli_load_net(a, config, dir, &net)) != 0 ||
	    (rv = check_not_running(a, dir)) != 0)
		goto out;
	n = net->n_nodes + 1;
	procs = calloc(n, sizeof(*procs));
	w = calloc(n, sizeof(*w));
	failed = calloc(n, sizeof(*failed));
	if (procs == NULL || w == NULL || failed == NULL) {
		rv = cli_fail(a, NULL, QKDN_E_NOMEM, "starting %zu daemons", n);
		goto out;
	}
	catch_signals();
	if ((rv = start_all(a, net, dir, config, procs)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		w[i].p = &procs[i];
		w[i].url = i == 0 ? net->sim_url : net->nodes[i - 1].ak_url;
	}
	rv = await_ready(w, n, cli_timeout(a, UP_TIMEOUT_MS), failed, why,
	                 sizeof(why));
	for (size_t i = 0; i < n; i++)
		if (w[i].dialled)
			nng_close(w[i].sock);
	if (rv != 0) {
		cli_stop(dir, procs, n, DOWN_GRACE_MS);
		rv = cli_fail(a, NULL, rv,
		              "%s; all daemons stopped (logs in %s)", why, dir);
		for (size_t i = 0; i < n; i++)
			if (failed[i])
				cli_log_tail(dir, &procs[i]);
		goto out;
	}
	if (a->json)
		rv = cli_emit(a, up_json(net, dir, procs));
	else
		up_text(net, dir);
out:
	free(failed);
	free(w);
	free(procs);
	free(net);
	return rv;
}

/* The run dir net down works on: --run-dir, the file's, or ./run. */
static int
down_dir(const struct cli_args *a, char *dir, size_t len)
{
	const char *d = a->run_dir != NULL ? a->run_dir : "run";
	struct qkdn_net *net = NULL;
	if (a->run_dir == NULL && a->n_arg > 0) {
		int rv = cli_load_net(a, a->arg[0], NULL, &net);
		if (rv != 0)
			return rv;
		d = net->run_dir;
	}
	/* canonical, as the daemons were given it; a missing dir stays */
	if (realpath(d, dir) == NULL)
		snprintf(dir, len, "%s", d);
	free(net);
	return CLI_OK;
}

static const char *
stale_reason(const struct cli_proc *p)
{
	if (p->pid <= 0)
		return "no valid pid";
	return p->state == PROC_FOREIGN ? "pid reused by another process"
	                                : "process gone";
}

static void
down_text(const char *dir, const struct cli_proc *v, size_t n, int grace_ms)
{
	if (n == 0)
		printf("nothing running in %s\n", dir);
	for (size_t i = 0; i < n; i++) {
		const struct cli_proc *p = &v[i];
		if (p->state == PROC_TERM)
			printf("stopped %s (pid %ld)\n", p->name, (long)p->pid);
		else if (p->state == PROC_KILLED)
			printf("killed %s (pid %ld): still running %d ms after "
			       "SIGTERM\n",
			       p->name, (long)p->pid, grace_ms);
		else if (p->state != PROC_STUCK) /* STUCK: in the error */
			printf("removed stale %s.pid (%s)\n", p->name,
			       stale_reason(p));
	}
}

static cJSON *
down_json(const char *dir, const struct cli_proc *v, size_t n)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "run_dir", dir);
	cJSON *stopped = cJSON_AddArrayToObject(doc, "stopped");
	cJSON *stale = cJSON_AddArrayToObject(doc, "stale");
	for (size_t i = 0; i < n; i++) {
		const struct cli_proc *p = &v[i];
		if (p->state == PROC_STUCK)
			continue;
		bool gone = p->state == PROC_TERM || p->state == PROC_KILLED;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", p->name);
		cJSON_AddNumberToObject(o, "pid", p->pid);
		if (gone)
			cJSON_AddStringToObject(o, "signal",
			                        p->state == PROC_TERM ? "TERM"
			                                              : "KILL");
		else
			cJSON_AddStringToObject(o, "reason", stale_reason(p));
		cJSON_AddItemToArray(gone ? stopped : stale, o);
	}
	return doc;
}

int
cli_net_down(const struct cli_cmd *cmd, struct cli_args *a)
{
	char dir[PATH_MAX], stuck[512] = "";
	struct cli_proc *v = NULL;
	size_t n = 0, len = 0;
	int grace = cli_timeout(a, DOWN_GRACE_MS), rv;
	(void)cmd;

	if ((rv = down_dir(a, dir, sizeof(dir))) != 0)
		return rv;
	if ((rv = cli_read_pid_files(dir, &v, &n)) != 0)
		return cli_fail(a, NULL, rv, "cannot read the pid files in %s",
		                dir);
	cli_stop(dir, v, n, grace);
	for (size_t i = 0; i < n; i++) {
		if (v[i].state != PROC_STUCK || len >= sizeof(stuck))
			continue;
		int k =
		    snprintf(stuck + len, sizeof(stuck) - len, "%s%s (pid %ld)",
		             len > 0 ? ", " : "", v[i].name, (long)v[i].pid);
		len += k > 0 ? (size_t)k : 0;
	}
	if (a->json) {
		cJSON *doc = down_json(dir, v, n);
		rv = stuck[0] != '\0'
		         ? cli_fail(a, doc, QKDN_E_IO,
		                    "could not stop %s; pid files kept", stuck)
		         : cli_emit(a, doc);
	} else {
		down_text(dir, v, n, grace);
		if (stuck[0] != '\0')
			rv = cli_fail(a, NULL, QKDN_E_IO,
			              "could not stop %s; pid files kept",
			              stuck);
	}
	free(v);
	return rv;
}
