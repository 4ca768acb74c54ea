/* Talks to a qkdn-controller the way KMs and the CLI do, one request per
 * run, and prints the reply as one line (or a few) for a test to match:
 *
 *   ctl_feed URL ls ORIGIN SEQ MAX_AGE_MS [LINK:PEER:UP:OUT ...]
 *       LINK_STATE (111)           -> "ack VERSION"
 *   ctl_feed URL route SRC DST BYTES
 *       ROUTE_QUERY (112)          -> "version V routes N" and
 *                                     "route NODE NODE ..." per route
 *   ctl_feed URL nexthop HERE DST BYTES
 *       NEXT_HOP_REQ (14)          -> "next NODE link LINK version V" or
 *                                     "no_route version V"
 *   ctl_feed URL notif SRC DST COUNT BITS
 *       RELAY_REQ_NOTIF (17)       -> as route, with "relay_id ok"
 *   ctl_feed URL done RESULT
 *       RELAY_REQ_RSP (20)         -> "ack"
 *   ctl_feed URL reserve SRC DST SRC_SAE DST_SAE COUNT BITS
 *       RELAY_REQ_NOTIF, reserve=1 -> "alloc N IDS"
 *   ctl_feed URL status
 *       STATUS_REQ (101)           -> "node N central C version V nexthop N
 *                                     relreq N relrsp N reserve N alloc N
 *                                     updates N" and per link "link L A B
 *                                     up U aout N bout N rate N age MS"
 *
 * An ERROR reply prints "error NAME: REASON" and exits 1; bad usage exits
 * 2; no answer within 5 s exits 3.
 *
 *   ctl_feed URL km LINK [RELAY_RESULT]
 *       plays a KM's Kx for I.4b until SIGTERM, one line per request:
 *       21 -> "reserve RESID COUNT BITS NEXT TTL", 22 with COUNT IDs on
 *       LINK; 18 -> "relay RESID ROUTE0 IDS N LINK L SEGS N", 20 with
 *       RELAY_RESULT (default 0); 23 -> "alloc RESID SRC DST", 24 with the
 *       reserved IDs; 110 -> "release RESID", ACK. */
#include "qkdn_err.h"
#include "qkdn_rpc.h"
#include "qkdn_server.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALL_MS 5000

static int
usage(void)
{
	fprintf(stderr, "usage: ctl_feed URL ls|route|nexthop|notif|done|"
	                "reserve|status|km ARGS... (see the source)\n");
	return 2;
}

static int
name(qkdn_name dst, const char *src)
{
	if (qkdn_name_set(dst, src) != 0) {
		fprintf(stderr, "ctl_feed: bad name '%s'\n", src);
		return -1;
	}
	return 0;
}

/* LINK:PEER:UP:OUT, a = origin */
static int
link_arg(struct qkdn_link_state *l, const char *origin, const char *arg)
{
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", arg);
	char *lk = strtok_r(buf, ":", &save),
	     *peer = strtok_r(NULL, ":", &save);
	char *up = strtok_r(NULL, ":", &save),
	     *out = strtok_r(NULL, ":", &save);
	if (out == NULL || name(l->link, lk) != 0 || name(l->a, origin) != 0 ||
	    name(l->b, peer) != 0) {
		fprintf(stderr, "ctl_feed: bad link '%s'\n", arg);
		return -1;
	}
	l->up = (uint32_t)strtoul(up, NULL, 10);
	l->a_out = strtoull(out, NULL, 10);
	return 0;
}

static void
print_routes(const struct qkdn_relay_req *r)
{
	printf("version %llu routes %u\n", (unsigned long long)r->version,
	       r->routes.n);
	for (uint32_t i = 0; i < r->routes.n; i++) {
		printf("route");
		for (uint32_t k = 0; k < r->routes.v[i].nodes.n; k++)
			printf(" %s", r->routes.v[i].nodes.v[k]);
		printf("\n");
	}
}

