/*
 * uk_x509_parse.c - DER certificate to uk_cert_info: strict decoding, names, serial, times, key,
 * usages, fingerprint. The OpenSSL adapter of the module: every OpenSSL failure is logged here
 * once (debug level) and becomes a UK_E_* code.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_ossl.h"
#include "uk_x509.h"
#include "uk_x509_internal.h"

/* RFC 4514 via OpenSSL's RFC 2253 printer, but characters beyond ASCII stay UTF-8. */
#define NAME_FLAGS (XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB)

static const char *const ku_names[UK_X509_KU_COUNT] = {
    "digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement",
    "keyCertSign",      "cRLSign",        "encipherOnly",    "decipherOnly",
};

/* OpenSSL's KU_* flag for each of our bits, in our bit order. */
static const unsigned long ku_ossl[UK_X509_KU_COUNT] = {
    KU_DIGITAL_SIGNATURE, KU_NON_REPUDIATION, KU_KEY_ENCIPHERMENT,
    KU_DATA_ENCIPHERMENT, KU_KEY_AGREEMENT,   KU_KEY_CERT_SIGN,
    KU_CRL_SIGN,          KU_ENCIPHER_ONLY,   KU_DECIPHER_ONLY,
};

/*
 * Our names for the extended key usages a USB-key user meets, fixed here rather than taken from
 * OpenSSL's object table so that the wire names never change with the OpenSSL version.
 */
static const struct {
    const char *oid;
    const char *name;
} eku_names[] = {
    {"1.3.6.1.5.5.7.3.1", "serverAuth"},    {"1.3.6.1.5.5.7.3.2", "clientAuth"},
    {"1.3.6.1.5.5.7.3.3", "codeSigning"},   {"1.3.6.1.5.5.7.3.4", "emailProtection"},
    {"1.3.6.1.5.5.7.3.8", "timeStamping"},  {"1.3.6.1.5.5.7.3.9", "OCSPSigning"},
    {"2.5.29.37.0", "anyExtendedKeyUsage"}, {"1.3.6.1.4.1.311.20.2.2", "msSmartcardLogin"},
};

int uk__x509_ossl_fail(const char *file, int line, const char *func, int err, const char *what)
{
    /* Bad input is ordinary here, so the reason is for debugging only. */
    return uk_ossl_fail_at(UK_LOG_LEVEL_DEBUG, file, line, func, err, what);
}

/* A rule of ours (not OpenSSL's) rejected the certificate: log why, once, at debug level. */
static int invalid(const char *file, int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int invalid(const char *file, int line, const char *func, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ERR_clear_error();
    uk_log_at(UK_LOG_LEVEL_DEBUG, file, line, func, "certificate rejected: %s", text);
    return UK_E_CERT_INVALID;
}

#define INVALID(...) invalid(__FILE__, __LINE__, __func__, __VA_ARGS__)

/*
 * Whether p[0..n) is UTF-8 as RFC 3629 defines it (shortest form, no surrogates, at most U+10FFFF)
 * without a NUL.
 */
static bool utf8_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char b = p[i];
        size_t more;
        unsigned long cp;
        if (b == 0)
            return false;
        if (b < 0x80) {
            i++;
            continue;
        }
        if (b >= 0xc2 && b <= 0xdf) {
            more = 1;
            cp = b & 0x1fu;
        } else if (b >= 0xe0 && b <= 0xef) {
            more = 2;
            cp = b & 0x0fu;
        } else if (b >= 0xf0 && b <= 0xf4) {
            more = 3;
            cp = b & 0x07u;
        } else {
            return false;
        }
        if (n - i - 1 < more)
            return false;
        for (size_t k = 1; k <= more; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3fu);
        }
        if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += more + 1;
    }
    return true;
}

