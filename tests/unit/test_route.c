/* The controller's routing core: widest-path routing (controller/route.h)
 * and the link-state database with its version rule (controller/lsdb.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* lsdb.h brings the controller's route.h with it (km/ has a route.h of
 * its own on the include path) */
#include "lsdb.h"
#include "qkdn_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KIB 1024u

/* ---- helpers ---- */

static struct rt_graph *
graph(uint32_t n, const struct rt_edge *e, size_t m)
{
	struct rt_graph *g;
	assert_int_equal(rt_graph_new(&g, n, NULL, e, m), 0);
	return g;
}

/* both directions of a link with one capacity */
#define BOTH(u, v, c, l)                                                       \
	{u, v, c, l},                                                          \
	{                                                                      \
		v, u, c, l                                                     \
	}

static void
assert_route(const struct rt_route *r, const uint32_t *want, uint32_t n)
{
	char got[256] = "", exp[256] = "";
	for (uint32_t i = 0; i < r->n; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), " %u",
		         r->node[i]);
	for (uint32_t i = 0; i < n; i++)
		snprintf(exp + strlen(exp), sizeof(exp) - strlen(exp), " %u",
		         want[i]);
	if (strcmp(got, exp) != 0)
		fail_msg("route%s, want%s", got, exp);
}

/* ---- routing ---- */

/* 0 -> 1 directly has 100 KiB; 0 -> 2 -> 1 has 1 MiB on each hop: the
 * longer route carries ten times as many relays, so it wins. */
static void
test_widest_beats_shorter(void **state)
{
	(void)state;
	struct rt_edge e[] = {BOTH(0, 1, 100 * KIB, 0),
	                      BOTH(0, 2, 1024 * KIB, 1),
	                      BOTH(2, 1, 1024 * KIB, 2)};
	struct rt_graph *g = graph(3, e, 6);
	struct rt_route r;
	assert_int_equal(rt_best(g, 0, 1, 64, &r), 0);
	assert_route(&r, (uint32_t[]){0, 2, 1}, 3);
	assert_int_equal(r.bottleneck, 1024 * KIB);
	assert_int_equal(r.link[0], 1);
	assert_int_equal(r.link[1], 2);
	/* once the direct link is the wider one, it wins */
	e[0].cap = e[1].cap = 2048 * KIB;
	rt_graph_free(g);
	g = graph(3, e, 6);
	assert_int_equal(rt_best(g, 0, 1, 64, &r), 0);
	assert_route(&r, (uint32_t[]){0, 1}, 2);
	rt_graph_free(g);
}

/* A ring 0-1-2-3-0 where 0 -> 1 -> 2 is the widest way to 2: asked at 1
 * for a relay that came from 0, the answer must not go back through 0
 * (a loop) but on to 2; with 2's other neighbour also passed, from 3
 * there is no route at all. */
static void
test_avoiding(void **state)
{
	(void)state;
	struct rt_edge e[] = {
	    BOTH(0, 1, 1024 * KIB, 0), BOTH(1, 2, 100 * KIB, 1),
	    BOTH(2, 3, 1024 * KIB, 2), BOTH(3, 0, 1024 * KIB, 3)};
	struct rt_graph *g = graph(4, e, 8);
	struct rt_route r;
	/* unconstrained, 1 reaches 2 by 1-0-3-2 (1 MiB everywhere) */
	assert_int_equal(rt_best(g, 1, 2, 64, &r), 0);
	assert_route(&r, (uint32_t[]){1, 0, 3, 2}, 4);
	assert_int_equal(
	    rt_best_avoiding(g, 1, 2, 64, (uint32_t[]){0, 1}, 2, &r), 0);
	assert_route(&r, (uint32_t[]){1, 2}, 2);
	assert_int_equal(
	    rt_best_avoiding(g, 3, 1, 64, (uint32_t[]){0, 2}, 2, &r),
	    QKDN_E_NO_ROUTE);
	/* the ends themselves in the list change nothing */
	assert_int_equal(
	    rt_best_avoiding(g, 1, 2, 64, (uint32_t[]){1, 2}, 2, &r), 0);
	assert_route(&r, (uint32_t[]){1, 0, 3, 2}, 4);
	rt_graph_free(g);
}