static void
print_status(const struct qkdn_ctl_status *s)
{
	printf("node %s central %u version %llu nexthop %llu relreq %llu "
	       "relrsp %llu reserve %llu alloc %llu updates %llu\n",
	       s->node, s->centralized, (unsigned long long)s->version,
	       (unsigned long long)s->next_hop_reqs,
	       (unsigned long long)s->relay_req_notifs,
	       (unsigned long long)s->relay_req_rsps,
	       (unsigned long long)s->reservations,
	       (unsigned long long)s->allocations,
	       (unsigned long long)s->updates);
	for (uint32_t i = 0; i < s->links.n; i++) {
		const struct qkdn_link_state *l = &s->links.v[i];
		printf("link %s %s %s up %u aout %llu bout %llu rate %llu age "
		       "%u\n",
		       l->link, l->a, l->b, l->up, (unsigned long long)l->a_out,
		       (unsigned long long)l->b_out,
		       (unsigned long long)l->rate_bps, l->age_ms);
	}
}

/* Fill req from the command line; 0, or an exit status. */
static int
build(struct qkdn_msg *m, const char *cmd, int argc, char **argv)
{
	if (strcmp(cmd, "ls") == 0 && argc >= 3) {
		struct qkdn_link_state_update *u = &m->u.link_state;
		m->type = QKDN_LINK_STATE;
		if (name(u->origin, argv[0]) != 0)
			return 2;
		u->seq = strtoull(argv[1], NULL, 10);
		u->max_age_ms = (uint32_t)strtoul(argv[2], NULL, 10);
		u->links.n = (uint32_t)(argc - 3);
		if (u->links.n > 0 &&
		    (u->links.v = qkdn_msg_alloc(
		         m, u->links.n * sizeof(*u->links.v))) == NULL)
			return 1;
		for (uint32_t i = 0; i < u->links.n; i++)
			if (link_arg(&u->links.v[i], argv[0], argv[3 + i]) != 0)
				return 2;
		return 0;
	}
	if (strcmp(cmd, "route") == 0 && argc == 3) {
		m->type = QKDN_ROUTE_QUERY;
		if (name(m->u.route_query.src_node, argv[0]) != 0 ||
		    name(m->u.route_query.dst_node, argv[1]) != 0)
			return 2;
		m->u.route_query.bytes = strtoull(argv[2], NULL, 10);
		return 0;
	}
	if (strcmp(cmd, "nexthop") == 0 && argc == 3) {
		m->type = QKDN_NEXT_HOP_REQ;
		qkdn_uuid_random(&m->u.next_hop_req.relay_id);
		if (name(m->u.next_hop_req.here, argv[0]) != 0 ||
		    name(m->u.next_hop_req.dst_node, argv[1]) != 0)
			return 2;
		m->u.next_hop_req.bytes = strtoull(argv[2], NULL, 10);
		return 0;
	}
	bool reserve = strcmp(cmd, "reserve") == 0 && argc == 6;
	if ((strcmp(cmd, "notif") == 0 && argc == 4) || reserve) {
		struct qkdn_relay_req_notif *n = &m->u.relay_req_notif;
		m->type = QKDN_RELAY_REQ_NOTIF;
		qkdn_uuid_random(&n->relay_id);
		if (name(n->src_node, argv[0]) != 0 ||
		    name(n->dst_node, argv[1]) != 0)
			return 2;
		if (reserve && (name(n->src_sae, argv[2]) != 0 ||
		                name(n->dst_sae, argv[3]) != 0))
			return 2;
		n->count = (uint32_t)strtoul(argv[reserve ? 4 : 2], NULL, 10);
		n->bits = (uint32_t)strtoul(argv[reserve ? 5 : 3], NULL, 10);
		n->reserve = reserve;
		return 0;
	}
	if (strcmp(cmd, "done") == 0 && argc == 1) {
		m->type = QKDN_RELAY_REQ_RSP;
		qkdn_uuid_random(&m->u.relay_req_rsp.relay_id);
		m->u.relay_req_rsp.result = (int32_t)strtol(argv[0], NULL, 10);
		return 0;
	}
	if (strcmp(cmd, "status") == 0 && argc == 0) {
		m->type = QKDN_STATUS_REQ;
		return 0;
	}
	return usage();
}

/* ---- a KM's Kx for I.4b ---- */

static struct {
	pthread_mutex_t mtx;
	const char *link;
	int32_t relay_result;
	uint32_t n_ids;
	qkdn_uuid ids[QKDN_KEYS_MAX];
} km = {.mtx = PTHREAD_MUTEX_INITIALIZER};

static void
say(const char *what, const qkdn_uuid *resid, const char *rest)
{
	char id[37];
	qkdn_uuid_format(resid, id);
	printf("%s %s%s\n", what, id, rest);
	fflush(stdout);
}

