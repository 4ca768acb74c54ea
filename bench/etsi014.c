/* qkdn-bench etsi014: enc_keys + dec_keys pairs through the ETSI GS QKD
 * 014 gateways (docs/etsi014.md) of a two-node network of its own, with 1
 * and 16 keep-alive clients, against two references measured in the same
 * run: the floor (the same HTTP library, etsi014/https.c, serving a fixed
 * JSON body of a key container's size over the same mutual TLS, two
 * requests a pair) and Ak (the same keys through libqkdn: key request at
 * A, key request with ID at B). Figures and ratios, never pass/fail.
 * Gateway A keeps its key stock (docs/etsi014.md), by default the network
 * file's default; --stock N sets etsi014_stock (0: every enc_keys asks the
 * KM, as before the stock), to compare the two on the same machine. */
#include "bench.h"

#include "qkdn_ak.h"
#include "qkdn_err.h"

#ifdef QKDN_BENCH_ETSI014
#include "https.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define RSP_MAX (64u << 10)
#define RATE    "32000000" /* bits/s: the pool keeps up with 16 clients */

/* A fixed body as long as a one-key container of 256 bits. */
static const char FLOOR_BODY[] =
    "{\"keys\":[{\"key_ID\":\"01a22bfe-4672-74e1-8ada-6b360c2012fa\","
    "\"key\":\"KspGSM28235uVLmZuHtZzAKspGSM28235uVLmZuHtZzA=\"}]}";

struct run {
	char dir[200], pki[256], qkdn[PATH_MAX]; /* ipc paths stay short */
	int stock;       /* etsi014_stock of node A; -1: the default */
	int port[3];     /* gateway A, gateway B, floor */
	SSL_CTX *ctx[2]; /* clients: alice, bob */
	char ak_url[2][256];
};

/* ---- a minimal HTTP/1.1 keep-alive client over OpenSSL ---- */

struct hc {
	int fd;
	SSL *ssl;
	char buf[RSP_MAX];
};

