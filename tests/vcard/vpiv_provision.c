/* Demo provisioning: a demo CA (kept in a directory so several cards and the
 * demo portal share it) and key pairs with certificates in card slots. */
#include "vpiv_int.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct vpiv_demo_ca {
    EVP_PKEY *key;
    X509 *cert;
};

void vpiv_demo_ca_free(vpiv_demo_ca *ca)
{
    if (ca == NULL)
        return;
    EVP_PKEY_free(ca->key);
    X509_free(ca->cert);
    free(ca);
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

static X509_NAME *make_name(const char *cn)
{
    X509_NAME *name = X509_NAME_new();
    if (name == NULL ||
        !X509_NAME_add_entry_by_txt(name, "C", MBSTRING_UTF8, (const unsigned char *)"CN", -1, -1,
                                    0) ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"NHSA", -1, -1,
                                    0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0)) {
        X509_NAME_free(name);
        return NULL;
    }
    return name;
}

/* A certificate skeleton: random serial, validity relative to now. */
static X509 *new_cert(X509_NAME *subject, EVP_PKEY *pub, long nb_days, long na_days)
{
    X509 *cert = X509_new();
    BIGNUM *bn = BN_new();
    ASN1_INTEGER *serial = NULL;
    if (cert == NULL || bn == NULL || !BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
        !X509_set_version(cert, X509_VERSION_3) || !X509_set_serialNumber(cert, serial) ||
        !X509_set_subject_name(cert, subject) ||
        !X509_gmtime_adj(X509_getm_notBefore(cert), nb_days * 86400) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert), na_days * 86400) ||
        !X509_set_pubkey(cert, pub)) {
        X509_free(cert);
        cert = NULL;
    }
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return cert;
}

static int write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
    FILE *f = NULL;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, key ? 0600 : 0644);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int ok =
        key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
    return fclose(f) == 0 && ok ? 0 : -1;
}

int vpiv_demo_ca_new(vpiv_demo_ca **out, const char *dir)
{
    char certpath[4096], keypath[4096];
    snprintf(certpath, sizeof(certpath), "%s/demo-ca.pem", dir);
    snprintf(keypath, sizeof(keypath), "%s/demo-ca.key", dir);
    vpiv_demo_ca *ca = calloc(1, sizeof(*ca));
    if (ca == NULL)
        return -1;
    FILE *fc = fopen(certpath, "re"), *fk = fopen(keypath, "re");
    if (fc && fk) {
        ca->cert = PEM_read_X509(fc, NULL, NULL, NULL);
        ca->key = PEM_read_PrivateKey(fk, NULL, NULL, NULL);
    }
    if (fc)
        fclose(fc);
    if (fk)
        fclose(fk);
    if (ca->cert && ca->key) {
        *out = ca;
        return 0;
    }
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    ca->cert = NULL;
    X509_NAME *name = make_name("ukeyd Demo CA");
    ca->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (name && ca->key)
        ca->cert = new_cert(name, ca->key, -1, 3650);
    X509_NAME_free(name);
    if (ca->cert == NULL || !X509_set_issuer_name(ca->cert, X509_get_subject_name(ca->cert)) ||
        add_ext(ca->cert, ca->cert, NID_basic_constraints, "critical,CA:TRUE") ||
        add_ext(ca->cert, ca->cert, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        add_ext(ca->cert, ca->cert, NID_subject_key_identifier, "hash") ||
        !X509_sign(ca->cert, ca->key, EVP_sha256()) || write_pem(keypath, NULL, ca->key) ||
        write_pem(certpath, ca->cert, NULL)) {
        fprintf(stderr, "vpiv: cannot create the demo CA in %s\n", dir);
        ERR_print_errors_fp(stderr);
        vpiv_demo_ca_free(ca);
        return -1;
    }
    *out = ca;
    return 0;
}

static const char *key_usage(uint8_t slot)
{
    switch (slot) {
    case VPIV_KEY_SIGN:
        return "critical,digitalSignature,nonRepudiation";
    case VPIV_KEY_KEYMGMT:
        return "critical,keyEncipherment,keyAgreement";
    default:
        return "critical,digitalSignature";
    }
}

int vpiv_card_provision_slot(vpiv_card *card, vpiv_demo_ca *ca, uint8_t slot, uint8_t alg,
                             const char *cn, long not_before_days, long not_after_days)
{
    uint32_t objtag = vpiv_slot_object(slot);
    struct vpiv_key *key = objtag ? vpiv_key_generate(alg) : NULL;
    if (key == NULL)
        return -1;
    int rc = -1;
    uint8_t *obj = NULL;
    unsigned char *der = NULL;
    X509_NAME *name = make_name(cn);
    X509 *cert = name ? new_cert(name, key->pkey, not_before_days, not_after_days) : NULL;
    if (cert == NULL || !X509_set_issuer_name(cert, X509_get_subject_name(ca->cert)) ||
        add_ext(cert, ca->cert, NID_basic_constraints, "critical,CA:FALSE") ||
        add_ext(cert, ca->cert, NID_key_usage, key_usage(slot)) ||
        add_ext(cert, ca->cert, NID_subject_key_identifier, "hash") ||
        add_ext(cert, ca->cert, NID_authority_key_identifier, "keyid") ||
        !X509_sign(cert, ca->key, EVP_sha256()))
        goto out;
    int len = i2d_X509(cert, &der);
    if (len <= 0 || (obj = malloc((size_t)len + 16)) == NULL)
        goto out;
    vpiv_buf b;
    vpiv_buf_init(&b, obj, (size_t)len + 16);
    vpiv_tlv_put(&b, 0x70, der, (size_t)len);
    vpiv_tlv_put(&b, 0x71, "\x00", 1);
    vpiv_tlv_put(&b, 0xFE, NULL, 0);
    if (b.overflow || vpiv_object_set(card, objtag, obj, b.len) != 0)
        goto out;
    key->pin_policy = VPIV_PIN_POLICY_DEFAULT;
    key->touch_policy = 1;
    /* Same default PIN policy as a key generated on the card. */
    key->pin_policy = slot == VPIV_KEY_SIGN       ? VPIV_PIN_POLICY_ALWAYS
                      : slot == VPIV_KEY_CARDAUTH ? VPIV_PIN_POLICY_NEVER
                                                  : VPIV_PIN_POLICY_ONCE;
    vpiv_key_free(card->keys[slot]);
    card->keys[slot] = key;
    key = NULL;
    card->dirty = true;
    rc = 0;
out:
    if (rc != 0)
        ERR_print_errors_fp(stderr);
    OPENSSL_free(der);
    free(obj);
    X509_free(cert);
    X509_NAME_free(name);
    vpiv_key_free(key);
    return rc;
}
