/*
 * uk_err.h - ukeyd error codes, generated from errors.def.
 *
 * Every ukeyd function that can fail returns int: UK_OK (0) or a negative UK_E_* code, and writes
 * its results through out-parameters. Native codes (SCARD_*, status words, CK_RV, SKF codes,
 * OpenSSL's queue) are translated into these codes once, at their adapter, which logs the native
 * code; only the reason name, the flags and the messages below ever reach a client.
 *
 * Thread: every function here is pure (reads constant tables) and may be called from any thread.
 * Strings returned are static and never freed.
 */
#ifndef UK_ERR_H
#define UK_ERR_H

#include <stdbool.h>
#include <stddef.h>

#define UK_OK 0

typedef enum uk_err {
    UK_E_OK_ = UK_OK, /* keeps the enum signed and anchored at 0; use UK_OK */
#define X(name, value, rpc, retriable, en, zh) UK_E_##name = (value),
#include "errors.def"
#undef X
} uk_err;

/* The JSON-RPC error code range reserved for application errors ("server errors"). */
#define UK_RPC_CODE_APP_MIN (-32099)
#define UK_RPC_CODE_APP_MAX (-32000)

/*
 * Stable reason name of err, e.g. "CARD_REMOVED"; "OK" for UK_OK; "UNKNOWN" for a value that is
 * not in the table.
 */
const char *uk_err_name(int err);

/*
 * User message for err in lang: "zh-CN" (also "zh", "zh_CN" and "zh-Hans", any case) or English
 * for anything else, including NULL. Unknown codes get the INTERNAL message.
 */
const char *uk_err_message(int err, const char *lang);

/* JSON-RPC error.code for err; -32603 (internal error) for UK_OK and unknown values. */
int uk_err_rpc_code(int err);

/* Whether the same request may succeed when sent again (see errors.def); false if unknown. */
bool uk_err_retriable(int err);

/* Whether err is a row of the table. */
bool uk_err_known(int err);

/*
 * Table walk for tools and tests: uk_err_count() rows, uk_err_at(i) is the code of row i (table
 * order) for i < uk_err_count(), UK_OK otherwise.
 */
size_t uk_err_count(void);
int uk_err_at(size_t i);

/*
 * The reason code for a name as it appears on the wire ("CARD_REMOVED"); writes it to *out and
 * returns true, or returns false (and leaves *out alone) if no row has that name.
 */
bool uk_err_from_name(const char *name, int *out);

#endif
