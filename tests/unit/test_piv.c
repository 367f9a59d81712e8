/* The PIV driver against the virtual card's engine, in process: identity,
 * certificates, PIN, signatures (checked with OpenSSL), management key,
 * key generation and certificate writing, on vendor and generic cards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "test_piv_util.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_secret.h"
#include "uk_x509.h"
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

/* ---- probe and identity ----------------------------------------------- */

static void test_piv_probe_accepts_a_piv_card(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    assert_int_equal(uk_driver_piv.probe(f->card), UK_OK);
    assert_int_equal(piv_seam_apdus(f->card), 1);
}

static size_t refuse_select(void *ctx, const uint8_t *c, size_t n, uint8_t *r, size_t cap)
{
    (void)ctx;
    (void)n;
    (void)cap;
    return c[1] == 0xA4 ? piv_seam_answer(r, NULL, 0, 0x6A82) : 0;
}

static void test_piv_probe_rejects_a_card_without_piv(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    void *st = NULL;
    uk_token_identity id;
    piv_seam_set_hook(f->card, refuse_select, NULL);
    assert_int_equal(uk_driver_piv.probe(f->card), UK_E_NOT_SUPPORTED);
    assert_int_equal(uk_driver_piv.open(f->card, &f->opt, &st, &id), UK_E_NOT_SUPPORTED);
    assert_null(st);
    /* A card that knows no instruction at all (6D00 to everything). */
    uk_card *dumb = piv_seam_new(NULL);
    assert_int_equal(uk_driver_piv.probe(dumb), UK_E_NOT_SUPPORTED);
    piv_seam_free(dumb);
}

static void test_piv_open_reads_vendor_serial_and_version(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    uk_piv_info info;
    piv_fx_open(f);
    assert_string_equal(f->id.serial, "12345678");
    assert_string_equal(f->id.label, "PIV 12345678");
    assert_string_equal(f->id.model, "PIV (YubiKey-compatible)");
    uk_piv_get_info(f->st, &info);
    assert_true(info.vendor);
    assert_int_equal(info.version[0], 5);
    assert_int_equal(info.version[1], 7);
    assert_int_equal(info.version[2], 1);
    assert_true(info.metadata);
    assert_true(info.move_key);
    assert_true(info.ext_length);
    /* SELECT, GET VERSION, GET SERIAL. */
    assert_int_equal(piv_seam_apdus(f->card), 3);
}

static void guid_of(vpiv_card *vc, char *out)
{
    struct vpiv_object *o = vpiv_object_get(vc, 0x5FC102);
    const uint8_t *g;
    size_t gl;
    assert_non_null(o);
    assert_int_equal(vpiv_tlv_find(o->data, o->len, 0x34, &g, &gl), 1);
    assert_int_equal(gl, 16);
    for (size_t i = 0; i < 8; i++)
        sprintf(out + 2 * i, "%02X", g[i]);
}

static void test_piv_open_generic_card_uses_the_chuid_guid(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_GENERIC, false);
    char guid[17];
    uk_piv_info info;
    piv_fx_open(f);
    guid_of(f->vc, guid);
    assert_string_equal(f->id.serial, guid);
    char label[64];
    snprintf(label, sizeof(label), "PIV %s", guid);
    assert_string_equal(f->id.label, label);
    assert_string_equal(f->id.model, "PIV");
    uk_piv_get_info(f->st, &info);
    assert_false(info.vendor);
    assert_false(info.metadata);
    assert_false(info.ext_length);
    /* SELECT, GET VERSION (6D00), GET DATA CHUID; never GET SERIAL. */
    assert_int_equal(piv_seam_apdus(f->card), 3);
    assert_int_equal(piv_seam_ins_count(f->card, 0xF8), 0);
}

/* FASC-N characters: 4 bits least significant first, then odd parity. */
static void fascn_encode(const uint8_t ch[40], uint8_t out[25])
{
    memset(out, 0, 25);
    for (size_t c = 0; c < 40; c++) {
        unsigned bits[5], ones = 0;
        for (size_t b = 0; b < 4; b++)
            ones += bits[b] = (ch[c] >> b) & 1u;
        bits[4] = (ones % 2 == 0) ? 1u : 0u;
        for (size_t b = 0; b < 5; b++)
            if (bits[b])
                out[(c * 5 + b) / 8] |= (uint8_t)(0x80u >> ((c * 5 + b) % 8));
    }
}

static void test_piv_open_uses_a_real_fascn_as_card_number(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_GENERIC, false);
    /* SS 1234 FS 5678 FS 901234 FS 1 FS 1 FS 0000000000 1 0000 1 ES LRC */
    static const char *s = "B1234D5678D901234D1D1D0000000000100001F0";
    uint8_t ch[40], fascn[25], obj[64];
    for (size_t i = 0; i < 40; i++)
        ch[i] = (uint8_t)(s[i] <= '9' ? s[i] - '0' : s[i] - 'A' + 10);
    fascn_encode(ch, fascn);
    vpiv_buf b;
    vpiv_buf_init(&b, obj, sizeof(obj));
    vpiv_tlv_put(&b, 0x30, fascn, 25);
    vpiv_tlv_put(&b, 0x34, "0123456789abcdef", 16);
    vpiv_tlv_put(&b, 0xFE, NULL, 0);
    assert_int_equal(vpiv_object_set(f->vc, 0x5FC102, obj, b.len), 0);
    piv_fx_open(f);
    assert_string_equal(f->id.serial, "1234-5678-901234");
}

