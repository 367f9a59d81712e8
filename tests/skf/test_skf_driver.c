/*
 * test_skf_driver.c - SKF modules through the token layer (over the fake libpcsclite, no
 * readers): the soft SKF module (path in UKSKF_MODULE, its ULONG width in UK_SKF_ULONG_BYTES,
 * this file is built once per width) with devices provisioned per test by the ukskf tool
 * (UKSKF_TOOL) from keys and certificates the openssl command makes; signatures are judged by
 * OpenSSL with the GM/T 0009 ID. The adapter's session_decrypt is also driven directly (below
 * the token layer), over the soft module and over fake_skf.c.
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <uv.h>

#include "fake_pcsclite.h"
#include "skf_core.h"
#include "token_test_util.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_secret.h"
#include "uk_skf.h"
#include "uk_skf_int.h"
#include "uk_token.h"
#include "uk_token_internal.h"
#include "uk_x509.h"

#ifndef UK_SKF_ULONG_BYTES
#define UK_SKF_ULONG_BYTES 4
#endif
#define PIN    "123456"
#define SM2_ID "1234567812345678"
#define GUID   "{2F6B3C1A-8E4D-4A0B-9C7F-55E1D0A2B3C4}"

static const uk_driver *const drivers[] = {&uk_driver_skf};

struct fx {
    uv_loop_t loop;
    uk_tokens *t;
    bool stopped;
    char dir[64];
    uk_token_summary tok[2]; /* INSERTED summaries by device: [0] serial SKF-A, [1] SKF-B */
    bool have[2];
    unsigned removed[2];
    int last_retries;
};

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    assert_int_equal(rc, 0);
}

/* Device ukey0 (serial SKF-A): container "sm2" with an SM2 signing pair and an SM2 encryption
 * pair, both certified by a self-signed SM2 CA; device ukey1 (serial SKF-B): an RSA container
 * named by a GUID. 3 user PIN tries each. */
static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    fake_pcsc_reset();
    log_clear();
    uk_log_set_level(UK_LOG_LEVEL_DEBUG);
    uk_log_set_sink(log_sink, NULL);
    snprintf(f->dir, sizeof(f->dir), "/tmp/ukeyd-skf-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(setenv("UKSKF_DIR", f->dir, 1), 0);
    const char *tool = getenv("UKSKF_TOOL");
    assert_non_null(tool);
    sh("cd %s && openssl ecparam -name SM2 -genkey -noout -out ca.key"
       " && openssl req -x509 -new -key ca.key -sm3 -sigopt distid:" SM2_ID
       " -subj /CN=skf-test-ca -days 30 -out ca.pem"
       " && for k in sig enc; do openssl ecparam -name SM2 -genkey -noout -out $k.key"
       " && openssl req -new -key $k.key -sm3 -sigopt distid:" SM2_ID " -subj /CN=skf-$k"
       " -out $k.csr && openssl x509 -req -in $k.csr -CA ca.pem -CAkey ca.key -sm3"
       " -sigopt distid:" SM2_ID " -vfyopt distid:" SM2_ID " -days 30 -set_serial 7"
       " -out $k.pem 2>/dev/null; done"
       " && openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.pem"
       " -subj /CN=skf-rsa -days 30 2>/dev/null"
       " && %s provision --dir . --device ukey0 --serial SKF-A --label 'SKF test' --retries 3"
       " --container sm2 --key sig.key --cert sig.pem --enc-key enc.key --enc-cert enc.pem"
       " && %s provision --dir . --device ukey1 --serial SKF-B --retries 3"
       " --container '" GUID "' --key rsa.key --cert rsa.pem",
       f->dir, tool, tool);
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
    unsetenv("UKSKF_DIR");
    uk_log_set_sink(NULL, NULL);
    uk_log_set_level(UK_LOG_LEVEL_INFO);
    free(f);
    return 0;
}

static int dev_index(const uk_token_summary *s)
{
    if (strcmp(s->identity.serial, "SKF-A") == 0)
        return 0;
    if (strcmp(s->identity.serial, "SKF-B") == 0)
        return 1;
    return -1;
}

static void on_event(void *ctx, uk_token_event ev, const uk_token_summary *s)
{
    struct fx *f = ctx;
    int i = dev_index(s);
    if (i < 0)
        return;
    if (ev == UK_TOKEN_REMOVED) {
        f->removed[i]++;
        f->have[i] = false;
    } else {
        f->tok[i] = *s;
        f->have[i] = true;
    }
}

static void start_modules(struct fx *f, const uk_tokens_skf_module *mods, size_t n)
{
    uk_tokens_options o;
    memset(&o, 0, sizeof(o));
    o.loop = &f->loop;
    o.on_event = on_event;
    o.ctx = f;
    o.skf_modules = mods;
    o.n_skf_modules = n;
    assert_int_equal(uk__tokens_start_with(&o, drivers, 1, &f->t), UK_OK);
    assert_true(loop_run_until(&f->loop, pred_flag, &f->have[0], 5000));
    assert_true(loop_run_until(&f->loop, pred_flag, &f->have[1], 5000));
}

static void start(struct fx *f)
{
    uk_tokens_skf_module m = {
        .path = getenv("UKSKF_MODULE"), .name = "Soft SKF", .ulong_bytes = UK_SKF_ULONG_BYTES};
    assert_non_null(m.path);
    start_modules(f, &m, 1);
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
        r->certs[i].der = NULL;
        if (certs[i].der != NULL && certs[i].der_len <= sizeof(r->der[i])) {
            memcpy(r->der[i], certs[i].der, certs[i].der_len);
            r->certs[i].der = r->der[i];
        }
    }
}

