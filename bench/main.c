/* qkdn-bench: benchmarks of a running qkdn network. Each subcommand sets
 * up what it measures, prints figures (never pass/fail) and cleans up.
 *
 *   qkdn-bench ak [--seconds S] [--clients 1,4,16] [--no-million] [--json]
 *   qkdn-bench tls [--seconds S] [--threads 2,4] [--json]
 *   qkdn-bench relay [--seconds S] [--mode distributed|centralized|both]
 *                    [--json]
 *   qkdn-bench etsi014 [--seconds S] [--stock N]
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

/* bench/etsi014.c (declared here: bench.h is the shared helpers') */
int bench_etsi014(int argc, char **argv);

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *what;
} commands[] = {
    {"ak", bench_ak,
     "key supply over Ak (Q.4160 I.1): floor, latency, keys/s, memory"},
    {"tls", bench_tls,
     "TLS 1.3 handshakes/s through the provider: X25519, qkd, x25519_qkd"},
    {"relay", bench_relay,
     "key relay over 1-4 hops: keys/s, latency a hop, efficiency, routing"},
    {"etsi014", bench_etsi014,
     "ETSI 014 enc_keys+dec_keys pairs/s against an HTTPS floor and Ak"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f)
{
	fprintf(f, "usage: qkdn-bench COMMAND [options]   (COMMAND --help for "
	           "its options)\n\ncommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-6s %s\n", commands[i].name, commands[i].what);
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "qkdn-bench: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
