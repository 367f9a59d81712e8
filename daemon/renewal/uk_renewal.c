/*
 * uk_renewal.c - the renewal service (uk_renewal.h). One operation = one heap "op" that lives
 * from the call to its callback; the card part runs in one uk__tokens_run job.
 */
#include "uk_renewal.h"
#include "uk_renewal_testing.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "uk_driver.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_token_internal.h"
#include "uk_worker.h"
#include "uk_x509.h"

struct uk_renewal {
    uv_loop_t *loop;
    uk_tokens *tokens;
    uk_journal *journal;
    uk_worker *worker;
    /* Card jobs queued or running: they use the journal, so it is closed only when the last
     * one has reported (after uk_renewal_free, the token layer cancels or finishes them). */
    size_t card_jobs;
    bool freeing, worker_gone, timer_gone;
    /* Fires when the earliest certificate written for later activation becomes valid. */
    uv_timer_t timer;
    uk_renewal_changed_fn on_changed;
    void *on_changed_ctx;
    char *ca_bundle; /* renewal_ca_bundle, or NULL */
};

static void maybe_release(uk_renewal *r)
{
    if (r->freeing && r->worker_gone && r->timer_gone && r->card_jobs == 0) {
        uk_journal_close(r->journal);
        free(r->ca_bundle);
        free(r);
    }
}

typedef enum op_kind {
    OP_PREPARE = 1,
    OP_COMMIT,
    OP_ABORT,
    OP_STATUS,
    OP_LIST,
    OP_RECOVER
} op_kind;

/* Tests only (uk_renewal_testing.h). */
static uk__renewal_step_hook step_hook;
static void *step_hook_ctx;

void uk__renewal_set_step_hook(uk__renewal_step_hook fn, void *ctx)
{
    step_hook = fn;
    step_hook_ctx = ctx;
}

typedef struct op {
    uk_renewal *r;
    op_kind kind;
    uk_renewal_cb cb;
    void *arg;
    /* inputs */
    char id[UK_JOURNAL_ID_LEN];
    char *token_id;
    char slot[UK_KEY_ID_MAX];
    uk_renewal_mode mode;
    char algorithm[16];
    uk_secret *pin;
    uint8_t *cert_der;
    size_t cert_der_len;
    char *origin;                     /* prepare */
    uk_renewal_subject_attr *subject; /* prepare: own copies of type and value */
    size_t n_subject;
    uint8_t *chain[UK_RENEWAL_CHAIN_MAX]; /* commit */
    size_t chain_len[UK_RENEWAL_CHAIN_MAX];
    size_t n_chain;
    char *ca_bundle;                   /* commit: the service's, copied */
    uint8_t *enc_cert_der, *enveloped; /* commit: dual certificates (SKF), or NULL */
    size_t enc_cert_der_len, enveloped_len;
    /* outputs */
    uk_renewal_rec *rec;
    uk_renewal_rec **recs;
    size_t n_recs;
    int pin_retries;
    /* The card job verified pin (commit, abort on a token with UK_TOKEN_CAP_DELETE_NEEDS_PIN; the
     * prepare): private keys may be deleted; logged out when the job ends. */
    bool pin_ok;
    /* Earliest not_before of a certificate waiting for activation (0: none), seen by the job. */
    time_t next_due;
    /* recover: whether the journal has something for the card to do. */
    bool recover_needed;
    /* recover: the records it changed, for the service's on_changed. */
    uk_renewal_rec **changed;
    size_t n_changed;
} op;

static void op_free(op *o)
{
    if (o == NULL)
        return;
    free(o->token_id);
    uk_secret_free(o->pin);
    free(o->cert_der);
    free(o->origin);
    for (size_t i = 0; i < o->n_subject; i++) {
        free((char *)(uintptr_t)o->subject[i].type);
        free((char *)(uintptr_t)o->subject[i].value);
    }
    free(o->subject);
    for (size_t i = 0; i < o->n_chain; i++)
        free(o->chain[i]);
    free(o->ca_bundle);
    free(o->enc_cert_der);
    free(o->enveloped);
    uk_renewal_recs_free(o->changed, o->n_changed);
    uk_renewal_rec_free(o->rec);
    uk_renewal_recs_free(o->recs, o->n_recs);
    free(o);
}

/* Hands o to the journal worker; o is freed here when that fails (the caller answers the error). */
static int submit_op(uk_renewal *r, op *o, uk_worker_work_fn work, uk_worker_done_fn done)
{
    int rc = uk_worker_submit(r->worker, work, done, o);
    if (rc != UK_OK)
        op_free(o);
    return rc;
}

static void op_report(op *o, int err)
{
    uk_renewal_result res = {0};
    res.pin_retries = o->pin_retries;
    if (err == UK_OK) {
        res.rec = o->rec;
        res.recs = o->recs;
        res.n_recs = o->n_recs;
        if (o->kind == OP_COMMIT && o->rec != NULL) {
            res.cert_der = o->rec->new_cert_der;
            res.cert_der_len = o->rec->new_cert_der_len;
        }
    }
    if (o->cb != NULL)
        o->cb(o->arg, err, &res);
    else if (err != UK_OK)
        UK_LOG_WARN("renewal recovery on %s: %s", o->token_id, uk_err_name(err));
    op_free(o);
}

static op *op_new(uk_renewal *r, op_kind kind, uk_renewal_cb cb, void *arg)
{
    op *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->r = r;
    o->kind = kind;
    o->cb = cb;
    o->arg = arg;
    o->pin_retries = -1;
    return o;
}

static bool valid_id(const char *id)
{
    if (id == NULL || strlen(id) != UK_JOURNAL_ID_LEN - 1)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* ---- the card record ---------------------------------------------------- */

/* One TLV of the record as the service writes it: tag of one byte, short-form length. Other
 * encodings (written by a newer ukeyd) are kept as they are. */
typedef struct rec_buf {
    uint8_t b[UK_DRIVER_RECORD_MAX];
    size_t len;
} rec_buf;

/* The next TLV at *pos: its tag (up to 3 bytes), value and the position after it. */
static int tlv_next(const rec_buf *rb, size_t *pos, unsigned *tag, size_t *vstart, size_t *vlen)
{
    size_t p = *pos;
    if (p >= rb->len)
        return UK_E_NOT_FOUND;
    unsigned t = rb->b[p++];
    if ((t & 0x1fu) == 0x1fu) {
        for (int i = 0; i < 2; i++) {
            if (p >= rb->len)
                return UK_E_CARD_ERROR;
            t = (t << 8) | rb->b[p];
            if (!(rb->b[p++] & 0x80u))
                break;
        }
    }
    if (p >= rb->len)
        return UK_E_CARD_ERROR;
    size_t l = rb->b[p++];
    if (l & 0x80u) {
        size_t nb = l & 0x7fu;
        if (nb == 0 || nb > 4 || p + nb > rb->len)
            return UK_E_CARD_ERROR;
        l = 0;
        for (size_t i = 0; i < nb; i++)
            l = (l << 8) | rb->b[p++];
    }
    if (l > rb->len - p)
        return UK_E_CARD_ERROR;
    *tag = t;
    *vstart = p;
    *vlen = l;
    *pos = p + l;
    return UK_OK;
}

/* Removes every TLV with tag whose value is val. */
static int rec_remove(rec_buf *rb, unsigned tag, const char *val)
{
    size_t pos = 0;
    while (pos < rb->len) {
        size_t start = pos, vs, vl;
        unsigned t;
        int rc = tlv_next(rb, &pos, &t, &vs, &vl);
        if (rc != UK_OK)
            return rc;
        if (t == tag && vl == strlen(val) && memcmp(rb->b + vs, val, vl) == 0) {
            memmove(rb->b + start, rb->b + pos, rb->len - pos);
            rb->len -= pos - start;
            pos = start;
        }
    }
    return UK_OK;
}

static bool rec_has(const rec_buf *rb, unsigned tag, const char *val)
{
    size_t pos = 0;
    while (pos < rb->len) {
        size_t vs, vl;
        unsigned t;
        if (tlv_next(rb, &pos, &t, &vs, &vl) != UK_OK)
            return false;
        if (t == tag && vl == strlen(val) && memcmp(rb->b + vs, val, vl) == 0)
            return true;
    }
    return false;
}

static int rec_add(rec_buf *rb, unsigned tag, const char *val)
{
    size_t vl = strlen(val);
    if (vl > 127 || rb->len + 2 + vl > sizeof(rb->b))
        return UK_E_LIMIT_EXCEEDED;
    if (rec_has(rb, tag, val))
        return UK_OK;
    rb->b[rb->len++] = (uint8_t)tag;
    rb->b[rb->len++] = (uint8_t)vl;
    memcpy(rb->b + rb->len, val, vl);
    rb->len += vl;
    return UK_OK;
}

static int rec_read(const uk_driver *d, void *st, uk_card *card, rec_buf *rb)
{
    rb->len = 0;
    return d->read_record(st, card, rb->b, sizeof(rb->b), &rb->len);
}

/* Reads the record, applies "remove (tag,val)" or "add", writes it back. */
static int rec_edit(const uk_driver *d, void *st, uk_card *card, bool add, unsigned tag,
                    const char *val)
{
    rec_buf rb;
    int rc = rec_read(d, st, card, &rb);
    if (rc != UK_OK)
        return rc;
    rc = add ? rec_add(&rb, tag, val) : rec_remove(&rb, tag, val);
    if (rc != UK_OK)
        return rc;
    return d->write_record(st, card, rb.b, rb.len);
}

/* The active slot of role (UK_RECORD_TAG_ROLE "<role> <active>"), or role itself. */
static void rec_role(const rec_buf *rb, const char *role, char active[UK_KEY_ID_MAX])
{
    size_t pos = 0, rl = strlen(role);
    snprintf(active, UK_KEY_ID_MAX, "%s", role);
    while (pos < rb->len) {
        size_t vs, vl;
        unsigned t;
        if (tlv_next(rb, &pos, &t, &vs, &vl) != UK_OK)
            return;
        const uint8_t *v = rb->b + vs;
        if (t == UK_RENEWAL_RECORD_TAG_ROLE && vl > rl + 1 && vl - rl - 1 < UK_KEY_ID_MAX &&
            memcmp(v, role, rl) == 0 && v[rl] == ' ') {
            memcpy(active, v + rl + 1, vl - rl - 1);
            active[vl - rl - 1] = '\0';
            return;
        }
    }
}

/* Reads the card record into rb and the slot whose key serves role now into active. */
static int active_slot(const uk_driver *d, void *st, uk_card *card, const char *role, rec_buf *rb,
                       char active[UK_KEY_ID_MAX])
{
    int rc = rec_read(d, st, card, rb);
    if (rc == UK_OK)
        rec_role(rb, role, active);
    return rc;
}

/* Removes every TLV with tag whose value starts with prefix. */
static int rec_remove_prefix(rec_buf *rb, unsigned tag, const char *prefix)
{
    size_t pos = 0, pl = strlen(prefix);
    while (pos < rb->len) {
        size_t start = pos, vs, vl;
        unsigned t;
        int rc = tlv_next(rb, &pos, &t, &vs, &vl);
        if (rc != UK_OK)
            return rc;
        if (t == tag && vl >= pl && memcmp(rb->b + vs, prefix, pl) == 0) {
            memmove(rb->b + start, rb->b + pos, rb->len - pos);
            rb->len -= pos - start;
            pos = start;
        }
    }
    return UK_OK;
}

/* The staging slot given up (abort, or the staged key moved into the working slot): its
 * UK_RECORD_TAG_KEY_ID entry and its UK_RENEWAL_RECORD_TAG_STAGED mark, in one write. */
static int rec_free_staged(const uk_driver *d, void *st, uk_card *card, const char *staged)
{
    rec_buf rb;
    char mark[UK_KEY_ID_MAX + 1];
    snprintf(mark, sizeof(mark), "%s ", staged);
    int rc = rec_read(d, st, card, &rb);
    if (rc == UK_OK)
        rc = rec_remove(&rb, UK_RECORD_TAG_KEY_ID, staged);
    if (rc == UK_OK)
        rc = rec_remove_prefix(&rb, UK_RENEWAL_RECORD_TAG_STAGED, mark);
    return rc == UK_OK ? d->write_record(st, card, rb.b, rb.len) : rc;
}

/* The staged key becomes the role's key on a card that cannot move keys: the role maps to it
 * (replacing an earlier mapping) and its staging mark goes; its UK_RECORD_TAG_KEY_ID entry stays
 * (the slot is in use). One write. */
static int rec_map_role(const uk_driver *d, void *st, uk_card *card, const char *role,
                        const char *staged)
{
    rec_buf rb;
    char prefix[UK_KEY_ID_MAX + 1], mark[UK_KEY_ID_MAX + 1], map[2 * UK_KEY_ID_MAX + 2];
    snprintf(prefix, sizeof(prefix), "%s ", role);
    snprintf(mark, sizeof(mark), "%s ", staged);
    snprintf(map, sizeof(map), "%s %s", role, staged);
    int rc = rec_read(d, st, card, &rb);
    if (rc == UK_OK)
        rc = rec_remove_prefix(&rb, UK_RENEWAL_RECORD_TAG_ROLE, prefix);
    if (rc == UK_OK)
        rc = rec_remove_prefix(&rb, UK_RENEWAL_RECORD_TAG_STAGED, mark);
    if (rc == UK_OK)
        rc = rec_add(&rb, UK_RENEWAL_RECORD_TAG_ROLE, map);
    return rc == UK_OK ? d->write_record(st, card, rb.b, rb.len) : rc;
}

/* Whether a role maps to slot (UK_RENEWAL_RECORD_TAG_ROLE "<role> <slot>"); true when the record
 * cannot be read (touch nothing). */
static bool role_maps_to(const rec_buf *rb, const char *slot)
{
    size_t pos = 0, sl = strlen(slot);
    while (pos < rb->len) {
        size_t vs, vl;
        unsigned t;
        if (tlv_next(rb, &pos, &t, &vs, &vl) != UK_OK)
            return true;
        const uint8_t *v = rb->b + vs;
        if (t == UK_RENEWAL_RECORD_TAG_ROLE && vl > sl && v[vl - sl - 1] == ' ' &&
            memcmp(v + vl - sl, slot, sl) == 0)
            return true;
    }
    return false;
}

/* ---- helpers on the card's worker --------------------------------------- */

/* The certificate in key_id (*der NULL when the slot has none or a broken one). */
static int card_cert(const uk_driver *d, void *st, uk_card *card, const char *key_id, uint8_t **der,
                     size_t *len)
{
    uk_token_cert *certs = NULL;
    size_t n = 0;
    *der = NULL;
    *len = 0;
    int rc = d->list_certs(st, card, &certs, &n);
    if (rc != UK_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(certs[i].key_id, key_id) == 0 && certs[i].error == UK_OK) {
            *der = certs[i].der;
            *len = certs[i].der_len;
            certs[i].der = NULL;
            break;
        }
    }
    uk_token_certs_free(certs, n);
    return UK_OK;
}

