/* The allowlists (origins, extension IDs), per-origin rules, pairing, the Host check and the
 * per-origin rate limit. */
#include "uk_policy.h"

#include "uk_config.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_pairing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXT_PREFIX "chrome-extension://"

/* One token bucket; tokens are counted in thousandths so that refill stays integral. */
struct bucket {
    char *origin;
    uint64_t milli;
    uint64_t last_ms;
    bool started;
};

/* One origin_policies entry, copied from the config. */
struct rules {
    char *origin;
    char **methods; /* methods_set: n_methods names; else NULL */
    size_t n_methods;
    bool methods_set;
    bool pin_from_page;
    uk_consent_mode consent;
};

/* What the config decides; replaced as a whole on reload. */
struct tables {
    char **origins;
    bool *origins_system; /* parallel to origins */
    size_t n_origins;
    char **ext_ids;
    size_t n_ext_ids;
    bool ext_system;
    struct rules *rules;
    size_t n_rules;
    struct bucket *buckets; /* the origins, then "chrome-extension://ID" per extension */
    size_t n_buckets;
    size_t rate;
    bool pairing;
};

/* A stored pairing with its rate state. */
struct paired {
    char *origin;
    int64_t paired_at;
    struct bucket rate; /* rate.origin unused */
};

/* A PAIRABLE origin's bucket; the slot is recycled by least recent use. */
struct pairable {
    char origin[UK_ORIGIN_MAX + 1]; /* "" when free */
    struct bucket rate;
};

/*
 * The last origin classified (allowed extension IDs counting) and its rules entry. A session keeps
 * its origin, and the dispatcher asks about it on every request, system.hello once per method:
 * parsing it once instead of a dozen times per call is a fifth of ukeyd's own work for a
 * system.hello (docs/performance.md). Reached through a pointer so that the lookups, which take a
 * const policy, may fill it; cleared whenever the tables or the paired list change.
 */
struct memo {
    bool valid;
    char origin[UK_ORIGIN_MAX + 1];
    uk_origin_access access;
    const struct rules *rules; /* NULL: none (defaults), or not ALLOWED/PAIRED */
};

struct uk_policy {
    struct tables t;
    char *state_dir; /* the pairing store's directory (from uk_policy_new), or NULL */
    struct paired *paired;
    size_t n_paired;
    struct memo *memo;
    struct pairable pairable[UK_POLICY_PAIRABLE_BUCKETS];
    struct bucket pairable_all;
};

static void rules_close(struct rules *r)
{
    free(r->origin);
    for (size_t i = 0; i < r->n_methods; i++)
        free(r->methods[i]);
    free(r->methods);
}

static void tables_close(struct tables *t)
{
    for (size_t i = 0; i < t->n_origins; i++)
        free(t->origins[i]);
    free(t->origins);
    free(t->origins_system);
    for (size_t i = 0; i < t->n_ext_ids; i++)
        free(t->ext_ids[i]);
    free(t->ext_ids);
    for (size_t i = 0; i < t->n_rules; i++)
        rules_close(&t->rules[i]);
    free(t->rules);
    for (size_t i = 0; i < t->n_buckets; i++)
        free(t->buckets[i].origin);
    free(t->buckets);
    memset(t, 0, sizeof *t);
}

