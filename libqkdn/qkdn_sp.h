/* A minimal synchronous client of nng's REQ/REP wire protocol (SP over
 * ipc:// and tcp://), for callers that live inside other people's
 * processes: no threads, so it survives fork() (nng 1.5 does not: its
 * worker threads are gone in a child), and one blocking round trip with
 * poll() deadlines instead of thread hand-offs. Servers stay on nng.
 *
 * Wire: each side first sends 8 bytes {0, 'S', 'P', 0, proto (16-bit BE),
 * 0, 0}; then each message is framed as [type 1 (ipc only)] [64-bit BE
 * length] [payload], and a REQ payload starts with a 32-bit BE request ID
 * with its top bit set, which the REP side echoes. */
#ifndef QKDN_SP_H
#define QKDN_SP_H

#include <stddef.h>
#include <stdint.h>

struct qkdn_sp_conn {
	int fd;
	int ipc; /* 1: ipc framing (type byte), 0: tcp */
	uint32_t next_id;
};

/* Connect and exchange SP headers before deadline_ms (qkdn_now_ms). */
int qkdn_sp_connect(struct qkdn_sp_conn *c, const char *url,
                    uint64_t deadline_ms) __attribute__((warn_unused_result));

/* One attempt only: a refused or missing socket fails at once with
 * QKDN_E_UNREACHABLE instead of being retried until the deadline. */
int qkdn_sp_connect_once(struct qkdn_sp_conn *c, const char *url,
                         uint64_t deadline_ms)
    __attribute__((warn_unused_result));

/* Send one request and wait for its reply (replies to earlier, abandoned
 * requests are skipped). *rsp is malloc'd; the caller wipes and frees it.
 * On any error the connection must be closed. */
int qkdn_sp_call(struct qkdn_sp_conn *c, const uint8_t *req, size_t len,
                 uint8_t **rsp, size_t *rsp_len, size_t rsp_max,
                 uint64_t deadline_ms) __attribute__((warn_unused_result));

void qkdn_sp_close(struct qkdn_sp_conn *c);

#endif
