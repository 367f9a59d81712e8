/*
 * uk_x509_cms.c - CMS SignedData signed by a card (sign.cms) and the verification of one
 * (verify.cms). OpenSSL's CMS code builds the structure; only the one private-key operation, over
 * the DER of the signed attributes, happens on the card. See docs/certificates.md, "CMS".
 *
 * OpenSSL 3.0 has no public way to sign a SignerInfo with a key it cannot hold, so the signer is
 * added with the certificate's own public key and CMS_PARTIAL (CMS_add1_signer only compares
 * that key with the certificate's and lets the key type choose the signature algorithm field),
 * the three signed attributes are set here, their DER is built here as CMS_SignerInfo_sign would
 * (a DER SET OF, sorted as OpenSSL sorts it), and the card's signature goes in through
 * CMS_SignerInfo_get0_signature. The result is encoded, decoded again and verified with
 * CMS_verify before anyone sees it, so a mistake in any of these steps is an error, never a
 * broken signature handed out.
 *
 * SM2 (GM/T 0010): the same steps with SM3, the signatureAlgorithm (which OpenSSL 3.0 leaves empty
 * for SM2) set to SM2-with-SM3 and the card signing e = SM3(Z || attributes); verification is
 * done here (verify_sm2), since OpenSSL 3.0's CMS_verify checks SM2 with an empty ID.
 *
 * EnvelopedData: OpenSSL 3.0's CMS API finds the recipient (CMS_RecipientInfo_ktri_cert_cmp) but
 * cannot hand out its encrypted key or the encrypted content (only decrypt them with a key it
 * holds), so those two are taken from OpenSSL's own DER re-encoding of the envelope by a short
 * TLV walk. The card does the private-key step — raw RSA on a key transport recipient's key, ECDH
 * with a key agreement recipient's ephemeral point, SM2 decryption of a GM/T 0010 recipient's
 * SM2Cipher (no driver offers it yet) — and the rest happens here: PKCS#1 v1.5 unpadding, or the
 * X9.63 KDF and AES key unwrap; then the content.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_x509.h"
#include "uk_x509_internal.h"

/* Signed attributes: ukeyd writes three (content type, signing time, message digest: RFC 5652
 * section 11) and reads at most this many in someone else's SM2 SignedData. */
#define SIGNED_ATTRS_MAX 32

struct uk_x509_cms_sign {
    CMS_ContentInfo *cms;
    CMS_SignerInfo *si; /* borrowed from cms */
    uk_x509_sig_alg sig_alg;
    uint8_t *data; /* attached content (copy), NULL when detached */
    size_t data_len;
    uint8_t *detached; /* detached content (copy), for the check in finish */
    size_t detached_len;
};

void uk_x509_cms_sign_free(uk_x509_cms_sign *s)
{
    if (s == NULL)
        return;
    CMS_ContentInfo_free(s->cms);
    free(s->data);
    free(s->detached);
    free(s);
}

/* The algorithm the card signs with for a key: PKCS#1 v1.5 for RSA (CMS's rsaEncryption
 * signature), ECDSA for EC keys other than SM2, SM2 with SM3 for SM2 keys (GM/T 0010). */
static int sig_alg_for(const EVP_PKEY *pk, uk_x509_digest_alg d, uk_x509_sig_alg *out)
{
    static const uk_x509_sig_alg rsa[] = {
        UK_X509_SIG_RSA_PKCS1_SHA256, UK_X509_SIG_RSA_PKCS1_SHA384, UK_X509_SIG_RSA_PKCS1_SHA512};
    static const uk_x509_sig_alg ec[] = {UK_X509_SIG_ECDSA_SHA256, UK_X509_SIG_ECDSA_SHA384,
                                         UK_X509_SIG_ECDSA_SHA512};
    bool sha2 =
        d == UK_X509_DIGEST_SHA256 || d == UK_X509_DIGEST_SHA384 || d == UK_X509_DIGEST_SHA512;
    if (!sha2 && d != UK_X509_DIGEST_SM3)
        return UK_E_INVALID_PARAMS;
    if (uk__x509_is_sm2(pk)) {
        if (d != UK_X509_DIGEST_SM3)
            return UK_E_NOT_SUPPORTED; /* GM/T 0010: SM2 signs with SM3 only */
        *out = UK_X509_SIG_SM2_SM3;
    } else if (!sha2) {
        return UK_E_NOT_SUPPORTED; /* SM3 goes with SM2 keys only */
    } else if (EVP_PKEY_is_a(pk, "RSA")) {
        *out = rsa[d];
    } else if (EVP_PKEY_is_a(pk, "EC")) {
        *out = ec[d];
    } else {
        return UK_E_NOT_SUPPORTED;
    }
    return UK_OK;
}

typedef struct der_item {
    unsigned char *p;
    int len;
} der_item;

/* OpenSSL's order for the elements of a DER SET OF (tasn_enc.c der_cmp). */
static int der_cmp(const void *a, const void *b)
{
    const der_item *x = a, *y = b;
    int n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, (size_t)n);
    return c != 0 ? c : x->len - y->len;
}

/*
 * The DER the signature covers (RFC 5652 section 5.4): the signed attributes as an explicit
 * SET OF (tag 0x31). sorted: in DER order, as a signer encodes them; else in the order they were
 * decoded, as OpenSSL's CMS_verify re-encodes them for the check. malloc'd.
 */
static int signed_attrs_der(CMS_SignerInfo *si, bool sorted, uint8_t **out, size_t *out_len)
{
    int n = CMS_signed_get_attr_count(si);
    if (n <= 0)
        return UK_E_INTERNAL;
    if (n > SIGNED_ATTRS_MAX) {
        UK_LOG_DEBUG("cms: %d signed attributes, at most %d are read", n, SIGNED_ATTRS_MAX);
        return UK_E_NOT_SUPPORTED;
    }
    der_item items[SIGNED_ATTRS_MAX] = {{0}};
    size_t body = 0;
    int err = UK_OK;
    for (int i = 0; i < n; i++) {
        items[i].len = i2d_X509_ATTRIBUTE(CMS_signed_get_attr(si, i), &items[i].p);
        if (items[i].len <= 0) {
            err = UK__X509_FAIL(UK_E_NO_MEMORY, "i2d_X509_ATTRIBUTE");
            goto out;
        }
        body += (size_t)items[i].len;
    }
    if (sorted)
        qsort(items, (size_t)n, sizeof(items[0]), der_cmp);
    /* The length in the short form, or the long form of up to three bytes (the whole structure
     * is at most UK_X509_CMS_MAX bytes). */
    uint8_t hdr[5];
    size_t h = 0;
    hdr[h++] = 0x31;
    if (body < 0x80) {
        hdr[h++] = (uint8_t)body;
    } else if (body <= 0xFF) {
        hdr[h++] = 0x81;
        hdr[h++] = (uint8_t)body;
    } else if (body <= 0xFFFF) {
        hdr[h++] = 0x82;
        hdr[h++] = (uint8_t)(body >> 8);
        hdr[h++] = (uint8_t)body;
    } else if (body <= 0xFFFFFF) {
        hdr[h++] = 0x83;
        hdr[h++] = (uint8_t)(body >> 16);
        hdr[h++] = (uint8_t)(body >> 8);
        hdr[h++] = (uint8_t)body;
    } else {
        err = UK_E_NOT_SUPPORTED;
        goto out;
    }
    uint8_t *buf = malloc(h + body);
    if (buf == NULL) {
        err = UK_E_NO_MEMORY;
        goto out;
    }
    memcpy(buf, hdr, h);
    size_t off = h;
    for (int i = 0; i < n; i++) {
        memcpy(buf + off, items[i].p, (size_t)items[i].len);
        off += (size_t)items[i].len;
    }
    *out = buf;
    *out_len = off;
out:
    for (int i = 0; i < n; i++)
        OPENSSL_free(items[i].p);
    return err;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n > 0 ? n : 1);
    if (d != NULL && n > 0)
        memcpy(d, p, n);
    return d;
}

