/* tray_state.c - the tray's state, menu and reminders as plain C (see tray_state.h). */
#include "tray_state.h"

#include <errno.h>
#include <fcntl.h>
#include <libintl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define _(s)          dgettext(UK_TRAY_DOMAIN, s)
#define N_(s1, s2, n) dngettext(UK_TRAY_DOMAIN, s1, s2, (unsigned long)(n))

#define DAY 86400

/* Largest store or config file read. */
#define FILE_MAX (1024 * 1024)

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

static const char *get_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* "2026-10-25T01:47:00Z" -> seconds since the epoch; false when it is not that form. */
static bool parse_iso(const char *s, time_t *out)
{
    struct tm tm = {0};
    char z = 0;
    if (s == NULL ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &z) != 7 ||
        z != 'Z')
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = timegm(&tm);
    return true;
}

const char *uk_tray_state_name(uk_tray_state s)
{
    switch (s) {
    case UK_TRAY_DAEMON_DOWN:
        return "daemon-down";
    case UK_TRAY_NO_KEY:
        return "no-key";
    case UK_TRAY_EXPIRED:
        return "expired";
    case UK_TRAY_EXPIRING:
        return "expiring";
    case UK_TRAY_NOT_YET_VALID:
        return "not-yet-valid";
    case UK_TRAY_VALID:
        return "valid";
    }
    return "unknown";
}

const char *uk_tray_state_icon(uk_tray_state s)
{
    switch (s) {
    case UK_TRAY_DAEMON_DOWN:
        return "dialog-error-symbolic";
    case UK_TRAY_NO_KEY:
        return "media-removable-symbolic";
    case UK_TRAY_EXPIRED:
        return "dialog-warning-symbolic";
    case UK_TRAY_EXPIRING:
        return "security-medium-symbolic";
    case UK_TRAY_NOT_YET_VALID:
        return "appointment-soon-symbolic";
    case UK_TRAY_VALID:
        return "security-high-symbolic";
    }
    return "dialog-question-symbolic";
}

void uk_tray_model_init(uk_tray_model *m, unsigned expiring_days)
{
    memset(m, 0, sizeof(*m));
    m->expiring_days = expiring_days;
}

void uk_tray_model_set_daemon(uk_tray_model *m, bool up)
{
    if (!up) {
        unsigned e = m->expiring_days;
        uk_tray_model_init(m, e);
        return;
    }
    m->daemon_up = true;
}

static uk_tray_token *find_token(uk_tray_model *m, const char *id)
{
    for (size_t i = 0; id != NULL && id[0] != '\0' && i < m->n_tokens; i++)
        if (strcmp(m->tokens[i].id, id) == 0)
            return &m->tokens[i];
    return NULL;
}

int uk_tray_model_set_tokens(uk_tray_model *m, const cJSON *result, const char *reason)
{
    if (result == NULL) {
        m->n_tokens = 0;
        m->no_service = reason != NULL && strcmp(reason, "NO_SERVICE") == 0;
        return 0;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(result, "tokens");
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > UK_TRAY_MAX_TOKENS)
        return -1;
    /* Built aside, so that a bad entry leaves the model as it was. */
    uk_tray_token *next = calloc(UK_TRAY_MAX_TOKENS, sizeof(*next));
    if (next == NULL)
        return -1;
    size_t n = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, list)
    {
        const char *reader = get_str(t, "reader");
        const cJSON *present = cJSON_GetObjectItemCaseSensitive(t, "present");
        if (!cJSON_IsObject(t) || reader == NULL || !cJSON_IsBool(present)) {
            free(next);
            return -1;
        }
        uk_tray_token *d = &next[n++];
        copy(d->reader, sizeof(d->reader), reader);
        copy(d->id, sizeof(d->id), get_str(t, "id"));
        copy(d->label, sizeof(d->label), get_str(t, "label"));
        d->present = cJSON_IsTrue(present) && d->id[0] != '\0';
        const uk_tray_token *old = find_token(m, d->id);
        if (old != NULL && d->present) {
            memcpy(d->certs, old->certs, sizeof(d->certs));
            d->n_certs = old->n_certs;
            d->certs_known = old->certs_known;
            copy(d->certs_error, sizeof(d->certs_error), old->certs_error);
            d->just_inserted = old->just_inserted;
        }
    }
    memcpy(m->tokens, next, sizeof(m->tokens));
    m->n_tokens = n;
    m->no_service = false;
    free(next);
    return 0;
}

