/* qkdn-controller: the routing controller of a QKD network.
 *
 *   qkdn-controller --config FILE [--node ID] [--run-dir DIR]
 *
 * With `controller = distributed` in the network file it is node ID's
 * controller (--node required); with `centralized` it is the one central
 * controller (--node refused). The command line is qkdn_cmdline.h's. */
#include "ctl.h"
#include "qkdn_cmdline.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_netconf.h"

#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define PROG    "qkdn-controller"
#define TICK_MS 100 /* ageing granularity */

int
main(int argc, char **argv)
{
	struct qkdn_cmdline cl;
	char err[512];
	int status =
	    qkdn_cmdline_parse(&cl, PROG, QKDN_NODE_OPTIONAL, argc, argv);
	if (status >= 0)
		return status;
	if (sodium_init() < 0) {
		fprintf(stderr, PROG ": libsodium failed to initialise\n");
		return 1;
	}
	struct qkdn_net *net = calloc(1, sizeof(*net));
	if (net == NULL)
		return 1;
	if (qkdn_net_load(cl.config, cl.run_dir, net, err, sizeof(err)) != 0) {
		fprintf(stderr, PROG ": %s\n", err);
		free(net);
		return 2;
	}
	qkdn_log_level_from(net);
	int self = -1;
	bool central = net->controller == QKDN_CTL_CENTRALIZED;
	if (central && cl.node != NULL) {
		fprintf(stderr,
		        PROG ": %s: the network is centralized: its one "
		             "controller takes no --node\n",
		        cl.config);
		free(net);
		return 2;
	}
	if (!central && cl.node == NULL) {
		fprintf(stderr,
		        PROG ": %s: the network is distributed: say which "
		             "node's controller this is with --node ID\n",
		        cl.config);
		free(net);
		return 2;
	}
	if (!central && (self = qkdn_net_node_index(net, cl.node)) < 0) {
		fprintf(stderr, PROG ": %s: no node %s in this network\n",
		        cl.config, cl.node);
		free(net);
		return 2;
	}
	char ident[96];
	snprintf(ident, sizeof(ident), "controller %s",
	         central ? "central" : cl.node);
	qkdn_log_set_ident(ident);

	qkdn_stop_on_signals();
	signal(SIGPIPE, SIG_IGN);

	struct ctl *c;
	int rv = ctl_start(&c, net, self);
	if (rv != 0) {
		QLOG_ERR("main", "start-up failed: %s", qkdn_strerror(rv));
		free(net);
		return 1;
	}
	while (!qkdn_stopping()) {
		struct timespec ts = {0, TICK_MS * 1000000L};
		nanosleep(&ts, NULL);
		if (qkdn_reload_asked())
			qkdn_reload_check(net, cl.config, cl.run_dir);
		ctl_tick(c);
	}
	QLOG_INFO("main", "stopping");
	ctl_stop(c);
	free(net);
	return 0;
}
