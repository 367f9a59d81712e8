/* Key material of the virtual card, on OpenSSL 3 (provider API only). */
#include "vpiv_int.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool vpiv_alg_is_rsa(uint8_t alg)
{
    return alg == VPIV_ALG_RSA1024 || alg == VPIV_ALG_RSA2048;
}

bool vpiv_alg_is_ec(uint8_t alg)
{
    return alg == VPIV_ALG_ECCP256 || alg == VPIV_ALG_ECCP384;
}

static const char *curve_name(uint8_t alg)
{
    return alg == VPIV_ALG_ECCP256 ? "P-256" : "P-384";
}

static int curve_nid(uint8_t alg)
{
    return alg == VPIV_ALG_ECCP256 ? NID_X9_62_prime256v1 : NID_secp384r1;
}

static size_t rsa_bits(uint8_t alg)
{
    return alg == VPIV_ALG_RSA1024 ? 1024 : 2048;
}

struct vpiv_key *vpiv_key_generate(uint8_t alg)
{
    EVP_PKEY *pkey = NULL;
    if (vpiv_alg_is_rsa(alg))
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", rsa_bits(alg));
    else if (vpiv_alg_is_ec(alg))
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve_name(alg));
    if (pkey == NULL)
        return NULL;
    struct vpiv_key *key = calloc(1, sizeof(*key));
    if (key == NULL) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    key->alg = alg;
    key->pkey = pkey;
    key->origin = VPIV_ORIGIN_GENERATED;
    return key;
}

void vpiv_key_free(struct vpiv_key *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    free(key);
}

static void put_bn(vpiv_buf *b, uint32_t tag, const BIGNUM *bn)
{
    uint8_t tmp[1024];
    int n = BN_bn2bin(bn, tmp);
    vpiv_tlv_put(b, tag, tmp, (size_t)n);
}

void vpiv_key_put_public(vpiv_buf *b, const struct vpiv_key *key)
{
    if (vpiv_alg_is_rsa(key->alg)) {
        BIGNUM *n = NULL, *e = NULL;
        if (EVP_PKEY_get_bn_param(key->pkey, OSSL_PKEY_PARAM_RSA_N, &n) &&
            EVP_PKEY_get_bn_param(key->pkey, OSSL_PKEY_PARAM_RSA_E, &e)) {
            put_bn(b, 0x81, n);
            put_bn(b, 0x82, e);
        } else {
            b->overflow = true;
        }
        BN_free(n);
        BN_free(e);
    } else {
        uint8_t pt[133];
        size_t len = 0;
        if (EVP_PKEY_get_octet_string_param(key->pkey, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt),
                                            &len))
            vpiv_tlv_put(b, 0x86, pt, len);
        else
            b->overflow = true;
    }
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) > 0)
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *import_rsa(uint8_t alg, const uint8_t *data, size_t len)
{
    const uint8_t *part[5];
    size_t plen[5];
    size_t half = rsa_bits(alg) / 16;
    for (uint32_t i = 0; i < 5; i++) {
        if (vpiv_tlv_find(data, len, 0x01 + i, &part[i], &plen[i]) != 1 || plen[i] > half ||
            plen[i] == 0)
            return NULL;
    }
    EVP_PKEY *pkey = NULL;
    BN_CTX *bnctx = BN_CTX_new();
    BIGNUM *p = BN_bin2bn(part[0], (int)plen[0], NULL);
    BIGNUM *q = BN_bin2bn(part[1], (int)plen[1], NULL);
    BIGNUM *dp = BN_bin2bn(part[2], (int)plen[2], NULL);
    BIGNUM *dq = BN_bin2bn(part[3], (int)plen[3], NULL);
    BIGNUM *qinv = BN_bin2bn(part[4], (int)plen[4], NULL);
    BIGNUM *n = BN_new(), *e = BN_new(), *d = BN_new(), *phi = BN_new();
    BIGNUM *p1 = BN_new(), *q1 = BN_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    /* The card is sent only the CRT parts; like real cards it assumes the
     * public exponent 65537 and derives n and d. */
    if (!bnctx || !p || !q || !dp || !dq || !qinv || !n || !e || !d || !phi || !p1 || !q1 || !bld ||
        !BN_mul(n, p, q, bnctx) || (size_t)BN_num_bits(n) != rsa_bits(alg) ||
        !BN_set_word(e, 65537) || !BN_sub(p1, p, BN_value_one()) ||
        !BN_sub(q1, q, BN_value_one()) || !BN_mul(phi, p1, q1, bnctx) ||
        !BN_mod_inverse(d, e, phi, bnctx) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qinv))
        goto out;
    pkey = pkey_fromdata("RSA", bld);
    if (pkey) {
        /* Reject CRT parts that do not belong together. */
        EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new(pkey, NULL);
        if (chk == NULL || EVP_PKEY_pairwise_check(chk) != 1) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        EVP_PKEY_CTX_free(chk);
    }
