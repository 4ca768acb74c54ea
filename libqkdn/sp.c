#include "qkdn_sp.h"

#include "qkdn_err.h"
#include "qkdn_clock.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SP_PROTO_REQ 0x30
#define SP_PROTO_REP 0x31
#define RETRY_MS     20

/* Internal outcomes besides 0 and the qkdn codes (all negative): */
#define SP_CLOSED     1 /* the server closed or reset the connection */
#define SP_WANT_READ  2 /* wait until the socket is readable */
#define SP_WANT_WRITE 3 /* wait until it is writable */

struct qkdn_sp_tls {
	OSSL_LIB_CTX *libctx; /* ours: no provider of the application */
	SSL_CTX *ctx;
	BIO_METHOD *bio; /* socket I/O without SIGPIPE */
};

static _Thread_local char last_err[256] = "no error";

const char *
qkdn_sp_last_error(void)
{
	return last_err;
}

static int set_err(int rv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
set_err(int rv, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_err, sizeof(last_err), fmt, ap);
	va_end(ap);
	return rv;
}

/* What the callers see: a closed connection is an unreachable server. */
static int
public_rv(int rv)
{
	return rv == SP_CLOSED ? QKDN_E_UNREACHABLE : rv;
}

static int
wait_fd(int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		uint64_t now = qkdn_now_ms();
		if (now >= deadline_ms)
			return set_err(QKDN_E_TIMEOUT,
			               "no answer within the deadline");
		struct pollfd p = {.fd = fd, .events = events};
		int rv = poll(&p, 1, (int)(deadline_ms - now));
		if (rv > 0)
			return 0;
		if (rv < 0 && errno != EINTR)
			return set_err(QKDN_E_IO, "poll: %s", strerror(errno));
	}
}

/* A failed send or recv: a reset is a closed connection (maybe stale). */
static int
sock_failure(int err, const char *what)
{
	if (err == ECONNRESET || err == EPIPE)
		return set_err(SP_CLOSED, "connection reset by the server");
	return set_err(QKDN_E_UNREACHABLE, "%s: %s", what, strerror(err));
}

/* One send or recv on a plain socket: 0 with *n > 0, or an outcome. */
static int
plain_io(int fd, int writing, uint8_t *p, size_t len, size_t *n)
{
	ssize_t r =
	    writing ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
	if (r > 0) {
		*n = (size_t)r;
		return 0;
	}
	if (r == 0 && !writing)
		return set_err(SP_CLOSED, "connection closed by the server");
	if (r < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return writing ? SP_WANT_WRITE : SP_WANT_READ;
	return sock_failure(r < 0 ? errno : EPIPE,
	                    writing ? "cannot send" : "cannot receive");
}

/* The TLS socket BIO: like OpenSSL's, but send() with MSG_NOSIGNAL, so a
 * server that went away never raises SIGPIPE in the application. */
struct sock_bio {
	int fd;
	int eof; /* recv returned 0 */
	int err; /* errno of the last failed send or recv */
};

static int
bio_write(BIO *b, const char *buf, int len)
{
	struct sock_bio *s = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	ssize_t r = send(s->fd, buf, (size_t)len, MSG_NOSIGNAL);
	if (r >= 0)
		return (int)r;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		BIO_set_retry_write(b);
	else
		s->err = errno;
	return -1;
}

static int
bio_read(BIO *b, char *buf, int len)
{
	struct sock_bio *s = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	ssize_t r = recv(s->fd, buf, (size_t)len, 0);
	if (r > 0)
		return (int)r;
	if (r == 0) {
		s->eof = 1;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		BIO_set_retry_read(b);
	else
		s->err = errno;
	return -1;
}

static long
bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct sock_bio *s = BIO_get_data(b);
	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return s->eof;
	default:
		return 0;
	}
}

