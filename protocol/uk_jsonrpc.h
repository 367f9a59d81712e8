/*
 * uk_jsonrpc.h - the JSON-RPC 2.0 codec of ukeyd: parse one message, build responses, errors,
 * notifications and requests, and read handler parameters. docs/protocol.md is the contract it
 * implements (envelope, id rules, batches, error object); protocol/vectors/ are its test cases.
 *
 * Who may include it: protocol/ and daemon/rpc (and clients such as ukeyctl), the only code that
 * sees cJSON. Tokens, drivers and x509 never do. Link uk_protocol, uk_util and PkgConfig::CJSON.
 *
 * Errors: functions return UK_OK or a negative UK_E_* code (uk_err.h) and write results through
 * out-parameters, which are left untouched on error unless said otherwise.
 *
 * Ownership: OpenSSL's words. *_new: the caller frees (uk_jsonrpc_msg_free, cJSON_Delete, free).
 * get0: borrowed from the message, valid until it is freed. get1: a new allocation the caller
 * frees. Arguments documented as "consumed" are owned by the callee from the call on, even when it
 * fails (so `uk_jsonrpc_response_new(&r, id, cJSON_CreateObject())` never leaks).
 *
 * Numbers: cJSON 1.7.15 prints a number outside the int range with 15 significant digits when
 * that reads back "close enough", so larger integers may be rounded on the wire. Ids are copied
 * exactly (as raw text); handlers send other large values (serials, sizes of files) as strings.
 *
 * Thread: no shared state; a message or cJSON tree is used by one thread at a time.
 *
 * Secrets: uk_jsonrpc_msg_free wipes every string of the message before freeing it, so a PIN in
 * params never lingers in freed memory. uk_jsonrpc_param_get1_secret moves a string out into a
 * uk_secret and wipes it in the message at once. The caller still wipes its own input buffer.
 */
#ifndef UK_JSONRPC_H
#define UK_JSONRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "uk_err.h"
#include "uk_secret.h"

typedef struct uk_jsonrpc_msg uk_jsonrpc_msg;

typedef enum uk_jsonrpc_kind {
    UK_JSONRPC_REQUEST = 1,  /* method + id: must be answered */
    UK_JSONRPC_NOTIFICATION, /* method, no id: never answered */
    UK_JSONRPC_RESPONSE,     /* id + result, or id + error */
} uk_jsonrpc_kind;

/* Parser limits; pass NULL for the defaults (UK_LIMIT_MESSAGE, UK_LIMIT_JSON_DEPTH). */
typedef struct uk_jsonrpc_limits {
    size_t max_message; /* bytes; 0 means the default */
    size_t max_depth;   /* open arrays + objects; 0 means the default; capped at 256 */
    /* Accept a top-level string member "origin" on requests and notifications: only the ukeyd
     * extension's session may name the page a request is for (docs/protocol.md, "Transports").
     * Everywhere else "origin" is an unknown member like any other. */
    bool allow_origin;
} uk_jsonrpc_limits;

/*
 * Parse one message of len bytes (no NUL needed; the buffer is not modified or kept).
 *
 * On success returns UK_OK and sets *out; *reply is set to NULL.
 * On failure returns the reason and sets *out to NULL and *reply to the error response to send
 * (owned by the caller, cJSON_Delete), with the request's id echoed when it could be read, else
 * null. Reasons: UK_E_PARSE_ERROR (not JSON, invalid UTF-8, trailing data, ...),
 * UK_E_INVALID_REQUEST (valid JSON, not a valid JSON-RPC 2.0 message, batches),
 * UK_E_LIMIT_EXCEEDED (size, depth, number length; error.data names the limit),
 * UK_E_NO_MEMORY (*reply may then be NULL: close the connection).
 * reply may be NULL if the caller only wants the verdict.
 */
int uk_jsonrpc_parse(const char *buf, size_t len, const uk_jsonrpc_limits *limits,
                     uk_jsonrpc_msg **out, cJSON **reply) __attribute__((warn_unused_result));

