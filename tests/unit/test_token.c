/*
 * The token layer over a fake libpcsclite (fake_pcsclite.c, a link seam)
 * and a fake driver that talks to a scripted card through uk_card_transmit:
 * events and their order, the certificate cache (counted in transmits),
 * serialisation, PIN handling, removal mid-operation, another program
 * holding the card, pcscd going away and coming back, SCARD_* mapping, and
 * a stop that answers every callback exactly once and leaves a loop that
 * closes (uv_loop_close() == 0 after every test).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <uv.h>
#include <winscard.h>

#include "fake_pcsclite.h"
#include "token_test_util.h"
#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_pcsc.h"
#include "uk_secret.h"
#include "uk_token.h"
#include "uk_token_internal.h"

#define READER0 "Fake Reader 00"
#define READER1 "Fake Reader 01"
#define PIN     "123456"

/* ---- the scripted card --------------------------------------------------- */

struct card {
    bool ours; /* answers our SELECT */
    char serial[16];
    int retries; /* PIN tries left */
    bool verified;
    uint8_t cert[3][64]; /* slots 1, 2 (index 1..2) */
    size_t cert_len[3];
    atomic_uint signs;
};

static void sw(uint8_t *resp, size_t *len, unsigned v)
{
    resp[*len] = (uint8_t)(v >> 8);
    resp[*len + 1] = (uint8_t)v;
    *len += 2;
}

static void card_fn(void *ctx, const uint8_t *a, size_t n, uint8_t *resp, size_t cap,
                    size_t *resp_len)
{
    struct card *c = ctx;
    size_t len = 0;
    (void)cap;
    uint8_t ins = a[1];
    size_t lc = n > 5 ? a[4] : 0;
    const uint8_t *data = a + 5;
    if (ins == 0xA4) {
        sw(resp, &len, c->ours && lc == 1 && data[0] == 0xF0 ? 0x9000 : 0x6A82);
    } else if (ins == 0xCA) {
        memcpy(resp, c->serial, strlen(c->serial));
        len = strlen(c->serial);
        sw(resp, &len, 0x9000);
    } else if (ins == 0x20 && n == 4) {
        sw(resp, &len, c->verified ? 0x9000 : c->retries == 0 ? 0x6983 : 0x63C0u + c->retries);
    } else if (ins == 0x20) {
        if (c->retries == 0) {
            sw(resp, &len, 0x6983);
        } else if (lc == strlen(PIN) && memcmp(data, PIN, lc) == 0) {
            c->retries = 3;
            c->verified = true;
            sw(resp, &len, 0x9000);
        } else {
            c->retries--;
            c->verified = false;
            sw(resp, &len, c->retries == 0 ? 0x6983 : 0x63C0u + c->retries);
        }
    } else if (ins == 0xCB) {
        unsigned slot = a[3];
        if (slot < 3 && c->cert_len[slot] > 0) {
            memcpy(resp, c->cert[slot], c->cert_len[slot]);
            len = c->cert_len[slot];
            sw(resp, &len, 0x9000);
        } else {
            sw(resp, &len, 0x6A82);
        }
    } else if (ins == 0x2A) {
        if (!c->verified) {
            sw(resp, &len, 0x6982);
        } else {
            for (size_t i = 0; i < lc; i++)
                resp[i] = data[lc - 1 - i];
            len = lc;
            atomic_fetch_add(&c->signs, 1);
            sw(resp, &len, 0x9000);
        }
    } else if (ins == 0xDB) {
        unsigned slot = a[3];
        if (slot < 3 && lc <= sizeof(c->cert[slot])) {
            memcpy(c->cert[slot], data, lc);
            c->cert_len[slot] = lc;
            sw(resp, &len, 0x9000);
        } else {
            sw(resp, &len, 0x6A80);
        }
    } else {
        sw(resp, &len, 0x6D00);
    }
    *resp_len = len;
}

static void card_init(struct card *c, const char *serial)
{
    memset(c, 0, sizeof(*c));
    c->ours = true;
    snprintf(c->serial, sizeof(c->serial), "%s", serial);
    c->retries = 3;
    memcpy(c->cert[1], "\x30\x03\x02\x01\x01", 5);
    c->cert_len[1] = 5;
    memcpy(c->cert[2], "\x30\x03\x02\x01\x02", 5);
    c->cert_len[2] = 5;
}

/* ---- the fake driver ------------------------------------------------------- */

static atomic_int opens, closes;

static int exchange(uk_card *card, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
                    size_t *data_len, unsigned *sw_out)
{
    size_t n = 0;
    int rc = uk_card_transmit(card, apdu, len, resp, cap, &n);
    if (rc != UK_OK)
        return rc;
    *sw_out = (unsigned)resp[n - 2] << 8 | resp[n - 1];
    *data_len = n - 2;
    return UK_OK;
}

static int sw_err(unsigned s)
{
    if (s == 0x9000)
        return UK_OK;
    if (s == 0x6982)
        return UK_E_SECURITY_STATUS;
    if (s == 0x6983)
        return UK_E_PIN_LOCKED;
    if ((s & 0xFFF0) == 0x63C0)
        return UK_E_PIN_INCORRECT;
    return UK_E_CARD_ERROR;
}

static int fk_probe(uk_card *card)
{
    static const uint8_t select[] = {0x00, 0xA4, 0x04, 0x00, 0x01, 0xF0};
    uint8_t r[258];
    size_t n;
    unsigned s;
    int rc = exchange(card, select, sizeof(select), r, sizeof(r), &n, &s);
    if (rc != UK_OK)
        return rc;
    return s == 0x9000 ? UK_OK : UK_E_NOT_SUPPORTED;
}

static int fk_open(uk_card *card, const uk_driver_options *opt, void **state, uk_token_identity *id)
{
    (void)opt;
    static const uint8_t get_serial[] = {0x00, 0xCA, 0x00, 0x01, 0x00};
    uint8_t r[258];
    size_t n;
    unsigned s;
    int rc = exchange(card, get_serial, sizeof(get_serial), r, sizeof(r), &n, &s);
    if (rc != UK_OK)
        return rc;
    if (s != 0x9000 || n >= sizeof(id->serial))
        return UK_E_CARD_ERROR;
    memset(id, 0, sizeof(*id));
    memcpy(id->serial, r, n);
    snprintf(id->label, sizeof(id->label), "Fake key");
    snprintf(id->model, sizeof(id->model), "Fake card");
    *state = malloc(1);
    if (*state == NULL)
        return UK_E_NO_MEMORY;
    atomic_fetch_add(&opens, 1);
    return UK_OK;
}

