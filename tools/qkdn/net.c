/* net up / net down / net restart: a whole local network (emulator, the
 * controllers and one KM per node), or one KM of it, as detached daemons
 * of one run directory, started, awaited and stopped through the launcher
 * (qkdn_launch.h). */
#include "cli.h"

#include "qkdn_ak.h"
#include "qkdn_err.h"
#include "qkdn_launch.h"
#include "qkdn_rpc.h"
#include "qkdn_sp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define UP_TIMEOUT_MS 15000
#define DOWN_GRACE_MS 10000
#define TAIL_LINES    20

static const char SIM_NAME[] = "qkdsim";
static const char CTL_PROG[] = "qkdn-controller";
static const char CTL_CENTRAL[] = "ctl-central";

/* A network of this many nodes or fewer never relays a key (a relay needs
 * a node between two others), so it may run without controllers. */
#define NODES_WITHOUT_RELAY 2

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

/* "a (pid 1), b (pid 2)": those of v in state, into list. */
static void
name_list(const struct qkdn_proc *v, size_t n, int state, char *list,
          size_t len)
{
	size_t at = 0;
	list[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (v[i].state != state || at >= len)
			continue;
		int k = snprintf(list + at, len - at, "%s%s (pid %ld)",
		                 at > 0 ? ", " : "", v[i].name, (long)v[i].pid);
		at += k > 0 ? (size_t)k : 0;
	}
}

static cJSON *
node_json(const struct qkdn_net_node *node, pid_t pid)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", node->id);
	cJSON_AddStringToObject(o, "ak", node->ak_url);
	cJSON_AddStringToObject(o, "kx", node->kx_url);
	cJSON_AddNumberToObject(o, "pid", pid);
	return o;
}

static void
node_text(const struct qkdn_net_node *node)
{
	printf("%s ak=%s kx=%s\n", node->id, node->ak_url, node->kx_url);
}

/* Where net up puts its processes in one array: the emulator first, then
 * the controllers (started and awaited before the KMs, which report to
 * them from their start), then one KM per node in file order. */
struct up_plan {
	size_t n_ctl; /* controllers started: 0, 1 (central) or n_nodes */
	size_t n_gw;  /* ETSI 014 gateways, after the KMs */
	size_t n;     /* 1 + n_ctl + n_nodes + n_gw */
	char sim_bin[PATH_MAX], km_bin[PATH_MAX], ctl_bin[PATH_MAX];
	char gw_bin[PATH_MAX];
};

static struct qkdn_proc *
km_proc(struct qkdn_proc *procs, const struct up_plan *pl, size_t node)
{
	return &procs[1 + pl->n_ctl + node];
}

/* The g-th ETSI 014 gateway (in node order). */
static struct qkdn_proc *
gw_proc(struct qkdn_proc *procs, const struct up_plan *pl, size_t g)
{
	return &procs[pl->n - pl->n_gw + g];
}

static bool
centralized(const struct qkdn_net *net)
{
	return net->controller == QKDN_CTL_CENTRALIZED;
}

static cJSON *
ctl_json(const struct qkdn_net *net, const struct up_plan *pl,
         const struct qkdn_proc *procs)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; i < pl->n_ctl; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", procs[1 + i].name);
		if (centralized(net)) {
			cJSON_AddStringToObject(o, "ck", net->central_ck_url);
		} else {
			cJSON_AddStringToObject(o, "node", net->nodes[i].id);
			cJSON_AddStringToObject(o, "ck", net->nodes[i].ck_url);
			cJSON_AddStringToObject(o, "cx", net->nodes[i].cx_url);
		}
		cJSON_AddNumberToObject(o, "pid", procs[1 + i].pid);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static cJSON *
up_json(const struct qkdn_net *net, const char *dir, const struct up_plan *pl,
        struct qkdn_proc *procs)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "run_dir", dir);
	cJSON *nodes = cJSON_AddArrayToObject(doc, "nodes");
	for (size_t i = 0; i < net->n_nodes; i++)
		cJSON_AddItemToArray(
		    nodes,
		    node_json(&net->nodes[i], km_proc(procs, pl, i)->pid));
	cJSON *sim = cJSON_AddObjectToObject(doc, "sim");
	cJSON_AddStringToObject(sim, "url", net->sim_url);
	cJSON_AddNumberToObject(sim, "pid", procs[0].pid);
	cJSON_AddStringToObject(doc, "controller",
	                        centralized(net) ? "centralized"
	                                         : "distributed");
	cJSON_AddItemToObject(doc, "controllers", ctl_json(net, pl, procs));
	cJSON *gws = cJSON_AddArrayToObject(doc, "etsi014");
	for (size_t i = 0, g = 0; i < net->n_nodes; i++) {
		const struct qkdn_net_node *nd = &net->nodes[i];
		if (nd->etsi014_url[0] == '\0')
			continue;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "node", nd->id);
		cJSON_AddStringToObject(o, "url", nd->etsi014_url);
		cJSON_AddStringToObject(o, "ca", nd->etsi014_ca);
		cJSON_AddBoolToObject(o, "test_pki", nd->etsi014_test_pki);
		cJSON_AddNumberToObject(o, "pid", gw_proc(procs, pl, g++)->pid);
		cJSON_AddItemToArray(gws, o);
	}
	return doc;
}

