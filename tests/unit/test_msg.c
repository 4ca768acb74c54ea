/* Unit tests of the qkdn wire codec (proto/msg.c, proto/mp_scan.c): a round
 * trip for every message type, refusal of every kind of malformed input with
 * the right code and a reason, encoder validation, UUIDs and error texts.
 * Malformed inputs are built with msgpack-c's own packer so each one breaks
 * exactly one rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "qkdn_err.h"
#include "qkdn_msg.h"
#include "samples.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- editing samples (tests/common/samples.c builds them) ---- */

static void
set_name(qkdn_name dst, const char *src)
{
	assert_int_equal(qkdn_name_set(dst, src), 0);
}

/* ---- comparing decoded with built ---- */

static void
same_ids(const struct qkdn_ids *a, const struct qkdn_ids *b)
{
	assert_int_equal(a->n, b->n);
	assert_true(a->n > 0);
	assert_memory_equal(a->v, b->v, a->n * sizeof(qkdn_uuid));
}

static void
same_bytes(const struct qkdn_bytes *a, const struct qkdn_bytes *b)
{
	assert_int_equal(a->len, b->len);
	assert_true(a->len > 0);
	assert_memory_equal(a->ptr, b->ptr, a->len);
}

static void
same_keys(const struct qkdn_keys *a, const struct qkdn_keys *b)
{
	assert_int_equal(a->n, b->n);
	assert_true(a->n > 0);
	for (uint32_t i = 0; i < a->n; i++) {
		assert_memory_equal(a->v[i].id.b, b->v[i].id.b, 16);
		assert_int_equal(a->v[i].len, b->v[i].len);
		assert_memory_equal(a->v[i].bytes, b->v[i].bytes, a->v[i].len);
	}
}

static void
same_segs(const struct qkdn_segments *a, const struct qkdn_segments *b)
{
	assert_int_equal(a->n, b->n);
	assert_true(a->n > 0);
	for (uint32_t i = 0; i < a->n; i++) {
		assert_int_equal(a->v[i].block_id, b->v[i].block_id);
		assert_int_equal(a->v[i].offset, b->v[i].offset);
		assert_int_equal(a->v[i].len, b->v[i].len);
	}
}

static void
same_route(const struct qkdn_route *a, const struct qkdn_route *b)
{
	assert_int_equal(a->n, b->n);
	assert_true(a->n > 0);
	for (uint32_t i = 0; i < a->n; i++)
		assert_string_equal(a->v[i], b->v[i]);
}

#define SAME_NAME(f)  assert_string_equal(a->f, b->f)
#define SAME_INT(f)   assert_int_equal(a->f, b->f)
#define SAME_UUID(f)  assert_memory_equal(a->f.b, b->f.b, 16)
#define SAME_IDS(f)   same_ids(&a->f, &b->f)
#define SAME_KEYS(f)  same_keys(&a->f, &b->f)
#define SAME_ROUTE(f) same_route(&a->f, &b->f)
#define SAME_BYTES(f) same_bytes(&a->f, &b->f)
#define SAME_SEGS(f)  same_segs(&a->f, &b->f)
#define PAIR(T, member)                                                        \
	const struct T *a = &x->u.member, *b = &y->u.member;                   \
	(void)a;                                                               \
	(void)b

/* Optional arrays and byte strings: both empty, or the same. */
static void
same_ids_opt(const struct qkdn_ids *a, const struct qkdn_ids *b)
{
	assert_int_equal(a->n, b->n);
	if (a->n > 0)
		same_ids(a, b);
}

static void
same_bytes_opt(const struct qkdn_bytes *a, const struct qkdn_bytes *b)
{
	assert_int_equal(a->len, b->len);
	if (a->len > 0)
		same_bytes(a, b);
}

static void
same_segs_opt(const struct qkdn_segments *a, const struct qkdn_segments *b)
{
	assert_int_equal(a->n, b->n);
	if (a->n > 0)
		same_segs(a, b);
}

static void
same_link_states(const struct qkdn_link_states *a,
                 const struct qkdn_link_states *b)
{
	assert_int_equal(a->n, b->n);
	for (uint32_t i = 0; i < a->n; i++) {
		const struct qkdn_link_state *x = &a->v[i], *y = &b->v[i];
		assert_string_equal(x->link, y->link);
		assert_string_equal(x->a, y->a);
		assert_string_equal(x->b, y->b);
		assert_int_equal(x->up, y->up);
		assert_int_equal(x->a_out, y->a_out);
		assert_int_equal(x->b_out, y->b_out);
		assert_int_equal(x->rate_bps, y->rate_bps);
		assert_int_equal(x->age_ms, y->age_ms);
	}
}

#define SAME_IDS_OPT(f)   same_ids_opt(&a->f, &b->f)
#define SAME_BYTES_OPT(f) same_bytes_opt(&a->f, &b->f)
#define SAME_SEGS_OPT(f)  same_segs_opt(&a->f, &b->f)

static void
check_key_req(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_key_req, key_req);
	SAME_NAME(sae);
	SAME_NAME(dst_sae);
	SAME_INT(bits);
	SAME_INT(count);
}

static void
check_key_rsp(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_key_rsp, key_rsp);
	SAME_KEYS(keys);
}

static void
check_key_req_id(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_key_req_id, key_req_id);
	SAME_NAME(sae);
	SAME_IDS(ids);
	SAME_NAME(src_sae);
}

static void
check_session_create_req(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_session_create_req, session_create_req);
	SAME_NAME(sae);
	SAME_NAME(dst_sae);
	SAME_NAME(src_node);
	SAME_NAME(dst_node);
	SAME_INT(bits);
}

static void
check_session_create_notif(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_session_create_notif, session_create_notif);
	SAME_UUID(session_id);
	SAME_NAME(src_sae);
	SAME_NAME(dst_sae);
	SAME_NAME(src_node);
	SAME_INT(bits);
}

static void
check_session_notif_rsp(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_session_notif_rsp, session_notif_rsp);
	SAME_UUID(session_id);
	SAME_INT(result);
}

static void
check_session_create_rsp(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_session_create_rsp, session_create_rsp);
	SAME_UUID(session_id);
	SAME_INT(result);
}

static void
check_key_req_session(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_key_req_session, key_req_session);
	SAME_UUID(session_id);
	SAME_NAME(sae);
	SAME_INT(count);
}

static void
check_key_supply_notif(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_key_supply_notif, key_supply_notif);
	SAME_UUID(session_id);
	SAME_INT(count);
	SAME_INT(bits);
	SAME_IDS_OPT(ids);
}

static void
check_proactive_supply(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_proactive_supply, proactive_supply);
	SAME_UUID(session_id);
	SAME_KEYS(keys);
}

static void
check_proactive_supply_rsp(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_proactive_supply_rsp, proactive_supply_rsp);
	SAME_UUID(session_id);
	SAME_IDS_OPT(ids);
}

static void
check_key_supply_notif_rsp(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_key_supply_notif_rsp, key_supply_notif_rsp);
	SAME_UUID(session_id);
	SAME_INT(result);
	SAME_IDS_OPT(ids);
}

static void
check_key_req_session_rsp(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_key_req_session_rsp, key_req_session_rsp);
	SAME_UUID(session_id);
	SAME_KEYS(keys);
}

static void
check_next_hop_req(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_next_hop_req, next_hop_req);
	SAME_UUID(relay_id);
	SAME_NAME(here);
	SAME_NAME(dst_node);
	SAME_INT(bytes);
	SAME_INT(route.n);
	if (a->route.n > 0)
		SAME_ROUTE(route);
}

static void
check_next_hop_rsp(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_next_hop_rsp, next_hop_rsp);
	SAME_UUID(relay_id);
	SAME_INT(result);
	SAME_NAME(next_hop);
	SAME_NAME(link);
	SAME_INT(version);
}

static void
check_relay_done_notif(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_relay_done_notif, relay_done_notif);
	SAME_UUID(relay_id);
	SAME_INT(result);
	SAME_IDS_OPT(ids);
	SAME_BYTES_OPT(tag);
}

static void
check_relay_req_notif(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_relay_req_notif, relay_req_notif);
	SAME_UUID(relay_id);
	SAME_NAME(src_node);
	SAME_NAME(dst_node);
	SAME_INT(count);
	SAME_INT(bits);
	SAME_NAME(src_sae);
	SAME_NAME(dst_sae);
	SAME_INT(reserve);
}

static void
check_relay_req(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_relay_req, relay_req);
	SAME_UUID(relay_id);
	SAME_INT(routes.n);
	for (uint32_t i = 0; i < a->routes.n; i++)
		same_route(&a->routes.v[i].nodes, &b->routes.v[i].nodes);
	SAME_INT(version);
	SAME_UUID(reservation_id);
	SAME_NAME(src_sae);
	SAME_NAME(dst_sae);
	SAME_INT(bits);
	SAME_IDS_OPT(ids);
	SAME_NAME(link);
	SAME_SEGS_OPT(segs);
}

static void
check_key_relay(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_key_relay, key_relay);
	SAME_UUID(relay_id);
	SAME_ROUTE(route);
	SAME_INT(hop);
	SAME_NAME(src_sae);
	SAME_NAME(dst_sae);
	SAME_INT(bits);
	SAME_INT(ttl_ms);
	SAME_NAME(link);
	SAME_SEGS(segs);
	SAME_IDS(ids);
	SAME_BYTES_OPT(ciphertext);
}

static void
check_relay_req_rsp(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_relay_req_rsp, relay_req_rsp);
	SAME_UUID(relay_id);
	SAME_INT(result);
	SAME_UUID(reservation_id);
}

static void
check_reserve_req(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_reserve_req, reserve_req);
	SAME_UUID(reservation_id);
	SAME_NAME(dst_node);
	SAME_NAME(next_hop);
	SAME_INT(count);
	SAME_INT(bits);
	SAME_INT(ttl_ms);
}

static void
check_reserve_rsp(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_reserve_rsp, reserve_rsp);
	SAME_UUID(reservation_id);
	SAME_INT(result);
	SAME_IDS_OPT(ids);
	SAME_NAME(link);
	SAME_SEGS_OPT(segs);
}

static void
check_alloc_req(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_alloc_req, alloc_req);
	SAME_UUID(reservation_id);
	SAME_NAME(dst_node);
	SAME_NAME(src_sae);
	SAME_NAME(dst_sae);
}

static void
check_alloc_rsp(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_alloc_rsp, alloc_rsp);
	SAME_UUID(reservation_id);
	SAME_INT(result);
	SAME_IDS_OPT(ids);
}

static void
check_error(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_error, error);
	SAME_INT(code);
	SAME_NAME(reason);
}

static void
check_status_req(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_status_req, status_req);
	SAME_INT(flags);
}

static void
check_status_rsp(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_status_rsp, status_rsp);
	SAME_NAME(node);
	SAME_INT(keys_supplied);
	SAME_INT(keys_pending);
	SAME_INT(errors);
	SAME_INT(ak_errors);
	SAME_INT(kx_errors);
	SAME_INT(n_links);
	for (uint32_t i = 0; i < a->n_links; i++) {
		SAME_NAME(links[i].link);
		SAME_NAME(links[i].peer);
		SAME_INT(links[i].out_bytes);
		SAME_INT(links[i].in_bytes);
		SAME_INT(links[i].blocks);
		SAME_INT(links[i].up);
		SAME_INT(links[i].out_of_sync);
		SAME_INT(links[i].sync_failures);
		SAME_INT(links[i].out_max);
		SAME_NAME(links[i].down);
	}
	SAME_INT(keys_max);
	SAME_INT(bits_min);
	SAME_INT(bits_max);
	SAME_INT(req_bytes_max);
	SAME_INT(relay.started);
	SAME_INT(relay.completed);
	SAME_INT(relay.failed);
	SAME_INT(relay.in_flight);
	SAME_INT(relay.forwarded);
	SAME_INT(relay.delivered);
	SAME_INT(relay.rejected);
	SAME_INT(relay.next_hop_reqs);
	SAME_INT(relay.relay_req_notifs);
	SAME_INT(relay.relay_req_rsps);
	SAME_INT(relay.done_notifs);
	SAME_INT(relay.reservations);
	SAME_INT(relay.allocations);
	SAME_INT(relay.keys_relayed);
}

static void
check_link_block(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_link_block, link_block);
	SAME_NAME(link);
	SAME_INT(block_id);
	SAME_BYTES(bytes);
}

static void
check_key_sync(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_key_sync, key_sync);
	SAME_NAME(link);
	SAME_SEGS(segs);
	SAME_INT(reqs.n);
	assert_true(a->reqs.n > 0);
	for (uint32_t i = 0; i < a->reqs.n; i++) {
		SAME_NAME(reqs.v[i].src_sae);
		SAME_NAME(reqs.v[i].dst_sae);
		SAME_INT(reqs.v[i].bits);
		SAME_IDS(reqs.v[i].ids);
	}
}

static void
check_key_sync_auth(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_key_sync_auth, key_sync_auth);
	SAME_BYTES(sync);
	SAME_BYTES(tag);
}

static void
check_kme_keys(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_kme_keys, kme_keys);
	SAME_NAME(link);
	SAME_INT(block_id);
	SAME_INT(bits);
	SAME_IDS(ids);
}

static void
check_kme_keys_auth(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_kme_keys_auth, kme_keys_auth);
	SAME_BYTES(keys);
	SAME_BYTES(tag);
}

static void
check_ack(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_ack, ack);
	SAME_INT(result);
	SAME_INT(value);
	SAME_BYTES_OPT(tag);
}

static void
check_link_ctl(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_link_ctl, link_ctl);
	SAME_NAME(link);
	SAME_INT(action);
}

static void
check_key_relay_auth(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_key_relay_auth, key_relay_auth);
	SAME_BYTES(relay);
	SAME_BYTES(tag);
}

static void
check_relay_abort(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_relay_abort, relay_abort);
	SAME_UUID(relay_id);
	SAME_IDS_OPT(ids);
	SAME_NAME(reason);
}

static void
check_reserve_release(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_reserve_release, reserve_release);
	SAME_UUID(reservation_id);
}

static void
check_link_state(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_link_state_update, link_state);
	SAME_NAME(origin);
	SAME_INT(seq);
	SAME_INT(max_age_ms);
	same_link_states(&a->links, &b->links);
}

static void
check_route_query(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_route_query, route_query);
	SAME_NAME(src_node);
	SAME_NAME(dst_node);
	SAME_INT(bytes);
}

static void
check_ctl_status(const struct qkdn_msg *x, const struct qkdn_msg *y)
{
	PAIR(qkdn_ctl_status, ctl_status);
	SAME_NAME(node);
	SAME_INT(centralized);
	SAME_INT(version);
	SAME_INT(next_hop_reqs);
	SAME_INT(relay_req_notifs);
	SAME_INT(relay_req_rsps);
	SAME_INT(reservations);
	SAME_INT(allocations);
	SAME_INT(updates);
	same_link_states(&a->links, &b->links);
}

/* ---- the sample table: one checker per type ---- */

struct sample {
	uint32_t type;
	void (*check)(const struct qkdn_msg *x, const struct qkdn_msg *y);
};

#define SAMPLE(t, f)                                                           \
	{                                                                      \
		t, check_##f                                                   \
	}
static const struct sample samples[] = {
    SAMPLE(QKDN_KEY_REQ, key_req),
    SAMPLE(QKDN_KEY_RSP, key_rsp),
    SAMPLE(QKDN_KEY_REQ_ID, key_req_id),
    SAMPLE(QKDN_SESSION_CREATE_REQ, session_create_req),
    SAMPLE(QKDN_SESSION_CREATE_NOTIF, session_create_notif),
    SAMPLE(QKDN_SESSION_NOTIF_RSP, session_notif_rsp),
    SAMPLE(QKDN_SESSION_CREATE_RSP, session_create_rsp),
    SAMPLE(QKDN_KEY_REQ_SESSION, key_req_session),
    SAMPLE(QKDN_KEY_SUPPLY_NOTIF, key_supply_notif),
    SAMPLE(QKDN_PROACTIVE_SUPPLY, proactive_supply),
    SAMPLE(QKDN_PROACTIVE_SUPPLY_RSP, proactive_supply_rsp),
    SAMPLE(QKDN_KEY_SUPPLY_NOTIF_RSP, key_supply_notif_rsp),
    SAMPLE(QKDN_KEY_REQ_SESSION_RSP, key_req_session_rsp),
    SAMPLE(QKDN_NEXT_HOP_REQ, next_hop_req),
    SAMPLE(QKDN_NEXT_HOP_RSP, next_hop_rsp),
    SAMPLE(QKDN_RELAY_DONE_NOTIF, relay_done_notif),
    SAMPLE(QKDN_RELAY_REQ_NOTIF, relay_req_notif),
    SAMPLE(QKDN_RELAY_REQ, relay_req),
    SAMPLE(QKDN_KEY_RELAY, key_relay),
    SAMPLE(QKDN_RELAY_REQ_RSP, relay_req_rsp),
    SAMPLE(QKDN_RESERVE_REQ, reserve_req),
    SAMPLE(QKDN_RESERVE_RSP, reserve_rsp),
    SAMPLE(QKDN_ALLOC_REQ, alloc_req),
    SAMPLE(QKDN_ALLOC_RSP, alloc_rsp),
    SAMPLE(QKDN_ERROR, error),
    SAMPLE(QKDN_STATUS_REQ, status_req),
    SAMPLE(QKDN_STATUS_RSP, status_rsp),
    SAMPLE(QKDN_LINK_BLOCK, link_block),
    SAMPLE(QKDN_KEY_SYNC, key_sync),
    SAMPLE(QKDN_ACK, ack),
    SAMPLE(QKDN_LINK_CTL, link_ctl),
    SAMPLE(QKDN_KEY_SYNC_AUTH, key_sync_auth),
    SAMPLE(QKDN_KEY_RELAY_AUTH, key_relay_auth),
    SAMPLE(QKDN_RELAY_ABORT, relay_abort),
    SAMPLE(QKDN_RESERVE_RELEASE, reserve_release),
    SAMPLE(QKDN_LINK_STATE, link_state),
    SAMPLE(QKDN_ROUTE_QUERY, route_query),
    SAMPLE(QKDN_CTL_STATUS, ctl_status),
    SAMPLE(QKDN_KME_KEYS, kme_keys),
    SAMPLE(QKDN_KME_KEYS_AUTH, kme_keys_auth),
};
#define N_SAMPLES (sizeof(samples) / sizeof(samples[0]))

