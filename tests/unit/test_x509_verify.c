/*
 * uk_x509_spki_match, uk_x509_verify_signature, uk_x509_verify_digest and uk_x509_digest:
 * positive and negative cases for every algorithm (RSA PKCS#1 v1.5 and PSS, ECDSA P-256/P-384,
 * SM2 with the right and the wrong distinguishing ID), signatures made with EVP and with the
 * openssl CLI, known digest vectors, and concurrent use of one info from several threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "test_x509_helpers.h"
#include "uk_err.h"
#include "uk_x509.h"

static tx_keys keys;

static const tx_attr subject[] = {{"CN", "张三", false, 0, 0}, {NULL, NULL, false, 0, 0}};

static const uint8_t message[] = "医保电子凭证 renewal request 2026-11-24";

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

static uk_cert_info *cert_of(EVP_PKEY *key)
{
    tx_spec s = {.key = key, .subject = subject};
    return tx_cert_info(&s);
}

/* ---- SPKI matching ----------------------------------------------------------------------- */

static void test_x509_spki_match_own_key_matches(void **state)
{
    (void)state;
    EVP_PKEY *const list[] = {keys.rsa, keys.p256, keys.p384, keys.sm2, keys.ed25519};
    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
        uk_cert_info *c = cert_of(list[i]);
        uint8_t *spki = NULL;
        size_t n = 0;
        tx_spki(list[i], false, &spki, &n);
        assert_int_equal(uk_x509_spki_match(c, spki, n), UK_OK);
        assert_int_equal(uk_x509_spki_match(c, c->spki, c->spki_len), UK_OK);
        assert_int_equal(ERR_peek_error(), 0);
        free(spki);
        uk_cert_info_free(c);
    }
}

static void test_x509_spki_match_compressed_point_matches(void **state)
{
    (void)state;
    uk_cert_info *c = cert_of(keys.p256);
    uint8_t *spki = NULL;
    size_t n = 0;
    tx_spki(keys.p256, true, &spki, &n);
    assert_int_not_equal(n, c->spki_len); /* other bytes, same key */
    assert_int_equal(uk_x509_spki_match(c, spki, n), UK_OK);
    free(spki);
    uk_cert_info_free(c);
}

static void test_x509_spki_match_other_key_does_not_match(void **state)
{
    (void)state;
    uk_cert_info *c = cert_of(keys.p256);
    EVP_PKEY *const others[] = {keys.p256_b, keys.p384, keys.rsa, keys.sm2, keys.ed25519};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        uint8_t *spki = NULL;
        size_t n = 0;
        tx_spki(others[i], false, &spki, &n);
        assert_int_equal(uk_x509_spki_match(c, spki, n), UK_E_CERT_KEY_MISMATCH);
        free(spki);
    }
    uk_cert_info_free(c);

    c = cert_of(keys.rsa);
    uint8_t *spki = NULL;
    size_t n = 0;
    tx_spki(keys.rsa_b, false, &spki, &n);
    assert_int_equal(uk_x509_spki_match(c, spki, n), UK_E_CERT_KEY_MISMATCH);
    free(spki);
    uk_cert_info_free(c);
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_x509_spki_match_malformed_input_fails_closed(void **state)
{
    (void)state;
    uk_cert_info *c = cert_of(keys.sm2);
    uint8_t *buf = malloc(c->spki_len + 1);
    assert_non_null(buf);
    memcpy(buf, c->spki, c->spki_len);
    for (size_t n = 1; n < c->spki_len; n++)
        assert_int_equal(uk_x509_spki_match(c, buf, n), UK_E_CERT_KEY_MISMATCH);
    buf[c->spki_len] = 0;
    assert_int_equal(uk_x509_spki_match(c, buf, c->spki_len + 1), UK_E_CERT_KEY_MISMATCH);
    assert_int_equal(uk_x509_spki_match(c, buf, 0), UK_E_CERT_KEY_MISMATCH);
    assert_int_equal(uk_x509_spki_match(c, c->der, c->der_len), UK_E_CERT_KEY_MISMATCH);
    assert_int_equal(uk_x509_spki_match(c, NULL, 3), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_spki_match(NULL, buf, c->spki_len), UK_E_INVALID_PARAMS);
    assert_int_equal(ERR_peek_error(), 0);
    free(buf);
    uk_cert_info_free(c);
}

/* ---- signatures -------------------------------------------------------------------------- */

struct sig_case {
    const char *name;
    EVP_PKEY **key;
    uk_x509_sig_alg alg;
};

