#include "uk_log.h"
#include "uk_limits.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int threshold = UK_LOG_LEVEL_INFO;
static uk_log_format format_setting = UK_LOG_FORMAT_AUTO;
static atomic_int resolved_format = -1; /* AUTO resolved once */
static const char *ident = "ukeyd";
static uk_log_sink_fn sink_fn;
static void *sink_ctx;

static const char *const level_names[] = {
    [UK_LOG_LEVEL_ERR] = "err",       [UK_LOG_LEVEL_WARNING] = "warning",
    [UK_LOG_LEVEL_NOTICE] = "notice", [UK_LOG_LEVEL_INFO] = "info",
    [UK_LOG_LEVEL_DEBUG] = "debug",
};

static uk_log_level clamp_level(int level)
{
    if (level < UK_LOG_LEVEL_ERR)
        return UK_LOG_LEVEL_ERR;
    if (level > UK_LOG_LEVEL_DEBUG)
        return UK_LOG_LEVEL_DEBUG;
    return (uk_log_level)level;
}

void uk_log_set_level(uk_log_level level)
{
    atomic_store(&threshold, (int)clamp_level((int)level));
}

uk_log_level uk_log_get_level(void)
{
    return (uk_log_level)atomic_load(&threshold);
}

bool uk_log_enabled(uk_log_level level)
{
    return (int)level <= atomic_load(&threshold);
}

bool uk_log_level_from_name(const char *name, uk_log_level *out)
{
    static const struct {
        const char *name;
        uk_log_level level;
    } names[] = {
        {"err", UK_LOG_LEVEL_ERR},         {"error", UK_LOG_LEVEL_ERR},
        {"warning", UK_LOG_LEVEL_WARNING}, {"warn", UK_LOG_LEVEL_WARNING},
        {"notice", UK_LOG_LEVEL_NOTICE},   {"info", UK_LOG_LEVEL_INFO},
        {"debug", UK_LOG_LEVEL_DEBUG},
    };
    if (name == NULL)
        return false;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].level;
            return true;
        }
    }
    return false;
}

void uk_log_set_format(uk_log_format format)
{
    format_setting = format;
    atomic_store(&resolved_format, -1);
}

void uk_log_set_ident(const char *name)
{
    ident = name != NULL ? name : "ukeyd";
}

void uk_log_set_sink(uk_log_sink_fn fn, void *ctx)
{
    sink_fn = fn;
    sink_ctx = ctx;
}

static uk_log_format current_format(void)
{
    int f = atomic_load(&resolved_format);
    if (f >= 0)
        return (uk_log_format)f;
    f = (int)format_setting;
    if (format_setting == UK_LOG_FORMAT_AUTO)
        f = isatty(STDERR_FILENO) ? UK_LOG_FORMAT_PLAIN : UK_LOG_FORMAT_JOURNAL;
    atomic_store(&resolved_format, f);
    return (uk_log_format)f;
}

/* A bounded line builder: appends until full, then remembers that it truncated. */
struct line {
    char buf[UK_LIMIT_LOG_LINE];
    size_t len;
    size_t cap; /* bytes usable for content: room for "...\n" is kept back */
    bool truncated;
};

static void put_bytes(struct line *l, const char *s, size_t n)
{
    size_t room = l->cap - l->len;
    if (n > room) {
        n = room;
        l->truncated = true;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(struct line *l, const char *s)
{
    put_bytes(l, s, strlen(s));
}

/* Copy a message, escaping control characters so that one event stays one line. */
static void put_escaped(struct line *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s != '\0' && !l->truncated; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != 0x7f) {
            put_bytes(l, (const char *)&c, 1);
        } else if (c == '\n') {
            put_str(l, "\\n");
        } else if (c == '\t') {
            put_str(l, "\\t");
        } else {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 0xf]};
            put_bytes(l, esc, sizeof(esc));
        }
    }
}

static void put_time(struct line *l)
{
    struct timespec ts;
    struct tm tm;
    char stamp[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ ", ts.tv_nsec / 1000000L);
    put_str(l, stamp);
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report it */
        }
        p += w;
        n -= (size_t)w;
    }
}

__attribute__((format(printf, 5, 0))) static void emit(uk_log_level level, const char *file,
                                                       int line_no, const char *func,
                                                       const char *fmt, va_list ap)
{
    char msg[UK_LIMIT_LOG_LINE];
    struct line l = {.len = 0, .cap = sizeof(l.buf) - 4, .truncated = false};

    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    bool msg_truncated = n < 0 || (size_t)n >= sizeof(msg);
    if (n < 0)
        msg[0] = '\0';

    size_t body_start = 0;
    if (sink_fn == NULL) {
        if (current_format() == UK_LOG_FORMAT_PLAIN) {
            char head[64];
            put_time(&l);
            snprintf(head, sizeof(head), "%s[%ld] %s: ", ident, (long)getpid(), level_names[level]);
            put_str(&l, head);
        } else {
            char head[4] = {'<', (char)('0' + level), '>', '\0'};
            put_str(&l, head);
        }
        body_start = l.len;
    }

    put_escaped(&l, msg);
    if (msg_truncated)
        l.truncated = true;
    if (file != NULL && !l.truncated) {
        const char *base = strrchr(file, '/');
        char where[160];
        snprintf(where, sizeof(where), " (%s:%d %s)", base != NULL ? base + 1 : file, line_no,
                 func != NULL ? func : "?");
        put_escaped(&l, where);
    }
    if (l.truncated) {
        memcpy(l.buf + l.len, "...", 3);
        l.len += 3;
    }

    if (sink_fn != NULL) {
        l.buf[l.len] = '\0';
        sink_fn(sink_ctx, level, l.buf + body_start, l.len - body_start);
        return;
    }
    l.buf[l.len++] = '\n';
    write_all(l.buf, l.len);
}

void uk_log(uk_log_level level, const char *fmt, ...)
{
    level = clamp_level((int)level);
    if (!uk_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, NULL, 0, NULL, fmt, ap);
    va_end(ap);
}

void uk_log_at(uk_log_level level, const char *file, int line, const char *func, const char *fmt,
               ...)
{
    level = clamp_level((int)level);
    if (!uk_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, file, line, func, fmt, ap);
    va_end(ap);
}
