/* Key relay (Q.4160 I.3-I.5b; relay-spec.md "KM side").
 *
 * A hop u -> v over link L takes 64 + count*bits/8 bytes of u's out
 * direction of L's pool: a 32-byte one-time MAC key, a 32-byte ack key,
 * then the pad. On the first hop of a relay started here (a key request,
 * or KM1's reservation) the keys ARE the pad bits (u and v hold them
 * already) and no ciphertext travels; later hops send keys XOR pad. The
 * KEY_RELAY_AUTH tag is Poly1305 over the encoded KEY_RELAY under the MAC
 * key; the receiver reads the bits as for a KEY_SYNC (the in-mark refuses
 * replays), verifies the tag before anything is consumed, and answers,
 * once the rest of the relay completed, with RELAY_DONE_NOTIF tagged
 * km_sync_ack_tag(request tag) under the ack key. Each hop checks the
 * completion of the next under its own ack key before it answers.
 *
 * Threads: the Ak key request and the Kx handlers (connection threads) check
 * and decide; a hop's round trip runs on the outgoing link's Kx sender
 * thread (kx_send.c), which answers the request held meanwhile (Ak key
 * request, or the previous hop's KEY_RELAY_AUTH, or the controller's 18 /
 * 21). One control thread of this module does what may wait on the
 * controller or on a peer for a source relay: route lookups, 20
 * RELAY_REQ_RSP, 109 RELAY_ABORT. Key material lives in locked (secbuf.h)
 * memory and is wiped once sent or stored. */
#ifndef KM_RELAY_H
#define KM_RELAY_H

#include "km.h"

struct qkdn_server_req;

/* One hop of a relay, as the thread holding its link carries it. */
struct km_hop {
	struct km_hop *next; /* the link's queue (KM lock) */
	qkdn_uuid relay_id;
	uint32_t route_n;
	qkdn_name route[QKDN_ROUTE_MAX];
	uint32_t hop; /* index in route of the receiving node */
	qkdn_name src_sae, dst_sae;
	uint32_t bits, count;
	qkdn_uuid *ids;       /* count IDs */
	uint8_t *keys;        /* count * bits/8 bytes, km_secbuf_get */
	bool keys_from_pad;   /* first hop: the pad becomes the keys */
	uint32_t hold_ttl_ms; /* nonzero: the KEY_RELAY's ttl_ms (I.4b hold) */
	uint64_t deadline_ms; /* qkdn_now_ms: the whole relay's */
	int retries;
	/* set by the thread carrying the hop */
	bool may_have_left; /* the next KM may hold the keys now */
	uint32_t nsegs;
	struct qkdn_segment *segs; /* where the hop's bits lay (malloc) */
	void (*done)(struct km_hop *h, int rv, const char *why);
};

int km_relay_start(struct km *km) __attribute__((warn_unused_result));
/* Stop the control thread (fails what it holds); before the links stop. */
void km_relay_stop(struct km *km);
/* Free what is left; after the links and servers stopped. */
void km_relay_free(struct km *km);
/* Housekeeping: wipe reservations past their ttl. */
void km_relay_tick(struct km *km);

/* The Ak key request of w for an SAE at dst_node, which has no direct link
 * to this node: relayed, and answered later (or at once on an error). */
void km_relay_keyreq(struct km *km, struct qkdn_server_req *w,
                     const struct qkdn_key_req *kr, int dst_node);

/* Kx handlers. */
void km_relay_handle_auth(struct qkdn_server_req *w, struct qkdn_msg *req);
void km_relay_handle_abort(struct qkdn_server_req *w, struct qkdn_msg *req);
void km_relay_handle_reserve(struct qkdn_server_req *w, struct qkdn_msg *req);
void km_relay_handle_relay_req(struct qkdn_server_req *w, struct qkdn_msg *req);
void km_relay_handle_alloc(struct qkdn_server_req *w, struct qkdn_msg *req);
void km_relay_handle_release(struct qkdn_server_req *w, struct qkdn_msg *req);

/* The counters for STATUS_RSP. */
void km_relay_stats(struct km *km, struct qkdn_relay_stats *out);

#endif
