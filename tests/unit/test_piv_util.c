/* Helpers of the PIV driver tests (see test_piv_util.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "test_piv_util.h"
#include "uk_err.h"
#include "uk_secret.h"
#include "vpiv_int.h"

piv_fx *piv_fx_new(vpiv_profile profile, bool ext)
{
    piv_fx *f = calloc(1, sizeof(*f));
    vpiv_options o = {.profile = profile, .ext_length = ext, .serial = PIV_TEST_SERIAL};
    assert_non_null(f);
    assert_int_equal(vpiv_card_new(&f->vc, &o), 0);
    f->card = piv_seam_new(f->vc);
    assert_non_null(f->card);
    return f;
}

void piv_fx_open(piv_fx *f)
{
    assert_int_equal(uk_driver_piv.open(f->card, &f->opt, &f->st, &f->id), UK_OK);
    assert_non_null(f->st);
}

void piv_fx_free(piv_fx *f)
{
    if (f == NULL)
        return;
    if (f->st != NULL)
        uk_driver_piv.close(f->st);
    piv_seam_free(f->card);
    vpiv_card_free(f->vc);
    free(f);
}

static vpiv_demo_ca *the_ca;
static EVP_PKEY *issuer_key;
static char ca_dir[64];

vpiv_demo_ca *piv_test_ca(void)
{
    if (the_ca == NULL) {
        snprintf(ca_dir, sizeof(ca_dir), "/tmp/uk-test-piv-XXXXXX");
        assert_non_null(mkdtemp(ca_dir));
        assert_int_equal(vpiv_demo_ca_new(&the_ca, ca_dir), 0);
    }
    return the_ca;
}

void piv_test_ca_cleanup(void)
{
    char path[128];
    EVP_PKEY_free(issuer_key);
    issuer_key = NULL;
    if (the_ca == NULL)
        return;
    vpiv_demo_ca_free(the_ca);
    the_ca = NULL;
    snprintf(path, sizeof(path), "%s/demo-ca.pem", ca_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/demo-ca.key", ca_dir);
    unlink(path);
    rmdir(ca_dir);
}

void piv_list(piv_fx *f, uk_token_cert **certs, size_t *n)
{
    assert_int_equal(uk_driver_piv.list_certs(f->st, f->card, certs, n), UK_OK);
}

const uk_token_cert *piv_find(const uk_token_cert *certs, size_t n, const char *key_id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(certs[i].key_id, key_id) == 0)
            return &certs[i];
    return NULL;
}

void piv_certs_free(uk_token_cert *certs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(certs[i].der);
    free(certs);
}

size_t piv_card_cert(vpiv_card *vc, uint8_t slot, uint8_t *out, size_t cap)
{
    struct vpiv_object *o = vpiv_object_get(vc, vpiv_slot_object(slot));
    const uint8_t *v;
    size_t l;
    assert_non_null(o);
    assert_int_equal(vpiv_tlv_find(o->data, o->len, 0x70, &v, &l), 1);
    assert_true(l <= cap);
    memcpy(out, v, l);
    return l;
}

void piv_put_raw_object(vpiv_card *vc, uint8_t slot, const uint8_t *v, size_t n)
{
    assert_int_equal(vpiv_object_set(vc, vpiv_slot_object(slot), v, n), 0);
}

void piv_put_object(vpiv_card *vc, uint8_t slot, const uint8_t *cert, size_t n, uint8_t info)
{
    uint8_t *obj = malloc(n + 16);
    vpiv_buf b;
    assert_non_null(obj);
    vpiv_buf_init(&b, obj, n + 16);
    vpiv_tlv_put(&b, 0x70, cert, n);
    vpiv_tlv_put(&b, 0x71, &info, 1);
    vpiv_tlv_put(&b, 0xFE, NULL, 0);
    assert_false(b.overflow);
    piv_put_raw_object(vc, slot, obj, b.len);
    free(obj);
}

size_t piv_gzip(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    return len;
}

uint8_t *piv_make_cert(const uint8_t *spki, size_t spki_len, size_t comment_len, size_t *len)
{
    const unsigned char *p = spki;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, (long)spki_len);
    X509 *x = X509_new();
    unsigned char *der = NULL;
    assert_non_null(pub);
    assert_non_null(x);
    if (issuer_key == NULL)
        issuer_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(issuer_key);
    assert_true(X509_set_version(x, X509_VERSION_3));
    ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)"张三 test", -1, -1, 0);
    X509_NAME_add_entry_by_txt(X509_get_issuer_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)"ukeyd test issuer", -1, -1, 0);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    assert_true(X509_set_pubkey(x, pub));
    if (comment_len > 0) {
        char *c = malloc(comment_len + 1);
        assert_non_null(c);
        memset(c, 'x', comment_len);
        c[comment_len] = '\0';
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_netscape_comment, c);
        assert_non_null(ext);
        assert_true(X509_add_ext(x, ext, -1));
        X509_EXTENSION_free(ext);
        free(c);
    }
    assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
    int n = i2d_X509(x, &der);
    assert_true(n > 0);
    uint8_t *out = malloc((size_t)n);
    assert_non_null(out);
    memcpy(out, der, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(der);
    X509_free(x);
    EVP_PKEY_free(pub);
    return out;
}

static const EVP_MD *md_of(uk_hash h)
{
    return h == UK_HASH_SHA256 ? EVP_sha256() : h == UK_HASH_SHA384 ? EVP_sha384() : EVP_sha512();
}

size_t piv_digest(uk_hash hash, const char *msg, uint8_t *out)
{
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(msg, strlen(msg), out, &n, md_of(hash), NULL), 1);
    return n;
}

bool piv_verify(const uint8_t *der, size_t der_len, bool is_spki, uk_sig_scheme scheme,
                uk_hash hash, const uint8_t *digest, size_t dlen, const uint8_t *sig,
                size_t sig_len)
{
    const unsigned char *p = der;
    EVP_PKEY *pub = NULL;
    X509 *x = NULL;
    if (is_spki) {
        pub = d2i_PUBKEY(NULL, &p, (long)der_len);
    } else {
        x = d2i_X509(NULL, &p, (long)der_len);
        assert_non_null(x);
        pub = X509_get_pubkey(x);
    }
    assert_non_null(pub);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pub, NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_signature_md(ctx, md_of(hash)), 1);
    if (scheme == UK_SIG_RSA_PKCS1) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING), 1);
    } else if (scheme == UK_SIG_RSA_PSS) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST), 1);
    }
    int rc = EVP_PKEY_verify(ctx, sig, sig_len, digest, dlen);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pub);
    X509_free(x);
    return rc == 1;
}

int piv_verify_pin_str(piv_fx *f, const char *pin, int *retries)
{
    uk_secret *s = uk_secret_new(pin, strlen(pin));
    assert_non_null(s);
    int rc = uk_driver_piv.verify_pin(f->st, f->card, s, retries);
    uk_secret_free(s);
    return rc;
}

size_t piv_verify_and_sign(piv_fx *f, const char *slot, uk_sig_scheme scheme, uk_hash hash,
                           const uint8_t *digest, size_t dlen, uint8_t *sig, size_t cap)
{
    int retries = 0;
    size_t sig_len = 0;
    uk_sign_req req = {.scheme = scheme, .hash = hash, .digest = digest, .digest_len = dlen};
    snprintf(req.key_id, sizeof(req.key_id), "%s", slot);
    assert_int_equal(piv_verify_pin_str(f, "123456", &retries), UK_OK);
    assert_int_equal(uk_driver_piv.sign(f->st, f->card, &req, sig, cap, &sig_len), UK_OK);
    return sig_len;
}