static void
on_reserve(struct qkdn_server_req *r, struct qkdn_msg *req)
{
	const struct qkdn_reserve_req *q = &req->u.reserve_req;
	struct qkdn_msg rsp = {.type = QKDN_RESERVE_RSP};
	struct qkdn_reserve_rsp *p = &rsp.u.reserve_rsp;
	char rest[256];
	snprintf(rest, sizeof(rest), " %u %u %s %u", q->count, q->bits,
	         q->next_hop, q->ttl_ms);
	say("reserve", &q->reservation_id, rest);
	p->reservation_id = q->reservation_id;
	p->ids.v = qkdn_msg_alloc(&rsp, q->count * sizeof(qkdn_uuid));
	p->segs.v = qkdn_msg_alloc(&rsp, sizeof(*p->segs.v));
	if (p->ids.v == NULL || p->segs.v == NULL) {
		qkdn_msg_clear(&rsp);
		qkdn_server_error(r, QKDN_E_NOMEM, "fake KM");
		return;
	}
	p->ids.n = q->count;
	qkdn_uuid_v7(p->ids.v, q->count);
	snprintf(p->link, sizeof(p->link), "%s", km.link);
	p->segs.n = 1;
	p->segs.v[0] = (struct qkdn_segment){
	    .block_id = 1, .offset = 0, .len = q->count * (q->bits / 8) + 64};
	pthread_mutex_lock(&km.mtx);
	km.n_ids = q->count;
	memcpy(km.ids, p->ids.v, q->count * sizeof(qkdn_uuid));
	pthread_mutex_unlock(&km.mtx);
	qkdn_server_reply(r, &rsp);
}

static void
on_relay(struct qkdn_server_req *r, struct qkdn_msg *req)
{
	const struct qkdn_relay_req *q = &req->u.relay_req;
	char rest[512] = "";
	size_t n = 0;
	for (uint32_t k = 0; q->routes.n > 0 && k < q->routes.v[0].nodes.n; k++)
		n += (size_t)snprintf(rest + n, sizeof(rest) - n, " %s",
		                      q->routes.v[0].nodes.v[k]);
	snprintf(rest + n, sizeof(rest) - n,
	         " ids %u link %s segs %u src %s dst %s bits %u rid %s",
	         q->ids.n, q->link, q->segs.n, q->src_sae, q->dst_sae, q->bits,
	         memcmp(&q->relay_id, &q->reservation_id, 16) == 0 ? "=resid"
	                                                           : "other");
	say("relay", &q->reservation_id, rest);
	struct qkdn_msg rsp = {.type = QKDN_RELAY_REQ_RSP};
	rsp.u.relay_req_rsp.relay_id = q->relay_id;
	rsp.u.relay_req_rsp.reservation_id = q->reservation_id;
	rsp.u.relay_req_rsp.result = km.relay_result;
	qkdn_server_reply(r, &rsp);
}

static void
on_alloc(struct qkdn_server_req *r, struct qkdn_msg *req)
{
	const struct qkdn_alloc_req *q = &req->u.alloc_req;
	char rest[256];
	snprintf(rest, sizeof(rest), " %s %s", q->src_sae, q->dst_sae);
	say("alloc", &q->reservation_id, rest);
	struct qkdn_msg rsp = {.type = QKDN_ALLOC_RSP};
	struct qkdn_alloc_rsp *p = &rsp.u.alloc_rsp;
	p->reservation_id = q->reservation_id;
	pthread_mutex_lock(&km.mtx);
	p->ids.v = qkdn_msg_alloc(&rsp, (km.n_ids + 1) * sizeof(qkdn_uuid));
	if (p->ids.v != NULL) {
		p->ids.n = km.n_ids;
		memcpy(p->ids.v, km.ids, km.n_ids * sizeof(qkdn_uuid));
	}
	pthread_mutex_unlock(&km.mtx);
	qkdn_server_reply(r, &rsp);
}

static void
on_release(struct qkdn_server_req *r, struct qkdn_msg *req)
{
	say("release", &req->u.reserve_release.reservation_id, "");
	struct qkdn_msg rsp = {.type = QKDN_ACK};
	qkdn_server_reply(r, &rsp);
}

static const struct qkdn_handler km_handlers[] = {
    {QKDN_RESERVE_REQ, on_reserve},
    {QKDN_RELAY_REQ, on_relay},
    {QKDN_ALLOC_REQ, on_alloc},
    {QKDN_RESERVE_RELEASE, on_release},
};

