/* The dispatcher with a fake transport: envelopes, limits, events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "uk_config.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_policy.h"
#include "uk_rpc.h"
#include "uk_rpc_call.h"

#define MAX_SENT 64

typedef struct {
    cJSON *sent[MAX_SENT];
    size_t n_sent;
    int closed; /* last close reason, 0 if none */
} fake_client;

typedef struct {
    uv_loop_t loop;
    uk_config *cfg;
    uk_policy *policy;
    uk_rpc *rpc;
} fixture;

static int fake_send(void *ctx, const char *json, size_t len)
{
    fake_client *c = ctx;
    assert_true(c->n_sent < MAX_SENT);
    cJSON *v = cJSON_ParseWithLength(json, len);
    assert_non_null(v);
    c->sent[c->n_sent++] = v;
    return UK_OK;
}

static void fake_close(void *ctx, int err)
{
    fake_client *c = ctx;
    c->closed = err;
}

static const uk_rpc_transport fake_transport = {.send = fake_send, .close = fake_close};

static void client_clear(fake_client *c)
{
    for (size_t i = 0; i < c->n_sent; i++)
        cJSON_Delete(c->sent[i]);
    c->n_sent = 0;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    const char *cfg = "{\"origins\": [\"https://portal.example.cn\"],"
                      " \"extension_ids\": [\"abcdefghijklmnopabcdefghijklmnop\"],"
                      " \"limits\": {\"connections\": 3, \"requests_per_second_per_origin\": 5,"
                      " \"pending_per_connection\": 4}}";
    uk_log_set_level(UK_LOG_LEVEL_ERR);
    setenv("HOME", "/nonexistent", 1);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uk_config_parse(cfg, strlen(cfg), "t", &f->cfg), UK_OK);
    assert_int_equal(uk_policy_new(f->cfg, &f->policy), UK_OK);
    uk_rpc_options opt = {.loop = &f->loop,
                          .policy = f->policy,
                          .daemon_version = "9.9.9",
                          .message_size = f->cfg->limits.message_size,
                          .json_depth = f->cfg->limits.json_depth,
                          .pending_per_connection = f->cfg->limits.pending_per_connection,
                          .connections = f->cfg->limits.connections};
    assert_int_equal(uk_rpc_new(&opt, &f->rpc), UK_OK);
    uk_rpc_set_wss_port(f->rpc, 28473);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    uk_rpc_free(f->rpc);
    uk_policy_free(f->policy);
    uk_config_free(f->cfg);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static uk_rpc_session *open_session(fixture *f, fake_client *c, uk_endpoint e, const char *origin)
{
    uk_rpc_peer peer = {.endpoint = e, .origin = origin};
    uk_rpc_session *s = NULL;
    assert_int_equal(uk_rpc_session_new(f->rpc, &peer, &fake_transport, c, &s), UK_OK);
    return s;
}

static void input(uk_rpc_session *s, const char *text)
{
    uk_rpc_session_input(s, text, strlen(text));
}

static const char *reason_of(const cJSON *msg)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(msg, "error");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(err, "data");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(data, "reason");
    return cJSON_IsString(reason) ? reason->valuestring : "";
}

static void test_rpc_hello_reports_endpoint_origin_and_port(void **state)
{
    fixture *f = *state;
    fake_client c = {0};
    uk_rpc_session *s = open_session(f, &c, UK_ENDPOINT_WSS, "https://portal.example.cn");
    input(s, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"system.hello\"}");
    assert_int_equal(c.n_sent, 1);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(c.sent[0], "result");
    assert_non_null(r);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(c.sent[0], "id")->valueint, 7);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "endpoint")->valuestring, "wss");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "origin")->valuestring,
                        "https://portal.example.cn");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "version")->valuestring, "9.9.9");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r, "wss_port")->valueint, 28473);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r, "protocol")->valueint, 1);
    assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(r, "methods")));
    assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(r, "events")));
    client_clear(&c);
    uk_rpc_session_free(s);
}