static void list_certs(struct fx *f, const char *id, struct certs_res *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(uk_tokens_list_certs(f->t, id, on_certs, r), UK_OK);
    assert_true(loop_run_until(&f->loop, pred_flag, &r->done, 5000));
}

struct sign_res {
    bool done;
    int err, retries;
    uint8_t sig[1024];
    size_t sig_len;
};

static void on_sign(void *arg, int err, int retries_left, const uint8_t *sig, size_t sig_len)
{
    struct sign_res *r = arg;
    r->done = true;
    r->err = err;
    r->retries = retries_left;
    if (err == UK_OK && sig_len <= sizeof(r->sig)) {
        memcpy(r->sig, sig, sig_len);
        r->sig_len = sig_len;
    }
}

static void sign(struct fx *f, const char *id, const uk_sign_req *req, const char *pin,
                 struct sign_res *r)
{
    memset(r, 0, sizeof(*r));
    uk_secret *s = uk_secret_new(pin, strlen(pin));
    assert_non_null(s);
    assert_int_equal(uk_tokens_sign(f->t, id, req, s, on_sign, r), UK_OK);
    assert_true(loop_run_until(&f->loop, pred_flag, &r->done, 5000));
}

static const uk_token_cert *find_cert(const struct certs_res *r, const char *key_id)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->certs[i].key_id, key_id) == 0)
            return &r->certs[i];
    }
    return NULL;
}

/* Starts the soft module and returns the signing certificate of ukey0's container "sm2" (in r). */
static const uk_token_cert *start_with_sign_cert(struct fx *f, struct certs_res *r)
{
    start(f);
    list_certs(f, "skf:SKF-A", r);
    const uk_token_cert *c = find_cert(r, "sm2/sign");
    assert_non_null(c);
    return c;
}

/* e = SM3(Z || msg) for the key of cert, as the rpc layer computes it. */
static void sm2_e(const uk_token_cert *c, const uint8_t *msg, size_t n, uint8_t e[32])
{
    uk_cert_info *ci = NULL;
    assert_int_equal(uk_x509_parse(c->der, c->der_len, &ci), UK_OK);
    size_t len = 32;
    assert_int_equal(uk_x509_sm2_digest(ci->spki, ci->spki_len, msg, n, e, &len), UK_OK);
    uk_cert_info_free(ci);
}

