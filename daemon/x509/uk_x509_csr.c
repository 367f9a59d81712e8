/*
 * uk_x509_csr.c - PKCS#10 certificate requests signed by a card: build the
 * CertificationRequestInfo here, let the token layer sign its bytes, then attach the signature
 * (X509_REQ_set1_signature_algo + X509_REQ_set0_signature) and check it with X509_REQ_verify
 * against the key the card reported. Also SM2's e = SM3(Z || M) for cards that sign a digest.
 * See docs/certificates.md, "Certificate requests".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_x509.h"
#include "uk_x509_internal.h"

/* Bytes of an SM2 coordinate and of SM3's output. */
#define SM2_COORD 32
#define SM3_LEN   32

struct uk_x509_csr {
    X509_REQ *req; /* subject, key and attributes set; signature attached by finish */
    EVP_PKEY *key; /* the new public key, for X509_REQ_verify */
    uk_x509_sig_alg alg;
    uint8_t *tbs; /* the CertificationRequestInfo DER the card signs */
    size_t tbs_len;
};

/* Whether pk (decoded from the new key's SPKI) can make signatures of uk__x509_scheme s. */
static bool key_fits(const EVP_PKEY *pk, uk__x509_scheme s)
{
    switch (s) {
    case UK__X509_SCHEME_RSA_PKCS1:
    case UK__X509_SCHEME_RSA_PSS:
        return EVP_PKEY_is_a(pk, "RSA");
    case UK__X509_SCHEME_ECDSA:
        return EVP_PKEY_is_a(pk, "EC") && !uk__x509_is_sm2(pk);
    case UK__X509_SCHEME_SM2:
        return uk__x509_is_sm2(pk);
    }
    return false;
}

/* The signature OID of the PKCS#1, ECDSA and SM2 algorithms. */
static int sig_nid(uk_x509_sig_alg alg)
{
    switch (alg) {
    case UK_X509_SIG_RSA_PKCS1_SHA256:
        return NID_sha256WithRSAEncryption;
    case UK_X509_SIG_RSA_PKCS1_SHA384:
        return NID_sha384WithRSAEncryption;
    case UK_X509_SIG_RSA_PKCS1_SHA512:
        return NID_sha512WithRSAEncryption;
    case UK_X509_SIG_ECDSA_SHA256:
        return NID_ecdsa_with_SHA256;
    case UK_X509_SIG_ECDSA_SHA384:
        return NID_ecdsa_with_SHA384;
    case UK_X509_SIG_ECDSA_SHA512:
        return NID_ecdsa_with_SHA512;
    case UK_X509_SIG_SM2_SM3:
        return NID_SM2_with_SM3;
    default:
        return NID_undef;
    }
}

/*
 * RSASSA-PSS-params (RFC 4055): the hash, MGF1 with the same hash, a salt as long as the hash
 * (what uk_crypto_emsa_pss and cards use), the default trailer field.
 */
static int pss_params(const EVP_MD *md, ASN1_STRING **out)
{
    int err = UK_E_NO_MEMORY;
    RSA_PSS_PARAMS *pp = RSA_PSS_PARAMS_new();
    X509_ALGOR *mgf_md = X509_ALGOR_new();
    ASN1_STRING *mgf_param = NULL;
    if (pp == NULL || mgf_md == NULL)
        goto out;
    pp->hashAlgorithm = X509_ALGOR_new();
    pp->maskGenAlgorithm = X509_ALGOR_new();
    pp->saltLength = ASN1_INTEGER_new();
    if (pp->hashAlgorithm == NULL || pp->maskGenAlgorithm == NULL || pp->saltLength == NULL)
        goto out;
    /* RFC 4055 sha256Identifier etc.: with NULL parameters (as OpenSSL and the CA/B Forum
     * Baseline Requirements encode them), not absent ones as X509_ALGOR_set_md would. */
    if (!X509_ALGOR_set0(pp->hashAlgorithm, OBJ_nid2obj(EVP_MD_get_type(md)), V_ASN1_NULL, NULL) ||
        !X509_ALGOR_set0(mgf_md, OBJ_nid2obj(EVP_MD_get_type(md)), V_ASN1_NULL, NULL))
        goto out;
    mgf_param = ASN1_item_pack(mgf_md, ASN1_ITEM_rptr(X509_ALGOR), NULL);
    if (mgf_param == NULL ||
        !X509_ALGOR_set0(pp->maskGenAlgorithm, OBJ_nid2obj(NID_mgf1), V_ASN1_SEQUENCE, mgf_param))
        goto out;
    mgf_param = NULL; /* owned by maskGenAlgorithm */
    if (!ASN1_INTEGER_set(pp->saltLength, EVP_MD_get_size(md)))
        goto out;
    *out = ASN1_item_pack(pp, ASN1_ITEM_rptr(RSA_PSS_PARAMS), NULL);
    if (*out != NULL)
        err = UK_OK;
out:
    if (err != UK_OK)
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "RSA-PSS parameters");
    ASN1_STRING_free(mgf_param);
    X509_ALGOR_free(mgf_md);
    RSA_PSS_PARAMS_free(pp);
    return err;
}

