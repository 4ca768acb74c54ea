#include "kx.h"

#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"
#include "qkdn_sp.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC             "kx"
#define MAC_KEY_BYTES   crypto_onetimeauth_KEYBYTES
#define MAX_RETRIES     3
#define SERVER_CONTEXTS 4
#define BLOCK_WAIT_MS   10
#define MAX_BATCH_KEYS  QKDN_KEYS_MAX
#define MAX_BATCH_BYTES KM_KX_BATCH_BYTES

/* ---------------------------------------------------------------- MAC */

/* The tag authenticates the message as encoded with an all-zero tag. */
static int
sync_mac(const struct qkdn_msg *m, const uint8_t key[MAC_KEY_BYTES],
         uint8_t tag[crypto_onetimeauth_BYTES], bool verify)
{
	struct qkdn_buf buf = {0};
	int rv = qkdn_msg_encode(m, qkdn_buf_write, &buf);
	if (rv == 0) {
		if (verify)
			rv = crypto_onetimeauth_verify(tag, buf.data, buf.len,
			                               key) == 0
			         ? 0
			         : QKDN_E_AUTH_FAILED;
		else
			crypto_onetimeauth(tag, buf.data, buf.len, key);
	}
	qkdn_buf_free(&buf);
	return rv;
}

/* ------------------------------------------------------------ client */

/* One sender thread per link: it takes every waiting request as one batch,
 * makes one blocking KEY_SYNC round trip (qkdn_sp.h, no nng hand-offs on
 * this side), and completes the batch. One thread per link, never per
 * request; the Ak side stays asynchronous. */
struct km_kx_link {
	struct km *km;
	struct km_link *l;
	nng_thread *thread;
	nng_cv *cv; /* with km->mtx: work queued or stopping */
	bool stopping;
	struct km_keyreq *head, *tail; /* waiting */
	struct qkdn_sp_conn conn;
	atomic_bool up;
};

bool
km_kx_link_up(const struct km_kx_link *kl)
{
	return kl != NULL && atomic_load(&kl->up);
}

static void
fail_list(struct km_keyreq *r, int rv, const char *why)
{
	while (r != NULL) {
		struct km_keyreq *next = r->next;
		r->next = NULL;
		qkdn_msg_clear(&r->rsp);
		r->done(r, rv, why);
		r = next;
	}
}

/* Build the keys of r from bytes (count * bits/8) into its KEY_RSP. */
static int
fill_reply(struct km_keyreq *r, const uint8_t *bytes)
{
	uint32_t klen = r->bits / 8;
	struct qkdn_keys *keys = &r->rsp.u.key_rsp.keys;
	r->rsp.type = QKDN_KEY_RSP;
	keys->v = qkdn_msg_alloc(&r->rsp, r->count * sizeof(*keys->v));
	uint8_t *kb = qkdn_msg_alloc(&r->rsp, (size_t)r->count * klen);
	if (keys->v == NULL || kb == NULL)
		return QKDN_E_NOMEM;
	memcpy(kb, bytes, (size_t)r->count * klen);
	keys->n = r->count;
	qkdn_uuid *ids = qkdn_msg_alloc(&r->rsp, r->count * sizeof(*ids));
	if (ids == NULL)
		return QKDN_E_NOMEM;
	qkdn_uuid_v7(ids, r->count);
	for (uint32_t i = 0; i < r->count; i++) {
		keys->v[i].id = ids[i];
		keys->v[i].len = klen;
		keys->v[i].bytes = kb + (size_t)i * klen;
	}
	return 0;
}