/* ---- certificates ----------------------------------------------------- */

static void provision_demo(piv_fx *f)
{
    assert_int_equal(vpiv_card_provision_slot(f->vc, piv_test_ca(), 0x9A, VPIV_ALG_RSA2048,
                                              "张三 (auth)", -1, 365),
                     0);
    assert_int_equal(vpiv_card_provision_slot(f->vc, piv_test_ca(), 0x9C, VPIV_ALG_ECCP256,
                                              "张三 (sign)", -1, 365),
                     0);
}

static void check_cert(piv_fx *f, const uk_token_cert *certs, size_t n, const char *id,
                       uint8_t slot)
{
    uint8_t want[8192];
    const uk_token_cert *c = piv_find(certs, n, id);
    assert_non_null(c);
    assert_int_equal(c->error, UK_OK);
    size_t wl = piv_card_cert(f->vc, slot, want, sizeof(want));
    assert_int_equal(c->der_len, wl);
    assert_memory_equal(c->der, want, wl);
}

static void test_piv_list_certs_reads_the_demo_card(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    uk_token_cert *certs;
    size_t n;
    provision_demo(f);
    piv_fx_open(f);
    piv_seam_reset_counts(f->card);
    piv_list(f, &certs, &n);
    assert_int_equal(n, 2);
    assert_string_equal(certs[0].key_id, "9a");
    assert_string_equal(certs[1].key_id, "9c");
    check_cert(f, certs, n, "9a", 0x9A);
    check_cert(f, certs, n, "9c", 0x9C);
    /* SELECT + one GET DATA per certificate object (24), nothing else. */
    assert_int_equal(piv_seam_apdus(f->card), 25);
    assert_int_equal(piv_seam_ins_count(f->card, 0xC0), 0);
    printf("list_certs, demo card (2 certs), extended length: %u APDUs\n", piv_seam_apdus(f->card));
    piv_certs_free(certs, n);
}

static void test_piv_list_certs_with_short_apdus_follows_61xx(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, false);
    uk_token_cert *certs;
    size_t n;
    provision_demo(f);
    piv_fx_open(f);
    piv_seam_reset_counts(f->card);
    piv_list(f, &certs, &n);
    assert_int_equal(n, 2);
    check_cert(f, certs, n, "9a", 0x9A);
    check_cert(f, certs, n, "9c", 0x9C);
    assert_true(piv_seam_ins_count(f->card, 0xC0) >= 2);
    printf("list_certs, demo card (2 certs), short APDUs: %u APDUs (%u GET RESPONSE)\n",
           piv_seam_apdus(f->card), piv_seam_ins_count(f->card, 0xC0));
    piv_certs_free(certs, n);
}

static uint8_t *ec_cert(size_t comment, size_t *len)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    unsigned char *spki = NULL;
    int sl = i2d_PUBKEY(k, &spki);
    assert_true(sl > 0);
    uint8_t *der = piv_make_cert(spki, (size_t)sl, comment, len);
    OPENSSL_free(spki);
    EVP_PKEY_free(k);
    return der;
}

static void test_piv_list_certs_inflates_a_gzip_certificate(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, false);
    uk_token_cert *certs;
    size_t n, len, zl;
    uint8_t *der = ec_cert(1500, &len), z[4096];
    zl = piv_gzip(der, len, z, sizeof(z));
    assert_true(zl < len);
    piv_put_object(f->vc, 0x9D, z, zl, 0x01);
    piv_fx_open(f);
    piv_list(f, &certs, &n);
    assert_int_equal(n, 1);
    assert_string_equal(certs[0].key_id, "9d");
    assert_int_equal(certs[0].error, UK_OK);
    assert_int_equal(certs[0].der_len, len);
    assert_memory_equal(certs[0].der, der, len);
    piv_certs_free(certs, n);
    free(der);
}

static void big_cert_round_trip(bool ext)
{
    piv_fx *f = piv_fx_new(VPIV_PROFILE_YUBICO, ext);
    uk_token_cert *certs;
    size_t n, len;
    uint8_t *der = ec_cert(2700, &len);
    assert_true(len > 3000 && len < 3300);
    f->opt.allow_default_mgm_key = true;
    piv_fx_open(f);
    piv_seam_reset_counts(f->card);
    assert_int_equal(uk_driver_piv.put_cert(f->st, f->card, "82", der, len), UK_OK);
    if (ext) {
        assert_true(piv_seam_max_capdu(f->card) > len);
    } else {
        /* Chained: no C-APDU longer than a short one (5 + 255 + 1). */
        assert_true(piv_seam_max_capdu(f->card) <= 261);
    }
    piv_seam_reset_counts(f->card);
    piv_list(f, &certs, &n);
    assert_int_equal(n, 1);
    assert_string_equal(certs[0].key_id, "82");
    assert_int_equal(certs[0].der_len, len);
    assert_memory_equal(certs[0].der, der, len);
    if (ext)
        assert_int_equal(piv_seam_ins_count(f->card, 0xC0), 0);
    else
        assert_true(piv_seam_ins_count(f->card, 0xC0) >= 11);
    piv_certs_free(certs, n);
    free(der);
    piv_fx_free(f);
}