/* OpenSSL's verdict on an SM2 signature over msg with the certificate's key and the ID id. */
static bool sm2_verifies(const uk_token_cert *c, const char *id, const uint8_t *msg, size_t n,
                         const uint8_t *sig, size_t sig_len)
{
    const unsigned char *p = c->der;
    X509 *x = d2i_X509(NULL, &p, (long)c->der_len);
    assert_non_null(x);
    EVP_PKEY *pk = X509_get0_pubkey(x);
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(pk, NULL);
    assert_true(mc != NULL && pc != NULL);
    assert_int_equal(EVP_PKEY_CTX_set1_id(pc, id, strlen(id)), 1);
    EVP_MD_CTX_set_pkey_ctx(mc, pc);
    assert_int_equal(EVP_DigestVerifyInit(mc, NULL, EVP_sm3(), NULL, pk), 1);
    bool ok = EVP_DigestVerify(mc, sig, sig_len, msg, n) == 1;
    EVP_MD_CTX_free(mc);
    EVP_PKEY_CTX_free(pc);
    X509_free(x);
    return ok;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_skf_devices_are_tokens_named_by_serial(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_string_equal(f->tok[0].id, "skf:SKF-A");
    assert_string_equal(f->tok[0].driver, "skf");
    assert_string_equal(f->tok[0].reader, "Soft SKF: ukey0");
    assert_string_equal(f->tok[0].identity.label, "SKF test");
    assert_int_equal(f->tok[0].pin_retries, 3);
    assert_string_equal(f->tok[1].id, "skf:SKF-B");
    assert_true(log_has("SKF module Soft SKF loaded from"));
    uk_token_summary *list = NULL;
    size_t n = 0;
    assert_int_equal(uk_tokens_list(f->t, &list, &n), UK_OK);
    assert_int_equal(n, 2);
    free(list);
}

static void test_skf_lists_signing_and_encryption_certificates_by_key_id(void **state)
{
    struct fx *f = *state;
    start(f);
    struct certs_res r;
    list_certs(f, "skf:SKF-A", &r);
    assert_int_equal(r.err, UK_OK);
    assert_int_equal(r.n, 2);
    const uk_token_cert *s = find_cert(&r, "sm2/sign"), *e = find_cert(&r, "sm2/enc");
    assert_non_null(s);
    assert_non_null(e);
    assert_int_equal(s->error, UK_OK);
    assert_int_equal(e->error, UK_OK);
    uk_cert_info *ci = NULL;
    assert_int_equal(uk_x509_parse(s->der, s->der_len, &ci), UK_OK);
    assert_non_null(strstr(ci->subject.rfc4514, "skf-sig"));
    uk_cert_info_free(ci);
    assert_int_equal(uk_x509_parse(e->der, e->der_len, &ci), UK_OK);
    assert_non_null(strstr(ci->subject.rfc4514, "skf-enc"));
    uk_cert_info_free(ci);
    /* A GUID container is named by its hash: "#" and 9 hex digits. */
    list_certs(f, "skf:SKF-B", &r);
    assert_int_equal(r.err, UK_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(strlen(r.certs[0].key_id), 15);
    assert_int_equal(r.certs[0].key_id[0], '#');
    assert_string_equal(r.certs[0].key_id + 10, "/sign");
}

static void test_skf_sm2_signature_verifies_with_the_gmt0009_id(void **state)
{
    struct fx *f = *state;
    struct certs_res r;
    const uk_token_cert *c = start_with_sign_cert(f, &r);
    static const uint8_t msg[] = "signed on an SKF key";
    uk_sign_req req = {.key_id = "sm2/sign", .scheme = UK_SIG_SM2, .hash = UK_HASH_SM3};
    uint8_t e[32];
    sm2_e(c, msg, sizeof(msg), e);
    req.digest = e;
    req.digest_len = sizeof(e);
    struct sign_res s;
    sign(f, "skf:SKF-A", &req, PIN, &s);
    assert_int_equal(s.err, UK_OK);
    assert_true(sm2_verifies(c, SM2_ID, msg, sizeof(msg), s.sig, s.sig_len));
    /* OpenSSL's default (empty) ID makes another Z: the signature must not verify then. */
    assert_false(sm2_verifies(c, "", msg, sizeof(msg), s.sig, s.sig_len));
    /* The encryption key does not sign; neither does a key that is not there. Neither costs a
     * PIN try. */
    snprintf(req.key_id, sizeof(req.key_id), "sm2/enc");
    sign(f, "skf:SKF-A", &req, "000000", &s);
    assert_int_equal(s.err, UK_E_NOT_SUPPORTED);
    snprintf(req.key_id, sizeof(req.key_id), "nope/sign");
    sign(f, "skf:SKF-A", &req, "000000", &s);
    assert_int_equal(s.err, UK_E_KEY_NOT_FOUND);
    /* ECDSA is not what an SM2 container does. */
    req = (uk_sign_req){.key_id = "sm2/sign",
                        .scheme = UK_SIG_ECDSA,
                        .hash = UK_HASH_SHA256,
                        .digest = e,
                        .digest_len = 32};
    sign(f, "skf:SKF-A", &req, "000000", &s);
    assert_int_equal(s.err, UK_E_NOT_SUPPORTED);
}

static void test_skf_rsa_container_signs_pkcs1(void **state)
{
    struct fx *f = *state;
    start(f);
    struct certs_res r;
    list_certs(f, "skf:SKF-B", &r);
    assert_int_equal(r.n, 1);
    uint8_t digest[32];
    static const uint8_t msg[] = "rsa on skf";
    unsigned dl = 0;
    assert_int_equal(EVP_Digest(msg, sizeof(msg), digest, &dl, EVP_sha256(), NULL), 1);
    uk_sign_req req = {
        .scheme = UK_SIG_RSA_PKCS1, .hash = UK_HASH_SHA256, .digest = digest, .digest_len = 32};
    snprintf(req.key_id, sizeof(req.key_id), "%s", r.certs[0].key_id);
    struct sign_res s;
    sign(f, "skf:SKF-B", &req, PIN, &s);
    assert_int_equal(s.err, UK_OK);
    assert_int_equal(s.sig_len, 256);
    const unsigned char *p = r.certs[0].der;
    X509 *x = d2i_X509(NULL, &p, (long)r.certs[0].der_len);
    assert_non_null(x);
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(mc, NULL, EVP_sha256(), NULL, X509_get0_pubkey(x)), 1);
    assert_int_equal(EVP_DigestVerify(mc, s.sig, s.sig_len, msg, sizeof(msg)), 1);
    EVP_MD_CTX_free(mc);
    X509_free(x);
    /* PSS is not something SKF_RSASignData does. */
    req.scheme = UK_SIG_RSA_PSS;
    sign(f, "skf:SKF-B", &req, PIN, &s);
    assert_int_equal(s.err, UK_E_NOT_SUPPORTED);
}

struct pin_res {
    bool done;
    int err, retries;
};

static void on_pin(void *arg, int err, int retries_left)
{
    struct pin_res *r = arg;
    r->done = true;
    r->err = err;
    r->retries = retries_left;
}

static void test_skf_wrong_pin_counts_down_then_locks(void **state)
{
    struct fx *f = *state;
    start(f);
    uint8_t e[32] = {1};
    uk_sign_req req = {.key_id = "sm2/sign",
                       .scheme = UK_SIG_SM2,
                       .hash = UK_HASH_SM3,
                       .digest = e,
                       .digest_len = 32};
    struct sign_res s;
    sign(f, "skf:SKF-A", &req, "654321", &s);
    assert_int_equal(s.err, UK_E_PIN_INCORRECT);
    assert_int_equal(s.retries, 2);
    struct pin_res p = {0};
    assert_int_equal(uk_tokens_pin_status(f->t, "skf:SKF-A", on_pin, &p), UK_OK);
    assert_true(loop_run_until(&f->loop, pred_flag, &p.done, 5000));
    assert_int_equal(p.err, UK_OK);
    assert_int_equal(p.retries, 2);
    sign(f, "skf:SKF-A", &req, "654321", &s);
    assert_int_equal(s.err, UK_E_PIN_INCORRECT);
    assert_int_equal(s.retries, 1);
    sign(f, "skf:SKF-A", &req, "654321", &s);
    assert_int_equal(s.err, UK_E_PIN_LOCKED);
    assert_int_equal(s.retries, 0);
    /* Locked: the right PIN is refused too, and the summary says 0. */
    sign(f, "skf:SKF-A", &req, PIN, &s);
    assert_int_equal(s.err, UK_E_PIN_LOCKED);
    uk_token_summary *list = NULL;
    size_t n = 0;
    assert_int_equal(uk_tokens_list(f->t, &list, &n), UK_OK);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].id, "skf:SKF-A") == 0)
            assert_int_equal(list[i].pin_retries, 0);
    }
    free(list);
    assert_true(log_has("SKF_VerifyPIN on 'Soft SKF: ukey0': SAR_PIN_INCORRECT (0x0a000024)"));
}