static int
bio_create(BIO *b)
{
	struct sock_bio *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return 0;
	s->fd = -1;
	BIO_set_data(b, s);
	BIO_set_init(b, 1);
	return 1;
}

static int
bio_destroy(BIO *b)
{
	free(BIO_get_data(b)); /* the fd is the connection's */
	BIO_set_data(b, NULL);
	return 1;
}

static BIO_METHOD *
bio_method(void)
{
	/* no BIO_get_new_index(): each handle would draw from a global
	 * count that overflows into the type flags after 127; nobody looks
	 * this BIO up by type */
	BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "qkdn socket");
	if (m != NULL && (!BIO_meth_set_write(m, bio_write) ||
	                  !BIO_meth_set_read(m, bio_read) ||
	                  !BIO_meth_set_ctrl(m, bio_ctrl) ||
	                  !BIO_meth_set_create(m, bio_create) ||
	                  !BIO_meth_set_destroy(m, bio_destroy))) {
		BIO_meth_free(m);
		m = NULL;
	}
	return m;
}

/* Errors. The thread's OpenSSL error queue is the application's: every
 * sequence of our OpenSSL calls runs between set_aside() and
 * put_back(), which leave its entries as they were. ERR_set_mark() is not
 * enough: libssl clears the whole queue at every handshake step (also
 * for a session ticket read by SSL_read), and SSL_get_error() misreads
 * an application's error as its own. OpenSSL 3.0 cannot read the marks
 * an application set on its entries, so those are not kept. */
struct saved_errors {
	int n;
	struct {
		unsigned long code;
		int line;
		/* copies: OpenSSL frees its own when the slot is reused */
		char *file, *func, *data; /* or NULL */
	} e[ERR_NUM_ERRORS];
};

static char *
copy(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void
set_aside(struct saved_errors *s)
{
	const char *file, *func, *data;
	int line, flags;
	unsigned long code;
	s->n = 0;
	while (s->n < ERR_NUM_ERRORS &&
	       (code = ERR_get_error_all(&file, &line, &func, &data, &flags)) !=
	           0) {
		s->e[s->n].code = code;
		s->e[s->n].file = copy(file);
		s->e[s->n].line = line;
		s->e[s->n].func = copy(func);
		s->e[s->n].data = flags & ERR_TXT_STRING ? copy(data) : NULL;
		s->n++;
	}
	ERR_clear_error();
}

static void
put_back(struct saved_errors *s)
{
	ERR_clear_error(); /* ours */
	for (int i = 0; i < s->n; i++) {
		ERR_new();
		ERR_set_debug(s->e[i].file, s->e[i].line, s->e[i].func);
		if (s->e[i].data != NULL)
			ERR_set_error(ERR_GET_LIB(s->e[i].code),
			              ERR_GET_REASON(s->e[i].code), "%s",
			              s->e[i].data);
		else
			ERR_set_error(ERR_GET_LIB(s->e[i].code),
			              ERR_GET_REASON(s->e[i].code), NULL);
		free(s->e[i].file);
		free(s->e[i].func);
		free(s->e[i].data);
	}
	s->n = 0;
}

/* The newest error of our calls since set_aside(), or 0. */
static unsigned long
our_error(void)
{
	return ERR_peek_last_error();
}

static const char *
err_text(unsigned long e)
{
	if (ERR_SYSTEM_ERROR(e))
		return strerror(ERR_GET_REASON(e));
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
	return r != NULL ? r : "unknown error";
}

/* Make t's library context and SSL_CTX and load the files: what failed
 * (with *file naming the file), or NULL. */
static const char *
tls_setup(struct qkdn_sp_tls *t, const char *ca, const char *cert,
          const char *key, const char **file)
{
	/* TLS 1.2 at least; the server's chain must lead to ca and be fit
	 * for a server (OpenSSL's default purpose for a client) */
	if ((t->libctx = OSSL_LIB_CTX_new()) == NULL ||
	    (t->ctx = SSL_CTX_new_ex(t->libctx, NULL, TLS_client_method())) ==
	        NULL ||
	    (t->bio = bio_method()) == NULL ||
	    !SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION))
		return "setting up TLS";
	*file = ca;
	if (!SSL_CTX_load_verify_file(t->ctx, ca))
		return "cannot load the CA";
	*file = cert;
	if (!SSL_CTX_use_certificate_chain_file(t->ctx, cert))
		return "cannot load the certificate";
	*file = key;
	if (!SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM))
		return "cannot load the key";
	if (!SSL_CTX_check_private_key(t->ctx))
		return "the key does not match the certificate";
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	/* the SP framing detects a truncated reply; an EOF without
	 * close_notify is then just a closed connection */
	SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	return NULL;
}

