/* JSON-RPC 2.0 envelope: parse and classify one message, build responses and errors. */
#include "uk_jsonrpc.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_check.h"
#include "jsonrpc_int.h"
#include "uk_base64.h"
#include "uk_limits.h"
#include "uk_secret.h"

struct uk_jsonrpc_msg {
    cJSON *root;
    uk_jsonrpc_kind kind;
    const char *method;
    const char *origin;
    const cJSON *id;
    cJSON *params;
    const cJSON *result;
    const cJSON *error;
};

/* Why a message was refused, before it is turned into a reply. */
struct fault {
    int err;
    const char *detail;
    char detail_buf[160];
    const cJSON *id; /* borrowed from the parsed tree, NULL when unreadable */
    cJSON *extra;    /* owned: data members to add */
};

#define SAFE_INT_MAX 9007199254740991.0 /* 2^53 - 1 */

bool uk__jsonrpc_is_safe_int(const cJSON *item)
{
    if (!cJSON_IsNumber(item))
        return false;
    double d = item->valuedouble;
    if (!(d >= -SAFE_INT_MAX && d <= SAFE_INT_MAX))
        return false; /* also NaN */
    return (double)(int64_t)d == d;
}

static bool id_is_valid(const cJSON *id)
{
    if (cJSON_IsString(id))
        return strlen(id->valuestring) <= UK_LIMIT_ID_LENGTH;
    return uk__jsonrpc_is_safe_int(id);
}

void uk_jsonrpc_wipe_string(cJSON *item)
{
    if (item == NULL || !cJSON_IsString(item) || item->valuestring == NULL)
        return;
    if (item->type & cJSON_IsReference)
        return; /* borrowed text, not ours to touch */
    uk_wipe(item->valuestring, strlen(item->valuestring));
}

void uk_jsonrpc_wipe_tree(cJSON *item)
{
    if (item == NULL)
        return;
    if (!(item->type & cJSON_IsReference)) {
        for (cJSON *c = item->child; c != NULL; c = c->next)
            uk_jsonrpc_wipe_tree(c);
    }
    uk_jsonrpc_wipe_string(item);
    if (item->string != NULL && !(item->type & cJSON_StringIsConst))
        uk_wipe(item->string, strlen(item->string));
}

static void delete_wiped(cJSON *tree)
{
    uk_jsonrpc_wipe_tree(tree);
    cJSON_Delete(tree);
}

/* Member of obj named exactly name (cJSON_GetObjectItem ignores case; the protocol does not). */
const cJSON *uk__jsonrpc_member(const cJSON *obj, const char *name)
{
    if (!cJSON_IsObject(obj))
        return NULL;
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        if (c->string != NULL && strcmp(c->string, name) == 0)
            return c;
    }
    return NULL;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* true if some object in the tree has two members with the same name; -1 when out of memory. */
static int has_duplicate_names(const cJSON *item, bool recurse)
{
    for (; item != NULL; item = item->next) {
        if (cJSON_IsObject(item)) {
            size_t n = 0;
            for (const cJSON *c = item->child; c != NULL; c = c->next)
                n++;
            if (n > 1) {
                const char **names = malloc(n * sizeof(*names));
                if (names == NULL)
                    return -1;
                size_t i = 0;
                for (const cJSON *c = item->child; c != NULL; c = c->next)
                    names[i++] = c->string;
                qsort(names, n, sizeof(*names), cmp_names);
                bool dup = false;
                for (i = 1; i < n && !dup; i++)
                    dup = strcmp(names[i - 1], names[i]) == 0;
                free(names);
                if (dup)
                    return 1;
            }
        }
        if (recurse && item->child != NULL) {
            int rc = has_duplicate_names(item->child, true);
            if (rc != 0)
                return rc;
        }
        if (!recurse)
            break;
    }
    return 0;
}

static int refuse(struct fault *f, int err, const char *detail)
{
    f->err = err;
    f->detail = detail;
    return err;
}

