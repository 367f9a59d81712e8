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
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

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

/* uk_x509_cms_verify accepts der (data as detached content or inside) and reports data, the
 * signer cert and make_cms's signing time. */
static void verifies(const uint8_t *der, size_t der_len, bool detached, const uint8_t *data,
                     size_t n, const uk_cert_info *cert)
{
    uk_x509_cms_verified *v = NULL;
    assert_int_equal(uk_x509_cms_verify(der, der_len, detached ? data : NULL, detached ? n : 0, &v),
                     UK_OK);
    assert_int_equal(v->detached, detached);
    assert_int_equal(v->content_len, n);
    assert_memory_equal(v->content, data, n);
    assert_int_equal(v->signer_der_len, cert->der_len);
    assert_memory_equal(v->signer_der, cert->der, cert->der_len);
    assert_true(v->has_signing_time);
    assert_int_equal(v->signing_time, TX_NOT_BEFORE + 86400);
    uk_x509_cms_verified_free(v);
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
    verifies(der, der_len, detached, data, sizeof(data), cert);
    uk_x509_cms_verified *v = NULL;
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

/* The TLV at *p (before end): its tag byte, where its value starts and its length; *p moves past
 * it. A test's own walk, independent of the code under test. */
static const uint8_t *tlv_next(const uint8_t **p, const uint8_t *end, uint8_t *tag, size_t *len)
{
    assert_true(*p + 2 <= end);
    const uint8_t *q = *p;
    *tag = *q++;
    size_t l = *q++;
    if (l & 0x80) {
        size_t nb = l & 0x7f;
        assert_true(nb >= 1 && nb <= 3 && q + nb <= end);
        l = 0;
        while (nb-- > 0)
            l = l << 8 | *q++;
    }
    assert_true(q + l <= end);
    *len = l;
    *p = q + l;
    return q;
}

/* The signed attributes (with their [0] tag, start and total length) and the signature value of
 * the one SignerInfo of a DER SignedData. */
static void signer_parts(const uint8_t *der, size_t der_len, const uint8_t **attrs,
                         size_t *attrs_len, const uint8_t **sig, size_t *sig_len)
{
    const uint8_t *p = der, *end = der + der_len, *v;
    uint8_t tag;
    size_t len;
    v = tlv_next(&p, end, &tag, &len); /* ContentInfo */
    assert_int_equal(tag, 0x30);
    p = v;
    end = v + len;
    (void)tlv_next(&p, end, &tag, &len); /* contentType */
    v = tlv_next(&p, end, &tag, &len);   /* [0] */
    assert_int_equal(tag, 0xa0);
    p = v;
    v = tlv_next(&p, v + len, &tag, &len); /* SignedData */
    assert_int_equal(tag, 0x30);
    p = v;
    end = v + len;
    do /* version, digestAlgorithms, encapContentInfo, [0] certificates, [1] crls */
        v = tlv_next(&p, end, &tag, &len);
    while (tag != 0x31 || p != end);
    p = v;                                 /* signerInfos */
    v = tlv_next(&p, v + len, &tag, &len); /* SignerInfo */
    assert_int_equal(tag, 0x30);
    p = v;
    end = v + len;
    (void)tlv_next(&p, end, &tag, &len); /* version */
    (void)tlv_next(&p, end, &tag, &len); /* sid */
    (void)tlv_next(&p, end, &tag, &len); /* digestAlgorithm */
    *attrs = p;
    (void)tlv_next(&p, end, &tag, &len); /* [0] signedAttrs */
    assert_int_equal(tag, 0xa0);
    *attrs_len = (size_t)(p - *attrs);
    (void)tlv_next(&p, end, &tag, &len); /* signatureAlgorithm */
    *sig = tlv_next(&p, end, &tag, &len);
    assert_int_equal(tag, 0x04);
    *sig_len = len;
}

/* Independently of ukeyd's verification: the SM2 signature over the DER of the signed attributes
 * (tag SET OF) by `openssl pkeyutl -rawin -digest sm3` with the GM/T 0009 ID (and not without
 * it), the OIDs of GM/T 0010 as `openssl cms -print` names them, and SM3(content) as the message
 * digest attribute. */
static void sm2_independent_checks(const uk_cert_info *cert, const uint8_t *der, size_t der_len,
                                   const uint8_t *data, size_t n)
{
    if (!tx_have_openssl_cli())
        return;
    char dir[128], out[2048];
    char p_cms[256], p_attrs[256], p_sig[256], p_cert[256], p_pub[256], p_data[256];
    tx_tmpdir_make(dir, sizeof(dir));
    snprintf(p_cms, sizeof(p_cms), "%s/sig.der", dir);
    snprintf(p_attrs, sizeof(p_attrs), "%s/attrs.der", dir);
    snprintf(p_sig, sizeof(p_sig), "%s/sig.bin", dir);
    snprintf(p_cert, sizeof(p_cert), "%s/cert.der", dir);
    snprintf(p_pub, sizeof(p_pub), "%s/pub.pem", dir);
    snprintf(p_data, sizeof(p_data), "%s/data", dir);
    const uint8_t *attrs, *sig;
    size_t attrs_len, sig_len;
    signer_parts(der, der_len, &attrs, &attrs_len, &sig, &sig_len);
    uint8_t *set = malloc(attrs_len);
    assert_non_null(set);
    memcpy(set, attrs, attrs_len);
    set[0] = 0x31; /* RFC 5652 5.4: the signature covers the explicit SET OF */
    tx_write_file(p_cms, der, der_len);
    tx_write_file(p_attrs, set, attrs_len);
    tx_write_file(p_sig, sig, sig_len);
    tx_write_file(p_cert, cert->der, cert->der_len);
    tx_write_file(p_data, data, n);
    free(set);
    assert_int_equal(tx_run(out, sizeof(out),
                            "openssl x509 -inform DER -in %s -noout -pubkey > %s 2>&1", p_cert,
                            p_pub),
                     0);
#define PKEYUTL_VERIFY                                                                             \
    "openssl pkeyutl -verify -pubin -inkey %s -rawin -digest sm3 %s -in %s -sigfile %s 2>&1"
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), PKEYUTL_VERIFY, p_pub, "-pkeyopt distid:1234567812345678", p_attrs,
             p_sig);
    assert_int_equal(tx_run(out, sizeof(out), "%s", cmd), 0);
    assert_non_null(strstr(out, "Signature Verified Successfully"));
    snprintf(cmd, sizeof(cmd), PKEYUTL_VERIFY, p_pub, "", p_attrs, p_sig);
    assert_int_not_equal(tx_run(out, sizeof(out), "%s", cmd), 0);
    /* The SignerInfo's SM3 digest and SM2-with-SM3 signature algorithms (and SM3 in the
     * SignedData's digestAlgorithms), the three attributes, the PKCS#7 content types. */
    assert_int_equal(tx_run(out, sizeof(out),
                            "openssl cms -cmsout -print -inform DER -in %s | grep -A1 "
                            "-e 'digestAlgorithms:' -e 'digestAlgorithm:' "
                            "-e 'signatureAlgorithm:' | grep -c "
                            "-e 'algorithm: sm3 (1.2.156.10197.1.401)' "
                            "-e 'algorithm: SM2-with-SM3 (1.2.156.10197.1.501)'",
                            p_cms),
                     0);
    assert_string_equal(out, "3");
    assert_int_equal(tx_run(out, sizeof(out),
                            "openssl cms -cmsout -print -inform DER -in %s | grep -c "
                            "-e 'object: contentType' -e 'object: signingTime' "
                            "-e 'object: messageDigest' -e 'contentType: pkcs7-signedData' "
                            "-e 'eContentType: pkcs7-data'",
                            p_cms),
                     0);
    assert_string_equal(out, "5");
    /* The messageDigest attribute is SM3 of the content. */
    assert_int_equal(tx_run(out, sizeof(out), "openssl dgst -sm3 -r %s | cut -c1-64", p_data), 0);
    out[64] = '\0';
    for (char *c = out; *c; c++)
        *c = (char)(*c >= 'a' ? *c - 'a' + 'A' : *c);
    char printed[4096];
    assert_int_equal(tx_run(printed, sizeof(printed),
                            "openssl asn1parse -inform DER -in %s | grep -A2 ':messageDigest' | "
                            "grep -o 'HEX DUMP.*'",
                            p_cms),
                     0);
    assert_non_null(strstr(printed, out));
    tx_tmpdir_remove(dir);
}

