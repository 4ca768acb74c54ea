/* What every subcommand does around its measurements: its command line
 * (one table of options, one parser), the last line of its header, and
 * the end of its run. */
#include "bench.h"

#include "qkdn_err.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECONDS_MAX 600
#define OPTS_MAX    16

/* Parse "1,4,16": at most max items, each in 1..hi, into out; returns the
 * count, or -1 if the text is not such a list. */
static int
parse_int_list(const char *text, int *out, int max, long hi)
{
	char buf[256], *save = NULL;
	int n = 0;
	snprintf(buf, sizeof(buf), "%s", text);
	for (char *t = strtok_r(buf, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		char *end;
		long v = strtol(t, &end, 10);
		if (*end != '\0' || v < 1 || v > hi || n == max)
			return -1;
		out[n++] = (int)v;
	}
	return n > 0 ? n : -1;
}

static int
set_list(const struct bench_opt *o, const char *text)
{
	int n = parse_int_list(text, o->dst, o->max, o->hi);
	*o->n = n > 0 ? n : 0;
	return n > 0 ? 0 : -1;
}

/* WORD's index in o->choices; otherwise says which words it takes and
 * returns -1. */
static int
set_choice(const char *cmd, const struct bench_opt *o, const char *word)
{
	int i;
	for (i = 0; o->choices[i] != NULL; i++)
		if (strcmp(o->choices[i], word) == 0) {
			*(int *)o->dst = i;
			return 0;
		}
	fprintf(stderr, "qkdn-bench %s: --%s takes", cmd, o->name);
	for (int k = 0; k < i; k++)
		fprintf(stderr, "%s%s",
		        k == 0      ? " "
		        : k + 1 < i ? ", "
		                    : " or ",
		        o->choices[k]);
	fprintf(stderr, "\n");
	return -1;
}

/* One option with its value; 0, or 2 after saying why not. */
static int
set_opt(const char *cmd, const struct bench_opt *o, const char *arg)
{
	char *end;
	switch (o->kind) {
	case BENCH_OPT_FLAG:
		*(bool *)o->dst = o->value;
		return 0;
	case BENCH_OPT_SECONDS:
		*(double *)o->dst = strtod(arg, &end);
		if (*end != '\0' || *(double *)o->dst < o->min ||
		    *(double *)o->dst > SECONDS_MAX) {
			fprintf(stderr, "qkdn-bench %s: --%s takes %g..%d\n",
			        cmd, o->name, o->min, SECONDS_MAX);
			return 2;
		}
		return 0;
	case BENCH_OPT_LIST:
		if (set_list(o, arg) != 0) {
			fprintf(stderr,
			        "qkdn-bench %s: --%s takes up to %d numbers "
			        "1..%ld, e.g. %s\n",
			        cmd, o->name, o->max, o->hi, o->dflt);
			return 2;
		}
		return 0;
	case BENCH_OPT_PATH:
		if (realpath(arg, o->dst) == NULL) {
			fprintf(stderr, "qkdn-bench %s: %s: %s\n", cmd, arg,
			        strerror(errno));
			return 2;
		}
		return 0;
	case BENCH_OPT_CHOICE:
		return set_choice(cmd, o, arg) == 0 ? 0 : 2;
	case BENCH_OPT_HELP:
		break;
	}
	return 0;
}

int
bench_parse(const char *cmd, void (*usage)(FILE *f),
            const struct bench_opt *opts, size_t n, int argc, char **argv)
{
	struct option lopts[OPTS_MAX + 1] = {{NULL, 0, NULL, 0}};
	int c, rv;
	if (n > OPTS_MAX)
		return 2;
	for (size_t i = 0; i < n; i++) {
		bool flag = opts[i].kind == BENCH_OPT_FLAG ||
		            opts[i].kind == BENCH_OPT_HELP;
		lopts[i] = (struct option){
		    opts[i].name, flag ? no_argument : required_argument, NULL,
		    256 + (int)i};
		if (opts[i].kind == BENCH_OPT_LIST)
			set_list(&opts[i], opts[i].dflt);
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		const struct bench_opt *o =
		    c >= 256 && (size_t)(c - 256) < n ? &opts[c - 256] : NULL;
		if (c == 'h' || (o != NULL && o->kind == BENCH_OPT_HELP)) {
			usage(stdout);
			return 1;
		}
		if (o == NULL) {
			usage(stderr);
			return 2;
		}
		if ((rv = set_opt(cmd, o, optarg)) != 0)
			return rv;
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return 0;
}

int
bench_begin(struct bench_out *o, bool json, struct bench_net *n)
{
	int rv;
	o->json = json;
	o->root = cJSON_CreateObject();
	if ((rv = bench_net_dir(n)) != 0)
		return rv;
	bench_note("run dir %s", n->dir);
	return 0;
}

cJSON *
bench_header_end(const struct bench_out *o, double seconds)
{
	double load = bench_loadavg();
	bench_say(o,
	          "  load average at the start: %.2f on %ld cores (other "
	          "work on this machine shows in every figure)",
	          load, sysconf(_SC_NPROCESSORS_ONLN));
	bench_blank(o);
	cJSON_AddNumberToObject(o->root, "loadavg_start", load);
	cJSON *j = cJSON_AddObjectToObject(o->root, "config");
	cJSON_AddNumberToObject(j, "seconds", seconds);
	return j;
}

int
bench_finish(struct bench_out *o, struct bench_net *n, int rv, bool keep)
{
	double load = bench_loadavg();
	bench_say(o, "load average at the end: %.2f", load);
	cJSON_AddNumberToObject(o->root, "loadavg_end", load);
	if (rv != 0) {
		bench_note("stopped early: %s; run dir kept: %s",
		           qkdn_strerror(rv), n->dir);
		bench_net_log_tails(n, 10);
	} else if (keep) {
		bench_note("run dir kept: %s", n->dir);
	} else if (n->dir[0] != '\0') {
		bench_rm_tree(n->dir);
	}
	if (o->json && rv == 0) {
		char *text = cJSON_Print(o->root);
		if (text != NULL)
			printf("%s\n", text);
		free(text);
	}
	cJSON_Delete(o->root);
	o->root = NULL;
	bench_net_free(n);
	free(n);
	return rv == 0 ? 0 : 1;
}
