/* qkdn wire messages: one C struct per message of ITU-T Q.4160's catalogue
 * plus the operational messages a running network needs, and their
 * MessagePack codec.
 *
 * Wire form: a MessagePack array [version, type, request id, body], where the
 * body is a map with short string keys. Unknown keys are ignored; missing,
 * mistyped, oversized or out-of-range fields are refused with a code and a
 * reason. docs/protocol.md is the reference for every field and limit. */
#ifndef QKDN_MSG_H
#define QKDN_MSG_H

#include <stddef.h>
#include <stdint.h>

#define QKDN_PROTO_VERSION   1
#define QKDN_NAME_MAX        64   /* SAE, node, link IDs: 1..63 UTF-8 bytes */
#define QKDN_REASON_MAX      256  /* error reasons: up to 255 bytes */
#define QKDN_KEY_BYTES_MAX   1024 /* one key: up to 8192 bits */
#define QKDN_KEYS_MAX        4096 /* keys or key IDs in one message */
#define QKDN_ROUTE_MAX       32   /* nodes in one relay route */
#define QKDN_ROUTES_MAX      8    /* routes in one key relay request */
#define QKDN_LINK_STATES_MAX 4096 /* links in one update or status */
#define QKDN_LINKS_MAX       64   /* links in one status reply */
#define QKDN_SEGS_MAX        1024 /* block segments in one message */
#define QKDN_BLOCK_BYTES_MAX (1u << 20)  /* one link key block */
#define QKDN_BYTES_MAX       (4u << 20)  /* any other byte string */
#define QKDN_MSG_BYTES_MAX   (16u << 20) /* one encoded message */

typedef struct {
	uint8_t b[16];
} qkdn_uuid;

typedef char qkdn_name[QKDN_NAME_MAX];

/* Byte strings and arrays of a decoded message live in its arena and are
 * wiped when the message is cleared. */
struct qkdn_bytes {
	uint32_t len;
	uint8_t *ptr;
};

struct qkdn_key {
	qkdn_uuid id;
	uint32_t len; /* bytes */
	uint8_t *bytes;
};

struct qkdn_keys {
	uint32_t n;
	struct qkdn_key *v;
};

struct qkdn_ids {
	uint32_t n;
	qkdn_uuid *v;
};

struct qkdn_route {
	uint32_t n;
	qkdn_name *v;
};

enum qkdn_msg_type {
	/* Q.4160 catalogue */
	QKDN_KEY_REQ = 1,
	QKDN_KEY_RSP = 2,
	QKDN_KEY_REQ_ID = 3,
	QKDN_SESSION_CREATE_REQ = 4,
	QKDN_SESSION_CREATE_NOTIF = 5,
	QKDN_SESSION_NOTIF_RSP = 6,
	QKDN_SESSION_CREATE_RSP = 7,
	QKDN_KEY_REQ_SESSION = 8,
	QKDN_KEY_SUPPLY_NOTIF = 9,
	QKDN_PROACTIVE_SUPPLY = 10,
	QKDN_PROACTIVE_SUPPLY_RSP = 11,
	QKDN_KEY_SUPPLY_NOTIF_RSP = 12,
	QKDN_KEY_REQ_SESSION_RSP = 13,
	QKDN_NEXT_HOP_REQ = 14,
	QKDN_NEXT_HOP_RSP = 15,
	QKDN_RELAY_DONE_NOTIF = 16,
	QKDN_RELAY_REQ_NOTIF = 17,
	QKDN_RELAY_REQ = 18,
	QKDN_KEY_RELAY = 19,
	QKDN_RELAY_REQ_RSP = 20,
	QKDN_RESERVE_REQ = 21,
	QKDN_RESERVE_RSP = 22,
	QKDN_ALLOC_REQ = 23,
	QKDN_ALLOC_RSP = 24,
	/* operational */
	QKDN_ERROR = 100,
	QKDN_STATUS_REQ = 101,
	QKDN_STATUS_RSP = 102,
	QKDN_LINK_BLOCK = 103,
	QKDN_KEY_SYNC = 104,
	QKDN_ACK = 105,
	QKDN_LINK_CTL = 106,
	QKDN_KEY_SYNC_AUTH = 107,
	QKDN_KEY_RELAY_AUTH = 108,
	QKDN_RELAY_ABORT = 109,
	QKDN_RESERVE_RELEASE = 110,
	QKDN_LINK_STATE = 111,
	QKDN_ROUTE_QUERY = 112,
	QKDN_CTL_STATUS = 113,
	QKDN_KME_KEYS = 114,
	QKDN_KME_KEYS_AUTH = 115,
};

