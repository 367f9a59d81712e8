/* The renewal journal's records: names, the state machine, records in memory, the strict JSON. */
#include "uk_journal.h"
#include "uk_journal_internal.h"

#include "uk_base64.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_x509.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Revisions stay exact in a JSON number (2^53). */
#define MAX_REVISION 9007199254740992.0

/* ---- names and the state machine ------------------------------------------------------------ */

static const char *const state_names[] = {
    [UK_RENEWAL_PREPARED] = "prepared",
    [UK_RENEWAL_COMMITTING] = "committing",
    [UK_RENEWAL_WRITTEN] = "written",
    [UK_RENEWAL_ACTIVATED] = "activated",
    [UK_RENEWAL_DONE] = "done",
    [UK_RENEWAL_ABORTED] = "aborted",
    [UK_RENEWAL_ROLLED_BACK] = "rolled_back",
};

const char *uk_renewal_state_name(uk_renewal_state s)
{
    if (s < UK_RENEWAL_PREPARED || s > UK_RENEWAL_ROLLED_BACK)
        return NULL;
    return state_names[s];
}

bool uk_renewal_state_from_name(const char *name, uk_renewal_state *out)
{
    for (int s = UK_RENEWAL_PREPARED; name != NULL && s <= UK_RENEWAL_ROLLED_BACK; s++) {
        if (strcmp(name, state_names[s]) == 0) {
            *out = (uk_renewal_state)s;
            return true;
        }
    }
    return false;
}

const char *uk_renewal_mode_name(uk_renewal_mode m)
{
    switch (m) {
    case UK_RENEWAL_EXTEND:
        return "extend";
    case UK_RENEWAL_REPAIR:
        return "repair";
    }
    return NULL;
}

bool uk_renewal_mode_from_name(const char *name, uk_renewal_mode *out)
{
    if (name != NULL && strcmp(name, "extend") == 0)
        *out = UK_RENEWAL_EXTEND;
    else if (name != NULL && strcmp(name, "repair") == 0)
        *out = UK_RENEWAL_REPAIR;
    else
        return false;
    return true;
}

bool uk_renewal_state_is_final(uk_renewal_state s)
{
    return s == UK_RENEWAL_DONE || s == UK_RENEWAL_ABORTED || s == UK_RENEWAL_ROLLED_BACK;
}

bool uk_renewal_transition_ok(uk_renewal_state from, uk_renewal_state to)
{
    if (uk_renewal_state_name(from) == NULL || uk_renewal_state_name(to) == NULL ||
        uk_renewal_state_is_final(from))
        return false;
    if (from == to)
        return true;
    switch (from) {
    case UK_RENEWAL_PREPARED:
        return to == UK_RENEWAL_COMMITTING || to == UK_RENEWAL_ABORTED;
    case UK_RENEWAL_COMMITTING:
        return to == UK_RENEWAL_WRITTEN || to == UK_RENEWAL_PREPARED ||
               to == UK_RENEWAL_ROLLED_BACK;
    case UK_RENEWAL_WRITTEN:
        return to == UK_RENEWAL_ACTIVATED || to == UK_RENEWAL_ROLLED_BACK ||
               to == UK_RENEWAL_ABORTED;
    case UK_RENEWAL_ACTIVATED:
        return to == UK_RENEWAL_DONE;
    default:
        return false;
    }
}

/* States from which the issued certificate is part of the record. */
static bool state_needs_new_cert(uk_renewal_state s)
{
    return s != UK_RENEWAL_PREPARED && s != UK_RENEWAL_ABORTED;
}

