/* The reservation scheme I.4b (order.h). */
#include "order.h"

#include "ctl.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"
#include "qkdn_server.h"
#include "qkdn_sp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC           "order"
#define ORDER_THREADS 2    /* orders carried out at once */
#define RELEASE_MS    1000 /* at most, one best-effort release call */

/* What a queued request keeps in its server context's slot. */
struct job {
	struct qkdn_server_req *next;
	struct qkdn_msg *req;
};
_Static_assert(sizeof(struct job) <= CTL_ORDER_SLOT, "slot too small");

struct ctl_order {
	struct ctl *c;
	nng_mtx *mtx;
	nng_cv *cv;
	bool stopping;
	struct qkdn_server_req *head, *tail;
	nng_thread *threads[ORDER_THREADS];
	/* a REQ socket to each KM's tcp:// or ipc:// Kx; a tls+tcp:// one is
	 * called over qkdn_sp with the controller's certificate, a
	 * connection a call (orders are few) */
	bool km_open[QKDN_NET_NODES_MAX];
	nng_socket km[QKDN_NET_NODES_MAX];
	struct qkdn_sp_tls *tls;
};

/* One order in progress. */
struct run {
	struct ctl_order *o;
	struct ctl *c;
	const struct qkdn_relay_req_notif *q;
	int src, dst, km2;
	qkdn_uuid resid;
	bool reserved; /* 21 sent: release on failure */
	int code;
	char why[QKDN_REASON_MAX];
};

