/*
 * uk_p11_driver.c - the "p11" driver: a token in a PKCS#11 module slot
 * behind the uk_driver vtable (docs/drivers.md, "PKCS#11 driver").
 *
 * Key ids are the lower-case hex of CKA_ID when it has 1 to
 * UK__P11_ID_HEX_MAX bytes (what fits UK_KEY_ID_MAX); a longer (or empty)
 * CKA_ID is named "h" + the first 7 bytes of its SHA-256 in hex, which no
 * plain hex id can be. Objects are always looked up by computing the key id
 * of every candidate, so both forms work without a table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uk_crypto.h"
#include "uk_driver_md.h"
#include "uk_driver_tlv.h"
#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_p11_int.h"
#include "uk_secret.h"

/* CKA_ID bytes shown as plain hex: 2 * 7 + NUL fits UK_KEY_ID_MAX (16). */
#define ID_PLAIN_MAX ((UK_KEY_ID_MAX - 2u) / 2u)
/* CKA_ID of keys ukeyd generates (random). */
#define ID_NEW_LEN 4u
/* Objects of one class looked at per search, and the largest attribute read. */
#define OBJECTS_MAX 256u
#define ATTR_MAX    (64u * 1024u)
/* The card record: a public data object with this application and label. */
#define RECORD_APP   "ukeyd"
#define RECORD_LABEL "ukeyd record"

typedef struct p11_state {
    uk_p11_module *mod; /* a reference */
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE sess;
    char name[UK_P11_NAME_MAX];
    /* The PIN of the current operation, kept from verify_pin to the
     * context-specific login of a CKA_ALWAYS_AUTHENTICATE key and wiped at
     * logout (the token layer calls it after every PIN operation) or close. */
    uk_secret *pin;
} p11_state;

#define P11_ERR(st, rv, call) uk__p11_err((rv), (call), (st)->name)

/* ---- small helpers ---------------------------------------------------------- */

static void hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The key id of a CKA_ID value (see the file comment). */
static int key_id_of(const uint8_t *id, size_t len, char out[UK_KEY_ID_MAX])
{
    if (len >= 1 && len <= ID_PLAIN_MAX) {
        hex(id, len, out);
        return UK_OK;
    }
    uint8_t md[32];
    int rc = uk_crypto_digest(UK_CRYPTO_SHA256, id, len, md, sizeof(md));
    if (rc != UK_OK)
        return rc;
    out[0] = 'h';
    hex(md, ID_PLAIN_MAX, out + 1);
    return UK_OK;
}

/* The CKA_ID bytes of a plain hex key id (ids ukeyd makes); false for "h..." ids. */
static bool id_bytes(const char *key_id, uint8_t *out, size_t *len)
{
    size_t n = strlen(key_id);
    if (n == 0 || n % 2 != 0 || n / 2 > ID_PLAIN_MAX)
        return false;
    for (size_t i = 0; i < n; i += 2) {
        unsigned v = 0;
        for (size_t j = 0; j < 2; j++) {
            char c = key_id[i + j];
            unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                         : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                                : 16u;
            if (d > 15)
                return false;
            v = v * 16 + d;
        }
        out[i / 2] = (uint8_t)v;
    }
    *len = n / 2;
    return true;
}

static bool key_id_valid(const char *key_id)
{
    return key_id != NULL && key_id[0] != '\0' && memchr(key_id, '\0', UK_KEY_ID_MAX) != NULL;
}

/* One attribute, malloc'ed (*len may be 0). NOT_FOUND when the object does
 * not have it or will not tell (sensitive). */
static int get_attr(p11_state *st, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, uint8_t **val,
                    size_t *len)
{
    *val = NULL;
    *len = 0;
    CK_ATTRIBUTE a = {type, NULL, 0};
    CK_RV rv = uk__p11_C_GetAttributeValue(st->mod, st->sess, h, &a, 1);
    if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE ||
        a.ulValueLen == CK_UNAVAILABLE_INFORMATION)
        return UK_E_NOT_FOUND;
    if (rv != CKR_OK)
        return P11_ERR(st, rv, "C_GetAttributeValue");
    if (a.ulValueLen > ATTR_MAX) {
        UK_LOG_WARN("'%s': attribute 0x%lx of %lu bytes refused", st->name, (unsigned long)type,
                    (unsigned long)a.ulValueLen);
        return UK_E_LIMIT_EXCEEDED;
    }
    size_t cap = a.ulValueLen;
    a.pValue = malloc(cap > 0 ? cap : 1);
    if (a.pValue == NULL)
        return UK_E_NO_MEMORY;
    rv = uk__p11_C_GetAttributeValue(st->mod, st->sess, h, &a, 1);
    if (rv != CKR_OK || a.ulValueLen > cap) {
        free(a.pValue);
        if (rv == CKR_OK) {
            UK_LOG_WARN("'%s': the module wrote %lu bytes into room for %zu", st->name,
                        (unsigned long)a.ulValueLen, cap);
            return UK_E_MODULE_ERROR;
        }
        return P11_ERR(st, rv, "C_GetAttributeValue");
    }
    *val = a.pValue;
    *len = a.ulValueLen;
    return UK_OK;
}

static int get_ulong(p11_state *st, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, CK_ULONG *out)
{
    CK_ULONG v = 0;
    CK_ATTRIBUTE a = {type, &v, sizeof(v)};
    CK_RV rv = uk__p11_C_GetAttributeValue(st->mod, st->sess, h, &a, 1);
    if (rv != CKR_OK || a.ulValueLen != sizeof(v))
        return rv == CKR_OK ? UK_E_MODULE_ERROR : P11_ERR(st, rv, "C_GetAttributeValue");
    *out = v;
    return UK_OK;
}