/* Fill msg from a parsed object, or describe the problem in f. */
static int classify(cJSON *root, bool allow_origin, uk_jsonrpc_msg *msg, struct fault *f)
{
    if (cJSON_IsArray(root))
        return refuse(f, UK_E_INVALID_REQUEST, "batches are not supported");
    if (!cJSON_IsObject(root))
        return refuse(f, UK_E_INVALID_REQUEST, "a message must be a JSON object");

    cJSON *jsonrpc = NULL, *method = NULL, *params = NULL, *id = NULL, *result = NULL,
          *error = NULL, *origin = NULL;
    size_t id_count = 0;
    const char *unknown = NULL;
    for (cJSON *c = root->child; c != NULL; c = c->next) {
        if (strcmp(c->string, "jsonrpc") == 0)
            jsonrpc = c;
        else if (strcmp(c->string, "method") == 0)
            method = c;
        else if (strcmp(c->string, "params") == 0)
            params = c;
        else if (strcmp(c->string, "id") == 0) {
            id = c;
            id_count++;
        } else if (strcmp(c->string, "result") == 0)
            result = c;
        else if (strcmp(c->string, "error") == 0)
            error = c;
        else if (allow_origin && strcmp(c->string, "origin") == 0)
            origin = c;
        else if (unknown == NULL)
            unknown = c->string;
    }
    /* Echo the id only when there is exactly one and it is well-formed. */
    if (id_count == 1 && id_is_valid(id))
        f->id = id;

    int dup = has_duplicate_names(root, true);
    if (dup < 0)
        return refuse(f, UK_E_NO_MEMORY, NULL);
    if (dup > 0)
        return refuse(f, UK_E_INVALID_REQUEST, "duplicate member name");
    if (!cJSON_IsString(jsonrpc) || strcmp(jsonrpc->valuestring, "2.0") != 0)
        return refuse(f, UK_E_INVALID_REQUEST, "jsonrpc must be \"2.0\"");
    if (unknown != NULL) {
        if (strlen(unknown) <= 64)
            snprintf(f->detail_buf, sizeof(f->detail_buf), "unknown member \"%s\"", unknown);
        else
            snprintf(f->detail_buf, sizeof(f->detail_buf), "unknown member");
        return refuse(f, UK_E_INVALID_REQUEST, f->detail_buf);
    }

    if (method != NULL) {
        if (!cJSON_IsString(method))
            return refuse(f, UK_E_INVALID_REQUEST, "method must be a string");
        size_t mlen = strlen(method->valuestring);
        if (mlen == 0)
            return refuse(f, UK_E_INVALID_REQUEST, "method must not be empty");
        if (mlen > UK_LIMIT_METHOD_LENGTH)
            return refuse(f, UK_E_INVALID_REQUEST, "method is longer than 64 bytes");
        if (result != NULL || error != NULL)
            return refuse(f, UK_E_INVALID_REQUEST, "a request must not have result or error");
        if (params != NULL && !cJSON_IsObject(params) && !cJSON_IsArray(params))
            return refuse(f, UK_E_INVALID_REQUEST, "params must be an object or an array");
        if (origin != NULL && !cJSON_IsString(origin))
            return refuse(f, UK_E_INVALID_REQUEST, "origin must be a string");
        if (id != NULL && !id_is_valid(id))
            return refuse(f, UK_E_INVALID_REQUEST,
                          "id must be a string of at most 128 bytes or an integer within "
                          "+-(2^53 - 1)");
        msg->kind = id != NULL ? UK_JSONRPC_REQUEST : UK_JSONRPC_NOTIFICATION;
        msg->method = method->valuestring;
        msg->origin = origin != NULL ? origin->valuestring : NULL;
        msg->id = id;
        msg->params = params;
        return UK_OK;
    }

    if (result == NULL && error == NULL)
        return refuse(f, UK_E_INVALID_REQUEST, "method is missing");
    if (result != NULL && error != NULL)
        return refuse(f, UK_E_INVALID_REQUEST, "a response has result or error, not both");
    if (params != NULL)
        return refuse(f, UK_E_INVALID_REQUEST, "a response must not have params");
    if (origin != NULL)
        return refuse(f, UK_E_INVALID_REQUEST, "a response must not have origin");
    if (id == NULL)
        return refuse(f, UK_E_INVALID_REQUEST, "a response must have an id");
    if (!id_is_valid(id) && !(error != NULL && cJSON_IsNull(id)))
        return refuse(f, UK_E_INVALID_REQUEST,
                      "id must be a string of at most 128 bytes or an integer within "
                      "+-(2^53 - 1)");
    if (error != NULL) {
        const cJSON *code = uk__jsonrpc_member(error, "code");
        const cJSON *message = uk__jsonrpc_member(error, "message");
        if (!cJSON_IsObject(error) || !uk__jsonrpc_is_safe_int(code) || !cJSON_IsString(message))
            return refuse(f, UK_E_INVALID_REQUEST,
                          "error must be an object with an integer code and a string message");
        for (const cJSON *c = error->child; c != NULL; c = c->next) {
            if (strcmp(c->string, "code") != 0 && strcmp(c->string, "message") != 0 &&
                strcmp(c->string, "data") != 0)
                return refuse(f, UK_E_INVALID_REQUEST,
                              "error has only code, message and data members");
        }
    }
    msg->kind = UK_JSONRPC_RESPONSE;
    msg->id = id;
    msg->result = result;
    msg->error = error;
    return UK_OK;
}

