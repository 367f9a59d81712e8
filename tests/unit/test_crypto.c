/* uk_crypto: padding checked by OpenSSL's own verifiers, SPKI round trips,
 * key kinds, management-key ciphers against known answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "uk_crypto.h"
#include "uk_err.h"

static const EVP_MD *evp_md(uk_crypto_md md)
{
    return md == UK_CRYPTO_SHA256   ? EVP_sha256()
           : md == UK_CRYPTO_SHA384 ? EVP_sha384()
                                    : EVP_sha512();
}

static size_t digest_of(uk_crypto_md md, const char *msg, uint8_t *out)
{
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(msg, strlen(msg), out, &n, evp_md(md), NULL), 1);
    return n;
}

/* The raw RSA private operation on em (what a PIV card does). */
static size_t raw_rsa(EVP_PKEY *key, const uint8_t *em, size_t k, uint8_t *sig)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    size_t sig_len = k;
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_sign_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING), 1);
    assert_int_equal(EVP_PKEY_sign(ctx, sig, &sig_len, em, k), 1);
    EVP_PKEY_CTX_free(ctx);
    return sig_len;
}

static int verify(EVP_PKEY *key, int padding, uk_crypto_md md, const uint8_t *sig, size_t sig_len,
                  const uint8_t *digest, size_t dlen)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, padding), 1);
    assert_int_equal(EVP_PKEY_CTX_set_signature_md(ctx, evp_md(md)), 1);
    if (padding == RSA_PKCS1_PSS_PADDING)
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST), 1);
    int rc = EVP_PKEY_verify(ctx, sig, sig_len, digest, dlen);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

static void test_crypto_pkcs1_signatures_verify_with_openssl(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(key);
    for (uk_crypto_md md = UK_CRYPTO_SHA256; md <= UK_CRYPTO_SHA512; md++) {
        uint8_t digest[64], em[256], sig[256];
        size_t dlen = digest_of(md, "pkcs1", digest);
        assert_int_equal(uk_crypto_md_size(md), dlen);
        assert_int_equal(uk_crypto_emsa_pkcs1_v15(md, digest, dlen, em, sizeof(em)), UK_OK);
        assert_int_equal(em[0], 0x00);
        assert_int_equal(em[1], 0x01);
        size_t n = raw_rsa(key, em, sizeof(em), sig);
        assert_int_equal(verify(key, RSA_PKCS1_PADDING, md, sig, n, digest, dlen), 1);
        digest[0] ^= 1;
        assert_int_not_equal(verify(key, RSA_PKCS1_PADDING, md, sig, n, digest, dlen), 1);
    }
    EVP_PKEY_free(key);
}

static void test_crypto_pkcs1_rejects_bad_lengths(void **state)
{
    (void)state;
    uint8_t digest[64] = {0}, em[512];
    assert_int_equal(uk_crypto_emsa_pkcs1_v15(UK_CRYPTO_SHA256, digest, 31, em, 256),
                     UK_E_INVALID_PARAMS);
    /* 19 + 64 + 11 = 94 bytes at least for SHA-512. */
    assert_int_equal(uk_crypto_emsa_pkcs1_v15(UK_CRYPTO_SHA512, digest, 64, em, 93),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_crypto_emsa_pkcs1_v15(UK_CRYPTO_SHA512, digest, 64, em, 94), UK_OK);
    assert_int_equal(uk_crypto_emsa_pkcs1_v15((uk_crypto_md)9, digest, 32, em, 256),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_crypto_md_size((uk_crypto_md)9), 0);
}

static void pss_round(size_t bits, uk_crypto_md md)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
    uint8_t digest[64], em[512], em2[512], sig[512];
    size_t k = (bits + 7) / 8;
    assert_non_null(key);
    size_t dlen = digest_of(md, "pss", digest);
    assert_int_equal(uk_crypto_emsa_pss(md, digest, dlen, bits, em, k), UK_OK);
    assert_int_equal(em[k - 1], 0xBC);
    /* A random salt: two encodings differ. */
    assert_int_equal(uk_crypto_emsa_pss(md, digest, dlen, bits, em2, k), UK_OK);
    assert_memory_not_equal(em, em2, k);
    size_t n = raw_rsa(key, em, k, sig);
    assert_int_equal(verify(key, RSA_PKCS1_PSS_PADDING, md, sig, n, digest, dlen), 1);
    digest[dlen - 1] ^= 0x80;
    assert_int_not_equal(verify(key, RSA_PKCS1_PSS_PADDING, md, sig, n, digest, dlen), 1);
    EVP_PKEY_free(key);
}

