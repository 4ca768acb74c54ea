/* Key relay, I.4b (Q.4160): the reservation scheme of a centralized
 * controller. KM1 reserves keys towards KM2 (21, a reservation hop: both
 * ends hold the keys in memory), KM2 relays reserved keys to a
 * destination when the controller says (18), KM1 hands its copy to an
 * application when allocated (23), and a reservation is released (110)
 * or expires. Reserved keys never enter the store before allocation or
 * delivery. The hops themselves are relay.c's. */
#include "relay_int.h"

#include "kx.h"
#include "node.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_server.h"
#include "secbuf.h"
#include "store.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
relay_hold_add(struct km *km, struct hold *h)
{
	struct km_relay *e = km->relay;
	nng_mtx_lock(e->mtx);
	h->next = e->holds;
	e->holds = h;
	nng_mtx_unlock(e->mtx);
}

/* With e->mtx. */
struct hold *
relay_hold_find(struct km_relay *e, const qkdn_uuid *resid, bool km1)
{
	for (struct hold *h = e->holds; h != NULL; h = h->next)
		if (h->km1 == km1 && relay_uuid_eq(&h->resid, resid))
			return h;
	return NULL;
}

struct hold *
relay_holds_unlink(struct km_relay *e,
                   bool (*match)(const struct hold *h, const void *arg),
                   const void *arg)
{
	struct hold *gone = NULL;
	nng_mtx_lock(e->mtx);
	for (struct hold **p = &e->holds; *p != NULL;) {
		struct hold *h = *p;
		if (match(h, arg)) {
			*p = h->next;
			h->next = gone;
			gone = h;
		} else {
			p = &h->next;
		}
	}
	nng_mtx_unlock(e->mtx);
	return gone;
}

void
relay_hold_wipe(struct hold *h)
{
	if (h->keys != NULL)
		km_secbuf_put(h->keys);
	h->keys = NULL;
	free(h->ids);
	h->ids = NULL;
}

/* The orders of the scheme (21, 18 with a reservation, 23, 110) come from
 * the central controller. Over tls+tcp:// every peer has a certificate of
 * the network's CA, a node's or an SAE's: only the one that names the
 * controller (ctl_name) may order a KM to reserve, relay or allocate
 * keys. Over tcp:// and ipc:// (a trusted network: docs/tls.md) anyone
 * who reaches the Kx may. True if the order was refused. */
static bool
order_refused(struct qkdn_server_req *w, const char *what)
{
	const struct km *km = qkdn_server_arg(w);
	const char *cert = qkdn_server_peer_name(w);
	char why[QKDN_REASON_MAX];
	if (cert == NULL || strcmp(cert, km->net->ctl_name) == 0)
		return false;
	snprintf(why, sizeof(why),
	         "a %s over tls+tcp:// from certificate %.63s: only the "
	         "central controller's (%.63s) orders the reservation scheme",
	         what, cert, km->net->ctl_name);
	qkdn_server_error(w, QKDN_E_NOT_AUTHORISED, why);
	return true;
}

