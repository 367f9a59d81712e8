/*
 * uk_x509_csr_tbs / _digest / _finish and uk_x509_sm2_digest: requests for RSA-2048 (PKCS#1 v1.5
 * and PSS), P-256, P-384 and SM2, signed in the test as a card would (hash, then a raw signature
 * with EVP_PKEY_sign), then checked independently with `openssl req -verify` (SM2 with
 * -vfyopt distid:1234567812345678) and by decoding the request with OpenSSL: the subject equals
 * the old certificate's byte for byte (Chinese names, several string types), the SPKI equals the
 * card's. Wrong signatures are SIGNATURE_INVALID.
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
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "test_x509_helpers.h"
#include "uk_err.h"
#include "uk_x509.h"

#define GM_ID "1234567812345678"

static tx_keys keys;

/* The old certificate's subject: PrintableString C, UTF-8 Chinese values, a BMPString OU (中文),
 * a multi-valued last RDN. */
static const tx_attr old_subject[] = {
    {"C", "CN", false, 0, 0},
    {"ST", "北京市", false, 0, 0},
    {"O", "国家医疗保障局", false, 0, 0},
    {"OU", "\x4e\x2d\x65\x87", false, V_ASN1_BMPSTRING, 4},
    {"CN", "张三", false, 0, 0},
    {"UID", "zhangsan", true, 0, 0},
    {NULL, NULL, false, 0, 0},
};