/* 1 key request: an application asks its KM for keys shared with dst_sae. */
struct qkdn_key_req {
	qkdn_name sae;     /* requesting (source) SAE */
	qkdn_name dst_sae; /* destination SAE */
	uint32_t bits;     /* size of each key, multiple of 8, 8..8192 */
	uint32_t count;    /* number of keys, 1..QKDN_KEYS_MAX */
};

/* 2 response to key request: key IDs and keys (source and destination). */
struct qkdn_key_rsp {
	struct qkdn_keys keys;
};

/* 3 key request with ID: the destination application fetches by ID. */
struct qkdn_key_req_id {
	qkdn_name sae; /* requesting (destination) SAE */
	struct qkdn_ids ids;
	/* optional: the SAE that must have requested the keys (ETSI 014's
	 * master_SAE_ID); "" asks no such check */
	qkdn_name src_sae;
};

/* 4 session creation request (app -> KM, KM -> controller). */
struct qkdn_session_create_req {
	qkdn_name sae;
	qkdn_name dst_sae;
	qkdn_name src_node; /* filled by the KM for the controller */
	qkdn_name dst_node;
	uint32_t bits;
};

/* 5 session creation notification (controller -> KM -> app). */
struct qkdn_session_create_notif {
	qkdn_uuid session_id;
	qkdn_name src_sae;
	qkdn_name dst_sae;
	qkdn_name src_node;
	uint32_t bits;
};

/* 6 response to session creation notification (app -> KM -> controller). */
struct qkdn_session_notif_rsp {
	qkdn_uuid session_id;
	int32_t result; /* 0 accepted, else a qkdn error code */
};

/* 7 response to session creation request (controller -> KM -> app). */
struct qkdn_session_create_rsp {
	qkdn_uuid session_id;
	int32_t result;
};

/* 8 key request with session ID (source app -> source KM). */
struct qkdn_key_req_session {
	qkdn_uuid session_id;
	qkdn_name sae;
	uint32_t count;
};

/* 9 key supply notification (source KM -> destination KM). */
struct qkdn_key_supply_notif {
	qkdn_uuid session_id;
	uint32_t count;
	uint32_t bits;
	struct qkdn_ids ids;
};

/* 10 proactive key supply (destination KM -> destination app). */
struct qkdn_proactive_supply {
	qkdn_uuid session_id;
	struct qkdn_keys keys;
};

/* 11 response to proactive key supply (app -> KM): IDs received. */
struct qkdn_proactive_supply_rsp {
	qkdn_uuid session_id;
	struct qkdn_ids ids;
};

/* 12 response to key supply notification (destination KM -> source KM). */
struct qkdn_key_supply_notif_rsp {
	qkdn_uuid session_id;
	int32_t result;
	struct qkdn_ids ids;
};

/* 13 response to key request with session ID (source KM -> source app). */
struct qkdn_key_req_session_rsp {
	qkdn_uuid session_id;
	struct qkdn_keys keys;
};

/* 14 key relay next hop request (KM -> the controller of its node, on Ck;
 * distributed mode, I.3 / I.5a). */
