#include "node.h"

#include "kme.h"
#include "kx.h"
#include "relay.h"
#include "qkdn_err.h"

#include <string.h>

struct km_link *
km_link_to(struct km *km, int peer)
{
	for (size_t i = 0; i < km->n_links; i++)
		if (km->links[i].peer == peer)
			return &km->links[i];
	return NULL;
}

struct km_link *
km_link_named(struct km *km, const char *id)
{
	for (size_t i = 0; i < km->n_links; i++)
		if (strcmp(km->links[i].conf->id, id) == 0)
			return &km->links[i];
	return NULL;
}

void
km_link_note_sync(struct km_link *l, bool ok)
{
	if (!ok)
		atomic_fetch_add(&l->sync_failures, 1);
	atomic_store(&l->out_of_sync, !ok);
}

int
km_status(struct km *km, struct qkdn_msg *rsp)
{
	struct qkdn_status_rsp *s = &rsp->u.status_rsp;
	memset(rsp, 0, sizeof(*rsp));
	rsp->type = QKDN_STATUS_RSP;
	memcpy(s->node, km->node->id, sizeof(s->node));
	s->keys_supplied = atomic_load(&km->keys_supplied);
	s->ak_errors = atomic_load(&km->ak_errors);
	s->kx_errors = atomic_load(&km->kx_errors);
	s->errors = s->ak_errors + s->kx_errors;
	s->keys_pending = km_store_pending(km->st);
	/* the limits handle_key_req and the Ak decoder enforce */
	s->keys_max = QKDN_KEYS_MAX;
	s->bits_min = 8;
	s->bits_max = QKDN_KEY_BYTES_MAX * 8;
	s->req_bytes_max = KM_KX_BATCH_BYTES;
	km_relay_stats(km, &s->relay);
	s->n_links = (uint32_t)km->n_links;
	if (km->n_links > 0 &&
	    (s->links = qkdn_msg_alloc(rsp, km->n_links * sizeof(*s->links))) ==
	        NULL)
		return QKDN_E_NOMEM;
	nng_mtx_lock(km->mtx);
	for (size_t i = 0; i < km->n_links; i++) {
		struct km_link *l = &km->links[i];
		struct qkdn_link_status *ls = &s->links[i];
		memcpy(ls->link, l->conf->id, sizeof(ls->link));
		memcpy(ls->peer, km->net->nodes[l->peer].id, sizeof(ls->peer));
		ls->out_bytes = km_pool_out_avail(&l->pool);
		ls->in_bytes = km_pool_in_avail(&l->pool);
		ls->blocks = l->pool.n;
		/* a link whose KME is down makes no key: down too */
		ls->up = km_kx_link_up(l->kx) &&
		         !km_kme_down(l, ls->down, sizeof(ls->down));
		ls->out_of_sync = atomic_load(&l->out_of_sync);
		ls->sync_failures = atomic_load(&l->sync_failures);
		/* the pool drops its oldest block beyond max_blocks */
		ls->out_max = (uint64_t)l->pool.max_blocks * l->pool.half;
	}
	nng_mtx_unlock(km->mtx);
	return 0;
}