static const tx_ext old_ext[] = {
    {"keyUsage", "critical,digitalSignature,nonRepudiation"},
    {"extendedKeyUsage", "clientAuth,emailProtection"},
    {"basicConstraints", "CA:FALSE"},
    {NULL, NULL},
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

/* The certificate being renewed, made with old_key. */
static uk_cert_info *old_cert(EVP_PKEY *old_key)
{
    tx_spec s = {.key = old_key, .subject = old_subject, .ext = old_ext};
    return tx_cert_info(&s);
}

/* The request decoded with OpenSSL. */
static X509_REQ *decode_req(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
    assert_non_null(req);
    assert_ptr_equal(p, der + len);
    return req;
}

/* i2d of a name (OpenSSL keeps the bytes it decoded), malloc'd. */
static uint8_t *name_der(const X509_NAME *name, size_t *len)
{
    unsigned char *out = NULL;
    int n = i2d_X509_NAME(name, &out);
    assert_true(n > 0);
    uint8_t *d = malloc((size_t)n);
    assert_non_null(d);
    memcpy(d, out, (size_t)n);
    OPENSSL_free(out);
    *len = (size_t)n;
    return d;
}

/* The subject DER of a certificate's DER. */
static uint8_t *cert_subject_der(const uk_cert_info *c, size_t *len)
{
    const unsigned char *p = c->der;
    X509 *x = d2i_X509(NULL, &p, (long)c->der_len);
    assert_non_null(x);
    uint8_t *d = name_der(X509_get_subject_name(x), len);
    X509_free(x);
    return d;
}

/* Sign tbs as the card would: the digest the API says (uk_x509_digest, or SM2's SM3(Z || tbs)
 * from uk_x509_sm2_digest), then a raw signature over that digest. */
static void card_sign(EVP_PKEY *key, const uint8_t *spki, size_t spki_len, uk_x509_sig_alg alg,
                      const uint8_t *tbs, size_t tbs_len, uint8_t **sig, size_t *sig_len)
{
    uint8_t dg[UK_X509_DIGEST_MAX];
    size_t dn = sizeof(dg);
    if (alg == UK_X509_SIG_SM2_SM3) {
        assert_int_equal(uk_x509_sm2_digest(spki, spki_len, tbs, tbs_len, dg, &dn), UK_OK);
    } else {
        uk_x509_digest_alg d;
        assert_true(uk_x509_sig_alg_digest(alg, &d));
        assert_int_equal(uk_x509_digest(d, tbs, tbs_len, dg, &dn), UK_OK);
    }
    tx_sign_digest(key, alg, dg, dn, sig, sig_len);
}

/*
 * Whether `openssl req -verify` accepts the PEM. OpenSSL 3.0's req exits 0 even when the
 * signature does not verify, so the answer is read from what it prints.
 */
static bool cli_verify(const char *pem, const char *extra)
{
    char dir[128];
    char path[256];
    char out[4096];
    tx_tmpdir_make(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/req.pem", dir);
    tx_write_file(path, pem, strlen(pem));
    int rc = tx_run(out, sizeof(out), "openssl req -in '%s' -verify -noout %s 2>&1", path, extra);
    tx_tmpdir_remove(dir);
    bool ok = strstr(out, "self-signature verify OK") != NULL;
    bool failed = strstr(out, "verify failure") != NULL;
    assert_true(ok != failed); /* exactly one verdict */
    return rc == 0 && ok;
}

/* `openssl req -text` of the PEM into out. */
static void cli_text(const char *pem, char *out, size_t out_size)
{
    char dir[128];
    char path[256];
    tx_tmpdir_make(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/req.pem", dir);
    tx_write_file(path, pem, strlen(pem));
    assert_int_equal(tx_run(out, out_size, "openssl req -in '%s' -noout -text 2>&1", path), 0);
    tx_tmpdir_remove(dir);
}

typedef struct csr_case {
    EVP_PKEY *old_key;
    EVP_PKEY *new_key;
    uk_x509_sig_alg alg;
    int sig_nid;         /* expected signatureAlgorithm */
    const char *alg_hex; /* its exact DER (RFC 4055, RFC 5758, GM/T 0006, CA/B Forum BR 7.1.3.2) */
} csr_case;

/* hex digits to bytes (malloc'd). */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        b[i] = (uint8_t)v;
    }
    *len = n;
    return b;
}

#define ALG_RSA_SHA256 "300d06092a864886f70d01010b0500"
#define ALG_RSA_SHA384 "300d06092a864886f70d01010c0500"
#define ALG_RSA_SHA512 "300d06092a864886f70d01010d0500"
#define ALG_PSS_SHA256                                                                             \
    "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d01"   \
    "0108300d06096086480165030402010500a203020120"
#define ALG_ECDSA_SHA256 "300a06082a8648ce3d040302"
#define ALG_ECDSA_SHA384 "300a06082a8648ce3d040303"
#define ALG_ECDSA_SHA512 "300a06082a8648ce3d040304"
#define ALG_SM2_SM3      "300a06082a811ccf55018375"

/* The whole flow for one case: build, sign as the card, finish, check every property. */
static void run_case(const csr_case *k)
{
    uk_cert_info *old = old_cert(k->old_key);
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    tx_spki(k->new_key, false, &spki, &spki_len);

    uk_x509_csr_req r = {.current = old, .spki = spki, .spki_len = spki_len, .sig_alg = k->alg};
    uint8_t *tbs = NULL;
    size_t tbs_len = 0;
    uk_x509_csr *st = NULL;
    assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_OK);
    assert_non_null(st);
    assert_true(tbs_len > spki_len);
    assert_int_equal(uk_x509_csr_get_sig_alg(st), k->alg);
    assert_int_equal(ERR_peek_error(), 0);

    /* uk_x509_csr_digest is the digest the card signs. */
    uint8_t dg[UK_X509_DIGEST_MAX];
    uint8_t dg2[UK_X509_DIGEST_MAX];
    size_t dn = sizeof(dg);
    size_t dn2 = sizeof(dg2);
    assert_int_equal(uk_x509_csr_digest(st, dg, &dn), UK_OK);
    if (k->alg == UK_X509_SIG_SM2_SM3) {
        assert_int_equal(uk_x509_sm2_digest(spki, spki_len, tbs, tbs_len, dg2, &dn2), UK_OK);
    } else {
        uk_x509_digest_alg d;
        assert_true(uk_x509_sig_alg_digest(k->alg, &d));
        assert_int_equal(uk_x509_digest(d, tbs, tbs_len, dg2, &dn2), UK_OK);
    }
    assert_int_equal(dn, dn2);
    assert_memory_equal(dg, dg2, dn);

    uint8_t *sig = NULL;
    size_t sig_len = 0;
    card_sign(k->new_key, spki, spki_len, k->alg, tbs, tbs_len, &sig, &sig_len);
    char *pem = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal(uk_x509_csr_finish(st, sig, sig_len, &pem, &der, &der_len), UK_OK);
    assert_int_equal(ERR_peek_error(), 0);
    assert_non_null(pem);
    assert_non_null(der);
    assert_true(strncmp(pem, "-----BEGIN CERTIFICATE REQUEST-----\n", 36) == 0);

    /* The PEM holds the DER; the DER holds the signed bytes as they were signed. */
    BIO *bio = BIO_new_mem_buf(pem, -1);
    assert_non_null(bio);
    X509_REQ *from_pem = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    assert_non_null(from_pem);
    unsigned char *re = NULL;
    int rn = i2d_X509_REQ(from_pem, &re);
    assert_int_equal((size_t)rn, der_len);
    assert_memory_equal(re, der, der_len);
    OPENSSL_free(re);
    X509_REQ_free(from_pem);
    BIO_free(bio);
    const uint8_t *at = memmem(der, der_len, tbs, tbs_len);
    assert_non_null(at);
    if (k->alg_hex != NULL) {
        /* The signatureAlgorithm right after the signed bytes, exactly. */
        size_t alg_len = 0;
        uint8_t *alg = unhex(k->alg_hex, &alg_len);
        assert_true((size_t)(at - der) + tbs_len + alg_len < der_len);
        assert_memory_equal(at + tbs_len, alg, alg_len);
        free(alg);
    }

    /* Subject byte for byte, SPKI byte for byte, the signature algorithm, no attributes. */
    X509_REQ *req = decode_req(der, der_len);
    size_t want_len = 0;
    size_t got_len = 0;
    uint8_t *want = cert_subject_der(old, &want_len);
    uint8_t *got = name_der(X509_REQ_get_subject_name(req), &got_len);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    assert_non_null(memmem(old->der, old->der_len, got, got_len));
    unsigned char *pk = NULL;
    int pkn = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(req), &pk);
    assert_int_equal((size_t)pkn, spki_len);
    assert_memory_equal(pk, spki, spki_len);
    OPENSSL_free(pk);
    assert_int_equal(X509_REQ_get_signature_nid(req), k->sig_nid);
    assert_int_equal(X509_REQ_get_version(req), 0);
    assert_int_equal(X509_REQ_get_attr_count(req), 0);

    /* An independent verification with the openssl CLI. */
    if (tx_have_openssl_cli()) {
        bool sm2 = k->alg == UK_X509_SIG_SM2_SM3;
        assert_true(cli_verify(pem, sm2 ? "-vfyopt distid:" GM_ID : ""));
        /* Without the ID (OpenSSL's empty default) it must fail: the ID was really used. */
        if (sm2)
            assert_false(cli_verify(pem, ""));
    }

    free(want);
    free(got);
    X509_REQ_free(req);
    free(pem);
    free(der);
    free(sig);
    free(tbs);
    uk_x509_csr_free(st);
    free(spki);
    uk_cert_info_free(old);
}

