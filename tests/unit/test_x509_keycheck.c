/*
 * uk_x509_check_new_key and uk_x509_rsa_roca_fingerprint: keys made with OpenSSL at test time
 * (RSA of several sizes and exponents, P-256, P-384, SM2, Ed25519), SPKIs damaged on purpose
 * (a point off the curve, the point at infinity, explicit curve parameters, BER, trailing bytes),
 * moduli built to carry the ROCA fingerprint, and 100 ordinary OpenSSL keys that must not.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "test_x509_helpers.h"
#include "uk_err.h"
#include "uk_x509.h"

/* The ROCA primes: 3..167 (the first 39 primes without 2). */
#define ROCA_MAX 167u

static tx_keys keys;

static int group_setup(void **state)
{
    (void)state;
    tx_keys_make(&keys);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tx_keys_free(&keys);
    return 0;
}

/* uk_x509_check_new_key on key's SPKI; the info goes to out. */
static int check_key(EVP_PKEY *key, const uk_x509_key_policy *pol, uk_x509_key_info *out)
{
    uint8_t *spki = NULL;
    size_t n = 0;
    tx_spki(key, false, &spki, &n);
    int err = uk_x509_check_new_key(spki, n, pol, out);
    free(spki);
    assert_int_equal(ERR_peek_error(), 0);
    return err;
}

static void assert_rejected(int err, const uk_x509_key_info *info, uk_x509_key_problem problem)
{
    assert_int_equal(err, UK_E_KEY_REJECTED);
    assert_int_equal(info->problem, problem);
    assert_true(info->reason[0] != 0);
    assert_non_null(memchr(info->reason, 0, sizeof(info->reason)));
}

/* An RSA key of bits bits with public exponent e. */
static EVP_PKEY *rsa_with_e(unsigned bits, unsigned long e)
{
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    assert_non_null(pc);
    assert_int_equal(EVP_PKEY_keygen_init(pc), 1);
    BIGNUM *bn = BN_new();
    assert_non_null(bn);
    assert_int_equal(BN_set_word(bn, e), 1);
    assert_true(EVP_PKEY_CTX_set_rsa_keygen_bits(pc, (int)bits) > 0);
    assert_true(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(pc, bn) > 0);
    EVP_PKEY *k = NULL;
    assert_int_equal(EVP_PKEY_keygen(pc, &k), 1);
    BN_free(bn);
    EVP_PKEY_CTX_free(pc);
    return k;
}

/* A public RSA key (no private part) from n and e, as the card would report it. */
static EVP_PKEY *rsa_public(const BIGNUM *n, unsigned long e)
{
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    BIGNUM *be = BN_new();
    assert_non_null(b);
    assert_non_null(be);
    assert_int_equal(BN_set_word(be, e), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be), 1);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
    assert_non_null(params);
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    assert_non_null(pc);
    EVP_PKEY *k = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(pc), 1);
    assert_int_equal(EVP_PKEY_fromdata(pc, &k, EVP_PKEY_PUBLIC_KEY, params), 1);
    EVP_PKEY_CTX_free(pc);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    BN_free(be);
    return k;
}

/* ---- accepted keys ----------------------------------------------------------------------- */

static void test_keycheck_rsa2048_p256_p384_pass_the_default_policy(void **state)
{
    (void)state;
    struct {
        EVP_PKEY *key;
        uk_x509_key_kind kind;
        unsigned bits;
    } cases[] = {
        {keys.rsa, UK_X509_KEY_RSA, 2048},
        {keys.rsa_b, UK_X509_KEY_RSA, 2048},
        {keys.p256, UK_X509_KEY_EC_P256, 256},
        {keys.p384, UK_X509_KEY_EC_P384, 384},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uk_x509_key_info info;
        memset(&info, 0x5a, sizeof(info));
        assert_int_equal(check_key(cases[i].key, NULL, &info), UK_OK);
        assert_int_equal(info.kind, cases[i].kind);
        assert_int_equal(info.bits, cases[i].bits);
        assert_int_equal(info.problem, UK_X509_KEY_OK);
        assert_string_equal(info.reason, "");
    }
}

