/* Ak client: the application side of key supply (Q.4160 I.1 steps 1-2 and
 * 4-5). It speaks nng's REQ/REP wire protocol itself (qkdn_sp.h) over a
 * small pool of connections, so it starts no threads, is safe to use after
 * fork() (a child drops the connections it inherited), and costs one
 * blocking round trip per call.
 *
 * A KM that cannot be reached must not stall the application (a TLS
 * server blocks a worker for each handshake): a connect is tried once,
 * not until the deadline, and once a call found the KM unreachable the
 * handle backs off. For BACKOFF_FIRST_MS, doubling to BACKOFF_MAX_MS
 * while the KM stays away, calls fail at once; after it one call at a
 * time probes the KM while the others still fail at once, and the first
 * answer from the KM ends the back-off.
 *
 * A tls+tcp:// KM: the handle holds the TLS credentials (loaded at open)
 * and the KM's expected name; qkdn_sp.h authenticates each connection. */
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

#define POOL_MAX         16 /* idle connections kept */
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS   30000

/* The public limits are the codec's, spelt in the API's own terms; the
 * key ID is a UUID, so arrays of either have the same layout. */
static_assert(QKDN_AK_NAME_MAX == QKDN_NAME_MAX, "name size");
static_assert(QKDN_AK_KEY_BYTES_MAX == QKDN_KEY_BYTES_MAX, "key size");
static_assert(QKDN_AK_KEYS_MAX == QKDN_KEYS_MAX, "keys per call");
static_assert(QKDN_AK_REASON_MAX == QKDN_REASON_MAX, "reason size");
static_assert(sizeof(qkdn_key_id) == sizeof(qkdn_uuid), "key ID size");

struct qkdn_ak {
	struct qkdn_fork_obj fork; /* lock held across fork() */
	char url[QKDN_SP_URL_MAX];
	qkdn_name sae;
	int timeout_ms;
	struct qkdn_sp_tls *tls; /* tls+tcp:// only; read-only once open */
	qkdn_name km_name;       /* "" : any KM certificate of the CA */
	pthread_mutex_t mtx;
	pid_t pid; /* the process the idle connections belong to */
	size_t n_idle;
	struct qkdn_sp_conn idle[POOL_MAX];
	/* back-off (under mtx; a forked child starts without one) */
	uint32_t backoff_ms; /* 0: the KM answered the last call */
	uint64_t hold_until; /* qkdn_now_ms() before which calls fail */
	bool probing;        /* a call is trying the KM */
	const char *cause;   /* why the KM was found unreachable */
};

static _Thread_local char last_error[2 * QKDN_REASON_MAX] = "no error";

static int
fail(int code, const char *reason)
{
	snprintf(last_error, sizeof(last_error), "%s: %s", qkdn_strerror(code),
	         reason);
	return code;
}

/* The failure of the SP client, with its reason. */
static int
fail_sp(int code, const char *what)
{
	char why[QKDN_REASON_MAX + 64];
	snprintf(why, sizeof(why), "%s: %s", what, qkdn_sp_last_error());
	return fail(code, why);
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
	struct qkdn_ak_opts o = {.timeout_ms = timeout_ms};
	return qkdn_ak_open_opts(out, km_url, sae, &o);
}

/* The TLS credentials and the KM's expected name, for tls+tcp://. */
static int
open_tls(struct qkdn_ak *ak, const struct qkdn_ak_opts *o)
{
	char why[QKDN_REASON_MAX];
	int rv;
	if (o->km_name != NULL && qkdn_name_set(ak->km_name, o->km_name) != 0)
		return fail(QKDN_E_CONFIG, "KM name must be 1..63 bytes");
	if (o->ca == NULL || o->cert == NULL || o->key == NULL)
		return fail(QKDN_E_CONFIG,
		            "a tls+tcp:// KM needs a CA, a certificate and a "
		            "key (ca, cert, key)");
	if ((rv = qkdn_sp_tls_new(&ak->tls, o->ca, o->cert, o->key, why,
	                          sizeof(why))) != 0)
		return fail(rv, why);
	return 0;
}