out:
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(p);
    BN_clear_free(q);
    BN_clear_free(dp);
    BN_clear_free(dq);
    BN_clear_free(qinv);
    BN_clear_free(d);
    BN_clear_free(phi);
    BN_clear_free(p1);
    BN_clear_free(q1);
    BN_free(n);
    BN_free(e);
    BN_CTX_free(bnctx);
    return pkey;
}

static EVP_PKEY *import_ec(uint8_t alg, const uint8_t *data, size_t len)
{
    const uint8_t *s;
    size_t slen;
    size_t field = alg == VPIV_ALG_ECCP256 ? 32 : 48;
    if (vpiv_tlv_find(data, len, 0x06, &s, &slen) != 1 || slen != field)
        return NULL;
    EVP_PKEY *pkey = NULL;
    uint8_t pub[97];
    size_t publen = 0;
    EC_GROUP *group = EC_GROUP_new_by_curve_name(curve_nid(alg));
    EC_POINT *pt = group ? EC_POINT_new(group) : NULL;
    BIGNUM *priv = BN_bin2bn(s, (int)slen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (!group || !pt || !priv || !bld || BN_is_zero(priv) ||
        BN_cmp(priv, EC_GROUP_get0_order(group)) >= 0 ||
        !EC_POINT_mul(group, pt, priv, NULL, NULL, NULL))
        goto out;
    publen = EC_POINT_point2oct(group, pt, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), NULL);
    if (publen == 0 ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                         OBJ_nid2sn(curve_nid(alg)), 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, publen) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv))
        goto out;
    pkey = pkey_fromdata("EC", bld);
out:
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(priv);
    EC_POINT_free(pt);
    EC_GROUP_free(group);
    return pkey;
}

struct vpiv_key *vpiv_key_import(uint8_t alg, const uint8_t *data, size_t len)
{
    EVP_PKEY *pkey = NULL;
    if (vpiv_alg_is_rsa(alg))
        pkey = import_rsa(alg, data, len);
    else if (vpiv_alg_is_ec(alg))
        pkey = import_ec(alg, data, len);
    if (pkey == NULL) {
        ERR_clear_error();
        return NULL;
    }
    struct vpiv_key *key = calloc(1, sizeof(*key));
    if (key == NULL) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    key->alg = alg;
    key->pkey = pkey;
    key->origin = VPIV_ORIGIN_IMPORTED;
    return key;
}

int vpiv_key_rsa_raw(const struct vpiv_key *key, const uint8_t *in, size_t n, vpiv_buf *out)
{
    int rc = -1;
    uint8_t res[512];
    size_t rlen = sizeof(res);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key->pkey, NULL);
    /* The PIV RSA operation is the bare private-key exponentiation; padding
     * (PKCS#1 v1.5, PSS, OAEP) is the host's business. */
    if (ctx && (size_t)EVP_PKEY_get_size(key->pkey) == n && EVP_PKEY_decrypt_init(ctx) > 0 &&
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) > 0 &&
        EVP_PKEY_decrypt(ctx, res, &rlen, in, n) > 0) {
        vpiv_buf_put(out, res, rlen);
        rc = 0;
    }
    OPENSSL_cleanse(res, sizeof(res));
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

