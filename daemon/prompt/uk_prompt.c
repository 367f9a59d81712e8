/* PIN and consent dialogs through a pinentry child, one at a time, on the libuv loop. */
#include "uk_prompt.h"

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_prompt_internal.h"

extern char **environ;

/* OPTION ttyname, ttytype, lc-ctype, lc-messages; SETTIMEOUT, 6 texts; GETPIN/CONFIRM. */
#define MAX_CMDS 12

typedef struct session session;

enum kind { KIND_PIN, KIND_CONFIRM };
enum req_state { REQ_QUEUED, REQ_SHOWN, REQ_DONE };

typedef struct cmd {
    char *line; /* without LF */
    size_t len;
    bool optional; /* an ERR answer is ignored (OPTION, SETTIMEOUT, as gpg-agent does) */
} cmd;

struct uk_prompt_req {
    uk_prompt *p;
    uk_prompt_req *prev, *next; /* p->queue while QUEUED, p->done while DONE */
    enum kind kind;
    enum req_state state;
    uk_prompt_pin_fn pin_cb;
    uk_prompt_confirm_fn confirm_cb;
    void *arg;
    cmd cmds[MAX_CMDS]; /* the last one is GETPIN or CONFIRM */
    size_t ncmds;
    session *s;     /* while SHOWN */
    int result;     /* while DONE */
    uk_secret *pin; /* while DONE, result UK_OK, KIND_PIN */
};

typedef struct req_list {
    uk_prompt_req *head, *tail;
    size_t count;
} req_list;

struct uk_prompt {
    uv_loop_t *loop;
    char *program; /* NULL: none found */
    unsigned timeout_s;
    size_t max_queue;
    char **env;  /* NULL-terminated, for the child */
    cmd opts[4]; /* OPTION lines sent first */
    size_t nopts;
    req_list queue;  /* waiting, FIFO */
    req_list done;   /* result known, callback not yet run */
    session *active; /* the child of the dialog shown, until its handles are closed */
    uv_timer_t kick; /* 0 ms: delivers callbacks and starts the next dialog */
    bool freeing;
    bool kick_closing;
    void (*free_done)(void *ctx);
    void *free_ctx;
};

enum phase { PH_GREETING, PH_COMMANDS, PH_FINISHED };
enum timer_phase { TM_DIALOG, TM_BYE, TM_TERM, TM_KILL };

struct session {
    uk_prompt *p;
    uk_prompt_req *req; /* NULL once the result is known */
    uv_process_t proc;
    uv_pipe_t to_child;   /* the child's stdin */
    uv_pipe_t from_child; /* the child's stdout */
    uv_timer_t timer;
    int open_handles;
    bool closing;
    bool exited;
    bool reading;
    enum phase phase;
    enum timer_phase timer_phase;
    size_t next_cmd; /* index into the options then the request's commands */
    size_t sent_cmd; /* the command whose answer is awaited */
    size_t pin_len;
    size_t line_len;
    char line[UK__PROMPT_LINE_MAX + 1]; /* one line + LF; may hold PIN bytes: wiped */
    uint8_t pin[UK__PROMPT_ANSWER_MAX]; /* decoded D data: wiped */
};

typedef struct write_req {
    uv_write_t req;
    session *s;
    char data[]; /* line + LF; never a PIN */
} write_req;

static void session_fail(session *s, int err);
static void send_next(session *s);

/* ---- lists -------------------------------------------------------------------------------- */

static void list_push(req_list *l, uk_prompt_req *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->count++;
}

static void list_remove(req_list *l, uk_prompt_req *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
    l->count--;
}

/* ---- commands ----------------------------------------------------------------------------- */

static void cmd_free(cmd *c)
{
    free(c->line);
    c->line = NULL;
}