static bool pred_removed0(void *arg)
{
    return ((struct fx *)arg)->removed[0] > 0;
}

static void test_skf_device_pulled_mid_operation_is_card_removed(void **state)
{
    struct fx *f = *state;
    start(f);
    /* The next module call fails as a pulled key does and takes the device away. */
    skf_ctl c = {.fail_after = 0, .fail_rv = 0x0A000023u, .fail_remove = true};
    assert_int_equal(skf_ctl_save(f->dir, &c), 0);
    uint8_t e[32] = {1};
    uk_sign_req req = {.key_id = "sm2/sign",
                       .scheme = UK_SIG_SM2,
                       .hash = UK_HASH_SM3,
                       .digest = e,
                       .digest_len = 32};
    struct sign_res s;
    sign(f, "skf:SKF-A", &req, PIN, &s);
    assert_int_equal(s.err, UK_E_CARD_REMOVED);
    /* The scanner sees it gone at its next look ("remove" pulls every device of the module). */
    assert_true(loop_run_until(&f->loop, pred_removed0, f, 5000));
    assert_int_equal(uk_tokens_list_certs(f->t, "skf:SKF-A", on_certs, &(struct certs_res){0}),
                     UK_E_NO_TOKEN);
    /* Back in: a new token with the same id. */
    char control[128];
    snprintf(control, sizeof(control), "%s/control", f->dir);
    assert_int_equal(unlink(control), 0);
    assert_int_equal(skf_dev_set_present(f->dir, "ukey0", true), 0);
    assert_true(loop_run_until(&f->loop, pred_flag, &f->have[0], 5000));
    struct certs_res r;
    list_certs(f, "skf:SKF-A", &r);
    assert_int_equal(r.err, UK_OK);
    assert_int_equal(r.n, 2);
}

static bool pred_log(void *arg)
{
    return log_has(arg);
}

static void test_skf_stale_handle_reopens_the_device_and_runs_once_more(void **state)
{
    struct fx *f = *state;
    struct certs_res r;
    const uk_token_cert *c = start_with_sign_cert(f, &r);
    static const uint8_t msg[] = "after a stale handle";
    uint8_t e[32];
    sm2_e(c, msg, sizeof(msg), e);
    uk_sign_req req = {.key_id = "sm2/sign",
                       .scheme = UK_SIG_SM2,
                       .hash = UK_HASH_SM3,
                       .digest = e,
                       .digest_len = 32};
    /* The call after SKF_GetDevState (the card's begin) finds its handle stale, once. */
    skf_ctl ctl = {.fail_after = 1, .fail_rv = 0x0A000005u};
    assert_int_equal(skf_ctl_save(f->dir, &ctl), 0);
    struct sign_res s;
    sign(f, "skf:SKF-A", &req, PIN, &s);
    assert_int_equal(s.err, UK_OK);
    assert_true(sm2_verifies(c, SM2_ID, msg, sizeof(msg), s.sig, s.sig_len));
    assert_true(log_has("SAR_INVALIDHANDLEERR (0x0a000005) -> CARD_RESET"));
    assert_true(log_has("was reset by another program; reconnecting"));
    assert_true(f->have[0]); /* the same token: no REMOVED */
    assert_int_equal(f->removed[0], 0);
}

static void test_skf_broken_module_next_to_a_good_one(void **state)
{
    struct fx *f = *state;
    char notskf[128];
    snprintf(notskf, sizeof(notskf), "%s/ca.pem", f->dir); /* a file, not a library */
    uk_tokens_skf_module m[] = {
        {.path = "/nonexistent/libskf.so", .name = "Missing", .ulong_bytes = 4},
        {.path = notskf, .name = "Not a module", .ulong_bytes = 4},
        {.path = "/usr/lib/softhsm/libsofthsm2.so", .name = "PKCS#11", .ulong_bytes = 4},
        {.path = getenv("UKSKF_MODULE"), .name = "Soft SKF", .ulong_bytes = UK_SKF_ULONG_BYTES},
    };
    start_modules(f, m, 4);
    /* Each module loads on its own scanner thread: the broken ones report in their own time. */
    char not_usable[2][64] = {"SKF module Not a module is not usable",
                              "SKF module Missing is not usable"};
    assert_true(loop_run_until(&f->loop, pred_log, not_usable[0], 5000));
    assert_true(loop_run_until(&f->loop, pred_log, not_usable[1], 5000));
    assert_true(log_has("SKF module Missing: cannot load /nonexistent/libskf.so"));
    assert_true(log_has("SKF module Not a module: cannot load"));
    assert_true(log_has("SKF module Missing is not usable: MODULE_ERROR"));
    /* A library that loads but is no SKF module (SoftHSM2: only C_ functions), when installed. */
    if (access("/usr/lib/softhsm/libsofthsm2.so", R_OK) == 0) {
        char no_skf[] = "SKF module PKCS#11 is not usable: MODULE_ERROR";
        assert_true(loop_run_until(&f->loop, pred_log, no_skf, 5000));
        assert_true(log_has("libsofthsm2.so does not export SKF_EnumDev"));
    }
    struct certs_res r;
    list_certs(f, "skf:SKF-A", &r);
    assert_int_equal(r.err, UK_OK);
    assert_int_equal(r.n, 2);
}

