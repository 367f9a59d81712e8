/* BER-TLV encoding and parsing of the virtual card. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vpiv_int.h"

static void test_tlv_length_forms_round_trip(void **state)
{
    (void)state;
    static uint8_t big[70000];
    static uint8_t value[66000];
    const size_t lens[] = {0, 1, 127, 128, 255, 256, 65535, 65536};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        vpiv_buf b;
        vpiv_buf_init(&b, big, sizeof(big));
        memset(value, (int)i, lens[i]);
        vpiv_tlv_put(&b, 0x53, value, lens[i]);
        assert_false(b.overflow);
        size_t hdr = lens[i] < 128 ? 2 : lens[i] < 256 ? 3 : lens[i] < 65536 ? 4 : 5;
        assert_int_equal(b.len, hdr + lens[i]);
        const uint8_t *p = big, *v;
        uint32_t tag;
        size_t l;
        assert_int_equal(vpiv_tlv_next(&p, big + b.len, &tag, &v, &l), 1);
        assert_int_equal(tag, 0x53);
        assert_int_equal(l, lens[i]);
        assert_ptr_equal(p, big + b.len);
        assert_int_equal(vpiv_tlv_next(&p, big + b.len, &tag, &v, &l), 0);
    }
}

static void test_tlv_multibyte_tags(void **state)
{
    (void)state;
    uint8_t buf[32];
    vpiv_buf b;
    vpiv_buf_init(&b, buf, sizeof(buf));
    vpiv_tlv_put(&b, 0x5FC105, "ab", 2);
    vpiv_tlv_put(&b, 0x7F49, "c", 1);
    const uint8_t expect[] = {0x5F, 0xC1, 0x05, 0x02, 'a', 'b', 0x7F, 0x49, 0x01, 'c'};
    assert_int_equal(b.len, sizeof(expect));
    assert_memory_equal(buf, expect, sizeof(expect));
    const uint8_t *v;
    size_t l;
    assert_int_equal(vpiv_tlv_find(buf, b.len, 0x7F49, &v, &l), 1);
    assert_int_equal(l, 1);
    assert_int_equal(v[0], 'c');
    assert_int_equal(vpiv_tlv_find(buf, b.len, 0x53, &v, &l), 0);
}

static void test_tlv_rejects_malformed(void **state)
{
    (void)state;
    const uint8_t *v;
    size_t l;
    uint32_t tag;
    /* length past the end */
    const uint8_t past[] = {0x53, 0x05, 0x00};
    /* four-byte tag */
    const uint8_t longtag[] = {0x5F, 0xC1, 0x81, 0x01, 0x00};
    /* indefinite and over-long length forms */
    const uint8_t indef[] = {0x53, 0x80};
    const uint8_t len4[] = {0x53, 0x84, 0, 0, 0, 1, 0};
    /* truncated tag and truncated length */
    const uint8_t trunc_tag[] = {0x5F};
    const uint8_t trunc_len[] = {0x53, 0x82, 0x01};
    const struct {
        const uint8_t *p;
        size_t n;
    } cases[] = {{past, sizeof(past)},           {longtag, sizeof(longtag)},
                 {indef, sizeof(indef)},         {len4, sizeof(len4)},
                 {trunc_tag, sizeof(trunc_tag)}, {trunc_len, sizeof(trunc_len)}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const uint8_t *p = cases[i].p;
        assert_int_equal(vpiv_tlv_next(&p, cases[i].p + cases[i].n, &tag, &v, &l), -1);
        assert_int_equal(vpiv_tlv_find(cases[i].p, cases[i].n, 0x01, &v, &l), -1);
    }
}

static void test_buf_overflow_sticks(void **state)
{
    (void)state;
    uint8_t buf[4];
    vpiv_buf b;
    vpiv_buf_init(&b, buf, sizeof(buf));
    vpiv_tlv_put(&b, 0x53, "abcdef", 6);
    assert_true(b.overflow);
    vpiv_buf_byte(&b, 1);
    assert_true(b.overflow);
    assert_true(b.len <= sizeof(buf));
}

static void test_slot_objects(void **state)
{
    (void)state;
    assert_int_equal(vpiv_slot_object(0x9A), 0x5FC105);
    assert_int_equal(vpiv_slot_object(0x9C), 0x5FC10A);
    assert_int_equal(vpiv_slot_object(0x9D), 0x5FC10B);
    assert_int_equal(vpiv_slot_object(0x9E), 0x5FC101);
    assert_int_equal(vpiv_slot_object(0x82), 0x5FC10D);
    assert_int_equal(vpiv_slot_object(0x95), 0x5FC120);
    assert_int_equal(vpiv_slot_object(0x9B), 0);
    assert_false(vpiv_slot_is_asym(0x9B));
    assert_false(vpiv_slot_is_asym(0x96));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tlv_length_forms_round_trip),
        cmocka_unit_test(test_tlv_multibyte_tags),
        cmocka_unit_test(test_tlv_rejects_malformed),
        cmocka_unit_test(test_buf_overflow_sticks),
        cmocka_unit_test(test_slot_objects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