static void test_keycheck_sm2_needs_the_policy_to_allow_it(void **state)
{
    (void)state;
    uk_x509_key_info info;
    assert_rejected(check_key(keys.sm2, NULL, &info), &info, UK_X509_KEY_KIND_NOT_ALLOWED);
    assert_int_equal(info.kind, UK_X509_KEY_SM2);

    uk_x509_key_policy pol;
    uk_x509_key_policy_init(&pol);
    pol.allowed |= UK_X509_KEY_ALLOW(UK_X509_KEY_SM2);
    assert_int_equal(check_key(keys.sm2, &pol, &info), UK_OK);
    assert_int_equal(info.kind, UK_X509_KEY_SM2);
    assert_int_equal(info.bits, 256);
}

static void test_keycheck_compressed_ec_point_is_accepted(void **state)
{
    (void)state;
    uint8_t *spki = NULL;
    size_t n = 0;
    tx_spki(keys.p256, true, &spki, &n);
    uk_x509_key_info info;
    assert_int_equal(uk_x509_check_new_key(spki, n, NULL, &info), UK_OK);
    assert_int_equal(info.kind, UK_X509_KEY_EC_P256);
    free(spki);
}

/* ---- kinds and curves -------------------------------------------------------------------- */

static void test_keycheck_wrong_curve_is_rejected(void **state)
{
    (void)state;
    uk_x509_key_policy pol;
    uk_x509_key_policy_init(&pol);
    pol.allowed = UK_X509_KEY_ALLOW(UK_X509_KEY_EC_P256); /* the card was asked for P-256 */
    uk_x509_key_info info;
    assert_int_equal(check_key(keys.p256, &pol, &info), UK_OK);
    assert_rejected(check_key(keys.p384, &pol, &info), &info, UK_X509_KEY_KIND_NOT_ALLOWED);
    assert_int_equal(info.kind, UK_X509_KEY_EC_P384);
    assert_rejected(check_key(keys.rsa, &pol, &info), &info, UK_X509_KEY_KIND_NOT_ALLOWED);
    assert_rejected(check_key(keys.sm2, &pol, &info), &info, UK_X509_KEY_KIND_NOT_ALLOWED);
}

static void test_keycheck_other_kinds_are_never_accepted(void **state)
{
    (void)state;
    uk_x509_key_policy pol;
    uk_x509_key_policy_init(&pol);
    pol.allowed = ~0u;
    uk_x509_key_info info;
    assert_rejected(check_key(keys.ed25519, &pol, &info), &info, UK_X509_KEY_KIND_NOT_ALLOWED);
    assert_int_equal(info.kind, UK_X509_KEY_OTHER);

    EVP_PKEY *p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    assert_non_null(p521);
    assert_rejected(check_key(p521, &pol, &info), &info, UK_X509_KEY_KIND_NOT_ALLOWED);
    assert_int_equal(info.kind, UK_X509_KEY_OTHER);
    EVP_PKEY_free(p521);
}

/* ---- RSA size and exponent --------------------------------------------------------------- */

static void test_keycheck_rsa1024_is_rejected(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(k);
    uk_x509_key_info info;
    assert_rejected(check_key(k, NULL, &info), &info, UK_X509_KEY_RSA_SIZE);
    assert_int_equal(info.kind, UK_X509_KEY_RSA);
    assert_int_equal(info.bits, 1024);
    assert_non_null(strstr(info.reason, "1024"));

    /* The bounds are the policy's, both inclusive. */
    uk_x509_key_policy pol;
    uk_x509_key_policy_init(&pol);
    pol.rsa_min_bits = 1024;
    assert_int_equal(check_key(k, &pol, &info), UK_OK);
    pol.rsa_max_bits = 1024;
    assert_rejected(check_key(keys.rsa, &pol, &info), &info, UK_X509_KEY_RSA_SIZE);
    pol.rsa_min_bits = 2048; /* min > max: the policy itself is wrong */
    assert_int_equal(check_key(k, &pol, &info), UK_E_INVALID_PARAMS);
    EVP_PKEY_free(k);
}

static void test_keycheck_rsa_exponent_3_is_rejected(void **state)
{
    (void)state;
    EVP_PKEY *k = rsa_with_e(2048, 3);
    uk_x509_key_info info;
    assert_rejected(check_key(k, NULL, &info), &info, UK_X509_KEY_RSA_EXPONENT);
    assert_non_null(strstr(info.reason, "exponent 3 "));

    /* Even a policy open to other exponents refuses 3 (SP 800-56B: above 2^16). */
    uk_x509_key_policy pol;
    uk_x509_key_policy_init(&pol);
    pol.rsa_any_exponent = true;
    assert_rejected(check_key(k, &pol, &info), &info, UK_X509_KEY_RSA_EXPONENT);
    EVP_PKEY_free(k);
}