static bool listed(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static int add_string(char ***list, size_t *n, const char *s)
{
    if (listed(*list, *n, s))
        return UK_OK;
    char *copy = strdup(s);
    char **grown = realloc(*list, (*n + 1) * sizeof **list);
    if (copy == NULL || grown == NULL) {
        free(copy);
        if (grown != NULL)
            *list = grown;
        return UK_E_NO_MEMORY;
    }
    *list = grown;
    grown[(*n)++] = copy;
    return UK_OK;
}

static int check_origin(const char *source, const char *s)
{
    uk_origin o;
    const char *why = NULL;
    char hint[UK_ORIGIN_MAX + 1];
    size_t len = strlen(s);
    if (uk_origin_parse(s, len, &o, &why) == UK_OK)
        return UK_OK;
    if (uk_origin_suggest(s, len, hint, sizeof hint))
        UK_LOG_ERR("config %s: origin \"%.*s\" is not canonical (%s); write it as \"%s\"", source,
                   (int)(len > UK_ORIGIN_MAX ? UK_ORIGIN_MAX : len), s, why, hint);
    else
        UK_LOG_ERR("config %s: origin \"%.*s\" is not valid (%s); write scheme://host[:port] as "
                   "a browser sends it, e.g. \"https://portal.example.cn\"",
                   source, (int)(len > UK_ORIGIN_MAX ? UK_ORIGIN_MAX : len), s, why);
    return UK_E_CONFIG_INVALID;
}

static int rules_build(const uk_config *cfg, const char *source, struct tables *t)
{
    t->rules = calloc(cfg->n_origin_policies + 1, sizeof *t->rules);
    if (t->rules == NULL)
        return UK_E_NO_MEMORY;
    for (size_t i = 0; i < cfg->n_origin_policies; i++) {
        const uk_config_origin_policy *op = &cfg->origin_policies[i];
        int rc = check_origin(source, op->origin);
        if (rc != UK_OK)
            return rc;
        struct rules *r = &t->rules[t->n_rules++];
        r->pin_from_page = op->pin_from_page;
        r->consent =
            op->consent == UK_CONFIG_CONSENT_SESSION ? UK_CONSENT_SESSION : UK_CONSENT_REQUEST;
        r->methods_set = op->methods_set;
        if ((r->origin = strdup(op->origin)) == NULL)
            return UK_E_NO_MEMORY;
        if (!op->methods_set)
            continue;
        if ((r->methods = calloc(op->n_methods + 1, sizeof *r->methods)) == NULL)
            return UK_E_NO_MEMORY;
        for (size_t j = 0; j < op->n_methods; j++) {
            if ((r->methods[j] = strdup(op->methods[j])) == NULL)
                return UK_E_NO_MEMORY;
            r->n_methods++;
        }
    }
    return UK_OK;
}

static int tables_build(const uk_config *cfg, struct tables *t)
{
    const char *source = cfg->path != NULL ? cfg->path : "(defaults)";
    int rc = UK_OK;
    memset(t, 0, sizeof *t);
    t->rate = cfg->limits.requests_per_second_per_origin;
    t->pairing = cfg->pairing;
    t->ext_system = cfg->extension_ids_system;
    t->origins_system = calloc(cfg->n_origins + 1, sizeof *t->origins_system);
    if (t->origins_system == NULL) {
        rc = UK_E_NO_MEMORY;
        goto out;
    }
    for (size_t i = 0; i < cfg->n_origins; i++) {
        if ((rc = check_origin(source, cfg->origins[i])) != UK_OK)
            goto out;
        if ((rc = add_string(&t->origins, &t->n_origins, cfg->origins[i])) != UK_OK)
            goto out;
        bool sys = cfg->origins_system != NULL && cfg->origins_system[i];
        /* A duplicate counts once; listed by the system file if either copy is. */
        for (size_t j = 0; j < t->n_origins; j++)
            if (strcmp(t->origins[j], cfg->origins[i]) == 0)
                t->origins_system[j] = t->origins_system[j] || sys;
    }
    if ((rc = rules_build(cfg, source, t)) != UK_OK)
        goto out;
    for (size_t i = 0; i < cfg->n_extension_ids; i++) {
        const char *id = cfg->extension_ids[i];
        if (!uk_extension_id_valid(id, strlen(id))) {
            UK_LOG_ERR("config %s: extension ID \"%.*s\" is not 32 letters a-p", source, 64, id);
            rc = UK_E_CONFIG_INVALID;
            goto out;
        }
        if ((rc = add_string(&t->ext_ids, &t->n_ext_ids, id)) != UK_OK)
            goto out;
    }
    t->buckets = calloc(t->n_origins + t->n_ext_ids + 1, sizeof *t->buckets);
    if (t->buckets == NULL) {
        rc = UK_E_NO_MEMORY;
        goto out;
    }
    for (size_t i = 0; i < t->n_origins; i++) {
        if ((t->buckets[t->n_buckets].origin = strdup(t->origins[i])) == NULL) {
            rc = UK_E_NO_MEMORY;
            goto out;
        }
        t->n_buckets++;
    }
    for (size_t i = 0; i < t->n_ext_ids; i++) {
        char name[sizeof EXT_PREFIX + UK_EXTENSION_ID_LEN];
        snprintf(name, sizeof name, "%s%s", EXT_PREFIX, t->ext_ids[i]);
        if (listed(t->origins, t->n_origins, name))
            continue; /* also listed as a WSS origin: one bucket for both */
        if ((t->buckets[t->n_buckets].origin = strdup(name)) == NULL) {
            rc = UK_E_NO_MEMORY;
            goto out;
        }
        t->n_buckets++;
    }
out:
    if (rc != UK_OK)
        tables_close(t);
    return rc;
}

static void paired_free(struct paired *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].origin);
    free(v);
}

