/* The audit log: JSON lines, one write(2) each, size-based rotation, tail across rotated files. */
#include "uk_audit.h"

#include "uk_err.h"
#include "uk_log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* tail reads backwards in chunks of this size. */
#define TAIL_CHUNK (64u * 1024u)
/* Our lines are a few KiB at most; a longer run without a newline is not ours: stop that file. */
#define TAIL_LINE_MAX (256u * 1024u)

struct uk_audit {
    char *path;
    size_t max_bytes;
    unsigned keep;
    int fd;       /* -1 after a failed reopen: retried on the next write */
    bool failing; /* in a failure streak: already logged */
};

/* Creates the parent directory of path and its missing parents, mode 0700. */
static int make_parent(const char *path)
{
    char p[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof p)
        return UK_E_IO;
    memcpy(p, path, len + 1);
    char *slash = strrchr(p, '/');
    if (slash == NULL || slash == p)
        return UK_OK;
    *slash = '\0';
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            UK_LOG_ERR("audit: cannot create %s: %s", p, strerror(errno));
            return UK_E_IO;
        }
        *c = saved;
        if (saved == '\0')
            break;
    }
    return UK_OK;
}

static int open_log(uk_audit *a)
{
    a->fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (a->fd < 0)
        return UK_E_IO;
    /* An older file with a wider mode: origins visited are nobody else's business. (Only a
     * regular file: a device given as the path is left alone.) */
    struct stat st;
    if (fstat(a->fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) != 0600)
        (void)fchmod(a->fd, 0600);
    return UK_OK;
}

static void io_failed(uk_audit *a, const char *what)
{
    if (!a->failing)
        UK_LOG_ERR("audit: cannot %s %s: %s; audit lines are lost until it works again", what,
                   a->path, strerror(errno));
    a->failing = true;
}

int uk_audit_open(const char *path, size_t max_bytes, unsigned keep, uk_audit **out)
{
    if (path == NULL || path[0] == '\0' || out == NULL || max_bytes < UK_AUDIT_MIN_BYTES ||
        keep < 1 || keep > UK_AUDIT_MAX_KEEP || strlen(path) + 4 >= PATH_MAX)
        return UK_E_INVALID_PARAMS;
    uk_audit *a = calloc(1, sizeof *a);
    if (a == NULL || (a->path = strdup(path)) == NULL) {
        free(a);
        return UK_E_NO_MEMORY;
    }
    a->max_bytes = max_bytes;
    a->keep = keep;
    a->fd = -1;
    int rc = make_parent(path);
    if (rc == UK_OK && (rc = open_log(a)) != UK_OK)
        UK_LOG_ERR("audit: cannot open %s: %s", path, strerror(errno));
    if (rc != UK_OK) {
        uk_audit_close(a);
        return rc;
    }
    *out = a;
    return UK_OK;
}

