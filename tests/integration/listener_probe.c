/* Client side of the listener tests (test_listener_limits.sh): plain SP
 * over ipc:// and tcp://, SP inside TLS over tls+tcp:// (own OpenSSL code,
 * so it does not depend on libqkdn's client), and a maker of an expired
 * certificate (the openssl CLI of 3.0 cannot backdate one).
 *
 * --delay N: ask srv_echo to answer N ms late.
 *
 *   listener_probe status URL [TLS] [--delay N]  one status call: prints
 *       the reply's node field, or "refused: why" and exits 1
 *   listener_probe cap URL N [TLS] [--hold MS]  hold N connections, then
 *       one call on each (an ERROR reply is an answer), then hold the
 *       answered ones MS longer: "answered=A refused=R slowest_refusal_ms=T"
 *   listener_probe idle URL [TLS] [--delay N]  one call, then wait for the
 *       server to close: "closed_after_ms=T" (from the reply) or "open"
 *   listener_probe busy URL MS EVERY [TLS]  a call every EVERY ms for MS:
 *       "answered=A" and exit 1 on the first failure
 *   listener_probe silent URL           connect, send nothing:
 *       "closed_after_ms=T"
 *   listener_probe oversize URL BYTES [TLS]  announce a frame of BYTES:
 *       "closed" if the server closes without reading it
 *   listener_probe badproto URL [TLS]   an SP header of a PAIR socket:
 *       "closed" if refused
 *   listener_probe spoof URL NAME       a tcp:// request whose payload
 *       starts with the internal identity prefix: prints the reply
 *   listener_probe mkexpired CA CAKEY OUT OUTKEY CN
 *
 * TLS: --ca F --cert F --key F (client certificate optional). */
#include "qkdn_msg.h"
#include "qkdn_rpc.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CALL_MS 4000

struct opts {
	const char *ca, *cert, *key;
	uint32_t flags;
	int hold_ms;
};

struct pconn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	int ipc;
	uint32_t next_id;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
set_timeout(int fd, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int
open_fd(const char *url, int *ipc)
{
	int fd;
	*ipc = 0;
	if (strncmp(url, "ipc://", 6) == 0) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", url + 6);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (void *)&sa, sizeof(sa)) != 0) {
			close(fd);
			return -1;
		}
		*ipc = 1;
		return fd;
	}
	const char *hp = strstr(url, "://") + 3, *colon = strrchr(hp, ':');
	char host[256];
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hp), hp);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static void
ssl_why(char *why, size_t len, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	snprintf(why, len, "%s: %s", what,
	         e != 0 && ERR_reason_error_string(e) != NULL
	             ? ERR_reason_error_string(e)
	             : "connection closed");
	ERR_clear_error();
}

