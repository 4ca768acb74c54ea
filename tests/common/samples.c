/* One sample builder per message type, in a table indexed by type. Names
 * are non-ASCII here and there so the samples exercise UTF-8 checks. */
#include "samples.h"

#include "qkdn_err.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define REQ_ID_BASE 0x0123456789abcdefULL

/* A name from a string literal, its length checked when compiling, so
 * setting it cannot fail. */
#define NAME(dst, lit)                                                         \
	do {                                                                   \
		_Static_assert(sizeof(lit) > 1 &&                              \
		                   sizeof(lit) <= QKDN_NAME_MAX,               \
		               "bad sample name " lit);                        \
		memcpy(dst, lit, sizeof(lit));                                 \
	} while (0)

qkdn_uuid
sample_uuid(unsigned seed)
{
	qkdn_uuid u;
	for (int i = 0; i < 16; i++)
		u.b[i] = (uint8_t)(seed * 31u + (unsigned)i * 7u + 1u);
	return u;
}

int
sample_ids(struct qkdn_msg *m, struct qkdn_ids *ids, uint32_t n, unsigned seed)
{
	if ((ids->v = qkdn_msg_alloc(m, n * sizeof(qkdn_uuid))) == NULL)
		return QKDN_E_NOMEM;
	ids->n = n;
	for (uint32_t i = 0; i < n; i++)
		ids->v[i] = sample_uuid(seed + i);
	return 0;
}

int
sample_bytes(struct qkdn_msg *m, struct qkdn_bytes *b, uint32_t len,
             unsigned seed)
{
	if ((b->ptr = qkdn_msg_alloc(m, len)) == NULL)
		return QKDN_E_NOMEM;
	b->len = len;
	for (uint32_t i = 0; i < len; i++)
		b->ptr[i] = (uint8_t)(seed + i * 13u);
	return 0;
}

int
sample_keys(struct qkdn_msg *m, struct qkdn_keys *k, uint32_t n, uint32_t len,
            unsigned seed)
{
	if ((k->v = qkdn_msg_alloc(m, n * sizeof(struct qkdn_key))) == NULL)
		return QKDN_E_NOMEM;
	k->n = n;
	for (uint32_t i = 0; i < n; i++) {
		struct qkdn_bytes b;
		if (sample_bytes(m, &b, len + 8 * i, seed + i) != 0)
			return QKDN_E_NOMEM;
		k->v[i].id = sample_uuid(seed + 100 + i);
		k->v[i].len = b.len;
		k->v[i].bytes = b.ptr;
	}
	return 0;
}

int
sample_route(struct qkdn_msg *m, struct qkdn_route *r, uint32_t n)
{
	if ((r->v = qkdn_msg_alloc(m, n * sizeof(qkdn_name))) == NULL)
		return QKDN_E_NOMEM;
	r->n = n;
	for (uint32_t i = 0; i < n; i++)
		snprintf(r->v[i], sizeof(r->v[i]), "node-%u-ü", i + 1);
	return 0;
}

int
sample_segs(struct qkdn_msg *m, struct qkdn_segments *sg, uint32_t n,
            unsigned seed)
{
	if ((sg->v = qkdn_msg_alloc(m, n * sizeof(struct qkdn_segment))) ==
	    NULL)
		return QKDN_E_NOMEM;
	sg->n = n;
	for (uint32_t i = 0; i < n; i++) {
		sg->v[i].block_id = 0xfedcba9876543210ULL + seed + i;
		sg->v[i].offset = (4099 * i + 17) % QKDN_BLOCK_BYTES_MAX;
		sg->v[i].len = 32 + (100 * i) % 1000;
	}
	return 0;
}

/* ---- one filler per type: full, or the smallest valid message ----
 * Each returns 0 or QKDN_E_NOMEM (the only error of the pieces above). */

static int
fill_key_req(struct qkdn_msg *m, bool full)
{
	struct qkdn_key_req *p = &m->u.key_req;
	NAME(p->sae, "sae-ålice");
	NAME(p->dst_sae, "sae-bob.example");
	p->bits = 256;
	p->count = full ? 7 : 1;
	return 0;
}

static int
fill_key_rsp(struct qkdn_msg *m, bool full)
{
	return sample_keys(m, &m->u.key_rsp.keys, full ? 3 : 1, 32, 1);
}