/* Key History from certs (what list_certs returned, entries with an error left out): count
 * retired slots up to the highest one that has a certificate. */
static int history_of(const uk_driver *d, void *st, uk_card *card, const uk_token_cert *certs,
                      size_t n)
{
    unsigned on_card = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned long v = strtoul(certs[i].key_id, NULL, 16);
        if (certs[i].error == UK_OK && v >= 0x82 && v <= 0x95 && v - 0x81 > on_card)
            on_card = (unsigned)(v - 0x81);
    }
    return d->update_key_history(st, card, on_card, 0, NULL);
}

/* Key History: count retired slots up to the highest one that has a certificate. */
static int update_history(const uk_driver *d, void *st, uk_card *card)
{
    if (d->update_key_history == NULL)
        return UK_OK;
    uk_token_cert *certs = NULL;
    size_t n = 0;
    int rc = d->list_certs(st, card, &certs, &n);
    if (rc == UK_OK)
        rc = history_of(d, st, card, certs, n);
    uk_token_certs_free(certs, n);
    return rc;
}

/* A step with no record to log it in (prepare before its record exists): the test hook only. */
static void hook(const char *step)
{
    if (step_hook != NULL)
        step_hook(step_hook_ctx, step);
}

static void now_step(uk_renewal_rec *rec, const char *step, int rc)
{
    /* A step that does not fit the log is only a missing line; the state is what counts. */
    if (uk_renewal_rec_add_step(rec, step, rc == UK_OK ? "ok" : uk_err_name(rc)) != UK_OK)
        UK_LOG_WARN("renewal %s: step '%s' not logged", rec->id, step);
    if (step_hook != NULL)
        step_hook(step_hook_ctx, step);
}

/*
 * On a token that hides private keys until the PIN is verified (UK_TOKEN_CAP_DELETE_NEEDS_PIN),
 * verifies o->pin so that the job may delete them (commit: retirement; abort: the staged key).
 * PIN_REQUIRED, before anything changes, without one. Other tokens: nothing (a PIN given stays
 * unused and is wiped with the op).
 */
static int login_for_delete(op *o, const uk_driver *d, void *st, uk_card *card, unsigned caps)
{
    if (!(caps & UK_TOKEN_CAP_DELETE_NEEDS_PIN))
        return UK_OK;
    if (o->pin == NULL || d->verify_pin == NULL)
        return UK_E_PIN_REQUIRED;
    int rc = d->verify_pin(st, card, o->pin, &o->pin_retries);
    if (rc == UK_OK)
        o->pin_ok = true;
    return rc;
}

static void logout_if(op *o, const uk_driver *d, void *st, uk_card *card)
{
    if (o->pin_ok && d->logout != NULL)
        d->logout(st, card);
    o->pin_ok = false;
}

static const char *serial_of(const char *token_id)
{
    const char *c = strchr(token_id, ':');
    return c != NULL && c[1] != '\0' ? c + 1 : token_id;
}

/* The new certificate's not_before (0 when it does not parse: then it is never "not due"). */
static time_t new_not_before(const uk_renewal_rec *rec)
{
    uk_cert_info *c = NULL;
    time_t t = 0;
    if (rec->new_cert_der != NULL &&
        uk_x509_parse(rec->new_cert_der, rec->new_cert_der_len, &c) == UK_OK)
        t = c->not_before;
    uk_cert_info_free(c);
    return t;
}

/* Whether a WRITTEN record waits for its certificate to become valid; notes when in o. */
static bool not_due(op *o, const uk_renewal_rec *rec)
{
    time_t nb = new_not_before(rec);
    if (rec->state != UK_RENEWAL_WRITTEN || nb == 0 || time(NULL) >= nb)
        return false;
    if (o->next_due == 0 || nb < o->next_due)
        o->next_due = nb;
    return true;
}

/* ---- prepare ------------------------------------------------------------ */

static int clean_staging(const uk_driver *d, void *st, uk_card *card, uk_renewal_rec *const *recs,
                         size_t n, const char *token_id);
static int activate(op *o, const uk_driver *d, void *st, uk_card *card, uk_renewal_rec *rec);

static bool alg_from_name(const char *name, uk_key_alg *alg, uk_x509_key_kind *kind)
{
    if (strcmp(name, "rsa2048") == 0) {
        *alg = UK_KEY_RSA2048;
        *kind = UK_X509_KEY_RSA;
    } else if (strcmp(name, "p256") == 0) {
        *alg = UK_KEY_ECP256;
        *kind = UK_X509_KEY_EC_P256;
    } else if (strcmp(name, "p384") == 0) {
        *alg = UK_KEY_ECP384;
        *kind = UK_X509_KEY_EC_P384;
    } else if (strcmp(name, "sm2") == 0) {
        *alg = UK_KEY_SM2;
        *kind = UK_X509_KEY_SM2;
    } else {
        return false;
    }
    return true;
}

