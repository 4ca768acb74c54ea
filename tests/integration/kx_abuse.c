/* Abuses a KM's Kx listener the way anyone who can reach it could, from
 * many connections at once, for a bounded time:
 *   forged    each connection sends KEY_SYNC_AUTHs naming a block far
 *             beyond anything the link could have produced (2^63) with an
 *             all-zero tag, as fast as the KM answers
 *   oversize  each connection sends one frame announcing 16 MiB and then
 *             streams its bytes; connection i comes from loopback address
 *             127.0.0.(2 + i % 200), so that the per-address connection
 *             cap does not hide an unbounded frame size
 *
 *   kx_abuse MODE KX_URL LINK SRC_SAE DST_SAE CONNECTIONS SECONDS
 *
 * Prints "ready" once every connection is up, then at the end how many
 * requests were answered (forged) or bytes the KM took (oversize). */
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_msg.h"
#include "qkdn_sp.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNS_MAX 256
#define BIG_FRAME (16u << 20)

static const char *url, *link_id, *src, *dst;
static bool oversize;
static uint64_t end_ms;
static atomic_uint connected, answered;
static atomic_ullong bytes_taken;

/* A KEY_SYNC_AUTH naming block 2^63 of link, with a zero tag. */
static int
forged_sync(struct qkdn_buf *out)
{
	qkdn_uuid id;
	qkdn_uuid_v7(&id, 1);
	struct qkdn_segment seg = {.block_id = 1ull << 63, .len = 96};
	struct qkdn_sync_req sr = {.bits = 256, .ids = {1, &id}};
	struct qkdn_msg m = {.type = QKDN_KEY_SYNC};
	snprintf(m.u.key_sync.link, sizeof(m.u.key_sync.link), "%s", link_id);
	snprintf(sr.src_sae, sizeof(sr.src_sae), "%s", src);
	snprintf(sr.dst_sae, sizeof(sr.dst_sae), "%s", dst);
	m.u.key_sync.segs = (struct qkdn_segments){1, &seg};
	m.u.key_sync.reqs = (struct qkdn_sync_reqs){1, &sr};
	struct qkdn_buf body = {0};
	uint8_t tag[16] = {0};
	int rv = qkdn_msg_encode(&m, qkdn_buf_write, &body);
	if (rv == 0) {
		struct qkdn_msg a = {.type = QKDN_KEY_SYNC_AUTH};
		a.u.key_sync_auth.sync =
		    (struct qkdn_bytes){(uint32_t)body.len, body.data};
		a.u.key_sync_auth.tag = (struct qkdn_bytes){16, tag};
		rv = qkdn_msg_encode(&a, qkdn_buf_write, out);
	}
	qkdn_buf_free(&body);
	return rv;
}

/* A non-blocking SP connection to url (tcp://127.0.0.1:PORT) from
 * loopback address 127.0.0.(2 + i % 200): fd, or -1. */
static int
connect_from(unsigned i)
{
	const char *port = strrchr(url, ':');
	struct sockaddr_in me = {.sin_family = AF_INET}, to = me;
	static const uint8_t hello[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	uint8_t peer[8];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || port == NULL)
		goto fail;
	me.sin_addr.s_addr = htonl(0x7f000002u + i % 200);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons((uint16_t)atoi(port + 1));
	if (bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0 ||
	    connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0 ||
	    send(fd, hello, sizeof(hello), MSG_NOSIGNAL) != sizeof(hello) ||
	    recv(fd, peer, sizeof(peer), MSG_WAITALL) != sizeof(peer) ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
		goto fail;
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

static void *
abuser(void *arg)
{
	struct qkdn_sp_conn c = {.fd = -1};
	struct qkdn_buf req = {0};
	static atomic_uint next;
	(void)arg;
	if (oversize)
		c.fd = connect_from(atomic_fetch_add(&next, 1));
	if (oversize ? c.fd < 0
	             : qkdn_sp_connect(&c, url, qkdn_now_ms() + 5000) != 0 ||
	                   forged_sync(&req) != 0) {
		atomic_fetch_add(&connected, 1); /* counted, so main goes on */
		goto out;
	}
	atomic_fetch_add(&connected, 1);
	if (oversize) {
		/* a tcp frame: 64-bit length, then a request ID and bytes */
		static uint8_t chunk[1u << 16];
		uint8_t hdr[12] = {0};
		uint64_t len = BIG_FRAME;
		for (int i = 0; i < 8; i++)
			hdr[i] = (uint8_t)(len >> (56 - 8 * i));
		hdr[8] = 0x80;
		if (send(c.fd, hdr, sizeof(hdr), MSG_NOSIGNAL) != sizeof(hdr))
			goto out;
		for (uint64_t sent = 4; sent < len && qkdn_now_ms() < end_ms;) {
			ssize_t n =
			    send(c.fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				/* the socket is non-blocking: wait until the
				 * KM reads on, or the time is up */
				struct pollfd p = {.fd = c.fd,
				                   .events = POLLOUT};
				(void)poll(&p, 1, 100);
				continue;
			}
			if (n <= 0)
				break; /* the KM closed the connection */
			sent += (uint64_t)n;
			atomic_fetch_add(&bytes_taken, (unsigned long long)n);
		}
		goto out;
	}
	while (qkdn_now_ms() < end_ms) {
		uint8_t *in = NULL;
		size_t in_len = 0;
		if (qkdn_sp_call(&c, req.data, req.len, &in, &in_len, 1u << 16,
		                 end_ms + 3000) != 0)
			break;
		free(in);
		atomic_fetch_add(&answered, 1);
	}
out:
	qkdn_buf_free(&req);
	qkdn_sp_close(&c);
	return NULL;
}

int
main(int argc, char **argv)
{
	pthread_t t[CONNS_MAX];
	if (argc != 8 || (strcmp(argv[1], "forged") != 0 &&
	                  strcmp(argv[1], "oversize") != 0)) {
		fprintf(stderr, "usage: kx_abuse forged|oversize KX_URL LINK "
		                "SRC_SAE DST_SAE CONNECTIONS SECONDS\n");
		return 2;
	}
	oversize = strcmp(argv[1], "oversize") == 0;
	url = argv[2];
	link_id = argv[3];
	src = argv[4];
	dst = argv[5];
	int n = atoi(argv[6]), secs = atoi(argv[7]);
	if (n < 1 || n > CONNS_MAX || secs < 1 || secs > 60)
		return 2;
	end_ms = qkdn_now_ms() + (uint64_t)secs * 1000;
	for (int i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, abuser, NULL) != 0)
			return 1;
	while (atomic_load(&connected) < (unsigned)n)
		usleep(1000);
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	if (oversize)
		printf("bytes taken: %llu\n",
		       (unsigned long long)atomic_load(&bytes_taken));
	else
		printf("answered: %u\n", atomic_load(&answered));
	return 0;
}
