/* log.h - stderr logging with journald priorities, rate limiting */
#ifndef CORDON_LOG_H
#define CORDON_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

/* A rate limiter for one kind of per-message warning: at most `burst`
 * lines per `interval_s`; the rest are counted and reported as a total. */
struct log_ratelimit {
	int64_t window_start;
	unsigned burst;
	unsigned interval_s;
	unsigned printed;
	uint64_t suppressed;
};

#define LOG_RATELIMIT_INIT(b, i)  \
	{                         \
		0, (b), (i), 0, 0 \
	}

/* Detects journald (JOURNAL_STREAM matching stderr) to choose the prefix. */
void log_init(void);
void log_set_level(enum log_level level);
/* Parses "error|warning|notice|info|debug"; returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *ret_level) __attribute__((warn_unused_result));
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Logs through `rl`; when lines were suppressed, says how many first. */
void log_limited(struct log_ratelimit *rl, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(...) log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* For startup failures only: logs and exits 1. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