static bool parse_cert(const cJSON *e, uk_tray_cert *c)
{
    memset(c, 0, sizeof(*c));
    copy(c->key, sizeof(c->key), get_str(e, "key"));
    if (cJSON_GetObjectItemCaseSensitive(e, "error") != NULL) {
        c->unreadable = true;
        return true;
    }
    if (!parse_iso(get_str(e, "not_before"), &c->not_before) ||
        !parse_iso(get_str(e, "not_after"), &c->not_after))
        return false;
    copy(c->fingerprint, sizeof(c->fingerprint), get_str(e, "fingerprint_sha256"));
    copy(c->daemon_status, sizeof(c->daemon_status), get_str(e, "status"));
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(e, "subject_parts");
    const cJSON *p;
    cJSON_ArrayForEach(p, parts)
    {
        const char *type = get_str(p, "type"), *value = get_str(p, "value");
        if (type == NULL || value == NULL)
            continue;
        if (strcmp(type, "CN") == 0 && c->cn[0] == '\0')
            copy(c->cn, sizeof(c->cn), value);
        else if (strcmp(type, "O") == 0 && c->org[0] == '\0')
            copy(c->org, sizeof(c->org), value);
    }
    return true;
}

int uk_tray_model_set_certs(uk_tray_model *m, const char *token_id, const cJSON *result,
                            const char *reason)
{
    uk_tray_token *t = find_token(m, token_id);
    if (t == NULL)
        return -1;
    if (result == NULL) {
        copy(t->certs_error, sizeof(t->certs_error), reason != NULL ? reason : "INTERNAL");
        t->certs_known = true;
        t->n_certs = 0;
        return 0;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(result, "certificates");
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > UK_TRAY_MAX_CERTS)
        return -1;
    uk_tray_cert *next = calloc(UK_TRAY_MAX_CERTS, sizeof(*next));
    if (next == NULL)
        return -1;
    size_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        if (!cJSON_IsObject(e) || !parse_cert(e, &next[n++])) {
            free(next);
            return -1;
        }
    }
    memcpy(t->certs, next, sizeof(t->certs));
    t->n_certs = n;
    t->certs_known = true;
    t->certs_error[0] = '\0';
    free(next);
    return 0;
}

int uk_tray_model_set_renewals(uk_tray_model *m, const cJSON *result)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(result, "renewals");
    if (!cJSON_IsArray(list))
        return -1;
    size_t in_progress = 0, n_written = 0, n_done = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, list)
    {
        const char *state = get_str(r, "state"), *id = get_str(r, "renewal_id");
        if (state == NULL || id == NULL)
            return -1;
        if (strcmp(state, "prepared") == 0 || strcmp(state, "written") == 0)
            in_progress++;
        if (strcmp(state, "written") == 0 && n_written < UK_TRAY_MAX_RENEWALS)
            copy(m->written_ids[n_written++], sizeof(m->written_ids[0]), id);
        else if (strcmp(state, "done") == 0 && n_done < UK_TRAY_MAX_RENEWALS)
            copy(m->done_ids[n_done++], sizeof(m->done_ids[0]), id);
    }
    m->renewals_in_progress = in_progress;
    m->n_written = n_written;
    m->n_done = n_done;
    return 0;
}

void uk_tray_model_mark_inserted(uk_tray_model *m, const char *token_id)
{
    uk_tray_token *t = find_token(m, token_id);
    if (t != NULL)
        t->just_inserted = true;
}

/* floor(a / b) for b > 0. */
static long long floor_div(long long a, long long b)
{
    long long q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

uk_tray_cert_status uk_tray_cert_status_at(const uk_tray_model *m, const uk_tray_cert *c,
                                           time_t now, long long *days_left)
{
    long long left = floor_div((long long)c->not_after - (long long)now, DAY);
    if (days_left != NULL)
        *days_left = left;
    if (c->unreadable)
        return UK_TRAY_CERT_UNREADABLE;
    if (now < c->not_before)
        return UK_TRAY_CERT_NOT_YET_VALID;
    if (now > c->not_after)
        return UK_TRAY_CERT_EXPIRED;
    if (m->expiring_days > 0)
        return left <= (long long)m->expiring_days ? UK_TRAY_CERT_EXPIRING : UK_TRAY_CERT_VALID;
    /* ukeyd's threshold: expiring stays expiring (days only go down until a re-read). */
    return strcmp(c->daemon_status, "expiring") == 0 ? UK_TRAY_CERT_EXPIRING : UK_TRAY_CERT_VALID;
}

static int state_rank(uk_tray_cert_status s)
{
    switch (s) {
    case UK_TRAY_CERT_EXPIRED:
        return 3;
    case UK_TRAY_CERT_EXPIRING:
        return 2;
    case UK_TRAY_CERT_NOT_YET_VALID:
        return 1;
    default:
        return 0;
    }
}

/* The worst status over the certificates of present keys; *any false when there is none. */
static uk_tray_cert_status worst(const uk_tray_model *m, time_t now, bool *any, long long *days)
{
    uk_tray_cert_status w = UK_TRAY_CERT_VALID;
    long long wd = 0;
    *any = false;
    for (size_t i = 0; i < m->n_tokens; i++) {
        const uk_tray_token *t = &m->tokens[i];
        for (size_t j = 0; t->present && j < t->n_certs; j++) {
            long long d;
            uk_tray_cert_status s = uk_tray_cert_status_at(m, &t->certs[j], now, &d);
            if (s == UK_TRAY_CERT_UNREADABLE)
                continue;
            if (!*any || state_rank(s) > state_rank(w) || (s == w && d < wd)) {
                w = s;
                wd = d;
            }
            *any = true;
        }
    }
    if (days != NULL)
        *days = wd;
    return w;
}

static size_t present_keys(const uk_tray_model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_tokens; i++)
        n += m->tokens[i].present ? 1 : 0;
    return n;
}

