/* qkdn-controller: the routing controller of one node (distributed mode)
 * or of the whole network (centralized mode).
 *
 * It holds the link-state database (lsdb.h) fed by LINK_STATE reports, on
 * Ck from KMs and, distributed, on Cx from the controllers of adjacent
 * nodes (flood.h sends them on); it answers routing requests from it
 * (route.h) and, centralized, runs the reservation scheme I.4b against the
 * KMs (order.h). serve.c has the handlers. One lock (ctl->mtx) guards the
 * database; it is held only for in-memory work, never across a network
 * call. Lock order: ctl->mtx, then the flood lock. */
#ifndef CTL_CTL_H
#define CTL_CTL_H

#include "lsdb.h"
#include "qkdn_msg.h"
#include "qkdn_netconf.h"

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <stdatomic.h>
#include <stdbool.h>

#define CTL_FLOOD_MS    300   /* one flood call to an adjacent controller */
#define CTL_REFRESH_MS  1000  /* own LSA flooded at least this often */
#define CTL_RESERVE_TTL 10000 /* I.4b: reserved keys held by the KMs */

struct ctl_flood; /* flood.c */
struct ctl_order; /* order.c */
struct qkdn_server;

/* What CTL_STATUS counts (exact: each counted once, where it happens). */
struct ctl_counters {
	atomic_uint_fast64_t next_hop_reqs;    /* 14 received */
	atomic_uint_fast64_t relay_req_notifs; /* 17 received */
	atomic_uint_fast64_t relay_req_rsps;   /* 20 received (Ck or I.4b) */
	atomic_uint_fast64_t reservations;     /* 21 sent */
	atomic_uint_fast64_t allocations;      /* 23 sent */
	atomic_uint_fast64_t updates;          /* 111 received (Ck and Cx) */
	atomic_uint_fast64_t errors;           /* error replies */
};

struct ctl {
	const struct qkdn_net *net;
	int self; /* node index; -1 when centralized */
	bool central;
	qkdn_name name; /* the node's ID, or "central" */
	nng_mtx *mtx;   /* guards db and own_flood_ms */
	struct ls_db *db;
	uint64_t own_flood_ms;   /* when this node's LSA was last flooded */
	struct ctl_flood *flood; /* distributed */
	struct ctl_order *order; /* centralized */
	struct qkdn_server *ck, *cx;
	struct ctl_counters n;
};

/* Start the controller of node `self` (-1: the central controller). */
int ctl_start(struct ctl **out, const struct qkdn_net *net, int self)
    __attribute__((warn_unused_result));
void ctl_stop(struct ctl *c);
/* Periodic: age LSAs out, flood this node's LSA once a second. */
void ctl_tick(struct ctl *c);

/* A LINK_STATE report from a KM (from_km) or a peer controller: checked
 * against the network file, stored if newer, flooded on. Returns 0 with
 * the version in *version, or a qkdn error with why. */
int ctl_ingest(struct ctl *c, const struct qkdn_link_state_update *u,
               bool from_km, uint64_t *version, char *why, size_t whylen);

/* Routes from src to dst (node indices) for demand bytes per hop, best
 * first, into rsp (a RELAY_REQ: routes and version filled, the rest left
 * alone). At most max routes; none: no route. */
int ctl_routes(struct ctl *c, int src, int dst, uint64_t demand, size_t max,
               struct qkdn_msg *rsp) __attribute__((warn_unused_result));

/* The next hop from here to dst: 0 with next and link filled, or
 * QKDN_E_NO_ROUTE. *version: the version it was computed on. */
int ctl_next_hop(struct ctl *c, int here, int dst, uint64_t demand,
                 const uint32_t *avoid, size_t n_avoid, int *next, int *link,
                 uint64_t *version);

/* The CTL_STATUS reply. */
int ctl_status(struct ctl *c, struct qkdn_msg *rsp)
    __attribute__((warn_unused_result));

uint64_t ctl_now_ms(void);

#endif
