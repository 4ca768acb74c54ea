#include "ak.h"

#include "kx.h"
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_rpc.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/transport/ipc/ipc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SRC         "ak"
#define AK_CONTEXTS 128
#define AK_RECV_MAX (1u << 20)

enum ak_state { AK_RECV, AK_WAIT_PEER, AK_SEND };

struct ak_work {
	struct km *km;
	enum ak_state state;
	nng_aio *aio;
	nng_ctx ctx;
	uint64_t req_id;
	bool has_uid;
	uint64_t uid;
	struct km_keyreq kr; /* a key request waiting for the peer KM */
};

struct km_ak {
	nng_socket sock;
	nng_listener listener;
	struct ak_work works[AK_CONTEXTS];
};

static void
send_reply(struct ak_work *w, struct qkdn_msg *m)
{
	nng_msg *nm = NULL;
	m->req_id = w->req_id;
	int rv = qkdn_rpc_pack(m, &nm);
	qkdn_msg_clear(m); /* wipes the keys of a KEY_RSP */
	if (rv != 0) {
		struct qkdn_msg e;
		qkdn_rpc_error(&e, w->req_id, rv, "reply could not be encoded");
		if (qkdn_rpc_pack(&e, &nm) != 0) {
			w->state = AK_RECV;
			nng_ctx_recv(w->ctx, w->aio);
			return;
		}
	}
	w->state = AK_SEND;
	nng_aio_set_msg(w->aio, nm);
	nng_ctx_send(w->ctx, w->aio);
}

static void
send_error(struct ak_work *w, int code, const char *why)
{
	struct qkdn_msg m;
	atomic_fetch_add(&w->km->errors, 1);
	QLOG_INFO(SRC, "refused: %s: %s", qkdn_strerror(code), why);
	qkdn_rpc_error(&m, w->req_id, code, why);
	send_reply(w, &m);
}

/* Ak authentication: the SAE must be attached to this node, and an ipc
 * peer must run as the SAE's configured uid, or as the KM's own uid when
 * the SAE has none (the socket may be open to all users when some SAE of
 * the node runs as another uid). tcp:// Ak carries no peer identity: only
 * SAEs without a configured uid may use it. */
static int
check_sae(struct ak_work *w, const char *sae, char *why, size_t whylen)
{
	const struct qkdn_net *net = w->km->net;
	int i = qkdn_net_sae_index(net, sae);
	if (i < 0 || net->saes[i].node != w->km->self) {
		snprintf(why, whylen, "SAE %s is not attached to node %s", sae,
		         w->km->node->id);
		return QKDN_E_NOT_AUTHORISED;
	}
	int64_t uid = net->saes[i].uid;
	if (w->has_uid) {
		uint64_t want = uid >= 0 ? (uint64_t)uid : (uint64_t)geteuid();
		if (w->uid != want) {
			snprintf(why, whylen, "SAE %s must connect as uid %llu",
			         sae, (unsigned long long)want);
			return QKDN_E_NOT_AUTHORISED;
		}
	} else if (uid >= 0) {
		snprintf(why, whylen,
		         "SAE %s has a uid and must connect over ipc", sae);
		return QKDN_E_NOT_AUTHORISED;
	}
	return 0;
}

static void
keyreq_done(struct km_keyreq *r, int rv, const char *why)
{
	struct ak_work *w =
	    (struct ak_work *)((char *)r - offsetof(struct ak_work, kr));
	if (rv != 0) {
		send_error(w, rv, why);
		return;
	}
	atomic_fetch_add(&w->km->keys_supplied, r->count);
	send_reply(w, &r->rsp);
}

/* Q.4160 I.1 steps 1-2: source application asks for keys. */
static void
handle_key_req(struct ak_work *w, struct qkdn_msg *req)
{
	const struct qkdn_key_req *kr = &req->u.key_req;
	const struct qkdn_net *net = w->km->net;
	char why[QKDN_REASON_MAX];
	int rv, dst;
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
	if ((dst = qkdn_net_sae_index(net, kr->dst_sae)) < 0) {
		rv = QKDN_E_NO_ROUTE;
		snprintf(why, sizeof(why), "unknown destination SAE %s",
		         kr->dst_sae);
		goto fail;
	}
	struct km_link *l = km_link_to(w->km, net->saes[dst].node);
	if (l == NULL) {
		rv = net->saes[dst].node == w->km->self ? QKDN_E_UNSUPPORTED
		                                        : QKDN_E_NO_ROUTE;
		snprintf(why, sizeof(why),
		         "SAE %s is on node %s, which has no direct QKD link "
		         "to node %s",
		         kr->dst_sae, net->nodes[net->saes[dst].node].id,
		         w->km->node->id);
		goto fail;
	}
	memset(&w->kr, 0, sizeof(w->kr));
	memcpy(w->kr.src_sae, kr->sae, sizeof(w->kr.src_sae));
	memcpy(w->kr.dst_sae, kr->dst_sae, sizeof(w->kr.dst_sae));
	w->kr.bits = kr->bits;
	w->kr.count = kr->count;
	w->kr.done = keyreq_done;
	w->state = AK_WAIT_PEER;
	qkdn_msg_clear(req);
	km_kx_submit(w->km, l, &w->kr);
	return;
fail:
	qkdn_msg_clear(req);
	send_error(w, rv, why);
}

