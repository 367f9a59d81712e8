/*
 * uk_x509_sm2_envelope_blob: GM/T 0009 SM2EnvelopedKey to GM/T 0016 ENVELOPEDKEYBLOB.
 *
 * Three independent checks of a good conversion: the blob read through the packed C structure of
 * uk_skf_abi.h (not through the module's offsets); the blob opened as a key would open it (SM2
 * decryption of the SM4 key with the recipient's private key, SM4-ECB of the private key, d*G
 * equal to PubKey); and byte equality with the blob the demo portal's test KMC
 * (examples/portal/kmc.js, run with node) writes for the same envelope, at both ULONG widths and
 * in both private-key forms. Then every malformed field, truncation and trailing byte refused
 * with the output left alone.
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
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>

#include "test_x509_helpers.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_skf_abi.h"
#include "uk_x509.h"

#define BLOB_MAX UK_X509_SKF_ENVELOPE_LEN(8)

/* OID contents: SM4, SM4-ECB, SM4-CBC, the SM2 curve. */
static const uint8_t OID_SM4[] = {0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x68};
static const uint8_t OID_SM4_ECB[] = {0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x68, 0x01};
static const uint8_t OID_SM4_CBC[] = {0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x68, 0x02};
static const uint8_t OID_SM2[] = {0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d};

/* ---- a DER writer for envelopes, good and bad ----------------------------------------------- */

typedef struct buf {
    uint8_t d[2048];
    size_t n;
} buf;

/* Append a TLV; ber_len writes the length in a non-minimal long form. */
static void tlv(buf *b, uint8_t tag, const uint8_t *c, size_t n, bool ber_len)
{
    assert_true(n < 0x10000 && b->n + n + 4 <= sizeof(b->d));
    b->d[b->n++] = tag;
    if (n < 0x80 && !ber_len) {
        b->d[b->n++] = (uint8_t)n;
    } else if (n < 0x100) {
        b->d[b->n++] = 0x81;
        b->d[b->n++] = (uint8_t)n;
    } else {
        b->d[b->n++] = 0x82;
        b->d[b->n++] = (uint8_t)(n >> 8);
        b->d[b->n++] = (uint8_t)n;
    }
    if (n > 0)
        memcpy(b->d + b->n, c, n);
    b->n += n;
}

/* The parts of an envelope; each test breaks one of them. */
typedef struct env {
    const uint8_t *oid;
    size_t oid_len;
    int params; /* 0 absent, 1 NULL, 2 an OCTET STRING */
    uint8_t x[40], y[40];
    size_t x_len, y_len; /* INTEGER contents */
    uint8_t hash[40];
    size_t hash_len;
    bool hash_ber_len;
    uint8_t cipher[40];
    size_t cipher_len;
    uint8_t pub[80];
    size_t pub_len;
    uint8_t pub_unused; /* the BIT STRING's unused-bits byte */
    uint8_t priv[80];
    size_t priv_len;
    bool swap; /* sm2PublicKey before symEncryptedKey */
    size_t trailing;
} env;

/* A 32-byte magnitude as minimal INTEGER content. */
static size_t int_content(const uint8_t mag[32], uint8_t *out)
{
    size_t i = 0;
    while (i < 31 && mag[i] == 0)
        i++;
    size_t n = 0;
    if (mag[i] & 0x80)
        out[n++] = 0;
    memcpy(out + n, mag + i, 32 - i);
    return n + 32 - i;
}