struct qkdn_next_hop_req {
	qkdn_uuid relay_id;
	qkdn_name here; /* node asking */
	qkdn_name dst_node;
	uint64_t bytes; /* key the relay takes on each hop (the demand) */
	/* the relay's route so far, source first (optional): the answer
	 * avoids these nodes, so hop-by-hop choices never loop */
	struct qkdn_route route;
};

/* 15 response to key relay next hop request (controller -> KM). */
struct qkdn_next_hop_rsp {
	qkdn_uuid relay_id;
	int32_t result;     /* 0, or -QKDN_E_NO_ROUTE */
	qkdn_name next_hop; /* absent unless result is 0 */
	qkdn_name link;     /* the link from here to next_hop */
	uint64_t version;   /* topology version the answer was computed on */
};

/* 16 key relay completion notification: the destination KM's reply to the
 * key relay it received, carried back hop by hop to the source KM as each
 * hop's reply. Each copy is authenticated for its hop: tag is the one-time
 * MAC, under the hop's ack key (bits 32..63 of its pad), of the hop's
 * key relay tag. */
struct qkdn_relay_done_notif {
	qkdn_uuid relay_id;
	int32_t result;
	struct qkdn_ids ids;
	struct qkdn_bytes tag; /* 16 bytes */
};

/* 17 key relay request notification (KM -> central controller, on Ck;
 * I.4a / I.5b). */
struct qkdn_relay_req_notif {
	qkdn_uuid relay_id;
	qkdn_name src_node;
	qkdn_name dst_node;
	uint32_t count;
	uint32_t bits;
	qkdn_name src_sae; /* optional, except with reserve */
	qkdn_name dst_sae;
	/* 1: an operator's order for the reservation scheme (I.4b): the
	 * controller reserves at src_node, relays from the next node and
	 * allocates to src_sae / dst_sae; its reply is then an ALLOC_RSP */
	uint32_t reserve;
};

/* One route: node IDs from the source to the destination. */
struct qkdn_route_entry {
	struct qkdn_route nodes;
};

struct qkdn_routes {
	uint32_t n;
	struct qkdn_route_entry *v;
};

/* A run of bytes of one link key block, in the sender's direction of the
 * link pool: how KM to KM messages name the exact bits they consume. */
struct qkdn_segment {
	uint64_t block_id;
	uint32_t offset; /* within the sender's half of the block */
	uint32_t len;
};

struct qkdn_segments {
	uint32_t n;
	struct qkdn_segment *v;
};

/* 18 key relay request (central controller -> KM, and the reply to 17 and
 * to a route query): every usable route to the destination node, best
 * first (I.4a). With a reservation (I.4b, sent to KM2 = routes[0][1]) it
 * also says what to relay: the reserved keys, whose bits are the link
 * key of routes[0][0] -> routes[0][1] at segs (in KM1's direction). */
struct qkdn_relay_req {
	qkdn_uuid relay_id;
	struct qkdn_routes routes; /* 0..8 routes (0: no route) */
	uint64_t version;          /* topology version */
	/* I.4b only (reservation_id all zero: none) */
	qkdn_uuid reservation_id;
	qkdn_name src_sae;
	qkdn_name dst_sae;
	uint32_t bits;
	struct qkdn_ids ids;
	qkdn_name link;
	struct qkdn_segments segs;
};

/* 19 key relay (KM -> next KM on the route, over Kx, always inside a
 * KEY_RELAY_AUTH). The segments name this hop's bits in the sender's
 * direction of link: the 32-byte MAC key, the 32-byte ack key, then the
 * pad: ciphertext is the keys XOR the pad. On the first hop of a relay
 * started by a key request the keys are the pad bits themselves (the link
 * key already shared by the two ends) and ciphertext is absent. */