static void test_piv_put_and_list_a_3k_certificate(void **state)
{
    (void)state;
    big_cert_round_trip(false);
    big_cert_round_trip(true);
}

static void test_piv_list_certs_skips_empty_objects(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    uk_token_cert *certs;
    size_t n;
    static const uint8_t empty_cert[] = {0x70, 0x00, 0x71, 0x01, 0x00, 0xFE, 0x00};
    static const uint8_t only_lrc[] = {0xFE, 0x00};
    piv_put_raw_object(f->vc, 0x9A, empty_cert, sizeof(empty_cert));
    piv_put_raw_object(f->vc, 0x9E, only_lrc, sizeof(only_lrc));
    piv_fx_open(f);
    piv_list(f, &certs, &n);
    assert_int_equal(n, 0);
    piv_certs_free(certs, n);
}

static void test_piv_list_certs_reports_a_malformed_object_beside_good_ones(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    uk_token_cert *certs;
    size_t n;
    static const uint8_t not_a_cert[] = {0x70, 0x03, 0x01, 0x02, 0x03, 0x71, 0x01, 0x00};
    static const uint8_t bad_tlv[] = {0x70, 0x82, 0x10, 0x00, 0x30, 0x82};
    static const uint8_t fake_gzip[] = {0x70, 0x04, 0x30, 0x02, 0x05, 0x00, 0x71, 0x01, 0x01};
    provision_demo(f);
    piv_put_raw_object(f->vc, 0x9D, not_a_cert, sizeof(not_a_cert));
    piv_put_raw_object(f->vc, 0x82, bad_tlv, sizeof(bad_tlv));
    piv_put_raw_object(f->vc, 0x95, fake_gzip, sizeof(fake_gzip));
    piv_fx_open(f);
    piv_list(f, &certs, &n);
    assert_int_equal(n, 5);
    check_cert(f, certs, n, "9a", 0x9A);
    check_cert(f, certs, n, "9c", 0x9C);
    static const char *bad[] = {"9d", "82", "95"};
    for (size_t i = 0; i < 3; i++) {
        const uk_token_cert *c = piv_find(certs, n, bad[i]);
        assert_non_null(c);
        assert_int_equal(c->error, UK_E_CERT_INVALID);
        assert_null(c->der);
    }
    piv_certs_free(certs, n);
}

/* ---- PIN -------------------------------------------------------------- */

static void test_piv_verify_pin_accepts_the_right_pin(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    int retries = 0;
    piv_fx_open(f);
    assert_int_equal(uk_driver_piv.pin_status(f->st, f->card, &retries), UK_OK);
    assert_int_equal(retries, 3);
    assert_int_equal(piv_verify_pin_str(f, "123456", &retries), UK_OK);
    /* Verified: only GET METADATA tells the counter. */
    assert_int_equal(uk_driver_piv.pin_status(f->st, f->card, &retries), UK_OK);
    assert_int_equal(retries, 3);
}

static void test_piv_verify_wrong_pin_reports_retries(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_GENERIC, false);
    int retries = 0;
    piv_fx_open(f);
    assert_int_equal(piv_verify_pin_str(f, "654321", &retries), UK_E_PIN_INCORRECT);
    assert_int_equal(retries, 2);
    assert_int_equal(piv_verify_pin_str(f, "6543210", &retries), UK_E_PIN_INCORRECT);
    assert_int_equal(retries, 1);
    assert_int_equal(uk_driver_piv.pin_status(f->st, f->card, &retries), UK_OK);
    assert_int_equal(retries, 1);
    assert_int_equal(piv_verify_pin_str(f, "123456", &retries), UK_OK);
    /* A generic card that is verified does not say how many are left. */
    assert_int_equal(uk_driver_piv.pin_status(f->st, f->card, &retries), UK_OK);
    assert_int_equal(retries, -1);
}

static void test_piv_verify_blocked_pin_reports_pin_locked(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    int retries = 0;
    piv_fx_open(f);
    assert_int_equal(piv_verify_pin_str(f, "000000", &retries), UK_E_PIN_INCORRECT);
    assert_int_equal(piv_verify_pin_str(f, "000000", &retries), UK_E_PIN_INCORRECT);
    assert_int_equal(retries, 1);
    assert_int_equal(piv_verify_pin_str(f, "000000", &retries), UK_E_PIN_LOCKED);
    assert_int_equal(retries, 0);
    assert_int_equal(piv_verify_pin_str(f, "123456", &retries), UK_E_PIN_LOCKED);
    assert_int_equal(retries, 0);
    assert_int_equal(uk_driver_piv.pin_status(f->st, f->card, &retries), UK_OK);
    assert_int_equal(retries, 0);
}

