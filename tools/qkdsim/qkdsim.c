/* qkdn-qkdsim: the QKD-module emulator, standing in for the quantum layer.
 *
 * For every link of the network file it makes fresh random key blocks at
 * the link's secret key rate and pushes each block, with the same block ID,
 * to the KMs at both ends (Kq-1, nng push/pull). It never waits for a KM: a
 * block an end cannot take is dropped for that end, as a real QKD module
 * would lose key its KM does not collect. A REP socket on the network's
 * "sim" address pauses and resumes links and reports counters.
 *
 *   qkdn-qkdsim --config FILE [--run-dir DIR]
 */
#include "qkdn_cmdline.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_msg.h"
#include "qkdn_netconf.h"
#include "qkdn_rpc.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/reqrep0/rep.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SRC             "qkdsim"
#define TICK_NS         10000000L /* 10 ms: the emulated hardware's clock */
#define SEND_BUF        1024  /* blocks queued per end while its KM is away */
#define TICK_BLOCKS_MAX 1024  /* a faster link is clipped, not a busy loop */
#define CTL_MSG_MAX     65536 /* control requests are small */

struct end {
	nng_socket push;
	uint64_t dropped;   /* blocks this end did not take */
	bool dropping;      /* for logging only the changes */
	double last_drop_s; /* monotonic time of the last drop */
};

struct link {
	const struct qkdn_net_link *cfg;
	qkdn_name peer; /* "<nodeA>-<nodeB>" for status */
	struct end end[2];
	uint64_t next_id;
	double bits_due; /* key generated but not yet a whole block */
	bool paused;
	bool clipped;
	uint64_t blocks;          /* blocks generated */
	uint64_t delivered_bytes; /* taken by both ends */
	uint64_t dropped_bytes;   /* not taken by at least one end */
};

struct sim {
	struct qkdn_net *net;
	struct link *links;
	nng_socket ctl;
	uint8_t *block;  /* key bytes of the block being sent */
	uint64_t errors; /* error replies sent */
	double now_s;    /* monotonic time of this tick */
};

static uint64_t
unix_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static double
mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* mkdir -p: the control socket lives in the run directory. */
static int
make_dirs(const char *path)
{
	char p[QKDN_NET_PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			return -1;
		if (c == '\0')
			return 0;
		*s = c;
	}
}

/* ---- key delivery ---- */

static int
open_end(struct link *l, int e, const struct qkdn_net_node *node)
{
	nng_socket *s = &l->end[e].push;
	int rv;
	if ((rv = nng_push0_open(s)) != 0)
		return rv;
	if ((rv = nng_socket_set_int(*s, NNG_OPT_SENDBUF, SEND_BUF)) != 0)
		return rv;
	/* Find a KM soon after it starts or restarts. */
	nng_socket_set_ms(*s, NNG_OPT_RECONNMINT, 10);
	nng_socket_set_ms(*s, NNG_OPT_RECONNMAXT, 500);
	return nng_dial(*s, node->kq_url, NULL, NNG_FLAG_NONBLOCK);
}

/* Log when an end starts dropping, and when it has taken every block for a
 * second: a KM slightly slower than its link would otherwise flood the log
 * with every full/not-full change of its queue. */
static void
note_end(struct sim *sim, struct link *l, int e, bool taken)
{
	struct end *end = &l->end[e];
	const char *node = sim->net->nodes[l->cfg->node[e]].id;
	if (!taken) {
		end->dropped++;
		end->last_drop_s = sim->now_s;
		if (!end->dropping)
			QLOG_WARN(SRC,
			          "link %s: KM %s is not taking key blocks; "
			          "dropping them for it",
			          l->cfg->id, node);
		end->dropping = true;
	} else if (end->dropping && sim->now_s - end->last_drop_s >= 1.0) {
		QLOG_INFO(SRC,
		          "link %s: KM %s takes key blocks again "
		          "(%llu dropped so far)",
		          l->cfg->id, node, (unsigned long long)end->dropped);
		end->dropping = false;
	}
}

