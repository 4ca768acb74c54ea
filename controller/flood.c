/* Flooding LSAs to adjacent controllers (flood.h). */
#include "flood.h"

#include "ctl.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"
#include "qkdn_sp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC "flood"

struct nb {
	struct ctl_flood *f;
	int node;                 /* the adjacent node */
	const char *url;          /* its Cx */
	struct qkdn_sp_conn conn; /* this sender thread's only */
	nng_thread *thread;
	uint64_t pending; /* origins to send (bit i: node i), f->mtx */
	bool failing;     /* for logging changes only */
};

struct ctl_flood {
	struct ctl *c;
	nng_mtx *mtx;
	nng_cv *cv;
	bool stopping;
	struct qkdn_sp_tls *tls; /* this node's certificate, for tls+tcp:// */
	size_t n;
	struct nb nb[QKDN_NET_NODES_MAX];
};

_Static_assert(QKDN_NET_NODES_MAX <= 64, "pending sets are 64-bit masks");

/* origin's LSA as a LINK_STATE, copied under the database lock; false if
 * none is held any more. */
static bool
build(struct ctl *c, int origin, struct qkdn_msg *m)
{
	const struct qkdn_net *net = c->net;
	struct qkdn_link_state_update *u = &m->u.link_state;
	bool ok = false;
	memset(m, 0, sizeof(*m));
	m->type = QKDN_LINK_STATE;
	nng_mtx_lock(c->mtx);
	const struct ls_lsa *lsa = ls_db_get(c->db, (uint32_t)origin);
	if (lsa != NULL &&
	    (lsa->n == 0 || (u->links.v = qkdn_msg_alloc(
	                         m, lsa->n * sizeof(*u->links.v))) != NULL)) {
		memcpy(u->origin, net->nodes[origin].id, sizeof(qkdn_name));
		u->seq = lsa->seq;
		/* every receiver ages it from its own receipt */
		u->max_age_ms = lsa->max_age_ms;
		u->links.n = (uint32_t)lsa->n;
		for (size_t i = 0; i < lsa->n; i++) {
			const struct ls_link *l = &lsa->links[i];
			struct qkdn_link_state *o = &u->links.v[i];
			memcpy(o->link, net->links[l->link].id,
			       sizeof(qkdn_name));
			memcpy(o->a, u->origin, sizeof(qkdn_name));
			memcpy(o->b, net->nodes[l->peer].id, sizeof(qkdn_name));
			o->up = l->up;
			o->a_out = l->out;
			o->rate_bps = l->rate_bps;
		}
		ok = true;
	}
	nng_mtx_unlock(c->mtx);
	if (!ok)
		qkdn_msg_clear(m);
	return ok;
}

/* One LINK_STATE to the neighbour's Cx, connecting first if need be
 * (over TLS with this node's certificate when its Cx is tls+tcp://, the
 * server's certificate naming that node), within CTL_FLOOD_MS; an ERROR
 * reply is its code. On failure the connection is closed. */
static int
call(struct nb *nb, const struct qkdn_msg *m, struct qkdn_msg *rsp,
     struct qkdn_decode_error *err)
{
	uint64_t deadline = qkdn_now_ms() + CTL_FLOOD_MS;
	struct qkdn_buf out = {0};
	uint8_t *in = NULL;
	size_t in_len = 0;
	memset(rsp, 0, sizeof(*rsp));
	int rv = qkdn_msg_encode(m, qkdn_buf_write, &out);
	if (rv != 0) {
		snprintf(err->reason, sizeof(err->reason),
		         "link state could not be encoded");
		return rv;
	}
	if (nb->conn.fd < 0) {
		nb->conn.tls = nb->f->tls;
		nb->conn.peer_name = nb->f->c->net->nodes[nb->node].id;
		rv = qkdn_sp_connect_once(&nb->conn, nb->url, deadline);
	}
	if (rv == 0)
		rv = qkdn_sp_call(&nb->conn, out.data, out.len, &in, &in_len,
		                  QKDN_MSG_BYTES_MAX, deadline);
	qkdn_buf_free(&out);
	if (rv != 0) {
		snprintf(err->reason, sizeof(err->reason), "%s",
		         rv == QKDN_E_TIMEOUT ? "no reply within the deadline"
		                              : qkdn_sp_last_error());
		qkdn_sp_close(&nb->conn);
		return rv;
	}
	rv = qkdn_msg_decode(in, in_len, rsp, err);
	free(in); /* an acknowledgement: no key material */
	if (rv == 0 && rsp->type == QKDN_ERROR) {
		rv = -rsp->u.error.code;
		snprintf(err->reason, sizeof(err->reason), "%s",
		         rsp->u.error.reason);
	}
	if (rv != 0)
		qkdn_sp_close(&nb->conn);
	return rv;
}

/* Send every origin of mask; on the first failure, or a stop, skip the
 * rest (the neighbour gets fresh copies with the next round once it
 * answers). */
