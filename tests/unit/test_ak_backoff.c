/* The Ak client's back-off when its KM cannot be reached: an ipc:// path
 * with nothing behind it fails the first call after one connect attempt
 * (not the handle's timeout), the next call fails at once saying for how
 * long calls are held back, a forked child starts without the back-off,
 * after the back-off one call probes the KM again (and doubles it), and a
 * KM that answers ends it. */
#include "qkdn_ak.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define TIMEOUT_MS 3000

static char dir[64];
static char url[128];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/qkdn-akb.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(url, sizeof(url), "ipc://%s/km.ak", dir);
	return 0;
}

static int
teardown(void **state)
{
	char path[128];
	(void)state;
	snprintf(path, sizeof(path), "%s/km.ak", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

/* One status call: its code, its duration in *ms. */
static int
status(struct qkdn_ak *ak, uint64_t *ms)
{
	struct qkdn_ak_status st;
	uint64_t t0 = qkdn_now_ms();
	int rv = qkdn_ak_status(ak, &st);
	*ms = qkdn_now_ms() - t0;
	qkdn_ak_status_free(&st);
	return rv;
}

static void
nap_10ms(void)
{
	struct timespec ts = {0, 10 * 1000000L};
	nanosleep(&ts, NULL);
}

/* A KM stand-in that answers every request with its own bytes: the
 * client rejects the answer (wrong type), but the KM answered. */
struct echo {
	nng_aio *aio;
	nng_ctx ctx;
	int sending;
};

static void
echo_cb(void *arg)
{
	struct echo *e = arg;
	if (nng_aio_result(e->aio) != 0)
		return;
	e->sending = !e->sending;
	if (e->sending)
		nng_ctx_send(e->ctx, e->aio); /* the request's own message */
	else
		nng_ctx_recv(e->ctx, e->aio);
}

static void
test_backoff(void **state)
{
	struct qkdn_ak *ak;
	uint64_t ms, t_fail;
	int rv;
	(void)state;
	assert_int_equal(qkdn_ak_open(&ak, url, "alice", TIMEOUT_MS), 0);

	/* one connect attempt, not the timeout */
	assert_int_equal(status(ak, &ms), QKDN_E_UNREACHABLE);
	t_fail = qkdn_now_ms();
	assert_true(ms < 500);
	assert_non_null(strstr(qkdn_ak_last_error(), "KM unreachable"));
	assert_non_null(strstr(qkdn_ak_last_error(), "held back for 1000 ms"));

	/* fails at once, saying for how long */
	assert_int_equal(status(ak, &ms), QKDN_E_UNREACHABLE);
	assert_true(ms < 50);
	assert_non_null(strstr(qkdn_ak_last_error(), "KM unreachable"));
	assert_non_null(strstr(qkdn_ak_last_error(), "ms more"));

	/* a forked child is not held back by its parent's failure: it
	 * probes the KM itself (a first back-off of its own) */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int ok = status(ak, &ms) == QKDN_E_UNREACHABLE &&
		         strstr(qkdn_ak_last_error(),
		                "held back for 1000 ms") != NULL;
		_exit(ok ? 0 : 1);
	}
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);

	/* after the back-off one call probes again: the KM is still away,
	 * so the back-off doubles */
	uint64_t deadline = qkdn_now_ms() + 5000;
	while ((rv = status(ak, &ms)) == QKDN_E_UNREACHABLE &&
	       strstr(qkdn_ak_last_error(), "ms more") != NULL &&
	       qkdn_now_ms() < deadline)
		nap_10ms();
	assert_int_equal(rv, QKDN_E_UNREACHABLE);
	assert_true(qkdn_now_ms() - t_fail >= 900);
	assert_non_null(strstr(qkdn_ak_last_error(), "held back for 2000 ms"));
	assert_int_equal(status(ak, &ms), QKDN_E_UNREACHABLE);
	assert_true(ms < 50);
	assert_non_null(strstr(qkdn_ak_last_error(), "ms more"));

	/* the KM comes back: the first probe after the back-off reaches it
	 * and calls are no longer held back */
	struct echo echo = {0};
	nng_socket s;
	assert_int_equal(nng_rep0_open(&s), 0);
	assert_int_equal(nng_aio_alloc(&echo.aio, echo_cb, &echo), 0);
	assert_int_equal(nng_ctx_open(&echo.ctx, s), 0);
	assert_int_equal(nng_listen(s, url, NULL, 0), 0);
	nng_ctx_recv(echo.ctx, echo.aio);
	deadline = qkdn_now_ms() + 5000;
	while ((rv = status(ak, &ms)) == QKDN_E_UNREACHABLE &&
	       qkdn_now_ms() < deadline)
		nap_10ms();
	assert_int_equal(rv, QKDN_E_BAD_REQUEST); /* answered: wrong type */
	assert_int_equal(status(ak, &ms), QKDN_E_BAD_REQUEST);
	nng_aio_stop(echo.aio);
	nng_close(s);
	nng_aio_free(echo.aio);
	qkdn_ak_close(ak);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_backoff, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
