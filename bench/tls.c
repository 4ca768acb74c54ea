/* qkdn-bench tls: TLS 1.3 handshakes through the qkdn OpenSSL provider
 * (build/lib/qkdn.so) on a two-node network of its own (net.c). The
 * server's SAE alice sits on node A, the client's SAE bob on node B; both
 * ends run in this process, each in its own library context loaded from
 * its own generated openssl.cnf, and talk over a BIO pair. It prints:
 *   (a) handshakes/s for X25519, qkd and x25519_qkd with one P-256
 *       certificate, on 1 thread and on --threads threads, each group as
 *       a multiple of X25519 in the same run, the keys each KM supplied
 *       per handshake and the CPU each process spent per handshake;
 *       qkd with batch = 1 on 1 thread shows what the server's key cache
 *       buys;
 *   (b) what loading the provider adds to a process's memory, measured
 *       in forked children before and after OSSL_PROVIDER_load and after
 *       the first handshake.
 * docs/bench.md explains each figure. */
#include "bench.h"

#include "qkdn_err.h"

#include <elf.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define SERVER_SAE     "alice"    /* on node A */
#define CLIENT_SAE     "bob"      /* on node B */
#define BATCH          16         /* the server's key cache */
#define KM_TIMEOUT_MS  3000       /* the provider's timeout_ms */
#define KEY_NEED_BYTES (4u << 20) /* before each measurement */
#define ROUNDS         3          /* slices per measurement, interleaved */
#define WARMUP         2          /* handshakes per thread and slice */
#define MAX_FLIGHTS    8          /* client/server steps per handshake */
#define THREAD_LISTS   8
#define THREADS_MAX    64
#define MEM_WAIT_MS    20000
#define SOCK_TIMEOUT_S 10
#define EXPORT_LABEL   "EXPORTER-qkdn-bench"

/* aims, printed next to the figures */
#define AIM_RATIO   0.9 /* x25519_qkd / X25519, with threads */
#define AIM_MEM_MIB 2.0

enum { G_X25519, G_QKD, G_HYB, G_QKD_B1, N_GROUPS };

static const struct {
	const char *group; /* TLS group name */
	const char *label; /* in the report */
	bool batch1;       /* the server with batch = 1 */
	bool qkd;          /* spends QKD key */
} groups[N_GROUPS] = {
    {"X25519", "X25519", false, false},
    {"qkd", "qkd", false, true},
    {"x25519_qkd", "x25519_qkd", false, true},
    {"qkd", "qkd, batch 1", true, true},
};

struct opts {
	double seconds;
	int threads[THREAD_LISTS];
	int n_threads;
	bool json, keep;
	char provider[PATH_MAX];
};

/* The certificate, made once, loaded into each server context. */
struct cert {
	unsigned char *x509, *key; /* DER */
	int x509_len, key_len;
};

struct tls {
	struct opts *op;
	struct bench_net *net;
	struct cert cert;
	char server_cnf[2][PATH_MAX + 32]; /* batch 16, batch 1 */
	char client_cnf[PATH_MAX + 32];
	char mem_cnf[2][PATH_MAX + 32]; /* server, client: qkdn not active */
	char deps[256]; /* libraries the module needs besides libc, libcrypto */
	OSSL_LIB_CTX *server_lib[2], *client_lib;
	SSL_CTX *sctx[N_GROUPS], *cctx[N_GROUPS];
};

/* ---- OpenSSL helpers ---- */

/* Collects ERR_print_errors_cb's lines into a 512-byte buffer. */
static int
err_line(const char *str, size_t len, void *u)
{
	char *buf = u;
	size_t have = strlen(buf);
	if (have + len + 1 < 512) {
		memcpy(buf + have, str, len);
		buf[have + len] = '\0';
	}
	return 1;
}

/* "what: " and the first (oldest) error of this thread's queue, which is
 * then cleared. */
static void
take_errors(char *why, size_t whylen, const char *what)
{
	char errs[512] = "";
	ERR_print_errors_cb(err_line, errs);
	errs[strcspn(errs, "\n")] = '\0';
	snprintf(why, whylen, "%s: %s", what,
	         errs[0] != '\0' ? errs : "no error on the queue");
}

static int
make_cert(struct cert *c)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	unsigned char *p;
	int ok = 0;
	if (pk == NULL || x == NULL)
		goto out;
	name = X509_get_subject_name(x);
	if (!X509_set_version(x, X509_VERSION_3) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 86400) ||
	    !X509_set_pubkey(x, pk) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                                (const unsigned char *)"qkdn-bench", -1,
	                                -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_sign(x, pk, EVP_sha256()))
		goto out;
	c->x509_len = i2d_X509(x, NULL);
	c->key_len = i2d_PrivateKey(pk, NULL);
	if (c->x509_len <= 0 || c->key_len <= 0 ||
	    (c->x509 = malloc((size_t)c->x509_len)) == NULL ||
	    (c->key = malloc((size_t)c->key_len)) == NULL)
		goto out;
	p = c->x509;
	i2d_X509(x, &p);
	p = c->key;
	i2d_PrivateKey(pk, &p);
	ok = 1;
out:
	X509_free(x);
	EVP_PKEY_free(pk);
	return ok ? 0 : QKDN_E_INTERNAL;
}

static void
cert_free(struct cert *c)
{
	if (c->key != NULL)
		OPENSSL_cleanse(c->key, (size_t)c->key_len);
	free(c->key);
	free(c->x509);
}

