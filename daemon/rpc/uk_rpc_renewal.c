/* Handlers for renewal: renewal.prepare, renewal.commit, renewal.status, renewal.list,
 * renewal.abort, and the renewal.changed event. They see the renewal service through
 * uk_renewal.h only. docs/protocol.md has the methods, docs/renewal.md the service.
 *
 * The origin rule: a renewal belongs to the web origin that prepared it (the record's origin;
 * NULL: the local user). A web caller sees and continues only its own: any other is
 * RENEWAL_NOT_FOUND, exactly as if it did not exist, and is checked before any dialog; the local
 * user sees all. renewal.changed goes to the owner's sessions (uk_rpc_notify_owned). */
#include "uk_base64.h"
#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_renewal.h"
#include "uk_rpc_call.h"
#include "uk_rpc_guard.h"
#include "uk_rpc_handlers.h"
#include "uk_token.h"
#include "uk_x509.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest "certificate" parameter accepted, in characters (PEM of the largest DER). */
#define CERT_PARAM_MAX (2u * UK_X509_DER_MAX + 1024u)
/* Longest subject attribute type ("emailAddress", a dotted OID) and value, in bytes. */
#define SUBJECT_TYPE_MAX  64u
#define SUBJECT_VALUE_MAX 256u
/* Longest origin kept for a request (as the gate's limit on Origin). */
#define ORIGIN_MAX 256u

typedef struct renewal_req {
    uk_rpc_call *call;
    uk_rpc *rpc;
    const char *method;
    uk__rpc_guard *guard; /* prepare and commit: the user's say */
    /* prepare: the request, kept for asking the PIN again; commit: the certificate. */
    char token[96];
    char slot[UK_KEY_ID_MAX];
    char algorithm[17];
    uk_renewal_mode mode;
    char id[UK_JOURNAL_ID_LEN];
    uint8_t *der;
    size_t der_len;
    /* Who asks: the local user (all renewals), or a web origin (its own only). */
    bool local;
    char origin[ORIGIN_MAX + 1];
    /* prepare: an explicit subject (copies). */
    uk_renewal_subject_attr subject[UK_RENEWAL_SUBJECT_MAX];
    size_t n_subject;
    /* commit: the chain, DER. */
    uint8_t *chain[UK_RENEWAL_CHAIN_MAX];
    size_t chain_len[UK_RENEWAL_CHAIN_MAX];
    size_t n_chain;
    /* commit, dual certificates: the encryption certificate (DER) and the enveloped key as an
     * ENVELOPEDKEYBLOB (standard byte form). */
    uint8_t *enc_der, *envelope;
    size_t enc_der_len, envelope_len;
} renewal_req;

static void req_free(void *arg)
{
    renewal_req *req = arg;
    if (req == NULL)
        return;
    free(req->der);
    for (size_t i = 0; i < req->n_subject; i++) {
        free((char *)(uintptr_t)req->subject[i].type);
        free((char *)(uintptr_t)req->subject[i].value);
    }
    for (size_t i = 0; i < req->n_chain; i++)
        free(req->chain[i]);
    free(req->enc_der);
    free(req->envelope);
    free(req);
}

/* Whether the caller may see rec (the origin rule above). */
static bool visible(const renewal_req *req, const uk_renewal_rec *rec)
{
    return req->local || (rec->origin != NULL && strcmp(rec->origin, req->origin) == 0);
}

