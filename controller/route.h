/* Key-aware widest-path routing over a directed graph of key capacities.
 *
 * Pure computation: no I/O, no locks, no clock, so unit tests and the
 * benchmark drive it on any graph (docs/routing.md says what it does and
 * why). A node is an index 0..n-1; its rank orders node IDs (the last
 * tie-break). An edge u->v carries the key u can send to v on one link.
 *
 * The best route from src to dst for a demand of d bytes per hop uses only
 * edges with capacity >= d and is, in this order of preference:
 *   1. the widest: its scarcest edge (the bottleneck) has the most key;
 *   2. of those, the one with the fewest hops;
 *   3. of those, the one whose node sequence is the least by rank.
 * It is computed in two exact phases: a Dijkstra with a binary max-heap for
 * the widest bottleneck B (O(E log V)), then a breadth-first search over
 * the edges of capacity >= B for the fewest hops and the rank order
 * (O(V + E)). */
#ifndef CTL_ROUTE_H
#define CTL_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#define RT_ROUTES_MAX 4 /* alternatives computed for one request (I.4a) */

struct rt_edge {
	uint32_t from, to;
	uint64_t cap; /* bytes `from` can send to `to` on this link */
	int32_t link; /* the caller's link index, handed back in routes */
};

/* An immutable graph plus the scratch memory routing needs (so routing
 * allocates nothing; one caller at a time per graph). */
struct rt_graph;

/* A graph of n nodes and the m edges e (copied). rank[i] is node i's place
 * in node-ID order (distinct values; NULL: the index). Edges naming a node
 * >= n are refused (QKDN_E_BAD_REQUEST). */
int rt_graph_new(struct rt_graph **out, uint32_t n, const uint32_t *rank,
                 const struct rt_edge *e, size_t m)
    __attribute__((warn_unused_result));
void rt_graph_free(struct rt_graph *g);
uint32_t rt_graph_nodes(const struct rt_graph *g);
size_t rt_graph_edges(const struct rt_graph *g);

/* One route. node and link point into the graph's scratch memory: valid
 * until the next routing call on the graph. */
struct rt_route {
	uint64_t bottleneck; /* capacity of its scarcest edge */
	uint32_t n;          /* nodes, source first: hops + 1 */
	const uint32_t *node;
	const int32_t *link; /* link[i] joins node[i] to node[i + 1] */
};

/* The best route from src to dst for demand bytes per hop: 0, or
 * QKDN_E_NO_ROUTE (none), or QKDN_E_BAD_REQUEST (src == dst or a node out
 * of range). */
int rt_best(struct rt_graph *g, uint32_t src, uint32_t dst, uint64_t demand,
            struct rt_route *out) __attribute__((warn_unused_result));

/* rt_best through none of the n nodes of avoid (src and dst excepted):
 * a hop-by-hop relay asks for its next hop this way, with the nodes it
 * has passed, so that views of the network that differ from node to
 * node can never send it round in a loop. */
int rt_best_avoiding(struct rt_graph *g, uint32_t src, uint32_t dst,
                     uint64_t demand, const uint32_t *avoid, size_t n,
                     struct rt_route *out) __attribute__((warn_unused_result));

/* Up to max (at most RT_ROUTES_MAX) distinct routes, best first: the best,
 * then the best once the bottleneck edges of every route found so far are
 * removed, and so on. Returns how many (0: no route or a bad request). */
size_t rt_routes(struct rt_graph *g, uint32_t src, uint32_t dst,
                 uint64_t demand, struct rt_route *out, size_t max);

#endif
