/*
 * uk_p11_slots.c - PKCS#11 slots as cards (uk_card_int.h) and the scanner
 * thread that reports a module's slots as readers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "uk_card_int.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_p11_int.h"

/* More slots than this from C_GetSlotList is taken as garbage. */
#define SLOTS_SANE_MAX 1024u

/* ---- a slot as a card ------------------------------------------------------ */

typedef struct p11_card {
    uk_card base; /* first */
    uk_p11_module *mod;
    CK_SLOT_ID slot;
    char name[UK_P11_NAME_MAX];
} p11_card;

static const uk__card_ops p11_card_ops;

/* The token is still in the slot: what a PC/SC connect tells for a reader. */
static int p11_begin(uk_card *base)
{
    p11_card *c = (p11_card *)base;
    CK_SLOT_INFO info;
    memset(&info, 0, sizeof(info));
    CK_RV rv = uk__p11_fns_of(c->mod)->C_GetSlotInfo(c->slot, &info);
    if (rv != CKR_OK)
        return uk__p11_err(rv, "C_GetSlotInfo", c->name);
    return (info.flags & CKF_TOKEN_PRESENT) ? UK_OK : UK_E_CARD_REMOVED;
}

static void p11_end(uk_card *base)
{
    (void)base; /* sessions belong to the driver's state; nothing is held per operation */
}

static void p11_forget(uk_card *base)
{
    (void)base;
}

static void p11_free(uk_card *base)
{
    p11_card *c = (p11_card *)base;
    uk_p11_module_put(c->mod);
    free(c);
}

static int p11_transmit(uk_card *base, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
                        size_t *resp_len)
{
    (void)base;
    (void)apdu;
    (void)len;
    (void)resp;
    (void)cap;
    *resp_len = 0;
    return UK_E_NOT_SUPPORTED; /* a module slot takes no APDUs: card drivers say "not mine" */
}

static void p11_atr(const uk_card *base, const uint8_t **atr, size_t *len)
{
    (void)base;
    *atr = NULL;
    *len = 0;
}

static const char *p11_reader(const uk_card *base)
{
    return ((const p11_card *)base)->name;
}

static const uk__card_ops p11_card_ops = {
    .kind = "p11",
    .begin = p11_begin,
    .end = p11_end,
    .reconnect = p11_begin,
    .forget = p11_forget,
    .free = p11_free,
    .transmit = p11_transmit,
    .atr = p11_atr,
    .reader = p11_reader,
};

int uk_p11_card_new(uk_card **out, uk_p11_module *m, unsigned long slot, const char *name)
{
    if (m == NULL || name == NULL || strlen(name) >= UK_P11_NAME_MAX)
        return UK_E_INVALID_PARAMS;
    p11_card *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return UK_E_NO_MEMORY;
    c->base.ops = &p11_card_ops;
    uk__p11_module_ref(m);
    c->mod = m;
    c->slot = slot;
    strcpy(c->name, name);
    *out = &c->base;
    return UK_OK;
}

bool uk_p11_card_slot(const uk_card *card, uk_p11_module **m, unsigned long *slot)
{
    if (card == NULL || card->ops != &p11_card_ops)
        return false;
    const p11_card *c = (const p11_card *)card;
    *m = c->mod;
    *slot = c->slot;
    return true;
}

/* ---- the scanner ------------------------------------------------------------- */

/* What the scanner remembers of a slot between scans. */
struct known {
    CK_SLOT_ID slot;
    bool present;
    unsigned events;
    char token[128]; /* label, manufacturer, model, serial of the token last seen */
    CK_RV info_rv;   /* C_GetTokenInfo's last answer: a failure is logged when it changes */
};

struct uk_p11_scan {
    char *path, *name;
    size_t source;
    uk_p11_scan_cbs cbs;
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    bool wake, stop; /* under mu */
    uk_p11_module *mod;
    uk_p11_snapshot *last; /* what was last published */
    struct known known[UK_P11_SLOTS_MAX];
    size_t n_known;
    bool events_supported;
};

static struct known *known_slot(uk_p11_scan *s, CK_SLOT_ID slot)
{
    for (size_t i = 0; i < s->n_known; i++) {
        if (s->known[i].slot == slot)
            return &s->known[i];
    }
    if (s->n_known == UK_P11_SLOTS_MAX)
        return NULL;
    struct known *k = &s->known[s->n_known++];
    memset(k, 0, sizeof(*k));
    k->slot = slot;
    return k;
}

/* Slot events the module queued (CKF_DONT_BLOCK: never waits): a token out
 * and in again between two scans is still a new token. */
