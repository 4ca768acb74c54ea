/* qkdn-bench tls: TLS 1.3 handshakes through the qkdn OpenSSL provider
 * (build/lib/qkdn.so) on a two-node network of its own (net.c). The
 * server's SAE alice sits on node A, the client's SAE bob on node B; both
 * ends run in this process, each in its own library context loaded from
 * its own generated openssl.cnf, and talk over a BIO pair. It prints
 * (a) handshakes/s (tls_rate.c) and (b) what loading the provider adds to
 * a process's memory (tls_mem.c). This file is the command: options, the
 * network, the report's head. docs/bench.md explains each figure. */
#include "tls.h"

#include "qkdn_err.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: qkdn-bench tls [--seconds S] [--threads N,N,...] "
	        "[--provider PATH] [--json] [--keep]\n"
	        "  --seconds S      per measurement (default 3)\n"
	        "  --threads LIST   concurrent runs besides 1 thread "
	        "(default 2,4; each 1..%d)\n"
	        "  --provider PATH  the provider module (default "
	        "../lib/qkdn.so next to this program)\n"
	        "  --json           one JSON document on stdout instead of "
	        "text\n"
	        "  --keep           keep the run directory (network file, "
	        "openssl.cnf files, logs)\n",
	        BENCH_TLS_THREADS_MAX);
}

static int
parse_threads(struct bench_tls_opts *o, const char *text)
{
	int n = bench_parse_int_list(text, o->threads, BENCH_TLS_THREAD_LISTS,
	                             BENCH_TLS_THREADS_MAX);
	o->n_threads = n > 0 ? n : 0;
	return n > 0 ? 0 : -1;
}