static bool get_bool(p11_state *st, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type)
{
    CK_BBOOL v = CK_FALSE;
    CK_ATTRIBUTE a = {type, &v, sizeof(v)};
    return uk__p11_C_GetAttributeValue(st->mod, st->sess, h, &a, 1) == CKR_OK &&
           a.ulValueLen == sizeof(v) && v == CK_TRUE;
}

/* Every object matching tmpl (at most cap). */
static int find(p11_state *st, CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE *out, size_t cap,
                size_t *count)
{
    *count = 0;
    CK_RV rv = uk__p11_C_FindObjectsInit(st->mod, st->sess, tmpl, n);
    if (rv != CKR_OK)
        return P11_ERR(st, rv, "C_FindObjectsInit");
    int rc = UK_OK;
    while (*count < cap) {
        CK_ULONG got = 0, want = (CK_ULONG)(cap - *count);
        rv = uk__p11_C_FindObjects(st->mod, st->sess, out + *count, want, &got);
        if (rv != CKR_OK) {
            rc = P11_ERR(st, rv, "C_FindObjects");
            break;
        }
        if (got > want) {
            UK_LOG_WARN("'%s': C_FindObjects returned %lu objects into room for %lu", st->name,
                        (unsigned long)got, (unsigned long)want);
            rc = UK_E_MODULE_ERROR;
            break;
        }
        if (got == 0)
            break;
        *count += got;
    }
    if (*count == cap)
        UK_LOG_WARN("'%s': more than %zu objects of one kind; the rest are not looked at", st->name,
                    cap);
    (void)uk__p11_C_FindObjectsFinal(st->mod, st->sess);
    return rc;
}

/* The objects of class cls whose key id is key_id (at most cap). */
static int find_by_key_id(p11_state *st, CK_OBJECT_CLASS cls, const char *key_id,
                          CK_OBJECT_HANDLE *out, size_t cap, size_t *count)
{
    *count = 0;
    CK_OBJECT_HANDLE all[OBJECTS_MAX];
    size_t n = 0;
    CK_ATTRIBUTE tmpl[2] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_ID, NULL, 0}};
    uint8_t raw[ID_PLAIN_MAX];
    size_t raw_len = 0;
    CK_ULONG nt = 1;
    if (id_bytes(key_id, raw, &raw_len)) { /* let the module filter plain ids */
        tmpl[1].pValue = raw;
        tmpl[1].ulValueLen = raw_len;
        nt = 2;
    }
    int rc = find(st, tmpl, nt, all, OBJECTS_MAX, &n);
    for (size_t i = 0; rc == UK_OK && i < n && *count < cap; i++) {
        uint8_t *id = NULL;
        size_t id_len = 0;
        char kid[UK_KEY_ID_MAX];
        int rc2 = get_attr(st, all[i], CKA_ID, &id, &id_len);
        if (rc2 == UK_OK)
            rc2 = key_id_of(id, id_len, kid);
        free(id);
        if (rc2 == UK_OK && strcmp(kid, key_id) == 0)
            out[(*count)++] = all[i];
        else if (rc2 != UK_OK && rc2 != UK_E_NOT_FOUND)
            rc = rc2;
    }
    return rc;
}

/* The one object of class cls with key_id; none is notfound. */
static int find_one(p11_state *st, CK_OBJECT_CLASS cls, const char *key_id, CK_OBJECT_HANDLE *h,
                    int notfound)
{
    size_t n = 0;
    int rc = find_by_key_id(st, cls, key_id, h, 1, &n);
    if (rc != UK_OK)
        return rc;
    return n == 1 ? UK_OK : notfound;
}

static int token_info(p11_state *st, CK_TOKEN_INFO *ti)
{
    memset(ti, 0, sizeof(*ti));
    CK_RV rv = uk__p11_C_GetTokenInfo(st->mod, st->slot, ti);
    return rv == CKR_OK ? UK_OK : P11_ERR(st, rv, "C_GetTokenInfo");
}

static bool mech_can(p11_state *st, CK_MECHANISM_TYPE mech, CK_FLAGS flag)
{
    CK_MECHANISM_INFO mi;
    memset(&mi, 0, sizeof(mi));
    return uk__p11_C_GetMechanismInfo(st->mod, st->slot, mech, &mi) == CKR_OK &&
           (mi.flags & flag) != 0;
}

static void pin_forget(p11_state *st)
{
    uk_secret_free(st->pin); /* wiped */
    st->pin = NULL;
}

/* ---- life cycle -------------------------------------------------------------- */

static int p11_probe(uk_card *card)
{
    uk_p11_module *m = NULL;
    unsigned long slot = 0;
    return uk_p11_card_slot(card, &m, &slot) ? UK_OK : UK_E_NOT_SUPPORTED;
}

static void p11_close(void *state)
{
    p11_state *st = state;
    if (st == NULL)
        return;
    pin_forget(st);
    if (st->sess != CK_INVALID_HANDLE) {
        CK_RV rv = uk__p11_C_CloseSession(st->mod, st->sess);
        if (rv != CKR_OK)
            (void)P11_ERR(st, rv, "C_CloseSession");
    }
    uk_p11_module_put(st->mod);
    free(st);
}