/* The DigestInfo is the ASN.1 OpenSSL encodes for the digest (X509_SIG), byte for byte. */
static void test_crypto_digest_info_is_the_der_openssl_encodes(void **state)
{
    (void)state;
    static const struct {
        uk_crypto_md md;
        const char *name;
        size_t len;
    } mds[] = {{UK_CRYPTO_SHA256, "SHA256", 32},
               {UK_CRYPTO_SHA384, "SHA384", 48},
               {UK_CRYPTO_SHA512, "SHA512", 64}};
    for (size_t i = 0; i < sizeof(mds) / sizeof(mds[0]); i++) {
        uint8_t digest[64], di[96];
        for (size_t j = 0; j < sizeof(digest); j++)
            digest[j] = (uint8_t)(j * 7 + i);
        size_t n = 0;
        assert_int_equal(uk_crypto_digest_info(mds[i].md, digest, mds[i].len, di, sizeof(di), &n),
                         UK_OK);
        X509_SIG *sig = X509_SIG_new();
        assert_non_null(sig);
        X509_ALGOR *alg = NULL;
        ASN1_OCTET_STRING *os = NULL;
        X509_SIG_getm(sig, &alg, &os);
        assert_int_equal(X509_ALGOR_set0(alg, OBJ_txt2obj(mds[i].name, 0), V_ASN1_NULL, NULL), 1);
        assert_int_equal(ASN1_OCTET_STRING_set(os, digest, (int)mds[i].len), 1);
        unsigned char *der = NULL;
        int len = i2d_X509_SIG(sig, &der);
        assert_true(len > 0);
        assert_int_equal(n, (size_t)len);
        assert_memory_equal(di, der, n);
        OPENSSL_free(der);
        X509_SIG_free(sig);
        /* too small a buffer is refused, never cut */
        assert_int_equal(uk_crypto_digest_info(mds[i].md, digest, mds[i].len, di, n - 1, &n),
                         UK_E_LIMIT_EXCEEDED);
    }
    uint8_t di[96];
    size_t n = 0;
    assert_int_equal(uk_crypto_digest_info(UK_CRYPTO_SHA256, di, 31, di, sizeof(di), &n),
                     UK_E_INVALID_PARAMS);
}

static void test_crypto_pss_signatures_verify_with_openssl(void **state)
{
    (void)state;
    pss_round(2048, UK_CRYPTO_SHA256);
    pss_round(2048, UK_CRYPTO_SHA384);
    pss_round(2048, UK_CRYPTO_SHA512);
    /* mod_bits - 1 a multiple of 8: the encoding is one byte shorter than
     * the modulus and sits right-aligned behind a zero byte. */
    pss_round(1025, UK_CRYPTO_SHA256);
    pss_round(1031, UK_CRYPTO_SHA256);
}

static void test_crypto_pss_rejects_too_small_modulus(void **state)
{
    (void)state;
    uint8_t digest[64] = {0}, em[128];
    /* SHA-512 needs emLen >= 64 + 64 + 2 = 130. */
    assert_int_equal(uk_crypto_emsa_pss(UK_CRYPTO_SHA512, digest, 64, 1024, em, 128),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_crypto_emsa_pss(UK_CRYPTO_SHA256, digest, 32, 1024, em, 127),
                     UK_E_INVALID_PARAMS);
}

static size_t pubkey_der(EVP_PKEY *key, uint8_t *out)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    assert_true(n > 0);
    memcpy(out, der, (size_t)n);
    OPENSSL_free(der);
    return (size_t)n;
}

