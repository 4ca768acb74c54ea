/* qkdn-bench relay: key relay through trusted nodes with controllers
 * (ITU-T Q.4160 I.3-I.5), on a line N1 - ... - N5 of its own
 * (relay_net.c). It prints:
 *   (a) the Kx floor: a bare nng REQ/REP round trip over tcp:// loopback
 *       with a request the size of one relay hop and a reply the size of
 *       its completion;
 *   (b) the controller's route computation on a synthetic 1000-node
 *       topology, through its own routing module (relay_route.c);
 *   then, for each controller mode measured:
 *   (c) the latency of one key request relayed over 1 to 4 hops (1 hop:
 *       direct I.1 supply, the baseline) and what each added hop costs,
 *       also as a multiple of the Kx floor, measured in rounds that make a
 *       floor round trip and one request of each length, so that all see
 *       the same load;
 *   (d) keys/s over 1 to 4 hops with concurrent clients, and the key
 *       efficiency: key bits delivered over link key bits consumed on all
 *       hops, next to its limit 1/hops.
 * Aims are printed next to the figures. docs/bench.md explains each. */
#include "relay.h"

#include "qkdn_ak.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_msg.h"
#include "qkdn_netconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_BITS        256
#define KEY_BYTES       (KEY_BITS / 8)
#define HOP_OVERHEAD    64 /* MAC key and ack key taken per hop */
#define BATCHES_MAX     8
#define CLIENT_LISTS    4
#define CALL_TIMEOUT_MS 10000
#define LAT_WARMUP      20
#define WARMUP_REQUESTS 5     /* before each keys/s line */
#define READY_DEADLINE  20000 /* ms for the first relay of each length */
#define ROUTE_RUNS      2000
#define FLOOR_WARMUP    200
#define MIB             (1024.0 * 1024.0)

/* aims, printed next to the figures */
#define AIM_KEYS_PER_S 50000 /* over 3 hops, batched */
#define AIM_HOP_X      1.5   /* added latency per hop over one Kx RTT */
#define AIM_EFF_X      0.95  /* efficiency x hops, in bulk */
#define AIM_ROUTE_US   1000  /* one route on 1000 nodes */
#define AIM_HOPS       3

enum { MODE_DIST, MODE_CENT, MODE_BOTH };
static const char *const mode_words[] = {"distributed", "centralized", "both",
                                         NULL};

struct opts {
	double seconds;
	int mode;
	int batches[BATCHES_MAX], n_batches;
	int clients[CLIENT_LISTS], n_clients;
	bool json, keep;
};

static double
ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

/* ---- (a) the Kx floor ---- */

/* Encoded bytes of one message, by a writer that only counts. */
static int
count_write(void *ctx, const char *data, size_t len)
{
	(void)data;
	*(size_t *)ctx += len;
	return 0;
}

static size_t
encoded_len(const struct qkdn_msg *m)
{
	size_t n = 0;
	return qkdn_msg_encode(m, count_write, &n) == 0 ? n : 0;
}

/* The wire sizes of one relay hop carrying count keys: the middle hop of
 * a 3-hop route (N2 -> N3 of N1..N4, ciphertext present, as on every hop
 * after the first), request KEY_RELAY_AUTH{KEY_RELAY, tag}, reply
 * RELAY_DONE_NOTIF. */
static int
hop_sizes(uint32_t count, size_t *req_len, size_t *rsp_len)
{
	static qkdn_name route[4] = {"N1", "N2", "N3", "N4"};
	static uint8_t tag[16];
	qkdn_uuid *ids = calloc(count, sizeof(*ids));
	uint8_t *ct = calloc(count, KEY_BYTES);
	struct qkdn_segment seg = {.block_id = 1ull << 40,
	                           .offset = 1000,
	                           .len = HOP_OVERHEAD + count * KEY_BYTES};
	int rv = QKDN_E_NOMEM;
	if (ids == NULL || ct == NULL)
		goto out;
	qkdn_uuid_v7(ids, count);
	struct qkdn_msg kr = {.type = QKDN_KEY_RELAY, .req_id = 1};
	struct qkdn_key_relay *k = &kr.u.key_relay;
	qkdn_uuid_random(&k->relay_id);
	k->route = (struct qkdn_route){.n = 4, .v = route};
	k->hop = 2;
	snprintf(k->src_sae, sizeof(k->src_sae), "alice");
	snprintf(k->dst_sae, sizeof(k->dst_sae), "dave");
	k->bits = KEY_BITS;
	k->ttl_ms = 2000;
	snprintf(k->link, sizeof(k->link), "N2_N3");
	k->segs = (struct qkdn_segments){.n = 1, .v = &seg};
	k->ids = (struct qkdn_ids){.n = count, .v = ids};
	k->ciphertext =
	    (struct qkdn_bytes){.len = count * KEY_BYTES, .ptr = ct};
	size_t relay_len = encoded_len(&kr);
	uint8_t *relay = calloc(relay_len ? relay_len : 1, 1);
	if (relay == NULL)
		goto out;
	struct qkdn_msg auth = {.type = QKDN_KEY_RELAY_AUTH, .req_id = 1};
	auth.u.key_relay_auth.relay =
	    (struct qkdn_bytes){.len = (uint32_t)relay_len, .ptr = relay};
	auth.u.key_relay_auth.tag = (struct qkdn_bytes){.len = 16, .ptr = tag};
	*req_len = encoded_len(&auth);
	free(relay);
	struct qkdn_msg done = {.type = QKDN_RELAY_DONE_NOTIF, .req_id = 1};
	done.u.relay_done_notif.relay_id = k->relay_id; /* no IDs: relay.c */
	done.u.relay_done_notif.tag =
	    (struct qkdn_bytes){.len = 16, .ptr = tag};
	*rsp_len = encoded_len(&done);
	rv =
	    relay_len > 0 && *req_len > 0 && *rsp_len > 0 ? 0 : QKDN_E_INTERNAL;
out:
	free(ids);
	free(ct);
	return rv;
}

struct kx_floor {
	uint32_t keys;
	size_t req_len, rsp_len;
	double per_s, p50_us, p99_us;
};

/* One client, synchronous round trips of a hop-sized request for seconds
 * after a warm-up. */
