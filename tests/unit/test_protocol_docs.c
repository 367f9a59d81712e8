/* docs/protocol.md lists every reason of errors.def, with its code, flag and both messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "uk_err.h"

#ifndef UK_PROTOCOL_MD
#error "UK_PROTOCOL_MD must name docs/protocol.md"
#endif

#define BEGIN "<!-- reasons:begin"
#define END   "<!-- reasons:end -->"

static char *read_doc(void)
{
    FILE *f = fopen(UK_PROTOCOL_MD, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", UK_PROTOCOL_MD);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The row exactly as protocol/gen-reasons-md.sh writes it. */
static void row_of(int err, char *out, size_t cap)
{
    snprintf(out, cap, "\n| `%s` | %d | %s | %s | %s |\n", uk_err_name(err), uk_err_rpc_code(err),
             uk_err_retriable(err) ? "yes" : "no", uk_err_message(err, "en"),
             uk_err_message(err, "zh-CN"));
}

static void test_docs_list_every_reason_as_generated(void **state)
{
    (void)state;
    char *doc = read_doc();
    char *begin = strstr(doc, BEGIN);
    char *end = strstr(doc, END);
    assert_non_null(begin);
    assert_non_null(end);
    assert_true(begin < end);
    *end = '\0'; /* search the generated section only */
    for (size_t i = 0; i < uk_err_count(); i++) {
        char row[1024];
        row_of(uk_err_at(i), row, sizeof(row));
        if (strstr(begin, row) == NULL)
            fail_msg("docs/protocol.md lacks or has a stale row for %s; run "
                     "protocol/gen-reasons-md.sh",
                     uk_err_name(uk_err_at(i)));
    }
    free(doc);
}

static void test_docs_list_no_reason_that_does_not_exist(void **state)
{
    (void)state;
    char *doc = read_doc();
    char *p = strstr(doc, BEGIN);
    char *end = strstr(doc, END);
    assert_non_null(p);
    assert_non_null(end);
    size_t rows = 0;
    while ((p = strstr(p, "\n| `")) != NULL && p < end) {
        p += 4;
        char name[64];
        size_t n = strcspn(p, "`");
        assert_true(n < sizeof(name));
        memcpy(name, p, n);
        name[n] = '\0';
        int e;
        if (!uk_err_from_name(name, &e))
            fail_msg("docs/protocol.md lists %s, which errors.def does not have", name);
        rows++;
    }
    assert_int_equal(rows, uk_err_count());
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docs_list_every_reason_as_generated),
        cmocka_unit_test(test_docs_list_no_reason_that_does_not_exist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
