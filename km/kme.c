#include "kme.h"

#include "kme_http.h"
#include "kx.h"
#include "node.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"
#include "qkdn_server.h"
#include "qkdn_sp.h"
#include "sync.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SRC "kme"
/* the material of one block: the tag's one-time key, the ack's, the block */
#define ACK_KEY_AT   KM_SYNC_MAC_KEY_BYTES
#define BLOCK_AT     KM_SYNC_KEYS_AT
#define RETRY_MS     500  /* after a failed pull */
#define SHORT_MS     200  /* the KME holds too few keys yet */
#define FULL_MS      100  /* the pool has no room: look again */
#define PROBE_MS     1000 /* an idle end asks the KME's status this often */
#define CHUNK_MAX    128 /* keys per dec_keys before the KME's limit is known */
#define KEEP_WAITING 1

struct km_kme {
	struct km *km;
	struct km_link *l;
	int end; /* 0: master (enc_keys, node[0]), 1: slave (dec_keys) */
	struct km_kme_http *http;
	nng_mtx *io; /* one KME call and one block add of this link at a time */
	nng_mtx *mtx; /* what follows, and the thread's sleep */
	nng_cv *cv;
	atomic_bool stop;
	bool down;
	char why[QKDN_REASON_MAX];
	uint64_t ok_ms;   /* the KME last answered */
	uint32_t per_req; /* the KME's max_key_per_request (0: not known) */
	nng_thread *thread;
	struct qkdn_sp_conn conn; /* master: Kx to the peer (its thread) */
};

int
km_kme_global_init(void)
{
	return km_kme_http_global_init();
}

void
km_kme_global_fini(void)
{
	km_kme_http_global_fini();
}

static uint64_t
unix_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The link's health at this end: logged once per change. */
static void
set_down(struct km_kme *k, const char *why)
{
	nng_mtx_lock(k->mtx);
	bool was = k->down;
	k->down = true;
	snprintf(k->why, sizeof(k->why), "%s", why);
	nng_mtx_unlock(k->mtx);
	if (!was)
		QLOG_WARN(SRC, "link %s down: %s", k->l->conf->id, why);
}

static void
set_up(struct km_kme *k)
{
	nng_mtx_lock(k->mtx);
	bool was = k->down;
	k->down = false;
	k->why[0] = '\0';
	k->ok_ms = qkdn_now_ms();
	nng_mtx_unlock(k->mtx);
	if (was)
		QLOG_INFO(SRC, "link %s: its KME answers again",
		          k->l->conf->id);
}

bool
km_kme_down(struct km_link *l, char *why, size_t whylen)
{
	struct km_kme *k = l->kme;
	if (k == NULL)
		return false;
	nng_mtx_lock(k->mtx);
	bool down = k->down;
	snprintf(why, whylen, "%s", down ? k->why : "");
	nng_mtx_unlock(k->mtx);
	return down;
}

/* Sleep up to ms, or until stopping. */
static void
nap(struct km_kme *k, uint64_t ms)
{
	nng_mtx_lock(k->mtx);
	if (!atomic_load(&k->stop))
		nng_cv_until(k->cv, nng_clock() + ms);
	nng_mtx_unlock(k->mtx);
}

/* How many keys of klen bytes make one block's material: both MAC keys
 * and the block (the excess of the last key is wasted). */
static uint32_t
keys_per_block(const struct qkdn_net_link *lc, uint32_t klen)
{
	return (uint32_t)((BLOCK_AT + (uint64_t)lc->block_bytes + klen - 1) /
	                  klen);
}

/* Store one block of the link and add it to the pool (both ends alike). */
static int
add_block(struct km_kme *k, uint64_t blk, const uint8_t *bytes)
{
	struct km *km = k->km;
	const struct qkdn_net_link *lc = k->l->conf;
	int rv =
	    km_store_block_put(km->st, lc->id, blk, bytes, lc->block_bytes);
	if (rv == 0) {
		nng_mtx_lock(km->mtx);
		rv = km_pool_note_block(&k->l->pool, blk);
		nng_mtx_unlock(km->mtx);
	}
	return rv;
}

