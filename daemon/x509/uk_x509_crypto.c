/*
 * uk_x509_crypto.c - host-side digests, public-key matching and signature verification with a
 * parsed certificate's key. The key is decoded from the info's SPKI on every call, so an info
 * holds no OpenSSL object and may be shared between threads.
 */
#include <stdbool.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_x509.h"
#include "uk_x509_internal.h"

/* What verify_message and verify_digest return when the set-up, not the signature, failed. */
#define SETUP_FAILED (-1000)

const EVP_MD *uk__x509_md(uk_x509_digest_alg alg)
{
    switch (alg) {
    case UK_X509_DIGEST_SHA256:
        return EVP_sha256();
    case UK_X509_DIGEST_SHA384:
        return EVP_sha384();
    case UK_X509_DIGEST_SHA512:
        return EVP_sha512();
    case UK_X509_DIGEST_SM3:
        return EVP_sm3();
    }
    return NULL;
}

size_t uk_x509_digest_len(uk_x509_digest_alg alg)
{
    switch (alg) {
    case UK_X509_DIGEST_SHA256:
    case UK_X509_DIGEST_SM3:
        return 32;
    case UK_X509_DIGEST_SHA384:
        return 48;
    case UK_X509_DIGEST_SHA512:
        return 64;
    }
    return 0;
}

int uk_x509_digest(uk_x509_digest_alg alg, const uint8_t *data, size_t n, uint8_t *out,
                   size_t *out_len)
{
    const EVP_MD *md = uk__x509_md(alg);
    size_t need = uk_x509_digest_len(alg);
    if (md == NULL || out == NULL || out_len == NULL || *out_len < need || (data == NULL && n > 0))
        return UK_E_INVALID_PARAMS;
    unsigned int len = 0;
    if (!EVP_Digest(n > 0 ? data : (const uint8_t *)"", n, out, &len, md, NULL) || len != need)
        return UK__X509_FAIL(UK_E_NO_MEMORY, "EVP_Digest");
    *out_len = len;
    return UK_OK;
}

bool uk_x509_sig_alg_digest(uk_x509_sig_alg alg, uk_x509_digest_alg *out)
{
    uk_x509_digest_alg d;
    switch (alg) {
    case UK_X509_SIG_RSA_PKCS1_SHA256:
    case UK_X509_SIG_RSA_PSS_SHA256:
    case UK_X509_SIG_ECDSA_SHA256:
        d = UK_X509_DIGEST_SHA256;
        break;
    case UK_X509_SIG_RSA_PKCS1_SHA384:
    case UK_X509_SIG_RSA_PSS_SHA384:
    case UK_X509_SIG_ECDSA_SHA384:
        d = UK_X509_DIGEST_SHA384;
        break;
    case UK_X509_SIG_RSA_PKCS1_SHA512:
    case UK_X509_SIG_RSA_PSS_SHA512:
    case UK_X509_SIG_ECDSA_SHA512:
        d = UK_X509_DIGEST_SHA512;
        break;
    case UK_X509_SIG_SM2_SM3:
        d = UK_X509_DIGEST_SM3;
        break;
    default:
        return false;
    }
    if (out != NULL)
        *out = d;
    return true;
}

uk__x509_scheme uk__x509_scheme_of(uk_x509_sig_alg alg)
{
    switch (alg) {
    case UK_X509_SIG_RSA_PKCS1_SHA256:
    case UK_X509_SIG_RSA_PKCS1_SHA384:
    case UK_X509_SIG_RSA_PKCS1_SHA512:
        return UK__X509_SCHEME_RSA_PKCS1;
    case UK_X509_SIG_RSA_PSS_SHA256:
    case UK_X509_SIG_RSA_PSS_SHA384:
    case UK_X509_SIG_RSA_PSS_SHA512:
        return UK__X509_SCHEME_RSA_PSS;
    case UK_X509_SIG_ECDSA_SHA256:
    case UK_X509_SIG_ECDSA_SHA384:
    case UK_X509_SIG_ECDSA_SHA512:
        return UK__X509_SCHEME_ECDSA;
    case UK_X509_SIG_SM2_SM3:
        break;
    }
    return UK__X509_SCHEME_SM2;
}

