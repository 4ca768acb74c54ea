/* Speaks to a KM as the central controller does in the reservation scheme
 * (Q.4160 I.4b), on the KM's Kx address, one request per run:
 *
 *   ck_send KX_URL reserve RESID DST_NODE NEXT_HOP COUNT BITS TTL_MS
 *   ck_send KX_URL alloc RESID DST_NODE SRC_SAE DST_SAE
 *   ck_send KX_URL release RESID
 *   ck_send CX_URL linkstate ORIGIN SEQ   (an LSA of ORIGIN with no link,
 *                                          as a neighbour controller floods)
 *
 * A tls+tcp:// URL takes the client's credentials from the environment:
 * CK_SEND_CA, CK_SEND_CERT, CK_SEND_KEY, and CK_SEND_PEER (the name the
 * server's certificate must carry).
 *
 * RESID is a key-ID-style UUID. Prints the outcome's stable error name
 * ("ok" or e.g. "already_supplied"), then for reserve and alloc the
 * key IDs, one per line. Exit 0 when the KM answered (whatever it said),
 * 1 when it could not be asked. */
#include "qkdn_ak.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_msg.h"
#include "qkdn_sp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEADLINE_MS 5000

static int
name(qkdn_name out, const char *s)
{
	if (strlen(s) >= sizeof(qkdn_name))
		return -1;
	snprintf(out, sizeof(qkdn_name), "%s", s);
	return 0;
}

static int
build(int argc, char **argv, struct qkdn_msg *m)
{
	qkdn_key_id id;
	if (argc == 5 && strcmp(argv[2], "linkstate") == 0) {
		m->type = QKDN_LINK_STATE;
		m->u.link_state.seq = strtoull(argv[4], NULL, 10);
		m->u.link_state.max_age_ms = 5000;
		return name(m->u.link_state.origin, argv[3]);
	}
	if (qkdn_key_id_parse(argv[3], &id) != 0)
		return -1;
	if (argc == 9 && strcmp(argv[2], "reserve") == 0) {
		struct qkdn_reserve_req *q = &m->u.reserve_req;
		m->type = QKDN_RESERVE_REQ;
		memcpy(q->reservation_id.b, id.b, 16);
		q->count = (uint32_t)strtoul(argv[6], NULL, 10);
		q->bits = (uint32_t)strtoul(argv[7], NULL, 10);
		q->ttl_ms = (uint32_t)strtoul(argv[8], NULL, 10);
		return name(q->dst_node, argv[4]) | name(q->next_hop, argv[5]);
	}
	if (argc == 7 && strcmp(argv[2], "alloc") == 0) {
		struct qkdn_alloc_req *q = &m->u.alloc_req;
		m->type = QKDN_ALLOC_REQ;
		memcpy(q->reservation_id.b, id.b, 16);
		return name(q->dst_node, argv[4]) | name(q->src_sae, argv[5]) |
		       name(q->dst_sae, argv[6]);
	}
	if (argc == 4 && strcmp(argv[2], "release") == 0) {
		m->type = QKDN_RESERVE_RELEASE;
		memcpy(m->u.reserve_release.reservation_id.b, id.b, 16);
		return 0;
	}
	return -1;
}

static void
print_ids(const struct qkdn_ids *ids)
{
	for (uint32_t i = 0; i < ids->n; i++) {
		char text[QKDN_KEY_ID_TEXT_LEN];
		qkdn_key_id k;
		memcpy(k.b, ids->v[i].b, 16);
		qkdn_key_id_format(&k, text);
		printf("%s\n", text);
	}
}

int
main(int argc, char **argv)
{
	struct qkdn_msg req = {0}, rsp;
	struct qkdn_buf out = {0};
	struct qkdn_sp_conn c = {.fd = -1};
	uint8_t *in = NULL;
	size_t in_len = 0;
	if (argc < 4 || build(argc, argv, &req) != 0) {
		fprintf(stderr, "usage: ck_send KX_URL reserve RESID DST NEXT "
		                "COUNT BITS TTL_MS | alloc RESID DST SRC_SAE "
		                "DST_SAE | release RESID | linkstate ORIGIN "
		                "SEQ\n");
		return 2;
	}
	uint64_t deadline = qkdn_now_ms() + DEADLINE_MS;
	struct qkdn_sp_tls *tls = NULL;
	char why[256];
	if (getenv("CK_SEND_CERT") != NULL) {
		if (qkdn_sp_tls_new(
		        &tls, getenv("CK_SEND_CA"), getenv("CK_SEND_CERT"),
		        getenv("CK_SEND_KEY"), why, sizeof(why)) != 0) {
			fprintf(stderr, "ck_send: %s\n", why);
			return 1;
		}
		c.tls = tls;
		c.peer_name = getenv("CK_SEND_PEER");
	}
	int rv = qkdn_msg_encode(&req, qkdn_buf_write, &out);
	if (rv == 0 && (rv = qkdn_sp_connect(&c, argv[1], deadline)) == 0)
		rv = qkdn_sp_call(&c, out.data, out.len, &in, &in_len,
		                  QKDN_MSG_BYTES_MAX, deadline);
	qkdn_sp_close(&c);
	qkdn_sp_tls_free(tls);
	qkdn_buf_free(&out);
	if (rv == 0)
		rv = qkdn_msg_decode(in, in_len, &rsp, NULL);
	free(in);
	if (rv != 0) {
		fprintf(stderr, "ck_send: %s\n", qkdn_strerror(rv));
		return 1;
	}
	switch (rsp.type) {
	case QKDN_ERROR:
		printf("%s\n", qkdn_errname(-rsp.u.error.code));
		break;
	case QKDN_RESERVE_RSP:
		printf("%s\n", qkdn_errname(rsp.u.reserve_rsp.result));
		print_ids(&rsp.u.reserve_rsp.ids);
		break;
	case QKDN_ALLOC_RSP:
		printf("%s\n", qkdn_errname(rsp.u.alloc_rsp.result));
		print_ids(&rsp.u.alloc_rsp.ids);
		break;
	case QKDN_ACK:
		printf("%s\n", qkdn_errname(rsp.u.ack.result));
		break;
	default:
		printf("unexpected %s\n", qkdn_msg_type_name(rsp.type));
	}
	qkdn_msg_clear(&rsp);
	return 0;
}
