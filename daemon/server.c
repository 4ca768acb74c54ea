#include "qkdn_server.h"

#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"
#include "qkdn_front.h"

#include <arpa/inet.h>
#include <limits.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SWEEP_MIN_MS 50
#define SWEEP_MAX_MS 1000
#define ADDR_MAX     64

enum req_state { REQ_RECV, REQ_HANDLING, REQ_WAIT, REQ_SEND };

struct qkdn_server_req {
	struct qkdn_server *srv;
	enum req_state state;
	nng_aio *aio;
	nng_ctx ctx;
	struct qkdn_msg req;
	const struct qkdn_handler *h;
	bool counted;                      /* in its pipe's in-flight count */
	uint32_t pipe_id;                  /* the pipe it came on */
	struct front_conn *fc;             /* the front's connection, or NULL */
	struct qkdn_front_peer peer;       /* that connection's peer */
	struct qkdn_server_req *next_work; /* in the worker queue */
	_Alignas(max_align_t) unsigned char slot[];
};

struct qkdn_server {
	struct qkdn_server_config cfg;
	struct qkdn_log_limit refusals; /* anyone who connects can cause them */
	nng_socket sock;
	bool sock_open;
	size_t req_size; /* one context with its slot */
	int n_ctx;       /* nng contexts (none behind the front) */
	unsigned char *reqs;
	/* workers: a FIFO of requests whose handler must not run in a
	 * callback */
	nng_mtx *mtx;
	nng_cv *cv;
	bool stopping;
	struct qkdn_server_req *head, *tail;
	nng_thread **threads;
	/* limits, resolved from the config (INT_MAX / -1: none) */
	int max_conns, max_per_host, idle_ms;
	/* nng's listener (tcp://): its pipes, by pipe ID (open addressing,
	 * linear probes; a power of two of slots) */
	bool track;
	nng_mtx *pipes_mtx;
	struct pipe_ent *pipes;
	size_t pipes_cap, n_pipes;
	nng_aio *sweep;
	struct qkdn_log_limit conn_refusals, idles;
	/* tls+tcp:// and ipc://: the front, and its open connections */
	struct qkdn_front *front;
	pthread_mutex_t fmtx; /* guards fconns, front_stopping */
	struct front_conn *fconns;
	bool front_stopping;
};

/* A connection of the front: its thread serves one request at a time
 * with this one request state (and slot), and waits here for the reply
 * (from a worker, or whoever holds the request) or a retry. */
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

/* One admitted pipe of nng's (tcp://) listener. */
struct pipe_ent {
	uint32_t id;         /* 0: a free slot */
	int inflight;        /* requests received and not yet answered */
	uint64_t last_ms;    /* last request received or answered */
	bool closing;        /* closed by the idle sweep */
	char host[ADDR_MAX]; /* the peer's address (per-host cap) */
	char addr[ADDR_MAX]; /* for logs */
};

static struct qkdn_server_req *
req_at(struct qkdn_server *s, int i)
{
	return (struct qkdn_server_req *)(s->reqs + (size_t)i * s->req_size);
}

static void
recv_next(struct qkdn_server_req *r)
{
	r->state = REQ_RECV;
	nng_ctx_recv(r->ctx, r->aio);
}

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

static size_t
slot_home(const struct qkdn_server *s, uint32_t id)
{
	return (size_t)(id * 2654435761u) & (s->pipes_cap - 1);
}

static struct pipe_ent *
pipe_find(struct qkdn_server *s, uint32_t id)
{
	for (size_t i = slot_home(s, id);; i = (i + 1) & (s->pipes_cap - 1)) {
		if (s->pipes[i].id == id)
			return &s->pipes[i];
		if (s->pipes[i].id == 0)
			return NULL;
	}
}

static void
pipe_put(struct pipe_ent *tab, size_t cap, const struct pipe_ent *e)
{
	size_t i = (size_t)(e->id * 2654435761u) & (cap - 1);
	while (tab[i].id != 0)
		i = (i + 1) & (cap - 1);
	tab[i] = *e;
}

/* Insert, doubling the table when half full (the table only grows past
 * its first size when there is no connection cap). */
