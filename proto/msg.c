/* Table-driven MessagePack codec for every qkdn message. Each message body
 * is described by a table of fields (key, type, offset, limits); one encoder
 * and one decoder walk the tables, so a limit is written once and enforced
 * the same way in both directions. */
#include "qkdn_msg.h"

#include "mp_scan.h"
#include "qkdn_err.h"

#include <errno.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- arena: decoded arrays and bytes, wiped on clear ---- */

struct qkdn_arena {
	struct qkdn_arena *next;
	size_t len;
	max_align_t data[];
};

void *
qkdn_msg_alloc(struct qkdn_msg *m, size_t len)
{
	if (len > QKDN_MSG_BYTES_MAX * 4)
		return NULL;
	struct qkdn_arena *a = calloc(1, sizeof(*a) + len);
	if (a == NULL)
		return NULL;
	a->len = len;
	a->next = m->arena;
	m->arena = a;
	return a->data;
}

void
qkdn_msg_clear(struct qkdn_msg *m)
{
	struct qkdn_arena *a = m->arena;
	while (a != NULL) {
		struct qkdn_arena *next = a->next;
		explicit_bzero(a->data, a->len);
		free(a);
		a = next;
	}
	explicit_bzero(m, sizeof(*m));
}

/* ---- field tables ---- */

enum ftype {
	F_NAME,  /* qkdn_name: 1..63 bytes of UTF-8 */
	F_TEXT,  /* char[QKDN_REASON_MAX]: 0..255 bytes of UTF-8 */
	F_U32,   /* uint32_t in [lo, hi] */
	F_I32,   /* int32_t in [lo, hi] */
	F_U64,   /* uint64_t */
	F_UUID,  /* qkdn_uuid: bin 16 */
	F_BYTES, /* struct qkdn_bytes: bin, 1..hi bytes */
	F_ARRAY, /* { uint32_t n; T *v; }: 0..hi elements of elem */
	F_MAP,   /* a nested map described by sub */
};

struct table;

struct field {
	const char *key;
	enum ftype type;
	bool required;
	size_t off;
	int64_t lo;
	int64_t hi;
	int64_t step;             /* F_U32: value must be a multiple */
	const struct field *elem; /* F_ARRAY element, off 0 */
	size_t elem_size;
	const struct table *sub; /* F_MAP */
};

struct table {
	const struct field *f;
	size_t n;
};

struct array {
	uint32_t n;
	void *v;
};
_Static_assert(offsetof(struct qkdn_ids, v) == offsetof(struct array, v),
               "array layout");
_Static_assert(offsetof(struct qkdn_keys, v) == offsetof(struct array, v),
               "array layout");
_Static_assert(offsetof(struct qkdn_route, v) == offsetof(struct array, v),
               "array layout");
_Static_assert(offsetof(struct qkdn_segments, v) == offsetof(struct array, v),
               "array layout");
_Static_assert(offsetof(struct qkdn_sync_reqs, v) == offsetof(struct array, v),
               "array layout");
_Static_assert(offsetof(struct qkdn_routes, v) == offsetof(struct array, v),
               "array layout");
_Static_assert(offsetof(struct qkdn_link_states, v) ==
                   offsetof(struct array, v),
               "array layout");

#define TABLE(name)                                                            \
	{                                                                      \
		name, sizeof(name) / sizeof(name[0])                           \
	}
#define REQ true
#define OPT false
#define FIELD(k, t, req, s, m, l, h)                                           \
	{                                                                      \
		.key = k, .type = t, .required = req, .off = offsetof(s, m),   \
		.lo = l, .hi = h                                               \
	}
#define NAME(k, req, s, m)        FIELD(k, F_NAME, req, s, m, 1, QKDN_NAME_MAX - 1)
#define U32(k, req, s, m, mn, mx) FIELD(k, F_U32, req, s, m, mn, mx)
#define I32(k, req, s, m, mn, mx) FIELD(k, F_I32, req, s, m, mn, mx)
#define U64(k, req, s, m)         FIELD(k, F_U64, req, s, m, 0, 0)
#define UUID(k, req, s, m)        FIELD(k, F_UUID, req, s, m, 16, 16)
#define BYTES(k, req, s, m, hi)   FIELD(k, F_BYTES, req, s, m, 1, hi)
#define ARRAY(k, req, s, m, mn, mx, el, T)                                     \
	{                                                                      \
		.key = k, .type = F_ARRAY, .required = req,                    \
		.off = offsetof(s, m), .lo = mn, .hi = mx, .elem = &el,        \
		.elem_size = sizeof(T)                                         \
	}
#define RESULT(s) I32("res", REQ, s, result, -10000, 0)

static const struct field el_uuid = {
    .key = "", .type = F_UUID, .lo = 16, .hi = 16};
static const struct field el_name = {
    .key = "", .type = F_NAME, .lo = 1, .hi = QKDN_NAME_MAX - 1};

static const struct field key_fields[] = {
    UUID("id", REQ, struct qkdn_key, id),
    BYTES("k", REQ, struct qkdn_key, len, QKDN_KEY_BYTES_MAX),
};
static const struct table key_table = TABLE(key_fields);
static const struct field el_key = {
    .key = "", .type = F_MAP, .sub = &key_table};

static const struct field link_status_fields[] = {
    NAME("link", REQ, struct qkdn_link_status, link),
    NAME("peer", REQ, struct qkdn_link_status, peer),
    U64("out", REQ, struct qkdn_link_status, out_bytes),
    U64("in", REQ, struct qkdn_link_status, in_bytes),
    U64("blocks", REQ, struct qkdn_link_status, blocks),
    U32("up", REQ, struct qkdn_link_status, up, 0, 1),
    U32("unsync", OPT, struct qkdn_link_status, out_of_sync, 0, 1),
    U64("syncfail", OPT, struct qkdn_link_status, sync_failures),
    U64("outmax", OPT, struct qkdn_link_status, out_max),
    FIELD("down", F_TEXT, OPT, struct qkdn_link_status, down, 0,
          QKDN_REASON_MAX - 1),
};
static const struct table link_status_table = TABLE(link_status_fields);
static const struct field el_link_status = {
    .key = "", .type = F_MAP, .sub = &link_status_table};