uk_tray_state uk_tray_model_state(const uk_tray_model *m, time_t now)
{
    if (!m->daemon_up)
        return UK_TRAY_DAEMON_DOWN;
    if (m->no_service || present_keys(m) == 0)
        return UK_TRAY_NO_KEY;
    bool any;
    switch (worst(m, now, &any, NULL)) {
    case UK_TRAY_CERT_EXPIRED:
        return UK_TRAY_EXPIRED;
    case UK_TRAY_CERT_EXPIRING:
        return UK_TRAY_EXPIRING;
    case UK_TRAY_CERT_NOT_YET_VALID:
        return UK_TRAY_NOT_YET_VALID;
    default:
        return UK_TRAY_VALID;
    }
}

/* The local date of t, "2026-11-24". */
static void local_date(time_t t, char *buf, size_t size)
{
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%d", &tm) == 0)
        copy(buf, size, "?");
}

/* The first certificate (on a present key) in the worst state, for its dates. */
static const uk_tray_cert *worst_cert(const uk_tray_model *m, time_t now, uk_tray_cert_status w)
{
    const uk_tray_cert *best = NULL;
    long long best_days = 0;
    for (size_t i = 0; i < m->n_tokens; i++)
        for (size_t j = 0; m->tokens[i].present && j < m->tokens[i].n_certs; j++) {
            long long d;
            const uk_tray_cert *c = &m->tokens[i].certs[j];
            if (uk_tray_cert_status_at(m, c, now, &d) == w && (best == NULL || d < best_days)) {
                best = c;
                best_days = d;
            }
        }
    return best;
}

void uk_tray_model_summary(const uk_tray_model *m, time_t now, char *buf, size_t size)
{
    char date[32];
    long long days = 0;
    bool any;
    switch (uk_tray_model_state(m, now)) {
    case UK_TRAY_DAEMON_DOWN:
        copy(buf, size, _("ukeyd is not running"));
        return;
    case UK_TRAY_NO_KEY:
        copy(buf, size,
             m->no_service ? _("The smart card service (pcscd) is not running")
                           : _("No USB key inserted"));
        return;
    default:
        break;
    }
    uk_tray_cert_status w = worst(m, now, &any, &days);
    if (!any) {
        copy(buf, size, _("USB key inserted; no certificate read yet"));
        return;
    }
    const uk_tray_cert *c = worst_cert(m, now, w);
    switch (w) {
    case UK_TRAY_CERT_EXPIRED:
        local_date(c->not_after, date, sizeof date);
        snprintf(buf, size, _("Certificate expired on %s: repair it on the portal"), date);
        break;
    case UK_TRAY_CERT_EXPIRING:
        snprintf(buf, size,
                 N_("Certificate expires in %lld day: renew it now",
                    "Certificate expires in %lld days: renew it now", days),
                 days);
        break;
    case UK_TRAY_CERT_NOT_YET_VALID:
        local_date(c->not_before, date, sizeof date);
        snprintf(buf, size, _("New certificate not valid yet: valid from %s"), date);
        break;
    default:
        snprintf(buf, size,
                 N_("Certificate valid: %lld day left", "Certificate valid: %lld days left", days),
                 days);
        break;
    }
}

/* ---- menu --------------------------------------------------------------------------------- */

static uk_tray_item *add_item(uk_tray_item *items, size_t *n, uk_tray_item_kind kind, int indent)
{
    if (*n >= UK_TRAY_MAX_ITEMS - 1)
        return NULL;
    uk_tray_item *it = &items[(*n)++];
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    it->indent = indent;
    return it;
}

static const char *reason_text(const char *reason)
{
    if (strcmp(reason, "CARD_BUSY") == 0)
        return _("Another program is using the USB key");
    if (strcmp(reason, "CARD_REMOVED") == 0 || strcmp(reason, "NO_TOKEN") == 0)
        return _("The USB key was removed");
    if (strcmp(reason, "NO_SERVICE") == 0)
        return _("The smart card service (pcscd) is not running");
    return _("The certificates could not be read");
}