static int store_load(uk_policy *p)
{
    uk__paired *list = NULL;
    size_t n = 0;
    int rc = uk__pairing_load(p->state_dir, &list, &n);
    if (rc != UK_OK)
        return rc;
    p->paired = calloc(n + 1, sizeof *p->paired);
    if (p->paired == NULL) {
        uk__pairing_free(list, n);
        return UK_E_NO_MEMORY;
    }
    /* Ownership of the strings moves over. */
    for (size_t i = 0; i < n; i++)
        p->paired[i] = (struct paired){.origin = list[i].origin, .paired_at = list[i].paired_at};
    p->n_paired = n;
    free(list);
    return UK_OK;
}

/* Writes the store as it would be with v (n entries); the policy itself is not changed. */
static int store_save(const uk_policy *p, const struct paired *v, size_t n)
{
    uk__paired *list = calloc(n + 1, sizeof *list);
    if (list == NULL)
        return UK_E_NO_MEMORY;
    for (size_t i = 0; i < n; i++)
        list[i] = (uk__paired){.origin = v[i].origin, .paired_at = v[i].paired_at};
    int rc = uk__pairing_save(p->state_dir, list, n);
    free(list); /* the strings are borrowed */
    return rc;
}

int uk_policy_new(const uk_config *cfg, uk_policy **out)
{
    if (cfg == NULL || out == NULL)
        return UK_E_INTERNAL;
    uk_policy *p = calloc(1, sizeof *p);
    if (p == NULL)
        return UK_E_NO_MEMORY;
    if ((p->memo = calloc(1, sizeof *p->memo)) == NULL) {
        free(p);
        return UK_E_NO_MEMORY;
    }
    int rc = tables_build(cfg, &p->t);
    if (rc == UK_OK && cfg->state_dir != NULL && (p->state_dir = strdup(cfg->state_dir)) == NULL)
        rc = UK_E_NO_MEMORY;
    if (rc == UK_OK)
        rc = store_load(p);
    if (rc != UK_OK) {
        uk_policy_free(p);
        return rc;
    }
    *out = p;
    return UK_OK;
}

void uk_policy_free(uk_policy *policy)
{
    if (policy == NULL)
        return;
    tables_close(&policy->t);
    paired_free(policy->paired, policy->n_paired);
    free(policy->state_dir);
    free(policy->memo);
    free(policy);
}

static struct bucket *find_bucket(const struct tables *t, const char *origin)
{
    for (size_t i = 0; i < t->n_buckets; i++)
        if (strcmp(t->buckets[i].origin, origin) == 0)
            return &t->buckets[i];
    return NULL;
}

int uk_policy_reload(uk_policy *policy, const uk_config *cfg)
{
    struct tables t;
    if (policy == NULL || cfg == NULL)
        return UK_E_INTERNAL;
    int rc = tables_build(cfg, &t);
    if (rc != UK_OK)
        return rc;
    for (size_t i = 0; i < t.n_buckets; i++) {
        const struct bucket *old = find_bucket(&policy->t, t.buckets[i].origin);
        if (old == NULL)
            continue;
        t.buckets[i].milli = old->milli;
        t.buckets[i].last_ms = old->last_ms;
        t.buckets[i].started = old->started;
    }
    if (cfg->state_dir != NULL && policy->state_dir != NULL &&
        strcmp(cfg->state_dir, policy->state_dir) != 0)
        UK_LOG_NOTICE("SIGHUP: state_dir changed; paired origins stay in %s until a restart",
                      policy->state_dir);
    tables_close(&policy->t);
    policy->t = t;
    policy->memo->valid = false;
    return UK_OK;
}

static struct paired *find_paired(const uk_policy *p, const char *origin)
{
    for (size_t i = 0; i < p->n_paired; i++)
        if (strcmp(p->paired[i].origin, origin) == 0)
            return &p->paired[i];
    return NULL;
}

static bool ext_origin_allowed(const uk_policy *p, const uk_origin *o)
{
    return o->scheme == UK_ORIGIN_CHROME_EXTENSION && listed(p->t.ext_ids, p->t.n_ext_ids, o->host);
}

