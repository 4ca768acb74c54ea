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
	const struct bench_opt opts[] = {
	    {"seconds", BENCH_OPT_SECONDS, .dst = &o->seconds, .min = 0.3},
	    {"threads", BENCH_OPT_LIST, .dst = o->threads, .n = &o->n_threads,
	     .max = BENCH_TLS_THREAD_LISTS, .hi = BENCH_TLS_THREADS_MAX,
	     .dflt = "2,4"},
	    {"provider", BENCH_OPT_PATH, .dst = o->provider},
	    {"json", BENCH_OPT_FLAG, .dst = &o->json, .value = true},
	    {"keep", BENCH_OPT_FLAG, .dst = &o->keep, .value = true},
	    {"help", BENCH_OPT_HELP, .dst = NULL},
	};
	int rv;
	*o = (struct bench_tls_opts){.seconds = 3};
	if ((rv = bench_parse("tls", usage, opts,
	                      sizeof(opts) / sizeof(opts[0]), argc, argv)) != 0)
		return rv;
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
	cJSON *j = bench_header_end(o, op->seconds);
	cJSON_AddNumberToObject(j, "rounds", BENCH_TLS_ROUNDS);
	cJSON_AddItemToObject(j, "threads",
	                      cJSON_CreateIntArray(op->threads, op->n_threads));
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
	n->pairs = 1;
	if ((rv = bench_begin(&o, op.json, n)) != 0)
		goto out;
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
	return bench_finish(&o, n, rv, op.keep);
}
