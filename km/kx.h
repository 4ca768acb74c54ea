/* Kx: key manager to key manager. The client side batches this node's
 * pending key requests per link into one KEY_SYNC at a time (so the peer
 * sees pool positions in order and can refuse any reuse); the server side
 * checks a peer's KEY_SYNC (one-time MAC from the pool, positions after the
 * in-mark), stores the keys for the destination application and acks. */
#ifndef KM_KX_H
#define KM_KX_H

#include "km.h"

struct km_kx_server;

/* Most key material one KEY_SYNC carries (and so one key request). */
#define KM_KX_BATCH_BYTES (512u * 1024u)

/* The largest Kx message accepted: a KEY_SYNC_AUTH whose sync names the
 * most segments and the most requests a KM takes (4096 requests of one key
 * between SAEs with the longest names) is about 760 KiB; unit.test_limits
 * checks that it fits. Anything larger is refused by nng before it is read
 * whole. */
#define KM_KX_RECV_MAX (1u << 20)

int km_kx_link_open(struct km *km, struct km_link *l)
    __attribute__((warn_unused_result));
void km_kx_link_close(struct km *km, struct km_link *l);
/* Queue r on link l (takes the KM lock). r->done is called exactly once. */
void km_kx_submit(struct km *km, struct km_link *l, struct km_keyreq *r);
/* Whether the peer KM is connected. */
bool km_kx_link_up(const struct km_kx_link *kl);

/* One hop of a key relay for link l's sender thread (relay.h says what a
 * hop is): queued next to the key request batches, one round trip at a
 * time. h->done is called exactly once, on the thread that carried the hop
 * (or at once if the link is stopping), without the KM lock. */
struct km_hop;
void km_kx_submit_hop(struct km *km, struct km_link *l, struct km_hop *h);
/* The same, but run on the calling thread (h->done too, before it returns)
 * when the sender sleeps with nothing queued: for a hop forwarded by a Kx
 * connection's thread, whose request waits for it anyway. Otherwise
 * queued as km_kx_submit_hop does. Never from a thread that must not
 * block for a round trip. */
void km_kx_run_hop(struct km *km, struct km_link *l, struct km_hop *h);

int km_kx_server_start(struct km *km, struct km_kx_server **out)
    __attribute__((warn_unused_result));
void km_kx_server_stop(struct km_kx_server *s);

/* For the relay handlers of the Kx server (relay.c): read the pool bits a
 * peer's message names from l's in direction, as a KEY_SYNC does (a block
 * still on its way is waited for: KM_KX_READ_WAIT means the handler must
 * return after qkdn_server_retry; KM_KX_READ_SKIP means reply an ACK with
 * *rv and *skip so the sender skips that far). Takes the KM lock. */
struct qkdn_server_req;
enum km_kx_read {
	KM_KX_READ_OK,
	KM_KX_READ_WAIT,
	KM_KX_READ_SKIP,
	KM_KX_READ_FAIL
};
enum km_kx_read km_kx_read_in(struct qkdn_server_req *w, struct km_link *l,
                              const struct qkdn_segments *segs, uint8_t *bytes,
                              uint64_t total, int *rv, uint64_t *skip);
/* The request of w waits no longer (call before any reply). */
void km_kx_end_wait(struct qkdn_server_req *w);
/* Reply an ACK (tag: 16 bytes or NULL). */
void km_kx_reply_ack(struct qkdn_server_req *w, int result, uint64_t value,
                     uint8_t *tag);

#endif