/* The class of a strictly parsed origin; ext: whether allowed extension IDs count (not on WSS). */
static uk_origin_access classify(const uk_policy *p, const uk_origin *o, bool ext, const char **why)
{
    if (listed(p->t.origins, p->t.n_origins, o->text) || (ext && ext_origin_allowed(p, o)))
        return UK_ACCESS_ALLOWED;
    if (!uk__pairing_origin_ok(o->text)) {
        *why = o->scheme == UK_ORIGIN_CHROME_EXTENSION
                   ? "not in the allowlist"
                   : "not in the allowlist (plain http is only pairable on loopback)";
        return UK_ACCESS_REFUSED;
    }
    if (!p->t.pairing) {
        *why = "not in the allowlist (pairing is off)";
        return UK_ACCESS_REFUSED;
    }
    if (find_paired(p, o->text) != NULL)
        return UK_ACCESS_PAIRED;
    *why = "not paired yet";
    return UK_ACCESS_PAIRABLE;
}

static uk_origin_access access_of(const uk_policy *p, const char *origin)
{
    uk_origin o;
    const char *why = NULL;
    if (uk_origin_parse(origin, strlen(origin), &o, NULL) != UK_OK)
        return UK_ACCESS_REFUSED;
    return classify(p, &o, true, &why);
}

/* The memo filled for origin (classified now unless it is the last one asked about). */
static const struct memo *memo_for(const uk_policy *p, const char *origin)
{
    struct memo *m = p->memo;
    if (m->valid && strcmp(m->origin, origin) == 0)
        return m;
    size_t len = strlen(origin);
    m->valid = false;
    m->access = access_of(p, origin);
    m->rules = NULL;
    if (m->access == UK_ACCESS_ALLOWED || m->access == UK_ACCESS_PAIRED)
        for (size_t i = 0; i < p->t.n_rules; i++)
            if (strcmp(p->t.rules[i].origin, origin) == 0) {
                m->rules = &p->t.rules[i];
                break;
            }
    /* A parsed origin fits; anything longer was refused and is not kept. */
    if (len < sizeof m->origin) {
        memcpy(m->origin, origin, len + 1);
        m->valid = true;
    }
    return m;
}

uk_origin_access uk_policy_origin_access(const uk_policy *policy, const char *origin)
{
    if (policy == NULL || origin == NULL)
        return UK_ACCESS_REFUSED;
    return memo_for(policy, origin)->access;
}

uk_origin_access uk_policy_wss_origin_access(const uk_policy *policy, const char *header,
                                             size_t len, const char **why)
{
    uk_origin o;
    const char *reason = NULL;
    uk_origin_access a = UK_ACCESS_REFUSED;
    if (policy == NULL)
        reason = "no policy";
    else if (uk_origin_parse(header, len, &o, &reason) == UK_OK)
        a = classify(policy, &o, false, &reason);
    if (why != NULL && a != UK_ACCESS_ALLOWED && a != UK_ACCESS_PAIRED)
        *why = reason;
    return a;
}

bool uk_policy_origin_allowed(const uk_policy *policy, const char *header, size_t len,
                              const char **why)
{
    uk_origin_access a = uk_policy_wss_origin_access(policy, header, len, why);
    return a == UK_ACCESS_ALLOWED || a == UK_ACCESS_PAIRED;
}

/* The rules entry of an ALLOWED or PAIRED origin, or NULL (defaults); *ok: whether it is one. */
static const struct rules *rules_for(const uk_policy *p, const char *origin, bool *ok)
{
    *ok = false;
    if (p == NULL || origin == NULL)
        return NULL;
    const struct memo *m = memo_for(p, origin);
    *ok = m->access == UK_ACCESS_ALLOWED || m->access == UK_ACCESS_PAIRED;
    return m->rules;
}

bool uk_policy_method_allowed(const uk_policy *policy, const char *origin, const char *method)
{
    bool ok;
    const struct rules *r = rules_for(policy, origin, &ok);
    if (!ok || method == NULL)
        return false;
    if (r == NULL || !r->methods_set)
        return true;
    return listed(r->methods, r->n_methods, method);
}

bool uk_policy_pin_from_page(const uk_policy *policy, const char *origin)
{
    bool ok;
    const struct rules *r = rules_for(policy, origin, &ok);
    return ok && r != NULL && r->pin_from_page;
}