/* "VERB" or "VERB <arg escaped>"; UK_E_INVALID_PARAMS when longer than an Assuan line. */
static int cmd_make(cmd *c, const char *verb, const char *arg, bool optional)
{
    size_t vlen = strlen(verb);
    size_t alen = arg != NULL ? uk__prompt_escaped_len(arg) : 0;
    size_t len = vlen + (arg != NULL ? 1 + alen : 0);
    if (len > UK__PROMPT_LINE_MAX)
        return UK_E_INVALID_PARAMS;
    char *line = malloc(len + 1);
    if (line == NULL)
        return UK_E_NO_MEMORY;
    memcpy(line, verb, vlen);
    line[vlen] = '\0';
    if (arg != NULL) {
        size_t n;
        line[vlen] = ' ';
        int rc = uk__prompt_escape(arg, line + vlen + 1, alen + 1, &n);
        if (rc != UK_OK) {
            free(line);
            return rc;
        }
    }
    c->line = line;
    c->len = len;
    c->optional = optional;
    return UK_OK;
}

static int add_text(uk_prompt_req *r, const char *verb, const char *text)
{
    if (text == NULL || text[0] == '\0')
        return UK_OK;
    if (!uk__prompt_utf8_valid(text))
        return UK_E_INVALID_PARAMS;
    int rc = cmd_make(&r->cmds[r->ncmds], verb, text, false);
    if (rc == UK_OK)
        r->ncmds++;
    return rc;
}

static size_t session_ncmds(const session *s)
{
    return s->p->nopts + s->req->ncmds;
}

static const cmd *session_cmd(const session *s, size_t i)
{
    return i < s->p->nopts ? &s->p->opts[i] : &s->req->cmds[i - s->p->nopts];
}

/* ---- requests and their completion -------------------------------------------------------- */

static void req_free(uk_prompt_req *r)
{
    for (size_t i = 0; i < r->ncmds; i++)
        cmd_free(&r->cmds[i]);
    uk_secret_free(r->pin);
    free(r);
}

static void kick_cb(uv_timer_t *t);

static void kick(uk_prompt *p)
{
    if (!p->kick_closing)
        uv_timer_start(&p->kick, kick_cb, 0, 0);
}

/* The result of r is known: detach it from its queue or child and schedule the callback. */
static void complete(uk_prompt_req *r, int err, uk_secret *pin)
{
    uk_prompt *p = r->p;
    if (r->state == REQ_QUEUED)
        list_remove(&p->queue, r);
    if (r->s != NULL) {
        r->s->req = NULL;
        r->s = NULL;
    }
    r->state = REQ_DONE;
    r->result = err;
    r->pin = pin;
    list_push(&p->done, r);
    kick(p);
}

static void deliver(uk_prompt_req *r)
{
    uk_secret *pin = r->pin;
    r->pin = NULL;
    if (r->kind == KIND_PIN)
        r->pin_cb(r->arg, r->result, pin);
    else
        r->confirm_cb(r->arg, r->result);
    req_free(r);
}

/* ---- the child ---------------------------------------------------------------------------- */

static void session_handle_closed(uv_handle_t *h)
{
    session *s = h->data;
    if (--s->open_handles > 0)
        return;
    uk_prompt *p = s->p;
    if (p->active == s)
        p->active = NULL;
    uk_wipe(s, sizeof(*s));
    free(s);
    kick(p); /* the next dialog may start now */
}

static void session_close(session *s)
{
    if (s->closing)
        return;
    s->closing = true;
    uv_close((uv_handle_t *)&s->proc, session_handle_closed);
    uv_close((uv_handle_t *)&s->to_child, session_handle_closed);
    uv_close((uv_handle_t *)&s->from_child, session_handle_closed);
    uv_close((uv_handle_t *)&s->timer, session_handle_closed);
}

static void stop_reading(session *s)
{
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->from_child);
        s->reading = false;
    }
    uk_wipe(s->line, sizeof(s->line));
    s->line_len = 0;
}

static void timer_cb(uv_timer_t *t);

/* SIGTERM now, SIGKILL after the grace period; the exit callback then closes everything. */
static void start_kill(session *s)
{
    if (s->exited || s->timer_phase == TM_TERM || s->timer_phase == TM_KILL)
        return;
    stop_reading(s);
    s->phase = PH_FINISHED;
    uv_process_kill(&s->proc, SIGTERM);
    s->timer_phase = TM_TERM;
    uv_timer_start(&s->timer, timer_cb, UK__PROMPT_KILL_GRACE_MS, 0);
}

