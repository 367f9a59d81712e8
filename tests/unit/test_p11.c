/*
 * test_p11.c - PKCS#11 modules through the token layer: SoftHSM2 (a token
 * made per test in its own SOFTHSM2_CONF and token dir, a key and
 * certificate imported with softhsm2-util and pkcs11-tool), and broken
 * modules (tests/p11/fake_p11.c) next to it. PC/SC is the fake libpcsclite
 * with no readers, so every token here comes from a module.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <uv.h>

#include "fake_pcsclite.h"
#include "token_test_util.h"
#include "uk_crypto.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_p11.h"
#include "uk_secret.h"
#include "uk_token.h"
#include "uk_token_internal.h"

#define SOFTHSM "/usr/lib/softhsm/libsofthsm2.so"
#define LABEL   "ukeyd-test"
#define PIN     "123456"

static const uk_driver *const drivers[] = {&uk_driver_p11};

/* ---- fixture ------------------------------------------------------------------ */

struct fx {
    uv_loop_t loop;
    uk_tokens *t;
    bool stopped;
    char dir[64];
    uint8_t cert[4096];
    size_t cert_len;
    uk_token_summary ours; /* the INSERTED summary of the SoftHSM token */
    bool have_ours;
    uk_token_summary fake; /* the sparse fake module's token */
    bool have_fake;
    uk_token_summary dup; /* the PC/SC token of the dedup test */
    bool have_dup;
    unsigned removed_ours; /* REMOVED events of a token labelled LABEL */
};

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    assert_int_equal(rc, 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    fake_pcsc_reset();
    log_clear();
    uk_log_set_level(UK_LOG_LEVEL_DEBUG);
    uk_log_set_sink(log_sink, NULL);
    snprintf(f->dir, sizeof(f->dir), "/tmp/ukeyd-p11-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char conf[128];
    snprintf(conf, sizeof(conf), "%s/softhsm2.conf", f->dir);
    sh("mkdir %s/tokens && printf 'directories.tokendir = %s/tokens\\nobjectstore.backend = "
       "file\\nlog.level = ERROR\\n' > %s",
       f->dir, f->dir, conf);
    assert_int_equal(setenv("SOFTHSM2_CONF", conf, 1), 0);
    sh("cd %s && softhsm2-util --init-token --free --label " LABEL " --so-pin 12345678 --pin " PIN
       " >/dev/null"
       " && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem"
       " -subj /CN=p11-test -days 30 2>/dev/null"
       " && openssl pkcs8 -topk8 -nocrypt -in key.pem -out key8.pem"
       " && openssl x509 -in cert.pem -outform DER -out cert.der"
       " && softhsm2-util --import key8.pem --token " LABEL " --label rsa --id 01 --pin " PIN
       " >/dev/null"
       " && pkcs11-tool --module " SOFTHSM " --token-label " LABEL " --login --pin " PIN
       " --write-object cert.der --type cert --id 01 --label rsa >/dev/null 2>&1",
       f->dir);
    char path[128];
    snprintf(path, sizeof(path), "%s/cert.der", f->dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    f->cert_len = fread(f->cert, 1, sizeof(f->cert), fp);
    fclose(fp);
    assert_true(f->cert_len > 100);
    *state = f;
    return 0;
}

static void on_stopped(void *ctx)
{
    ((struct fx *)ctx)->stopped = true;
}

static bool pred_flag(void *arg)
{
    return *(const bool *)arg;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->t != NULL) {
        uk_tokens_stop(f->t, on_stopped, f);
        assert_true(loop_run_until(&f->loop, pred_flag, &f->stopped, 5000));
    }
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    sh("rm -rf %s", f->dir);
    unsetenv("SOFTHSM2_CONF");
    uk_log_set_sink(NULL, NULL);
    uk_log_set_level(UK_LOG_LEVEL_INFO);
    free(f);
    return 0;
}

static void on_event(void *ctx, uk_token_event ev, const uk_token_summary *s)
{
    struct fx *f = ctx;
    if (ev == UK_TOKEN_REMOVED && strcmp(s->identity.label, LABEL) == 0) {
        f->removed_ours++;
        f->have_ours = false;
    }
    if (ev == UK_TOKEN_REMOVED && strcmp(s->identity.label, "fake token") == 0)
        f->have_fake = false;
    if (ev != UK_TOKEN_INSERTED)
        return;
    if (strcmp(s->driver, "dup") == 0) {
        f->dup = *s;
        f->have_dup = true;
        return;
    }
    if (strcmp(s->identity.label, LABEL) == 0) {
        f->ours = *s;
        f->have_ours = true;
    } else if (strcmp(s->identity.label, "fake token") == 0) {
        f->fake = *s;
        f->have_fake = true;
    }
}

static void start_with(struct fx *f, const uk_tokens_module *mods, size_t n,
                       const uk_driver *const *drv, size_t n_drv)
{
    uk_tokens_options o;
    memset(&o, 0, sizeof(o));
    o.loop = &f->loop;
    o.on_event = on_event;
    o.ctx = f;
    o.modules = mods;
    o.n_modules = n;
    assert_int_equal(uk__tokens_start_with(&o, drv, n_drv, &f->t), UK_OK);
}

static void start(struct fx *f, const uk_tokens_module *mods, size_t n)
{
    start_with(f, mods, n, drivers, 1);
}

static void start_softhsm(struct fx *f)
{
    static const uk_tokens_module mods[] = {{.path = SOFTHSM, .name = "SoftHSM"}};
    start(f, mods, 1);
    assert_true(loop_run_until(&f->loop, pred_flag, &f->have_ours, 5000));
}

/* ---- callbacks -------------------------------------------------------------- */

struct certs_res {
    bool done;
    int err;
    size_t n;
    uk_token_cert certs[4];
    uint8_t der[4][4096];
};

static void on_certs(void *arg, int err, const uk_token_cert *certs, size_t n)
{
    struct certs_res *r = arg;
    r->done = true;
    r->err = err;
    r->n = n;
    for (size_t i = 0; i < n && i < 4; i++) {
        r->certs[i] = certs[i];
        if (certs[i].der != NULL && certs[i].der_len <= sizeof(r->der[i]))
            memcpy(r->der[i], certs[i].der, certs[i].der_len);
        r->certs[i].der = NULL;
    }
}

static struct certs_res list_certs(struct fx *f, const char *id)
{
    struct certs_res r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(uk_tokens_list_certs(f->t, id, on_certs, &r), UK_OK);
    assert_true(loop_run_until(&f->loop, pred_flag, &r.done, 5000));
    return r;
}

struct sign_res {
    bool done;
    int err, retries;
    uint8_t sig[1024];
    size_t sig_len;
};

static void on_sign(void *arg, int err, int retries, const uint8_t *sig, size_t len)
{
    struct sign_res *r = arg;
    r->done = true;
    r->err = err;
    r->retries = retries;
    if (sig != NULL && len <= sizeof(r->sig)) {
        memcpy(r->sig, sig, len);
        r->sig_len = len;
    }
}

static struct sign_res sign(struct fx *f, const char *id, const char *key, uk_sig_scheme scheme,
                            const uint8_t *digest, const char *pin)
{
    struct sign_res r;
    memset(&r, 0, sizeof(r));
    uk_sign_req req;
    memset(&req, 0, sizeof(req));
    snprintf(req.key_id, sizeof(req.key_id), "%s", key);
    req.scheme = scheme;
    req.hash = UK_HASH_SHA256;
    req.digest = digest;
    req.digest_len = 32;
    uk_secret *p = uk_secret_new(pin, strlen(pin));
    assert_non_null(p);
    assert_int_equal(uk_tokens_sign(f->t, id, &req, p, on_sign, &r), UK_OK);
    assert_true(loop_run_until(&f->loop, pred_flag, &r.done, 10000));
    return r;
}

/* Verifies sig over digest with the public key of a certificate or SPKI (DER). */
static bool verify(const uint8_t *der, size_t len, bool is_cert, uk_sig_scheme scheme,
                   const uint8_t *digest, const uint8_t *sig, size_t sig_len)
{
    const unsigned char *p = der;
    EVP_PKEY *pk = NULL;
    if (is_cert) {
        X509 *x = d2i_X509(NULL, &p, (long)len);
        assert_non_null(x);
        pk = X509_get_pubkey(x);
        X509_free(x);
    } else {
        pk = d2i_PUBKEY(NULL, &p, (long)len);
    }
    assert_non_null(pk);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
    if (scheme != UK_SIG_ECDSA) {
        assert_int_equal(EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, scheme == UK_SIG_RSA_PSS
                                                               ? RSA_PKCS1_PSS_PADDING
                                                               : RSA_PKCS1_PADDING),
                         1);
        if (scheme == UK_SIG_RSA_PSS)
            assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST), 1);
    }
    int ok = EVP_PKEY_verify(ctx, sig, sig_len, digest, 32);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return ok == 1;
}

