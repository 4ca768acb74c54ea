/* The floor: what a request/reply costs with no key manager behind it.
 * The server is a child process shaped like the KM's Ak server (nng_rep0
 * with aio contexts) that sends each request back, except a qkdn status
 * request, which it answers at once with an empty status reply (a stub
 * KM). The clients: a bare nng REQ socket (one per client, dialled as
 * qkdn_rpc_dial does, a synchronous 64-byte request then reply); the Ak
 * client itself (qkdn_ak_status to the stub), which is the client code of
 * every KM figure; the same echo through qkdn_rpc_call; and, for
 * reference, a raw socketpair ping-pong. */
#include "bench.h"

#include "qkdn_ak.h"
#include "qkdn_err.h"
#include "qkdn_msg.h"
#include "qkdn_rpc.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ECHO_CONTEXTS   128 /* as many as the KM's Ak server */
#define PAYLOAD         64
#define CALL_TIMEOUT_MS 5000
#define MSGPACK_ARRAY4  0x94 /* how every qkdn message starts */
/* A sized echo request (bench_echo_sized_once) starts with this byte, then
 * the reply's length (4 bytes, big-endian): so the Kx floor of `relay`
 * sends a message the size of a relay hop and gets back one the size of
 * its completion, as a KM would, instead of the hop echoed. */
#define ECHO_SIZED 0x01

/* ---- the echo server (child process) ---- */

struct echo_work {
	enum { ECHO_RECV, ECHO_SEND } state;
	nng_aio *aio;
	nng_ctx ctx;
};

struct echo_args {
	char url[600];
	int ready_fd;
};

/* A status request gets an empty status reply (what the Ak client needs
 * to complete a call); anything else goes back as it came. */
static nng_msg *
echo_reply(nng_msg *in)
{
	struct qkdn_msg req, rsp = {.type = QKDN_STATUS_RSP};
	const uint8_t *body = nng_msg_body(in);
	nng_msg *out;
	if (nng_msg_len(in) >= 5 && body[0] == ECHO_SIZED) {
		size_t len = (size_t)body[1] << 24 | (size_t)body[2] << 16 |
		             (size_t)body[3] << 8 | body[4];
		if (nng_msg_alloc(&out, len) != 0)
			return in;
		memset(nng_msg_body(out), 0, len);
		nng_msg_free(in);
		return out;
	}
	if (nng_msg_len(in) == 0 ||
	    ((const uint8_t *)nng_msg_body(in))[0] != MSGPACK_ARRAY4 ||
	    qkdn_rpc_unpack(in, &req, NULL) != 0)
		return in;
	if (req.type != QKDN_STATUS_REQ) {
		qkdn_msg_clear(&req);
		return in;
	}
	rsp.req_id = req.req_id;
	snprintf(rsp.u.status_rsp.node, sizeof(rsp.u.status_rsp.node), "stub");
	qkdn_msg_clear(&req);
	if (qkdn_rpc_pack(&rsp, &out) != 0)
		return in;
	nng_msg_free(in);
	return out;
}

static void
echo_cb(void *arg)
{
	struct echo_work *w = arg;
	int rv = nng_aio_result(w->aio);
	if (w->state == ECHO_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(w->aio));
		if (rv == NNG_ECLOSED)
			return;
		w->state = ECHO_RECV;
		nng_ctx_recv(w->ctx, w->aio);
		return;
	}
	if (rv != 0) {
		if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
			nng_ctx_recv(w->ctx, w->aio);
		return;
	}
	w->state = ECHO_SEND;
	nng_aio_set_msg(w->aio, echo_reply(nng_aio_get_msg(w->aio)));
	nng_ctx_send(w->ctx, w->aio);
}