static int p11_open(uk_card *card, const uk_driver_options *opt, void **state,
                    uk_token_identity *id)
{
    (void)opt;
    uk_p11_module *m = NULL;
    unsigned long slot = 0;
    if (!uk_p11_card_slot(card, &m, &slot))
        return UK_E_NOT_SUPPORTED;
    p11_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return UK_E_NO_MEMORY;
    uk__p11_module_ref(m);
    st->mod = m;
    st->slot = slot;
    st->sess = CK_INVALID_HANDLE;
    snprintf(st->name, sizeof(st->name), "%s", uk_card_reader(card));
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv =
        uk__p11_C_OpenSession(st->mod, slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
    if (rv == CKR_TOKEN_WRITE_PROTECTED) /* still readable and usable for signing */
        rv = uk__p11_C_OpenSession(st->mod, slot, CKF_SERIAL_SESSION, NULL, NULL, &h);
    if (rv != CKR_OK) {
        int rc = P11_ERR(st, rv, "C_OpenSession");
        p11_close(st);
        return rc;
    }
    st->sess = h;
    CK_TOKEN_INFO ti;
    int rc = token_info(st, &ti);
    if (rc != UK_OK) {
        p11_close(st);
        return rc;
    }
    memset(id, 0, sizeof(*id));
    uk__p11_field(ti.serialNumber, sizeof(ti.serialNumber), id->serial, sizeof(id->serial));
    uk__p11_field(ti.label, sizeof(ti.label), id->label, sizeof(id->label));
    uk__p11_field(ti.model, sizeof(ti.model), id->model, sizeof(id->model));
    *state = st;
    return UK_OK;
}

/* ---- certificates -------------------------------------------------------------- */

static int p11_list_certs(void *state, uk_card *card, uk_token_cert **certs, size_t *n)
{
    (void)card;
    p11_state *st = state;
    *certs = NULL;
    *n = 0;
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE type = CKC_X_509;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)},
                           {CKA_CERTIFICATE_TYPE, &type, sizeof(type)}};
    CK_OBJECT_HANDLE hs[OBJECTS_MAX];
    size_t count = 0;
    int rc = find(st, tmpl, 2, hs, UK_LIMIT_CERTS_PER_TOKEN, &count);
    if (rc != UK_OK)
        return rc;
    if (count == 0)
        return UK_OK;
    uk_token_cert *out = calloc(count, sizeof(*out));
    if (out == NULL)
        return UK_E_NO_MEMORY;
    for (size_t i = 0; i < count; i++) {
        uk_token_cert *c = &out[i];
        uint8_t *idv = NULL;
        size_t id_len = 0;
        rc = get_attr(st, hs[i], CKA_ID, &idv, &id_len);
        if (rc == UK_OK || rc == UK_E_NOT_FOUND)
            rc = key_id_of(idv, rc == UK_OK ? id_len : 0, c->key_id);
        free(idv);
        if (rc != UK_OK)
            break;
        rc = get_attr(st, hs[i], CKA_VALUE, &c->der, &c->der_len);
        if (rc == UK_E_NO_MEMORY || rc == UK_E_CARD_REMOVED || rc == UK_E_CARD_RESET)
            break;
        uk_crypto_key_info ki;
        if (rc == UK_OK && uk_crypto_cert_key_info(c->der, c->der_len, &ki) != UK_OK)
            rc = UK_E_CERT_INVALID;
        if (rc != UK_OK) { /* this object only: the others are still listed */
            free(c->der);
            c->der = NULL;
            c->der_len = 0;
            c->error = rc == UK_E_LIMIT_EXCEEDED || rc == UK_E_NOT_FOUND ? UK_E_CERT_INVALID : rc;
            rc = UK_OK;
        }
    }
    if (rc != UK_OK) {
        uk_token_certs_free(out, count);
        return rc;
    }
    *certs = out;
    *n = count;
    return UK_OK;
}

/* ---- PIN --------------------------------------------------------------------- */

/* Retries from the token flags: locked 0, final try 1, otherwise unknown. */
static int retries_of(CK_FLAGS flags)
{
    if (flags & CKF_USER_PIN_LOCKED)
        return 0;
    if (flags & CKF_USER_PIN_FINAL_TRY)
        return 1;
    return -1;
}

static int p11_pin_status(void *state, uk_card *card, int *retries_left)
{
    (void)card;
    CK_TOKEN_INFO ti;
    int rc = token_info(state, &ti);
    if (rc == UK_OK)
        *retries_left = retries_of(ti.flags);
    return rc;
}

static int login(p11_state *st, CK_USER_TYPE who, const uk_secret *pin)
{
    size_t len = uk_secret_get0_len(pin);
    uint8_t buf[UK_LIMIT_PIN_LENGTH];
    if (len > sizeof(buf))
        return UK_E_PIN_INVALID;
    memcpy(buf, uk_secret_get0_data(pin), len); /* C_Login wants a non-const pointer */
    CK_RV rv = uk__p11_C_Login(st->mod, st->sess, who, buf, (CK_ULONG)len);
    uk_wipe(buf, sizeof(buf));
    if (rv == CKR_USER_ALREADY_LOGGED_IN)
        return UK_OK;
    return P11_ERR(st, rv, who == CKU_USER ? "C_Login(CKU_USER)" : "C_Login(CKU_CONTEXT_SPECIFIC)");
}

static int p11_verify_pin(void *state, uk_card *card, const uk_secret *pin, int *retries_left)
{
    (void)card;
    p11_state *st = state;
    *retries_left = -1;
    CK_TOKEN_INFO ti;
    int rc = token_info(st, &ti);
    if (rc != UK_OK)
        return rc;
    if (ti.flags & CKF_USER_PIN_LOCKED) {
        *retries_left = 0;
        return UK_E_PIN_LOCKED; /* nothing sent: a locked PIN stays locked */
    }
    size_t len = pin != NULL ? uk_secret_get0_len(pin) : 0;
    /* A PIN the token cannot take costs no try. Some modules report 0 or
     * garbage bounds: only sane ones are applied. */
    if (len == 0 || len > UK_LIMIT_PIN_LENGTH ||
        (ti.ulMinPinLen <= UK_LIMIT_PIN_LENGTH && len < ti.ulMinPinLen) ||
        (ti.ulMaxPinLen > 0 && ti.ulMaxPinLen >= ti.ulMinPinLen && len > ti.ulMaxPinLen))
        return UK_E_PIN_INVALID;
    if (ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH)
        UK_LOG_INFO("'%s' has a PIN pad; the PIN given is sent anyway", st->name);
    rc = login(st, CKU_USER, pin);
    if (rc == UK_E_PIN_INCORRECT || rc == UK_E_PIN_LOCKED) {
        if (token_info(st, &ti) == UK_OK)
            *retries_left = retries_of(ti.flags);
        if (*retries_left == 0)
            rc = UK_E_PIN_LOCKED;
        return rc;
    }
    if (rc != UK_OK)
        return rc;
    pin_forget(st);
    st->pin = uk_secret_new(uk_secret_get0_data(pin), len);
    return st->pin != NULL ? UK_OK : UK_E_NO_MEMORY;
}