/* Equal bottlenecks: fewer hops first, then the lower node IDs. */
static void
test_ties(void **state)
{
	(void)state;
	/* 0-1-5 and 0-2-3-5 and 0-4-5, every edge 500 */
	struct rt_edge e[] = {BOTH(0, 1, 500, 0), BOTH(1, 5, 500, 1),
	                      BOTH(0, 2, 500, 2), BOTH(2, 3, 500, 3),
	                      BOTH(3, 5, 500, 4), BOTH(0, 4, 500, 5),
	                      BOTH(4, 5, 500, 6)};
	struct rt_graph *g = graph(6, e, 14);
	struct rt_route r;
	assert_int_equal(rt_best(g, 0, 5, 1, &r), 0);
	assert_route(&r, (uint32_t[]){0, 1, 5}, 3);
	rt_graph_free(g);
	/* ranks reversed (node 4's ID sorts before node 1's): via 4 */
	uint32_t rank[] = {5, 4, 3, 2, 1, 0};
	assert_int_equal(rt_graph_new(&g, 6, rank, e, 14), 0);
	assert_int_equal(rt_best(g, 0, 5, 1, &r), 0);
	assert_route(&r, (uint32_t[]){0, 4, 5}, 3);
	rt_graph_free(g);
}

/* The hop tie-break needs the second phase: the widest way to node 3 is
 * long (0-1-2-3, 900 each) and a short one is narrower (0-3, 600), but the
 * last edge 3-4 (500) limits both, so 0-3-4 (2 hops) is right. A one-pass
 * Dijkstra on (bottleneck, hops) labels would keep only 3's widest
 * prefix and answer 0-1-2-3-4. */
static void
test_hops_after_bottleneck(void **state)
{
	(void)state;
	struct rt_edge e[] = {BOTH(0, 1, 900, 0), BOTH(1, 2, 900, 1),
	                      BOTH(2, 3, 900, 2), BOTH(0, 3, 600, 3),
	                      BOTH(3, 4, 500, 4)};
	struct rt_graph *g = graph(5, e, 10);
	struct rt_route r;
	assert_int_equal(rt_best(g, 0, 4, 1, &r), 0);
	assert_route(&r, (uint32_t[]){0, 3, 4}, 3);
	assert_int_equal(r.bottleneck, 500);
	rt_graph_free(g);
}

/* Edges below the demand are not used; none left: no route. */
static void
test_demand(void **state)
{
	(void)state;
	struct rt_edge e[] = {BOTH(0, 1, 1000, 0), BOTH(1, 2, 1000, 1),
	                      BOTH(0, 3, 5000, 2), BOTH(3, 2, 300, 3)};
	struct rt_graph *g = graph(4, e, 8);
	struct rt_route r;
	assert_int_equal(rt_best(g, 0, 2, 100, &r), 0);
	assert_route(&r, (uint32_t[]){0, 1, 2}, 3);
	assert_int_equal(rt_best(g, 0, 2, 1000, &r), 0);
	assert_route(&r, (uint32_t[]){0, 1, 2}, 3);
	assert_int_equal(rt_best(g, 0, 2, 1001, &r), QKDN_E_NO_ROUTE);
	/* demand 0 uses even empty edges */
	e[2].cap = e[3].cap = e[6].cap = e[7].cap = 0;
	e[0].cap = e[1].cap = e[4].cap = e[5].cap = 0;
	rt_graph_free(g);
	g = graph(4, e, 8);
	assert_int_equal(rt_best(g, 0, 2, 0, &r), 0);
	assert_int_equal(r.bottleneck, 0);
	assert_int_equal(rt_best(g, 0, 2, 1, &r), QKDN_E_NO_ROUTE);
	rt_graph_free(g);
}