static void
up_text(const struct qkdn_net *net, const char *dir, const struct up_plan *pl,
        const struct qkdn_proc *procs)
{
	for (size_t i = 0; i < net->n_nodes; i++)
		node_text(&net->nodes[i]);
	for (size_t i = 0; i < pl->n_ctl; i++) {
		if (centralized(net))
			printf("%s ck=%s\n", procs[1 + i].name,
			       net->central_ck_url);
		else
			printf("%s ck=%s cx=%s\n", procs[1 + i].name,
			       net->nodes[i].ck_url, net->nodes[i].cx_url);
	}
	printf("%s ctl=%s\n", SIM_NAME, net->sim_url);
	const char *pki = NULL;
	for (size_t i = 0; i < net->n_nodes; i++) {
		const struct qkdn_net_node *nd = &net->nodes[i];
		if (nd->etsi014_url[0] == '\0')
			continue;
		printf("etsi014-%s %s\n", nd->id, nd->etsi014_url);
		if (nd->etsi014_test_pki)
			pki = nd->etsi014_ca;
	}
	if (pki != NULL) {
		/* the test PKI's directory: where ca.pem lies */
		int len = (int)(strrchr(pki, '/') - pki);
		printf("etsi014 test PKI: %.*s (ca.pem; per SAE ID.pem, "
		       "ID.key), e.g. curl --cacert %s --cert %.*s/SAE.pem "
		       "--key %.*s/SAE.key URL/api/v1/keys/SLAVE/status\n",
		       len, pki, pki, len, pki, len, pki);
	}
	printf("run dir: %s\n", dir);
}

/* Refuse a run dir whose daemons still run; clear stale pid files. */
static int
check_not_running(const struct cli_args *a, const char *dir)
{
	struct qkdn_proc *v;
	size_t n;
	char list[512];
	int rv = qkdn_launch_read_pid_files(dir, &v, &n);
	if (rv != 0)
		return cli_fail(a, NULL, rv, "cannot read the pid files in %s",
		                dir);
	name_list(v, n, QKDN_PROC_RUNNING, list, sizeof(list));
	if (list[0] != '\0') {
		free(v);
		return cli_fail(a, NULL, QKDN_E_BAD_REQUEST,
		                "daemons of %s are already running: %s; stop "
		                "them with 'qkdn net down --run-dir %s'",
		                dir, list, dir);
	}
	qkdn_launch_stop(dir, v, n, SIGTERM, 0); /* removes stale pid files */
	free(v);
	return CLI_OK;
}

/* The KM ("km-") or controller ("ctl-") of a node: its process name
 * (which names its files), checked. */
static int
proc_name(const struct cli_args *a, const char *prefix, const char *node,
          struct qkdn_proc *p)
{
	if (strchr(node, '/') != NULL)
		return cli_fail(a, NULL, QKDN_E_CONFIG,
		                "node ID '%s' cannot name a log file", node);
	snprintf(p->name, sizeof(p->name), "%s%s", prefix, node);
	return CLI_OK;
}

static int
km_name(const struct cli_args *a, const char *node, struct qkdn_proc *p)
{
	return proc_name(a, "km-", node, p);
}

static int
find_program(const struct cli_args *a, const char *name, char *out)
{
	if (qkdn_launch_find_program(name, true, out, PATH_MAX) != 0)
		return cli_fail(a, NULL, QKDN_E_CONFIG,
		                "cannot find %s next to qkdn or on PATH", name);
	return CLI_OK;
}

/* Start the KM of node as `net up` does; 0 or a qkdn error in why. */
static int
spawn_km(struct qkdn_proc *p, char *bin, const char *config, const char *node,
         const char *dir, char *why, size_t whylen)
{
	char *argv[] = {bin,          "--config",  (char *)config, "--node",
	                (char *)node, "--run-dir", (char *)dir,    NULL};
	return qkdn_launch_spawn(p, dir, argv, QKDN_LAUNCH_DAEMON, why, whylen);
}

/* Which controllers net up starts: all of the file's mode (one per node,
 * or the central one) whenever qkdn-controller is found. Without it, a
 * network of at most NODES_WITHOUT_RELAY nodes, which never relays, runs
 * as before (said in one line on stderr: its KMs find no controller and
 * serve direct keys only); a larger one fails, since relays there need the
 * controllers. */