static void test_keycheck_rsa_other_exponent_only_when_allowed(void **state)
{
    (void)state;
    EVP_PKEY *k = rsa_with_e(2048, 65539);
    uk_x509_key_info info;
    assert_rejected(check_key(k, NULL, &info), &info, UK_X509_KEY_RSA_EXPONENT);
    uk_x509_key_policy pol;
    uk_x509_key_policy_init(&pol);
    pol.rsa_any_exponent = true;
    assert_int_equal(check_key(k, &pol, &info), UK_OK);
    EVP_PKEY_free(k);

    /* 17 is odd but below 2^16. */
    k = rsa_with_e(2048, 17);
    assert_rejected(check_key(k, &pol, &info), &info, UK_X509_KEY_RSA_EXPONENT);
    EVP_PKEY_free(k);
}

static void test_keycheck_rsa_modulus_with_small_factor_is_rejected(void **state)
{
    (void)state;
    /* n = 3 * (an odd 2046-bit number): 2048 bits, exponent fine, no ROCA fingerprint (n mod 3
     * is 0), but OpenSSL's SP 800-56B check finds the factor. */
    BIGNUM *n = BN_new();
    BN_CTX *bc = BN_CTX_new();
    assert_non_null(n);
    assert_non_null(bc);
    assert_int_equal(BN_rand(n, 2046, BN_RAND_TOP_TWO, BN_RAND_BOTTOM_ODD), 1);
    assert_int_equal(BN_mul_word(n, 3), 1);
    assert_int_equal(BN_num_bits(n), 2048);
    EVP_PKEY *k = rsa_public(n, 65537);
    uk_x509_key_info info;
    assert_rejected(check_key(k, NULL, &info), &info, UK_X509_KEY_RSA_INVALID);
    EVP_PKEY_free(k);

    /* An even modulus too. */
    assert_int_equal(BN_rand(n, 2048, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY), 1);
    assert_int_equal(BN_clear_bit(n, 0), 1);
    k = rsa_public(n, 65537);
    assert_rejected(check_key(k, NULL, &info), &info, UK_X509_KEY_RSA_INVALID);
    EVP_PKEY_free(k);
    BN_CTX_free(bc);
    BN_free(n);
}

/* ---- EC points and parameters ------------------------------------------------------------ */

static void test_keycheck_ec_point_off_curve_is_rejected(void **state)
{
    (void)state;
    EVP_PKEY *const list[] = {keys.p256, keys.p384, keys.sm2};
    uk_x509_key_policy pol;
    uk_x509_key_policy_init(&pol);
    pol.allowed = ~0u;
    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
        uint8_t *spki = NULL;
        size_t n = 0;
        tx_spki(list[i], false, &spki, &n);
        /* The last byte is the low byte of y: flipping it moves the point off the curve. */
        spki[n - 1] ^= 0x01;
        uk_x509_key_info info;
        assert_rejected(uk_x509_check_new_key(spki, n, &pol, &info), &info, UK_X509_KEY_EC_POINT);
        assert_int_equal(ERR_peek_error(), 0);
        /* Damage in x as well. */
        spki[n - 1] ^= 0x01;
        spki[n - 40] ^= 0x80;
        assert_rejected(uk_x509_check_new_key(spki, n, &pol, &info), &info, UK_X509_KEY_EC_POINT);
        free(spki);
    }
}