struct qkdn_key_relay {
	qkdn_uuid relay_id;
	struct qkdn_route route; /* the whole route, source first */
	uint32_t hop;            /* index in route of the receiving node */
	qkdn_name src_sae;
	qkdn_name dst_sae;
	uint32_t bits;   /* size of each key */
	uint32_t ttl_ms; /* time left for the rest of the relay */
	qkdn_name link;  /* link whose pool gives pad and MAC keys */
	struct qkdn_segments segs;
	struct qkdn_ids ids;
	struct qkdn_bytes ciphertext; /* absent: the keys are the pad bits */
};

/* 20 response to key relay request (KM -> controller, on Ck: the outcome
 * of a relay the controller routed, I.4a step 4 / I.4b step 3). */
struct qkdn_relay_req_rsp {
	qkdn_uuid relay_id;
	int32_t result;
	qkdn_uuid reservation_id; /* I.4b */
};

/* 21 key reservation request (controller -> KM1, on KM1's Kx address):
 * take count keys of bits from the link to next_hop and hold them for
 * ttl_ms unallocated (then released). */
struct qkdn_reserve_req {
	qkdn_uuid reservation_id;
	qkdn_name dst_node;
	qkdn_name next_hop;
	uint32_t count;
	uint32_t bits;
	uint32_t ttl_ms;
};

/* 22 response to key reservation request: the reserved keys' IDs and
 * where their bits lie (KM2 reads them from its end of the link). */
struct qkdn_reserve_rsp {
	qkdn_uuid reservation_id;
	int32_t result;
	struct qkdn_ids ids;
	qkdn_name link;
	struct qkdn_segments segs;
};

/* 23 key allocation request (controller -> KM1): give the reserved keys,
 * now shared with dst_node's KM, to src_sae for dst_sae. */
struct qkdn_alloc_req {
	qkdn_uuid reservation_id;
	qkdn_name dst_node;
	qkdn_name src_sae;
	qkdn_name dst_sae;
};

/* 24 response to key allocation request. */
struct qkdn_alloc_rsp {
	qkdn_uuid reservation_id;
	int32_t result;
	struct qkdn_ids ids;
};

/* 108 a key relay with its one-time MAC: relay is the encoded KEY_RELAY,
 * tag the Poly1305 tag over exactly those bytes under the hop's MAC key. */
struct qkdn_key_relay_auth {
	struct qkdn_bytes relay;
	struct qkdn_bytes tag; /* 16 bytes */
};

/* 109 relay abort (a KM -> the next KMs of a failed relay, best effort):
 * forget every key of the relay not yet fetched. */
struct qkdn_relay_abort {
	qkdn_uuid relay_id;
	struct qkdn_ids ids;
	char reason[QKDN_REASON_MAX];
};

/* 110 reservation release (controller -> KM1): the reserved keys will not
 * be allocated; forget them. */
struct qkdn_reserve_release {
	qkdn_uuid reservation_id;
};

/* One link as a node sees it (LINK_STATE, controller status). */
struct qkdn_link_state {
	qkdn_name link;
	qkdn_name a;       /* the reporting node (LINK_STATE) or one end */
	qkdn_name b;       /* the other end */
	uint32_t up;       /* 1: the KMs reach each other */
	uint64_t a_out;    /* key a can send on it, bytes */
	uint64_t b_out;    /* key b can send on it (status only) */
	uint64_t rate_bps; /* secret key rate */
	uint32_t age_ms;   /* status only: since the last report */
};

struct qkdn_link_states {
	uint32_t n;
	struct qkdn_link_state *v;
};

/* 111 link-state update: a KM reports its links to its controller (Ck),
 * and controllers flood the reports of their nodes to each other (Cx).
 * seq grows with each report of one origin; a report is dropped when
 * older than what is held, and forgotten after max_age_ms. The reply is
 * an ACK whose value is the receiver's topology version. */
struct qkdn_link_state_update {
	qkdn_name origin;
	uint64_t seq;
	uint32_t max_age_ms;
	struct qkdn_link_states links;
};

/* 112 route query (CLI -> a controller): the routes it would use now from
 * src_node to dst_node for bytes of key per hop; the reply is a
 * KEY_RELAY_REQ (relay_id zero). */
