/*
 * uk_tls_x509.c - the OpenSSL adapter of the tls module: the ceremony in memory, PEM in and out,
 * and verification. Every OpenSSL failure is logged here once, with the queue's entries, and
 * becomes a UK_E_* code (uk__tls_ossl_fail); no OpenSSL string leaves this file otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_ossl.h"
#include "uk_tls_internal.h"

/* notBefore is set this far in the past, for clocks that are a little behind. */
#define NOT_BEFORE_SLACK_SECONDS 300

/*
 * The name constraints of the CA: only the loopback names. A permitted subtree of one name type
 * makes every other name of that type fail, so "everything else" needs no excluded subtree (and an
 * excluded 0.0.0.0/0 would exclude 127.0.0.1 as well: exclusions win). Name types without a
 * permitted subtree (e-mail, URI, directory names) stay unconstrained; TLS clients never take a
 * server's identity from them. See docs/security.md, "Local TLS".
 */
#define CA_NAME_CONSTRAINTS                                                                        \
    "critical,permitted;IP:127.0.0.1/255.255.255.255,"                                             \
    "permitted;IP:::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,"                                    \
    "permitted;DNS:localhost"

#define SERVER_SAN "DNS:localhost,IP:127.0.0.1,IP:::1"

#define ORGANIZATION "ukeyd (local only)"

int uk__tls_ossl_fail(const char *file, int line, const char *func, const char *what)
{
    return uk_ossl_fail_at(UK_LOG_LEVEL_ERR, file, line, func, UK_E_TLS_ERROR, what);
}

time_t uk__tls_time(const ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        ERR_clear_error();
        return 0;
    }
    return timegm(&tm);
}

void uk__tls_set_close(uk__tls_set *s)
{
    X509_free(s->ca);
    X509_free(s->leaf);
    EVP_PKEY_free(s->key);
    memset(s, 0, sizeof(*s));
}

/* Never prompt for a pass phrase (the daemon has no terminal): an encrypted key is "damaged". */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

int uk__tls_parse_cert(const uint8_t *pem, size_t len, X509 **out)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return UK__TLS_OSSL_FAIL("BIO_new_mem_buf");
    *out = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (*out == NULL) {
        ERR_clear_error();
        return UK_E_CERT_INVALID;
    }
    return UK_OK;
}

int uk__tls_parse_key(const uint8_t *pem, size_t len, EVP_PKEY **out)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return UK__TLS_OSSL_FAIL("BIO_new_mem_buf");
    *out = PEM_read_bio_PrivateKey_ex(bio, NULL, no_passphrase, NULL, NULL, NULL);
    BIO_free(bio);
    if (*out == NULL) {
        ERR_clear_error();
        return UK_E_CERT_INVALID;
    }
    return UK_OK;
}

int uk__tls_verify_chain(X509 *ca, X509 *leaf, time_t at, const char **why)
{
    X509_STORE *store = NULL;
    X509_STORE_CTX *vctx = NULL;
    int rc = UK_OK;

    *why = NULL;
    store = X509_STORE_new();
    vctx = X509_STORE_CTX_new();
    if (store == NULL || vctx == NULL) {
        rc = UK__TLS_OSSL_FAIL("X509_STORE_new");
        goto out;
    }
    if (X509_STORE_add_cert(store, ca) != 1 || X509_STORE_CTX_init(vctx, store, leaf, NULL) != 1) {
        rc = UK__TLS_OSSL_FAIL("X509_STORE_CTX_init");
        goto out;
    }
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(vctx);
    X509_VERIFY_PARAM_set_time(param, at);
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
    if (X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER) != 1 ||
        X509_VERIFY_PARAM_set1_host(param, "localhost", 0) != 1 ||
        X509_VERIFY_PARAM_set1_ip_asc(param, "127.0.0.1") != 1) {
        rc = UK__TLS_OSSL_FAIL("X509_VERIFY_PARAM");
        goto out;
    }
    if (X509_verify_cert(vctx) != 1) {
        *why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx));
        ERR_clear_error();
        rc = UK_E_CHAIN_INVALID;
    }
out:
    X509_STORE_CTX_free(vctx);
    X509_STORE_free(store);
    return rc;
}

int uk__tls_set_usable(const uk__tls_set *s, time_t now, unsigned window_days, bool *usable,
                       const char **why)
{
    time_t horizon = now + (time_t)window_days * 86400;

    *usable = false;
    if (!s->key_private_mode) {
        *why = "server.key is readable by group or others, or not ours";
        return UK_OK;
    }
    if (X509_check_private_key(s->leaf, s->key) != 1) {
        ERR_clear_error();
        *why = "server.key does not match server.pem";
        return UK_OK;
    }
    int rc = uk__tls_verify_chain(s->ca, s->leaf, now, why);
    if (rc == UK_E_CHAIN_INVALID)
        return UK_OK;
    if (rc != UK_OK)
        return rc;
    if (uk__tls_time(X509_get0_notAfter(s->leaf)) <= horizon ||
        uk__tls_time(X509_get0_notAfter(s->ca)) <= horizon) {
        *why = "the server certificate ends within the renewal window";
        return UK_OK;
    }
    *usable = true;
    *why = NULL;
    return UK_OK;
}

