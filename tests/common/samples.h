/* Sample messages of every type the codec knows, for the codec's unit tests
 * (tests/unit/test_msg.c) and the fuzz seed corpus (tests/fuzz/gen_corpus.c).
 * Content is deterministic, so a failure reproduces. Errors are returned,
 * never asserted: gen_corpus is not a cmocka program. */
#ifndef QKDN_SAMPLES_H
#define QKDN_SAMPLES_H

#include "qkdn_msg.h"

#include <stdint.h>

enum sample_variant {
	SAMPLE_MIN,  /* optional fields absent, arrays at their smallest */
	SAMPLE_FULL, /* every field set, arrays of several elements */
};

/* Fill m (zeroed first) with the sample of type: type, request ID and body.
 * 0, QKDN_E_UNKNOWN_TYPE if there is no sample of type, or QKDN_E_NOMEM; on
 * failure m is left cleared. Free with qkdn_msg_clear. */
int sample_build(struct qkdn_msg *m, uint32_t type, enum sample_variant v)
    __attribute__((warn_unused_result));

/* The pieces samples are made of, for tests that build messages beyond the
 * samples (limits, odd sizes). Content depends on the arguments only; arrays
 * and bytes live in m's arena. Each returns 0 or QKDN_E_NOMEM. */
qkdn_uuid sample_uuid(unsigned seed);
int sample_ids(struct qkdn_msg *m, struct qkdn_ids *ids, uint32_t n,
               unsigned seed) __attribute__((warn_unused_result));
int sample_bytes(struct qkdn_msg *m, struct qkdn_bytes *b, uint32_t len,
                 unsigned seed) __attribute__((warn_unused_result));
/* n keys, the i-th of len + 8 * i bytes */
int sample_keys(struct qkdn_msg *m, struct qkdn_keys *k, uint32_t n,
                uint32_t len, unsigned seed)
    __attribute__((warn_unused_result));
/* n node names, node-1-ü ... (not ASCII, to exercise UTF-8) */
int sample_route(struct qkdn_msg *m, struct qkdn_route *r, uint32_t n)
    __attribute__((warn_unused_result));
int sample_segs(struct qkdn_msg *m, struct qkdn_segments *sg, uint32_t n,
                unsigned seed) __attribute__((warn_unused_result));

#endif
