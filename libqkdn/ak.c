/* Ak client: the application side of key supply (Q.4160 I.1 steps 1-2 and
 * 4-5). It speaks nng's REQ/REP wire protocol itself (qkdn_sp.h) over a
 * small pool of connections, so it starts no threads, is safe to use after
 * fork() (a child drops the connections it inherited), and costs one
 * blocking round trip per call. */
#include "qkdn_ak.h"

#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_fork.h"
#include "qkdn_msg.h"
#include "qkdn_sp.h"

#include <assert.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POOL_MAX 16 /* idle connections kept */

/* The public limits are the codec's, spelt in the API's own terms; the
 * key ID is a UUID, so arrays of either have the same layout. */
static_assert(QKDN_AK_NAME_MAX == QKDN_NAME_MAX, "name size");
static_assert(QKDN_AK_KEY_BYTES_MAX == QKDN_KEY_BYTES_MAX, "key size");
static_assert(QKDN_AK_KEYS_MAX == QKDN_KEYS_MAX, "keys per call");
static_assert(sizeof(qkdn_key_id) == sizeof(qkdn_uuid), "key ID size");

struct qkdn_ak {
	struct qkdn_fork_obj fork; /* lock held across fork() */
	char url[256];
	qkdn_name sae;
	int timeout_ms;
	pthread_mutex_t mtx;
	pid_t pid; /* the process the idle connections belong to */
	size_t n_idle;
	struct qkdn_sp_conn idle[POOL_MAX];
};

static _Thread_local char last_error[2 * QKDN_REASON_MAX] = "no error";

static int
fail(int code, const char *reason)
{
	snprintf(last_error, sizeof(last_error), "%s: %s", qkdn_strerror(code),
	         reason);
	return code;
}

const char *
qkdn_ak_last_error(void)
{
	return last_error;
}

int
qkdn_ak_open(struct qkdn_ak **out, const char *km_url, const char *sae,
             int timeout_ms)
{
	struct qkdn_ak *ak;
	if (strncmp(km_url, "ipc://", 6) != 0 &&
	    strncmp(km_url, "tcp://", 6) != 0)
		return fail(QKDN_E_CONFIG,
		            "KM address must be ipc://PATH or tcp://HOST:PORT");
	if (strlen(km_url) >= sizeof(ak->url))
		return fail(QKDN_E_CONFIG, "KM address too long");
	if ((ak = calloc(1, sizeof(*ak))) == NULL)
		return fail(QKDN_E_NOMEM, "allocating the Ak handle");
	if (qkdn_name_set(ak->sae, sae) != 0) {
		free(ak);
		return fail(QKDN_E_BAD_REQUEST, "SAE ID must be 1..63 bytes");
	}
	snprintf(ak->url, sizeof(ak->url), "%s", km_url);
	ak->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	ak->pid = getpid();
	pthread_mutex_init(&ak->mtx, NULL);
	/* so that fork() never leaves a child with the handle's lock held
	 * by a thread that does not exist there */
	ak->fork.mtx = &ak->mtx;
	qkdn_fork_register(&ak->fork);
	*out = ak;
	return 0;
}

void
qkdn_ak_close(struct qkdn_ak *ak)
{
	if (ak == NULL)
		return;
	qkdn_fork_unregister(&ak->fork);
	for (size_t i = 0; i < ak->n_idle; i++)
		qkdn_sp_close(&ak->idle[i]);
	pthread_mutex_destroy(&ak->mtx);
	free(ak);
}

/* An idle connection of this process, or a new one. */
static int
take_conn(struct qkdn_ak *ak, struct qkdn_sp_conn *c, uint64_t deadline)
{
	pthread_mutex_lock(&ak->mtx);
	if (ak->pid != getpid()) {
		/* forked: the parent owns those connections */
		for (size_t i = 0; i < ak->n_idle; i++)
			qkdn_sp_close(&ak->idle[i]);
		ak->n_idle = 0;
		ak->pid = getpid();
	}
	if (ak->n_idle > 0) {
		*c = ak->idle[--ak->n_idle];
		pthread_mutex_unlock(&ak->mtx);
		return 0;
	}
	pthread_mutex_unlock(&ak->mtx);
	return qkdn_sp_connect(c, ak->url, deadline);
}

