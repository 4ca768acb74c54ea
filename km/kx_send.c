/* Kx sender: one thread per link takes every key request waiting for that
 * link as one batch, takes its key from the pool, makes one blocking
 * KEY_SYNC_AUTH round trip to the peer KM (qkdn_sp.h: no nng hand-offs on
 * this side) and completes the batch. One thread per link, never per
 * request; the Ak side stays asynchronous. The peer sees the link's pool
 * positions in order, so it can refuse any reuse. Relay hops queue next to
 * the batches; a hop passed on by an intermediate KM may instead run on
 * the Kx thread that received it while the sender sleeps
 * (km_kx_run_hop: that thread then holds the link in the sender's
 * place). */
#include "kx.h"

#include "kme.h"
#include "node.h"
#include "relay.h"
#include "secbuf.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"
#include "qkdn_sp.h"
#include "sync.h"

#include <nng/supplemental/util/platform.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC             "kx"
#define KEYS_AT         KM_SYNC_KEYS_AT
#define MAX_RETRIES     3
#define PING_MS         300  /* an idle peer must answer a ping this fast */
#define PING_EVERY_MS   1000 /* ... once it has been silent this long */
#define MAX_BATCH_KEYS  QKDN_KEYS_MAX
#define MAX_BATCH_BYTES KM_KX_BATCH_BYTES

struct km_kx_link {
	struct km *km;
	struct km_link *l;
	nng_thread *thread;
	nng_cv *cv; /* with km->mtx: work queued or stopping */
	bool stopping;
	struct km_keyreq *head, *tail;   /* waiting */
	struct km_hop *hops, *hops_tail; /* relay hops waiting */
	bool hop_turn; /* both wait: alternate, so neither starves */
	/* the sender waits for work with nothing queued: a forwarded hop may
	 * then run on the thread that received it (km_kx_run_hop) */
	bool idle;
	bool borrowed; /* a hop runs on another thread: the sender keeps off */
	uint64_t heard_ms; /* the peer last answered (whoever holds the link) */
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

/* A KEY_SYNC_AUTH on its way, and what checking the peer's ack needs. */
struct sent_sync {
	struct qkdn_buf msg;
	uint8_t tag[16];
	uint8_t ack_key[KM_SYNC_MAC_KEY_BYTES];
	uint64_t last_blk; /* the last block its bits come from */
	/* from the peer's reply */
	uint64_t value; /* block to skip through, with res -23 or -21 */
	bool mismatch;  /* the peer could not authenticate the sync */
};

static void
sent_sync_wipe(struct sent_sync *s)
{
	qkdn_buf_free(&s->msg);
	sodium_memzero(s, sizeof(*s));
}

/* Encode the KEY_SYNC for batch and seal it with its tag over bytes (the
 * MAC keys, then each request's keys). */
static int
build_sync(struct km_kx_link *kl, struct km_keyreq *batch,
           const struct qkdn_segment *segs, uint32_t nsegs,
           const uint8_t *bytes, size_t total, struct sent_sync *out)
{
	struct qkdn_msg m = {.type = QKDN_KEY_SYNC};
	struct qkdn_key_sync *ks = &m.u.key_sync;
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
	rv = km_sync_seal(&m, bytes, total, &out->msg, out->tag);
out:
	ks->segs.v = NULL;
	qkdn_msg_clear(&m);
	return rv;
}

/* Take the waiting requests that fit as one batch; requests the pool
 * cannot serve fail at once. With the KM lock held. Returns the batch
 * (NULL if none) and the pool bytes it needs (MAC keys and keys). */
static struct km_keyreq *
collect_batch(struct km_kx_link *kl, uint64_t *bytes)
{
	struct km_pool *pool = &kl->l->pool;
	uint64_t avail = km_pool_out_avail(pool);
	uint64_t total = KEYS_AT;
	uint32_t nkeys = 0;
	struct km_keyreq *batch = NULL, **tailp = &batch, *r;

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
		if (KEYS_AT + need > cap) {
			char why[128];
			snprintf(why, sizeof(why),
			         "link %s carries at most %llu bytes of key "
			         "per request",
			         kl->l->conf->id,
			         (unsigned long long)(cap - KEYS_AT));
			fail_list(r, QKDN_E_TOO_LARGE, why);
			continue;
		}
		if (total + need > avail) {
			char why[2 * QKDN_REASON_MAX], down[QKDN_REASON_MAX];
			/* a link fed by a KME that is down says so */
			bool kme_down = km_kme_down(kl->l, down, sizeof(down));
			snprintf(why, sizeof(why),
			         "link %s holds %llu bytes for this "
			         "direction%s%.150s",
			         kl->l->conf->id, (unsigned long long)avail,
			         kme_down ? "; link down: " : "",
			         kme_down ? down : "");
			fail_list(r, QKDN_E_INSUFFICIENT_KEY, why);
			continue;
		}
		total += need;
		nkeys += r->count;
		*tailp = r;
		tailp = &r->next;
	}
	*bytes = total;
	return batch;
}

