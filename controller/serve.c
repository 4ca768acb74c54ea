/* Ck and Cx handlers (serve.h). */
#include "serve.h"

#include "ctl.h"
#include "order.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_server.h"

#include <stdio.h>
#include <string.h>

#define SRC "ck"

/* a LINK_STATE of QKDN_LINK_STATES_MAX links fits */
#define RECV_MAX (2u << 20)

/* The node named, or an error reply naming it (-1). */
static int
node_arg(struct qkdn_server_req *r, struct ctl *c, const char *what,
         const char *id)
{
	int i = qkdn_net_node_index(c->net, id);
	if (i < 0) {
		char why[QKDN_REASON_MAX];
		snprintf(why, sizeof(why), "%s: no node '%s' in this network",
		         what, id);
		qkdn_server_error(r, QKDN_E_BAD_REQUEST, why);
	}
	return i;
}

/* Both ends of a route request, distinct; false after an error reply. */
static bool
ends(struct qkdn_server_req *r, struct ctl *c, const char *src, const char *dst,
     int *s, int *d)
{
	if ((*s = node_arg(r, c, "source node", src)) < 0 ||
	    (*d = node_arg(r, c, "destination node", dst)) < 0)
		return false;
	if (*s == *d) {
		char why[QKDN_REASON_MAX];
		snprintf(why, sizeof(why),
		         "source and destination are both node %s", src);
		qkdn_server_error(r, QKDN_E_BAD_REQUEST, why);
		return false;
	}
	return true;
}

static void
link_state(struct qkdn_server_req *r, struct qkdn_msg *req, bool from_km)
{
	struct ctl *c = qkdn_server_arg(r);
	char why[QKDN_REASON_MAX];
	uint64_t version;
	atomic_fetch_add(&c->n.updates, 1);
	int rv = ctl_ingest(c, &req->u.link_state, from_km, &version, why,
	                    sizeof(why));
	if (rv != 0) {
		qkdn_server_error(r, rv, why);
		return;
	}
	struct qkdn_msg rsp = {.type = QKDN_ACK};
	rsp.u.ack.value = version;
	qkdn_server_reply(r, &rsp);
}

/* Over tls+tcp:// a Ck peer is known by its certificate's name (NULL on
 * ipc:// and tcp://, where anyone who reaches the socket may ask). False
 * after refusing a request that name may not make. */
static bool
ck_peer_is(struct qkdn_server_req *r, const char *want, const char *what)
{
	const char *peer = qkdn_server_peer_name(r);
	if (peer == NULL || strcmp(peer, want) == 0)
		return true;
	char why[QKDN_REASON_MAX];
	snprintf(why, sizeof(why),
	         "%s over tls+tcp:// from certificate %.63s: only %.63s's may "
	         "send it",
	         what, peer, want);
	qkdn_server_error(r, QKDN_E_NOT_AUTHORISED, why);
	return false;
}

/* A KM reports its own node's links: over TLS its certificate names it. */
static void
on_link_state_ck(struct qkdn_server_req *r, struct qkdn_msg *req)
{
	if (!ck_peer_is(r, req->u.link_state.origin, "a link-state report"))
		return;
	link_state(r, req, true);
}

/* Over tls+tcp:// a Cx peer is the controller of an adjacent node: its
 * certificate names that node (the node's KM presents the same one). */
static bool
adjacent(const struct ctl *c, const char *name)
{
	int n = qkdn_net_node_index(c->net, name);
	for (size_t i = 0; n >= 0 && i < c->net->n_links; i++) {
		const struct qkdn_net_link *l = &c->net->links[i];
		if ((l->node[0] == c->self && l->node[1] == n) ||
		    (l->node[1] == c->self && l->node[0] == n))
			return true;
	}
	return false;
}

static void
on_link_state_cx(struct qkdn_server_req *r, struct qkdn_msg *req)
{
	struct ctl *c = qkdn_server_arg(r);
	const char *peer = qkdn_server_peer_name(r);
	if (peer != NULL && !adjacent(c, peer)) {
		char why[QKDN_REASON_MAX];
		snprintf(why, sizeof(why),
		         "link state over Cx from %.63s: not the controller of "
		         "a node adjacent to %s",
		         peer, c->net->nodes[c->self].id);
		qkdn_server_error(r, QKDN_E_NOT_AUTHORISED, why);
		return;
	}
	link_state(r, req, false);
}

/* 14 -> 15: the next hop from `here` (this controller's node when its
 * KM asks) over the whole link-state view. */