static int
pipe_insert(struct qkdn_server *s, const struct pipe_ent *e)
{
	if ((s->n_pipes + 1) * 2 > s->pipes_cap) {
		size_t cap = s->pipes_cap * 2;
		struct pipe_ent *tab = calloc(cap, sizeof(*tab));
		if (tab == NULL)
			return QKDN_E_NOMEM;
		for (size_t i = 0; i < s->pipes_cap; i++)
			if (s->pipes[i].id != 0)
				pipe_put(tab, cap, &s->pipes[i]);
		free(s->pipes);
		s->pipes = tab;
		s->pipes_cap = cap;
	}
	pipe_put(s->pipes, s->pipes_cap, e);
	s->n_pipes++;
	return 0;
}

/* Remove with backward shifts, so probes never meet a hole. */
static void
pipe_remove(struct qkdn_server *s, struct pipe_ent *e)
{
	size_t mask = s->pipes_cap - 1, i = (size_t)(e - s->pipes), j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (s->pipes[j].id == 0)
			break;
		size_t k = slot_home(s, s->pipes[j].id);
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (!stays) {
			s->pipes[i] = s->pipes[j];
			i = j;
		}
	}
	memset(&s->pipes[i], 0, sizeof(s->pipes[i]));
	s->n_pipes--;
}

/* A request arrived on its pipe: the pipe is busy, not idle. */
static void
req_begin(struct qkdn_server_req *r)
{
	struct qkdn_server *s = r->srv;
	if (!s->track)
		return;
	nng_mtx_lock(s->pipes_mtx);
	struct pipe_ent *e = pipe_find(s, r->pipe_id);
	if (e != NULL) {
		e->inflight++;
		e->last_ms = qkdn_now_ms();
		r->counted = true;
	}
	nng_mtx_unlock(s->pipes_mtx);
}

static void
req_end(struct qkdn_server_req *r)
{
	struct qkdn_server *s = r->srv;
	if (!r->counted)
		return;
	r->counted = false;
	nng_mtx_lock(s->pipes_mtx);
	struct pipe_ent *e = pipe_find(s, r->pipe_id);
	if (e != NULL) {
		e->inflight--;
		e->last_ms = qkdn_now_ms();
	}
	nng_mtx_unlock(s->pipes_mtx);
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
	req_end(r);
	if (rv != 0) {
		struct qkdn_msg e;
		qkdn_rpc_error(&e, req_id, rv, "reply could not be encoded");
		if (qkdn_rpc_pack(&e, &nm) != 0)
			nm = NULL;
	}
	if (r->fc != NULL) {
		front_done(r->fc, FC_REPLIED, nm, 0);
		return;
	}
	if (nm == NULL) {
		recv_next(r);
		return;
	}
	r->state = REQ_SEND;
	nng_aio_set_msg(r->aio, nm);
	nng_ctx_send(r->ctx, r->aio);
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
	if (r->fc != NULL) {
		front_done(r->fc, FC_RETRY, NULL, ms);
		return;
	}
	r->state = REQ_WAIT;
	nng_sleep_aio(ms, r->aio);
}

/* Run the request's handler here, or queue it for a worker. */
static void
handle(struct qkdn_server_req *r)
{
	struct qkdn_server *s = r->srv;
	if (!r->h->on_worker) {
		r->state = REQ_HANDLING;
		r->h->handle(r, &r->req); /* r may be replied to meanwhile */
		return;
	}
	nng_mtx_lock(s->mtx);
	r->state = REQ_HANDLING;
	r->next_work = NULL;
	if (s->tail != NULL)
		s->tail->next_work = r;
	else
		s->head = r;
	s->tail = r;
	nng_cv_wake1(s->cv);
	nng_mtx_unlock(s->mtx);
}

static void
worker(void *arg)
{
	struct qkdn_server *s = arg;
	nng_mtx_lock(s->mtx);
	for (;;) {
		while (s->head == NULL && !s->stopping)
			nng_cv_wait(s->cv);
		if (s->stopping)
			break;
		struct qkdn_server_req *r = s->head;
		s->head = r->next_work;
		if (s->head == NULL)
			s->tail = NULL;
		nng_mtx_unlock(s->mtx);
		r->h->handle(r, &r->req);
		nng_mtx_lock(s->mtx);
	}
	nng_mtx_unlock(s->mtx);
}

