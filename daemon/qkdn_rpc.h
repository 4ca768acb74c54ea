/* nng request/reply helpers shared by every qkdn program: messages to and
 * from nng_msg, error replies, and a client call with a deadline. */
#ifndef QKDN_RPC_H
#define QKDN_RPC_H

#include "qkdn_clock.h"
#include "qkdn_msg.h"

#include <nng/nng.h>

/* Encode m into a new nng message. */
int qkdn_rpc_pack(const struct qkdn_msg *m, nng_msg **out)
    __attribute__((warn_unused_result));

/* Decode the body of an nng message (the message is not freed). */
int qkdn_rpc_unpack(nng_msg *nm, struct qkdn_msg *out,
                    struct qkdn_decode_error *err)
    __attribute__((warn_unused_result));

/* Wipe the body of an nng message, then free it: for messages that held
 * key material. */
void qkdn_rpc_free_wiped(nng_msg *nm);

/* Build an ERROR reply for code (negative qkdn error) and reason. */
void qkdn_rpc_error(struct qkdn_msg *out, uint64_t req_id, int code,
                    const char *reason);

/* Send req on a new context of the REQ socket s and wait at most
 * timeout_ms for the reply, decoded into rsp. An ERROR reply returns its
 * code (negative) with its reason in err; rsp is then cleared. */
int qkdn_rpc_call(nng_socket s, const struct qkdn_msg *req,
                  struct qkdn_msg *rsp, int timeout_ms,
                  struct qkdn_decode_error *err)
    __attribute__((warn_unused_result));

struct qkdn_sp_conn;
/* The same over a qkdn_sp connection (qkdn_sp.h: how tls+tcp:// is
 * reached), connected first (once: no retry) if c->fd < 0, with c->tls
 * and c->peer_name as the caller set them. The reply is at most rsp_max
 * bytes, and its bytes are wiped once decoded. A failure of the
 * connection closes it (c->fd is then -1) and says why in err (the TLS
 * reason, e.g. a certificate's name that is not c->peer_name). */
int qkdn_rpc_sp_call(struct qkdn_sp_conn *c, const char *url,
                     const struct qkdn_msg *req, struct qkdn_msg *rsp,
                     size_t rsp_max, int timeout_ms,
                     struct qkdn_decode_error *err)
    __attribute__((warn_unused_result));

/* nng errors in qkdn terms: the one place they are mapped. */
int qkdn_err_from_nng(int nng_rv);

/* Open a REQ socket dialled to url (non-blocking dial: calls made before
 * the peer is up wait for it within their own deadline). */
int qkdn_rpc_dial(nng_socket *s, const char *url)
    __attribute__((warn_unused_result));

#endif
