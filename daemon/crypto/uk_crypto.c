/* Host-side cryptography for card drivers, on OpenSSL 3 (provider API). */
#include "uk_crypto.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_ossl.h"

/* Logs OpenSSL's queue (once, at the failing call) and clears it. */
#define OSSL_FAIL(what) ossl_fail(what, __FILE__, __LINE__, __func__)

static int ossl_fail(const char *what, const char *file, int line, const char *func)
{
    return uk_ossl_fail_at(UK_LOG_LEVEL_ERR, file, line, func, UK_E_INTERNAL, what);
}

static const EVP_MD *md_of(uk_crypto_md md)
{
    switch (md) {
    case UK_CRYPTO_SHA256:
        return EVP_sha256();
    case UK_CRYPTO_SHA384:
        return EVP_sha384();
    case UK_CRYPTO_SHA512:
        return EVP_sha512();
    }
    return NULL;
}

size_t uk_crypto_md_size(uk_crypto_md md)
{
    switch (md) {
    case UK_CRYPTO_SHA256:
        return 32;
    case UK_CRYPTO_SHA384:
        return 48;
    case UK_CRYPTO_SHA512:
        return 64;
    }
    return 0;
}

/* ---- EMSA-PKCS1-v1_5 ------------------------------------------------- */

/* DER of DigestInfo { AlgorithmIdentifier { oid, NULL }, OCTET STRING } up
 * to the digest itself (RFC 8017 9.2 note 1). */
static const uint8_t di_sha256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const uint8_t di_sha384[] = {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30};
static const uint8_t di_sha512[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};

int uk_crypto_emsa_pkcs1_v15(uk_crypto_md md, const uint8_t *digest, size_t digest_len, uint8_t *em,
                             size_t em_len)
{
    const uint8_t *prefix;
    size_t prefix_len;
    switch (md) {
    case UK_CRYPTO_SHA256:
        prefix = di_sha256;
        prefix_len = sizeof(di_sha256);
        break;
    case UK_CRYPTO_SHA384:
        prefix = di_sha384;
        prefix_len = sizeof(di_sha384);
        break;
    case UK_CRYPTO_SHA512:
        prefix = di_sha512;
        prefix_len = sizeof(di_sha512);
        break;
    default:
        return UK_E_INVALID_PARAMS;
    }
    size_t t_len = prefix_len + digest_len;
    if (digest == NULL || em == NULL || digest_len != uk_crypto_md_size(md) || em_len < t_len + 11)
        return UK_E_INVALID_PARAMS;
    size_t ps_len = em_len - t_len - 3;
    em[0] = 0x00;
    em[1] = 0x01;
    memset(em + 2, 0xFF, ps_len);
    em[2 + ps_len] = 0x00;
    memcpy(em + 3 + ps_len, prefix, prefix_len);
    memcpy(em + 3 + ps_len + prefix_len, digest, digest_len);
    return UK_OK;
}

/* ---- EMSA-PSS -------------------------------------------------------- */

/* MGF1 (RFC 8017 B.2.1): XORs the mask of seed into out[0..n). */
static int mgf1_xor(const EVP_MD *md, const uint8_t *seed, size_t seed_len, uint8_t *out, size_t n)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t block[EVP_MAX_MD_SIZE];
    unsigned int block_len = 0;
    int rc = UK_OK;
    if (ctx == NULL)
        return UK_E_NO_MEMORY;
    for (uint32_t counter = 0, done = 0; done < n; counter++) {
        uint8_t c[4] = {(uint8_t)(counter >> 24), (uint8_t)(counter >> 16), (uint8_t)(counter >> 8),
                        (uint8_t)counter};
        if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, seed, seed_len) != 1 ||
            EVP_DigestUpdate(ctx, c, 4) != 1 || EVP_DigestFinal_ex(ctx, block, &block_len) != 1) {
            rc = OSSL_FAIL("MGF1 digest");
            break;
        }
        for (unsigned int i = 0; i < block_len && done < n; i++)
            out[done++] ^= block[i];
    }
    OPENSSL_cleanse(block, sizeof(block));
    EVP_MD_CTX_free(ctx);
    return rc;
}

