/*
 * uk-token-watch: the token layer (uk_token + the PIV driver) in a small
 * program, driven line by line on stdin by the integration tests, against
 * whichever pcscd PCSCLITE_CSOCK_NAME names.
 *
 *   uk-token-watch [--busy-ms N] [--debug]
 *
 * Commands (one per line):
 *   list                      -> "list REASON N", then N lines
 *                                "token ID<TAB>READER<TAB>DRIVER<TAB>present|absent<TAB>RETRIES"
 *   certs ID                  -> "certs REASON N MS" when answered
 *   sign ID KEY PIN           -> "sign REASON RETRIES SIGLEN MS" (a fixed SHA-256 digest, ECDSA
 *                                or PKCS#1 by what the driver finds; the test only needs an answer)
 *   quit (or end of input)    -> stops the layer; exit 0 only if the loop then closes cleanly
 * Events are printed as they come: "event MS INSERTED|REMOVED|CHANGED ID<TAB>READER".
 * MS is wall-clock time in milliseconds (date +%s%3N) for event lines, elapsed
 * milliseconds for answers. The layer's log goes to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_secret.h"
#include "uk_token.h"

static uv_loop_t loop;
static uv_pipe_t in;
static uk_tokens *tokens;
static char line[4096];
static size_t line_len;
static bool stopping;
static int exit_code;

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static void on_event(void *ctx, uk_token_event ev, const uk_token_summary *t)
{
    (void)ctx;
    const char *name = ev == UK_TOKEN_INSERTED  ? "INSERTED"
                       : ev == UK_TOKEN_REMOVED ? "REMOVED"
                                                : "CHANGED";
    printf("event %llu %s %s\t%s\n", (unsigned long long)wall_ms(), name, t->id, t->reader);
    fflush(stdout);
}

struct req {
    uint64_t t0;
};

static void on_certs(void *arg, int err, const uk_token_cert *certs, size_t n)
{
    (void)certs;
    struct req *r = arg;
    printf("certs %s %zu %llu\n", err == UK_OK ? "OK" : uk_err_name(err), n,
           (unsigned long long)(mono_ms() - r->t0));
    fflush(stdout);
    free(r);
}

static void on_sign(void *arg, int err, int retries, const uint8_t *sig, size_t sig_len)
{
    (void)sig;
    struct req *r = arg;
    printf("sign %s %d %zu %llu\n", err == UK_OK ? "OK" : uk_err_name(err), retries, sig_len,
           (unsigned long long)(mono_ms() - r->t0));
    fflush(stdout);
    free(r);
}

static void cmd_list(void)
{
    uk_token_summary *s = NULL;
    size_t n = 0;
    int rc = uk_tokens_list(tokens, &s, &n);
    printf("list %s %zu\n", rc == UK_OK ? "OK" : uk_err_name(rc), n);
    for (size_t i = 0; i < n; i++)
        printf("token %s\t%s\t%s\t%s\t%d\n", s[i].id, s[i].reader, s[i].driver,
               s[i].present ? "present" : "absent", s[i].pin_retries);
    fflush(stdout);
    free(s);
}

static void cmd_certs(const char *id)
{
    struct req *r = malloc(sizeof(*r));
    if (r == NULL)
        abort();
    r->t0 = mono_ms();
    int rc = uk_tokens_list_certs(tokens, id, on_certs, r);
    if (rc != UK_OK) {
        printf("certs %s 0 0\n", uk_err_name(rc));
        fflush(stdout);
        free(r);
    }
}

static void cmd_sign(const char *id, const char *key, const char *pin)
{
    static const uint8_t digest[32] = {0x2c, 0xf2, 0x4d, 0xba, 0x5f, 0xb0, 0xa3, 0x0e,
                                       0x26, 0xe8, 0x3b, 0x2a, 0xc5, 0xb9, 0xe2, 0x9e,
                                       0x1b, 0x16, 0x1e, 0x5c, 0x1f, 0xa7, 0x42, 0x5e,
                                       0x73, 0x04, 0x33, 0x62, 0x93, 0x8b, 0x98, 0x24};
    uk_sign_req req;
    memset(&req, 0, sizeof(req));
    snprintf(req.key_id, sizeof(req.key_id), "%s", key);
    /* The demo keys: 9a RSA-2048, 9c EC P-256 (scripts/rig's demo card). */
    req.scheme = strcmp(key, "9a") == 0 ? UK_SIG_RSA_PKCS1 : UK_SIG_ECDSA;
    req.hash = UK_HASH_SHA256;
    req.digest = digest;
    req.digest_len = sizeof(digest);
    struct req *r = malloc(sizeof(*r));
    if (r == NULL)
        abort();
    r->t0 = mono_ms();
    uk_secret *p = uk_secret_new(pin, strlen(pin));
    int rc = uk_tokens_sign(tokens, id, &req, p, on_sign, r);
    if (rc != UK_OK) {
        printf("sign %s -1 0 0\n", uk_err_name(rc));
        fflush(stdout);
        free(r);
    }
}

