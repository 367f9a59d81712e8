/* The JSON-RPC codec's builders: responses, errors with reason data, notifications, requests. */
#include <math.h>
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

static char *print(const cJSON *j)
{
    char *s = NULL;
    assert_int_equal(uk_jsonrpc_print(j, &s, NULL), UK_OK);
    return s;
}

static void assert_prints_as(const cJSON *j, const char *want)
{
    char *s = print(j);
    if (strcmp(s, want) != 0)
        fail_msg("got  %s\nwant %s", s, want);
    free(s);
}

static const cJSON *data_of(const cJSON *reply)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(reply, "error"),
                                            "data");
}

static void test_response_echoes_id_and_takes_the_result(void **state)
{
    (void)state;
    cJSON *id = cJSON_CreateString("req-1");
    cJSON *result = cJSON_CreateObject();
    cJSON_AddNumberToObject(result, "days_left", 20);
    cJSON *r = NULL;
    assert_int_equal(uk_jsonrpc_response_new(&r, id, result), UK_OK);
    assert_prints_as(r, "{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"result\":{\"days_left\":20}}");
    cJSON_Delete(r);
    cJSON_Delete(id);
}

static void test_response_without_result_sends_null(void **state)
{
    (void)state;
    cJSON *id = cJSON_CreateNumber(9007199254740991.0);
    cJSON *r = NULL;
    assert_int_equal(uk_jsonrpc_response_new(&r, id, NULL), UK_OK);
    assert_prints_as(r, "{\"jsonrpc\":\"2.0\",\"id\":9007199254740991,\"result\":null}");
    cJSON_Delete(r);
    cJSON_Delete(id);
}

static void test_large_integer_ids_are_echoed_exactly(void **state)
{
    (void)state;
    static const char *const ids[] = {"9007199254740991",
                                      "-9007199254740991",
                                      "2147483648",
                                      "-2147483649",
                                      "1234567890123456",
                                      "0",
                                      "-1"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":%s}", ids[i]);
        uk_jsonrpc_msg *m = NULL;
        assert_int_equal(uk_jsonrpc_parse(text, strlen(text), NULL, &m, NULL), UK_OK);
        cJSON *r = NULL;
        assert_int_equal(uk_jsonrpc_error_new(&r, uk_jsonrpc_msg_get0_id(m), UK_E_BUSY, NULL, NULL),
                         UK_OK);
        char *out = print(cJSON_GetObjectItemCaseSensitive(r, "id"));
        assert_string_equal(out, ids[i]);
        free(out);
        cJSON_Delete(r);
        uk_jsonrpc_msg_free(m);
    }
}

static void test_error_carries_reason_retriable_and_both_messages(void **state)
{
    (void)state;
    cJSON *id = cJSON_CreateNumber(4);
    cJSON *r = NULL;
    assert_int_equal(uk_jsonrpc_error_new(&r, id, UK_E_NOT_YET_VALID, NULL, NULL), UK_OK);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(e, "code")->valueint, -32030);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring,
                        uk_err_message(UK_E_NOT_YET_VALID, "en"));
    const cJSON *data = data_of(r);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(data, "reason")->valuestring,
                        "NOT_YET_VALID");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(data, "retriable")));
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(data, "message");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(msg, "zh-CN")->valuestring,
                        "证书尚未生效。");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(msg, "en")->valuestring,
                        "The certificate is not valid yet.");
    assert_null(cJSON_GetObjectItemCaseSensitive(data, "detail"));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r, "id")->valueint, 4);
    cJSON_Delete(r);
    cJSON_Delete(id);
}

static void test_error_adds_extra_fields_like_retries_left(void **state)
{
    (void)state;
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddNumberToObject(extra, "retries_left", 2);
    cJSON_AddStringToObject(extra, "token", "piv:1234");
    cJSON *r = NULL;
    assert_int_equal(uk_jsonrpc_error_new(&r, NULL, UK_E_PIN_INCORRECT, "verify failed", extra),
                     UK_OK);
    const cJSON *data = data_of(r);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(data, "retries_left")->valueint, 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(data, "token")->valuestring, "piv:1234");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(data, "detail")->valuestring,
                        "verify failed");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(data, "retriable")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "id")));
    cJSON_Delete(r);
}

