#include "ctl_client.h"

#include "kme.h"
#include "kx.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"
#include "qkdn_sp.h"

#include <nng/supplemental/util/platform.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define SRC "ctl"
/* how often this KM reports its links, and how long a report is good for
 * at the controller (relay-spec.md: 250 ms, 3000 ms) */
#define REPORT_MS  250
#define MAX_AGE_MS 3000
/* A controller call is one local round trip: far below a relay's ttl
 * (kx_timeout_ms, 2 s by default), so a hung controller fails a relay
 * while it can still answer its application. */
#define CALL_MS 500
/* replies are small: routes of 32 names, link lists of a few links */
#define REPLY_MAX (1u << 20)

struct cache_ent {
	bool valid;
	uint64_t version;
	int next;                    /* distributed */
	struct km_ctl_routes routes; /* centralized */
};

struct km_ctl {
	struct km *km;
	const char *url;
	bool central;
	nng_mtx *mtx; /* version, up, cache, stopping */
	nng_cv *cv;
	bool stopping;
	bool up;                 /* the last report was answered */
	uint64_t version;        /* from that answer */
	struct cache_ent *cache; /* by destination node index */
	nng_thread *thread;
	struct qkdn_sp_conn report_conn; /* the reporter's own */
	nng_mtx *call_mtx;               /* lookups: one call at a time */
	struct qkdn_sp_conn call_conn;
	uint64_t seq;
};

bool
km_ctl_up(struct km_ctl *c)
{
	nng_mtx_lock(c->mtx);
	bool up = c->up;
	nng_mtx_unlock(c->mtx);
	return up;
}

const char *
km_ctl_url(const struct km_ctl *c)
{
	return c->url;
}

static void
flush_locked(struct km_ctl *c)
{
	for (size_t i = 0; i < c->km->net->n_nodes; i++)
		c->cache[i].valid = false;
}

/* One round trip to the controller on conn; rsp is decoded (an ERROR
 * reply becomes its code). why names the controller's address. */
static int
call(struct km_ctl *c, struct qkdn_sp_conn *conn, const struct qkdn_msg *req,
     struct qkdn_msg *rsp, char *why, size_t whylen)
{
	uint64_t deadline = qkdn_now_ms() + CALL_MS;
	struct qkdn_buf b = {0};
	struct qkdn_decode_error err = {0};
	uint8_t *in = NULL;
	size_t in_len = 0;
	int rv;
	memset(rsp, 0, sizeof(*rsp));
	if ((rv = qkdn_msg_encode(req, qkdn_buf_write, &b)) != 0) {
		snprintf(why, whylen,
		         "request to the controller at %s could "
		         "not be encoded",
		         c->url);
		return rv;
	}
	if (conn->fd < 0) {
		/* over tls+tcp:// the controller proves its name: the
		 * central one's (ctl_name), or this node's own (a node's
		 * KM and controller share its certificate) */
		conn->tls = c->km->kx_tls;
		conn->peer_name =
		    c->central ? c->km->net->ctl_name : c->km->node->id;
		/* once: a controller that is not running fails a relay at
		 * once instead of at the deadline */
		if ((rv = qkdn_sp_connect_once(conn, c->url, deadline)) != 0) {
			conn->fd = -1;
			snprintf(why, whylen,
			         "controller at %s unreachable: %s", c->url,
			         qkdn_sp_last_error());
			qkdn_buf_free(&b);
			return rv == QKDN_E_CONFIG ? rv : QKDN_E_UNREACHABLE;
		}
	}
	rv = qkdn_sp_call(conn, b.data, b.len, &in, &in_len, REPLY_MAX,
	                  deadline);
	qkdn_buf_free(&b);
	if (rv != 0) {
		qkdn_sp_close(conn);
		conn->fd = -1;
		if (rv == QKDN_E_TIMEOUT)
			snprintf(
			    why, whylen,
			    "controller at %s unreachable: no answer within "
			    "%d ms",
			    c->url, CALL_MS);
		else
			snprintf(why, whylen,
			         "controller at %s unreachable: %s", c->url,
			         qkdn_sp_last_error());
		return QKDN_E_UNREACHABLE;
	}
	rv = qkdn_msg_decode(in, in_len, rsp, &err);
	free(in); /* control messages: no key material */
	if (rv != 0) {
		snprintf(why, whylen,
		         "bad reply from the controller at %s: %.150s", c->url,
		         err.reason);
		return QKDN_E_INTERNAL;
	}
	if (rsp->type == QKDN_ERROR) {
		rv = -rsp->u.error.code;
		snprintf(why, whylen, "controller at %s: %.180s", c->url,
		         rsp->u.error.reason);
		qkdn_msg_clear(rsp);
		return rv;
	}
	return 0;
}

