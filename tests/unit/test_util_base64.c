/* Strict base64: RFC 4648 vectors, exactly one accepted text per byte string. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "uk_base64.h"
#include "uk_err.h"

static const struct {
    const char *plain;
    const char *coded;
} rfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void test_base64_encodes_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        char *s = NULL;
        size_t n = 0;
        assert_int_equal(
            uk_base64_encode((const uint8_t *)rfc4648[i].plain, strlen(rfc4648[i].plain), &s, &n),
            UK_OK);
        assert_string_equal(s, rfc4648[i].coded);
        assert_int_equal(n, strlen(rfc4648[i].coded));
        assert_int_equal(uk_base64_encoded_len(strlen(rfc4648[i].plain)), n);
        free(s);
    }
}

static void test_base64_decodes_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        uint8_t *b = NULL;
        size_t n = 99;
        assert_int_equal(uk_base64_decode(rfc4648[i].coded, strlen(rfc4648[i].coded), &b, &n),
                         UK_OK);
        assert_non_null(b);
        assert_int_equal(n, strlen(rfc4648[i].plain));
        assert_memory_equal(b, rfc4648[i].plain, n);
        free(b);
    }
}

static void test_base64_rejects_non_canonical_text(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg",       /* missing padding */
        "Zg=",      /* short padding */
        "Zh==",     /* non-zero unused bits */
        "Zm9=",     /* non-zero unused bits with one '=' */
        "Zm9v\n",   /* whitespace */
        "Zm9v ",    /* whitespace */
        " Zm9v",    /* whitespace */
        "Zm-v",     /* URL-safe alphabet */
        "Zm_v",     /* URL-safe alphabet */
        "Zg==Zg==", /* padding in the middle */
        "=Zm9",     /* padding first */
        "Z===",     /* too much padding */
        "====",     /* only padding */
        "Zm9v====", /* a block of padding */
        "Zm9vY",    /* length not a multiple of 4 */
        "Zm\x80v",  /* not ASCII */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        static uint8_t sentinel[] = "untouched";
        uint8_t *b = sentinel;
        size_t n = 77;
        if (uk_base64_decode(bad[i], strlen(bad[i]), &b, &n) != UK_E_INVALID_PARAMS)
            fail_msg("accepted non-canonical base64 #%zu", i);
        assert_string_equal((const char *)b, "untouched");
        assert_int_equal(n, 77);
    }
}

static void test_base64_rejects_embedded_nul(void **state)
{
    (void)state;
    uint8_t *b = NULL;
    size_t n = 0;
    assert_int_equal(uk_base64_decode("Zm\0v", 4, &b, &n), UK_E_INVALID_PARAMS);
}

static void test_base64_round_trips_every_length(void **state)
{
    (void)state;
    uint8_t src[300];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 131u + 7u);
    for (size_t len = 0; len <= sizeof(src); len++) {
        char *s = NULL;
        size_t sn = 0;
        uint8_t *b = NULL;
        size_t bn = 0;
        assert_int_equal(uk_base64_encode(src, len, &s, &sn), UK_OK);
        assert_int_equal(uk_base64_decode(s, sn, &b, &bn), UK_OK);
        assert_int_equal(bn, len);
        assert_memory_equal(b, src, len);
        free(s);
        free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_encodes_rfc4648_vectors),
        cmocka_unit_test(test_base64_decodes_rfc4648_vectors),
        cmocka_unit_test(test_base64_rejects_non_canonical_text),
        cmocka_unit_test(test_base64_rejects_embedded_nul),
        cmocka_unit_test(test_base64_round_trips_every_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