/* ---- one test per algorithm -------------------------------------------------------------- */

static void test_csr_rsa2048_pkcs1_sha256_verifies_with_openssl(void **state)
{
    (void)state;
    csr_case k = {keys.rsa_b, keys.rsa, UK_X509_SIG_RSA_PKCS1_SHA256, NID_sha256WithRSAEncryption,
                  ALG_RSA_SHA256};
    run_case(&k);
}

static void test_csr_rsa2048_pss_sha256_verifies_with_openssl(void **state)
{
    (void)state;
    csr_case k = {keys.rsa_b, keys.rsa, UK_X509_SIG_RSA_PSS_SHA256, NID_rsassaPss, ALG_PSS_SHA256};
    run_case(&k);
}

static void test_csr_pss_parameters_are_sha256_mgf1_salt_32(void **state)
{
    (void)state;
    if (!tx_have_openssl_cli())
        skip();
    uk_cert_info *old = old_cert(keys.rsa_b);
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    tx_spki(keys.rsa, false, &spki, &spki_len);
    uk_x509_csr_req r = {
        .current = old, .spki = spki, .spki_len = spki_len, .sig_alg = UK_X509_SIG_RSA_PSS_SHA256};
    uint8_t *tbs = NULL;
    size_t tbs_len = 0;
    uk_x509_csr *st = NULL;
    assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_OK);
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    card_sign(keys.rsa, spki, spki_len, r.sig_alg, tbs, tbs_len, &sig, &sig_len);
    char *pem = NULL;
    assert_int_equal(uk_x509_csr_finish(st, sig, sig_len, &pem, NULL, NULL), UK_OK);
    char text[16384];
    cli_text(pem, text, sizeof(text));
    assert_non_null(strstr(text, "Signature Algorithm: rsassaPss"));
    assert_non_null(strstr(text, "Hash Algorithm: sha256"));
    assert_non_null(strstr(text, "Mask Algorithm: mgf1 with sha256"));
    assert_non_null(strstr(text, "Salt Length: 0x20"));
    free(pem);
    free(sig);
    free(tbs);
    uk_x509_csr_free(st);
    free(spki);
    uk_cert_info_free(old);
}

static void test_csr_p256_ecdsa_sha256_verifies_with_openssl(void **state)
{
    (void)state;
    csr_case k = {keys.p256_b, keys.p256, UK_X509_SIG_ECDSA_SHA256, NID_ecdsa_with_SHA256,
                  ALG_ECDSA_SHA256};
    run_case(&k);
}

static void test_csr_p384_ecdsa_sha384_verifies_with_openssl(void **state)
{
    (void)state;
    csr_case k = {keys.p256, keys.p384, UK_X509_SIG_ECDSA_SHA384, NID_ecdsa_with_SHA384,
                  ALG_ECDSA_SHA384};
    run_case(&k);
}

static void test_csr_sm2_verifies_with_openssl_and_the_gm_id(void **state)
{
    (void)state;
    EVP_PKEY *old_sm2 = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    assert_non_null(old_sm2);
    csr_case k = {old_sm2, keys.sm2, UK_X509_SIG_SM2_SM3, NID_SM2_with_SM3, ALG_SM2_SM3};
    run_case(&k);
    EVP_PKEY_free(old_sm2);
}

