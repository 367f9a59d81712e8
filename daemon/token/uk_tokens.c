/*
 * uk_tokens.c - the token layer: readers and tokens as the loop thread sees
 * them, one worker per reader for every card operation, the certificate
 * cache, and events.
 *
 * Threads:
 *   - loop thread: everything in struct uk_tokens and struct reader, except
 *     reader->card, which only jobs touch;
 *   - monitor thread (uk_pcsc.c): hands snapshots over through mon_async;
 *   - one uk_worker per reader: runs struct op jobs in FIFO order, so two
 *     operations on one card never interleave; each job is one card
 *     transaction (uk__card_begin .. uk__card_end).
 *
 * A card's life: the monitor reports it present -> an IDENTIFY job probes the
 * drivers in table order and opens the first that answers -> the session
 * (driver + its state) is published with UK_TOKEN_INSERTED. Any card event
 * for the reader (removal, a new insertion counter, the reader leaving,
 * pcscd going away) bumps the reader's generation, drops the certificate
 * cache, marks the session dead (queued jobs on it answer CARD_REMOVED
 * without touching the card), queues a CLOSE job and emits UK_TOKEN_REMOVED.
 * Results of jobs from an older generation are never published.
 */
#include "uk_token.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_p11.h"
#include "uk_pcsc.h"
#include "uk_skf.h"
#include "uk_source.h"
#include "uk_secret.h"
#include "uk_token_internal.h"
#include "uk_worker.h"

/* Readers remembered (present or not): their numbers stay stable. */
#define READERS_KNOWN_MAX (2u * UK__READERS_MAX)
/* Largest digest accepted (SHA-512) and signature returned (RSA-4096). */
#define DIGEST_MAX 64u
#define SIG_MAX    1024u
/* How often SCardCancel is repeated while the monitor has not left. */
#define CANCEL_REPEAT_MS 100u
#define SERVICE_UNKNOWN  1
/* Modules of every kind together. */
#define MODULES_MAX (UK_LIMIT_PKCS11_MODULES + UK_LIMIT_SKF_MODULES)

/* ---- small utilities ---------------------------------------------------- */

int uk__stop_init(uk__stop *s)
{
    s->stop = false;
    if (uv_mutex_init(&s->mu) != 0)
        return UK_E_INTERNAL;
    if (uv_cond_init(&s->cond) != 0) {
        uv_mutex_destroy(&s->mu);
        return UK_E_INTERNAL;
    }
    return UK_OK;
}

void uk__stop_destroy(uk__stop *s)
{
    uv_cond_destroy(&s->cond);
    uv_mutex_destroy(&s->mu);
}

void uk__stop_set(uk__stop *s)
{
    uv_mutex_lock(&s->mu);
    s->stop = true;
    uv_cond_broadcast(&s->cond);
    uv_mutex_unlock(&s->mu);
}

bool uk__stop_requested(uk__stop *s)
{
    uv_mutex_lock(&s->mu);
    bool stop = s->stop;
    uv_mutex_unlock(&s->mu);
    return stop;
}

bool uk__stop_sleep(uk__stop *s, unsigned ms)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000u;
    uv_mutex_lock(&s->mu);
    while (!s->stop) {
        uint64_t now = uv_hrtime();
        if (now >= deadline)
            break;
        (void)uv_cond_timedwait(&s->cond, &s->mu, deadline - now);
    }
    bool go_on = !s->stop;
    uv_mutex_unlock(&s->mu);
    return go_on;
}

uint64_t uk__now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

