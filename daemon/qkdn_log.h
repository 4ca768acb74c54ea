/* Logging: level macros over one function, tagged by source module. Never
 * pass key bytes to these. */
#ifndef QKDN_LOG_H
#define QKDN_LOG_H

#include <stdbool.h>

enum qkdn_log_level {
	QKDN_LOG_ERR = 0,
	QKDN_LOG_WARN = 1,
	QKDN_LOG_INFO = 2,
	QKDN_LOG_DEBUG = 3,
};

void qkdn_log(int level, const char *src, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Messages above level are dropped (default QKDN_LOG_INFO; the
 * QKDN_LOG_LEVEL environment variable, 0..3, overrides at first use). */
void qkdn_log_set_level(int level);
/* Prefix of every line, e.g. "km A" (copied). */
void qkdn_log_set_ident(const char *ident);
/* True when stderr is the journal ($JOURNAL_STREAM names it, as systemd
 * sets it for a service): lines then start with an sd-daemon "<N>" priority
 * and carry no timestamp, which journald adds. Otherwise each line starts
 * with an ISO 8601 UTC time. Decided at the first call. */
bool qkdn_log_to_journal(void);

/* A rate limit for one kind of line that anyone on the network can cause
 * (refused requests, bad input): at most QKDN_LOG_BURST such lines a
 * second; the ones dropped are counted, and the next line that passes says
 * how many. Zero-initialise it (static, or in a zeroed struct). */
#define QKDN_LOG_BURST 10
struct qkdn_log_limit {
	_Atomic unsigned long long window_s;
	_Atomic unsigned in_window;
	_Atomic unsigned dropped;
};
/* True if a line may be logged now; *dropped: lines dropped before it. */
bool qkdn_log_limit_pass(struct qkdn_log_limit *lim, unsigned *dropped);
#define QLOG_LIMITED(lim, level, src, fmt, ...)                                \
	do {                                                                   \
		unsigned dropped_;                                             \
		if (!qkdn_log_limit_pass(lim, &dropped_))                      \
			break;                                                 \
		if (dropped_ > 0)                                              \
			qkdn_log(level, src,                                   \
			         fmt " (and %u more like it, not logged)",     \
			         __VA_ARGS__, dropped_);                       \
		else                                                           \
			qkdn_log(level, src, fmt, __VA_ARGS__);                \
	} while (0)

#define QLOG_ERR(src, ...)   qkdn_log(QKDN_LOG_ERR, src, __VA_ARGS__)
#define QLOG_WARN(src, ...)  qkdn_log(QKDN_LOG_WARN, src, __VA_ARGS__)
#define QLOG_INFO(src, ...)  qkdn_log(QKDN_LOG_INFO, src, __VA_ARGS__)
#define QLOG_DEBUG(src, ...) qkdn_log(QKDN_LOG_DEBUG, src, __VA_ARGS__)

#endif
