/* The controller: start and stop, the link-state database behind its lock,
 * and the routing answers built from it (ctl.h). */
#include "ctl.h"

#include "flood.h"
#include "order.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"
#include "qkdn_server.h"
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SRC "ctl"

uint64_t
ctl_now_ms(void)
{
	return qkdn_now_ms();
}

/* Wall-clock milliseconds: the first version of a run, so a restarted
 * controller does not reuse versions a KM may have cached routes under. */
static uint64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int
by_id(const void *a, const void *b, void *net)
{
	const struct qkdn_net *n = net;
	return strcmp(n->nodes[*(const uint32_t *)a].id,
	              n->nodes[*(const uint32_t *)b].id);
}

/* rank[i]: node i's place in ID order, the routes' last tie-break. */
static void
rank_nodes(const struct qkdn_net *net, uint32_t *rank)
{
	uint32_t order[QKDN_NET_NODES_MAX];
	for (uint32_t i = 0; i < net->n_nodes; i++)
		order[i] = i;
	qsort_r(order, net->n_nodes, sizeof(order[0]), by_id, (void *)net);
	for (uint32_t i = 0; i < net->n_nodes; i++)
		rank[order[i]] = i;
}

/* Drop the LSAs that aged out, naming their origins. Under c->mtx. */
static void
age_locked(struct ctl *c, uint64_t now)
{
	uint32_t gone[QKDN_NET_NODES_MAX];
	uint64_t before = ls_db_version(c->db);
	size_t n = ls_db_age(c->db, now, gone);
	for (size_t i = 0; i < n; i++)
		QLOG_INFO(SRC,
		          "node %s's link state aged out (no report for its "
		          "max age)%s",
		          c->net->nodes[gone[i]].id,
		          ls_db_version(c->db) != before ? "; topology changed"
		                                         : "");
}

int
ctl_start(struct ctl **out, const struct qkdn_net *net, int self)
{
	struct ctl *c = calloc(1, sizeof(*c));
	uint32_t rank[QKDN_NET_NODES_MAX];
	int rv;
	if (c == NULL)
		return QKDN_E_NOMEM;
	c->net = net;
	c->self = self;
	c->central = self < 0;
	snprintf(c->name, sizeof(c->name), "%s",
	         c->central ? "central" : net->nodes[self].id);
	if ((rv = nng_mtx_alloc(&c->mtx)) != 0) {
		free(c);
		return qkdn_err_from_nng(rv);
	}
	rank_nodes(net, rank);
	if ((rv = ls_db_new(&c->db, (uint32_t)net->n_nodes, rank, wall_ms())) !=
	    0)
		goto fail;
	if (c->central)
		rv = ctl_order_start(&c->order, c);
	else
		rv = ctl_flood_start(&c->flood, c);
	if (rv != 0 || (rv = ctl_serve_start(c)) != 0)
		goto fail;
	if (c->central)
		QLOG_INFO(SRC, "central controller serving Ck on %s",
		          net->central_ck_url);
	else
		QLOG_INFO(
		    SRC, "controller of node %s serving Ck on %s, Cx on %s",
		    c->name, net->nodes[self].ck_url, net->nodes[self].cx_url);
	*out = c;
	return 0;
fail:
	ctl_stop(c);
	return rv;
}

void
ctl_stop(struct ctl *c)
{
	if (c == NULL)
		return;
	/* orders first: they answer requests the Ck server holds */
	ctl_order_stop(c->order);
	ctl_serve_stop(c);
	/* no handler can mark an origin any more */
	ctl_flood_stop(c->flood);
	ctl_order_free(c->order);
	ls_db_free(c->db);
	nng_mtx_free(c->mtx);
	free(c);
}

void
ctl_tick(struct ctl *c)
{
	uint64_t now = ctl_now_ms();
	nng_mtx_lock(c->mtx);
	age_locked(c, now);
	/* the periodic flood keeps this node's LSA fresh at the far ends
	 * while nothing changes materially */
	if (!c->central && ls_db_get(c->db, (uint32_t)c->self) != NULL &&
	    now - c->own_flood_ms >= CTL_REFRESH_MS) {
		c->own_flood_ms = now;
		ctl_flood_mark(c->flood, c->self, -1);
	}
	nng_mtx_unlock(c->mtx);
}

