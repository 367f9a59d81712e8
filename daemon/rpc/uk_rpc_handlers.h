/* Handlers of the method table that live in other files of the rpc module. */
#ifndef UK_RPC_HANDLERS_H
#define UK_RPC_HANDLERS_H

#include "uk_rpc_call.h"

void uk__rpc_token_list(uk_rpc_call *call);
void uk__rpc_cert_list(uk_rpc_call *call);
void uk__rpc_sign(uk_rpc_call *call);

#endif
