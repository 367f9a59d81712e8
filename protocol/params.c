/* Parameter getters for method handlers: type-checked, bounded, naming the field on error. */
#include "uk_jsonrpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonrpc_int.h"
#include "uk_base64.h"

static int problem(uk_jsonrpc_param_error *pe, const char *field, const char *what)
{
    pe->field = field;
    pe->problem = what;
    return UK_E_INVALID_PARAMS;
}

/* Find name in params. UK_OK with *item NULL when it is absent and optional. */
static int lookup(const cJSON *params, const char *name, bool required, const cJSON **item,
                  uk_jsonrpc_param_error *pe)
{
    *item = NULL;
    if (params != NULL && !cJSON_IsObject(params))
        return problem(pe, "", "must be an object");
    const cJSON *it = params != NULL ? uk__jsonrpc_member(params, name) : NULL;
    if (it == NULL)
        return required ? problem(pe, name, "is required") : UK_OK;
    *item = it;
    return UK_OK;
}

int uk_jsonrpc_param_get0_string(const cJSON *params, const char *name, bool required,
                                 size_t max_len, const char **out, uk_jsonrpc_param_error *pe)
{
    const cJSON *it;
    int rc = lookup(params, name, required, &it, pe);
    if (rc != UK_OK || it == NULL)
        return rc;
    if (!cJSON_IsString(it))
        return problem(pe, name, "must be a string");
    if (max_len > 0 && strlen(it->valuestring) > max_len)
        return problem(pe, name, "is too long");
    *out = it->valuestring;
    return UK_OK;
}

int uk_jsonrpc_param_get_bool(const cJSON *params, const char *name, bool required, bool *out,
                              uk_jsonrpc_param_error *pe)
{
    const cJSON *it;
    int rc = lookup(params, name, required, &it, pe);
    if (rc != UK_OK || it == NULL)
        return rc;
    if (!cJSON_IsBool(it))
        return problem(pe, name, "must be true or false");
    *out = cJSON_IsTrue(it);
    return UK_OK;
}

int uk_jsonrpc_param_get_int(const cJSON *params, const char *name, bool required, int64_t min,
                             int64_t max, int64_t *out, uk_jsonrpc_param_error *pe)
{
    const cJSON *it;
    int rc = lookup(params, name, required, &it, pe);
    if (rc != UK_OK || it == NULL)
        return rc;
    if (!uk__jsonrpc_is_safe_int(it))
        return problem(pe, name, "must be an integer");
    int64_t v = (int64_t)it->valuedouble;
    if (v < min || v > max)
        return problem(pe, name, "is out of range");
    *out = v;
    return UK_OK;
}

int uk_jsonrpc_param_get1_base64(const cJSON *params, const char *name, bool required,
                                 size_t max_len, uint8_t **out, size_t *out_len,
                                 uk_jsonrpc_param_error *pe)
{
    const cJSON *it;
    int rc = lookup(params, name, required, &it, pe);
    if (rc != UK_OK || it == NULL)
        return rc;
    if (!cJSON_IsString(it))
        return problem(pe, name, "must be a base64 string");
    size_t n = strlen(it->valuestring);
    if (max_len > 0 && n / 4 * 3 > max_len + 2)
        return problem(pe, name, "is too long");
    uint8_t *b = NULL;
    size_t bn = 0;
    rc = uk_base64_decode(it->valuestring, n, &b, &bn);
    if (rc == UK_E_INVALID_PARAMS)
        return problem(pe, name, "must be base64 (RFC 4648, with padding)");
    if (rc != UK_OK)
        return rc;
    if (max_len > 0 && bn > max_len) {
        free(b);
        return problem(pe, name, "is too long");
    }
    *out = b;
    *out_len = bn;
    return UK_OK;
}

int uk_jsonrpc_param_get1_secret(cJSON *params, const char *name, bool required, size_t max_len,
                                 uk_secret **out, uk_jsonrpc_param_error *pe)
{
    const cJSON *found;
    int rc = lookup(params, name, required, &found, pe);
    if (rc != UK_OK || found == NULL)
        return rc;
    /* lookup found it in params, which is ours to modify: find the same item without const. */
    cJSON *it = params->child;
    while (it != found)
        it = it->next;
    if (!cJSON_IsString(it))
        return problem(pe, name, "must be a string");
    size_t n = strlen(it->valuestring);
    if (max_len > 0 && n > max_len) {
        uk_jsonrpc_wipe_string(it);
        return problem(pe, name, "is too long");
    }
    uk_secret *s = uk_secret_new(it->valuestring, n);
    uk_jsonrpc_wipe_string(it);
    if (s == NULL)
        return UK_E_NO_MEMORY;
    *out = s;
    return UK_OK;
}

int uk_jsonrpc_params_check_known(const cJSON *params, const char *const *names, size_t n,
                                  uk_jsonrpc_param_error *pe)
{
    if (params == NULL)
        return UK_OK;
    if (!cJSON_IsObject(params))
        return problem(pe, "", "must be an object");
    for (const cJSON *c = params->child; c != NULL; c = c->next) {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(c->string, names[i]) == 0;
        if (!known)
            return problem(pe, c->string, "is not a known parameter");
    }
    return UK_OK;
}

int uk_jsonrpc_param_error_new(cJSON **out, const cJSON *id, const uk_jsonrpc_param_error *pe)
{
    const char *field = pe->field != NULL ? pe->field : "";
    const char *what = pe->problem != NULL ? pe->problem : "is invalid";
    char detail[160];
    if (field[0] == '\0')
        snprintf(detail, sizeof(detail), "params %s", what);
    else if (strlen(field) <= 64)
        snprintf(detail, sizeof(detail), "params.%s %s", field, what);
    else
        snprintf(detail, sizeof(detail), "a parameter %s", what);

    cJSON *extra = NULL;
    if (field[0] != '\0' && strlen(field) <= 64) {
        extra = cJSON_CreateObject();
        if (extra == NULL || cJSON_AddStringToObject(extra, "field", field) == NULL) {
            cJSON_Delete(extra);
            return UK_E_NO_MEMORY;
        }
    }
    return uk_jsonrpc_error_new(out, id, UK_E_INVALID_PARAMS, detail, extra);
}