static void
on_next_hop(struct qkdn_server_req *r, struct qkdn_msg *req)
{
	struct ctl *c = qkdn_server_arg(r);
	const struct qkdn_next_hop_req *q = &req->u.next_hop_req;
	int here, dst, next, link;
	struct qkdn_msg rsp = {.type = QKDN_NEXT_HOP_RSP};
	struct qkdn_next_hop_rsp *p = &rsp.u.next_hop_rsp;
	atomic_fetch_add(&c->n.next_hop_reqs, 1);
	if (!ends(r, c, q->here, q->dst_node, &here, &dst))
		return;
	/* the nodes the relay has passed: known ones are avoided */
	uint32_t avoid[QKDN_ROUTE_MAX];
	size_t n_avoid = 0;
	for (uint32_t i = 0; i < q->route.n && n_avoid < QKDN_ROUTE_MAX; i++) {
		int v = qkdn_net_node_index(c->net, q->route.v[i]);
		if (v >= 0)
			avoid[n_avoid++] = (uint32_t)v;
	}
	int rv = ctl_next_hop(c, here, dst, q->bytes, avoid, n_avoid, &next,
	                      &link, &p->version);
	if (rv != 0 && rv != QKDN_E_NO_ROUTE) {
		qkdn_server_error(r, rv, "next hop could not be computed");
		return;
	}
	p->relay_id = q->relay_id;
	p->result = rv;
	if (rv == 0) {
		memcpy(p->next_hop, c->net->nodes[next].id, sizeof(qkdn_name));
		memcpy(p->link, c->net->links[link].id, sizeof(qkdn_name));
	} else {
		QLOG_INFO(SRC,
		          "no route from %s to %s for %llu bytes per hop "
		          "(version %llu)",
		          q->here, q->dst_node, (unsigned long long)q->bytes,
		          (unsigned long long)p->version);
	}
	qkdn_server_reply(r, &rsp);
}

/* Routes for a request and its reply (an 18 with relay_id). */
static void
reply_routes(struct qkdn_server_req *r, struct ctl *c, const qkdn_uuid *id,
             int src, int dst, uint64_t demand)
{
	struct qkdn_msg rsp = {.type = QKDN_RELAY_REQ};
	int rv = ctl_routes(c, src, dst, demand, RT_ROUTES_MAX, &rsp);
	if (rv != 0) {
		qkdn_msg_clear(&rsp);
		qkdn_server_error(r, rv, "routes could not be computed");
		return;
	}
	if (id != NULL)
		rsp.u.relay_req.relay_id = *id;
	if (rsp.u.relay_req.routes.n == 0)
		QLOG_INFO(SRC,
		          "no route from %s to %s for %llu bytes per hop "
		          "(version %llu)",
		          c->net->nodes[src].id, c->net->nodes[dst].id,
		          (unsigned long long)demand,
		          (unsigned long long)rsp.u.relay_req.version);
	qkdn_server_reply(r, &rsp);
}

/* 17: reserve = 0 -> 18 with every route (I.4a, I.5b); reserve = 1 -> the
 * I.4b procedure on an order thread, answered by 24 or ERROR. */
static void
on_relay_req_notif(struct qkdn_server_req *r, struct qkdn_msg *req)
{
	struct ctl *c = qkdn_server_arg(r);
	const struct qkdn_relay_req_notif *q = &req->u.relay_req_notif;
	int src, dst;
	atomic_fetch_add(&c->n.relay_req_notifs, 1);
	/* over TLS: a relay is asked for by its source KM; the reservation
	 * scheme is run by the operator with the controller's own
	 * certificate */
	if (!ck_peer_is(r, q->reserve ? c->net->ctl_name : q->src_node,
	                q->reserve ? "a reservation (I.4b)"
	                           : "a key relay request notification"))
		return;
	if (q->reserve) {
		if (!c->central) {
			char why[QKDN_REASON_MAX];
			snprintf(why, sizeof(why),
			         "the reservation scheme (I.4b) runs on the "
			         "central controller; this is node %s's "
			         "controller in a distributed network",
			         c->name);
			qkdn_server_error(r, QKDN_E_UNSUPPORTED, why);
			return;
		}
		ctl_order_queue(c->order, r, req);
		return;
	}
	if (!ends(r, c, q->src_node, q->dst_node, &src, &dst))
		return;
	/* each hop takes the keys plus 64 bytes (MAC and ack keys) */
	uint64_t demand = (uint64_t)q->count * (q->bits / 8) + 64;
	reply_routes(r, c, &q->relay_id, src, dst, demand);
}