static int
fill_key_req_id(struct qkdn_msg *m, bool full)
{
	NAME(m->u.key_req_id.sae, "sae-bob");
	if (full)
		NAME(m->u.key_req_id.src_sae, "sae-alice");
	return sample_ids(m, &m->u.key_req_id.ids, full ? 5 : 1, 3);
}

static int
fill_session_create_req(struct qkdn_msg *m, bool full)
{
	struct qkdn_session_create_req *p = &m->u.session_create_req;
	NAME(p->sae, "sae-a");
	NAME(p->dst_sae, "sae-z");
	if (full) {
		NAME(p->src_node, "node-東京");
		NAME(p->dst_node, "node-b");
	}
	p->bits = 512;
	return 0;
}

static int
fill_session_create_notif(struct qkdn_msg *m, bool full)
{
	struct qkdn_session_create_notif *p = &m->u.session_create_notif;
	(void)full; /* no optional field, no array */
	p->session_id = sample_uuid(5);
	NAME(p->src_sae, "sae-src");
	NAME(p->dst_sae, "sae-dst");
	NAME(p->src_node, "node-1");
	p->bits = 128;
	return 0;
}

static int
fill_session_notif_rsp(struct qkdn_msg *m, bool full)
{
	m->u.session_notif_rsp.session_id = sample_uuid(6);
	m->u.session_notif_rsp.result = full ? QKDN_E_NOT_AUTHORISED : 0;
	return 0;
}

static int
fill_session_create_rsp(struct qkdn_msg *m, bool full)
{
	m->u.session_create_rsp.session_id = sample_uuid(7);
	m->u.session_create_rsp.result = full ? QKDN_E_NO_ROUTE : 0;
	return 0;
}

static int
fill_key_req_session(struct qkdn_msg *m, bool full)
{
	m->u.key_req_session.session_id = sample_uuid(8);
	NAME(m->u.key_req_session.sae, "sae-8");
	m->u.key_req_session.count = full ? 12 : 1;
	return 0;
}

static int
fill_key_supply_notif(struct qkdn_msg *m, bool full)
{
	struct qkdn_key_supply_notif *p = &m->u.key_supply_notif;
	p->session_id = sample_uuid(9);
	p->count = full ? 4 : 1;
	p->bits = 1024;
	return sample_ids(m, &p->ids, full ? 4 : 0, 90);
}

static int
fill_proactive_supply(struct qkdn_msg *m, bool full)
{
	m->u.proactive_supply.session_id = sample_uuid(10);
	return sample_keys(m, &m->u.proactive_supply.keys, full ? 4 : 1, 128,
	                   10);
}

static int
fill_proactive_supply_rsp(struct qkdn_msg *m, bool full)
{
	m->u.proactive_supply_rsp.session_id = sample_uuid(11);
	return sample_ids(m, &m->u.proactive_supply_rsp.ids, full ? 4 : 0, 110);
}

static int
fill_key_supply_notif_rsp(struct qkdn_msg *m, bool full)
{
	struct qkdn_key_supply_notif_rsp *p = &m->u.key_supply_notif_rsp;
	p->session_id = sample_uuid(12);
	p->result = full ? QKDN_E_INSUFFICIENT_KEY : 0;
	return sample_ids(m, &p->ids, full ? 2 : 0, 120);
}

static int
fill_key_req_session_rsp(struct qkdn_msg *m, bool full)
{
	m->u.key_req_session_rsp.session_id = sample_uuid(13);
	return sample_keys(m, &m->u.key_req_session_rsp.keys, full ? 2 : 1, 16,
	                   13);
}

static int
fill_next_hop_req(struct qkdn_msg *m, bool full)
{
	m->u.next_hop_req.relay_id = sample_uuid(14);
	NAME(m->u.next_hop_req.here, "node-here");
	NAME(m->u.next_hop_req.dst_node, "node-there");
	m->u.next_hop_req.bytes = 32 * 4096;
	return full ? sample_route(m, &m->u.next_hop_req.route, 3) : 0;
}

static int
fill_next_hop_rsp(struct qkdn_msg *m, bool full)
{
	/* full: a next hop (and the link to it); min: no route, which
	 * names no hop */
	m->u.next_hop_rsp.relay_id = sample_uuid(15);
	m->u.next_hop_rsp.result = full ? 0 : QKDN_E_NO_ROUTE;
	m->u.next_hop_rsp.version = full ? UINT64_MAX : 0;
	if (full) {
		NAME(m->u.next_hop_rsp.next_hop, "node-next");
		NAME(m->u.next_hop_rsp.link, "link-here-next");
	}
	return 0;
}