/* The certificate and its key, in the context's library context. */
static int
use_cert(SSL_CTX *ctx, OSSL_LIB_CTX *lib, const struct cert *c)
{
	const unsigned char *p = c->x509;
	X509 *x = X509_new_ex(lib, NULL);
	EVP_PKEY *pk;
	int ok = x != NULL && d2i_X509(&x, &p, c->x509_len) != NULL;
	p = c->key;
	pk = d2i_AutoPrivateKey_ex(NULL, &p, c->key_len, lib, NULL);
	ok = ok && pk != NULL && SSL_CTX_use_certificate(ctx, x) == 1 &&
	     SSL_CTX_use_PrivateKey(ctx, pk) == 1;
	X509_free(x);
	EVP_PKEY_free(pk);
	return ok;
}

/* TLS 1.3 only, one group offered or accepted, no session tickets (every
 * handshake a full one), the client verifying nothing but the handshake
 * signature. */
static SSL_CTX *
new_ctx(OSSL_LIB_CTX *lib, bool server, const char *group, const struct cert *c)
{
	SSL_CTX *ctx = SSL_CTX_new_ex(
	    lib, NULL, server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL ||
	    !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    SSL_CTX_set1_groups_list(ctx, group) != 1 ||
	    (server &&
	     (!use_cert(ctx, lib, c) || !SSL_CTX_set_num_tickets(ctx, 0)))) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (!server)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
}

/* One step of a handshake: 1 on progress or done, 0 on failure. */
static int
step(SSL *ssl, bool *done)
{
	int rv;
	if (*done)
		return 1;
	rv = SSL_do_handshake(ssl);
	if (rv == 1) {
		*done = true;
		return 1;
	}
	rv = SSL_get_error(ssl, rv);
	return rv == SSL_ERROR_WANT_READ || rv == SSL_ERROR_WANT_WRITE;
}

/* One full handshake over a BIO pair, checked: the group is the one
 * asked and both ends export the same keying material. */
static int
handshake(SSL_CTX *sctx, SSL_CTX *cctx, const char *group, char *why,
          size_t whylen)
{
	SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
	BIO *bc = NULL, *bs = NULL;
	bool cdone = false, sdone = false;
	unsigned char ec[32], es[32];
	int rv = QKDN_E_INTERNAL;

	ERR_clear_error();
	if (c == NULL || s == NULL || !BIO_new_bio_pair(&bc, 0, &bs, 0)) {
		take_errors(why, whylen, "SSL_new");
		goto out;
	}
	SSL_set_bio(c, bc, bc);
	SSL_set_bio(s, bs, bs);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (int i = 0; i < MAX_FLIGHTS && !(cdone && sdone); i++) {
		if (!step(c, &cdone)) {
			take_errors(why, whylen, "client");
			goto out;
		}
		if (!step(s, &sdone)) {
			take_errors(why, whylen, "server");
			goto out;
		}
	}
	if (!(cdone && sdone)) {
		snprintf(why, whylen, "handshake did not complete");
		goto out;
	}
	const char *name = SSL_group_to_name(c, SSL_get_negotiated_group(c));
	if (name == NULL || strcasecmp(name, group) != 0) {
		snprintf(why, whylen, "negotiated %s, asked %s",
		         name != NULL ? name : "?", group);
		goto out;
	}
	if (SSL_export_keying_material(c, ec, sizeof(ec), EXPORT_LABEL,
	                               strlen(EXPORT_LABEL), NULL, 0, 0) != 1 ||
	    SSL_export_keying_material(s, es, sizeof(es), EXPORT_LABEL,
	                               strlen(EXPORT_LABEL), NULL, 0, 0) != 1 ||
	    CRYPTO_memcmp(ec, es, sizeof(ec)) != 0) {
		snprintf(why, whylen, "the ends exported different keys");
		goto out;
	}
	rv = 0;
out:
	SSL_free(c);
	SSL_free(s);
	OPENSSL_cleanse(ec, sizeof(ec));
	OPENSSL_cleanse(es, sizeof(es));
	return rv;
}

/* ---- provider configurations ---- */

static int
write_cnf(const char *path, const struct opts *op, const char *km,
          const char *sae, int batch, bool activate)
{
	FILE *f = fopen(path, "w");
	if (f == NULL) {
		bench_note("cannot write %s: %s", path, strerror(errno));
		return QKDN_E_IO;
	}
	fprintf(f,
	        "# written by qkdn-bench tls\n"
	        "openssl_conf = openssl_init\n[openssl_init]\n"
	        "providers = provider_sect\n[provider_sect]\n"
	        "default = default_sect\nqkdn = qkdn_sect\n"
	        "[default_sect]\nactivate = 1\n[qkdn_sect]\nmodule = %s\n"
	        "%skm = %s\nsae = %s\ntimeout_ms = %d\nbatch = %d\n",
	        op->provider, activate ? "activate = 1\n" : "", km, sae,
	        KM_TIMEOUT_MS, batch);
	return fclose(f) == 0 ? 0 : QKDN_E_IO;
}