/* An SPKI with an id-ecPublicKey on curve nid and the given point bytes. */
static void ec_spki_raw(int nid, const uint8_t *point, size_t plen, uint8_t **der, size_t *len)
{
    X509_PUBKEY *xp = X509_PUBKEY_new();
    assert_non_null(xp);
    uint8_t *copy = OPENSSL_malloc(plen);
    assert_non_null(copy);
    memcpy(copy, point, plen);
    assert_int_equal(X509_PUBKEY_set0_param(xp, OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
                                            V_ASN1_OBJECT, OBJ_nid2obj(nid), copy, (int)plen),
                     1);
    unsigned char *out = NULL;
    int n = i2d_X509_PUBKEY(xp, &out);
    assert_true(n > 0);
    *der = malloc((size_t)n);
    assert_non_null(*der);
    memcpy(*der, out, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(out);
    X509_PUBKEY_free(xp);
}

static void test_keycheck_ec_point_at_infinity_is_rejected(void **state)
{
    (void)state;
    const uint8_t infinity[] = {0x00};
    uint8_t *spki = NULL;
    size_t n = 0;
    ec_spki_raw(NID_X9_62_prime256v1, infinity, sizeof(infinity), &spki, &n);
    uk_x509_key_info info;
    assert_rejected(uk_x509_check_new_key(spki, n, NULL, &info), &info, UK_X509_KEY_EC_POINT);
    assert_int_equal(ERR_peek_error(), 0);
    free(spki);
}

static void test_keycheck_ec_explicit_parameters_are_rejected(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_PKEY_dup(keys.p256);
    assert_non_null(k);
    assert_int_equal(EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_ENCODING,
                                                    OSSL_PKEY_EC_ENCODING_EXPLICIT),
                     1);
    uk_x509_key_info info;
    assert_rejected(check_key(k, NULL, &info), &info, UK_X509_KEY_EC_PARAMS);
    EVP_PKEY_free(k);
}

/* ---- malformed SPKIs --------------------------------------------------------------------- */

static void test_keycheck_malformed_spki_is_key_rejected(void **state)
{
    (void)state;
    uint8_t *spki = NULL;
    size_t n = 0;
    tx_spki(keys.rsa, false, &spki, &n);
    uk_x509_key_info info;

    assert_rejected(uk_x509_check_new_key(spki, 0, NULL, &info), &info, UK_X509_KEY_MALFORMED);
    assert_rejected(uk_x509_check_new_key(NULL, 0, NULL, &info), &info, UK_X509_KEY_MALFORMED);
    for (size_t cut = 1; cut < n; cut += 7)
        assert_rejected(uk_x509_check_new_key(spki, cut, NULL, &info), &info,
                        UK_X509_KEY_MALFORMED);
    assert_int_equal(ERR_peek_error(), 0);

    /* One byte after it. */
    uint8_t *longer = malloc(n + 1);
    assert_non_null(longer);
    memcpy(longer, spki, n);
    longer[n] = 0;
    assert_rejected(uk_x509_check_new_key(longer, n + 1, NULL, &info), &info,
                    UK_X509_KEY_MALFORMED);

    /* BER: the outer length in a non-minimal long form (30 82 01 22 -> 30 83 00 01 22). */
    assert_int_equal(spki[0], 0x30);
    assert_int_equal(spki[1], 0x82);
    uint8_t *ber = malloc(n + 1);
    assert_non_null(ber);
    ber[0] = 0x30;
    ber[1] = 0x83;
    ber[2] = 0x00;
    memcpy(ber + 3, spki + 2, n - 2);
    assert_rejected(uk_x509_check_new_key(ber, n + 1, NULL, &info), &info, UK_X509_KEY_MALFORMED);

    /* Random bytes. */
    uint64_t seed = 0x5eed;
    uint8_t junk[300];
    for (int i = 0; i < 200; i++) {
        tx_prng_fill(&seed, junk, sizeof(junk));
        size_t len = 1 + (size_t)(junk[0] % sizeof(junk));
        assert_rejected(uk_x509_check_new_key(junk, len, NULL, &info), &info,
                        UK_X509_KEY_MALFORMED);
    }
    assert_int_equal(ERR_peek_error(), 0);
    free(ber);
    free(longer);
    free(spki);
}

static void test_keycheck_bad_arguments(void **state)
{
    (void)state;
    uint8_t b = 0x30;
    uk_x509_key_info info;
    assert_int_equal(uk_x509_check_new_key(&b, 1, NULL, NULL), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_check_new_key(NULL, 1, NULL, &info), UK_E_INVALID_PARAMS);
    uk_x509_key_policy_init(NULL); /* NULL-safe */
    assert_string_equal(uk_x509_key_kind_name(UK_X509_KEY_SM2), "SM2");
    assert_string_equal(uk_x509_key_kind_name(UK_X509_KEY_OTHER), "other");
    assert_false(uk_x509_rsa_roca_fingerprint(NULL, 0));
}

/* ---- ROCA -------------------------------------------------------------------------------- */

