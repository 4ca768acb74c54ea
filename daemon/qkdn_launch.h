/* The one process launcher of qkdn: start daemons (or children) with a log
 * and a pid file in a run directory, wait until they answer a status
 * request, find them again through their pid files, and stop them with a
 * grace period. `qkdn net up/down/restart` and qkdn-bench use it; the
 * integration tests reach it through `qkdn net`. Linux only (/proc,
 * PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG). */
#ifndef QKDN_LAUNCH_H
#define QKDN_LAUNCH_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#define QKDN_PROC_NAME_MAX 72 /* "qkdsim", "km-<node ID>" and a NUL */

enum qkdn_proc_state {
	QKDN_PROC_UNUSED = 0, /* never started: nothing to signal */
	QKDN_PROC_RUNNING,
	QKDN_PROC_EXITED, /* found dead (status known if we reaped it) */
	QKDN_PROC_TERM,   /* stopped by SIGTERM */
	QKDN_PROC_KILLED, /* needed SIGKILL */
	QKDN_PROC_STUCK,  /* still alive after SIGKILL, or not ours to signal */
	QKDN_PROC_STALE,  /* pid file named no live process, or no valid pid */
	QKDN_PROC_FOREIGN, /* pid file named a live process that is not one of
	                      this run dir's daemons (pid reused): not
	                      signalled */
};

/* One process. name also names its files: DIR/<name>.log and
 * DIR/<name>.pid. */
struct qkdn_proc {
	char name[QKDN_PROC_NAME_MAX];
	pid_t pid;
	off_t log_start; /* log size before this start: the tail begins here */
	int state;       /* enum qkdn_proc_state */
	int status;      /* wait status when we reaped it, else -1 */
};

enum qkdn_launch_mode {
	/* detached (double fork, setsid; re-parented to this process while
	 * it runs) with a pid file: outlives the launching program */
	QKDN_LAUNCH_DAEMON,
	/* a child of this process, which gets SIGTERM when this process
	 * dies; no pid file */
	QKDN_LAUNCH_CHILD,
};

/* A sibling program: next to this executable, or in ../sbin from it (as
 * installed), else (if path) on PATH. */
int qkdn_launch_find_program(const char *name, bool path, char *out, size_t len)
    __attribute__((warn_unused_result));

/* Make dir (and missing parents) with mode 0700 and canonicalise it into
 * abs. Returns 0 or a qkdn error with why filled. */
int qkdn_launch_make_dir(const char *dir, char *abs, size_t len, char *why,
                         size_t whylen) __attribute__((warn_unused_result));

/* Start argv[0] (a path) as p->name, stdin from /dev/null and output
 * appended to dir/<name>.log (mode 0600), with this process's environment.
 * Returns 0, or a qkdn error with why filled (p is then not running). */
int qkdn_launch_spawn(struct qkdn_proc *p, const char *dir, char *const argv[],
                      enum qkdn_launch_mode mode, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* Fork a child (as QKDN_LAUNCH_CHILD) that runs fn(arg) and exits with its
 * result. */
int qkdn_launch_fork(struct qkdn_proc *p, int (*fn)(void *), void *arg)
    __attribute__((warn_unused_result));

/* Whether p still runs; otherwise sets state QKDN_PROC_EXITED. */
bool qkdn_launch_alive(struct qkdn_proc *p);

/* How p ended ("exited with status 1", "was killed by signal 9 (Killed)"). */
void qkdn_launch_describe(const struct qkdn_proc *p, char *out, size_t len);

/* A process waited for: it must answer a status request on url (named in
 * messages; "": it need only stay alive). The request is STATUS_REQ over
 * nng, or, if probe is set, probe(arg): one status request of the
 * caller's own (e.g. through the Ak client, whose fresh connection sees a
 * daemon come up sooner than nng's reconnect backoff does), returning 0
 * once answered and keeping its own deadline. */
struct qkdn_launch_wait {
	struct qkdn_proc *p;
	const char *url;
	int (*probe)(void *arg);
	void *arg;
	bool ready;
	bool failed; /* set for those to blame when the wait fails */
};

/* Poll every one until each answers (each status RPC at most 200 ms, all
 * of them within timeout_ms, at most one try per 20 ms; no fixed sleeps).
 * Fails at once when one exits or *interrupted (may be NULL) is set.
 * Returns 0, or a qkdn error with why naming those that failed. */
int qkdn_launch_await(struct qkdn_launch_wait *w, size_t n, int timeout_ms,
                      const volatile sig_atomic_t *interrupted, char *why,
                      size_t whylen) __attribute__((warn_unused_result));

/* Wait up to timeout_ms for running ones to end by themselves. */
void qkdn_launch_await_exit(struct qkdn_proc *v, size_t n, int timeout_ms);

/* Send sig (SIGTERM, or SIGKILL for a crash) to every running one, then
 * SIGKILL to what is left after grace_ms; sets each state (TERM if gone
 * after SIGTERM, KILLED if it took SIGKILL) and removes the pid files (in
 * dir; NULL: none) of those gone. */
void qkdn_launch_stop(const char *dir, struct qkdn_proc *v, size_t n, int sig,
                      int grace_ms);

/* Read dir/<p->name>.pid: p is RUNNING only if that pid lives and is a
 * daemon of dir (its command line holds "--run-dir DIR"), else STALE or
 * FOREIGN. Returns whether there was such a file. */
bool qkdn_launch_read_pid_file(const char *dir, struct qkdn_proc *p);

/* Every daemon with a pid file in dir, sorted by name. *out is malloc'd.
 * Returns 0 (a missing dir has none) or a qkdn error. */
int qkdn_launch_read_pid_files(const char *dir, struct qkdn_proc **out,
                               size_t *n) __attribute__((warn_unused_result));

/* Print the last lines (at most lines) p wrote to its log since it was
 * started, on f: "PROG: last lines of PATH:" and the lines indented. */
void qkdn_launch_log_tail(FILE *f, const char *prog, const char *dir,
                          const struct qkdn_proc *p, int lines);

#endif
