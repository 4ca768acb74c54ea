/* TLS 1.3 through the qkdn provider, client and server in one process over
 * memory BIOs, against a running two-node network. Each side has its own
 * library context loaded from its own openssl.cnf (its own KM and SAE).
 *
 *   tls_inproc CHECK --server-conf F --client-conf F --km-a URL --km-b URL
 *              [--group NAME] [--group-id N] [--n N] [--expect-a N]
 *              [--expect-b N] [--timeout-ms N] [--extra-conf F]
 *              [--client-groups LIST] [--server-groups LIST] [--threads N]
 *              [--expect-error TEXT]
 *
 * CHECK is one of:
 *   handshake  n handshakes: the group negotiated is --group (the lists
 *              offered default to it), both ends export the same keying
 *              material, and KM A and KM B supplied --expect-a and
 *              --expect-b keys in all
 *   threads    --threads threads of n handshakes each on shared contexts
 *              (server conf: batch = 4): KM B supplied one key per
 *              handshake, KM A exactly the batches of 4 they needed
 *   tamper     a flipped key ID in the ServerHello fails the client with
 *              "unknown key ID" (never a handshake with a wrong key)
 *   dead       the server's KM is unreachable: the server fails within the
 *              timeout with the reason "peer unreachable" (qkdn code 7,
 *              raised by server_key) on its error queue; KM A and
 *              KM B supplied nothing
 *   fork       batch cache and fork(): a child never uses its parent's
 *              cached keys (server conf must have batch = 4)
 *   kem        the EVP KEM level: wire formats, size queries and key
 *              generation call no KM, bad shares and ciphertexts, another
 *              SAE's ID (--extra-conf: mallory on node B), a second fetch
 *   nokeygen   (server conf: a provider that cannot work) keygen of both
 *              groups fails with --expect-error on the queue, and neither
 *              KM supplied a key
 * Prints "ok: ..." lines; exit 0 only if every assertion held. */
#include "qkdn_ak.h"

#include <getopt.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct opts {
	const char *server_conf, *client_conf, *extra_conf, *km_a, *km_b;
	const char *group; /* the group that must be negotiated */
	const char *expect_error;
	const char *client_groups, *server_groups; /* default: group */
	unsigned group_id;
	int n, timeout_ms, threads;
	long expect_a, expect_b;
};

static struct opts o = {
    .group = "qkd", .n = 1, .timeout_ms = 1000, .expect_a = -1, .expect_b = -1};

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);   \
			fprintf(stderr, __VA_ARGS__);                          \
			fprintf(stderr, "\n");                                 \
			ERR_print_errors_fp(stderr);                           \
			exit(1);                                               \
		}                                                              \
	} while (0)

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The error queue as text (then cleared). */
static int
err_cb(const char *str, size_t len, void *u)
{
	char *buf = u;
	size_t have = strlen(buf);
	if (have + len + 2 < 4096) {
		memcpy(buf + have, str, len);
		buf[have + len] = '\0';
	}
	return 1;
}

static void
take_errors(char out[4096])
{
	out[0] = '\0';
	ERR_print_errors_cb(err_cb, out);
}

static void
expect_error(const char *what, const char *reason)
{
	char errs[4096];
	take_errors(errs);
	CHECK(strstr(errs, reason) != NULL, "%s: no \"%s\" on the queue: %s",
	      what, reason, errs);
	printf("ok: %s fails with \"%s\"\n", what, reason);
}

static OSSL_LIB_CTX *
load_ctx(const char *conf)
{
	OSSL_LIB_CTX *l = OSSL_LIB_CTX_new();
	CHECK(l != NULL && OSSL_LIB_CTX_load_config(l, conf), "loading %s",
	      conf);
	CHECK(OSSL_PROVIDER_available(l, "qkdn"), "qkdn not loaded by %s",
	      conf);
	return l;
}

/* keys supplied by a KM so far */
static long
supplied(const char *km)
{
	struct qkdn_ak *ak;
	struct qkdn_ak_status st;
	long n;
	CHECK(qkdn_ak_open(&ak, km, "tls-inproc", 3000) == 0 &&
	          qkdn_ak_status(ak, &st) == 0,
	      "status of %s: %s", km, qkdn_ak_last_error());
	n = (long)st.supplied;
	qkdn_ak_status_free(&st);
	qkdn_ak_close(ak);
	return n;
}