static int
kx_floor_one(const char *url, double seconds, struct kx_floor *f)
{
	struct bench_samples s = {0};
	nng_socket sock;
	int rv;
	if ((rv = hop_sizes(f->keys, &f->req_len, &f->rsp_len)) != 0 ||
	    (rv = bench_echo_open(&sock, url)) != 0)
		return rv;
	for (int i = 0; i < FLOOR_WARMUP && rv == 0; i++)
		rv = bench_echo_sized_once(sock, f->req_len, f->rsp_len);
	uint64_t start = bench_now_ns(), t1 = start,
	         end = start + (uint64_t)(seconds * 1e9);
	while (rv == 0 && t1 < end) {
		uint64_t t0 = bench_now_ns();
		if ((rv = bench_echo_sized_once(sock, f->req_len,
		                                f->rsp_len)) != 0)
			break;
		t1 = bench_now_ns();
		if (bench_samples_add(&s, t1 - t0) != 0)
			rv = QKDN_E_NOMEM;
	}
	nng_close(sock);
	if (rv != 0)
		bench_note("Kx floor, %u keys: %s", f->keys, qkdn_strerror(rv));
	f->per_s = (double)s.n / ((double)(t1 - start) / 1e9);
	f->p50_us = bench_samples_pct_us(&s, 50);
	f->p99_us = bench_samples_pct_us(&s, 99);
	bench_samples_free(&s);
	return rv;
}

static int
run_kx_floor(const struct bench_out *o, const struct opts *op,
             const struct bench_echo *e, struct kx_floor *f)
{
	char a[32];
	int rv;
	bench_say(o, "(a) Kx floor: bare nng REQ/REP, one client, over "
	             "tcp:// loopback to an echo server in a child process");
	bench_say(o, "    (nng_rep0 with aio contexts); the request is the "
	             "size of one relay hop (KEY_RELAY_AUTH,");
	bench_say(o, "    middle hop of a 3-hop route, keys XOR pad), the "
	             "reply the size of its completion (RELAY_DONE_NOTIF)");
	bench_say(o, "    keys/hop  request B  reply B   round trips/s    p50 "
	             "us    p99 us");
	cJSON *arr = cJSON_AddArrayToObject(o->root, "kx_floor");
	for (int b = 0; b < op->n_batches; b++) {
		f[b] = (struct kx_floor){.keys = (uint32_t)op->batches[b]};
		if ((rv = kx_floor_one(e->url, op->seconds / 2, &f[b])) != 0)
			return rv;
		bench_say(o, "    %8u  %9zu  %7zu  %14s  %8.1f  %8.1f",
		          f[b].keys, f[b].req_len, f[b].rsp_len,
		          bench_group(a, f[b].per_s), f[b].p50_us, f[b].p99_us);
		cJSON *j = cJSON_CreateObject();
		cJSON_AddNumberToObject(j, "keys_per_hop", f[b].keys);
		cJSON_AddNumberToObject(j, "request_bytes",
		                        (double)f[b].req_len);
		cJSON_AddNumberToObject(j, "reply_bytes", (double)f[b].rsp_len);
		cJSON_AddNumberToObject(j, "round_trips_per_s", f[b].per_s);
		cJSON_AddNumberToObject(j, "p50_us", f[b].p50_us);
		cJSON_AddNumberToObject(j, "p99_us", f[b].p99_us);
		cJSON_AddItemToArray(arr, j);
	}
	bench_blank(o);
	return 0;
}

/* ---- (b) routing ---- */

static int
run_routing(const struct bench_out *o, uint32_t batch, struct route_timing *rt)
{
	uint64_t demand = HOP_OVERHEAD + (uint64_t)batch * KEY_BYTES;
	int rv = route_timing_run(rt, ROUTE_RUNS, demand);
	cJSON *j = cJSON_AddObjectToObject(o->root, "routing");
	cJSON_AddBoolToObject(j, "available", rt->available);
	if (rv != 0) {
		bench_note("route timing: %s", qkdn_strerror(rv));
		return rv;
	}
	if (!rt->available) {
		bench_say(o, "(b) routing: not available (built without the "
		             "controller's routing module, ctl_route)");
		bench_blank(o);
		return 0;
	}
	bench_say(o, "(b) controller route computation (controller/route.c, "
	             "lsdb.c) on a synthetic topology:");
	bench_say(o,
	          "    %u nodes (40 x 25 grid + 250 random chords, 5%% of "
	          "links down), %zu directed edges,",
	          rt->nodes, rt->edges);
	bench_say(o,
	          "    capacities 0..64 MiB at random, demand %llu bytes per "
	          "hop (%u keys); %d random pairs, each call timed",
	          (unsigned long long)rt->demand, batch, rt->runs);
	bench_say(o,
	          "    best route (rt_best)                      p50 %7.1f "
	          "us   p99 %7.1f us   aim < %d us",
	          rt->best_p50_us, rt->best_p99_us, AIM_ROUTE_US);
	bench_say(o,
	          "    up to 4 alternatives (rt_routes, I.4a)    p50 %7.1f "
	          "us   p99 %7.1f us",
	          rt->routes_p50_us, rt->routes_p99_us);
	bench_say(o,
	          "    after a link-state report: graph rebuilt p50 %7.1f "
	          "us   p99 %7.1f us   (%d runs)",
	          rt->rebuild_p50_us, rt->rebuild_p99_us, rt->runs / 10);
	bench_say(o, "      + best route (ls_db_graph + rt_best)");
	bench_say(o,
	          "    best routes: %.1f hops on average, %d pairs without "
	          "a route",
	          rt->hops_mean, rt->no_route);
	bench_blank(o);
	cJSON_AddNumberToObject(j, "nodes", rt->nodes);
	cJSON_AddNumberToObject(j, "edges", (double)rt->edges);
	cJSON_AddNumberToObject(j, "runs", rt->runs);
	cJSON_AddNumberToObject(j, "demand_bytes", (double)rt->demand);
	cJSON_AddNumberToObject(j, "best_p50_us", rt->best_p50_us);
	cJSON_AddNumberToObject(j, "best_p99_us", rt->best_p99_us);
	cJSON_AddNumberToObject(j, "routes4_p50_us", rt->routes_p50_us);
	cJSON_AddNumberToObject(j, "routes4_p99_us", rt->routes_p99_us);
	cJSON_AddNumberToObject(j, "rebuild_best_p50_us", rt->rebuild_p50_us);
	cJSON_AddNumberToObject(j, "rebuild_best_p99_us", rt->rebuild_p99_us);
	cJSON_AddNumberToObject(j, "hops_mean", rt->hops_mean);
	cJSON_AddNumberToObject(j, "no_route_pairs", rt->no_route);
	return 0;
}

/* ---- on a line network: relays ready? ---- */

/* What one mode's run found; its figures are in JSON as they come. */
struct mode_res {
	bool ok[RNET_HOPS_MAX + 1]; /* [h]: relays of h hops worked */
	char why[RNET_HOPS_MAX + 1][300];
	/* p50 of the source request, [h][batch index] */
	double p50[RNET_HOPS_MAX + 1][BATCHES_MAX];
	double kps[RNET_HOPS_MAX + 1][BATCHES_MAX];   /* best over clients */
	double eff_x[RNET_HOPS_MAX + 1][BATCHES_MAX]; /* efficiency x hops */
	double floor_p50[BATCHES_MAX]; /* Kx floor alongside (c) */
	uint64_t errors;               /* requests that failed in (c) and (d) */
	bool measured;
};

