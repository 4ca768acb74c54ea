/* Sits between two KMs on Kx, where an attacker on the path would: KM A's
 * network file names this process as KM B's Kx address. Each KEY_SYNC_AUTH
 * it receives is handled by the next mode of a list (the last one
 * repeats):
 *   forward   pass it to the real KM B and its reply back (transparent)
 *   forge     answer at once with an acknowledgement of success, untagged
 *   forge-tag the same with a random 16-byte tag
 *   forge-done a KEY_RELAY_AUTH answered at once with a key relay
 *              completion notification of success, with a random tag
 * A forged acknowledgement or completion must never make KM A hand out
 * keys KM B (or the relay's destination) did not store. Status requests
 * (the sender's liveness probe of an idle link) are always passed on and
 * take no mode.
 *
 *   kx_mitm LISTEN_URL PEER_URL MODE[,MODE...]
 *
 * Prints "ready" once it listens, then one line per request handled. It
 * exits by itself after 60 s. */
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

/* The real peer's reply to req, as its bytes. */
static int
forward(const char *peer, nng_msg *req, nng_msg **rsp)
{
	struct qkdn_sp_conn c = {.fd = -1};
	uint64_t deadline = qkdn_now_ms() + CALL_MS;
	uint8_t *in = NULL;
	size_t in_len = 0;
	int rv = qkdn_sp_connect(&c, peer, deadline);
	if (rv == 0)
		rv = qkdn_sp_call(&c, nng_msg_body(req), nng_msg_len(req), &in,
		                  &in_len, QKDN_MSG_BYTES_MAX, deadline);
	qkdn_sp_close(&c);
	if (rv == 0 && nng_msg_alloc(rsp, in_len) == 0)
		memcpy(nng_msg_body(*rsp), in, in_len);
	else if (rv == 0)
		rv = QKDN_E_NOMEM;
	free(in);
	return rv;
}

static int
forge(nng_msg *req, bool with_tag, nng_msg **rsp)
{
	struct qkdn_msg in, ack = {.type = QKDN_ACK};
	uint8_t tag[16];
	int rv = qkdn_rpc_unpack(req, &in, NULL);
	if (rv != 0)
		return rv;
	ack.req_id = in.req_id;
	qkdn_msg_clear(&in);
	if (with_tag) {
		randombytes_buf(tag, sizeof(tag));
		ack.u.ack.tag.len = sizeof(tag);
		ack.u.ack.tag.ptr = tag;
	}
	return qkdn_rpc_pack(&ack, rsp);
}

/* A completion of success for the relay in req, under a random tag. */
static int
forge_done(nng_msg *req, nng_msg **rsp)
{
	struct qkdn_msg in, relay, done = {.type = QKDN_RELAY_DONE_NOTIF};
	uint8_t tag[16];
	int rv = qkdn_rpc_unpack(req, &in, NULL);
	if (rv != 0)
		return rv;
	if (in.type != QKDN_KEY_RELAY_AUTH ||
	    qkdn_msg_decode(in.u.key_relay_auth.relay.ptr,
	                    in.u.key_relay_auth.relay.len, &relay, NULL) != 0) {
		qkdn_msg_clear(&in);
		return QKDN_E_BAD_REQUEST;
	}
	done.req_id = in.req_id;
	done.u.relay_done_notif.relay_id = relay.u.key_relay.relay_id;
	done.u.relay_done_notif.ids = relay.u.key_relay.ids;
	randombytes_buf(tag, sizeof(tag));
	done.u.relay_done_notif.tag.len = sizeof(tag);
	done.u.relay_done_notif.tag.ptr = tag;
	rv = qkdn_rpc_pack(&done, rsp);
	qkdn_msg_clear(&relay);
	qkdn_msg_clear(&in);
	return rv;
}

/* Whether req is a status request (passed on, outside the mode list). */
static bool
is_status(nng_msg *req)
{
	struct qkdn_msg in;
	if (qkdn_rpc_unpack(req, &in, NULL) != 0)
		return false;
	bool status = in.type == QKDN_STATUS_REQ;
	qkdn_msg_clear(&in);
	return status;
}

int
main(int argc, char **argv)
{
	nng_socket s;
	char *modes[16];
	int n_modes = 0, rv;
	if (argc != 4) {
		fprintf(stderr, "usage: kx_mitm LISTEN_URL PEER_URL "
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
	    (rv = nng_listen(s, argv[1], NULL, 0)) != 0) {
		fprintf(stderr, "kx_mitm: %s: %s\n", argv[1], nng_strerror(rv));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	uint64_t end = qkdn_now_ms() + LIFETIME_MS;
	for (int i = 0; qkdn_now_ms() < end; i++) {
		nng_msg *req, *rsp = NULL;
		if (nng_recvmsg(s, &req, 0) != 0)
			break;
		if (is_status(req)) {
			if (forward(argv[2], req, &rsp) == 0 &&
			    nng_sendmsg(s, rsp, 0) != 0)
				nng_msg_free(rsp);
			nng_msg_free(req);
			i--;
			continue;
		}
		const char *mode = modes[i < n_modes ? i : n_modes - 1];
		if (strcmp(mode, "forge-done") == 0)
			rv = forge_done(req, &rsp);
		else if (strcmp(mode, "forward") == 0)
			rv = forward(argv[2], req, &rsp);
		else if (strcmp(mode, "forge") == 0 ||
		         strcmp(mode, "forge-tag") == 0)
			rv = forge(req, strcmp(mode, "forge-tag") == 0, &rsp);
		else
			rv = QKDN_E_BAD_REQUEST;
		nng_msg_free(req);
		printf("request %d: %s: %s\n", i + 1, mode, qkdn_strerror(rv));
		fflush(stdout);
		if (rv == 0 && nng_sendmsg(s, rsp, 0) != 0)
			nng_msg_free(rsp);
	}
	nng_close(s);
	return 0;
}