static int
write_cnfs(struct tls *t)
{
	const char *dir = t->net->dir, *km_a = bench_net_ak_url(t->net, 0),
	           *km_b = bench_net_ak_url(t->net, 1);
	int rv;
	snprintf(t->server_cnf[0], sizeof(t->server_cnf[0]), "%s/server.cnf",
	         dir);
	snprintf(t->server_cnf[1], sizeof(t->server_cnf[1]),
	         "%s/server-batch1.cnf", dir);
	snprintf(t->client_cnf, sizeof(t->client_cnf), "%s/client.cnf", dir);
	snprintf(t->mem_cnf[0], sizeof(t->mem_cnf[0]), "%s/mem-server.cnf",
	         dir);
	snprintf(t->mem_cnf[1], sizeof(t->mem_cnf[1]), "%s/mem-client.cnf",
	         dir);
	if ((rv = write_cnf(t->server_cnf[0], t->op, km_a, SERVER_SAE, BATCH,
	                    true)) != 0 ||
	    (rv = write_cnf(t->server_cnf[1], t->op, km_a, SERVER_SAE, 1,
	                    true)) != 0 ||
	    (rv = write_cnf(t->client_cnf, t->op, km_b, CLIENT_SAE, BATCH,
	                    true)) != 0 ||
	    (rv = write_cnf(t->mem_cnf[0], t->op, km_a, SERVER_SAE, BATCH,
	                    false)) != 0 ||
	    (rv = write_cnf(t->mem_cnf[1], t->op, km_b, CLIENT_SAE, BATCH,
	                    false)) != 0)
		return rv;
	return 0;
}

static OSSL_LIB_CTX *
load_lib(const char *cnf)
{
	OSSL_LIB_CTX *l = OSSL_LIB_CTX_new();
	if (l == NULL || !OSSL_LIB_CTX_load_config(l, cnf) ||
	    !OSSL_PROVIDER_available(l, "qkdn")) {
		char why[600];
		take_errors(why, sizeof(why), cnf);
		bench_note("cannot load the provider: %s", why);
		OSSL_LIB_CTX_free(l);
		return NULL;
	}
	return l;
}

/* Library contexts and one SSL_CTX per group and end; X25519 uses the
 * same contexts as the QKD groups. */
static int
load_contexts(struct tls *t)
{
	if ((t->server_lib[0] = load_lib(t->server_cnf[0])) == NULL ||
	    (t->server_lib[1] = load_lib(t->server_cnf[1])) == NULL ||
	    (t->client_lib = load_lib(t->client_cnf)) == NULL)
		return QKDN_E_CONFIG;
	for (int g = 0; g < N_GROUPS; g++) {
		OSSL_LIB_CTX *sl = t->server_lib[groups[g].batch1 ? 1 : 0];
		t->sctx[g] = new_ctx(sl, true, groups[g].group, &t->cert);
		t->cctx[g] =
		    new_ctx(t->client_lib, false, groups[g].group, NULL);
		if (t->sctx[g] == NULL || t->cctx[g] == NULL) {
			char why[600];
			take_errors(why, sizeof(why), groups[g].group);
			bench_note("cannot make the TLS contexts: %s", why);
			return QKDN_E_CONFIG;
		}
	}
	return 0;
}

static void
free_contexts(struct tls *t)
{
	for (int g = 0; g < N_GROUPS; g++) {
		SSL_CTX_free(t->sctx[g]);
		SSL_CTX_free(t->cctx[g]);
	}
	for (int i = 0; i < 2; i++)
		OSSL_LIB_CTX_free(t->server_lib[i]);
	OSSL_LIB_CTX_free(t->client_lib);
}

/* ---- (a) handshakes/s ---- */

/* One measurement: a group on a number of threads, summed over its
 * slices. */
struct result {
	double elapsed_s;
	uint64_t handshakes, errors;
	uint64_t supplied[2]; /* keys supplied by KM A and KM B */
	double cpu_s[BENCH_N_PROCS];
	double machine_s; /* busy time of all CPUs, every process */
	struct bench_samples lat;
	char first_error[256];
};

/* What the X25519 line of the same thread count measured. */
struct base {
	double per_s;  /* handshakes/s */
	double cpu_us; /* CPU of every process of ours per handshake */
};

struct slice {
	struct tls *t;
	int g;
	struct bench_cpu cpu;
	uint64_t supplied[2][2]; /* [KM][before, after] */
	double busy[2];          /* machine_busy_s() before, after */
	int status_rv;
};

/* Busy time of the whole machine since boot, seconds: every CPU's user,
 * nice, system, irq and softirq time in /proc/stat. */
static double
machine_busy_s(void)
{
	unsigned long long user, nice, sys, idle, iowait, irq, softirq;
	FILE *f = fopen("/proc/stat", "r");
	int n = f != NULL
	            ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &user,
	                     &nice, &sys, &idle, &iowait, &irq, &softirq)
	            : 0;
	if (f != NULL)
		fclose(f);
	if (n != 7)
		return 0;
	return (double)(user + nice + sys + irq + softirq) /
	       (double)sysconf(_SC_CLK_TCK);
}

static int
hs_op(struct bench_worker *w, char *why, size_t whylen)
{
	struct slice *s = w->arg;
	int rv = handshake(s->t->sctx[s->g], s->t->cctx[s->g],
	                   groups[s->g].group, why, whylen);
	return rv != 0 ? rv : 1;
}

static void
hs_mark(void *arg, int phase)
{
	struct slice *s = arg;
	for (int km = 0; km < 2; km++) {
		int rv =
		    bench_net_supplied(s->t->net, km, &s->supplied[km][phase]);
		if (rv != 0)
			s->status_rv = rv;
	}
	bench_cpu_mark(&s->cpu, phase);
	s->busy[phase] = machine_busy_s();
}