static void test_error_extra_cannot_contradict_the_table(void **state)
{
    (void)state;
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddStringToObject(extra, "reason", "OK");
    cJSON_AddBoolToObject(extra, "retriable", true);
    cJSON_AddStringToObject(extra, "message", "all good");
    cJSON_AddStringToObject(extra, "detail", "forged");
    cJSON_AddNumberToObject(extra, "kept", 1);
    cJSON *r = NULL;
    assert_int_equal(uk_jsonrpc_error_new(&r, NULL, UK_E_PIN_LOCKED, NULL, extra), UK_OK);
    const cJSON *data = data_of(r);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(data, "reason")->valuestring,
                        "PIN_LOCKED");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(data, "retriable")));
    assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(data, "message")));
    assert_null(cJSON_GetObjectItemCaseSensitive(data, "detail"));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(data, "kept")->valueint, 1);
    cJSON_Delete(r);
}

static void test_error_for_unknown_code_is_sent_as_internal(void **state)
{
    (void)state;
    int codes[] = {UK_OK, -99999, 5};
    for (size_t i = 0; i < 3; i++) {
        cJSON *r = NULL;
        assert_int_equal(uk_jsonrpc_error_new(&r, NULL, codes[i], NULL, NULL), UK_OK);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(data_of(r), "reason")->valuestring,
                            "INTERNAL");
        assert_int_equal(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "error"), "code")
                ->valueint,
            -32603);
        cJSON_Delete(r);
    }
}

static void test_notification_has_method_params_and_no_id(void **state)
{
    (void)state;
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "reader", "Virtual PCD 00 00");
    cJSON *n = NULL;
    assert_int_equal(uk_jsonrpc_notification_new(&n, "token.inserted", params), UK_OK);
    assert_prints_as(n, "{\"jsonrpc\":\"2.0\",\"method\":\"token.inserted\","
                        "\"params\":{\"reader\":\"Virtual PCD 00 00\"}}");
    cJSON_Delete(n);
    assert_int_equal(uk_jsonrpc_notification_new(&n, "system.ping", NULL), UK_OK);
    assert_prints_as(n, "{\"jsonrpc\":\"2.0\",\"method\":\"system.ping\"}");
    cJSON_Delete(n);
}

static void test_notification_refuses_scalar_params_and_still_frees_them(void **state)
{
    (void)state;
    cJSON *n = (cJSON *)&n;
    assert_int_equal(uk_jsonrpc_notification_new(&n, "x", cJSON_CreateString("s")),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_jsonrpc_notification_new(&n, "", NULL), UK_E_INVALID_PARAMS);
    assert_ptr_equal(n, (cJSON *)&n); /* untouched */
}

static void test_request_round_trips_through_the_parser(void **state)
{
    (void)state;
    cJSON *id = cJSON_CreateNumber(12);
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "token", "t");
    cJSON *req = NULL;
    assert_int_equal(uk_jsonrpc_request_new(&req, id, "cert.list", params), UK_OK);
    char *text = print(req);
    uk_jsonrpc_msg *m = NULL;
    assert_int_equal(uk_jsonrpc_parse(text, strlen(text), NULL, &m, NULL), UK_OK);
    assert_int_equal(uk_jsonrpc_msg_kind(m), UK_JSONRPC_REQUEST);
    assert_string_equal(uk_jsonrpc_msg_get0_method(m), "cert.list");
    assert_int_equal(uk_jsonrpc_msg_get0_id(m)->valueint, 12);
    uk_jsonrpc_msg_free(m);
    free(text);
    cJSON_Delete(req);

    cJSON *bad_id = cJSON_CreateNumber(1.5);
    assert_int_equal(uk_jsonrpc_request_new(&req, bad_id, "m", NULL), UK_E_INVALID_PARAMS);
    cJSON_Delete(bad_id);
    cJSON_Delete(id);
}

