/* Daemons of a run directory: start them detached, find them again through
 * their pid files, stop them. Linux only (/proc, PR_SET_CHILD_SUBREAPER). */
#include "cli.h"

#include "qkdn_err.h"
#include "qkdn_rpc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS      20
#define KILL_WAIT_MS 2000
#define TAIL_LINES   20
#define TAIL_BYTES   4096

static void
nap_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
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
cli_find_program(const char *name, char *out, size_t len)
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
		}
	}
	const char *path = getenv("PATH");
	while (path != NULL && *path != '\0') {
		const char *end = strchrnul(path, ':');
		char dir[PATH_MAX];
		int dl = (int)(end - path);
		snprintf(dir, sizeof(dir), "%.*s", dl, dl > 0 ? path : ".");
		if (path_join(out, len, dir, name, "") == 0 && executable(out))
			return 0;
		path = *end == ':' ? end + 1 : end;
	}
	return QKDN_E_CONFIG;
}

int
cli_make_run_dir(const char *dir, char *abs, size_t len, char *why,
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
write_pid_file(const char *dir, const struct cli_proc *p)
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

/* Child side of cli_spawn: become a daemon and exec. Only async-signal-safe
 * calls from here on. */
static void __attribute__((noreturn))
daemonise(int report, int null_fd, int log_fd, char *const argv[])
{
	pid_t pid;
	int err;
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
	if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
		err = errno;
	else {
		execv(argv[0], argv);
		err = errno;
	}
	(void)!write(report, &err, sizeof(err));
	_exit(127);
}

int
cli_spawn(const char *dir, struct cli_proc *p, char *const argv[], char *why,
          size_t whylen)
{
	char log[PATH_MAX];
	int pipe_fd[2] = {-1, -1}, log_fd = -1, null_fd = -1, rv = QKDN_E_IO;
	struct stat st;
	pid_t child, pid = 0;
	int err = 0;

	p->pid = 0;
	p->state = PROC_RUNNING;
	p->status = -1;
	if (path_join(log, sizeof(log), dir, p->name, ".log") != 0) {
		snprintf(why, whylen, "run dir path too long");
		return QKDN_E_TOO_LARGE;
	}
	/* Daemons whose middle parent exits are re-parented to us, so that
	 * we can reap them and tell how they ended while starting up. */
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
		daemonise(pipe_fd[1], null_fd, log_fd, argv);
	}
	close(pipe_fd[1]);
	pipe_fd[1] = -1;
	while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
		;
	/* First the daemon's pid, then, only if exec failed, its errno; the
	 * pipe closes on a successful exec. */
	if (read(pipe_fd[0], &pid, sizeof(pid)) != (ssize_t)sizeof(pid) ||
	    pid <= 0) {
		snprintf(why, whylen, "cannot start %s: %s", argv[0],
		         pid < 0 ? strerror(-pid) : "fork failed");
		goto out;
	}
	p->pid = pid;
	if (read(pipe_fd[0], &err, sizeof(err)) == (ssize_t)sizeof(err)) {
		snprintf(why, whylen, "cannot run %s: %s", argv[0],
		         strerror(err));
		cli_proc_alive(p); /* reap it */
		goto out;
	}
	if ((rv = write_pid_file(dir, p)) != 0) {
		snprintf(why, whylen, "cannot write %s/%s.pid", dir, p->name);
		goto out;
	}
	rv = 0;
out:
	if (rv != 0 && p->pid <= 0)
		p->state = PROC_EXITED; /* nothing to stop */
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
	/* an unreaped zombie (parent not reaping) has ended all the same */
	char s = proc_state(pid);
	return s == 'Z' || s == 'X' ? 0 : 1;
}

bool
cli_proc_alive(struct cli_proc *p)
{
	if (p->state != PROC_RUNNING)
		return false;
	if (probe(p->pid, &p->status))
		return true;
	p->state = PROC_EXITED;
	return false;
}

void
cli_proc_describe(const struct cli_proc *p, char *out, size_t len)
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

