/* Handlers for CMS: sign.cms (a SignedData signed on the key, after the guard), verify.cms (a
 * host-side check) and decrypt.cms. The structures are handled in daemon/x509 (uk_x509_cms_*);
 * the card only signs the digest of the signed attributes, through uk_tokens_sign like `sign`
 * (SM2 keys: UK_SIG_SM2 over e = SM3(Z || attributes), GM/T 0010), or does the private-key step
 * of an envelope's recipient. */
#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_rpc_call.h"
#include "uk_rpc_guard.h"
#include "uk_rpc_handlers.h"
#include "uk_token.h"
#include "uk_x509.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Largest content accepted: it must fit a message anyway. */
#define CMS_DATA_MAX UK_LIMIT_MESSAGE

/* Content digests by their protocol names: SHA-2 for RSA and ECDSA keys, SM3 for SM2 keys
 * (GM/T 0010). Without "hash" the key's kind chooses: SM3 for SM2, SHA-256 for the others. */
static const struct {
    const char *name;
    uk_x509_digest_alg alg;
    uk_hash hash;
} cms_hashes[] = {
    {"SHA-256", UK_X509_DIGEST_SHA256, UK_HASH_SHA256},
    {"SHA-384", UK_X509_DIGEST_SHA384, UK_HASH_SHA384},
    {"SHA-512", UK_X509_DIGEST_SHA512, UK_HASH_SHA512},
    {"SM3", UK_X509_DIGEST_SM3, UK_HASH_SM3},
};
#define CMS_HASH_DEFAULT 0 /* SHA-256 */
#define CMS_HASH_SM2     3 /* SM3 */

typedef struct cms_req {
    uk_rpc_call *call;
    uk__rpc_guard *guard;
    char token[96];
    char key[UK_KEY_ID_MAX];
    size_t h;        /* index into cms_hashes */
    bool hash_given; /* false: h follows the key's kind (cms_certs) */
    bool detached;
    uint8_t *data; /* the content */
    size_t data_len;
    uk_secret *pin; /* between run and the certificate lookup */
    uk_cert_info *cert;
    uk_x509_cms_sign *state;
    time_t signing_time;
    uint8_t tbs[UK_X509_DIGEST_MAX];
} cms_req;

static void cms_req_free(void *arg)
{
    cms_req *req = arg;
    if (req == NULL)
        return;
    free(req->data);
    uk_secret_free(req->pin);
    uk_cert_info_free(req->cert);
    uk_x509_cms_sign_free(req->state);
    free(req);
}

/* The operation ended with err: the guard may ask the PIN again (true), else answer. */
static void cms_answer_error(cms_req *req, int err, int retries_left)
{
    if (uk__rpc_guard_done(req->guard, err, retries_left))
        return;
    uk_rpc_call_error(req->call, err, NULL,
                      uk__rpc_key_error_extra(req->call, err, retries_left, req->token));
    cms_req_free(req);
}