#define IDS(k, req, s, m, mn)                                                  \
	ARRAY(k, req, s, m.n, mn, QKDN_KEYS_MAX, el_uuid, qkdn_uuid)
#define KEYS(k, req, s, m)                                                     \
	ARRAY(k, req, s, m.n, 1, QKDN_KEYS_MAX, el_key, struct qkdn_key)
#define ROUTE(k, req, s, m)                                                    \
	ARRAY(k, req, s, m.n, 2, QKDN_ROUTE_MAX, el_name, qkdn_name)
#define BITS(s)                                                                \
	{                                                                      \
		.key = "bits", .type = F_U32, .required = REQ,                 \
		.off = offsetof(s, bits), .lo = 8,                             \
		.hi = QKDN_KEY_BYTES_MAX * 8, .step = 8                        \
	}
#define COUNT(s) U32("n", REQ, s, count, 1, QKDN_KEYS_MAX)

#define S struct qkdn_key_req
static const struct field key_req[] = {
    NAME("sae", REQ, S, sae), NAME("dst", REQ, S, dst_sae), BITS(S), COUNT(S)};
#undef S
static const struct field key_rsp[] = {
    KEYS("keys", REQ, struct qkdn_key_rsp, keys)};
#define S struct qkdn_key_req_id
static const struct field key_req_id[] = {NAME("sae", REQ, S, sae),
                                          IDS("ids", REQ, S, ids, 1),
                                          NAME("src", OPT, S, src_sae)};
#undef S
#define S struct qkdn_session_create_req
static const struct field session_create_req[] = {
    NAME("sae", REQ, S, sae), NAME("dst", REQ, S, dst_sae),
    NAME("snode", OPT, S, src_node), NAME("dnode", OPT, S, dst_node), BITS(S)};
#undef S
#define S struct qkdn_session_create_notif
static const struct field session_create_notif[] = {
    UUID("sid", REQ, S, session_id), NAME("src", REQ, S, src_sae),
    NAME("dst", REQ, S, dst_sae), NAME("snode", REQ, S, src_node), BITS(S)};
#undef S
#define S struct qkdn_session_notif_rsp
static const struct field session_notif_rsp[] = {
    UUID("sid", REQ, S, session_id), RESULT(S)};
#undef S
#define S struct qkdn_session_create_rsp
static const struct field session_create_rsp[] = {
    UUID("sid", REQ, S, session_id), RESULT(S)};
#undef S
#define S struct qkdn_key_req_session
static const struct field key_req_session[] = {
    UUID("sid", REQ, S, session_id), NAME("sae", REQ, S, sae), COUNT(S)};
#undef S
#define S struct qkdn_key_supply_notif
static const struct field key_supply_notif[] = {UUID("sid", REQ, S, session_id),
                                                COUNT(S), BITS(S),
                                                IDS("ids", REQ, S, ids, 0)};
#undef S
#define S struct qkdn_proactive_supply
static const struct field proactive_supply[] = {UUID("sid", REQ, S, session_id),
                                                KEYS("keys", REQ, S, keys)};
#undef S
#define S struct qkdn_proactive_supply_rsp
static const struct field proactive_supply_rsp[] = {
    UUID("sid", REQ, S, session_id), IDS("ids", REQ, S, ids, 0)};
#undef S
#define S struct qkdn_key_supply_notif_rsp
static const struct field key_supply_notif_rsp[] = {
    UUID("sid", REQ, S, session_id), RESULT(S), IDS("ids", REQ, S, ids, 0)};
#undef S
#define S struct qkdn_key_req_session_rsp
static const struct field key_req_session_rsp[] = {
    UUID("sid", REQ, S, session_id), KEYS("keys", REQ, S, keys)};
#undef S
#define S struct qkdn_next_hop_req
static const struct field next_hop_req[] = {
    UUID("rid", REQ, S, relay_id), NAME("here", REQ, S, here),
    NAME("dnode", REQ, S, dst_node), U64("bytes", REQ, S, bytes),
    ROUTE("route", OPT, S, route)};
#undef S
#define S struct qkdn_next_hop_rsp
static const struct field next_hop_rsp[] = {
    UUID("rid", REQ, S, relay_id), RESULT(S), NAME("next", OPT, S, next_hop),
    NAME("link", OPT, S, link), U64("ver", REQ, S, version)};
#undef S
#define S struct qkdn_relay_done_notif
static const struct field relay_done_notif[] = {
    UUID("rid", REQ, S, relay_id), RESULT(S), IDS("ids", OPT, S, ids, 0),
    BYTES("tag", OPT, S, tag.len, 16)};
#undef S
#define S struct qkdn_relay_req_notif
static const struct field relay_req_notif[] = {
    UUID("rid", REQ, S, relay_id),
    NAME("snode", REQ, S, src_node),
    NAME("dnode", REQ, S, dst_node),
    COUNT(S),
    BITS(S),
    NAME("src", OPT, S, src_sae),
    NAME("dst", OPT, S, dst_sae),
    U32("reserve", OPT, S, reserve, 0, 1)};
#undef S
static const struct field route_entry_fields[] = {
    ROUTE("r", REQ, struct qkdn_route_entry, nodes)};
static const struct table route_entry_table = TABLE(route_entry_fields);
static const struct field el_route_entry = {
    .key = "", .type = F_MAP, .sub = &route_entry_table};
