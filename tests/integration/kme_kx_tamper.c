/* Sits on Kx between the two KMs of a link fed by ETSI 014 KMEs, where an
 * attacker on the path would (KM A's network file names it as KM B's Kx
 * address), and tampers with the key ID lists the master end sends. Each
 * KME_KEYS_AUTH is handled by the next mode of a list (the last repeats):
 *   forward    pass it on unchanged
 *   swap-ids   swap the last two key IDs (all still valid at the KME)
 *   alter-id   flip a bit of the last key ID (unknown at the KME)
 *   alter-blk  add one to the block ID
 *   forge-tag  replace the tag by a random one
 * Every other message is passed on. Prints "ready", then per KME_KEYS_AUTH
 * "keys N: MODE: REPLY" where REPLY is "ok" (an ACK of success) or the
 * stable name of the error the peer answered. Exits after 60 s.
 *
 *   kme_kx_tamper LISTEN_URL PEER_URL MODE[,MODE...] */
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_msg.h"
#include "qkdn_rpc.h"
#include "qkdn_sp.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIFETIME_MS 60000
#define CALL_MS     5000

/* The peer's reply to the request bytes req (len). */
static int
forward(const char *peer, const void *req, size_t len, nng_msg **rsp)
{
	struct qkdn_sp_conn c = {.fd = -1};
	uint64_t deadline = qkdn_now_ms() + CALL_MS;
	uint8_t *in = NULL;
	size_t in_len = 0;
	int rv = qkdn_sp_connect(&c, peer, deadline);
	if (rv == 0)
		rv = qkdn_sp_call(&c, req, len, &in, &in_len,
		                  QKDN_MSG_BYTES_MAX, deadline);
	qkdn_sp_close(&c);
	if (rv == 0 && nng_msg_alloc(rsp, in_len) == 0)
		memcpy(nng_msg_body(*rsp), in, in_len);
	else if (rv == 0)
		rv = QKDN_E_NOMEM;
	free(in);
	return rv;
}

/* Apply mode to the KME_KEYS_AUTH auth (req_id id) and encode the result
 * into out. */
static int
tamper(const char *mode, const struct qkdn_msg *auth, struct qkdn_buf *out)
{
	const struct qkdn_kme_keys_auth *a = &auth->u.kme_keys_auth;
	struct qkdn_msg keys, m = *auth;
	struct qkdn_buf body = {0};
	uint8_t tag[16];
	int rv = qkdn_msg_decode(a->keys.ptr, a->keys.len, &keys, NULL);
	if (rv != 0)
		return rv;
	struct qkdn_kme_keys *k = &keys.u.kme_keys;
	uint32_t n = k->ids.n;
	if (strcmp(mode, "swap-ids") == 0 && n >= 2) {
		qkdn_uuid t = k->ids.v[n - 1];
		k->ids.v[n - 1] = k->ids.v[n - 2];
		k->ids.v[n - 2] = t;
	} else if (strcmp(mode, "alter-id") == 0) {
		k->ids.v[n - 1].b[15] ^= 1;
	} else if (strcmp(mode, "alter-blk") == 0) {
		k->block_id++;
	} else if (strcmp(mode, "forge-tag") == 0) {
		randombytes_buf(tag, sizeof(tag));
		m.u.kme_keys_auth.tag.ptr = tag;
		m.u.kme_keys_auth.tag.len = sizeof(tag);
	} else if (strcmp(mode, "forward") != 0) {
		rv = QKDN_E_BAD_REQUEST;
	}
	if (rv == 0)
		rv = qkdn_msg_encode(&keys, qkdn_buf_write, &body);
	if (rv == 0) {
		m.arena = NULL;
		m.u.kme_keys_auth.keys.ptr = body.data;
		m.u.kme_keys_auth.keys.len = (uint32_t)body.len;
		rv = qkdn_msg_encode(&m, qkdn_buf_write, out);
	}
	qkdn_buf_free(&body);
	qkdn_msg_clear(&keys);
	return rv;
}

/* "ok" for an ACK of success, else the error's stable name. */
static const char *
outcome(nng_msg *rsp)
{
	struct qkdn_msg r;
	static char name[64];
	if (qkdn_rpc_unpack(rsp, &r, NULL) != 0)
		return "undecodable";
	if (r.type == QKDN_ACK && r.u.ack.result == 0)
		snprintf(name, sizeof(name), "ok");
	else if (r.type == QKDN_ACK)
		snprintf(name, sizeof(name), "%s",
		         qkdn_errname(r.u.ack.result));
	else if (r.type == QKDN_ERROR)
		snprintf(name, sizeof(name), "%s",
		         qkdn_errname(-r.u.error.code));
	else
		snprintf(name, sizeof(name), "unexpected");
	qkdn_msg_clear(&r);
	return name;
}

int
main(int argc, char **argv)
{
	nng_socket s;
	char *modes[16];
	int n_modes = 0, rv, n = 0;
	if (argc != 4) {
		fprintf(stderr, "usage: kme_kx_tamper LISTEN_URL PEER_URL "
		                "MODE[,MODE...]\n");
		return 2;
	}
	for (char *m = strtok(argv[3], ","); m != NULL && n_modes < 16;
	     m = strtok(NULL, ","))
		modes[n_modes++] = m;
	if (n_modes == 0 || sodium_init() < 0)
		return 2;
	if ((rv = nng_rep0_open(&s)) != 0 ||
	    (rv = nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, LIFETIME_MS)) != 0 ||
	    (rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ,
	                              QKDN_MSG_BYTES_MAX)) != 0 ||
	    (rv = nng_listen(s, argv[1], NULL, 0)) != 0) {
		fprintf(stderr, "kme_kx_tamper: %s: %s\n", argv[1],
		        nng_strerror(rv));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	uint64_t end = qkdn_now_ms() + LIFETIME_MS;
	while (qkdn_now_ms() < end) {
		nng_msg *req, *rsp = NULL;
		struct qkdn_msg in;
		if (nng_recvmsg(s, &req, 0) != 0)
			break;
		if (qkdn_rpc_unpack(req, &in, NULL) != 0 ||
		    in.type != QKDN_KME_KEYS_AUTH) {
			if (forward(argv[2], nng_msg_body(req),
			            nng_msg_len(req), &rsp) == 0 &&
			    nng_sendmsg(s, rsp, 0) != 0)
				nng_msg_free(rsp);
			qkdn_msg_clear(&in);
			nng_msg_free(req);
			continue;
		}
		const char *mode = modes[n < n_modes ? n : n_modes - 1];
		struct qkdn_buf out = {0};
		n++;
		rv = tamper(mode, &in, &out);
		if (rv == 0)
			rv = forward(argv[2], out.data, out.len, &rsp);
		printf("keys %d: %s: %s\n", n, mode,
		       rv == 0 ? outcome(rsp) : qkdn_strerror(rv));
		fflush(stdout);
		if (rv == 0 && nng_sendmsg(s, rsp, 0) != 0)
			nng_msg_free(rsp);
		qkdn_buf_free(&out);
		qkdn_msg_clear(&in);
		nng_msg_free(req);
	}
	nng_close(s);
	return 0;
}