void uk_audit_close(uk_audit *a)
{
    if (a == NULL)
        return;
    if (a->fd >= 0)
        close(a->fd);
    free(a->path);
    free(a);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* bounds of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/* s as valid UTF-8 of at most UK_AUDIT_FIELD_MAX bytes, cut on a character boundary, with each
 * invalid byte replaced by U+FFFD. out has UK_AUDIT_FIELD_MAX + 1 bytes. */
static void clean_field(const char *s, char *out)
{
    static const char replacement[] = "\xef\xbf\xbd";
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, o = 0;
    while (i < n) {
        size_t len = utf8_len(u + i, n - i);
        const char *src = len > 0 ? s + i : replacement;
        size_t out_len = len > 0 ? len : 3;
        if (o + out_len > UK_AUDIT_FIELD_MAX)
            break;
        memcpy(out + o, src, out_len);
        o += out_len;
        i += len > 0 ? len : 1;
    }
    out[o] = '\0';
}

static bool add_field(cJSON *obj, const char *key, const char *value)
{
    if (value == NULL)
        return cJSON_AddNullToObject(obj, key) != NULL;
    char buf[UK_AUDIT_FIELD_MAX + 1];
    clean_field(value, buf);
    return cJSON_AddStringToObject(obj, key, buf) != NULL;
}

/* The line for e, newline included. NULL: out of memory. */
static char *format_line(const uk_audit_entry *e, size_t *len)
{
    struct timespec ts;
    struct tm tm;
    char when[64];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t w = strftime(when, sizeof when - 8, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof when - w, ".%03uZ", (unsigned)(ts.tv_nsec / 1000000L) % 1000u);
    cJSON *obj = cJSON_CreateObject();
    char *text = NULL, *line = NULL;
    if (obj == NULL || cJSON_AddStringToObject(obj, "time", when) == NULL ||
        !add_field(obj, "endpoint", e->endpoint) || !add_field(obj, "origin", e->origin) ||
        !add_field(obj, "method", e->method) || !add_field(obj, "token", e->token) ||
        !add_field(obj, "cert_serial", e->cert_serial) || !add_field(obj, "result", e->result) ||
        !add_field(obj, "detail", e->detail) || (text = cJSON_PrintUnformatted(obj)) == NULL)
        goto out;
    size_t n = strlen(text);
    if ((line = malloc(n + 2)) == NULL)
        goto out;
    memcpy(line, text, n);
    line[n] = '\n';
    line[n + 1] = '\0';
    *len = n + 1;
out:
    free(text);
    cJSON_Delete(obj);
    return line;
}

static void rotated_name(const uk_audit *a, unsigned i, char *buf, size_t size)
{
    if (i == 0)
        snprintf(buf, size, "%s", a->path);
    else
        snprintf(buf, size, "%s.%u", a->path, i);
}

/* path.<keep-1> -> path.<keep>, ..., path -> path.1, then a fresh path. */
static int rotate(uk_audit *a)
{
    char from[PATH_MAX], to[PATH_MAX];
    for (unsigned i = a->keep; i >= 1; i--) {
        rotated_name(a, i - 1, from, sizeof from);
        rotated_name(a, i, to, sizeof to);
        if (rename(from, to) != 0 && errno != ENOENT) {
            io_failed(a, "rotate");
            return UK_E_IO;
        }
    }
    if (a->fd >= 0)
        close(a->fd);
    if (open_log(a) != UK_OK) {
        io_failed(a, "reopen");
        return UK_E_IO;
    }
    return UK_OK;
}

int uk_audit_write(uk_audit *a, const uk_audit_entry *e)
{
    if (a == NULL || e == NULL)
        return UK_E_INVALID_PARAMS;
    size_t len = 0;
    char *line = format_line(e, &len);
    if (line == NULL)
        return UK_E_NO_MEMORY;
    int rc = UK_OK;
    struct stat st;
    /* Reopen when the last attempt failed or someone moved the file away under us. */
    if (a->fd < 0 || fstat(a->fd, &st) != 0 || st.st_nlink == 0) {
        if (a->fd >= 0)
            close(a->fd);
        if (open_log(a) != UK_OK) {
            io_failed(a, "open");
            rc = UK_E_IO;
            goto out;
        }
    }
    if (fstat(a->fd, &st) != 0) {
        io_failed(a, "stat");
        rc = UK_E_IO;
        goto out;
    }
    if (st.st_size > 0 && (size_t)st.st_size + len > a->max_bytes && (rc = rotate(a)) != UK_OK)
        goto out;
    ssize_t w;
    do
        w = write(a->fd, line, len);
    while (w < 0 && errno == EINTR);
    if (w < 0 || (size_t)w != len) {
        if (w >= 0)
            errno = ENOSPC; /* a short write: the disk filled up mid-line */
        io_failed(a, "write");
        rc = UK_E_IO;
        goto out;
    }
    if (a->failing) {
        UK_LOG_NOTICE("audit: writing %s again", a->path);
        a->failing = false;
    }
out:
    free(line);
    return rc;
}

void uk_audit_lines_free(char **lines, size_t n)
{
    for (size_t i = 0; i < n && lines != NULL; i++)
        free(lines[i]);
    free(lines);
}

/* A growing array of lines, newest first while collecting. */
struct lines {
    char **v;
    size_t n;
    size_t max;
};

/* Keeps line (len bytes) when it is a JSON object. false: out of memory. */
static bool keep_line(struct lines *l, const char *line, size_t len)
{
    cJSON *obj = cJSON_ParseWithLength(line, len);
    bool ok = cJSON_IsObject(obj);
    cJSON_Delete(obj);
    if (!ok)
        return true; /* torn or foreign: skipped */
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return false;
    memcpy(copy, line, len);
    copy[len] = '\0';
    l->v[l->n++] = copy;
    return true;
}

/* Collects lines of one file from its end until l is full. false: out of memory. */
static bool tail_file(const char *path, struct lines *l)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ENOENT)
            UK_LOG_WARN("audit: cannot read %s: %s", path, strerror(errno));
        return true;
    }
    struct stat st;
    bool ok = true;
    char *acc = NULL; /* the file's bytes [pos, pos + acc_len) not yet split into lines */
    size_t acc_len = 0;
    off_t pos = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
    while (pos > 0 && l->n < l->max) {
        size_t ch = (size_t)pos < TAIL_CHUNK ? (size_t)pos : TAIL_CHUNK;
        pos -= (off_t)ch;
        char *grown = malloc(ch + acc_len);
        if (grown == NULL) {
            ok = false;
            break;
        }
        ssize_t r = pread(fd, grown, ch, pos);
        if (r < 0 || (size_t)r != ch) {
            UK_LOG_WARN("audit: cannot read %s: %s", path, r < 0 ? strerror(errno) : "short read");
            free(grown);
            break;
        }
        if (acc_len > 0)
            memcpy(grown + ch, acc, acc_len);
        free(acc);
        acc = grown;
        acc_len += ch;
        /* Split off the complete lines at the end: those with a newline (or the file's start)
         * before them. */
        size_t end = acc_len;
        while (l->n < l->max) {
            size_t j = end;
            while (j > 0 && acc[j - 1] != '\n')
                j--;
            if (j == 0 && pos > 0)
                break; /* the line starts in an earlier chunk */
            if (end > j && !keep_line(l, acc + j, end - j)) {
                ok = false;
                break;
            }
            if (j == 0) {
                end = 0;
                break;
            }
            end = j - 1; /* drop the newline */
        }
        acc_len = end;
        if (!ok)
            break;
        if (acc_len > TAIL_LINE_MAX) {
            UK_LOG_WARN("audit: %s has a line longer than %u bytes; older lines skipped", path,
                        TAIL_LINE_MAX);
            break;
        }
    }
    free(acc);
    close(fd);
    return ok;
}

int uk_audit_tail(uk_audit *a, size_t max, char ***lines, size_t *n)
{
    if (a == NULL || lines == NULL || n == NULL)
        return UK_E_INVALID_PARAMS;
    *lines = NULL;
    *n = 0;
    if (max == 0)
        return UK_OK;
    size_t cap = max < UK_AUDIT_TAIL_MAX ? max : UK_AUDIT_TAIL_MAX;
    struct lines l = {.v = calloc(cap, sizeof(char *)), .max = cap};
    if (l.v == NULL)
        return UK_E_NO_MEMORY;
    for (unsigned i = 0; i <= a->keep && l.n < l.max; i++) {
        char path[PATH_MAX];
        rotated_name(a, i, path, sizeof path);
        if (!tail_file(path, &l)) {
            uk_audit_lines_free(l.v, l.n);
            return UK_E_NO_MEMORY;
        }
    }
    if (l.n == 0) {
        free(l.v);
        return UK_OK;
    }
    for (size_t i = 0; i < l.n / 2; i++) {
        char *t = l.v[i];
        l.v[i] = l.v[l.n - 1 - i];
        l.v[l.n - 1 - i] = t;
    }
    *lines = l.v;
    *n = l.n;
    return UK_OK;
}
