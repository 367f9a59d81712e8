/* The soft SKF token's cryptography: SM2 (GM/T 0003), SM3, SM4 and RSA through OpenSSL 3.
 *
 * Keys are kept as PKCS#8 DER, decoded for each operation (a test token; a real one would keep
 * them in its chip). SM2 signing here is the raw scheme over a digest e = SM3(Z || M): the Z
 * value (which carries the signer ID) is the caller's business, as SKF_ECCSignData defines it,
 * and skfc_sm2_z computes it for SKF_DigestInit. Every temporary that held a private value is
 * wiped (OPENSSL_cleanse / BN_clear_free / OPENSSL_clear_free). */
#include "skf_core.h"

#include <errno.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

/* Every failure of OpenSSL ends here: the queue is emptied so no later call misreads it. */
static int ossl_fail(int rc)
{
    ERR_clear_error();
    return rc;
}

int skfc_random(uint8_t *p, size_t n)
{
    return n == 0 || RAND_bytes(p, (int)n) == 1 ? 0 : ossl_fail(-EIO);
}

/* Hands DER that an i2d function made (len bytes, or len <= 0 for a failure) to b. */
static int take_der(skf_blob *b, unsigned char *der, int len, int err)
{
    if (len <= 0)
        return ossl_fail(err);
    skf_blob_clear(b);
    b->p = der;
    b->n = (size_t)len;
    return 0;
}

static int encode_pkcs8(EVP_PKEY *pkey, skf_blob *key)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pkey);
    unsigned char *der = NULL;
    int len = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    PKCS8_PRIV_KEY_INFO_free(p8);
    return take_der(key, der, len, -ENOMEM);
}

static EVP_PKEY *decode_key(const skf_blob *key)
{
    const unsigned char *p = key->p;
    EVP_PKEY *pkey = key->n > 0 ? d2i_AutoPrivateKey(NULL, &p, (long)key->n) : NULL;
    if (pkey == NULL)
        ERR_clear_error();
    return pkey;
}

int skfc_sm2_generate(skf_blob *key)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    int rc = pkey != NULL ? encode_pkcs8(pkey, key) : ossl_fail(-EIO);
    EVP_PKEY_free(pkey);
    return rc;
}

int skfc_rsa_generate(unsigned bits, skf_blob *key)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    int rc = pkey != NULL ? encode_pkcs8(pkey, key) : ossl_fail(-EIO);
    EVP_PKEY_free(pkey);
    return rc;
}

int skfc_key_normalize(const uint8_t *der, size_t n, skf_blob *key)
{
    skf_blob in = {(uint8_t *)(uintptr_t)der, n};
    EVP_PKEY *pkey = decode_key(&in);
    int rc = pkey != NULL ? encode_pkcs8(pkey, key) : -EINVAL;
    EVP_PKEY_free(pkey);
    if (rc == 0) {
        int kind = 0;
        unsigned bits = 0;
        rc = skfc_key_kind(key, &kind, &bits);
        if (rc == 0 && !((kind == SKF_KIND_SM2 && bits == 256) ||
                         (kind == SKF_KIND_RSA && (bits == 1024 || bits == 2048))))
            rc = -EINVAL;
    }
    return rc;
}

int skfc_key_kind(const skf_blob *key, int *kind, unsigned *bits)
{
    EVP_PKEY *pkey = decode_key(key);
    *kind = SKF_KIND_NONE;
    *bits = 0;
    if (pkey == NULL)
        return -EINVAL;
    char group[32] = "";
    if (EVP_PKEY_is_a(pkey, "RSA"))
        *kind = SKF_KIND_RSA;
    else if ((EVP_PKEY_is_a(pkey, "SM2") || EVP_PKEY_is_a(pkey, "EC")) &&
             EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                            NULL) &&
             strcmp(group, "SM2") == 0)
        *kind = SKF_KIND_SM2;
    *bits = (unsigned)EVP_PKEY_get_bits(pkey);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return *kind != SKF_KIND_NONE ? 0 : -EINVAL;
}

static int bn_to32(const BIGNUM *bn, uint8_t out[32])
{
    return BN_bn2binpad(bn, out, 32) == 32 ? 0 : -EINVAL;
}

static int point_xy(EVP_PKEY *pkey, uint8_t x[32], uint8_t y[32])
{
    uint8_t pt[65];
    size_t len = 0;
    if (!EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &len) ||
        len != 65 || pt[0] != 0x04)
        return ossl_fail(-EINVAL);
    memcpy(x, pt + 1, 32);
    memcpy(y, pt + 33, 32);
    return 0;
}