static int
run_slice(struct tls *t, int g, int threads, double seconds, struct result *r)
{
	struct slice s = {.t = t, .g = g, .cpu.net = t->net};
	struct bench_load l = {.threads = threads,
	                       .seconds = seconds,
	                       .warmup_ops = WARMUP,
	                       .latency = true,
	                       .arg = &s,
	                       .op = hs_op,
	                       .mark = hs_mark};
	int rv;
	if ((rv = bench_net_ensure_key(t->net, KEY_NEED_BYTES)) != 0)
		return rv;
	if ((rv = bench_load_run(&l)) != 0 || (rv = s.status_rv) != 0) {
		bench_note("%s, %d threads: %s", groups[g].label, threads,
		           l.first_error[0] != '\0' ? l.first_error
		                                    : qkdn_strerror(rv));
		bench_load_free(&l);
		return rv;
	}
	r->elapsed_s += l.elapsed_s;
	r->handshakes += l.ops;
	r->errors += l.errors;
	for (int km = 0; km < 2; km++)
		r->supplied[km] += s.supplied[km][1] - s.supplied[km][0];
	for (int p = 0; p < BENCH_N_PROCS; p++)
		r->cpu_s[p] += s.cpu.t1[p] - s.cpu.t0[p];
	r->machine_s += s.busy[1] - s.busy[0];
	if (r->first_error[0] == '\0' && l.first_error[0] != '\0')
		snprintf(r->first_error, sizeof(r->first_error), "%s",
		         l.first_error);
	rv = bench_samples_merge(&r->lat, &l.lat);
	bench_load_free(&l);
	return rv;
}

static const char *const proc_keys[BENCH_N_PROCS] = {"bench", "km_a", "km_b",
                                                     "qkdsim"};

static double
cpu_us_per_hs(const struct result *r)
{
	double total = 0;
	for (int p = 0; p < BENCH_N_PROCS; p++)
		total += r->cpu_s[p];
	return r->handshakes > 0 ? total / (double)r->handshakes * 1e6 : 0;
}

static double
per_s(const struct result *r)
{
	return r->elapsed_s > 0 ? (double)r->handshakes / r->elapsed_s : 0;
}

static void
say_result(const struct bench_out *o, int g, int threads, struct result *r,
           const struct base *base, cJSON *arr)
{
	double hps = per_s(r), cpu = cpu_us_per_hs(r),
	       n = r->handshakes > 0 ? (double)r->handshakes : 1, total = 0,
	       us[BENCH_N_PROCS];
	double p50 = bench_samples_pct_us(&r->lat, 50) / 1000,
	       p99 = bench_samples_pct_us(&r->lat, 99) / 1000;
	double x_rate = base->per_s > 0 ? hps / base->per_s : 0,
	       x_cpu = cpu > 0 ? base->cpu_us / cpu : 0;
	char a[32], ka[16] = "-", kb[16] = "-";
	for (int p = 0; p < BENCH_N_PROCS; p++) {
		us[p] = r->cpu_s[p] / n * 1e6;
		total += r->cpu_s[p];
	}
	double all_pct = r->elapsed_s > 0 ? total / r->elapsed_s * 100 : 0,
	       other_pct = r->elapsed_s > 0
	                       ? (r->machine_s - total) / r->elapsed_s * 100
	                       : 0;
	if (other_pct < 0)
		other_pct = 0; /* clock-tick rounding */
	if (groups[g].qkd) {
		snprintf(ka, sizeof(ka), "%.3f", (double)r->supplied[0] / n);
		snprintf(kb, sizeof(kb), "%.3f", (double)r->supplied[1] / n);
	}
	bench_say(o,
	          "    %-13s %3d  %7s  %5.2fx  %5.2fx  %5.2f  %6s %6s  %5.0f "
	          "%5.0f %5.0f %4.0f  %4.0f%% %4.0f%%",
	          groups[g].label, threads, bench_group(a, hps), x_rate, x_cpu,
	          p50, ka, kb, us[BENCH_P_SELF], us[BENCH_P_KM_A],
	          us[BENCH_P_KM_B], us[BENCH_P_SIM], all_pct, other_pct);
	if (r->errors > 0)
		bench_say(o, "        %llu errors; first: %s",
		          (unsigned long long)r->errors, r->first_error);

	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "group", groups[g].group);
	cJSON_AddNumberToObject(j, "server_batch",
	                        groups[g].batch1 ? 1 : BATCH);
	cJSON_AddNumberToObject(j, "threads", threads);
	cJSON_AddNumberToObject(j, "handshakes", (double)r->handshakes);
	cJSON_AddNumberToObject(j, "seconds", r->elapsed_s);
	cJSON_AddNumberToObject(j, "handshakes_per_s", hps);
	cJSON_AddNumberToObject(j, "x_x25519", x_rate);
	cJSON_AddNumberToObject(j, "x_x25519_by_cpu", x_cpu);
	cJSON_AddNumberToObject(j, "p50_ms", p50);
	cJSON_AddNumberToObject(j, "p99_ms", p99);
	cJSON_AddNumberToObject(j, "errors", (double)r->errors);
	if (r->errors > 0)
		cJSON_AddStringToObject(j, "first_error", r->first_error);
	cJSON_AddNumberToObject(j, "keys_per_handshake_km_a",
	                        (double)r->supplied[0] / n);
	cJSON_AddNumberToObject(j, "keys_per_handshake_km_b",
	                        (double)r->supplied[1] / n);
	cJSON *c = cJSON_AddObjectToObject(j, "cpu_us_per_handshake");
	cJSON *pc = cJSON_AddObjectToObject(j, "cpu_pct");
	for (int p = 0; p < BENCH_N_PROCS; p++) {
		cJSON_AddNumberToObject(c, proc_keys[p], us[p]);
		cJSON_AddNumberToObject(
		    pc, proc_keys[p],
		    r->elapsed_s > 0 ? r->cpu_s[p] / r->elapsed_s * 100 : 0);
	}
	cJSON_AddNumberToObject(c, "all", cpu);
	cJSON_AddNumberToObject(pc, "all", all_pct);
	cJSON_AddNumberToObject(pc, "other_work", other_pct);
	cJSON_AddItemToArray(arr, j);
}

