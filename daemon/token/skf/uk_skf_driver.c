/*
 * uk_skf_driver.c - the "skf" driver (uk_driver.h): an SKF device -> its application (the user
 * PIN) -> containers, each with a signing and an encryption key pair and certificate
 * (docs/drivers.md, "SKF driver").
 *
 * Key ids (UK_KEY_ID_MAX 16, so at most 15 characters): "<c>/sign" and "<c>/enc" for the
 * signing and the encryption pair of the container named c, where c is the container's name when
 * it has 1 to 10 characters of [A-Za-z0-9._-], else "#" followed by the first 9 hex digits of the
 * SHA-256 of the name (vendors name containers with GUIDs; "#" never starts a plain name).
 * Lookups compute the id of every container, so both forms need no table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uk_crypto.h"
#include "uk_driver_md.h"
#include "uk_driver_tlv.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_skf_abi.h" /* SAR_ codes and container types (width-free) */
#include "uk_skf_int.h"

/* Certificates reported per token (two per container). */
#define CERTS_MAX 32u
/* The plain form of a container in a key id: at most this many characters. */
#define PLAIN_MAX 10u

typedef struct skf_state {
    uk_skf_module *mod; /* a reference of our own */
    char name[UK_SOURCE_NAME_MAX];
    void *dev, *app;
} skf_state;

static int probe(uk_card *card)
{
    uk_skf_module *m;
    const char *dev;
    return uk_skf_card_dev(card, &m, &dev) ? UK_OK : UK_E_NOT_SUPPORTED;
}

static void close_state(void *state)
{
    skf_state *st = state;
    if (st == NULL)
        return;
    if (st->app != NULL)
        (void)UK__SKF(st->mod, close_app, st->app);
    if (st->dev != NULL)
        (void)UK__SKF(st->mod, disconnect_dev, st->dev);
    uk_skf_module_put(st->mod);
    free(st);
}

#define SKF_ERR(st, rv, call) uk__skf_err((rv), (call), (st)->name)

static int open_state(uk_card *card, const uk_driver_options *opt, void **state,
                      uk_token_identity *id)
{
    (void)opt;
    uk_skf_module *m;
    const char *dev;
    if (!uk_skf_card_dev(card, &m, &dev))
        return UK_E_NOT_SUPPORTED;
    skf_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return UK_E_NO_MEMORY;
    uk__skf_module_ref(m);
    st->mod = m;
    snprintf(st->name, sizeof(st->name), "%s", uk_card_reader(card));
    int rc;
    uint32_t rv = UK__SKF(m, connect_dev, dev, &st->dev);
    if (rv != SAR_OK) {
        rc = SKF_ERR(st, rv, "SKF_ConnectDev");
        goto fail;
    }
    uk__skf_devinfo di;
    rv = UK__SKF(m, dev_info, st->dev, &di);
    if (rv != SAR_OK) {
        rc = SKF_ERR(st, rv, "SKF_GetDevInfo");
        goto fail;
    }
    /* The device's first application holds the user's keys: ukeyd uses that one. */
    char *apps = NULL;
    size_t apps_len = 0;
    rv = UK__SKF(m, enum_app, st->dev, &apps, &apps_len);
    if (rv != SAR_OK) {
        rc = SKF_ERR(st, rv, "SKF_EnumApplication");
        goto fail;
    }
    size_t pos = 0;
    const char *app = uk__skf_next_name(apps, apps_len, &pos);
    if (app == NULL) {
        UK_LOG_INFO("'%s': the device has no application", st->name);
        free(apps);
        rc = UK_E_KEY_NOT_FOUND;
        goto fail;
    }
    rv = UK__SKF(m, open_app, st->dev, app, &st->app);
    free(apps);
    if (rv != SAR_OK) {
        rc = SKF_ERR(st, rv, "SKF_OpenApplication");
        goto fail;
    }
    memset(id, 0, sizeof(*id));
    snprintf(id->serial, sizeof(id->serial), "%.31s", di.serial); /* 32 bytes: cut by one */
    snprintf(id->label, sizeof(id->label), "%s", di.label[0] != '\0' ? di.label : dev);
    /* "SKF <manufacturer>", the manufacturer cut to what fits. */
    memcpy(id->model, "SKF", 4);
    if (di.manufacturer[0] != '\0') {
        di.manufacturer[sizeof(id->model) - 5] = '\0';
        id->model[3] = ' ';
        memcpy(id->model + 4, di.manufacturer, strlen(di.manufacturer) + 1);
    }
    *state = st;
    return UK_OK;
fail:
    close_state(st);
    return rc;
}

/* ---- containers and key ids ---------------------------------------------------- */

