/* The KM's client of its QKDN controller (Ck): the node's own controller
 * in distributed mode (node->ck_url), the central one in centralized mode
 * (net->central_ck_url).
 *
 * A reporter thread sends LINK_STATE (111) every 250 ms: this node's links,
 * whether each Kx sender reaches its peer, and the key each can send. The
 * ACK's value is the controller's topology version; when it changes the
 * route cache is dropped. Next hop (14, distributed) and route (17,
 * centralized) lookups are cached per destination node with the version
 * they were computed on, and used only while the reporter's last report
 * was answered (a cache never outlives the controller that made it). Every
 * call is one blocking SP round trip with a short deadline: callers are
 * connection, sender or relay control threads, which may block.
 *
 * No controller running (a two-node network needs none): the reporter
 * fails quietly (a rate-limited debug log) and only relays fail, at once,
 * with QKDN_E_UNREACHABLE naming the controller's address. */
#ifndef KM_CTL_CLIENT_H
#define KM_CTL_CLIENT_H

#include "km.h"

#include <stddef.h>
#include <stdint.h>

struct km_ctl;

/* Routes to one destination node, best first, as node indices. */
struct km_ctl_routes {
	uint32_t n;
	struct km_ctl_route {
		uint32_t n;
		int node[QKDN_ROUTE_MAX];
	} v[QKDN_ROUTES_MAX];
};

int km_ctl_start(struct km *km, struct km_ctl **out)
    __attribute__((warn_unused_result));
void km_ctl_stop(struct km_ctl *c);

/* Whether the last link state report was answered (no call made). */
bool km_ctl_up(struct km_ctl *c);

/* The controller's address (for reasons). */
const char *km_ctl_url(const struct km_ctl *c);

/* Distributed (14): the next node from this one towards dst_node for a
 * relay taking bytes per hop, avoiding the nodes of so_far (the relay's
 * route up to here; NULL at its source). 0 with *next, or
 * QKDN_E_NO_ROUTE / QKDN_E_UNREACHABLE / QKDN_E_TIMEOUT with why. */
int km_ctl_next_hop(struct km_ctl *c, const qkdn_uuid *relay_id, int dst_node,
                    uint64_t bytes, const struct qkdn_route *so_far, int *next,
                    char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* Centralized (17, reserve = 0): every route from this node to dst_node
 * (each starts here and ends there). 0 with at least one route, or an
 * error as above. */
int km_ctl_routes(struct km_ctl *c, const qkdn_uuid *relay_id, int dst_node,
                  uint32_t count, uint32_t bits, const char *src_sae,
                  const char *dst_sae, struct km_ctl_routes *out, char *why,
                  size_t whylen) __attribute__((warn_unused_result));

/* 20 RELAY_REQ_RSP: the outcome of a relay the central controller routed
 * (best effort: a failure is logged). */
void km_ctl_relay_rsp(struct km_ctl *c, const qkdn_uuid *relay_id, int result);

#endif