void uk_token_certs_free(uk_token_cert *certs, size_t n)
{
    if (certs == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(certs[i].der);
    free(certs);
}

/* ---- types ------------------------------------------------------------- */

/* An identified card: its driver and the driver's state. The state is used
 * only by jobs on the reader's worker; the loop thread holds the pointer. */
struct session {
    const uk_driver *drv;
    void *state;
    uk_token_identity id;
    int pin_retries_initial; /* as read at identification, -1 unknown */
    /* The count a right PIN restores, once read after one (worker thread only): a card found
     * with one try left says nothing about its maximum. -1 until then. */
    int pin_retries_full;
    atomic_bool dead; /* the card left: jobs answer CARD_REMOVED */
};

/* A certificate list shared by the cache and the callbacks reading it. */
struct certset {
    unsigned refs;
    size_t n;
    uk_token_cert *certs;
};

struct op;

/* Where a reader comes from: the PC/SC monitor, or module i (SRC_MODULE + i) of any kind. */
#define SRC_PCSC   0u
#define SRC_MODULE 1u

struct reader {
    uk_tokens *t;
    char name[UK__READER_NAME_MAX];
    size_t src;    /* SRC_PCSC or SRC_MODULE + module index */
    char desc[65]; /* module slots: the slot description (dedup against PC/SC readers) */
    bool shadowed; /* a module slot showing a card a PC/SC driver already serves, or a PC/SC
                      reader whose card a hinted module's slot serves */
    bool eligible; /* as of the last card event or hint check: may be identified (PC/SC: no
                      module's ATR hint claims the card; a hinted module's slot: its token
                      matches the hints) */
    uint8_t atr[UK__ATR_MAX]; /* PC/SC readers: the card's ATR as the monitor last reported it */
    size_t atr_len;
    unsigned number; /* the n of "<driver>:reader-<n>", never reused */
    uk_worker *w;
    uk_card *card; /* jobs only (created before the first job) */
    uv_timer_t retry;

    /* As the monitor last reported it. */
    bool seen; /* in the last snapshot */
    bool present, mute;
    unsigned events;

    unsigned gen; /* bumped on every card event */
    struct session *sess;
    bool busy; /* identification found the card held exclusively */
    uk_token_summary sum;
    struct certset *certs; /* the cache; NULL = cold */
    struct op *list_op;    /* a cold read in flight that new callers join */
};

struct deferred {
    struct deferred *next;
    uk_tokens_certs_fn cb;
    void *arg;
    struct certset *cs;
};

struct uk_tokens {
    uv_loop_t *loop;
    uk_tokens_options opt;
    unsigned busy_ms;
    const uk_driver *const *drivers;
    size_t n_drivers;
    uk__stop stop;

    uk__pcsc_monitor *mon;
    uv_async_t mon_async;
    uv_mutex_t snap_mu; /* guards snaps, mon_exited and scan_exited */
    struct snap_node *snaps, **snaps_tail;
    bool mon_exited;

    /* Modules (PKCS#11, SKF: uk_source.h): one scanner thread each, reporting through
     * mon_async. */
    char *module_path[MODULES_MAX], *module_name[MODULES_MAX];
    const uk_source_kind *kinds[MODULES_MAX];
    void *scans[MODULES_MAX];
    bool scan_exited[MODULES_MAX];
    size_t n_modules;
    /* Hints of PKCS#11 modules (uk_tokens_module): hinted = any hint; atr_len 0 = no ATR. */
    bool hinted[MODULES_MAX];
    uint8_t hint_atr[MODULES_MAX][UK__ATR_MAX], hint_mask[MODULES_MAX][UK__ATR_MAX];
    size_t hint_atr_len[MODULES_MAX];

    int service; /* SERVICE_UNKNOWN until the first snapshot, then UK_OK or UK_E_NO_SERVICE */
    struct reader *readers[READERS_KNOWN_MAX];
    size_t n_readers;

    uv_async_t defer_async;
    struct deferred *defer_head, **defer_tail;

    bool stopping, finishing;
    uv_timer_t cancel_timer;
    size_t workers_open;
    unsigned closes_pending;
    void (*stop_done)(void *ctx);
    void *stop_ctx;
};

struct snap_node {
    struct snap_node *next;
    uk__pcsc_snapshot *snap;   /* from the PC/SC monitor, or */
    uk_source_snapshot *msnap; /* from the scanner of module src - SRC_MODULE */
    size_t src;
};

enum op_kind { OP_IDENTIFY, OP_CLOSE, OP_TEARDOWN, OP_LIST, OP_SIGN, OP_RUN };

struct waiter {
    struct waiter *next;
    uk_tokens_certs_fn cb;
    void *arg;
};

struct op {
    enum op_kind kind;
    uk_tokens *t;
    struct reader *r;
    struct session *sess;
    unsigned gen;
    bool ran; /* the body ran inside a transaction (worker writes, loop reads after done) */

    /* OP_IDENTIFY */
    struct session *found;

    /* OP_LIST */
    struct waiter *waiters, **waiters_tail;
    uk_token_cert *certs;
    size_t n_certs;

    /* OP_SIGN */
    uk_sign_req req;
    uint8_t digest[DIGEST_MAX];
    uk_secret *pin;
    int pin_before; /* the loop's knowledge when submitted */
    int pin_after;  /* worker's knowledge after VERIFY; -2 = nothing learnt */
    int retries_left;
    uint8_t sig[SIG_MAX];
    size_t sig_len;
    uk_tokens_sign_fn sign_cb;
    void *arg;

    /* OP_RUN */
    unsigned flags;
    uk__token_op_fn run;
    uk__token_done_fn run_done;
};

/* ---- certificate sets -------------------------------------------------- */

static struct certset *certset_ref(struct certset *cs)
{
    cs->refs++;
    return cs;
}

static void certset_unref(struct certset *cs)
{
    if (cs != NULL && --cs->refs == 0) {
        uk_token_certs_free(cs->certs, cs->n);
        free(cs);
    }
}

static void drop_cache(struct reader *r)
{
    certset_unref(r->certs);
    r->certs = NULL;
    r->list_op = NULL; /* a read in flight finishes for its callers but is not cached */
}

/* ---- worker side -------------------------------------------------------- */

static void session_free(struct session *s)
{
    if (s == NULL)
        return;
    if (s->state != NULL && s->drv->close != NULL)
        s->drv->close(s->state);
    free(s);
}

static bool card_gone(int rc)
{
    return rc == UK_E_CARD_REMOVED || rc == UK_E_NO_SERVICE || rc == UK_E_NO_READER ||
           rc == UK_E_CANCELLED;
}

/* Connect and begin a transaction, waiting (bounded) while another program
 * holds the card exclusively. */
static int begin_waiting(uk_tokens *t, uk_card *card)
{
    uint64_t deadline = uk__now_ms() + t->busy_ms;
    unsigned delay = UK__BUSY_RETRY_MIN_MS;
    bool told = false;
    for (;;) {
        int rc = uk__card_begin(card);
        if (rc != UK_E_CARD_BUSY)
            return rc;
        uint64_t now = uk__now_ms();
        if (now >= deadline) {
            UK_LOG_WARN("reader '%s' is held exclusively by another program; gave up after %u ms",
                        uk_card_reader(card), t->busy_ms);
            return UK_E_CARD_BUSY;
        }
        if (!told)
            UK_LOG_INFO("reader '%s' is held exclusively by another program; waiting up to %u ms",
                        uk_card_reader(card), t->busy_ms);
        told = true;
        uint64_t left = deadline - now;
        if (!uk__stop_sleep(&t->stop, left < delay ? (unsigned)left : delay))
            return UK_E_CANCELLED;
        delay = delay * 2 > UK__BUSY_RETRY_MAX_MS ? UK__BUSY_RETRY_MAX_MS : delay * 2;
    }
}

static int probe_and_open(struct op *op, uk_card *card)
{
    uk_tokens *t = op->t;
    for (size_t i = 0; i < t->n_drivers; i++) {
        const uk_driver *d = t->drivers[i];
        int rc = d->probe(card);
        if (rc == UK_E_NOT_SUPPORTED)
            continue;
        if (rc != UK_OK) {
            if (card_gone(rc) || rc == UK_E_CARD_RESET || rc == UK_E_CARD_BUSY)
                return rc;
            UK_LOG_INFO("'%s': driver %s could not probe the card: %s", uk_card_reader(card),
                        d->name, uk_err_name(rc));
            continue;
        }
        struct session *s = calloc(1, sizeof(*s));
        if (s == NULL)
            return UK_E_NO_MEMORY;
        s->drv = d;
        s->pin_retries_initial = -1;
        s->pin_retries_full = -1;
        atomic_init(&s->dead, false);
        rc = d->open(card, &t->opt.driver, &s->state, &s->id);
        if (rc != UK_OK) {
            free(s);
            return rc;
        }
        /* Make the identity strings safe to print whatever the driver left. */
        s->id.serial[sizeof(s->id.serial) - 1] = '\0';
        s->id.label[sizeof(s->id.label) - 1] = '\0';
        s->id.model[sizeof(s->id.model) - 1] = '\0';
        int retries = -1;
        if (d->pin_status != NULL && d->pin_status(s->state, card, &retries) == UK_OK)
            s->pin_retries_initial = retries;
        op->found = s;
        return UK_OK;
    }
    return UK_OK; /* nobody's card */
}

static int do_identify(struct op *op)
{
    uk_card *card = op->r->card;
    uk__card_forget(card);
    int rc = begin_waiting(op->t, card);
    if (rc != UK_OK)
        return rc;
    rc = probe_and_open(op, card);
    if (rc == UK_E_CARD_RESET) {
        rc = uk__card_reconnect(card);
        if (rc == UK_OK)
            rc = probe_and_open(op, card);
    }
    uk__card_end(card);
    return rc;
}

static void note_pin(struct op *op, int rc, int retries)
{
    if (rc == UK_E_PIN_INCORRECT && retries >= 0) {
        op->retries_left = retries;
        op->pin_after = retries;
    } else if (rc == UK_E_PIN_LOCKED) {
        op->retries_left = 0;
        op->pin_after = 0;
    } else if (rc == UK_OK) {
        /* A right PIN resets the counter to what it was at best. */
        int best = op->sess->pin_retries_initial;
        if (op->sess->pin_retries_full > best)
            best = op->sess->pin_retries_full;
        op->pin_after = op->pin_before > best ? op->pin_before : best;
    }
}

/* A record read that failed because the card went or was reset: the operation must stop so
 * that the token layer reconnects (or reports the removal); any other failure reads as "no
 * record". */
static int record_gone(int rc)
{
    return rc == UK_E_CARD_RESET || rc == UK_E_CARD_REMOVED ? rc : UK_OK;
}

/*
 * The active key of role key_id from the card record (UK_RECORD_TAG_ROLE, uk_driver.h): a renewed
 * key that a card without MOVE KEY keeps where it was generated. key_id is replaced when the
 * record maps it; a card without a record (or one that cannot be read) keeps the key asked for.
 * Errors: CARD_RESET, CARD_REMOVED (record_gone).
 */
static int map_role(const uk_driver *d, void *state, uk_card *card, char key_id[UK_KEY_ID_MAX])
{
    if (d->read_record == NULL)
        return UK_OK;
    uint8_t rec[UK_DRIVER_RECORD_MAX];
    size_t len = 0;
    int rc = d->read_record(state, card, rec, sizeof(rec), &len);
    if (rc != UK_OK)
        return record_gone(rc);
    size_t klen = strlen(key_id);
    /* The service writes one-byte tags and short lengths; anything else ends the search. */
    for (size_t p = 0; p + 2 <= len;) {
        unsigned tag = rec[p];
        size_t vl = rec[p + 1];
        if ((tag & 0x1fu) == 0x1fu || (vl & 0x80u) || vl > len - p - 2)
            return UK_OK;
        const uint8_t *v = rec + p + 2;
        if (tag == UK_RECORD_TAG_ROLE && vl > klen + 1 && vl - klen - 1 < UK_KEY_ID_MAX &&
            memcmp(v, key_id, klen) == 0 && v[klen] == ' ') {
            char active[UK_KEY_ID_MAX];
            memcpy(active, v + klen + 1, vl - klen - 1);
            active[vl - klen - 1] = '\0';
            UK_LOG_DEBUG("key %s is now the renewed key in %s", key_id, active);
            memcpy(key_id, active, sizeof(active));
            return UK_OK;
        }
        p += 2 + vl;
    }
    return UK_OK;
}

/*
 * The certificates as the roles see them: for each role the card record maps to a renewed key
 * (UK_RECORD_TAG_ROLE "<role> <active>"), the active key's certificate is listed under the role
 * (in the role's place) and not again under its own slot; the old pair still in the role's slot
 * is not listed (it no longer signs for the role). A record that cannot be read changes nothing.
 */
static int map_roles_in_list(const uk_driver *d, void *state, uk_card *card, uk_token_cert *certs,
                             size_t *n)
{
    if (d->read_record == NULL)
        return UK_OK;
    uint8_t rec[UK_DRIVER_RECORD_MAX];
    size_t len = 0;
    int rc = d->read_record(state, card, rec, sizeof(rec), &len);
    if (rc != UK_OK)
        return record_gone(rc);
    for (size_t p = 0; p + 2 <= len;) {
        unsigned tag = rec[p];
        size_t vl = rec[p + 1];
        if ((tag & 0x1fu) == 0x1fu || (vl & 0x80u) || vl > len - p - 2)
            return UK_OK;
        const uint8_t *v = rec + p + 2;
        p += 2 + vl;
        const uint8_t *sp = memchr(v, ' ', vl);
        if (tag != UK_RECORD_TAG_ROLE || sp == NULL)
            continue;
        size_t rl = (size_t)(sp - v), al = vl - rl - 1;
        if (rl == 0 || al == 0 || rl >= UK_KEY_ID_MAX || al >= UK_KEY_ID_MAX)
            continue;
        char role[UK_KEY_ID_MAX], active[UK_KEY_ID_MAX];
        memcpy(role, v, rl);
        role[rl] = '\0';
        memcpy(active, sp + 1, al);
        active[al] = '\0';
        size_t ri = *n, ai = *n;
        for (size_t i = 0; i < *n; i++) {
            if (strcmp(certs[i].key_id, role) == 0)
                ri = i;
            else if (strcmp(certs[i].key_id, active) == 0)
                ai = i;
        }
        if (ai == *n)
            continue; /* the active slot shows no certificate: leave the list alone */
        uk_token_cert moved = certs[ai];
        snprintf(moved.key_id, sizeof(moved.key_id), "%s", role);
        if (ri < *n) {
            free(certs[ri].der);
            certs[ri] = moved;
            memmove(&certs[ai], &certs[ai + 1], (*n - ai - 1) * sizeof(*certs));
            (*n)--;
        } else {
            certs[ai] = moved;
        }
    }
    return UK_OK;
}

/* The operation itself, inside the transaction. */
static int op_body(struct op *op, uk_card *card)
{
    const uk_driver *d = op->sess->drv;
    void *state = op->sess->state;
    op->ran = true;
    switch (op->kind) {
    case OP_LIST: {
        if (d->list_certs == NULL)
            return UK_E_NOT_SUPPORTED;
        uk_token_certs_free(op->certs, op->n_certs);
        op->certs = NULL;
        op->n_certs = 0;
        int rc = d->list_certs(state, card, &op->certs, &op->n_certs);
        if (rc != UK_OK) {
            uk_token_certs_free(op->certs, op->n_certs);
            op->certs = NULL;
            op->n_certs = 0;
            return rc;
        }
        rc = map_roles_in_list(d, state, card, op->certs, &op->n_certs);
        if (rc != UK_OK) {
            uk_token_certs_free(op->certs, op->n_certs);
            op->certs = NULL;
            op->n_certs = 0;
            return rc;
        }
        if (op->n_certs > UK_LIMIT_CERTS_PER_TOKEN) {
            UK_LOG_WARN("'%s': %zu certificates, only the first %u are used", uk_card_reader(card),
                        op->n_certs, UK_LIMIT_CERTS_PER_TOKEN);
            for (size_t i = UK_LIMIT_CERTS_PER_TOKEN; i < op->n_certs; i++)
                free(op->certs[i].der);
            op->n_certs = UK_LIMIT_CERTS_PER_TOKEN;
        }
        return UK_OK;
    }
    case OP_SIGN: {
        if (d->verify_pin == NULL || d->sign == NULL)
            return UK_E_NOT_SUPPORTED;
        int retries = -1;
        int rc = map_role(d, state, card, op->req.key_id);
        if (rc != UK_OK)
            return rc;
        /* A request that cannot work must not cost a PIN try. */
        rc = d->check_sign ? d->check_sign(state, card, &op->req) : UK_OK;
        if (rc != UK_OK)
            return rc;
        rc = d->verify_pin(state, card, op->pin, &retries);
        note_pin(op, rc, retries);
        if (rc != UK_OK)
            return rc;
        op->sig_len = 0;
        rc = d->sign(state, card, &op->req, op->sig, sizeof(op->sig), &op->sig_len);
        if (rc == UK_OK && (op->sig_len == 0 || op->sig_len > sizeof(op->sig)))
            rc = UK_E_INTERNAL;
        /* The card stays powered after we let go of it: leave no verified
         * PIN behind for the next program to use. */
        if (d->logout != NULL)
            d->logout(state, card);
        /* Once per card session, ask the card what a right PIN restored (one APDU): the count
         * seen at insertion may have been a low one. */
        int full = -1;
        if (op->sess->pin_retries_full < 0 && d->pin_status != NULL &&
            d->pin_status(state, card, &full) == UK_OK && full >= 0) {
            op->sess->pin_retries_full = full;
            op->pin_after = full;
        }
        return rc;
    }
    case OP_RUN:
        return op->run(op->arg, d, state, card);
    default:
        return UK_E_INTERNAL;
    }
}

/* One transaction; after a reset by someone else (security state gone):
 * reconnect, reopen the driver and run the operation once more. */
static int do_with_card(struct op *op)
{
    uk_card *card = op->r->card;
    int rc = begin_waiting(op->t, card);
    if (rc != UK_OK)
        return rc;
    rc = op_body(op, card);
    if (rc == UK_E_CARD_RESET && !atomic_load(&op->sess->dead)) {
        UK_LOG_INFO("'%s' was reset by another program; reconnecting", uk_card_reader(card));
        rc = uk__card_reconnect(card);
        if (rc == UK_OK) {
            struct session *s = op->sess;
            void *state = NULL;
            uk_token_identity id;
            memset(&id, 0, sizeof(id));
            rc = s->drv->open(card, &op->t->opt.driver, &state, &id);
            if (rc == UK_OK) {
                if (s->drv->close != NULL)
                    s->drv->close(s->state);
                s->state = state;
                rc = op_body(op, card);
            }
        }
    }
    uk__card_end(card);
    return rc;
}

static int op_work(void *arg)
{
    struct op *op = arg;
    struct reader *r = op->r;
    int rc;
    switch (op->kind) {
    case OP_CLOSE:
        session_free(op->sess);
        op->sess = NULL;
        return UK_OK;
    case OP_TEARDOWN:
        session_free(op->sess);
        op->sess = NULL;
        uk__card_free(r->card);
        r->card = NULL;
        return UK_OK;
    case OP_IDENTIFY:
        if (uk__stop_requested(&op->t->stop))
            return UK_E_CANCELLED;
        return do_identify(op);
    default:
        if (uk__stop_requested(&op->t->stop))
            rc = UK_E_CANCELLED;
        else if (atomic_load(&op->sess->dead))
            rc = UK_E_CARD_REMOVED;
        else
            rc = do_with_card(op);
        if (op->pin != NULL) {
            uk_secret_free(op->pin); /* wiped; never kept past the operation */
            op->pin = NULL;
        }
        return rc;
    }
}

/* ---- loop side: events and readers --------------------------------------- */

static void op_done(void *arg, int status);
static void maybe_finish(uk_tokens *t);
static void on_worker_closed(uk_worker *w, void *ctx);

static void emit(uk_tokens *t, uk_token_event ev, const uk_token_summary *s)
{
    if (t->stopping || t->opt.on_event == NULL)
        return;
    t->opt.on_event(t->opt.ctx, ev, s);
}

static struct op *op_new(uk_tokens *t, struct reader *r, enum op_kind kind)
{
    struct op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->kind = kind;
    op->t = t;
    op->r = r;
    op->gen = r->gen;
    op->retries_left = -1;
    op->pin_after = -2;
    op->waiters_tail = &op->waiters;
    return op;
}

static int submit(struct op *op)
{
    if (op->r->w == NULL)
        return UK_E_CANCELLED;
    return uk_worker_submit(op->r->w, op_work, op_done, op);
}

/* Hands a session to the worker to close; closes it here if that fails
 * (a driver's close does no card I/O). */
static void close_session(uk_tokens *t, struct reader *r, struct session *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->dead, true);
    struct op *op = t->stopping ? NULL : op_new(t, r, OP_CLOSE);
    if (op != NULL) {
        op->sess = s;
        if (submit(op) == UK_OK)
            return;
        free(op);
    }
    session_free(s);
}

