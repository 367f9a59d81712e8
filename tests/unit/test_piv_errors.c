/* PIV driver error paths: status words, odd GET RESPONSE chunks, malformed
 * and oversized answers, gzip bombs, transmit failures, cards that do not
 * prove the management key. A hook answers in front of the virtual card. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "test_piv_util.h"
#include "uk_err.h"
#include "vpiv_int.h"

static int group_teardown(void **state)
{
    (void)state;
    piv_test_ca_cleanup();
    return 0;
}

static int teardown(void **state)
{
    piv_fx_free(*state);
    return 0;
}

/* ---- the status word table -------------------------------------------- */

static void test_piv_sw_to_err_maps_every_class(void **state)
{
    (void)state;
    static const struct {
        uint16_t sw;
        int err;
        int retries;
    } rows[] = {
        {0x9000, UK_OK, -1},
        {0x63C2, UK_E_PIN_INCORRECT, 2},
        {0x63CF, UK_E_PIN_INCORRECT, 15},
        {0x63C0, UK_E_PIN_LOCKED, 0},
        {0x6300, UK_E_PIN_INCORRECT, -1},
        {0x6983, UK_E_PIN_LOCKED, 0},
        {0x6982, UK_E_SECURITY_STATUS, -1},
        {0x6A82, UK_E_NOT_FOUND, -1},
        {0x6A88, UK_E_KEY_NOT_FOUND, -1},
        {0x6D00, UK_E_NOT_SUPPORTED, -1},
        {0x6E00, UK_E_NOT_SUPPORTED, -1},
        {0x6A81, UK_E_NOT_SUPPORTED, -1},
        {0x6A80, UK_E_CARD_ERROR, -1},
        {0x6700, UK_E_CARD_ERROR, -1},
        {0x6985, UK_E_CARD_ERROR, -1},
        {0x6F00, UK_E_CARD_ERROR, -1},
        {0x0000, UK_E_CARD_ERROR, -1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int retries = 99;
        assert_int_equal(uk_piv_sw_to_err(rows[i].sw, &retries), rows[i].err);
        assert_int_equal(retries, rows[i].retries);
        assert_int_equal(uk_piv_sw_to_err(rows[i].sw, NULL), rows[i].err);
    }
}

/* ---- a hook that serves one object in odd GET RESPONSE chunks ---------- */

typedef struct {
    uint32_t tag;          /* the object whose GET DATA we answer */
    uint8_t *resp;         /* the whole answer data */
    size_t len, off;       /* what was sent so far */
    const size_t *chunks;  /* chunk sizes, cycled */
    size_t n_chunks, next; /* position in chunks */
    bool endless;          /* announce more forever */
    bool empty_more;       /* GET RESPONSE: no data but 61xx */
    uint16_t sw;           /* when non-zero, answer GET DATA with this SW only */
    bool active;           /* our object's answer is the pending one */
} chunker;

static bool is_get_data(const uint8_t *c, size_t n, uint32_t tag)
{
    /* 00 CB 3F FF Lc 5C 03 t1 t2 t3 (short) or 00 CB 3F FF 00 00 05 5C 03 ... (extended) */
    const uint8_t want[] = {0x5C, 0x03, (uint8_t)(tag >> 16), (uint8_t)(tag >> 8), (uint8_t)tag};
    if (n < 10 || c[1] != 0xCB)
        return false;
    return memcmp(c + 5, want, 5) == 0 || (n >= 12 && memcmp(c + 7, want, 5) == 0);
}

static size_t chunk_out(chunker *k, uint8_t *r)
{
    size_t left = k->len - k->off;
    size_t n = k->chunks[k->next++ % k->n_chunks];
    if (n > left)
        n = left;
    memcpy(r, k->resp + k->off, n);
    k->off += n;
    left -= n;
    if (k->endless)
        return piv_seam_answer(r, r, n, 0x61FF);
    if (left == 0)
        return piv_seam_answer(r, r, n, 0x9000);
    /* Announce a little less or more than is left: the count is a hint. */
    return piv_seam_answer(r, r, n, (uint16_t)(0x6100 | (left > 0xF0 ? 0xF0 : left)));
}

static size_t chunk_hook(void *ctx, const uint8_t *c, size_t n, uint8_t *r, size_t cap)
{
    chunker *k = ctx;
    (void)cap;
    if (is_get_data(c, n, k->tag)) {
        if (k->sw != 0)
            return piv_seam_answer(r, NULL, 0, k->sw);
        k->off = 0;
        k->next = 0;
        k->active = true;
        return chunk_out(k, r);
    }
    if (c[1] != 0xC0)
        k->active = false;
    if (c[1] == 0xC0 && k->active && (k->off < k->len || k->endless)) {
        if (k->empty_more)
            return piv_seam_answer(r, NULL, 0, 0x6110);
        if (k->endless && k->off >= k->len)
            k->off = 0; /* keep feeding the same bytes */
        return chunk_out(k, r);
    }
    return 0;
}

/* The engine's own object for slot, as the GET DATA answer (53 wrapper). */
static uint8_t *object_answer(vpiv_card *vc, uint8_t slot, size_t *len)
{
    struct vpiv_object *o = vpiv_object_get(vc, vpiv_slot_object(slot));
    assert_non_null(o);
    uint8_t *out = malloc(o->len + 8);
    vpiv_buf b;
    vpiv_buf_init(&b, out, o->len + 8);
    vpiv_tlv_put(&b, 0x53, o->data, o->len);
    *len = b.len;
    return out;
}

static piv_fx *demo(bool ext)
{
    piv_fx *f = piv_fx_new(VPIV_PROFILE_YUBICO, ext);
    assert_int_equal(
        vpiv_card_provision_slot(f->vc, piv_test_ca(), 0x9A, VPIV_ALG_RSA2048, "auth", -1, 365), 0);
    assert_int_equal(
        vpiv_card_provision_slot(f->vc, piv_test_ca(), 0x9C, VPIV_ALG_ECCP256, "sign", -1, 365), 0);
    return f;
}

static void expect_9a_9c(piv_fx *f, uk_token_cert *certs, size_t n)
{
    uint8_t want[4096];
    static const struct {
        const char *id;
        uint8_t slot;
    } s[] = {{"9a", 0x9A}, {"9c", 0x9C}};
    for (size_t i = 0; i < 2; i++) {
        const uk_token_cert *c = piv_find(certs, n, s[i].id);
        assert_non_null(c);
        assert_int_equal(c->error, UK_OK);
        size_t wl = piv_card_cert(f->vc, s[i].slot, want, sizeof(want));
        assert_int_equal(c->der_len, wl);
        assert_memory_equal(c->der, want, wl);
    }
}

static void test_piv_get_response_with_odd_chunk_sizes(void **state)
{
    piv_fx *f = *state = demo(false);
    static const size_t sizes[] = {1, 7, 200, 13, 255, 3, 97};
    chunker k = {.tag = 0x5FC105, .chunks = sizes, .n_chunks = 7};
    uk_token_cert *certs;
    size_t n;
    k.resp = object_answer(f->vc, 0x9A, &k.len);
    piv_seam_set_hook(f->card, chunk_hook, &k);
    piv_fx_open(f);
    piv_seam_reset_counts(f->card);
    piv_list(f, &certs, &n);
    assert_int_equal(n, 2);
    expect_9a_9c(f, certs, n);
    assert_true(piv_seam_ins_count(f->card, 0xC0) >= 10);
    piv_certs_free(certs, n);
    free(k.resp);
}

static void test_piv_answer_past_the_limit_is_cert_invalid(void **state)
{
    piv_fx *f = *state = demo(false);
    static const size_t sizes[] = {255};
    chunker k = {.tag = 0x5FC10B, .chunks = sizes, .n_chunks = 1, .endless = true};
    uk_token_cert *certs;
    size_t n;
    k.resp = object_answer(f->vc, 0x9A, &k.len);
    piv_seam_set_hook(f->card, chunk_hook, &k);
    piv_fx_open(f);
    piv_seam_reset_counts(f->card);
    piv_list(f, &certs, &n);
    /* 9D announces more forever: bounded by the object limit (16 KiB). */
    assert_int_equal(n, 3);
    expect_9a_9c(f, certs, n);
    const uk_token_cert *c = piv_find(certs, n, "9d");
    assert_non_null(c);
    assert_int_equal(c->error, UK_E_CERT_INVALID);
    /* 9A and 9C take 3 GET RESPONSEs; 9D is cut once 16 KiB arrived (the
     * hook's chunks are at most 255 bytes, some shorter where it wraps). */
    printf("GET RESPONSE before giving up: %u\n", piv_seam_ins_count(f->card, 0xC0));
    assert_true(piv_seam_ins_count(f->card, 0xC0) <= 3 + 2 * ((16384 + 16) / 255 + 1));
    piv_certs_free(certs, n);
    free(k.resp);
}

static void test_piv_oversized_object_on_an_extended_card_is_cert_invalid(void **state)
{
    piv_fx *f = *state = demo(true);
    uk_token_cert *certs;
    size_t n;
    /* 20 KiB in one extended answer: over the 16 KiB object limit. */
    uint8_t *big = calloc(1, 20000);
    assert_non_null(big);
    piv_put_object(f->vc, 0x9E, big, 20000, 0);
    piv_fx_open(f);
    piv_list(f, &certs, &n);
    assert_int_equal(n, 3);
    expect_9a_9c(f, certs, n);
    assert_int_equal(piv_find(certs, n, "9e")->error, UK_E_CERT_INVALID);
    piv_certs_free(certs, n);
    free(big);
}

static void test_piv_get_response_without_data_is_a_card_error(void **state)
{
    piv_fx *f = *state = demo(false);
    static const size_t sizes[] = {100};
    chunker k = {.tag = 0x5FC105, .chunks = sizes, .n_chunks = 1, .empty_more = true};
    uk_token_cert *certs = NULL;
    size_t n = 7;
    k.resp = object_answer(f->vc, 0x9A, &k.len);
    piv_seam_set_hook(f->card, chunk_hook, &k);
    piv_fx_open(f);
    assert_int_equal(uk_driver_piv.list_certs(f->st, f->card, &certs, &n), UK_E_CARD_ERROR);
    assert_null(certs);
    assert_int_equal(n, 0);
    free(k.resp);
}

static void test_piv_status_words_on_certificate_objects(void **state)
{
    piv_fx *f = *state = demo(true);
    chunker k = {.tag = 0x5FC10B, .sw = 0x6982};
    uk_token_cert *certs;
    size_t n;
    piv_seam_set_hook(f->card, chunk_hook, &k);
    piv_fx_open(f);
    /* A refused object is an entry with the reason; the others still show. */
    piv_list(f, &certs, &n);
    assert_int_equal(n, 3);
    expect_9a_9c(f, certs, n);
    assert_int_equal(piv_find(certs, n, "9d")->error, UK_E_SECURITY_STATUS);
    piv_certs_free(certs, n);
    /* "Not here" answers are no entry at all. */
    static const uint16_t absent[] = {0x6A82, 0x6A88, 0x6A80, 0x6A86};
    for (size_t i = 0; i < 4; i++) {
        k.sw = absent[i];
        piv_list(f, &certs, &n);
        assert_int_equal(n, 2);
        piv_certs_free(certs, n);
    }
}

/* ---- malformed objects ------------------------------------------------- */

static void test_piv_truncated_and_malformed_objects_are_cert_invalid(void **state)
{
    piv_fx *f = *state = demo(true);
    uk_token_cert *certs;
    size_t n;
    uint8_t cert[4096];
    size_t cl = piv_card_cert(f->vc, 0x9A, cert, sizeof(cert));
    /* 9D: the 9A certificate cut short. */
    piv_put_object(f->vc, 0x9D, cert, cl - 10, 0);
    /* 9E: a 70 whose length runs past the object. */
    static const uint8_t past[] = {0x70, 0x83, 0x01, 0x00, 0x00, 0x30};
    piv_put_raw_object(f->vc, 0x9E, past, sizeof(past));
    /* 82: two certificates in one object. */
    uint8_t two[8192];
    vpiv_buf b;
    vpiv_buf_init(&b, two, sizeof(two));
    vpiv_tlv_put(&b, 0x70, cert, cl);
    vpiv_tlv_put(&b, 0x70, cert, cl);
    piv_put_raw_object(f->vc, 0x82, two, b.len);
    /* 83: a CertInfo of two bytes; 84: a certificate with trailing bytes. */
    static const uint8_t info2[] = {0x70, 0x01, 0x30, 0x71, 0x02, 0x00, 0x00};
    piv_put_raw_object(f->vc, 0x83, info2, sizeof(info2));
    cert[cl] = 0x00;
    piv_put_object(f->vc, 0x84, cert, cl + 1, 0);
    /* 85: a tag of four bytes. */
    static const uint8_t longtag[] = {0x7F, 0xFF, 0xFF, 0xFF, 0x01, 0x00};
    piv_put_raw_object(f->vc, 0x85, longtag, sizeof(longtag));
    piv_fx_open(f);
    piv_list(f, &certs, &n);
    assert_int_equal(n, 8);
    expect_9a_9c(f, certs, n);
    static const char *bad[] = {"9d", "9e", "82", "83", "84", "85"};
    for (size_t i = 0; i < 6; i++) {
        const uk_token_cert *c = piv_find(certs, n, bad[i]);
        assert_non_null(c);
        assert_int_equal(c->error, UK_E_CERT_INVALID);
        assert_null(c->der);
        assert_int_equal(c->der_len, 0);
    }
    piv_certs_free(certs, n);
}

/* An answer that is not one 53 TLV (the engine always wraps; a hook does not). */
static size_t bare_hook(void *ctx, const uint8_t *c, size_t n, uint8_t *r, size_t cap)
{
    (void)ctx;
    (void)cap;
    static const uint8_t bare[] = {0x70, 0x01, 0x30, 0x71, 0x01, 0x00};
    static const uint8_t tail[] = {0x53, 0x00, 0x00};
    if (is_get_data(c, n, 0x5FC10B))
        return piv_seam_answer(r, bare, sizeof(bare), 0x9000);
    if (is_get_data(c, n, 0x5FC101))
        return piv_seam_answer(r, tail, sizeof(tail), 0x9000);
    return 0;
}

static void test_piv_answer_that_is_not_one_53_object_is_cert_invalid(void **state)
{
    piv_fx *f = *state = demo(true);
    uk_token_cert *certs;
    size_t n;
    piv_seam_set_hook(f->card, bare_hook, NULL);
    piv_fx_open(f);
    piv_list(f, &certs, &n);
    assert_int_equal(n, 4);
    assert_int_equal(piv_find(certs, n, "9d")->error, UK_E_CERT_INVALID);
    assert_int_equal(piv_find(certs, n, "9e")->error, UK_E_CERT_INVALID);
    piv_certs_free(certs, n);
}

static void test_piv_gzip_bombs_and_bad_gzip_are_cert_invalid(void **state)
{
    piv_fx *f = *state = demo(true);
    uk_token_cert *certs;
    size_t n;
    uint8_t *zeros = calloc(1, 1 << 20), z[8192];
    assert_non_null(zeros);
    /* 9D: 1 MiB of zeros in about 1 KiB. */
    size_t zl = piv_gzip(zeros, 1 << 20, z, sizeof(z));
    assert_true(zl < 2048);
    piv_put_object(f->vc, 0x9D, z, zl, 0x01);
    /* 9E: a certificate just over the 16 KiB output bound. */
    zl = piv_gzip(zeros, 16385, z, sizeof(z));
    piv_put_object(f->vc, 0x9E, z, zl, 0x01);
    /* 82: a good gzip member cut short; 83: with junk after it; 84: bad CRC. */
    uint8_t cert[4096];
    size_t cl = piv_card_cert(f->vc, 0x9A, cert, sizeof(cert));
    zl = piv_gzip(cert, cl, z, sizeof(z));
    piv_put_object(f->vc, 0x82, z, zl - 6, 0x01);
    z[zl] = 0x42;
    piv_put_object(f->vc, 0x83, z, zl + 1, 0x01);
    z[zl - 8] ^= 0xFF;
    piv_put_object(f->vc, 0x84, z, zl, 0x01);
    z[zl - 8] ^= 0xFF;
    /* 85: the same member is fine (control). */
    piv_put_object(f->vc, 0x85, z, zl, 0x01);
    piv_fx_open(f);
    piv_list(f, &certs, &n);
    assert_int_equal(n, 8);
    expect_9a_9c(f, certs, n);
    static const char *bad[] = {"9d", "9e", "82", "83", "84"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(piv_find(certs, n, bad[i])->error, UK_E_CERT_INVALID);
    const uk_token_cert *ok = piv_find(certs, n, "85");
    assert_int_equal(ok->error, UK_OK);
    assert_int_equal(ok->der_len, cl);
    assert_memory_equal(ok->der, cert, cl);
    piv_certs_free(certs, n);
    free(zeros);
}

/* ---- transport failures ------------------------------------------------ */

static void test_piv_card_removed_mid_list_fails_cleanly(void **state)
{
    piv_fx *f = *state = demo(false);
    piv_fx_open(f);
    static const int errs[] = {UK_E_CARD_REMOVED, UK_E_CARD_RESET, UK_E_NO_SERVICE};
    for (unsigned k = 1; k <= 6; k++) {
        uk_token_cert *certs = NULL;
        size_t n = 9;
        int err = errs[k % 3];
        piv_seam_fail_at(f->card, k, err);
        assert_int_equal(uk_driver_piv.list_certs(f->st, f->card, &certs, &n), err);
        assert_null(certs);
        assert_int_equal(n, 0);
    }
    piv_seam_fail_at(f->card, 0, 0);
    uk_token_cert *certs;
    size_t n;
    piv_list(f, &certs, &n);
    assert_int_equal(n, 2);
    piv_certs_free(certs, n);
}

static void test_piv_card_removed_during_sign_and_open(void **state)
{
    piv_fx *f = *state = demo(true);
    uint8_t digest[32] = {1}, sig[300];
    size_t sl = 0;
    int retries;
    void *st = NULL;
    uk_token_identity id;
    for (unsigned k = 1; k <= 3; k++) {
        piv_seam_fail_at(f->card, k, UK_E_CARD_REMOVED);
        assert_int_equal(uk_driver_piv.open(f->card, &f->opt, &st, &id), UK_E_CARD_REMOVED);
        assert_null(st);
    }
    piv_seam_fail_at(f->card, 0, 0);
    piv_fx_open(f);
    assert_int_equal(piv_verify_pin_str(f, "123456", &retries), UK_OK);
    uk_sign_req req = {.key_id = "9a",
                       .scheme = UK_SIG_RSA_PKCS1,
                       .hash = UK_HASH_SHA256,
                       .digest = digest,
                       .digest_len = 32};
    piv_seam_fail_at(f->card, 1, UK_E_CARD_REMOVED); /* GET METADATA */
    assert_int_equal(uk_driver_piv.sign(f->st, f->card, &req, sig, sizeof(sig), &sl),
                     UK_E_CARD_REMOVED);
    piv_seam_fail_at(f->card, 2, UK_E_CARD_REMOVED); /* GENERAL AUTHENTICATE */
    assert_int_equal(uk_driver_piv.sign(f->st, f->card, &req, sig, sizeof(sig), &sl),
                     UK_E_CARD_REMOVED);
}

/* ---- odd answers to single commands ------------------------------------ */

typedef struct {
    uint8_t ins;
    uint8_t p2;
    const uint8_t *data;
    size_t len;
    uint16_t sw;
    bool wrong_le_once; /* answer 6Cxx to the first try with another Le */
    bool fired;
} fixed;

static size_t fixed_hook(void *ctx, const uint8_t *c, size_t n, uint8_t *r, size_t cap)
{
    fixed *x = ctx;
    (void)cap;
    if (c[1] != x->ins || c[3] != x->p2)
        return 0;
    if (x->wrong_le_once) {
        if (!x->fired) {
            x->fired = true;
            return piv_seam_answer(r, NULL, 0, (uint16_t)(0x6C00 | x->len));
        }
        if (c[n - 1] != x->len)
            return piv_seam_answer(r, NULL, 0, 0x6700);
    }
    return piv_seam_answer(r, x->data, x->len, x->sw);
}

static void test_piv_wrong_le_is_sent_again(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, false);
    static const uint8_t serial[] = {0x00, 0x00, 0x30, 0x39};
    fixed x = {
        .ins = 0xF8, .p2 = 0x00, .data = serial, .len = 4, .sw = 0x9000, .wrong_le_once = true};
    piv_seam_set_hook(f->card, fixed_hook, &x);
    piv_fx_open(f);
    assert_true(x.fired);
    assert_string_equal(f->id.serial, "12345");
}

static void sign_with_answer(bool rsa, const uint8_t *ans, size_t len, int want)
{
    piv_fx *f = demo(true);
    uint8_t digest[32] = {1}, sig[600];
    size_t sl = 0;
    int retries;
    fixed x = {.ins = 0x87, .p2 = rsa ? 0x9A : 0x9C, .data = ans, .len = len, .sw = 0x9000};
    piv_fx_open(f);
    piv_seam_set_hook(f->card, fixed_hook, &x);
    assert_int_equal(piv_verify_pin_str(f, "123456", &retries), UK_OK);
    uk_sign_req req = {.scheme = rsa ? UK_SIG_RSA_PKCS1 : UK_SIG_ECDSA,
                       .hash = UK_HASH_SHA256,
                       .digest = digest,
                       .digest_len = 32};
    snprintf(req.key_id, sizeof(req.key_id), rsa ? "9a" : "9c");
    assert_int_equal(uk_driver_piv.sign(f->st, f->card, &req, sig, sizeof(sig), &sl), want);
    piv_fx_free(f);
}

static void test_piv_malformed_signature_answers_are_card_errors(void **state)
{
    (void)state;
    uint8_t a[300];
    /* Truncated template. */
    static const uint8_t cut[] = {0x7C, 0x10, 0x82, 0x0E, 0x30};
    sign_with_answer(true, cut, sizeof(cut), UK_E_CARD_ERROR);
    sign_with_answer(false, cut, sizeof(cut), UK_E_CARD_ERROR);
    /* No 82 inside, or an empty one. */
    static const uint8_t no82[] = {0x7C, 0x02, 0x81, 0x00};
    sign_with_answer(true, no82, sizeof(no82), UK_E_CARD_ERROR);
    static const uint8_t empty82[] = {0x7C, 0x02, 0x82, 0x00};
    sign_with_answer(false, empty82, sizeof(empty82), UK_E_CARD_ERROR);
    /* RSA: longer than the modulus. */
    memset(a, 0x11, sizeof(a));
    a[0] = 0x7C;
    a[1] = 0x82;
    a[2] = 0x01;
    a[3] = 0x05;
    a[4] = 0x82;
    a[5] = 0x82;
    a[6] = 0x01;
    a[7] = 0x01;
    sign_with_answer(true, a, 8 + 257, UK_E_CARD_ERROR);
    /* ECDSA: not DER. */
    static const uint8_t notder[] = {0x7C, 0x06, 0x82, 0x04, 0x30, 0x02, 0x02, 0x00};
    sign_with_answer(false, notder, sizeof(notder), UK_E_CARD_ERROR);
    /* A short RSA signature is left-padded to the modulus. */
    static const uint8_t shortsig[] = {0x7C, 0x05, 0x82, 0x03, 0x01, 0x02, 0x03};
    sign_with_answer(true, shortsig, sizeof(shortsig), UK_OK);
}

/* Lets the engine answer, then corrupts its proof (the 82 of step 2). */
static size_t lying_card(void *ctx, const uint8_t *c, size_t n, uint8_t *r, size_t cap)
{
    vpiv_card *vc = ctx;
    (void)cap;
    if (c[1] != 0x87 || c[3] != 0x9B)
        return 0;
    size_t len = vpiv_card_apdu(vc, c, n, r);
    if (len == 2 + 2 + 2 + 8 && r[2] == 0x82)
        r[4] ^= 0x01;
    return len;
}

static void test_piv_card_that_cannot_prove_the_management_key_is_auth_failed(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    f->opt.allow_default_mgm_key = true;
    piv_seam_set_hook(f->card, lying_card, f->vc);
    piv_fx_open(f);
    assert_int_equal(
        uk_driver_piv.generate_key(f->st, f->card, "9a", UK_KEY_ECP256, &spki, &spki_len),
        UK_E_AUTH_FAILED);
    assert_null(spki);
    assert_int_equal(piv_seam_ins_count(f->card, 0x47), 0);
}

static void generate_with_answer(uk_key_alg alg, const uint8_t *ans, size_t len, int want)
{
    piv_fx *f = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    fixed x = {.ins = 0x47, .p2 = 0x9A, .data = ans, .len = len, .sw = 0x9000};
    f->opt.allow_default_mgm_key = true;
    piv_seam_set_hook(f->card, fixed_hook, &x);
    piv_fx_open(f);
    assert_int_equal(uk_driver_piv.generate_key(f->st, f->card, "9a", alg, &spki, &spki_len), want);
    assert_true(want == UK_OK ? spki != NULL : spki == NULL);
    free(spki);
    piv_fx_free(f);
}

static void test_piv_bad_generated_public_keys_are_refused(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    uint8_t pt[65], ans[80];
    size_t pl = 0;
    assert_true(EVP_PKEY_get_octet_string_param(k, "pub", pt, sizeof(pt), &pl));
    assert_int_equal(pl, 65);
    EVP_PKEY_free(k);
    ans[0] = 0x7F;
    ans[1] = 0x49;
    ans[2] = 67;
    ans[3] = 0x86;
    ans[4] = 65;
    memcpy(ans + 5, pt, 65);
    generate_with_answer(UK_KEY_ECP256, ans, 70, UK_OK);
    /* Truncated, off the curve, the wrong curve, RSA parts missing. */
    generate_with_answer(UK_KEY_ECP256, ans, 40, UK_E_CARD_ERROR);
    ans[69] ^= 0x01;
    generate_with_answer(UK_KEY_ECP256, ans, 70, UK_E_KEY_REJECTED);
    ans[69] ^= 0x01;
    generate_with_answer(UK_KEY_ECP384, ans, 70, UK_E_KEY_REJECTED);
    static const uint8_t rsa_no_e[] = {0x7F, 0x49, 0x04, 0x81, 0x02, 0x00, 0xC5};
    generate_with_answer(UK_KEY_RSA2048, rsa_no_e, sizeof(rsa_no_e), UK_E_CARD_ERROR);
    /* An RSA key of 1024 bits when 2048 was asked for. */
    EVP_PKEY *r = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    BIGNUM *bn = NULL;
    uint8_t nb[128], big[200];
    assert_true(EVP_PKEY_get_bn_param(r, "n", &bn));
    assert_int_equal(BN_bn2bin(bn, nb), 128);
    vpiv_buf b, inner;
    uint8_t tmp[200];
    vpiv_buf_init(&inner, tmp, sizeof(tmp));
    vpiv_tlv_put(&inner, 0x81, nb, 128);
    vpiv_tlv_put(&inner, 0x82, "\x01\x00\x01", 3);
    vpiv_buf_init(&b, big, sizeof(big));
    vpiv_tlv_put(&b, 0x7F49, tmp, inner.len);
    generate_with_answer(UK_KEY_RSA2048, big, b.len, UK_E_KEY_REJECTED);
    BN_free(bn);
    EVP_PKEY_free(r);
}

/* Refuses the second chunk of a chained PUT DATA. */
static size_t refuse_chain(void *ctx, const uint8_t *c, size_t n, uint8_t *r, size_t cap)
{
    int *seen = ctx;
    (void)n;
    (void)cap;
    if (c[0] == 0x10 && c[1] == 0xDB && ++*seen == 2)
        return piv_seam_answer(r, NULL, 0, 0x6A84);
    return 0;
}

static void test_piv_chained_command_refused_midway(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, false);
    int seen = 0;
    size_t len;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    unsigned char *spki = NULL;
    int sl = i2d_PUBKEY(k, &spki);
    uint8_t *der = piv_make_cert(spki, (size_t)sl, 1200, &len);
    f->opt.allow_default_mgm_key = true;
    piv_seam_set_hook(f->card, refuse_chain, &seen);
    piv_fx_open(f);
    assert_int_equal(uk_driver_piv.put_cert(f->st, f->card, "9a", der, len), UK_E_CARD_ERROR);
    assert_int_equal(seen, 2);
    /* Nothing was written. */
    assert_null(vpiv_object_get(f->vc, 0x5FC105));
    free(der);
    OPENSSL_free(spki);
    EVP_PKEY_free(k);
}

int main(void)
{
#define T(name) cmocka_unit_test_teardown(name, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_piv_sw_to_err_maps_every_class),
        T(test_piv_get_response_with_odd_chunk_sizes),
        T(test_piv_answer_past_the_limit_is_cert_invalid),
        T(test_piv_oversized_object_on_an_extended_card_is_cert_invalid),
        T(test_piv_get_response_without_data_is_a_card_error),
        T(test_piv_status_words_on_certificate_objects),
        T(test_piv_truncated_and_malformed_objects_are_cert_invalid),
        T(test_piv_answer_that_is_not_one_53_object_is_cert_invalid),
        T(test_piv_gzip_bombs_and_bad_gzip_are_cert_invalid),
        T(test_piv_card_removed_mid_list_fails_cleanly),
        T(test_piv_card_removed_during_sign_and_open),
        T(test_piv_wrong_le_is_sent_again),
        cmocka_unit_test(test_piv_malformed_signature_answers_are_card_errors),
        T(test_piv_card_that_cannot_prove_the_management_key_is_auth_failed),
        cmocka_unit_test(test_piv_bad_generated_public_keys_are_refused),
        T(test_piv_chained_command_refused_midway),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