static const struct field segment_fields[] = {
    U64("blk", REQ, struct qkdn_segment, block_id),
    U32("off", REQ, struct qkdn_segment, offset, 0, QKDN_BLOCK_BYTES_MAX - 1),
    U32("len", REQ, struct qkdn_segment, len, 1, QKDN_BLOCK_BYTES_MAX)};
static const struct table segment_table = TABLE(segment_fields);
static const struct field el_segment = {
    .key = "", .type = F_MAP, .sub = &segment_table};
#define SEGS(k, req, s, m)                                                     \
	ARRAY(k, req, s, m.n, 1, QKDN_SEGS_MAX, el_segment, struct qkdn_segment)

#define S struct qkdn_relay_req
static const struct field relay_req[] = {UUID("rid", REQ, S, relay_id),
                                         ARRAY("routes", REQ, S, routes.n, 0,
                                               QKDN_ROUTES_MAX, el_route_entry,
                                               struct qkdn_route_entry),
                                         U64("ver", REQ, S, version),
                                         UUID("resid", OPT, S, reservation_id),
                                         NAME("src", OPT, S, src_sae),
                                         NAME("dst", OPT, S, dst_sae),
                                         {.key = "bits",
                                          .type = F_U32,
                                          .required = OPT,
                                          .off = offsetof(S, bits),
                                          .lo = 0,
                                          .hi = QKDN_KEY_BYTES_MAX * 8,
                                          .step = 8},
                                         IDS("ids", OPT, S, ids, 0),
                                         NAME("link", OPT, S, link),
                                         SEGS("segs", OPT, S, segs)};
#undef S
#define S struct qkdn_key_relay
static const struct field key_relay[] = {
    UUID("rid", REQ, S, relay_id),
    ROUTE("route", REQ, S, route),
    U32("hop", REQ, S, hop, 1, QKDN_ROUTE_MAX - 1),
    NAME("src", REQ, S, src_sae),
    NAME("dst", REQ, S, dst_sae),
    BITS(S),
    U32("ttl", REQ, S, ttl_ms, 1, 3600000),
    NAME("link", REQ, S, link),
    SEGS("segs", REQ, S, segs),
    IDS("ids", REQ, S, ids, 1),
    BYTES("ct", OPT, S, ciphertext.len, QKDN_KEYS_MAX *QKDN_KEY_BYTES_MAX)};
#undef S
#define S struct qkdn_relay_req_rsp
static const struct field relay_req_rsp[] = {
    UUID("rid", REQ, S, relay_id), RESULT(S),
    UUID("resid", OPT, S, reservation_id)};
#undef S
#define S struct qkdn_reserve_req
static const struct field reserve_req[] = {
    UUID("resid", REQ, S, reservation_id),
    NAME("dnode", REQ, S, dst_node),
    NAME("next", REQ, S, next_hop),
    COUNT(S),
    BITS(S),
    U32("ttl", REQ, S, ttl_ms, 1, 3600000)};
#undef S
#define S struct qkdn_reserve_rsp
static const struct field reserve_rsp[] = {
    UUID("resid", REQ, S, reservation_id), RESULT(S),
    IDS("ids", OPT, S, ids, 0), NAME("link", OPT, S, link),
    SEGS("segs", OPT, S, segs)};
#undef S
#define S struct qkdn_alloc_req
static const struct field alloc_req[] = {
    UUID("resid", REQ, S, reservation_id), NAME("dnode", REQ, S, dst_node),
    NAME("src", REQ, S, src_sae), NAME("dst", REQ, S, dst_sae)};
#undef S
#define S struct qkdn_alloc_rsp
static const struct field alloc_rsp[] = {UUID("resid", REQ, S, reservation_id),
                                         RESULT(S), IDS("ids", OPT, S, ids, 0)};
#undef S
#define S struct qkdn_key_relay_auth
static const struct field key_relay_auth[] = {
    BYTES("relay", REQ, S, relay.len, QKDN_BYTES_MAX),
    BYTES("tag", REQ, S, tag.len, 16)};
#undef S
#define S struct qkdn_relay_abort
static const struct field relay_abort[] = {
    UUID("rid", REQ, S, relay_id), IDS("ids", OPT, S, ids, 0),
    FIELD("why", F_TEXT, OPT, S, reason, 0, QKDN_REASON_MAX - 1)};
#undef S
static const struct field reserve_release[] = {
    UUID("resid", REQ, struct qkdn_reserve_release, reservation_id)};
#define S struct qkdn_link_state
static const struct field link_state_fields[] = {
    NAME("link", REQ, S, link),    NAME("a", REQ, S, a),
    NAME("b", REQ, S, b),          U32("up", REQ, S, up, 0, 1),
    U64("aout", REQ, S, a_out),    U64("bout", OPT, S, b_out),
    U64("rate", OPT, S, rate_bps), U32("age", OPT, S, age_ms, 0, UINT32_MAX)};
#undef S
static const struct table link_state_table = TABLE(link_state_fields);
static const struct field el_link_state = {
    .key = "", .type = F_MAP, .sub = &link_state_table};
#define LINK_STATES(k, s, m)                                                   \
	ARRAY(k, REQ, s, m.n, 0, QKDN_LINK_STATES_MAX, el_link_state,          \
	      struct qkdn_link_state)
#define S struct qkdn_link_state_update
static const struct field link_state_update[] = {
    NAME("origin", REQ, S, origin), U64("seq", REQ, S, seq),
    U32("maxage", REQ, S, max_age_ms, 1, 3600000),
    LINK_STATES("links", S, links)};
#undef S
#define S struct qkdn_route_query
static const struct field route_query[] = {NAME("snode", REQ, S, src_node),
                                           NAME("dnode", REQ, S, dst_node),
                                           U64("bytes", REQ, S, bytes)};
