/* The SP client over tls+tcp:// (qkdn_sp.h) and tcp://, against an
 * in-process OpenSSL server speaking the SP REP side, with certificates
 * made here: a round trip; a wrong CA, an expired certificate, a wrong
 * name, an SAE-only (clientAuth) certificate on the server and a client
 * certificate the server does not trust are refused with clear reasons;
 * the application's OpenSSL error queue is left exactly as it was; a
 * pooled connection the server closed while idle is retried once on a
 * fresh one, but never once part of a reply was read; a fork() child
 * drops an inherited TLS connection without writing to it; and the Ak API
 * takes the TLS options and reports the reasons. */
#include "qkdn_ak.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_msg.h"
#include "qkdn_sp.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define DAY (24 * 3600L)

static char dir[64];
static struct qkdn_sp_tls *creds; /* alice, trusting ca */

static void
path_of(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

/* Certificates */

static void
add_ext(X509 *x, X509V3_CTX *v, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v, nid, value);
	assert_non_null(e);
	assert_true(X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
}

/* A certificate for cn valid from..to seconds from now; eku NULL makes a
 * CA. issuer NULL: self-signed. */
static X509 *
make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
          const char *eku, long from, long to)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509V3_CTX v;
	assert_non_null(x);
	assert_true(X509_set_version(x, 2));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), from));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), to));
	assert_true(X509_set_pubkey(x, key));
	X509_NAME *n = X509_get_subject_name(x);
	assert_true(X509_NAME_add_entry_by_txt(
	    n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0));
	assert_true(X509_set_issuer_name(
	    x, issuer != NULL ? X509_get_subject_name(issuer) : n));
	X509V3_set_ctx_nodb(&v);
	X509V3_set_ctx(&v, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	add_ext(x, &v, NID_basic_constraints,
	        eku != NULL ? "critical,CA:FALSE" : "critical,CA:TRUE");
	add_ext(x, &v, NID_key_usage,
	        eku != NULL ? "critical,digitalSignature"
	                    : "critical,keyCertSign,cRLSign");
	if (eku != NULL)
		add_ext(x, &v, NID_ext_key_usage, eku);
	assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key,
	                      EVP_sha256()) > 0);
	return x;
}

static void
write_pem(const char *name, X509 *x, EVP_PKEY *key)
{
	char path[128];
	FILE *f;
	snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_true(PEM_write_X509(f, x));
	fclose(f);
	if (key == NULL)
		return;
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_true(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
	fclose(f);
}

/* A leaf named cn, signed by ca, written as NAME.pem and NAME.key. */
static void
leaf(const char *name, const char *cn, X509 *ca, EVP_PKEY *ca_key,
     const char *eku, long from, long to)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	assert_non_null(k);
	X509 *x = make_cert(cn, k, ca, ca_key, eku, from, to);
	write_pem(name, x, k);
	X509_free(x);
	EVP_PKEY_free(k);
}

#define BOTH "serverAuth,clientAuth"

static void
make_certs(void)
{
	EVP_PKEY *ck = EVP_EC_gen("P-256"), *ok = EVP_EC_gen("P-256");
	assert_non_null(ck);
	assert_non_null(ok);
	X509 *ca = make_cert("qkdn test CA", ck, NULL, NULL, NULL, -DAY, DAY);
	X509 *other = make_cert("other CA", ok, NULL, NULL, NULL, -DAY, DAY);
	write_pem("ca", ca, NULL);
	write_pem("other-ca", other, NULL);
	leaf("A", "A", ca, ck, BOTH, -DAY, DAY);
	leaf("A-other", "A", other, ok, BOTH, -DAY, DAY);
	leaf("A-expired", "A", ca, ck, BOTH, -2 * DAY, -DAY);
	leaf("alice", "alice", ca, ck, "clientAuth", -DAY, DAY);
	leaf("alice-other", "alice", other, ok, "clientAuth", -DAY, DAY);
	X509_free(ca);
	X509_free(other);
	EVP_PKEY_free(ck);
	EVP_PKEY_free(ok);
}