/* This node's links as the controller wants them (KM lock taken). */
static int
build_report(struct km_ctl *c, struct qkdn_msg *m)
{
	struct km *km = c->km;
	struct qkdn_link_state_update *u = &m->u.link_state;
	memset(m, 0, sizeof(*m));
	m->type = QKDN_LINK_STATE;
	memcpy(u->origin, km->node->id, sizeof(u->origin));
	u->seq = c->seq++;
	u->max_age_ms = MAX_AGE_MS;
	u->links.n = (uint32_t)km->n_links;
	if (km->n_links > 0 &&
	    (u->links.v =
	         qkdn_msg_alloc(m, km->n_links * sizeof(*u->links.v))) == NULL)
		return QKDN_E_NOMEM;
	nng_mtx_lock(km->mtx);
	for (size_t i = 0; i < km->n_links; i++) {
		struct km_link *l = &km->links[i];
		struct qkdn_link_state *s = &u->links.v[i];
		memcpy(s->link, l->conf->id, sizeof(s->link));
		memcpy(s->a, km->node->id, sizeof(s->a));
		memcpy(s->b, km->net->nodes[l->peer].id, sizeof(s->b));
		/* the up test of STATUS (km/node.c): a link whose KME is down
		 * gets no new key, and the controller sees it down too */
		char why[QKDN_REASON_MAX];
		s->up =
		    km_kx_link_up(l->kx) && !km_kme_down(l, why, sizeof(why));
		s->a_out = km_pool_out_avail(&l->pool);
		s->rate_bps = l->conf->rate_bps;
	}
	nng_mtx_unlock(km->mtx);
	return 0;
}

static void
report_once(struct km_ctl *c)
{
	static struct qkdn_log_limit quiet;
	struct qkdn_msg req, rsp;
	char why[QKDN_REASON_MAX] = "";
	int rv = build_report(c, &req);
	if (rv == 0)
		rv = call(c, &c->report_conn, &req, &rsp, why, sizeof(why));
	qkdn_msg_clear(&req);
	if (rv == 0 && (rsp.type != QKDN_ACK || rsp.u.ack.result != 0)) {
		snprintf(why, sizeof(why),
		         "controller at %s did not accept the link state",
		         c->url);
		rv = QKDN_E_INTERNAL;
	}
	uint64_t version = rv == 0 ? rsp.u.ack.value : 0;
	qkdn_msg_clear(&rsp);
	nng_mtx_lock(c->mtx);
	if (rv != 0 || !c->up || version != c->version)
		flush_locked(c);
	bool was_up = c->up;
	c->up = rv == 0;
	if (rv == 0)
		c->version = version;
	nng_mtx_unlock(c->mtx);
	if (rv != 0) {
		/* no controller at all is normal for a two-node network */
		QLOG_LIMITED(&quiet, QKDN_LOG_DEBUG, SRC, "link state: %s",
		             why);
		if (was_up)
			QLOG_WARN(SRC, "lost the controller: %s", why);
	} else if (!was_up) {
		QLOG_INFO(SRC,
		          "controller at %s answers (topology version "
		          "%llu)",
		          c->url, (unsigned long long)version);
	}
}

static void
reporter(void *arg)
{
	struct km_ctl *c = arg;
	nng_mtx_lock(c->mtx);
	while (!c->stopping) {
		nng_mtx_unlock(c->mtx);
		report_once(c);
		nng_mtx_lock(c->mtx);
		nng_time until = nng_clock() + REPORT_MS;
		while (!c->stopping && nng_clock() < until)
			nng_cv_until(c->cv, until);
	}
	nng_mtx_unlock(c->mtx);
}

static uint64_t
wall_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