/* Body fields that may be left out (all others are required). */
static const struct {
	uint32_t type;
	const char *key;
} optional_fields[] = {
    {QKDN_SESSION_CREATE_REQ, "snode"},
    {QKDN_SESSION_CREATE_REQ, "dnode"},
    {QKDN_NEXT_HOP_REQ, "route"},
    {QKDN_NEXT_HOP_RSP, "next"},
    {QKDN_NEXT_HOP_RSP, "link"},
    {QKDN_RELAY_DONE_NOTIF, "ids"},
    {QKDN_RELAY_DONE_NOTIF, "tag"},
    {QKDN_RELAY_REQ_NOTIF, "src"},
    {QKDN_RELAY_REQ_NOTIF, "dst"},
    {QKDN_RELAY_REQ_NOTIF, "reserve"},
    {QKDN_RELAY_REQ, "resid"},
    {QKDN_RELAY_REQ, "src"},
    {QKDN_RELAY_REQ, "dst"},
    {QKDN_RELAY_REQ, "bits"},
    {QKDN_RELAY_REQ, "ids"},
    {QKDN_RELAY_REQ, "link"},
    {QKDN_RELAY_REQ, "segs"},
    {QKDN_KEY_RELAY, "ct"},
    {QKDN_RELAY_REQ_RSP, "resid"},
    {QKDN_RESERVE_RSP, "ids"},
    {QKDN_RESERVE_RSP, "link"},
    {QKDN_RESERVE_RSP, "segs"},
    {QKDN_ALLOC_RSP, "ids"},
    {QKDN_ERROR, "why"},
    {QKDN_STATUS_REQ, "flags"},
    {QKDN_ACK, "val"},
    {QKDN_ACK, "tag"},
    {QKDN_STATUS_RSP, "akerr"},
    {QKDN_STATUS_RSP, "kxerr"},
    {QKDN_STATUS_RSP, "relay"},
    {QKDN_STATUS_RSP, "keysmax"},
    {QKDN_STATUS_RSP, "bitsmin"},
    {QKDN_STATUS_RSP, "bitsmax"},
    {QKDN_STATUS_RSP, "reqmax"},
    {QKDN_KEY_REQ_ID, "src"},
    {QKDN_RELAY_ABORT, "ids"},
    {QKDN_RELAY_ABORT, "why"},
};
#define N_OPTIONAL (sizeof(optional_fields) / sizeof(optional_fields[0]))

static bool
is_optional(uint32_t type, const char *key)
{
	for (size_t i = 0; i < N_OPTIONAL; i++)
		if (optional_fields[i].type == type &&
		    strcmp(optional_fields[i].key, key) == 0)
			return true;
	return false;
}

static const struct sample *
find_sample(uint32_t type)
{
	for (size_t i = 0; i < N_SAMPLES; i++)
		if (samples[i].type == type)
			return &samples[i];
	return NULL;
}

/* The full sample of type (every field set). */
static void
build_sample(uint32_t type, struct qkdn_msg *m)
{
	int rv = sample_build(m, type, SAMPLE_FULL);
	if (rv != 0)
		fail_msg("no sample of type %u (%s): %s", type,
		         qkdn_msg_type_name(type), qkdn_strerror(rv));
}

static void
encode_ok(const struct qkdn_msg *m, struct qkdn_buf *b)
{
	int rv = qkdn_msg_encode(m, qkdn_buf_write, b);
	if (rv != 0)
		fail_msg("encoding type %u failed: %d %s", m->type, rv,
		         qkdn_strerror(rv));
	assert_true(b->len > 0);
}

static void
encode_sample(uint32_t type, struct qkdn_buf *b)
{
	struct qkdn_msg m;
	build_sample(type, &m);
	encode_ok(&m, b);
	qkdn_msg_clear(&m);
}

static void
decode_ok(const void *buf, size_t len, struct qkdn_msg *m)
{
	struct qkdn_decode_error e = {0};
	int rv = qkdn_msg_decode(buf, len, m, &e);
	if (rv != 0)
		fail_msg("decode failed: %d %s: %s", rv, qkdn_strerror(rv),
		         e.reason);
}

/* Decoding must fail with code, a non-empty reason (containing needle if
 * given), and leave the message cleared. */
static void
expect_fail_(const void *buf, size_t len, int code, const char *needle,
             int line)
{
	struct qkdn_msg m;
	struct qkdn_decode_error e;
	memset(&e, 0, sizeof(e));
	int rv = qkdn_msg_decode(buf, len, &m, &e);
	if (rv != code)
		fail_msg("line %d: decode gave %d (%s: '%s'), wanted %d (%s)",
		         line, rv, qkdn_strerror(rv), e.reason, code,
		         qkdn_strerror(code));
	assert_int_equal(e.code, code);
	assert_non_null(memchr(e.reason, 0, sizeof(e.reason)));
	if (e.reason[0] == 0)
		fail_msg("line %d: empty reason", line);
	if (needle != NULL && strstr(e.reason, needle) == NULL)
		fail_msg("line %d: reason '%s' lacks '%s'", line, e.reason,
		         needle);
	assert_null(m.arena);
	assert_int_equal(m.type, 0);
	/* the same failure without an error struct */
	assert_int_equal(qkdn_msg_decode(buf, len, &m, NULL), code);
}
#define expect_fail(buf, len, code, needle)                                    \
	expect_fail_(buf, len, code, needle, __LINE__)

/* ---- msgpack packer helpers for hand-made inputs ---- */