static cJSON *rec_json(const uk_renewal_rec *rec, bool with_csr)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    bool ok =
        cJSON_AddStringToObject(o, "renewal_id", rec->id) &&
        cJSON_AddStringToObject(o, "token", rec->token_id) &&
        cJSON_AddStringToObject(o, "slot", rec->slot) &&
        cJSON_AddStringToObject(o, "staged_slot", rec->staged_slot) &&
        cJSON_AddStringToObject(o, "mode", uk_renewal_mode_name(rec->mode)) &&
        cJSON_AddStringToObject(o, "algorithm", rec->algorithm) &&
        (rec->origin != NULL ? cJSON_AddStringToObject(o, "origin", rec->origin) != NULL
                             : cJSON_AddNullToObject(o, "origin") != NULL) &&
        cJSON_AddStringToObject(o, "state", uk_renewal_state_name(rec->state)) &&
        cJSON_AddStringToObject(o, "created", rec->created) &&
        cJSON_AddStringToObject(o, "updated", rec->updated) &&
        uk_jsonrpc_add_base64(o, "public_key", rec->staged_spki, rec->staged_spki_len) == UK_OK;
    if (ok && with_csr)
        ok = cJSON_AddStringToObject(o, "csr_pem", rec->csr_pem) != NULL;
    /* A certificate written for later activation: when. */
    uk_cert_info *c = NULL;
    if (ok && rec->state == UK_RENEWAL_WRITTEN && rec->new_cert_der != NULL &&
        uk_x509_parse(rec->new_cert_der, rec->new_cert_der_len, &c) == UK_OK &&
        c->not_before > time(NULL))
        ok = cJSON_AddStringToObject(o, "status", "not_yet_valid") &&
             cJSON_AddStringToObject(o, "valid_from", c->not_before_iso);
    uk_cert_info_free(c);
    if (ok && rec->old_cert_backup != NULL)
        ok = cJSON_AddStringToObject(o, "old_certificate_backup", rec->old_cert_backup) != NULL;
    cJSON *steps = ok ? cJSON_AddArrayToObject(o, "steps") : NULL;
    ok = ok && steps != NULL;
    for (size_t i = 0; ok && i < rec->n_steps; i++) {
        cJSON *s = cJSON_CreateObject();
        ok = s != NULL && cJSON_AddItemToArray(steps, s) &&
             cJSON_AddStringToObject(s, "time", rec->steps[i].time) &&
             cJSON_AddStringToObject(s, "step", rec->steps[i].step) &&
             cJSON_AddStringToObject(s, "result", rec->steps[i].result);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* renewal.changed to the record's owner: the local user's sessions, and its origin's. */
static void notify_changed(uk_rpc *rpc, const uk_renewal_rec *rec)
{
    cJSON *params = cJSON_CreateObject();
    cJSON *r = rec_json(rec, false);
    if (params == NULL || r == NULL || !cJSON_AddItemToObject(params, "renewal", r)) {
        cJSON_Delete(params);
        cJSON_Delete(r);
        UK_LOG_ERR("rpc: out of memory for a renewal.changed event");
        return;
    }
    uk_rpc_notify_owned(rpc, "renewal.changed", rec->origin, params);
}

void uk_rpc_renewal_changed(void *rpc, const struct uk_renewal_rec *rec)
{
    if (rpc != NULL && rec != NULL)
        notify_changed(rpc, rec);
}

static void renewal_done(void *arg, int err, const uk_renewal_result *res)
{
    renewal_req *req = arg;
    if (req->guard != NULL &&
        uk__rpc_guard_done(req->guard, err, err == UK_E_PIN_INCORRECT ? res->pin_retries : 0))
        return; /* a wrong PIN from the dialog: asked again */
    if (err == UK_E_PIN_INCORRECT) {
        cJSON *extra = cJSON_CreateObject();
        if (extra != NULL)
            cJSON_AddNumberToObject(extra, "retries_left", res->pin_retries);
        uk_rpc_call_error(req->call, err, NULL, extra);
        req_free(req);
        return;
    }
    if (err == UK_OK && res->rec != NULL && !visible(req, res->rec))
        err = UK_E_RENEWAL_NOT_FOUND; /* status of another origin's renewal */
    if (err != UK_OK) {
        uk_rpc_call_error(req->call, err, NULL, NULL);
        req_free(req);
        return;
    }
    cJSON *r = NULL;
    bool ok;
    if (res->rec == NULL) { /* list: the caller's own */
        r = cJSON_CreateObject();
        cJSON *arr = r != NULL ? cJSON_AddArrayToObject(r, "renewals") : NULL;
        ok = arr != NULL;
        for (size_t i = 0; ok && i < res->n_recs; i++)
            if (visible(req, res->recs[i]))
                ok = cJSON_AddItemToArray(arr, rec_json(res->recs[i], false));
    } else {
        bool prepare = strcmp(req->method, "prepare") == 0;
        r = rec_json(res->rec, prepare || res->rec->state == UK_RENEWAL_PREPARED);
        ok = r != NULL;
        if (ok && res->cert_der != NULL) {
            uk_token_cert tc = {.der = (uint8_t *)(uintptr_t)res->cert_der,
                                .der_len = res->cert_der_len,
                                .error = UK_OK};
            snprintf(tc.key_id, sizeof(tc.key_id), "%s", res->rec->slot);
            const uk_rpc_options *opt = uk_rpc_get0_options(req->rpc);
            ok = cJSON_AddItemToObject(r, "certificate",
                                       uk__rpc_cert_json(&tc, opt->expiring_days, true));
        }
        if (ok && strcmp(req->method, "status") != 0)
            notify_changed(req->rpc, res->rec);
    }
    if (!ok) {
        cJSON_Delete(r);
        uk_rpc_call_error(req->call, UK_E_NO_MEMORY, NULL, NULL);
    } else {
        uk_rpc_call_result(req->call, r);
    }
    req_free(req);
}

static renewal_req *req_new(uk_rpc_call *call, const char *method)
{
    renewal_req *req = calloc(1, sizeof(*req));
    if (req != NULL) {
        req->call = call;
        req->rpc = uk_rpc_call_rpc(call);
        req->method = method;
        req->local = uk_rpc_call_is_local(call);
        const char *origin = uk_rpc_call_peer(call)->origin;
        if (!req->local && (origin == NULL || strlen(origin) > ORIGIN_MAX)) {
            /* A web caller always has an origin (the gate checked it); fail closed. */
            free(req);
            return NULL;
        }
        if (!req->local)
            snprintf(req->origin, sizeof(req->origin), "%s", origin);
    }
    return req;
}

static uk_renewal *service(uk_rpc_call *call)
{
    return uk_rpc_get0_options(uk_rpc_call_rpc(call))->renewal;
}

static int prepare_run(uk__rpc_guard *g, void *arg, uk_secret *pin)
{
    renewal_req *req = arg;
    req->guard = g;
    uk_renewal_prepare_req pr = {.token_id = req->token,
                                 .slot = req->slot,
                                 .mode = req->mode,
                                 .algorithm = req->algorithm[0] ? req->algorithm : NULL,
                                 .pin = pin,
                                 .origin = req->local ? NULL : req->origin,
                                 .subject = req->subject,
                                 .n_subject = req->n_subject};
    uk_renewal *svc = uk_rpc_get0_options(req->rpc)->renewal;
    int rc = uk_renewal_prepare(svc, &pr, renewal_done, req);
    uk_secret_free(pin);
    return rc;
}

static bool subject_type_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > SUBJECT_TYPE_MAX)
        return false;
    for (const char *p = t; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.')
            return false;
    return true;
}