static void test_csr_other_digests_verify_with_openssl(void **state)
{
    (void)state;
    const csr_case cases[] = {
        {keys.rsa_b, keys.rsa, UK_X509_SIG_RSA_PKCS1_SHA384, NID_sha384WithRSAEncryption,
         ALG_RSA_SHA384},
        {keys.rsa_b, keys.rsa, UK_X509_SIG_RSA_PKCS1_SHA512, NID_sha512WithRSAEncryption,
         ALG_RSA_SHA512},
        {keys.rsa_b, keys.rsa, UK_X509_SIG_RSA_PSS_SHA384, NID_rsassaPss, NULL},
        {keys.rsa_b, keys.rsa, UK_X509_SIG_RSA_PSS_SHA512, NID_rsassaPss, NULL},
        {keys.p256_b, keys.p256, UK_X509_SIG_ECDSA_SHA512, NID_ecdsa_with_SHA512, ALG_ECDSA_SHA512},
        {keys.p256_b, keys.p384, UK_X509_SIG_ECDSA_SHA256, NID_ecdsa_with_SHA256, ALG_ECDSA_SHA256},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i]);
}

/* ---- signatures that must not be accepted ------------------------------------------------ */

typedef struct fixture {
    uk_cert_info *old;
    uint8_t *spki;
    size_t spki_len;
    uint8_t *tbs;
    size_t tbs_len;
    uk_x509_csr *st;
} fixture;

static void fixture_open(fixture *f, EVP_PKEY *old_key, EVP_PKEY *new_key, uk_x509_sig_alg alg)
{
    memset(f, 0, sizeof(*f));
    f->old = old_cert(old_key);
    tx_spki(new_key, false, &f->spki, &f->spki_len);
    uk_x509_csr_req r = {
        .current = f->old, .spki = f->spki, .spki_len = f->spki_len, .sig_alg = alg};
    assert_int_equal(uk_x509_csr_tbs(&r, &f->tbs, &f->tbs_len, &f->st), UK_OK);
}

static void fixture_close(fixture *f)
{
    uk_x509_csr_free(f->st);
    free(f->tbs);
    free(f->spki);
    uk_cert_info_free(f->old);
}

/* finish must fail with SIGNATURE_INVALID and return nothing. */
static void assert_sig_invalid(uk_x509_csr *st, const uint8_t *sig, size_t len)
{
    char sentinel[] = "untouched";
    char *pem = sentinel;
    uint8_t *der = (uint8_t *)sentinel;
    size_t der_len = 12345;
    assert_int_equal(uk_x509_csr_finish(st, sig, len, &pem, &der, &der_len),
                     UK_E_SIGNATURE_INVALID);
    assert_string_equal(pem, "untouched");
    assert_string_equal((const char *)der, "untouched");
    assert_int_equal(der_len, 12345);
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_csr_signature_by_another_key_is_signature_invalid(void **state)
{
    (void)state;
    struct {
        EVP_PKEY *key;
        EVP_PKEY *other;
        uk_x509_sig_alg alg;
    } cases[] = {
        {keys.rsa, keys.rsa_b, UK_X509_SIG_RSA_PKCS1_SHA256},
        {keys.rsa, keys.rsa_b, UK_X509_SIG_RSA_PSS_SHA256},
        {keys.p256, keys.p256_b, UK_X509_SIG_ECDSA_SHA256},
        {keys.sm2, NULL, UK_X509_SIG_SM2_SM3},
    };
    EVP_PKEY *sm2_b = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    assert_non_null(sm2_b);
    cases[3].other = sm2_b;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fixture f;
        fixture_open(&f, cases[i].key, cases[i].key, cases[i].alg);
        /* The card signs with another key than the one it reported. */
        uint8_t *other_spki = NULL;
        size_t other_len = 0;
        tx_spki(cases[i].other, false, &other_spki, &other_len);
        uint8_t *sig = NULL;
        size_t sig_len = 0;
        card_sign(cases[i].other, other_spki, other_len, cases[i].alg, f.tbs, f.tbs_len, &sig,
                  &sig_len);
        assert_sig_invalid(f.st, sig, sig_len);
        free(sig);

        /* The right key, one bit flipped. */
        card_sign(cases[i].key, f.spki, f.spki_len, cases[i].alg, f.tbs, f.tbs_len, &sig, &sig_len);
        sig[sig_len / 2] ^= 0x04;
        assert_sig_invalid(f.st, sig, sig_len);
        sig[sig_len / 2] ^= 0x04;

        /* The state takes another signature after a failure: the right one now verifies. */
        char *pem = NULL;
        assert_int_equal(uk_x509_csr_finish(f.st, sig, sig_len, &pem, NULL, NULL), UK_OK);
        assert_non_null(pem);
        free(pem);
        free(sig);
        free(other_spki);
        fixture_close(&f);
    }
    EVP_PKEY_free(sm2_b);
}