/* ---- card jobs as the renewal service runs them (uk__tokens_run) ---- */

struct job {
    bool done;
    int err;
};

static void job_done(void *arg, int err)
{
    struct job *j = arg;
    j->done = true;
    j->err = err;
}

/* Runs op(arg) in one card job on skf:SKF-A; arg starts with a struct job. Its result. */
static int run_job(struct fx *f, uk__token_op_fn op, struct job *j)
{
    assert_int_equal(uk__tokens_run(f->t, "skf:SKF-A", UK__OP_CHANGES_CARD, op, job_done, j),
                     UK_OK);
    assert_true(loop_run_until(&f->loop, pred_flag, &j->done, 5000));
    return j->err;
}

/* Inside a job: the user PIN, verified. */
static int login(const uk_driver *d, void *st, uk_card *card)
{
    uk_secret *pin = uk_secret_new(PIN, strlen(PIN));
    int retries = -1;
    int rc = pin != NULL ? d->verify_pin(st, card, pin, &retries) : UK_E_NO_MEMORY;
    uk_secret_free(pin);
    return rc;
}

/* The renewal primitives, driven in one card job as the renewal service would. */
struct stage {
    struct job job;      /* first */
    const uint8_t *cert; /* a certificate to write into the new container */
    size_t cert_len;
    char id[UK_KEY_ID_MAX];
    uint8_t spki[512];
    size_t spki_len;
    uint8_t sig[128];
    size_t sig_len;
    uint8_t e[32];
    int gen_again, no_pin, deleted_lookup;
};

static int stage_op(void *arg, const uk_driver *d, void *st, uk_card *card)
{
    struct stage *g = arg;
    uint8_t *spki = NULL, *spki2 = NULL;
    size_t spki_len = 0, spki2_len = 0;
    /* Without the PIN the module refuses to make a container. */
    int rc = d->find_staging_slot(st, card, g->id);
    if (rc != UK_OK)
        return rc;
    g->no_pin = d->generate_key(st, card, g->id, UK_KEY_SM2, &spki, &spki_len);
    rc = login(d, st, card);
    if (rc != UK_OK)
        return rc;
    rc = d->generate_key(st, card, g->id, UK_KEY_SM2, &spki, &spki_len);
    if (rc != UK_OK)
        return rc;
    memcpy(g->spki, spki, spki_len);
    g->spki_len = spki_len;
    /* Never over an existing container. */
    g->gen_again = d->generate_key(st, card, g->id, UK_KEY_SM2, &spki2, &spki2_len);
    free(spki2);
    spki2 = NULL;
    rc = d->get_public_key(st, card, g->id, &spki2, &spki2_len);
    if (rc == UK_OK && (spki2_len != spki_len || memcmp(spki2, spki, spki_len) != 0))
        rc = UK_E_CARD_ERROR;
    free(spki);
    free(spki2);
    if (rc != UK_OK)
        return rc;
    /* The new key signs e = SM3(Z || M) with its own Z. */
    static const uint8_t msg[] = "staged";
    size_t el = sizeof(g->e);
    rc = uk_x509_sm2_digest(g->spki, g->spki_len, msg, sizeof(msg), g->e, &el);
    if (rc != UK_OK)
        return rc;
    uk_sign_req req = {.scheme = UK_SIG_SM2, .hash = UK_HASH_SM3, .digest = g->e, .digest_len = 32};
    memcpy(req.key_id, g->id, sizeof(req.key_id));
    rc = d->sign(st, card, &req, g->sig, sizeof(g->sig), &g->sig_len);
    if (rc != UK_OK)
        return rc;
    rc = d->put_cert(st, card, g->id, g->cert, g->cert_len);
    if (rc != UK_OK)
        return rc;
    rc = d->delete_key(st, card, g->id);
    if (rc != UK_OK)
        return rc;
    g->deleted_lookup = d->get_public_key(st, card, g->id, &spki2, &spki2_len);
    free(spki2);
    d->logout(st, card);
    return UK_OK;
}

static void test_skf_new_key_goes_into_a_new_container_and_signs(void **state)
{
    struct fx *f = *state;
    struct certs_res r;
    const uk_token_cert *c = start_with_sign_cert(f, &r);
    struct stage g = {.cert = c->der, .cert_len = c->der_len};
    assert_int_equal(run_job(f, stage_op, &g.job), UK_OK);
    assert_int_equal(strlen(g.id), 15);
    assert_memory_equal(g.id, "uk", 2);
    assert_string_equal(g.id + 10, "/sign");
    assert_int_equal(g.no_pin, UK_E_SECURITY_STATUS);
    assert_int_equal(g.gen_again, UK_E_INVALID_PARAMS);
    assert_int_equal(g.deleted_lookup, UK_E_KEY_NOT_FOUND);
    /* OpenSSL agrees: the SPKI is an SM2 key and the signature verifies over e. */
    const unsigned char *p = g.spki;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)g.spki_len);
    assert_non_null(pk);
    assert_true(EVP_PKEY_is_a(pk, "SM2"));
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(pk, NULL);
    assert_int_equal(EVP_PKEY_verify_init(pc), 1);
    assert_int_equal(EVP_PKEY_verify(pc, g.sig, g.sig_len, g.e, sizeof(g.e)), 1);
    EVP_PKEY_CTX_free(pc);
    EVP_PKEY_free(pk);
    /* The working container was never touched. */
    list_certs(f, "skf:SKF-A", &r);
    assert_int_equal(r.n, 2);
    assert_non_null(find_cert(&r, "sm2/sign"));
}