int
qkdn_sp_tls_new(struct qkdn_sp_tls **out, const char *ca, const char *cert,
                const char *key, char *why, size_t whylen)
{
	struct saved_errors saved;
	struct qkdn_sp_tls *t;
	const char *step, *file = NULL;
	*out = NULL;
	if (ca == NULL || ca[0] == '\0' || cert == NULL || cert[0] == '\0' ||
	    key == NULL || key[0] == '\0') {
		snprintf(why, whylen,
		         "TLS needs a CA, a certificate and a key");
		return QKDN_E_CONFIG;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(why, whylen, "out of memory");
		return QKDN_E_NOMEM;
	}
	set_aside(&saved);
	if ((step = tls_setup(t, ca, cert, key, &file)) != NULL)
		/* the oldest error is the cause: "No such file ..." */
		snprintf(why, whylen, "%s%s%s: %s", step, file ? " " : "",
		         file ? file : "", err_text(ERR_peek_error()));
	put_back(&saved);
	if (step != NULL) {
		qkdn_sp_tls_free(t);
		return QKDN_E_CONFIG;
	}
	*out = t;
	return 0;
}

void
qkdn_sp_tls_free(struct qkdn_sp_tls *t)
{
	struct saved_errors saved;
	if (t == NULL)
		return;
	set_aside(&saved);
	SSL_CTX_free(t->ctx);
	OSSL_LIB_CTX_free(t->libctx);
	BIO_meth_free(t->bio);
	put_back(&saved);
	free(t);
}

enum tls_step { STEP_HANDSHAKE, STEP_READ, STEP_WRITE };

/* A TLS call failed with OpenSSL error e: in words, and whether it is a
 * closed connection. */
static int
tls_error(SSL *ssl, unsigned long e, enum tls_step step)
{
	long v = SSL_get_verify_result(ssl);
	int reason = ERR_GET_REASON(e);
	if (v != X509_V_OK)
		return set_err(QKDN_E_AUTH_FAILED,
		               "certificate verify failed: %s",
		               X509_verify_cert_error_string(v));
	if (ERR_GET_LIB(e) == ERR_LIB_SYS)
		return sock_failure(reason, "TLS");
	if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		return set_err(SP_CLOSED, "connection closed by the server");
	if (ERR_GET_LIB(e) == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET)
		return set_err(QKDN_E_AUTH_FAILED,
		               "the server refused the TLS connection: %s",
		               err_text(e));
	return set_err(QKDN_E_AUTH_FAILED, "TLS %s failed: %s",
	               step == STEP_HANDSHAKE ? "handshake" : "session",
	               err_text(e));
}

/* A TLS call failed without an error of ours: wait, or the connection is
 * gone (what SSL_get_error works out, without the error queue). */
static int
tls_stalled(SSL *ssl)
{
	BIO *b = SSL_get_rbio(ssl);
	struct sock_bio *s = BIO_get_data(b);
	if ((SSL_want_read(ssl) || SSL_want_write(ssl)) && BIO_should_retry(b))
		return BIO_should_read(b) ? SP_WANT_READ : SP_WANT_WRITE;
	if ((SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) || s->eof)
		return set_err(SP_CLOSED, "connection closed by the server");
	return sock_failure(s->err != 0 ? s->err : EPIPE, "TLS");
}

