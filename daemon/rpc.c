#include "qkdn_rpc.h"

#include "qkdn_err.h"
#include "qkdn_sp.h"

#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Encoded once into a growing buffer, then copied: appending token by
 * token to an nng_msg regrows it to the exact size each time. */
int
qkdn_rpc_pack(const struct qkdn_msg *m, nng_msg **out)
{
	struct qkdn_buf buf = {0};
	nng_msg *nm;
	int rv = qkdn_msg_encode(m, qkdn_buf_write, &buf);
	if (rv == 0 && nng_msg_alloc(&nm, buf.len) != 0)
		rv = QKDN_E_NOMEM;
	if (rv == 0) {
		memcpy(nng_msg_body(nm), buf.data, buf.len);
		*out = nm;
	}
	qkdn_buf_free(&buf);
	return rv;
}

int
qkdn_rpc_unpack(nng_msg *nm, struct qkdn_msg *out,
                struct qkdn_decode_error *err)
{
	return qkdn_msg_decode(nng_msg_body(nm), nng_msg_len(nm), out, err);
}

void
qkdn_rpc_free_wiped(nng_msg *nm)
{
	if (nm == NULL)
		return;
	sodium_memzero(nng_msg_body(nm), nng_msg_len(nm));
	nng_msg_free(nm);
}

void
qkdn_rpc_error(struct qkdn_msg *out, uint64_t req_id, int code,
               const char *reason)
{
	memset(out, 0, sizeof(*out));
	out->type = QKDN_ERROR;
	out->req_id = req_id;
	out->u.error.code = code < 0 ? -code : -QKDN_E_INTERNAL;
	snprintf(out->u.error.reason, sizeof(out->u.error.reason), "%s",
	         reason != NULL ? reason : qkdn_strerror(code));
}

static void
set_err(struct qkdn_decode_error *err, int code, const char *reason)
{
	if (err != NULL) {
		err->code = code;
		snprintf(err->reason, sizeof(err->reason), "%s", reason);
	}
}

/* A decoded reply: an ERROR one becomes its code, with its reason in err
 * (rsp is then cleared). */
static int
error_of(struct qkdn_msg *rsp, struct qkdn_decode_error *err)
{
	if (rsp->type != QKDN_ERROR)
		return 0;
	int rv = -rsp->u.error.code;
	set_err(err, rv, rsp->u.error.reason);
	qkdn_msg_clear(rsp);
	return rv;
}

int
qkdn_rpc_sp_call(struct qkdn_sp_conn *c, const char *url,
                 const struct qkdn_msg *req, struct qkdn_msg *rsp,
                 size_t rsp_max, int timeout_ms, struct qkdn_decode_error *err)
{
	uint64_t deadline = qkdn_now_ms() + (uint64_t)timeout_ms;
	struct qkdn_buf b = {0};
	uint8_t *in = NULL;
	size_t in_len = 0;
	int rv;
	memset(rsp, 0, sizeof(*rsp));
	if ((rv = qkdn_msg_encode(req, qkdn_buf_write, &b)) != 0) {
		set_err(err, rv, "request could not be encoded");
		return rv;
	}
	if (c->fd < 0 && (rv = qkdn_sp_connect_once(c, url, deadline)) != 0) {
		c->fd = -1;
		qkdn_buf_free(&b);
		set_err(err, rv, qkdn_sp_last_error());
		return rv == QKDN_E_CONFIG ? rv : QKDN_E_UNREACHABLE;
	}
	rv = qkdn_sp_call(c, b.data, b.len, &in, &in_len, rsp_max, deadline);
	qkdn_buf_free(&b);
	if (rv != 0) {
		set_err(err, rv, qkdn_sp_last_error());
		qkdn_sp_close(c);
		c->fd = -1;
		return rv == QKDN_E_TIMEOUT ? rv : QKDN_E_UNREACHABLE;
	}
	rv = qkdn_msg_decode(in, in_len, rsp, err);
	explicit_bzero(in, in_len);
	free(in);
	return rv != 0 ? rv : error_of(rsp, err);
}

/* Run one aio operation on ctx to completion within ms. */
static int
ctx_op(nng_ctx ctx, nng_aio *aio, bool send, nng_duration ms)
{
	nng_aio_set_timeout(aio, ms);
	if (send)
		nng_ctx_send(ctx, aio);
	else
		nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	return nng_aio_result(aio);
}

int
qkdn_rpc_call(nng_socket s, const struct qkdn_msg *req, struct qkdn_msg *rsp,
              int timeout_ms, struct qkdn_decode_error *err)
{
	nng_ctx ctx;
	nng_aio *aio = NULL;
	nng_msg *nm = NULL;
	int rv;

	memset(rsp, 0, sizeof(*rsp));
	if ((rv = qkdn_rpc_pack(req, &nm)) != 0) {
		set_err(err, rv, "request could not be encoded");
		return rv;
	}
	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0 ||
	    (rv = nng_ctx_open(&ctx, s)) != 0) {
		nng_aio_free(aio);
		qkdn_rpc_free_wiped(nm);
		rv = qkdn_err_from_nng(rv);
		set_err(err, rv, "cannot open an RPC context");
		return rv;
	}
	/* One deadline covers send and receive. */
	uint64_t deadline = qkdn_now_ms() + (uint64_t)timeout_ms;
	nng_aio_set_msg(aio, nm);
	if ((rv = ctx_op(ctx, aio, true, timeout_ms)) != 0) {
		qkdn_rpc_free_wiped(nng_aio_get_msg(aio));
		goto nng_fail;
	}
	uint64_t now = qkdn_now_ms();
	if ((rv = ctx_op(ctx, aio, false,
	                 now < deadline ? (nng_duration)(deadline - now)
	                                : 1)) != 0)
		goto nng_fail;
	nm = nng_aio_get_msg(aio);
	rv = qkdn_rpc_unpack(nm, rsp, err);
	qkdn_rpc_free_wiped(nm);
	nng_ctx_close(ctx);
	nng_aio_free(aio);
	return rv != 0 ? rv : error_of(rsp, err);
nng_fail:
	nng_ctx_close(ctx);
	nng_aio_free(aio);
	rv = qkdn_err_from_nng(rv);
	set_err(err, rv,
	        rv == QKDN_E_TIMEOUT ? "no reply within the deadline"
	                             : "peer unreachable");
	return rv;
}

int
qkdn_rpc_dial(nng_socket *s, const char *url)
{
	int rv;
	if ((rv = nng_req0_open(s)) != 0)
		return qkdn_err_from_nng(rv);
	/* Requests are never resent: a key request is not idempotent. */
	nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, QKDN_MSG_BYTES_MAX);
	nng_socket_set_ms(*s, NNG_OPT_RECONNMINT, 10);
	nng_socket_set_ms(*s, NNG_OPT_RECONNMAXT, 200);
	if ((rv = nng_dial(*s, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		nng_close(*s);
		return rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP
		           ? QKDN_E_CONFIG
		           : qkdn_err_from_nng(rv);
	}
	return 0;
}

int
qkdn_err_from_nng(int rv)
{
	switch (rv) {
	case 0:
		return QKDN_OK;
	case NNG_ETIMEDOUT:
		return QKDN_E_TIMEOUT;
	case NNG_ENOMEM:
		return QKDN_E_NOMEM;
	case NNG_ECONNREFUSED:
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
	case NNG_ECLOSED:
	case NNG_EADDRINVAL:
	case NNG_ENOENT:
		return QKDN_E_UNREACHABLE;
	case NNG_ECANCELED:
		return QKDN_E_SHUTDOWN;
	default:
		return QKDN_E_IO;
	}
}