struct pk {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

static void
pk_init(struct pk *p)
{
	msgpack_sbuffer_init(&p->sb);
	msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void
pk_free(struct pk *p)
{
	msgpack_sbuffer_destroy(&p->sb);
}

static void
pk_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void
pk_bin(msgpack_packer *pk, size_t len, uint8_t fill)
{
	uint8_t *b = malloc(len + 1);
	assert_non_null(b);
	memset(b, fill, len);
	msgpack_pack_bin_with_body(pk, b, len);
	free(b);
}

static void
pk_strn(msgpack_packer *pk, size_t len, char fill)
{
	char *s = malloc(len + 1);
	assert_non_null(s);
	memset(s, fill, len);
	msgpack_pack_str_with_body(pk, s, len);
	free(s);
}

/* [version, type, id, {n entries follow}] */
static void
pk_env(msgpack_packer *pk, uint64_t version, uint64_t type, size_t n)
{
	msgpack_pack_array(pk, 4);
	msgpack_pack_uint64(pk, version);
	msgpack_pack_uint64(pk, type);
	msgpack_pack_uint64(pk, 42);
	msgpack_pack_map(pk, n);
}

static bool
key_is(const msgpack_object *k, const char *key)
{
	return k->type == MSGPACK_OBJECT_STR &&
	       k->via.str.size == strlen(key) &&
	       memcmp(k->via.str.ptr, key, k->via.str.size) == 0;
}

enum edit { E_NONE, E_DROP, E_DUP, E_SET, E_ADD };

/* Re-pack map m with one entry edited (see edit_at). When outer is not
 * NULL the edit is made one level down instead: in the map that is the
 * value of outer, or in item 0 of the array of maps that is. */
static bool
pack_edited(msgpack_packer *pk, msgpack_sbuffer *sb,
            const msgpack_object_map *m, const char *outer, const char *key,
            enum edit how, const msgpack_sbuffer *val)
{
	bool found = false;
	size_t n = m->size;
	if (outer == NULL && (how == E_DUP || how == E_ADD))
		n++;
	else if (outer == NULL && how == E_DROP)
		n--;
	msgpack_pack_map(pk, n);
	for (uint32_t i = 0; i < m->size; i++) {
		const msgpack_object_kv *kv = &m->ptr[i];
		if (outer != NULL) {
			msgpack_pack_object(pk, kv->key);
			if (!key_is(&kv->key, outer)) {
				msgpack_pack_object(pk, kv->val);
				continue;
			}
			const msgpack_object *v = &kv->val;
			if (v->type == MSGPACK_OBJECT_MAP) {
				found = pack_edited(pk, sb, &v->via.map, NULL,
				                    key, how, val);
				continue;
			}
			assert_int_equal(v->type, MSGPACK_OBJECT_ARRAY);
			assert_true(v->via.array.size > 0);
			assert_int_equal(v->via.array.ptr[0].type,
			                 MSGPACK_OBJECT_MAP);
			msgpack_pack_array(pk, v->via.array.size);
			found =
			    pack_edited(pk, sb, &v->via.array.ptr[0].via.map,
			                NULL, key, how, val);
			for (uint32_t k = 1; k < v->via.array.size; k++)
				msgpack_pack_object(pk, v->via.array.ptr[k]);
			continue;
		}
		bool hit = how != E_ADD && key_is(&kv->key, key);
		found |= hit;
		if (hit && how == E_DROP)
			continue;
		msgpack_pack_object(pk, kv->key);
		if (hit && how == E_SET)
			msgpack_sbuffer_write(sb, val->data, val->size);
		else
			msgpack_pack_object(pk, kv->val);
		if (hit && how == E_DUP) {
			msgpack_pack_object(pk, kv->key);
			msgpack_pack_object(pk, kv->val);
		}
	}
	if (outer == NULL && how == E_ADD) {
		pk_str(pk, key);
		msgpack_sbuffer_write(sb, val->data, val->size);
		found = true;
	}
	return found;
}

/* Re-pack the full sample of type with one entry edited: key dropped,
 * doubled, its value replaced by the packed bytes in val (E_SET), or a new
 * entry key = val appended (E_ADD); in the body, or (outer not NULL) in
 * the nested map body[outer] or body[outer][0]. */
static void
edit_at(uint32_t type, const char *outer, const char *key, enum edit how,
        const msgpack_sbuffer *val, struct pk *out)
{
	struct qkdn_buf b = {0};
	msgpack_unpacked up;
	size_t off = 0;

	encode_sample(type, &b);
	msgpack_unpacked_init(&up);
	assert_int_equal(
	    msgpack_unpack_next(&up, (const char *)b.data, b.len, &off),
	    MSGPACK_UNPACK_SUCCESS);
	const msgpack_object *e = up.data.via.array.ptr;
	pk_init(out);
	msgpack_pack_array(&out->pk, 4);
	for (int i = 0; i < 3; i++)
		msgpack_pack_object(&out->pk, e[i]);
	if (!pack_edited(&out->pk, &out->sb, &e[3].via.map, outer, key, how,
	                 val))
		fail_msg("type %u has no key '%s%s%s'", type,
		         outer ? outer : "", outer ? "." : "", key);
	msgpack_unpacked_destroy(&up);
	qkdn_buf_free(&b);
}

static void
edit_sample(uint32_t type, const char *key, enum edit how,
            const msgpack_sbuffer *val, struct pk *out)
{
	edit_at(type, NULL, key, how, val, out);
}

/* A field as the full sample of a type puts it on the wire. */
struct wire_field {
	char key[16];
	msgpack_object_type type;
	msgpack_object_type elem; /* arrays: type of item 0 (NIL if empty) */
};

/* The fields of the full sample of type, in wire order: of the body, or
 * (outer not NULL) of the nested map body[outer] or body[outer][0]. */
static size_t
wire_fields(uint32_t type, const char *outer, struct wire_field *f, size_t max)
{
	struct qkdn_buf b = {0};
	msgpack_unpacked up;
	size_t off = 0, n;

	encode_sample(type, &b);
	msgpack_unpacked_init(&up);
	assert_int_equal(
	    msgpack_unpack_next(&up, (const char *)b.data, b.len, &off),
	    MSGPACK_UNPACK_SUCCESS);
	const msgpack_object_map *m = &up.data.via.array.ptr[3].via.map;
	if (outer != NULL) {
		const msgpack_object *v = NULL;
		for (uint32_t i = 0; i < m->size; i++)
			if (key_is(&m->ptr[i].key, outer))
				v = &m->ptr[i].val;
		assert_non_null(v);
		if (v->type == MSGPACK_OBJECT_ARRAY) {
			assert_true(v->via.array.size > 0);
			v = &v->via.array.ptr[0];
		}
		assert_int_equal(v->type, MSGPACK_OBJECT_MAP);
		m = &v->via.map;
	}
	n = m->size;
	assert_true(n <= max);
	for (size_t i = 0; i < n; i++) {
		const msgpack_object *k = &m->ptr[i].key;
		const msgpack_object *v = &m->ptr[i].val;
		assert_int_equal(k->type, MSGPACK_OBJECT_STR);
		assert_true(k->via.str.size < sizeof(f[i].key));
		memcpy(f[i].key, k->via.str.ptr, k->via.str.size);
		f[i].key[k->via.str.size] = 0;
		f[i].type = v->type;
		f[i].elem =
		    v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size > 0
		        ? v->via.array.ptr[0].type
		        : MSGPACK_OBJECT_NIL;
	}
	msgpack_unpacked_destroy(&up);
	qkdn_buf_free(&b);
	return n;
}

/* A nested map: the value of a body field, or each item of it. */
static bool
is_nested(const struct wire_field *f)
{
	return f->type == MSGPACK_OBJECT_MAP ||
	       (f->type == MSGPACK_OBJECT_ARRAY &&
	        f->elem == MSGPACK_OBJECT_MAP);
}

/* Decode the sample of type with body[key] set to what PACK packs (with
 * msgpack_packer *pk in scope) and expect code (0: must decode). */
#define WITH_VALUE(type, key, code, PACK)                                      \
	do {                                                                   \
		struct pk v_, out_;                                            \
		pk_init(&v_);                                                  \
		msgpack_packer *pk = &v_.pk;                                   \
		PACK;                                                          \
		edit_sample(type, key, E_SET, &v_.sb, &out_);                  \
		expect_code(out_.sb.data, out_.sb.size, code, __LINE__);       \
		pk_free(&out_);                                                \
		pk_free(&v_);                                                  \
	} while (0)

static void
expect_code(const void *buf, size_t len, int code, int line)
{
	if (code != 0) {
		expect_fail_(buf, len, code, NULL, line);
		return;
	}
	struct qkdn_msg m;
	struct qkdn_decode_error e = {0};
	int rv = qkdn_msg_decode(buf, len, &m, &e);
	if (rv != 0)
		fail_msg("line %d: decode failed: %d %s: %s", line, rv,
		         qkdn_strerror(rv), e.reason);
	qkdn_msg_clear(&m);
}

/* ---- round trips ---- */

static void
test_every_type_covered(void **state)
{
	(void)state;
	size_t named = 0;
	for (uint32_t t = 1; t <= 24; t++) {
		assert_non_null(qkdn_msg_type_name(t));
		assert_non_null(find_sample(t));
	}
	for (uint32_t t = QKDN_ERROR; t <= QKDN_KME_KEYS_AUTH; t++) {
		assert_non_null(qkdn_msg_type_name(t));
		assert_non_null(find_sample(t));
	}
	/* any type the codec knows must have a checker here and both samples
	 * in tests/common/samples.c, and they must encode */
	for (uint32_t t = 0; t < 100000; t++) {
		if (qkdn_msg_type_name(t) == NULL)
			continue;
		named++;
		if (find_sample(t) == NULL)
			fail_msg("type %u (%s) has no sample in this test", t,
			         qkdn_msg_type_name(t));
		for (int v = SAMPLE_MIN; v <= SAMPLE_FULL; v++) {
			struct qkdn_msg m;
			struct qkdn_buf b = {0};
			int rv = sample_build(&m, t, (enum sample_variant)v);
			if (rv != 0)
				fail_msg("type %u (%s) has no %s sample: %s", t,
				         qkdn_msg_type_name(t),
				         v == SAMPLE_FULL ? "full" : "min",
				         qkdn_strerror(rv));
			encode_ok(&m, &b);
			qkdn_buf_free(&b);
			qkdn_msg_clear(&m);
		}
	}
	assert_int_equal(named, N_SAMPLES);
	assert_int_equal(N_SAMPLES, 24 + 16);
	assert_null(qkdn_msg_type_name(0));
	assert_null(qkdn_msg_type_name(25));
	assert_null(qkdn_msg_type_name(99));
	assert_null(qkdn_msg_type_name(QKDN_KME_KEYS_AUTH + 1));
	assert_null(qkdn_msg_type_name(1000));
	assert_null(qkdn_msg_type_name(UINT32_MAX));
	/* names are distinct */
	for (size_t i = 0; i < N_SAMPLES; i++)
		for (size_t j = i + 1; j < N_SAMPLES; j++)
			assert_string_not_equal(
			    qkdn_msg_type_name(samples[i].type),
			    qkdn_msg_type_name(samples[j].type));
}

/* Types 1..24 carry the names of the Q.4160 catalogue, in its order. */
static void
test_catalogue_names(void **state)
{
	(void)state;
	static const char *const catalogue[] = {
	    "key request",
	    "response to key request",
	    "key request with ID",
	    "session creation request",
	    "session creation notification",
	    "response to session creation notification",
	    "response to session creation request",
	    "key request with session ID",
	    "key supply notification",
	    "proactive key supply",
	    "response to proactive key supply",
	    "response to key supply notification",
	    "response to key request with session ID",
	    "key relay next hop request",
	    "response to key relay next hop request",
	    "key relay completion notification",
	    "key relay request notification",
	    "key relay request",
	    "key relay",
	    "response to key relay request",
	    "key reservation request",
	    "response to key reservation request",
	    "key allocation request",
	    "response to key allocation request",
	};
	for (uint32_t t = 1; t <= 24; t++)
		assert_string_equal(qkdn_msg_type_name(t), catalogue[t - 1]);
}

static void
test_round_trip_every_type(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_SAMPLES; i++) {
		struct qkdn_msg m, d;
		struct qkdn_buf b1 = {0}, b2 = {0};
		build_sample(samples[i].type, &m);
		encode_ok(&m, &b1);
		decode_ok(b1.data, b1.len, &d);
		assert_int_equal(d.type, m.type);
		assert_int_equal(d.req_id, m.req_id);
		samples[i].check(&m, &d);
		/* and nothing a checker might miss: same bytes again */
		encode_ok(&d, &b2);
		assert_int_equal(b1.len, b2.len);
		assert_memory_equal(b1.data, b2.data, b1.len);
		qkdn_msg_clear(&m);
		qkdn_msg_clear(&d);
		assert_null(d.arena);
		assert_int_equal(d.type, 0);
		qkdn_buf_free(&b1);
		qkdn_buf_free(&b2);
		assert_null(b1.data);
	}
}

/* Every limit value itself is accepted, in both directions. */
static void
test_round_trip_limits(void **state)
{
	(void)state;
	struct qkdn_msg m, d;
	struct qkdn_buf b = {0};
	char longname[QKDN_NAME_MAX];

	memset(longname, 'n', QKDN_NAME_MAX - 1);
	longname[QKDN_NAME_MAX - 1] = 0;

	/* names of 63 bytes, bits 8192, count 4096, req id max */
	build_sample(QKDN_KEY_REQ, &m);
	set_name(m.u.key_req.sae, longname);
	m.u.key_req.bits = 8192;
	m.u.key_req.count = QKDN_KEYS_MAX;
	m.req_id = UINT64_MAX;
	encode_ok(&m, &b);
	decode_ok(b.data, b.len, &d);
	check_key_req(&m, &d);
	assert_int_equal(d.req_id, UINT64_MAX);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	m.u.key_req.bits = 8;
	m.u.key_req.count = 1;
	encode_ok(&m, &b);
	decode_ok(b.data, b.len, &d);
	check_key_req(&m, &d);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	qkdn_msg_clear(&m);

	/* 4096 IDs */
	build_sample(QKDN_KEY_REQ_ID, &m);
	assert_int_equal(sample_ids(&m, &m.u.key_req_id.ids, QKDN_KEYS_MAX, 7),
	                 0);
	encode_ok(&m, &b);
	decode_ok(b.data, b.len, &d);
	check_key_req_id(&m, &d);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	qkdn_msg_clear(&m);

	/* keys of 1 and 1024 bytes */
	build_sample(QKDN_KEY_RSP, &m);
	assert_int_equal(sample_keys(&m, &m.u.key_rsp.keys, 2, 1, 1), 0);
	struct qkdn_bytes kb;
	assert_int_equal(sample_bytes(&m, &kb, QKDN_KEY_BYTES_MAX, 2), 0);
	m.u.key_rsp.keys.v[1].len = kb.len;
	m.u.key_rsp.keys.v[1].bytes = kb.ptr;
	encode_ok(&m, &b);
	decode_ok(b.data, b.len, &d);
	check_key_rsp(&m, &d);
	assert_int_equal(d.u.key_rsp.keys.v[0].len, 1);
	assert_int_equal(d.u.key_rsp.keys.v[1].len, QKDN_KEY_BYTES_MAX);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	qkdn_msg_clear(&m);

	/* route of 32 nodes, hop 31, 1024 segments with the largest block id,
	 * offset and length, tag of 64 bytes, a ciphertext of 4 MiB */
	build_sample(QKDN_KEY_RELAY, &m);
	assert_int_equal(sample_route(&m, &m.u.key_relay.route, QKDN_ROUTE_MAX),
	                 0);
	m.u.key_relay.hop = QKDN_ROUTE_MAX - 1;
	assert_int_equal(sample_segs(&m, &m.u.key_relay.segs, QKDN_SEGS_MAX, 1),
	                 0);
	m.u.key_relay.segs.v[0].block_id = UINT64_MAX;
	m.u.key_relay.segs.v[0].offset = QKDN_BLOCK_BYTES_MAX - 1;
	m.u.key_relay.segs.v[1].offset = 0;
	m.u.key_relay.segs.v[1].len = QKDN_BLOCK_BYTES_MAX;
	m.u.key_relay.segs.v[2].len = 1;
	assert_int_equal(sample_bytes(&m, &m.u.key_relay.ciphertext,
	                              QKDN_KEYS_MAX * QKDN_KEY_BYTES_MAX, 9),
	                 0);
	encode_ok(&m, &b);
	decode_ok(b.data, b.len, &d);
	check_key_relay(&m, &d);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	qkdn_msg_clear(&m);

	/* a link block of 1 MiB */
	build_sample(QKDN_LINK_BLOCK, &m);
	assert_int_equal(
	    sample_bytes(&m, &m.u.link_block.bytes, QKDN_BLOCK_BYTES_MAX, 3),
	    0);
	encode_ok(&m, &b);
	decode_ok(b.data, b.len, &d);
	check_link_block(&m, &d);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	qkdn_msg_clear(&m);

	/* results at both ends, error codes at both ends, reason of 255 */
	int32_t results[] = {0, -10000};
	for (size_t i = 0; i < 2; i++) {
		build_sample(QKDN_ACK, &m);
		m.u.ack.result = results[i];
		encode_ok(&m, &b);
		decode_ok(b.data, b.len, &d);
		check_ack(&m, &d);
		qkdn_msg_clear(&d);
		qkdn_buf_free(&b);
		qkdn_msg_clear(&m);
	}
	int32_t codes[] = {1, -(QKDN_E_LAST_ + 1)};
	for (size_t i = 0; i < 2; i++) {
		build_sample(QKDN_ERROR, &m);
		m.u.error.code = codes[i];
		memset(m.u.error.reason, 'r', QKDN_REASON_MAX - 1);
		m.u.error.reason[QKDN_REASON_MAX - 1] = 0;
		encode_ok(&m, &b);
		decode_ok(b.data, b.len, &d);
		check_error(&m, &d);
		qkdn_msg_clear(&d);
		qkdn_buf_free(&b);
		qkdn_msg_clear(&m);
	}

	/* 64 links in a status reply, and none */
	build_sample(QKDN_STATUS_RSP, &m);
	m.u.status_rsp.n_links = QKDN_LINKS_MAX;
	m.u.status_rsp.links = qkdn_msg_alloc(
	    &m, QKDN_LINKS_MAX * sizeof(struct qkdn_link_status));
	for (uint32_t i = 0; i < QKDN_LINKS_MAX; i++) {
		snprintf(m.u.status_rsp.links[i].link, QKDN_NAME_MAX, "l%u", i);
		snprintf(m.u.status_rsp.links[i].peer, QKDN_NAME_MAX, "p%u", i);
		m.u.status_rsp.links[i].blocks = UINT64_MAX - i;
	}
	encode_ok(&m, &b);
	decode_ok(b.data, b.len, &d);
	check_status_rsp(&m, &d);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	m.u.status_rsp.n_links = 0;
	encode_ok(&m, &b);
	decode_ok(b.data, b.len, &d);
	assert_int_equal(d.u.status_rsp.n_links, 0);
	assert_null(d.u.status_rsp.links);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	qkdn_msg_clear(&m);

	/* 8 routes of 32 nodes with 63-byte names, the largest version */
	build_sample(QKDN_RELAY_REQ, &m);
	m.u.relay_req.routes.v = qkdn_msg_alloc(
	    &m, QKDN_ROUTES_MAX * sizeof(struct qkdn_route_entry));
	assert_non_null(m.u.relay_req.routes.v);
	m.u.relay_req.routes.n = QKDN_ROUTES_MAX;
	for (uint32_t i = 0; i < QKDN_ROUTES_MAX; i++)
		assert_int_equal(sample_route(&m,
		                              &m.u.relay_req.routes.v[i].nodes,
		                              QKDN_ROUTE_MAX),
		                 0);
	set_name(m.u.relay_req.routes.v[7].nodes.v[31], longname);
	m.u.relay_req.version = UINT64_MAX;
	m.u.relay_req.bits = QKDN_KEY_BYTES_MAX * 8;
	assert_int_equal(sample_ids(&m, &m.u.relay_req.ids, QKDN_KEYS_MAX, 5),
	                 0);
	encode_ok(&m, &b);
	decode_ok(b.data, b.len, &d);
	check_relay_req(&m, &d);
	assert_int_equal(d.u.relay_req.routes.v[7].nodes.n, QKDN_ROUTE_MAX);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	qkdn_msg_clear(&m);

	/* a key relay of 4 MiB with its tag */
	build_sample(QKDN_KEY_RELAY_AUTH, &m);
	assert_int_equal(
	    sample_bytes(&m, &m.u.key_relay_auth.relay, QKDN_BYTES_MAX, 4), 0);
	encode_ok(&m, &b);
	decode_ok(b.data, b.len, &d);
	check_key_relay_auth(&m, &d);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	qkdn_msg_clear(&m);

	/* 4096 link states, ages and counters at their ends */
	uint32_t lstypes[] = {QKDN_LINK_STATE, QKDN_CTL_STATUS};
	for (size_t t = 0; t < 2; t++) {
		struct qkdn_link_states *ls;
		build_sample(lstypes[t], &m);
		ls = lstypes[t] == QKDN_LINK_STATE ? &m.u.link_state.links
		                                   : &m.u.ctl_status.links;
		ls->v = qkdn_msg_alloc(&m, QKDN_LINK_STATES_MAX *
		                               sizeof(struct qkdn_link_state));
		assert_non_null(ls->v);
		ls->n = QKDN_LINK_STATES_MAX;
		for (uint32_t i = 0; i < ls->n; i++) {
			snprintf(ls->v[i].link, QKDN_NAME_MAX, "l%u", i);
			snprintf(ls->v[i].a, QKDN_NAME_MAX, "a%u", i);
			snprintf(ls->v[i].b, QKDN_NAME_MAX, "b%u", i);
			ls->v[i].up = i % 2;
			ls->v[i].a_out = UINT64_MAX - i;
			ls->v[i].b_out = i;
			ls->v[i].rate_bps = (uint64_t)i << 32;
			ls->v[i].age_ms = i % 3 == 0 ? UINT32_MAX : i;
		}
		encode_ok(&m, &b);
		decode_ok(b.data, b.len, &d);
		find_sample(lstypes[t])->check(&m, &d);
		qkdn_msg_clear(&d);
		qkdn_buf_free(&b);
		qkdn_msg_clear(&m);
	}

	/* arrays that may be empty */
	build_sample(QKDN_RELAY_DONE_NOTIF, &m);
	m.u.relay_done_notif.ids.n = 0;
	encode_ok(&m, &b);
	decode_ok(b.data, b.len, &d);
	assert_int_equal(d.u.relay_done_notif.ids.n, 0);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	qkdn_msg_clear(&m);
}

/* Optional fields left empty are omitted by the encoder and come back empty
 * or zero. */
static void
test_optional_fields(void **state)
{
	(void)state;
	struct qkdn_msg m, d;
	struct qkdn_buf b = {0};

	/* the smallest samples leave them out */
	assert_int_equal(sample_build(&m, QKDN_SESSION_CREATE_REQ, SAMPLE_MIN),
	                 0);
	encode_ok(&m, &b);
	assert_null(memmem(b.data, b.len, "snode", 5));
	assert_null(memmem(b.data, b.len, "dnode", 5));
	decode_ok(b.data, b.len, &d);
	check_session_create_req(&m, &d);
	assert_string_equal(d.u.session_create_req.src_node, "");
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	qkdn_msg_clear(&m);

	assert_int_equal(sample_build(&m, QKDN_NEXT_HOP_RSP, SAMPLE_MIN), 0);
	encode_ok(&m, &b);
	assert_null(memmem(b.data, b.len, "next", 4));
	decode_ok(b.data, b.len, &d);
	check_next_hop_rsp(&m, &d);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	qkdn_msg_clear(&m);

	assert_int_equal(sample_build(&m, QKDN_ERROR, SAMPLE_MIN), 0);
	encode_ok(&m, &b);
	assert_null(memmem(b.data, b.len, "why", 3));
	decode_ok(b.data, b.len, &d);
	check_error(&m, &d);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b);
	qkdn_msg_clear(&m);

	/* status request with an empty body, ack without a value */
	struct pk p;
	pk_init(&p);
	pk_env(&p.pk, 1, QKDN_STATUS_REQ, 0);
	decode_ok(p.sb.data, p.sb.size, &d);
	assert_int_equal(d.type, QKDN_STATUS_REQ);
	assert_int_equal(d.req_id, 42);
	qkdn_msg_clear(&d);
	pk_free(&p);
	pk_init(&p);
	pk_env(&p.pk, 1, QKDN_ACK, 1);
	pk_str(&p.pk, "res");
	msgpack_pack_int32(&p.pk, -3);
	decode_ok(p.sb.data, p.sb.size, &d);
	assert_int_equal(d.u.ack.result, -3);
	assert_int_equal(d.u.ack.value, 0);
	qkdn_msg_clear(&d);
	pk_free(&p);
}

/* The body of an encoded message has key (at its top level). */
static bool
wire_has(const struct qkdn_buf *b, const char *key)
{
	msgpack_unpacked up;
	size_t off = 0;
	bool found = false;
	msgpack_unpacked_init(&up);
	assert_int_equal(
	    msgpack_unpack_next(&up, (const char *)b->data, b->len, &off),
	    MSGPACK_UNPACK_SUCCESS);
	const msgpack_object_map *body = &up.data.via.array.ptr[3].via.map;
	for (uint32_t i = 0; i < body->size; i++)
		found |= key_is(&body->ptr[i].key, key);
	msgpack_unpacked_destroy(&up);
	return found;
}

/* Encode m, check which keys travel, decode into d (cleared by caller). */
static void
encode_decode(const struct qkdn_msg *m, struct qkdn_msg *d,
              const char *const *absent, const char *const *present)
{
	struct qkdn_buf b = {0};
	encode_ok(m, &b);
	for (; absent != NULL && *absent != NULL; absent++)
		if (wire_has(&b, *absent))
			fail_msg("type %u: '%s' is on the wire", m->type,
			         *absent);
	for (; present != NULL && *present != NULL; present++)
		if (!wire_has(&b, *present))
			fail_msg("type %u: '%s' is not on the wire", m->type,
			         *present);
	decode_ok(b.data, b.len, d);
	find_sample(m->type)->check(m, d);
	qkdn_buf_free(&b);
}

#define KEYS_(...) ((const char *const[]){__VA_ARGS__, NULL})

static bool
uuid_is_zero(const qkdn_uuid *u)
{
	static const qkdn_uuid zero;
	return memcmp(u->b, zero.b, 16) == 0;
}

/* The encoder's absent() rule for the relay messages: an optional all-zero
 * UUID, empty array, empty name or empty byte string is not sent and
 * decodes as zero or empty; a required one is sent all the same; optional
 * numbers are always sent. */