/* One fresh block, the same bytes and ID to both ends. */
static int
send_block(struct sim *sim, struct link *l)
{
	struct qkdn_msg m = {.type = QKDN_LINK_BLOCK};
	nng_msg *nm[2] = {NULL, NULL};
	uint32_t n = l->cfg->block_bytes;
	bool taken[2] = {false, false};
	int rv;

	randombytes_buf(sim->block, n);
	memcpy(m.u.link_block.link, l->cfg->id, sizeof(qkdn_name));
	m.u.link_block.block_id = l->next_id;
	m.u.link_block.bytes.len = n;
	m.u.link_block.bytes.ptr = sim->block;
	rv = qkdn_rpc_pack(&m, &nm[0]);
	if (rv == 0 && nng_msg_dup(&nm[1], nm[0]) != 0)
		rv = QKDN_E_NOMEM;
	sodium_memzero(sim->block, n);
	if (rv != 0) {
		qkdn_rpc_free_wiped(nm[0]);
		return rv;
	}
	/* nng frees a sent message without wiping it: its copy of the key
	 * lives on in freed heap memory, which this process cannot avoid. */
	for (int e = 0; e < 2; e++) {
		taken[e] =
		    nng_sendmsg(l->end[e].push, nm[e], NNG_FLAG_NONBLOCK) == 0;
		if (!taken[e])
			qkdn_rpc_free_wiped(nm[e]);
		note_end(sim, l, e, taken[e]);
	}
	l->next_id++;
	l->blocks++;
	if (taken[0] && taken[1])
		l->delivered_bytes += n;
	else
		l->dropped_bytes += n;
	return 0;
}

static void
tick_link(struct sim *sim, struct link *l, double elapsed_s)
{
	double block_bits = 8.0 * l->cfg->block_bytes;
	if (l->paused || l->cfg->kme[0].url[0] != '\0')
		return; /* a link fed by its KMEs is not emulated */
	l->bits_due += (double)l->cfg->rate_bps * elapsed_s;
	uint64_t due = (uint64_t)(l->bits_due / block_bits);
	if (due > TICK_BLOCKS_MAX) {
		if (!l->clipped)
			QLOG_WARN(
			    SRC,
			    "link %s: %llu bit/s is more than the "
			    "emulator makes; clipped to %d blocks per tick",
			    l->cfg->id, (unsigned long long)l->cfg->rate_bps,
			    TICK_BLOCKS_MAX);
		l->clipped = true;
		due = TICK_BLOCKS_MAX;
		l->bits_due = (double)due * block_bits;
	}
	for (uint64_t i = 0; i < due; i++) {
		int rv = send_block(sim, l);
		if (rv != 0) {
			QLOG_ERR(SRC, "link %s: cannot build a block: %s",
			         l->cfg->id, qkdn_strerror(rv));
			break;
		}
		l->bits_due -= block_bits;
	}
}

/* ---- control ---- */

static int
on_link_ctl(struct sim *sim, const struct qkdn_msg *req, struct qkdn_msg *rsp)
{
	const struct qkdn_link_ctl *c = &req->u.link_ctl;
	int i = qkdn_net_link_index(sim->net, c->link);
	if (i < 0) {
		char why[QKDN_REASON_MAX];
		snprintf(why, sizeof(why), "unknown link '%s'", c->link);
		qkdn_rpc_error(rsp, req->req_id, QKDN_E_BAD_REQUEST, why);
		return 0;
	}
	struct link *l = &sim->links[i];
	bool pause = c->action == QKDN_LINK_PAUSE;
	if (pause != l->paused)
		QLOG_INFO(SRC, "link %s %s", l->cfg->id,
		          pause ? "paused" : "resumed");
	l->paused = pause;
	rsp->type = QKDN_ACK;
	rsp->req_id = req->req_id;
	rsp->u.ack.result = 0;
	return 0;
}

static int
on_status(struct sim *sim, const struct qkdn_msg *req, struct qkdn_msg *rsp)
{
	struct qkdn_status_rsp *s = &rsp->u.status_rsp;
	/* A status reply holds at most QKDN_LINKS_MAX links. */
	size_t n = sim->net->n_links < QKDN_LINKS_MAX ? sim->net->n_links
	                                              : QKDN_LINKS_MAX;
	rsp->type = QKDN_STATUS_RSP;
	rsp->req_id = req->req_id;
	snprintf(s->node, sizeof(s->node), "qkdsim");
	s->errors = sim->errors;
	s->n_links = (uint32_t)n;
	s->links = n > 0 ? qkdn_msg_alloc(rsp, n * sizeof(*s->links)) : NULL;
	if (n > 0 && s->links == NULL)
		return QKDN_E_NOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct link *l = &sim->links[i];
		struct qkdn_link_status *ls = &s->links[i];
		memcpy(ls->link, l->cfg->id, sizeof(qkdn_name));
		memcpy(ls->peer, l->peer, sizeof(qkdn_name));
		ls->out_bytes = l->delivered_bytes;
		ls->in_bytes = l->dropped_bytes;
		ls->blocks = l->blocks;
		ls->up = l->paused ? 0 : 1;
	}
	return 0;
}

