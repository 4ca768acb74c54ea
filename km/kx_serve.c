/* Kx server: a peer KM's KEY_SYNC_AUTH (Q.4160 I.1 step 2 at the
 * destination KM). Decoded and checked (link, SAEs, sizes), the named pool
 * bits read, the tag checked over the bytes that travelled and those bits,
 * then the keys stored with the new in-mark in one transaction, and an
 * acknowledgement sent. It runs on the connection's thread (qkdn_server.h):
 * it reads the pool under the KM lock and commits to LMDB. */
#include "kx.h"

#include "kme.h"
#include "node.h"
#include "relay.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_server.h"
#include "sync.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC "kx"
/* connection caps of the Kx listener */
#define KX_CONNS_FREE     16
#define KX_CONNS_PER_LINK 4
#define KX_CONNS_PER_HOST 8
#define BLOCK_WAIT_MS     10
/* A sync may wait for a block that is on its way only if it is at most
 * this many blocks ahead of the newest held (a block the link could not
 * have produced yet is refused at once), and only this many syncs per link
 * wait at a time (an honest peer sends one at a time per link): forged
 * syncs cannot hold many connection threads waiting. */
#define WAIT_AHEAD_BLOCKS 4096
#define WAITS_PER_LINK    2

struct km_kx_server {
	struct qkdn_server *srv;
};

/* Per connection: when a sync waiting for its block gives up. */
struct sync_slot {
	uint64_t deadline_ms;
	struct km_link *waiting_on; /* counted in its syncs_waiting */
};

/* tag: the acknowledgement's tag (a stored sync), or NULL */
static void
reply_ack(struct qkdn_server_req *w, int result, uint64_t value, uint8_t *tag)
{
	struct qkdn_msg m = {.type = QKDN_ACK};
	m.u.ack.result = result;
	m.u.ack.value = value;
	if (tag != NULL) {
		m.u.ack.tag.len = 16;
		m.u.ack.tag.ptr = tag;
	}
	qkdn_server_reply(w, &m);
}

/* Who may appear in a sync from the peer across link l; *bytes gets the
 * pool bits the sync names (MAC key and keys). */
static int
check_sync_saes(struct km *km, struct km_link *l,
                const struct qkdn_key_sync *ks, uint64_t *bytes, char *why,
                size_t whylen)
{
	const struct qkdn_net *net = km->net;
	uint64_t total = KM_SYNC_KEYS_AT, keys = 0;
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
	if (keys > QKDN_KEYS_MAX) {
		snprintf(why, whylen, "%llu keys in one sync, limit %u",
		         (unsigned long long)keys, QKDN_KEYS_MAX);
		return QKDN_E_TOO_LARGE;
	}
	*bytes = total;
	return 0;
}