static void
test_no_route(void **state)
{
	(void)state;
	/* 0 -> 1 only one way: 1 cannot reach 0; 2 is cut off */
	struct rt_edge e[] = {{0, 1, 1000, 0}};
	struct rt_graph *g = graph(3, e, 1);
	struct rt_route r, rs[RT_ROUTES_MAX];
	assert_int_equal(rt_best(g, 0, 1, 1, &r), 0);
	assert_int_equal(rt_best(g, 1, 0, 1, &r), QKDN_E_NO_ROUTE);
	assert_int_equal(rt_best(g, 0, 2, 1, &r), QKDN_E_NO_ROUTE);
	assert_int_equal(rt_routes(g, 0, 2, 1, rs, RT_ROUTES_MAX), 0);
	assert_int_equal(rt_best(g, 0, 0, 1, &r), QKDN_E_BAD_REQUEST);
	assert_int_equal(rt_best(g, 0, 3, 1, &r), QKDN_E_BAD_REQUEST);
	rt_graph_free(g);
	/* no edges at all */
	assert_int_equal(rt_graph_new(&g, 2, NULL, NULL, 0), 0);
	assert_int_equal(rt_best(g, 0, 1, 0, &r), QKDN_E_NO_ROUTE);
	rt_graph_free(g);
	struct rt_edge bad[] = {{0, 7, 1, 0}};
	assert_int_equal(rt_graph_new(&g, 2, NULL, bad, 1), QKDN_E_BAD_REQUEST);
}

/* A w x h grid, node y*w+x, links to the right and down, both directions,
 * capacities from a fixed generator: link IDs are edge pair numbers. */
static struct rt_edge *
grid(uint32_t w, uint32_t h, size_t *m, uint32_t seed)
{
	struct rt_edge *e = malloc(4 * (size_t)w * h * sizeof(*e));
	uint32_t x = seed;
	*m = 0;
	assert_non_null(e);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t c = 0; c < w; c++) {
			uint32_t u = y * w + c;
			uint32_t nb[2] = {c + 1 < w ? u + 1 : UINT32_MAX,
			                  y + 1 < h ? u + w : UINT32_MAX};
			for (int k = 0; k < 2; k++) {
				if (nb[k] == UINT32_MAX)
					continue;
				for (int d = 0; d < 2; d++) {
					x = x * 1103515245u + 12345u;
					uint64_t cap =
					    (uint64_t)(x >> 8) % (4096 * KIB);
					e[*m] = (struct rt_edge){
					    d ? nb[k] : u, d ? u : nb[k], cap,
					    (int32_t)(*m / 2)};
					(*m)++;
				}
			}
		}
	return e;
}

static bool
has_edge(const struct rt_edge *e, size_t m, uint32_t u, uint32_t v,
         int32_t link, uint64_t demand)
{
	for (size_t i = 0; i < m; i++)
		if (e[i].from == u && e[i].to == v && e[i].link == link &&
		    e[i].cap >= demand)
			return true;
	return false;
}