static void add_cert_items(const uk_tray_model *m, const uk_tray_cert *c, time_t now,
                           uk_tray_item *items, size_t *n)
{
    uk_tray_item *it;
    if (c->unreadable) {
        if ((it = add_item(items, n, UK_TRAY_ITEM_INFO, 1)) != NULL)
            snprintf(it->text, sizeof it->text, _("Slot %s: certificate cannot be read"), c->key);
        return;
    }
    char from[32], to[32];
    local_date(c->not_before, from, sizeof from);
    local_date(c->not_after, to, sizeof to);
    if ((it = add_item(items, n, UK_TRAY_ITEM_INFO, 1)) != NULL) {
        /* A menu line shows no more than 200 bytes of a name anyway. */
        if (c->org[0] != '\0')
            snprintf(it->text, sizeof it->text, "[%s] %.200s — %.200s", c->key,
                     c->cn[0] ? c->cn : "?", c->org);
        else
            snprintf(it->text, sizeof it->text, "[%s] %s", c->key, c->cn[0] ? c->cn : "?");
    }
    if ((it = add_item(items, n, UK_TRAY_ITEM_INFO, 1)) != NULL)
        snprintf(it->text, sizeof it->text, _("Valid from %s to %s"), from, to);
    long long days;
    uk_tray_cert_status s = uk_tray_cert_status_at(m, c, now, &days);
    if ((it = add_item(items, n, UK_TRAY_ITEM_INFO, 1)) == NULL)
        return;
    switch (s) {
    case UK_TRAY_CERT_EXPIRED: {
        /* whole days since not_after: 0 within the first day */
        long long ago = floor_div((long long)now - (long long)c->not_after, DAY);
        if (ago == 0)
            copy(it->text, sizeof it->text, _("Expired today"));
        else
            snprintf(it->text, sizeof it->text,
                     N_("Expired %lld day ago", "Expired %lld days ago", ago), ago);
        break;
    }
    case UK_TRAY_CERT_NOT_YET_VALID: {
        long long until = -floor_div((long long)now - (long long)c->not_before, DAY);
        snprintf(it->text, sizeof it->text,
                 N_("Not valid yet: valid in %lld day", "Not valid yet: valid in %lld days", until),
                 until);
        break;
    }
    case UK_TRAY_CERT_EXPIRING:
        snprintf(it->text, sizeof it->text,
                 N_("Expiring: %lld day left", "Expiring: %lld days left", days), days);
        break;
    default:
        snprintf(it->text, sizeof it->text, N_("%lld day left", "%lld days left", days), days);
        break;
    }
}

size_t uk_tray_menu_build(const uk_tray_model *m, time_t now, bool have_renewal_url,
                          uk_tray_item *items)
{
    size_t n = 0;
    uk_tray_item *it = add_item(items, &n, UK_TRAY_ITEM_INFO, 0);
    uk_tray_model_summary(m, now, it->text, sizeof it->text);
    for (size_t i = 0; m->daemon_up && i < m->n_tokens; i++) {
        const uk_tray_token *t = &m->tokens[i];
        if (!t->present)
            continue;
        add_item(items, &n, UK_TRAY_ITEM_SEPARATOR, 0);
        if ((it = add_item(items, &n, UK_TRAY_ITEM_KEY, 0)) != NULL)
            snprintf(it->text, sizeof it->text, _("Key: %s"), t->label[0] ? t->label : t->id);
        if (t->certs_error[0] != '\0') {
            if ((it = add_item(items, &n, UK_TRAY_ITEM_INFO, 1)) != NULL)
                copy(it->text, sizeof it->text, reason_text(t->certs_error));
        } else if (!t->certs_known) {
            if ((it = add_item(items, &n, UK_TRAY_ITEM_INFO, 1)) != NULL)
                copy(it->text, sizeof it->text, _("Reading the certificates…"));
        } else if (t->n_certs == 0) {
            if ((it = add_item(items, &n, UK_TRAY_ITEM_INFO, 1)) != NULL)
                copy(it->text, sizeof it->text, _("No certificate on this key"));
        }
        for (size_t j = 0; j < t->n_certs; j++)
            add_cert_items(m, &t->certs[j], now, items, &n);
    }
    if (m->daemon_up && m->renewals_in_progress > 0 &&
        (it = add_item(items, &n, UK_TRAY_ITEM_INFO, 0)) != NULL)
        snprintf(it->text, sizeof it->text,
                 N_("%zu certificate renewal in progress", "%zu certificate renewals in progress",
                    m->renewals_in_progress),
                 m->renewals_in_progress);
    add_item(items, &n, UK_TRAY_ITEM_SEPARATOR, 0);
    it = &items[n++];
    *it = (uk_tray_item){
        .kind = UK_TRAY_ITEM_ACTION, .action = UK_TRAY_ACTION_RENEW, .sensitive = have_renewal_url};
    copy(it->text, sizeof it->text, _("Open the renewal page"));
    if (n < UK_TRAY_MAX_ITEMS) {
        it = &items[n++];
        *it = (uk_tray_item){
            .kind = UK_TRAY_ITEM_ACTION, .action = UK_TRAY_ACTION_DOCTOR, .sensitive = true};
        copy(it->text, sizeof it->text, _("Run check"));
    }
    if (n < UK_TRAY_MAX_ITEMS) {
        it = &items[n++];
        *it = (uk_tray_item){
            .kind = UK_TRAY_ITEM_ACTION, .action = UK_TRAY_ACTION_QUIT, .sensitive = true};
        copy(it->text, sizeof it->text, _("Quit"));
    }
    return n;
}

/* ---- reminders ---------------------------------------------------------------------------- */

void uk_tray_store_init(uk_tray_store *s)
{
    memset(s, 0, sizeof(*s));
}

