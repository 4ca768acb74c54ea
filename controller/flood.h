/* Link-state flooding to the controllers of adjacent nodes (distributed
 * mode). One sender thread per adjacent node, each with its own
 * connection to that node's Cx (qkdn_sp.h: over TLS with this node's
 * certificate when that Cx is tls+tcp://) and a set of origins whose LSA
 * it still has to
 * send: a neighbour that does not answer within CTL_FLOOD_MS costs only its
 * own thread's time, is skipped for the rest of that round, and is never
 * waited for by the Ck or Cx servers (they only mark origins). */
#ifndef CTL_FLOOD_H
#define CTL_FLOOD_H

#include <stdint.h>

struct ctl;
struct ctl_flood;

int ctl_flood_start(struct ctl_flood **out, struct ctl *c)
    __attribute__((warn_unused_result));
void ctl_flood_stop(struct ctl_flood *f);

/* Send origin's LSA (as held when sent) to every adjacent controller but
 * the one of node `except` (-1: none). Never blocks for long: callable
 * under ctl->mtx and from the Ck and Cx handlers. */
void ctl_flood_mark(struct ctl_flood *f, int origin, int except);

#endif