int uk_x509_cms_sign_begin(const uk_x509_cms_sign_req *req, uk_x509_cms_sign **state,
                           uk_x509_sig_alg *sig_alg, uint8_t *tbs_digest, size_t *tbs_digest_len)
{
    if (req == NULL || req->signer == NULL || state == NULL || sig_alg == NULL ||
        tbs_digest == NULL || tbs_digest_len == NULL || (req->data == NULL && req->data_len > 0))
        return UK_E_INVALID_PARAMS;
    const EVP_MD *md = uk__x509_md(req->digest);
    size_t md_len = uk_x509_digest_len(req->digest);
    if (md == NULL || *tbs_digest_len < md_len)
        return UK_E_INVALID_PARAMS;

    int err;
    EVP_PKEY *pk = NULL;
    X509 *cert = NULL;
    uint8_t *attrs = NULL;
    size_t attrs_len = 0;
    ASN1_TIME *when = NULL;
    uk_x509_cms_sign *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return UK_E_NO_MEMORY;
    if ((err = uk__x509_get1_key(req->signer, &pk)) != UK_OK ||
        (err = sig_alg_for(pk, req->digest, &s->sig_alg)) != UK_OK)
        goto out;
    const unsigned char *p = req->signer->der;
    cert = d2i_X509(NULL, &p, (long)req->signer->der_len);
    if (cert == NULL) {
        err = UK__X509_FAIL(UK_E_CERT_INVALID, "d2i_X509 of a parsed certificate");
        goto out;
    }
    unsigned flags = CMS_PARTIAL | CMS_BINARY | CMS_NOSMIMECAP | (req->detached ? CMS_DETACHED : 0);
    s->cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
    if (s->cms == NULL) {
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "CMS_sign (partial)");
        goto out;
    }
    /* The public key stands in for the card's private key: see the top of this file. */
    s->si = CMS_add1_signer(s->cms, cert, pk, md, flags);
    if (s->si == NULL) {
        err = UK__X509_FAIL(UK_E_INTERNAL, "CMS_add1_signer");
        goto out;
    }
    /* OpenSSL 3.0 leaves an SM2 signer's signatureAlgorithm empty: GM/T 0010 names
     * SM2-with-SM3 (1.2.156.10197.1.501), without parameters. */
    if (s->sig_alg == UK_X509_SIG_SM2_SM3) {
        X509_ALGOR *psig = NULL;
        CMS_SignerInfo_get0_algs(s->si, NULL, NULL, NULL, &psig);
        if (psig == NULL ||
            !X509_ALGOR_set0(psig, OBJ_nid2obj(NID_SM2_with_SM3), V_ASN1_UNDEF, NULL)) {
            err = UK__X509_FAIL(UK_E_NO_MEMORY, "SM2 signatureAlgorithm");
            goto out;
        }
    }
    uint8_t content_md[EVP_MAX_MD_SIZE];
    unsigned int content_md_len = 0;
    when = ASN1_TIME_set(NULL, req->signing_time);
    if (!EVP_Digest(req->data_len > 0 ? req->data : (const uint8_t *)"", req->data_len, content_md,
                    &content_md_len, md, NULL) ||
        when == NULL ||
        /* RFC 5652 section 11.3: UTCTime through 2049, GeneralizedTime after (ASN1_TIME_set
         * picks that way). */
        !CMS_signed_add1_attr_by_NID(s->si, NID_pkcs9_contentType, V_ASN1_OBJECT,
                                     OBJ_nid2obj(NID_pkcs7_data), -1) ||
        !CMS_signed_add1_attr_by_NID(s->si, NID_pkcs9_signingTime, when->type, when, -1) ||
        !CMS_signed_add1_attr_by_NID(s->si, NID_pkcs9_messageDigest, V_ASN1_OCTET_STRING,
                                     content_md, (int)content_md_len)) {
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "signed attributes");
        goto out;
    }
    if ((err = signed_attrs_der(s->si, true, &attrs, &attrs_len)) != UK_OK)
        goto out;
    size_t dl = *tbs_digest_len;
    /* SM2: the card signs e = SM3(Z || attributes), Z from the certificate's key and the
     * GM/T 0009 default ID (as the `sign` method's SM2-SM3 does). */
    err = s->sig_alg == UK_X509_SIG_SM2_SM3
              ? uk_x509_sm2_digest(req->signer->spki, req->signer->spki_len, attrs, attrs_len,
                                   tbs_digest, &dl)
              : uk_x509_digest(req->digest, attrs, attrs_len, tbs_digest, &dl);
    if (err != UK_OK)
        goto out;
    if (req->detached) {
        if ((s->detached = dup_bytes(req->data, req->data_len)) == NULL) {
            err = UK_E_NO_MEMORY;
            goto out;
        }
        s->detached_len = req->data_len;
    } else {
        if ((s->data = dup_bytes(req->data, req->data_len)) == NULL) {
            err = UK_E_NO_MEMORY;
            goto out;
        }
        s->data_len = req->data_len;
    }
    *tbs_digest_len = dl;
    *sig_alg = s->sig_alg;
    *state = s;
    s = NULL;
out:
    free(attrs);
    ASN1_TIME_free(when);
    X509_free(cert);
    EVP_PKEY_free(pk);
    uk_x509_cms_sign_free(s);
    return err;
}

/* Decode der as a CMS SignedData with exactly one signer. */
static int decode_signed(const uint8_t *der, size_t len, CMS_ContentInfo **out, CMS_SignerInfo **si)
{
    if (der == NULL || len == 0 || len > UK_X509_CMS_MAX)
        return UK_E_INVALID_PARAMS;
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    if (cms == NULL || p != der + len) {
        CMS_ContentInfo_free(cms);
        return UK__X509_FAIL(UK_E_INVALID_PARAMS, "d2i_CMS_ContentInfo");
    }
    STACK_OF(CMS_SignerInfo) *sis = NULL;
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed ||
        (sis = CMS_get0_SignerInfos(cms)) == NULL) {
        CMS_ContentInfo_free(cms);
        UK_LOG_DEBUG("cms: not a SignedData");
        return UK_E_INVALID_PARAMS;
    }
    if (sk_CMS_SignerInfo_num(sis) != 1) {
        CMS_ContentInfo_free(cms);
        UK_LOG_DEBUG("cms: %d signers, one is supported", sk_CMS_SignerInfo_num(sis));
        return UK_E_NOT_SUPPORTED;
    }
    *si = sk_CMS_SignerInfo_value(sis, 0);
    *out = cms;
    return UK_OK;
}