int uk_crypto_emsa_pss(uk_crypto_md md, const uint8_t *digest, size_t digest_len, size_t mod_bits,
                       uint8_t *em, size_t em_len)
{
    const EVP_MD *evp = md_of(md);
    size_t h_len = uk_crypto_md_size(md);
    size_t s_len = h_len;
    if (evp == NULL || digest == NULL || em == NULL || digest_len != h_len || mod_bits < 2 ||
        em_len != (mod_bits + 7) / 8)
        return UK_E_INVALID_PARAMS;
    size_t em_bits = mod_bits - 1;
    size_t e_len = (em_bits + 7) / 8; /* emLen of RFC 8017: may be em_len - 1 */
    if (e_len < h_len + s_len + 2)
        return UK_E_INVALID_PARAMS;

    uint8_t salt[EVP_MAX_MD_SIZE];
    uint8_t h[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;
    static const uint8_t zeros[8] = {0};
    int rc = uk_crypto_random(salt, s_len);
    if (rc != UK_OK)
        return rc;

    /* H = Hash(00*8 || mHash || salt) */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        rc = UK_E_NO_MEMORY;
        goto out;
    }
    if (EVP_DigestInit_ex(ctx, evp, NULL) != 1 || EVP_DigestUpdate(ctx, zeros, 8) != 1 ||
        EVP_DigestUpdate(ctx, digest, h_len) != 1 || EVP_DigestUpdate(ctx, salt, s_len) != 1 ||
        EVP_DigestFinal_ex(ctx, h, &hl) != 1 || hl != h_len) {
        rc = OSSL_FAIL("PSS digest");
        goto out;
    }

    /* EM = maskedDB || H || BC, right-aligned in em. */
    uint8_t *e = em + (em_len - e_len);
    size_t db_len = e_len - h_len - 1;
    memset(em, 0, em_len);
    e[db_len - s_len - 1] = 0x01;
    memcpy(e + db_len - s_len, salt, s_len);
    rc = mgf1_xor(evp, h, h_len, e, db_len);
    if (rc != UK_OK)
        goto out;
    e[0] &= (uint8_t)(0xFFu >> (8 * e_len - em_bits));
    memcpy(e + db_len, h, h_len);
    e[e_len - 1] = 0xBC;
out:
    if (rc != UK_OK)
        OPENSSL_cleanse(em, em_len);
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(salt, sizeof(salt));
    OPENSSL_cleanse(h, sizeof(h));
    return rc;
}

/* ---- public keys ----------------------------------------------------- */

static int key_info(const EVP_PKEY *pkey, uk_crypto_key_info *info)
{
    memset(info, 0, sizeof(*info));
    int bits = EVP_PKEY_get_bits(pkey);
    info->bits = bits > 0 ? (unsigned)bits : 0;
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        info->type = UK_CRYPTO_KEY_RSA;
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64];
        size_t glen = 0;
        info->type = UK_CRYPTO_KEY_EC;
        info->curve = UK_CRYPTO_CURVE_OTHER;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) == 1) {
            if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
                info->curve = UK_CRYPTO_CURVE_P256;
            else if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
                info->curve = UK_CRYPTO_CURVE_P384;
        }
        ERR_clear_error();
    } else {
        info->type = UK_CRYPTO_KEY_OTHER;
    }
    return UK_OK;
}

int uk_crypto_spki_info(const uint8_t *spki, size_t len, uk_crypto_key_info *info)
{
    if (spki == NULL || info == NULL || len == 0 || len > LONG_MAX)
        return UK_E_INVALID_PARAMS;
    const unsigned char *p = spki;
    EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)len);
    if (pkey == NULL || p != spki + len) {
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        return UK_E_CERT_INVALID;
    }
    int rc = key_info(pkey, info);
    EVP_PKEY_free(pkey);
    return rc;
}

int uk_crypto_cert_key_info(const uint8_t *cert, size_t len, uk_crypto_key_info *info)
{
    if (cert == NULL || info == NULL || len == 0 || len > LONG_MAX)
        return UK_E_INVALID_PARAMS;
    const unsigned char *p = cert;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    EVP_PKEY *pkey = x != NULL && p == cert + len ? X509_get0_pubkey(x) : NULL;
    int rc = pkey != NULL ? key_info(pkey, info) : UK_E_CERT_INVALID;
    X509_free(x);
    ERR_clear_error();
    return rc;
}

