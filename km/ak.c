#include "ak.h"

#include "kx.h"
#include "node.h"
#include "relay.h"
#include "route.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SRC "ak"

struct km_ak {
	struct qkdn_server *srv;
};

/* The node's ETSI 014 gateway (docs/etsi014.md) speaks for every SAE of
 * the node, which it authenticated by their client certificates: on
 * tls+tcp:// it is the certificate named etsi014_name, on ipc:// the uid
 * etsi014_uid (default the KM's own). A node without a gateway trusts
 * nobody this way. */
static bool
is_gateway(struct qkdn_server_req *w, const struct qkdn_net_node *node)
{
	if (node->etsi014_url[0] == '\0')
		return false;
	const char *cert_name = qkdn_server_peer_name(w);
	if (cert_name != NULL)
		return strcmp(cert_name, node->etsi014_name) == 0;
	uint64_t peer_uid;
	if (!qkdn_server_peer_uid(w, &peer_uid))
		return false;
	uint64_t want = node->etsi014_uid >= 0 ? (uint64_t)node->etsi014_uid
	                                       : (uint64_t)geteuid();
	return peer_uid == want;
}

/* Ak authentication: the SAE must be attached to this node, and
 *  - over tls+tcp:// the client's certificate must name the SAE;
 *  - over ipc:// the peer must run as the SAE's configured uid, or as the
 *    KM's own uid when the SAE has none (the socket may be open to all
 *    users when some SAE of the node runs as another uid);
 *  - a plain tcp:// Ak carries no identity at all: it serves keys only
 *    when the network file marks it trusted (one host, loopback), and
 *    then only to SAEs without a configured uid. */
static int
check_sae(struct qkdn_server_req *w, const char *sae, char *why, size_t whylen)
{
	struct km *km = qkdn_server_arg(w);
	const struct qkdn_net *net = km->net;
	int i = qkdn_net_sae_index(net, sae);
	if (i < 0 || net->saes[i].node != km->self) {
		snprintf(why, whylen, "SAE %s is not attached to node %s", sae,
		         km->node->id);
		return QKDN_E_NOT_AUTHORISED;
	}
	if (is_gateway(w, km->node))
		return 0;
	const char *cert_name = qkdn_server_peer_name(w);
	if (cert_name != NULL) {
		if (strcmp(cert_name, sae) == 0)
			return 0;
		snprintf(why, whylen,
		         "the client's certificate names %s, not SAE %s",
		         cert_name, sae);
		return QKDN_E_NOT_AUTHORISED;
	}
	int64_t uid = net->saes[i].uid;
	uint64_t peer_uid;
	if (qkdn_server_peer_uid(w, &peer_uid)) {
		uint64_t want = uid >= 0 ? (uint64_t)uid : (uint64_t)geteuid();
		if (peer_uid != want) {
			snprintf(why, whylen, "SAE %s must connect as uid %llu",
			         sae, (unsigned long long)want);
			return QKDN_E_NOT_AUTHORISED;
		}
	} else if (!km->node->ak_trusted) {
		snprintf(why, whylen,
		         "a plain tcp:// Ak carries no identity: use ipc:// or "
		         "tls+tcp://, or mark this listener ak_trusted");
		return QKDN_E_NOT_AUTHORISED;
	} else if (uid >= 0) {
		snprintf(why, whylen,
		         "SAE %s has a uid and must connect over ipc", sae);
		return QKDN_E_NOT_AUTHORISED;
	}
	return 0;
}

/* The peer KM acknowledged (or refused) the keys of a request that
 * handle_key_req queued; runs on the link's Kx sender thread. */
static void
keyreq_done(struct km_keyreq *r, int rv, const char *why)
{
	struct qkdn_server_req *w = qkdn_server_req_of_slot(r);
	struct km *km = qkdn_server_arg(w);
	if (rv != 0) {
		qkdn_server_error(w, rv, why);
		return;
	}
	atomic_fetch_add(&km->keys_supplied, r->count);
	qkdn_server_reply(w, &r->rsp);
}

/* Q.4160 I.1 steps 1-2: source application asks for keys. */
static void
handle_key_req(struct qkdn_server_req *w, struct qkdn_msg *req)
{
	const struct qkdn_key_req *kr = &req->u.key_req;
	struct km *km = qkdn_server_arg(w);
	char why[QKDN_REASON_MAX];
	int rv;
	if ((rv = check_sae(w, kr->sae, why, sizeof(why))) != 0)
		goto fail;
	if (kr->bits % 8 != 0) {
		rv = QKDN_E_RANGE;
		snprintf(why, sizeof(why), "key size %u is not whole bytes",
		         kr->bits);
		goto fail;
	}
	if ((uint64_t)kr->count * (kr->bits / 8) > KM_KX_BATCH_BYTES) {
		rv = QKDN_E_TOO_LARGE;
		snprintf(why, sizeof(why),
		         "%u keys of %u bits exceed %u KiB of key per request",
		         kr->count, kr->bits, KM_KX_BATCH_BYTES / 1024);
		goto fail;
	}
	struct km_route route = km_route(km, kr->dst_sae, why, sizeof(why));
	if (route.kind == KM_ROUTE_RELAY) {
		/* answered once the relay completed (or failed) */
		km_relay_keyreq(km, w, kr, route.node);
		return;
	}
	if (route.kind != KM_ROUTE_DIRECT) {
		rv = route.code;
		goto fail;
	}
	struct km_keyreq *q = qkdn_server_slot(w);
	memset(q, 0, sizeof(*q));
	memcpy(q->src_sae, kr->sae, sizeof(q->src_sae));
	memcpy(q->dst_sae, kr->dst_sae, sizeof(q->dst_sae));
	q->bits = kr->bits;
	q->count = kr->count;
	q->done = keyreq_done;
	/* replied to from the Kx sender thread, maybe before this returns */
	km_kx_submit(km, route.link, q);
	return;
fail:
	qkdn_server_error(w, rv, why);
}

