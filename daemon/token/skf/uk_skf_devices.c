/*
 * uk_skf_devices.c - SKF devices as cards (uk_card_int.h) and the module's device scanner, the
 * token layer's "SKF" source (uk_source.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uk_card_int.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_skf_abi.h" /* SAR_ codes, UK_SKF_NAME_MAX (width-free) */
#include "uk_skf_int.h"

/* ---- a device as a card ------------------------------------------------------ */

typedef struct skf_card {
    uk_card base; /* first */
    uk_skf_module *mod;
    char dev[UK_SKF_NAME_MAX];
    char name[UK_SOURCE_NAME_MAX];
} skf_card;

static const uk__card_ops skf_card_ops;

/* The device is still there: what a PC/SC connect tells for a reader. A module without
 * SKF_GetDevState leaves it to the driver's calls (SAR_DEVICE_REMOVED). */
static int skf_begin(uk_card *base)
{
    skf_card *c = (skf_card *)base;
    bool present = false;
    uint32_t rv = UK__SKF(c->mod, dev_state, c->dev, &present);
    if (rv == SAR_NOTSUPPORTYETERR)
        return UK_OK;
    if (rv != SAR_OK)
        return uk__skf_err(rv, "SKF_GetDevState", c->name);
    return present ? UK_OK : UK_E_CARD_REMOVED;
}

static void skf_free(uk_card *base)
{
    skf_card *c = (skf_card *)base;
    uk_skf_module_put(c->mod);
    free(c);
}

static const char *skf_reader(const uk_card *base)
{
    return ((const skf_card *)base)->name;
}

static const uk__card_ops skf_card_ops = {
    .kind = "skf",
    .begin = skf_begin,
    .end = uk__card_nop, /* handles belong to the driver's state */
    .reconnect = skf_begin,
    .forget = uk__card_nop,
    .free = skf_free,
    .transmit = uk__card_no_transmit, /* an SKF device takes no APDUs */
    .atr = uk__card_no_atr,
    .reader = skf_reader,
};

int uk_skf_card_new(uk_card **out, uk_skf_module *m, const char *dev, const char *name)
{
    if (m == NULL || dev == NULL || name == NULL || dev[0] == '\0' ||
        strlen(dev) >= UK_SKF_NAME_MAX || strlen(name) >= UK_SOURCE_NAME_MAX)
        return UK_E_INVALID_PARAMS;
    skf_card *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return UK_E_NO_MEMORY;
    c->base.ops = &skf_card_ops;
    uk__skf_module_ref(m);
    c->mod = m;
    strcpy(c->dev, dev);
    strcpy(c->name, name);
    *out = &c->base;
    return UK_OK;
}

bool uk_skf_card_dev(const uk_card *card, uk_skf_module **m, const char **dev)
{
    if (card == NULL || card->ops != &skf_card_ops)
        return false;
    const skf_card *c = (const skf_card *)card;
    *m = c->mod;
    *dev = c->dev;
    return true;
}

/* ---- the scanner ------------------------------------------------------------------ */

/* What the scanner remembers of a device between scans; its index is its slot number. */
struct known {
    char dev[UK_SKF_NAME_MAX];
    bool present;
    unsigned events;
};

typedef struct skf_scan {
    char *path, *name;
    unsigned ulong_bytes;
    uk_skf_module *mod;
    uk_source_scanner *scanner;
    struct known known[UK_SOURCE_SLOTS_MAX];
    size_t n_known;
    uint32_t last_rv; /* SKF_EnumDev's last failure: logged when it changes */
    bool told_full;
} skf_scan;

static int scan_load(void *ctx)
{
    skf_scan *s = ctx;
    return uk_skf_module_get(s->path, s->name, s->ulong_bytes, &s->mod);
}

static struct known *known_dev(skf_scan *s, const char *dev)
{
    for (size_t i = 0; i < s->n_known; i++) {
        if (strcmp(s->known[i].dev, dev) == 0)
            return &s->known[i];
    }
    if (s->n_known == UK_SOURCE_SLOTS_MAX) {
        if (!s->told_full)
            UK_LOG_WARN("SKF module %s has more than %u devices; '%s' is ignored", s->name,
                        UK_SOURCE_SLOTS_MAX, dev);
        s->told_full = true;
        return NULL;
    }
    struct known *k = &s->known[s->n_known++];
    memset(k, 0, sizeof(*k));
    snprintf(k->dev, sizeof(k->dev), "%s", dev);
    return k;
}