static int
hc_open(struct hc *c, SSL_CTX *ctx, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	c->ssl = NULL;
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return QKDN_E_UNREACHABLE;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((c->ssl = SSL_new(ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
	    SSL_connect(c->ssl) != 1)
		return QKDN_E_AUTH_FAILED;
	return 0;
}

static void
hc_close(struct hc *c)
{
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	OPENSSL_cleanse(c->buf, sizeof(c->buf));
}

/* One request; the body of the reply (NUL-terminated) in c->buf + *off. */
static int
hc_call(struct hc *c, const char *path, int *status, size_t *off)
{
	char req[512];
	int n = snprintf(req, sizeof(req),
	                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
	if (SSL_write(c->ssl, req, n) != n)
		return QKDN_E_IO;
	size_t got = 0, need = 0;
	char *end = NULL;
	for (;;) {
		int r =
		    SSL_read(c->ssl, c->buf + got, (int)(RSP_MAX - 1 - got));
		if (r <= 0)
			return QKDN_E_IO;
		got += (size_t)r;
		c->buf[got] = '\0';
		if (end == NULL && (end = strstr(c->buf, "\r\n\r\n")) != NULL) {
			const char *cl = strcasestr(c->buf, "Content-Length:");
			*off = (size_t)(end + 4 - c->buf);
			need = *off +
			       (cl != NULL ? strtoul(cl + 15, NULL, 10) : 0);
			*status = atoi(c->buf + 9);
		}
		if (end != NULL && got >= need)
			return need < RSP_MAX ? 0 : QKDN_E_TOO_LARGE;
		if (got >= RSP_MAX - 1)
			return QKDN_E_TOO_LARGE;
	}
}

static SSL_CTX *
client_ctx(const char *pki, const char *sae)
{
	char cert[PATH_MAX + 80], key[PATH_MAX + 80], ca[PATH_MAX + 80];
	snprintf(cert, sizeof(cert), "%s/%s.pem", pki, sae);
	snprintf(key, sizeof(key), "%s/%s.key", pki, sae);
	snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

/* ---- the three operations: ETSI pair, floor pair, Ak pair ---- */

enum kind { K_ETSI, K_FLOOR, K_AK };

struct ctx {
	struct run *r;
	enum kind kind;
};

struct conn {
	struct hc a, b;
	struct qkdn_ak *ak[2];
	struct qkdn_ak_key key[2];
};

static int
op_setup(struct bench_worker *w)
{
	struct ctx *x = w->arg;
	struct conn *c = calloc(1, sizeof(*c));
	int rv = 0;
	if (c == NULL)
		return QKDN_E_NOMEM;
	c->a.fd = c->b.fd = -1;
	w->priv = c;
	if (x->kind == K_AK)
		return qkdn_ak_open(&c->ak[0], x->r->ak_url[0], "alice",
		                    5000) ||
		               qkdn_ak_open(&c->ak[1], x->r->ak_url[1], "bob",
		                            5000)
		           ? QKDN_E_UNREACHABLE
		           : 0;
	int pa = x->kind == K_ETSI ? x->r->port[0] : x->r->port[2];
	int pb = x->kind == K_ETSI ? x->r->port[1] : x->r->port[2];
	if ((rv = hc_open(&c->a, x->r->ctx[0], pa)) != 0 ||
	    (rv = hc_open(&c->b, x->r->ctx[1], pb)) != 0)
		return rv;
	return 0;
}

static void
op_teardown(struct bench_worker *w)
{
	struct conn *c = w->priv;
	if (c == NULL)
		return;
	hc_close(&c->a);
	hc_close(&c->b);
	qkdn_ak_close(c->ak[0]);
	qkdn_ak_close(c->ak[1]);
	qkdn_ak_keys_wipe(c->key, 2);
	free(c);
	w->priv = NULL;
}

static int
op_pair(struct bench_worker *w, char *why, size_t whylen)
{
	struct ctx *x = w->arg;
	struct conn *c = w->priv;
	char path[160];
	size_t off;
	int st = 0, rv;
	if (x->kind == K_AK) {
		if ((rv = qkdn_ak_get_keys(c->ak[0], "bob", 256, 1,
		                           &c->key[0])) != 0 ||
		    (rv = qkdn_ak_get_keys_by_id(c->ak[1], &c->key[0].id, 1,
		                                 &c->key[1])) != 0)
			snprintf(why, whylen, "Ak: %s", qkdn_ak_last_error());
		return rv != 0 ? rv : 1;
	}
	const char *enc =
	    x->kind == K_ETSI ? "/api/v1/keys/bob/enc_keys" : "/floor";
	if ((rv = hc_call(&c->a, enc, &st, &off)) != 0 || st != 200) {
		snprintf(why, whylen, "enc_keys: HTTP %d (%s)", st,
		         qkdn_strerror(rv));
		return rv != 0 ? rv : QKDN_E_BAD_REQUEST;
	}
	const char *id = strstr(c->a.buf + off, "\"key_ID\":\"");
	if (id == NULL) {
		snprintf(why, whylen, "no key_ID in the reply");
		return QKDN_E_BAD_REQUEST;
	}
	snprintf(path, sizeof(path), "%s?key_ID=%.36s",
	         x->kind == K_ETSI ? "/api/v1/keys/alice/dec_keys" : "/floor",
	         id + 10);
	if ((rv = hc_call(&c->b, path, &st, &off)) != 0 || st != 200) {
		snprintf(why, whylen, "dec_keys: HTTP %d (%s)", st,
		         qkdn_strerror(rv));
		return rv != 0 ? rv : QKDN_E_BAD_REQUEST;
	}
	return 1;
}

static void
floor_handler(void *arg, const struct https_req *rq, struct https_rsp *rs)
{
	(void)arg;
	(void)rq;
	https_rsp_text(rs, 200, FLOOR_BODY);
}

/* ---- the network: qkdn net up with two gateways ---- */

static int
run_qkdn(struct run *r, char *const argv[])
{
	pid_t pid;
	int status, rv;
	posix_spawn_file_actions_t fa;
	/* its report would interleave with ours: errors still show */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	rv = posix_spawn(&pid, r->qkdn, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rv != 0 || waitpid(pid, &status, 0) != pid)
		return QKDN_E_IO;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : QKDN_E_IO;
}

static int
net_up(struct run *r)
{
	char cnf[256], run[224];
	snprintf(cnf, sizeof(cnf), "%s/net.cnf", r->dir);
	snprintf(run, sizeof(run), "%s/run", r->dir);
	FILE *f = fopen(cnf, "w");
	if (f == NULL)
		return QKDN_E_IO;
	char stock[40] = "";
	if (r->stock >= 0)
		snprintf(stock, sizeof(stock), "etsi014_stock = %d\n",
		         r->stock);
	fprintf(f,
	        "# qkdn-bench etsi014\n[qkdn]\nnodes = A, B\nlinks = A_B\n"
	        "saes = alice, bob\n\n[A]\nkx = tcp://127.0.0.1:%d\n"
	        "etsi014 = https://127.0.0.1:%d\n%s\n[B]\n"
	        "kx = tcp://127.0.0.1:%d\netsi014 = https://127.0.0.1:%d\n\n"
	        "[A_B]\nnodes = A, B\nrate = " RATE "\nblock_bytes = 65536\n\n"
	        "[alice]\nnode = A\n\n[bob]\nnode = B\n",
	        bench_free_port(), r->port[0], stock, bench_free_port(),
	        r->port[1]);
	fclose(f);
	char *argv[] = {r->qkdn, "net", "up", cnf, "--run-dir", run, NULL};
	snprintf(r->pki, sizeof(r->pki), "%s/etsi014-pki", run);
	snprintf(r->ak_url[0], sizeof(r->ak_url[0]), "ipc://%s/A.ak", run);
	snprintf(r->ak_url[1], sizeof(r->ak_url[1]), "ipc://%s/B.ak", run);
	return run_qkdn(r, argv);
}

static void
net_down(struct run *r)
{
	char run[224];
	snprintf(run, sizeof(run), "%s/run", r->dir);
	char *argv[] = {r->qkdn, "net", "down", "--run-dir", run, NULL};
	if (run_qkdn(r, argv) != 0)
		bench_note("qkdn net down failed: daemons of %s may run", run);
}

/* Until A holds need bytes of key for B (30 s at most). */
static int
wait_key(struct run *r, uint64_t need)
{
	struct qkdn_ak *ak;
	int rv = qkdn_ak_open(&ak, r->ak_url[0], "alice", 1000);
	for (int i = 0; rv == 0 && i < 300; i++) {
		struct qkdn_ak_status st = {0};
		if (qkdn_ak_status(ak, &st) == 0 && st.n_links > 0 &&
		    st.links[0].out_bytes >= need && st.links[0].up) {
			qkdn_ak_status_free(&st);
			qkdn_ak_close(ak);
			return 0;
		}
		qkdn_ak_status_free(&st);
		bench_sleep_ms(100);
	}
	qkdn_ak_close(ak);
	return QKDN_E_TIMEOUT;
}

struct fig {
	double per_s, p50_us;
};

static int
measure(struct run *r, enum kind kind, int clients, double seconds,
        struct fig *f)
{
	struct ctx x = {.r = r, .kind = kind};
	struct bench_load l = {.threads = clients,
	                       .seconds = seconds,
	                       .warmup_ops = 20,
	                       .latency = true,
	                       .arg = &x,
	                       .setup = op_setup,
	                       .op = op_pair,
	                       .teardown = op_teardown};
	int rv = bench_load_run(&l);
	if (rv == 0 && l.errors > 0)
		bench_note("%llu errors, first: %s",
		           (unsigned long long)l.errors, l.first_error);
	f->per_s = rv == 0 && l.elapsed_s > 0 ? l.ops / l.elapsed_s : 0;
	f->p50_us = bench_samples_pct_us(&l.lat, 50);
	bench_load_free(&l);
	return rv;
}

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: qkdn-bench etsi014 [--seconds S] [--stock N]\n"
	        "  --stock N  etsi014_stock of gateway A (default: the "
	        "network file's, 32;\n"
	        "             0: no key stock, every enc_keys asks the KM)\n");
}

int
bench_etsi014(int argc, char **argv)
{
	double seconds = 3;
	static const int clients[] = {1, 16};
	struct run r = {.stock = -1};
	struct https *floor = NULL;
	char why[512];
	int rv;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc &&
		    (seconds = atof(argv[++i])) > 0 && seconds <= 600)
			continue;
		if (strcmp(argv[i], "--stock") == 0 && i + 1 < argc &&
		    (r.stock = atoi(argv[++i])) >= 0 && r.stock <= 1024)
			continue;
		usage(strcmp(argv[i], "--help") == 0 ? stdout : stderr);
		return strcmp(argv[i], "--help") == 0 ? 0 : 2;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(r.dir, sizeof(r.dir), "%s/qkdn-bench.XXXXXX",
	         tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(r.dir) == NULL ||
	    qkdn_launch_find_program("qkdn", false, r.qkdn, sizeof(r.qkdn)) !=
	        0) {
		bench_note("no run directory, or no qkdn next to qkdn-bench");
		return 1;
	}
	for (int i = 0; i < 3; i++)
		r.port[i] = bench_free_port();
	bench_note("etsi014: network in %s", r.dir);
	if ((rv = net_up(&r)) != 0) {
		bench_note("qkdn net up failed");
		goto out;
	}
	char url[64], cert[PATH_MAX + 32], key[PATH_MAX + 32],
	    ca[PATH_MAX + 32];
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", r.port[2]);
	snprintf(cert, sizeof(cert), "%s/etsi014-A.pem", r.pki);
	snprintf(key, sizeof(key), "%s/etsi014-A.key", r.pki);
	snprintf(ca, sizeof(ca), "%s/ca.pem", r.pki);
	/* the floor: as the gateway serves (same library, TLS, workers) */
	const struct https_config fc = {.url = url,
	                                .cert = cert,
	                                .key = key,
	                                .ca = ca,
	                                .workers = 16,
	                                .handler = floor_handler};
	if ((r.ctx[0] = client_ctx(r.pki, "alice")) == NULL ||
	    (r.ctx[1] = client_ctx(r.pki, "bob")) == NULL ||
	    (rv = https_start(&floor, &fc, why, sizeof(why))) != 0 ||
	    (rv = wait_key(&r, 4u << 20)) != 0) {
		bench_note("set-up failed: %s", rv != 0 ? why : "TLS context");
		rv = rv != 0 ? rv : QKDN_E_CONFIG;
		goto out;
	}
	printf("qkdn-bench etsi014: enc_keys + dec_keys pairs (one 256-bit "
	       "key), %.0f s a run, keep-alive clients\n",
	       seconds);
	/* the stock starts with the first enc_keys of the warm-up (20 pairs
	 * a client) and is refilled within a KM round trip */
	if (r.stock == 0)
		printf("gateway A without a key stock (etsi014_stock = 0): "
		       "every enc_keys asks the KM\n");
	else
		printf("gateway A with a key stock of %d keys (etsi014_stock), "
		       "started by the warm-up: enc_keys served from it need "
		       "no KM call\n",
		       r.stock < 0 ? 32 : r.stock);
	printf("%-8s %14s %10s %14s %10s %14s %10s %10s %10s\n", "clients",
	       "floor pairs/s", "p50 us", "etsi pairs/s", "p50 us",
	       "Ak pairs/s", "p50 us", "etsi/floor", "etsi/Ak");
	for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
		struct fig fl, et, ak;
		if ((rv = measure(&r, K_FLOOR, clients[i], seconds, &fl)) !=
		        0 ||
		    (rv = measure(&r, K_ETSI, clients[i], seconds, &et)) != 0 ||
		    (rv = measure(&r, K_AK, clients[i], seconds, &ak)) != 0)
			goto out;
		/* ratios of time a pair (1/rate): 1.0 is the floor */
		printf("%-8d %14.0f %10.0f %14.0f %10.0f %14.0f %10.0f %9.2fx "
		       "%9.2fx\n",
		       clients[i], fl.per_s, fl.p50_us, et.per_s, et.p50_us,
		       ak.per_s, ak.p50_us,
		       et.per_s > 0 ? fl.per_s / et.per_s : 0,
		       et.per_s > 0 ? ak.per_s / et.per_s : 0);
	}
out:
	https_stop(floor);
	SSL_CTX_free(r.ctx[0]);
	SSL_CTX_free(r.ctx[1]);
	if (r.qkdn[0] != '\0')
		net_down(&r);
	if (rv == 0)
		bench_rm_tree(r.dir);
	else
		bench_note("kept %s", r.dir);
	return rv == 0 ? 0 : 1;
}

#else

int
bench_etsi014(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "qkdn-bench etsi014: built without etsi014/\n");
	return 1;
}

#endif