static void test_rpc_hello_over_unix_has_null_origin(void **state)
{
    fixture *f = *state;
    fake_client c = {0};
    uk_rpc_session *s = open_session(f, &c, UK_ENDPOINT_UNIX, NULL);
    input(s, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"system.hello\",\"params\":{}}");
    assert_int_equal(c.n_sent, 1);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(c.sent[0], "result");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "origin")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "endpoint")->valuestring, "unix");
    client_clear(&c);
    uk_rpc_session_free(s);
}

static void test_rpc_errors_carry_stable_reasons(void **state)
{
    fixture *f = *state;
    fake_client c = {0};
    uk_rpc_session *s = open_session(f, &c, UK_ENDPOINT_UNIX, NULL);
    const struct {
        const char *in;
        const char *reason;
    } cases[] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"no.such\"}", "METHOD_NOT_FOUND"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.hello\",\"params\":{\"x\":1}}",
         "INVALID_PARAMS"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.subscribe\",\"params\":{\"events\":"
         "[\"nope\"]}}",
         "INVALID_PARAMS"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.subscribe\",\"params\":{\"events\":"
         "5}}",
         "INVALID_PARAMS"},
        {"not json", "PARSE_ERROR"},
        {"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"system.hello\"}", "INVALID_REQUEST"},
        {"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.hello\"}]", "INVALID_REQUEST"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        input(s, cases[i].in);
        assert_int_equal(c.n_sent, 1);
        assert_string_equal(reason_of(c.sent[0]), cases[i].reason);
        client_clear(&c);
    }
    uk_rpc_session_reject(s, UK_E_LIMIT_EXCEEDED);
    assert_int_equal(c.n_sent, 1);
    assert_string_equal(reason_of(c.sent[0]), "LIMIT_EXCEEDED");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(c.sent[0], "id")));
    client_clear(&c);
    assert_int_equal(c.closed, 0);
    uk_rpc_session_free(s);
}

static void test_rpc_notifications_and_responses_get_no_answer(void **state)
{
    fixture *f = *state;
    fake_client c = {0};
    uk_rpc_session *s = open_session(f, &c, UK_ENDPOINT_UNIX, NULL);
    input(s, "{\"jsonrpc\":\"2.0\",\"method\":\"system.hello\"}");
    input(s, "{\"jsonrpc\":\"2.0\",\"method\":\"no.such\"}");
    input(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}");
    assert_int_equal(c.n_sent, 0);
    uk_rpc_session_free(s);
}

static void test_rpc_connection_limit_refuses_extra_sessions(void **state)
{
    fixture *f = *state;
    fake_client c[4] = {0};
    uk_rpc_session *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = open_session(f, &c[i], UK_ENDPOINT_UNIX, NULL);
    assert_int_equal(uk_rpc_session_count(f->rpc), 3);
    uk_rpc_peer peer = {.endpoint = UK_ENDPOINT_UNIX};
    uk_rpc_session *extra = NULL;
    assert_int_equal(uk_rpc_session_new(f->rpc, &peer, &fake_transport, &c[3], &extra),
                     UK_E_LIMIT_EXCEEDED);
    assert_null(extra);
    uk_rpc_session_free(s[0]);
    extra = open_session(f, &c[3], UK_ENDPOINT_UNIX, NULL);
    uk_rpc_session_free(extra);
    uk_rpc_session_free(s[1]);
    uk_rpc_session_free(s[2]);
    assert_int_equal(uk_rpc_session_count(f->rpc), 0);
}