int
qkdn_ak_open_opts(struct qkdn_ak **out, const char *km_url, const char *sae,
                  const struct qkdn_ak_opts *opts)
{
	static const struct qkdn_ak_opts none = {0};
	const struct qkdn_ak_opts *o = opts != NULL ? opts : &none;
	bool tls = strncmp(km_url, "tls+tcp://", 10) == 0;
	struct qkdn_ak *ak;
	int rv;
	if (strncmp(km_url, "ipc://", 6) != 0 &&
	    strncmp(km_url, "tcp://", 6) != 0 && !tls)
		return fail(QKDN_E_CONFIG,
		            "KM address must be ipc://PATH, tcp://HOST:PORT "
		            "or tls+tcp://HOST:PORT");
	if (strlen(km_url) >= sizeof(ak->url))
		return fail(QKDN_E_CONFIG, "KM address too long");
	if ((ak = calloc(1, sizeof(*ak))) == NULL)
		return fail(QKDN_E_NOMEM, "allocating the Ak handle");
	if (qkdn_name_set(ak->sae, sae) != 0) {
		free(ak);
		return fail(QKDN_E_BAD_REQUEST, "SAE ID must be 1..63 bytes");
	}
	if (tls && (rv = open_tls(ak, o)) != 0) {
		free(ak);
		return rv;
	}
	snprintf(ak->url, sizeof(ak->url), "%s", km_url);
	ak->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
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
	/* in a fork() child, closing writes nothing to the parent's */
	for (size_t i = 0; i < ak->n_idle; i++)
		qkdn_sp_close(&ak->idle[i]);
	qkdn_sp_tls_free(ak->tls); /* after every connection made with it */
	pthread_mutex_destroy(&ak->mtx);
	free(ak);
}

/* Under mtx: drop the idle connections. */
static void
drop_idle(struct qkdn_ak *ak)
{
	for (size_t i = 0; i < ak->n_idle; i++)
		qkdn_sp_close(&ak->idle[i]);
	ak->n_idle = 0;
}

/* Under mtx: a forked child drops the parent's connections (the parent
 * owns them) and its back-off (the child's calls are its own). */
static void
check_fork(struct qkdn_ak *ak)
{
	if (ak->pid == getpid())
		return;
	drop_idle(ak);
	ak->pid = getpid();
	ak->backoff_ms = 0;
	ak->hold_until = 0;
	ak->probing = false;
}

/* Whether a call may contact the KM now; *probe when it is the one call
 * that tries a KM found unreachable. Fails at once while backing off. */
static int
admit(struct qkdn_ak *ak, bool *probe)
{
	char why[QKDN_REASON_MAX];
	uint64_t now = qkdn_now_ms();
	*probe = false;
	pthread_mutex_lock(&ak->mtx);
	check_fork(ak);
	if (ak->backoff_ms == 0) {
		pthread_mutex_unlock(&ak->mtx);
		return 0;
	}
	if (!ak->probing && now >= ak->hold_until) {
		ak->probing = *probe = true;
		pthread_mutex_unlock(&ak->mtx);
		return 0;
	}
	if (ak->probing)
		snprintf(why, sizeof(why),
		         "KM unreachable (%s); calls held back while another "
		         "call probes it",
		         ak->cause);
	else
		snprintf(
		    why, sizeof(why),
		    "KM unreachable (%s); calls held back for %llu ms more",
		    ak->cause, (unsigned long long)(ak->hold_until - now));
	pthread_mutex_unlock(&ak->mtx);
	return fail(QKDN_E_UNREACHABLE, why);
}

/* The outcome of an admitted call: cause != NULL if it found the KM
 * unreachable (starts or, for the probe, doubles the back-off), else
 * answered (ends it). Returns the back-off now in force. */
static uint32_t
settle(struct qkdn_ak *ak, bool probe, const char *cause)
{
	uint32_t b;
	pthread_mutex_lock(&ak->mtx);
	check_fork(ak);
	if (cause == NULL) {
		ak->backoff_ms = 0;
	} else {
		/* a call that was already under way when another found
		 * the KM gone does not double the back-off */
		if (ak->backoff_ms == 0)
			ak->backoff_ms = BACKOFF_FIRST_MS;
		else if (probe)
			ak->backoff_ms = ak->backoff_ms * 2 > BACKOFF_MAX_MS
			                     ? BACKOFF_MAX_MS
			                     : ak->backoff_ms * 2;
		ak->hold_until = qkdn_now_ms() + ak->backoff_ms;
		ak->cause = cause;
		drop_idle(ak); /* they went to the same KM */
	}
	if (probe)
		ak->probing = false;
	b = ak->backoff_ms;
	pthread_mutex_unlock(&ak->mtx);
	return b;
}

/* A call that neither reached the KM nor found it unreachable leaves the
 * back-off as it is. */
static void
end_probe(struct qkdn_ak *ak, bool probe)
{
	if (!probe)
		return;
	pthread_mutex_lock(&ak->mtx);
	ak->probing = false;
	pthread_mutex_unlock(&ak->mtx);
}

