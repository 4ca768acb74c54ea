/* One REP server skeleton for every qkdn service (Ak, Kx, Ck, Cx; M
 * tomorrow): decode, dispatch by message type, reply; error replies that
 * name the cause. Clients are nng REQ sockets; the listener is the front
 * (front.c: our code accepts, knows the peer, speaks nng's SP framing on
 * tcp://, tls+tcp:// and ipc://; why not nng's own listeners is said
 * there).
 *
 * Each connection's thread serves its requests one at a time with a
 * request state (and slot) of its own: it decodes, runs the handler and
 * waits for the reply. The thread is the connection's own, so a handler
 * may touch LMDB or take a lock held for long without holding up other
 * connections, and no hand-off to another thread adds to a round trip. A
 * handler either replies before it returns (qkdn_server_reply /
 * qkdn_server_error), asks to be called again later with the same request
 * (qkdn_server_retry: that holds only its connection's thread), or keeps
 * the request and replies later from any thread (it returns without
 * replying; the connection then waits, and reads no new request, until it
 * does). Requests served at once are bounded by max_conns.
 *
 * The server owns the decoded request: it stays valid until the reply and
 * is cleared (its key material wiped) after it.
 *
 * Every listener caps its connections (in all, and from one peer address
 * on tcp and tls) and closes a connection that sent no request for
 * idle_ms; one with a request in flight is never closed as idle. A
 * refused connection (over a cap, or one that closes early, sends garbage
 * or stalls in the handshake) is logged (rate-limited) with the peer's
 * address and why. */
#ifndef QKDN_SERVER_H
#define QKDN_SERVER_H

#include "qkdn_msg.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qkdn_server;
struct qkdn_server_req; /* one connection's request state */

struct qkdn_handler {
	uint32_t type; /* message type it serves */
	void (*handle)(struct qkdn_server_req *r, struct qkdn_msg *req);
};

/* PEM files of a tls+tcp:// listener (paths as given; read at start). */
struct qkdn_tls_files {
	const char *ca; /* the network's CA: client certificates chain to it */
	const char *cert; /* this node's certificate (chain) */
	const char *key;  /* its private key */
};

/* Defaults of the connection limits (a field left 0 takes them; a
 * negative field means no limit). 256 connections: pooled, mostly idle
 * clients fit while file descriptors and threads (one per connection)
 * stay bounded. 32 from one address:
 * a peer KM needs one per link and an application host a few, and one host
 * can then hold at most an eighth of the listener. 60 s idle: far above any
 * request's deadline, so only forgotten connections are closed (a client
 * reconnects, and retries a request the server never read). */
#define QKDN_SERVER_MAX_CONNS_DEFAULT          256
#define QKDN_SERVER_MAX_CONNS_PER_HOST_DEFAULT 32
#define QKDN_SERVER_IDLE_MS_DEFAULT            60000

struct qkdn_server_config {
	const char *name;    /* "Ak", "Kx": in reasons and logs */
	const char *log_src; /* log source tag, e.g. "ak" */
	int refusal_level;   /* log level of error replies (QKDN_LOG_*) */
	const char *url;
	int ipc_mode;     /* file mode of an ipc:// socket; 0: the umask's */
	size_t recv_max;  /* largest request accepted, bytes */
	size_t slot_size; /* per-connection memory for the handlers */
	const struct qkdn_handler *handlers;
	size_t n_handlers;
	void *arg; /* handed to handlers by qkdn_server_arg */
	atomic_uint_fast64_t *errors; /* counts error replies, if not NULL */
	const struct qkdn_tls_files *tls; /* required for a tls+tcp:// url */
	int max_conns;          /* connections at once on the listener */
	int max_conns_per_host; /* from one peer address, tcp and tls */
	int idle_ms; /* a connection with no request this long is closed */
};

int qkdn_server_start(struct qkdn_server **out,
                      const struct qkdn_server_config *cfg)
    __attribute__((warn_unused_result));
/* Stop receiving, let running handlers finish, close. Requests a handler still
 * holds are abandoned: call after whatever completes them has stopped. */
void qkdn_server_stop(struct qkdn_server *s);

/* For handlers. */
void *qkdn_server_arg(const struct qkdn_server_req *r);
/* slot_size bytes of this connection's own, zeroed when it opens. */
void *qkdn_server_slot(struct qkdn_server_req *r);
/* The request whose slot this is. */
struct qkdn_server_req *qkdn_server_req_of_slot(void *slot);
/* The peer's uid on ipc:// (SO_PEERCRED at connect; false elsewhere). */
bool qkdn_server_peer_uid(const struct qkdn_server_req *r, uint64_t *uid);
/* The verified certificate CN of a request that came over tls+tcp://,
 * NULL for ipc:// and tcp://. Valid until the reply. */
const char *qkdn_server_peer_name(const struct qkdn_server_req *r);
/* Send rsp (its req_id set here), then clear it and the request. */
void qkdn_server_reply(struct qkdn_server_req *r, struct qkdn_msg *rsp);
/* Send an ERROR reply (code < 0) with reason, counted and logged. */
void qkdn_server_error(struct qkdn_server_req *r, int code, const char *why);
/* Call the handler again with the same request after ms. */
void qkdn_server_retry(struct qkdn_server_req *r, int ms);

#endif