/* fromdata -> public-key check -> i2d_PUBKEY; takes bld. */
static int spki_from_params(const char *type, OSSL_PARAM_BLD *bld, uint8_t **spki, size_t *spki_len)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY_CTX *check = NULL;
    EVP_PKEY *pkey = NULL;
    unsigned char *der = NULL;
    int rc = UK_E_KEY_REJECTED;
    if (params == NULL || ctx == NULL) {
        rc = OSSL_FAIL("key parameters");
        goto out;
    }
    if (EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto out;
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (check == NULL || EVP_PKEY_public_check(check) != 1)
        goto out;
    int n = i2d_PUBKEY(pkey, &der);
    if (n <= 0) {
        rc = OSSL_FAIL("i2d_PUBKEY");
        goto out;
    }
    *spki = malloc((size_t)n);
    if (*spki == NULL) {
        rc = UK_E_NO_MEMORY;
        goto out;
    }
    memcpy(*spki, der, (size_t)n);
    *spki_len = (size_t)n;
    rc = UK_OK;
out:
    if (rc == UK_E_KEY_REJECTED)
        UK_LOG_WARN("the %s public key from the card is not valid", type);
    ERR_clear_error();
    OPENSSL_free(der);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return rc;
}

int uk_crypto_spki_from_rsa(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len,
                            uint8_t **spki, size_t *spki_len)
{
    if (n == NULL || e == NULL || spki == NULL || spki_len == NULL || n_len == 0 || n_len > 1024 ||
        e_len == 0 || e_len > 8)
        return UK_E_INVALID_PARAMS;
    BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL);
    BIGNUM *bn_e = BN_bin2bn(e, (int)e_len, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    int rc;
    if (bn_n == NULL || bn_e == NULL || bld == NULL ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1) {
        OSSL_PARAM_BLD_free(bld);
        rc = OSSL_FAIL("RSA parameters");
    } else {
        rc = spki_from_params("RSA", bld, spki, spki_len);
    }
    BN_free(bn_n);
    BN_free(bn_e);
    return rc;
}

int uk_crypto_spki_from_ec(uk_crypto_curve curve, const uint8_t *point, size_t len, uint8_t **spki,
                           size_t *spki_len)
{
    const char *group, *type = "EC";
    size_t field;
    switch (curve) {
    case UK_CRYPTO_CURVE_P256:
        group = "P-256";
        field = 32;
        break;
    case UK_CRYPTO_CURVE_P384:
        group = "P-384";
        field = 48;
        break;
    case UK_CRYPTO_CURVE_SM2:
        group = "SM2";
        type = "SM2";
        field = 32;
        break;
    default:
        return UK_E_INVALID_PARAMS;
    }
    if (point == NULL || spki == NULL || spki_len == NULL)
        return UK_E_INVALID_PARAMS;
    /* Only the uncompressed form: that is what SP 800-73-4 tag 86 holds. */
    if (len != 1 + 2 * field || point[0] != 0x04) {
        UK_LOG_WARN("the EC point from the card is not an uncompressed %s point", group);
        return UK_E_KEY_REJECTED;
    }
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, len) != 1) {
        OSSL_PARAM_BLD_free(bld);
        return OSSL_FAIL("EC parameters");
    }
    return spki_from_params(type, bld, spki, spki_len);
}

/* ---- management-key ciphers ------------------------------------------ */

size_t uk_crypto_cipher_key_len(uk_crypto_cipher c)
{
    switch (c) {
    case UK_CRYPTO_3DES:
        return 24;
    case UK_CRYPTO_AES128:
        return 16;
    case UK_CRYPTO_AES192:
        return 24;
    case UK_CRYPTO_AES256:
        return 32;
    }
    return 0;
}

size_t uk_crypto_cipher_block(uk_crypto_cipher c)
{
    switch (c) {
    case UK_CRYPTO_3DES:
        return 8;
    case UK_CRYPTO_AES128:
    case UK_CRYPTO_AES192:
    case UK_CRYPTO_AES256:
        return 16;
    }
    return 0;
}

static const EVP_CIPHER *cipher_of(uk_crypto_cipher c)
{
    switch (c) {
    case UK_CRYPTO_3DES:
        return EVP_des_ede3_ecb();
    case UK_CRYPTO_AES128:
        return EVP_aes_128_ecb();
    case UK_CRYPTO_AES192:
        return EVP_aes_192_ecb();
    case UK_CRYPTO_AES256:
        return EVP_aes_256_ecb();
    }
    return NULL;
}

