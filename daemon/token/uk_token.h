/*
 * uk_token.h - the token layer: the only thing handlers see of keys.
 *
 * It watches readers (a monitor thread on SCardGetStatusChange, including
 * the \\?PnP?\Notification pseudo-reader), finds the driver for each card
 * (ordered driver table), and runs every card operation on the reader's own
 * worker thread inside SCardBeginTransaction/SCardEndTransaction, in shared
 * mode, so other programs are never locked out. Results come back on the
 * loop thread.
 *
 * Thread: every function here is called on the loop thread; callbacks run on
 * the loop thread. A function that returns an error never calls its
 * callback; one that returns UK_OK calls it exactly once (with
 * UK_E_CANCELLED if the layer stops first).
 *
 * Ownership: uk_tokens_start/uk_tokens_stop. Summaries and certificates
 * passed to callbacks are borrowed for the duration of the callback.
 */
#ifndef UK_TOKEN_H
#define UK_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "uk_driver.h"
#include "uk_secret.h"

typedef struct uk_tokens uk_tokens;

typedef enum uk_token_event {
    UK_TOKEN_INSERTED = 1, /* a card was recognised in a reader */
    UK_TOKEN_REMOVED,      /* it left (or its reader did) */
    UK_TOKEN_CHANGED,      /* same card, something on it changed (certificates, PIN state) */
} uk_token_event;

typedef struct uk_token_summary {
    char id[96]; /* stable while present: "piv:<serial>"; "" for an empty reader */
    char reader[128];
    char driver[16]; /* "" when no driver recognised the card */
    uk_token_identity identity;
    bool present;    /* a card is in the reader */
    int pin_retries; /* -1 unknown */
} uk_token_summary;

typedef void (*uk_tokens_event_fn)(void *ctx, uk_token_event ev, const uk_token_summary *t);

/* A PKCS#11 module to load: an absolute path from a configuration file (never
 * from a request) and a name for logs and reader names ("" = the path).
 * Hints (docs/drivers.md, "Module hints"): with any of them the module serves
 * only tokens that match every hint given, and a card it serves that a PC/SC
 * reader also shows is served by the module, not by a built-in driver. The ATR
 * is that of the PC/SC reader the slot names (slotDescription); a card in a
 * PC/SC reader whose ATR matches a hint is never identified by the built-in
 * drivers. */
#define UK_TOKENS_ATR_MAX 33u
typedef struct uk_tokens_module {
    const char *path;
    const char *name;
    uint8_t atr[UK_TOKENS_ATR_MAX], atr_mask[UK_TOKENS_ATR_MAX];
    size_t atr_len;          /* 0: no ATR hint */
    const char *token_label; /* NULL or "": no label hint; else the exact label */
} uk_tokens_module;

/* An SKF (GM/T 0016) module to load: as uk_tokens_module, with the module's
 * ULONG width (docs/drivers.md, "SKF driver"). */
typedef struct uk_tokens_skf_module {
    const char *path;
    const char *name;
    unsigned ulong_bytes; /* 4 or 8; 0 = 4 */
} uk_tokens_skf_module;

typedef struct uk_tokens_options {
    uv_loop_t *loop;
    uk_driver_options driver;
    uk_tokens_event_fn on_event; /* may be NULL */
    void *ctx;
    /* How long to keep retrying when another program holds the card
     * exclusively, before answering CARD_BUSY. 0: a documented default. */
    unsigned busy_timeout_ms;
    /* PKCS#11 modules from the configuration (copied at start): each one's
     * slots are readers next to the PC/SC ones (docs/architecture.md). */
    const uk_tokens_module *modules;
    size_t n_modules;
    /* SKF modules likewise: each one's devices are readers. */
    const uk_tokens_skf_module *skf_modules;
    size_t n_skf_modules;
} uk_tokens_options;

__attribute__((warn_unused_result)) int uk_tokens_start(const uk_tokens_options *opt,
                                                        uk_tokens **out);
/* Stops the monitor (SCardCancel) and the workers; done runs on the loop
 * thread when every thread is joined and every handle closed. */
void uk_tokens_stop(uk_tokens *t, void (*done)(void *ctx), void *ctx);

/* A snapshot of readers and tokens (no card I/O). *out is malloc'ed. */
__attribute__((warn_unused_result)) int uk_tokens_list(uk_tokens *t, uk_token_summary **out,
                                                       size_t *n);

typedef void (*uk_tokens_certs_fn)(void *arg, int err, const uk_token_cert *certs, size_t n);
/* Every certificate of a token; cached after the first read, the cache
 * dropped on any event for that reader (a warm call sends no APDU). */
