/* A uk_card over the virtual PIV card's engine (see piv_card_seam.h). */
#include "piv_card_seam.h"

#include <stdlib.h>
#include <string.h>

#include "uk_err.h"

struct uk_card {
    vpiv_card *vc;
    piv_seam_hook hook;
    void *hook_ctx;
    uint8_t atr[40];
    size_t atr_len;
    unsigned apdus;
    unsigned ins[256];
    unsigned fail_at;
    int fail_err;
    uint8_t *sent; /* every C-APDU, concatenated */
    size_t sent_len;
    size_t max_capdu;
    uint8_t *rbuf; /* VPIV_MAX_APDU */
};

uk_card *piv_seam_new(vpiv_card *vc)
{
    uk_card *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->rbuf = malloc(VPIV_MAX_APDU);
    if (c->rbuf == NULL) {
        free(c);
        return NULL;
    }
    c->vc = vc;
    if (vc != NULL) {
        c->atr_len = vpiv_card_atr(vc, c->atr, sizeof(c->atr));
    } else {
        static const uint8_t atr[] = {0x3B, 0x80, 0x80, 0x01, 0x01};
        memcpy(c->atr, atr, sizeof(atr));
        c->atr_len = sizeof(atr);
    }
    return c;
}

void piv_seam_free(uk_card *card)
{
    if (card == NULL)
        return;
    free(card->sent);
    free(card->rbuf);
    free(card);
}

void piv_seam_set_hook(uk_card *card, piv_seam_hook hook, void *ctx)
{
    card->hook = hook;
    card->hook_ctx = ctx;
}

void piv_seam_set_atr(uk_card *card, const uint8_t *atr, size_t len)
{
    if (len > sizeof(card->atr))
        len = sizeof(card->atr);
    memcpy(card->atr, atr, len);
    card->atr_len = len;
}

void piv_seam_fail_at(uk_card *card, unsigned k, int err)
{
    card->fail_at = k == 0 ? 0 : card->apdus + k;
    card->fail_err = err;
}

unsigned piv_seam_apdus(const uk_card *card)
{
    return card->apdus;
}

unsigned piv_seam_ins_count(const uk_card *card, uint8_t ins)
{
    return card->ins[ins];
}

void piv_seam_reset_counts(uk_card *card)
{
    card->apdus = 0;
    memset(card->ins, 0, sizeof(card->ins));
    card->fail_at = 0;
}

bool piv_seam_sent(const uk_card *card, const uint8_t *needle, size_t n)
{
    if (n == 0 || card->sent_len < n)
        return false;
    for (size_t i = 0; i + n <= card->sent_len; i++)
        if (memcmp(card->sent + i, needle, n) == 0)
            return true;
    return false;
}

size_t piv_seam_max_capdu(const uk_card *card)
{
    return card->max_capdu;
}

size_t piv_seam_answer(uint8_t *r, const uint8_t *data, size_t len, uint16_t sw)
{
    if (len > 0)
        memcpy(r, data, len);
    r[len] = (uint8_t)(sw >> 8);
    r[len + 1] = (uint8_t)sw;
    return len + 2;
}

int uk_card_transmit(uk_card *card, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
                     size_t *resp_len)
{
    card->apdus++;
    if (len >= 2)
        card->ins[apdu[1]]++;
    if (len > card->max_capdu)
        card->max_capdu = len;
    uint8_t *grown = realloc(card->sent, card->sent_len + len);
    if (grown == NULL)
        return UK_E_NO_MEMORY;
    card->sent = grown;
    memcpy(card->sent + card->sent_len, apdu, len);
    card->sent_len += len;
    if (card->fail_at != 0 && card->apdus == card->fail_at)
        return card->fail_err;

    size_t n = 0;
    if (card->hook != NULL)
        n = card->hook(card->hook_ctx, apdu, len, card->rbuf, VPIV_MAX_APDU);
    if (n == 0) {
        if (card->vc == NULL)
            n = piv_seam_answer(card->rbuf, NULL, 0, 0x6D00);
        else
            n = vpiv_card_apdu(card->vc, apdu, len, card->rbuf);
    }
    if (n > cap)
        return UK_E_LIMIT_EXCEEDED;
    memcpy(resp, card->rbuf, n);
    *resp_len = n;
    return UK_OK;
}

void uk_card_atr(const uk_card *card, const uint8_t **atr, size_t *len)
{
    *atr = card->atr;
    *len = card->atr_len;
}

const char *uk_card_reader(const uk_card *card)
{
    (void)card;
    return "Test Reader 00 00";
}
