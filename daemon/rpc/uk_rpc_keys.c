/* Handlers for keys: token.list, cert.list, sign, and the token events.
 * They see tokens through uk_token.h only: no APDU, no PC/SC here. */
#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_rpc_call.h"
#include "uk_rpc_guard.h"
#include "uk_rpc_handlers.h"
#include "uk_rpc_keys.h"
#include "uk_token.h"
#include "uk_x509.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Largest data accepted for signing: it must fit a message anyway. */
#define SIGN_DATA_MAX UK_LIMIT_MESSAGE

static cJSON *summary_json(const uk_token_summary *t)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    bool ok = (t->id[0] ? cJSON_AddStringToObject(o, "id", t->id) != NULL
                        : cJSON_AddNullToObject(o, "id") != NULL) &&
              cJSON_AddStringToObject(o, "reader", t->reader) &&
              cJSON_AddBoolToObject(o, "present", t->present);
    if (ok && t->present && t->driver[0]) {
        ok =
            cJSON_AddStringToObject(o, "driver", t->driver) &&
            cJSON_AddStringToObject(o, "serial", t->identity.serial) &&
            cJSON_AddStringToObject(o, "label", t->identity.label) &&
            cJSON_AddStringToObject(o, "model", t->identity.model) &&
            (t->pin_retries >= 0 ? cJSON_AddNumberToObject(o, "pin_retries", t->pin_retries) != NULL
                                 : cJSON_AddNullToObject(o, "pin_retries") != NULL);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

void uk__rpc_token_list(uk_rpc_call *call)
{
    uk_tokens *tokens = uk_rpc_get0_options(uk_rpc_call_rpc(call))->tokens;
    uk_token_summary *list = NULL;
    size_t n = 0;
    int rc = tokens ? uk_tokens_list(tokens, &list, &n) : UK_E_NO_SERVICE;
    if (rc != UK_OK) {
        uk_rpc_call_error(call, rc, NULL, NULL);
        return;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(r, "tokens");
    bool ok = r != NULL && arr != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = cJSON_AddItemToArray(arr, summary_json(&list[i]));
    free(list);
    if (!ok) {
        cJSON_Delete(r);
        uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
        return;
    }
    uk_rpc_call_result(call, r);
}

static bool add_name(cJSON *o, const char *key, const uk_x509_name *name)
{
    char parts_key[32];
    snprintf(parts_key, sizeof(parts_key), "%s_parts", key);
    cJSON *parts = cJSON_AddArrayToObject(o, parts_key);
    if (!cJSON_AddStringToObject(o, key, name->rfc4514) || parts == NULL)
        return false;
    for (size_t i = 0; i < name->n_parts; i++) {
        cJSON *p = cJSON_CreateObject();
        if (!cJSON_AddItemToArray(parts, p) ||
            !cJSON_AddStringToObject(p, "type", name->parts[i].type) ||
            !cJSON_AddStringToObject(p, "value", name->parts[i].value))
            return false;
    }
    return true;
}

static bool add_strings(cJSON *o, const char *key, const char *const *v, size_t n)
{
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    for (size_t i = 0; arr != NULL && i < n; i++)
        if (!cJSON_AddItemToArray(arr, cJSON_CreateString(v[i])))
            return false;
    return arr != NULL;
}

/* One certificate as the protocol describes it (docs/protocol.md, cert.list). */
cJSON *uk__rpc_cert_json(const uk_token_cert *tc, unsigned expiring_days, bool with_der)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddStringToObject(o, "key", tc->key_id)) {
        cJSON_Delete(o);
        return NULL;
    }
    uk_cert_info *c = NULL;
    int rc = tc->error;
    if (rc == UK_OK)
        rc = uk_x509_parse(tc->der, tc->der_len, &c);
    uk_cert_status st;
    if (rc == UK_OK)
        rc = uk_x509_status(c, time(NULL), expiring_days, &st);
    if (rc != UK_OK) {
        /* One broken object is reported where it is and hides nothing else. */
        cJSON *err = cJSON_AddObjectToObject(o, "error");
        if (err == NULL || !cJSON_AddStringToObject(err, "reason", uk_err_name(rc)) ||
            !cJSON_AddStringToObject(err, "en", uk_err_message(rc, "en")) ||
            !cJSON_AddStringToObject(err, "zh-CN", uk_err_message(rc, "zh-CN"))) {
            cJSON_Delete(o);
            o = NULL;
        }
        uk_cert_info_free(c);
        return o;
    }
    bool ok = add_name(o, "subject", &c->subject) && add_name(o, "issuer", &c->issuer) &&
              cJSON_AddStringToObject(o, "serial", c->serial) &&
              cJSON_AddStringToObject(o, "not_before", c->not_before_iso) &&
              cJSON_AddStringToObject(o, "not_after", c->not_after_iso) &&
              cJSON_AddStringToObject(o, "key_algorithm", c->key_alg) &&
              cJSON_AddNumberToObject(o, "key_size", c->key_bits) &&
              (c->curve[0] ? cJSON_AddStringToObject(o, "curve", c->curve) != NULL
                           : cJSON_AddNullToObject(o, "curve") != NULL) &&
              cJSON_AddStringToObject(o, "signature_algorithm", c->sig_alg) &&
              add_strings(o, "key_usage", c->key_usage_names, c->n_key_usage) &&
              add_strings(o, "extended_key_usage", (const char *const *)c->ext_key_usage,
                          c->n_ext_key_usage) &&
              cJSON_AddStringToObject(o, "fingerprint_sha256", c->fingerprint_sha256) &&
              cJSON_AddBoolToObject(o, "is_ca", c->is_ca) &&
              cJSON_AddStringToObject(o, "status", uk_cert_status_name(st.status)) &&
              cJSON_AddNumberToObject(o, "days_left", (double)st.days_left);
    if (ok && st.status == UK_CERT_NOT_YET_VALID)
        ok = cJSON_AddStringToObject(o, "valid_from", st.valid_from) &&
             cJSON_AddNumberToObject(o, "days_until_valid", (double)st.days_until_valid);
    if (ok && with_der)
        ok = uk_jsonrpc_add_base64(o, "der", c->der, c->der_len) == UK_OK;
    uk_cert_info_free(c);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Extra error data that helps the user act: which reader is held by another
 * program (CARD_BUSY: "quit the other vendor's tool"). NULL when none. */
cJSON *uk__rpc_error_extra(uk_rpc_call *call, int err, const char *token_id)
{
    uk_tokens *tokens = uk_rpc_get0_options(uk_rpc_call_rpc(call))->tokens;
    if (err != UK_E_CARD_BUSY || tokens == NULL)
        return NULL;
    uk_token_summary *list = NULL;
    size_t n = 0;
    cJSON *extra = NULL;
    if (uk_tokens_list(tokens, &list, &n) == UK_OK) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(list[i].id, token_id) != 0)
                continue;
            extra = cJSON_CreateObject();
            if (extra != NULL && !cJSON_AddStringToObject(extra, "reader", list[i].reader)) {
                cJSON_Delete(extra);
                extra = NULL;
            }
            break;
        }
    }
    free(list);
    return extra;
}