/* The groups on one number of threads, in ROUNDS interleaved slices (each
 * round starting with the next group) so that a change in the machine's
 * load falls on every group alike. ratio: x25519_qkd / X25519 by rate
 * and by CPU per handshake. */
static int
run_threads(const struct bench_out *o, struct tls *t, int threads, cJSON *arr,
            double ratio[2])
{
	struct result r[N_GROUPS];
	struct base base;
	int n = threads == 1 ? N_GROUPS : G_QKD_B1; /* batch 1: 1 thread */
	int rv = 0;
	memset(r, 0, sizeof(r));
	for (int round = 0; round < ROUNDS && rv == 0; round++)
		for (int i = 0; i < n && rv == 0; i++)
			rv = run_slice(t, (i + round) % n, threads,
			               t->op->seconds / ROUNDS,
			               &r[(i + round) % n]);
	if (rv == 0) {
		base.per_s = per_s(&r[G_X25519]);
		base.cpu_us = cpu_us_per_hs(&r[G_X25519]);
		for (int g = 0; g < n; g++)
			say_result(o, g, threads, &r[g], &base, arr);
		ratio[0] = base.per_s > 0 ? per_s(&r[G_HYB]) / base.per_s : 0;
		ratio[1] = cpu_us_per_hs(&r[G_HYB]) > 0
		               ? base.cpu_us / cpu_us_per_hs(&r[G_HYB])
		               : 0;
	}
	for (int g = 0; g < N_GROUPS; g++)
		bench_samples_free(&r[g].lat);
	return rv;
}

static int
run_handshakes(const struct bench_out *o, struct tls *t)
{
	double ratio[THREAD_LISTS + 1][2];
	int lists[THREAD_LISTS + 1], n = 0, rv = 0;
	char line[256];
	size_t at = 0;
	lists[n++] = 1;
	for (int i = 0; i < t->op->n_threads; i++)
		if (t->op->threads[i] != 1)
			lists[n++] = t->op->threads[i];
	bench_say(o, "(a) TLS 1.3 handshakes/s, client and server in this "
	             "process over a BIO pair, P-256 certificate,");
	bench_say(o,
	          "    %.1f s per line in %d interleaved slices; the "
	          "server caches %d keys per KM request (batch)",
	          t->op->seconds, ROUNDS, BATCH);
	bench_say(o,
	          "%33sx X25519 by      p50   keys per hs   CPU us per "
	          "handshake     CPU %%",
	          "");
	bench_say(o,
	          "    group         thr     hs/s    rate     CPU     ms    KM "
	          "A   KM B  bench  KM A  KM B  sim   ours other");
	cJSON *arr = cJSON_AddArrayToObject(o->root, "handshakes");
	for (int i = 0; i < n && rv == 0; i++)
		rv = run_threads(o, t, lists[i], arr, ratio[i]);
	if (rv != 0)
		return rv;
	cJSON *jr = cJSON_AddObjectToObject(o->root, "x25519_qkd_x_x25519");
	for (int i = 0; i < n; i++) {
		char key[32];
		if (lists[i] > 1)
			at += (size_t)snprintf(
			    line + at, sizeof(line) - at,
			    "%s%d threads %.2fx (by CPU %.2fx)",
			    at > 0 ? ", " : "", lists[i], ratio[i][0],
			    ratio[i][1]);
		snprintf(key, sizeof(key), "threads_%d", lists[i]);
		cJSON *k = cJSON_AddObjectToObject(jr, key);
		cJSON_AddNumberToObject(k, "rate", ratio[i][0]);
		cJSON_AddNumberToObject(k, "by_cpu", ratio[i][1]);
	}
	bench_say(o, "    x25519_qkd / X25519: %s", at > 0 ? line : "-");
	bench_say(o, "      aim >= %.2fx with threads", AIM_RATIO);
	bench_say(o, "    x X25519 by rate: handshakes/s over X25519's on as "
	             "many threads; by CPU: X25519's");
	bench_say(o, "    CPU per handshake (all our processes) over this "
	             "line's, what the rate would be if");
	bench_say(o, "    CPU were the only limit and every line got the "
	             "same. keys per hs: keys each KM");
	bench_say(o, "    supplied per handshake (status counters); A counts "
	             "the server's batch when it is");
	bench_say(o, "    fetched, so the cache saves KM requests (KM A's "
	             "CPU), not key. CPU %%: ours = bench,");
	bench_say(o, "    KMs and qkdsim, other = the rest of the machine "
	             "(/proc/stat), in %% of one core");
	bench_say(o, "    (%ld cores: %ld%% is the whole machine)",
	          sysconf(_SC_NPROCESSORS_ONLN),
	          100 * sysconf(_SC_NPROCESSORS_ONLN));
	bench_blank(o);
	return 0;
}

/* ---- (b) memory of loading the provider ---- */