#undef S
#define S struct qkdn_ctl_status
static const struct field ctl_status[] = {
    NAME("node", REQ, S, node),
    U32("central", REQ, S, centralized, 0, 1),
    U64("ver", REQ, S, version),
    U64("nexthop", REQ, S, next_hop_reqs),
    U64("relreq", REQ, S, relay_req_notifs),
    U64("relrsp", REQ, S, relay_req_rsps),
    U64("reserve", REQ, S, reservations),
    U64("alloc", REQ, S, allocations),
    U64("updates", REQ, S, updates),
    LINK_STATES("links", S, links)};
#undef S
static const struct field error_msg[] = {
    I32("code", REQ, struct qkdn_error, code, 1, 10000),
    FIELD("why", F_TEXT, OPT, struct qkdn_error, reason, 0,
          QKDN_REASON_MAX - 1),
};
static const struct field status_req[] = {
    U32("flags", OPT, struct qkdn_status_req, flags, 0, 0)};
#define S struct qkdn_relay_stats
static const struct field relay_stats_fields[] = {
    U64("started", REQ, S, started),
    U64("completed", REQ, S, completed),
    U64("failed", REQ, S, failed),
    U64("inflight", REQ, S, in_flight),
    U64("forwarded", REQ, S, forwarded),
    U64("delivered", REQ, S, delivered),
    U64("rejected", REQ, S, rejected),
    U64("nexthop", REQ, S, next_hop_reqs),
    U64("relreq", REQ, S, relay_req_notifs),
    U64("relrsp", REQ, S, relay_req_rsps),
    U64("done", REQ, S, done_notifs),
    U64("reserve", REQ, S, reservations),
    U64("alloc", REQ, S, allocations),
    U64("keys", REQ, S, keys_relayed)};
#undef S
static const struct table relay_stats_table = TABLE(relay_stats_fields);
#define S struct qkdn_status_rsp
static const struct field status_rsp[] = {
    NAME("node", REQ, S, node),
    U64("supplied", REQ, S, keys_supplied),
    U64("pending", REQ, S, keys_pending),
    U64("errors", REQ, S, errors),
    U64("akerr", OPT, S, ak_errors),
    U64("kxerr", OPT, S, kx_errors),
    ARRAY("links", REQ, S, n_links, 0, QKDN_LINKS_MAX, el_link_status,
          struct qkdn_link_status),
    {.key = "relay",
     .type = F_MAP,
     .required = OPT,
     .off = offsetof(S, relay),
     .sub = &relay_stats_table},
    /* any value: a newer KM may allow more than this codec */
    U32("keysmax", OPT, S, keys_max, 0, UINT32_MAX),
    U32("bitsmin", OPT, S, bits_min, 0, UINT32_MAX),
    U32("bitsmax", OPT, S, bits_max, 0, UINT32_MAX),
    U64("reqmax", OPT, S, req_bytes_max)};
#undef S
#define S struct qkdn_link_block
static const struct field link_block[] = {
    NAME("link", REQ, S, link), U64("blk", REQ, S, block_id),
    BYTES("bytes", REQ, S, bytes.len, QKDN_BLOCK_BYTES_MAX)};
#undef S
#define S struct qkdn_sync_req
static const struct field sync_req_fields[] = {
    NAME("src", REQ, S, src_sae), NAME("dst", REQ, S, dst_sae), BITS(S),
    IDS("ids", REQ, S, ids, 1)};
#undef S
static const struct table sync_req_table = TABLE(sync_req_fields);
static const struct field el_sync_req = {
    .key = "", .type = F_MAP, .sub = &sync_req_table};
#define S struct qkdn_key_sync
static const struct field key_sync[] = {
    NAME("link", REQ, S, link), SEGS("segs", REQ, S, segs),
    ARRAY("reqs", REQ, S, reqs.n, 1, QKDN_KEYS_MAX, el_sync_req,
          struct qkdn_sync_req)};
#undef S
#define S struct qkdn_key_sync_auth
static const struct field key_sync_auth[] = {
    BYTES("sync", REQ, S, sync.len, QKDN_BYTES_MAX),
    BYTES("tag", REQ, S, tag.len, 16)};
#undef S
#define S struct qkdn_kme_keys
static const struct field kme_keys[] = {NAME("link", REQ, S, link),
                                        U64("blk", REQ, S, block_id), BITS(S),
                                        IDS("ids", REQ, S, ids, 1)};
#undef S
#define S struct qkdn_kme_keys_auth
static const struct field kme_keys_auth[] = {
    BYTES("keys", REQ, S, keys.len, QKDN_BYTES_MAX),
    BYTES("tag", REQ, S, tag.len, 16)};
#undef S
static const struct field ack[] = {
    RESULT(struct qkdn_ack), U64("val", OPT, struct qkdn_ack, value),
    BYTES("tag", OPT, struct qkdn_ack, tag.len, 16)};
static const struct field link_ctl[] = {
    NAME("link", REQ, struct qkdn_link_ctl, link),
    U32("act", REQ, struct qkdn_link_ctl, action, QKDN_LINK_PAUSE,
        QKDN_LINK_RESUME)};

_Static_assert(offsetof(struct qkdn_link_status, link) == 0, "layout");

struct msgdef {
	uint32_t type;
	const char *name;
	struct table body;
};

#define MSG(t, n, f)                                                           \
	{                                                                      \
		t, n, TABLE(f)                                                 \
	}