static void digest_of(const char *msg, uint8_t out[32])
{
    assert_int_equal(uk_crypto_digest(UK_CRYPTO_SHA256, (const uint8_t *)msg, strlen(msg), out, 32),
                     UK_OK);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_p11_softhsm_token_is_listed_next_to_readers(void **state)
{
    struct fx *f = *state;
    start_softhsm(f);
    assert_int_equal(strncmp(f->ours.id, "p11:", 4), 0);
    assert_string_equal(f->ours.driver, "p11");
    assert_string_equal(f->ours.identity.model, "SoftHSM v2");
    assert_int_equal(strncmp(f->ours.reader, "SoftHSM: ", 9), 0);
    assert_true(f->ours.present);
    uk_token_summary *all = NULL;
    size_t n = 0;
    assert_int_equal(uk_tokens_list(f->t, &all, &n), UK_OK);
    /* our token and SoftHSM's free slot (present, not initialised: no id) */
    assert_int_equal(n, 2);
    size_t with_id = 0;
    for (size_t i = 0; i < n; i++) {
        with_id += all[i].id[0] != '\0';
        if (all[i].id[0] == '\0')
            assert_true(all[i].present);
    }
    assert_int_equal(with_id, 1);
    free(all);
}

static void test_p11_list_certs_returns_the_imported_certificate_under_its_cka_id(void **state)
{
    struct fx *f = *state;
    start_softhsm(f);
    struct certs_res r = list_certs(f, f->ours.id);
    assert_int_equal(r.err, UK_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.certs[0].key_id, "01");
    assert_int_equal(r.certs[0].error, UK_OK);
    assert_int_equal(r.certs[0].der_len, f->cert_len);
    assert_memory_equal(r.der[0], f->cert, f->cert_len);
}

static void test_p11_sign_rsa_pkcs1_and_pss_verify_with_openssl(void **state)
{
    struct fx *f = *state;
    start_softhsm(f);
    uint8_t d[32];
    digest_of("sign me", d);
    struct sign_res r = sign(f, f->ours.id, "01", UK_SIG_RSA_PKCS1, d, PIN);
    assert_int_equal(r.err, UK_OK);
    assert_int_equal(r.sig_len, 256);
    assert_true(verify(f->cert, f->cert_len, true, UK_SIG_RSA_PKCS1, d, r.sig, r.sig_len));
    r = sign(f, f->ours.id, "01", UK_SIG_RSA_PSS, d, PIN);
    assert_int_equal(r.err, UK_OK);
    assert_true(verify(f->cert, f->cert_len, true, UK_SIG_RSA_PSS, d, r.sig, r.sig_len));
    /* a signature of other data does not verify: the check above can fail */
    uint8_t other[32];
    digest_of("something else", other);
    assert_false(verify(f->cert, f->cert_len, true, UK_SIG_RSA_PSS, other, r.sig, r.sig_len));
}

struct pub_op {
    char key_id[UK_KEY_ID_MAX];
    uint8_t *spki;
    size_t spki_len;
    bool done;
    int err;
};

static int pub_body(void *arg, const uk_driver *d, void *st, uk_card *card)
{
    struct pub_op *p = arg;
    return d->get_public_key(st, card, p->key_id, &p->spki, &p->spki_len);
}

static void pub_done(void *arg, int err)
{
    struct pub_op *p = arg;
    p->err = err;
    p->done = true;
}

/* A key with CKA_ALWAYS_AUTHENTICATE (pkcs11-tool --always-auth): the driver logs in again
 * (CKU_CONTEXT_SPECIFIC) between C_SignInit and C_Sign with the PIN of this operation. */
static void test_p11_always_authenticate_key_signs(void **state)
{
    struct fx *f = *state;
    sh("cd %s && pkcs11-tool --module " SOFTHSM " --token-label " LABEL " --login --pin " PIN
       " --keypairgen --key-type EC:prime256v1 --id 03 --label always --always-auth"
       " >/dev/null 2>&1",
       f->dir);
    start_softhsm(f);
    uint8_t d[32];
    digest_of("always", d);
    struct sign_res r = sign(f, f->ours.id, "03", UK_SIG_ECDSA, d, PIN);
    assert_int_equal(r.err, UK_OK);
    assert_true(log_has("key 03 wants the PIN for each signature"));
    struct pub_op p;
    memset(&p, 0, sizeof(p));
    strcpy(p.key_id, "03");
    assert_int_equal(uk__tokens_run(f->t, f->ours.id, 0, pub_body, pub_done, &p), UK_OK);
    assert_true(loop_run_until(&f->loop, pred_flag, &p.done, 5000));
    assert_int_equal(p.err, UK_OK);
    assert_true(verify(p.spki, p.spki_len, false, UK_SIG_ECDSA, d, r.sig, r.sig_len));
    free(p.spki);
    /* a wrong PIN fails at the first login and spends nothing more */
    r = sign(f, f->ours.id, "03", UK_SIG_ECDSA, d, "000000");
    assert_int_equal(r.err, UK_E_PIN_INCORRECT);
}

/* OpenSC and many vendors use 20-byte CKA_IDs (a SHA-1): too long for a key id, so they are
 * named "h" + 7 bytes of their SHA-256 in hex, and every operation finds them by that name. */
static void test_p11_long_cka_id_is_named_by_its_hash_and_signs(void **state)
{
    struct fx *f = *state;
    static const char long_id[] = "00112233445566778899aabbccddeeff01234567";
    sh("cd %s && softhsm2-util --import key8.pem --token " LABEL " --label long --id %s --pin " PIN
       " >/dev/null && pkcs11-tool --module " SOFTHSM " --token-label " LABEL " --login --pin " PIN
       " --write-object cert.der --type cert --id %s >/dev/null 2>&1",
       f->dir, long_id, long_id);
    uint8_t raw[20], md[32];
    for (size_t i = 0; i < sizeof(raw); i++)
        assert_int_equal(sscanf(long_id + 2 * i, "%2hhx", &raw[i]), 1);
    assert_int_equal(uk_crypto_digest(UK_CRYPTO_SHA256, raw, sizeof(raw), md, sizeof(md)), UK_OK);
    char want[UK_KEY_ID_MAX] = "h";
    for (size_t i = 0; i < 7; i++)
        snprintf(want + 1 + 2 * i, 3, "%02x", md[i]);
    start_softhsm(f);
    struct certs_res c = list_certs(f, f->ours.id);
    assert_int_equal(c.err, UK_OK);
    assert_int_equal(c.n, 2);
    bool found = false;
    for (size_t i = 0; i < c.n; i++)
        found = found || strcmp(c.certs[i].key_id, want) == 0;
    assert_true(found);
    assert_int_equal(strlen(want), UK_KEY_ID_MAX - 1);
    uint8_t d[32];
    digest_of("long id", d);
    struct sign_res r = sign(f, f->ours.id, want, UK_SIG_RSA_PKCS1, d, PIN);
    assert_int_equal(r.err, UK_OK);
    assert_true(verify(f->cert, f->cert_len, true, UK_SIG_RSA_PKCS1, d, r.sig, r.sig_len));
}

static void test_p11_wrong_pin_is_pin_incorrect_and_unknown_key_costs_no_try(void **state)
{
    struct fx *f = *state;
    start_softhsm(f);
    uint8_t d[32];
    digest_of("x", d);
    struct sign_res r = sign(f, f->ours.id, "01", UK_SIG_RSA_PKCS1, d, "654321");
    assert_int_equal(r.err, UK_E_PIN_INCORRECT);
    r = sign(f, f->ours.id, "77", UK_SIG_RSA_PKCS1, d, "654321");
    assert_int_equal(r.err, UK_E_KEY_NOT_FOUND);
    r = sign(f, f->ours.id, "01", UK_SIG_ECDSA, d, PIN); /* RSA key, ECDSA asked */
    assert_int_equal(r.err, UK_E_NOT_SUPPORTED);
    r = sign(f, f->ours.id, "01", UK_SIG_RSA_PKCS1, d, PIN);
    assert_int_equal(r.err, UK_OK);
}

/* The renewal primitives on the worker, as the renewal service calls them. */
struct gen_op {
    uk_key_alg alg;
    char key_id[UK_KEY_ID_MAX];
    uint8_t *spki;
    size_t spki_len;
    uint8_t *spki2;
    size_t spki2_len;
    unsigned caps;
    const uint8_t *cert;
    size_t cert_len;
    uint8_t rec[64];
    size_t rec_len;
    bool done;
    int err;
};

static int gen_body(void *arg, const uk_driver *d, void *st, uk_card *card)
{
    struct gen_op *g = arg;
    uk_secret *pin = uk_secret_new(PIN, strlen(PIN));
    int retries = -1;
    int rc = d->get_caps(st, card, &g->caps);
    if (rc == UK_OK)
        rc = d->verify_pin(st, card, pin, &retries);
    uk_secret_free(pin);
    if (rc == UK_OK)
        rc = d->find_staging_slot(st, card, g->key_id);
    if (rc == UK_OK)
        rc = d->generate_key(st, card, g->key_id, g->alg, &g->spki, &g->spki_len);
    if (rc == UK_OK)
        rc = d->get_public_key(st, card, g->key_id, &g->spki2, &g->spki2_len);
    if (rc == UK_OK)
        rc = d->put_cert(st, card, g->key_id, g->cert, g->cert_len);
    uint8_t blob[2 + UK_KEY_ID_MAX] = {UK_RECORD_TAG_KEY_ID, (uint8_t)strlen(g->key_id)};
    memcpy(blob + 2, g->key_id, strlen(g->key_id));
    if (rc == UK_OK)
        rc = d->write_record(st, card, blob, 2 + strlen(g->key_id));
    if (rc == UK_OK)
        rc = d->read_record(st, card, g->rec, sizeof(g->rec), &g->rec_len);
    d->logout(st, card);
    return rc;
}

static int cleanup_body(void *arg, const uk_driver *d, void *st, uk_card *card)
{
    struct gen_op *g = arg;
    uk_secret *pin = uk_secret_new(PIN, strlen(PIN));
    int retries = -1;
    int rc = d->verify_pin(st, card, pin, &retries);
    uk_secret_free(pin);
    if (rc == UK_OK)
        rc = d->delete_cert(st, card, g->key_id);
    if (rc == UK_OK)
        rc = d->delete_key(st, card, g->key_id);
    if (rc == UK_OK)
        rc = d->write_record(st, card, NULL, 0);
    uint8_t *spki = NULL;
    size_t len = 0;
    if (rc == UK_OK) {
        rc = d->get_public_key(st, card, g->key_id, &spki, &len);
        free(spki);
        rc = rc == UK_E_KEY_NOT_FOUND ? UK_OK : UK_E_INTERNAL; /* gone */
    }
    if (rc == UK_OK)
        rc = d->read_record(st, card, g->rec, sizeof(g->rec), &g->rec_len);
    d->logout(st, card);
    return rc;
}

/* Without the PIN a private key is invisible: delete_key says PIN_REQUIRED and changes nothing. */
static int delete_without_pin_body(void *arg, const uk_driver *d, void *st, uk_card *card)
{
    struct gen_op *g = arg;
    int rc = d->delete_key(st, card, g->key_id);
    if (rc != UK_E_PIN_REQUIRED)
        return rc == UK_OK ? UK_E_INTERNAL : rc;
    uint8_t *spki = NULL;
    size_t len = 0;
    rc = d->get_public_key(st, card, g->key_id, &spki, &len);
    if (rc == UK_OK && (len != g->spki_len || memcmp(spki, g->spki, len) != 0))
        rc = UK_E_INTERNAL; /* the key must still be there, whole */
    free(spki);
    return rc;
}

static void gen_done(void *arg, int err)
{
    struct gen_op *g = arg;
    g->err = err;
    g->done = true;
}

static void run_op(struct fx *f, uk__token_op_fn fn, struct gen_op *g)
{
    g->done = false;
    assert_int_equal(uk__tokens_run(f->t, f->ours.id, UK__OP_CHANGES_CARD, fn, gen_done, g), UK_OK);
    assert_true(loop_run_until(&f->loop, pred_flag, &g->done, 20000));
}

static void generate_sign_and_clean(struct fx *f, uk_key_alg alg, uk_sig_scheme scheme)
{
    struct gen_op g;
    memset(&g, 0, sizeof(g));
    g.alg = alg;
    g.cert = f->cert;
    g.cert_len = f->cert_len;
    run_op(f, gen_body, &g);
    assert_int_equal(g.err, UK_OK);
    assert_true(g.caps & UK_TOKEN_CAP_GENERATE);
    assert_true(g.caps & UK_TOKEN_CAP_STAGING);
    assert_true(g.caps & UK_TOKEN_CAP_ANY_KEY_ID);
    assert_true(g.caps & UK_TOKEN_CAP_DELETE_NEEDS_PIN); /* SoftHSM: CKF_LOGIN_REQUIRED */
    assert_int_equal(strlen(g.key_id), 8);               /* 4 random CKA_ID bytes */
    run_op(f, delete_without_pin_body, &g);
    assert_int_equal(g.err, UK_OK);
    assert_int_equal(g.spki_len, g.spki2_len);
    assert_memory_equal(g.spki, g.spki2, g.spki_len);
    uk_crypto_key_info ki;
    assert_int_equal(uk_crypto_spki_info(g.spki, g.spki_len, &ki), UK_OK);
    assert_int_equal(ki.type, alg == UK_KEY_RSA2048 ? UK_CRYPTO_KEY_RSA : UK_CRYPTO_KEY_EC);
    assert_int_equal(g.rec_len, 2 + strlen(g.key_id));
    assert_memory_equal(g.rec + 2, g.key_id, strlen(g.key_id));

    /* the new key signs through the ordinary path; OpenSSL checks it with the SPKI */
    uint8_t d[32];
    digest_of("new key", d);
    struct sign_res r = sign(f, f->ours.id, g.key_id, scheme, d, PIN);
    assert_int_equal(r.err, UK_OK);
    assert_true(verify(g.spki, g.spki_len, false, scheme, d, r.sig, r.sig_len));

    /* the certificate written under the new id is listed (the cache was dropped) */
    struct certs_res c = list_certs(f, f->ours.id);
    assert_int_equal(c.err, UK_OK);
    assert_int_equal(c.n, 2);
    bool found = false;
    for (size_t i = 0; i < c.n; i++)
        found = found || strcmp(c.certs[i].key_id, g.key_id) == 0;
    assert_true(found);

    run_op(f, cleanup_body, &g);
    assert_int_equal(g.err, UK_OK);
    assert_int_equal(g.rec_len, 0);
    c = list_certs(f, f->ours.id);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.certs[0].key_id, "01");
    free(g.spki);
    free(g.spki2);
}