static void env_der(const env *e, buf *out)
{
    buf alg = {.n = 0}, c = {.n = 0}, body = {.n = 0}, pub = {.n = 0}, cip = {.n = 0};
    tlv(&alg, 0x06, e->oid, e->oid_len, false);
    if (e->params == 1)
        tlv(&alg, 0x05, NULL, 0, false);
    else if (e->params == 2)
        tlv(&alg, 0x04, (const uint8_t *)"\x00", 1, false);
    tlv(&c, 0x02, e->x, e->x_len, false);
    tlv(&c, 0x02, e->y, e->y_len, false);
    tlv(&c, 0x04, e->hash, e->hash_len, e->hash_ber_len);
    tlv(&c, 0x04, e->cipher, e->cipher_len, false);
    tlv(&body, 0x30, alg.d, alg.n, false);
    tlv(&cip, 0x30, c.d, c.n, false);
    uint8_t bits[81];
    bits[0] = e->pub_unused;
    memcpy(bits + 1, e->pub, e->pub_len);
    tlv(&pub, 0x03, bits, e->pub_len + 1, false);
    if (e->swap) {
        memcpy(body.d + body.n, pub.d, pub.n);
        body.n += pub.n;
        memcpy(body.d + body.n, cip.d, cip.n);
        body.n += cip.n;
    } else {
        memcpy(body.d + body.n, cip.d, cip.n);
        body.n += cip.n;
        memcpy(body.d + body.n, pub.d, pub.n);
        body.n += pub.n;
    }
    bits[0] = 0;
    memcpy(bits + 1, e->priv, e->priv_len);
    tlv(&body, 0x03, bits, e->priv_len + 1, false);
    out->n = 0;
    tlv(out, 0x30, body.d, body.n, false);
    memset(out->d + out->n, 0, e->trailing);
    out->n += e->trailing;
}

/* ---- keys and the envelope made in the test ------------------------------------------------- */

/* The public point of an SM2 key, X and Y (32 bytes each). */
static void key_xy(EVP_PKEY *k, uint8_t x[32], uint8_t y[32])
{
    BIGNUM *bx = NULL, *by = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &bx), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &by), 1);
    assert_int_equal(BN_bn2binpad(bx, x, 32), 32);
    assert_int_equal(BN_bn2binpad(by, y, 32), 32);
    BN_free(bx);
    BN_free(by);
}

static void sm4_ecb(bool enc, const uint8_t key[16], const uint8_t *in, size_t n, uint8_t *out)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;
    assert_non_null(c);
    assert_int_equal(EVP_CipherInit_ex(c, EVP_sm4_ecb(), NULL, key, NULL, enc ? 1 : 0), 1);
    assert_int_equal(EVP_CIPHER_CTX_set_padding(c, 0), 1);
    assert_int_equal(EVP_CipherUpdate(c, out, &l1, in, (int)n), 1);
    assert_int_equal(EVP_CipherFinal_ex(c, out + l1, &l2), 1);
    assert_int_equal((size_t)(l1 + l2), n);
    EVP_CIPHER_CTX_free(c);
}

/* SM2Cipher DER of the (minimal) parts. */
static void sm2_cipher_der(const uint8_t x[32], const uint8_t y[32], const uint8_t *hash,
                           const uint8_t *cipher, size_t cipher_len, buf *out)
{
    buf c = {.n = 0};
    uint8_t v[33];
    tlv(&c, 0x02, v, int_content(x, v), false);
    tlv(&c, 0x02, v, int_content(y, v), false);
    tlv(&c, 0x04, hash, 32, false);
    tlv(&c, 0x04, cipher, cipher_len, false);
    out->n = 0;
    tlv(out, 0x30, c.d, c.n, false);
}