static bool plain_name(const char *c)
{
    size_t n = strlen(c);
    if (n == 0 || n > PLAIN_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = c[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* The key id of a container's signing or encryption pair (docs/drivers.md, "SKF driver"). */
static int key_id_of(const char *container, bool sign, char out[UK_KEY_ID_MAX])
{
    const char *suffix = sign ? "sign" : "enc";
    if (plain_name(container)) {
        snprintf(out, UK_KEY_ID_MAX, "%s/%s", container, suffix);
        return UK_OK;
    }
    uint8_t h[32];
    int rc = uk_crypto_digest(UK_CRYPTO_SHA256, (const uint8_t *)container, strlen(container), h,
                              sizeof(h));
    if (rc != UK_OK)
        return rc;
    snprintf(out, UK_KEY_ID_MAX, "#%02x%02x%02x%02x%01x/%s", h[0], h[1], h[2], h[3], h[4] >> 4,
             suffix);
    return UK_OK;
}

/* The name (into name) of the container whose sign or enc key id is key_id; *sign tells which
 * pair. KEY_NOT_FOUND when no container has it. */
static int find_container(skf_state *st, const char *key_id, char name[UK_SKF_NAME_MAX], bool *sign)
{
    const char *slash = strrchr(key_id, '/');
    if (slash == NULL || (strcmp(slash, "/sign") != 0 && strcmp(slash, "/enc") != 0))
        return UK_E_KEY_NOT_FOUND;
    *sign = strcmp(slash, "/sign") == 0;
    char *list = NULL;
    size_t len = 0;
    uint32_t rv = UK__SKF(st->mod, enum_cont, st->app, &list, &len);
    if (rv != SAR_OK)
        return SKF_ERR(st, rv, "SKF_EnumContainer");
    int rc = UK_E_KEY_NOT_FOUND;
    size_t pos = 0;
    for (const char *c; (c = uk__skf_next_name(list, len, &pos)) != NULL;) {
        char id[UK_KEY_ID_MAX];
        if (strlen(c) < UK_SKF_NAME_MAX && key_id_of(c, *sign, id) == UK_OK &&
            strcmp(id, key_id) == 0) {
            strcpy(name, c);
            rc = UK_OK;
            break;
        }
    }
    free(list);
    return rc;
}

/* Opens the container whose sign or enc key id is key_id. KEY_NOT_FOUND when none has it. */
static int open_by_key_id(skf_state *st, const char *key_id, void **cont, bool *sign)
{
    *cont = NULL;
    char name[UK_SKF_NAME_MAX];
    int rc = find_container(st, key_id, name, sign);
    if (rc != UK_OK)
        return rc;
    uint32_t rv = UK__SKF(st->mod, open_cont, st->app, name, cont);
    return rv == SAR_OK ? UK_OK : SKF_ERR(st, rv, "SKF_OpenContainer");
}

/* open_by_key_id, and the container's type (UK_SKF_CONTAINER_*); nothing left open on error. */
static int open_typed(skf_state *st, const char *key_id, void **cont, bool *sign, unsigned *type)
{
    int rc = open_by_key_id(st, key_id, cont, sign);
    if (rc != UK_OK)
        return rc;
    uint32_t rv = UK__SKF(st->mod, cont_type, *cont, type);
    if (rv == SAR_OK)
        return UK_OK;
    (void)UK__SKF(st->mod, close_cont, *cont);
    *cont = NULL;
    return SKF_ERR(st, rv, "SKF_GetContainerType");
}

static int add_cert(skf_state *st, void *cont, const char *c, bool sign, uk_token_cert *certs,
                    size_t *n)
{
    uint8_t *der = NULL;
    size_t len = 0;
    uint32_t rv = UK__SKF(st->mod, export_cert, cont, sign, &der, &len);
    if (rv == SAR_CERTNOTFOUNTERR || rv == SAR_FILE_NOT_EXIST || rv == SAR_KEYNOTFOUNTERR)
        return UK_OK; /* no certificate of that kind in the container */
    uk_token_cert *tc = &certs[*n];
    memset(tc, 0, sizeof(*tc));
    int rc = key_id_of(c, sign, tc->key_id);
    if (rc != UK_OK) {
        free(der);
        return rc;
    }
    if (rv != SAR_OK) {
        tc->error = SKF_ERR(st, rv, "SKF_ExportCertificate");
        if (tc->error == UK_E_CARD_REMOVED || tc->error == UK_E_CARD_RESET)
            return tc->error;
        /* CARD_ERROR: the module failed to read it (no telling what it holds); anything else it
         * says of the object: a broken certificate. */
        if (tc->error != UK_E_CARD_ERROR)
            tc->error = UK_E_CERT_INVALID;
    } else if (uk_crypto_cert_key_info(der, len, &(uk_crypto_key_info){0}) != UK_OK) {
        free(der);
        tc->error = UK_E_CERT_INVALID; /* not exactly one certificate */
    } else {
        tc->der = der;
        tc->der_len = len;
    }
    (*n)++;
    return UK_OK;
}

static int list_certs(void *state, uk_card *card, uk_token_cert **out, size_t *n_out)
{
    (void)card;
    skf_state *st = state;
    *out = NULL;
    *n_out = 0;
    char *list = NULL;
    size_t len = 0;
    uint32_t rv = UK__SKF(st->mod, enum_cont, st->app, &list, &len);
    if (rv != SAR_OK)
        return SKF_ERR(st, rv, "SKF_EnumContainer");
    uk_token_cert *certs = calloc(CERTS_MAX, sizeof(*certs));
    if (certs == NULL) {
        free(list);
        return UK_E_NO_MEMORY;
    }
    size_t n = 0, pos = 0;
    int rc = UK_OK;
    for (const char *c; rc == UK_OK && (c = uk__skf_next_name(list, len, &pos)) != NULL;) {
        if (n + 2 > CERTS_MAX) {
            UK_LOG_WARN("'%s': more than %u certificates; the rest are not listed", st->name,
                        CERTS_MAX);
            break;
        }
        void *cont = NULL;
        rv = UK__SKF(st->mod, open_cont, st->app, c, &cont);
        if (rv != SAR_OK) {
            rc = SKF_ERR(st, rv, "SKF_OpenContainer");
            if (rc == UK_E_CARD_REMOVED || rc == UK_E_CARD_RESET)
                continue;
            /* One container the module cannot open: an entry that says so (its certificates
             * are unknown, not absent), and the others still count. */
            uk_token_cert *tc = &certs[n];
            memset(tc, 0, sizeof(*tc));
            tc->error = rc == UK_E_CARD_ERROR ? rc : UK_E_CERT_INVALID;
            rc = key_id_of(c, true, tc->key_id);
            if (rc == UK_OK)
                n++;
            continue;
        }
        rc = add_cert(st, cont, c, true, certs, &n);
        if (rc == UK_OK)
            rc = add_cert(st, cont, c, false, certs, &n);
        (void)UK__SKF(st->mod, close_cont, cont);
    }
    free(list);
    if (rc != UK_OK) {
        uk_token_certs_free(certs, n);
        return rc;
    }
    *out = certs;
    *n_out = n;
    return UK_OK;
}

/* ---- PIN ------------------------------------------------------------------------ */

static int pin_status(void *state, uk_card *card, int *retries_left)
{
    (void)card;
    skf_state *st = state;
    unsigned max = 0, left = 0;
    *retries_left = -1;
    uint32_t rv = UK__SKF(st->mod, pin_info, st->app, &max, &left);
    if (rv == SAR_NOTSUPPORTYETERR)
        return UK_OK; /* the module does not tell: unknown */
    if (rv != SAR_OK)
        return SKF_ERR(st, rv, "SKF_GetPINInfo");
    *retries_left = (int)left;
    return UK_OK;
}

static int verify_pin(void *state, uk_card *card, const uk_secret *pin, int *retries_left)
{
    skf_state *st = state;
    int before = -1;
    /* A locked PIN is answered without a try (some modules count one even then). */
    if (pin_status(state, card, &before) == UK_OK && before == 0) {
        *retries_left = 0;
        return UK_E_PIN_LOCKED;
    }
    unsigned left = 0;
    uint32_t rv = UK__SKF(st->mod, verify_pin, st->app, uk_secret_get0_data(pin),
                          uk_secret_get0_len(pin), &left);
    int rc = SKF_ERR(st, rv, "SKF_VerifyPIN");
    if (rc == UK_E_PIN_INCORRECT) {
        *retries_left = (int)left;
        if (left == 0)
            rc = UK_E_PIN_LOCKED;
    } else if (rc == UK_E_PIN_LOCKED) {
        *retries_left = 0;
    }
    return rc;
}

static void logout(void *state, uk_card *card)
{
    (void)card;
    skf_state *st = state;
    uint32_t rv = UK__SKF(st->mod, clear_secure_state, st->app);
    if (rv != SAR_OK)
        (void)SKF_ERR(st, rv, "SKF_ClearSecureState");
}

/* ---- signing ---------------------------------------------------------------------- */

/* Opens the container of req's key and checks that it can make req's signature. */
static int open_for_sign(skf_state *st, const uk_sign_req *req, void **cont, unsigned *type)
{
    bool sign = false;
    int rc = open_typed(st, req->key_id, cont, &sign, type);
    if (rc != UK_OK)
        return rc;
    if (!sign)
        rc = UK_E_NOT_SUPPORTED; /* SKF signs with a container's signing key only */
    else if (*type == UK_SKF_CONTAINER_ECC)
        rc = req->scheme == UK_SIG_SM2 && req->hash == UK_HASH_SM3 && req->digest_len == 32
                 ? UK_OK
                 : UK_E_NOT_SUPPORTED;
    else if (*type == UK_SKF_CONTAINER_RSA)
        rc = req->scheme == UK_SIG_RSA_PKCS1 && uk_driver_md(req->hash, &(uk_crypto_md){0})
                 ? UK_OK
                 : UK_E_NOT_SUPPORTED;
    else
        rc = UK_E_KEY_NOT_FOUND; /* an empty container */
    if (rc != UK_OK) {
        (void)UK__SKF(st->mod, close_cont, *cont);
        *cont = NULL;
    }
    return rc;
}

static int check_sign(void *state, uk_card *card, const uk_sign_req *req)
{
    (void)card;
    skf_state *st = state;
    void *cont = NULL;
    unsigned type = 0;
    int rc = open_for_sign(st, req, &cont, &type);
    if (rc == UK_OK)
        (void)UK__SKF(st->mod, close_cont, cont);
    return rc;
}

static int sign(void *state, uk_card *card, const uk_sign_req *req, uint8_t *sig, size_t cap,
                size_t *sig_len)
{
    (void)card;
    skf_state *st = state;
    void *cont = NULL;
    unsigned type = 0;
    int rc = open_for_sign(st, req, &cont, &type);
    if (rc != UK_OK)
        return rc;
    uint32_t rv;
    if (type == UK_SKF_CONTAINER_ECC) {
        /* The module signs e = SM3(Z || M) as given: the caller computed it with the key's Z. */
        uint8_t rs[64];
        rv = UK__SKF(st->mod, ecc_sign, cont, req->digest, rs, rs + 32);
        rc = rv == SAR_OK ? uk_crypto_ecdsa_raw_to_der(rs, sizeof(rs), sig, cap, sig_len)
                          : SKF_ERR(st, rv, "SKF_ECCSignData");
    } else {
        uk_crypto_md md = UK_CRYPTO_SHA256;
        uint8_t di[96];
        size_t di_len = 0;
        (void)uk_driver_md(req->hash, &md); /* open_for_sign checked it */
        rc = uk_crypto_digest_info(md, req->digest, req->digest_len, di, sizeof(di), &di_len);
        if (rc == UK_OK) {
            *sig_len = cap;
            rv = UK__SKF(st->mod, rsa_sign, cont, di, di_len, sig, sig_len);
            rc = rv == SAR_OK ? UK_OK : SKF_ERR(st, rv, "SKF_RSASignData");
        }
    }
    (void)UK__SKF(st->mod, close_cont, cont);
    return rc;
}

/* ---- renewal: a new key pair in a new container ------------------------------------ */

/* "uk" and 8 random hex digits: a plain container name (its key id is "<name>/sign"). */
static int find_staging_slot(void *state, uk_card *card, char key_id_out[UK_KEY_ID_MAX])
{
    (void)card;
    skf_state *st = state;
    for (int tries = 0; tries < 8; tries++) {
        uint8_t r[4];
        int rc = uk_crypto_random(r, sizeof(r));
        if (rc != UK_OK)
            return rc;
        char id[UK_KEY_ID_MAX], name[UK_SKF_NAME_MAX];
        snprintf(id, sizeof(id), "uk%02x%02x%02x%02x/sign", r[0], r[1], r[2], r[3]);
        bool sign = false;
        rc = find_container(st, id, name, &sign);
        if (rc == UK_E_KEY_NOT_FOUND) {
            memcpy(key_id_out, id, sizeof(id));
            return UK_OK;
        }
        if (rc != UK_OK)
            return rc;
    }
    return UK_E_NO_STAGING_SLOT;
}

/* SPKI DER of the signing (or encryption) public key of an open container of type type. */
static int spki_of(skf_state *st, void *cont, unsigned type, bool sign, uint8_t **spki,
                   size_t *spki_len)
{
    uint32_t rv;
    if (type == UK_SKF_CONTAINER_ECC) {
        uk__skf_ecc_pub pub;
        rv = UK__SKF(st->mod, export_ecc_pub, cont, sign, &pub);
        if (rv != SAR_OK)
            return SKF_ERR(st, rv, "SKF_ExportPublicKey");
        uint8_t pt[65] = {0x04};
        memcpy(pt + 1, pub.x, 32);
        memcpy(pt + 33, pub.y, 32);
        return uk_crypto_spki_from_ec(UK_CRYPTO_CURVE_SM2, pt, sizeof(pt), spki, spki_len);
    }
    if (type == UK_SKF_CONTAINER_RSA) {
        uint8_t n[256], e[4];
        size_t n_len = 0;
        rv = UK__SKF(st->mod, export_rsa_pub, cont, sign, n, &n_len, e);
        if (rv != SAR_OK)
            return SKF_ERR(st, rv, "SKF_ExportPublicKey");
        return uk_crypto_spki_from_rsa(n, n_len, e, sizeof(e), spki, spki_len);
    }
    return UK_E_KEY_NOT_FOUND; /* an empty container */
}

/*
 * A new signing key pair in a NEW container named by key_id ("<name>/sign", a plain name from
 * find_staging_slot): never into an existing container, so the working pair cannot be touched.
 * SM2 (SGD_SM2_1) or RSA-2048; the container goes again when the key cannot be made.
 */
static int generate_key(void *state, uk_card *card, const char *key_id, uk_key_alg alg,
                        uint8_t **spki, size_t *spki_len)
{
    (void)card;
    skf_state *st = state;
    *spki = NULL;
    *spki_len = 0;
    const char *slash = strrchr(key_id, '/');
    char name[UK_SKF_NAME_MAX];
    size_t n = slash != NULL ? (size_t)(slash - key_id) : 0;
    if (n == 0 || n >= sizeof(name) || strcmp(slash, "/sign") != 0)
        return UK_E_INVALID_PARAMS;
    memcpy(name, key_id, n);
    name[n] = '\0';
    if (!plain_name(name))
        return UK_E_INVALID_PARAMS;
    if (alg != UK_KEY_SM2 && alg != UK_KEY_RSA2048)
        return UK_E_NOT_SUPPORTED;
    char existing[UK_SKF_NAME_MAX];
    bool sign = false;
    int rc = find_container(st, key_id, existing, &sign);
    if (rc == UK_OK) {
        UK_LOG_WARN("'%s': container %s exists; a new key goes into a new container only", st->name,
                    name);
        return UK_E_INVALID_PARAMS;
    }
    if (rc != UK_E_KEY_NOT_FOUND)
        return rc;
    void *cont = NULL;
    uint32_t rv = UK__SKF(st->mod, create_cont, st->app, name, &cont);
    if (rv != SAR_OK)
        return SKF_ERR(st, rv, "SKF_CreateContainer");
    if (alg == UK_KEY_SM2) {
        uk__skf_ecc_pub pub;
        rv = UK__SKF(st->mod, gen_ecc, cont, &pub);
        rc = rv != SAR_OK ? SKF_ERR(st, rv, "SKF_GenECCKeyPair") : UK_OK;
    } else {
        uint8_t mod[256], e[4];
        size_t mod_len = 0;
        rv = UK__SKF(st->mod, gen_rsa, cont, 2048, mod, &mod_len, e);
        rc = rv != SAR_OK ? SKF_ERR(st, rv, "SKF_GenRSAKeyPair") : UK_OK;
    }
    /* The SPKI as the module reports the key now (not as generation said): what signs later. */
    if (rc == UK_OK)
        rc = spki_of(st, cont, alg == UK_KEY_SM2 ? UK_SKF_CONTAINER_ECC : UK_SKF_CONTAINER_RSA,
                     true, spki, spki_len);
    (void)UK__SKF(st->mod, close_cont, cont);
    if (rc != UK_OK) {
        rv = UK__SKF(st->mod, delete_cont, st->app, name);
        if (rv != SAR_OK)
            (void)SKF_ERR(st, rv, "SKF_DeleteContainer");
    }
    return rc;
}

static int get_public_key(void *state, uk_card *card, const char *key_id, uint8_t **spki,
                          size_t *spki_len)
{
    (void)card;
    skf_state *st = state;
    *spki = NULL;
    *spki_len = 0;
    void *cont = NULL;
    bool sign = false;
    unsigned type = 0;
    int rc = open_typed(st, key_id, &cont, &sign, &type);
    if (rc != UK_OK)
        return rc;
    rc = spki_of(st, cont, type, sign, spki, spki_len);
    (void)UK__SKF(st->mod, close_cont, cont);
    return rc;
}

/* The certificate of key_id's pair, read back and compared byte for byte. */
static int put_cert(void *state, uk_card *card, const char *key_id, const uint8_t *der, size_t len)
{
    (void)card;
    skf_state *st = state;
    if (uk_crypto_cert_key_info(der, len, &(uk_crypto_key_info){0}) != UK_OK)
        return UK_E_CERT_INVALID;
    void *cont = NULL;
    bool sign = false;
    int rc = open_by_key_id(st, key_id, &cont, &sign);
    if (rc != UK_OK)
        return rc;
    uint32_t rv = UK__SKF(st->mod, import_cert, cont, sign, der, len);
    if (rv != SAR_OK) {
        rc = SKF_ERR(st, rv, "SKF_ImportCertificate");
    } else {
        uint8_t *back = NULL;
        size_t back_len = 0;
        rv = UK__SKF(st->mod, export_cert, cont, sign, &back, &back_len);
        if (rv != SAR_OK) {
            rc = SKF_ERR(st, rv, "SKF_ExportCertificate");
        } else if (back_len != len || memcmp(back, der, len) != 0) {
            UK_LOG_WARN("'%s': the certificate of %s reads back differently", st->name, key_id);
            rc = UK_E_CARD_ERROR;
        }
        free(back);
    }
    (void)UK__SKF(st->mod, close_cont, cont);
    return rc;
}

/* On SKF a key goes with its container: both pairs and their certificates. */
static int delete_key(void *state, uk_card *card, const char *key_id)
{
    (void)card;
    skf_state *st = state;
    char name[UK_SKF_NAME_MAX];
    bool sign = false;
    int rc = find_container(st, key_id, name, &sign);
    if (rc != UK_OK)
        return rc;
    uint32_t rv = UK__SKF(st->mod, delete_cont, st->app, name);
    return rv == SAR_OK ? UK_OK : SKF_ERR(st, rv, "SKF_DeleteContainer");
}

/*
 * SKF has no call that empties a certificate: a certificate goes with its container
 * (delete_key). So a certificate whose container is gone is deleted; one whose container is
 * still there cannot be (NOT_SUPPORTED, nothing sent).
 */
static int delete_cert(void *state, uk_card *card, const char *key_id)
{
    (void)card;
    skf_state *st = state;
    char name[UK_SKF_NAME_MAX];
    bool sign = false;
    int rc = find_container(st, key_id, name, &sign);
    return rc == UK_E_KEY_NOT_FOUND ? UK_OK : rc == UK_OK ? UK_E_NOT_SUPPORTED : rc;
}

static int get_caps(void *state, uk_card *card, unsigned *caps)
{
    (void)state;
    (void)card;
    /* A renewed key stays in its new container and the record maps the role to it (nothing
     * moves keys between containers); container names are free-form (ANY_KEY_ID); the module
     * reports a container's public key without its certificate (KEY_METADATA); keys are
     * deleted with their container, which needs the user PIN (DELETE_NEEDS_PIN). */
    *caps = UK_TOKEN_CAP_GENERATE | UK_TOKEN_CAP_PUT_CERT | UK_TOKEN_CAP_DELETE_KEY |
            UK_TOKEN_CAP_KEY_METADATA | UK_TOKEN_CAP_STAGING | UK_TOKEN_CAP_RECORD |
            UK_TOKEN_CAP_ANY_KEY_ID | UK_TOKEN_CAP_DELETE_NEEDS_PIN;
    return UK_OK;
}

/* ---- the card record: two files of the application ------------------------------------ */

/*
 * The record lives in one of two files of the application, "ukeyd-record-a" and "-b", each
 * RECORD_FILE bytes: "UKR1", a 4-byte big-endian generation, a 2-byte big-endian length, the
 * record, zeros, and at the end the SHA-256 of everything before the zeros. A write goes to the
 * file that does not hold the current record, with the next generation: a write torn by a pulled
 * key leaves the other file's record whole. A file of zeros (created, never written) holds none.
 * Anyone may read and write the files (SECURE_ANYONE_ACCOUNT): recovery runs without the PIN,
 * and the record holds no secret; creating them needs the PIN (the first renewal has it).
 */
#define RECORD_MAGIC "UKR1"
#define RECORD_HEAD  10u
#define RECORD_FILE  (RECORD_HEAD + UK_DRIVER_RECORD_MAX + 32u)
static const char *const record_files[2] = {"ukeyd-record-a", "ukeyd-record-b"};

typedef struct record_file {
    bool exists, valid, blank;
    uint32_t gen;
    size_t len;
    uint8_t buf[RECORD_FILE];
} record_file;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int record_load(skf_state *st, const char *name, record_file *f)
{
    memset(f, 0, sizeof(*f));
    size_t got = sizeof(f->buf);
    uint32_t rv = UK__SKF(st->mod, read_file, st->app, name, 0, f->buf, &got);
    if (rv == SAR_FILE_NOT_EXIST)
        return UK_OK;
    if (rv != SAR_OK)
        return SKF_ERR(st, rv, "SKF_ReadFile");
    f->exists = true;
    f->blank = true;
    for (size_t i = 0; i < got; i++)
        if (f->buf[i] != 0)
            f->blank = false;
    if (f->blank || got != RECORD_FILE || memcmp(f->buf, RECORD_MAGIC, 4) != 0)
        return UK_OK;
    size_t len = (size_t)f->buf[8] << 8 | f->buf[9];
    if (len > UK_DRIVER_RECORD_MAX)
        return UK_OK;
    uint8_t h[32];
    int rc = uk_crypto_digest(UK_CRYPTO_SHA256, f->buf, RECORD_HEAD + len, h, sizeof(h));
    if (rc != UK_OK)
        return rc;
    if (memcmp(h, f->buf + RECORD_FILE - 32, 32) != 0)
        return UK_OK; /* torn: the other file holds the record */
    f->valid = true;
    f->gen = be32(f->buf + 4);
    f->len = len;
    return UK_OK;
}

/* Both files; *cur: the index of the one holding the record, -1 for none. */
static int record_both(skf_state *st, record_file f[2], int *cur)
{
    *cur = -1;
    for (int i = 0; i < 2; i++) {
        int rc = record_load(st, record_files[i], &f[i]);
        if (rc != UK_OK)
            return rc;
        if (f[i].valid && (*cur < 0 || f[i].gen > f[*cur].gen))
            *cur = i;
    }
    return UK_OK;
}

static int read_record(void *state, uk_card *card, uint8_t *buf, size_t cap, size_t *len)
{
    (void)card;
    skf_state *st = state;
    *len = 0;
    record_file *f = malloc(2 * sizeof(*f));
    if (f == NULL)
        return UK_E_NO_MEMORY;
    int cur = -1;
    int rc = record_both(st, f, &cur);
    if (rc == UK_OK && cur < 0) {
        /* No record: no file, or only files never written. A file with anything else in it
         * was not written by ukeyd (or is torn with no good copy): not taken for "empty". */
        for (int i = 0; i < 2; i++)
            if (f[i].exists && !f[i].blank && !f[i].valid) {
                UK_LOG_WARN("'%s': %s does not hold a ukeyd record", st->name, record_files[i]);
                rc = UK_E_CARD_ERROR;
            }
    } else if (rc == UK_OK) {
        if (f[cur].len > cap)
            rc = UK_E_LIMIT_EXCEEDED;
        else if (f[cur].len > 0)
            memcpy(buf, f[cur].buf + RECORD_HEAD, f[cur].len);
        if (rc == UK_OK)
            *len = f[cur].len;
    }
    free(f);
    return rc;
}

static int write_record(void *state, uk_card *card, const uint8_t *blob, size_t len)
{
    (void)card;
    skf_state *st = state;
    if (len > UK_DRIVER_RECORD_MAX)
        return UK_E_LIMIT_EXCEEDED;
    if (len > 0 && !uk__driver_tlv_sequence(blob, len))
        return UK_E_INVALID_PARAMS;
    record_file *f = malloc(2 * sizeof(*f));
    if (f == NULL)
        return UK_E_NO_MEMORY;
    int cur = -1;
    int rc = record_both(st, f, &cur);
    /* Both files exist before the first record is written: later writes, recovery's without
     * the PIN among them, never need to create one. */
    for (int i = 0; rc == UK_OK && i < 2; i++) {
        if (f[i].exists)
            continue;
        uint32_t rv = UK__SKF(st->mod, create_file, st->app, record_files[i], RECORD_FILE,
                              SECURE_ANYONE_ACCOUNT, SECURE_ANYONE_ACCOUNT);
        if (rv == SAR_NOTSUPPORTYETERR || rv == SAR_NO_ROOM)
            UK_LOG_WARN("'%s': the device cannot store ukeyd's record (SAR 0x%08X)", st->name, rv);
        rc = rv == SAR_NOTSUPPORTYETERR || rv == SAR_NO_ROOM ? UK_E_NOT_SUPPORTED
             : rv == SAR_OK                                  ? UK_OK
                                                             : SKF_ERR(st, rv, "SKF_CreateFile");
    }
    if (rc == UK_OK) {
        int to = cur == 0 ? 1 : 0;
        uint32_t gen = cur >= 0 ? f[cur].gen + 1 : 1;
        uint8_t *b = f[to].buf;
        memset(b, 0, RECORD_FILE);
        memcpy(b, RECORD_MAGIC, 4);
        b[4] = (uint8_t)(gen >> 24);
        b[5] = (uint8_t)(gen >> 16);
        b[6] = (uint8_t)(gen >> 8);
        b[7] = (uint8_t)gen;
        b[8] = (uint8_t)(len >> 8);
        b[9] = (uint8_t)len;
        if (len > 0)
            memcpy(b + RECORD_HEAD, blob, len);
        rc = uk_crypto_digest(UK_CRYPTO_SHA256, b, RECORD_HEAD + len, b + RECORD_FILE - 32, 32);
        if (rc == UK_OK) {
            uint32_t rv =
                UK__SKF(st->mod, write_file, st->app, record_files[to], 0, b, RECORD_FILE);
            rc = rv == SAR_OK ? UK_OK : SKF_ERR(st, rv, "SKF_WriteFile");
        }
    }
    free(f);
    return rc;
}

/* ---- dual certificates: the encryption pair from a key-management centre ------------- */

/* Offsets of ENVELOPEDKEYBLOB in its standard byte form (4-byte little-endian ULONG). */
enum {
    ENV_VERSION = 0,
    ENV_SYMM = 4,
    ENV_BITS = 8,
    ENV_PRIV = 12,
    ENV_PUB_BITS = 76,
    ENV_PUB_X = 80,
    ENV_PUB_Y = 144,
    ENV_C1X = 208,
    ENV_C1Y = 272,
    ENV_C3 = 336,
    ENV_C2_LEN = 368,
    ENV_C2 = 372,
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A 256-bit value right-aligned in a 64-byte field. */
static bool field256(const uint8_t *f, uint8_t out[32])
{
    for (size_t i = 0; i < 32; i++) {
        if (f[i] != 0)
            return false;
    }
    memcpy(out, f + 32, 32);
    return true;
}

/* The standard byte form into env; false when it does not parse (lengths, alignment). */
static bool parse_envelope(const uint8_t *b, size_t len, uk__skf_envelope *env)
{
    memset(env, 0, sizeof(*env));
    if (len < ENV_C2)
        return false;
    env->c2_len = le32(b + ENV_C2_LEN);
    if (env->c2_len == 0 || env->c2_len > sizeof(env->c2) || len != ENV_C2 + env->c2_len ||
        le32(b + ENV_PUB_BITS) != 256)
        return false;
    env->version = le32(b + ENV_VERSION);
    env->symm_alg = le32(b + ENV_SYMM);
    env->bits = le32(b + ENV_BITS);
    memcpy(env->enc_priv, b + ENV_PRIV, sizeof(env->enc_priv));
    memcpy(env->c3, b + ENV_C3, sizeof(env->c3));
    memcpy(env->c2, b + ENV_C2, env->c2_len);
    return field256(b + ENV_PUB_X, env->pub.x) && field256(b + ENV_PUB_Y, env->pub.y) &&
           field256(b + ENV_C1X, env->c1x) && field256(b + ENV_C1Y, env->c1y);
}

static int import_enveloped_key(void *state, uk_card *card, const char *key_id, const uint8_t *blob,
                                size_t len)
{
    (void)card;
    skf_state *st = state;
    uk__skf_envelope env;
    if (blob == NULL || !parse_envelope(blob, len, &env)) {
        UK_LOG_INFO("'%s': the enveloped key (%zu bytes) is not an ENVELOPEDKEYBLOB", st->name,
                    len);
        return UK_E_ENVELOPE_INVALID;
    }
    void *cont = NULL;
    bool sign = false;
    int rc = open_by_key_id(st, key_id, &cont, &sign);
    if (rc != UK_OK)
        return rc;
    uint32_t rv = UK__SKF(st->mod, import_ecc_keypair, cont, &env);
    rc = SKF_ERR(st, rv, "SKF_ImportECCKeyPair");
    /* What the module says of the blob itself: wrong recipient, corrupted, unknown cipher. */
    if (rv == SAR_INDATAERR || rv == SAR_INVALIDPARAMERR || rv == SAR_INDATALENERR ||
        rv == SAR_MODULUSLENERR || rv == SAR_NOTSUPPORTYETERR)
        rc = UK_E_ENVELOPE_INVALID;
    (void)UK__SKF(st->mod, close_cont, cont);
    return rc;
}

/* ---- digital envelopes opened on the key (decrypt.cms) ------------------------------ */

/* Opens key_id's container when it can open envelopes: SKF_ImportSessionKey unwraps with an SM2
 * container's encryption pair only (a signing key, or an RSA container, is KEY_NOT_FOUND). */
static int open_for_envelope(skf_state *st, const char *key_id, void **cont)
{
    bool sign = false;
    unsigned type = 0;
    int rc = open_typed(st, key_id, cont, &sign, &type);
    if (rc != UK_OK || (!sign && type == UK_SKF_CONTAINER_ECC))
        return rc;
    UK_LOG_DEBUG("'%s': %s is not an SM2 encryption key", st->name, key_id);
    (void)UK__SKF(st->mod, close_cont, *cont);
    *cont = NULL;
    return UK_E_KEY_NOT_FOUND;
}

static int check_envelope(void *state, uk_card *card, const char *key_id)
{
    (void)card;
    skf_state *st = state;
    void *cont = NULL;
    int rc = open_for_envelope(st, key_id, &cont);
    if (rc == UK_OK)
        (void)UK__SKF(st->mod, close_cont, cont);
    return rc;
}

static int open_envelope(void *state, uk_card *card, const char *key_id, const uk_envelope_req *req,
                         uint8_t *out, size_t cap, size_t *out_len)
{
    (void)card;
    skf_state *st = state;
    if (req == NULL || req->key.c2_len == 0 || req->key.c2_len > sizeof(req->key.c2) ||
        req->in_len % 16 != 0 || cap < req->in_len)
        return UK_E_INVALID_PARAMS;
    void *cont = NULL;
    int rc = open_for_envelope(st, key_id, &cont);
    if (rc != UK_OK)
        return rc;
    *out_len = cap;
    uint32_t rv = UK__SKF(st->mod, session_decrypt, cont, SGD_SM4_CBC, &req->key, req->iv, req->in,
                          req->in_len, out, out_len);
    rc = SKF_ERR(st, rv, "SKF_ImportSessionKey/SKF_Decrypt");
    /* The module refusing the wrapped key or the content: another key's envelope, or a
     * corrupted one. */
    if (rv == SAR_INDATAERR || rv == SAR_INDATALENERR || rv == SAR_DECRYPTPADERR ||
        rv == SAR_HASHNOTEQUALERR)
        rc = UK_E_DECRYPT_FAILED;
    if (rc == UK_OK && *out_len != req->in_len) {
        UK_LOG_WARN("'%s': %zu bytes decrypted from %zu", st->name, *out_len, req->in_len);
        rc = UK_E_CARD_ERROR;
    }
    (void)UK__SKF(st->mod, close_cont, cont);
    return rc;
}

const uk_driver uk_driver_skf = {
    .name = "skf",
    .probe = probe,
    .open = open_state,
    .close = close_state,
    .list_certs = list_certs,
    .pin_status = pin_status,
    .verify_pin = verify_pin,
    .sign = sign,
    .check_sign = check_sign,
    .logout = logout,
    /* Renewal (docs/drivers.md, "SKF driver"). */
    .get_caps = get_caps,
    .read_record = read_record,
    .write_record = write_record,
    .delete_cert = delete_cert,
    .find_staging_slot = find_staging_slot,
    .generate_key = generate_key,
    .get_public_key = get_public_key,
    .put_cert = put_cert,
    .delete_key = delete_key,
    .import_enveloped_key = import_enveloped_key,
    .open_envelope = open_envelope,
    .check_envelope = check_envelope,
};