static int
plan_up(const struct cli_args *a, const struct qkdn_net *net,
        struct up_plan *pl)
{
	int rv;
	if ((rv = find_program(a, "qkdn-qkdsim", pl->sim_bin)) != 0 ||
	    (rv = find_program(a, "qkdn-km", pl->km_bin)) != 0)
		return rv;
	/* two nodes have nothing to relay: no controller, as before relay */
	if (net->n_nodes <= NODES_WITHOUT_RELAY)
		pl->n_ctl = 0;
	else if (qkdn_launch_find_program(CTL_PROG, true, pl->ctl_bin,
	                                  PATH_MAX) == 0)
		pl->n_ctl = centralized(net) ? 1 : net->n_nodes;
	else
		return cli_fail(a, NULL, QKDN_E_CONFIG,
		                "cannot find %s next to qkdn or on PATH; the "
		                "%zu nodes of %s need controllers to relay "
		                "keys",
		                CTL_PROG, net->n_nodes, net->path);
	for (size_t i = 0; i < net->n_nodes; i++)
		pl->n_gw += net->nodes[i].etsi014_url[0] != '\0';
	if (pl->n_gw > 0 &&
	    (rv = find_program(a, "qkdn-etsi014", pl->gw_bin)) != 0)
		return rv;
	pl->n = 1 + pl->n_ctl + net->n_nodes + pl->n_gw;
	return CLI_OK;
}

/* Name every process of the plan (names are checked before anything
 * starts). */
static int
name_all(const struct cli_args *a, const struct qkdn_net *net,
         const struct up_plan *pl, struct qkdn_proc *procs)
{
	int rv;
	snprintf(procs[0].name, sizeof(procs[0].name), "%s", SIM_NAME);
	for (size_t i = 0; i < pl->n_ctl; i++) {
		if (centralized(net))
			snprintf(procs[1].name, sizeof(procs[1].name), "%s",
			         CTL_CENTRAL);
		else if ((rv = proc_name(a, "ctl-", net->nodes[i].id,
		                         &procs[1 + i])) != 0)
			return rv;
	}
	for (size_t i = 0; i < net->n_nodes; i++)
		if ((rv = km_name(a, net->nodes[i].id,
		                  km_proc(procs, pl, i))) != 0)
			return rv;
	for (size_t i = 0, g = 0; i < net->n_nodes; i++)
		if (net->nodes[i].etsi014_url[0] != '\0' &&
		    (rv = proc_name(a, "etsi014-", net->nodes[i].id,
		                    gw_proc(procs, pl, g++))) != 0)
			return rv;
	return CLI_OK;
}

/* Start the emulator and the controllers (procs[0..n_ctl]); on failure
 * stop those started. */
static int
start_first(const struct cli_args *a, const struct qkdn_net *net,
            const char *dir, const char *config, struct up_plan *pl,
            struct qkdn_proc *procs)
{
	char why[PATH_MAX + 128];
	size_t started = 1;
	char *sim_argv[] = {pl->sim_bin, "--config",  (char *)config,
	                    "--run-dir", (char *)dir, NULL};
	int rv = qkdn_launch_spawn(&procs[0], dir, sim_argv, QKDN_LAUNCH_DAEMON,
	                           why, sizeof(why));
	for (size_t i = 0; i < pl->n_ctl && rv == 0; i++, started++) {
		/* distributed: --node names the controller's node */
		char *argv[] = {pl->ctl_bin,
		                "--config",
		                (char *)config,
		                "--run-dir",
		                (char *)dir,
		                "--node",
		                (char *)net->nodes[i].id,
		                NULL};
		if (centralized(net))
			argv[5] = NULL;
		rv = qkdn_launch_spawn(&procs[1 + i], dir, argv,
		                       QKDN_LAUNCH_DAEMON, why, sizeof(why));
	}
	if (rv == 0)
		return CLI_OK;
	qkdn_launch_stop(dir, procs, started, SIGTERM, DOWN_GRACE_MS);
	return cli_fail(a, NULL, rv, "%s; all daemons stopped", why);
}

/* Start the KMs; on failure stop every process of the plan. */
static int
start_kms(const struct cli_args *a, const struct qkdn_net *net, const char *dir,
          const char *config, struct up_plan *pl, struct qkdn_proc *procs)
{
	char why[PATH_MAX + 128];
	int rv = 0;
	for (size_t i = 0; i < net->n_nodes && rv == 0; i++)
		rv = spawn_km(km_proc(procs, pl, i), pl->km_bin, config,
		              net->nodes[i].id, dir, why, sizeof(why));
	if (rv == 0)
		return CLI_OK;
	qkdn_launch_stop(dir, procs, pl->n, SIGTERM, DOWN_GRACE_MS);
	return cli_fail(a, NULL, rv, "%s; all daemons stopped", why);
}

/* Wait until each of procs answers on urls[i]; if one does not, stop them
 * all, fail naming it and what was stopped (taking *doc, which may be
 * NULL, as cli_fail does) and show its log's tail. */
/* How the start-up wait reaches a KM whose Ak is tls+tcp:// (nng's own
 * probe cannot): a status call through the Ak client with the node's
 * certificate, which may ask for status (it names no SAE). */
