/* qkdn-km: the key manager daemon of one trusted node. */
#include "km.h"
#include "qkdn_cmdline.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_netconf.h"

#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 200

int
main(int argc, char **argv)
{
	struct qkdn_cmdline cl;
	char err[512];
	int status =
	    qkdn_cmdline_parse(&cl, "qkdn-km", QKDN_NODE_REQUIRED, argc, argv);
	if (status >= 0)
		return status;
	if (sodium_init() < 0) {
		fprintf(stderr, "qkdn-km: libsodium failed to initialise\n");
		return 1;
	}
	struct qkdn_net *net = calloc(1, sizeof(*net));
	if (net == NULL)
		return 1;
	if (qkdn_net_load(cl.config, cl.run_dir, net, err, sizeof(err)) != 0) {
		fprintf(stderr, "qkdn-km: %s\n", err);
		free(net);
		return 2;
	}
	qkdn_log_level_from(net);
	int self = qkdn_net_node_index(net, cl.node);
	if (self < 0) {
		fprintf(stderr, "qkdn-km: %s: no node %s in this network\n",
		        cl.config, cl.node);
		free(net);
		return 2;
	}
	char ident[80];
	snprintf(ident, sizeof(ident), "km %s", cl.node);
	qkdn_log_set_ident(ident);

	qkdn_stop_on_signals();
	signal(SIGPIPE, SIG_IGN);

	struct km *km;
	int rv = km_start(&km, net, self);
	if (rv != 0) {
		QLOG_ERR("main", "start-up failed: %s", qkdn_strerror(rv));
		free(net);
		return 1;
	}
	/* the daemon's own clock: housekeeping between signals */
	while (!qkdn_stopping()) {
		struct timespec ts = {0, TICK_MS * 1000000L};
		nanosleep(&ts, NULL);
		if (qkdn_reload_asked())
			qkdn_reload_check(net, cl.config, cl.run_dir);
		km_tick(km);
	}
	QLOG_INFO("main", "stopping");
	km_stop(km);
	free(net);
	return 0;
}
