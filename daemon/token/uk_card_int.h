/*
 * uk_card_int.h - the kinds of card connection behind uk_card.h, private to
 * the token layer and the module drivers that bring their own kind.
 *
 * A uk_card is polymorphic: a PC/SC reader connection (uk_pcsc.c) or a
 * PKCS#11 module slot (p11/uk_p11_slots.c). Every kind embeds struct uk_card
 * as its first member and fills in an ops table; the functions below and the
 * uk_card.h ones dispatch through it (uk_card.c). The token layer drives
 * every kind the same way: begin .. driver calls .. end, reconnect after
 * UK_E_CARD_RESET, forget on a card event, free at teardown. A kind that has
 * no APDUs answers uk_card_transmit with UK_E_NOT_SUPPORTED, so a driver
 * probing it (PIV's SELECT) is told "not mine" without any I/O.
 *
 * Thread: the reader's (or slot's) worker thread only, like uk_card.h.
 * Errors: as uk_card.h and uk__card_begin in uk_pcsc.h.
 */
#ifndef UK_CARD_INT_H
#define UK_CARD_INT_H

#include <stddef.h>
#include <stdint.h>

#include "uk_card.h"

typedef struct uk__card_ops {
    const char *kind; /* "pcsc", "p11": logs and kind checks */
    int (*begin)(uk_card *card);
    void (*end)(uk_card *card);
    int (*reconnect)(uk_card *card);
    void (*forget)(uk_card *card);
    void (*free)(uk_card *card);
    int (*transmit)(uk_card *card, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
                    size_t *resp_len);
    void (*atr)(const uk_card *card, const uint8_t **atr, size_t *len);
    const char *(*reader)(const uk_card *card);
} uk__card_ops;

struct uk_card {
    const uk__card_ops *ops;
};

/*
 * Ops shared by the kinds without APDUs (module slots, SKF devices): end and forget that hold
 * nothing per operation, a transmit that answers UK_E_NOT_SUPPORTED (so APDU drivers say "not
 * mine" without I/O), no ATR.
 */
void uk__card_nop(uk_card *card);
int uk__card_no_transmit(uk_card *card, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
                         size_t *resp_len);
void uk__card_no_atr(const uk_card *card, const uint8_t **atr, size_t *len);

/* Ends what is open, releases what the kind holds, frees. NULL-safe. */
void uk__card_free(uk_card *card);

/* Forgets what is cached about the card (a new card is in the reader). */
void uk__card_forget(uk_card *card);

/*
 * Opens the card for one operation (PC/SC: connect shared + begin a
 * transaction; module slot: the token is still there). Errors as in
 * uk_pcsc.h; UK_E_CARD_BUSY means "try again later" for every kind.
 */
int uk__card_begin(uk_card *card) __attribute__((warn_unused_result));

/* Ends the operation begun by uk__card_begin. */
void uk__card_end(uk_card *card);

/* After UK_E_CARD_RESET inside an operation: reconnect and begin again. */
int uk__card_reconnect(uk_card *card) __attribute__((warn_unused_result));

#endif