static cJSON *limit_extra(const char *limit, size_t max)
{
    cJSON *extra = cJSON_CreateObject();
    if (extra == NULL)
        return NULL;
    if (cJSON_AddStringToObject(extra, "limit", limit) == NULL ||
        cJSON_AddNumberToObject(extra, "max", (double)max) == NULL) {
        cJSON_Delete(extra);
        return NULL;
    }
    return extra;
}

int uk_jsonrpc_parse(const char *buf, size_t len, const uk_jsonrpc_limits *limits,
                     uk_jsonrpc_msg **out, cJSON **reply)
{
    size_t max_message = UK_LIMIT_MESSAGE;
    size_t max_depth = UK_LIMIT_JSON_DEPTH;
    if (limits != NULL && limits->max_message > 0)
        max_message = limits->max_message;
    if (limits != NULL && limits->max_depth > 0)
        max_depth = limits->max_depth;

    struct fault f = {0};
    cJSON *root = NULL;
    uk_jsonrpc_msg *msg = NULL;
    int rc;

    *out = NULL;
    if (reply != NULL)
        *reply = NULL;
    if (buf == NULL)
        len = 0;

    if (len > max_message) {
        snprintf(f.detail_buf, sizeof(f.detail_buf), "message is larger than %zu bytes",
                 max_message);
        f.err = UK_E_LIMIT_EXCEEDED;
        f.detail = f.detail_buf;
        f.extra = limit_extra("message_size", max_message);
        goto out;
    }

    uk__json_problem pr;
    rc = uk__json_check(len > 0 ? buf : "", len, max_depth, &pr);
    if (rc != UK_OK) {
        f.err = pr.err;
        f.detail = pr.detail;
        if (pr.err == UK_E_LIMIT_EXCEEDED) {
            f.extra = limit_extra(pr.limit, pr.max);
        } else {
            f.extra = cJSON_CreateObject();
            if (f.extra != NULL)
                cJSON_AddNumberToObject(f.extra, "offset", (double)pr.offset);
        }
        goto out;
    }

    /* The text is strict JSON now; cJSON can only fail for memory. */
    root = cJSON_ParseWithLengthOpts(buf, len, NULL, false);
    if (root == NULL) {
        f.err = UK_E_NO_MEMORY;
        goto out;
    }
    msg = calloc(1, sizeof(*msg));
    if (msg == NULL) {
        f.err = UK_E_NO_MEMORY;
        goto out;
    }
    rc = classify(root, limits != NULL && limits->allow_origin, msg, &f);
    if (rc != UK_OK)
        goto out;
    msg->root = root;
    *out = msg;
    return UK_OK;

out:
    if (reply != NULL) {
        cJSON *extra = f.extra;
        f.extra = NULL;
        if (uk_jsonrpc_error_new(reply, f.id, f.err, f.detail, extra) != UK_OK)
            *reply = NULL;
    }
    cJSON_Delete(f.extra);
    free(msg);
    delete_wiped(root);
    return f.err;
}