static void cms_signed(void *arg, int err, int retries_left, const uint8_t *sig, size_t sig_len)
{
    cms_req *req = arg;
    uint8_t *der = NULL;
    size_t der_len = 0;
    if (err == UK_OK &&
        (err = uk_x509_cms_sign_finish(req->state, sig, sig_len, &der, &der_len)) != UK_OK)
        UK_LOG_WARN("sign.cms: %s: the card's signature does not verify with the certificate of "
                    "%s (%s)",
                    req->token, req->key, uk_err_name(err));
    if (err != UK_OK) {
        cms_answer_error(req, err, retries_left);
        return;
    }
    (void)uk__rpc_guard_done(req->guard, UK_OK, -1); /* frees the guard */
    char when[UK_X509_ISO_TIME_LEN];
    struct tm tm;
    if (gmtime_r(&req->signing_time, &tm) == NULL ||
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        when[0] = '\0';
    cJSON *r = cJSON_CreateObject();
    if (r == NULL || uk_jsonrpc_add_base64(r, "cms", der, der_len) != UK_OK ||
        !cJSON_AddStringToObject(r, "key", req->key) ||
        !cJSON_AddStringToObject(r, "hash", cms_hashes[req->h].name) ||
        !cJSON_AddBoolToObject(r, "detached", req->detached) ||
        !cJSON_AddStringToObject(r, "signing_time", when)) {
        cJSON_Delete(r);
        uk_rpc_call_error(req->call, UK_E_NO_MEMORY, NULL, NULL);
    } else {
        uk_rpc_call_result(req->call, r);
    }
    free(der);
    cms_req_free(req);
}

/* With the key's certificate: build the SignedData and have the card sign its attributes. */
static int cms_start_sign(cms_req *req)
{
    uk_x509_cms_sign_free(req->state);
    req->state = NULL;
    /* Taken now, after the dialog: the time of the signature, not of the request. */
    req->signing_time = time(NULL);
    uk_x509_cms_sign_req sr = {.signer = req->cert,
                               .digest = cms_hashes[req->h].alg,
                               .data = req->data,
                               .data_len = req->data_len,
                               .detached = req->detached,
                               .signing_time = req->signing_time};
    uk_x509_sig_alg sig_alg;
    size_t tbs_len = sizeof(req->tbs);
    int rc = uk_x509_cms_sign_begin(&sr, &req->state, &sig_alg, req->tbs, &tbs_len);
    uk_secret *pin = req->pin;
    req->pin = NULL;
    if (rc != UK_OK) {
        uk_secret_free(pin);
        return rc;
    }
    uk_sign_req sreq = {.scheme = sig_alg <= UK_X509_SIG_RSA_PKCS1_SHA512 ? UK_SIG_RSA_PKCS1
                                  : sig_alg == UK_X509_SIG_SM2_SM3        ? UK_SIG_SM2
                                                                          : UK_SIG_ECDSA,
                        .hash = cms_hashes[req->h].hash,
                        .digest = req->tbs,
                        .digest_len = tbs_len};
    snprintf(sreq.key_id, sizeof(sreq.key_id), "%s", req->key);
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(req->call));
    return uk_tokens_sign(opt->tokens, req->token, &sreq, pin, cms_signed, req);
}

static int cms_run(uk__rpc_guard *g, void *arg, uk_secret *pin)
{
    cms_req *req = arg;
    req->guard = g;
    req->pin = pin;
    return cms_start_sign(req);
}

/* The key's certificate, before any dialog: a key without one (a SignedData names its signer by
 * it) or of a kind CMS signing does not serve yet is refused without asking the user. */
static void cms_certs(void *arg, int err, const uk_token_cert *certs, size_t n)
{
    cms_req *req = arg;
    if (err == UK_OK)
        err = uk__rpc_key_cert(certs, n, req->key, &req->cert);
    if (err == UK_OK && !req->hash_given)
        req->h = strcmp(req->cert->key_alg, "SM2") == 0 ? CMS_HASH_SM2 : CMS_HASH_DEFAULT;
    if (err == UK_OK) { /* a dry run: the real one takes the time after the dialog */
        uk_x509_cms_sign_req sr = {
            .signer = req->cert, .digest = cms_hashes[req->h].alg, .detached = true};
        uk_x509_sig_alg sig_alg;
        size_t tbs_len = sizeof(req->tbs);
        err = uk_x509_cms_sign_begin(&sr, &req->state, &sig_alg, req->tbs, &tbs_len);
    }
    if (err != UK_OK) {
        uk_jsonrpc_wipe_tree(
            cJSON_GetObjectItemCaseSensitive(uk_rpc_call_params(req->call), "pin"));
        uk_rpc_call_error(req->call, err, NULL, uk__rpc_error_extra(req->call, err, req->token));
        cms_req_free(req);
        return;
    }
    /* The dialog shows the content's digest: the messageDigest attribute that is signed. */
    uint8_t md[UK_X509_DIGEST_MAX];
    size_t md_len = sizeof(md);
    char hex[UK_X509_DIGEST_MAX * 2 + 1] = "";
    if (uk_x509_digest(cms_hashes[req->h].alg, req->data, req->data_len, md, &md_len) != UK_OK ||
        OPENSSL_buf2hexstr_ex(hex, sizeof(hex), NULL, md, md_len, '\0') != 1)
        hex[0] = '\0';
    uk__rpc_guard_info info = {.action = UK__ACTION_SIGN,
                               .token = req->token,
                               .key = req->key,
                               .what = hex,
                               .need_pin = true};
    uk__rpc_guard_start(req->call, &info, cms_run, cms_req_free, req);
}

