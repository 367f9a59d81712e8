/*
 * test_x509_helpers.c - see test_x509_helpers.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "test_x509_helpers.h"
#include "uk_err.h"

#define GM_ID "1234567812345678"

void tx_keys_make(tx_keys *k)
{
    memset(k, 0, sizeof(*k));
    k->rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k->rsa_b = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k->p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k->p256_b = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k->p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    k->sm2 = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    k->ed25519 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k->rsa);
    assert_non_null(k->rsa_b);
    assert_non_null(k->p256);
    assert_non_null(k->p256_b);
    assert_non_null(k->p384);
    assert_non_null(k->sm2);
    assert_non_null(k->ed25519);
}

void tx_keys_free(tx_keys *k)
{
    EVP_PKEY_free(k->rsa);
    EVP_PKEY_free(k->rsa_b);
    EVP_PKEY_free(k->p256);
    EVP_PKEY_free(k->p256_b);
    EVP_PKEY_free(k->p384);
    EVP_PKEY_free(k->sm2);
    EVP_PKEY_free(k->ed25519);
    memset(k, 0, sizeof(*k));
}

static X509_NAME *name_new(const tx_attr *a)
{
    X509_NAME *n = X509_NAME_new();
    assert_non_null(n);
    for (; a != NULL && a->type != NULL; a++) {
        int type = a->asn1_type;
        if (type == 0)
            type = strcmp(a->type, "C") == 0 ? V_ASN1_PRINTABLESTRING : V_ASN1_UTF8STRING;
        size_t len = a->len != 0 ? a->len : strlen(a->value);
        ASN1_OBJECT *obj = OBJ_txt2obj(a->type, 0);
        assert_non_null(obj);
        /* A plain V_ASN1_* type stores the bytes as they are, under that tag. */
        X509_NAME_ENTRY *ne = X509_NAME_ENTRY_create_by_OBJ(
            NULL, obj, type, (const unsigned char *)a->value, (int)len);
        assert_non_null(ne);
        assert_int_equal(X509_NAME_add_entry(n, ne, -1, a->join ? -1 : 0), 1);
        X509_NAME_ENTRY_free(ne);
        ASN1_OBJECT_free(obj);
    }
    return n;
}

static bool is_sm2(EVP_PKEY *k)
{
    return EVP_PKEY_is_a(k, "SM2");
}

