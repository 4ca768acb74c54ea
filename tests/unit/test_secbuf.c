/* km/secbuf.h: a buffer put back is wiped before anyone gets it again, a
 * buffer comes back for the same size class (so the wipe is what stands
 * between two users), and sizes past the largest class still work. */
#include "secbuf.h"

#include <setjmp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static int
setup(void **state)
{
	(void)state;
	return sodium_init() < 0 ? -1 : 0;
}

static bool
all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static void
test_wiped_and_reused(void **state)
{
	(void)state;
	uint8_t *a = km_secbuf_get(1000);
	assert_non_null(a);
	memset(a, 0xAA, 1000);
	km_secbuf_put(a);
	/* same class (1024 bytes): the cached buffer, wiped in full */
	uint8_t *b = km_secbuf_get(600);
	assert_ptr_equal(a, b);
	assert_true(all_zero(b, 1024));
	km_secbuf_put(b);
	km_secbuf_put(NULL); /* fine */
}

static void
test_large_not_kept(void **state)
{
	(void)state;
	size_t n = (size_t)3 << 20; /* past the largest class */
	uint8_t *a = km_secbuf_get(n);
	assert_non_null(a);
	memset(a, 0x55, n);
	km_secbuf_put(a); /* wiped and freed */
	uint8_t *b = km_secbuf_get(16);
	assert_non_null(b);
	km_secbuf_put(b);
	km_secbuf_drain();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wiped_and_reused),
	    cmocka_unit_test(test_large_not_kept),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