/* Wipe every string of the message, then free it. NULL-safe. */
void uk_jsonrpc_msg_free(uk_jsonrpc_msg *msg);

uk_jsonrpc_kind uk_jsonrpc_msg_kind(const uk_jsonrpc_msg *msg);

/* Method name (requests and notifications), NULL for responses. */
const char *uk_jsonrpc_msg_get0_method(const uk_jsonrpc_msg *msg);

/*
 * The id: a cJSON string or number (an integer within +-(2^53 - 1)) for requests and responses,
 * a cJSON null for error responses to unreadable requests, NULL for notifications.
 */
const cJSON *uk_jsonrpc_msg_get0_id(const uk_jsonrpc_msg *msg);

/* The "origin" member of a request or notification (only with limits.allow_origin), NULL when
 * absent. Not checked beyond being a string: the dispatcher parses it as an origin. */
const char *uk_jsonrpc_msg_get0_origin(const uk_jsonrpc_msg *msg);

/* params (object or array) of a request or notification, NULL when absent. Mutable for wiping. */
cJSON *uk_jsonrpc_msg_get0_params(uk_jsonrpc_msg *msg);

/* result (any JSON value) or error (object with integer code and string message) of a response;
 * exactly one of them is non-NULL for a response, both are NULL otherwise. */
const cJSON *uk_jsonrpc_msg_get0_result(const uk_jsonrpc_msg *msg);
const cJSON *uk_jsonrpc_msg_get0_error(const uk_jsonrpc_msg *msg);

/*
 * {"jsonrpc":"2.0","id":id,"result":result}. id is copied (NULL means null); result is consumed
 * (NULL means null). Errors: UK_E_NO_MEMORY.
 */
int uk_jsonrpc_response_new(cJSON **out, const cJSON *id, cJSON *result)
    __attribute__((warn_unused_result));

/*
 * {"jsonrpc":"2.0","id":id,"error":{"code","message","data"}} for err:
 *   code     uk_err_rpc_code(err)
 *   message  the English user message
 *   data     {"reason": uk_err_name(err), "retriable": bool,
 *             "message": {"en": ..., "zh-CN": ...}, "detail": detail (if not NULL),
 *             ...the members of extra}
 * err values that are not in the table (and UK_OK) are sent as INTERNAL. detail is developer
 * text in English (copied; never a secret, path or native code). extra (an object or NULL) is
 * consumed; its members named reason, retriable, message or detail are dropped so they cannot
 * contradict the table. id is copied (NULL means null). Errors: UK_E_NO_MEMORY.
 */
int uk_jsonrpc_error_new(cJSON **out, const cJSON *id, int err, const char *detail, cJSON *extra)
    __attribute__((warn_unused_result));

/*
 * {"jsonrpc":"2.0","method":method,"params":params}. method is copied; params (object, array or
 * NULL for none) is consumed. Errors: UK_E_NO_MEMORY, UK_E_INVALID_PARAMS (params of another type,
 * empty method).
 */
int uk_jsonrpc_notification_new(cJSON **out, const char *method, cJSON *params)
    __attribute__((warn_unused_result));

/* A request: like a notification plus "id" (copied; a string or an integer number). */
int uk_jsonrpc_request_new(cJSON **out, const cJSON *id, const char *method, cJSON *params)
    __attribute__((warn_unused_result));

/*
 * Serialise a message without whitespace into a new NUL-terminated string *out of *len bytes
 * (len may be NULL); free it with free(). Errors: UK_E_NO_MEMORY.
 */
int uk_jsonrpc_print(const cJSON *msg, char **out, size_t *len) __attribute__((warn_unused_result));

/*
 * The JSON array of the strings strings[0..n) as one pre-printed value (a cJSON raw item): printed
 * by uk_jsonrpc_print or cJSON it is the same text as an array of cJSON strings, at the cost of one
 * node instead of n + 1. For lists in answers that are printed and sent, not read back:
 * cJSON_IsArray is false for it. Free with cJSON_Delete. NULL when out of memory.
 */