static void test_rpc_rate_limit_per_origin(void **state)
{
    fixture *f = *state;
    fake_client a = {0}, b = {0}, u = {0};
    /* Two connections of one origin share its budget of 5 per second. */
    uk_rpc_session *sa = open_session(f, &a, UK_ENDPOINT_WSS, "https://portal.example.cn");
    uk_rpc_session *sb = open_session(f, &b, UK_ENDPOINT_WSS, "https://portal.example.cn");
    uk_rpc_session *su = open_session(f, &u, UK_ENDPOINT_UNIX, NULL);
    const char *hello = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.hello\"}";
    for (int i = 0; i < 3; i++)
        input(sa, hello);
    for (int i = 0; i < 3; i++)
        input(sb, hello);
    size_t limited = 0;
    for (size_t i = 0; i < a.n_sent; i++)
        limited += strcmp(reason_of(a.sent[i]), "RATE_LIMITED") == 0;
    for (size_t i = 0; i < b.n_sent; i++)
        limited += strcmp(reason_of(b.sent[i]), "RATE_LIMITED") == 0;
    assert_int_equal(limited, 1);
    /* The local socket is never limited. */
    for (int i = 0; i < 20; i++)
        input(su, hello);
    for (size_t i = 0; i < u.n_sent; i++)
        assert_string_equal(reason_of(u.sent[i]), "");
    client_clear(&a);
    client_clear(&b);
    client_clear(&u);
    uk_rpc_session_free(sa);
    uk_rpc_session_free(sb);
    uk_rpc_session_free(su);
}

static void test_rpc_events_reach_only_subscribers(void **state)
{
    fixture *f = *state;
    fake_client a = {0}, b = {0};
    uk_rpc_session *sa = open_session(f, &a, UK_ENDPOINT_UNIX, NULL);
    uk_rpc_session *sb = open_session(f, &b, UK_ENDPOINT_UNIX, NULL);
    input(sa, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.subscribe\","
              "\"params\":{\"events\":[\"token.inserted\"]}}");
    assert_int_equal(a.n_sent, 1);
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(a.sent[0], "result"), "events");
    assert_int_equal(cJSON_GetArraySize(ev), 1);
    client_clear(&a);

    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "reader", "R");
    uk_rpc_notify(f->rpc, "token.inserted", params);
    uk_rpc_notify(f->rpc, "token.removed", NULL);
    assert_int_equal(a.n_sent, 1);
    assert_int_equal(b.n_sent, 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(a.sent[0], "method")->valuestring,
                        "token.inserted");
    assert_null(cJSON_GetObjectItemCaseSensitive(a.sent[0], "id"));
    client_clear(&a);

    input(sa, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"system.unsubscribe\"}");
    client_clear(&a);
    uk_rpc_notify(f->rpc, "token.inserted", NULL);
    assert_int_equal(a.n_sent, 0);

    /* Subscribing to everything, then one event off. */
    input(sb, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"system.subscribe\"}");
    input(sb, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"system.unsubscribe\","
              "\"params\":{\"events\":[\"token.removed\"]}}");
    ev = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(b.sent[1], "result"),
                                          "events");
    size_t n;
    uk_rpc_event_names(&n);
    assert_int_equal((size_t)cJSON_GetArraySize(ev), n - 1);
    client_clear(&b);
    uk_rpc_session_free(sa);
    uk_rpc_session_free(sb);
}

static void test_rpc_random_garbage_is_always_answered(void **state)
{
    fixture *f = *state;
    fake_client c = {0};
    uk_rpc_session *s = open_session(f, &c, UK_ENDPOINT_UNIX, NULL);
    const char *seed = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.hello\",\"params\":{}}";
    char buf[128];
    srand(1234);
    size_t answered = 0;
    for (int i = 0; i < 1000; i++) {
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        for (int k = 0; k < 3; k++)
            buf[(size_t)rand() % n] = (char)(rand() % 256);
        uk_rpc_session_input(s, buf, n);
        answered += c.n_sent;
        client_clear(&c);
    }
    /* Mutations that are still valid notifications or responses get no
     * answer; everything else gets exactly one. */
    assert_true(answered > 900);
    assert_int_equal(c.closed, 0);
    uk_rpc_session_free(s);
}