static void
test_absent_on_wire(void **state)
{
	(void)state;
	struct qkdn_msg m, d;

	/* KEY_RELAY without "ct": the first hop's keys are the pad bits */
	assert_int_equal(sample_build(&m, QKDN_KEY_RELAY, SAMPLE_MIN), 0);
	encode_decode(&m, &d, KEYS_("ct"), KEYS_("rid", "route", "ttl"));
	assert_int_equal(d.u.key_relay.ciphertext.len, 0);
	assert_null(d.u.key_relay.ciphertext.ptr);
	qkdn_msg_clear(&d);
	qkdn_msg_clear(&m);
	build_sample(QKDN_KEY_RELAY, &m);
	encode_decode(&m, &d, NULL, KEYS_("ct"));
	assert_int_equal(d.u.key_relay.ciphertext.len, 32 * 3);
	qkdn_msg_clear(&d);
	m.u.key_relay.ciphertext.len = 0;
	encode_decode(&m, &d, KEYS_("ct"), NULL);
	assert_int_equal(d.u.key_relay.ciphertext.len, 0);
	assert_null(d.u.key_relay.ciphertext.ptr);
	qkdn_msg_clear(&d);
	qkdn_msg_clear(&m);
	struct pk out;
	edit_sample(QKDN_KEY_RELAY, "ct", E_DROP, NULL, &out);
	decode_ok(out.sb.data, out.sb.size, &d);
	assert_int_equal(d.u.key_relay.ciphertext.len, 0);
	assert_null(d.u.key_relay.ciphertext.ptr);
	assert_int_equal(d.u.key_relay.ids.n, 3);
	qkdn_msg_clear(&d);
	pk_free(&out);

	/* an optional all-zero UUID is left out and reads back zero */
	build_sample(QKDN_RELAY_REQ, &m);
	encode_decode(&m, &d, NULL, KEYS_("resid"));
	assert_false(uuid_is_zero(&d.u.relay_req.reservation_id));
	qkdn_msg_clear(&d);
	memset(&m.u.relay_req.reservation_id, 0, 16);
	encode_decode(&m, &d, KEYS_("resid"), KEYS_("rid", "routes"));
	assert_true(uuid_is_zero(&d.u.relay_req.reservation_id));
	qkdn_msg_clear(&d);
	/* a required one is sent: a route query's reply has relay_id zero */
	memset(&m.u.relay_req.relay_id, 0, 16);
	encode_decode(&m, &d, KEYS_("resid"), KEYS_("rid"));
	assert_true(uuid_is_zero(&d.u.relay_req.relay_id));
	assert_int_equal(d.u.relay_req.routes.n, 3);
	qkdn_msg_clear(&d);
	qkdn_msg_clear(&m);
	build_sample(QKDN_RELAY_REQ_RSP, &m);
	encode_decode(&m, &d, NULL, KEYS_("resid"));
	qkdn_msg_clear(&d);
	memset(&m.u.relay_req_rsp.reservation_id, 0, 16);
	encode_decode(&m, &d, KEYS_("resid"), KEYS_("rid", "res"));
	assert_true(uuid_is_zero(&d.u.relay_req_rsp.reservation_id));
	qkdn_msg_clear(&d);
	qkdn_msg_clear(&m);
	assert_int_equal(sample_build(&m, QKDN_RELAY_REQ_RSP, SAMPLE_MIN), 0);
	encode_decode(&m, &d, KEYS_("resid"), NULL);
	qkdn_msg_clear(&d);
	qkdn_msg_clear(&m);
	build_sample(QKDN_RESERVE_RELEASE, &m);
	memset(&m.u.reserve_release.reservation_id, 0, 16);
	encode_decode(&m, &d, NULL, KEYS_("resid"));
	qkdn_msg_clear(&d);
	qkdn_msg_clear(&m);
	/* a zero UUID sent explicitly reads as zero, and is then left out */
	{
		struct pk v;
		struct qkdn_buf b = {0};
		pk_init(&v);
		pk_bin(&v.pk, 16, 0);
		edit_sample(QKDN_RELAY_REQ, "resid", E_SET, &v.sb, &out);
		decode_ok(out.sb.data, out.sb.size, &d);
		assert_true(uuid_is_zero(&d.u.relay_req.reservation_id));
		encode_ok(&d, &b);
		assert_false(wire_has(&b, "resid"));
		qkdn_buf_free(&b);
		qkdn_msg_clear(&d);
		pk_free(&out);
		pk_free(&v);
	}

	/* empty optional arrays, names and bytes: the I.4b part of a relay
	 * request, a failed reservation or allocation, a failed completion,
	 * an abort without IDs or reason */
	build_sample(QKDN_RELAY_REQ, &m);
	m.u.relay_req.ids.n = 0;
	m.u.relay_req.segs.n = 0;
	m.u.relay_req.link[0] = 0;
	m.u.relay_req.src_sae[0] = 0;
	m.u.relay_req.dst_sae[0] = 0;
	m.u.relay_req.bits = 0;
	encode_decode(&m, &d, KEYS_("ids", "segs", "link", "src", "dst"),
	              KEYS_("bits", "ver", "routes"));
	assert_int_equal(d.u.relay_req.ids.n, 0);
	assert_null(d.u.relay_req.ids.v);
	assert_int_equal(d.u.relay_req.segs.n, 0);
	assert_null(d.u.relay_req.segs.v);
	assert_string_equal(d.u.relay_req.link, "");
	qkdn_msg_clear(&d);
	qkdn_msg_clear(&m);

	/* the smallest samples leave every optional string, UUID, array and
	 * byte string out */
	const struct {
		uint32_t type;
		const char *const *absent;
		const char *const *present;
	} mins[] = {
	    {QKDN_NEXT_HOP_RSP, KEYS_("next", "link"), KEYS_("res", "ver")},
	    {QKDN_RELAY_DONE_NOTIF, KEYS_("ids", "tag"), KEYS_("res")},
	    {QKDN_RELAY_REQ_NOTIF, KEYS_("src", "dst"), KEYS_("reserve")},
	    {QKDN_RELAY_REQ,
	     KEYS_("resid", "src", "dst", "ids", "link", "segs"),
	     KEYS_("rid", "routes", "ver", "bits")},
	    {QKDN_RESERVE_RSP, KEYS_("ids", "link", "segs"), KEYS_("res")},
	    {QKDN_ALLOC_RSP, KEYS_("ids"), KEYS_("res")},
	    {QKDN_RELAY_ABORT, KEYS_("ids", "why"), KEYS_("rid")},
	    {QKDN_LINK_STATE, NULL, KEYS_("links", "seq", "maxage")},
	    {QKDN_CTL_STATUS, NULL, KEYS_("links", "central", "ver")},
	    {QKDN_STATUS_RSP, NULL, KEYS_("relay", "links", "akerr")},
	};
	for (size_t i = 0; i < sizeof(mins) / sizeof(mins[0]); i++) {
		assert_int_equal(sample_build(&m, mins[i].type, SAMPLE_MIN), 0);
		encode_decode(&m, &d, mins[i].absent, mins[i].present);
		qkdn_msg_clear(&d);
		qkdn_msg_clear(&m);
	}
	assert_int_equal(sample_build(&m, QKDN_RELAY_REQ, SAMPLE_MIN), 0);
	encode_decode(&m, &d, NULL, NULL);
	assert_int_equal(d.u.relay_req.routes.n, 0); /* no route */
	assert_null(d.u.relay_req.routes.v);
	assert_true(uuid_is_zero(&d.u.relay_req.reservation_id));
	qkdn_msg_clear(&d);
	qkdn_msg_clear(&m);
	assert_int_equal(sample_build(&m, QKDN_RELAY_DONE_NOTIF, SAMPLE_MIN),
	                 0);
	encode_decode(&m, &d, NULL, NULL);
	assert_int_equal(d.u.relay_done_notif.tag.len, 0);
	assert_null(d.u.relay_done_notif.tag.ptr);
	assert_int_equal(d.u.relay_done_notif.ids.n, 0);
	qkdn_msg_clear(&d);
	qkdn_msg_clear(&m);
}

/* Every full sample really is full: each of its arrays has items; and
 * each smallest sample leaves out every optional field the encoder may
 * omit (strings, byte strings, UUIDs, arrays) and has no key the full one
 * lacks. */
static void
test_samples_complete(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_SAMPLES; i++) {
		uint32_t type = samples[i].type;
		struct wire_field f[32];
		size_t n = wire_fields(type, NULL, f, 32);
		for (size_t k = 0; k < n; k++)
			if (f[k].type == MSGPACK_OBJECT_ARRAY &&
			    f[k].elem == MSGPACK_OBJECT_NIL)
				fail_msg("type %u: full sample has '%s' empty",
				         type, f[k].key);
		struct qkdn_msg m;
		struct qkdn_buf b = {0};
		assert_int_equal(sample_build(&m, type, SAMPLE_MIN), 0);
		encode_ok(&m, &b);
		for (size_t k = 0; k < n; k++) {
			bool omittable = f[k].type == MSGPACK_OBJECT_STR ||
			                 f[k].type == MSGPACK_OBJECT_BIN ||
			                 f[k].type == MSGPACK_OBJECT_ARRAY;
			if (is_optional(type, f[k].key) && omittable &&
			    wire_has(&b, f[k].key))
				fail_msg("type %u: min sample has '%s'", type,
				         f[k].key);
		}
		/* no key the full sample lacks */
		msgpack_unpacked up;
		size_t off = 0;
		msgpack_unpacked_init(&up);
		assert_int_equal(
		    msgpack_unpack_next(&up, (const char *)b.data, b.len, &off),
		    MSGPACK_UNPACK_SUCCESS);
		const msgpack_object_map *body =
		    &up.data.via.array.ptr[3].via.map;
		assert_true(body->size <= n);
		for (uint32_t k = 0; k < body->size; k++) {
			bool known = false;
			for (size_t j = 0; j < n; j++)
				known |= key_is(&body->ptr[k].key, f[j].key);
			assert_true(known);
		}
		msgpack_unpacked_destroy(&up);
		qkdn_buf_free(&b);
		qkdn_msg_clear(&m);
	}
}

/* The smallest sample of every type round-trips too. */
static void
test_round_trip_min(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_SAMPLES; i++) {
		struct qkdn_msg m, d;
		struct qkdn_buf b1 = {0}, b2 = {0};
		assert_int_equal(sample_build(&m, samples[i].type, SAMPLE_MIN),
		                 0);
		encode_ok(&m, &b1);
		decode_ok(b1.data, b1.len, &d);
		assert_int_equal(d.type, m.type);
		assert_int_equal(d.req_id, m.req_id);
		samples[i].check(&m, &d);
		encode_ok(&d, &b2);
		assert_int_equal(b1.len, b2.len);
		assert_memory_equal(b1.data, b2.data, b1.len);
		qkdn_msg_clear(&m);
		qkdn_msg_clear(&d);
		qkdn_buf_free(&b1);
		qkdn_buf_free(&b2);
	}
}

/* Unknown body keys are ignored, whatever their value. */
static void
test_unknown_keys_ignored(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_SAMPLES; i++) {
		struct pk v, out;
		struct qkdn_msg want, got;
		struct qkdn_buf b1 = {0}, b2 = {0};
		pk_init(&v);
		msgpack_pack_map(&v.pk, 2);
		pk_str(&v.pk, "nested");
		msgpack_pack_array(&v.pk, 3);
		msgpack_pack_nil(&v.pk);
		msgpack_pack_double(&v.pk, 1.5);
		pk_bin(&v.pk, 3, 0xff);
		msgpack_pack_int64(&v.pk, -7);
		msgpack_pack_true(&v.pk);
		edit_sample(samples[i].type, "zz-future", E_ADD, &v.sb, &out);
		decode_ok(out.sb.data, out.sb.size, &got);
		build_sample(samples[i].type, &want);
		samples[i].check(&want, &got);
		encode_ok(&want, &b1);
		encode_ok(&got, &b2);
		assert_int_equal(b1.len, b2.len);
		assert_memory_equal(b1.data, b2.data, b1.len);
		qkdn_msg_clear(&want);
		qkdn_msg_clear(&got);
		qkdn_buf_free(&b1);
		qkdn_buf_free(&b2);
		pk_free(&out);
		pk_free(&v);
	}
}

/* Key order on the wire does not matter. */
static void
test_key_order_free(void **state)
{
	(void)state;
	struct pk p;
	struct qkdn_msg d;
	pk_init(&p);
	pk_env(&p.pk, 1, QKDN_KEY_REQ, 4);
	pk_str(&p.pk, "n");
	msgpack_pack_uint8(&p.pk, 2);
	pk_str(&p.pk, "bits");
	msgpack_pack_uint64(&p.pk, 128);
	pk_str(&p.pk, "dst");
	pk_str(&p.pk, "b");
	pk_str(&p.pk, "sae");
	pk_str(&p.pk, "a");
	decode_ok(p.sb.data, p.sb.size, &d);
	assert_string_equal(d.u.key_req.sae, "a");
	assert_string_equal(d.u.key_req.dst_sae, "b");
	assert_int_equal(d.u.key_req.bits, 128);
	assert_int_equal(d.u.key_req.count, 2);
	qkdn_msg_clear(&d);
	pk_free(&p);
}

/* ---- malformed input ---- */

static void
test_empty_and_truncated(void **state)
{
	(void)state;
	uint8_t none = 0;
	expect_fail(&none, 0, QKDN_E_TRUNCATED, NULL);
	for (size_t i = 0; i < N_SAMPLES; i++) {
		struct qkdn_buf b = {0};
		encode_sample(samples[i].type, &b);
		for (size_t len = 0; len < b.len; len++) {
			/* a copy of exactly len bytes, so ASan sees overreads
			 */
			uint8_t *cut = malloc(len ? len : 1);
			assert_non_null(cut);
			memcpy(cut, b.data, len);
			expect_fail(cut, len, QKDN_E_TRUNCATED, NULL);
			free(cut);
		}
		qkdn_buf_free(&b);
	}
}

static void
test_trailing_bytes(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_SAMPLES; i++) {
		struct qkdn_buf b = {0};
		encode_sample(samples[i].type, &b);
		size_t len = b.len;
		assert_int_equal(qkdn_buf_write(&b, "\0", 1), 0);
		expect_fail(b.data, b.len, QKDN_E_BAD_REQUEST, "trailing");
		/* two messages back to back are not one message */
		struct qkdn_buf two = {0};
		assert_int_equal(qkdn_buf_write(&two, (char *)b.data, len), 0);
		assert_int_equal(qkdn_buf_write(&two, (char *)b.data, len), 0);
		expect_fail(two.data, two.len, QKDN_E_BAD_REQUEST, "trailing");
		qkdn_buf_free(&two);
		qkdn_buf_free(&b);
	}
}

static void
test_bad_envelope(void **state)
{
	(void)state;
	struct pk p;

	/* not an array */
	pk_init(&p);
	msgpack_pack_map(&p.pk, 0);
	expect_fail(p.sb.data, p.sb.size, QKDN_E_BAD_REQUEST, "envelope");
	pk_free(&p);
	pk_init(&p);
	msgpack_pack_uint8(&p.pk, 1);
	expect_fail(p.sb.data, p.sb.size, QKDN_E_BAD_REQUEST, "envelope");
	pk_free(&p);
	pk_init(&p);
	pk_str(&p.pk, "hello");
	expect_fail(p.sb.data, p.sb.size, QKDN_E_BAD_REQUEST, "envelope");
	pk_free(&p);

	/* short arrays */
	for (size_t n = 0; n < 4; n++) {
		pk_init(&p);
		msgpack_pack_array(&p.pk, n);
		for (size_t i = 0; i < n; i++)
			msgpack_pack_uint8(&p.pk, 1);
		expect_fail(p.sb.data, p.sb.size, QKDN_E_BAD_REQUEST,
		            "envelope");
		pk_free(&p);
	}

	/* version */
	uint64_t versions[] = {0, 2, 255, UINT64_MAX};
	for (size_t i = 0; i < 4; i++) {
		pk_init(&p);
		pk_env(&p.pk, versions[i], QKDN_STATUS_REQ, 0);
		expect_fail(p.sb.data, p.sb.size, QKDN_E_VERSION, "version");
		pk_free(&p);
	}

	/* unknown types */
	uint64_t types[] = {0,          25,
	                    99,         QKDN_KME_KEYS_AUTH + 1,
	                    200,        1000,
	                    UINT32_MAX, (uint64_t)UINT32_MAX + 1 + QKDN_KEY_REQ,
	                    UINT64_MAX};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		pk_init(&p);
		pk_env(&p.pk, 1, types[i], 0);
		expect_fail(p.sb.data, p.sb.size, QKDN_E_UNKNOWN_TYPE,
		            "unknown");
		pk_free(&p);
	}

	/* envelope items of the wrong type: version, type, id each as a
	 * string, a negative number, nil */
	for (int slot = 0; slot < 3; slot++) {
		for (int how = 0; how < 3; how++) {
			pk_init(&p);
			msgpack_pack_array(&p.pk, 4);
			for (int i = 0; i < 3; i++) {
				if (i != slot)
					msgpack_pack_uint8(&p.pk,
					                   i == 1 ? 101 : 1);
				else if (how == 0)
					pk_str(&p.pk, "1");
				else if (how == 1)
					msgpack_pack_int8(&p.pk, -1);
				else
					msgpack_pack_nil(&p.pk);
			}
			msgpack_pack_map(&p.pk, 0);
			expect_fail(p.sb.data, p.sb.size, QKDN_E_WRONG_TYPE,
			            NULL);
			pk_free(&p);
		}
	}

	/* body not a map */
	pk_init(&p);
	msgpack_pack_array(&p.pk, 4);
	msgpack_pack_uint8(&p.pk, 1);
	msgpack_pack_uint8(&p.pk, QKDN_STATUS_REQ);
	msgpack_pack_uint8(&p.pk, 0);
	msgpack_pack_array(&p.pk, 0);
	expect_fail(p.sb.data, p.sb.size, QKDN_E_WRONG_TYPE, "body");
	pk_free(&p);

	/* a body key that is not a string */
	pk_init(&p);
	pk_env(&p.pk, 1, QKDN_STATUS_REQ, 1);
	msgpack_pack_uint8(&p.pk, 1);
	msgpack_pack_uint8(&p.pk, 0);
	expect_fail(p.sb.data, p.sb.size, QKDN_E_WRONG_TYPE, "key");
	pk_free(&p);

	/* extra envelope items after the body are ignored (reserved) */
	struct qkdn_msg d;
	pk_init(&p);
	msgpack_pack_array(&p.pk, 5);
	msgpack_pack_uint8(&p.pk, 1);
	msgpack_pack_uint8(&p.pk, QKDN_STATUS_REQ);
	msgpack_pack_uint8(&p.pk, 9);
	msgpack_pack_map(&p.pk, 0);
	pk_str(&p.pk, "future");
	decode_ok(p.sb.data, p.sb.size, &d);
	assert_int_equal(d.type, QKDN_STATUS_REQ);
	assert_int_equal(d.req_id, 9);
	qkdn_msg_clear(&d);
	pk_free(&p);
}

/* Values no field accepts: nil, boolean, float (even 8.0), extension and,
 * but for nested maps, a map. */
static void
pk_wrong(msgpack_packer *pk, int w)
{
	switch (w) {
	case 0:
		msgpack_pack_nil(pk);
		break;
	case 1:
		msgpack_pack_true(pk);
		break;
	case 2:
		msgpack_pack_double(pk, 8.0);
		break;
	case 3:
		msgpack_pack_float(pk, 1.0f);
		break;
	case 4:
		msgpack_pack_ext_with_body(pk, "abcd", 4, 1);
		break;
	default:
		msgpack_pack_map(pk, 0);
		break;
	}
}
#define N_WRONG 6

