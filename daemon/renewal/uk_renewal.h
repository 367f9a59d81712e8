/*
 * uk_renewal.h - the renewal service: renewal.prepare / commit / abort / status / list on top of
 * the token layer (card work), the journal (uk_journal.h) and the x509 module (key checks, CSR).
 * docs/renewal.md has the state machine and what is on the card and on disk at each step.
 *
 * Threads: every function here is called on the loop thread and reports through its callback on
 * the loop thread. Card work runs in ONE job on the card's worker (uk__tokens_run), which also
 * writes the journal between card steps (the journal is thread-safe and its I/O is allowed on
 * worker threads): so the journal always says what the card holds, and no other program gets
 * the card between two steps of one operation. Journal-only work (status, list) runs on the
 * service's own uk_worker.
 *
 * Callback contract (as uk_token.h): a call that returns an error never calls its callback; a
 * call that returns UK_OK calls it exactly once, later, from the loop. The result passed to the
 * callback is borrowed for the callback only.
 *
 * Delayed activation: a committed certificate whose not_before is in the future is written to the
 * staging slot (state WRITTEN) and the old pair stays active; a timer (and every recovery) makes
 * it active once it is valid, and the card job emits token.changed.
 *
 * On a card without MOVE KEY the renewed key stays in the staging slot and the card record maps
 * the role to it (UK_RECORD_TAG_ROLE); the token layer signs with it for the role. Not done yet
 * (docs/renewal.md, "Status of the implementation"): cert.list and a second renewal of such a role
 * still look at the old pair in the role's slot.
 */
#ifndef UK_RENEWAL_H
#define UK_RENEWAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "uk_driver.h"
#include "uk_journal.h"
#include "uk_secret.h"
#include "uk_token.h"

typedef struct uk_renewal uk_renewal;

/* The card record TLV the service writes for the active key of a role on a card that cannot move
 * keys: UK_RECORD_TAG_ROLE (uk_driver.h), "<role slot> <active slot>", e.g. "9a 82". */
#define UK_RENEWAL_RECORD_TAG_ROLE UK_RECORD_TAG_ROLE

typedef struct uk_renewal_prepare_req {
    const char *token_id;  /* "piv:12345678" */
    const char *slot;      /* "9a" or "9c" */
    uk_renewal_mode mode;  /* EXTEND or REPAIR */
    const char *algorithm; /* "rsa2048", "p256", "p384", or NULL: the current key's kind */
    const uk_secret *pin;  /* borrowed for the call: copied */
} uk_renewal_prepare_req;

/* What a call reports. rec: the journal record after the operation (NULL on error, and for list);
 * recs/n_recs: list only; cert: commit only, the new certificate. */
typedef struct uk_renewal_result {
    const uk_renewal_rec *rec;
    uk_renewal_rec *const *recs;
    size_t n_recs;
    const uint8_t *cert_der;
    size_t cert_der_len;
    int pin_retries; /* prepare: retries left after a wrong PIN, -1 unknown */
} uk_renewal_result;

typedef void (*uk_renewal_cb)(void *arg, int err, const uk_renewal_result *res);

/* Opens the journal under state_dir (blocking: at start-up). tokens and loop are borrowed.
 * Errors: those of uk_journal_open and uk_worker_new. */
int uk_renewal_new(uv_loop_t *loop, uk_tokens *tokens, const char *state_dir, uk_renewal **out)
    __attribute__((warn_unused_result));
/* Closes the worker, then the journal once every card job has reported (the token layer
 * cancels queued ones when it stops: call this before uk_tokens_stop). Calls made after it fail
 * with UK_E_CANCELLED. NULL-safe. */
void uk_renewal_free(uk_renewal *r);

/* Errors (sync or in cb): INVALID_PARAMS, NO_TOKEN, RENEWAL_STATE (extend without a valid
 * certificate, repair with one), RENEWAL_IN_PROGRESS, NO_STAGING_SLOT, NOT_SUPPORTED (the card
 * cannot stage keys), CERT_NOT_FOUND (repair of a slot without certificate: no subject yet),
 * PIN_*, KEY_REJECTED, SIGNATURE_INVALID, card errors. */
int uk_renewal_prepare(uk_renewal *r, const uk_renewal_prepare_req *req, uk_renewal_cb cb,
                       void *arg) __attribute__((warn_unused_result));
/* der: the issued certificate (DER). Errors: RENEWAL_NOT_FOUND, RENEWAL_STATE, CERT_INVALID,
 * CERT_KEY_MISMATCH, CERT_EXPIRED (nothing on the card changed for these), card errors. A
 * certificate not valid yet is written and waits: the record reported is WRITTEN. */
int uk_renewal_commit(uk_renewal *r, const char *id, const uint8_t *der, size_t len,
                      uk_renewal_cb cb, void *arg) __attribute__((warn_unused_result));
/* Errors: RENEWAL_NOT_FOUND, RENEWAL_STATE (not PREPARED), card errors. */
int uk_renewal_abort(uk_renewal *r, const char *id, uk_renewal_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* Finishes or rolls back the unfinished renewals of token_id (journal state COMMITTING, WRITTEN,
 * ACTIVATED), from what the card holds: call it when the token is inserted (which includes the
 * tokens present at start). Runs as one card job queued before anything submitted after it.
 * cb may be NULL (errors are then only logged). Errors: INVALID_PARAMS, NO_TOKEN, card and
 * journal errors (in cb: the last record that could not be recovered). */
int uk_renewal_recover(uk_renewal *r, const char *token_id, uk_renewal_cb cb, void *arg)
    __attribute__((warn_unused_result));
int uk_renewal_status(uk_renewal *r, const char *id, uk_renewal_cb cb, void *arg)
    __attribute__((warn_unused_result));
int uk_renewal_list(uk_renewal *r, uk_renewal_cb cb, void *arg) __attribute__((warn_unused_result));

#endif