static void fk_close(void *state)
{
    free(state);
    atomic_fetch_add(&closes, 1);
}

static int fk_list(void *state, uk_card *card, uk_token_cert **certs, size_t *n_out)
{
    (void)state;
    uk_token_cert *out = calloc(2, sizeof(*out));
    size_t n = 0;
    if (out == NULL)
        return UK_E_NO_MEMORY;
    for (uint8_t slot = 1; slot <= 2; slot++) {
        const uint8_t apdu[] = {0x00, 0xCB, 0x00, slot, 0x00};
        uint8_t r[258];
        size_t len;
        unsigned s;
        int rc = exchange(card, apdu, sizeof(apdu), r, sizeof(r), &len, &s);
        if (rc != UK_OK) {
            uk_token_certs_free(out, n);
            return rc;
        }
        if (s == 0x6A82)
            continue;
        if (s != 0x9000) {
            uk_token_certs_free(out, n);
            return sw_err(s);
        }
        snprintf(out[n].key_id, sizeof(out[n].key_id), "%02x", slot);
        out[n].der = malloc(len);
        if (out[n].der == NULL) {
            uk_token_certs_free(out, n);
            return UK_E_NO_MEMORY;
        }
        memcpy(out[n].der, r, len);
        out[n].der_len = len;
        n++;
    }
    *certs = out;
    *n_out = n;
    return UK_OK;
}

static int fk_pin_status(void *state, uk_card *card, int *retries)
{
    (void)state;
    static const uint8_t apdu[] = {0x00, 0x20, 0x00, 0x80};
    uint8_t r[258];
    size_t n;
    unsigned s;
    int rc = exchange(card, apdu, sizeof(apdu), r, sizeof(r), &n, &s);
    if (rc != UK_OK)
        return rc;
    *retries = (s & 0xFFF0) == 0x63C0 ? (int)(s & 0xF) : s == 0x6983 ? 0 : -1;
    return UK_OK;
}

static int fk_verify(void *state, uk_card *card, const uk_secret *pin, int *retries)
{
    (void)state;
    uint8_t apdu[5 + UK_LIMIT_PIN_LENGTH];
    size_t len = uk_secret_get0_len(pin);
    memcpy(apdu, "\x00\x20\x00\x80", 4);
    apdu[4] = (uint8_t)len;
    memcpy(apdu + 5, uk_secret_get0_data(pin), len);
    uint8_t r[258];
    size_t n;
    unsigned s;
    int rc = exchange(card, apdu, 5 + len, r, sizeof(r), &n, &s);
    uk_wipe(apdu, sizeof(apdu));
    if (rc != UK_OK)
        return rc;
    if ((s & 0xFFF0) == 0x63C0)
        *retries = (int)(s & 0xF);
    return sw_err(s);
}

static int fk_sign(void *state, uk_card *card, const uk_sign_req *req, uint8_t *sig, size_t cap,
                   size_t *sig_len)
{
    (void)state;
    uint8_t apdu[5 + 64];
    unsigned slot = (unsigned)strtoul(req->key_id, NULL, 16);
    memcpy(apdu, "\x00\x2A\x00", 3);
    apdu[3] = (uint8_t)slot;
    apdu[4] = (uint8_t)req->digest_len;
    memcpy(apdu + 5, req->digest, req->digest_len);
    uint8_t r[258];
    size_t n;
    unsigned s;
    int rc = exchange(card, apdu, 5 + req->digest_len, r, sizeof(r), &n, &s);
    if (rc != UK_OK)
        return rc;
    if (s != 0x9000)
        return sw_err(s);
    if (n > cap)
        return UK_E_LIMIT_EXCEEDED;
    memcpy(sig, r, n);
    *sig_len = n;
    return UK_OK;
}

static int fk_put_cert(void *state, uk_card *card, const char *key_id, const uint8_t *der,
                       size_t len)
{
    (void)state;
    uint8_t apdu[5 + 255];
    if (len > 255)
        return UK_E_LIMIT_EXCEEDED;
    memcpy(apdu, "\x00\xDB\x00", 3);
    apdu[3] = (uint8_t)strtoul(key_id, NULL, 16);
    apdu[4] = (uint8_t)len;
    memcpy(apdu + 5, der, len);
    uint8_t r[258];
    size_t n;
    unsigned s;
    int rc = exchange(card, apdu, 5 + len, r, sizeof(r), &n, &s);
    return rc != UK_OK ? rc : sw_err(s);
}

static const uk_driver fake_driver = {
    .name = "fake",
    .probe = fk_probe,
    .open = fk_open,
    .close = fk_close,
    .list_certs = fk_list,
    .pin_status = fk_pin_status,
    .verify_pin = fk_verify,
    .sign = fk_sign,
    .put_cert = fk_put_cert,
};

static const uk_driver *const drivers[] = {&fake_driver};

/* ---- fixture ------------------------------------------------------------------ */

struct event {
    uk_token_event ev;
    uk_token_summary s;
    uint64_t at_ms;
};

struct fx {
    uv_loop_t loop;
    uk_tokens *t;
    struct event evs[64];
    size_t n_evs;
    bool stopped;
    struct card cards[2];
};

static void on_event(void *ctx, uk_token_event ev, const uk_token_summary *s)
{
    struct fx *f = ctx;
    assert_true(f->n_evs < 64);
    f->evs[f->n_evs].ev = ev;
    f->evs[f->n_evs].s = *s;
    f->evs[f->n_evs].at_ms = uk__now_ms();
    f->n_evs++;
}

static void on_stopped(void *ctx)
{
    struct fx *f = ctx;
    assert_false(f->stopped);
    f->stopped = true;
}

typedef bool (*pred_fn)(struct fx *f, const void *arg);

struct until {
    struct fx *f;
    pred_fn pred;
    const void *arg;
};

static bool until_done(void *p)
{
    struct until *u = p;
    return u->pred(u->f, u->arg);
}

static bool run_until(struct fx *f, pred_fn pred, const void *arg, unsigned timeout_ms)
{
    struct until u = {f, pred, arg};
    return loop_run_until(&f->loop, until_done, &u, timeout_ms);
}