struct tls_probe {
	const char *url;
	struct qkdn_ak_opts opts;
};

static int
probe_tls(void *arg)
{
	const struct tls_probe *p = arg;
	struct qkdn_ak *ak;
	struct qkdn_ak_status st = {0};
	int rv = qkdn_ak_open_opts(&ak, p->url, "qkdn-cli", &p->opts);
	if (rv != 0)
		return rv;
	rv = qkdn_ak_status(ak, &st);
	qkdn_ak_status_free(&st);
	qkdn_ak_close(ak);
	return rv;
}

/* A controller whose Ck is tls+tcp:// (nng's probe cannot reach it): a
 * status request over qkdn_sp, with the central controller's own
 * certificate, or the node's for a node's controller (they share it). */
struct ctl_probe {
	const char *url;
	struct cli_ctl_files f;
};

static int
probe_ctl_tls(void *arg)
{
	const struct ctl_probe *p = arg;
	struct qkdn_sp_tls *tls = NULL;
	struct qkdn_msg req = {.type = QKDN_STATUS_REQ, .req_id = 1}, rsp;
	struct qkdn_decode_error err = {0};
	char why[QKDN_REASON_MAX];
	int rv = qkdn_sp_tls_new(&tls, p->f.ca, p->f.cert, p->f.key, why,
	                         sizeof(why));
	if (rv != 0)
		return rv;
	struct qkdn_sp_conn c = {.fd = -1, .tls = tls, .peer_name = p->f.name};
	rv = qkdn_rpc_sp_call(&c, p->url, &req, &rsp, 1u << 20, 200, &err);
	qkdn_msg_clear(&rsp);
	qkdn_sp_close(&c);
	qkdn_sp_tls_free(tls);
	return rv;
}

/* nodes[i]: the KM's node procs[i] is, or NULL (the emulator, a
 * controller: nng's probe, whose reply of any type but ERROR counts; over
 * TLS ctl[i]'s). On failure every one of all[0..n_all) is stopped. */
static int
await_started(const struct cli_args *a, const char *dir,
              struct qkdn_proc *procs, const char *const *urls,
              const struct qkdn_net *net,
              const struct qkdn_net_node *const *nodes, size_t n,
              struct qkdn_proc *all, size_t n_all, const char *stopped,
              cJSON **doc, struct ctl_probe *ctl)
{
	struct qkdn_launch_wait *w = calloc(n, sizeof(*w));
	struct tls_probe *tp = calloc(n, sizeof(*tp));
	char why[1024];
	int rv = QKDN_E_NOMEM;
	if (w != NULL && tp != NULL) {
		for (size_t i = 0; i < n; i++) {
			w[i].p = &procs[i];
			w[i].url = urls[i];
			if (strncmp(urls[i], "tls+tcp://", 10) != 0)
				continue;
			if (nodes[i] == NULL && ctl != NULL &&
			    ctl[i].url != NULL) {
				w[i].probe = probe_ctl_tls;
				w[i].arg = &ctl[i];
				continue;
			}
			if (nodes[i] == NULL)
				continue;
			tp[i] = (struct tls_probe){
			    .url = urls[i],
			    .opts = {.timeout_ms = 200,
			             .ca = net->ca,
			             .cert = nodes[i]->cert,
			             .key = nodes[i]->key,
			             .km_name = nodes[i]->id}};
			w[i].probe = probe_tls;
			w[i].arg = &tp[i];
		}
		rv = qkdn_launch_await(w, n, cli_timeout(a, UP_TIMEOUT_MS),
		                       &interrupted, why, sizeof(why));
	} else {
		snprintf(why, sizeof(why), "waiting for %zu daemons", n);
	}
	if (rv != 0) {
		qkdn_launch_stop(dir, all, n_all, SIGTERM, DOWN_GRACE_MS);
		rv = cli_fail(a, doc != NULL ? *doc : NULL, rv,
		              "%s; %s (logs in %s)", why, stopped, dir);
		if (doc != NULL)
			*doc = NULL;
		for (size_t i = 0; i < n && w != NULL; i++)
			if (w[i].failed)
				qkdn_launch_log_tail(stderr, "qkdn", dir,
				                     &procs[i], TAIL_LINES);
	}
	free(w);
	free(tp);
	return rv;
}

/* Load FILE (a->run_dir overriding its run dir) with absolute paths: the
 * daemons get them, and the addresses printed are those they derive from
 * the canonical run dir. With make, the run dir is created. */