uk_consent_mode uk_policy_consent(const uk_policy *policy, const char *origin)
{
    bool ok;
    const struct rules *r = rules_for(policy, origin, &ok);
    return ok && r != NULL ? r->consent : UK_CONSENT_REQUEST;
}

bool uk_policy_pairing_enabled(const uk_policy *policy)
{
    return policy != NULL && policy->t.pairing;
}

size_t uk_policy_paired_count(const uk_policy *policy)
{
    return policy != NULL ? policy->n_paired : 0;
}

int uk_policy_pair(uk_policy *policy, const char *origin, int64_t now_unix)
{
    if (policy == NULL)
        return UK_E_INTERNAL;
    if (uk_policy_origin_access(policy, origin) != UK_ACCESS_PAIRABLE)
        return UK_E_ORIGIN_NOT_ALLOWED;
    if (policy->n_paired >= UK_POLICY_MAX_PAIRED) {
        UK_LOG_WARN("pairing: %u origins are paired already; revoke one first",
                    UK_POLICY_MAX_PAIRED);
        return UK_E_LIMIT_EXCEEDED;
    }
    struct paired *grown = realloc(policy->paired, (policy->n_paired + 1) * sizeof *grown);
    if (grown == NULL)
        return UK_E_NO_MEMORY;
    policy->paired = grown;
    struct paired *e = &grown[policy->n_paired];
    *e = (struct paired){.origin = strdup(origin), .paired_at = now_unix < 0 ? 0 : now_unix};
    if (e->origin == NULL)
        return UK_E_NO_MEMORY;
    /* On disk first: an approval the next start would forget must not count now. */
    int rc = store_save(policy, grown, policy->n_paired + 1);
    if (rc != UK_OK) {
        free(e->origin);
        return rc;
    }
    policy->n_paired++;
    policy->memo->valid = false;
    UK_LOG_NOTICE("pairing: %s paired", origin);
    return UK_OK;
}

int uk_policy_unpair(uk_policy *policy, const char *origin)
{
    if (policy == NULL)
        return UK_E_INTERNAL;
    struct paired *e = origin != NULL ? find_paired(policy, origin) : NULL;
    if (e == NULL)
        return UK_E_NOT_FOUND;
    size_t i = (size_t)(e - policy->paired);
    struct paired *rest = calloc(policy->n_paired, sizeof *rest);
    if (rest == NULL)
        return UK_E_NO_MEMORY;
    memcpy(rest, policy->paired, i * sizeof *rest);
    memcpy(rest + i, policy->paired + i + 1, (policy->n_paired - i - 1) * sizeof *rest);
    int rc = store_save(policy, rest, policy->n_paired - 1);
    if (rc != UK_OK) {
        free(rest);
        return rc;
    }
    UK_LOG_NOTICE("pairing: %s revoked", origin);
    free(e->origin);
    free(policy->paired);
    policy->paired = rest;
    policy->n_paired--;
    policy->memo->valid = false;
    return UK_OK;
}

static void fill_rules(const uk_policy *p, uk_policy_origin_info *info)
{
    info->pin_from_page = false;
    info->consent = UK_CONSENT_REQUEST;
    info->methods = NULL;
    info->n_methods = 0;
    for (size_t i = 0; i < p->t.n_rules; i++) {
        const struct rules *r = &p->t.rules[i];
        if (strcmp(r->origin, info->origin) != 0)
            continue;
        info->pin_from_page = r->pin_from_page;
        info->consent = r->consent;
        if (r->methods_set) {
            /* A non-NULL array even when empty: "no method" differs from "all". */
            static const char *const none[1] = {NULL};
            info->methods = r->n_methods > 0 ? (const char *const *)r->methods : none;
            info->n_methods = r->n_methods;
        }
        return;
    }
}