static int
echo_serve(void *arg)
{
	struct echo_args *a = arg;
	static struct echo_work works[ECHO_CONTEXTS];
	nng_socket s;
	sigset_t set;
	int sig;

	/* nng's threads inherit the mask: only sigwait below sees these */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (nng_rep0_open(&s) != 0 || nng_listen(s, a->url, NULL, 0) != 0)
		return 1;
	for (int i = 0; i < ECHO_CONTEXTS; i++) {
		if (nng_aio_alloc(&works[i].aio, echo_cb, &works[i]) != 0 ||
		    nng_ctx_open(&works[i].ctx, s) != 0)
			return 1;
		works[i].state = ECHO_RECV;
		nng_ctx_recv(works[i].ctx, works[i].aio);
	}
	if (write(a->ready_fd, "r", 1) != 1)
		return 1;
	sigwait(&set, &sig);
	return 0;
}

/* ---- socketpair ping-pong ---- */

static int
full_io(int fd, uint8_t *buf, size_t len, bool wr)
{
	size_t at = 0;
	while (at < len) {
		ssize_t n = wr ? write(fd, buf + at, len - at)
		               : read(fd, buf + at, len - at);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return -1;
		}
		at += (size_t)n;
	}
	return 0;
}

static int
pong(void *arg)
{
	int fd = *(int *)arg;
	uint8_t buf[PAYLOAD];
	while (full_io(fd, buf, sizeof(buf), false) == 0)
		if (full_io(fd, buf, sizeof(buf), true) != 0)
			return 1;
	return 0;
}

static int
socketpair_p50(double seconds, double *p50)
{
	struct bench_samples s = {0};
	struct qkdn_proc child = {.name = "socketpair echo"};
	uint8_t buf[PAYLOAD] = {1};
	int sv[2], rv = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return QKDN_E_IO;
	if ((rv = qkdn_launch_fork(&child, pong, &sv[1])) != 0)
		goto out;
	close(sv[1]);
	sv[1] = -1;
	uint64_t end = bench_now_ns() + (uint64_t)(seconds * 1e9);
	for (int i = 0; rv == 0; i++) {
		uint64_t t0 = bench_now_ns();
		if (full_io(sv[0], buf, sizeof(buf), true) != 0 ||
		    full_io(sv[0], buf, sizeof(buf), false) != 0) {
			rv = QKDN_E_IO;
			break;
		}
		uint64_t t1 = bench_now_ns();
		if (i >= 100 && bench_samples_add(&s, t1 - t0) != 0)
			rv = QKDN_E_NOMEM;
		if (t1 >= end)
			break;
	}
	*p50 = bench_samples_pct_us(&s, 50);
out:
	close(sv[0]); /* the child reads EOF and exits */
	if (sv[1] >= 0)
		close(sv[1]);
	bench_stop(&child, 1);
	bench_samples_free(&s);
	return rv;
}

/* ---- clients ---- */

int
bench_echo_open(nng_socket *s, const char *url)
{
	int rv = qkdn_rpc_dial(s, url);
	if (rv != 0)
		return rv;
	nng_socket_set_ms(*s, NNG_OPT_SENDTIMEO, CALL_TIMEOUT_MS);
	nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, CALL_TIMEOUT_MS);
	return 0;
}

int
bench_echo_once(nng_socket s)
{
	static const uint8_t payload[PAYLOAD] = "qkdn-bench floor";
	nng_msg *m;
	int rv;
	if ((rv = nng_msg_alloc(&m, PAYLOAD)) != 0)
		return qkdn_err_from_nng(rv);
	memcpy(nng_msg_body(m), payload, PAYLOAD);
	if ((rv = nng_sendmsg(s, m, 0)) != 0) {
		nng_msg_free(m);
		return qkdn_err_from_nng(rv);
	}
	if ((rv = nng_recvmsg(s, &m, 0)) != 0)
		return qkdn_err_from_nng(rv);
	rv = nng_msg_len(m) == PAYLOAD ? 0 : QKDN_E_BAD_REQUEST;
	nng_msg_free(m);
	return rv;
}