/* M: the product of the primes 2..167, as in RSALib's smallest keys. */
static BIGNUM *primorial(void)
{
    BIGNUM *m = BN_new();
    assert_non_null(m);
    assert_int_equal(BN_one(m), 1);
    for (unsigned p = 2; p <= ROCA_MAX; p++) {
        bool prime = true;
        for (unsigned d = 2; d * d <= p; d++)
            prime = prime && p % d != 0;
        if (prime)
            assert_int_equal(BN_mul_word(m, p), 1);
    }
    return m;
}

/* k * M + (65537^a mod M): the shape of RSALib's primes (primality does not matter here). */
static BIGNUM *roca_shaped(const BIGNUM *m, unsigned long a, int k_bits, BN_CTX *bc)
{
    BIGNUM *g = BN_new();
    BIGNUM *ea = BN_new();
    BIGNUM *k = BN_new();
    BIGNUM *r = BN_new();
    assert_true(g != NULL && ea != NULL && k != NULL && r != NULL);
    assert_int_equal(BN_set_word(g, 65537), 1);
    assert_int_equal(BN_set_word(ea, a), 1);
    assert_int_equal(BN_mod_exp(r, g, ea, m, bc), 1);
    assert_int_equal(BN_rand(k, k_bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY), 1);
    assert_int_equal(BN_mul(k, k, m, bc), 1);
    assert_int_equal(BN_add(r, r, k), 1);
    BN_free(g);
    BN_free(ea);
    BN_free(k);
    return r;
}

/* The fingerprint of n through the function under test. */
static bool fingerprint_bn(const BIGNUM *n)
{
    int len = BN_num_bytes(n);
    uint8_t *b = malloc((size_t)len);
    assert_non_null(b);
    assert_int_equal(BN_bn2bin(n, b), len);
    bool r = uk_x509_rsa_roca_fingerprint(b, (size_t)len);
    free(b);
    return r;
}

/* Independently of the code under test: whether x mod p lies in <65537 mod p>, by brute force. */
static bool in_subgroup(BN_ULONG x, unsigned p)
{
    unsigned g = 65537u % p;
    unsigned y = 1;
    for (unsigned i = 0; i < p; i++) {
        if (y == x % p)
            return true;
        y = y * g % p;
    }
    return false;
}

static void test_roca_fingerprint_found_in_rsalib_shaped_moduli(void **state)
{
    (void)state;
    BN_CTX *bc = BN_CTX_new();
    assert_non_null(bc);
    BIGNUM *m = primorial();
    assert_int_equal(BN_num_bits(m), 220);
    BIGNUM *n = BN_new();
    assert_non_null(n);
    for (unsigned long i = 0; i < 40; i++) {
        /* 1024-bit-ish p and q (k of 800 bits), exponents a spread over a wide range. */
        BIGNUM *p = roca_shaped(m, 12345 + i * 7919, 800, bc);
        BIGNUM *q = roca_shaped(m, 999 + i * 104729, 800, bc);
        assert_true(fingerprint_bn(p));
        assert_true(fingerprint_bn(q));
        assert_int_equal(BN_mul(n, p, q, bc), 1);
        assert_true(fingerprint_bn(n));
        BN_free(p);
        BN_free(q);
    }
    BN_free(n);
    BN_free(m);
    BN_CTX_free(bc);
}

static void test_roca_fingerprint_needs_every_prime(void **state)
{
    (void)state;
    BN_CTX *bc = BN_CTX_new();
    assert_non_null(bc);
    BIGNUM *m = primorial();
    BIGNUM *n = roca_shaped(m, 4242, 1800, bc);
    assert_true(fingerprint_bn(n));
    /* Change N mod one prime only (add t * M / p): flagged exactly when the new residue is in
     * the subgroup, checked by brute force here. */
    const unsigned primes[] = {3, 11, 37, 97, 151, 167};
    BIGNUM *step = BN_new();
    BIGNUM *moved = BN_new();
    assert_non_null(step);
    assert_non_null(moved);
    for (size_t i = 0; i < sizeof(primes) / sizeof(primes[0]); i++) {
        unsigned p = primes[i];
        unsigned flagged = 0;
        unsigned clean = 0;
        for (unsigned t = 1; t < p; t++) {
            assert_non_null(BN_copy(step, m));
            assert_true(BN_div_word(step, p) == 0);
            assert_int_equal(BN_mul_word(step, t), 1);
            assert_int_equal(BN_add(moved, n, step), 1);
            BN_ULONG r = BN_mod_word(moved, p);
            bool expect = in_subgroup(r, p) && r != 0;
            assert_int_equal(fingerprint_bn(moved), expect);
            if (expect)
                flagged++;
            else
                clean++;
        }
        assert_true(clean > 0);
        (void)flagged;
    }
    BN_free(moved);
    BN_free(step);
    BN_free(n);
    BN_free(m);
    BN_CTX_free(bc);
}