/* An end that has not heard from its KME for PROBE_MS asks its status:
 * so a KME that stops answering shows as the link down even while no key
 * is pulled (a full pool, or the slave end between blocks). It also learns
 * the KME's limit per request. */
static void
probe(struct km_kme *k)
{
	const struct qkdn_net_link *lc = k->l->conf;
	nng_mtx_lock(k->mtx);
	uint64_t since = qkdn_now_ms() - k->ok_ms;
	nng_mtx_unlock(k->mtx);
	if (since < PROBE_MS)
		return;
	struct km_kme_status st;
	char why[QKDN_REASON_MAX] = "";
	nng_mtx_lock(k->io);
	int rv = km_kme_http_status(k->http, lc->kme[1 - k->end].sae, &st, why,
	                            sizeof(why));
	if (rv == 0)
		k->per_req = st.max_key_per_request;
	nng_mtx_unlock(k->io);
	if (rv == 0)
		set_up(k);
	else if (rv != QKDN_E_SHUTDOWN)
		set_down(k, why);
}

/* ---- the master end ---- */

/* Encode the KME_KEYS naming ids and wrap it with its tag. */
static int
seal_keys(struct km_kme *k, uint64_t blk, uint32_t bits, qkdn_uuid *ids,
          uint32_t n, const uint8_t *mat, size_t total, struct qkdn_buf *out,
          uint8_t tag[16])
{
	struct qkdn_msg m = {.type = QKDN_KME_KEYS};
	struct qkdn_buf body = {0};
	memcpy(m.u.kme_keys.link, k->l->conf->id, sizeof(qkdn_name));
	m.u.kme_keys.block_id = blk;
	m.u.kme_keys.bits = bits;
	m.u.kme_keys.ids.n = n;
	m.u.kme_keys.ids.v = ids;
	int rv = qkdn_msg_encode(&m, qkdn_buf_write, &body);
	if (rv == 0) {
		km_mac_bits_tag(tag, body.data, body.len, mat, total);
		struct qkdn_msg a = {.type = QKDN_KME_KEYS_AUTH};
		a.u.kme_keys_auth.keys.len = (uint32_t)body.len;
		a.u.kme_keys_auth.keys.ptr = body.data;
		a.u.kme_keys_auth.tag.len = 16;
		a.u.kme_keys_auth.tag.ptr = tag;
		rv = qkdn_msg_encode(&a, qkdn_buf_write, out);
	}
	qkdn_buf_free(&body);
	return rv;
}

/* One round trip to the peer KM: 0 only for an ACK whose tag proves it
 * holds the same material (its ack key). */
