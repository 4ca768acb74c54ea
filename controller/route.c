/* Widest-path routing (route.h). */
#include "route.h"

#include "qkdn_err.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

struct rt_graph {
	uint32_t n;
	size_t m;
	uint32_t *rank;
	/* CSR by source: the out-edges of u are e[out_at[u] .. out_at[u+1]) */
	struct rt_edge *e;
	uint32_t *out_at;
	/* by destination: in_e[in_at[v] .. in_at[v+1]) index e */
	uint32_t *in_at;
	uint32_t *in_e;
	/* scratch */
	uint64_t *key;  /* widest bottleneck found to a node, + 1; 0: none */
	uint32_t *heap; /* max-heap of nodes by key */
	uint32_t *pos;  /* node -> heap slot, NONE: not in the heap */
	uint32_t *dist; /* hops to dst over the wide-enough edges */
	uint32_t *queue;
	uint8_t *done;    /* popped from the heap: its key is final */
	uint8_t *removed; /* edges left out (alternative routes) */
	uint32_t *path_node[RT_ROUTES_MAX];
	int32_t *path_link[RT_ROUTES_MAX];
	uint32_t *path_edge[RT_ROUTES_MAX];
};

/* Keys are capacity + 1 so that a route over edges of capacity 0 (allowed
 * for a demand of 0) still counts as found; the source's key is the
 * largest value, above every edge's. */
static uint64_t
cap_key(uint64_t cap)
{
	return (cap >= UINT64_MAX - 1 ? UINT64_MAX - 1 : cap) + 1;
}

void
rt_graph_free(struct rt_graph *g)
{
	if (g == NULL)
		return;
	free(g->rank);
	free(g->e);
	free(g->out_at);
	free(g->in_at);
	free(g->in_e);
	free(g->key);
	free(g->heap);
	free(g->pos);
	free(g->dist);
	free(g->queue);
	free(g->done);
	free(g->removed);
	for (int i = 0; i < RT_ROUTES_MAX; i++) {
		free(g->path_node[i]);
		free(g->path_link[i]);
		free(g->path_edge[i]);
	}
	free(g);
}

int
rt_graph_new(struct rt_graph **out, uint32_t n, const uint32_t *rank,
             const struct rt_edge *e, size_t m)
{
	*out = NULL;
	if (n == 0 || n == NONE || m >= NONE)
		return QKDN_E_BAD_REQUEST;
	for (size_t i = 0; i < m; i++)
		if (e[i].from >= n || e[i].to >= n)
			return QKDN_E_BAD_REQUEST;
	struct rt_graph *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return QKDN_E_NOMEM;
	g->n = n;
	g->m = m;
	size_t m1 = m ? m : 1;
	g->rank = malloc(n * sizeof(*g->rank));
	g->e = malloc(m1 * sizeof(*g->e));
	g->out_at = calloc(n + 1, sizeof(*g->out_at));
	g->in_at = calloc(n + 1, sizeof(*g->in_at));
	g->in_e = malloc(m1 * sizeof(*g->in_e));
	g->key = malloc(n * sizeof(*g->key));
	g->heap = malloc(n * sizeof(*g->heap));
	g->pos = malloc(n * sizeof(*g->pos));
	g->dist = malloc(n * sizeof(*g->dist));
	g->queue = malloc(n * sizeof(*g->queue));
	g->done = malloc(n);
	g->removed = calloc(m1, 1);
	bool ok = g->rank && g->e && g->out_at && g->in_at && g->in_e &&
	          g->key && g->heap && g->pos && g->dist && g->queue &&
	          g->done && g->removed;
	for (int i = 0; i < RT_ROUTES_MAX && ok; i++) {
		g->path_node[i] = malloc(n * sizeof(uint32_t));
		g->path_link[i] = malloc(n * sizeof(int32_t));
		g->path_edge[i] = malloc(n * sizeof(uint32_t));
		ok = g->path_node[i] && g->path_link[i] && g->path_edge[i];
	}
	if (!ok) {
		rt_graph_free(g);
		return QKDN_E_NOMEM;
	}
	for (uint32_t i = 0; i < n; i++)
		g->rank[i] = rank != NULL ? rank[i] : i;
	/* counting sorts: by source for e, by destination for in_e */
	for (size_t i = 0; i < m; i++) {
		g->out_at[e[i].from + 1]++;
		g->in_at[e[i].to + 1]++;
	}
	for (uint32_t v = 0; v < n; v++) {
		g->out_at[v + 1] += g->out_at[v];
		g->in_at[v + 1] += g->in_at[v];
	}
	uint32_t *fill = g->queue; /* n free slots of scratch */
	memcpy(fill, g->out_at, n * sizeof(*fill));
	for (size_t i = 0; i < m; i++)
		g->e[fill[e[i].from]++] = e[i];
	memcpy(fill, g->in_at, n * sizeof(*fill));
	for (size_t i = 0; i < m; i++)
		g->in_e[fill[g->e[i].to]++] = (uint32_t)i;
	*out = g;
	return 0;
}