static const struct sig_case sig_cases[] = {
    {"RSA PKCS#1 SHA-256", &keys.rsa, UK_X509_SIG_RSA_PKCS1_SHA256},
    {"RSA PKCS#1 SHA-384", &keys.rsa, UK_X509_SIG_RSA_PKCS1_SHA384},
    {"RSA PKCS#1 SHA-512", &keys.rsa, UK_X509_SIG_RSA_PKCS1_SHA512},
    {"RSA PSS SHA-256", &keys.rsa, UK_X509_SIG_RSA_PSS_SHA256},
    {"RSA PSS SHA-384", &keys.rsa, UK_X509_SIG_RSA_PSS_SHA384},
    {"RSA PSS SHA-512", &keys.rsa, UK_X509_SIG_RSA_PSS_SHA512},
    {"ECDSA P-256 SHA-256", &keys.p256, UK_X509_SIG_ECDSA_SHA256},
    {"ECDSA P-256 SHA-384", &keys.p256, UK_X509_SIG_ECDSA_SHA384},
    {"ECDSA P-256 SHA-512", &keys.p256, UK_X509_SIG_ECDSA_SHA512},
    {"ECDSA P-384 SHA-384", &keys.p384, UK_X509_SIG_ECDSA_SHA384},
    {"ECDSA P-384 SHA-256", &keys.p384, UK_X509_SIG_ECDSA_SHA256},
    {"SM2 SM3", &keys.sm2, UK_X509_SIG_SM2_SM3},
};

#define N_SIG_CASES (sizeof(sig_cases) / sizeof(sig_cases[0]))

static void test_x509_verify_signature_accepts_good_and_rejects_tampered(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SIG_CASES; i++) {
        const struct sig_case *t = &sig_cases[i];
        print_message("%s\n", t->name);
        uk_cert_info *c = cert_of(*t->key);
        uint8_t *sig = NULL;
        size_t sl = 0;
        tx_sign(*t->key, t->alg, NULL, message, sizeof(message), &sig, &sl);
        assert_int_equal(uk_x509_verify_signature(c, message, sizeof(message), sig, sl, t->alg),
                         UK_OK);

        uint8_t data[sizeof(message)];
        memcpy(data, message, sizeof(data));
        data[3] ^= 0x01;
        assert_int_equal(uk_x509_verify_signature(c, data, sizeof(data), sig, sl, t->alg),
                         UK_E_SIGNATURE_INVALID);
        assert_int_equal(uk_x509_verify_signature(c, message, sizeof(message) - 1, sig, sl, t->alg),
                         UK_E_SIGNATURE_INVALID);
        sig[sl / 2] ^= 0x40;
        assert_int_equal(uk_x509_verify_signature(c, message, sizeof(message), sig, sl, t->alg),
                         UK_E_SIGNATURE_INVALID);
        sig[sl / 2] ^= 0x40;
        assert_int_equal(uk_x509_verify_signature(c, message, sizeof(message), sig, sl - 1, t->alg),
                         UK_E_SIGNATURE_INVALID);
        assert_int_equal(uk_x509_verify_signature(c, message, sizeof(message), NULL, 0, t->alg),
                         UK_E_SIGNATURE_INVALID);
        assert_int_equal(ERR_peek_error(), 0);
        free(sig);
        uk_cert_info_free(c);
    }
}

static void test_x509_verify_signature_of_empty_message(void **state)
{
    (void)state;
    uk_cert_info *c = cert_of(keys.p256);
    uint8_t *sig = NULL;
    size_t sl = 0;
    tx_sign(keys.p256, UK_X509_SIG_ECDSA_SHA256, NULL, (const uint8_t *)"", 0, &sig, &sl);
    assert_int_equal(uk_x509_verify_signature(c, NULL, 0, sig, sl, UK_X509_SIG_ECDSA_SHA256),
                     UK_OK);
    free(sig);
    uk_cert_info_free(c);
}