static bool pred_events(struct fx *f, const void *arg)
{
    return f->n_evs >= *(const size_t *)arg;
}

static bool wait_events(struct fx *f, size_t n, unsigned timeout_ms)
{
    return run_until(f, pred_events, &n, timeout_ms);
}

static bool pred_int_at_least(struct fx *f, const void *arg)
{
    (void)f;
    const int *const *p = arg;
    return *p[0] >= *p[1];
}

static bool wait_int(struct fx *f, const int *value, int want, unsigned timeout_ms)
{
    const int *p[2] = {value, &want};
    return run_until(f, pred_int_at_least, p, timeout_ms);
}

static bool pred_false(struct fx *f, const void *arg)
{
    (void)f;
    (void)arg;
    return false;
}

static void spin(struct fx *f, unsigned ms)
{
    (void)run_until(f, pred_false, NULL, ms);
}

static bool pred_stopped(struct fx *f, const void *arg)
{
    (void)arg;
    return f->stopped;
}

static void start(struct fx *f, unsigned busy_ms)
{
    uk_tokens_options o;
    memset(&o, 0, sizeof(o));
    o.loop = &f->loop;
    o.on_event = on_event;
    o.ctx = f;
    o.busy_timeout_ms = busy_ms;
    assert_int_equal(uk__tokens_start_with(&o, drivers, 1, &f->t), UK_OK);
}

static void stop(struct fx *f)
{
    uk_tokens_stop(f->t, on_stopped, f);
    assert_false(f->stopped); /* never inside the call */
    assert_true(run_until(f, pred_stopped, NULL, 5000));
    f->t = NULL;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    fake_pcsc_reset();
    atomic_store(&opens, 0);
    atomic_store(&closes, 0);
    log_clear();
    uk_log_set_level(UK_LOG_LEVEL_DEBUG);
    uk_log_set_sink(log_sink, NULL);
    card_init(&f->cards[0], "1234");
    card_init(&f->cards[1], "5678");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->t != NULL)
        stop(f);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_int_equal(fake_pcsc_violations(), 0);
    assert_int_equal(atomic_load(&opens), atomic_load(&closes)); /* every session closed */
    uk_log_set_sink(NULL, NULL);
    uk_log_set_level(UK_LOG_LEVEL_INFO);
    free(f);
    return 0;
}

/* A reader with card 0 in it, the layer started, the card identified. */
static void start_with_card(struct fx *f, unsigned busy_ms)
{
    fake_pcsc_add_reader(READER0);
    fake_pcsc_insert(READER0, card_fn, &f->cards[0]);
    start(f, busy_ms);
    assert_true(wait_events(f, 1, 2000));
    assert_int_equal(f->evs[0].ev, UK_TOKEN_INSERTED);
}

/* ---- callbacks ------------------------------------------------------------------- */

struct certs_res {
    int calls;
    int err;
    size_t n;
    char key0[UK_KEY_ID_MAX];
    uint8_t der0[64];
    size_t der0_len;
    bool in_call;
};

static void on_certs(void *arg, int err, const uk_token_cert *certs, size_t n)
{
    struct certs_res *r = arg;
    assert_false(r->in_call);
    r->calls++;
    r->err = err;
    r->n = n;
    if (n > 0) {
        snprintf(r->key0, sizeof(r->key0), "%s", certs[0].key_id);
        r->der0_len = certs[0].der_len < sizeof(r->der0) ? certs[0].der_len : sizeof(r->der0);
        memcpy(r->der0, certs[0].der, r->der0_len);
    }
}

static int list_certs(struct fx *f, const char *id, struct certs_res *r)
{
    r->in_call = true;
    int rc = uk_tokens_list_certs(f->t, id, on_certs, r);
    r->in_call = false;
    return rc;
}

struct sign_res {
    int calls;
    int err;
    int retries;
    uint8_t sig[64];
    size_t sig_len;
};

static void on_sign(void *arg, int err, int retries_left, const uint8_t *sig, size_t sig_len)
{
    struct sign_res *r = arg;
    r->calls++;
    r->err = err;
    r->retries = retries_left;
    r->sig_len = sig_len;
    if (sig_len > 0 && sig_len <= sizeof(r->sig))
        memcpy(r->sig, sig, sig_len);
}

