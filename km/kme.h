/* Links fed by ETSI GS QKD 014 KMEs instead of the emulator (southbound
 * Kq-1, docs/etsi014.md). The master end (node[0] of the link) pulls keys
 * with enc_keys at the link's rate while its pool has room, and names their
 * IDs to its peer in a KME_KEYS_AUTH over Kx; the slave end takes the same
 * keys with dec_keys. The tag is a one-time Poly1305 MAC keyed by the first
 * 32 bytes of that material, over the message and the rest of it, so a
 * forged or altered ID list, or a KME that served the two ends different
 * bits, is refused before anything is stored. Both ends then add the
 * material (less the two MAC keys) as one block with the same ID, which the
 * master chose and the tag covers; everything downstream sees an ordinary
 * link pool. A KME that fails or stops answering shows as the link down. */
#ifndef KM_KME_H
#define KM_KME_H

#include "km.h"

#include <stdbool.h>
#include <stddef.h>

struct qkdn_server_req;

/* Process-wide setup of the HTTPS client, from km_start (main thread). */
int km_kme_global_init(void) __attribute__((warn_unused_result));
void km_kme_global_fini(void);

/* Start feeding l from its KME if the network file gives it one (nothing
 * otherwise): the master end's puller or the slave end's prober thread. */
int km_kme_open(struct km *km, struct km_link *l)
    __attribute__((warn_unused_result));
/* Stop it; after the Kx server stopped (its handler uses the state). */
void km_kme_close(struct km_link *l);

/* Whether l is fed by a KME that is down at this end; *why the reason. */
bool km_kme_down(struct km_link *l, char *why, size_t whylen);

/* The Kx handler of KME_KEYS_AUTH (the slave end; on its connection's
 * thread). */
void km_kme_handle_auth(struct qkdn_server_req *w, struct qkdn_msg *req);

#endif