static void on_stopped(void *ctx)
{
    (void)ctx;
    tokens = NULL;
    uv_close((uv_handle_t *)&in, NULL);
}

static void quit(void)
{
    if (stopping)
        return;
    stopping = true;
    uv_read_stop((uv_stream_t *)&in);
    uk_tokens_stop(tokens, on_stopped, NULL);
}

static void run_line(char *l)
{
    char *save = NULL;
    char *cmd = strtok_r(l, " \t\r", &save);
    if (cmd == NULL)
        return;
    char *a1 = strtok_r(NULL, " \t\r", &save);
    char *a2 = strtok_r(NULL, " \t\r", &save);
    char *a3 = strtok_r(NULL, " \t\r", &save);
    if (strcmp(cmd, "list") == 0) {
        cmd_list();
    } else if (strcmp(cmd, "certs") == 0 && a1 != NULL) {
        cmd_certs(a1);
    } else if (strcmp(cmd, "sign") == 0 && a3 != NULL) {
        cmd_sign(a1, a2, a3);
        memset(a3, 0, strlen(a3));
    } else if (strcmp(cmd, "quit") == 0) {
        quit();
    } else {
        printf("error unknown command\n");
        fflush(stdout);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char chunk[1024];
    *buf = uv_buf_init(chunk, sizeof(chunk));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)s;
    if (n < 0) {
        quit();
        return;
    }
    for (ssize_t i = 0; i < n && !stopping; i++) {
        char c = buf->base[i];
        if (c == '\n') {
            line[line_len] = '\0';
            run_line(line);
            line_len = 0;
        } else if (line_len + 1 < sizeof(line)) {
            line[line_len++] = c;
        }
    }
}

int main(int argc, char **argv)
{
    uk_tokens_options opt;
    memset(&opt, 0, sizeof(opt));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--busy-ms") == 0 && i + 1 < argc) {
            opt.busy_timeout_ms = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--debug") == 0) {
            uk_log_set_level(UK_LOG_LEVEL_DEBUG);
        } else {
            fprintf(stderr, "usage: uk-token-watch [--busy-ms N] [--debug]\n");
            return 2;
        }
    }
    uk_log_set_ident("uk-token-watch");
    uk_log_set_format(UK_LOG_FORMAT_PLAIN);
    if (uv_loop_init(&loop) != 0)
        return 1;
    opt.loop = &loop;
    opt.on_event = on_event;
    int rc = uk_tokens_start(&opt, &tokens);
    if (rc != UK_OK) {
        fprintf(stderr, "uk_tokens_start: %s\n", uk_err_name(rc));
        return 1;
    }
    if (uv_pipe_init(&loop, &in, 0) != 0 || uv_pipe_open(&in, 0) != 0 ||
        uv_read_start((uv_stream_t *)&in, on_alloc, on_read) != 0) {
        fprintf(stderr, "cannot read stdin\n");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "uv_loop_close: handles left open\n");
        exit_code = 1;
    }
    return exit_code;
}