static void p11_logout(void *state, uk_card *card)
{
    (void)card;
    p11_state *st = state;
    pin_forget(st);
    CK_RV rv = uk__p11_C_Logout(st->mod, st->sess);
    if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN)
        (void)P11_ERR(st, rv, "C_Logout");
}

/* ---- signing ------------------------------------------------------------------ */

/* The digest to pad with (uk_driver_md) and PSS's hash and MGF1 mechanisms for it. */
static bool md_of(uk_hash h, uk_crypto_md *md, CK_MECHANISM_TYPE *mech, CK_RSA_PKCS_MGF_TYPE *mgf)
{
    static const CK_MECHANISM_TYPE mechs[] = {CKM_SHA256, CKM_SHA384, CKM_SHA512};
    static const CK_RSA_PKCS_MGF_TYPE mgfs[] = {CKG_MGF1_SHA256, CKG_MGF1_SHA384, CKG_MGF1_SHA512};
    if (!uk_driver_md(h, md))
        return false;
    *mech = mechs[*md - UK_CRYPTO_SHA256];
    *mgf = mgfs[*md - UK_CRYPTO_SHA256];
    return true;
}

/* The key type of key_id from what can be seen without the PIN: its public
 * key, its certificate, or (after login) its private key. */
static int key_type_of(p11_state *st, const char *key_id, CK_KEY_TYPE *type)
{
    CK_OBJECT_HANDLE h;
    if (find_one(st, CKO_PRIVATE_KEY, key_id, &h, UK_E_KEY_NOT_FOUND) == UK_OK ||
        find_one(st, CKO_PUBLIC_KEY, key_id, &h, UK_E_KEY_NOT_FOUND) == UK_OK)
        return get_ulong(st, h, CKA_KEY_TYPE, type);
    int rc = find_one(st, CKO_CERTIFICATE, key_id, &h, UK_E_KEY_NOT_FOUND);
    if (rc != UK_OK)
        return rc;
    uint8_t *der = NULL;
    size_t len = 0;
    uk_crypto_key_info ki;
    rc = get_attr(st, h, CKA_VALUE, &der, &len);
    if (rc == UK_OK)
        rc = uk_crypto_cert_key_info(der, len, &ki);
    free(der);
    if (rc != UK_OK)
        return rc == UK_E_NOT_FOUND ? UK_E_KEY_NOT_FOUND : rc;
    if (ki.type == UK_CRYPTO_KEY_RSA)
        *type = CKK_RSA;
    else if (ki.type == UK_CRYPTO_KEY_EC)
        *type = CKK_EC;
    else
        return UK_E_NOT_SUPPORTED;
    return UK_OK;
}

static int p11_check_sign(void *state, uk_card *card, const uk_sign_req *req)
{
    (void)card;
    p11_state *st = state;
    uk_crypto_md md;
    CK_MECHANISM_TYPE hm;
    CK_RSA_PKCS_MGF_TYPE mgf;
    if (!key_id_valid(req->key_id))
        return UK_E_INVALID_PARAMS;
    if (!md_of(req->hash, &md, &hm, &mgf))
        return UK_E_NOT_SUPPORTED;
    if (req->digest_len != uk_crypto_md_size(md))
        return UK_E_INVALID_PARAMS;
    CK_KEY_TYPE type = 0;
    int rc = key_type_of(st, req->key_id, &type);
    if (rc != UK_OK)
        return rc;
    CK_MECHANISM_TYPE mech;
    if (type == CKK_RSA && req->scheme == UK_SIG_RSA_PKCS1)
        mech = CKM_RSA_PKCS;
    else if (type == CKK_RSA && req->scheme == UK_SIG_RSA_PSS)
        mech = CKM_RSA_PKCS_PSS;
    else if (type == CKK_EC && req->scheme == UK_SIG_ECDSA)
        mech = CKM_ECDSA;
    else
        return UK_E_NOT_SUPPORTED;
    return mech_can(st, mech, CKF_SIGN) ? UK_OK : UK_E_NOT_SUPPORTED;
}