/* The signatureAlgorithm of the request for alg. */
static int sig_algor_new(uk_x509_sig_alg alg, X509_ALGOR **out)
{
    X509_ALGOR *a = X509_ALGOR_new();
    if (a == NULL)
        return UK__X509_FAIL(UK_E_NO_MEMORY, "X509_ALGOR_new");
    int ok;
    uk__x509_scheme s = uk__x509_scheme_of(alg);
    if (s == UK__X509_SCHEME_RSA_PSS) {
        uk_x509_digest_alg d = UK_X509_DIGEST_SHA256;
        (void)uk_x509_sig_alg_digest(alg, &d);
        ASN1_STRING *params = NULL;
        int err = pss_params(uk__x509_md(d), &params);
        if (err != UK_OK) {
            X509_ALGOR_free(a);
            return err;
        }
        ok = X509_ALGOR_set0(a, OBJ_nid2obj(NID_rsassaPss), V_ASN1_SEQUENCE, params);
        if (!ok)
            ASN1_STRING_free(params);
    } else {
        /* RFC 4055: NULL parameters for PKCS#1; RFC 5758 / GM/T 0015: absent for ECDSA, SM2. */
        ok = X509_ALGOR_set0(a, OBJ_nid2obj(sig_nid(alg)),
                             s == UK__X509_SCHEME_RSA_PKCS1 ? V_ASN1_NULL : V_ASN1_UNDEF, NULL);
    }
    if (!ok) {
        X509_ALGOR_free(a);
        return UK__X509_FAIL(UK_E_NO_MEMORY, "X509_ALGOR_set0");
    }
    *out = a;
    return UK_OK;
}

/* The subject from name parts (see uk_x509_csr_req). */
static int name_from_parts(const uk_x509_subject_attr *parts, size_t n, X509_NAME **out)
{
    X509_NAME *name = X509_NAME_new();
    if (name == NULL)
        return UK__X509_FAIL(UK_E_NO_MEMORY, "X509_NAME_new");
    for (size_t i = 0; i < n; i++) {
        const uk_x509_subject_attr *pt = &parts[i];
        if (pt->type == NULL || pt->value == NULL || (i > 0 && pt->rdn < parts[i - 1].rdn) ||
            (i == 0 && pt->rdn != 0) || (i > 0 && pt->rdn > parts[i - 1].rdn + 1)) {
            UK_LOG_DEBUG("subject attribute %zu: missing or out of RDN order", i);
            X509_NAME_free(name);
            return UK_E_INVALID_PARAMS;
        }
        /* A new RDN, or (set -1) the attribute joins the previous one. */
        int set = i > 0 && pt->rdn == parts[i - 1].rdn ? -1 : 0;
        if (!X509_NAME_add_entry_by_txt(name, pt->type, MBSTRING_UTF8,
                                        (const unsigned char *)pt->value, -1, -1, set)) {
            X509_NAME_free(name);
            /* An unknown type, a value that is not UTF-8 or does not fit its type ("C=中国"). */
            return UK__X509_FAIL(UK_E_INVALID_PARAMS, "subject attribute");
        }
    }
    *out = name;
    return UK_OK;
}