/* Up to 4 routes: each a real path, each distinct, best first. */
static void
test_alternatives(void **state)
{
	(void)state;
	size_t m;
	struct rt_edge *e = grid(5, 5, &m, 7);
	struct rt_graph *g = graph(25, e, m);
	struct rt_route r[RT_ROUTES_MAX];
	/* between inner nodes (4 links each): corners have only 2 */
	size_t n = rt_routes(g, 6, 18, 1000, r, RT_ROUTES_MAX);
	assert_int_equal(n, 4);
	/* copy them out: each is in its own scratch slot */
	uint32_t nodes[RT_ROUTES_MAX][25];
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r[i].node[0], 6);
		assert_int_equal(r[i].node[r[i].n - 1], 18);
		uint64_t bn = UINT64_MAX;
		for (uint32_t k = 0; k + 1 < r[i].n; k++) {
			assert_true(has_edge(e, m, r[i].node[k],
			                     r[i].node[k + 1], r[i].link[k],
			                     1000));
			for (size_t j = 0; j < m; j++)
				if (e[j].from == r[i].node[k] &&
				    e[j].to == r[i].node[k + 1] &&
				    e[j].link == r[i].link[k] && e[j].cap < bn)
					bn = e[j].cap;
		}
		assert_int_equal(bn, r[i].bottleneck);
		if (i > 0)
			assert_true(r[i].bottleneck <= r[i - 1].bottleneck);
		memset(nodes[i], 0xff, sizeof(nodes[i]));
		memcpy(nodes[i], r[i].node, r[i].n * sizeof(uint32_t));
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			assert_memory_not_equal(nodes[i], nodes[j],
			                        sizeof(nodes[i]));
	/* the first of the list is the best route */
	struct rt_route b;
	assert_int_equal(rt_best(g, 6, 18, 1000, &b), 0);
	assert_memory_equal(b.node, nodes[0], b.n * sizeof(uint32_t));
	/* a line has one route only */
	struct rt_edge line[] = {BOTH(0, 1, 5000, 0), BOTH(1, 2, 5000, 1)};
	rt_graph_free(g);
	g = graph(3, line, 4);
	assert_int_equal(rt_routes(g, 0, 2, 1, r, RT_ROUTES_MAX), 1);
	rt_graph_free(g);
	free(e);
}

/* ---- brute force: every simple path of small random graphs ---- */

struct brute {
	const struct rt_edge *e;
	size_t m;
	uint32_t n, dst;
	uint64_t demand;
	uint32_t path[8], best[8];
	uint32_t len, best_len;
	uint64_t best_bn;
	bool found;
	bool on[8];
};

static bool
better(const struct brute *b, uint64_t bn)
{
	if (!b->found || bn != b->best_bn)
		return !b->found || bn > b->best_bn;
	if (b->len != b->best_len)
		return b->len < b->best_len;
	for (uint32_t i = 0; i < b->len; i++)
		if (b->path[i] != b->best[i])
			return b->path[i] < b->best[i];
	return false;
}

static void
dfs(struct brute *b, uint32_t u, uint64_t bn)
{
	if (u == b->dst) {
		if (better(b, bn)) {
			b->found = true;
			b->best_bn = bn;
			b->best_len = b->len;
			memcpy(b->best, b->path, sizeof(b->path));
		}
		return;
	}
	for (size_t i = 0; i < b->m; i++) {
		const struct rt_edge *e = &b->e[i];
		if (e->from != u || b->on[e->to] || e->cap < b->demand)
			continue;
		b->on[e->to] = true;
		b->path[b->len++] = e->to;
		dfs(b, e->to, e->cap < bn ? e->cap : bn);
		b->len--;
		b->on[e->to] = false;
	}
}

/* rt_best agrees with trying every simple path (bottleneck, then hops,
 * then node sequence) on 500 random graphs of 7 nodes. */
static void
test_brute_force(void **state)
{
	(void)state;
	uint32_t x = 12345;
	for (int t = 0; t < 500; t++) {
		struct rt_edge e[42];
		size_t m = 0;
		for (uint32_t u = 0; u < 7; u++)
			for (uint32_t v = 0; v < 7; v++) {
				x = x * 1103515245u + 12345u;
				if (u == v || (x >> 16) % 3 != 0)
					continue;
				/* few distinct capacities: many ties */
				e[m++] = (struct rt_edge){
				    u, v, ((x >> 8) % 4) * 100, (int32_t)m};
			}
		struct rt_graph *g = graph(7, e, m);
		for (uint64_t demand = 0; demand <= 300; demand += 150) {
			struct brute b = {
			    .e = e, .m = m, .n = 7, .dst = 6, .demand = demand};
			b.on[0] = true;
			b.path[b.len++] = 0;
			dfs(&b, 0, UINT64_MAX);
			struct rt_route r;
			int rv = rt_best(g, 0, 6, demand, &r);
			if (!b.found) {
				assert_int_equal(rv, QKDN_E_NO_ROUTE);
				continue;
			}
			assert_int_equal(rv, 0);
			assert_int_equal(r.bottleneck, b.best_bn);
			assert_route(&r, b.best, b.best_len);
		}
		rt_graph_free(g);
	}
}

