/* The controller's route computation on a synthetic 1000-node topology,
 * through the routing module the controller itself links
 * (controller/route.h, lsdb.h: the ctl_route library). Built without it
 * (QKDN_BENCH_ROUTE unset: no controller/ in the tree), the figure is
 * reported as not available.
 *
 * The topology: a 40 x 25 grid of nodes, each joined to its right and
 * lower neighbours, plus 250 long chords between random nodes (a metro
 * mesh with some long-haul links: mean degree about 4.4, diameter about
 * 20). Each link is two directed edges whose capacities (key the sending
 * end holds) are drawn at random from 0..64 MiB; 5 % of the links are
 * down. Everything comes from a fixed seed, so each run routes the same
 * graph between the same pairs. */
#include "relay.h"

#include "qkdn_err.h"

#include <stdlib.h>
#include <string.h>

#ifdef QKDN_BENCH_ROUTE

#include "lsdb.h"
#include "route.h"

#define GRID_W      40
#define GRID_H      25
#define CHORDS      250
#define CAP_MAX     (64ull << 20)
#define DOWN_PER_K  50 /* links down, per thousand */
#define WARMUP_RUNS 100
#define NOW_MS      1000000
#define MAX_AGE_MS  3000

/* xorshift64*: deterministic, so that every run times the same work */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

struct topo {
	uint32_t n;
	size_t m; /* undirected links */
	uint32_t (*end)[2];
	bool *down;
	/* per node, its links as its LSA lists them */
	struct ls_link **lsa;
	size_t *lsa_n;
};

static void
topo_free(struct topo *t)
{
	for (uint32_t i = 0; t->lsa != NULL && i < t->n; i++)
		free(t->lsa[i]);
	free(t->lsa);
	free(t->lsa_n);
	free(t->end);
	free(t->down);
	memset(t, 0, sizeof(*t));
}

static bool
has_link(const struct topo *t, uint32_t a, uint32_t b)
{
	for (size_t i = 0; i < t->m; i++)
		if ((t->end[i][0] == a && t->end[i][1] == b) ||
		    (t->end[i][0] == b && t->end[i][1] == a))
			return true;
	return false;
}

/* Node i's LSA: each of its links with the capacity it can send. */
static void
fill_lsa(struct topo *t, uint32_t i, uint64_t *seed)
{
	t->lsa_n[i] = 0;
	for (size_t k = 0; k < t->m; k++) {
		uint32_t peer;
		if (t->end[k][0] == i)
			peer = t->end[k][1];
		else if (t->end[k][1] == i)
			peer = t->end[k][0];
		else
			continue;
		t->lsa[i][t->lsa_n[i]++] =
		    (struct ls_link){.link = (int32_t)k,
		                     .peer = peer,
		                     .up = !t->down[k],
		                     .out = rnd(seed) % CAP_MAX,
		                     .rate_bps = 1000000};
	}
}

static int
topo_make(struct topo *t, uint64_t *seed)
{
	size_t cap = 2 * GRID_W * GRID_H + CHORDS;
	memset(t, 0, sizeof(*t));
	t->n = GRID_W * GRID_H;
	t->end = calloc(cap, sizeof(*t->end));
	t->down = calloc(cap, sizeof(*t->down));
	t->lsa = calloc(t->n, sizeof(*t->lsa));
	t->lsa_n = calloc(t->n, sizeof(*t->lsa_n));
	if (t->end == NULL || t->down == NULL || t->lsa == NULL ||
	    t->lsa_n == NULL)
		return QKDN_E_NOMEM;
	for (uint32_t y = 0; y < GRID_H; y++)
		for (uint32_t x = 0; x < GRID_W; x++) {
			uint32_t v = y * GRID_W + x;
			if (x + 1 < GRID_W) {
				t->end[t->m][0] = v;
				t->end[t->m++][1] = v + 1;
			}
			if (y + 1 < GRID_H) {
				t->end[t->m][0] = v;
				t->end[t->m++][1] = v + GRID_W;
			}
		}
	for (int c = 0; c < CHORDS; c++) {
		uint32_t a = (uint32_t)(rnd(seed) % t->n),
		         b = (uint32_t)(rnd(seed) % t->n);
		if (a == b || has_link(t, a, b)) {
			c--;
			continue;
		}
		t->end[t->m][0] = a;
		t->end[t->m++][1] = b;
	}
	for (size_t k = 0; k < t->m; k++)
		t->down[k] = rnd(seed) % 1000 < DOWN_PER_K;
	/* each node's links: at most its degree, counted first */
	size_t *deg = t->lsa_n;
	for (size_t k = 0; k < t->m; k++) {
		deg[t->end[k][0]]++;
		deg[t->end[k][1]]++;
	}
	for (uint32_t i = 0; i < t->n; i++)
		if ((t->lsa[i] = calloc(deg[i] ? deg[i] : 1,
		                        sizeof(struct ls_link))) == NULL)
			return QKDN_E_NOMEM;
	for (uint32_t i = 0; i < t->n; i++)
		fill_lsa(t, i, seed);
	return 0;
}