/* One key request for count keys from alice at N1 to the destination h
 * hops away, then its fetch there, compared. */
static int
one_request(struct qkdn_ak *src, struct qkdn_ak *dst, const char *dst_sae,
            uint32_t count, struct qkdn_ak_key *ka, struct qkdn_ak_key *kb,
            qkdn_key_id *ids, uint64_t *ns, char *why, size_t whylen)
{
	uint64_t t0 = bench_now_ns();
	int rv = qkdn_ak_get_keys(src, dst_sae, KEY_BITS, count, ka);
	uint64_t t1 = bench_now_ns();
	if (rv != 0) {
		snprintf(why, whylen, "key request at N1 for %s: %s", dst_sae,
		         qkdn_ak_last_error());
		return rv;
	}
	if (ns != NULL)
		*ns = t1 - t0;
	for (uint32_t i = 0; i < count; i++)
		ids[i] = ka[i].id;
	rv = qkdn_ak_get_keys_by_id(dst, ids, count, kb);
	if (rv != 0)
		snprintf(why, whylen, "fetch by ID as %s: %s", dst_sae,
		         qkdn_ak_last_error());
	for (uint32_t i = 0; i < count && rv == 0; i++)
		if (ka[i].len != kb[i].len ||
		    memcmp(ka[i].bytes, kb[i].bytes, ka[i].len) != 0) {
			snprintf(why, whylen,
			         "the two ends got different keys (%s)",
			         dst_sae);
			rv = QKDN_E_INTERNAL;
		}
	qkdn_ak_keys_wipe(ka, count);
	qkdn_ak_keys_wipe(kb, count);
	return rv;
}

/* The Ak handles of one client: alice<pair> at N1, the destination SAE
 * <pair> at N(h+1), and room for count keys. */
struct client {
	struct qkdn_ak *src, *dst;
	char dst_sae[QKDN_AK_NAME_MAX];
	uint32_t count;
	struct qkdn_ak_key *ka, *kb;
	qkdn_key_id *ids;
};

static void
client_close(struct client *c)
{
	qkdn_ak_close(c->src);
	qkdn_ak_close(c->dst);
	free(c->ka);
	free(c->kb);
	free(c->ids);
	memset(c, 0, sizeof(*c));
}

static int
client_open(struct client *c, const struct rnet *n, int hops, int pair,
            uint32_t count)
{
	char src[QKDN_AK_NAME_MAX];
	memset(c, 0, sizeof(*c));
	rnet_sae(src, sizeof(src), 0, pair);
	rnet_sae(c->dst_sae, sizeof(c->dst_sae), hops, pair);
	c->count = count;
	c->ka = calloc(count, sizeof(*c->ka));
	c->kb = calloc(count, sizeof(*c->kb));
	c->ids = calloc(count, sizeof(*c->ids));
	if (c->ka == NULL || c->kb == NULL || c->ids == NULL ||
	    qkdn_ak_open(&c->src, rnet_ak_url(n, 0), src, CALL_TIMEOUT_MS) !=
	        0 ||
	    qkdn_ak_open(&c->dst, rnet_ak_url(n, hops), c->dst_sae,
	                 CALL_TIMEOUT_MS) != 0) {
		client_close(c);
		return QKDN_E_NOMEM;
	}
	return 0;
}

static int
client_once(struct client *c, uint64_t *ns, char *why, size_t whylen)
{
	return one_request(c->src, c->dst, c->dst_sae, c->count, c->ka, c->kb,
	                   c->ids, ns, why, whylen);
}

/* Until a key relayed over h hops arrives (the KMs report their links
 * every 250 ms and the controllers must have heard of every link on the
 * way), for h = 2..4; 1 hop (direct) must work at once. A length that
 * does not work within READY_DEADLINE is recorded as failed with the
 * last reason. */
static void
wait_relays(struct rnet *n, struct mode_res *r, uint64_t *ready_ms)
{
	uint64_t t0 = qkdn_now_ms();
	for (int h = 1; h <= RNET_HOPS_MAX; h++) {
		struct client c;
		int rv = client_open(&c, n, h, 0, 1);
		uint64_t deadline = qkdn_now_ms() + READY_DEADLINE;
		if (rv != 0) {
			snprintf(r->why[h], sizeof(r->why[h]),
			         "cannot open Ak clients");
			continue;
		}
		for (;;) {
			rv =
			    client_once(&c, NULL, r->why[h], sizeof(r->why[h]));
			if (rv == 0 || qkdn_now_ms() > deadline ||
			    !rnet_alive(n))
				break;
			bench_sleep_ms(100);
		}
		client_close(&c);
		r->ok[h] = rv == 0;
		if (rv != 0)
			bench_note("relay over %d hop%s failed: %s", h,
			           h > 1 ? "s" : "", r->why[h]);
		else
			r->why[h][0] = '\0';
	}
	*ready_ms = qkdn_now_ms() - t0;
}

/* ---- (c) latency ---- */

/* One batch size's latency lines, measured together: each round makes a
 * Kx floor round trip (the echo server of (a), a hop-sized request), then
 * one request over each of 1..4 hops, starting with the next length each
 * round. So every line, and the floor they are compared with, sees the
 * same moments of this machine's load: the differences between lines, the
 * cost of a hop, do not move with the load from one line to the next. */
struct lat_batch {
	struct bench_samples floor, s[RNET_HOPS_MAX + 1];
	bool failed[RNET_HOPS_MAX + 1];     /* given up on */
	uint64_t errors[RNET_HOPS_MAX + 1]; /* requests that failed */
	int in_a_row[RNET_HOPS_MAX + 1];    /* failures since a success */
	char why[RNET_HOPS_MAX + 1][300];   /* the first failure's reason */
};

/* A length that fails this many times in a row is given up on (the
 * others go on); a failure now and then is counted and shown. */
#define LAT_GIVE_UP 10

static void
lat_batch_free(struct lat_batch *lb)
{
	bench_samples_free(&lb->floor);
	for (int h = 0; h <= RNET_HOPS_MAX; h++)
		bench_samples_free(&lb->s[h]);
}