/* params.subject (optional): [{"type": "CN", "value": "..."}, ...] in certificate order, into
 * req (copies). false with pe filled when it is malformed. */
static bool take_subject(const cJSON *params, renewal_req *req, uk_jsonrpc_param_error *pe)
{
    const cJSON *subj = cJSON_GetObjectItemCaseSensitive(params, "subject");
    *pe = (uk_jsonrpc_param_error){.field = "subject",
                                   .problem = "must be an array of 1 to 16 {type, value}"};
    if (subj == NULL)
        return true;
    int n = cJSON_IsArray(subj) ? cJSON_GetArraySize(subj) : -1;
    if (n < 1 || (size_t)n > UK_RENEWAL_SUBJECT_MAX)
        return false;
    const cJSON *a;
    cJSON_ArrayForEach(a, subj)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(a, "type");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "value");
        if (!cJSON_IsObject(a) || cJSON_GetArraySize(a) != 2 || !cJSON_IsString(t) ||
            !cJSON_IsString(v) || !subject_type_ok(t->valuestring) || v->valuestring[0] == '\0' ||
            strlen(v->valuestring) > SUBJECT_VALUE_MAX)
            return false;
        char *tc = strdup(t->valuestring), *vc = strdup(v->valuestring);
        req->subject[req->n_subject++] = (uk_renewal_subject_attr){.type = tc, .value = vc};
        if (tc == NULL || vc == NULL) {
            pe->problem = "out of memory";
            return false;
        }
    }
    return true;
}

