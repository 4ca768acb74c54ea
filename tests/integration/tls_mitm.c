/* A one-connection TCP man in the middle for TLS tests: it relays one
 * client connection to an upstream server and, with --flip, flips one bit
 * of the key_share in the server's ServerHello (TLS 1.3: extension 0x0033,
 * group and key_exchange; for the qkd group the key_exchange is the KEM
 * ciphertext, the 16-byte key ID). Everything else passes untouched.
 *
 *   tls_mitm --upstream PORT --port-file FILE [--flip [--byte N]]
 *            [--timeout-ms N]
 *
 * --byte: which byte of the key_exchange to flip (default: the last).
 *
 * It listens on 127.0.0.1 on a port the kernel picks and writes that port
 * to FILE (atomically) once it accepts connections. On exit it prints one
 * line: "flipped group=0xfe60 len=16 byte=15" or "not flipped". Exit 0 if
 * it did what was asked, 1 if --flip found no key_share to flip, 2 on
 * usage or socket errors. Nothing waits longer than --timeout-ms (10000). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REC_MAX (5 + 16384 + 2048)

struct mitm {
	bool flip, done; /* done: the ServerHello went past */
	long byte;       /* byte of the key_exchange to flip; -1: the last */
	unsigned group, kx_len;
	int flipped_at;
	uint8_t buf[2 * REC_MAX]; /* server-to-client bytes not yet sent */
	size_t len;
};

static long
now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static unsigned
be16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static bool
write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* One TLS record from the server. If it holds a ServerHello (not a
 * HelloRetryRequest, whose key_share has no key_exchange), flip the last
 * bit of the key_exchange. Malformed input is passed on as it is. */
static void
record(struct mitm *m, uint8_t *r, size_t len)
{
	size_t p, end, ext_end;
	if (len < 5 + 4 + 2 + 32 + 1 || r[0] != 22 || r[5] != 2)
		return;
	m->done = true;
	end = 5 + 4 + ((size_t)r[6] << 16 | (size_t)r[7] << 8 | r[8]);
	if (end > len)
		return;
	p = 5 + 4 + 2 + 32; /* legacy_version, random */
	p += 1 + r[p];      /* legacy_session_id_echo */
	p += 2 + 1;         /* cipher_suite, legacy_compression_method */
	if (p + 2 > end)
		return;
	ext_end = p + 2 + be16(r + p);
	p += 2;
	if (ext_end > end)
		return;
	while (p + 4 <= ext_end) {
		unsigned type = be16(r + p), elen = be16(r + p + 2);
		uint8_t *e = r + p + 4;
		if (p + 4 + elen > ext_end)
			return;
		if (type == 0x0033 && elen >= 4) {
			unsigned kx_len = be16(e + 2);
			if (4 + kx_len > elen || kx_len == 0)
				return;
			m->group = be16(e);
			m->kx_len = kx_len;
			long at = m->byte < 0 ? (long)kx_len - 1 : m->byte;
			if (m->flip && at < (long)kx_len) {
				e[4 + at] ^= 0x01;
				m->flipped_at = (int)at;
			}
			return;
		}
		p += 4 + elen;
	}
}

/* Pass whole records from the server on, after looking at each one until
 * the ServerHello has gone by; then pass bytes through as they come. */
static bool
to_client(struct mitm *m, int client)
{
	while (!m->done && m->len >= 5) {
		size_t rlen = 5 + be16(m->buf + 3);
		if (m->len < rlen)
			return true;
		record(m, m->buf, rlen);
		if (!write_all(client, m->buf, rlen))
			return false;
		memmove(m->buf, m->buf + rlen, m->len - rlen);
		m->len -= rlen;
	}
	if (m->done && m->len > 0) {
		if (!write_all(client, m->buf, m->len))
			return false;
		m->len = 0;
	}
	return true;
}

static int
listen_any(uint16_t *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(fd, 1) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
		perror("tls_mitm: listen");
		exit(2);
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static int
connect_to(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		perror("tls_mitm: connect upstream");
		exit(2);
	}
	return fd;
}

static void
write_port_file(const char *path, uint16_t port)
{
	char tmp[4096];
	FILE *f;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL || fprintf(f, "%u\n", port) < 0 ||
	    fclose(f) != 0 || rename(tmp, path) != 0) {
		perror("tls_mitm: port file");
		exit(2);
	}
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"upstream", required_argument, NULL, 'u'},
	    {"port-file", required_argument, NULL, 'p'},
	    {"flip", no_argument, NULL, 'f'},
	    {"byte", required_argument, NULL, 'b'},
	    {"timeout-ms", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0}};
	static struct mitm m = {.flipped_at = -1, .byte = -1};
	const char *port_file = NULL;
	long upstream = 0, timeout_ms = 10000, deadline;
	uint16_t port;
	int c, lfd, client = -1, server = -1;
	bool c_open = true, s_open = true;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'u':
			upstream = strtol(optarg, NULL, 10);
			break;
		case 'p':
			port_file = optarg;
			break;
		case 'f':
			m.flip = true;
			break;
		case 'b':
			m.byte = strtol(optarg, NULL, 10);
			break;
		case 't':
			timeout_ms = strtol(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}
	if (upstream <= 0 || upstream > 65535 || port_file == NULL ||
	    timeout_ms <= 0 || m.byte < -1) {
		fprintf(stderr, "usage: tls_mitm --upstream PORT --port-file "
		                "FILE [--flip [--byte N]] [--timeout-ms N]\n");
		return 2;
	}
	deadline = now_ms() + timeout_ms;
	lfd = listen_any(&port);
	write_port_file(port_file, port);

	struct pollfd lp = {.fd = lfd, .events = POLLIN};
	if (poll(&lp, 1, (int)timeout_ms) != 1 ||
	    (client = accept(lfd, NULL, NULL)) < 0) {
		fprintf(stderr, "tls_mitm: no client within the deadline\n");
		return 2;
	}
	close(lfd);
	server = connect_to((uint16_t)upstream);

	/* relay until the server side closes (the client may half-close) */
	while (s_open) {
		struct pollfd p[2] = {
		    {.fd = c_open ? client : -1, .events = POLLIN},
		    {.fd = server, .events = POLLIN}};
		uint8_t b[REC_MAX];
		long left = deadline - now_ms();
		ssize_t n;
		if (left <= 0) {
			fprintf(stderr, "tls_mitm: deadline passed\n");
			break;
		}
		if (poll(p, 2, (int)left) < 0 && errno != EINTR)
			break;
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(client, b, sizeof(b));
			if (n <= 0) {
				c_open = false;
				shutdown(server, SHUT_WR);
			} else if (!write_all(server, b, (size_t)n)) {
				break;
			}
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			size_t room = sizeof(m.buf) - m.len;
			n = read(server, m.buf + m.len, room);
			if (n <= 0)
				s_open = false;
			else
				m.len += (size_t)n;
			if (!to_client(&m, client))
				break;
		}
	}
	close(server);
	close(client);
	if (m.flipped_at >= 0)
		printf("flipped group=0x%04x len=%u byte=%d\n", m.group,
		       m.kx_len, m.flipped_at);
	else
		printf("not flipped%s\n", m.kx_len ? "" : " (no key_share)");
	return m.flip && m.flipped_at < 0 ? 1 : 0;
}
