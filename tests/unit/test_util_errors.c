/* The error table: every row complete, unique and in range; lookups for the wire. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "uk_err.h"

/* True if s is well-formed UTF-8 (no overlongs, surrogates or values above U+10FFFF). */
static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != 0) {
        unsigned c = *p;
        size_t n;
        unsigned min;
        unsigned cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1, min = 0x80, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, min = 0x800, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

/* True if s contains a CJK ideograph (U+4E00..U+9FFF), i.e. the zh-CN text is really Chinese. */
static bool has_cjk(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (; *p != 0; p++) {
        if ((*p & 0xf0) == 0xe0 && p[1] != 0 && p[2] != 0) {
            unsigned cp =
                (unsigned)(p[0] & 0x0f) << 12 | (unsigned)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
            if (cp >= 0x4e00 && cp <= 0x9fff)
                return true;
        }
    }
    return false;
}

static bool is_standard(int err)
{
    return err == UK_E_PARSE_ERROR || err == UK_E_INVALID_REQUEST || err == UK_E_METHOD_NOT_FOUND ||
           err == UK_E_INVALID_PARAMS || err == UK_E_INTERNAL;
}

static void test_errors_every_row_has_name_messages_and_code(void **state)
{
    (void)state;
    assert_true(uk_err_count() >= 45);
    for (size_t i = 0; i < uk_err_count(); i++) {
        int e = uk_err_at(i);
        const char *name = uk_err_name(e);
        assert_true(e < 0);
        assert_true(uk_err_known(e));
        assert_string_not_equal(name, "UNKNOWN");
        for (const char *c = name; *c != '\0'; c++)
            assert_true((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_');
        const char *en = uk_err_message(e, "en");
        const char *zh = uk_err_message(e, "zh-CN");
        assert_true(strlen(en) > 10);
        assert_true(strlen(zh) > 3);
        assert_string_not_equal(en, zh);
        assert_true(utf8_valid(en));
        assert_true(utf8_valid(zh));
        assert_true(has_cjk(zh));
        /* English text is ASCII: the zh-CN column must not have been pasted into it. */
        for (const char *c = en; *c != '\0'; c++)
            assert_true((unsigned char)*c < 0x80);
    }
}

static void test_errors_messages_keep_generated_markdown_intact(void **state)
{
    (void)state;
    for (size_t i = 0; i < uk_err_count(); i++) {
        int e = uk_err_at(i);
        const char *texts[] = {uk_err_message(e, "en"), uk_err_message(e, "zh-CN")};
        for (size_t t = 0; t < 2; t++) {
            assert_null(strchr(texts[t], '"'));
            assert_null(strchr(texts[t], '|'));
            assert_null(strchr(texts[t], '\n'));
        }
    }
}

static void test_errors_names_and_values_are_unique(void **state)
{
    (void)state;
    size_t n = uk_err_count();
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            assert_int_not_equal(uk_err_at(i), uk_err_at(j));
            assert_string_not_equal(uk_err_name(uk_err_at(i)), uk_err_name(uk_err_at(j)));
        }
    }
}

static void test_errors_app_reasons_use_server_error_range(void **state)
{
    (void)state;
    for (size_t i = 0; i < uk_err_count(); i++) {
        int e = uk_err_at(i);
        int code = uk_err_rpc_code(e);
        if (is_standard(e))
            continue;
        assert_true(code >= UK_RPC_CODE_APP_MIN && code <= UK_RPC_CODE_APP_MAX);
    }
    assert_int_equal(uk_err_rpc_code(UK_E_PARSE_ERROR), -32700);
    assert_int_equal(uk_err_rpc_code(UK_E_INVALID_REQUEST), -32600);
    assert_int_equal(uk_err_rpc_code(UK_E_METHOD_NOT_FOUND), -32601);
    assert_int_equal(uk_err_rpc_code(UK_E_INVALID_PARAMS), -32602);
    assert_int_equal(uk_err_rpc_code(UK_E_INTERNAL), -32603);
}

static void test_errors_reasons_needed_by_the_issues_exist(void **state)
{
    (void)state;
    static const char *const needed[] = {
        "PARSE_ERROR",
        "INVALID_REQUEST",
        "METHOD_NOT_FOUND",
        "INVALID_PARAMS",
        "INTERNAL",
        "ORIGIN_NOT_ALLOWED",
        "HOST_NOT_ALLOWED",
        "LIMIT_EXCEEDED",
        "RATE_LIMITED",
        "NOT_PAIRED",
        "CONSENT_DENIED",
        "PIN_FROM_PAGE_DISABLED",
        "NO_MEMORY",
        "IO",
        "NOT_FOUND",
        "NOT_SUPPORTED",
        "BUSY",
        "TIMEOUT",
        "CANCELLED",
        "NO_SERVICE",
        "NO_READER",
        "NO_TOKEN",
        "CARD_REMOVED",
        "CARD_BUSY",
        "CARD_RESET",
        "CARD_ERROR",
        "PIN_INCORRECT",
        "PIN_LOCKED",
        "PIN_REQUIRED",
        "PIN_INVALID",
        "SECURITY_STATUS",
        "AUTH_FAILED",
        "KEY_NOT_FOUND",
        "CERT_NOT_FOUND",
        "CERT_INVALID",
        "CERT_KEY_MISMATCH",
        "CERT_EXPIRED",
        "NOT_YET_VALID",
        "CHAIN_INVALID",
        "RENEWAL_IN_PROGRESS",
        "RENEWAL_NOT_FOUND",
        "RENEWAL_STATE",
        "NO_STAGING_SLOT",
        "VERSION_TOO_OLD",
        "CONFIG_INVALID",
        "TLS_ERROR",
    };
    for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
        int e = 0;
        if (!uk_err_from_name(needed[i], &e))
            fail_msg("reason %s is missing from errors.def", needed[i]);
        assert_string_equal(uk_err_name(e), needed[i]);
    }
}

