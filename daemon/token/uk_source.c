/*
 * uk_source.c - the scanner thread shared by module token sources (uk_source.h).
 */
#include "uk_source.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "uk_err.h"
#include "uk_log.h"

struct uk_source_scanner {
    uk_source_scan_ops ops;
    uk_source_cbs cbs;
    size_t source;
    unsigned rescan_ms;
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    bool wake, stop;          /* under mu */
    uk_source_snapshot *last; /* what was last published */
};

static bool same(const uk_source_snapshot *a, const uk_source_snapshot *b)
{
    if (a == NULL || a->status != b->status || a->n != b->n || a->mod != b->mod)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const uk_source_slot *x = &a->slots[i], *y = &b->slots[i];
        if (strcmp(x->name, y->name) != 0 || x->slot != y->slot || x->present != y->present ||
            x->usable != y->usable || x->events != y->events || strcmp(x->desc, y->desc) != 0)
            return false;
    }
    return true;
}

/* Publishes snap (taken) when it differs from the last one. */
static void publish(uk_source_scanner *s, uk_source_snapshot *snap)
{
    if (same(s->last, snap)) {
        free(snap);
        return;
    }
    uk_source_snapshot *copy = malloc(sizeof(*copy));
    if (copy == NULL) {
        free(snap);
        return; /* published at the next scan that finds memory */
    }
    *copy = *snap;
    free(s->last);
    s->last = snap;
    s->cbs.snapshot(s->cbs.ctx, s->source, copy);
}

/* Waits up to ms for a wake or a stop; false when stopping. */
static bool scan_wait(uk_source_scanner *s, unsigned ms)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000u;
    uv_mutex_lock(&s->mu);
    while (!s->stop && !s->wake) {
        uint64_t now = uv_hrtime();
        if (now >= deadline)
            break;
        (void)uv_cond_timedwait(&s->cond, &s->mu, deadline - now);
    }
    s->wake = false;
    bool go_on = !s->stop;
    uv_mutex_unlock(&s->mu);
    return go_on;
}

static void scan_thread(void *arg)
{
    uk_source_scanner *s = arg;
    int rc = s->ops.load(s->ops.ctx);
    unsigned wait_ms = s->rescan_ms;
    bool failed_once = false;
    do {
        uk_source_snapshot *snap = calloc(1, sizeof(*snap));
        if (snap == NULL)
            continue;
        if (rc == UK_OK) {
            int src = s->ops.scan(s->ops.ctx, snap);
            if (src != UK_OK && !failed_once) {
                /* One failed listing is not a pulled key: what the last scan published stands
                 * until the next one says otherwise (a renewal's card job is not cut off by a
                 * module's glitch in another thread). */
                failed_once = true;
                free(snap);
                continue;
            }
            if (src != UK_OK) {
                /* The module misbehaves still: its readers are reported gone (like readers
                 * when pcscd leaves) and it is asked again. */
                memset(snap, 0, sizeof(*snap));
                snap->status = src;
            } else {
                failed_once = false;
            }
        } else {
            /* Unusable until the configuration is loaded again: said once, then idle. */
            snap->status = rc;
            wait_ms = s->rescan_ms * 30u;
        }
        publish(s, snap);
    } while (scan_wait(s, wait_ms));
    s->cbs.exited(s->cbs.ctx, s->source);
}

int uk_source_scanner_start(uk_source_scanner **out, const uk_source_scan_ops *ops,
                            unsigned rescan_ms, size_t source, const uk_source_cbs *cbs)
{
    *out = NULL;
    if (ops == NULL || ops->load == NULL || ops->scan == NULL || cbs == NULL ||
        cbs->snapshot == NULL || cbs->exited == NULL || rescan_ms == 0)
        return UK_E_INVALID_PARAMS;
    uk_source_scanner *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return UK_E_NO_MEMORY;
    s->ops = *ops;
    s->cbs = *cbs;
    s->source = source;
    s->rescan_ms = rescan_ms;
    if (uv_mutex_init(&s->mu) != 0)
        goto fail_mu;
    if (uv_cond_init(&s->cond) != 0)
        goto fail_cond;
    if (uv_thread_create(&s->thread, scan_thread, s) != 0)
        goto fail_thread;
    *out = s;
    return UK_OK;
fail_thread:
    uv_cond_destroy(&s->cond);
fail_cond:
    uv_mutex_destroy(&s->mu);
fail_mu:
    free(s);
    return UK_E_INTERNAL;
}