static void test_x509_verify_signature_wrong_scheme_or_hash_is_invalid(void **state)
{
    (void)state;
    uk_cert_info *c = cert_of(keys.rsa);
    uint8_t *sig = NULL;
    size_t sl = 0;
    tx_sign(keys.rsa, UK_X509_SIG_RSA_PKCS1_SHA256, NULL, message, sizeof(message), &sig, &sl);
    assert_int_equal(
        uk_x509_verify_signature(c, message, sizeof(message), sig, sl, UK_X509_SIG_RSA_PSS_SHA256),
        UK_E_SIGNATURE_INVALID);
    assert_int_equal(uk_x509_verify_signature(c, message, sizeof(message), sig, sl,
                                              UK_X509_SIG_RSA_PKCS1_SHA384),
                     UK_E_SIGNATURE_INVALID);
    free(sig);
    uk_cert_info_free(c);

    /* A signature by another key of the same type. */
    c = cert_of(keys.p256);
    tx_sign(keys.p256_b, UK_X509_SIG_ECDSA_SHA256, NULL, message, sizeof(message), &sig, &sl);
    assert_int_equal(
        uk_x509_verify_signature(c, message, sizeof(message), sig, sl, UK_X509_SIG_ECDSA_SHA256),
        UK_E_SIGNATURE_INVALID);
    free(sig);
    uk_cert_info_free(c);
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_x509_verify_signature_alg_that_does_not_fit_the_key(void **state)
{
    (void)state;
    static const uint8_t junk[64] = {0x30};
    const struct {
        EVP_PKEY **key;
        uk_x509_sig_alg alg;
    } cases[] = {
        {&keys.rsa, UK_X509_SIG_ECDSA_SHA256},      {&keys.rsa, UK_X509_SIG_SM2_SM3},
        {&keys.p256, UK_X509_SIG_RSA_PKCS1_SHA256}, {&keys.p256, UK_X509_SIG_SM2_SM3},
        {&keys.sm2, UK_X509_SIG_ECDSA_SHA256},      {&keys.sm2, UK_X509_SIG_RSA_PSS_SHA256},
        {&keys.ed25519, UK_X509_SIG_ECDSA_SHA256},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uk_cert_info *c = cert_of(*cases[i].key);
        assert_int_equal(
            uk_x509_verify_signature(c, message, sizeof(message), junk, sizeof(junk), cases[i].alg),
            UK_E_NOT_SUPPORTED);
        uk_cert_info_free(c);
    }
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_x509_verify_signature_sm2_needs_the_gmt_id(void **state)
{
    (void)state;
    uk_cert_info *c = cert_of(keys.sm2);
    uint8_t *sig = NULL;
    size_t sl = 0;
    /* OpenSSL's default: the empty ID. Not what cards and CAs use: invalid here. */
    tx_sign(keys.sm2, UK_X509_SIG_SM2_SM3, "", message, sizeof(message), &sig, &sl);
    assert_int_equal(
        uk_x509_verify_signature(c, message, sizeof(message), sig, sl, UK_X509_SIG_SM2_SM3),
        UK_E_SIGNATURE_INVALID);
    free(sig);
    tx_sign(keys.sm2, UK_X509_SIG_SM2_SM3, "1234567812345678", message, sizeof(message), &sig, &sl);
    assert_int_equal(
        uk_x509_verify_signature(c, message, sizeof(message), sig, sl, UK_X509_SIG_SM2_SM3), UK_OK);
    free(sig);
    tx_sign(keys.sm2, UK_X509_SIG_SM2_SM3, "ALICE123@YAHOO.COM", message, sizeof(message), &sig,
            &sl);
    assert_int_equal(
        uk_x509_verify_signature(c, message, sizeof(message), sig, sl, UK_X509_SIG_SM2_SM3),
        UK_E_SIGNATURE_INVALID);
    free(sig);
    uk_cert_info_free(c);
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_x509_verify_signature_rejects_bad_arguments(void **state)
{
    (void)state;
    uk_cert_info *c = cert_of(keys.p256);
    uint8_t sig[8] = {0};
    assert_int_equal(uk_x509_verify_signature(NULL, message, 1, sig, 8, UK_X509_SIG_ECDSA_SHA256),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_verify_signature(c, NULL, 1, sig, 8, UK_X509_SIG_ECDSA_SHA256),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_verify_signature(c, message, 1, NULL, 8, UK_X509_SIG_ECDSA_SHA256),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_verify_signature(c, message, 1, sig, 8, (uk_x509_sig_alg)99),
                     UK_E_INVALID_PARAMS);
    uk_cert_info_free(c);
}

/* ---- signatures made by the openssl CLI ------------------------------------------------- */

static void write_key(const char *path, EVP_PKEY *key)
{
    BIO *b = BIO_new_file(path, "w");
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL), 1);
    BIO_free(b);
}

static void cli_case(const char *dir, EVP_PKEY *key, const char *opts, uk_x509_sig_alg alg)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/k.pem", dir);
    write_key(path, key);
    assert_int_equal(tx_run(NULL, 0,
                            "cd '%s' && openssl pkeyutl -sign -inkey k.pem -rawin -in msg %s "
                            "-out sig 2>/dev/null",
                            dir, opts),
                     0);
    snprintf(path, sizeof(path), "%s/sig", dir);
    size_t sl = 0;
    uint8_t *sig = tx_read_file(path, &sl);
    uk_cert_info *c = cert_of(key);
    assert_int_equal(uk_x509_verify_signature(c, message, sizeof(message), sig, sl, alg), UK_OK);
    sig[sl - 1] ^= 0x01;
    assert_int_equal(uk_x509_verify_signature(c, message, sizeof(message), sig, sl, alg),
                     UK_E_SIGNATURE_INVALID);
    uk_cert_info_free(c);
    free(sig);
}