uint32_t
rt_graph_nodes(const struct rt_graph *g)
{
	return g->n;
}

size_t
rt_graph_edges(const struct rt_graph *g)
{
	return g->m;
}

/* ---- the max-heap of phase 1 ---- */

static void
heap_set(struct rt_graph *g, uint32_t i, uint32_t v)
{
	g->heap[i] = v;
	g->pos[v] = i;
}

static void
sift_up(struct rt_graph *g, uint32_t i)
{
	uint32_t v = g->heap[i];
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (g->key[g->heap[p]] >= g->key[v])
			break;
		heap_set(g, i, g->heap[p]);
		i = p;
	}
	heap_set(g, i, v);
}

static void
sift_down(struct rt_graph *g, uint32_t i, uint32_t len)
{
	uint32_t v = g->heap[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= len)
			break;
		if (c + 1 < len && g->key[g->heap[c + 1]] > g->key[g->heap[c]])
			c++;
		if (g->key[g->heap[c]] <= g->key[v])
			break;
		heap_set(g, i, g->heap[c]);
		i = c;
	}
	heap_set(g, i, v);
}

static bool
usable(const struct rt_graph *g, uint32_t ei, uint64_t min_key)
{
	return !g->removed[ei] && cap_key(g->e[ei].cap) >= min_key;
}

/* Phase 1: the widest bottleneck from src to dst over usable edges, as a
 * key (0: dst unreachable). Dijkstra with max instead of plus and min
 * instead of sum; it stops once dst's key is final. */
static uint64_t
widest_key(struct rt_graph *g, uint32_t src, uint32_t dst, uint64_t demand)
{
	uint64_t min_key = cap_key(demand);
	uint32_t len = 0;
	for (uint32_t v = 0; v < g->n; v++) {
		g->key[v] = 0;
		g->pos[v] = NONE;
		g->done[v] = 0;
	}
	g->key[src] = UINT64_MAX;
	heap_set(g, len++, src);
	while (len > 0) {
		uint32_t u = g->heap[0];
		g->pos[u] = NONE;
		g->done[u] = 1;
		if (--len > 0) {
			heap_set(g, 0, g->heap[len]);
			sift_down(g, 0, len);
		}
		if (u == dst)
			break;
		for (uint32_t ei = g->out_at[u]; ei < g->out_at[u + 1]; ei++) {
			if (!usable(g, ei, min_key))
				continue;
			uint32_t v = g->e[ei].to;
			uint64_t k = cap_key(g->e[ei].cap);
			if (k > g->key[u])
				k = g->key[u];
			if (g->done[v] || k <= g->key[v])
				continue;
			g->key[v] = k;
			if (g->pos[v] == NONE)
				heap_set(g, len++, v);
			sift_up(g, g->pos[v]);
		}
	}
	return g->key[dst];
}

/* Phase 2: hops to dst over the edges at least as wide as the bottleneck
 * (breadth-first, backwards from dst, stopping once src has its
 * distance: every node nearer to dst has its own by then). */
static void
hops_to(struct rt_graph *g, uint32_t src, uint32_t dst, uint64_t min_key)
{
	uint32_t head = 0, tail = 0;
	for (uint32_t v = 0; v < g->n; v++)
		g->dist[v] = NONE;
	g->dist[dst] = 0;
	g->queue[tail++] = dst;
	while (head < tail && g->dist[src] == NONE) {
		uint32_t v = g->queue[head++];
		for (uint32_t i = g->in_at[v]; i < g->in_at[v + 1]; i++) {
			uint32_t ei = g->in_e[i];
			uint32_t u = g->e[ei].from;
			if (g->dist[u] != NONE || !usable(g, ei, min_key))
				continue;
			g->dist[u] = g->dist[v] + 1;
			g->queue[tail++] = u;
		}
	}
}