int skfc_sm2_public(const skf_blob *key, uint8_t x[32], uint8_t y[32])
{
    EVP_PKEY *pkey = decode_key(key);
    int rc = pkey != NULL ? point_xy(pkey, x, y) : -EINVAL;
    EVP_PKEY_free(pkey);
    return rc;
}

int skfc_rsa_public(const skf_blob *key, uint8_t n[256], size_t *n_len, uint8_t e[4])
{
    EVP_PKEY *pkey = decode_key(key);
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    int rc = -EINVAL;
    if (pkey != NULL && EVP_PKEY_is_a(pkey, "RSA") &&
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &bn_n) &&
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &bn_e) && BN_num_bytes(bn_n) <= 256 &&
        BN_bn2binpad(bn_e, e, 4) == 4) {
        *n_len = (size_t)BN_bn2bin(bn_n, n);
        rc = 0;
    }
    BN_free(bn_n);
    BN_free(bn_e);
    EVP_PKEY_free(pkey);
    return rc == 0 ? 0 : ossl_fail(rc);
}

/* An SM2 public key from its point. */
static EVP_PKEY *sm2_from_point(const uint8_t x[32], const uint8_t y[32], const BIGNUM *priv)
{
    uint8_t pt[65] = {0x04};
    memcpy(pt + 1, x, 32);
    memcpy(pt + 33, y, 32);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "SM2", NULL);
    EVP_PKEY *pkey = NULL;
    if (bld != NULL && ctx != NULL &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "SM2", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt) &&
        (priv == NULL || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv)) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) != NULL && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, priv != NULL ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                          params) == 1) {
        /* pkey is set */
    }
    /* priv is a BN_secure_new number: the builder keeps it in secure memory, which
     * OSSL_PARAM_free clears (OpenSSL 3.0 has no OSSL_PARAM_clear_free) */
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    if (pkey == NULL)
        ERR_clear_error();
    return pkey;
}

int skfc_sm2_spki(const uint8_t x[32], const uint8_t y[32], skf_blob *spki)
{
    EVP_PKEY *pkey = sm2_from_point(x, y, NULL);
    unsigned char *der = NULL;
    int len = pkey != NULL ? i2d_PUBKEY(pkey, &der) : -1;
    EVP_PKEY_free(pkey);
    return take_der(spki, der, len, -EINVAL);
}

int skfc_sm2_sign(const skf_blob *key, const uint8_t e[32], uint8_t r[32], uint8_t s[32])
{
    EVP_PKEY *pkey = decode_key(key);
    EVP_PKEY_CTX *ctx = pkey != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    unsigned char der[80];
    size_t len = sizeof der;
    ECDSA_SIG *sig = NULL;
    int rc = -EIO;
    if (ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_sign(ctx, der, &len, e, 32) == 1) {
        const unsigned char *p = der;
        sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
        if (sig != NULL && bn_to32(ECDSA_SIG_get0_r(sig), r) == 0 &&
            bn_to32(ECDSA_SIG_get0_s(sig), s) == 0)
            rc = 0;
    }
    ECDSA_SIG_free(sig);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return rc == 0 ? 0 : ossl_fail(rc);
}

int skfc_sm2_verify(const uint8_t x[32], const uint8_t y[32], const uint8_t e[32],
                    const uint8_t r[32], const uint8_t s[32])
{
    EVP_PKEY *pkey = sm2_from_point(x, y, NULL);
    EVP_PKEY_CTX *ctx = pkey != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *br = BN_bin2bn(r, 32, NULL), *bs = BN_bin2bn(s, 32, NULL);
    unsigned char *der = NULL;
    int len = -1, rc = -EINVAL;
    if (sig != NULL && br != NULL && bs != NULL && ECDSA_SIG_set0(sig, br, bs) == 1) {
        br = bs = NULL; /* owned by sig now */
        len = i2d_ECDSA_SIG(sig, &der);
    }
    if (ctx != NULL && len > 0 && EVP_PKEY_verify_init(ctx) == 1)
        rc = EVP_PKEY_verify(ctx, der, (size_t)len, e, 32) == 1 ? 0 : -EBADMSG;
    OPENSSL_free(der);
    BN_free(br);
    BN_free(bs);
    ECDSA_SIG_free(sig);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return rc;
}