/* 0, -1 closed or failed, -2 timed out */
static int
pc_io(struct pconn *c, void *buf, size_t len, bool wr, int ms)
{
	unsigned char *p = buf;
	set_timeout(c->fd, ms);
	while (len > 0) {
		ssize_t n;
		if (c->ssl != NULL) {
			size_t got = 0;
			int rv = wr ? SSL_write_ex(c->ssl, p, len, &got)
			            : SSL_read_ex(c->ssl, p, len, &got);
			if (rv != 1) {
				int e = SSL_get_error(c->ssl, rv);
				return e == SSL_ERROR_WANT_READ ||
				               e == SSL_ERROR_WANT_WRITE
				           ? -2
				           : -1;
			}
			n = (ssize_t)got;
		} else {
			n = wr ? send(c->fd, p, len, MSG_NOSIGNAL)
			       : recv(c->fd, p, len, 0);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return -2;
			if (n <= 0)
				return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
tls_setup(struct pconn *c, const struct opts *o, char *why, size_t len)
{
	c->ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	if (SSL_CTX_load_verify_file(c->ctx, o->ca) != 1 ||
	    (o->cert != NULL &&
	     SSL_CTX_use_certificate_chain_file(c->ctx, o->cert) != 1) ||
	    (o->key != NULL && SSL_CTX_use_PrivateKey_file(
	                           c->ctx, o->key, SSL_FILETYPE_PEM) != 1)) {
		ssl_why(why, len, "client credentials");
		return -1;
	}
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	c->ssl = SSL_new(c->ctx);
	SSL_set_fd(c->ssl, c->fd);
	set_timeout(c->fd, CALL_MS);
	if (SSL_connect(c->ssl) != 1) {
		ssl_why(why, len, "TLS handshake");
		return -1;
	}
	return 0;
}

static void
pc_close(struct pconn *c)
{
	SSL_free(c->ssl);
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Connect, TLS if the url says so, and exchange SP headers (proto). */
static int
pc_connect(struct pconn *c, const char *url, const struct opts *o, int proto,
           char *why, size_t len)
{
	unsigned char hello[8] = {0, 'S', 'P', 0, 0, (unsigned char)proto,
	                          0, 0},
	              peer[8];
	memset(c, 0, sizeof(*c));
	c->next_id = 0x80000001u;
	if ((c->fd = open_fd(url, &c->ipc)) < 0) {
		snprintf(why, len, "cannot connect: %s", strerror(errno));
		return -1;
	}
	if (strncmp(url, "tls+tcp://", 10) == 0 &&
	    tls_setup(c, o, why, len) != 0)
		return -1;
	if (pc_io(c, hello, 8, true, CALL_MS) != 0 ||
	    pc_io(c, peer, 8, false, CALL_MS) != 0) {
		if (c->ssl != NULL)
			ssl_why(why, len, "closed at the SP header");
		else
			snprintf(why, len, "closed at the SP header");
		return -1;
	}
	return 0;
}

static void
put_be(unsigned char *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t
get_be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Send one payload as a request; the reply payload into out (malloc'd). */
static int
pc_call(struct pconn *c, const void *body, size_t blen, unsigned char **out,
        size_t *olen, char *why, size_t len)
{
	unsigned char head[13], *h = head;
	uint32_t id = c->next_id++ | 0x80000000u;
	if (c->ipc)
		*h++ = 1;
	put_be(h, blen + 4, 8);
	put_be(h + 8, id, 4);
	size_t hl = (size_t)(h - head) + 12;
	int rv;
	if ((rv = pc_io(c, head, hl, true, CALL_MS)) != 0 ||
	    (rv = pc_io(c, (void *)body, blen, true, CALL_MS)) != 0 ||
	    (rv = pc_io(c, head, hl - 4, false, CALL_MS)) != 0) {
		if (c->ssl != NULL && rv == -1)
			ssl_why(why, len, "closed by the server");
		else
			snprintf(why, len, "%s",
			         rv == -2 ? "timed out"
			                  : "closed by the server");
		return -1;
	}
	uint64_t n = get_be(h, 8);
	unsigned char *b = n >= 4 && n < (1u << 20) ? malloc(n) : NULL;
	if (b == NULL || pc_io(c, b, n, false, CALL_MS) != 0 ||
	    get_be(b, 4) != id) {
		free(b);
		snprintf(why, len, "bad reply");
		return -1;
	}
	memmove(b, b + 4, n - 4);
	*out = b;
	*olen = n - 4;
	return 0;
}

/* A status call: 0 and the node field, 1 for an ERROR reply (answered,
 * though: Kx does not serve status) or -1 (no answer), with why. */
static int
status_call(struct pconn *c, uint32_t flags, char *node, char *why, size_t len)
{
	/* srv_echo answers a req_id N > 1 N ms late */
	struct qkdn_msg m = {.type = QKDN_STATUS_REQ,
	                     .req_id = flags > 1 ? flags : 1};
	nng_msg *nm;
	if (qkdn_rpc_pack(&m, &nm) != 0) {
		snprintf(why, len, "cannot encode");
		return -1;
	}
	unsigned char *rsp;
	size_t rl;
	int rv =
	    pc_call(c, nng_msg_body(nm), nng_msg_len(nm), &rsp, &rl, why, len);
	nng_msg_free(nm);
	if (rv != 0)
		return -1;
	struct qkdn_msg r;
	struct qkdn_decode_error err;
	rv = qkdn_msg_decode(rsp, rl, &r, &err);
	free(rsp);
	if (rv != 0) {
		snprintf(why, len, "undecodable reply: %s", err.reason);
		return -1;
	}
	if (r.type == QKDN_ERROR) {
		snprintf(why, len, "error reply: %s", r.u.error.reason);
		rv = 1;
	} else if (r.type == QKDN_ACK) {
		/* a KM's Kx answers a status request (its peers' liveness
		 * probe) with a bare acknowledgement */
		snprintf(node, QKDN_NAME_MAX, "(ack)");
	} else if (r.type != QKDN_STATUS_RSP) {
		snprintf(why, len, "unexpected reply type %u", r.type);
		rv = -1;
	} else {
		snprintf(node, QKDN_NAME_MAX, "%s", r.u.status_rsp.node);
	}
	qkdn_msg_clear(&r);
	return rv;
}

static int
parse_opts(int argc, char **argv, int from, struct opts *o)
{
	for (int i = from; i < argc; i++) {
		if (i + 1 >= argc)
			return -1;
		if (strcmp(argv[i], "--ca") == 0)
			o->ca = argv[++i];
		else if (strcmp(argv[i], "--cert") == 0)
			o->cert = argv[++i];
		else if (strcmp(argv[i], "--key") == 0)
			o->key = argv[++i];
		else if (strcmp(argv[i], "--delay") == 0)
			o->flags = (uint32_t)atoi(argv[++i]);
		else if (strcmp(argv[i], "--hold") == 0)
			o->hold_ms = atoi(argv[++i]);
		else
			return -1;
	}
	return 0;
}

static int
cmd_status(const char *url, const struct opts *o)
{
	struct pconn c;
	char why[512], node[QKDN_NAME_MAX];
	int rv = pc_connect(&c, url, o, 0x30, why, sizeof(why));
	if (rv == 0)
		rv = status_call(&c, o->flags, node, why, sizeof(why));
	pc_close(&c);
	if (rv != 0) {
		printf("refused: %s\n", why);
		return 1;
	}
	printf("%s\n", node);
	return 0;
}

static int
cmd_cap(const char *url, int n, const struct opts *o)
{
	struct pconn *cs = calloc((size_t)n, sizeof(*cs));
	bool *up = calloc((size_t)n, sizeof(*up));
	char why[512], node[QKDN_NAME_MAX];
	int answered = 0, refused = 0;
	uint64_t slowest = 0;
	for (int i = 0; i < n; i++)
		up[i] = pc_connect(&cs[i], url, o, 0x30, why, sizeof(why)) == 0;
	struct timespec ts = {0, 300 * 1000000L}; /* the server counts */
	nanosleep(&ts, NULL);
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now_ms();
		if (up[i] &&
		    status_call(&cs[i], 0, node, why, sizeof(why)) >= 0) {
			answered++;
			continue;
		}
		refused++;
		if (now_ms() - t0 > slowest)
			slowest = now_ms() - t0;
	}
	printf("answered=%d refused=%d slowest_refusal_ms=%llu\n", answered,
	       refused, (unsigned long long)slowest);
	fflush(stdout);
	ts.tv_sec = o->hold_ms / 1000; /* others try the listener meanwhile */
	ts.tv_nsec = (long)(o->hold_ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
	for (int i = 0; i < n; i++)
		pc_close(&cs[i]);
	free(cs);
	free(up);
	return 0;
}

/* Wait until the server closes c: ms waited, or -1 after limit_ms. */
static long
wait_close(struct pconn *c, int limit_ms)
{
	uint64_t t0 = now_ms();
	unsigned char b;
	while (now_ms() - t0 < (uint64_t)limit_ms) {
		int rv = pc_io(c, &b, 1, false, 200);
		if (rv == -1 || rv == 0) /* 0: unexpected data, treat alike */
			return (long)(now_ms() - t0);
	}
	return -1;
}

static int
cmd_idle(const char *url, const struct opts *o)
{
	struct pconn c;
	char why[512], node[QKDN_NAME_MAX];
	if (pc_connect(&c, url, o, 0x30, why, sizeof(why)) != 0 ||
	    status_call(&c, o->flags, node, why, sizeof(why)) != 0) {
		printf("refused: %s\n", why);
		pc_close(&c);
		return 1;
	}
	long ms = wait_close(&c, 15000);
	pc_close(&c);
	if (ms < 0)
		printf("open\n");
	else
		printf("closed_after_ms=%ld\n", ms);
	return 0;
}

static int
cmd_busy(const char *url, int total_ms, int every, const struct opts *o)
{
	struct pconn c;
	char why[512], node[QKDN_NAME_MAX];
	int answered = 0;
	uint64_t end = now_ms() + (uint64_t)total_ms;
	if (pc_connect(&c, url, o, 0x30, why, sizeof(why)) != 0) {
		printf("refused: %s\n", why);
		return 1;
	}
	while (now_ms() < end) {
		if (status_call(&c, 0, node, why, sizeof(why)) != 0) {
			printf("answered=%d then refused: %s\n", answered, why);
			pc_close(&c);
			return 1;
		}
		answered++;
		struct timespec ts = {every / 1000,
		                      (long)(every % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	pc_close(&c);
	printf("answered=%d\n", answered);
	return 0;
}

static int
cmd_silent(const char *url)
{
	struct pconn c = {.fd = -1};
	if ((c.fd = open_fd(url, &c.ipc)) < 0) {
		printf("refused: cannot connect\n");
		return 1;
	}
	long ms = wait_close(&c, 15000);
	pc_close(&c);
	printf(ms < 0 ? "open\n" : "closed_after_ms=%ld\n", ms);
	return 0;
}

static int
cmd_oversize(const char *url, uint64_t bytes, const struct opts *o)
{
	struct pconn c;
	char why[512];
	unsigned char head[12];
	if (pc_connect(&c, url, o, 0x30, why, sizeof(why)) != 0) {
		printf("refused: %s\n", why);
		return 1;
	}
	put_be(head, bytes, 8);
	put_be(head + 8, 0x80000001u, 4);
	int rv = pc_io(&c, head, sizeof(head), true, CALL_MS);
	long ms = rv == 0 ? wait_close(&c, 3000) : 0;
	pc_close(&c);
	printf(ms < 0 ? "open\n" : "closed\n");
	return 0;
}

static int
cmd_badproto(const char *url, const struct opts *o)
{
	struct pconn c;
	char why[512];
	int rv = pc_connect(&c, url, o, 0x10, why, sizeof(why));
	long ms = rv == 0 ? wait_close(&c, 3000) : 0;
	pc_close(&c);
	printf(ms < 0 ? "open\n" : "closed\n");
	return 0;
}

/* A request shaped like the front's internal format, sent over plain
 * tcp://: the server must not take the name from it. */
static int
cmd_spoof(const char *url, const char *name)
{
	struct opts o = {0};
	struct pconn c;
	char why[512];
	struct qkdn_msg m = {.type = QKDN_STATUS_REQ, .req_id = 7};
	nng_msg *nm;
	if (pc_connect(&c, url, &o, 0x30, why, sizeof(why)) != 0 ||
	    qkdn_rpc_pack(&m, &nm) != 0) {
		printf("refused: %s\n", why);
		return 1;
	}
	size_t nl = strlen(name), len = 5 + nl + nng_msg_len(nm);
	unsigned char *b = malloc(len), *rsp;
	memcpy(b, "QKID", 4);
	b[4] = (unsigned char)nl;
	memcpy(b + 5, name, nl);
	memcpy(b + 5 + nl, nng_msg_body(nm), nng_msg_len(nm));
	nng_msg_free(nm);
	size_t rl;
	int rv = pc_call(&c, b, len, &rsp, &rl, why, sizeof(why));
	free(b);
	pc_close(&c);
	if (rv != 0) {
		printf("refused: %s\n", why);
		return 0;
	}
	struct qkdn_msg r;
	struct qkdn_decode_error err;
	if (qkdn_msg_decode(rsp, rl, &r, &err) != 0)
		printf("undecodable reply\n");
	else if (r.type == QKDN_STATUS_RSP)
		printf("status node=%s\n", r.u.status_rsp.node);
	else if (r.type == QKDN_ERROR)
		printf("error: %s\n", r.u.error.reason);
	qkdn_msg_clear(&r);
	free(rsp);
	return 0;
}

static void *
read_pem(const char *path, bool key)
{
	FILE *f = fopen(path, "r");
	void *v = NULL;
	if (f != NULL) {
		v = key ? (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL)
		        : (void *)PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	return v;
}

/* A client certificate (EKU clientAuth) that expired yesterday. */
static int
cmd_mkexpired(char **a)
{
	X509 *ca = read_pem(a[0], false), *x = X509_new();
	EVP_PKEY *cakey = read_pem(a[1], true);
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509V3_CTX v3;
	int ok = ca != NULL && cakey != NULL && k != NULL && x != NULL;
	if (ok) {
		X509_set_version(x, X509_VERSION_3);
		ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
		X509_gmtime_adj(X509_getm_notBefore(x), -2 * 86400);
		X509_gmtime_adj(X509_getm_notAfter(x), -86400);
		X509_NAME_add_entry_by_txt(
		    X509_get_subject_name(x), "CN", MBSTRING_UTF8,
		    (const unsigned char *)a[4], -1, -1, 0);
		X509_set_issuer_name(x, X509_get_subject_name(ca));
		X509_set_pubkey(x, k);
		X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
		X509_EXTENSION *e = X509V3_EXT_conf_nid(
		    NULL, &v3, NID_ext_key_usage, "clientAuth");
		ok = e != NULL && X509_add_ext(x, e, -1) == 1 &&
		     X509_sign(x, cakey, EVP_sha256()) > 0;
		X509_EXTENSION_free(e);
	}
	FILE *fc = ok ? fopen(a[2], "w") : NULL,
	     *fk = ok ? fopen(a[3], "w") : NULL;
	ok = fc != NULL && fk != NULL && PEM_write_X509(fc, x) == 1 &&
	     PEM_write_PrivateKey(fk, k, NULL, NULL, 0, NULL, NULL) == 1;
	if (fc != NULL)
		fclose(fc);
	if (fk != NULL)
		fclose(fk);
	X509_free(ca);
	X509_free(x);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(k);
	if (!ok)
		fprintf(stderr, "listener_probe: cannot make %s\n", a[2]);
	return ok ? 0 : 1;
}

int
main(int argc, char **argv)
{
	struct opts o = {0};
	const char *cmd = argc > 1 ? argv[1] : "";
	signal(SIGPIPE, SIG_IGN); /* TLS writes to a closed connection */
	if (strcmp(cmd, "mkexpired") == 0 && argc == 7)
		return cmd_mkexpired(argv + 2);
	if (argc < 3)
		goto usage;
	const char *url = argv[2];
	if (strcmp(cmd, "status") == 0 && parse_opts(argc, argv, 3, &o) == 0)
		return cmd_status(url, &o);
	if (strcmp(cmd, "idle") == 0 && parse_opts(argc, argv, 3, &o) == 0)
		return cmd_idle(url, &o);
	if (strcmp(cmd, "silent") == 0)
		return cmd_silent(url);
	if (strcmp(cmd, "badproto") == 0 && parse_opts(argc, argv, 3, &o) == 0)
		return cmd_badproto(url, &o);
	if (strcmp(cmd, "spoof") == 0 && argc == 4)
		return cmd_spoof(url, argv[3]);
	if (argc < 4)
		goto usage;
	if (strcmp(cmd, "cap") == 0 && parse_opts(argc, argv, 4, &o) == 0)
		return cmd_cap(url, atoi(argv[3]), &o);
	if (strcmp(cmd, "oversize") == 0 && parse_opts(argc, argv, 4, &o) == 0)
		return cmd_oversize(url, strtoull(argv[3], NULL, 10), &o);
	if (strcmp(cmd, "busy") == 0 && argc >= 5 &&
	    parse_opts(argc, argv, 5, &o) == 0)
		return cmd_busy(url, atoi(argv[3]), atoi(argv[4]), &o);
usage:
	fprintf(stderr, "usage: see the header of listener_probe.c\n");
	return 2;
}