/* sign.cms {token, key, data, hash?, detached?, pin?} */
void uk__rpc_sign_cms(uk_rpc_call *call)
{
    cJSON *params = uk_rpc_call_params(call);
    const char *token = NULL, *key = NULL, *hash = NULL;
    bool detached = false;
    uint8_t *data = NULL;
    size_t data_len = 0;
    uk_jsonrpc_param_error pe;
    cms_req *req = NULL;
    if (uk__rpc_guard_refuse_pin(call))
        return;
    if (uk_jsonrpc_param_get0_string(params, "token", true, 95, &token, &pe) != UK_OK ||
        uk_jsonrpc_param_get0_string(params, "key", true, UK_KEY_ID_MAX - 1, &key, &pe) != UK_OK ||
        uk_jsonrpc_param_get0_string(params, "hash", false, 15, &hash, &pe) != UK_OK ||
        uk_jsonrpc_param_get_bool(params, "detached", false, &detached, &pe) != UK_OK ||
        uk_jsonrpc_param_get1_base64(params, "data", true, CMS_DATA_MAX, &data, &data_len, &pe) !=
            UK_OK)
        goto param_error;
    size_t h;
    for (h = 0; hash != NULL && h < sizeof(cms_hashes) / sizeof(cms_hashes[0]); h++)
        if (strcmp(cms_hashes[h].name, hash) == 0)
            break;
    if (h == sizeof(cms_hashes) / sizeof(cms_hashes[0])) {
        pe = (uk_jsonrpc_param_error){.field = "hash", .problem = "is not supported"};
        goto param_error;
    }
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(call));
    int rc = UK_E_NO_MEMORY;
    if ((req = calloc(1, sizeof(*req))) != NULL) {
        req->call = call;
        req->h = hash != NULL ? h : CMS_HASH_DEFAULT;
        req->hash_given = hash != NULL;
        req->detached = detached;
        req->data = data;
        req->data_len = data_len;
        data = NULL;
        snprintf(req->token, sizeof(req->token), "%s", token);
        snprintf(req->key, sizeof(req->key), "%s", key);
        rc = opt->tokens == NULL ? UK_E_NO_SERVICE
                                 : uk_tokens_list_certs(opt->tokens, req->token, cms_certs, req);
    }
    if (rc == UK_OK)
        return;
    cms_req_free(req);
    free(data);
    uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "pin"));
    uk_rpc_call_error(call, rc, NULL, NULL);
    return;
param_error:
    uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "pin"));
    free(data);
    uk_rpc_call_param_error(call, &pe);
}

/* verify.cms {cms, content?}: signature and message digest only; the signer's certificate is
 * returned for the caller to judge (no chain, no trust). */