static int prepare_job(void *arg, const uk_driver *d, void *st, uk_card *card)
{
    op *o = arg;
    uk_journal *j = o->r->journal;
    uint8_t *old_der = NULL, *spki = NULL, *tbs = NULL;
    size_t old_len = 0, spki_len = 0, tbs_len = 0;
    uk_cert_info *cur = NULL;
    uk_x509_csr *csr = NULL;
    char *pem = NULL;
    char staged[UK_KEY_ID_MAX] = "";
    bool recorded = false, generated = false, pin_ok = false;
    uk_renewal_rec **unf = NULL;
    size_t n_unf = 0;
    unsigned caps = 0;
    int rc;

    if (d->get_caps == NULL || d->list_certs == NULL || d->verify_pin == NULL || d->sign == NULL ||
        d->generate_key == NULL || d->find_staging_slot == NULL || d->read_record == NULL ||
        d->write_record == NULL || d->delete_key == NULL)
        return UK_E_NOT_SUPPORTED;
    rc = d->get_caps(st, card, &caps);
    if (rc != UK_OK)
        return rc;
    if (!(caps & UK_TOKEN_CAP_GENERATE) || !(caps & UK_TOKEN_CAP_STAGING) ||
        !(caps & UK_TOKEN_CAP_RECORD) || !(caps & UK_TOKEN_CAP_PUT_CERT))
        return UK_E_NOT_SUPPORTED;

    /* One renewal per slot: the card's queue serialises prepares on this token, so checking
     * here and creating below cannot race with another prepare on the same slot. */
    rc = uk_journal_list(j, true, &unf, &n_unf);
    if (rc != UK_OK)
        return rc;
    bool at_rest = true;
    for (size_t i = 0; i < n_unf; i++) {
        if (strcmp(unf[i]->token_id, o->token_id) != 0)
            continue;
        /* An ACTIVATED renewal whose retirement waits for the PIN is finished below, once the
         * PIN is verified; only then does it hold the slot no more. */
        if (strcmp(unf[i]->slot, o->slot) == 0 && unf[i]->state != UK_RENEWAL_ACTIVATED)
            rc = UK_E_RENEWAL_IN_PROGRESS;
        if (unf[i]->state != UK_RENEWAL_PREPARED && !not_due(o, unf[i]))
            at_rest = false;
    }
    if (rc != UK_OK)
        goto out;

    /* The current pair is the role's active key (on a card that cannot move keys the record may
     * map the role to a renewed key in a retired slot); its certificate decides whether extend or
     * repair applies, and gives the subject. */
    rec_buf rb;
    char active[UK_KEY_ID_MAX];
    rc = rec_read(d, st, card, &rb);
    if (rc != UK_OK)
        goto out;
    rec_role(&rb, o->slot, active);
    rc = card_cert(d, st, card, active, &old_der, &old_len);
    if (rc != UK_OK)
        goto out;
    if (old_der != NULL && uk_x509_parse(old_der, old_len, &cur) != UK_OK) {
        free(old_der);
        old_der = NULL;
        cur = NULL;
    }
    uk_cert_status cs = {0};
    if (cur != NULL) {
        rc = uk_x509_status(cur, time(NULL), 0, &cs);
        if (rc != UK_OK)
            goto out;
    }
    bool valid = cur != NULL && (cs.status == UK_CERT_VALID || cs.status == UK_CERT_EXPIRING);
    bool expired = cur == NULL || cs.status == UK_CERT_EXPIRED;
    if ((o->mode == UK_RENEWAL_EXTEND && !valid) || (o->mode == UK_RENEWAL_REPAIR && !expired)) {
        rc = UK_E_RENEWAL_STATE;
        goto out;
    }
    if (cur == NULL && o->n_subject == 0) {
        /* Without a certificate there is no subject to take: an explicit one is needed. */
        rc = UK_E_CERT_NOT_FOUND;
        goto out;
    }

    /* The algorithm: asked for, or the current key's kind. */
    if (o->algorithm[0] == '\0') {
        const char *name = "rsa2048";
        if (cur != NULL && strcmp(cur->key_alg, "EC") == 0 && strcmp(cur->curve, "P-256") == 0)
            name = "p256";
        else if (cur != NULL && strcmp(cur->key_alg, "EC") == 0 && strcmp(cur->curve, "P-384") == 0)
            name = "p384";
        else if (cur != NULL &&
                 (strcmp(cur->key_alg, "SM2") == 0 || strcmp(cur->curve, "SM2") == 0))
            name = "sm2";
        snprintf(o->algorithm, sizeof(o->algorithm), "%s", name);
    }
    uk_key_alg alg;
    uk_x509_key_kind kind;
    if (!alg_from_name(o->algorithm, &alg, &kind)) {
        rc = UK_E_INVALID_PARAMS;
        goto out;
    }

    rc = d->verify_pin(st, card, o->pin, &o->pin_retries);
    if (rc != UK_OK)
        goto out;
    pin_ok = true;

    /* Retirements a job without the PIN left pending (UK_TOKEN_CAP_DELETE_NEEDS_PIN): done now. */
    for (size_t i = 0; i < n_unf; i++) {
        if (strcmp(unf[i]->token_id, o->token_id) != 0 || unf[i]->state != UK_RENEWAL_ACTIVATED)
            continue;
        o->pin_ok = true;
        int rc2 = activate(o, d, st, card, unf[i]);
        o->pin_ok = false;
        if (rc2 != UK_OK)
            UK_LOG_WARN("renewal %s: retirement not finished: %s", unf[i]->id, uk_err_name(rc2));
        if (unf[i]->state != UK_RENEWAL_DONE && strcmp(unf[i]->slot, o->slot) == 0) {
            rc = UK_E_RENEWAL_IN_PROGRESS;
            goto out;
        }
    }

    /* What an interrupted prepare left is cleaned at recovery; this card job may run before the
     * recovery of an insert (that first reads the journal elsewhere): clean here too. */
    if (at_rest) {
        int rc2 = clean_staging(d, st, card, unf, n_unf, o->token_id);
        if (rc2 != UK_OK)
            UK_LOG_WARN("renewal: staging slots not cleaned: %s", uk_err_name(rc2));
    }
    rc = d->find_staging_slot(st, card, staged);
    if (rc != UK_OK)
        goto out;
    /* The record names the staging slot before a key is in it: no other renewal takes it. */
    rc = rec_edit(d, st, card, true, UK_RECORD_TAG_KEY_ID, staged);
    if (rc != UK_OK)
        goto out;
    recorded = true;
    hook("staging_recorded");

    rc = d->generate_key(st, card, staged, alg, &spki, &spki_len);
    if (rc != UK_OK)
        goto out;
    generated = true;
    hook("key_generated");

    uk_x509_key_policy pol;
    uk_x509_key_policy_init(&pol);
    pol.allowed = UK_X509_KEY_ALLOW(kind);
    uk_x509_key_info ki;
    rc = uk_x509_check_new_key(spki, spki_len, &pol, &ki);
    if (rc != UK_OK) {
        UK_LOG_WARN("new key in %s rejected: %s", staged, ki.reason);
        goto out;
    }

    uk_x509_csr_req cr = {0};
    uk_x509_subject_attr subj[UK_RENEWAL_SUBJECT_MAX];
    for (size_t i = 0; i < o->n_subject; i++)
        subj[i] = (uk_x509_subject_attr){
            .type = o->subject[i].type, .value = o->subject[i].value, .rdn = i};
    cr.current = cur;
    cr.subject = o->n_subject > 0 ? subj : NULL;
    cr.n_subject = o->n_subject;
    cr.spki = spki;
    cr.spki_len = spki_len;
    uk_sign_req sr = {0};
    snprintf(sr.key_id, sizeof(sr.key_id), "%s", staged);
    if (kind == UK_X509_KEY_RSA) {
        cr.sig_alg = UK_X509_SIG_RSA_PKCS1_SHA256;
        sr.scheme = UK_SIG_RSA_PKCS1;
        sr.hash = UK_HASH_SHA256;
    } else if (kind == UK_X509_KEY_EC_P384) {
        cr.sig_alg = UK_X509_SIG_ECDSA_SHA384;
        sr.scheme = UK_SIG_ECDSA;
        sr.hash = UK_HASH_SHA384;
    } else if (kind == UK_X509_KEY_SM2) {
        /* GM/T 0092: SM2 with SM3 over the request, the default signer ID in Z. */
        cr.sig_alg = UK_X509_SIG_SM2_SM3;
        sr.scheme = UK_SIG_SM2;
        sr.hash = UK_HASH_SM3;
    } else {
        cr.sig_alg = UK_X509_SIG_ECDSA_SHA256;
        sr.scheme = UK_SIG_ECDSA;
        sr.hash = UK_HASH_SHA256;
    }
    rc = uk_x509_csr_tbs(&cr, &tbs, &tbs_len, &csr);
    if (rc != UK_OK)
        goto out;
    uint8_t dg[UK_X509_DIGEST_MAX];
    size_t dg_len = sizeof(dg);
    rc = uk_x509_csr_digest(csr, dg, &dg_len);
    if (rc != UK_OK)
        goto out;
    sr.digest = dg;
    sr.digest_len = dg_len;
    uint8_t sig[UK_X509_CSR_SIG_MAX];
    size_t sig_len = 0;
    rc = d->sign(st, card, &sr, sig, sizeof(sig), &sig_len);
    if (rc != UK_OK)
        goto out;
    if (d->logout != NULL)
        d->logout(st, card);
    pin_ok = false;
    rc = uk_x509_csr_finish(csr, sig, sig_len, &pem, NULL, NULL);
    if (rc != UK_OK)
        goto out;
    hook("csr_signed");

    uk_renewal_rec in = {0};
    in.token_id = o->token_id;
    in.token_serial = (char *)(uintptr_t)serial_of(o->token_id);
    in.driver = (char *)(uintptr_t)d->name;
    in.slot = o->slot;
    in.staged_slot = staged;
    in.mode = o->mode;
    in.algorithm = o->algorithm;
    in.origin = o->origin;
    in.state = UK_RENEWAL_PREPARED;
    in.csr_pem = pem;
    in.staged_spki = spki;
    in.staged_spki_len = spki_len;
    in.old_cert_der = old_der;
    in.old_cert_der_len = old_len;
    rc = uk_journal_create(j, &in, &o->rec);
    if (rc == UK_OK) {
        hook("prepared");
        /* The card itself says the staged key belongs to a recorded renewal, so that recovery
         * with another journal (another computer) leaves it alone. Without the mark only this
         * journal explains the key: the renewal still works here. */
        char mark[UK_KEY_ID_MAX + UK_JOURNAL_ID_LEN + 1];
        snprintf(mark, sizeof(mark), "%s %s", staged, o->rec->id);
        int rc2 = rec_edit(d, st, card, true, UK_RENEWAL_RECORD_TAG_STAGED, mark);
        if (rc2 != UK_OK)
            UK_LOG_WARN("renewal %s: staged key not marked on the card: %s", o->rec->id,
                        uk_err_name(rc2));
        else
            hook("staged_marked");
    }

out:
    /* The staged key goes while the PIN is still verified (a token that hides private keys
     * until then cannot delete it later in this job). A key that could not be deleted keeps
     * its record entry: recovery, or the next prepare, deletes it. NOT_SUPPORTED: a card that
     * cannot delete keys; the next key generated in the free slot overwrites it. */
    if (rc != UK_OK && generated) {
        int rc2 = d->delete_key(st, card, staged);
        if (rc2 != UK_OK && rc2 != UK_E_KEY_NOT_FOUND && rc2 != UK_E_NOT_SUPPORTED) {
            UK_LOG_WARN("staged key in %s not deleted: %s; the card record keeps it for recovery",
                        staged, uk_err_name(rc2));
            recorded = false;
        }
    }
    if (pin_ok && d->logout != NULL)
        d->logout(st, card);
    if (rc != UK_OK && recorded &&
        rec_edit(d, st, card, false, UK_RECORD_TAG_KEY_ID, staged) != UK_OK)
        UK_LOG_WARN("card record still names %s", staged);
    free(pem);
    free(tbs);
    uk_x509_csr_free(csr);
    uk_cert_info_free(cur);
    free(old_der);
    free(spki);
    uk_renewal_recs_free(unf, n_unf);
    return rc;
}