/* CMS_verify without chain trust: the signature over the signed attributes with the key of the
 * signer's certificate (from the structure), and the message digest against the content. */
static int verify_signed(CMS_ContentInfo *cms, const uint8_t *detached, size_t detached_len,
                         bool is_detached)
{
    BIO *dcont = NULL;
    if (is_detached) {
        dcont =
            BIO_new_mem_buf(detached_len > 0 ? detached : (const uint8_t *)"", (int)detached_len);
        if (dcont == NULL)
            return UK_E_NO_MEMORY;
    }
    int ok = CMS_verify(cms, NULL, NULL, dcont, NULL, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY);
    BIO_free(dcont);
    if (ok != 1)
        return UK__X509_FAIL(UK_E_SIGNATURE_INVALID, "CMS_verify");
    return UK_OK;
}

/* Whether alg names SM2 for a signature: SM2-with-SM3 (1.2.156.10197.1.501, what ukeyd writes),
 * or sm2 / sm2-1 (1.2.156.10197.1.301, .301.1), which some GM/T 0010 producers write. */
static bool sm2_sig_alg(const X509_ALGOR *alg)
{
    char oid[32];
    int nid = OBJ_obj2nid(alg->algorithm);
    if (nid == NID_SM2_with_SM3 || nid == NID_sm2)
        return true;
    return OBJ_obj2txt(oid, sizeof(oid), alg->algorithm, 1) > 0 &&
           strcmp(oid, "1.2.156.10197.1.301.1") == 0;
}

/* SM2 with SM3 and the GM/T 0009 default ID over msg with pk (the signer's certificate's key). */
static int sm2_verify(EVP_PKEY *pk, const uint8_t *msg, size_t msg_len, const uint8_t *sig,
                      size_t sig_len)
{
    int err = UK_E_SIGNATURE_INVALID;
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    if (mc == NULL || pc == NULL) {
        err = UK_E_NO_MEMORY;
        goto out;
    }
    /* The ID goes on a context of our own, handed to the digest context before init. */
    if (EVP_PKEY_CTX_set1_id(pc, (const uint8_t *)UK__X509_SM2_ID, UK__X509_SM2_ID_LEN) <= 0) {
        err = UK__X509_FAIL(UK_E_INTERNAL, "EVP_PKEY_CTX_set1_id");
        goto out;
    }
    EVP_MD_CTX_set_pkey_ctx(mc, pc);
    if (EVP_DigestVerifyInit(mc, NULL, EVP_sm3(), NULL, pk) != 1) {
        err = UK__X509_FAIL(UK_E_INTERNAL, "EVP_DigestVerifyInit (SM2)");
        goto out;
    }
    if (EVP_DigestVerify(mc, sig, sig_len, msg_len > 0 ? msg : (const uint8_t *)"", msg_len) == 1)
        err = UK_OK;
    else
        err = UK__X509_FAIL(UK_E_SIGNATURE_INVALID, "SM2 signature");
out:
    EVP_MD_CTX_free(mc);
    EVP_PKEY_CTX_free(pc); /* after mc: set_pkey_ctx does not pass ownership */
    return err;
}

/*
 * GM/T 0010 SignedData of an SM2 signer, checked here because OpenSSL 3.0's CMS_verify cannot set
 * the SM2 ID (it verifies with an empty one): SM3 as the digest algorithm, an SM2 signature
 * algorithm; with signed attributes, exactly one content type equal to eContentType and exactly
 * one message digest equal to SM3(content), and the signature over the DER of the attributes (as
 * decoded, like CMS_verify); without, the signature over the content itself.
 */
static int verify_sm2(CMS_ContentInfo *cms, CMS_SignerInfo *si, EVP_PKEY *pk,
                      const uint8_t *content, size_t content_len)
{
    X509_ALGOR *dig = NULL, *psig = NULL;
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, &psig);
    if (dig == NULL || psig == NULL || OBJ_obj2nid(dig->algorithm) != NID_sm3 ||
        !sm2_sig_alg(psig)) {
        UK_LOG_DEBUG("cms: an SM2 signer with a digest other than SM3 or another signature "
                     "algorithm");
        return UK_E_NOT_SUPPORTED;
    }
    const ASN1_OCTET_STRING *sig = CMS_SignerInfo_get0_signature(si);
    if (sig == NULL || ASN1_STRING_length(sig) <= 0)
        return UK_E_SIGNATURE_INVALID;
    if (CMS_signed_get_attr_count(si) <= 0)
        return sm2_verify(pk, content, content_len, ASN1_STRING_get0_data(sig),
                          (size_t)ASN1_STRING_length(sig));
    uint8_t md[UK_X509_DIGEST_MAX];
    size_t md_len = sizeof(md);
    int err = uk_x509_digest(UK_X509_DIGEST_SM3, content, content_len, md, &md_len);
    if (err != UK_OK)
        return err;
    const ASN1_OBJECT *ctype =
        CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(NID_pkcs9_contentType), -3, V_ASN1_OBJECT);
    const ASN1_OCTET_STRING *mdattr = CMS_signed_get0_data_by_OBJ(
        si, OBJ_nid2obj(NID_pkcs9_messageDigest), -3, V_ASN1_OCTET_STRING);
    if (ctype == NULL || OBJ_cmp(ctype, CMS_get0_eContentType(cms)) != 0 || mdattr == NULL ||
        (size_t)ASN1_STRING_length(mdattr) != md_len ||
        memcmp(ASN1_STRING_get0_data(mdattr), md, md_len) != 0) {
        UK_LOG_DEBUG("cms: SM2 signer: content type or message digest attribute does not match");
        ERR_clear_error();
        return UK_E_SIGNATURE_INVALID;
    }
    uint8_t *attrs = NULL;
    size_t attrs_len = 0;
    if ((err = signed_attrs_der(si, false, &attrs, &attrs_len)) != UK_OK)
        return err;
    err = sm2_verify(pk, attrs, attrs_len, ASN1_STRING_get0_data(sig),
                     (size_t)ASN1_STRING_length(sig));
    free(attrs);
    return err;
}

/* The signer's certificate taken from the structure, then the check its key needs: ours for
 * SM2, CMS_verify for the others. */
