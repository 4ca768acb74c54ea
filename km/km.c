#include "km.h"

#include "ak.h"
#include "kme.h"
#include "kq.h"
#include "kx.h"
#include "node.h"
#include "ctl_client.h"
#include "relay.h"
#include "secbuf.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"
#include "qkdn_sp.h"

#include <stdlib.h>
#include <string.h>

#define SRC       "km"
#define SWEEP_MAX 10000

static int
open_links(struct km *km)
{
	const struct qkdn_net *net = km->net;
	int rv;
	km->links = calloc(net->n_links ? net->n_links : 1, sizeof(*km->links));
	if (km->links == NULL)
		return QKDN_E_NOMEM;
	for (size_t i = 0; i < net->n_links; i++) {
		const struct qkdn_net_link *lc = &net->links[i];
		if (lc->node[0] != km->self && lc->node[1] != km->self)
			continue;
		struct km_link *l = &km->links[km->n_links];
		bool first = lc->node[0] == km->self;
		l->conf = lc;
		l->peer = first ? lc->node[1] : lc->node[0];
		rv = km_pool_init(&l->pool, km->st, lc->id, lc->block_bytes,
		                  lc->pool_max_bytes, first);
		if (rv != 0)
			return rv;
		km->n_links++;
		QLOG_INFO(SRC,
		          "link %s to %s: %llu bytes to start keys, %llu "
		          "for the peer's",
		          lc->id, net->nodes[l->peer].id,
		          (unsigned long long)km_pool_out_avail(&l->pool),
		          (unsigned long long)km_pool_in_avail(&l->pool));
	}
	return 0;
}

/* The node's certificate for its Kx senders and its controller client, if
 * any peer's Kx or its controller's Ck is tls+tcp:// (the network file
 * then has the CA, certificate and key). */
static int
open_kx_tls(struct km *km)
{
	const struct qkdn_net *net = km->net;
	/* a peer's Kx, or this KM's controller's Ck (km/ctl_client.c) */
	const char *ck = net->controller == QKDN_CTL_CENTRALIZED
	                     ? net->central_ck_url
	                     : km->node->ck_url;
	bool needed = strncmp(ck, "tls+tcp://", 10) == 0;
	for (size_t i = 0; i < km->n_links; i++)
		needed |= strncmp(net->nodes[km->links[i].peer].kx_url,
		                  "tls+tcp://", 10) == 0;
	if (!needed)
		return 0;
	char why[256];
	int rv = qkdn_sp_tls_new(&km->kx_tls, km->net->ca, km->node->cert,
	                         km->node->key, why, sizeof(why));
	if (rv != 0)
		QLOG_ERR(SRC, "TLS for Kx: %s", why);
	return rv;
}

int
km_start(struct km **out, const struct qkdn_net *net, int self)
{
	struct km *km = calloc(1, sizeof(*km));
	int rv;
	if (km == NULL)
		return QKDN_E_NOMEM;
	km->net = net;
	km->self = self;
	km->node = &net->nodes[self];
	if ((rv = nng_mtx_alloc(&km->mtx)) != 0) {
		free(km);
		return qkdn_err_from_nng(rv);
	}
	/* before any thread: libcurl's global setup is not thread-safe */
	if ((rv = km_kme_global_init()) != 0) {
		nng_mtx_free(km->mtx);
		free(km);
		return rv;
	}
	if ((rv = km_store_open_keyed(&km->st, km->node->store,
	                              km->node->storage_key,
	                              km->node->map_bytes)) != 0)
		goto fail;
	if (km_store_recovered(km->st))
		QLOG_WARN(SRC, "last run did not stop cleanly: resuming past "
		               "the leased key");
	if ((rv = open_links(km)) != 0 || (rv = open_kx_tls(km)) != 0)
		goto fail;
	for (size_t i = 0; i < km->n_links; i++)
		if ((rv = km_kx_link_open(km, &km->links[i])) != 0 ||
		    (rv = km_kme_open(km, &km->links[i])) != 0)
			goto fail;
	if ((rv = km_relay_start(km)) != 0 ||
	    (rv = km_ctl_start(km, &km->ctl)) != 0 ||
	    (rv = km_kx_server_start(km, &km->kx_srv)) != 0 ||
	    (rv = km_kq_start(km, &km->kq)) != 0 ||
	    (rv = km_ak_start(km, &km->ak)) != 0)
		goto fail;
	km->serving = true;
	QLOG_INFO(SRC, "node %s serving Ak on %s, Kx on %s, Kq-1 on %s",
	          km->node->id, km->node->ak_url, km->node->kx_url,
	          km->node->kq_url);
	*out = km;
	return 0;
fail:
	km_stop(km);
	return rv;
}

void
km_stop(struct km *km)
{
	if (km == NULL)
		return;
	/* The relay control thread first (new relays fail), then the links
	 * (their queued hops answer the requests they hold, on servers still
	 * running), then peers (no handler asks the controller any more), then
	 * the controller client, then apps. */
	km_relay_stop(km);
	for (size_t i = 0; i < km->n_links; i++)
		km_kx_link_close(km, &km->links[i]);
	km_kx_server_stop(km->kx_srv);
	for (size_t i = 0; i < km->n_links; i++)
		km_kme_close(&km->links[i]); /* its Kx handler is gone */
	km_ctl_stop(km->ctl);
	km_ak_stop(km->ak);
	km_kq_stop(km->kq);
	qkdn_sp_tls_free(km->kx_tls); /* the senders that used it are gone */
	for (size_t i = 0; i < km->n_links; i++) {
		/* only a KM that ran owns the positions it would save */
		if (km->serving && km_pool_save(&km->links[i].pool) != 0)
			QLOG_WARN(SRC, "link %s: pool position not saved",
			          km->links[i].conf->id);
		km_pool_fini(&km->links[i].pool);
	}
	km_relay_free(km);
	km_secbuf_drain(); /* every relay buffer is back */
	free(km->links);
	km_store_close(km->st, km->serving);
	nng_mtx_free(km->mtx);
	km_kme_global_fini();
	free(km);
}

void
km_tick(struct km *km)
{
	size_t n = km_store_sweep(km->st, km_wall_ms(), SWEEP_MAX);
	if (n > 0)
		QLOG_DEBUG(SRC, "expired %zu keys", n);
	nng_mtx_lock(km->mtx);
	for (size_t i = 0; i < km->n_links; i++)
		km_pool_gc(&km->links[i].pool);
	nng_mtx_unlock(km->mtx);
	km_relay_tick(km);
}