/* ---- small helpers -------------------------------------------------------------------------- */

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_ok(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s != 0) {
        unsigned c = *s;
        size_t n;
        unsigned min;
        if (c < 0x80) {
            s++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            min = 0x80;
            c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            min = 0x800;
            c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            min = 0x10000;
            c &= 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return false;
            c = c << 6 | (s[i] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return false;
        s += n + 1;
    }
    return true;
}

static bool text_ok(const char *s)
{
    return s != NULL && s[0] != '\0' && utf8_ok(s);
}

bool uk__journal_is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

void uk__journal_to_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int uk__journal_sha256_hex(const uint8_t *p, size_t n, char out[UK_JOURNAL_FINGERPRINT_LEN])
{
    uint8_t md[32];
    size_t md_len = sizeof(md);
    int rc = uk_x509_digest(UK_X509_DIGEST_SHA256, p, n, md, &md_len);
    if (rc != UK_OK)
        return rc;
    uk__journal_to_hex(md, md_len, out);
    return UK_OK;
}

/* "2026-11-24T08:00:00Z" (extended) or "20261124T080000Z" (basic, for file names). */
void uk__journal_format_time(int64_t t, bool basic, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL ||
        strftime(out, cap, basic ? "%Y%m%dT%H%M%SZ" : "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%s", basic ? "19700101T000000Z" : "1970-01-01T00:00:00Z");
}

static bool num2(const char *s, int lo, int hi)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return false;
    int v = (s[0] - '0') * 10 + (s[1] - '0');
    return v >= lo && v <= hi;
}

/* Exactly "YYYY-MM-DDTHH:MM:SSZ" with plausible numbers. */
static bool time_ok(const char *s)
{
    if (s == NULL || strlen(s) != UK_JOURNAL_TIME_LEN - 1)
        return false;
    return num2(s, 0, 99) && num2(s + 2, 0, 99) && s[4] == '-' && num2(s + 5, 1, 12) &&
           s[7] == '-' && num2(s + 8, 1, 31) && s[10] == 'T' && num2(s + 11, 0, 23) &&
           s[13] == ':' && num2(s + 14, 0, 59) && s[16] == ':' && num2(s + 17, 0, 60) &&
           s[19] == 'Z';
}