static uk_tray_store_cert *store_cert(uk_tray_store *s, const char *fp, time_t now)
{
    for (size_t i = 0; i < s->n_certs; i++)
        if (strcmp(s->certs[i].fingerprint, fp) == 0) {
            if (s->certs[i].last_seen != now) {
                s->certs[i].last_seen = now;
                s->dirty = true;
            }
            return &s->certs[i];
        }
    size_t slot = s->n_certs;
    if (slot == UK_TRAY_STORE_MAX_CERTS) { /* forget the one seen longest ago */
        slot = 0;
        for (size_t i = 1; i < s->n_certs; i++)
            if (s->certs[i].last_seen < s->certs[slot].last_seen)
                slot = i;
    } else {
        s->n_certs++;
    }
    uk_tray_store_cert *c = &s->certs[slot];
    memset(c, 0, sizeof(*c));
    copy(c->fingerprint, sizeof c->fingerprint, fp);
    c->last_seen = now;
    s->dirty = true;
    return c;
}

static bool was_notified(const uk_tray_store_cert *c, unsigned t)
{
    for (size_t i = 0; i < c->n_notified; i++)
        if (c->notified[i] == t)
            return true;
    return false;
}

static void mark_notified(uk_tray_store_cert *c, unsigned t)
{
    if (!was_notified(c, t) && c->n_notified < UK_TRAY_MAX_REMINDERS)
        c->notified[c->n_notified++] = t;
}

static bool id_in(char (*ids)[48], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

static void id_add(char (*ids)[48], size_t *n, const char *id)
{
    if (id_in(ids, *n, id))
        return;
    if (*n == UK_TRAY_MAX_RENEWALS) { /* drop the oldest */
        memmove(ids[0], ids[1], (UK_TRAY_MAX_RENEWALS - 1) * sizeof(ids[0]));
        (*n)--;
    }
    copy(ids[(*n)++], sizeof(ids[0]), id);
}

static void id_remove(char (*ids)[48], size_t *n, const char *id)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(ids[i], id) == 0) {
            memmove(ids[i], ids[i + 1], (*n - i - 1) * sizeof(ids[0]));
            (*n)--;
            return;
        }
}

static const char *cert_name(const uk_tray_cert *c)
{
    return c->cn[0] != '\0' ? c->cn : c->key;
}

/* A note of kind for the key being looked at; NULL when full or when this round already has
 * one of this kind (and threshold) for the same key (first_of_key: its first note's index), so
 * that a key with two certificates expiring together gets one notification. The caller marks the
 * store either way. */
static uk_tray_note *add_note_for(uk_tray_note *notes, size_t *n, size_t first_of_key,
                                  uk_tray_note_kind kind, unsigned threshold)
{
    for (size_t i = first_of_key; i < *n; i++)
        if (notes[i].kind == kind && notes[i].threshold == threshold)
            return NULL;
    if (*n >= UK_TRAY_MAX_NOTES)
        return NULL;
    uk_tray_note *note = &notes[(*n)++];
    memset(note, 0, sizeof(*note));
    note->kind = kind;
    note->threshold = threshold;
    return note;
}

static uk_tray_note *add_note(uk_tray_note *notes, size_t *n, uk_tray_note_kind kind)
{
    if (*n >= UK_TRAY_MAX_NOTES)
        return NULL;
    uk_tray_note *note = &notes[(*n)++];
    memset(note, 0, sizeof(*note));
    note->kind = kind;
    return note;
}

