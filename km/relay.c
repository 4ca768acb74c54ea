/* Key relay: see relay.h for the design and relay-spec.md for the
 * messages. This file decides (checks, routes, stores) for relays of key
 * requests (I.5a, I.5b) and their hops; reserve.c does the reservation
 * scheme (I.4b); kx_send.c carries each outgoing hop on its link's sender
 * thread (or, for a hop passed on, on the Kx thread that received it while
 * the sender sleeps) and calls back relay_hop_done() there. */
#include "relay_int.h"

#include "ctl_client.h"
#include "kx.h"
#include "node.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"
#include "qkdn_server.h"
#include "qkdn_sp.h"
#include "secbuf.h"
#include "sync.h"

#include <nng/supplemental/util/platform.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC     "relay"
#define KEYS_AT KM_SYNC_KEYS_AT
/* a 109 is best effort: a short deadline on the control thread */
#define ABORT_MS 300
/* retried as a KEY_SYNC waiting for a block is */
#define BLOCK_WAIT_MS 10

bool
relay_uuid_eq(const qkdn_uuid *a, const qkdn_uuid *b)
{
	return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

bool
relay_uuid_zero(const qkdn_uuid *a)
{
	static const qkdn_uuid z;
	return relay_uuid_eq(a, &z);
}

static size_t
key_bytes(const struct km_hop *h)
{
	return (size_t)h->count * (h->bits / 8);
}

void
relay_free(struct relay *r)
{
	if (r == NULL)
		return;
	if (r->h.keys != NULL)
		km_secbuf_put(r->h.keys); /* wipes */
	if (r->in != NULL)
		km_secbuf_put(r->in);
	free(r->h.ids);
	free(r->h.segs);
	free(r->routes);
	free(r);
}

/* A relay with room for count keys of bits and their IDs. */
struct relay *
relay_new(struct km *km, enum role role, uint32_t count, uint32_t bits)
{
	struct relay *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->km = km;
	r->role = role;
	r->h.count = count;
	r->h.bits = bits;
	r->h.ids = calloc(count ? count : 1, sizeof(qkdn_uuid));
	r->h.keys = km_secbuf_get(key_bytes(&r->h) ? key_bytes(&r->h) : 1);
	if (r->h.ids == NULL || r->h.keys == NULL) {
		relay_free(r);
		return NULL;
	}
	return r;
}

void
relay_set_route(struct relay *r, const int *nodes, uint32_t n)
{
	const struct qkdn_net *net = r->km->net;
	r->h.route_n = n;
	for (uint32_t i = 0; i < n; i++)
		memcpy(r->h.route[i], net->nodes[nodes[i]].id,
		       sizeof(qkdn_name));
}

/* The control thread's queue. A job for a stopped engine is dropped. */
static void
enqueue(struct km *km, struct job *j)
{
	struct km_relay *e = km->relay;
	nng_mtx_lock(e->mtx);
	if (e->stopping) {
		nng_mtx_unlock(e->mtx);
		free(j->ids);
		free(j);
		return;
	}
	j->next = NULL;
	if (e->tail != NULL)
		e->tail->next = j;
	else
		e->head = j;
	e->tail = j;
	nng_cv_wake1(e->cv);
	nng_mtx_unlock(e->mtx);
}

static void
queue_notify(struct km *km, const qkdn_uuid *rid, int result)
{
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return;
	j->kind = J_NOTIFY;
	j->rid = *rid;
	j->result = result;
	enqueue(km, j);
}

/* Tell node the relay failed: it may hold keys of it (best effort). */
static void
queue_abort(struct km *km, int node, const struct km_hop *h, const char *why)
{
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return;
	j->kind = J_ABORT;
	j->rid = h->relay_id;
	j->node = node;
	if ((j->ids = malloc(h->count * sizeof(qkdn_uuid))) != NULL) {
		memcpy(j->ids, h->ids, h->count * sizeof(qkdn_uuid));
		j->n = h->count;
	}
	snprintf(j->why, sizeof(j->why), "%s", why);
	enqueue(km, j);
}

static void
recent_add(struct km *km, const qkdn_uuid *rid, int prev, int next,
           const char *dst_sae, const qkdn_uuid *ids, uint32_t n)
{
	struct km_relay *e = km->relay;
	qkdn_uuid *copy = NULL;
	if (next < 0 && (copy = malloc(n * sizeof(*copy))) != NULL)
		memcpy(copy, ids, n * sizeof(*copy));
	nng_mtx_lock(e->mtx);
	struct recent *x = &e->recent[e->recent_at++ % RECENT_MAX];
	free(x->ids);
	*x = (struct recent){.valid = true,
	                     .rid = *rid,
	                     .prev = prev,
	                     .next = next,
	                     .n = copy != NULL ? n : 0,
	                     .ids = copy};
	snprintf(x->dst_sae, sizeof(x->dst_sae), "%s", dst_sae);
	nng_mtx_unlock(e->mtx);
}

/* --- the source: an application's key request --------------------------- */

/* The relay of an Ak key request is over: hand out the keys only now, on a
 * completion that verified (relay_hop_done), or refuse. */
static void
finish_source(struct relay *r, int rv, const char *why)
{
	struct km *km = r->km;
	if (rv == 0) {
		struct qkdn_msg rsp = {.type = QKDN_KEY_RSP};
		struct qkdn_keys *keys = &rsp.u.key_rsp.keys;
		uint32_t klen = r->h.bits / 8;
		keys->v = qkdn_msg_alloc(&rsp, r->h.count * sizeof(*keys->v));
		uint8_t *kb = qkdn_msg_alloc(&rsp, key_bytes(&r->h));
		if (keys->v == NULL || kb == NULL) {
			qkdn_msg_clear(&rsp);
			rv = QKDN_E_NOMEM;
			why = "out of memory";
		} else {
			memcpy(kb, r->h.keys, key_bytes(&r->h));
			keys->n = r->h.count;
			for (uint32_t i = 0; i < r->h.count; i++) {
				keys->v[i].id = r->h.ids[i];
				keys->v[i].len = klen;
				keys->v[i].bytes = kb + (size_t)i * klen;
			}
			atomic_fetch_add(&km->rc.completed, 1);
			atomic_fetch_add(&km->rc.keys_relayed, r->h.count);
			atomic_fetch_add(&km->keys_supplied, r->h.count);
			qkdn_server_reply(r->w, &rsp);
		}
	}
	if (rv != 0) {
		atomic_fetch_add(&km->rc.failed, 1);
		qkdn_server_error(r->w, rv, why);
	}
	if (r->routed)
		queue_notify(km, &r->h.relay_id, rv);
	relay_free(r);
}

/* Hand the first hop of the next usable route to its link's sender. */
static void
submit_route(struct relay *r)
{
	struct km *km = r->km;
	while (r->route_at < r->routes->n) {
		const struct km_ctl_route *rt = &r->routes->v[r->route_at];
		struct km_link *l = km_link_to(km, rt->node[1]);
		if (l != NULL) {
			relay_set_route(r, rt->node, rt->n);
			km_kx_submit_hop(km, l, &r->h);
			return;
		}
		r->route_at++;
	}
	char why[QKDN_REASON_MAX];
	snprintf(why, sizeof(why),
	         "no route the controller gave starts with a link of node %s",
	         km->node->id);
	finish_source(r, QKDN_E_NO_ROUTE, why);
}

/* On the control thread: route the relay (14 or 17), then its first hop. */
static void
start_source(struct relay *r)
{
	struct km *km = r->km;
	char why[QKDN_REASON_MAX] = "";
	uint64_t bytes = KEYS_AT + key_bytes(&r->h);
	int rv;
	if (km->net->controller == QKDN_CTL_CENTRALIZED) {
		if ((r->routes = calloc(1, sizeof(*r->routes))) == NULL) {
			finish_source(r, QKDN_E_NOMEM, "out of memory");
			return;
		}
		rv = km_ctl_routes(km->ctl, &r->h.relay_id, r->dst_node,
		                   r->h.count, r->h.bits, r->h.src_sae,
		                   r->h.dst_sae, r->routes, why, sizeof(why));
		if (rv != 0) {
			finish_source(r, rv, why);
			return;
		}
		r->routed = true;
		submit_route(r);
		return;
	}
	int next;
	rv = km_ctl_next_hop(km->ctl, &r->h.relay_id, r->dst_node, bytes, NULL,
	                     &next, why, sizeof(why));
	struct km_link *l = rv == 0 ? km_link_to(km, next) : NULL;
	if (rv == 0 && l == NULL) {
		rv = QKDN_E_NO_ROUTE;
		snprintf(
		    why, sizeof(why),
		    "controller at %s names next hop %s, which has no link "
		    "to node %s",
		    km_ctl_url(km->ctl), km->net->nodes[next].id, km->node->id);
	}
	if (rv != 0) {
		finish_source(r, rv, why);
		return;
	}
	int route[2] = {km->self, next};
	relay_set_route(r, route, 2);
	km_kx_submit_hop(km, l, &r->h);
}

void
km_relay_keyreq(struct km *km, struct qkdn_server_req *w,
                const struct qkdn_key_req *kr, int dst_node)
{
	atomic_fetch_add(&km->rc.started, 1);
	if (!km_ctl_up(km->ctl)) {
		/* the reporter found no controller: fail at once, here */
		char why[QKDN_REASON_MAX];
		snprintf(why, sizeof(why),
		         "controller at %s unreachable: it answers no link "
		         "state report",
		         km_ctl_url(km->ctl));
		atomic_fetch_add(&km->rc.failed, 1);
		qkdn_server_error(w, QKDN_E_UNREACHABLE, why);
		return;
	}
	struct relay *r = relay_new(km, R_SOURCE, kr->count, kr->bits);
	struct job *j = calloc(1, sizeof(*j));
	if (r == NULL || j == NULL) {
		free(j);
		relay_free(r);
		atomic_fetch_add(&km->rc.failed, 1);
		qkdn_server_error(w, QKDN_E_NOMEM, "out of memory");
		return;
	}
	r->w = w;
	r->dst_node = dst_node;
	qkdn_uuid_random(&r->h.relay_id);
	qkdn_uuid_v7(r->h.ids, kr->count);
	memcpy(r->h.src_sae, kr->sae, sizeof(r->h.src_sae));
	memcpy(r->h.dst_sae, kr->dst_sae, sizeof(r->h.dst_sae));
	r->h.hop = 1;
	r->h.keys_from_pad = true;
	r->h.deadline_ms = qkdn_now_ms() + km->node->kx_timeout_ms;
	r->h.done = relay_hop_done;
	j->kind = J_START;
	j->r = r;
	struct km_relay *e = km->relay;
	nng_mtx_lock(e->mtx);
	bool stopping = e->stopping;
	if (!stopping) {
		if (e->tail != NULL)
			e->tail->next = j;
		else
			e->head = j;
		e->tail = j;
		nng_cv_wake1(e->cv);
	}
	nng_mtx_unlock(e->mtx);
	if (stopping) {
		free(j);
		finish_source(r, QKDN_E_SHUTDOWN, "KM is stopping");
	}
}

/* --- completion of a hop, on the thread that carried it ------------------ */

static void
reply_done(struct qkdn_server_req *w, const struct km_hop *h,
           const uint8_t *tag)
{
	struct qkdn_msg m = {.type = QKDN_RELAY_DONE_NOTIF};
	struct qkdn_relay_done_notif *d = &m.u.relay_done_notif;
	/* no key IDs: the source has them, and the tag binds this reply to
	 * the hop's 108, which carried them (8 KiB less back per hop of 512
	 * keys) */
	d->relay_id = h->relay_id;
	d->tag.len = 16;
	d->tag.ptr = (uint8_t *)tag;
	qkdn_server_reply(w, &m);
}

void
relay_reply_req_rsp(struct relay *r, int rv)
{
	struct qkdn_msg m = {.type = QKDN_RELAY_REQ_RSP};
	m.u.relay_req_rsp.relay_id = r->h.relay_id;
	m.u.relay_req_rsp.result = rv;
	m.u.relay_req_rsp.reservation_id = r->resid;
	atomic_fetch_add(&r->km->rc.relay_req_rsps, 1);
	qkdn_server_reply(r->w, &m);
}

void
relay_hop_done(struct km_hop *h, int rv, const char *why)
{
	struct relay *r = (struct relay *)h;
	struct km *km = r->km;
	/* the next KM may have taken the keys: it must forget them */
	if (rv != 0 && h->may_have_left)
		queue_abort(km, qkdn_net_node_index(km->net, h->route[h->hop]),
		            h, why);
	switch (r->role) {
	case R_SOURCE:
		/* another route, as long as no key left this node */
		if (rv != 0 && r->routes != NULL && !h->may_have_left &&
		    (rv == QKDN_E_INSUFFICIENT_KEY ||
		     rv == QKDN_E_UNREACHABLE || rv == QKDN_E_NO_ROUTE) &&
		    r->route_at + 1 < r->routes->n) {
			QLOG_INFO(SRC, "relay to %s: %s; trying the next route",
			          km->net->nodes[r->dst_node].id, why);
			r->route_at++;
			submit_route(r);
			return;
		}
		finish_source(r, rv, why);
		return;
	case R_FORWARD:
		if (rv == 0) {
			uint8_t tag[16];
			km_sync_ack_tag(tag, r->in, r->in + 16);
			reply_done(r->w, h, tag);
		} else {
			qkdn_server_error(r->w, rv, why);
		}
		relay_free(r);
		return;
	case R_KM2:
		if (rv == 0) {
			atomic_fetch_add(&km->rc.completed, 1);
			atomic_fetch_add(&km->rc.keys_relayed, h->count);
		} else {
			atomic_fetch_add(&km->rc.failed, 1);
			QLOG_WARN(SRC, "reserved keys not relayed: %s", why);
		}
		relay_reply_req_rsp(r, rv);
		relay_free(r);
		return;
	case R_RESERVE:
		break;
	}
	/* KM1's reservation hop: hold this end's copy, then answer 22 */
	struct hold *k = rv == 0 ? calloc(1, sizeof(*k)) : NULL;
	struct qkdn_msg m = {.type = QKDN_RESERVE_RSP};
	if (rv == 0 && k == NULL) {
		rv = QKDN_E_NOMEM;
		why = "out of memory";
	}
	if (rv != 0) {
		qkdn_server_error(r->w, rv, why);
		relay_free(r);
		return;
	}
	struct qkdn_reserve_rsp *rr = &m.u.reserve_rsp;
	rr->reservation_id = r->resid;
	rr->ids.n = h->count;
	rr->ids.v = qkdn_msg_alloc(&m, h->count * sizeof(qkdn_uuid));
	rr->segs.n = h->nsegs;
	rr->segs.v = qkdn_msg_alloc(&m, h->nsegs * sizeof(*h->segs));
	if (rr->ids.v != NULL)
		memcpy(rr->ids.v, h->ids, h->count * sizeof(qkdn_uuid));
	if (rr->segs.v != NULL)
		memcpy(rr->segs.v, h->segs, h->nsegs * sizeof(*h->segs));
	int peer = qkdn_net_node_index(km->net, h->route[1]);
	struct km_link *l = km_link_to(km, peer);
	snprintf(rr->link, sizeof(rr->link), "%s", l->conf->id);
	*k = (struct hold){.resid = r->resid,
	                   .km1 = true,
	                   .peer = peer,
	                   .dst_node = r->dst_node,
	                   .expires_ms = qkdn_now_ms() + h->hold_ttl_ms,
	                   .count = h->count,
	                   .bits = h->bits,
	                   .ids = h->ids,
	                   .keys = h->keys};
	h->ids = NULL;
	h->keys = NULL;
	relay_hold_add(km, k);
	atomic_fetch_add(&km->rc.reservations, 1);
	qkdn_server_reply(r->w, &m);
	relay_free(r);
}

/* --- receiving a KEY_RELAY_AUTH ----------------------------------------- */

struct checked {
	struct km_link *link;
	int idx[QKDN_ROUTE_MAX];
	int dst_node;
	bool here; /* this node is the destination */
	bool hold; /* I.4b reservation hop: hold, do not store */
	int next;  /* the next node from the route, -1: ask the controller */
};

/* Everything about a key relay that can be checked without its bits. */
static int
check_relay(struct qkdn_server_req *w, struct km *km,
            const struct qkdn_key_relay *kr, struct checked *c, char *why,
            size_t whylen)
{
	const struct qkdn_net *net = km->net;
	uint32_t n = kr->route.n, hop = kr->hop;
	memset(c, 0, sizeof(*c));
	c->next = -1;
	if (hop >= n) {
		snprintf(why, whylen, "hop %u is past the route's %u nodes",
		         hop, n);
		return QKDN_E_BAD_REQUEST;
	}
	for (uint32_t k = 0; k < n; k++) {
		if ((c->idx[k] = qkdn_net_node_index(net, kr->route.v[k])) <
		    0) {
			snprintf(why, whylen, "route names unknown node %.63s",
			         kr->route.v[k]);
			return QKDN_E_BAD_REQUEST;
		}
		for (uint32_t i = 0; i < k; i++)
			if (c->idx[i] == c->idx[k]) {
				snprintf(
				    why, whylen,
				    "route visits node %.63s twice (a loop)",
				    kr->route.v[k]);
				return QKDN_E_NO_ROUTE;
			}
	}
	if (c->idx[hop] != km->self) {
		snprintf(why, whylen,
		         "hop %u of the route is %.63s, not node %s", hop,
		         kr->route.v[hop], km->node->id);
		return QKDN_E_BAD_REQUEST;
	}
	if ((c->link = km_link_named(km, kr->link)) == NULL) {
		snprintf(why, whylen, "node %s has no link %.63s", km->node->id,
		         kr->link);
		return QKDN_E_BAD_REQUEST;
	}
	if (c->link->peer != c->idx[hop - 1]) {
		snprintf(why, whylen,
		         "link %s joins node %s to %s, not to the previous hop "
		         "%.63s",
		         kr->link, km->node->id, net->nodes[c->link->peer].id,
		         kr->route.v[hop - 1]);
		return QKDN_E_NOT_AUTHORISED;
	}
	const char *cert = qkdn_server_peer_name(w);
	if (cert != NULL && strcmp(cert, kr->route.v[hop - 1]) != 0) {
		snprintf(
		    why, whylen,
		    "the peer's certificate names %s, not the previous hop "
		    "%.63s",
		    cert, kr->route.v[hop - 1]);
		return QKDN_E_NOT_AUTHORISED;
	}
	uint64_t bytes = (uint64_t)kr->ids.n * (kr->bits / 8);
	if (kr->bits % 8 != 0 || bytes > KM_KX_BATCH_BYTES) {
		snprintf(why, whylen,
		         "%u keys of %u bits: not whole bytes or "
		         "over %u KiB",
		         kr->ids.n, kr->bits, KM_KX_BATCH_BYTES / 1024);
		return QKDN_E_RANGE;
	}
	if (kr->ciphertext.len != 0 ? kr->ciphertext.len != bytes : hop != 1) {
		snprintf(
		    why, whylen,
		    "ciphertext of %u bytes for %llu bytes of key at hop %u",
		    kr->ciphertext.len, (unsigned long long)bytes, hop);
		return QKDN_E_RANGE;
	}
	int src = qkdn_net_sae_index(net, kr->src_sae);
	int dst = qkdn_net_sae_index(net, kr->dst_sae);
	/* I.4b: KM1's reservation hop names nodes, not SAEs (21 names none):
	 * src = KM1, dst = the reservation's destination node */
	if (n == 2 && src < 0 && dst < 0 &&
	    qkdn_net_node_index(net, kr->src_sae) == c->idx[0] &&
	    (c->dst_node = qkdn_net_node_index(net, kr->dst_sae)) >= 0 &&
	    kr->ciphertext.len == 0) {
		c->here = c->hold = true;
		return 0;
	}
	if (src < 0 || dst < 0 || net->saes[src].node != c->idx[0]) {
		snprintf(why, whylen,
		         "SAE %.63s -> %.63s is not relayed from node %.63s",
		         kr->src_sae, kr->dst_sae, kr->route.v[0]);
		return QKDN_E_NOT_AUTHORISED;
	}
	bool central = net->controller == QKDN_CTL_CENTRALIZED;
	c->dst_node = net->saes[dst].node;
	if (c->dst_node == km->self) {
		c->here = true;
		if (hop + 1 != n) {
			snprintf(why, whylen,
			         "SAE %.63s is here, but the route goes on",
			         kr->dst_sae);
			return QKDN_E_BAD_REQUEST;
		}
		return 0;
	}
	if (central && c->idx[n - 1] != c->dst_node) {
		snprintf(why, whylen,
		         "the route ends at %.63s, but SAE %.63s is at node %s",
		         kr->route.v[n - 1], kr->dst_sae,
		         net->nodes[c->dst_node].id);
		return QKDN_E_BAD_REQUEST;
	}
	if (hop + 1 < n)
		c->next = c->idx[hop + 1];
	return 0;
}

/* The keys of a relay ending here: stored for dst_sae with the in-mark in
 * one transaction, or (a reservation hop) held in memory. */
static int
deliver(struct km *km, const struct qkdn_key_relay *kr, const struct checked *c,
        const uint8_t *keys, char *why, size_t whylen)
{
	uint32_t klen = kr->bits / 8, n = kr->ids.n;
	struct km_pos end = km_pool_segs_end(&kr->segs);
	int rv;
	if (c->hold) {
		struct hold *h = calloc(1, sizeof(*h));
		if (h == NULL)
			return QKDN_E_NOMEM;
		*h = (struct hold){.resid = kr->relay_id,
		                   .peer = c->idx[0],
		                   .dst_node = c->dst_node,
		                   .expires_ms = qkdn_now_ms() + kr->ttl_ms,
		                   .count = n,
		                   .bits = kr->bits,
		                   .ids = malloc(n * sizeof(qkdn_uuid)),
		                   .keys = km_secbuf_get((size_t)n * klen)};
		if (h->ids == NULL || h->keys == NULL) {
			relay_hold_wipe(h);
			free(h);
			return QKDN_E_NOMEM;
		}
		memcpy(h->ids, kr->ids.v, n * sizeof(qkdn_uuid));
		memcpy(h->keys, keys, (size_t)n * klen);
		struct km_relay *e = km->relay;
		nng_mtx_lock(e->mtx);
		bool dup = relay_hold_find(e, &h->resid, false) != NULL;
		if (!dup) {
			h->next = e->holds;
			e->holds = h;
		}
		nng_mtx_unlock(e->mtx);
		if (dup) {
			relay_hold_wipe(h);
			free(h);
			snprintf(why, whylen, "reservation held already");
			return QKDN_E_REPLAY;
		}
		rv = km_store_mark_put(km->st, c->link->conf->id, KM_MARK_IN,
		                       &end, false);
		if (rv != 0)
			snprintf(why, whylen, "in-mark not stored");
		return rv;
	}
	struct km_key_record *recs = calloc(n, sizeof(*recs));
	if (recs == NULL)
		return QKDN_E_NOMEM;
	uint64_t expires = km_wall_ms() + (uint64_t)km->node->key_ttl_s * 1000;
	for (uint32_t i = 0; i < n; i++)
		recs[i] =
		    (struct km_key_record){.id = kr->ids.v[i],
		                           .src_sae = kr->src_sae,
		                           .dst_sae = kr->dst_sae,
		                           .expires_ms = expires,
		                           .len = klen,
		                           .bytes = keys + (size_t)i * klen};
	rv = km_store_keys_put(km->st, recs, n, c->link->conf->id, &end);
	free(recs);
	if (rv != 0)
		snprintf(why, whylen, "keys not stored: %s", qkdn_strerror(rv));
	return rv;
}

/* An intermediate node: pass the keys on. Returns 0 once the outgoing hop
 * is queued (the request is then held and answered by relay_hop_done). */
static int
forward(struct qkdn_server_req *w, struct km *km,
        const struct qkdn_key_relay_auth *a, const struct qkdn_key_relay *kr,
        struct checked *c, const uint8_t *bits, char *why, size_t whylen)
{
	struct km_pos end = km_pool_segs_end(&kr->segs);
	uint64_t now = qkdn_now_ms();
	int rv, next = c->next;
	/* the bits are used: a restart must never accept them again */
	if ((rv = km_store_mark_put(km->st, c->link->conf->id, KM_MARK_IN, &end,
	                            false)) != 0) {
		snprintf(why, whylen, "in-mark not stored");
		return rv;
	}
	if (next < 0) {
		uint64_t bytes = KEYS_AT + (uint64_t)kr->ids.n * (kr->bits / 8);
		if ((rv = km_ctl_next_hop(km->ctl, &kr->relay_id, c->dst_node,
		                          bytes, &kr->route, &next, why,
		                          whylen)) != 0)
			return rv;
		for (uint32_t k = 0; k <= kr->hop; k++)
			if (c->idx[k] == next) {
				snprintf(
				    why, whylen,
				    "next hop %s is on the route already (a "
				    "loop)",
				    km->net->nodes[next].id);
				return QKDN_E_NO_ROUTE;
			}
		if (kr->route.n >= QKDN_ROUTE_MAX) {
			snprintf(why, whylen, "route longer than %d nodes",
			         QKDN_ROUTE_MAX);
			return QKDN_E_NO_ROUTE;
		}
		c->idx[kr->route.n] = next;
	}
	struct km_link *l = km_link_to(km, next);
	if (l == NULL) {
		snprintf(why, whylen, "node %s has no link to next hop %s",
		         km->node->id, km->net->nodes[next].id);
		return QKDN_E_NO_ROUTE;
	}
	uint32_t margin = kr->ttl_ms / 10 + 5;
	if (kr->ttl_ms <= margin) {
		snprintf(why, whylen, "relay out of time at node %s",
		         km->node->id);
		return QKDN_E_TIMEOUT;
	}
	struct relay *r = relay_new(km, R_FORWARD, kr->ids.n, kr->bits);
	if (r == NULL || (r->in = km_secbuf_get(48)) == NULL) {
		relay_free(r);
		snprintf(why, whylen, "out of memory");
		return QKDN_E_NOMEM;
	}
	r->w = w;
	r->h.relay_id = kr->relay_id;
	relay_set_route(r, c->idx, c->next < 0 ? kr->route.n + 1 : kr->route.n);
	r->h.hop = kr->hop + 1;
	memcpy(r->h.src_sae, kr->src_sae, sizeof(r->h.src_sae));
	memcpy(r->h.dst_sae, kr->dst_sae, sizeof(r->h.dst_sae));
	memcpy(r->h.ids, kr->ids.v, kr->ids.n * sizeof(qkdn_uuid));
	memcpy(r->h.keys, bits + KEYS_AT, key_bytes(&r->h));
	r->h.deadline_ms = now + kr->ttl_ms - margin;
	r->h.done = relay_hop_done;
	memcpy(r->in, a->tag.ptr, 16);
	memcpy(r->in + 16, bits + KM_SYNC_MAC_KEY_BYTES, 32);
	recent_add(km, &kr->relay_id, c->idx[kr->hop - 1], next, kr->dst_sae,
	           NULL, 0);
	atomic_fetch_add(&km->rc.forwarded, 1);
	km_kx_run_hop(km, l, &r->h);
	return 0;
}

void
km_relay_handle_auth(struct qkdn_server_req *w, struct qkdn_msg *req)
{
	struct km *km = qkdn_server_arg(w);
	const struct qkdn_key_relay_auth *a = &req->u.key_relay_auth;
	struct qkdn_decode_error err = {0};
	struct qkdn_msg m;
	struct checked c;
	char why[QKDN_REASON_MAX] = "";
	uint8_t *bits = NULL;
	uint64_t total = 0, skip = 0;
	int rv;

	if ((rv = qkdn_msg_decode(a->relay.ptr, a->relay.len, &m, &err)) != 0) {
		snprintf(why, sizeof(why), "key relay: %.200s", err.reason);
		goto refuse;
	}
	if (m.type != QKDN_KEY_RELAY) {
		snprintf(why, sizeof(why), "a key relay carries a %s",
		         qkdn_msg_type_name(m.type));
		rv = QKDN_E_BAD_REQUEST;
		goto refuse;
	}
	const struct qkdn_key_relay *kr = &m.u.key_relay;
	if ((rv = check_relay(w, km, kr, &c, why, sizeof(why))) != 0)
		goto refuse;
	total = KEYS_AT + (uint64_t)kr->ids.n * (kr->bits / 8);
	if ((bits = km_secbuf_get(total)) == NULL) {
		rv = QKDN_E_NOMEM;
		snprintf(why, sizeof(why), "out of memory");
		goto refuse;
	}
	switch (km_kx_read_in(w, c.link, &kr->segs, bits, total, &rv, &skip)) {
	case KM_KX_READ_WAIT:
		km_secbuf_put(bits);
		qkdn_msg_clear(&m);
		qkdn_server_retry(w, BLOCK_WAIT_MS);
		return;
	case KM_KX_READ_SKIP:
		km_kx_end_wait(w);
		km_secbuf_put(bits);
		qkdn_msg_clear(&m);
		atomic_fetch_add(&km->rc.rejected, 1);
		atomic_fetch_add(&km->kx_errors, 1);
		km_kx_reply_ack(w, rv, skip, NULL);
		return;
	case KM_KX_READ_FAIL:
		snprintf(why, sizeof(why), "key relay on link %s: %s",
		         c.link->conf->id,
		         rv == QKDN_E_REPLAY
		             ? "positions before the in-mark (replayed)"
		             : qkdn_strerror(rv));
		goto refuse;
	case KM_KX_READ_OK:
		break;
	}
	km_kx_end_wait(w);
	/* the tag before anything is consumed */
	if (km_mac_verify(a->tag.ptr, a->tag.len, a->relay.ptr, a->relay.len,
	                  bits) != 0) {
		km_link_note_sync(c.link, false);
		rv = QKDN_E_AUTH_FAILED;
		snprintf(why, sizeof(why),
		         "key relay on link %s: authentication failed (forged, "
		         "altered, or the two ends' pools differ)",
		         c.link->conf->id);
		goto refuse;
	}
	nng_mtx_lock(km->mtx);
	bool mine = km_pool_claim_in(&c.link->pool, &kr->segs);
	nng_mtx_unlock(km->mtx);
	if (!mine) {
		rv = QKDN_E_REPLAY;
		snprintf(why, sizeof(why),
		         "key relay on link %s: positions used meanwhile",
		         c.link->conf->id);
		goto refuse;
	}
	km_link_note_sync(c.link, true);
	/* keys = pad (first hop) or ciphertext XOR pad, in place */
	uint8_t *keys = bits + KEYS_AT;
	km_xor(keys, keys, kr->ciphertext.ptr, kr->ciphertext.len);
	if (!c.here) {
		rv = forward(w, km, a, kr, &c, bits, why, sizeof(why));
		km_secbuf_put(bits);
		bits = NULL;
		if (rv != 0)
			goto refuse;
		qkdn_msg_clear(&m);
		return; /* held: relay_hop_done answers */
	}
	if ((rv = deliver(km, kr, &c, keys, why, sizeof(why))) != 0)
		goto refuse;
	struct km_hop h = {.relay_id = kr->relay_id, .count = kr->ids.n};
	uint8_t tag[16];
	km_sync_ack_tag(tag, a->tag.ptr, bits + KM_SYNC_MAC_KEY_BYTES);
	km_secbuf_put(bits);
	if (!c.hold)
		recent_add(km, &kr->relay_id, c.idx[kr->hop - 1], -1,
		           kr->dst_sae, kr->ids.v, kr->ids.n);
	atomic_fetch_add(&km->rc.delivered, 1);
	atomic_fetch_add(&km->rc.done_notifs, 1);
	reply_done(w, &h, tag); /* clears the request */
	qkdn_msg_clear(&m);
	return;
refuse:
	km_kx_end_wait(w);
	if (bits != NULL)
		km_secbuf_put(bits);
	qkdn_msg_clear(&m);
	atomic_fetch_add(&km->rc.rejected, 1);
	qkdn_server_error(w, rv, why);
}

/* --- 109: a relay failed after its keys may have reached this node ------- */

void
km_relay_handle_abort(struct qkdn_server_req *w, struct qkdn_msg *req)
{
	struct km *km = qkdn_server_arg(w);
	struct km_relay *e = km->relay;
	const struct qkdn_relay_abort *ab = &req->u.relay_abort;
	const char *cert = qkdn_server_peer_name(w);
	struct recent x = {0};
	struct hold *gone = NULL;
	nng_mtx_lock(e->mtx);
	for (size_t i = 0; i < RECENT_MAX; i++) {
		struct recent *y = &e->recent[i];
		/* only the node that sent the relay here may abort it */
		if (y->valid && relay_uuid_eq(&y->rid, &ab->relay_id) &&
		    (cert == NULL ||
		     strcmp(cert, km->net->nodes[y->prev].id) == 0)) {
			x = *y;
			y->valid = false;
			y->ids = NULL;
			break;
		}
	}
	for (struct hold **p = &e->holds; *p != NULL; p = &(*p)->next)
		if (!(*p)->km1 && !(*p)->used &&
		    relay_uuid_eq(&(*p)->resid, &ab->relay_id) &&
		    (cert == NULL ||
		     strcmp(cert, km->net->nodes[(*p)->peer].id) == 0)) {
			gone = *p;
			*p = gone->next;
			break;
		}
	nng_mtx_unlock(e->mtx);
	if (gone != NULL) {
		relay_hold_wipe(gone);
		free(gone);
	}
	if (x.valid && x.next < 0) {
		/* not fetched yet: tombstone them, so they never are */
		for (uint32_t i = 0; i < x.n; i++) {
			struct qkdn_msg tmp = {0};
			struct qkdn_key k;
			size_t bad;
			if (km_store_keys_take(km->st, x.dst_sae, &x.ids[i], 1,
			                       &tmp, &k, &bad) == 0)
				QLOG_DEBUG(SRC, "aborted relay: key dropped");
			qkdn_msg_clear(&tmp);
		}
	} else if (x.valid) {
		struct km_hop h = {.relay_id = ab->relay_id,
		                   .count = ab->ids.n,
		                   .ids = ab->ids.v};
		queue_abort(km, x.next, &h, ab->reason);
	}
	free(x.ids);
	if (x.valid || gone != NULL)
		QLOG_INFO(SRC, "relay aborted by the previous hop: %s",
		          ab->reason[0] ? ab->reason : "no reason given");
	km_kx_reply_ack(w, 0, 0, NULL);
}

/* --- the control thread --------------------------------------------------- */

static void
send_abort(struct km *km, const struct job *j)
{
	static struct qkdn_log_limit lost;
	const struct qkdn_net_node *to = &km->net->nodes[j->node];
	struct qkdn_sp_conn c = {
	    .fd = -1, .tls = km->kx_tls, .peer_name = to->id};
	struct qkdn_msg m = {.type = QKDN_RELAY_ABORT};
	struct qkdn_buf b = {0};
	uint64_t deadline = qkdn_now_ms() + ABORT_MS;
	uint8_t *in = NULL;
	size_t in_len = 0;
	m.u.relay_abort.relay_id = j->rid;
	m.u.relay_abort.ids.n = j->n;
	m.u.relay_abort.ids.v = j->ids;
	snprintf(m.u.relay_abort.reason, sizeof(m.u.relay_abort.reason), "%s",
	         j->why);
	int rv = qkdn_msg_encode(&m, qkdn_buf_write, &b);
	if (rv == 0)
		rv = qkdn_sp_connect_once(&c, to->kx_url, deadline);
	if (rv == 0)
		rv = qkdn_sp_call(&c, b.data, b.len, &in, &in_len, 4096,
		                  deadline);
	free(in);
	qkdn_sp_close(&c);
	qkdn_buf_free(&b);
	if (rv != 0)
		QLOG_LIMITED(&lost, QKDN_LOG_INFO, SRC,
		             "relay abort not delivered to %s: %s", to->id,
		             qkdn_strerror(rv));
}

static void
run_job(struct km *km, struct job *j)
{
	switch (j->kind) {
	case J_START:
		start_source(j->r);
		break;
	case J_NOTIFY:
		km_ctl_relay_rsp(km->ctl, &j->rid, j->result);
		break;
	case J_ABORT:
		if (j->node >= 0)
			send_abort(km, j);
		break;
	}
	free(j->ids);
	free(j);
}

static void
control(void *arg)
{
	struct km *km = arg;
	struct km_relay *e = km->relay;
	nng_mtx_lock(e->mtx);
	for (;;) {
		while (e->head == NULL && !e->stopping)
			nng_cv_wait(e->cv);
		if (e->stopping)
			break;
		struct job *j = e->head;
		e->head = j->next;
		if (e->head == NULL)
			e->tail = NULL;
		nng_mtx_unlock(e->mtx);
		run_job(km, j);
		nng_mtx_lock(e->mtx);
	}
	struct job *left = e->head;
	e->head = e->tail = NULL;
	nng_mtx_unlock(e->mtx);
	while (left != NULL) {
		struct job *j = left;
		left = j->next;
		if (j->kind == J_START)
			finish_source(j->r, QKDN_E_SHUTDOWN, "KM is stopping");
		free(j->ids);
		free(j);
	}
}

int
km_relay_start(struct km *km)
{
	struct km_relay *e = calloc(1, sizeof(*e));
	int rv;
	if (e == NULL)
		return QKDN_E_NOMEM;
	e->km = km;
	km->relay = e;
	if ((rv = nng_mtx_alloc(&e->mtx)) != 0 ||
	    (rv = nng_cv_alloc(&e->cv, e->mtx)) != 0 ||
	    (rv = nng_thread_create(&e->thread, control, km)) != 0)
		return qkdn_err_from_nng(rv);
	return 0;
}

void
km_relay_stop(struct km *km)
{
	struct km_relay *e = km->relay;
	if (e == NULL || e->mtx == NULL)
		return;
	nng_mtx_lock(e->mtx);
	e->stopping = true;
	if (e->cv != NULL)
		nng_cv_wake(e->cv);
	nng_mtx_unlock(e->mtx);
	if (e->thread != NULL)
		nng_thread_destroy(e->thread);
	e->thread = NULL;
}

void
km_relay_free(struct km *km)
{
	struct km_relay *e = km->relay;
	if (e == NULL)
		return;
	km_relay_stop(km);
	while (e->holds != NULL) {
		struct hold *h = e->holds;
		e->holds = h->next;
		relay_hold_wipe(h);
		free(h);
	}
	for (size_t i = 0; i < RECENT_MAX; i++)
		free(e->recent[i].ids);
	if (e->cv != NULL)
		nng_cv_free(e->cv);
	if (e->mtx != NULL)
		nng_mtx_free(e->mtx);
	free(e);
	km->relay = NULL;
}

static bool
hold_expired(const struct hold *h, const void *now_ms)
{
	return h->expires_ms <= *(const uint64_t *)now_ms;
}

void
km_relay_tick(struct km *km)
{
	struct km_relay *e = km->relay;
	uint64_t now = qkdn_now_ms();
	if (e == NULL)
		return;
	struct hold *gone = relay_holds_unlink(e, hold_expired, &now);
	while (gone != NULL) {
		struct hold *h = gone;
		gone = h->next;
		if (!h->used)
			QLOG_INFO(SRC, "a reservation expired unallocated; "
			               "its keys are wiped");
		relay_hold_wipe(h);
		free(h);
	}
}

void
km_relay_stats(struct km *km, struct qkdn_relay_stats *s)
{
	const struct km_relay_counters *c = &km->rc;
	s->started = atomic_load(&c->started);
	s->completed = atomic_load(&c->completed);
	s->failed = atomic_load(&c->failed);
	uint64_t over = s->completed + s->failed;
	s->in_flight = s->started > over ? s->started - over : 0;
	s->forwarded = atomic_load(&c->forwarded);
	s->delivered = atomic_load(&c->delivered);
	s->rejected = atomic_load(&c->rejected);
	s->next_hop_reqs = atomic_load(&c->next_hop_reqs);
	s->relay_req_notifs = atomic_load(&c->relay_req_notifs);
	s->relay_req_rsps = atomic_load(&c->relay_req_rsps);
	s->done_notifs = atomic_load(&c->done_notifs);
	s->reservations = atomic_load(&c->reservations);
	s->allocations = atomic_load(&c->allocations);
	s->keys_relayed = atomic_load(&c->keys_relayed);
}
