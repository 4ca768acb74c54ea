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

int km_kx_server_start(struct km *km, struct km_kx_server **out)
    __attribute__((warn_unused_result));
void km_kx_server_stop(struct km_kx_server *s);

#endif