void uk__rpc_renewal_prepare(uk_rpc_call *call)
{
    cJSON *params = uk_rpc_call_params(call);
    const char *token = NULL, *slot = NULL, *mode_name = NULL, *alg = NULL;
    uk_jsonrpc_param_error pe;
    uk_renewal_mode mode = UK_RENEWAL_EXTEND;
    if (uk__rpc_guard_refuse_pin(call))
        return;
    if (uk_jsonrpc_param_get0_string(params, "token", true, 95, &token, &pe) != UK_OK ||
        uk_jsonrpc_param_get0_string(params, "slot", true, UK_KEY_ID_MAX - 1, &slot, &pe) !=
            UK_OK ||
        uk_jsonrpc_param_get0_string(params, "mode", true, 16, &mode_name, &pe) != UK_OK ||
        uk_jsonrpc_param_get0_string(params, "algorithm", false, 16, &alg, &pe) != UK_OK) {
        /* pe is filled */
    } else if (!uk_renewal_mode_from_name(mode_name, &mode)) {
        pe = (uk_jsonrpc_param_error){.field = "mode", .problem = "must be extend or repair"};
    } else if (!uk_renewal_role_ok(token, slot)) {
        /* PIV: the standard slots; other drivers: one of their key ids */
        pe = (uk_jsonrpc_param_error){
            .field = "slot",
            .problem = "must be 9a or 9c (PIV), a key id (PKCS#11), or <c>/sign (SKF)"};
    } else if (alg != NULL && strcmp(alg, "rsa2048") != 0 && strcmp(alg, "p256") != 0 &&
               strcmp(alg, "p384") != 0 && strcmp(alg, "sm2") != 0) {
        pe = (uk_jsonrpc_param_error){.field = "algorithm", .problem = "is not supported"};
    } else {
        pe.field = NULL;
    }
    if (pe.field != NULL) {
        uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "pin"));
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    renewal_req *req = NULL;
    int rc = service(call) == NULL                      ? UK_E_NO_SERVICE
             : (req = req_new(call, "prepare")) == NULL ? UK_E_NO_MEMORY
                                                        : UK_OK;
    if (rc != UK_OK) {
        uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "pin"));
        uk_rpc_call_error(call, rc, NULL, NULL);
        return;
    }
    if (!take_subject(params, req, &pe)) {
        uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, "pin"));
        req_free(req);
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    snprintf(req->token, sizeof(req->token), "%s", token);
    snprintf(req->slot, sizeof(req->slot), "%s", slot);
    snprintf(req->algorithm, sizeof(req->algorithm), "%s", alg ? alg : "");
    req->mode = mode;
    uk__rpc_guard_info info = {.action = UK__ACTION_GENERATE,
                               .token = req->token,
                               .key = req->slot,
                               .what = NULL,
                               .need_pin = true};
    uk__rpc_guard_start(call, &info, prepare_run, req_free, req);
}

/* The certificate as PEM ("-----BEGIN CERTIFICATE-----") or base64 DER. CERT_INVALID otherwise. */
static int cert_param(const char *s, uint8_t **der, size_t *len)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    const char *b = s, *e = s + strlen(s);
    const char *p = strstr(s, begin);
    if (p != NULL) {
        b = p + strlen(begin);
        e = strstr(b, end);
        if (e == NULL)
            return UK_E_CERT_INVALID;
        /* Nothing but whitespace around the one PEM block. */
        for (const char *q = s; q < p; q++)
            if (!isspace((unsigned char)*q))
                return UK_E_CERT_INVALID;
        for (const char *q = e + strlen(end); *q; q++)
            if (!isspace((unsigned char)*q))
                return UK_E_CERT_INVALID;
    }
    char *clean = malloc((size_t)(e - b) + 1);
    if (clean == NULL)
        return UK_E_NO_MEMORY;
    size_t n = 0;
    for (const char *q = b; q < e; q++)
        if (!isspace((unsigned char)*q))
            clean[n++] = *q;
    clean[n] = '\0';
    int rc = uk_base64_decode(clean, n, der, len);
    free(clean);
    if (rc == UK_E_NO_MEMORY)
        return rc;
    return rc == UK_OK && *len > 0 ? UK_OK : UK_E_CERT_INVALID;
}

