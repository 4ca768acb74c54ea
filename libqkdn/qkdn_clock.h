/* Clocks shared by every qkdn program. */
#ifndef QKDN_CLOCK_H
#define QKDN_CLOCK_H

#include <stdint.h>

/* Milliseconds of a monotonic clock: for deadlines. */
uint64_t qkdn_now_ms(void);

#endif