static void test_p11_generate_ec_p256_signs_ecdsa_der_and_objects_go_away(void **state)
{
    struct fx *f = *state;
    start_softhsm(f);
    generate_sign_and_clean(f, UK_KEY_ECP256, UK_SIG_ECDSA);
}

static void test_p11_generate_rsa_signs_and_objects_go_away(void **state)
{
    struct fx *f = *state;
    start_softhsm(f);
    generate_sign_and_clean(f, UK_KEY_RSA2048, UK_SIG_RSA_PKCS1);
}

static bool pred_all_broken_logged(void *arg)
{
    struct fx *f = arg;
    return f->have_ours && f->have_fake &&
           log_has("has neither C_GetInterface nor C_GetFunctionList") &&
           log_has("C_Initialize failed") &&
           log_has("C_GetSlotList returned 50 slots into room for 2");
}

static void test_p11_broken_modules_are_reported_and_the_others_keep_working(void **state)
{
    struct fx *f = *state;
    static const uk_tokens_module mods[] = {
        {.path = FAKE_P11_NO_SYMBOLS, .name = "nosyms"},
        {.path = FAKE_P11_INIT_FAILS, .name = "initfails"},
        {.path = FAKE_P11_GARBAGE, .name = "garbage"},
        {.path = FAKE_P11_SPARSE, .name = "sparse"},
        {.path = "/nonexistent/module.so", .name = ""},
        {.path = SOFTHSM, .name = "SoftHSM"},
    };
    start(f, mods, sizeof(mods) / sizeof(mods[0]));
    assert_true(loop_run_until(&f->loop, pred_all_broken_logged, f, 8000));
    assert_true(log_has("cannot load /nonexistent/module.so"));
    assert_string_equal(f->fake.id, "p11:FAKE0001");

    /* the sparse module: garbage counts and missing functions are errors, never crashes */
    struct certs_res c = list_certs(f, f->fake.id);
    assert_int_equal(c.err, UK_E_MODULE_ERROR);
    uint8_t d[32];
    digest_of("x", d);
    struct sign_res r = sign(f, f->fake.id, "01", UK_SIG_RSA_PKCS1, d, PIN);
    assert_int_equal(r.err, UK_E_MODULE_ERROR);

    /* SoftHSM next to them works */
    c = list_certs(f, f->ours.id);
    assert_int_equal(c.err, UK_OK);
    assert_int_equal(c.n, 1);
    r = sign(f, f->ours.id, "01", UK_SIG_RSA_PKCS1, d, PIN);
    assert_int_equal(r.err, UK_OK);
}

