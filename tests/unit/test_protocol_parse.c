/* The JSON-RPC codec's parser: every kind of valid message, every class of malformed one. */
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

static uk_jsonrpc_msg *parse_ok(const char *text)
{
    uk_jsonrpc_msg *msg = NULL;
    cJSON *reply = (cJSON *)&reply; /* must be reset to NULL */
    int rc = uk_jsonrpc_parse(text, strlen(text), NULL, &msg, &reply);
    if (rc != UK_OK) {
        char *s = reply != NULL ? cJSON_PrintUnformatted(reply) : NULL;
        fail_msg("refused %s: %s", text, s != NULL ? s : "(no reply)");
    }
    assert_non_null(msg);
    assert_null(reply);
    return msg;
}

static char *print(const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    assert_non_null(s);
    return s;
}

/*
 * Parse bytes that must be refused with err; check the reply's shape and id (JSON text, "null"
 * when the id must not be echoed) and, if detail is not NULL, that data.detail contains it.
 */
static void expect_refused_n(const char *text, size_t len, int err, const char *id,
                             const char *detail)
{
    uk_jsonrpc_msg *msg = (uk_jsonrpc_msg *)&msg;
    cJSON *reply = NULL;
    int rc = uk_jsonrpc_parse(text, len, NULL, &msg, &reply);
    if (rc != err)
        fail_msg("%.*s: got %s, want %s", (int)(len > 80 ? 80 : len), text, uk_err_name(rc),
                 uk_err_name(err));
    assert_null(msg);
    assert_non_null(reply);

    const cJSON *v = cJSON_GetObjectItemCaseSensitive(reply, "jsonrpc");
    assert_string_equal(cJSON_GetStringValue(v), "2.0");
    char *got_id = print(cJSON_GetObjectItemCaseSensitive(reply, "id"));
    if (strcmp(got_id, id) != 0)
        fail_msg("%.*s: id %s, want %s", (int)(len > 80 ? 80 : len), text, got_id, id);
    free(got_id);

    const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(e, "code")->valueint, uk_err_rpc_code(err));
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(e, "data");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "reason")),
                        uk_err_name(err));
    if (detail != NULL) {
        const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "detail"));
        assert_non_null(d);
        if (strstr(d, detail) == NULL)
            fail_msg("detail \"%s\" lacks \"%s\"", d, detail);
    }
    cJSON_Delete(reply);
}

static void expect_refused(const char *text, int err, const char *id, const char *detail)
{
    expect_refused_n(text, strlen(text), err, id, detail);
}

static void test_parse_accepts_request_with_object_params(void **state)
{
    (void)state;
    uk_jsonrpc_msg *m =
        parse_ok("{\"jsonrpc\":\"2.0\",\"method\":\"cert.list\",\"params\":{\"token\":\"t1\"},"
                 "\"id\":7}");
    assert_int_equal(uk_jsonrpc_msg_kind(m), UK_JSONRPC_REQUEST);
    assert_string_equal(uk_jsonrpc_msg_get0_method(m), "cert.list");
    assert_int_equal(uk_jsonrpc_msg_get0_id(m)->valueint, 7);
    cJSON *p = uk_jsonrpc_msg_get0_params(m);
    assert_true(cJSON_IsObject(p));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(p, "token")->valuestring, "t1");
    assert_null(uk_jsonrpc_msg_get0_result(m));
    assert_null(uk_jsonrpc_msg_get0_error(m));
    uk_jsonrpc_msg_free(m);
}

static void test_parse_accepts_request_with_array_params_and_string_id(void **state)
{
    (void)state;
    uk_jsonrpc_msg *m = parse_ok(" \r\n\t{\"id\":\"abc-1\",\"params\":[1,2,{}],\"method\":\"x.y\","
                                 "\"jsonrpc\":\"2.0\"} \n");
    assert_int_equal(uk_jsonrpc_msg_kind(m), UK_JSONRPC_REQUEST);
    assert_string_equal(uk_jsonrpc_msg_get0_id(m)->valuestring, "abc-1");
    assert_int_equal(cJSON_GetArraySize(uk_jsonrpc_msg_get0_params(m)), 3);
    uk_jsonrpc_msg_free(m);
}

