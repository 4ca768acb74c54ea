#include "qkdn_tls_front.h"

#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nng/protocol/reqrep0/req.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define HANDSHAKE_MS   5000
#define SP_PROTO_REQ   0x30
#define SP_PROTO_REP   0x31
#define TLS_RECORD_HS  0x16 /* first byte of a TLS ClientHello record */
#define ID_MAGIC       "QKID"
#define ID_MAGIC_LEN   4
#define ACCEPT_POLL_MS 1000 /* finished connection threads joined */
#define CONN_STACK     (1u << 20)
#define ADDR_MAX       64

struct conn {
	struct qkdn_tls_front *f;
	int fd;
	SSL *ssl;
	pthread_t thread;
	bool done;           /* the thread has finished: join it */
	char addr[ADDR_MAX]; /* "host:port", for logs */
	char host[ADDR_MAX]; /* the per-host cap's key */
	char name[QKDN_TLS_NAME_MAX];
	struct conn *next;
};

struct qkdn_tls_front {
	struct qkdn_tls_front_config cfg;
	OSSL_LIB_CTX *libctx; /* own: never the application's providers */
	SSL_CTX *ctx;
	int lfd;     /* listening socket */
	int stop_fd; /* an eventfd, readable once stopping */
	pthread_t acceptor;
	bool acceptor_started;
	nng_socket req; /* one REQ socket to the inproc listener */
	bool req_open;
	pthread_mutex_t mtx; /* guards conns, n_live */
	struct conn *conns;
	int n_live; /* connections whose thread is still running */
	struct qkdn_log_limit idles; /* idle closes: any client causes them */
};

/* Outcome of an I/O step on a connection. */
enum io_rv { IO_OK, IO_TIMEOUT, IO_CLOSED, IO_STOPPED, IO_FAILED };

#define REFUSE(f, c, ...)                                                      \
	QLOG_LIMITED((f)->cfg.refusals, QKDN_LOG_WARN, (f)->cfg.log_src,       \
	             "refused a %s connection from %s: %s", (f)->cfg.name,     \
	             (c)->addr, __VA_ARGS__)

/* Wait for events on fd, or until deadline_ms or a stop. */
static enum io_rv
wait_fd(struct qkdn_tls_front *f, int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		uint64_t now = qkdn_now_ms();
		if (now >= deadline_ms)
			return IO_TIMEOUT;
		struct pollfd p[2] = {{.fd = fd, .events = events},
		                      {.fd = f->stop_fd, .events = POLLIN}};
		uint64_t left = deadline_ms - now;
		int rv = poll(p, 2, left > 60000 ? 60000 : (int)left);
		if (rv < 0 && errno != EINTR)
			return IO_FAILED;
		if (rv > 0 && p[1].revents != 0)
			return IO_STOPPED;
		if (rv > 0)
			return IO_OK;
	}
}

static uint64_t
deadline_in(int ms)
{
	return ms < 0 ? UINT64_MAX : qkdn_now_ms() + (uint64_t)ms;
}

/* Run one SSL operation to completion (non-blocking socket). */
static enum io_rv
ssl_step(struct conn *c, int rv, uint64_t deadline_ms)
{
	switch (SSL_get_error(c->ssl, rv)) {
	case SSL_ERROR_WANT_READ:
		return wait_fd(c->f, c->fd, POLLIN, deadline_ms);
	case SSL_ERROR_WANT_WRITE:
		return wait_fd(c->f, c->fd, POLLOUT, deadline_ms);
	case SSL_ERROR_ZERO_RETURN:
		return IO_CLOSED;
	case SSL_ERROR_SYSCALL:
		return IO_CLOSED; /* EOF or reset without close_notify */
	default:
		return IO_FAILED;
	}
}

static enum io_rv
tls_read(struct conn *c, void *buf, size_t len, uint64_t deadline_ms)
{
	unsigned char *p = buf;
	while (len > 0) {
		size_t n = 0;
		ERR_clear_error();
		int rv = SSL_read_ex(c->ssl, p, len, &n);
		if (rv == 1) {
			p += n;
			len -= n;
			continue;
		}
		enum io_rv io = ssl_step(c, rv, deadline_ms);
		if (io != IO_OK)
			return io;
	}
	return IO_OK;
}