/* An ENVELOPEDKEYBLOB (standard byte form) of the SM2 key enc, wrapped to the SM2 public key of
 * cert as a KMC does: the 64-byte private-key field under SM4-ECB, the SM4 key under SM2. */
static size_t make_envelope(const uk_token_cert *cert, EVP_PKEY *enc, uint8_t blob[400])
{
    const unsigned char *p = cert->der;
    X509 *x = d2i_X509(NULL, &p, (long)cert->der_len);
    assert_non_null(x);
    BIGNUM *bn[5] = {NULL, NULL, NULL, NULL, NULL};
    assert_true(EVP_PKEY_get_bn_param(X509_get0_pubkey(x), OSSL_PKEY_PARAM_EC_PUB_X, &bn[0]));
    assert_true(EVP_PKEY_get_bn_param(X509_get0_pubkey(x), OSSL_PKEY_PARAM_EC_PUB_Y, &bn[1]));
    assert_true(EVP_PKEY_get_bn_param(enc, OSSL_PKEY_PARAM_EC_PUB_X, &bn[2]));
    assert_true(EVP_PKEY_get_bn_param(enc, OSSL_PKEY_PARAM_EC_PUB_Y, &bn[3]));
    assert_true(EVP_PKEY_get_bn_param(enc, OSSL_PKEY_PARAM_PRIV_KEY, &bn[4]));
    uint8_t sx[32], sy[32], field[64] = {0}, sm4[16];
    assert_int_equal(BN_bn2binpad(bn[0], sx, 32), 32);
    assert_int_equal(BN_bn2binpad(bn[1], sy, 32), 32);
    assert_int_equal(BN_bn2binpad(bn[4], field + 32, 32), 32);
    memset(blob, 0, 400);
    blob[0] = 1;                    /* Version */
    blob[4] = 0x01, blob[5] = 0x04; /* SGD_SM4_ECB 0x00000401 */
    blob[8] = 0x00, blob[9] = 0x01; /* ulBits 256 */
    assert_int_equal(skfc_random(sm4, sizeof(sm4)), 0);
    assert_int_equal(skfc_sm4_ecb(true, sm4, field, sizeof(field), blob + 12), 0);
    blob[76] = 0x00, blob[77] = 0x01; /* PubKey.BitLen 256 */
    assert_int_equal(BN_bn2binpad(bn[2], blob + 80 + 32, 32), 32);
    assert_int_equal(BN_bn2binpad(bn[3], blob + 144 + 32, 32), 32);
    assert_int_equal(skfc_sm2_encrypt(sx, sy, sm4, sizeof(sm4), blob + 208 + 32, blob + 272 + 32,
                                      blob + 336, blob + 372),
                     0);
    blob[368] = 16; /* CipherLen */
    OPENSSL_cleanse(field, sizeof(field));
    OPENSSL_cleanse(sm4, sizeof(sm4));
    for (size_t i = 0; i < 5; i++)
        BN_free(bn[i]);
    X509_free(x);
    return 372 + 16;
}

struct import {
    struct job job; /* first */
    const uint8_t *blob;
    size_t len;
    int err_bad, err_short, err_nopin;
    uint8_t *spki;
    size_t spki_len;
};

static int import_op(void *arg, const uk_driver *d, void *st, uk_card *card)
{
    struct import *im = arg;
    uint8_t bad[400];
    memcpy(bad, im->blob, im->len);
    bad[340] ^= 0x01; /* C3 */
    /* Not logged in: the module refuses; malformed: refused before the module is asked. */
    im->err_nopin = d->import_enveloped_key(st, card, "sm2/sign", im->blob, im->len);
    im->err_short = d->import_enveloped_key(st, card, "sm2/sign", im->blob, im->len - 1);
    int rc = login(d, st, card);
    if (rc != UK_OK)
        return rc;
    im->err_bad = d->import_enveloped_key(st, card, "sm2/sign", bad, im->len);
    rc = d->import_enveloped_key(st, card, "sm2/enc", im->blob, im->len);
    if (rc == UK_OK)
        rc = d->get_public_key(st, card, "sm2/enc", &im->spki, &im->spki_len);
    d->logout(st, card);
    return rc;
}

static void test_skf_enveloped_encryption_key_is_imported(void **state)
{
    struct fx *f = *state;
    struct certs_res r;
    const uk_token_cert *c = start_with_sign_cert(f, &r);
    EVP_PKEY *enc = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    assert_non_null(enc);
    uint8_t blob[400];
    struct import im = {.blob = blob, .len = make_envelope(c, enc, blob)};
    assert_int_equal(run_job(f, import_op, &im.job), UK_OK);
    assert_int_equal(im.err_nopin, UK_E_SECURITY_STATUS);
    assert_int_equal(im.err_short, UK_E_ENVELOPE_INVALID);
    assert_int_equal(im.err_bad, UK_E_ENVELOPE_INVALID);
    /* The container's encryption key is now the KMC's. */
    unsigned char *want = NULL;
    int wl = i2d_PUBKEY(enc, &want);
    assert_true(wl > 0);
    assert_int_equal(im.spki_len, (size_t)wl);
    assert_memory_equal(im.spki, want, im.spki_len);
    OPENSSL_free(want);
    free(im.spki);
    EVP_PKEY_free(enc);
}