static void clear_summary(struct reader *r)
{
    memset(&r->sum, 0, sizeof(r->sum));
    snprintf(r->sum.reader, sizeof(r->sum.reader), "%s", r->name);
    r->sum.present = r->present;
    r->sum.pin_retries = -1;
}

static void submit_identify(uk_tokens *t, struct reader *r)
{
    if (t->stopping)
        return;
    struct op *op = op_new(t, r, OP_IDENTIFY);
    int rc = op != NULL ? submit(op) : UK_E_NO_MEMORY;
    if (rc != UK_OK) {
        UK_LOG_ERR("'%s': cannot queue the identification of the card: %s", r->name,
                   uk_err_name(rc));
        free(op);
    }
}

static void on_retry_timer(uv_timer_t *h)
{
    struct reader *r = h->data;
    if (r->busy && r->present && r->sess == NULL && !r->t->stopping) {
        r->busy = false;
        submit_identify(r->t, r);
    }
}

/* Whether r names PC/SC reader p: defined with the dedup rules below. */
static bool slot_names_reader(const struct reader *m, const struct reader *p);

/* Whether r is a slot of a PKCS#11 module configured with hints. */
static bool hinted(const uk_tokens *t, const struct reader *r)
{
    return r->src != SRC_PCSC && t->hinted[r->src - SRC_MODULE];
}