/* Q.4160 I.1 steps 4-5: destination application fetches by key ID. */
static void
handle_key_req_id(struct qkdn_server_req *w, struct qkdn_msg *req)
{
	struct km *km = qkdn_server_arg(w);
	const struct qkdn_key_req_id *kr = &req->u.key_req_id;
	struct qkdn_msg rsp = {.type = QKDN_KEY_RSP};
	char why[QKDN_REASON_MAX], idtext[37];
	size_t bad = 0;
	int rv;
	if ((rv = check_sae(w, kr->sae, why, sizeof(why))) != 0)
		goto fail;
	struct qkdn_keys *keys = &rsp.u.key_rsp.keys;
	if ((keys->v = qkdn_msg_alloc(&rsp, kr->ids.n * sizeof(*keys->v))) ==
	    NULL) {
		rv = QKDN_E_NOMEM;
		snprintf(why, sizeof(why), "out of memory");
		goto fail;
	}
	/* an optional source (ETSI 014's master_SAE_ID) must be the SAE that
	 * requested the keys */
	const char *src = kr->src_sae[0] != '\0' ? kr->src_sae : NULL;
	rv = km_store_keys_take_from(km->st, src, kr->sae, kr->ids.v, kr->ids.n,
	                             &rsp, keys->v, &bad);
	if (rv != 0) {
		qkdn_uuid_format(&kr->ids.v[bad], idtext);
		snprintf(why, sizeof(why), "key %s for SAE %s%s%s", idtext,
		         kr->sae, src != NULL ? " from SAE " : "",
		         src != NULL ? src : "");
		goto fail;
	}
	keys->n = kr->ids.n;
	atomic_fetch_add(&km->keys_supplied, kr->ids.n);
	qkdn_server_reply(w, &rsp);
	return;
fail:
	qkdn_msg_clear(&rsp);
	qkdn_server_error(w, rv, why);
}

static void
handle_status(struct qkdn_server_req *w, struct qkdn_msg *req)
{
	struct qkdn_msg rsp;
	(void)req;
	int rv = km_status(qkdn_server_arg(w), &rsp);
	if (rv != 0) {
		qkdn_msg_clear(&rsp);
		qkdn_server_error(w, rv, "status unavailable");
		return;
	}
	qkdn_server_reply(w, &rsp);
}

/* The key request only checks and queues (the link's Kx sender answers
 * it); fetching by ID commits a tombstone; status reads the store. */
static const struct qkdn_handler handlers[] = {
    {QKDN_KEY_REQ, handle_key_req},
    {QKDN_KEY_REQ_ID, handle_key_req_id},
    {QKDN_STATUS_REQ, handle_status},
};

int
km_ak_start(struct km *km, struct km_ak **out)
{
	struct km_ak *ak = calloc(1, sizeof(*ak));
	if (ak == NULL)
		return QKDN_E_NOMEM;
	/* owner only, unless an SAE of this node runs as another uid (then
	 * the peer uid check is what admits it) */
	int mode = 0600;
	for (size_t i = 0; i < km->net->n_saes; i++)
		if (km->net->saes[i].node == km->self &&
		    km->net->saes[i].uid >= 0)
			mode = 0666;
	const struct qkdn_tls_files tls = {
	    .ca = km->net->ca, .cert = km->node->cert, .key = km->node->key};
	struct qkdn_server_config cfg = {
	    .name = "Ak",
	    .log_src = SRC,
	    .refusal_level = QKDN_LOG_INFO,
	    .url = km->node->ak_url,
	    .ipc_mode = mode,
	    .recv_max = KM_AK_RECV_MAX,
	    .slot_size = sizeof(struct km_keyreq),
	    .handlers = handlers,
	    .n_handlers = sizeof(handlers) / sizeof(handlers[0]),
	    .arg = km,
	    .errors = &km->ak_errors,
	    .tls = &tls,
	    /* a plain tcp:// Ak is loopback only: every client has the same
	     * address, so only the listener's total cap applies to it */
	    .max_conns_per_host =
	        strncmp(km->node->ak_url, "tcp://", 6) == 0 ? -1 : 0,
	};
	int rv = qkdn_server_start(&ak->srv, &cfg);
	if (rv != 0) {
		free(ak);
		return rv;
	}
	*out = ak;
	return 0;
}

void
km_ak_stop(struct km_ak *ak)
{
	if (ak == NULL)
		return;
	qkdn_server_stop(ak->srv);
	free(ak);
}