static const struct msgdef msgdefs[] = {
    MSG(QKDN_KEY_REQ, "key request", key_req),
    MSG(QKDN_KEY_RSP, "response to key request", key_rsp),
    MSG(QKDN_KEY_REQ_ID, "key request with ID", key_req_id),
    MSG(QKDN_SESSION_CREATE_REQ, "session creation request",
        session_create_req),
    MSG(QKDN_SESSION_CREATE_NOTIF, "session creation notification",
        session_create_notif),
    MSG(QKDN_SESSION_NOTIF_RSP, "response to session creation notification",
        session_notif_rsp),
    MSG(QKDN_SESSION_CREATE_RSP, "response to session creation request",
        session_create_rsp),
    MSG(QKDN_KEY_REQ_SESSION, "key request with session ID", key_req_session),
    MSG(QKDN_KEY_SUPPLY_NOTIF, "key supply notification", key_supply_notif),
    MSG(QKDN_PROACTIVE_SUPPLY, "proactive key supply", proactive_supply),
    MSG(QKDN_PROACTIVE_SUPPLY_RSP, "response to proactive key supply",
        proactive_supply_rsp),
    MSG(QKDN_KEY_SUPPLY_NOTIF_RSP, "response to key supply notification",
        key_supply_notif_rsp),
    MSG(QKDN_KEY_REQ_SESSION_RSP, "response to key request with session ID",
        key_req_session_rsp),
    MSG(QKDN_NEXT_HOP_REQ, "key relay next hop request", next_hop_req),
    MSG(QKDN_NEXT_HOP_RSP, "response to key relay next hop request",
        next_hop_rsp),
    MSG(QKDN_RELAY_DONE_NOTIF, "key relay completion notification",
        relay_done_notif),
    MSG(QKDN_RELAY_REQ_NOTIF, "key relay request notification",
        relay_req_notif),
    MSG(QKDN_RELAY_REQ, "key relay request", relay_req),
    MSG(QKDN_KEY_RELAY, "key relay", key_relay),
    MSG(QKDN_RELAY_REQ_RSP, "response to key relay request", relay_req_rsp),
    MSG(QKDN_RESERVE_REQ, "key reservation request", reserve_req),
    MSG(QKDN_RESERVE_RSP, "response to key reservation request", reserve_rsp),
    MSG(QKDN_ALLOC_REQ, "key allocation request", alloc_req),
    MSG(QKDN_ALLOC_RSP, "response to key allocation request", alloc_rsp),
    MSG(QKDN_ERROR, "error", error_msg),
    MSG(QKDN_STATUS_REQ, "status request", status_req),
    MSG(QKDN_STATUS_RSP, "status response", status_rsp),
    MSG(QKDN_LINK_BLOCK, "link key block", link_block),
    MSG(QKDN_KEY_SYNC, "key sync", key_sync),
    MSG(QKDN_ACK, "acknowledgement", ack),
    MSG(QKDN_LINK_CTL, "link control", link_ctl),
    MSG(QKDN_KEY_SYNC_AUTH, "authenticated key sync", key_sync_auth),
    MSG(QKDN_KEY_RELAY_AUTH, "authenticated key relay", key_relay_auth),
    MSG(QKDN_RELAY_ABORT, "relay abort", relay_abort),
    MSG(QKDN_RESERVE_RELEASE, "reservation release", reserve_release),
    MSG(QKDN_LINK_STATE, "link-state update", link_state_update),
    MSG(QKDN_ROUTE_QUERY, "route query", route_query),
    MSG(QKDN_CTL_STATUS, "controller status", ctl_status),
    MSG(QKDN_KME_KEYS, "KME key IDs", kme_keys),
    MSG(QKDN_KME_KEYS_AUTH, "authenticated KME key IDs", kme_keys_auth),
};

static const struct msgdef *
find_msgdef(uint32_t type)
{
	for (size_t i = 0; i < sizeof(msgdefs) / sizeof(msgdefs[0]); i++)
		if (msgdefs[i].type == type)
			return &msgdefs[i];
	return NULL;
}

const char *
qkdn_msg_type_name(uint32_t type)
{
	const struct msgdef *d = find_msgdef(type);
	return d != NULL ? d->name : NULL;
}

/* ---- shared validation ---- */

static int
fail(struct qkdn_decode_error *err, int code, const char *fmt, ...)
{
	if (err != NULL) {
		va_list ap;
		va_start(ap, fmt);
		err->code = code;
		vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
		va_end(ap);
	}
	return code;
}