void
km_relay_handle_reserve(struct qkdn_server_req *w, struct qkdn_msg *req)
{
	struct km *km = qkdn_server_arg(w);
	const struct qkdn_reserve_req *q = &req->u.reserve_req;
	const struct qkdn_net *net = km->net;
	char why[QKDN_REASON_MAX];
	int next = qkdn_net_node_index(net, q->next_hop);
	int dst = qkdn_net_node_index(net, q->dst_node);
	struct km_link *l = next >= 0 ? km_link_to(km, next) : NULL;
	int rv;
	if (order_refused(w, "key reservation request"))
		return;
	if (l == NULL || dst < 0 || dst == km->self) {
		snprintf(why, sizeof(why),
		         "node %s has no link to %.63s, or %.63s is no "
		         "destination",
		         km->node->id, q->next_hop, q->dst_node);
		qkdn_server_error(w, QKDN_E_BAD_REQUEST, why);
		return;
	}
	if ((uint64_t)q->count * (q->bits / 8) > KM_KX_BATCH_BYTES ||
	    q->bits % 8 != 0) {
		snprintf(why, sizeof(why), "%u keys of %u bits: too many",
		         q->count, q->bits);
		qkdn_server_error(w, QKDN_E_TOO_LARGE, why);
		return;
	}
	struct km_relay *e = km->relay;
	nng_mtx_lock(e->mtx);
	bool dup = relay_hold_find(e, &q->reservation_id, true) != NULL;
	nng_mtx_unlock(e->mtx);
	struct relay *r =
	    dup ? NULL : relay_new(km, R_RESERVE, q->count, q->bits);
	if (r == NULL) {
		rv = dup ? QKDN_E_REPLAY : QKDN_E_NOMEM;
		qkdn_server_error(
		    w, rv, dup ? "reservation made already" : "out of memory");
		return;
	}
	r->w = w;
	r->resid = q->reservation_id;
	r->dst_node = dst;
	r->h.relay_id = q->reservation_id;
	int route[2] = {km->self, next};
	relay_set_route(r, route, 2);
	r->h.hop = 1;
	/* 21 names no SAEs: the hop names KM1 and the destination node */
	memcpy(r->h.src_sae, km->node->id, sizeof(r->h.src_sae));
	memcpy(r->h.dst_sae, net->nodes[dst].id, sizeof(r->h.dst_sae));
	qkdn_uuid_v7(r->h.ids, q->count);
	r->h.keys_from_pad = true;
	r->h.hold_ttl_ms = q->ttl_ms;
	r->h.deadline_ms = qkdn_now_ms() + km->node->kx_timeout_ms;
	r->h.done = relay_hop_done;
	km_kx_submit_hop(km, l, &r->h);
}

/* KM2 stores reserved keys whose destination is this node itself. */
static int
store_here(struct km *km, const struct qkdn_relay_req *q, struct hold *k)
{
	uint32_t klen = k->bits / 8;
	struct km_key_record *recs = calloc(k->count, sizeof(*recs));
	if (recs == NULL)
		return QKDN_E_NOMEM;
	uint64_t expires = km_wall_ms() + (uint64_t)km->node->key_ttl_s * 1000;
	for (uint32_t i = 0; i < k->count; i++)
		recs[i] =
		    (struct km_key_record){.id = k->ids[i],
		                           .src_sae = q->src_sae,
		                           .dst_sae = q->dst_sae,
		                           .expires_ms = expires,
		                           .len = klen,
		                           .bytes = k->keys + (size_t)i * klen};
	int rv = km_store_keys_put(km->st, recs, k->count, NULL, NULL);
	free(recs);
	return rv;
}