static void test_crypto_spki_from_rsa_matches_openssl(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    BIGNUM *n = NULL, *e = NULL;
    uint8_t nb[256], eb[8], want[600], *spki = NULL;
    size_t spki_len = 0;
    assert_true(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n));
    assert_true(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e));
    int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
    assert_int_equal(uk_crypto_spki_from_rsa(nb, (size_t)nl, eb, (size_t)el, &spki, &spki_len),
                     UK_OK);
    size_t wl = pubkey_der(key, want);
    assert_int_equal(spki_len, wl);
    assert_memory_equal(spki, want, wl);
    uk_crypto_key_info ki;
    assert_int_equal(uk_crypto_spki_info(spki, spki_len, &ki), UK_OK);
    assert_int_equal(ki.type, UK_CRYPTO_KEY_RSA);
    assert_int_equal(ki.bits, 2048);
    free(spki);
    /* An even modulus is no RSA key. */
    nb[nl - 1] &= 0xFE;
    assert_int_equal(uk_crypto_spki_from_rsa(nb, (size_t)nl, eb, (size_t)el, &spki, &spki_len),
                     UK_E_KEY_REJECTED);
    BN_free(n);
    BN_free(e);
    EVP_PKEY_free(key);
}

static void test_crypto_spki_from_ec_checks_the_point(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uk_crypto_curve curve;
        size_t len;
    } curves[] = {{"P-256", UK_CRYPTO_CURVE_P256, 65}, {"P-384", UK_CRYPTO_CURVE_P384, 97}};
    for (size_t i = 0; i < 2; i++) {
        EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curves[i].name);
        uint8_t pt[133], want[200], *spki = NULL;
        size_t pl = 0, spki_len = 0;
        assert_true(
            EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &pl));
        assert_int_equal(pl, curves[i].len);
        assert_int_equal(uk_crypto_spki_from_ec(curves[i].curve, pt, pl, &spki, &spki_len), UK_OK);
        size_t wl = pubkey_der(key, want);
        assert_int_equal(spki_len, wl);
        assert_memory_equal(spki, want, wl);
        uk_crypto_key_info ki;
        assert_int_equal(uk_crypto_spki_info(spki, spki_len, &ki), UK_OK);
        assert_int_equal(ki.type, UK_CRYPTO_KEY_EC);
        assert_int_equal(ki.curve, curves[i].curve);
        free(spki);
        /* Off the curve, wrong length, compressed form, wrong curve. */
        pt[pl - 1] ^= 0x01;
        assert_int_equal(uk_crypto_spki_from_ec(curves[i].curve, pt, pl, &spki, &spki_len),
                         UK_E_KEY_REJECTED);
        pt[pl - 1] ^= 0x01;
        assert_int_equal(uk_crypto_spki_from_ec(curves[i].curve, pt, pl - 1, &spki, &spki_len),
                         UK_E_KEY_REJECTED);
        pt[0] = 0x02;
        assert_int_equal(uk_crypto_spki_from_ec(curves[i].curve, pt, pl, &spki, &spki_len),
                         UK_E_KEY_REJECTED);
        assert_int_equal(uk_crypto_spki_from_ec(UK_CRYPTO_CURVE_OTHER, pt, pl, &spki, &spki_len),
                         UK_E_INVALID_PARAMS);
        EVP_PKEY_free(key);
    }
}

/* An SM2 point (what an SKF module's ECCPUBLICKEYBLOB holds) becomes the SPKI OpenSSL writes for
 * the key; a point off the curve is refused. */
static void test_crypto_spki_from_sm2_point_matches_openssl(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    assert_non_null(key);
    uint8_t pt[65], want[200], *spki = NULL;
    size_t pl = 0, spki_len = 0;
    assert_true(EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &pl));
    assert_int_equal(pl, 65);
    assert_int_equal(uk_crypto_spki_from_ec(UK_CRYPTO_CURVE_SM2, pt, pl, &spki, &spki_len), UK_OK);
    size_t wl = pubkey_der(key, want);
    assert_int_equal(spki_len, wl);
    assert_memory_equal(spki, want, wl);
    free(spki);
    pt[64] ^= 0x01;
    assert_int_equal(uk_crypto_spki_from_ec(UK_CRYPTO_CURVE_SM2, pt, pl, &spki, &spki_len),
                     UK_E_KEY_REJECTED);
    EVP_PKEY_free(key);
}