static int scan_once(void *ctx, uk_source_snapshot *snap)
{
    skf_scan *s = ctx;
    char *list = NULL;
    size_t len = 0;
    uint32_t rv = UK__SKF(s->mod, enum_dev, &list, &len);
    if (rv != SAR_OK) {
        int err = rv != s->last_rv ? uk__skf_err(rv, "SKF_EnumDev", s->name) : UK_E_CARD_ERROR;
        s->last_rv = rv;
        return err == UK_OK ? UK_E_MODULE_ERROR : err;
    }
    s->last_rv = SAR_OK;
    bool now[UK_SOURCE_SLOTS_MAX] = {false};
    size_t pos = 0;
    for (const char *dev; (dev = uk__skf_next_name(list, len, &pos)) != NULL;) {
        if (strlen(dev) >= UK_SKF_NAME_MAX)
            continue; /* longer than the standard allows: not a name we can pass back */
        struct known *k = known_dev(s, dev);
        if (k != NULL)
            now[k - s->known] = true;
    }
    free(list);
    snap->mod = s->mod;
    for (size_t i = 0; i < s->n_known; i++) {
        struct known *k = &s->known[i];
        if (now[i] && !k->present)
            k->events++; /* (re-)inserted: a new token */
        k->present = now[i];
        uk_source_slot *st = &snap->slots[snap->n];
        int w = snprintf(st->name, sizeof(st->name), "%s: %s", s->mod->base.name, k->dev);
        if (w < 0 || (size_t)w >= sizeof(st->name))
            continue; /* a name that does not fit could not be mapped back to the device */
        st->slot = i;
        st->present = k->present;
        st->usable = k->present;
        st->events = k->events;
        snap->n++;
    }
    return UK_OK;
}

static int source_start(void **out, const uk_source_config *cfg, size_t source,
                        const uk_source_cbs *cbs)
{
    *out = NULL;
    skf_scan *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return UK_E_NO_MEMORY;
    s->path = strdup(cfg->path);
    s->name = strdup(cfg->name != NULL && cfg->name[0] != '\0' ? cfg->name : cfg->path);
    s->ulong_bytes = cfg->ulong_bytes;
    int rc = UK_E_NO_MEMORY;
    if (s->path != NULL && s->name != NULL) {
        uk_source_scan_ops ops = {.load = scan_load, .scan = scan_once, .ctx = s};
        rc = uk_source_scanner_start(&s->scanner, &ops, UK_SKF_RESCAN_MS, source, cbs);
    }
    if (rc != UK_OK) {
        free(s->path);
        free(s->name);
        free(s);
        return rc;
    }
    *out = s;
    return UK_OK;
}

static void source_wake(void *scan)
{
    uk_source_scanner_wake(((skf_scan *)scan)->scanner);
}

static void source_cancel(void *scan)
{
    uk_source_scanner_cancel(((skf_scan *)scan)->scanner);
}

static void source_free(void *scan)
{
    skf_scan *s = scan;
    if (s == NULL)
        return;
    uk_source_scanner_free(s->scanner); /* joins: nothing uses the module after this */
    uk_skf_module_put(s->mod);
    free(s->path);
    free(s->name);
    free(s);
}

/* name is "<module name>: <device>" (scan_once). */
static int source_card_new(uk_card **out, void *mod, unsigned long slot, const char *name)
{
    (void)slot;
    uk_skf_module *m = mod;
    size_t k = strlen(m->base.name);
    if (strncmp(name, m->base.name, k) != 0 || strncmp(name + k, ": ", 2) != 0)
        return UK_E_INVALID_PARAMS;
    return uk_skf_card_new(out, m, name + k + 2, name);
}

const uk_source_kind uk_skf_source = {
    .what = "SKF",
    .driver = "skf",
    .start = source_start,
    .wake = source_wake,
    .cancel = source_cancel,
    .free = source_free,
    .card_new = source_card_new,
};