/* A module whose lists grow between the two calls of the length protocol and whose
 * SKF_ConnectDev "succeeds" without a handle: reported, never trusted, the good module unharmed. */
static void test_skf_module_garbage_is_refused(void **state)
{
    struct fx *f = *state;
    const char *garbage = getenv("FAKE_SKF_GARBAGE");
    assert_non_null(garbage);
    uk_tokens_skf_module m[] = {
        {.path = garbage, .name = "Garbage", .ulong_bytes = 4},
        {.path = getenv("UKSKF_MODULE"), .name = "Soft SKF", .ulong_bytes = UK_SKF_ULONG_BYTES},
    };
    start_modules(f, m, 2);
    char grew[] = "SKF_EnumDev on 'Garbage': UK__SKF_GARBAGE";
    char no_handle[] = "SKF_ConnectDev on 'Garbage: dev0': UK__SKF_GARBAGE";
    assert_true(loop_run_until(&f->loop, pred_log, grew, 5000));
    /* Reported unusable once a second scan in a row fails (one failed listing is forgiven). */
    char unusable[] = "SKF module Garbage is not usable: ";
    assert_true(loop_run_until(&f->loop, pred_log, unusable, 8000));
    /* At an honest scan the device is listed, but it cannot be opened: no token id. */
    assert_true(loop_run_until(&f->loop, pred_log, no_handle, 8000));
    uk_token_summary *list = NULL;
    size_t n = 0;
    assert_int_equal(uk_tokens_list(f->t, &list, &n), UK_OK);
    for (size_t i = 0; i < n; i++)
        assert_false(strncmp(list[i].reader, "Garbage", 7) == 0 && list[i].id[0] != '\0');
    free(list);
    struct certs_res r;
    list_certs(f, "skf:SKF-A", &r);
    assert_int_equal(r.err, UK_OK);
    assert_int_equal(r.n, 2);
}

static void test_skf_one_module_instance_per_path_and_width(void **state)
{
    (void)state;
    const char *path = getenv("UKSKF_MODULE");
    unsigned other = UK_SKF_ULONG_BYTES == 8 ? 4 : 8;
    uk_skf_module *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(uk_skf_module_get(path, "a", UK_SKF_ULONG_BYTES, &a), UK_OK);
    assert_int_equal(uk_skf_module_get(path, "b", UK_SKF_ULONG_BYTES, &b), UK_OK);
    assert_ptr_equal(a, b);
    /* The same file with the other width is refused, never called with it. */
    assert_int_equal(uk_skf_module_get(path, "c", other, &c), UK_E_MODULE_ERROR);
    assert_null(c);
    assert_int_equal(uk_skf_module_get("relative.so", "d", 4, &c), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_skf_module_get(path, "e", 2, &c), UK_E_INVALID_PARAMS);
    uk_skf_module_put(a);
    uk_skf_module_put(b);
}

/* ---- the adapter's session_decrypt, straight over the module ------------------------------ */

#if UK_SKF_ULONG_BYTES == 8
#define ADAPTER uk__skf_adapter8
#else
#define ADAPTER uk__skf_adapter4
#endif
#define SM4_CBC 0x00000402u /* SGD_SM4_CBC (uk_skf_abi.h cannot share a unit with winscard.h) */

static unsigned long module_calls_after(const struct fx *f, long fail_after, uint32_t sar)
{
    skf_lock l;
    skf_ctl c = {.fail_after = fail_after, .fail_rv = sar};
    assert_int_equal(skf_lock_take(f->dir, &l), 0);
    if (fail_after >= 0)
        assert_int_equal(skf_ctl_save(f->dir, &c), 0);
    else
        assert_int_equal(skf_ctl_load(f->dir, &c), 0);
    skf_lock_drop(&l);
    return c.calls;
}

/* A digital envelope to the container's encryption key (made by OpenSSL on the soft side),
 * opened through the adapter in several DecryptUpdate pieces; refusals and faults close the
 * session key all the same; a module without the functions answers, never crashes. */