static int
fill_relay_done_notif(struct qkdn_msg *m, bool full)
{
	/* full: a completion with its IDs and tag; min: a failure */
	m->u.relay_done_notif.relay_id = sample_uuid(16);
	m->u.relay_done_notif.result = full ? 0 : QKDN_E_BLOCK_MISSING;
	if (!full)
		return 0; /* no IDs, no tag */
	if (sample_bytes(m, &m->u.relay_done_notif.tag, 16, 161) != 0)
		return QKDN_E_NOMEM;
	return sample_ids(m, &m->u.relay_done_notif.ids, 6, 160);
}

static int
fill_relay_req_notif(struct qkdn_msg *m, bool full)
{
	struct qkdn_relay_req_notif *p = &m->u.relay_req_notif;
	p->relay_id = sample_uuid(17);
	NAME(p->src_node, "node-src");
	NAME(p->dst_node, "node-dst");
	p->count = full ? 9 : 1;
	p->bits = 2048;
	if (full) {
		NAME(p->src_sae, "sae-ä");
		NAME(p->dst_sae, "sae-ö");
		p->reserve = 1;
	}
	return 0;
}

static int
fill_relay_req(struct qkdn_msg *m, bool full)
{
	struct qkdn_relay_req *p = &m->u.relay_req;
	p->relay_id = sample_uuid(18);
	if (!full)
		return 0; /* no route */
	p->version = 18;
	if ((p->routes.v = qkdn_msg_alloc(m, 3 * sizeof(*p->routes.v))) == NULL)
		return QKDN_E_NOMEM;
	p->routes.n = 3;
	for (uint32_t i = 0; i < 3; i++)
		if (sample_route(m, &p->routes.v[i].nodes, 2 + i) != 0)
			return QKDN_E_NOMEM;
	p->reservation_id = sample_uuid(180);
	NAME(p->src_sae, "sae-1");
	NAME(p->dst_sae, "sae-2");
	NAME(p->link, "link-1-2");
	p->bits = 256;
	if (sample_ids(m, &p->ids, 2, 181) != 0 ||
	    sample_segs(m, &p->segs, 2, 182) != 0)
		return QKDN_E_NOMEM;
	return 0;
}

static int
fill_key_relay(struct qkdn_msg *m, bool full)
{
	struct qkdn_key_relay *p = &m->u.key_relay;
	uint32_t n = full ? 3 : 1;
	p->relay_id = sample_uuid(19);
	p->hop = full ? 2 : 1;
	NAME(p->src_sae, "sae-from");
	NAME(p->dst_sae, "sae-to");
	NAME(p->link, "link-2-3");
	p->bits = 256;
	p->ttl_ms = full ? 3600000 : 1;
	if (sample_route(m, &p->route, full ? 4 : 2) != 0 ||
	    sample_segs(m, &p->segs, n, 19) != 0 ||
	    sample_ids(m, &p->ids, n, 190) != 0)
		return QKDN_E_NOMEM;
	/* the first hop carries no ciphertext */
	if (full && sample_bytes(m, &p->ciphertext, 32 * n, 19) != 0)
		return QKDN_E_NOMEM;
	return 0;
}

static int
fill_relay_req_rsp(struct qkdn_msg *m, bool full)
{
	m->u.relay_req_rsp.relay_id = sample_uuid(20);
	m->u.relay_req_rsp.result = full ? QKDN_E_TIMEOUT : 0;
	if (full)
		m->u.relay_req_rsp.reservation_id = sample_uuid(200);
	return 0;
}

static int
fill_reserve_req(struct qkdn_msg *m, bool full)
{
	struct qkdn_reserve_req *p = &m->u.reserve_req;
	p->reservation_id = sample_uuid(21);
	NAME(p->dst_node, "node-21");
	NAME(p->next_hop, "node-next-21");
	p->count = full ? 3 : 1;
	p->bits = 8192;
	p->ttl_ms = full ? 3600000 : 1;
	return 0;
}

