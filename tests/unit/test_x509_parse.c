/*
 * uk_x509_parse: the fields of RSA, EC, SM2 and Ed25519 certificates (names with Chinese text and
 * multi-valued RDNs, serials, dates, key and extended key usage, fingerprint, SPKI, CA and
 * self-signed flags), cross-checked with the openssl CLI, and the rejection of malformed input
 * (empty, every truncation, trailing bytes, random bytes, PEM, BER, mismatched fields) with one
 * debug line, an empty OpenSSL error queue and no leak.
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

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "test_x509_helpers.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_x509.h"

static tx_keys keys;

static const tx_attr zhang_san[] = {
    {"C", "CN", false, 0, 0},
    {"O", "国家医疗保障局", false, 0, 0},
    {"CN", "张三", false, 0, 0},
    {NULL, NULL, false, 0, 0},
};

static const tx_attr alice[] = {
    {"C", "US", false, 0, 0},
    {"O", "Example Corp", false, 0, 0},
    {"CN", "Alice", false, 0, 0},
    {NULL, NULL, false, 0, 0},
};

static const tx_attr example_ca[] = {
    {"C", "US", false, 0, 0},
    {"O", "Example Corp", false, 0, 0},
    {"CN", "Example CA", false, 0, 0},
    {NULL, NULL, false, 0, 0},
};

/* ---- log capture ------------------------------------------------------------------------- */

struct logcap {
    int lines;
    int above_debug;
    char last[512];
};

static struct logcap cap;

static void capture(void *ctx, uk_log_level level, const char *line, size_t len)
{
    (void)ctx;
    cap.lines++;
    if (level < UK_LOG_LEVEL_DEBUG)
        cap.above_debug++;
    snprintf(cap.last, sizeof(cap.last), "%.*s", (int)len, line);
}

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

static int setup(void **state)
{
    (void)state;
    memset(&cap, 0, sizeof(cap));
    uk_log_set_sink(capture, NULL);
    uk_log_set_level(UK_LOG_LEVEL_DEBUG);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uk_log_set_sink(NULL, NULL);
    uk_log_set_level(UK_LOG_LEVEL_INFO);
    return 0;
}

/* Parse must fail with CERT_INVALID, log exactly one debug line and leave the queue empty. */
static void assert_rejected(const uint8_t *der, size_t len)
{
    uk_cert_info *c = (uk_cert_info *)(uintptr_t)0x1; /* must stay untouched */
    int before = cap.lines;
    assert_int_equal(uk_x509_parse(der, len, &c), UK_E_CERT_INVALID);
    assert_ptr_equal(c, (uk_cert_info *)(uintptr_t)0x1);
    assert_int_equal(cap.lines - before, 1);
    assert_int_equal(cap.above_debug, 0);
    assert_int_equal(ERR_peek_error(), 0);
}

static void assert_name_part(const uk_x509_name *n, size_t i, const char *type, const char *value,
                             size_t rdn)
{
    assert_true(i < n->n_parts);
    assert_string_equal(n->parts[i].type, type);
    assert_string_equal(n->parts[i].value, value);
    assert_int_equal(n->parts[i].rdn, rdn);
    assert_false(n->parts[i].der_hex);
}