void uk__rpc_verify_cms(uk_rpc_call *call)
{
    const cJSON *params = uk_rpc_call_params(call);
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(call));
    uint8_t *cms = NULL, *content = NULL;
    size_t cms_len = 0, content_len = 0;
    uk_jsonrpc_param_error pe;
    uk_x509_cms_verified *v = NULL;
    if (uk_jsonrpc_param_get1_base64(params, "cms", true, CMS_DATA_MAX, &cms, &cms_len, &pe) !=
            UK_OK ||
        uk_jsonrpc_param_get1_base64(params, "content", false, CMS_DATA_MAX, &content, &content_len,
                                     &pe) != UK_OK) {
        free(cms);
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    int rc = uk_x509_cms_verify(cms, cms_len, content, content_len, &v);
    free(cms);
    free(content);
    if (rc == UK_E_INVALID_PARAMS) {
        /* Not a SignedData we can read, or its content missing / given twice. */
        pe = (uk_jsonrpc_param_error){
            .field = "cms", .problem = "is not a CMS SignedData with its content (or content)"};
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    if (rc != UK_OK) {
        uk_rpc_call_error(call, rc, NULL, NULL);
        return;
    }
    uk_token_cert tc = {.der = v->signer_der, .der_len = v->signer_der_len, .error = UK_OK};
    cJSON *signer = uk__rpc_cert_json(
        &tc, opt->expiring_days ? opt->expiring_days : UK_X509_EXPIRING_DAYS_DEFAULT, true);
    cJSON *r = cJSON_CreateObject();
    char when[UK_X509_ISO_TIME_LEN] = "";
    struct tm tm;
    if (v->has_signing_time && (gmtime_r(&v->signing_time, &tm) == NULL ||
                                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0))
        when[0] = '\0';
    bool ok = r != NULL && signer != NULL && cJSON_AddItemToObject(r, "signer", signer) &&
              uk_jsonrpc_add_base64(r, "content", v->content, v->content_len) == UK_OK &&
              cJSON_AddBoolToObject(r, "detached", v->detached) &&
              (when[0] ? cJSON_AddStringToObject(r, "signing_time", when) != NULL
                       : cJSON_AddNullToObject(r, "signing_time") != NULL);
    if (r == NULL || signer == NULL)
        cJSON_Delete(signer); /* else r owns it */
    uk_x509_cms_verified_free(v);
    if (!ok) {
        cJSON_Delete(r);
        uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
        return;
    }
    uk_rpc_call_result(call, r);
}

/* ---- decrypt.cms ---- */

typedef struct dec_req {
    uk_rpc_call *call;
    uk__rpc_guard *guard;
    char token[96];
    char key[UK_KEY_ID_MAX];
    uint8_t *cms;
    size_t cms_len;
    uk_x509_cms_envelope *env;
    uk_x509_unwrap how;
    const uint8_t *card_in; /* borrowed from env: what the card decrypts or agrees with */
    size_t card_in_len;
    uk_envelope_req sm2; /* SM2: the envelope the token opens itself (in borrowed from env) */
} dec_req;

static void dec_req_free(void *arg)
{
    dec_req *req = arg;
    if (req == NULL)
        return;
    uk_x509_cms_envelope_free(req->env);
    free(req->cms);
    free(req);
}

/* The token's part of an SM2 envelope, from the envelope (uk_x509_cms_envelope_sm2); before any
 * dialog, so that an envelope the token cannot open asks the user nothing. */
static int dec_sm2_prepare(dec_req *req)
{
    uk_x509_sm2_cipher key;
    int err = uk_x509_cms_envelope_sm2(req->env, &key, req->sm2.iv, &req->sm2.in, &req->sm2.in_len);
    if (err != UK_OK)
        return err;
    if (req->sm2.in_len > UK_TOKENS_ENVELOPE_MAX) {
        UK_LOG_DEBUG("decrypt.cms: %zu bytes of SM4 content is more than a token decrypts",
                     req->sm2.in_len);
        return UK_E_LIMIT_EXCEEDED;
    }
    uk_sm2_cipher *w = &req->sm2.key;
    memcpy(w->c1x, key.c1x, sizeof(w->c1x));
    memcpy(w->c1y, key.c1y, sizeof(w->c1y));
    memcpy(w->c3, key.c3, sizeof(w->c3));
    memcpy(w->c2, key.c2, key.c2_len);
    w->c2_len = key.c2_len;
    return UK_OK;
}

static void dec_done(void *arg, int err, int retries_left, const uint8_t *em, size_t em_len)
{
    dec_req *req = arg;
    uint8_t *content = NULL;
    size_t content_len = 0;
    if (err == UK_OK)
        err = req->how == UK_X509_UNWRAP_SM2
                  ? uk_x509_cms_envelope_unpad(req->env, em, em_len, &content, &content_len)
                  : uk_x509_cms_envelope_finish(req->env, em, em_len, &content, &content_len);
    if (uk__rpc_guard_done(req->guard, err, retries_left))
        return; /* a wrong PIN from the dialog: asked again */
    if (err != UK_OK) {
        uk_rpc_call_error(req->call, err, NULL,
                          uk__rpc_key_error_extra(req->call, err, retries_left, req->token));
        dec_req_free(req);
        return;
    }
    cJSON *r = cJSON_CreateObject();
    if (r == NULL || uk_jsonrpc_add_base64(r, "content", content, content_len) != UK_OK ||
        !cJSON_AddStringToObject(r, "key", req->key)) {
        cJSON_Delete(r);
        uk_rpc_call_error(req->call, UK_E_NO_MEMORY, NULL, NULL);
    } else {
        uk_rpc_call_result(req->call, r);
    }
    /* The plaintext is the caller's now; do not leave it in the heap. */
    OPENSSL_cleanse(content, content_len);
    free(content);
    dec_req_free(req);
}

static int dec_run(uk__rpc_guard *g, void *arg, uk_secret *pin)
{
    dec_req *req = arg;
    req->guard = g;
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(req->call));
    if (req->how == UK_X509_UNWRAP_SM2)
        return uk_tokens_open_envelope(opt->tokens, req->token, req->key, &req->sm2, pin, dec_done,
                                       req);
    uk_decrypt_kind kind = req->how == UK_X509_UNWRAP_ECDH ? UK_DECRYPT_ECDH : UK_DECRYPT_RSA_RAW;
    return uk_tokens_decrypt(opt->tokens, req->token, req->key, kind, req->card_in,
                             req->card_in_len, pin, dec_done, req);
}

