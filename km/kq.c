#include "kq.h"

#include "node.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"

#include <nng/protocol/pipeline0/pull.h>
#include <stdlib.h>

#define SRC "kq"

struct km_kq {
	struct km *km;
	nng_socket sock;
	nng_aio *aio;
};

static void
take_block(struct km_kq *kq, nng_msg *nm)
{
	struct km *km = kq->km;
	struct qkdn_msg m;
	struct qkdn_decode_error err = {0};
	int rv = qkdn_rpc_unpack(nm, &m, &err);
	qkdn_rpc_free_wiped(nm);
	if (rv != 0) {
		QLOG_WARN(SRC, "dropped a malformed Kq-1 message: %s",
		          err.reason);
		return;
	}
	if (m.type != QKDN_LINK_BLOCK) {
		QLOG_WARN(SRC, "dropped a %s on Kq-1",
		          qkdn_msg_type_name(m.type));
		qkdn_msg_clear(&m);
		return;
	}
	const struct qkdn_link_block *b = &m.u.link_block;
	struct km_link *l = km_link_named(km, b->link);
	if (l == NULL) {
		QLOG_WARN(SRC,
		          "dropped a block of link %s, not a link of "
		          "this node",
		          b->link);
	} else {
		/* the store write needs no KM lock: key supply goes on */
		rv = b->bytes.len == l->pool.block_bytes
		         ? km_store_block_put(km->st, b->link, b->block_id,
		                              b->bytes.ptr, b->bytes.len)
		         : QKDN_E_BAD_REQUEST;
		if (rv == 0) {
			nng_mtx_lock(km->mtx);
			rv = km_pool_note_block(&l->pool, b->block_id);
			nng_mtx_unlock(km->mtx);
		}
		if (rv != 0)
			QLOG_WARN(SRC, "link %s block %llu not stored: %s",
			          b->link, (unsigned long long)b->block_id,
			          qkdn_strerror(rv));
	}
	qkdn_msg_clear(&m);
}

static void
kq_cb(void *arg)
{
	struct km_kq *kq = arg;
	int rv = nng_aio_result(kq->aio);
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv == 0)
		take_block(kq, nng_aio_get_msg(kq->aio));
	nng_recv_aio(kq->sock, kq->aio);
}

int
km_kq_start(struct km *km, struct km_kq **out)
{
	struct km_kq *kq = calloc(1, sizeof(*kq));
	int rv;
	if (kq == NULL)
		return QKDN_E_NOMEM;
	kq->km = km;
	if ((rv = nng_pull0_open(&kq->sock)) != 0) {
		free(kq);
		return qkdn_err_from_nng(rv);
	}
	nng_socket_set_size(kq->sock, NNG_OPT_RECVMAXSZ,
	                    QKDN_BLOCK_BYTES_MAX + 4096);
	if ((rv = nng_aio_alloc(&kq->aio, kq_cb, kq)) != 0 ||
	    (rv = nng_listen(kq->sock, km->node->kq_url, NULL, 0)) != 0) {
		QLOG_ERR(SRC, "cannot listen on %s: %s", km->node->kq_url,
		         nng_strerror(rv));
		km_kq_stop(kq);
		return qkdn_err_from_nng(rv);
	}
	nng_recv_aio(kq->sock, kq->aio);
	*out = kq;
	return 0;
}

void
km_kq_stop(struct km_kq *kq)
{
	if (kq == NULL)
		return;
	if (kq->aio != NULL)
		nng_aio_stop(kq->aio);
	nng_close(kq->sock);
	nng_aio_free(kq->aio);
	free(kq);
}
