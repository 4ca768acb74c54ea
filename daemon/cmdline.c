/* The daemons' command line and stop signals (qkdn_cmdline.h). */
#include "qkdn_cmdline.h"

#include "qkdn_log.h"
#include "qkdn_netconf.h"

#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stopping;
static void on_hup(int sig);

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

void
qkdn_stop_on_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	struct sigaction hup = {.sa_handler = on_hup};
	sigemptyset(&hup.sa_mask);
	sigaction(SIGHUP, &hup, NULL);
}

bool
qkdn_stopping(void)
{
	return stopping != 0;
}

static void
usage(FILE *f, const char *prog, enum qkdn_cmdline_node node)
{
	fprintf(f, "usage: %s --config FILE%s [--run-dir DIR]\n", prog,
	        node == QKDN_NODE_REQUIRED   ? " --node ID"
	        : node == QKDN_NODE_OPTIONAL ? " [--node ID]"
	                                     : "");
}

int
qkdn_cmdline_parse(struct qkdn_cmdline *c, const char *prog,
                   enum qkdn_cmdline_node node, int argc, char **argv)
{
	struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"run-dir", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {"node", required_argument, NULL, 'n'}, /* unless NODE_NONE */
	    {NULL, 0, NULL, 0}};
	bool with_node = node != QKDN_NODE_NONE;
	int opt;
	if (!with_node)
		opts[3] = opts[4];
	*c = (struct qkdn_cmdline){0};
	while ((opt = getopt_long(argc, argv, with_node ? "c:n:r:h" : "c:r:h",
	                          opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			c->config = optarg;
			break;
		case 'n':
			c->node = optarg;
			break;
		case 'r':
			c->run_dir = optarg;
			break;
		case 'h':
			usage(stdout, prog, node);
			return 0;
		default:
			usage(stderr, prog, node);
			return 2;
		}
	}
	if (c->config == NULL ||
	    (node == QKDN_NODE_REQUIRED && c->node == NULL) || optind != argc) {
		usage(stderr, prog, node);
		return 2;
	}
	return -1;
}

/* SIGHUP: one reload request, taken by qkdn_reload_asked(). */
static volatile sig_atomic_t reload_asked;

static void
on_hup(int sig)
{
	(void)sig;
	reload_asked = 1;
}

void
qkdn_log_level_from(const struct qkdn_net *net)
{
	if (net->log_level >= 0 && getenv("QKDN_LOG_LEVEL") == NULL)
		qkdn_log_set_level(net->log_level);
}

bool
qkdn_reload_asked(void)
{
	if (reload_asked == 0)
		return false;
	reload_asked = 0;
	return true;
}

/* Append name to the list of what changed (at most what fits). */
static void
changed(char *list, size_t len, int *n, const char *name)
{
	size_t used = strlen(list);
	if (used + 1 < len)
		snprintf(list + used, len - used, "%s%s", *n > 0 ? ", " : "",
		         name);
	(*n)++;
}

void
qkdn_reload_check(const struct qkdn_net *running, const char *config,
                  const char *run_dir)
{
	char err[512], what[400] = "", sect[80];
	int n = 0;
	struct qkdn_net *next = calloc(1, sizeof(*next));
	if (next == NULL) {
		QLOG_ERR("reload", "out of memory: configuration not re-read");
		return;
	}
	if (qkdn_net_load(config, run_dir, next, err, sizeof(err)) != 0) {
		QLOG_ERR("reload",
		         "%s; still running with the file as it was "
		         "at start",
		         err);
		free(next);
		return;
	}
	/* the log level applies at once: nothing depends on it */
	static int applied = -2; /* the file's level last applied */
	bool level_now = false;
	if (applied == -2)
		applied = running->log_level;
	if (next->log_level != applied) {
		static const char *const names[] = {"error", "warn", "info",
		                                    "debug"};
		int lvl =
		    next->log_level >= 0 ? next->log_level : QKDN_LOG_INFO;
		qkdn_log_set_level(lvl);
		QLOG_WARN("reload", "%s: log_level %s applied", config,
		          names[lvl]);
		applied = next->log_level;
		level_now = true;
	}
	if (strcmp(running->run_dir, next->run_dir) != 0 ||
	    strcmp(running->sim_url, next->sim_url) != 0 ||
	    strcmp(running->ca, next->ca) != 0 ||
	    strcmp(running->central_ck_url, next->central_ck_url) != 0 ||
	    running->controller != next->controller ||
	    running->n_nodes != next->n_nodes ||
	    running->n_links != next->n_links ||
	    running->n_saes != next->n_saes)
		changed(what, sizeof(what), &n, "[qkdn]");
	for (size_t i = 0; i < running->n_nodes && i < next->n_nodes; i++)
		if (memcmp(&running->nodes[i], &next->nodes[i],
		           sizeof(next->nodes[i])) != 0) {
			snprintf(sect, sizeof(sect), "[%s]",
			         running->nodes[i].id);
			changed(what, sizeof(what), &n, sect);
		}
	for (size_t i = 0; i < running->n_links && i < next->n_links; i++)
		if (memcmp(&running->links[i], &next->links[i],
		           sizeof(next->links[i])) != 0) {
			snprintf(sect, sizeof(sect), "[%s]",
			         running->links[i].id);
			changed(what, sizeof(what), &n, sect);
		}
	for (size_t i = 0; i < running->n_saes && i < next->n_saes; i++)
		if (memcmp(&running->saes[i], &next->saes[i],
		           sizeof(next->saes[i])) != 0) {
			snprintf(sect, sizeof(sect), "[%s]",
			         running->saes[i].id);
			changed(what, sizeof(what), &n, sect);
		}
	/* nothing in the file is applied live: a KM's listeners, pools and
	 * store, and a controller's peers, are fixed at start */
	if (n == 0 && !level_now)
		QLOG_INFO("reload", "%s is valid and unchanged", config);
	else if (n > 0)
		QLOG_WARN("reload",
		          "%s is valid; changed: %s; none of it applies until "
		          "this daemon restarts",
		          config, what);
	free(next);
}