static void drain_events(uk_p11_scan *s)
{
    if (!s->events_supported)
        return;
    for (unsigned i = 0; i < 4u * UK_P11_SLOTS_MAX; i++) {
        CK_SLOT_ID slot = 0;
        CK_RV rv = uk__p11_fns_of(s->mod)->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL);
        if (rv == CKR_NO_EVENT)
            return;
        if (rv != CKR_OK) {
            if (rv != CKR_FUNCTION_NOT_SUPPORTED)
                (void)uk__p11_err(rv, "C_WaitForSlotEvent", s->name);
            s->events_supported = false;
            return;
        }
        struct known *k = known_slot(s, slot);
        if (k != NULL)
            k->events++;
    }
}

static void slot_name(uk_p11_scan *s, uk_p11_snapshot *snap, size_t i)
{
    uk_p11_slot_state *st = &snap->slots[i];
    char desc[sizeof(st->desc) + 32];
    if (st->desc[0] != '\0')
        snprintf(desc, sizeof(desc), "%s", st->desc);
    else
        snprintf(desc, sizeof(desc), "slot %lu", st->slot);
    int k = snprintf(st->name, sizeof(st->name), "%s: %s", s->name, desc);
    for (size_t j = 0; j < i && k >= 0; j++) {
        if (strcmp(snap->slots[j].name, st->name) == 0) { /* two slots with one description */
            k = snprintf(st->name, sizeof(st->name), "%s: %s (%lu)", s->name, desc, st->slot);
            break;
        }
    }
}

static int scan_once(uk_p11_scan *s, uk_p11_snapshot *snap)
{
    const uk__p11_fns *f = uk__p11_fns_of(s->mod);
    CK_ULONG n = 0;
    CK_RV rv = f->C_GetSlotList(CK_FALSE, NULL, &n);
    if (rv != CKR_OK)
        return uk__p11_err(rv, "C_GetSlotList", s->name);
    if (n > SLOTS_SANE_MAX) {
        UK_LOG_WARN("PKCS#11 module %s reports %lu slots; ignoring it", s->name, (unsigned long)n);
        return UK_E_MODULE_ERROR;
    }
    CK_SLOT_ID ids[SLOTS_SANE_MAX];
    CK_ULONG got = n;
    rv = n > 0 ? f->C_GetSlotList(CK_FALSE, ids, &got) : CKR_OK;
    if (rv == CKR_BUFFER_TOO_SMALL) /* a slot appeared between the two calls: next scan */
        got = 0;
    else if (rv != CKR_OK)
        return uk__p11_err(rv, "C_GetSlotList", s->name);
    if (got > n) {
        UK_LOG_WARN("PKCS#11 module %s: C_GetSlotList returned %lu slots into room for %lu",
                    s->name, (unsigned long)got, (unsigned long)n);
        return UK_E_MODULE_ERROR;
    }
    if (got > UK_P11_SLOTS_MAX) {
        UK_LOG_WARN("PKCS#11 module %s has %lu slots; only the first %u are used", s->name,
                    (unsigned long)got, UK_P11_SLOTS_MAX);
        got = UK_P11_SLOTS_MAX;
    }
    drain_events(s);
    for (CK_ULONG i = 0; i < got; i++) {
        CK_SLOT_INFO si;
        memset(&si, 0, sizeof(si));
        rv = f->C_GetSlotInfo(ids[i], &si);
        if (rv != CKR_OK) {
            (void)uk__p11_err(rv, "C_GetSlotInfo", s->name);
            continue; /* a slot that went away between the two calls */
        }
        uk_p11_slot_state *st = &snap->slots[snap->n];
        memset(st, 0, sizeof(*st));
        st->slot = ids[i];
        uk__p11_field(si.slotDescription, sizeof(si.slotDescription), st->desc, sizeof(st->desc));
        st->present = (si.flags & CKF_TOKEN_PRESENT) != 0;
        char token[128] = "";
        if (st->present) {
            CK_TOKEN_INFO ti;
            memset(&ti, 0, sizeof(ti));
            rv = f->C_GetTokenInfo(ids[i], &ti);
            if (rv == CKR_OK) {
                char label[33], manuf[33], model[17], serial[17];
                uk__p11_field(ti.label, sizeof(ti.label), label, sizeof(label));
                uk__p11_field(ti.manufacturerID, sizeof(ti.manufacturerID), manuf, sizeof(manuf));
                uk__p11_field(ti.model, sizeof(ti.model), model, sizeof(model));
                uk__p11_field(ti.serialNumber, sizeof(ti.serialNumber), serial, sizeof(serial));
                snprintf(token, sizeof(token), "%s|%s|%s|%s", label, manuf, model, serial);
                st->usable = (ti.flags & CKF_TOKEN_INITIALIZED) != 0;
            }
        }
        struct known *k = known_slot(s, ids[i]);
        /* A token the module cannot describe (SoftHSM after another process deleted it) is
         * shown present but unusable; said once, not at every scan. */
        if (st->present && rv != CKR_OK && (k == NULL || k->info_rv != rv))
            (void)uk__p11_err(rv, "C_GetTokenInfo", st->desc);
        if (k != NULL)
            k->info_rv = st->present ? rv : CKR_OK;
        if (k != NULL) {
            if (k->present != st->present || (st->present && strcmp(k->token, token) != 0))
                k->events++;
            k->present = st->present;
            snprintf(k->token, sizeof(k->token), "%s", token);
            st->events = k->events;
        }
        slot_name(s, snap, snap->n);
        snap->n++;
    }
    return UK_OK;
}

