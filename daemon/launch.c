/* The process launcher (qkdn_launch.h): start, find, wait for and stop the
 * daemons of a run directory, and the children of a benchmark. */
#include "qkdn_launch.h"

#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_rpc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS      20   /* between two looks at a process */
#define KILL_WAIT_MS 2000 /* for a process to go after SIGKILL */
#define PROBE_MS     200  /* one status call while waiting */
#define PROBE_MIN_MS 20   /* least time between two calls to one daemon */
#define TAIL_BYTES   4096

/* Marks of processes signalled but not yet seen gone. */
enum { SENT_TERM = 100, SENT_KILL = 101 };

static void
nap_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
	                      .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int
path_join(char *out, size_t len, const char *dir, const char *name,
          const char *suffix)
{
	int n = snprintf(out, len, "%s/%s%s", dir, name, suffix);
	return n < 0 || (size_t)n >= len ? QKDN_E_TOO_LARGE : 0;
}

static bool
executable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	       access(path, X_OK) == 0;
}

int
qkdn_launch_find_program(const char *name, bool path, char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			if (path_join(out, len, self, name, "") == 0 &&
			    executable(out))
				return 0;
			/* installed: qkdn in bin, the daemons in ../sbin,
			 * which a user's PATH often lacks */
			if (path_join(out, len, self, "../sbin/", name) == 0 &&
			    executable(out))
				return 0;
		}
	}
	const char *dirs = path ? getenv("PATH") : NULL;
	while (dirs != NULL && *dirs != '\0') {
		const char *end = strchrnul(dirs, ':');
		char dir[PATH_MAX];
		int dl = (int)(end - dirs);
		snprintf(dir, sizeof(dir), "%.*s", dl, dl > 0 ? dirs : ".");
		if (path_join(out, len, dir, name, "") == 0 && executable(out))
			return 0;
		dirs = *end == ':' ? end + 1 : end;
	}
	return QKDN_E_CONFIG;
}

int
qkdn_launch_make_dir(const char *dir, char *abs, size_t len, char *why,
                     size_t whylen)
{
	char buf[PATH_MAX];
	struct stat st;
	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf)) {
		snprintf(why, whylen, "run dir path too long");
		return QKDN_E_TOO_LARGE;
	}
	/* mkdir -p; the directories made are private to this user */
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
			snprintf(why, whylen, "cannot create %s: %s", buf,
			         strerror(errno));
			return QKDN_E_IO;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(why, whylen, "%s is not a directory", dir);
		return QKDN_E_IO;
	}
	if (realpath(dir, buf) == NULL || strlen(buf) >= len) {
		snprintf(why, whylen, "cannot resolve %s", dir);
		return QKDN_E_IO;
	}
	memcpy(abs, buf, strlen(buf) + 1);
	return 0;
}

static int
write_pid_file(const char *dir, const struct qkdn_proc *p)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8], text[32];
	int fd, n = snprintf(text, sizeof(text), "%ld\n", (long)p->pid);
	if (path_join(path, sizeof(path), dir, p->name, ".pid") != 0 ||
	    path_join(tmp, sizeof(tmp), dir, p->name, ".pid.tmp") != 0)
		return QKDN_E_TOO_LARGE;
	/* written whole, then renamed: a reader never sees half a pid */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return QKDN_E_IO;
	bool ok = write(fd, text, (size_t)n) == n;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return QKDN_E_IO;
	}
	return 0;
}

/* In a QKDN_LAUNCH_CHILD child: die with the parent (if it is gone
 * already, the signal would never come). Async-signal-safe. */
static void
tie_to_parent(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(127);
}

/* In the child: take stdin from null_fd and stdout and stderr to log_fd,
 * and exec; report exec's errno on the pipe (which closes on success).
 * Only async-signal-safe calls. */
static void __attribute__((noreturn))
exec_logged(int report, int null_fd, int log_fd, char *const argv[])
{
	int err;
	if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
		err = errno;
	else {
		execv(argv[0], argv);
		err = errno;
	}
	(void)!write(report, &err, sizeof(err));
	_exit(127);
}

/* Child side of a QKDN_LAUNCH_DAEMON start: the middle process reports
 * the daemon's pid (or -errno) and exits. */
