/* Raw clients that misbehave before or during nng's SP handshake, for
 * test_listener_wedge.sh (nanomsg/nng#1518: with nng 1.5.2's own ipc
 * listener, one client that closes during the SP header exchange stops
 * the listener for good). Plain sockets, no nng, no SP client code.
 *
 *   wedge_probe close URL [N]     connect and close at once, N times (1)
 *   wedge_probe rst URL [N]       the same, with a TCP reset (tcp:// only)
 *   wedge_probe partial URL       send 3 bytes of an SP header, close
 *   wedge_probe garbage URL       send an 8-byte header that is not SP's,
 *                                 wait up to 3 s for the server to close
 *   wedge_probe badframe URL      a REQ's SP header, then a frame the
 *                                 server must refuse (ipc: type 2; tcp: a
 *                                 2^40-byte length), wait for the close
 *   wedge_probe call URL          a well-behaved client on a new
 *                                 connection: one STATUS_REQ, and any
 *                                 well-formed reply within 2 s (a KM's Kx
 *                                 answers it with an ACK)
 *   wedge_probe stall URL MS      hold 4 connections for MS: one silent,
 *                                 one with 4 bytes of a header, one with a
 *                                 whole header and nothing more, one with
 *                                 a header and 5 bytes of a frame
 *
 * URL: ipc://PATH or tcp://HOST:PORT. Prints "ok", or what went wrong
 * and exits 1 (a connect that fails, a server that never closes). */
#include "qkdn_msg.h"
#include "qkdn_rpc.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const unsigned char req_hdr[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};

static int is_ipc;

static int
dial(const char *url)
{
	int fd = -1;
	if (strncmp(url, "ipc://", 6) == 0) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		is_ipc = 1;
		if (strlen(url + 6) >= sizeof(sa.sun_path))
			return -1;
		strcpy(sa.sun_path, url + 6);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 &&
		    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			close(fd);
			fd = -1;
		}
		return fd;
	}
	if (strncmp(url, "tcp://", 6) != 0)
		return -1;
	char host[256];
	const char *hp = url + 6, *colon = strrchr(hp, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	if (colon == NULL || (size_t)(colon - hp) >= sizeof(host))
		return -1;
	memcpy(host, hp, (size_t)(colon - hp));
	host[colon - hp] = 0;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static int
dial_or_die(const char *url)
{
	int fd = dial(url);
	if (fd < 0) {
		printf("cannot connect to %s: %s\n", url, strerror(errno));
		exit(1);
	}
	return fd;
}

static void
send_all(int fd, const void *p, size_t n)
{
	if (send(fd, p, n, MSG_NOSIGNAL) != (ssize_t)n) {
		printf("cannot send: %s\n", strerror(errno));
		exit(1);
	}
}

/* Read (and drop) until the server closes: 0, or -1 after ms. */
static int
await_close(int fd, int ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = ms - ((t.tv_sec - t0.tv_sec) * 1000 +
		                  (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			return -1;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		char buf[256];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return 0;
	}
}

static void
recv_all(int fd, unsigned char *p, size_t n)
{
	while (n > 0) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, 2000) <= 0) {
			printf("no reply within 2 s\n");
			exit(1);
		}
		ssize_t r = recv(fd, p, n, 0);
		if (r <= 0) {
			printf("closed by the server\n");
			exit(1);
		}
		p += r;
		n -= (size_t)r;
	}
}