/* A PC/SC card driver for the dedup test: any card that answers, serial "DUP". */
static int dup_probe(uk_card *card)
{
    uint8_t apdu[] = {0x00, 0xa4, 0x04, 0x00, 0x00}, resp[258];
    size_t len = 0;
    int rc = uk_card_transmit(card, apdu, sizeof(apdu), resp, sizeof(resp), &len);
    return rc == UK_OK ? UK_OK : UK_E_NOT_SUPPORTED;
}

static int dup_open(uk_card *card, const uk_driver_options *opt, void **state,
                    uk_token_identity *id)
{
    (void)card;
    (void)opt;
    *state = NULL;
    memset(id, 0, sizeof(*id));
    strcpy(id->serial, "DUP");
    strcpy(id->label, "dup");
    return UK_OK;
}

static void dup_close(void *state)
{
    (void)state;
}

static const uk_driver dup_driver = {
    .name = "dup", .probe = dup_probe, .open = dup_open, .close = dup_close};

static void ok_card(void *ctx, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
                    size_t *resp_len)
{
    (void)ctx;
    (void)apdu;
    (void)len;
    assert_true(cap >= 2);
    resp[0] = 0x90;
    resp[1] = 0x00;
    *resp_len = 2;
}

static bool pred_dedup_dup(void *arg)
{
    return ((struct fx *)arg)->have_dup;
}

