/* The audit log: line format, escaping, rotation, tail across rotated files, modes, failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "uk_audit.h"
#include "uk_err.h"
#include "uk_log.h"

static const char *const members[] = {"time",  "endpoint",    "origin", "method",
                                      "token", "cert_serial", "result", "detail"};
#define N_MEMBERS (sizeof members / sizeof members[0])

static int errors_logged;

static void sink(void *ctx, uk_log_level level, const char *line, size_t len)
{
    (void)ctx;
    (void)line;
    (void)len;
    if (level == UK_LOG_LEVEL_ERR)
        errors_logged++;
}

struct fx {
    char dir[64];
    char path[128];
    uk_audit *a;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/uk-audit-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    /* A directory that does not exist yet: uk_audit_open makes it. */
    snprintf(f->path, sizeof f->path, "%s/state/audit.log", f->dir);
    errors_logged = 0;
    uk_log_set_sink(sink, NULL);
    uk_log_set_level(UK_LOG_LEVEL_DEBUG);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    uk_audit_close(f->a);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    uk_log_set_sink(NULL, NULL);
    free(f);
    return 0;
}

static void open_log(struct fx *f, size_t max_bytes, unsigned keep)
{
    assert_int_equal(uk_audit_open(f->path, max_bytes, keep, &f->a), UK_OK);
}

static void write_entry(struct fx *f, const uk_audit_entry *e)
{
    assert_int_equal(uk_audit_write(f->a, e), UK_OK);
}

/* Reads the whole file at path into a NUL-terminated string. */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* The only line of the log, parsed. */
static cJSON *only_line(struct fx *f)
{
    char *text = slurp(f->path);
    assert_non_null(text);
    size_t len = strlen(text);
    assert_true(len > 0);
    assert_int_equal(text[len - 1], '\n');
    assert_true(strchr(text, '\n') == text + len - 1); /* exactly one line */
    cJSON *obj = cJSON_ParseWithLength(text, len - 1);
    free(text);
    assert_true(cJSON_IsObject(obj));
    return obj;
}

static void assert_exact_members(const cJSON *obj)
{
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        assert_true(i < N_MEMBERS);
        assert_string_equal(m->string, members[i]);
        i++;
    }
    assert_int_equal(i, N_MEMBERS);
}

static const char *str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static void test_audit_line_has_exactly_the_documented_members(void **state)
{
    struct fx *f = *state;
    open_log(f, 1 << 20, 5);
    uk_audit_entry e = {.endpoint = "wss",
                        .origin = "https://portal.example.cn",
                        .method = "cert.sign",
                        .token = "piv:12345678",
                        .cert_serial = "1a2b3c",
                        .result = "OK",
                        .detail = "slot 9a"};
    write_entry(f, &e);
    cJSON *obj = only_line(f);
    /* Nothing else - no pin, no data - can appear: there is no field to carry it. */
    assert_exact_members(obj);
    const char *t = str(obj, "time");
    assert_int_equal(strlen(t), 24); /* 2026-11-24T03:20:31.123Z */
    assert_int_equal(t[10], 'T');
    assert_int_equal(t[19], '.');
    assert_int_equal(t[23], 'Z');
    assert_string_equal(str(obj, "endpoint"), "wss");
    assert_string_equal(str(obj, "origin"), "https://portal.example.cn");
    assert_string_equal(str(obj, "method"), "cert.sign");
    assert_string_equal(str(obj, "token"), "piv:12345678");
    assert_string_equal(str(obj, "cert_serial"), "1a2b3c");
    assert_string_equal(str(obj, "result"), "OK");
    assert_string_equal(str(obj, "detail"), "slot 9a");
    cJSON_Delete(obj);
}

static void test_audit_absent_members_are_null(void **state)
{
    struct fx *f = *state;
    open_log(f, 1 << 20, 5);
    uk_audit_entry e = {.endpoint = "unix", .method = "origins.list", .result = "OK"};
    write_entry(f, &e);
    cJSON *obj = only_line(f);
    assert_exact_members(obj);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(obj, "origin")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(obj, "token")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(obj, "cert_serial")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(obj, "detail")));
    cJSON_Delete(obj);
}

static void test_audit_escapes_quotes_newlines_and_controls(void **state)
{
    struct fx *f = *state;
    open_log(f, 1 << 20, 5);
    uk_audit_entry e = {.endpoint = "wss",
                        .origin = "https://a.cn\"},{\"forged\":1",
                        .method = "x\ny\r\tz\\",
                        .result = "\x01\x1f\x7f",
                        .detail = "证书 9a"};
    write_entry(f, &e);
    cJSON *obj = only_line(f); /* one line: the newline in a value did not split it */
    assert_exact_members(obj);
    assert_string_equal(str(obj, "origin"), "https://a.cn\"},{\"forged\":1");
    assert_string_equal(str(obj, "method"), "x\ny\r\tz\\");
    assert_string_equal(str(obj, "result"), "\x01\x1f\x7f");
    assert_string_equal(str(obj, "detail"), "证书 9a"); /* valid UTF-8 is kept */
    cJSON_Delete(obj);
}