static struct qkdn_sp_tls *
client_creds(const char *cert)
{
	char ca[128], c[128], k[128], why[256] = "";
	struct qkdn_sp_tls *t = NULL;
	path_of(ca, sizeof(ca), "ca.pem");
	snprintf(c, sizeof(c), "%s/%s.pem", dir, cert);
	snprintf(k, sizeof(k), "%s/%s.key", dir, cert);
	if (qkdn_sp_tls_new(&t, ca, c, k, why, sizeof(why)) != 0)
		fail_msg("credentials: %s", why);
	return t;
}

static int
group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/qkdn-sptls.XXXXXX");
	assert_non_null(mkdtemp(dir));
	make_certs();
	creds = client_creds("alice");
	return 0;
}

static int
group_teardown(void **state)
{
	static const char *const files[] = {
	    "ca.pem",        "other-ca.pem",    "A.pem",
	    "A.key",         "A-other.pem",     "A-other.key",
	    "A-expired.pem", "A-expired.key",   "alice.pem",
	    "alice.key",     "alice-other.pem", "alice-other.key"};
	char path[128];
	(void)state;
	qkdn_sp_tls_free(creds);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		path_of(path, sizeof(path), files[i]);
		unlink(path);
	}
	rmdir(dir);
	return 0;
}

/* The SP REP server: one thread accepting, one per connection. */

struct srv {
	SSL_CTX *ctx; /* NULL: plain tcp */
	int lfd;
	char url[64];
	pthread_t thread;
	int close_after;      /* close a connection after this many replies */
	int partial_on;       /* the request (1, 2, ...) answered in part */
	int partial_len;      /* with this many bytes of the reply */
	const uint8_t *fixed; /* reply payload; NULL: echo */
	size_t fixed_len;
	atomic_int conns, requests, closed, active;
};

struct srv_conn {
	struct srv *s;
	int fd;
	SSL *ssl;
};

static int
srv_io(struct srv_conn *c, int writing, uint8_t *p, size_t len)
{
	while (len > 0) {
		size_t n = 0;
		int ok;
		if (c->ssl != NULL)
			ok = writing ? SSL_write_ex(c->ssl, p, len, &n)
			             : SSL_read_ex(c->ssl, p, len, &n);
		else {
			ssize_t r = writing ? send(c->fd, p, len, MSG_NOSIGNAL)
			                    : recv(c->fd, p, len, 0);
			ok = r > 0;
			n = ok ? (size_t)r : 0;
		}
		if (!ok)
			return 0;
		p += n;
		len -= n;
	}
	return 1;
}

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Answer requests until the client goes or the server's rules end it. */
static void
srv_requests(struct srv_conn *c)
{
	struct srv *s = c->s;
	uint8_t head[8], *req, *rsp;
	for (int served = 0;;) {
		if (!srv_io(c, 0, head, 8))
			return;
		uint64_t len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | head[i];
		if (len < 4 || len > (1u << 20) || (req = malloc(len)) == NULL)
			return;
		if (!srv_io(c, 0, req, len)) {
			free(req);
			return;
		}
		int no = atomic_fetch_add(&s->requests, 1) + 1;
		size_t body = s->fixed != NULL ? s->fixed_len : len - 4;
		rsp = malloc(8 + 4 + body);
		put64(rsp, 4 + body);
		memcpy(rsp + 8, req, 4); /* the request ID */
		memcpy(rsp + 12, s->fixed != NULL ? s->fixed : req + 4, body);
		free(req);
		/* part of the reply, then gone */
		int ok = srv_io(c, 1, rsp,
		                no == s->partial_on ? (size_t)s->partial_len
		                                    : 12 + body);
		free(rsp);
		if (!ok || no == s->partial_on ||
		    (s->close_after > 0 && ++served >= s->close_after))
			return;
	}
}