size_t uk_tray_reminders_due(uk_tray_model *m, uk_tray_store *store, const unsigned *thresholds,
                             size_t n_thresholds, time_t now, uk_tray_note *notes)
{
    size_t n = 0;
    char date[32];
    for (size_t i = 0; m->daemon_up && i < m->n_tokens; i++) {
        uk_tray_token *t = &m->tokens[i];
        if (!t->present || !t->certs_known)
            continue;
        bool has_expired = false;
        const uk_tray_cert *expired_cert = NULL;
        size_t first = n;
        for (size_t j = 0; j < t->n_certs; j++) {
            const uk_tray_cert *c = &t->certs[j];
            if (c->unreadable || c->fingerprint[0] == '\0')
                continue;
            long long days;
            uk_tray_cert_status st = uk_tray_cert_status_at(m, c, now, &days);
            uk_tray_store_cert *sc = store_cert(store, c->fingerprint, now);
            uk_tray_note *note;
            switch (st) {
            case UK_TRAY_CERT_NOT_YET_VALID:
                if (!sc->seen_not_yet_valid) {
                    sc->seen_not_yet_valid = true;
                    store->dirty = true;
                }
                break;
            case UK_TRAY_CERT_EXPIRED:
                has_expired = true;
                expired_cert = c;
                if (sc->expired_notified || t->just_inserted)
                    break; /* an insertion says it below */
                sc->expired_notified = true;
                store->dirty = true;
                if ((note = add_note_for(notes, &n, first, UK_TRAY_NOTE_EXPIRED, 0)) == NULL)
                    break;
                local_date(c->not_after, date, sizeof date);
                note->days_left = days;
                copy(note->summary, sizeof note->summary, _("Your certificate has expired"));
                snprintf(note->body, sizeof note->body,
                         _("The certificate of %s on key %s expired on %s. Open the renewal page "
                           "and choose \"Repair\"."),
                         cert_name(c), t->label[0] ? t->label : t->id, date);
                break;
            case UK_TRAY_CERT_VALID:
            case UK_TRAY_CERT_EXPIRING: {
                if (sc->seen_not_yet_valid && !sc->valid_notified) {
                    sc->valid_notified = true;
                    store->dirty = true;
                    note = add_note_for(notes, &n, first, UK_TRAY_NOTE_NOW_VALID, 0);
                    if (note != NULL) {
                        local_date(c->not_after, date, sizeof date);
                        copy(note->summary, sizeof note->summary,
                             _("Your new certificate is now valid"));
                        snprintf(note->body, sizeof note->body,
                                 _("The renewed certificate of %s is valid until %s. You can sign "
                                   "on the portal again."),
                                 cert_name(c), date);
                    }
                }
                /* The smallest threshold reached and not yet announced. */
                unsigned best = 0;
                bool found = false;
                for (size_t k = 0; k < n_thresholds; k++) {
                    unsigned th = thresholds[k];
                    if (days <= (long long)th && !was_notified(sc, th) && (!found || th < best)) {
                        best = th;
                        found = true;
                    }
                }
                if (!found)
                    break;
                for (size_t k = 0; k < n_thresholds; k++)
                    if (thresholds[k] >= best)
                        mark_notified(sc, thresholds[k]);
                store->dirty = true;
                if ((note = add_note_for(notes, &n, first, UK_TRAY_NOTE_EXPIRING, best)) == NULL)
                    break;
                note->days_left = days;
                local_date(c->not_after, date, sizeof date);
                snprintf(note->summary, sizeof note->summary,
                         N_("Your certificate expires in %lld day",
                            "Your certificate expires in %lld days", days),
                         days);
                snprintf(note->body, sizeof note->body,
                         _("The certificate of %s on key %s ends on %s. Open the renewal page and "
                           "choose \"Extend\" before then."),
                         cert_name(c), t->label[0] ? t->label : t->id, date);
                break;
            }
            default:
                break;
            }
        }
        if (t->just_inserted && has_expired) {
            uk_tray_note *note = add_note(notes, &n, UK_TRAY_NOTE_REPAIR);
            if (note != NULL) {
                local_date(expired_cert->not_after, date, sizeof date);
                copy(note->summary, sizeof note->summary, _("This key needs repair"));
                snprintf(note->body, sizeof note->body,
                         _("The certificate of %s on the key you inserted expired on %s. Open the "
                           "renewal page and choose \"Repair\"."),
                         cert_name(expired_cert), date);
                for (size_t j = 0; j < t->n_certs; j++)
                    if (!t->certs[j].unreadable && t->certs[j].fingerprint[0] != '\0' &&
                        uk_tray_cert_status_at(m, &t->certs[j], now, NULL) == UK_TRAY_CERT_EXPIRED)
                        store_cert(store, t->certs[j].fingerprint, now)->expired_notified = true;
                store->dirty = true;
            }
        }
        t->just_inserted = false;
    }
    /* Renewals written with a future not-before (delayed activation), now done. */
    for (size_t i = 0; m->daemon_up && i < m->n_written; i++)
        if (!id_in(store->renewals_waiting, store->n_renewals_waiting, m->written_ids[i])) {
            id_add(store->renewals_waiting, &store->n_renewals_waiting, m->written_ids[i]);
            store->dirty = true;
        }
    for (size_t i = 0; m->daemon_up && i < m->n_done; i++) {
        const char *id = m->done_ids[i];
        if (!id_in(store->renewals_waiting, store->n_renewals_waiting, id) ||
            id_in(store->renewals_notified, store->n_renewals_notified, id))
            continue;
        uk_tray_note *note = add_note(notes, &n, UK_TRAY_NOTE_NOW_VALID);
        if (note == NULL)
            break;
        copy(note->summary, sizeof note->summary, _("Your new certificate is now valid"));
        copy(note->body, sizeof note->body,
             _("The renewed certificate is now active on your key. You can sign on the portal "
               "again."));
        id_remove(store->renewals_waiting, &store->n_renewals_waiting, id);
        id_add(store->renewals_notified, &store->n_renewals_notified, id);
        store->dirty = true;
    }
    return n;
}

