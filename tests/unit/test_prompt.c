/*
 * PIN and consent dialogs against real children: the scripted pinentry (uk-pinentry-script)
 * answers from a script file and logs what it was shown. Each test has its own temporary
 * directory and loop; uv_loop_close() == 0 is asserted after uk_prompt_free's done.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "uk_err.h"
#include "uk_prompt.h"
#include "uk_prompt_internal.h"
#include "uk_secret.h"

#ifndef UK_PINENTRY_SCRIPT_PATH
#error "UK_PINENTRY_SCRIPT_PATH must name the uk-pinentry-script executable"
#endif

#define MAX_RESULTS 8

struct fixture;

struct result {
    struct fixture *f;
    int calls;
    int err;
    int order; /* 1-based position among all callbacks */
    uk_secret *pin;
    bool free_in_cb; /* call uk_prompt_free from inside the callback */
};

struct fixture {
    uv_loop_t loop;
    uv_timer_t poll;
    char dir[PATH_MAX];
    char script[PATH_MAX + 16];
    char log[PATH_MAX + 16];
    char excl[PATH_MAX + 16];
    uk_prompt *p;
    bool freed;
    int done_calls;
    int callbacks;
    struct result res[MAX_RESULTS];
    bool (*pred)(struct fixture *);
    uint64_t deadline;
    bool met;
};

/* ---- fixture ------------------------------------------------------------------------------ */

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof(f->dir), "%s/uk-prompt-XXXXXX", tmp != NULL ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->script, sizeof(f->script), "%s/script", f->dir);
    snprintf(f->log, sizeof(f->log), "%s/log", f->dir);
    snprintf(f->excl, sizeof(f->excl), "%s/excl", f->dir);
    assert_int_equal(setenv("UK_PINENTRY_SCRIPT", f->script, 1), 0);
    assert_int_equal(setenv("UK_PINENTRY_LOG", f->log, 1), 0);
    assert_int_equal(setenv("UK_PINENTRY_EXCLUSIVE", f->excl, 1), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->poll), 0);
    f->poll.data = f;
    for (int i = 0; i < MAX_RESULTS; i++)
        f->res[i].f = f;
    *state = f;
    return 0;
}

static void free_done(void *ctx)
{
    struct fixture *f = ctx;
    f->done_calls++;
}

static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[PATH_MAX + 256];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->p != NULL && !f->freed) {
        uk_prompt_free(f->p, free_done, f);
        f->freed = true;
    }
    uv_close((uv_handle_t *)&f->poll, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    if (f->p != NULL)
        assert_int_equal(f->done_calls, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (int i = 0; i < MAX_RESULTS; i++) {
        assert_true(f->res[i].calls <= 1); /* exactly once, never twice */
        uk_secret_free(f->res[i].pin);
    }
    remove_dir(f->dir);
    free(f);
    return 0;
}

static void new_prompt(struct fixture *f, const char *program, unsigned timeout_s, size_t max_queue)
{
    uk_prompt_options o = {
        .loop = &f->loop, .program = program, .timeout_s = timeout_s, .max_queue = max_queue};
    assert_int_equal(uk_prompt_new(&o, &f->p), UK_OK);
}

static void write_script(struct fixture *f, const char *text)
{
    FILE *s = fopen(f->script, "w");
    assert_non_null(s);
    assert_int_equal(fputs(text, s) >= 0, 1);
    assert_int_equal(fclose(s), 0);
}

/* ---- running the loop --------------------------------------------------------------------- */

static void poll_cb(uv_timer_t *t)
{
    struct fixture *f = t->data;
    if (f->pred != NULL && f->pred(f)) {
        f->met = true;
        uv_stop(&f->loop);
    } else if (uv_now(&f->loop) >= f->deadline) {
        uv_stop(&f->loop);
    }
}

/* Run the loop until pred holds (true) or ms have passed (false). pred NULL: just wait. */
static bool run_until(struct fixture *f, bool (*pred)(struct fixture *), uint64_t ms)
{
    uv_update_time(&f->loop);
    f->pred = pred;
    f->deadline = uv_now(&f->loop) + ms;
    f->met = false;
    uv_timer_start(&f->poll, poll_cb, 0, 5);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&f->poll);
    return f->met;
}

static int count_callbacks(struct fixture *f)
{
    return f->callbacks;
}

static bool one_callback(struct fixture *f)
{
    return count_callbacks(f) >= 1;
}

static bool two_callbacks(struct fixture *f)
{
    return count_callbacks(f) >= 2;
}

static bool three_callbacks(struct fixture *f)
{
    return count_callbacks(f) >= 3;
}

static bool freed_done(struct fixture *f)
{
    return f->done_calls > 0;
}

