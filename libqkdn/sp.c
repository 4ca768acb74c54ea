#include "qkdn_sp.h"

#include "qkdn_err.h"
#include "qkdn_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SP_PROTO_REQ 0x30
#define SP_PROTO_REP 0x31
#define RETRY_MS     20

static int
wait_fd(int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		uint64_t now = qkdn_now_ms();
		if (now >= deadline_ms)
			return QKDN_E_TIMEOUT;
		struct pollfd p = {.fd = fd, .events = events};
		int rv = poll(&p, 1, (int)(deadline_ms - now));
		if (rv > 0)
			return 0;
		if (rv < 0 && errno != EINTR)
			return QKDN_E_IO;
	}
}

static int
write_all(int fd, const uint8_t *p, size_t len, uint64_t deadline_ms)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			int rv = wait_fd(fd, POLLOUT, deadline_ms);
			if (rv != 0)
				return rv;
		} else {
			return QKDN_E_UNREACHABLE;
		}
	}
	return 0;
}

static int
read_all(int fd, uint8_t *p, size_t len, uint64_t deadline_ms)
{
	while (len > 0) {
		ssize_t n = recv(fd, p, len, 0);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			int rv = wait_fd(fd, POLLIN, deadline_ms);
			if (rv != 0)
				return rv;
		} else {
			return QKDN_E_UNREACHABLE; /* closed by the peer */
		}
	}
	return 0;
}

/* Open a non-blocking socket connected (or connecting) to url. */
static int
open_socket(const char *url, int *ipc)
{
	int fd = -1;
	if (strncmp(url, "ipc://", 6) == 0) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		if (strlen(url + 6) >= sizeof(sa.sun_path))
			return QKDN_E_CONFIG;
		strcpy(sa.sun_path, url + 6);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		            0);
		if (fd < 0)
			return QKDN_E_IO;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
		    errno != EINPROGRESS && errno != EAGAIN) {
			close(fd);
			return QKDN_E_UNREACHABLE;
		}
		*ipc = 1;
		return fd;
	}
	if (strncmp(url, "tcp://", 6) != 0)
		return QKDN_E_CONFIG;
	char host[256];
	const char *hp = url + 6, *colon = strrchr(hp, ':');
	if (colon == NULL || (size_t)(colon - hp) >= sizeof(host))
		return QKDN_E_CONFIG;
	memcpy(host, hp, (size_t)(colon - hp));
	host[colon - hp] = 0;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		return QKDN_E_UNREACHABLE;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	            0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		fd = QKDN_E_UNREACHABLE;
	}
	freeaddrinfo(ai);
	*ipc = 0;
	if (fd >= 0) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd < 0 && fd != QKDN_E_UNREACHABLE ? QKDN_E_IO : fd;
}

/* One connection attempt: socket, connect, SP header exchange. */
static int
try_connect(struct qkdn_sp_conn *c, const char *url, uint64_t deadline_ms)
{
	static const uint8_t hello[8] = {0, 'S', 'P', 0, 0, SP_PROTO_REQ, 0, 0};
	uint8_t peer[8];
	int ipc = 0, rv;
	int fd = open_socket(url, &ipc);
	if (fd < 0)
		return fd;
	/* the first write waits for a connect in progress */
	if ((rv = write_all(fd, hello, sizeof(hello), deadline_ms)) != 0 ||
	    (rv = read_all(fd, peer, sizeof(peer), deadline_ms)) != 0) {
		close(fd);
		return rv;
	}
	if (memcmp(peer, "\0SP\0", 4) != 0 || peer[4] != 0 ||
	    peer[5] != SP_PROTO_REP || peer[6] != 0 || peer[7] != 0) {
		close(fd);
		return QKDN_E_BAD_REQUEST; /* not a REP socket */
	}
	c->fd = fd;
	c->ipc = ipc;
	randombytes_buf(&c->next_id, sizeof(c->next_id));
	return 0;
}

int
qkdn_sp_connect_once(struct qkdn_sp_conn *c, const char *url,
                     uint64_t deadline_ms)
{
	return try_connect(c, url, deadline_ms);
}

int
qkdn_sp_connect(struct qkdn_sp_conn *c, const char *url, uint64_t deadline_ms)
{
	/* A server that is restarting refuses for a moment: keep trying
	 * within the deadline, as nng's own dialer would. */
	for (;;) {
		int rv = try_connect(c, url, deadline_ms);
		if (rv != QKDN_E_UNREACHABLE)
			return rv;
		uint64_t now = qkdn_now_ms();
		if (now + RETRY_MS >= deadline_ms)
			return rv;
		struct timespec ts = {0, RETRY_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static void
put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t
get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

int
qkdn_sp_call(struct qkdn_sp_conn *c, const uint8_t *req, size_t len,
             uint8_t **rsp, size_t *rsp_len, size_t rsp_max,
             uint64_t deadline_ms)
{
	uint8_t head[13];
	int h = c->ipc, rv;
	uint32_t id = (c->next_id++ & 0x7fffffffu) | 0x80000000u;
	if (h)
		head[0] = 1;
	put_be(head + h, len + 4, 8);
	put_be(head + h + 8, id, 4);
	if ((rv = write_all(c->fd, head, (size_t)h + 12, deadline_ms)) != 0 ||
	    (rv = write_all(c->fd, req, len, deadline_ms)) != 0)
		return rv;
	for (;;) {
		if ((rv = read_all(c->fd, head, (size_t)h + 8, deadline_ms)) !=
		    0)
			return rv;
		uint64_t n = get_be(head + h, 8);
		if ((h && head[0] != 1) || n < 4 || n - 4 > rsp_max)
			return QKDN_E_BAD_REQUEST;
		uint8_t *buf = malloc(n);
		if (buf == NULL)
			return QKDN_E_NOMEM;
		if ((rv = read_all(c->fd, buf, n, deadline_ms)) != 0) {
			sodium_memzero(buf, n);
			free(buf);
			return rv;
		}
		if (get_be(buf, 4) != id) {
			/* the late reply to an abandoned request */
			sodium_memzero(buf, n);
			free(buf);
			continue;
		}
		memmove(buf, buf + 4, n - 4);
		sodium_memzero(buf + n - 4, 4);
		*rsp = buf;
		*rsp_len = n - 4;
		return 0;
	}
}

void
qkdn_sp_close(struct qkdn_sp_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