static void
give_conn(struct qkdn_ak *ak, struct qkdn_sp_conn *c)
{
	pthread_mutex_lock(&ak->mtx);
	if (ak->pid == getpid() && ak->n_idle < POOL_MAX) {
		ak->idle[ak->n_idle++] = *c;
		c = NULL;
	}
	pthread_mutex_unlock(&ak->mtx);
	if (c != NULL)
		qkdn_sp_close(c);
}

static int
call(struct qkdn_ak *ak, const struct qkdn_msg *req, struct qkdn_msg *rsp,
     uint32_t want_type)
{
	struct qkdn_buf out = {0};
	struct qkdn_sp_conn c;
	struct qkdn_decode_error err = {0};
	uint64_t deadline = qkdn_now_ms() + (uint64_t)ak->timeout_ms;
	uint8_t *in = NULL;
	size_t in_len = 0;
	int rv;

	memset(rsp, 0, sizeof(*rsp));
	if ((rv = qkdn_msg_encode(req, qkdn_buf_write, &out)) != 0) {
		qkdn_buf_free(&out);
		return fail(rv, "request could not be encoded");
	}
	if ((rv = take_conn(ak, &c, deadline)) != 0) {
		qkdn_buf_free(&out);
		return fail(rv, rv == QKDN_E_TIMEOUT
		                    ? "KM did not accept a connection in time"
		                    : "cannot connect to the KM");
	}
	rv = qkdn_sp_call(&c, out.data, out.len, &in, &in_len,
	                  QKDN_MSG_BYTES_MAX, deadline);
	qkdn_buf_free(&out);
	if (rv != 0) {
		qkdn_sp_close(&c);
		return fail(rv, rv == QKDN_E_TIMEOUT
		                    ? "no reply from the KM within the deadline"
		                    : "connection to the KM failed");
	}
	give_conn(ak, &c);
	rv = qkdn_msg_decode(in, in_len, rsp, &err);
	sodium_memzero(in, in_len);
	free(in);
	if (rv != 0)
		return fail(rv, err.reason);
	if (rsp->type == QKDN_ERROR) {
		rv = -rsp->u.error.code;
		fail(rv, rsp->u.error.reason);
		qkdn_msg_clear(rsp);
		return rv;
	}
	if (rsp->type != want_type) {
		qkdn_msg_clear(rsp);
		return fail(QKDN_E_BAD_REQUEST,
		            "KM answered with the wrong message type");
	}
	return 0;
}

void
qkdn_key_id_format(const qkdn_key_id *id, char out[QKDN_KEY_ID_TEXT_LEN])
{
	qkdn_uuid u;
	memcpy(u.b, id->b, sizeof(u.b));
	qkdn_uuid_format(&u, out);
}

int
qkdn_key_id_parse(const char *text, qkdn_key_id *out)
{
	qkdn_uuid u;
	int rv = qkdn_uuid_parse(text, &u);
	if (rv == 0)
		memcpy(out->b, u.b, sizeof(out->b));
	return rv;
}

/* Copy count keys out of a response, checking it is the one asked for. */
static int
take_keys(const struct qkdn_keys *keys, uint32_t count, uint32_t bytes,
          const qkdn_key_id *ids, struct qkdn_ak_key *out)
{
	if (keys->n != count)
		return fail(QKDN_E_BAD_REQUEST,
		            "KM returned a different number of keys");
	for (uint32_t i = 0; i < count; i++) {
		const struct qkdn_key *k = &keys->v[i];
		if ((bytes != 0 && k->len != bytes) ||
		    (ids != NULL &&
		     memcmp(k->id.b, ids[i].b, sizeof(ids[i].b)) != 0)) {
			qkdn_ak_keys_wipe(out, i);
			return fail(QKDN_E_BAD_REQUEST,
			            "KM returned keys other than asked for");
		}
		memcpy(out[i].id.b, k->id.b, sizeof(out[i].id.b));
		out[i].len = k->len;
		memcpy(out[i].bytes, k->bytes, k->len);
	}
	return 0;
}