static int
tell_peer(struct km_kme *k, const struct qkdn_buf *msg, const uint8_t tag[16],
          const uint8_t *ack_key, char *why, size_t whylen)
{
	struct km *km = k->km;
	const char *peer = km->net->nodes[k->l->peer].id;
	uint64_t deadline = qkdn_now_ms() + km->node->kx_timeout_ms;
	struct qkdn_decode_error err = {0};
	struct qkdn_msg r;
	uint8_t *in = NULL;
	size_t in_len = 0;
	int rv = 0;
	if (k->conn.fd < 0) {
		k->conn.tls = km->kx_tls;
		k->conn.peer_name = peer;
		rv = qkdn_sp_connect(
		    &k->conn, km->net->nodes[k->l->peer].kx_url, deadline);
		if (rv != 0)
			k->conn.fd = -1;
	}
	if (rv == 0)
		rv = qkdn_sp_call(&k->conn, msg->data, msg->len, &in, &in_len,
		                  QKDN_MSG_BYTES_MAX, deadline);
	if (rv != 0) {
		qkdn_sp_close(&k->conn);
		k->conn.fd = -1;
		snprintf(why, whylen, "peer KM %s: %s", peer,
		         qkdn_sp_last_error());
		return rv;
	}
	rv = qkdn_msg_decode(in, in_len, &r, &err);
	free(in); /* an acknowledgement: no key material */
	if (rv != 0) {
		snprintf(why, whylen, "bad reply from peer KM %s: %.150s", peer,
		         err.reason);
		return rv;
	}
	if (r.type == QKDN_ERROR) {
		snprintf(why, whylen, "peer KM %s: %.180s", peer,
		         r.u.error.reason);
		rv = -r.u.error.code;
	} else if (r.type != QKDN_ACK || r.u.ack.result != 0) {
		snprintf(why, whylen, "peer KM %s refused the key IDs: %s",
		         peer,
		         qkdn_strerror(r.type == QKDN_ACK ? r.u.ack.result
		                                          : QKDN_E_INTERNAL));
		rv = r.type == QKDN_ACK ? r.u.ack.result : QKDN_E_INTERNAL;
	} else if (km_sync_ack_verify(r.u.ack.tag.ptr, r.u.ack.tag.len, tag,
	                              ack_key) != 0) {
		snprintf(why, whylen,
		         "the acknowledgement of peer KM %s failed "
		         "authentication",
		         peer);
		rv = QKDN_E_AUTH_FAILED;
	}
	qkdn_msg_clear(&r);
	return rv;
}

/* Pull one block's keys with enc_keys, name them to the peer, and add the
 * block once the peer proved it holds the same: 0, KEEP_WAITING (the KME
 * has too few keys yet), or an error with why. With k->io held. */
static int
pull_one(struct km_kme *k, char *why, size_t whylen)
{
	const struct qkdn_net_link *lc = k->l->conf;
	struct km_kme_status st;
	struct qkdn_buf msg = {0};
	uint8_t tag[16];
	int rv = km_kme_http_status(k->http, lc->kme[1].sae, &st, why, whylen);
	if (rv != 0)
		return rv;
	if (st.key_size < 8 || st.key_size % 8 != 0 ||
	    st.key_size > QKDN_KEY_BYTES_MAX * 8) {
		snprintf(why, whylen,
		         "KME %.120s: key_size %u is not whole bytes in 8..%u",
		         lc->kme[0].url, st.key_size, QKDN_KEY_BYTES_MAX * 8);
		return QKDN_E_UNSUPPORTED;
	}
	uint32_t klen = st.key_size / 8, n = keys_per_block(lc, klen);
	if (n > QKDN_KEYS_MAX) {
		snprintf(why, whylen,
		         "a block of %u bytes needs %u keys of %u bits, more "
		         "than %u",
		         lc->block_bytes, n, st.key_size, QKDN_KEYS_MAX);
		return QKDN_E_TOO_LARGE;
	}
	if (st.has_stored && st.stored_key_count < n)
		return KEEP_WAITING;
	uint32_t per = st.max_key_per_request != 0 ? st.max_key_per_request : n;
	size_t total = (size_t)n * klen;
	uint8_t *mat = sodium_malloc(total);
	qkdn_uuid *ids = malloc((size_t)n * sizeof(*ids));
	rv = mat == NULL || ids == NULL ? QKDN_E_NOMEM : 0;
	for (uint32_t off = 0; rv == 0 && off < n; off += per)
		rv = km_kme_http_enc(k->http, lc->kme[1].sae,
		                     n - off < per ? n - off : per, st.key_size,
		                     ids + off, mat + (size_t)off * klen, why,
		                     whylen);
	if (rv != 0)
		goto out;
	/* after every block this end holds, from the clock so that IDs
	 * keep growing across restarts; the tag covers it */
	nng_mtx_lock(k->km->mtx);
	uint64_t newest = km_pool_newest(&k->l->pool);
	nng_mtx_unlock(k->km->mtx);
	uint64_t blk = unix_us();
	if (blk <= newest)
		blk = newest + 1;
	if ((rv = seal_keys(k, blk, st.key_size, ids, n, mat, total, &msg,
	                    tag)) != 0) {
		snprintf(why, whylen, "cannot encode the key IDs: %s",
		         qkdn_strerror(rv));
		goto out;
	}
	if ((rv = tell_peer(k, &msg, tag, mat + ACK_KEY_AT, why, whylen)) ==
	        0 &&
	    (rv = add_block(k, blk, mat + BLOCK_AT)) != 0)
		snprintf(why, whylen, "block %llu not stored: %s",
		         (unsigned long long)blk, qkdn_strerror(rv));
	if (rv == QKDN_E_AUTH_FAILED)
		km_link_note_sync(k->l, false);
out:
	qkdn_buf_free(&msg);
	if (mat != NULL)
		sodium_free(mat); /* wipes */
	free(ids);
	return rv;
}