cJSON *uk__rpc_key_error_extra(uk_rpc_call *call, int err, int retries_left, const char *token_id)
{
    if (err != UK_E_PIN_INCORRECT)
        return uk__rpc_error_extra(call, err, token_id);
    cJSON *extra = cJSON_CreateObject();
    if (extra != NULL && !cJSON_AddNumberToObject(extra, "retries_left", retries_left)) {
        cJSON_Delete(extra);
        extra = NULL;
    }
    return extra;
}

typedef struct {
    uk_rpc_call *call;
    bool with_der;
    unsigned expiring_days;
    char token[96];
} certs_req;

static void certs_done(void *arg, int err, const uk_token_cert *certs, size_t n)
{
    certs_req *req = arg;
    if (err != UK_OK) {
        uk_rpc_call_error(req->call, err, NULL, uk__rpc_error_extra(req->call, err, req->token));
        free(req);
        return;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(r, "certificates");
    bool ok = r && arr && cJSON_AddStringToObject(r, "token", req->token);
    for (size_t i = 0; ok && i < n; i++)
        ok = cJSON_AddItemToArray(arr,
                                  uk__rpc_cert_json(&certs[i], req->expiring_days, req->with_der));
    if (!ok) {
        cJSON_Delete(r);
        uk_rpc_call_error(req->call, UK_E_NO_MEMORY, NULL, NULL);
    } else {
        uk_rpc_call_result(req->call, r);
    }
    free(req);
}

void uk__rpc_cert_list(uk_rpc_call *call)
{
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(call));
    const cJSON *params = uk_rpc_call_params(call);
    const char *token = NULL;
    bool with_der = false;
    uk_jsonrpc_param_error pe;
    if (uk_jsonrpc_param_get0_string(params, "token", true, 95, &token, &pe) != UK_OK ||
        uk_jsonrpc_param_get_bool(params, "der", false, &with_der, &pe) != UK_OK) {
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    if (opt->tokens == NULL) {
        uk_rpc_call_error(call, UK_E_NO_SERVICE, NULL, NULL);
        return;
    }
    certs_req *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
        return;
    }
    req->call = call;
    req->with_der = with_der;
    req->expiring_days = opt->expiring_days ? opt->expiring_days : UK_X509_EXPIRING_DAYS_DEFAULT;
    snprintf(req->token, sizeof(req->token), "%s", token);
    int rc = uk_tokens_list_certs(opt->tokens, req->token, certs_done, req);
    if (rc != UK_OK) {
        free(req);
        uk_rpc_call_error(call, rc, NULL, NULL);
    }
}