/* Left out, given twice, given as a value of the wrong kind: the field
 * key of the map at outer (NULL: the body) of the full sample of type. */
static void
check_one_field(uint32_t type, const char *outer, const struct wire_field *f,
                bool optional)
{
	struct pk out, v;
	char quoted[32];
	snprintf(quoted, sizeof(quoted), "'%s'", f->key);

	edit_at(type, outer, f->key, E_DROP, NULL, &out);
	if (optional)
		expect_code(out.sb.data, out.sb.size, 0, __LINE__);
	else
		expect_fail(out.sb.data, out.sb.size, QKDN_E_MISSING_FIELD,
		            quoted);
	pk_free(&out);

	edit_at(type, outer, f->key, E_DUP, NULL, &out);
	expect_fail(out.sb.data, out.sb.size, QKDN_E_BAD_REQUEST, "twice");
	pk_free(&out);

	for (int w = 0; w < N_WRONG; w++) {
		pk_init(&v);
		pk_wrong(&v.pk, w);
		edit_at(type, outer, f->key, E_SET, &v.sb, &out);
		if (f->type == MSGPACK_OBJECT_MAP && w == N_WRONG - 1)
			/* an empty map where a map belongs lacks its fields */
			expect_fail(out.sb.data, out.sb.size,
			            QKDN_E_MISSING_FIELD, "lacks");
		else if (f->type == MSGPACK_OBJECT_MAP)
			/* the reason names a nested map without quotes */
			expect_fail(out.sb.data, out.sb.size, QKDN_E_WRONG_TYPE,
			            f->key);
		else
			expect_fail(out.sb.data, out.sb.size, QKDN_E_WRONG_TYPE,
			            quoted);
		pk_free(&out);
		pk_free(&v);
	}
}

/* For every field of every type: left out, given twice, given as a value of
 * the wrong kind. */
static void
test_every_field_checked(void **state)
{
	(void)state;
	size_t optional_seen = 0;
	for (size_t i = 0; i < N_SAMPLES; i++) {
		uint32_t type = samples[i].type;
		struct wire_field f[32];
		size_t n = wire_fields(type, NULL, f, 32);
		struct pk out;
		assert_true(n > 0);

		/* empty body */
		pk_init(&out);
		pk_env(&out.pk, 1, type, 0);
		if (type == QKDN_STATUS_REQ)
			expect_code(out.sb.data, out.sb.size, 0, __LINE__);
		else
			expect_fail(out.sb.data, out.sb.size,
			            QKDN_E_MISSING_FIELD, "lacks");
		pk_free(&out);

		for (size_t k = 0; k < n; k++) {
			bool opt = is_optional(type, f[k].key);
			optional_seen += opt;
			check_one_field(type, NULL, &f[k], opt);
		}
	}
	/* every optional field listed is in a full sample, so was tested */
	assert_int_equal(optional_seen, N_OPTIONAL);
}

/* Fields of nested maps that may be left out. */
static const struct {
	uint32_t type;
	const char *outer;
	const char *key;
} nested_optional[] = {
    {QKDN_STATUS_RSP, "links", "unsync"},
    {QKDN_STATUS_RSP, "links", "syncfail"},
    {QKDN_STATUS_RSP, "links", "outmax"},
    {QKDN_STATUS_RSP, "links", "down"},
    {QKDN_LINK_STATE, "links", "bout"},
    {QKDN_LINK_STATE, "links", "rate"},
    {QKDN_LINK_STATE, "links", "age"},
    {QKDN_CTL_STATUS, "links", "bout"},
    {QKDN_CTL_STATUS, "links", "rate"},
    {QKDN_CTL_STATUS, "links", "age"},
};
#define N_NESTED_OPTIONAL (sizeof(nested_optional) / sizeof(nested_optional[0]))

static bool
is_nested_optional(uint32_t type, const char *outer, const char *key)
{
	for (size_t i = 0; i < N_NESTED_OPTIONAL; i++)
		if (nested_optional[i].type == type &&
		    strcmp(nested_optional[i].outer, outer) == 0 &&
		    strcmp(nested_optional[i].key, key) == 0)
			return true;
	return false;
}

/* The same for every field of every nested map (keys, segments, routes,
 * sync requests, link status, relay counters, link states), found in the
 * full samples; and a nested map with no fields at all. */
static void
test_nested_fields_checked(void **state)
{
	(void)state;
	size_t maps = 0, optional_seen = 0;
	for (size_t i = 0; i < N_SAMPLES; i++) {
		uint32_t type = samples[i].type;
		struct wire_field f[32];
		size_t n = wire_fields(type, NULL, f, 32);
		for (size_t k = 0; k < n; k++) {
			if (!is_nested(&f[k]))
				continue;
			const char *outer = f[k].key;
			struct wire_field g[32];
			size_t ng = wire_fields(type, outer, g, 32);
			assert_true(ng > 0);
			maps++;
			for (size_t j = 0; j < ng; j++) {
				bool opt =
				    is_nested_optional(type, outer, g[j].key);
				optional_seen += opt;
				check_one_field(type, outer, &g[j], opt);
			}
			/* {} (or [{}]) */
			struct pk v, out;
			pk_init(&v);
			if (f[k].type == MSGPACK_OBJECT_ARRAY)
				msgpack_pack_array(&v.pk, 1);
			msgpack_pack_map(&v.pk, 0);
			edit_sample(type, outer, E_SET, &v.sb, &out);
			expect_fail(out.sb.data, out.sb.size,
			            QKDN_E_MISSING_FIELD, "lacks");
			pk_free(&out);
			pk_free(&v);
		}
	}
	/* keys (3 types), segments (4), routes, sync requests, status links
	 * and relay counters, link states (2) */
	assert_int_equal(maps, 13);
	assert_int_equal(optional_seen, N_NESTED_OPTIONAL);
}

/* Every name and text field, in the body or a nested map: its length
 * limits, empty, and UTF-8. Text fields (reasons) are the "why" ones. */
static void
check_string_field(uint32_t type, const char *outer, const char *key)
{
	/* texts (up to a reason's length) vs names */
	bool text = strcmp(key, "why") == 0 || strcmp(key, "down") == 0;
	struct {
		size_t len;
		char fill;
		int code;
	} cases[] = {
	    {1, 'x', 0},
	    {QKDN_NAME_MAX - 1, 'x', 0},
	    {QKDN_NAME_MAX, 'x', text ? 0 : QKDN_E_TOO_LARGE},
	    {QKDN_REASON_MAX - 1, 'x', text ? 0 : QKDN_E_TOO_LARGE},
	    {QKDN_REASON_MAX, 'x', QKDN_E_TOO_LARGE},
	    {0, 'x', text ? 0 : QKDN_E_RANGE},
	};
	static const struct {
		const char *s;
		size_t len;
		int code;
	} utf8[] = {
	    {"\xc3\x28", 2, QKDN_E_BAD_REQUEST},
	    {"a\0b", 3, QKDN_E_BAD_REQUEST},
	    {"\xed\xa0\x80", 3, QKDN_E_BAD_REQUEST},
	    {"東京-ü", 9, 0},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct pk v, out;
		pk_init(&v);
		pk_strn(&v.pk, cases[c].len, cases[c].fill);
		edit_at(type, outer, key, E_SET, &v.sb, &out);
		expect_code(out.sb.data, out.sb.size, cases[c].code, __LINE__);
		pk_free(&out);
		pk_free(&v);
	}
	for (size_t c = 0; c < sizeof(utf8) / sizeof(utf8[0]); c++) {
		struct pk v, out;
		pk_init(&v);
		msgpack_pack_str_with_body(&v.pk, utf8[c].s, utf8[c].len);
		edit_at(type, outer, key, E_SET, &v.sb, &out);
		expect_code(out.sb.data, out.sb.size, utf8[c].code, __LINE__);
		pk_free(&out);
		pk_free(&v);
	}
}

static void
test_every_string_field(void **state)
{
	(void)state;
	size_t strings = 0;
	for (size_t i = 0; i < N_SAMPLES; i++) {
		uint32_t type = samples[i].type;
		struct wire_field f[32];
		size_t n = wire_fields(type, NULL, f, 32);
		for (size_t k = 0; k < n; k++) {
			if (f[k].type == MSGPACK_OBJECT_STR) {
				check_string_field(type, NULL, f[k].key);
				strings++;
			}
			if (!is_nested(&f[k]))
				continue;
			struct wire_field g[32];
			size_t ng = wire_fields(type, f[k].key, g, 32);
			for (size_t j = 0; j < ng; j++) {
				if (g[j].type != MSGPACK_OBJECT_STR)
					continue;
				check_string_field(type, f[k].key, g[j].key);
				strings++;
			}
		}
	}
	/* 43 in bodies, 11 in nested maps: a new string field must show up
	 * here (count it in) */
	assert_int_equal(strings, 54);
}

static void
pk_ids(msgpack_packer *pk, uint32_t n)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		pk_bin(pk, 16, (uint8_t)i);
}

static void
pk_names(msgpack_packer *pk, uint32_t n)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++) {
		char name[16];
		snprintf(name, sizeof(name), "n%u", i);
		pk_str(pk, name);
	}
}

static void
pk_one_key(msgpack_packer *pk, size_t len)
{
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 2);
	pk_str(pk, "id");
	pk_bin(pk, 16, 1);
	pk_str(pk, "k");
	pk_bin(pk, len, 0x5a);
}

static void
pk_seg(msgpack_packer *pk, uint64_t blk, int64_t off, int64_t len)
{
	msgpack_pack_map(pk, 3);
	pk_str(pk, "blk");
	msgpack_pack_uint64(pk, blk);
	pk_str(pk, "off");
	msgpack_pack_int64(pk, off);
	pk_str(pk, "len");
	msgpack_pack_int64(pk, len);
}

static void
pk_segs(msgpack_packer *pk, uint32_t n, int64_t off, int64_t len)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		pk_seg(pk, i, off, len);
}

/* reqs: one sync request of bits with nids IDs */
static void
pk_sync_req(msgpack_packer *pk, int64_t bits, uint32_t nids)
{
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 4);
	pk_str(pk, "src");
	pk_str(pk, "s");
	pk_str(pk, "dst");
	pk_str(pk, "d");
	pk_str(pk, "bits");
	msgpack_pack_int64(pk, bits);
	pk_str(pk, "ids");
	pk_ids(pk, nids);
}

static void
pk_link(msgpack_packer *pk, uint64_t up)
{
	msgpack_pack_map(pk, 6);
	pk_str(pk, "link");
	pk_str(pk, "l");
	pk_str(pk, "peer");
	pk_str(pk, "p");
	pk_str(pk, "out");
	msgpack_pack_uint8(pk, 1);
	pk_str(pk, "in");
	msgpack_pack_uint8(pk, 1);
	pk_str(pk, "blocks");
	msgpack_pack_uint8(pk, 1);
	pk_str(pk, "up");
	msgpack_pack_uint64(pk, up);
}

/* routes: nroutes maps {"r": [nnodes names]} */
static void
pk_routes(msgpack_packer *pk, uint32_t nroutes, uint32_t nnodes)
{
	msgpack_pack_array(pk, nroutes);
	for (uint32_t i = 0; i < nroutes; i++) {
		msgpack_pack_map(pk, 1);
		pk_str(pk, "r");
		pk_names(pk, nnodes);
	}
}

/* one link state with every field, up and age as given */
static void
pk_link_state(msgpack_packer *pk, uint64_t up, uint64_t age)
{
	msgpack_pack_map(pk, 8);
	pk_str(pk, "link");
	pk_str(pk, "l");
	pk_str(pk, "a");
	pk_str(pk, "n1");
	pk_str(pk, "b");
	pk_str(pk, "n2");
	pk_str(pk, "up");
	msgpack_pack_uint64(pk, up);
	pk_str(pk, "aout");
	msgpack_pack_uint64(pk, 4096);
	pk_str(pk, "bout");
	msgpack_pack_uint64(pk, UINT64_MAX);
	pk_str(pk, "rate");
	msgpack_pack_uint64(pk, 1000);
	pk_str(pk, "age");
	msgpack_pack_uint64(pk, age);
}

/* n link states, the last one with up as given */
static void
pk_link_states(msgpack_packer *pk, uint32_t n, uint64_t up)
{
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		pk_link_state(pk, i + 1 == n ? up : 1, i);
}

/* Values of a kind that a particular field type does not take. */
static void
test_wrong_field_types(void **state)
{
	(void)state;
	int wt = QKDN_E_WRONG_TYPE;
	/* name as integer, binary, array */
	WITH_VALUE(QKDN_KEY_REQ, "sae", wt, msgpack_pack_uint8(pk, 7));
	WITH_VALUE(QKDN_KEY_REQ, "sae", wt, pk_bin(pk, 3, 'a'));
	WITH_VALUE(QKDN_KEY_REQ, "dst", wt, msgpack_pack_array(pk, 0));
	/* integers as string, binary, negative for u64 */
	WITH_VALUE(QKDN_KEY_REQ, "bits", wt, pk_str(pk, "256"));
	WITH_VALUE(QKDN_KEY_REQ, "n", wt, pk_bin(pk, 1, 1));
	WITH_VALUE(QKDN_ACK, "res", wt, pk_str(pk, "0"));
	WITH_VALUE(QKDN_ACK, "val", wt, pk_str(pk, "0"));
	WITH_VALUE(QKDN_LINK_BLOCK, "blk", wt, msgpack_pack_array(pk, 0));
	/* uuid as string (even of 16 characters) or array */
	WITH_VALUE(QKDN_SESSION_NOTIF_RSP, "sid", wt,
	           pk_str(pk, "0123456789abcdef"));
	WITH_VALUE(QKDN_NEXT_HOP_REQ, "rid", wt, msgpack_pack_array(pk, 0));
	/* bytes as string */
	WITH_VALUE(QKDN_LINK_BLOCK, "bytes", wt, pk_str(pk, "abcd"));
	WITH_VALUE(QKDN_KEY_RELAY_AUTH, "tag", wt, pk_str(pk, "abcd"));
	WITH_VALUE(QKDN_KEY_RELAY_AUTH, "relay", wt, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_KEY_RELAY, "ct", wt, pk_str(pk, "abcd"));
	WITH_VALUE(QKDN_RELAY_DONE_NOTIF, "tag", wt, pk_str(pk, "abcd"));
	/* arrays as binary or string */
	WITH_VALUE(QKDN_KEY_REQ_ID, "ids", wt, pk_bin(pk, 16, 0));
	WITH_VALUE(QKDN_KEY_RELAY, "route", wt, pk_str(pk, "a,b"));
	WITH_VALUE(QKDN_RELAY_REQ, "routes", wt, pk_str(pk, "a,b"));
	WITH_VALUE(QKDN_LINK_STATE, "links", wt, msgpack_pack_map(pk, 0));
	WITH_VALUE(QKDN_KEY_RSP, "keys", wt, msgpack_pack_map(pk, 0));
	/* array elements of the wrong type: the reason names the item */
	WITH_VALUE(QKDN_KEY_REQ_ID, "ids", wt, {
		msgpack_pack_array(pk, 3);
		pk_bin(pk, 16, 1);
		pk_bin(pk, 16, 2);
		pk_str(pk, "0123456789abcdef");
	});
	WITH_VALUE(QKDN_KEY_RELAY, "route", wt, {
		msgpack_pack_array(pk, 2);
		pk_str(pk, "a");
		msgpack_pack_uint8(pk, 2);
	});
	WITH_VALUE(QKDN_RELAY_REQ, "routes", wt, {
		msgpack_pack_array(pk, 1);
		pk_names(pk, 2); /* a route, not a map holding one */
	});
	WITH_VALUE(QKDN_RELAY_REQ, "routes", wt, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 1);
		pk_str(pk, "r");
		msgpack_pack_array(pk, 2);
		pk_str(pk, "a");
		pk_bin(pk, 1, 'b');
	});
	WITH_VALUE(QKDN_CTL_STATUS, "links", wt, {
		msgpack_pack_array(pk, 1);
		pk_str(pk, "link");
	});
	WITH_VALUE(QKDN_KEY_RSP, "keys", wt, {
		msgpack_pack_array(pk, 1);
		pk_bin(pk, 32, 1);
	});
	WITH_VALUE(QKDN_STATUS_RSP, "links", wt, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_array(pk, 0);
	});
	/* inside a key: id as string, k as string, non-string key */
	WITH_VALUE(QKDN_KEY_RSP, "keys", wt, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 2);
		pk_str(pk, "id");
		pk_strn(pk, 16, 'i');
		pk_str(pk, "k");
		pk_bin(pk, 32, 1);
	});
	WITH_VALUE(QKDN_KEY_RSP, "keys", wt, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 2);
		pk_str(pk, "id");
		pk_bin(pk, 16, 1);
		pk_str(pk, "k");
		pk_strn(pk, 32, 'k');
	});
	WITH_VALUE(QKDN_KEY_RSP, "keys", wt, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 1);
		msgpack_pack_uint8(pk, 1);
		pk_bin(pk, 16, 1);
	});

	/* the exact reason for an item */
	struct pk v, out;
	pk_init(&v);
	msgpack_pack_array(&v.pk, 3);
	pk_bin(&v.pk, 16, 1);
	pk_bin(&v.pk, 16, 2);
	msgpack_pack_nil(&v.pk);
	edit_sample(QKDN_KEY_REQ_ID, "ids", E_SET, &v.sb, &out);
	expect_fail(out.sb.data, out.sb.size, QKDN_E_WRONG_TYPE,
	            "item 2 of 'ids'");
	pk_free(&out);
	pk_free(&v);
}

