/* The fork registry (qkdn_fork.h). Lock order: the registry, then each
 * object. */
#include "qkdn_fork.h"

#include <stddef.h>

static pthread_mutex_t registry_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;
static struct qkdn_fork_obj *registry;

static void
fork_prepare(void)
{
	pthread_mutex_lock(&registry_mtx);
	for (struct qkdn_fork_obj *o = registry; o != NULL; o = o->next)
		pthread_mutex_lock(o->mtx);
}

static void
fork_parent(void)
{
	for (struct qkdn_fork_obj *o = registry; o != NULL; o = o->next)
		pthread_mutex_unlock(o->mtx);
	pthread_mutex_unlock(&registry_mtx);
}

static void
fork_child(void)
{
	for (struct qkdn_fork_obj *o = registry; o != NULL; o = o->next) {
		if (o->child != NULL)
			o->child(o->arg);
		pthread_mutex_unlock(o->mtx);
	}
	pthread_mutex_unlock(&registry_mtx);
}

static void
registry_init(void)
{
	/* glibc drops these handlers when the module that registered them
	 * (the provider) is unloaded; should registration fail, the objects'
	 * getpid() checks still keep a child from its parent's keys and
	 * connections */
	(void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void
qkdn_fork_register(struct qkdn_fork_obj *o)
{
	pthread_once(&registry_once, registry_init);
	pthread_mutex_lock(&registry_mtx);
	o->prev = NULL;
	o->next = registry;
	if (registry != NULL)
		registry->prev = o;
	registry = o;
	pthread_mutex_unlock(&registry_mtx);
}

void
qkdn_fork_unregister(struct qkdn_fork_obj *o)
{
	pthread_mutex_lock(&registry_mtx);
	if (o->prev != NULL)
		o->prev->next = o->next;
	else
		registry = o->next;
	if (o->next != NULL)
		o->next->prev = o->prev;
	pthread_mutex_unlock(&registry_mtx);
}
