/* Plays a faulty QKD module or a corrupted disk at one end of a link:
 * inverts the oldest key block that a stopped KM's store holds for a link
 * (all but the first 32 bytes of each half), so that the two ends' pools
 * differ there.
 *
 *   store_flip STORE_DIR LINK BLOCK_BYTES [KEY_FILE]
 *
 * The KM must be stopped (one KM per store). Prints the block ID. */
#include "store.h"

#include "qkdn_err.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

static void
first_id(void *arg, uint64_t id)
{
	uint64_t *oldest = arg;
	if (*oldest == 0)
		*oldest = id;
}

int
main(int argc, char **argv)
{
	struct km_store *st;
	uint64_t oldest = 0;
	uint8_t *b = NULL;
	uint32_t len = 0;
	int rv;
	if ((argc != 4 && argc != 5) ||
	    (len = (uint32_t)strtoul(argv[3], NULL, 10)) < 128 ||
	    len > QKDN_BLOCK_BYTES_MAX) {
		fprintf(stderr, "usage: store_flip STORE_DIR LINK BLOCK_BYTES "
		                "[KEY_FILE]\n");
		return 2;
	}
	if (sodium_init() < 0 || (b = sodium_malloc(len)) == NULL)
		return 1;
	/* KEY_FILE: the node's storage_key (default <STORE_DIR>/storage.key) */
	if ((rv = km_store_open_keyed(&st, argv[1], argc == 5 ? argv[4] : NULL,
	                              (uint64_t)1024 << 20)) != 0) {
		fprintf(stderr, "store %s: %s\n", argv[1], qkdn_strerror(rv));
		return 1;
	}
	if ((rv = km_store_block_ids(st, argv[2], first_id, &oldest)) != 0 ||
	    oldest == 0) {
		fprintf(stderr, "link %s: no block (%s)\n", argv[2],
		        qkdn_strerror(rv));
		goto out;
	}
	if ((rv = km_store_block_get(st, argv[2], oldest, b, len)) != 0 ||
	    (rv = km_store_block_delete(st, argv[2], oldest)) != 0)
		goto out;
	/* a block the two ends disagree on throughout, as a module that lost
	 * its synchronisation would deliver, except for the first 32 bytes of
	 * each half: the one-time MAC key of the first sync that uses it
	 * still agrees, so only a tag over the key bits themselves can tell */
	for (uint32_t i = 0; i < len; i++)
		if (i % (len / 2) >= 32)
			b[i] ^= 0xff;
	if ((rv = km_store_block_put(st, argv[2], oldest, b, len)) != 0)
		goto out;
	printf("%llu\n", (unsigned long long)oldest);
out:
	if (rv != 0)
		fprintf(stderr, "block %llu: %s\n", (unsigned long long)oldest,
		        qkdn_strerror(rv));
	sodium_free(b);
	km_store_close(st, true);
	return rv != 0;
}
