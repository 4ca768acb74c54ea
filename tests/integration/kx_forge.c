/* Plays a peer KM that does not hold the link's key: sends a running KM
 * KEY_SYNC_AUTHs over Kx whose KEY_SYNC names real pool positions but whose
 * tag is made without the pool's bits, and checks that each is refused as
 * failing authentication (QKDN_E_AUTH_FAILED) and that a replay of the same
 * message is refused too.
 *
 *   kx_forge KX_URL LINK SRC_SAE DST_SAE
 *
 * It first learns a block the KM holds: a sync naming block 1 (older than
 * anything held) is answered "block missing" with the ID just below the
 * oldest block held. Then it forges syncs over that block: one with a
 * random tag, one with an all-zero tag, one whose tag has the wrong
 * length. It prints the key IDs it forged, one a line, so the test can
 * show that none of them can be fetched. Exit 0 if every forgery was
 * refused as expected. */
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_msg.h"
#include "qkdn_sp.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEADLINE_MS 5000

static const char *url;

/* One KEY_SYNC round trip; the reply is decoded into *rsp. */
static int
send_sync(const char *link, const char *src, const char *dst,
          struct qkdn_segment seg, const qkdn_uuid *id, const uint8_t *tag,
          size_t tag_len, struct qkdn_msg *rsp)
{
	struct qkdn_sp_conn c = {.fd = -1};
	struct qkdn_sync_req sr = {.bits = 256, .ids = {1, (qkdn_uuid *)id}};
	struct qkdn_msg m = {.type = QKDN_KEY_SYNC, .req_id = 1};
	struct qkdn_msg auth = {.type = QKDN_KEY_SYNC_AUTH, .req_id = 1};
	struct qkdn_key_sync *ks = &m.u.key_sync;
	struct qkdn_buf body = {0}, buf = {0};
	uint8_t *in = NULL;
	size_t in_len = 0;
	int rv;

	snprintf(ks->link, sizeof(ks->link), "%s", link);
	snprintf(sr.src_sae, sizeof(sr.src_sae), "%s", src);
	snprintf(sr.dst_sae, sizeof(sr.dst_sae), "%s", dst);
	ks->segs.n = 1;
	ks->segs.v = &seg;
	ks->reqs.n = 1;
	ks->reqs.v = &sr;
	/* the sync as its sender would encode it, with a tag made without
	 * the pool's bits */
	if ((rv = qkdn_msg_encode(&m, qkdn_buf_write, &body)) == 0) {
		auth.u.key_sync_auth.sync.len = (uint32_t)body.len;
		auth.u.key_sync_auth.sync.ptr = body.data;
		auth.u.key_sync_auth.tag.len = (uint32_t)tag_len;
		auth.u.key_sync_auth.tag.ptr = (uint8_t *)tag;
		rv = qkdn_msg_encode(&auth, qkdn_buf_write, &buf);
	}
	qkdn_buf_free(&body);
	if (rv != 0) {
		fprintf(stderr, "encode: %s\n", qkdn_strerror(rv));
		return rv;
	}
	uint64_t deadline = qkdn_now_ms() + DEADLINE_MS;
	if ((rv = qkdn_sp_connect(&c, url, deadline)) == 0)
		rv = qkdn_sp_call(&c, buf.data, buf.len, &in, &in_len,
		                  QKDN_MSG_BYTES_MAX, deadline);
	qkdn_sp_close(&c);
	qkdn_buf_free(&buf);
	if (rv != 0) {
		fprintf(stderr, "Kx call to %s: %s\n", url, qkdn_strerror(rv));
		return rv;
	}
	rv = qkdn_msg_decode(in, in_len, rsp, NULL);
	free(in);
	if (rv != 0)
		fprintf(stderr, "reply: %s\n", qkdn_strerror(rv));
	return rv;
}

/* The reply must be an ERROR with code want. */
static int
expect_error(const struct qkdn_msg *rsp, int want, const char *what)
{
	if (rsp->type == QKDN_ERROR && -rsp->u.error.code == want)
		return 0;
	if (rsp->type == QKDN_ERROR)
		fprintf(stderr, "FAIL %s: refused as %s (%s), not as %s\n",
		        what, qkdn_strerror(-rsp->u.error.code),
		        rsp->u.error.reason, qkdn_strerror(want));
	else if (rsp->type == QKDN_ACK)
		fprintf(stderr, "FAIL %s: acknowledged (result %d)\n", what,
		        rsp->u.ack.result);
	else
		fprintf(stderr, "FAIL %s: reply of type %u\n", what, rsp->type);
	return 1;
}

int
main(int argc, char **argv)
{
	struct qkdn_msg rsp;
	qkdn_uuid id;
	char text[37];
	int failures = 0;
	if (argc != 5) {
		fprintf(stderr,
		        "usage: kx_forge KX_URL LINK SRC_SAE DST_SAE\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	url = argv[1];
	const char *link = argv[2], *src = argv[3], *dst = argv[4];

	/* find a block the KM holds */
	uint8_t tag[16] = {0};
	qkdn_uuid_v7(&id, 1);
	/* two 32-byte MAC keys and one 256-bit key */
	struct qkdn_segment seg = {.block_id = 1, .offset = 0, .len = 96};
	if (send_sync(link, src, dst, seg, &id, tag, sizeof(tag), &rsp) != 0)
		return 1;
	if (rsp.type != QKDN_ACK || rsp.u.ack.result != QKDN_E_BLOCK_MISSING ||
	    rsp.u.ack.value == 0) {
		fprintf(stderr, "probe: no block-missing answer (type %u)\n",
		        rsp.type);
		qkdn_msg_clear(&rsp);
		return 1;
	}
	seg.block_id = rsp.u.ack.value + 1;
	qkdn_msg_clear(&rsp);
	/* well past the start of the block, so the positions lie after
	 * whatever the honest peer has used so far */
	seg.offset = 1024;

	static const struct {
		const char *what;
		int tag_kind; /* 0 random, 1 zero, 2 wrong length */
	} forgeries[] = {
	    {"random tag", 0},
	    {"all-zero tag", 1},
	    {"short tag", 2},
	};
	for (size_t i = 0; i < sizeof(forgeries) / sizeof(forgeries[0]); i++) {
		size_t tag_len = sizeof(tag);
		if (forgeries[i].tag_kind == 0)
			randombytes_buf(tag, sizeof(tag));
		else
			memset(tag, 0, sizeof(tag));
		if (forgeries[i].tag_kind == 2)
			tag_len = 8;
		qkdn_uuid_v7(&id, 1);
		qkdn_uuid_format(&id, text);
		printf("%s\n", text);
		if (send_sync(link, src, dst, seg, &id, tag, tag_len, &rsp) !=
		    0)
			return 1;
		failures +=
		    expect_error(&rsp, QKDN_E_AUTH_FAILED, forgeries[i].what);
		/* the same message again: refused the same way, not taken
		 * as a retry of something accepted */
		qkdn_msg_clear(&rsp);
		if (send_sync(link, src, dst, seg, &id, tag, tag_len, &rsp) !=
		    0)
			return 1;
		failures +=
		    expect_error(&rsp, QKDN_E_AUTH_FAILED, forgeries[i].what);
		qkdn_msg_clear(&rsp);
	}
	fprintf(stderr, "%s: forged syncs over block %llu offset %u\n",
	        failures ? "FAILED" : "ok", (unsigned long long)seg.block_id,
	        seg.offset);
	return failures ? 1 : 0;
}