static void *
srv_conn_main(void *arg)
{
	struct srv_conn *c = arg;
	static const uint8_t rep[8] = {0, 'S', 'P', 0, 0, 0x31, 0, 0};
	uint8_t hello[8];
	struct timeval tv = {5, 0};
	int up = 0;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (c->s->ctx != NULL && (c->ssl = SSL_new(c->s->ctx)) != NULL) {
		SSL_set_fd(c->ssl, c->fd);
		up = SSL_accept(c->ssl) == 1;
	}
	if ((c->s->ctx == NULL || up) && srv_io(c, 0, hello, 8) &&
	    hello[5] == 0x30 && srv_io(c, 1, (uint8_t *)rep, 8))
		srv_requests(c);
	if (c->ssl != NULL) {
		if (up)
			SSL_shutdown(c->ssl); /* close_notify, as a server
			                         closing an idle one would */
		SSL_free(c->ssl);
	}
	close(c->fd);
	atomic_fetch_add(&c->s->closed, 1);
	atomic_fetch_sub(&c->s->active, 1);
	free(c);
	ERR_clear_error();
	return NULL;
}

static void *
srv_main(void *arg)
{
	struct srv *s = arg;
	for (;;) {
		int fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			return NULL; /* shut down */
		struct srv_conn *c = calloc(1, sizeof(*c));
		pthread_t t;
		c->s = s;
		c->fd = fd;
		atomic_fetch_add(&s->conns, 1);
		atomic_fetch_add(&s->active, 1);
		if (pthread_create(&t, NULL, srv_conn_main, c) != 0)
			abort();
		pthread_detach(t);
	}
}

/* Start a server on a loopback port; cert NULL: plain tcp, else
 * NAME.pem / NAME.key, and clients must show a certificate of ca.pem. */
static void
srv_start(struct srv *s, const char *cert)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	char c[128], k[128], ca[128];
	sigset_t pipe, old;
	if (cert != NULL) {
		snprintf(c, sizeof(c), "%s/%s.pem", dir, cert);
		snprintf(k, sizeof(k), "%s/%s.key", dir, cert);
		path_of(ca, sizeof(ca), "ca.pem");
		assert_non_null(s->ctx = SSL_CTX_new(TLS_server_method()));
		assert_true(SSL_CTX_use_certificate_chain_file(s->ctx, c));
		assert_true(
		    SSL_CTX_use_PrivateKey_file(s->ctx, k, SSL_FILETYPE_PEM));
		assert_true(SSL_CTX_load_verify_file(s->ctx, ca));
		SSL_CTX_set_verify(
		    s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
		    NULL);
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((s->lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->lfd, 16), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sa, &len), 0);
	snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%u",
	         cert != NULL ? "tls+tcp" : "tcp", ntohs(sa.sin_port));
	/* the server's threads never die of SIGPIPE; the client (this
	 * thread) keeps it, so a write to a closed connection by the
	 * client would kill the test */
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, &old);
	assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Wait up to 3 s for a counter to reach n. */
