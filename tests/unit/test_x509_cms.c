/*
 * uk_x509_cms_*: SignedData built around a signature made as a card would make it (the test signs
 * the returned digest with the private key, EVP_PKEY_sign on the digest), for RSA-2048 and P-256
 * with SHA-256/384/512, attached and detached; checked by uk_x509_cms_verify and independently by
 * `openssl cms -verify -noverify`. A signature of another key, or of other bytes, is
 * SIGNATURE_INVALID at finish; tampered content and garbage are refused by verify.
 * EnvelopedData from `openssl cms -encrypt` (AES, 3DES; RSA next to EC and other RSA recipients)
 * and ECDH (P-256; SHA-256 and SHA-384 KDF; next to RSA recipients) opened with what a card would
 * give (the raw RSA result, the ECDH secret); RSA-OAEP is NOT_SUPPORTED, an envelope for other
 * keys DECRYPT_FAILED, a wrong secret DECRYPT_FAILED.
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

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "test_x509_helpers.h"
#include "uk_err.h"
#include "uk_x509.h"

static tx_keys keys;

static const tx_attr subject[] = {
    {"C", "CN", false, 0, 0},
    {"O", "国家医疗保障局", false, 0, 0},
    {"CN", "张三", false, 0, 0},
    {NULL, NULL, false, 0, 0},
};

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

/* A SignedData of data by key (its certificate self-signed), signed by signer_key. */
static int make_cms(EVP_PKEY *key, EVP_PKEY *signer_key, uk_x509_digest_alg d, bool detached,
                    const uint8_t *data, size_t n, uk_cert_info **cert_out, uint8_t **der,
                    size_t *der_len)
{
    tx_spec s = {.key = key, .subject = subject};
    uk_cert_info *cert = tx_cert_info(&s);
    uk_x509_cms_sign_req req = {.signer = cert,
                                .digest = d,
                                .data = data,
                                .data_len = n,
                                .detached = detached,
                                .signing_time = TX_NOT_BEFORE + 86400};
    uk_x509_cms_sign *st = NULL;
    uk_x509_sig_alg alg;
    uint8_t tbs[UK_X509_DIGEST_MAX];
    size_t tbs_len = sizeof(tbs);
    assert_int_equal(uk_x509_cms_sign_begin(&req, &st, &alg, tbs, &tbs_len), UK_OK);
    assert_int_equal(tbs_len, uk_x509_digest_len(d));
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    tx_sign_digest(signer_key, alg, tbs, tbs_len, &sig, &sig_len);
    int rc = uk_x509_cms_sign_finish(st, sig, sig_len, der, der_len);
    free(sig);
    uk_x509_cms_sign_free(st);
    if (cert_out != NULL)
        *cert_out = cert;
    else
        uk_cert_info_free(cert);
    return rc;
}

/* `openssl cms -verify -noverify` of der (detached: with data as the content). */
static void openssl_verifies(const uk_cert_info *cert, const uint8_t *der, size_t der_len,
                             bool detached, const uint8_t *data, size_t n)
{
    if (!tx_have_openssl_cli())
        return;
    char dir[128], out[512];
    tx_tmpdir_make(dir, sizeof(dir));
    char p_cms[256], p_data[256], p_out[256], p_cert[256];
    snprintf(p_cms, sizeof(p_cms), "%s/sig.der", dir);
    snprintf(p_data, sizeof(p_data), "%s/data", dir);
    snprintf(p_out, sizeof(p_out), "%s/out", dir);
    snprintf(p_cert, sizeof(p_cert), "%s/cert.der", dir);
    tx_write_file(p_cms, der, der_len);
    tx_write_file(p_data, data, n);
    tx_write_file(p_cert, cert->der, cert->der_len);
    int rc = tx_run(out, sizeof(out),
                    "openssl cms -verify -noverify -binary -inform DER -in %s %s%s -out %s 2>&1",
                    p_cms, detached ? "-content " : "", detached ? p_data : "", p_out);
    assert_int_equal(rc, 0);
    size_t got_len = 0;
    uint8_t *got = tx_read_file(p_out, &got_len);
    assert_int_equal(got_len, n);
    assert_memory_equal(got, data, n);
    free(got);
    /* The signer in the structure is the certificate given, and the attributes are the three. */
    rc = tx_run(out, sizeof(out),
                "openssl cms -cmsout -print -inform DER -in %s | grep -c "
                "-e 'object: contentType' -e 'object: signingTime' -e 'object: messageDigest'",
                p_cms);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "3");
    tx_tmpdir_remove(dir);
}