/* A new NUL-terminated copy of p[0..n); NULL when out of memory. */
static char *dup_bytes(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        return NULL;
    if (n > 0)
        memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* prefix, then two hex digits per byte (uppercase when upper); NULL when out of memory. */
static char *hex_new(const unsigned char *p, size_t n, const char *prefix, bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    size_t pl = strlen(prefix);
    char *s = malloc(pl + 2 * n + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, prefix, pl);
    for (size_t i = 0; i < n; i++) {
        s[pl + 2 * i] = digits[p[i] >> 4];
        s[pl + 2 * i + 1] = digits[p[i] & 0x0f];
    }
    s[pl + 2 * n] = 0;
    return s;
}

/* OBJ as text: the short name when OpenSSL knows one (long name when long_name), else dotted. */
static int obj_text(const ASN1_OBJECT *obj, bool long_name, char **out)
{
    int nid = OBJ_obj2nid(obj);
    if (nid != NID_undef) {
        const char *name = long_name ? OBJ_nid2ln(nid) : OBJ_nid2sn(nid);
        if (name != NULL) {
            *out = dup_bytes(name, strlen(name));
            return *out != NULL ? UK_OK : UK_E_NO_MEMORY;
        }
    }
    int n = OBJ_obj2txt(NULL, 0, obj, 1);
    if (n <= 0)
        return UK__X509_FAIL(UK_E_CERT_INVALID, "OBJ_obj2txt");
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        return UK_E_NO_MEMORY;
    if (OBJ_obj2txt(s, n + 1, obj, 1) != n) {
        free(s);
        return UK__X509_FAIL(UK_E_CERT_INVALID, "OBJ_obj2txt");
    }
    *out = s;
    return UK_OK;
}

/* The string types OpenSSL converts to UTF-8 (ASN1_STRING_to_UTF8, X509_NAME_print_ex). */
static bool text_type(int type)
{
    switch (type) {
    case V_ASN1_UTF8STRING:
    case V_ASN1_NUMERICSTRING:
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_T61STRING:
    case V_ASN1_IA5STRING:
    case V_ASN1_UTCTIME:
    case V_ASN1_GENERALIZEDTIME:
    case V_ASN1_VISIBLESTRING:
    case V_ASN1_UNIVERSALSTRING:
    case V_ASN1_BMPSTRING:
        return true;
    default:
        return false;
    }
}

static int name_part(const X509_NAME_ENTRY *ne, uk_x509_name_part *part)
{
    int err = obj_text(X509_NAME_ENTRY_get_object(ne), false, &part->type);
    if (err != UK_OK)
        return err;
    part->rdn = (size_t)X509_NAME_ENTRY_set(ne);

    ASN1_STRING *d = X509_NAME_ENTRY_get_data(ne);
    if (text_type(ASN1_STRING_type(d))) {
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, d);
        if (n < 0)
            return UK__X509_FAIL(UK_E_CERT_INVALID, "ASN1_STRING_to_UTF8");
        if (!utf8_ok(utf8, (size_t)n)) {
            OPENSSL_free(utf8);
            return INVALID("a %s value is not valid UTF-8 or holds a NUL", part->type);
        }
        part->value = dup_bytes(utf8, (size_t)n);
        OPENSSL_free(utf8);
        return part->value != NULL ? UK_OK : UK_E_NO_MEMORY;
    }
    /* Not a character string: "#" and the hex of the DER, as RFC 4514 section 2.4 writes it. */
    ASN1_TYPE t;
    memset(&t, 0, sizeof(t));
    t.type = ASN1_STRING_type(d);
    t.value.asn1_string = d;
    unsigned char *enc = NULL;
    int n = i2d_ASN1_TYPE(&t, &enc);
    if (n <= 0)
        return UK__X509_FAIL(UK_E_CERT_INVALID, "i2d_ASN1_TYPE");
    part->value = hex_new(enc, (size_t)n, "#", true); /* as OpenSSL writes it in rfc4514 */
    part->der_hex = true;
    OPENSSL_free(enc);
    return part->value != NULL ? UK_OK : UK_E_NO_MEMORY;
}

static int name_fill(const X509_NAME *name, uk_x509_name *out)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return UK__X509_FAIL(UK_E_NO_MEMORY, "BIO_new");
    int err = UK_OK;
    if (X509_NAME_print_ex(bio, name, 0, NAME_FLAGS) < 0) {
        err = UK__X509_FAIL(UK_E_CERT_INVALID, "X509_NAME_print_ex");
        goto out;
    }
    char *text = NULL;
    long tl = BIO_get_mem_data(bio, &text);
    if (tl < 0 || (tl > 0 && text == NULL)) {
        err = UK__X509_FAIL(UK_E_INTERNAL, "BIO_get_mem_data");
        goto out;
    }
    if (!utf8_ok((const unsigned char *)text, (size_t)tl)) {
        err = INVALID("a name does not print as UTF-8");
        goto out;
    }
    out->rfc4514 = dup_bytes(text, (size_t)tl);
    if (out->rfc4514 == NULL) {
        err = UK_E_NO_MEMORY;
        goto out;
    }

    int count = X509_NAME_entry_count(name);
    if (count > 0) {
        out->parts = calloc((size_t)count, sizeof(*out->parts));
        if (out->parts == NULL) {
            err = UK_E_NO_MEMORY;
            goto out;
        }
        for (int i = 0; i < count; i++) {
            err = name_part(X509_NAME_get_entry(name, i), &out->parts[i]);
            out->n_parts = (size_t)i + 1; /* freed by name_close, even half filled */
            if (err != UK_OK)
                goto out;
        }
    }