static const uint8_t digest[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static int sign(struct fx *f, const char *id, const char *pin, struct sign_res *r)
{
    uk_sign_req req;
    memset(&req, 0, sizeof(req));
    snprintf(req.key_id, sizeof(req.key_id), "02");
    req.scheme = UK_SIG_ECDSA;
    req.hash = UK_HASH_SHA256;
    req.digest = digest;
    req.digest_len = sizeof(digest);
    uk_secret *s = pin != NULL ? uk_secret_new(pin, strlen(pin)) : NULL;
    return uk_tokens_sign(f->t, id, &req, s, on_sign, r);
}

/* ---- tests: events ----------------------------------------------------------------- */

static void test_token_card_present_at_start_is_inserted_with_serial_id(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    const uk_token_summary *s = &f->evs[0].s;
    assert_string_equal(s->id, "fake:1234");
    assert_string_equal(s->reader, READER0);
    assert_string_equal(s->driver, "fake");
    assert_string_equal(s->identity.serial, "1234");
    assert_string_equal(s->identity.model, "Fake card");
    assert_true(s->present);
    assert_int_equal(s->pin_retries, 3);

    uk_token_summary *list = NULL;
    size_t n = 0;
    assert_int_equal(uk_tokens_list(f->t, &list, &n), UK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, "fake:1234");
    free(list);
}

static void test_token_remove_and_insert_emit_events_in_order(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    uint64_t t0 = uk__now_ms();
    fake_pcsc_remove(READER0);
    assert_true(wait_events(f, 2, 2000));
    assert_int_equal(f->evs[1].ev, UK_TOKEN_REMOVED);
    assert_string_equal(f->evs[1].s.id, "fake:1234");
    assert_false(f->evs[1].s.present);
    assert_true(f->evs[1].at_ms - t0 < 500);

    uk_token_summary *list = NULL;
    size_t n = 0;
    assert_int_equal(uk_tokens_list(f->t, &list, &n), UK_OK);
    assert_int_equal(n, 1); /* the reader, empty */
    assert_string_equal(list[0].id, "");
    assert_false(list[0].present);
    free(list);

    t0 = uk__now_ms();
    fake_pcsc_insert(READER0, card_fn, &f->cards[1]);
    assert_true(wait_events(f, 3, 2000));
    assert_int_equal(f->evs[2].ev, UK_TOKEN_INSERTED);
    assert_string_equal(f->evs[2].s.id, "fake:5678");
    assert_true(f->evs[2].at_ms - t0 < 500);
    spin(f, 50);
    assert_int_equal(f->n_evs, 3);
}

static void test_token_quick_swap_between_two_looks_is_removed_then_inserted(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    /* Both changes before the monitor looks again: the event counter tells. */
    fake_pcsc_remove(READER0);
    fake_pcsc_insert(READER0, card_fn, &f->cards[1]);
    assert_true(wait_events(f, 3, 2000));
    assert_int_equal(f->evs[1].ev, UK_TOKEN_REMOVED);
    assert_int_equal(f->evs[2].ev, UK_TOKEN_INSERTED);
    assert_string_equal(f->evs[2].s.id, "fake:5678");
}

static void test_token_reader_coming_and_going_through_pnp(void **state)
{
    struct fx *f = *state;
    start(f, 0);
    spin(f, 50);
    uk_token_summary *list = NULL;
    size_t n = 1;
    assert_int_equal(uk_tokens_list(f->t, &list, &n), UK_OK);
    assert_int_equal(n, 0);
    assert_null(list);

    fake_pcsc_add_reader(READER1);
    fake_pcsc_insert(READER1, card_fn, &f->cards[1]);
    assert_true(wait_events(f, 1, 2000));
    assert_int_equal(f->evs[0].ev, UK_TOKEN_INSERTED);
    assert_string_equal(f->evs[0].s.reader, READER1);

    fake_pcsc_remove_reader(READER1);
    assert_true(wait_events(f, 2, 2000));
    assert_int_equal(f->evs[1].ev, UK_TOKEN_REMOVED);
    assert_int_equal(uk_tokens_list(f->t, &list, &n), UK_OK);
    assert_int_equal(n, 0);
}

static void test_token_unknown_card_is_listed_but_not_inserted(void **state)
{
    struct fx *f = *state;
    f->cards[0].ours = false;
    fake_pcsc_add_reader(READER0);
    fake_pcsc_insert(READER0, card_fn, &f->cards[0]);
    start(f, 0);
    spin(f, 200);
    assert_int_equal(f->n_evs, 0);
    uk_token_summary *list = NULL;
    size_t n = 0;
    assert_int_equal(uk_tokens_list(f->t, &list, &n), UK_OK);
    assert_int_equal(n, 1);
    assert_true(list[0].present);
    assert_string_equal(list[0].driver, "");
    assert_string_equal(list[0].id, "");
    free(list);
    assert_true(log_has("no driver recognises the card"));
}

static void test_token_without_serial_is_named_by_reader_number(void **state)
{
    struct fx *f = *state;
    f->cards[1].serial[0] = '\0';
    fake_pcsc_add_reader(READER0);
    fake_pcsc_add_reader(READER1);
    fake_pcsc_insert(READER1, card_fn, &f->cards[1]);
    start(f, 0);
    assert_true(wait_events(f, 1, 2000));
    assert_string_equal(f->evs[0].s.id, "fake:reader-1");
}

static void test_token_idle_layer_makes_no_calls(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    spin(f, 50);
    unsigned gsc = fake_pcsc_calls("SCardGetStatusChange");
    unsigned all = gsc + fake_pcsc_calls("SCardTransmit") + fake_pcsc_calls("SCardConnect") +
                   fake_pcsc_calls("SCardListReaders") + fake_pcsc_calls("SCardEstablishContext");
    spin(f, 300);
    unsigned all2 = fake_pcsc_calls("SCardGetStatusChange") + fake_pcsc_calls("SCardTransmit") +
                    fake_pcsc_calls("SCardConnect") + fake_pcsc_calls("SCardListReaders") +
                    fake_pcsc_calls("SCardEstablishContext");
    assert_int_equal(all2, all); /* the monitor sits in one blocking call */
}

/* ---- tests: certificates ---------------------------------------------------------- */

static bool pred_calls(struct fx *f, const void *arg)
{
    (void)f;
    return ((const struct certs_res *)arg)->calls > 0;
}

static void test_token_warm_list_certs_sends_no_apdu_and_answers_later(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    struct certs_res cold = {0}, warm = {0};
    unsigned tx0 = fake_pcsc_calls("SCardTransmit");
    assert_int_equal(list_certs(f, "fake:1234", &cold), UK_OK);
    assert_int_equal(cold.calls, 0);
    assert_true(run_until(f, pred_calls, &cold, 2000));
    assert_int_equal(cold.err, UK_OK);
    assert_int_equal(cold.n, 2);
    assert_string_equal(cold.key0, "01");
    assert_int_equal(cold.der0_len, 5);
    assert_int_equal(fake_pcsc_calls("SCardTransmit") - tx0, 2);

    unsigned tx1 = fake_pcsc_calls("SCardTransmit");
    unsigned cn1 = fake_pcsc_calls("SCardConnect");
    assert_int_equal(list_certs(f, "fake:1234", &warm), UK_OK);
    assert_int_equal(warm.calls, 0); /* deferred, never inside the call */
    assert_true(run_until(f, pred_calls, &warm, 2000));
    assert_int_equal(warm.err, UK_OK);
    assert_int_equal(warm.n, 2);
    assert_memory_equal(warm.der0, cold.der0, 5);
    assert_int_equal(fake_pcsc_calls("SCardTransmit"), tx1);
    assert_int_equal(fake_pcsc_calls("SCardConnect"), cn1);
}

static void test_token_cache_dropped_on_card_event(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    struct certs_res r1 = {0}, r2 = {0};
    assert_int_equal(list_certs(f, "fake:1234", &r1), UK_OK);
    assert_true(run_until(f, pred_calls, &r1, 2000));

    /* Same card out and in again: same id, but the cache is gone. */
    memcpy(f->cards[0].cert[1], "\x30\x03\x02\x01\x07", 5);
    fake_pcsc_remove(READER0);
    fake_pcsc_insert(READER0, card_fn, &f->cards[0]);
    assert_true(wait_events(f, 3, 2000));
    unsigned tx = fake_pcsc_calls("SCardTransmit");
    assert_int_equal(list_certs(f, "fake:1234", &r2), UK_OK);
    assert_true(run_until(f, pred_calls, &r2, 2000));
    assert_int_equal(r2.err, UK_OK);
    assert_int_equal(r2.der0[4], 7);
    assert_int_equal(fake_pcsc_calls("SCardTransmit") - tx, 2);
}

static void test_token_concurrent_cold_list_certs_share_one_read(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    struct certs_res r[32];
    memset(r, 0, sizeof(r));
    unsigned tx = fake_pcsc_calls("SCardTransmit");
    for (int i = 0; i < 32; i++)
        assert_int_equal(list_certs(f, "fake:1234", &r[i]), UK_OK);
    assert_true(run_until(f, pred_calls, &r[31], 2000));
    for (int i = 0; i < 32; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, UK_OK);
        assert_int_equal(r[i].n, 2);
    }
    assert_int_equal(fake_pcsc_calls("SCardTransmit") - tx, 2);
}

