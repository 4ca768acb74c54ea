/* libFuzzer target for the qkdn wire codec. Any input must either be refused
 * with a known error code and a reason, leaving the message cleared, or
 * decode to a message that encodes, decodes again, and encodes to the same
 * bytes (the encoder emits one canonical form). Built and run by
 * scripts/fuzz.sh. */
#include "qkdn_err.h"
#include "qkdn_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
die(const char *what, int rv, const struct qkdn_decode_error *err)
{
	fprintf(stderr, "fuzz_decode: %s (rv %d %s; reason '%s')\n", what, rv,
	        qkdn_strerror(rv), err != NULL ? err->reason : "");
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qkdn_msg m, m2;
	struct qkdn_decode_error err;
	struct qkdn_buf b1 = {0}, b2 = {0};
	int rv;

	memset(&err, 0, sizeof(err));
	rv = qkdn_msg_decode(data, size, &m, &err);
	if (rv != 0) {
		if (rv >= 0 || rv <= QKDN_E_LAST_ || err.code != rv)
			die("decode failed with a bad code", rv, &err);
		if (err.reason[0] == 0 ||
		    memchr(err.reason, 0, sizeof(err.reason)) == NULL)
			die("decode failed without a reason", rv, &err);
		if (m.arena != NULL || m.type != 0)
			die("failed decode left the message set", rv, &err);
		return 0;
	}
	if (qkdn_msg_type_name(m.type) == NULL)
		die("decoded an unknown type", 0, NULL);

	if ((rv = qkdn_msg_encode(&m, qkdn_buf_write, &b1)) != 0)
		die("decoded message does not encode", rv, NULL);
	if ((rv = qkdn_msg_decode(b1.data, b1.len, &m2, &err)) != 0)
		die("encoded message does not decode", rv, &err);
	if (m2.type != m.type || m2.req_id != m.req_id)
		die("type or request id changed", 0, NULL);
	if ((rv = qkdn_msg_encode(&m2, qkdn_buf_write, &b2)) != 0)
		die("re-decoded message does not encode", rv, NULL);
	if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
		die("re-encoding differs", 0, NULL);

	qkdn_buf_free(&b1);
	qkdn_buf_free(&b2);
	qkdn_msg_clear(&m);
	qkdn_msg_clear(&m2);
	return 0;
}