static int
fake_km(const char *url, int argc, char **argv)
{
	if (argc < 1)
		return usage();
	km.link = argv[0];
	km.relay_result = argc > 1 ? (int32_t)strtol(argv[1], NULL, 10) : 0;
	struct qkdn_server_config cfg = {
	    .name = "Kx",
	    .log_src = "fake-km",
	    .url = url,
	    .recv_max = QKDN_MSG_BYTES_MAX,
	    .handlers = km_handlers,
	    .n_handlers = sizeof(km_handlers) / sizeof(km_handlers[0]),
	};
	/* blocked before any thread exists, so only sigwait sees them */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct qkdn_server *s;
	int rv = qkdn_server_start(&s, &cfg);
	if (rv != 0) {
		fprintf(stderr, "ctl_feed: cannot serve %s: %s\n", url,
		        qkdn_strerror(rv));
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	int sig;
	sigwait(&set, &sig);
	qkdn_server_stop(s);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 3)
		return usage();
	if (strcmp(argv[2], "km") == 0)
		return fake_km(argv[1], argc - 3, argv + 3);
	struct qkdn_msg req = {.req_id = 1}, rsp;
	struct qkdn_decode_error err = {0};
	nng_socket s;
	int status = build(&req, argv[2], argc - 3, argv + 3);
	if (status != 0) {
		qkdn_msg_clear(&req);
		return status;
	}
	/* the request is cleared once sent: what the reply must echo */
	qkdn_uuid sent_id = req.u.relay_req_notif.relay_id;
	int rv = qkdn_rpc_dial(&s, argv[1]);
	if (rv != 0) {
		fprintf(stderr, "ctl_feed: %s: %s\n", argv[1],
		        qkdn_strerror(rv));
		qkdn_msg_clear(&req);
		return 3;
	}
	rv = qkdn_rpc_call(s, &req, &rsp, CALL_MS, &err);
	qkdn_msg_clear(&req);
	nng_close(s);
	/* qkdn_rpc_call's own reasons: no reply at all (an ERROR reply of
	 * the same code has the controller's reason) */
	if ((rv == QKDN_E_TIMEOUT &&
	     strcmp(err.reason, "no reply within the deadline") == 0) ||
	    (rv == QKDN_E_UNREACHABLE &&
	     strcmp(err.reason, "peer unreachable") == 0)) {
		fprintf(stderr, "ctl_feed: %s: %s\n", argv[1], err.reason);
		return 3;
	}
	if (rv != 0) {
		printf("error %s: %s\n", qkdn_errname(rv), err.reason);
		return 1;
	}
	switch (rsp.type) {
	case QKDN_ACK:
		if (strcmp(argv[2], "ls") == 0)
			printf("ack %llu\n",
			       (unsigned long long)rsp.u.ack.value);
		else
			printf("ack\n");
		break;
	case QKDN_RELAY_REQ:
		if (strcmp(argv[2], "notif") == 0)
			printf("relay_id %s\n",
			       memcmp(&rsp.u.relay_req.relay_id, &sent_id,
			              sizeof(sent_id)) == 0
			           ? "ok"
			           : "wrong");
		print_routes(&rsp.u.relay_req);
		break;
	case QKDN_NEXT_HOP_RSP: {
		const struct qkdn_next_hop_rsp *p = &rsp.u.next_hop_rsp;
		if (p->result == 0)
			printf("next %s link %s version %llu\n", p->next_hop,
			       p->link, (unsigned long long)p->version);
		else
			printf("%s version %llu\n", qkdn_errname(p->result),
			       (unsigned long long)p->version);
		break;
	}
	case QKDN_ALLOC_RSP:
		printf("alloc %u", rsp.u.alloc_rsp.ids.n);
		for (uint32_t i = 0; i < rsp.u.alloc_rsp.ids.n; i++) {
			char id[37];
			qkdn_uuid_format(&rsp.u.alloc_rsp.ids.v[i], id);
			printf(" %s", id);
		}
		printf("\n");
		break;
	case QKDN_CTL_STATUS:
		print_status(&rsp.u.ctl_status);
		break;
	default:
		printf("unexpected reply type %u\n", rsp.type);
		status = 1;
	}
	qkdn_msg_clear(&rsp);
	return status;
}