static int verify_any(CMS_ContentInfo *cms, CMS_SignerInfo *si, const uint8_t *detached,
                      size_t detached_len, bool is_detached)
{
    EVP_PKEY *pk = NULL;
    if (CMS_set1_signers_certs(cms, NULL, 0) < 0)
        ERR_clear_error(); /* no certificate: CMS_verify says so below */
    CMS_SignerInfo_get0_algs(si, &pk, NULL, NULL, NULL);
    if (pk == NULL || !uk__x509_is_sm2(pk))
        return verify_signed(cms, detached, detached_len, is_detached);
    if (is_detached)
        return verify_sm2(cms, si, pk, detached, detached_len);
    ASN1_OCTET_STRING **pos = CMS_get0_content(cms);
    if (pos == NULL || *pos == NULL)
        return UK_E_INVALID_PARAMS;
    return verify_sm2(cms, si, pk, ASN1_STRING_get0_data(*pos), (size_t)ASN1_STRING_length(*pos));
}

int uk_x509_cms_sign_finish(uk_x509_cms_sign *s, const uint8_t *sig, size_t sig_len, uint8_t **der,
                            size_t *der_len)
{
    if (s == NULL || (sig == NULL && sig_len > 0) || der == NULL || der_len == NULL)
        return UK_E_INVALID_PARAMS;
    if (sig_len == 0 || sig_len > 1024)
        return UK_E_SIGNATURE_INVALID;
    ASN1_OCTET_STRING *os = CMS_SignerInfo_get0_signature(s->si);
    if (os == NULL || !ASN1_OCTET_STRING_set(os, sig, (int)sig_len))
        return UK__X509_FAIL(UK_E_NO_MEMORY, "signature");
    if (s->data != NULL) {
        ASN1_OCTET_STRING **pos = CMS_get0_content(s->cms);
        if (pos == NULL)
            return UK_E_INTERNAL;
        /* A fresh string: the one CMS_set_detached(0) leaves is marked for streaming. */
        ASN1_OCTET_STRING_free(*pos);
        *pos = ASN1_OCTET_STRING_new();
        if (*pos == NULL || !ASN1_OCTET_STRING_set(*pos, s->data, (int)s->data_len))
            return UK__X509_FAIL(UK_E_NO_MEMORY, "content");
    }
    unsigned char *buf = NULL;
    int n = i2d_CMS_ContentInfo(s->cms, &buf);
    if (n <= 0)
        return UK__X509_FAIL(UK_E_NO_MEMORY, "i2d_CMS_ContentInfo");
    /* Verify what is handed out, decoded from its bytes (the attributes in their DER order). */
    CMS_ContentInfo *back = NULL;
    CMS_SignerInfo *si = NULL;
    int err = decode_signed(buf, (size_t)n, &back, &si);
    if (err == UK_OK)
        err = verify_any(back, si, s->detached, s->detached_len, s->data == NULL);
    CMS_ContentInfo_free(back);
    if (err == UK_OK && (*der = dup_bytes(buf, (size_t)n)) == NULL)
        err = UK_E_NO_MEMORY;
    if (err == UK_OK)
        *der_len = (size_t)n;
    else if (err != UK_E_NO_MEMORY)
        err = UK_E_SIGNATURE_INVALID; /* the card signed with another key or scheme */
    OPENSSL_free(buf);
    return err;
}

void uk_x509_cms_verified_free(uk_x509_cms_verified *v)
{
    if (v == NULL)
        return;
    free(v->signer_der);
    free(v->content);
    free(v);
}

/* signingTime, when the signer put one in. */
static bool signing_time(CMS_SignerInfo *si, time_t *out)
{
    int i = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
    X509_ATTRIBUTE *a = i >= 0 ? CMS_signed_get_attr(si, i) : NULL;
    ASN1_TYPE *t = a != NULL ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
    struct tm tm;
    if (t == NULL || (t->type != V_ASN1_UTCTIME && t->type != V_ASN1_GENERALIZEDTIME) ||
        !ASN1_TIME_to_tm((const ASN1_TIME *)t->value.asn1_string, &tm))
        return false;
    *out = timegm(&tm);
    return true;
}

int uk_x509_cms_verify(const uint8_t *der, size_t len, const uint8_t *content, size_t content_len,
                       uk_x509_cms_verified **out)
{
    if (out == NULL || (content == NULL && content_len > 0))
        return UK_E_INVALID_PARAMS;
    CMS_ContentInfo *cms = NULL;
    CMS_SignerInfo *si = NULL;
    uk_x509_cms_verified *v = NULL;
    STACK_OF(X509) *signers = NULL;
    int err = decode_signed(der, len, &cms, &si);
    if (err != UK_OK)
        return err;
    ASN1_OCTET_STRING **pos = CMS_get0_content(cms);
    bool attached = pos != NULL && *pos != NULL;
    if (attached == (content != NULL)) {
        /* Content in the structure and given too, or in neither: which one is signed? */
        UK_LOG_DEBUG("cms: content %s", attached ? "attached and given" : "missing");
        err = UK_E_INVALID_PARAMS;
        goto out;
    }
    if ((err = verify_any(cms, si, content, content_len, !attached)) != UK_OK)
        goto out;
    signers = CMS_get0_signers(cms);
    X509 *signer = signers != NULL ? sk_X509_value(signers, 0) : NULL;
    v = calloc(1, sizeof(*v));
    if (signer == NULL || v == NULL) {
        err = UK_E_NO_MEMORY;
        goto out;
    }
    unsigned char *cbuf = NULL;
    int cn = i2d_X509(signer, &cbuf);
    if (cn <= 0) {
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "i2d_X509");
        goto out;
    }
    v->signer_der = dup_bytes(cbuf, (size_t)cn);
    v->signer_der_len = (size_t)cn;
    OPENSSL_free(cbuf);
    const uint8_t *c = attached ? ASN1_STRING_get0_data(*pos) : content;
    v->content_len = attached ? (size_t)ASN1_STRING_length(*pos) : content_len;
    v->content = dup_bytes(c, v->content_len);
    v->detached = !attached;
    v->has_signing_time = signing_time(si, &v->signing_time);
    if (v->signer_der == NULL || v->content == NULL) {
        err = UK_E_NO_MEMORY;
        goto out;
    }
    *out = v;
    v = NULL;
out:
    sk_X509_free(signers);
    uk_x509_cms_verified_free(v);
    CMS_ContentInfo_free(cms);
    return err;
}

/* ---- EnvelopedData (decrypt.cms) ----------------------------------------------------------- */

/* Largest content-encryption key and key-encryption key (AES-256). */
#define CEK_MAX 32
/* Largest uncompressed EC point (P-521) the card is given. */
#define POINT_MAX 133

struct uk_x509_cms_envelope {
    uk_x509_unwrap how;
    uint8_t *der; /* the envelope re-encoded as DER by OpenSSL (definite lengths) */
    size_t der_len;
    const uint8_t *enc_key; /* the recipient's encryptedKey, inside der */
    size_t enc_key_len;
    X509_ALGOR *calg;         /* contentEncryptionAlgorithm (cipher and IV) */
    const EVP_CIPHER *cipher; /* OpenSSL's static table */
    const uint8_t *content;   /* encryptedContent, inside der */
    size_t content_len;
    size_t modulus_len; /* RSA */
    /* ECDH (key agreement): the originator's ephemeral point, the KDF digest, the key wrap
     * algorithm and the user keying material, as RFC 5753 section 3.1.2 uses them. */
    uint8_t point[POINT_MAX];
    size_t point_len;
    size_t field_len;
    const EVP_MD *kdf_md;
    X509_ALGOR *wrap;
    ASN1_OCTET_STRING *ukm;
};