out:
    BIO_free(bio);
    return err;
}

static void name_close(uk_x509_name *n)
{
    for (size_t i = 0; i < n->n_parts; i++) {
        free(n->parts[i].type);
        free(n->parts[i].value);
    }
    free(n->parts);
    free(n->rfc4514);
    memset(n, 0, sizeof(*n));
}

static int serial_fill(const X509 *x, uk_cert_info *c)
{
    const ASN1_INTEGER *s = X509_get0_serialNumber(x);
    const unsigned char *p = ASN1_STRING_get0_data(s);
    size_t n = (size_t)ASN1_STRING_length(s);
    bool neg = ASN1_STRING_type(s) == V_ASN1_NEG_INTEGER;
    /* OpenSSL keeps the magnitude without a sign byte; skip zero bytes all the same. */
    while (n > 0 && p[0] == 0) {
        p++;
        n--;
    }
    if (n == 0)
        c->serial = dup_bytes("00", 2);
    else
        c->serial = hex_new(p, n, neg ? "-" : "", false);
    return c->serial != NULL ? UK_OK : UK_E_NO_MEMORY;
}

/* One validity time: RFC 5280 form only (UTCTime YYMMDDHHMMSSZ, GeneralizedTime 4-digit year). */
static int time_fill(const ASN1_TIME *t, const char *which, time_t *out,
                     char iso[UK_X509_ISO_TIME_LEN])
{
    int type = ASN1_STRING_type(t);
    int len = ASN1_STRING_length(t);
    const unsigned char *d = ASN1_STRING_get0_data(t);
    bool form_ok =
        (type == V_ASN1_UTCTIME && len == 13) || (type == V_ASN1_GENERALIZEDTIME && len == 15);
    if (!form_ok || d[len - 1] != 'Z')
        return INVALID("%s is not in the RFC 5280 form", which);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return UK__X509_FAIL(UK_E_CERT_INVALID, "ASN1_TIME_to_tm");
    *out = timegm(&tm);
    int n = snprintf(iso, UK_X509_ISO_TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (n != UK_X509_ISO_TIME_LEN - 1)
        return INVALID("%s is out of range", which);
    return UK_OK;
}

static int key_fill(const X509 *x, uk_cert_info *c)
{
    EVP_PKEY *pk = X509_get0_pubkey(x); /* borrowed, cached in x */
    if (pk == NULL)
        return UK__X509_FAIL(UK_E_CERT_INVALID, "X509_get0_pubkey");

    const char *alg;
    const char *curve = "";
    char group[64] = "";
    if (EVP_PKEY_is_a(pk, "EC") || EVP_PKEY_is_a(pk, "SM2")) {
        size_t gl = 0;
        if (EVP_PKEY_get_group_name(pk, group, sizeof(group), &gl) == 1) {
            int nid = OBJ_sn2nid(group);
            const char *nist = nid != NID_undef ? EC_curve_nid2nist(nid) : NULL;
            curve = nid == NID_sm2 ? "SM2" : nist != NULL ? nist : group;
        } else {
            ERR_clear_error(); /* explicit curve parameters: no name */
        }
        alg = uk__x509_is_sm2(pk) ? "SM2" : "EC";
    } else if (EVP_PKEY_is_a(pk, "RSA")) {
        alg = "RSA";
    } else if (EVP_PKEY_is_a(pk, "RSA-PSS")) {
        alg = "RSA-PSS";
    } else if (EVP_PKEY_is_a(pk, "ED25519")) {
        alg = "Ed25519";
    } else if (EVP_PKEY_is_a(pk, "ED448")) {
        alg = "Ed448";
    } else if (EVP_PKEY_is_a(pk, "DSA")) {
        alg = "DSA";
    } else {
        alg = EVP_PKEY_get0_type_name(pk);
        if (alg == NULL)
            alg = "unknown";
    }
    c->key_alg = dup_bytes(alg, strlen(alg));
    c->curve = dup_bytes(curve, strlen(curve));
    if (c->key_alg == NULL || c->curve == NULL)
        return UK_E_NO_MEMORY;
    int bits = EVP_PKEY_get_bits(pk);
    c->key_bits = bits > 0 ? (unsigned)bits : 0;

    unsigned char *spki = NULL;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
    if (n <= 0)
        return UK__X509_FAIL(UK_E_CERT_INVALID, "i2d_X509_PUBKEY");
    c->spki = malloc((size_t)n);
    if (c->spki != NULL) {
        memcpy(c->spki, spki, (size_t)n);
        c->spki_len = (size_t)n;
    }
    OPENSSL_free(spki);
    return c->spki != NULL ? UK_OK : UK_E_NO_MEMORY;
}

static int usage_fill(X509 *x, uk_cert_info *c)
{
    uint32_t flags = X509_get_extension_flags(x);
    if (flags & EXFLAG_INVALID)
        return INVALID("an extension is malformed or present twice");
    c->is_ca = (flags & EXFLAG_CA) != 0;

    if (flags & EXFLAG_KUSAGE) {
        uint32_t ku = X509_get_key_usage(x);
        c->has_key_usage = true;
        for (size_t i = 0; i < UK_X509_KU_COUNT; i++) {
            if (ku & ku_ossl[i]) {
                c->key_usage |= 1u << i;
                c->key_usage_names[c->n_key_usage++] = ku_names[i];
            }
        }
    }

    int crit = 0;
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, &crit, NULL);
    if (eku == NULL) {
        if (crit == -1)
            return UK_OK; /* absent */
        return UK__X509_FAIL(UK_E_CERT_INVALID, "extended key usage");
    }
    int err = UK_OK;
    int count = sk_ASN1_OBJECT_num(eku);
    c->has_ext_key_usage = true;
    if (count > 0) {
        c->ext_key_usage = calloc((size_t)count, sizeof(*c->ext_key_usage));
        if (c->ext_key_usage == NULL) {
            err = UK_E_NO_MEMORY;
            goto out;
        }
    }
    for (int i = 0; i < count; i++) {
        char *oid = NULL;
        /* The dotted form first: our own table decides the name. */
        const ASN1_OBJECT *obj = sk_ASN1_OBJECT_value(eku, i);
        int n = OBJ_obj2txt(NULL, 0, obj, 1);
        if (n <= 0 || (oid = malloc((size_t)n + 1)) == NULL ||
            OBJ_obj2txt(oid, n + 1, obj, 1) != n) {
            free(oid);
            err = n <= 0 ? UK__X509_FAIL(UK_E_CERT_INVALID, "OBJ_obj2txt") : UK_E_NO_MEMORY;
            goto out;
        }
        for (size_t k = 0; k < sizeof(eku_names) / sizeof(eku_names[0]); k++) {
            if (strcmp(oid, eku_names[k].oid) == 0) {
                free(oid);
                oid = dup_bytes(eku_names[k].name, strlen(eku_names[k].name));
                break;
            }
        }
        if (oid == NULL) {
            err = UK_E_NO_MEMORY;
            goto out;
        }
        c->ext_key_usage[c->n_ext_key_usage++] = oid;
    }
out:
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return err;
}