static void test_parse_accepts_request_without_params(void **state)
{
    (void)state;
    uk_jsonrpc_msg *m = parse_ok("{\"jsonrpc\":\"2.0\",\"method\":\"system.hello\",\"id\":0}");
    assert_int_equal(uk_jsonrpc_msg_kind(m), UK_JSONRPC_REQUEST);
    assert_null(uk_jsonrpc_msg_get0_params(m));
    uk_jsonrpc_msg_free(m);
}

static void test_parse_accepts_notification(void **state)
{
    (void)state;
    uk_jsonrpc_msg *m = parse_ok("{\"jsonrpc\":\"2.0\",\"method\":\"token.removed\","
                                 "\"params\":{\"reader\":\"R\"}}");
    assert_int_equal(uk_jsonrpc_msg_kind(m), UK_JSONRPC_NOTIFICATION);
    assert_null(uk_jsonrpc_msg_get0_id(m));
    uk_jsonrpc_msg_free(m);
}

static void test_parse_accepts_result_and_error_responses(void **state)
{
    (void)state;
    uk_jsonrpc_msg *m = parse_ok("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":null}");
    assert_int_equal(uk_jsonrpc_msg_kind(m), UK_JSONRPC_RESPONSE);
    assert_true(cJSON_IsNull(uk_jsonrpc_msg_get0_result(m)));
    assert_null(uk_jsonrpc_msg_get0_error(m));
    assert_null(uk_jsonrpc_msg_get0_method(m));
    uk_jsonrpc_msg_free(m);

    m = parse_ok("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"x\","
                 "\"data\":{\"reason\":\"PARSE_ERROR\"}}}");
    assert_int_equal(uk_jsonrpc_msg_kind(m), UK_JSONRPC_RESPONSE);
    assert_true(cJSON_IsNull(uk_jsonrpc_msg_get0_id(m)));
    assert_int_equal(
        cJSON_GetObjectItemCaseSensitive(uk_jsonrpc_msg_get0_error(m), "code")->valueint, -32700);
    uk_jsonrpc_msg_free(m);
}

static void test_parse_accepts_integer_ids_up_to_2_pow_53_minus_1(void **state)
{
    (void)state;
    static const char *const ids[] = {"-1", "9007199254740991", "-9007199254740991", "1e3", "1.0"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":%s}", ids[i]);
        uk_jsonrpc_msg_free(parse_ok(text));
    }
    char id[UK_LIMIT_ID_LENGTH + 1];
    memset(id, 'i', UK_LIMIT_ID_LENGTH);
    id[UK_LIMIT_ID_LENGTH] = '\0';
    char text[256];
    snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":\"%s\"}", id);
    uk_jsonrpc_msg_free(parse_ok(text));
}

static void test_parse_accepts_utf8_and_escaped_surrogate_pairs(void **state)
{
    (void)state;
    uk_jsonrpc_msg *m = parse_ok("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"params\":"
                                 "{\"cn\":\"张三\",\"e\":\"\\ud83d\\ude00\\u00e9\\n\","
                                 "\"raw\":\"\xf0\x9f\x98\x80\xc3\xa9\xe2\x82\xac\"}}");
    cJSON *p = uk_jsonrpc_msg_get0_params(m);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(p, "cn")->valuestring, "张三");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(p, "e")->valuestring,
                        "\xf0\x9f\x98\x80\xc3\xa9\n");
    uk_jsonrpc_msg_free(m);
}

/* {"jsonrpc":"2.0","method":"m","id":1,"params":[[[...]]]} with depth containers in total. */
static char *nested(size_t depth)
{
    size_t inner = depth - 1; /* the envelope object is one level */
    size_t cap = 64 + 2 * inner;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t n =
        (size_t)snprintf(s, cap, "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"params\":");
    for (size_t i = 0; i < inner; i++)
        s[n++] = '[';
    for (size_t i = 0; i < inner; i++)
        s[n++] = ']';
    s[n++] = '}';
    s[n] = '\0';
    return s;
}