static void test_token_unknown_token_is_refused_without_callback(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    struct certs_res r = {0};
    struct sign_res s = {0};
    assert_int_equal(list_certs(f, "fake:9999", &r), UK_E_NO_TOKEN);
    assert_int_equal(list_certs(f, "", &r), UK_E_NO_TOKEN);
    assert_int_equal(sign(f, "fake:9999", PIN, &s), UK_E_NO_TOKEN); /* the PIN is freed (ASan) */
    spin(f, 20);
    assert_int_equal(r.calls, 0);
    assert_int_equal(s.calls, 0);
}

/* ---- tests: sign -------------------------------------------------------------------- */

static bool pred_sign(struct fx *f, const void *arg)
{
    (void)f;
    return ((const struct sign_res *)arg)->calls > 0;
}

static void test_token_sign_verifies_pin_and_signs_in_one_transaction(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    struct sign_res r = {0};
    unsigned tx = fake_pcsc_transactions();
    assert_int_equal(sign(f, "fake:1234", PIN, &r), UK_OK);
    assert_true(run_until(f, pred_sign, &r, 2000));
    assert_int_equal(r.err, UK_OK);
    assert_int_equal(r.retries, -1);
    assert_int_equal(r.sig_len, 32);
    for (size_t i = 0; i < 32; i++)
        assert_int_equal(r.sig[i], digest[31 - i]);
    assert_int_equal(fake_pcsc_transactions() - tx, 1);
    assert_false(log_has(PIN));
}

static void test_token_sign_wrong_pin_reports_retries_and_changes_token(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    struct sign_res r = {0};
    assert_int_equal(sign(f, "fake:1234", "654321", &r), UK_OK);
    assert_true(run_until(f, pred_sign, &r, 2000));
    assert_int_equal(r.err, UK_E_PIN_INCORRECT);
    assert_int_equal(r.retries, 2);
    assert_int_equal(r.sig_len, 0);
    assert_int_equal(f->n_evs, 2);
    assert_int_equal(f->evs[1].ev, UK_TOKEN_CHANGED);
    assert_int_equal(f->evs[1].s.pin_retries, 2);

    /* The right PIN resets the counter: changed again. */
    struct sign_res ok = {0};
    assert_int_equal(sign(f, "fake:1234", PIN, &ok), UK_OK);
    assert_true(run_until(f, pred_sign, &ok, 2000));
    assert_int_equal(ok.err, UK_OK);
    assert_int_equal(f->n_evs, 3);
    assert_int_equal(f->evs[2].s.pin_retries, 3);
    assert_false(log_has("654321"));
}

static void test_token_sign_with_blocked_pin_reports_locked(void **state)
{
    struct fx *f = *state;
    f->cards[0].retries = 0;
    start_with_card(f, 0);
    assert_int_equal(f->evs[0].s.pin_retries, 0);
    struct sign_res r = {0};
    assert_int_equal(sign(f, "fake:1234", PIN, &r), UK_OK);
    assert_true(run_until(f, pred_sign, &r, 2000));
    assert_int_equal(r.err, UK_E_PIN_LOCKED);
    assert_int_equal(r.retries, 0);
}

static void test_token_sign_refuses_bad_requests(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    struct sign_res r = {0};
    uk_sign_req req;
    memset(&req, 0, sizeof(req));
    req.digest = digest;
    req.digest_len = sizeof(digest);
    /* no key id */
    assert_int_equal(uk_tokens_sign(f->t, "fake:1234", &req, NULL, on_sign, &r),
                     UK_E_INVALID_PARAMS);
    snprintf(req.key_id, sizeof(req.key_id), "02");
    req.digest_len = 65;
    assert_int_equal(uk_tokens_sign(f->t, "fake:1234", &req, NULL, on_sign, &r),
                     UK_E_INVALID_PARAMS);
    req.digest_len = 32;
    assert_int_equal(uk_tokens_sign(f->t, "fake:1234", &req, NULL, on_sign, &r), UK_E_PIN_REQUIRED);
    char long_pin[UK_LIMIT_PIN_LENGTH + 2];
    memset(long_pin, '1', sizeof(long_pin) - 1);
    long_pin[sizeof(long_pin) - 1] = '\0';
    assert_int_equal(uk_tokens_sign(f->t, "fake:1234", &req,
                                    uk_secret_new(long_pin, strlen(long_pin)), on_sign, &r),
                     UK_E_PIN_INVALID);
    spin(f, 20);
    assert_int_equal(r.calls, 0);
}

static void test_token_32_concurrent_signs_are_all_answered_one_at_a_time(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    fake_pcsc_set_delay(READER0, 1);
    struct sign_res r[32];
    struct certs_res c[32];
    memset(r, 0, sizeof(r));
    memset(c, 0, sizeof(c));
    unsigned tx = fake_pcsc_transactions();
    for (int i = 0; i < 32; i++) {
        assert_int_equal(sign(f, "fake:1234", PIN, &r[i]), UK_OK);
        assert_int_equal(list_certs(f, "fake:1234", &c[i]), UK_OK);
    }
    assert_true(run_until(f, pred_sign, &r[31], 5000));
    for (int i = 0; i < 32; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, UK_OK);
        assert_int_equal(c[i].calls, 1);
        assert_int_equal(c[i].err, UK_OK);
    }
    assert_int_equal(atomic_load(&f->cards[0].signs), 32);
    /* 32 signatures + one shared certificate read, each its own transaction. */
    assert_int_equal(fake_pcsc_transactions() - tx, 33);
    assert_int_equal(fake_pcsc_violations(), 0);
}

