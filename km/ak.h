/* Ak server: key supply to applications (Q.4160 I.1), on the REP server
 * skeleton (qkdn_server.h). */
#ifndef KM_AK_H
#define KM_AK_H

#include "km.h"

struct km_ak;

/* The largest Ak request accepted: a key request with ID naming 4096 keys
 * is about 75 KiB (unit.test_limits checks that the largest valid request
 * fits); anything larger is refused by nng before it is read whole. */
#define KM_AK_RECV_MAX (128u << 10)

int km_ak_start(struct km *km, struct km_ak **out)
    __attribute__((warn_unused_result));
void km_ak_stop(struct km_ak *ak);

#endif