/* Missing fields inside nested maps. */
static void
test_nested_missing(void **state)
{
	(void)state;
	int mf = QKDN_E_MISSING_FIELD;
	WITH_VALUE(QKDN_KEY_RSP, "keys", mf, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 1);
		pk_str(pk, "k");
		pk_bin(pk, 32, 1);
	});
	WITH_VALUE(QKDN_KEY_RSP, "keys", mf, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 1);
		pk_str(pk, "id");
		pk_bin(pk, 16, 1);
	});
	WITH_VALUE(QKDN_STATUS_RSP, "links", mf, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 5);
		pk_str(pk, "link");
		pk_str(pk, "l");
		pk_str(pk, "peer");
		pk_str(pk, "p");
		pk_str(pk, "out");
		msgpack_pack_uint8(pk, 1);
		pk_str(pk, "in");
		msgpack_pack_uint8(pk, 1);
		pk_str(pk, "blocks");
		msgpack_pack_uint8(pk, 1);
	});
	WITH_VALUE(QKDN_KEY_RELAY, "segs", mf, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 2);
		pk_str(pk, "blk");
		msgpack_pack_uint8(pk, 1);
		pk_str(pk, "off");
		msgpack_pack_uint8(pk, 0);
	});
	WITH_VALUE(QKDN_KEY_SYNC, "reqs", mf, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 3);
		pk_str(pk, "src");
		pk_str(pk, "s");
		pk_str(pk, "dst");
		pk_str(pk, "d");
		pk_str(pk, "bits");
		msgpack_pack_uint16(pk, 256);
	});
	/* wrong types inside segments and sync requests */
	WITH_VALUE(QKDN_KEY_SYNC, "segs", QKDN_E_WRONG_TYPE, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 3);
		pk_str(pk, "blk");
		pk_str(pk, "1");
		pk_str(pk, "off");
		msgpack_pack_uint8(pk, 0);
		pk_str(pk, "len");
		msgpack_pack_uint8(pk, 1);
	});
	WITH_VALUE(QKDN_KEY_SYNC, "reqs", QKDN_E_WRONG_TYPE, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 4);
		pk_str(pk, "src");
		pk_str(pk, "s");
		pk_str(pk, "dst");
		pk_str(pk, "d");
		pk_str(pk, "bits");
		msgpack_pack_uint16(pk, 256);
		pk_str(pk, "ids");
		pk_bin(pk, 16, 1);
	});
	/* duplicate key inside a key map */
	WITH_VALUE(QKDN_KEY_RSP, "keys", QKDN_E_BAD_REQUEST, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 3);
		pk_str(pk, "id");
		pk_bin(pk, 16, 1);
		pk_str(pk, "k");
		pk_bin(pk, 32, 1);
		pk_str(pk, "id");
		pk_bin(pk, 16, 2);
	});
	/* unknown keys inside a key map are ignored too */
	WITH_VALUE(QKDN_KEY_RSP, "keys", 0, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 3);
		pk_str(pk, "id");
		pk_bin(pk, 16, 1);
		pk_str(pk, "k");
		pk_bin(pk, 32, 1);
		pk_str(pk, "exp");
		msgpack_pack_uint32(pk, 3600);
	});
}

static void
test_too_large(void **state)
{
	(void)state;
	int tl = QKDN_E_TOO_LARGE;
	/* names: 63 bytes fit, 64 do not */
	WITH_VALUE(QKDN_KEY_REQ, "sae", 0, pk_strn(pk, 63, 's'));
	WITH_VALUE(QKDN_KEY_REQ, "sae", tl, pk_strn(pk, 64, 's'));
	WITH_VALUE(QKDN_KEY_REQ, "dst", tl, pk_strn(pk, 1000, 's'));
	WITH_VALUE(QKDN_LINK_CTL, "link", tl, pk_strn(pk, 64, 'l'));
	/* error reason: 255 fit, 256 do not */
	WITH_VALUE(QKDN_ERROR, "why", 0, pk_strn(pk, 255, 'w'));
	WITH_VALUE(QKDN_ERROR, "why", tl, pk_strn(pk, 256, 'w'));
	/* keys: 1024 bytes fit, 1025 do not */
	WITH_VALUE(QKDN_KEY_RSP, "keys", 0, pk_one_key(pk, 1024));
	WITH_VALUE(QKDN_KEY_RSP, "keys", tl, pk_one_key(pk, 1025));
	WITH_VALUE(QKDN_PROACTIVE_SUPPLY, "keys", tl, pk_one_key(pk, 4096));
	/* IDs: 4096 fit, 4097 do not */
	WITH_VALUE(QKDN_KEY_REQ_ID, "ids", 0, pk_ids(pk, 4096));
	WITH_VALUE(QKDN_KEY_REQ_ID, "ids", tl, pk_ids(pk, 4097));
	WITH_VALUE(QKDN_RESERVE_RSP, "ids", tl, pk_ids(pk, 4097));
	WITH_VALUE(QKDN_KEY_RELAY, "ids", tl, pk_ids(pk, 4097));
	WITH_VALUE(QKDN_KEY_SYNC, "reqs", 0, pk_sync_req(pk, 256, 4096));
	WITH_VALUE(QKDN_KEY_SYNC, "reqs", tl, pk_sync_req(pk, 256, 4097));
	WITH_VALUE(QKDN_KEY_SYNC, "reqs", tl, {
		msgpack_pack_array(pk, 4097);
		for (int i = 0; i < 4097; i++)
			msgpack_pack_nil(pk);
	});
	/* segments: 1024 fit, 1025 do not */
	WITH_VALUE(QKDN_KEY_RELAY, "segs", 0, pk_segs(pk, 1024, 0, 1));
	WITH_VALUE(QKDN_KEY_RELAY, "segs", tl, pk_segs(pk, 1025, 0, 1));
	WITH_VALUE(QKDN_KEY_SYNC, "segs", tl, pk_segs(pk, 1025, 0, 1));
	/* keys arrays */
	WITH_VALUE(QKDN_KEY_RSP, "keys", tl, {
		msgpack_pack_array(pk, 4097);
		for (int i = 0; i < 4097; i++) {
			msgpack_pack_map(pk, 2);
			pk_str(pk, "id");
			pk_bin(pk, 16, 1);
			pk_str(pk, "k");
			pk_bin(pk, 1, 1);
		}
	});
	/* routes: 32 fit, 33 do not; route names */
	WITH_VALUE(QKDN_KEY_RELAY, "route", 0, pk_names(pk, 32));
	WITH_VALUE(QKDN_KEY_RELAY, "route", tl, pk_names(pk, 33));
	WITH_VALUE(QKDN_KEY_RELAY, "route", tl, {
		msgpack_pack_array(pk, 2);
		pk_str(pk, "a");
		pk_strn(pk, 64, 'b');
	});
	WITH_VALUE(QKDN_RELAY_REQ, "routes", 0, pk_routes(pk, 1, 32));
	WITH_VALUE(QKDN_RELAY_REQ, "routes", tl, pk_routes(pk, 1, 33));
	WITH_VALUE(QKDN_RELAY_REQ, "routes", 0, pk_routes(pk, 8, 2));
	WITH_VALUE(QKDN_RELAY_REQ, "routes", tl, pk_routes(pk, 9, 2));
	WITH_VALUE(QKDN_RELAY_REQ, "routes", tl, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 1);
		pk_str(pk, "r");
		msgpack_pack_array(pk, 2);
		pk_str(pk, "a");
		pk_strn(pk, 64, 'b');
	});
	/* I.4b parts of a key relay request */
	WITH_VALUE(QKDN_RELAY_REQ, "ids", 0, pk_ids(pk, 4096));
	WITH_VALUE(QKDN_RELAY_REQ, "ids", tl, pk_ids(pk, 4097));
	WITH_VALUE(QKDN_RELAY_REQ, "segs", 0, pk_segs(pk, 1024, 0, 1));
	WITH_VALUE(QKDN_RELAY_REQ, "segs", tl, pk_segs(pk, 1025, 0, 1));
	WITH_VALUE(QKDN_RESERVE_RSP, "segs", tl, pk_segs(pk, 1025, 0, 1));
	WITH_VALUE(QKDN_RELAY_DONE_NOTIF, "ids", tl, pk_ids(pk, 4097));
	WITH_VALUE(QKDN_ALLOC_RSP, "ids", 0, pk_ids(pk, 4096));
	WITH_VALUE(QKDN_ALLOC_RSP, "ids", tl, pk_ids(pk, 4097));
	WITH_VALUE(QKDN_RELAY_ABORT, "ids", tl, pk_ids(pk, 4097));
	/* link states: 4096 fit, 4097 do not */
	WITH_VALUE(QKDN_LINK_STATE, "links", 0, pk_link_states(pk, 4096, 1));
	WITH_VALUE(QKDN_LINK_STATE, "links", tl, pk_link_states(pk, 4097, 1));
	WITH_VALUE(QKDN_CTL_STATUS, "links", 0, pk_link_states(pk, 4096, 1));
	WITH_VALUE(QKDN_CTL_STATUS, "links", tl, pk_link_states(pk, 4097, 1));
	/* names of the relay and controller messages (every top-level name
	 * is also covered by test_every_string_field) */
	WITH_VALUE(QKDN_NEXT_HOP_RSP, "link", tl, pk_strn(pk, 64, 'l'));
	WITH_VALUE(QKDN_RESERVE_REQ, "next", tl, pk_strn(pk, 64, 'n'));
	WITH_VALUE(QKDN_LINK_STATE, "origin", 0, pk_strn(pk, 63, 'o'));
	WITH_VALUE(QKDN_LINK_STATE, "origin", tl, pk_strn(pk, 64, 'o'));
	/* relay abort reason: 255 fit, 256 do not */
	WITH_VALUE(QKDN_RELAY_ABORT, "why", 0, pk_strn(pk, 255, 'w'));
	WITH_VALUE(QKDN_RELAY_ABORT, "why", tl, pk_strn(pk, 256, 'w'));
	/* byte strings */
	WITH_VALUE(QKDN_KEY_RELAY_AUTH, "tag", 0, pk_bin(pk, 16, 1));
	WITH_VALUE(QKDN_KEY_RELAY_AUTH, "tag", tl, pk_bin(pk, 17, 1));
	WITH_VALUE(QKDN_RELAY_DONE_NOTIF, "tag", 0, pk_bin(pk, 16, 1));
	WITH_VALUE(QKDN_RELAY_DONE_NOTIF, "tag", tl, pk_bin(pk, 17, 1));
	WITH_VALUE(QKDN_KEY_RELAY_AUTH, "relay", 0,
	           pk_bin(pk, QKDN_BYTES_MAX, 1));
	WITH_VALUE(QKDN_KEY_RELAY_AUTH, "relay", tl,
	           pk_bin(pk, QKDN_BYTES_MAX + 1, 1));
	WITH_VALUE(QKDN_KEY_SYNC_AUTH, "tag", 0, pk_bin(pk, 16, 1));
	WITH_VALUE(QKDN_KEY_SYNC_AUTH, "tag", tl, pk_bin(pk, 17, 1));
	WITH_VALUE(QKDN_LINK_BLOCK, "bytes", tl,
	           pk_bin(pk, QKDN_BLOCK_BYTES_MAX + 1, 1));
	WITH_VALUE(QKDN_KEY_RELAY, "ct", tl,
	           pk_bin(pk, QKDN_KEYS_MAX * QKDN_KEY_BYTES_MAX + 1, 1));
	/* status links: 64 fit, 65 do not */
	WITH_VALUE(QKDN_STATUS_RSP, "links", 0, {
		msgpack_pack_array(pk, 64);
		for (int i = 0; i < 64; i++)
			pk_link(pk, 1);
	});
	WITH_VALUE(QKDN_STATUS_RSP, "links", tl, {
		msgpack_pack_array(pk, 65);
		for (int i = 0; i < 65; i++)
			pk_link(pk, 1);
	});

	/* a whole message over 16 MiB, whatever it holds */
	size_t big = QKDN_MSG_BYTES_MAX + 1;
	uint8_t *b = calloc(1, big);
	assert_non_null(b);
	expect_fail(b, big, QKDN_E_TOO_LARGE, NULL);
	free(b);
}