static void test_error_round_trips_through_the_parser(void **state)
{
    (void)state;
    cJSON *id = cJSON_CreateString("x");
    cJSON *r = NULL;
    assert_int_equal(uk_jsonrpc_error_new(&r, id, UK_E_CARD_REMOVED, "removed during sign", NULL),
                     UK_OK);
    size_t len = 0;
    char *text = NULL;
    assert_int_equal(uk_jsonrpc_print(r, &text, &len), UK_OK);
    assert_int_equal(len, strlen(text));
    uk_jsonrpc_msg *m = NULL;
    assert_int_equal(uk_jsonrpc_parse(text, len, NULL, &m, NULL), UK_OK);
    assert_int_equal(uk_jsonrpc_msg_kind(m), UK_JSONRPC_RESPONSE);
    assert_non_null(uk_jsonrpc_msg_get0_error(m));
    uk_jsonrpc_msg_free(m);
    free(text);
    cJSON_Delete(r);
    cJSON_Delete(id);
}

static void test_add_base64_encodes_bytes(void **state)
{
    (void)state;
    cJSON *o = cJSON_CreateObject();
    static const uint8_t sig[] = {0xde, 0xad, 0xbe, 0xef, 0x00};
    assert_int_equal(uk_jsonrpc_add_base64(o, "signature", sig, sizeof(sig)), UK_OK);
    assert_prints_as(o, "{\"signature\":\"3q2+7wA=\"}");
    cJSON_Delete(o);
}

/* uk_jsonrpc_print writes what cJSON_PrintUnformatted writes, without its floating-point path for
 * integers: every test below compares the two on the same tree. */
static void assert_same_as_cjson(const cJSON *j)
{
    char *want = cJSON_PrintUnformatted(j);
    assert_non_null(want);
    char *got = NULL;
    size_t len = 0;
    assert_int_equal(uk_jsonrpc_print(j, &got, &len), UK_OK);
    if (strcmp(got, want) != 0)
        fail_msg("got  %s\nwant %s", got, want);
    assert_int_equal(len, strlen(want));
    free(got);
    free(want);
}

static void assert_number_prints_as(double d, const char *want)
{
    cJSON *n = cJSON_CreateNumber(d);
    assert_prints_as(n, want);
    assert_same_as_cjson(n);
    cJSON_Delete(n);
}

static void test_print_integers_exactly_at_every_boundary(void **state)
{
    (void)state;
    assert_number_prints_as(0, "0");
    assert_number_prints_as(1, "1");
    assert_number_prints_as(-1, "-1");
    assert_number_prints_as(9, "9");
    assert_number_prints_as(10, "10");
    assert_number_prints_as(-10, "-10");
    assert_number_prints_as(99, "99");
    assert_number_prints_as(100, "100");
    assert_number_prints_as(65536, "65536");
    assert_number_prints_as(2147483647.0, "2147483647");
    assert_number_prints_as(-2147483648.0, "-2147483648");
    assert_number_prints_as(2147483648.0, "2147483648");
    assert_number_prints_as(-2147483649.0, "-2147483649");
    assert_number_prints_as(4294967296.0, "4294967296");
    assert_number_prints_as(999999999999999.0, "999999999999999");
    assert_number_prints_as(-999999999999999.0, "-999999999999999");
    /* From 10^15 on cJSON's 15-digit form takes over, rounding included (uk_jsonrpc.h,
     * "Numbers"; ids are copied as raw text for this reason): the output stays cJSON's. */
    assert_number_prints_as(1e15, "1e+15");
    assert_number_prints_as(-1e15, "-1e+15");
    assert_number_prints_as(1234567890123456.0, "1234567890123456");
    assert_number_prints_as(9007199254740991.0, "9.00719925474099e+15");
    assert_number_prints_as(-9007199254740991.0, "-9.00719925474099e+15");
    /* Not integers, or not numbers JSON can carry: as cJSON. */
    assert_number_prints_as(-0.0, "-0");
    assert_number_prints_as(0.5, "0.5");
    assert_number_prints_as(-2.25, "-2.25");
    assert_number_prints_as(0.1, "0.1");
    assert_number_prints_as(1e-7, "1e-07");
    assert_number_prints_as(1e300, "1e+300");
    assert_number_prints_as(9.2233720368547758e18, "9.2233720368547758e+18");
    assert_number_prints_as(NAN, "null");
    assert_number_prints_as(INFINITY, "null");
    assert_number_prints_as(-INFINITY, "null");
}

