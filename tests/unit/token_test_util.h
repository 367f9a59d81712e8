/*
 * token_test_util.h - what the token layer tests (test_token, test_p11)
 * share: the ukeyd log captured in memory (install log_sink with
 * uk_log_set_sink; lines come from every thread - monitor, scanners,
 * workers - hence the lock; call uv_mutex_init(&log_mu) once in main), and
 * running a loop until a condition holds.
 */
#ifndef TOKEN_TEST_UTIL_H
#define TOKEN_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "uk_log.h"

#define LOG_CAPTURE_MAX (64u * 1024u)

extern uv_mutex_t log_mu;
extern char log_buf[LOG_CAPTURE_MAX]; /* lines, each ending in '\n'; NUL-terminated */
extern size_t log_len;

void log_sink(void *ctx, uk_log_level level, const char *line, size_t len);
/* Whether s appears in what was logged since the last log_clear. */
bool log_has(const char *s);
/* How often s appears. */
unsigned log_count(const char *s);
void log_clear(void);

/* Runs loop (a 2 ms timer keeps it turning) until done(arg) or timeout_ms
 * pass; returns done's last answer. */
bool loop_run_until(uv_loop_t *loop, bool (*done)(void *arg), void *arg, unsigned timeout_ms);

#endif