/* One TLS call: 0 (with *n bytes moved), or an outcome. */
static int
tls_io(SSL *ssl, enum tls_step step, uint8_t *p, size_t len, size_t *n)
{
	struct saved_errors saved;
	int ok = 0, rv;
	set_aside(&saved);
	switch (step) {
	case STEP_HANDSHAKE:
		ok = SSL_connect(ssl) == 1;
		break;
	case STEP_READ:
		ok = SSL_read_ex(ssl, p, len, n);
		break;
	case STEP_WRITE:
		ok = SSL_write_ex(ssl, p, len, n);
		break;
	}
	if (ok)
		rv = 0;
	else if (our_error() != 0)
		rv = tls_error(ssl, our_error(), step);
	else
		rv = tls_stalled(ssl);
	put_back(&saved);
	return rv;
}

/* Move len bytes to or from the server before the deadline; *done says
 * how many moved (also on failure). */
static int
conn_io(struct qkdn_sp_conn *c, int writing, uint8_t *p, size_t len,
        uint64_t deadline_ms, size_t *done)
{
	*done = 0;
	while (*done < len) {
		size_t n = 0;
		int rv =
		    c->ssl != NULL
		        ? tls_io(c->ssl, writing ? STEP_WRITE : STEP_READ,
		                 p + *done, len - *done, &n)
		        : plain_io(c->fd, writing, p + *done, len - *done, &n);
		if (rv == SP_WANT_READ || rv == SP_WANT_WRITE)
			rv = wait_fd(c->fd,
			             rv == SP_WANT_READ ? POLLIN : POLLOUT,
			             deadline_ms);
		if (rv != 0)
			return rv;
		*done += n;
	}
	return 0;
}

static int
conn_write(struct qkdn_sp_conn *c, const uint8_t *p, size_t len,
           uint64_t deadline_ms)
{
	size_t done;
	return conn_io(c, 1, (uint8_t *)p, len, deadline_ms, &done);
}

static int
open_ipc(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return set_err(QKDN_E_CONFIG, "ipc path too long");
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return set_err(QKDN_E_IO, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
	    errno != EINPROGRESS && errno != EAGAIN) {
		int err = errno;
		close(fd);
		return set_err(QKDN_E_UNREACHABLE, "cannot connect to %s: %s",
		               path, strerror(err));
	}
	return fd;
}

