/* A bare qkdn_server for the listener tests: it answers STATUS_REQ with
 * the request's verified TLS peer name (qkdn_server_peer_name) in the
 * reply's node field, "-" when there is none. A status request whose
 * req_id N is above 1 is answered N ms late (qkdn_server_retry), so a test
 * can hold a request in flight.
 *
 *   srv_echo URL [--ca F --cert F --key F] [--max-conns N] [--per-host N]
 *            [--idle-ms N] [--recv-max N]
 *
 * Runs until SIGTERM or SIGINT, then stops the server and exits 0. */
#include "qkdn_err.h"
#include "qkdn_log.h"
#include "qkdn_server.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC "echo"

struct slot {
	int delayed; /* this request already waited its flags ms */
};

static void
handle_status(struct qkdn_server_req *r, struct qkdn_msg *req)
{
	struct slot *sl = qkdn_server_slot(r);
	uint64_t ms = req->req_id;
	if (ms > 1 && ms < 60000 && !sl->delayed) {
		sl->delayed = 1;
		qkdn_server_retry(r, (int)ms);
		return;
	}
	sl->delayed = 0;
	const char *peer = qkdn_server_peer_name(r);
	struct qkdn_msg rsp = {.type = QKDN_STATUS_RSP};
	snprintf(rsp.u.status_rsp.node, sizeof(rsp.u.status_rsp.node), "%s",
	         peer != NULL ? peer : "-");
	qkdn_server_reply(r, &rsp);
}

static const struct qkdn_handler handlers[] = {
    {QKDN_STATUS_REQ, handle_status},
};

static int
int_arg(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "srv_echo: %s needs a value\n", argv[*i]);
		exit(2);
	}
	return atoi(argv[++*i]);
}

int
main(int argc, char **argv)
{
	struct qkdn_tls_files tls = {0};
	struct qkdn_server_config cfg = {
	    .name = "Echo",
	    .log_src = SRC,
	    .refusal_level = QKDN_LOG_INFO,
	    .recv_max = 4096,
	    .slot_size = sizeof(struct slot),
	    .handlers = handlers,
	    .n_handlers = 1,
	};
	if (argc < 2) {
		fprintf(stderr, "usage: srv_echo URL [options]\n");
		return 2;
	}
	cfg.url = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--ca") == 0 && i + 1 < argc)
			tls.ca = argv[++i];
		else if (strcmp(a, "--cert") == 0 && i + 1 < argc)
			tls.cert = argv[++i];
		else if (strcmp(a, "--key") == 0 && i + 1 < argc)
			tls.key = argv[++i];
		else if (strcmp(a, "--max-conns") == 0)
			cfg.max_conns = int_arg(argc, argv, &i);
		else if (strcmp(a, "--per-host") == 0)
			cfg.max_conns_per_host = int_arg(argc, argv, &i);
		else if (strcmp(a, "--idle-ms") == 0)
			cfg.idle_ms = int_arg(argc, argv, &i);
		else if (strcmp(a, "--recv-max") == 0)
			cfg.recv_max = (size_t)int_arg(argc, argv, &i);
		else {
			fprintf(stderr, "srv_echo: unknown option %s\n", a);
			return 2;
		}
	}
	if (tls.ca != NULL)
		cfg.tls = &tls;
	qkdn_log_set_ident("srv_echo");
	/* blocked before any thread exists, so only sigwait sees them */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct qkdn_server *s;
	int rv = qkdn_server_start(&s, &cfg);
	if (rv != 0) {
		fprintf(stderr, "srv_echo: cannot start on %s: %s\n", cfg.url,
		        qkdn_strerror(rv));
		return 1;
	}
	QLOG_INFO(SRC, "listening on %s", cfg.url);
	int sig;
	sigwait(&set, &sig);
	qkdn_server_stop(s);
	QLOG_INFO(SRC, "stopped");
	return 0;
}