int uk__x509_is_sm2(const EVP_PKEY *pk)
{
    if (EVP_PKEY_is_a(pk, "SM2"))
        return 1;
    if (!EVP_PKEY_is_a(pk, "EC"))
        return 0;
    char group[64];
    size_t gl = 0;
    if (EVP_PKEY_get_group_name(pk, group, sizeof(group), &gl) != 1) {
        ERR_clear_error();
        return 0;
    }
    return OBJ_sn2nid(group) == NID_sm2;
}

int uk__x509_get1_key(const uk_cert_info *c, EVP_PKEY **out)
{
    const unsigned char *p = c->spki;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)c->spki_len);
    if (pk == NULL)
        return UK__X509_FAIL(UK_E_INTERNAL, "d2i_PUBKEY of a parsed certificate");
    *out = pk;
    return UK_OK;
}

int uk_x509_spki_match(const uk_cert_info *c, const uint8_t *spki, size_t n)
{
    if (c == NULL || (spki == NULL && n > 0))
        return UK_E_INVALID_PARAMS;
    if (n == 0 || n > UK_X509_DER_MAX) {
        UK_LOG_DEBUG("public key of %zu bytes: no match", n);
        return UK_E_CERT_KEY_MISMATCH;
    }
    EVP_PKEY *mine = NULL;
    int err = uk__x509_get1_key(c, &mine);
    if (err != UK_OK)
        return err;
    const unsigned char *p = spki;
    EVP_PKEY *other = d2i_PUBKEY(NULL, &p, (long)n);
    if (other == NULL) {
        err = UK__X509_FAIL(UK_E_CERT_KEY_MISMATCH, "d2i_PUBKEY");
    } else if (p != spki + n) {
        UK_LOG_DEBUG("%zu bytes after the public key: no match", (size_t)(spki + n - p));
        err = UK_E_CERT_KEY_MISMATCH;
    } else {
        /* 1 equal; 0 different; -1 different types; -2 cannot compare. */
        err = EVP_PKEY_eq(mine, other) == 1 ? UK_OK : UK_E_CERT_KEY_MISMATCH;
    }
    EVP_PKEY_free(other);
    EVP_PKEY_free(mine);
    ERR_clear_error();
    return err;
}

/* Whether the key can make signatures of uk__x509_scheme s. */
static bool key_fits(const EVP_PKEY *pk, uk__x509_scheme s)
{
    switch (s) {
    case UK__X509_SCHEME_RSA_PKCS1:
        return EVP_PKEY_is_a(pk, "RSA");
    case UK__X509_SCHEME_RSA_PSS:
        return EVP_PKEY_is_a(pk, "RSA") || EVP_PKEY_is_a(pk, "RSA-PSS");
    case UK__X509_SCHEME_ECDSA:
        return EVP_PKEY_is_a(pk, "EC") && !uk__x509_is_sm2(pk);
    case UK__X509_SCHEME_SM2:
        return uk__x509_is_sm2(pk);
    }
    return false;
}

/* RSA padding, PSS salt and MGF1 on an initialised verify context. */
static int rsa_params(EVP_PKEY_CTX *pc, uk__x509_scheme s, const EVP_MD *md)
{
    if (s == UK__X509_SCHEME_RSA_PKCS1)
        return EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0;
    if (s == UK__X509_SCHEME_RSA_PSS)
        return EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0 &&
               EVP_PKEY_CTX_set_rsa_mgf1_md(pc, md) > 0 &&
               EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_AUTO) > 0;
    return 1;
}