static int p11_sign(void *state, uk_card *card, const uk_sign_req *req, uint8_t *sig, size_t cap,
                    size_t *sig_len)
{
    p11_state *st = state;
    *sig_len = 0;
    int rc = p11_check_sign(state, card, req);
    if (rc != UK_OK)
        return rc;
    CK_OBJECT_HANDLE key;
    rc = find_one(st, CKO_PRIVATE_KEY, req->key_id, &key, UK_E_KEY_NOT_FOUND);
    if (rc != UK_OK)
        return rc;
    CK_KEY_TYPE type = 0;
    rc = get_ulong(st, key, CKA_KEY_TYPE, &type);
    if (rc != UK_OK)
        return rc;
    uk_crypto_md md;
    CK_MECHANISM_TYPE hm;
    CK_RSA_PKCS_MGF_TYPE mgf;
    /* check_sign refused other hashes already; this keeps the values defined for the compiler. */
    if (!md_of(req->hash, &md, &hm, &mgf))
        return UK_E_NOT_SUPPORTED;
    uint8_t in[512 + 64];
    size_t in_len = 0;
    CK_RSA_PKCS_PSS_PARAMS pss = {hm, mgf, req->digest_len};
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    if (type == CKK_RSA && req->scheme == UK_SIG_RSA_PKCS1) {
        /* CKM_RSA_PKCS pads and signs what it is given: the DigestInfo. */
        rc = uk_crypto_digest_info(md, req->digest, req->digest_len, in, sizeof(in), &in_len);
        if (rc != UK_OK)
            return rc;
        mech.mechanism = CKM_RSA_PKCS;
    } else {
        memcpy(in, req->digest, req->digest_len);
        in_len = req->digest_len;
        if (type == CKK_RSA) {
            mech.mechanism = CKM_RSA_PKCS_PSS;
            mech.pParameter = &pss;
            mech.ulParameterLen = sizeof(pss);
        }
    }
    CK_RV rv = uk__p11_C_SignInit(st->mod, st->sess, &mech, key);
    if (rv != CKR_OK)
        return P11_ERR(st, rv, "C_SignInit");
    uint8_t out[1024];
    CK_ULONG out_len = sizeof(out);
    if (get_bool(st, key, CKA_ALWAYS_AUTHENTICATE)) {
        UK_LOG_DEBUG("'%s': key %s wants the PIN for each signature (CKA_ALWAYS_AUTHENTICATE)",
                     st->name, req->key_id);
        rc = st->pin != NULL ? login(st, CKU_CONTEXT_SPECIFIC, st->pin) : UK_E_PIN_REQUIRED;
        if (rc != UK_OK) {
            /* End the signing operation C_SignInit began (a C_Sign that fails ends it; 2.40
             * has no C_SessionCancel), so the session is usable for the next one. */
            (void)uk__p11_C_Sign(st->mod, st->sess, in, (CK_ULONG)in_len, out, &out_len);
            uk_wipe(out, sizeof(out));
            return rc;
        }
    }
    rv = uk__p11_C_Sign(st->mod, st->sess, in, (CK_ULONG)in_len, out, &out_len);
    if (rv != CKR_OK)
        return P11_ERR(st, rv, "C_Sign");
    if (out_len == 0 || out_len > sizeof(out)) {
        UK_LOG_WARN("'%s': C_Sign returned a %lu-byte signature", st->name, (unsigned long)out_len);
        return UK_E_MODULE_ERROR;
    }
    if (type == CKK_EC) /* PKCS#11 gives r || s; callers want DER */
        return uk_crypto_ecdsa_raw_to_der(out, out_len, sig, cap, sig_len);
    if (out_len > cap)
        return UK_E_LIMIT_EXCEEDED;
    memcpy(sig, out, out_len);
    *sig_len = out_len;
    return UK_OK;
}

/* ---- keys ------------------------------------------------------------------------ */

static int point_of(const uint8_t *v, size_t len, size_t coord, const uint8_t **pt, size_t *pt_len)
{
    if (len == 2 * coord + 1 && v[0] == 0x04) { /* a raw point (some modules) */
        *pt = v;
        *pt_len = len;
        return UK_OK;
    }
    /* DER OCTET STRING around it, as the standard says */
    if (len >= 2 && v[0] == 0x04 && v[1] == 2 * coord + 1 && len == 2 + 2 * coord + 1) {
        *pt = v + 2;
        *pt_len = len - 2;
        return UK_OK;
    }
    if (len >= 3 && v[0] == 0x04 && v[1] == 0x81 && v[2] == 2 * coord + 1 &&
        len == 3 + 2 * coord + 1) {
        *pt = v + 3;
        *pt_len = len - 3;
        return UK_OK;
    }
    return UK_E_KEY_REJECTED;
}

static const uint8_t oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};

/* SPKI of the key object h (public key, or an RSA private key's public part). */
static int spki_of(p11_state *st, CK_OBJECT_HANDLE h, uint8_t **spki, size_t *spki_len)
{
    CK_KEY_TYPE type = 0;
    int rc = get_ulong(st, h, CKA_KEY_TYPE, &type);
    if (rc != UK_OK)
        return rc;
    uint8_t *a = NULL, *b = NULL;
    size_t al = 0, bl = 0;
    if (type == CKK_RSA) {
        rc = get_attr(st, h, CKA_MODULUS, &a, &al);
        if (rc == UK_OK)
            rc = get_attr(st, h, CKA_PUBLIC_EXPONENT, &b, &bl);
        if (rc == UK_OK)
            rc = uk_crypto_spki_from_rsa(a, al, b, bl, spki, spki_len);
    } else if (type == CKK_EC) {
        rc = get_attr(st, h, CKA_EC_PARAMS, &a, &al);
        if (rc == UK_OK)
            rc = get_attr(st, h, CKA_EC_POINT, &b, &bl);
        uk_crypto_curve curve = UK_CRYPTO_CURVE_NONE;
        size_t coord = 0;
        if (rc == UK_OK && al == sizeof(oid_p256) && memcmp(a, oid_p256, al) == 0) {
            curve = UK_CRYPTO_CURVE_P256;
            coord = 32;
        } else if (rc == UK_OK && al == sizeof(oid_p384) && memcmp(a, oid_p384, al) == 0) {
            curve = UK_CRYPTO_CURVE_P384;
            coord = 48;
        } else if (rc == UK_OK) {
            rc = UK_E_NOT_SUPPORTED;
        }
        const uint8_t *pt = NULL;
        size_t pt_len = 0;
        if (rc == UK_OK)
            rc = point_of(b, bl, coord, &pt, &pt_len);
        if (rc == UK_OK)
            rc = uk_crypto_spki_from_ec(curve, pt, pt_len, spki, spki_len);
    } else {
        rc = UK_E_NOT_SUPPORTED;
    }
    free(a);
    free(b);
    return rc == UK_E_NOT_FOUND ? UK_E_NOT_SUPPORTED : rc;
}

