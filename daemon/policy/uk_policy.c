/* The allowlists (origins, extension IDs), the Host check and the per-origin rate limit. */
#include "uk_policy.h"

#include "uk_config.h"
#include "uk_err.h"
#include "uk_log.h"

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

struct tables {
    char **origins;
    size_t n_origins;
    char **ext_ids;
    size_t n_ext_ids;
    struct bucket *buckets; /* the origins, then "chrome-extension://ID" per extension */
    size_t n_buckets;
    size_t rate;
};

struct uk_policy {
    struct tables t;
};

static void tables_close(struct tables *t)
{
    for (size_t i = 0; i < t->n_origins; i++)
        free(t->origins[i]);
    free(t->origins);
    for (size_t i = 0; i < t->n_ext_ids; i++)
        free(t->ext_ids[i]);
    free(t->ext_ids);
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

static int tables_build(const uk_config *cfg, struct tables *t)
{
    const char *source = cfg->path != NULL ? cfg->path : "(defaults)";
    int rc = UK_OK;
    memset(t, 0, sizeof *t);
    t->rate = cfg->limits.requests_per_second_per_origin;
    for (size_t i = 0; i < cfg->n_origins; i++) {
        if ((rc = check_origin(source, cfg->origins[i])) != UK_OK)
            goto out;
        if ((rc = add_string(&t->origins, &t->n_origins, cfg->origins[i])) != UK_OK)
            goto out;
    }
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

int uk_policy_new(const uk_config *cfg, uk_policy **out)
{
    if (cfg == NULL || out == NULL)
        return UK_E_INTERNAL;
    uk_policy *p = calloc(1, sizeof *p);
    if (p == NULL)
        return UK_E_NO_MEMORY;
    int rc = tables_build(cfg, &p->t);
    if (rc != UK_OK) {
        free(p);
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
    tables_close(&policy->t);
    policy->t = t;
    return UK_OK;
}

bool uk_policy_origin_allowed(const uk_policy *policy, const char *header, size_t len,
                              const char **why)
{
    uk_origin o;
    const char *reason = NULL;
    if (policy == NULL)
        reason = "no policy";
    else if (uk_origin_parse(header, len, &o, &reason) == UK_OK) {
        if (listed(policy->t.origins, policy->t.n_origins, o.text))
            return true;
        reason = "not in the allowlist";
    }
    if (why != NULL)
        *why = reason;
    return false;
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

bool uk_policy_rate_take(uk_policy *policy, const char *origin, uint64_t now_ms)
{
    if (origin == NULL)
        return true;
    if (policy == NULL)
        return false;
    struct bucket *b = find_bucket(&policy->t, origin);
    if (b == NULL)
        return false;
    uint64_t rate = policy->t.rate;
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