/* Whether the card in PC/SC reader p has the ATR hint of module m (under its mask). */
static bool atr_matches(const uk_tokens *t, size_t m, const struct reader *p)
{
    size_t n = t->hint_atr_len[m];
    if (n == 0 || p->atr_len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((p->atr[i] & t->hint_mask[m][i]) != (t->hint_atr[m][i] & t->hint_mask[m][i]))
            return false;
    }
    return true;
}

/* The module whose ATR hint claims the card in PC/SC reader p, or -1 (docs/drivers.md, "Module
 * hints"): the built-in drivers leave such a card alone. */
static int atr_claimed_by(const uk_tokens *t, const struct reader *p)
{
    if (p->src != SRC_PCSC || !p->present)
        return -1;
    for (size_t m = 0; m < t->n_modules; m++) {
        if (atr_matches(t, m, p))
            return (int)m;
    }
    return -1;
}

/* Whether the card in r may be identified: a PC/SC card no ATR hint claims; a slot of a module
 * without hints; a hinted module's slot whose token passed the label hint (the scanner reports
 * others empty) and, with an ATR hint, that names a PC/SC reader holding a card of that ATR. */
static bool eligible(const uk_tokens *t, const struct reader *r)
{
    if (r->src == SRC_PCSC)
        return atr_claimed_by(t, r) < 0;
    if (!hinted(t, r))
        return true;
    size_t m = r->src - SRC_MODULE;
    if (!r->present || r->mute)
        return false;
    if (t->hint_atr_len[m] == 0)
        return true;
    for (size_t i = 0; i < t->n_readers; i++) {
        const struct reader *p = t->readers[i];
        if (p->seen && p->present && slot_names_reader(r, p) && atr_matches(t, m, p))
            return true;
    }
    return false;
}

/* Something happened to the card in r (it left, a new one came, the reader
 * or pcscd went away): forget everything about the old card. */
static void card_changed(uk_tokens *t, struct reader *r)
{
    r->gen++;
    r->shadowed = false;
    drop_cache(r);
    r->busy = false;
    uv_timer_stop(&r->retry);
    if (r->sess != NULL) {
        uk_token_summary old = r->sum;
        old.present = false;
        close_session(t, r, r->sess);
        r->sess = NULL;
        clear_summary(r);
        UK_LOG_INFO("token %s left reader '%s'", old.id, r->name);
        emit(t, UK_TOKEN_REMOVED, &old);
    }
    clear_summary(r);
    r->eligible = eligible(t, r);
    if (r->present && !r->mute && r->eligible)
        submit_identify(t, r);
}

static struct reader *reader_find(uk_tokens *t, const char *name)
{
    for (size_t i = 0; i < t->n_readers; i++) {
        if (strcmp(t->readers[i]->name, name) == 0)
            return t->readers[i];
    }
    return NULL;
}

/* A new reader: a PC/SC one (mod NULL) or slot of module mod (source src). */
static struct reader *reader_add(uk_tokens *t, const char *name, size_t src, void *mod,
                                 unsigned long slot)
{
    if (t->n_readers == READERS_KNOWN_MAX) {
        UK_LOG_WARN("too many readers; '%s' is ignored", name);
        return NULL;
    }
    struct reader *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->t = t;
    r->number = (unsigned)t->n_readers;
    snprintf(r->name, sizeof(r->name), "%s", name);
    char thread[16];
    snprintf(thread, sizeof(thread), "uk-card-%u", r->number);
    r->src = src;
    int rc = mod != NULL ? t->kinds[src - SRC_MODULE]->card_new(&r->card, mod, slot, name)
                         : uk__card_new(&r->card, name, &t->stop);
    if (rc == UK_OK)
        rc = uk_worker_new(&r->w, t->loop, thread);
    if (rc != UK_OK) {
        UK_LOG_ERR("'%s': cannot watch this reader: %s", name, uk_err_name(rc));
        uk__card_free(r->card);
        free(r);
        return NULL;
    }
    (void)uv_timer_init(t->loop, &r->retry);
    r->retry.data = r;
    uv_unref((uv_handle_t *)&r->retry);
    t->workers_open++;
    clear_summary(r);
    t->readers[t->n_readers++] = r;
    UK_LOG_INFO("reader '%s' appeared", name);
    return r;
}

static void reader_gone(uk_tokens *t, struct reader *r)
{
    if (!r->seen)
        return;
    r->seen = false;
    bool had_card = r->present;
    r->present = false;
    r->mute = false;
    if (had_card)
        card_changed(t, r);
    clear_summary(r);
}

/* What a source reports of reader r: a presence change, or a new event count or muteness while
 * present, is a card event. mute_word says what "mute" means for the source, in the log. */
static void reader_seen(uk_tokens *t, struct reader *r, bool present, bool mute, unsigned events,
                        const char *mute_word)
{
    bool was_present = r->seen && r->present;
    bool event = present != was_present || (present && (events != r->events || mute != r->mute));
    r->seen = true;
    r->present = present;
    r->mute = mute;
    r->events = events;
    if (event) {
        UK_LOG_DEBUG("reader '%s': card %s (event %u)", r->name,
                     present ? (mute ? mute_word : "in") : "out", events);
        card_changed(t, r);
    }
}

static void apply_snapshot(uk_tokens *t, const uk__pcsc_snapshot *s)
{
    /* A module over PC/SC (OpenSC) sees the same change: let it look now. */
    for (size_t i = 0; i < t->n_modules; i++) {
        if (t->scans[i] != NULL)
            t->kinds[i]->wake(t->scans[i]);
    }
    if (s->service != UK_OK) {
        t->service = s->service;
        for (size_t i = 0; i < t->n_readers; i++) {
            if (t->readers[i]->src == SRC_PCSC)
                reader_gone(t, t->readers[i]);
        }
        return;
    }
    t->service = UK_OK;
    bool seen_now[READERS_KNOWN_MAX] = {false};
    for (size_t i = 0; i < s->n; i++) {
        const uk__reader_state *rs = &s->readers[i];
        struct reader *r = reader_find(t, rs->name);
        if (r != NULL && r->src != SRC_PCSC)
            continue; /* a module slot took this name first */
        if (r == NULL)
            r = reader_add(t, rs->name, SRC_PCSC, NULL, 0);
        if (r == NULL)
            continue;
        seen_now[r->number] = true;
        r->atr_len = rs->present && rs->atr_len <= sizeof(r->atr) ? rs->atr_len : 0;
        memcpy(r->atr, rs->atr, r->atr_len);
        reader_seen(t, r, rs->present, rs->mute, rs->events, "mute");
        if (!t->stopping && r->present && atr_claimed_by(t, r) >= 0 && !r->eligible)
            UK_LOG_DEBUG("reader '%s': the card's ATR matches a hint of module %s; the built-in "
                         "drivers leave it to that module",
                         r->name, t->module_name[atr_claimed_by(t, r)]);
        if (t->stopping)
            return;
    }
    for (size_t i = 0; i < t->n_readers; i++) {
        if (!seen_now[i] && t->readers[i]->src == SRC_PCSC)
            reader_gone(t, t->readers[i]);
    }
}