void tx_cert_der(const tx_spec *s, uint8_t **der, size_t *len)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);

    BIGNUM *bn = NULL;
    const char *hex = s->serial_hex != NULL ? s->serial_hex : "01";
    assert_true(BN_hex2bn(&bn, hex) > 0);
    ASN1_INTEGER *serial = BN_to_ASN1_INTEGER(bn, NULL);
    assert_non_null(serial);
    assert_int_equal(X509_set_serialNumber(x, serial), 1);
    ASN1_INTEGER_free(serial);
    BN_free(bn);

    X509_NAME *subject = name_new(s->subject);
    X509_NAME *issuer = s->issuer != NULL ? name_new(s->issuer) : X509_NAME_dup(subject);
    assert_int_equal(X509_set_subject_name(x, subject), 1);
    assert_int_equal(X509_set_issuer_name(x, issuer), 1);
    X509_NAME_free(subject);
    X509_NAME_free(issuer);

    time_t nb = s->not_before != 0 ? s->not_before : TX_NOT_BEFORE;
    time_t na = s->not_after != 0 ? s->not_after : TX_NOT_AFTER;
    assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), nb));
    assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), na));
    assert_int_equal(X509_set_pubkey(x, s->key), 1);

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    for (const tx_ext *e = s->ext; e != NULL && e->name != NULL; e++) {
        X509_EXTENSION *ext = X509V3_EXT_nconf(NULL, &ctx, e->name, e->value);
        assert_non_null(ext);
        assert_int_equal(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
    }

    EVP_PKEY *ik = s->issuer_key != NULL ? s->issuer_key : s->key;
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    assert_non_null(mc);
    const char *md = s->md;
    if (is_sm2(ik)) {
        const char *id = s->sm2_id != NULL ? s->sm2_id : GM_ID;
        pc = EVP_PKEY_CTX_new_from_pkey(NULL, ik, NULL);
        assert_non_null(pc);
        assert_true(EVP_PKEY_CTX_set1_id(pc, id, strlen(id)) > 0);
        EVP_MD_CTX_set_pkey_ctx(mc, pc);
        if (md == NULL)
            md = "SM3";
    } else if (md == NULL && !EVP_PKEY_is_a(ik, "ED25519")) {
        md = "SHA256";
    }
    assert_int_equal(EVP_DigestSignInit_ex(mc, NULL, md, NULL, NULL, ik, NULL), 1);
    assert_true(X509_sign_ctx(x, mc) > 0);
    EVP_MD_CTX_free(mc);
    EVP_PKEY_CTX_free(pc);

    unsigned char *out = NULL;
    int n = i2d_X509(x, &out);
    assert_true(n > 0);
    *der = malloc((size_t)n);
    assert_non_null(*der);
    memcpy(*der, out, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(out);
    X509_free(x);
}

uk_cert_info *tx_parse_ok(const uint8_t *der, size_t len)
{
    uk_cert_info *c = NULL;
    assert_int_equal(uk_x509_parse(der, len, &c), UK_OK);
    assert_non_null(c);
    assert_int_equal(ERR_peek_error(), 0);
    return c;
}

uk_cert_info *tx_cert_info(const tx_spec *s)
{
    uint8_t *der = NULL;
    size_t len = 0;
    tx_cert_der(s, &der, &len);
    uk_cert_info *c = tx_parse_ok(der, len);
    free(der);
    return c;
}

void tx_spki(EVP_PKEY *key, bool compressed, uint8_t **der, size_t *len)
{
    EVP_PKEY *k = EVP_PKEY_dup(key);
    assert_non_null(k);
    if (compressed)
        assert_int_equal(EVP_PKEY_set_utf8_string_param(
                             k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"),
                         1);
    unsigned char *out = NULL;
    int n = i2d_PUBKEY(k, &out);
    assert_true(n > 0);
    *der = malloc((size_t)n);
    assert_non_null(*der);
    memcpy(*der, out, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(out);
    EVP_PKEY_free(k);
}

static const char *md_name(uk_x509_sig_alg alg)
{
    uk_x509_digest_alg d;
    assert_true(uk_x509_sig_alg_digest(alg, &d));
    switch (d) {
    case UK_X509_DIGEST_SHA256:
        return "SHA256";
    case UK_X509_DIGEST_SHA384:
        return "SHA384";
    case UK_X509_DIGEST_SHA512:
        return "SHA512";
    case UK_X509_DIGEST_SM3:
        return "SM3";
    }
    return NULL;
}

static bool is_pss(uk_x509_sig_alg alg)
{
    return alg == UK_X509_SIG_RSA_PSS_SHA256 || alg == UK_X509_SIG_RSA_PSS_SHA384 ||
           alg == UK_X509_SIG_RSA_PSS_SHA512;
}

static bool is_pkcs1(uk_x509_sig_alg alg)
{
    return alg == UK_X509_SIG_RSA_PKCS1_SHA256 || alg == UK_X509_SIG_RSA_PKCS1_SHA384 ||
           alg == UK_X509_SIG_RSA_PKCS1_SHA512;
}

static void rsa_pad(EVP_PKEY_CTX *pc, uk_x509_sig_alg alg, const char *md)
{
    if (is_pkcs1(alg))
        assert_true(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0);
    if (is_pss(alg)) {
        assert_true(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0);
        assert_true(EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, md, NULL) > 0);
        assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) > 0);
    }
}

