/*
 * uk-pinentry-script - a pinentry for tests: a real Assuan server on stdin/stdout whose answers
 * come from a script instead of a user.
 *
 * Environment:
 *   UK_PINENTRY_SCRIPT     file with one answer per line (empty lines and lines starting with '#'
 *                          are skipped), consumed in order ACROSS invocations: the index of the
 *                          next answer is kept in "<script>.pos", read and rewritten under an
 *                          exclusive flock, so parallel runs never take the same answer. When
 *                          unset or used up, every dialog is answered "cancel".
 *   UK_PINENTRY_LOG        file to which one JSON line is appended (under flock) per GETPIN or
 *                          CONFIRM:
 *                          {"pid":N,"title":..,"description":..,"prompt":..,"error":..,"ok":..,
 *                           "cancel":..,"timeout":N,"command":"GETPIN"|"CONFIRM","answer":"pin"|..,
 *                           "env":["NAME",..]}
 *                          texts percent-decoded (null when not set), env the names (never values)
 *                          of the variables received, never a PIN.
 *   UK_PINENTRY_EXCLUSIVE  file that this process flocks (non-blocking) from start to exit; when it
 *                          is already held by another instance, the log line says "overlap":true.
 *   UK_PINENTRY_GREETING   the first line to send instead of "OK Pleased to meet you".
 *   UK_PINENTRY_CHATTY     when "1", a comment ("# ...") and a status line ("S ...") precede every
 *                          answer to GETPIN/CONFIRM, as a client must ignore them.
 *
 * Answers:
 *   pin <text>    GETPIN: "D <text escaped>" (split over several D lines when long), "OK";
 *                 CONFIRM: "OK".
 *   ok            CONFIRM: "OK" (yes); GETPIN: "OK" without data (an empty PIN).
 *   cancel        ERR 83886179 Operation cancelled     (GPG_ERR_CANCELED, source pinentry)
 *   notconfirmed  ERR 83886194 Not confirmed           (GPG_ERR_NOT_CONFIRMED)
 *   timeout       ERR 83886142 Timeout                 (GPG_ERR_TIMEOUT)
 *   hang          never answers: sleeps until killed
 *   die           exits 1 without answering
 *   garbage       writes a line that is not Assuan, then goes on reading commands
 *   longline      writes a 2000-byte line (over the Assuan limit), then goes on
 *   inquire       sends "INQUIRE QUALITY 1234" (pinentry only does that with a quality bar)
 * An unknown answer word is answered like "cancel" and logged as "answer":"invalid".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define LINE_MAX_ 1000 /* Assuan line, without LF */

extern char **environ;

enum { T_TITLE, T_DESC, T_PROMPT, T_ERROR, T_OK, T_CANCEL, T_COUNT };
static const char *const set_cmds[T_COUNT] = {"SETTITLE", "SETDESC", "SETPROMPT",
                                              "SETERROR", "SETOK",   "SETCANCEL"};
static const char *const json_names[T_COUNT] = {"title", "description", "prompt",
                                                "error", "ok",          "cancel"};

static char *texts[T_COUNT];
static long timeout_s = -1;
static int overlap = -1; /* -1: UK_PINENTRY_EXCLUSIVE unset */

/* ---- output ------------------------------------------------------------------------------- */

static void out(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            exit(2);
        s += w;
        n -= (size_t)w;
    }
}

static void outs(const char *s)
{
    out(s, strlen(s));
}

/* A growable buffer for log lines and D lines. */
typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            exit(3);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_json_string(buf *b, const char *s)
{
    if (s == NULL) {
        puts_(b, "null");
        return;
    }
    puts_(b, "\"");
    for (const unsigned char *q = (const unsigned char *)s; *q != '\0'; q++) {
        char esc[8];
        if (*q == '"' || *q == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*q;
            put(b, esc, 2);
        } else if (*q == '\n') {
            puts_(b, "\\n");
        } else if (*q < 0x20 || *q == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *q);
            puts_(b, esc);
        } else {
            put(b, (const char *)q, 1);
        }
    }
    puts_(b, "\"");
}

/* ---- Assuan escaping ---------------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode %XX in place; a malformed escape is kept as it is. */
static void unescape(char *s)
{
    char *o = s;
    for (char *q = s; *q != '\0'; q++) {
        int hi, lo;
        if (q[0] == '%' && (hi = hexval(q[1])) >= 0 && (lo = hexval(q[2])) >= 0) {
            *o++ = (char)(hi * 16 + lo);
            q += 2;
        } else {
            *o++ = *q;
        }
    }
    *o = '\0';
}

