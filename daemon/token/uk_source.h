/*
 * uk_source.h - module token sources: vendor libraries (PKCS#11, SKF) whose slots or devices the
 * token layer treats as readers next to the PC/SC ones (docs/architecture.md, "Token layer").
 *
 * A kind of source (uk_p11_source, uk_skf_source) brings a scanner thread per configured module
 * that reports the module's readers as snapshots, and the uk_card of one reader. The token
 * layer applies a snapshot like a PC/SC one: a presence change or a new event count is a card
 * event. The layer knows a source only through this table, so it has no code of its own for any
 * kind.
 *
 * Ownership: start returns a scanner the layer frees with free (after exited); snapshots are
 * malloc'ed and owned by the snapshot callback. snapshot->mod is borrowed: valid until the
 * scanner is freed, and only handed back to card_new of the same kind.
 * Threads: start/wake/cancel/free from the loop thread (wake and cancel from any thread);
 * callbacks run on the scanner thread; card_new on the loop thread.
 * Errors: uk_err.h codes; a module that cannot be loaded is reported by a snapshot whose status
 * says why (MODULE_ERROR), never by start, which fails only for memory or threads.
 */
#ifndef UK_SOURCE_H
#define UK_SOURCE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "uk_card.h"

/* Readers reported per module; further ones are ignored (logged by the scanner). */
#define UK_SOURCE_SLOTS_MAX 16u
/* A reader's name: "<module name>: <slot or device>". */
#define UK_SOURCE_NAME_MAX 128u

/* One reader as the scanner last saw it. */
typedef struct uk_source_slot {
    char name[UK_SOURCE_NAME_MAX]; /* unique within the module */
    unsigned long slot;            /* the kind's own number for it */
    bool present;                  /* a token is there */
    bool usable;                   /* present and ready to identify (PKCS#11: initialised) */
    unsigned events;               /* bumped when the token changed (another, re-inserted) */
    char desc[65]; /* a PC/SC reader name prefix the reader stands for, or "" (dedup) */
} uk_source_slot;

typedef struct uk_source_snapshot {
    int status; /* UK_OK, or why the module is unusable (then n == 0) */
    void *mod;  /* borrowed (see above); NULL unless status is OK */
    size_t n;
    uk_source_slot slots[UK_SOURCE_SLOTS_MAX];
} uk_source_snapshot;

typedef struct uk_source_cbs {
    /* A snapshot the callee now owns (free()); only when something changed. */
    void (*snapshot)(void *ctx, size_t source, uk_source_snapshot *snap);
    /* Once, last, when the thread is about to return (after cancel). */
    void (*exited)(void *ctx, size_t source);
    void *ctx;
} uk_source_cbs;

/* What the configuration says of one module (copied by start). */
typedef struct uk_source_config {
    const char *path;     /* absolute, from a configuration file */
    const char *name;     /* for logs and reader names; "" = the path */
    unsigned ulong_bytes; /* SKF: 4 or 8 (0 = 4); ignored by other kinds */
    /* PKCS#11: NULL, or the exact token label (blank padding removed) a slot's token must have
     * to be served: a slot with another token is reported empty. Ignored by other kinds. */
    const char *token_label;
} uk_source_config;

typedef struct uk_source_kind {
    const char *what;   /* "PKCS#11", "SKF": logs */
    const char *driver; /* the driver of its tokens, whose ids are "<driver>:…" */
    int (*start)(void **out, const uk_source_config *cfg, size_t source, const uk_source_cbs *cbs);
    void (*wake)(void *scan);   /* re-scan soon (a PC/SC change) */
    void (*cancel)(void *scan); /* leave; exited() follows */
    void (*free)(void *scan);   /* joins and frees; NULL-safe */
    int (*card_new)(uk_card **out, void *mod, unsigned long slot, const char *name);
} uk_source_kind;

/*
 * A scanner thread for a kind of source (uk_source.c; both kinds use it): calls load once, then
 * scan at start, at every uk_source_scanner_wake and every rescan_ms, and hands a snapshot to
 * cbs->snapshot only when it differs from the last one published. A failing load or scan is
 * published as a snapshot with that status (said once in the log by the kind). Both run on the
 * scanner thread with the kind's ctx; snap arrives zeroed.
 */
typedef struct uk_source_scan_ops {
    int (*load)(void *ctx);
    int (*scan)(void *ctx, uk_source_snapshot *snap);
    void *ctx;
} uk_source_scan_ops;

typedef struct uk_source_scanner uk_source_scanner;

/*
 * Loaded module libraries, shared by every kind: one instance per real path, refcounted. A kind
 * embeds uk_source_module first in its module struct and describes itself in a
 * uk_source_module_kind with its own lock and list. get resolves the path (two names of one file
 * are one module: a second instance of a PKCS#11 module would see
 * CKR_CRYPTOKI_ALREADY_INITIALIZED and outlive the first's C_Finalize), shares a loaded instance
 * when the kind's share agrees, else allocates, loads and lists a new one, under the kind's lock
 * (two sources asking for one path at once must not both initialise it). The last put unloads
 * under the lock too, so a get of the same path waits for the unload.
 * Errors of get: UK_E_INVALID_PARAMS (not an absolute path), UK_E_MODULE_ERROR (no such file,
 * refused by share, or load's error), UK_E_NO_MEMORY. Any thread.
 */
typedef struct uk_source_module {
    struct uk_source_module *next;
    char *path; /* the real path: the key */
    char *name; /* for logs and reader names */
    unsigned refs;
} uk_source_module;

typedef struct uk_source_module_kind {
    const char *what;   /* "PKCS#11", "SKF": logs */
    const char *driver; /* the driver of its tokens, whose ids are "<driver>:…" */
    pthread_mutex_t *mu;
    uk_source_module **list;
    /* A zeroed instance of the kind with its own fields from arg; NULL when out of memory. */
    uk_source_module *(*alloc)(const void *arg);
    /* UK_OK when the loaded m may serve arg (NULL: always), else the logged error. */
    int (*share)(const uk_source_module *m, const void *arg, const char *shown);
    /* Loads m->path; logs its own failures. */
    int (*load)(uk_source_module *m);
    /* Said after "loaded from PATH" in the log (" (8-byte ULONG)"); NULL: nothing. */
    const char *(*note)(const uk_source_module *m);
    /* Undoes what load did (also after a failed load or none: path may be NULL) and frees the
     * kind's fields and m itself; the registry frees path and name afterwards. */
    void (*unload)(uk_source_module *m);
} uk_source_module_kind;

int uk_source_module_get(const uk_source_module_kind *k, const char *path, const char *name,
                         const void *arg, uk_source_module **out)
    __attribute__((warn_unused_result));
void uk_source_module_ref(const uk_source_module_kind *k, uk_source_module *m);
/* Drops a reference; the last one unloads. NULL-safe. */
void uk_source_module_put(const uk_source_module_kind *k, uk_source_module *m);

int uk_source_scanner_start(uk_source_scanner **out, const uk_source_scan_ops *ops,
                            unsigned rescan_ms, size_t source, const uk_source_cbs *cbs)
    __attribute__((warn_unused_result));
void uk_source_scanner_wake(uk_source_scanner *s);   /* any thread */
void uk_source_scanner_cancel(uk_source_scanner *s); /* any thread; exited() follows */
/* Joins (after exited()) and frees; the kind's ctx stays the caller's. NULL-safe. */
void uk_source_scanner_free(uk_source_scanner *s);

#endif