static void test_skf_adapter_session_decrypt_opens_an_envelope(void **state)
{
    struct fx *f = *state;
    const uk__skf_adapter *a = &ADAPTER;
    void *dl = dlopen(getenv("UKSKF_MODULE"), RTLD_NOW | RTLD_LOCAL);
    assert_non_null(dl);
    void *tab = a->table_new(dl), *dev = NULL, *app = NULL, *cont = NULL;
    assert_non_null(tab);
    assert_true(a->has(tab, "SKF_ImportSessionKey"));
    unsigned retries = 0;
    assert_int_equal(a->connect_dev(tab, "ukey0", &dev), 0);
    assert_int_equal(a->open_app(tab, dev, "ukeyd", &app), 0);
    assert_int_equal(a->open_cont(tab, app, "sm2", &cont), 0);
    uk__skf_ecc_pub pub;
    assert_int_equal(a->export_ecc_pub(tab, cont, false, &pub), 0);
    uk_sm2_cipher w = {.c2_len = 16};
    uint8_t key[16], iv[16];
    enum { N = 2 * UK__SKF_DECRYPT_CHUNK + 48 }; /* three pieces, the last a short one */
    static uint8_t msg[N], ct[N], out[N];
    assert_int_equal(skfc_random(key, sizeof(key)), 0);
    assert_int_equal(skfc_random(iv, sizeof(iv)), 0);
    assert_int_equal(skfc_random(msg, sizeof(msg)), 0);
    assert_int_equal(skfc_sm2_encrypt(pub.x, pub.y, key, 16, w.c1x, w.c1y, w.c3, w.c2), 0);
    EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;
    assert_non_null(cx);
    assert_int_equal(EVP_EncryptInit_ex(cx, EVP_sm4_cbc(), NULL, key, iv), 1);
    assert_int_equal(EVP_CIPHER_CTX_set_padding(cx, 0), 1);
    assert_int_equal(EVP_EncryptUpdate(cx, ct, &l1, msg, N), 1);
    assert_int_equal(EVP_EncryptFinal_ex(cx, ct + l1, &l2), 1);
    assert_int_equal(l1 + l2, N);
    EVP_CIPHER_CTX_free(cx);

    size_t len = sizeof(out);
    /* the envelope needs the user PIN */
    assert_int_equal(a->session_decrypt(tab, cont, SM4_CBC, &w, iv, ct, N, out, &len),
                     0x0A00002Du); /* SAR_USER_NOT_LOGGED_IN */
    assert_int_equal(len, 0);
    assert_int_equal(a->verify_pin(tab, app, (const uint8_t *)PIN, strlen(PIN), &retries), 0);
    len = sizeof(out);
    assert_int_equal(a->session_decrypt(tab, cont, SM4_CBC, &w, iv, ct, N, out, &len), 0);
    assert_int_equal(len, N);
    assert_memory_equal(out, msg, N);
    /* refused before the module is asked: no room, not whole blocks, no C2 */
    len = N - 1;
    assert_int_equal(a->session_decrypt(tab, cont, SM4_CBC, &w, iv, ct, N, out, &len),
                     0x0A000020u); /* SAR_BUFFER_TOO_SMALL */
    len = sizeof(out);
    assert_int_equal(a->session_decrypt(tab, cont, SM4_CBC, &w, iv, ct, N - 8, out, &len),
                     0x0A000010u); /* SAR_INDATALENERR */
    w.c2_len = 0;
    len = sizeof(out);
    assert_int_equal(a->session_decrypt(tab, cont, SM4_CBC, &w, iv, ct, N, out, &len), 0x0A000010u);
    w.c2_len = 16;
    /* tampered C3: the module's SAR_INDATAERR */
    w.c3[0] ^= 1;
    len = sizeof(out);
    assert_int_equal(a->session_decrypt(tab, cont, SM4_CBC, &w, iv, ct, N, out, &len), 0x0A000011u);
    w.c3[0] ^= 1;
    /* a fault in the first DecryptUpdate (call 3): the key handle is still closed (call 4) */
    module_calls_after(f, 2, 0x0A000001u);
    len = sizeof(out);
    assert_int_equal(a->session_decrypt(tab, cont, SM4_CBC, &w, iv, ct, N, out, &len), 0x0A000001u);
    assert_int_equal(len, 0);
    assert_int_equal(module_calls_after(f, -1, 0), 4);
    len = sizeof(out);
    assert_int_equal(a->session_decrypt(tab, cont, SM4_CBC, &w, iv, ct, N, out, &len), 0);
    assert_memory_equal(out, msg, N);
    assert_int_equal(a->close_cont(tab, cont), 0);
    assert_int_equal(a->close_app(tab, app), 0);
    assert_int_equal(a->disconnect_dev(tab, dev), 0);
    free(tab);
    dlclose(dl);

    /* a module claiming more plaintext than it had room for: garbage, the key closed anyway */
    void *gdl = dlopen(getenv("FAKE_SKF_GARBAGE"), RTLD_NOW | RTLD_LOCAL);
    assert_non_null(gdl);
    void *sym = dlsym(gdl, "fake_skf_closed");
    assert_non_null(sym);
    unsigned (*closed)(void);
    memcpy(&closed, &sym, sizeof(closed));
    void *gtab = uk__skf_adapter4.table_new(gdl);
    assert_non_null(gtab);
    len = sizeof(out);
    assert_int_equal(
        uk__skf_adapter4.session_decrypt(gtab, (void *)1, SM4_CBC, &w, iv, ct, N, out, &len),
        UK__SKF_GARBAGE);
    assert_int_equal(len, 0);
    assert_int_equal(closed(), 1);
    free(gtab);
    dlclose(gdl);
    /* a module without the functions: an answer, no call through NULL */
    void *none = uk__skf_adapter4.table_new(NULL);
    assert_non_null(none);
    assert_false(uk__skf_adapter4.has(none, "SKF_ImportSessionKey"));
    len = sizeof(out);
    assert_int_equal(
        uk__skf_adapter4.session_decrypt(none, (void *)1, SM4_CBC, &w, iv, ct, N, out, &len),
        0x0A000003u); /* SAR_NOTSUPPORTYETERR */
    assert_int_equal(len, 0);
    free(none);
}

int main(void)
{
    uv_mutex_init(&log_mu);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_skf_devices_are_tokens_named_by_serial, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_skf_lists_signing_and_encryption_certificates_by_key_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skf_sm2_signature_verifies_with_the_gmt0009_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_skf_rsa_container_signs_pkcs1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skf_wrong_pin_counts_down_then_locks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skf_device_pulled_mid_operation_is_card_removed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_skf_stale_handle_reopens_the_device_and_runs_once_more,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_skf_broken_module_next_to_a_good_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skf_new_key_goes_into_a_new_container_and_signs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_skf_enveloped_encryption_key_is_imported, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_skf_module_garbage_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skf_one_module_instance_per_path_and_width, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_skf_adapter_session_decrypt_opens_an_envelope, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
