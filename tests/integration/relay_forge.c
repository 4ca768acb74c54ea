/* Plays a KM that does not hold a link's key and sends a running KM key
 * relays (KEY_RELAY_AUTH, 108) over Kx that it must refuse before
 * consuming anything:
 *
 *   1. a forged tag: real, unused pool positions, a random tag
 *      -> authentication_failed;
 *   2. positions behind the receiver's in-mark (a replay of bits used
 *      already): the start of the last block honest traffic used
 *      -> replayed_key_material (an ERROR, or an ACK telling the sender
 *      how far to skip);
 *   3. a relay naming a link that does not join the receiver to the
 *      previous hop the route claims -> not_authorised.
 *
 *   relay_forge KX_URL ROUTE LINK OTHER_LINK SRC_SAE DST_SAE
 *
 * ROUTE is comma-separated node IDs (route[1] is the KM at KX_URL, route[0]
 * the previous hop, joined to it by LINK; OTHER_LINK is another link of
 * the receiver). A probe naming block 1 first learns the last block the
 * in direction used (answered "replayed" with its ID). Exit 0 if every
 * message was refused as expected; prints one line per message. */
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
static struct qkdn_route route;
static const char *src_sae, *dst_sae;

/* One KEY_RELAY_AUTH round trip over link naming seg, with a random tag;
 * the reply is decoded into *rsp. */