/* Encode the KEY_SYNC for batch: MAC key first, then each request. */
static int
build_sync(struct km_kx_link *kl, struct km_keyreq *batch,
           const struct qkdn_segment *segs, uint32_t nsegs,
           const uint8_t *mac_key, struct qkdn_buf *out)
{
	struct qkdn_msg m = {.type = QKDN_KEY_SYNC};
	struct qkdn_key_sync *ks = &m.u.key_sync;
	uint8_t tag[crypto_onetimeauth_BYTES] = {0};
	uint32_t n = 0;
	int rv = QKDN_E_NOMEM;
	for (struct km_keyreq *r = batch; r != NULL; r = r->next)
		n++;
	memcpy(ks->link, kl->l->conf->id, sizeof(ks->link));
	ks->segs.n = nsegs;
	ks->segs.v = (struct qkdn_segment *)segs;
	ks->reqs.n = n;
	ks->reqs.v = qkdn_msg_alloc(&m, n * sizeof(*ks->reqs.v));
	if (ks->reqs.v == NULL)
		goto out;
	n = 0;
	for (struct km_keyreq *r = batch; r != NULL; r = r->next, n++) {
		struct qkdn_sync_req *sr = &ks->reqs.v[n];
		memcpy(sr->src_sae, r->src_sae, sizeof(sr->src_sae));
		memcpy(sr->dst_sae, r->dst_sae, sizeof(sr->dst_sae));
		sr->bits = r->bits;
		sr->ids.n = r->count;
		sr->ids.v = qkdn_msg_alloc(&m, r->count * sizeof(qkdn_uuid));
		if (sr->ids.v == NULL)
			goto out;
		for (uint32_t i = 0; i < r->count; i++)
			sr->ids.v[i] = r->rsp.u.key_rsp.keys.v[i].id;
	}
	ks->tag.len = sizeof(tag);
	ks->tag.ptr = tag;
	if ((rv = sync_mac(&m, mac_key, tag, false)) == 0)
		rv = qkdn_msg_encode(&m, qkdn_buf_write, out);
out:
	ks->segs.v = NULL;
	ks->tag.ptr = NULL;
	qkdn_msg_clear(&m);
	return rv;
}

/* Take the waiting requests that fit as one batch and take their key from
 * the pool; requests the pool cannot serve fail at once. With the KM lock
 * held. Returns the batch (NULL if none) and its encoded KEY_SYNC. */
static struct km_keyreq *
take_batch(struct km_kx_link *kl, struct qkdn_buf *sync)
{
	struct km_pool *pool = &kl->l->pool;
	struct qkdn_segment segs[QKDN_SEGS_MAX];
	uint64_t avail = km_pool_out_avail(pool);
	uint64_t total = MAC_KEY_BYTES;
	uint32_t nkeys = 0, nsegs = 0;
	struct km_keyreq *batch = NULL, **tailp = &batch, *r;
	uint8_t *bytes = NULL;
	int rv;

	/* one message names at most QKDN_SEGS_MAX segments of half blocks */
	uint64_t cap = (uint64_t)(QKDN_SEGS_MAX - 2) * pool->half;
	if (cap > MAX_BATCH_BYTES)
		cap = MAX_BATCH_BYTES;
	while ((r = kl->head) != NULL) {
		uint64_t need = (uint64_t)r->count * (r->bits / 8);
		if (batch != NULL &&
		    (nkeys + r->count > MAX_BATCH_KEYS || total + need > cap))
			break;
		kl->head = r->next;
		if (kl->head == NULL)
			kl->tail = NULL;
		r->next = NULL;
		if (MAC_KEY_BYTES + need > cap) {
			char why[128];
			snprintf(why, sizeof(why),
			         "link %s carries at most %llu bytes of key "
			         "per request",
			         kl->l->conf->id,
			         (unsigned long long)(cap - MAC_KEY_BYTES));
			fail_list(r, QKDN_E_TOO_LARGE, why);
			continue;
		}
		if (total + need > avail) {
			char why[128];
			snprintf(why, sizeof(why),
			         "link %s holds %llu bytes for this direction",
			         kl->l->conf->id, (unsigned long long)avail);
			fail_list(r, QKDN_E_INSUFFICIENT_KEY, why);
			continue;
		}
		total += need;
		nkeys += r->count;
		*tailp = r;
		tailp = &r->next;
	}
	if (batch == NULL)
		return NULL;
	if ((bytes = malloc(total)) == NULL) {
		rv = QKDN_E_NOMEM;
		goto fail;
	}
	if ((rv = km_pool_take_out(pool, (uint32_t)total, segs, QKDN_SEGS_MAX,
	                           &nsegs, bytes)) != 0)
		goto fail;
	uint64_t at = MAC_KEY_BYTES;
	for (r = batch; r != NULL; r = r->next) {
		if ((rv = fill_reply(r, bytes + at)) != 0)
			goto fail;
		at += (uint64_t)r->count * (r->bits / 8);
	}
	if ((rv = build_sync(kl, batch, segs, nsegs, bytes, sync)) != 0)
		goto fail;
	sodium_memzero(bytes, total);
	free(bytes);
	return batch;
fail:
	if (bytes != NULL) {
		sodium_memzero(bytes, total);
		free(bytes);
	}
	fail_list(batch, rv, "could not take key from the link pool");
	return NULL;
}

