/* The thread-free REQ client (qkdn_sp.h) against real nng REP sockets:
 * round trips over ipc and tcp, skipping a stale reply, refusing an
 * oversized reply, deadlines with a silent server, no server, and use
 * after fork. */
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_sp.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[64];
static char url[128];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/qkdn-sp.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(url, sizeof(url), "ipc://%s/rep", dir);
	return 0;
}

static int
teardown(void **state)
{
	char path[128];
	(void)state;
	snprintf(path, sizeof(path), "%s/rep", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

/* An echo server answering in its own nng threads (nng_recv/send in a
 * thread would do too; aio keeps the test single-file). */
struct echo {
	nng_socket s;
	nng_aio *aio;
	nng_ctx ctx;
	int sending;
	int mute;   /* never answer */
	size_t pad; /* reply this many extra bytes */
};

static void
echo_cb(void *arg)
{
	struct echo *e = arg;
	if (nng_aio_result(e->aio) != 0)
		return;
	if (!e->sending) {
		nng_msg *m = nng_aio_get_msg(e->aio);
		if (e->mute) {
			nng_msg_free(m);
			return;
		}
		for (size_t i = 0; i < e->pad; i++)
			nng_msg_append(m, "x", 1);
		e->sending = 1;
		nng_aio_set_msg(e->aio, m);
		nng_ctx_send(e->ctx, e->aio);
	} else {
		e->sending = 0;
		nng_ctx_recv(e->ctx, e->aio);
	}
}

static void
echo_start(struct echo *e, const char *u)
{
	assert_int_equal(nng_rep0_open(&e->s), 0);
	assert_int_equal(nng_aio_alloc(&e->aio, echo_cb, e), 0);
	assert_int_equal(nng_ctx_open(&e->ctx, e->s), 0);
	assert_int_equal(nng_listen(e->s, u, NULL, 0), 0);
	nng_ctx_recv(e->ctx, e->aio);
}

static void
echo_stop(struct echo *e)
{
	nng_aio_stop(e->aio);
	nng_close(e->s);
	nng_aio_free(e->aio);
}

static void
round_trip(const char *u)
{
	struct echo e = {0};
	struct qkdn_sp_conn c;
	uint8_t *rsp;
	size_t len;
	echo_start(&e, u);
	assert_int_equal(qkdn_sp_connect(&c, u, qkdn_now_ms() + 2000), 0);
	for (int i = 0; i < 100; i++) {
		uint8_t req[300];
		memset(req, i, sizeof(req));
		assert_int_equal(qkdn_sp_call(&c, req, (size_t)i * 3, &rsp,
		                              &len, 1024, qkdn_now_ms() + 2000),
		                 0);
		assert_int_equal(len, (size_t)i * 3);
		assert_memory_equal(rsp, req, len);
		free(rsp);
	}
	qkdn_sp_close(&c);
	echo_stop(&e);
}

static void
test_ipc_round_trip(void **state)
{
	(void)state;
	round_trip(url);
}

/* A loopback port the kernel picks, free when this returns. */
static void
free_tcp_url(char *out, size_t len)
{
	nng_socket s;
	nng_listener l;
	nng_sockaddr sa;
	assert_int_equal(nng_rep0_open(&s), 0);
	assert_int_equal(nng_listen(s, "tcp://127.0.0.1:0", &l, 0), 0);
	assert_int_equal(nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa), 0);
	snprintf(out, len, "tcp://127.0.0.1:%u",
	         (unsigned)((sa.s_in.sa_port >> 8) | (sa.s_in.sa_port << 8)) &
	             0xffffu);
	nng_close(s);
}

static void
test_tcp_round_trip(void **state)
{
	char tcp[64];
	(void)state;
	free_tcp_url(tcp, sizeof(tcp));
	round_trip(tcp);
}

static void
test_oversized_reply_refused(void **state)
{
	struct echo e = {.pad = 2000};
	struct qkdn_sp_conn c;
	uint8_t *rsp = NULL;
	size_t len;
	(void)state;
	echo_start(&e, url);
	assert_int_equal(qkdn_sp_connect(&c, url, qkdn_now_ms() + 2000), 0);
	assert_int_equal(qkdn_sp_call(&c, (const uint8_t *)"hi", 2, &rsp, &len,
	                              1024, qkdn_now_ms() + 2000),
	                 QKDN_E_BAD_REQUEST);
	assert_null(rsp);
	qkdn_sp_close(&c);
	echo_stop(&e);
}

static void
test_silent_server_times_out(void **state)
{
	struct echo e = {.mute = 1};
	struct qkdn_sp_conn c;
	uint8_t *rsp;
	size_t len;
	(void)state;
	echo_start(&e, url);
	assert_int_equal(qkdn_sp_connect(&c, url, qkdn_now_ms() + 2000), 0);
	uint64_t t0 = qkdn_now_ms();
	assert_int_equal(qkdn_sp_call(&c, (const uint8_t *)"hi", 2, &rsp, &len,
	                              1024, t0 + 300),
	                 QKDN_E_TIMEOUT);
	uint64_t took = qkdn_now_ms() - t0;
	assert_true(took >= 300 && took < 2000);
	qkdn_sp_close(&c);
	echo_stop(&e);
}

static void
test_no_server(void **state)
{
	struct qkdn_sp_conn c;
	(void)state;
	uint64_t t0 = qkdn_now_ms();
	assert_int_equal(qkdn_sp_connect(&c, url, t0 + 200),
	                 QKDN_E_UNREACHABLE);
	assert_true(qkdn_now_ms() - t0 < 2000);
	assert_int_equal(qkdn_sp_connect(&c, "udp://x:1", t0 + 200),
	                 QKDN_E_CONFIG);
}

/* Raw REP socket echo driven by one aio: answers every request. */
struct raw_echo {
	nng_socket s;
	nng_aio *aio;
	int sending;
};

static void
raw_echo_cb(void *arg)
{
	struct raw_echo *e = arg;
	if (nng_aio_result(e->aio) != 0)
		return;
	if (!e->sending) {
		e->sending = 1;
		nng_aio_set_msg(e->aio, nng_aio_get_msg(e->aio));
		nng_send_aio(e->s, e->aio);
	} else {
		e->sending = 0;
		nng_recv_aio(e->s, e->aio);
	}
}

/* A reply to an abandoned request (deadline passed) must not be taken as
 * the reply to the next request on the same connection. */
static void
test_stale_reply_skipped(void **state)
{
	struct raw_echo e = {0};
	struct qkdn_sp_conn c;
	uint8_t *rsp;
	size_t len;
	nng_msg *late;
	(void)state;
	assert_int_equal(nng_rep0_open_raw(&e.s), 0);
	assert_int_equal(nng_aio_alloc(&e.aio, raw_echo_cb, &e), 0);
	assert_int_equal(nng_listen(e.s, url, NULL, 0), 0);
	assert_int_equal(qkdn_sp_connect(&c, url, qkdn_now_ms() + 2000), 0);
	/* "one" is held by the server past its deadline */
	assert_int_equal(qkdn_sp_call(&c, (const uint8_t *)"one", 3, &rsp, &len,
	                              64, qkdn_now_ms() + 100),
	                 QKDN_E_TIMEOUT);
	assert_int_equal(nng_recvmsg(e.s, &late, 0), 0);
	assert_int_equal(nng_sendmsg(e.s, late, 0), 0); /* the late reply */
	nng_recv_aio(e.s, e.aio);                       /* from now on, echo */
	assert_int_equal(qkdn_sp_call(&c, (const uint8_t *)"two", 3, &rsp, &len,
	                              64, qkdn_now_ms() + 2000),
	                 0);
	assert_int_equal(len, 3);
	assert_memory_equal(rsp, "two", 3);
	free(rsp);
	qkdn_sp_close(&c);
	nng_aio_stop(e.aio);
	nng_close(e.s);
	nng_aio_free(e.aio);
}

/* A connection survives in the parent; a forked child makes its own. */
static void
test_fork_child_connects(void **state)
{
	struct echo e = {0};
	struct qkdn_sp_conn c;
	uint8_t *rsp;
	size_t len;
	(void)state;
	echo_start(&e, url);
	assert_int_equal(qkdn_sp_connect(&c, url, qkdn_now_ms() + 2000), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct qkdn_sp_conn cc;
		int ok = qkdn_sp_connect(&cc, url, qkdn_now_ms() + 2000) == 0 &&
		         qkdn_sp_call(&cc, (const uint8_t *)"kid", 3, &rsp,
		                      &len, 64, qkdn_now_ms() + 2000) == 0 &&
		         len == 3 && memcmp(rsp, "kid", 3) == 0;
		_exit(ok ? 0 : 1);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(qkdn_sp_call(&c, (const uint8_t *)"dad", 3, &rsp, &len,
	                              64, qkdn_now_ms() + 2000),
	                 0);
	assert_memory_equal(rsp, "dad", 3);
	free(rsp);
	qkdn_sp_close(&c);
	echo_stop(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ipc_round_trip, setup,
	                                    teardown),
	    cmocka_unit_test(test_tcp_round_trip),
	    cmocka_unit_test_setup_teardown(test_oversized_reply_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_silent_server_times_out, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_no_server, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_reply_skipped, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_fork_child_connects, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
