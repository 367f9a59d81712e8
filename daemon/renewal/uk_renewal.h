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
 * the role to it (UK_RECORD_TAG_ROLE); the token layer signs with it and lists its certificate for
 * the role, and a second renewal of the role starts from it.
 *
 * Retirement: once the new pair is active (and so valid), the old key goes before DONE: its
 * retired slot's record entry, key (DELETE KEY) and certificate object, in that order, decided
 * from the card so that recovery of an ACTIVATED record finishes it. The standard slots are never
 * touched: on a card without MOVE KEY the original pair stays in 9a/9c, and a later renewal
 * retires the previous renewed pair (docs/renewal.md).
 *
 * Origin: each renewal belongs to the web origin that prepared it (NULL: the local user); the
 * record keeps it (uk_renewal_rec.origin). The service does not enforce who may see a record: the
 * rpc layer does (docs/protocol.md).
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
 * keys: UK_RECORD_TAG_ROLE (uk_driver.h), "<role slot> <active slot>", e.g. "9a 82". One per
 * role: a second renewal replaces it. */
#define UK_RENEWAL_RECORD_TAG_ROLE UK_RECORD_TAG_ROLE
/* The card record TLV that marks a staged key as belonging to a renewal that a journal recorded:
 * "<staged slot> <renewal id>", written once the journal holds the record, removed with the
 * staging slot's UK_RECORD_TAG_KEY_ID entry (or when the staged key becomes the role's key).
 * Recovery removes the staged keys and UK_RECORD_TAG_KEY_ID entries that a prepare left behind
 * when it died before its record was written: an entry is kept when a record of this journal
 * names the slot, when this TLV marks it (a renewal prepared with another journal: another
 * computer), when a role maps to it, or when the slot holds a certificate or the key of one. */
#define UK_RENEWAL_RECORD_TAG_STAGED 0xC2u

/* Most attributes of an explicit subject (renewal.prepare's subject). */
#define UK_RENEWAL_SUBJECT_MAX 16u
/* Most certificates in a commit's chain. */
#define UK_RENEWAL_CHAIN_MAX 8u

/* One attribute of an explicit subject, each its own RDN, in certificate order (C first). */
typedef struct uk_renewal_subject_attr {
    const char *type;  /* "CN", "O", "OU", "C", "ST", "L", "emailAddress", ... or a dotted OID */
    const char *value; /* UTF-8 */
} uk_renewal_subject_attr;

typedef struct uk_renewal_prepare_req {
    const char *token_id;  /* "piv:12345678" */
    const char *slot;      /* "9a" or "9c" */
    uk_renewal_mode mode;  /* EXTEND or REPAIR */
    const char *algorithm; /* "rsa2048", "p256", "p384", "sm2", or NULL: the current key's kind */
    const uk_secret *pin;  /* borrowed for the call: copied */
    /* The web origin asking ("https://..."), kept in the record; NULL for the local user. */
    const char *origin;
    /* An explicit subject for the request (n_subject 0: the current certificate's, which a slot
     * without certificate does not have: CERT_NOT_FOUND then). Copied. */
    const uk_renewal_subject_attr *subject;
    size_t n_subject;
} uk_renewal_prepare_req;

typedef struct uk_renewal_commit_req {
    const char *id;
    const uint8_t *cert_der; /* the issued certificate, DER */
    size_t cert_der_len;
    /* Certificates (DER) that chain the issued one up (issuer first), n_chain may be 0. Copied. */
    const uint8_t *const *chain;
    const size_t *chain_len;
    size_t n_chain;
    /* The PIN (borrowed for the call: copied), or NULL. Needed on a token whose private keys are
     * hidden until the PIN is verified (uk_renewal_needs_pin): retiring the old key deletes one. */
    const uk_secret *pin;
    /* Dual certificates (SKF): the encryption certificate (DER) and its key pair as the CA's
     * key-management centre wrapped it for the new signing key (a GM/T 0016 ENVELOPEDKEYBLOB in
     * its standard byte form, uk_driver.h import_enveloped_key). Both or neither. Copied. They
     * go into the staged container before its signing certificate, so a signing certificate on
     * the card means the encryption pair is complete (docs/renewal.md, "Dual certificates"). */
    const uint8_t *enc_cert_der;
    size_t enc_cert_der_len;
    const uint8_t *enveloped_key;
    size_t enveloped_key_len;
} uk_renewal_commit_req;

/* Called on the loop thread with a record that recovery or the activation timer changed (not for
 * prepare, commit and abort: their callers report those). rec is borrowed for the call. */
typedef void (*uk_renewal_changed_fn)(void *ctx, const uk_renewal_rec *rec);

/* What a call reports. rec: the journal record after the operation (NULL on error, and for list);
 * recs/n_recs: list only; cert: commit only, the new certificate. */
typedef struct uk_renewal_result {
    const uk_renewal_rec *rec;
    uk_renewal_rec *const *recs;
    size_t n_recs;
    const uint8_t *cert_der;
    size_t cert_der_len;
    int pin_retries; /* prepare, commit, abort: retries left after a wrong PIN, -1 unknown */
} uk_renewal_result;

typedef void (*uk_renewal_cb)(void *arg, int err, const uk_renewal_result *res);

/* Opens the journal under state_dir (blocking: at start-up). tokens and loop are borrowed.
 * Errors: those of uk_journal_open and uk_worker_new. */
int uk_renewal_new(uv_loop_t *loop, uk_tokens *tokens, const char *state_dir, uk_renewal **out)
    __attribute__((warn_unused_result));