static void timer_cb(uv_timer_t *t)
{
    session *s = t->data;
    switch (s->timer_phase) {
    case TM_DIALOG:
        if (s->req != NULL) {
            UK_LOG_NOTICE("pinentry (pid %d): no answer in time", (int)s->proc.pid);
            complete(s->req, UK_E_TIMEOUT, NULL);
        }
        start_kill(s);
        break;
    case TM_BYE:
        UK_LOG_WARN("pinentry (pid %d) did not exit after BYE", (int)s->proc.pid);
        start_kill(s);
        break;
    case TM_TERM:
        UK_LOG_WARN("pinentry (pid %d) ignored SIGTERM; sending SIGKILL", (int)s->proc.pid);
        uv_process_kill(&s->proc, SIGKILL);
        s->timer_phase = TM_KILL;
        break;
    case TM_KILL:
        break;
    }
}

static void exit_cb(uv_process_t *proc, int64_t status, int signo)
{
    session *s = proc->data;
    s->exited = true;
    if (s->req != NULL) {
        UK_LOG_WARN("pinentry (pid %d) exited before answering (status %lld, signal %d)",
                    (int)proc->pid, (long long)status, signo);
        complete(s->req, UK_E_PROMPT_UNAVAILABLE, NULL);
    }
    stop_reading(s);
    session_close(s);
}

/* The answer is in (or the protocol broke): hand the result over and let the child go. */
static void session_finish(session *s, int err, uk_secret *pin)
{
    if (s->req != NULL)
        complete(s->req, err, pin);
    else
        uk_secret_free(pin);
    stop_reading(s);
    uk_wipe(s->pin, sizeof(s->pin));
    s->pin_len = 0;
}

static void write_cb(uv_write_t *w, int status)
{
    write_req *wr = (write_req *)w;
    session *s = wr->s;
    free(wr);
    if (status < 0 && status != UV_ECANCELED && !s->closing) {
        UK_LOG_WARN("pinentry (pid %d): write failed: %s", (int)s->proc.pid, uv_strerror(status));
        session_fail(s, UK_E_PROMPT_UNAVAILABLE);
    }
}

static int send_line(session *s, const char *line, size_t len)
{
    write_req *wr = malloc(sizeof(*wr) + len + 1);
    if (wr == NULL)
        return UK_E_NO_MEMORY;
    wr->s = s;
    memcpy(wr->data, line, len);
    wr->data[len] = '\n';
    uv_buf_t buf = uv_buf_init(wr->data, (unsigned)(len + 1));
    int rc = uv_write(&wr->req, (uv_stream_t *)&s->to_child, &buf, 1, write_cb);
    if (rc < 0) {
        free(wr);
        UK_LOG_WARN("pinentry (pid %d): write failed: %s", (int)s->proc.pid, uv_strerror(rc));
        return UK_E_PROMPT_UNAVAILABLE;
    }
    return UK_OK;
}

/* Protocol error, write error, cancellation: report err (if still pending) and kill the child. */
static void session_fail(session *s, int err)
{
    session_finish(s, err, NULL);
    start_kill(s);
}

/* The final answer is in: report it, say BYE and give the child a moment to leave. */
static void session_answered(session *s, int err, uk_secret *pin)
{
    session_finish(s, err, pin);
    s->phase = PH_FINISHED;
    uv_timer_stop(&s->timer);
    if (send_line(s, "BYE", 3) != UK_OK) {
        start_kill(s);
        return;
    }
    s->timer_phase = TM_BYE;
    uv_timer_start(&s->timer, timer_cb, UK__PROMPT_KILL_GRACE_MS, 0);
}

static void send_next(session *s)
{
    const cmd *c = session_cmd(s, s->next_cmd);
    s->sent_cmd = s->next_cmd++;
    int rc = send_line(s, c->line, c->len);
    if (rc != UK_OK)
        session_fail(s, rc == UK_E_NO_MEMORY ? UK_E_NO_MEMORY : UK_E_PROMPT_UNAVAILABLE);
}

static bool starts_with_word(const char *line, size_t n, const char *word)
{
    size_t w = strlen(word);
    return n >= w && memcmp(line, word, w) == 0 && (n == w || line[w] == ' ');
}