/* "D <data>" lines for s, each at most LINE_MAX_ bytes, escapes never split. */
static void send_data(const char *s)
{
    buf line = {0};
    for (const unsigned char *q = (const unsigned char *)s; *q != '\0'; q++) {
        char e[4];
        size_t n = 1;
        if (*q == '%' || *q < 0x20) {
            snprintf(e, sizeof(e), "%%%02X", *q);
            n = 3;
        } else {
            e[0] = (char)*q;
        }
        if (line.len == 0)
            puts_(&line, "D ");
        if (line.len + n > LINE_MAX_) {
            puts_(&line, "\n");
            out(line.p, line.len);
            line.len = 0;
            puts_(&line, "D ");
        }
        put(&line, e, n);
    }
    if (line.len > 0) {
        puts_(&line, "\n");
        out(line.p, line.len);
        memset(line.p, 0, line.cap);
    }
    free(line.p);
}

/* ---- the script --------------------------------------------------------------------------- */

/* The next answer (a malloc'd line), or NULL when there is none. */
static char *next_answer(void)
{
    const char *script = getenv("UK_PINENTRY_SCRIPT");
    if (script == NULL || script[0] == '\0')
        return NULL;
    char pos_path[4096];
    if ((size_t)snprintf(pos_path, sizeof(pos_path), "%s.pos", script) >= sizeof(pos_path))
        return NULL;
    int fd = open(pos_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) {
        perror("uk-pinentry-script: pos file");
        exit(4);
    }
    char num[32] = {0};
    ssize_t r = pread(fd, num, sizeof(num) - 1, 0);
    long index = r > 0 ? strtol(num, NULL, 10) : 0;

    FILE *f = fopen(script, "re");
    char *line = NULL, *answer = NULL;
    size_t cap = 0;
    long i = 0;
    ssize_t n;
    while (f != NULL && (n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        if (i++ == index) {
            answer = strdup(line);
            break;
        }
    }
    if (line != NULL)
        memset(line, 0, cap);
    free(line);
    if (f != NULL)
        fclose(f);
    if (answer != NULL) {
        int len = snprintf(num, sizeof(num), "%ld\n", index + 1);
        if (pwrite(fd, num, (size_t)len, 0) != len || ftruncate(fd, len) != 0) {
            perror("uk-pinentry-script: pos file");
            exit(4);
        }
    }
    close(fd); /* releases the lock */
    return answer;
}

static void log_dialog(const char *command, const char *answer)
{
    const char *path = getenv("UK_PINENTRY_LOG");
    if (path == NULL || path[0] == '\0')
        return;
    buf b = {0};
    char num[32];
    snprintf(num, sizeof(num), "{\"pid\":%ld", (long)getpid());
    puts_(&b, num);
    for (int t = 0; t < T_COUNT; t++) {
        puts_(&b, ",\"");
        puts_(&b, json_names[t]);
        puts_(&b, "\":");
        put_json_string(&b, texts[t]);
    }
    snprintf(num, sizeof(num), ",\"timeout\":%ld", timeout_s);
    puts_(&b, num);
    puts_(&b, ",\"command\":");
    put_json_string(&b, command);
    puts_(&b, ",\"answer\":");
    put_json_string(&b, answer);
    if (overlap >= 0)
        puts_(&b, overlap ? ",\"overlap\":true" : ",\"overlap\":false");
    puts_(&b, ",\"env\":[");
    for (char **e = environ; *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        size_t n = eq != NULL ? (size_t)(eq - *e) : strlen(*e);
        char name[256];
        if (n >= sizeof(name))
            continue;
        memcpy(name, *e, n);
        name[n] = '\0';
        if (e != environ)
            puts_(&b, ",");
        put_json_string(&b, name);
    }
    puts_(&b, "]}\n");
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) != 0 || write(fd, b.p, b.len) != (ssize_t)b.len) {
        perror("uk-pinentry-script: log");
        exit(5);
    }
    close(fd);
    free(b.p);
}

