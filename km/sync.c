#include "sync.h"

#include "qkdn_err.h"

#include <sodium.h>
#include <stdio.h>

_Static_assert(KM_SYNC_MAC_KEY_BYTES == crypto_onetimeauth_KEYBYTES,
               "the MAC key is one Poly1305 key");

static void
mac(uint8_t tag[crypto_onetimeauth_BYTES], const uint8_t *sync, size_t sync_len,
    const uint8_t *bits, size_t len)
{
	crypto_onetimeauth_state st;
	crypto_onetimeauth_init(&st, bits);
	crypto_onetimeauth_update(&st, sync, sync_len);
	crypto_onetimeauth_update(&st, bits + KM_SYNC_MAC_KEY_BYTES,
	                          len - KM_SYNC_MAC_KEY_BYTES);
	crypto_onetimeauth_final(&st, tag);
	sodium_memzero(&st, sizeof(st));
}

int
km_sync_seal(const struct qkdn_msg *sync, const uint8_t *bits, size_t len,
             struct qkdn_buf *out)
{
	struct qkdn_buf body = {0};
	uint8_t tag[crypto_onetimeauth_BYTES];
	if (len < KM_SYNC_MAC_KEY_BYTES)
		return QKDN_E_INTERNAL;
	int rv = qkdn_msg_encode(sync, qkdn_buf_write, &body);
	if (rv == 0) {
		mac(tag, body.data, body.len, bits, len);
		struct qkdn_msg m = {.type = QKDN_KEY_SYNC_AUTH,
		                     .req_id = sync->req_id};
		m.u.key_sync_auth.sync.len = (uint32_t)body.len;
		m.u.key_sync_auth.sync.ptr = body.data;
		m.u.key_sync_auth.tag.len = sizeof(tag);
		m.u.key_sync_auth.tag.ptr = tag;
		rv = qkdn_msg_encode(&m, qkdn_buf_write, out);
	}
	qkdn_buf_free(&body);
	return rv;
}

int
km_sync_unwrap(const struct qkdn_key_sync_auth *auth, struct qkdn_msg *sync,
               struct qkdn_decode_error *err)
{
	int rv = qkdn_msg_decode(auth->sync.ptr, auth->sync.len, sync, err);
	if (rv == 0 && sync->type != QKDN_KEY_SYNC) {
		if (err != NULL)
			snprintf(err->reason, sizeof(err->reason),
			         "a key sync carries a %s",
			         qkdn_msg_type_name(sync->type));
		qkdn_msg_clear(sync);
		rv = QKDN_E_BAD_REQUEST;
	}
	return rv;
}

int
km_sync_verify(const struct qkdn_key_sync_auth *auth, const uint8_t *bits,
               size_t len)
{
	uint8_t tag[crypto_onetimeauth_BYTES];
	if (auth->tag.len != sizeof(tag) || len < KM_SYNC_MAC_KEY_BYTES)
		return QKDN_E_AUTH_FAILED;
	mac(tag, auth->sync.ptr, auth->sync.len, bits, len);
	int rv =
	    crypto_verify_16(tag, auth->tag.ptr) == 0 ? 0 : QKDN_E_AUTH_FAILED;
	sodium_memzero(tag, sizeof(tag));
	return rv;
}