time_t uk_tray_next_wakeup(const uk_tray_model *m, time_t now)
{
    /* The next local midnight (days shown in local dates), at most a day away. */
    struct tm tm;
    time_t next = now + DAY;
    if (localtime_r(&now, &tm) != NULL) {
        tm.tm_hour = 0;
        tm.tm_min = 0;
        tm.tm_sec = 0;
        tm.tm_mday += 1;
        tm.tm_isdst = -1;
        time_t midnight = mktime(&tm);
        if (midnight > now && midnight < next)
            next = midnight;
    }
    for (size_t i = 0; m->daemon_up && i < m->n_tokens; i++)
        for (size_t j = 0; m->tokens[i].present && j < m->tokens[i].n_certs; j++) {
            const uk_tray_cert *c = &m->tokens[i].certs[j];
            if (c->unreadable)
                continue;
            time_t cand;
            if (now < c->not_before) {
                cand = c->not_before;
            } else if (now <= c->not_after) {
                /* days_left drops when now passes not_after - k * DAY; k = days_left */
                long long k = floor_div((long long)c->not_after - (long long)now, DAY);
                cand = (time_t)((long long)c->not_after - k * DAY + 1);
                if (cand <= now)
                    cand = now + 1;
            } else {
                long long k = floor_div((long long)c->not_after - (long long)now, DAY);
                cand = (time_t)((long long)c->not_after - k * DAY + 1);
            }
            if (cand > now && cand < next)
                next = cand;
        }
    return next;
}

/* ---- store as JSON ------------------------------------------------------------------------ */

int uk_tray_store_parse(uk_tray_store *s, const char *text, size_t len)
{
    uk_tray_store_init(s);
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *certs = cJSON_GetObjectItemCaseSensitive(root, "certificates");
    const cJSON *waiting = cJSON_GetObjectItemCaseSensitive(root, "renewals_waiting");
    const cJSON *notified = cJSON_GetObjectItemCaseSensitive(root, "renewals_notified");
    int rc = -1;
    if (!cJSON_IsNumber(version) || version->valueint != 1 || !cJSON_IsArray(certs))
        goto out;
    const cJSON *e;
    cJSON_ArrayForEach(e, certs)
    {
        const char *fp = get_str(e, "fingerprint");
        const cJSON *th = cJSON_GetObjectItemCaseSensitive(e, "notified");
        const cJSON *seen = cJSON_GetObjectItemCaseSensitive(e, "last_seen");
        if (fp == NULL || strlen(fp) >= sizeof(s->certs[0].fingerprint) || !cJSON_IsArray(th) ||
            !cJSON_IsNumber(seen) || s->n_certs == UK_TRAY_STORE_MAX_CERTS)
            goto out;
        uk_tray_store_cert *c = &s->certs[s->n_certs++];
        copy(c->fingerprint, sizeof c->fingerprint, fp);
        c->last_seen = (time_t)seen->valuedouble;
        const cJSON *x;
        cJSON_ArrayForEach(x, th)
        {
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 3650)
                goto out;
            mark_notified(c, (unsigned)x->valuedouble);
        }
        c->expired_notified = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "expired"));
        c->seen_not_yet_valid =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "seen_not_yet_valid"));
        c->valid_notified = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "valid_notified"));
    }
    cJSON_ArrayForEach(e, waiting)
    {
        if (!cJSON_IsString(e) || strlen(e->valuestring) >= 48)
            goto out;
        id_add(s->renewals_waiting, &s->n_renewals_waiting, e->valuestring);
    }
    cJSON_ArrayForEach(e, notified)
    {
        if (!cJSON_IsString(e) || strlen(e->valuestring) >= 48)
            goto out;
        id_add(s->renewals_notified, &s->n_renewals_notified, e->valuestring);
    }
    rc = 0;
out:
    if (rc != 0)
        uk_tray_store_init(s);
    s->dirty = false;
    cJSON_Delete(root);
    return rc;
}

char *uk_tray_store_print(const uk_tray_store *s)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *certs = cJSON_AddArrayToObject(root, "certificates");
    cJSON *waiting = cJSON_AddArrayToObject(root, "renewals_waiting");
    cJSON *notified = cJSON_AddArrayToObject(root, "renewals_notified");
    bool ok = cJSON_AddNumberToObject(root, "version", 1) != NULL && certs && waiting && notified;
    for (size_t i = 0; ok && i < s->n_certs; i++) {
        const uk_tray_store_cert *c = &s->certs[i];
        cJSON *o = cJSON_CreateObject();
        ok = cJSON_AddItemToArray(certs, o) &&
             cJSON_AddStringToObject(o, "fingerprint", c->fingerprint) &&
             cJSON_AddNumberToObject(o, "last_seen", (double)c->last_seen) &&
             cJSON_AddBoolToObject(o, "expired", c->expired_notified) &&
             cJSON_AddBoolToObject(o, "seen_not_yet_valid", c->seen_not_yet_valid) &&
             cJSON_AddBoolToObject(o, "valid_notified", c->valid_notified);
        cJSON *th = ok ? cJSON_AddArrayToObject(o, "notified") : NULL;
        ok = ok && th != NULL;
        for (size_t k = 0; ok && k < c->n_notified; k++)
            ok = cJSON_AddItemToArray(th, cJSON_CreateNumber(c->notified[k]));
    }
    for (size_t i = 0; ok && i < s->n_renewals_waiting; i++)
        ok = cJSON_AddItemToArray(waiting, cJSON_CreateString(s->renewals_waiting[i]));
    for (size_t i = 0; ok && i < s->n_renewals_notified; i++)
        ok = cJSON_AddItemToArray(notified, cJSON_CreateString(s->renewals_notified[i]));
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    return text;
}