void
km_relay_handle_relay_req(struct qkdn_server_req *w, struct qkdn_msg *req)
{
	struct km *km = qkdn_server_arg(w);
	const struct qkdn_net *net = km->net;
	const struct qkdn_relay_req *q = &req->u.relay_req;
	struct km_relay *e = km->relay;
	char why[QKDN_REASON_MAX];
	int idx[QKDN_ROUTE_MAX], rv = QKDN_E_BAD_REQUEST;
	if (order_refused(w, "key relay request"))
		return;
	if (relay_uuid_zero(&q->reservation_id)) {
		qkdn_server_error(
		    w, QKDN_E_UNSUPPORTED,
		    "a key relay request without a reservation is "
		    "for a source KM's notification only");
		return;
	}
	const struct qkdn_route *rt =
	    q->routes.n > 0 ? &q->routes.v[0].nodes : NULL;
	int dst = qkdn_net_sae_index(net, q->dst_sae);
	bool ok = rt != NULL && rt->n >= 2 && dst >= 0;
	for (uint32_t k = 0; ok && k < rt->n; k++)
		ok = (idx[k] = qkdn_net_node_index(net, rt->v[k])) >= 0;
	if (!ok || idx[1] != km->self ||
	    idx[rt->n - 1] != net->saes[dst].node) {
		snprintf(why, sizeof(why),
		         "the route must run from KM1 through node %s to the "
		         "node of SAE %.63s",
		         km->node->id, q->dst_sae);
		qkdn_server_error(w, rv, why);
		return;
	}
	/* take the held keys: from now on they are this relay's */
	nng_mtx_lock(e->mtx);
	struct hold *k = relay_hold_find(e, &q->reservation_id, false);
	bool usable =
	    k != NULL && !k->used && k->peer == idx[0] &&
	    (q->bits == 0 || q->bits == k->bits) &&
	    (q->ids.n == 0 ||
	     (q->ids.n == k->count &&
	      memcmp(q->ids.v, k->ids, k->count * sizeof(qkdn_uuid)) == 0));
	struct hold taken = {0};
	rv = usable                 ? 0
	     : k != NULL && k->used ? QKDN_E_ALREADY_SUPPLIED
	                            : QKDN_E_UNKNOWN_KEY_ID;
	if (usable) {
		taken = *k;
		k->used = true;
		k->keys = NULL;
		k->ids = NULL;
	}
	nng_mtx_unlock(e->mtx);
	if (!usable) {
		snprintf(why, sizeof(why),
		         "no reservation held here for this relay (unknown, "
		         "used, released or expired, or other keys)");
		qkdn_server_error(w, rv, why);
		return;
	}
	atomic_fetch_add(&km->rc.started, 1);
	if (rt->n == 2) {
		/* the destination SAE is here: nothing to relay */
		struct relay tmp = {
		    .km = km, .w = w, .resid = q->reservation_id};
		tmp.h.relay_id = q->relay_id;
		rv = store_here(km, q, &taken);
		atomic_fetch_add(rv == 0 ? &km->rc.completed : &km->rc.failed,
		                 1);
		if (rv == 0)
			atomic_fetch_add(&km->rc.keys_relayed, taken.count);
		relay_hold_wipe(&taken);
		relay_reply_req_rsp(&tmp, rv);
		return;
	}
	struct km_link *l = km_link_to(km, idx[2]);
	struct relay *r = l != NULL ? calloc(1, sizeof(*r)) : NULL;
	if (r == NULL) {
		relay_hold_wipe(&taken);
		atomic_fetch_add(&km->rc.failed, 1);
		snprintf(why, sizeof(why), "node %s has no link to %.63s",
		         km->node->id, rt->v[2]);
		qkdn_server_error(w, l == NULL ? QKDN_E_NO_ROUTE : QKDN_E_NOMEM,
		                  why);
		return;
	}
	r->km = km;
	r->role = R_KM2;
	r->w = w;
	r->resid = q->reservation_id;
	r->h.relay_id = q->relay_id;
	relay_set_route(r, idx, rt->n);
	r->h.hop = 2;
	memcpy(r->h.src_sae, q->src_sae, sizeof(r->h.src_sae));
	memcpy(r->h.dst_sae, q->dst_sae, sizeof(r->h.dst_sae));
	r->h.count = taken.count;
	r->h.bits = taken.bits;
	r->h.ids = taken.ids;
	r->h.keys = taken.keys;
	r->h.deadline_ms = qkdn_now_ms() + km->node->kx_timeout_ms;
	r->h.done = relay_hop_done;
	km_kx_submit_hop(km, l, &r->h);
}

