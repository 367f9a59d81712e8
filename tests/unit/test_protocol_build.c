/* The JSON-RPC codec's builders: responses, errors with reason data, notifications, requests. */
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