static const struct {
	uint32_t type;
	int (*fn)(struct sim *, const struct qkdn_msg *, struct qkdn_msg *);
} handlers[] = {
    {QKDN_LINK_CTL, on_link_ctl},
    {QKDN_STATUS_REQ, on_status},
};

static void
answer(struct sim *sim, nng_msg *in)
{
	struct qkdn_msg req, rsp;
	struct qkdn_decode_error derr = {0};
	nng_msg *out = NULL;
	int rv;

	memset(&rsp, 0, sizeof(rsp));
	if ((rv = qkdn_rpc_unpack(in, &req, &derr)) != 0) {
		QLOG_WARN(SRC, "bad control request: %s", derr.reason);
		qkdn_rpc_error(&rsp, 0, rv, derr.reason);
	} else {
		size_t i = 0;
		while (i < sizeof(handlers) / sizeof(handlers[0]) &&
		       handlers[i].type != req.type)
			i++;
		if (i == sizeof(handlers) / sizeof(handlers[0]))
			qkdn_rpc_error(&rsp, req.req_id, QKDN_E_UNSUPPORTED,
			               "the emulator answers only status and "
			               "link control");
		else if ((rv = handlers[i].fn(sim, &req, &rsp)) != 0) {
			qkdn_msg_clear(&rsp);
			qkdn_rpc_error(&rsp, req.req_id, rv, NULL);
		}
	}
	if (rsp.type == QKDN_ERROR)
		sim->errors++;
	nng_msg_free(in);
	if ((rv = qkdn_rpc_pack(&rsp, &out)) != 0)
		QLOG_ERR(SRC, "cannot encode a reply: %s", qkdn_strerror(rv));
	else if (nng_sendmsg(sim->ctl, out, NNG_FLAG_NONBLOCK) != 0)
		nng_msg_free(out); /* the client left; nothing to do */
	qkdn_msg_clear(&req);
	qkdn_msg_clear(&rsp);
}

/* Answer every waiting control request; never wait for one. */
static void
serve_ctl(struct sim *sim)
{
	nng_msg *in;
	while (nng_recvmsg(sim->ctl, &in, NNG_FLAG_NONBLOCK) == 0)
		answer(sim, in);
}

/* ---- setup ---- */

static int
open_sim(struct sim *sim)
{
	const struct qkdn_net *net = sim->net;
	int rv;

	if (make_dirs(net->run_dir) != 0) {
		QLOG_ERR(SRC, "cannot create %s: %s", net->run_dir,
		         strerror(errno));
		return QKDN_E_IO;
	}
	/* Only the emulator's user may pause links, whatever the umask. */
	nng_listener lst;
	if ((rv = nng_rep0_open(&sim->ctl)) != 0 ||
	    (rv = nng_socket_set_size(sim->ctl, NNG_OPT_RECVMAXSZ,
	                              CTL_MSG_MAX)) != 0 ||
	    (rv = nng_listener_create(&lst, sim->ctl, net->sim_url)) != 0 ||
	    (strncmp(net->sim_url, "ipc://", 6) == 0 &&
	     (rv = nng_listener_set_int(lst, NNG_OPT_IPC_PERMISSIONS, 0600)) !=
	         0) ||
	    (rv = nng_listener_start(lst, 0)) != 0) {
		QLOG_ERR(SRC, "cannot listen on %s: %s", net->sim_url,
		         nng_strerror(rv));
		return qkdn_err_from_nng(rv);
	}
	uint64_t first_id = unix_us();
	for (size_t i = 0; i < net->n_links; i++) {
		struct link *l = &sim->links[i];
		const struct qkdn_net_node *a = &net->nodes[l->cfg->node[0]],
		                           *b = &net->nodes[l->cfg->node[1]];
		/* IDs from the clock stay monotonic across restarts. */
		l->next_id = first_id;
		/* snprintf truncates a long pair to fit a name */
		if (snprintf(l->peer, sizeof(l->peer), "%s-%s", a->id, b->id) <
		    0)
			return QKDN_E_INTERNAL;
		if (l->cfg->kme[0].url[0] != '\0') {
			QLOG_INFO(SRC,
			          "link %s: fed by its KME %s, not emulated",
			          l->cfg->id, l->cfg->kme[0].url);
			continue;
		}
		for (int e = 0; e < 2; e++) {
			const struct qkdn_net_node *node = e == 0 ? a : b;
			if ((rv = open_end(l, e, node)) != 0) {
				QLOG_ERR(SRC, "link %s: cannot dial %s: %s",
				         l->cfg->id, node->kq_url,
				         nng_strerror(rv));
				return qkdn_err_from_nng(rv);
			}
		}
		QLOG_INFO(SRC,
		          "link %s: %s <-> %s, %llu bit/s in %u-byte blocks, "
		          "first block %llu",
		          l->cfg->id, a->id, b->id,
		          (unsigned long long)l->cfg->rate_bps,
		          l->cfg->block_bytes, (unsigned long long)l->next_id);
	}
	return 0;
}