/* A throwaway self-signed P-256 certificate for the server. */
static void
use_throwaway_cert(SSL_CTX *ctx, OSSL_LIB_CTX *l)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(l, NULL, "EC", "P-256");
	X509 *x = X509_new_ex(l, NULL);
	X509_NAME *name;
	CHECK(pk != NULL && x != NULL, "certificate key");
	name = X509_get_subject_name(x);
	CHECK(X509_set_version(x, X509_VERSION_3) &&
	          ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
	          X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
	          X509_gmtime_adj(X509_getm_notAfter(x), 3600) &&
	          X509_set_pubkey(x, pk) &&
	          X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                                     (const unsigned char *)"qkdn-test",
	                                     -1, -1, 0) &&
	          X509_set_issuer_name(x, name) &&
	          X509_sign(x, pk, EVP_sha256()),
	      "self-signed certificate");
	CHECK(SSL_CTX_use_certificate(ctx, x) == 1 &&
	          SSL_CTX_use_PrivateKey(ctx, pk) == 1,
	      "server certificate");
	X509_free(x);
	EVP_PKEY_free(pk);
}

static SSL_CTX *
new_ctx(OSSL_LIB_CTX *l, int server, const char *groups)
{
	SSL_CTX *ctx = SSL_CTX_new_ex(
	    l, NULL, server ? TLS_server_method() : TLS_client_method());
	CHECK(ctx != NULL, "SSL_CTX_new_ex");
	CHECK(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) &&
	          SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION),
	      "TLS 1.3 only");
	CHECK(SSL_CTX_set1_groups_list(ctx, groups) == 1,
	      "groups %s unknown to the %s", groups,
	      server ? "server" : "client");
	if (server) {
		use_throwaway_cert(ctx, l);
		SSL_CTX_set_num_tickets(ctx, 0);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

struct conn {
	SSL *c, *s;
	int c_done, s_done;
	char c_err[4096], s_err[4096];
};

/* Move what one side wrote to the other; with tamper, flip the first byte
 * of the key ID in the ServerHello's key_share extension. */
static int
pump(SSL *from, SSL *to, int tamper, unsigned gid, size_t id_off)
{
	unsigned char buf[16384];
	int n, moved = 0, hit = 0;
	while ((n = BIO_read(SSL_get_wbio(from), buf, sizeof(buf))) > 0) {
		for (int i = 0; tamper && i + 8 < n; i++) {
			size_t ct = id_off + 16;
			if (buf[i] == 0x00 && buf[i + 1] == 0x33 &&
			    buf[i + 2] == 0 && buf[i + 3] == ct + 4 &&
			    buf[i + 4] == gid >> 8 &&
			    buf[i + 5] == (gid & 0xff) && buf[i + 6] == 0 &&
			    buf[i + 7] == ct && i + 8 + (int)ct <= n) {
				buf[i + 8 + id_off] ^= 0x01;
				hit = 1;
				break;
			}
		}
		CHECK(BIO_write(SSL_get_rbio(to), buf, n) == n, "BIO_write");
		moved = 1;
	}
	(void)moved;
	return hit;
}

static int
step(SSL *ssl, int *done, char err[4096])
{
	int rv;
	if (*done)
		return 1;
	ERR_clear_error();
	rv = SSL_do_handshake(ssl);
	if (rv == 1) {
		*done = 1;
		return 1;
	}
	if (SSL_get_error(ssl, rv) == SSL_ERROR_WANT_READ)
		return 1;
	take_errors(err);
	return 0;
}

/* One handshake; 1 if both ends completed. */
static int
handshake(SSL_CTX *sctx, SSL_CTX *cctx, struct conn *k, int tamper)
{
	size_t id_off = strcmp(o.group, "x25519_qkd") == 0 ? 32 : 0;
	int tampered = 0;
	memset(k, 0, sizeof(*k));
	k->c = SSL_new(cctx);
	k->s = SSL_new(sctx);
	CHECK(k->c != NULL && k->s != NULL, "SSL_new");
	SSL_set_bio(k->c, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
	SSL_set_bio(k->s, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
	SSL_set_connect_state(k->c);
	SSL_set_accept_state(k->s);
	for (int round = 0; round < 10 && !(k->c_done && k->s_done); round++) {
		if (!step(k->c, &k->c_done, k->c_err))
			return 0;
		pump(k->c, k->s, 0, 0, 0);
		if (!step(k->s, &k->s_done, k->s_err)) {
			pump(k->s, k->c, 0, 0, 0); /* the alert */
			step(k->c, &k->c_done, k->c_err);
			return 0;
		}
		tampered |= pump(k->s, k->c, tamper, o.group_id, id_off);
	}
	CHECK(!tamper || tampered, "no key share found to tamper with");
	return k->c_done && k->s_done;
}

static void
conn_free(struct conn *k)
{
	SSL_free(k->c);
	SSL_free(k->s);
}

/* The negotiated group is the one asked, by code point and by name, and
 * both ends derived the same secrets. */
static void
check_session(struct conn *k)
{
	unsigned char ec[32], es[32];
	static const char label[] = "EXPORTER-qkdn-test";
	SSL *ends[2] = {k->c, k->s};
	for (int i = 0; i < 2; i++) {
		int nid = SSL_get_negotiated_group(ends[i]);
		const char *name = SSL_group_to_name(ends[i], nid);
		/* a group without an OpenSSL NID (the provider's) comes
		 * back as its code point tagged TLSEXT_nid_unknown */
		CHECK(strcasecmp(o.group, "x25519") == 0
		          ? nid == NID_X25519
		          : (nid & TLSEXT_nid_unknown) &&
		                (unsigned)(nid & 0xFFFF) == o.group_id,
		      "negotiated group %#x, asked 0x%04x", (unsigned)nid,
		      o.group_id);
		CHECK(name != NULL && strcasecmp(name, o.group) == 0,
		      "negotiated group %s, asked %s", name ? name : "?",
		      o.group);
		CHECK(SSL_version(ends[i]) == TLS1_3_VERSION, "not TLS 1.3");
	}
	CHECK(SSL_export_keying_material(k->c, ec, sizeof(ec), label,
	                                 strlen(label), NULL, 0, 0) == 1 &&
	          SSL_export_keying_material(k->s, es, sizeof(es), label,
	                                     strlen(label), NULL, 0, 0) == 1,
	      "exporting keying material");
	CHECK(memcmp(ec, es, sizeof(ec)) == 0, "exported keying material "
	                                       "differs between the ends");
}

static void
check_supplied(const char *what, long a0, long b0, long want_a, long want_b)
{
	long da = supplied(o.km_a) - a0, db = supplied(o.km_b) - b0;
	CHECK((want_a < 0 || da == want_a) && (want_b < 0 || db == want_b),
	      "%s: KM A supplied %ld keys (want %ld), KM B %ld (want %ld)",
	      what, da, want_a, db, want_b);
	printf("ok: %s: KM A supplied %ld, KM B %ld\n", what, da, db);
}

static int
run_handshake(OSSL_LIB_CTX *sl, OSSL_LIB_CTX *cl)
{
	SSL_CTX *sctx = new_ctx(sl, 1, o.server_groups),
	        *cctx = new_ctx(cl, 0, o.client_groups);
	long a0 = supplied(o.km_a), b0 = supplied(o.km_b);
	struct conn k;
	for (int i = 0; i < o.n; i++) {
		CHECK(handshake(sctx, cctx, &k, 0),
		      "%s handshake %d: "
		      "client: %s server: %s",
		      o.group, i, k.c_err, k.s_err);
		check_session(&k);
		conn_free(&k);
	}
	printf("ok: %d %s handshakes (client %s, server %s), group 0x%04X, "
	       "same exported keys\n",
	       o.n, o.group, o.client_groups, o.server_groups, o.group_id);
	check_supplied(o.group, a0, b0, o.expect_a, o.expect_b);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	return 0;
}

static int
run_tamper(OSSL_LIB_CTX *sl, OSSL_LIB_CTX *cl)
{
	SSL_CTX *sctx = new_ctx(sl, 1, o.group),
	        *cctx = new_ctx(cl, 0, o.group);
	long a0 = supplied(o.km_a), b0 = supplied(o.km_b);
	struct conn k;
	CHECK(!handshake(sctx, cctx, &k, 1) && !k.c_done,
	      "handshake with a tampered key ID completed");
	CHECK(strstr(k.c_err, "unknown key ID") != NULL,
	      "tampered key ID: client error is not \"unknown key ID\": %s",
	      k.c_err);
	printf("ok: tampered key ID fails the client with \"unknown key "
	       "ID\"\n");
	/* the server spent its key; the client fetched nothing */
	check_supplied("tampered handshake", a0, b0, 1, 0);
	conn_free(&k);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	return 0;
}

static int
run_dead(OSSL_LIB_CTX *sl, OSSL_LIB_CTX *cl)
{
	SSL_CTX *sctx = new_ctx(sl, 1, "qkd"), *cctx = new_ctx(cl, 0, "qkd");
	long a0 = supplied(o.km_a), b0 = supplied(o.km_b);
	uint64_t t0 = now_ms(), took;
	struct conn k;
	CHECK(!handshake(sctx, cctx, &k, 0), "handshake without a KM "
	                                     "completed");
	took = now_ms() - t0;
	/* the reason field, not the KM's text in the data after it */
	CHECK(strstr(k.s_err, ":qkdn:server_key:peer unreachable:") != NULL,
	      "server error is not \"peer unreachable\": %s", k.s_err);
	CHECK(took < (uint64_t)o.timeout_ms + 1500,
	      "failing took %llu ms, timeout %d ms", (unsigned long long)took,
	      o.timeout_ms);
	CHECK(!k.c_done, "client completed");
	printf("ok: unreachable KM fails the server in %llu ms (timeout %d) "
	       "with \"peer unreachable\"\n",
	       (unsigned long long)took, o.timeout_ms);
	printf("    server error queue: %s", k.s_err);
	/* the server's KM is elsewhere (unreachable): KM A and KM B
	 * supplied nothing */
	check_supplied("failed handshake", a0, b0, 0, 0);
	conn_free(&k);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	return 0;
}

/* batch = 4 at the server: the first handshake fetches 4 keys, the next
 * three use the cache. A forked child must fetch its own. */
static int
run_fork(OSSL_LIB_CTX *sl, OSSL_LIB_CTX *cl)
{
	SSL_CTX *sctx = new_ctx(sl, 1, o.group),
	        *cctx = new_ctx(cl, 0, o.group);
	long a0 = supplied(o.km_a), b0 = supplied(o.km_b);
	struct conn k;
	int status;
	pid_t pid;

	CHECK(handshake(sctx, cctx, &k, 0), "first handshake: %s %s", k.c_err,
	      k.s_err);
	check_session(&k);
	conn_free(&k);
	check_supplied("batch of 4, first handshake", a0, b0, 4, 1);

	fflush(stdout);
	if ((pid = fork()) == 0) {
		long ca = supplied(o.km_a), cb = supplied(o.km_b);
		CHECK(handshake(sctx, cctx, &k, 0), "child handshake: %s %s",
		      k.c_err, k.s_err);
		check_session(&k);
		conn_free(&k);
		/* the parent's 3 cached keys are not the child's */
		check_supplied("forked child, first handshake", ca, cb, 4, 1);
		fflush(stdout);
		_exit(0);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	          WEXITSTATUS(status) == 0,
	      "forked child failed");
	a0 = supplied(o.km_a);
	b0 = supplied(o.km_b);
	for (int i = 0; i < 3; i++) {
		CHECK(handshake(sctx, cctx, &k, 0),
		      "cached handshake %d: %s %s", i, k.c_err, k.s_err);
		check_session(&k);
		conn_free(&k);
	}
	/* each cached key was still fetchable once by the client: neither
	 * the child nor an earlier handshake used it */
	check_supplied("parent, 3 handshakes from the cache", a0, b0, 0, 3);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	return 0;
}

/* Threads share one server and one client SSL_CTX (one provider instance
 * each, the server with a batch cache): every handshake gets a key of its
 * own, or the client's fetch by ID would be refused as already supplied. */
struct worker {
	SSL_CTX *sctx, *cctx;
	int ok;
	char err[256];
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	struct conn k;
	w->ok = 0;
	for (int i = 0; i < o.n; i++) {
		if (!handshake(w->sctx, w->cctx, &k, 0)) {
			snprintf(w->err, sizeof(w->err),
			         "client: %.100s "
			         "server: %.100s",
			         k.c_err, k.s_err);
			conn_free(&k);
			return NULL;
		}
		check_session(&k);
		conn_free(&k);
		w->ok++;
	}
	return NULL;
}

static int
run_threads(OSSL_LIB_CTX *sl, OSSL_LIB_CTX *cl)
{
	SSL_CTX *sctx = new_ctx(sl, 1, o.server_groups),
	        *cctx = new_ctx(cl, 0, o.client_groups);
	long a0 = supplied(o.km_a), b0 = supplied(o.km_b), da, want_a;
	struct worker w[16];
	pthread_t t[16];
	int nt = o.threads > 0 && o.threads <= 16 ? o.threads : 4;
	for (int i = 0; i < nt; i++) {
		w[i] = (struct worker){.sctx = sctx, .cctx = cctx};
		CHECK(pthread_create(&t[i], NULL, worker_run, &w[i]) == 0,
		      "pthread_create");
	}
	for (int i = 0; i < nt; i++) {
		pthread_join(t[i], NULL);
		CHECK(w[i].ok == o.n, "thread %d: %d of %d handshakes: %s", i,
		      w[i].ok, o.n, w[i].err);
	}
	da = supplied(o.km_a) - a0;
	/* refills are single-flight: a batch of 4 is fetched only when no
	 * key is cached, so A hands out exactly the whole batches the
	 * handshakes need, and less than one batch is left unused */
	want_a = ((long)nt * o.n + 3) / 4 * 4;
	check_supplied("threads", a0, b0, want_a, (long)nt * o.n);
	CHECK(da == want_a, "KM A supplied %ld keys for %d handshakes", da,
	      nt * o.n);
	printf("ok: %d threads x %d %s handshakes\n", nt, o.n, o.group);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	return 0;
}

/* EVP level */

static EVP_PKEY *
keygen(OSSL_LIB_CTX *l, const char *alg)
{
	EVP_PKEY_CTX *g = EVP_PKEY_CTX_new_from_name(l, alg, NULL);
	EVP_PKEY *pk = NULL;
	if (g != NULL && EVP_PKEY_keygen_init(g) > 0)
		EVP_PKEY_keygen(g, &pk);
	EVP_PKEY_CTX_free(g);
	return pk;
}

/* The server's view of a client key: parameters, then the share. */
static EVP_PKEY *
peer_key(OSSL_LIB_CTX *l, const char *alg, const unsigned char *share,
         size_t len)
{
	EVP_PKEY_CTX *g = EVP_PKEY_CTX_new_from_name(l, alg, NULL);
	EVP_PKEY *pk = NULL;
	CHECK(g != NULL && EVP_PKEY_paramgen_init(g) > 0 &&
	          EVP_PKEY_paramgen(g, &pk) > 0,
	      "%s paramgen", alg);
	EVP_PKEY_CTX_free(g);
	if (EVP_PKEY_set1_encoded_public_key(pk, share, len) != 1) {
		EVP_PKEY_free(pk);
		return NULL;
	}
	return pk;
}

static int
decaps(OSSL_LIB_CTX *l, EVP_PKEY *pk, const unsigned char *ct, size_t ctlen,
       unsigned char *ss, size_t *sslen)
{
	EVP_PKEY_CTX *d = EVP_PKEY_CTX_new_from_pkey(l, pk, NULL);
	int ok = d != NULL && EVP_PKEY_decapsulate_init(d, NULL) > 0 &&
	         EVP_PKEY_decapsulate(d, ss, sslen, ct, ctlen) > 0;
	EVP_PKEY_CTX_free(d);
	return ok;
}

static void
kem_group(OSSL_LIB_CTX *sl, OSSL_LIB_CTX *cl, OSSL_LIB_CTX *ml, const char *alg)
{
	int hyb = strcmp(alg, "x25519_qkd") == 0;
	size_t off = hyb ? 32 : 0, ctlen = 0, sslen = 0, len;
	unsigned char *share = NULL, ct[64], ss[64], ss2[64];
	long a0 = supplied(o.km_a), b0 = supplied(o.km_b);
	EVP_PKEY *ck, *sk;
	EVP_PKEY_CTX *e;

	/* client keygen and the share's format */
	CHECK((ck = keygen(cl, alg)) != NULL, "%s keygen", alg);
	len = EVP_PKEY_get1_encoded_public_key(ck, &share);
	CHECK(len == off + 2 + 3 && share[off] == 0x01 && share[off + 1] == 3 &&
	          memcmp(share + off + 2, "bob", 3) == 0,
	      "%s key share is not [X25519 ||] 01 03 \"bob\"", alg);
	/* the server side: parameters, share, size query */
	CHECK((sk = peer_key(sl, alg, share, len)) != NULL, "%s peer key", alg);
	CHECK((e = EVP_PKEY_CTX_new_from_pkey(sl, sk, NULL)) != NULL &&
	          EVP_PKEY_encapsulate_init(e, NULL) > 0 &&
	          EVP_PKEY_encapsulate(e, NULL, &ctlen, NULL, &sslen) > 0 &&
	          ctlen == off + 16 && sslen == off + 32,
	      "%s size query: ct %zu secret %zu", alg, ctlen, sslen);
	len = 0;
	CHECK(decaps(cl, ck, ct, off + 16, NULL, &len) && len == off + 32,
	      "%s decapsulate size query", alg);
	check_supplied("keygen, paramgen and size queries", a0, b0, 0, 0);

	CHECK(EVP_PKEY_encapsulate(e, ct, &ctlen, ss, &sslen) > 0 &&
	          ctlen == off + 16 && sslen == off + 32,
	      "%s encapsulate", alg);
	/* a wrong ID, and the right ID asked by another SAE (mallory) */
	ct[off + 15] ^= 0x80;
	len = sizeof(ss2);
	CHECK(!decaps(cl, ck, ct, ctlen, ss2, &len),
	      "%s: wrong key ID "
	      "accepted",
	      alg);
	expect_error("decapsulating a wrong key ID", "unknown key ID");
	ct[off + 15] ^= 0x80;
	if (!hyb) {
		EVP_PKEY *mk = keygen(ml, alg);
		CHECK(mk != NULL, "mallory's key");
		len = sizeof(ss2);
		CHECK(!decaps(ml, mk, ct, ctlen, ss2, &len),
		      "mallory fetched bob's key");
		expect_error("another SAE's key ID", "not authorised");
		EVP_PKEY_free(mk);
	}
	CHECK(!decaps(cl, ck, ct, ctlen - 1, ss2, &len),
	      "short ciphertext accepted");
	expect_error("a short ciphertext", "bad ciphertext");
	len = sizeof(ss2);
	CHECK(decaps(cl, ck, ct, ctlen, ss2, &len) && len == sslen &&
	          memcmp(ss, ss2, sslen) == 0,
	      "%s: decapsulated secret differs", alg);
	printf("ok: %s encapsulate/decapsulate agree (%zu-byte ciphertext, "
	       "%zu-byte secret)\n",
	       alg, ctlen, sslen);
	len = sizeof(ss2);
	CHECK(!decaps(cl, ck, ct, ctlen, ss2, &len), "second fetch accepted");
	expect_error("a second decapsulation", "key already supplied");
	check_supplied(alg, a0, b0, 1, 1);

	/* malformed shares */
	share[off] = 0x02;
	CHECK(peer_key(sl, alg, share, off + 5) == NULL, "bad tag accepted");
	expect_error("a key share with a bad tag", "bad key share");
	share[off] = 0x01;
	CHECK(peer_key(sl, alg, share, off + 4) == NULL, "short share "
	                                                 "accepted");
	expect_error("a truncated key share", "bad key share");

	OPENSSL_free(share);
	OPENSSL_cleanse(ss, sizeof(ss));
	OPENSSL_cleanse(ss2, sizeof(ss2));
	EVP_PKEY_CTX_free(e);
	EVP_PKEY_free(ck);
	EVP_PKEY_free(sk);
}

static int
run_kem(OSSL_LIB_CTX *sl, OSSL_LIB_CTX *cl)
{
	OSSL_LIB_CTX *ml;
	CHECK(o.extra_conf != NULL, "kem needs --extra-conf");
	/* mallory: another SAE on node B, the provider loaded a third time
	 * in its own context */
	ml = load_ctx(o.extra_conf);
	kem_group(sl, cl, ml, "qkd");
	kem_group(sl, cl, ml, "x25519_qkd");
	OSSL_LIB_CTX_free(ml);
	return 0;
}

/* The server conf is a provider that loaded but cannot work (nothing
 * configured, no SAE, a bad value): both groups fail key generation with
 * --expect-error on the queue, and no KM is asked. */
static int
run_nokeygen(OSSL_LIB_CTX *sl, OSSL_LIB_CTX *cl)
{
	static const char *const algs[] = {"qkd", "x25519_qkd"};
	char what[64];
	long a0 = supplied(o.km_a), b0 = supplied(o.km_b);
	(void)cl;
	CHECK(o.expect_error != NULL, "nokeygen needs --expect-error");
	for (int i = 0; i < 2; i++) {
		CHECK(keygen(sl, algs[i]) == NULL, "%s keygen succeeded",
		      algs[i]);
		snprintf(what, sizeof(what), "%s keygen", algs[i]);
		expect_error(what, o.expect_error);
	}
	check_supplied("failed key generation", a0, b0, 0, 0);
	return 0;
}

static const struct check {
	const char *name;
	int (*run)(OSSL_LIB_CTX *sl, OSSL_LIB_CTX *cl);
} checks[] = {
    {"handshake", run_handshake},
    {"tamper", run_tamper},
    {"dead", run_dead},
    {"fork", run_fork},
    {"kem", run_kem},
    {"nokeygen", run_nokeygen},
    {"threads", run_threads},
};

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"server-conf", required_argument, NULL, 's'},
	    {"client-conf", required_argument, NULL, 'c'},
	    {"extra-conf", required_argument, NULL, 'x'},
	    {"km-a", required_argument, NULL, 'a'},
	    {"km-b", required_argument, NULL, 'b'},
	    {"group", required_argument, NULL, 'g'},
	    {"group-id", required_argument, NULL, 'i'},
	    {"n", required_argument, NULL, 'n'},
	    {"expect-a", required_argument, NULL, 'A'},
	    {"expect-b", required_argument, NULL, 'B'},
	    {"timeout-ms", required_argument, NULL, 't'},
	    {"client-groups", required_argument, NULL, 'C'},
	    {"server-groups", required_argument, NULL, 'S'},
	    {"threads", required_argument, NULL, 'T'},
	    {"expect-error", required_argument, NULL, 'E'},
	    {NULL, 0, NULL, 0}};
	const struct check *ck = NULL;
	OSSL_LIB_CTX *sl, *cl;
	int c, rv;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o.server_conf = optarg;
			break;
		case 'c':
			o.client_conf = optarg;
			break;
		case 'x':
			o.extra_conf = optarg;
			break;
		case 'a':
			o.km_a = optarg;
			break;
		case 'b':
			o.km_b = optarg;
			break;
		case 'g':
			o.group = optarg;
			break;
		case 'i':
			o.group_id = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'n':
			o.n = atoi(optarg);
			break;
		case 'A':
			o.expect_a = atol(optarg);
			break;
		case 'B':
			o.expect_b = atol(optarg);
			break;
		case 't':
			o.timeout_ms = atoi(optarg);
			break;
		case 'C':
			o.client_groups = optarg;
			break;
		case 'S':
			o.server_groups = optarg;
			break;
		case 'T':
			o.threads = atoi(optarg);
			break;
		case 'E':
			o.expect_error = optarg;
			break;
		default:
			return 2;
		}
	}
	for (size_t i = 0;
	     optind < argc && i < sizeof(checks) / sizeof(*checks); i++)
		if (strcmp(argv[optind], checks[i].name) == 0)
			ck = &checks[i];
	if (ck == NULL || o.server_conf == NULL || o.client_conf == NULL ||
	    o.km_a == NULL || o.km_b == NULL) {
		fprintf(stderr,
		        "usage: tls_inproc handshake|tamper|dead|fork|"
		        "kem|nokeygen|threads --server-conf F "
		        "--client-conf F --km-a URL --km-b URL [...]\n");
		return 2;
	}
	if (o.group_id == 0)
		o.group_id = strcasecmp(o.group, "x25519") == 0   ? 0x001D
		             : strcmp(o.group, "x25519_qkd") == 0 ? 0xFE61
		                                                  : 0xFE60;
	if (o.client_groups == NULL)
		o.client_groups = o.group;
	if (o.server_groups == NULL)
		o.server_groups = o.group;
	sl = load_ctx(o.server_conf);
	cl = load_ctx(o.client_conf);
	rv = ck->run(sl, cl);
	OSSL_LIB_CTX_free(sl);
	OSSL_LIB_CTX_free(cl);
	return rv;
}
