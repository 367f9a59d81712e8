/* The method table: every method the daemon answers, in one place. Later
 * issues add token, certificate, renewal and signing methods here. */
#include "uk_err.h"
#include "uk_log.h"
#include "uk_policy.h"
#include "uk_rpc_call.h"
#include "uk_rpc_handlers.h"

#include <stdio.h>
#include <string.h>

/* The protocol's version: bumped on any change a client could notice. */
#define UK_PROTOCOL_VERSION 1

static const char *endpoint_name(uk_endpoint e)
{
    switch (e) {
    case UK_ENDPOINT_UNIX:
        return "unix";
    case UK_ENDPOINT_WSS:
        return "wss";
    case UK_ENDPOINT_NM:
        return "native-messaging";
    }
    return "unknown";
}

/* Longest method table system.hello lists from (checked when it answers). */
#define HELLO_METHODS_MAX 32

/*
 * Members for system.hello, a call a page may make often. The answer is printed before
 * uk_rpc_call_result returns, so names and texts that live at least as long as the call
 * (literals, the daemon's version) go into the tree as references and constant names, and the
 * two lists as one pre-printed value each (uk_jsonrpc_string_array_new): no copies, a dozen nodes.
 */
static bool add_item(cJSON *obj, const char *name, cJSON *item)
{
    if (item != NULL && cJSON_AddItemToObjectCS(obj, name, item))
        return true;
    cJSON_Delete(item);
    return false;
}

static bool add_text(cJSON *obj, const char *name, const char *text)
{
    return add_item(obj, name, cJSON_CreateStringReference(text));
}

static void system_hello(uk_rpc_call *call)
{
    uk_rpc *rpc = uk_rpc_call_rpc(call);
    const uk_rpc_peer *peer = uk_rpc_call_peer(call);
    const uk_rpc_options *opt = uk_rpc_get0_options(rpc);
    cJSON *r = NULL, *limits = NULL;
    const char *names[HELLO_METHODS_MAX];
    size_t n, n_names = 0;
    const uk_rpc_method *m = uk_rpc_methods(&n);
    if (n > HELLO_METHODS_MAX) {
        UK_LOG_ERR("system.hello: %zu methods, room for %d", n, HELLO_METHODS_MAX);
        uk_rpc_call_error(call, UK_E_INTERNAL, NULL, NULL);
        return;
    }
    uk_origin_access access = peer->endpoint == UK_ENDPOINT_UNIX
                                  ? UK_ACCESS_ALLOWED
                                  : uk_policy_origin_access(opt->policy, peer->origin);
    bool own = peer->endpoint == UK_ENDPOINT_NM && peer->via == NULL;
    for (size_t i = 0; i < n; i++) {
        /* The methods this caller may call now (pairing changes the list). */
        bool may;
        if (peer->endpoint == UK_ENDPOINT_UNIX)
            may = !(m[i].flags & UK_METHOD_PAIRING);
        else if (own)
            may = (m[i].flags & (UK_METHOD_PUBLIC | UK_METHOD_EXTENSION)) != 0;
        else if (m[i].flags & UK_METHOD_LOCAL_ONLY)
            may = false;
        else if (access == UK_ACCESS_PAIRABLE)
            may = (m[i].flags & (UK_METHOD_PUBLIC | UK_METHOD_PAIRING)) != 0;
        else
            may = (m[i].flags & UK_METHOD_PUBLIC) ||
                  (!(m[i].flags & UK_METHOD_PAIRING) &&
                   uk_policy_method_allowed(opt->policy, peer->origin, m[i].name));
        if (may)
            names[n_names++] = m[i].name;
    }
    const char *const *ev = uk_rpc_event_names(&n);
    uint16_t port = uk_rpc_wss_port(rpc);
    r = cJSON_CreateObject();
    limits = cJSON_CreateObject();
    if (!add_item(r, "methods", uk_jsonrpc_string_array_new(names, n_names)) ||
        !add_item(r, "events", uk_jsonrpc_string_array_new(ev, n))) {
        cJSON_Delete(limits);
        goto oom;
    }
    if (!add_item(r, "limits", limits) || !add_text(r, "name", "ukeyd") ||
        !add_item(r, "protocol", cJSON_CreateNumber(UK_PROTOCOL_VERSION)) ||
        !add_text(r, "version", uk_rpc_daemon_version(rpc)) ||
        !add_text(r, "endpoint", endpoint_name(peer->endpoint)) ||
        !add_item(r, "origin",
                  peer->origin ? cJSON_CreateString(peer->origin) : cJSON_CreateNull()) ||
        !add_text(r, "access",
                  peer->endpoint == UK_ENDPOINT_UNIX ? "local"
                  : access == UK_ACCESS_PAIRED       ? "paired"
                  : access == UK_ACCESS_PAIRABLE     ? "pairable"
                                                     : "allowed") ||
        !add_item(r, "wss_port", port ? cJSON_CreateNumber(port) : cJSON_CreateNull()) ||
        !add_item(limits, "message_size", cJSON_CreateNumber((double)opt->message_size)) ||
        !add_item(limits, "json_depth", cJSON_CreateNumber((double)opt->json_depth)) ||
        !add_item(limits, "pending_per_connection",
                  cJSON_CreateNumber((double)opt->pending_per_connection)))
        goto oom;
    uk_rpc_call_result(call, r);
    return;
oom:
    cJSON_Delete(r);
    uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
}