static void signal_flag(uk_source_scanner *s, bool stop)
{
    uv_mutex_lock(&s->mu);
    if (stop)
        s->stop = true;
    else
        s->wake = true;
    uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->mu);
}

void uk_source_scanner_wake(uk_source_scanner *s)
{
    signal_flag(s, false);
}

void uk_source_scanner_cancel(uk_source_scanner *s)
{
    signal_flag(s, true);
}

void uk_source_scanner_free(uk_source_scanner *s)
{
    if (s == NULL)
        return;
    uv_thread_join(&s->thread);
    uv_cond_destroy(&s->cond);
    uv_mutex_destroy(&s->mu);
    free(s->last);
    free(s);
}

/* ---- loaded modules ---------------------------------------------------------------------- */

static void module_free(const uk_source_module_kind *k, uk_source_module *m)
{
    char *path = m->path, *name = m->name;
    k->unload(m); /* may still log m's name */
    free(path);
    free(name);
}

int uk_source_module_get(const uk_source_module_kind *k, const char *path, const char *name,
                         const void *arg, uk_source_module **out)
{
    *out = NULL;
    if (path == NULL || path[0] != '/')
        return UK_E_INVALID_PARAMS; /* the config only gives absolute paths */
    const char *shown = name != NULL && name[0] != '\0' ? name : path;
    char real[PATH_MAX];
    if (realpath(path, real) == NULL) {
        UK_LOG_ERR("%s module %s: cannot load %s: %s", k->what, shown, path, strerror(errno));
        return UK_E_MODULE_ERROR;
    }
    pthread_mutex_lock(k->mu);
    int rc = UK_OK;
    uk_source_module *m = *k->list;
    while (m != NULL && strcmp(m->path, real) != 0)
        m = m->next;
    if (m != NULL) {
        rc = k->share != NULL ? k->share(m, arg, shown) : UK_OK;
        if (rc == UK_OK) {
            m->refs++;
            *out = m;
        }
        pthread_mutex_unlock(k->mu);
        return rc;
    }
    rc = UK_E_NO_MEMORY;
    if ((m = k->alloc(arg)) == NULL)
        goto out;
    if ((m->path = strdup(real)) == NULL || (m->name = strdup(shown)) == NULL)
        goto out;
    if ((rc = k->load(m)) != UK_OK)
        goto out;
    m->refs = 1;
    m->next = *k->list;
    *k->list = m;
    UK_LOG_INFO("%s module %s loaded from %s%s", k->what, m->name, m->path,
                k->note != NULL ? k->note(m) : "");
    *out = m;
    m = NULL;
out:
    pthread_mutex_unlock(k->mu);
    if (m != NULL)
        module_free(k, m);
    return rc;
}

void uk_source_module_ref(const uk_source_module_kind *k, uk_source_module *m)
{
    pthread_mutex_lock(k->mu);
    m->refs++;
    pthread_mutex_unlock(k->mu);
}

void uk_source_module_put(const uk_source_module_kind *k, uk_source_module *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(k->mu);
    if (--m->refs == 0) {
        for (uk_source_module **p = k->list; *p != NULL; p = &(*p)->next) {
            if (*p == m) {
                *p = m->next;
                break;
            }
        }
        module_free(k, m); /* under the lock: a get of the same path waits for the unload */
    }
    pthread_mutex_unlock(k->mu);
}
