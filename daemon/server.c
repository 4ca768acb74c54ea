#include "qkdn_server.h"

#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"
#include "qkdn_front.h"

#include <limits.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct qkdn_server_req {
	struct qkdn_server *srv;
	struct qkdn_msg req;
	const struct qkdn_handler *h;
	struct front_conn *fc;       /* the front's connection */
	struct qkdn_front_peer peer; /* that connection's peer */
	_Alignas(max_align_t) unsigned char slot[];
};

struct qkdn_server {
	struct qkdn_server_config cfg;
	struct qkdn_log_limit refusals; /* anyone who connects can cause them */
	size_t req_size;                /* one request state with its slot */
	/* limits, resolved from the config (INT_MAX / -1: none) */
	int max_conns, max_per_host, idle_ms;
	struct qkdn_log_limit conn_refusals;
	/* the front, and its open connections */
	struct qkdn_front *front;
	pthread_mutex_t fmtx; /* guards fconns, front_stopping */
	struct front_conn *fconns;
	bool front_stopping;
};

/* A connection of the front: its thread serves one request at a time
 * with this one request state (and slot), and waits here for the reply
 * (from the handler, or whoever holds the request) or a retry. */
enum fc_state { FC_BUSY, FC_REPLIED, FC_RETRY };
struct front_conn {
	struct qkdn_server *srv;
	pthread_mutex_t mtx;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	enum fc_state state;
	bool stopping;   /* the server stops: give up waiting */
	nng_msg *rsp;    /* FC_REPLIED: the reply (NULL: none could be made) */
	uint64_t due_ms; /* FC_RETRY: when to run the handler again */
	struct front_conn *prev, *next; /* in the server's fconns */
	struct qkdn_server_req *r;
};

void *
qkdn_server_arg(const struct qkdn_server_req *r)
{
	return r->srv->cfg.arg;
}

void *
qkdn_server_slot(struct qkdn_server_req *r)
{
	return r->slot;
}

struct qkdn_server_req *
qkdn_server_req_of_slot(void *slot)
{
	return (
	    struct qkdn_server_req *)((unsigned char *)slot -
	                              offsetof(struct qkdn_server_req, slot));
}

bool
qkdn_server_peer_uid(const struct qkdn_server_req *r, uint64_t *uid)
{
	*uid = r->peer.uid;
	return r->peer.has_uid;
}

const char *
qkdn_server_peer_name(const struct qkdn_server_req *r)
{
	return r->peer.has_name ? r->peer.name : NULL;
}

/* A front request is answered (nm), or asks to be run again in ms. */
static void
front_done(struct front_conn *fc, enum fc_state st, nng_msg *nm, int ms)
{
	pthread_mutex_lock(&fc->mtx);
	fc->state = st;
	fc->rsp = nm;
	fc->due_ms = qkdn_now_ms() + (uint64_t)(ms > 0 ? ms : 0);
	pthread_cond_signal(&fc->cv);
	pthread_mutex_unlock(&fc->mtx);
}

void
qkdn_server_reply(struct qkdn_server_req *r, struct qkdn_msg *rsp)
{
	nng_msg *nm = NULL;
	uint64_t req_id = r->req.req_id;
	rsp->req_id = req_id;
	int rv = qkdn_rpc_pack(rsp, &nm);
	qkdn_msg_clear(rsp); /* wipes the keys of a KEY_RSP */
	qkdn_msg_clear(&r->req);
	if (rv != 0) {
		struct qkdn_msg e;
		qkdn_rpc_error(&e, req_id, rv, "reply could not be encoded");
		if (qkdn_rpc_pack(&e, &nm) != 0)
			nm = NULL;
	}
	front_done(r->fc, FC_REPLIED, nm, 0);
}

void
qkdn_server_error(struct qkdn_server_req *r, int code, const char *why)
{
	struct qkdn_server *s = r->srv;
	struct qkdn_msg m;
	if (s->cfg.errors != NULL)
		atomic_fetch_add(s->cfg.errors, 1);
	QLOG_LIMITED(&s->refusals, s->cfg.refusal_level, s->cfg.log_src,
	             "refused a %s request: %s: %s", s->cfg.name,
	             qkdn_strerror(code), why);
	qkdn_rpc_error(&m, r->req.req_id, code, why);
	qkdn_server_reply(r, &m);
}