/* system.subscribe / system.unsubscribe {events?: [names]}: all events when
 * absent. Answers with the session's subscriptions afterwards. */
static void subscribe(uk_rpc_call *call, bool on)
{
    cJSON *params = uk_rpc_call_params(call);
    const cJSON *list =
        cJSON_IsObject(params) ? cJSON_GetObjectItemCaseSensitive(params, "events") : NULL;
    uk_rpc_session *s = uk_rpc_call_session(call);
    size_t n;
    const char *const *names = uk_rpc_event_names(&n);
    if (params != NULL && !cJSON_IsObject(params)) {
        uk_jsonrpc_param_error pe = {.field = "", .problem = "must be an object"};
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    if (list != NULL) {
        const cJSON *e;
        if (!cJSON_IsArray(list)) {
            uk_jsonrpc_param_error pe = {.field = "events", .problem = "must be an array"};
            uk_rpc_call_param_error(call, &pe);
            return;
        }
        /* Check every name before changing anything. */
        cJSON_ArrayForEach(e, list)
        {
            bool known = false;
            for (size_t i = 0; cJSON_IsString(e) && i < n && !known; i++)
                known = strcmp(e->valuestring, names[i]) == 0;
            if (!known) {
                uk_jsonrpc_param_error pe = {.field = "events",
                                             .problem = "names an unknown event"};
                uk_rpc_call_param_error(call, &pe);
                return;
            }
        }
        cJSON_ArrayForEach(e, list)
        {
            if (s != NULL && uk_rpc_session_subscribe(s, e->valuestring, on) != UK_OK) {
                uk_rpc_call_error(call, UK_E_INTERNAL, NULL, NULL);
                return;
            }
        }
    } else if (s != NULL) {
        for (size_t i = 0; i < n; i++)
            if (uk_rpc_session_subscribe(s, names[i], on) != UK_OK) {
                uk_rpc_call_error(call, UK_E_INTERNAL, NULL, NULL);
                return;
            }
    }
    cJSON *r = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(r, "events");
    if (r == NULL || arr == NULL) {
        cJSON_Delete(r);
        uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
        return;
    }
    for (size_t i = 0; s != NULL && i < n; i++)
        if (uk_rpc_session_subscribed(s, names[i]))
            cJSON_AddItemToArray(arr, cJSON_CreateString(names[i]));
    uk_rpc_call_result(call, r);
}

static void system_subscribe(uk_rpc_call *call)
{
    subscribe(call, true);
}

static void system_unsubscribe(uk_rpc_call *call)
{
    subscribe(call, false);
}

/* system.attach {extension: "chrome-extension://ID/"}: sent once by ukeyd-nm
 * over the local socket to say which extension Chrome started it for. The
 * ID must be allowed in the configuration. */
static void system_attach(uk_rpc_call *call)
{
    const char *ext = NULL;
    uk_jsonrpc_param_error pe;
    uk_rpc_session *s = uk_rpc_call_session(call);
    if (uk_jsonrpc_param_get0_string(uk_rpc_call_params(call), "extension", true, 128, &ext, &pe) !=
        UK_OK) {
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    static const char prefix[] = "chrome-extension://";
    char id[64];
    size_t n = strlen(ext), plen = sizeof(prefix) - 1;
    /* Chrome passes the origin with a trailing slash; accept it with or
     * without, nothing else. */
    if (n > 0 && ext[n - 1] == '/')
        n--;
    if (n <= plen || n - plen >= sizeof(id) || strncmp(ext, prefix, plen) != 0) {
        pe = (uk_jsonrpc_param_error){.field = "extension",
                                      .problem = "must be chrome-extension://ID/"};
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    memcpy(id, ext + plen, n - plen);
    id[n - plen] = '\0';
    if (!uk_policy_extension_allowed(uk_rpc_get0_options(uk_rpc_call_rpc(call))->policy, id)) {
        UK_LOG_NOTICE("native messaging: refused extension %s: not in extension_ids", id);
        uk_rpc_call_error(call, UK_E_ORIGIN_NOT_ALLOWED, "extension not allowed", NULL);
        return;
    }
    char origin[96];
    snprintf(origin, sizeof(origin), "%s%s", prefix, id);
    if (s != NULL && uk_rpc_session_attach_extension(s, origin) != UK_OK) {
        uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
        return;
    }
    UK_LOG_INFO("native messaging: attached extension %s", id);
    cJSON *r = cJSON_CreateObject();
    if (r == NULL || !cJSON_AddStringToObject(r, "origin", origin)) {
        cJSON_Delete(r);
        uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
        return;
    }
    uk_rpc_call_result(call, r);
}

static const char *const attach_params[] = {"extension"};
static const char *const cert_list_params[] = {"token", "der"};
static const char *const sign_params[] = {"token", "key", "algorithm", "data", "digest", "pin"};
static const char *const sign_cms_params[] = {"token", "key", "data", "hash", "detached", "pin"};
static const char *const verify_cms_params[] = {"cms", "content"};
static const char *const decrypt_cms_params[] = {"token", "cms", "pin"};
static const char *const token_params[] = {"token"};
static const char *const pin_change_params[] = {"token", "old_pin", "new_pin"};
static const char *const pin_verify_params[] = {"token", "pin"};
static const char *const events_params[] = {"events"};
static const char *const renewal_prepare_params[] = {"token",     "slot", "mode",
                                                     "algorithm", "pin",  "subject"};
static const char *const renewal_commit_params[] = {
    "renewal_id", "certificate", "chain", "pin", "encryption_certificate", "enveloped_key"};
static const char *const renewal_id_params[] = {"renewal_id"};
static const char *const renewal_abort_params[] = {"renewal_id", "pin"};
static const char *const origin_params[] = {"origin"};
static const char *const limit_params[] = {"limit"};

static const uk_rpc_method methods[] = {
    {"system.hello", system_hello, NULL, 0, UK_METHOD_PUBLIC},
    /* Not public: an origin the user has not approved learns nothing about keys coming and
     * going. */
    {"system.subscribe", system_subscribe, events_params, 1, UK_METHOD_EXTENSION | UK_METHOD_QUIET},
    {"system.unsubscribe", system_unsubscribe, events_params, 1,
     UK_METHOD_EXTENSION | UK_METHOD_QUIET},
    {"system.attach", system_attach, attach_params, 1, UK_METHOD_LOCAL_ONLY},
    {"system.pair", uk__rpc_system_pair, NULL, 0, UK_METHOD_PAIRING},
    {"token.list", uk__rpc_token_list, NULL, 0, UK_METHOD_EXTENSION},
    {"cert.list", uk__rpc_cert_list, cert_list_params, 2, UK_METHOD_EXTENSION},
    {"sign", uk__rpc_sign, sign_params, 6, UK_METHOD_CONSENT | UK_METHOD_PIN},
    {"sign.cms", uk__rpc_sign_cms, sign_cms_params, 6, UK_METHOD_CONSENT | UK_METHOD_PIN},
    /* Touches no key: a check of bytes the caller holds. */
    {"verify.cms", uk__rpc_verify_cms, verify_cms_params, 2, 0},
    {"decrypt.cms", uk__rpc_decrypt_cms, decrypt_cms_params, 3, UK_METHOD_CONSENT | UK_METHOD_PIN},
    {"pin.status", uk__rpc_pin_status, token_params, 1, 0},
    {"pin.verify", uk__rpc_pin_verify, pin_verify_params, 2, UK_METHOD_CONSENT | UK_METHOD_PIN},
    {"pin.change", uk__rpc_pin_change, pin_change_params, 3, UK_METHOD_CONSENT | UK_METHOD_PIN},
    {"renewal.prepare", uk__rpc_renewal_prepare, renewal_prepare_params, 6,
     UK_METHOD_CONSENT | UK_METHOD_PIN},
    {"renewal.commit", uk__rpc_renewal_commit, renewal_commit_params, 6, UK_METHOD_CONSENT},
    {"renewal.status", uk__rpc_renewal_status, renewal_id_params, 1, 0},
    {"renewal.list", uk__rpc_renewal_list, NULL, 0, 0},
    {"renewal.abort", uk__rpc_renewal_abort, renewal_abort_params, 2, UK_METHOD_CONSENT},
    {"origins.list", uk__rpc_origins_list, NULL, 0, UK_METHOD_LOCAL_ONLY | UK_METHOD_EXTENSION},
    {"origins.revoke", uk__rpc_origins_revoke, origin_params, 1, UK_METHOD_LOCAL_ONLY},
    {"audit.read", uk__rpc_audit_read, limit_params, 1, UK_METHOD_LOCAL_ONLY},
};

const uk_rpc_method *uk_rpc_methods(size_t *count)
{
    *count = sizeof(methods) / sizeof(methods[0]);
    return methods;
}