static void __attribute__((noreturn))
daemonise(int report, int null_fd, int log_fd, char *const argv[])
{
	pid_t pid;
	if (setsid() < 0 || (pid = fork()) < 0) {
		pid = -errno;
		(void)!write(report, &pid, sizeof(pid));
		_exit(1);
	}
	if (pid > 0) {
		(void)!write(report, &pid, sizeof(pid));
		_exit(0);
	}
	/* the grandchild: no session leader, so it never gets a terminal */
	exec_logged(report, null_fd, log_fd, argv);
}

int
qkdn_launch_spawn(struct qkdn_proc *p, const char *dir, char *const argv[],
                  enum qkdn_launch_mode mode, char *why, size_t whylen)
{
	char log[PATH_MAX];
	int pipe_fd[2] = {-1, -1}, log_fd = -1, null_fd = -1, rv = QKDN_E_IO;
	bool daemon = mode == QKDN_LAUNCH_DAEMON;
	pid_t parent = getpid(), child, pid = 0;
	struct stat st;
	int err = 0;

	p->pid = 0;
	p->state = QKDN_PROC_RUNNING;
	p->status = -1;
	if (path_join(log, sizeof(log), dir, p->name, ".log") != 0) {
		snprintf(why, whylen, "run dir path too long");
		p->state = QKDN_PROC_EXITED;
		return QKDN_E_TOO_LARGE;
	}
	/* Daemons whose middle parent exits are re-parented to us, so that
	 * we can reap them and tell how they ended while starting up. */
	if (daemon)
		(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (log_fd < 0 || null_fd < 0 || pipe2(pipe_fd, O_CLOEXEC) != 0) {
		snprintf(why, whylen, "cannot open %s: %s", log,
		         strerror(errno));
		goto out;
	}
	p->log_start = fstat(log_fd, &st) == 0 ? st.st_size : 0;
	fflush(NULL); /* or the children would print our buffers again */
	if ((child = fork()) < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		goto out;
	}
	if (child == 0) {
		close(pipe_fd[0]);
		if (daemon)
			daemonise(pipe_fd[1], null_fd, log_fd, argv);
		tie_to_parent(parent);
		exec_logged(pipe_fd[1], null_fd, log_fd, argv);
	}
	close(pipe_fd[1]);
	pipe_fd[1] = -1;
	if (daemon) {
		while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
			;
		/* first the daemon's pid, then, as for a child, the errno
		 * of a failed exec */
		if (read(pipe_fd[0], &pid, sizeof(pid)) !=
		        (ssize_t)sizeof(pid) ||
		    pid <= 0) {
			snprintf(why, whylen, "cannot start %s: %s", argv[0],
			         pid < 0 ? strerror(-pid) : "fork failed");
			goto out;
		}
	} else {
		pid = child;
	}
	p->pid = pid;
	if (read(pipe_fd[0], &err, sizeof(err)) == (ssize_t)sizeof(err)) {
		snprintf(why, whylen, "cannot run %s: %s", argv[0],
		         strerror(err));
		qkdn_launch_alive(p); /* reap it */
		goto out;
	}
	if (daemon && (rv = write_pid_file(dir, p)) != 0) {
		snprintf(why, whylen, "cannot write %s/%s.pid", dir, p->name);
		goto out;
	}
	rv = 0;
out:
	if (rv != 0 && p->pid <= 0)
		p->state = QKDN_PROC_EXITED; /* nothing to stop */
	if (pipe_fd[0] >= 0)
		close(pipe_fd[0]);
	if (pipe_fd[1] >= 0)
		close(pipe_fd[1]);
	if (log_fd >= 0)
		close(log_fd);
	if (null_fd >= 0)
		close(null_fd);
	return rv;
}

int
qkdn_launch_fork(struct qkdn_proc *p, int (*fn)(void *), void *arg)
{
	pid_t parent = getpid(), pid;
	p->pid = 0;
	p->log_start = 0;
	p->status = -1;
	p->state = QKDN_PROC_EXITED;
	fflush(NULL);
	if ((pid = fork()) < 0)
		return QKDN_E_IO;
	if (pid == 0) {
		tie_to_parent(parent);
		_exit(fn(arg));
	}
	p->pid = pid;
	p->state = QKDN_PROC_RUNNING;
	return 0;
}

/* State letter of /proc/PID/stat, or 0 if unreadable. */
static char
proc_state(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) S ...": comm may itself hold ')' */
	char *paren = strrchr(buf, ')');
	return paren != NULL && paren[1] == ' ' ? paren[2] : 0;
}