/* The key's certificates: which one the envelope is for, decided before any dialog (an envelope
 * for someone else is refused without asking the user anything). */
static void dec_certs(void *arg, int err, const uk_token_cert *certs, size_t n)
{
    dec_req *req = arg;
    uk_cert_info **infos = err == UK_OK ? calloc(n + 1, sizeof(*infos)) : NULL;
    const char **keys = err == UK_OK ? calloc(n + 1, sizeof(*keys)) : NULL;
    size_t m = 0, which = 0;
    if (err == UK_OK && (infos == NULL || keys == NULL))
        err = UK_E_NO_MEMORY;
    for (size_t i = 0; err == UK_OK && i < n; i++)
        if (certs[i].error == UK_OK &&
            uk_x509_parse(certs[i].der, certs[i].der_len, &infos[m]) == UK_OK)
            keys[m++] = certs[i].key_id;
    if (err == UK_OK)
        err = uk_x509_cms_envelope_open(req->cms, req->cms_len, (const uk_cert_info *const *)infos,
                                        m, &req->env, &which, &req->how, &req->card_in,
                                        &req->card_in_len);
    if (err == UK_OK)
        snprintf(req->key, sizeof(req->key), "%s", keys[which]);
    if (err == UK_OK && req->how == UK_X509_UNWRAP_SM2)
        err = dec_sm2_prepare(req);
    for (size_t i = 0; infos != NULL && i < m; i++)
        uk_cert_info_free(infos[i]);
    free(infos);
    free(keys);
    if (err != UK_OK) {
        uk_jsonrpc_wipe_tree(
            cJSON_GetObjectItemCaseSensitive(uk_rpc_call_params(req->call), "pin"));
        if (err == UK_E_INVALID_PARAMS) {
            uk_jsonrpc_param_error pe = {.field = "cms",
                                         .problem = "is not a CMS EnvelopedData with content"};
            uk_rpc_call_param_error(req->call, &pe);
        } else {
            uk_rpc_call_error(
                req->call, err,
                err == UK_E_DECRYPT_FAILED ? "no recipient is a certificate of this key" : NULL,
                uk__rpc_error_extra(req->call, err, req->token));
        }
        dec_req_free(req);
        return;
    }
    uk__rpc_guard_info info = {
        .action = UK__ACTION_DECRYPT, .token = req->token, .key = req->key, .need_pin = true};
    uk__rpc_guard_start(req->call, &info, dec_run, dec_req_free, req);
}

/* decrypt.cms {token, cms, pin?} */
void uk__rpc_decrypt_cms(uk_rpc_call *call)
{
    cJSON *params = uk_rpc_call_params(call);
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(call));
    const char *token = NULL;
    uk_jsonrpc_param_error pe;
    dec_req *req = NULL;
    int rc;
    if (uk__rpc_guard_refuse_pin(call))
        return;
    if ((req = calloc(1, sizeof(*req))) == NULL) {
        rc = UK_E_NO_MEMORY;
        goto error;
    }
    if (uk_jsonrpc_param_get0_string(params, "token", true, 95, &token, &pe) != UK_OK ||
        uk_jsonrpc_param_get1_base64(params, "cms", true, CMS_DATA_MAX, &req->cms, &req->cms_len,
                                     &pe) != UK_OK) {
        uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "pin"));
        dec_req_free(req);
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    req->call = call;
    snprintf(req->token, sizeof(req->token), "%s", token);
    rc = opt->tokens == NULL ? UK_E_NO_SERVICE
                             : uk_tokens_list_certs(opt->tokens, req->token, dec_certs, req);
    if (rc == UK_OK)
        return;
error:
    uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "pin"));
    dec_req_free(req);
    uk_rpc_call_error(call, rc, NULL, NULL);
}