/* Reads a whole small file: 0, -1 (errno ENOENT for a missing file). */
static int read_file(const char *path, char **out, size_t *len)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    char *buf = malloc(FILE_MAX + 1);
    size_t n = 0;
    ssize_t r = 0;
    while (buf != NULL && n < FILE_MAX && (r = read(fd, buf + n, FILE_MAX - n)) > 0)
        n += (size_t)r;
    close(fd);
    if (buf == NULL || r < 0 || n == FILE_MAX) {
        free(buf);
        errno = EIO;
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int uk_tray_store_load(uk_tray_store *s, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    uk_tray_store_init(s);
    if (read_file(path, &text, &len) != 0)
        return errno == ENOENT ? 0 : -1;
    int rc = uk_tray_store_parse(s, text, len);
    free(text);
    return rc;
}

/* mkdir -p for the parent of path, new directories 0700. */
static int make_parent(const char *path)
{
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return -1;
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(dir, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

int uk_tray_store_save(uk_tray_store *s, const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp ||
        make_parent(path) != 0)
        return -1;
    char *text = uk_tray_store_print(s);
    if (text == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t len = strlen(text), off = 0;
    int rc = fd < 0 ? -1 : 0;
    while (rc == 0 && off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = -1;
        else
            off += (size_t)w;
    }
    if (rc == 0 && (fchmod(fd, 0600) != 0 || fsync(fd) != 0))
        rc = -1;
    if (fd >= 0 && close(fd) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc != 0 && fd >= 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
    }
    free(text);
    if (rc == 0)
        s->dirty = false;
    return rc;
}

/* ---- tray.json ---------------------------------------------------------------------------- */

void uk_tray_config_init(uk_tray_config *c)
{
    memset(c, 0, sizeof(*c));
    c->reminder_days[0] = 30;
    c->reminder_days[1] = 7;
    c->reminder_days[2] = 1;
    c->n_reminder_days = 3;
}

static int config_fail(uk_tray_config *c, char *err, size_t size, const char *msg, const char *key)
{
    snprintf(err, size, "%s%s%s", key ? key : "", key ? ": " : "", msg);
    uk_tray_config_init(c);
    return -1;
}

static bool whole(const cJSON *v, double lo, double hi)
{
    return cJSON_IsNumber(v) && v->valuedouble >= lo && v->valuedouble <= hi &&
           v->valuedouble == (double)(long long)v->valuedouble;
}

int uk_tray_config_parse(uk_tray_config *c, const char *text, size_t len, char *err,
                         size_t err_size)
{
    uk_tray_config_init(c);
    cJSON *root = cJSON_ParseWithLength(text, len);
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = config_fail(c, err, err_size, "not a JSON object", NULL);
        goto out;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, root)
    {
        const char *k = v->string;
        if (strcmp(k, "renewal_url") == 0) {
            if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof c->renewal_url ||
                (strncmp(v->valuestring, "https://", 8) != 0 &&
                 strncmp(v->valuestring, "http://", 7) != 0)) {
                rc = config_fail(c, err, err_size, "must be an http:// or https:// URL", k);
                goto out;
            }
            for (const char *p = v->valuestring; *p; p++)
                if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
                    rc = config_fail(c, err, err_size, "contains a space or control character", k);
                    goto out;
                }
            copy(c->renewal_url, sizeof c->renewal_url, v->valuestring);
        } else if (strcmp(k, "expiring_days") == 0) {
            if (!whole(v, 1, 365)) {
                rc = config_fail(c, err, err_size, "must be a whole number from 1 to 365", k);
                goto out;
            }
            c->expiring_days = (unsigned)v->valuedouble;
        } else if (strcmp(k, "reminder_days") == 0) {
            if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > UK_TRAY_MAX_REMINDERS) {
                rc = config_fail(c, err, err_size, "must be an array of at most 8 numbers", k);
                goto out;
            }
            c->n_reminder_days = 0;
            const cJSON *x;
            cJSON_ArrayForEach(x, v)
            {
                if (!whole(x, 0, 365)) {
                    rc = config_fail(c, err, err_size,
                                     "each entry must be a whole number from 0 to 365", k);
                    goto out;
                }
                c->reminder_days[c->n_reminder_days++] = (unsigned)x->valuedouble;
            }
        } else {
            rc = config_fail(c, err, err_size, "unknown key", k);
            goto out;
        }
    }
out:
    cJSON_Delete(root);
    return rc;
}

int uk_tray_config_load(uk_tray_config *c, const char *path, char *err, size_t err_size)
{
    char *text = NULL;
    size_t len = 0;
    uk_tray_config_init(c);
    if (read_file(path, &text, &len) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, err_size, "cannot read the file");
        return -1;
    }
    int rc = uk_tray_config_parse(c, text, len, err, err_size);
    free(text);
    return rc;
}