/* GETPIN or CONFIRM: take the next answer, log, answer. */
static void dialog(bool getpin)
{
    char *line = next_answer();
    const char *word = line != NULL ? line : "cancel";
    const char *arg = "";
    char w[16] = {0};
    size_t wl = strcspn(word, " ");
    if (wl < sizeof(w))
        memcpy(w, word, wl);
    if (word[wl] == ' ')
        arg = word + wl + 1;

    static const char *const known[] = {"pin",      "ok",      "cancel", "notconfirmed",
                                        "timeout",  "hang",    "die",    "garbage",
                                        "longline", "inquire", NULL};
    bool ok = false;
    for (size_t i = 0; known[i] != NULL; i++)
        ok = ok || strcmp(w, known[i]) == 0;
    log_dialog(getpin ? "GETPIN" : "CONFIRM", ok ? w : "invalid");
    const char *chatty = getenv("UK_PINENTRY_CHATTY");
    if (chatty != NULL && strcmp(chatty, "1") == 0)
        outs("# uk-pinentry-script answers\nS PROGRESS scripted 1 1\n");

    if (strcmp(w, "pin") == 0) {
        if (getpin)
            send_data(arg);
        outs("OK\n");
    } else if (strcmp(w, "ok") == 0) {
        outs("OK\n");
    } else if (strcmp(w, "notconfirmed") == 0) {
        outs("ERR 83886194 Not confirmed\n");
    } else if (strcmp(w, "timeout") == 0) {
        outs("ERR 83886142 Timeout\n");
    } else if (strcmp(w, "hang") == 0) {
        for (;;)
            pause();
    } else if (strcmp(w, "die") == 0) {
        exit(1);
    } else if (strcmp(w, "garbage") == 0) {
        outs("*** this is not Assuan ***\n");
    } else if (strcmp(w, "inquire") == 0) {
        outs("INQUIRE QUALITY 1234\n");
    } else if (strcmp(w, "longline") == 0) {
        char long_line[2001];
        memset(long_line, 'x', 2000);
        long_line[2000] = '\n';
        outs("# ");
        out(long_line, sizeof(long_line));
    } else {
        outs("ERR 83886179 Operation cancelled\n");
    }
    if (line != NULL)
        memset(line, 0, strlen(line));
    free(line);
}

/* ---- the server --------------------------------------------------------------------------- */

static bool is_cmd(const char *line, const char *cmd, const char **arg)
{
    size_t n = strlen(cmd);
    if (strncmp(line, cmd, n) != 0 || (line[n] != '\0' && line[n] != ' '))
        return false;
    *arg = line[n] == ' ' ? line + n + 1 : line + n;
    return true;
}

static void command(char *line)
{
    const char *arg;
    for (int t = 0; t < T_COUNT; t++) {
        if (is_cmd(line, set_cmds[t], &arg)) {
            free(texts[t]);
            texts[t] = strdup(arg);
            if (texts[t] == NULL)
                exit(3);
            unescape(texts[t]);
            outs("OK\n");
            return;
        }
    }
    if (is_cmd(line, "SETTIMEOUT", &arg)) {
        timeout_s = strtol(arg, NULL, 10);
        outs("OK\n");
    } else if (is_cmd(line, "GETPIN", &arg)) {
        dialog(true);
    } else if (is_cmd(line, "CONFIRM", &arg)) {
        dialog(false);
    } else if (is_cmd(line, "BYE", &arg)) {
        outs("OK closing connection\n");
        exit(0);
    } else if (is_cmd(line, "GETINFO", &arg) && strcmp(arg, "pid") == 0) {
        char d[40];
        snprintf(d, sizeof(d), "D %ld\nOK\n", (long)getpid());
        outs(d);
    } else if (is_cmd(line, "GETINFO", &arg) && strcmp(arg, "version") == 0) {
        outs("D 1.2.1\nOK\n");
    } else if (is_cmd(line, "RESET", &arg)) {
        for (int t = 0; t < T_COUNT; t++) {
            free(texts[t]);
            texts[t] = NULL;
        }
        outs("OK\n");
    } else if (is_cmd(line, "OPTION", &arg) || is_cmd(line, "NOP", &arg) ||
               strncmp(line, "SET", 3) == 0) {
        outs("OK\n");
    } else {
        outs("ERR 83886355 Unknown IPC command\n");
    }
}

int main(void)
{
    const char *excl = getenv("UK_PINENTRY_EXCLUSIVE");
    if (excl != NULL && excl[0] != '\0') {
        int fd = open(excl, O_RDWR | O_CREAT | O_CLOEXEC, 0600); /* held until exit */
        overlap = fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0;
    }
    const char *greeting = getenv("UK_PINENTRY_GREETING");
    outs(greeting != NULL ? greeting : "OK Pleased to meet you");
    outs("\n");

    char line[LINE_MAX_ + 2];
    size_t len = 0;
    bool too_long = false;
    int c;
    while ((c = getchar()) != EOF) {
        if (c != '\n') {
            if (len < LINE_MAX_)
                line[len++] = (char)c;
            else
                too_long = true;
            continue;
        }
        if (len > 0 && line[len - 1] == '\r')
            len--;
        line[len] = '\0';
        if (too_long)
            outs("ERR 83886340 Line too long\n");
        else
            command(line);
        len = 0;
        too_long = false;
    }
    return 0;
}