static void pin_cb(void *arg, int err, uk_secret *pin)
{
    struct result *r = arg;
    r->calls++;
    r->err = err;
    r->pin = pin;
    r->order = ++r->f->callbacks;
    if (err == UK_OK)
        assert_non_null(pin);
    else
        assert_null(pin);
    if (r->free_in_cb) {
        uk_prompt_free(r->f->p, free_done, r->f);
        r->f->freed = true;
    }
}

static void confirm_cb(void *arg, int err)
{
    struct result *r = arg;
    r->calls++;
    r->err = err;
    r->order = ++r->f->callbacks;
}

static const uk_prompt_text pin_text = {
    .title = "ukeyd", .description = "Enter the PIN", .prompt = "PIN:"};

/* ---- the scripted pinentry's log ---------------------------------------------------------- */

static char *read_log(struct fixture *f)
{
    FILE *l = fopen(f->log, "r");
    if (l == NULL)
        return strdup("");
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = (len + 4096 + 1) * 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t n = fread(buf + len, 1, 4096, l);
        len += n;
        if (n == 0)
            break;
    }
    fclose(l);
    buf[len] = '\0';
    return buf;
}

static size_t log_lines(struct fixture *f)
{
    char *l = read_log(f);
    size_t n = 0;
    for (char *q = l; (q = strchr(q, '\n')) != NULL; q++)
        n++;
    free(l);
    return n;
}

static bool one_log_line(struct fixture *f)
{
    return log_lines(f) >= 1;
}

/* Line i (0-based) of the log, malloc'd, without LF; fails the test when missing. */
static char *log_line(struct fixture *f, size_t i)
{
    char *l = read_log(f);
    char *q = l;
    for (size_t k = 0; k < i; k++) {
        q = strchr(q, '\n');
        assert_non_null(q);
        q++;
    }
    char *end = strchr(q, '\n');
    assert_non_null(end);
    char *line = strndup(q, (size_t)(end - q));
    assert_non_null(line);
    free(l);
    return line;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL)
        fail_msg("expected %s in %s", needle, hay);
}

static long log_pid(struct fixture *f, size_t i)
{
    char *line = log_line(f, i);
    long pid = 0;
    assert_int_equal(sscanf(line, "{\"pid\":%ld", &pid), 1);
    free(line);
    return pid;
}

static void assert_reaped(long pid)
{
    assert_true(pid > 0);
    assert_int_equal(kill((pid_t)pid, 0), -1);
    assert_int_equal(errno, ESRCH);
}

static void free_and_wait(struct fixture *f)
{
    uk_prompt_free(f->p, free_done, f);
    f->freed = true;
    assert_true(run_until(f, freed_done, 10000));
}

/* ---- pure functions ----------------------------------------------------------------------- */

static void test_prompt_escape_percent_and_controls(void **state)
{
    (void)state;
    char out[64];
    size_t len = 0;
    assert_int_equal(uk__prompt_escape("a%b\nc\rd\te \xe5\xbc\xa0", out, sizeof(out), &len), UK_OK);
    assert_string_equal(out, "a%25b%0Ac%0Dd%09e \xe5\xbc\xa0");
    assert_int_equal(len, strlen(out));
    assert_int_equal(uk__prompt_escaped_len("%\n"), 6);
    /* Exactly fitting needs room for the NUL; one byte less is refused, never truncated. */
    assert_int_equal(uk__prompt_escape("%%", out, 7, &len), UK_OK);
    assert_int_equal(uk__prompt_escape("%%", out, 6, &len), UK_E_INVALID_PARAMS);
}

static void test_prompt_unescape_data(void **state)
{
    (void)state;
    uint8_t out[16];
    size_t len = 0;
    const char *in = "12%2534%0a%0D x";
    assert_int_equal(uk__prompt_unescape(in, strlen(in), out, sizeof(out), &len), UK_OK);
    assert_int_equal(len, 9);
    assert_memory_equal(out, "12%34\n\r x", 9);
    assert_int_equal(uk__prompt_unescape("%2", 2, out, sizeof(out), &len), UK_E_PROMPT_UNAVAILABLE);
    assert_int_equal(uk__prompt_unescape("%zz", 3, out, sizeof(out), &len),
                     UK_E_PROMPT_UNAVAILABLE);
    assert_int_equal(uk__prompt_unescape("12345", 5, out, 4, &len), UK_E_PROMPT_UNAVAILABLE);
    assert_int_equal(uk__prompt_unescape("", 0, out, 0, &len), UK_OK);
    assert_int_equal(len, 0);
}

static int err_of(const char *line)
{
    return uk__prompt_err_from_line(line, strlen(line));
}