/* Signature algorithms by their protocol names. */
static const struct {
    const char *name;
    uk_sig_scheme scheme;
    uk_hash hash;
    uk_x509_digest_alg digest;
} sig_algs[] = {
    {"RSA-PKCS1-SHA256", UK_SIG_RSA_PKCS1, UK_HASH_SHA256, UK_X509_DIGEST_SHA256},
    {"RSA-PKCS1-SHA384", UK_SIG_RSA_PKCS1, UK_HASH_SHA384, UK_X509_DIGEST_SHA384},
    {"RSA-PKCS1-SHA512", UK_SIG_RSA_PKCS1, UK_HASH_SHA512, UK_X509_DIGEST_SHA512},
    {"RSA-PSS-SHA256", UK_SIG_RSA_PSS, UK_HASH_SHA256, UK_X509_DIGEST_SHA256},
    {"RSA-PSS-SHA384", UK_SIG_RSA_PSS, UK_HASH_SHA384, UK_X509_DIGEST_SHA384},
    {"RSA-PSS-SHA512", UK_SIG_RSA_PSS, UK_HASH_SHA512, UK_X509_DIGEST_SHA512},
    {"ECDSA-SHA256", UK_SIG_ECDSA, UK_HASH_SHA256, UK_X509_DIGEST_SHA256},
    {"ECDSA-SHA384", UK_SIG_ECDSA, UK_HASH_SHA384, UK_X509_DIGEST_SHA384},
    {"ECDSA-SHA512", UK_SIG_ECDSA, UK_HASH_SHA512, UK_X509_DIGEST_SHA512},
    /* GM/T 0003 SM2 with SM3: the key signs e = SM3(Z || data), Z over the key's public key and
     * the ID 1234567812345678 (taken from the key's certificate); a `digest` is e itself. */
    {"SM2-SM3", UK_SIG_SM2, UK_HASH_SM3, UK_X509_DIGEST_SM3},
};

typedef struct {
    uk_rpc_call *call;
    uk__rpc_guard *guard;
    char algorithm[32];
    char key[UK_KEY_ID_MAX];
    char token[96];
    uk_sign_req sreq; /* sreq.digest points at hash */
    uint8_t hash[UK_X509_DIGEST_MAX];
    uint8_t *data; /* SM2-SM3 with data: the message, until e is computed */
    size_t data_len;
} sign_req;

