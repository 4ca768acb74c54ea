/* The fork registry: objects with a lock that fork() must never leave held
 * in the child by a thread that does not exist there (the Ak handles, the
 * provider's key caches). Around fork() the registry's lock and then every
 * registered object's lock are taken; the parent releases them; in the
 * child, where only the forking thread runs, each object's child hook runs
 * with its lock still held, then the locks are released. */
#ifndef QKDN_FORK_H
#define QKDN_FORK_H

#include <pthread.h>

struct qkdn_fork_obj {
	pthread_mutex_t *mtx;
	void (*child)(void *arg); /* may be NULL */
	void *arg;
	struct qkdn_fork_obj *prev, *next; /* the registry's */
};

/* Add o (mtx, child and arg set); the first call installs the atfork
 * handlers. Remove it before its lock goes. */
void qkdn_fork_register(struct qkdn_fork_obj *o);
void qkdn_fork_unregister(struct qkdn_fork_obj *o);

#endif