static bool same(const uk_p11_snapshot *a, const uk_p11_snapshot *b)
{
    if (a == NULL || a->status != b->status || a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const uk_p11_slot_state *x = &a->slots[i], *y = &b->slots[i];
        if (strcmp(x->name, y->name) != 0 || x->slot != y->slot || x->present != y->present ||
            x->usable != y->usable || x->events != y->events)
            return false;
    }
    return true;
}

static void publish(uk_p11_scan *s, uk_p11_snapshot *snap)
{
    if (same(s->last, snap)) {
        free(snap);
        return;
    }
    uk_p11_snapshot *copy = malloc(sizeof(*copy));
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
static bool scan_wait(uk_p11_scan *s, unsigned ms)
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
    uk_p11_scan *s = arg;
    int rc = uk_p11_module_get(s->path, s->name, &s->mod);
    s->events_supported = true;
    bool told = false;
    while (rc == UK_OK) {
        uk_p11_snapshot *snap = calloc(1, sizeof(*snap));
        if (snap != NULL) {
            snap->mod = s->mod;
            int src = scan_once(s, snap);
            if (src == UK_OK) {
                told = false;
                publish(s, snap);
            } else {
                /* The module misbehaves right now: its slots are reported gone
                 * (like readers when pcscd leaves) and it is asked again. */
                if (!told)
                    UK_LOG_WARN("PKCS#11 module %s: cannot list its slots: %s", s->name,
                                uk_err_name(src));
                told = true;
                memset(snap, 0, sizeof(*snap));
                snap->status = src;
                publish(s, snap);
            }
        }
        if (!scan_wait(s, UK_P11_RESCAN_MS))
            break;
    }
    if (rc != UK_OK) {
        /* Unusable until the configuration is loaded again: say so once. */
        uk_p11_snapshot *snap = calloc(1, sizeof(*snap));
        if (snap != NULL) {
            snap->status = rc;
            publish(s, snap);
        }
        while (scan_wait(s, UK_P11_RESCAN_MS * 30u))
            ;
    }
    s->cbs.exited(s->cbs.ctx, s->source);
}

int uk_p11_scan_start(uk_p11_scan **out, const char *path, const char *name, size_t source,
                      const uk_p11_scan_cbs *cbs)
{
    *out = NULL;
    if (path == NULL || cbs == NULL || cbs->snapshot == NULL || cbs->exited == NULL)
        return UK_E_INVALID_PARAMS;
    uk_p11_scan *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return UK_E_NO_MEMORY;
    s->path = strdup(path);
    s->name = strdup(name != NULL && name[0] != '\0' ? name : path);
    s->source = source;
    s->cbs = *cbs;
    if (s->path == NULL || s->name == NULL) {
        free(s->path);
        free(s->name);
        free(s);
        return UK_E_NO_MEMORY;
    }
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
    free(s->path);
    free(s->name);
    free(s);
    return UK_E_INTERNAL;
}

void uk_p11_scan_wake(uk_p11_scan *s)
{
    uv_mutex_lock(&s->mu);
    s->wake = true;
    uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->mu);
}

void uk_p11_scan_cancel(uk_p11_scan *s)
{
    uv_mutex_lock(&s->mu);
    s->stop = true;
    uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->mu);
}

void uk_p11_scan_free(uk_p11_scan *s)
{
    if (s == NULL)
        return;
    uv_thread_join(&s->thread);
    uv_cond_destroy(&s->cond);
    uv_mutex_destroy(&s->mu);
    uk_p11_module_put(s->mod);
    free(s->last);
    free(s->path);
    free(s->name);
    free(s);
}