enum { M_BEFORE, M_LOADED, M_HANDSHAKE, N_MARKS };

struct mem_side {
	long rss_kib[N_MARKS], dirty_kib[N_MARKS];
	long deps_kib; /* Rss of t->deps, mapped before the module was */
	int ok;
	char err[256];
};

struct mem_job {
	struct tls *t;
	int side;             /* 0 server, 1 client */
	int fd[2];            /* X25519 handshake, then x25519_qkd */
	int other[2];         /* the peer's ends, closed here */
	struct mem_side *out; /* shared with the parent */
};

/* VmRSS, and Private_Dirty of every mapping (smaps_rollup): the pages
 * this process wrote, including a module's relocated data. */
static int
self_mem(long *rss_kib, long *dirty_kib)
{
	char line[256];
	struct bench_mem m;
	FILE *f;
	if (bench_mem_read(getpid(), &m) != 0 ||
	    (f = fopen("/proc/self/smaps_rollup", "r")) == NULL)
		return -1;
	*rss_kib = m.rss_kib;
	*dirty_kib = -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Private_Dirty: %ld kB", dirty_kib) == 1)
			break;
	fclose(f);
	return *dirty_kib >= 0 ? 0 : -1;
}

/* Libraries every TLS program maps anyway. */
static bool
common_lib(const char *name)
{
	static const char *const common[] = {
	    "libc.so", "libcrypto.so", "ld-linux", "libpthread.so", "libdl.so"};
	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		if (strncmp(name, common[i], strlen(common[i])) == 0)
			return true;
	return false;
}

/* The libraries a module needs (DT_NEEDED) beyond the common ones, as
 * "a b ...": what a program that does not map them already pays on top
 * of the module. "" if the file cannot be read as 64-bit ELF. */
static void
module_deps(const char *path, char *out, size_t len)
{
	size_t at = 0, size = 0;
	unsigned char *buf = NULL;
	FILE *f = fopen(path, "rb");
	out[0] = '\0';
	if (f == NULL || fseek(f, 0, SEEK_END) != 0 ||
	    (size = (size_t)ftell(f)) < sizeof(Elf64_Ehdr) ||
	    fseek(f, 0, SEEK_SET) != 0 || (buf = malloc(size)) == NULL ||
	    fread(buf, 1, size, f) != size)
		goto out;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)buf;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > size)
		goto out;
	const Elf64_Shdr *sh = (const Elf64_Shdr *)(buf + eh->e_shoff);
	for (size_t i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_DYNAMIC ||
		    sh[i].sh_link >= eh->e_shnum ||
		    sh[i].sh_offset + sh[i].sh_size > size)
			continue;
		const Elf64_Dyn *d = (const Elf64_Dyn *)(buf + sh[i].sh_offset);
		size_t strtab = sh[sh[i].sh_link].sh_offset;
		for (size_t k = 0; k < sh[i].sh_size / sizeof(*d); k++) {
			size_t off = strtab + d[k].d_un.d_val;
			const char *name = (const char *)buf + off;
			if (d[k].d_tag != DT_NEEDED || off >= size ||
			    memchr(name, '\0', size - off) == NULL ||
			    common_lib(name) || at + strlen(name) + 2 > len)
				continue;
			at += (size_t)snprintf(out + at, len - at, "%s%s",
			                       at > 0 ? " " : "", name);
		}
	}
out:
	free(buf);
	if (f != NULL)
		fclose(f);
}

/* Rss of this process's mappings of the libraries in deps (by file name,
 * which maps show with the full version: libsodium.so.23.3.0). */
static long
deps_rss_kib(const char *deps)
{
	char line[1024], cur[256] = "";
	long kib, total = 0;
	FILE *f;
	if (deps[0] == '\0' || (f = fopen("/proc/self/smaps", "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		int off = 0;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi,
		           &off) == 2 &&
		    off > 0) {
			char *p = line + off, *slash = strrchr(p, '/');
			p[strcspn(p, "\n")] = '\0';
			snprintf(cur, sizeof(cur), "%s",
			         slash != NULL ? slash + 1 : "");
		} else if (cur[0] != '\0' &&
		           sscanf(line, "Rss: %ld kB", &kib) == 1) {
			/* whole words of deps that start cur */
			for (const char *d = deps; *d != '\0';) {
				size_t n = strcspn(d, " ");
				if (strncmp(cur, d, n) == 0 &&
				    (cur[n] == '\0' || cur[n] == '.')) {
					total += kib;
					break;
				}
				d += n + (d[n] == ' ');
			}
		}
	}
	fclose(f);
	return total;
}

static int
fd_handshake(SSL_CTX *ctx, int side, int fd)
{
	SSL *ssl = SSL_new(ctx);
	int ok = ssl != NULL && SSL_set_fd(ssl, fd) == 1 &&
	         (side == 0 ? SSL_accept(ssl) : SSL_connect(ssl)) == 1;
	SSL_free(ssl);
	return ok;
}

/* In a forked child: a fresh library context with the default provider
 * and one X25519 handshake with the peer child, then qkdn loaded, then a
 * first x25519_qkd handshake. */
