/* What the servers ask of this node: its links by peer or by name, each
 * link's health, and the status report. Kept apart from km.c (start and
 * stop) so that the servers never call back into the code that starts
 * them. */
#ifndef KM_NODE_H
#define KM_NODE_H

#include "km.h"

/* The link of this KM with node index peer, or NULL. */
struct km_link *km_link_to(struct km *km, int peer);
/* The link of this KM named id, or NULL. */
struct km_link *km_link_named(struct km *km, const char *id);

/* A key sync on l was authenticated (ok) or failed its MAC: the two ends'
 * pools disagree there, or the sync was altered on the way. */
void km_link_note_sync(struct km_link *l, bool ok);

/* Fill a STATUS_RSP (takes the KM lock, reads the store). */
int km_status(struct km *km, struct qkdn_msg *rsp)
    __attribute__((warn_unused_result));

#endif