/* Take the batch's key from the pool, fill its replies and encode its
 * KEY_SYNC_AUTH into sync. With the KM lock held. On failure the batch is
 * failed. */
static int
take_batch(struct km_kx_link *kl, struct km_keyreq *batch, uint64_t total,
           struct sent_sync *sync)
{
	struct qkdn_segment segs[QKDN_SEGS_MAX];
	uint32_t nsegs = 0;
	uint8_t *bytes = malloc(total);
	int rv = QKDN_E_NOMEM;
	if (bytes == NULL)
		goto fail;
	if ((rv = km_pool_take_out(&kl->l->pool, (uint32_t)total, segs,
	                           QKDN_SEGS_MAX, &nsegs, bytes)) != 0)
		goto fail;
	sync->last_blk = segs[nsegs - 1].block_id;
	memcpy(sync->ack_key, bytes + KM_SYNC_MAC_KEY_BYTES,
	       sizeof(sync->ack_key));
	uint64_t at = KEYS_AT;
	for (struct km_keyreq *r = batch; r != NULL; r = r->next) {
		if ((rv = fill_reply(r, bytes + at)) != 0)
			goto fail;
		at += (uint64_t)r->count * (r->bits / 8);
	}
	if ((rv = build_sync(kl, batch, segs, nsegs, bytes, total, sync)) != 0)
		goto fail;
	sodium_memzero(bytes, total);
	free(bytes);
	return 0;
fail:
	if (bytes != NULL) {
		sodium_memzero(bytes, total);
		free(bytes);
	}
	fail_list(batch, rv, "could not take key from the link pool");
	return rv;
}