static void test_cms_sm2_sm3_gmt0010_attached_and_detached_verify(void **state)
{
    (void)state;
    uint8_t data[700];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 13 + 1);
    for (int detached = 0; detached <= 1; detached++) {
        uk_cert_info *cert = NULL;
        uint8_t *der = NULL;
        size_t der_len = 0;
        assert_int_equal(make_cms(keys.sm2, keys.sm2, UK_X509_DIGEST_SM3, detached, data,
                                  sizeof(data), &cert, &der, &der_len),
                         UK_OK);
        verifies(der, der_len, detached, data, sizeof(data), cert);
        uk_x509_cms_verified *v = NULL;
        sm2_independent_checks(cert, der, der_len, data, sizeof(data));
        if (detached) {
            data[5] ^= 1; /* other content: the SM3 message digest no longer matches */
            assert_int_equal(uk_x509_cms_verify(der, der_len, data, sizeof(data), &v),
                             UK_E_SIGNATURE_INVALID);
            data[5] ^= 1;
        }
        /* One bit of the signature (the last bytes of the DER) flipped. */
        der[der_len - 3] ^= 1;
        assert_int_equal(uk_x509_cms_verify(der, der_len, detached ? data : NULL,
                                            detached ? sizeof(data) : 0, &v),
                         UK_E_SIGNATURE_INVALID);
        assert_null(v);
        free(der);
        uk_cert_info_free(cert);
    }
}