/* Decode the request, and run or queue its handler. */
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

static void
server_cb(void *arg)
{
	struct qkdn_server_req *r = arg;
	int rv = nng_aio_result(r->aio);
	bool closed = rv == NNG_ECLOSED || rv == NNG_ECANCELED;
	nng_msg *nm;

	switch (r->state) {
	case REQ_RECV:
		if (rv != 0) {
			if (!closed)
				recv_next(r);
			return;
		}
		nm = nng_aio_get_msg(r->aio);
		r->pipe_id = (uint32_t)nng_pipe_id(nng_msg_get_pipe(nm));
		req_begin(r);
		dispatch(r, nm);
		return;
	case REQ_WAIT:
		if (closed) {
			qkdn_msg_clear(&r->req);
			return;
		}
		handle(r);
		return;
	case REQ_SEND:
		if (rv != 0) {
			qkdn_rpc_free_wiped(nng_aio_get_msg(r->aio));
			if (closed)
				return;
		}
		recv_next(r);
		return;
	case REQ_HANDLING:
		return; /* no aio is out while a handler holds the request */
	}
}

/* The peer of an nng (tcp://) pipe, for logs (addr) and the per-host
 * cap (host; empty if unknown). */
static void
pipe_peer(nng_pipe p, char *addr, char *host)
{
	nng_sockaddr sa;
	char ip[INET6_ADDRSTRLEN] = "";
	host[0] = 0;
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0) {
		snprintf(addr, ADDR_MAX, "an unknown peer");
		return;
	}
	if (sa.s_family == NNG_AF_INET) {
		inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip));
		snprintf(addr, ADDR_MAX, "%s:%u", ip,
		         (unsigned)ntohs(sa.s_in.sa_port));
	} else if (sa.s_family == NNG_AF_INET6) {
		inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof(ip));
		snprintf(addr, ADDR_MAX, "[%s]:%u", ip,
		         (unsigned)ntohs(sa.s_in6.sa_port));
	} else {
		snprintf(addr, ADDR_MAX, "a peer of family %u",
		         (unsigned)sa.s_family);
		return;
	}
	snprintf(host, ADDR_MAX, "%s", ip);
}

/* Why a new pipe is over a cap (NULL: admitted, and added). */
static const char *
admit_locked(struct qkdn_server *s, const struct pipe_ent *e, char *why,
             size_t len)
{
	if ((int)s->n_pipes >= s->max_conns) {
		snprintf(why, len, "over the connection cap (%d)",
		         s->max_conns);
		return why;
	}
	int same = 0;
	for (size_t i = 0; e->host[0] != 0 && i < s->pipes_cap; i++)
		if (s->pipes[i].id != 0 &&
		    strcmp(s->pipes[i].host, e->host) == 0)
			same++;
	if (same >= s->max_per_host) {
		snprintf(why, len,
		         "over the connection cap (%d from one address)",
		         s->max_per_host);
		return why;
	}
	if (pipe_insert(s, e) != 0) {
		snprintf(why, len, "out of memory");
		return why;
	}
	return NULL;
}

/* NNG_PIPE_EV_ADD_PRE: count the pipe, or close it before it is used. */
static void
pipe_added(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct qkdn_server *s = arg;
	struct pipe_ent e = {.id = (uint32_t)nng_pipe_id(p),
	                     .last_ms = qkdn_now_ms()};
	char why[96];
	(void)ev;
	pipe_peer(p, e.addr, e.host);
	nng_mtx_lock(s->pipes_mtx);
	const char *over = admit_locked(s, &e, why, sizeof(why));
	nng_mtx_unlock(s->pipes_mtx);
	if (over == NULL)
		return;
	QLOG_LIMITED(&s->conn_refusals, QKDN_LOG_WARN, s->cfg.log_src,
	             "refused a %s connection from %s: %s", s->cfg.name, e.addr,
	             over);
	nng_pipe_close(p);
}

/* NNG_PIPE_EV_REM_POST: also runs for pipes refused above, which were
 * never counted. */