void uk_jsonrpc_msg_free(uk_jsonrpc_msg *msg)
{
    if (msg == NULL)
        return;
    delete_wiped(msg->root);
    free(msg);
}

uk_jsonrpc_kind uk_jsonrpc_msg_kind(const uk_jsonrpc_msg *msg)
{
    return msg->kind;
}

const char *uk_jsonrpc_msg_get0_method(const uk_jsonrpc_msg *msg)
{
    return msg->method;
}

const char *uk_jsonrpc_msg_get0_origin(const uk_jsonrpc_msg *msg)
{
    return msg->origin;
}

const cJSON *uk_jsonrpc_msg_get0_id(const uk_jsonrpc_msg *msg)
{
    return msg->id;
}

cJSON *uk_jsonrpc_msg_get0_params(uk_jsonrpc_msg *msg)
{
    return msg->params;
}

const cJSON *uk_jsonrpc_msg_get0_result(const uk_jsonrpc_msg *msg)
{
    return msg->result;
}

const cJSON *uk_jsonrpc_msg_get0_error(const uk_jsonrpc_msg *msg)
{
    return msg->error;
}

/*
 * A copy of an id that prints exactly. cJSON 1.7.15 prints numbers beyond int with 15 significant
 * digits when that reads back "close enough", so 9007199254740991 would come out as
 * 9.00719925474099e+15: a client would never match its answer. Such ids are copied as raw text.
 */
static cJSON *copy_id(const cJSON *id)
{
    if (id == NULL || cJSON_IsNull(id))
        return cJSON_CreateNull();
    if (cJSON_IsString(id))
        return cJSON_CreateString(id->valuestring);
    if (uk__jsonrpc_is_safe_int(id)) {
        int64_t v = (int64_t)id->valuedouble;
        if (v >= INT_MIN && v <= INT_MAX)
            return cJSON_CreateNumber((double)v);
        char text[24];
        snprintf(text, sizeof(text), "%" PRId64, v);
        return cJSON_CreateRaw(text);
    }
    return cJSON_Duplicate(id, true);
}

/* {"jsonrpc":"2.0","id":copy of id} (null when id is NULL). */
static cJSON *envelope(const cJSON *id, bool with_id)
{
    cJSON *m = cJSON_CreateObject();
    if (m == NULL)
        return NULL;
    if (cJSON_AddStringToObject(m, "jsonrpc", "2.0") == NULL)
        goto fail;
    if (with_id) {
        cJSON *idc = copy_id(id);
        if (idc == NULL || !cJSON_AddItemToObject(m, "id", idc)) {
            cJSON_Delete(idc);
            goto fail;
        }
    }
    return m;
fail:
    cJSON_Delete(m);
    return NULL;
}

int uk_jsonrpc_response_new(cJSON **out, const cJSON *id, cJSON *result)
{
    cJSON *m = envelope(id, true);
    if (result == NULL)
        result = cJSON_CreateNull();
    if (m == NULL || result == NULL || !cJSON_AddItemToObject(m, "result", result)) {
        cJSON_Delete(m);
        cJSON_Delete(result);
        return UK_E_NO_MEMORY;
    }
    *out = m;
    return UK_OK;
}

static bool reserved_data_name(const char *name)
{
    return strcmp(name, "reason") == 0 || strcmp(name, "retriable") == 0 ||
           strcmp(name, "message") == 0 || strcmp(name, "detail") == 0;
}