static void test_cms_sm2_wrong_key_or_digest_is_refused(void **state)
{
    (void)state;
    const uint8_t data[] = "hello";
    uint8_t *der = NULL;
    size_t der_len = 0;
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    assert_non_null(other);
    /* The card signed with another SM2 key. */
    assert_int_equal(
        make_cms(keys.sm2, other, UK_X509_DIGEST_SM3, false, data, 5, NULL, &der, &der_len),
        UK_E_SIGNATURE_INVALID);
    assert_null(der);
    EVP_PKEY_free(other);
    /* GM/T 0010: SM2 goes with SM3 only, and SM3 with SM2 only. */
    tx_spec s = {.key = keys.sm2, .subject = subject};
    uk_cert_info *cert = tx_cert_info(&s);
    uk_x509_cms_sign_req req = {.signer = cert, .digest = UK_X509_DIGEST_SHA256, .data = NULL};
    uk_x509_cms_sign *st = NULL;
    uk_x509_sig_alg alg;
    uint8_t tbs[UK_X509_DIGEST_MAX];
    size_t tbs_len = sizeof(tbs);
    assert_int_equal(uk_x509_cms_sign_begin(&req, &st, &alg, tbs, &tbs_len), UK_E_NOT_SUPPORTED);
    req.digest = UK_X509_DIGEST_SM3;
    assert_int_equal(uk_x509_cms_sign_begin(&req, &st, &alg, tbs, &tbs_len), UK_OK);
    assert_int_equal(alg, UK_X509_SIG_SM2_SM3);
    assert_int_equal(tbs_len, 32);
    uk_x509_cms_sign_free(st);
    st = NULL;
    uk_cert_info_free(cert);
    s.key = keys.p256;
    cert = tx_cert_info(&s);
    req.signer = cert;
    assert_int_equal(uk_x509_cms_sign_begin(&req, &st, &alg, tbs, &tbs_len), UK_E_NOT_SUPPORTED);
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

/* ---- GM/T 0010 EnvelopedData with SM2 key transport, built here (OpenSSL 3.0's CMS cannot) ----
 */

typedef struct dbuf {
    uint8_t *p;
    size_t n;
} dbuf;

static dbuf dcopy(const uint8_t *p, size_t n)
{
    dbuf b = {malloc(n > 0 ? n : 1), n};
    assert_non_null(b.p);
    if (n > 0)
        memcpy(b.p, p, n);
    return b;
}

/* tag, a DER length, then the count parts (each freed). */
static dbuf dtlv(uint8_t tag, int count, ...)
{
    va_list ap;
    dbuf parts[8];
    size_t body = 0;
    assert_true(count >= 0 && count <= 8);
    va_start(ap, count);
    for (int i = 0; i < count; i++) {
        parts[i] = va_arg(ap, dbuf);
        body += parts[i].n;
    }
    va_end(ap);
    assert_true(body <= 0xFFFF);
    uint8_t hdr[4] = {tag};
    size_t h = 1;
    if (body < 0x80) {
        hdr[h++] = (uint8_t)body;
    } else if (body < 0x100) {
        hdr[h++] = 0x81;
        hdr[h++] = (uint8_t)body;
    } else {
        hdr[h++] = 0x82;
        hdr[h++] = (uint8_t)(body >> 8);
        hdr[h++] = (uint8_t)body;
    }
    dbuf out = {malloc(h + body), h + body};
    assert_non_null(out.p);
    memcpy(out.p, hdr, h);
    size_t off = h;
    for (int i = 0; i < count; i++) {
        memcpy(out.p + off, parts[i].p, parts[i].n);
        off += parts[i].n;
        free(parts[i].p);
    }
    return out;
}

static dbuf doid(const char *text)
{
    ASN1_OBJECT *o = OBJ_txt2obj(text, 1);
    assert_non_null(o);
    unsigned char *p = NULL;
    int n = i2d_ASN1_OBJECT(o, &p);
    assert_true(n > 0);
    dbuf b = dcopy(p, (size_t)n);
    OPENSSL_free(p);
    ASN1_OBJECT_free(o);
    return b;
}

/* IssuerAndSerialNumber of a DER certificate. */
static dbuf dissuer_serial(const uk_cert_info *c)
{
    const unsigned char *q = c->der;
    X509 *x = d2i_X509(NULL, &q, (long)c->der_len);
    assert_non_null(x);
    unsigned char *name = NULL, *serial = NULL;
    int nn = i2d_X509_NAME(X509_get_issuer_name(x), &name);
    int sn = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &serial);
    assert_true(nn > 0 && sn > 0);
    dbuf b = dtlv(0x30, 2, dcopy(name, (size_t)nn), dcopy(serial, (size_t)sn));
    OPENSSL_free(name);
    OPENSSL_free(serial);
    X509_free(x);
    return b;
}

