/* qkdn-etsi014: the ETSI GS QKD 014 gateway of one node (docs/etsi014.md).
 *
 *   qkdn-etsi014 --config FILE --node ID [--run-dir DIR]
 *
 * Serves the node's etsi014 address with mutual TLS and asks the node's
 * KM over Ak on behalf of the SAE each client certificate names. */
#include "api.h"
#include "https.h"
#include "kmc.h"
#include "qkdn_cmdline.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_netconf.h"
#include "stock.h"

#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SRC          "main"
#define KM_TIMEOUT   5000
#define WORKERS      16 /* requests waiting on the KM at once */
#define DEFAULT_BITS 256

int
main(int argc, char **argv)
{
	struct qkdn_cmdline cl;
	char err[1024];
	int status = qkdn_cmdline_parse(&cl, "qkdn-etsi014", QKDN_NODE_REQUIRED,
	                                argc, argv);
	if (status >= 0)
		return status;
	if (sodium_init() < 0)
		return 1;
	struct qkdn_net *net = calloc(1, sizeof(*net));
	if (net == NULL)
		return 1;
	if (qkdn_net_load(cl.config, cl.run_dir, net, err, sizeof(err)) != 0) {
		fprintf(stderr, "qkdn-etsi014: %s\n", err);
		free(net);
		return 2;
	}
	int self = qkdn_net_node_index(net, cl.node);
	if (self < 0 || net->nodes[self].etsi014_url[0] == '\0') {
		fprintf(stderr, "qkdn-etsi014: %s: node %s %s\n", cl.config,
		        cl.node,
		        self < 0 ? "is not in this network"
		                 : "has no etsi014 address");
		free(net);
		return 2;
	}
	const struct qkdn_net_node *nd = &net->nodes[self];
	snprintf(err, sizeof(err), "etsi014 %s", cl.node);
	qkdn_log_set_ident(err);
	qkdn_stop_on_signals();
	signal(SIGPIPE, SIG_IGN);
	api_json_wipe_hooks();

	struct api api = {.net = net, .node = self, .key_bits = DEFAULT_BITS};
	struct https *h = NULL;
	int rv = kmc_open(&api.kmc, net, self, KM_TIMEOUT);
	if (rv == 0)
		rv = stock_open(&api.stock, &(struct stock_config){
		                                .kmc = api.kmc,
		                                .target = nd->etsi014_stock});
	if (rv == 0) {
		const struct https_config cfg = {.url = nd->etsi014_url,
		                                 .cert = nd->etsi014_cert,
		                                 .key = nd->etsi014_key,
		                                 .ca = nd->etsi014_ca,
		                                 .sae_dns = nd->etsi014_sae_dns,
		                                 .workers = WORKERS,
		                                 .handler = api_handle,
		                                 .arg = &api};
		rv = https_start(&h, &cfg, err, sizeof(err));
		if (rv != 0)
			QLOG_ERR(SRC, "start-up failed: %s", err);
	}
	if (rv == 0) {
		QLOG_INFO(SRC, "serving %s for KM %s, key stock %u a triple",
		          nd->etsi014_url, nd->ak_url, nd->etsi014_stock);
		while (!qkdn_stopping()) {
			struct timespec ts = {0, 100 * 1000000L};
			nanosleep(&ts, NULL);
		}
		QLOG_INFO(SRC, "stopping");
	}
	/* the workers first (they take from the stock), then the stock
	 * (its refill thread uses the KM client) */
	https_stop(h);
	stock_close(api.stock);
	kmc_close(api.kmc);
	free(net);
	return rv == 0 ? 0 : 1;
}
