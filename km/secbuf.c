/* Locked buffers for key material, kept for reuse (secbuf.h). */
#include "secbuf.h"

#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#define MIN_SHIFT 6  /* 64 bytes */
#define MAX_SHIFT 20 /* 1 MiB: larger ones are not kept */
#define CLASSES   (MAX_SHIFT - MIN_SHIFT + 1)
#define KEEP      16 /* per class */
#define HEAD                                                                   \
	16 /* in front of the caller's bytes; keeps 16-byte                    \
	    * alignment */
#define MAGIC 0x71646e5345434255ull

struct head {
	uint64_t magic;
	uint32_t cls; /* CLASSES: not kept, sodium_free at once */
	uint32_t len; /* usable bytes */
};
_Static_assert(sizeof(struct head) == HEAD, "head is HEAD bytes");

static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static struct free_list {
	unsigned n;
	unsigned char *v[KEEP];
} kept[CLASSES];

static unsigned
class_of(size_t len)
{
	unsigned c = 0;
	while (c < CLASSES && ((size_t)1 << (c + MIN_SHIFT)) < len)
		c++;
	return c;
}

void *
km_secbuf_get(size_t len)
{
	unsigned c = class_of(len ? len : 1);
	unsigned char *b = NULL;
	if (c < CLASSES) {
		pthread_mutex_lock(&mtx);
		if (kept[c].n > 0)
			b = kept[c].v[--kept[c].n];
		pthread_mutex_unlock(&mtx);
		if (b != NULL)
			return b + HEAD;
	}
	size_t cap = c < CLASSES ? (size_t)1 << (c + MIN_SHIFT) : len;
	if (cap > UINT32_MAX || (b = sodium_malloc(HEAD + cap)) == NULL)
		return NULL;
	struct head h = {.magic = MAGIC, .cls = c, .len = (uint32_t)cap};
	memcpy(b, &h, sizeof(h));
	return b + HEAD;
}

void
km_secbuf_put(void *p)
{
	if (p == NULL)
		return;
	unsigned char *b = (unsigned char *)p - HEAD;
	struct head h;
	memcpy(&h, b, sizeof(h));
	if (h.magic != MAGIC)
		sodium_misuse(); /* not one of ours: abort, never guess */
	sodium_memzero(p, h.len);
	if (h.cls < CLASSES) {
		pthread_mutex_lock(&mtx);
		if (kept[h.cls].n < KEEP) {
			kept[h.cls].v[kept[h.cls].n++] = b;
			b = NULL;
		}
		pthread_mutex_unlock(&mtx);
	}
	if (b != NULL)
		sodium_free(b);
}

void
km_secbuf_drain(void)
{
	pthread_mutex_lock(&mtx);
	for (unsigned c = 0; c < CLASSES; c++)
		while (kept[c].n > 0)
			sodium_free(kept[c].v[--kept[c].n]);
	pthread_mutex_unlock(&mtx);
}