int
qkdn_ak_get_keys(struct qkdn_ak *ak, const char *dst_sae, uint32_t bits,
                 uint32_t count, struct qkdn_ak_key *out)
{
	struct qkdn_msg req = {.type = QKDN_KEY_REQ}, rsp;
	int rv;
	memcpy(req.u.key_req.sae, ak->sae, sizeof(ak->sae));
	if (qkdn_name_set(req.u.key_req.dst_sae, dst_sae) != 0)
		return fail(QKDN_E_BAD_REQUEST,
		            "destination SAE ID must be 1..63 bytes");
	if (bits == 0 || bits % 8 != 0 || bits > QKDN_KEY_BYTES_MAX * 8 ||
	    count == 0 || count > QKDN_KEYS_MAX)
		return fail(QKDN_E_RANGE, "key size must be a multiple of 8 "
		                          "in 8..8192 bits and count 1..4096");
	req.u.key_req.bits = bits;
	req.u.key_req.count = count;
	if ((rv = call(ak, &req, &rsp, QKDN_KEY_RSP)) != 0)
		return rv;
	rv = take_keys(&rsp.u.key_rsp.keys, count, bits / 8, NULL, out);
	qkdn_msg_clear(&rsp);
	return rv;
}

int
qkdn_ak_get_keys_by_id(struct qkdn_ak *ak, const qkdn_key_id *ids,
                       uint32_t count, struct qkdn_ak_key *out)
{
	struct qkdn_msg req = {.type = QKDN_KEY_REQ_ID}, rsp;
	qkdn_uuid *v;
	int rv;
	if (count == 0 || count > QKDN_KEYS_MAX)
		return fail(QKDN_E_RANGE, "count must be 1..4096");
	memcpy(req.u.key_req_id.sae, ak->sae, sizeof(ak->sae));
	/* copied, not cast: the message's IDs are another type */
	if ((v = qkdn_msg_alloc(&req, count * sizeof(*v))) == NULL)
		return fail(QKDN_E_NOMEM, "room for the key IDs");
	memcpy(v, ids, count * sizeof(*v));
	req.u.key_req_id.ids.n = count;
	req.u.key_req_id.ids.v = v;
	rv = call(ak, &req, &rsp, QKDN_KEY_RSP);
	qkdn_msg_clear(&req);
	if (rv != 0)
		return rv;
	rv = take_keys(&rsp.u.key_rsp.keys, count, 0, ids, out);
	qkdn_msg_clear(&rsp);
	return rv;
}

int
qkdn_ak_status(struct qkdn_ak *ak, struct qkdn_ak_status *out)
{
	struct qkdn_msg req = {.type = QKDN_STATUS_REQ}, rsp;
	const struct qkdn_status_rsp *s = &rsp.u.status_rsp;
	int rv;
	memset(out, 0, sizeof(*out));
	if ((rv = call(ak, &req, &rsp, QKDN_STATUS_RSP)) != 0)
		return rv;
	if (s->n_links > 0 &&
	    (out->links = calloc(s->n_links, sizeof(*out->links))) == NULL) {
		qkdn_msg_clear(&rsp);
		return fail(QKDN_E_NOMEM, "room for the links' status");
	}
	memcpy(out->node, s->node, sizeof(out->node));
	out->supplied = s->keys_supplied;
	out->pending = s->keys_pending;
	out->errors = s->errors;
	out->ak_errors = s->ak_errors;
	out->kx_errors = s->kx_errors;
	out->n_links = s->n_links;
	for (uint32_t i = 0; i < s->n_links; i++) {
		const struct qkdn_link_status *from = &s->links[i];
		struct qkdn_ak_link_status *to = &out->links[i];
		memcpy(to->link, from->link, sizeof(to->link));
		memcpy(to->peer, from->peer, sizeof(to->peer));
		to->out_bytes = from->out_bytes;
		to->in_bytes = from->in_bytes;
		to->blocks = from->blocks;
		to->up = from->up != 0;
		to->in_sync = from->out_of_sync == 0;
		to->sync_failures = from->sync_failures;
	}
	qkdn_msg_clear(&rsp);
	return 0;
}

void
qkdn_ak_status_free(struct qkdn_ak_status *st)
{
	free(st->links);
	memset(st, 0, sizeof(*st));
}

void
qkdn_ak_keys_wipe(struct qkdn_ak_key *keys, size_t n)
{
	sodium_memzero(keys, n * sizeof(*keys));
}