/* Threads of pid still listed in /proc (0 if none or unreadable). */
static int
task_count(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	DIR *d = opendir(path);
	int n = 0;
	if (d == NULL)
		return 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* 1 if pid runs, 0 if gone; *status gets its wait status if we reaped it. */
static int
probe(pid_t pid, int *status)
{
	int st;
	pid_t r = waitpid(pid, &st, WNOHANG);
	if (r == pid) {
		*status = st;
		return 0;
	}
	if (r == 0)
		return 1;
	if (kill(pid, 0) != 0 && errno == ESRCH)
		return 0;
	/* An unreaped zombie (parent not reaping) has ended all the same, but
	 * only once its last thread has: after SIGKILL the leader turns 'Z'
	 * while a thread still in a system call (an fsync) keeps every
	 * socket and lock of the process open. */
	char s = proc_state(pid);
	return (s == 'Z' || s == 'X') && task_count(pid) <= 1 ? 0 : 1;
}

bool
qkdn_launch_alive(struct qkdn_proc *p)
{
	if (p->state != QKDN_PROC_RUNNING)
		return false;
	if (probe(p->pid, &p->status))
		return true;
	p->state = QKDN_PROC_EXITED;
	return false;
}

void
qkdn_launch_describe(const struct qkdn_proc *p, char *out, size_t len)
{
	if (p->status < 0)
		snprintf(out, len, "exited");
	else if (WIFEXITED(p->status))
		snprintf(out, len, "exited with status %d",
		         WEXITSTATUS(p->status));
	else if (WIFSIGNALED(p->status))
		snprintf(out, len, "was killed by signal %d (%s)",
		         WTERMSIG(p->status), strsignal(WTERMSIG(p->status)));
	else
		snprintf(out, len, "ended");
}

/* ---- pid files ---- */

/* Whether pid is a daemon started for dir: its command line holds
 * "--run-dir DIR". Guards against signalling a process that reused the
 * pid of one long gone. */
static bool
runs_in(pid_t pid, const char *dir)
{
	char path[64], buf[8192];
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	bool prev_flag = false;
	for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
		const char *arg = buf + i;
		if (prev_flag && strcmp(arg, dir) == 0)
			return true;
		if (strncmp(arg, "--run-dir=", 10) == 0 &&
		    strcmp(arg + 10, dir) == 0)
			return true;
		prev_flag = strcmp(arg, "--run-dir") == 0;
	}
	return false;
}

bool
qkdn_launch_read_pid_file(const char *dir, struct qkdn_proc *p)
{
	char path[PATH_MAX], buf[32] = "";
	p->pid = 0;
	p->log_start = 0;
	p->status = -1;
	p->state = QKDN_PROC_STALE;
	if (path_join(path, sizeof(path), dir, p->name, ".pid") != 0)
		return false;
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return false;
	char *ok = fgets(buf, sizeof(buf), f);
	fclose(f);
	char *end;
	long v = ok != NULL ? strtol(buf, &end, 10) : 0;
	if (ok == NULL || v <= 0 || v > INT_MAX || (*end != '\n' && *end))
		return true;
	p->pid = (pid_t)v;
	if (probe(p->pid, &p->status))
		p->state = runs_in(p->pid, dir) ? QKDN_PROC_RUNNING
		                                : QKDN_PROC_FOREIGN;
	return true;
}

static int
by_name(const void *x, const void *y)
{
	return strcmp(((const struct qkdn_proc *)x)->name,
	              ((const struct qkdn_proc *)y)->name);
}

int
qkdn_launch_read_pid_files(const char *dir, struct qkdn_proc **out, size_t *n)
{
	struct qkdn_proc *v = NULL;
	size_t count = 0;
	struct dirent *e;
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : QKDN_E_IO;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		if (len <= 4 || strcmp(e->d_name + len - 4, ".pid") != 0 ||
		    len - 4 >= sizeof(v->name))
			continue;
		struct qkdn_proc *nv = realloc(v, (count + 1) * sizeof(*v));
		if (nv == NULL) {
			closedir(d);
			free(v);
			return QKDN_E_NOMEM;
		}
		v = nv;
		memset(&v[count], 0, sizeof(v[count]));
		memcpy(v[count].name, e->d_name, len - 4);
		qkdn_launch_read_pid_file(dir, &v[count]);
		count++;
	}
	closedir(d);
	if (count > 0)
		qsort(v, count, sizeof(*v), by_name);
	*out = v;
	*n = count;
	return 0;
}