static void test_csr_wrong_scheme_or_hash_is_signature_invalid(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, keys.rsa_b, keys.rsa, UK_X509_SIG_RSA_PSS_SHA256);
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    /* PKCS#1 v1.5 where PSS was announced. */
    card_sign(keys.rsa, f.spki, f.spki_len, UK_X509_SIG_RSA_PKCS1_SHA256, f.tbs, f.tbs_len, &sig,
              &sig_len);
    assert_sig_invalid(f.st, sig, sig_len);
    free(sig);
    /* PSS over SHA-384 of the TBS where SHA-256 was announced. */
    card_sign(keys.rsa, f.spki, f.spki_len, UK_X509_SIG_RSA_PSS_SHA384, f.tbs, f.tbs_len, &sig,
              &sig_len);
    assert_sig_invalid(f.st, sig, sig_len);
    free(sig);
    fixture_close(&f);

    /* SM2 over a digest made with OpenSSL's empty ID. */
    fixture_open(&f, keys.sm2, keys.sm2, UK_X509_SIG_SM2_SM3);
    tx_sign(keys.sm2, UK_X509_SIG_SM2_SM3, "", f.tbs, f.tbs_len, &sig, &sig_len);
    assert_sig_invalid(f.st, sig, sig_len);
    free(sig);
    /* Signed over the message by OpenSSL with the GM/T ID: our Z is OpenSSL's Z. */
    tx_sign(keys.sm2, UK_X509_SIG_SM2_SM3, GM_ID, f.tbs, f.tbs_len, &sig, &sig_len);
    assert_int_equal(uk_x509_csr_finish(f.st, sig, sig_len, NULL, NULL, NULL), UK_OK);
    free(sig);
    fixture_close(&f);
}

static void test_csr_empty_oversized_or_garbage_signature_is_signature_invalid(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, keys.p256_b, keys.p256, UK_X509_SIG_ECDSA_SHA256);
    uint8_t big[UK_X509_CSR_SIG_MAX + 1];
    memset(big, 0x30, sizeof(big));
    assert_sig_invalid(f.st, big, 0);
    assert_sig_invalid(f.st, NULL, 0);
    assert_sig_invalid(f.st, big, sizeof(big));
    uint64_t seed = 77;
    for (size_t len = 1; len < 80; len += 3) {
        tx_prng_fill(&seed, big, len);
        assert_sig_invalid(f.st, big, len);
    }
    /* A raw r || s (not DER) is refused: the token layer converts to DER. */
    uint8_t dg[32];
    size_t dn = sizeof(dg);
    assert_int_equal(uk_x509_csr_digest(f.st, dg, &dn), UK_OK);
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    tx_sign_digest(keys.p256, UK_X509_SIG_ECDSA_SHA256, dg, dn, &sig, &sig_len);
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
    assert_non_null(es);
    uint8_t raw[64];
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32), 32);
    assert_sig_invalid(f.st, raw, sizeof(raw));
    assert_int_equal(uk_x509_csr_finish(f.st, sig, sig_len, NULL, NULL, NULL), UK_OK);
    ECDSA_SIG_free(es);
    free(sig);
    fixture_close(&f);
}

/* ---- building the request ---------------------------------------------------------------- */

static void test_csr_algorithm_must_fit_the_key(void **state)
{
    (void)state;
    uk_cert_info *old = old_cert(keys.rsa_b);
    struct {
        EVP_PKEY *key;
        uk_x509_sig_alg alg;
    } cases[] = {
        {keys.rsa, UK_X509_SIG_ECDSA_SHA256},      {keys.rsa, UK_X509_SIG_SM2_SM3},
        {keys.p256, UK_X509_SIG_RSA_PKCS1_SHA256}, {keys.p256, UK_X509_SIG_SM2_SM3},
        {keys.sm2, UK_X509_SIG_ECDSA_SHA256},      {keys.ed25519, UK_X509_SIG_ECDSA_SHA256},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *spki = NULL;
        size_t n = 0;
        tx_spki(cases[i].key, false, &spki, &n);
        uk_x509_csr_req r = {.current = old, .spki = spki, .spki_len = n, .sig_alg = cases[i].alg};
        uint8_t sentinel[] = "x";
        uint8_t *tbs = sentinel;
        size_t tbs_len = 99;
        uk_x509_csr *st = NULL;
        assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_E_NOT_SUPPORTED);
        assert_ptr_equal(tbs, sentinel);
        assert_int_equal(tbs_len, 99);
        assert_null(st);
        assert_int_equal(ERR_peek_error(), 0);
        free(spki);
    }
    uk_cert_info_free(old);
}

