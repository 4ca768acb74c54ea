#include "sync.h"

#include "qkdn_err.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

_Static_assert(KM_SYNC_MAC_KEY_BYTES == crypto_onetimeauth_KEYBYTES,
               "the MAC key is one Poly1305 key");
_Static_assert(crypto_onetimeauth_BYTES == 16, "a tag is 16 bytes");

void
km_mac_bits_tag(uint8_t tag[16], const uint8_t *msg, size_t msg_len,
                const uint8_t *bits, size_t len)
{
	crypto_onetimeauth_state st;
	crypto_onetimeauth_init(&st, bits);
	crypto_onetimeauth_update(&st, msg, msg_len);
	crypto_onetimeauth_update(&st, bits + KM_SYNC_MAC_KEY_BYTES,
	                          len - KM_SYNC_MAC_KEY_BYTES);
	crypto_onetimeauth_final(&st, tag);
	sodium_memzero(&st, sizeof(st));
}

int
km_sync_seal(const struct qkdn_msg *sync, const uint8_t *bits, size_t len,
             struct qkdn_buf *out, uint8_t tag_out[16])
{
	struct qkdn_buf body = {0};
	uint8_t tag[crypto_onetimeauth_BYTES];
	if (len < KM_SYNC_KEYS_AT)
		return QKDN_E_INTERNAL;
	int rv = qkdn_msg_encode(sync, qkdn_buf_write, &body);
	if (rv == 0) {
		km_mac_bits_tag(tag, body.data, body.len, bits, len);
		struct qkdn_msg m = {.type = QKDN_KEY_SYNC_AUTH,
		                     .req_id = sync->req_id};
		m.u.key_sync_auth.sync.len = (uint32_t)body.len;
		m.u.key_sync_auth.sync.ptr = body.data;
		m.u.key_sync_auth.tag.len = sizeof(tag);
		m.u.key_sync_auth.tag.ptr = tag;
		rv = qkdn_msg_encode(&m, qkdn_buf_write, out);
		memcpy(tag_out, tag, sizeof(tag));
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
	if (auth->tag.len != sizeof(tag) || len < KM_SYNC_KEYS_AT)
		return QKDN_E_AUTH_FAILED;
	km_mac_bits_tag(tag, auth->sync.ptr, auth->sync.len, bits, len);
	int rv =
	    crypto_verify_16(tag, auth->tag.ptr) == 0 ? 0 : QKDN_E_AUTH_FAILED;
	sodium_memzero(tag, sizeof(tag));
	return rv;
}

void
km_sync_ack_tag(uint8_t ack[16], const uint8_t sync_tag[16],
                const uint8_t *ack_key)
{
	crypto_onetimeauth(ack, sync_tag, 16, ack_key);
}

int
km_sync_ack_verify(const uint8_t *ack, size_t ack_len,
                   const uint8_t sync_tag[16], const uint8_t *ack_key)
{
	if (ack == NULL || ack_len != crypto_onetimeauth_BYTES)
		return QKDN_E_AUTH_FAILED;
	return crypto_onetimeauth_verify(ack, sync_tag, 16, ack_key) == 0
	           ? 0
	           : QKDN_E_AUTH_FAILED;
}

void
km_mac_tag(uint8_t tag[16], const uint8_t *msg, size_t len,
           const uint8_t *mac_key)
{
	crypto_onetimeauth(tag, msg, len, mac_key);
}

void
km_xor(uint8_t *dst, const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t x, y;
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		x ^= y;
		memcpy(dst + i, &x, 8);
	}
	for (; i < n; i++)
		dst[i] = a[i] ^ b[i];
}

int
km_mac_verify(const uint8_t *tag, size_t tag_len, const uint8_t *msg,
              size_t len, const uint8_t *mac_key)
{
	if (tag == NULL || tag_len != crypto_onetimeauth_BYTES)
		return QKDN_E_AUTH_FAILED;
	return crypto_onetimeauth_verify(tag, msg, len, mac_key) == 0
	           ? 0
	           : QKDN_E_AUTH_FAILED;
}