/* Pull while either direction of the pool has room: a full pool keeps the
 * KME's keys for later, but a drained direction gets fresh blocks even if
 * the pool then drops its oldest (as with the emulator). */
static bool
room(struct km_kme *k)
{
	struct km_pool *p = &k->l->pool;
	nng_mtx_lock(k->km->mtx);
	uint64_t half_cap = (uint64_t)p->max_blocks * p->half / 2;
	bool r = p->n < p->max_blocks || km_pool_out_avail(p) < half_cap ||
	         km_pool_in_avail(p) < half_cap;
	nng_mtx_unlock(k->km->mtx);
	return r;
}

static void
master_run(void *arg)
{
	struct km_kme *k = arg;
	const struct qkdn_net_link *lc = k->l->conf;
	/* the link's rate is the most it pulls: one block per this long */
	uint64_t pace_ms = (uint64_t)lc->block_bytes * 8000u / lc->rate_bps;
	uint64_t next = qkdn_now_ms();
	while (!atomic_load(&k->stop)) {
		uint64_t now = qkdn_now_ms();
		if (now < next) {
			nap(k, next - now);
			continue;
		}
		if (!room(k)) {
			probe(k);
			nap(k, FULL_MS);
			continue;
		}
		char why[QKDN_REASON_MAX] = "";
		nng_mtx_lock(k->io);
		int rv = pull_one(k, why, sizeof(why));
		nng_mtx_unlock(k->io);
		if (rv == 0 || rv == KEEP_WAITING) {
			set_up(k);
			next = now + (rv == 0 ? pace_ms : SHORT_MS);
		} else if (rv != QKDN_E_SHUTDOWN) {
			set_down(k, why);
			next = qkdn_now_ms() + RETRY_MS;
		}
	}
}

/* ---- the slave end ---- */

static void
slave_run(void *arg)
{
	struct km_kme *k = arg;
	while (!atomic_load(&k->stop)) {
		probe(k);
		nap(k, PROBE_MS / 4);
	}
}

/* Take the keys a KME_KEYS names with dec_keys, check the tag, add the
 * block. 0 with the ack's tag; else an error with why. With k->io held. */