static enum io_rv
tls_write(struct conn *c, const void *buf, size_t len, uint64_t deadline_ms)
{
	const unsigned char *p = buf;
	while (len > 0) {
		size_t n = 0;
		ERR_clear_error();
		int rv = SSL_write_ex(c->ssl, p, len, &n);
		if (rv == 1) {
			p += n;
			len -= n;
			continue;
		}
		enum io_rv io = ssl_step(c, rv, deadline_ms);
		if (io != IO_OK)
			return io;
	}
	return IO_OK;
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

/* Why a handshake failed, in the words an operator acts on. */
static void
handshake_reason(struct conn *c, char *why, size_t len)
{
	long vr = SSL_get_verify_result(c->ssl);
	unsigned long e = ERR_peek_last_error();
	if (vr != X509_V_OK)
		snprintf(why, len, "%s", X509_verify_cert_error_string(vr));
	else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
	         ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
		snprintf(why, len, "no certificate");
	else if (e != 0)
		snprintf(why, len, "TLS handshake failed: %s",
		         ERR_reason_error_string(e) != NULL
		             ? ERR_reason_error_string(e)
		             : "unknown error");
	else
		snprintf(why, len, "TLS handshake failed: connection closed");
	ERR_clear_error();
}

/* The subject CN of the verified leaf: exactly one, 1..63 bytes, no NUL. */
static bool
peer_cn(struct conn *c)
{
	X509 *peer = SSL_get0_peer_certificate(c->ssl);
	if (peer == NULL)
		return false;
	X509_NAME *nm = X509_get_subject_name(peer);
	int i = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
	if (i < 0 || X509_NAME_get_index_by_NID(nm, NID_commonName, i) >= 0)
		return false;
	unsigned char *utf8 = NULL;
	int n = ASN1_STRING_to_UTF8(
	    &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i)));
	bool ok = n > 0 && n < QKDN_TLS_NAME_MAX &&
	          memchr(utf8, 0, (size_t)n) == NULL;
	if (ok) {
		memcpy(c->name, utf8, (size_t)n);
		c->name[n] = 0;
	}
	OPENSSL_free(utf8);
	return ok;
}

/* A TLS client's first byte starts a handshake record; an SP client's is
 * the 0 of its header. Peeked, so OpenSSL still reads it. */
static bool
looks_like_tls(struct conn *c, uint64_t deadline_ms, enum io_rv *io)
{
	unsigned char b;
	for (;;) {
		ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
		if (n == 1) {
			*io = IO_OK;
			return b == TLS_RECORD_HS;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			*io = IO_CLOSED;
			return false;
		}
		if ((*io = wait_fd(c->f, c->fd, POLLIN, deadline_ms)) != IO_OK)
			return false;
	}
}

/* TLS handshake and the peer's identity; false (logged) if refused. */
static bool
handshake(struct conn *c)
{
	struct qkdn_tls_front *f = c->f;
	uint64_t deadline = qkdn_now_ms() + HANDSHAKE_MS;
	enum io_rv io;
	char why[256];
	if (!looks_like_tls(c, deadline, &io)) {
		if (io == IO_OK)
			REFUSE(f, c, "not a TLS client (plaintext?)");
		else if (io == IO_TIMEOUT)
			REFUSE(f, c, "handshake timed out");
		return false;
	}
	if ((c->ssl = SSL_new(f->ctx)) == NULL || !SSL_set_fd(c->ssl, c->fd)) {
		REFUSE(f, c, "out of memory for a TLS session");
		return false;
	}
	for (;;) {
		ERR_clear_error();
		int rv = SSL_accept(c->ssl);
		if (rv == 1)
			break;
		int e = SSL_get_error(c->ssl, rv);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			io =
			    wait_fd(f, c->fd,
			            e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
			            deadline);
			if (io == IO_TIMEOUT)
				REFUSE(f, c, "handshake timed out");
			if (io != IO_OK)
				return false;
			continue;
		}
		handshake_reason(c, why, sizeof(why));
		REFUSE(f, c, why);
		return false;
	}
	if (!peer_cn(c)) {
		REFUSE(f, c, "certificate has no usable subject CN");
		return false;
	}
	return true;
}

