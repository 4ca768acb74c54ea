/* The receive limits of the KM's servers (KM_AK_RECV_MAX, KM_KX_RECV_MAX)
 * hold the largest request each must accept, and stay well below what nng
 * would take by default: encode the worst case of each and compare. */
#include "ak.h"
#include "kx.h"
#include "qkdn_msg.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void
longest_name(qkdn_name dst, char c)
{
	memset(dst, c, QKDN_NAME_MAX - 1);
	dst[QKDN_NAME_MAX - 1] = '\0';
}

static size_t
encoded_size(const struct qkdn_msg *m)
{
	struct qkdn_buf b = {0};
	assert_int_equal(qkdn_msg_encode(m, qkdn_buf_write, &b), 0);
	size_t n = b.len;
	qkdn_buf_free(&b);
	return n;
}

/* A key request with ID naming the most keys, from the longest SAE name. */
static void
largest_ak_request(void **state)
{
	(void)state;
	struct qkdn_msg m = {.type = QKDN_KEY_REQ_ID, .req_id = UINT64_MAX};
	longest_name(m.u.key_req_id.sae, 's');
	m.u.key_req_id.ids.n = QKDN_KEYS_MAX;
	m.u.key_req_id.ids.v =
	    qkdn_msg_alloc(&m, QKDN_KEYS_MAX * sizeof(qkdn_uuid));
	assert_non_null(m.u.key_req_id.ids.v);
	memset(m.u.key_req_id.ids.v, 0xff, QKDN_KEYS_MAX * sizeof(qkdn_uuid));
	size_t n = encoded_size(&m);
	printf("largest Ak request: %zu bytes, limit %u\n", n, KM_AK_RECV_MAX);
	assert_true(n <= KM_AK_RECV_MAX);
	assert_true(n > KM_AK_RECV_MAX / 2); /* the limit is not loose */
	qkdn_msg_clear(&m);
}

/* A KEY_SYNC_AUTH carrying the most segments and requests a KM accepts. */
static void
largest_kx_request(void **state)
{
	(void)state;
	struct qkdn_msg m = {.type = QKDN_KEY_SYNC, .req_id = UINT64_MAX};
	struct qkdn_key_sync *ks = &m.u.key_sync;
	longest_name(ks->link, 'l');
	ks->segs.n = QKDN_SEGS_MAX;
	ks->segs.v = qkdn_msg_alloc(&m, QKDN_SEGS_MAX * sizeof(*ks->segs.v));
	assert_non_null(ks->segs.v);
	for (uint32_t i = 0; i < QKDN_SEGS_MAX; i++)
		ks->segs.v[i] = (struct qkdn_segment){
		    UINT64_MAX - i, QKDN_BLOCK_BYTES_MAX - 2, 1};
	ks->reqs.n = QKDN_KEYS_MAX;
	ks->reqs.v = qkdn_msg_alloc(&m, QKDN_KEYS_MAX * sizeof(*ks->reqs.v));
	assert_non_null(ks->reqs.v);
	for (uint32_t i = 0; i < QKDN_KEYS_MAX; i++) {
		struct qkdn_sync_req *r = &ks->reqs.v[i];
		longest_name(r->src_sae, 'a');
		longest_name(r->dst_sae, 'b');
		r->bits = 8192;
		r->ids.n = 1;
		r->ids.v = qkdn_msg_alloc(&m, sizeof(qkdn_uuid));
		assert_non_null(r->ids.v);
		memset(r->ids.v, 0xff, sizeof(qkdn_uuid));
	}
	struct qkdn_buf sync = {0};
	assert_int_equal(qkdn_msg_encode(&m, qkdn_buf_write, &sync), 0);
	qkdn_msg_clear(&m);
	uint8_t tag[16] = {0};
	struct qkdn_msg auth = {.type = QKDN_KEY_SYNC_AUTH,
	                        .req_id = UINT64_MAX};
	auth.u.key_sync_auth.sync =
	    (struct qkdn_bytes){(uint32_t)sync.len, sync.data};
	auth.u.key_sync_auth.tag = (struct qkdn_bytes){sizeof(tag), tag};
	size_t n = encoded_size(&auth);
	qkdn_buf_free(&sync);
	printf("largest Kx request: %zu bytes, limit %u\n", n, KM_KX_RECV_MAX);
	assert_true(n <= KM_KX_RECV_MAX);
	assert_true(n > KM_KX_RECV_MAX / 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(largest_ak_request),
	    cmocka_unit_test(largest_kx_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
