/* Helpers shared by the benchmarks: clocks, samples, output, child
 * processes and what /proc says about them. Linux only. */
#include "bench.h"

#include "qkdn_err.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STOP_WAIT_MS 5000

/* ---- time ---- */

uint64_t
bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
bench_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- samples ---- */

int
bench_samples_add(struct bench_samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		uint64_t *v = realloc(s->v, cap * sizeof(*v));
		if (v == NULL)
			return QKDN_E_NOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = ns;
	return 0;
}

int
bench_samples_merge(struct bench_samples *dst, const struct bench_samples *src)
{
	for (size_t i = 0; i < src->n; i++)
		if (bench_samples_add(dst, src->v[i]) != 0)
			return QKDN_E_NOMEM;
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

double
bench_samples_pct_us(struct bench_samples *s, double p)
{
	if (s->n == 0)
		return 0;
	qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
	/* nearest rank */
	size_t rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > s->n)
		rank = s->n;
	return (double)s->v[rank - 1] / 1000.0;
}

void
bench_samples_free(struct bench_samples *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* ---- output ---- */

void
bench_say(const struct bench_out *o, const char *fmt, ...)
{
	va_list ap;
	if (o->json)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

void
bench_blank(const struct bench_out *o)
{
	if (!o->json)
		putchar('\n');
}

void
bench_note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("qkdn-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *
bench_group(char buf[32], double v)
{
	char digits[32];
	unsigned long long u = v < 0 ? 0 : (unsigned long long)(v + 0.5);
	int n = snprintf(digits, sizeof(digits), "%llu", u), at = 0;
	for (int i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[at++] = ' ';
		buf[at++] = digits[i];
	}
	buf[at] = '\0';
	return buf;
}

/* ---- child processes ---- */

void
bench_stop(struct qkdn_proc *v, size_t n)
{
	qkdn_launch_stop(NULL, v, n, SIGTERM, STOP_WAIT_MS);
	for (size_t i = 0; i < n; i++)
		if (v[i].state == QKDN_PROC_KILLED)
			bench_note("%s did not stop within %d ms; killed it",
			           v[i].name, STOP_WAIT_MS);
}

int
bench_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void
bench_rm_tree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- /proc ---- */

static long
status_kib(const char *text, const char *field)
{
	const char *p = strstr(text, field);
	return p != NULL ? strtol(p + strlen(field), NULL, 10) : -1;
}

/* Anonymous memory in smaps: no path, or a [bracketed] name other than
 * the kernel's shared pages. */
static bool
anonymous(const char *path)
{
	if (path[0] == '\0')
		return true;
	if (path[0] != '[')
		return false;
	return strcmp(path, "[vvar]") != 0 && strcmp(path, "[vdso]") != 0 &&
	       strcmp(path, "[vsyscall]") != 0;
}

static bool
lmdb_data(const char *path)
{
	size_t n = strlen(path);
	return n >= 9 && strcmp(path + n - 9, "/data.mdb") == 0;
}

int
bench_mem_read(pid_t pid, struct bench_mem *m)
{
	char path[64], line[1024];
	static char text[8192];
	FILE *f;
	size_t n;
	memset(m, 0, sizeof(*m));
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return QKDN_E_IO;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	m->rss_kib = status_kib(text, "VmRSS:");
	m->hwm_kib = status_kib(text, "VmHWM:");

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return QKDN_E_IO;
	enum { OTHER, ANON, MDB } kind = OTHER;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		int off = 0;
		long kib;
		/* a mapping: "lo-hi perms offset dev inode [path]" */
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi,
		           &off) == 2 &&
		    off > 0) {
			char *p = line + off;
			p[strcspn(p, "\n")] = '\0';
			kind = anonymous(p) ? ANON : lmdb_data(p) ? MDB : OTHER;
		} else if (kind == ANON &&
		           sscanf(line, "Private_Dirty: %ld kB", &kib) == 1) {
			m->private_kib += kib;
		} else if (kind == MDB &&
		           sscanf(line, "Rss: %ld kB", &kib) == 1) {
			m->mdb_kib += kib;
		}
	}
	fclose(f);
	return 0;
}

double
bench_cpu_s(pid_t pid)
{
	char path[64], text[1024];
	unsigned long long utime, stime;
	FILE *f;
	size_t n;
	if (pid == 0)
		pid = getpid();
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	/* fields after the command name: state is field 3, utime 14 */
	const char *p = strrchr(text, ')');
	if (p == NULL ||
	    sscanf(p + 1,
	           " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	           &utime, &stime) != 2)
		return 0;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

double
bench_loadavg(void)
{
	double v = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f == NULL)
		return -1;
	if (fscanf(f, "%lf", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}