/* ---- the link-state database ---- */

static struct ls_link
lk(int32_t link, uint32_t peer, bool up, uint64_t out)
{
	return (struct ls_link){
	    .link = link, .peer = peer, .up = up, .out = out, .rate_bps = 1};
}

static int
offer(struct ls_db *db, uint32_t origin, uint64_t seq, uint64_t now,
      const struct ls_link *l, size_t n, bool *bumped)
{
	return ls_db_offer(db, origin, seq, 3000, now, l, n, bumped);
}

/* Line 0 - 1 - 2 (links 0 and 1), every node reporting. */
static struct ls_db *
line_db(uint64_t now)
{
	struct ls_db *db;
	assert_int_equal(ls_db_new(&db, 3, NULL, 100), 0);
	struct ls_link a[] = {lk(0, 1, true, 1000 * KIB)};
	struct ls_link b[] = {lk(0, 0, true, 1000 * KIB),
	                      lk(1, 2, true, 1000 * KIB)};
	struct ls_link c[] = {lk(1, 1, true, 1000 * KIB)};
	assert_int_equal(offer(db, 0, 1, now, a, 1, NULL), LS_STORED);
	assert_int_equal(offer(db, 1, 1, now, b, 2, NULL), LS_STORED);
	assert_int_equal(offer(db, 2, 1, now, c, 1, NULL), LS_STORED);
	return db;
}

static void
test_db_routes(void **state)
{
	(void)state;
	struct ls_db *db = line_db(0);
	struct rt_route r;
	/* 4 edges appeared, in 3 reports: one step per report */
	assert_int_equal(ls_db_version(db), 103);
	assert_int_equal(rt_best(ls_db_graph(db), 0, 2, 64, &r), 0);
	assert_route(&r, (uint32_t[]){0, 1, 2}, 3);
	assert_int_equal(rt_best(ls_db_graph(db), 2, 0, 64, &r), 0);
	/* node 1 reports link 1 down: 1 -> 2 is gone, 2 -> 1 stays */
	struct ls_link b[] = {lk(0, 0, true, 1000 * KIB),
	                      lk(1, 2, false, 1000 * KIB)};
	assert_int_equal(offer(db, 1, 2, 10, b, 2, NULL), LS_STORED);
	assert_int_equal(rt_best(ls_db_graph(db), 0, 2, 64, &r),
	                 QKDN_E_NO_ROUTE);
	assert_int_equal(rt_best(ls_db_graph(db), 2, 0, 64, &r), 0);
	ls_db_free(db);
}

/* An LSA not newer than the one held changes nothing. */
static void
test_db_old_seq(void **state)
{
	(void)state;
	struct ls_db *db = line_db(0);
	struct ls_link b[] = {lk(0, 0, false, 0), lk(1, 2, false, 0)};
	bool bumped = true;
	uint64_t v = ls_db_version(db);
	assert_int_equal(offer(db, 1, 1, 5, b, 2, &bumped), LS_OLD);
	assert_false(bumped);
	assert_int_equal(offer(db, 1, 0, 5, b, 2, &bumped), LS_OLD);
	assert_int_equal(ls_db_version(db), v);
	assert_int_equal(ls_db_get(db, 1)->seq, 1);
	assert_true(ls_db_get(db, 1)->links[0].up);
	struct rt_route r;
	assert_int_equal(rt_best(ls_db_graph(db), 0, 2, 64, &r), 0);
	/* a link listed twice, or a peer out of range, is refused */
	struct ls_link twice[] = {lk(0, 0, true, 1), lk(0, 0, true, 1)};
	assert_int_equal(offer(db, 1, 9, 5, twice, 2, NULL),
	                 QKDN_E_BAD_REQUEST);
	struct ls_link far[] = {lk(0, 9, true, 1)};
	assert_int_equal(offer(db, 1, 9, 5, far, 1, NULL), QKDN_E_BAD_REQUEST);
	assert_int_equal(offer(db, 7, 9, 5, NULL, 0, NULL), QKDN_E_BAD_REQUEST);
	ls_db_free(db);
}