static void
send_round(struct nb *nb, uint64_t mask)
{
	struct ctl *c = nb->f->c;
	const char *peer = c->net->nodes[nb->node].id;
	for (int o = 0; mask != 0; o++, mask >>= 1) {
		struct qkdn_msg m, rsp;
		struct qkdn_decode_error err = {0};
		if (!(mask & 1))
			continue;
		nng_mtx_lock(nb->f->mtx);
		bool stopping = nb->f->stopping;
		nng_mtx_unlock(nb->f->mtx);
		if (stopping)
			return;
		if (!build(c, o, &m))
			continue;
		int rv = call(nb, &m, &rsp, &err);
		qkdn_msg_clear(&m);
		qkdn_msg_clear(&rsp);
		if (rv != 0) {
			nng_mtx_lock(nb->f->mtx);
			stopping = nb->f->stopping;
			nng_mtx_unlock(nb->f->mtx);
			if (stopping)
				return;
		}
		if (rv != 0) {
			if (!nb->failing)
				QLOG_WARN(SRC,
				          "controller of node %s (%s) did not "
				          "take link state: %s (%s); skipping "
				          "it until it answers",
				          peer, nb->url, qkdn_strerror(rv),
				          err.reason);
			nb->failing = true;
			return;
		}
		if (nb->failing)
			QLOG_INFO(SRC, "controller of node %s answers again",
			          peer);
		nb->failing = false;
	}
}

static void
sender(void *arg)
{
	struct nb *nb = arg;
	struct ctl_flood *f = nb->f;
	nng_mtx_lock(f->mtx);
	for (;;) {
		while (nb->pending == 0 && !f->stopping)
			nng_cv_wait(f->cv);
		if (f->stopping)
			break;
		uint64_t mask = nb->pending;
		nb->pending = 0;
		nng_mtx_unlock(f->mtx);
		send_round(nb, mask);
		nng_mtx_lock(f->mtx);
	}
	nng_mtx_unlock(f->mtx);
}

/* This node's certificate and key, and the network's CA: the client side
 * of a tls+tcp:// Cx (the node's KM presents the same certificate). */
static int
load_tls(struct ctl_flood *f)
{
	const struct qkdn_net *net = f->c->net;
	const struct qkdn_net_node *nd = &net->nodes[f->c->self];
	char why[256];
	int rv = qkdn_sp_tls_new(&f->tls, net->ca, nd->cert, nd->key, why,
	                         sizeof(why));
	if (rv != 0)
		QLOG_ERR(SRC, "cannot flood over tls+tcp://: %s", why);
	return rv;
}

int
ctl_flood_start(struct ctl_flood **out, struct ctl *c)
{
	const struct qkdn_net *net = c->net;
	struct ctl_flood *f = calloc(1, sizeof(*f));
	int rv;
	*out = NULL;
	if (f == NULL)
		return QKDN_E_NOMEM;
	f->c = c;
	if ((rv = nng_mtx_alloc(&f->mtx)) != 0 ||
	    (rv = nng_cv_alloc(&f->cv, f->mtx)) != 0) {
		ctl_flood_stop(f);
		return qkdn_err_from_nng(rv);
	}
	/* the adjacent nodes, once each (parallel links count once) */
	for (size_t i = 0; i < net->n_links; i++) {
		const struct qkdn_net_link *l = &net->links[i];
		int peer = l->node[0] == c->self   ? l->node[1]
		           : l->node[1] == c->self ? l->node[0]
		                                   : -1;
		bool known = peer < 0;
		for (size_t k = 0; k < f->n && !known; k++)
			known = f->nb[k].node == peer;
		if (known)
			continue;
		const char *url = net->nodes[peer].cx_url;
		if (strncmp(url, "tls+tcp://", 10) == 0 && f->tls == NULL &&
		    (rv = load_tls(f)) != 0) {
			ctl_flood_stop(f);
			return rv;
		}
		struct nb *nb = &f->nb[f->n];
		nb->f = f;
		nb->node = peer;
		nb->url = url;
		nb->conn.fd = -1;
		f->n++;
		if ((rv = nng_thread_create(&nb->thread, sender, nb)) != 0) {
			ctl_flood_stop(f);
			return qkdn_err_from_nng(rv);
		}
	}
	*out = f;
	return 0;
}

void
ctl_flood_stop(struct ctl_flood *f)
{
	if (f == NULL)
		return;
	if (f->mtx != NULL) {
		nng_mtx_lock(f->mtx);
		f->stopping = true;
		if (f->cv != NULL)
			nng_cv_wake(f->cv);
		nng_mtx_unlock(f->mtx);
	}
	/* a call in flight ends within CTL_FLOOD_MS; the sender then sees
	 * stopping and sends no more */
	for (size_t i = 0; i < f->n; i++) {
		if (f->nb[i].thread != NULL)
			nng_thread_destroy(f->nb[i].thread);
		qkdn_sp_close(&f->nb[i].conn);
	}
	qkdn_sp_tls_free(f->tls);
	if (f->cv != NULL)
		nng_cv_free(f->cv);
	if (f->mtx != NULL)
		nng_mtx_free(f->mtx);
	free(f);
}

void
ctl_flood_mark(struct ctl_flood *f, int origin, int except)
{
	if (f == NULL)
		return;
	nng_mtx_lock(f->mtx);
	for (size_t i = 0; i < f->n; i++)
		if (f->nb[i].node != except)
			f->nb[i].pending |= (uint64_t)1 << origin;
	nng_cv_wake(f->cv);
	nng_mtx_unlock(f->mtx);
}