static int
load_abs(const struct cli_args *a, const char *file, bool make,
         struct qkdn_net **out, char *dir, char *config)
{
	char why[PATH_MAX + 128];
	int rv = cli_load_net(a, file, a->run_dir, out);
	if (rv != 0)
		return rv;
	if (make) {
		rv = qkdn_launch_make_dir((*out)->run_dir, dir, PATH_MAX, why,
		                          sizeof(why));
	} else if (realpath((*out)->run_dir, dir) == NULL) {
		snprintf(why, sizeof(why), "run dir %s: %s", (*out)->run_dir,
		         strerror(errno));
		rv = QKDN_E_IO;
	}
	if (rv == 0 && realpath(file, config) == NULL) {
		snprintf(why, sizeof(why), "%s: %s", file, strerror(errno));
		rv = QKDN_E_IO;
	}
	free(*out);
	*out = NULL;
	if (rv != 0)
		return cli_fail(a, NULL, rv, "%s", why);
	return cli_load_net(a, config, dir, out);
}

/* The ETSI 014 gateways' test PKI (docs/etsi014.md): one CA, a server
 * certificate per gateway without certificates of its own, a client
 * certificate per SAE of the network, made by qkdn-etsi014-certs. */
static int
make_gw_pki(const struct cli_args *a, const struct qkdn_net *net)
{
	char bin[PATH_MAX], dir[QKDN_NET_PATH_MAX],
	    hosts[QKDN_NET_NODES_MAX][QKDN_NET_URL_MAX];
	const char **argv =
	    calloc(4 + 4 * net->n_nodes + net->n_saes, sizeof(*argv));
	size_t n = 0;
	int rv = CLI_OK, status = 0;
	pid_t pid;
	if (argv == NULL)
		return cli_fail(a, NULL, QKDN_E_NOMEM, "test PKI");
	argv[n++] = bin;
	argv[n++] = dir;
	dir[0] = '\0';
	for (size_t i = 0; i < net->n_nodes; i++) {
		const struct qkdn_net_node *nd = &net->nodes[i];
		if (nd->etsi014_url[0] == '\0' || !nd->etsi014_test_pki)
			continue;
		snprintf(dir, sizeof(dir), "%s", nd->etsi014_ca);
		*strrchr(dir, '/') = '\0';
		/* the host of https://HOST:PORT, for the certificate's SAN */
		const char *h = nd->etsi014_url + strlen("https://");
		int len = (int)(strrchr(h, ':') - h);
		if (h[0] == '[')
			h++, len -= 2;
		snprintf(hosts[i], sizeof(hosts[i]), "%.*s", len, h);
		argv[n++] = "gw";
		argv[n++] = nd->etsi014_name;
		argv[n++] = hosts[i];
	}
	if (dir[0] == '\0')
		goto out;
	argv[n++] = "sae";
	for (size_t i = 0; i < net->n_saes; i++)
		argv[n++] = net->saes[i].id;
	if ((rv = find_program(a, "qkdn-etsi014-certs", bin)) != 0)
		goto out;
	if (posix_spawn(&pid, bin, NULL, NULL, (char *const *)argv, environ) !=
	        0 ||
	    waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		rv = cli_fail(a, NULL, QKDN_E_IO,
		              "qkdn-etsi014-certs could not make the test PKI "
		              "in %s",
		              dir);
out:
	free(argv);
	return rv;
}

/* How long a gateway's port has to accept a connection: a blocking
 * connect to a host that drops SYNs would hang net status for minutes. */
#define PROBE_GW_MS 500

/* Connect the non-blocking fd within PROBE_GW_MS: 0, or -1. */
static int
connect_within(int fd, const struct addrinfo *ai)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t len = sizeof(err);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS || poll(&p, 1, PROBE_GW_MS) != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
		return -1;
	return 0;
}