int uk_jsonrpc_error_new(cJSON **out, const cJSON *id, int err, const char *detail, cJSON *extra)
{
    if (!uk_err_known(err))
        err = UK_E_INTERNAL;

    cJSON *m = envelope(id, true);
    if (m == NULL)
        goto fail;
    cJSON *e = cJSON_AddObjectToObject(m, "error");
    if (e == NULL || cJSON_AddNumberToObject(e, "code", uk_err_rpc_code(err)) == NULL ||
        cJSON_AddStringToObject(e, "message", uk_err_message(err, "en")) == NULL)
        goto fail;
    cJSON *data = cJSON_AddObjectToObject(e, "data");
    if (data == NULL || cJSON_AddStringToObject(data, "reason", uk_err_name(err)) == NULL ||
        cJSON_AddBoolToObject(data, "retriable", uk_err_retriable(err)) == NULL)
        goto fail;
    cJSON *text = cJSON_AddObjectToObject(data, "message");
    if (text == NULL || cJSON_AddStringToObject(text, "en", uk_err_message(err, "en")) == NULL ||
        cJSON_AddStringToObject(text, "zh-CN", uk_err_message(err, "zh-CN")) == NULL)
        goto fail;
    if (detail != NULL && cJSON_AddStringToObject(data, "detail", detail) == NULL)
        goto fail;
    if (cJSON_IsObject(extra)) {
        cJSON *c = extra->child;
        while (c != NULL) {
            cJSON *next = c->next;
            if (c->string != NULL && !reserved_data_name(c->string) &&
                uk__jsonrpc_member(data, c->string) == NULL) {
                cJSON_DetachItemViaPointer(extra, c);
                /* Safe: cJSON copies the name before it frees the item's old one. */
                if (!cJSON_AddItemToObject(data, c->string, c)) {
                    cJSON_Delete(c);
                    goto fail;
                }
            }
            c = next;
        }
    }
    cJSON_Delete(extra);
    *out = m;
    return UK_OK;

fail:
    cJSON_Delete(m);
    cJSON_Delete(extra);
    return UK_E_NO_MEMORY;
}

static int call_new(cJSON **out, const cJSON *id, bool with_id, const char *method, cJSON *params)
{
    if (method == NULL || method[0] == '\0' ||
        (params != NULL && !cJSON_IsObject(params) && !cJSON_IsArray(params)) ||
        (with_id && !id_is_valid(id))) {
        cJSON_Delete(params);
        return UK_E_INVALID_PARAMS;
    }
    cJSON *m = envelope(NULL, false);
    if (m == NULL || cJSON_AddStringToObject(m, "method", method) == NULL)
        goto fail;
    if (params != NULL) {
        if (!cJSON_AddItemToObject(m, "params", params))
            goto fail;
        params = NULL;
    }
    if (with_id) {
        cJSON *idc = copy_id(id);
        if (idc == NULL || !cJSON_AddItemToObject(m, "id", idc)) {
            cJSON_Delete(idc);
            goto fail;
        }
    }
    *out = m;
    return UK_OK;
fail:
    cJSON_Delete(m);
    cJSON_Delete(params);
    return UK_E_NO_MEMORY;
}

int uk_jsonrpc_notification_new(cJSON **out, const char *method, cJSON *params)
{
    return call_new(out, NULL, false, method, params);
}

int uk_jsonrpc_request_new(cJSON **out, const cJSON *id, const char *method, cJSON *params)
{
    return call_new(out, id, true, method, params);
}

int uk_jsonrpc_print(const cJSON *msg, char **out, size_t *len)
{
    char *s = cJSON_PrintUnformatted(msg);
    if (s == NULL)
        return UK_E_NO_MEMORY;
    *out = s;
    if (len != NULL)
        *len = strlen(s);
    return UK_OK;
}

int uk_jsonrpc_add_base64(cJSON *obj, const char *name, const uint8_t *p, size_t n)
{
    char *s = NULL;
    int rc = uk_base64_encode(p, n, &s, NULL);
    if (rc != UK_OK)
        return rc;
    rc = cJSON_AddStringToObject(obj, name, s) != NULL ? UK_OK : UK_E_NO_MEMORY;
    free(s);
    return rc;
}