int
bench_echo_sized_once(nng_socket s, size_t req_len, size_t rsp_len)
{
	nng_msg *m;
	int rv;
	if (req_len < 5 || rsp_len > UINT32_MAX)
		return QKDN_E_BAD_REQUEST;
	if ((rv = nng_msg_alloc(&m, req_len)) != 0)
		return qkdn_err_from_nng(rv);
	uint8_t *b = nng_msg_body(m);
	memset(b, 0, req_len);
	b[0] = ECHO_SIZED;
	b[1] = (uint8_t)(rsp_len >> 24);
	b[2] = (uint8_t)(rsp_len >> 16);
	b[3] = (uint8_t)(rsp_len >> 8);
	b[4] = (uint8_t)rsp_len;
	if ((rv = nng_sendmsg(s, m, 0)) != 0) {
		nng_msg_free(m);
		return qkdn_err_from_nng(rv);
	}
	if ((rv = nng_recvmsg(s, &m, 0)) != 0)
		return qkdn_err_from_nng(rv);
	rv = nng_msg_len(m) == rsp_len ? 0 : QKDN_E_BAD_REQUEST;
	nng_msg_free(m);
	return rv;
}

int
bench_stub_open(struct qkdn_ak **ak, const char *url)
{
	return qkdn_ak_open(ak, url, "alice", CALL_TIMEOUT_MS);
}

int
bench_status_once(struct qkdn_ak *ak)
{
	struct qkdn_ak_status st;
	int rv = qkdn_ak_status(ak, &st);
	qkdn_ak_status_free(&st);
	return rv;
}

/* The echo through the qkdn RPC path: a key request is encoded, sent on a
 * fresh context, echoed, and decoded as the reply. */
static void
rpc_request(struct qkdn_msg *req)
{
	memset(req, 0, sizeof(*req));
	req->type = QKDN_KEY_REQ;
	snprintf(req->u.key_req.sae, sizeof(req->u.key_req.sae), "alice");
	snprintf(req->u.key_req.dst_sae, sizeof(req->u.key_req.dst_sae), "bob");
	req->u.key_req.bits = 256;
	req->u.key_req.count = 1;
}

static size_t
rpc_request_bytes(void)
{
	struct qkdn_msg req;
	nng_msg *nm;
	size_t n = 0;
	rpc_request(&req);
	if (qkdn_rpc_pack(&req, &nm) == 0) {
		n = nng_msg_len(nm);
		nng_msg_free(nm);
	}
	return n;
}

/* one client of each kind, as a loop body */
enum client_kind { NNG_ECHO, AK_STUB, RPC_CALL };

struct client {
	enum client_kind kind;
	nng_socket s;
	struct qkdn_ak *ak;
};

static int
client_open(struct client *c, enum client_kind kind, const char *url)
{
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	return kind == AK_STUB ? bench_stub_open(&c->ak, url)
	                       : bench_echo_open(&c->s, url);
}

static void
client_close(struct client *c)
{
	if (c->kind == AK_STUB)
		qkdn_ak_close(c->ak);
	else if (nng_socket_id(c->s) > 0)
		nng_close(c->s);
	memset(c, 0, sizeof(*c));
}

static int
client_once(struct client *c)
{
	struct qkdn_msg req, rsp;
	struct qkdn_decode_error err;
	int rv;
	switch (c->kind) {
	case NNG_ECHO:
		return bench_echo_once(c->s);
	case AK_STUB:
		return bench_status_once(c->ak);
	case RPC_CALL:
		rpc_request(&req);
		rv = qkdn_rpc_call(c->s, &req, &rsp, CALL_TIMEOUT_MS, &err);
		qkdn_msg_clear(&rsp);
		return rv;
	}
	return QKDN_E_INTERNAL;
}

struct many {
	enum client_kind kind;
	const char *url;
};

static int
many_setup(struct bench_worker *w)
{
	const struct many *m = w->arg;
	struct client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return QKDN_E_NOMEM;
	if (client_open(c, m->kind, m->url) != 0) {
		free(c);
		return QKDN_E_UNREACHABLE;
	}
	w->priv = c;
	return 0;
}

static int
many_op(struct bench_worker *w, char *why, size_t whylen)
{
	int rv = client_once(w->priv);
	if (rv != 0) {
		snprintf(why, whylen, "floor: %s", qkdn_strerror(rv));
		return rv;
	}
	return 1;
}