/* ---- commit ------------------------------------------------------------- */

/* Writes rec (after a step) in state s. */
static int journal_to(uk_journal *j, uk_renewal_rec *rec, uk_renewal_state s, const char *step)
{
    rec->state = s;
    now_step(rec, step, UK_OK);
    int rc = uk_journal_update(j, rec);
    if (rc == UK_OK && step_hook != NULL)
        step_hook(step_hook_ctx, uk_renewal_state_name(s));
    return rc;
}

/* put_cert, then read back and compare byte for byte. */
static int put_cert_checked(const uk_driver *d, void *st, uk_card *card, const char *key_id,
                            const uint8_t *der, size_t len)
{
    int rc = d->put_cert(st, card, key_id, der, len);
    if (rc != UK_OK)
        return rc;
    uint8_t *back = NULL;
    size_t back_len = 0;
    rc = card_cert(d, st, card, key_id, &back, &back_len);
    if (rc == UK_OK && (back == NULL || back_len != len || memcmp(back, der, len) != 0)) {
        UK_LOG_ERR("certificate in %s does not read back as written", key_id);
        rc = UK_E_CARD_ERROR;
    }
    free(back);
    return rc;
}

/* The checks that precede any change to the encryption pair: an SM2 certificate, not expired,
 * whose chain holds like the signing certificate's. Its key is checked once imported. */
static int enc_cert_checks(const op *o)
{
    uk_cert_info *c = NULL;
    int rc = uk_x509_parse(o->enc_cert_der, o->enc_cert_der_len, &c);
    if (rc != UK_OK)
        return rc;
    time_t now = time(NULL);
    if (strcmp(c->key_alg, "SM2") != 0 && strcmp(c->curve, "SM2") != 0)
        rc = UK_E_CERT_INVALID; /* an ENVELOPEDKEYBLOB carries an SM2 pair only */
    else if (c->not_after <= c->not_before)
        rc = UK_E_CERT_INVALID;
    else if (now > c->not_after)
        rc = UK_E_CERT_EXPIRED;
    if (rc == UK_OK)
        rc = uk_x509_verify_chain(o->enc_cert_der, o->enc_cert_der_len,
                                  (const uint8_t *const *)o->chain, o->chain_len, o->n_chain,
                                  o->ca_bundle, c->not_before > now ? c->not_before : now);
    uk_cert_info_free(c);
    return rc;
}

/* The encryption key id of the container whose signing key id is sign_id ("<c>/sign"). */
static int enc_key_id(const char *sign_id, char out[UK_KEY_ID_MAX])
{
    const char *slash = strrchr(sign_id, '/');
    if (slash == NULL || strcmp(slash, "/sign") != 0)
        return UK_E_NOT_SUPPORTED;
    snprintf(out, UK_KEY_ID_MAX, "%.*s/enc", (int)(slash - sign_id), sign_id);
    return UK_OK;
}

static int key_is(const uk_driver *d, void *st, uk_card *card, const char *key_id,
                  const uint8_t *der, size_t len, bool *match);

/*
 * Dual certificates: the wrapped encryption pair into the staged container, then its certificate
 * (read back), then the check that the certificate is that pair's. Runs before the signing
 * certificate is written; a failure leaves the record PREPARED (commit again replaces both).
 */
static int write_enc_pair(const op *o, const uk_driver *d, void *st, uk_card *card,
                          uk_renewal_rec *rec)
{
    char enc[UK_KEY_ID_MAX];
    int rc = enc_key_id(rec->staged_slot, enc);
    if (rc != UK_OK || d->import_enveloped_key == NULL || d->get_public_key == NULL)
        return UK_E_NOT_SUPPORTED;
    rc = d->import_enveloped_key(st, card, rec->staged_slot, o->enveloped, o->enveloped_len);
    now_step(rec, "enc_key_imported", rc);
    if (rc != UK_OK)
        return rc;
    hook("enc_key_imported");
    rc = put_cert_checked(d, st, card, enc, o->enc_cert_der, o->enc_cert_der_len);
    now_step(rec, "enc_cert_written", rc);
    if (rc != UK_OK)
        return rc;
    hook("enc_cert_written");
    bool match = false;
    rc = key_is(d, st, card, enc, o->enc_cert_der, o->enc_cert_der_len, &match);
    if (rc == UK_OK && !match) {
        UK_LOG_WARN("renewal %s: the encryption certificate is not for the enveloped key", rec->id);
        rc = UK_E_CERT_KEY_MISMATCH;
    }
    return rc;
}

/* The checks that precede any change: parse, key, validity. */
static int commit_checks(const op *o, const uk_driver *d, void *st, uk_card *card,
                         const uk_renewal_rec *rec, const uint8_t *der, size_t len)
{
    uk_cert_info *c = NULL;
    int rc = uk_x509_parse(der, len, &c);
    if (rc != UK_OK)
        return rc;
    rc = uk_x509_spki_match(c, rec->staged_spki, rec->staged_spki_len);
    if (rc == UK_OK && d->get_public_key != NULL) {
        uint8_t *spki = NULL;
        size_t spki_len = 0;
        int rc2 = d->get_public_key(st, card, rec->staged_slot, &spki, &spki_len);
        if (rc2 == UK_OK)
            rc = uk_x509_spki_match(c, spki, spki_len);
        else if (rc2 == UK_E_KEY_NOT_FOUND)
            rc = UK_E_KEY_NOT_FOUND; /* the staged key is gone: nothing to commit to */
        else if (rc2 != UK_E_NOT_SUPPORTED)
            rc = rc2;
        free(spki);
    }
    time_t now = time(NULL);
    if (rc == UK_OK && c->not_after <= c->not_before)
        rc = UK_E_CERT_INVALID;
    if (rc == UK_OK && now > c->not_after)
        rc = UK_E_CERT_EXPIRED;
    /* A not_before in the future is fine: the certificate is written now and activated when
     * it becomes valid (the old pair stays active until then); the chain must hold then. */
    if (rc == UK_OK)
        rc = uk_x509_verify_chain(der, len, (const uint8_t *const *)o->chain, o->chain_len,
                                  o->n_chain, o->ca_bundle,
                                  c->not_before > now ? c->not_before : now);
    uk_cert_info_free(c);
    return rc;
}

/* Whether the key in key_id is the public key of the certificate der. *match false when the slot
 * holds no key; errors other than KEY_NOT_FOUND are returned. */
static int key_is(const uk_driver *d, void *st, uk_card *card, const char *key_id,
                  const uint8_t *der, size_t len, bool *match)
{
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    uk_cert_info *c = NULL;
    *match = false;
    int rc = d->get_public_key(st, card, key_id, &spki, &spki_len);
    if (rc == UK_E_KEY_NOT_FOUND)
        return UK_OK;
    if (rc != UK_OK)
        return rc;
    rc = uk_x509_parse(der, len, &c);
    if (rc == UK_OK) {
        *match = uk_x509_spki_match(c, spki, spki_len) == UK_OK;
    }
    uk_cert_info_free(c);
    free(spki);
    return rc;
}

/* The certificate in key_id is der (reads it). */
static int cert_is(const uk_driver *d, void *st, uk_card *card, const char *key_id,
                   const uint8_t *der, size_t len, bool *same)
{
    uint8_t *back = NULL;
    size_t back_len = 0;
    int rc = card_cert(d, st, card, key_id, &back, &back_len);
    *same = rc == UK_OK && back != NULL && back_len == len && memcmp(back, der, len) == 0;
    free(back);
    return rc;
}

/* The certificate der in key_id, unless it is there already. */
static int ensure_cert(const uk_driver *d, void *st, uk_card *card, const char *key_id,
                       const uint8_t *der, size_t len)
{
    bool same = false;
    int rc = cert_is(d, st, card, key_id, der, len, &same);
    if (rc != UK_OK || same)
        return rc;
    return put_cert_checked(d, st, card, key_id, der, len);
}

/*
 * MOVE KEY: the old pair to a free retired slot (kept usable), the new key and its certificate
 * into the working slot. Decided from what the card holds, not from what was done before, so
 * that it can run again after an interruption at any point (recovery): the working slot's key
 * tells whether the old key is still there, the retired slots whose key is the old
 * certificate's tell where it went.
 */
static int activate_move(const uk_driver *d, void *st, uk_card *card, uk_renewal_rec *rec)
{
    bool new_in_slot = false, old_in_slot = false;
    int rc = key_is(d, st, card, rec->slot, rec->new_cert_der, rec->new_cert_der_len, &new_in_slot);
    if (rc != UK_OK)
        return rc;
    if (!new_in_slot) {
        if (rec->old_cert_der != NULL) {
            rc = key_is(d, st, card, rec->slot, rec->old_cert_der, rec->old_cert_der_len,
                        &old_in_slot);
            if (rc != UK_OK)
                return rc;
        }
        if (old_in_slot) {
            char old_slot[UK_KEY_ID_MAX] = "";
            rc = d->find_staging_slot(st, card, old_slot);
            if (rc == UK_OK)
                rc = rec_edit(d, st, card, true, UK_RECORD_TAG_KEY_ID, old_slot);
            if (rc == UK_OK)
                rc = d->move_key(st, card, rec->slot, old_slot);
            now_step(rec, "old_key_moved", rc);
            if (rc != UK_OK)
                return rc;
        }
        /* Wherever the old key went (now or before an interruption), its certificate goes with
         * it. */
        if (rec->old_cert_der != NULL) {
            for (unsigned s = 0x82; s <= 0x95; s++) {
                char id[UK_KEY_ID_MAX];
                bool here = false;
                snprintf(id, sizeof(id), "%02x", s);
                if (strcmp(id, rec->staged_slot) == 0)
                    continue;
                rc = key_is(d, st, card, id, rec->old_cert_der, rec->old_cert_der_len, &here);
                if (rc != UK_OK)
                    return rc;
                if (here) {
                    rc = ensure_cert(d, st, card, id, rec->old_cert_der, rec->old_cert_der_len);
                    now_step(rec, "old_cert_moved", rc);
                    if (rc != UK_OK)
                        return rc;
                    break;
                }
            }
        }
        rc = d->move_key(st, card, rec->staged_slot, rec->slot);
        now_step(rec, "new_key_moved", rc);
        if (rc != UK_OK)
            return rc;
    }
    rc = ensure_cert(d, st, card, rec->slot, rec->new_cert_der, rec->new_cert_der_len);
    now_step(rec, "new_cert_in_slot", rc);
    if (rc != UK_OK)
        return rc;
    rc = d->delete_cert(st, card, rec->staged_slot);
    if (rc == UK_OK)
        rc = rec_free_staged(d, st, card, rec->staged_slot);
    now_step(rec, "staging_freed", rc);
    return rc;
}

