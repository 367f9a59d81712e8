/*
 * uk_card.c - dispatch of uk_card.h and uk_card_int.h to the card's kind.
 */
#include <stddef.h>

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
