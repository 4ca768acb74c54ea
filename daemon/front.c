#include "qkdn_front.h"

#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define HANDSHAKE_MS   5000
#define SP_PROTO_REQ   0x30
#define SP_PROTO_REP   0x31
#define IPC_MSG_TYPE   1    /* nng ipc: the type byte of a message frame */
#define TLS_RECORD_HS  0x16 /* first byte of a TLS ClientHello record */
#define ACCEPT_POLL_MS 1000 /* finished connection threads joined */
#define CONN_STACK     (1u << 20)
#define ADDR_MAX       64

struct conn {
	struct qkdn_front *f;
	int fd;
	SSL *ssl; /* tls+tcp:// (after the handshake) */
	pthread_t thread;
	bool done;           /* the thread has finished: join it */
	char addr[ADDR_MAX]; /* "host:port" or "ipc peer uid U pid P" */
	char host[ADDR_MAX]; /* the per-host cap's key (tcp, tls) */
	struct qkdn_front_peer peer;
	struct conn *next;
};

struct qkdn_front {
	struct qkdn_front_config cfg;
	bool ipc;             /* ipc://, else tcp:// or tls+tcp:// */
	bool tls;             /* tls+tcp:// */
	OSSL_LIB_CTX *libctx; /* own: never the application's providers */
	SSL_CTX *ctx;
	int lfd;       /* listening socket */
	dev_t ipc_dev; /* the ipc socket file we made */
	ino_t ipc_ino;
	int stop_fd; /* an eventfd, readable once stopping */
	pthread_t acceptor;
	bool acceptor_started;
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

bool
qkdn_front_serves(const char *url)
{
	return strncmp(url, "tls+tcp://", 10) == 0 ||
	       strncmp(url, "tcp://", 6) == 0 || strncmp(url, "ipc://", 6) == 0;
}

/* Wait for events on fd, or until deadline_ms or a stop. */
static enum io_rv
wait_fd(struct qkdn_front *f, int fd, short events, uint64_t deadline_ms)
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

/* One read or write step: in TLS, or on the plain (tcp, ipc) socket. */
static enum io_rv
io_step(struct conn *c, bool writing, unsigned char *p, size_t len, size_t *n,
        uint64_t deadline_ms)
{
	if (c->ssl != NULL) {
		ERR_clear_error();
		int rv = writing ? SSL_write_ex(c->ssl, p, len, n)
		                 : SSL_read_ex(c->ssl, p, len, n);
		return rv == 1 ? IO_OK : ssl_step(c, rv, deadline_ms);
	}
	ssize_t r = writing ? send(c->fd, p, len, MSG_NOSIGNAL)
	                    : recv(c->fd, p, len, 0);
	if (r > 0) {
		*n = (size_t)r;
		return IO_OK;
	}
	if (r == 0)
		return IO_CLOSED;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return wait_fd(c->f, c->fd, writing ? POLLOUT : POLLIN,
		               deadline_ms);
	return errno == ECONNRESET || errno == EPIPE ? IO_CLOSED : IO_FAILED;
}

/* Read or write exactly len bytes. */
static enum io_rv
conn_io(struct conn *c, bool writing, void *buf, size_t len,
        uint64_t deadline_ms)
{
	unsigned char *p = buf;
	while (len > 0) {
		size_t n = 0;
		enum io_rv io = io_step(c, writing, p, len, &n, deadline_ms);
		if (io != IO_OK)
			return io;
		p += n;
		len -= n;
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

/* The subject CN of the verified leaf: exactly one, 1..63 bytes, no NUL:
 * the peer of every request of the connection. */
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
	bool ok = n > 0 && n < QKDN_FRONT_NAME_MAX &&
	          memchr(utf8, 0, (size_t)n) == NULL;
	if (ok) {
		memcpy(c->peer.name, utf8, (size_t)n);
		c->peer.name[n] = 0;
		c->peer.has_name = true;
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
	struct qkdn_front *f = c->f;
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

/* The SP header exchange (inside TLS, or plain): the peer must be
 * a REQ socket. Every way it can fail but a stop is logged. */
static bool
sp_hello(struct conn *c)
{
	static const unsigned char ours[8] = {0, 'S',          'P', 0,
	                                      0, SP_PROTO_REP, 0,   0};
	unsigned char peer[8];
	uint64_t deadline = qkdn_now_ms() + HANDSHAKE_MS;
	enum io_rv io = conn_io(c, true, (void *)ours, sizeof(ours), deadline);
	if (io == IO_OK)
		io = conn_io(c, false, peer, sizeof(peer), deadline);
	if (io == IO_TIMEOUT)
		REFUSE(c->f, c, "handshake timed out (no SP header)");
	else if (io == IO_CLOSED || io == IO_FAILED)
		REFUSE(c->f, c, "closed during the SP header exchange");
	if (io != IO_OK)
		return false;
	if (memcmp(peer, "\0SP\0", 4) != 0 || peer[4] != 0 ||
	    peer[5] != SP_PROTO_REQ || peer[6] != 0 || peer[7] != 0) {
		REFUSE(c->f, c, "not an SP REQ peer");
		return false;
	}
	return true;
}

/* Read one request frame into a new message (the SP payload). The
 * length is checked before anything is allocated. */
static enum io_rv
read_request(struct conn *c, nng_msg **out, unsigned char id[4])
{
	struct qkdn_front *f = c->f;
	unsigned char head[9]; /* [type,] length */
	size_t h = f->ipc ? 1 : 0;
	uint64_t deadline = deadline_in(f->cfg.idle_ms);
	enum io_rv io = conn_io(c, false, head, h + 8, deadline);
	if (io == IO_TIMEOUT)
		QLOG_LIMITED(&f->idles, QKDN_LOG_DEBUG, f->cfg.log_src,
		             "closed an idle %s connection from %s",
		             f->cfg.name, c->addr);
	if (io != IO_OK)
		return io;
	uint64_t n = get_be(head + h, 8);
	char why[128];
	if (h != 0 && head[0] != IPC_MSG_TYPE) {
		snprintf(why, sizeof(why), "a frame of type %u (not 1)",
		         head[0]);
		REFUSE(f, c, why);
		return IO_FAILED;
	}
	if (n < 4 || n > f->cfg.recv_max) {
		snprintf(why, sizeof(why),
		         "a frame of %llu bytes (at most %zu, with a request "
		         "ID)",
		         (unsigned long long)n, f->cfg.recv_max);
		REFUSE(f, c, why);
		return IO_FAILED;
	}
	if ((io = conn_io(c, false, id, 4, deadline)) != IO_OK)
		return io;
	if ((id[0] & 0x80) == 0) {
		REFUSE(f, c, "a request ID without its top bit");
		return IO_FAILED;
	}
	nng_msg *m;
	if (nng_msg_alloc(&m, (size_t)(n - 4)) != 0)
		return IO_FAILED;
	unsigned char *b = nng_msg_body(m);
	if ((io = conn_io(c, false, b, (size_t)(n - 4), deadline)) != IO_OK) {
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

/* The reply frame: [type,] length (with the ID), the client's request
 * ID, body; put in front of the body, so it goes out in one write. */
static enum io_rv
write_reply(struct conn *c, const unsigned char id[4], nng_msg *rsp)
{
	unsigned char head[13];
	size_t h = c->f->ipc ? 1 : 0;
	head[0] = IPC_MSG_TYPE;
	put_be(head + h, nng_msg_len(rsp) + 4, 8);
	memcpy(head + h + 8, id, 4);
	if (nng_msg_insert(rsp, head, h + 12) != 0)
		return IO_FAILED;
	return conn_io(c, true, nng_msg_body(rsp), nng_msg_len(rsp),
	               deadline_in(c->f->cfg.idle_ms));
}

/* True if the peer has closed its end: a REQ client never does while it
 * waits for a reply, so it gave up on the request just read (its deadline
 * passed); serving it anyway could act on a request the client has
 * already retried or given up elsewhere, as nng's listener never did. */
static bool
peer_gone(const struct conn *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};
	return poll(&p, 1, 0) == 1 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/* Requests one at a time, each served by the server as its peer's. */
static void
serve_requests(struct conn *c)
{
	const struct qkdn_front_config *cfg = &c->f->cfg;
	void *sc = cfg->conn_open(cfg->server, &c->peer);
	if (sc == NULL)
		return;
	for (;;) {
		nng_msg *req = NULL, *rsp = NULL;
		unsigned char id[4];
		if (read_request(c, &req, id) != IO_OK)
			break;
		if (peer_gone(c)) {
			REFUSE(c->f, c,
			       "closed before its request was served (it "
			       "gave up waiting)");
			free_wiped(req);
			break;
		}
		if (!cfg->conn_call(sc, req, &rsp))
			break;
		enum io_rv io = write_reply(c, id, rsp);
		free_wiped(rsp);
		if (io != IO_OK)
			break;
	}
	cfg->conn_close(sc);
}

static void *
conn_main(void *arg)
{
	struct conn *c = arg;
	struct qkdn_front *f = c->f;
	if ((!f->tls || handshake(c)) && sp_hello(c)) {
		if (f->tls)
			QLOG_DEBUG(f->cfg.log_src,
			           "%s connection from %s as %s", f->cfg.name,
			           c->addr, c->peer.name);
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
reap(struct qkdn_front *f, bool all)
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

/* The peer's identity, known at accept: its address (tcp, tls), or its
 * uid and pid (ipc://). False (logged) if it cannot be had. */
static bool
peer_of(struct conn *c, const struct sockaddr_storage *sa)
{
	if (!c->f->ipc) {
		format_addr(sa, c->addr, c->host);
		return true;
	}
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 ||
	    len != sizeof(cr)) {
		snprintf(c->addr, ADDR_MAX, "an ipc peer");
		REFUSE(c->f, c, "no peer credentials");
		return false;
	}
	snprintf(c->addr, ADDR_MAX, "ipc peer uid %u pid %d", (unsigned)cr.uid,
	         (int)cr.pid);
	c->peer.has_uid = true;
	c->peer.uid = cr.uid;
	c->peer.pid = (uint64_t)(cr.pid > 0 ? cr.pid : 0);
	return true;
}

/* Over a cap? Counted under the lock with the connection added. */
static const char *
admit_locked(struct qkdn_front *f, struct conn *c, char *why, size_t len)
{
	int same = 0;
	if (f->n_live >= f->cfg.max_conns) {
		snprintf(why, len, "over the connection cap (%d)",
		         f->cfg.max_conns);
		return why;
	}
	for (struct conn *o = f->conns; !f->ipc && o != NULL; o = o->next)
		if (!o->done && strcmp(o->host, c->host) == 0)
			same++;
	if (!f->ipc && same >= f->cfg.max_conns_per_host) {
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
accept_one(struct qkdn_front *f)
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
	if (!peer_of(c, &sa)) {
		close(fd);
		free(c);
		return;
	}
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
	if (!f->ipc)
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
	struct qkdn_front *f = arg;
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

/* Bind and listen on tcp://HOST:PORT or tls+tcp://HOST:PORT. */
static int
listen_tcp(struct qkdn_front *f)
{
	const char *hp = strstr(f->cfg.url, "://") + 3;
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

/* A socket file at sa that nobody listens on (a connect is refused) is
 * stale: remove it, as nng does. 0 removed (or gone), else EADDRINUSE
 * (something answers) or the errno of the check. */
static int
remove_stale(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	int rv = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0
	             ? EADDRINUSE
	             : errno;
	close(fd);
	if (rv == EAGAIN || rv == EINPROGRESS)
		return EADDRINUSE; /* a listener with a full backlog */
	if (rv == ECONNREFUSED || rv == ENOENT)
		return unlink(sa->sun_path) == 0 || errno == ENOENT ? 0 : errno;
	return rv;
}

/* Bind and listen on ipc://PATH, the file's mode set before listen(), so
 * nobody connects while it is another; fchmod first, so bind makes it no
 * wider than that (less the umask), and chmod widens it to the mode. */
static int
listen_ipc(struct qkdn_front *f)
{
	const char *path = f->cfg.url + strlen("ipc://");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *step = "socket";
	mode_t mode = (mode_t)f->cfg.ipc_mode;
	struct stat st;
	int err = 0;
	if (path[0] == 0 || strlen(path) >= sizeof(sa.sun_path)) {
		QLOG_ERR(f->cfg.log_src, "cannot listen on %s: %s", f->cfg.url,
		         "path empty or too long");
		return QKDN_E_CONFIG;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = errno;
		goto fail;
	}
	if (mode != 0 && fchmod(fd, mode) != 0) {
		step = "fchmod";
		err = errno;
		goto fail;
	}
	step = "bind";
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		err = errno;
		if (err == EADDRINUSE && (err = remove_stale(&sa)) == 0 &&
		    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
			err = errno;
		if (err != 0)
			goto fail;
	}
	/* ours, to remove at stop only if nobody replaced it meanwhile */
	if (stat(path, &st) == 0) {
		f->ipc_dev = st.st_dev;
		f->ipc_ino = st.st_ino;
	}
	if (mode != 0 && chmod(path, mode) != 0) {
		step = "chmod";
		err = errno;
	} else if (listen(fd, 128) != 0) {
		step = "listen";
		err = errno;
	}
	if (err == 0) {
		f->lfd = fd;
		return 0;
	}
	unlink(path);
	f->ipc_ino = 0;
fail:
	QLOG_ERR(f->cfg.log_src, "cannot listen on %s: %s: %s", f->cfg.url,
	         step, err == EADDRINUSE ? "address in use" : strerror(err));
	if (fd >= 0)
		close(fd);
	return QKDN_E_IO;
}

static int
ssl_fail(struct qkdn_front *f, const char *what, const char *file)
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
make_ctx(struct qkdn_front *f)
{
	const struct qkdn_front_config *cfg = &f->cfg;
	if (cfg->ca == NULL || cfg->cert == NULL || cfg->key == NULL) {
		QLOG_ERR(cfg->log_src,
		         "%s on %s needs a CA, a certificate and a key",
		         cfg->name, cfg->url);
		return QKDN_E_CONFIG;
	}
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

int
qkdn_front_start(struct qkdn_front **out, const struct qkdn_front_config *cfg)
{
	struct qkdn_front *f = calloc(1, sizeof(*f));
	int rv;
	if (f == NULL)
		return QKDN_E_NOMEM;
	f->cfg = *cfg;
	f->ipc = strncmp(cfg->url, "ipc://", 6) == 0;
	f->tls = strncmp(cfg->url, "tls+tcp://", 10) == 0;
	f->lfd = -1;
	pthread_mutex_init(&f->mtx, NULL);
	if ((f->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rv = QKDN_E_IO;
		goto fail;
	}
	if ((f->tls && (rv = make_ctx(f)) != 0) ||
	    (rv = f->ipc ? listen_ipc(f) : listen_tcp(f)) != 0)
		goto fail;
	if (pthread_create(&f->acceptor, NULL, acceptor_main, f) != 0) {
		rv = QKDN_E_NOMEM;
		goto fail;
	}
	f->acceptor_started = true;
	*out = f;
	return 0;
fail:
	qkdn_front_stop(f);
	return rv;
}

/* Remove the ipc socket file if it is still the one we made. */
static void
unlink_ours(struct qkdn_front *f)
{
	const char *path = f->cfg.url + strlen("ipc://");
	struct stat st;
	if (f->ipc && f->ipc_ino != 0 && stat(path, &st) == 0 &&
	    st.st_dev == f->ipc_dev && st.st_ino == f->ipc_ino)
		unlink(path);
}

void
qkdn_front_stop(struct qkdn_front *f)
{
	if (f == NULL)
		return;
	uint64_t one = 1;
	/* never read: every poll of every thread sees it from now on */
	if (f->stop_fd >= 0 && write(f->stop_fd, &one, sizeof(one)) < 0)
		QLOG_ERR(f->cfg.log_src, "%s: cannot signal the front to stop",
		         f->cfg.name);
	if (f->acceptor_started)
		pthread_join(f->acceptor, NULL);
	if (f->lfd >= 0) {
		unlink_ours(f);
		close(f->lfd);
	}
	/* the threads waiting for a reply were woken by the server */
	reap(f, true);
	SSL_CTX_free(f->ctx);
	OSSL_LIB_CTX_free(f->libctx);
	if (f->stop_fd >= 0)
		close(f->stop_fd);
	pthread_mutex_destroy(&f->mtx);
	free(f);
}
