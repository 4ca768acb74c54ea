/* qkdn-bench tls, by concern: tls.c is the command (options, the network,
 * the report's head), tls_common.c holds the TLS pieces both benchmarks
 * use (errors, the certificate, SSL contexts, the provider's openssl.cnf
 * files), tls_rate.c measures (a) handshakes/s and tls_mem.c (b) what the
 * provider adds to a process's memory. */
#ifndef BENCH_TLS_H
#define BENCH_TLS_H

#include "bench.h"

#include <openssl/ssl.h>

#define BENCH_TLS_SERVER_SAE    "alice" /* on node A */
#define BENCH_TLS_CLIENT_SAE    "bob"   /* on node B */
#define BENCH_TLS_BATCH         16      /* the server's key cache */
#define BENCH_TLS_KM_TIMEOUT_MS 3000    /* the provider's timeout_ms */
#define BENCH_TLS_ROUNDS        3 /* slices per measurement, interleaved */
#define BENCH_TLS_THREAD_LISTS  8
#define BENCH_TLS_THREADS_MAX   64

/* aims, printed next to the figures */
#define BENCH_TLS_AIM_RATIO   0.9 /* x25519_qkd / X25519, with threads */
#define BENCH_TLS_AIM_MEM_MIB 2.0

struct bench_tls_opts {
	double seconds;
	int threads[BENCH_TLS_THREAD_LISTS];
	int n_threads;
	bool json, keep;
	char provider[PATH_MAX];
};

/* The certificate, made once, loaded into each server context. */
struct bench_tls_cert {
	unsigned char *x509, *key; /* DER */
	int x509_len, key_len;
};

/* What both benchmarks measure with. */
struct bench_tls {
	struct bench_tls_opts *op;
	struct bench_net *net;
	struct bench_tls_cert cert;
	char server_cnf[2][PATH_MAX + 32]; /* batch 16, batch 1 */
	char client_cnf[PATH_MAX + 32];
	char mem_cnf[2][PATH_MAX + 32]; /* server, client: qkdn not active */
};

/* tls_common.c */

/* "what: " and the first (oldest) error of this thread's queue, which is
 * then cleared. */
void bench_tls_errors(char *why, size_t whylen, const char *what);
int bench_tls_cert_make(struct bench_tls_cert *c)
    __attribute__((warn_unused_result));
void bench_tls_cert_free(struct bench_tls_cert *c);
/* TLS 1.3 only, one group offered or accepted, no session tickets (every
 * handshake a full one), the client verifying nothing but the handshake
 * signature; the server with the certificate c. */
SSL_CTX *bench_tls_ctx(OSSL_LIB_CTX *lib, bool server, const char *group,
                       const struct bench_tls_cert *c);
/* The openssl.cnf files of t (server, server with batch 1, client, and
 * the memory children's, which load qkdn but do not activate it). */
int bench_tls_write_cnfs(struct bench_tls *t)
    __attribute__((warn_unused_result));

/* tls_rate.c: (a) handshakes/s, reported as it goes */
int bench_tls_rate(const struct bench_out *o, const struct bench_tls *t)
    __attribute__((warn_unused_result));

/* tls_mem.c: (b) measured in forked children before this process loads
 * the module (so that they map it anew), reported later */
struct bench_tls_mem;
int bench_tls_mem_measure(const struct bench_tls *t, struct bench_tls_mem **out)
    __attribute__((warn_unused_result));
void bench_tls_mem_say(const struct bench_out *o,
                       const struct bench_tls_mem *m);
void bench_tls_mem_free(struct bench_tls_mem *m);

#endif