static void
close_sim(struct sim *sim)
{
	nng_close(sim->ctl);
	for (size_t i = 0; sim->links != NULL && i < sim->net->n_links; i++) {
		const struct link *l = &sim->links[i];
		nng_close(l->end[0].push);
		nng_close(l->end[1].push);
		QLOG_INFO(SRC,
		          "link %s: %llu blocks, %llu bytes delivered, "
		          "%llu bytes dropped",
		          l->cfg->id, (unsigned long long)l->blocks,
		          (unsigned long long)l->delivered_bytes,
		          (unsigned long long)l->dropped_bytes);
	}
}

static void
run(struct sim *sim)
{
	struct timespec next;
	double last = mono_s();

	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!qkdn_stopping()) {
		serve_ctl(sim);
		double now = mono_s(), elapsed = now - last;
		last = now;
		sim->now_s = now;
		/* If the process was stopped, so was the emulated hardware. */
		if (elapsed > 1.0)
			elapsed = 1.0;
		for (size_t i = 0; i < sim->net->n_links; i++)
			tick_link(sim, &sim->links[i], elapsed);

		/* Absolute deadlines keep the tick from drifting; after a
		 * late tick start again from now instead of catching up. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		next.tv_nsec += TICK_NS;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		if (next.tv_sec < ts.tv_sec ||
		    (next.tv_sec == ts.tv_sec && next.tv_nsec < ts.tv_nsec))
			next = ts;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
}

int
main(int argc, char **argv)
{
	struct qkdn_cmdline cl;
	struct sim sim = {0};
	char err[QKDN_REASON_MAX + QKDN_NET_PATH_MAX];
	int status = 1, done;

	qkdn_log_set_ident("qkdsim");
	if ((done = qkdn_cmdline_parse(&cl, "qkdn-qkdsim", QKDN_NODE_NONE, argc,
	                               argv)) >= 0)
		return done;
	if ((sim.net = calloc(1, sizeof(*sim.net))) == NULL)
		return 1;
	if (qkdn_net_load(cl.config, cl.run_dir, sim.net, err, sizeof(err)) !=
	    0) {
		fprintf(stderr, "%s\n", err);
		free(sim.net);
		return 2;
	}

	qkdn_stop_on_signals();

	if (sodium_init() < 0 ||
	    (sim.block = sodium_malloc(QKDN_BLOCK_BYTES_MAX)) == NULL ||
	    (sim.links = calloc(sim.net->n_links + 1, sizeof(*sim.links))) ==
	        NULL) {
		QLOG_ERR(SRC, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < sim.net->n_links; i++)
		sim.links[i].cfg = &sim.net->links[i];
	if (open_sim(&sim) != 0)
		goto out;
	QLOG_INFO(SRC, "emulating %zu links; control on %s", sim.net->n_links,
	          sim.net->sim_url);
	run(&sim);
	QLOG_INFO(SRC, "stopping");
	status = 0;
out:
	close_sim(&sim);
	sodium_free(sim.block);
	free(sim.links);
	free(sim.net);
	return status;
}