static void test_rpc_attach_turns_local_session_into_extension(void **state)
{
    fixture *f = *state;
    fake_client c = {0}, w = {0};
    uk_rpc_session *s = open_session(f, &c, UK_ENDPOINT_UNIX, NULL);
    uk_rpc_session *ws = open_session(f, &w, UK_ENDPOINT_WSS, "https://portal.example.cn");
    const char *good = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.attach\","
                       "\"params\":{\"extension\":\"chrome-extension://"
                       "abcdefghijklmnopabcdefghijklmnop/\"}}";
    /* A web page may not claim to be an extension. */
    input(ws, good);
    assert_string_equal(reason_of(w.sent[0]), "METHOD_NOT_ALLOWED");
    /* An extension that is not configured is refused; so is a malformed one. */
    input(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.attach\","
             "\"params\":{\"extension\":\"chrome-extension://"
             "ppppppppppppppppppppppppppppppppp/\"}}");
    assert_string_equal(reason_of(c.sent[0]), "ORIGIN_NOT_ALLOWED");
    input(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.attach\","
             "\"params\":{\"extension\":\"https://evil.test/\"}}");
    assert_string_equal(reason_of(c.sent[1]), "INVALID_PARAMS");
    client_clear(&c);
    input(s, good);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(c.sent[0], "result"));
    input(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"system.hello\"}");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(c.sent[1], "result");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "endpoint")->valuestring,
                        "native-messaging");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "origin")->valuestring,
                        "chrome-extension://abcdefghijklmnopabcdefghijklmnop");
    /* Once attached, the session has lost the local user's privileges. */
    input(s, good);
    assert_string_equal(reason_of(c.sent[2]), "METHOD_NOT_ALLOWED");
    client_clear(&c);
    client_clear(&w);
    uk_rpc_session_free(s);
    uk_rpc_session_free(ws);
}

static void test_rpc_sign_params_are_checked_before_any_card_work(void **state)
{
    fixture *f = *state;
    fake_client c = {0}, w = {0};
    uk_rpc_session *s = open_session(f, &c, UK_ENDPOINT_UNIX, NULL);
    uk_rpc_session *ws = open_session(f, &w, UK_ENDPOINT_WSS, "https://portal.example.cn");
#define D    "\"data\":\"aGVsbG8=\""
#define HEAD "{\"token\":\"piv:1\",\"key\":\"9a\",\"algorithm\":"
    const struct {
        uk_rpc_session *s;
        fake_client *c;
        const char *params;
        const char *reason;
    } cases[] = {
        /* A page never passes a PIN, valid or not. */
        {ws, &w, HEAD "\"ECDSA-SHA256\"," D ",\"pin\":\"123456\"}", "PIN_FROM_PAGE_DISABLED"},
        {s, &c, HEAD "\"MD5\"," D ",\"pin\":\"123456\"}", "INVALID_PARAMS"},
        {s, &c, HEAD "\"ECDSA-SHA256\"," D ",\"digest\":\"aGVsbG8=\",\"pin\":\"123456\"}",
         "INVALID_PARAMS"},
        {s, &c, HEAD "\"ECDSA-SHA256\",\"digest\":\"aGVsbG8=\",\"pin\":\"123456\"}",
         "INVALID_PARAMS"},
        /* No PIN: the dialog would ask, once the key is found; no token layer here. */
        {s, &c, HEAD "\"ECDSA-SHA256\"," D "}", "NO_SERVICE"},
        {s, &c, "{\"key\":\"9a\",\"algorithm\":\"ECDSA-SHA256\"," D ",\"pin\":\"123456\"}",
         "INVALID_PARAMS"},
        /* Everything right, but no token layer in this test: NO_SERVICE. */
        {s, &c, HEAD "\"ECDSA-SHA256\"," D ",\"pin\":\"123456\"}", "NO_SERVICE"},
    };
#undef D
#undef HEAD
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char msg[640];
        snprintf(msg, sizeof(msg),
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"sign\",\"params\":%s}",
                 cases[i].params);
        input(cases[i].s, msg);
        assert_int_equal(cases[i].c->n_sent, 1);
        if (strcmp(reason_of(cases[i].c->sent[0]), cases[i].reason) != 0)
            fail_msg("case %zu: %s, expected %s", i, reason_of(cases[i].c->sent[0]),
                     cases[i].reason);
        client_clear(cases[i].c);
    }
    input(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"token.list\"}");
    assert_string_equal(reason_of(c.sent[0]), "NO_SERVICE");
    client_clear(&c);
    input(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"cert.list\",\"params\":{}}");
    assert_string_equal(reason_of(c.sent[0]), "INVALID_PARAMS");
    client_clear(&c);
    uk_rpc_session_free(s);
    uk_rpc_session_free(ws);
}