static void
test_out_of_range(void **state)
{
	(void)state;
	int rg = QKDN_E_RANGE;
	/* bits: 8..8192, multiple of 8 */
	WITH_VALUE(QKDN_KEY_REQ, "bits", rg, msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_KEY_REQ, "bits", rg, msgpack_pack_uint32(pk, 9000));
	WITH_VALUE(QKDN_KEY_REQ, "bits", rg, msgpack_pack_uint32(pk, 8200));
	WITH_VALUE(QKDN_KEY_REQ, "bits", rg, msgpack_pack_uint8(pk, 12));
	WITH_VALUE(QKDN_KEY_REQ, "bits", rg, msgpack_pack_uint8(pk, 7));
	WITH_VALUE(QKDN_KEY_REQ, "bits", rg, msgpack_pack_int8(pk, -8));
	WITH_VALUE(QKDN_KEY_REQ, "bits", rg,
	           msgpack_pack_uint64(pk, 1ULL << 32));
	WITH_VALUE(QKDN_KEY_REQ, "bits", rg,
	           msgpack_pack_uint64(pk, UINT64_MAX));
	WITH_VALUE(QKDN_SESSION_CREATE_REQ, "bits", rg,
	           msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_KEY_SYNC, "reqs", rg, pk_sync_req(pk, 9000, 1));
	WITH_VALUE(QKDN_KEY_SYNC, "reqs", rg, pk_sync_req(pk, 0, 1));
	WITH_VALUE(QKDN_KEY_SYNC, "reqs", rg, pk_sync_req(pk, 260, 1));
	WITH_VALUE(QKDN_KEY_SYNC, "reqs", 0, pk_sync_req(pk, 8192, 1));
	WITH_VALUE(QKDN_RESERVE_REQ, "bits", rg, msgpack_pack_uint8(pk, 100));
	WITH_VALUE(QKDN_KEY_REQ, "bits", 0, msgpack_pack_uint8(pk, 8));
	WITH_VALUE(QKDN_KEY_REQ, "bits", 0, msgpack_pack_uint16(pk, 8192));
	/* counts: 1..4096 */
	WITH_VALUE(QKDN_KEY_REQ, "n", rg, msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_KEY_REQ, "n", rg, msgpack_pack_uint16(pk, 4097));
	WITH_VALUE(QKDN_KEY_REQ_SESSION, "n", rg, msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_RELAY_REQ_NOTIF, "n", rg, msgpack_pack_int8(pk, -1));
	WITH_VALUE(QKDN_KEY_REQ, "n", 0, msgpack_pack_uint16(pk, 4096));
	/* empty names */
	WITH_VALUE(QKDN_KEY_REQ, "sae", rg, pk_str(pk, ""));
	WITH_VALUE(QKDN_SESSION_CREATE_REQ, "snode", rg, pk_str(pk, ""));
	WITH_VALUE(QKDN_KEY_RELAY, "route", rg, {
		msgpack_pack_array(pk, 2);
		pk_str(pk, "a");
		pk_str(pk, "");
	});
	/* array sizes below the minimum */
	WITH_VALUE(QKDN_KEY_REQ_ID, "ids", rg, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_KEY_RELAY, "ids", rg, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_KEY_SYNC, "reqs", rg, pk_sync_req(pk, 256, 0));
	WITH_VALUE(QKDN_KEY_SYNC, "reqs", rg, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_KEY_SYNC, "segs", rg, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_KEY_RELAY, "segs", rg, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_KEY_RSP, "keys", rg, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_KEY_RELAY, "route", rg, pk_names(pk, 1));
	WITH_VALUE(QKDN_KEY_RELAY, "route", rg, pk_names(pk, 0));
	WITH_VALUE(QKDN_RELAY_REQ, "routes", rg, pk_routes(pk, 1, 1));
	WITH_VALUE(QKDN_RELAY_REQ, "routes", rg, pk_routes(pk, 2, 0));
	WITH_VALUE(QKDN_RELAY_REQ, "routes", 0, pk_routes(pk, 0, 0));
	WITH_VALUE(QKDN_RELAY_REQ, "routes", 0, pk_routes(pk, 1, 2));
	/* optional arrays: IDs may be sent empty, segments may not */
	WITH_VALUE(QKDN_RELAY_REQ, "ids", 0, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_RELAY_REQ, "segs", rg, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_RESERVE_RSP, "ids", 0, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_RESERVE_RSP, "segs", rg, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_RELAY_DONE_NOTIF, "ids", 0, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_ALLOC_RSP, "ids", 0, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_RELAY_ABORT, "ids", 0, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_LINK_STATE, "links", 0, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_CTL_STATUS, "links", 0, msgpack_pack_array(pk, 0));
	WITH_VALUE(QKDN_PROACTIVE_SUPPLY_RSP, "ids", 0,
	           msgpack_pack_array(pk, 0));
	/* UUIDs must be 16 bytes */
	WITH_VALUE(QKDN_SESSION_NOTIF_RSP, "sid", rg, pk_bin(pk, 15, 1));
	WITH_VALUE(QKDN_SESSION_NOTIF_RSP, "sid", rg, pk_bin(pk, 17, 1));
	WITH_VALUE(QKDN_SESSION_NOTIF_RSP, "sid", rg, pk_bin(pk, 0, 1));
	WITH_VALUE(QKDN_KEY_REQ_ID, "ids", rg, {
		msgpack_pack_array(pk, 2);
		pk_bin(pk, 16, 1);
		pk_bin(pk, 8, 1);
	});
	WITH_VALUE(QKDN_KEY_RSP, "keys", rg, {
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 2);
		pk_str(pk, "id");
		pk_bin(pk, 4, 1);
		pk_str(pk, "k");
		pk_bin(pk, 32, 1);
	});
	/* byte strings may not be empty */
	WITH_VALUE(QKDN_KEY_RSP, "keys", rg, pk_one_key(pk, 0));
	WITH_VALUE(QKDN_KEY_RELAY, "ct", rg, pk_bin(pk, 0, 0));
	WITH_VALUE(QKDN_KEY_RELAY_AUTH, "tag", rg, pk_bin(pk, 0, 0));
	WITH_VALUE(QKDN_KEY_RELAY_AUTH, "relay", rg, pk_bin(pk, 0, 0));
	WITH_VALUE(QKDN_RELAY_DONE_NOTIF, "tag", rg, pk_bin(pk, 0, 0));
	WITH_VALUE(QKDN_LINK_BLOCK, "bytes", rg, pk_bin(pk, 0, 0));
	/* relay position */
	WITH_VALUE(QKDN_KEY_RELAY, "hop", rg, msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_KEY_RELAY, "hop", rg, msgpack_pack_uint8(pk, 32));
	WITH_VALUE(QKDN_KEY_RELAY, "hop", 0, msgpack_pack_uint8(pk, 31));
	/* time to live: 1 ms..1 h */
	WITH_VALUE(QKDN_KEY_RELAY, "ttl", rg, msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_KEY_RELAY, "ttl", rg, msgpack_pack_uint32(pk, 3600001));
	WITH_VALUE(QKDN_KEY_RELAY, "ttl", 0, msgpack_pack_uint8(pk, 1));
	WITH_VALUE(QKDN_RESERVE_REQ, "ttl", rg, msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_RESERVE_REQ, "ttl", rg,
	           msgpack_pack_uint32(pk, 3600001));
	WITH_VALUE(QKDN_RESERVE_REQ, "ttl", 0,
	           msgpack_pack_uint32(pk, 3600000));
	WITH_VALUE(QKDN_LINK_STATE, "maxage", rg, msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_LINK_STATE, "maxage", rg,
	           msgpack_pack_uint32(pk, 3600001));
	WITH_VALUE(QKDN_LINK_STATE, "maxage", 0, msgpack_pack_uint8(pk, 1));
	/* bits of a key relay, a reservation, and the I.4b relay request
	 * (optional there: 0 is "none") */
	WITH_VALUE(QKDN_KEY_RELAY, "bits", rg, msgpack_pack_uint8(pk, 12));
	WITH_VALUE(QKDN_KEY_RELAY, "bits", rg, msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_RELAY_REQ_NOTIF, "bits", rg,
	           msgpack_pack_uint16(pk, 8200));
	WITH_VALUE(QKDN_RELAY_REQ, "bits", 0, msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_RELAY_REQ, "bits", 0, msgpack_pack_uint16(pk, 8192));
	WITH_VALUE(QKDN_RELAY_REQ, "bits", rg, msgpack_pack_uint16(pk, 8193));
	WITH_VALUE(QKDN_RELAY_REQ, "bits", rg, msgpack_pack_int8(pk, -8));
	/* counts of the relay procedures */
	WITH_VALUE(QKDN_RESERVE_REQ, "n", rg, msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_RESERVE_REQ, "n", rg, msgpack_pack_uint16(pk, 4097));
	WITH_VALUE(QKDN_RELAY_REQ_NOTIF, "n", rg, msgpack_pack_uint8(pk, 0));
	/* flags: 0..1 */
	WITH_VALUE(QKDN_RELAY_REQ_NOTIF, "reserve", rg,
	           msgpack_pack_uint8(pk, 2));
	WITH_VALUE(QKDN_RELAY_REQ_NOTIF, "reserve", 0,
	           msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_CTL_STATUS, "central", rg, msgpack_pack_uint8(pk, 2));
	WITH_VALUE(QKDN_LINK_STATE, "links", rg, pk_link_states(pk, 1, 2));
	WITH_VALUE(QKDN_CTL_STATUS, "links", rg, pk_link_states(pk, 2, 2));
	/* a link state's age: any u32, not more */
	WITH_VALUE(QKDN_CTL_STATUS, "links", 0, {
		msgpack_pack_array(pk, 1);
		pk_link_state(pk, 1, UINT32_MAX);
	});
	WITH_VALUE(QKDN_CTL_STATUS, "links", rg, {
		msgpack_pack_array(pk, 1);
		pk_link_state(pk, 1, (uint64_t)UINT32_MAX + 1);
	});
	/* relay, reservation IDs: 16 bytes, also when optional */
	WITH_VALUE(QKDN_RELAY_REQ, "resid", rg, pk_bin(pk, 15, 1));
	WITH_VALUE(QKDN_RELAY_REQ_RSP, "resid", rg, pk_bin(pk, 17, 1));
	WITH_VALUE(QKDN_RESERVE_RELEASE, "resid", rg, pk_bin(pk, 0, 1));
	WITH_VALUE(QKDN_RELAY_ABORT, "rid", rg, pk_bin(pk, 8, 1));
	WITH_VALUE(QKDN_RELAY_REQ, "resid", 0, pk_bin(pk, 16, 0));
	/* segments: offset 0..2^20-1, length 1..2^20 */
	WITH_VALUE(QKDN_KEY_RELAY, "segs", rg,
	           pk_segs(pk, 1, QKDN_BLOCK_BYTES_MAX, 1));
	WITH_VALUE(QKDN_KEY_SYNC, "segs", rg,
	           pk_segs(pk, 2, QKDN_BLOCK_BYTES_MAX, 1));
	WITH_VALUE(QKDN_KEY_SYNC, "segs", rg, pk_segs(pk, 1, -1, 1));
	WITH_VALUE(QKDN_KEY_RELAY, "segs", rg, pk_segs(pk, 1, 0, 0));
	WITH_VALUE(QKDN_KEY_RELAY, "segs", rg,
	           pk_segs(pk, 1, 0, QKDN_BLOCK_BYTES_MAX + 1));
	WITH_VALUE(
	    QKDN_KEY_RELAY, "segs", 0,
	    pk_segs(pk, 1, QKDN_BLOCK_BYTES_MAX - 1, QKDN_BLOCK_BYTES_MAX));
	/* u64 fields: never negative */
	WITH_VALUE(QKDN_LINK_BLOCK, "blk", rg, msgpack_pack_int8(pk, -1));
	WITH_VALUE(QKDN_STATUS_RSP, "errors", rg,
	           msgpack_pack_int64(pk, INT64_MIN));
	WITH_VALUE(QKDN_LINK_BLOCK, "blk", 0,
	           msgpack_pack_uint64(pk, UINT64_MAX));
	WITH_VALUE(QKDN_NEXT_HOP_REQ, "bytes", rg, msgpack_pack_int8(pk, -1));
	WITH_VALUE(QKDN_NEXT_HOP_RSP, "ver", rg, msgpack_pack_int8(pk, -1));
	WITH_VALUE(QKDN_RELAY_REQ, "ver", rg, msgpack_pack_int8(pk, -1));
	WITH_VALUE(QKDN_ROUTE_QUERY, "bytes", rg, msgpack_pack_int8(pk, -1));
	WITH_VALUE(QKDN_LINK_STATE, "seq", rg, msgpack_pack_int8(pk, -1));
	WITH_VALUE(QKDN_LINK_STATE, "seq", 0,
	           msgpack_pack_uint64(pk, UINT64_MAX));
	WITH_VALUE(QKDN_CTL_STATUS, "updates", rg, msgpack_pack_int8(pk, -1));
	/* results: -10000..0 */
	WITH_VALUE(QKDN_ACK, "res", rg, msgpack_pack_uint8(pk, 1));
	WITH_VALUE(QKDN_ACK, "res", rg, msgpack_pack_int32(pk, -10001));
	WITH_VALUE(QKDN_ACK, "res", rg, msgpack_pack_int64(pk, INT64_MIN));
	WITH_VALUE(QKDN_ACK, "res", rg, msgpack_pack_uint64(pk, UINT64_MAX));
	WITH_VALUE(QKDN_ALLOC_RSP, "res", rg, msgpack_pack_uint8(pk, 5));
	WITH_VALUE(QKDN_NEXT_HOP_RSP, "res", rg, msgpack_pack_uint8(pk, 1));
	WITH_VALUE(QKDN_RELAY_DONE_NOTIF, "res", rg,
	           msgpack_pack_int32(pk, -10001));
	WITH_VALUE(QKDN_RELAY_REQ_RSP, "res", rg, msgpack_pack_uint8(pk, 1));
	WITH_VALUE(QKDN_RESERVE_RSP, "res", rg, msgpack_pack_uint8(pk, 1));
	WITH_VALUE(QKDN_RESERVE_RSP, "res", 0, msgpack_pack_int32(pk, -10000));
	WITH_VALUE(QKDN_NEXT_HOP_RSP, "res", 0, msgpack_pack_int8(pk, 0));
	/* error codes: 1..10000, so codes added later still decode */
	WITH_VALUE(QKDN_ERROR, "code", rg, msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_ERROR, "code", rg, msgpack_pack_int8(pk, -1));
	WITH_VALUE(QKDN_ERROR, "code", rg, msgpack_pack_int32(pk, 10001));
	WITH_VALUE(QKDN_ERROR, "code", 0,
	           msgpack_pack_int32(pk, -QKDN_E_LAST_));
	WITH_VALUE(QKDN_ERROR, "code", 0,
	           msgpack_pack_int32(pk, -(QKDN_E_LAST_ + 1)));
	/* small enumerations */
	WITH_VALUE(QKDN_STATUS_REQ, "flags", rg, msgpack_pack_uint8(pk, 1));
	WITH_VALUE(QKDN_LINK_CTL, "act", rg, msgpack_pack_uint8(pk, 0));
	WITH_VALUE(QKDN_LINK_CTL, "act", rg, msgpack_pack_uint8(pk, 3));
	WITH_VALUE(QKDN_LINK_CTL, "act", 0,
	           msgpack_pack_uint8(pk, QKDN_LINK_PAUSE));
	WITH_VALUE(QKDN_STATUS_RSP, "links", rg, {
		msgpack_pack_array(pk, 1);
		pk_link(pk, 2);
	});
}

static void
test_utf8(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t len;
	} bad[] = {
	    {"\x80", 1},                 /* lone continuation byte */
	    {"ab\xbf", 3},               /* continuation after ASCII */
	    {"\xc3", 1},                 /* truncated 2-byte sequence */
	    {"a\xe2\x82", 3},            /* truncated 3-byte sequence */
	    {"\xf0\x9f\x98", 3},         /* truncated 4-byte sequence */
	    {"\xc3\x28", 2},             /* bad continuation */
	    {"\xc0\xaf", 2},             /* overlong '/' */
	    {"\xc1\xbf", 2},             /* overlong */
	    {"\xe0\x80\xaf", 3},         /* overlong 3-byte */
	    {"\xf0\x80\x80\xaf", 4},     /* overlong 4-byte */
	    {"\xed\xa0\x80", 3},         /* UTF-16 surrogate */
	    {"\xed\xbf\xbf", 3},         /* UTF-16 surrogate */
	    {"\xf4\x90\x80\x80", 4},     /* above U+10FFFF */
	    {"\xf5\x80\x80\x80", 4},     /* lead byte past U+10FFFF */
	    {"\xf8\x88\x80\x80\x80", 5}, /* 5-byte form */
	    {"\xfe", 1},
	    {"\xff", 1},
	    {"ab\0cd", 5}, /* embedded NUL */
	    {"\0", 1},     /* only a NUL */
	    {"abc\0", 4},  /* trailing NUL */
	};
	static const char *const good[] = {
	    "plain",
	    "\x7f",
	    "é",
	    "€uro",
	    "𝄞",
	    "東京",
	    "\xf4\x8f\xbf\xbf",
	    "\xef\xbf\xbd",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pk v, out;
		pk_init(&v);
		msgpack_pack_str_with_body(&v.pk, bad[i].s, bad[i].len);
		edit_sample(QKDN_KEY_REQ, "sae", E_SET, &v.sb, &out);
		expect_fail(out.sb.data, out.sb.size, QKDN_E_BAD_REQUEST,
		            "UTF-8");
		pk_free(&out);
		edit_sample(QKDN_ERROR, "why", E_SET, &v.sb, &out);
		expect_fail(out.sb.data, out.sb.size, QKDN_E_BAD_REQUEST,
		            "UTF-8");
		pk_free(&out);
		pk_free(&v);
		/* inside a route */
		pk_init(&v);
		msgpack_pack_array(&v.pk, 2);
		pk_str(&v.pk, "a");
		msgpack_pack_str_with_body(&v.pk, bad[i].s, bad[i].len);
		edit_sample(QKDN_KEY_RELAY, "route", E_SET, &v.sb, &out);
		expect_fail(out.sb.data, out.sb.size, QKDN_E_BAD_REQUEST,
		            "item 1 of 'route'");
		pk_free(&out);
		edit_at(QKDN_RELAY_REQ, "routes", "r", E_SET, &v.sb, &out);
		expect_fail(out.sb.data, out.sb.size, QKDN_E_BAD_REQUEST,
		            "item 1 of 'r'");
		pk_free(&out);
		pk_free(&v);
		/* the reason of a relay abort, a link state's names */
		pk_init(&v);
		msgpack_pack_str_with_body(&v.pk, bad[i].s, bad[i].len);
		edit_sample(QKDN_RELAY_ABORT, "why", E_SET, &v.sb, &out);
		expect_fail(out.sb.data, out.sb.size, QKDN_E_BAD_REQUEST,
		            "UTF-8");
		pk_free(&out);
		edit_at(QKDN_LINK_STATE, "links", "b", E_SET, &v.sb, &out);
		expect_fail(out.sb.data, out.sb.size, QKDN_E_BAD_REQUEST,
		            "'b' is not valid UTF-8");
		pk_free(&out);
		pk_free(&v);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct pk v, out;
		struct qkdn_msg d;
		pk_init(&v);
		pk_str(&v.pk, good[i]);
		edit_sample(QKDN_KEY_REQ, "sae", E_SET, &v.sb, &out);
		decode_ok(out.sb.data, out.sb.size, &d);
		assert_string_equal(d.u.key_req.sae, good[i]);
		qkdn_msg_clear(&d);
		pk_free(&out);
		pk_free(&v);
	}
}

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Declared sizes larger than the input are refused before anything is
 * allocated for them. */
static void
test_huge_declarations(void **state)
{
	(void)state;
	static const uint8_t inputs[][5] = {
	    {0xdd, 0xff, 0xff, 0xff, 0xff}, /* array32 of 2^32-1 */
	    {0xdf, 0xff, 0xff, 0xff, 0xff}, /* map32 of 2^32-1 */
	    {0xdb, 0xff, 0xff, 0xff, 0xff}, /* str32 */
	    {0xc6, 0xff, 0xff, 0xff, 0xff}, /* bin32 */
	    {0xc9, 0xff, 0xff, 0xff, 0xff}, /* ext32 */
	};
	double t0 = now();
	for (int rep = 0; rep < 200; rep++)
		for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
			expect_fail(inputs[i], 5, QKDN_E_TRUNCATED, NULL);
	assert_true(now() - t0 < 2.0);

	/* the same inside an otherwise valid envelope */
	static const uint8_t nested[] = {0x94, 0x01, 0x65, 0x00, 0xdf,
	                                 0xff, 0xff, 0xff, 0xff};
	expect_fail(nested, sizeof(nested), QKDN_E_TRUNCATED, NULL);
	static const uint8_t ids[] = {0x94, 0x01, 0x03, 0x00, 0x81, 0xa3,
	                              'i',  'd',  's',  0xdd, 0xff, 0xff,
	                              0xff, 0xff, 0xc4, 0x10};
	expect_fail(ids, sizeof(ids), QKDN_E_TRUNCATED, NULL);
	/* array16 of 65535 with 3 bytes left */
	static const uint8_t a16[] = {0xdc, 0xff, 0xff, 0x01, 0x02, 0x03};
	expect_fail(a16, sizeof(a16), QKDN_E_TRUNCATED, NULL);
}