/* params.chain (optional): an array of 1 to UK_RENEWAL_CHAIN_MAX certificates, each as
 * "certificate" is given, issuer first. INVALID_PARAMS (pe filled) when it is not such an array,
 * CERT_INVALID when an element is not a certificate. */
static int chain_param(const cJSON *params, renewal_req *req, uk_jsonrpc_param_error *pe)
{
    const cJSON *chain = cJSON_GetObjectItemCaseSensitive(params, "chain");
    *pe = (uk_jsonrpc_param_error){.field = "chain",
                                   .problem = "must be an array of 1 to 8 certificates"};
    if (chain == NULL)
        return UK_OK;
    int n = cJSON_IsArray(chain) ? cJSON_GetArraySize(chain) : -1;
    if (n < 1 || (size_t)n > UK_RENEWAL_CHAIN_MAX)
        return UK_E_INVALID_PARAMS;
    const cJSON *c;
    cJSON_ArrayForEach(c, chain)
    {
        if (!cJSON_IsString(c) || strlen(c->valuestring) > CERT_PARAM_MAX)
            return UK_E_INVALID_PARAMS;
        int rc =
            cert_param(c->valuestring, &req->chain[req->n_chain], &req->chain_len[req->n_chain]);
        if (rc != UK_OK)
            return rc;
        req->n_chain++;
    }
    return UK_OK;
}

/* A PIN in params that no guard takes (an error before the guard, a token that needs none) is
 * wiped before the call's params are freed. */
static void wipe_pin(uk_rpc_call *call)
{
    uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(uk_rpc_call_params(call), "pin"));
}

/*
 * params.encryption_certificate and params.enveloped_key (optional, both or neither): the
 * encryption certificate as "certificate" is given, and its key pair as the key-management centre
 * wrapped it, base64 of either a GM/T 0009 SM2EnvelopedKey (DER, converted here) or a GM/T 0016
 * ENVELOPEDKEYBLOB (4-byte ULONG fields, passed on). INVALID_PARAMS (pe filled), CERT_INVALID,
 * ENVELOPE_INVALID.
 */
static int dual_param(const cJSON *params, renewal_req *req, uk_jsonrpc_param_error *pe)
{
    const char *cert = NULL, *env = NULL;
    int rc = uk_jsonrpc_param_get0_string(params, "encryption_certificate", false, CERT_PARAM_MAX,
                                          &cert, pe);
    if (rc == UK_OK)
        rc = uk_jsonrpc_param_get0_string(params, "enveloped_key", false,
                                          4u * UK_X509_SM2_ENVELOPE_DER_MAX / 3u + 4u, &env, pe);
    if (rc != UK_OK)
        return rc;
    if ((cert == NULL) != (env == NULL)) {
        *pe = (uk_jsonrpc_param_error){
            .field = cert == NULL ? "encryption_certificate" : "enveloped_key",
            .problem = "must come with encryption_certificate and enveloped_key both"};
        return UK_E_INVALID_PARAMS;
    }
    if (cert == NULL)
        return UK_OK;
    rc = cert_param(cert, &req->enc_der, &req->enc_der_len);
    if (rc != UK_OK)
        return rc;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    rc = uk_base64_decode(env, strlen(env), &raw, &raw_len);
    if (rc == UK_E_NO_MEMORY)
        return rc;
    if (rc != UK_OK || raw_len == 0) {
        free(raw);
        return UK_E_ENVELOPE_INVALID;
    }
    if (raw[0] == 0x30) {
        /* DER (an ENVELOPEDKEYBLOB starts with its version, 1, little-endian). */
        size_t blob_len = UK_X509_SKF_ENVELOPE_LEN(4);
        uint8_t *blob = malloc(blob_len);
        rc = blob == NULL ? UK_E_NO_MEMORY
                          : uk_x509_sm2_envelope_blob(raw, raw_len, 4, blob, &blob_len);
        free(raw);
        if (rc != UK_OK) {
            free(blob);
            /* The converter's INVALID_PARAMS is about the envelope the caller sent. */
            return rc == UK_E_INVALID_PARAMS ? UK_E_ENVELOPE_INVALID : rc;
        }
        raw = blob;
        raw_len = blob_len;
    }
    req->envelope = raw;
    req->envelope_len = raw_len;
    return UK_OK;
}