/* EnvelopedData of data for cert: KeyTransRecipientInfo with key_alg (OID text), the SM4 key
 * encrypted with SM2 to to_key (a GM/T 0009 SM2Cipher, OpenSSL's EVP_PKEY_encrypt), content
 * SM4-CBC (1.2.156.10197.1.104.2) with the IV as parameter. garble: GARBLE_TAG makes the
 * SM2Cipher's outer SEQUENCE tag a SET (the encrypted key is not an SM2Cipher), GARBLE_C1 moves
 * C1 off the curve (the last byte of x), GARBLE_CIPHER names DES-EDE3-CBC as the content cipher. */
enum { GARBLE_TAG = 1, GARBLE_C1, GARBLE_CIPHER };
static dbuf sm2_envelope(const uk_cert_info *cert, EVP_PKEY *to_key, const char *key_alg,
                         const uint8_t *data, size_t n, int garble)
{
    uint8_t cek[16], iv[16], wrapped[256], enc[256];
    size_t wrapped_len = sizeof(wrapped);
    int l1 = 0, l2 = 0;
    assert_true(n + 16 <= sizeof(enc));
    for (size_t i = 0; i < 16; i++) {
        cek[i] = (uint8_t)(0xA0 + i);
        iv[i] = (uint8_t)(0x10 * i + 1);
    }
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(to_key, NULL);
    assert_non_null(pc);
    assert_int_equal(EVP_PKEY_encrypt_init(pc), 1);
    assert_int_equal(EVP_PKEY_encrypt(pc, wrapped, &wrapped_len, cek, sizeof(cek)), 1);
    EVP_PKEY_CTX_free(pc);
    assert_int_equal(wrapped[0], 0x30);
    assert_true(wrapped[1] < 0x80 && wrapped[2] == 0x02); /* short length, then x */
    if (garble == GARBLE_TAG)
        wrapped[0] = 0x31;
    if (garble == GARBLE_C1)
        wrapped[4 + wrapped[3] - 1] ^= 0x01;
    EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
    assert_non_null(cc);
    assert_int_equal(EVP_EncryptInit_ex(cc, EVP_sm4_cbc(), NULL, cek, iv), 1);
    assert_int_equal(EVP_EncryptUpdate(cc, enc, &l1, data, (int)n), 1);
    assert_int_equal(EVP_EncryptFinal_ex(cc, enc + l1, &l2), 1);
    EVP_CIPHER_CTX_free(cc);
    const uint8_t zero = 0;
    dbuf ktri = dtlv(0x30, 4, dtlv(0x02, 1, dcopy(&zero, 1)), dissuer_serial(cert),
                     dtlv(0x30, 1, doid(key_alg)), dtlv(0x04, 1, dcopy(wrapped, wrapped_len)));
    dbuf eci =
        dtlv(0x30, 3, doid("1.2.840.113549.1.7.1"),
             dtlv(0x30, 2,
                  doid(garble == GARBLE_CIPHER ? "1.2.840.113549.3.7" : "1.2.156.10197.1.104.2"),
                  dtlv(0x04, 1, dcopy(iv, 16))),
             dtlv(0x80, 1, dcopy(enc, (size_t)(l1 + l2))));
    dbuf env = dtlv(0x30, 3, dtlv(0x02, 1, dcopy(&zero, 1)), dtlv(0x31, 1, ktri), eci);
    return dtlv(0x30, 2, doid("1.2.840.113549.1.7.3"), dtlv(0xa0, 1, env));
}