static void
pipe_removed(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct qkdn_server *s = arg;
	(void)ev;
	nng_mtx_lock(s->pipes_mtx);
	struct pipe_ent *e = pipe_find(s, (uint32_t)nng_pipe_id(p));
	if (e != NULL)
		pipe_remove(s, e);
	nng_mtx_unlock(s->pipes_mtx);
}

static int
sweep_every_ms(const struct qkdn_server *s)
{
	int ms = s->idle_ms / 4;
	return ms < SWEEP_MIN_MS   ? SWEEP_MIN_MS
	       : ms > SWEEP_MAX_MS ? SWEEP_MAX_MS
	                           : ms;
}

/* Close the pipes that have no request in flight and had none for
 * idle_ms; a few at a time, outside the lock (closing runs REM_POST). */
static void
sweep_cb(void *arg)
{
	struct qkdn_server *s = arg;
	if (nng_aio_result(s->sweep) != 0)
		return; /* stopping */
	for (;;) {
		struct pipe_ent idle[16];
		int n = 0;
		nng_mtx_lock(s->pipes_mtx);
		uint64_t now = qkdn_now_ms(); /* not before a last_ms */
		for (size_t i = 0; i < s->pipes_cap && n < 16; i++) {
			struct pipe_ent *e = &s->pipes[i];
			if (e->id != 0 && !e->closing && e->inflight == 0 &&
			    now - e->last_ms >= (uint64_t)s->idle_ms) {
				e->closing = true;
				idle[n++] = *e;
			}
		}
		nng_mtx_unlock(s->pipes_mtx);
		for (int i = 0; i < n; i++) {
			nng_pipe p = NNG_PIPE_INITIALIZER;
			p.id = idle[i].id;
			QLOG_LIMITED(&s->idles, QKDN_LOG_DEBUG, s->cfg.log_src,
			             "closed an idle %s connection from %s "
			             "(no request for %d ms)",
			             s->cfg.name, idle[i].addr, s->idle_ms);
			nng_pipe_close(p);
		}
		if (n < 16)
			break;
	}
	nng_sleep_aio(sweep_every_ms(s), s->sweep);
}

static int
limit_of(int v, int dflt)
{
	return v == 0 ? dflt : v < 0 ? INT_MAX : v;
}

/* Caps and the idle sweep of nng's (tcp://) listener. */
static int
track_pipes(struct qkdn_server *s)
{
	int rv;
	s->pipes_cap = 16;
	while (s->max_conns != INT_MAX &&
	       s->pipes_cap < 2 * (size_t)s->max_conns)
		s->pipes_cap *= 2;
	if ((s->pipes = calloc(s->pipes_cap, sizeof(*s->pipes))) == NULL)
		return NNG_ENOMEM;
	if ((rv = nng_mtx_alloc(&s->pipes_mtx)) != 0 ||
	    (rv = nng_aio_alloc(&s->sweep, sweep_cb, s)) != 0 ||
	    (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, pipe_added,
	                          s)) != 0 ||
	    (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_removed,
	                          s)) != 0)
		return rv;
	s->track = true;
	if (s->idle_ms > 0)
		nng_sleep_aio(sweep_every_ms(s), s->sweep);
	return 0;
}

