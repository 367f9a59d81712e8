/* token_test_util.c - see token_test_util.h. */
#include "token_test_util.h"

#include <stdint.h>
#include <string.h>

uv_mutex_t log_mu;
char log_buf[LOG_CAPTURE_MAX];
size_t log_len;

void log_sink(void *ctx, uk_log_level level, const char *line, size_t len)
{
    (void)ctx;
    (void)level;
    uv_mutex_lock(&log_mu);
    if (log_len + len + 2 < sizeof(log_buf)) {
        memcpy(log_buf + log_len, line, len);
        log_len += len;
        log_buf[log_len++] = '\n';
        log_buf[log_len] = '\0';
    }
    uv_mutex_unlock(&log_mu);
}

bool log_has(const char *s)
{
    return log_count(s) > 0;
}

unsigned log_count(const char *s)
{
    unsigned n = 0;
    uv_mutex_lock(&log_mu);
    for (const char *p = log_buf; (p = strstr(p, s)) != NULL; p++)
        n++;
    uv_mutex_unlock(&log_mu);
    return n;
}

void log_clear(void)
{
    uv_mutex_lock(&log_mu);
    log_len = 0;
    log_buf[0] = '\0';
    uv_mutex_unlock(&log_mu);
}

static void tick(uv_timer_t *h)
{
    (void)h;
}

bool loop_run_until(uv_loop_t *loop, bool (*done)(void *arg), void *arg, unsigned timeout_ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, tick, 2, 2);
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    bool ok;
    while (!(ok = done(arg)) && uv_hrtime() < deadline)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}