/* Copy keyUsage and extendedKeyUsage of x (bytes and criticality) into an extensionRequest. */
static int copy_usage(X509 *x, X509_REQ *req)
{
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    if (exts == NULL)
        return UK__X509_FAIL(UK_E_NO_MEMORY, "sk_X509_EXTENSION_new_null");
    int err = UK_OK;
    const int nids[] = {NID_key_usage, NID_ext_key_usage};
    for (size_t i = 0; i < sizeof(nids) / sizeof(nids[0]); i++) {
        int at = X509_get_ext_by_NID(x, nids[i], -1);
        if (at >= 0 && sk_X509_EXTENSION_push(exts, X509_get_ext(x, at)) <= 0) {
            err = UK__X509_FAIL(UK_E_NO_MEMORY, "sk_X509_EXTENSION_push");
            goto out;
        }
    }
    if (sk_X509_EXTENSION_num(exts) > 0 && !X509_REQ_add_extensions(req, exts))
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "X509_REQ_add_extensions");
out:
    sk_X509_EXTENSION_free(exts); /* the extensions stay x's */
    return err;
}

/* The subject (and the copied usages) of the request from req->current and req->subject. */
static int set_subject(const uk_x509_csr_req *r, X509_REQ *req)
{
    int err = UK_OK;
    X509 *x = NULL;
    X509_NAME *name = NULL;
    if (r->current != NULL) {
        const unsigned char *p = r->current->der;
        x = d2i_X509(NULL, &p, (long)r->current->der_len);
        if (x == NULL) {
            err = UK__X509_FAIL(UK_E_CERT_INVALID, "d2i_X509 of the current certificate");
            goto out;
        }
    }
    if (r->n_subject > 0) {
        if ((err = name_from_parts(r->subject, r->n_subject, &name)) != UK_OK)
            goto out;
        if (!X509_REQ_set_subject_name(req, name)) {
            err = UK__X509_FAIL(UK_E_NO_MEMORY, "X509_REQ_set_subject_name");
            goto out;
        }
    } else if (!X509_REQ_set_subject_name(req, X509_get_subject_name(x))) {
        /* X509_NAME_dup keeps the certificate's encoding of the name, byte for byte. */
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "X509_REQ_set_subject_name");
        goto out;
    }
    if (r->copy_usage)
        err = copy_usage(x, req);
out:
    X509_NAME_free(name);
    X509_free(x);
    return err;
}

/* The new key: decodes, re-encodes to the same bytes, fits the signature algorithm. */
static int set_key(const uk_x509_csr_req *r, X509_REQ *req, EVP_PKEY **key)
{
    const unsigned char *p = r->spki;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)r->spki_len);
    if (pk == NULL)
        return UK__X509_FAIL(UK_E_KEY_REJECTED, "d2i_PUBKEY of the new key");
    int err = UK_OK;
    unsigned char *re = NULL;
    int rn;
    if (p != r->spki + r->spki_len) {
        UK_LOG_DEBUG("%zu bytes after the new key's SPKI", (size_t)(r->spki + r->spki_len - p));
        err = UK_E_KEY_REJECTED;
    } else if (!key_fits(pk, uk__x509_scheme_of(r->sig_alg))) {
        UK_LOG_DEBUG("a %s key cannot sign with algorithm %d", EVP_PKEY_get0_type_name(pk),
                     (int)r->sig_alg);
        err = UK_E_NOT_SUPPORTED;
    } else if (!X509_REQ_set_pubkey(req, pk)) {
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "X509_REQ_set_pubkey");
    } else if ((rn = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(req), &re)) <= 0) {
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "i2d_X509_PUBKEY");
    } else if ((size_t)rn != r->spki_len || memcmp(re, r->spki, r->spki_len) != 0) {
        UK_LOG_DEBUG("the new key's SPKI is not in DER (%d bytes re-encoded, %zu given)", rn,
                     r->spki_len);
        err = UK_E_KEY_REJECTED;
    }
    OPENSSL_free(re);
    if (err != UK_OK) {
        EVP_PKEY_free(pk);
        return err;
    }
    *key = pk;
    return UK_OK;
}