static void test_parse_accepts_depth_32_and_refuses_depth_33(void **state)
{
    (void)state;
    char *ok = nested(UK_LIMIT_JSON_DEPTH);
    uk_jsonrpc_msg_free(parse_ok(ok));
    free(ok);

    char *deep = nested(UK_LIMIT_JSON_DEPTH + 1);
    expect_refused(deep, UK_E_LIMIT_EXCEEDED, "null", "nesting");
    uk_jsonrpc_msg *msg = NULL;
    cJSON *reply = NULL;
    assert_int_equal(uk_jsonrpc_parse(deep, strlen(deep), NULL, &msg, &reply), UK_E_LIMIT_EXCEEDED);
    const cJSON *data =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(reply, "error"), "data");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(data, "limit")->valuestring, "json_depth");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(data, "max")->valueint, 32);
    cJSON_Delete(reply);
    free(deep);

    /* Depth is counted in objects too, and a deep scalar-free text cannot slip through. */
    char *objs = malloc(8 * 40 + 64);
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        n += (size_t)sprintf(objs + n, "{\"a\":");
    n += (size_t)sprintf(objs + n, "1");
    for (int i = 0; i < 40; i++)
        objs[n++] = '}';
    objs[n] = '\0';
    expect_refused(objs, UK_E_LIMIT_EXCEEDED, "null", NULL);
    free(objs);
}

/* A request of exactly len bytes: the padding goes into a params string. */
static char *request_of_size(size_t len)
{
    const char *head = "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"params\":{\"p\":\"";
    const char *tail = "\"}}";
    size_t fixed = strlen(head) + strlen(tail);
    assert_true(len > fixed);
    char *s = malloc(len + 1);
    memcpy(s, head, strlen(head));
    memset(s + strlen(head), 'x', len - fixed);
    memcpy(s + len - strlen(tail), tail, strlen(tail) + 1);
    return s;
}

static void test_parse_accepts_size_limit_and_refuses_one_byte_more(void **state)
{
    (void)state;
    char *at = request_of_size(UK_LIMIT_MESSAGE);
    uk_jsonrpc_msg_free(parse_ok(at));
    free(at);
    char *over = request_of_size(UK_LIMIT_MESSAGE + 1);
    expect_refused(over, UK_E_LIMIT_EXCEEDED, "null", "larger than 65536 bytes");
    free(over);
}

static void test_parse_honours_caller_limits(void **state)
{
    (void)state;
    const char *text = "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"params\":[[1]]}";
    uk_jsonrpc_limits small = {.max_message = 20, .max_depth = 0};
    uk_jsonrpc_limits shallow = {.max_message = 0, .max_depth = 2};
    uk_jsonrpc_limits roomy = {.max_message = 100, .max_depth = 3};
    uk_jsonrpc_msg *msg = NULL;
    assert_int_equal(uk_jsonrpc_parse(text, strlen(text), &small, &msg, NULL), UK_E_LIMIT_EXCEEDED);
    assert_int_equal(uk_jsonrpc_parse(text, strlen(text), &shallow, &msg, NULL),
                     UK_E_LIMIT_EXCEEDED);
    assert_int_equal(uk_jsonrpc_parse(text, strlen(text), &roomy, &msg, NULL), UK_OK);
    uk_jsonrpc_msg_free(msg);
}

static void test_parse_refuses_text_that_is_not_json(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "   ",
        "hello",
        "{",
        "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1",
        "{'jsonrpc':'2.0'}",
        "{\"jsonrpc\":\"2.0\",}",
        "[1,]",
        "{\"a\" 1}",
        "{\"a\":}",
        "{1:2}",
        "{\"id\":+1}",
        "{\"id\":01}",
        "{\"id\":.5}",
        "{\"id\":1.}",
        "{\"id\":1e}",
        "{\"id\":-}",
        "{\"id\":NaN}",
        "{\"id\":Infinity}",
        "{\"id\":tru}",
        "{\"id\":nul}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":\"nl\nhere\"}",
        "{\"a\":\"\\x41\"}",
        "{\"a\":\"\\u12G4\"}",
        "{\"a\":\"unterminated}",
        "{\"a\":\"\\",
        "\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1}",
        "/* comment */{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_refused(bad[i], UK_E_PARSE_ERROR, "null", NULL);
    expect_refused_n("{\"a\":\"nul\0here\"}", 16, UK_E_PARSE_ERROR, "null", "control character");
}