/*
 * Retirement (ACTIVATED -> DONE): the renewal's old key goes once the new pair is the active one
 * for the role and valid (activation waits for that). Decided from the card, like activation, so
 * that it runs again after an interruption at any point (recovery of an ACTIVATED record):
 *   - the new pair must be the role's active pair (its certificate in the active slot, and on a
 *     card with key metadata its key there); otherwise nothing is removed (never the only pair);
 *   - the old pair is looked for in the retired slots 82..95 by its certificate (the old
 *     certificate's bytes), leaving out the staging slot and every slot a role maps to; the
 *     standard slots (9a/9c) are never touched: on a card without MOVE KEY the old pair stays
 *     in 9A for the tools that read only the standard slot. A token whose key ids are free-form
 *     (UK_TOKEN_CAP_ANY_KEY_ID, PKCS#11) has no standard slot: any key id but the active one
 *     is looked at, the role's own id (the first renewal's old pair) included;
 *   - on a token that hides private keys until the PIN is verified
 *     (UK_TOKEN_CAP_DELETE_NEEDS_PIN), a job without the PIN (recovery, the activation timer)
 *     changes nothing: step "old_key_pending", PIN_REQUIRED, the record stays ACTIVATED until a
 *     job with the PIN (commit again, the next prepare of the token) retires it;
 *   - for each such slot, in this order: its UK_RECORD_TAG_KEY_ID entry removed (the slot still
 *     holds a certificate, so find_staging_slot does not take it), its key deleted (DELETE KEY;
 *     a card without it and without key metadata keeps the key until the next key generated
 *     there overwrites it), its certificate deleted last: a slot is retired once its certificate
 *     is gone, and until then recovery finds it by that certificate;
 *   - a card with key metadata but no DELETE KEY keeps the old pair whole (a key without its
 *     certificate would only take a slot no one can reuse).
 * Then Key History. Each card change is a step of the record (written with DONE, or with the
 * record when retirement stops; the record stays ACTIVATED until it is done).
 */
/* Whether rec's last step is step (so that a recovery repeated at every insert logs it once). */
static bool last_step_is(const uk_renewal_rec *rec, const char *step)
{
    return rec->n_steps > 0 && strcmp(rec->steps[rec->n_steps - 1].step, step) == 0;
}

static int retire(const op *o, const uk_driver *d, void *st, uk_card *card, unsigned caps,
                  uk_renewal_rec *rec)
{
    if (rec->old_cert_der == NULL)
        return UK_OK; /* no old certificate: the old key is unknown (and was replaced, or stays) */
    if (d->delete_cert == NULL || d->list_certs == NULL)
        return UK_OK;
    rec_buf rb;
    char active[UK_KEY_ID_MAX];
    int rc = active_slot(d, st, card, rec->slot, &rb, active);
    if (rc != UK_OK)
        return rc;
    uk_token_cert *certs = NULL;
    size_t n = 0, retired = 0;
    rc = d->list_certs(st, card, &certs, &n);
    if (rc != UK_OK)
        return rc;
    /* An object the card failed to read (not one that holds garbage) could be the old pair:
     * retirement waits for a read that works (commit again, recovery), never ends without it. */
    for (size_t i = 0; i < n; i++)
        if (certs[i].error == UK_E_CARD_ERROR) {
            UK_LOG_WARN("renewal %s: %s could not be read; the old key stays until it can be",
                        rec->id, certs[i].key_id);
            uk_token_certs_free(certs, n);
            return UK_E_CARD_ERROR;
        }
    bool ok = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(certs[i].key_id, active) == 0 && certs[i].error == UK_OK &&
            certs[i].der_len == rec->new_cert_der_len &&
            memcmp(certs[i].der, rec->new_cert_der, certs[i].der_len) == 0)
            ok = true;
    if (ok && (caps & UK_TOKEN_CAP_KEY_METADATA) && d->get_public_key != NULL)
        rc = key_is(d, st, card, active, rec->new_cert_der, rec->new_cert_der_len, &ok);
    if (rc == UK_OK && !ok) {
        UK_LOG_WARN("renewal %s: the new pair is not the active one for %s; the old key is kept",
                    rec->id, rec->slot);
        now_step(rec, "old_key_kept", UK_E_RENEWAL_STATE);
    }
    bool can_delete = (caps & UK_TOKEN_CAP_DELETE_KEY) && d->delete_key != NULL;
    bool reusable = can_delete || !(caps & UK_TOKEN_CAP_KEY_METADATA);
    for (size_t i = 0; ok && rc == UK_OK && i < n; i++) {
        const char *id = certs[i].key_id;
        unsigned long v = strtoul(id, NULL, 16);
        bool spare = (caps & UK_TOKEN_CAP_ANY_KEY_ID) || (v >= 0x82 && v <= 0x95);
        if (certs[i].error != UK_OK || !spare || strcmp(id, rec->staged_slot) == 0 ||
            strcmp(id, active) == 0 || certs[i].der_len != rec->old_cert_der_len ||
            memcmp(certs[i].der, rec->old_cert_der, certs[i].der_len) != 0)
            continue;
        if (role_maps_to(&rb, id))
            continue; /* the active key of a role, whatever certificate it holds */
        if (can_delete && (caps & UK_TOKEN_CAP_DELETE_NEEDS_PIN) && !o->pin_ok) {
            /* Nothing is touched before this point: the old pair stays whole. */
            UK_LOG_INFO("renewal %s: the old key in %s can only be deleted with the PIN; it stays "
                        "until the next renewal operation with the PIN",
                        rec->id, id);
            if (!last_step_is(rec, "old_key_pending"))
                now_step(rec, "old_key_pending", UK_E_PIN_REQUIRED);
            rc = UK_E_PIN_REQUIRED;
            break;
        }
        if (!reusable) {
            UK_LOG_INFO("renewal %s: the card cannot delete the old key in %s; the old pair stays",
                        rec->id, id);
            now_step(rec, "old_key_kept", UK_E_NOT_SUPPORTED);
            continue;
        }
        if (rec_has(&rb, UK_RECORD_TAG_KEY_ID, id)) {
            rc = rec_remove(&rb, UK_RECORD_TAG_KEY_ID, id);
            if (rc == UK_OK)
                rc = d->write_record(st, card, rb.b, rb.len);
            now_step(rec, "old_key_unrecorded", rc);
            if (rc != UK_OK)
                break;
        }
        if (can_delete) {
            rc = d->delete_key(st, card, id);
            if (rc == UK_E_KEY_NOT_FOUND)
                rc = UK_OK;
            now_step(rec, "old_key_deleted", rc);
            if (rc != UK_OK)
                break;
        }
        rc = d->delete_cert(st, card, id);
        now_step(rec, "old_cert_deleted", rc);
        if (rc == UK_OK) {
            UK_LOG_INFO("renewal %s: old key in %s retired", rec->id, id);
            certs[i].error = UK_E_CERT_NOT_FOUND; /* gone, for Key History */
            retired++;
        }
    }
    if (rc == UK_OK && retired > 0 && d->update_key_history != NULL) {
        int rc2 = history_of(d, st, card, certs, n);
        now_step(rec, "retired_key_history", rc2);
        if (rc2 != UK_OK)
            UK_LOG_WARN("Key History not updated: %s", uk_err_name(rc2));
    }
    uk_token_certs_free(certs, n);
    return rc;
}

/* From WRITTEN (or a WRITTEN/ACTIVATED record found at recovery): makes the staged key the active
 * one for its role, then ACTIVATED; retires the old key (retire), then DONE. */
static int activate(op *o, const uk_driver *d, void *st, uk_card *card, uk_renewal_rec *rec)
{
    uk_journal *j = o->r->journal;
    unsigned caps = 0;
    int rc = d->get_caps(st, card, &caps);
    if (rc != UK_OK)
        return rc;
    if (not_due(o, rec)) {
        UK_LOG_INFO("renewal %s: the new certificate is not valid yet; the old pair stays active "
                    "until it is",
                    rec->id);
        return UK_OK;
    }
    if (rec->state == UK_RENEWAL_WRITTEN) {
        if ((caps & UK_TOKEN_CAP_MOVE_KEY) && (caps & UK_TOKEN_CAP_KEY_METADATA) &&
            d->move_key != NULL && d->delete_cert != NULL && d->get_public_key != NULL) {
            rc = activate_move(d, st, card, rec);
        } else {
            /* The new key stays in the staging slot; the record says it is the role's key
             * (replacing the mapping of an earlier renewal, whose key stays where it is). */
            rc = rec_map_role(d, st, card, rec->slot, rec->staged_slot);
            now_step(rec, "role_mapped", rc);
        }
        if (rc != UK_OK)
            return rc;
        int rc2 = update_history(d, st, card);
        now_step(rec, "key_history", rc2);
        if (rc2 != UK_OK)
            UK_LOG_WARN("Key History not updated: %s", uk_err_name(rc2));
        rc = journal_to(j, rec, UK_RENEWAL_ACTIVATED, "activated");
        if (rc != UK_OK)
            return rc;
    }
    size_t steps = rec->n_steps;
    rc = retire(o, d, st, card, caps, rec);
    if (rc == UK_E_PIN_REQUIRED) /* retirement waits for the PIN: the record stays ACTIVATED */
        return rec->n_steps != steps ? uk_journal_update(j, rec) : UK_OK;
    if (rc != UK_OK)
        return rc;
    return journal_to(j, rec, UK_RENEWAL_DONE, "done");
}