/* Check one reported link against the network file. */
static int
check_link(const struct qkdn_net *net, int origin,
           const struct qkdn_link_state *l, struct ls_link *out, char *why,
           size_t whylen)
{
	int li = qkdn_net_link_index(net, l->link);
	if (li < 0) {
		snprintf(why, whylen, "unknown link '%s'", l->link);
		return QKDN_E_BAD_REQUEST;
	}
	const struct qkdn_net_link *nl = &net->links[li];
	const char *self = net->nodes[origin].id;
	if (strcmp(l->a, self) != 0) {
		snprintf(why, whylen, "link %s: a is '%s', not the origin %s",
		         l->link, l->a, self);
		return QKDN_E_BAD_REQUEST;
	}
	int peer = nl->node[0] == origin   ? nl->node[1]
	           : nl->node[1] == origin ? nl->node[0]
	                                   : -1;
	if (peer < 0) {
		snprintf(why, whylen, "link %s does not end at node %s",
		         l->link, self);
		return QKDN_E_BAD_REQUEST;
	}
	if (strcmp(l->b, net->nodes[peer].id) != 0) {
		snprintf(why, whylen,
		         "link %s: b is '%s', but its other end is %s", l->link,
		         l->b, net->nodes[peer].id);
		return QKDN_E_BAD_REQUEST;
	}
	*out = (struct ls_link){.link = li,
	                        .peer = (uint32_t)peer,
	                        .up = l->up != 0,
	                        .out = l->a_out,
	                        .rate_bps = l->rate_bps != 0 ? l->rate_bps
	                                                     : nl->rate_bps};
	return 0;
}

int
ctl_ingest(struct ctl *c, const struct qkdn_link_state_update *u, bool from_km,
           uint64_t *version, char *why, size_t whylen)
{
	const struct qkdn_net *net = c->net;
	int origin = qkdn_net_node_index(net, u->origin);
	int rv = 0;
	if (origin < 0) {
		snprintf(why, whylen, "unknown origin node '%s'", u->origin);
		return QKDN_E_BAD_REQUEST;
	}
	if (from_km && !c->central && origin != c->self) {
		snprintf(why, whylen,
		         "this is node %s's controller: a report from node %s "
		         "belongs to its own",
		         c->name, u->origin);
		return QKDN_E_BAD_REQUEST;
	}
	struct ls_link *links =
	    malloc((u->links.n ? u->links.n : 1) * sizeof(*links));
	if (links == NULL)
		return QKDN_E_NOMEM;
	for (uint32_t i = 0; i < u->links.n && rv == 0; i++) {
		rv = check_link(net, origin, &u->links.v[i], &links[i], why,
		                whylen);
		for (uint32_t k = 0; k < i && rv == 0; k++)
			if (links[k].link == links[i].link) {
				snprintf(why, whylen, "link %s is listed twice",
				         u->links.v[i].link);
				rv = QKDN_E_BAD_REQUEST;
			}
	}
	if (rv != 0) {
		free(links);
		return rv;
	}
	bool bumped;
	uint64_t now = ctl_now_ms();
	nng_mtx_lock(c->mtx);
	age_locked(c, now);
	rv = ls_db_offer(c->db, (uint32_t)origin, u->seq, u->max_age_ms, now,
	                 links, u->links.n, &bumped);
	if (rv == LS_STORED && !c->central) {
		if (!from_km) {
			/* on to every other neighbour (the one it came from
			 * is unknown: it ignores its own copy as old) */
			ctl_flood_mark(c->flood, origin, origin);
		} else if (bumped || now - c->own_flood_ms >= CTL_REFRESH_MS) {
			c->own_flood_ms = now;
			ctl_flood_mark(c->flood, origin, -1);
		}
	}
	*version = ls_db_version(c->db);
	nng_mtx_unlock(c->mtx);
	free(links);
	if (bumped)
		QLOG_DEBUG(SRC,
		           "node %s's report changed the topology: "
		           "version %llu",
		           u->origin, (unsigned long long)*version);
	if (rv < 0)
		snprintf(why, whylen, "%s", qkdn_strerror(rv));
	return rv < 0 ? rv : 0;
}

int
ctl_routes(struct ctl *c, int src, int dst, uint64_t demand, size_t max,
           struct qkdn_msg *rsp)
{
	struct qkdn_relay_req *r = &rsp->u.relay_req;
	struct rt_route rt[RT_ROUTES_MAX];
	int rv = 0;
	nng_mtx_lock(c->mtx);
	age_locked(c, ctl_now_ms());
	r->version = ls_db_version(c->db);
	struct rt_graph *g = ls_db_graph(c->db);
	if (g == NULL) {
		nng_mtx_unlock(c->mtx);
		return QKDN_E_NOMEM;
	}
	size_t n = rt_routes(g, (uint32_t)src, (uint32_t)dst, demand, rt,
	                     max < RT_ROUTES_MAX ? max : RT_ROUTES_MAX);
	r->routes.n = 0;
	if (n > 0 && (r->routes.v = qkdn_msg_alloc(
	                  rsp, n * sizeof(*r->routes.v))) == NULL)
		rv = QKDN_E_NOMEM;
	for (size_t i = 0; i < n && rv == 0; i++) {
		if (rt[i].n > QKDN_ROUTE_MAX) {
			QLOG_WARN(SRC,
			          "a route from %s to %s has %u nodes, more "
			          "than the %d a message carries: left out",
			          c->net->nodes[src].id, c->net->nodes[dst].id,
			          rt[i].n, QKDN_ROUTE_MAX);
			continue;
		}
		struct qkdn_route *nodes = &r->routes.v[r->routes.n].nodes;
		nodes->v = qkdn_msg_alloc(rsp, rt[i].n * sizeof(qkdn_name));
		if (nodes->v == NULL) {
			rv = QKDN_E_NOMEM;
			break;
		}
		nodes->n = rt[i].n;
		for (uint32_t k = 0; k < rt[i].n; k++)
			memcpy(nodes->v[k], c->net->nodes[rt[i].node[k]].id,
			       sizeof(qkdn_name));
		r->routes.n++;
	}
	nng_mtx_unlock(c->mtx);
	return rv;
}

