/*
 * uk_x509_sm2env.c - GM/T 0009 SM2EnvelopedKey (DER) to GM/T 0016 ENVELOPEDKEYBLOB: decoded with
 * OpenSSL's ASN.1 templates, checked field by field, re-encoded to prove DER, then written into
 * the blob's fixed fields. Nothing is decrypted. See docs/certificates.md, "SM2 enveloped keys".
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_skf_abi.h"
#include "uk_x509.h"
#include "uk_x509_internal.h"

/* Bytes of an SM2 coordinate, of C3 (SM3), of the SM4 key (C2), of a 64-byte SKF field. */
#define COORD    32u
#define HASH_LEN 32u
#define SM4_KEY  16u
#define FIELD    64u
#define BITS     256u

/* Offsets of ENVELOPEDKEYBLOB with ULONG u bytes wide (GM/T 0016 7.1, pack(1)). */
#define OFF_VERSION(u)    0u
#define OFF_ALG(u)        (1u * (u))
#define OFF_BITS(u)       (2u * (u))
#define OFF_PRIV(u)       (3u * (u))
#define OFF_PUB_BITLEN(u) (3u * (u) + 64u)
#define OFF_PUB_X(u)      (4u * (u) + 64u)
#define OFF_PUB_Y(u)      (4u * (u) + 128u)
#define OFF_C1_X(u)       (4u * (u) + 192u)
#define OFF_C1_Y(u)       (4u * (u) + 256u)
#define OFF_HASH(u)       (4u * (u) + 320u)
#define OFF_CIPHER_LEN(u) (4u * (u) + 352u)
#define OFF_CIPHER(u)     (5u * (u) + 352u)

/* The offsets above are the ABI header's (checked at the standard's width, 4). */
_Static_assert(UK_SKF_ULONG_BYTES == 4, "uk_skf_abi.h included at the standard's width");
_Static_assert(OFF_ALG(4) == offsetof(ENVELOPEDKEYBLOB, ulSymmAlgID), "ulSymmAlgID");
_Static_assert(OFF_BITS(4) == offsetof(ENVELOPEDKEYBLOB, ulBits), "ulBits");
_Static_assert(OFF_PRIV(4) == offsetof(ENVELOPEDKEYBLOB, cbEncryptedPriKey), "cbEncryptedPriKey");
_Static_assert(OFF_PUB_BITLEN(4) == offsetof(ENVELOPEDKEYBLOB, PubKey.BitLen), "PubKey.BitLen");
_Static_assert(OFF_PUB_X(4) == offsetof(ENVELOPEDKEYBLOB, PubKey.XCoordinate), "PubKey.X");
_Static_assert(OFF_PUB_Y(4) == offsetof(ENVELOPEDKEYBLOB, PubKey.YCoordinate), "PubKey.Y");
_Static_assert(OFF_C1_X(4) == offsetof(ENVELOPEDKEYBLOB, ECCCipherBlob.XCoordinate), "C1 X");
_Static_assert(OFF_C1_Y(4) == offsetof(ENVELOPEDKEYBLOB, ECCCipherBlob.YCoordinate), "C1 Y");
_Static_assert(OFF_HASH(4) == offsetof(ENVELOPEDKEYBLOB, ECCCipherBlob.HASH), "HASH");
_Static_assert(OFF_CIPHER_LEN(4) == offsetof(ENVELOPEDKEYBLOB, ECCCipherBlob.CipherLen),
               "CipherLen");
_Static_assert(OFF_CIPHER(4) == offsetof(ENVELOPEDKEYBLOB, ECCCipherBlob.Cipher), "Cipher");
_Static_assert(UK_X509_SKF_ENVELOPE_LEN(4) == UK_SKF_ENVELOPEDKEYBLOB_SIZE(SM4_KEY), "blob size");
_Static_assert(UK_X509_SKF_ENVELOPE_LEN(8) == OFF_CIPHER(8) + SM4_KEY, "blob size, 8-byte ULONG");

/* GM/T 0009 SM2Cipher: C1 as two INTEGERs, C3, C2. */
typedef struct sm2_cipher_asn1 {
    ASN1_INTEGER *x;
    ASN1_INTEGER *y;
    ASN1_OCTET_STRING *hash;
    ASN1_OCTET_STRING *cipher;
} sm2_cipher_asn1;

/* GM/T 0009 SM2EnvelopedKey. */
typedef struct sm2_envelope_asn1 {
    X509_ALGOR *sym_alg;
    sm2_cipher_asn1 *sym_key;
    ASN1_BIT_STRING *pub;
    ASN1_BIT_STRING *priv;
} sm2_envelope_asn1;