int skfc_sm2_z(const uint8_t x[32], const uint8_t y[32], const uint8_t *id, size_t id_len,
               uint8_t z[32])
{
    if (id_len >= 8192) /* ENTL is the ID's length in bits, in two bytes */
        return -EINVAL;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_sm2);
    BIGNUM *p = BN_new(), *a = BN_new(), *b = BN_new(), *gx = BN_new(), *gy = BN_new();
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t params[4][32], entl[2] = {(uint8_t)(id_len * 8 >> 8), (uint8_t)(id_len * 8)};
    unsigned int len = 0;
    int rc = -EIO;
    if (g != NULL && p != NULL && a != NULL && b != NULL && gx != NULL && gy != NULL &&
        md != NULL && EC_GROUP_get_curve(g, p, a, b, NULL) == 1 &&
        EC_POINT_get_affine_coordinates(g, EC_GROUP_get0_generator(g), gx, gy, NULL) == 1 &&
        bn_to32(a, params[0]) == 0 && bn_to32(b, params[1]) == 0 && bn_to32(gx, params[2]) == 0 &&
        bn_to32(gy, params[3]) == 0 && EVP_DigestInit_ex(md, EVP_sm3(), NULL) == 1 &&
        EVP_DigestUpdate(md, entl, 2) == 1 && (id_len == 0 || EVP_DigestUpdate(md, id, id_len)) &&
        EVP_DigestUpdate(md, params, sizeof params) == 1 && EVP_DigestUpdate(md, x, 32) == 1 &&
        EVP_DigestUpdate(md, y, 32) == 1 && EVP_DigestFinal_ex(md, z, &len) == 1 && len == 32)
        rc = 0;
    EVP_MD_CTX_free(md);
    BN_free(p);
    BN_free(a);
    BN_free(b);
    BN_free(gx);
    BN_free(gy);
    EC_GROUP_free(g);
    return rc == 0 ? 0 : ossl_fail(rc);
}

/* OpenSSL speaks the GM/T 0009 SM2Cipher DER: SEQUENCE { INTEGER x, INTEGER y, OCTET STRING hash,
 * OCTET STRING ciphertext }; SKF speaks fixed fields. These two convert. */
static int cipher_from_der(const unsigned char *der, long len, uint8_t c1x[32], uint8_t c1y[32],
                           uint8_t c3[32], uint8_t *c2, size_t n)
{
    const unsigned char *p = der;
    STACK_OF(ASN1_TYPE) *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);
    int rc = -EINVAL;
    if (seq != NULL && sk_ASN1_TYPE_num(seq) == 4 && p == der + len) {
        ASN1_TYPE *t[4];
        for (int i = 0; i < 4; i++)
            t[i] = sk_ASN1_TYPE_value(seq, i);
        BIGNUM *bx = NULL, *by = NULL;
        if (t[0]->type == V_ASN1_INTEGER && t[1]->type == V_ASN1_INTEGER &&
            t[2]->type == V_ASN1_OCTET_STRING && t[3]->type == V_ASN1_OCTET_STRING &&
            ASN1_STRING_length(t[2]->value.octet_string) == 32 &&
            (size_t)ASN1_STRING_length(t[3]->value.octet_string) == n &&
            (bx = ASN1_INTEGER_to_BN(t[0]->value.integer, NULL)) != NULL &&
            (by = ASN1_INTEGER_to_BN(t[1]->value.integer, NULL)) != NULL && bn_to32(bx, c1x) == 0 &&
            bn_to32(by, c1y) == 0) {
            memcpy(c3, ASN1_STRING_get0_data(t[2]->value.octet_string), 32);
            memcpy(c2, ASN1_STRING_get0_data(t[3]->value.octet_string), n);
            rc = 0;
        }
        BN_free(bx);
        BN_free(by);
    }
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    return rc == 0 ? 0 : ossl_fail(rc);
}

/* Appends value (an ASN1_STRING of the given type, owned from here on) to seq. */
static int push_value(STACK_OF(ASN1_TYPE) * seq, int type, ASN1_STRING *value)
{
    ASN1_TYPE *t = value != NULL ? ASN1_TYPE_new() : NULL;
    if (t == NULL) {
        ASN1_STRING_free(value);
        return -ENOMEM;
    }
    ASN1_TYPE_set(t, type, value);
    if (sk_ASN1_TYPE_push(seq, t) <= 0) {
        ASN1_TYPE_free(t);
        return -ENOMEM;
    }
    return 0;
}