/* 20: a relay the controller routed has ended. */
static void
on_relay_req_rsp(struct qkdn_server_req *r, struct qkdn_msg *req)
{
	struct ctl *c = qkdn_server_arg(r);
	const struct qkdn_relay_req_rsp *q = &req->u.relay_req_rsp;
	char id[37];
	atomic_fetch_add(&c->n.relay_req_rsps, 1);
	qkdn_uuid_format(&q->relay_id, id);
	if (q->result != 0)
		QLOG_INFO(SRC, "relay %s failed: %s", id,
		          qkdn_strerror(q->result));
	else
		QLOG_DEBUG(SRC, "relay %s completed", id);
	struct qkdn_msg rsp = {.type = QKDN_ACK};
	qkdn_server_reply(r, &rsp);
}

/* 112 -> 18 (relay_id zero): the routes it would give now. */
static void
on_route_query(struct qkdn_server_req *r, struct qkdn_msg *req)
{
	struct ctl *c = qkdn_server_arg(r);
	const struct qkdn_route_query *q = &req->u.route_query;
	int src, dst;
	if (!ends(r, c, q->src_node, q->dst_node, &src, &dst))
		return;
	reply_routes(r, c, NULL, src, dst, q->bytes);
}

static void
on_status(struct qkdn_server_req *r, struct qkdn_msg *req)
{
	struct ctl *c = qkdn_server_arg(r);
	struct qkdn_msg rsp = {0};
	(void)req;
	int rv = ctl_status(c, &rsp);
	if (rv != 0) {
		qkdn_msg_clear(&rsp);
		qkdn_server_error(r, rv, "status could not be built");
		return;
	}
	qkdn_server_reply(r, &rsp);
}

static const struct qkdn_handler ck_handlers[] = {
    {QKDN_LINK_STATE, on_link_state_ck},
    {QKDN_NEXT_HOP_REQ, on_next_hop},
    {QKDN_RELAY_REQ_NOTIF, on_relay_req_notif},
    {QKDN_RELAY_REQ_RSP, on_relay_req_rsp},
    {QKDN_ROUTE_QUERY, on_route_query},
    {QKDN_STATUS_REQ, on_status},
};

static const struct qkdn_handler cx_handlers[] = {
    {QKDN_LINK_STATE, on_link_state_cx},
    {QKDN_STATUS_REQ, on_status},
};

int
ctl_serve_start(struct ctl *c)
{
	const struct qkdn_net *net = c->net;
	const struct qkdn_net_node *nd =
	    c->central ? NULL : &net->nodes[c->self];
	/* the central controller's own certificate, or the node's */
	const char *cert = nd != NULL ? nd->cert : net->ctl_cert;
	const char *key = nd != NULL ? nd->key : net->ctl_key;
	struct qkdn_tls_files tls = {
	    .ca = net->ca[0] ? net->ca : NULL,
	    .cert = cert[0] ? cert : NULL,
	    .key = key[0] ? key : NULL,
	};
	struct qkdn_server_config ck = {
	    .name = "Ck",
	    .log_src = "ck",
	    .refusal_level = QKDN_LOG_WARN,
	    .url = c->central ? net->central_ck_url : nd->ck_url,
	    .recv_max = RECV_MAX,
	    .slot_size = CTL_ORDER_SLOT,
	    .handlers = ck_handlers,
	    .n_handlers = sizeof(ck_handlers) / sizeof(ck_handlers[0]),
	    .arg = c,
	    .errors = &c->n.errors,
	    .tls = &tls,
	};
	int rv = qkdn_server_start(&c->ck, &ck);
	if (rv != 0) {
		QLOG_ERR(SRC, "cannot serve Ck on %s: %s", ck.url,
		         qkdn_strerror(rv));
		return rv;
	}
	if (c->central)
		return 0;
	struct qkdn_server_config cx = ck;
	cx.name = "Cx";
	cx.log_src = "cx";
	cx.url = nd->cx_url;
	cx.slot_size = 0;
	cx.handlers = cx_handlers;
	cx.n_handlers = sizeof(cx_handlers) / sizeof(cx_handlers[0]);
	if ((rv = qkdn_server_start(&c->cx, &cx)) != 0)
		QLOG_ERR(SRC, "cannot serve Cx on %s: %s", cx.url,
		         qkdn_strerror(rv));
	return rv;
}

void
ctl_serve_stop(struct ctl *c)
{
	qkdn_server_stop(c->ck);
	qkdn_server_stop(c->cx);
	c->ck = c->cx = NULL;
}