void
qkdn_server_retry(struct qkdn_server_req *r, int ms)
{
	front_done(r->fc, FC_RETRY, NULL, ms);
}

/* Run the request's handler on this connection's thread: it is the
 * connection's own, so a handler may block on LMDB or a lock here without
 * holding up anyone else's requests, and no hand-off to another thread
 * adds to the round trip. */
static void
handle(struct qkdn_server_req *r)
{
	r->h->handle(r, &r->req); /* r may be replied to meanwhile */
}

/* Decode the request, and run its handler. */
static void
dispatch(struct qkdn_server_req *r, nng_msg *nm)
{
	struct qkdn_server *s = r->srv;
	struct qkdn_decode_error err = {0};
	int rv = qkdn_rpc_unpack(nm, &r->req, &err);
	qkdn_rpc_free_wiped(nm);
	if (rv != 0) {
		qkdn_server_error(r, rv, err.reason);
		return;
	}
	for (size_t i = 0; i < s->cfg.n_handlers; i++) {
		if (s->cfg.handlers[i].type == r->req.type) {
			r->h = &s->cfg.handlers[i];
			handle(r);
			return;
		}
	}
	snprintf(err.reason, sizeof(err.reason), "%s is not served on %s",
	         qkdn_msg_type_name(r->req.type), s->cfg.name);
	qkdn_server_error(r, QKDN_E_UNSUPPORTED, err.reason);
}