static int push_integer(STACK_OF(ASN1_TYPE) * seq, const uint8_t v[32])
{
    BIGNUM *bn = BN_bin2bn(v, 32, NULL);
    ASN1_INTEGER *i = bn != NULL ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    BN_free(bn);
    return push_value(seq, V_ASN1_INTEGER, i);
}

static int push_octets(STACK_OF(ASN1_TYPE) * seq, const uint8_t *v, size_t n)
{
    ASN1_OCTET_STRING *o = ASN1_OCTET_STRING_new();
    if (o != NULL && ASN1_OCTET_STRING_set(o, v, (int)n) != 1) {
        ASN1_OCTET_STRING_free(o);
        o = NULL;
    }
    return push_value(seq, V_ASN1_OCTET_STRING, o);
}

static int cipher_to_der(const uint8_t c1x[32], const uint8_t c1y[32], const uint8_t c3[32],
                         const uint8_t *c2, size_t n, unsigned char **der, int *len)
{
    STACK_OF(ASN1_TYPE) *seq = sk_ASN1_TYPE_new_null();
    int rc = seq != NULL ? 0 : -ENOMEM;
    if (rc == 0)
        rc = push_integer(seq, c1x);
    if (rc == 0)
        rc = push_integer(seq, c1y);
    if (rc == 0)
        rc = push_octets(seq, c3, 32);
    if (rc == 0)
        rc = push_octets(seq, c2, n);
    *der = NULL;
    if (rc == 0 && (*len = i2d_ASN1_SEQUENCE_ANY(seq, der)) <= 0)
        rc = -ENOMEM;
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    return rc == 0 ? 0 : ossl_fail(rc);
}

int skfc_sm2_encrypt(const uint8_t x[32], const uint8_t y[32], const uint8_t *in, size_t n,
                     uint8_t c1x[32], uint8_t c1y[32], uint8_t c3[32], uint8_t *out)
{
    EVP_PKEY *pkey = sm2_from_point(x, y, NULL);
    EVP_PKEY_CTX *ctx = pkey != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    unsigned char *der = NULL;
    size_t len = 0;
    int rc = -EINVAL;
    if (ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
        EVP_PKEY_encrypt(ctx, NULL, &len, in, n) == 1 && (der = OPENSSL_malloc(len)) != NULL &&
        EVP_PKEY_encrypt(ctx, der, &len, in, n) == 1)
        rc = cipher_from_der(der, (long)len, c1x, c1y, c3, out, n);
    OPENSSL_free(der);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return rc == 0 ? 0 : ossl_fail(rc);
}

int skfc_sm2_decrypt(const skf_blob *key, const uint8_t c1x[32], const uint8_t c1y[32],
                     const uint8_t c3[32], const uint8_t *c2, size_t n, uint8_t *out)
{
    unsigned char *der = NULL, *plain = NULL;
    int der_len = 0;
    int rc = cipher_to_der(c1x, c1y, c3, c2, n, &der, &der_len);
    if (rc != 0)
        return rc;
    EVP_PKEY *pkey = decode_key(key);
    EVP_PKEY_CTX *ctx = pkey != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    size_t len = 0;
    rc = -EBADMSG;
    if (ctx != NULL && EVP_PKEY_decrypt_init(ctx) == 1 &&
        EVP_PKEY_decrypt(ctx, NULL, &len, der, (size_t)der_len) == 1 &&
        (plain = OPENSSL_malloc(len)) != NULL &&
        EVP_PKEY_decrypt(ctx, plain, &len, der, (size_t)der_len) == 1 && len == n) {
        memcpy(out, plain, n);
        rc = 0;
    }
    OPENSSL_clear_free(plain, len);
    OPENSSL_free(der);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return rc == 0 ? 0 : ossl_fail(rc);
}