static bool pred_dedup(void *arg)
{
    struct fx *f = arg;
    return f->have_dup && (log_has("not listed twice") || log_has("is now served by"));
}

static void test_p11_module_slot_showing_a_pcsc_card_is_listed_once(void **state)
{
    struct fx *f = *state;
    /* fake_p11_sparse's slot description "Fake slot" names this PC/SC reader, as OpenSC's
     * slot descriptions name theirs */
    fake_pcsc_add_reader("Fake slot 00 00");
    fake_pcsc_insert("Fake slot 00 00", ok_card, NULL);
    static const uk_tokens_module mods[] = {{.path = FAKE_P11_SPARSE, .name = "OpenSC-like"}};
    static const uk_driver *const drv[] = {&uk_driver_p11, &dup_driver};
    start_with(f, mods, 1, drv, 2);
    assert_true(loop_run_until(&f->loop, pred_dedup, f, 8000));
    assert_string_equal(f->dup.id, "dup:DUP");
    assert_false(f->have_fake); /* never inserted, or removed again */
    uk_token_summary *all = NULL;
    size_t n = 0;
    assert_int_equal(uk_tokens_list(f->t, &all, &n), UK_OK);
    assert_int_equal(n, 1); /* the PC/SC reader only: the module slot is hidden */
    assert_string_equal(all[0].id, "dup:DUP");
    free(all);
    struct certs_res c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(uk_tokens_list_certs(f->t, "p11:FAKE0001", on_certs, &c), UK_E_NO_TOKEN);
}