/* The batch is over: hand out, retry or fail. With the KM lock held. */
static void
finish_batch(struct km_kx_link *kl, struct km_keyreq *batch, int rv,
             uint64_t missing, const char *why)
{
	/* the peer lacks a block we hold, or has used positions we are
	 * behind (it moved past its blocks after a power cut): missing names
	 * the block to give up, through its end */
	bool skip =
	    rv == QKDN_E_BLOCK_MISSING || (rv == QKDN_E_REPLAY && missing != 0);
	if (!skip) {
		while (batch != NULL) {
			struct km_keyreq *r = batch;
			batch = r->next;
			r->next = NULL;
			if (rv != 0)
				qkdn_msg_clear(&r->rsp);
			r->done(r, rv, why);
		}
		return;
	}
	if (rv == QKDN_E_BLOCK_MISSING)
		QLOG_WARN(SRC, "peer lacks block %llu of link %s; skipping it",
		          (unsigned long long)missing, kl->l->conf->id);
	else
		QLOG_WARN(SRC,
		          "peer has used link %s through block %llu; skipping "
		          "past it",
		          kl->l->conf->id, (unsigned long long)missing);
	km_pool_skip_out_block(&kl->l->pool, missing);
	struct km_keyreq *retry = NULL, *last = NULL;
	while (batch != NULL) {
		struct km_keyreq *r = batch;
		batch = r->next;
		r->next = NULL;
		qkdn_msg_clear(&r->rsp);
		if (++r->retries > MAX_RETRIES) {
			r->done(r, QKDN_E_INSUFFICIENT_KEY,
			        rv == QKDN_E_BLOCK_MISSING
			            ? "peer KM keeps missing key blocks"
			            : "peer KM keeps refusing key positions");
			continue;
		}
		if (last != NULL)
			last->next = r;
		else
			retry = r;
		last = r;
	}
	if (retry != NULL) {
		last->next = kl->head;
		kl->head = retry;
		if (kl->tail == NULL)
			kl->tail = last;
	}
}

/* One KEY_SYNC round trip; the reply decides the batch's fate. */
static int
exchange(struct km_kx_link *kl, const struct qkdn_buf *sync, uint64_t *value,
         char *why, size_t whylen)
{
	const char *peer = kl->km->net->nodes[kl->l->peer].id;
	uint64_t deadline = qkdn_now_ms() + kl->km->node->kx_timeout_ms;
	struct qkdn_decode_error err = {0};
	struct qkdn_msg ack;
	uint8_t *in = NULL;
	size_t in_len = 0;
	int rv;

	/* a connection kept from before may have been closed by a peer
	 * that restarted since: then one fresh connection is tried. Sending
	 * the sync again is safe: a peer that stored it refuses the known
	 * IDs as a replay. */
	bool kept = kl->conn.fd >= 0;
	for (;;) {
		if (kl->conn.fd < 0 &&
		    (rv = qkdn_sp_connect(
		         &kl->conn, kl->km->net->nodes[kl->l->peer].kx_url,
		         deadline)) != 0) {
			kl->conn.fd = -1;
			atomic_store(&kl->up, false);
			snprintf(why, whylen, "peer KM %s unreachable", peer);
			return rv == QKDN_E_TIMEOUT ? rv : QKDN_E_UNREACHABLE;
		}
		rv = qkdn_sp_call(&kl->conn, sync->data, sync->len, &in,
		                  &in_len, QKDN_MSG_BYTES_MAX, deadline);
		if (rv != QKDN_E_UNREACHABLE || !kept)
			break;
		qkdn_sp_close(&kl->conn);
		kept = false;
	}
	if (rv != 0) {
		qkdn_sp_close(&kl->conn);
		atomic_store(&kl->up, false);
		snprintf(why, whylen, "peer KM %s: %s", peer,
		         rv == QKDN_E_TIMEOUT ? "no answer within the deadline"
		                              : "connection lost");
		return rv == QKDN_E_TIMEOUT ? rv : QKDN_E_UNREACHABLE;
	}
	atomic_store(&kl->up, true);
	rv = qkdn_msg_decode(in, in_len, &ack, &err);
	free(in); /* an acknowledgement: no key material */
	if (rv != 0) {
		snprintf(why, whylen, "bad reply from peer KM: %.200s",
		         err.reason);
		return QKDN_E_INTERNAL;
	}
	if (ack.type == QKDN_ERROR) {
		snprintf(why, whylen, "peer KM refused: %.200s",
		         ack.u.error.reason);
		rv = -ack.u.error.code;
	} else if (ack.type == QKDN_ACK) {
		snprintf(why, whylen, "peer KM refused");
		rv = ack.u.ack.result;
		*value = ack.u.ack.value;
	} else {
		snprintf(why, whylen, "unexpected reply from peer KM");
		rv = QKDN_E_INTERNAL;
	}
	qkdn_msg_clear(&ack);
	return rv;
}