static void sign_and_check(EVP_PKEY *key, uk_x509_digest_alg d, bool detached)
{
    uint8_t data[1500];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 3);
    uk_cert_info *cert = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal(make_cms(key, key, d, detached, data, sizeof(data), &cert, &der, &der_len),
                     UK_OK);
    uk_x509_cms_verified *v = NULL;
    assert_int_equal(
        uk_x509_cms_verify(der, der_len, detached ? data : NULL, detached ? sizeof(data) : 0, &v),
        UK_OK);
    assert_int_equal(v->detached, detached);
    assert_int_equal(v->content_len, sizeof(data));
    assert_memory_equal(v->content, data, sizeof(data));
    assert_int_equal(v->signer_der_len, cert->der_len);
    assert_memory_equal(v->signer_der, cert->der, cert->der_len);
    assert_true(v->has_signing_time);
    assert_int_equal(v->signing_time, TX_NOT_BEFORE + 86400);
    uk_x509_cms_verified_free(v);
    openssl_verifies(cert, der, der_len, detached, data, sizeof(data));
    /* Other content: the message digest no longer matches. */
    if (detached) {
        data[0] ^= 1;
        assert_int_equal(uk_x509_cms_verify(der, der_len, data, sizeof(data), &v),
                         UK_E_SIGNATURE_INVALID);
    }
    free(der);
    uk_cert_info_free(cert);
}

static void test_cms_rsa_attached_and_detached_verify(void **state)
{
    (void)state;
    sign_and_check(keys.rsa, UK_X509_DIGEST_SHA256, false);
    sign_and_check(keys.rsa, UK_X509_DIGEST_SHA256, true);
    sign_and_check(keys.rsa, UK_X509_DIGEST_SHA512, false);
}

static void test_cms_ecdsa_p256_and_p384_verify(void **state)
{
    (void)state;
    sign_and_check(keys.p256, UK_X509_DIGEST_SHA256, false);
    sign_and_check(keys.p256, UK_X509_DIGEST_SHA384, true);
    sign_and_check(keys.p384, UK_X509_DIGEST_SHA384, false);
}

static void test_cms_signature_of_another_key_is_refused(void **state)
{
    (void)state;
    uint8_t *der = NULL;
    size_t der_len = 0;
    const uint8_t data[] = "hello";
    assert_int_equal(
        make_cms(keys.rsa, keys.rsa_b, UK_X509_DIGEST_SHA256, false, data, 5, NULL, &der, &der_len),
        UK_E_SIGNATURE_INVALID);
    assert_null(der);
    assert_int_equal(make_cms(keys.p256, keys.p256_b, UK_X509_DIGEST_SHA256, true, data, 5, NULL,
                              &der, &der_len),
                     UK_E_SIGNATURE_INVALID);
    assert_null(der);
}

static void test_cms_sm2_and_sm3_are_not_supported_yet(void **state)
{
    (void)state;
    tx_spec s = {.key = keys.sm2, .subject = subject};
    uk_cert_info *cert = tx_cert_info(&s);
    uk_x509_cms_sign_req req = {.signer = cert, .digest = UK_X509_DIGEST_SHA256, .data = NULL};
    uk_x509_cms_sign *st = NULL;
    uk_x509_sig_alg alg;
    uint8_t tbs[UK_X509_DIGEST_MAX];
    size_t tbs_len = sizeof(tbs);
    assert_int_equal(uk_x509_cms_sign_begin(&req, &st, &alg, tbs, &tbs_len), UK_E_NOT_SUPPORTED);
    uk_cert_info_free(cert);
    s.key = keys.rsa;
    cert = tx_cert_info(&s);
    req.signer = cert;
    req.digest = UK_X509_DIGEST_SM3;
    assert_int_equal(uk_x509_cms_sign_begin(&req, &st, &alg, tbs, &tbs_len), UK_E_INVALID_PARAMS);
    assert_null(st);
    uk_cert_info_free(cert);
}

