/* The reservation scheme of Q.4160 I.4b, run by the central controller on
 * an operator's order (RELAY_REQ_NOTIF with reserve = 1):
 *
 *   route src -> dst; 21 RESERVE_REQ to KM1 (route[0]); 18 RELAY_REQ with
 *   the reservation to KM2 (route[1]), answered by 20 when the relay ends;
 *   23 ALLOC_REQ to KM1; reply 24 ALLOC_RSP with the key IDs.
 *
 * Any failure releases the reservation at KM1 and KM2 (110) and replies
 * ERROR naming the step. The calls wait for KMs for seconds, so orders run
 * on threads of their own: the Ck handler only queues the request (the
 * server keeps it until the order thread replies). */
#ifndef CTL_ORDER_H
#define CTL_ORDER_H

#include <stddef.h>

struct ctl;
struct ctl_order;
struct qkdn_server_req;
struct qkdn_msg;

/* Slot bytes the Ck server must give each context for the queue. */
#define CTL_ORDER_SLOT 16

int ctl_order_start(struct ctl_order **out, struct ctl *c)
    __attribute__((warn_unused_result));
/* Abort the calls in flight (their orders fail with shutting_down), join
 * the threads, refuse what is still queued and what comes later. Before
 * the Ck server stops. */
void ctl_order_stop(struct ctl_order *o);
/* Free it, once the Ck server (which queues orders) has stopped. */
void ctl_order_free(struct ctl_order *o);

/* Queue the request r (req: its RELAY_REQ_NOTIF with reserve = 1); it is
 * answered from an order thread (at once with shutting_down after stop). */
void ctl_order_queue(struct ctl_order *o, struct qkdn_server_req *r,
                     struct qkdn_msg *req);

#endif