/* Store the keys of an authenticated sync; bytes = MAC keys, then keys. */
static int
store_sync(struct km *km, struct km_link *l, const struct qkdn_key_sync *ks,
           const uint8_t *bytes)
{
	size_t n = 0, at = KM_SYNC_KEYS_AT;
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

/* What the pool says about the sync's positions: 0 with the bits read,
 * or a reason to retry later, to tell the peer where to skip to, or to
 * refuse. With the KM lock held. */
enum read_outcome { READ_OK, READ_WAIT, READ_SKIP, READ_FAIL };

static enum read_outcome
read_bits(struct km_link *l, const struct qkdn_segments *segs, uint8_t *bytes,
          uint64_t total, struct sync_slot *slot, int *rv, uint64_t *skip)
{
	uint32_t len = 0;
	uint64_t missing = 0;
	bool later = false;
	*rv = km_pool_read_in(&l->pool, segs, bytes, (uint32_t)total, &len,
	                      &missing, &later);
	switch (*rv) {
	case 0:
		if (len == total)
			return READ_OK;
		*rv = QKDN_E_RANGE;
		return READ_FAIL;
	case QKDN_E_BLOCK_MISSING:
		/* the emulator's copy for this end may still be on its way */
		if (later && qkdn_now_ms() < slot->deadline_ms &&
		    (l->pool.n == 0 ||
		     missing - km_pool_newest(&l->pool) <= WAIT_AHEAD_BLOCKS) &&
		    (slot->waiting_on == l ||
		     l->syncs_waiting < WAITS_PER_LINK)) {
			if (slot->waiting_on != l) {
				slot->waiting_on = l;
				l->syncs_waiting++;
			}
			return READ_WAIT;
		}
		/* the whole gap up to the next block held here: the peer
		 * skips it at once, not one block per round trip */
		*skip = km_pool_gap_end(&l->pool, missing);
		return READ_SKIP;
	case QKDN_E_REPLAY:
		/* positions used here already: the peer restarted behind us,
		 * or we moved past our blocks after a power cut. Naming the
		 * last block used lets it catch up in one step. */
		*skip = km_pool_in_used_through(&l->pool);
		return *skip != 0 ? READ_SKIP : READ_FAIL;
	default:
		return READ_FAIL;
	}
}

/* The sync of this context no longer waits: before its reply is sent (the
 * context then serves the next request). */
static void
end_wait(struct km *km, struct sync_slot *slot)
{
	if (slot->waiting_on != NULL) {
		nng_mtx_lock(km->mtx);
		slot->waiting_on->syncs_waiting--;
		nng_mtx_unlock(km->mtx);
	}
	*slot = (struct sync_slot){0};
}

/* Serve one sync; one that waits for a block is served again
 * BLOCK_WAIT_MS later. */
static void
handle_sync(struct qkdn_server_req *w, struct qkdn_msg *req)
{
	struct km *km = qkdn_server_arg(w);
	struct sync_slot *slot = qkdn_server_slot(w);
	struct qkdn_decode_error err = {0};
	struct qkdn_msg sync;
	char why[QKDN_REASON_MAX];
	uint64_t total = 0, skip = 0;
	uint8_t *bytes = NULL;
	int rv;

	if (slot->deadline_ms == 0)
		slot->deadline_ms = qkdn_now_ms() + km->node->kx_timeout_ms / 2;
	if ((rv = km_sync_unwrap(&req->u.key_sync_auth, &sync, &err)) != 0) {
		end_wait(km, slot);
		qkdn_server_error(w, rv, err.reason);
		return;
	}
	const struct qkdn_key_sync *ks = &sync.u.key_sync;
	struct km_link *l = km_link_named(km, ks->link);
	if (l == NULL) {
		snprintf(why, sizeof(why), "node %s has no link %s",
		         km->node->id, ks->link);
		rv = QKDN_E_BAD_REQUEST;
		goto refuse;
	}
	/* over tls+tcp:// only the peer node of the link may sync it */
	const char *cert_name = qkdn_server_peer_name(w);
	const char *peer = km->net->nodes[l->peer].id;
	if (cert_name != NULL && strcmp(cert_name, peer) != 0) {
		snprintf(why, sizeof(why),
		         "the peer's certificate names %s, but link %s joins "
		         "this node to %s",
		         cert_name, l->conf->id, peer);
		rv = QKDN_E_NOT_AUTHORISED;
		goto refuse;
	}
	if ((rv = check_sync_saes(km, l, ks, &total, why, sizeof(why))) != 0)
		goto refuse;
	if ((bytes = malloc(total)) == NULL) {
		snprintf(why, sizeof(why), "out of memory");
		rv = QKDN_E_NOMEM;
		goto refuse;
	}
	/* the lock covers the pool only: the MAC and the store commit run
	 * without it (syncs of one link come one at a time from its peer,
	 * and a replay of the same IDs fails on the store) */
	nng_mtx_lock(km->mtx);
	enum read_outcome o =
	    read_bits(l, &ks->segs, bytes, total, slot, &rv, &skip);
	nng_mtx_unlock(km->mtx);
	if (o == READ_WAIT) {
		free(bytes);
		qkdn_msg_clear(&sync);
		qkdn_server_retry(w, BLOCK_WAIT_MS);
		return;
	}
	end_wait(km, slot);
	if (o == READ_SKIP) {
		static struct qkdn_log_limit skips;
		free(bytes);
		QLOG_LIMITED(&skips, QKDN_LOG_WARN, SRC,
		             "link %s: %s (through block %llu)", l->conf->id,
		             rv == QKDN_E_BLOCK_MISSING
		                 ? "the peer names a block missing here"
		                 : "the peer names positions used here",
		             (unsigned long long)skip);
		qkdn_msg_clear(&sync);
		reply_ack(w, rv, skip, NULL);
		return;
	}
	/* check the MAC before anything is consumed */
	if (o == READ_OK &&
	    (rv = km_sync_verify(&req->u.key_sync_auth, bytes, total)) != 0)
		km_link_note_sync(l, false);
	uint8_t ack[16];
	if (o == READ_OK && rv == 0 &&
	    (rv = store_sync(km, l, ks, bytes)) == 0) {
		nng_mtx_lock(km->mtx);
		km_pool_advance_in(&l->pool, km_pool_segs_end(&ks->segs));
		nng_mtx_unlock(km->mtx);
		km_link_note_sync(l, true);
		km_sync_ack_tag(ack, req->u.key_sync_auth.tag.ptr,
		                bytes + KM_SYNC_MAC_KEY_BYTES);
	}
	sodium_memzero(bytes, total);
	free(bytes);
	if (rv == 0) {
		qkdn_msg_clear(&sync);
		reply_ack(w, 0, 0, ack);
		return;
	}
	snprintf(why, sizeof(why), "key sync on link %s: %s", l->conf->id,
	         rv == QKDN_E_AUTH_FAILED
	             ? "authentication failed (forged, altered, or the two "
	               "ends' pools differ)"
	             : qkdn_strerror(rv));
refuse:
	end_wait(km, slot);
	qkdn_msg_clear(&sync);
	qkdn_server_error(w, rv, why);
}

enum km_kx_read
km_kx_read_in(struct qkdn_server_req *w, struct km_link *l,
              const struct qkdn_segments *segs, uint8_t *bytes, uint64_t total,
              int *rv, uint64_t *skip)
{
	struct km *km = qkdn_server_arg(w);
	struct sync_slot *slot = qkdn_server_slot(w);
	if (slot->deadline_ms == 0)
		slot->deadline_ms = qkdn_now_ms() + km->node->kx_timeout_ms / 2;
	nng_mtx_lock(km->mtx);
	enum read_outcome o = read_bits(l, segs, bytes, total, slot, rv, skip);
	nng_mtx_unlock(km->mtx);
	switch (o) {
	case READ_OK:
		return KM_KX_READ_OK;
	case READ_WAIT:
		return KM_KX_READ_WAIT;
	case READ_SKIP:
		return KM_KX_READ_SKIP;
	default:
		return KM_KX_READ_FAIL;
	}
}

void
km_kx_end_wait(struct qkdn_server_req *w)
{
	end_wait(qkdn_server_arg(w), qkdn_server_slot(w));
}

void
km_kx_reply_ack(struct qkdn_server_req *w, int result, uint64_t value,
                uint8_t *tag)
{
	reply_ack(w, result, value, tag);
}

/* Relay messages come from peer KMs (108, 109) and from the controller
 * (21, 18, 23, 110). The Kx sender's liveness probe of an idle link (a
 * status request) is answered at once. */
static void
handle_ping(struct qkdn_server_req *w, struct qkdn_msg *req)
{
	(void)req;
	reply_ack(w, 0, 0, NULL);
}

static const struct qkdn_handler handlers[] = {
    {QKDN_STATUS_REQ, handle_ping},
    {QKDN_KEY_SYNC_AUTH, handle_sync},
    {QKDN_KME_KEYS_AUTH, km_kme_handle_auth},
    {QKDN_KEY_RELAY_AUTH, km_relay_handle_auth},
    {QKDN_RELAY_ABORT, km_relay_handle_abort},
    {QKDN_RESERVE_REQ, km_relay_handle_reserve},
    {QKDN_RELAY_REQ, km_relay_handle_relay_req},
    {QKDN_ALLOC_REQ, km_relay_handle_alloc},
    {QKDN_RESERVE_RELEASE, km_relay_handle_release},
};

int
km_kx_server_start(struct km *km, struct km_kx_server **out)
{
	struct km_kx_server *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return QKDN_E_NOMEM;
	const struct qkdn_tls_files tls = {
	    .ca = km->net->ca, .cert = km->node->cert, .key = km->node->key};
	struct qkdn_server_config cfg = {
	    .name = "Kx",
	    .log_src = SRC,
	    .refusal_level = QKDN_LOG_WARN,
	    .url = km->node->kx_url,
	    .recv_max = KM_KX_RECV_MAX,
	    .slot_size = sizeof(struct sync_slot),
	    .handlers = handlers,
	    .n_handlers = sizeof(handlers) / sizeof(handlers[0]),
	    .arg = km,
	    .errors = &km->kx_errors,
	    .tls = &tls,
	    /* a peer KM keeps one connection per link: a few more for
	     * restarts and probes, and nothing for anyone else */
	    .max_conns = KX_CONNS_FREE + KX_CONNS_PER_LINK * (int)km->n_links,
	    .max_conns_per_host = KX_CONNS_PER_HOST,
	};
	int rv = qkdn_server_start(&s->srv, &cfg);
	if (rv != 0) {
		free(s);
		return rv;
	}
	*out = s;
	return 0;
}

void
km_kx_server_stop(struct km_kx_server *s)
{
	if (s == NULL)
		return;
	qkdn_server_stop(s->srv);
	free(s);
}