/* The slots of module src as its scanner last saw them: the same rules as
 * PC/SC readers (a presence change or a new event count is a card event). A
 * slot with an uninitialised token is shown present but is not identified. */
static void apply_module_snapshot(uk_tokens *t, size_t src, const uk_source_snapshot *s)
{
    bool seen_now[READERS_KNOWN_MAX] = {false};
    if (s->status != UK_OK)
        UK_LOG_WARN("%s module %s is not usable: %s", t->kinds[src - SRC_MODULE]->what,
                    t->module_name[src - SRC_MODULE], uk_err_name(s->status));
    for (size_t i = 0; s->status == UK_OK && i < s->n; i++) {
        const uk_source_slot *ss = &s->slots[i];
        struct reader *r = reader_find(t, ss->name);
        if (r != NULL && r->src != src)
            continue; /* the name is taken by another source */
        if (r == NULL)
            r = reader_add(t, ss->name, src, s->mod, ss->slot);
        if (r == NULL)
            continue;
        snprintf(r->desc, sizeof(r->desc), "%s", ss->desc);
        seen_now[r->number] = true;
        reader_seen(t, r, ss->present, !ss->usable, ss->events, "not initialised");
        if (t->stopping)
            return;
    }
    for (size_t i = 0; i < t->n_readers; i++) {
        if (!seen_now[i] && t->readers[i]->src == src)
            reader_gone(t, t->readers[i]);
    }
}

/* A slot of a module with an ATR hint is eligible only while the PC/SC reader it names holds a
 * card of that ATR, which the other source reports: after every batch of snapshots, a slot whose
 * eligibility changed gets a card event (identified now, or its token removed). */
static void recheck_hints(uk_tokens *t)
{
    for (size_t i = 0; i < t->n_readers && !t->stopping; i++) {
        struct reader *r = t->readers[i];
        if (hinted(t, r) && r->seen && t->hint_atr_len[r->src - SRC_MODULE] > 0 &&
            eligible(t, r) != r->eligible)
            card_changed(t, r);
    }
}

static void on_mon_async(uv_async_t *h)
{
    uk_tokens *t = h->data;
    uv_mutex_lock(&t->snap_mu);
    struct snap_node *n = t->snaps;
    t->snaps = NULL;
    t->snaps_tail = &t->snaps;
    bool exited = t->mon_exited;
    bool scan_exited[MODULES_MAX];
    memcpy(scan_exited, t->scan_exited, sizeof(scan_exited));
    uv_mutex_unlock(&t->snap_mu);

    while (n != NULL) {
        struct snap_node *next = n->next;
        if (!t->stopping && n->snap != NULL)
            apply_snapshot(t, n->snap);
        else if (!t->stopping && n->msnap != NULL)
            apply_module_snapshot(t, n->src, n->msnap);
        free(n->snap);
        free(n->msnap);
        free(n);
        n = next;
    }
    recheck_hints(t);
    for (size_t i = 0; i < t->n_modules; i++) {
        if (scan_exited[i] && t->scans[i] != NULL) {
            t->kinds[i]->free(t->scans[i]); /* joins: the thread has returned or is returning */
            t->scans[i] = NULL;
            maybe_finish(t);
        }
    }
    if (exited && t->mon != NULL) {
        uk__pcsc_monitor_free(t->mon); /* joins: the thread has returned or is returning */
        t->mon = NULL;
        uv_timer_stop(&t->cancel_timer);
        maybe_finish(t);
    }
}

/* Monitor or scanner thread: queues a snapshot (one of snap, msnap) for the loop. */
static void queue_snapshot(uk_tokens *t, uk__pcsc_snapshot *snap, uk_source_snapshot *msnap,
                           size_t src)
{
    struct snap_node *n = malloc(sizeof(*n));
    if (n == NULL) {
        free(snap);
        free(msnap);
        return;
    }
    n->next = NULL;
    n->snap = snap;
    n->msnap = msnap;
    n->src = src;
    uv_mutex_lock(&t->snap_mu);
    *t->snaps_tail = n;
    t->snaps_tail = &n->next;
    uv_mutex_unlock(&t->snap_mu);
    uv_async_send(&t->mon_async);
}

/* Monitor thread. */
static void mon_snapshot(void *ctx, uk__pcsc_snapshot *snap)
{
    queue_snapshot(ctx, snap, NULL, SRC_PCSC);
}

/* Monitor thread. */
static void mon_exited(void *ctx)
{
    uk_tokens *t = ctx;
    uv_mutex_lock(&t->snap_mu);
    t->mon_exited = true;
    uv_mutex_unlock(&t->snap_mu);
    uv_async_send(&t->mon_async);
}

/* Scanner thread of module source. */
static void scan_snapshot(void *ctx, size_t source, uk_source_snapshot *snap)
{
    queue_snapshot(ctx, NULL, snap, SRC_MODULE + source);
}

/* Scanner thread of module source. */
static void scan_exited(void *ctx, size_t source)
{
    uk_tokens *t = ctx;
    uv_mutex_lock(&t->snap_mu);
    t->scan_exited[source] = true;
    uv_mutex_unlock(&t->snap_mu);
    uv_async_send(&t->mon_async);
}

/* ---- loop side: job results ---------------------------------------------- */