static int
fill_reserve_rsp(struct qkdn_msg *m, bool full)
{
	/* full: the reserved IDs and where their bits lie; min: refused */
	m->u.reserve_rsp.reservation_id = sample_uuid(22);
	m->u.reserve_rsp.result = full ? 0 : QKDN_E_INSUFFICIENT_KEY;
	if (!full)
		return 0;
	NAME(m->u.reserve_rsp.link, "link-22");
	if (sample_segs(m, &m->u.reserve_rsp.segs, 2, 221) != 0)
		return QKDN_E_NOMEM;
	return sample_ids(m, &m->u.reserve_rsp.ids, 3, 220);
}

static int
fill_alloc_req(struct qkdn_msg *m, bool full)
{
	(void)full; /* no optional field, no array */
	m->u.alloc_req.reservation_id = sample_uuid(23);
	NAME(m->u.alloc_req.dst_node, "node-23");
	NAME(m->u.alloc_req.src_sae, "sae-23s");
	NAME(m->u.alloc_req.dst_sae, "sae-23d");
	return 0;
}

static int
fill_alloc_rsp(struct qkdn_msg *m, bool full)
{
	/* full: the allocated IDs; min: a second allocation, refused */
	m->u.alloc_rsp.reservation_id = sample_uuid(24);
	m->u.alloc_rsp.result = full ? 0 : QKDN_E_ALREADY_SUPPLIED;
	return full ? sample_ids(m, &m->u.alloc_rsp.ids, 2, 240) : 0;
}

static int
fill_error(struct qkdn_msg *m, bool full)
{
	m->u.error.code = -QKDN_E_UNKNOWN_KEY_ID;
	if (full)
		snprintf(m->u.error.reason, sizeof(m->u.error.reason),
		         "no key 00112233-… at node-ä");
	return 0;
}

static int
fill_status_req(struct qkdn_msg *m, bool full)
{
	(void)full;
	m->u.status_req.flags = 0; /* the only legal value */
	return 0;
}

static int
fill_status_rsp(struct qkdn_msg *m, bool full)
{
	struct qkdn_status_rsp *p = &m->u.status_rsp;
	NAME(p->node, "node-status");
	if (!full)
		return 0; /* counters 0, no links */
	p->keys_supplied = 1000000000000ULL;
	p->keys_pending = 77;
	p->errors = 5;
	p->ak_errors = 3;
	p->kx_errors = 2;
	if ((p->links = qkdn_msg_alloc(m, 3 * sizeof(*p->links))) == NULL)
		return QKDN_E_NOMEM;
	p->n_links = 3;
	for (uint32_t i = 0; i < 3; i++) {
		struct qkdn_link_status *l = &p->links[i];
		snprintf(l->link, sizeof(l->link), "link-%u", i);
		snprintf(l->peer, sizeof(l->peer), "peer-%u", i);
		l->out_bytes = 1000 + i;
		l->in_bytes = (1ULL << 40) + i;
		l->blocks = 30 + i;
		l->up = i % 2;
		l->out_of_sync = i == 1;
		l->sync_failures = 40 + i;
		l->out_max = (1ULL << 41) + i;
		if (i != 1) /* a link fed by a KME that is down */
			snprintf(l->down, sizeof(l->down),
			         "KME https://kme-%u: status: no answer", i);
	}
	uint64_t *c = &p->relay.started;
	for (size_t i = 0; i < sizeof(p->relay) / sizeof(uint64_t); i++)
		c[i] = 100 + i; /* every counter of its own value */
	p->keys_max = 4096;
	p->bits_min = 8;
	p->bits_max = 8192;
	p->req_bytes_max = 512u << 10;
	return 0;
}

static int
fill_link_block(struct qkdn_msg *m, bool full)
{
	NAME(m->u.link_block.link, "link-a-b");
	m->u.link_block.block_id = (1ULL << 40) | 5;
	return sample_bytes(m, &m->u.link_block.bytes, full ? 4096 : 1, 103);
}

static int
fill_key_sync(struct qkdn_msg *m, bool full)
{
	struct qkdn_key_sync *p = &m->u.key_sync;
	uint32_t n = full ? 3 : 1;
	NAME(p->link, "link-x");
	if (sample_segs(m, &p->segs, full ? 2 : 1, 104) != 0 ||
	    (p->reqs.v = qkdn_msg_alloc(m, n * sizeof(*p->reqs.v))) == NULL)
		return QKDN_E_NOMEM;
	p->reqs.n = n;
	for (uint32_t i = 0; i < n; i++) {
		struct qkdn_sync_req *r = &p->reqs.v[i];
		snprintf(r->src_sae, sizeof(r->src_sae), "sae-s%u", i);
		snprintf(r->dst_sae, sizeof(r->dst_sae), "sae-d%u", i);
		r->bits = 128 * (i + 1);
		if (sample_ids(m, &r->ids, i + 1, 104 + 10 * i) != 0)
			return QKDN_E_NOMEM;
	}
	return 0;
}

