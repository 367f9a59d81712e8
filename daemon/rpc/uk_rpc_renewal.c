/* Handlers for renewal: renewal.prepare, renewal.commit, renewal.status, renewal.list,
 * renewal.abort, and the renewal.changed event. They see the renewal service through
 * uk_renewal.h only. docs/protocol.md has the methods, docs/renewal.md the service. */
#include "uk_base64.h"
#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_renewal.h"
#include "uk_rpc_call.h"
#include "uk_rpc_handlers.h"
#include "uk_token.h"
#include "uk_x509.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest "certificate" parameter accepted, in characters (PEM of the largest DER). */
#define CERT_PARAM_MAX (2u * UK_X509_DER_MAX + 1024u)

typedef struct renewal_req {
    uk_rpc_call *call;
    uk_rpc *rpc;
    const char *method;
} renewal_req;

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
    uk_rpc_notify(rpc, "renewal.changed", params);
}

static void renewal_done(void *arg, int err, const uk_renewal_result *res)
{
    renewal_req *req = arg;
    if (err == UK_E_PIN_INCORRECT) {
        cJSON *extra = cJSON_CreateObject();
        if (extra != NULL)
            cJSON_AddNumberToObject(extra, "retries_left", res->pin_retries);
        uk_rpc_call_error(req->call, err, NULL, extra);
        free(req);
        return;
    }
    if (err != UK_OK) {
        uk_rpc_call_error(req->call, err, NULL, NULL);
        free(req);
        return;
    }
    cJSON *r = NULL;
    bool ok;
    if (res->rec == NULL) { /* list */
        r = cJSON_CreateObject();
        cJSON *arr = r != NULL ? cJSON_AddArrayToObject(r, "renewals") : NULL;
        ok = arr != NULL;
        for (size_t i = 0; ok && i < res->n_recs; i++)
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
    free(req);
}

static renewal_req *req_new(uk_rpc_call *call, const char *method)
{
    renewal_req *req = calloc(1, sizeof(*req));
    if (req != NULL) {
        req->call = call;
        req->rpc = uk_rpc_call_rpc(call);
        req->method = method;
    }
    return req;
}

static uk_renewal *service(uk_rpc_call *call)
{
    return uk_rpc_get0_options(uk_rpc_call_rpc(call))->renewal;
}

void uk__rpc_renewal_prepare(uk_rpc_call *call)
{
    cJSON *params = uk_rpc_call_params(call);
    const char *token = NULL, *slot = NULL, *mode_name = NULL, *alg = NULL;
    uk_secret *pin = NULL;
    uk_jsonrpc_param_error pe;
    int rc;
    if ((rc = uk__rpc_take_pin(call, &pin, &pe)) == UK_E_PIN_FROM_PAGE_DISABLED) {
        uk_rpc_call_error(call, rc, NULL, NULL);
        return;
    }
    if (rc != UK_OK ||
        uk_jsonrpc_param_get0_string(params, "token", true, 95, &token, &pe) != UK_OK ||
        uk_jsonrpc_param_get0_string(params, "slot", true, UK_KEY_ID_MAX - 1, &slot, &pe) !=
            UK_OK ||
        uk_jsonrpc_param_get0_string(params, "mode", true, 16, &mode_name, &pe) != UK_OK ||
        uk_jsonrpc_param_get0_string(params, "algorithm", false, 16, &alg, &pe) != UK_OK) {
        uk_secret_free(pin);
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    uk_renewal_mode mode;
    if (!uk_renewal_mode_from_name(mode_name, &mode)) {
        uk_secret_free(pin);
        pe = (uk_jsonrpc_param_error){.field = "mode", .problem = "must be extend or repair"};
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    if (strcmp(slot, "9a") != 0 && strcmp(slot, "9c") != 0) {
        uk_secret_free(pin);
        pe = (uk_jsonrpc_param_error){.field = "slot", .problem = "must be 9a or 9c"};
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    if (alg != NULL && strcmp(alg, "rsa2048") != 0 && strcmp(alg, "p256") != 0 &&
        strcmp(alg, "p384") != 0) {
        uk_secret_free(pin);
        pe = (uk_jsonrpc_param_error){.field = "algorithm", .problem = "is not supported"};
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    renewal_req *req = NULL;
    if (pin == NULL)
        rc = UK_E_PIN_REQUIRED;
    else if (service(call) == NULL)
        rc = UK_E_NO_SERVICE;
    else if ((req = req_new(call, "prepare")) == NULL)
        rc = UK_E_NO_MEMORY;
    else {
        uk_renewal_prepare_req pr = {
            .token_id = token, .slot = slot, .mode = mode, .algorithm = alg, .pin = pin};
        rc = uk_renewal_prepare(service(call), &pr, renewal_done, req);
    }
    uk_secret_free(pin);
    if (rc != UK_OK) {
        free(req);
        uk_rpc_call_error(call, rc, NULL, NULL);
    }
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

void uk__rpc_renewal_commit(uk_rpc_call *call)
{
    cJSON *params = uk_rpc_call_params(call);
    const char *id = NULL, *cert = NULL;
    uk_jsonrpc_param_error pe;
    if (uk_jsonrpc_param_get0_string(params, "renewal_id", true, UK_JOURNAL_ID_LEN - 1, &id, &pe) !=
            UK_OK ||
        uk_jsonrpc_param_get0_string(params, "certificate", true, CERT_PARAM_MAX, &cert, &pe) !=
            UK_OK) {
        uk_rpc_call_param_error(call, &pe);
        return;
    }
    uint8_t *der = NULL;
    size_t len = 0;
    renewal_req *req = NULL;
    int rc = cert_param(cert, &der, &len);
    if (rc == UK_OK && service(call) == NULL)
        rc = UK_E_NO_SERVICE;
    if (rc == UK_OK && (req = req_new(call, "commit")) == NULL)
        rc = UK_E_NO_MEMORY;
    if (rc == UK_OK)
        rc = uk_renewal_commit(service(call), id, der, len, renewal_done, req);
    free(der);
    if (rc != UK_OK) {
        free(req);
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
        uk_rpc_call_error(call, rc, NULL, NULL);
    }
}

void uk__rpc_renewal_status(uk_rpc_call *call)
{
    by_id(call, "status", uk_renewal_status);
}

void uk__rpc_renewal_abort(uk_rpc_call *call)
{
    by_id(call, "abort", uk_renewal_abort);
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