static void test_errors_ok_and_unknown_codes_fall_back_safely(void **state)
{
    (void)state;
    assert_string_equal(uk_err_name(UK_OK), "OK");
    assert_string_equal(uk_err_name(-99999), "UNKNOWN");
    assert_string_equal(uk_err_name(42), "UNKNOWN");
    assert_false(uk_err_known(-99999));
    assert_false(uk_err_retriable(-99999));
    assert_int_equal(uk_err_rpc_code(-99999), -32603);
    assert_int_equal(uk_err_rpc_code(UK_OK), -32603);
    assert_string_equal(uk_err_message(-99999, "en"), uk_err_message(UK_E_INTERNAL, "en"));
    assert_int_equal(uk_err_at(uk_err_count()), UK_OK);
    int e = 7;
    assert_false(uk_err_from_name("NO_SUCH_REASON", &e));
    assert_false(uk_err_from_name(NULL, &e));
    assert_int_equal(e, 7);
}

static void test_errors_message_language_falls_back_to_english(void **state)
{
    (void)state;
    const char *en = uk_err_message(UK_E_NOT_YET_VALID, "en");
    const char *zh = uk_err_message(UK_E_NOT_YET_VALID, "zh-CN");
    assert_string_equal(zh, "证书尚未生效。");
    assert_string_equal(uk_err_message(UK_E_NOT_YET_VALID, "zh"), zh);
    assert_string_equal(uk_err_message(UK_E_NOT_YET_VALID, "zh_cn"), zh);
    assert_string_equal(uk_err_message(UK_E_NOT_YET_VALID, NULL), en);
    assert_string_equal(uk_err_message(UK_E_NOT_YET_VALID, "fr"), en);
    assert_string_equal(uk_err_message(UK_E_NOT_YET_VALID, ""), en);
}

static void test_errors_retriable_says_what_the_caller_can_do(void **state)
{
    (void)state;
    assert_true(uk_err_retriable(UK_E_CARD_REMOVED));
    assert_true(uk_err_retriable(UK_E_CARD_BUSY));
    assert_true(uk_err_retriable(UK_E_PIN_INCORRECT));
    assert_true(uk_err_retriable(UK_E_RATE_LIMITED));
    assert_true(uk_err_retriable(UK_E_CANCELLED));
    assert_false(uk_err_retriable(UK_E_PIN_LOCKED));
    assert_false(uk_err_retriable(UK_E_ORIGIN_NOT_ALLOWED));
    assert_false(uk_err_retriable(UK_E_PARSE_ERROR));
    assert_false(uk_err_retriable(UK_E_LIMIT_EXCEEDED));
    assert_false(uk_err_retriable(UK_E_NOT_YET_VALID));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_every_row_has_name_messages_and_code),
        cmocka_unit_test(test_errors_messages_keep_generated_markdown_intact),
        cmocka_unit_test(test_errors_names_and_values_are_unique),
        cmocka_unit_test(test_errors_app_reasons_use_server_error_range),
        cmocka_unit_test(test_errors_reasons_needed_by_the_issues_exist),
        cmocka_unit_test(test_errors_ok_and_unknown_codes_fall_back_safely),
        cmocka_unit_test(test_errors_message_language_falls_back_to_english),
        cmocka_unit_test(test_errors_retriable_says_what_the_caller_can_do),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
