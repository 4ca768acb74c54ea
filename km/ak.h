/* Ak server: key supply to applications (Q.4160 I.1). nng REP contexts,
 * each an explicit state machine whose callbacks never block. */
#ifndef KM_AK_H
#define KM_AK_H

#include "km.h"

struct km_ak;

int km_ak_start(struct km *km, struct km_ak **out)
    __attribute__((warn_unused_result));
void km_ak_stop(struct km_ak *ak);

#endif