/* A gateway is up once its port accepts a TCP connection. */
static int
probe_gw(void *arg)
{
	const char *h = (const char *)arg + strlen("https://");
	char host[QKDN_NET_URL_MAX];
	const char *colon = strrchr(h, ':');
	int len = (int)(colon - h);
	if (h[0] == '[')
		h++, len -= 2;
	snprintf(host, sizeof(host), "%.*s", len, h);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		return QKDN_E_CONFIG;
	int fd = socket(ai->ai_family,
	                SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rv =
	    fd >= 0 && connect_within(fd, ai) == 0 ? 0 : QKDN_E_UNREACHABLE;
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return rv;
}

/* Start the ETSI 014 gateways (after the KMs they ask) and wait until
 * each listens; on failure stop every process of the plan. */
static int
start_gateways(const struct cli_args *a, const struct qkdn_net *net,
               const char *dir, const char *config, struct up_plan *pl,
               struct qkdn_proc *procs)
{
	struct qkdn_launch_wait w[QKDN_NET_NODES_MAX];
	char why[PATH_MAX + 128];
	size_t g = 0;
	int rv;
	if (pl->n_gw == 0)
		return CLI_OK;
	if ((rv = make_gw_pki(a, net)) != 0) {
		qkdn_launch_stop(dir, procs, pl->n, SIGTERM, DOWN_GRACE_MS);
		return rv;
	}
	for (size_t i = 0; i < net->n_nodes && rv == 0; i++) {
		const struct qkdn_net_node *nd = &net->nodes[i];
		if (nd->etsi014_url[0] == '\0')
			continue;
		char *argv[] = {
		    pl->gw_bin,     "--config",  (char *)config, "--node",
		    (char *)nd->id, "--run-dir", (char *)dir,    NULL};
		w[g] =
		    (struct qkdn_launch_wait){.p = gw_proc(procs, pl, g),
		                              .url = nd->etsi014_url,
		                              .probe = probe_gw,
		                              .arg = (void *)nd->etsi014_url};
		rv = qkdn_launch_spawn(w[g].p, dir, argv, QKDN_LAUNCH_DAEMON,
		                       why, sizeof(why));
		g++;
	}
	if (rv == 0)
		rv = qkdn_launch_await(w, g, cli_timeout(a, UP_TIMEOUT_MS),
		                       &interrupted, why, sizeof(why));
	if (rv == 0)
		return CLI_OK;
	qkdn_launch_stop(dir, procs, pl->n, SIGTERM, DOWN_GRACE_MS);
	rv = cli_fail(a, NULL, rv, "%s; all daemons stopped (logs in %s)", why,
	              dir);
	for (size_t k = 0; k < g; k++)
		if (w[k].failed)
			qkdn_launch_log_tail(stderr, "qkdn", dir, w[k].p,
			                     TAIL_LINES);
	return rv;
}

int
cli_net_up(const struct cli_cmd *cmd, struct cli_args *a)
{
	struct qkdn_net *net = NULL;
	struct qkdn_proc *procs = NULL;
	const char **urls = NULL;
	const struct qkdn_net_node **nodes = NULL;
	struct up_plan *pl = NULL;
	char dir[PATH_MAX], config[PATH_MAX];
	int rv;
	(void)cmd;

	if ((rv = load_abs(a, a->arg[0], true, &net, dir, config)) != 0 ||
	    (rv = check_not_running(a, dir)) != 0)
		goto out;
	if ((pl = calloc(1, sizeof(*pl))) == NULL) {
		rv = cli_fail(a, NULL, QKDN_E_NOMEM, "starting the daemons");
		goto out;
	}
	if ((rv = plan_up(a, net, pl)) != 0)
		goto out;
	size_t n = pl->n, first = 1 + pl->n_ctl;
	procs = calloc(n, sizeof(*procs));
	urls = calloc(n, sizeof(*urls));
	nodes = calloc(n, sizeof(*nodes));
	if (procs == NULL || urls == NULL || nodes == NULL) {
		rv = cli_fail(a, NULL, QKDN_E_NOMEM, "starting %zu daemons", n);
		goto out;
	}
	if ((rv = name_all(a, net, pl, procs)) != 0)
		goto out;
	urls[0] = net->sim_url;
	struct ctl_probe ctl[1 + QKDN_NET_NODES_MAX] = {{0}};
	for (size_t i = 0; i < pl->n_ctl; i++) {
		urls[1 + i] = centralized(net) ? net->central_ck_url
		                               : net->nodes[i].ck_url;
		ctl[1 + i].url = urls[1 + i];
		cli_ctl_files(net, centralized(net) ? -1 : (int)i,
		              &ctl[1 + i].f);
	}
	for (size_t i = 0; i < net->n_nodes; i++) {
		nodes[first + i] = &net->nodes[i];
		urls[first + i] = net->nodes[i].ak_url;
	}
	catch_signals();
	/* the emulator and the controllers answer first: a KM reports its
	 * links to its controller from the start */
	if ((rv = start_first(a, net, dir, config, pl, procs)) != 0 ||
	    (rv = await_started(a, dir, procs, urls, net, nodes, first, procs,
	                        n, "all daemons stopped", NULL, ctl)) != 0 ||
	    (rv = start_kms(a, net, dir, config, pl, procs)) != 0 ||
	    (rv = await_started(a, dir, procs + first, urls + first, net,
	                        nodes + first, net->n_nodes, procs, n,
	                        "all daemons stopped", NULL, NULL)) != 0 ||
	    (rv = start_gateways(a, net, dir, config, pl, procs)) != 0)
		goto out;
	if (a->json)
		rv = cli_emit(a, up_json(net, dir, pl, procs));
	else
		up_text(net, dir, pl, procs);
out:
	free(nodes);
	free(urls);
	free(procs);
	free(pl);
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
stale_reason(const struct qkdn_proc *p)
{
	if (p->pid <= 0)
		return "no valid pid";
	return p->state == QKDN_PROC_FOREIGN ? "pid reused by another process"
	                                     : "process gone";
}

/* What stopping p did, as a line of text; sig was the first signal. */
static void
stop_text(const struct qkdn_proc *p, int sig, int grace_ms)
{
	if (p->state == QKDN_PROC_TERM)
		printf("stopped %s (pid %ld)\n", p->name, (long)p->pid);
	else if (p->state == QKDN_PROC_KILLED && sig == SIGKILL)
		printf("killed %s (pid %ld)\n", p->name, (long)p->pid);
	else if (p->state == QKDN_PROC_KILLED)
		printf("killed %s (pid %ld): still running %d ms after "
		       "SIGTERM\n",
		       p->name, (long)p->pid, grace_ms);
	else if (p->state != QKDN_PROC_STUCK) /* STUCK: in the error */
		printf("removed stale %s.pid (%s)\n", p->name, stale_reason(p));
}

/* {"run_dir", "stopped": [...], "stale": [...]} */
static cJSON *
stop_json(const char *dir, const struct qkdn_proc *v, size_t n)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "run_dir", dir);
	cJSON *stopped = cJSON_AddArrayToObject(doc, "stopped");
	cJSON *stale = cJSON_AddArrayToObject(doc, "stale");
	for (size_t i = 0; i < n; i++) {
		const struct qkdn_proc *p = &v[i];
		if (p->state == QKDN_PROC_STUCK)
			continue;
		bool gone =
		    p->state == QKDN_PROC_TERM || p->state == QKDN_PROC_KILLED;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", p->name);
		cJSON_AddNumberToObject(o, "pid", p->pid);
		if (gone)
			cJSON_AddStringToObject(
			    o, "signal",
			    p->state == QKDN_PROC_TERM ? "TERM" : "KILL");
		else
			cJSON_AddStringToObject(o, "reason", stale_reason(p));
		cJSON_AddItemToArray(gone ? stopped : stale, o);
	}
	return doc;
}