/* ---- stopping ---- */

/* Wait until none of v in state from runs or the deadline passes; those
 * gone move to state to. */
static void
await_state(struct qkdn_proc *v, size_t n, int from, int to, uint64_t deadline)
{
	for (;;) {
		bool any = false;
		for (size_t i = 0; i < n; i++) {
			if (v[i].state != from)
				continue;
			if (probe(v[i].pid, &v[i].status))
				any = true;
			else
				v[i].state = to;
		}
		if (!any || qkdn_now_ms() >= deadline)
			return;
		nap_ms(POLL_MS);
	}
}

void
qkdn_launch_await_exit(struct qkdn_proc *v, size_t n, int timeout_ms)
{
	await_state(v, n, QKDN_PROC_RUNNING, QKDN_PROC_EXITED,
	            qkdn_now_ms() + (uint64_t)timeout_ms);
}

static void
signal_all(struct qkdn_proc *v, size_t n, int from, int sig, int sent)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].state != from)
			continue;
		if (v[i].pid <= 0) /* never signal a process group */
			v[i].state = QKDN_PROC_STALE;
		else if (kill(v[i].pid, sig) == 0)
			v[i].state = sent;
		else
			v[i].state =
			    errno == ESRCH ? QKDN_PROC_EXITED : QKDN_PROC_STUCK;
	}
}

void
qkdn_launch_stop(const char *dir, struct qkdn_proc *v, size_t n, int sig,
                 int grace_ms)
{
	if (sig != SIGKILL) {
		signal_all(v, n, QKDN_PROC_RUNNING, sig, SENT_TERM);
		await_state(v, n, SENT_TERM, QKDN_PROC_TERM,
		            qkdn_now_ms() + (uint64_t)grace_ms);
		signal_all(v, n, SENT_TERM, SIGKILL, SENT_KILL);
	} else {
		signal_all(v, n, QKDN_PROC_RUNNING, SIGKILL, SENT_KILL);
	}
	await_state(v, n, SENT_KILL, QKDN_PROC_KILLED,
	            qkdn_now_ms() + KILL_WAIT_MS);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		if (v[i].state == SENT_KILL)
			v[i].state = QKDN_PROC_STUCK;
		if (v[i].state != QKDN_PROC_STUCK && dir != NULL &&
		    path_join(path, sizeof(path), dir, v[i].name, ".pid") == 0)
			unlink(path);
	}
}

/* ---- waiting until they answer ---- */

/* One status call; 0 once the daemon answers. */
static int
probe_once(const struct qkdn_launch_wait *w, nng_socket s, uint64_t deadline)
{
	struct qkdn_msg req = {.type = QKDN_STATUS_REQ}, rsp;
	struct qkdn_decode_error err;
	uint64_t start = qkdn_now_ms();
	uint64_t left = deadline > start ? deadline - start : 0;
	int rv;
	if (left == 0)
		return QKDN_E_TIMEOUT;
	if (w->probe != NULL) {
		rv = w->probe(w->arg);
	} else {
		rv = qkdn_rpc_call(s, &req, &rsp,
		                   (int)(left < PROBE_MS ? left : PROBE_MS),
		                   &err);
		if (rv == 0)
			qkdn_msg_clear(&rsp);
	}
	if (rv == 0)
		return 0;
	/* a refused call returns at once: do not spin on it */
	if (qkdn_now_ms() < start + PROBE_MIN_MS)
		nap_ms(start + PROBE_MIN_MS - qkdn_now_ms());
	return rv;
}

/* Name those not ready as failed: "a (url), b (url): no answer within". */
static void
name_silent(struct qkdn_launch_wait *w, size_t n, int timeout_ms, char *why,
            size_t whylen)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		if (w[i].ready)
			continue;
		w[i].failed = true;
		if (len < whylen) {
			int k = snprintf(why + len, whylen - len, "%s%s (%s)",
			                 len == 0 ? "" : ", ", w[i].p->name,
			                 w[i].url);
			len += k > 0 ? (size_t)k : 0;
		}
	}
	if (len < whylen)
		snprintf(why + len, whylen - len, ": no answer within %d ms",
		         timeout_ms);
}