static int
fill_key_sync_auth(struct qkdn_msg *m, bool full)
{
	if (sample_bytes(m, &m->u.key_sync_auth.sync, full ? 300 : 1, 107) !=
	        0 ||
	    sample_bytes(m, &m->u.key_sync_auth.tag, 16, 108) != 0)
		return QKDN_E_NOMEM;
	return 0;
}

static int
fill_kme_keys(struct qkdn_msg *m, bool full)
{
	NAME(m->u.kme_keys.link, "link-kme");
	m->u.kme_keys.block_id = full ? (1ULL << 50) | 114 : 1;
	m->u.kme_keys.bits = full ? 256 : 8;
	return sample_ids(m, &m->u.kme_keys.ids, full ? 130 : 1, 114);
}

static int
fill_kme_keys_auth(struct qkdn_msg *m, bool full)
{
	if (sample_bytes(m, &m->u.kme_keys_auth.keys, full ? 300 : 1, 115) !=
	        0 ||
	    sample_bytes(m, &m->u.kme_keys_auth.tag, 16, 116) != 0)
		return QKDN_E_NOMEM;
	return 0;
}

static int
fill_ack(struct qkdn_msg *m, bool full)
{
	m->u.ack.result = full ? QKDN_E_BLOCK_MISSING : 0;
	m->u.ack.value = full ? 0xdeadbeefcafeULL : 0;
	if (full)
		return sample_bytes(m, &m->u.ack.tag, 16, 105);
	return 0;
}

static int
fill_link_ctl(struct qkdn_msg *m, bool full)
{
	NAME(m->u.link_ctl.link, "link-ctl");
	m->u.link_ctl.action = full ? QKDN_LINK_RESUME : QKDN_LINK_PAUSE;
	return 0;
}

static int
fill_key_relay_auth(struct qkdn_msg *m, bool full)
{
	if (sample_bytes(m, &m->u.key_relay_auth.relay, full ? 400 : 1, 108) !=
	        0 ||
	    sample_bytes(m, &m->u.key_relay_auth.tag, 16, 109) != 0)
		return QKDN_E_NOMEM;
	return 0;
}

static int
fill_relay_abort(struct qkdn_msg *m, bool full)
{
	m->u.relay_abort.relay_id = sample_uuid(109);
	if (!full)
		return 0;
	snprintf(m->u.relay_abort.reason, sizeof(m->u.relay_abort.reason),
	         "next hop node-ü unreachable");
	return sample_ids(m, &m->u.relay_abort.ids, 4, 1090);
}

static int
fill_reserve_release(struct qkdn_msg *m, bool full)
{
	(void)full; /* no optional field, no array */
	m->u.reserve_release.reservation_id = sample_uuid(110);
	return 0;
}

static int
sample_link_states(struct qkdn_msg *m, struct qkdn_link_states *ls, uint32_t n)
{
	if (n == 0)
		return 0;
	if ((ls->v = qkdn_msg_alloc(m, n * sizeof(*ls->v))) == NULL)
		return QKDN_E_NOMEM;
	ls->n = n;
	for (uint32_t i = 0; i < n; i++) {
		struct qkdn_link_state *l = &ls->v[i];
		snprintf(l->link, sizeof(l->link), "link-ä%u", i);
		snprintf(l->a, sizeof(l->a), "node-a%u", i);
		snprintf(l->b, sizeof(l->b), "node-b%u", i);
		l->up = i % 2;
		l->a_out = 4096ULL << i;
		l->b_out = i;
		l->rate_bps = 1000000 + i;
		l->age_ms = i == 2 ? UINT32_MAX : i;
	}
	return 0;
}

static int
fill_link_state(struct qkdn_msg *m, bool full)
{
	NAME(m->u.link_state.origin, "node-origin");
	m->u.link_state.seq = full ? UINT64_MAX : 0;
	m->u.link_state.max_age_ms = full ? 3600000 : 1;
	return sample_link_states(m, &m->u.link_state.links, full ? 3 : 0);
}