/* The SP header exchange inside TLS: the peer must be a REQ socket. */
static bool
sp_hello(struct conn *c)
{
	static const unsigned char ours[8] = {0, 'S',          'P', 0,
	                                      0, SP_PROTO_REP, 0,   0};
	unsigned char peer[8];
	uint64_t deadline = qkdn_now_ms() + HANDSHAKE_MS;
	if (tls_write(c, ours, sizeof(ours), deadline) != IO_OK)
		return false;
	enum io_rv io = tls_read(c, peer, sizeof(peer), deadline);
	if (io == IO_TIMEOUT)
		REFUSE(c->f, c, "handshake timed out (no SP header)");
	if (io != IO_OK)
		return false;
	if (memcmp(peer, "\0SP\0", 4) != 0 || peer[4] != 0 ||
	    peer[5] != SP_PROTO_REQ || peer[6] != 0 || peer[7] != 0) {
		REFUSE(c->f, c, "not an SP REQ peer");
		return false;
	}
	return true;
}

int
qkdn_tls_front_take_name(nng_msg *m, char *name)
{
	const unsigned char *p = nng_msg_body(m);
	size_t len = nng_msg_len(m);
	if (len < ID_MAGIC_LEN + 1 || memcmp(p, ID_MAGIC, ID_MAGIC_LEN) != 0)
		return QKDN_E_INTERNAL;
	size_t n = p[ID_MAGIC_LEN];
	if (n == 0 || n >= QKDN_TLS_NAME_MAX || len < ID_MAGIC_LEN + 1 + n)
		return QKDN_E_INTERNAL;
	memcpy(name, p + ID_MAGIC_LEN + 1, n);
	name[n] = 0;
	return nng_msg_trim(m, ID_MAGIC_LEN + 1 + n) == 0 ? 0 : QKDN_E_INTERNAL;
}

/* Read one request frame into a new message prefixed with the peer's
 * name. The length is checked before anything is allocated. */
static enum io_rv
read_request(struct conn *c, nng_msg **out, unsigned char id[4])
{
	struct qkdn_tls_front *f = c->f;
	unsigned char head[8];
	uint64_t deadline = deadline_in(f->cfg.idle_ms);
	enum io_rv io = tls_read(c, head, sizeof(head), deadline);
	if (io == IO_TIMEOUT)
		QLOG_LIMITED(&f->idles, QKDN_LOG_DEBUG, f->cfg.log_src,
		             "closed an idle %s connection from %s (%s)",
		             f->cfg.name, c->addr, c->name);
	if (io != IO_OK)
		return io;
	uint64_t n = get_be(head, 8);
	char why[128];
	if (n < 4 || n > f->cfg.recv_max) {
		snprintf(why, sizeof(why),
		         "a frame of %llu bytes (at most %zu, with a request "
		         "ID)",
		         (unsigned long long)n, f->cfg.recv_max);
		REFUSE(f, c, why);
		return IO_FAILED;
	}
	if ((io = tls_read(c, id, 4, deadline)) != IO_OK)
		return io;
	if ((id[0] & 0x80) == 0) {
		REFUSE(f, c, "a request ID without its top bit");
		return IO_FAILED;
	}
	size_t nl = strlen(c->name), pre = ID_MAGIC_LEN + 1 + nl;
	nng_msg *m;
	if (nng_msg_alloc(&m, pre + (size_t)(n - 4)) != 0)
		return IO_FAILED;
	unsigned char *b = nng_msg_body(m);
	memcpy(b, ID_MAGIC, ID_MAGIC_LEN);
	b[ID_MAGIC_LEN] = (unsigned char)nl;
	memcpy(b + ID_MAGIC_LEN + 1, c->name, nl);
	if ((io = tls_read(c, b + pre, (size_t)(n - 4), deadline)) != IO_OK) {
		sodium_memzero(b, nng_msg_len(m));
		nng_msg_free(m);
		return io;
	}
	*out = m;
	return IO_OK;
}