static int
by_name(const void *x, const void *y)
{
	return strcmp(((const struct cli_proc *)x)->name,
	              ((const struct cli_proc *)y)->name);
}

static void
read_one(const char *dir, struct cli_proc *p)
{
	char path[PATH_MAX], buf[32] = "";
	p->pid = 0;
	p->status = -1;
	p->state = PROC_STALE;
	if (path_join(path, sizeof(path), dir, p->name, ".pid") != 0)
		return;
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return;
	char *ok = fgets(buf, sizeof(buf), f);
	fclose(f);
	char *end;
	long v = ok != NULL ? strtol(buf, &end, 10) : 0;
	if (ok == NULL || v <= 0 || v > INT_MAX || (*end != '\n' && *end))
		return;
	p->pid = (pid_t)v;
	if (probe(p->pid, &p->status))
		p->state = runs_in(p->pid, dir) ? PROC_RUNNING : PROC_FOREIGN;
}

int
cli_read_pid_files(const char *dir, struct cli_proc **out, size_t *n)
{
	struct cli_proc *v = NULL;
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
		struct cli_proc *nv = realloc(v, (count + 1) * sizeof(*v));
		if (nv == NULL) {
			closedir(d);
			free(v);
			return QKDN_E_NOMEM;
		}
		v = nv;
		memset(&v[count], 0, sizeof(v[count]));
		memcpy(v[count].name, e->d_name, len - 4);
		read_one(dir, &v[count]);
		count++;
	}
	closedir(d);
	if (count > 0)
		qsort(v, count, sizeof(*v), by_name);
	*out = v;
	*n = count;
	return 0;
}

/* Wait until none of v in state from runs or the deadline passes; those
 * gone move to state to. */
static void
await(struct cli_proc *v, size_t n, int from, int to, uint64_t deadline)
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

/* Marks of processes signalled but not yet seen gone. */
enum { SENT_TERM = 100, SENT_KILL = 101 };

static void
signal_all(struct cli_proc *v, size_t n, int from, int sig, int sent)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].state != from)
			continue;
		if (v[i].pid <= 0) /* never signal a process group */
			v[i].state = PROC_STALE;
		else if (kill(v[i].pid, sig) == 0)
			v[i].state = sent;
		else
			v[i].state = errno == ESRCH ? PROC_EXITED : PROC_STUCK;
	}
}

void
cli_stop(const char *dir, struct cli_proc *v, size_t n, int grace_ms)
{
	signal_all(v, n, PROC_RUNNING, SIGTERM, SENT_TERM);
	await(v, n, SENT_TERM, PROC_TERM, qkdn_now_ms() + (uint64_t)grace_ms);
	signal_all(v, n, SENT_TERM, SIGKILL, SENT_KILL);
	await(v, n, SENT_KILL, PROC_KILLED, qkdn_now_ms() + KILL_WAIT_MS);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		if (v[i].state == SENT_KILL)
			v[i].state = PROC_STUCK;
		if (v[i].state != PROC_STUCK &&
		    path_join(path, sizeof(path), dir, v[i].name, ".pid") == 0)
			unlink(path);
	}
}

void
cli_log_tail(const char *dir, const struct cli_proc *p)
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
		fprintf(stderr, "qkdn: %s wrote nothing to %s\n", p->name,
		        path);
		return;
	}
	buf[n] = '\0';
	/* keep the last TAIL_LINES lines */
	char *start = buf + n;
	int lines = 0;
	if (start > buf && start[-1] == '\n')
		start--;
	while (start > buf && lines < TAIL_LINES)
		if (*--start == '\n' && ++lines == TAIL_LINES)
			start++;
	fprintf(stderr, "qkdn: last lines of %s:\n", path);
	for (char *line = start; *line != '\0';) {
		char *nl = strchr(line, '\n');
		int len = nl != NULL ? (int)(nl - line) : (int)strlen(line);
		fprintf(stderr, "  %.*s\n", len, line);
		line += len + (nl != NULL);
	}
}
