/* qkdn-bench relay: its parts (relay.c: the command, the Kx floor, the
 * measurements and the report; relay_net.c: the line network with its
 * controllers; relay_route.c: the routing module's timing). */
#ifndef BENCH_RELAY_H
#define BENCH_RELAY_H

#include "bench.h"
#include "qkdn_ak.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

/* N1 - N2 - ... - N5: hops 1..4 from N1 */
#define RNET_NODES    5
#define RNET_HOPS_MAX (RNET_NODES - 1)
/* Each link's emulated key rate, and what a paused link is topped up to.
 * Lower than the two-node network's: four links fill at once, and the
 * emulator must still answer its control socket meanwhile. */
#define RNET_RATE_BPS    200000000ull
#define RNET_TOPUP_BYTES (48ull << 20)
/* SAEs per node for concurrent clients (alice, alice1, ... at N1) */
#define RNET_PAIRS_MAX 16

enum rnet_mode { RNET_DISTRIBUTED, RNET_CENTRALIZED };

struct qkdn_net;

/* One line network: its directory, processes and status probes. */
struct rnet {
	char dir[PATH_MAX];
	char cnf[PATH_MAX + 16];
	enum rnet_mode mode;
	int pairs; /* SAEs per node; set before start */
	int kx_port[RNET_NODES];
	struct qkdn_net *conf;
	struct qkdn_proc sim;
	struct qkdn_proc km[RNET_NODES];
	struct qkdn_proc ctl[RNET_NODES]; /* one, or one per node */
	int n_ctl;
	struct qkdn_ak *probe[RNET_NODES]; /* status of each KM */
	bool paused;
};

/* What the status of the KMs says of the line's links: link i joins N(i+1)
 * and N(i+2); out = key N(i+1) can send on it, in = key N(i+2) holds to
 * match (both bytes). */
struct rnet_links {
	uint64_t out[RNET_HOPS_MAX], in[RNET_HOPS_MAX];
	bool up[RNET_HOPS_MAX];
	struct qkdn_ak_relay_status relay[RNET_NODES];
	uint64_t pending[RNET_NODES];
};

const char *rnet_mode_word(enum rnet_mode m);
/* SAE `pair` at node i (0: N1): alice, bob, carol, dave, erin; pair > 0
 * appends the pair's number. */
void rnet_sae(char *out, size_t len, int node, int pair);
/* Make dir (a fresh subdirectory of parent) and pick Kx ports. */
int rnet_dir(struct rnet *n, const char *parent, const char *name)
    __attribute__((warn_unused_result));
/* Write the network file, start the emulator, the controller(s), then the
 * KMs (as children), and wait until each answers. */
int rnet_start(struct rnet *n, const char *who)
    __attribute__((warn_unused_result));
const char *rnet_ak_url(const struct rnet *n, int node);
int rnet_links_read(struct rnet *n, struct rnet_links *l)
    __attribute__((warn_unused_result));
/* Pause or resume every link. */
int rnet_link_run(struct rnet *n, bool run) __attribute__((warn_unused_result));
/* Until every link holds need bytes at both ends (running links). */
int rnet_wait_key(struct rnet *n, uint64_t need)
    __attribute__((warn_unused_result));
/* At least need bytes on every link at both ends; paused links are
 * resumed to top up to RNET_TOPUP_BYTES, then paused again. */
int rnet_ensure_key(struct rnet *n, uint64_t need)
    __attribute__((warn_unused_result));
/* CPU seconds so far: [0] this process, [1] the KMs, [2] the controllers,
 * [3] the emulator. */
#define RNET_CPU_N 4
void rnet_cpu(const struct rnet *n, double t[RNET_CPU_N]);
/* Whether every daemon still runs; the log of one that ended is shown. */
bool rnet_alive(struct rnet *n);
void rnet_stop(struct rnet *n);
void rnet_log_tails(const struct rnet *n, int lines);
void rnet_free(struct rnet *n);

/* ---- the routing module on a synthetic topology (relay_route.c) ---- */

struct route_timing {
	bool available; /* built with the controller's routing module */
	uint32_t nodes;
	size_t edges;
	int runs;
	uint64_t demand;
	double best_p50_us, best_p99_us;       /* rt_best on a built graph */
	double routes_p50_us, routes_p99_us;   /* rt_routes, 4 alternatives */
	double rebuild_p50_us, rebuild_p99_us; /* one LSA, graph rebuilt, and
	                                          rt_best */
	double hops_mean;                      /* of the best routes found */
	int no_route;                          /* pairs without a route */
};

int route_timing_run(struct route_timing *t, int runs, uint64_t demand)
    __attribute__((warn_unused_result));

#endif