struct qkdn_route_query {
	qkdn_name src_node;
	qkdn_name dst_node;
	uint64_t bytes;
};

/* 113 controller status (reply to a STATUS_REQ sent to a controller). */
struct qkdn_ctl_status {
	qkdn_name node; /* its node, or "central" */
	uint32_t centralized;
	uint64_t version;
	uint64_t next_hop_reqs;    /* 14 answered */
	uint64_t relay_req_notifs; /* 17 answered */
	uint64_t relay_req_rsps;   /* 20 received */
	uint64_t reservations;     /* 21 sent */
	uint64_t allocations;      /* 23 sent */
	uint64_t updates;          /* 111 received */
	struct qkdn_link_states links;
};

/* Error reply: a stable qkdn error code (positive on the wire) and why. */
struct qkdn_error {
	int32_t code;
	char reason[QKDN_REASON_MAX];
};

struct qkdn_status_req {
	uint32_t flags; /* reserved, 0 */
};

struct qkdn_link_status {
	qkdn_name link;
	qkdn_name peer;
	uint64_t out_bytes;   /* key material left for keys this node starts */
	uint64_t in_bytes;    /* key material left for the peer's keys */
	uint64_t blocks;      /* link key blocks held */
	uint32_t up;          /* 1 if the peer KM answered lately */
	uint32_t out_of_sync; /* 1 if the last key sync failed its MAC */
	uint64_t sync_failures; /* key syncs on this link that failed it */
	uint64_t out_max;       /* cap on out_bytes (0: not reported) */
	/* why a link fed by ETSI 014 KMEs is down at this end ("" if not:
	 * docs/etsi014.md, southbound) */
	char down[QKDN_REASON_MAX];
};

/* Relays as one KM saw them, and the procedure messages it sent. */
struct qkdn_relay_stats {
	uint64_t started;   /* relays this KM began (source, or KM2 in I.4b) */
	uint64_t completed; /* of those, completion notifications received */
	uint64_t failed;    /* of those, failed or timed out */
	uint64_t in_flight; /* of those, still waiting */
	uint64_t forwarded; /* key relays passed on (intermediate node) */
	uint64_t delivered; /* key relays ending here (destination node) */
	uint64_t rejected;  /* key relays refused (MAC, replay, order) */
	uint64_t next_hop_reqs;    /* 14 sent */
	uint64_t relay_req_notifs; /* 17 sent */
	uint64_t relay_req_rsps;   /* 20 sent */
	uint64_t done_notifs;      /* 16 sent (as destination) */
	uint64_t reservations;     /* 21 served */
	uint64_t allocations;      /* 23 served */
	uint64_t keys_relayed;     /* keys delivered by completed relays */
};

struct qkdn_status_rsp {
	qkdn_name node;
	uint64_t keys_supplied; /* key ends handed to applications */
	uint64_t keys_pending;  /* keys waiting for their destination */
	uint64_t errors;        /* error replies sent (Ak and Kx) */
	uint64_t ak_errors;     /* error replies to applications */
	uint64_t kx_errors;     /* error replies to peer KMs */
	uint32_t n_links;
	struct qkdn_link_status *links;
	struct qkdn_relay_stats relay;
	/* the limits this KM enforces on key requests (0: not reported) */
	uint32_t keys_max; /* keys or key IDs in one request */
	uint32_t bits_min; /* size of one key */
	uint32_t bits_max;
	uint64_t req_bytes_max; /* key in one key request, bytes */
};

/* Kq-1: one block of fresh QKD key from a link's modules. */
struct qkdn_link_block {
	qkdn_name link;
	uint64_t block_id;
	struct qkdn_bytes bytes;
};

/* One key request's share of a KEY_SYNC: count keys of bits each. */
struct qkdn_sync_req {
	qkdn_name src_sae;
	qkdn_name dst_sae;
	uint32_t bits;
	struct qkdn_ids ids;
};