bool uk__journal_bytes_eq(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static int dup_str(const char *s, char **out)
{
    *out = NULL;
    if (s == NULL)
        return UK_OK;
    *out = strdup(s);
    return *out == NULL ? UK_E_NO_MEMORY : UK_OK;
}

static int dup_bytes(const uint8_t *p, size_t n, uint8_t **out)
{
    *out = NULL;
    if (p == NULL || n == 0)
        return UK_OK;
    *out = malloc(n);
    if (*out == NULL)
        return UK_E_NO_MEMORY;
    memcpy(*out, p, n);
    return UK_OK;
}

/* ---- records in memory ---------------------------------------------------------------------- */

static void free_steps(uk_renewal_step *steps, size_t n)
{
    for (size_t i = 0; steps != NULL && i < n; i++) {
        free(steps[i].step);
        free(steps[i].result);
    }
    free(steps);
}

void uk_renewal_rec_free(uk_renewal_rec *rec)
{
    if (rec == NULL)
        return;
    free(rec->token_id);
    free(rec->token_serial);
    free(rec->driver);
    free(rec->slot);
    free(rec->staged_slot);
    free(rec->algorithm);
    free(rec->origin);
    free(rec->csr_pem);
    free(rec->staged_spki);
    free(rec->old_cert_der);
    free(rec->old_cert_backup);
    free(rec->new_cert_der);
    free_steps(rec->steps, rec->n_steps);
    free(rec);
}

void uk_renewal_recs_free(uk_renewal_rec **recs, size_t n)
{
    for (size_t i = 0; recs != NULL && i < n; i++)
        uk_renewal_rec_free(recs[i]);
    free(recs);
}

/* A deep copy of in; every pointer of *out is its own. */
int uk__journal_rec_dup(const uk_renewal_rec *in, uk_renewal_rec **out)
{
    uk_renewal_rec *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return UK_E_NO_MEMORY;
    memcpy(r->id, in->id, sizeof(r->id));
    memcpy(r->created, in->created, sizeof(r->created));
    memcpy(r->updated, in->updated, sizeof(r->updated));
    memcpy(r->old_cert_sha256, in->old_cert_sha256, sizeof(r->old_cert_sha256));
    r->mode = in->mode;
    r->state = in->state;
    r->revision = in->revision;
    int rc = UK_OK;
    if ((rc = dup_str(in->token_id, &r->token_id)) != UK_OK ||
        (rc = dup_str(in->token_serial, &r->token_serial)) != UK_OK ||
        (rc = dup_str(in->driver, &r->driver)) != UK_OK ||
        (rc = dup_str(in->slot, &r->slot)) != UK_OK ||
        (rc = dup_str(in->staged_slot, &r->staged_slot)) != UK_OK ||
        (rc = dup_str(in->algorithm, &r->algorithm)) != UK_OK ||
        (rc = dup_str(in->origin, &r->origin)) != UK_OK ||
        (rc = dup_str(in->csr_pem, &r->csr_pem)) != UK_OK ||
        (rc = dup_str(in->old_cert_backup, &r->old_cert_backup)) != UK_OK ||
        (rc = dup_bytes(in->staged_spki, in->staged_spki_len, &r->staged_spki)) != UK_OK ||
        (rc = dup_bytes(in->old_cert_der, in->old_cert_der_len, &r->old_cert_der)) != UK_OK ||
        (rc = dup_bytes(in->new_cert_der, in->new_cert_der_len, &r->new_cert_der)) != UK_OK)
        goto out;
    r->staged_spki_len = r->staged_spki ? in->staged_spki_len : 0;
    r->old_cert_der_len = r->old_cert_der ? in->old_cert_der_len : 0;
    r->new_cert_der_len = r->new_cert_der ? in->new_cert_der_len : 0;
    if (in->n_steps > 0 && in->steps != NULL) {
        r->steps = calloc(in->n_steps, sizeof(*r->steps));
        if (r->steps == NULL) {
            rc = UK_E_NO_MEMORY;
            goto out;
        }
        r->n_steps = in->n_steps;
        for (size_t i = 0; i < in->n_steps; i++) {
            memcpy(r->steps[i].time, in->steps[i].time, sizeof(r->steps[i].time));
            if ((rc = dup_str(in->steps[i].step, &r->steps[i].step)) != UK_OK ||
                (rc = dup_str(in->steps[i].result, &r->steps[i].result)) != UK_OK)
                goto out;
        }
    }
out:
    if (rc != UK_OK) {
        uk_renewal_rec_free(r);
        return rc;
    }
    *out = r;
    return UK_OK;
}

int uk__journal_add_step_at(uk_renewal_rec *rec, int64_t t, const char *step, const char *result)
{
    if (!text_ok(step) || !text_ok(result))
        return UK_E_INVALID_PARAMS;
    if (rec->n_steps >= UK_JOURNAL_MAX_STEPS)
        return UK_E_LIMIT_EXCEEDED;
    uk_renewal_step s = {0};
    uk__journal_format_time(t, false, s.time, sizeof(s.time));
    s.step = strdup(step);
    s.result = strdup(result);
    uk_renewal_step *steps =
        s.step && s.result ? realloc(rec->steps, (rec->n_steps + 1) * sizeof(*steps)) : NULL;
    if (steps == NULL) {
        free(s.step);
        free(s.result);
        return UK_E_NO_MEMORY;
    }
    steps[rec->n_steps] = s;
    rec->steps = steps;
    rec->n_steps++;
    return UK_OK;
}

int uk_renewal_rec_add_step(uk_renewal_rec *rec, const char *step, const char *result)
{
    if (rec == NULL)
        return UK_E_INVALID_PARAMS;
    return uk__journal_add_step_at(rec, (int64_t)time(NULL), step, result);
}

int uk_renewal_rec_set1_new_cert(uk_renewal_rec *rec, const uint8_t *der, size_t len)
{
    if (rec == NULL || der == NULL || len == 0)
        return UK_E_INVALID_PARAMS;
    uint8_t *copy = NULL;
    if (dup_bytes(der, len, &copy) != UK_OK)
        return UK_E_NO_MEMORY;
    free(rec->new_cert_der);
    rec->new_cert_der = copy;
    rec->new_cert_der_len = len;
    return UK_OK;
}

int uk_renewal_rec_set1_backup(uk_renewal_rec *rec, const char *path)
{
    if (rec == NULL || !text_ok(path))
        return UK_E_INVALID_PARAMS;
    char *copy = strdup(path);
    if (copy == NULL)
        return UK_E_NO_MEMORY;
    free(rec->old_cert_backup);
    rec->old_cert_backup = copy;
    return UK_OK;
}

/*
 * Everything a record must satisfy, in memory and on disk, except the times (checked where they
 * come from). what names the record in the log. UK_E_INVALID_PARAMS when something is wrong.
 */
int uk__journal_check_fields(const uk_renewal_rec *r, const char *what)
{
    const char *bad = NULL;
    if (!text_ok(r->token_id))
        bad = "token_id";
    else if (!text_ok(r->token_serial))
        bad = "token_serial";
    else if (!text_ok(r->driver))
        bad = "driver";
    else if (!text_ok(r->slot))
        bad = "slot";
    else if (!text_ok(r->staged_slot) || strcmp(r->slot, r->staged_slot) == 0)
        bad = "staged_slot (missing, or the working slot)";
    else if (uk_renewal_mode_name(r->mode) == NULL)
        bad = "mode";
    else if (!text_ok(r->algorithm))
        bad = "algorithm";
    else if (r->origin != NULL && !text_ok(r->origin))
        bad = "origin";
    else if (uk_renewal_state_name(r->state) == NULL)
        bad = "state";
    else if (!text_ok(r->csr_pem) ||
             (strncmp(r->csr_pem, "-----BEGIN CERTIFICATE REQUEST-----", 35) != 0 &&
              strncmp(r->csr_pem, "-----BEGIN NEW CERTIFICATE REQUEST-----", 39) != 0))
        bad = "csr_pem";
    else if (r->staged_spki == NULL || r->staged_spki_len == 0)
        bad = "staged_spki";
    else if ((r->old_cert_der == NULL) != (r->old_cert_der_len == 0))
        bad = "old_cert_der";
    else if (r->mode == UK_RENEWAL_EXTEND && r->old_cert_der == NULL)
        bad = "old_cert_der (required for extend)";
    else if ((r->new_cert_der == NULL) != (r->new_cert_der_len == 0))
        bad = "new_cert_der";
    else if (state_needs_new_cert(r->state) && r->new_cert_der == NULL)
        bad = "new_cert_der (required from committing on)";
    else if (r->old_cert_backup != NULL && !text_ok(r->old_cert_backup))
        bad = "old_cert_backup";
    else if (r->n_steps > UK_JOURNAL_MAX_STEPS || (r->n_steps > 0 && r->steps == NULL))
        bad = "steps";
    for (size_t i = 0; bad == NULL && i < r->n_steps; i++) {
        if (!time_ok(r->steps[i].time) || !text_ok(r->steps[i].step) ||
            !text_ok(r->steps[i].result))
            bad = "steps";
    }
    if (bad != NULL) {
        UK_LOG_WARN("journal: %s: invalid %s", what, bad);
        return UK_E_INVALID_PARAMS;
    }
    return UK_OK;
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static bool add_b64(cJSON *obj, const char *key, const uint8_t *p, size_t n)
{
    char *s = NULL;
    if (uk_base64_encode(p, n, &s, NULL) != UK_OK)
        return false;
    bool ok = cJSON_AddStringToObject(obj, key, s) != NULL;
    free(s);
    return ok;
}

/* The file's text, '\n'-terminated, in *out (free()). */
int uk__journal_serialize(const uk_renewal_rec *r, char **out, size_t *out_len)
{
    int rc = UK_E_NO_MEMORY;
    char *text = NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON *steps = NULL;
    if (o == NULL || cJSON_AddNumberToObject(o, "version", UK__JOURNAL_FILE_VERSION) == NULL ||
        cJSON_AddStringToObject(o, "id", r->id) == NULL ||
        cJSON_AddStringToObject(o, "token_id", r->token_id) == NULL ||
        cJSON_AddStringToObject(o, "token_serial", r->token_serial) == NULL ||
        cJSON_AddStringToObject(o, "driver", r->driver) == NULL ||
        cJSON_AddStringToObject(o, "slot", r->slot) == NULL ||
        cJSON_AddStringToObject(o, "staged_slot", r->staged_slot) == NULL ||
        cJSON_AddStringToObject(o, "mode", uk_renewal_mode_name(r->mode)) == NULL ||
        cJSON_AddStringToObject(o, "algorithm", r->algorithm) == NULL ||
        (r->origin != NULL && cJSON_AddStringToObject(o, "origin", r->origin) == NULL) ||
        cJSON_AddStringToObject(o, "state", uk_renewal_state_name(r->state)) == NULL ||
        cJSON_AddStringToObject(o, "created", r->created) == NULL ||
        cJSON_AddStringToObject(o, "updated", r->updated) == NULL ||
        cJSON_AddNumberToObject(o, "revision", (double)r->revision) == NULL ||
        cJSON_AddStringToObject(o, "csr_pem", r->csr_pem) == NULL ||
        !add_b64(o, "staged_spki", r->staged_spki, r->staged_spki_len))
        goto out;
    if (r->old_cert_der != NULL &&
        (cJSON_AddStringToObject(o, "old_cert_sha256", r->old_cert_sha256) == NULL ||
         !add_b64(o, "old_cert_der", r->old_cert_der, r->old_cert_der_len)))
        goto out;
    if (r->old_cert_backup != NULL &&
        cJSON_AddStringToObject(o, "old_cert_backup", r->old_cert_backup) == NULL)
        goto out;
    if (r->new_cert_der != NULL &&
        !add_b64(o, "new_cert_der", r->new_cert_der, r->new_cert_der_len))
        goto out;
    if ((steps = cJSON_AddArrayToObject(o, "steps")) == NULL)
        goto out;
    for (size_t i = 0; i < r->n_steps; i++) {
        cJSON *s = cJSON_CreateObject();
        if (s == NULL)
            goto out;
        if (!cJSON_AddItemToArray(steps, s)) {
            cJSON_Delete(s);
            goto out;
        }
        if (cJSON_AddStringToObject(s, "time", r->steps[i].time) == NULL ||
            cJSON_AddStringToObject(s, "step", r->steps[i].step) == NULL ||
            cJSON_AddStringToObject(s, "result", r->steps[i].result) == NULL)
            goto out;
    }
    if ((text = cJSON_Print(o)) == NULL)
        goto out;
    size_t n = strlen(text);
    if (n + 1 > UK_JOURNAL_MAX_FILE) {
        UK_LOG_WARN("journal: record %s would be %zu bytes, over the limit", r->id, n + 1);
        rc = UK_E_LIMIT_EXCEEDED;
        goto out;
    }
    char *buf = malloc(n + 2);
    if (buf == NULL)
        goto out;
    memcpy(buf, text, n);
    buf[n] = '\n';
    buf[n + 1] = '\0';
    *out = buf;
    *out_len = n + 1;
    rc = UK_OK;
out:
    cJSON_free(text);
    cJSON_Delete(o);
    return rc;
}

/* A "\u0000" escape would cut a string short without cJSON saying so. */
static bool has_nul_escape(const char *text, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] != '\\')
            continue;
        if (text[i + 1] == 'u' && i + 5 < len && memcmp(text + i + 2, "0000", 4) == 0)
            return true;
        i++; /* skip the escaped character */
    }
    return false;
}