static int commit_job(void *arg, const uk_driver *d, void *st, uk_card *card)
{
    op *o = arg;
    uk_journal *j = o->r->journal;
    uk_renewal_rec *rec = NULL;
    if (d->get_caps == NULL || d->put_cert == NULL || d->list_certs == NULL ||
        d->read_record == NULL || d->write_record == NULL || d->find_staging_slot == NULL)
        return UK_E_NOT_SUPPORTED;
    unsigned caps = 0;
    int rc = uk_journal_get(j, o->id, &rec);
    if (rc != UK_OK)
        return rc;
    rc = d->get_caps(st, card, &caps);
    if (rc != UK_OK)
        goto out;
    /* The same certificate again for a WRITTEN or ACTIVATED renewal: finish its activation (one
     * that an error of the card stopped; otherwise recovery or the timer would) or its retirement
     * (one that a job without the PIN left pending). */
    bool again = (rec->state == UK_RENEWAL_ACTIVATED || rec->state == UK_RENEWAL_WRITTEN) &&
                 rec->new_cert_der != NULL && rec->new_cert_der_len == o->cert_der_len &&
                 memcmp(rec->new_cert_der, o->cert_der, o->cert_der_len) == 0;
    if (rec->state != UK_RENEWAL_PREPARED && !again) {
        rc = UK_E_RENEWAL_STATE;
        goto out;
    }
    if (!again) {
        rc = commit_checks(o, d, st, card, rec, o->cert_der, o->cert_der_len);
        if (rc == UK_OK && o->enc_cert_der != NULL)
            rc = d->import_enveloped_key == NULL ? UK_E_NOT_SUPPORTED : enc_cert_checks(o);
        if (rc != UK_OK)
            goto out;
    }
    /* Retirement deletes the old private key: on a token that hides it until the PIN is
     * verified, before anything changes. */
    rc = login_for_delete(o, d, st, card, caps);
    if (rc != UK_OK)
        goto out;
    if (again) {
        rc = activate(o, d, st, card, rec);
        goto out;
    }

    /* A commit tried before (and rolled back) made the backup already; it never changes. */
    if (rec->old_cert_der != NULL && rec->old_cert_backup == NULL) {
        char *path = NULL;
        rc = uk_journal_backup_cert(j, rec->token_serial, rec->slot, rec->old_cert_der,
                                    rec->old_cert_der_len, &path);
        if (rc == UK_OK)
            rc = uk_renewal_rec_set1_backup(rec, path);
        free(path);
        if (rc != UK_OK)
            goto out;
    }
    rc = uk_renewal_rec_set1_new_cert(rec, o->cert_der, o->cert_der_len);
    if (rc != UK_OK)
        goto out;
    rc = journal_to(j, rec, UK_RENEWAL_COMMITTING, "cert_accepted");
    if (rc != UK_OK)
        goto out;

    if (o->enc_cert_der != NULL)
        rc = write_enc_pair(o, d, st, card, rec);
    if (rc == UK_OK)
        rc = put_cert_checked(d, st, card, rec->staged_slot, rec->new_cert_der,
                              rec->new_cert_der_len);
    if (rc != UK_OK) {
        /* Nothing but the staging slot's certificate was touched: back to PREPARED. */
        now_step(rec, "cert_written", rc);
        if (d->delete_cert != NULL && d->delete_cert(st, card, rec->staged_slot) != UK_OK)
            UK_LOG_WARN("renewal %s: staged certificate not removed", rec->id);
        rec->state = UK_RENEWAL_PREPARED;
        if (uk_journal_update(j, rec) != UK_OK)
            UK_LOG_WARN("renewal %s: left COMMITTING; recovery will look at the card", rec->id);
        goto out;
    }
    rc = journal_to(j, rec, UK_RENEWAL_WRITTEN, "cert_written");
    if (rc != UK_OK)
        goto out;
    rc = activate(o, d, st, card, rec);
    if (rc != UK_OK) {
        UK_LOG_ERR("renewal %s: activation stopped: %s", rec->id, uk_err_name(rc));
        if (uk_journal_update(j, rec) != UK_OK)
            UK_LOG_WARN("renewal %s: steps not logged", rec->id);
    }
out:
    logout_if(o, d, st, card);
    if (rc == UK_OK) {
        o->rec = rec;
        rec = NULL;
    }
    uk_renewal_rec_free(rec);
    return rc;
}

/* ---- abort -------------------------------------------------------------- */

/* Whether a WRITTEN renewal's activation has not touched the card: the role is not mapped to the
 * staged slot and the working slot's key is not the new one. */
static int written_untouched(const uk_driver *d, void *st, uk_card *card, const uk_renewal_rec *rec,
                             bool *untouched)
{
    rec_buf rb;
    char active[UK_KEY_ID_MAX];
    *untouched = false;
    int rc = active_slot(d, st, card, rec->slot, &rb, active);
    if (rc != UK_OK)
        return rc;
    if (strcmp(active, rec->staged_slot) == 0)
        return UK_OK;
    bool moved = false;
    if (d->get_public_key != NULL) {
        rc = key_is(d, st, card, rec->slot, rec->new_cert_der, rec->new_cert_der_len, &moved);
        if (rc == UK_E_NOT_SUPPORTED)
            rc = UK_OK;
        if (rc != UK_OK)
            return rc;
    }
    *untouched = !moved;
    return UK_OK;
}

static int abort_job(void *arg, const uk_driver *d, void *st, uk_card *card)
{
    op *o = arg;
    uk_journal *j = o->r->journal;
    uk_renewal_rec *rec = NULL;
    unsigned caps = 0;
    if (d->delete_key == NULL || d->read_record == NULL || d->write_record == NULL)
        return UK_E_NOT_SUPPORTED;
    int rc = uk_journal_get(j, o->id, &rec);
    if (rc != UK_OK)
        return rc;
    if (d->get_caps != NULL && (rc = d->get_caps(st, card, &caps)) != UK_OK)
        goto out;
    if (rec->state == UK_RENEWAL_WRITTEN) {
        /* Only while the new certificate waits to become valid: activation has not begun. */
        bool untouched = not_due(o, rec);
        o->next_due = 0;
        rc = untouched ? written_untouched(d, st, card, rec, &untouched) : UK_OK;
        if (rc != UK_OK)
            goto out;
        if (!untouched) {
            rc = UK_E_RENEWAL_STATE;
            goto out;
        }
    } else if (rec->state != UK_RENEWAL_PREPARED) {
        rc = UK_E_RENEWAL_STATE;
        goto out;
    }
    rc = login_for_delete(o, d, st, card, caps);
    if (rc != UK_OK)
        goto out;
    rc = d->delete_key(st, card, rec->staged_slot);
    if (rc == UK_E_KEY_NOT_FOUND)
        rc = UK_OK;
    if (rc == UK_E_NOT_SUPPORTED) {
        /* A card that cannot delete keys: the key stays in the slot, unused; with its
         * certificate and record entry gone the slot is free and the next key overwrites it. */
        UK_LOG_INFO("renewal %s: the card cannot delete the staged key in %s; the slot is freed",
                    rec->id, rec->staged_slot);
        rc = UK_OK;
    }
    if (rc == UK_OK)
        hook("staged_key_deleted");
    if (rc == UK_OK && d->delete_cert != NULL)
        rc = d->delete_cert(st, card, rec->staged_slot);
    if (rc == UK_OK)
        rc = rec_free_staged(d, st, card, rec->staged_slot);
    if (rc != UK_OK)
        goto out;
    hook("staging_freed");
    if (rec->state == UK_RENEWAL_WRITTEN && update_history(d, st, card) != UK_OK)
        UK_LOG_WARN("renewal %s: Key History not updated", rec->id);
    rc = uk_journal_finish(j, rec->id, UK_RENEWAL_ABORTED);
    if (rc != UK_OK)
        goto out;
    uk_renewal_rec_free(rec);
    rec = NULL;
    rc = uk_journal_get(j, o->id, &o->rec);
out:
    logout_if(o, d, st, card);
    uk_renewal_rec_free(rec);
    return rc;
}

/* ---- recovery ----------------------------------------------------------- */

/* One unfinished record of the token on the card: finish it or go back to PREPARED. */
static int recover_one(op *o, const uk_driver *d, void *st, uk_card *card, uk_renewal_rec *rec)
{
    int rc = UK_OK;
    if (rec->state == UK_RENEWAL_COMMITTING) {
        /* Checked, backed up, maybe (partly) written to the staging slot: a certificate that
         * reads back whole is WRITTEN; anything else is undone, back to PREPARED. */
        bool same = false;
        rc =
            cert_is(d, st, card, rec->staged_slot, rec->new_cert_der, rec->new_cert_der_len, &same);
        if (rc != UK_OK)
            return rc;
        if (same)
            return journal_to(o->r->journal, rec, UK_RENEWAL_WRITTEN, "cert_written_recovered") ==
                           UK_OK
                       ? activate(o, d, st, card, rec)
                       : UK_E_IO;
        /* NOT_SUPPORTED: a token that cannot empty a certificate object (SKF) keeps what the
         * interrupted write left in the staging location; the next commit overwrites it. */
        if (d->delete_cert != NULL) {
            rc = d->delete_cert(st, card, rec->staged_slot);
            if (rc != UK_OK && rc != UK_E_NOT_SUPPORTED)
                return rc;
        }
        return journal_to(o->r->journal, rec, UK_RENEWAL_PREPARED, "commit_rolled_back");
    }
    if (rec->state == UK_RENEWAL_WRITTEN || rec->state == UK_RENEWAL_ACTIVATED)
        return activate(o, d, st, card, rec);
    return UK_OK;
}

/* Whether the card record or this journal explains the key location slot that the record keeps
 * (UK_RECORD_TAG_KEY_ID): an unfinished renewal of this journal stages there, a role maps to it,
 * or a renewal of another journal marked it (UK_RENEWAL_RECORD_TAG_STAGED). */
static bool slot_explained(const rec_buf *rb, const char *slot, uk_renewal_rec *const *recs,
                           size_t n, const char *token_id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(recs[i]->token_id, token_id) == 0 && strcmp(recs[i]->staged_slot, slot) == 0)
            return true;
    size_t pos = 0, sl = strlen(slot);
    while (pos < rb->len) {
        size_t vs, vl;
        unsigned t;
        if (tlv_next(rb, &pos, &t, &vs, &vl) != UK_OK)
            return true; /* a record we cannot read: touch nothing */
        const uint8_t *v = rb->b + vs;
        if (t == UK_RENEWAL_RECORD_TAG_ROLE && vl > sl && v[vl - sl - 1] == ' ' &&
            memcmp(v + vl - sl, slot, sl) == 0)
            return true;
        if (t == UK_RENEWAL_RECORD_TAG_STAGED && vl > sl && v[sl] == ' ' &&
            memcmp(v, slot, sl) == 0)
            return true;
    }
    return false;
}

/* Whether slot holds a certificate (whole or broken), or a key that is the key of a certificate
 * on the card (a retired old key). */
static int slot_in_use(const uk_driver *d, void *st, uk_card *card, const char *slot,
                       const uk_token_cert *certs, size_t n_certs, bool *used)
{
    *used = false;
    for (size_t i = 0; i < n_certs; i++)
        if (strcmp(certs[i].key_id, slot) == 0)
            *used = true;
    if (*used || d->get_public_key == NULL)
        return UK_OK;
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    int rc = d->get_public_key(st, card, slot, &spki, &spki_len);
    if (rc == UK_E_KEY_NOT_FOUND || rc == UK_E_NOT_SUPPORTED)
        return UK_OK; /* no key, or none the card can tell without a certificate */
    if (rc != UK_OK)
        return rc;
    for (size_t i = 0; i < n_certs && !*used; i++) {
        uk_cert_info *c = NULL;
        if (certs[i].error == UK_OK && uk_x509_parse(certs[i].der, certs[i].der_len, &c) == UK_OK)
            *used = uk_x509_spki_match(c, spki, spki_len) == UK_OK;
        uk_cert_info_free(c);
    }
    free(spki);
    return UK_OK;
}