/* An origin that stops reporting ages out with its links. */
static void
test_db_ageing(void **state)
{
	(void)state;
	struct ls_db *db = line_db(1000);
	uint32_t gone[3];
	struct rt_route r;
	uint64_t v = ls_db_version(db);
	/* 0 and 1 report again at 3000; 2 does not */
	struct ls_link a[] = {lk(0, 1, true, 1000 * KIB)};
	struct ls_link b[] = {lk(0, 0, true, 1000 * KIB),
	                      lk(1, 2, true, 1000 * KIB)};
	assert_int_equal(offer(db, 0, 2, 3000, a, 1, NULL), LS_STORED);
	assert_int_equal(offer(db, 1, 2, 3000, b, 2, NULL), LS_STORED);
	assert_int_equal(ls_db_age(db, 3999, gone), 0);
	assert_int_equal(ls_db_version(db), v);
	assert_int_equal(ls_db_age(db, 4000, gone), 1); /* 3000 ms old */
	assert_int_equal(gone[0], 2);
	assert_null(ls_db_get(db, 2));
	assert_int_equal(ls_db_version(db), v + 1); /* 2 -> 1 went */
	assert_int_equal(rt_best(ls_db_graph(db), 2, 0, 64, &r),
	                 QKDN_E_NO_ROUTE);
	/* 0 -> 2 still works: edge 1 -> 2 is node 1's to report */
	assert_int_equal(rt_best(ls_db_graph(db), 0, 2, 64, &r), 0);
	/* a late copy of the dropped LSA is refused while remembered
	 * (twice its max age), a newer one is taken */
	struct ls_link c[] = {lk(1, 1, true, 1000 * KIB)};
	assert_int_equal(offer(db, 2, 1, 4500, c, 1, NULL), LS_OLD);
	assert_int_equal(offer(db, 2, 2, 4500, c, 1, NULL), LS_STORED);
	assert_int_equal(ls_db_version(db), v + 2);
	/* after that memory lapses, a restarted origin's lower seq is
	 * taken */
	assert_int_equal(ls_db_age(db, 7500, gone), 3);
	assert_int_equal(offer(db, 2, 1, 10499, c, 1, NULL), LS_OLD);
	assert_int_equal(offer(db, 2, 1, 10500, c, 1, NULL), LS_STORED);
	ls_db_free(db);
}

/* The version moves exactly when an edge appears or disappears or its
 * capacity crosses 64 KiB, and by one per change. */
static void
test_db_version(void **state)
{
	(void)state;
	struct ls_db *db;
	bool bumped;
	uint64_t seq = 1;
	assert_int_equal(ls_db_new(&db, 2, NULL, 7), 0);
	assert_int_equal(ls_db_version(db), 7);
#define OFFER(up, out, want_bump)                                              \
	do {                                                                   \
		struct ls_link l_[] = {lk(0, 1, up, out)};                     \
		uint64_t v_ = ls_db_version(db);                               \
		assert_int_equal(offer(db, 0, seq++, 0, l_, 1, &bumped),       \
		                 LS_STORED);                                   \
		assert_int_equal(bumped, want_bump);                           \
		assert_int_equal(ls_db_version(db), v_ + (want_bump));         \
	} while (0)
	OFFER(true, 200 * KIB, 1);    /* appears */
	OFFER(true, 100 * KIB, 0);    /* above the mark */
	OFFER(true, 64 * KIB, 0);     /* the mark itself is not low */
	OFFER(true, 64 * KIB - 1, 1); /* crosses down */
	OFFER(true, 10, 0);           /* below */
	OFFER(true, 0, 0);
	OFFER(true, 64 * KIB, 1);  /* crosses up */
	OFFER(false, 64 * KIB, 1); /* disappears (down) */
	OFFER(false, 0, 0);        /* still down */
	OFFER(true, 0, 1);         /* appears, low */
#undef OFFER
	/* the link left out of the report: disappears */
	uint64_t v = ls_db_version(db);
	assert_int_equal(offer(db, 0, seq++, 0, NULL, 0, &bumped), LS_STORED);
	assert_true(bumped);
	assert_int_equal(ls_db_version(db), v + 1);
	/* an LSA with no up link ageing out changes nothing */
	struct ls_link down[] = {lk(0, 0, false, 0)};
	assert_int_equal(offer(db, 1, 1, 0, down, 1, &bumped), LS_STORED);
	assert_false(bumped);
	assert_int_equal(ls_db_age(db, 5000, NULL), 2);
	assert_int_equal(ls_db_version(db), v + 1);
	/* two edges of one report: one bump for the report */
	ls_db_free(db);
	assert_int_equal(ls_db_new(&db, 3, NULL, 0), 0);
	struct ls_link two[] = {lk(0, 1, true, 1), lk(1, 2, true, 1)};
	assert_int_equal(offer(db, 0, 1, 0, two, 2, &bumped), LS_STORED);
	assert_int_equal(ls_db_version(db), 1);
	ls_db_free(db);
}

