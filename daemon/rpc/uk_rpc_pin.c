/* Handlers for the PIN: pin.status (the tries left, read from the key), pin.verify (the PIN
 * checked and forgotten again: a portal's "log in") and pin.change. The current PIN goes through
 * the guard exactly like the PIN of `sign` (dialog, page-PIN policy, last-try confirmation, rate
 * limit); the new PIN comes from params under the same policy, or from two further PIN dialogs
 * that must agree. */
#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_prompt.h"
#include "uk_rpc_call.h"
#include "uk_rpc_guard.h"
#include "uk_rpc_handlers.h"
#include "uk_token.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pin_req {
    uk_rpc_call *call;
    uk__rpc_guard *guard;
    char token[96];
    uk_secret *old_pin; /* from the guard, until the card gets it */
    uk_secret *new_pin; /* from params or the dialogs; kept for a re-asked old PIN */
    uk_secret *first;   /* the first of the two new-PIN dialogs */
    bool mismatch;      /* the two dialogs differed: ask again, saying so */
} pin_req;

static void pin_req_free(void *arg)
{
    pin_req *req = arg;
    if (req == NULL)
        return;
    uk_secret_free(req->old_pin);
    uk_secret_free(req->new_pin);
    uk_secret_free(req->first);
    free(req);
}

static cJSON *retries_json(int retries_left)
{
    cJSON *o = cJSON_CreateObject();
    if (o != NULL && !(retries_left >= 0 ? cJSON_AddNumberToObject(o, "retries_left", retries_left)
                                         : cJSON_AddNullToObject(o, "retries_left"))) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

/* ---- pin.status ---- */

typedef struct status_req {
    uk_rpc_call *call;
    char token[96];
} status_req;

static void status_done(void *arg, int err, int retries_left)
{
    status_req *req = arg;
    if (err != UK_OK) {
        uk_rpc_call_error(req->call, err, NULL, uk__rpc_error_extra(req->call, err, req->token));
    } else {
        cJSON *r = retries_json(retries_left);
        if (r == NULL || !cJSON_AddStringToObject(r, "token", req->token)) {
            cJSON_Delete(r);
            uk_rpc_call_error(req->call, UK_E_NO_MEMORY, NULL, NULL);
        } else {
            uk_rpc_call_result(req->call, r);
        }
    }
    free(req);
}

/* pin.status {token}: one card exchange that spends no try (PIV: VERIFY without data). */
void uk__rpc_pin_status(uk_rpc_call *call)
{
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(call));
    const char *token = NULL;
    uk_jsonrpc_param_error pe;
    if (uk_jsonrpc_param_get0_string(uk_rpc_call_params(call), "token", true, 95, &token, &pe) !=
        UK_OK) {
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    status_req *req = calloc(1, sizeof(*req));
    int rc = req == NULL ? UK_E_NO_MEMORY : opt->tokens == NULL ? UK_E_NO_SERVICE : UK_OK;
    if (rc == UK_OK) {
        req->call = call;
        snprintf(req->token, sizeof(req->token), "%s", token);
        rc = uk_tokens_pin_status(opt->tokens, req->token, status_done, req);
    }
    if (rc != UK_OK) {
        free(req);
        uk_rpc_call_error(call, rc, NULL, NULL);
    }
}

/* ---- pin.verify ---- */

static void verified(void *arg, int err, int retries_left)
{
    pin_req *req = arg;
    if (uk__rpc_guard_done(req->guard, err, retries_left))
        return; /* a wrong PIN typed in the dialog: asked again */
    if (err == UK_E_PIN_INCORRECT || err == UK_E_PIN_LOCKED) {
        uk_rpc_call_error(req->call, err, NULL, retries_json(retries_left));
    } else if (err != UK_OK) {
        uk_rpc_call_error(req->call, err, NULL, uk__rpc_error_extra(req->call, err, req->token));
    } else {
        cJSON *r = retries_json(retries_left);
        if (r == NULL || !cJSON_AddStringToObject(r, "token", req->token) ||
            !cJSON_AddBoolToObject(r, "verified", true)) {
            cJSON_Delete(r);
            uk_rpc_call_error(req->call, UK_E_NO_MEMORY, NULL, NULL);
        } else {
            uk_rpc_call_result(req->call, r);
        }
    }
    pin_req_free(req);
}

static int verify_run(uk__rpc_guard *g, void *arg, uk_secret *pin)
{
    pin_req *req = arg;
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(req->call));
    req->guard = g;
    return uk_tokens_verify_pin(opt->tokens, req->token, pin, verified, req);
}

