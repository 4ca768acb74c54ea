/* The gateway's key stock (docs/etsi014.md, "Key stock"): per (calling
 * SAE, slave SAE, key size) a bounded FIFO of keys taken from the KM ahead
 * of the request, so that enc_keys needs no Ak round trip (and the KM's Kx
 * sync to its peer) on its critical path. Q.4160 lets a KM supply keys
 * proactively; the gateway is the SAE's agent.
 *
 * The keys were taken by the KM in a committed transaction (counted as
 * supplied, the peer KM holds them for dec_keys), so a key is handed to
 * exactly one request, wiped when handed out, when older than the max age
 * (the peer forgets unfetched keys after key_ttl) or when the gateway
 * stops, and never logged. One refill thread of its own asks the KM, one
 * key request per batch. Thread safe: the HTTPS workers call at once. */
#ifndef ETSI_STOCK_H
#define ETSI_STOCK_H

#include "qkdn_ak.h"

#include <stdbool.h>
#include <stdint.h>

struct kmc;
struct stock;

struct stock_config {
	struct kmc *kmc; /* the node's KM (outlives the stock) */
	uint32_t target; /* keys per triple; 0: no stock */
};

/* Start the refill thread. A target of 0 gives *out = NULL, on which every
 * call below does nothing (and stock_take always misses). */
int stock_open(struct stock **out, const struct stock_config *cfg)
    __attribute__((warn_unused_result));
/* Join the refill thread; wipe and free every stocked key. */
void stock_close(struct stock *s);

/* n keys of bits for sae's enc_keys toward dst, oldest first, into out:
 * true if the stock held n fresh ones (they leave it, wiped there), false
 * if not (out untouched: ask the KM). */
bool stock_take(struct stock *s, const char *sae, const char *dst,
                uint32_t bits, uint32_t n, struct qkdn_ak_key *out);

/* A request for the triple was served by the KM: from now on keep a stock
 * for it (created if absent and fewer than the cap of triples exist), its
 * keys wiped once older than max_age_ms (api.c: the peer KM's key_ttl). */
void stock_start(struct stock *s, const char *sae, const char *dst,
                 uint32_t bits, uint32_t max_age_ms);

#endif