static void test_audit_invalid_utf8_is_replaced(void **state)
{
    struct fx *f = *state;
    open_log(f, 1 << 20, 5);
    uk_audit_entry e = {
        .endpoint = "wss",
        .origin = "a\xff"
                  "b",                    /* never valid */
        .method = "\xc0\xaf",             /* overlong '/' */
        .token = "\xed\xa0\x80",          /* a surrogate */
        .cert_serial = "\xe4\xb8",        /* truncated sequence at the end */
        .result = "\xf4\x90\x80\x80",     /* above U+10FFFF */
        .detail = "ok \xf0\x9f\x94\x91!", /* a valid 4-byte character */
    };
    write_entry(f, &e);
    char *text = slurp(f->path);
    /* No raw invalid byte reaches the file. */
    assert_null(strchr(text, '\xff'));
    assert_null(strstr(text, "\xc0\xaf"));
    free(text);
    cJSON *obj = only_line(f);
    assert_string_equal(str(obj, "origin"), "a\xef\xbf\xbd"
                                            "b");
    assert_string_equal(str(obj, "method"), "\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(str(obj, "token"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(str(obj, "cert_serial"), "\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(str(obj, "detail"), "ok \xf0\x9f\x94\x91!");
    cJSON_Delete(obj);
}

static void test_audit_long_values_are_capped_on_a_character_boundary(void **state)
{
    struct fx *f = *state;
    open_log(f, 1 << 20, 5);
    char longer[1000];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    char cjk[600] = "";
    for (int i = 0; i < 150; i++)
        strcat(cjk, "中"); /* 3 bytes each: 450 bytes */
    uk_audit_entry e = {.endpoint = "wss", .method = longer, .detail = cjk, .result = "OK"};
    write_entry(f, &e);
    cJSON *obj = only_line(f);
    assert_int_equal(strlen(str(obj, "method")), UK_AUDIT_FIELD_MAX);
    const char *d = str(obj, "detail");
    assert_int_equal(strlen(d), 255); /* 85 whole characters; the 86th would pass 256 */
    assert_memory_equal(d, cjk, 255);
    cJSON_Delete(obj);
}

static void test_audit_files_are_private(void **state)
{
    struct fx *f = *state;
    open_log(f, 1 << 20, 5);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/state", f->dir);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* An existing file with a wider mode is narrowed. */
    uk_audit_close(f->a);
    f->a = NULL;
    assert_int_equal(chmod(f->path, 0644), 0);
    open_log(f, 1 << 20, 5);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void write_numbered(struct fx *f, int from, int to)
{
    for (int i = from; i < to; i++) {
        char detail[32];
        snprintf(detail, sizeof detail, "n=%d", i);
        uk_audit_entry e = {.endpoint = "native-messaging",
                            .origin = "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
                            .method = "cert.list",
                            .result = "OK",
                            .detail = detail};
        write_entry(f, &e);
    }
}

static int detail_number(const char *line)
{
    cJSON *obj = cJSON_Parse(line);
    assert_non_null(obj);
    int n = -1;
    assert_int_equal(sscanf(str(obj, "detail"), "n=%d", &n), 1);
    cJSON_Delete(obj);
    return n;
}

static void test_audit_rotates_at_the_size_and_keeps_keep_files(void **state)
{
    struct fx *f = *state;
    open_log(f, 4096, 2);
    write_numbered(f, 0, 200); /* ~200 bytes a line: about 40 KiB, ten files' worth */
    char name[160];
    struct stat st;
    for (int i = 0; i <= 2; i++) {
        if (i == 0)
            snprintf(name, sizeof name, "%s", f->path);
        else
            snprintf(name, sizeof name, "%s.%d", f->path, i);
        assert_int_equal(stat(name, &st), 0);
        assert_true(st.st_size <= 4096);
        if (i > 0) /* rotated only when the next line did not fit */
            assert_true(st.st_size > 4096 - 400);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
    snprintf(name, sizeof name, "%s.3", f->path);
    assert_int_not_equal(stat(name, &st), 0); /* the oldest was dropped */
    /* The newest line is the last of the current file. */
    char **lines = NULL;
    size_t n = 0;
    assert_int_equal(uk_audit_tail(f->a, 1, &lines, &n), UK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(detail_number(lines[0]), 199);
    uk_audit_lines_free(lines, n);
}

static void test_audit_tail_spans_rotated_files_oldest_first(void **state)
{
    struct fx *f = *state;
    open_log(f, 4096, 3);
    write_numbered(f, 0, 100);
    char **lines = NULL;
    size_t n = 0;
    /* More than the current file holds: the rest comes from audit.log.1 and .2. */
    assert_int_equal(uk_audit_tail(f->a, 50, &lines, &n), UK_OK);
    assert_int_equal(n, 50);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(detail_number(lines[i]), 50 + (int)i);
    uk_audit_lines_free(lines, n);
    /* Asking for everything gives what the kept files hold, contiguous up to the newest. */
    assert_int_equal(uk_audit_tail(f->a, 100000, &lines, &n), UK_OK);
    assert_true(n > 50 && n < 100);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(detail_number(lines[i]), 100 - (int)n + (int)i);
    uk_audit_lines_free(lines, n);
    assert_int_equal(uk_audit_tail(f->a, 0, &lines, &n), UK_OK);
    assert_int_equal(n, 0);
    assert_null(lines);
}

static void test_audit_tail_of_empty_log_and_torn_lines(void **state)
{
    struct fx *f = *state;
    open_log(f, 1 << 20, 2);
    char **lines = NULL;
    size_t n = 7;
    assert_int_equal(uk_audit_tail(f->a, 10, &lines, &n), UK_OK);
    assert_int_equal(n, 0);
    assert_null(lines);
    write_numbered(f, 0, 2);
    /* A torn line (a crash mid-write) and an empty line, then more entries. */
    FILE *fp = fopen(f->path, "a");
    assert_non_null(fp);
    fputs("{\"time\":\"2026-\n\n", fp);
    fclose(fp);
    write_numbered(f, 2, 4);
    assert_int_equal(uk_audit_tail(f->a, 10, &lines, &n), UK_OK);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(detail_number(lines[i]), (int)i);
    uk_audit_lines_free(lines, n);
}

static void test_audit_tail_reads_across_chunks(void **state)
{
    struct fx *f = *state;
    open_log(f, 1 << 20, 1);
    write_numbered(f, 0, 1000); /* ~200 KiB: several 64 KiB chunks, lines cut across them */
    char **lines = NULL;
    size_t n = 0;
    assert_int_equal(uk_audit_tail(f->a, 1000, &lines, &n), UK_OK);
    assert_int_equal(n, 1000);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(detail_number(lines[i]), (int)i);
    uk_audit_lines_free(lines, n);
}

static void test_audit_reopens_a_log_moved_away(void **state)
{
    struct fx *f = *state;
    open_log(f, 1 << 20, 2);
    write_numbered(f, 0, 1);
    assert_int_equal(unlink(f->path), 0); /* e.g. logrotate without copytruncate */
    write_numbered(f, 1, 2);
    char **lines = NULL;
    size_t n = 0;
    assert_int_equal(uk_audit_tail(f->a, 10, &lines, &n), UK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(detail_number(lines[0]), 1);
    uk_audit_lines_free(lines, n);
}

static void test_audit_write_failure_is_io_and_logged_once(void **state)
{
    (void)state;
    uk_audit *a = NULL;
    /* Every write to /dev/full fails with ENOSPC. */
    assert_int_equal(uk_audit_open("/dev/full", 4096, 1, &a), UK_OK);
    uk_audit_entry e = {.endpoint = "unix", .method = "m", .result = "OK"};
    errors_logged = 0;
    assert_int_equal(uk_audit_write(a, &e), UK_E_IO);
    assert_int_equal(uk_audit_write(a, &e), UK_E_IO);
    assert_int_equal(uk_audit_write(a, &e), UK_E_IO);
    assert_int_equal(errors_logged, 1);
    uk_audit_close(a);
}

static void test_audit_rejects_bad_arguments(void **state)
{
    struct fx *f = *state;
    uk_audit *a = NULL;
    assert_int_equal(uk_audit_open(f->path, 4095, 1, &a), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_audit_open(f->path, 4096, 0, &a), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_audit_open(f->path, 4096, 21, &a), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_audit_open(NULL, 4096, 1, &a), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_audit_open("", 4096, 1, &a), UK_E_INVALID_PARAMS);
    assert_null(a);
    assert_int_equal(uk_audit_open("/proc/no-such/audit.log", 4096, 1, &a), UK_E_IO);
    open_log(f, 4096, 1);
    assert_int_equal(uk_audit_write(f->a, NULL), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_audit_write(NULL, &(uk_audit_entry){0}), UK_E_INVALID_PARAMS);
    char **lines;
    size_t n;
    assert_int_equal(uk_audit_tail(NULL, 1, &lines, &n), UK_E_INVALID_PARAMS);
    uk_audit_close(NULL);
    uk_audit_lines_free(NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_audit_line_has_exactly_the_documented_members, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_audit_absent_members_are_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_escapes_quotes_newlines_and_controls, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_audit_invalid_utf8_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_long_values_are_capped_on_a_character_boundary,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_files_are_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_rotates_at_the_size_and_keeps_keep_files, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_audit_tail_spans_rotated_files_oldest_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_audit_tail_of_empty_log_and_torn_lines, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_audit_tail_reads_across_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_reopens_a_log_moved_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_write_failure_is_io_and_logged_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_audit_rejects_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
