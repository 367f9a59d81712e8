/*
 * fake_pcsclite.h - a scripted stand-in for libpcsclite (a link seam: the
 * test executable links fake_pcsclite.c instead of -lpcsclite, so the token
 * layer's uk_pcsc.c runs unchanged against it).
 *
 * What it models, close to pcsc-lite 1.9.9:
 *   - a service that can go away and come back (contexts made before are
 *     then dead: every call on them answers SCARD_E_NO_SERVICE, and a
 *     blocked SCardGetStatusChange returns SCARD_F_COMM_ERROR);
 *   - readers that come and go (\\?PnP?\Notification), cards inserted and
 *     removed (per-reader event counter in the upper 16 bits);
 *   - SCardCancel that only ends a call that is blocked right now (a cancel
 *     sent earlier is lost, as in pcsc-lite);
 *   - another program holding a card exclusively (SCardConnect answers
 *     SCARD_E_SHARING_VIOLATION);
 *   - a card removed in the middle of an exchange, either as pcsc-lite
 *     reports it (SCARD_W_REMOVED_CARD) or as vpcd does (an empty answer);
 *   - injected return codes for any function, N times.
 * It counts calls per function and records protocol violations (a transmit
 * outside a transaction, two transactions on one card at once).
 *
 * Thread-safe: one mutex; the test thread scripts, the token layer's
 * threads call.
 */
#ifndef FAKE_PCSCLITE_H
#define FAKE_PCSCLITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The card: answers one APDU (data + SW) into resp (capacity cap). Called
 * with the fake's lock released, on the token layer's worker thread. */
typedef void (*fake_card_fn)(void *ctx, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
                             size_t *resp_len);

void fake_pcsc_reset(void);
void fake_pcsc_set_service(bool up);
void fake_pcsc_add_reader(const char *name);
void fake_pcsc_remove_reader(const char *name);
void fake_pcsc_insert(const char *name, fake_card_fn fn, void *ctx);
void fake_pcsc_remove(const char *name);
/* Another program holds the card with SCARD_SHARE_EXCLUSIVE. */
void fake_pcsc_set_exclusive(const char *name, bool held);
/* Answer n more APDUs, then remove the card on the next one: it fails with
 * SCARD_W_REMOVED_CARD, or (empty_answer) succeeds with 0 bytes like vpcd. */
void fake_pcsc_drop_after(const char *name, int n, bool empty_answer);
/* Every transmit on the reader takes this long. */
void fake_pcsc_set_delay(const char *name, unsigned ms);
/* The next `times` calls of func ("SCardConnect", ...) return rv. */
void fake_pcsc_fail(const char *func, long rv, unsigned times);

unsigned fake_pcsc_calls(const char *func);
unsigned fake_pcsc_violations(void);
/* Transactions begun since the reset. */
unsigned fake_pcsc_transactions(void);

#endif