/* ../lib/qkdn.so next to this executable, as build/ lays it out. */
static int
default_provider(char *out, size_t len)
{
	char self[PATH_MAX], lib[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;
	if (n <= 0)
		return -1;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		return -1;
	*slash = '\0';
	snprintf(lib, sizeof(lib), "%s/../lib/qkdn.so", self);
	if (len < PATH_MAX || realpath(lib, out) == NULL)
		return -1;
	return 0;
}

static int
parse(struct bench_tls_opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"seconds", required_argument, NULL, 's'},
	    {"threads", required_argument, NULL, 't'},
	    {"provider", required_argument, NULL, 'p'},
	    {"json", no_argument, NULL, 'j'},
	    {"keep", no_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	int c;
	*o = (struct bench_tls_opts){.seconds = 3};
	parse_threads(o, "2,4");
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 's':
			o->seconds = strtod(optarg, &end);
			if (*end != '\0' || o->seconds < 0.3 ||
			    o->seconds > 600) {
				fprintf(stderr, "qkdn-bench tls: --seconds "
				                "takes 0.3..600\n");
				return 2;
			}
			break;
		case 't':
			if (parse_threads(o, optarg) != 0) {
				fprintf(stderr,
				        "qkdn-bench tls: --threads takes up to "
				        "%d numbers 1..%d, e.g. 2,4\n",
				        BENCH_TLS_THREAD_LISTS,
				        BENCH_TLS_THREADS_MAX);
				return 2;
			}
			break;
		case 'p':
			if (realpath(optarg, o->provider) == NULL) {
				fprintf(stderr, "qkdn-bench tls: %s: %s\n",
				        optarg, strerror(errno));
				return 2;
			}
			break;
		case 'j':
			o->json = true;
			break;
		case 'k':
			o->keep = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (o->provider[0] == '\0' &&
	    default_provider(o->provider, sizeof(o->provider)) != 0) {
		fprintf(stderr, "qkdn-bench tls: no provider next to this "
		                "program (make -C build qkdn-provider) and no "
		                "--provider\n");
		return 2;
	}
	return 0;
}

static void
say_header(const struct bench_out *o, const struct bench_tls_opts *op,
           const struct bench_net *n)
{
	char list[128] = "1";
	size_t at = 1;
	double load = bench_loadavg();
	for (int i = 0; i < op->n_threads; i++)
		if (op->threads[i] != 1)
			at += (size_t)snprintf(list + at, sizeof(list) - at,
			                       ",%d", op->threads[i]);
	bench_say(o,
	          "qkdn-bench tls: %.1f s per measurement, threads %s, "
	          "OpenSSL %s",
	          op->seconds, list, OpenSSL_version(OPENSSL_VERSION_STRING));
	bench_say(o, "  provider %s", op->provider);
	bench_say(o,
	          "network: nodes A and B, link A_B at %llu Mbit/s (paused "
	          "while measuring); server SAE %s",
	          BENCH_NET_RATE_BPS / 1000000, BENCH_TLS_SERVER_SAE);
	bench_say(o,
	          "  on A, client SAE %s on B, Ak ipc://, timeout_ms %d; run "
	          "dir %s",
	          BENCH_TLS_CLIENT_SAE, BENCH_TLS_KM_TIMEOUT_MS, n->dir);
	bench_say(o,
	          "  load average at the start: %.2f on %ld cores (other "
	          "work on this machine shows in every figure)",
	          load, sysconf(_SC_NPROCESSORS_ONLN));
	bench_blank(o);
	cJSON_AddNumberToObject(o->root, "loadavg_start", load);
	cJSON *j = cJSON_AddObjectToObject(o->root, "config");
	cJSON_AddNumberToObject(j, "seconds", op->seconds);
	cJSON_AddNumberToObject(j, "rounds", BENCH_TLS_ROUNDS);
	cJSON *c = cJSON_AddArrayToObject(j, "threads");
	for (int i = 0; i < op->n_threads; i++)
		cJSON_AddItemToArray(c, cJSON_CreateNumber(op->threads[i]));
	cJSON_AddNumberToObject(j, "batch", BENCH_TLS_BATCH);
	cJSON_AddStringToObject(j, "provider", op->provider);
	cJSON_AddStringToObject(j, "openssl",
	                        OpenSSL_version(OPENSSL_VERSION_STRING));
	cJSON_AddStringToObject(j, "run_dir", n->dir);
	cJSON *a = cJSON_AddObjectToObject(o->root, "aims");
	cJSON_AddNumberToObject(a, "x25519_qkd_x_x25519", BENCH_TLS_AIM_RATIO);
	cJSON_AddNumberToObject(a, "provider_memory_mib",
	                        BENCH_TLS_AIM_MEM_MIB);
}

/* The bench's own configurations only: no system openssl.cnf in the
 * default context, no environment overrides of the provider. */
static void
hermetic(void)
{
	static const char *const env[] = {"QKDN_KM", "QKDN_SAE",
	                                  "QKDN_TIMEOUT_MS", "QKDN_BATCH"};
	for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
		unsetenv(env[i]);
	OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
}

int
bench_tls(int argc, char **argv)
{
	struct bench_tls_opts op;
	struct bench_out o = {0};
	struct bench_tls_mem *mem = NULL;
	struct bench_net *n = calloc(1, sizeof(*n));
	struct bench_tls t = {.op = &op, .net = n};
	int rv = parse(&op, argc, argv);
	if (rv != 0 || n == NULL) {
		free(n);
		return rv == 1 ? 0 : 2;
	}
	hermetic();
	o.json = op.json;
	o.root = cJSON_CreateObject();
	n->pairs = 1;
	if ((rv = bench_net_dir(n)) != 0)
		goto out;
	bench_note("run dir %s", n->dir);
	say_header(&o, &op, n);
	if ((rv = bench_tls_cert_make(&t.cert)) != 0) {
		bench_note("cannot make the P-256 certificate");
		goto out;
	}
	bench_note("starting qkdn-qkdsim and two qkdn-km");
	/* a full pool, so that no top-up falls between the lines; then the
	 * link paused, as taking in key costs the KMs CPU */
	if ((rv = bench_net_start(n, "qkdn-bench tls")) != 0 ||
	    (rv = bench_net_wait_key(n, BENCH_NET_TOPUP_BYTES)) != 0 ||
	    (rv = bench_net_link_run(n, false)) != 0 ||
	    (rv = bench_tls_write_cnfs(&t)) != 0)
		goto out;
	bench_sleep_ms(200); /* blocks in flight */
	/* (b) first, before (a) loads the module into this process: the
	 * children map it anew; printed after (a) */
	if ((rv = bench_tls_mem_measure(&t, &mem)) != 0 ||
	    (rv = bench_tls_rate(&o, &t)) != 0)
		goto out;
	bench_tls_mem_say(&o, mem);
out:
	bench_tls_mem_free(mem);
	bench_tls_cert_free(&t.cert);
	bench_net_stop(n);
	double load = bench_loadavg();
	bench_say(&o, "load average at the end: %.2f", load);
	cJSON_AddNumberToObject(o.root, "loadavg_end", load);
	if (rv != 0) {
		bench_note("stopped early: %s; run dir kept: %s",
		           qkdn_strerror(rv), n->dir);
		bench_net_log_tails(n, 10);
	} else if (op.keep) {
		bench_note("run dir kept: %s", n->dir);
	} else if (n->dir[0] != '\0') {
		bench_rm_tree(n->dir);
	}
	if (o.json && rv == 0) {
		char *text = cJSON_Print(o.root);
		if (text != NULL)
			printf("%s\n", text);
		free(text);
	}
	cJSON_Delete(o.root);
	bench_net_free(n);
	free(n);
	return rv == 0 ? 0 : 1;
}