static void
test_invalid_msgpack(void **state)
{
	(void)state;
	static const uint8_t c1[] = {0xc1};
	expect_fail(c1, 1, QKDN_E_BAD_REQUEST, NULL);
	static const uint8_t in_env[] = {0x94, 0x01, 0x65, 0xc1, 0x80};
	expect_fail(in_env, sizeof(in_env), QKDN_E_BAD_REQUEST, NULL);

	/* nesting deeper than the unpacker's stack, inside an unknown key:
	 * refused without a crash */
	struct pk p;
	pk_init(&p);
	pk_env(&p.pk, 1, QKDN_STATUS_REQ, 1);
	pk_str(&p.pk, "deep");
	for (int i = 0; i < 5000; i++)
		msgpack_pack_array(&p.pk, 1);
	msgpack_pack_nil(&p.pk);
	expect_fail(p.sb.data, p.sb.size, QKDN_E_BAD_REQUEST, NULL);
	pk_free(&p);
	/* moderate nesting is fine */
	struct qkdn_msg d;
	pk_init(&p);
	pk_env(&p.pk, 1, QKDN_STATUS_REQ, 1);
	pk_str(&p.pk, "deep");
	for (int i = 0; i < 20; i++)
		msgpack_pack_array(&p.pk, 1);
	msgpack_pack_nil(&p.pk);
	decode_ok(p.sb.data, p.sb.size, &d);
	qkdn_msg_clear(&d);
	pk_free(&p);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/* Whatever the input, decode either fails with a known code and a reason
 * and leaves nothing behind, or succeeds with a message that re-encodes
 * and decodes to the same bytes. */
static int
decode_any(const uint8_t *buf, size_t len)
{
	struct qkdn_msg m, d;
	struct qkdn_decode_error e;
	memset(&e, 0, sizeof(e));
	int rv = qkdn_msg_decode(buf, len, &m, &e);
	if (rv != 0) {
		assert_int_equal(e.code, rv);
		assert_true(rv < 0 && rv > QKDN_E_LAST_);
		assert_true(e.reason[0] != 0);
		assert_null(m.arena);
		return rv;
	}
	struct qkdn_buf b1 = {0}, b2 = {0};
	encode_ok(&m, &b1);
	decode_ok(b1.data, b1.len, &d);
	encode_ok(&d, &b2);
	assert_int_equal(b1.len, b2.len);
	assert_memory_equal(b1.data, b2.data, b1.len);
	qkdn_msg_clear(&m);
	qkdn_msg_clear(&d);
	qkdn_buf_free(&b1);
	qkdn_buf_free(&b2);
	return 0;
}

static void
test_random_bytes(void **state)
{
	(void)state;
	uint8_t buf[512];
	size_t refused = 0;
	for (int i = 0; i < 4000; i++) {
		size_t len = rng() % sizeof(buf);
		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)rng();
		/* half of them start like an envelope to get further in */
		if (i % 2 == 1 && len >= 4) {
			buf[0] = 0x94;
			buf[1] = 0x01;
			buf[2] = (uint8_t)(rng() % 2 ? 1 + rng() % 24
			                             : 100 + rng() % 7);
		}
		uint8_t *cut = malloc(len ? len : 1);
		assert_non_null(cut);
		memcpy(cut, buf, len);
		refused += decode_any(cut, len) != 0;
		free(cut);
	}
	assert_true(refused > 3900);
}

/* Valid messages with a few bytes changed. */
static void
test_mutated_messages(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_SAMPLES; i++) {
		struct qkdn_buf b = {0};
		encode_sample(samples[i].type, &b);
		uint8_t *mut = malloc(b.len);
		assert_non_null(mut);
		for (int r = 0; r < 300; r++) {
			memcpy(mut, b.data, b.len);
			int flips = 1 + (int)(rng() % 4);
			for (int f = 0; f < flips; f++) {
				size_t at = rng() % b.len;
				switch (rng() % 3) {
				case 0:
					mut[at] ^= (uint8_t)(1u << (rng() % 8));
					break;
				case 1:
					mut[at] = (uint8_t)rng();
					break;
				default:
					mut[at] = (uint8_t[]){0x00, 0x7f, 0x80,
					                      0xc0, 0xc1, 0xdd,
					                      0xff}[rng() % 7];
					break;
				}
			}
			(void)decode_any(mut, b.len);
		}
		free(mut);
		qkdn_buf_free(&b);
	}
}

/* ---- encoder validation ---- */

static int
encode_code(const struct qkdn_msg *m)
{
	struct qkdn_buf b = {0};
	int rv = qkdn_msg_encode(m, qkdn_buf_write, &b);
	qkdn_buf_free(&b);
	return rv;
}

static int
failing_writer(void *ctx, const char *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	return -1;
}

static void
test_encoder_validation(void **state)
{
	(void)state;
	struct qkdn_msg m;

	build_sample(QKDN_KEY_REQ, &m);
	assert_int_equal(encode_code(&m), 0);
	m.u.key_req.sae[0] = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	set_name(m.u.key_req.sae, "a");
	m.u.key_req.count = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.key_req.count = QKDN_KEYS_MAX + 1;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.key_req.count = 1;
	m.u.key_req.bits = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.key_req.bits = 9000;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.key_req.bits = 12;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.key_req.bits = 8;
	memset(m.u.key_req.dst_sae, 'x', QKDN_NAME_MAX); /* no terminator */
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	set_name(m.u.key_req.dst_sae, "bad\xc3");
	assert_int_equal(encode_code(&m), QKDN_E_BAD_REQUEST);
	set_name(m.u.key_req.dst_sae, "b");
	assert_int_equal(encode_code(&m), 0);
	qkdn_msg_clear(&m);

	build_sample(QKDN_KEY_REQ_ID, &m);
	m.u.key_req_id.ids.n = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.key_req_id.ids.n = QKDN_KEYS_MAX + 1;
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_KEY_RSP, &m);
	m.u.key_rsp.keys.v[1].len = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.key_rsp.keys.v[1].len = QKDN_KEY_BYTES_MAX + 1;
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_KEY_RELAY, &m);
	m.u.key_relay.hop = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.key_relay.hop = 1;
	m.u.key_relay.route.n = 1;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_ERROR, &m);
	m.u.error.code = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.error.code = QKDN_E_TIMEOUT; /* negative: wire codes are positive */
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.error.code = 1;
	memset(m.u.error.reason, 'r', QKDN_REASON_MAX);
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_ACK, &m);
	m.u.ack.result = 1;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_LINK_CTL, &m);
	m.u.link_ctl.action = 3;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_STATUS_REQ, &m);
	m.u.status_req.flags = 1;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_STATUS_RSP, &m);
	m.u.status_rsp.links[2].up = 2;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.status_rsp.links[2].up = 1;
	m.u.status_rsp.n_links = QKDN_LINKS_MAX + 1;
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	qkdn_msg_clear(&m);

	/* an optional name may be absent but, when present, must be valid */
	build_sample(QKDN_SESSION_CREATE_REQ, &m);
	memset(m.u.session_create_req.dst_node, 'x', QKDN_NAME_MAX);
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	qkdn_msg_clear(&m);

	/* the relay and controller messages */
	build_sample(QKDN_KEY_RELAY, &m);
	m.u.key_relay.ttl_ms = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.key_relay.ttl_ms = 3600001;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.key_relay.ttl_ms = 1;
	m.u.key_relay.bits = 12;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.key_relay.bits = 8;
	m.u.key_relay.ids.n = 0; /* required: at least one key */
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.key_relay.ids.n = 1;
	m.u.key_relay.segs.n = QKDN_SEGS_MAX + 1;
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	m.u.key_relay.segs.n = 1;
	m.u.key_relay.segs.v[0].len = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.key_relay.segs.v[0].len = 1;
	m.u.key_relay.ciphertext.len = QKDN_BYTES_MAX + 1;
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	m.u.key_relay.ciphertext.len = 0; /* absent: fine */
	m.u.key_relay.link[0] = 0;        /* required: not fine */
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	set_name(m.u.key_relay.link, "l");
	assert_int_equal(encode_code(&m), 0);
	qkdn_msg_clear(&m);

	build_sample(QKDN_KEY_RELAY_AUTH, &m);
	m.u.key_relay_auth.tag.len = 17;
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	m.u.key_relay_auth.tag.len = 0; /* required */
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_RELAY_DONE_NOTIF, &m);
	m.u.relay_done_notif.tag.len = 17;
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	m.u.relay_done_notif.tag.len = 16;
	m.u.relay_done_notif.result = 1;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_RELAY_REQ, &m);
	m.u.relay_req.routes.n = QKDN_ROUTES_MAX + 1;
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	m.u.relay_req.routes.n = 3;
	m.u.relay_req.routes.v[0].nodes.n = 1;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.relay_req.routes.v[0].nodes.n = 2;
	m.u.relay_req.bits = 8193;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.relay_req.bits = 0;
	m.u.relay_req.ids.n = QKDN_KEYS_MAX + 1;
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	m.u.relay_req.ids.n = 0;
	memset(m.u.relay_req.link, 'x', QKDN_NAME_MAX);
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_RELAY_REQ_NOTIF, &m);
	m.u.relay_req_notif.reserve = 2;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_RESERVE_REQ, &m);
	m.u.reserve_req.ttl_ms = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.reserve_req.ttl_ms = 1;
	m.u.reserve_req.next_hop[0] = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_RESERVE_RSP, &m);
	m.u.reserve_rsp.segs.v[1].offset = QKDN_BLOCK_BYTES_MAX;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_ALLOC_REQ, &m);
	m.u.alloc_req.src_sae[0] = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_RELAY_ABORT, &m);
	memset(m.u.relay_abort.reason, 'r', QKDN_REASON_MAX);
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_LINK_STATE, &m);
	m.u.link_state.max_age_ms = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.link_state.max_age_ms = 1;
	m.u.link_state.links.v[1].up = 2;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.link_state.links.v[1].up = 1;
	m.u.link_state.links.v[2].b[0] = 0;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	m.u.link_state.links.v[2].b[0] = 'b';
	m.u.link_state.links.n = QKDN_LINK_STATES_MAX + 1;
	assert_int_equal(encode_code(&m), QKDN_E_TOO_LARGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_CTL_STATUS, &m);
	m.u.ctl_status.centralized = 2;
	assert_int_equal(encode_code(&m), QKDN_E_RANGE);
	qkdn_msg_clear(&m);

	build_sample(QKDN_ROUTE_QUERY, &m);
	set_name(m.u.route_query.dst_node, "bad\xe2\x82");
	assert_int_equal(encode_code(&m), QKDN_E_BAD_REQUEST);
	qkdn_msg_clear(&m);

	/* unknown types */
	memset(&m, 0, sizeof(m));
	uint32_t types[] = {0, 25, 99, QKDN_KME_KEYS_AUTH + 1, UINT32_MAX};
	for (size_t i = 0; i < 5; i++) {
		m.type = types[i];
		assert_int_equal(encode_code(&m), QKDN_E_UNKNOWN_TYPE);
	}

	/* a writer that fails */
	build_sample(QKDN_KEY_RELAY, &m);
	assert_int_equal(qkdn_msg_encode(&m, failing_writer, NULL),
	                 QKDN_E_NOMEM);
	qkdn_msg_clear(&m);
}

static void
test_buf(void **state)
{
	(void)state;
	struct qkdn_buf b = {0};
	char chunk[1000];
	memset(chunk, 'c', sizeof(chunk));
	for (int i = 0; i < 100; i++)
		assert_int_equal(qkdn_buf_write(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(b.len, 100000);
	assert_true(b.cap >= b.len);
	assert_int_equal(b.data[99999], 'c');
	qkdn_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	qkdn_buf_free(&b); /* twice is fine */

	/* no more than one message's worth */
	char *big = calloc(1, QKDN_MSG_BYTES_MAX + 1);
	assert_non_null(big);
	assert_int_not_equal(qkdn_buf_write(&b, big, QKDN_MSG_BYTES_MAX + 1),
	                     0);
	assert_int_equal(qkdn_buf_write(&b, big, QKDN_MSG_BYTES_MAX), 0);
	assert_int_not_equal(qkdn_buf_write(&b, big, 1), 0);
	qkdn_buf_free(&b);
	free(big);

	/* reserved room: what was written stays, later writes need no
	 * regrowth, and never past one message */
	assert_int_equal(qkdn_buf_write(&b, "ab", 2), 0);
	assert_int_equal(qkdn_buf_reserve(&b, 5000), 0);
	assert_int_equal(b.cap, 5000);
	uint8_t *room = b.data;
	for (int i = 0; i < 4; i++)
		assert_int_equal(qkdn_buf_write(&b, chunk, sizeof(chunk)), 0);
	assert_ptr_equal(b.data, room);
	assert_memory_equal(b.data, "abccc", 5);
	assert_int_equal(qkdn_buf_reserve(&b, 100), 0); /* never shrinks */
	assert_int_equal(b.cap, 5000);
	assert_int_not_equal(qkdn_buf_reserve(&b, QKDN_MSG_BYTES_MAX + 1), 0);
	assert_int_equal(b.len, 4002);
	qkdn_buf_free(&b);

	/* clear and alloc */
	struct qkdn_msg m;
	memset(&m, 0, sizeof(m));
	qkdn_msg_clear(&m);
	uint8_t *p = qkdn_msg_alloc(&m, 100);
	assert_non_null(p);
	for (int i = 0; i < 100; i++)
		assert_int_equal(p[i], 0);
	assert_non_null(qkdn_msg_alloc(&m, 0));
	assert_null(qkdn_msg_alloc(&m, SIZE_MAX));
	qkdn_msg_clear(&m);
	assert_null(m.arena);
}

/* ---- UUIDs, names, error texts ---- */

static void
test_uuid(void **state)
{
	(void)state;
	char text[37];
	qkdn_uuid a, b;

	for (int i = 0; i < 100; i++) {
		qkdn_uuid_random(&a);
		assert_int_equal(a.b[6] >> 4, 4);      /* version 4 */
		assert_int_equal(a.b[8] & 0xc0, 0x80); /* RFC 4122 variant */
		qkdn_uuid_format(&a, text);
		assert_int_equal(strlen(text), 36);
		assert_int_equal(text[8], '-');
		assert_int_equal(text[13], '-');
		assert_int_equal(text[14], '4');
		assert_int_equal(text[18], '-');
		assert_int_equal(text[23], '-');
		memset(&b, 0, sizeof(b));
		assert_int_equal(qkdn_uuid_parse(text, &b), 0);
		assert_memory_equal(a.b, b.b, 16);
	}
	qkdn_uuid_random(&b);
	assert_memory_not_equal(a.b, b.b, 16);

	for (int i = 0; i < 16; i++)
		a.b[i] = (uint8_t)(i * 0x11);
	qkdn_uuid_format(&a, text);
	assert_string_equal(text, "00112233-4455-6677-8899-aabbccddeeff");
	assert_int_equal(
	    qkdn_uuid_parse("00112233-4455-6677-8899-AABBCCDDEEFF", &b), 0);
	assert_memory_equal(a.b, b.b, 16);

	static const char *const bad[] = {
	    "",
	    "00112233-4455-6677-8899-aabbccddeef",   /* 35 */
	    "00112233-4455-6677-8899-aabbccddeeff0", /* 37 */
	    "00112233445566778899aabbccddeeff",      /* no dashes */
	    "00112233-4455-6677-8899-aabbccddeefg",  /* not hex */
	    "0011223-34455-6677-8899-aabbccddeeff",  /* dash misplaced */
	    "00112233_4455_6677_8899_aabbccddeeff",  /* wrong separator */
	    "00112233-4455-6677-8899-aabbccddee f",  /* space */
	    " 0112233-4455-6677-8899-aabbccddeeff",
	    "00112233-4455-6677-8899-aabbccddeeff\n",
	    "{0112233-4455-6677-8899-aabbccddeef}",
	    "00112233-4455-6677-8899+aabbccddeeff",
	    "0x112233-4455-6677-8899-aabbccddeeff",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (qkdn_uuid_parse(bad[i], &b) != QKDN_E_BAD_REQUEST)
			fail_msg("uuid '%s' was accepted", bad[i]);
}

static void
test_name_set(void **state)
{
	(void)state;
	qkdn_name n;
	char s[QKDN_NAME_MAX + 1];
	assert_int_equal(qkdn_name_set(n, ""), QKDN_E_BAD_REQUEST);
	memset(s, 'a', QKDN_NAME_MAX - 1);
	s[QKDN_NAME_MAX - 1] = 0;
	assert_int_equal(qkdn_name_set(n, s), 0);
	assert_string_equal(n, s);
	s[QKDN_NAME_MAX - 1] = 'a';
	s[QKDN_NAME_MAX] = 0;
	assert_int_equal(qkdn_name_set(n, s), QKDN_E_TOO_LARGE);
	assert_int_equal(qkdn_name_set(n, "sae-1"), 0);
	assert_string_equal(n, "sae-1");
}

static void
test_strerror(void **state)
{
	(void)state;
	for (int c = 0; c >= QKDN_E_LAST_ + 1; c--) {
		const char *t = qkdn_strerror(c);
		assert_non_null(t);
		assert_true(t[0] != 0);
		assert_string_not_equal(t, "unknown error");
		for (int d = 0; d > c; d--)
			assert_string_not_equal(t, qkdn_strerror(d));
	}
	int outside[] = {QKDN_E_LAST_, QKDN_E_LAST_ - 1, 1,        2, 100,
	                 -1000,        INT32_MIN,        INT32_MAX};
	for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++)
		assert_string_equal(qkdn_strerror(outside[i]), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_type_covered),
	    cmocka_unit_test(test_catalogue_names),
	    cmocka_unit_test(test_round_trip_every_type),
	    cmocka_unit_test(test_round_trip_limits),
	    cmocka_unit_test(test_optional_fields),
	    cmocka_unit_test(test_absent_on_wire),
	    cmocka_unit_test(test_samples_complete),
	    cmocka_unit_test(test_round_trip_min),
	    cmocka_unit_test(test_unknown_keys_ignored),
	    cmocka_unit_test(test_key_order_free),
	    cmocka_unit_test(test_empty_and_truncated),
	    cmocka_unit_test(test_trailing_bytes),
	    cmocka_unit_test(test_bad_envelope),
	    cmocka_unit_test(test_every_field_checked),
	    cmocka_unit_test(test_nested_fields_checked),
	    cmocka_unit_test(test_every_string_field),
	    cmocka_unit_test(test_wrong_field_types),
	    cmocka_unit_test(test_nested_missing),
	    cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_out_of_range),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_huge_declarations),
	    cmocka_unit_test(test_invalid_msgpack),
	    cmocka_unit_test(test_random_bytes),
	    cmocka_unit_test(test_mutated_messages),
	    cmocka_unit_test(test_encoder_validation),
	    cmocka_unit_test(test_buf),
	    cmocka_unit_test(test_uuid),
	    cmocka_unit_test(test_name_set),
	    cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