static bool get_text(const cJSON *item, char **out)
{
    if (!cJSON_IsString(item) || !text_ok(item->valuestring) || *out != NULL)
        return false;
    return (*out = strdup(item->valuestring)) != NULL;
}

static bool get_fixed(const cJSON *item, char *out, size_t cap)
{
    if (!cJSON_IsString(item) || strlen(item->valuestring) >= cap || out[0] != '\0')
        return false;
    memcpy(out, item->valuestring, strlen(item->valuestring) + 1);
    return true;
}

static bool get_b64(const cJSON *item, uint8_t **out, size_t *out_len)
{
    if (!cJSON_IsString(item) || item->valuestring[0] == '\0' || *out != NULL)
        return false;
    return uk_base64_decode(item->valuestring, strlen(item->valuestring), out, out_len) == UK_OK;
}

static bool parse_steps(const cJSON *arr, uk_renewal_rec *r)
{
    if (!cJSON_IsArray(arr) || r->steps != NULL)
        return false;
    int n = cJSON_GetArraySize(arr);
    if (n < 0 || (size_t)n > UK_JOURNAL_MAX_STEPS)
        return false;
    if (n == 0)
        return true;
    r->steps = calloc((size_t)n, sizeof(*r->steps));
    if (r->steps == NULL)
        return false;
    r->n_steps = (size_t)n;
    size_t i = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, arr)
    {
        if (!cJSON_IsObject(s) || cJSON_GetArraySize(s) != 3)
            return false;
        const cJSON *f;
        cJSON_ArrayForEach(f, s)
        {
            bool ok;
            if (strcmp(f->string, "time") == 0)
                ok = get_fixed(f, r->steps[i].time, sizeof(r->steps[i].time));
            else if (strcmp(f->string, "step") == 0)
                ok = get_text(f, &r->steps[i].step);
            else if (strcmp(f->string, "result") == 0)
                ok = get_text(f, &r->steps[i].result);
            else
                ok = false;
            if (!ok)
                return false; /* unknown or repeated key, wrong type */
        }
        i++;
    }
    return true;
}