/* A page the user has not approved may hold only a few sessions, and part of the budget is
 * kept for the local tools: a foreign page cannot lock the portals or ukeyctl out (found by the
 * attack suite, tests/e2e/attacks.test.js case 13). */
static void test_rpc_unapproved_and_web_sessions_have_their_own_budgets(void **state)
{
    fixture *f = *state;
    uk_rpc *rpc = NULL;
    uk_rpc_options opt = {.loop = &f->loop,
                          .policy = f->policy,
                          .daemon_version = "9.9.9",
                          .message_size = 65536,
                          .json_depth = 32,
                          .pending_per_connection = 4,
                          .connections = 16};
    assert_int_equal(uk_rpc_new(&opt, &rpc), UK_OK);
    fake_client c = {0};
    uk_rpc_session *open[16] = {0};
    size_t n = 0;
    uk_rpc_peer foreign = {.endpoint = UK_ENDPOINT_WSS, .origin = "https://foreign.example"};
    uk_rpc_peer other = {.endpoint = UK_ENDPOINT_WSS, .origin = "https://other.example"};
    uk_rpc_peer portal = {.endpoint = UK_ENDPOINT_WSS, .origin = "https://portal.example.cn"};
    uk_rpc_peer local = {.endpoint = UK_ENDPOINT_UNIX, .origin = NULL};
    uk_rpc_session *s = NULL;
    /* Two per unapproved origin. */
    assert_int_equal(uk_rpc_session_new(rpc, &foreign, &fake_transport, &c, &open[n++]), UK_OK);
    assert_int_equal(uk_rpc_session_new(rpc, &foreign, &fake_transport, &c, &open[n++]), UK_OK);
    assert_int_equal(uk_rpc_session_new(rpc, &foreign, &fake_transport, &c, &s),
                     UK_E_LIMIT_EXCEEDED);
    assert_int_equal(uk_rpc_session_new(rpc, &other, &fake_transport, &c, &open[n++]), UK_OK);
    /* The approved portal fills the web part: 16 - 4 kept for local tools. */
    while (n < 12)
        assert_int_equal(uk_rpc_session_new(rpc, &portal, &fake_transport, &c, &open[n++]), UK_OK);
    assert_int_equal(uk_rpc_session_new(rpc, &portal, &fake_transport, &c, &s),
                     UK_E_LIMIT_EXCEEDED);
    /* The local tools still get in, up to the whole limit. */
    while (n < 16)
        assert_int_equal(uk_rpc_session_new(rpc, &local, &fake_transport, &c, &open[n++]), UK_OK);
    assert_int_equal(uk_rpc_session_new(rpc, &local, &fake_transport, &c, &s), UK_E_LIMIT_EXCEEDED);
    /* A freed unapproved session frees its origin's slot. */
    uk_rpc_session_free(open[0]);
    open[0] = NULL;
    assert_int_equal(uk_rpc_session_new(rpc, &foreign, &fake_transport, &c, &open[0]), UK_OK);
    for (size_t i = 0; i < 16; i++)
        uk_rpc_session_free(open[i]);
    uk_rpc_free(rpc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rpc_unapproved_and_web_sessions_have_their_own_budgets,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_hello_reports_endpoint_origin_and_port, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rpc_hello_over_unix_has_null_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_errors_carry_stable_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_notifications_and_responses_get_no_answer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rpc_connection_limit_refuses_extra_sessions, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rpc_rate_limit_per_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_events_reach_only_subscribers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_random_garbage_is_always_answered, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rpc_attach_turns_local_session_into_extension, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rpc_sign_params_are_checked_before_any_card_work,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
