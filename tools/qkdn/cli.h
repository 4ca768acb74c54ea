/* qkdn operator CLI: what the command files share. main.c holds the command
 * and option tables; each command lives in its own file; out.c prints text
 * or JSON and errors; addr.c finds daemons' addresses. Daemons are started
 * and stopped through the launcher (qkdn_launch.h). docs/cli.md is the
 * user's reference. */
#ifndef QKDN_CLI_H
#define QKDN_CLI_H

#include "qkdn_netconf.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

#define CLI_TIMEOUT_MS 5000 /* default deadline of one request */

/* Options, one bit each; a command's table entry lists those it takes. */
enum cli_opt_bit {
	OPT_JSON = 1u << 0,
	OPT_TIMEOUT = 1u << 1,
	OPT_HELP = 1u << 2,
	OPT_RUN_DIR = 1u << 3,
	OPT_KM = 1u << 4,
	OPT_SAE = 1u << 5,
	OPT_TO = 1u << 6,
	OPT_BITS = 1u << 7,
	OPT_COUNT = 1u << 8,
	OPT_ID = 1u << 9,
	OPT_IDS_FROM = 1u << 10,
	OPT_SIM = 1u << 11,
	OPT_CONFIG = 1u << 12,
	OPT_NODE = 1u << 13,
	OPT_KILL = 1u << 14,
	OPT_CA = 1u << 15,
	OPT_CERT = 1u << 16,
	OPT_KEY = 1u << 17,
	OPT_KM_NAME = 1u << 18,
	OPT_CTL = 1u << 19,        /* a controller's Ck address */
	OPT_CONTROLLER = 1u << 20, /* the controller of --config [NODE] */
	OPT_FROM = 1u << 21,
	OPT_BYTES = 1u << 22,
	OPT_DST_SAE = 1u << 23,
	OPT_CTL_NAME = 1u << 24, /* a tls+tcp:// controller's certificate CN */
};
/* The options of the commands that talk to a KM over Ak. */
#define OPT_AK_TLS (OPT_CA | OPT_CERT | OPT_KEY | OPT_KM_NAME)
/* ... and to a controller over a tls+tcp:// Ck. */
#define OPT_CTL_TLS (OPT_CA | OPT_CERT | OPT_KEY | OPT_CTL_NAME)
#define OPT_COMMON  (OPT_JSON | OPT_TIMEOUT | OPT_HELP)

#define CLI_ARGS_MAX 8 /* positional arguments after the command words */

struct cli_list {
	const char **v;
	size_t n;
};

struct cli_args {
	unsigned seen; /* OPT_* bits given */
	bool json, help, kill;
	uint32_t timeout_ms; /* 0: the command's default */
	uint32_t bits, count;
	const char *run_dir, *km, *sae, *to, *ids_from, *sim, *config, *node;
	const char *ca, *cert, *key, *km_name; /* tls+tcp:// Ak */
	/* controllers: --ctl ADDR; --controller [NODE] ("" without NODE);
	 * route and relay reserve: --from NODE (--to NODE), --bytes N,
	 * --dst-sae SAE */
	const char *ctl, *controller, *from, *dst_sae;
	const char *ctl_name; /* tls+tcp:// Ck: its certificate's CN */
	uint32_t bytes;
	struct cli_list ids;
	const char *arg[CLI_ARGS_MAX];
	size_t n_arg;
};

struct cli_cmd {
	const char *group; /* first word */
	const char *name;  /* second word, or NULL */
	int (*run)(const struct cli_cmd *cmd, struct cli_args *a);
	unsigned opts; /* OPT_* bits taken besides OPT_COMMON */
	unsigned min_args, max_args;
	const char *arg_name; /* for "missing ..." */
	int action; /* command-specific constant (link pause/resume) */
	const char *usage;
	const char *summary;
};

/* Commands (one file each). */
int cli_net_up(const struct cli_cmd *cmd, struct cli_args *a);
int cli_net_down(const struct cli_cmd *cmd, struct cli_args *a);
int cli_net_restart(const struct cli_cmd *cmd, struct cli_args *a);
int cli_net_status(const struct cli_cmd *cmd, struct cli_args *a);
int cli_key_get(const struct cli_cmd *cmd, struct cli_args *a);
int cli_status(const struct cli_cmd *cmd, struct cli_args *a);
int cli_link(const struct cli_cmd *cmd, struct cli_args *a);
/* ctl.c: a controller's status (status --ctl / --controller), route,
 * relay reserve */
int cli_ctl_status(const struct cli_cmd *cmd, struct cli_args *a);
int cli_route(const struct cli_cmd *cmd, struct cli_args *a);
int cli_relay_reserve(const struct cli_cmd *cmd, struct cli_args *a);

/* main.c */
int cli_timeout(const struct cli_args *a, int dflt_ms);