static void test_cms_verify_refuses_garbage_and_missing_content(void **state)
{
    (void)state;
    uk_x509_cms_verified *v = NULL;
    const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    assert_int_equal(uk_x509_cms_verify(junk, sizeof(junk), NULL, 0, &v), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_cms_verify(junk, 0, NULL, 0, &v), UK_E_INVALID_PARAMS);
    uint8_t *der = NULL;
    size_t der_len = 0;
    const uint8_t data[] = "content";
    assert_int_equal(
        make_cms(keys.p256, keys.p256, UK_X509_DIGEST_SHA256, true, data, 7, NULL, &der, &der_len),
        UK_OK);
    /* Detached without the content; with trailing bytes. */
    assert_int_equal(uk_x509_cms_verify(der, der_len, NULL, 0, &v), UK_E_INVALID_PARAMS);
    uint8_t *longer = malloc(der_len + 1);
    assert_non_null(longer);
    memcpy(longer, der, der_len);
    longer[der_len] = 0;
    assert_int_equal(uk_x509_cms_verify(longer, der_len + 1, data, 7, &v), UK_E_INVALID_PARAMS);
    free(longer);
    free(der);
    /* Attached, and the content given as well. */
    assert_int_equal(
        make_cms(keys.p256, keys.p256, UK_X509_DIGEST_SHA256, false, data, 7, NULL, &der, &der_len),
        UK_OK);
    assert_int_equal(uk_x509_cms_verify(der, der_len, data, 7, &v), UK_E_INVALID_PARAMS);
    /* One flipped byte in the attached content (it sits near the start, after the OIDs). */
    uint8_t *p = memmem(der, der_len, "content", 7);
    assert_non_null(p);
    p[0] ^= 0x20;
    assert_int_equal(uk_x509_cms_verify(der, der_len, NULL, 0, &v), UK_E_SIGNATURE_INVALID);
    assert_null(v);
    free(der);
}

/* `openssl cms -encrypt` of data to the certificates (DER files) in paths; the envelope's DER. */
static uint8_t *encrypt_to(const char *dir, const char *const *paths, size_t n, const char *opts,
                           const uint8_t *data, size_t data_len, size_t *len)
{
    char cmd[2048], p_data[256], p_out[256];
    snprintf(p_data, sizeof(p_data), "%s/plain", dir);
    snprintf(p_out, sizeof(p_out), "%s/env.der", dir);
    tx_write_file(p_data, data, data_len);
    int off = snprintf(cmd, sizeof(cmd), "openssl cms -encrypt -binary -outform DER -in %s -out %s",
                       p_data, p_out);
    for (size_t i = 0; i < n; i++)
        off += snprintf(cmd + off, sizeof(cmd) - (size_t)off, " -recip %s", paths[i]);
    /* After the recipients: -keyopt applies to the one before it. */
    assert_int_equal(tx_run(NULL, 0, "%s %s 2>&1", cmd, opts), 0);
    return tx_read_file(p_out, len);
}

/* The card's part, done with the private key: the raw RSA primitive on the encrypted key, or
 * ECDH with the originator's point (the shared X coordinate). */
static void card_op(EVP_PKEY *key, uk_x509_unwrap how, const uint8_t *in, size_t n, uint8_t *out,
                    size_t *out_len)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    assert_non_null(ctx);
    if (how == UK_X509_UNWRAP_RSA) {
        assert_int_equal(EVP_PKEY_decrypt_init(ctx), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING), 1);
        assert_int_equal(EVP_PKEY_decrypt(ctx, out, out_len, in, n), 1);
    } else {
        EVP_PKEY *peer = EVP_PKEY_new();
        assert_non_null(peer);
        assert_int_equal(EVP_PKEY_copy_parameters(peer, key), 1);
        assert_int_equal(EVP_PKEY_set1_encoded_public_key(peer, in, n), 1);
        assert_int_equal(EVP_PKEY_derive_init(ctx), 1);
        assert_int_equal(EVP_PKEY_derive_set_peer(ctx, peer), 1);
        assert_int_equal(EVP_PKEY_derive(ctx, out, out_len), 1);
        EVP_PKEY_free(peer);
    }
    EVP_PKEY_CTX_free(ctx);
}