void uk_x509_cms_envelope_free(uk_x509_cms_envelope *e)
{
    if (e == NULL)
        return;
    OPENSSL_free(e->der);
    X509_ALGOR_free(e->calg);
    X509_ALGOR_free(e->wrap);
    ASN1_OCTET_STRING_free(e->ukm);
    free(e);
}

/* One definite-length TLV at *p, before end: advances *p past it. */
typedef struct tlv {
    const uint8_t *start, *v;
    size_t len;
    int tag, cls;
    bool cons;
} tlv;

static bool next_tlv(const uint8_t **p, const uint8_t *end, tlv *t)
{
    if (*p >= end)
        return false;
    const unsigned char *q = *p;
    long l = 0;
    int r = ASN1_get_object(&q, &l, &t->tag, &t->cls, (long)(end - *p));
    if ((r & 0x80) != 0 || (r & 0x01) != 0) /* error, or indefinite length */
        return false;
    t->start = *p;
    t->v = q;
    t->len = (size_t)l;
    t->cons = (r & V_ASN1_CONSTRUCTED) != 0;
    *p = q + l;
    return true;
}

static bool is(const tlv *t, int cls, int tag)
{
    return t->cls == cls && t->tag == tag;
}

/* The n-th (from 0) element inside the constructed TLV c; false when there are fewer. */
static bool nth(const tlv *c, int n, tlv *out)
{
    const uint8_t *p = c->v, *end = c->v + c->len;
    for (int i = 0; i <= n; i++)
        if (!next_tlv(&p, end, out))
            return false;
    return true;
}

/*
 * Find, in the DER of an EnvelopedData (ContentInfo), the encryptedKey of RecipientInfo number ri
 * (its index in the SET as OpenSSL decoded it, which is the DER order) — for key agreement, of
 * its RecipientEncryptedKey number rek — and the EncryptedContentInfo.
 *   KeyTransRecipientInfo  SEQUENCE { version, rid, keyEncryptionAlgorithm, encryptedKey }
 *   KeyAgreeRecipientInfo  [1] { version, originator [0], ukm [1] OPTIONAL,
 *                                keyEncryptionAlgorithm, SEQUENCE OF { rid, encryptedKey } }
 */
static int walk_envelope(uk_x509_cms_envelope *e, int ri, int rek)
{
    const uint8_t *p = e->der, *end = e->der + e->der_len;
    tlv ci, exp, env, t, set, el, eci, alg, enc;
    if (!next_tlv(&p, end, &ci) || !is(&ci, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE) ||
        !nth(&ci, 1, &exp) || !is(&exp, V_ASN1_CONTEXT_SPECIFIC, 0) || !nth(&exp, 0, &env) ||
        !is(&env, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE))
        return UK_E_INVALID_PARAMS;
    p = env.v;
    end = env.v + env.len;
    if (!next_tlv(&p, end, &t) || !is(&t, V_ASN1_UNIVERSAL, V_ASN1_INTEGER) || /* version */
        !next_tlv(&p, end, &set))
        return UK_E_INVALID_PARAMS;
    if (is(&set, V_ASN1_CONTEXT_SPECIFIC, 0) && !next_tlv(&p, end, &set)) /* originatorInfo */
        return UK_E_INVALID_PARAMS;
    if (!is(&set, V_ASN1_UNIVERSAL, V_ASN1_SET) || !next_tlv(&p, end, &eci) ||
        !is(&eci, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE) || !nth(&set, ri, &el))
        return UK_E_INVALID_PARAMS;
    if (rek < 0) {
        if (!is(&el, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE) || !nth(&el, 3, &t))
            return UK_E_INVALID_PARAMS;
    } else {
        /* The last element is recipientEncryptedKeys. */
        const uint8_t *q = el.v, *qe = el.v + el.len;
        tlv reks = {0}, one;
        if (!is(&el, V_ASN1_CONTEXT_SPECIFIC, 1))
            return UK_E_INVALID_PARAMS;
        while (q < qe)
            if (!next_tlv(&q, qe, &reks))
                return UK_E_INVALID_PARAMS;
        if (!is(&reks, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE) || !nth(&reks, rek, &one) ||
            !is(&one, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE) || !nth(&one, 1, &t))
            return UK_E_INVALID_PARAMS;
    }
    if (!is(&t, V_ASN1_UNIVERSAL, V_ASN1_OCTET_STRING))
        return UK_E_INVALID_PARAMS;
    e->enc_key = t.v;
    e->enc_key_len = t.len;
    /* EncryptedContentInfo SEQUENCE { contentType, algorithm, [0] IMPLICIT encryptedContent } */
    if (!nth(&eci, 1, &alg) || !nth(&eci, 2, &enc))
        return UK_E_INVALID_PARAMS; /* no content: detached */
    if (!is(&enc, V_ASN1_CONTEXT_SPECIFIC, 0) || enc.cons)
        return UK_E_NOT_SUPPORTED; /* content in pieces (BER) */
    const unsigned char *a = alg.start;
    e->calg = d2i_X509_ALGOR(NULL, &a, (long)(alg.v + alg.len - alg.start));
    if (e->calg == NULL)
        return UK__X509_FAIL(UK_E_INVALID_PARAMS, "d2i_X509_ALGOR");
    e->content = enc.v;
    e->content_len = enc.len;
    return UK_OK;
}

/*
 * Whether der (len bytes) is a GM/T 0009 SM2Cipher of a content key, exactly:
 *   SEQUENCE { xCoordinate INTEGER, yCoordinate INTEGER, hash OCTET STRING (SIZE(32)),
 *              cipherText OCTET STRING (SIZE(1..CEK_MAX)) }
 * C1 = (x, y) is checked by the card's decryption, not here.
 */
static bool sm2_cipher_ok(const uint8_t *der, size_t len)
{
    const uint8_t *p = der, *end = der + len;
    tlv top, x, y, h, c;
    if (!next_tlv(&p, end, &top) || p != end || !is(&top, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE))
        return false;
    p = top.v;
    end = top.v + top.len;
    return next_tlv(&p, end, &x) && is(&x, V_ASN1_UNIVERSAL, V_ASN1_INTEGER) && x.len >= 1 &&
           x.len <= 33 && next_tlv(&p, end, &y) && is(&y, V_ASN1_UNIVERSAL, V_ASN1_INTEGER) &&
           y.len >= 1 && y.len <= 33 && next_tlv(&p, end, &h) &&
           is(&h, V_ASN1_UNIVERSAL, V_ASN1_OCTET_STRING) && h.len == 32 && next_tlv(&p, end, &c) &&
           is(&c, V_ASN1_UNIVERSAL, V_ASN1_OCTET_STRING) && c.len >= 1 && c.len <= CEK_MAX &&
           p == end;
}

