/*
 * uk_token_internal.h - what the token layer shares between its files and
 * offers to ukeyd-internal callers that are not handlers (the renewal
 * service, tests). Not part of the handler contract (uk_token.h).
 */
#ifndef UK_TOKEN_INTERNAL_H
#define UK_TOKEN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "uk_card.h"
#include "uk_driver.h"
#include "uk_token.h"

/* ---- limits and timing (documented in docs/architecture.md, "Token layer") */

/* Readers watched at once: pcsc-lite's PCSCLITE_MAX_READERS_CONTEXTS (16)
 * minus the \\?PnP?\Notification entry. Further readers are ignored (logged). */
#define UK__READERS_MAX 15u
/* Reader names as pcsc-lite makes them (MAX_READERNAME) plus the NUL. */
#define UK__READER_NAME_MAX 128u
/* ATRs are at most 33 bytes (ISO 7816-3); pcsc-lite's MAX_ATR_SIZE. */
#define UK__ATR_MAX 33u

/* busy_timeout_ms: 0 means this; larger values are clamped to _MAX. */
#define UK__BUSY_TIMEOUT_DEFAULT_MS 5000u
#define UK__BUSY_TIMEOUT_MAX_MS     60000u
/* Back-off between attempts while another program holds the card. */
#define UK__BUSY_RETRY_MIN_MS 50u
#define UK__BUSY_RETRY_MAX_MS 500u
/* While a card could not be identified because it was held exclusively,
 * identification is tried again this often (each try itself waits up to
 * busy_timeout_ms). Only then does the token layer wake up by itself. */
#define UK__BUSY_REIDENTIFY_MS 1000u
/* Back-off between SCardEstablishContext attempts while pcscd is away;
 * once it reaches _MAX the monitor stops polling and waits (up to _WATCH_MS
 * at a time) for pcscd's socket to appear (inotify), then retries quickly
 * again. Without a watch it keeps polling every _MAX_MS. */
#define UK__SERVICE_RETRY_MIN_MS 100u
#define UK__SERVICE_RETRY_MAX_MS 2000u
#define UK__SERVICE_WATCH_MS     60000u
/* After an empty answer or SCARD_E_NOT_TRANSACTED: how long to wait for
 * pcscd to notice a removal (it polls presence about every 400 ms). */
#define UK__REMOVAL_SETTLE_MS 1200u
#define UK__REMOVAL_POLL_MS   100u

/* ---- a stop flag that threads can sleep on ----------------------------- */

/* Set once at uk_tokens_stop; every sleep of the monitor and the workers
 * waits on it, so a stop never waits for a back-off to run out. */
typedef struct uk__stop {
    uv_mutex_t mu;
    uv_cond_t cond;
    bool stop;
} uk__stop;

int uk__stop_init(uk__stop *s) __attribute__((warn_unused_result));
void uk__stop_destroy(uk__stop *s);
void uk__stop_set(uk__stop *s);
bool uk__stop_requested(uk__stop *s);
/* Sleeps up to ms; returns false at once (or on waking) if stop was set. */
bool uk__stop_sleep(uk__stop *s, unsigned ms);
/* CLOCK_MONOTONIC in milliseconds. */
uint64_t uk__now_ms(void);

/* ---- the driver table ---------------------------------------------------- */

/* The built-in ordered driver table (uk_registry.c). */
const uk_driver *const *uk__drivers(size_t *n);

/*
 * uk_tokens_start with an explicit ordered driver table (borrowed; it must
 * outlive the layer). uk_tokens_start() calls it with uk__drivers().
 */
int uk__tokens_start_with(const uk_tokens_options *opt, const uk_driver *const *drivers,
                          size_t n_drivers, uk_tokens **out) __attribute__((warn_unused_result));

/* ---- operations for internal callers (renewal) -------------------------- */

enum {
    /* The operation may change what is on the card: afterwards (whatever it
     * returned, since a write may have happened before an error) the
     * certificate cache is dropped and UK_TOKEN_CHANGED is emitted. */
    UK__OP_CHANGES_CARD = 1u << 0,
};

/* Runs on the reader's worker, inside one transaction. */
typedef int (*uk__token_op_fn)(void *arg, const uk_driver *drv, void *state, uk_card *card);
/* Runs on the loop thread: err is op's result, or UK_E_CANCELLED, or the
 * error that kept op from running (CARD_BUSY, CARD_REMOVED, ...). */
typedef void (*uk__token_done_fn)(void *arg, int err);

/*
 * Queues op for token_id on its reader's worker, serialised with every other
 * operation on that card. Callback contract as uk_token.h. Errors:
 * UK_E_NO_TOKEN (no such token now), UK_E_NO_SERVICE, UK_E_CANCELLED
 * (stopping), UK_E_BUSY (queue full), UK_E_NO_MEMORY. Loop thread.
 */
int uk__tokens_run(uk_tokens *t, const char *token_id, unsigned flags, uk__token_op_fn op,
                   uk__token_done_fn done, void *arg) __attribute__((warn_unused_result));

/* Inside an operation of uk__tokens_run (worker): replaces key_id by the active key of that role
 * when the card record maps it (UK_RECORD_TAG_ROLE), as uk_tokens_sign does. CARD_RESET or
 * CARD_REMOVED when the record read found the card reset or gone (the operation stops). */
int uk__tokens_map_role(const uk_driver *d, void *state, uk_card *card, char key_id[UK_KEY_ID_MAX]);

/* What an operation of uk__tokens_run learnt about the PIN tries of token_id (retries >= 0):
 * stored in its summary, UK_TOKEN_CHANGED emitted when that changed it. Loop thread. */
void uk__tokens_note_pin(uk_tokens *t, const char *token_id, int retries);

/* driver->put_cert through uk__tokens_run with UK__OP_CHANGES_CARD; der is
 * copied. UK_E_NOT_SUPPORTED (in the callback) when the driver has none. */
int uk__tokens_put_cert(uk_tokens *t, const char *token_id, const char *key_id, const uint8_t *der,
                        size_t len, uk__token_done_fn done, void *arg)
    __attribute__((warn_unused_result));

#endif