static void test_keycheck_roca_modulus_is_rejected(void **state)
{
    (void)state;
    BN_CTX *bc = BN_CTX_new();
    assert_non_null(bc);
    BIGNUM *m = primorial();
    BIGNUM *n = BN_new();
    assert_non_null(n);
    /* p, q of about 1024 bits (k of 805 bits times M of about 2^219.2); retry until N has 2048
     * bits. */
    for (unsigned long a = 31337; BN_num_bits(n) != 2048; a++) {
        BIGNUM *p = roca_shaped(m, a, 805, bc);
        BIGNUM *q = roca_shaped(m, a * 3, 805, bc);
        assert_int_equal(BN_mul(n, p, q, bc), 1);
        BN_free(p);
        BN_free(q);
        assert_true(a < 31337 + 1000);
    }
    EVP_PKEY *k = rsa_public(n, 65537);
    uk_x509_key_info info;
    assert_rejected(check_key(k, NULL, &info), &info, UK_X509_KEY_RSA_ROCA);
    assert_int_equal(info.bits, 2048);
    assert_non_null(strstr(info.reason, "ROCA"));
    EVP_PKEY_free(k);
    BN_free(n);
    BN_free(m);
    BN_CTX_free(bc);
}

static void test_roca_fingerprint_absent_from_100_openssl_keys(void **state)
{
    (void)state;
    /* 1024-bit keys keep the test fast; the fingerprint does not depend on the size. The whole
     * check runs on each (policy lowered to 1024 bits), so OpenSSL's SP 800-56B check too. */
    uk_x509_key_policy pol;
    uk_x509_key_policy_init(&pol);
    pol.rsa_min_bits = 1024;
    for (int i = 0; i < 100; i++) {
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
        assert_non_null(k);
        BIGNUM *n = NULL;
        assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n), 1);
        assert_false(fingerprint_bn(n));
        uk_x509_key_info info;
        assert_int_equal(check_key(k, &pol, &info), UK_OK);
        BN_free(n);
        EVP_PKEY_free(k);
    }
    /* And the two 2048-bit keys of the fixture. */
    EVP_PKEY *const big[] = {keys.rsa, keys.rsa_b};
    for (size_t i = 0; i < 2; i++) {
        BIGNUM *n = NULL;
        assert_int_equal(EVP_PKEY_get_bn_param(big[i], OSSL_PKEY_PARAM_RSA_N, &n), 1);
        assert_false(fingerprint_bn(n));
        BN_free(n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keycheck_rsa2048_p256_p384_pass_the_default_policy),
        cmocka_unit_test(test_keycheck_sm2_needs_the_policy_to_allow_it),
        cmocka_unit_test(test_keycheck_compressed_ec_point_is_accepted),
        cmocka_unit_test(test_keycheck_wrong_curve_is_rejected),
        cmocka_unit_test(test_keycheck_other_kinds_are_never_accepted),
        cmocka_unit_test(test_keycheck_rsa1024_is_rejected),
        cmocka_unit_test(test_keycheck_rsa_exponent_3_is_rejected),
        cmocka_unit_test(test_keycheck_rsa_other_exponent_only_when_allowed),
        cmocka_unit_test(test_keycheck_rsa_modulus_with_small_factor_is_rejected),
        cmocka_unit_test(test_keycheck_ec_point_off_curve_is_rejected),
        cmocka_unit_test(test_keycheck_ec_point_at_infinity_is_rejected),
        cmocka_unit_test(test_keycheck_ec_explicit_parameters_are_rejected),
        cmocka_unit_test(test_keycheck_malformed_spki_is_key_rejected),
        cmocka_unit_test(test_keycheck_bad_arguments),
        cmocka_unit_test(test_roca_fingerprint_found_in_rsalib_shaped_moduli),
        cmocka_unit_test(test_roca_fingerprint_needs_every_prime),
        cmocka_unit_test(test_keycheck_roca_modulus_is_rejected),
        cmocka_unit_test(test_roca_fingerprint_absent_from_100_openssl_keys),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