static void test_piv_verify_pin_rejects_bad_format_without_sending(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    int retries = 0;
    piv_fx_open(f);
    piv_seam_reset_counts(f->card);
    assert_int_equal(piv_verify_pin_str(f, "12345", &retries), UK_E_PIN_INVALID);
    assert_int_equal(piv_verify_pin_str(f, "123456789", &retries), UK_E_PIN_INVALID);
    assert_int_equal(piv_verify_pin_str(f, "12345\x7f", &retries), UK_E_PIN_INVALID);
    assert_int_equal(piv_verify_pin_str(f, "", &retries), UK_E_PIN_INVALID);
    assert_int_equal(uk_driver_piv.verify_pin(f->st, f->card, NULL, &retries), UK_E_PIN_INVALID);
    assert_int_equal(piv_seam_apdus(f->card), 0);
    /* 8 characters is the most PIV allows, and still fine. */
    assert_int_equal(piv_verify_pin_str(f, "12345678", &retries), UK_E_PIN_INCORRECT);
}

typedef struct {
    char text[65536];
    size_t len;
} log_capture;

static void capture(void *ctx, uk_log_level level, const char *line, size_t len)
{
    log_capture *c = ctx;
    (void)level;
    if (c->len + len + 1 < sizeof(c->text)) {
        memcpy(c->text + c->len, line, len);
        c->len += len;
        c->text[c->len++] = '\n';
        c->text[c->len] = '\0';
    }
}

static void test_piv_pin_never_reaches_the_log(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, false);
    static log_capture cap;
    int retries = 0;
    memset(&cap, 0, sizeof(cap));
    uk_log_level old = uk_log_get_level();
    uk_log_set_level(UK_LOG_LEVEL_DEBUG);
    uk_log_set_sink(capture, &cap);
    piv_fx_open(f);
    assert_int_equal(piv_verify_pin_str(f, "987654", &retries), UK_E_PIN_INCORRECT);
    assert_int_equal(piv_verify_pin_str(f, "123456", &retries), UK_OK);
    uk_log_set_sink(NULL, NULL);
    uk_log_set_level(old);
    assert_true(cap.len > 0); /* APDU headers and the 63C2 were logged */
    assert_non_null(strstr(cap.text, "63C2"));
    assert_null(strstr(cap.text, "987654"));
    assert_null(strstr(cap.text, "123456"));
    assert_null(strstr(cap.text, "393837363534"));
    assert_null(strstr(cap.text, "313233343536"));
}

/* ---- signing ---------------------------------------------------------- */

static void sign_check(piv_fx *f, const char *slot, uk_sig_scheme scheme, uk_hash hash)
{
    uk_token_cert *certs;
    size_t n;
    uint8_t digest[64], sig[600];
    size_t dlen = piv_digest(hash, "报销单 2026-11", digest);
    size_t sl = piv_verify_and_sign(f, slot, scheme, hash, digest, dlen, sig, sizeof(sig));
    piv_list(f, &certs, &n);
    const uk_token_cert *c = piv_find(certs, n, slot);
    assert_non_null(c);
    assert_true(piv_verify(c->der, c->der_len, false, scheme, hash, digest, dlen, sig, sl));
    /* The x509 module (what the sign method will use) agrees. */
    uk_cert_info *ci = NULL;
    int base = scheme == UK_SIG_RSA_PKCS1 ? UK_X509_SIG_RSA_PKCS1_SHA256
               : scheme == UK_SIG_RSA_PSS ? UK_X509_SIG_RSA_PSS_SHA256
                                          : UK_X509_SIG_ECDSA_SHA256;
    uk_x509_sig_alg alg = (uk_x509_sig_alg)(base + (int)hash - 1);
    assert_int_equal(uk_x509_parse(c->der, c->der_len, &ci), UK_OK);
    assert_int_equal(uk_x509_verify_digest(ci, digest, dlen, sig, sl, alg), UK_OK);
    digest[0] ^= 1;
    assert_false(piv_verify(c->der, c->der_len, false, scheme, hash, digest, dlen, sig, sl));
    assert_int_equal(uk_x509_verify_digest(ci, digest, dlen, sig, sl, alg), UK_E_SIGNATURE_INVALID);
    uk_cert_info_free(ci);
    piv_certs_free(certs, n);
}

static void test_piv_sign_rsa_pkcs1_and_pss_verify_with_openssl(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, false);
    provision_demo(f);
    piv_fx_open(f);
    for (uk_hash h = UK_HASH_SHA256; h <= UK_HASH_SHA512; h++) {
        sign_check(f, "9a", UK_SIG_RSA_PKCS1, h);
        sign_check(f, "9a", UK_SIG_RSA_PSS, h);
    }
}

static void test_piv_sign_ecdsa_p256_and_p384_verify_with_openssl(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    provision_demo(f);
    assert_int_equal(vpiv_card_provision_slot(f->vc, piv_test_ca(), 0x9D, VPIV_ALG_ECCP384,
                                              "张三 (P-384)", -1, 365),
                     0);
    piv_fx_open(f);
    /* SHA-384/512 on P-256 are truncated, SHA-256 on P-384 is padded. */
    for (uk_hash h = UK_HASH_SHA256; h <= UK_HASH_SHA512; h++) {
        sign_check(f, "9c", UK_SIG_ECDSA, h);
        sign_check(f, "9d", UK_SIG_ECDSA, h);
    }
}