typedef struct fixture {
    EVP_PKEY *recipient; /* the new signing key the envelope is for */
    EVP_PKEY *wrapped;   /* the encryption key pair sent wrapped */
    uint8_t sm4[16];
    env e; /* a good envelope of wrapped for recipient */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->recipient = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    f->wrapped = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    assert_non_null(f->recipient);
    assert_non_null(f->wrapped);
    assert_int_equal(RAND_bytes(f->sm4, sizeof(f->sm4)), 1);

    /* SM2Cipher of the SM4 key, by OpenSSL (GM/T 0009 DER), taken apart with the generic
     * decoder into the env's parts. */
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(f->recipient, NULL);
    uint8_t ct[256];
    size_t ctn = sizeof(ct);
    assert_non_null(pc);
    assert_int_equal(EVP_PKEY_encrypt_init(pc), 1);
    assert_int_equal(EVP_PKEY_encrypt(pc, ct, &ctn, f->sm4, sizeof(f->sm4)), 1);
    EVP_PKEY_CTX_free(pc);
    const unsigned char *p = ct;
    STACK_OF(ASN1_TYPE) *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, (long)ctn);
    assert_non_null(seq);
    assert_int_equal(sk_ASN1_TYPE_num(seq), 4);
    uint8_t c1[2][32];
    for (int i = 0; i < 2; i++) {
        const ASN1_TYPE *t = sk_ASN1_TYPE_value(seq, i);
        assert_int_equal(t->type, V_ASN1_INTEGER);
        BIGNUM *bn = ASN1_INTEGER_to_BN(t->value.integer, NULL);
        assert_non_null(bn);
        assert_int_equal(BN_bn2binpad(bn, c1[i], 32), 32);
        BN_free(bn);
    }
    f->e.x_len = int_content(c1[0], f->e.x);
    f->e.y_len = int_content(c1[1], f->e.y);
    const ASN1_TYPE *h = sk_ASN1_TYPE_value(seq, 2);
    const ASN1_TYPE *c = sk_ASN1_TYPE_value(seq, 3);
    assert_int_equal(h->type, V_ASN1_OCTET_STRING);
    assert_int_equal(ASN1_STRING_length(h->value.octet_string), 32);
    assert_int_equal(ASN1_STRING_length(c->value.octet_string), 16);
    memcpy(f->e.hash, ASN1_STRING_get0_data(h->value.octet_string), 32);
    f->e.hash_len = 32;
    memcpy(f->e.cipher, ASN1_STRING_get0_data(c->value.octet_string), 16);
    f->e.cipher_len = 16;
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    /* Our writer writes back exactly what OpenSSL wrote. */
    buf again;
    sm2_cipher_der(c1[0], c1[1], f->e.hash, f->e.cipher, 16, &again);
    assert_int_equal(again.n, ctn);
    assert_memory_equal(again.d, ct, ctn);

    f->e.oid = OID_SM4;
    f->e.oid_len = sizeof(OID_SM4);
    f->e.pub[0] = 0x04;
    key_xy(f->wrapped, f->e.pub + 1, f->e.pub + 33);
    f->e.pub_len = 65;
    BIGNUM *d = NULL;
    uint8_t d32[32];
    assert_int_equal(EVP_PKEY_get_bn_param(f->wrapped, OSSL_PKEY_PARAM_PRIV_KEY, &d), 1);
    assert_int_equal(BN_bn2binpad(d, d32, 32), 32);
    BN_clear_free(d);
    sm4_ecb(true, f->sm4, d32, 32, f->e.priv);
    f->e.priv_len = 32;
    OPENSSL_cleanse(d32, sizeof(d32));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    EVP_PKEY_free(f->recipient);
    EVP_PKEY_free(f->wrapped);
    OPENSSL_cleanse(f, sizeof(*f));
    free(f);
    return 0;
}

/* Open a 4-byte-ULONG blob as the key would, with the recipient's private key: the SM4 key, then
 * the private key, whose point must be PubKey. Read through uk_skf_abi.h's packed structure. */
static void open_blob(const uint8_t *blob, size_t n, EVP_PKEY *recipient, const uint8_t *sm4)
{
    assert_int_equal(n, UK_SKF_ENVELOPEDKEYBLOB_SIZE(16));
    uint8_t raw[UK_SKF_ENVELOPEDKEYBLOB_SIZE(16)];
    memcpy(raw, blob, n);
    const ENVELOPEDKEYBLOB *b = (const ENVELOPEDKEYBLOB *)(const void *)raw;
    assert_int_equal(b->Version, UK_SKF_ENVELOPED_KEY_VERSION);
    assert_int_equal(b->ulSymmAlgID, SGD_SM4_ECB);
    assert_int_equal(b->ulBits, 256);
    assert_int_equal(b->PubKey.BitLen, 256);
    assert_int_equal(b->ECCCipherBlob.CipherLen, 16);
    static const uint8_t zero[32];
    assert_memory_equal(b->PubKey.XCoordinate, zero, 32);
    assert_memory_equal(b->PubKey.YCoordinate, zero, 32);
    assert_memory_equal(b->ECCCipherBlob.XCoordinate, zero, 32);
    assert_memory_equal(b->ECCCipherBlob.YCoordinate, zero, 32);

    buf ct;
    sm2_cipher_der(b->ECCCipherBlob.XCoordinate + 32, b->ECCCipherBlob.YCoordinate + 32,
                   b->ECCCipherBlob.HASH, b->ECCCipherBlob.Cipher, 16, &ct);
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(recipient, NULL);
    uint8_t key[64];
    size_t kn = sizeof(key);
    assert_non_null(pc);
    assert_int_equal(EVP_PKEY_decrypt_init(pc), 1);
    assert_int_equal(EVP_PKEY_decrypt(pc, key, &kn, ct.d, ct.n), 1);
    EVP_PKEY_CTX_free(pc);
    assert_int_equal(kn, 16);
    if (sm4 != NULL)
        assert_memory_equal(key, sm4, 16);

    /* The significant 32 bytes of cbEncryptedPriKey are SM4-ECB of d in either form. */
    uint8_t d32[32];
    sm4_ecb(false, key, b->cbEncryptedPriKey + 32, 32, d32);
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_sm2);
    EC_POINT *pt = EC_POINT_new(g);
    BIGNUM *d = BN_bin2bn(d32, 32, NULL);
    uint8_t oct[65];
    assert_non_null(d);
    assert_int_equal(EC_POINT_mul(g, pt, d, NULL, NULL, NULL), 1);
    assert_int_equal(EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, oct, 65, NULL), 65);
    assert_memory_equal(oct + 1, b->PubKey.XCoordinate + 32, 32);
    assert_memory_equal(oct + 33, b->PubKey.YCoordinate + 32, 32);
    BN_clear_free(d);
    EC_POINT_free(pt);
    EC_GROUP_free(g);
    OPENSSL_cleanse(d32, sizeof(d32));
    OPENSSL_cleanse(key, sizeof(key));
}

