/*
 * uk_rpc_guard.h - the user's say before a key is used: consent and the PIN.
 *
 * A handler that uses a key (sign, renewal.prepare, renewal.commit, renewal.abort of a PKCS#11
 * renewal) parses its params, then hands the call to a guard with a run function that starts the
 * card operation. The guard decides, by
 * who is calling and the per-origin policy (docs/security.md, "PIN and consent"):
 *
 *   - a PIN in params: taken only from the local user's tools (Unix socket) or from an origin
 *     whose policy has pin_from_page; otherwise wiped and refused with PIN_FROM_PAGE_DISABLED;
 *   - with one PIN try left, nothing is sent to the card before the user confirms in a dialog
 *     (PIN_LAST_RETRY when no dialog can be shown); none left: PIN_LOCKED;
 *   - too many wrong PINs for this key in the last minute: RATE_LIMITED;
 *   - otherwise the PIN dialog (pinentry) names the origin, the key, the certificate's subject and
 *     what is being done; typing the PIN there is the user's consent. Without a PIN dialog (a
 *     page PIN, or an operation that needs no PIN such as writing a certificate) a web origin gets
 *     a CONFIRM dialog, once per request or once per session as its policy says;
 *   - a wrong PIN typed in the dialog is asked again, with the tries left, until the card says
 *     PIN_LOCKED or the user cancels.
 *
 * Ownership: the guard owns arg from uk__rpc_guard_start until it calls run for the last time; the
 * handler's completion calls uk__rpc_guard_done, which either takes over again (true: the PIN is
 * asked again and run called again) or frees the guard (false: the handler answers the call and
 * frees arg). When the guard answers the call itself (a refusal, a cancelled dialog) it calls
 * cleanup(arg) and frees itself.
 *
 * Thread: loop thread only.
 */
#ifndef UK_RPC_GUARD_H
#define UK_RPC_GUARD_H

#include <stdbool.h>

#include "uk_rpc_call.h"
#include "uk_secret.h"

typedef enum uk__rpc_action {
    UK__ACTION_SIGN = 1,       /* sign data with a key */
    UK__ACTION_GENERATE = 2,   /* generate a new key pair for a certificate renewal */
    UK__ACTION_WRITE = 3,      /* write a new certificate onto the key */
    UK__ACTION_CHANGE_PIN = 4, /* change the key's PIN (the PIN asked is the current one) */
    UK__ACTION_DECRYPT = 5,    /* decrypt data sent to the key's certificate */
    UK__ACTION_DELETE = 6,     /* delete a key prepared for a renewal (renewal.abort; PKCS#11) */
    UK__ACTION_VERIFY_PIN = 7, /* check the PIN only (pin.verify: a portal's "log in") */
} uk__rpc_action;

typedef struct uk__rpc_guard_info {
    uk__rpc_action action;
    const char *token; /* token id ("piv:…"); the guard answers NO_TOKEN when it is absent */
    const char *key;   /* key whose certificate the dialog names ("9a"), or NULL */
    const char *what;  /* one more line for the dialog (a digest in hex), or NULL */
    bool need_pin;
    const char *pin_param; /* the params member that may carry the PIN; NULL: "pin" */
} uk__rpc_guard_info;

typedef struct uk__rpc_guard uk__rpc_guard;

/* Starts the operation with pin (consumed; NULL when the info said no PIN is needed). Returns
 * UK_OK when the operation will call uk__rpc_guard_done, or an error the guard answers. */
typedef int (*uk__rpc_guard_run_fn)(uk__rpc_guard *g, void *arg, uk_secret *pin);

void uk__rpc_guard_start(uk_rpc_call *call, const uk__rpc_guard_info *info,
                         uk__rpc_guard_run_fn run, void (*cleanup)(void *arg), void *arg);

/* Before anything else: a PIN in params ("pin", or pin.change's "old_pin" and "new_pin") from a
 * caller that may not send one is wiped and refused (answers PIN_FROM_PAGE_DISABLED and returns
 * true), so a page learns that before it learns anything about its other parameters. */
bool uk__rpc_guard_refuse_pin(uk_rpc_call *call);

/* Whether dialogs speak Chinese (LC_ALL, LC_MESSAGES, LANG as gettext reads them), else English. */
bool uk__rpc_chinese(void);

/* The operation ended with err (retries_left with PIN_INCORRECT). See the contract above. */
bool uk__rpc_guard_done(uk__rpc_guard *g, int err, int retries_left);

#endif
