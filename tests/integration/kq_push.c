/* Plays a QKD module, or someone posing as one: pushes LINK_BLOCK messages
 * to a KM's Kq-1 socket, each of BLOCK_BYTES bytes all equal to FILL.
 *
 *   kq_push URL LINK BLOCK_BYTES FILL ID...
 *
 * Exits 0 once every block is queued on a connected pipe, then stays until
 * stdin closes (or 30 s pass), since nng may drop what a closed socket has
 * not yet sent: the test checks the KM's effect and then lets it go.
 * Exits 3 if it cannot connect within 5 s. */
#include "qkdn_err.h"
#include "qkdn_rpc.h"

#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	nng_socket s = NNG_SOCKET_INITIALIZER;
	int rv, status = 0;
	if (argc < 6) {
		fprintf(stderr,
		        "usage: kq_push URL LINK BLOCK_BYTES FILL ID...\n");
		return 2;
	}
	uint32_t n = (uint32_t)strtoul(argv[3], NULL, 10);
	uint8_t *bytes = malloc(n ? n : 1);
	if (bytes == NULL)
		return 1;
	memset(bytes, (int)strtoul(argv[4], NULL, 0), n);
	if ((rv = nng_push0_open(&s)) != 0 ||
	    (rv = nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 5000)) != 0 ||
	    (rv = nng_dial(s, argv[1], NULL, 0)) != 0) {
		fprintf(stderr, "kq_push: %s: %s\n", argv[1], nng_strerror(rv));
		status = 3;
		goto out;
	}
	for (int i = 5; i < argc; i++) {
		struct qkdn_msg m = {.type = QKDN_LINK_BLOCK};
		nng_msg *nm;
		snprintf(m.u.link_block.link, sizeof(m.u.link_block.link), "%s",
		         argv[2]);
		m.u.link_block.block_id = strtoull(argv[i], NULL, 10);
		m.u.link_block.bytes.len = n;
		m.u.link_block.bytes.ptr = bytes;
		if ((rv = qkdn_rpc_pack(&m, &nm)) != 0) {
			fprintf(stderr, "kq_push: %s\n", qkdn_strerror(rv));
			status = 1;
			goto out;
		}
		if ((rv = nng_sendmsg(s, nm, 0)) != 0) {
			fprintf(stderr, "kq_push: send: %s\n",
			        nng_strerror(rv));
			nng_msg_free(nm);
			status = 3;
			goto out;
		}
	}
	printf("sent\n");
	fflush(stdout);
	struct pollfd p = {.fd = 0, .events = POLLIN};
	char c;
	while (poll(&p, 1, 30000) > 0 && read(0, &c, 1) > 0)
		;
out:
	if (nng_socket_id(s) > 0)
		nng_close(s);
	free(bytes);
	return status;
}