/* One line from the child, without its LF. */
static void handle_line(session *s, const char *line, size_t n)
{
    if (s->req == NULL)
        return; /* cannot happen: reading stops when the request leaves */
    if (n > 0 && line[n - 1] == '\r')
        n--;
    if ((n > 0 && line[0] == '#') || starts_with_word(line, n, "S"))
        return; /* comments and status lines */

    if (s->phase == PH_GREETING) {
        if (!starts_with_word(line, n, "OK")) {
            UK_LOG_WARN("pinentry (pid %d): bad greeting", (int)s->proc.pid);
            session_fail(s, UK_E_PROMPT_UNAVAILABLE);
            return;
        }
        s->phase = PH_COMMANDS;
        send_next(s);
        return;
    }

    bool final = s->sent_cmd + 1 == session_ncmds(s);
    if (starts_with_word(line, n, "OK")) {
        if (!final) {
            send_next(s);
            return;
        }
        uk_secret *pin = NULL;
        if (s->req->kind == KIND_PIN) {
            pin = uk_secret_new(s->pin, s->pin_len);
            if (pin == NULL) {
                session_answered(s, UK_E_NO_MEMORY, NULL);
                return;
            }
        }
        session_answered(s, UK_OK, pin);
        return;
    }
    if (starts_with_word(line, n, "ERR")) {
        if (!final && session_cmd(s, s->sent_cmd)->optional) {
            UK_LOG_DEBUG("pinentry (pid %d) refused an option; going on", (int)s->proc.pid);
            send_next(s);
            return;
        }
        int err = uk__prompt_err_from_line(line, n);
        if (err == UK_E_PROMPT_UNAVAILABLE)
            UK_LOG_WARN("pinentry (pid %d) failed: %.*s", (int)s->proc.pid, (int)(n < 80 ? n : 80),
                        line);
        session_answered(s, err, NULL);
        return;
    }
    if (starts_with_word(line, n, "D") && final && s->req->kind == KIND_PIN) {
        size_t got = 0;
        const char *data = n > 2 ? line + 2 : line + n;
        int rc = uk__prompt_unescape(data, n > 2 ? n - 2 : 0, s->pin + s->pin_len,
                                     sizeof(s->pin) - s->pin_len, &got);
        if (rc != UK_OK) {
            UK_LOG_WARN("pinentry (pid %d): bad or oversized data line", (int)s->proc.pid);
            session_fail(s, UK_E_PROMPT_UNAVAILABLE);
            return;
        }
        s->pin_len += got;
        return;
    }
    /* INQUIRE (pinentry only asks when a quality bar is set, which we never do), stray D lines,
     * anything else: not a pinentry we can talk to. The line is not logged: it may hold a PIN. */
    UK_LOG_WARN("pinentry (pid %d): unexpected line of %zu bytes", (int)s->proc.pid, n);
    session_fail(s, UK_E_PROMPT_UNAVAILABLE);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    session *s = h->data;
    *buf = uv_buf_init(s->line + s->line_len, (unsigned)(sizeof(s->line) - s->line_len));
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    session *s = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (s->req != NULL)
            UK_LOG_WARN("pinentry (pid %d) closed its output before answering: %s",
                        (int)s->proc.pid, uv_strerror((int)nread));
        session_fail(s, UK_E_PROMPT_UNAVAILABLE);
        return;
    }
    s->line_len += (size_t)nread;
    size_t start = 0;
    while (s->reading) {
        char *lf = memchr(s->line + start, '\n', s->line_len - start);
        if (lf == NULL)
            break;
        size_t n = (size_t)(lf - (s->line + start));
        handle_line(s, s->line + start, n);
        start += n + 1;
    }
    if (!s->reading)
        return; /* finished or failed: the buffer was wiped */
    size_t rest = s->line_len - start;
    memmove(s->line, s->line + start, rest);
    uk_wipe(s->line + rest, s->line_len - rest);
    s->line_len = rest;
    if (s->line_len == sizeof(s->line)) {
        UK_LOG_WARN("pinentry (pid %d): line longer than %u bytes", (int)s->proc.pid,
                    UK__PROMPT_LINE_MAX);
        session_fail(s, UK_E_PROMPT_UNAVAILABLE);
    }
}

