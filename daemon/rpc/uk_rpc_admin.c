/* What the local user (ukeyctl) asks about access: origins.list, origins.revoke, audit.read. */
#include "uk_audit.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_policy.h"
#include "uk_rpc_call.h"
#include "uk_rpc_handlers.h"

#include <stdlib.h>
#include <time.h>

/* Most audit entries one audit.read answers. */
#define AUDIT_READ_MAX 1000

typedef struct list_ctx {
    cJSON *arr;
    bool ok;
} list_ctx;

static void add_origin(void *arg, const uk_policy_origin_info *info)
{
    list_ctx *ctx = arg;
    cJSON *o = cJSON_CreateObject();
    char when[32] = "";
    if (info->access == UK_ACCESS_PAIRED && info->paired_at > 0) {
        time_t t = (time_t)info->paired_at;
        struct tm tm;
        if (gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    const char *source = info->access == UK_ACCESS_PAIRED ? "pairing"
                         : info->from_system              ? "system"
                                                          : "user";
    bool ok = o != NULL && cJSON_AddItemToArray(ctx->arr, o) &&
              cJSON_AddStringToObject(o, "origin", info->origin) &&
              cJSON_AddStringToObject(o, "access",
                                      info->access == UK_ACCESS_PAIRED ? "paired" : "allowed") &&
              cJSON_AddStringToObject(o, "source", source) &&
              (when[0] ? cJSON_AddStringToObject(o, "paired_at", when)
                       : cJSON_AddNullToObject(o, "paired_at")) != NULL &&
              cJSON_AddBoolToObject(o, "pin_from_page", info->pin_from_page) &&
              cJSON_AddStringToObject(o, "consent",
                                      info->consent == UK_CONSENT_SESSION ? "session" : "request");
    if (ok && info->methods != NULL) {
        cJSON *m = cJSON_AddArrayToObject(o, "methods");
        for (size_t i = 0; ok && i < info->n_methods; i++)
            ok = m != NULL && cJSON_AddItemToArray(m, cJSON_CreateString(info->methods[i]));
        ok = ok && m != NULL;
    } else if (ok) {
        ok = cJSON_AddNullToObject(o, "methods") != NULL;
    }
    if (!ok)
        ctx->ok = false;
}

/* origins.list {}: allowed origins (config, system config) and the ones the user paired. */
void uk__rpc_origins_list(uk_rpc_call *call)
{
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(call));
    cJSON *r = cJSON_CreateObject();
    list_ctx ctx = {.arr = r ? cJSON_AddArrayToObject(r, "origins") : NULL, .ok = true};
    if (ctx.arr != NULL)
        uk_policy_origins_foreach(opt->policy, add_origin, &ctx);
    if (ctx.arr == NULL || !ctx.ok) {
        cJSON_Delete(r);
        uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
        return;
    }
    uk_rpc_call_result(call, r);
}

/* origins.revoke {origin}: forget a pairing. Origins of the config are the config's business. */
void uk__rpc_origins_revoke(uk_rpc_call *call)
{
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(call));
    const char *origin = NULL;
    uk_jsonrpc_param_error pe;
    if (uk_jsonrpc_param_get0_string(uk_rpc_call_params(call), "origin", true, UK_ORIGIN_MAX,
                                     &origin, &pe) != UK_OK) {
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    int rc = uk_policy_unpair(opt->policy, origin);
    if (rc != UK_OK) {
        uk_rpc_call_error(call, rc,
                          rc == UK_E_NOT_FOUND ? "the origin is not paired (configured origins are "
                                                 "removed from the configuration file)"
                                               : NULL,
                          NULL);
        return;
    }
    UK_LOG_NOTICE("pairing: the user revoked %s", origin);
    uk_rpc_call_set_audit(call, NULL, NULL, origin);
    cJSON *r = cJSON_CreateObject();
    if (r == NULL || !cJSON_AddStringToObject(r, "revoked", origin)) {
        cJSON_Delete(r);
        uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
        return;
    }
    uk_rpc_call_result(call, r);
}

/* audit.read {limit?}: the newest entries, oldest first. */
void uk__rpc_audit_read(uk_rpc_call *call)
{
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(call));
    int64_t limit = 50;
    uk_jsonrpc_param_error pe;
    if (uk_jsonrpc_param_get_int(uk_rpc_call_params(call), "limit", false, 1, AUDIT_READ_MAX,
                                 &limit, &pe) != UK_OK) {
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    if (opt->audit == NULL) {
        uk_rpc_call_error(call, UK_E_NO_SERVICE, "the audit log is not open", NULL);
        return;
    }
    char **lines = NULL;
    size_t n = 0;
    int rc = uk_audit_tail(opt->audit, (size_t)limit, &lines, &n);
    if (rc != UK_OK) {
        uk_rpc_call_error(call, rc, NULL, NULL);
        return;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON *arr = r ? cJSON_AddArrayToObject(r, "entries") : NULL;
    bool ok = arr != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *e = cJSON_Parse(lines[i]);
        /* A line that is not ours (a torn write after a crash) is skipped, not fatal. */
        if (e != NULL && !cJSON_AddItemToArray(arr, e)) {
            cJSON_Delete(e);
            ok = false;
        }
    }
    uk_audit_lines_free(lines, n);
    if (!ok) {
        cJSON_Delete(r);
        uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
        return;
    }
    uk_rpc_call_result(call, r);
}