struct qkdn_sync_reqs {
	uint32_t n;
	struct qkdn_sync_req *v;
};

/* Kx: the source KM tells its peer which bits of its direction of the link
 * pool form which key IDs (two-node key supply, Q.4160 I.1). The segments,
 * concatenated, give a 32-byte one-time Poly1305 key, then the keys of each
 * request in order. No key material crosses the link: the peer reads the
 * same bits from its own copy of the pool. It travels only inside a
 * KEY_SYNC_AUTH. */
struct qkdn_key_sync {
	qkdn_name link;
	struct qkdn_segments segs;
	struct qkdn_sync_reqs reqs;
};

/* Kx: a KEY_SYNC as the exact bytes it was encoded to, and a one-time
 * Poly1305 tag, keyed by the first 32 bytes of the pool bits the sync
 * names, over those bytes followed by the rest of the bits (the keys). The
 * receiver authenticates the bytes that travelled (a newer peer's extra
 * fields included) and that both ends hold the same key bits. */
struct qkdn_key_sync_auth {
	struct qkdn_bytes sync;
	struct qkdn_bytes tag;
};

/* 114 Kx, a link fed by ETSI GS QKD 014 KMEs (docs/etsi014.md): the key
 * IDs its master end took with enc_keys, in order, each of bits, and the
 * block ID both ends file that key under. The slave end takes the same
 * keys with dec_keys. No key material crosses Kx. Travels only inside a
 * KME_KEYS_AUTH. */
struct qkdn_kme_keys {
	qkdn_name link;
	uint64_t block_id;
	uint32_t bits;
	struct qkdn_ids ids;
};

/* 115 Kx: a KME_KEYS as the exact bytes it was encoded to, and a one-time
 * Poly1305 tag over them and the key material past the first 32 bytes,
 * keyed by those first 32 bytes (the KME's keys, concatenated in ID
 * order): as a KEY_SYNC_AUTH, but keyed by the new material itself, so the
 * first block of a link needs no pool. */
struct qkdn_kme_keys_auth {
	struct qkdn_bytes keys;
	struct qkdn_bytes tag;
};

/* Generic acknowledgement. */
struct qkdn_ack {
	int32_t result;
	uint64_t value;        /* message-specific (e.g. block ID missing) */
	struct qkdn_bytes tag; /* message-specific (a key sync's ack) */
};

enum qkdn_link_action { QKDN_LINK_PAUSE = 1, QKDN_LINK_RESUME = 2 };

/* Emulator control: pause or resume a link's key delivery. */
struct qkdn_link_ctl {
	qkdn_name link;
	uint32_t action;
};

struct qkdn_arena;

struct qkdn_msg {
	uint32_t type;
	uint64_t req_id;
	union {
		struct qkdn_key_req key_req;
		struct qkdn_key_rsp key_rsp;
		struct qkdn_key_req_id key_req_id;
		struct qkdn_session_create_req session_create_req;
		struct qkdn_session_create_notif session_create_notif;
		struct qkdn_session_notif_rsp session_notif_rsp;
		struct qkdn_session_create_rsp session_create_rsp;
		struct qkdn_key_req_session key_req_session;
		struct qkdn_key_supply_notif key_supply_notif;
		struct qkdn_proactive_supply proactive_supply;
		struct qkdn_proactive_supply_rsp proactive_supply_rsp;
		struct qkdn_key_supply_notif_rsp key_supply_notif_rsp;
		struct qkdn_key_req_session_rsp key_req_session_rsp;
		struct qkdn_next_hop_req next_hop_req;
		struct qkdn_next_hop_rsp next_hop_rsp;
		struct qkdn_relay_done_notif relay_done_notif;
		struct qkdn_relay_req_notif relay_req_notif;
		struct qkdn_relay_req relay_req;
		struct qkdn_key_relay key_relay;
		struct qkdn_relay_req_rsp relay_req_rsp;
		struct qkdn_reserve_req reserve_req;
		struct qkdn_reserve_rsp reserve_rsp;
		struct qkdn_alloc_req alloc_req;
		struct qkdn_alloc_rsp alloc_rsp;
		struct qkdn_error error;
		struct qkdn_status_req status_req;
		struct qkdn_status_rsp status_rsp;
		struct qkdn_link_block link_block;
		struct qkdn_key_sync key_sync;
		struct qkdn_key_sync_auth key_sync_auth;
		struct qkdn_key_relay_auth key_relay_auth;
		struct qkdn_relay_abort relay_abort;
		struct qkdn_reserve_release reserve_release;
		struct qkdn_link_state_update link_state;
		struct qkdn_route_query route_query;
		struct qkdn_ctl_status ctl_status;
		struct qkdn_kme_keys kme_keys;
		struct qkdn_kme_keys_auth kme_keys_auth;
		struct qkdn_ack ack;
		struct qkdn_link_ctl link_ctl;
	} u;
	struct qkdn_arena *arena; /* owns decoded arrays and bytes */
};