static void test_print_matches_cjson_for_many_numbers(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 20000; i++) {
        /* xorshift64: a fixed sequence, so a failure repeats */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        switch (i % 4) {
        case 0: /* integers of every magnitude up to 2^63, both signs */
            d = (double)(int64_t)(x >> (x % 64));
            break;
        case 1: /* integers near the 10^15 and 2^53 boundaries */
            d = (i & 8 ? 1e15 : 9007199254740992.0) + (double)(int64_t)(x % 2001) - 1000;
            d = i & 16 ? -d : d;
            break;
        case 2: /* fractions */
            d = (double)(int64_t)(x >> 20) / (double)((x % 1000) + 1);
            break;
        default: /* any bit pattern: subnormals, huge, NaN, infinities */
            memcpy(&d, &x, sizeof d);
            break;
        }
        cJSON *n = cJSON_CreateNumber(d);
        assert_non_null(n);
        assert_same_as_cjson(n);
        cJSON_Delete(n);
    }
}

static void test_print_matches_cjson_for_every_byte_in_strings(void **state)
{
    (void)state;
    char text[4];
    for (int c = 1; c < 256; c++) {
        text[0] = 'a';
        text[1] = (char)c;
        text[2] = 'z';
        text[3] = '\0';
        cJSON *o = cJSON_CreateObject();
        assert_non_null(cJSON_AddStringToObject(o, text, text));
        assert_non_null(cJSON_AddStringToObject(o, "alone", text + 1));
        assert_same_as_cjson(o);
        cJSON_Delete(o);
    }
    /* Each byte at each place of a longer string (the printer looks at eight bytes at a time),
     * next to bytes just above and below the ones that need an escape. */
    static const char fill[] = {'x', ' ', '!', '#', '[', ']', (char)0x80, (char)0xff};
    char longer[21];
    for (int c = 1; c < 256; c++) {
        for (size_t f = 0; f < sizeof fill; f++) {
            for (int pos = 0; pos < 20; pos++) {
                memset(longer, fill[f], 20);
                longer[pos] = (char)c;
                longer[20] = '\0';
                cJSON *str = cJSON_CreateString(longer);
                assert_same_as_cjson(str);
                cJSON_Delete(str);
            }
        }
    }
    cJSON *s = cJSON_CreateString("tab\tquote\"back\\slash\x01\x1f\x7f \xe4\xb8\xad/end");
    assert_prints_as(s, "\"tab\\tquote\\\"back\\\\slash\\u0001\\u001f\x7f \xe4\xb8\xad/end\"");
    assert_same_as_cjson(s);
    cJSON_Delete(s);
}

static void test_print_matches_cjson_for_every_kind_of_value(void **state)
{
    (void)state;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "empty_object", cJSON_CreateObject());
    cJSON_AddItemToObject(o, "empty_array", cJSON_CreateArray());
    cJSON_AddItemToObject(o, "empty_string", cJSON_CreateString(""));
    cJSON_AddNullToObject(o, "null");
    cJSON_AddTrueToObject(o, "true");
    cJSON_AddFalseToObject(o, "false");
    cJSON_AddItemToObject(o, "raw", cJSON_CreateRaw("12345678901234567890"));
    cJSON_AddItemToObjectCS(o, "const_name", cJSON_CreateStringReference("a reference"));
    cJSON *a = cJSON_AddArrayToObject(o, "nested");
    cJSON_AddItemToArray(a, cJSON_CreateNumber(1));
    cJSON *inner = cJSON_CreateObject();
    cJSON_AddItemToObject(inner, "deeper", cJSON_CreateArray());
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(inner, "deeper"), cJSON_CreateNull());
    cJSON_AddItemToArray(a, inner);
    cJSON_AddItemToArray(a, cJSON_CreateString("x"));
    assert_same_as_cjson(o);
    assert_prints_as(o, "{\"empty_object\":{},\"empty_array\":[],\"empty_string\":\"\","
                        "\"null\":null,\"true\":true,\"false\":false,"
                        "\"raw\":12345678901234567890,\"const_name\":\"a reference\","
                        "\"nested\":[1,{\"deeper\":[null]},\"x\"]}");
    cJSON_Delete(o);

    /* A long message grows the buffer. */
    cJSON *big = cJSON_CreateArray();
    for (int i = 0; i < 5000; i++)
        cJSON_AddItemToArray(big, cJSON_CreateNumber(i * 7));
    assert_same_as_cjson(big);
    cJSON_Delete(big);
}

