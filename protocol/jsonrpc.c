/* JSON-RPC 2.0 envelope: parse and classify one message, build responses and errors. */
#include "uk_jsonrpc.h"

#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
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
                const char *few[16]; /* most objects: no allocation */
                const char **names = n <= 16 ? few : malloc(n * sizeof(*names));
                if (names == NULL)
                    return -1;
                size_t i = 0;
                for (const cJSON *c = item->child; c != NULL; c = c->next)
                    names[i++] = c->string;
                qsort(names, n, sizeof(*names), cmp_names);
                bool dup = false;
                for (i = 1; i < n && !dup; i++)
                    dup = strcmp(names[i - 1], names[i]) == 0;
                if (names != few)
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

/*
 * The printer. Its output is byte for byte cJSON_PrintUnformatted's (cJSON 1.7.15; the unit tests
 * compare the two), written into one growing buffer, and integers below 10^15 are written without
 * floating point: cJSON prints every number with sprintf("%1.15g") and reads it back with sscanf
 * to check it, which cost a fifth of the instructions of a system.hello call.
 */
struct pbuf {
    char *p;
    size_t len, cap; /* cap > len: room for the final NUL */
    bool borrowed;   /* p is the caller's storage until it must grow: copied to the heap then */
};

static bool pb_room(struct pbuf *b, size_t n)
{
    if (b->cap - b->len > n)
        return true;
    size_t cap = b->cap;
    while (cap - b->len <= n) {
        if (cap > SIZE_MAX / 2)
            return false;
        cap *= 2;
    }
    char *p = b->borrowed ? malloc(cap) : realloc(b->p, cap);
    if (p == NULL)
        return false;
    if (b->borrowed)
        memcpy(p, b->p, b->len);
    b->borrowed = false;
    b->p = p;
    b->cap = cap;
    return true;
}

static bool pb_put(struct pbuf *b, const char *s, size_t n)
{
    if (!pb_room(b, n))
        return false;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return true;
}

static bool pb_char(struct pbuf *b, char c)
{
    if (!pb_room(b, 1))
        return false;
    b->p[b->len++] = c;
    return true;
}

/* Longest int64_t in decimal with its sign and NUL: "-9223372036854775808". */
#define INT_TEXT_MAX 21