static int
measure_batch(struct rnet *n, const char *echo_url, const struct kx_floor *kf,
              double seconds, const struct mode_res *r, struct lat_batch *lb)
{
	struct client c[RNET_HOPS_MAX + 1];
	nng_socket echo;
	uint64_t end = UINT64_MAX, ns;
	int rv, live = 0;
	memset(c, 0, sizeof(c));
	if ((rv = bench_echo_open(&echo, echo_url)) != 0)
		return rv;
	for (int h = 1; h <= RNET_HOPS_MAX; h++) {
		lb->failed[h] = !r->ok[h];
		if (lb->failed[h])
			snprintf(lb->why[h], sizeof(lb->why[h]), "%s",
			         r->why[h]);
		else if (client_open(&c[h], n, h, 0, kf->keys) != 0) {
			lb->failed[h] = true;
			snprintf(lb->why[h], sizeof(lb->why[h]),
			         "cannot open Ak clients");
		}
		live += !lb->failed[h];
	}
	for (int i = 0; rv == 0 && live > 0; i++) {
		if (i == LAT_WARMUP)
			end = bench_now_ns() + (uint64_t)(seconds * 1e9);
		if (bench_now_ns() >= end)
			break;
		uint64_t t0 = bench_now_ns();
		if ((rv = bench_echo_sized_once(echo, kf->req_len,
		                                kf->rsp_len)) != 0) {
			bench_note("Kx floor alongside: %s", qkdn_strerror(rv));
			break;
		}
		if (i >= LAT_WARMUP &&
		    bench_samples_add(&lb->floor, bench_now_ns() - t0) != 0)
			rv = QKDN_E_NOMEM;
		for (int k = 0; k < RNET_HOPS_MAX && rv == 0; k++) {
			int h = 1 + (i + k) % RNET_HOPS_MAX;
			if (lb->failed[h])
				continue;
			char why[300];
			if (client_once(&c[h], &ns, why, sizeof(why)) != 0) {
				if (lb->errors[h]++ == 0)
					snprintf(lb->why[h], sizeof(lb->why[h]),
					         "%s", why);
				if (++lb->in_a_row[h] >= LAT_GIVE_UP) {
					lb->failed[h] = true;
					live--;
				}
				if (!rnet_alive(n))
					rv = QKDN_E_UNREACHABLE;
				continue;
			}
			lb->in_a_row[h] = 0;
			if (i >= LAT_WARMUP &&
			    bench_samples_add(&lb->s[h], ns) != 0)
				rv = QKDN_E_NOMEM;
		}
	}
	for (int h = 1; h <= RNET_HOPS_MAX; h++)
		client_close(&c[h]);
	nng_close(echo);
	return rv;
}

static void
say_latency_head(const struct bench_out *o, double seconds)
{
	bench_say(
	    o, "  (c) latency of one key request, 1 client: alice at N1 asks "
	       "for keys for the SAE h hops");
	bench_say(o, "      away (1 hop: direct I.1 supply, the baseline), the "
	             "fetch there following untimed;");
	bench_say(o,
	          "      per batch size, %.1f s of rounds: a Kx floor round "
	          "trip, then one request over each of",
	          seconds);
	bench_say(o, "      1..4 hops. added: p50 over 1 hop's; per hop: "
	             "added/(h-1); x Kx: per hop over the p50");
	bench_say(o,
	          "      of the Kx floor round trips alongside (in brackets: "
	          "over (a)'s); this hop: p50(h) - p50(h-1)");
	bench_say(o, "      hops  keys/req     p50 us     p99 us   added us  "
	             "per hop us     x Kx            this hop us");
}

static void
say_lat_errors(const struct bench_out *o, const struct lat_batch *lb, int h)
{
	if (lb->errors[h] > 0)
		bench_say(o,
		          "            %llu request%s failed (warm-up "
		          "included); first: %s",
		          (unsigned long long)lb->errors[h],
		          lb->errors[h] > 1 ? "s" : "", lb->why[h]);
}

/* The lines of one batch size, in text and into arr. */
static void
report_batch(const struct bench_out *o, int b, const struct kx_floor *kf,
             struct lat_batch *lb, struct mode_res *r, cJSON *arr)
{
	double fl = bench_samples_pct_us(&lb->floor, 50);
	uint32_t count = kf->keys;
	bench_say(o,
	          "      Kx floor alongside, %u key%s a hop: p50 %.1f us, p99 "
	          "%.1f us ((a): p50 %.1f us)",
	          count, count > 1 ? "s" : "", fl,
	          bench_samples_pct_us(&lb->floor, 99), kf->p50_us);
	r->floor_p50[b] = fl;
	for (int h = 1; h <= RNET_HOPS_MAX; h++) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddNumberToObject(j, "hops", h);
		cJSON_AddNumberToObject(j, "keys_per_request", count);
		cJSON_AddItemToArray(arr, j);
		if (lb->failed[h] || lb->s[h].n == 0) {
			bench_say(o, "      %4d  %8u   FAILED: %s", h, count,
			          lb->why[h]);
			cJSON_AddStringToObject(j, "error", lb->why[h]);
			continue;
		}
		double p50 = bench_samples_pct_us(&lb->s[h], 50),
		       p99 = bench_samples_pct_us(&lb->s[h], 99);
		r->p50[h][b] = p50;
		cJSON_AddNumberToObject(j, "requests", (double)lb->s[h].n);
		cJSON_AddNumberToObject(j, "errors", (double)lb->errors[h]);
		if (lb->errors[h] > 0)
			cJSON_AddStringToObject(j, "first_error", lb->why[h]);
		cJSON_AddNumberToObject(j, "p50_us", p50);
		cJSON_AddNumberToObject(j, "p99_us", p99);
		double base = r->p50[1][b];
		if (h == 1 || base <= 0) {
			bench_say(o, "      %4d  %8u  %9.1f  %9.1f   %s", h,
			          count, p50, p99,
			          h == 1 ? "(direct: the baseline)" : "");
			say_lat_errors(o, lb, h);
			continue;
		}
		double added = p50 - base, per = added / (h - 1),
		       prev = r->p50[h - 1][b];
		cJSON_AddNumberToObject(j, "added_us", added);
		cJSON_AddNumberToObject(j, "per_added_hop_us", per);
		cJSON_AddNumberToObject(j, "per_added_hop_x_kx_floor",
		                        ratio(per, fl));
		cJSON_AddNumberToObject(j, "per_added_hop_x_kx_floor_a",
		                        ratio(per, kf->p50_us));
		if (prev > 0)
			cJSON_AddNumberToObject(j, "this_hop_us", p50 - prev);
		char th[32] = "";
		if (prev > 0)
			snprintf(th, sizeof(th), "%11.1f", p50 - prev);
		bench_say(o,
		          "      %4d  %8u  %9.1f  %9.1f  %9.1f  %10.1f  %6.2fx "
		          "(%6.2fx)  %s",
		          h, count, p50, p99, added, per, ratio(per, fl),
		          ratio(per, kf->p50_us), th);
		say_lat_errors(o, lb, h);
	}
}