void tx_sign(EVP_PKEY *key, uk_x509_sig_alg alg, const char *sm2_id, const uint8_t *data, size_t n,
             uint8_t **sig, size_t *siglen)
{
    const char *md = md_name(alg);
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    EVP_PKEY_CTX *own = NULL;
    EVP_PKEY_CTX *pc = NULL;
    assert_non_null(mc);
    if (alg == UK_X509_SIG_SM2_SM3) {
        const char *id = sm2_id != NULL ? sm2_id : GM_ID;
        own = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
        assert_non_null(own);
        if (id[0] != 0)
            assert_true(EVP_PKEY_CTX_set1_id(own, id, strlen(id)) > 0);
        EVP_MD_CTX_set_pkey_ctx(mc, own);
    }
    assert_int_equal(EVP_DigestSignInit_ex(mc, own != NULL ? NULL : &pc, md, NULL, NULL, key, NULL),
                     1);
    if (pc != NULL)
        rsa_pad(pc, alg, md);
    size_t len = 0;
    assert_int_equal(EVP_DigestSign(mc, NULL, &len, data, n), 1);
    *sig = malloc(len);
    assert_non_null(*sig);
    assert_int_equal(EVP_DigestSign(mc, *sig, &len, data, n), 1);
    *siglen = len;
    EVP_MD_CTX_free(mc);
    EVP_PKEY_CTX_free(own);
}

void tx_sign_digest(EVP_PKEY *key, uk_x509_sig_alg alg, const uint8_t *dg, size_t dn, uint8_t **sig,
                    size_t *siglen)
{
    const char *md = md_name(alg);
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    assert_non_null(pc);
    assert_int_equal(EVP_PKEY_sign_init(pc), 1);
    rsa_pad(pc, alg, md);
    if (alg != UK_X509_SIG_SM2_SM3)
        assert_true(EVP_PKEY_CTX_set_signature_md(pc, EVP_get_digestbyname(md)) > 0);
    size_t len = 0;
    assert_int_equal(EVP_PKEY_sign(pc, NULL, &len, dg, dn), 1);
    *sig = malloc(len);
    assert_non_null(*sig);
    assert_int_equal(EVP_PKEY_sign(pc, *sig, &len, dg, dn), 1);
    *siglen = len;
    EVP_PKEY_CTX_free(pc);
}

/* ---- files and the openssl CLI ----------------------------------------------------------- */

bool tx_have_openssl_cli(void)
{
    return system("openssl version >/dev/null 2>&1") == 0;
}

void tx_tmpdir_make(char *dir, size_t size)
{
    assert_true(size >= 64);
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == 0)
        base = "/tmp";
    snprintf(dir, size, "%s/uk-x509-XXXXXX", base);
    assert_non_null(mkdtemp(dir));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tx_tmpdir_remove(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void tx_write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

uint8_t *tx_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 4096;
    size_t used = 0;
    uint8_t *p = malloc(cap);
    assert_non_null(p);
    size_t got;
    while ((got = fread(p + used, 1, cap - used, f)) > 0) {
        used += got;
        if (used == cap) {
            cap *= 2;
            p = realloc(p, cap);
            assert_non_null(p);
        }
    }
    fclose(f);
    *n = used;
    return p;
}

int tx_run(char *out, size_t out_size, const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(cmd));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t used = 0;
    char buf[512];
    size_t got;
    while ((got = fread(buf, 1, sizeof(buf), p)) > 0) {
        if (out != NULL && used + 1 < out_size) {
            size_t take = got < out_size - 1 - used ? got : out_size - 1 - used;
            memcpy(out + used, buf, take);
            used += take;
        }
    }
    int status = pclose(p);
    if (out != NULL) {
        out[used] = 0;
        while (used > 0 && (out[used - 1] == '\n' || out[used - 1] == '\r'))
            out[--used] = 0;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void tx_lower_nocolon(char *s)
{
    char *w = s;
    for (char *r = s; *r != 0; r++) {
        if (*r == ':')
            continue;
        *w++ = (*r >= 'A' && *r <= 'Z') ? (char)(*r - 'A' + 'a') : *r;
    }
    *w = 0;
}

void tx_prng_fill(uint64_t *state, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t x = *state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        p[i] = (uint8_t)((x * 0x2545F4914F6CDD1DULL) >> 56);
    }
}
