/*
 * fuzz_jsonrpc.c - libFuzzer target for the JSON-RPC codec (protocol/uk_jsonrpc.h).
 *
 * The input is one message. It is parsed with the default limits and with small ones (so the
 * size and depth checks are reached from short inputs); a failure must come with an error reply
 * that serialises; a success is taken through every getter and parameter helper with the names
 * the methods use, then the error replies for its id. Corpus: tests/fuzz/corpus/jsonrpc/.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "uk_err.h"
#include "uk_jsonrpc.h"
#include "uk_secret.h"

static void check_reply(cJSON *reply)
{
    char *text = NULL;
    size_t len = 0;
    if (reply == NULL)
        return;
    if (uk_jsonrpc_print(reply, &text, &len) == UK_OK) {
        if (strlen(text) != len)
            abort();
        free(text);
    }
    cJSON_Delete(reply);
}

static void exercise_params(uk_jsonrpc_msg *msg)
{
    static const char *const names[] = {"pin",  "data",   "key_id", "events", "digest",
                                        "hash", "scheme", "force",  "count",  ""};
    const size_t n_names = sizeof(names) / sizeof(names[0]);
    const cJSON *id = uk_jsonrpc_msg_get0_id(msg);
    cJSON *params = uk_jsonrpc_msg_get0_params(msg);
    uk_jsonrpc_param_error pe = {0};
    cJSON *reply = NULL;

    for (size_t i = 0; i < n_names; i++) {
        const char *s = NULL;
        bool b = false;
        int64_t v = 0;
        uint8_t *bytes = NULL;
        size_t blen = 0;
        if (uk_jsonrpc_param_get0_string(params, names[i], i % 2 == 0, 16, &s, &pe) == UK_OK &&
            s != NULL && strlen(s) > 16)
            abort();
        if (uk_jsonrpc_param_get_bool(params, names[i], false, &b, &pe) == UK_OK && b != !!b)
            abort();
        if (uk_jsonrpc_param_get_int(params, names[i], true, -5, 1000, &v, &pe) == UK_OK &&
            (v < -5 || v > 1000))
            abort();
        if (uk_jsonrpc_param_get1_base64(params, names[i], false, 64, &bytes, &blen, &pe) ==
            UK_OK) {
            if (blen > 64)
                abort();
            free(bytes);
        }
    }
    if (uk_jsonrpc_params_check_known(params, names, n_names - 1, &pe) != UK_OK) {
        if (pe.field == NULL || pe.problem == NULL)
            abort();
        if (uk_jsonrpc_param_error_new(&reply, id, &pe) == UK_OK)
            check_reply(reply);
    }
    /* Last: moves the PIN out and wipes it inside params. */
    uk_secret *pin = NULL;
    if (uk_jsonrpc_param_get1_secret(params, "pin", false, 64, &pin, &pe) == UK_OK)
        uk_secret_free(pin);
    if (uk_jsonrpc_error_new(&reply, id, UK_E_INVALID_PARAMS, "fuzz", NULL) == UK_OK)
        check_reply(reply);
}

static void parse_once(const char *text, size_t len, const uk_jsonrpc_limits *limits)
{
    uk_jsonrpc_msg *msg = NULL;
    cJSON *reply = NULL;
    int rc = uk_jsonrpc_parse(text, len, limits, &msg, &reply);
    if (rc != UK_OK) {
        if (msg != NULL || (reply == NULL && rc != UK_E_NO_MEMORY))
            abort();
        check_reply(reply);
        return;
    }
    if (msg == NULL || reply != NULL)
        abort();
    uk_jsonrpc_kind kind = uk_jsonrpc_msg_kind(msg);
    const char *method = uk_jsonrpc_msg_get0_method(msg);
    switch (kind) {
    case UK_JSONRPC_REQUEST:
        if (method == NULL || uk_jsonrpc_msg_get0_id(msg) == NULL)
            abort();
        break;
    case UK_JSONRPC_NOTIFICATION:
        if (method == NULL)
            abort();
        break;
    case UK_JSONRPC_RESPONSE:
        if (method != NULL || uk_jsonrpc_msg_get0_params(msg) != NULL ||
            (uk_jsonrpc_msg_get0_result(msg) == NULL) == (uk_jsonrpc_msg_get0_error(msg) == NULL))
            abort();
        break;
    default:
        abort();
    }
    if (kind != UK_JSONRPC_RESPONSE)
        exercise_params(msg);
    uk_jsonrpc_msg_free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uk_fuzz_quiet();
    const char *text = (const char *)data;
    parse_once(text, size, NULL);
    const uk_jsonrpc_limits small = {.max_message = 256, .max_depth = 3};
    parse_once(text, size, &small);
    return 0;
}
