/* A minimal synchronous client of nng's REQ/REP wire protocol (SP over
 * ipc://, tcp:// and tls+tcp://), for callers that live inside other
 * people's processes: no threads, so it survives fork() (nng 1.5 does not:
 * its worker threads are gone in a child), and one blocking round trip with
 * poll() deadlines instead of thread hand-offs. Servers stay on nng (and
 * on the daemons' own TLS front for tls+tcp://).
 *
 * Wire: each side first sends 8 bytes {0, 'S', 'P', 0, proto (16-bit BE),
 * 0, 0}; then each message is framed as [type 1 (ipc only)] [64-bit BE
 * length] [payload], and a REQ payload starts with a 32-bit BE request ID
 * with its top bit set, which the REP side echoes. tls+tcp:// carries
 * exactly tcp://'s bytes inside a TLS stream.
 *
 * TLS runs in a library context of its own (so inside the OpenSSL provider
 * the TLS to the KM never consults the provider's QKD groups), and every
 * OpenSSL call leaves the calling thread's OpenSSL error queue as it was. */
#ifndef QKDN_SP_H
#define QKDN_SP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QKDN_SP_URL_MAX 256

/* TLS client credentials: a CA, a client certificate and its key. */
struct qkdn_sp_tls;

/* Load the PEM files ca (the CA the server's chain must lead to), cert (a
 * certificate chain, leaf first) and key. QKDN_E_CONFIG with the reason in
 * why if one is missing or unreadable or the key does not match. */
int qkdn_sp_tls_new(struct qkdn_sp_tls **out, const char *ca, const char *cert,
                    const char *key, char *why, size_t whylen)
    __attribute__((warn_unused_result));
/* After every connection made with it is closed. NULL is fine. */
void qkdn_sp_tls_free(struct qkdn_sp_tls *tls);

struct qkdn_sp_conn {
	int fd;
	int ipc; /* 1: ipc framing (type byte), 0: tcp and tls */
	uint32_t next_id;
	/* Set by the caller before connecting to a tls+tcp:// url (ignored
	 * for the others); borrowed: they must outlive the connection.
	 * Without tls such a url fails with QKDN_E_CONFIG. With peer_name,
	 * the server certificate's subject CN must equal it exactly. */
	const struct qkdn_sp_tls *tls;
	const char *peer_name;
	/* the library's */
	void *ssl;      /* SSL *, NULL for ipc:// and tcp:// */
	pid_t pid;      /* the process that connected */
	uint64_t calls; /* calls completed on this connection */
	char url[QKDN_SP_URL_MAX];
};

/* Connect and exchange SP headers before deadline_ms (qkdn_now_ms). On
 * failure c->fd is -1 and nothing needs closing. */
int qkdn_sp_connect(struct qkdn_sp_conn *c, const char *url,
                    uint64_t deadline_ms) __attribute__((warn_unused_result));

/* One attempt only: a refused or missing socket fails at once with
 * QKDN_E_UNREACHABLE instead of being retried until the deadline. */
int qkdn_sp_connect_once(struct qkdn_sp_conn *c, const char *url,
                         uint64_t deadline_ms)
    __attribute__((warn_unused_result));

/* Send one request and wait for its reply (replies to earlier, abandoned
 * requests are skipped). *rsp is malloc'd; the caller wipes and frees it.
 * On any error the connection must be closed.
 *
 * A connection that already completed a call and that the server closed
 * while it was idle (the write fails, or the reply's first read finds the
 * connection closed or reset before any byte) is connected afresh, once,
 * and the request sent again: the server closes only idle connections, so
 * it never saw the request. Once any byte of a reply was read, nothing is
 * sent again. */
int qkdn_sp_call(struct qkdn_sp_conn *c, const uint8_t *req, size_t len,
                 uint8_t **rsp, size_t *rsp_len, size_t rsp_max,
                 uint64_t deadline_ms) __attribute__((warn_unused_result));

/* Close. In a process other than the one that connected (a fork() child),
 * the TLS state is dropped without writing anything to the connection,
 * which is the parent's. */
void qkdn_sp_close(struct qkdn_sp_conn *c);

/* Why this thread's last failed connect or call failed, in words (e.g.
 * "certificate verify failed: certificate has expired"); never NULL. */
const char *qkdn_sp_last_error(void);

#endif