static void test_piv_sign_9c_needs_a_verify_before_each_signature(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    uint8_t digest[32], sig[128];
    size_t sl = 0;
    provision_demo(f);
    piv_fx_open(f);
    size_t dlen = piv_digest(UK_HASH_SHA256, "once", digest);
    piv_verify_and_sign(f, "9c", UK_SIG_ECDSA, UK_HASH_SHA256, digest, dlen, sig, sizeof(sig));
    uk_sign_req req = {.key_id = "9c",
                       .scheme = UK_SIG_ECDSA,
                       .hash = UK_HASH_SHA256,
                       .digest = digest,
                       .digest_len = dlen};
    assert_int_equal(uk_driver_piv.sign(f->st, f->card, &req, sig, sizeof(sig), &sl),
                     UK_E_SECURITY_STATUS);
    /* 9A (PIN once) keeps signing after one VERIFY. */
    req.key_id[1] = 'a';
    req.scheme = UK_SIG_RSA_PKCS1;
    uint8_t rsig[256];
    assert_int_equal(uk_driver_piv.sign(f->st, f->card, &req, rsig, sizeof(rsig), &sl), UK_OK);
    assert_int_equal(uk_driver_piv.sign(f->st, f->card, &req, rsig, sizeof(rsig), &sl), UK_OK);
}

static void test_piv_sign_learns_the_algorithm_once(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    uint8_t digest[32], sig[300];
    provision_demo(f);
    piv_fx_open(f);
    size_t dlen = piv_digest(UK_HASH_SHA256, "m", digest);
    piv_seam_reset_counts(f->card);
    piv_verify_and_sign(f, "9a", UK_SIG_RSA_PKCS1, UK_HASH_SHA256, digest, dlen, sig, sizeof(sig));
    piv_verify_and_sign(f, "9a", UK_SIG_RSA_PKCS1, UK_HASH_SHA256, digest, dlen, sig, sizeof(sig));
    assert_int_equal(piv_seam_ins_count(f->card, 0xF7), 1);
    assert_int_equal(piv_seam_ins_count(f->card, 0xCB), 0);

    /* A generic card: from the certificate, read once. */
    piv_fx *g = piv_fx_new(VPIV_PROFILE_GENERIC, false);
    provision_demo(g);
    piv_fx_open(g);
    piv_seam_reset_counts(g->card);
    piv_verify_and_sign(g, "9c", UK_SIG_ECDSA, UK_HASH_SHA256, digest, dlen, sig, sizeof(sig));
    piv_verify_and_sign(g, "9c", UK_SIG_ECDSA, UK_HASH_SHA256, digest, dlen, sig, sizeof(sig));
    assert_int_equal(piv_seam_ins_count(g->card, 0xF7), 0);
    assert_int_equal(piv_seam_ins_count(g->card, 0xCB), 1);
    piv_fx_free(g);
}

static void test_piv_sign_rejects_what_it_cannot_do(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    uint8_t digest[64] = {0}, sig[600];
    size_t sl = 0;
    int retries;
    provision_demo(f);
    piv_fx_open(f);
    assert_int_equal(piv_verify_pin_str(f, "123456", &retries), UK_OK);
    uk_sign_req req = {.key_id = "9a",
                       .scheme = UK_SIG_ECDSA,
                       .hash = UK_HASH_SHA256,
                       .digest = digest,
                       .digest_len = 32};
    assert_int_equal(uk_driver_piv.sign(f->st, f->card, &req, sig, sizeof(sig), &sl),
                     UK_E_INVALID_PARAMS);
    req.scheme = UK_SIG_RSA_PKCS1;
    req.digest_len = 31;
    assert_int_equal(uk_driver_piv.sign(f->st, f->card, &req, sig, sizeof(sig), &sl),
                     UK_E_INVALID_PARAMS);
    req.digest_len = 32;
    req.hash = UK_HASH_SM3;
    assert_int_equal(uk_driver_piv.sign(f->st, f->card, &req, sig, sizeof(sig), &sl),
                     UK_E_NOT_SUPPORTED);
    req.hash = UK_HASH_SHA256;
    assert_int_equal(uk_driver_piv.sign(f->st, f->card, &req, sig, 255, &sl), UK_E_LIMIT_EXCEEDED);
    snprintf(req.key_id, sizeof(req.key_id), "9b");
    assert_int_equal(uk_driver_piv.sign(f->st, f->card, &req, sig, sizeof(sig), &sl),
                     UK_E_INVALID_PARAMS);
    /* An empty slot. */
    snprintf(req.key_id, sizeof(req.key_id), "9e");
    assert_int_equal(uk_driver_piv.sign(f->st, f->card, &req, sig, sizeof(sig), &sl),
                     UK_E_KEY_NOT_FOUND);
}

/* ---- management key, generation, certificates -------------------------- */

static const uint8_t default_3des[24] = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4,
                                         5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8};

static void test_piv_admin_without_a_configured_key_never_tries_the_default(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    piv_fx_open(f);
    assert_int_equal(
        uk_driver_piv.generate_key(f->st, f->card, "9a", UK_KEY_ECP256, &spki, &spki_len),
        UK_E_AUTH_FAILED);
    assert_null(spki);
    assert_int_equal(piv_seam_ins_count(f->card, 0x87), 0);
    assert_int_equal(piv_seam_ins_count(f->card, 0x47), 0);
    assert_int_equal(uk_driver_piv.put_cert(f->st, f->card, "9a", default_3des, 24),
                     UK_E_CERT_INVALID);
}