static bool
utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		size_t n;
		uint32_t cp;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1, cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		static const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
		if (cp < min_cp[n] || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

static int
check_string(const struct field *f, const char *s, size_t len,
             struct qkdn_decode_error *err)
{
	if ((int64_t)len < f->lo)
		return fail(err, QKDN_E_RANGE, "field '%s' is empty", f->key);
	if ((int64_t)len > f->hi)
		return fail(err, QKDN_E_TOO_LARGE,
		            "field '%s' is longer than %lld bytes", f->key,
		            (long long)f->hi);
	if (!utf8_valid((const uint8_t *)s, len))
		return fail(err, QKDN_E_BAD_REQUEST,
		            "field '%s' is not valid UTF-8 text", f->key);
	return 0;
}

static int
check_count(const struct field *f, uint64_t n, struct qkdn_decode_error *err)
{
	if ((int64_t)n < f->lo)
		return fail(err, QKDN_E_RANGE,
		            "field '%s' has %llu items, fewer than %lld",
		            f->key, (unsigned long long)n, (long long)f->lo);
	if ((int64_t)n > f->hi)
		return fail(err, QKDN_E_TOO_LARGE,
		            "field '%s' has %llu items, more than %lld", f->key,
		            (unsigned long long)n, (long long)f->hi);
	return 0;
}

static int
check_int(const struct field *f, int64_t v, struct qkdn_decode_error *err)
{
	if (v < f->lo || v > f->hi)
		return fail(err, QKDN_E_RANGE,
		            "field '%s' = %lld is outside %lld..%lld", f->key,
		            (long long)v, (long long)f->lo, (long long)f->hi);
	if (f->step > 1 && v % f->step != 0)
		return fail(err, QKDN_E_RANGE,
		            "field '%s' = %lld is not a multiple of %lld",
		            f->key, (long long)v, (long long)f->step);
	return 0;
}

/* ---- encoder ---- */

static int encode_map(msgpack_packer *pk, const struct table *t,
                      const uint8_t *base, struct qkdn_decode_error *err);

static int
encode_value(msgpack_packer *pk, const struct field *f, const uint8_t *p,
             struct qkdn_decode_error *err)
{
	int rv = 0;
	switch (f->type) {
	case F_NAME:
	case F_TEXT: {
		size_t max =
		    f->type == F_NAME ? QKDN_NAME_MAX : QKDN_REASON_MAX;
		size_t len = strnlen((const char *)p, max);
		if ((rv = check_string(f, (const char *)p, len, err)) != 0)
			return rv;
		rv = msgpack_pack_str_with_body(pk, p, len);
		break;
	}
	case F_U32: {
		uint32_t v;
		memcpy(&v, p, sizeof(v));
		if ((rv = check_int(f, v, err)) != 0)
			return rv;
		rv = msgpack_pack_uint32(pk, v);
		break;
	}
	case F_I32: {
		int32_t v;
		memcpy(&v, p, sizeof(v));
		if ((rv = check_int(f, v, err)) != 0)
			return rv;
		rv = msgpack_pack_int32(pk, v);
		break;
	}
	case F_U64: {
		uint64_t v;
		memcpy(&v, p, sizeof(v));
		rv = msgpack_pack_uint64(pk, v);
		break;
	}
	case F_UUID:
		rv = msgpack_pack_bin_with_body(pk, p, 16);
		break;
	case F_BYTES: {
		const struct qkdn_bytes *b = (const void *)p;
		if ((rv = check_count(f, b->len, err)) != 0)
			return rv;
		rv = msgpack_pack_bin_with_body(pk, b->ptr, b->len);
		break;
	}
	case F_ARRAY: {
		const struct array *a = (const void *)p;
		if ((rv = check_count(f, a->n, err)) != 0)
			return rv;
		if ((rv = msgpack_pack_array(pk, a->n)) != 0)
			break;
		for (uint32_t i = 0; i < a->n && rv == 0; i++)
			rv = encode_value(
			    pk, f->elem,
			    (const uint8_t *)a->v + i * f->elem_size, err);
		return rv;
	}
	case F_MAP:
		return encode_map(pk, f->sub, p, err);
	}
	return rv != 0 ? fail(err, QKDN_E_NOMEM, "encoder could not write") : 0;
}

/* An optional name, text or byte string left empty is not sent: the
 * decoder refuses an empty name or byte string, and omitting the key is how
 * "absent" travels. */
static bool
absent(const struct field *f, const uint8_t *p)
{
	if (f->required)
		return false;
	if (f->type == F_NAME || f->type == F_TEXT)
		return p[0] == 0;
	if (f->type == F_BYTES)
		return ((const struct qkdn_bytes *)p)->len == 0;
	if (f->type == F_ARRAY)
		return ((const struct array *)p)->n == 0;
	if (f->type == F_UUID) {
		static const uint8_t zero[16];
		return memcmp(p, zero, sizeof(zero)) == 0;
	}
	return false;
}

static int
encode_map(msgpack_packer *pk, const struct table *t, const uint8_t *base,
           struct qkdn_decode_error *err)
{
	int rv;
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++)
		n += !absent(&t->f[i], base + t->f[i].off);
	if (msgpack_pack_map(pk, n) != 0)
		return fail(err, QKDN_E_NOMEM, "encoder could not write");
	for (size_t i = 0; i < t->n; i++) {
		const struct field *f = &t->f[i];
		if (absent(f, base + f->off))
			continue;
		size_t klen = strlen(f->key);
		if (msgpack_pack_str_with_body(pk, f->key, klen) != 0)
			return fail(err, QKDN_E_NOMEM,
			            "encoder could not write");
		if ((rv = encode_value(pk, f, base + f->off, err)) != 0)
			return rv;
	}
	return 0;
}

int
qkdn_msg_encode(const struct qkdn_msg *m, qkdn_write_fn write, void *ctx)
{
	const struct msgdef *d = find_msgdef(m->type);
	if (d == NULL)
		return QKDN_E_UNKNOWN_TYPE;
	msgpack_packer pk;
	msgpack_packer_init(&pk, ctx, write);
	if (msgpack_pack_array(&pk, 4) != 0 ||
	    msgpack_pack_uint32(&pk, QKDN_PROTO_VERSION) != 0 ||
	    msgpack_pack_uint32(&pk, m->type) != 0 ||
	    msgpack_pack_uint64(&pk, m->req_id) != 0)
		return QKDN_E_NOMEM;
	return encode_map(&pk, &d->body, (const uint8_t *)&m->u, NULL);
}

/* Grow to exactly cap by copy, so no stale copy of a secret is left
 * behind by realloc. */
static int
grow(struct qkdn_buf *b, size_t cap)
{
	uint8_t *d = malloc(cap);
	if (d == NULL)
		return -1;
	if (b->len > 0)
		memcpy(d, b->data, b->len);
	if (b->data != NULL) {
		explicit_bzero(b->data, b->cap);
		free(b->data);
	}
	b->data = d;
	b->cap = cap;
	return 0;
}

int
qkdn_buf_reserve(struct qkdn_buf *b, size_t cap)
{
	if (cap > QKDN_MSG_BYTES_MAX)
		return -1;
	return cap > b->cap ? grow(b, cap) : 0;
}