int skfc_sm2_from_private(const uint8_t d[32], const uint8_t x[32], const uint8_t y[32],
                          skf_blob *key)
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_sm2);
    BIGNUM *bd = BN_secure_new(), *px = BN_new(), *py = BN_new(), *limit = BN_new();
    EC_POINT *pt = g != NULL ? EC_POINT_new(g) : NULL;
    EVP_PKEY *pkey = NULL;
    uint8_t cx[32], cy[32];
    int rc = -ENOMEM;
    if (pt == NULL || bd == NULL || px == NULL || py == NULL || limit == NULL ||
        BN_bin2bn(d, 32, bd) == NULL || BN_copy(limit, EC_GROUP_get0_order(g)) == NULL ||
        !BN_sub_word(limit, 1))
        goto out;
    rc = -EBADMSG;
    /* GM/T 0003.1: d in [1, n - 2]; its point must be the public key the envelope names */
    if (BN_is_zero(bd) || BN_cmp(bd, limit) >= 0 ||
        EC_POINT_mul(g, pt, bd, NULL, NULL, NULL) != 1 ||
        EC_POINT_get_affine_coordinates(g, pt, px, py, NULL) != 1 || bn_to32(px, cx) != 0 ||
        bn_to32(py, cy) != 0 || memcmp(cx, x, 32) != 0 || memcmp(cy, y, 32) != 0)
        goto out;
    pkey = sm2_from_point(x, y, bd);
    rc = pkey != NULL ? encode_pkcs8(pkey, key) : -EIO;
out:
    EVP_PKEY_free(pkey);
    EC_POINT_clear_free(pt);
    BN_clear_free(bd);
    BN_free(px);
    BN_free(py);
    BN_free(limit);
    EC_GROUP_free(g);
    return rc == 0 ? 0 : ossl_fail(rc);
}

int skfc_sm4_ecb(bool encrypt, const uint8_t key[16], const uint8_t *in, size_t n, uint8_t *out)
{
    if (n == 0 || n % 16 != 0 || n > INT32_MAX)
        return -EINVAL;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0, rc = -EIO;
    if (ctx != NULL && EVP_CipherInit_ex(ctx, EVP_sm4_ecb(), NULL, key, NULL, encrypt ? 1 : 0) &&
        EVP_CIPHER_CTX_set_padding(ctx, 0) && EVP_CipherUpdate(ctx, out, &len, in, (int)n) &&
        EVP_CipherFinal_ex(ctx, out + len, &fin) && (size_t)(len + fin) == n)
        rc = 0;
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    return rc == 0 ? 0 : ossl_fail(rc);
}

struct skfc_sm4_dec {
    EVP_CIPHER_CTX *ctx; /* no padding: the blocks are this file's business */
    bool padding;
    uint8_t buf[16]; /* what came in and was not given back yet */
    size_t buf_n;
};

skfc_sm4_dec *skfc_sm4_dec_new(const uint8_t key[16], const uint8_t *iv, bool padding)
{
    skfc_sm4_dec *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->padding = padding;
    d->ctx = EVP_CIPHER_CTX_new();
    if (d->ctx == NULL ||
        !EVP_DecryptInit_ex(d->ctx, iv != NULL ? EVP_sm4_cbc() : EVP_sm4_ecb(), NULL, key, iv) ||
        !EVP_CIPHER_CTX_set_padding(d->ctx, 0)) {
        skfc_sm4_dec_free(d);
        ossl_fail(-EIO);
        return NULL;
    }
    return d;
}

skfc_sm4_dec *skfc_sm4_dec_dup(const skfc_sm4_dec *d)
{
    skfc_sm4_dec *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    *c = *d;
    c->ctx = EVP_CIPHER_CTX_new();
    if (c->ctx == NULL || !EVP_CIPHER_CTX_copy(c->ctx, d->ctx)) {
        skfc_sm4_dec_free(c);
        ossl_fail(-EIO);
        return NULL;
    }
    return c;
}

size_t skfc_sm4_dec_out(const skfc_sm4_dec *d, size_t n)
{
    size_t total = d->buf_n + n, out = total / 16 * 16;
    /* with padding the last whole block may be the padded one: kept until the end */
    if (d->padding && out > 0 && out == total)
        out -= 16;
    return out;
}

int skfc_sm4_dec_update(skfc_sm4_dec *d, const uint8_t *in, size_t n, uint8_t *out, size_t *out_len)
{
    if (n > SKF_CIPHER_MAX)
        return -EINVAL;
    size_t emit = skfc_sm4_dec_out(d, n);
    /* the stream is buf || in: its first emit bytes are deciphered, the rest kept */
    size_t a = d->buf_n < emit ? d->buf_n : emit, b = emit - a;
    int l1 = 0, l2 = 0;
    if ((a > 0 && !EVP_DecryptUpdate(d->ctx, out, &l1, d->buf, (int)a)) ||
        (b > 0 && !EVP_DecryptUpdate(d->ctx, out + l1, &l2, in, (int)b)) ||
        (size_t)l1 + (size_t)l2 != emit)
        return ossl_fail(-EIO);
    memmove(d->buf, d->buf + a, d->buf_n - a);
    if (n > b) /* in may be NULL when n is 0 */
        memcpy(d->buf + (d->buf_n - a), in + b, n - b);
    d->buf_n = d->buf_n - a + n - b;
    *out_len = emit;
    return 0;
}

