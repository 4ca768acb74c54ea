/* The daemons' command line and stop signals (qkdn_cmdline.h). */
#include "qkdn_cmdline.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>

static volatile sig_atomic_t stopping;

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