static void test_cms_envelope_sm2_key_transport_sm4_cbc(void **state)
{
    (void)state;
    tx_spec s_sm2 = {.key = keys.sm2, .subject = subject, .serial_hex = "1d"};
    tx_spec s_rsa = {.key = keys.rsa, .subject = subject, .serial_hex = "1e"};
    uk_cert_info *sm2 = tx_cert_info(&s_sm2), *rsa = tx_cert_info(&s_rsa);
    const uk_cert_info *mine[] = {rsa, sm2};
    const uint8_t data[] = "GM/T 0010 数字信封的内容，多于一个分组";
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    assert_non_null(other);
    const char *algs[] = {"1.2.156.10197.1.301.3", "1.2.156.10197.1.301"};
    for (size_t a = 0; a < 2; a++) {
        dbuf der = sm2_envelope(sm2, keys.sm2, algs[a], data, sizeof(data), 0);
        uk_x509_cms_envelope *e = NULL;
        size_t which = 99, in_len = 0;
        const uint8_t *in = NULL;
        uk_x509_unwrap how = 0;
        assert_int_equal(
            uk_x509_cms_envelope_open(der.p, der.n, mine, 2, &e, &which, &how, &in, &in_len),
            UK_OK);
        assert_int_equal(which, 1);
        assert_int_equal(how, UK_X509_UNWRAP_SM2);
        /* The token's part (GM/T 0016 SKF_ImportSessionKey, then SM4-CBC without padding),
         * done here with OpenSSL from what uk_x509_cms_envelope_sm2 hands out. */
        uk_x509_sm2_cipher key;
        uint8_t iv[16];
        const uint8_t *ct = NULL;
        size_t ct_len = 0;
        assert_int_equal(uk_x509_cms_envelope_sm2(e, &key, iv, &ct, &ct_len), UK_OK);
        assert_int_equal(key.c2_len, 16);
        assert_int_equal(ct_len % 16, 0);
        for (size_t i = 0; i < 16; i++)
            assert_int_equal(iv[i], (uint8_t)(0x10 * i + 1));
        uint8_t cek[64];
        size_t cek_len = sizeof(cek);
        EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(keys.sm2, NULL);
        assert_non_null(pc);
        assert_int_equal(EVP_PKEY_decrypt_init(pc), 1);
        assert_int_equal(EVP_PKEY_decrypt(pc, cek, &cek_len, in, in_len), 1);
        EVP_PKEY_CTX_free(pc);
        assert_int_equal(cek_len, 16);
        assert_memory_equal(key.c2, in + in_len - 16, 16); /* C2 is the SM2Cipher's last field */
        uint8_t plain[256];
        int l1 = 0;
        EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
        assert_non_null(cc);
        assert_int_equal(EVP_DecryptInit_ex(cc, EVP_sm4_cbc(), NULL, cek, iv), 1);
        EVP_CIPHER_CTX_set_padding(cc, 0);
        assert_true(ct_len <= sizeof(plain));
        assert_int_equal(EVP_DecryptUpdate(cc, plain, &l1, ct, (int)ct_len), 1);
        EVP_CIPHER_CTX_free(cc);
        assert_int_equal((size_t)l1, ct_len);
        /* the host does not take an SM2 envelope's content key */
        uint8_t *content = NULL;
        size_t content_len = 0;
        assert_int_equal(uk_x509_cms_envelope_finish(e, cek, cek_len, &content, &content_len),
                         UK_E_INVALID_PARAMS);
        /* A short result, then broken padding (every byte of it, and a pad value of 0 and of 17):
         * DECRYPT_FAILED; then the token's. */
        assert_int_equal(uk_x509_cms_envelope_unpad(e, plain, ct_len - 16, &content, &content_len),
                         UK_E_DECRYPT_FAILED);
        unsigned pad = plain[ct_len - 1];
        assert_true(pad >= 1 && pad <= 16);
        for (unsigned i = 1; i <= pad; i++) {
            plain[ct_len - i] ^= 0x40;
            assert_int_equal(uk_x509_cms_envelope_unpad(e, plain, ct_len, &content, &content_len),
                             UK_E_DECRYPT_FAILED);
            plain[ct_len - i] ^= 0x40;
        }
        uint8_t last = plain[ct_len - 1];
        const uint8_t bad_pads[] = {0, 17};
        for (size_t i = 0; i < sizeof(bad_pads); i++) {
            plain[ct_len - 1] = bad_pads[i];
            assert_int_equal(uk_x509_cms_envelope_unpad(e, plain, ct_len, &content, &content_len),
                             UK_E_DECRYPT_FAILED);
        }
        plain[ct_len - 1] = last;
        assert_int_equal(uk_x509_cms_envelope_unpad(e, plain, ct_len, &content, &content_len),
                         UK_OK);
        assert_int_equal(content_len, sizeof(data));
        assert_memory_equal(content, data, sizeof(data));
        OPENSSL_cleanse(cek, sizeof(cek));
        free(content);
        uk_x509_cms_envelope_free(e);
        free(der.p);
    }
    /* For the SM2 certificate, opened with the RSA one only: not for this key. A recipient that
     * names the SM2 certificate with rsaEncryption: NOT_SUPPORTED. An encrypted key that is not an
     * SM2Cipher: DECRYPT_FAILED, before the card is asked. */
    uk_x509_cms_envelope *e = NULL;
    size_t which = 0, in_len = 0;
    const uint8_t *in = NULL;
    uk_x509_unwrap how = 0;
    dbuf der = sm2_envelope(sm2, other, "1.2.156.10197.1.301.3", data, sizeof(data), 0);
    const uk_cert_info *only_rsa[] = {rsa};
    assert_int_equal(
        uk_x509_cms_envelope_open(der.p, der.n, only_rsa, 1, &e, &which, &how, &in, &in_len),
        UK_E_DECRYPT_FAILED);
    free(der.p);
    der = sm2_envelope(sm2, keys.sm2, "1.2.840.113549.1.1.1", data, sizeof(data), 0);
    assert_int_equal(
        uk_x509_cms_envelope_open(der.p, der.n, mine, 2, &e, &which, &how, &in, &in_len),
        UK_E_NOT_SUPPORTED);
    free(der.p);
    der = sm2_envelope(sm2, keys.sm2, "1.2.156.10197.1.301.3", data, sizeof(data), GARBLE_TAG);
    assert_int_equal(
        uk_x509_cms_envelope_open(der.p, der.n, mine, 2, &e, &which, &how, &in, &in_len),
        UK_E_DECRYPT_FAILED);
    free(der.p);
    /* C1 off the curve: DECRYPT_FAILED; content that is not SM4-CBC: NOT_SUPPORTED (a token
     * decrypts SM4 only); both before the token is asked. */
    const int late[] = {GARBLE_C1, GARBLE_CIPHER};
    const int late_rc[] = {UK_E_DECRYPT_FAILED, UK_E_NOT_SUPPORTED};
    for (size_t i = 0; i < 2; i++) {
        der = sm2_envelope(sm2, keys.sm2, "1.2.156.10197.1.301.3", data, sizeof(data), late[i]);
        assert_int_equal(
            uk_x509_cms_envelope_open(der.p, der.n, mine, 2, &e, &which, &how, &in, &in_len),
            UK_OK);
        uk_x509_sm2_cipher key;
        uint8_t iv[16];
        const uint8_t *ct = NULL;
        size_t ct_len = 0;
        assert_int_equal(uk_x509_cms_envelope_sm2(e, &key, iv, &ct, &ct_len), late_rc[i]);
        uk_x509_cms_envelope_free(e);
        e = NULL;
        free(der.p);
    }
    EVP_PKEY_free(other);
    uk_cert_info_free(sm2);
    uk_cert_info_free(rsa);
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
        cmocka_unit_test(test_cms_sm2_sm3_gmt0010_attached_and_detached_verify),
        cmocka_unit_test(test_cms_sm2_wrong_key_or_digest_is_refused),
        cmocka_unit_test(test_cms_verify_refuses_garbage_and_missing_content),
        cmocka_unit_test(test_cms_envelope_recipients_and_ciphers),
        cmocka_unit_test(test_cms_envelope_sm2_key_transport_sm4_cbc),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