static void sign_done(void *arg, int err, int retries_left, const uint8_t *sig, size_t sig_len)
{
    sign_req *req = arg;
    if (uk__rpc_guard_done(req->guard, err, retries_left))
        return; /* a wrong PIN from the dialog: asked again */
    if (err != UK_OK) {
        uk_rpc_call_error(req->call, err, NULL,
                          uk__rpc_key_error_extra(req->call, err, retries_left, req->token));
    } else {
        cJSON *r = cJSON_CreateObject();
        if (r == NULL || uk_jsonrpc_add_base64(r, "signature", sig, sig_len) != UK_OK ||
            !cJSON_AddStringToObject(r, "algorithm", req->algorithm) ||
            !cJSON_AddStringToObject(r, "key", req->key)) {
            cJSON_Delete(r);
            uk_rpc_call_error(req->call, UK_E_NO_MEMORY, NULL, NULL);
        } else {
            uk_rpc_call_result(req->call, r);
        }
    }
    free(req);
}

static int sign_run(uk__rpc_guard *g, void *arg, uk_secret *pin)
{
    sign_req *req = arg;
    req->guard = g;
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(req->call));
    /* The token layer copies the request; the PIN is consumed either way. */
    return uk_tokens_sign(opt->tokens, req->token, &req->sreq, pin, sign_done, req);
}

static uk_tokens *opt_tokens(uk_rpc_call *call)
{
    return uk_rpc_get0_options(uk_rpc_call_rpc(call))->tokens;
}

/* Asks for consent and the PIN, then signs req->hash (sign_run). */
static void sign_start(sign_req *req)
{
    /* The dialog shows the digest: what is signed, in a form the page cannot dress up. */
    char hex[UK_X509_DIGEST_MAX * 2 + 1];
    if (OPENSSL_buf2hexstr_ex(hex, sizeof(hex), NULL, req->hash, req->sreq.digest_len, '\0') != 1)
        hex[0] = '\0';
    uk__rpc_guard_info info = {.action = UK__ACTION_SIGN,
                               .token = req->token,
                               .key = req->key,
                               .what = hex,
                               .need_pin = true};
    uk__rpc_guard_start(req->call, &info, sign_run, free, req);
}

int uk__rpc_key_cert(const uk_token_cert *certs, size_t n, const char *key, uk_cert_info **out)
{
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(certs[i].key_id, key) == 0)
            return certs[i].error != UK_OK ? certs[i].error
                                           : uk_x509_parse(certs[i].der, certs[i].der_len, out);
    }
    return UK_E_CERT_NOT_FOUND;
}

/* e = SM3(Z || data) with the public key of the certificate of req->key. */
static int sm2_e(sign_req *req, const uk_token_cert *certs, size_t n)
{
    uk_cert_info *ci = NULL;
    int rc = uk__rpc_key_cert(certs, n, req->key, &ci);
    if (rc == UK_E_CERT_NOT_FOUND)
        return UK_E_KEY_NOT_FOUND; /* without its certificate the key's Z is unknown */
    if (rc != UK_OK)
        return rc;
    size_t len = sizeof(req->hash);
    rc = uk_x509_sm2_digest(ci->spki, ci->spki_len, req->data, req->data_len, req->hash, &len);
    uk_cert_info_free(ci);
    if (rc == UK_E_NOT_SUPPORTED)
        rc = UK_E_INVALID_PARAMS; /* the algorithm does not fit the key */
    return rc;
}

static void sm2_certs_done(void *arg, int err, const uk_token_cert *certs, size_t n)
{
    sign_req *req = arg;
    if (err == UK_OK)
        err = sm2_e(req, certs, n);
    free(req->data);
    req->data = NULL;
    if (err != UK_OK) {
        cJSON *params = uk_rpc_call_params(req->call);
        uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "pin"));
        uk_rpc_call_error(req->call, err, NULL, uk__rpc_error_extra(req->call, err, req->token));
        free(req);
        return;
    }
    req->sreq.digest_len = 32;
    sign_start(req);
}

