/*
 * fuzz_tlv.c - libFuzzer target for the PIV driver's BER-TLV reader and writer
 * (daemon/token/piv/uk_piv_tlv.c, declared in uk_piv_int.h).
 *
 * The input is walked with uk__piv_tlv_next, descending into constructed values (bit 6 of the
 * first tag byte) up to a fixed depth; every value must lie inside its parent. Each TLV read is
 * written back with uk__piv_buf_tlv and must read back as the same tag and value. The input is
 * also searched with uk__piv_tlv_find / uk__piv_tlv_only for the tags the driver looks for.
 * Corpus: tests/fuzz/corpus/tlv/.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "uk_piv_int.h"

#define MAX_DEPTH 8

static void roundtrip(uint32_t tag, const uint8_t *val, size_t len)
{
    static uint8_t out[70000];
    uk__piv_buf b;
    if (len > sizeof(out) - 7)
        return;
    uk__piv_buf_init(&b, out, sizeof(out));
    uk__piv_buf_tlv(&b, tag, val, len);
    if (b.overflow)
        abort(); /* 3 tag + 4 length bytes + a value from the input always fit */
    const uint8_t *p = out, *v = NULL;
    uint32_t t = 0;
    size_t l = 0;
    if (uk__piv_tlv_next(&p, out + b.len, &t, &v, &l) != 1 || t != tag || l != len ||
        p != out + b.len || (len > 0 && memcmp(v, val, len) != 0))
        abort();
}

static void walk(const uint8_t *p, size_t n, int depth)
{
    const uint8_t *q = p, *end = p + n, *val = NULL;
    uint32_t tag = 0;
    size_t len = 0;
    int rc;
    while ((rc = uk__piv_tlv_next(&q, end, &tag, &val, &len)) == 1) {
        if (val < p || val > end || len > (size_t)(end - val) || q != val + len || tag > 0xFFFFFF)
            abort();
        roundtrip(tag, val, len);
        /* The first tag byte: the highest non-zero byte of tag. */
        uint32_t first = tag > 0xFFFF ? tag >> 16 : tag > 0xFF ? tag >> 8 : tag;
        if ((first & 0x20) && depth < MAX_DEPTH)
            walk(val, len, depth + 1);
    }
    if (rc != 0 && rc != -1)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t tags[] = {0x53, 0x70, 0x71, 0xFE,     0x7C,     0x7F49,
                                    0x81, 0x82, 0x86, 0x5FC102, 0x5FC105, 0x5FFF55,
                                    0x4F, 0x61, 0x79, 0x30,     0x34,     0x1F1F};
    const uint8_t *val = NULL;
    size_t len = 0;

    walk(data, size, 0);
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
        int rc = uk__piv_tlv_find(data, size, tags[i], &val, &len);
        if (rc == 1 && (val < data || len > (size_t)(data + size - val)))
            abort();
        rc = uk__piv_tlv_only(data, size, tags[i], &val, &len);
        if (rc == 1 && (val < data || val + len != data + size))
            abort();
    }
    return 0;
}
