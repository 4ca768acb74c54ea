/* Kq-1: key blocks from the QKD modules (the emulator) into the pools. */
#ifndef KM_KQ_H
#define KM_KQ_H

#include "km.h"

struct km_kq;

int km_kq_start(struct km *km, struct km_kq **out)
    __attribute__((warn_unused_result));
void km_kq_stop(struct km_kq *kq);

#endif
