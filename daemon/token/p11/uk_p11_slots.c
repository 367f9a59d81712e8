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
    CK_RV rv = uk__p11_C_GetSlotInfo(c->mod, c->slot, &info);
    if (rv != CKR_OK)
        return uk__p11_err(rv, "C_GetSlotInfo", c->name);
    return (info.flags & CKF_TOKEN_PRESENT) ? UK_OK : UK_E_CARD_REMOVED;
}

static void p11_free(uk_card *base)
{
    p11_card *c = (p11_card *)base;
    uk_p11_module_put(c->mod);
    free(c);
}

static const char *p11_reader(const uk_card *base)
{
    return ((const p11_card *)base)->name;
}

static const uk__card_ops p11_card_ops = {
    .kind = "p11",
    .begin = p11_begin,
    .end = uk__card_nop, /* sessions belong to the driver's state */
    .reconnect = p11_begin,
    .forget = uk__card_nop,
    .free = p11_free,
    .transmit = uk__card_no_transmit, /* a module slot takes no APDUs */
    .atr = uk__card_no_atr,
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

/* The scanner thread is the generic one of the token layer (uk_source.h); this is its ctx. */
struct uk_p11_scan {
    char *path, *name;
    char *label; /* the token_label hint, or NULL */
    uk_source_scanner *scanner;
    uk_p11_module *mod;
    struct known known[UK_P11_SLOTS_MAX];
    size_t n_known;
    bool events_supported;
    bool told; /* "cannot list its slots" was logged */
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
        CK_RV rv = uk__p11_C_WaitForSlotEvent(s->mod, CKF_DONT_BLOCK, &slot, NULL);
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

/* Whether the token's label (blank-padded, no NUL) is the hint, byte for byte. */
static bool label_matches(const uk_p11_scan *s, const CK_UTF8CHAR *label, size_t size)
{
    if (s->label == NULL)
        return true;
    size_t n = size;
    while (n > 0 && (label[n - 1] == ' ' || label[n - 1] == '\0'))
        n--;
    return n == strlen(s->label) && memcmp(label, s->label, n) == 0;
}

static int scan_once(uk_p11_scan *s, uk_p11_snapshot *snap)
{
    CK_ULONG n = 0;
    CK_RV rv = uk__p11_C_GetSlotList(s->mod, CK_FALSE, NULL, &n);
    if (rv != CKR_OK)
        return uk__p11_err(rv, "C_GetSlotList", s->name);
    if (n > SLOTS_SANE_MAX) {
        UK_LOG_WARN("PKCS#11 module %s reports %lu slots; ignoring it", s->name, (unsigned long)n);
        return UK_E_MODULE_ERROR;
    }
    CK_SLOT_ID ids[SLOTS_SANE_MAX];
    CK_ULONG got = n;
    rv = n > 0 ? uk__p11_C_GetSlotList(s->mod, CK_FALSE, ids, &got) : CKR_OK;
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
        rv = uk__p11_C_GetSlotInfo(s->mod, ids[i], &si);
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
        CK_UTF8CHAR ti_label[sizeof(((CK_TOKEN_INFO *)NULL)->label)];
        memset(ti_label, ' ', sizeof(ti_label));
        if (st->present) {
            CK_TOKEN_INFO ti;
            memset(&ti, 0, sizeof(ti));
            rv = uk__p11_C_GetTokenInfo(s->mod, ids[i], &ti);
            if (rv == CKR_OK) {
                memcpy(ti_label, ti.label, sizeof(ti_label));
                char label[33], manuf[33], model[17], serial[17];
                uk__p11_field(ti.label, sizeof(ti.label), label, sizeof(label));
                uk__p11_field(ti.manufacturerID, sizeof(ti.manufacturerID), manuf, sizeof(manuf));
                uk__p11_field(ti.model, sizeof(ti.model), model, sizeof(model));
                uk__p11_field(ti.serialNumber, sizeof(ti.serialNumber), serial, sizeof(serial));
                snprintf(token, sizeof(token), "%s|%s|%s|%s", label, manuf, model, serial);
                st->usable = (ti.flags & CKF_TOKEN_INITIALIZED) != 0;
            }
        }
        /* A module with a token_label hint serves only that token: another one is reported as
         * an empty slot (docs/drivers.md, "Module hints"); so is one it cannot describe. */
        bool hidden = false;
        if (st->present && s->label != NULL) {
            hidden = rv != CKR_OK || !label_matches(s, ti_label, sizeof(ti_label));
            if (hidden) {
                st->present = false;
                st->usable = false;
                token[0] = '\0';
            }
        }
        struct known *k = known_slot(s, ids[i]);
        /* A token the module cannot describe (SoftHSM after another process deleted it) is
         * shown present but unusable; said once, not at every scan. */
        if ((st->present || hidden) && rv != CKR_OK && (k == NULL || k->info_rv != rv))
            (void)uk__p11_err(rv, "C_GetTokenInfo", st->desc);
        if (k != NULL)
            k->info_rv = (st->present || hidden) ? rv : CKR_OK;
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

static int scan_load(void *ctx)
{
    uk_p11_scan *s = ctx;
    s->events_supported = true;
    return uk_p11_module_get(s->path, s->name, &s->mod);
}

static int scan_slots(void *ctx, uk_p11_snapshot *snap)
{
    uk_p11_scan *s = ctx;
    snap->mod = s->mod;
    int rc = scan_once(s, snap);
    /* A module that misbehaves right now: its slots are reported gone (like readers when pcscd
     * leaves) and it is asked again; said once. */
    if (rc != UK_OK && !s->told)
        UK_LOG_WARN("PKCS#11 module %s: cannot list its slots: %s", s->name, uk_err_name(rc));
    s->told = rc != UK_OK;
    return rc;
}

int uk_p11_scan_start(uk_p11_scan **out, const uk_source_config *cfg, size_t source,
                      const uk_p11_scan_cbs *cbs)
{
    *out = NULL;
    if (cfg == NULL || cfg->path == NULL || cbs == NULL)
        return UK_E_INVALID_PARAMS;
    const char *path = cfg->path, *name = cfg->name, *label = cfg->token_label;
    uk_p11_scan *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return UK_E_NO_MEMORY;
    s->path = strdup(path);
    s->name = strdup(name != NULL && name[0] != '\0' ? name : path);
    bool label_ok = label == NULL || label[0] == '\0' || (s->label = strdup(label)) != NULL;
    int rc = UK_E_NO_MEMORY;
    if (s->path != NULL && s->name != NULL && label_ok) {
        uk_source_scan_ops ops = {.load = scan_load, .scan = scan_slots, .ctx = s};
        rc = uk_source_scanner_start(&s->scanner, &ops, UK_P11_RESCAN_MS, source, cbs);
    }
    if (rc != UK_OK) {
        free(s->path);
        free(s->name);
        free(s->label);
        free(s);
        return rc;
    }
    *out = s;
    return UK_OK;
}

void uk_p11_scan_wake(uk_p11_scan *s)
{
    uk_source_scanner_wake(s->scanner);
}

void uk_p11_scan_cancel(uk_p11_scan *s)
{
    uk_source_scanner_cancel(s->scanner);
}

void uk_p11_scan_free(uk_p11_scan *s)
{
    if (s == NULL)
        return;
    uk_source_scanner_free(s->scanner); /* joins: nothing uses the module after this */
    uk_p11_module_put(s->mod);
    free(s->path);
    free(s->name);
    free(s->label);
    free(s);
}

/* ---- the token layer's view (uk_source.h) ---------------------------------------- */

static int source_start(void **out, const uk_source_config *cfg, size_t source,
                        const uk_source_cbs *cbs)
{
    uk_p11_scan *s = NULL;
    int rc = uk_p11_scan_start(&s, cfg, source, cbs);
    *out = s;
    return rc;
}

static void source_wake(void *s)
{
    uk_p11_scan_wake(s);
}

static void source_cancel(void *s)
{
    uk_p11_scan_cancel(s);
}

static void source_free(void *s)
{
    uk_p11_scan_free(s);
}

static int source_card_new(uk_card **out, void *mod, unsigned long slot, const char *name)
{
    return uk_p11_card_new(out, mod, slot, name);
}

const uk_source_kind uk_p11_source = {
    .what = "PKCS#11",
    .driver = "p11",
    .start = source_start,
    .wake = source_wake,
    .cancel = source_cancel,
    .free = source_free,
    .card_new = source_card_new,
};