static void test_x509_verify_signature_made_by_openssl_cli(void **state)
{
    (void)state;
    if (!tx_have_openssl_cli())
        skip();
    char dir[128];
    char path[256];
    tx_tmpdir_make(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/msg", dir);
    tx_write_file(path, message, sizeof(message));
    cli_case(dir, keys.rsa, "-digest sha256", UK_X509_SIG_RSA_PKCS1_SHA256);
    cli_case(dir, keys.rsa,
             "-digest sha384 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest",
             UK_X509_SIG_RSA_PSS_SHA384);
    cli_case(dir, keys.rsa,
             "-digest sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt "
             "rsa_pss_saltlen:max",
             UK_X509_SIG_RSA_PSS_SHA256);
    cli_case(dir, keys.p256, "-digest sha256", UK_X509_SIG_ECDSA_SHA256);
    cli_case(dir, keys.p384, "-digest sha384", UK_X509_SIG_ECDSA_SHA384);
    cli_case(dir, keys.sm2, "-digest sm3 -pkeyopt distid:1234567812345678", UK_X509_SIG_SM2_SM3);
    tx_tmpdir_remove(dir);
}

/* ---- signatures over a digest ------------------------------------------------------------ */

static void test_x509_verify_digest_every_algorithm(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SIG_CASES; i++) {
        const struct sig_case *t = &sig_cases[i];
        print_message("%s\n", t->name);
        uk_cert_info *c = cert_of(*t->key);
        uk_x509_digest_alg d;
        assert_true(uk_x509_sig_alg_digest(t->alg, &d));
        uint8_t dg[UK_X509_DIGEST_MAX];
        size_t dn = sizeof(dg);
        assert_int_equal(uk_x509_digest(d, message, sizeof(message), dg, &dn), UK_OK);

        uint8_t *sig = NULL;
        size_t sl = 0;
        tx_sign_digest(*t->key, t->alg, dg, dn, &sig, &sl);
        assert_int_equal(uk_x509_verify_digest(c, dg, dn, sig, sl, t->alg), UK_OK);
        dg[0] ^= 0x80;
        assert_int_equal(uk_x509_verify_digest(c, dg, dn, sig, sl, t->alg), UK_E_SIGNATURE_INVALID);
        dg[0] ^= 0x80;
        assert_int_equal(uk_x509_verify_digest(c, dg, dn - 1, sig, sl, t->alg),
                         UK_E_INVALID_PARAMS);
        free(sig);

        /* For RSA and ECDSA a signature over the message verifies over its digest too. */
        if (t->alg != UK_X509_SIG_SM2_SM3) {
            tx_sign(*t->key, t->alg, NULL, message, sizeof(message), &sig, &sl);
            assert_int_equal(uk_x509_verify_digest(c, dg, dn, sig, sl, t->alg), UK_OK);
            free(sig);
        }
        assert_int_equal(ERR_peek_error(), 0);
        uk_cert_info_free(c);
    }
}

/* ---- digests ----------------------------------------------------------------------------- */