static void test_prompt_err_codes_map_to_reasons(void **state)
{
    (void)state;
    assert_int_equal(err_of("ERR 83886179 Operation cancelled"), UK_E_CONSENT_DENIED);
    assert_int_equal(err_of("ERR 99 Operation cancelled"), UK_E_CONSENT_DENIED);
    assert_int_equal(err_of("ERR 83886194 Not confirmed"), UK_E_CONSENT_DENIED);
    assert_int_equal(err_of("ERR 83886278 Fully canceled"), UK_E_CONSENT_DENIED);
    assert_int_equal(err_of("ERR 83886142 Timeout"), UK_E_TIMEOUT);
    assert_int_equal(err_of("ERR 83918950 Inappropriate ioctl for device"),
                     UK_E_PROMPT_UNAVAILABLE);
    assert_int_equal(err_of("ERR"), UK_E_PROMPT_UNAVAILABLE);
    assert_int_equal(err_of("ERR x99"), UK_E_PROMPT_UNAVAILABLE);
    assert_int_equal(err_of("ERR 99x"), UK_E_PROMPT_UNAVAILABLE);
    assert_int_equal(err_of("ERR 99999999999 big"), UK_E_PROMPT_UNAVAILABLE);
    assert_int_equal(err_of("OK"), UK_E_PROMPT_UNAVAILABLE);
}

static void test_prompt_utf8_check(void **state)
{
    (void)state;
    assert_true(uk__prompt_utf8_valid("plain \xe5\xbc\xa0\xe4\xb8\x89 \xf0\x9f\x94\x91"));
    assert_false(uk__prompt_utf8_valid("\xff"));
    assert_false(uk__prompt_utf8_valid("\xc0\xaf"));         /* overlong '/' */
    assert_false(uk__prompt_utf8_valid("\xed\xa0\x80"));     /* surrogate */
    assert_false(uk__prompt_utf8_valid("\xf4\x90\x80\x80")); /* > U+10FFFF */
    assert_false(uk__prompt_utf8_valid("\xe5\xbc"));         /* cut short */
}

static void test_prompt_pick_first_executable(void **state)
{
    struct fixture *f = *state;
    char plain[PATH_MAX + 16], exe[PATH_MAX + 16];
    snprintf(plain, sizeof(plain), "%s/plain", f->dir);
    snprintf(exe, sizeof(exe), "%s/exe", f->dir);
    FILE *s = fopen(plain, "w");
    assert_non_null(s);
    fclose(s);
    s = fopen(exe, "w");
    assert_non_null(s);
    fclose(s);
    assert_int_equal(chmod(exe, 0700), 0);
    const char *const candidates[] = {"/nonexistent/pinentry", plain, f->dir, exe, NULL};
    assert_string_equal(uk__prompt_pick(candidates), exe);
    const char *const none[] = {"/nonexistent/pinentry", plain, NULL};
    assert_null(uk__prompt_pick(none));
}

static void test_prompt_env_filter(void **state)
{
    (void)state;
    assert_true(uk__prompt_env_allowed("DISPLAY=:0"));
    assert_true(uk__prompt_env_allowed("LC_MESSAGES=zh_CN.UTF-8"));
    assert_true(uk__prompt_env_allowed("UK_PINENTRY_SCRIPT=/tmp/x"));
    assert_false(uk__prompt_env_allowed("UK_PINENTRY_=x"));
    assert_false(uk__prompt_env_allowed("DISPLAYX=:0"));
    assert_false(uk__prompt_env_allowed("LD_PRELOAD=/tmp/evil.so"));
    assert_false(uk__prompt_env_allowed("PATH"));
    assert_false(uk__prompt_env_allowed("=x"));
}

/* ---- options ------------------------------------------------------------------------------ */

static void test_prompt_program_must_be_absolute(void **state)
{
    struct fixture *f = *state;
    uk_prompt *p = NULL;
    uk_prompt_options o = {.loop = &f->loop, .program = "pinentry-curses"};
    assert_int_equal(uk_prompt_new(&o, &p), UK_E_CONFIG_INVALID);
    o.program = "./uk-pinentry-script";
    assert_int_equal(uk_prompt_new(&o, &p), UK_E_CONFIG_INVALID);
    assert_null(p);
    assert_int_equal(uk_prompt_new(NULL, &p), UK_E_INVALID_PARAMS);
    o.loop = NULL;
    o.program = UK_PINENTRY_SCRIPT_PATH;
    assert_int_equal(uk_prompt_new(&o, &p), UK_E_INVALID_PARAMS);
    assert_null(p);
}