/* ---- timing ---- */

static double
now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* 1000 nodes (a 40 x 25 grid, 3870 directed edges, random capacities):
 * corner to corner, where the search visits the most nodes. The times
 * are printed, not asserted (docs/routing.md quotes them). */
static void
test_1000_nodes(void **state)
{
	(void)state;
	enum { RUNS = 1000 };
	size_t m;
	struct rt_edge *e = grid(40, 25, &m, 99);
	struct rt_graph *g;
	struct rt_route r, rs[RT_ROUTES_MAX];
	static double t[RUNS];
	/* the first build and route touch fresh memory: not timed */
	assert_int_equal(rt_graph_new(&g, 1000, NULL, e, m), 0);
	assert_int_equal(rt_best(g, 0, 999, 4096, &r), 0);
	rt_graph_free(g);
	double t0 = now_us();
	assert_int_equal(rt_graph_new(&g, 1000, NULL, e, m), 0);
	double build = now_us() - t0;
	for (int i = 0; i < RUNS; i++) {
		t0 = now_us();
		assert_int_equal(rt_best(g, 0, 999, 4096, &r), 0);
		t[i] = now_us() - t0;
	}
	qsort(t, RUNS, sizeof(t[0]), by_value);
	double sum = 0;
	for (int i = 0; i < RUNS; i++)
		sum += t[i];
	t0 = now_us();
	for (int i = 0; i < RUNS / 10; i++)
		assert_int_equal(rt_routes(g, 0, 999, 4096, rs, RT_ROUTES_MAX),
		                 RT_ROUTES_MAX);
	double four = (now_us() - t0) / (RUNS / 10);
	assert_int_equal(rt_best(g, 0, 999, 4096, &r), 0);
	printf("1000 nodes, %zu edges, corner to corner (%u hops, "
	       "bottleneck %llu B): best route %.1f us mean, %.1f us median, "
	       "%.1f us max of %d; 4 routes %.1f us; graph build %.1f us\n",
	       m, r.n - 1, (unsigned long long)r.bottleneck, sum / RUNS,
	       t[RUNS / 2], t[RUNS - 1], RUNS, four, build);
	rt_graph_free(g);
	free(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_widest_beats_shorter),
	    cmocka_unit_test(test_ties),
	    cmocka_unit_test(test_hops_after_bottleneck),
	    cmocka_unit_test(test_demand),
	    cmocka_unit_test(test_no_route),
	    cmocka_unit_test(test_avoiding),
	    cmocka_unit_test(test_alternatives),
	    cmocka_unit_test(test_brute_force),
	    cmocka_unit_test(test_db_routes),
	    cmocka_unit_test(test_db_old_seq),
	    cmocka_unit_test(test_db_ageing),
	    cmocka_unit_test(test_db_version),
	    cmocka_unit_test(test_1000_nodes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
