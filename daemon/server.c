#include "qkdn_server.h"

#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>
#include <nng/transport/ipc/ipc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum req_state { REQ_RECV, REQ_HANDLING, REQ_WAIT, REQ_SEND };

struct qkdn_server_req {
	struct qkdn_server *srv;
	enum req_state state;
	nng_aio *aio;
	nng_ctx ctx;
	struct qkdn_msg req;
	const struct qkdn_handler *h;
	bool has_uid;
	uint64_t uid;
	struct qkdn_server_req *next_work; /* in the worker queue */
	_Alignas(max_align_t) unsigned char slot[];
};

struct qkdn_server {
	struct qkdn_server_config cfg;
	struct qkdn_log_limit refusals; /* anyone who connects can cause them */
	nng_socket sock;
	bool sock_open;
	size_t req_size; /* one context with its slot */
	unsigned char *reqs;
	/* workers: a FIFO of requests whose handler must not run in a
	 * callback */
	nng_mtx *mtx;
	nng_cv *cv;
	bool stopping;
	struct qkdn_server_req *head, *tail;
	nng_thread **threads;
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
	*uid = r->uid;
	return r->has_uid;
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
		if (qkdn_rpc_pack(&e, &nm) != 0) {
			recv_next(r);
			return;
		}
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

static void
dispatch(struct qkdn_server_req *r, nng_msg *nm)
{
	struct qkdn_server *s = r->srv;
	struct qkdn_decode_error err = {0};
	nng_pipe p = nng_msg_get_pipe(nm);
	r->has_uid = nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &r->uid) == 0;
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

	switch (r->state) {
	case REQ_RECV:
		if (rv != 0) {
			if (!closed)
				recv_next(r);
			return;
		}
		dispatch(r, nng_aio_get_msg(r->aio));
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

int
qkdn_server_start(struct qkdn_server **out,
                  const struct qkdn_server_config *cfg)
{
	struct qkdn_server *s = calloc(1, sizeof(*s));
	int rv;
	if (s == NULL)
		return QKDN_E_NOMEM;
	s->cfg = *cfg;
	s->req_size = sizeof(struct qkdn_server_req) +
	              (cfg->slot_size + _Alignof(max_align_t) - 1) /
	                  _Alignof(max_align_t) * _Alignof(max_align_t);
	if ((s->reqs = calloc((size_t)cfg->contexts, s->req_size)) == NULL ||
	    (cfg->workers > 0 &&
	     (s->threads = calloc((size_t)cfg->workers, sizeof(*s->threads))) ==
	         NULL)) {
		rv = NNG_ENOMEM;
		goto fail;
	}
	if ((rv = nng_mtx_alloc(&s->mtx)) != 0 ||
	    (rv = nng_cv_alloc(&s->cv, s->mtx)) != 0 ||
	    (rv = nng_rep0_open(&s->sock)) != 0)
		goto fail;
	s->sock_open = true;
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, cfg->recv_max);
	for (int i = 0; i < cfg->contexts; i++) {
		struct qkdn_server_req *r = req_at(s, i);
		r->srv = s;
		if ((rv = nng_aio_alloc(&r->aio, server_cb, r)) != 0 ||
		    (rv = nng_ctx_open(&r->ctx, s->sock)) != 0)
			goto fail;
	}
	for (int i = 0; i < cfg->workers; i++)
		if ((rv = nng_thread_create(&s->threads[i], worker, s)) != 0)
			goto fail;
	nng_listener l;
	if ((rv = nng_listener_create(&l, s->sock, cfg->url)) != 0)
		goto fail;
	if (cfg->ipc_mode != 0 && strncmp(cfg->url, "ipc://", 6) == 0)
		nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, cfg->ipc_mode);
	if ((rv = nng_listener_start(l, 0)) != 0) {
		QLOG_ERR(cfg->log_src, "cannot listen on %s: %s", cfg->url,
		         nng_strerror(rv));
		goto fail;
	}
	for (int i = 0; i < cfg->contexts; i++)
		recv_next(req_at(s, i));
	*out = s;
	return 0;
fail:
	qkdn_server_stop(s);
	return qkdn_err_from_nng(rv);
}

void
qkdn_server_stop(struct qkdn_server *s)
{
	if (s == NULL)
		return;
	/* handlers running on workers finish (and may reply) first */
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
	for (int i = 0; s->reqs != NULL && i < s->cfg.contexts; i++)
		if (req_at(s, i)->aio != NULL)
			nng_aio_stop(req_at(s, i)->aio);
	if (s->sock_open)
		nng_close(s->sock);
	for (int i = 0; s->reqs != NULL && i < s->cfg.contexts; i++) {
		nng_aio_free(req_at(s, i)->aio);
		qkdn_msg_clear(&req_at(s, i)->req);
	}
	if (s->cv != NULL)
		nng_cv_free(s->cv);
	if (s->mtx != NULL)
		nng_mtx_free(s->mtx);
	free(s->threads);
	free(s->reqs);
	free(s);
}