/* One key of the top-level object into r; false when unknown, repeated or malformed. */
static bool parse_key(const cJSON *item, uk_renewal_rec *r, bool *have_version, char *sha256)
{
    const char *k = item->string;
    if (strcmp(k, "version") == 0) {
        if (*have_version || !cJSON_IsNumber(item) || item->valuedouble != UK__JOURNAL_FILE_VERSION)
            return false;
        *have_version = true;
        return true;
    }
    if (strcmp(k, "id") == 0)
        return get_fixed(item, r->id, sizeof(r->id));
    if (strcmp(k, "token_id") == 0)
        return get_text(item, &r->token_id);
    if (strcmp(k, "token_serial") == 0)
        return get_text(item, &r->token_serial);
    if (strcmp(k, "driver") == 0)
        return get_text(item, &r->driver);
    if (strcmp(k, "slot") == 0)
        return get_text(item, &r->slot);
    if (strcmp(k, "staged_slot") == 0)
        return get_text(item, &r->staged_slot);
    if (strcmp(k, "mode") == 0)
        return cJSON_IsString(item) && r->mode == 0 &&
               uk_renewal_mode_from_name(item->valuestring, &r->mode);
    if (strcmp(k, "algorithm") == 0)
        return get_text(item, &r->algorithm);
    if (strcmp(k, "origin") == 0) /* optional: absent in records of the local user */
        return get_text(item, &r->origin);
    if (strcmp(k, "state") == 0)
        return cJSON_IsString(item) && r->state == 0 &&
               uk_renewal_state_from_name(item->valuestring, &r->state);
    if (strcmp(k, "created") == 0)
        return get_fixed(item, r->created, sizeof(r->created));
    if (strcmp(k, "updated") == 0)
        return get_fixed(item, r->updated, sizeof(r->updated));
    if (strcmp(k, "revision") == 0) {
        if (r->revision != 0 || !cJSON_IsNumber(item) || item->valuedouble < 1 ||
            item->valuedouble > MAX_REVISION ||
            item->valuedouble != (double)(uint64_t)item->valuedouble)
            return false;
        r->revision = (uint64_t)item->valuedouble;
        return true;
    }
    if (strcmp(k, "csr_pem") == 0)
        return get_text(item, &r->csr_pem);
    if (strcmp(k, "staged_spki") == 0)
        return get_b64(item, &r->staged_spki, &r->staged_spki_len);
    if (strcmp(k, "old_cert_sha256") == 0)
        return get_fixed(item, sha256, UK_JOURNAL_FINGERPRINT_LEN);
    if (strcmp(k, "old_cert_der") == 0)
        return get_b64(item, &r->old_cert_der, &r->old_cert_der_len);
    if (strcmp(k, "old_cert_backup") == 0)
        return get_text(item, &r->old_cert_backup);
    if (strcmp(k, "new_cert_der") == 0)
        return get_b64(item, &r->new_cert_der, &r->new_cert_der_len);
    if (strcmp(k, "steps") == 0)
        return parse_steps(item, r);
    return false;
}

