/* BER-TLV as PIV uses it: tags of one to three bytes, definite lengths. */
#include "vpiv_int.h"

#include <string.h>

void vpiv_buf_init(vpiv_buf *b, uint8_t *p, size_t cap)
{
    b->p = p;
    b->len = 0;
    b->cap = cap;
    b->overflow = false;
}

void vpiv_buf_put(vpiv_buf *b, const void *v, size_t n)
{
    if (b->overflow || n > b->cap - b->len) {
        b->overflow = true;
        return;
    }
    if (n > 0)
        memcpy(b->p + b->len, v, n);
    b->len += n;
}

void vpiv_buf_byte(vpiv_buf *b, uint8_t v)
{
    vpiv_buf_put(b, &v, 1);
}

void vpiv_tlv_put_tag(vpiv_buf *b, uint32_t tag)
{
    if (tag > 0xFFFF)
        vpiv_buf_byte(b, (uint8_t)(tag >> 16));
    if (tag > 0xFF)
        vpiv_buf_byte(b, (uint8_t)(tag >> 8));
    vpiv_buf_byte(b, (uint8_t)tag);
}

void vpiv_tlv_put_len(vpiv_buf *b, size_t len)
{
    if (len < 0x80) {
        vpiv_buf_byte(b, (uint8_t)len);
    } else if (len <= 0xFF) {
        vpiv_buf_byte(b, 0x81);
        vpiv_buf_byte(b, (uint8_t)len);
    } else if (len <= 0xFFFF) {
        vpiv_buf_byte(b, 0x82);
        vpiv_buf_byte(b, (uint8_t)(len >> 8));
        vpiv_buf_byte(b, (uint8_t)len);
    } else {
        vpiv_buf_byte(b, 0x83);
        vpiv_buf_byte(b, (uint8_t)(len >> 16));
        vpiv_buf_byte(b, (uint8_t)(len >> 8));
        vpiv_buf_byte(b, (uint8_t)len);
    }
}

void vpiv_tlv_put(vpiv_buf *b, uint32_t tag, const void *v, size_t n)
{
    vpiv_tlv_put_tag(b, tag);
    vpiv_tlv_put_len(b, n);
    vpiv_buf_put(b, v, n);
}

int vpiv_tlv_next(const uint8_t **p, const uint8_t *end, uint32_t *tag, const uint8_t **val,
                  size_t *len)
{
    const uint8_t *q = *p;
    if (q >= end)
        return 0;
    uint32_t t = *q++;
    if ((t & 0x1F) == 0x1F) {
        /* Subsequent tag bytes continue while bit 8 is set; PIV never goes
         * past three bytes in all. */
        for (int i = 0;; i++) {
            if (q >= end || i == 2)
                return -1;
            uint8_t c = *q++;
            t = (t << 8) | c;
            if (!(c & 0x80))
                break;
        }
    }
    if (q >= end)
        return -1;
    size_t l = *q++;
    if (l & 0x80) {
        size_t nbytes = l & 0x7F;
        if (nbytes == 0 || nbytes > 3 || (size_t)(end - q) < nbytes)
            return -1;
        l = 0;
        for (size_t i = 0; i < nbytes; i++)
            l = (l << 8) | *q++;
    }
    if ((size_t)(end - q) < l)
        return -1;
    *tag = t;
    *val = q;
    *len = l;
    *p = q + l;
    return 1;
}

int vpiv_tlv_find(const uint8_t *p, size_t n, uint32_t tag, const uint8_t **val, size_t *len)
{
    const uint8_t *end = p + n;
    uint32_t t;
    const uint8_t *v;
    size_t l;
    int rc;
    while ((rc = vpiv_tlv_next(&p, end, &t, &v, &l)) == 1) {
        if (t == tag) {
            *val = v;
            *len = l;
            return 1;
        }
    }
    return rc;
}

bool vpiv_slot_is_asym(uint8_t slot)
{
    return slot == VPIV_KEY_AUTH || slot == VPIV_KEY_SIGN || slot == VPIV_KEY_KEYMGMT ||
           slot == VPIV_KEY_CARDAUTH ||
           (slot >= VPIV_KEY_RETIRED_FIRST && slot <= VPIV_KEY_RETIRED_LAST);
}

uint32_t vpiv_slot_object(uint8_t slot)
{
    switch (slot) {
    case VPIV_KEY_AUTH:
        return 0x5FC105;
    case VPIV_KEY_SIGN:
        return 0x5FC10A;
    case VPIV_KEY_KEYMGMT:
        return 0x5FC10B;
    case VPIV_KEY_CARDAUTH:
        return 0x5FC101;
    default:
        if (slot >= VPIV_KEY_RETIRED_FIRST && slot <= VPIV_KEY_RETIRED_LAST)
            return 0x5FC10D + (uint32_t)(slot - VPIV_KEY_RETIRED_FIRST);
        return 0;
    }
}
