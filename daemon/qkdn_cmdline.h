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

/* From now on SIGTERM and SIGINT only make qkdn_stopping() true, and
 * SIGHUP only makes the next qkdn_reload_asked() true (instead of ending
 * the process). */
void qkdn_stop_on_signals(void);
bool qkdn_stopping(void);
bool qkdn_reload_asked(void);

struct qkdn_net;
/* The network file's [qkdn] log_level, at start (QKDN_LOG_LEVEL in the
 * environment wins there). */
void qkdn_log_level_from(const struct qkdn_net *net);
/* What a daemon does on SIGHUP: re-read and check the network file (with
 * the same --run-dir) and log, in one line, that it is invalid (and the
 * daemon keeps the one it runs with), unchanged, or which sections
 * changed. A changed [qkdn] log_level is applied at once (nothing depends
 * on it); any other change takes a restart, and the line says so
 * (docs/deploy.md, Reload). */
void qkdn_reload_check(const struct qkdn_net *running, const char *config,
                       const char *run_dir);

#endif
