/*
 * uk-renewal-drive: the renewal service (uk_renewal + the token layer + the PIV driver) in a small
 * program for the integration tests, one operation per run (so every run is a restart of the
 * service, and the journal must carry the renewal from one run to the next):
 *
 *   uk-renewal-drive STATE_DIR prepare TOKEN SLOT extend|repair PIN CSR_OUT [ALG]
 *       -> "prepare OK ID STAGED_SLOT" (the CSR written to CSR_OUT) or "prepare ERR"
 *       (UK_RENEWAL_SUBJECT="/C=CN/O=Org/CN=Name": an explicit subject, certificate order)
 *   uk-renewal-drive STATE_DIR commit ID CERT_DER [CHAIN_DER...]
 *       -> "commit OK STATE" or "commit ERR"
 *       (UK_RENEWAL_CA_BUNDLE=PEM: the service's renewal_ca_bundle)
 *   uk-renewal-drive STATE_DIR certs [KEY DER_OUT] -> "certs OK N", then "cert KEY TAIL" per
 *       certificate as the token layer lists it (cert.list: a role mapped on the card included);
 *       with KEY, that certificate is written to DER_OUT
 *   uk-renewal-drive STATE_DIR sign KEY PIN DIGEST SIG_OUT -> "sign OK": the token layer signs the
 *       32-byte SHA-256 digest in the file DIGEST with KEY (RSA PKCS#1 v1.5; a role mapped on the
 *       card signs with its active key), the signature written to SIG_OUT
 *   uk-renewal-drive STATE_DIR abort ID   -> "abort OK STATE" or "abort ERR"
 *   uk-renewal-drive STATE_DIR status ID  -> "status OK STATE SLOT STAGED" or ..
 *   uk-renewal-drive STATE_DIR list       -> "list OK N", then "rec ID STATE SLOT STAGED"
 *   uk-renewal-drive STATE_DIR recover    -> "recover OK" or "recover ERR"
 *
 * Every run that waits for the card first runs recovery on it (as ukeyd does on insert).
 * UK_RENEWAL_KILL_AT=STEP: the process kills itself (SIGKILL) right after that step
 * (uk_renewal_testing.h), for the crash tests.
 * UK_P11_MODULE=PATH: the token is the first one of that PKCS#11 module (driver p11) instead of
 * the rig's PIV card; UK_SKF_MODULE=PATH likewise for an SKF module with 4-byte ULONG (driver
 * skf); UK_RENEWAL_PIN=PIN: the PIN given to commit and abort (PKCS#11 and SKF tokens delete
 * private keys only with it: uk_renewal_needs_pin).
 *
 * Card operations wait for the first token to be inserted (the rig has one card). The default
 * PIV management key is allowed (the rig's demo card). Exit 0 whenever an answer was printed.
 */
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_renewal.h"
#include "uk_renewal_testing.h"
#include "uk_secret.h"
#include "uk_token.h"

static uv_loop_t loop;
static uk_tokens *tokens;
static uk_renewal *ren;
static char **args;
static int n_args;
static bool started;
static uv_timer_t timeout;
static uk_secret *drive_pin; /* UK_RENEWAL_PIN, or NULL */

static void on_stopped(void *ctx)
{
    (void)ctx;
    tokens = NULL;
}

static void finish(void)
{
    uv_close((uv_handle_t *)&timeout, NULL);
    uk_renewal_free(ren);
    ren = NULL;
    uk_tokens_stop(tokens, on_stopped, NULL);
}

static const char *state_of(const uk_renewal_rec *rec)
{
    return rec != NULL ? uk_renewal_state_name(rec->state) : "-";
}

static void on_done(void *arg, int err, const uk_renewal_result *res)
{
    const char *what = arg;
    if (err != UK_OK) {
        printf("%s %s %d\n", what, uk_err_name(err), res != NULL ? res->pin_retries : -1);
    } else if (strcmp(what, "prepare") == 0) {
        FILE *f = fopen(args[7], "w");
        if (f == NULL || fputs(res->rec->csr_pem, f) < 0 || fclose(f) != 0)
            printf("prepare IO\n");
        else
            printf("prepare OK %s %s\n", res->rec->id, res->rec->staged_slot);
    } else if (strcmp(what, "recover") == 0) {
        printf("recover OK\n");
    } else if (strcmp(what, "list") == 0) {
        printf("list OK %zu\n", res->n_recs);
        for (size_t i = 0; i < res->n_recs; i++)
            printf("rec %s %s %s %s\n", res->recs[i]->id, state_of(res->recs[i]),
                   res->recs[i]->slot, res->recs[i]->staged_slot);
    } else {
        printf("%s OK %s %s %s\n", what, state_of(res->rec), res->rec->slot, res->rec->staged_slot);
    }
    fflush(stdout);
    finish();
}

static uint8_t bufs[1 + UK_RENEWAL_CHAIN_MAX][65536];