/* What a recipient that is one of the key's certificates needs from the card. */
typedef struct match {
    int ri, rek; /* rek -1: key transport */
    size_t which;
    uk_x509_unwrap how;
    EVP_PKEY *pk; /* the certificate's key (a reference of its own) */
} match;

/*
 * What the card does for a key transport recipient, or 0 when it cannot serve it: rsaEncryption
 * with an RSA key; SM2 encryption (GM/T 0010: sm2-3, 1.2.156.10197.1.301.3, or the bare sm2 OID
 * 1.2.156.10197.1.301 some producers write) with an SM2 key.
 */
static uk_x509_unwrap ktri_usable(CMS_RecipientInfo *ri, const EVP_PKEY *pk)
{
    X509_ALGOR *palg = NULL;
    char oid[32];
    if (CMS_RecipientInfo_ktri_get0_algs(ri, NULL, NULL, &palg) != 1 || palg == NULL)
        return 0;
    int nid = OBJ_obj2nid(palg->algorithm);
    if (uk__x509_is_sm2(pk))
        return nid == NID_sm2 || (OBJ_obj2txt(oid, sizeof(oid), palg->algorithm, 1) > 0 &&
                                  strcmp(oid, "1.2.156.10197.1.301.3") == 0)
                   ? UK_X509_UNWRAP_SM2
                   : 0;
    return nid == NID_rsaEncryption && EVP_PKEY_is_a(pk, "RSA") ? UK_X509_UNWRAP_RSA : 0;
}

/*
 * The first recipient that is one of certs and that the card can serve: key transport (issuer and
 * serial, or subjectKeyIdentifier) with rsaEncryption for an RSA certificate, or key agreement
 * for an EC certificate (not SM2). *unsupported is set when a recipient is one of certs but not
 * of those kinds (RSA-OAEP, key agreement with another key type).
 */
static int find_recipient(CMS_ContentInfo *cms, const uk_cert_info *const *certs, size_t n_certs,
                          match *m, bool *unsupported)
{
    STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
    X509 **xs = calloc(n_certs + 1, sizeof(*xs));
    if (xs == NULL)
        return UK_E_NO_MEMORY;
    for (size_t c = 0; c < n_certs; c++) {
        const unsigned char *p = certs[c]->der;
        xs[c] = d2i_X509(NULL, &p, (long)certs[c]->der_len);
    }
    m->ri = -1;
    for (int i = 0; m->ri < 0 && i < sk_CMS_RecipientInfo_num(ris); i++) {
        CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);
        int type = CMS_RecipientInfo_type(ri);
        STACK_OF(CMS_RecipientEncryptedKey) *reks =
            type == CMS_RECIPINFO_AGREE ? CMS_RecipientInfo_kari_get0_reks(ri) : NULL;
        for (size_t c = 0; m->ri < 0 && c < n_certs; c++) {
            EVP_PKEY *pk = xs[c] != NULL ? X509_get0_pubkey(xs[c]) : NULL;
            if (pk == NULL)
                continue;
            if (type == CMS_RECIPINFO_TRANS && CMS_RecipientInfo_ktri_cert_cmp(ri, xs[c]) == 0) {
                uk_x509_unwrap how = ktri_usable(ri, pk);
                if (how != 0)
                    *m = (match){.ri = i, .rek = -1, .which = c, .how = how};
                else
                    *unsupported = true;
            }
            for (int k = 0; m->ri < 0 && k < sk_CMS_RecipientEncryptedKey_num(reks); k++) {
                if (CMS_RecipientEncryptedKey_cert_cmp(sk_CMS_RecipientEncryptedKey_value(reks, k),
                                                       xs[c]) != 0)
                    continue;
                if (EVP_PKEY_is_a(pk, "EC") && !uk__x509_is_sm2(pk))
                    *m = (match){.ri = i, .rek = k, .which = c, .how = UK_X509_UNWRAP_ECDH};
                else
                    *unsupported = true;
            }
            if (m->ri >= 0 && EVP_PKEY_up_ref(pk))
                m->pk = pk;
        }
    }
    for (size_t c = 0; c < n_certs; c++)
        X509_free(xs[c]);
    free(xs);
    ERR_clear_error();
    return m->ri >= 0 && m->pk == NULL ? UK_E_NO_MEMORY : UK_OK;
}

/*
 * Key agreement (RFC 5753 3.1.2, ephemeral-static ECDH): the originator's point for the card, the
 * KDF's digest (dhSinglePass-stdDH-shaNkdf-scheme, or the cofactor variant: the same for the
 * NIST curves, whose cofactor is 1), the key wrap algorithm and the ukm.
 */
static int kari_params(uk_x509_cms_envelope *e, CMS_RecipientInfo *ri, const EVP_PKEY *pk)
{
    X509_ALGOR *alg = NULL, *pubalg = NULL;
    ASN1_OCTET_STRING *ukm = NULL, *keyid = NULL;
    ASN1_BIT_STRING *pub = NULL;
    X509_NAME *issuer = NULL;
    ASN1_INTEGER *sno = NULL;
    int dgst = NID_undef, kdf = NID_undef;
    if (CMS_RecipientInfo_kari_get0_orig_id(ri, &pubalg, &pub, &keyid, &issuer, &sno) != 1 ||
        pub == NULL || CMS_RecipientInfo_kari_get0_alg(ri, &alg, &ukm) != 1 || alg == NULL) {
        UK_LOG_DEBUG("cms: key agreement without an ephemeral originator key");
        return UK_E_NOT_SUPPORTED;
    }
    e->field_len = (size_t)(EVP_PKEY_get_bits(pk) + 7) / 8;
    int n = ASN1_STRING_length(pub);
    if (n < 1 || (size_t)n != 2 * e->field_len + 1 || (size_t)n > sizeof(e->point) ||
        ASN1_STRING_get0_data(pub)[0] != 0x04) {
        UK_LOG_DEBUG("cms: the originator's point is not an uncompressed point of the curve");
        return UK_E_INVALID_PARAMS;
    }
    memcpy(e->point, ASN1_STRING_get0_data(pub), (size_t)n);
    e->point_len = (size_t)n;
    if (!OBJ_find_sigid_algs(OBJ_obj2nid(alg->algorithm), &dgst, &kdf) ||
        (kdf != NID_dh_std_kdf && kdf != NID_dh_cofactor_kdf) ||
        (e->kdf_md = EVP_get_digestbynid(dgst)) == NULL || alg->parameter == NULL ||
        alg->parameter->type != V_ASN1_SEQUENCE) {
        UK_LOG_DEBUG("cms: key agreement algorithm is not an X9.63 KDF scheme");
        return UK_E_NOT_SUPPORTED;
    }
    const unsigned char *w = alg->parameter->value.sequence->data;
    e->wrap = d2i_X509_ALGOR(NULL, &w, alg->parameter->value.sequence->length);
    const EVP_CIPHER *wc = e->wrap != NULL ? EVP_get_cipherbyobj(e->wrap->algorithm) : NULL;
    if (wc == NULL || EVP_CIPHER_get_mode(wc) != EVP_CIPH_WRAP_MODE ||
        EVP_CIPHER_get_key_length(wc) > CEK_MAX) {
        UK_LOG_DEBUG("cms: the key wrap algorithm is not supported");
        return UK_E_NOT_SUPPORTED;
    }
    if (ukm != NULL && (e->ukm = ASN1_OCTET_STRING_dup(ukm)) == NULL)
        return UK_E_NO_MEMORY;
    ERR_clear_error();
    return UK_OK;
}