static int
mem_child(void *arg)
{
	struct mem_job *j = arg;
	struct mem_side *m = j->out;
	const char *what = "loading the configuration";
	OSSL_LIB_CTX *lib = NULL;
	SSL_CTX *ctx = NULL;
	bool server = j->side == 0;

	close(j->other[0]);
	close(j->other[1]);
	if ((lib = OSSL_LIB_CTX_new()) == NULL ||
	    !OSSL_LIB_CTX_load_config(lib, j->t->mem_cnf[j->side]))
		goto err;
	what = "an X25519 handshake before loading qkdn";
	if ((ctx = new_ctx(lib, server, "X25519", &j->t->cert)) == NULL ||
	    !fd_handshake(ctx, j->side, j->fd[0]))
		goto err;
	SSL_CTX_free(ctx);
	ctx = NULL;
	what = "reading memory";
	if (self_mem(&m->rss_kib[M_BEFORE], &m->dirty_kib[M_BEFORE]) != 0)
		goto err;
	what = "OSSL_PROVIDER_load(qkdn)";
	if (OSSL_PROVIDER_load(lib, "qkdn") == NULL)
		goto err;
	what = "reading memory";
	if (self_mem(&m->rss_kib[M_LOADED], &m->dirty_kib[M_LOADED]) != 0)
		goto err;
	what = "the first x25519_qkd handshake";
	if ((ctx = new_ctx(lib, server, "x25519_qkd", &j->t->cert)) == NULL ||
	    !fd_handshake(ctx, j->side, j->fd[1]))
		goto err;
	SSL_CTX_free(ctx);
	ctx = NULL;
	what = "reading memory";
	if (self_mem(&m->rss_kib[M_HANDSHAKE], &m->dirty_kib[M_HANDSHAKE]) != 0)
		goto err;
	m->deps_kib = deps_rss_kib(j->t->deps);
	m->ok = 1;
	return 0;
err:
	take_errors(m->err, sizeof(m->err), what);
	SSL_CTX_free(ctx);
	return 1;
}

static void
sock_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = SOCK_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Wait for a child to exit, at most ms; then stop it. */
static void
reap(struct bench_proc *p, int ms)
{
	int status;
	for (int waited = 0; p->pid > 0 && waited < ms; waited += 10) {
		if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
			p->pid = 0;
			return;
		}
		bench_sleep_ms(10);
	}
	bench_stop(p);
}

static int
measure_memory(struct tls *t, struct mem_side out[2])
{
	int sp[2][2] = {{-1, -1}, {-1, -1}}, rv = 0;
	struct bench_proc procs[2] = {{0}, {0}};
	struct mem_side *shared =
	    mmap(NULL, 2 * sizeof(*shared), PROT_READ | PROT_WRITE,
	         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		return QKDN_E_NOMEM;
	memset(shared, 0, 2 * sizeof(*shared));
	for (int i = 0; i < 2; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp[i]) !=
		    0) {
			rv = QKDN_E_IO;
			goto out;
		}
	for (int i = 0; i < 2; i++) {
		sock_timeouts(sp[i][0]);
		sock_timeouts(sp[i][1]);
	}
	for (int side = 0; side < 2 && rv == 0; side++) {
		struct mem_job j = {.t = t,
		                    .side = side,
		                    .fd = {sp[0][side], sp[1][side]},
		                    .other = {sp[0][!side], sp[1][!side]},
		                    .out = &shared[side]};
		rv = bench_fork(&procs[side],
		                side == 0 ? "server child" : "client child",
		                mem_child, &j);
	}
out:
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 2; k++)
			if (sp[i][k] >= 0)
				close(sp[i][k]);
	for (int side = 0; side < 2; side++)
		reap(&procs[side], MEM_WAIT_MS);
	memcpy(out, shared, 2 * sizeof(*shared));
	munmap(shared, 2 * sizeof(*shared));
	for (int side = 0; side < 2 && rv == 0; side++)
		if (!out[side].ok) {
			bench_note("memory, %s: %s",
			           side == 0 ? "server" : "client",
			           out[side].err[0] != '\0' ? out[side].err
			                                    : "child failed");
			rv = QKDN_E_INTERNAL;
		}
	return rv;
}