static size_t make_cert(EVP_PKEY *key, uint8_t *out)
{
    X509 *x = X509_new();
    unsigned char *der = NULL;
    assert_non_null(x);
    assert_true(X509_set_pubkey(x, key));
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)"test", -1, -1, 0);
    assert_true(X509_set_issuer_name(x, X509_get_subject_name(x)));
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    int n = i2d_X509(x, &der);
    assert_true(n > 0);
    memcpy(out, der, (size_t)n);
    OPENSSL_free(der);
    X509_free(x);
    return (size_t)n;
}

static void test_crypto_cert_key_info_parses_and_rejects(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    uint8_t der[2048];
    uk_crypto_key_info ki;
    size_t n = make_cert(key, der);
    assert_int_equal(uk_crypto_cert_key_info(der, n, &ki), UK_OK);
    assert_int_equal(ki.type, UK_CRYPTO_KEY_EC);
    assert_int_equal(ki.curve, UK_CRYPTO_CURVE_P384);
    assert_int_equal(ki.bits, 384);
    /* Trailing garbage, truncation, garbage. */
    der[n] = 0;
    assert_int_equal(uk_crypto_cert_key_info(der, n + 1, &ki), UK_E_CERT_INVALID);
    assert_int_equal(uk_crypto_cert_key_info(der, n - 1, &ki), UK_E_CERT_INVALID);
    memset(der, 0x30, 64);
    assert_int_equal(uk_crypto_cert_key_info(der, 64, &ki), UK_E_CERT_INVALID);
    assert_int_equal(uk_crypto_spki_info(der, 64, &ki), UK_E_CERT_INVALID);
    EVP_PKEY_free(key);
}

static void test_crypto_cert_subject_is_the_der_name(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    uint8_t der[2048];
    size_t n = make_cert(key, der);
    uint8_t *subj = NULL;
    size_t subj_len = 0;
    assert_int_equal(uk_crypto_cert_subject(der, n, &subj, &subj_len), UK_OK);
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)n);
    assert_non_null(x);
    unsigned char *want = NULL;
    int wl = i2d_X509_NAME(X509_get_subject_name(x), &want);
    assert_true(wl > 0);
    assert_int_equal(subj_len, (size_t)wl);
    assert_memory_equal(subj, want, subj_len);
    OPENSSL_free(want);
    X509_free(x);
    free(subj);
    subj = NULL;
    assert_int_equal(uk_crypto_cert_subject(der, n - 1, &subj, &subj_len), UK_E_CERT_INVALID);
    assert_null(subj);
    EVP_PKEY_free(key);
}

/* A raw r || s (PKCS#11 CKM_ECDSA) becomes the DER that OpenSSL verifies. */
static void test_crypto_ecdsa_raw_to_der_verifies_with_openssl(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    uint8_t md[32];
    assert_int_equal(uk_crypto_digest(UK_CRYPTO_SHA256, (const uint8_t *)"abc", 3, md, sizeof(md)),
                     UK_OK);
    static const uint8_t abc256[4] = {0xba, 0x78, 0x16, 0xbf}; /* SHA-256("abc") begins so */
    assert_memory_equal(md, abc256, sizeof(abc256));
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    assert_int_equal(EVP_PKEY_sign_init(ctx), 1);
    uint8_t sig[80];
    size_t sig_len = sizeof(sig);
    assert_int_equal(EVP_PKEY_sign(ctx, sig, &sig_len, md, sizeof(md)), 1);
    /* DER -> raw with OpenSSL, back to DER with uk_crypto */
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
    assert_non_null(es);
    uint8_t raw[64];
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32), 32);
    ECDSA_SIG_free(es);
    uint8_t der[80];
    size_t der_len = 0;
    assert_int_equal(uk_crypto_ecdsa_raw_to_der(raw, sizeof(raw), der, sizeof(der), &der_len),
                     UK_OK);
    assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
    assert_int_equal(EVP_PKEY_verify(ctx, der, der_len, md, sizeof(md)), 1);
    raw[5] ^= 1; /* another r does not verify: the check can fail */
    assert_int_equal(uk_crypto_ecdsa_raw_to_der(raw, sizeof(raw), der, sizeof(der), &der_len),
                     UK_OK);
    assert_int_not_equal(EVP_PKEY_verify(ctx, der, der_len, md, sizeof(md)), 1);
    assert_int_equal(uk_crypto_ecdsa_raw_to_der(raw, 63, der, sizeof(der), &der_len),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_crypto_ecdsa_raw_to_der(raw, sizeof(raw), der, 10, &der_len),
                     UK_E_LIMIT_EXCEEDED);
    assert_int_equal(uk_crypto_digest(UK_CRYPTO_SHA256, md, 1, md, 31), UK_E_INVALID_PARAMS);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
}