static void convert_ok(const env *e, unsigned width, uint8_t *blob, size_t *n)
{
    buf der;
    env_der(e, &der);
    *n = BLOB_MAX;
    assert_int_equal(uk_x509_sm2_envelope_blob(der.d, der.n, width, blob, n), UK_OK);
    assert_int_equal(*n, UK_X509_SKF_ENVELOPE_LEN(width));
}

/* What the module logged since the last reset (its reasons, at debug level). */
static char logged[4096];

static void log_sink(void *ctx, uk_log_level level, const char *line, size_t len)
{
    (void)ctx;
    (void)level;
    size_t used = strlen(logged);
    if (used + len + 2 < sizeof(logged)) {
        memcpy(logged + used, line, len);
        logged[used + len] = '\n';
        logged[used + len + 1] = 0;
    }
}

/* The conversion of e is refused for the reason why (a part of the logged line) and leaves the
 * output alone. */
static void refused(const env *e, const char *why)
{
    buf der;
    env_der(e, &der);
    logged[0] = 0;
    uint8_t blob[BLOB_MAX];
    memset(blob, 0xa5, sizeof(blob));
    size_t n = sizeof(blob);
    assert_int_equal(uk_x509_sm2_envelope_blob(der.d, der.n, 4, blob, &n), UK_E_INVALID_PARAMS);
    assert_int_equal(n, sizeof(blob));
    for (size_t i = 0; i < sizeof(blob); i++)
        assert_int_equal(blob[i], 0xa5);
    if (strstr(logged, why) == NULL)
        fail_msg("refused, but not for \"%s\": %s", why, logged);
}

/* ---- good envelopes ------------------------------------------------------------------------- */

static void test_sm2env_blob_opens_with_the_recipient_key(void **state)
{
    fixture *f = *state;
    uint8_t blob[BLOB_MAX];
    size_t n;
    convert_ok(&f->e, 4, blob, &n);
    assert_int_equal(n, 388);
    open_blob(blob, n, f->recipient, f->sm4);
    /* The short form: 32 zero bytes, then SM4-ECB of d as the envelope carries it. */
    static const uint8_t zero[32];
    assert_memory_equal(blob + 12, zero, 32);
    assert_memory_equal(blob + 12 + 32, f->e.priv, 32);
}

