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

#endif