static void
sender(void *arg)
{
	struct km_kx_link *kl = arg;
	struct km *km = kl->km;
	nng_mtx_lock(km->mtx);
	while (!kl->stopping) {
		if (kl->head == NULL) {
			/* idle: keep a connection to the peer for status */
			if (kl->conn.fd < 0) {
				nng_mtx_unlock(km->mtx);
				if (qkdn_sp_connect(
				        &kl->conn,
				        km->net->nodes[kl->l->peer].kx_url,
				        qkdn_now_ms() + 200) != 0)
					kl->conn.fd = -1;
				atomic_store(&kl->up, kl->conn.fd >= 0);
				nng_mtx_lock(km->mtx);
			}
			if (kl->head == NULL && !kl->stopping)
				nng_cv_until(kl->cv, nng_clock() + 1000);
			continue;
		}
		struct qkdn_buf sync = {0};
		struct km_keyreq *batch = take_batch(kl, &sync);
		if (batch == NULL)
			continue;
		nng_mtx_unlock(km->mtx);
		char why[QKDN_REASON_MAX] = "";
		uint64_t value = 0;
		int rv = exchange(kl, &sync, &value, why, sizeof(why));
		qkdn_buf_free(&sync);
		nng_mtx_lock(km->mtx);
		finish_batch(kl, batch, rv, value, why);
	}
	nng_mtx_unlock(km->mtx);
}

int
km_kx_link_open(struct km *km, struct km_link *l)
{
	struct km_kx_link *kl = calloc(1, sizeof(*kl));
	int rv;
	if (kl == NULL)
		return QKDN_E_NOMEM;
	kl->km = km;
	kl->l = l;
	kl->conn.fd = -1;
	if ((rv = nng_cv_alloc(&kl->cv, km->mtx)) != 0) {
		free(kl);
		return qkdn_err_from_nng(rv);
	}
	l->kx = kl;
	if ((rv = nng_thread_create(&kl->thread, sender, kl)) != 0) {
		l->kx = NULL;
		nng_cv_free(kl->cv);
		free(kl);
		return qkdn_err_from_nng(rv);
	}
	return 0;
}

void
km_kx_link_close(struct km *km, struct km_link *l)
{
	struct km_kx_link *kl = l->kx;
	if (kl == NULL)
		return;
	nng_mtx_lock(km->mtx);
	kl->stopping = true;
	nng_cv_wake(kl->cv);
	nng_mtx_unlock(km->mtx);
	nng_thread_destroy(kl->thread); /* joins: a batch in flight ends */
	nng_mtx_lock(km->mtx);
	l->kx = NULL;
	fail_list(kl->head, QKDN_E_SHUTDOWN, "KM is stopping");
	nng_mtx_unlock(km->mtx);
	qkdn_sp_close(&kl->conn);
	nng_cv_free(kl->cv);
	free(kl);
}