static void test_sm2env_accepts_sm4_ecb_oid_null_params_and_a_64_byte_key(void **state)
{
    fixture *f = *state;
    uint8_t want[BLOB_MAX], blob[BLOB_MAX];
    size_t wn, n;
    convert_ok(&f->e, 4, want, &wn);
    env e = f->e;
    e.oid = OID_SM4_ECB;
    e.oid_len = sizeof(OID_SM4_ECB);
    convert_ok(&e, 4, blob, &n);
    assert_memory_equal(blob, want, wn);
    e.params = 1;
    convert_ok(&e, 4, blob, &n);
    assert_memory_equal(blob, want, wn);

    /* A 64-byte encrypted key (the whole right-aligned field encrypted) is copied as it is. */
    e = f->e;
    uint8_t field[64] = {0};
    sm4_ecb(false, f->sm4, f->e.priv, 32, field + 32);
    sm4_ecb(true, f->sm4, field, 64, e.priv);
    OPENSSL_cleanse(field, sizeof(field));
    e.priv_len = 64;
    convert_ok(&e, 4, blob, &n);
    assert_memory_equal(blob + 12, e.priv, 64);
    open_blob(blob, n, f->recipient, f->sm4);
}

static void test_sm2env_eight_byte_ulong_moves_every_field(void **state)
{
    fixture *f = *state;
    uint8_t b4[BLOB_MAX], b8[BLOB_MAX];
    size_t n4, n8;
    convert_ok(&f->e, 4, b4, &n4);
    convert_ok(&f->e, 8, b8, &n8);
    assert_int_equal(n8, 408);
    /* Each ULONG widened with four zero bytes (little-endian), the byte fields unchanged. */
    size_t i4 = 0, i8 = 0;
    const size_t ulongs[] = {0, 4, 8, 76, 368}; /* offsets of the ULONGs at width 4 */
    for (size_t u = 0; u < sizeof(ulongs) / sizeof(ulongs[0]); u++) {
        size_t run = ulongs[u] - i4;
        assert_memory_equal(b8 + i8, b4 + i4, run);
        i4 += run;
        i8 += run;
        assert_memory_equal(b8 + i8, b4 + i4, 4);
        static const uint8_t zero[4];
        assert_memory_equal(b8 + i8 + 4, zero, 4);
        i4 += 4;
        i8 += 8;
    }
    assert_int_equal(n4 - i4, n8 - i8);
    assert_memory_equal(b8 + i8, b4 + i4, n4 - i4);
}

/* ---- the demo portal's KMC ------------------------------------------------------------------ */

static const char kmc_script[] =
    "'use strict';\n"
    "const fs = require('node:fs');\n"
    "const path = require('node:path');\n"
    "const { TestKmc, OID_SM4, OID_SM4_ECB } = require(process.argv[2]);\n"
    "const dir = process.argv[3];\n"
    "(async () => {\n"
    "  const spki = fs.readFileSync(path.join(dir, 'spki.der'));\n"
    "  const cases = [['short', OID_SM4, 4], ['whole', OID_SM4_ECB, 4],\n"
    "                 ['short', OID_SM4_ECB, 8], ['whole', OID_SM4, 8]];\n"
    "  for (let i = 0; i < cases.length; i++) {\n"
    "    const [priKeyForm, sm4Oid, ulongBytes] = cases[i];\n"
    "    const kmc = new TestKmc({ dir, ca: null, priKeyForm, sm4Oid, ulongBytes }).init();\n"
    "    const key = await kmc.newKeyPair();\n"
    "    const { blob, asn1 } = await kmc.envelope(spki, key);\n"
    "    fs.writeFileSync(path.join(dir, `${i}.blob`), blob);\n"
    "    fs.writeFileSync(path.join(dir, `${i}.der`), asn1);\n"
    "  }\n"
    "})().catch((e) => { console.error(e); process.exit(1); });\n";

