/* The gateway's side of Ak: one libqkdn handle per SAE of the node (the
 * Ak request names the SAE the gateway speaks for; the KM trusts the
 * gateway's uid or certificate, km/ak.c), opened on first use. Thread
 * safe: the HTTPS workers call it at once. */
#ifndef ETSI_KMC_H
#define ETSI_KMC_H

#include "qkdn_ak.h"

#include <stddef.h>
#include <stdint.h>

struct qkdn_net;
struct kmc;

/* For node `node` of net (which must outlive the client). */
int kmc_open(struct kmc **out, const struct qkdn_net *net, int node,
             int timeout_ms) __attribute__((warn_unused_result));
void kmc_close(struct kmc *k);

/* Key request for sae, shared with dst; out holds count entries. */
int kmc_get_keys(struct kmc *k, const char *sae, const char *dst, uint32_t bits,
                 uint32_t count, struct qkdn_ak_key *out)
    __attribute__((warn_unused_result));
/* Key request with ID for sae, of keys src asked for. */
int kmc_get_keys_by_id(struct kmc *k, const char *sae, const char *src,
                       const qkdn_key_id *ids, uint32_t count,
                       struct qkdn_ak_key *out)
    __attribute__((warn_unused_result));
/* The KM's status (free with qkdn_ak_status_free). */
int kmc_status(struct kmc *k, struct qkdn_ak_status *out)
    __attribute__((warn_unused_result));

#endif