static void
many_teardown(struct bench_worker *w)
{
	client_close(w->priv);
	free(w->priv);
}

/* Round trips per second with n clients of one kind. */
static int
many_clients(const char *url, enum client_kind kind, int n, double seconds,
             double *per_s)
{
	struct many m = {.kind = kind, .url = url};
	struct bench_load l = {.threads = n,
	                       .seconds = seconds,
	                       .warmup_ops = 50,
	                       .arg = &m,
	                       .setup = many_setup,
	                       .op = many_op,
	                       .teardown = many_teardown};
	int rv = bench_load_run(&l);
	if (rv == 0 && l.errors > 0)
		rv = QKDN_E_UNREACHABLE;
	if (rv != 0)
		bench_note("floor, %d clients: %s", n,
		           l.first_error[0] ? l.first_error
		                            : qkdn_strerror(rv));
	*per_s = (double)l.ops / l.elapsed_s;
	bench_load_free(&l);
	return rv;
}

/* One client of a kind for seconds after a warm-up: rate per second (if
 * wanted), p50 and p99 in us. */
static int
one_client(const char *url, enum client_kind kind, double seconds, double *rate,
           double *p50, double *p99)
{
	struct bench_samples smp = {0};
	struct client c;
	int rv = client_open(&c, kind, url);
	for (int i = 0; i < 200 && rv == 0; i++)
		rv = client_once(&c);
	uint64_t start = bench_now_ns(),
	         end = start + (uint64_t)(seconds * 1e9), t1 = start;
	while (rv == 0 && t1 < end) {
		uint64_t t0 = bench_now_ns();
		if ((rv = client_once(&c)) != 0)
			break;
		t1 = bench_now_ns();
		if (bench_samples_add(&smp, t1 - t0) != 0)
			rv = QKDN_E_NOMEM;
	}
	if (rv != 0)
		bench_note("floor, 1 client: %s", qkdn_strerror(rv));
	if (rate != NULL)
		*rate = (double)smp.n / ((double)(t1 - start) / 1e9);
	*p50 = bench_samples_pct_us(&smp, 50);
	*p99 = bench_samples_pct_us(&smp, 99);
	bench_samples_free(&smp);
	client_close(&c);
	return rv;
}

static void
report(const struct bench_out *o, const struct bench_floor *f)
{
	char a[32], b[32];
	bench_say(o, "(a) floor: request/reply with no KM behind it, over "
	             "ipc:// to a server in a child process");
	bench_say(o,
	          "    (nng_rep0 with %d aio contexts, as the KM's Ak server; "
	          "it echoes, or answers status at once)",
	          ECHO_CONTEXTS);
	bench_say(o,
	          "    bare nng REQ socket, %d-byte echo   %9s round trips/s   "
	          "p50 %7.1f us   p99 %7.1f us",
	          PAYLOAD, bench_group(a, f->rt1_per_s), f->p50_us, f->p99_us);
	bench_say(o, "      %d clients, a socket each        %9s round trips/s",
	          f->many, bench_group(b, f->rtn_per_s));
	bench_say(o,
	          "    Ak client, status to the stub      %9s round trips/s   "
	          "p50 %7.1f us   p99 %7.1f us",
	          bench_group(a, f->ak1_per_s), f->ak_p50_us, f->ak_p99_us);
	bench_say(o, "      %d clients, a handle each        %9s round trips/s",
	          f->many, bench_group(b, f->akn_per_s));
	bench_say(
	    o,
	    "    qkdn_rpc_call, %zu-byte echo                              "
	    "p50 %7.1f us   p99 %7.1f us",
	    f->rpc_bytes, f->rpc_p50_us, f->rpc_p99_us);
	bench_say(
	    o,
	    "    socketpair ping-pong, %d bytes                           "
	    "p50 %7.1f us",
	    PAYLOAD, f->socketpair_p50_us);
	bench_say(o, "    (the Ak client line is the client code of (b) and "
	             "(c); qkdn_rpc_call adds a context,");
	bench_say(o, "    an aio and msgpack to the bare socket; the "
	             "socketpair is the kernel's own floor)");
	bench_blank(o);

	cJSON *j = cJSON_AddObjectToObject(o->root, "floor");
	cJSON_AddNumberToObject(j, "payload_bytes", PAYLOAD);
	cJSON_AddNumberToObject(j, "round_trips_per_s_1", f->rt1_per_s);
	cJSON_AddNumberToObject(j, "p50_us", f->p50_us);
	cJSON_AddNumberToObject(j, "p99_us", f->p99_us);
	cJSON_AddNumberToObject(j, "clients", f->many);
	cJSON_AddNumberToObject(j, "round_trips_per_s_n", f->rtn_per_s);
	cJSON_AddNumberToObject(j, "ak_round_trips_per_s_1", f->ak1_per_s);
	cJSON_AddNumberToObject(j, "ak_p50_us", f->ak_p50_us);
	cJSON_AddNumberToObject(j, "ak_p99_us", f->ak_p99_us);
	cJSON_AddNumberToObject(j, "ak_round_trips_per_s_n", f->akn_per_s);
	cJSON_AddNumberToObject(j, "rpc_call_p50_us", f->rpc_p50_us);
	cJSON_AddNumberToObject(j, "rpc_call_p99_us", f->rpc_p99_us);
	cJSON_AddNumberToObject(j, "rpc_call_bytes", (double)f->rpc_bytes);
	cJSON_AddNumberToObject(j, "socketpair_p50_us", f->socketpair_p50_us);
}