int
qkdn_buf_write(void *vb, const char *data, size_t len)
{
	struct qkdn_buf *b = vb;
	if (len > QKDN_MSG_BYTES_MAX || b->len + len > QKDN_MSG_BYTES_MAX)
		return -1;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		while (cap < b->len + len)
			cap *= 2;
		if (grow(b, cap) != 0)
			return -1;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

void
qkdn_buf_free(struct qkdn_buf *b)
{
	if (b->data != NULL) {
		explicit_bzero(b->data, b->cap);
		free(b->data);
	}
	memset(b, 0, sizeof(*b));
}

/* ---- decoder ---- */

static const char *
type_word(msgpack_object_type t)
{
	switch (t) {
	case MSGPACK_OBJECT_NIL:
		return "nil";
	case MSGPACK_OBJECT_BOOLEAN:
		return "boolean";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return "integer";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return "float";
	case MSGPACK_OBJECT_STR:
		return "string";
	case MSGPACK_OBJECT_ARRAY:
		return "array";
	case MSGPACK_OBJECT_MAP:
		return "map";
	case MSGPACK_OBJECT_BIN:
		return "binary";
	default:
		return "extension";
	}
}

static int
wrong_type(const struct field *f, const msgpack_object *o, const char *want,
           struct qkdn_decode_error *err)
{
	return fail(err, QKDN_E_WRONG_TYPE, "field '%s' must be %s, not %s",
	            f->key, want, type_word(o->type));
}

static int decode_map(const msgpack_object *o, const struct table *t,
                      uint8_t *base, struct qkdn_msg *m, const char *what,
                      struct qkdn_decode_error *err);

static int
get_int(const msgpack_object *o, int64_t *v)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > INT64_MAX)
			return -1;
		*v = (int64_t)o->via.u64;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
		return 0;
	}
	return -1;
}

static int
decode_value(const msgpack_object *o, const struct field *f, uint8_t *p,
             struct qkdn_msg *m, struct qkdn_decode_error *err)
{
	int rv;
	switch (f->type) {
	case F_NAME:
	case F_TEXT:
		if (o->type != MSGPACK_OBJECT_STR)
			return wrong_type(f, o, "a string", err);
		if ((rv = check_string(f, o->via.str.ptr, o->via.str.size,
		                       err)) != 0)
			return rv;
		memcpy(p, o->via.str.ptr, o->via.str.size);
		p[o->via.str.size] = 0;
		return 0;
	case F_U32:
	case F_I32: {
		int64_t v;
		if (get_int(o, &v) != 0)
			return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER
			           ? fail(err, QKDN_E_RANGE,
			                  "field '%s' is too large", f->key)
			           : wrong_type(f, o, "an integer", err);
		if ((rv = check_int(f, v, err)) != 0)
			return rv;
		if (f->type == F_U32) {
			uint32_t u = (uint32_t)v;
			memcpy(p, &u, sizeof(u));
		} else {
			int32_t i = (int32_t)v;
			memcpy(p, &i, sizeof(i));
		}
		return 0;
	}
	case F_U64:
		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER
			           ? fail(err, QKDN_E_RANGE,
			                  "field '%s' is negative", f->key)
			           : wrong_type(f, o, "an integer", err);
		memcpy(p, &o->via.u64, sizeof(uint64_t));
		return 0;
	case F_UUID:
		if (o->type != MSGPACK_OBJECT_BIN)
			return wrong_type(f, o, "16 bytes of binary", err);
		if (o->via.bin.size != 16)
			return fail(err, QKDN_E_RANGE,
			            "field '%s' must be 16 bytes, not %u",
			            f->key, o->via.bin.size);
		memcpy(p, o->via.bin.ptr, 16);
		return 0;
	case F_BYTES: {
		struct qkdn_bytes *b = (void *)p;
		if (o->type != MSGPACK_OBJECT_BIN)
			return wrong_type(f, o, "binary", err);
		if ((rv = check_count(f, o->via.bin.size, err)) != 0)
			return rv;
		if ((b->ptr = qkdn_msg_alloc(m, o->via.bin.size)) == NULL)
			return fail(err, QKDN_E_NOMEM, "out of memory");
		memcpy(b->ptr, o->via.bin.ptr, o->via.bin.size);
		b->len = o->via.bin.size;
		return 0;
	}
	case F_ARRAY: {
		struct array *a = (void *)p;
		if (o->type != MSGPACK_OBJECT_ARRAY)
			return wrong_type(f, o, "an array", err);
		if ((rv = check_count(f, o->via.array.size, err)) != 0)
			return rv;
		if (o->via.array.size > 0 &&
		    (a->v = qkdn_msg_alloc(m, o->via.array.size *
		                                  f->elem_size)) == NULL)
			return fail(err, QKDN_E_NOMEM, "out of memory");
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			const struct field *el = f->elem;
			uint8_t *ep = (uint8_t *)a->v + i * f->elem_size;
			rv = el->type == F_MAP
			         ? decode_map(&o->via.array.ptr[i], el->sub, ep,
			                      m, f->key, err)
			         : decode_value(&o->via.array.ptr[i], el, ep, m,
			                        err);
			if (rv != 0) {
				if (err != NULL && el->type != F_MAP) {
					char inner[QKDN_REASON_MAX];
					memcpy(inner, err->reason,
					       sizeof(inner));
					snprintf(err->reason,
					         sizeof(err->reason),
					         "item %u of '%s': %.200s", i,
					         f->key, inner);
				}
				return rv;
			}
		}
		a->n = o->via.array.size;
		return 0;
	}
	case F_MAP:
		return decode_map(o, f->sub, p, m, f->key, err);
	}
	return fail(err, QKDN_E_INTERNAL, "bad field table");
}