static void test_prompt_default_program_is_from_the_list(void **state)
{
    struct fixture *f = *state;
    new_prompt(f, NULL, 0, 0);
    const char *prog = uk_prompt_program(f->p);
    assert_ptr_equal(prog == NULL, uk__prompt_pick(uk__prompt_default_programs) == NULL);
    if (prog != NULL)
        assert_string_equal(prog, uk__prompt_pick(uk__prompt_default_programs));
}

/* ---- dialogs ------------------------------------------------------------------------------ */

static void test_prompt_get_pin_returns_pin(void **state)
{
    struct fixture *f = *state;
    write_script(f, "pin 123456\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    assert_string_equal(uk_prompt_program(f->p), UK_PINENTRY_SCRIPT_PATH);
    uk_prompt_req *req = NULL;
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], &req), UK_OK);
    assert_non_null(req);
    assert_int_equal(f->res[0].calls, 0); /* never from inside the call */
    assert_true(run_until(f, one_callback, 10000));
    assert_int_equal(f->res[0].err, UK_OK);
    assert_int_equal(uk_secret_get0_len(f->res[0].pin), 6);
    assert_string_equal((const char *)uk_secret_get0_data(f->res[0].pin), "123456");

    char *line = log_line(f, 0);
    assert_contains(line, "\"title\":\"ukeyd\"");
    assert_contains(line, "\"description\":\"Enter the PIN\"");
    assert_contains(line, "\"prompt\":\"PIN:\"");
    assert_contains(line, "\"error\":null");
    assert_contains(line, "\"timeout\":120");
    assert_contains(line, "\"command\":\"GETPIN\"");
    assert_contains(line, "\"answer\":\"pin\"");
    assert_contains(line, "\"overlap\":false");
    free(line);
    char *all = read_log(f);
    assert_null(strstr(all, "123456")); /* the PIN itself is never logged */
    free(all);

    long pid = log_pid(f, 0);
    free_and_wait(f);
    assert_reaped(pid);
}