/* OpenSSL's ASN.1 templates (static items: sm2_cipher_asn1_it, sm2_envelope_asn1_it). */
/* clang-format off */
ASN1_SEQUENCE(sm2_cipher_asn1) = {
    ASN1_SIMPLE(sm2_cipher_asn1, x, ASN1_INTEGER),
    ASN1_SIMPLE(sm2_cipher_asn1, y, ASN1_INTEGER),
    ASN1_SIMPLE(sm2_cipher_asn1, hash, ASN1_OCTET_STRING),
    ASN1_SIMPLE(sm2_cipher_asn1, cipher, ASN1_OCTET_STRING),
} static_ASN1_SEQUENCE_END(sm2_cipher_asn1)

ASN1_SEQUENCE(sm2_envelope_asn1) = {
    ASN1_SIMPLE(sm2_envelope_asn1, sym_alg, X509_ALGOR),
    ASN1_SIMPLE(sm2_envelope_asn1, sym_key, sm2_cipher_asn1),
    ASN1_SIMPLE(sm2_envelope_asn1, pub, ASN1_BIT_STRING),
    ASN1_SIMPLE(sm2_envelope_asn1, priv, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(sm2_envelope_asn1)

/* DER of the OIDs 1.2.156.10197.1.104 (SM4) and 1.2.156.10197.1.104.1 (SM4-ECB), content only. */
static const uint8_t oid_sm4[] = {0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x68};
static const uint8_t oid_sm4_ecb[] = {0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x68, 0x01};
/* clang-format on */

static bool oid_is(const ASN1_OBJECT *o, const uint8_t *der, size_t n)
{
    size_t len = OBJ_length(o);
    const unsigned char *d = OBJ_get0_data(o);
    return d != NULL && len == n && memcmp(d, der, n) == 0;
}

/* symAlgID: SM4 or SM4-ECB, parameters absent or NULL. */
static bool sym_alg_ok(const X509_ALGOR *a)
{
    const ASN1_OBJECT *o = NULL;
    int ptype = V_ASN1_UNDEF;
    X509_ALGOR_get0(&o, &ptype, NULL, a);
    if (o == NULL ||
        !(oid_is(o, oid_sm4, sizeof(oid_sm4)) || oid_is(o, oid_sm4_ecb, sizeof(oid_sm4_ecb)))) {
        UK_LOG_DEBUG("symAlgID is not SM4");
        return false;
    }
    if (ptype != V_ASN1_UNDEF && ptype != V_ASN1_NULL) {
        UK_LOG_DEBUG("symAlgID has parameters of ASN.1 type %d", ptype);
        return false;
    }
    return true;
}

/* Whether a BIT STRING holds whole bytes (no unused bits). */
static bool whole_bytes(const ASN1_BIT_STRING *b, const char *what)
{
    if ((b->flags & ASN1_STRING_FLAG_BITS_LEFT) != 0 && (b->flags & 0x07) != 0) {
        UK_LOG_DEBUG("%s: a BIT STRING with unused bits", what);
        return false;
    }
    return true;
}

/* A coordinate INTEGER as 32 big-endian bytes: non-negative, at most 32 bytes of magnitude. */
static bool coord(const ASN1_INTEGER *i, uint8_t out[COORD], const char *what)
{
    if (ASN1_STRING_type(i) != V_ASN1_INTEGER) {
        UK_LOG_DEBUG("%s is negative", what);
        return false;
    }
    int n = ASN1_STRING_length(i);
    const unsigned char *p = ASN1_STRING_get0_data(i);
    if (n < 0 || (size_t)n > COORD) {
        UK_LOG_DEBUG("%s has %d bytes", what, n);
        return false;
    }
    memset(out, 0, COORD);
    if (n > 0)
        memcpy(out + COORD - (size_t)n, p, (size_t)n);
    return true;
}

/* Whether (x, y) is a point of the SM2 curve; what names the check in the log. */
static int on_curve(const EC_GROUP *g, const uint8_t x[COORD], const uint8_t y[COORD],
                    const char *what)
{
    uint8_t oct[1 + 2 * COORD];
    oct[0] = 0x04;
    memcpy(oct + 1, x, COORD);
    memcpy(oct + 1 + COORD, y, COORD);
    EC_POINT *pt = EC_POINT_new(g);
    if (pt == NULL)
        return UK__X509_FAIL(UK_E_NO_MEMORY, "EC_POINT_new");
    int err = UK_OK;
    if (EC_POINT_oct2point(g, pt, oct, sizeof(oct), NULL) != 1)
        err = UK__X509_FAIL(UK_E_INVALID_PARAMS, what);
    EC_POINT_free(pt);
    return err;
}

static void put_ulong(uint8_t *p, unsigned width, uint32_t v)
{
    memset(p, 0, width);
    for (unsigned i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The checked fields, in the blob's order. */
typedef struct fields {
    uint8_t priv[FIELD];
    uint8_t pub_x[COORD];
    uint8_t pub_y[COORD];
    uint8_t c1_x[COORD];
    uint8_t c1_y[COORD];
    uint8_t hash[HASH_LEN];
    uint8_t cipher[SM4_KEY];
} fields;

/* Check every field of the decoded envelope and copy it out. */
static int check_fields(const sm2_envelope_asn1 *env, fields *f)
{
    if (!sym_alg_ok(env->sym_alg))
        return UK_E_INVALID_PARAMS;
    const sm2_cipher_asn1 *c = env->sym_key;
    if (!coord(c->x, f->c1_x, "SM2Cipher x") || !coord(c->y, f->c1_y, "SM2Cipher y"))
        return UK_E_INVALID_PARAMS;
    if (ASN1_STRING_length(c->hash) != (int)HASH_LEN) {
        UK_LOG_DEBUG("SM2Cipher hash of %d bytes", ASN1_STRING_length(c->hash));
        return UK_E_INVALID_PARAMS;
    }
    if (ASN1_STRING_length(c->cipher) != (int)SM4_KEY) {
        UK_LOG_DEBUG("SM2Cipher cipher of %d bytes, not an SM4 key", ASN1_STRING_length(c->cipher));
        return UK_E_INVALID_PARAMS;
    }
    memcpy(f->hash, ASN1_STRING_get0_data(c->hash), HASH_LEN);
    memcpy(f->cipher, ASN1_STRING_get0_data(c->cipher), SM4_KEY);

    if (!whole_bytes(env->pub, "sm2PublicKey") || !whole_bytes(env->priv, "sm2EncryptedPrivateKey"))
        return UK_E_INVALID_PARAMS;
    size_t n = (size_t)ASN1_STRING_length(env->pub);
    const unsigned char *p = ASN1_STRING_get0_data(env->pub);
    if (n != 1 + 2 * COORD || p[0] != 0x04) {
        UK_LOG_DEBUG("sm2PublicKey of %zu bytes is not an uncompressed 256-bit point", n);
        return UK_E_INVALID_PARAMS;
    }
    memcpy(f->pub_x, p + 1, COORD);
    memcpy(f->pub_y, p + 1 + COORD, COORD);

    n = (size_t)ASN1_STRING_length(env->priv);
    p = ASN1_STRING_get0_data(env->priv);
    if (n != COORD && n != FIELD) {
        UK_LOG_DEBUG("sm2EncryptedPrivateKey of %zu bytes (32 or 64 expected)", n);
        return UK_E_INVALID_PARAMS;
    }
    memset(f->priv, 0, FIELD);
    memcpy(f->priv + FIELD - n, p, n);

    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_sm2);
    if (g == NULL)
        return UK__X509_FAIL(UK_E_NO_MEMORY, "EC_GROUP_new_by_curve_name");
    int err = on_curve(g, f->pub_x, f->pub_y, "sm2PublicKey on the SM2 curve");
    if (err == UK_OK)
        err = on_curve(g, f->c1_x, f->c1_y, "SM2Cipher C1 on the SM2 curve");
    EC_GROUP_free(g);
    return err;
}

/* The blob from checked fields; out holds UK_X509_SKF_ENVELOPE_LEN(u) bytes. */
static void write_blob(const fields *f, unsigned u, uint8_t *out)
{
    memset(out, 0, UK_X509_SKF_ENVELOPE_LEN(u));
    put_ulong(out + OFF_VERSION(u), u, UK_SKF_ENVELOPED_KEY_VERSION);
    put_ulong(out + OFF_ALG(u), u, SGD_SM4_ECB);
    put_ulong(out + OFF_BITS(u), u, BITS);
    memcpy(out + OFF_PRIV(u), f->priv, FIELD);
    put_ulong(out + OFF_PUB_BITLEN(u), u, BITS);
    memcpy(out + OFF_PUB_X(u) + FIELD - COORD, f->pub_x, COORD);
    memcpy(out + OFF_PUB_Y(u) + FIELD - COORD, f->pub_y, COORD);
    memcpy(out + OFF_C1_X(u) + FIELD - COORD, f->c1_x, COORD);
    memcpy(out + OFF_C1_Y(u) + FIELD - COORD, f->c1_y, COORD);
    memcpy(out + OFF_HASH(u), f->hash, HASH_LEN);
    put_ulong(out + OFF_CIPHER_LEN(u), u, SM4_KEY);
    memcpy(out + OFF_CIPHER(u), f->cipher, SM4_KEY);
}

int uk_x509_sm2_envelope_blob(const uint8_t *der, size_t len, unsigned ulong_bytes, uint8_t *blob,
                              size_t *blob_len)
{
    if ((der == NULL && len > 0) || blob == NULL || blob_len == NULL ||
        (ulong_bytes != 4 && ulong_bytes != 8) || *blob_len < UK_X509_SKF_ENVELOPE_LEN(ulong_bytes))
        return UK_E_INVALID_PARAMS;
    if (len == 0 || len > UK_X509_SM2_ENVELOPE_DER_MAX) {
        UK_LOG_DEBUG("SM2EnvelopedKey of %zu bytes", len);
        return UK_E_INVALID_PARAMS;
    }

    int err;
    unsigned char *re = NULL;
    fields f;
    const unsigned char *p = der;
    sm2_envelope_asn1 *env =
        (sm2_envelope_asn1 *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(sm2_envelope_asn1));
    if (env == NULL) {
        err = UK__X509_FAIL(UK_E_INVALID_PARAMS, "d2i of the SM2EnvelopedKey");
        goto out;
    }
    if (p != der + len) {
        UK_LOG_DEBUG("%zu bytes after the SM2EnvelopedKey", (size_t)(der + len - p));
        err = UK_E_INVALID_PARAMS;
        goto out;
    }
    /* DER only: the structure re-encodes to the very bytes given (no BER lengths, no padding). */
    int rn = ASN1_item_i2d((const ASN1_VALUE *)env, &re, ASN1_ITEM_rptr(sm2_envelope_asn1));
    if (rn <= 0) {
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "i2d of the SM2EnvelopedKey");
        goto out;
    }
    if ((size_t)rn != len || memcmp(re, der, len) != 0) {
        UK_LOG_DEBUG("the SM2EnvelopedKey is not DER (%d bytes re-encoded, %zu given)", rn, len);
        err = UK_E_INVALID_PARAMS;
        goto out;
    }
    if ((err = check_fields(env, &f)) != UK_OK)
        goto out;
    write_blob(&f, ulong_bytes, blob);
    *blob_len = UK_X509_SKF_ENVELOPE_LEN(ulong_bytes);
out:
    OPENSSL_free(re);
    ASN1_item_free((ASN1_VALUE *)env, ASN1_ITEM_rptr(sm2_envelope_asn1));
    ERR_clear_error();
    return err;
}

int uk_x509_sm2_cipher_split(const uint8_t *der, size_t len, uk_x509_sm2_cipher *out)
{
    if (der == NULL || out == NULL || len == 0 || len > UK_X509_SM2_ENVELOPE_DER_MAX)
        return UK_E_INVALID_PARAMS;
    const unsigned char *p = der;
    sm2_cipher_asn1 *c =
        (sm2_cipher_asn1 *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(sm2_cipher_asn1));
    int err = UK_E_INVALID_PARAMS;
    uk_x509_sm2_cipher f;
    memset(&f, 0, sizeof(f));
    if (c == NULL) {
        err = UK__X509_FAIL(UK_E_INVALID_PARAMS, "d2i of the SM2Cipher");
        goto out;
    }
    int hn = ASN1_STRING_length(c->hash), cn = ASN1_STRING_length(c->cipher);
    if (p != der + len || !coord(c->x, f.c1x, "SM2Cipher x") ||
        !coord(c->y, f.c1y, "SM2Cipher y") || hn != (int)HASH_LEN || cn < 1 ||
        (size_t)cn > sizeof(f.c2)) {
        UK_LOG_DEBUG("not an SM2Cipher of a key (%zu bytes after it, hash %d, cipher %d bytes)",
                     (size_t)(der + len - p), hn, cn);
        goto out;
    }
    memcpy(f.c3, ASN1_STRING_get0_data(c->hash), HASH_LEN);
    memcpy(f.c2, ASN1_STRING_get0_data(c->cipher), (size_t)cn);
    f.c2_len = (size_t)cn;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_sm2);
    if (g == NULL) {
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "EC_GROUP_new_by_curve_name");
        goto out;
    }
    err = on_curve(g, f.c1x, f.c1y, "SM2Cipher C1 on the SM2 curve");
    EC_GROUP_free(g);
    if (err == UK_OK)
        *out = f;
out:
    ASN1_item_free((ASN1_VALUE *)c, ASN1_ITEM_rptr(sm2_cipher_asn1));
    ERR_clear_error();
    return err;
}
