/* The front: our own listener behind every REP server of qkdn_server.h,
 * for every transport (tcp://, tls+tcp://, ipc://). nng 1.5.2 (Debian 12)
 * serves none of them well enough:
 *
 *  - tls+tcp://: nng 1.5.2 has TLS but cannot tell a server which
 *    certificate the peer presented (NNG_OPT_TLS_PEER_CN came in nng 1.6),
 *    and every request must carry its peer's identity;
 *  - ipc://: nng 1.5.2's ipc listener stops accepting for good once a
 *    client disconnects during the SP header exchange (nanomsg/nng#1518),
 *    so any local user allowed to connect could stop the service with
 *    one connect and close;
 *  - tcp://: closing an nng 1.5.2 REP socket whose peers had been cut
 *    away by a network-namespace link was seen to wait for ever for a
 *    pipe that never went (nng_close in nni_sock_shutdown; a controller
 *    then never stopped), and caps and the idle sweep had to be grafted
 *    on through pipe callbacks.
 *
 * It accepts connections (capped in all and, on tcp and tls, per peer
 * address), runs the TLS handshake (5 s deadline; a client certificate
 * chaining to the CA is required, default purpose checks: ssl_client) or
 * reads the ipc peer's uid and pid (SO_PEERCRED), exchanges SP headers
 * (5 s deadline), speaks the REP side of nng's SP framing (ipc:// frames
 * carry a type byte, 1, before the 64-bit length), and hands each request
 * to the server behind it (conn_call, on the connection's thread, with
 * the peer's identity given once at conn_open); replies go back with the
 * client's request ID. A connection idle for idle_ms is closed (never one
 * with a request in flight). One thread per connection, bounded by the
 * cap, serving one request at a time: a client that closes early, sends
 * garbage or stalls costs only its own thread, and is logged
 * (rate-limited) with its address and why. Clients stay nng REQ sockets.
 *
 * An ipc:// socket file is made as nng makes it: a stale file (a connect
 * to it is refused) is removed first, a live one fails the start; the
 * mode is set before anyone can connect; the file is removed at stop if
 * it is still ours. */
#ifndef QKDN_FRONT_H
#define QKDN_FRONT_H

#include "qkdn_log.h"

#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qkdn_front;

/* Who is at the other end of a connection: a verified certificate CN
 * (tls+tcp://), a uid and pid (ipc://), or neither (tcp://). */
#define QKDN_FRONT_NAME_MAX 64
struct qkdn_front_peer {
	bool has_name;
	char name[QKDN_FRONT_NAME_MAX]; /* NUL-terminated */
	bool has_uid;
	uint64_t uid, pid;
};

struct qkdn_front_config {
	const char *name;    /* service name for logs, "Ak", "Kx" */
	const char *log_src; /* log source tag */
	const char *url;     /* tcp:// or tls+tcp://HOST:PORT, or ipc://PATH */
	const char *ca, *cert, *key; /* PEM paths, tls+tcp:// only */
	int ipc_mode; /* ipc:// file mode; 0: as the umask makes it */
	/* The server behind: conn_open once a connection passed its handshakes
	 * (NULL: close it), conn_call for each request (it takes req; false: no
	 * reply, close the connection), conn_close at the end; all from the
	 * connection's thread. The server wakes the calls waiting for a reply
	 * before qkdn_front_stop. */
	void *server;
	void *(*conn_open)(void *server, const struct qkdn_front_peer *peer);
	bool (*conn_call)(void *conn, nng_msg *req, nng_msg **rsp);
	void (*conn_close)(void *conn);
	int max_conns;          /* > 0 */
	int max_conns_per_host; /* > 0; tcp:// and tls+tcp:// */
	int idle_ms;            /* > 0, or < 0: never */
	size_t recv_max; /* longest frame accepted (as nng's: with the ID) */
	struct qkdn_log_limit *refusals; /* rate limit of refusal lines */
};

/* True for the URLs the front serves (tcp://, tls+tcp://, ipc://). */
bool qkdn_front_serves(const char *url);
int qkdn_front_start(struct qkdn_front **out,
                     const struct qkdn_front_config *cfg)
    __attribute__((warn_unused_result));
/* Close the listening socket and every connection, join every thread
 * (the server has woken the ones waiting in conn_call). */
void qkdn_front_stop(struct qkdn_front *f);

#endif