static int
poll_ready(struct qkdn_launch_wait *w, nng_socket *socks, size_t n,
           int timeout_ms, const volatile sig_atomic_t *interrupted, char *why,
           size_t whylen)
{
	uint64_t deadline = qkdn_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		size_t pending = 0;
		if (interrupted != NULL && *interrupted) {
			snprintf(why, whylen, "interrupted");
			return QKDN_E_SHUTDOWN;
		}
		for (size_t i = 0; i < n; i++) {
			char how[96];
			if (qkdn_launch_alive(w[i].p))
				continue;
			w[i].failed = true;
			qkdn_launch_describe(w[i].p, how, sizeof(how));
			snprintf(why, whylen, "%s %s %s %s", w[i].p->name, how,
			         w[i].ready ? "after answering on"
			                    : "before answering on",
			         w[i].url[0] != '\0' ? w[i].url
			                             : "(no address)");
			return QKDN_E_UNREACHABLE;
		}
		for (size_t i = 0; i < n; i++) {
			if (w[i].ready)
				continue;
			w[i].ready = probe_once(&w[i], socks[i], deadline) == 0;
			pending += !w[i].ready;
		}
		if (pending == 0)
			return 0;
		if (qkdn_now_ms() >= deadline) {
			name_silent(w, n, timeout_ms, why, whylen);
			return QKDN_E_TIMEOUT;
		}
	}
}

int
qkdn_launch_await(struct qkdn_launch_wait *w, size_t n, int timeout_ms,
                  const volatile sig_atomic_t *interrupted, char *why,
                  size_t whylen)
{
	nng_socket *socks = calloc(n > 0 ? n : 1, sizeof(*socks));
	size_t dialled = 0;
	int rv = 0;
	if (socks == NULL) {
		snprintf(why, whylen, "out of memory");
		return QKDN_E_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		w[i].ready = w[i].url[0] == '\0'; /* no address: alive is all */
		w[i].failed = false;
	}
	for (; dialled < n; dialled++) {
		if (w[dialled].url[0] == '\0' || w[dialled].probe != NULL)
			continue;
		if ((rv = qkdn_rpc_dial(&socks[dialled], w[dialled].url)) !=
		    0) {
			w[dialled].failed = true;
			snprintf(why, whylen, "%s: cannot dial %s",
			         w[dialled].p->name, w[dialled].url);
			break;
		}
	}
	if (rv == 0)
		rv = poll_ready(w, socks, n, timeout_ms, interrupted, why,
		                whylen);
	for (size_t i = 0; i < dialled; i++)
		if (w[i].url[0] != '\0' && w[i].probe == NULL)
			nng_close(socks[i]);
	free(socks);
	return rv;
}

/* ---- logs ---- */

void
qkdn_launch_log_tail(FILE *f, const char *prog, const char *dir,
                     const struct qkdn_proc *p, int lines)
{
	char path[PATH_MAX], buf[TAIL_BYTES + 1];
	struct stat st;
	if (path_join(path, sizeof(path), dir, p->name, ".log") != 0)
		return;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t from = p->log_start;
	if (fstat(fd, &st) == 0 && st.st_size - from > TAIL_BYTES)
		from = st.st_size - TAIL_BYTES;
	ssize_t n = pread(fd, buf, TAIL_BYTES, from);
	close(fd);
	if (n <= 0) {
		fprintf(f, "%s: %s wrote nothing to %s\n", prog, p->name, path);
		return;
	}
	buf[n] = '\0';
	/* keep the last `lines` lines */
	char *start = buf + n;
	int seen = 0;
	if (start > buf && start[-1] == '\n')
		start--;
	while (start > buf && seen < lines)
		if (*--start == '\n' && ++seen == lines)
			start++;
	fprintf(f, "%s: last lines of %s:\n", prog, path);
	for (char *line = start; *line != '\0';) {
		char *nl = strchr(line, '\n');
		int len = nl != NULL ? (int)(nl - line) : (int)strlen(line);
		fprintf(f, "  %.*s\n", len, line);
		line += len + (nl != NULL);
	}
}