/* out.c: errors and output. cli_fail* print "qkdn: NAME: REASON" on stderr
 * and, with --json, emit doc (created if NULL) with an "error" member on
 * stdout; they take doc and return CLI_FAILED. The reason of cli_fail is
 * "<qkdn_strerror(code)>: <formatted detail>"; cli_fail_reason takes a
 * reason that already has that form (qkdn_ak_last_error()). */
int cli_fail(const struct cli_args *a, cJSON *doc, int code, const char *fmt,
             ...) __attribute__((format(printf, 4, 5)));
int cli_fail_reason(const struct cli_args *a, cJSON *doc, int code,
                    const char *reason);
/* A bad network file: "qkdn: FILE:LINE: reason"; returns CLI_USAGE. */
int cli_fail_config(const struct cli_args *a, const char *reason);
/* Usage error: message and the command's usage on stderr; CLI_USAGE. */
int cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Make cJSON wipe what it frees (call first). */
void cli_json_init(void);
/* Print doc as one line on stdout and free it. */
int cli_emit(const struct cli_args *a, cJSON *doc);

/* addr.c: network file and addresses. Return CLI_OK or an exit status
 * (the message printed). */
int cli_load_net(const struct cli_args *a, const char *path,
                 const char *run_dir, struct qkdn_net **out);
/* A KM to talk to over Ak: its address and, when --config gave it, its
 * node ID and the network's CA ("" otherwise). */
struct cli_km {
	char url[QKDN_NET_URL_MAX];
	char node[QKDN_NAME_MAX];
	char ca[QKDN_NET_PATH_MAX];
};
int cli_km_find(const struct cli_cmd *cmd, const struct cli_args *a,
                struct cli_km *km);
/* The Ak handle to km for sae, with the TLS options: --ca, --cert, --key,
 * --km-name, else the environment's QKDN_CA, QKDN_CERT, QKDN_KEY,
 * QKDN_KM_NAME, else (CA and KM name) what --config gave. CLI_OK, or an
 * exit status with the error printed: a bad address or TLS file is a
 * usage error (2). */
struct qkdn_ak;
int cli_ak_open(const struct cli_args *a, const struct cli_km *km,
                const char *sae, struct qkdn_ak **out);
int cli_sim_url(const struct cli_cmd *cmd, const struct cli_args *a, char *url,
                size_t len);
/* If url is an ipc socket that connect(2) refuses, true with the reason
 * (e.g. "Permission denied") in why: the dialers retry in the background
 * and would report only a timeout. */
bool cli_conn_error(const char *url, char *why, size_t len);
/* One request to url over nng with --timeout; CLI_OK with rsp of
 * want_type (clear it), else CLI_FAILED with the error printed. A
 * controller is asked with cli_ctl_call (below), which also speaks TLS. */
int cli_call(const struct cli_args *a, const char *url,
             const struct qkdn_msg *req, struct qkdn_msg *rsp,
             uint32_t want_type);

/* A controller to ask on Ck: its address and, for tls+tcp://, the TLS
 * credentials the CLI presents (loaded) and the name (subject CN) the
 * controller's certificate must carry. nng has no TLS here, so such a
 * controller is asked with libqkdn's SP client instead. */
struct qkdn_sp_tls;
struct cli_ctl {
	char url[QKDN_NET_URL_MAX];
	struct qkdn_sp_tls *tls; /* NULL unless url is tls+tcp:// */
	qkdn_name name;
};
bool cli_is_tls(const char *url);
/* What the network file names for reaching the controller of node (-1:
 * the central one) over TLS: the CA, the certificate and key to present
 * (the central controller's own, or the node's, which its KM and
 * controller share) and the name the controller's certificate carries
 * (ctl_name, or the node's ID). A file not named is "". */
struct cli_ctl_files {
	const char *ca, *cert, *key, *name;
};
void cli_ctl_files(const struct qkdn_net *net, int node,
                   struct cli_ctl_files *f);
/* Load ctl->tls from the PEM files ca, cert and key. CLI_OK, or the exit
 * status 2 with the error printed (a file missing, unreadable or not
 * matching), as for a KM's TLS files. */
int cli_ctl_tls(const struct cli_args *a, struct cli_ctl *ctl, const char *ca,
                const char *cert, const char *key);
void cli_ctl_close(struct cli_ctl *ctl);
/* One request to a controller with --timeout, printing nothing: 0 with
 * rsp (any type but ERROR; clear it), else a qkdn code with the reason
 * in why ("<detail> (URL)"). Over nng, or over TLS for tls+tcp://. */
int cli_ctl_rpc(const struct cli_args *a, const struct cli_ctl *ctl,
                const struct qkdn_msg *req, struct qkdn_msg *rsp, char *why,
                size_t whylen);
/* cli_call to a controller: cli_ctl_rpc with the error printed. */
int cli_ctl_call(const struct cli_args *a, const struct cli_ctl *ctl,
                 const struct qkdn_msg *req, struct qkdn_msg *rsp,
                 uint32_t want_type);

#endif
