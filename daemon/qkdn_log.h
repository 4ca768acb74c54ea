/* Logging: level macros over one function, tagged by source module. Never
 * pass key bytes to these. */
#ifndef QKDN_LOG_H
#define QKDN_LOG_H

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

#define QLOG_ERR(src, ...)   qkdn_log(QKDN_LOG_ERR, src, __VA_ARGS__)
#define QLOG_WARN(src, ...)  qkdn_log(QKDN_LOG_WARN, src, __VA_ARGS__)
#define QLOG_INFO(src, ...)  qkdn_log(QKDN_LOG_INFO, src, __VA_ARGS__)
#define QLOG_DEBUG(src, ...) qkdn_log(QKDN_LOG_DEBUG, src, __VA_ARGS__)

#endif