static int failf(struct run *u, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
failf(struct run *u, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(u->why, sizeof(u->why), fmt, ap);
	va_end(ap);
	u->code = code;
	return code;
}

static bool
is_tls(const char *url)
{
	return strncmp(url, "tls+tcp://", 10) == 0;
}

/* One call to node's KM on its Kx: over TLS the KM's certificate must
 * name the node, and the KM sees the controller's (ctl_name). */
static int
kx_call(struct ctl_order *o, int node, const struct qkdn_msg *m,
        struct qkdn_msg *rsp, int ms, struct qkdn_decode_error *err)
{
	const struct qkdn_net_node *nd = &o->c->net->nodes[node];
	if (o->km_open[node])
		return qkdn_rpc_call(o->km[node], m, rsp, ms, err);
	struct qkdn_sp_conn conn = {
	    .fd = -1, .tls = o->tls, .peer_name = nd->id};
	int rv = qkdn_rpc_sp_call(&conn, nd->kx_url, m, rsp, 1u << 20, ms, err);
	qkdn_sp_close(&conn);
	return rv;
}

/* One call to a KM's Kx; a reply of another type is a failure. */
static int
km_call(struct run *u, int node, const struct qkdn_msg *m, struct qkdn_msg *rsp,
        uint32_t want, int ms, const char *step)
{
	const struct qkdn_net_node *nd = &u->c->net->nodes[node];
	struct qkdn_decode_error err = {0};
	int rv = kx_call(u->o, node, m, rsp, ms, &err);
	if (rv != 0) {
		if (u->o->stopping)
			return failf(u, QKDN_E_SHUTDOWN,
			             "%s: the controller is shutting down",
			             step);
		return failf(u, rv, "%s at KM %s (%s): %s%s%s", step, nd->id,
		             nd->kx_url, qkdn_strerror(rv),
		             err.reason[0] ? ": " : "", err.reason);
	}
	if (rsp->type != want) {
		const char *t = qkdn_msg_type_name(rsp->type);
		qkdn_msg_clear(rsp);
		return failf(u, QKDN_E_INTERNAL,
		             "%s at KM %s: it replied with a %s, not a %s",
		             step, nd->id,
		             t != NULL ? t : "message of unknown type",
		             qkdn_msg_type_name(want));
	}
	return 0;
}

/* The SAE named, attached to node; else a failure naming why. */
static int
sae_at(struct run *u, const char *role, const char *sae, int node)
{
	const struct qkdn_net *net = u->c->net;
	if (sae[0] == '\0')
		return failf(u, QKDN_E_MISSING_FIELD,
		             "a reservation needs the %s SAE", role);
	int i = qkdn_net_sae_index(net, sae);
	if (i < 0)
		return failf(u, QKDN_E_BAD_REQUEST,
		             "%s SAE '%s' is not in this network", role, sae);
	if (net->saes[i].node != node)
		return failf(u, QKDN_E_BAD_REQUEST,
		             "%s SAE %s is attached to node %s, not %s", role,
		             sae, net->nodes[net->saes[i].node].id,
		             net->nodes[node].id);
	return 0;
}

static int
node_of(struct run *u, const char *role, const char *id)
{
	int i = qkdn_net_node_index(u->c->net, id);
	if (i < 0)
		failf(u, QKDN_E_BAD_REQUEST,
		      "%s node: no node '%s' in this "
		      "network",
		      role, id);
	return i;
}

/* Checks, then the route (in rr, a RELAY_REQ: the chosen route first). */
static int
plan(struct run *u, struct qkdn_msg *rr)
{
	const struct qkdn_relay_req_notif *q = u->q;
	const struct qkdn_net *net = u->c->net;
	int rv;
	if ((u->src = node_of(u, "source", q->src_node)) < 0 ||
	    (u->dst = node_of(u, "destination", q->dst_node)) < 0)
		return u->code;
	if (u->src == u->dst)
		return failf(u, QKDN_E_BAD_REQUEST,
		             "source and destination are both node %s",
		             q->src_node);
	if ((rv = sae_at(u, "source", q->src_sae, u->src)) != 0 ||
	    (rv = sae_at(u, "destination", q->dst_sae, u->dst)) != 0)
		return rv;
	uint64_t demand = (uint64_t)q->count * (q->bits / 8) + 64;
	rr->type = QKDN_RELAY_REQ;
	if ((rv = ctl_routes(u->c, u->src, u->dst, demand, RT_ROUTES_MAX,
	                     rr)) != 0)
		return failf(u, rv, "routes could not be computed");
	struct qkdn_relay_req *r = &rr->u.relay_req;
	if (r->routes.n == 0)
		return failf(u, QKDN_E_NO_ROUTE,
		             "no route from %s to %s with %llu bytes of key "
		             "on every hop (topology version %llu)",
		             q->src_node, q->dst_node,
		             (unsigned long long)demand,
		             (unsigned long long)r->version);
	u->km2 = qkdn_net_node_index(net, r->routes.v[0].nodes.v[1]);
	/* KM2 relays along routes[0] and may fall back on the others that
	 * also leave from it: keep only those */
	uint32_t k = 1;
	for (uint32_t i = 1; i < r->routes.n; i++)
		if (strcmp(r->routes.v[i].nodes.v[1],
		           r->routes.v[0].nodes.v[1]) == 0)
			r->routes.v[k++] = r->routes.v[i];
	r->routes.n = k;
	return 0;
}

/* Step 1: 21 -> 22 at KM1. */
static int
reserve(struct run *u, struct qkdn_msg *rsp)
{
	const struct qkdn_net *net = u->c->net;
	struct qkdn_msg m = {.type = QKDN_RESERVE_REQ, .req_id = 1};
	struct qkdn_reserve_req *a = &m.u.reserve_req;
	a->reservation_id = u->resid;
	memcpy(a->dst_node, net->nodes[u->dst].id, sizeof(qkdn_name));
	memcpy(a->next_hop, net->nodes[u->km2].id, sizeof(qkdn_name));
	a->count = u->q->count;
	a->bits = u->q->bits;
	a->ttl_ms = CTL_RESERVE_TTL;
	u->reserved = true;
	atomic_fetch_add(&u->c->n.reservations, 1);
	int rv = km_call(u, u->src, &m, rsp, QKDN_RESERVE_RSP,
	                 2 * (int)net->nodes[u->src].kx_timeout_ms,
	                 "key reservation");
	if (rv != 0)
		return rv;
	const struct qkdn_reserve_rsp *p = &rsp->u.reserve_rsp;
	if (p->result != 0)
		return failf(u, p->result, "key reservation at KM %s: %s",
		             net->nodes[u->src].id, qkdn_strerror(p->result));
	int li = qkdn_net_link_index(net, p->link);
	if (p->ids.n != u->q->count || p->segs.n == 0 || li < 0 ||
	    li != qkdn_net_link_between(net, u->src, u->km2))
		return failf(u, QKDN_E_INTERNAL,
		             "key reservation at KM %s: its reply names %u "
		             "key IDs (want %u) and link '%s' (want the link "
		             "to %s)",
		             net->nodes[u->src].id, p->ids.n, u->q->count,
		             p->link, net->nodes[u->km2].id);
	return 0;
}

/* Step 2: 18 (with the reservation) -> 20 at KM2, when the relay ends. */
static int
relay(struct run *u, const struct qkdn_msg *rr, const struct qkdn_msg *res,
      uint64_t deadline)
{
	struct qkdn_msg m = *rr, rsp;
	struct qkdn_relay_req *r = &m.u.relay_req;
	const struct qkdn_reserve_rsp *p = &res->u.reserve_rsp;
	m.req_id = 1;
	m.arena = NULL; /* borrows rr's and res's arrays: never cleared */
	r->relay_id = u->resid;
	r->reservation_id = u->resid;
	memcpy(r->src_sae, u->q->src_sae, sizeof(qkdn_name));
	memcpy(r->dst_sae, u->q->dst_sae, sizeof(qkdn_name));
	r->bits = u->q->bits;
	r->ids = p->ids;
	memcpy(r->link, p->link, sizeof(qkdn_name));
	r->segs = p->segs;
	uint64_t now = ctl_now_ms();
	int ms = deadline > now ? (int)(deadline - now) : 1;
	int rv = km_call(u, u->km2, &m, &rsp, QKDN_RELAY_REQ_RSP, ms,
	                 "key relay request");
	if (rv != 0)
		return rv;
	atomic_fetch_add(&u->c->n.relay_req_rsps, 1);
	int res_rv = rsp.u.relay_req_rsp.result;
	qkdn_msg_clear(&rsp);
	if (res_rv != 0)
		return failf(u, res_rv, "key relay from KM %s: %s",
		             u->c->net->nodes[u->km2].id,
		             qkdn_strerror(res_rv));
	return 0;
}

/* Step 3: 23 -> 24 at KM1. */
static int
allocate(struct run *u, struct qkdn_msg *rsp)
{
	const struct qkdn_net *net = u->c->net;
	struct qkdn_msg m = {.type = QKDN_ALLOC_REQ, .req_id = 1};
	struct qkdn_alloc_req *a = &m.u.alloc_req;
	a->reservation_id = u->resid;
	memcpy(a->dst_node, net->nodes[u->dst].id, sizeof(qkdn_name));
	memcpy(a->src_sae, u->q->src_sae, sizeof(qkdn_name));
	memcpy(a->dst_sae, u->q->dst_sae, sizeof(qkdn_name));
	atomic_fetch_add(&u->c->n.allocations, 1);
	int rv =
	    km_call(u, u->src, &m, rsp, QKDN_ALLOC_RSP,
	            (int)net->nodes[u->src].kx_timeout_ms, "key allocation");
	if (rv != 0)
		return rv;
	int res = rsp->u.alloc_rsp.result;
	if (res != 0)
		return failf(u, res, "key allocation at KM %s: %s",
		             net->nodes[u->src].id, qkdn_strerror(res));
	return 0;
}

/* Best effort: both KMs forget the reserved keys. */
static void
release(struct run *u)
{
	int kms[2] = {u->src, u->km2};
	for (int i = 0; i < 2; i++) {
		struct qkdn_msg m = {.type = QKDN_RESERVE_RELEASE, .req_id = 1};
		struct qkdn_msg rsp;
		struct qkdn_decode_error err = {0};
		m.u.reserve_release.reservation_id = u->resid;
		uint32_t ms = u->c->net->nodes[kms[i]].kx_timeout_ms;
		int rv = kx_call(u->o, kms[i], &m, &rsp,
		                 ms < RELEASE_MS ? (int)ms : RELEASE_MS, &err);
		qkdn_msg_clear(&rsp);
		if (rv != 0)
			QLOG_WARN(SRC,
			          "release at KM %s failed (%s): its reserved "
			          "keys go when their ttl passes",
			          u->c->net->nodes[kms[i]].id,
			          qkdn_strerror(rv));
	}
}

static void
run(struct ctl_order *o, struct qkdn_server_req *r, struct qkdn_msg *req)
{
	struct run u = {.o = o, .c = o->c, .q = &req->u.relay_req_notif};
	struct qkdn_msg rr = {0}, res = {0}, alloc = {0};
	char id[37];
	qkdn_uuid_random(&u.resid);
	qkdn_uuid_format(&u.resid, id);
	int rv = plan(&u, &rr);
	uint64_t deadline = ctl_now_ms() + CTL_RESERVE_TTL;
	if (rv == 0)
		rv = reserve(&u, &res);
	if (rv == 0)
		rv = relay(&u, &rr, &res, deadline);
	if (rv == 0)
		rv = allocate(&u, &alloc);
	if (rv != 0) {
		if (u.reserved)
			release(&u);
		/* longer than a reason: the error reply cuts it to fit */
		char why[QKDN_REASON_MAX + 64];
		snprintf(why, sizeof(why), "reservation %s %s: %s", id,
		         u.reserved ? "released" : "not made", u.why);
		qkdn_msg_clear(&rr);
		qkdn_msg_clear(&res);
		qkdn_msg_clear(&alloc);
		qkdn_server_error(r, rv, why);
		return;
	}
	QLOG_INFO(SRC,
	          "reservation %s: %u keys of %u bits from %s to %s via %s "
	          "allocated to %s for %s",
	          id, u.q->count, u.q->bits, u.q->src_node, u.q->dst_node,
	          o->c->net->nodes[u.km2].id, u.q->src_sae, u.q->dst_sae);
	/* the reply borrows the allocation's IDs, which live in alloc */
	struct qkdn_msg out = {.type = QKDN_ALLOC_RSP};
	out.u.alloc_rsp.reservation_id = u.resid;
	const struct qkdn_ids *ids = alloc.u.alloc_rsp.ids.n > 0
	                                 ? &alloc.u.alloc_rsp.ids
	                                 : &res.u.reserve_rsp.ids;
	out.u.alloc_rsp.ids.v =
	    qkdn_msg_alloc(&out, (ids->n ? ids->n : 1) * sizeof(qkdn_uuid));
	if (out.u.alloc_rsp.ids.v == NULL) {
		qkdn_msg_clear(&rr);
		qkdn_msg_clear(&res);
		qkdn_msg_clear(&alloc);
		qkdn_server_error(r, QKDN_E_NOMEM, "reply could not be built");
		return;
	}
	out.u.alloc_rsp.ids.n = ids->n;
	memcpy(out.u.alloc_rsp.ids.v, ids->v, ids->n * sizeof(qkdn_uuid));
	qkdn_msg_clear(&rr);
	qkdn_msg_clear(&res);
	qkdn_msg_clear(&alloc);
	qkdn_server_reply(r, &out);
}

static void
worker(void *arg)
{
	struct ctl_order *o = arg;
	nng_mtx_lock(o->mtx);
	for (;;) {
		while (o->head == NULL && !o->stopping)
			nng_cv_wait(o->cv);
		if (o->stopping)
			break;
		struct qkdn_server_req *r = o->head;
		struct job *j = qkdn_server_slot(r);
		o->head = j->next;
		if (o->head == NULL)
			o->tail = NULL;
		nng_mtx_unlock(o->mtx);
		run(o, r, j->req);
		nng_mtx_lock(o->mtx);
	}
	nng_mtx_unlock(o->mtx);
}

/* The controller's TLS client credentials (netconf made sure they are
 * named when a KM's Kx is tls+tcp://). */
static int
open_tls(struct ctl_order *o)
{
	const struct qkdn_net *net = o->c->net;
	char why[QKDN_REASON_MAX];
	int rv = qkdn_sp_tls_new(&o->tls, net->ca, net->ctl_cert, net->ctl_key,
	                         why, sizeof(why));
	if (rv != 0)
		QLOG_ERR(SRC, "no TLS for orders to the KMs: %s", why);
	return rv;
}

int
ctl_order_start(struct ctl_order **out, struct ctl *c)
{
	const struct qkdn_net *net = c->net;
	struct ctl_order *o = calloc(1, sizeof(*o));
	int rv;
	*out = NULL;
	if (o == NULL)
		return QKDN_E_NOMEM;
	o->c = c;
	if ((rv = nng_mtx_alloc(&o->mtx)) != 0 ||
	    (rv = nng_cv_alloc(&o->cv, o->mtx)) != 0) {
		ctl_order_free(o);
		return qkdn_err_from_nng(rv);
	}
	for (size_t i = 0; i < net->n_nodes; i++) {
		if (is_tls(net->nodes[i].kx_url)) {
			if (o->tls == NULL && (rv = open_tls(o)) != 0) {
				ctl_order_stop(o);
				ctl_order_free(o);
				return rv;
			}
			continue;
		}
		if ((rv = qkdn_rpc_dial(&o->km[i], net->nodes[i].kx_url)) !=
		    0) {
			QLOG_ERR(SRC, "cannot dial KM %s's Kx %s: %s",
			         net->nodes[i].id, net->nodes[i].kx_url,
			         qkdn_strerror(rv));
			ctl_order_stop(o);
			ctl_order_free(o);
			return rv;
		}
		o->km_open[i] = true;
	}
	for (int i = 0; i < ORDER_THREADS; i++)
		if ((rv = nng_thread_create(&o->threads[i], worker, o)) != 0) {
			ctl_order_stop(o);
			ctl_order_free(o);
			return qkdn_err_from_nng(rv);
		}
	*out = o;
	return 0;
}

void
ctl_order_stop(struct ctl_order *o)
{
	if (o == NULL || o->mtx == NULL)
		return;
	nng_mtx_lock(o->mtx);
	o->stopping = true;
	nng_cv_wake(o->cv);
	nng_mtx_unlock(o->mtx);
	/* closing the sockets ends the calls in flight at once */
	for (size_t i = 0; i < QKDN_NET_NODES_MAX; i++)
		if (o->km_open[i]) {
			nng_close(o->km[i]);
			o->km_open[i] = false;
		}
	for (int i = 0; i < ORDER_THREADS; i++)
		if (o->threads[i] != NULL) {
			nng_thread_destroy(o->threads[i]);
			o->threads[i] = NULL;
		}
	nng_mtx_lock(o->mtx);
	struct qkdn_server_req *r = o->head;
	o->head = o->tail = NULL;
	nng_mtx_unlock(o->mtx);
	while (r != NULL) {
		struct qkdn_server_req *next =
		    ((struct job *)qkdn_server_slot(r))->next;
		qkdn_server_error(r, QKDN_E_SHUTDOWN,
		                  "the controller is shutting down");
		r = next;
	}
}

void
ctl_order_free(struct ctl_order *o)
{
	if (o == NULL)
		return;
	qkdn_sp_tls_free(o->tls);
	if (o->cv != NULL)
		nng_cv_free(o->cv);
	if (o->mtx != NULL)
		nng_mtx_free(o->mtx);
	free(o);
}

void
ctl_order_queue(struct ctl_order *o, struct qkdn_server_req *r,
                struct qkdn_msg *req)
{
	struct job *j = qkdn_server_slot(r);
	j->next = NULL;
	j->req = req;
	nng_mtx_lock(o->mtx);
	if (o->stopping) {
		nng_mtx_unlock(o->mtx);
		qkdn_server_error(r, QKDN_E_SHUTDOWN,
		                  "the controller is shutting down");
		return;
	}
	if (o->tail != NULL)
		((struct job *)qkdn_server_slot(o->tail))->next = r;
	else
		o->head = r;
	o->tail = r;
	nng_cv_wake1(o->cv);
	nng_mtx_unlock(o->mtx);
}