/* Show r: start its child. On failure r completes with PROMPT_UNAVAILABLE. */
static void session_start(uk_prompt *p, uk_prompt_req *r)
{
    list_remove(&p->queue, r);
    r->state = REQ_SHOWN;
    if (p->program == NULL) {
        complete(r, UK_E_PROMPT_UNAVAILABLE, NULL);
        return;
    }
    session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        complete(r, UK_E_NO_MEMORY, NULL);
        return;
    }
    s->p = p;
    s->req = r;
    r->s = s;
    s->proc.data = s->to_child.data = s->from_child.data = s->timer.data = s;
    s->open_handles = 4;
    s->phase = PH_GREETING;
    s->timer_phase = TM_DIALOG;
    uv_pipe_init(p->loop, &s->to_child, 0);
    uv_pipe_init(p->loop, &s->from_child, 0);
    uv_timer_init(p->loop, &s->timer);
    p->active = s;

    char *args[] = {p->program, NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&s->to_child},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&s->from_child},
        {.flags = UV_IGNORE},
    };
    uv_process_options_t po = {
        .exit_cb = exit_cb,
        .file = p->program,
        .args = args,
        .env = p->env,
        .stdio_count = 3,
        .stdio = stdio,
    };
    int rc = uv_spawn(p->loop, &s->proc, &po);
    if (rc < 0) {
        UK_LOG_WARN("cannot start pinentry %s: %s", p->program, uv_strerror(rc));
        s->exited = true;
        complete(r, UK_E_PROMPT_UNAVAILABLE, NULL);
        session_close(s); /* the process handle is initialised even on failure */
        return;
    }
    UK_LOG_INFO("pinentry started (pid %d) for a %s dialog", (int)s->proc.pid,
                r->kind == KIND_PIN ? "PIN" : "consent");
    rc = uv_read_start((uv_stream_t *)&s->from_child, alloc_cb, read_cb);
    if (rc < 0) {
        UK_LOG_WARN("pinentry (pid %d): cannot read: %s", (int)s->proc.pid, uv_strerror(rc));
        session_fail(s, UK_E_PROMPT_UNAVAILABLE);
        return;
    }
    s->reading = true;
    /* pinentry ends itself at timeout_s (SETTIMEOUT) and restores the terminal; the timer is the
     * backstop for one that does not. */
    uv_timer_start(&s->timer, timer_cb,
                   (uint64_t)p->timeout_s * 1000u + UK__PROMPT_TIMEOUT_GRACE_MS, 0);
}

/* ---- the queue ---------------------------------------------------------------------------- */

static void prompt_destroy(uk_prompt *p)
{
    for (size_t i = 0; i < p->nopts; i++)
        cmd_free(&p->opts[i]);
    for (size_t i = 0; p->env != NULL && p->env[i] != NULL; i++)
        free(p->env[i]);
    free(p->env);
    free(p->program);
    free(p);
}

static void kick_closed(uv_handle_t *h)
{
    uk_prompt *p = h->data;
    void (*done)(void *) = p->free_done;
    void *ctx = p->free_ctx;
    prompt_destroy(p);
    if (done != NULL)
        done(ctx);
}

static void kick_cb(uv_timer_t *t)
{
    uk_prompt *p = t->data;
    for (;;) {
        if (p->done.head != NULL) {
            uk_prompt_req *r = p->done.head;
            list_remove(&p->done, r);
            deliver(r);
            continue;
        }
        if (!p->freeing && p->active == NULL && p->queue.head != NULL) {
            session_start(p, p->queue.head);
            continue;
        }
        break;
    }
    if (p->freeing && p->active == NULL && !p->kick_closing) {
        p->kick_closing = true;
        uv_close((uv_handle_t *)&p->kick, kick_closed);
    }
}

/* ---- set-up ------------------------------------------------------------------------------- */