static uint8_t *dup_mem(const void *p, size_t n)
{
    uint8_t *d = malloc(n > 0 ? n : 1);
    if (d != NULL && n > 0)
        memcpy(d, p, n);
    return d;
}

int uk_x509_csr_tbs(const uk_x509_csr_req *r, uint8_t **tbs, size_t *tbs_len, uk_x509_csr **state)
{
    if (r == NULL || tbs == NULL || tbs_len == NULL || state == NULL || r->spki == NULL ||
        r->spki_len == 0 || !uk_x509_sig_alg_digest(r->sig_alg, NULL) ||
        (r->subject == NULL && r->n_subject > 0) || (r->current == NULL && r->n_subject == 0) ||
        (r->current == NULL && r->copy_usage) ||
        (r->current != NULL && (r->current->der == NULL || r->current->der_len == 0)))
        return UK_E_INVALID_PARAMS;
    if (r->spki_len > UK_X509_DER_MAX) {
        UK_LOG_DEBUG("new key's SPKI of %zu bytes", r->spki_len);
        return UK_E_KEY_REJECTED;
    }

    int err;
    unsigned char *enc = NULL;
    uint8_t *copy = NULL;
    uk_x509_csr *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return UK_E_NO_MEMORY;
    st->alg = r->sig_alg;
    st->req = X509_REQ_new();
    if (st->req == NULL || !X509_REQ_set_version(st->req, X509_REQ_VERSION_1)) {
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "X509_REQ_new");
        goto out;
    }
    if ((err = set_key(r, st->req, &st->key)) != UK_OK || (err = set_subject(r, st->req)) != UK_OK)
        goto out;
    if (uk__x509_scheme_of(r->sig_alg) == UK__X509_SCHEME_SM2) {
        /* X509_REQ_verify computes Z with this ID; OpenSSL's default would be the empty one. */
        ASN1_OCTET_STRING *id = ASN1_OCTET_STRING_new();
        if (id == NULL || !ASN1_OCTET_STRING_set(id, (const unsigned char *)UK__X509_SM2_ID,
                                                 UK__X509_SM2_ID_LEN)) {
            ASN1_OCTET_STRING_free(id);
            err = UK__X509_FAIL(UK_E_NO_MEMORY, "ASN1_OCTET_STRING_set");
            goto out;
        }
        X509_REQ_set0_distinguishing_id(st->req, id);
    }
    /* Encodes the CertificationRequestInfo and caches the encoding: signed bytes == sent bytes. */
    int n = i2d_re_X509_REQ_tbs(st->req, &enc);
    if (n <= 0) {
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "i2d_re_X509_REQ_tbs");
        goto out;
    }
    st->tbs = dup_mem(enc, (size_t)n);
    copy = dup_mem(enc, (size_t)n);
    if (st->tbs == NULL || copy == NULL) {
        err = UK_E_NO_MEMORY;
        goto out;
    }
    st->tbs_len = (size_t)n;
    err = UK_OK;
out:
    OPENSSL_free(enc);
    ERR_clear_error();
    if (err != UK_OK) {
        free(copy);
        uk_x509_csr_free(st);
        return err;
    }
    *tbs = copy;
    *tbs_len = st->tbs_len;
    *state = st;
    return UK_OK;
}

uk_x509_sig_alg uk_x509_csr_get_sig_alg(const uk_x509_csr *st)
{
    return st != NULL ? st->alg : UK_X509_SIG_RSA_PKCS1_SHA256;
}

/* Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA), GM/T 0003.2 section 5.5. */
static int sm2_z(const EVP_PKEY *pk, uint8_t z[SM3_LEN])
{
    int err = UK_E_NO_MEMORY;
    uint8_t buf[2 + UK__X509_SM2_ID_LEN + 6 * SM2_COORD];
    BIGNUM *bn[6] = {NULL, NULL, NULL, NULL, NULL, NULL}; /* a, b, xG, yG, xA, yA */
    BIGNUM *prime = BN_new();
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_sm2);
    for (size_t i = 0; i < 4; i++)
        bn[i] = BN_new();
    if (prime == NULL || g == NULL || bn[0] == NULL || bn[1] == NULL || bn[2] == NULL ||
        bn[3] == NULL)
        goto out;
    if (!EC_GROUP_get_curve(g, prime, bn[0], bn[1], NULL) ||
        !EC_POINT_get_affine_coordinates(g, EC_GROUP_get0_generator(g), bn[2], bn[3], NULL) ||
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &bn[4]) != 1 ||
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &bn[5]) != 1) {
        err = UK__X509_FAIL(UK_E_INTERNAL, "SM2 curve and key parameters");
        goto out;
    }
    /* ENTL: the length of the ID in bits, two bytes big-endian. */
    buf[0] = (uint8_t)((UK__X509_SM2_ID_LEN * 8) >> 8);
    buf[1] = (uint8_t)(UK__X509_SM2_ID_LEN * 8);
    memcpy(buf + 2, UK__X509_SM2_ID, UK__X509_SM2_ID_LEN);
    for (size_t i = 0; i < 6; i++) {
        if (BN_bn2binpad(bn[i], buf + 2 + UK__X509_SM2_ID_LEN + i * SM2_COORD, SM2_COORD) !=
            SM2_COORD) {
            err = UK__X509_FAIL(UK_E_INTERNAL, "SM2 coordinate");
            goto out;
        }
    }
    size_t zl = SM3_LEN;
    err = uk_x509_digest(UK_X509_DIGEST_SM3, buf, sizeof(buf), z, &zl);
out:
    for (size_t i = 0; i < 6; i++)
        BN_free(bn[i]);
    BN_free(prime);
    EC_GROUP_free(g);
    return err;
}

/* e = SM3(Z || msg) with pk's Z. */
static int sm2_e(const EVP_PKEY *pk, const uint8_t *msg, size_t n, uint8_t *out, size_t *out_len)
{
    uint8_t z[SM3_LEN];
    int err = sm2_z(pk, z);
    if (err != UK_OK)
        return err;
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    unsigned int len = 0;
    if (mc == NULL || EVP_DigestInit_ex(mc, EVP_sm3(), NULL) != 1 ||
        EVP_DigestUpdate(mc, z, sizeof(z)) != 1 || (n > 0 && EVP_DigestUpdate(mc, msg, n) != 1) ||
        EVP_DigestFinal_ex(mc, out, &len) != 1 || len != SM3_LEN)
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "SM3");
    else
        *out_len = len;
    EVP_MD_CTX_free(mc);
    return err;
}

int uk_x509_sm2_digest(const uint8_t *spki, size_t spki_len, const uint8_t *msg, size_t n,
                       uint8_t *out, size_t *out_len)
{
    if (spki == NULL || spki_len == 0 || (msg == NULL && n > 0) || out == NULL || out_len == NULL ||
        *out_len < SM3_LEN)
        return UK_E_INVALID_PARAMS;
    if (spki_len > UK_X509_DER_MAX)
        return UK_E_KEY_REJECTED;
    const unsigned char *p = spki;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)spki_len);
    int err;
    if (pk == NULL) {
        err = UK__X509_FAIL(UK_E_KEY_REJECTED, "d2i_PUBKEY");
    } else if (p != spki + spki_len) {
        UK_LOG_DEBUG("%zu bytes after the SPKI", (size_t)(spki + spki_len - p));
        err = UK_E_KEY_REJECTED;
    } else if (!uk__x509_is_sm2(pk)) {
        UK_LOG_DEBUG("a %s key has no SM2 Z value", EVP_PKEY_get0_type_name(pk));
        err = UK_E_NOT_SUPPORTED;
    } else {
        err = sm2_e(pk, msg, n, out, out_len);
    }
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return err;
}