static void test_prompt_texts_escaped_and_pin_decoded(void **state)
{
    struct fixture *f = *state;
    /* The PIN contains '%', a space and UTF-8; uk-pinentry-script sends it escaped (%25). */
    write_script(f, "pin 1%2 3%25\xc3\xbc\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 30, 0);
    uk_prompt_text t = {
        .title = "ukeyd: sign",
        .description = "Origin: https://a.example\nSubject: CN=\xe5\xbc\xa0\xe4\xb8\x89, 100% "
                       "sure\tok\r",
        .prompt = "PIN %1:",
        .error = "Wrong PIN, 2 tries left",
        .ok = "_Sign",
        .cancel = "_Refuse",
    };
    assert_int_equal(uk_prompt_get_pin(f->p, &t, pin_cb, &f->res[0], NULL), UK_OK);
    assert_true(run_until(f, one_callback, 10000));
    assert_int_equal(f->res[0].err, UK_OK);
    assert_string_equal((const char *)uk_secret_get0_data(f->res[0].pin), "1%2 3%25\xc3\xbc");

    char *line = log_line(f, 0);
    assert_contains(line, "\"description\":\"Origin: https://a.example\\nSubject: "
                          "CN=\xe5\xbc\xa0\xe4\xb8\x89, 100% sure\\u0009ok\\u000d\"");
    assert_contains(line, "\"title\":\"ukeyd: sign\"");
    assert_contains(line, "\"prompt\":\"PIN %1:\"");
    assert_contains(line, "\"error\":\"Wrong PIN, 2 tries left\"");
    assert_contains(line, "\"ok\":\"_Sign\"");
    assert_contains(line, "\"cancel\":\"_Refuse\"");
    assert_contains(line, "\"timeout\":30");
    free(line);
}

static void test_prompt_env_passed_is_filtered(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(setenv("UK_PROMPT_TEST_NOT_PASSED", "x", 1), 0);
    write_script(f, "ok\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    unsetenv("UK_PROMPT_TEST_NOT_PASSED");
    assert_int_equal(uk_prompt_confirm(f->p, &pin_text, confirm_cb, &f->res[0], NULL), UK_OK);
    assert_true(run_until(f, one_callback, 10000));
    assert_int_equal(f->res[0].err, UK_OK);
    char *line = log_line(f, 0);
    assert_contains(line, "\"UK_PINENTRY_LOG\"");
    assert_null(strstr(line, "UK_PROMPT_TEST_NOT_PASSED"));
    /* Every name in "env" is one the filter allows. */
    char *env = strstr(line, "\"env\":[");
    assert_non_null(env);
    for (char *q = env + 7; *q == '"';) {
        char *end = strchr(q + 1, '"');
        assert_non_null(end);
        char entry[300];
        snprintf(entry, sizeof(entry), "%.*s=v", (int)(end - q - 1), q + 1);
        if (!uk__prompt_env_allowed(entry))
            fail_msg("pinentry received %s", entry);
        q = end + 1;
        if (*q == ',')
            q++;
    }
    free(line);
}

static void test_prompt_get_pin_cancel_is_consent_denied(void **state)
{
    struct fixture *f = *state;
    write_script(f, "cancel\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], NULL), UK_OK);
    assert_true(run_until(f, one_callback, 10000));
    assert_int_equal(f->res[0].err, UK_E_CONSENT_DENIED);
    assert_null(f->res[0].pin);
}

static void test_prompt_exhausted_script_cancels(void **state)
{
    struct fixture *f = *state;
    write_script(f, "ok\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    assert_int_equal(uk_prompt_confirm(f->p, &pin_text, confirm_cb, &f->res[0], NULL), UK_OK);
    assert_int_equal(uk_prompt_confirm(f->p, &pin_text, confirm_cb, &f->res[1], NULL), UK_OK);
    assert_true(run_until(f, two_callbacks, 10000));
    assert_int_equal(f->res[0].err, UK_OK);
    assert_int_equal(f->res[1].err, UK_E_CONSENT_DENIED);
}

static void test_prompt_confirm_yes_and_not_confirmed(void **state)
{
    struct fixture *f = *state;
    write_script(f, "ok\nnotconfirmed\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    uk_prompt_text t = {.title = "ukeyd",
                        .description = "Allow https://a.example?",
                        .prompt = "not sent for CONFIRM"};
    assert_int_equal(uk_prompt_confirm(f->p, &t, confirm_cb, &f->res[0], NULL), UK_OK);
    assert_int_equal(uk_prompt_confirm(f->p, &t, confirm_cb, &f->res[1], NULL), UK_OK);
    assert_true(run_until(f, two_callbacks, 10000));
    assert_int_equal(f->res[0].err, UK_OK);
    assert_int_equal(f->res[1].err, UK_E_CONSENT_DENIED);
    char *line = log_line(f, 0);
    assert_contains(line, "\"command\":\"CONFIRM\"");
    assert_contains(line, "\"prompt\":null");
    free(line);
}

static void test_prompt_pinentry_timeout_is_timeout(void **state)
{
    struct fixture *f = *state;
    write_script(f, "timeout\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], NULL), UK_OK);
    assert_true(run_until(f, one_callback, 10000));
    assert_int_equal(f->res[0].err, UK_E_TIMEOUT);
}

static void test_prompt_hang_times_out_and_child_is_reaped(void **state)
{
    struct fixture *f = *state;
    write_script(f, "hang\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 1, 0);
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], NULL), UK_OK);
    assert_true(run_until(f, one_callback, 10000));
    uint64_t elapsed = uv_now(&f->loop) - t0;
    assert_int_equal(f->res[0].err, UK_E_TIMEOUT);
    assert_true(elapsed >= 1900 && elapsed < 6000); /* timeout_s + 1 s grace */
    long pid = log_pid(f, 0);
    free_and_wait(f);
    assert_reaped(pid);
}

static void test_prompt_child_dies_is_unavailable(void **state)
{
    struct fixture *f = *state;
    write_script(f, "die\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], NULL), UK_OK);
    assert_true(run_until(f, one_callback, 10000));
    assert_int_equal(f->res[0].err, UK_E_PROMPT_UNAVAILABLE);
}

static void test_prompt_garbage_and_long_line_are_unavailable(void **state)
{
    struct fixture *f = *state;
    write_script(f, "garbage\nlongline\nok\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], NULL), UK_OK);
    assert_int_equal(uk_prompt_confirm(f->p, &pin_text, confirm_cb, &f->res[1], NULL), UK_OK);
    assert_int_equal(uk_prompt_confirm(f->p, &pin_text, confirm_cb, &f->res[2], NULL), UK_OK);
    assert_true(run_until(f, three_callbacks, 10000));
    assert_int_equal(f->res[0].err, UK_E_PROMPT_UNAVAILABLE);
    assert_int_equal(f->res[1].err, UK_E_PROMPT_UNAVAILABLE);
    assert_int_equal(f->res[2].err, UK_OK); /* the next pinentry works again */
    long pid0 = log_pid(f, 0), pid1 = log_pid(f, 1);
    free_and_wait(f);
    assert_reaped(pid0);
    assert_reaped(pid1);
}

static void test_prompt_comments_and_status_lines_are_ignored(void **state)
{
    struct fixture *f = *state;
    write_script(f, "pin 4711\nok\n");
    assert_int_equal(setenv("UK_PINENTRY_CHATTY", "1", 1), 0);
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    unsetenv("UK_PINENTRY_CHATTY");
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], NULL), UK_OK);
    assert_int_equal(uk_prompt_confirm(f->p, &pin_text, confirm_cb, &f->res[1], NULL), UK_OK);
    assert_true(run_until(f, two_callbacks, 10000));
    assert_int_equal(f->res[0].err, UK_OK);
    assert_string_equal((const char *)uk_secret_get0_data(f->res[0].pin), "4711");
    assert_int_equal(f->res[1].err, UK_OK);
}

static void test_prompt_bad_greeting_is_unavailable(void **state)
{
    struct fixture *f = *state;
    write_script(f, "ok\n");
    assert_int_equal(setenv("UK_PINENTRY_GREETING", "ERR 1 not today", 1), 0);
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    unsetenv("UK_PINENTRY_GREETING");
    assert_int_equal(uk_prompt_confirm(f->p, &pin_text, confirm_cb, &f->res[0], NULL), UK_OK);
    assert_true(run_until(f, one_callback, 10000));
    assert_int_equal(f->res[0].err, UK_E_PROMPT_UNAVAILABLE);
    assert_int_equal(log_lines(f), 0); /* it never got as far as a dialog */
}

static void test_prompt_inquire_is_unavailable(void **state)
{
    struct fixture *f = *state;
    write_script(f, "inquire\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], NULL), UK_OK);
    assert_true(run_until(f, one_callback, 10000));
    assert_int_equal(f->res[0].err, UK_E_PROMPT_UNAVAILABLE);
    long pid = log_pid(f, 0);
    free_and_wait(f);
    assert_reaped(pid);
}

static void test_prompt_long_pin_over_several_d_lines(void **state)
{
    struct fixture *f = *state;
    char script[2 * 1500 + 64];
    char pin[1501];
    memset(pin, '%', 1500); /* escaped: 4500 bytes, so at least five D lines */
    pin[1500] = '\0';
    snprintf(script, sizeof(script), "pin %s\nok\n", pin);
    write_script(f, script);
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], NULL), UK_OK);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[1], NULL), UK_OK);
    assert_true(run_until(f, two_callbacks, 10000));
    assert_int_equal(f->res[0].err, UK_OK);
    assert_int_equal(uk_secret_get0_len(f->res[0].pin), 1500);
    assert_memory_equal(uk_secret_get0_data(f->res[0].pin), pin, 1500);
    /* "ok" to GETPIN: an empty PIN, for the caller to refuse. */
    assert_int_equal(f->res[1].err, UK_OK);
    assert_int_equal(uk_secret_get0_len(f->res[1].pin), 0);
}

