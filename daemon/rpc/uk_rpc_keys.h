/*
 * uk_rpc_keys.h - the key methods (token.list, cert.list, sign) and the glue
 * that turns token-layer events into notifications.
 *
 * Thread: loop thread. uk_rpc_token_event is the uk_tokens_options.on_event
 * callback's body: main wires it.
 */
#ifndef UK_RPC_KEYS_H
#define UK_RPC_KEYS_H

#include "uk_rpc.h"
#include "uk_token.h"

void uk_rpc_token_event(uk_rpc *rpc, uk_token_event ev, const uk_token_summary *t);

#endif