static int
listen_nng(struct qkdn_server *s)
{
	const struct qkdn_server_config *cfg = &s->cfg;
	nng_listener l;
	int rv;
	if ((rv = track_pipes(s)) != 0 ||
	    (rv = nng_listener_create(&l, s->sock, cfg->url)) != 0)
		return rv;
	if ((rv = nng_listener_start(l, 0)) != 0)
		QLOG_ERR(cfg->log_src, "cannot listen on %s: %s", cfg->url,
		         nng_strerror(rv));
	return rv;
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

/* One request of a front connection, served as one of the contexts'
 * (decode, handler here or on a worker); waits for its reply. */
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

/* tls+tcp:// and ipc://: the front (TLS, the peer's identity, nng's
 * framing) hands each request to front_call on its connection's thread. */
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
	bool front = qkdn_front_serves(cfg->url);
	s->n_ctx = front ? 0 : cfg->contexts;
	s->max_conns = limit_of(cfg->max_conns, QKDN_SERVER_MAX_CONNS_DEFAULT);
	s->max_per_host = limit_of(cfg->max_conns_per_host,
	                           QKDN_SERVER_MAX_CONNS_PER_HOST_DEFAULT);
	s->idle_ms = cfg->idle_ms == 0  ? QKDN_SERVER_IDLE_MS_DEFAULT
	             : cfg->idle_ms < 0 ? -1
	                                : cfg->idle_ms;
	s->req_size = sizeof(struct qkdn_server_req) +
	              (cfg->slot_size + _Alignof(max_align_t) - 1) /
	                  _Alignof(max_align_t) * _Alignof(max_align_t);
	if ((s->n_ctx > 0 &&
	     (s->reqs = calloc((size_t)s->n_ctx, s->req_size)) == NULL) ||
	    (cfg->workers > 0 &&
	     (s->threads = calloc((size_t)cfg->workers, sizeof(*s->threads))) ==
	         NULL)) {
		rv = NNG_ENOMEM;
		goto fail;
	}
	if ((rv = nng_mtx_alloc(&s->mtx)) != 0 ||
	    (rv = nng_cv_alloc(&s->cv, s->mtx)) != 0 ||
	    (!front && (rv = nng_rep0_open(&s->sock)) != 0))
		goto fail;
	s->sock_open = !front;
	if (!front)
		nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, cfg->recv_max);
	for (int i = 0; i < s->n_ctx; i++) {
		struct qkdn_server_req *r = req_at(s, i);
		r->srv = s;
		if ((rv = nng_aio_alloc(&r->aio, server_cb, r)) != 0 ||
		    (rv = nng_ctx_open(&r->ctx, s->sock)) != 0)
			goto fail;
	}
	for (int i = 0; i < cfg->workers; i++)
		if ((rv = nng_thread_create(&s->threads[i], worker, s)) != 0)
			goto fail;
	if ((rv = front ? listen_front(s) : listen_nng(s)) != 0)
		goto fail;
	for (int i = 0; i < s->n_ctx; i++)
		recv_next(req_at(s, i));
	*out = s;
	return 0;
fail:
	qkdn_server_stop(s);
	return rv < 0 ? rv : qkdn_err_from_nng(rv); /* qkdn's are negative */
}

void
qkdn_server_stop(struct qkdn_server *s)
{
	if (s == NULL)
		return;
	if (s->sweep != NULL)
		nng_aio_stop(s->sweep);
	/* handlers running on workers finish (and may reply) first; queued
	 * ones never run */
	if (s->mtx != NULL) {
		nng_mtx_lock(s->mtx);
		s->stopping = true;
		if (s->cv != NULL)
			nng_cv_wake(s->cv);
		nng_mtx_unlock(s->mtx);
	}
	for (int i = 0; s->threads != NULL && i < s->cfg.workers; i++)
		if (s->threads[i] != NULL)
			nng_thread_destroy(s->threads[i]);
	/* then the front's connections, which no worker touches now: the
	 * ones waiting for a reply give up, and every thread is joined */
	front_wake_all(s);
	qkdn_front_stop(s->front);
	s->front = NULL;
	for (int i = 0; s->reqs != NULL && i < s->n_ctx; i++)
		if (req_at(s, i)->aio != NULL)
			nng_aio_stop(req_at(s, i)->aio);
	if (s->sock_open)
		nng_close(s->sock); /* the last pipe callbacks run in here */
	for (int i = 0; s->reqs != NULL && i < s->n_ctx; i++) {
		nng_aio_free(req_at(s, i)->aio);
		qkdn_msg_clear(&req_at(s, i)->req);
	}
	nng_aio_free(s->sweep);
	if (s->pipes_mtx != NULL)
		nng_mtx_free(s->pipes_mtx);
	free(s->pipes);
	if (s->cv != NULL)
		nng_cv_free(s->cv);
	if (s->mtx != NULL)
		nng_mtx_free(s->mtx);
	pthread_mutex_destroy(&s->fmtx);
	free(s->threads);
	free(s->reqs);
	free(s);
}