static void test_print_refuses_what_cjson_refuses(void **state)
{
    (void)state;
    char *s = NULL;
    assert_int_equal(uk_jsonrpc_print(NULL, &s, NULL), UK_E_NO_MEMORY);
    cJSON *raw = cJSON_CreateRaw("1");
    cJSON_free(raw->valuestring);
    raw->valuestring = NULL;
    assert_null(cJSON_PrintUnformatted(raw));
    assert_int_equal(uk_jsonrpc_print(raw, &s, NULL), UK_E_NO_MEMORY);
    cJSON_Delete(raw);
    cJSON invalid = {0};
    assert_null(cJSON_PrintUnformatted(&invalid));
    assert_int_equal(uk_jsonrpc_print(&invalid, &s, NULL), UK_E_NO_MEMORY);
    assert_null(s);
}

static void assert_string_array_like_cjson(const char *const *strings, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(strings[i]));
    char *want = cJSON_PrintUnformatted(arr);
    cJSON *raw = uk_jsonrpc_string_array_new(strings, n);
    assert_non_null(raw);
    assert_false(cJSON_IsArray(raw));
    assert_prints_as(raw, want);
    /* Inside an object, and read back, it is the same array. */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "list", raw);
    char *text = print(o);
    cJSON *back = cJSON_Parse(text);
    assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(back, "list"), arr, true));
    cJSON_Delete(back);
    free(text);
    cJSON_Delete(o);
    free(want);
    cJSON_Delete(arr);
}

static void test_string_array_prints_like_an_array_of_strings(void **state)
{
    (void)state;
    assert_string_array_like_cjson(NULL, 0);
    static const char *const one[] = {"system.hello"};
    assert_string_array_like_cjson(one, 1);
    static const char *const some[] = {"token.inserted", "", "quote\" and \\ and \n", "\x01\x1f",
                                       "\xe4\xb8\xad\xe6\x96\x87"};
    assert_string_array_like_cjson(some, sizeof some / sizeof some[0]);
    /* Longer than the first buffer: it grows. */
    const char *many[300];
    for (size_t i = 0; i < 300; i++)
        many[i] = i % 3 ? "renewal.prepare" : "a \"quoted\" name";
    assert_string_array_like_cjson(many, 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_response_echoes_id_and_takes_the_result),
        cmocka_unit_test(test_response_without_result_sends_null),
        cmocka_unit_test(test_large_integer_ids_are_echoed_exactly),
        cmocka_unit_test(test_error_carries_reason_retriable_and_both_messages),
        cmocka_unit_test(test_error_adds_extra_fields_like_retries_left),
        cmocka_unit_test(test_error_extra_cannot_contradict_the_table),
        cmocka_unit_test(test_error_for_unknown_code_is_sent_as_internal),
        cmocka_unit_test(test_notification_has_method_params_and_no_id),
        cmocka_unit_test(test_notification_refuses_scalar_params_and_still_frees_them),
        cmocka_unit_test(test_request_round_trips_through_the_parser),
        cmocka_unit_test(test_error_round_trips_through_the_parser),
        cmocka_unit_test(test_add_base64_encodes_bytes),
        cmocka_unit_test(test_print_integers_exactly_at_every_boundary),
        cmocka_unit_test(test_print_matches_cjson_for_many_numbers),
        cmocka_unit_test(test_print_matches_cjson_for_every_byte_in_strings),
        cmocka_unit_test(test_print_matches_cjson_for_every_kind_of_value),
        cmocka_unit_test(test_print_refuses_what_cjson_refuses),
        cmocka_unit_test(test_string_array_prints_like_an_array_of_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