static EVP_PKEY *new_p256_key(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* A random positive 128-bit serial number. */
static int set_random_serial(X509 *x)
{
    uint8_t raw[16];
    BIGNUM *bn = NULL;
    int rc = UK_OK;

    do {
        if (RAND_bytes(raw, sizeof(raw)) != 1)
            return UK__TLS_OSSL_FAIL("RAND_bytes");
        BN_free(bn);
        bn = BN_bin2bn(raw, sizeof(raw), NULL);
        if (bn == NULL)
            return UK__TLS_OSSL_FAIL("BN_bin2bn");
    } while (BN_is_zero(bn));
    if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        rc = UK__TLS_OSSL_FAIL("BN_to_ASN1_INTEGER");
    BN_free(bn);
    return rc;
}

static int set_name(X509 *x, bool subject, const char *org, const char *cn)
{
    X509_NAME *name = X509_NAME_new();
    int rc = UK_OK;

    if (name == NULL ||
        X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
                                   (const unsigned char *)org, -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn,
                                   -1, -1, 0) != 1) {
        rc = UK__TLS_OSSL_FAIL("X509_NAME_add_entry");
        goto out;
    }
    if ((subject ? X509_set_subject_name(x, name) : X509_set_issuer_name(x, name)) != 1)
        rc = UK__TLS_OSSL_FAIL("X509_set_name");
out:
    X509_NAME_free(name);
    return rc;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return UK__TLS_OSSL_FAIL(OBJ_nid2sn(nid));
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (ok != 1)
        return UK__TLS_OSSL_FAIL("X509_add_ext");
    return UK_OK;
}

/* Version 3, random serial, validity [now - slack, now - slack + days]: exactly `days` long. */
static int cert_start(X509 **out, EVP_PKEY *pub, time_t now, unsigned days)
{
    X509 *x = X509_new_ex(NULL, NULL);
    int rc;

    *out = NULL;
    if (x == NULL)
        return UK__TLS_OSSL_FAIL("X509_new_ex");
    if (X509_set_version(x, X509_VERSION_3) != 1 ||
        X509_time_adj_ex(X509_getm_notBefore(x), 0, -NOT_BEFORE_SLACK_SECONDS, &now) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), (int)days, -NOT_BEFORE_SLACK_SECONDS, &now) ==
            NULL ||
        X509_set_pubkey(x, pub) != 1) {
        rc = UK__TLS_OSSL_FAIL("X509 fields");
        goto out;
    }
    rc = set_random_serial(x);
out:
    if (rc != UK_OK)
        X509_free(x);
    else
        *out = x;
    return rc;
}

static int sign_cert(X509 *x, EVP_PKEY *key)
{
    if (X509_sign(x, key, EVP_sha256()) <= 0)
        return UK__TLS_OSSL_FAIL("X509_sign");
    return UK_OK;
}