int
cli_net_down(const struct cli_cmd *cmd, struct cli_args *a)
{
	char dir[PATH_MAX], stuck[512];
	struct qkdn_proc *v = NULL;
	size_t n = 0;
	int grace = cli_timeout(a, DOWN_GRACE_MS), rv;
	(void)cmd;

	if ((rv = down_dir(a, dir, sizeof(dir))) != 0)
		return rv;
	if ((rv = qkdn_launch_read_pid_files(dir, &v, &n)) != 0)
		return cli_fail(a, NULL, rv, "cannot read the pid files in %s",
		                dir);
	qkdn_launch_stop(dir, v, n, SIGTERM, grace);
	name_list(v, n, QKDN_PROC_STUCK, stuck, sizeof(stuck));
	if (a->json) {
		cJSON *doc = stop_json(dir, v, n);
		rv = stuck[0] != '\0'
		         ? cli_fail(a, doc, QKDN_E_IO,
		                    "could not stop %s; pid files kept", stuck)
		         : cli_emit(a, doc);
	} else {
		if (n == 0)
			printf("nothing running in %s\n", dir);
		for (size_t i = 0; i < n; i++)
			stop_text(&v[i], SIGTERM, grace);
		if (stuck[0] != '\0')
			rv = cli_fail(a, NULL, QKDN_E_IO,
			              "could not stop %s; pid files kept",
			              stuck);
	}
	free(v);
	return rv;
}

int
cli_net_restart(const struct cli_cmd *cmd, struct cli_args *a)
{
	struct qkdn_net *net = NULL;
	struct qkdn_proc old = {0}, km = {0};
	char dir[PATH_MAX], config[PATH_MAX], bin[PATH_MAX];
	char why[PATH_MAX + 128], stopped[QKDN_PROC_NAME_MAX + 16];
	int sig = a->kill ? SIGKILL : SIGTERM, node, rv;
	cJSON *doc = NULL;

	if (a->config == NULL)
		return cli_usage(cmd, "--config FILE is required");
	if ((rv = load_abs(a, a->config, false, &net, dir, config)) != 0)
		goto out;
	if ((node = qkdn_net_node_index(net, a->arg[0])) < 0) {
		rv =
		    cli_usage(cmd, "%s has no node '%s'", a->config, a->arg[0]);
		goto out;
	}
	if ((rv = km_name(a, a->arg[0], &old)) != 0 ||
	    (rv = find_program(a, "qkdn-km", bin)) != 0)
		goto out;
	/* the old KM must be gone before the new one takes its sockets */
	size_t n_old = qkdn_launch_read_pid_file(dir, &old) ? 1 : 0;
	qkdn_launch_stop(dir, &old, 1, sig, DOWN_GRACE_MS);
	if (old.state == QKDN_PROC_STUCK) {
		rv = cli_fail(a, NULL, QKDN_E_IO,
		              "could not stop %s (pid %ld); pid file kept",
		              old.name, (long)old.pid);
		goto out;
	}
	if (a->json)
		doc = stop_json(dir, &old, n_old);
	else if (n_old > 0)
		stop_text(&old, sig, DOWN_GRACE_MS);
	catch_signals();
	memcpy(km.name, old.name, sizeof(km.name));
	if ((rv = spawn_km(&km, bin, config, a->arg[0], dir, why,
	                   sizeof(why))) != 0) {
		qkdn_launch_stop(dir, &km, 1, SIGTERM, DOWN_GRACE_MS);
		rv = cli_fail(a, doc, rv, "%s", why);
		doc = NULL;
		goto out;
	}
	const char *url = net->nodes[node].ak_url;
	snprintf(stopped, sizeof(stopped), "%s stopped", km.name);
	const struct qkdn_net_node *nd = &net->nodes[node];
	if ((rv = await_started(a, dir, &km, &url, net, &nd, 1, &km, 1, stopped,
	                        &doc, NULL)) != 0)
		goto out;
	if (a->json) {
		cJSON_AddItemToObject(doc, "node",
		                      node_json(&net->nodes[node], km.pid));
		rv = cli_emit(a, doc);
		doc = NULL;
	} else {
		printf("started %s (pid %ld)\n", km.name, (long)km.pid);
		node_text(&net->nodes[node]);
	}
out:
	cJSON_Delete(doc);
	free(net);
	return rv;
}