/* fn NULL: none. Loop thread, before or after operations start. */
void uk_renewal_set_on_changed(uk_renewal *r, uk_renewal_changed_fn fn, void *ctx);
/* A PEM file of trusted CA certificates (renewal_ca_bundle): every commit's certificate must then
 * verify against it (through the commit's chain). NULL: none; a chain given to commit is then only
 * checked to chain up (signatures, validity). Copied. Errors: UK_E_NO_MEMORY. */
int uk_renewal_set_ca_bundle(uk_renewal *r, const char *path) __attribute__((warn_unused_result));
/* Closes the worker, then the journal once every card job has reported (the token layer
 * cancels queued ones when it stops: call this before uk_tokens_stop). Calls made after it fail
 * with UK_E_CANCELLED. NULL-safe. */
void uk_renewal_free(uk_renewal *r);

/*
 * Whether slot names a key a renewal may be prepared for on token_id: the PIV standard slots
 * "9a" and "9c" on PIV tokens ("piv:..."); on tokens of other drivers (PKCS#11: "p11:...") any
 * key id of the driver's form (1 to UK_KEY_ID_MAX-1 characters of [0-9a-f], or "h" + hex for a
 * long CKA_ID), since their keys have no fixed slots; on SKF tokens ("skf:...") the signing pair
 * of a container, "<c>/sign" (docs/drivers.md, "SKF driver").
 */
bool uk_renewal_role_ok(const char *token_id, const char *slot);

/* Errors (sync or in cb): INVALID_PARAMS (also a subject that does not encode), NO_TOKEN,
 * RENEWAL_STATE (extend without a valid certificate, repair with one), RENEWAL_IN_PROGRESS,
 * NO_STAGING_SLOT, NOT_SUPPORTED (the card cannot stage keys), CERT_NOT_FOUND (repair of a slot
 * without certificate and without an explicit subject), PIN_*, KEY_REJECTED, SIGNATURE_INVALID,
 * card errors. The current pair is the role's active one (the card record's mapping, on a card
 * that cannot move keys). */
int uk_renewal_prepare(uk_renewal *r, const uk_renewal_prepare_req *req, uk_renewal_cb cb,
                       void *arg) __attribute__((warn_unused_result));
/*
 * Whether renewal.commit and renewal.abort of rec need the PIN: on PKCS#11 tokens (driver "p11")
 * private keys are hidden until the PIN is verified (CKF_LOGIN_REQUIRED, nearly every token), and
 * commit (retirement) and abort delete one. The card job verifies it only when the token says so
 * (UK_TOKEN_CAP_DELETE_NEEDS_PIN); without it there it fails with PIN_REQUIRED before changing
 * anything. Docs: docs/renewal.md, "PKCS#11 tokens".
 */
bool uk_renewal_needs_pin(const uk_renewal_rec *rec);

/* Errors: RENEWAL_NOT_FOUND, RENEWAL_STATE, CERT_INVALID (also a chain element),
 * CERT_KEY_MISMATCH, CERT_EXPIRED, CHAIN_INVALID (the chain or the CA bundle does not verify
 * it), CONFIG_INVALID (the CA bundle cannot be read) - nothing on the card changed for these -,
 * PIN_REQUIRED (see uk_renewal_needs_pin), PIN_* (res.pin_retries), card errors. A certificate
 * not valid yet is written and waits: the record reported is WRITTEN. Committing an ACTIVATED
 * renewal again with its certificate finishes its retirement (one left pending for the PIN by a
 * recovery: step "old_key_pending"). */
int uk_renewal_commit(uk_renewal *r, const uk_renewal_commit_req *req, uk_renewal_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* Deletes the staged key (and its certificate) of a PREPARED renewal, or of a WRITTEN one whose
 * certificate is not valid yet (the old pair stays active); the record ends ABORTED. pin: NULL,
 * or the PIN (borrowed: copied) for a token that needs it (uk_renewal_needs_pin).
 * Errors: RENEWAL_NOT_FOUND, RENEWAL_STATE (another state, or a WRITTEN one already being
 * activated), PIN_REQUIRED, PIN_* (res.pin_retries), card errors. */
int uk_renewal_abort(uk_renewal *r, const char *id, const uk_secret *pin, uk_renewal_cb cb,
                     void *arg) __attribute__((warn_unused_result));
/* Finishes or rolls back the unfinished renewals of token_id (journal state COMMITTING, WRITTEN,
 * ACTIVATED), from what the card holds, then removes what an interrupted prepare left on the card
 * (see UK_RENEWAL_RECORD_TAG_STAGED): call it when the token is inserted (which includes the
 * tokens present at start). Reads the journal on the service's worker, then runs one card job (it
 * reads the card record; token.changed only when a renewal needed the card). A prepare queued
 * meanwhile cleans the same way before it stages.
 * cb may be NULL (errors are then only logged). Errors: INVALID_PARAMS, NO_TOKEN, card and
 * journal errors (in cb: the last record that could not be recovered). */
int uk_renewal_recover(uk_renewal *r, const char *token_id, uk_renewal_cb cb, void *arg)
    __attribute__((warn_unused_result));
int uk_renewal_status(uk_renewal *r, const char *id, uk_renewal_cb cb, void *arg)
    __attribute__((warn_unused_result));
int uk_renewal_list(uk_renewal *r, uk_renewal_cb cb, void *arg) __attribute__((warn_unused_result));

#endif