static void
say_memory(const struct bench_out *o, const struct mem_side m[2],
           const char *deps)
{
	static const char *const who[2] = {"server (alice, batch 16)",
	                                   "client (bob)"};
	bench_say(o,
	          "(b) what the provider adds to a process's memory, MiB   "
	          "aim: under %.0f MiB",
	          AIM_MEM_MIB);
	bench_say(o, "    (forked children; from a fresh library context "
	             "with the default provider after one X25519");
	bench_say(o, "    handshake: + OSSL_PROVIDER_load(qkdn), then + the "
	             "first x25519_qkd handshake, SSL_CTX freed)");
	bench_say(o, "                                  VmRSS   + load  + "
	             "1st hs   Private_Dirty + load + 1st hs");
	cJSON *j = cJSON_AddObjectToObject(o->root, "provider_memory");
	cJSON_AddNumberToObject(j, "aim_mib", AIM_MEM_MIB);
	for (int s = 0; s < 2; s++) {
		const struct mem_side *x = &m[s];
		double rss = (double)x->rss_kib[M_BEFORE] / 1024,
		       rl = (double)(x->rss_kib[M_LOADED] -
		                     x->rss_kib[M_BEFORE]) /
		            1024,
		       rh = (double)(x->rss_kib[M_HANDSHAKE] -
		                     x->rss_kib[M_BEFORE]) /
		            1024,
		       d = (double)x->dirty_kib[M_BEFORE] / 1024,
		       dl = (double)(x->dirty_kib[M_LOADED] -
		                     x->dirty_kib[M_BEFORE]) /
		            1024,
		       dh = (double)(x->dirty_kib[M_HANDSHAKE] -
		                     x->dirty_kib[M_BEFORE]) /
		            1024;
		bench_say(o,
		          "    %-26s %8.2f  %+7.2f  %+7.2f   %13.2f %+6.2f "
		          "%+7.2f",
		          who[s], rss, rl, rh, d, dl, dh);
		cJSON *k =
		    cJSON_AddObjectToObject(j, s == 0 ? "server" : "client");
		cJSON_AddNumberToObject(k, "vm_rss_before_mib", rss);
		cJSON_AddNumberToObject(k, "vm_rss_added_by_load_mib", rl);
		cJSON_AddNumberToObject(k, "vm_rss_added_after_handshake_mib",
		                        rh);
		cJSON_AddNumberToObject(k, "private_dirty_before_mib", d);
		cJSON_AddNumberToObject(k, "private_dirty_added_by_load_mib",
		                        dl);
		cJSON_AddNumberToObject(
		    k, "private_dirty_added_after_handshake_mib", dh);
	}
	bench_say(o, "    + columns: added since the first column; "
	             "Private_Dirty: pages the process wrote (smaps_rollup)");
	if (deps[0] != '\0') {
		bench_say(o,
		          "    not counted: %s, which the module needs and "
		          "qkdn-bench maps already:",
		          deps);
		bench_say(o,
		          "      %.2f MiB resident in the server, %.2f in the "
		          "client (a program without them pays that too)",
		          (double)m[0].deps_kib / 1024,
		          (double)m[1].deps_kib / 1024);
	}
	cJSON_AddStringToObject(j, "not_counted_libraries", deps);
	cJSON_AddNumberToObject(cJSON_GetObjectItem(j, "server"),
	                        "not_counted_libraries_rss_mib",
	                        (double)m[0].deps_kib / 1024);
	cJSON_AddNumberToObject(cJSON_GetObjectItem(j, "client"),
	                        "not_counted_libraries_rss_mib",
	                        (double)m[1].deps_kib / 1024);
	bench_blank(o);
}

/* ---- the command ---- */

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
	        THREADS_MAX);
}

static int
parse_threads(struct opts *o, const char *text)
{
	int n =
	    bench_parse_int_list(text, o->threads, THREAD_LISTS, THREADS_MAX);
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
parse(struct opts *o, int argc, char **argv)
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
	*o = (struct opts){.seconds = 3};
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
				        THREAD_LISTS, THREADS_MAX);
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
say_header(const struct bench_out *o, const struct opts *op,
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
	          BENCH_NET_RATE_BPS / 1000000, SERVER_SAE);
	bench_say(o,
	          "  on A, client SAE %s on B, Ak ipc://, timeout_ms %d; run "
	          "dir %s",
	          CLIENT_SAE, KM_TIMEOUT_MS, n->dir);
	bench_say(o,
	          "  load average at the start: %.2f on %ld cores (other "
	          "work on this machine shows in every figure)",
	          load, sysconf(_SC_NPROCESSORS_ONLN));
	bench_blank(o);
	cJSON_AddNumberToObject(o->root, "loadavg_start", load);
	cJSON *j = cJSON_AddObjectToObject(o->root, "config");
	cJSON_AddNumberToObject(j, "seconds", op->seconds);
	cJSON_AddNumberToObject(j, "rounds", ROUNDS);
	cJSON *c = cJSON_AddArrayToObject(j, "threads");
	for (int i = 0; i < op->n_threads; i++)
		cJSON_AddItemToArray(c, cJSON_CreateNumber(op->threads[i]));
	cJSON_AddNumberToObject(j, "batch", BATCH);
	cJSON_AddStringToObject(j, "provider", op->provider);
	cJSON_AddStringToObject(j, "openssl",
	                        OpenSSL_version(OPENSSL_VERSION_STRING));
	cJSON_AddStringToObject(j, "run_dir", n->dir);
	cJSON *a = cJSON_AddObjectToObject(o->root, "aims");
	cJSON_AddNumberToObject(a, "x25519_qkd_x_x25519", AIM_RATIO);
	cJSON_AddNumberToObject(a, "provider_memory_mib", AIM_MEM_MIB);
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
	struct opts op;
	struct bench_out o = {0};
	struct mem_side mem[2];
	struct bench_net *n = calloc(1, sizeof(*n));
	struct tls t = {.op = &op, .net = n};
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
	if ((rv = make_cert(&t.cert)) != 0) {
		bench_note("cannot make the P-256 certificate");
		goto out;
	}
	bench_note("starting qkdn-qkdsim and two qkdn-km");
	/* a full pool, so that no top-up falls between the lines; then the
	 * link paused, as taking in key costs the KMs CPU */
	if ((rv = bench_net_start(n, "qkdn-bench tls")) != 0 ||
	    (rv = bench_net_wait_key(n, BENCH_NET_TOPUP_BYTES)) != 0 ||
	    (rv = bench_net_link_run(n, false)) != 0 ||
	    (rv = write_cnfs(&t)) != 0)
		goto out;
	bench_sleep_ms(200); /* blocks in flight */
	/* before this process loads the module: the children map it anew */
	module_deps(op.provider, t.deps, sizeof(t.deps));
	if ((rv = measure_memory(&t, mem)) != 0 ||
	    (rv = load_contexts(&t)) != 0 || (rv = run_handshakes(&o, &t)) != 0)
		goto out;
	say_memory(&o, mem, t.deps);
out:
	free_contexts(&t);
	cert_free(&t.cert);
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