static void
free_wiped(nng_msg *m)
{
	if (m != NULL) {
		sodium_memzero(nng_msg_body(m), nng_msg_len(m));
		nng_msg_free(m);
	}
}

/* Hand a request to the REP server and wait for its reply. */
static int
forward(nng_ctx ctx, nng_aio *aio, nng_msg *req, nng_msg **rsp)
{
	nng_aio_set_msg(aio, req);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	int rv = nng_aio_result(aio);
	if (rv != 0) {
		free_wiped(req); /* still ours when the send failed */
		return rv;
	}
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) == 0)
		*rsp = nng_aio_get_msg(aio);
	return rv;
}

/* The reply frame: length (with the ID), the client's request ID, body. */
static enum io_rv
write_reply(struct conn *c, const unsigned char id[4], nng_msg *rsp)
{
	unsigned char head[12];
	size_t len = nng_msg_len(rsp);
	uint64_t deadline = deadline_in(c->f->cfg.idle_ms);
	put_be(head, len + 4, 8);
	memcpy(head + 8, id, 4);
	enum io_rv io = tls_write(c, head, sizeof(head), deadline);
	if (io == IO_OK)
		io = tls_write(c, nng_msg_body(rsp), len, deadline);
	return io;
}

/* Requests one at a time, each with the connection's identity. */
static void
serve_requests(struct conn *c)
{
	nng_ctx ctx;
	nng_aio *aio = NULL;
	if (nng_ctx_open(&ctx, c->f->req) != 0)
		return;
	nng_ctx_set_ms(ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if (nng_aio_alloc(&aio, NULL, NULL) == 0) {
		for (;;) {
			nng_msg *req = NULL, *rsp = NULL;
			unsigned char id[4];
			if (read_request(c, &req, id) != IO_OK ||
			    forward(ctx, aio, req, &rsp) != 0)
				break;
			enum io_rv io = write_reply(c, id, rsp);
			free_wiped(rsp);
			if (io != IO_OK)
				break;
		}
		nng_aio_free(aio);
	}
	nng_ctx_close(ctx);
}

static void *
conn_main(void *arg)
{
	struct conn *c = arg;
	struct qkdn_tls_front *f = c->f;
	if (handshake(c) && sp_hello(c)) {
		QLOG_DEBUG(f->cfg.log_src, "%s connection from %s as %s",
		           f->cfg.name, c->addr, c->name);
		serve_requests(c);
	}
	SSL_free(c->ssl); /* no close_notify: the peer sees the close */
	c->ssl = NULL;
	close(c->fd);
	c->fd = -1;
	ERR_clear_error();
	pthread_mutex_lock(&f->mtx);
	c->done = true;
	f->n_live--;
	pthread_mutex_unlock(&f->mtx);
	return NULL;
}

/* Join and free the connections whose thread has finished (all of them
 * when stopping: their threads end on the stop eventfd). */
static void
reap(struct qkdn_tls_front *f, bool all)
{
	struct conn *dead = NULL;
	pthread_mutex_lock(&f->mtx);
	for (struct conn **pp = &f->conns; *pp != NULL;) {
		struct conn *c = *pp;
		if (all || c->done) {
			*pp = c->next;
			c->next = dead;
			dead = c;
		} else {
			pp = &c->next;
		}
	}
	pthread_mutex_unlock(&f->mtx);
	while (dead != NULL) {
		struct conn *c = dead;
		dead = c->next;
		pthread_join(c->thread, NULL);
		free(c);
	}
}

static void
format_addr(const struct sockaddr_storage *sa, char *addr, char *host)
{
	char h[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, h, sizeof(h));
		port = ntohs(in->sin_port);
		snprintf(addr, ADDR_MAX, "%s:%u", h, port);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, h, sizeof(h));
		port = ntohs(in6->sin6_port);
		snprintf(addr, ADDR_MAX, "[%s]:%u", h, port);
	} else {
		snprintf(addr, ADDR_MAX, "?");
	}
	snprintf(host, ADDR_MAX, "%s", h);
}