static int
decode_map(const msgpack_object *o, const struct table *t, uint8_t *base,
           struct qkdn_msg *m, const char *what, struct qkdn_decode_error *err)
{
	uint32_t seen = 0;
	int rv;
	if (o->type != MSGPACK_OBJECT_MAP)
		return fail(err, QKDN_E_WRONG_TYPE, "%s must be a map, not %s",
		            what, type_word(o->type));
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR)
			return fail(err, QKDN_E_WRONG_TYPE,
			            "%s has a key that is not a string", what);
		for (size_t k = 0; k < t->n; k++) {
			const struct field *f = &t->f[k];
			if (strlen(f->key) != kv->key.via.str.size ||
			    memcmp(f->key, kv->key.via.str.ptr,
			           kv->key.via.str.size) != 0)
				continue;
			if (seen & (1u << k))
				return fail(err, QKDN_E_BAD_REQUEST,
				            "field '%s' appears twice", f->key);
			seen |= 1u << k;
			if ((rv = decode_value(&kv->val, f, base + f->off, m,
			                       err)) != 0)
				return rv;
			break;
		}
		/* a key not in the table is ignored: newer peers may add */
	}
	for (size_t k = 0; k < t->n; k++)
		if (t->f[k].required && !(seen & (1u << k)))
			return fail(err, QKDN_E_MISSING_FIELD,
			            "%s lacks required field '%s'", what,
			            t->f[k].key);
	return 0;
}

int
qkdn_msg_decode(const uint8_t *buf, size_t len, struct qkdn_msg *out,
                struct qkdn_decode_error *err)
{
	const char *why = NULL;
	msgpack_unpacked up;
	size_t off = 0;
	int rv;

	memset(out, 0, sizeof(*out));
	if (len > QKDN_MSG_BYTES_MAX)
		return fail(err, QKDN_E_TOO_LARGE,
		            "message of %zu bytes exceeds %u", len,
		            QKDN_MSG_BYTES_MAX);
	if ((rv = qkdn_mp_scan(buf, len, &why)) != 0)
		return fail(err, rv, "%s", why);

	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)buf, len, &off) !=
	    MSGPACK_UNPACK_SUCCESS) {
		rv = fail(err, QKDN_E_BAD_REQUEST, "not MessagePack");
		goto out;
	}
	const msgpack_object *env = &up.data;
	if (env->type != MSGPACK_OBJECT_ARRAY || env->via.array.size < 4) {
		rv = fail(err, QKDN_E_BAD_REQUEST,
		          "envelope must be [version, type, id, body]");
		goto out;
	}
	const msgpack_object *e = env->via.array.ptr;
	if (e[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    e[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    e[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		rv = fail(err, QKDN_E_WRONG_TYPE,
		          "envelope version, type and id must be unsigned "
		          "integers");
		goto out;
	}
	if (e[0].via.u64 != QKDN_PROTO_VERSION) {
		rv = fail(err, QKDN_E_VERSION,
		          "protocol version %llu, this side speaks %d",
		          (unsigned long long)e[0].via.u64, QKDN_PROTO_VERSION);
		goto out;
	}
	const struct msgdef *d = e[1].via.u64 <= UINT32_MAX
	                             ? find_msgdef((uint32_t)e[1].via.u64)
	                             : NULL;
	if (d == NULL) {
		rv = fail(err, QKDN_E_UNKNOWN_TYPE, "unknown message type %llu",
		          (unsigned long long)e[1].via.u64);
		goto out;
	}
	out->type = d->type;
	out->req_id = e[2].via.u64;
	rv = decode_map(&e[3], &d->body, (uint8_t *)&out->u, out, "body", err);
out:
	msgpack_unpacked_destroy(&up);
	if (rv != 0)
		qkdn_msg_clear(out);
	return rv;
}

/* ---- UUIDs and names ---- */

/* The kernel's CSPRNG (the codec links nothing but msgpack-c). getrandom
 * without flags blocks only before the pool is first seeded at boot. */
static void
random_fill(void *out, size_t len)
{
	uint8_t *p = out;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno != EINTR) {
			abort(); /* no randomness: a guessable ID is worse */
		}
	}
}

void
qkdn_uuid_random(qkdn_uuid *out)
{
	random_fill(out->b, sizeof(out->b));
	out->b[6] = (out->b[6] & 0x0f) | 0x40;
	out->b[8] = (out->b[8] & 0x3f) | 0x80;
}

void
qkdn_uuid_v7(qkdn_uuid *out, size_t n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ms =
	    (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	random_fill(out, n * sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		uint8_t *b = out[i].b;
		for (int k = 0; k < 6; k++)
			b[k] = (uint8_t)(ms >> (40 - 8 * k));
		b[6] = (b[6] & 0x0f) | 0x70;
		b[8] = (b[8] & 0x3f) | 0x80;
	}
}

void
qkdn_uuid_format(const qkdn_uuid *id, char out[37])
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[id->b[i] >> 4];
		out[o++] = hex[id->b[i] & 15];
	}
	out[o] = 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
qkdn_uuid_parse(const char *text, qkdn_uuid *out)
{
	size_t o = 0;
	if (strlen(text) != 36)
		return QKDN_E_BAD_REQUEST;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10) {
			if (text[o++] != '-')
				return QKDN_E_BAD_REQUEST;
		}
		int hi = hexval(text[o]), lo = hexval(text[o + 1]);
		if (hi < 0 || lo < 0)
			return QKDN_E_BAD_REQUEST;
		out->b[i] = (uint8_t)(hi << 4 | lo);
		o += 2;
	}
	return 0;
}

int
qkdn_name_set(qkdn_name dst, const char *src)
{
	size_t len = strlen(src);
	if (len == 0)
		return QKDN_E_BAD_REQUEST;
	if (len >= QKDN_NAME_MAX)
		return QKDN_E_TOO_LARGE;
	memcpy(dst, src, len + 1);
	return 0;
}

_Static_assert(offsetof(struct qkdn_key, bytes) -
                       offsetof(struct qkdn_key, len) ==
                   offsetof(struct qkdn_bytes, ptr),
               "qkdn_key bytes must look like qkdn_bytes");
_Static_assert(offsetof(struct qkdn_status_rsp, links) -
                       offsetof(struct qkdn_status_rsp, n_links) ==
                   offsetof(struct array, v),
               "status links must look like an array");