int
km_ctl_start(struct km *km, struct km_ctl **out)
{
	struct km_ctl *c = calloc(1, sizeof(*c));
	int rv;
	if (c == NULL)
		return QKDN_E_NOMEM;
	c->km = km;
	c->central = km->net->controller == QKDN_CTL_CENTRALIZED;
	c->url = c->central ? km->net->central_ck_url : km->node->ck_url;
	c->report_conn.fd = -1;
	c->call_conn.fd = -1;
	/* strictly growing across restarts of this KM */
	c->seq = wall_us();
	c->cache =
	    calloc(km->net->n_nodes ? km->net->n_nodes : 1, sizeof(*c->cache));
	if (c->cache == NULL) {
		free(c);
		return QKDN_E_NOMEM;
	}
	if ((rv = nng_mtx_alloc(&c->mtx)) != 0 ||
	    (rv = nng_mtx_alloc(&c->call_mtx)) != 0 ||
	    (rv = nng_cv_alloc(&c->cv, c->mtx)) != 0 ||
	    (rv = nng_thread_create(&c->thread, reporter, c)) != 0) {
		c->thread = NULL;
		km_ctl_stop(c);
		return qkdn_err_from_nng(rv);
	}
	*out = c;
	return 0;
}

void
km_ctl_stop(struct km_ctl *c)
{
	if (c == NULL)
		return;
	if (c->thread != NULL) {
		nng_mtx_lock(c->mtx);
		c->stopping = true;
		nng_cv_wake(c->cv);
		nng_mtx_unlock(c->mtx);
		nng_thread_destroy(c->thread);
	}
	qkdn_sp_close(&c->report_conn);
	qkdn_sp_close(&c->call_conn);
	if (c->cv != NULL)
		nng_cv_free(c->cv);
	if (c->call_mtx != NULL)
		nng_mtx_free(c->call_mtx);
	if (c->mtx != NULL)
		nng_mtx_free(c->mtx);
	free(c->cache);
	free(c);
}

/* A cached answer for dst made on the version the controller reports now. */
static bool
cache_get(struct km_ctl *c, int dst, struct cache_ent *out)
{
	nng_mtx_lock(c->mtx);
	bool hit =
	    c->up && c->cache[dst].valid && c->cache[dst].version == c->version;
	if (hit)
		*out = c->cache[dst];
	nng_mtx_unlock(c->mtx);
	return hit;
}

static void
cache_put(struct km_ctl *c, int dst, const struct cache_ent *e)
{
	nng_mtx_lock(c->mtx);
	c->cache[dst] = *e;
	c->cache[dst].valid = true;
	nng_mtx_unlock(c->mtx);
}

static int
node_of(const struct km_ctl *c, const char *id)
{
	return qkdn_net_node_index(c->km->net, id);
}

/* Whether node idx is on route (NULL: the empty route). */
static bool
on_route(const struct km_ctl *c, const struct qkdn_route *route, int idx)
{
	for (uint32_t i = 0; route != NULL && i < route->n; i++)
		if (node_of(c, route->v[i]) == idx)
			return true;
	return false;
}

int
km_ctl_next_hop(struct km_ctl *c, const qkdn_uuid *relay_id, int dst_node,
                uint64_t bytes, const struct qkdn_route *so_far, int *next,
                char *why, size_t whylen)
{
	struct km *km = c->km;
	const char *dst = km->net->nodes[dst_node].id;
	struct cache_ent e;
	/* a cached next hop the relay has passed already would loop: ask */
	if (cache_get(c, dst_node, &e) && !on_route(c, so_far, e.next)) {
		*next = e.next;
		return 0;
	}
	struct qkdn_msg req = {.type = QKDN_NEXT_HOP_REQ}, rsp;
	struct qkdn_next_hop_req *q = &req.u.next_hop_req;
	q->relay_id = *relay_id;
	memcpy(q->here, km->node->id, sizeof(q->here));
	memcpy(q->dst_node, dst, sizeof(q->dst_node));
	q->bytes = bytes;
	if (so_far != NULL)
		q->route = *so_far; /* borrowed: the request is not cleared */
	nng_mtx_lock(c->call_mtx);
	atomic_fetch_add(&km->rc.next_hop_reqs, 1);
	int rv = call(c, &c->call_conn, &req, &rsp, why, whylen);
	nng_mtx_unlock(c->call_mtx);
	if (rv != 0)
		return rv;
	const struct qkdn_next_hop_rsp *r = &rsp.u.next_hop_rsp;
	if (rsp.type != QKDN_NEXT_HOP_RSP) {
		snprintf(why, whylen,
		         "controller at %s answered a next hop "
		         "request with a %s",
		         c->url, qkdn_msg_type_name(rsp.type));
		rv = QKDN_E_INTERNAL;
	} else if (r->result != 0) {
		rv = r->result < 0 ? r->result : -r->result;
		snprintf(why, whylen,
		         "controller at %s: no route from %s to node %s",
		         c->url, km->node->id, dst);
	} else if ((e.next = node_of(c, r->next_hop)) < 0 ||
	           e.next == km->self) {
		snprintf(why, whylen,
		         "controller at %s names next hop %.63s, not a node of "
		         "this network",
		         c->url, r->next_hop);
		rv = QKDN_E_INTERNAL;
	} else {
		e.version = r->version;
		cache_put(c, dst_node, &e);
		*next = e.next;
	}
	qkdn_msg_clear(&rsp);
	return rv;
}