void
km_kx_submit(struct km *km, struct km_link *l, struct km_keyreq *r)
{
	nng_mtx_lock(km->mtx);
	struct km_kx_link *kl = l->kx;
	r->next = NULL;
	if (kl == NULL || kl->stopping) {
		nng_mtx_unlock(km->mtx);
		r->done(r, QKDN_E_SHUTDOWN, "KM is stopping");
		return;
	}
	if (kl->tail != NULL)
		kl->tail->next = r;
	else
		kl->head = r;
	kl->tail = r;
	nng_cv_wake1(kl->cv);
	nng_mtx_unlock(km->mtx);
}

/* ------------------------------------------------------------ server */

enum kx_srv_state { KXS_RECV, KXS_WAIT_BLOCK, KXS_SEND };

struct kx_work {
	struct km *km;
	enum kx_srv_state state;
	nng_aio *aio;
	nng_ctx ctx;
	struct qkdn_msg req;
	uint64_t deadline_ms;
};

struct km_kx_server {
	nng_socket sock;
	struct kx_work works[SERVER_CONTEXTS];
};

static void
reply(struct kx_work *w, struct qkdn_msg *m)
{
	nng_msg *nm;
	qkdn_msg_clear(&w->req);
	if (qkdn_rpc_pack(m, &nm) != 0) {
		w->state = KXS_RECV;
		nng_ctx_recv(w->ctx, w->aio);
		return;
	}
	w->state = KXS_SEND;
	nng_aio_set_msg(w->aio, nm);
	nng_ctx_send(w->ctx, w->aio);
}

static void
reply_error(struct kx_work *w, int code, const char *why)
{
	struct qkdn_msg m;
	atomic_fetch_add(&w->km->errors, 1);
	QLOG_WARN(SRC, "refused a Kx request: %s: %s", qkdn_strerror(code),
	          why);
	qkdn_rpc_error(&m, w->req.req_id, code, why);
	reply(w, &m);
}

static void
reply_ack(struct kx_work *w, int result, uint64_t value)
{
	struct qkdn_msg m = {.type = QKDN_ACK, .req_id = w->req.req_id};
	m.u.ack.result = result;
	m.u.ack.value = value;
	reply(w, &m);
}

/* Who may appear in a sync from the peer across link l. */
static int
check_sync_saes(struct km *km, struct km_link *l,
                const struct qkdn_key_sync *ks, uint64_t *bytes, char *why,
                size_t whylen)
{
	const struct qkdn_net *net = km->net;
	uint64_t total = MAC_KEY_BYTES, keys = 0;
	for (uint32_t i = 0; i < ks->reqs.n; i++) {
		const struct qkdn_sync_req *sr = &ks->reqs.v[i];
		int src = qkdn_net_sae_index(net, sr->src_sae);
		int dst = qkdn_net_sae_index(net, sr->dst_sae);
		if (src < 0 || dst < 0 || net->saes[src].node != l->peer ||
		    net->saes[dst].node != km->self) {
			snprintf(why, whylen,
			         "SAE %s -> %s is not served across link %s",
			         sr->src_sae, sr->dst_sae, l->conf->id);
			return QKDN_E_NOT_AUTHORISED;
		}
		if (sr->bits % 8 != 0) {
			snprintf(why, whylen, "key size %u is not whole bytes",
			         sr->bits);
			return QKDN_E_RANGE;
		}
		keys += sr->ids.n;
		total += (uint64_t)sr->ids.n * (sr->bits / 8);
	}
	if (keys > MAX_BATCH_KEYS) {
		snprintf(why, whylen, "%llu keys in one sync, limit %u",
		         (unsigned long long)keys, MAX_BATCH_KEYS);
		return QKDN_E_TOO_LARGE;
	}
	*bytes = total;
	return 0;
}