static int make_ca(X509 **out, EVP_PKEY *ca_key, time_t now, unsigned days, const char *host)
{
    X509 *ca = NULL;
    char cn[64];
    uint8_t tag[4];
    int rc;

    *out = NULL;
    if (RAND_bytes(tag, sizeof(tag)) != 1)
        return UK__TLS_OSSL_FAIL("RAND_bytes");
    /* A subject of its own per ceremony, so an old CA can never be mistaken for the new one. */
    snprintf(cn, sizeof(cn), "%s (%.24s) %02x%02x%02x%02x", UK__TLS_NICKNAME_PREFIX, host, tag[0],
             tag[1], tag[2], tag[3]);

    rc = cert_start(&ca, ca_key, now, days);
    if (rc == UK_OK)
        rc = set_name(ca, true, ORGANIZATION, cn);
    if (rc == UK_OK)
        rc = set_name(ca, false, ORGANIZATION, cn);
    if (rc == UK_OK)
        rc = add_ext(ca, ca, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    if (rc == UK_OK)
        rc = add_ext(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign");
    if (rc == UK_OK)
        rc = add_ext(ca, ca, NID_subject_key_identifier, "hash");
    if (rc == UK_OK)
        rc = add_ext(ca, ca, NID_authority_key_identifier, "keyid:always");
    if (rc == UK_OK)
        rc = add_ext(ca, ca, NID_name_constraints, CA_NAME_CONSTRAINTS);
    if (rc == UK_OK)
        rc = sign_cert(ca, ca_key);
    if (rc != UK_OK) {
        X509_free(ca);
        return rc;
    }
    *out = ca;
    return UK_OK;
}

static int make_leaf(X509 **out, X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, time_t now,
                     unsigned days)
{
    X509 *leaf = NULL;
    int rc;

    *out = NULL;
    rc = cert_start(&leaf, key, now, days);
    if (rc == UK_OK)
        rc = set_name(leaf, true, ORGANIZATION, "localhost");
    if (rc == UK_OK && X509_set_issuer_name(leaf, X509_get_subject_name(ca)) != 1)
        rc = UK__TLS_OSSL_FAIL("X509_set_issuer_name");
    if (rc == UK_OK)
        rc = add_ext(leaf, ca, NID_basic_constraints, "critical,CA:FALSE");
    if (rc == UK_OK)
        rc = add_ext(leaf, ca, NID_key_usage, "critical,digitalSignature");
    if (rc == UK_OK)
        rc = add_ext(leaf, ca, NID_ext_key_usage, "serverAuth");
    if (rc == UK_OK)
        rc = add_ext(leaf, ca, NID_subject_alt_name, SERVER_SAN);
    if (rc == UK_OK)
        rc = add_ext(leaf, ca, NID_subject_key_identifier, "hash");
    if (rc == UK_OK)
        rc = add_ext(leaf, ca, NID_authority_key_identifier, "keyid:always");
    if (rc == UK_OK)
        rc = sign_cert(leaf, ca_key);
    if (rc != UK_OK) {
        X509_free(leaf);
        return rc;
    }
    *out = leaf;
    return UK_OK;
}

int uk__tls_mint(uk__tls_set *s, time_t now, unsigned days, const char *host)
{
    EVP_PKEY *ca_key = NULL;
    const char *why = NULL;
    int rc = UK_OK;

    memset(s, 0, sizeof(*s));
    ca_key = new_p256_key();
    s->key = new_p256_key();
    if (ca_key == NULL || s->key == NULL) {
        rc = UK__TLS_OSSL_FAIL("EVP_PKEY_Q_keygen");
        goto out;
    }
    rc = make_ca(&s->ca, ca_key, now, days, host);
    if (rc == UK_OK)
        rc = make_leaf(&s->leaf, s->ca, ca_key, s->key, now, days);

    /*
     * The CA key has signed everything it ever will. EVP_PKEY_free clears the private scalar
     * (BN_clear_free) before releasing it; no serialised copy of it was ever made.
     */
    EVP_PKEY_free(ca_key);
    ca_key = NULL;
    if (rc != UK_OK)
        goto out;

    /* Check our own output the way clients will, before anything is replaced on disk. */
    rc = uk__tls_verify_chain(s->ca, s->leaf, now, &why);
    if (rc == UK_E_CHAIN_INVALID) {
        UK_LOG_ERR("the new server certificate does not verify: %s", why);
        rc = UK_E_TLS_ERROR;
    }
    s->key_private_mode = true;
out:
    EVP_PKEY_free(ca_key);
    if (rc != UK_OK)
        uk__tls_set_close(s);
    return rc;
}

int uk__tls_cert_pem(X509 *x, char **out, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    int rc = UK_OK;

    *out = NULL;
    *len = 0;
    if (bio == NULL || PEM_write_bio_X509(bio, x) != 1) {
        rc = UK__TLS_OSSL_FAIL("PEM_write_bio_X509");
        goto out;
    }
    long n = BIO_get_mem_data(bio, &data);
    if (n <= 0) {
        rc = UK__TLS_OSSL_FAIL("BIO_get_mem_data");
        goto out;
    }
    *out = malloc((size_t)n);
    if (*out == NULL) {
        rc = UK_E_NO_MEMORY;
        goto out;
    }
    memcpy(*out, data, (size_t)n);
    *len = (size_t)n;
out:
    BIO_free(bio);
    return rc;
}

/*
 * The key goes through a secure-memory BIO, whose buffer OpenSSL cleanses when it grows and when
 * it is freed, into a uk_secret, which is wiped when freed.
 */
int uk__tls_key_pem(EVP_PKEY *key, uk_secret **out)
{
    BIO *bio = BIO_new(BIO_s_secmem());
    char *data = NULL;
    int rc = UK_OK;

    *out = NULL;
    if (bio == NULL || PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
        rc = UK__TLS_OSSL_FAIL("PEM_write_bio_PrivateKey");
        goto out;
    }
    long n = BIO_get_mem_data(bio, &data);
    if (n <= 0) {
        rc = UK__TLS_OSSL_FAIL("BIO_get_mem_data");
        goto out;
    }
    *out = uk_secret_new(data, (size_t)n);
    if (*out == NULL)
        rc = UK_E_NO_MEMORY;
out:
    BIO_free(bio);
    return rc;
}

bool uk__tls_pem_holds_cert(const char *text, size_t len, X509 *x)
{
    bool found = false;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    if (bio == NULL) {
        (void)UK__TLS_OSSL_FAIL("BIO_new_mem_buf");
        return false;
    }
    X509 *c;
    while (!found && (c = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
        found = X509_cmp(c, x) == 0;
        X509_free(c);
    }
    ERR_clear_error(); /* the end of the PEM stream is queued as an error */
    BIO_free(bio);
    return found;
}
