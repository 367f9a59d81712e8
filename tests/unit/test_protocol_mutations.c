/*
 * Randomly mutated messages: every one is either parsed or refused with a well-formed error
 * response, never a crash, leak or undefined behaviour (this test runs under ASan + UBSan in the
 * asan-ubsan preset). Deterministic: the seed is printed and can be set with UK_TEST_SEED.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "uk_jsonrpc.h"
#include "uk_limits.h"

#define MUTANTS 2000
#define MAX_LEN 4096

static const char *const seeds[] = {
    "{\"jsonrpc\":\"2.0\",\"method\":\"system.hello\",\"id\":1}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"cert.list\",\"params\":{\"token\":\"piv:0001\"},\"id\":"
    "\"a\"}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"sign\",\"params\":{\"token\":\"t\",\"slot\":154,"
    "\"digest\":\"3q2+7w==\",\"algorithm\":\"ecdsa-sha256\",\"pin\":\"123456\"},\"id\":42}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"token.removed\",\"params\":{\"reader\":\"Virtual PCD 00 "
    "00\"}}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"renewal.prepare\",\"params\":{\"subject\":\"CN=张三,O="
    "测试\","
    "\"e\":\"\\ud83d\\ude00\\u00e9\\n\\t\\\"\\\\\\/\",\"n\":[1,-2.5e3,0,true,false,null,{}]},"
    "\"id\":9007199254740991}",
    "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"certs\":[{\"serial\":\"01ab\",\"days_left\":20}]}"
    "}",
    "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"x\","
    "\"data\":{\"reason\":\"PARSE_ERROR\",\"retriable\":false}}}",
    "[{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1},{\"jsonrpc\":\"2.0\",\"method\":\"n\"}]",
    "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"params\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}",
};
#define SEED_COUNT (sizeof(seeds) / sizeof(seeds[0]))

static const uint8_t interesting[] = {'{',  '}',  '[',  ']',  '"',  '\\', ':',  ',',  '0',  '-',
                                      'e',  '.',  'u',  ' ',  'n',  't',  0x00, 0x1f, 0x7f, 0x80,
                                      0xbf, 0xc0, 0xc3, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff};

static uint64_t rng;

static uint64_t next(void)
{
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dULL;
}

static size_t below(size_t n)
{
    return n == 0 ? 0 : (size_t)(next() % n);
}

static size_t mutate(uint8_t *buf, size_t len)
{
    int rounds = 1 + (int)below(4);
    for (int r = 0; r < rounds; r++) {
        switch (below(8)) {
        case 0: /* flip a bit */
            if (len > 0)
                buf[below(len)] ^= (uint8_t)(1u << below(8));
            break;
        case 1: /* replace with an interesting byte */
            if (len > 0)
                buf[below(len)] = interesting[below(sizeof(interesting))];
            break;
        case 2: /* insert */
            if (len < MAX_LEN) {
                size_t at = below(len + 1);
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = below(2) ? interesting[below(sizeof(interesting))] : (uint8_t)next();
                len++;
            }
            break;
        case 3: /* delete a range */
            if (len > 0) {
                size_t at = below(len);
                size_t n = 1 + below(len - at < 8 ? len - at : 8);
                memmove(buf + at, buf + at + n, len - at - n);
                len -= n;
            }
            break;
        case 4: /* duplicate a range */
            if (len > 0) {
                size_t at = below(len);
                size_t n = 1 + below(len - at < 32 ? len - at : 32);
                if (len + n <= MAX_LEN) {
                    memmove(buf + at + n, buf + at, len - at);
                    len += n;
                }
            }
            break;
        case 5: /* truncate */
            len = below(len + 1);
            break;
        case 6: { /* splice the tail of another seed */
            const char *other = seeds[below(SEED_COUNT)];
            size_t olen = strlen(other);
            size_t from = below(olen);
            size_t at = below(len + 1);
            size_t n = olen - from;
            if (at + n > MAX_LEN)
                n = MAX_LEN - at;
            memcpy(buf + at, other + from, n);
            len = at + n;
            break;
        }
        default: /* swap two bytes */
            if (len > 1) {
                size_t a = below(len), b = below(len);
                uint8_t t = buf[a];
                buf[a] = buf[b];
                buf[b] = t;
            }
            break;
        }
    }
    return len;
}