static void spin_ms(struct fx *f, unsigned ms);

static bool pred_fake(void *arg)
{
    return ((struct fx *)arg)->have_fake;
}

/* The one token uk_tokens_list shows, with its id in want. */
static void assert_listed_once(struct fx *f, const char *want)
{
    uk_token_summary *all = NULL;
    size_t n = 0;
    assert_int_equal(uk_tokens_list(f->t, &all, &n), UK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(all[0].id, want);
    free(all);
}

static void test_p11_atr_hint_gives_the_card_to_the_module(void **state)
{
    struct fx *f = *state;
    fake_pcsc_add_reader("Fake slot 00 00");
    fake_pcsc_insert("Fake slot 00 00", ok_card, NULL); /* ATR 3B 80 80 01 01 */
    /* the mask ignores the fourth byte */
    static const uk_tokens_module mods[] = {{.path = FAKE_P11_SPARSE,
                                             .name = "Vendor",
                                             .atr = {0x3b, 0x80, 0x80, 0x77, 0x01},
                                             .atr_mask = {0xff, 0xff, 0xff, 0x00, 0xff},
                                             .atr_len = 5}};
    static const uk_driver *const drv[] = {&uk_driver_p11, &dup_driver};
    start_with(f, mods, 1, drv, 2);
    assert_true(loop_run_until(&f->loop, pred_fake, f, 8000));
    spin_ms(f, 500);
    assert_false(f->have_dup); /* the built-in driver never identified the card */
    assert_true(log_has("the card's ATR matches a hint of module Vendor"));
    assert_listed_once(f, "p11:FAKE0001");
}

static void
test_p11_atr_hint_that_does_not_match_leaves_the_card_to_the_builtin_driver(void **state)
{
    struct fx *f = *state;
    fake_pcsc_add_reader("Fake slot 00 00");
    fake_pcsc_insert("Fake slot 00 00", ok_card, NULL);
    static const uk_tokens_module mods[] = {{.path = FAKE_P11_SPARSE,
                                             .name = "Vendor",
                                             .atr = {0x3b, 0x80, 0x80, 0x01, 0x02},
                                             .atr_mask = {0xff, 0xff, 0xff, 0xff, 0xff},
                                             .atr_len = 5}};
    static const uk_driver *const drv[] = {&uk_driver_p11, &dup_driver};
    start_with(f, mods, 1, drv, 2);
    assert_true(loop_run_until(&f->loop, pred_dedup_dup, f, 8000));
    spin_ms(f, UK_P11_RESCAN_MS + 500);
    assert_false(f->have_fake); /* the hinted module's slot is not served */
    assert_listed_once(f, "dup:DUP");
}

static void test_p11_label_hint_takes_the_card_over_from_the_builtin_driver(void **state)
{
    struct fx *f = *state;
    fake_pcsc_add_reader("Fake slot 00 00");
    fake_pcsc_insert("Fake slot 00 00", ok_card, NULL);
    static const uk_tokens_module mods[] = {
        {.path = FAKE_P11_SPARSE, .name = "Vendor", .token_label = "fake token"}};
    static const uk_driver *const drv[] = {&uk_driver_p11, &dup_driver};
    start_with(f, mods, 1, drv, 2);
    assert_true(loop_run_until(&f->loop, pred_fake, f, 8000));
    spin_ms(f, 500);
    assert_listed_once(f, "p11:FAKE0001");
}

static void test_p11_label_hint_that_does_not_match_serves_nothing(void **state)
{
    struct fx *f = *state;
    fake_pcsc_add_reader("Fake slot 00 00");
    fake_pcsc_insert("Fake slot 00 00", ok_card, NULL);
    static const uk_tokens_module mods[] = {
        {.path = FAKE_P11_SPARSE, .name = "Vendor", .token_label = "fake"}}; /* a prefix only */
    static const uk_driver *const drv[] = {&uk_driver_p11, &dup_driver};
    start_with(f, mods, 1, drv, 2);
    assert_true(loop_run_until(&f->loop, pred_dedup_dup, f, 8000));
    spin_ms(f, UK_P11_RESCAN_MS + 500);
    assert_false(f->have_fake);
    assert_listed_once(f, "dup:DUP");
}

static bool pred_never(void *arg)
{
    (void)arg;
    return false;
}

static void spin_ms(struct fx *f, unsigned ms)
{
    (void)loop_run_until(&f->loop, pred_never, f, ms);
}

static bool pred_removed(void *arg)
{
    struct fx *f = arg;
    return f->removed_ours > 0;
}

static void test_p11_token_deleted_is_removed(void **state)
{
    struct fx *f = *state;
    start_softhsm(f);
    char first[96];
    snprintf(first, sizeof(first), "%s", f->ours.id);
    sh("softhsm2-util --delete-token --token " LABEL " >/dev/null");
    assert_true(loop_run_until(&f->loop, pred_removed, f, 8000));
    struct certs_res c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(uk_tokens_list_certs(f->t, first, on_certs, &c), UK_E_NO_TOKEN);
    uk_token_summary *all = NULL;
    size_t n = 0;
    assert_int_equal(uk_tokens_list(f->t, &all, &n), UK_OK);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(all[i].id, ""); /* no token left with an id */
    free(all);
    /* SoftHSM keeps describing the dead slot as an error; that is said once, not per scan */
    spin_ms(f, 2 * UK_P11_RESCAN_MS + 500);
    assert_int_equal(log_count("C_GetTokenInfo on"), 1);
}

static void test_p11_module_paths_must_be_absolute(void **state)
{
    struct fx *f = *state;
    static const uk_tokens_module rel[] = {{.path = "libsofthsm2.so", .name = "relative"}};
    uk_tokens_options o;
    memset(&o, 0, sizeof(o));
    o.loop = &f->loop;
    o.modules = rel;
    o.n_modules = 1;
    uk_tokens *t = NULL;
    assert_int_equal(uk__tokens_start_with(&o, drivers, 1, &t), UK_E_INVALID_PARAMS);
    uk_p11_module *m = NULL;
    assert_int_equal(uk_p11_module_get("libsofthsm2.so", "x", &m), UK_E_INVALID_PARAMS);
    assert_null(m);
}

static void test_p11_one_instance_per_path_finalised_at_last_put(void **state)
{
    (void)state;
    uk_p11_module *a = NULL, *b = NULL;
    assert_int_equal(uk_p11_module_get(SOFTHSM, "a", &a), UK_OK);
    assert_int_equal(uk_p11_module_get(SOFTHSM, "b", &b), UK_OK);
    assert_ptr_equal(a, b);
    assert_string_equal(uk_p11_module_name(b), "a");
    uk_p11_module_put(a);
    uk_p11_module_put(b);
    /* loaded again after the last put: C_Initialize works again, so C_Finalize ran */
    assert_int_equal(uk_p11_module_get(SOFTHSM, "c", &a), UK_OK);
    assert_string_equal(uk_p11_module_name(a), "c");
    uk_p11_module_put(a);
}

int main(void)
{
    if (access(SOFTHSM, R_OK) != 0) {
        fprintf(stderr, "SoftHSM2 (%s) is not installed: scripts/setup installs it\n", SOFTHSM);
        return 1;
    }
    uv_mutex_init(&log_mu);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_p11_softhsm_token_is_listed_next_to_readers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_p11_list_certs_returns_the_imported_certificate_under_its_cka_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_p11_sign_rsa_pkcs1_and_pss_verify_with_openssl, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_p11_wrong_pin_is_pin_incorrect_and_unknown_key_costs_no_try, setup, teardown),
        cmocka_unit_test_setup_teardown(test_p11_always_authenticate_key_signs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_p11_long_cka_id_is_named_by_its_hash_and_signs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_p11_generate_ec_p256_signs_ecdsa_der_and_objects_go_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_p11_generate_rsa_signs_and_objects_go_away, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_p11_broken_modules_are_reported_and_the_others_keep_working, setup, teardown),
        cmocka_unit_test_setup_teardown(test_p11_module_slot_showing_a_pcsc_card_is_listed_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_p11_atr_hint_gives_the_card_to_the_module, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_p11_atr_hint_that_does_not_match_leaves_the_card_to_the_builtin_driver, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_p11_label_hint_takes_the_card_over_from_the_builtin_driver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_p11_label_hint_that_does_not_match_serves_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_p11_token_deleted_is_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_p11_module_paths_must_be_absolute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_p11_one_instance_per_path_finalised_at_last_put, setup,
                                        teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_mutex_destroy(&log_mu);
    return rc;
}