static void set_card_mgm(vpiv_card *vc, uint8_t alg, const uint8_t *key, size_t len)
{
    vc->mgm_alg = alg;
    memcpy(vc->mgm_key, key, len);
    vc->mgm_len = len;
    vc->mgm_default = false;
}

static int try_generate(vpiv_profile profile, uint8_t card_alg, const uint8_t *card_key,
                        size_t card_len, const uint8_t *key, size_t len)
{
    piv_fx *f = piv_fx_new(profile, true);
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    set_card_mgm(f->vc, card_alg, card_key, card_len);
    memcpy(f->opt.piv_mgm_key, key, len);
    f->opt.piv_mgm_key_len = len;
    piv_fx_open(f);
    int rc = uk_driver_piv.generate_key(f->st, f->card, "9d", UK_KEY_ECP256, &spki, &spki_len);
    assert_true(rc == UK_OK ? spki != NULL : spki == NULL);
    free(spki);
    piv_fx_free(f);
    return rc;
}

static void test_piv_mgm_auth_with_3des_and_aes_keys(void **state)
{
    (void)state;
    uint8_t key[32];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(0xA0 + i);
    static const struct {
        uint8_t alg;
        size_t len;
    } algs[] = {
        {VPIV_ALG_3DES, 24}, {VPIV_ALG_AES128, 16}, {VPIV_ALG_AES192, 24}, {VPIV_ALG_AES256, 32}};
    for (size_t i = 0; i < 4; i++) {
        /* A vendor card says which algorithm (GET METADATA 9B). */
        assert_int_equal(
            try_generate(VPIV_PROFILE_YUBICO, algs[i].alg, key, algs[i].len, key, algs[i].len),
            UK_OK);
        /* A generic card: the key length decides; 24 bytes means 3DES. */
        assert_int_equal(
            try_generate(VPIV_PROFILE_GENERIC, algs[i].alg, key, algs[i].len, key, algs[i].len),
            algs[i].alg == VPIV_ALG_AES192 ? UK_E_AUTH_FAILED : UK_OK);
    }
}

static void test_piv_mgm_auth_with_a_wrong_key_is_auth_failed(void **state)
{
    (void)state;
    uint8_t key[32], wrong[32];
    for (size_t i = 0; i < sizeof(key); i++) {
        key[i] = (uint8_t)(0x10 + i);
        wrong[i] = (uint8_t)(0x11 + i);
    }
    assert_int_equal(try_generate(VPIV_PROFILE_YUBICO, VPIV_ALG_AES128, key, 16, wrong, 16),
                     UK_E_AUTH_FAILED);
    assert_int_equal(try_generate(VPIV_PROFILE_GENERIC, VPIV_ALG_3DES, key, 24, wrong, 24),
                     UK_E_AUTH_FAILED);
    /* The right length for another algorithm than the card's. */
    assert_int_equal(try_generate(VPIV_PROFILE_YUBICO, VPIV_ALG_AES256, key, 32, key, 16),
                     UK_E_AUTH_FAILED);
    /* A configured key wins over the default, even where the default would work. */
    piv_fx *f = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    memcpy(f->opt.piv_mgm_key, wrong, 24);
    f->opt.piv_mgm_key_len = 24;
    f->opt.allow_default_mgm_key = true;
    piv_fx_open(f);
    assert_int_equal(
        uk_driver_piv.generate_key(f->st, f->card, "9a", UK_KEY_ECP256, &spki, &spki_len),
        UK_E_AUTH_FAILED);
    piv_fx_free(f);
}

static void generate_put_list_sign(piv_fx *f, const char *slot, uk_key_alg alg,
                                   uk_sig_scheme scheme)
{
    uint8_t *spki = NULL, digest[32], sig[600];
    size_t spki_len = 0, len, n;
    uk_token_cert *certs;
    assert_int_equal(uk_driver_piv.generate_key(f->st, f->card, slot, alg, &spki, &spki_len),
                     UK_OK);
    /* The new key signs (before any certificate: a CSR is signed so). */
    size_t dlen = piv_digest(UK_HASH_SHA256, "csr", digest);
    size_t sl =
        piv_verify_and_sign(f, slot, scheme, UK_HASH_SHA256, digest, dlen, sig, sizeof(sig));
    assert_true(piv_verify(spki, spki_len, true, scheme, UK_HASH_SHA256, digest, dlen, sig, sl));
    uint8_t *der = piv_make_cert(spki, spki_len, 0, &len);
    assert_int_equal(uk_driver_piv.put_cert(f->st, f->card, slot, der, len), UK_OK);
    piv_list(f, &certs, &n);
    const uk_token_cert *c = piv_find(certs, n, slot);
    assert_non_null(c);
    assert_int_equal(c->error, UK_OK);
    assert_int_equal(c->der_len, len);
    assert_memory_equal(c->der, der, len);
    uk_cert_info *ci = NULL;
    assert_int_equal(uk_x509_parse(c->der, c->der_len, &ci), UK_OK);
    assert_int_equal(uk_x509_spki_match(ci, spki, spki_len), UK_OK);
    uk_cert_info_free(ci);
    piv_certs_free(certs, n);
    free(der);
    free(spki);
}