/* pin.verify {token, pin?}: the PIN from the dialog (or params, under the page-PIN policy). */
void uk__rpc_pin_verify(uk_rpc_call *call)
{
    const char *token = NULL;
    uk_jsonrpc_param_error pe;
    if (uk__rpc_guard_refuse_pin(call))
        return;
    if (uk_jsonrpc_param_get0_string(uk_rpc_call_params(call), "token", true, 95, &token, &pe) !=
        UK_OK) {
        uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(uk_rpc_call_params(call), "pin"));
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    pin_req *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(uk_rpc_call_params(call), "pin"));
        uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
        return;
    }
    req->call = call;
    snprintf(req->token, sizeof(req->token), "%s", token);
    uk__rpc_guard_info info = {
        .action = UK__ACTION_VERIFY_PIN, .token = req->token, .need_pin = true};
    uk__rpc_guard_start(call, &info, verify_run, pin_req_free, req);
}

/* ---- pin.change ---- */

static void changed(void *arg, int err, int retries_left)
{
    pin_req *req = arg;
    if (uk__rpc_guard_done(req->guard, err, retries_left))
        return; /* a wrong current PIN typed in the dialog: asked again, the new one kept */
    if (err == UK_E_PIN_INCORRECT || err == UK_E_PIN_LOCKED) {
        uk_rpc_call_error(req->call, err, NULL, retries_json(retries_left));
    } else if (err != UK_OK) {
        uk_rpc_call_error(req->call, err, NULL, uk__rpc_error_extra(req->call, err, req->token));
    } else {
        UK_LOG_NOTICE("pin.change: the PIN of %s was changed", req->token);
        cJSON *r = retries_json(retries_left);
        if (r == NULL || !cJSON_AddStringToObject(r, "token", req->token) ||
            !cJSON_AddBoolToObject(r, "changed", true)) {
            cJSON_Delete(r);
            uk_rpc_call_error(req->call, UK_E_NO_MEMORY, NULL, NULL);
        } else {
            uk_rpc_call_result(req->call, r);
        }
    }
    pin_req_free(req);
}

/* Both PINs known: to the card. A copy of the new PIN stays for a re-asked current PIN. */
static int change_on_card(pin_req *req)
{
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(req->call));
    uk_secret *old_pin = req->old_pin;
    req->old_pin = NULL;
    uk_secret *new_pin =
        uk_secret_new(uk_secret_get0_data(req->new_pin), uk_secret_get0_len(req->new_pin));
    if (new_pin == NULL) {
        uk_secret_free(old_pin);
        return UK_E_NO_MEMORY;
    }
    return uk_tokens_change_pin(opt->tokens, req->token, old_pin, new_pin, changed, req);
}

static void ask_new(pin_req *req);

/* The operation failed after run returned: the guard and the answer. */
static void fail_async(pin_req *req, int err)
{
    if (!uk__rpc_guard_done(req->guard, err, -1)) {
        uk_rpc_call_error(req->call, err, NULL, NULL);
        pin_req_free(req);
    }
}