/* An idle connection of this process (*reused), or a new one. */
static int
take_conn(struct qkdn_ak *ak, struct qkdn_sp_conn *c, uint64_t deadline,
          bool *reused)
{
	pthread_mutex_lock(&ak->mtx);
	check_fork(ak);
	if (ak->n_idle > 0) {
		*c = ak->idle[--ak->n_idle];
		*reused = true;
		pthread_mutex_unlock(&ak->mtx);
		return 0;
	}
	pthread_mutex_unlock(&ak->mtx);
	*reused = false;
	c->tls = ak->tls;
	c->peer_name = ak->km_name[0] != '\0' ? ak->km_name : NULL;
	/* once: a dead KM costs a call one attempt, not the deadline */
	return qkdn_sp_connect_once(c, ak->url, deadline);
}

/* The failure of a call that found the KM unreachable: the back-off it
 * starts is part of the reason. */
static int
fail_unreachable(struct qkdn_ak *ak, bool probe, int rv, const char *cause)
{
	char why[QKDN_REASON_MAX];
	uint32_t b = settle(ak, probe, cause);
	snprintf(why, sizeof(why),
	         "KM unreachable (%s); calls held back for %u ms", cause, b);
	return fail(rv, why);
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
	bool probe, reused;
	int rv;

	memset(rsp, 0, sizeof(*rsp));
	if ((rv = qkdn_msg_encode(req, qkdn_buf_write, &out)) != 0) {
		qkdn_buf_free(&out);
		return fail(rv, "request could not be encoded");
	}
	if ((rv = admit(ak, &probe)) != 0) {
		qkdn_buf_free(&out);
		return rv;
	}
	if ((rv = take_conn(ak, &c, deadline, &reused)) != 0) {
		qkdn_buf_free(&out);
		if (rv == QKDN_E_TIMEOUT || rv == QKDN_E_UNREACHABLE)
			return fail_unreachable(
			    ak, probe, rv,
			    rv == QKDN_E_TIMEOUT
			        ? "it did not accept a connection in time"
			        : "cannot connect to it");
		end_probe(ak, probe);
		return fail_sp(rv, "cannot connect to the KM");
	}
	rv = qkdn_sp_call(&c, out.data, out.len, &in, &in_len,
	                  QKDN_MSG_BYTES_MAX, deadline);
	qkdn_buf_free(&out);
	if (rv != 0) {
		qkdn_sp_close(&c);
		/* a pooled connection that failed (qkdn_sp_call already
		 * retried a stale one once) starts no back-off: the next
		 * call connects afresh */
		if (rv == QKDN_E_TIMEOUT ||
		    (rv == QKDN_E_UNREACHABLE && !reused))
			return fail_unreachable(
			    ak, probe, rv,
			    rv == QKDN_E_TIMEOUT
			        ? "no reply within the deadline"
			        : "the connection to it failed");
		pthread_mutex_lock(&ak->mtx);
		drop_idle(ak);
		ak->probing = probe ? false : ak->probing;
		pthread_mutex_unlock(&ak->mtx);
		return fail_sp(rv, "connection to the KM failed");
	}
	settle(ak, probe, NULL);
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
	return qkdn_ak_get_keys_by_id_from(ak, NULL, ids, count, out);
}

int
qkdn_ak_get_keys_by_id_from(struct qkdn_ak *ak, const char *src_sae,
                            const qkdn_key_id *ids, uint32_t count,
                            struct qkdn_ak_key *out)
{
	struct qkdn_msg req = {.type = QKDN_KEY_REQ_ID}, rsp;
	qkdn_uuid *v;
	int rv;
	if (count == 0 || count > QKDN_KEYS_MAX)
		return fail(QKDN_E_RANGE, "count must be 1..4096");
	if (src_sae != NULL &&
	    qkdn_name_set(req.u.key_req_id.src_sae, src_sae) != 0)
		return fail(QKDN_E_BAD_REQUEST,
		            "source SAE ID must be 1..63 bytes");
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
		to->out_max_bytes = from->out_max;
		memcpy(to->down, from->down, sizeof(to->down));
	}
	out->limits = (struct qkdn_ak_limits){
	    .max_keys = s->keys_max,
	    .min_bits = s->bits_min,
	    .max_bits = s->bits_max,
	    .max_request_bytes = s->req_bytes_max,
	};
	/* member by member: the application's struct is not the wire's */
	const struct qkdn_relay_stats *r = &s->relay;
	out->relay = (struct qkdn_ak_relay_status){
	    .started = r->started,
	    .completed = r->completed,
	    .failed = r->failed,
	    .in_flight = r->in_flight,
	    .forwarded = r->forwarded,
	    .delivered = r->delivered,
	    .rejected = r->rejected,
	    .next_hop_reqs = r->next_hop_reqs,
	    .relay_req_notifs = r->relay_req_notifs,
	    .relay_req_rsps = r->relay_req_rsps,
	    .done_notifs = r->done_notifs,
	    .reservations = r->reservations,
	    .allocations = r->allocations,
	    .keys_relayed = r->keys_relayed,
	};
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