static int p11_get_public_key(void *state, uk_card *card, const char *key_id, uint8_t **spki,
                              size_t *spki_len)
{
    (void)card;
    p11_state *st = state;
    *spki = NULL;
    *spki_len = 0;
    if (!key_id_valid(key_id))
        return UK_E_INVALID_PARAMS;
    CK_OBJECT_HANDLE h;
    int rc = find_one(st, CKO_PUBLIC_KEY, key_id, &h, UK_E_KEY_NOT_FOUND);
    if (rc == UK_E_KEY_NOT_FOUND) {
        /* No public key object: an RSA private key still shows its modulus. */
        rc = find_one(st, CKO_PRIVATE_KEY, key_id, &h, UK_E_KEY_NOT_FOUND);
    }
    if (rc != UK_OK)
        return rc;
    return spki_of(st, h, spki, spki_len);
}

static int p11_generate_key(void *state, uk_card *card, const char *key_id, uk_key_alg alg,
                            uint8_t **spki, size_t *spki_len)
{
    p11_state *st = state;
    *spki = NULL;
    *spki_len = 0;
    uint8_t id[ID_PLAIN_MAX];
    size_t id_len = 0;
    if (!key_id_valid(key_id) || !id_bytes(key_id, id, &id_len))
        return UK_E_INVALID_PARAMS; /* ukeyd names new keys with plain hex ids */
    CK_OBJECT_HANDLE h;
    int rc = find_one(st, CKO_PRIVATE_KEY, key_id, &h, UK_E_KEY_NOT_FOUND);
    if (rc == UK_OK) {
        UK_LOG_WARN("'%s': key %s exists; not generating over it", st->name, key_id);
        return UK_E_INVALID_PARAMS;
    }
    if (rc != UK_E_KEY_NOT_FOUND)
        return rc;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG bits = 2048;
    uint8_t e[] = {0x01, 0x00, 0x01};
    char label[] = "ukeyd";
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub[6] = {
        {CKA_TOKEN, &yes, sizeof(yes)},          {CKA_ID, id, id_len},
        {CKA_VERIFY, &yes, sizeof(yes)},         {CKA_LABEL, label, sizeof(label) - 1},
        {CKA_MODULUS_BITS, &bits, sizeof(bits)}, {CKA_PUBLIC_EXPONENT, e, sizeof(e)},
    };
    CK_ULONG n_pub = 6;
    uint8_t params[sizeof(oid_p256)]; /* the module's template wants a non-const pointer */
    switch (alg) {
    case UK_KEY_RSA2048:
        break;
    case UK_KEY_ECP256:
    case UK_KEY_ECP384:
        mech.mechanism = CKM_EC_KEY_PAIR_GEN;
        pub[4].type = CKA_EC_PARAMS;
        pub[4].ulValueLen = alg == UK_KEY_ECP256 ? sizeof(oid_p256) : sizeof(oid_p384);
        memcpy(params, alg == UK_KEY_ECP256 ? oid_p256 : oid_p384, pub[4].ulValueLen);
        pub[4].pValue = params;
        n_pub = 5;
        break;
    default:
        return UK_E_NOT_SUPPORTED;
    }
    if (!mech_can(st, mech.mechanism, CKF_GENERATE_KEY_PAIR))
        return UK_E_NOT_SUPPORTED;
    CK_ATTRIBUTE priv[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},        {CKA_ID, id, id_len},
        {CKA_PRIVATE, &yes, sizeof(yes)},      {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},    {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_LABEL, label, sizeof(label) - 1},
    };
    CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
    CK_RV rv = uk__p11_C_GenerateKeyPair(st->mod, st->sess, &mech, pub, n_pub, priv,
                                         sizeof(priv) / sizeof(priv[0]), &hpub, &hpriv);
    if (rv != CKR_OK)
        return P11_ERR(st, rv, "C_GenerateKeyPair");
    rc = spki_of(st, hpub, spki, spki_len);
    if (rc != UK_OK) {
        /* A pair whose public key cannot be read is of no use: remove it. */
        (void)uk__p11_C_DestroyObject(st->mod, st->sess, hpriv);
        (void)uk__p11_C_DestroyObject(st->mod, st->sess, hpub);
        return rc;
    }
    (void)card;
    UK_LOG_INFO("'%s': new key pair %s generated", st->name, key_id);
    return UK_OK;
}

/* Destroys every object of class cls with key_id except keep; *found counts them. */
static int destroy_all(p11_state *st, CK_OBJECT_CLASS cls, const char *key_id,
                       CK_OBJECT_HANDLE keep, size_t *found)
{
    CK_OBJECT_HANDLE hs[16];
    size_t n = 0;
    int rc = find_by_key_id(st, cls, key_id, hs, 16, &n);
    if (found != NULL)
        *found = n;
    for (size_t i = 0; rc == UK_OK && i < n; i++) {
        if (hs[i] == keep)
            continue;
        CK_RV rv = uk__p11_C_DestroyObject(st->mod, st->sess, hs[i]);
        if (rv != CKR_OK)
            rc = P11_ERR(st, rv, "C_DestroyObject");
    }
    return rc;
}

/* Whether private objects are hidden from this session: a token that wants a login and a
 * session that has not logged in (renewal recovery runs without the PIN). */