int uk_crypto_ecb(uk_crypto_cipher c, const uint8_t *key, size_t key_len, bool encrypt,
                  const uint8_t *in, size_t n, uint8_t *out)
{
    const EVP_CIPHER *cipher = cipher_of(c);
    size_t block = uk_crypto_cipher_block(c);
    if (cipher == NULL || key == NULL || in == NULL || out == NULL ||
        key_len != uk_crypto_cipher_key_len(c) || n == 0 || n % block != 0 || n > INT_MAX)
        return UK_E_INVALID_PARAMS;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0, finl = 0;
    int rc = UK_OK;
    if (ctx == NULL)
        return UK_E_NO_MEMORY;
    if (EVP_CipherInit_ex(ctx, cipher, NULL, key, NULL, encrypt ? 1 : 0) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
        EVP_CipherUpdate(ctx, out, &outl, in, (int)n) != 1 ||
        EVP_CipherFinal_ex(ctx, out + outl, &finl) != 1 || (size_t)(outl + finl) != n) {
        OPENSSL_cleanse(out, n);
        rc = OSSL_FAIL("management-key cipher");
    }
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int uk_crypto_random(uint8_t *buf, size_t n)
{
    if (buf == NULL || n > INT_MAX)
        return UK_E_INVALID_PARAMS;
    if (n > 0 && RAND_bytes(buf, (int)n) != 1)
        return OSSL_FAIL("RAND_bytes");
    return UK_OK;
}

int uk_crypto_digest(uk_crypto_md md, const uint8_t *data, size_t n, uint8_t *out, size_t cap)
{
    const EVP_MD *m = md_of(md);
    if (m == NULL || (data == NULL && n > 0) || out == NULL || cap < uk_crypto_md_size(md))
        return UK_E_INVALID_PARAMS;
    unsigned len = 0;
    if (!EVP_Digest(n > 0 ? data : (const uint8_t *)"", n, out, &len, m, NULL))
        return OSSL_FAIL("EVP_Digest");
    return UK_OK;
}

int uk_crypto_cert_subject(const uint8_t *cert, size_t len, uint8_t **subject, size_t *subject_len)
{
    if (cert == NULL || len == 0 || len > INT_MAX || subject == NULL || subject_len == NULL)
        return UK_E_INVALID_PARAMS;
    const unsigned char *p = cert;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL || p != cert + len) {
        X509_free(x);
        ERR_clear_error();
        return UK_E_CERT_INVALID;
    }
    unsigned char *der = NULL;
    int n = i2d_X509_NAME(X509_get_subject_name(x), &der);
    X509_free(x);
    if (n <= 0)
        return OSSL_FAIL("i2d_X509_NAME");
    *subject = malloc((size_t)n);
    if (*subject == NULL) {
        OPENSSL_free(der);
        return UK_E_NO_MEMORY;
    }
    memcpy(*subject, der, (size_t)n);
    *subject_len = (size_t)n;
    OPENSSL_free(der);
    return UK_OK;
}

int uk_crypto_ecdsa_raw_to_der(const uint8_t *raw, size_t len, uint8_t *der, size_t cap,
                               size_t *der_len)
{
    if (raw == NULL || len == 0 || len % 2 != 0 || len > 2 * 66 || der == NULL || der_len == NULL)
        return UK_E_INVALID_PARAMS;
    int rc = UK_E_INTERNAL;
    unsigned char *buf = NULL;
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)(len / 2), NULL);
    BIGNUM *s = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
    if (sig == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(sig, r, s)) {
        rc = OSSL_FAIL("ECDSA_SIG_set0");
        BN_free(r);
        BN_free(s);
        goto out;
    }
    int n = i2d_ECDSA_SIG(sig, &buf);
    if (n <= 0) {
        rc = OSSL_FAIL("i2d_ECDSA_SIG");
        goto out;
    }
    if ((size_t)n > cap) {
        rc = UK_E_LIMIT_EXCEEDED;
        goto out;
    }
    memcpy(der, buf, (size_t)n);
    *der_len = (size_t)n;
    rc = UK_OK;
out:
    OPENSSL_free(buf);
    ECDSA_SIG_free(sig);
    return rc;
}

int uk_crypto_digest_info(uk_crypto_md md, const uint8_t *digest, size_t digest_len, uint8_t *out,
                          size_t cap, size_t *out_len)
{
    /* The tail of 00 01 FF.. 00 DigestInfo, encoded by uk_crypto_emsa_pkcs1_v15. */
    uint8_t em[128];
    int rc = uk_crypto_emsa_pkcs1_v15(md, digest, digest_len, em, sizeof(em));
    if (rc != UK_OK)
        return rc;
    size_t i = 2;
    while (i < sizeof(em) && em[i] == 0xff)
        i++;
    size_t n = sizeof(em) - i - 1;
    if (n > cap)
        return UK_E_LIMIT_EXCEEDED;
    memcpy(out, em + i + 1, n);
    *out_len = n;
    return UK_OK;
}