void
km_relay_handle_alloc(struct qkdn_server_req *w, struct qkdn_msg *req)
{
	struct km *km = qkdn_server_arg(w);
	const struct qkdn_net *net = km->net;
	const struct qkdn_alloc_req *q = &req->u.alloc_req;
	struct km_relay *e = km->relay;
	char why[QKDN_REASON_MAX], idtext[37];
	int src = qkdn_net_sae_index(net, q->src_sae);
	int dst = qkdn_net_sae_index(net, q->dst_sae);
	int dnode = qkdn_net_node_index(net, q->dst_node);
	int rv;
	if (order_refused(w, "key allocation request"))
		return;
	qkdn_uuid_format(&q->reservation_id, idtext);
	if (src < 0 || net->saes[src].node != km->self || dst < 0 ||
	    net->saes[dst].node != dnode) {
		snprintf(
		    why, sizeof(why),
		    "SAE %.40s must be at node %.40s and SAE %.40s at %.40s",
		    q->src_sae, km->node->id, q->dst_sae, q->dst_node);
		qkdn_server_error(w, QKDN_E_NOT_AUTHORISED, why);
		return;
	}
	nng_mtx_lock(e->mtx);
	struct hold *k = relay_hold_find(e, &q->reservation_id, true);
	struct hold taken = {0};
	rv = k == NULL              ? QKDN_E_UNKNOWN_KEY_ID
	     : k->used              ? QKDN_E_ALREADY_SUPPLIED
	     : k->dst_node != dnode ? QKDN_E_NOT_AUTHORISED
	                            : 0;
	if (rv == 0) {
		/* claimed before the commit: a second 23 meanwhile fails;
		 * keys and IDs are ours now (an expiry meanwhile frees
		 * nothing we use) */
		taken = *k;
		k->used = true;
		k->keys = NULL;
		k->ids = NULL;
	}
	nng_mtx_unlock(e->mtx);
	if (rv != 0) {
		snprintf(why, sizeof(why), "reservation %s: %s", idtext,
		         rv == QKDN_E_ALREADY_SUPPLIED ? "allocated already"
		         : rv == QKDN_E_UNKNOWN_KEY_ID
		             ? "not held here (never made, released or expired)"
		             : "reserved for another destination node");
		qkdn_server_error(w, rv, why);
		return;
	}
	/* src_sae fetches them here by ID: stored as waiting for src_sae,
	 * shared with dst_sae */
	uint32_t klen = taken.bits / 8;
	struct km_key_record *recs = calloc(taken.count, sizeof(*recs));
	uint64_t expires = km_wall_ms() + (uint64_t)km->node->key_ttl_s * 1000;
	rv = recs == NULL ? QKDN_E_NOMEM : 0;
	for (uint32_t i = 0; rv == 0 && i < taken.count; i++)
		recs[i] = (struct km_key_record){.id = taken.ids[i],
		                                 .src_sae = q->dst_sae,
		                                 .dst_sae = q->src_sae,
		                                 .expires_ms = expires,
		                                 .len = klen,
		                                 .bytes = taken.keys +
		                                          (size_t)i * klen};
	if (rv == 0)
		rv = km_store_keys_put(km->st, recs, taken.count, NULL, NULL);
	free(recs);
	nng_mtx_lock(e->mtx);
	if (rv != 0 &&
	    (k = relay_hold_find(e, &q->reservation_id, true)) != NULL) {
		k->used = false; /* not stored: still held */
		k->keys = taken.keys;
		k->ids = taken.ids;
		taken.keys = NULL;
		taken.ids = NULL;
	}
	nng_mtx_unlock(e->mtx);
	if (rv != 0) {
		relay_hold_wipe(&taken); /* what no hold took back */
		snprintf(why, sizeof(why), "reservation %s: keys not stored",
		         idtext);
		qkdn_server_error(w, rv, why);
		return;
	}
	km_secbuf_put(taken.keys);
	struct qkdn_msg m = {.type = QKDN_ALLOC_RSP};
	m.u.alloc_rsp.reservation_id = q->reservation_id;
	m.u.alloc_rsp.ids.n = taken.count;
	m.u.alloc_rsp.ids.v =
	    qkdn_msg_alloc(&m, taken.count * sizeof(qkdn_uuid));
	if (m.u.alloc_rsp.ids.v != NULL)
		memcpy(m.u.alloc_rsp.ids.v, taken.ids,
		       taken.count * sizeof(qkdn_uuid));
	else
		m.u.alloc_rsp.ids.n = 0;
	free(taken.ids);
	atomic_fetch_add(&km->rc.allocations, 1);
	qkdn_server_reply(w, &m);
}

/* A reservation's holds not yet allocated or relayed. */
static bool
hold_of(const struct hold *h, const void *resid)
{
	return relay_uuid_eq(&h->resid, resid) && !h->used;
}

void
km_relay_handle_release(struct qkdn_server_req *w, struct qkdn_msg *req)
{
	struct km *km = qkdn_server_arg(w);
	struct km_relay *e = km->relay;
	const qkdn_uuid *id = &req->u.reserve_release.reservation_id;
	if (order_refused(w, "reservation release"))
		return;
	struct hold *gone = relay_holds_unlink(e, hold_of, id);
	while (gone != NULL) {
		struct hold *h = gone;
		gone = h->next;
		relay_hold_wipe(h);
		free(h);
	}
	km_kx_reply_ack(w, 0, 0, NULL);
}