static int sig_fill(X509 *x, uk_cert_info *c)
{
    const ASN1_BIT_STRING *sig = NULL;
    const X509_ALGOR *alg = NULL;
    const ASN1_OBJECT *obj = NULL;
    X509_get0_signature(&sig, &alg, x);
    if (X509_ALGOR_cmp(alg, X509_get0_tbs_sigalg(x)) != 0)
        return INVALID("the two signature algorithm fields differ");
    X509_ALGOR_get0(&obj, NULL, NULL, alg);
    int err = obj_text(obj, true, &c->sig_alg);
    if (err != UK_OK)
        return err;

    err = uk__x509_set_sm2_id(x);
    if (err != UK_OK)
        return err;
    /* 1 only when subject == issuer (and AKID/SKID agree) and the signature verifies. */
    c->self_signed = X509_self_signed(x, 1) == 1;
    ERR_clear_error(); /* a failed verification is an answer, not an error */
    return UK_OK;
}

int uk__x509_set_sm2_id(X509 *x)
{
    if (X509_get_signature_nid(x) != NID_SM2_with_SM3)
        return UK_OK;
    ASN1_OCTET_STRING *id = ASN1_OCTET_STRING_new();
    if (id == NULL ||
        !ASN1_OCTET_STRING_set(id, (const unsigned char *)UK__X509_SM2_ID, UK__X509_SM2_ID_LEN)) {
        ASN1_OCTET_STRING_free(id);
        return UK__X509_FAIL(UK_E_NO_MEMORY, "ASN1_OCTET_STRING_set");
    }
    X509_set0_distinguishing_id(x, id);
    return UK_OK;
}