/* The reply must be a valid error response carrying the reason the parser returned. */
static void check_reply(int rc, cJSON *reply)
{
    assert_non_null(reply);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(uk_jsonrpc_print(reply, &text, &len), UK_OK);
    uk_jsonrpc_msg *m = NULL;
    assert_int_equal(uk_jsonrpc_parse(text, len, NULL, &m, NULL), UK_OK);
    assert_int_equal(uk_jsonrpc_msg_kind(m), UK_JSONRPC_RESPONSE);
    const cJSON *e = uk_jsonrpc_msg_get0_error(m);
    assert_non_null(e);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(e, "data");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(data, "reason")->valuestring,
                        uk_err_name(rc));
    uk_jsonrpc_msg_free(m);
    free(text);
}

/* A parsed request must be answerable, and the answer must parse with the same id. */
static void check_answerable(uk_jsonrpc_msg *msg)
{
    uk_jsonrpc_kind kind = uk_jsonrpc_msg_kind(msg);
    assert_true(kind == UK_JSONRPC_REQUEST || kind == UK_JSONRPC_NOTIFICATION ||
                kind == UK_JSONRPC_RESPONSE);
    if (kind != UK_JSONRPC_REQUEST)
        return;
    assert_non_null(uk_jsonrpc_msg_get0_method(msg));
    cJSON *r = NULL;
    assert_int_equal(uk_jsonrpc_response_new(&r, uk_jsonrpc_msg_get0_id(msg), NULL), UK_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(uk_jsonrpc_print(r, &text, &len), UK_OK);
    uk_jsonrpc_msg *back = NULL;
    assert_int_equal(uk_jsonrpc_parse(text, len, NULL, &back, NULL), UK_OK);
    assert_true(cJSON_Compare(uk_jsonrpc_msg_get0_id(back), uk_jsonrpc_msg_get0_id(msg), true));
    uk_jsonrpc_msg_free(back);
    free(text);
    cJSON_Delete(r);
}

static void test_mutated_messages_are_parsed_or_answered_with_an_error(void **state)
{
    (void)state;
    const char *env = getenv("UK_TEST_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : 0x75ce11ULL;
    rng = seed != 0 ? seed : 1;
    print_message("seed 0x%llx (set UK_TEST_SEED to replay)\n", (unsigned long long)seed);

    static uint8_t buf[MAX_LEN + 1];
    int parsed = 0, refused = 0;
    for (int i = 0; i < MUTANTS; i++) {
        const char *s = seeds[below(SEED_COUNT)];
        size_t len = strlen(s);
        memcpy(buf, s, len);
        len = mutate(buf, len);

        /* Exact-size heap copy, so ASan sees any read past the end. */
        char *copy = malloc(len > 0 ? len : 1);
        assert_non_null(copy);
        memcpy(copy, buf, len);
        uk_jsonrpc_msg *msg = NULL;
        cJSON *reply = NULL;
        int rc = uk_jsonrpc_parse(copy, len, NULL, &msg, &reply);
        if (rc == UK_OK) {
            assert_non_null(msg);
            assert_null(reply);
            check_answerable(msg);
            uk_jsonrpc_msg_free(msg);
            parsed++;
        } else {
            assert_null(msg);
            assert_true(rc == UK_E_PARSE_ERROR || rc == UK_E_INVALID_REQUEST ||
                        rc == UK_E_LIMIT_EXCEEDED);
            check_reply(rc, reply);
            cJSON_Delete(reply);
            refused++;
        }
        free(copy);
    }
    print_message("%d mutants: %d parsed, %d refused\n", MUTANTS, parsed, refused);
    assert_true(parsed > 0);
    assert_true(refused > MUTANTS / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutated_messages_are_parsed_or_answered_with_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