int uk_x509_cms_envelope_open(const uint8_t *der, size_t len, const uk_cert_info *const *certs,
                              size_t n_certs, uk_x509_cms_envelope **out, size_t *which,
                              uk_x509_unwrap *how, const uint8_t **card_in, size_t *card_in_len)
{
    if (der == NULL || len == 0 || len > UK_X509_CMS_MAX || (certs == NULL && n_certs > 0) ||
        out == NULL || which == NULL || how == NULL || card_in == NULL || card_in_len == NULL)
        return UK_E_INVALID_PARAMS;
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    uk_x509_cms_envelope *e = NULL;
    match m = {.ri = -1};
    int err;
    bool unsupported = false;
    if (cms == NULL || p != der + len || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_enveloped) {
        err = UK__X509_FAIL(UK_E_INVALID_PARAMS, "d2i_CMS_ContentInfo (EnvelopedData)");
        goto out;
    }
    if ((err = find_recipient(cms, certs, n_certs, &m, &unsupported)) != UK_OK)
        goto out;
    if (m.ri < 0) {
        UK_LOG_DEBUG("cms: %s", unsupported ? "the key's recipient is of an unsupported kind"
                                            : "no recipient is a certificate of the key");
        err = unsupported ? UK_E_NOT_SUPPORTED : UK_E_DECRYPT_FAILED;
        goto out;
    }
    if ((e = calloc(1, sizeof(*e))) == NULL) {
        err = UK_E_NO_MEMORY;
        goto out;
    }
    e->how = m.how;
    if (e->how == UK_X509_UNWRAP_RSA)
        e->modulus_len = (size_t)EVP_PKEY_get_size(m.pk);
    else if (e->how == UK_X509_UNWRAP_ECDH &&
             (err = kari_params(e, sk_CMS_RecipientInfo_value(CMS_get0_RecipientInfos(cms), m.ri),
                                m.pk)) != UK_OK)
        goto out;
    int n = i2d_CMS_ContentInfo(cms, &e->der);
    if (n <= 0) {
        err = UK__X509_FAIL(UK_E_NO_MEMORY, "i2d_CMS_ContentInfo");
        goto out;
    }
    e->der_len = (size_t)n;
    if ((err = walk_envelope(e, m.ri, m.rek)) != UK_OK)
        goto out;
    if (e->how == UK_X509_UNWRAP_RSA && e->enc_key_len != e->modulus_len) {
        UK_LOG_DEBUG("cms: encrypted key of %zu bytes for a %zu-byte modulus", e->enc_key_len,
                     e->modulus_len);
        err = UK_E_DECRYPT_FAILED;
        goto out;
    }
    if (e->how == UK_X509_UNWRAP_SM2 && !sm2_cipher_ok(e->enc_key, e->enc_key_len)) {
        UK_LOG_DEBUG("cms: the SM2 encrypted key is not a GM/T 0009 SM2Cipher of a content key");
        err = UK_E_DECRYPT_FAILED;
        goto out;
    }
    e->cipher = EVP_get_cipherbyobj(e->calg->algorithm);
    if (e->cipher == NULL || (EVP_CIPHER_get_flags(e->cipher) & EVP_CIPH_FLAG_AEAD_CIPHER) != 0 ||
        EVP_CIPHER_get_key_length(e->cipher) > CEK_MAX) {
        UK_LOG_DEBUG("cms: content cipher %s is not supported",
                     e->cipher ? EVP_CIPHER_get0_name(e->cipher) : "(unknown)");
        err = UK_E_NOT_SUPPORTED;
        goto out;
    }
    *which = m.which;
    *how = e->how;
    *card_in = e->how == UK_X509_UNWRAP_ECDH ? e->point : e->enc_key;
    *card_in_len = e->how == UK_X509_UNWRAP_ECDH ? e->point_len : e->enc_key_len;
    *out = e;
    e = NULL;
out:
    EVP_PKEY_free(m.pk);
    uk_x509_cms_envelope_free(e);
    CMS_ContentInfo_free(cms);
    return err;
}

/*
 * EME-PKCS1-v1_5 decoding (RFC 8017 7.2.2) of em (k bytes) for a message of exactly want bytes:
 * 00 02 PS (>= 8 nonzero bytes) 00 M. Every byte is looked at whatever the outcome and the checks
 * are folded into one mask, so the time taken says nothing about where the padding broke (the
 * Bleichenbacher oracle); the caller answers every failure alike.
 */
static bool pkcs1_v15_unpad(const uint8_t *em, size_t k, size_t want, uint8_t *out)
{
    if (k < want + 11)
        return false;
    size_t sep = k - want - 1; /* where the 00 before M must be */
    unsigned bad = em[0] | (em[1] ^ 0x02u);
    for (size_t i = 2; i < sep; i++)
        bad |= ((unsigned)em[i] - 1u) >> 8 & 1u; /* 1 when em[i] == 0 */
    bad |= em[sep];
    for (size_t i = 0; i < want; i++)
        out[i] = em[sep + 1 + i];
    return bad == 0;
}

/* RFC 5753 3.1.2: KEK = X9.63-KDF(Z, ECC-CMS-SharedInfo), then AES key unwrap of the encryptedKey
 * into cek (*cek_len: the content cipher's key length). */
static int ecdh_unwrap(const uk_x509_cms_envelope *e, const uint8_t *z, size_t z_len, uint8_t *cek,
                       size_t cek_len)
{
    const EVP_CIPHER *wc = EVP_get_cipherbyobj(e->wrap->algorithm);
    int kek_len = wc != NULL ? EVP_CIPHER_get_key_length(wc) : 0;
    uint8_t kek[CEK_MAX], out[CEK_MAX + 16];
    unsigned char *info = NULL;
    int info_len = 0, n = 0, f = 0;
    int err = UK_E_DECRYPT_FAILED;
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *kctx = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    if (z_len != e->field_len || kek_len <= 0 || (size_t)kek_len > sizeof(kek) ||
        e->enc_key_len > sizeof(out) ||
        (info_len = CMS_SharedInfo_encode(&info, e->wrap, e->ukm, kek_len)) <= 0)
        goto out;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                         (char *)(uintptr_t)EVP_MD_get0_name(e->kdf_md), 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)z, z_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, (size_t)info_len),
        OSSL_PARAM_construct_end(),
    };
    if ((kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_X963KDF, NULL)) == NULL ||
        (kctx = EVP_KDF_CTX_new(kdf)) == NULL ||
        EVP_KDF_derive(kctx, kek, (size_t)kek_len, params) != 1) {
        err = UK__X509_FAIL(UK_E_INTERNAL, "X9.63 KDF");
        goto out;
    }
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL) {
        err = UK_E_NO_MEMORY;
        goto out;
    }
    EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_DecryptInit_ex(ctx, wc, NULL, kek, NULL) != 1 ||
        EVP_DecryptUpdate(ctx, out, &n, e->enc_key, (int)e->enc_key_len) != 1 ||
        EVP_DecryptFinal_ex(ctx, out + n, &f) != 1 || (size_t)(n + f) != cek_len) {
        /* The integrity check of the key wrap failed: another key's secret. */
        err = UK__X509_FAIL(UK_E_DECRYPT_FAILED, "key unwrap");
        goto out;
    }
    memcpy(cek, out, cek_len);
    err = UK_OK;
