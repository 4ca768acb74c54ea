/* One nng REP server skeleton for every qkdn service (Ak, Kx today; Ck, Cx
 * and M tomorrow): a number of REP contexts, each an explicit aio state
 * machine (receive, decode, dispatch by message type, reply), error
 * replies that name the cause, and a small pool of worker threads.
 *
 * Nothing blocks in an aio callback: a handler that touches LMDB or takes a
 * lock that may be held for long is marked on_worker and runs on a worker
 * thread, which replies from there. A handler either replies before it
 * returns (qkdn_server_reply / qkdn_server_error), asks to be called again
 * later with the same request (qkdn_server_retry), or keeps the request and
 * replies later from any thread (it returns without replying; the context
 * then waits, and takes no new request, until it does).
 *
 * The server owns the decoded request: it stays valid until the reply and
 * is cleared (its key material wiped) after it. */
#ifndef QKDN_SERVER_H
#define QKDN_SERVER_H

#include "qkdn_msg.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qkdn_server;
struct qkdn_server_req; /* one context: the request it serves now */

struct qkdn_handler {
	uint32_t type; /* message type it serves */
	void (*handle)(struct qkdn_server_req *r, struct qkdn_msg *req);
	bool on_worker; /* touches LMDB or a long-held lock */
};

struct qkdn_server_config {
	const char *name;    /* "Ak", "Kx": in reasons and logs */
	const char *log_src; /* log source tag, e.g. "ak" */
	int refusal_level;   /* log level of error replies (QKDN_LOG_*) */
	const char *url;
	int ipc_mode;     /* file mode of an ipc:// socket; 0: nng's default */
	int contexts;     /* requests served at once */
	int workers;      /* worker threads (0 if no handler needs one) */
	size_t recv_max;  /* largest request accepted, bytes */
	size_t slot_size; /* per-context memory for the handlers */
	const struct qkdn_handler *handlers;
	size_t n_handlers;
	void *arg; /* handed to handlers by qkdn_server_arg */
	atomic_uint_fast64_t *errors; /* counts error replies, if not NULL */
};

int qkdn_server_start(struct qkdn_server **out,
                      const struct qkdn_server_config *cfg)
    __attribute__((warn_unused_result));
/* Stop receiving, wait for the workers, close. Requests a handler still
 * holds are abandoned: call after whatever completes them has stopped. */
void qkdn_server_stop(struct qkdn_server *s);

/* For handlers. */
void *qkdn_server_arg(const struct qkdn_server_req *r);
/* slot_size bytes of this context's own, zeroed at start only. */
void *qkdn_server_slot(struct qkdn_server_req *r);
/* The request whose slot this is. */
struct qkdn_server_req *qkdn_server_req_of_slot(void *slot);
/* The peer's uid on ipc:// (false elsewhere). */
bool qkdn_server_peer_uid(const struct qkdn_server_req *r, uint64_t *uid);
/* Send rsp (its req_id set here), then clear it and the request. */
void qkdn_server_reply(struct qkdn_server_req *r, struct qkdn_msg *rsp);
/* Send an ERROR reply (code < 0) with reason, counted and logged. */
void qkdn_server_error(struct qkdn_server_req *r, int code, const char *why);
/* Call the handler again with the same request after ms. */
void qkdn_server_retry(struct qkdn_server_req *r, int ms);

#endif
