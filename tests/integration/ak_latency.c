/* Median latency of key requests (Q.4160 I.1 source side) from one
 * client, in microseconds: what an application sees.
 *
 *   ak_latency KM_URL SAE DST_SAE N */
#include "qkdn_ak.h"
#include "qkdn_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int
cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t
now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int
main(int argc, char **argv)
{
	struct qkdn_ak *ak;
	struct qkdn_ak_key key;
	int n = argc == 5 ? atoi(argv[4]) : 0;
	if (n < 1 || n > 100000) {
		fprintf(stderr, "usage: ak_latency KM_URL SAE DST_SAE N\n");
		return 2;
	}
	uint64_t *v = calloc((size_t)n, sizeof(*v));
	if (v == NULL || qkdn_ak_open(&ak, argv[1], argv[2], 5000) != 0)
		return 1;
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now_us();
		if (qkdn_ak_get_keys(ak, argv[3], 256, 1, &key) != 0) {
			fprintf(stderr, "request %d: %s\n", i,
			        qkdn_ak_last_error());
			return 1;
		}
		v[i] = now_us() - t0;
		qkdn_ak_keys_wipe(&key, 1);
	}
	qsort(v, (size_t)n, sizeof(*v), cmp);
	printf("%llu\n", (unsigned long long)v[n / 2]);
	qkdn_ak_close(ak);
	free(v);
	return 0;
}