__attribute__((warn_unused_result)) int uk_tokens_list_certs(uk_tokens *t, const char *token_id,
                                                             uk_tokens_certs_fn cb, void *arg);

typedef void (*uk_tokens_sign_fn)(void *arg, int err, int retries_left, const uint8_t *sig,
                                  size_t sig_len);
/* Verifies the PIN (consumed: wiped and freed by the layer) and signs, in one
 * transaction. */
__attribute__((warn_unused_result)) int uk_tokens_sign(uk_tokens *t, const char *token_id,
                                                       const uk_sign_req *req, uk_secret *pin,
                                                       uk_tokens_sign_fn cb, void *arg);

typedef void (*uk_tokens_pin_fn)(void *arg, int err, int retries_left);
/* The PIN tries left, read from the card without spending one (driver pin_status): err UK_OK
 * with retries_left (-1: the card does not tell). Updates the summary's pin_retries (and emits
 * UK_TOKEN_CHANGED when it changed). NOT_SUPPORTED when the driver cannot tell. */
__attribute__((warn_unused_result)) int uk_tokens_pin_status(uk_tokens *t, const char *token_id,
                                                             uk_tokens_pin_fn cb, void *arg);

/* Changes the PIN (driver change_pin) in one transaction. Both PINs are consumed (wiped and freed
 * by the layer, on every path). PIN_INCORRECT / PIN_LOCKED come with retries_left, which also
 * updates the summary as uk_tokens_sign does; PIN_INVALID (a format the card would refuse) is
 * answered before anything is sent. NOT_SUPPORTED when the driver has no change_pin. */
__attribute__((warn_unused_result)) int uk_tokens_change_pin(uk_tokens *t, const char *token_id,
                                                             uk_secret *old_pin, uk_secret *new_pin,
                                                             uk_tokens_pin_fn cb, void *arg);

/* Verifies the PIN (consumed as for uk_tokens_sign) and has the card forget it again, in one
 * transaction: the check a portal's "log in" asks for (SOF_Login), which leaves nothing
 * unlocked. UK_OK with the retries the right PIN restored; PIN_INCORRECT / PIN_LOCKED with
 * retries_left, which update the summary as for uk_tokens_sign. */
__attribute__((warn_unused_result)) int uk_tokens_verify_pin(uk_tokens *t, const char *token_id,
                                                             uk_secret *pin, uk_tokens_pin_fn cb,
                                                             void *arg);

typedef void (*uk_tokens_decrypt_fn)(void *arg, int err, int retries_left, const uint8_t *out,
                                     size_t out_len);
/* Verifies the PIN (consumed as for uk_tokens_sign) and runs the driver's decrypt (uk_driver.h)
 * with key_id on in (copied; at most 512 bytes), in one transaction; the card forgets the PIN
 * afterwards. out (borrowed for the callback, wiped afterwards) is a secret: the callback copies
 * what it needs and wipes its copy. PIN_INCORRECT / PIN_LOCKED with retries_left, which update
 * the summary as for uk_tokens_sign. NOT_SUPPORTED when the driver cannot decrypt. */
__attribute__((warn_unused_result)) int uk_tokens_decrypt(uk_tokens *t, const char *token_id,
                                                          const char *key_id, uk_decrypt_kind kind,
                                                          const uint8_t *in, size_t in_len,
                                                          uk_secret *pin, uk_tokens_decrypt_fn cb,
                                                          void *arg);

/* Largest envelope content uk_tokens_open_envelope takes (the token decrypts it itself). */
#define UK_TOKENS_ENVELOPE_MAX (1024u * 1024u)
/* Verifies the PIN (consumed as for uk_tokens_sign) and has the driver decrypt an envelope's
 * content on the token (open_envelope, uk_driver.h) with key_id's encryption key, in one
 * transaction; req and its content (whole 16-byte blocks, at most UK_TOKENS_ENVELOPE_MAX) are
 * copied. cb gets the plaintext with its padding, as for uk_tokens_decrypt (a secret, wiped
 * afterwards). INVALID_PARAMS for a req out of those bounds; NOT_SUPPORTED when the driver cannot
 * (nothing asked of the card, no PIN try spent). */
__attribute__((warn_unused_result)) int uk_tokens_open_envelope(uk_tokens *t, const char *token_id,
                                                                const char *key_id,
                                                                const uk_envelope_req *req,
                                                                uk_secret *pin,
                                                                uk_tokens_decrypt_fn cb, void *arg);

#endif