/* ---- tests: faults ---------------------------------------------------------------------- */

static void test_token_card_removed_mid_operation_reports_card_removed(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    fake_pcsc_drop_after(READER0, 1, false);
    struct certs_res r = {0};
    assert_int_equal(list_certs(f, "fake:1234", &r), UK_OK);
    assert_true(run_until(f, pred_calls, &r, 2000));
    assert_int_equal(r.err, UK_E_CARD_REMOVED);
    assert_true(wait_events(f, 2, 2000));
    assert_int_equal(f->evs[1].ev, UK_TOKEN_REMOVED);

    /* Queued work for the gone card answers without touching a card. */
    struct certs_res gone = {0};
    assert_int_equal(list_certs(f, "fake:1234", &gone), UK_E_NO_TOKEN);

    fake_pcsc_insert(READER0, card_fn, &f->cards[0]);
    assert_true(wait_events(f, 3, 2000));
    struct certs_res again = {0};
    assert_int_equal(list_certs(f, "fake:1234", &again), UK_OK);
    assert_true(run_until(f, pred_calls, &again, 2000));
    assert_int_equal(again.err, UK_OK);
    assert_int_equal(again.n, 2);
}

static void test_token_empty_answer_of_a_vanished_card_is_card_removed(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    fake_pcsc_drop_after(READER0, 0, true); /* vpcd: SCARD_S_SUCCESS with no bytes */
    struct sign_res r = {0};
    assert_int_equal(sign(f, "fake:1234", PIN, &r), UK_OK);
    assert_true(run_until(f, pred_sign, &r, 3000));
    assert_int_equal(r.err, UK_E_CARD_REMOVED);
}

static void test_token_jobs_queued_for_a_removed_card_do_not_touch_the_card(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    fake_pcsc_set_delay(READER0, 20);
    struct sign_res r[4];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 4; i++)
        assert_int_equal(sign(f, "fake:1234", PIN, &r[i]), UK_OK);
    spin(f, 10);
    fake_pcsc_remove(READER0);
    assert_true(run_until(f, pred_sign, &r[3], 3000));
    for (int i = 1; i < 4; i++)
        assert_int_equal(r[i].err, UK_E_CARD_REMOVED);
    assert_true(r[0].err == UK_OK || r[0].err == UK_E_CARD_REMOVED);
}

static void test_token_reset_by_another_program_reconnects_and_retries(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    fake_pcsc_fail("SCardTransmit", (long)SCARD_W_RESET_CARD, 1);
    unsigned rc0 = fake_pcsc_calls("SCardReconnect");
    struct certs_res r = {0};
    assert_int_equal(list_certs(f, "fake:1234", &r), UK_OK);
    assert_true(run_until(f, pred_calls, &r, 2000));
    assert_int_equal(r.err, UK_OK);
    assert_int_equal(r.n, 2);
    assert_int_equal(fake_pcsc_calls("SCardReconnect") - rc0, 1);
    assert_int_equal(atomic_load(&opens), 2); /* the driver was opened again */
}

static void test_token_sharing_violation_for_a_few_attempts_then_success(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 2000);
    fake_pcsc_fail("SCardConnect", (long)SCARD_E_SHARING_VIOLATION, 3);
    unsigned cn = fake_pcsc_calls("SCardConnect");
    struct certs_res r = {0};
    assert_int_equal(list_certs(f, "fake:1234", &r), UK_OK);
    assert_true(run_until(f, pred_calls, &r, 3000));
    assert_int_equal(r.err, UK_OK);
    assert_int_equal(fake_pcsc_calls("SCardConnect") - cn, 4);
}

static void test_token_card_held_exclusively_is_busy_after_bounded_retry(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 300);
    fake_pcsc_set_exclusive(READER0, true);
    struct certs_res r = {0};
    uint64_t t0 = uk__now_ms();
    unsigned cn = fake_pcsc_calls("SCardConnect");
    assert_int_equal(list_certs(f, "fake:1234", &r), UK_OK);
    assert_true(run_until(f, pred_calls, &r, 3000));
    uint64_t took = uk__now_ms() - t0;
    assert_int_equal(r.err, UK_E_CARD_BUSY);
    assert_true(took >= 290 && took < 1500);
    assert_true(fake_pcsc_calls("SCardConnect") - cn >= 3); /* retried with back-off */
    assert_true(fake_pcsc_calls("SCardConnect") - cn < 20); /* ... not in a busy loop */
    assert_true(log_has("reader '" READER0 "' is held exclusively by another program"));
    assert_true(log_has("SCARD_E_SHARING_VIOLATION"));

    fake_pcsc_set_exclusive(READER0, false);
    struct certs_res ok = {0};
    assert_int_equal(list_certs(f, "fake:1234", &ok), UK_OK);
    assert_true(run_until(f, pred_calls, &ok, 2000));
    assert_int_equal(ok.err, UK_OK);
    assert_int_equal(f->n_evs, 1); /* being held is not a card event */
}

static void test_token_card_held_at_insertion_is_identified_after_release(void **state)
{
    struct fx *f = *state;
    fake_pcsc_add_reader(READER0);
    fake_pcsc_insert(READER0, card_fn, &f->cards[0]);
    fake_pcsc_set_exclusive(READER0, true);
    start(f, 100);
    spin(f, 400);
    assert_int_equal(f->n_evs, 0);
    fake_pcsc_set_exclusive(READER0, false);
    assert_true(wait_events(f, 1, 3000));
    assert_int_equal(f->evs[0].ev, UK_TOKEN_INSERTED);
}