/* Keep the routes of rr that start here and end at dst, as indices. */
static int
take_routes(struct km_ctl *c, const struct qkdn_relay_req *rr, int dst,
            struct km_ctl_routes *out)
{
	out->n = 0;
	for (uint32_t i = 0; i < rr->routes.n && i < QKDN_ROUTES_MAX; i++) {
		const struct qkdn_route *r = &rr->routes.v[i].nodes;
		struct km_ctl_route *o = &out->v[out->n];
		if (r->n < 2 || r->n > QKDN_ROUTE_MAX)
			continue;
		bool ok = true;
		for (uint32_t k = 0; k < r->n && ok; k++)
			ok = (o->node[k] = node_of(c, r->v[k])) >= 0;
		if (!ok || o->node[0] != c->km->self ||
		    o->node[r->n - 1] != dst)
			continue;
		o->n = r->n;
		out->n++;
	}
	return out->n > 0 ? 0 : QKDN_E_NO_ROUTE;
}

int
km_ctl_routes(struct km_ctl *c, const qkdn_uuid *relay_id, int dst_node,
              uint32_t count, uint32_t bits, const char *src_sae,
              const char *dst_sae, struct km_ctl_routes *out, char *why,
              size_t whylen)
{
	struct km *km = c->km;
	const char *dst = km->net->nodes[dst_node].id;
	struct cache_ent *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return QKDN_E_NOMEM;
	if (cache_get(c, dst_node, e)) {
		*out = e->routes;
		free(e);
		return 0;
	}
	struct qkdn_msg req = {.type = QKDN_RELAY_REQ_NOTIF}, rsp;
	struct qkdn_relay_req_notif *q = &req.u.relay_req_notif;
	q->relay_id = *relay_id;
	memcpy(q->src_node, km->node->id, sizeof(q->src_node));
	memcpy(q->dst_node, dst, sizeof(q->dst_node));
	q->count = count;
	q->bits = bits;
	snprintf(q->src_sae, sizeof(q->src_sae), "%s", src_sae);
	snprintf(q->dst_sae, sizeof(q->dst_sae), "%s", dst_sae);
	nng_mtx_lock(c->call_mtx);
	atomic_fetch_add(&km->rc.relay_req_notifs, 1);
	int rv = call(c, &c->call_conn, &req, &rsp, why, whylen);
	nng_mtx_unlock(c->call_mtx);
	if (rv != 0) {
		free(e);
		return rv;
	}
	if (rsp.type != QKDN_RELAY_REQ) {
		snprintf(why, whylen,
		         "controller at %s answered a key relay "
		         "request notification with a %s",
		         c->url, qkdn_msg_type_name(rsp.type));
		rv = QKDN_E_INTERNAL;
	} else if ((rv = take_routes(c, &rsp.u.relay_req, dst_node,
	                             &e->routes)) != 0) {
		snprintf(why, whylen,
		         "controller at %s: no route from %s to node %s",
		         c->url, km->node->id, dst);
	} else {
		e->version = rsp.u.relay_req.version;
		cache_put(c, dst_node, e);
		*out = e->routes;
	}
	qkdn_msg_clear(&rsp);
	free(e);
	return rv;
}

void
km_ctl_relay_rsp(struct km_ctl *c, const qkdn_uuid *relay_id, int result)
{
	static struct qkdn_log_limit lost;
	struct qkdn_msg req = {.type = QKDN_RELAY_REQ_RSP}, rsp;
	char why[QKDN_REASON_MAX];
	req.u.relay_req_rsp.relay_id = *relay_id;
	req.u.relay_req_rsp.result = result;
	nng_mtx_lock(c->call_mtx);
	atomic_fetch_add(&c->km->rc.relay_req_rsps, 1);
	int rv = call(c, &c->call_conn, &req, &rsp, why, sizeof(why));
	nng_mtx_unlock(c->call_mtx);
	if (rv != 0)
		QLOG_LIMITED(&lost, QKDN_LOG_INFO, SRC,
		             "response to key relay request not delivered: %s",
		             why);
	qkdn_msg_clear(&rsp);
}