static int
run_latency(const struct bench_out *o, struct rnet *n, const struct opts *op,
            const char *echo_url, const struct kx_floor *kf, struct mode_res *r,
            cJSON *jm)
{
	cJSON *arr = cJSON_AddArrayToObject(jm, "latency");
	cJSON *jf = cJSON_AddArrayToObject(jm, "kx_floor_alongside");
	double seconds = op->seconds * 2;
	say_latency_head(o, seconds);
	for (int b = 0; b < op->n_batches; b++) {
		struct lat_batch lb;
		int rv;
		memset(&lb, 0, sizeof(lb));
		if ((rv = rnet_ensure_key(n, 4u << 20)) != 0 ||
		    (rv = measure_batch(n, echo_url, &kf[b], seconds, r,
		                        &lb)) != 0) {
			lat_batch_free(&lb);
			return rv;
		}
		report_batch(o, b, &kf[b], &lb, r, arr);
		for (int h = 1; h <= RNET_HOPS_MAX; h++)
			r->errors += lb.errors[h];
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "keys_per_hop", kf[b].keys);
		cJSON_AddNumberToObject(e, "round_trips", (double)lb.floor.n);
		cJSON_AddNumberToObject(e, "p50_us",
		                        bench_samples_pct_us(&lb.floor, 50));
		cJSON_AddNumberToObject(e, "p99_us",
		                        bench_samples_pct_us(&lb.floor, 99));
		cJSON_AddItemToArray(jf, e);
		lat_batch_free(&lb);
	}
	return 0;
}

/* ---- (d) keys/s and key efficiency ---- */

struct tput {
	struct rnet *n;
	int hops;
	uint32_t count;
	double cpu0[RNET_CPU_N], cpu1[RNET_CPU_N];
};

static int
tput_setup(struct bench_worker *w)
{
	struct tput *t = w->arg;
	struct client *c = calloc(1, sizeof(*c));
	if ((w->priv = c) == NULL)
		return QKDN_E_NOMEM;
	return client_open(c, t->n, t->hops, w->idx, t->count);
}

static int
tput_op(struct bench_worker *w, char *why, size_t whylen)
{
	struct client *c = w->priv;
	int rv = client_once(c, NULL, why, whylen);
	return rv != 0 ? rv : (int)c->count;
}

static void
tput_teardown(struct bench_worker *w)
{
	if (w->priv != NULL)
		client_close(w->priv);
	free(w->priv);
	w->priv = NULL;
}

static void
tput_mark(void *arg, int phase)
{
	struct tput *t = arg;
	rnet_cpu(t->n, phase == 0 ? t->cpu0 : t->cpu1);
}

/* Link key a measurement needs at every end: 8 MiB, and 4 MiB a second
 * (twice what 50 000 keys/s take on a hop, 33 bytes a key in batches). */
static uint64_t
key_need(double seconds)
{
	double need = (8.0 + 4.0 * seconds) * MIB;
	return need > 200 * MIB ? (uint64_t)(200 * MIB) : (uint64_t)need;
}

/* A few requests of the line's kind before it is measured, outside the
 * key accounting: the KMs' route caches and connections are then warm. */
static int
warm_up(struct rnet *n, int h, uint32_t count)
{
	struct client c;
	char why[300];
	int rv = client_open(&c, n, h, 0, count);
	for (int i = 0; i < WARMUP_REQUESTS && rv == 0; i++)
		rv = client_once(&c, NULL, why, sizeof(why));
	client_close(&c);
	/* a failure shows again, with its reason, in the line itself */
	return rnet_alive(n) ? 0 : QKDN_E_UNREACHABLE;
}

static const char *const cpu_keys[RNET_CPU_N] = {"bench", "kms", "controllers",
                                                 "qkdsim"};

static int
tput_line(const struct bench_out *o, struct rnet *n, const struct opts *op,
          int h, int b, int clients, struct mode_res *r, cJSON *arr)
{
	struct tput t = {.n = n, .hops = h, .count = (uint32_t)op->batches[b]};
	/* no warm-up inside the load: every request between the two status
	 * reads must be counted, or its link key would seem wasted */
	struct bench_load l = {.threads = clients,
	                       .seconds = op->seconds,
	                       .warmup_ops = 0,
	                       .arg = &t,
	                       .setup = tput_setup,
	                       .op = tput_op,
	                       .teardown = tput_teardown,
	                       .mark = tput_mark};
	struct rnet_links before, after;
	char k[32], q[32];
	int rv;
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "hops", h);
	cJSON_AddNumberToObject(j, "keys_per_request", t.count);
	cJSON_AddNumberToObject(j, "clients", clients);
	cJSON_AddItemToArray(arr, j);
	if (!r->ok[h]) {
		bench_say(o, "      %4d  %8u  %7d   FAILED: %s", h, t.count,
		          clients, r->why[h]);
		cJSON_AddStringToObject(j, "error", r->why[h]);
		return 0;
	}
	if ((rv = rnet_ensure_key(n, key_need(op->seconds))) != 0 ||
	    (rv = warm_up(n, h, t.count)) != 0 ||
	    (rv = rnet_links_read(n, &before)) != 0)
		return rv;
	if ((rv = bench_load_run(&l)) != 0) {
		bench_say(o, "      %4d  %8u  %7d   FAILED: cannot start: %s",
		          h, t.count, clients, l.first_error);
		cJSON_AddStringToObject(j, "error", l.first_error);
		bench_load_free(&l);
		return rnet_alive(n) ? 0 : rv;
	}
	if ((rv = rnet_links_read(n, &after)) != 0) {
		bench_load_free(&l);
		return rv;
	}
	/* link key consumed on each hop: the sender's out direction (the
	 * receiver's in direction is given beside it in JSON) */
	uint64_t used = 0;
	cJSON *jo = cJSON_AddArrayToObject(j, "link_out_bytes_used");
	cJSON *ji = cJSON_AddArrayToObject(j, "link_in_bytes_used");
	for (int i = 0; i < RNET_HOPS_MAX; i++) {
		uint64_t uo = before.out[i] - after.out[i],
		         ui = before.in[i] - after.in[i];
		if (after.out[i] > before.out[i])
			uo = 0; /* a link delivered key meanwhile */
		if (after.in[i] > before.in[i])
			ui = 0;
		used += uo;
		cJSON_AddItemToArray(jo, cJSON_CreateNumber((double)uo));
		cJSON_AddItemToArray(ji, cJSON_CreateNumber((double)ui));
	}
	double kps = (double)l.units / l.elapsed_s,
	       rps = (double)l.ops / l.elapsed_s,
	       eff = used > 0 ? (double)l.units * KEY_BYTES / (double)used : 0;
	r->errors += l.errors;
	if (kps > r->kps[h][b])
		r->kps[h][b] = kps;
	r->eff_x[h][b] = eff * h;
	double pct[RNET_CPU_N];
	cJSON *jc = cJSON_AddObjectToObject(j, "cpu_pct");
	for (int p = 0; p < RNET_CPU_N; p++) {
		pct[p] = (t.cpu1[p] - t.cpu0[p]) / l.elapsed_s * 100.0;
		cJSON_AddNumberToObject(jc, cpu_keys[p], pct[p]);
	}
	const struct qkdn_ak_relay_status *r0 = &before.relay[0],
	                                  *r1 = &after.relay[0];
	bench_say(o,
	          "      %4d  %8u  %7d  %10s  %9s  %6llu  %6.3f  %5.3f   "
	          "%4.0f  %4.0f  %4.0f  %4.0f",
	          h, t.count, clients, bench_group(k, kps), bench_group(q, rps),
	          (unsigned long long)l.errors, eff, eff * h, pct[0], pct[1],
	          pct[2], pct[3]);
	if (l.errors > 0)
		bench_say(o, "            first error: %s", l.first_error);
	cJSON_AddNumberToObject(j, "keys_per_s", kps);
	cJSON_AddNumberToObject(j, "requests_per_s", rps);
	/* where the time goes: the KMs' CPU for each request relayed */
	cJSON_AddNumberToObject(
	    j, "km_cpu_us_per_request",
	    l.ops > 0 ? (t.cpu1[1] - t.cpu0[1]) / (double)l.ops * 1e6 : 0);
	cJSON_AddNumberToObject(j, "keys", (double)l.units);
	cJSON_AddNumberToObject(j, "seconds", l.elapsed_s);
	cJSON_AddNumberToObject(j, "errors", (double)l.errors);
	if (l.errors > 0)
		cJSON_AddStringToObject(j, "first_error", l.first_error);
	cJSON_AddNumberToObject(j, "delivered_bits",
	                        (double)l.units * KEY_BITS);
	cJSON_AddNumberToObject(j, "link_bits_used", (double)used * 8);
	cJSON_AddNumberToObject(j, "efficiency", eff);
	cJSON_AddNumberToObject(j, "efficiency_limit", 1.0 / h);
	cJSON_AddNumberToObject(j, "efficiency_x_hops", eff * h);
	cJSON *jr = cJSON_AddObjectToObject(j, "relays_at_n1");
	cJSON_AddNumberToObject(jr, "started",
	                        (double)(r1->started - r0->started));
	cJSON_AddNumberToObject(jr, "completed",
	                        (double)(r1->completed - r0->completed));
	cJSON_AddNumberToObject(jr, "failed",
	                        (double)(r1->failed - r0->failed));
	bench_load_free(&l);
	return 0;
}

