/* The daemons' command line and stop signals, one way for qkdn-km,
 * qkdn-controller and qkdn-qkdsim:
 *
 *   PROG --config FILE [--node ID] [--run-dir DIR] [--help]
 *
 * Signal handlers only set a flag; the daemon's own loop reads it. */
#ifndef QKDN_CMDLINE_H
#define QKDN_CMDLINE_H

#include <stdbool.h>

struct qkdn_cmdline {
	const char *config, *node, *run_dir; /* NULL if not given */
};

/* What a daemon does with --node ID. */
enum qkdn_cmdline_node {
	QKDN_NODE_NONE = 0,     /* an unknown option (qkdn-qkdsim) */
	QKDN_NODE_REQUIRED = 1, /* qkdn-km */
	QKDN_NODE_OPTIONAL = 2, /* qkdn-controller: the network's mode says */
};

/* Parse argv (getopt_long: getopt reports unknown options itself), --node
 * as node says. The usage line names prog. Returns -1 when the daemon goes
 * on, else its exit status: 0 after --help (usage on stdout), 2 after a
 * usage error (usage on stderr). */
int qkdn_cmdline_parse(struct qkdn_cmdline *c, const char *prog,
                       enum qkdn_cmdline_node node, int argc, char **argv)
    __attribute__((warn_unused_result));

/* From now on SIGTERM and SIGINT only make qkdn_stopping() true. */
void qkdn_stop_on_signals(void);
bool qkdn_stopping(void);

#endif
