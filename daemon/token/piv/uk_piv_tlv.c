/* BER-TLV as PIV uses it: tags of 1 to 3 bytes, definite lengths. */
#include <string.h>

#include "uk_piv_int.h"

int uk__piv_tlv_next(const uint8_t **p, const uint8_t *end, uint32_t *tag, const uint8_t **val,
                     size_t *len)
{
    const uint8_t *q = *p;
    if (q >= end)
        return 0;
    uint32_t t = *q++;
    if ((t & 0x1F) == 0x1F) {
        /* Subsequent tag bytes while bit 8 is set; at most 3 bytes in all. */
        for (int i = 0;; i++) {
            if (q >= end || i == 2)
                return -1;
            t = (t << 8) | *q;
            if (!(*q++ & 0x80))
                break;
        }
    }
    if (q >= end)
        return -1;
    size_t l = *q++;
    if (l & 0x80) {
        size_t nb = l & 0x7F;
        if (nb == 0 || nb > 3 || (size_t)(end - q) < nb)
            return -1;
        l = 0;
        for (size_t i = 0; i < nb; i++)
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

int uk__piv_tlv_find(const uint8_t *p, size_t n, uint32_t tag, const uint8_t **val, size_t *len)
{
    const uint8_t *end = p + n, *v;
    uint32_t t;
    size_t l;
    int rc;
    while ((rc = uk__piv_tlv_next(&p, end, &t, &v, &l)) == 1) {
        if (t == tag) {
            *val = v;
            *len = l;
            return 1;
        }
    }
    return rc;
}

int uk__piv_tlv_only(const uint8_t *p, size_t n, uint32_t tag, const uint8_t **val, size_t *len)
{
    const uint8_t *q = p;
    uint32_t t;
    if (uk__piv_tlv_next(&q, p + n, &t, val, len) != 1 || t != tag || q != p + n)
        return -1;
    return 1;
}

void uk__piv_buf_init(uk__piv_buf *b, uint8_t *p, size_t cap)
{
    b->p = p;
    b->len = 0;
    b->cap = cap;
    b->overflow = false;
}

void uk__piv_buf_put(uk__piv_buf *b, const void *v, size_t n)
{
    if (b->overflow || n > b->cap - b->len) {
        b->overflow = true;
        return;
    }
    if (n > 0)
        memcpy(b->p + b->len, v, n);
    b->len += n;
}

void uk__piv_buf_tl(uk__piv_buf *b, uint32_t tag, size_t len)
{
    uint8_t h[8];
    size_t n = 0;
    if (tag > 0xFFFF)
        h[n++] = (uint8_t)(tag >> 16);
    if (tag > 0xFF)
        h[n++] = (uint8_t)(tag >> 8);
    h[n++] = (uint8_t)tag;
    if (len < 0x80) {
        h[n++] = (uint8_t)len;
    } else if (len <= 0xFF) {
        h[n++] = 0x81;
        h[n++] = (uint8_t)len;
    } else if (len <= 0xFFFF) {
        h[n++] = 0x82;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else if (len <= 0xFFFFFF) {
        h[n++] = 0x83;
        h[n++] = (uint8_t)(len >> 16);
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        b->overflow = true;
        return;
    }
    uk__piv_buf_put(b, h, n);
}

void uk__piv_buf_tlv(uk__piv_buf *b, uint32_t tag, const void *v, size_t n)
{
    uk__piv_buf_tl(b, tag, n);
    uk__piv_buf_put(b, v, n);
}