static int
run_throughput(const struct bench_out *o, struct rnet *n, const struct opts *op,
               struct mode_res *r, cJSON *jm)
{
	cJSON *arr = cJSON_AddArrayToObject(jm, "throughput");
	int rv = 0;
	bench_say(o,
	          "  (d) keys/s, N clients each asking at N1 and fetching at "
	          "the destination, %.1f s a line;",
	          op->seconds);
	bench_say(o, "      efficiency: key bits delivered / link key bits "
	             "used on all hops (KM status, links");
	bench_say(o, "      paused), limit 1/hops; x hops: efficiency x hops "
	             "(limit 1); CPU in %% of one core");
	bench_say(o, "      hops  keys/req  clients      keys/s  requests/s  "
	             "errors    eff.  x hops   bench  KMs   ctl  qkdsim");
	for (int b = 0; b < op->n_batches && rv == 0; b++)
		for (int h = 1; h <= RNET_HOPS_MAX && rv == 0; h++)
			for (int c = 0; c < op->n_clients && rv == 0; c++)
				rv = tput_line(o, n, op, h, b, op->clients[c],
				               r, arr);
	return rv;
}

/* ---- one mode ---- */

/* The aims read off one mode's figures, in text and JSON. */
struct aim_figs {
	double kps3;               /* best keys/s over AIM_HOPS hops, batched */
	double hop_x[BATCHES_MAX]; /* per added hop / Kx floor, over 4 hops */
	double eff_bulk; /* efficiency x hops, largest batch, most hops */
	int eff_hops, eff_keys;
	bool have_kps, have_hop, have_eff;
};

static void
aims_of(const struct opts *op, const struct kx_floor *kf,
        const struct mode_res *r, struct aim_figs *a)
{
	int big = 0;
	memset(a, 0, sizeof(*a));
	for (int b = 0; b < op->n_batches; b++) {
		if (op->batches[b] > op->batches[big])
			big = b;
		if (op->batches[b] > 1 && r->kps[AIM_HOPS][b] > a->kps3) {
			a->kps3 = r->kps[AIM_HOPS][b];
			a->have_kps = true;
		}
		/* the slope over the most hops that worked */
		for (int h = RNET_HOPS_MAX; h >= 2; h--)
			if (r->p50[h][b] > 0 && r->p50[1][b] > 0) {
				a->hop_x[b] = ratio(
				    (r->p50[h][b] - r->p50[1][b]) / (h - 1),
				    r->floor_p50[b] > 0 ? r->floor_p50[b]
				                        : kf[b].p50_us);
				a->have_hop = true;
				break;
			}
	}
	for (int h = RNET_HOPS_MAX; h >= 2 && op->batches[big] > 1; h--)
		if (r->eff_x[h][big] > 0) {
			a->eff_bulk = r->eff_x[h][big];
			a->eff_hops = h;
			a->eff_keys = op->batches[big];
			a->have_eff = true;
			break;
		}
}

static void
say_aims(const struct bench_out *o, const struct opts *op,
         const struct aim_figs *a, cJSON *jm)
{
	char k[32], q[32];
	cJSON *j = cJSON_AddObjectToObject(jm, "aims");
	if (a->have_kps) {
		bench_say(o,
		          "  keys/s over %d hops, batched: best %s   aim >= %s",
		          AIM_HOPS, bench_group(k, a->kps3),
		          bench_group(q, AIM_KEYS_PER_S));
		cJSON_AddNumberToObject(j, "keys_per_s_3_hops_batched",
		                        a->kps3);
	} else {
		bench_say(o, "  keys/s over %d hops, batched: no figure",
		          AIM_HOPS);
	}
	if (a->have_hop) {
		char line[256];
		size_t at = 0;
		cJSON *jh = cJSON_AddArrayToObject(j, "per_added_hop_x_kx");
		for (int b = 0; b < op->n_batches; b++) {
			at += (size_t)snprintf(
			    line + at, sizeof(line) - at, "%s%d key%s %.2fx",
			    b ? ", " : "", op->batches[b],
			    op->batches[b] > 1 ? "s" : "", a->hop_x[b]);
			cJSON_AddItemToArray(jh,
			                     cJSON_CreateNumber(a->hop_x[b]));
		}
		bench_say(
		    o,
		    "  latency per added hop / Kx round trip: %s   aim <= "
		    "%.1fx",
		    line, AIM_HOP_X);
	} else {
		bench_say(o, "  latency per added hop: no figure (no relay "
		             "worked)");
	}
	if (a->have_eff) {
		bench_say(o,
		          "  efficiency x hops in bulk (%d keys, %d hops): "
		          "%.3f   aim >= %.2f",
		          a->eff_keys, a->eff_hops, a->eff_bulk, AIM_EFF_X);
		cJSON_AddNumberToObject(j, "efficiency_x_hops_bulk",
		                        a->eff_bulk);
	} else {
		bench_say(o, "  efficiency in bulk: no figure");
	}
}