void uk_policy_origins_foreach(const uk_policy *policy,
                               void (*fn)(void *arg, const uk_policy_origin_info *info), void *arg)
{
    if (policy == NULL || fn == NULL)
        return;
    const struct tables *t = &policy->t;
    uk_policy_origin_info info;
    for (size_t i = 0; i < t->n_origins; i++) {
        info = (uk_policy_origin_info){.origin = t->origins[i],
                                       .access = UK_ACCESS_ALLOWED,
                                       .from_system = t->origins_system[i]};
        fill_rules(policy, &info);
        fn(arg, &info);
    }
    for (size_t i = 0; i < t->n_ext_ids; i++) {
        char name[sizeof EXT_PREFIX + UK_EXTENSION_ID_LEN];
        snprintf(name, sizeof name, "%s%s", EXT_PREFIX, t->ext_ids[i]);
        if (listed(t->origins, t->n_origins, name))
            continue;
        info = (uk_policy_origin_info){
            .origin = name, .access = UK_ACCESS_ALLOWED, .from_system = t->ext_system};
        fill_rules(policy, &info);
        fn(arg, &info);
    }
    if (!t->pairing)
        return;
    for (size_t i = 0; i < policy->n_paired; i++) {
        const struct paired *e = &policy->paired[i];
        if (listed(t->origins, t->n_origins, e->origin))
            continue;
        info = (uk_policy_origin_info){
            .origin = e->origin, .access = UK_ACCESS_PAIRED, .paired_at = e->paired_at};
        fill_rules(policy, &info);
        fn(arg, &info);
    }
}

bool uk_policy_host_allowed(const char *header, size_t len, uint16_t port)
{
    static const char *const names[] = {"127.0.0.1", "localhost"};
    char want[32];
    if (header == NULL || port == 0)
        return false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int n = snprintf(want, sizeof want, "%s:%u", names[i], (unsigned)port);
        if (n > 0 && (size_t)n == len && memcmp(header, want, len) == 0)
            return true;
    }
    return false;
}

bool uk_policy_extension_allowed(const uk_policy *policy, const char *id)
{
    if (policy == NULL || id == NULL || !uk_extension_id_valid(id, strlen(id)))
        return false;
    return listed(policy->t.ext_ids, policy->t.n_ext_ids, id);
}

size_t uk_policy_origin_count(const uk_policy *policy)
{
    return policy != NULL ? policy->t.n_origins : 0;
}

/* Takes a token from b, which refills at rate per second up to rate. */
static bool bucket_take(struct bucket *b, uint64_t rate, uint64_t now_ms)
{
    if (rate == 0)
        return true;
    uint64_t cap = rate * 1000u;
    if (!b->started) {
        b->started = true;
        b->milli = cap;
        b->last_ms = now_ms;
    } else if (now_ms > b->last_ms) {
        uint64_t elapsed = now_ms - b->last_ms;
        /* rate tokens per second = rate thousandths per millisecond; a second refills it all. */
        b->milli = elapsed >= 1000u ? cap : b->milli + elapsed * rate;
        if (b->milli > cap)
            b->milli = cap;
        b->last_ms = now_ms;
    }
    if (b->milli < 1000u)
        return false;
    b->milli -= 1000u;
    return true;
}

/* The bucket of a PAIRABLE origin: its slot, else a free one, else the least recently used. */
static struct bucket *pairable_bucket(uk_policy *p, const char *origin)
{
    struct pairable *victim = &p->pairable[0];
    for (size_t i = 0; i < UK_POLICY_PAIRABLE_BUCKETS; i++) {
        struct pairable *s = &p->pairable[i];
        if (strcmp(s->origin, origin) == 0)
            return &s->rate;
        if (victim->origin[0] != '\0' &&
            (s->origin[0] == '\0' || s->rate.last_ms < victim->rate.last_ms))
            victim = s;
    }
    /* A recycled slot starts full; the shared bucket keeps a page with many origins in check. */
    snprintf(victim->origin, sizeof victim->origin, "%s", origin);
    victim->rate = (struct bucket){0};
    return &victim->rate;
}

bool uk_policy_rate_take(uk_policy *policy, const char *origin, uint64_t now_ms)
{
    if (origin == NULL)
        return true;
    if (policy == NULL)
        return false;
    struct bucket *b = find_bucket(&policy->t, origin);
    if (b != NULL)
        return bucket_take(b, policy->t.rate, now_ms);
    switch (uk_policy_origin_access(policy, origin)) {
    case UK_ACCESS_PAIRED:
        return bucket_take(&find_paired(policy, origin)->rate, policy->t.rate, now_ms);
    case UK_ACCESS_PAIRABLE: {
        /* Both must have a token; the shared one is only spent when the origin's own has one. */
        struct bucket *own = pairable_bucket(policy, origin);
        struct bucket probe = *own;
        if (!bucket_take(&probe, UK_POLICY_PAIRABLE_RATE, now_ms))
            return false;
        if (!bucket_take(&policy->pairable_all, UK_POLICY_PAIRABLE_RATE_TOTAL, now_ms))
            return false;
        *own = probe;
        return true;
    }
    default:
        return false;
    }
}