static int
wait_count(atomic_int *v, int n)
{
	uint64_t end = qkdn_now_ms() + 3000;
	while (atomic_load(v) < n && qkdn_now_ms() < end) {
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	return atomic_load(v) >= n;
}

static void
srv_stop(struct srv *s)
{
	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->thread, NULL);
	close(s->lfd);
	uint64_t end = qkdn_now_ms() + 6000;
	while (atomic_load(&s->active) > 0 && qkdn_now_ms() < end) {
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(atomic_load(&s->active), 0);
	SSL_CTX_free(s->ctx);
}

/* The client side */

static int
dial(struct qkdn_sp_conn *c, const struct srv *s, struct qkdn_sp_tls *t,
     const char *peer)
{
	memset(c, 0, sizeof(*c));
	c->tls = t;
	c->peer_name = peer;
	return qkdn_sp_connect_once(c, s->url, qkdn_now_ms() + 3000);
}

static int
ask(struct qkdn_sp_conn *c, const char *text)
{
	uint8_t *rsp = NULL;
	size_t len = 0;
	int rv = qkdn_sp_call(c, (const uint8_t *)text, strlen(text), &rsp,
	                      &len, 1024, qkdn_now_ms() + 3000);
	if (rv == 0 && (len != strlen(text) || memcmp(rsp, text, len) != 0))
		rv = QKDN_E_BAD_REQUEST;
	free(rsp);
	return rv;
}

static void
has_reason(const char *want)
{
	if (strstr(qkdn_sp_last_error(), want) == NULL)
		fail_msg("reason '%s' lacks '%s'", qkdn_sp_last_error(), want);
}

static void
test_tls_round_trip(void **state)
{
	struct srv s = {0};
	struct qkdn_sp_conn c;
	(void)state;
	srv_start(&s, "A");
	assert_int_equal(dial(&c, &s, creds, "A"), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(ask(&c, i % 2 ? "ping" : "a longer request"),
		                 0);
	qkdn_sp_close(&c);
	/* no expected name: any server certificate of the CA */
	assert_int_equal(dial(&c, &s, creds, NULL), 0);
	assert_int_equal(ask(&c, "any"), 0);
	qkdn_sp_close(&c);
	srv_stop(&s);
	assert_int_equal(atomic_load(&s.conns), 2);
}

/* Each refusal: the code, the reason, and the server's counts. */
static void
refused(const char *server_cert, struct qkdn_sp_tls *t, const char *peer,
        int code, const char *reason)
{
	struct srv s = {0};
	struct qkdn_sp_conn c;
	srv_start(&s, server_cert);
	assert_int_equal(dial(&c, &s, t, peer), code);
	assert_int_equal(c.fd, -1);
	has_reason(reason);
	srv_stop(&s);
	assert_int_equal(atomic_load(&s.requests), 0);
}

static void
test_wrong_ca(void **state)
{
	(void)state;
	refused("A-other", creds, "A", QKDN_E_AUTH_FAILED,
	        "certificate verify failed: unable to get local issuer "
	        "certificate");
}

static void
test_expired(void **state)
{
	(void)state;
	refused("A-expired", creds, "A", QKDN_E_AUTH_FAILED,
	        "certificate verify failed: certificate has expired");
}

static void
test_wrong_name(void **state)
{
	(void)state;
	refused("A", creds, "B", QKDN_E_AUTH_FAILED,
	        "the server's certificate names A, expected B");
	refused("A", creds, "AA", QKDN_E_AUTH_FAILED,
	        "the server's certificate names A, expected AA");
}

/* An SAE's certificate (clientAuth only) cannot act as a server. */
static void
test_sae_cert_as_server(void **state)
{
	(void)state;
	refused("alice", creds, NULL, QKDN_E_AUTH_FAILED,
	        "certificate verify failed: unsuitable certificate purpose");
}

/* The server refuses a client certificate of another CA: TLS 1.3 tells
 * the client only after its handshake, on the first read. */
static void
test_client_cert_refused(void **state)
{
	struct qkdn_sp_tls *t = client_creds("alice-other");
	struct qkdn_sp_conn c;
	struct srv s = {0};
	(void)state;
	srv_start(&s, "A");
	/* the server's alert, or (when its close resets the connection
	 * before the alert is read) the hint */
	for (int i = 0; i < 5; i++) {
		int rv = dial(&c, &s, t, "A");
		if (rv == QKDN_E_AUTH_FAILED)
			has_reason("the server refused the TLS connection: "
			           "tlsv1 alert unknown ca");
		else if (rv == QKDN_E_UNREACHABLE)
			has_reason("right after the TLS handshake");
		else
			fail_msg("dial: %d (%s)", rv, qkdn_sp_last_error());
	}
	srv_stop(&s);
	assert_int_equal(atomic_load(&s.requests), 0);
	qkdn_sp_tls_free(t);
}

static void
test_no_credentials(void **state)
{
	char why[256], ca[128], missing[128];
	struct qkdn_sp_tls *t = NULL;
	(void)state;
	refused("A", NULL, "A", QKDN_E_CONFIG, "needs TLS credentials");
	path_of(ca, sizeof(ca), "ca.pem");
	path_of(missing, sizeof(missing), "none.pem");
	assert_int_equal(
	    qkdn_sp_tls_new(&t, ca, missing, missing, why, sizeof(why)),
	    QKDN_E_CONFIG);
	assert_null(t);
	assert_non_null(strstr(why, "cannot load the certificate"));
	assert_int_equal(qkdn_sp_tls_new(&t, ca, NULL, NULL, why, sizeof(why)),
	                 QKDN_E_CONFIG);
}

/* The application's queue, before and after, entry for entry (libssl
 * itself clears the queue at each handshake step). */
static void
raise_app_errors(void)
{
	ERR_raise_data(ERR_LIB_USER, 77, "the application's own");
	ERR_raise(ERR_LIB_SYS, ENOENT);
	ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
}

static void
check_app_errors(void)
{
	const char *data = NULL, *file = NULL;
	int flags = 0, line = 0;
	unsigned long e = ERR_get_error_all(&file, &line, NULL, &data, &flags);
	assert_int_equal(ERR_GET_LIB(e), ERR_LIB_USER);
	assert_int_equal(ERR_GET_REASON(e), 77);
	assert_string_equal(data, "the application's own");
	if (strstr(file, "test_sp_tls.c") == NULL)
		fail_msg("file [%s] line %d", file, line);
	e = ERR_get_error();
	assert_true(ERR_SYSTEM_ERROR(e));
	assert_int_equal(ERR_GET_REASON(e), ENOENT);
	assert_int_equal(ERR_get_error(),
	                 ERR_PACK(ERR_LIB_SSL, 0, SSL_R_BAD_LENGTH));
	assert_int_equal(ERR_get_error(), 0);
}

static void
test_error_queue_untouched(void **state)
{
	struct srv s = {0}, bad = {0};
	struct qkdn_sp_conn c;
	(void)state;
	srv_start(&s, "A");
	srv_start(&bad, "A-expired");
	/* an empty queue stays empty */
	ERR_clear_error();
	assert_int_equal(dial(&c, &bad, creds, "A"), QKDN_E_AUTH_FAILED);
	assert_int_equal(ERR_peek_error(), 0);
	assert_int_equal(dial(&c, &s, creds, "B"), QKDN_E_AUTH_FAILED);
	assert_int_equal(ERR_peek_error(), 0);
	/* one with entries keeps them, after failures and after a
	 * connection that works */
	raise_app_errors();
	assert_int_equal(dial(&c, &bad, creds, "A"), QKDN_E_AUTH_FAILED);
	check_app_errors();
	raise_app_errors();
	assert_int_equal(dial(&c, &s, creds, "A"), 0);
	assert_int_equal(ask(&c, "hello"), 0);
	qkdn_sp_close(&c);
	check_app_errors();
	srv_stop(&s);
	srv_stop(&bad);
}

/* The server closes a connection after its first reply, as it would an
 * idle one: the next call on it goes out once, on a fresh connection. */
static void
stale_retried(const char *cert)
{
	struct srv s = {.close_after = 1};
	struct qkdn_sp_conn c;
	srv_start(&s, cert);
	assert_int_equal(dial(&c, &s, cert ? creds : NULL, cert ? "A" : NULL),
	                 0);
	assert_int_equal(ask(&c, "one"), 0);
	assert_true(wait_count(&s.closed, 1)); /* closed while idle */
	assert_int_equal(ask(&c, "two"), 0);
	assert_int_equal(atomic_load(&s.conns), 2);
	assert_int_equal(atomic_load(&s.requests), 2);
	qkdn_sp_close(&c);
	srv_stop(&s);
}

static void
test_stale_tls_retried(void **state)
{
	(void)state;
	stale_retried("A");
}

static void
test_stale_tcp_retried(void **state)
{
	(void)state;
	stale_retried(NULL);
}

/* The server takes request `on` and closes after `bytes` bytes of the
 * reply: the request is never sent again (after part of a reply, or on a
 * connection that completed no call: the server may have seen it). */
static void
not_resent(const char *cert, int on, int bytes)
{
	struct srv s = {.partial_on = on, .partial_len = bytes};
	struct qkdn_sp_conn c;
	srv_start(&s, cert);
	assert_int_equal(dial(&c, &s, cert ? creds : NULL, cert ? "A" : NULL),
	                 0);
	for (int i = 1; i < on; i++)
		assert_int_equal(ask(&c, "fine"), 0);
	assert_int_equal(ask(&c, "cut"), QKDN_E_UNREACHABLE);
	qkdn_sp_close(&c);
	srv_stop(&s);
	assert_int_equal(atomic_load(&s.requests), on);
	assert_int_equal(atomic_load(&s.conns), 1);
}

static void
test_partial_reply_not_resent(void **state)
{
	(void)state;
	not_resent("A", 2, 5);
	not_resent(NULL, 2, 5);
	not_resent("A", 2, 11); /* all but the last byte */
	not_resent("A", 1, 0);
	not_resent(NULL, 1, 0);
}

/* A child drops the connection it inherited without writing to it (a
 * close_notify or any record would end the parent's session), then
 * makes its own. */
static void
test_fork_drops_tls(void **state)
{
	struct srv s = {0};
	struct qkdn_sp_conn c;
	(void)state;
	srv_start(&s, "A");
	assert_int_equal(dial(&c, &s, creds, "A"), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct qkdn_sp_conn own;
		qkdn_sp_close(&c);
		int ok =
		    dial(&own, &s, creds, "A") == 0 && ask(&own, "kid") == 0;
		qkdn_sp_close(&own);
		_exit(ok ? 0 : 1);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* no call done yet on c: a broken session would not be retried */
	assert_int_equal(ask(&c, "dad"), 0);
	qkdn_sp_close(&c);
	srv_stop(&s);
	assert_int_equal(atomic_load(&s.conns), 2);
}

/* The Ak API: options in, reasons out. */

static void
encode_status(struct qkdn_buf *b)
{
	struct qkdn_msg m = {.type = QKDN_STATUS_RSP};
	snprintf(m.u.status_rsp.node, sizeof(m.u.status_rsp.node), "A");
	m.u.status_rsp.keys_supplied = 7;
	assert_int_equal(qkdn_msg_encode(&m, qkdn_buf_write, b), 0);
}

static void
test_ak_tls(void **state)
{
	struct qkdn_buf b = {0};
	struct srv s = {0};
	struct qkdn_ak *ak;
	struct qkdn_ak_status st;
	char ca[128], cert[128], key[128];
	(void)state;
	encode_status(&b);
	s.fixed = b.data;
	s.fixed_len = b.len;
	srv_start(&s, "A");
	path_of(ca, sizeof(ca), "ca.pem");
	path_of(cert, sizeof(cert), "alice.pem");
	path_of(key, sizeof(key), "alice.key");
	struct qkdn_ak_opts o = {.timeout_ms = 3000,
	                         .ca = ca,
	                         .cert = cert,
	                         .key = key,
	                         .km_name = "A"};
	assert_int_equal(qkdn_ak_open_opts(&ak, s.url, "alice", &o), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(qkdn_ak_status(ak, &st), 0);
		assert_string_equal(st.node, "A");
		assert_int_equal(st.supplied, 7);
		qkdn_ak_status_free(&st);
	}
	qkdn_ak_close(ak);
	/* the wrong KM: refused, the reason reachable */
	o.km_name = "B";
	assert_int_equal(qkdn_ak_open_opts(&ak, s.url, "alice", &o), 0);
	assert_int_equal(qkdn_ak_status(ak, &st), QKDN_E_AUTH_FAILED);
	assert_non_null(strstr(qkdn_ak_last_error(),
	                       "the server's certificate names A, expected B"));
	qkdn_ak_close(ak);
	/* no credentials, or a file that is not there: at open */
	assert_int_equal(qkdn_ak_open(&ak, s.url, "alice", 1000),
	                 QKDN_E_CONFIG);
	assert_non_null(strstr(qkdn_ak_last_error(), "needs a CA"));
	o.ca = "/nonexistent/ca.pem";
	assert_int_equal(qkdn_ak_open_opts(&ak, s.url, "alice", &o),
	                 QKDN_E_CONFIG);
	assert_non_null(strstr(qkdn_ak_last_error(), "cannot load the CA"));
	srv_stop(&s);
	qkdn_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tls_round_trip),
	    cmocka_unit_test(test_wrong_ca),
	    cmocka_unit_test(test_expired),
	    cmocka_unit_test(test_wrong_name),
	    cmocka_unit_test(test_sae_cert_as_server),
	    cmocka_unit_test(test_client_cert_refused),
	    cmocka_unit_test(test_no_credentials),
	    cmocka_unit_test(test_error_queue_untouched),
	    cmocka_unit_test(test_stale_tls_retried),
	    cmocka_unit_test(test_stale_tcp_retried),
	    cmocka_unit_test(test_partial_reply_not_resent),
	    cmocka_unit_test(test_fork_drops_tls),
	    cmocka_unit_test(test_ak_tls),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