static void test_parse_refuses_invalid_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\xff",             /* never valid */
        "\xfe",             /* never valid */
        "\xf5\x80\x80\x80", /* above U+10FFFF by lead byte */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xc0\xaf",         /* overlong '/' */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong '/' in 3 bytes */
        "\xf0\x80\x80\xaf", /* overlong '/' in 4 bytes */
        "\xed\xa0\x80",     /* U+D800, a surrogate */
        "\xed\xbf\xbf",     /* U+DFFF, a surrogate */
        "\x80",             /* lone continuation byte */
        "\xe4\xb8",         /* truncated sequence */
        "\xe4\xb8x",        /* interrupted sequence */
        "\xc3",             /* truncated at the end of the string */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text),
                 "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"params\":"
                 "{\"s\":\"a%sb\"}}",
                 bad[i]);
        expect_refused(text, UK_E_PARSE_ERROR, "null", "UTF-8");
    }
    /* Outside strings non-ASCII is just an unexpected character. */
    expect_refused("{\"id\":1,\xc3\xa9:1}", UK_E_PARSE_ERROR, "null", NULL);
}

static void test_parse_refuses_escapes_cjson_would_misread(void **state)
{
    (void)state;
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":\"sign\\u0000.evil\",\"id\":1}",
                   UK_E_PARSE_ERROR, "null", "\\u0000");
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"params\":[\"\\ud800\"]}",
                   UK_E_PARSE_ERROR, "null", "surrogate");
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"params\":[\"\\udc00x\"]}",
                   UK_E_PARSE_ERROR, "null", "surrogate");
    expect_refused(
        "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"params\":[\"\\ud800\\u0041\"]}",
        UK_E_PARSE_ERROR, "null", "surrogate");
    char num[128];
    snprintf(num, sizeof(num), "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"params\":[1%s]}",
             "00000000000000000000000000000000000000000");
    expect_refused(num, UK_E_LIMIT_EXCEEDED, "null", "number");
}

static void test_parse_refuses_trailing_data(void **state)
{
    (void)state;
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1} x", UK_E_PARSE_ERROR, "null",
                   "after the message");
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1}{\"jsonrpc\":\"2.0\"}",
                   UK_E_PARSE_ERROR, "null", "after the message");
    const char *nul = "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1}\0";
    expect_refused_n(nul, strlen(nul) + 1, UK_E_PARSE_ERROR, "null", "after the message");
}

static void test_parse_refuses_batches_with_a_clear_message(void **state)
{
    (void)state;
    expect_refused("[{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1}]", UK_E_INVALID_REQUEST,
                   "null", "batches are not supported");
    expect_refused("[]", UK_E_INVALID_REQUEST, "null", "batches are not supported");
}

static void test_parse_refuses_values_that_are_not_objects(void **state)
{
    (void)state;
    expect_refused("42", UK_E_INVALID_REQUEST, "null", "JSON object");
    expect_refused("\"x\"", UK_E_INVALID_REQUEST, "null", "JSON object");
    expect_refused("null", UK_E_INVALID_REQUEST, "null", "JSON object");
}

static void test_parse_refuses_wrong_jsonrpc_version_and_echoes_id(void **state)
{
    (void)state;
    expect_refused("{\"method\":\"m\",\"id\":5}", UK_E_INVALID_REQUEST, "5", "jsonrpc");
    expect_refused("{\"jsonrpc\":\"1.0\",\"method\":\"m\",\"id\":\"a\"}", UK_E_INVALID_REQUEST,
                   "\"a\"", "jsonrpc");
    expect_refused("{\"jsonrpc\":2.0,\"method\":\"m\",\"id\":5}", UK_E_INVALID_REQUEST, "5",
                   "jsonrpc");
}

static void test_parse_refuses_missing_or_bad_method(void **state)
{
    (void)state;
    expect_refused("{\"jsonrpc\":\"2.0\",\"id\":1}", UK_E_INVALID_REQUEST, "1",
                   "method is missing");
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":1,\"id\":1}", UK_E_INVALID_REQUEST, "1",
                   "method must be a string");
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":null,\"id\":1}", UK_E_INVALID_REQUEST, "1",
                   "method must be a string");
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":\"\",\"id\":1}", UK_E_INVALID_REQUEST, "1",
                   "empty");
    char text[256];
    char name[UK_LIMIT_METHOD_LENGTH + 2];
    memset(name, 'm', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"id\":1}", name);
    expect_refused(text, UK_E_INVALID_REQUEST, "1", "longer than 64");
    /* An invalid notification is still answered, with a null id. */
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":5}", UK_E_INVALID_REQUEST, "null", NULL);
}