static void new_answered(void *arg, int err, uk_secret *pin)
{
    pin_req *req = arg;
    if (err == UK_OK && uk_rpc_call_session(req->call) == NULL) {
        err = UK_E_CANCELLED; /* the caller went away while the user typed */
        uk_secret_free(pin);
        pin = NULL;
    }
    if (err != UK_OK) {
        fail_async(req, err);
        return;
    }
    if (req->first == NULL) {
        req->first = pin;
        ask_new(req);
        return;
    }
    size_t n = uk_secret_get0_len(pin);
    bool same = n == uk_secret_get0_len(req->first) &&
                CRYPTO_memcmp(uk_secret_get0_data(pin), uk_secret_get0_data(req->first), n) == 0;
    uk_secret_free(req->first);
    req->first = NULL;
    if (!same) {
        uk_secret_free(pin);
        req->mismatch = true;
        ask_new(req);
        return;
    }
    req->new_pin = pin;
    int rc = change_on_card(req);
    if (rc != UK_OK)
        fail_async(req, rc);
}

static void ask_new(pin_req *req)
{
    bool zh = uk__rpc_chinese();
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(req->call));
    uk_prompt_text t = {
        .title = zh ? "ukeyd：修改 PIN 码" : "ukeyd: change the PIN",
        .description = req->first == NULL
                           ? (zh ? "请输入新的 PIN 码。" : "Enter the new PIN.")
                           : (zh ? "请再次输入新的 PIN 码。" : "Enter the new PIN again."),
        .prompt = zh ? "新 PIN 码：" : "New PIN:",
        .error = req->mismatch && req->first == NULL
                     ? (zh ? "两次输入的 PIN 码不一致" : "The two PINs did not match")
                     : NULL,
        .ok = zh ? "确定" : "OK",
    };
    int rc = opt->prompt == NULL ? UK_E_PROMPT_UNAVAILABLE
                                 : uk_prompt_get_pin(opt->prompt, &t, new_answered, req, NULL);
    if (rc != UK_OK)
        fail_async(req, rc);
}

static int change_run(uk__rpc_guard *g, void *arg, uk_secret *pin)
{
    pin_req *req = arg;
    req->guard = g;
    uk_secret_free(req->old_pin);
    req->old_pin = pin;
    if (req->new_pin != NULL)
        return change_on_card(req);
    ask_new(req); /* answers through fail_async or the card from here on */
    return UK_OK;
}

/* pin.change {token, old_pin?, new_pin?}: both PINs in params (the local user's tools, origins
 * with pin_from_page) or neither (the dialogs). */
void uk__rpc_pin_change(uk_rpc_call *call)
{
    cJSON *params = uk_rpc_call_params(call);
    const char *token = NULL;
    uk_jsonrpc_param_error pe;
    pin_req *req = NULL;
    if (uk__rpc_guard_refuse_pin(call))
        return;
    bool has_old = cJSON_GetObjectItemCaseSensitive(params, "old_pin") != NULL;
    bool has_new = cJSON_GetObjectItemCaseSensitive(params, "new_pin") != NULL;
    if (uk_jsonrpc_param_get0_string(params, "token", true, 95, &token, &pe) != UK_OK)
        goto param_error;
    if (has_old != has_new) {
        pe = (uk_jsonrpc_param_error){.field = has_old ? "new_pin" : "old_pin",
                                      .problem = "is required with the other PIN"};
        goto param_error;
    }
    if ((req = calloc(1, sizeof(*req))) == NULL) {
        uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "old_pin"));
        uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "new_pin"));
        uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
        return;
    }
    if (has_new && uk_jsonrpc_param_get1_secret(params, "new_pin", true, UK_LIMIT_PIN_LENGTH,
                                                &req->new_pin, &pe) != UK_OK)
        goto param_error;
    req->call = call;
    snprintf(req->token, sizeof(req->token), "%s", token);
    uk__rpc_guard_info info = {.action = UK__ACTION_CHANGE_PIN,
                               .token = req->token,
                               .need_pin = true,
                               .pin_param = "old_pin"};
    uk__rpc_guard_start(call, &info, change_run, pin_req_free, req);
    return;
param_error:
    uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "old_pin"));
    uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "new_pin"));
    pin_req_free(req);
    uk_rpc_call_param_error(call, &pe);
}