static void test_token_pcscd_gone_and_back_is_recovered_without_restart(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    fake_pcsc_set_service(false);
    assert_true(wait_events(f, 2, 2000));
    assert_int_equal(f->evs[1].ev, UK_TOKEN_REMOVED);
    uk_token_summary *list = NULL;
    size_t n = 0;
    assert_int_equal(uk_tokens_list(f->t, &list, &n), UK_E_NO_SERVICE);
    struct certs_res r = {0};
    assert_int_equal(list_certs(f, "fake:1234", &r), UK_E_NO_SERVICE);
    spin(f, 300);
    unsigned est = fake_pcsc_calls("SCardEstablishContext");
    spin(f, 300);
    /* Back-off: a few attempts, not a busy loop. */
    assert_true(fake_pcsc_calls("SCardEstablishContext") - est <= 4);

    fake_pcsc_set_service(true);
    assert_true(wait_events(f, 3, 4000));
    assert_int_equal(f->evs[2].ev, UK_TOKEN_INSERTED);
    assert_string_equal(f->evs[2].s.id, "fake:1234");
    assert_true(log_has("pcscd is back"));
    /* The worker's context from before is dead too; it makes a new one. */
    assert_int_equal(list_certs(f, "fake:1234", &r), UK_OK);
    assert_true(run_until(f, pred_calls, &r, 2000));
    assert_int_equal(r.err, UK_OK);
}

static void test_token_starts_without_pcscd_and_finds_it_later(void **state)
{
    struct fx *f = *state;
    fake_pcsc_add_reader(READER0);
    fake_pcsc_insert(READER0, card_fn, &f->cards[0]);
    fake_pcsc_set_service(false);
    start(f, 0);
    spin(f, 150);
    uk_token_summary *list = NULL;
    size_t n = 0;
    assert_int_equal(uk_tokens_list(f->t, &list, &n), UK_E_NO_SERVICE);
    fake_pcsc_set_service(true);
    assert_true(wait_events(f, 1, 4000));
    assert_int_equal(f->evs[0].ev, UK_TOKEN_INSERTED);
}

static void test_token_waits_for_the_pcscd_socket_instead_of_polling(void **state)
{
    struct fx *f = *state;
    char dir[] = "/tmp/uk-test-token.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sock[sizeof(dir) + 16];
    snprintf(sock, sizeof(sock), "%s/pcscd.comm", dir);
    assert_int_equal(setenv("PCSCLITE_CSOCK_NAME", sock, 1), 0);
    fake_pcsc_add_reader(READER0);
    fake_pcsc_insert(READER0, card_fn, &f->cards[0]);
    fake_pcsc_set_service(false);
    start(f, 0);
    /* Quick retries for 100+200+400+800+1600 ms, then it watches the socket's directory. */
    spin(f, 3600);
    assert_true(log_has("waiting for pcscd's socket"));
    unsigned est = fake_pcsc_calls("SCardEstablishContext");
    spin(f, 1500);
    assert_int_equal(fake_pcsc_calls("SCardEstablishContext"), est); /* no polling */

    fake_pcsc_set_service(true);
    FILE *fp = fopen(sock, "w"); /* pcscd's socket appears */
    assert_non_null(fp);
    fclose(fp);
    uint64_t t0 = uk__now_ms();
    assert_true(wait_events(f, 1, 2000));
    assert_int_equal(f->evs[0].ev, UK_TOKEN_INSERTED);
    assert_true(f->evs[0].at_ms - t0 < 500);
    unlink(sock);
    rmdir(dir);
    assert_int_equal(setenv("PCSCLITE_CSOCK_NAME", "/nonexistent-uk-test/pcscd.comm", 1), 0);
}

/* ---- tests: internal operations (renewal hook) -------------------------------------------- */

static void on_done_int(void *arg, int err)
{
    int *p = arg;
    p[0]++;
    p[1] = err;
}

static void test_token_put_cert_emits_changed_and_drops_the_cache(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    struct certs_res r1 = {0}, r2 = {0};
    assert_int_equal(list_certs(f, "fake:1234", &r1), UK_OK);
    assert_true(run_until(f, pred_calls, &r1, 2000));

    int done[2] = {0, 0};
    static const uint8_t der[] = {0x30, 0x03, 0x02, 0x01, 0x09};
    assert_int_equal(
        uk__tokens_put_cert(f->t, "fake:1234", "01", der, sizeof(der), on_done_int, done), UK_OK);
    assert_true(wait_int(f, &done[0], 1, 2000));
    assert_int_equal(done[1], UK_OK);
    assert_int_equal(f->n_evs, 2);
    assert_int_equal(f->evs[1].ev, UK_TOKEN_CHANGED);
    assert_string_equal(f->evs[1].s.id, "fake:1234");

    unsigned tx = fake_pcsc_calls("SCardTransmit");
    assert_int_equal(list_certs(f, "fake:1234", &r2), UK_OK);
    assert_true(run_until(f, pred_calls, &r2, 2000));
    assert_int_equal(r2.der0[4], 9);
    assert_int_equal(fake_pcsc_calls("SCardTransmit") - tx, 2);
}

/* ---- tests: stop ------------------------------------------------------------------------- */

static void test_token_stop_answers_every_callback_exactly_once(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 0);
    struct certs_res warm = {0};
    assert_int_equal(list_certs(f, "fake:1234", &warm), UK_OK);
    assert_true(run_until(f, pred_calls, &warm, 2000));

    fake_pcsc_set_delay(READER0, 30);
    struct sign_res s[10];
    struct certs_res w[3];
    memset(s, 0, sizeof(s));
    memset(w, 0, sizeof(w));
    for (int i = 0; i < 10; i++)
        assert_int_equal(sign(f, "fake:1234", PIN, &s[i]), UK_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(list_certs(f, "fake:1234", &w[i]), UK_OK); /* warm: deferred */
    spin(f, 20);
    stop(f);
    int cancelled = 0;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(s[i].calls, 1);
        cancelled += s[i].err == UK_E_CANCELLED;
    }
    assert_true(cancelled >= 8);
    for (int i = 0; i < 3; i++)
        assert_int_equal(w[i].calls, 1);
}

static void test_token_stop_ends_a_busy_wait_promptly(void **state)
{
    struct fx *f = *state;
    start_with_card(f, 10000);
    fake_pcsc_set_exclusive(READER0, true);
    struct certs_res r = {0};
    assert_int_equal(list_certs(f, "fake:1234", &r), UK_OK);
    spin(f, 100);
    uint64_t t0 = uk__now_ms();
    stop(f);
    assert_true(uk__now_ms() - t0 < 1000);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, UK_E_CANCELLED);
}

