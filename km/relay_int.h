/* Inside key relay (km/relay.c, km/reserve.c): the state of one relay
 * and of the relay engine, and what the two files share. Nothing outside
 * km/relay*.c and km/reserve.c includes it; relay.h is the module's face. */
#ifndef KM_RELAY_INT_H
#define KM_RELAY_INT_H

#include "relay.h"

#include <nng/supplemental/util/platform.h>
#include <stdbool.h>
#include <stdint.h>

/* relays remembered for a 109 that may follow (destination: which keys;
 * intermediate: where they went) */
#define RECENT_MAX 256

enum role {
	R_SOURCE,  /* an Ak key request (I.5a / I.5b) */
	R_FORWARD, /* an intermediate node's outgoing hop */
	R_KM2,     /* I.4b: KM2 relays the reserved keys (18) */
	R_RESERVE, /* I.4b: KM1's reservation hop to KM2 (21) */
};

struct relay {
	struct km_hop h; /* first: relay_hop_done() gets &r->h */
	struct km *km;
	enum role role;
	struct qkdn_server_req *w; /* the request held until the relay ends */
	/* R_FORWARD: the incoming hop's tag (16) and ack key (32), for the
	 * completion this node owes its previous hop (km_secbuf_get) */
	uint8_t *in;
	int dst_node;
	struct km_ctl_routes *routes; /* R_SOURCE, centralized */
	uint32_t route_at;
	bool routed; /* the central controller routed it: 20 at the end */
	qkdn_uuid resid;
};

enum job_kind { J_START, J_NOTIFY, J_ABORT };

struct job {
	struct job *next;
	enum job_kind kind;
	struct relay *r; /* J_START */
	qkdn_uuid rid;
	int result; /* J_NOTIFY */
	int node;   /* J_ABORT: whom to tell */
	uint32_t n;
	qkdn_uuid *ids;
	char why[QKDN_REASON_MAX];
};

/* Reserved keys (I.4b), held in memory only: never in the store, never
 * handed out before allocation. */
struct hold {
	struct hold *next;
	qkdn_uuid resid;
	bool km1;  /* KM1's copy (allocated by 23) or KM2's (relayed by 18) */
	bool used; /* allocated or relayed: kept until expiry, keys gone */
	int peer;  /* the other end of the reservation hop */
	int dst_node; /* KM1: the reservation's destination */
	uint64_t expires_ms;
	uint32_t count, bits;
	qkdn_uuid *ids;
	uint8_t *keys; /* km_secbuf_get: back with km_secbuf_put */
};

struct recent {
	bool valid;
	qkdn_uuid rid;
	int prev, next; /* next -1: delivered here */
	qkdn_name dst_sae;
	uint32_t n;
	qkdn_uuid *ids;
};

struct km_relay {
	struct km *km;
	nng_mtx *mtx; /* never held with the KM lock */
	nng_cv *cv;
	nng_thread *thread;
	bool stopping;
	struct job *head, *tail;
	struct hold *holds;
	struct recent recent[RECENT_MAX];
	size_t recent_at;
};

bool relay_uuid_eq(const qkdn_uuid *a, const qkdn_uuid *b);
bool relay_uuid_zero(const qkdn_uuid *a);
/* A relay with room for count keys of bits and their IDs. */
struct relay *relay_new(struct km *km, enum role role, uint32_t count,
                        uint32_t bits);
void relay_free(struct relay *r);
/* The relay's route: these nodes (indexes), in order. */
void relay_set_route(struct relay *r, const int *nodes, uint32_t n);
/* km_hop.done of every relay: the hop is over (on the thread that carried
 * it). */
void relay_hop_done(struct km_hop *h, int rv, const char *why);
/* Answer the controller's 18 held in r->w with 19. */
void relay_reply_req_rsp(struct relay *r, int rv);

/* Reserved keys held in memory (I.4b, reserve.c). */
void relay_hold_add(struct km *km, struct hold *h);
/* With the engine's mtx. */
struct hold *relay_hold_find(struct km_relay *e, const qkdn_uuid *resid,
                             bool km1);
void relay_hold_wipe(struct hold *h);
/* Take the holds that match out of the engine's list (under its mtx),
 * as a list of their own, for the caller to wipe and free. */
struct hold *relay_holds_unlink(struct km_relay *e,
                                bool (*match)(const struct hold *h,
                                              const void *arg),
                                const void *arg);

#endif
