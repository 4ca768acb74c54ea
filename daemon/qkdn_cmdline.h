/* The daemons' command line and stop signals, one way for qkdn-km and
 * qkdn-qkdsim:
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

/* Parse argv (getopt_long: getopt reports unknown options itself). With
 * with_node, --node ID is taken and required; without, it is an unknown
 * option. The usage line names prog. Returns -1 when the daemon goes on,
 * else its exit status: 0 after --help (usage on stdout), 2 after a usage
 * error (usage on stderr). */
int qkdn_cmdline_parse(struct qkdn_cmdline *c, const char *prog, bool with_node,
                       int argc, char **argv)
    __attribute__((warn_unused_result));

/* From now on SIGTERM and SIGINT only make qkdn_stopping() true. */
void qkdn_stop_on_signals(void);
bool qkdn_stopping(void);

#endif