static void test_prompt_oversized_answer_is_unavailable(void **state)
{
    struct fixture *f = *state;
    char script[UK__PROMPT_ANSWER_MAX + 64];
    memset(script, 0, sizeof(script));
    memcpy(script, "pin ", 4);
    memset(script + 4, '7', UK__PROMPT_ANSWER_MAX + 1);
    strcat(script, "\n");
    write_script(f, script);
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], NULL), UK_OK);
    assert_true(run_until(f, one_callback, 10000));
    assert_int_equal(f->res[0].err, UK_E_PROMPT_UNAVAILABLE);
}

static void test_prompt_missing_program_is_unavailable_per_dialog(void **state)
{
    struct fixture *f = *state;
    new_prompt(f, "/nonexistent/pinentry", 0, 0);
    assert_string_equal(uk_prompt_program(f->p), "/nonexistent/pinentry");
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], NULL), UK_OK);
    assert_int_equal(uk_prompt_confirm(f->p, &pin_text, confirm_cb, &f->res[1], NULL), UK_OK);
    assert_int_equal(f->res[0].calls + f->res[1].calls, 0);
    assert_true(run_until(f, two_callbacks, 10000));
    assert_int_equal(f->res[0].err, UK_E_PROMPT_UNAVAILABLE);
    assert_int_equal(f->res[1].err, UK_E_PROMPT_UNAVAILABLE);
    assert_int_equal(f->res[0].order, 1);
    assert_int_equal(f->res[1].order, 2);
}

/* ---- the queue ---------------------------------------------------------------------------- */