static void test_piv_generate_put_cert_and_list(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, false);
    f->opt.allow_default_mgm_key = true;
    piv_fx_open(f);
    generate_put_list_sign(f, "9a", UK_KEY_RSA2048, UK_SIG_RSA_PKCS1);
    generate_put_list_sign(f, "82", UK_KEY_ECP256, UK_SIG_ECDSA);
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    assert_int_equal(uk_driver_piv.generate_key(f->st, f->card, "9a", UK_KEY_SM2, &spki, &spki_len),
                     UK_E_NOT_SUPPORTED);
    assert_int_equal(
        uk_driver_piv.generate_key(f->st, f->card, "9b", UK_KEY_ECP256, &spki, &spki_len),
        UK_E_INVALID_PARAMS);
}

static void test_piv_generic_profile_works_without_vendor_extensions(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_GENERIC, false);
    uint8_t digest[32], sig[600];
    f->opt.allow_default_mgm_key = true;
    piv_fx_open(f);
    assert_string_not_equal(f->id.serial, "");
    generate_put_list_sign(f, "9a", UK_KEY_ECP256, UK_SIG_ECDSA);
    generate_put_list_sign(f, "95", UK_KEY_RSA2048, UK_SIG_RSA_PSS);
    assert_int_equal(piv_seam_ins_count(f->card, 0xF7), 0);
    assert_int_equal(piv_seam_ins_count(f->card, 0xF8), 0);

    /* A fresh open learns the algorithms from the certificates. */
    uk_driver_piv.close(f->st);
    f->st = NULL;
    piv_fx_open(f);
    size_t dlen = piv_digest(UK_HASH_SHA256, "again", digest);
    size_t sl = piv_verify_and_sign(f, "95", UK_SIG_RSA_PSS, UK_HASH_SHA256, digest, dlen, sig,
                                    sizeof(sig));
    assert_int_equal(sl, 256);
    int retries = 0;
    assert_int_equal(uk_driver_piv.pin_status(f->st, f->card, &retries), UK_OK);
}

/* ---- PIN change and decryption ------------------------------------------ */

static int change_pin_str(piv_fx *f, const char *old_pin, const char *new_pin, int *retries)
{
    uk_secret *o = uk_secret_new(old_pin, strlen(old_pin));
    uk_secret *n = uk_secret_new(new_pin, strlen(new_pin));
    assert_non_null(o);
    assert_non_null(n);
    int rc = uk_driver_piv.change_pin(f->st, f->card, o, n, retries);
    uk_secret_free(o);
    uk_secret_free(n);
    return rc;
}

static void test_piv_change_pin_checks_formats_then_changes(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    int retries = 0;
    piv_fx_open(f);
    piv_seam_reset_counts(f->card);
    assert_int_equal(change_pin_str(f, "123456", "12345", &retries), UK_E_PIN_INVALID);
    assert_int_equal(change_pin_str(f, "123456", "123456789", &retries), UK_E_PIN_INVALID);
    assert_int_equal(change_pin_str(f, "12345", "654321", &retries), UK_E_PIN_INVALID);
    assert_int_equal(piv_seam_apdus(f->card), 0);
    assert_int_equal(change_pin_str(f, "000000", "654321", &retries), UK_E_PIN_INCORRECT);
    assert_int_equal(retries, 2);
    assert_int_equal(change_pin_str(f, "123456", "654321", &retries), UK_OK);
    assert_int_equal(piv_verify_pin_str(f, "123456", &retries), UK_E_PIN_INCORRECT);
    assert_int_equal(piv_verify_pin_str(f, "654321", &retries), UK_OK);
}

/* The certificate's public key of slot, for the host side of the checks below. */
static EVP_PKEY *slot_key(piv_fx *f, const char *slot)
{
    uk_token_cert *certs;
    size_t n;
    piv_list(f, &certs, &n);
    const uk_token_cert *c = piv_find(certs, n, slot);
    assert_non_null(c);
    const unsigned char *p = c->der;
    X509 *x = d2i_X509(NULL, &p, (long)c->der_len);
    assert_non_null(x);
    EVP_PKEY *pk = X509_get_pubkey(x); /* a reference of its own */
    X509_free(x);
    piv_certs_free(certs, n);
    assert_non_null(pk);
    return pk;
}

