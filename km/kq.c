#include "kq.h"

#include "node.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"

#include <nng/protocol/pipeline0/pull.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SRC "kq"
/* A block ID further than this past the newest held is refused: accepted,
 * it would leave every later block of the module "not above the newest"
 * and the pool stuck. The emulator counts microseconds (about 71 min). */
#define KQ_ID_WINDOW (UINT64_C(1) << 32)

struct km_kq {
	struct km *km;
	nng_socket sock;
	nng_aio *aio;
	uint64_t module_uid; /* the QKD module's uid (ipc peers) */
	uint8_t *held;       /* one stored block, for comparing (sodium) */
	/* lines any local user (refusals) or a faulty module can cause */
	struct qkdn_log_limit refused, clashes, stale;
};

/* The peer of an ipc pipe must run as the module's uid. Other transports
 * carry no uid (docs/network-file.md: use ipc for Kq-1). */
static bool
from_module(struct km_kq *kq, nng_msg *nm)
{
	uint64_t uid;
	if (nng_pipe_get_uint64(nng_msg_get_pipe(nm), NNG_OPT_IPC_PEER_UID,
	                        &uid) != 0)
		return strncmp(kq->km->node->kq_url, "ipc://", 6) != 0;
	if (uid == kq->module_uid)
		return true;
	QLOG_LIMITED(&kq->refused, QKDN_LOG_WARN, SRC,
	             "dropped a Kq-1 message from uid %llu (the QKD module "
	             "runs as uid %llu: kq_uid)",
	             (unsigned long long)uid,
	             (unsigned long long)kq->module_uid);
	return false;
}

/* Is block id of l, which is not above the newest held, an exact copy of
 * the stored one? Anything else is refused: a held ID with other bytes
 * means this end and the module (or its peer end) disagree, an alarm. */
static void
check_old_block(struct km_kq *kq, struct km_link *l,
                const struct qkdn_link_block *b, uint64_t newest)
{
	int rv = km_store_block_get(kq->km->st, b->link, b->block_id, kq->held,
	                            b->bytes.len);
	if (rv == 0 &&
	    sodium_memcmp(kq->held, b->bytes.ptr, b->bytes.len) == 0) {
		QLOG_DEBUG(SRC, "link %s block %llu: a duplicate, ignored",
		           b->link, (unsigned long long)b->block_id);
	} else if (rv == 0) {
		QLOG_LIMITED(&kq->clashes, QKDN_LOG_ERR, SRC,
		             "link %s block %llu arrived again with other "
		             "bytes: kept the first, link out of sync",
		             b->link, (unsigned long long)b->block_id);
		km_link_note_sync(l, false);
	} else {
		QLOG_LIMITED(&kq->stale, QKDN_LOG_WARN, SRC,
		             "link %s block %llu refused: not above the newest "
		             "held (%llu)%s",
		             b->link, (unsigned long long)b->block_id,
		             (unsigned long long)newest,
		             rv == QKDN_E_BLOCK_MISSING ? ""
		                                        : " and unreadable");
	}
	sodium_memzero(kq->held, b->bytes.len);
}