/* v in decimal into buf (NUL-terminated); returns its length. */
static size_t format_int(char buf[static INT_TEXT_MAX], int64_t v)
{
    char tmp[INT_TEXT_MAX];
    size_t n = 0, len = 0;
    /* Negate as unsigned: INT64_MIN has no positive int64_t. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        buf[len++] = '-';
    while (n > 0)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

/* Below this, an integral double prints the same with "%1.15g" as with "%" PRId64. */
#define PLAIN_INT_LIMIT 1e15

static bool close_enough(double a, double b)
{
    double fa = a < 0 ? -a : a, fb = b < 0 ? -b : b, diff = a - b;
    double max = fa > fb ? fa : fb;
    if (diff < 0)
        diff = -diff;
    return diff <= max * DBL_EPSILON;
}

static bool print_number(struct pbuf *b, double d)
{
    char text[32];
    size_t n;
    if (d * 0 != 0) { /* NaN and the infinities, as cJSON */
        return pb_put(b, "null", 4);
    } else if (d > -PLAIN_INT_LIMIT && d < PLAIN_INT_LIMIT && d == (double)(int64_t)d &&
               !(d == 0 && signbit(d))) {
        n = format_int(text, (int64_t)d);
    } else {
        /* cJSON's way: 15 significant digits if they read back close enough, else 17, and the
         * locale's decimal point replaced by '.'. */
        double back = 0;
        int k = snprintf(text, sizeof text, "%1.15g", d);
        if (sscanf(text, "%lg", &back) != 1 || !close_enough(back, d))
            k = snprintf(text, sizeof text, "%1.17g", d);
        if (k < 0 || (size_t)k >= sizeof text)
            return false;
        n = (size_t)k;
        char point = localeconv()->decimal_point[0];
        for (size_t i = 0; i < n; i++)
            if (text[i] == point)
                text[i] = '.';
    }
    return pb_put(b, text, n);
}

static bool needs_escape(unsigned char c)
{
    return c < 32 || c == '"' || c == '\\';
}

/* Whether one of the eight bytes of x needs an escape (is < 32, '"' or '\\'). */
static bool word_needs_escape(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
    return ((((x - ones * 32) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs) != 0;
}

/* Whether some byte of p[0..n) needs an escape, eight bytes at a time. */
static bool any_needs_escape(const unsigned char *p, size_t n)
{
    uint64_t x;
    if (n < 8) {
        x = 0x2020202020202020u; /* spaces after the end: they need no escape */
        memcpy(&x, p, n);
        return word_needs_escape(x);
    }
    for (size_t i = 0; i + 8 <= n; i += 8) {
        memcpy(&x, p + i, 8);
        if (word_needs_escape(x))
            return true;
    }
    memcpy(&x, p + n - 8, 8); /* the last eight, overlapping what was checked */
    return word_needs_escape(x);
}

static bool print_string(struct pbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (s == NULL)
        return pb_put(b, "\"\"", 2);
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    if (!pb_room(b, n + 2))
        return false;
    if (!any_needs_escape(p, n)) { /* the common case */
        char *o = b->p + b->len;
        o[0] = '"';
        memcpy(o + 1, s, n);
        o[n + 1] = '"';
        b->len += n + 2;
        return true;
    }
    b->p[b->len++] = '"';
    for (;;) {
        size_t k = 0;
        while (k < n && !needs_escape(p[k]))
            k++;
        if (!pb_put(b, (const char *)p, k))
            return false;
        p += k;
        n -= k;
        if (n == 0)
            break;
        char esc[6] = {'\\', 0};
        size_t len = 2;
        switch (*p) {
        case '"':
        case '\\':
            esc[1] = (char)*p;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            len = 6;
            break;
        }
        if (!pb_put(b, esc, len))
            return false;
        p++;
        n--;
    }
    return pb_char(b, '"');
}

static bool print_value(struct pbuf *b, const cJSON *item)
{
    switch (item->type & 0xff) {
    case cJSON_NULL:
        return pb_put(b, "null", 4);
    case cJSON_False:
        return pb_put(b, "false", 5);
    case cJSON_True:
        return pb_put(b, "true", 4);
    case cJSON_Number:
        return print_number(b, item->valuedouble);
    case cJSON_Raw:
        return item->valuestring != NULL && pb_put(b, item->valuestring, strlen(item->valuestring));
    case cJSON_String:
        return print_string(b, item->valuestring);
    case cJSON_Array:
    case cJSON_Object: {
        bool object = (item->type & 0xff) == cJSON_Object;
        if (!pb_char(b, object ? '{' : '['))
            return false;
        for (const cJSON *c = item->child; c != NULL; c = c->next) {
            if (object && (!print_string(b, c->string) || !pb_char(b, ':')))
                return false;
            if (!print_value(b, c) || (c->next != NULL && !pb_char(b, ',')))
                return false;
        }
        return pb_char(b, object ? '}' : ']');
    }
    default:
        return false;
    }
}

int uk_jsonrpc_print(const cJSON *msg, char **out, size_t *len)
{
    struct pbuf b = {.p = malloc(1024), .cap = 1024};
    if (b.p == NULL || msg == NULL || !print_value(&b, msg)) {
        free(b.p);
        return UK_E_NO_MEMORY;
    }
    b.p[b.len] = '\0';
    *out = b.p;
    if (len != NULL)
        *len = b.len;
    return UK_OK;
}

cJSON *uk_jsonrpc_string_array_new(const char *const *strings, size_t n)
{
    char first[512];
    struct pbuf b = {.p = first, .cap = sizeof first, .borrowed = true};
    cJSON *item = NULL;
    bool ok = pb_char(&b, '[');
    for (size_t i = 0; ok && i < n; i++)
        ok = (i == 0 || pb_char(&b, ',')) && print_string(&b, strings[i]);
    if (ok && pb_char(&b, ']')) {
        b.p[b.len] = '\0';
        item = cJSON_CreateRaw(b.p);
    }
    if (!b.borrowed)
        free(b.p);
    return item;
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