static bool private_hidden(p11_state *st)
{
    CK_SESSION_INFO si;
    CK_TOKEN_INFO ti;
    memset(&si, 0, sizeof(si));
    if (uk__p11_C_GetSessionInfo(st->mod, st->sess, &si) != CKR_OK || token_info(st, &ti) != UK_OK)
        return true; /* cannot tell: never claim a key is absent */
    bool public_session = si.state == CKS_RO_PUBLIC_SESSION || si.state == CKS_RW_PUBLIC_SESSION;
    return public_session && (ti.flags & CKF_LOGIN_REQUIRED);
}

static int p11_delete_key(void *state, uk_card *card, const char *key_id)
{
    (void)card;
    p11_state *st = state;
    if (!key_id_valid(key_id))
        return UK_E_INVALID_PARAMS;
    size_t n = 0;
    int rc = destroy_all(st, CKO_PRIVATE_KEY, key_id, CK_INVALID_HANDLE, &n);
    if (rc == UK_OK && n == 0 && private_hidden(st)) {
        /* Without the PIN the private key cannot be seen, let alone destroyed: say so rather
         * than "no such key", and touch nothing else (its public key and certificate are what
         * tell that the id still holds a key: UK_TOKEN_CAP_DELETE_NEEDS_PIN). */
        UK_LOG_INFO("'%s': the private key %s can only be destroyed after a login", st->name,
                    key_id);
        return UK_E_PIN_REQUIRED;
    }
    if (rc == UK_OK && n == 0)
        return UK_E_KEY_NOT_FOUND;
    if (rc == UK_OK)
        rc = destroy_all(st, CKO_PUBLIC_KEY, key_id, CK_INVALID_HANDLE, NULL);
    return rc;
}

static int p11_delete_cert(void *state, uk_card *card, const char *key_id)
{
    (void)card;
    if (!key_id_valid(key_id))
        return UK_E_INVALID_PARAMS;
    return destroy_all(state, CKO_CERTIFICATE, key_id, CK_INVALID_HANDLE, NULL);
}

/*
 * Writes the certificate as a new object, reads it back, and only then
 * removes the certificates the key id had before: a failure at any point
 * leaves the old certificate in place.
 */
static int p11_put_cert(void *state, uk_card *card, const char *key_id, const uint8_t *der,
                        size_t len)
{
    (void)card;
    p11_state *st = state;
    uint8_t id[ID_PLAIN_MAX];
    size_t id_len = 0;
    if (!key_id_valid(key_id) || !id_bytes(key_id, id, &id_len) || der == NULL || len == 0)
        return UK_E_INVALID_PARAMS;
    uint8_t *subject = NULL, *back = NULL;
    size_t subject_len = 0, back_len = 0;
    int rc = uk_crypto_cert_subject(der, len, &subject, &subject_len);
    if (rc != UK_OK)
        return rc;
    uint8_t *value = malloc(len); /* the template wants a non-const pointer */
    if (value == NULL) {
        free(subject);
        return UK_E_NO_MEMORY;
    }
    memcpy(value, der, len);
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE type = CKC_X_509;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    char label[] = "ukeyd";
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_CERTIFICATE_TYPE, &type, sizeof(type)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_ID, id, id_len},
        {CKA_LABEL, label, sizeof(label) - 1},
        {CKA_SUBJECT, subject, subject_len},
        {CKA_VALUE, value, len},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = uk__p11_C_CreateObject(st->mod, st->sess, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &h);
    free(subject);
    free(value);
    if (rv != CKR_OK)
        return P11_ERR(st, rv, "C_CreateObject");
    rc = get_attr(st, h, CKA_VALUE, &back, &back_len);
    if (rc == UK_OK && (back_len != len || memcmp(back, der, len) != 0)) {
        UK_LOG_WARN("'%s': the certificate written for %s reads back different", st->name, key_id);
        rc = UK_E_CARD_ERROR;
    }
    free(back);
    if (rc != UK_OK) {
        (void)uk__p11_C_DestroyObject(st->mod, st->sess, h);
        return rc;
    }
    return destroy_all(st, CKO_CERTIFICATE, key_id, h, NULL);
}

static int p11_find_staging_slot(void *state, uk_card *card, char key_id_out[UK_KEY_ID_MAX])
{
    (void)card;
    p11_state *st = state;
    /* A fresh random CKA_ID that no object has: no record needs reading,
     * since no id the record keeps can be drawn again while its objects
     * exist (and ids without objects are free). */
    for (int attempt = 0; attempt < 8; attempt++) {
        uint8_t id[ID_NEW_LEN];
        int rc = uk_crypto_random(id, sizeof(id));
        if (rc != UK_OK)
            return rc;
        char kid[UK_KEY_ID_MAX];
        hex(id, sizeof(id), kid);
        bool used = false;
        static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_CERTIFICATE};
        for (size_t c = 0; c < 3 && !used; c++) {
            CK_OBJECT_HANDLE h;
            rc = find_one(st, classes[c], kid, &h, UK_E_NOT_FOUND);
            if (rc == UK_OK)
                used = true;
            else if (rc != UK_E_NOT_FOUND)
                return rc;
        }
        if (!used) {
            memcpy(key_id_out, kid, sizeof(kid));
            return UK_OK;
        }
    }
    return UK_E_NO_STAGING_SLOT;
}