/*
 * What a prepare that died before its journal record was written left on the card: a staging
 * slot kept by the record (UK_RECORD_TAG_KEY_ID) that nothing explains (slot_explained,
 * slot_in_use) - its key is deleted and the entry removed, in one record write. recs: this
 * journal's unfinished renewals.
 */
static int clean_staging(const uk_driver *d, void *st, uk_card *card, uk_renewal_rec *const *recs,
                         size_t n, const char *token_id)
{
    rec_buf rb, keep;
    uk_token_cert *certs = NULL;
    size_t n_certs = 0, pos = 0, removed = 0;
    bool listed = false;
    int rc = rec_read(d, st, card, &rb);
    if (rc != UK_OK)
        return rc;
    keep = rb;
    while (rc == UK_OK && pos < rb.len) {
        size_t vs, vl;
        unsigned t;
        if (tlv_next(&rb, &pos, &t, &vs, &vl) != UK_OK)
            break; /* a record we cannot read: touch nothing */
        if (t != UK_RECORD_TAG_KEY_ID || vl == 0 || vl >= UK_KEY_ID_MAX)
            continue;
        char slot[UK_KEY_ID_MAX];
        memcpy(slot, rb.b + vs, vl);
        slot[vl] = '\0';
        if (slot_explained(&rb, slot, recs, n, token_id))
            continue;
        if (!listed) {
            rc = d->list_certs(st, card, &certs, &n_certs);
            if (rc != UK_OK)
                break;
            listed = true;
        }
        bool used = false;
        rc = slot_in_use(d, st, card, slot, certs, n_certs, &used);
        if (rc != UK_OK || used)
            continue;
        int rc2 = d->delete_key != NULL ? d->delete_key(st, card, slot) : UK_E_NOT_SUPPORTED;
        if (rc2 == UK_E_PIN_REQUIRED) {
            /* A token that hides private keys until the PIN is verified (recovery has none):
             * the key and its entry stay until a prepare, which verifies the PIN, cleans. */
            UK_LOG_INFO("staging slot %s: left by an interrupted renewal.prepare; its key is "
                        "deleted at the next renewal.prepare (needs the PIN)",
                        slot);
            continue;
        }
        UK_LOG_NOTICE("staging slot %s: left by an interrupted renewal.prepare; cleaned", slot);
        if (rc2 != UK_OK && rc2 != UK_E_KEY_NOT_FOUND && rc2 != UK_E_NOT_SUPPORTED) {
            rc = rc2;
            break;
        }
        hook("orphan_key_deleted");
        rc = rec_remove(&keep, UK_RECORD_TAG_KEY_ID, slot);
        removed++;
    }
    uk_token_certs_free(certs, n_certs);
    if (rc == UK_OK && removed > 0) {
        rc = d->write_record(st, card, keep.b, keep.len);
        if (rc == UK_OK)
            hook("orphans_cleaned");
    }
    return rc;
}

static int recover_job(void *arg, const uk_driver *d, void *st, uk_card *card)
{
    op *o = arg;
    uk_renewal_rec **recs = NULL;
    size_t n = 0;
    bool stable = true;
    if (d->get_caps == NULL || d->put_cert == NULL || d->list_certs == NULL ||
        d->read_record == NULL || d->write_record == NULL || d->find_staging_slot == NULL)
        return UK_OK; /* a token that cannot renew has nothing to recover */
    int rc = uk_journal_list(o->r->journal, true, &recs, &n);
    if (rc != UK_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(recs[i]->token_id, o->token_id) != 0 || recs[i]->state == UK_RENEWAL_PREPARED ||
            not_due(o, recs[i]))
            continue;
        if (!o->recover_needed) {
            stable = false; /* became unfinished after the check: the next recovery does it */
            continue;
        }
        UK_LOG_INFO("renewal %s: recovering from state %s", recs[i]->id,
                    uk_renewal_state_name(recs[i]->state));
        uint64_t revision = recs[i]->revision;
        int rc2 = recover_one(o, d, st, card, recs[i]);
        if (rc2 != UK_OK) {
            UK_LOG_ERR("renewal %s: recovery stopped: %s", recs[i]->id, uk_err_name(rc2));
            rc = rc2;
        }
        /* What it is now, for renewal.changed. */
        uk_renewal_rec *now = NULL, **grown = NULL;
        if (uk_journal_get(o->r->journal, recs[i]->id, &now) == UK_OK &&
            now->revision != revision &&
            (grown = realloc(o->changed, (o->n_changed + 1) * sizeof(*grown))) != NULL) {
            o->changed = grown;
            o->changed[o->n_changed++] = now;
            now = NULL;
        }
        stable = stable && rc2 == UK_OK;
        uk_renewal_rec_free(now);
    }
    /* Only when every renewal of the card is at rest (prepared, done, or waiting to become
     * valid): an interrupted activation may hold an old key in a slot without its certificate
     * for a moment. */
    if (rc == UK_OK && stable) {
        int rc2 = clean_staging(d, st, card, recs, n, o->token_id);
        if (rc2 != UK_OK)
            UK_LOG_WARN("renewal: staging slots of %s not cleaned: %s", o->token_id,
                        uk_err_name(rc2));
    }
    uk_renewal_recs_free(recs, n);
    return rc;
}

/* ---- the loop side ------------------------------------------------------ */

static void arm_timer(uk_renewal *r, time_t due);

static void card_done(void *arg, int err)
{
    op *o = arg;
    uk_renewal *r = o->r;
    if (o->next_due != 0)
        arm_timer(r, o->next_due);
    for (size_t i = 0; r->on_changed != NULL && !r->freeing && i < o->n_changed; i++)
        r->on_changed(r->on_changed_ctx, o->changed[i]);
    op_report(o, err);
    r->card_jobs--;
    maybe_release(r);
}

/* uk__tokens_run for the service: counts the job. */
static int run_card_flags(uk_renewal *r, op *o, uk__token_op_fn fn, unsigned flags)
{
    if (r->freeing)
        return UK_E_CANCELLED;
    int rc = uk__tokens_run(r->tokens, o->token_id, flags, fn, card_done, o);
    if (rc == UK_OK)
        r->card_jobs++;
    return rc;
}

static int run_card(uk_renewal *r, op *o, uk__token_op_fn fn)
{
    return run_card_flags(r, o, fn, UK__OP_CHANGES_CARD);
}

static void worker_done(void *arg, int err)
{
    op_report(arg, err);
}

static int journal_job(void *arg)
{
    op *o = arg;
    if (o->kind == OP_STATUS)
        return uk_journal_get(o->r->journal, o->id, &o->rec);
    return uk_journal_list(o->r->journal, false, &o->recs, &o->n_recs);
}

/* commit and abort: the record names the token; read it on the worker, then run the card job. */
static void lookup_done(void *arg, int err)
{
    op *o = arg;
    if (err != UK_OK) {
        op_report(o, err);
        return;
    }
    o->token_id = strdup(o->rec->token_id);
    uk_renewal_rec_free(o->rec);
    o->rec = NULL;
    if (o->token_id == NULL) {
        op_report(o, UK_E_NO_MEMORY);
        return;
    }
    int rc = run_card(o->r, o, o->kind == OP_COMMIT ? commit_job : abort_job);
    if (rc != UK_OK)
        op_report(o, rc);
}

static int lookup_job(void *arg)
{
    op *o = arg;
    return uk_journal_get(o->r->journal, o->id, &o->rec);
}

bool uk_renewal_role_ok(const char *token_id, const char *slot)
{
    if (token_id == NULL || slot == NULL)
        return false;
    if (strncmp(token_id, "piv:", 4) == 0)
        return strcmp(slot, "9a") == 0 || strcmp(slot, "9c") == 0;
    size_t n = strlen(slot);
    if (strncmp(token_id, "skf:", 4) == 0) {
        /* The signing pair of a container ("<c>/sign", docs/drivers.md): the encryption pair
         * comes from the CA's key-management centre with the renewed signing certificate. */
        const char *slash = strchr(slot, '/');
        size_t c = slash != NULL ? (size_t)(slash - slot) : 0;
        if (c == 0 || n >= UK_KEY_ID_MAX || strcmp(slash, "/sign") != 0)
            return false;
        bool hashed = slot[0] == '#';
        if (hashed && c != 10)
            return false;
        for (size_t i = hashed ? 1 : 0; i < c; i++) {
            char ch = slot[i];
            bool hexdigit = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
            bool plain = hexdigit || (ch >= 'g' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                         ch == '.' || ch == '_' || ch == '-';
            if (!(hashed ? hexdigit : plain))
                return false;
        }
        return true;
    }
    if (n == 0 || n >= UK_KEY_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = slot[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (i == 0 && c == 'h')))
            return false;
    }
    return true;
}

int uk_renewal_prepare(uk_renewal *r, const uk_renewal_prepare_req *req, uk_renewal_cb cb,
                       void *arg)
{
    if (r == NULL || req == NULL || cb == NULL || req->token_id == NULL || req->slot == NULL ||
        req->pin == NULL)
        return UK_E_INVALID_PARAMS;
    if (!uk_renewal_role_ok(req->token_id, req->slot))
        return UK_E_INVALID_PARAMS;
    if (req->mode != UK_RENEWAL_EXTEND && req->mode != UK_RENEWAL_REPAIR)
        return UK_E_INVALID_PARAMS;
    uk_key_alg alg;
    uk_x509_key_kind kind;
    if (req->algorithm != NULL && !alg_from_name(req->algorithm, &alg, &kind))
        return UK_E_INVALID_PARAMS;
    if (req->n_subject > UK_RENEWAL_SUBJECT_MAX || (req->n_subject > 0 && req->subject == NULL))
        return UK_E_INVALID_PARAMS;
    for (size_t i = 0; i < req->n_subject; i++)
        if (req->subject[i].type == NULL || req->subject[i].value == NULL ||
            req->subject[i].type[0] == '\0' || req->subject[i].value[0] == '\0')
            return UK_E_INVALID_PARAMS;
    if (req->origin != NULL && req->origin[0] == '\0')
        return UK_E_INVALID_PARAMS;
    op *o = op_new(r, OP_PREPARE, cb, arg);
    if (o == NULL)
        return UK_E_NO_MEMORY;
    o->token_id = strdup(req->token_id);
    o->pin = uk_secret_new(uk_secret_get0_data(req->pin), uk_secret_get0_len(req->pin));
    if (o->token_id == NULL || o->pin == NULL) {
        op_free(o);
        return UK_E_NO_MEMORY;
    }
    snprintf(o->slot, sizeof(o->slot), "%s", req->slot);
    o->mode = req->mode;
    if (req->algorithm != NULL)
        snprintf(o->algorithm, sizeof(o->algorithm), "%s", req->algorithm);
    int rc = UK_OK;
    if (req->origin != NULL && (o->origin = strdup(req->origin)) == NULL)
        rc = UK_E_NO_MEMORY;
    if (rc == UK_OK && req->n_subject > 0 &&
        (o->subject = calloc(req->n_subject, sizeof(*o->subject))) == NULL)
        rc = UK_E_NO_MEMORY;
    for (size_t i = 0; rc == UK_OK && i < req->n_subject; i++) {
        char *t = strdup(req->subject[i].type), *v = strdup(req->subject[i].value);
        o->subject[i] = (uk_renewal_subject_attr){.type = t, .value = v};
        o->n_subject = i + 1;
        if (t == NULL || v == NULL)
            rc = UK_E_NO_MEMORY;
    }
    if (rc == UK_OK)
        rc = run_card(r, o, prepare_job);
    if (rc != UK_OK)
        op_free(o);
    return rc;
}