/*
 * The record in text (the file name's id is expected_id). UK_E_NOT_SUPPORTED for a newer
 * version; UK_E_INVALID_PARAMS for anything else wrong, i.e. a corrupt record (logged).
 */
int uk__journal_parse(const char *text, size_t len, const char *expected_id, uk_renewal_rec **out)
{
    int rc = UK_E_INVALID_PARAMS;
    const char *why = "not a JSON object";
    uk_renewal_rec *r = NULL;
    const char *end = NULL;
    cJSON *root = NULL;

    if (len == 0) {
        why = "empty";
        goto out;
    }
    if (has_nul_escape(text, len)) {
        why = "a \\u0000 escape";
        goto out;
    }
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root == NULL || !cJSON_IsObject(root))
        goto out;
    while (end != NULL && end < text + len &&
           (*end == ' ' || *end == '\n' || *end == '\t' || *end == '\r'))
        end++;
    if (end != text + len) {
        why = "text after the JSON object";
        goto out;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (cJSON_IsNumber(v) && v->valuedouble > UK__JOURNAL_FILE_VERSION && v->valuedouble < 1e9 &&
        v->valuedouble == (double)(long)v->valuedouble) {
        UK_LOG_WARN("journal: record %s has version %g, written by a newer ukeyd; left alone",
                    expected_id, v->valuedouble);
        rc = UK_E_NOT_SUPPORTED;
        goto out;
    }
    if ((r = calloc(1, sizeof(*r))) == NULL) {
        rc = UK_E_NO_MEMORY;
        goto out;
    }
    bool have_version = false;
    char sha256[UK_JOURNAL_FINGERPRINT_LEN] = "";
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        if (!parse_key(item, r, &have_version, sha256)) {
            UK_LOG_ERR("journal: record %s: key \"%s\" is unknown, repeated or malformed",
                       expected_id, item->string);
            why = NULL;
            goto out;
        }
    }
    why = NULL;
    const char *missing = NULL;
    if (!have_version)
        missing = "version";
    else if (strcmp(r->id, expected_id) != 0)
        missing = "id (not the file's)";
    else if (!time_ok(r->created))
        missing = "created";
    else if (!time_ok(r->updated))
        missing = "updated";
    else if (r->revision == 0)
        missing = "revision";
    else if (cJSON_GetObjectItemCaseSensitive(root, "steps") == NULL)
        missing = "steps";
    else if ((r->old_cert_der != NULL) != (sha256[0] != '\0'))
        missing = "old_cert_sha256 or old_cert_der";
    if (missing != NULL) {
        UK_LOG_ERR("journal: record %s: missing or invalid %s", expected_id, missing);
        goto out;
    }
    if (r->old_cert_der != NULL) {
        int hrc = uk__journal_sha256_hex(r->old_cert_der, r->old_cert_der_len, r->old_cert_sha256);
        if (hrc != UK_OK) {
            rc = hrc;
            goto out;
        }
        if (strcmp(sha256, r->old_cert_sha256) != 0) {
            UK_LOG_ERR("journal: record %s: old_cert_sha256 does not match old_cert_der",
                       expected_id);
            goto out;
        }
    }
    if (uk__journal_check_fields(r, expected_id) != UK_OK)
        goto out;
    *out = r;
    r = NULL;
    rc = UK_OK;