static void sha256_hex(const uint8_t *p, size_t n, char out[65])
{
    uint8_t md[32];
    size_t len = sizeof(md);
    assert_int_equal(uk_x509_digest(UK_X509_DIGEST_SHA256, p, n, md, &len), UK_OK);
    for (size_t i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- fields ------------------------------------------------------------------------------ */

static void test_x509_parse_rsa2048_reports_every_field(void **state)
{
    (void)state;
    const tx_ext ext[] = {
        {"basicConstraints", "critical,CA:FALSE"},
        {"keyUsage", "critical,digitalSignature,nonRepudiation"},
        {"extendedKeyUsage", "clientAuth,emailProtection,1.2.3.4.5"},
        {NULL, NULL},
    };
    tx_spec s = {.key = keys.rsa,
                 .issuer_key = keys.rsa_b,
                 .subject = alice,
                 .issuer = example_ca,
                 .serial_hex = "0123456789ABCDEF",
                 .ext = ext};
    uint8_t *der = NULL;
    size_t len = 0;
    tx_cert_der(&s, &der, &len);
    uk_cert_info *c = tx_parse_ok(der, len);

    assert_int_equal(c->der_len, len);
    assert_memory_equal(c->der, der, len);
    assert_int_equal(c->version, 3);
    assert_string_equal(c->subject.rfc4514, "CN=Alice,O=Example Corp,C=US");
    assert_int_equal(c->subject.n_parts, 3);
    assert_name_part(&c->subject, 0, "C", "US", 0);
    assert_name_part(&c->subject, 1, "O", "Example Corp", 1);
    assert_name_part(&c->subject, 2, "CN", "Alice", 2);
    assert_string_equal(c->issuer.rfc4514, "CN=Example CA,O=Example Corp,C=US");
    assert_int_equal(c->issuer.n_parts, 3);
    assert_name_part(&c->issuer, 2, "CN", "Example CA", 2);
    assert_string_equal(c->serial, "0123456789abcdef");
    assert_int_equal(c->not_before, TX_NOT_BEFORE);
    assert_int_equal(c->not_after, TX_NOT_AFTER);
    assert_string_equal(c->not_before_iso, "2026-01-01T00:00:00Z");
    assert_string_equal(c->not_after_iso, "2027-11-24T08:00:00Z");
    assert_string_equal(c->key_alg, "RSA");
    assert_int_equal(c->key_bits, 2048);
    assert_string_equal(c->curve, "");
    assert_string_equal(c->sig_alg, "sha256WithRSAEncryption");
    assert_true(c->has_key_usage);
    assert_int_equal(c->key_usage, UK_X509_KU_DIGITAL_SIGNATURE | UK_X509_KU_NON_REPUDIATION);
    assert_int_equal(c->n_key_usage, 2);
    assert_string_equal(c->key_usage_names[0], "digitalSignature");
    assert_string_equal(c->key_usage_names[1], "nonRepudiation");
    assert_true(c->has_ext_key_usage);
    assert_int_equal(c->n_ext_key_usage, 3);
    assert_string_equal(c->ext_key_usage[0], "clientAuth");
    assert_string_equal(c->ext_key_usage[1], "emailProtection");
    assert_string_equal(c->ext_key_usage[2], "1.2.3.4.5");
    char fp[65];
    sha256_hex(der, len, fp);
    assert_string_equal(c->fingerprint_sha256, fp);
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    tx_spki(keys.rsa, false, &spki, &spki_len);
    assert_int_equal(c->spki_len, spki_len);
    assert_memory_equal(c->spki, spki, spki_len);
    assert_false(c->is_ca);
    assert_false(c->self_signed);

    free(spki);
    free(der);
    uk_cert_info_free(c);
}

static void test_x509_parse_ec_p256_reports_curve_and_bits(void **state)
{
    (void)state;
    tx_spec s = {.key = keys.p256, .subject = alice};
    uk_cert_info *c = tx_cert_info(&s);
    assert_string_equal(c->key_alg, "EC");
    assert_string_equal(c->curve, "P-256");
    assert_int_equal(c->key_bits, 256);
    assert_string_equal(c->sig_alg, "ecdsa-with-SHA256");
    assert_true(c->self_signed);
    assert_false(c->is_ca);
    assert_false(c->has_key_usage);
    assert_int_equal(c->key_usage, 0);
    assert_int_equal(c->n_key_usage, 0);
    assert_false(c->has_ext_key_usage);
    assert_int_equal(c->n_ext_key_usage, 0);
    assert_null(c->ext_key_usage);
    uk_cert_info_free(c);
}

static void test_x509_parse_ec_p384_reports_curve_and_bits(void **state)
{
    (void)state;
    tx_spec s = {.key = keys.p384, .subject = alice, .md = "SHA384"};
    uk_cert_info *c = tx_cert_info(&s);
    assert_string_equal(c->key_alg, "EC");
    assert_string_equal(c->curve, "P-384");
    assert_int_equal(c->key_bits, 384);
    assert_string_equal(c->sig_alg, "ecdsa-with-SHA384");
    uk_cert_info_free(c);
}

static void test_x509_parse_sm2_keeps_chinese_names_intact(void **state)
{
    (void)state;
    const tx_ext ext[] = {
        {"keyUsage", "critical,digitalSignature,nonRepudiation"},
        {NULL, NULL},
    };
    tx_spec s = {.key = keys.sm2, .subject = zhang_san, .serial_hex = "1A2B", .ext = ext};
    uk_cert_info *c = tx_cert_info(&s);
    assert_string_equal(c->subject.rfc4514, "CN=张三,O=国家医疗保障局,C=CN");
    assert_string_equal(c->issuer.rfc4514, "CN=张三,O=国家医疗保障局,C=CN");
    assert_int_equal(c->subject.n_parts, 3);
    assert_name_part(&c->subject, 0, "C", "CN", 0);
    assert_name_part(&c->subject, 1, "O", "国家医疗保障局", 1);
    assert_name_part(&c->subject, 2, "CN", "张三", 2);
    assert_string_equal(c->key_alg, "SM2");
    assert_string_equal(c->curve, "SM2");
    assert_int_equal(c->key_bits, 256);
    assert_string_equal(c->sig_alg, "SM2-with-SM3");
    assert_string_equal(c->serial, "1a2b");
    /* Self-signed with ID 1234567812345678, which the parser sets for the check. */
    assert_true(c->self_signed);
    uk_cert_info_free(c);
}

static void test_x509_parse_sm2_signed_with_empty_id_is_not_self_signed(void **state)
{
    (void)state;
    tx_spec s = {.key = keys.sm2, .subject = zhang_san, .sm2_id = ""};
    uk_cert_info *c = tx_cert_info(&s);
    assert_false(c->self_signed);
    uk_cert_info_free(c);
}

static void test_x509_parse_multi_valued_rdn_shares_an_index(void **state)
{
    (void)state;
    const tx_attr subject[] = {
        {"C", "CN", false, 0, 0},    {"O", "国家医疗保障局", false, 0, 0},
        {"CN", "张三", false, 0, 0}, {"UID", "u123", true, 0, 0},
        {"OU", "医保", false, 0, 0}, {NULL, NULL, false, 0, 0},
    };
    tx_spec s = {.key = keys.p256, .subject = subject};
    uk_cert_info *c = tx_cert_info(&s);
    assert_string_equal(c->subject.rfc4514, "OU=医保,UID=u123+CN=张三,O=国家医疗保障局,C=CN");
    assert_int_equal(c->subject.n_parts, 5);
    assert_name_part(&c->subject, 0, "C", "CN", 0);
    assert_name_part(&c->subject, 1, "O", "国家医疗保障局", 1);
    /* The string reverses the attributes inside an RDN too; their order carries no meaning. */
    assert_name_part(&c->subject, 2, "CN", "张三", 2);
    assert_name_part(&c->subject, 3, "UID", "u123", 2);
    assert_name_part(&c->subject, 4, "OU", "医保", 3);
    uk_cert_info_free(c);
}

static void test_x509_parse_escapes_specials_in_rfc4514_only(void **state)
{
    (void)state;
    const tx_attr subject[] = {
        {"CN", "#1 Smith, J.+Co \"Q\" <a;b>\\", false, 0, 0},
        {"O", " padded ", false, 0, 0},
        {NULL, NULL, false, 0, 0},
    };
    tx_spec s = {.key = keys.p256, .subject = subject};
    uk_cert_info *c = tx_cert_info(&s);
    assert_string_equal(c->subject.rfc4514,
                        "O=\\ padded\\ ,CN=\\#1 Smith\\, J.\\+Co \\\"Q\\\" \\<a\\;b\\>\\\\");
    assert_name_part(&c->subject, 0, "CN", "#1 Smith, J.+Co \"Q\" <a;b>\\", 0);
    assert_name_part(&c->subject, 1, "O", " padded ", 1);
    uk_cert_info_free(c);
}

static void test_x509_parse_converts_other_string_types_to_utf8(void **state)
{
    (void)state;
    const tx_attr subject[] = {
        {"C", "CN", false, 0, 0},
        /* BMPString "张三" (UTF-16BE 5F20 4E09) */
        {"CN", "\x5f\x20\x4e\x09", false, V_ASN1_BMPSTRING, 4},
        {"emailAddress", "zs@example.cn", false, V_ASN1_IA5STRING, 0},
        /* An attribute type OpenSSL has no name for, as Chinese CAs use */
        {"1.2.156.10260.4.1.1", "测试", false, V_ASN1_UTF8STRING, 0},
        {NULL, NULL, false, 0, 0},
    };
    tx_spec s = {.key = keys.p256, .subject = subject};
    uk_cert_info *c = tx_cert_info(&s);
    assert_string_equal(c->subject.rfc4514, "1.2.156.10260.4.1.1=#0C06E6B58BE8AF95,"
                                            "emailAddress=zs@example.cn,CN=张三,C=CN");
    assert_int_equal(c->subject.n_parts, 4);
    assert_name_part(&c->subject, 1, "CN", "张三", 1);
    assert_name_part(&c->subject, 2, "emailAddress", "zs@example.cn", 2);
    assert_name_part(&c->subject, 3, "1.2.156.10260.4.1.1", "测试", 3);
    uk_cert_info_free(c);
}

static void test_x509_parse_non_string_value_as_der_hex(void **state)
{
    (void)state;
    /* A SEQUENCE { INTEGER 5 } where a string belongs: the whole encoding, in hex. */
    const tx_attr subject[] = {
        {"CN", "\x30\x03\x02\x01\x05", false, V_ASN1_SEQUENCE, 0},
        {NULL, NULL, false, 0, 0},
    };
    tx_spec s = {.key = keys.p256, .subject = subject};
    uk_cert_info *c = tx_cert_info(&s);
    assert_string_equal(c->subject.rfc4514, "CN=#3003020105");
    assert_string_equal(c->subject.parts[0].type, "CN");
    assert_string_equal(c->subject.parts[0].value, "#3003020105");
    assert_true(c->subject.parts[0].der_hex);
    uk_cert_info_free(c);
}

static void test_x509_parse_empty_subject_is_empty_string(void **state)
{
    (void)state;
    const tx_ext ext[] = {{"subjectAltName", "critical,email:a@example.com"}, {NULL, NULL}};
    tx_spec s = {.key = keys.p256, .subject = NULL, .issuer = example_ca, .ext = ext};
    uk_cert_info *c = tx_cert_info(&s);
    assert_string_equal(c->subject.rfc4514, "");
    assert_int_equal(c->subject.n_parts, 0);
    assert_null(c->subject.parts);
    uk_cert_info_free(c);
}

/*
 * A certificate whose CN (a string of type type) holds bad bytes. OpenSSL will not encode most
 * of these, so the certificate is made with a placeholder of the same length, patched in the DER.
 */
static void reject_name(int type, const char *bad, size_t len)
{
    char placeholder[32];
    assert_true(len < sizeof(placeholder));
    memset(placeholder, 'Q', len);
    placeholder[len] = 0;
    const tx_attr subject[] = {{"CN", placeholder, false, type, 0}, {NULL, NULL, false, 0, 0}};
    tx_spec s = {.key = keys.p256, .subject = subject, .issuer = alice};
    uint8_t *der = NULL;
    size_t dl = 0;
    tx_cert_der(&s, &der, &dl);
    uint8_t *at = memmem(der, dl, placeholder, len);
    assert_non_null(at);
    memcpy(at, bad, len);
    assert_rejected(der, dl);
    free(der);
}

static void test_x509_parse_rejects_names_that_are_not_text(void **state)
{
    (void)state;
    reject_name(V_ASN1_UTF8STRING, "a\xc3\x28", 3);            /* truncated sequence */
    reject_name(V_ASN1_UTF8STRING, "\xc0\xaf", 2);             /* overlong '/' */
    reject_name(V_ASN1_UTF8STRING, "\xed\xa0\x80", 3);         /* surrogate D800 */
    reject_name(V_ASN1_UTF8STRING, "\xf4\x90\x80\x80", 4);     /* beyond U+10FFFF */
    reject_name(V_ASN1_BMPSTRING, "\xd8\x00", 2);              /* lone surrogate */
    reject_name(V_ASN1_UTF8STRING, "bank.example\0.evil", 18); /* a NUL */
    reject_name(V_ASN1_BMPSTRING, "\x00\x00", 2);              /* a NUL */
}

static void test_x509_parse_serial_is_minimal_lowercase_hex(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"0", "00"},
        {"01", "01"},
        {"7F", "7f"},
        {"80", "80"}, /* DER 02 02 00 80: the sign byte is not shown */
        {"100", "0100"},
        {"00FF", "ff"},
        {"-01", "-01"},
        {"7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "7fffffffffffffffffffffffffffffffffffffff"},
        {"8000000000000000000000000000000000000000", "8000000000000000000000000000000000000000"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tx_spec s = {.key = keys.p256, .subject = alice, .serial_hex = cases[i].in};
        uk_cert_info *c = tx_cert_info(&s);
        assert_string_equal(c->serial, cases[i].out);
        uk_cert_info_free(c);
    }
}

static void test_x509_parse_dates_in_utctime_and_generalizedtime(void **state)
{
    (void)state;
    static const struct {
        time_t t;
        const char *iso;
    } cases[] = {
        {946684799, "1999-12-31T23:59:59Z"},    /* UTCTime 99... */
        {2524607999, "2049-12-31T23:59:59Z"},   /* last UTCTime */
        {2524608000, "2050-01-01T00:00:00Z"},   /* first GeneralizedTime */
        {253402300799, "9999-12-31T23:59:59Z"}, /* "no well-defined expiration" */
        {-631152000, "1950-01-01T00:00:00Z"},   /* first UTCTime, before the epoch */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tx_spec s = {
            .key = keys.p256, .subject = alice, .not_before = cases[i].t, .not_after = cases[i].t};
        uk_cert_info *c = tx_cert_info(&s);
        assert_int_equal(c->not_before, cases[i].t);
        assert_int_equal(c->not_after, cases[i].t);
        assert_string_equal(c->not_before_iso, cases[i].iso);
        assert_string_equal(c->not_after_iso, cases[i].iso);
        uk_cert_info_free(c);
    }
}

static void test_x509_parse_names_every_key_usage_and_known_eku(void **state)
{
    (void)state;
    const tx_ext ext[] = {
        {"keyUsage", "digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment,"
                     "keyAgreement,keyCertSign,cRLSign,encipherOnly,decipherOnly"},
        {"extendedKeyUsage", "serverAuth,clientAuth,codeSigning,emailProtection,timeStamping,"
                             "OCSPSigning,anyExtendedKeyUsage,msSmartcardLogin,1.2.156.1"},
        {NULL, NULL},
    };
    tx_spec s = {.key = keys.p256, .subject = alice, .ext = ext};
    uk_cert_info *c = tx_cert_info(&s);
    static const char *const ku[] = {"digitalSignature", "nonRepudiation", "keyEncipherment",
                                     "dataEncipherment", "keyAgreement",   "keyCertSign",
                                     "cRLSign",          "encipherOnly",   "decipherOnly"};
    assert_true(c->has_key_usage);
    assert_int_equal(c->key_usage, (1u << UK_X509_KU_COUNT) - 1);
    assert_int_equal(c->n_key_usage, UK_X509_KU_COUNT);
    for (size_t i = 0; i < UK_X509_KU_COUNT; i++)
        assert_string_equal(c->key_usage_names[i], ku[i]);
    static const char *const eku[] = {"serverAuth",          "clientAuth",       "codeSigning",
                                      "emailProtection",     "timeStamping",     "OCSPSigning",
                                      "anyExtendedKeyUsage", "msSmartcardLogin", "1.2.156.1"};
    assert_int_equal(c->n_ext_key_usage, 9);
    for (size_t i = 0; i < 9; i++)
        assert_string_equal(c->ext_key_usage[i], eku[i]);
    uk_cert_info_free(c);
}

static void test_x509_parse_key_agreement_only_bit(void **state)
{
    (void)state;
    const tx_ext ext[] = {{"keyUsage", "keyAgreement"}, {NULL, NULL}};
    tx_spec s = {.key = keys.p256, .subject = alice, .ext = ext};
    uk_cert_info *c = tx_cert_info(&s);
    assert_int_equal(c->key_usage, UK_X509_KU_KEY_AGREEMENT);
    assert_int_equal(c->n_key_usage, 1);
    assert_string_equal(c->key_usage_names[0], "keyAgreement");
    uk_cert_info_free(c);
}

static void test_x509_parse_ca_and_self_signed_flags(void **state)
{
    (void)state;
    const tx_ext ca_ext[] = {
        {"basicConstraints", "critical,CA:TRUE,pathlen:0"},
        {"keyUsage", "critical,keyCertSign,cRLSign"},
        {"subjectKeyIdentifier", "hash"},
        {NULL, NULL},
    };
    tx_spec ca = {.key = keys.rsa_b, .subject = example_ca, .ext = ca_ext};
    uk_cert_info *c = tx_cert_info(&ca);
    assert_true(c->is_ca);
    assert_true(c->self_signed);
    assert_int_equal(c->key_usage, UK_X509_KU_KEY_CERT_SIGN | UK_X509_KU_CRL_SIGN);
    uk_cert_info_free(c);

    /* Issued by that CA: neither. */
    tx_spec leaf = {
        .key = keys.p256, .issuer_key = keys.rsa_b, .subject = alice, .issuer = example_ca};
    c = tx_cert_info(&leaf);
    assert_false(c->is_ca);
    assert_false(c->self_signed);
    uk_cert_info_free(c);

    /* Subject equal to issuer but signed by another key: not self-signed. */
    tx_spec same_name = {.key = keys.p256, .issuer_key = keys.p256_b, .subject = alice};
    c = tx_cert_info(&same_name);
    assert_string_equal(c->subject.rfc4514, c->issuer.rfc4514);
    assert_false(c->self_signed);
    uk_cert_info_free(c);
}

static void test_x509_parse_ed25519(void **state)
{
    (void)state;
    tx_spec s = {.key = keys.ed25519, .subject = alice};
    uk_cert_info *c = tx_cert_info(&s);
    assert_string_equal(c->key_alg, "Ed25519");
    assert_string_equal(c->curve, "");
    assert_int_equal(c->key_bits, 256);
    assert_string_equal(c->sig_alg, "ED25519");
    assert_true(c->self_signed);
    uk_cert_info_free(c);
}

static void test_x509_parse_rsa_pss_signed_certificate(void **state)
{
    (void)state;
    /* X509_sign_ctx picks PSS from the context; here only the name of the algorithm matters. */
    EVP_PKEY *pss = NULL;
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
    assert_non_null(kc);
    assert_int_equal(EVP_PKEY_keygen_init(kc), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(kc, 2048), 1);
    assert_int_equal(EVP_PKEY_generate(kc, &pss), 1);
    EVP_PKEY_CTX_free(kc);
    tx_spec s = {.key = pss, .subject = alice};
    uk_cert_info *c = tx_cert_info(&s);
    assert_string_equal(c->key_alg, "RSA-PSS");
    assert_int_equal(c->key_bits, 2048);
    assert_string_equal(c->sig_alg, "rsassaPss");
    assert_true(c->self_signed);
    uk_cert_info_free(c);
    EVP_PKEY_free(pss);
}

/* ---- the openssl CLI as a second opinion ------------------------------------------------ */

static void cli_compare(const uint8_t *der, size_t len, const uk_cert_info *c)
{
    char dir[128];
    char path[256];
    char out[1024];
    tx_tmpdir_make(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/c.der", dir);
    tx_write_file(path, der, len);

    assert_int_equal(tx_run(out, sizeof(out),
                            "openssl x509 -inform DER -in '%s' -noout -fingerprint -sha256", path),
                     0);
    char *fp = strchr(out, '=');
    assert_non_null(fp);
    tx_lower_nocolon(fp + 1);
    assert_string_equal(fp + 1, c->fingerprint_sha256);

    assert_int_equal(
        tx_run(out, sizeof(out), "openssl x509 -inform DER -in '%s' -noout -serial", path), 0);
    tx_lower_nocolon(out);
    assert_string_equal(out + strlen("serial="), c->serial);

    assert_int_equal(tx_run(out, sizeof(out),
                            "openssl x509 -inform DER -in '%s' -noout -subject -nameopt "
                            "RFC2253,-esc_msb",
                            path),
                     0);
    assert_string_equal(out + strlen("subject="), c->subject.rfc4514);

    assert_int_equal(tx_run(out, sizeof(out),
                            "openssl x509 -inform DER -in '%s' -noout -startdate -dateopt "
                            "iso_8601",
                            path),
                     0);
    /* "notBefore=2026-01-01 00:00:00Z" */
    char *sp = strchr(out, ' ');
    assert_non_null(sp);
    *sp = 'T';
    assert_string_equal(out + strlen("notBefore="), c->not_before_iso);
    tx_tmpdir_remove(dir);
}

static void test_x509_parse_agrees_with_openssl_cli(void **state)
{
    (void)state;
    if (!tx_have_openssl_cli())
        skip();
    const tx_spec specs[] = {
        {.key = keys.sm2, .subject = zhang_san, .serial_hex = "00ABCDEF0123"},
        {.key = keys.rsa,
         .issuer_key = keys.rsa_b,
         .subject = alice,
         .issuer = example_ca,
         .serial_hex = "8000000000000000000000000000000000000001"},
        {.key = keys.p384, .subject = alice, .serial_hex = "0", .md = "SHA384"},
    };
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        uint8_t *der = NULL;
        size_t len = 0;
        tx_cert_der(&specs[i], &der, &len);
        uk_cert_info *c = tx_parse_ok(der, len);
        cli_compare(der, len, c);
        uk_cert_info_free(c);
        free(der);
    }
}

static void test_x509_parse_sm2_certificate_made_by_openssl_cli(void **state)
{
    (void)state;
    if (!tx_have_openssl_cli())
        skip();
    char dir[128];
    tx_tmpdir_make(dir, sizeof(dir));
    assert_int_equal(
        tx_run(NULL, 0,
               "cd '%s' && openssl genpkey -algorithm SM2 -out k.pem 2>/dev/null && "
               "openssl req -x509 -key k.pem -sm3 -sigopt distid:1234567812345678 -utf8 "
               "-subj '/C=CN/O=国家医疗保障局/CN=张三' -set_serial 0x00C0FFEE -days 365 "
               "-addext 'keyUsage=critical,digitalSignature' -outform DER -out c.der 2>/dev/null",
               dir),
        0);
    char path[256];
    snprintf(path, sizeof(path), "%s/c.der", dir);
    size_t len = 0;
    uint8_t *der = tx_read_file(path, &len);
    uk_cert_info *c = tx_parse_ok(der, len);
    assert_string_equal(c->subject.rfc4514, "CN=张三,O=国家医疗保障局,C=CN");
    assert_name_part(&c->subject, 2, "CN", "张三", 2);
    assert_string_equal(c->key_alg, "SM2");
    assert_string_equal(c->curve, "SM2");
    assert_string_equal(c->sig_alg, "SM2-with-SM3");
    assert_string_equal(c->serial, "c0ffee");
    assert_true(c->self_signed);
    assert_int_equal(c->key_usage, UK_X509_KU_DIGITAL_SIGNATURE);
    assert_int_equal(c->not_after - c->not_before, 365 * 86400);
    cli_compare(der, len, c);
    uk_cert_info_free(c);
    free(der);
    tx_tmpdir_remove(dir);
}

/* ---- malformed input --------------------------------------------------------------------- */

static void make_rsa_leaf(uint8_t **der, size_t *len)
{
    const tx_ext ext[] = {
        {"keyUsage", "critical,digitalSignature"},
        {"extendedKeyUsage", "clientAuth"},
        {NULL, NULL},
    };
    tx_spec s = {.key = keys.rsa,
                 .issuer_key = keys.rsa_b,
                 .subject = zhang_san,
                 .issuer = example_ca,
                 .ext = ext};
    tx_cert_der(&s, der, len);
}

static void test_x509_parse_rejects_bad_arguments(void **state)
{
    (void)state;
    uk_cert_info *c = NULL;
    uint8_t byte = 0x30;
    assert_int_equal(uk_x509_parse(NULL, 5, &c), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_parse(&byte, 1, NULL), UK_E_INVALID_PARAMS);
    assert_null(c);
    uk_cert_info_free(NULL);
}

static void test_x509_parse_rejects_empty_input(void **state)
{
    (void)state;
    uint8_t byte = 0x30;
    assert_rejected(&byte, 0);
    assert_rejected(NULL, 0);
}

static void test_x509_parse_rejects_every_truncation(void **state)
{
    (void)state;
    uint8_t *der = NULL;
    size_t len = 0;
    make_rsa_leaf(&der, &len);
    for (size_t n = 1; n < len; n++) {
        /* An exact-size copy, so that ASan sees any read past the end. */
        uint8_t *p = malloc(n);
        assert_non_null(p);
        memcpy(p, der, n);
        assert_rejected(p, n);
        free(p);
    }
    free(der);
}

static void test_x509_parse_rejects_trailing_bytes(void **state)
{
    (void)state;
    uint8_t *der = NULL;
    size_t len = 0;
    make_rsa_leaf(&der, &len);
    uint8_t *p = malloc(2 * len);
    assert_non_null(p);
    memcpy(p, der, len);
    p[len] = 0;
    assert_rejected(p, len + 1);
    memcpy(p + len, "abc", 3);
    assert_rejected(p, len + 3);
    memcpy(p + len, der, len); /* two certificates */
    assert_rejected(p, 2 * len);
    free(p);
    free(der);
}

static void test_x509_parse_rejects_random_bytes(void **state)
{
    (void)state;
    uint64_t seed = 0x5eed0f0ce7ab1e5ULL;
    uint8_t buf[700];
    for (int i = 0; i < 2000; i++) {
        uint8_t lb[2];
        tx_prng_fill(&seed, lb, sizeof(lb));
        size_t n = 1 + ((size_t)lb[0] << 8 | lb[1]) % sizeof(buf);
        tx_prng_fill(&seed, buf, n);
        if (i % 2 == 1 && n > 4) {
            /* A plausible outer header, so the decoder goes further in. */
            buf[0] = 0x30;
            buf[1] = 0x82;
            buf[2] = (uint8_t)((n - 4) >> 8);
            buf[3] = (uint8_t)(n - 4);
        }
        uint8_t *p = malloc(n);
        assert_non_null(p);
        memcpy(p, buf, n);
        assert_rejected(p, n);
        free(p);
    }
}

static void test_x509_parse_rejects_pem(void **state)
{
    (void)state;
    uint8_t *der = NULL;
    size_t len = 0;
    make_rsa_leaf(&der, &len);
    const unsigned char *q = der;
    X509 *x = d2i_X509(NULL, &q, (long)len);
    assert_non_null(x);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_X509(bio, x), 1);
    char *pem = NULL;
    long pl = BIO_get_mem_data(bio, &pem);
    assert_true(pl > 0);
    assert_rejected((const uint8_t *)pem, (size_t)pl);
    BIO_free(bio);
    X509_free(x);
    free(der);
}

static void test_x509_parse_rejects_oversized_input(void **state)
{
    (void)state;
    uint8_t *der = NULL;
    size_t len = 0;
    make_rsa_leaf(&der, &len);
    uint8_t *p = calloc(1, UK_X509_DER_MAX + 1);
    assert_non_null(p);
    memcpy(p, der, len);
    assert_rejected(p, UK_X509_DER_MAX + 1);
    free(p);
    free(der);
}

/* A copy of der with a non-minimal length: the header at off (30 82 hi lo) becomes 30 83 00 hi
 * lo, and every enclosing length (given as offsets of their 30 82 headers) grows by one. */
static uint8_t *long_form(const uint8_t *der, size_t len, size_t off, const size_t *outer,
                          size_t n_outer)
{
    uint8_t *p = malloc(len + 1);
    assert_non_null(p);
    assert_int_equal(der[off], 0x30);
    assert_int_equal(der[off + 1], 0x82);
    memcpy(p, der, off + 1);
    p[off + 1] = 0x83;
    p[off + 2] = 0x00;
    memcpy(p + off + 3, der + off + 2, len - off - 2);
    for (size_t i = 0; i < n_outer; i++) {
        size_t o = outer[i];
        assert_int_equal(p[o + 1], 0x82);
        unsigned v = ((unsigned)p[o + 2] << 8 | p[o + 3]) + 1;
        p[o + 2] = (uint8_t)(v >> 8);
        p[o + 3] = (uint8_t)v;
    }
    return p;
}

static void test_x509_parse_rejects_ber_lengths(void **state)
{
    (void)state;
    uint8_t *der = NULL;
    size_t len = 0;
    make_rsa_leaf(&der, &len);
    /* Outer SEQUENCE at 0, tbsCertificate at 4, both with two-byte lengths for RSA-2048. */
    uint8_t *outer = long_form(der, len, 0, NULL, 0);
    assert_rejected(outer, len + 1);
    const size_t enclosing[] = {0};
    uint8_t *tbs = long_form(der, len, 4, enclosing, 1);
    assert_rejected(tbs, len + 1);
    free(outer);
    free(tbs);
    free(der);
}

static void test_x509_parse_rejects_indefinite_length(void **state)
{
    (void)state;
    uint8_t *der = NULL;
    size_t len = 0;
    make_rsa_leaf(&der, &len);
    /* 30 82 hi lo <content> -> 30 80 <content> 00 00 */
    uint8_t *p = malloc(len);
    assert_non_null(p);
    p[0] = 0x30;
    p[1] = 0x80;
    memcpy(p + 2, der + 4, len - 4);
    p[len - 2] = 0;
    p[len - 1] = 0;
    assert_rejected(p, len);
    free(p);
    free(der);
}

/* Position of needle in hay (the last match when last), asserting there is one. */
static size_t find(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m, bool last)
{
    size_t found = SIZE_MAX;
    for (size_t i = 0; i + m <= n; i++) {
        if (memcmp(hay + i, needle, m) == 0) {
            found = i;
            if (!last)
                break;
        }
    }
    assert_true(found != SIZE_MAX);
    return found;
}

static void test_x509_parse_rejects_signature_algorithm_mismatch(void **state)
{
    (void)state;
    tx_spec s = {.key = keys.p256, .subject = alice};
    uint8_t *der = NULL;
    size_t len = 0;
    tx_cert_der(&s, &der, &len);
    /* ecdsa-with-SHA256 appears twice; the outer one becomes ecdsa-with-SHA384. */
    static const uint8_t oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
    size_t at = find(der, len, oid, sizeof(oid), true);
    assert_true(at > find(der, len, oid, sizeof(oid), false));
    der[at + sizeof(oid) - 1] = 0x03;
    assert_rejected(der, len);
    free(der);
}

static void test_x509_parse_rejects_times_not_in_rfc5280_form(void **state)
{
    (void)state;
    tx_spec s = {.key = keys.p256, .subject = alice};
    uint8_t *der = NULL;
    size_t len = 0;
    tx_cert_der(&s, &der, &len);
    /* notBefore is UTCTime "260101000000Z"; make it end in a digit (local time). */
    static const uint8_t nb[] = {0x17, 0x0d, '2', '6', '0', '1', '0', '1',
                                 '0',  '0',  '0', '0', '0', '0', 'Z'};
    size_t at = find(der, len, nb, sizeof(nb), false);
    der[at + sizeof(nb) - 1] = '0';
    assert_rejected(der, len);
    free(der);
}

static void test_x509_parse_rejects_duplicate_extension(void **state)
{
    (void)state;
    const tx_ext ext[] = {
        {"keyUsage", "critical,digitalSignature"},
        {"keyUsage", "critical,keyCertSign"},
        {NULL, NULL},
    };
    tx_spec s = {.key = keys.p256, .subject = alice, .ext = ext};
    uint8_t *der = NULL;
    size_t len = 0;
    tx_cert_der(&s, &der, &len);
    assert_rejected(der, len);
    free(der);
}

static void test_x509_parse_rejects_ec_point_off_the_curve(void **state)
{
    (void)state;
    tx_spec s = {.key = keys.p256, .subject = alice};
    uint8_t *der = NULL;
    size_t len = 0;
    tx_cert_der(&s, &der, &len);
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    tx_spki(keys.p256, false, &spki, &spki_len);
    size_t at = find(der, len, spki, spki_len, false);
    der[at + spki_len - 1] ^= 0x01; /* the last byte of y */
    assert_rejected(der, len);
    free(spki);
    free(der);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_x509_parse_rsa2048_reports_every_field, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_ec_p256_reports_curve_and_bits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_ec_p384_reports_curve_and_bits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_sm2_keeps_chinese_names_intact, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_sm2_signed_with_empty_id_is_not_self_signed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_multi_valued_rdn_shares_an_index, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_escapes_specials_in_rfc4514_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_converts_other_string_types_to_utf8, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_non_string_value_as_der_hex, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_empty_subject_is_empty_string, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_names_that_are_not_text, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_serial_is_minimal_lowercase_hex, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_dates_in_utctime_and_generalizedtime, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_names_every_key_usage_and_known_eku, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_key_agreement_only_bit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_ca_and_self_signed_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_ed25519, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rsa_pss_signed_certificate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_agrees_with_openssl_cli, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_sm2_certificate_made_by_openssl_cli, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_empty_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_every_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_trailing_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_random_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_pem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_oversized_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_ber_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_indefinite_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_signature_algorithm_mismatch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_times_not_in_rfc5280_form, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_duplicate_extension, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_x509_parse_rejects_ec_point_off_the_curve, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
