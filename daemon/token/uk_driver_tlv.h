/*
 * uk_driver_tlv.h - the check every driver's write_record makes (uk_driver.h): whether a blob is
 * a sequence of BER-TLVs with tags of 1 to 3 bytes and definite lengths of 1 to 4 bytes. Header
 * only, for the drivers that store the record as an opaque object (PKCS#11, SKF).
 */
#ifndef UK_DRIVER_TLV_H
#define UK_DRIVER_TLV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool uk__driver_tlv_sequence(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t t = 1;
        if ((p[i] & 0x1fu) == 0x1fu) {
            while (i + t < n && t < 3 && (p[i + t] & 0x80u))
                t++;
            t++;
        }
        if (i + t >= n)
            return false;
        size_t l = p[i + t], ll = 1, vl = l;
        if (l & 0x80u) {
            ll = 1 + (l & 0x7fu);
            if (ll < 2 || ll > 4 || i + t + ll > n)
                return false;
            vl = 0;
            for (size_t k = 1; k < ll; k++)
                vl = vl << 8 | p[i + t + k];
        }
        if (vl > n - i - t - ll)
            return false;
        i += t + ll + vl;
    }
    return true;
}

#endif
