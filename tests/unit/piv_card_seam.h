/*
 * piv_card_seam.h - a test-only uk_card (link seam: this object file
 * provides uk_card_transmit, uk_card_atr and uk_card_reader) over the
 * virtual PIV card's engine, in process, with no pcscd.
 *
 * A hook sees every C-APDU first and may answer it itself (scripted error
 * paths: odd 61xx chunks, malformed answers, status words) or let the engine
 * answer. The seam counts APDUs, keeps a copy of every C-APDU sent (to prove
 * what was never sent) and can fail the k-th transmit with a uk_err code.
 */
#ifndef PIV_CARD_SEAM_H
#define PIV_CARD_SEAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uk_card.h"
#include "vpiv.h"

/* Return 0 to let the engine answer; otherwise the R-APDU length written to
 * r (capacity cap, always >= UK_CARD_MAX_RESPONSE). */
typedef size_t (*piv_seam_hook)(void *ctx, const uint8_t *c, size_t n, uint8_t *r, size_t cap);

/* vc may be NULL when the hook answers everything; the seam does not own vc. */
uk_card *piv_seam_new(vpiv_card *vc);
void piv_seam_free(uk_card *card);
void piv_seam_set_hook(uk_card *card, piv_seam_hook hook, void *ctx);
/* Replaces the ATR (default: the engine's, or a short T=1 ATR without one). */
void piv_seam_set_atr(uk_card *card, const uint8_t *atr, size_t len);
/* The transmit number k (1 = the next one) returns err instead. */
void piv_seam_fail_at(uk_card *card, unsigned k, int err);

unsigned piv_seam_apdus(const uk_card *card);
unsigned piv_seam_ins_count(const uk_card *card, uint8_t ins);
void piv_seam_reset_counts(uk_card *card);
/* Whether any C-APDU sent so far contains needle. */
bool piv_seam_sent(const uk_card *card, const uint8_t *needle, size_t n);
/* The largest C-APDU sent so far, in bytes. */
size_t piv_seam_max_capdu(const uk_card *card);

/* Helpers for hooks: write data + SW into r; returns the length. */
size_t piv_seam_answer(uint8_t *r, const uint8_t *data, size_t len, uint16_t sw);

#endif
