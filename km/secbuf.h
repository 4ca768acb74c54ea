/* Locked buffers for key material, kept for reuse.
 *
 * sodium_malloc gives locked, guarded memory, but each allocation maps,
 * protects and locks pages and each sodium_free unmaps them: on a relay
 * hop's path, four of each cost a sizeable share of the hop (mprotect,
 * mmap, munmap and mlock were over a quarter of an intermediate KM's CPU,
 * with TLB shootdowns on every unmap). These buffers come from
 * sodium_malloc once and go back to a small free list per size class:
 * wiped (sodium_memzero) when put back, still locked, never swapped.
 * What is lost against a fresh sodium_malloc: the guard page sits after
 * the size class, not after the bytes asked for, and a buffer used after
 * being put back no longer faults. */
#ifndef KM_SECBUF_H
#define KM_SECBUF_H

#include <stddef.h>

/* len bytes (at least 1) of locked memory, contents undefined; NULL if
 * out of memory. */
void *km_secbuf_get(size_t len);
/* Wipe and keep (or free) a buffer of km_secbuf_get; NULL is fine. */
void km_secbuf_put(void *p);
/* Free every kept buffer (at exit). */
void km_secbuf_drain(void);

#endif