static void test_cms_envelope_recipients_and_ciphers(void **state)
{
    (void)state;
    if (!tx_have_openssl_cli())
        skip();
    char dir[128];
    tx_tmpdir_make(dir, sizeof(dir));
    tx_spec s_rsa = {.key = keys.rsa, .subject = subject, .serial_hex = "0a"};
    tx_spec s_rsa_b = {.key = keys.rsa_b, .subject = subject, .serial_hex = "0b"};
    tx_spec s_ec = {.key = keys.p256, .subject = subject, .serial_hex = "0c"};
    uk_cert_info *rsa = tx_cert_info(&s_rsa), *rsa_b = tx_cert_info(&s_rsa_b),
                 *ec = tx_cert_info(&s_ec);
    char p_rsa[256], p_rsa_b[256], p_ec[256];
    snprintf(p_rsa, sizeof(p_rsa), "%s/rsa.der", dir);
    snprintf(p_rsa_b, sizeof(p_rsa_b), "%s/rsa_b.der", dir);
    snprintf(p_ec, sizeof(p_ec), "%s/ec.der", dir);
    tx_write_file(p_rsa, rsa->der, rsa->der_len);
    tx_write_file(p_rsa_b, rsa_b->der, rsa_b->der_len);
    tx_write_file(p_ec, ec->der, ec->der_len);
    const uint8_t data[] = "the content of the envelope, longer than one block";
    const uk_cert_info *mine[] = {ec, rsa};
    EVP_PKEY *mine_keys[] = {keys.p256, keys.rsa};
    struct {
        const char *recips[2];
        size_t n;
        const char *opts;
        int want;
    } cases[] = {
        {{p_rsa}, 1, "-aes256", UK_OK},
        {{p_ec, p_rsa}, 2, "-aes128", UK_OK},
        {{p_rsa_b, p_rsa}, 2, "-des3", UK_OK},
        {{p_rsa_b}, 1, "-aes256", UK_E_DECRYPT_FAILED},
        {{p_ec}, 1, "-aes256", UK_OK},
        {{p_ec}, 1, "-aes128 -keyopt ecdh_kdf_md:sha384", UK_OK},
        {{p_rsa_b, p_ec}, 2, "-des3", UK_OK},
        {{p_rsa}, 1, "-aes256 -keyopt rsa_padding_mode:oaep", UK_E_NOT_SUPPORTED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = 0;
        uint8_t *der =
            encrypt_to(dir, cases[i].recips, cases[i].n, cases[i].opts, data, sizeof(data), &len);
        uk_x509_cms_envelope *e = NULL;
        size_t which = 99, ek_len = 0;
        const uint8_t *ek = NULL;
        uk_x509_unwrap how = 0;
        int rc = uk_x509_cms_envelope_open(der, len, mine, 2, &e, &which, &how, &ek, &ek_len);
        if (rc != cases[i].want)
            fail_msg("case %zu: %s, want %s", i, uk_err_name(rc), uk_err_name(cases[i].want));
        if (rc == UK_OK) {
            assert_true(which < 2);
            assert_int_equal(how, which == 0 ? UK_X509_UNWRAP_ECDH : UK_X509_UNWRAP_RSA);
            uint8_t em[256];
            size_t em_len = sizeof(em);
            card_op(mine_keys[which], how, ek, ek_len, em, &em_len);
            uint8_t *content = NULL;
            size_t content_len = 0;
            assert_int_equal(uk_x509_cms_envelope_finish(e, em, em_len, &content, &content_len),
                             UK_OK);
            assert_int_equal(content_len, sizeof(data));
            assert_memory_equal(content, data, sizeof(data));
            free(content);
            /* A broken padding or unwrap (what another key's result looks like). */
            em[which == 0 ? 5 : 1] ^= 1;
            assert_int_equal(uk_x509_cms_envelope_finish(e, em, em_len, &content, &content_len),
                             UK_E_DECRYPT_FAILED);
        }
        uk_x509_cms_envelope_free(e);
        free(der);
    }
    size_t which = 0, ek_len = 0;
    const uint8_t *ek = NULL;
    uk_x509_cms_envelope *e = NULL;
    uk_x509_unwrap how;
    assert_int_equal(
        uk_x509_cms_envelope_open(rsa->der, rsa->der_len, mine, 2, &e, &which, &how, &ek, &ek_len),
        UK_E_INVALID_PARAMS);
    uk_cert_info_free(rsa);
    uk_cert_info_free(rsa_b);
    uk_cert_info_free(ec);
    tx_tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cms_rsa_attached_and_detached_verify),
        cmocka_unit_test(test_cms_ecdsa_p256_and_p384_verify),
        cmocka_unit_test(test_cms_signature_of_another_key_is_refused),
        cmocka_unit_test(test_cms_sm2_and_sm3_are_not_supported_yet),
        cmocka_unit_test(test_cms_verify_refuses_garbage_and_missing_content),
        cmocka_unit_test(test_cms_envelope_recipients_and_ciphers),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
