/*
 * uk_log.h - one line per event on stderr, readable by journald and by people.
 *
 * Format (chosen by uk_log_set_format, AUTO by default):
 *   JOURNAL  "<3>message (file.c:42 func)\n"   - sd-daemon priority prefix, journald adds the time
 *   PLAIN    "2026-11-24T08:00:00.123Z ukeyd[1234] err: message (file.c:42 func)\n"
 *   AUTO     PLAIN when stderr is a terminal, JOURNAL otherwise.
 * The location part is present only for the UK_LOG_* macros. Control characters in the message
 * (newlines included) are written as \n, \t or \xNN, so a value from a client can never forge a
 * second line. A line longer than UK_LIMIT_LOG_LINE ends in "..." instead of its tail.
 *
 * Secrets: never pass a PIN, key, or data to sign. This module offers nothing that dumps buffers.
 *
 * Thread: uk_log, uk_log_at, uk_log_enabled, uk_log_set_level and uk_log_get_level may be called
 * from any thread; each line is written with a single write(2), so lines never interleave.
 * uk_log_set_format, uk_log_set_ident and uk_log_set_sink are for start-up (or tests), before other
 * threads log.
 */
#ifndef UK_LOG_H
#define UK_LOG_H

#include <stdbool.h>
#include <stddef.h>

/* syslog(3) priorities, as journald expects them in the <N> prefix. */
typedef enum uk_log_level {
    UK_LOG_LEVEL_ERR = 3,
    UK_LOG_LEVEL_WARNING = 4,
    UK_LOG_LEVEL_NOTICE = 5,
    UK_LOG_LEVEL_INFO = 6,
    UK_LOG_LEVEL_DEBUG = 7,
} uk_log_level;

typedef enum uk_log_format {
    UK_LOG_FORMAT_AUTO = 0,
    UK_LOG_FORMAT_JOURNAL,
    UK_LOG_FORMAT_PLAIN,
} uk_log_format;

/*
 * Receives each line that passes the threshold instead of stderr: the message and location,
 * without prefix, time or newline. line is valid only during the call. For tests and for the
 * audit of the logger itself; the callback must not call uk_log.
 */
typedef void (*uk_log_sink_fn)(void *ctx, uk_log_level level, const char *line, size_t len);

/* Lines with a level above the threshold (less important) are dropped. Default: INFO. */
void uk_log_set_level(uk_log_level level);
uk_log_level uk_log_get_level(void);
bool uk_log_enabled(uk_log_level level);

/*
 * Parse "err"/"error", "warning"/"warn", "notice", "info", "debug" (any case) for the
 * configuration. Returns false and leaves *out alone for anything else.
 */
bool uk_log_level_from_name(const char *name, uk_log_level *out);

void uk_log_set_format(uk_log_format format);

/* Program name in PLAIN lines; the string must outlive logging (a literal). Default "ukeyd". */
void uk_log_set_ident(const char *ident);

/* Send lines to fn instead of stderr; fn NULL restores stderr. */
void uk_log_set_sink(uk_log_sink_fn fn, void *ctx);

void uk_log(uk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void uk_log_at(uk_log_level level, const char *file, int line, const char *func, const char *fmt,
               ...) __attribute__((format(printf, 5, 6)));

#define UK_LOG_ERR(...)    uk_log_at(UK_LOG_LEVEL_ERR, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define UK_LOG_WARN(...)   uk_log_at(UK_LOG_LEVEL_WARNING, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define UK_LOG_NOTICE(...) uk_log_at(UK_LOG_LEVEL_NOTICE, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define UK_LOG_INFO(...)   uk_log_at(UK_LOG_LEVEL_INFO, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define UK_LOG_DEBUG(...)  uk_log_at(UK_LOG_LEVEL_DEBUG, __FILE__, __LINE__, __func__, __VA_ARGS__)

#endif