static void test_prompt_dialogs_shown_one_at_a_time_in_order(void **state)
{
    struct fixture *f = *state;
    write_script(f, "pin a\npin b\npin c\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    const char *titles[] = {"first", "second", "third"};
    for (int i = 0; i < 3; i++) {
        uk_prompt_text t = pin_text;
        t.title = titles[i];
        assert_int_equal(uk_prompt_get_pin(f->p, &t, pin_cb, &f->res[i], NULL), UK_OK);
    }
    assert_true(run_until(f, three_callbacks, 10000));
    const char *pins[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f->res[i].err, UK_OK);
        assert_int_equal(f->res[i].order, i + 1);
        assert_string_equal((const char *)uk_secret_get0_data(f->res[i].pin), pins[i]);
        char *line = log_line(f, (size_t)i);
        char want[64];
        snprintf(want, sizeof(want), "\"title\":\"%s\"", titles[i]);
        assert_contains(line, want);
        /* Each instance held UK_PINENTRY_EXCLUSIVE alone: no two children were alive at once. */
        assert_contains(line, "\"overlap\":false");
        free(line);
    }
    assert_true(log_pid(f, 0) != log_pid(f, 1) && log_pid(f, 1) != log_pid(f, 2));
}

static void test_prompt_next_waits_while_one_is_shown_then_cancel_shown(void **state)
{
    struct fixture *f = *state;
    write_script(f, "hang\nok\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 30, 0);
    uk_prompt_req *first = NULL;
    assert_int_equal(uk_prompt_confirm(f->p, &pin_text, confirm_cb, &f->res[0], &first), UK_OK);
    assert_int_equal(uk_prompt_confirm(f->p, &pin_text, confirm_cb, &f->res[1], NULL), UK_OK);
    assert_true(run_until(f, one_log_line, 10000));
    /* The first dialog hangs; the second must not appear meanwhile. */
    assert_false(run_until(f, NULL, 300));
    assert_int_equal(log_lines(f), 1);
    assert_int_equal(count_callbacks(f), 0);
    long pid = log_pid(f, 0);

    uk_prompt_cancel(first);
    assert_int_equal(f->res[0].calls, 0); /* from the loop, not from inside cancel */
    uk_prompt_cancel(first);              /* a second call is a no-op */
    assert_true(run_until(f, two_callbacks, 10000));
    assert_int_equal(f->res[0].err, UK_E_CANCELLED);
    assert_int_equal(f->res[0].order, 1);
    assert_int_equal(f->res[1].err, UK_OK);
    assert_reaped(pid); /* the next one started only after the first was reaped */
    char *line = log_line(f, 1);
    assert_contains(line, "\"overlap\":false");
    free(line);
}

static void test_prompt_cancel_queued(void **state)
{
    struct fixture *f = *state;
    write_script(f, "hang\nok\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 30, 0);
    uk_prompt_req *first = NULL, *second = NULL;
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], &first), UK_OK);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[1], &second), UK_OK);
    assert_true(run_until(f, one_log_line, 10000));
    uk_prompt_cancel(second);
    assert_true(run_until(f, one_callback, 10000));
    assert_int_equal(f->res[1].err, UK_E_CANCELLED);
    assert_int_equal(f->res[0].calls, 0); /* the shown one is untouched */
    uk_prompt_cancel(first);
    assert_true(run_until(f, two_callbacks, 10000));
    assert_int_equal(f->res[0].err, UK_E_CANCELLED);
    assert_int_equal(log_lines(f), 1); /* the second was never shown */
}

static void test_prompt_queue_full_is_busy(void **state)
{
    struct fixture *f = *state;
    write_script(f, "hang\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 30, 2);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], NULL), UK_OK);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[1], NULL), UK_OK);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[2], NULL), UK_E_BUSY);
    assert_true(run_until(f, one_log_line, 10000));
    /* Shown + waiting still count. */
    assert_int_equal(uk_prompt_confirm(f->p, &pin_text, confirm_cb, &f->res[2], NULL), UK_E_BUSY);
    free_and_wait(f);
    assert_int_equal(f->res[0].err, UK_E_CANCELLED);
    assert_int_equal(f->res[1].err, UK_E_CANCELLED);
    assert_int_equal(f->res[2].calls, 0);
}

static void test_prompt_free_with_pending_cancels_all(void **state)
{
    struct fixture *f = *state;
    write_script(f, "hang\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 30, 0);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], NULL), UK_OK);
    assert_int_equal(uk_prompt_confirm(f->p, &pin_text, confirm_cb, &f->res[1], NULL), UK_OK);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[2], NULL), UK_OK);
    assert_true(run_until(f, one_log_line, 10000));
    long pid = log_pid(f, 0);
    uk_prompt_free(f->p, free_done, f);
    f->freed = true;
    assert_int_equal(count_callbacks(f), 0); /* from the loop, not from inside free */
    assert_true(run_until(f, freed_done, 10000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f->res[i].calls, 1);
        assert_int_equal(f->res[i].err, UK_E_CANCELLED);
    }
    assert_int_equal(f->done_calls, 1);
    assert_reaped(pid);
    assert_int_equal(log_lines(f), 1);
}