static int
run_mode(const struct bench_out *o, const struct bench_net *top,
         const struct opts *op, enum rnet_mode mode, const char *echo_url,
         const struct kx_floor *kf, struct mode_res *r, struct rnet *n)
{
	cJSON *jm = cJSON_AddObjectToObject(
	    cJSON_GetObjectItem(o->root, "modes"), rnet_mode_word(mode));
	uint64_t ready_ms;
	int rv;
	memset(r, 0, sizeof(*r));
	n->mode = mode;
	n->pairs = 1;
	for (int c = 0; c < op->n_clients; c++)
		if (op->clients[c] > n->pairs)
			n->pairs = op->clients[c];
	bench_note("starting the %s line: qkdn-qkdsim, %d qkdn-controller, "
	           "%d qkdn-km",
	           rnet_mode_word(mode),
	           mode == RNET_CENTRALIZED ? 1 : RNET_NODES, RNET_NODES);
	if ((rv = rnet_dir(n, top->dir, rnet_mode_word(mode))) != 0)
		return rv;
	uint64_t t0 = qkdn_now_ms();
	if ((rv = rnet_start(n, "qkdn-bench relay")) != 0)
		return rv;
	uint64_t t1 = qkdn_now_ms();
	if ((rv = rnet_wait_key(n, RNET_TOPUP_BYTES)) != 0 ||
	    (rv = rnet_link_run(n, false)) != 0)
		return rv;
	uint64_t t2 = qkdn_now_ms();
	bench_sleep_ms(200); /* blocks in flight */
	wait_relays(n, r, &ready_ms);
	bench_say(o, "controller = %s: %s, 5 KMs, qkdsim; run dir %s",
	          rnet_mode_word(mode),
	          mode == RNET_CENTRALIZED ? "1 central controller"
	                                   : "5 controllers, one per node",
	          n->dir);
	bench_say(o,
	          "  daemons answered in %llu ms, %.0f MiB of key on every "
	          "link %llu ms later (then paused);",
	          (unsigned long long)(t1 - t0), RNET_TOPUP_BYTES / MIB,
	          (unsigned long long)(t2 - t1));
	bench_say(o,
	          "  first request over each of 1..4 hops done %llu ms "
	          "after that",
	          (unsigned long long)ready_ms);
	cJSON *jn = cJSON_AddObjectToObject(jm, "network");
	cJSON_AddNumberToObject(jn, "start_ms", (double)(t1 - t0));
	cJSON_AddNumberToObject(jn, "key_ms", (double)(t2 - t1));
	cJSON_AddNumberToObject(jn, "relays_ready_ms", (double)ready_ms);
	cJSON_AddNumberToObject(jn, "controllers", n->n_ctl);
	cJSON_AddStringToObject(jn, "run_dir", n->dir);
	cJSON *jf = cJSON_AddArrayToObject(jn, "failed_hops");
	for (int h = 1; h <= RNET_HOPS_MAX; h++)
		if (!r->ok[h]) {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddNumberToObject(e, "hops", h);
			cJSON_AddStringToObject(e, "error", r->why[h]);
			cJSON_AddItemToArray(jf, e);
			bench_say(o, "  relays over %d hop%s FAILED: %s", h,
			          h > 1 ? "s" : "", r->why[h]);
		}
	bench_blank(o);
	if ((rv = run_latency(o, n, op, echo_url, kf, r, jm)) != 0)
		return rv;
	bench_blank(o);
	if ((rv = run_throughput(o, n, op, r, jm)) != 0)
		return rv;
	bench_blank(o);
	struct aim_figs a;
	aims_of(op, kf, r, &a);
	say_aims(o, op, &a, jm);
	bench_blank(o);
	r->measured = true;
	return 0;
}

/* ---- the command ---- */

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: qkdn-bench relay [--seconds S] [--mode "
	        "distributed|centralized|both]\n"
	        "                        [--batches N,N,...] [--clients "
	        "N,...] [--json] [--keep]\n"
	        "  --seconds S     each keys/s line (default 2); the latency "
	        "rounds of each\n"
	        "                  batch size take 2S, each Kx floor line "
	        "S/2\n"
	        "  --mode WHICH    controller mode of the line network "
	        "(default both, one after\n"
	        "                  the other)\n"
	        "  --batches LIST  keys per request (default 1,64,512; each "
	        "1..%d)\n"
	        "  --clients LIST  concurrent clients of the keys/s lines "
	        "(default 4; each 1..%d)\n"
	        "  --json          one JSON document on stdout instead of "
	        "text\n"
	        "  --keep          keep the run directory (network files, "
	        "logs, stores)\n",
	        QKDN_AK_KEYS_MAX, RNET_PAIRS_MAX);
}

static int
parse(struct opts *o, int argc, char **argv)
{
	const struct bench_opt opts[] = {
	    {"seconds", BENCH_OPT_SECONDS, .dst = &o->seconds, .min = 0.2},
	    {"mode", BENCH_OPT_CHOICE, .dst = &o->mode, .choices = mode_words},
	    {"batches", BENCH_OPT_LIST, .dst = o->batches, .n = &o->n_batches,
	     .max = BATCHES_MAX, .hi = QKDN_AK_KEYS_MAX, .dflt = "1,64,512"},
	    {"clients", BENCH_OPT_LIST, .dst = o->clients, .n = &o->n_clients,
	     .max = CLIENT_LISTS, .hi = RNET_PAIRS_MAX, .dflt = "4"},
	    {"json", BENCH_OPT_FLAG, .dst = &o->json, .value = true},
	    {"keep", BENCH_OPT_FLAG, .dst = &o->keep, .value = true},
	    {"help", BENCH_OPT_HELP, .dst = NULL},
	};
	*o = (struct opts){.seconds = 2, .mode = MODE_BOTH};
	return bench_parse("relay", usage, opts, sizeof(opts) / sizeof(opts[0]),
	                   argc, argv);
}

static void
list_text(char *out, size_t len, const int *v, int n)
{
	size_t at = 0;
	out[0] = '\0';
	for (int i = 0; i < n && at < len; i++)
		at += (size_t)snprintf(out + at, len - at, "%s%d", i ? "," : "",
		                       v[i]);
}