static void hex_of(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void test_x509_digest_known_vectors(void **state)
{
    (void)state;
    static const struct {
        uk_x509_digest_alg alg;
        const char *in;
        const char *hex;
    } v[] = {
        {UK_X509_DIGEST_SHA256, "abc",
         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {UK_X509_DIGEST_SHA256, "",
         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {UK_X509_DIGEST_SHA384, "abc",
         "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
         "8086072ba1e7cc2358baeca134c825a7"},
        {UK_X509_DIGEST_SHA512, "abc",
         "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
         "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
        /* GM/T 0004-2012 appendix A, example 1 */
        {UK_X509_DIGEST_SM3, "abc",
         "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint8_t out[UK_X509_DIGEST_MAX];
        size_t n = sizeof(out);
        size_t in_len = strlen(v[i].in);
        assert_int_equal(
            uk_x509_digest(v[i].alg, in_len > 0 ? (const uint8_t *)v[i].in : NULL, in_len, out, &n),
            UK_OK);
        assert_int_equal(n, uk_x509_digest_len(v[i].alg));
        char hex[2 * UK_X509_DIGEST_MAX + 1];
        hex_of(out, n, hex);
        assert_string_equal(hex, v[i].hex);
    }
}

static void test_x509_digest_rejects_small_buffer_and_unknown_alg(void **state)
{
    (void)state;
    uint8_t out[UK_X509_DIGEST_MAX];
    size_t n = 47;
    assert_int_equal(uk_x509_digest(UK_X509_DIGEST_SHA384, message, 3, out, &n),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(n, 47);
    n = sizeof(out);
    assert_int_equal(uk_x509_digest((uk_x509_digest_alg)9, message, 3, out, &n),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_digest(UK_X509_DIGEST_SM3, NULL, 3, out, &n), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_digest(UK_X509_DIGEST_SM3, message, 3, NULL, &n), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_digest(UK_X509_DIGEST_SM3, message, 3, out, NULL),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_digest_len((uk_x509_digest_alg)9), 0);
    assert_false(uk_x509_sig_alg_digest((uk_x509_sig_alg)99, NULL));
    uk_x509_digest_alg d;
    assert_true(uk_x509_sig_alg_digest(UK_X509_SIG_RSA_PSS_SHA512, &d));
    assert_int_equal(d, UK_X509_DIGEST_SHA512);
    assert_true(uk_x509_sig_alg_digest(UK_X509_SIG_SM2_SM3, &d));
    assert_int_equal(d, UK_X509_DIGEST_SM3);
}

/* ---- threads ----------------------------------------------------------------------------- */

struct shared {
    const uk_cert_info *c;
    const uint8_t *sig;
    size_t sl;
    int failures;
};

static void *worker(void *arg)
{
    struct shared *s = arg;
    int bad = 0;
    for (int i = 0; i < 50; i++) {
        uk_cert_status st;
        uk_cert_info *again = NULL;
        if (uk_x509_verify_signature(s->c, message, sizeof(message), s->sig, s->sl,
                                     UK_X509_SIG_SM2_SM3) != UK_OK ||
            uk_x509_spki_match(s->c, s->c->spki, s->c->spki_len) != UK_OK ||
            uk_x509_status(s->c, TX_NOT_BEFORE, 30, &st) != UK_OK ||
            uk_x509_parse(s->c->der, s->c->der_len, &again) != UK_OK)
            bad++;
        uk_cert_info_free(again);
    }
    return (void *)(intptr_t)bad;
}

static void test_x509_one_info_used_from_several_threads(void **state)
{
    (void)state;
    uk_cert_info *c = cert_of(keys.sm2);
    struct shared s = {.c = c};
    uint8_t *sig = NULL;
    tx_sign(keys.sm2, UK_X509_SIG_SM2_SM3, NULL, message, sizeof(message), &sig, &s.sl);
    s.sig = sig;
    pthread_t t[4];
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, &s), 0);
    for (size_t i = 0; i < 4; i++) {
        void *r = NULL;
        assert_int_equal(pthread_join(t[i], &r), 0);
        assert_int_equal((intptr_t)r, 0);
    }
    free(sig);
    uk_cert_info_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x509_spki_match_own_key_matches),
        cmocka_unit_test(test_x509_spki_match_compressed_point_matches),
        cmocka_unit_test(test_x509_spki_match_other_key_does_not_match),
        cmocka_unit_test(test_x509_spki_match_malformed_input_fails_closed),
        cmocka_unit_test(test_x509_verify_signature_accepts_good_and_rejects_tampered),
        cmocka_unit_test(test_x509_verify_signature_of_empty_message),
        cmocka_unit_test(test_x509_verify_signature_wrong_scheme_or_hash_is_invalid),
        cmocka_unit_test(test_x509_verify_signature_alg_that_does_not_fit_the_key),
        cmocka_unit_test(test_x509_verify_signature_sm2_needs_the_gmt_id),
        cmocka_unit_test(test_x509_verify_signature_rejects_bad_arguments),
        cmocka_unit_test(test_x509_verify_signature_made_by_openssl_cli),
        cmocka_unit_test(test_x509_verify_digest_every_algorithm),
        cmocka_unit_test(test_x509_digest_known_vectors),
        cmocka_unit_test(test_x509_digest_rejects_small_buffer_and_unknown_alg),
        cmocka_unit_test(test_x509_one_info_used_from_several_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