static uint8_t *read_all(const char *path, size_t *len, size_t which)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    uint8_t *buf = bufs[which];
    *len = fread(buf, 1, sizeof(bufs[which]), f);
    fclose(f);
    return buf;
}

/* Writes n bytes of p to path; false on any error. */
static bool write_all(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static void on_signed(void *arg, int err, int retries_left, const uint8_t *sig, size_t sig_len)
{
    (void)arg;
    if (err != UK_OK)
        printf("sign %s %d\n", uk_err_name(err), retries_left);
    else if (!write_all(args[6], sig, sig_len))
        printf("sign IO\n");
    else
        printf("sign OK\n");
    fflush(stdout);
    finish();
}

static void on_certs(void *arg, int err, const uk_token_cert *certs, size_t n)
{
    (void)arg;
    if (err != UK_OK) {
        printf("certs %s\n", uk_err_name(err));
    } else {
        printf("certs OK %zu\n", n);
        for (size_t i = 0; i < n; i++) {
            if (n_args >= 5 && strcmp(certs[i].key_id, args[3]) == 0 && certs[i].der != NULL &&
                !write_all(args[4], certs[i].der, certs[i].der_len))
                printf("cert IO\n");
            printf("cert %s", certs[i].key_id);
            /* The DER's last 8 bytes (the end of the signature) tell certificates apart. */
            size_t len = certs[i].der != NULL ? certs[i].der_len : 0, k = len < 8 ? len : 8;
            printf(" ");
            for (; k > 0; k--)
                printf("%02x", certs[i].der[len - k]);
            printf("\n");
        }
    }
    fflush(stdout);
    finish();
}

/* "/C=CN/O=Org/CN=Name" into attrs (pointers into s, which is changed). */
static size_t parse_subject(char *s, uk_renewal_subject_attr *attrs, size_t cap)
{
    size_t n = 0;
    for (char *p = strtok(s, "/"); p != NULL && n < cap; p = strtok(NULL, "/")) {
        char *eq = strchr(p, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        attrs[n++] = (uk_renewal_subject_attr){.type = p, .value = eq + 1};
    }
    return n;
}

static void start_op(const char *token_id)
{
    if (started)
        return;
    started = true;
    const char *cmd = args[2];
    int rc = UK_E_INVALID_PARAMS;
    if (strcmp(cmd, "prepare") == 0 && n_args >= 8) {
        uk_renewal_prepare_req req = {0};
        req.token_id = args[3][0] != '\0' && strcmp(args[3], "-") != 0 ? args[3] : token_id;
        req.slot = args[4];
        req.mode = strcmp(args[5], "repair") == 0 ? UK_RENEWAL_REPAIR : UK_RENEWAL_EXTEND;
        req.algorithm = n_args >= 9 ? args[8] : NULL;
        static uk_renewal_subject_attr subj[UK_RENEWAL_SUBJECT_MAX];
        static char subj_text[1024];
        const char *env = getenv("UK_RENEWAL_SUBJECT");
        if (env != NULL) {
            snprintf(subj_text, sizeof(subj_text), "%s", env);
            req.subject = subj;
            req.n_subject = parse_subject(subj_text, subj, UK_RENEWAL_SUBJECT_MAX);
        }
        uk_secret *pin = uk_secret_new(args[6], strlen(args[6]));
        req.pin = pin;
        rc = uk_renewal_prepare(ren, &req, on_done, (void *)(uintptr_t) "prepare");
        uk_secret_free(pin);
    } else if (strcmp(cmd, "commit") == 0 && n_args >= 5) {
        uk_renewal_commit_req req = {.id = args[3], .pin = drive_pin};
        const uint8_t *chain[UK_RENEWAL_CHAIN_MAX];
        size_t chain_len[UK_RENEWAL_CHAIN_MAX];
        req.cert_der = read_all(args[4], &req.cert_der_len, 0);
        rc = req.cert_der != NULL ? UK_OK : UK_E_IO;
        for (int i = 5; rc == UK_OK && i < n_args && i - 5 < (int)UK_RENEWAL_CHAIN_MAX; i++) {
            chain[i - 5] = read_all(args[i], &chain_len[i - 5], (size_t)(i - 4));
            rc = chain[i - 5] != NULL ? UK_OK : UK_E_IO;
            req.n_chain = (size_t)(i - 4);
        }
        req.chain = chain;
        req.chain_len = chain_len;
        if (rc == UK_OK)
            rc = uk_renewal_commit(ren, &req, on_done, (void *)(uintptr_t) "commit");
    } else if (strcmp(cmd, "certs") == 0) {
        rc = uk_tokens_list_certs(tokens, token_id, on_certs, NULL);
    } else if (strcmp(cmd, "abort") == 0 && n_args >= 4) {
        rc = uk_renewal_abort(ren, args[3], drive_pin, on_done, (void *)(uintptr_t) "abort");
    } else if (strcmp(cmd, "sign") == 0 && n_args >= 7) {
        uk_sign_req req = {.scheme = UK_SIG_RSA_PKCS1, .hash = UK_HASH_SHA256};
        snprintf(req.key_id, sizeof(req.key_id), "%s", args[3]);
        req.digest = read_all(args[5], &req.digest_len, 0);
        rc = req.digest != NULL && req.digest_len == 32 ? UK_OK : UK_E_IO;
        uk_secret *pin = rc == UK_OK ? uk_secret_new(args[4], strlen(args[4])) : NULL;
        if (rc == UK_OK)
            rc = pin != NULL ? uk_tokens_sign(tokens, token_id, &req, pin, on_signed, NULL)
                             : UK_E_NO_MEMORY;
    } else if (strcmp(cmd, "status") == 0 && n_args >= 4) {
        rc = uk_renewal_status(ren, args[3], on_done, (void *)(uintptr_t) "status");
    } else if (strcmp(cmd, "recover") == 0) {
        rc = uk_renewal_recover(ren, token_id, on_done, (void *)(uintptr_t) "recover");
    } else if (strcmp(cmd, "list") == 0) {
        rc = uk_renewal_list(ren, on_done, (void *)(uintptr_t) "list");
    }
    if (rc != UK_OK) {
        printf("%s %s\n", cmd, uk_err_name(rc));
        fflush(stdout);
        finish();
    }
}

static void on_event(void *ctx, uk_token_event ev, const uk_token_summary *t)
{
    (void)ctx;
    const char *want = getenv("UK_P11_MODULE") != NULL   ? "p11"
                       : getenv("UK_SKF_MODULE") != NULL ? "skf"
                                                         : "piv";
    if (ev == UK_TOKEN_INSERTED && t->present && strcmp(t->driver, want) == 0) {
        if (!started && strcmp(args[2], "recover") != 0 &&
            uk_renewal_recover(ren, t->id, NULL, NULL) != UK_OK)
            fprintf(stderr, "recovery not queued\n");
        start_op(t->id);
    }
}

static void kill_at(void *ctx, const char *step)
{
    (void)ctx;
    const char *at = getenv("UK_RENEWAL_KILL_AT");
    if (at != NULL && strcmp(at, step) == 0) {
        printf("killed at %s\n", step);
        fflush(stdout);
        raise(SIGKILL);
    }
}

static void on_timeout(uv_timer_t *h)
{
    (void)h;
    if (!started) {
        printf("%s NO_TOKEN\n", args[2]);
        started = true;
        finish();
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: uk-renewal-drive STATE_DIR prepare|commit|abort|status|list ...\n");
        return 2;
    }
    args = argv;
    n_args = argc;
    uk_log_set_ident("uk-renewal-drive");
    uk_log_set_format(UK_LOG_FORMAT_PLAIN);
    if (getenv("UK_DEBUG") != NULL)
        uk_log_set_level(UK_LOG_LEVEL_DEBUG);
    if (uv_loop_init(&loop) != 0)
        return 1;
    uk_tokens_options opt;
    memset(&opt, 0, sizeof(opt));
    opt.loop = &loop;
    opt.on_event = on_event;
    opt.driver.allow_default_mgm_key = true;
    uk_tokens_module mod = {.path = getenv("UK_P11_MODULE"), .name = "p11"};
    if (mod.path != NULL) {
        opt.modules = &mod;
        opt.n_modules = 1;
    }
    uk_tokens_skf_module skf = {.path = getenv("UK_SKF_MODULE"), .name = "skf", .ulong_bytes = 4};
    if (skf.path != NULL) {
        opt.skf_modules = &skf;
        opt.n_skf_modules = 1;
    }
    const char *pin_env = getenv("UK_RENEWAL_PIN");
    if (pin_env != NULL && (drive_pin = uk_secret_new(pin_env, strlen(pin_env))) == NULL)
        return 1;
    int rc = uk_tokens_start(&opt, &tokens);
    if (rc == UK_OK)
        rc = uk_renewal_new(&loop, tokens, argv[1], &ren);
    if (rc != UK_OK) {
        fprintf(stderr, "start: %s\n", uk_err_name(rc));
        return 1;
    }
    uk__renewal_set_step_hook(kill_at, NULL);
    if (getenv("UK_RENEWAL_CA_BUNDLE") != NULL &&
        uk_renewal_set_ca_bundle(ren, getenv("UK_RENEWAL_CA_BUNDLE")) != UK_OK)
        return 1;
    uv_timer_init(&loop, &timeout);
    uv_timer_start(&timeout, on_timeout, 10000, 0);
    if (strcmp(argv[2], "status") == 0 || strcmp(argv[2], "list") == 0)
        start_op(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uk_secret_free(drive_pin);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "uv_loop_close: handles left open\n");
        return 1;
    }
    return 0;
}