static void test_token_stop_while_pcscd_is_away_is_prompt(void **state)
{
    struct fx *f = *state;
    fake_pcsc_set_service(false);
    start(f, 0);
    spin(f, 50);
    uint64_t t0 = uk__now_ms();
    stop(f);
    assert_true(uk__now_ms() - t0 < 1000);
}

static void test_token_stop_right_after_start(void **state)
{
    struct fx *f = *state;
    fake_pcsc_add_reader(READER0);
    fake_pcsc_insert(READER0, card_fn, &f->cards[0]);
    start(f, 0);
    stop(f);
    assert_int_equal(f->n_evs, 0);
}

/* ---- tests: SCARD_* mapping ------------------------------------------------------------------ */

static void test_token_pcsc_codes_map_to_reasons_and_log_once(void **state)
{
    (void)state;
    static const struct {
        long rv;
        int err;
        const char *name;
    } cases[] = {
        {(long)SCARD_E_NO_SERVICE, UK_E_NO_SERVICE, "SCARD_E_NO_SERVICE"},
        {(long)SCARD_E_SERVICE_STOPPED, UK_E_NO_SERVICE, "SCARD_E_SERVICE_STOPPED"},
        {(long)SCARD_F_COMM_ERROR, UK_E_NO_SERVICE, "SCARD_F_COMM_ERROR"},
        {(long)SCARD_E_NO_READERS_AVAILABLE, UK_E_NO_READER, "SCARD_E_NO_READERS_AVAILABLE"},
        {(long)SCARD_E_UNKNOWN_READER, UK_E_NO_READER, "SCARD_E_UNKNOWN_READER"},
        {(long)SCARD_E_READER_UNAVAILABLE, UK_E_NO_READER, "SCARD_E_READER_UNAVAILABLE"},
        {(long)SCARD_W_REMOVED_CARD, UK_E_CARD_REMOVED, "SCARD_W_REMOVED_CARD"},
        {(long)SCARD_E_NO_SMARTCARD, UK_E_CARD_REMOVED, "SCARD_E_NO_SMARTCARD"},
        {(long)SCARD_W_RESET_CARD, UK_E_CARD_RESET, "SCARD_W_RESET_CARD"},
        {(long)SCARD_E_SHARING_VIOLATION, UK_E_CARD_BUSY, "SCARD_E_SHARING_VIOLATION"},
        {(long)SCARD_E_TIMEOUT, UK_E_TIMEOUT, "SCARD_E_TIMEOUT"},
        {(long)SCARD_E_CANCELLED, UK_E_CANCELLED, "SCARD_E_CANCELLED"},
        {(long)SCARD_W_UNRESPONSIVE_CARD, UK_E_CARD_ERROR, "SCARD_W_UNRESPONSIVE_CARD"},
        {(long)SCARD_E_NOT_TRANSACTED, UK_E_CARD_ERROR, "SCARD_E_NOT_TRANSACTED"},
        {(long)SCARD_E_INSUFFICIENT_BUFFER, UK_E_LIMIT_EXCEEDED, "SCARD_E_INSUFFICIENT_BUFFER"},
        {(long)SCARD_E_NO_MEMORY, UK_E_NO_MEMORY, "SCARD_E_NO_MEMORY"},
        {(long)SCARD_E_INVALID_HANDLE, UK_E_INTERNAL, "SCARD_E_INVALID_HANDLE"},
        {(long)0x801000F0, UK_E_CARD_ERROR, "SCARD_UNKNOWN"},
    };
    assert_int_equal(uk__pcsc_err((long)SCARD_S_SUCCESS, "SCardConnect", READER0), UK_OK);
    assert_int_equal(log_len, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        log_clear();
        int line = __LINE__ + 1;
        int err = uk__pcsc_err(cases[i].rv, "SCardConnect", READER0);
        assert_int_equal(err, cases[i].err);
        assert_true(uk_err_known(err));
        assert_string_equal(uk__pcsc_name(cases[i].rv), cases[i].name);
        char want[256];
        snprintf(want, sizeof(want), "SCardConnect on '%s': %s (0x%08lX) -> %s", READER0,
                 cases[i].name, (unsigned long)(uint32_t)cases[i].rv, uk_err_name(err));
        assert_true(log_has(want));
        snprintf(want, sizeof(want), "test_token.c:%d test_token_pcsc_codes_map", line);
        assert_true(log_has(want));
        /* One line. */
        assert_non_null(strchr(log_buf, '\n'));
        assert_null(strchr(strchr(log_buf, '\n') + 1, '\n'));
    }
}

int main(void)
{
    uv_mutex_init(&log_mu);
    /* The monitor watches for this socket while "pcscd" is away; keep it off /run. */
    setenv("PCSCLITE_CSOCK_NAME", "/nonexistent-uk-test/pcscd.comm", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_card_present_at_start_is_inserted_with_serial_id,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_remove_and_insert_emit_events_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_token_quick_swap_between_two_looks_is_removed_then_inserted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_reader_coming_and_going_through_pnp, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token_unknown_card_is_listed_but_not_inserted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token_without_serial_is_named_by_reader_number, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token_idle_layer_makes_no_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_warm_list_certs_sends_no_apdu_and_answers_later,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_cache_dropped_on_card_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_concurrent_cold_list_certs_share_one_read, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token_unknown_token_is_refused_without_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token_sign_verifies_pin_and_signs_in_one_transaction,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_sign_wrong_pin_reports_retries_and_changes_token,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_sign_with_blocked_pin_reports_locked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token_sign_refuses_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_token_32_concurrent_signs_are_all_answered_one_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_card_removed_mid_operation_reports_card_removed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_empty_answer_of_a_vanished_card_is_card_removed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_token_jobs_queued_for_a_removed_card_do_not_touch_the_card, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_reset_by_another_program_reconnects_and_retries,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_token_sharing_violation_for_a_few_attempts_then_success, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_token_card_held_exclusively_is_busy_after_bounded_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_token_card_held_at_insertion_is_identified_after_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_pcscd_gone_and_back_is_recovered_without_restart,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_starts_without_pcscd_and_finds_it_later, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token_waits_for_the_pcscd_socket_instead_of_polling,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_put_cert_emits_changed_and_drops_the_cache,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_stop_answers_every_callback_exactly_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token_stop_ends_a_busy_wait_promptly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_stop_while_pcscd_is_away_is_prompt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token_stop_right_after_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_pcsc_codes_map_to_reasons_and_log_once, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