/* ---- net status: each node's KM and gateway in a run directory ---- */

/* One daemon as net status sees it: its pid file, and whether it answers
 * (a KM a status request over Ak, a gateway a TCP connection, as net up
 * waits for them). */
struct seen {
	struct qkdn_proc p;
	bool running, answering;
};

static void
see(const char *dir, const char *prefix, const char *node, int (*probe)(void *),
    void *arg, struct seen *s)
{
	snprintf(s->p.name, sizeof(s->p.name), "%s%s", prefix, node);
	s->running = qkdn_launch_read_pid_file(dir, &s->p) &&
	             s->p.state == QKDN_PROC_RUNNING;
	s->answering = probe(arg) == 0;
}

/* A KM answers a status request (its node's certificate on tls+tcp). */
static int
probe_km(void *arg)
{
	const struct tls_probe *p = arg;
	if (strncmp(p->url, "tls+tcp://", 10) == 0)
		return probe_tls(arg);
	struct qkdn_ak *ak;
	struct qkdn_ak_status st = {0};
	int rv = qkdn_ak_open(&ak, p->url, "qkdn-cli", p->opts.timeout_ms);
	if (rv != 0)
		return rv;
	rv = qkdn_ak_status(ak, &st);
	qkdn_ak_status_free(&st);
	qkdn_ak_close(ak);
	return rv;
}

static cJSON *
seen_json(const struct seen *s, const char *url)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "url", url);
	cJSON_AddNumberToObject(o, "pid", s->running ? s->p.pid : 0);
	cJSON_AddBoolToObject(o, "running", s->running);
	cJSON_AddBoolToObject(o, "answering", s->answering);
	return o;
}

static const char *
seen_text(const struct seen *s, char *buf, size_t len)
{
	snprintf(buf, len, "%s", s->answering ? "answering" : "down");
	if (s->running)
		snprintf(buf + strlen(buf), len - strlen(buf), " (pid %ld)",
		         (long)s->p.pid);
	return buf;
}

int
cli_net_status(const struct cli_cmd *cmd, struct cli_args *a)
{
	struct qkdn_net *net = NULL;
	char dir[PATH_MAX], config[PATH_MAX];
	cJSON *doc = NULL, *nodes = NULL;
	int rv;
	(void)cmd;
	if ((rv = load_abs(a, a->arg[0], false, &net, dir, config)) != 0)
		return rv;
	if (a->json) {
		doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "run_dir", dir);
		nodes = cJSON_AddArrayToObject(doc, "nodes");
	} else {
		printf("%-12s %-24s %s\n", "NODE", "KM", "ETSI014");
	}
	for (size_t i = 0; i < net->n_nodes; i++) {
		const struct qkdn_net_node *nd = &net->nodes[i];
		struct tls_probe tp = {.url = nd->ak_url,
		                       .opts = {.timeout_ms = 500,
		                                .ca = net->ca,
		                                .cert = nd->cert,
		                                .key = nd->key,
		                                .km_name = nd->id}};
		struct seen km = {0}, gw = {0};
		bool has_gw = nd->etsi014_url[0] != '\0';
		see(dir, "km-", nd->id, probe_km, &tp, &km);
		if (has_gw)
			see(dir, "etsi014-", nd->id, probe_gw,
			    (void *)nd->etsi014_url, &gw);
		if (a->json) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "id", nd->id);
			cJSON_AddItemToObject(o, "km",
			                      seen_json(&km, nd->ak_url));
			/* null: the node has no gateway */
			cJSON_AddItemToObject(
			    o, "etsi014",
			    has_gw ? seen_json(&gw, nd->etsi014_url)
			           : cJSON_CreateNull());
			cJSON_AddItemToArray(nodes, o);
			continue;
		}
		char k[64], g[64];
		seen_text(&km, k, sizeof(k));
		if (has_gw)
			printf("%-12s %-24s %s %s\n", nd->id, k,
			       nd->etsi014_url, seen_text(&gw, g, sizeof(g)));
		else
			printf("%-12s %-24s -\n", nd->id, k);
	}
	free(net);
	return a->json ? cli_emit(a, doc) : CLI_OK;
}
