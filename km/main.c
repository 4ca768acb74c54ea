/* qkdn-km: the key manager daemon of one trusted node. */
#include "km.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_netconf.h"

#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 200

static volatile sig_atomic_t stopping;

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: qkdn-km --config FILE --node ID [--run-dir DIR]\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"node", required_argument, NULL, 'n'},
	    {"run-dir", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *config = NULL, *node = NULL, *run_dir = NULL;
	char err[512];
	int c;
	while ((c = getopt_long(argc, argv, "c:n:r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'n':
			node = optarg;
			break;
		case 'r':
			run_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (config == NULL || node == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "qkdn-km: libsodium failed to initialise\n");
		return 1;
	}
	struct qkdn_net *net = calloc(1, sizeof(*net));
	if (net == NULL)
		return 1;
	if (qkdn_net_load(config, run_dir, net, err, sizeof(err)) != 0) {
		fprintf(stderr, "qkdn-km: %s\n", err);
		free(net);
		return 2;
	}
	int self = qkdn_net_node_index(net, node);
	if (self < 0) {
		fprintf(stderr, "qkdn-km: %s: no node %s in this network\n",
		        config, node);
		free(net);
		return 2;
	}
	char ident[80];
	snprintf(ident, sizeof(ident), "km %s", node);
	qkdn_log_set_ident(ident);

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct km *km;
	int rv = km_start(&km, net, self);
	if (rv != 0) {
		QLOG_ERR("main", "start-up failed: %s", qkdn_strerror(rv));
		free(net);
		return 1;
	}
	/* the daemon's own clock: housekeeping between signals */
	while (!stopping) {
		struct timespec ts = {0, TICK_MS * 1000000L};
		nanosleep(&ts, NULL);
		km_tick(km);
	}
	QLOG_INFO("main", "stopping");
	km_stop(km);
	free(net);
	return 0;
}