static int commit_run(uk__rpc_guard *g, void *arg, uk_secret *pin)
{
    renewal_req *req = arg;
    req->guard = g;
    /* PIV: no PIN (writing a certificate takes the management key); PKCS#11: retiring the old
     * key needs it (uk_renewal_needs_pin). */
    uk_renewal_commit_req cr = {.id = req->id,
                                .cert_der = req->der,
                                .cert_der_len = req->der_len,
                                .chain = (const uint8_t *const *)req->chain,
                                .chain_len = req->chain_len,
                                .n_chain = req->n_chain,
                                .pin = pin,
                                .enc_cert_der = req->enc_der,
                                .enc_cert_der_len = req->enc_der_len,
                                .enveloped_key = req->envelope,
                                .enveloped_key_len = req->envelope_len};
    int rc = uk_renewal_commit(uk_rpc_get0_options(req->rpc)->renewal, &cr, renewal_done, req);
    uk_secret_free(pin);
    return rc;
}

/* Hands req to the guard for the renewal rec (its key named in the dialog). */
static void guard_renewal(renewal_req *req, const uk_renewal_rec *rec, uk__rpc_action action,
                          bool need_pin, uk__rpc_guard_run_fn run)
{
    snprintf(req->token, sizeof(req->token), "%s", rec->token_id);
    snprintf(req->slot, sizeof(req->slot), "%s", rec->slot);
    uk__rpc_guard_info info = {.action = action,
                               .token = req->token,
                               .key = req->slot,
                               .what = NULL,
                               .need_pin = need_pin};
    uk__rpc_guard_start(req->call, &info, run, req_free, req);
}

/* The record tells which key the certificate goes to, for the consent dialog; another origin's
 * renewal is not found, before any dialog. */
static void commit_found(void *arg, int err, const uk_renewal_result *res)
{
    renewal_req *req = arg;
    if (err == UK_OK && !visible(req, res->rec))
        err = UK_E_RENEWAL_NOT_FOUND;
    if (err != UK_OK) {
        wipe_pin(req->call);
        uk_rpc_call_error(req->call, err, NULL, NULL);
        req_free(req);
        return;
    }
    guard_renewal(req, res->rec, UK__ACTION_WRITE, uk_renewal_needs_pin(res->rec), commit_run);
}