static int
take_keys(struct km_kme *k, const struct qkdn_kme_keys_auth *a,
          const struct qkdn_kme_keys *kk, uint8_t ack[16], char *why,
          size_t whylen)
{
	struct km *km = k->km;
	const struct qkdn_net_link *lc = k->l->conf;
	uint32_t klen = kk->bits / 8, n = kk->ids.n;
	uint32_t per = k->per_req != 0 ? k->per_req : CHUNK_MAX;
	size_t total = (size_t)n * klen;
	uint8_t tag[16];
	int rv = 0;
	if (n != keys_per_block(lc, klen)) {
		snprintf(why, whylen,
		         "%u keys of %u bits, but a block of link %s takes %u",
		         n, kk->bits, lc->id, keys_per_block(lc, klen));
		return QKDN_E_BAD_REQUEST;
	}
	nng_mtx_lock(km->mtx);
	uint64_t newest = km_pool_newest(&k->l->pool);
	nng_mtx_unlock(km->mtx);
	if (newest != 0 && kk->block_id <= newest) {
		snprintf(why, whylen,
		         "block %llu of link %s is not above the newest held "
		         "(%llu)",
		         (unsigned long long)kk->block_id, lc->id,
		         (unsigned long long)newest);
		return QKDN_E_REPLAY;
	}
	uint8_t *mat = sodium_malloc(total);
	if (mat == NULL)
		return QKDN_E_NOMEM;
	for (uint32_t off = 0; rv == 0 && off < n; off += per)
		rv = km_kme_http_dec(k->http, lc->kme[0].sae,
		                     n - off < per ? n - off : per, kk->bits,
		                     kk->ids.v + off, mat + (size_t)off * klen,
		                     why, whylen);
	if (rv != 0) {
		/* unknown IDs (forged, or served already) say nothing of the
		 * KME's health; anything else does */
		if (rv != QKDN_E_BAD_REQUEST)
			set_down(k, why);
		goto out;
	}
	set_up(k);
	km_mac_bits_tag(tag, a->keys.ptr, a->keys.len, mat, total);
	if (a->tag.len != sizeof(tag) ||
	    crypto_verify_16(tag, a->tag.ptr) != 0) {
		static struct qkdn_log_limit forged;
		QLOG_LIMITED(&forged, QKDN_LOG_WARN, SRC,
		             "link %s: key IDs for block %llu failed "
		             "authentication; nothing stored",
		             lc->id, (unsigned long long)kk->block_id);
		km_link_note_sync(k->l, false);
		snprintf(why, whylen,
		         "KME key IDs on link %s: authentication failed "
		         "(forged, altered, or the KME served the two ends "
		         "other keys)",
		         lc->id);
		rv = QKDN_E_AUTH_FAILED;
		goto out;
	}
	if ((rv = add_block(k, kk->block_id, mat + BLOCK_AT)) != 0) {
		snprintf(why, whylen, "block %llu not stored: %s",
		         (unsigned long long)kk->block_id, qkdn_strerror(rv));
		goto out;
	}
	km_sync_ack_tag(ack, tag, mat + ACK_KEY_AT);
out:
	sodium_memzero(tag, sizeof(tag));
	sodium_free(mat); /* wipes */
	return rv;
}

void
km_kme_handle_auth(struct qkdn_server_req *w, struct qkdn_msg *req)
{
	struct km *km = qkdn_server_arg(w);
	const struct qkdn_kme_keys_auth *a = &req->u.kme_keys_auth;
	struct qkdn_decode_error err = {0};
	struct qkdn_msg m;
	/* "out of memory" for the paths below that set no reason */
	char why[QKDN_REASON_MAX] = "out of memory";
	uint8_t ack[16];
	int rv = qkdn_msg_decode(a->keys.ptr, a->keys.len, &m, &err);
	if (rv != 0) {
		qkdn_server_error(w, rv, err.reason);
		return;
	}
	const struct qkdn_kme_keys *kk = &m.u.kme_keys;
	struct km_link *l =
	    m.type == QKDN_KME_KEYS ? km_link_named(km, kk->link) : NULL;
	const char *cert_name = qkdn_server_peer_name(w);
	if (l == NULL || l->kme == NULL || l->kme->end != 1) {
		snprintf(why, sizeof(why),
		         "node %s is not the slave end of a KME-fed link %s",
		         km->node->id, m.type == QKDN_KME_KEYS ? kk->link : "");
		rv = QKDN_E_BAD_REQUEST;
	} else if (cert_name != NULL &&
	           strcmp(cert_name, km->net->nodes[l->peer].id) != 0) {
		/* over tls+tcp:// only the link's peer node may name keys */
		snprintf(why, sizeof(why),
		         "the peer's certificate names %s, but link %s joins "
		         "this node to %s",
		         cert_name, l->conf->id, km->net->nodes[l->peer].id);
		rv = QKDN_E_NOT_AUTHORISED;
	} else {
		nng_mtx_lock(l->kme->io);
		rv = take_keys(l->kme, a, kk, ack, why, sizeof(why));
		nng_mtx_unlock(l->kme->io);
	}
	qkdn_msg_clear(&m);
	if (rv != 0) {
		qkdn_server_error(w, rv, why);
		return;
	}
	km_kx_reply_ack(w, 0, 0, ack);
}