int
bench_echo_start(struct bench_echo *e, const char *dir)
{
	char url[sizeof(e->url)];
	snprintf(url, sizeof(url), "ipc://%s/echo.ipc", dir);
	return bench_echo_start_url(e, url);
}

int
bench_echo_start_url(struct bench_echo *e, const char *url)
{
	struct echo_args ea;
	int ready[2], rv;
	char c;
	memset(e, 0, sizeof(*e));
	snprintf(e->url, sizeof(e->url), "%s", url);
	snprintf(ea.url, sizeof(ea.url), "%s", e->url);
	if (pipe(ready) != 0)
		return QKDN_E_IO;
	ea.ready_fd = ready[1];
	snprintf(e->proc.name, sizeof(e->proc.name), "echo server");
	rv = qkdn_launch_fork(&e->proc, echo_serve, &ea);
	close(ready[1]);
	if (rv == 0 && read(ready[0], &c, 1) != 1) {
		bench_note("the echo server did not start");
		bench_stop(&e->proc, 1);
		rv = QKDN_E_IO;
	}
	close(ready[0]);
	return rv;
}

void
bench_echo_stop(struct bench_echo *e)
{
	bench_stop(&e->proc, 1);
}

int
bench_floor_run(const struct bench_out *o, const struct bench_echo *e,
                double seconds, int many, struct bench_floor *f)
{
	int rv;
	memset(f, 0, sizeof(*f));
	f->many = many;
	f->rpc_bytes = rpc_request_bytes();
	if ((rv = socketpair_p50(seconds / 4, &f->socketpair_p50_us)) != 0) {
		bench_note("socketpair ping-pong failed: %s",
		           qkdn_strerror(rv));
		return rv;
	}
	if ((rv = one_client(e->url, NNG_ECHO, seconds, &f->rt1_per_s,
	                     &f->p50_us, &f->p99_us)) != 0 ||
	    (rv = many_clients(e->url, NNG_ECHO, many, seconds,
	                       &f->rtn_per_s)) != 0 ||
	    (rv = one_client(e->url, AK_STUB, seconds, &f->ak1_per_s,
	                     &f->ak_p50_us, &f->ak_p99_us)) != 0 ||
	    (rv = many_clients(e->url, AK_STUB, many, seconds,
	                       &f->akn_per_s)) != 0 ||
	    (rv = one_client(e->url, RPC_CALL, seconds / 2, NULL,
	                     &f->rpc_p50_us, &f->rpc_p99_us)) != 0)
		return rv;
	report(o, f);
	return 0;
}