/* A non-blocking socket connecting to HOST:PORT. */
static int
open_tcp(const char *hp)
{
	char host[256];
	const char *colon = strrchr(hp, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	if (colon == NULL || (size_t)(colon - hp) >= sizeof(host))
		return set_err(QKDN_E_CONFIG, "expected HOST:PORT");
	memcpy(host, hp, (size_t)(colon - hp));
	host[colon - hp] = 0;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		return set_err(QKDN_E_UNREACHABLE, "cannot resolve %s", host);
	int fd = socket(ai->ai_family,
	                SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return set_err(QKDN_E_IO, "socket: %s", strerror(errno));
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
	    errno != EINPROGRESS) {
		int err = errno;
		close(fd);
		freeaddrinfo(ai);
		return set_err(QKDN_E_UNREACHABLE, "cannot connect to %s: %s",
		               hp, strerror(err));
	}
	freeaddrinfo(ai);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Wait for a connect in progress (TLS speaks first only once it is up). */
static int
wait_connected(int fd, uint64_t deadline_ms)
{
	int err = 0, rv = wait_fd(fd, POLLOUT, deadline_ms);
	socklen_t len = sizeof(err);
	if (rv == QKDN_E_TIMEOUT)
		return set_err(rv, "the connection was not accepted in time");
	if (rv != 0)
		return rv;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0)
		return set_err(QKDN_E_UNREACHABLE, "cannot connect: %s",
		               strerror(err));
	return 0;
}

/* The server certificate's subject CN must be exactly c->peer_name. */
static int
check_peer_name(struct qkdn_sp_conn *c)
{
	struct saved_errors saved;
	char got[3 * QKDN_SP_URL_MAX / 4];
	int rv = 0;
	set_aside(&saved);
	X509 *leaf = SSL_get0_peer_certificate(c->ssl);
	X509_NAME *name = leaf != NULL ? X509_get_subject_name(leaf) : NULL;
	int i = name != NULL
	            ? X509_NAME_get_index_by_NID(name, NID_commonName, -1)
	            : -1;
	if (leaf == NULL) {
		rv = set_err(QKDN_E_AUTH_FAILED, "the KM sent no certificate");
	} else if (c->peer_name == NULL) {
		rv = 0; /* any certificate the CA vouches for */
	} else if (i < 0 ||
	           X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0) {
		rv = set_err(QKDN_E_AUTH_FAILED,
		             "KM certificate has no single subject CN, "
		             "expected %s",
		             c->peer_name);
	} else {
		const ASN1_STRING *cn =
		    X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
		const unsigned char *d = ASN1_STRING_get0_data(cn);
		size_t len = (size_t)ASN1_STRING_length(cn);
		if (len != strlen(c->peer_name) ||
		    memcmp(d, c->peer_name, len) != 0) {
			size_t k;
			/* only printable bytes of a name we refuse */
			for (k = 0; k < len && k + 1 < sizeof(got); k++)
				got[k] = d[k] >= 0x20 && d[k] < 0x7f
				             ? (char)d[k]
				             : '?';
			got[k] = 0;
			rv = set_err(
			    QKDN_E_AUTH_FAILED,
			    "the server's certificate names %s, expected %s",
			    got, c->peer_name);
		}
	}
	put_back(&saved);
	return rv;
}

static int
tls_handshake(struct qkdn_sp_conn *c, uint64_t deadline_ms)
{
	for (;;) {
		int rv = tls_io(c->ssl, STEP_HANDSHAKE, NULL, 0, NULL);
		if (rv == SP_WANT_READ || rv == SP_WANT_WRITE) {
			rv = wait_fd(c->fd,
			             rv == SP_WANT_READ ? POLLIN : POLLOUT,
			             deadline_ms);
			if (rv == QKDN_E_TIMEOUT)
				set_err(rv, "TLS handshake timed out");
			if (rv == 0)
				continue;
		}
		if (rv == SP_CLOSED)
			set_err(rv, "the server closed the connection during "
			            "the TLS handshake");
		return rv;
	}
}

/* The TLS session over c->fd (connected). */
static int
tls_connect(struct qkdn_sp_conn *c, uint64_t deadline_ms)
{
	struct saved_errors saved;
	BIO *b = NULL;
	int rv = 0;
	set_aside(&saved);
	SSL *ssl = SSL_new(c->tls->ctx);
	if (ssl != NULL && (b = BIO_new(c->tls->bio)) != NULL) {
		((struct sock_bio *)BIO_get_data(b))->fd = c->fd;
		SSL_set_bio(ssl, b, b); /* one reference, now the SSL's */
	} else {
		rv = set_err(QKDN_E_NOMEM, "setting up TLS: %s",
		             err_text(our_error()));
		SSL_free(ssl);
		ssl = NULL;
	}
	put_back(&saved);
	if (rv != 0)
		return rv;
	c->ssl = ssl;
	if ((rv = wait_connected(c->fd, deadline_ms)) != 0 ||
	    (rv = tls_handshake(c, deadline_ms)) != 0)
		return rv;
	return check_peer_name(c);
}

enum scheme { SCHEME_IPC, SCHEME_TCP, SCHEME_TLS };

static int
parse_scheme(const char *url, enum scheme *s, const char **rest)
{
	static const struct {
		const char *prefix;
		enum scheme s;
	} v[] = {{"ipc://", SCHEME_IPC},
	         {"tcp://", SCHEME_TCP},
	         {"tls+tcp://", SCHEME_TLS}};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (strncmp(url, v[i].prefix, strlen(v[i].prefix)) == 0) {
			*s = v[i].s;
			*rest = url + strlen(v[i].prefix);
			return 0;
		}
	return set_err(QKDN_E_CONFIG,
	               "address must be ipc://PATH, tcp://HOST:PORT or "
	               "tls+tcp://HOST:PORT");
}

/* Drop the connection's state (fd first: nothing more can be written).
 * goodbye: this process made it, so a TLS close_notify may be sent. */
static void
drop(struct qkdn_sp_conn *c, int goodbye)
{
	struct saved_errors saved;
	SSL *ssl = c->ssl;
	if (c->fd < 0)
		return;
	if (ssl != NULL && goodbye) {
		set_aside(&saved);
		(void)SSL_shutdown(ssl); /* one non-blocking try */
		put_back(&saved);
	}
	close(c->fd);
	c->fd = -1;
	c->ssl = NULL;
	if (ssl != NULL) {
		set_aside(&saved);
		SSL_free(ssl);
		put_back(&saved);
	}
}

/* SP headers both ways. */
static int
sp_hello(struct qkdn_sp_conn *c, uint64_t deadline_ms)
{
	static const uint8_t hello[8] = {0, 'S', 'P', 0, 0, SP_PROTO_REQ, 0, 0};
	uint8_t peer[8];
	size_t n;
	int rv;
	/* for a plain socket, the first write waits for a connect in
	 * progress */
	if ((rv = conn_write(c, hello, sizeof(hello), deadline_ms)) != 0 ||
	    (rv = conn_io(c, 0, peer, sizeof(peer), deadline_ms, &n)) != 0) {
		/* TLS 1.3: a server refusing our certificate says so after
		 * our handshake is done; its close may beat its alert */
		if (rv == SP_CLOSED && c->ssl != NULL)
			set_err(rv, "the server closed the connection right "
			            "after the TLS handshake (does it accept "
			            "this client certificate?)");
		return rv;
	}
	if (memcmp(peer, "\0SP\0", 4) != 0 || peer[4] != 0 ||
	    peer[5] != SP_PROTO_REP || peer[6] != 0 || peer[7] != 0)
		return set_err(QKDN_E_BAD_REQUEST,
		               "the server is not an SP REP socket");
	return 0;
}

/* One connection attempt: socket, connect, TLS, SP header exchange. */
static int
try_connect(struct qkdn_sp_conn *c, const char *url, uint64_t deadline_ms)
{
	enum scheme s = SCHEME_IPC;
	const char *rest = url;
	int rv;
	c->fd = -1;
	c->ssl = NULL;
	c->calls = 0;
	c->pid = getpid();
	if (strlen(url) >= sizeof(c->url))
		return set_err(QKDN_E_CONFIG, "address too long");
	if (url != c->url)
		memcpy(c->url, url, strlen(url) + 1);
	if ((rv = parse_scheme(url, &s, &rest)) != 0)
		return rv;
	if (s == SCHEME_TLS && c->tls == NULL)
		return set_err(QKDN_E_CONFIG,
		               "%s needs TLS credentials (a CA, a certificate "
		               "and a key)",
		               url);
	if ((rv = s == SCHEME_IPC ? open_ipc(rest) : open_tcp(rest)) < 0)
		return rv;
	c->fd = rv;
	c->ipc = s == SCHEME_IPC;
	if ((s == SCHEME_TLS && (rv = tls_connect(c, deadline_ms)) != 0) ||
	    (rv = sp_hello(c, deadline_ms)) != 0) {
		drop(c, 0);
		return rv;
	}
	randombytes_buf(&c->next_id, sizeof(c->next_id));
	return 0;
}

int
qkdn_sp_connect_once(struct qkdn_sp_conn *c, const char *url,
                     uint64_t deadline_ms)
{
	return public_rv(try_connect(c, url, deadline_ms));
}

int
qkdn_sp_connect(struct qkdn_sp_conn *c, const char *url, uint64_t deadline_ms)
{
	/* A server that is restarting refuses for a moment: keep trying
	 * within the deadline, as nng's own dialer would. */
	for (;;) {
		int rv = public_rv(try_connect(c, url, deadline_ms));
		if (rv != QKDN_E_UNREACHABLE)
			return rv;
		uint64_t now = qkdn_now_ms();
		if (now + RETRY_MS >= deadline_ms)
			return rv;
		struct timespec ts = {0, RETRY_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static void
put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t
get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void
free_wiped(uint8_t *buf, size_t n)
{
	sodium_memzero(buf, n);
	free(buf);
}

/* Send and wait for the reply; *got counts the bytes of replies read. */
static int
call_once(struct qkdn_sp_conn *c, const uint8_t *req, size_t len, uint8_t **rsp,
          size_t *rsp_len, size_t rsp_max, uint64_t deadline_ms, size_t *got)
{
	uint8_t head[13];
	int h = c->ipc, rv;
	size_t n;
	uint32_t id = (c->next_id++ & 0x7fffffffu) | 0x80000000u;
	if (h)
		head[0] = 1;
	put_be(head + h, len + 4, 8);
	put_be(head + h + 8, id, 4);
	if ((rv = conn_write(c, head, (size_t)h + 12, deadline_ms)) != 0 ||
	    (rv = conn_write(c, req, len, deadline_ms)) != 0)
		return rv;
	for (;;) {
		rv = conn_io(c, 0, head, (size_t)h + 8, deadline_ms, &n);
		*got += n;
		if (rv != 0)
			return rv;
		uint64_t size = get_be(head + h, 8);
		if ((h && head[0] != 1) || size < 4 || size - 4 > rsp_max)
			return set_err(QKDN_E_BAD_REQUEST,
			               "reply malformed or over %zu bytes",
			               rsp_max);
		uint8_t *buf = malloc(size);
		if (buf == NULL)
			return set_err(QKDN_E_NOMEM, "room for the reply");
		rv = conn_io(c, 0, buf, size, deadline_ms, &n);
		*got += n;
		if (rv != 0) {
			free_wiped(buf, size);
			return rv;
		}
		if (get_be(buf, 4) != id) {
			/* the late reply to an abandoned request */
			free_wiped(buf, size);
			continue;
		}
		memmove(buf, buf + 4, size - 4);
		sodium_memzero(buf + size - 4, 4);
		*rsp = buf;
		*rsp_len = size - 4;
		return 0;
	}
}

int
qkdn_sp_call(struct qkdn_sp_conn *c, const uint8_t *req, size_t len,
             uint8_t **rsp, size_t *rsp_len, size_t rsp_max,
             uint64_t deadline_ms)
{
	size_t got = 0;
	int rv =
	    call_once(c, req, len, rsp, rsp_len, rsp_max, deadline_ms, &got);
	/* a pooled connection the server closed while idle: it never saw
	 * the request (it closes only idle connections), so send it once
	 * more on a fresh one; never once a byte of a reply came back */
	if (rv == SP_CLOSED && got == 0 && c->calls > 0) {
		drop(c, 0);
		if ((rv = try_connect(c, c->url, deadline_ms)) == 0)
			rv = call_once(c, req, len, rsp, rsp_len, rsp_max,
			               deadline_ms, &got);
	}
	if (rv == 0)
		c->calls++;
	return public_rv(rv);
}

void
qkdn_sp_close(struct qkdn_sp_conn *c)
{
	/* a fork() child must not write to its parent's TLS session */
	drop(c, c->pid == getpid());
}