/* Q.4160 I.1 steps 4-5: destination application fetches by key ID. */
static void
handle_key_req_id(struct ak_work *w, struct qkdn_msg *req)
{
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
	rv = km_store_keys_take(w->km->st, kr->sae, kr->ids.v, kr->ids.n, &rsp,
	                        keys->v, &bad);
	if (rv != 0) {
		qkdn_uuid_format(&kr->ids.v[bad], idtext);
		snprintf(why, sizeof(why), "key %s for SAE %s", idtext,
		         kr->sae);
		goto fail;
	}
	keys->n = kr->ids.n;
	atomic_fetch_add(&w->km->keys_supplied, kr->ids.n);
	qkdn_msg_clear(req);
	send_reply(w, &rsp);
	return;
fail:
	qkdn_msg_clear(&rsp);
	qkdn_msg_clear(req);
	send_error(w, rv, why);
}

static void
handle_status(struct ak_work *w, struct qkdn_msg *req)
{
	struct qkdn_msg rsp;
	qkdn_msg_clear(req);
	int rv = km_status(w->km, &rsp);
	if (rv != 0) {
		send_error(w, rv, "status unavailable");
		return;
	}
	send_reply(w, &rsp);
}

static const struct {
	uint32_t type;
	void (*handle)(struct ak_work *w, struct qkdn_msg *req);
} handlers[] = {
    {QKDN_KEY_REQ, handle_key_req},
    {QKDN_KEY_REQ_ID, handle_key_req_id},
    {QKDN_STATUS_REQ, handle_status},
};

static void
dispatch(struct ak_work *w, nng_msg *nm)
{
	struct qkdn_msg req;
	struct qkdn_decode_error err = {0};
	nng_pipe p = nng_msg_get_pipe(nm);
	w->has_uid = nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &w->uid) == 0;
	int rv = qkdn_rpc_unpack(nm, &req, &err);
	nng_msg_free(nm);
	w->req_id = req.req_id;
	if (rv != 0) {
		send_error(w, rv, err.reason);
		return;
	}
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
		if (handlers[i].type == req.type) {
			handlers[i].handle(w, &req);
			return;
		}
	}
	snprintf(err.reason, sizeof(err.reason), "%s is not served on Ak",
	         qkdn_msg_type_name(req.type));
	qkdn_msg_clear(&req);
	send_error(w, QKDN_E_UNSUPPORTED, err.reason);
}

static void
ak_cb(void *arg)
{
	struct ak_work *w = arg;
	int rv = nng_aio_result(w->aio);
	switch (w->state) {
	case AK_RECV:
		if (rv != 0) {
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
				return;
			nng_ctx_recv(w->ctx, w->aio);
			return;
		}
		dispatch(w, nng_aio_get_msg(w->aio));
		return;
	case AK_SEND:
		if (rv != 0) {
			qkdn_rpc_free_wiped(nng_aio_get_msg(w->aio));
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
				return;
		}
		w->state = AK_RECV;
		nng_ctx_recv(w->ctx, w->aio);
		return;
	case AK_WAIT_PEER:
		/* the aio is idle while kx.c holds the request */
		return;
	}
}

int
km_ak_start(struct km *km, struct km_ak **out)
{
	struct km_ak *ak = calloc(1, sizeof(*ak));
	const char *url = km->node->ak_url;
	int rv;
	if (ak == NULL)
		return QKDN_E_NOMEM;
	if ((rv = nng_rep0_open(&ak->sock)) != 0) {
		free(ak);
		return qkdn_err_from_nng(rv);
	}
	nng_socket_set_size(ak->sock, NNG_OPT_RECVMAXSZ, AK_RECV_MAX);
	for (int i = 0; i < AK_CONTEXTS; i++) {
		struct ak_work *w = &ak->works[i];
		w->km = km;
		if ((rv = nng_aio_alloc(&w->aio, ak_cb, w)) != 0 ||
		    (rv = nng_ctx_open(&w->ctx, ak->sock)) != 0)
			goto fail;
	}
	if ((rv = nng_listener_create(&ak->listener, ak->sock, url)) != 0)
		goto fail;
	if (strncmp(url, "ipc://", 6) == 0) {
		/* owner only, unless an SAE of this node runs as another uid
		 * (then the peer uid check is what admits it) */
		int mode = 0600;
		for (size_t i = 0; i < km->net->n_saes; i++)
			if (km->net->saes[i].node == km->self &&
			    km->net->saes[i].uid >= 0)
				mode = 0666;
		nng_listener_set_int(ak->listener, NNG_OPT_IPC_PERMISSIONS,
		                     mode);
	}
	if ((rv = nng_listener_start(ak->listener, 0)) != 0) {
		QLOG_ERR(SRC, "cannot listen on %s: %s", url, nng_strerror(rv));
		goto fail;
	}
	for (int i = 0; i < AK_CONTEXTS; i++) {
		ak->works[i].state = AK_RECV;
		nng_ctx_recv(ak->works[i].ctx, ak->works[i].aio);
	}
	*out = ak;
	return 0;
fail:
	km_ak_stop(ak);
	return qkdn_err_from_nng(rv);
}

void
km_ak_stop(struct km_ak *ak)
{
	if (ak == NULL)
		return;
	for (int i = 0; i < AK_CONTEXTS; i++)
		if (ak->works[i].aio != NULL)
			nng_aio_stop(ak->works[i].aio);
	nng_close(ak->sock);
	for (int i = 0; i < AK_CONTEXTS; i++)
		nng_aio_free(ak->works[i].aio);
	free(ak);
}
