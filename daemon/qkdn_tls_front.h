/* The tls+tcp:// listener of the REP server skeleton, terminated by
 * OpenSSL rather than by nng: Debian's nng 1.5.2 has TLS but cannot tell a
 * server which certificate the peer presented (NNG_OPT_TLS_PEER_CN came in
 * nng 1.6), and every request must carry its peer's identity.
 *
 * It accepts TCP connections (capped in all and per peer address), runs
 * the TLS handshake (5 s deadline; a client certificate chaining to the CA
 * is required, default purpose checks: ssl_client), speaks the REP side of
 * nng's SP framing inside TLS, and forwards each request, prefixed with the
 * peer's certificate CN, to the REP socket's inproc:// listener; replies
 * go back with the client's request ID. One thread per connection: the
 * count is bounded by the cap. The server strips the prefix only from
 * requests that came through that inproc listener. */
#ifndef QKDN_TLS_FRONT_H
#define QKDN_TLS_FRONT_H

#include "qkdn_log.h"

#include <nng/nng.h>
#include <stddef.h>

struct qkdn_tls_front;

struct qkdn_tls_front_config {
	const char *name;            /* service name for logs, "Ak", "Kx" */
	const char *log_src;         /* log source tag */
	const char *url;             /* tls+tcp://HOST:PORT */
	const char *ca, *cert, *key; /* PEM paths */
	const char *inproc_url;      /* the REP socket listens here */
	int max_conns, max_conns_per_host; /* > 0 */
	int idle_ms;                       /* > 0, or < 0: never */
	size_t recv_max; /* longest frame accepted (as nng's tcp: with ID) */
	struct qkdn_log_limit *refusals; /* rate limit of refusal lines */
};

int qkdn_tls_front_start(struct qkdn_tls_front **out,
                         const struct qkdn_tls_front_config *cfg)
    __attribute__((warn_unused_result));
/* Close the listening socket and every connection, join every thread. */
void qkdn_tls_front_stop(struct qkdn_tls_front *f);

/* The internal format of a forwarded request: "QKID", one byte n (1..63),
 * the n bytes of the peer's CN, then the SP payload. Take the CN off a
 * message that came through the inproc listener, into name (at least 64
 * bytes, NUL-terminated). 0, or a qkdn error if the prefix is malformed. */
#define QKDN_TLS_NAME_MAX 64
int qkdn_tls_front_take_name(nng_msg *m, char *name)
    __attribute__((warn_unused_result));

#endif