static void test_parse_refuses_params_that_are_not_structured(void **state)
{
    (void)state;
    static const char *const bad[] = {"\"x\"", "1", "true", "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text),
                 "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":9,\"params\":%s}", bad[i]);
        expect_refused(text, UK_E_INVALID_REQUEST, "9", "params must be an object or an array");
    }
}

static void test_parse_refuses_bad_ids_without_echoing_them(void **state)
{
    (void)state;
    static const char *const bad[] = {"1.5",
                                      "9007199254740992",
                                      "-9007199254740992",
                                      "1e300",
                                      "{}",
                                      "[1]",
                                      "true",
                                      "null",
                                      "-0.1",
                                      "1e-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":%s}", bad[i]);
        expect_refused(text, UK_E_INVALID_REQUEST, "null", "id must be");
    }
    char id[UK_LIMIT_ID_LENGTH + 2];
    memset(id, 'i', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    char text[256];
    snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":\"%s\"}", id);
    expect_refused(text, UK_E_INVALID_REQUEST, "null", "id must be");
}

static void test_parse_refuses_unknown_and_duplicate_members(void **state)
{
    (void)state;
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"origin\":\"x\"}",
                   UK_E_INVALID_REQUEST, "1", "unknown member \"origin\"");
    /* Names are case-sensitive (cJSON_GetObjectItem is not). */
    expect_refused("{\"jsonrpc\":\"2.0\",\"Method\":\"m\",\"id\":1}", UK_E_INVALID_REQUEST, "1",
                   "unknown member \"Method\"");
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"method\":\"b\",\"id\":1}",
                   UK_E_INVALID_REQUEST, "1", "duplicate member name");
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1,\"id\":2}", UK_E_INVALID_REQUEST,
                   "null", "duplicate member name");
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1,\"params\":{\"pin\":\"1\","
                   "\"x\":[{\"k\":1,\"k\":2}]}}",
                   UK_E_INVALID_REQUEST, "1", "duplicate member name");
    /* Objects of up to 16 members and larger ones are checked alike (the checker sorts the
     * names of small ones without allocating). */
    for (int members = 15; members <= 18; members++) {
        for (int dup = 0; dup <= 1; dup++) {
            char text[512];
            int used = snprintf(text, sizeof text,
                                "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"params\":{");
            for (int i = 0; i < members; i++) /* with dup, the last name repeats the first */
                used += snprintf(text + used, sizeof text - (size_t)used, "%s\"k%02d\":%d",
                                 i ? "," : "", dup && i == members - 1 ? 0 : i, i);
            snprintf(text + used, sizeof text - (size_t)used, "}}");
            if (dup)
                expect_refused(text, UK_E_INVALID_REQUEST, "1", "duplicate member name");
            else
                uk_jsonrpc_msg_free(parse_ok(text));
        }
    }
}

static void test_parse_refuses_requests_with_result_or_error(void **state)
{
    (void)state;
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"result\":1}",
                   UK_E_INVALID_REQUEST, "1", "result or error");
    expect_refused("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"error\":{}}",
                   UK_E_INVALID_REQUEST, "1", "result or error");
}

static void test_parse_refuses_malformed_responses(void **state)
{
    (void)state;
    expect_refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":{\"code\":1,"
                   "\"message\":\"m\"}}",
                   UK_E_INVALID_REQUEST, "1", "not both");
    expect_refused("{\"jsonrpc\":\"2.0\",\"result\":1}", UK_E_INVALID_REQUEST, "null",
                   "must have an id");
    expect_refused("{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":1}", UK_E_INVALID_REQUEST, "null",
                   "id must be");
    expect_refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"bad\"}", UK_E_INVALID_REQUEST, "1",
                   "error must be an object");
    expect_refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1.5,\"message\":\"m\"}}",
                   UK_E_INVALID_REQUEST, "1", "error must be an object");
    expect_refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1,\"message\":\"m\","
                   "\"x\":1}}",
                   UK_E_INVALID_REQUEST, "1", "only code, message and data");
    expect_refused("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"params\":{}}",
                   UK_E_INVALID_REQUEST, "1", "params");
}