/* A random pair of distinct nodes. */
static void
pair(uint64_t *seed, uint32_t n, uint32_t *src, uint32_t *dst)
{
	*src = (uint32_t)(rnd(seed) % n);
	do
		*dst = (uint32_t)(rnd(seed) % n);
	while (*dst == *src);
}

/* rt_best (all = false) or rt_routes with RT_ROUTES_MAX alternatives on
 * g between runs random pairs, each call timed alone. */
static int
time_routes(struct rt_graph *g, uint32_t n, int runs, uint64_t demand, bool all,
            struct bench_samples *s, double *hops, int *none)
{
	struct rt_route r[RT_ROUTES_MAX];
	uint64_t seed = 0x5eed0001, hop_sum = 0;
	int found = 0;
	*none = 0;
	for (int i = -WARMUP_RUNS; i < runs; i++) {
		uint32_t src, dst;
		size_t k;
		pair(&seed, n, &src, &dst);
		uint64_t t0 = bench_now_ns();
		if (all)
			k = rt_routes(g, src, dst, demand, r, RT_ROUTES_MAX);
		else
			k = rt_best(g, src, dst, demand, &r[0]) == 0 ? 1 : 0;
		uint64_t t1 = bench_now_ns();
		if (i < 0)
			continue;
		if (bench_samples_add(s, t1 - t0) != 0)
			return QKDN_E_NOMEM;
		if (k == 0) {
			(*none)++;
		} else {
			hop_sum += r[0].n - 1;
			found++;
		}
	}
	if (hops != NULL)
		*hops = found > 0 ? (double)hop_sum / found : 0;
	return 0;
}

/* What a controller does for a route request after a link-state report
 * changed its database: the graph is rebuilt (ls_db_graph), then routed.
 * Timed together, over runs reports of random nodes. */
static int
time_rebuild(struct ls_db *db, struct topo *t, int runs, uint64_t demand,
             struct bench_samples *s)
{
	uint64_t seed = 0x5eed0002, seq = 2;
	struct rt_route r;
	for (int i = -WARMUP_RUNS / 10; i < runs; i++, seq++) {
		uint32_t who = (uint32_t)(rnd(&seed) % t->n), src, dst;
		fill_lsa(t, who, &seed);
		int rv = ls_db_offer(db, who, seq, MAX_AGE_MS, NOW_MS,
		                     t->lsa[who], t->lsa_n[who], NULL);
		if (rv < 0)
			return rv;
		pair(&seed, t->n, &src, &dst);
		uint64_t t0 = bench_now_ns();
		struct rt_graph *g = ls_db_graph(db);
		if (g == NULL)
			return QKDN_E_NOMEM;
		int found = rt_best(g, src, dst, demand, &r);
		uint64_t t1 = bench_now_ns();
		(void)found; /* no route is an answer too, timed alike */
		if (i >= 0 && bench_samples_add(s, t1 - t0) != 0)
			return QKDN_E_NOMEM;
	}
	return 0;
}

int
route_timing_run(struct route_timing *rt, int runs, uint64_t demand)
{
	struct topo t;
	struct ls_db *db = NULL;
	struct bench_samples best = {0}, all = {0}, rebuild = {0};
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int none_all, rv;
	memset(rt, 0, sizeof(*rt));
	rt->runs = runs;
	rt->demand = demand;
	if ((rv = topo_make(&t, &seed)) != 0 ||
	    (rv = ls_db_new(&db, t.n, NULL, 1)) != 0)
		goto out;
	/* every node's LSA, as the controller holds them */
	for (uint32_t i = 0; i < t.n; i++)
		if ((rv = ls_db_offer(db, i, 1, MAX_AGE_MS, NOW_MS, t.lsa[i],
		                      t.lsa_n[i], NULL)) < 0)
			goto out;
	struct rt_graph *g = ls_db_graph(db);
	if (g == NULL) {
		rv = QKDN_E_NOMEM;
		goto out;
	}
	rt->nodes = rt_graph_nodes(g);
	rt->edges = rt_graph_edges(g);
	if ((rv = time_routes(g, t.n, runs, demand, false, &best,
	                      &rt->hops_mean, &rt->no_route)) != 0 ||
	    (rv = time_routes(g, t.n, runs, demand, true, &all, NULL,
	                      &none_all)) != 0 ||
	    (rv = time_rebuild(db, &t, runs / 10, demand, &rebuild)) != 0)
		goto out;
	rt->available = true;
	rt->best_p50_us = bench_samples_pct_us(&best, 50);
	rt->best_p99_us = bench_samples_pct_us(&best, 99);
	rt->routes_p50_us = bench_samples_pct_us(&all, 50);
	rt->routes_p99_us = bench_samples_pct_us(&all, 99);
	rt->rebuild_p50_us = bench_samples_pct_us(&rebuild, 50);
	rt->rebuild_p99_us = bench_samples_pct_us(&rebuild, 99);
out:
	ls_db_free(db);
	topo_free(&t);
	bench_samples_free(&best);
	bench_samples_free(&all);
	bench_samples_free(&rebuild);
	return rv < 0 ? rv : 0;
}

#else

int
route_timing_run(struct route_timing *rt, int runs, uint64_t demand)
{
	memset(rt, 0, sizeof(*rt));
	rt->runs = runs;
	rt->demand = demand;
	return 0;
}

#endif