/* ---- start and stop ---- */

int
km_kme_open(struct km *km, struct km_link *l)
{
	const struct qkdn_net_link *lc = l->conf;
	if (lc->kme[0].url[0] == '\0')
		return 0;
	struct km_kme *k = calloc(1, sizeof(*k));
	int rv;
	if (k == NULL)
		return QKDN_E_NOMEM;
	k->km = km;
	k->l = l;
	k->end = lc->node[0] == km->self ? 0 : 1;
	k->conn.fd = -1;
	atomic_init(&k->stop, false);
	const struct qkdn_net_kme_end *e = &lc->kme[k->end];

	if ((rv = nng_mtx_alloc(&k->io)) != 0 ||
	    (rv = nng_mtx_alloc(&k->mtx)) != 0 ||
	    (rv = nng_cv_alloc(&k->cv, k->mtx)) != 0) {
		rv = qkdn_err_from_nng(rv);
		goto fail;
	}
	/* a KME call waits at most half a Kx deadline: the slave's dec_keys
	 * runs inside the master's Kx call, whose refusal must arrive */
	uint32_t http_ms =
	    km->node->kx_timeout_ms / 2 ? km->node->kx_timeout_ms / 2 : 1;
	if ((rv = km_kme_http_new(&k->http, e->url, lc->kme_ca, e->cert, e->key,
	                          http_ms, &k->stop)) != 0)
		goto fail;
	/* down until the KME first answered */
	k->down = true;
	snprintf(k->why, sizeof(k->why), "KME %.200s not asked yet", e->url);
	l->kme = k;
	if ((rv = nng_thread_create(
	         &k->thread, k->end == 0 ? master_run : slave_run, k)) != 0) {
		l->kme = NULL;
		rv = qkdn_err_from_nng(rv);
		goto fail;
	}
	QLOG_INFO(SRC, "link %s: fed by KME %s as SAE %s (%s end)", lc->id,
	          e->url, e->sae,
	          k->end == 0 ? "master: enc_keys" : "slave: dec_keys");
	return 0;
fail:
	QLOG_ERR(SRC, "link %s: cannot use KME %s: %s", lc->id, e->url,
	         qkdn_strerror(rv));
	km_kme_http_free(k->http);
	if (k->cv != NULL)
		nng_cv_free(k->cv);
	if (k->mtx != NULL)
		nng_mtx_free(k->mtx);
	if (k->io != NULL)
		nng_mtx_free(k->io);
	free(k);
	return rv;
}

void
km_kme_close(struct km_link *l)
{
	struct km_kme *k = l->kme;
	if (k == NULL)
		return;
	nng_mtx_lock(k->mtx);
	atomic_store(&k->stop, true);
	nng_cv_wake(k->cv);
	nng_mtx_unlock(k->mtx);
	nng_thread_destroy(k->thread); /* joins: a pull in flight ends */
	l->kme = NULL;
	qkdn_sp_close(&k->conn);
	km_kme_http_free(k->http);
	nng_cv_free(k->cv);
	nng_mtx_free(k->mtx);
	nng_mtx_free(k->io);
	free(k);
}
