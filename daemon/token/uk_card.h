/*
 * uk_card.h - one card connection as a driver sees it.
 *
 * The PC/SC adapter (uk_pcsc.c, the only file that includes winscard.h)
 * implements it for real readers, p11/uk_p11_slots.c for PKCS#11 module
 * slots (which take no APDUs: uk_card_transmit answers UK_E_NOT_SUPPORTED);
 * uk_card_int.h has the kinds. Unit tests implement it over the virtual
 * card's engine or a scripted exchange (a link seam: same functions, another
 * object file). A driver never opens, locks or reconnects: the token layer
 * begins a transaction before it calls the driver and ends it afterwards,
 * and reconnects after a reset.
 *
 * Thread: the reader's worker thread only.
 * Errors (uk_err.h): UK_E_CARD_REMOVED, UK_E_CARD_RESET (the card was reset
 * by someone else: security state is gone, the token layer reconnects and
 * the operation may be retried), UK_E_NO_SERVICE (pcscd went away),
 * UK_E_CARD_ERROR (any other transmit failure), UK_E_LIMIT_EXCEEDED (the
 * response does not fit).
 */
#ifndef UK_CARD_H
#define UK_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct uk_card uk_card;

/* Largest R-APDU a card may return to us in one exchange (extended length). */
#define UK_CARD_MAX_RESPONSE (65536u + 2u)

/*
 * Sends one C-APDU exactly as given and writes the R-APDU (data followed by
 * SW1 SW2) into resp (capacity cap). *resp_len >= 2 on success.
 */
int uk_card_transmit(uk_card *card, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
                     size_t *resp_len) __attribute__((warn_unused_result));

/* The card's ATR (borrowed, valid while the card is connected). */
void uk_card_atr(const uk_card *card, const uint8_t **atr, size_t *len);

/* The reader's name (borrowed). */
const char *uk_card_reader(const uk_card *card);

#endif