static int p11_get_caps(void *state, uk_card *card, unsigned *caps)
{
    (void)card;
    /* Keys are objects the module lists, with or without a certificate
     * (KEY_METADATA); there is nothing to move: a renewed key keeps its new
     * CKA_ID and the record maps the role to it. No CKA_ID is a standard
     * place (ANY_KEY_ID). A token that wants a login hides private keys
     * until then (DELETE_NEEDS_PIN). */
    CK_TOKEN_INFO ti;
    int rc = token_info(state, &ti);
    if (rc != UK_OK)
        return rc;
    /* Only what the token says it can do: GENERATE when it offers a key-pair mechanism for
     * generation (OpenSC's PIV emulation offers none and answers C_GenerateKeyPair,
     * C_CreateObject and C_DestroyObject with CKR_FUNCTION_NOT_SUPPORTED), writing only when it
     * is not write-protected; so a renewal is refused before anything on the token changes. */
    p11_state *st = state;
    *caps = UK_TOKEN_CAP_KEY_METADATA | UK_TOKEN_CAP_STAGING | UK_TOKEN_CAP_ANY_KEY_ID;
    bool writable = !(ti.flags & CKF_WRITE_PROTECTED);
    if (writable)
        *caps |= UK_TOKEN_CAP_PUT_CERT | UK_TOKEN_CAP_DELETE_KEY | UK_TOKEN_CAP_RECORD;
    if (writable && (mech_can(st, CKM_RSA_PKCS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR) ||
                     mech_can(st, CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR)))
        *caps |= UK_TOKEN_CAP_GENERATE;
    else
        UK_LOG_DEBUG("'%s': the token %s; no renewal on it", st->name,
                     writable ? "offers no key-pair generation" : "is write-protected");
    if (ti.flags & CKF_LOGIN_REQUIRED)
        *caps |= UK_TOKEN_CAP_DELETE_NEEDS_PIN;
    return UK_OK;
}

/* ---- the card record ----------------------------------------------------------- */

static int record_find(p11_state *st, CK_OBJECT_HANDLE *hs, size_t cap, size_t *n)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    char app[] = RECORD_APP, label[] = RECORD_LABEL;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_APPLICATION, app, sizeof(app) - 1},
        {CKA_LABEL, label, sizeof(label) - 1},
    };
    return find(st, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), hs, cap, n);
}

static int p11_read_record(void *state, uk_card *card, uint8_t *buf, size_t cap, size_t *len)
{
    (void)card;
    p11_state *st = state;
    *len = 0;
    CK_OBJECT_HANDLE hs[2];
    size_t n = 0;
    int rc = record_find(st, hs, 2, &n);
    if (rc != UK_OK || n == 0)
        return rc;
    if (n > 1) {
        UK_LOG_WARN("'%s': two ukeyd records; refusing to guess", st->name);
        return UK_E_CARD_ERROR;
    }
    uint8_t *v = NULL;
    size_t vl = 0;
    rc = get_attr(st, hs[0], CKA_VALUE, &v, &vl);
    if (rc == UK_OK && (vl > UK_DRIVER_RECORD_MAX || !uk__driver_tlv_sequence(v, vl)))
        rc = UK_E_CARD_ERROR;
    else if (rc == UK_OK && vl > cap)
        rc = UK_E_LIMIT_EXCEEDED;
    if (rc == UK_OK) {
        memcpy(buf, v, vl);
        *len = vl;
    }
    free(v);
    return rc == UK_E_NOT_FOUND ? UK_E_CARD_ERROR : rc;
}

/* A new record object first, then the old one goes: never no record. */
static int p11_write_record(void *state, uk_card *card, const uint8_t *blob, size_t len)
{
    (void)card;
    p11_state *st = state;
    if (len > UK_DRIVER_RECORD_MAX)
        return UK_E_LIMIT_EXCEEDED;
    if ((blob == NULL && len > 0) || !uk__driver_tlv_sequence(blob, len))
        return UK_E_INVALID_PARAMS;
    CK_OBJECT_HANDLE old[2];
    size_t n_old = 0;
    int rc = record_find(st, old, 2, &n_old);
    if (rc != UK_OK)
        return rc;
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    uint8_t value[UK_DRIVER_RECORD_MAX]; /* the template wants a non-const pointer */
    if (len > 0)
        memcpy(value, blob, len);
    if (len > 0) {
        CK_OBJECT_CLASS cls = CKO_DATA;
        char app[] = RECORD_APP, label[] = RECORD_LABEL;
        CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
        CK_ATTRIBUTE tmpl[] = {
            {CKA_CLASS, &cls, sizeof(cls)},
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_PRIVATE, &no, sizeof(no)}, /* read without the PIN: it holds no secret */
            {CKA_APPLICATION, app, sizeof(app) - 1},
            {CKA_LABEL, label, sizeof(label) - 1},
            {CKA_VALUE, value, len},
        };
        CK_RV rv =
            uk__p11_C_CreateObject(st->mod, st->sess, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &h);
        if (rv != CKR_OK)
            return P11_ERR(st, rv, "C_CreateObject");
    }
    for (size_t i = 0; i < n_old; i++) {
        CK_RV rv = uk__p11_C_DestroyObject(st->mod, st->sess, old[i]);
        if (rv != CKR_OK) {
            rc = P11_ERR(st, rv, "C_DestroyObject");
            if (h != CK_INVALID_HANDLE)
                (void)uk__p11_C_DestroyObject(st->mod, st->sess,
                                              h); /* keep the one the reader knows */
            return rc;
        }
    }
    return UK_OK;
}

const uk_driver uk_driver_p11 = {
    .name = "p11",
    .probe = p11_probe,
    .open = p11_open,
    .close = p11_close,
    .list_certs = p11_list_certs,
    .pin_status = p11_pin_status,
    .verify_pin = p11_verify_pin,
    .sign = p11_sign,
    .generate_key = p11_generate_key,
    .put_cert = p11_put_cert,
    .get_caps = p11_get_caps,
    .find_staging_slot = p11_find_staging_slot,
    .delete_key = p11_delete_key,
    .delete_cert = p11_delete_cert,
    .get_public_key = p11_get_public_key,
    .read_record = p11_read_record,
    .write_record = p11_write_record,
    .check_sign = p11_check_sign,
    .logout = p11_logout,
};