/* Over a cap? Counted under the lock with the connection added. */
static const char *
admit_locked(struct qkdn_tls_front *f, struct conn *c, char *why, size_t len)
{
	int same = 0;
	if (f->n_live >= f->cfg.max_conns) {
		snprintf(why, len, "over the connection cap (%d)",
		         f->cfg.max_conns);
		return why;
	}
	for (struct conn *o = f->conns; o != NULL; o = o->next)
		if (!o->done && strcmp(o->host, c->host) == 0)
			same++;
	if (same >= f->cfg.max_conns_per_host) {
		snprintf(why, len,
		         "over the connection cap (%d from one address)",
		         f->cfg.max_conns_per_host);
		return why;
	}
	c->next = f->conns;
	f->conns = c;
	f->n_live++;
	return NULL;
}

static void
accept_one(struct qkdn_tls_front *f)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	int fd = accept4(f->lfd, (struct sockaddr *)&sa, &sl,
	                 SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return; /* EMFILE too: the cap keeps below it */
	struct conn *c = calloc(1, sizeof(*c));
	char why[96];
	if (c == NULL) {
		close(fd);
		return;
	}
	c->f = f;
	c->fd = fd;
	format_addr(&sa, c->addr, c->host);
	pthread_mutex_lock(&f->mtx);
	const char *over = admit_locked(f, c, why, sizeof(why));
	pthread_mutex_unlock(&f->mtx);
	if (over != NULL) {
		REFUSE(f, c, over);
		close(fd);
		free(c);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, CONN_STACK);
	/* only this thread (and stop, after it) reaps: c stays put here */
	int rv = pthread_create(&c->thread, &at, conn_main, c);
	pthread_attr_destroy(&at);
	if (rv == 0)
		return;
	QLOG_ERR(f->cfg.log_src, "%s: no thread for a connection from %s",
	         f->cfg.name, c->addr);
	pthread_mutex_lock(&f->mtx);
	for (struct conn **pp = &f->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	f->n_live--;
	pthread_mutex_unlock(&f->mtx);
	close(fd);
	free(c);
}

static void *
acceptor_main(void *arg)
{
	struct qkdn_tls_front *f = arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = f->lfd, .events = POLLIN},
		                      {.fd = f->stop_fd, .events = POLLIN}};
		int rv = poll(p, 2, ACCEPT_POLL_MS);
		if (rv > 0 && p[1].revents != 0)
			break;
		reap(f, false);
		if (rv > 0 && p[0].revents != 0)
			accept_one(f);
	}
	return NULL;
}

/* Bind and listen on tls+tcp://HOST:PORT. */
static int
listen_url(struct qkdn_tls_front *f)
{
	const char *hp = f->cfg.url + strlen("tls+tcp://");
	const char *colon = strrchr(hp, ':');
	char host[256];
	if (colon == NULL || (size_t)(colon - hp) >= sizeof(host))
		return QKDN_E_CONFIG;
	memcpy(host, hp, (size_t)(colon - hp));
	host[colon - hp] = 0;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE},
	                *ai;
	if (getaddrinfo(host[0] != 0 && strcmp(host, "*") != 0 ? host : NULL,
	                colon + 1, &hints, &ai) != 0)
		return QKDN_E_CONFIG;
	int fd = socket(ai->ai_family,
	                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, rv = 0;
	if (fd < 0)
		rv = QKDN_E_IO;
	else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)),
	         bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	             listen(fd, 128) != 0)
		rv = QKDN_E_IO;
	freeaddrinfo(ai);
	if (rv != 0) {
		QLOG_ERR(f->cfg.log_src, "cannot listen on %s: %s", f->cfg.url,
		         strerror(errno));
		if (fd >= 0)
			close(fd);
		return rv;
	}
	f->lfd = fd;
	return 0;
}

static int
ssl_fail(struct qkdn_tls_front *f, const char *what, const char *file)
{
	unsigned long e = ERR_peek_last_error();
	QLOG_ERR(f->cfg.log_src, "%s TLS: %s %s: %s", f->cfg.name, what,
	         file != NULL ? file : "",
	         e != 0 && ERR_reason_error_string(e) != NULL
	             ? ERR_reason_error_string(e)
	             : "unknown error");
	ERR_clear_error();
	return QKDN_E_CONFIG;
}

