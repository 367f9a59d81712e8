/* Handlers of the method table that live in other files of the rpc module. */
#ifndef UK_RPC_HANDLERS_H
#define UK_RPC_HANDLERS_H

#include <stdbool.h>

#include "uk_rpc_call.h"
#include "uk_token.h"
#include "uk_x509.h"

void uk__rpc_token_list(uk_rpc_call *call);
void uk__rpc_cert_list(uk_rpc_call *call);
void uk__rpc_sign(uk_rpc_call *call);
void uk__rpc_renewal_prepare(uk_rpc_call *call);
/* sign.cms, verify.cms, decrypt.cms (uk_rpc_cms.c); pin.status, pin.verify, pin.change
 * (uk_rpc_pin.c). */
void uk__rpc_sign_cms(uk_rpc_call *call);
void uk__rpc_verify_cms(uk_rpc_call *call);
void uk__rpc_decrypt_cms(uk_rpc_call *call);
void uk__rpc_pin_status(uk_rpc_call *call);
void uk__rpc_pin_change(uk_rpc_call *call);
void uk__rpc_pin_verify(uk_rpc_call *call);
void uk__rpc_renewal_commit(uk_rpc_call *call);
void uk__rpc_renewal_status(uk_rpc_call *call);
void uk__rpc_renewal_list(uk_rpc_call *call);
void uk__rpc_renewal_abort(uk_rpc_call *call);

/* One certificate as cert.list shows it (uk_rpc_keys.c); NULL when out of memory. */
cJSON *uk__rpc_cert_json(const uk_token_cert *tc, unsigned expiring_days, bool with_der);

/* The parsed certificate of key among certs (a token's cert list; uk_rpc_keys.c), the caller
 * frees it with uk_cert_info_free: CERT_NOT_FOUND when the key has none, the entry's own error
 * when it could not be read, uk_x509_parse's errors. */
int uk__rpc_key_cert(const uk_token_cert *certs, size_t n, const char *key, uk_cert_info **out)
    __attribute__((warn_unused_result));

/* What an error about a key says besides its reason: the reader's name with CARD_BUSY (so the
 * user knows which key another program holds). NULL when nothing. */
cJSON *uk__rpc_error_extra(uk_rpc_call *call, int err, const char *token_id);
/* The same after an operation that verified the PIN: with PIN_INCORRECT, retries_left. */
cJSON *uk__rpc_key_error_extra(uk_rpc_call *call, int err, int retries_left, const char *token_id);

/* system.pair (uk_rpc_guard.c). */
void uk__rpc_system_pair(uk_rpc_call *call);

/* origins.list, origins.revoke, audit.read (uk_rpc_admin.c). */
void uk__rpc_origins_list(uk_rpc_call *call);
void uk__rpc_origins_revoke(uk_rpc_call *call);
void uk__rpc_audit_read(uk_rpc_call *call);

#endif