static void test_csr_spki_goes_in_unchanged_or_is_key_rejected(void **state)
{
    (void)state;
    uk_cert_info *old = old_cert(keys.p256_b);
    /* A compressed point is kept as it is. */
    uint8_t *spki = NULL;
    size_t n = 0;
    tx_spki(keys.p256, true, &spki, &n);
    uk_x509_csr_req r = {
        .current = old, .spki = spki, .spki_len = n, .sig_alg = UK_X509_SIG_ECDSA_SHA256};
    uint8_t *tbs = NULL;
    size_t tbs_len = 0;
    uk_x509_csr *st = NULL;
    assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_OK);
    assert_non_null(memmem(tbs, tbs_len, spki, n));
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    card_sign(keys.p256, spki, n, r.sig_alg, tbs, tbs_len, &sig, &sig_len);
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal(uk_x509_csr_finish(st, sig, sig_len, NULL, &der, &der_len), UK_OK);
    assert_non_null(memmem(der, der_len, spki, n));
    free(der);
    free(sig);
    free(tbs);
    uk_x509_csr_free(st);

    /* Trailing bytes, a truncated SPKI, a point off the curve. */
    uint8_t *bad = malloc(n + 1);
    assert_non_null(bad);
    memcpy(bad, spki, n);
    bad[n] = 0;
    r.spki = bad;
    r.spki_len = n + 1;
    assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_E_KEY_REJECTED);
    r.spki_len = n - 1;
    assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_E_KEY_REJECTED);
    free(bad);
    free(spki);
    /* An uncompressed point with y changed is off the curve (a compressed x may well be on it). */
    tx_spki(keys.p256, false, &spki, &n);
    spki[n - 1] ^= 0x01;
    r.spki = spki;
    r.spki_len = n;
    assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_E_KEY_REJECTED);
    assert_int_equal(ERR_peek_error(), 0);
    free(spki);
    uk_cert_info_free(old);
}

static void test_csr_copy_usage_puts_the_old_extensions_in_an_extension_request(void **state)
{
    (void)state;
    uk_cert_info *old = old_cert(keys.rsa_b);
    uint8_t *spki = NULL;
    size_t n = 0;
    tx_spki(keys.rsa, false, &spki, &n);
    uk_x509_csr_req r = {.current = old,
                         .spki = spki,
                         .spki_len = n,
                         .sig_alg = UK_X509_SIG_RSA_PKCS1_SHA256,
                         .copy_usage = true};
    uint8_t *tbs = NULL;
    size_t tbs_len = 0;
    uk_x509_csr *st = NULL;
    assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_OK);
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    card_sign(keys.rsa, spki, n, r.sig_alg, tbs, tbs_len, &sig, &sig_len);
    char *pem = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal(uk_x509_csr_finish(st, sig, sig_len, &pem, &der, &der_len), UK_OK);

    X509_REQ *req = decode_req(der, der_len);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    assert_non_null(exts);
    assert_int_equal(sk_X509_EXTENSION_num(exts), 2); /* not basicConstraints */
    const unsigned char *p = old->der;
    X509 *x = d2i_X509(NULL, &p, (long)old->der_len);
    assert_non_null(x);
    const int nids[] = {NID_key_usage, NID_ext_key_usage};
    for (int i = 0; i < 2; i++) {
        X509_EXTENSION *mine = sk_X509_EXTENSION_value(exts, i);
        X509_EXTENSION *theirs = X509_get_ext(x, X509_get_ext_by_NID(x, nids[i], -1));
        assert_int_equal(OBJ_obj2nid(X509_EXTENSION_get_object(mine)), nids[i]);
        assert_int_equal(X509_EXTENSION_get_critical(mine), X509_EXTENSION_get_critical(theirs));
        assert_int_equal(
            ASN1_STRING_cmp(X509_EXTENSION_get_data(mine), X509_EXTENSION_get_data(theirs)), 0);
    }
    assert_int_equal(X509_EXTENSION_get_critical(sk_X509_EXTENSION_value(exts, 0)), 1);
    if (tx_have_openssl_cli()) {
        char text[16384];
        cli_text(pem, text, sizeof(text));
        assert_non_null(strstr(text, "Requested Extensions:"));
        assert_non_null(strstr(text, "Digital Signature, Non Repudiation"));
        assert_non_null(strstr(text, "TLS Web Client Authentication, E-mail Protection"));
        assert_true(cli_verify(pem, ""));
    }
    X509_free(x);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    free(pem);
    free(der);
    free(sig);
    free(tbs);
    uk_x509_csr_free(st);
    free(spki);
    uk_cert_info_free(old);
}