/* The batch is over: hand out, retry or fail. With the KM lock held. */
static void
finish_batch(struct km_kx_link *kl, struct km_keyreq *batch, int rv,
             const struct sent_sync *sync, const char *why)
{
	uint64_t missing = sync->value, last_blk = sync->last_blk;
	/* the peer lacks a block we hold, or has used positions we are
	 * behind (it moved past its blocks after a power cut): missing names
	 * the block to give up, through its end */
	bool skip =
	    rv == QKDN_E_BLOCK_MISSING || (rv == QKDN_E_REPLAY && missing != 0);
	if (rv == 0 || sync->mismatch)
		km_link_note_sync(kl->l, rv == 0);
	if (sync->mismatch) {
		/* the peer holds other bits than we do there (or the sync was
		 * altered on the way): those blocks are no use to either end */
		QLOG_WARN(SRC,
		          "link %s: the peer could not authenticate a key "
		          "sync; giving up the pool through block %llu",
		          kl->l->conf->id, (unsigned long long)last_blk);
		km_pool_skip_out_block(&kl->l->pool, last_blk);
	}
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

/* Connect to the peer's Kx, over TLS with this node's certificate when
 * its address is tls+tcp:// (its certificate must name the peer). */
static int
connect_peer(struct km_kx_link *kl, uint64_t deadline)
{
	kl->conn.tls = kl->km->kx_tls;
	kl->conn.peer_name = kl->km->net->nodes[kl->l->peer].id;
	int rv = qkdn_sp_connect(
	    &kl->conn, kl->km->net->nodes[kl->l->peer].kx_url, deadline);
	if (rv != 0)
		kl->conn.fd = -1;
	return rv;
}

/* What a failed round trip means to the requests waiting on it: a peer
 * whose certificate is wrong is refused as such; anything else is the
 * peer being out of reach. */
static int
peer_error(int rv)
{
	return rv == QKDN_E_TIMEOUT || rv == QKDN_E_AUTH_FAILED ||
	               rv == QKDN_E_CONFIG
	           ? rv
	           : QKDN_E_UNREACHABLE;
}

/* One round trip of the encoded request msg to the peer KM: 0 with its
 * reply decoded into *reply, or an error with why. *sent says whether the
 * request may have reached the peer (anything but a failed connect). */
static int
roundtrip(struct km_kx_link *kl, const struct qkdn_buf *msg, uint64_t deadline,
          struct qkdn_msg *reply, bool *sent, char *why, size_t whylen)
{
	const char *peer = kl->km->net->nodes[kl->l->peer].id;
	struct qkdn_decode_error err = {0};
	uint8_t *in = NULL;
	size_t in_len = 0;
	int rv;

	*sent = false;
	memset(reply, 0, sizeof(*reply));
	/* a connection kept from before that the peer closed (idle, or a
	 * restart) is retried once on a fresh one: by qkdn_sp_call if it
	 * carried a call before, here if it was only opened while idle.
	 * Sending the sync again is safe: a peer that stored it refuses the
	 * known IDs as a replay. */
	bool idle_conn = kl->conn.fd >= 0 && kl->conn.calls == 0;
	for (;;) {
		if (kl->conn.fd < 0 && (rv = connect_peer(kl, deadline)) != 0) {
			atomic_store(&kl->up, false);
			snprintf(why, whylen, "peer KM %s unreachable: %s",
			         peer, qkdn_sp_last_error());
			return peer_error(rv);
		}
		*sent = true;
		rv = qkdn_sp_call(&kl->conn, msg->data, msg->len, &in, &in_len,
		                  QKDN_MSG_BYTES_MAX, deadline);
		if (rv != QKDN_E_UNREACHABLE || !idle_conn)
			break;
		qkdn_sp_close(&kl->conn);
		idle_conn = false;
	}
	if (rv == 0)
		kl->heard_ms = qkdn_now_ms();
	if (rv != 0) {
		qkdn_sp_close(&kl->conn);
		atomic_store(&kl->up, false);
		snprintf(why, whylen, "peer KM %s: %s", peer,
		         rv == QKDN_E_TIMEOUT ? "no answer within the deadline"
		                              : qkdn_sp_last_error());
		return peer_error(rv);
	}
	atomic_store(&kl->up, true);
	rv = qkdn_msg_decode(in, in_len, reply, &err);
	free(in); /* an acknowledgement: no key material */
	if (rv != 0) {
		snprintf(why, whylen, "bad reply from peer KM: %.200s",
		         err.reason);
		return QKDN_E_INTERNAL;
	}
	return 0;
}

/* A status request on the kept connection (the Kx server answers it with
 * a bare ACK): no answer within 300 ms closes the connection. */
static void
ping_peer(struct km_kx_link *kl)
{
	static const struct qkdn_msg ping = {.type = QKDN_STATUS_REQ};
	struct qkdn_buf req = {0};
	uint8_t *in = NULL;
	size_t in_len = 0;
	if (qkdn_msg_encode(&ping, qkdn_buf_write, &req) != 0) {
		qkdn_buf_free(&req);
		return;
	}
	int rv = qkdn_sp_call(&kl->conn, req.data, req.len, &in, &in_len,
	                      QKDN_MSG_BYTES_MAX, qkdn_now_ms() + PING_MS);
	qkdn_buf_free(&req);
	free(in); /* an ACK: no key material */
	if (rv != 0)
		qkdn_sp_close(&kl->conn);
	else
		kl->heard_ms = qkdn_now_ms();
}

/* One KEY_SYNC round trip; the reply decides the batch's fate. Success
 * counts only with the acknowledgement's tag: a forged ack (from anyone
 * who can reach this connection, but lacks the pool's bits) must never
 * make this KM hand out keys its peer did not store. */
static int
exchange(struct km_kx_link *kl, struct sent_sync *sync, char *why,
         size_t whylen)
{
	const char *peer = kl->km->net->nodes[kl->l->peer].id;
	uint64_t deadline = qkdn_now_ms() + kl->km->node->kx_timeout_ms;
	struct qkdn_msg ack;
	bool sent;
	int rv = roundtrip(kl, &sync->msg, deadline, &ack, &sent, why, whylen);
	if (rv != 0)
		return rv;
	if (ack.type == QKDN_ERROR) {
		snprintf(why, whylen, "peer KM refused: %.200s",
		         ack.u.error.reason);
		rv = -ack.u.error.code;
		sync->mismatch = rv == QKDN_E_AUTH_FAILED;
	} else if (ack.type == QKDN_ACK) {
		snprintf(why, whylen, "peer KM refused");
		rv = ack.u.ack.result;
		sync->value = ack.u.ack.value;
		if (rv == 0 &&
		    km_sync_ack_verify(ack.u.ack.tag.ptr, ack.u.ack.tag.len,
		                       sync->tag, sync->ack_key) != 0) {
			QLOG_WARN(SRC,
			          "link %s: an acknowledgement that failed "
			          "authentication; its keys are not supplied",
			          kl->l->conf->id);
			snprintf(why, whylen,
			         "the acknowledgement of peer KM %s failed "
			         "authentication",
			         peer);
			rv = QKDN_E_AUTH_FAILED;
		}
	} else {
		snprintf(why, whylen, "unexpected reply from peer KM");
		rv = QKDN_E_INTERNAL;
	}
	qkdn_msg_clear(&ack);
	return rv;
}

/* Encode h's KEY_RELAY over the pool bits just taken (MAC key, ack key,
 * pad) and wrap it with its tag into out. */
static int
build_relay(struct km_kx_link *kl, struct km_hop *h,
            const struct qkdn_segment *segs, uint32_t nsegs,
            const uint8_t *bits, struct qkdn_buf *out, uint8_t tag[16])
{
	size_t n = (size_t)h->count * (h->bits / 8);
	struct qkdn_msg m = {.type = QKDN_KEY_RELAY};
	struct qkdn_key_relay *kr = &m.u.key_relay;
	struct qkdn_buf body = {0};
	uint8_t *ct = NULL;
	uint64_t now = qkdn_now_ms();
	int rv = QKDN_E_NOMEM;
	kr->relay_id = h->relay_id;
	kr->route.n = h->route_n;
	kr->route.v = h->route;
	kr->hop = h->hop;
	memcpy(kr->src_sae, h->src_sae, sizeof(kr->src_sae));
	memcpy(kr->dst_sae, h->dst_sae, sizeof(kr->dst_sae));
	kr->bits = h->bits;
	kr->ttl_ms = h->hold_ttl_ms != 0    ? h->hold_ttl_ms
	             : h->deadline_ms > now ? (uint32_t)(h->deadline_ms - now)
	                                    : 1;
	memcpy(kr->link, kl->l->conf->id, sizeof(kr->link));
	kr->segs.n = nsegs;
	kr->segs.v = (struct qkdn_segment *)segs;
	kr->ids.n = h->count;
	kr->ids.v = h->ids;
	if (!h->keys_from_pad) {
		/* the one-time pad: keys XOR the bits after both MAC keys */
		if ((ct = malloc(n)) == NULL)
			return rv;
		km_xor(ct, h->keys, bits + KEYS_AT, n);
		kr->ciphertext.len = (uint32_t)n;
		kr->ciphertext.ptr = ct;
	}
	/* IDs go as 18 bytes each, segments under 32, route names under 66;
	 * the rest well under 1 KiB. Only a regrowth if short. */
	size_t guess = n + (size_t)h->count * 18 + (size_t)nsegs * 32 +
	               (size_t)h->route_n * 66 + 1024;
	if (qkdn_buf_reserve(&body, guess) != 0 ||
	    qkdn_buf_reserve(out, guess + 64) != 0)
		rv = QKDN_E_NOMEM;
	else if ((rv = qkdn_msg_encode(&m, qkdn_buf_write, &body)) == 0) {
		km_mac_tag(tag, body.data, body.len, bits);
		struct qkdn_msg a = {.type = QKDN_KEY_RELAY_AUTH};
		a.u.key_relay_auth.relay.len = (uint32_t)body.len;
		a.u.key_relay_auth.relay.ptr = body.data;
		a.u.key_relay_auth.tag.len = 16;
		a.u.key_relay_auth.tag.ptr = tag;
		rv = qkdn_msg_encode(&a, qkdn_buf_write, out);
	}
	qkdn_buf_free(&body);
	if (ct != NULL) {
		sodium_memzero(ct, n);
		free(ct);
	}
	return rv;
}

/* What the next KM answered to a hop: 0 only for a completion whose tag
 * verifies under the hop's ack key. *skip: the peer named a block to skip
 * through (missing there, or used already), worth a retry. */
static int
hop_reply(struct km_kx_link *kl, struct km_hop *h, const struct qkdn_msg *r,
          const uint8_t tag[16], const uint8_t *ack_key, uint64_t *skip,
          bool *mismatch, char *why, size_t whylen)
{
	const char *peer = kl->km->net->nodes[kl->l->peer].id;
	const struct qkdn_relay_done_notif *d = &r->u.relay_done_notif;
	*skip = 0;
	*mismatch = false;
	switch (r->type) {
	case QKDN_RELAY_DONE_NOTIF:
		if (d->result != 0) {
			snprintf(why, whylen, "KM %s: relay failed (%s)", peer,
			         qkdn_strerror(d->result));
			return d->result;
		}
		if (memcmp(&d->relay_id, &h->relay_id, sizeof(qkdn_uuid)) !=
		        0 ||
		    km_sync_ack_verify(d->tag.ptr, d->tag.len, tag, ack_key) !=
		        0) {
			QLOG_WARN(SRC,
			          "link %s: a relay completion that failed "
			          "authentication; its keys are not supplied",
			          kl->l->conf->id);
			snprintf(why, whylen,
			         "the relay completion from KM %s failed "
			         "authentication",
			         peer);
			return QKDN_E_AUTH_FAILED;
		}
		return 0;
	case QKDN_ERROR:
		snprintf(why, whylen, "KM %s refused the relay: %.180s", peer,
		         r->u.error.reason);
		*mismatch = -r->u.error.code == QKDN_E_AUTH_FAILED;
		return -r->u.error.code;
	case QKDN_ACK:
		if ((r->u.ack.result == QKDN_E_BLOCK_MISSING ||
		     r->u.ack.result == QKDN_E_REPLAY) &&
		    r->u.ack.value != 0)
			*skip = r->u.ack.value;
		snprintf(why, whylen, "KM %s refused the relay: %s", peer,
		         qkdn_strerror(r->u.ack.result));
		return r->u.ack.result != 0 ? r->u.ack.result : QKDN_E_INTERNAL;
	default:
		snprintf(why, whylen, "unexpected reply from KM %s", peer);
		return QKDN_E_INTERNAL;
	}
}

/* Carry hop h: take its bits, one KEY_RELAY_AUTH round trip, check the
 * completion, then h->done (without the KM lock). Entered and left with
 * the KM lock held, by the thread holding the link (its sender, or a
 * borrower): only that thread takes from the out direction. */
static void
run_hop(struct km_kx_link *kl, struct km_hop *h)
{
	struct km *km = kl->km;
	struct km_pool *pool = &kl->l->pool;
	size_t n = (size_t)h->count * (h->bits / 8);
	uint64_t total = KEYS_AT + n;
	uint64_t cap = (uint64_t)(QKDN_SEGS_MAX - 2) * pool->half;
	char why[QKDN_REASON_MAX] = "";
	int rv;
	for (;;) {
		uint64_t now = qkdn_now_ms(), avail = km_pool_out_avail(pool);
		if (now >= h->deadline_ms) {
			rv = QKDN_E_TIMEOUT;
			snprintf(why, sizeof(why),
			         "relay out of time before link %s",
			         kl->l->conf->id);
			break;
		}
		if (total > cap || total > avail) {
			rv = QKDN_E_INSUFFICIENT_KEY;
			snprintf(why, sizeof(why),
			         "link %s holds %llu bytes for this direction; "
			         "the relay needs %llu",
			         kl->l->conf->id, (unsigned long long)avail,
			         (unsigned long long)total);
			break;
		}
		struct km_pos lease;
		if (km_pool_lease_wanted(pool, (uint32_t)total, &lease)) {
			nng_mtx_unlock(km->mtx);
			int lrv = km_pool_lease_write(pool, lease);
			nng_mtx_lock(km->mtx);
			if (lrv == 0)
				km_pool_lease_set(pool, lease);
		}
		struct qkdn_segment *segs =
		    malloc(QKDN_SEGS_MAX * sizeof(*segs));
		uint8_t *bits = km_secbuf_get(total);
		uint32_t nsegs = 0;
		rv = segs == NULL || bits == NULL
		         ? QKDN_E_NOMEM
		         : km_pool_take_out(pool, (uint32_t)total, segs,
		                            QKDN_SEGS_MAX, &nsegs, bits);
		if (rv != 0) {
			if (bits != NULL)
				km_secbuf_put(bits);
			free(segs);
			snprintf(why, sizeof(why),
			         "could not take key from link %s",
			         kl->l->conf->id);
			break;
		}
		nng_mtx_unlock(km->mtx);
		struct qkdn_buf msg = {0};
		struct qkdn_msg reply = {0};
		uint8_t tag[16];
		uint64_t skip = 0;
		bool sent = false, mismatch = false;
		if (h->keys_from_pad)
			memcpy(h->keys, bits + KEYS_AT, n);
		rv = build_relay(kl, h, segs, nsegs, bits, &msg, tag);
		if (rv == 0) {
			uint64_t dl = now + km->node->kx_timeout_ms;
			if (dl > h->deadline_ms)
				dl = h->deadline_ms;
			rv = roundtrip(kl, &msg, dl, &reply, &sent, why,
			               sizeof(why));
			h->may_have_left |= sent;
		} else {
			snprintf(why, sizeof(why),
			         "relay could not be encoded");
		}
		if (rv == 0)
			rv = hop_reply(kl, h, &reply, tag,
			               bits + KM_SYNC_MAC_KEY_BYTES, &skip,
			               &mismatch, why, sizeof(why));
		/* a refusal or skip means the next KM consumed nothing */
		if (reply.type == QKDN_ERROR || reply.type == QKDN_ACK)
			h->may_have_left = false;
		qkdn_msg_clear(&reply);
		qkdn_buf_free(&msg);
		km_secbuf_put(bits); /* wipes */
		uint64_t last_blk = segs[nsegs - 1].block_id;
		if (rv == 0) {
			free(h->segs);
			h->segs = segs;
			h->nsegs = nsegs;
		} else {
			free(segs);
		}
		nng_mtx_lock(km->mtx);
		if (mismatch) {
			km_link_note_sync(kl->l, false);
			km_pool_skip_out_block(pool, last_blk);
		}
		if (skip != 0 && ++h->retries <= MAX_RETRIES) {
			QLOG_WARN(SRC,
			          "link %s: relay hop refused (%s); "
			          "skipping through block %llu",
			          kl->l->conf->id, qkdn_strerror(rv),
			          (unsigned long long)skip);
			km_pool_skip_out_block(pool, skip);
			continue;
		}
		if (skip != 0)
			km_pool_skip_out_block(pool, skip);
		break;
	}
	nng_mtx_unlock(km->mtx);
	h->done(h, rv, why);
	nng_mtx_lock(km->mtx);
}

static void
sender(void *arg)
{
	struct km_kx_link *kl = arg;
	struct km *km = kl->km;
	nng_mtx_lock(km->mtx);
	while (!kl->stopping) {
		if (kl->borrowed) {
			/* woken when the borrower is done and work waits */
			kl->idle = true;
			nng_cv_until(kl->cv, nng_clock() + 1000);
			kl->idle = false;
			continue;
		}
		if (kl->hops != NULL && (kl->head == NULL || kl->hop_turn)) {
			struct km_hop *h = kl->hops;
			kl->hops = h->next;
			if (kl->hops == NULL)
				kl->hops_tail = NULL;
			h->next = NULL;
			kl->hop_turn = false;
			run_hop(kl, h);
			continue;
		}
		kl->hop_turn = true;
		if (kl->head == NULL) {
			/* idle: keep a connection to the peer, and ask it
			 * whether it is still there once it has been silent
			 * for a second, so a cut link shows as down (and is
			 * routed around) without waiting for a request to
			 * fail; never right after traffic, where a ping
			 * would only delay the next request */
			nng_mtx_unlock(km->mtx);
			if (kl->conn.fd < 0) {
				if (connect_peer(kl, qkdn_now_ms() + 200) == 0)
					kl->heard_ms = qkdn_now_ms();
			} else if (qkdn_now_ms() - kl->heard_ms >=
			           PING_EVERY_MS) {
				ping_peer(kl);
			}
			atomic_store(&kl->up, kl->conn.fd >= 0);
			nng_mtx_lock(km->mtx);
			if (kl->head == NULL && kl->hops == NULL &&
			    !kl->stopping && !kl->borrowed) {
				kl->idle = true;
				nng_cv_until(kl->cv, nng_clock() + 1000);
				kl->idle = false;
			}
			continue;
		}
		uint64_t total;
		struct km_keyreq *batch = collect_batch(kl, &total);
		if (batch == NULL)
			continue;
		struct km_pos lease;
		if (km_pool_lease_wanted(&kl->l->pool, (uint32_t)total,
		                         &lease)) {
			/* sync the lease (an fsync) without the KM lock: only
			 * this thread takes from this direction */
			nng_mtx_unlock(km->mtx);
			int lrv = km_pool_lease_write(&kl->l->pool, lease);
			nng_mtx_lock(km->mtx);
			if (lrv == 0)
				km_pool_lease_set(&kl->l->pool, lease);
		}
		struct sent_sync sync = {0};
		if (take_batch(kl, batch, total, &sync) != 0) {
			sent_sync_wipe(&sync);
			continue;
		}
		nng_mtx_unlock(km->mtx);
		char why[QKDN_REASON_MAX] = "";
		int rv = exchange(kl, &sync, why, sizeof(why));
		nng_mtx_lock(km->mtx);
		finish_batch(kl, batch, rv, &sync, why);
		sent_sync_wipe(&sync);
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
	while (kl->borrowed) /* a hop on a Kx connection's thread ends too */
		nng_cv_wait(kl->cv);
	l->kx = NULL;
	fail_list(kl->head, QKDN_E_SHUTDOWN, "KM is stopping");
	struct km_hop *hops = kl->hops;
	kl->hops = kl->hops_tail = NULL;
	nng_mtx_unlock(km->mtx);
	while (hops != NULL) {
		struct km_hop *h = hops;
		hops = h->next;
		h->next = NULL;
		h->done(h, QKDN_E_SHUTDOWN, "KM is stopping");
	}
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

void
km_kx_submit_hop(struct km *km, struct km_link *l, struct km_hop *h)
{
	nng_mtx_lock(km->mtx);
	struct km_kx_link *kl = l->kx;
	h->next = NULL;
	if (kl == NULL || kl->stopping) {
		nng_mtx_unlock(km->mtx);
		h->done(h, QKDN_E_SHUTDOWN, "KM is stopping");
		return;
	}
	if (kl->hops_tail != NULL)
		kl->hops_tail->next = h;
	else
		kl->hops = h;
	kl->hops_tail = h;
	nng_cv_wake1(kl->cv);
	nng_mtx_unlock(km->mtx);
}

void
km_kx_run_hop(struct km *km, struct km_link *l, struct km_hop *h)
{
	nng_mtx_lock(km->mtx);
	struct km_kx_link *kl = l->kx;
	if (kl == NULL || kl->stopping || !kl->idle || kl->borrowed ||
	    kl->hops != NULL || kl->head != NULL || kl->conn.fd < 0) {
		nng_mtx_unlock(km->mtx);
		km_kx_submit_hop(km, l, h);
		return;
	}
	/* the sender sleeps with nothing to do: hold the link in its place,
	 * which saves waking it and being woken by it on every hop */
	kl->borrowed = true;
	run_hop(kl, h);
	kl->borrowed = false;
	if (kl->hops != NULL || kl->head != NULL || kl->stopping)
		nng_cv_wake(kl->cv);
	nng_mtx_unlock(km->mtx);
}