static void test_prompt_free_from_callback(void **state)
{
    struct fixture *f = *state;
    write_script(f, "pin 1\npin 2\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    f->res[0].free_in_cb = true;
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[0], NULL), UK_OK);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, pin_cb, &f->res[1], NULL), UK_OK);
    assert_true(run_until(f, freed_done, 10000));
    assert_int_equal(f->res[0].err, UK_OK);
    assert_int_equal(f->res[1].err, UK_E_CANCELLED);
    assert_int_equal(log_lines(f), 1);
}

static void test_prompt_free_idle(void **state)
{
    struct fixture *f = *state;
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    uk_prompt_free(NULL, free_done, f); /* NULL-safe, no callback */
    assert_int_equal(f->done_calls, 0);
    free_and_wait(f);
}

/* ---- texts -------------------------------------------------------------------------------- */

static void test_prompt_text_too_long_or_invalid_is_refused(void **state)
{
    struct fixture *f = *state;
    write_script(f, "ok\n");
    new_prompt(f, UK_PINENTRY_SCRIPT_PATH, 0, 0);
    char desc[UK__PROMPT_LINE_MAX + 8];
    /* "SETDESC " + 992 bytes = 1000: fits exactly. */
    memset(desc, 'a', UK__PROMPT_LINE_MAX - 8);
    desc[UK__PROMPT_LINE_MAX - 8] = '\0';
    uk_prompt_text t = {.description = desc};
    assert_int_equal(uk_prompt_confirm(f->p, &t, confirm_cb, &f->res[0], NULL), UK_OK);
    /* One more byte does not, and is never truncated. */
    strcat(desc, "a");
    assert_int_equal(uk_prompt_confirm(f->p, &t, confirm_cb, &f->res[1], NULL),
                     UK_E_INVALID_PARAMS);
    /* 400 newlines: 400 bytes, but 1200 once escaped. */
    memset(desc, '\n', 400);
    desc[400] = '\0';
    assert_int_equal(uk_prompt_get_pin(f->p, &t, pin_cb, &f->res[1], NULL), UK_E_INVALID_PARAMS);
    uk_prompt_text bad = {.title = "\xff\xfe"};
    assert_int_equal(uk_prompt_get_pin(f->p, &bad, pin_cb, &f->res[1], NULL), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_prompt_get_pin(f->p, NULL, pin_cb, &f->res[1], NULL), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_prompt_get_pin(f->p, &pin_text, NULL, &f->res[1], NULL),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_prompt_confirm(NULL, &pin_text, confirm_cb, &f->res[1], NULL),
                     UK_E_INVALID_PARAMS);
    assert_true(run_until(f, one_callback, 10000));
    assert_int_equal(f->res[0].err, UK_OK);
    assert_int_equal(f->res[1].calls, 0);
    char *line = log_line(f, 0);
    assert_contains(line, "\"description\":\"aaaa");
    assert_contains(line, "\"title\":null");
    free(line);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as ukeyd does; see uk_prompt.h */
    const struct CMUnitTest tests[] = {
        T(test_prompt_escape_percent_and_controls),
        T(test_prompt_unescape_data),
        T(test_prompt_err_codes_map_to_reasons),
        T(test_prompt_utf8_check),
        T(test_prompt_pick_first_executable),
        T(test_prompt_env_filter),
        T(test_prompt_program_must_be_absolute),
        T(test_prompt_default_program_is_from_the_list),
        T(test_prompt_get_pin_returns_pin),
        T(test_prompt_texts_escaped_and_pin_decoded),
        T(test_prompt_env_passed_is_filtered),
        T(test_prompt_get_pin_cancel_is_consent_denied),
        T(test_prompt_exhausted_script_cancels),
        T(test_prompt_confirm_yes_and_not_confirmed),
        T(test_prompt_pinentry_timeout_is_timeout),
        T(test_prompt_hang_times_out_and_child_is_reaped),
        T(test_prompt_child_dies_is_unavailable),
        T(test_prompt_garbage_and_long_line_are_unavailable),
        T(test_prompt_comments_and_status_lines_are_ignored),
        T(test_prompt_bad_greeting_is_unavailable),
        T(test_prompt_inquire_is_unavailable),
        T(test_prompt_long_pin_over_several_d_lines),
        T(test_prompt_oversized_answer_is_unavailable),
        T(test_prompt_missing_program_is_unavailable_per_dialog),
        T(test_prompt_dialogs_shown_one_at_a_time_in_order),
        T(test_prompt_next_waits_while_one_is_shown_then_cancel_shown),
        T(test_prompt_cancel_queued),
        T(test_prompt_queue_full_is_busy),
        T(test_prompt_free_with_pending_cancels_all),
        T(test_prompt_free_from_callback),
        T(test_prompt_free_idle),
        T(test_prompt_text_too_long_or_invalid_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
