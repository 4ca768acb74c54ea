/* qkdn: the operator CLI. This file holds the command table, the option
 * table and the parser; the commands live in net.c, key.c, status.c and
 * link.c. */
#include "cli.h"

#include "qkdn_ak.h"
#include "qkdn_err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmd_help(const struct cli_cmd *cmd, struct cli_args *a);

#define KM_OPTS  (OPT_KM | OPT_CONFIG | OPT_RUN_DIR | OPT_NODE | OPT_AK_TLS)
#define SIM_OPTS (OPT_SIM | OPT_CONFIG | OPT_RUN_DIR)

static const struct cli_cmd commands[] = {
    {.group = "net",
     .name = "up",
     .run = cli_net_up,
     .opts = OPT_RUN_DIR,
     .min_args = 1,
     .max_args = 1,
     .arg_name = "FILE",
     .usage = "net up FILE [--run-dir DIR]",
     .summary = "start the QKD emulator and one KM per node of a network "
                "file"},
    {.group = "net",
     .name = "down",
     .run = cli_net_down,
     .opts = OPT_RUN_DIR,
     .max_args = 1,
     .usage = "net down [FILE] [--run-dir DIR]",
     .summary = "stop the daemons started in a run directory"},
    {.group = "net",
     .name = "restart",
     .run = cli_net_restart,
     .opts = OPT_CONFIG | OPT_RUN_DIR | OPT_KILL,
     .min_args = 1,
     .max_args = 1,
     .arg_name = "NODE",
     .usage = "net restart NODE --config FILE [--run-dir DIR] [--kill]",
     .summary = "stop the KM of a node (SIGKILL with --kill, a crash) and "
                "start it again from FILE"},
    {.group = "net",
     .name = "status",
     .run = cli_net_status,
     .opts = OPT_RUN_DIR,
     .min_args = 1,
     .max_args = 1,
     .arg_name = "FILE",
     .usage = "net status FILE [--run-dir DIR]",
     .summary = "show whether each node's KM and ETSI 014 gateway run "
                "and answer"},
    {.group = "key",
     .name = "get",
     .run = cli_key_get,
     .opts = KM_OPTS | OPT_SAE | OPT_TO | OPT_BITS | OPT_COUNT | OPT_ID |
             OPT_IDS_FROM,
     .usage = "key get (--km ADDR | --config FILE [--run-dir DIR] [--node "
              "ID])\n"
              "            --sae SAE (--to SAE [--bits N] [--count N]\n"
              "                       | --id UUID [--id UUID ...] | "
              "--ids-from FILE)\n"
              "            [--ca FILE --cert FILE --key FILE] [--km-name ID]",
     .summary = "get new keys shared with another SAE, or the keys with "
                "given IDs"},
    {.group = "status",
     .run = cli_status,
     .opts = KM_OPTS | OPT_CTL | OPT_CONTROLLER | OPT_CTL_NAME,
     .usage = "status (--km ADDR | --config FILE [--run-dir DIR] --node ID)\n"
              "            [--ca FILE --cert FILE --key FILE] [--km-name ID]\n"
              "       qkdn status (--ctl ADDR | --config FILE [--run-dir "
              "DIR] --controller [NODE])\n"
              "            [--ca FILE --cert FILE --key FILE] "
              "[--ctl-name NAME]",
     .summary = "show a KM's counters, relay counters and its links' key "
                "pools, or a controller's view of the links"},
    {.group = "route",
     .run = cli_route,
     .opts = OPT_CTL | OPT_CONFIG | OPT_RUN_DIR | OPT_FROM | OPT_TO |
             OPT_BYTES | OPT_CTL_TLS,
     .usage = "route --from NODE --to NODE [--bytes N]\n"
              "            (--ctl ADDR | --config FILE [--run-dir DIR])\n"
              "            [--ca FILE --cert FILE --key FILE] "
              "[--ctl-name NAME]",
     .summary = "show the routes a controller would use now between two "
                "nodes"},
    {.group = "relay",
     .name = "reserve",
     .run = cli_relay_reserve,
     .opts = OPT_CTL | OPT_CONFIG | OPT_RUN_DIR | OPT_FROM | OPT_TO | OPT_SAE |
             OPT_DST_SAE | OPT_COUNT | OPT_BITS | OPT_CTL_TLS,
     .usage = "relay reserve (--config FILE [--run-dir DIR] | --ctl ADDR)\n"
              "            --from NODE --to NODE --sae SAE --dst-sae SAE "
              "[--count N] [--bits N]\n"
              "            [--ca FILE --cert FILE --key FILE] "
              "[--ctl-name NAME]",
     .summary = "reserve keys and relay them through the central "
                "controller (I.4b); print their IDs"},
    {.group = "link",
     .name = "pause",
     .run = cli_link,
     .opts = SIM_OPTS,
     .min_args = 1,
     .max_args = 1,
     .arg_name = "LINK",
     .action = QKDN_LINK_PAUSE,
     .usage = "link pause LINK (--sim ADDR | --config FILE [--run-dir DIR])",
     .summary = "stop the emulator delivering key on a link"},
    {.group = "link",
     .name = "resume",
     .run = cli_link,
     .opts = SIM_OPTS,
     .min_args = 1,
     .max_args = 1,
     .arg_name = "LINK",
     .action = QKDN_LINK_RESUME,
     .usage = "link resume LINK (--sim ADDR | --config FILE [--run-dir "
              "DIR])",
     .summary = "let the emulator deliver key on a link again"},
    {.group = "help",
     .run = cmd_help,
     .max_args = 2,
     .usage = "help [COMMAND]",
     .summary = "show this text, or one command's"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* ARG_OPT: a string that may be left out (--controller [NODE]): its
 * value is the next word unless that is an option, or "" */
enum opt_kind { ARG_FLAG, ARG_STR, ARG_UINT, ARG_LIST, ARG_OPT };

struct cli_opt {
	const char *name; /* without the leading "--" */
	unsigned bit;
	enum opt_kind kind;
	size_t off;              /* member of struct cli_args */
	uint32_t min, max, step; /* ARG_UINT bounds */
};

#define ARGS_AT(m) offsetof(struct cli_args, m)

static const struct cli_opt options[] = {
    {"json", OPT_JSON, ARG_FLAG, ARGS_AT(json), 0, 0, 0},
    {"help", OPT_HELP, ARG_FLAG, ARGS_AT(help), 0, 0, 0},
    {"timeout", OPT_TIMEOUT, ARG_UINT, ARGS_AT(timeout_ms), 1, 86400000, 1},
    {"run-dir", OPT_RUN_DIR, ARG_STR, ARGS_AT(run_dir), 0, 0, 0},
    {"km", OPT_KM, ARG_STR, ARGS_AT(km), 0, 0, 0},
    {"sae", OPT_SAE, ARG_STR, ARGS_AT(sae), 0, 0, 0},
    {"to", OPT_TO, ARG_STR, ARGS_AT(to), 0, 0, 0},
    {"bits", OPT_BITS, ARG_UINT, ARGS_AT(bits), 8, QKDN_AK_KEY_BYTES_MAX * 8,
     8},
    {"count", OPT_COUNT, ARG_UINT, ARGS_AT(count), 1, UINT32_MAX, 1},
    {"id", OPT_ID, ARG_LIST, ARGS_AT(ids), 0, 0, 0},
    {"ids-from", OPT_IDS_FROM, ARG_STR, ARGS_AT(ids_from), 0, 0, 0},
    {"sim", OPT_SIM, ARG_STR, ARGS_AT(sim), 0, 0, 0},
    {"config", OPT_CONFIG, ARG_STR, ARGS_AT(config), 0, 0, 0},
    {"node", OPT_NODE, ARG_STR, ARGS_AT(node), 0, 0, 0},
    {"kill", OPT_KILL, ARG_FLAG, ARGS_AT(kill), 0, 0, 0},
    {"ca", OPT_CA, ARG_STR, ARGS_AT(ca), 0, 0, 0},
    {"cert", OPT_CERT, ARG_STR, ARGS_AT(cert), 0, 0, 0},
    {"key", OPT_KEY, ARG_STR, ARGS_AT(key), 0, 0, 0},
    {"km-name", OPT_KM_NAME, ARG_STR, ARGS_AT(km_name), 0, 0, 0},
    {"ctl", OPT_CTL, ARG_STR, ARGS_AT(ctl), 0, 0, 0},
    {"controller", OPT_CONTROLLER, ARG_OPT, ARGS_AT(controller), 0, 0, 0},
    {"from", OPT_FROM, ARG_STR, ARGS_AT(from), 0, 0, 0},
    {"bytes", OPT_BYTES, ARG_UINT, ARGS_AT(bytes), 0, UINT32_MAX, 1},
    {"dst-sae", OPT_DST_SAE, ARG_STR, ARGS_AT(dst_sae), 0, 0, 0},
    {"ctl-name", OPT_CTL_NAME, ARG_STR, ARGS_AT(ctl_name), 0, 0, 0},
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

int
cli_timeout(const struct cli_args *a, int dflt_ms)
{
	return a->timeout_ms != 0 ? (int)a->timeout_ms : dflt_ms;
}

static void
print_usage(FILE *f)
{
	fprintf(f, "usage: qkdn COMMAND [ARGS] [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  qkdn %s\n        %s\n", commands[i].usage,
		        commands[i].summary);
	fprintf(
	    f,
	    "\noptions of every command:\n"
	    "  --json        print one JSON document on stdout\n"
	    "  --timeout MS  deadline of each request (default 5000; for "
	    "net up and\n"
	    "                net restart the start-up deadline, default "
	    "15000; for\n"
	    "                net down the grace before SIGKILL, default "
	    "10000)\n"
	    "  -h, --help    show usage\n"
	    "\nADDR is ipc:///path, tcp://host:port or tls+tcp://host:port.\n"
	    "For tls+tcp:// (key get, status): --ca FILE (the network's "
	    "CA),\n"
	    "--cert FILE and --key FILE (the SAE's certificate and key), "
	    "--km-name ID\n"
	    "(the KM's node ID, which its certificate must name); else "
	    "QKDN_CA,\n"
	    "QKDN_CERT, QKDN_KEY, QKDN_KM_NAME.\n"
	    "For a tls+tcp:// controller (status --ctl/--controller, route, "
	    "relay reserve):\n"
	    "--ca FILE, --cert FILE and --key FILE (the CLI's certificate "
	    "and key),\n"
	    "--ctl-name NAME (the name its certificate must carry, default "
	    "controller);\n"
	    "with --config the network file gives them (the central "
	    "controller's ctl_cert,\n"
	    "ctl_key and ctl_name, or the node's cert, key and ID).\n"
	    "exit status: 0 success, 1 the operation failed, 2 usage "
	    "error.\n"
	    "See docs/cli.md for the output formats.\n");
}

static void
print_cmd_usage(FILE *f, const struct cli_cmd *cmd)
{
	fprintf(f,
	        "usage: qkdn %s\n  %s\n"
	        "options of every command: --json, --timeout MS, --help\n",
	        cmd->usage, cmd->summary);
}

int
cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	fputs("qkdn: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cmd != NULL)
		print_cmd_usage(stderr, cmd);
	else
		fputs("run 'qkdn help' for usage\n", stderr);
	return CLI_USAGE;
}

static const struct cli_opt *
find_option(const char *name, size_t len)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (strlen(options[i].name) == len &&
		    strncmp(options[i].name, name, len) == 0)
			return &options[i];
	return NULL;
}

static int
parse_uint(const struct cli_opt *o, const char *val, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(val, &end, 10);
	if (val[0] < '0' || val[0] > '9' || *end != '\0' || errno != 0 ||
	    v < o->min || v > o->max || v % o->step != 0) {
		if (o->step > 1)
			return cli_usage(NULL,
			                 "--%s takes a multiple of %u from %u "
			                 "to %u, not '%s'",
			                 o->name, o->step, o->min, o->max, val);
		return cli_usage(NULL,
		                 "--%s takes a number from %u to %u, not '%s'",
		                 o->name, o->min, o->max, val);
	}
	*out = (uint32_t)v;
	return 0;
}

static int
set_option(struct cli_args *a, const struct cli_opt *o, const char *val)
{
	char *field = (char *)a + o->off;
	if (o->kind != ARG_LIST && (a->seen & o->bit))
		return cli_usage(NULL, "--%s given twice", o->name);
	a->seen |= o->bit;
	switch (o->kind) {
	case ARG_FLAG:
		*(bool *)field = true;
		return 0;
	case ARG_STR:
	case ARG_OPT:
		*(const char **)field = val;
		return 0;
	case ARG_UINT:
		return parse_uint(o, val, (uint32_t *)field);
	case ARG_LIST: {
		struct cli_list *l = (struct cli_list *)field;
		const char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
		if (v == NULL)
			return cli_usage(NULL, "out of memory");
		v[l->n++] = val;
		l->v = v;
		return 0;
	}
	}
	return 0;
}

/* Options may come anywhere; words that are not options are collected in
 * words[] (command words first, then the command's arguments). */
static int
parse(int argc, char **argv, struct cli_args *a, const char **words,
      size_t *n_words, size_t max_words)
{
	bool options_done = false;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (options_done || s[0] != '-' || s[1] == '\0') {
			if (*n_words == max_words)
				return cli_usage(NULL, "too many arguments");
			words[(*n_words)++] = s;
			continue;
		}
		if (strcmp(s, "--") == 0) {
			options_done = true;
			continue;
		}
		if (strcmp(s, "-h") == 0)
			s = "--help";
		if (s[1] != '-')
			return cli_usage(NULL, "unknown option '%s'", s);
		const char *name = s + 2, *eq = strchr(name, '=');
		size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
		const struct cli_opt *o = find_option(name, len);
		if (o == NULL)
			return cli_usage(NULL, "unknown option '%.*s'",
			                 (int)len + 2, s);
		const char *val = NULL;
		if (o->kind == ARG_FLAG) {
			if (eq != NULL)
				return cli_usage(NULL, "--%s takes no value",
				                 o->name);
		} else if (eq != NULL) {
			val = eq + 1;
		} else if (o->kind == ARG_OPT) {
			bool word = i + 1 < argc && argv[i + 1][0] != '-';
			val = word ? argv[++i] : "";
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			return cli_usage(NULL, "--%s needs a value", o->name);
		}
		int rv = set_option(a, o, val);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* The command named by the first words; *used is how many words it took.
 * NULL if there is none; *group_known then tells whether words[0] names a
 * group of commands (whose second word was missing or wrong). */
static const struct cli_cmd *
find_command(const char **words, size_t n, size_t *used, bool *group_known)
{
	*group_known = false;
	for (size_t i = 0; i < N_COMMANDS; i++) {
		const struct cli_cmd *c = &commands[i];
		if (strcmp(c->group, words[0]) != 0)
			continue;
		*group_known = true;
		if (c->name == NULL) {
			*used = 1;
			return c;
		}
		if (n > 1 && strcmp(c->name, words[1]) == 0) {
			*used = 2;
			return c;
		}
	}
	return NULL;
}

static void
print_group_usage(FILE *f, const char *group)
{
	fprintf(f, "usage:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].group, group) == 0)
			fprintf(f, "  qkdn %s\n        %s\n", commands[i].usage,
			        commands[i].summary);
}

/* Help for the words given (none: everything); 0 if they name something. */
static int
help_for(FILE *f, const char **words, size_t n)
{
	size_t used = 0;
	bool group;
	const struct cli_cmd *c;
	if (n == 0) {
		print_usage(f);
		return 0;
	}
	c = find_command(words, n, &used, &group);
	if (c != NULL && used == n) {
		print_cmd_usage(f, c);
		return 0;
	}
	if (c == NULL && group && n == 1) {
		print_group_usage(f, words[0]);
		return 0;
	}
	return -1;
}

static int
cmd_help(const struct cli_cmd *cmd, struct cli_args *a)
{
	if (help_for(stdout, a->arg, a->n_arg) == 0)
		return CLI_OK;
	return cli_usage(cmd, "no command '%s%s%s'", a->arg[0],
	                 a->n_arg > 1 ? " " : "",
	                 a->n_arg > 1 ? a->arg[1] : "");
}

static int
run(int argc, char **argv, struct cli_args *a)
{
	const char *words[CLI_ARGS_MAX + 2];
	size_t n_words = 0, used = 0;
	bool group;
	int rv = parse(argc, argv, a, words, &n_words, CLI_ARGS_MAX + 2);
	if (rv != 0)
		return rv;
	if (n_words == 0) {
		if (a->help) {
			print_usage(stdout);
			return CLI_OK;
		}
		fputs("qkdn: no command given\n", stderr);
		print_usage(stderr);
		return CLI_USAGE;
	}
	const struct cli_cmd *cmd = find_command(words, n_words, &used, &group);
	if (cmd == NULL && group) {
		if (a->help) {
			print_group_usage(stdout, words[0]);
			return CLI_OK;
		}
		if (n_words > 1)
			fprintf(stderr, "qkdn: %s: unknown subcommand '%s'\n",
			        words[0], words[1]);
		else
			fprintf(stderr, "qkdn: %s needs a subcommand\n",
			        words[0]);
		print_group_usage(stderr, words[0]);
		return CLI_USAGE;
	}
	if (cmd == NULL) {
		fprintf(stderr,
		        "qkdn: unknown command '%s'; run 'qkdn help' for "
		        "usage\n",
		        words[0]);
		return CLI_USAGE;
	}
	if (a->help) {
		print_cmd_usage(stdout, cmd);
		return CLI_OK;
	}
	for (size_t i = 0; i < N_OPTIONS; i++)
		if ((a->seen & options[i].bit) &&
		    !((cmd->opts | OPT_COMMON) & options[i].bit))
			return cli_usage(cmd, "this command takes no --%s",
			                 options[i].name);
	a->n_arg = n_words - used;
	for (size_t i = 0; i < a->n_arg; i++)
		a->arg[i] = words[used + i];
	if (a->n_arg < cmd->min_args)
		return cli_usage(cmd, "missing %s", cmd->arg_name);
	if (a->n_arg > cmd->max_args)
		return cli_usage(cmd, "unexpected argument '%s'",
		                 a->arg[cmd->max_args]);
	return cmd->run(cmd, a);
}

int
main(int argc, char **argv)
{
	struct cli_args a = {0};
	cli_json_init();
	int rv = run(argc, argv, &a);
	free(a.ids.v);
	/* Output lost (closed pipe, full disk) is a failure too. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "qkdn: %s: %s: cannot write the output\n",
		        qkdn_errname(QKDN_E_IO), qkdn_strerror(QKDN_E_IO));
		if (rv == CLI_OK)
			rv = CLI_FAILED;
	}
	return rv;
}