static void test_piv_decrypt_rsa_raw_and_ecdh_match_openssl(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    assert_int_equal(vpiv_card_provision_slot(f->vc, piv_test_ca(), 0x9D, VPIV_ALG_RSA2048,
                                              "张三 (key management)", -1, 365),
                     0);
    assert_int_equal(vpiv_card_provision_slot(f->vc, piv_test_ca(), 0x9E, VPIV_ALG_ECCP256,
                                              "张三 (ECDH)", -1, 365),
                     0);
    piv_fx_open(f);
    int retries = 0;
    uint8_t out[512];
    size_t out_len = 0;

    /* RSA: PKCS#1 v1.5 encryption of a key on the host, the raw primitive on the card. */
    EVP_PKEY *rsa = slot_key(f, "9d");
    const uint8_t cek[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    uint8_t ct[256];
    size_t ct_len = sizeof(ct);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(rsa, NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_encrypt_init(ctx), 1);
    assert_int_equal(EVP_PKEY_encrypt(ctx, ct, &ct_len, cek, sizeof(cek)), 1);
    EVP_PKEY_CTX_free(ctx);
    assert_int_equal(piv_verify_pin_str(f, "123456", &retries), UK_OK);
    assert_int_equal(uk_driver_piv.decrypt(f->st, f->card, "9d", UK_DECRYPT_RSA_RAW, ct, ct_len,
                                           out, sizeof(out), &out_len),
                     UK_OK);
    assert_int_equal(out_len, 256);
    assert_int_equal(out[0], 0x00);
    assert_int_equal(out[1], 0x02);
    assert_int_equal(out[256 - 33], 0x00);
    assert_memory_equal(out + 256 - 32, cek, sizeof(cek));
    /* Input that does not fit the key is refused before the card is asked. */
    piv_seam_reset_counts(f->card);
    assert_int_equal(uk_driver_piv.decrypt(f->st, f->card, "9d", UK_DECRYPT_RSA_RAW, ct, 255, out,
                                           sizeof(out), &out_len),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_driver_piv.decrypt(f->st, f->card, "9d", UK_DECRYPT_ECDH, ct, 65, out,
                                           sizeof(out), &out_len),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(piv_seam_apdus(f->card), 0);

    /* ECDH: the card's secret equals the host's with an ephemeral key. */
    EVP_PKEY *ec = slot_key(f, "9e");
    EVP_PKEY *eph = EVP_EC_gen("P-256");
    assert_non_null(eph);
    uint8_t point[65], secret[32];
    size_t point_len = 0, secret_len = sizeof(secret);
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(eph, "encoded-pub-key", point, sizeof(point), &point_len),
        1);
    assert_int_equal(point_len, 65);
    ctx = EVP_PKEY_CTX_new(eph, NULL);
    assert_int_equal(EVP_PKEY_derive_init(ctx), 1);
    assert_int_equal(EVP_PKEY_derive_set_peer(ctx, ec), 1);
    assert_int_equal(EVP_PKEY_derive(ctx, secret, &secret_len), 1);
    EVP_PKEY_CTX_free(ctx);
    assert_int_equal(piv_verify_pin_str(f, "123456", &retries), UK_OK);
    assert_int_equal(uk_driver_piv.decrypt(f->st, f->card, "9e", UK_DECRYPT_ECDH, point, point_len,
                                           out, sizeof(out), &out_len),
                     UK_OK);
    assert_int_equal(out_len, 32);
    assert_memory_equal(out, secret, 32);
    /* Without the PIN the card refuses the key-management key (9e, card authentication, never
     * needs one). */
    uk_driver_piv.logout(f->st, f->card);
    assert_int_equal(uk_driver_piv.decrypt(f->st, f->card, "9d", UK_DECRYPT_RSA_RAW, ct, ct_len,
                                           out, sizeof(out), &out_len),
                     UK_E_SECURITY_STATUS);
    EVP_PKEY_free(eph);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
}

int main(void)
{
#define T(name) cmocka_unit_test_teardown(name, teardown)
    const struct CMUnitTest tests[] = {
        T(test_piv_probe_accepts_a_piv_card),
        T(test_piv_probe_rejects_a_card_without_piv),
        T(test_piv_open_reads_vendor_serial_and_version),
        T(test_piv_open_generic_card_uses_the_chuid_guid),
        T(test_piv_open_uses_a_real_fascn_as_card_number),
        T(test_piv_list_certs_reads_the_demo_card),
        T(test_piv_list_certs_with_short_apdus_follows_61xx),
        T(test_piv_list_certs_inflates_a_gzip_certificate),
        cmocka_unit_test(test_piv_put_and_list_a_3k_certificate),
        T(test_piv_list_certs_skips_empty_objects),
        T(test_piv_list_certs_reports_a_malformed_object_beside_good_ones),
        T(test_piv_verify_pin_accepts_the_right_pin),
        T(test_piv_verify_wrong_pin_reports_retries),
        T(test_piv_verify_blocked_pin_reports_pin_locked),
        T(test_piv_verify_pin_rejects_bad_format_without_sending),
        T(test_piv_pin_never_reaches_the_log),
        T(test_piv_sign_rsa_pkcs1_and_pss_verify_with_openssl),
        T(test_piv_sign_ecdsa_p256_and_p384_verify_with_openssl),
        T(test_piv_sign_9c_needs_a_verify_before_each_signature),
        T(test_piv_sign_learns_the_algorithm_once),
        T(test_piv_sign_rejects_what_it_cannot_do),
        T(test_piv_admin_without_a_configured_key_never_tries_the_default),
        cmocka_unit_test(test_piv_mgm_auth_with_3des_and_aes_keys),
        cmocka_unit_test(test_piv_mgm_auth_with_a_wrong_key_is_auth_failed),
        T(test_piv_change_pin_checks_formats_then_changes),
        T(test_piv_decrypt_rsa_raw_and_ecdh_match_openssl),
        T(test_piv_generate_put_cert_and_list),
        T(test_piv_generic_profile_works_without_vendor_extensions),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