int skfc_sm4_dec_final(skfc_sm4_dec *d, uint8_t out[16], size_t *out_len)
{
    *out_len = 0;
    if (!d->padding)
        return d->buf_n == 0 ? 0 : -EINVAL;
    if (d->buf_n != 16)
        return -EINVAL;
    uint8_t block[16];
    int len = 0, rc = 0;
    if (!EVP_DecryptUpdate(d->ctx, block, &len, d->buf, 16) || len != 16) {
        rc = ossl_fail(-EIO);
    } else {
        unsigned pad = block[15];
        for (unsigned i = 0; i < pad && pad >= 1 && pad <= 16; i++)
            if (block[15 - i] != pad)
                pad = 0;
        if (pad < 1 || pad > 16) {
            rc = -EBADMSG;
        } else {
            memcpy(out, block, 16 - pad);
            *out_len = 16 - pad;
        }
    }
    d->buf_n = 0;
    OPENSSL_cleanse(block, sizeof block);
    return rc;
}

void skfc_sm4_dec_free(skfc_sm4_dec *d)
{
    if (d == NULL)
        return;
    EVP_CIPHER_CTX_free(d->ctx); /* cleanses the key schedule */
    OPENSSL_clear_free(d, sizeof *d);
}

int skfc_rsa_sign(const skf_blob *key, const uint8_t *in, size_t n, uint8_t *sig, size_t *sig_len)
{
    EVP_PKEY *pkey = decode_key(key);
    EVP_PKEY_CTX *ctx = pkey != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    size_t len = *sig_len;
    int rc = -EIO;
    /* no digest set: the provider pads in as it is (PKCS#1 v1.5 type 1), at most k - 11 bytes */
    if (ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 &&
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
        EVP_PKEY_sign(ctx, sig, &len, in, n) == 1) {
        *sig_len = len;
        rc = 0;
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return rc == 0 ? 0 : ossl_fail(rc);
}

int skfc_cert_check(const uint8_t *p, size_t n)
{
    const unsigned char *q = p;
    X509 *x = n > 0 && n <= SKF_CERT_MAX ? d2i_X509(NULL, &q, (long)n) : NULL;
    int rc = x != NULL && q == p + n ? 0 : -EINVAL;
    X509_free(x);
    ERR_clear_error();
    return rc;
}

struct skfc_md {
    EVP_MD_CTX *ctx;
};

skfc_md *skfc_md_new(int alg)
{
    const EVP_MD *md = alg == SKF_MD_SM3      ? EVP_sm3()
                       : alg == SKF_MD_SHA1   ? EVP_sha1()
                       : alg == SKF_MD_SHA256 ? EVP_sha256()
                                              : NULL;
    skfc_md *m = md != NULL ? OPENSSL_zalloc(sizeof *m) : NULL;
    if (m == NULL)
        return NULL;
    m->ctx = EVP_MD_CTX_new();
    if (m->ctx == NULL || EVP_DigestInit_ex(m->ctx, md, NULL) != 1) {
        skfc_md_free(m);
        ERR_clear_error();
        return NULL;
    }
    return m;
}

int skfc_md_update(skfc_md *m, const void *p, size_t n)
{
    return n == 0 || EVP_DigestUpdate(m->ctx, p, n) == 1 ? 0 : ossl_fail(-EIO);
}

int skfc_md_final(skfc_md *m, uint8_t *out)
{
    unsigned int len = 0;
    return EVP_DigestFinal_ex(m->ctx, out, &len) == 1 ? 0 : ossl_fail(-EIO);
}

size_t skfc_md_size(const skfc_md *m)
{
    return (size_t)EVP_MD_CTX_get_size(m->ctx);
}

void skfc_md_free(skfc_md *m)
{
    if (m == NULL)
        return;
    EVP_MD_CTX_free(m->ctx);
    OPENSSL_free(m);
}
