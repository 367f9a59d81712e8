/* Logging: threshold, one line per event whatever the message holds, journald and plain formats. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "uk_limits.h"
#include "uk_log.h"

struct captured {
    int count;
    uk_log_level level;
    char line[UK_LIMIT_LOG_LINE + 8];
    size_t len;
};

static void capture(void *ctx, uk_log_level level, const char *line, size_t len)
{
    struct captured *c = ctx;
    c->count++;
    c->level = level;
    assert_true(len < sizeof(c->line));
    assert_int_equal(strlen(line), len);
    memcpy(c->line, line, len + 1);
    c->len = len;
}

static int setup(void **state)
{
    struct captured *c = calloc(1, sizeof(*c));
    uk_log_set_sink(capture, c);
    uk_log_set_level(UK_LOG_LEVEL_INFO);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    uk_log_set_sink(NULL, NULL);
    uk_log_set_format(UK_LOG_FORMAT_AUTO);
    uk_log_set_level(UK_LOG_LEVEL_INFO);
    free(*state);
    return 0;
}

static void test_log_threshold_drops_less_important_lines(void **state)
{
    struct captured *c = *state;
    uk_log_set_level(UK_LOG_LEVEL_WARNING);
    uk_log(UK_LOG_LEVEL_INFO, "hidden %d", 1);
    UK_LOG_DEBUG("hidden too");
    assert_int_equal(c->count, 0);
    uk_log(UK_LOG_LEVEL_WARNING, "shown %d", 2);
    uk_log(UK_LOG_LEVEL_ERR, "shown %d", 3);
    assert_int_equal(c->count, 2);
    assert_int_equal(c->level, UK_LOG_LEVEL_ERR);
    assert_string_equal(c->line, "shown 3");
    assert_true(uk_log_enabled(UK_LOG_LEVEL_ERR));
    assert_false(uk_log_enabled(UK_LOG_LEVEL_NOTICE));
}

static void test_log_macro_adds_file_line_and_function(void **state)
{
    struct captured *c = *state;
    int line = __LINE__ + 1;
    UK_LOG_ERR("card said %s", "no");
    char want[128];
    snprintf(want, sizeof(want), "card said no (test_util_log.c:%d %s)", line, __func__);
    assert_string_equal(c->line, want);
}

static void test_log_escapes_control_characters_to_keep_one_line(void **state)
{
    struct captured *c = *state;
    uk_log(UK_LOG_LEVEL_WARNING, "origin %s refused", "https://a.example\n<3>forged\tx\x1b[0m");
    assert_string_equal(c->line, "origin https://a.example\\n<3>forged\\tx\\x1b[0m refused");
    assert_null(strchr(c->line, '\n'));
}

static void test_log_keeps_utf8_text(void **state)
{
    struct captured *c = *state;
    uk_log(UK_LOG_LEVEL_INFO, "证书尚未生效");
    assert_string_equal(c->line, "证书尚未生效");
}

static void test_log_marks_truncated_lines(void **state)
{
    struct captured *c = *state;
    char *big = malloc(3 * UK_LIMIT_LOG_LINE);
    memset(big, 'a', 3 * UK_LIMIT_LOG_LINE - 1);
    big[3 * UK_LIMIT_LOG_LINE - 1] = '\0';
    UK_LOG_WARN("%s", big);
    free(big);
    assert_true(c->len < UK_LIMIT_LOG_LINE);
    assert_true(c->len > UK_LIMIT_LOG_LINE - 16);
    assert_string_equal(c->line + c->len - 3, "...");
}

static void test_log_level_names_parse(void **state)
{
    (void)state;
    uk_log_level l = UK_LOG_LEVEL_INFO;
    assert_true(uk_log_level_from_name("DEBUG", &l));
    assert_int_equal(l, UK_LOG_LEVEL_DEBUG);
    assert_true(uk_log_level_from_name("warn", &l));
    assert_int_equal(l, UK_LOG_LEVEL_WARNING);
    assert_true(uk_log_level_from_name("error", &l));
    assert_int_equal(l, UK_LOG_LEVEL_ERR);
    assert_false(uk_log_level_from_name("loud", &l));
    assert_false(uk_log_level_from_name(NULL, &l));
    assert_int_equal(l, UK_LOG_LEVEL_ERR);
}

/* Run fn with stderr pointed at a temporary file; return what it wrote (caller frees). */
static char *stderr_of(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    fn();
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    fseek(tmp, 0, SEEK_END);
    long n = ftell(tmp);
    rewind(tmp);
    char *out = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(out, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return out;
}

static void log_two_lines(void)
{
    uk_log(UK_LOG_LEVEL_WARNING, "first");
    uk_log(UK_LOG_LEVEL_ERR, "second %d", 2);
}

static void test_log_journal_format_prefixes_priority(void **state)
{
    (void)state;
    uk_log_set_sink(NULL, NULL);
    uk_log_set_format(UK_LOG_FORMAT_JOURNAL);
    char *out = stderr_of(log_two_lines);
    assert_string_equal(out, "<4>first\n<3>second 2\n");
    free(out);
}

static void test_log_plain_format_has_time_ident_and_level(void **state)
{
    (void)state;
    uk_log_set_sink(NULL, NULL);
    uk_log_set_format(UK_LOG_FORMAT_PLAIN);
    uk_log_set_ident("ukeyd-test");
    char *out = stderr_of(log_two_lines);
    uk_log_set_ident(NULL);
    /* 2026-11-24T08:00:00.123Z ukeyd-test[PID] warning: first */
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_int_equal(out[4], '-');
    assert_int_equal(out[10], 'T');
    assert_int_equal(out[23], 'Z');
    char want[64];
    snprintf(want, sizeof(want), " ukeyd-test[%ld] warning: first\n", (long)getpid());
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), " ukeyd-test[%ld] err: second 2\n", (long)getpid());
    assert_non_null(strstr(nl + 1, want));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_threshold_drops_less_important_lines, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_macro_adds_file_line_and_function, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_escapes_control_characters_to_keep_one_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_keeps_utf8_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_marks_truncated_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_level_names_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_journal_format_prefixes_priority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_plain_format_has_time_ident_and_level, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