static void test_csr_explicit_subject_from_parts(void **state)
{
    (void)state;
    const uk_x509_subject_attr parts[] = {
        {"C", "CN", 0},
        {"O", "国家医疗保障局", 1},
        {"CN", "李四", 2},
        {"serialNumber", "110101199001011234", 2},
        {"1.2.156.10260.4.1.1", "医保编号", 3},
    };
    uint8_t *spki = NULL;
    size_t n = 0;
    tx_spki(keys.sm2, false, &spki, &n);
    /* No current certificate at all: a repair after the certificate was lost. */
    uk_x509_csr_req r = {.subject = parts,
                         .n_subject = sizeof(parts) / sizeof(parts[0]),
                         .spki = spki,
                         .spki_len = n,
                         .sig_alg = UK_X509_SIG_SM2_SM3};
    uint8_t *tbs = NULL;
    size_t tbs_len = 0;
    uk_x509_csr *st = NULL;
    assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_OK);
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    card_sign(keys.sm2, spki, n, r.sig_alg, tbs, tbs_len, &sig, &sig_len);
    char *pem = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal(uk_x509_csr_finish(st, sig, sig_len, &pem, &der, &der_len), UK_OK);

    X509_REQ *req = decode_req(der, der_len);
    const X509_NAME *name = X509_REQ_get_subject_name(req);
    assert_int_equal(X509_NAME_entry_count(name), 5);
    const int types[] = {V_ASN1_PRINTABLESTRING, V_ASN1_UTF8STRING, V_ASN1_UTF8STRING,
                         V_ASN1_PRINTABLESTRING, V_ASN1_UTF8STRING};
    const int sets[] = {0, 1, 2, 2, 3};
    for (int i = 0; i < 5; i++) {
        const X509_NAME_ENTRY *ne = X509_NAME_get_entry(name, i);
        const ASN1_STRING *d = X509_NAME_ENTRY_get_data(ne);
        assert_int_equal(ASN1_STRING_type(d), types[i]);
        assert_int_equal(X509_NAME_ENTRY_set(ne), sets[i]);
        assert_int_equal(ASN1_STRING_length(d), strlen(parts[i].value));
        assert_memory_equal(ASN1_STRING_get0_data(d), parts[i].value, strlen(parts[i].value));
    }
    if (tx_have_openssl_cli())
        assert_true(cli_verify(pem, "-vfyopt distid:" GM_ID));
    X509_REQ_free(req);
    free(pem);
    free(der);
    free(sig);
    free(tbs);
    uk_x509_csr_free(st);
    free(spki);
}

static void test_csr_subject_parts_that_do_not_encode_are_invalid_params(void **state)
{
    (void)state;
    uint8_t *spki = NULL;
    size_t n = 0;
    tx_spki(keys.p256, false, &spki, &n);
    const uk_x509_subject_attr bad[][2] = {
        {{"C", "中国", 0}, {"CN", "a", 1}}, {{"NOSUCHTYPE", "x", 0}, {"CN", "a", 1}},
        {{"CN", "", 0}, {"O", "a", 1}},     {{"CN", "a", 1}, {"CN", "b", 2}},
        {{"CN", "a", 0}, {"CN", "b", 2}},   {{"CN", "\xff\xfe", 0}, {"O", "b", 1}},
        {{"CN", NULL, 0}, {"O", "b", 1}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uk_x509_csr_req r = {.subject = bad[i],
                             .n_subject = 2,
                             .spki = spki,
                             .spki_len = n,
                             .sig_alg = UK_X509_SIG_ECDSA_SHA256};
        uint8_t *tbs = NULL;
        size_t tbs_len = 0;
        uk_x509_csr *st = NULL;
        assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_E_INVALID_PARAMS);
        assert_null(st);
        assert_int_equal(ERR_peek_error(), 0);
    }
    free(spki);
}

static void test_csr_bad_arguments(void **state)
{
    (void)state;
    uk_cert_info *old = old_cert(keys.p256_b);
    uint8_t *spki = NULL;
    size_t n = 0;
    tx_spki(keys.p256, false, &spki, &n);
    uint8_t *tbs = NULL;
    size_t tbs_len = 0;
    uk_x509_csr *st = NULL;
    uk_x509_csr_req ok = {
        .current = old, .spki = spki, .spki_len = n, .sig_alg = UK_X509_SIG_ECDSA_SHA256};
    uk_x509_csr_req r;

    assert_int_equal(uk_x509_csr_tbs(NULL, &tbs, &tbs_len, &st), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_csr_tbs(&ok, NULL, &tbs_len, &st), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_csr_tbs(&ok, &tbs, NULL, &st), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_csr_tbs(&ok, &tbs, &tbs_len, NULL), UK_E_INVALID_PARAMS);
    r = ok;
    r.current = NULL; /* no subject at all */
    assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_E_INVALID_PARAMS);
    r = ok;
    r.spki = NULL;
    assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_E_INVALID_PARAMS);
    r = ok;
    r.sig_alg = (uk_x509_sig_alg)99;
    assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_E_INVALID_PARAMS);
    r = ok;
    r.n_subject = 1; /* subject NULL */
    assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_E_INVALID_PARAMS);
    const uk_x509_subject_attr cn = {"CN", "x", 0};
    r = ok;
    r.current = NULL;
    r.subject = &cn;
    r.n_subject = 1;
    r.copy_usage = true; /* nothing to copy from */
    assert_int_equal(uk_x509_csr_tbs(&r, &tbs, &tbs_len, &st), UK_E_INVALID_PARAMS);
    assert_null(st);

    assert_int_equal(uk_x509_csr_tbs(&ok, &tbs, &tbs_len, &st), UK_OK);
    uint8_t dg[UK_X509_DIGEST_MAX];
    size_t dn = 31;
    assert_int_equal(uk_x509_csr_digest(st, dg, &dn), UK_E_INVALID_PARAMS);
    dn = sizeof(dg);
    assert_int_equal(uk_x509_csr_digest(NULL, dg, &dn), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_csr_digest(st, NULL, &dn), UK_E_INVALID_PARAMS);
    uint8_t b = 0;
    size_t len = 0;
    assert_int_equal(uk_x509_csr_finish(NULL, &b, 1, NULL, NULL, NULL), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_csr_finish(st, NULL, 1, NULL, NULL, NULL), UK_E_INVALID_PARAMS);
    uint8_t *der = NULL;
    assert_int_equal(uk_x509_csr_finish(st, &b, 1, NULL, &der, NULL), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_csr_finish(st, &b, 1, NULL, NULL, &len), UK_E_INVALID_PARAMS);
    uk_x509_csr_free(st);
    uk_x509_csr_free(NULL);
    free(tbs);
    free(spki);
    uk_cert_info_free(old);
}