static void
say_header(const struct bench_out *o, const struct opts *op,
           const struct bench_net *n)
{
	char b[64], c[64];
	list_text(b, sizeof(b), op->batches, op->n_batches);
	list_text(c, sizeof(c), op->clients, op->n_clients);
	bench_say(o,
	          "qkdn-bench relay: %.1f s per keys/s line, controller mode "
	          "%s, %d-bit keys, %s keys a request,",
	          op->seconds, mode_words[op->mode], KEY_BITS, b);
	bench_say(o, "  %s clients for keys/s", c);
	bench_say(o,
	          "network: a line N1 - N2 - N3 - N4 - N5, links at %llu "
	          "Mbit/s in %d-byte blocks, Kx tcp://127.0.0.1,",
	          RNET_RATE_BPS / 1000000, BENCH_NET_BLOCK_BYTES);
	bench_say(o, "  Ak, Ck and Cx ipc://; alice at N1, bob at N2, carol at "
	             "N3, dave at N4, erin at N5 (1..4 hops);");
	bench_say(o, "  run dir %s", n->dir);
	cJSON *j = bench_header_end(o, op->seconds);
	cJSON_AddStringToObject(j, "mode", mode_words[op->mode]);
	cJSON_AddItemToObject(j, "batches",
	                      cJSON_CreateIntArray(op->batches, op->n_batches));
	cJSON_AddItemToObject(j, "clients",
	                      cJSON_CreateIntArray(op->clients, op->n_clients));
	cJSON_AddNumberToObject(j, "key_bits", KEY_BITS);
	cJSON_AddNumberToObject(j, "nodes", RNET_NODES);
	cJSON_AddNumberToObject(j, "rate_bps", (double)RNET_RATE_BPS);
	cJSON_AddNumberToObject(j, "block_bytes", BENCH_NET_BLOCK_BYTES);
	cJSON_AddStringToObject(j, "run_dir", n->dir);
	cJSON *a = cJSON_AddObjectToObject(o->root, "aims");
	cJSON_AddNumberToObject(a, "keys_per_s_3_hops_batched", AIM_KEYS_PER_S);
	cJSON_AddNumberToObject(a, "per_added_hop_x_kx_floor", AIM_HOP_X);
	cJSON_AddNumberToObject(a, "efficiency_x_hops_bulk", AIM_EFF_X);
	cJSON_AddNumberToObject(a, "route_1000_nodes_us", AIM_ROUTE_US);
}

/* With both modes: the aims side by side. */
static void
say_summary(const struct bench_out *o, const struct opts *op,
            const struct kx_floor *kf, const struct mode_res *r,
            const struct route_timing *rt)
{
	struct aim_figs a[2];
	char k[2][32], q[32];
	for (int m = 0; m < 2; m++)
		aims_of(op, kf, &r[m], &a[m]);
	bench_say(o, "summary                                  distributed  "
	             "centralized   aim");
	bench_say(o,
	          "  keys/s over %d hops, batched            %11s  %11s   "
	          ">= %s",
	          AIM_HOPS, a[0].have_kps ? bench_group(k[0], a[0].kps3) : "-",
	          a[1].have_kps ? bench_group(k[1], a[1].kps3) : "-",
	          bench_group(q, AIM_KEYS_PER_S));
	for (int b = 0; b < op->n_batches; b++)
		bench_say(o,
		          "  per added hop / Kx RTT, %4d key%s       %10.2fx  "
		          "%10.2fx   <= %.1fx",
		          op->batches[b], op->batches[b] > 1 ? "s" : " ",
		          a[0].hop_x[b], a[1].hop_x[b], AIM_HOP_X);
	bench_say(o,
	          "  efficiency x hops, %4d keys            %11.3f  %11.3f "
	          "  >= %.2f",
	          a[0].have_eff ? a[0].eff_keys : a[1].eff_keys, a[0].eff_bulk,
	          a[1].eff_bulk, AIM_EFF_X);
	if (rt->available)
		bench_say(o,
		          "  route on %u nodes, p50                  %8.1f us "
		          "(one module)   < %d us",
		          rt->nodes, rt->best_p50_us, AIM_ROUTE_US);
	bench_blank(o);
}

/* A length of relay that never worked makes the run fail (exit 1); it and
 * requests that failed now and then keep the run directory, whose logs
 * say more. The figures that were measured are printed either way. */
static bool
any_failed(const struct mode_res *r, int nm)
{
	for (int m = 0; m < nm; m++)
		for (int h = 1; h <= RNET_HOPS_MAX; h++)
			if (r[m].measured && !r[m].ok[h])
				return true;
	return false;
}

static uint64_t
any_errors(const struct mode_res *r, int nm)
{
	uint64_t e = 0;
	for (int m = 0; m < nm; m++)
		e += r[m].errors;
	return e;
}

int
bench_relay(int argc, char **argv)
{
	struct opts op;
	struct bench_out o = {0};
	struct bench_net *n = calloc(1, sizeof(*n));
	struct kx_floor kf[BATCHES_MAX];
	struct route_timing rt;
	struct mode_res res[2];
	struct rnet nets[2];
	int rv = parse(&op, argc, argv), nm = 0;
	char url[64];
	memset(nets, 0, sizeof(nets));
	memset(res, 0, sizeof(res));
	if (rv != 0 || n == NULL) {
		free(n);
		return rv == 1 ? 0 : 2;
	}
	if ((rv = bench_begin(&o, op.json, n)) != 0)
		goto out;
	say_header(&o, &op, n);
	/* the floor's echo server before any nng thread of this process */
	int port = bench_free_port();
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	if (port < 0 || (rv = bench_echo_start_url(&n->echo, url)) != 0) {
		rv = rv ? rv : QKDN_E_IO;
		goto out;
	}
	/* the echo server stays up: (c) makes a floor round trip before
	 * each round of requests */
	if ((rv = run_kx_floor(&o, &op, &n->echo, kf)) != 0)
		goto out;
	/* routing demand: the bulk batch's bytes per hop */
	if ((rv = run_routing(&o, (uint32_t)op.batches[op.n_batches - 1],
	                      &rt)) != 0)
		goto out;
	cJSON_AddObjectToObject(o.root, "modes");
	for (int m = 0; m < 2 && rv == 0; m++) {
		if (op.mode != MODE_BOTH && op.mode != m)
			continue;
		rv = run_mode(&o, n, &op, (enum rnet_mode)m, n->echo.url, kf,
		              &res[m], &nets[m]);
		if (rv != 0)
			rnet_log_tails(&nets[m], 10);
		rnet_stop(&nets[m]);
		nm = m + 1;
	}
	if (rv == 0 && op.mode == MODE_BOTH)
		say_summary(&o, &op, kf, res, &rt);
out:
	for (int m = 0; m < 2; m++) {
		rnet_stop(&nets[m]);
		rnet_free(&nets[m]);
	}
	bench_echo_stop(&n->echo);
	bench_net_stop(n);
	bool failed = rv == 0 && any_failed(res, nm);
	uint64_t errors = rv == 0 ? any_errors(res, nm) : 0;
	if (failed)
		bench_note("some relays never worked (see above)");
	else if (errors > 0)
		bench_note("%llu requests failed (see above)",
		           (unsigned long long)errors);
	int status = bench_finish(&o, n, rv, op.keep || failed || errors > 0);
	return failed ? 1 : status;
}