/* SP headers, one STATUS_REQ, one reply that decodes. */
static void
call(const char *url)
{
	struct qkdn_msg m = {.type = QKDN_STATUS_REQ, .req_id = 1}, rsp;
	struct qkdn_decode_error err = {0};
	unsigned char hdr[8], head[13];
	nng_msg *nm, *back;
	int fd = dial_or_die(url), h = is_ipc;
	if (qkdn_rpc_pack(&m, &nm) != 0) {
		printf("cannot encode\n");
		exit(1);
	}
	send_all(fd, req_hdr, sizeof(req_hdr));
	recv_all(fd, hdr, sizeof(hdr));
	if (memcmp(hdr, "\0SP\0\0\x31\0\0", 8) != 0) {
		printf("not an SP REP server\n");
		exit(1);
	}
	uint64_t len = nng_msg_len(nm) + 4;
	head[0] = 1;
	for (int i = 0; i < 8; i++)
		head[h + i] = (unsigned char)(len >> (56 - 8 * i));
	memcpy(head + h + 8, "\x80\0\0\x07", 4);
	send_all(fd, head, (size_t)h + 12);
	send_all(fd, nng_msg_body(nm), nng_msg_len(nm));
	nng_msg_free(nm);
	recv_all(fd, head, (size_t)h + 12);
	len = 0;
	for (int i = 0; i < 8; i++)
		len = len << 8 | head[h + i];
	if (len < 4 || len > 65536 || memcmp(head + h + 8, "\x80\0\0\x07", 4)) {
		printf("a malformed reply frame\n");
		exit(1);
	}
	if (nng_msg_alloc(&back, (size_t)len - 4) != 0)
		exit(1);
	recv_all(fd, nng_msg_body(back), (size_t)len - 4);
	if (qkdn_rpc_unpack(back, &rsp, &err) != 0) {
		printf("a reply that does not decode: %s\n", err.reason);
		exit(1);
	}
	nng_msg_free(back);
	qkdn_msg_clear(&rsp);
	close(fd);
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int
main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: wedge_probe MODE URL [ARG]\n");
		return 2;
	}
	const char *mode = argv[1], *url = argv[2];
	int arg = argc > 3 ? atoi(argv[3]) : 1;
	if (strcmp(mode, "close") == 0 || strcmp(mode, "rst") == 0) {
		for (int i = 0; i < arg; i++) {
			int fd = dial_or_die(url);
			if (mode[0] == 'r') {
				struct linger l = {1, 0};
				setsockopt(fd, SOL_SOCKET, SO_LINGER, &l,
				           sizeof(l));
			}
			close(fd);
		}
	} else if (strcmp(mode, "partial") == 0) {
		int fd = dial_or_die(url);
		send_all(fd, req_hdr, 3);
		close(fd);
	} else if (strcmp(mode, "garbage") == 0 ||
	           strcmp(mode, "badframe") == 0) {
		int fd = dial_or_die(url);
		if (mode[0] == 'g') {
			send_all(fd, "GET / HT", 8);
		} else {
			/* ipc: type 2; tcp: 2^40 bytes, with an ID */
			unsigned char f[13] = {2, 0, 0,    0, 0, 0, 0,
			                       0, 9, 0x80, 0, 0, 1};
			unsigned char t[12] = {0, 0, 1,    0, 0, 0,
			                       0, 0, 0x80, 0, 0, 1};
			send_all(fd, req_hdr, sizeof(req_hdr));
			if (is_ipc)
				send_all(fd, f, sizeof(f));
			else
				send_all(fd, t, sizeof(t));
		}
		if (await_close(fd, 3000) != 0) {
			printf("the server did not close within 3 s\n");
			return 1;
		}
		close(fd);
	} else if (strcmp(mode, "call") == 0) {
		call(url);
	} else if (strcmp(mode, "stall") == 0) {
		int fd[4];
		for (int i = 0; i < 4; i++)
			fd[i] = dial_or_die(url);
		send_all(fd[1], req_hdr, 4);
		send_all(fd[2], req_hdr, sizeof(req_hdr));
		send_all(fd[3], req_hdr, sizeof(req_hdr));
		send_all(fd[3], "\1\0\0\0\0", 5);
		sleep_ms(arg);
		for (int i = 0; i < 4; i++)
			close(fd[i]);
	} else {
		fprintf(stderr, "wedge_probe: unknown mode %s\n", mode);
		return 2;
	}
	printf("ok\n");
	return 0;
}
