/* jsonrpc_int.h - module-internal helpers shared by the protocol sources. */
#ifndef UK_PROTOCOL_JSONRPC_INT_H
#define UK_PROTOCOL_JSONRPC_INT_H

#include <stdbool.h>

#include <cjson/cJSON.h>

/* A number that is an integer within +-(2^53 - 1), exact in C doubles and JavaScript. */
bool uk__jsonrpc_is_safe_int(const cJSON *item);

/* Member of obj named exactly name (case-sensitive, unlike cJSON_GetObjectItem), or NULL. */
const cJSON *uk__jsonrpc_member(const cJSON *obj, const char *name);

#endif