/* ---- SM2 digest -------------------------------------------------------------------------- */

static void test_sm2_digest_matches_openssl_z_and_checks_the_key(void **state)
{
    (void)state;
    static const uint8_t msg[] = "医保电子凭证 certificate request";
    uint8_t *spki = NULL;
    size_t n = 0;
    tx_spki(keys.sm2, false, &spki, &n);
    uint8_t e[32];
    size_t el = sizeof(e);
    assert_int_equal(uk_x509_sm2_digest(spki, n, msg, sizeof(msg) - 1, e, &el), UK_OK);
    assert_int_equal(el, 32);

    /* OpenSSL signs the message with the GM/T ID (computing Z itself); the signature must verify
     * over our e as a digest. */
    tx_spec s = {.key = keys.sm2, .subject = old_subject};
    uk_cert_info *c = tx_cert_info(&s);
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    tx_sign(keys.sm2, UK_X509_SIG_SM2_SM3, GM_ID, msg, sizeof(msg) - 1, &sig, &sig_len);
    assert_int_equal(uk_x509_verify_digest(c, e, el, sig, sig_len, UK_X509_SIG_SM2_SM3), UK_OK);
    free(sig);
    /* And the other way round: a raw signature over our e verifies over the message. */
    tx_sign_digest(keys.sm2, UK_X509_SIG_SM2_SM3, e, el, &sig, &sig_len);
    assert_int_equal(
        uk_x509_verify_signature(c, msg, sizeof(msg) - 1, sig, sig_len, UK_X509_SIG_SM2_SM3),
        UK_OK);
    free(sig);
    uk_cert_info_free(c);

    /* An empty message works too (SM3(Z)). */
    assert_int_equal(uk_x509_sm2_digest(spki, n, NULL, 0, e, &el), UK_OK);

    /* Not SM2, not a key, small buffer. */
    uint8_t *p256 = NULL;
    size_t pn = 0;
    tx_spki(keys.p256, false, &p256, &pn);
    el = sizeof(e);
    assert_int_equal(uk_x509_sm2_digest(p256, pn, msg, 3, e, &el), UK_E_NOT_SUPPORTED);
    assert_int_equal(uk_x509_sm2_digest(spki, n - 1, msg, 3, e, &el), UK_E_KEY_REJECTED);
    el = 31;
    assert_int_equal(uk_x509_sm2_digest(spki, n, msg, 3, e, &el), UK_E_INVALID_PARAMS);
    el = sizeof(e);
    assert_int_equal(uk_x509_sm2_digest(NULL, 0, msg, 3, e, &el), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_sm2_digest(spki, n, NULL, 3, e, &el), UK_E_INVALID_PARAMS);
    assert_int_equal(ERR_peek_error(), 0);
    free(p256);
    free(spki);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csr_rsa2048_pkcs1_sha256_verifies_with_openssl),
        cmocka_unit_test(test_csr_rsa2048_pss_sha256_verifies_with_openssl),
        cmocka_unit_test(test_csr_pss_parameters_are_sha256_mgf1_salt_32),
        cmocka_unit_test(test_csr_p256_ecdsa_sha256_verifies_with_openssl),
        cmocka_unit_test(test_csr_p384_ecdsa_sha384_verifies_with_openssl),
        cmocka_unit_test(test_csr_sm2_verifies_with_openssl_and_the_gm_id),
        cmocka_unit_test(test_csr_other_digests_verify_with_openssl),
        cmocka_unit_test(test_csr_signature_by_another_key_is_signature_invalid),
        cmocka_unit_test(test_csr_wrong_scheme_or_hash_is_signature_invalid),
        cmocka_unit_test(test_csr_empty_oversized_or_garbage_signature_is_signature_invalid),
        cmocka_unit_test(test_csr_algorithm_must_fit_the_key),
        cmocka_unit_test(test_csr_spki_goes_in_unchanged_or_is_key_rejected),
        cmocka_unit_test(test_csr_copy_usage_puts_the_old_extensions_in_an_extension_request),
        cmocka_unit_test(test_csr_explicit_subject_from_parts),
        cmocka_unit_test(test_csr_subject_parts_that_do_not_encode_are_invalid_params),
        cmocka_unit_test(test_csr_bad_arguments),
        cmocka_unit_test(test_sm2_digest_matches_openssl_z_and_checks_the_key),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