void uk__rpc_sign(uk_rpc_call *call)
{
    cJSON *params = uk_rpc_call_params(call);
    const char *token = NULL, *key = NULL, *alg_name = NULL;
    uint8_t *data = NULL, *digest = NULL;
    size_t data_len = 0, digest_len = 0;
    uk_jsonrpc_param_error pe;
    int rc;
    if (uk__rpc_guard_refuse_pin(call))
        return;
    if (uk_jsonrpc_param_get0_string(params, "token", true, 95, &token, &pe) != UK_OK ||
        uk_jsonrpc_param_get0_string(params, "key", true, UK_KEY_ID_MAX - 1, &key, &pe) != UK_OK ||
        uk_jsonrpc_param_get0_string(params, "algorithm", true, 31, &alg_name, &pe) != UK_OK ||
        uk_jsonrpc_param_get1_base64(params, "data", false, SIGN_DATA_MAX, &data, &data_len, &pe) !=
            UK_OK ||
        uk_jsonrpc_param_get1_base64(params, "digest", false, UK_X509_DIGEST_MAX, &digest,
                                     &digest_len, &pe) != UK_OK)
        goto param_error;
    size_t a;
    for (a = 0; a < sizeof(sig_algs) / sizeof(sig_algs[0]); a++)
        if (strcmp(sig_algs[a].name, alg_name) == 0)
            break;
    if (a == sizeof(sig_algs) / sizeof(sig_algs[0])) {
        pe = (uk_jsonrpc_param_error){.field = "algorithm", .problem = "is not supported"};
        goto param_error;
    }
    if ((data == NULL) == (digest == NULL)) {
        pe =
            (uk_jsonrpc_param_error){.field = "data", .problem = "or digest is required, not both"};
        goto param_error;
    }
    if (digest != NULL && digest_len != uk_x509_digest_len(sig_algs[a].digest)) {
        pe = (uk_jsonrpc_param_error){.field = "digest",
                                      .problem = "has the wrong length for the algorithm"};
        goto param_error;
    }
    sign_req *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        rc = UK_E_NO_MEMORY;
        goto error;
    }
    req->call = call;
    size_t hash_len = sizeof(req->hash);
    if (digest != NULL) {
        memcpy(req->hash, digest, digest_len);
        hash_len = digest_len;
    } else if ((rc = uk_x509_digest(sig_algs[a].digest, data, data_len, req->hash, &hash_len)) !=
               UK_OK) {
        free(req);
        goto error;
    }
    snprintf(req->algorithm, sizeof(req->algorithm), "%s", alg_name);
    snprintf(req->key, sizeof(req->key), "%s", key);
    snprintf(req->token, sizeof(req->token), "%s", token);
    req->sreq = (uk_sign_req){.scheme = sig_algs[a].scheme,
                              .hash = sig_algs[a].hash,
                              .digest = req->hash,
                              .digest_len = hash_len};
    snprintf(req->sreq.key_id, sizeof(req->sreq.key_id), "%s", key);
    free(digest);
    if (sig_algs[a].scheme == UK_SIG_SM2 && data != NULL) {
        /* e needs the key's public key: from its certificate (cached by the token layer). */
        req->data = data;
        req->data_len = data_len;
        rc = uk_tokens_list_certs(opt_tokens(call), req->token, sm2_certs_done, req);
        if (rc != UK_OK) {
            free(req->data);
            free(req);
            uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "pin"));
            uk_rpc_call_error(call, rc, NULL, NULL);
        }
        return;
    }
    free(data);
    sign_start(req);
    return;
param_error:
    uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "pin"));
    free(data);
    free(digest);
    uk_rpc_call_param_error(call, &pe);
    return;
error:
    uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "pin"));
    free(data);
    free(digest);
    uk_rpc_call_error(call, rc, NULL, NULL);
}

void uk_rpc_token_event(uk_rpc *rpc, uk_token_event ev, const uk_token_summary *t)
{
    const char *name = ev == UK_TOKEN_INSERTED  ? "token.inserted"
                       : ev == UK_TOKEN_REMOVED ? "token.removed"
                                                : "token.changed";
    cJSON *params = cJSON_CreateObject();
    cJSON *tok = summary_json(t);
    if (params == NULL || tok == NULL || !cJSON_AddItemToObject(params, "token", tok)) {
        cJSON_Delete(params);
        cJSON_Delete(tok);
        UK_LOG_ERR("rpc: out of memory for a %s event", name);
        return;
    }
    uk_rpc_notify(rpc, name, params);
}