int vpiv_key_ecdsa(const struct vpiv_key *key, const uint8_t *digest, size_t n, vpiv_buf *out)
{
    int rc = -1;
    uint8_t sig[128];
    size_t slen = sizeof(sig);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key->pkey, NULL);
    if (ctx && EVP_PKEY_sign_init(ctx) > 0 && EVP_PKEY_sign(ctx, sig, &slen, digest, n) > 0) {
        vpiv_buf_put(out, sig, slen);
        rc = 0;
    }
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

int vpiv_key_ecdh(const struct vpiv_key *key, const uint8_t *point, size_t n, vpiv_buf *out)
{
    int rc = -1;
    uint8_t secret[64];
    size_t slen = sizeof(secret);
    EVP_PKEY *peer = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                         OBJ_nid2sn(curve_nid(key->alg)), 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, n))
        goto out;
    {
        OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
        EVP_PKEY_CTX *fctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (params && fctx && EVP_PKEY_fromdata_init(fctx) > 0)
            EVP_PKEY_fromdata(fctx, &peer, EVP_PKEY_PUBLIC_KEY, params);
        EVP_PKEY_CTX_free(fctx);
        OSSL_PARAM_free(params);
    }
    ctx = peer ? EVP_PKEY_CTX_new(key->pkey, NULL) : NULL;
    if (ctx && EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_derive_set_peer(ctx, peer) > 0 &&
        EVP_PKEY_derive(ctx, secret, &slen) > 0) {
        vpiv_buf_put(out, secret, slen);
        rc = 0;
    }
out:
    OPENSSL_cleanse(secret, sizeof(secret));
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    OSSL_PARAM_BLD_free(bld);
    ERR_clear_error();
    return rc;
}

size_t vpiv_mgm_block(uint8_t alg)
{
    return alg == VPIV_ALG_3DES ? 8 : 16;
}

size_t vpiv_mgm_keylen(uint8_t alg)
{
    switch (alg) {
    case VPIV_ALG_3DES:
        return 24;
    case VPIV_ALG_AES128:
        return 16;
    case VPIV_ALG_AES192:
        return 24;
    case VPIV_ALG_AES256:
        return 32;
    default:
        return 0;
    }
}

static const char *mgm_cipher(uint8_t alg)
{
    switch (alg) {
    case VPIV_ALG_3DES:
        return "DES-EDE3-ECB";
    case VPIV_ALG_AES128:
        return "AES-128-ECB";
    case VPIV_ALG_AES192:
        return "AES-192-ECB";
    case VPIV_ALG_AES256:
        return "AES-256-ECB";
    default:
        return NULL;
    }
}

int vpiv_mgm_crypt(uint8_t alg, const uint8_t *key, size_t keylen, bool encrypt, const uint8_t *in,
                   size_t n, uint8_t *out)
{
    int rc = -1, outl = 0, finl = 0;
    const char *name = mgm_cipher(alg);
    EVP_CIPHER *cipher = name ? EVP_CIPHER_fetch(NULL, name, NULL) : NULL;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (cipher && ctx && keylen == vpiv_mgm_keylen(alg) && n % vpiv_mgm_block(alg) == 0 &&
        EVP_CipherInit_ex2(ctx, cipher, key, NULL, encrypt ? 1 : 0, NULL) &&
        EVP_CIPHER_CTX_set_padding(ctx, 0) && EVP_CipherUpdate(ctx, out, &outl, in, (int)n) &&
        EVP_CipherFinal_ex(ctx, out + outl, &finl))
        rc = 0;
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(cipher);
    ERR_clear_error();
    return rc;
}