/*
 * Strict DER: re-encode the certificate, ignoring OpenSSL's cached encoding of the
 * tbsCertificate, and require the very bytes we were given. Names and extension values are kept
 * as encoded by OpenSSL (and covered by the issuer's signature), so they are not re-checked.
 */
static int check_der(X509 *x, const uint8_t *der, size_t len)
{
    if (i2d_re_X509_tbs(x, NULL) <= 0)
        return UK__X509_FAIL(UK_E_CERT_INVALID, "i2d_re_X509_tbs");
    unsigned char *re = NULL;
    int n = i2d_X509(x, &re);
    if (n <= 0)
        return UK__X509_FAIL(UK_E_CERT_INVALID, "i2d_X509");
    bool same = (size_t)n == len && memcmp(re, der, len) == 0;
    OPENSSL_free(re);
    if (!same)
        return INVALID("not DER: re-encoding gives %d bytes, not the same %zu", n, len);
    return UK_OK;
}

static int fill(X509 *x, const uint8_t *der, size_t len, uk_cert_info *c)
{
    int err;
    c->der = malloc(len);
    if (c->der == NULL)
        return UK_E_NO_MEMORY;
    memcpy(c->der, der, len);
    c->der_len = len;
    c->version = (int)X509_get_version(x) + 1;
    if (c->version < 1 || c->version > 3)
        return INVALID("version %d", c->version);

    if ((err = name_fill(X509_get_subject_name(x), &c->subject)) != UK_OK ||
        (err = name_fill(X509_get_issuer_name(x), &c->issuer)) != UK_OK ||
        (err = serial_fill(x, c)) != UK_OK ||
        (err = time_fill(X509_get0_notBefore(x), "notBefore", &c->not_before, c->not_before_iso)) !=
            UK_OK ||
        (err = time_fill(X509_get0_notAfter(x), "notAfter", &c->not_after, c->not_after_iso)) !=
            UK_OK ||
        (err = key_fill(x, c)) != UK_OK || (err = usage_fill(x, c)) != UK_OK ||
        (err = sig_fill(x, c)) != UK_OK)
        return err;

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(der, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return UK__X509_FAIL(UK_E_NO_MEMORY, "EVP_Digest");
    char *hex = hex_new(md, mdlen, "", false);
    if (hex == NULL)
        return UK_E_NO_MEMORY;
    memcpy(c->fingerprint_sha256, hex, UK_X509_FINGERPRINT_LEN);
    free(hex);
    return UK_OK;
}

int uk_x509_parse(const uint8_t *der, size_t len, uk_cert_info **out)
{
    if (out == NULL || (der == NULL && len > 0))
        return UK_E_INVALID_PARAMS;
    if (len == 0 || len > UK_X509_DER_MAX)
        return INVALID("%zu bytes (1 to %u accepted)", len, UK_X509_DER_MAX);

    int err;
    uk_cert_info *c = NULL;
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL) {
        err = UK__X509_FAIL(UK_E_CERT_INVALID, "d2i_X509");
        goto out;
    }
    if (p != der + len) {
        err = INVALID("%zu bytes after the certificate", (size_t)(der + len - p));
        goto out;
    }
    if ((err = check_der(x, der, len)) != UK_OK)
        goto out;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        err = UK_E_NO_MEMORY;
        goto out;
    }
    err = fill(x, der, len, c);
out:
    X509_free(x);
    ERR_clear_error(); /* also what OpenSSL queued on the way without failing */
    if (err != UK_OK) {
        uk_cert_info_free(c);
        return err;
    }
    *out = c;
    return UK_OK;
}

void uk_cert_info_free(uk_cert_info *c)
{
    if (c == NULL)
        return;
    free(c->der);
    name_close(&c->subject);
    name_close(&c->issuer);
    free(c->serial);
    free(c->key_alg);
    free(c->curve);
    free(c->sig_alg);
    for (size_t i = 0; i < c->n_ext_key_usage; i++)
        free(c->ext_key_usage[i]);
    free(c->ext_key_usage);
    free(c->spki);
    free(c);
}
