/* Parameter getters: types, ranges, strict base64, PINs moved out and wiped, errors name fields. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "uk_jsonrpc.h"

struct fixture {
    uk_jsonrpc_msg *msg;
    cJSON *params;
};

static int setup(void **state)
{
    static const char text[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"sign\",\"id\":1,\"params\":{"
        "\"token\":\"piv:01\",\"slot\":154,\"big\":9007199254740991,\"frac\":1.5,"
        "\"yes\":true,\"no\":false,\"nul\":null,\"data\":\"aGVsbG8=\",\"bad64\":\"aGVsbG8\","
        "\"pin\":\"123456\",\"long_pin\":\"12345678901234567890\",\"arr\":[1]}}";
    struct fixture *f = calloc(1, sizeof(*f));
    assert_int_equal(uk_jsonrpc_parse(text, sizeof(text) - 1, NULL, &f->msg, NULL), UK_OK);
    f->params = uk_jsonrpc_msg_get0_params(f->msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    uk_jsonrpc_msg_free(f->msg);
    free(f);
    return 0;
}

static void expect_problem(int rc, const uk_jsonrpc_param_error *pe, const char *field,
                           const char *problem)
{
    assert_int_equal(rc, UK_E_INVALID_PARAMS);
    assert_string_equal(pe->field, field);
    assert_string_equal(pe->problem, problem);
}

static void test_params_string_present_missing_and_wrong_type(void **state)
{
    struct fixture *f = *state;
    uk_jsonrpc_param_error pe = {0};
    const char *s = "default";
    assert_int_equal(uk_jsonrpc_param_get0_string(f->params, "token", true, 0, &s, &pe), UK_OK);
    assert_string_equal(s, "piv:01");
    s = "default";
    assert_int_equal(uk_jsonrpc_param_get0_string(f->params, "subject", false, 0, &s, &pe), UK_OK);
    assert_string_equal(s, "default");
    expect_problem(uk_jsonrpc_param_get0_string(f->params, "subject", true, 0, &s, &pe), &pe,
                   "subject", "is required");
    expect_problem(uk_jsonrpc_param_get0_string(f->params, "slot", true, 0, &s, &pe), &pe, "slot",
                   "must be a string");
    expect_problem(uk_jsonrpc_param_get0_string(f->params, "nul", false, 0, &s, &pe), &pe, "nul",
                   "must be a string");
    expect_problem(uk_jsonrpc_param_get0_string(f->params, "token", true, 5, &s, &pe), &pe, "token",
                   "is too long");
}

static void test_params_names_are_case_sensitive(void **state)
{
    struct fixture *f = *state;
    uk_jsonrpc_param_error pe = {0};
    const char *s = NULL;
    expect_problem(uk_jsonrpc_param_get0_string(f->params, "TOKEN", true, 0, &s, &pe), &pe, "TOKEN",
                   "is required");
}

static void test_params_bool(void **state)
{
    struct fixture *f = *state;
    uk_jsonrpc_param_error pe = {0};
    bool b = false;
    assert_int_equal(uk_jsonrpc_param_get_bool(f->params, "yes", true, &b, &pe), UK_OK);
    assert_true(b);
    assert_int_equal(uk_jsonrpc_param_get_bool(f->params, "no", true, &b, &pe), UK_OK);
    assert_false(b);
    expect_problem(uk_jsonrpc_param_get_bool(f->params, "slot", true, &b, &pe), &pe, "slot",
                   "must be true or false");
}

static void test_params_int_checks_integrality_and_range(void **state)
{
    struct fixture *f = *state;
    uk_jsonrpc_param_error pe = {0};
    int64_t v = -1;
    assert_int_equal(uk_jsonrpc_param_get_int(f->params, "slot", true, 0x80, 0x9f, &v, &pe), UK_OK);
    assert_int_equal(v, 154);
    assert_int_equal(uk_jsonrpc_param_get_int(f->params, "big", true, 0, INT64_MAX, &v, &pe),
                     UK_OK);
    assert_int_equal(v, 9007199254740991LL);
    expect_problem(uk_jsonrpc_param_get_int(f->params, "slot", true, 0, 10, &v, &pe), &pe, "slot",
                   "is out of range");
    expect_problem(uk_jsonrpc_param_get_int(f->params, "frac", true, 0, 10, &v, &pe), &pe, "frac",
                   "must be an integer");
    expect_problem(uk_jsonrpc_param_get_int(f->params, "token", true, 0, 10, &v, &pe), &pe, "token",
                   "must be an integer");
    v = 77;
    assert_int_equal(uk_jsonrpc_param_get_int(f->params, "absent", false, 0, 10, &v, &pe), UK_OK);
    assert_int_equal(v, 77);
}

static void test_params_base64_is_strict(void **state)
{
    struct fixture *f = *state;
    uk_jsonrpc_param_error pe = {0};
    uint8_t *b = NULL;
    size_t n = 0;
    assert_int_equal(uk_jsonrpc_param_get1_base64(f->params, "data", true, 0, &b, &n, &pe), UK_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(b, "hello", 5);
    free(b);
    b = NULL;
    expect_problem(uk_jsonrpc_param_get1_base64(f->params, "bad64", true, 0, &b, &n, &pe), &pe,
                   "bad64", "must be base64 (RFC 4648, with padding)");
    expect_problem(uk_jsonrpc_param_get1_base64(f->params, "data", true, 4, &b, &n, &pe), &pe,
                   "data", "is too long");
    expect_problem(uk_jsonrpc_param_get1_base64(f->params, "slot", true, 0, &b, &n, &pe), &pe,
                   "slot", "must be a base64 string");
    assert_null(b);
}

static void test_params_secret_moves_the_pin_and_wipes_it(void **state)
{
    struct fixture *f = *state;
    uk_jsonrpc_param_error pe = {0};
    cJSON *item = cJSON_GetObjectItemCaseSensitive(f->params, "pin");
    const char *bytes = item->valuestring;
    uk_secret *pin = NULL;
    assert_int_equal(uk_jsonrpc_param_get1_secret(f->params, "pin", true, 8, &pin, &pe), UK_OK);
    assert_int_equal(uk_secret_get0_len(pin), 6);
    assert_memory_equal(uk_secret_get0_data(pin), "123456", 7);
    assert_memory_equal(bytes, "\0\0\0\0\0\0", 7);
    uk_secret_free(pin);
}

static void test_params_secret_too_long_is_refused_and_still_wiped(void **state)
{
    struct fixture *f = *state;
    uk_jsonrpc_param_error pe = {0};
    cJSON *item = cJSON_GetObjectItemCaseSensitive(f->params, "long_pin");
    const char *bytes = item->valuestring;
    uk_secret *pin = NULL;
    expect_problem(uk_jsonrpc_param_get1_secret(f->params, "long_pin", true, 8, &pin, &pe), &pe,
                   "long_pin", "is too long");
    assert_null(pin);
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(bytes[i], 0);
}

static void test_params_absent_reads_as_empty_object(void **state)
{
    (void)state;
    uk_jsonrpc_param_error pe = {0};
    const char *s = "kept";
    assert_int_equal(uk_jsonrpc_param_get0_string(NULL, "token", false, 0, &s, &pe), UK_OK);
    assert_string_equal(s, "kept");
    expect_problem(uk_jsonrpc_param_get0_string(NULL, "token", true, 0, &s, &pe), &pe, "token",
                   "is required");
    assert_int_equal(uk_jsonrpc_params_check_known(NULL, NULL, 0, &pe), UK_OK);
}

static void test_params_array_is_refused_where_an_object_is_needed(void **state)
{
    struct fixture *f = *state;
    uk_jsonrpc_param_error pe = {0};
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(f->params, "arr");
    const char *s = NULL;
    expect_problem(uk_jsonrpc_param_get0_string(arr, "token", true, 0, &s, &pe), &pe, "",
                   "must be an object");
    expect_problem(uk_jsonrpc_params_check_known(arr, NULL, 0, &pe), &pe, "", "must be an object");
}

static void test_params_check_known_names_the_first_stranger(void **state)
{
    struct fixture *f = *state;
    uk_jsonrpc_param_error pe = {0};
    static const char *const all[] = {"token", "slot", "big",   "frac", "yes",      "no",
                                      "nul",   "data", "bad64", "pin",  "long_pin", "arr"};
    assert_int_equal(uk_jsonrpc_params_check_known(f->params, all, 12, &pe), UK_OK);
    expect_problem(uk_jsonrpc_params_check_known(f->params, all + 1, 11, &pe), &pe, "token",
                   "is not a known parameter");
}

static void test_param_error_response_names_the_field(void **state)
{
    (void)state;
    uk_jsonrpc_param_error pe = {.field = "slot", .problem = "is out of range"};
    cJSON *id = cJSON_CreateNumber(3);
    cJSON *r = NULL;
    assert_int_equal(uk_jsonrpc_param_error_new(&r, id, &pe), UK_OK);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(e, "code")->valueint, -32602);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(e, "data");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(data, "reason")->valuestring,
                        "INVALID_PARAMS");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(data, "field")->valuestring, "slot");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(data, "detail")->valuestring,
                        "params.slot is out of range");
    cJSON_Delete(r);

    uk_jsonrpc_param_error whole = {.field = "", .problem = "must be an object"};
    assert_int_equal(uk_jsonrpc_param_error_new(&r, id, &whole), UK_OK);
    data = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "error"), "data");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(data, "detail")->valuestring,
                        "params must be an object");
    assert_null(cJSON_GetObjectItemCaseSensitive(data, "field"));
    cJSON_Delete(r);
    cJSON_Delete(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_params_string_present_missing_and_wrong_type, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_params_names_are_case_sensitive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_bool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_int_checks_integrality_and_range, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_params_base64_is_strict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_secret_moves_the_pin_and_wipes_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_params_secret_too_long_is_refused_and_still_wiped,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_absent_reads_as_empty_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_array_is_refused_where_an_object_is_needed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_check_known_names_the_first_stranger, setup,
                                        teardown),
        cmocka_unit_test(test_param_error_response_names_the_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