out:
    OPENSSL_cleanse(kek, sizeof(kek));
    OPENSSL_cleanse(out, sizeof(out));
    OPENSSL_free(info);
    EVP_CIPHER_CTX_free(ctx);
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return err;
}

int uk_x509_cms_envelope_finish(uk_x509_cms_envelope *e, const uint8_t *card_out,
                                size_t card_out_len, uint8_t **content, size_t *content_len)
{
    if (e == NULL || card_out == NULL || content == NULL || content_len == NULL)
        return UK_E_INVALID_PARAMS;
    size_t keylen = (size_t)EVP_CIPHER_get_key_length(e->cipher);
    uint8_t cek[CEK_MAX];
    int err = UK_E_DECRYPT_FAILED;
    uint8_t *buf = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    if (e->how == UK_X509_UNWRAP_ECDH) {
        if ((err = ecdh_unwrap(e, card_out, card_out_len, cek, keylen)) != UK_OK)
            goto out;
    } else if (e->how == UK_X509_UNWRAP_SM2) {
        err = UK_E_INVALID_PARAMS; /* the token opens those: uk_x509_cms_envelope_sm2 */
        goto out;
    } else if (card_out_len != e->modulus_len ||
               !pkcs1_v15_unpad(card_out, card_out_len, keylen, cek)) {
        UK_LOG_DEBUG("cms: the unwrapped content-encryption key is not PKCS#1 v1.5 of %zu bytes",
                     keylen);
        goto out;
    }
    err = UK_E_DECRYPT_FAILED;
    if (e->content_len > INT_MAX - 64) /* bounded by UK_X509_CMS_MAX anyway */
        goto out;
    int in_len = (int)e->content_len;
    int n = 0, f = 0;
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
        (buf = malloc((size_t)in_len + (size_t)EVP_CIPHER_get_block_size(e->cipher) + 1)) == NULL) {
        err = UK_E_NO_MEMORY;
        goto out;
    }
    if (EVP_DecryptInit_ex(ctx, e->cipher, NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_asn1_to_param(ctx, e->calg->parameter) <= 0 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, cek, NULL) != 1 ||
        EVP_DecryptUpdate(ctx, buf, &n, e->content, in_len) != 1 ||
        EVP_DecryptFinal_ex(ctx, buf + n, &f) != 1) {
        /* A wrong key shows as bad block padding (or garbage): the same answer either way. */
        err = UK__X509_FAIL(UK_E_DECRYPT_FAILED, "content decryption");
        goto out;
    }
    *content = buf;
    *content_len = (size_t)n + (size_t)f;
    buf = NULL;
    err = UK_OK;
out:
    OPENSSL_cleanse(cek, sizeof(cek));
    EVP_CIPHER_CTX_free(ctx);
    free(buf);
    return err;
}

int uk_x509_cms_envelope_sm2(const uk_x509_cms_envelope *e, uk_x509_sm2_cipher *key, uint8_t iv[16],
                             const uint8_t **ct, size_t *ct_len)
{
    if (e == NULL || key == NULL || iv == NULL || ct == NULL || ct_len == NULL ||
        e->how != UK_X509_UNWRAP_SM2)
        return UK_E_INVALID_PARAMS;
    if (EVP_CIPHER_get_nid(e->cipher) != NID_sm4_cbc) {
        UK_LOG_DEBUG("cms: SM2 recipient with content cipher %s: a token decrypts SM4-CBC only",
                     EVP_CIPHER_get0_name(e->cipher));
        return UK_E_NOT_SUPPORTED;
    }
    const ASN1_TYPE *param = e->calg->parameter;
    if (param == NULL || param->type != V_ASN1_OCTET_STRING ||
        ASN1_STRING_length(param->value.octet_string) != 16) {
        UK_LOG_DEBUG("cms: SM4-CBC without a 16-byte IV");
        return UK_E_INVALID_PARAMS;
    }
    if (e->content_len == 0 || e->content_len % 16 != 0) {
        UK_LOG_DEBUG("cms: SM4-CBC content of %zu bytes", e->content_len);
        return UK_E_INVALID_PARAMS;
    }
    int err = uk_x509_sm2_cipher_split(e->enc_key, e->enc_key_len, key);
    if (err != UK_OK)
        return err == UK_E_INVALID_PARAMS ? UK_E_DECRYPT_FAILED : err;
    memcpy(iv, ASN1_STRING_get0_data(param->value.octet_string), 16);
    *ct = e->content;
    *ct_len = e->content_len;
    return UK_OK;
}

int uk_x509_cms_envelope_unpad(const uk_x509_cms_envelope *e, const uint8_t *plain, size_t len,
                               uint8_t **content, size_t *content_len)
{
    if (e == NULL || plain == NULL || content == NULL || content_len == NULL)
        return UK_E_INVALID_PARAMS;
    if (len != e->content_len || len == 0 || len % 16 != 0)
        return UK_E_DECRYPT_FAILED;
    /* PKCS#7: n bytes of value n, 1 <= n <= 16. Folded into one mask like pkcs1_v15_unpad, so
     * the time taken does not tell a padding oracle where the padding broke. */
    unsigned n = plain[len - 1];
    unsigned bad = ((n - 1u) >> 8 & 1u) | (unsigned)(n > 16);
    for (unsigned i = 1; i <= 16; i++) {
        unsigned in_pad = ((n - i) >> 8 & 1u) ^ 1u; /* 1 when i <= n (n < 256) */
        bad |= in_pad & (unsigned)(plain[len - i] != n);
    }
    if (bad != 0) {
        UK_LOG_DEBUG("cms: the decrypted content's padding is not PKCS#7");
        return UK_E_DECRYPT_FAILED;
    }
    size_t m = len - n;
    uint8_t *buf = malloc(m > 0 ? m : 1);
    if (buf == NULL)
        return UK_E_NO_MEMORY;
    if (m > 0)
        memcpy(buf, plain, m);
    *content = buf;
    *content_len = m;
    return UK_OK;
}