static int
send_relay(const char *link, struct qkdn_segment seg, struct qkdn_msg *rsp)
{
	struct qkdn_sp_conn c = {.fd = -1};
	struct qkdn_msg m = {.type = QKDN_KEY_RELAY, .req_id = 1};
	struct qkdn_msg auth = {.type = QKDN_KEY_RELAY_AUTH, .req_id = 1};
	struct qkdn_key_relay *kr = &m.u.key_relay;
	struct qkdn_buf body = {0}, buf = {0};
	uint8_t tag[16], *in = NULL;
	size_t in_len = 0;
	qkdn_uuid id;
	int rv;

	qkdn_uuid_random(&kr->relay_id);
	qkdn_uuid_v7(&id, 1);
	kr->route = route;
	kr->hop = 1;
	snprintf(kr->src_sae, sizeof(kr->src_sae), "%s", src_sae);
	snprintf(kr->dst_sae, sizeof(kr->dst_sae), "%s", dst_sae);
	kr->bits = 256;
	kr->ttl_ms = 2000;
	snprintf(kr->link, sizeof(kr->link), "%s", link);
	kr->segs.n = 1;
	kr->segs.v = &seg;
	kr->ids.n = 1;
	kr->ids.v = &id;
	randombytes_buf(tag, sizeof(tag));
	if ((rv = qkdn_msg_encode(&m, qkdn_buf_write, &body)) == 0) {
		auth.u.key_relay_auth.relay.len = (uint32_t)body.len;
		auth.u.key_relay_auth.relay.ptr = body.data;
		auth.u.key_relay_auth.tag.len = sizeof(tag);
		auth.u.key_relay_auth.tag.ptr = tag;
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

/* The reply must refuse with want: an ERROR, or (for the pool's position
 * answers) an ACK whose result is want. */
static int
expect(const struct qkdn_msg *rsp, int want, const char *what)
{
	int got = rsp->type == QKDN_ERROR ? -rsp->u.error.code
	          : rsp->type == QKDN_ACK ? rsp->u.ack.result
	                                  : 0;
	if (got == want && got != 0) {
		printf("%s: refused: %s%s%s\n", what, qkdn_errname(got),
		       rsp->type == QKDN_ERROR ? ": " : "",
		       rsp->type == QKDN_ERROR ? rsp->u.error.reason : "");
		return 0;
	}
	fprintf(stderr, "FAIL %s: reply type %u, %s (%s), want %s\n", what,
	        rsp->type, qkdn_errname(got),
	        rsp->type == QKDN_ERROR ? rsp->u.error.reason : "",
	        qkdn_errname(want));
	return 1;
}

/* relay_forge keyreq AK_URL SAE DST_SAE: one key request, printing the
 * error's stable name and reason (or "ok N"). Unlike `qkdn key get`, it
 * never probes the socket after an "unreachable" answer. */
static int
keyreq(const char *ak, const char *sae, const char *dst)
{
	struct qkdn_sp_conn c = {.fd = -1};
	struct qkdn_msg m = {.type = QKDN_KEY_REQ, .req_id = 1}, rsp;
	struct qkdn_buf buf = {0};
	uint8_t *in = NULL;
	size_t in_len = 0;
	snprintf(m.u.key_req.sae, sizeof(qkdn_name), "%s", sae);
	snprintf(m.u.key_req.dst_sae, sizeof(qkdn_name), "%s", dst);
	m.u.key_req.bits = 256;
	m.u.key_req.count = 1;
	uint64_t deadline = qkdn_now_ms() + DEADLINE_MS;
	int rv = qkdn_msg_encode(&m, qkdn_buf_write, &buf);
	if (rv == 0)
		rv = qkdn_sp_connect(&c, ak, deadline);
	if (rv == 0)
		rv = qkdn_sp_call(&c, buf.data, buf.len, &in, &in_len,
		                  QKDN_MSG_BYTES_MAX, deadline);
	qkdn_sp_close(&c);
	qkdn_buf_free(&buf);
	if (rv == 0)
		rv = qkdn_msg_decode(in, in_len, &rsp, NULL);
	if (in != NULL) {
		sodium_memzero(in, in_len);
		free(in);
	}
	if (rv != 0) {
		printf("call %s\n", qkdn_errname(rv));
		return 1;
	}
	if (rsp.type == QKDN_ERROR)
		printf("%s %s\n", qkdn_errname(-rsp.u.error.code),
		       rsp.u.error.reason);
	else
		printf("ok %u\n", rsp.u.key_rsp.keys.n);
	qkdn_msg_clear(&rsp);
	return 0;
}

int
main(int argc, char **argv)
{
	static qkdn_name nodes[QKDN_ROUTE_MAX];
	if (argc == 5 && strcmp(argv[1], "keyreq") == 0)
		return keyreq(argv[2], argv[3], argv[4]);
	struct qkdn_msg rsp;
	int failures = 0;
	if (argc != 7) {
		fprintf(stderr, "usage: relay_forge KX_URL ROUTE LINK "
		                "OTHER_LINK SRC_SAE DST_SAE\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	url = argv[1];
	const char *link = argv[3], *other = argv[4];
	src_sae = argv[5];
	dst_sae = argv[6];
	char *list = strdup(argv[2]), *save = NULL;
	for (char *t = strtok_r(list, ",", &save);
	     t != NULL && route.n < QKDN_ROUTE_MAX;
	     t = strtok_r(NULL, ",", &save))
		snprintf(nodes[route.n++], sizeof(qkdn_name), "%s", t);
	free(list);
	route.v = nodes;
	if (route.n < 2)
		return 2;

	/* MAC key, ack key and one 256-bit key */
	struct qkdn_segment seg = {.block_id = 1, .offset = 0, .len = 96};
	if (send_relay(link, seg, &rsp) != 0)
		return 1;
	if (rsp.type != QKDN_ACK || rsp.u.ack.value == 0 ||
	    (rsp.u.ack.result != QKDN_E_BLOCK_MISSING &&
	     rsp.u.ack.result != QKDN_E_REPLAY)) {
		fprintf(stderr, "probe: no position answer (type %u)\n",
		        rsp.type);
		qkdn_msg_clear(&rsp);
		return 1;
	}
	/* "replayed" names the last block used; "missing" the one below the
	 * oldest held (nothing used yet: case 2 then fails, as it should) */
	uint64_t used = rsp.u.ack.result == QKDN_E_REPLAY ? rsp.u.ack.value
	                                                  : rsp.u.ack.value + 1;
	qkdn_msg_clear(&rsp);

	/* 1: unused positions well ahead of honest traffic, forged tag */
	seg =
	    (struct qkdn_segment){.block_id = used + 8, .offset = 0, .len = 96};
	if (send_relay(link, seg, &rsp) != 0)
		return 1;
	failures += expect(&rsp, QKDN_E_AUTH_FAILED, "forged tag");
	qkdn_msg_clear(&rsp);

	/* 2: the start of the last block honest traffic used */
	seg = (struct qkdn_segment){.block_id = used, .offset = 0, .len = 96};
	if (send_relay(link, seg, &rsp) != 0)
		return 1;
	failures += expect(&rsp, QKDN_E_REPLAY, "behind the in-mark");
	qkdn_msg_clear(&rsp);

	/* 3: a link of the receiver that does not reach route[0] */
	seg =
	    (struct qkdn_segment){.block_id = used + 8, .offset = 0, .len = 96};
	if (send_relay(other, seg, &rsp) != 0)
		return 1;
	failures += expect(&rsp, QKDN_E_NOT_AUTHORISED, "wrong link");
	qkdn_msg_clear(&rsp);
	return failures == 0 ? 0 : 1;
}
