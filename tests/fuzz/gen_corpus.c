/* Writes a seed corpus for fuzz_decode: for every message type one valid
 * encoding with every field set and one with optional fields left out and
 * arrays at their smallest (tests/common/samples.c). Usage: gen_corpus DIR */
#include "qkdn_err.h"
#include "qkdn_msg.h"
#include "samples.h"

#include <stdio.h>
#include <string.h>

static const struct {
	enum sample_variant v;
	const char *name;
} variants[] = {{SAMPLE_MIN, "min"}, {SAMPLE_FULL, "full"}};

int
main(int argc, char **argv)
{
	int written = 0;
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (uint32_t type = 0; type < 1000; type++) {
		if (qkdn_msg_type_name(type) == NULL)
			continue;
		for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]);
		     i++) {
			struct qkdn_msg m;
			struct qkdn_buf b = {0};
			char path[4096];
			FILE *f;
			int rv;
			if ((rv = sample_build(&m, type, variants[i].v)) != 0) {
				fprintf(stderr,
				        "gen_corpus: no %s sample for type %u "
				        "(%s): %s\n",
				        variants[i].name, type,
				        qkdn_msg_type_name(type),
				        qkdn_strerror(rv));
				return 1;
			}
			if ((rv = qkdn_msg_encode(&m, qkdn_buf_write, &b)) !=
			    0) {
				fprintf(stderr, "gen_corpus: type %u: %s\n",
				        type, qkdn_strerror(rv));
				return 1;
			}
			snprintf(path, sizeof(path), "%s/seed-%03u-%s.msgpack",
			         argv[1], type, variants[i].name);
			if ((f = fopen(path, "wb")) == NULL ||
			    fwrite(b.data, 1, b.len, f) != b.len ||
			    fclose(f) != 0) {
				perror(path);
				return 1;
			}
			qkdn_buf_free(&b);
			qkdn_msg_clear(&m);
			written++;
		}
	}
	printf("gen_corpus: wrote %d seeds to %s\n", written, argv[1]);
	return 0;
}