out:
    if (rc == UK_E_INVALID_PARAMS && why != NULL)
        UK_LOG_ERR("journal: record %s: %s", expected_id, why);
    uk_renewal_rec_free(r);
    cJSON_Delete(root);
    return rc;
}

int uk__journal_check_update(const uk_renewal_rec *stored, const uk_renewal_rec *rec)
{
    if (rec->revision != stored->revision) {
        UK_LOG_NOTICE("journal: renewal %s: update of revision %llu, but revision %llu is stored",
                      rec->id, (unsigned long long)rec->revision,
                      (unsigned long long)stored->revision);
        return UK_E_RENEWAL_STATE;
    }
    if (!uk_renewal_transition_ok(stored->state, rec->state)) {
        UK_LOG_NOTICE("journal: renewal %s: %s -> %s is not allowed", rec->id,
                      uk_renewal_state_name(stored->state),
                      uk_renewal_state_name(rec->state) ? uk_renewal_state_name(rec->state)
                                                        : "(invalid)");
        return UK_E_RENEWAL_STATE;
    }
    const char *changed = NULL;
    if (!str_eq(stored->token_id, rec->token_id) ||
        !str_eq(stored->token_serial, rec->token_serial) || !str_eq(stored->driver, rec->driver))
        changed = "the token";
    else if (!str_eq(stored->slot, rec->slot) || !str_eq(stored->staged_slot, rec->staged_slot))
        changed = "a key location";
    else if (stored->mode != rec->mode || !str_eq(stored->algorithm, rec->algorithm))
        changed = "mode or algorithm";
    else if (!str_eq(stored->origin, rec->origin))
        changed = "the origin";
    else if (strcmp(stored->created, rec->created) != 0)
        changed = "created";
    else if (!str_eq(stored->csr_pem, rec->csr_pem) ||
             !uk__journal_bytes_eq(stored->staged_spki, stored->staged_spki_len, rec->staged_spki,
                                   rec->staged_spki_len))
        changed = "the request or staged key";
    else if (!uk__journal_bytes_eq(stored->old_cert_der, stored->old_cert_der_len,
                                   rec->old_cert_der, rec->old_cert_der_len))
        changed = "the old certificate";
    else if (stored->old_cert_backup != NULL &&
             !str_eq(stored->old_cert_backup, rec->old_cert_backup))
        changed = "the backup path";
    else if (stored->state != UK_RENEWAL_PREPARED && stored->new_cert_der != NULL &&
             !uk__journal_bytes_eq(stored->new_cert_der, stored->new_cert_der_len,
                                   rec->new_cert_der, rec->new_cert_der_len))
        changed = "the new certificate after prepared";
    else if (rec->n_steps < stored->n_steps || (rec->n_steps > 0 && rec->steps == NULL))
        changed = "the step log (steps removed)";
    for (size_t i = 0; changed == NULL && i < stored->n_steps; i++) {
        if (strcmp(stored->steps[i].time, rec->steps[i].time) != 0 ||
            !str_eq(stored->steps[i].step, rec->steps[i].step) ||
            !str_eq(stored->steps[i].result, rec->steps[i].result))
            changed = "the step log (a step rewritten)";
    }
    if (changed != NULL) {
        UK_LOG_WARN("journal: renewal %s: update changes %s; refused", rec->id, changed);
        return UK_E_INVALID_PARAMS;
    }
    return uk__journal_check_fields(rec, rec->id);
}