static int
fill_route_query(struct qkdn_msg *m, bool full)
{
	NAME(m->u.route_query.src_node, "node-from");
	NAME(m->u.route_query.dst_node, "node-to");
	m->u.route_query.bytes = full ? UINT64_MAX : 0;
	return 0;
}

static int
fill_ctl_status(struct qkdn_msg *m, bool full)
{
	struct qkdn_ctl_status *p = &m->u.ctl_status;
	NAME(p->node, "central");
	if (!full)
		return 0; /* counters 0, no links */
	p->centralized = 1;
	p->version = 113;
	p->next_hop_reqs = 1;
	p->relay_req_notifs = 2;
	p->relay_req_rsps = 3;
	p->reservations = 4;
	p->allocations = 5;
	p->updates = 6;
	return sample_link_states(m, &p->links, 3);
}

static const struct {
	uint32_t type;
	int (*fill)(struct qkdn_msg *m, bool full);
} fillers[] = {
    {QKDN_KEY_REQ, fill_key_req},
    {QKDN_KEY_RSP, fill_key_rsp},
    {QKDN_KEY_REQ_ID, fill_key_req_id},
    {QKDN_SESSION_CREATE_REQ, fill_session_create_req},
    {QKDN_SESSION_CREATE_NOTIF, fill_session_create_notif},
    {QKDN_SESSION_NOTIF_RSP, fill_session_notif_rsp},
    {QKDN_SESSION_CREATE_RSP, fill_session_create_rsp},
    {QKDN_KEY_REQ_SESSION, fill_key_req_session},
    {QKDN_KEY_SUPPLY_NOTIF, fill_key_supply_notif},
    {QKDN_PROACTIVE_SUPPLY, fill_proactive_supply},
    {QKDN_PROACTIVE_SUPPLY_RSP, fill_proactive_supply_rsp},
    {QKDN_KEY_SUPPLY_NOTIF_RSP, fill_key_supply_notif_rsp},
    {QKDN_KEY_REQ_SESSION_RSP, fill_key_req_session_rsp},
    {QKDN_NEXT_HOP_REQ, fill_next_hop_req},
    {QKDN_NEXT_HOP_RSP, fill_next_hop_rsp},
    {QKDN_RELAY_DONE_NOTIF, fill_relay_done_notif},
    {QKDN_RELAY_REQ_NOTIF, fill_relay_req_notif},
    {QKDN_RELAY_REQ, fill_relay_req},
    {QKDN_KEY_RELAY, fill_key_relay},
    {QKDN_RELAY_REQ_RSP, fill_relay_req_rsp},
    {QKDN_RESERVE_REQ, fill_reserve_req},
    {QKDN_RESERVE_RSP, fill_reserve_rsp},
    {QKDN_ALLOC_REQ, fill_alloc_req},
    {QKDN_ALLOC_RSP, fill_alloc_rsp},
    {QKDN_ERROR, fill_error},
    {QKDN_STATUS_REQ, fill_status_req},
    {QKDN_STATUS_RSP, fill_status_rsp},
    {QKDN_LINK_BLOCK, fill_link_block},
    {QKDN_KEY_SYNC, fill_key_sync},
    {QKDN_ACK, fill_ack},
    {QKDN_LINK_CTL, fill_link_ctl},
    {QKDN_KEY_SYNC_AUTH, fill_key_sync_auth},
    {QKDN_KEY_RELAY_AUTH, fill_key_relay_auth},
    {QKDN_RELAY_ABORT, fill_relay_abort},
    {QKDN_RESERVE_RELEASE, fill_reserve_release},
    {QKDN_LINK_STATE, fill_link_state},
    {QKDN_ROUTE_QUERY, fill_route_query},
    {QKDN_CTL_STATUS, fill_ctl_status},
    {QKDN_KME_KEYS, fill_kme_keys},
    {QKDN_KME_KEYS_AUTH, fill_kme_keys_auth},
};

int
sample_build(struct qkdn_msg *m, uint32_t type, enum sample_variant v)
{
	bool full = v == SAMPLE_FULL;
	int rv = QKDN_E_UNKNOWN_TYPE;
	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < sizeof(fillers) / sizeof(fillers[0]); i++) {
		if (fillers[i].type != type)
			continue;
		m->type = type;
		m->req_id = full ? REQ_ID_BASE ^ type : 0;
		rv = fillers[i].fill(m, full);
		break;
	}
	if (rv != 0)
		qkdn_msg_clear(m);
	return rv;
}