/* Every connection: TLS 1.2 or later, a client certificate chaining to
 * the network's CA, a full handshake (no tickets nor session cache, so
 * each connection's certificate is verified now, not when a session was
 * first made), no renegotiation. */
static int
make_ctx(struct qkdn_tls_front *f)
{
	const struct qkdn_tls_front_config *cfg = &f->cfg;
	if ((f->libctx = OSSL_LIB_CTX_new()) == NULL ||
	    (f->ctx = SSL_CTX_new_ex(f->libctx, NULL, TLS_server_method())) ==
	        NULL)
		return ssl_fail(f, "no context", NULL);
	SSL_CTX *ctx = f->ctx;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1)
		return ssl_fail(f, "cannot load certificate", cfg->cert);
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key, SSL_FILETYPE_PEM) != 1)
		return ssl_fail(f, "cannot load key", cfg->key);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return ssl_fail(f, "key does not match certificate", cfg->key);
	if (SSL_CTX_load_verify_file(ctx, cfg->ca) != 1)
		return ssl_fail(f, "cannot load CA", cfg->ca);
	STACK_OF(X509_NAME) *names =
	    SSL_load_client_CA_file_ex(cfg->ca, f->libctx, NULL);
	if (names != NULL)
		SSL_CTX_set_client_CA_list(ctx, names); /* hints for clients */
	SSL_CTX_set_verify(
	    ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return 0;
}

static int
open_forwarder(struct qkdn_tls_front *f)
{
	int rv;
	if ((rv = nng_req0_open(&f->req)) != 0)
		return qkdn_err_from_nng(rv);
	f->req_open = true;
	/* a request may be held long (a key request waits for its link):
	 * never resend it */
	nng_socket_set_ms(f->req, NNG_OPT_REQ_RESENDTIME,
	                  NNG_DURATION_INFINITE);
	if ((rv = nng_dial(f->req, f->cfg.inproc_url, NULL, 0)) != 0)
		return QKDN_E_INTERNAL;
	return 0;
}

int
qkdn_tls_front_start(struct qkdn_tls_front **out,
                     const struct qkdn_tls_front_config *cfg)
{
	struct qkdn_tls_front *f = calloc(1, sizeof(*f));
	int rv;
	if (f == NULL)
		return QKDN_E_NOMEM;
	f->cfg = *cfg;
	f->lfd = -1;
	pthread_mutex_init(&f->mtx, NULL);
	if ((f->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rv = QKDN_E_IO;
		goto fail;
	}
	if ((rv = make_ctx(f)) != 0 || (rv = open_forwarder(f)) != 0 ||
	    (rv = listen_url(f)) != 0)
		goto fail;
	if (pthread_create(&f->acceptor, NULL, acceptor_main, f) != 0) {
		rv = QKDN_E_NOMEM;
		goto fail;
	}
	f->acceptor_started = true;
	*out = f;
	return 0;
fail:
	qkdn_tls_front_stop(f);
	return rv;
}

void
qkdn_tls_front_stop(struct qkdn_tls_front *f)
{
	if (f == NULL)
		return;
	uint64_t one = 1;
	/* never read: every poll of every thread sees it from now on */
	if (f->stop_fd >= 0 && write(f->stop_fd, &one, sizeof(one)) < 0)
		QLOG_ERR(f->cfg.log_src, "%s TLS: cannot signal stop",
		         f->cfg.name);
	if (f->acceptor_started)
		pthread_join(f->acceptor, NULL);
	if (f->lfd >= 0)
		close(f->lfd);
	/* wakes the threads waiting for a reply */
	if (f->req_open)
		nng_close(f->req);
	reap(f, true);
	SSL_CTX_free(f->ctx);
	OSSL_LIB_CTX_free(f->libctx);
	if (f->stop_fd >= 0)
		close(f->stop_fd);
	pthread_mutex_destroy(&f->mtx);
	free(f);
}