int
ctl_next_hop(struct ctl *c, int here, int dst, uint64_t demand,
             const uint32_t *avoid, size_t n_avoid, int *next, int *link,
             uint64_t *version)
{
	struct rt_route rt;
	int rv;
	nng_mtx_lock(c->mtx);
	age_locked(c, ctl_now_ms());
	*version = ls_db_version(c->db);
	struct rt_graph *g = ls_db_graph(c->db);
	if (g == NULL)
		rv = QKDN_E_NOMEM;
	else
		rv = rt_best_avoiding(g, (uint32_t)here, (uint32_t)dst, demand,
		                      avoid, n_avoid, &rt);
	if (rv == 0) {
		*next = (int)rt.node[1];
		*link = rt.link[0];
	}
	nng_mtx_unlock(c->mtx);
	return rv;
}

static const struct ls_link *
reported(const struct ls_lsa *lsa, int link)
{
	for (size_t i = 0; lsa != NULL && i < lsa->n; i++)
		if (lsa->links[i].link == link)
			return &lsa->links[i];
	return NULL;
}

int
ctl_status(struct ctl *c, struct qkdn_msg *rsp)
{
	const struct qkdn_net *net = c->net;
	struct qkdn_ctl_status *s = &rsp->u.ctl_status;
	uint64_t now = ctl_now_ms();
	rsp->type = QKDN_CTL_STATUS;
	memcpy(s->node, c->name, sizeof(s->node));
	s->centralized = c->central;
	s->next_hop_reqs = atomic_load(&c->n.next_hop_reqs);
	s->relay_req_notifs = atomic_load(&c->n.relay_req_notifs);
	s->relay_req_rsps = atomic_load(&c->n.relay_req_rsps);
	s->reservations = atomic_load(&c->n.reservations);
	s->allocations = atomic_load(&c->n.allocations);
	s->updates = atomic_load(&c->n.updates);
	s->links.v = qkdn_msg_alloc(rsp, (net->n_links ? net->n_links : 1) *
	                                     sizeof(*s->links.v));
	if (s->links.v == NULL)
		return QKDN_E_NOMEM;
	nng_mtx_lock(c->mtx);
	age_locked(c, now);
	s->version = ls_db_version(c->db);
	/* one entry per link that a held LSA reports: a and b are its ends
	 * in ID order, each end's out what that end reported, up whether
	 * every end that reported it says up, age since the newest report */
	for (size_t i = 0; i < net->n_links; i++) {
		const struct qkdn_net_link *nl = &net->links[i];
		const struct ls_lsa *lsa[2];
		const struct ls_link *l[2];
		for (int e = 0; e < 2; e++) {
			lsa[e] = ls_db_get(c->db, (uint32_t)nl->node[e]);
			l[e] = reported(lsa[e], (int)i);
		}
		if (l[0] == NULL && l[1] == NULL)
			continue;
		struct qkdn_link_state *o = &s->links.v[s->links.n++];
		snprintf(o->link, sizeof(o->link), "%s", nl->id);
		snprintf(o->a, sizeof(o->a), "%s", net->nodes[nl->node[0]].id);
		snprintf(o->b, sizeof(o->b), "%s", net->nodes[nl->node[1]].id);
		o->up =
		    (l[0] == NULL || l[0]->up) && (l[1] == NULL || l[1]->up);
		o->a_out = l[0] != NULL ? l[0]->out : 0;
		o->b_out = l[1] != NULL ? l[1]->out : 0;
		o->rate_bps = l[0] != NULL ? l[0]->rate_bps : l[1]->rate_bps;
		uint64_t age = UINT64_MAX;
		for (int e = 0; e < 2; e++)
			if (l[e] != NULL && now - lsa[e]->recv_ms < age)
				age = now - lsa[e]->recv_ms;
		o->age_ms = age > UINT32_MAX ? UINT32_MAX : (uint32_t)age;
	}
	nng_mtx_unlock(c->mtx);
	return 0;
}