/* recover, first step: is there anything for the card (so that an insert with nothing to
 * recover costs only a read of the card record, and no token.changed)? Also notes the next due
 * activation. */
static int recover_check_job(void *arg)
{
    op *o = arg;
    uk_renewal_rec **recs = NULL;
    size_t n = 0;
    int rc = uk_journal_list(o->r->journal, true, &recs, &n);
    if (rc != UK_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(recs[i]->token_id, o->token_id) != 0 || recs[i]->state == UK_RENEWAL_PREPARED)
            continue;
        if (!not_due(o, recs[i]))
            o->recover_needed = true;
    }
    uk_renewal_recs_free(recs, n);
    return UK_OK;
}

static void recover_check_done(void *arg, int err)
{
    op *o = arg;
    uk_renewal *r = o->r;
    if (err == UK_OK && o->next_due != 0)
        arm_timer(r, o->next_due);
    if (err != UK_OK || r->freeing) {
        op_report(o, err);
        return;
    }
    o->next_due = 0;
    /* Always a card job: the card record may keep staging slots an interrupted prepare left
     * (one GET DATA when it keeps none); token.changed only when a renewal needs the card. */
    int rc = run_card_flags(r, o, recover_job, o->recover_needed ? UK__OP_CHANGES_CARD : 0);
    if (rc != UK_OK)
        op_report(o, rc);
}

int uk_renewal_recover(uk_renewal *r, const char *token_id, uk_renewal_cb cb, void *arg)
{
    if (r == NULL || token_id == NULL)
        return UK_E_INVALID_PARAMS;
    op *o = op_new(r, OP_RECOVER, cb, arg);
    if (o == NULL)
        return UK_E_NO_MEMORY;
    o->token_id = strdup(token_id);
    if (o->token_id == NULL) {
        op_free(o);
        return UK_E_NO_MEMORY;
    }
    return submit_op(r, o, recover_check_job, recover_check_done);
}

static int submit_by_id(uk_renewal *r, op_kind kind, const char *id, uk_renewal_cb cb, void *arg,
                        op **out)
{
    if (r == NULL || cb == NULL || !valid_id(id))
        return UK_E_INVALID_PARAMS;
    op *o = op_new(r, kind, cb, arg);
    if (o == NULL)
        return UK_E_NO_MEMORY;
    snprintf(o->id, sizeof(o->id), "%s", id);
    *out = o;
    return UK_OK;
}

/* A malloc'ed copy of p[0..n) in *out (n > 0). */
static int dup_der(const uint8_t *p, size_t n, uint8_t **out)
{
    if (p == NULL || n == 0)
        return UK_E_INVALID_PARAMS;
    if ((*out = malloc(n)) == NULL)
        return UK_E_NO_MEMORY;
    memcpy(*out, p, n);
    return UK_OK;
}

/* A copy of pin (NULL: none) into o->pin. */
static int take_pin(op *o, const uk_secret *pin)
{
    if (pin == NULL)
        return UK_OK;
    o->pin = uk_secret_new(uk_secret_get0_data(pin), uk_secret_get0_len(pin));
    return o->pin != NULL ? UK_OK : UK_E_NO_MEMORY;
}

int uk_renewal_commit(uk_renewal *r, const uk_renewal_commit_req *req, uk_renewal_cb cb, void *arg)
{
    if (req == NULL || req->cert_der == NULL || req->cert_der_len == 0 ||
        req->n_chain > UK_RENEWAL_CHAIN_MAX ||
        (req->enc_cert_der == NULL) != (req->enveloped_key == NULL) ||
        (req->enc_cert_der != NULL &&
         (req->enc_cert_der_len == 0 || req->enveloped_key_len == 0)) ||
        (req->n_chain > 0 && (req->chain == NULL || req->chain_len == NULL)))
        return UK_E_INVALID_PARAMS;
    op *o = NULL;
    int rc = submit_by_id(r, OP_COMMIT, req->id, cb, arg, &o);
    if (rc != UK_OK)
        return rc;
    rc = dup_der(req->cert_der, req->cert_der_len, &o->cert_der);
    o->cert_der_len = req->cert_der_len;
    for (size_t i = 0; rc == UK_OK && i < req->n_chain; i++) {
        rc = dup_der(req->chain[i], req->chain_len[i], &o->chain[i]);
        o->chain_len[i] = req->chain_len[i];
        o->n_chain = rc == UK_OK ? i + 1 : i;
    }
    if (rc == UK_OK && r->ca_bundle != NULL && (o->ca_bundle = strdup(r->ca_bundle)) == NULL)
        rc = UK_E_NO_MEMORY;
    if (rc == UK_OK && req->enc_cert_der != NULL) {
        rc = dup_der(req->enc_cert_der, req->enc_cert_der_len, &o->enc_cert_der);
        o->enc_cert_der_len = req->enc_cert_der_len;
        if (rc == UK_OK)
            rc = dup_der(req->enveloped_key, req->enveloped_key_len, &o->enveloped);
        o->enveloped_len = req->enveloped_key_len;
    }
    if (rc == UK_OK)
        rc = take_pin(o, req->pin);
    if (rc != UK_OK) {
        op_free(o);
        return rc;
    }
    return submit_op(r, o, lookup_job, lookup_done);
}

bool uk_renewal_needs_pin(const uk_renewal_rec *rec)
{
    return rec != NULL && rec->driver != NULL &&
           (strcmp(rec->driver, "p11") == 0 || strcmp(rec->driver, "skf") == 0);
}

int uk_renewal_abort(uk_renewal *r, const char *id, const uk_secret *pin, uk_renewal_cb cb,
                     void *arg)
{
    op *o = NULL;
    int rc = submit_by_id(r, OP_ABORT, id, cb, arg, &o);
    if (rc != UK_OK)
        return rc;
    if ((rc = take_pin(o, pin)) != UK_OK) {
        op_free(o);
        return rc;
    }
    return submit_op(r, o, lookup_job, lookup_done);
}

int uk_renewal_status(uk_renewal *r, const char *id, uk_renewal_cb cb, void *arg)
{
    op *o = NULL;
    int rc = submit_by_id(r, OP_STATUS, id, cb, arg, &o);
    if (rc != UK_OK)
        return rc;
    return submit_op(r, o, journal_job, worker_done);
}

int uk_renewal_list(uk_renewal *r, uk_renewal_cb cb, void *arg)
{
    if (r == NULL || cb == NULL)
        return UK_E_INVALID_PARAMS;
    op *o = op_new(r, OP_LIST, cb, arg);
    if (o == NULL)
        return UK_E_NO_MEMORY;
    return submit_op(r, o, journal_job, worker_done);
}

/* Due: every present token gets a recovery, which activates what is due. */
static void on_timer(uv_timer_t *h)
{
    uk_renewal *r = h->data;
    uk_token_summary *list = NULL;
    size_t n = 0;
    if (r->freeing || uk_tokens_list(r->tokens, &list, &n) != UK_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!list[i].present || list[i].id[0] == '\0')
            continue;
        int rc = uk_renewal_recover(r, list[i].id, NULL, NULL);
        if (rc != UK_OK)
            UK_LOG_WARN("renewal: activation on %s not started: %s", list[i].id, uk_err_name(rc));
    }
    free(list);
}

/* (Re)arms the timer for due (seconds since the epoch) unless it fires earlier already. A
 * second late: a certificate is valid from not_before on, inclusive. */
static void arm_timer(uk_renewal *r, time_t due)
{
    if (r->freeing)
        return;
    time_t now = time(NULL);
    uint64_t ms = due > now ? (uint64_t)(due - now) * 1000u + 1000u : 1000u;
    if (uv_is_active((uv_handle_t *)&r->timer) && uv_timer_get_due_in(&r->timer) <= ms)
        return;
    uv_timer_start(&r->timer, on_timer, ms, 0);
}

static void timer_closed(uv_handle_t *h)
{
    uk_renewal *r = h->data;
    r->timer_gone = true;
    maybe_release(r);
}

int uk_renewal_new(uv_loop_t *loop, uk_tokens *tokens, const char *state_dir, uk_renewal **out)
{
    if (loop == NULL || tokens == NULL || state_dir == NULL || out == NULL)
        return UK_E_INVALID_PARAMS;
    uk_renewal *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return UK_E_NO_MEMORY;
    r->loop = loop;
    r->tokens = tokens;
    int rc = uk_journal_open(state_dir, &r->journal);
    if (rc == UK_OK)
        rc = uk_worker_new(&r->worker, loop, "uk-renewal");
    if (rc != UK_OK) {
        uk_journal_close(r->journal);
        free(r);
        return rc;
    }
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    *out = r;
    return UK_OK;
}

static void worker_closed(uk_worker *w, void *ctx)
{
    (void)w;
    uk_renewal *r = ctx;
    r->worker_gone = true;
    maybe_release(r);
}

void uk_renewal_set_on_changed(uk_renewal *r, uk_renewal_changed_fn fn, void *ctx)
{
    if (r == NULL)
        return;
    r->on_changed = fn;
    r->on_changed_ctx = ctx;
}

int uk_renewal_set_ca_bundle(uk_renewal *r, const char *path)
{
    if (r == NULL)
        return UK_E_INVALID_PARAMS;
    char *copy = NULL;
    if (path != NULL && path[0] != '\0' && (copy = strdup(path)) == NULL)
        return UK_E_NO_MEMORY;
    free(r->ca_bundle);
    r->ca_bundle = copy;
    return UK_OK;
}

void uk_renewal_free(uk_renewal *r)
{
    if (r == NULL)
        return;
    r->freeing = true;
    uv_close((uv_handle_t *)&r->timer, timer_closed);
    uk_worker_close(r->worker, worker_closed, r);
}