static int build_env(uk_prompt *p)
{
    size_t n = 0;
    for (char **e = environ; e != NULL && *e != NULL; e++)
        n += uk__prompt_env_allowed(*e);
    p->env = calloc(n + 1, sizeof(*p->env));
    if (p->env == NULL)
        return UK_E_NO_MEMORY;
    size_t i = 0;
    for (char **e = environ; e != NULL && *e != NULL && i < n; e++) {
        if (!uk__prompt_env_allowed(*e))
            continue;
        p->env[i] = strdup(*e);
        if (p->env[i++] == NULL)
            return UK_E_NO_MEMORY;
    }
    return UK_OK;
}

static const char *env_first(const char *a, const char *b, const char *c)
{
    const char *names[] = {a, b, c};
    for (size_t i = 0; i < 3; i++) {
        const char *v = names[i] != NULL ? getenv(names[i]) : NULL;
        if (v != NULL && v[0] != '\0')
            return v;
    }
    return NULL;
}

/* OPTION lines as gpg-agent sends them: the terminal (only when ours is one), the locale. */
static int build_options(uk_prompt *p)
{
    char opt[UK__PROMPT_LINE_MAX + 1];
    const char *values[4][2] = {
        {"ttyname", isatty(STDIN_FILENO) ? ttyname(STDIN_FILENO) : NULL},
        {"ttytype", isatty(STDIN_FILENO) ? getenv("TERM") : NULL},
        {"lc-ctype", env_first("LC_ALL", "LC_CTYPE", "LANG")},
        {"lc-messages", env_first("LC_ALL", "LC_MESSAGES", "LANG")},
    };
    for (size_t i = 0; i < 4; i++) {
        if (values[i][1] == NULL || values[i][1][0] == '\0')
            continue;
        int len = snprintf(opt, sizeof(opt), "%s=%s", values[i][0], values[i][1]);
        if (len < 0 || (size_t)len >= sizeof(opt))
            continue; /* absurdly long: not worth failing for */
        int rc = cmd_make(&p->opts[p->nopts], "OPTION", opt, true);
        if (rc == UK_E_NO_MEMORY)
            return rc;
        if (rc == UK_OK)
            p->nopts++;
    }
    return UK_OK;
}

static int choose_program(uk_prompt *p, const char *program)
{
    if (program != NULL && program[0] != '\0') {
        if (program[0] != '/' || strlen(program) >= PATH_MAX) {
            UK_LOG_ERR("pinentry program must be an absolute path");
            return UK_E_CONFIG_INVALID;
        }
        const char *one[] = {program, NULL};
        if (uk__prompt_pick(one) == NULL)
            UK_LOG_WARN("pinentry program %s is not an executable file; PIN and consent "
                        "dialogs will fail until it is installed",
                        program);
    } else {
        program = uk__prompt_pick(uk__prompt_default_programs);
        if (program == NULL) {
            UK_LOG_WARN("no pinentry program found (/usr/bin/pinentry, pinentry-gnome3, -gtk2, "
                        "-qt, -curses, -tty); PIN and consent dialogs will fail. Install "
                        "pinentry-gnome3 or pinentry-curses.");
            return UK_OK;
        }
    }
    p->program = strdup(program);
    return p->program != NULL ? UK_OK : UK_E_NO_MEMORY;
}

int uk_prompt_new(const uk_prompt_options *opt, uk_prompt **out)
{
    if (opt == NULL || opt->loop == NULL || out == NULL)
        return UK_E_INVALID_PARAMS;
    uk_prompt *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return UK_E_NO_MEMORY;
    p->loop = opt->loop;
    p->timeout_s = opt->timeout_s != 0 ? opt->timeout_s : UK__PROMPT_DEFAULT_TIMEOUT_S;
    p->max_queue = opt->max_queue != 0 ? opt->max_queue : UK__PROMPT_DEFAULT_QUEUE;
    int rc = choose_program(p, opt->program);
    if (rc == UK_OK)
        rc = build_env(p);
    if (rc == UK_OK)
        rc = build_options(p);
    if (rc != UK_OK) {
        prompt_destroy(p);
        return rc;
    }
    uv_timer_init(p->loop, &p->kick);
    p->kick.data = p;
    UK_LOG_INFO("pinentry program: %s", p->program != NULL ? p->program : "(none)");
    *out = p;
    return UK_OK;
}