cJSON *uk_jsonrpc_string_array_new(const char *const *strings, size_t n)
    __attribute__((warn_unused_result));

/* Put bytes into obj as a base64 string member. Errors: UK_E_NO_MEMORY. */
int uk_jsonrpc_add_base64(cJSON *obj, const char *name, const uint8_t *p, size_t n)
    __attribute__((warn_unused_result));

/*
 * Parameter getters for handlers.
 *
 * params is the message's params (NULL when absent, which reads as an empty object). On a type or
 * range problem the getter returns UK_E_INVALID_PARAMS and fills *pe, which
 * uk_jsonrpc_param_error_new turns into the response. A missing optional parameter returns UK_OK
 * and leaves *out alone, so set the default first. JSON null is not "missing": it is a type error.
 */
typedef struct uk_jsonrpc_param_error {
    const char *field;   /* borrowed: the name given to the getter ("" for params itself) */
    const char *problem; /* static English: "is required", "must be a string", ... */
} uk_jsonrpc_param_error;

/* A string, borrowed from params; max_len > 0 bounds its length in bytes. */
int uk_jsonrpc_param_get0_string(const cJSON *params, const char *name, bool required,
                                 size_t max_len, const char **out, uk_jsonrpc_param_error *pe)
    __attribute__((warn_unused_result));

int uk_jsonrpc_param_get_bool(const cJSON *params, const char *name, bool required, bool *out,
                              uk_jsonrpc_param_error *pe) __attribute__((warn_unused_result));

/* An integer (no fraction, no exponent beyond an integral value) within [min, max]. */
int uk_jsonrpc_param_get_int(const cJSON *params, const char *name, bool required, int64_t min,
                             int64_t max, int64_t *out, uk_jsonrpc_param_error *pe)
    __attribute__((warn_unused_result));

/*
 * Strict base64 (uk_base64.h) decoded into new bytes *out, *out_len (free with free());
 * max_len > 0 bounds the decoded length. Errors also: UK_E_NO_MEMORY (pe untouched).
 */
int uk_jsonrpc_param_get1_base64(const cJSON *params, const char *name, bool required,
                                 size_t max_len, uint8_t **out, size_t *out_len,
                                 uk_jsonrpc_param_error *pe) __attribute__((warn_unused_result));

/*
 * Move a string (a PIN) into a new uk_secret *out and wipe it inside params at once, also when
 * it is rejected for its length. max_len > 0 bounds its length. Errors also: UK_E_NO_MEMORY.
 */
int uk_jsonrpc_param_get1_secret(cJSON *params, const char *name, bool required, size_t max_len,
                                 uk_secret **out, uk_jsonrpc_param_error *pe)
    __attribute__((warn_unused_result));

/*
 * UK_OK if params is absent or an object whose member names are all in names[0..n), else
 * UK_E_INVALID_PARAMS with pe naming the first unknown member ("is not a known parameter"), or
 * the params themselves when they are not an object.
 */
int uk_jsonrpc_params_check_known(const cJSON *params, const char *const *names, size_t n,
                                  uk_jsonrpc_param_error *pe) __attribute__((warn_unused_result));

/*
 * INVALID_PARAMS response for pe: detail "params.FIELD PROBLEM", data.field FIELD.
 * Errors: UK_E_NO_MEMORY.
 */
int uk_jsonrpc_param_error_new(cJSON **out, const cJSON *id, const uk_jsonrpc_param_error *pe)
    __attribute__((warn_unused_result));

/* Overwrite a cJSON string's bytes with zeros (the string becomes ""). No-op for other types. */
void uk_jsonrpc_wipe_string(cJSON *item);

/*
 * Wipe every string value and member name of item and its descendants (not its siblings), before
 * cJSON_Delete: names become "" too, so look nothing up afterwards. NULL-safe.
 */
void uk_jsonrpc_wipe_tree(cJSON *item);

#endif