static void make_id(uk_tokens *t, struct reader *r)
{
    const struct session *s = r->sess;
    char serial[sizeof(s->id.serial)];
    size_t j = 0;
    for (size_t i = 0; s->id.serial[i] != '\0' && j + 1 < sizeof(serial); i++) {
        char c = s->id.serial[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '-' || c == '.' || c == '_';
        serial[j++] = ok ? c : '_';
    }
    serial[j] = '\0';
    if (j > 0)
        snprintf(r->sum.id, sizeof(r->sum.id), "%s:%s", s->drv->name, serial);
    else
        snprintf(r->sum.id, sizeof(r->sum.id), "%s:reader-%u", s->drv->name, r->number);
    /* Two keys with one serial (clones): the later one is told apart by its reader. */
    for (size_t i = 0; i < t->n_readers; i++) {
        struct reader *o = t->readers[i];
        if (o != r && o->sess != NULL && strcmp(o->sum.id, r->sum.id) == 0) {
            size_t len = strlen(r->sum.id);
            snprintf(r->sum.id + len, sizeof(r->sum.id) - len, ":reader-%u", r->number);
            break;
        }
    }
}

/* Whether module slot m names PC/SC reader p: OpenSC and most modules over
 * PC/SC put the reader name into slotDescription (cut to 64 bytes). */
static bool slot_names_reader(const struct reader *m, const struct reader *p)
{
    size_t n = strlen(m->desc);
    return m->src != SRC_PCSC && p->src == SRC_PCSC && n > 0 && strncmp(p->name, m->desc, n) == 0;
}

/*
 * One card, two ways in (docs/drivers.md, "One card, two drivers"): a module
 * slot whose card a built-in driver already serves through PC/SC is not
 * listed; the built-in driver wins because it is the one ukeyd knows fully
 * (renewal staging, key history). Called when r got a token.
 */
static bool dedup(uk_tokens *t, struct reader *r)
{
    for (size_t i = 0; i < t->n_readers; i++) {
        struct reader *o = t->readers[i];
        if (o == r || o->sess == NULL)
            continue;
        bool r_slot = slot_names_reader(r, o);
        if (!r_slot && !slot_names_reader(o, r))
            continue;
        /* A hinted module's slot wins over the PC/SC reader; else the PC/SC reader wins. */
        struct reader *slot = r_slot ? r : o, *pcsc = r_slot ? o : r;
        bool slot_wins = hinted(t, slot);
        if ((slot_wins ? pcsc : slot) == r) {
            if (slot_wins)
                UK_LOG_INFO("reader '%s': module slot '%s' serves its card (token %s: the "
                            "module's hints match); not listed twice",
                            r->name, o->name, o->sum.id);
            else
                UK_LOG_INFO("module slot '%s' shows the card in reader '%s' (token %s); not "
                            "listed twice",
                            r->name, o->name, o->sum.id);
            return true; /* r stays hidden */
        }
        {
            uk_token_summary old = o->sum;
            old.present = false;
            if (slot_wins)
                UK_LOG_INFO("module slot '%s' takes over the card in reader '%s' (the module's "
                            "hints match); token %s is now served by %s",
                            r->name, o->name, old.id, r->sess->drv->name);
            else
                UK_LOG_INFO("module slot '%s' shows the card in reader '%s'; token %s is now "
                            "served by %s",
                            o->name, r->name, old.id, r->sess->drv->name);
            o->gen++;
            drop_cache(o);
            close_session(t, o, o->sess);
            o->sess = NULL;
            clear_summary(o);
            o->shadowed = true;
            emit(t, UK_TOKEN_REMOVED, &old);
        }
    }
    return false;
}

static void identify_done(struct op *op, int status)
{
    uk_tokens *t = op->t;
    struct reader *r = op->r;
    if (t->stopping || op->gen != r->gen || !r->present) {
        close_session(t, r, op->found); /* a result about a card that has gone */
        return;
    }
    if (status == UK_OK && op->found != NULL) {
        struct session *s = op->found;
        r->sess = s;
        if (dedup(t, r)) {
            r->sess = NULL;
            r->shadowed = true;
            close_session(t, r, s);
            return;
        }
        clear_summary(r);
        snprintf(r->sum.driver, sizeof(r->sum.driver), "%s", s->drv->name);
        r->sum.identity = s->id;
        r->sum.pin_retries = s->pin_retries_initial;
        make_id(t, r);
        UK_LOG_INFO("token %s (%s) in reader '%s'", r->sum.id, s->id.model, r->name);
        emit(t, UK_TOKEN_INSERTED, &r->sum);
    } else if (status == UK_OK) {
        UK_LOG_INFO("reader '%s': no driver recognises the card", r->name);
    } else if (status == UK_E_CARD_BUSY) {
        r->busy = true;
        uv_timer_start(&r->retry, on_retry_timer, UK__BUSY_REIDENTIFY_MS, 0);
    } else if (status != UK_E_CANCELLED) {
        UK_LOG_WARN("reader '%s': the card could not be identified: %s", r->name,
                    uk_err_name(status));
    }
}

static void defer_certs(uk_tokens *t, uk_tokens_certs_fn cb, void *arg, struct certset *cs);

static void list_done(struct op *op, int status)
{
    uk_tokens *t = op->t;
    struct reader *r = op->r;
    if (r->list_op == op)
        r->list_op = NULL;
    struct certset *cs = NULL;
    if (status == UK_OK) {
        cs = calloc(1, sizeof(*cs));
        if (cs == NULL) {
            uk_token_certs_free(op->certs, op->n_certs);
            status = UK_E_NO_MEMORY;
        } else {
            cs->refs = 1;
            cs->certs = op->certs;
            cs->n = op->n_certs;
            if (!t->stopping && op->gen == r->gen && r->sess == op->sess && r->certs == NULL)
                r->certs = certset_ref(cs);
        }
    } else {
        uk_token_certs_free(op->certs, op->n_certs);
    }
    op->certs = NULL;
    struct waiter *w = op->waiters;
    while (w != NULL) {
        struct waiter *next = w->next;
        if (cs != NULL)
            w->cb(w->arg, UK_OK, cs->certs, cs->n);
        else
            w->cb(w->arg, status, NULL, 0);
        free(w);
        w = next;
    }
    certset_unref(cs);
}

static void sign_done(struct op *op, int status)
{
    uk_tokens *t = op->t;
    struct reader *r = op->r;
    if (op->pin != NULL) { /* cancelled before it ran */
        uk_secret_free(op->pin);
        op->pin = NULL;
    }
    if (op->pin_after != -2 && !t->stopping && op->gen == r->gen && r->sess == op->sess &&
        r->sum.pin_retries != op->pin_after) {
        r->sum.pin_retries = op->pin_after;
        emit(t, UK_TOKEN_CHANGED, &r->sum);
    }
    int retries = status == UK_E_PIN_INCORRECT || status == UK_E_PIN_LOCKED ? op->retries_left : -1;
    if (status == UK_OK)
        op->sign_cb(op->arg, UK_OK, -1, op->sig, op->sig_len);
    else
        op->sign_cb(op->arg, status, retries, NULL, 0);
}

static void run_done(struct op *op, int status)
{
    uk_tokens *t = op->t;
    struct reader *r = op->r;
    if ((op->flags & UK__OP_CHANGES_CARD) && op->ran && !t->stopping && op->gen == r->gen &&
        r->sess == op->sess) {
        drop_cache(r);
        UK_LOG_INFO("token %s changed", r->sum.id);
        emit(t, UK_TOKEN_CHANGED, &r->sum);
    }
    op->run_done(op->arg, status);
}

static void op_done(void *arg, int status)
{
    struct op *op = arg;
    uk_tokens *t = op->t;
    struct reader *r = op->r;
    switch (op->kind) {
    case OP_IDENTIFY:
        identify_done(op, status);
        break;
    case OP_CLOSE:
        if (op->sess != NULL) /* cancelled: close it here */
            session_free(op->sess);
        break;
    case OP_TEARDOWN:
        if (op->sess != NULL)
            session_free(op->sess);
        break;
    case OP_LIST:
        list_done(op, status);
        break;
    case OP_SIGN:
        sign_done(op, status);
        break;
    case OP_RUN:
        run_done(op, status);
        break;
    }
    enum op_kind kind = op->kind;
    free(op);
    if (kind == OP_TEARDOWN) {
        uk_worker *w = r->w;
        r->w = NULL;
        uk_worker_close(w, on_worker_closed, t);
    }
}

/* ---- deferred callbacks (warm cache) ------------------------------------- */

static void on_defer(uv_async_t *h)
{
    uk_tokens *t = h->data;
    struct deferred *d = t->defer_head;
    t->defer_head = NULL;
    t->defer_tail = &t->defer_head;
    while (d != NULL) {
        struct deferred *next = d->next;
        if (t->stopping)
            d->cb(d->arg, UK_E_CANCELLED, NULL, 0);
        else
            d->cb(d->arg, UK_OK, d->cs->certs, d->cs->n);
        certset_unref(d->cs);
        free(d);
        d = next;
    }
    if (t->defer_head == NULL) {
        uv_unref((uv_handle_t *)&t->defer_async);
        maybe_finish(t);
    }
}

static void defer_certs(uk_tokens *t, uk_tokens_certs_fn cb, void *arg, struct certset *cs)
{
    struct deferred *d = malloc(sizeof(*d));
    if (d == NULL) {
        certset_unref(cs);
        return;
    }
    d->next = NULL;
    d->cb = cb;
    d->arg = arg;
    d->cs = cs;
    *t->defer_tail = d;
    t->defer_tail = &d->next;
    uv_ref((uv_handle_t *)&t->defer_async);
    uv_async_send(&t->defer_async);
}

/* ---- start and stop ------------------------------------------------------ */

static void free_tokens(uk_tokens *t)
{
    for (size_t i = 0; i < t->n_readers; i++) {
        struct reader *r = t->readers[i];
        certset_unref(r->certs);
        session_free(r->sess);
        uk__card_free(r->card);
        free(r);
    }
    for (size_t i = 0; i < t->n_modules; i++) {
        free(t->module_path[i]);
        free(t->module_name[i]);
    }
    uv_mutex_destroy(&t->snap_mu);
    uk__stop_destroy(&t->stop);
    free(t);
}

static void on_handle_closed(uv_handle_t *h)
{
    uk_tokens *t = h->data;
    if (--t->closes_pending > 0)
        return;
    void (*done)(void *) = t->stop_done;
    void *ctx = t->stop_ctx;
    free_tokens(t);
    if (done != NULL)
        done(ctx);
}

static void close_all_handles(uk_tokens *t)
{
    t->closes_pending = 3 + (unsigned)t->n_readers;
    uv_close((uv_handle_t *)&t->mon_async, on_handle_closed);
    uv_close((uv_handle_t *)&t->defer_async, on_handle_closed);
    uv_close((uv_handle_t *)&t->cancel_timer, on_handle_closed);
    for (size_t i = 0; i < t->n_readers; i++) {
        t->readers[i]->retry.data = t;
        uv_close((uv_handle_t *)&t->readers[i]->retry, on_handle_closed);
    }
}

static void maybe_finish(uk_tokens *t)
{
    if (!t->stopping || t->finishing)
        return;
    if (t->mon != NULL || t->workers_open > 0 || t->defer_head != NULL)
        return;
    for (size_t i = 0; i < t->n_modules; i++) {
        if (t->scans[i] != NULL)
            return;
    }
    t->finishing = true;
    close_all_handles(t);
}

static void on_worker_closed(uk_worker *w, void *ctx)
{
    (void)w;
    uk_tokens *t = ctx;
    t->workers_open--;
    maybe_finish(t);
}

static void on_cancel_timer(uv_timer_t *h)
{
    uk_tokens *t = h->data;
    if (t->mon != NULL)
        uk__pcsc_monitor_cancel(t->mon);
    else
        uv_timer_stop(&t->cancel_timer);
}

/* Copies one configured module (of kind k) and starts its scanner. A module that cannot be
 * loaded is reported by its scanner and leaves the others alone. */
static int start_module(uk_tokens *t, const uk_source_kind *k, const char *path, const char *name,
                        unsigned ulong_bytes, const char *token_label)
{
    size_t i = t->n_modules;
    if (path == NULL || path[0] != '/')
        return UK_E_INVALID_PARAMS;
    t->kinds[i] = k;
    t->module_path[i] = strdup(path);
    t->module_name[i] = strdup(name != NULL && name[0] != '\0' ? name : path);
    t->n_modules = i + 1;
    if (t->module_path[i] == NULL || t->module_name[i] == NULL)
        return UK_E_NO_MEMORY;
    uk_source_cbs cbs = {.snapshot = scan_snapshot, .exited = scan_exited, .ctx = t};
    uk_source_config cfg = {.path = t->module_path[i],
                            .name = t->module_name[i],
                            .ulong_bytes = ulong_bytes,
                            .token_label = token_label};
    return k->start(&t->scans[i], &cfg, i, &cbs);
}

_Static_assert(UK_TOKENS_ATR_MAX == UK__ATR_MAX, "uk_tokens_module holds a whole ATR");

/* The PKCS#11 modules (with their hints), then the SKF modules (uk_source.h kinds). */
static int start_modules(uk_tokens *t, const uk_tokens_options *opt)
{
    if (opt->n_modules > UK_LIMIT_PKCS11_MODULES || opt->n_skf_modules > UK_LIMIT_SKF_MODULES)
        return UK_E_LIMIT_EXCEEDED;
    if ((opt->n_modules > 0 && opt->modules == NULL) ||
        (opt->n_skf_modules > 0 && opt->skf_modules == NULL))
        return UK_E_INTERNAL;
    int rc = UK_OK;
    for (size_t i = 0; rc == UK_OK && i < opt->n_modules; i++) {
        const uk_tokens_module *m = &opt->modules[i];
        bool label = m->token_label != NULL && m->token_label[0] != '\0';
        if (m->atr_len > UK__ATR_MAX || (m->atr_len > 0 && m->atr_len < 2))
            return UK_E_INVALID_PARAMS;
        size_t k = t->n_modules; /* the index start_module gives it */
        t->hinted[k] = label || m->atr_len > 0;
        t->hint_atr_len[k] = m->atr_len;
        memcpy(t->hint_atr[k], m->atr, m->atr_len);
        memcpy(t->hint_mask[k], m->atr_mask, m->atr_len);
        rc = start_module(t, &uk_p11_source, m->path, m->name, 0, label ? m->token_label : NULL);
    }
    for (size_t i = 0; rc == UK_OK && i < opt->n_skf_modules; i++)
        rc = start_module(t, &uk_skf_source, opt->skf_modules[i].path, opt->skf_modules[i].name,
                          opt->skf_modules[i].ulong_bytes, NULL);
    return rc;
}

int uk__tokens_start_with(const uk_tokens_options *opt, const uk_driver *const *drivers,
                          size_t n_drivers, uk_tokens **out)
{
    if (opt == NULL || opt->loop == NULL || out == NULL || (drivers == NULL && n_drivers > 0))
        return UK_E_INTERNAL;
    uk_tokens *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return UK_E_NO_MEMORY;
    t->loop = opt->loop;
    t->opt = *opt;
    t->busy_ms = opt->busy_timeout_ms == 0 ? UK__BUSY_TIMEOUT_DEFAULT_MS : opt->busy_timeout_ms;
    if (t->busy_ms > UK__BUSY_TIMEOUT_MAX_MS)
        t->busy_ms = UK__BUSY_TIMEOUT_MAX_MS;
    t->drivers = drivers;
    t->n_drivers = n_drivers;
    t->service = SERVICE_UNKNOWN;
    t->snaps_tail = &t->snaps;
    t->defer_tail = &t->defer_head;
    if (uk__stop_init(&t->stop) != UK_OK) {
        free(t);
        return UK_E_INTERNAL;
    }
    if (uv_mutex_init(&t->snap_mu) != 0) {
        uk__stop_destroy(&t->stop);
        free(t);
        return UK_E_INTERNAL;
    }
    /* Three handles, none keeping the loop alive while the layer is idle. */
    (void)uv_async_init(t->loop, &t->mon_async, on_mon_async);
    (void)uv_async_init(t->loop, &t->defer_async, on_defer);
    (void)uv_timer_init(t->loop, &t->cancel_timer);
    t->mon_async.data = t;
    t->defer_async.data = t;
    t->cancel_timer.data = t;
    uv_unref((uv_handle_t *)&t->mon_async);
    uv_unref((uv_handle_t *)&t->defer_async);

    uk__pcsc_monitor_cbs cbs = {.snapshot = mon_snapshot, .exited = mon_exited, .ctx = t};
    int rc = uk__pcsc_monitor_start(&t->mon, &cbs, &t->stop);
    if (rc == UK_OK) {
        rc = start_modules(t, opt);
        if (rc != UK_OK) {
            /* Stop what started; the caller sees the error, never a callback. */
            uk_tokens_stop(t, NULL, NULL);
            return rc;
        }
    }
    if (rc != UK_OK) {
        /* Nothing else started: close the handles; t goes with the last one. */
        t->stopping = true;
        t->finishing = true;
        close_all_handles(t);
        return rc;
    }
    *out = t;
    return UK_OK;
}

void uk_tokens_stop(uk_tokens *t, void (*done)(void *ctx), void *ctx)
{
    if (t->stopping)
        return;
    t->stopping = true;
    t->stop_done = done;
    t->stop_ctx = ctx;
    uk__stop_set(&t->stop);

    /* The monitor: SCardCancel now and again until it has left. */
    uv_ref((uv_handle_t *)&t->mon_async);
    uk__pcsc_monitor_cancel(t->mon);
    uv_timer_start(&t->cancel_timer, on_cancel_timer, CANCEL_REPEAT_MS, CANCEL_REPEAT_MS);
    for (size_t i = 0; i < t->n_modules; i++) {
        if (t->scans[i] != NULL)
            t->kinds[i]->cancel(t->scans[i]);
    }

    /* The workers: what is queued answers CANCELLED (jobs check the stop
     * flag), then TEARDOWN closes the session and the card on the worker's
     * own thread, and its done_fn closes the worker. */
    for (size_t i = 0; i < t->n_readers; i++) {
        struct reader *r = t->readers[i];
        uv_timer_stop(&r->retry);
        r->list_op = NULL;
        struct session *s = r->sess;
        r->sess = NULL;
        if (s != NULL)
            atomic_store(&s->dead, true);
        struct op *op = op_new(t, r, OP_TEARDOWN);
        if (op != NULL) {
            op->sess = s;
            if (submit(op) == UK_OK)
                continue;
            free(op);
        }
        /* Could not queue it: close the worker; the card goes in free_tokens. */
        r->sess = s;
        uk_worker *w = r->w;
        r->w = NULL;
        uk_worker_close(w, on_worker_closed, t);
    }
    maybe_finish(t);
}

/* ---- the API --------------------------------------------------------------- */

/* Whether r appears in uk_tokens_list: a module slot that names a PC/SC reader ukeyd lists is
 * the same reader seen twice, so it is listed only while it holds a token the module serves and
 * no built-in driver does (dedup()). */
static bool listed(uk_tokens *t, const struct reader *r)
{
    if (!r->seen || r->shadowed)
        return false;
    if (hinted(t, r))
        return r->eligible; /* a hinted module lists only the tokens it serves */
    if (r->src == SRC_PCSC) {
        /* A card a hinted module's slot serves (or is about to) is listed there only. */
        for (size_t i = 0; i < t->n_readers; i++) {
            const struct reader *m = t->readers[i];
            if (hinted(t, m) && m->seen && m->eligible && slot_names_reader(m, r))
                return false;
        }
        return true;
    }
    if (r->sess != NULL)
        return true;
    for (size_t i = 0; i < t->n_readers; i++) {
        if (t->readers[i]->seen && slot_names_reader(r, t->readers[i]))
            return false;
    }
    return true;
}

int uk_tokens_list(uk_tokens *t, uk_token_summary **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (t->stopping)
        return UK_E_CANCELLED;
    if (t->service == UK_E_NO_SERVICE && t->n_modules == 0)
        return UK_E_NO_SERVICE;
    size_t count = 0;
    for (size_t i = 0; i < t->n_readers; i++)
        count += listed(t, t->readers[i]) ? 1 : 0;
    if (count == 0)
        return UK_OK;
    uk_token_summary *s = calloc(count, sizeof(*s));
    if (s == NULL)
        return UK_E_NO_MEMORY;
    size_t j = 0;
    for (size_t i = 0; i < t->n_readers; i++) {
        if (listed(t, t->readers[i]))
            s[j++] = t->readers[i]->sum;
    }
    *out = s;
    *n = count;
    return UK_OK;
}

/* The reader whose identified card has this id, or an error. */
static int find_token(uk_tokens *t, const char *token_id, struct reader **out)
{
    if (t->stopping)
        return UK_E_CANCELLED;
    if (t->service == UK_E_NO_SERVICE && t->n_modules == 0)
        return UK_E_NO_SERVICE;
    if (token_id == NULL || token_id[0] == '\0')
        return UK_E_NO_TOKEN;
    for (size_t i = 0; i < t->n_readers; i++) {
        struct reader *r = t->readers[i];
        if (r->sess != NULL && r->w != NULL && strcmp(r->sum.id, token_id) == 0) {
            *out = r;
            return UK_OK;
        }
    }
    /* pcscd away: a PC/SC token cannot be there, and saying so is more useful; but a module's
     * token (its driver names the id) does not need pcscd: that one is simply not there. */
    if (t->service != UK_E_NO_SERVICE)
        return UK_E_NO_TOKEN;
    for (size_t i = 0; i < t->n_modules; i++) {
        size_t n = strlen(t->kinds[i]->driver);
        if (strncmp(token_id, t->kinds[i]->driver, n) == 0 && token_id[n] == ':')
            return UK_E_NO_TOKEN;
    }
    return UK_E_NO_SERVICE;
}

int uk_tokens_list_certs(uk_tokens *t, const char *token_id, uk_tokens_certs_fn cb, void *arg)
{
    if (cb == NULL)
        return UK_E_INTERNAL;
    struct reader *r = NULL;
    int rc = find_token(t, token_id, &r);
    if (rc != UK_OK)
        return rc;
    if (r->certs != NULL) { /* warm: no card I/O, answered on the next loop turn */
        defer_certs(t, cb, arg, certset_ref(r->certs));
        return UK_OK;
    }
    struct waiter *w = malloc(sizeof(*w));
    if (w == NULL)
        return UK_E_NO_MEMORY;
    w->next = NULL;
    w->cb = cb;
    w->arg = arg;
    struct op *op = r->list_op;
    if (op == NULL) {
        op = op_new(t, r, OP_LIST);
        if (op == NULL) {
            free(w);
            return UK_E_NO_MEMORY;
        }
        op->sess = r->sess;
        rc = submit(op);
        if (rc != UK_OK) {
            free(op);
            free(w);
            return rc;
        }
        r->list_op = op; /* concurrent cold callers share this one read */
    }
    *op->waiters_tail = w;
    op->waiters_tail = &w->next;
    return UK_OK;
}

int uk_tokens_sign(uk_tokens *t, const char *token_id, const uk_sign_req *req, uk_secret *pin,
                   uk_tokens_sign_fn cb, void *arg)
{
    int rc;
    struct reader *r = NULL;
    struct op *op = NULL;
    if (cb == NULL || req == NULL) {
        rc = UK_E_INTERNAL;
        goto fail;
    }
    if (req->digest == NULL || req->digest_len == 0 || req->digest_len > DIGEST_MAX ||
        memchr(req->key_id, '\0', sizeof(req->key_id)) == NULL || req->key_id[0] == '\0') {
        rc = UK_E_INVALID_PARAMS;
        goto fail;
    }
    if (pin == NULL) { /* drivers rely on VERIFY right before the signature (9C: PIN always) */
        rc = UK_E_PIN_REQUIRED;
        goto fail;
    }
    if (uk_secret_get0_len(pin) > UK_LIMIT_PIN_LENGTH) {
        rc = UK_E_PIN_INVALID;
        goto fail;
    }
    rc = find_token(t, token_id, &r);
    if (rc != UK_OK)
        goto fail;
    op = op_new(t, r, OP_SIGN);
    if (op == NULL) {
        rc = UK_E_NO_MEMORY;
        goto fail;
    }
    op->sess = r->sess;
    op->req = *req;
    memcpy(op->digest, req->digest, req->digest_len);
    op->req.digest = op->digest;
    op->pin = pin;
    op->pin_before = r->sum.pin_retries;
    op->sign_cb = cb;
    op->arg = arg;
    rc = submit(op);
    if (rc != UK_OK) {
        op->pin = NULL;
        free(op);
        goto fail;
    }
    return UK_OK;
fail:
    uk_secret_free(pin); /* consumed in every case */
    return rc;
}

int uk__tokens_run(uk_tokens *t, const char *token_id, unsigned flags, uk__token_op_fn fn,
                   uk__token_done_fn done, void *arg)
{
    if (fn == NULL || done == NULL)
        return UK_E_INTERNAL;
    struct reader *r = NULL;
    int rc = find_token(t, token_id, &r);
    if (rc != UK_OK)
        return rc;
    struct op *op = op_new(t, r, OP_RUN);
    if (op == NULL)
        return UK_E_NO_MEMORY;
    op->sess = r->sess;
    op->flags = flags;
    op->run = fn;
    op->run_done = done;
    op->arg = arg;
    rc = submit(op);
    if (rc != UK_OK)
        free(op);
    return rc;
}

int uk__tokens_map_role(const uk_driver *d, void *state, uk_card *card, char key_id[UK_KEY_ID_MAX])
{
    return map_role(d, state, card, key_id);
}

void uk__tokens_note_pin(uk_tokens *t, const char *token_id, int retries)
{
    struct reader *r = NULL;
    if (retries < 0 || find_token(t, token_id, &r) != UK_OK || r->sum.pin_retries == retries)
        return;
    r->sum.pin_retries = retries;
    emit(t, UK_TOKEN_CHANGED, &r->sum);
}

struct put_cert {
    char key_id[UK_KEY_ID_MAX];
    uint8_t *der;
    size_t len;
    uk__token_done_fn done;
    void *arg;
};

static int put_cert_op(void *arg, const uk_driver *drv, void *state, uk_card *card)
{
    struct put_cert *p = arg;
    if (drv->put_cert == NULL)
        return UK_E_NOT_SUPPORTED;
    return drv->put_cert(state, card, p->key_id, p->der, p->len);
}

static void put_cert_done(void *arg, int err)
{
    struct put_cert *p = arg;
    uk__token_done_fn done = p->done;
    void *done_arg = p->arg;
    free(p->der);
    free(p);
    done(done_arg, err);
}

int uk__tokens_put_cert(uk_tokens *t, const char *token_id, const char *key_id, const uint8_t *der,
                        size_t len, uk__token_done_fn done, void *arg)
{
    if (key_id == NULL || strlen(key_id) >= UK_KEY_ID_MAX || der == NULL || len == 0 ||
        done == NULL)
        return UK_E_INVALID_PARAMS;
    struct put_cert *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return UK_E_NO_MEMORY;
    p->der = malloc(len);
    if (p->der == NULL) {
        free(p);
        return UK_E_NO_MEMORY;
    }
    memcpy(p->der, der, len);
    p->len = len;
    strcpy(p->key_id, key_id);
    p->done = done;
    p->arg = arg;
    int rc = uk__tokens_run(t, token_id, UK__OP_CHANGES_CARD, put_cert_op, put_cert_done, p);
    if (rc != UK_OK) {
        free(p->der);
        free(p);
    }
    return rc;
}