void uk__rpc_renewal_commit(uk_rpc_call *call)
{
    cJSON *params = uk_rpc_call_params(call);
    const char *id = NULL, *cert = NULL;
    uk_jsonrpc_param_error pe;
    if (uk__rpc_guard_refuse_pin(call))
        return;
    if (uk_jsonrpc_param_get0_string(params, "renewal_id", true, UK_JOURNAL_ID_LEN - 1, &id, &pe) !=
            UK_OK ||
        uk_jsonrpc_param_get0_string(params, "certificate", true, CERT_PARAM_MAX, &cert, &pe) !=
            UK_OK) {
        wipe_pin(call);
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    renewal_req *req = NULL;
    int rc = service(call) == NULL                     ? UK_E_NO_SERVICE
             : (req = req_new(call, "commit")) == NULL ? UK_E_NO_MEMORY
                                                       : UK_OK;
    if (rc == UK_OK)
        rc = cert_param(cert, &req->der, &req->der_len);
    if (rc == UK_OK)
        rc = chain_param(params, req, &pe);
    if (rc == UK_OK)
        rc = dual_param(params, req, &pe);
    if (rc == UK_E_INVALID_PARAMS) {
        wipe_pin(call);
        req_free(req);
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    if (rc == UK_OK) {
        snprintf(req->id, sizeof(req->id), "%s", id);
        rc = uk_renewal_status(service(call), req->id, commit_found, req);
    }
    if (rc != UK_OK) {
        wipe_pin(call);
        req_free(req);
        uk_rpc_call_error(call, rc, NULL, NULL);
    }
}

static void by_id(uk_rpc_call *call, const char *method,
                  int (*fn)(uk_renewal *, const char *, uk_renewal_cb, void *))
{
    const char *id = NULL;
    uk_jsonrpc_param_error pe;
    if (uk_jsonrpc_param_get0_string(uk_rpc_call_params(call), "renewal_id", true,
                                     UK_JOURNAL_ID_LEN - 1, &id, &pe) != UK_OK) {
        wipe_pin(call);
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    renewal_req *req = NULL;
    int rc = UK_OK;
    if (service(call) == NULL)
        rc = UK_E_NO_SERVICE;
    else if ((req = req_new(call, method)) == NULL)
        rc = UK_E_NO_MEMORY;
    else
        rc = fn(service(call), id, renewal_done, req);
    if (rc != UK_OK) {
        free(req);
        wipe_pin(call);
        uk_rpc_call_error(call, rc, NULL, NULL);
    }
}

void uk__rpc_renewal_status(uk_rpc_call *call)
{
    by_id(call, "status", uk_renewal_status);
}

static int abort_run(uk__rpc_guard *g, void *arg, uk_secret *pin)
{
    renewal_req *req = arg;
    req->guard = g;
    int rc =
        uk_renewal_abort(uk_rpc_get0_options(req->rpc)->renewal, req->id, pin, renewal_done, req);
    uk_secret_free(pin);
    return rc;
}

/* abort: the record is looked up first, so that another origin's renewal is not found. A token
 * that hides private keys until the PIN is verified (PKCS#11) deletes the staged key only with
 * it: the PIN is asked like for sign. */
static void abort_found(void *arg, int err, const uk_renewal_result *res)
{
    renewal_req *req = arg;
    if (err == UK_OK && !visible(req, res->rec))
        err = UK_E_RENEWAL_NOT_FOUND;
    if (err == UK_OK && uk_renewal_needs_pin(res->rec)) {
        guard_renewal(req, res->rec, UK__ACTION_DELETE, true, abort_run);
        return;
    }
    wipe_pin(req->call);
    if (err == UK_OK)
        err = uk_renewal_abort(service(req->call), req->id, NULL, renewal_done, req);
    if (err != UK_OK) {
        uk_rpc_call_error(req->call, err, NULL, NULL);
        req_free(req);
    }
}

static int abort_lookup(uk_renewal *svc, const char *id, uk_renewal_cb cb, void *arg)
{
    (void)cb;
    renewal_req *req = arg;
    snprintf(req->id, sizeof(req->id), "%s", id);
    return uk_renewal_status(svc, req->id, abort_found, req);
}

void uk__rpc_renewal_abort(uk_rpc_call *call)
{
    if (uk__rpc_guard_refuse_pin(call))
        return;
    by_id(call, "abort", abort_lookup);
}

void uk__rpc_renewal_list(uk_rpc_call *call)
{
    renewal_req *req = NULL;
    int rc = UK_OK;
    if (service(call) == NULL)
        rc = UK_E_NO_SERVICE;
    else if ((req = req_new(call, "list")) == NULL)
        rc = UK_E_NO_MEMORY;
    else
        rc = uk_renewal_list(service(call), renewal_done, req);
    if (rc != UK_OK) {
        free(req);
        uk_rpc_call_error(call, rc, NULL, NULL);
    }
}