int uk_x509_csr_digest(const uk_x509_csr *st, uint8_t *out, size_t *out_len)
{
    uk_x509_digest_alg d;
    if (st == NULL || out == NULL || out_len == NULL || !uk_x509_sig_alg_digest(st->alg, &d) ||
        *out_len < uk_x509_digest_len(d))
        return UK_E_INVALID_PARAMS;
    if (uk__x509_scheme_of(st->alg) != UK__X509_SCHEME_SM2)
        return uk_x509_digest(d, st->tbs, st->tbs_len, out, out_len);
    int err = sm2_e(st->key, st->tbs, st->tbs_len, out, out_len);
    ERR_clear_error();
    return err;
}

/* The finished request as PEM text (malloc'd, NUL-terminated). */
static int pem_new(X509_REQ *req, char **out)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return UK__X509_FAIL(UK_E_NO_MEMORY, "BIO_new");
    int err = UK_OK;
    char *text = NULL;
    long n;
    if (!PEM_write_bio_X509_REQ(bio, req) || (n = BIO_get_mem_data(bio, &text)) <= 0 ||
        text == NULL) {
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "PEM_write_bio_X509_REQ");
    } else if ((*out = malloc((size_t)n + 1)) == NULL) {
        err = UK_E_NO_MEMORY;
    } else {
        memcpy(*out, text, (size_t)n);
        (*out)[n] = 0;
    }
    BIO_free(bio);
    return err;
}

int uk_x509_csr_finish(uk_x509_csr *st, const uint8_t *sig, size_t sig_len, char **pem,
                       uint8_t **der, size_t *der_len)
{
    if (st == NULL || (sig == NULL && sig_len > 0) || (der == NULL) != (der_len == NULL))
        return UK_E_INVALID_PARAMS;
    if (sig_len == 0 || sig_len > UK_X509_CSR_SIG_MAX) {
        UK_LOG_DEBUG("signature of %zu bytes", sig_len);
        return UK_E_SIGNATURE_INVALID;
    }

    int err;
    int n = 0;
    X509_ALGOR *algor = NULL;
    char *pem_out = NULL;
    unsigned char *enc = NULL;
    uint8_t *der_out = NULL;
    ASN1_BIT_STRING *bits = ASN1_BIT_STRING_new();
    if (bits == NULL || !ASN1_STRING_set(bits, sig, (int)sig_len)) {
        ASN1_BIT_STRING_free(bits);
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "ASN1_BIT_STRING_set");
        goto out;
    }
    /* A whole number of bytes: no unused bits (else OpenSSL drops trailing zero bits). */
    bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
    bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
    if ((err = sig_algor_new(st->alg, &algor)) != UK_OK) {
        ASN1_BIT_STRING_free(bits);
        goto out;
    }
    if (!X509_REQ_set1_signature_algo(st->req, algor)) {
        ASN1_BIT_STRING_free(bits);
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "X509_REQ_set1_signature_algo");
        goto out;
    }
    X509_REQ_set0_signature(st->req, bits); /* frees a signature attached before */

    int r = X509_REQ_verify(st->req, st->key);
    if (r != 1) {
        /* The card signed with another key than the one it reported, or returned garbage. */
        err = UK__X509_FAIL(UK_E_SIGNATURE_INVALID, "X509_REQ_verify of the card's signature");
        goto out;
    }
    n = i2d_X509_REQ(st->req, &enc);
    if (n <= 0) {
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "i2d_X509_REQ");
        goto out;
    }
    if (der != NULL && (der_out = dup_mem(enc, (size_t)n)) == NULL) {
        err = UK_E_NO_MEMORY;
        goto out;
    }
    if (pem != NULL && (err = pem_new(st->req, &pem_out)) != UK_OK)
        goto out;
    err = UK_OK;
out:
    OPENSSL_free(enc);
    X509_ALGOR_free(algor);
    ERR_clear_error();
    if (err != UK_OK) {
        free(der_out);
        free(pem_out);
        return err;
    }
    if (der != NULL) {
        *der = der_out;
        *der_len = (size_t)n;
    }
    if (pem != NULL)
        *pem = pem_out;
    return UK_OK;
}

void uk_x509_csr_free(uk_x509_csr *st)
{
    if (st == NULL)
        return;
    X509_REQ_free(st->req);
    EVP_PKEY_free(st->key);
    free(st->tbs);
    free(st);
}