static void
take_block(struct km_kq *kq, nng_msg *nm)
{
	struct km *km = kq->km;
	struct qkdn_msg m;
	struct qkdn_decode_error err = {0};
	if (!from_module(kq, nm)) {
		qkdn_rpc_free_wiped(nm);
		return;
	}
	int rv = qkdn_rpc_unpack(nm, &m, &err);
	qkdn_rpc_free_wiped(nm);
	if (rv != 0) {
		QLOG_LIMITED(&kq->refused, QKDN_LOG_WARN, SRC,
		             "dropped a malformed Kq-1 message: %s",
		             err.reason);
		return;
	}
	if (m.type != QKDN_LINK_BLOCK) {
		QLOG_LIMITED(&kq->refused, QKDN_LOG_WARN, SRC,
		             "dropped a %s on Kq-1",
		             qkdn_msg_type_name(m.type));
		qkdn_msg_clear(&m);
		return;
	}
	const struct qkdn_link_block *b = &m.u.link_block;
	struct km_link *l = km_link_named(km, b->link);
	if (l == NULL) {
		QLOG_LIMITED(&kq->refused, QKDN_LOG_WARN, SRC,
		             "dropped a block of link %s, not a link of "
		             "this node",
		             b->link);
		goto out;
	}
	if (l->conf->kme[0].url[0] != '\0') {
		QLOG_LIMITED(&kq->refused, QKDN_LOG_WARN, SRC,
		             "dropped a block of link %s: its KME feeds it "
		             "(kme)",
		             b->link);
		goto out;
	}
	if (b->bytes.len != l->pool.block_bytes) {
		rv = QKDN_E_BAD_REQUEST;
		goto refused;
	}
	/* This callback is the only writer of blocks: the newest cannot grow
	 * behind our back between this read and km_pool_note_block. */
	nng_mtx_lock(km->mtx);
	uint64_t newest = km_pool_newest(&l->pool);
	nng_mtx_unlock(km->mtx);
	if (newest != 0 && b->block_id <= newest) {
		check_old_block(kq, l, b, newest);
		goto out;
	}
	if (newest != 0 && b->block_id - newest > KQ_ID_WINDOW) {
		QLOG_LIMITED(&kq->stale, QKDN_LOG_WARN, SRC,
		             "link %s block %llu refused: more than %llu past "
		             "the newest held (%llu)",
		             b->link, (unsigned long long)b->block_id,
		             (unsigned long long)KQ_ID_WINDOW,
		             (unsigned long long)newest);
		goto out;
	}
	/* the store write needs no KM lock: key supply goes on */
	rv = km_store_block_put(km->st, b->link, b->block_id, b->bytes.ptr,
	                        b->bytes.len);
	if (rv == 0) {
		nng_mtx_lock(km->mtx);
		rv = km_pool_note_block(&l->pool, b->block_id);
		nng_mtx_unlock(km->mtx);
	}
refused:
	if (rv != 0)
		QLOG_LIMITED(&kq->stale, QKDN_LOG_WARN, SRC,
		             "link %s block %llu not stored: %s", b->link,
		             (unsigned long long)b->block_id,
		             qkdn_strerror(rv));
out:
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
	const char *url = km->node->kq_url;
	nng_listener lst;
	int rv;
	if (kq == NULL)
		return QKDN_E_NOMEM;
	kq->km = km;
	kq->module_uid = km->node->kq_uid >= 0 ? (uint64_t)km->node->kq_uid
	                                       : (uint64_t)geteuid();
	if ((kq->held = sodium_malloc(QKDN_BLOCK_BYTES_MAX)) == NULL) {
		free(kq);
		return QKDN_E_NOMEM;
	}
	if ((rv = nng_pull0_open(&kq->sock)) != 0) {
		sodium_free(kq->held);
		free(kq);
		return qkdn_err_from_nng(rv);
	}
	nng_socket_set_size(kq->sock, NNG_OPT_RECVMAXSZ,
	                    QKDN_BLOCK_BYTES_MAX + 4096);
	if ((rv = nng_aio_alloc(&kq->aio, kq_cb, kq)) != 0 ||
	    (rv = nng_listener_create(&lst, kq->sock, url)) != 0)
		goto fail;
	/* only the KM's user may connect, whatever the umask; a module that
	 * runs as another user needs the socket open to all, and the peer
	 * uid check is then what admits it alone */
	int mode = kq->module_uid == (uint64_t)geteuid() ? 0600 : 0666;
	if (strncmp(url, "ipc://", 6) == 0 &&
	    (rv = nng_listener_set_int(lst, NNG_OPT_IPC_PERMISSIONS, mode)) !=
	        0)
		goto fail;
	if ((rv = nng_listener_start(lst, 0)) != 0)
		goto fail;
	nng_recv_aio(kq->sock, kq->aio);
	*out = kq;
	return 0;
fail:
	QLOG_ERR(SRC, "cannot listen on %s: %s", url, nng_strerror(rv));
	km_kq_stop(kq);
	return qkdn_err_from_nng(rv);
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
	sodium_free(kq->held);
	free(kq);
}