/* A front connection passed its handshakes: its own request state. */
static void *
front_open(void *arg, const struct qkdn_front_peer *peer)
{
	struct qkdn_server *s = arg;
	struct front_conn *fc = calloc(1, sizeof(*fc));
	pthread_condattr_t ca;
	if (fc == NULL)
		return NULL;
	if ((fc->r = calloc(1, s->req_size)) == NULL) {
		free(fc);
		return NULL;
	}
	fc->srv = s;
	fc->r->srv = s;
	fc->r->fc = fc;
	fc->r->peer = *peer;
	pthread_mutex_init(&fc->mtx, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fc->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_lock(&s->fmtx);
	fc->stopping = s->front_stopping;
	fc->next = s->fconns;
	if (s->fconns != NULL)
		s->fconns->prev = fc;
	s->fconns = fc;
	pthread_mutex_unlock(&s->fmtx);
	return fc;
}

/* Wait (fc->mtx held) until ms since boot (qkdn_now_ms) or a wake. */
static void
wait_until(struct front_conn *fc, uint64_t due_ms)
{
	struct timespec now, at;
	uint64_t left = due_ms - qkdn_now_ms();
	clock_gettime(CLOCK_MONOTONIC, &now);
	at.tv_sec = now.tv_sec + (time_t)(left / 1000);
	at.tv_nsec = now.tv_nsec + (long)(left % 1000) * 1000000L;
	if (at.tv_nsec >= 1000000000L) {
		at.tv_sec++;
		at.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&fc->cv, &fc->mtx, &at);
}

/* One request of a front connection: decode, run the handler here, wait
 * for its reply. */
static bool
front_call(void *conn, nng_msg *req, nng_msg **rsp)
{
	struct front_conn *fc = conn;
	pthread_mutex_lock(&fc->mtx);
	bool stopping = fc->stopping;
	fc->state = FC_BUSY;
	pthread_mutex_unlock(&fc->mtx);
	if (stopping) {
		qkdn_rpc_free_wiped(req);
		return false;
	}
	dispatch(fc->r, req);
	pthread_mutex_lock(&fc->mtx);
	while (!fc->stopping) {
		if (fc->state == FC_REPLIED) {
			*rsp = fc->rsp;
			fc->rsp = NULL;
			pthread_mutex_unlock(&fc->mtx);
			return *rsp != NULL;
		}
		if (fc->state == FC_RETRY && qkdn_now_ms() >= fc->due_ms) {
			fc->state = FC_BUSY;
			pthread_mutex_unlock(&fc->mtx);
			handle(fc->r);
			pthread_mutex_lock(&fc->mtx);
			continue;
		}
		if (fc->state == FC_RETRY)
			wait_until(fc, fc->due_ms);
		else
			pthread_cond_wait(&fc->cv, &fc->mtx);
	}
	pthread_mutex_unlock(&fc->mtx);
	return false; /* the request, if still held, is abandoned */
}

static void
front_close(void *conn)
{
	struct front_conn *fc = conn;
	struct qkdn_server *s = fc->srv;
	pthread_mutex_lock(&s->fmtx);
	if (fc->prev != NULL)
		fc->prev->next = fc->next;
	else
		s->fconns = fc->next;
	if (fc->next != NULL)
		fc->next->prev = fc->prev;
	pthread_mutex_unlock(&s->fmtx);
	qkdn_rpc_free_wiped(fc->rsp);
	qkdn_msg_clear(&fc->r->req);
	pthread_cond_destroy(&fc->cv);
	pthread_mutex_destroy(&fc->mtx);
	free(fc->r);
	free(fc);
}

/* The front (TLS, the peer's identity, nng's framing) hands each request
 * to front_call on its connection's thread. */
static int
listen_front(struct qkdn_server *s)
{
	const struct qkdn_server_config *cfg = &s->cfg;
	const struct qkdn_tls_files *t = cfg->tls;
	struct qkdn_front_config fc = {
	    .name = cfg->name,
	    .log_src = cfg->log_src,
	    .url = cfg->url,
	    .ca = t != NULL ? t->ca : NULL,
	    .cert = t != NULL ? t->cert : NULL,
	    .key = t != NULL ? t->key : NULL,
	    .ipc_mode = cfg->ipc_mode,
	    .server = s,
	    .conn_open = front_open,
	    .conn_call = front_call,
	    .conn_close = front_close,
	    .max_conns = s->max_conns,
	    .max_conns_per_host = s->max_per_host,
	    .idle_ms = s->idle_ms,
	    .recv_max = cfg->recv_max,
	    .refusals = &s->conn_refusals,
	};
	return qkdn_front_start(&s->front, &fc);
}

/* Wake every front connection waiting for a reply: none will come. */
static void
front_wake_all(struct qkdn_server *s)
{
	pthread_mutex_lock(&s->fmtx);
	s->front_stopping = true;
	for (struct front_conn *fc = s->fconns; fc != NULL; fc = fc->next) {
		pthread_mutex_lock(&fc->mtx);
		fc->stopping = true;
		pthread_cond_signal(&fc->cv);
		pthread_mutex_unlock(&fc->mtx);
	}
	pthread_mutex_unlock(&s->fmtx);
}

static int
limit_of(int v, int dflt)
{
	return v == 0 ? dflt : v < 0 ? INT_MAX : v;
}

int
qkdn_server_start(struct qkdn_server **out,
                  const struct qkdn_server_config *cfg)
{
	struct qkdn_server *s = calloc(1, sizeof(*s));
	int rv;
	if (s == NULL)
		return QKDN_E_NOMEM;
	s->cfg = *cfg;
	pthread_mutex_init(&s->fmtx, NULL);
	s->max_conns = limit_of(cfg->max_conns, QKDN_SERVER_MAX_CONNS_DEFAULT);
	s->max_per_host = limit_of(cfg->max_conns_per_host,
	                           QKDN_SERVER_MAX_CONNS_PER_HOST_DEFAULT);
	s->idle_ms = cfg->idle_ms == 0  ? QKDN_SERVER_IDLE_MS_DEFAULT
	             : cfg->idle_ms < 0 ? -1
	                                : cfg->idle_ms;
	s->req_size = sizeof(struct qkdn_server_req) +
	              (cfg->slot_size + _Alignof(max_align_t) - 1) /
	                  _Alignof(max_align_t) * _Alignof(max_align_t);
	if (!qkdn_front_serves(cfg->url)) {
		QLOG_ERR(cfg->log_src,
		         "cannot serve %s on %s: not a tcp://, "
		         "tls+tcp:// or ipc:// address",
		         cfg->name, cfg->url);
		rv = QKDN_E_CONFIG;
		goto fail;
	}
	if ((rv = listen_front(s)) != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	qkdn_server_stop(s);
	return rv;
}

void
qkdn_server_stop(struct qkdn_server *s)
{
	if (s == NULL)
		return;
	/* the connections waiting for a reply give up; a handler running
	 * on a connection's thread finishes (and may reply); every thread is
	 * joined */
	front_wake_all(s);
	qkdn_front_stop(s->front);
	s->front = NULL;
	pthread_mutex_destroy(&s->fmtx);
	free(s);
}