/* Store the keys of a checked sync; bytes = MAC key then keys. */
static int
store_sync(struct km *km, struct km_link *l, const struct qkdn_key_sync *ks,
           const uint8_t *bytes)
{
	size_t n = 0, at = MAC_KEY_BYTES;
	uint64_t expires = km_wall_ms() + (uint64_t)km->node->key_ttl_s * 1000;
	for (uint32_t i = 0; i < ks->reqs.n; i++)
		n += ks->reqs.v[i].ids.n;
	struct km_key_record *recs = calloc(n, sizeof(*recs));
	if (recs == NULL)
		return QKDN_E_NOMEM;
	n = 0;
	for (uint32_t i = 0; i < ks->reqs.n; i++) {
		const struct qkdn_sync_req *sr = &ks->reqs.v[i];
		for (uint32_t k = 0; k < sr->ids.n; k++, n++) {
			recs[n] = (struct km_key_record){.id = sr->ids.v[k],
			                                 .src_sae = sr->src_sae,
			                                 .dst_sae = sr->dst_sae,
			                                 .expires_ms = expires,
			                                 .len = sr->bits / 8,
			                                 .bytes = bytes + at};
			at += sr->bits / 8;
		}
	}
	struct km_pos end = km_pool_segs_end(&ks->segs);
	int rv = km_store_keys_put(km->st, recs, n, l->conf->id, &end);
	free(recs);
	return rv;
}

static void
handle_sync(struct kx_work *w)
{
	struct km *km = w->km;
	struct qkdn_key_sync *ks = &w->req.u.key_sync;
	struct km_link *l = km_link_named(km, ks->link);
	char why[QKDN_REASON_MAX];
	uint64_t total = 0, missing = 0;
	uint32_t len = 0;
	uint8_t *bytes = NULL;
	bool later = false, behind = false;
	int rv;

	if (l == NULL) {
		snprintf(why, sizeof(why), "node %s has no link %s",
		         km->node->id, ks->link);
		reply_error(w, QKDN_E_BAD_REQUEST, why);
		return;
	}
	if ((rv = check_sync_saes(km, l, ks, &total, why, sizeof(why))) != 0) {
		reply_error(w, rv, why);
		return;
	}
	if ((bytes = malloc(total)) == NULL) {
		reply_error(w, QKDN_E_NOMEM, "out of memory");
		return;
	}
	/* the lock covers the pool only: the MAC and the store commit run
	 * without it (syncs of one link come one at a time from its peer,
	 * and a replay of the same IDs fails on the store) */
	nng_mtx_lock(km->mtx);
	rv = km_pool_read_in(&l->pool, &ks->segs, bytes, (uint32_t)total, &len,
	                     &missing, &later);
	if (rv == QKDN_E_BLOCK_MISSING && later &&
	    qkdn_now_ms() < w->deadline_ms) {
		/* the emulator's copy for this end is still on its way */
		nng_mtx_unlock(km->mtx);
		free(bytes);
		w->state = KXS_WAIT_BLOCK;
		nng_sleep_aio(BLOCK_WAIT_MS, w->aio);
		return;
	}
	if (rv == QKDN_E_BLOCK_MISSING && l->pool.n > 0 &&
	    missing < km_pool_oldest(&l->pool))
		/* older than anything held here: the peer may skip all of
		 * that at once, not one block per round trip */
		missing = km_pool_oldest(&l->pool) - 1;
	if (rv == QKDN_E_REPLAY) {
		/* positions used here already: the peer restarted behind us,
		 * or we moved past our blocks after a power cut. Naming the
		 * last block used lets it catch up in one step. */
		behind = true;
		missing = km_pool_in_used_through(&l->pool);
	}
	nng_mtx_unlock(km->mtx);
	if (rv == 0 && len != total)
		rv = QKDN_E_RANGE;
	if (rv == 0) {
		/* check the MAC before anything is consumed */
		uint8_t tag[crypto_onetimeauth_BYTES];
		if (ks->tag.len != sizeof(tag)) {
			rv = QKDN_E_AUTH_FAILED;
		} else {
			memcpy(tag, ks->tag.ptr, sizeof(tag));
			memset(ks->tag.ptr, 0, sizeof(tag));
			rv = sync_mac(&w->req, bytes, tag, true);
		}
	}
	if (rv == 0 && (rv = store_sync(km, l, ks, bytes)) == 0) {
		nng_mtx_lock(km->mtx);
		km_pool_advance_in(&l->pool, km_pool_segs_end(&ks->segs));
		nng_mtx_unlock(km->mtx);
	}
	sodium_memzero(bytes, total);
	free(bytes);

	switch (rv) {
	case 0:
		reply_ack(w, 0, 0);
		break;
	case QKDN_E_BLOCK_MISSING:
		QLOG_WARN(SRC, "link %s: block %llu missing here", l->conf->id,
		          (unsigned long long)missing);
		reply_ack(w, rv, missing);
		break;
	default:
		if (behind && missing != 0) {
			QLOG_WARN(SRC,
			          "link %s: the peer names positions used here "
			          "(through block %llu)",
			          l->conf->id, (unsigned long long)missing);
			reply_ack(w, rv, missing);
			break;
		}
		snprintf(why, sizeof(why), "key sync on link %s: %s",
		         l->conf->id, qkdn_strerror(rv));
		reply_error(w, rv, why);
	}
}