/* Why a decode failed: a qkdn error code and a reason naming the field. */
struct qkdn_decode_error {
	int code;
	char reason[QKDN_REASON_MAX];
};

/* Writes encoded bytes somewhere; returns 0 or nonzero on failure. */
typedef int (*qkdn_write_fn)(void *ctx, const char *data, size_t len);

/* Encode m through write. Fails with QKDN_E_UNKNOWN_TYPE, or a validation
 * error if m breaks a limit (the same checks as decode). */
int qkdn_msg_encode(const struct qkdn_msg *m, qkdn_write_fn write, void *ctx)
    __attribute__((warn_unused_result));

/* Growable buffer for encoding; qkdn_buf_free wipes before freeing. */
struct qkdn_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};
int qkdn_buf_write(void *buf, const char *data, size_t len);
/* Room for cap bytes in all, so a message of known size is encoded with
 * no regrowth (each regrowth copies and wipes). 0, or -1 out of memory
 * or over QKDN_MSG_BYTES_MAX. */
int qkdn_buf_reserve(struct qkdn_buf *b, size_t cap);
void qkdn_buf_free(struct qkdn_buf *b);

/* Decode one message that must fill buf exactly. On failure out is left
 * cleared and err (if not NULL) says why. */
int qkdn_msg_decode(const uint8_t *buf, size_t len, struct qkdn_msg *out,
                    struct qkdn_decode_error *err)
    __attribute__((warn_unused_result));

/* Wipe and free what a decoded (or built with qkdn_msg_alloc) message owns,
 * and zero it. Safe on a zeroed message. */
void qkdn_msg_clear(struct qkdn_msg *m);

/* Allocate len zeroed bytes owned by m (freed and wiped by clear). For
 * building messages with arrays and byte strings. NULL when out of memory. */
void *qkdn_msg_alloc(struct qkdn_msg *m, size_t len);

/* Name of a message type ("key request", ...) or NULL if unknown. */
const char *qkdn_msg_type_name(uint32_t type);

/* UUIDs: random version 4; n time-ordered version 7 IDs (48-bit Unix ms,
 * 74 random bits) with one draw of randomness, which keeps the IDs of a
 * batch close together in a B-tree; and the 36-character text form. */
void qkdn_uuid_random(qkdn_uuid *out);
void qkdn_uuid_v7(qkdn_uuid *out, size_t n);
void qkdn_uuid_format(const qkdn_uuid *id, char out[37]);
int qkdn_uuid_parse(const char *text, qkdn_uuid *out);

/* Copy a C string into a name; QKDN_E_TOO_LARGE if it does not fit and
 * QKDN_E_BAD_REQUEST if it is empty. */
int qkdn_name_set(qkdn_name dst, const char *src);

#endif
