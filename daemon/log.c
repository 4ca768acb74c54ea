#include "qkdn_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int max_level = -1;
static char ident[64] = "qkdn";
/* -1: not yet known; 0: plain lines; 1: stderr is the journal */
static int to_journal = -1;

void
qkdn_log_set_level(int level)
{
	max_level = level;
}

void
qkdn_log_set_ident(const char *id)
{
	snprintf(ident, sizeof(ident), "%s", id);
}

/* systemd sets JOURNAL_STREAM=DEV:INODE for a service whose stderr is the
 * journal; a child that inherits the variable but not the descriptor (or
 * whose stderr was redirected) must not take it as its own. */
static int
stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (env == NULL || sscanf(env, "%llu:%llu", &dev, &ino) != 2 ||
	    fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

bool
qkdn_log_to_journal(void)
{
	if (to_journal < 0)
		to_journal = stderr_is_journal();
	return to_journal == 1;
}

void
qkdn_log(int level, const char *src, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	/* sd-daemon(3) priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
	static const int prio[] = {3, 4, 6, 7};
	if (max_level < 0) {
		const char *env = getenv("QKDN_LOG_LEVEL");
		max_level = env != NULL ? atoi(env) : QKDN_LOG_INFO;
	}
	if (level > max_level || level < 0 || level > QKDN_LOG_DEBUG)
		return;
	char line[1024];
	int n;
	if (qkdn_log_to_journal()) {
		/* journald stamps the time and the unit itself */
		n = snprintf(line, sizeof(line), "<%d>%s %s [%s] ", prio[level],
		             ident, names[level], src);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line),
		             "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s [%s] ",
		             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		             tm.tm_hour, tm.tm_min, tm.tm_sec,
		             ts.tv_nsec / 1000000, ident, names[level], src);
	}
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* a message with a newline would start a journal entry without the
	 * priority prefix: keep each entry on one line */
	for (char *p = line; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	/* one write per line so concurrent threads do not interleave */
	fprintf(stderr, "%s\n", line);
}

bool
qkdn_log_limit_pass(struct qkdn_log_limit *lim, unsigned *dropped)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned long long now = (unsigned long long)ts.tv_sec;
	unsigned long long w = atomic_load(&lim->window_s);
	/* the first caller of a new second opens its window */
	if (w != now && atomic_compare_exchange_strong(&lim->window_s, &w, now))
		atomic_store(&lim->in_window, 0);
	if (atomic_fetch_add(&lim->in_window, 1) >= QKDN_LOG_BURST) {
		atomic_fetch_add(&lim->dropped, 1);
		return false;
	}
	*dropped = atomic_exchange(&lim->dropped, 0);
	return true;
}