static void test_sm2env_matches_the_blob_of_the_portal_kmc(void **state)
{
    fixture *f = *state;
    if (system("node --version >/dev/null 2>&1") != 0 || !tx_have_openssl_cli())
        skip();
    char dir[256], path[320];
    tx_tmpdir_make(dir, sizeof(dir));
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    tx_spki(f->recipient, false, &spki, &spki_len);
    snprintf(path, sizeof(path), "%s/spki.der", dir);
    tx_write_file(path, spki, spki_len);
    snprintf(path, sizeof(path), "%s/kmc-run.js", dir);
    tx_write_file(path, kmc_script, sizeof(kmc_script) - 1);
    assert_int_equal(tx_run(NULL, 0, "node '%s' '%s' '%s'", path, UK_TEST_KMC_JS, dir), 0);

    const struct {
        bool whole;
        unsigned width;
    } cases[] = {{false, 4}, {true, 4}, {false, 8}, {true, 8}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t der_len = 0, kmc_len = 0;
        snprintf(path, sizeof(path), "%s/%zu.der", dir, i);
        uint8_t *der = tx_read_file(path, &der_len);
        snprintf(path, sizeof(path), "%s/%zu.blob", dir, i);
        uint8_t *kmc = tx_read_file(path, &kmc_len);
        unsigned w = cases[i].width;
        uint8_t blob[BLOB_MAX];
        size_t n = sizeof(blob);
        assert_int_equal(uk_x509_sm2_envelope_blob(der, der_len, w, blob, &n), UK_OK);
        assert_int_equal(n, kmc_len);
        size_t priv = 3 * w; /* cbEncryptedPriKey */
        if (cases[i].whole) {
            /* The KMC encrypted the whole 64-byte field; the ASN.1 form carries only the
             * significant half, which we right-align after zeros (the short form). */
            static const uint8_t zero[32];
            assert_memory_equal(blob + priv, zero, 32);
            assert_memory_not_equal(kmc + priv, zero, 32);
            assert_memory_equal(blob, kmc, priv);
            assert_memory_equal(blob + priv + 32, kmc + priv + 32, n - priv - 32);
        } else {
            assert_memory_equal(blob, kmc, n);
        }
        if (w == 4) {
            open_blob(blob, n, f->recipient, NULL);
            open_blob(kmc, n, f->recipient, NULL);
        }
        free(kmc);
        free(der);
    }
    free(spki);
    tx_tmpdir_remove(dir);
}

/* ---- malformed envelopes -------------------------------------------------------------------- */

static void test_sm2env_refuses_every_truncation_and_trailing_bytes(void **state)
{
    fixture *f = *state;
    buf der;
    env_der(&f->e, &der);
    uint8_t blob[BLOB_MAX];
    for (size_t len = 0; len < der.n; len++) {
        size_t n = sizeof(blob);
        assert_int_equal(uk_x509_sm2_envelope_blob(der.d, len, 4, blob, &n), UK_E_INVALID_PARAMS);
    }
    env e = f->e;
    e.trailing = 1;
    refused(&e, "bytes after the SM2EnvelopedKey");
    /* A non-minimal (BER) length inside is not DER. */
    e = f->e;
    e.hash_ber_len = true;
    refused(&e, "is not DER");
    e = f->e;
    e.swap = true;
    refused(&e, "Field=sym_key");
}

static void test_sm2env_refuses_other_algorithms_and_parameters(void **state)
{
    fixture *f = *state;
    env e = f->e;
    e.oid = OID_SM4_CBC;
    e.oid_len = sizeof(OID_SM4_CBC);
    refused(&e, "symAlgID is not SM4");
    e.oid = OID_SM2;
    e.oid_len = sizeof(OID_SM2);
    refused(&e, "symAlgID is not SM4");
    e.oid = OID_SM4; /* a prefix of SM4-ECB's content */
    e.oid_len = sizeof(OID_SM4) - 1;
    refused(&e, "symAlgID is not SM4");
    e = f->e;
    e.params = 2;
    refused(&e, "symAlgID has parameters");
}

static void test_sm2env_refuses_a_wrong_public_point(void **state)
{
    fixture *f = *state;
    env e = f->e;
    e.pub_len = 64; /* X || Y without 04 */
    memmove(e.pub, e.pub + 1, 64);
    refused(&e, "sm2PublicKey of 64 bytes");
    e = f->e;
    e.pub[0] = 0x02;
    refused(&e, "sm2PublicKey of 65 bytes");
    e = f->e;
    e.pub_len = 33; /* compressed */
    e.pub[0] = 0x02;
    refused(&e, "sm2PublicKey of 33 bytes");
    e = f->e;
    e.pub[64] ^= 1; /* off the curve */
    refused(&e, "sm2PublicKey on the SM2 curve failed");
    e = f->e;
    e.pub_len = 66;
    refused(&e, "sm2PublicKey of 66 bytes");
    e = f->e;
    e.pub_unused = 1; /* the unused bit is 0: DER, but not whole bytes */
    e.pub[64] &= 0xfe;
    refused(&e, "sm2PublicKey: a BIT STRING with unused bits");
    e.pub[64] |= 0x01; /* an unused bit that is not 0: not even DER */
    refused(&e, "is not DER");
}

