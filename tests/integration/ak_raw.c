/* Throws random and malformed bytes at a KM's Ak socket and checks that
 * every one gets a well-formed ERROR reply naming a cause (the crafted ones
 * with their exact code), and that the KM still answers a status request
 * afterwards. Every input sent gets exactly one error reply, so the KM's
 * error counter grows by N_RANDOM + the crafted count printed at the end. */
#include "qkdn_err.h"
#include "qkdn_msg.h"
#include "qkdn_rpc.h"

#include <msgpack.h>
#include <nng/nng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static unsigned crafted;

/* Send raw bytes, expect an ERROR reply with the expected code (0 = any). */
static void
expect_error(nng_socket s, const void *buf, size_t len, int want,
             const char *what)
{
	struct qkdn_msg rsp;
	void *reply = NULL;
	size_t rlen = 0;
	int rv = nng_send(s, (void *)buf, len, 0);
	if (rv == 0)
		rv = nng_recv(s, &reply, &rlen, NNG_FLAG_ALLOC);
	if (rv != 0) {
		printf("FAIL %s: no reply (%s)\n", what, nng_strerror(rv));
		failures++;
		return;
	}
	rv = qkdn_msg_decode(reply, rlen, &rsp, NULL);
	nng_free(reply, rlen);
	if (rv != 0 || rsp.type != QKDN_ERROR || rsp.u.error.code <= 0 ||
	    rsp.u.error.reason[0] == 0 ||
	    (want != 0 && -rsp.u.error.code != want)) {
		printf("FAIL %s: reply type %u code %d\n", what, rsp.type,
		       rsp.u.error.code);
		failures++;
	}
	qkdn_msg_clear(&rsp);
}

static void
pack_envelope(msgpack_packer *pk, uint64_t version, uint64_t type)
{
	msgpack_pack_array(pk, 4);
	msgpack_pack_uint64(pk, version);
	msgpack_pack_uint64(pk, type);
	msgpack_pack_uint64(pk, 7);
}

static void
pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

int
main(int argc, char **argv)
{
	nng_socket s;
	unsigned n_random = argc > 2 ? (unsigned)atoi(argv[2]) : 500;
	if (argc < 2) {
		fprintf(stderr, "usage: ak_raw AK_URL [N_RANDOM]\n");
		return 2;
	}
	if (qkdn_rpc_dial(&s, argv[1]) != 0)
		return 1;
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 3000);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 3000);

	srand(4160);
	for (unsigned i = 0; i < n_random; i++) {
		uint8_t buf[600];
		size_t len = (size_t)rand() % sizeof(buf);
		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)rand();
		if (i % 3 == 0 && len > 4) /* often a plausible envelope */
			memcpy(buf, "\x94\x01\x01\x00", 4);
		expect_error(s, buf, len, 0, "random bytes");
	}

	msgpack_sbuffer sb;
	msgpack_packer pk;
	/* hand-built malformed messages, each with its expected code */
#define CASE(want, what, ...)                                                  \
	do {                                                                   \
		msgpack_sbuffer_init(&sb);                                     \
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);          \
		__VA_ARGS__;                                                   \
		expect_error(s, sb.data, sb.size, want, what);                 \
		crafted++;                                                     \
		msgpack_sbuffer_destroy(&sb);                                  \
	} while (0)

	CASE(QKDN_E_VERSION, "wrong version", pack_envelope(&pk, 9, 1);
	     msgpack_pack_map(&pk, 0));
	CASE(QKDN_E_UNKNOWN_TYPE, "unknown type", pack_envelope(&pk, 1, 999);
	     msgpack_pack_map(&pk, 0));
	CASE(QKDN_E_MISSING_FIELD, "missing fields", pack_envelope(&pk, 1, 1);
	     msgpack_pack_map(&pk, 0));
	CASE(QKDN_E_WRONG_TYPE, "bits as string", pack_envelope(&pk, 1, 1);
	     msgpack_pack_map(&pk, 4); pack_str(&pk, "sae");
	     pack_str(&pk, "alice"); pack_str(&pk, "dst"); pack_str(&pk, "bob");
	     pack_str(&pk, "bits"); pack_str(&pk, "256"); pack_str(&pk, "n");
	     msgpack_pack_uint32(&pk, 1));
	CASE(QKDN_E_RANGE, "zero keys", pack_envelope(&pk, 1, 1);
	     msgpack_pack_map(&pk, 4); pack_str(&pk, "sae");
	     pack_str(&pk, "alice"); pack_str(&pk, "dst"); pack_str(&pk, "bob");
	     pack_str(&pk, "bits"); msgpack_pack_uint32(&pk, 256);
	     pack_str(&pk, "n"); msgpack_pack_uint32(&pk, 0));
	CASE(QKDN_E_RANGE, "key bits above the limit", pack_envelope(&pk, 1, 1);
	     msgpack_pack_map(&pk, 4); pack_str(&pk, "sae");
	     pack_str(&pk, "alice"); pack_str(&pk, "dst"); pack_str(&pk, "bob");
	     pack_str(&pk, "bits"); msgpack_pack_uint32(&pk, 8200);
	     pack_str(&pk, "n"); msgpack_pack_uint32(&pk, 1));
	CASE(QKDN_E_RANGE, "key bits not whole bytes", pack_envelope(&pk, 1, 1);
	     msgpack_pack_map(&pk, 4); pack_str(&pk, "sae");
	     pack_str(&pk, "alice"); pack_str(&pk, "dst"); pack_str(&pk, "bob");
	     pack_str(&pk, "bits"); msgpack_pack_uint32(&pk, 260);
	     pack_str(&pk, "n"); msgpack_pack_uint32(&pk, 1));
	CASE(QKDN_E_TRUNCATED, "huge array header",
	     msgpack_pack_array(&pk, 0xffffffffu));
	CASE(QKDN_E_NOT_AUTHORISED, "unknown SAE", pack_envelope(&pk, 1, 3);
	     msgpack_pack_map(&pk, 2); pack_str(&pk, "sae");
	     pack_str(&pk, "nobody"); pack_str(&pk, "ids");
	     msgpack_pack_array(&pk, 1);
	     msgpack_pack_bin_with_body(&pk, "0123456789abcdef", 16));
	CASE(QKDN_E_UNSUPPORTED, "Kx message on Ak", pack_envelope(&pk, 1, 105);
	     msgpack_pack_map(&pk, 1); pack_str(&pk, "res");
	     msgpack_pack_int32(&pk, 0));

	struct qkdn_msg req = {.type = QKDN_STATUS_REQ}, rsp;
	if (qkdn_rpc_call(s, &req, &rsp, 3000, NULL) != 0 ||
	    rsp.type != QKDN_STATUS_RSP) {
		printf("FAIL: KM no longer answers status\n");
		failures++;
	} else {
		printf("status after abuse: errors counted %llu\n",
		       (unsigned long long)rsp.u.status_rsp.errors);
	}
	qkdn_msg_clear(&rsp);
	nng_close(s);
	printf("%s: %u random and %u crafted inputs\n",
	       failures ? "FAILED" : "ok", n_random, crafted);
	return failures ? 1 : 0;
}
