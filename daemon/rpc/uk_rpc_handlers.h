/* Handlers of the method table that live in other files of the rpc module. */
#ifndef UK_RPC_HANDLERS_H
#define UK_RPC_HANDLERS_H

#include <stdbool.h>

#include "uk_rpc_call.h"
#include "uk_token.h"

void uk__rpc_token_list(uk_rpc_call *call);
void uk__rpc_cert_list(uk_rpc_call *call);
void uk__rpc_sign(uk_rpc_call *call);
void uk__rpc_renewal_prepare(uk_rpc_call *call);
void uk__rpc_renewal_commit(uk_rpc_call *call);
void uk__rpc_renewal_status(uk_rpc_call *call);
void uk__rpc_renewal_list(uk_rpc_call *call);
void uk__rpc_renewal_abort(uk_rpc_call *call);

/* One certificate as cert.list shows it (uk_rpc_keys.c); NULL when out of memory. */
cJSON *uk__rpc_cert_json(const uk_token_cert *tc, unsigned expiring_days, bool with_der);

/*
 * The PIN of a request, by the one rule that holds until the PIN dialog exists: only the local
 * user's own tools (the Unix socket) pass a PIN. From any other endpoint a `pin` is wiped at once
 * and UK_E_PIN_FROM_PAGE_DISABLED returned. UK_OK with *pin NULL when there is none;
 * UK_E_INVALID_PARAMS with *pe filled for a malformed one. The caller answers the call.
 */
int uk__rpc_take_pin(uk_rpc_call *call, uk_secret **pin, uk_jsonrpc_param_error *pe);

#endif