/* EVP_DigestVerify over the message. Returns OpenSSL's answer, or SETUP_FAILED. */
static int verify_message(EVP_PKEY *pk, uk__x509_scheme s, const EVP_MD *md, const uint8_t *data,
                          size_t n, const uint8_t *sig, size_t siglen)
{
    int r = SETUP_FAILED;
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    EVP_PKEY_CTX *sm2 = NULL;
    EVP_PKEY_CTX *pc = NULL;
    if (mc == NULL)
        goto out;
    if (s == UK__X509_SCHEME_SM2) {
        /* The ID goes on a context of our own, handed to the digest context before init. */
        sm2 = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
        if (sm2 == NULL ||
            EVP_PKEY_CTX_set1_id(sm2, (const uint8_t *)UK__X509_SM2_ID, UK__X509_SM2_ID_LEN) <= 0)
            goto out;
        EVP_MD_CTX_set_pkey_ctx(mc, sm2);
        if (EVP_DigestVerifyInit(mc, NULL, md, NULL, pk) != 1)
            goto out;
    } else {
        if (EVP_DigestVerifyInit(mc, &pc, md, NULL, pk) != 1 || !rsa_params(pc, s, md))
            goto out;
    }
    r = EVP_DigestVerify(mc, sig, siglen, data, n);
out:
    EVP_MD_CTX_free(mc);
    EVP_PKEY_CTX_free(sm2); /* after mc: set_pkey_ctx does not pass ownership */
    return r;
}

/* EVP_PKEY_verify over a digest. Returns OpenSSL's answer, or SETUP_FAILED. */
static int verify_digest(EVP_PKEY *pk, uk__x509_scheme s, const EVP_MD *md, const uint8_t *dg,
                         size_t dn, const uint8_t *sig, size_t siglen)
{
    int r = SETUP_FAILED;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    if (pc == NULL || EVP_PKEY_verify_init(pc) != 1 || !rsa_params(pc, s, md))
        goto out;
    if (s != UK__X509_SCHEME_SM2 && EVP_PKEY_CTX_set_signature_md(pc, md) <= 0)
        goto out;
    r = EVP_PKEY_verify(pc, sig, siglen, dg, dn);
out:
    EVP_PKEY_CTX_free(pc);
    return r;
}

static int verify(const uk_cert_info *c, const uint8_t *data, size_t n, bool is_digest,
                  const uint8_t *sig, size_t siglen, uk_x509_sig_alg alg)
{
    uk_x509_digest_alg dalg;
    if (c == NULL || (data == NULL && n > 0) || (sig == NULL && siglen > 0) ||
        !uk_x509_sig_alg_digest(alg, &dalg))
        return UK_E_INVALID_PARAMS;
    if (is_digest && n != uk_x509_digest_len(dalg))
        return UK_E_INVALID_PARAMS;
    if (data == NULL)
        data = (const uint8_t *)"";
    if (sig == NULL)
        sig = (const uint8_t *)"";

    uk__x509_scheme s = uk__x509_scheme_of(alg);
    const EVP_MD *md = uk__x509_md(dalg);
    EVP_PKEY *pk = NULL;
    int err = uk__x509_get1_key(c, &pk);
    if (err != UK_OK)
        return err;
    if (!key_fits(pk, s)) {
        UK_LOG_DEBUG("a %s key cannot verify signature algorithm %d", c->key_alg, (int)alg);
        err = UK_E_NOT_SUPPORTED;
        goto out;
    }
    int r = is_digest ? verify_digest(pk, s, md, data, n, sig, siglen)
                      : verify_message(pk, s, md, data, n, sig, siglen);
    if (r == 1)
        err = UK_OK;
    else if (r == SETUP_FAILED)
        err = UK__X509_FAIL(UK_E_NOT_SUPPORTED, "signature verification set-up");
    else
        err = UK__X509_FAIL(UK_E_SIGNATURE_INVALID, "signature verification");
out:
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return err;
}

int uk_x509_verify_signature(const uk_cert_info *c, const uint8_t *data, size_t n,
                             const uint8_t *sig, size_t siglen, uk_x509_sig_alg alg)
{
    return verify(c, data, n, false, sig, siglen, alg);
}

int uk_x509_verify_digest(const uk_cert_info *c, const uint8_t *digest, size_t digest_len,
                          const uint8_t *sig, size_t siglen, uk_x509_sig_alg alg)
{
    return verify(c, digest, digest_len, true, sig, siglen, alg);
}
