/* The key manager of one trusted node: its configuration, key store, link
 * pools and the three servers it runs (Ak for applications, Kx for peer
 * KMs, Kq-1 for QKD modules). km.c starts and stops them; what the servers
 * ask of the node (links, routes, status) is in node.h and route.h. One lock
 * guards the pools and the Kx queues; LMDB serialises its own writers. Lock
 * order: km->mtx, then an LMDB write transaction, never the reverse. */
#ifndef KM_KM_H
#define KM_KM_H

#include "pool.h"
#include "qkdn_msg.h"
#include "qkdn_netconf.h"
#include "store.h"

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <stdatomic.h>
#include <stdbool.h>

struct km_kx_link; /* kx.c */
struct km_ctl;     /* ctl_client.h */
struct km_relay;   /* relay.h */
struct km_kme;     /* kme.h */

/* Relay counters (STATUS_RSP.relay, struct qkdn_relay_stats says what each
 * counts; in_flight is started - completed - failed). */
struct km_relay_counters {
	atomic_uint_fast64_t started, completed, failed;
	atomic_uint_fast64_t forwarded, delivered, rejected;
	atomic_uint_fast64_t next_hop_reqs, relay_req_notifs, relay_req_rsps;
	atomic_uint_fast64_t done_notifs, reservations, allocations;
	atomic_uint_fast64_t keys_relayed;
};

/* A key request waiting for the peer KM (Q.4160 I.1 step 1 -> 2). */
struct km_keyreq {
	struct km_keyreq *next;
	qkdn_name src_sae;
	qkdn_name dst_sae;
	uint32_t bits;
	uint32_t count;
	int retries;
	/* the reply to send: KEY_RSP, keys in its arena, filled by kx.c */
	struct qkdn_msg rsp;
	/* called once the peer acknowledged (rv 0) or the request failed
	 * (rv < 0, rsp cleared); it may run with the KM lock held, so it must
	 * not take it */
	void (*done)(struct km_keyreq *r, int rv, const char *why);
};

struct km_link {
	const struct qkdn_net_link *conf;
	int peer; /* node index of the other end */
	struct km_pool pool;
	struct km_kx_link *kx; /* this node's Kx client to the peer */
	struct km_kme *kme;    /* its ETSI 014 KME feed, or NULL (kme.h) */
	int syncs_waiting;     /* peer's syncs waiting for a block (KM lock) */
	/* the two ends' pools disagreed in the last key sync (node.h) */
	atomic_bool out_of_sync;
	atomic_uint_fast64_t sync_failures;
};

struct km {
	const struct qkdn_net *net;
	int self; /* node index */
	const struct qkdn_net_node *node;
	struct km_store *st;
	nng_mtx *mtx;
	size_t n_links;
	struct km_link *links; /* links with this node at one end */
	struct km_ak *ak;
	struct km_kx_server *kx_srv;
	struct km_kq *kq;
	/* this node's TLS identity as a Kx client (NULL: no tls+tcp:// peer) */
	struct qkdn_sp_tls *kx_tls;
	bool serving; /* start-up completed: stop may save and mark clean */
	atomic_uint_fast64_t keys_supplied;
	atomic_uint_fast64_t ak_errors; /* error replies, counted by */
	atomic_uint_fast64_t kx_errors; /* the servers */
	struct km_ctl *ctl;             /* the controller client */
	struct km_relay *relay;         /* the relay engine */
	struct km_relay_counters rc;
};

/* Start the KM of node `self` of net: open the store, load the pools,
 * listen on Ak, Kx and Kq-1. */
int km_start(struct km **out, const struct qkdn_net *net, int self)
    __attribute__((warn_unused_result));
/* Stop serving, save the pools and close the store. */
void km_stop(struct km *km);
/* Periodic housekeeping: expire keys, delete used blocks. */
void km_tick(struct km *km);

#endif