static void
kx_server_cb(void *arg)
{
	struct kx_work *w = arg;
	int rv = nng_aio_result(w->aio);
	struct qkdn_decode_error err = {0};

	switch (w->state) {
	case KXS_RECV:
		if (rv != 0) {
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
				return;
			nng_ctx_recv(w->ctx, w->aio);
			return;
		}
		nng_msg *nm = nng_aio_get_msg(w->aio);
		rv = qkdn_rpc_unpack(nm, &w->req, &err);
		nng_msg_free(nm);
		if (rv != 0) {
			reply_error(w, rv, err.reason);
			return;
		}
		if (w->req.type != QKDN_KEY_SYNC) {
			snprintf(err.reason, sizeof(err.reason),
			         "%s is not served on Kx",
			         qkdn_msg_type_name(w->req.type));
			reply_error(w, QKDN_E_UNSUPPORTED, err.reason);
			return;
		}
		w->deadline_ms = qkdn_now_ms() + w->km->node->kx_timeout_ms / 2;
		handle_sync(w);
		return;
	case KXS_WAIT_BLOCK:
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
			qkdn_msg_clear(&w->req);
			return;
		}
		handle_sync(w);
		return;
	case KXS_SEND:
		if (rv != 0) {
			qkdn_rpc_free_wiped(nng_aio_get_msg(w->aio));
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
				return;
		}
		w->state = KXS_RECV;
		nng_ctx_recv(w->ctx, w->aio);
		return;
	}
}

int
km_kx_server_start(struct km *km, struct km_kx_server **out)
{
	struct km_kx_server *s = calloc(1, sizeof(*s));
	int rv;
	if (s == NULL)
		return QKDN_E_NOMEM;
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		free(s);
		return qkdn_err_from_nng(rv);
	}
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, QKDN_MSG_BYTES_MAX);
	for (int i = 0; i < SERVER_CONTEXTS; i++) {
		struct kx_work *w = &s->works[i];
		w->km = km;
		if ((rv = nng_aio_alloc(&w->aio, kx_server_cb, w)) != 0 ||
		    (rv = nng_ctx_open(&w->ctx, s->sock)) != 0)
			goto fail;
	}
	if ((rv = nng_listen(s->sock, km->node->kx_url, NULL, 0)) != 0) {
		QLOG_ERR(SRC, "cannot listen on %s: %s", km->node->kx_url,
		         nng_strerror(rv));
		goto fail;
	}
	for (int i = 0; i < SERVER_CONTEXTS; i++) {
		s->works[i].state = KXS_RECV;
		nng_ctx_recv(s->works[i].ctx, s->works[i].aio);
	}
	*out = s;
	return 0;
fail:
	km_kx_server_stop(s);
	return qkdn_err_from_nng(rv);
}

void
km_kx_server_stop(struct km_kx_server *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < SERVER_CONTEXTS; i++)
		if (s->works[i].aio != NULL)
			nng_aio_stop(s->works[i].aio);
	nng_close(s->sock);
	for (int i = 0; i < SERVER_CONTEXTS; i++) {
		nng_aio_free(s->works[i].aio);
		qkdn_msg_clear(&s->works[i].req);
	}
	free(s);
}