static void test_sm2env_refuses_wrong_lengths(void **state)
{
    fixture *f = *state;
    const size_t hash_lens[] = {0, 31, 33};
    for (size_t i = 0; i < 3; i++) {
        env e = f->e;
        e.hash_len = hash_lens[i];
        refused(&e, "SM2Cipher hash of");
    }
    const size_t cipher_lens[] = {0, 15, 17, 32};
    for (size_t i = 0; i < 4; i++) {
        env e = f->e;
        e.cipher_len = cipher_lens[i];
        refused(&e, "SM2Cipher cipher of");
    }
    const size_t priv_lens[] = {0, 16, 31, 33, 48, 63, 65, 80};
    for (size_t i = 0; i < 8; i++) {
        env e = f->e;
        e.priv_len = priv_lens[i];
        refused(&e, "sm2EncryptedPrivateKey of");
    }
}

static void test_sm2env_refuses_a_wrong_c1(void **state)
{
    fixture *f = *state;
    env e = f->e;
    e.x[e.x_len - 1] ^= 1; /* off the curve */
    refused(&e, "SM2Cipher C1 on the SM2 curve failed");
    /* Negative: the magnitude without its 00 pad (or with the sign bit set). */
    e = f->e;
    e.x[0] = 0x80;
    e.x_len = 1;
    refused(&e, "SM2Cipher x is negative");
    e = f->e;
    e.x[0] = 0xff; /* -1 */
    e.x_len = 1;
    refused(&e, "SM2Cipher x is negative");
    /* 33 bytes of magnitude. */
    e = f->e;
    e.x[0] = 0x01;
    memset(e.x + 1, 0x11, 32);
    e.x_len = 33;
    refused(&e, "SM2Cipher x has 33 bytes");
}

static void test_sm2env_checks_its_arguments(void **state)
{
    fixture *f = *state;
    buf der;
    env_der(&f->e, &der);
    uint8_t blob[BLOB_MAX];
    size_t n = sizeof(blob);
    assert_int_equal(uk_x509_sm2_envelope_blob(NULL, 1, 4, blob, &n), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_sm2_envelope_blob(NULL, 0, 4, blob, &n), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_sm2_envelope_blob(der.d, der.n, 4, NULL, &n), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_sm2_envelope_blob(der.d, der.n, 4, blob, NULL), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_sm2_envelope_blob(der.d, der.n, 5, blob, &n), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_sm2_envelope_blob(der.d, der.n, 0, blob, &n), UK_E_INVALID_PARAMS);
    n = UK_X509_SKF_ENVELOPE_LEN(4) - 1;
    assert_int_equal(uk_x509_sm2_envelope_blob(der.d, der.n, 4, blob, &n), UK_E_INVALID_PARAMS);
    assert_int_equal(n, UK_X509_SKF_ENVELOPE_LEN(4) - 1);
    n = UK_X509_SKF_ENVELOPE_LEN(4);
    assert_int_equal(uk_x509_sm2_envelope_blob(der.d, der.n, 8, blob, &n), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_sm2_envelope_blob(der.d, der.n, 4, blob, &n), UK_OK);
    /* Larger than the limit, even when the prefix is a good envelope. */
    uint8_t big[UK_X509_SM2_ENVELOPE_DER_MAX + 1];
    memset(big, 0, sizeof(big));
    memcpy(big, der.d, der.n);
    n = sizeof(blob);
    assert_int_equal(uk_x509_sm2_envelope_blob(big, sizeof(big), 4, blob, &n), UK_E_INVALID_PARAMS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sm2env_blob_opens_with_the_recipient_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_sm2env_accepts_sm4_ecb_oid_null_params_and_a_64_byte_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sm2env_eight_byte_ulong_moves_every_field, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sm2env_matches_the_blob_of_the_portal_kmc, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sm2env_refuses_every_truncation_and_trailing_bytes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sm2env_refuses_other_algorithms_and_parameters, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sm2env_refuses_a_wrong_public_point, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sm2env_refuses_wrong_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sm2env_refuses_a_wrong_c1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sm2env_checks_its_arguments, setup, teardown),
    };
    uk_log_set_level(UK_LOG_LEVEL_DEBUG);
    uk_log_set_sink(log_sink, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