/* The best route into path slot `slot`. */
static int
best_into(struct rt_graph *g, uint32_t src, uint32_t dst, uint64_t demand,
          int slot, struct rt_route *out)
{
	uint64_t key = widest_key(g, src, dst, demand);
	if (key == 0)
		return QKDN_E_NO_ROUTE;
	hops_to(g, src, dst, key);
	/* Walk from src, each step to the least-ranked next node that is one
	 * hop nearer to dst: of the fewest-hop widest routes, the least node
	 * sequence. Between parallel edges to that node, the widest, then the
	 * lowest link index. */
	uint32_t *node = g->path_node[slot], *edge = g->path_edge[slot];
	int32_t *link = g->path_link[slot];
	uint32_t n = 0, u = src;
	uint64_t bottleneck = UINT64_MAX;
	node[n] = u;
	while (u != dst) {
		uint32_t best = NONE;
		for (uint32_t ei = g->out_at[u]; ei < g->out_at[u + 1]; ei++) {
			const struct rt_edge *e = &g->e[ei];
			if (!usable(g, ei, key) ||
			    g->dist[e->to] + 1 != g->dist[u])
				continue;
			if (best == NONE)
				best = ei;
			const struct rt_edge *b = &g->e[best];
			uint32_t re = g->rank[e->to], rb = g->rank[b->to];
			if (re < rb || (re == rb && (e->cap > b->cap ||
			                             (e->cap == b->cap &&
			                              e->link < b->link))))
				best = ei;
		}
		if (best == NONE) /* cannot happen: dist[u] came from an edge */
			return QKDN_E_INTERNAL;
		edge[n] = best;
		link[n] = g->e[best].link;
		if (g->e[best].cap < bottleneck)
			bottleneck = g->e[best].cap;
		u = g->e[best].to;
		node[++n] = u;
	}
	out->bottleneck = bottleneck;
	out->n = n + 1;
	out->node = node;
	out->link = link;
	return 0;
}

int
rt_best(struct rt_graph *g, uint32_t src, uint32_t dst, uint64_t demand,
        struct rt_route *out)
{
	if (src >= g->n || dst >= g->n || src == dst)
		return QKDN_E_BAD_REQUEST;
	memset(g->removed, 0, g->m ? g->m : 1);
	return best_into(g, src, dst, demand, 0, out);
}

int
rt_best_avoiding(struct rt_graph *g, uint32_t src, uint32_t dst,
                 uint64_t demand, const uint32_t *avoid, size_t n,
                 struct rt_route *out)
{
	if (src >= g->n || dst >= g->n || src == dst)
		return QKDN_E_BAD_REQUEST;
	memset(g->removed, 0, g->m ? g->m : 1);
	for (size_t k = 0; k < n; k++) {
		uint32_t v = avoid[k];
		if (v >= g->n || v == src || v == dst)
			continue;
		/* no edge into v: no route can pass it */
		for (uint32_t i = g->in_at[v]; i < g->in_at[v + 1]; i++)
			g->removed[g->in_e[i]] = 1;
	}
	return best_into(g, src, dst, demand, 0, out);
}

size_t
rt_routes(struct rt_graph *g, uint32_t src, uint32_t dst, uint64_t demand,
          struct rt_route *out, size_t max)
{
	size_t k = 0;
	if (src >= g->n || dst >= g->n || src == dst)
		return 0;
	if (max > RT_ROUTES_MAX)
		max = RT_ROUTES_MAX;
	memset(g->removed, 0, g->m ? g->m : 1);
	for (; k < max; k++) {
		if (best_into(g, src, dst, demand, (int)k, &out[k]) != 0)
			break;
		/* Each later route lacks at least one edge of every earlier
		 * one, so no two are the same. */
		for (uint32_t i = 0; i + 1 < out[k].n; i++) {
			uint32_t ei = g->path_edge[k][i];
			if (g->e[ei].cap == out[k].bottleneck)
				g->removed[ei] = 1;
		}
	}
	return k;
}