static void test_parse_without_reply_still_reports_the_reason(void **state)
{
    (void)state;
    uk_jsonrpc_msg *msg = NULL;
    assert_int_equal(uk_jsonrpc_parse("[]", 2, NULL, &msg, NULL), UK_E_INVALID_REQUEST);
    assert_null(msg);
    assert_int_equal(uk_jsonrpc_parse(NULL, 0, NULL, &msg, NULL), UK_E_PARSE_ERROR);
}

static void test_parse_error_reply_gives_offset_of_parse_errors(void **state)
{
    (void)state;
    uk_jsonrpc_msg *msg = NULL;
    cJSON *reply = NULL;
    assert_int_equal(uk_jsonrpc_parse("{\"a\":tru}", 9, NULL, &msg, &reply), UK_E_PARSE_ERROR);
    const cJSON *data =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(reply, "error"), "data");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(data, "offset")->valueint, 5);
    cJSON_Delete(reply);
}

static void test_wipe_tree_zeroes_every_string_of_a_message(void **state)
{
    (void)state;
    uk_jsonrpc_msg *m = parse_ok("{\"jsonrpc\":\"2.0\",\"method\":\"sign\",\"id\":1,\"params\":"
                                 "{\"pin\":\"123456\",\"more\":[\"abc\",{\"k\":\"v\"}]}}");
    cJSON *p = uk_jsonrpc_msg_get0_params(m);
    const cJSON *pin = cJSON_GetObjectItemCaseSensitive(p, "pin");
    const cJSON *more = cJSON_GetObjectItemCaseSensitive(p, "more");
    const cJSON *k = cJSON_GetArrayItem(more, 1)->child;
    uk_jsonrpc_wipe_tree(p);
    assert_memory_equal(pin->valuestring, "\0\0\0\0\0\0", 7);
    assert_memory_equal(pin->string, "\0\0\0", 4); /* names too */
    assert_string_equal(cJSON_GetArrayItem(more, 0)->valuestring, "");
    assert_string_equal(k->valuestring, "");
    assert_string_equal(k->string, "");
    /* Siblings of the wiped tree are left alone. */
    assert_string_equal(uk_jsonrpc_msg_get0_method(m), "sign");
    uk_jsonrpc_msg_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts_request_with_object_params),
        cmocka_unit_test(test_parse_accepts_request_with_array_params_and_string_id),
        cmocka_unit_test(test_parse_accepts_request_without_params),
        cmocka_unit_test(test_parse_accepts_notification),
        cmocka_unit_test(test_parse_accepts_result_and_error_responses),
        cmocka_unit_test(test_parse_accepts_integer_ids_up_to_2_pow_53_minus_1),
        cmocka_unit_test(test_parse_accepts_utf8_and_escaped_surrogate_pairs),
        cmocka_unit_test(test_parse_accepts_depth_32_and_refuses_depth_33),
        cmocka_unit_test(test_parse_accepts_size_limit_and_refuses_one_byte_more),
        cmocka_unit_test(test_parse_honours_caller_limits),
        cmocka_unit_test(test_parse_refuses_text_that_is_not_json),
        cmocka_unit_test(test_parse_refuses_invalid_utf8),
        cmocka_unit_test(test_parse_refuses_escapes_cjson_would_misread),
        cmocka_unit_test(test_parse_refuses_trailing_data),
        cmocka_unit_test(test_parse_refuses_batches_with_a_clear_message),
        cmocka_unit_test(test_parse_refuses_values_that_are_not_objects),
        cmocka_unit_test(test_parse_refuses_wrong_jsonrpc_version_and_echoes_id),
        cmocka_unit_test(test_parse_refuses_missing_or_bad_method),
        cmocka_unit_test(test_parse_refuses_params_that_are_not_structured),
        cmocka_unit_test(test_parse_refuses_bad_ids_without_echoing_them),
        cmocka_unit_test(test_parse_refuses_unknown_and_duplicate_members),
        cmocka_unit_test(test_parse_refuses_requests_with_result_or_error),
        cmocka_unit_test(test_parse_refuses_malformed_responses),
        cmocka_unit_test(test_parse_without_reply_still_reports_the_reason),
        cmocka_unit_test(test_parse_error_reply_gives_offset_of_parse_errors),
        cmocka_unit_test(test_wipe_tree_zeroes_every_string_of_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
