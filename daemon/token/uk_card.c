/*
 * uk_card.c - dispatch of uk_card.h and uk_card_int.h to the card's kind.
 */
#include <stddef.h>

#include "uk_err.h"

#include "uk_card_int.h"

int uk_card_transmit(uk_card *card, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
                     size_t *resp_len)
{
    return card->ops->transmit(card, apdu, len, resp, cap, resp_len);
}

void uk_card_atr(const uk_card *card, const uint8_t **atr, size_t *len)
{
    card->ops->atr(card, atr, len);
}

const char *uk_card_reader(const uk_card *card)
{
    return card->ops->reader(card);
}

void uk__card_free(uk_card *card)
{
    if (card != NULL)
        card->ops->free(card);
}

void uk__card_forget(uk_card *card)
{
    card->ops->forget(card);
}

int uk__card_begin(uk_card *card)
{
    return card->ops->begin(card);
}

void uk__card_end(uk_card *card)
{
    card->ops->end(card);
}

int uk__card_reconnect(uk_card *card)
{
    return card->ops->reconnect(card);
}

void uk__card_nop(uk_card *card)
{
    (void)card;
}

int uk__card_no_transmit(uk_card *card, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
                         size_t *resp_len)
{
    (void)card;
    (void)apdu;
    (void)len;
    (void)resp;
    (void)cap;
    *resp_len = 0;
    return UK_E_NOT_SUPPORTED;
}

void uk__card_no_atr(const uk_card *card, const uint8_t **atr, size_t *len)
{
    (void)card;
    *atr = NULL;
    *len = 0;
}