void uk_prompt_free(uk_prompt *p, void (*done)(void *ctx), void *ctx)
{
    if (p == NULL)
        return;
    p->freeing = true;
    p->free_done = done;
    p->free_ctx = ctx;
    for (uk_prompt_req *r = p->done.head; r != NULL; r = r->next)
        uk_prompt_cancel(r); /* answered, not delivered: CANCELLED too, the PIN wiped */
    while (p->queue.head != NULL)
        complete(p->queue.head, UK_E_CANCELLED, NULL);
    if (p->active != NULL && p->active->req != NULL) {
        session *s = p->active;
        complete(s->req, UK_E_CANCELLED, NULL);
        start_kill(s);
    }
    kick(p);
}

/* ---- requests ----------------------------------------------------------------------------- */

static int submit(uk_prompt *p, enum kind kind, const uk_prompt_text *text, uk_prompt_pin_fn pin_cb,
                  uk_prompt_confirm_fn confirm_cb, void *arg, uk_prompt_req **out)
{
    if (p == NULL || text == NULL || (pin_cb == NULL && confirm_cb == NULL))
        return UK_E_INVALID_PARAMS;
    if (p->freeing)
        return UK_E_CANCELLED;
    size_t shown = p->active != NULL && p->active->req != NULL ? 1 : 0;
    if (p->queue.count + shown >= p->max_queue)
        return UK_E_BUSY;
    uk_prompt_req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return UK_E_NO_MEMORY;
    r->p = p;
    r->kind = kind;
    r->pin_cb = pin_cb;
    r->confirm_cb = confirm_cb;
    r->arg = arg;

    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%u", p->timeout_s);
    int rc = cmd_make(&r->cmds[r->ncmds], "SETTIMEOUT", timeout, true);
    if (rc == UK_OK)
        r->ncmds++;
    if (rc == UK_OK)
        rc = add_text(r, "SETTITLE", text->title);
    if (rc == UK_OK)
        rc = add_text(r, "SETDESC", text->description);
    if (rc == UK_OK && kind == KIND_PIN)
        rc = add_text(r, "SETPROMPT", text->prompt);
    if (rc == UK_OK)
        rc = add_text(r, "SETERROR", text->error);
    if (rc == UK_OK)
        rc = add_text(r, "SETOK", text->ok);
    if (rc == UK_OK)
        rc = add_text(r, "SETCANCEL", text->cancel);
    if (rc == UK_OK)
        rc = cmd_make(&r->cmds[r->ncmds], kind == KIND_PIN ? "GETPIN" : "CONFIRM", NULL, false);
    if (rc != UK_OK) {
        req_free(r);
        return rc;
    }
    r->ncmds++;
    r->state = REQ_QUEUED;
    list_push(&p->queue, r);
    kick(p);
    if (out != NULL)
        *out = r;
    return UK_OK;
}

int uk_prompt_get_pin(uk_prompt *p, const uk_prompt_text *text, uk_prompt_pin_fn cb, void *arg,
                      uk_prompt_req **req)
{
    if (cb == NULL)
        return UK_E_INVALID_PARAMS;
    return submit(p, KIND_PIN, text, cb, NULL, arg, req);
}

int uk_prompt_confirm(uk_prompt *p, const uk_prompt_text *text, uk_prompt_confirm_fn cb, void *arg,
                      uk_prompt_req **req)
{
    if (cb == NULL)
        return UK_E_INVALID_PARAMS;
    return submit(p, KIND_CONFIRM, text, NULL, cb, arg, req);
}

void uk_prompt_cancel(uk_prompt_req *r)
{
    if (r == NULL)
        return;
    switch (r->state) {
    case REQ_QUEUED:
        complete(r, UK_E_CANCELLED, NULL);
        break;
    case REQ_SHOWN: {
        session *s = r->s;
        complete(r, UK_E_CANCELLED, NULL);
        if (s != NULL)
            start_kill(s);
        break;
    }
    case REQ_DONE:
        /* The answer is in but not delivered: the caller no longer wants it. */
        r->result = UK_E_CANCELLED;
        uk_secret_free(r->pin);
        r->pin = NULL;
        break;
    }
}

const char *uk_prompt_program(const uk_prompt *p)
{
    return p != NULL ? p->program : NULL;
}