static void hex(const char *s, uint8_t *out)
{
    for (size_t i = 0; s[2 * i]; i++) {
        unsigned v;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static void test_crypto_ecb_known_answers(void **state)
{
    (void)state;
    uint8_t key[32], in[16], want[16], out[16], back[16];
    /* FIPS-197 appendix C.1 (AES-128). */
    hex("000102030405060708090a0b0c0d0e0f", key);
    hex("00112233445566778899aabbccddeeff", in);
    hex("69c4e0d86a7b0430d8cdb78070b4c55a", want);
    assert_int_equal(uk_crypto_ecb(UK_CRYPTO_AES128, key, 16, true, in, 16, out), UK_OK);
    assert_memory_equal(out, want, 16);
    assert_int_equal(uk_crypto_ecb(UK_CRYPTO_AES128, key, 16, false, out, 16, back), UK_OK);
    assert_memory_equal(back, in, 16);
    /* 3DES with K1 = K2 = K3 is single DES: the classic DES example. */
    hex("133457799bbcdff1133457799bbcdff1133457799bbcdff1", key);
    hex("0123456789abcdef", in);
    hex("85e813540f0ab405", want);
    assert_int_equal(uk_crypto_ecb(UK_CRYPTO_3DES, key, 24, true, in, 8, out), UK_OK);
    assert_memory_equal(out, want, 8);
    assert_int_equal(uk_crypto_ecb(UK_CRYPTO_3DES, key, 24, false, out, 8, back), UK_OK);
    assert_memory_equal(back, in, 8);
    /* AES-192/256 round trips and sizes. */
    for (uk_crypto_cipher c = UK_CRYPTO_AES192; c <= UK_CRYPTO_AES256; c++) {
        size_t kl = uk_crypto_cipher_key_len(c);
        assert_int_equal(uk_crypto_cipher_block(c), 16);
        assert_int_equal(uk_crypto_ecb(c, key, kl, true, in, 16, out), UK_OK);
        assert_int_equal(uk_crypto_ecb(c, key, kl, false, out, 16, back), UK_OK);
        assert_memory_equal(back, in, 16);
        assert_int_equal(uk_crypto_ecb(c, key, kl - 1, true, in, 16, out), UK_E_INVALID_PARAMS);
        assert_int_equal(uk_crypto_ecb(c, key, kl, true, in, 15, out), UK_E_INVALID_PARAMS);
    }
    assert_int_equal(uk_crypto_cipher_key_len((uk_crypto_cipher)0), 0);
}

static void test_crypto_random_fills(void **state)
{
    (void)state;
    uint8_t a[32] = {0}, b[32] = {0};
    assert_int_equal(uk_crypto_random(a, sizeof(a)), UK_OK);
    assert_int_equal(uk_crypto_random(b, sizeof(b)), UK_OK);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(uk_crypto_random(a, 0), UK_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crypto_pkcs1_signatures_verify_with_openssl),
        cmocka_unit_test(test_crypto_pkcs1_rejects_bad_lengths),
        cmocka_unit_test(test_crypto_digest_info_is_the_der_openssl_encodes),
        cmocka_unit_test(test_crypto_pss_signatures_verify_with_openssl),
        cmocka_unit_test(test_crypto_pss_rejects_too_small_modulus),
        cmocka_unit_test(test_crypto_spki_from_rsa_matches_openssl),
        cmocka_unit_test(test_crypto_spki_from_ec_checks_the_point),
        cmocka_unit_test(test_crypto_spki_from_sm2_point_matches_openssl),
        cmocka_unit_test(test_crypto_cert_key_info_parses_and_rejects),
        cmocka_unit_test(test_crypto_ecb_known_answers),
        cmocka_unit_test(test_crypto_random_fills),
        cmocka_unit_test(test_crypto_cert_subject_is_the_der_name),
        cmocka_unit_test(test_crypto_ecdsa_raw_to_der_verifies_with_openssl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
