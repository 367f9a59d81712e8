/*
 * bench/certs/certs-client.c: the measuring client of bench/run-certs.
 *
 * One WSS connection to ukeyd (TLS verified against --ca, the handshake's
 * Origin and Host as a browser sends them), subscribed to token events. It
 * drives the virtual card through its control socket (`vpiv ctl`) and runs the
 * floor program (bench/certs/floor.c) itself, so that each cold round is
 * measured back to back against its own floor:
 *
 *   cold round i:  counters-reset; remove (wait token.removed); insert (wait
 *                  token.inserted); read the counters: the APDUs ukeyd spent
 *                  identifying the card. Then, in an order that alternates
 *                  from round to round, (a) counters-reset, one cert.list
 *                  timed from the request's first byte written to the
 *                  answer's last byte read, counters; (b) counters-reset,
 *                  `floor --runs 1`, counters. None of the card control or
 *                  the waiting is inside a timing.
 *   warm:          counters-reset; --warmup calls, then --warm timed calls of
 *                  cert.list on the now cached token; counters (must be 0).
 *                  Then as many system.hello calls: the transport's share.
 *   check:         one cert.list with der: the certificates' slots and sizes.
 *
 * Output, one key=value line each: `token id=...`, `cold i=...`, `warm ...`,
 * `hello ...`, `cert key=... der_bytes=...`. Exit 1 on any error (a refused upgrade, an
 * error answer, a timeout, a helper that fails).
 *
 * usage: certs-client --port P --ca FILE --origin O --vpiv BIN --ctl SOCKET
 *                     --floor BIN --reader NAME [--cold N] [--warm N]
 *                     [--warmup N] [--timeout-ms MS]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define WS_MAGIC    "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define HELPER_OUT  4096u
#define MESSAGE_MAX (1u << 20)

typedef struct {
    unsigned port;
    const char *ca, *origin, *vpiv, *ctl, *floor, *reader;
    long cold, warm, warmup, timeout_ms;
} options;

typedef struct {
    int fd;
    SSL *ssl;
    uint8_t buf[16384]; /* bytes read from TLS, not yet parsed */
    size_t off, len;
    long next_id;
} wss;

typedef struct {
    unsigned long long apdus, bytes_in, bytes_out;
} counters;

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("certs-client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- helpers run as child processes ------------------------------------ */

/* Runs argv, its stdout into out (NUL-terminated); dies unless it exits 0. */
static void run(const char *const argv[], char *out, size_t cap)
{
    int p[2];
    if (pipe(p) != 0)
        die("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        execv(argv[0], (char *const *)(uintptr_t)argv); /* execv's argv is not const-correct */
        fprintf(stderr, "certs-client: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(p[0], out + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == cap - 1)
            break;
    }
    out[len] = '\0';
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("%s %s failed: %s", argv[0], argv[1] ? argv[1] : "", out);
}

static void ctl(const options *o, const char *cmd, char *out, size_t cap)
{
    const char *const argv[] = {o->vpiv, "ctl", o->ctl, cmd, NULL};
    run(argv, out, cap);
}

static void ctl_simple(const options *o, const char *cmd)
{
    char out[HELPER_OUT];
    ctl(o, cmd, out, sizeof(out));
}

static counters read_counters(const options *o)
{
    char out[HELPER_OUT];
    counters c;
    unsigned long long apdus_out = 0;
    ctl(o, "counters", out, sizeof(out));
    if (sscanf(out, "ok apdus_in=%llu apdus_out=%llu bytes_in=%llu bytes_out=%llu", &c.apdus,
               &apdus_out, &c.bytes_in, &c.bytes_out) != 4)
        die("unexpected counters reply: %s", out);
    return c;
}

/* ---- WebSocket over TLS --------------------------------------------------- */

static void tls_write(wss *w, const void *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t k = 0;
        if (SSL_write_ex(w->ssl, (const uint8_t *)p + done, n - done, &k) != 1)
            die("TLS write failed");
        done += k;
    }
}

/* Makes at least need bytes available in w->buf[w->off..]. */
static void fill(wss *w, size_t need)
{
    if (need > sizeof(w->buf))
        die("frame header too large");
    if (w->off > 0 && w->len - w->off < need) {
        memmove(w->buf, w->buf + w->off, w->len - w->off);
        w->len -= w->off;
        w->off = 0;
    }
    while (w->len - w->off < need) {
        size_t k = 0;
        if (SSL_read_ex(w->ssl, w->buf + w->len, sizeof(w->buf) - w->len, &k) != 1)
            die("TLS read failed or timed out (ukeyd closed the connection, or nothing came)");
        w->len += k;
    }
}

/* Copies n payload bytes out of the stream into dst. */
static void take(wss *w, uint8_t *dst, size_t n)
{
    while (n > 0) {
        if (w->off == w->len) {
            w->off = w->len = 0;
            fill(w, 1);
        }
        size_t k = w->len - w->off < n ? w->len - w->off : n;
        memcpy(dst, w->buf + w->off, k);
        w->off += k;
        dst += k;
        n -= k;
    }
}

static void send_frame(wss *w, uint8_t opcode, const uint8_t *p, size_t n)
{
    uint8_t head[14], mask[4];
    size_t h = 0;
    head[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        head[h++] = (uint8_t)(0x80 | n);
    } else if (n <= 0xFFFF) {
        head[h++] = 0x80 | 126;
        head[h++] = (uint8_t)(n >> 8);
        head[h++] = (uint8_t)n;
    } else {
        head[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            head[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    if (RAND_bytes(mask, sizeof(mask)) != 1)
        die("RAND_bytes failed");
    memcpy(head + h, mask, 4);
    h += 4;
    uint8_t *frame = malloc(h + n);
    if (frame == NULL)
        die("out of memory");
    memcpy(frame, head, h);
    for (size_t i = 0; i < n; i++)
        frame[h + i] = p[i] ^ mask[i % 4];
    tls_write(w, frame, h + n); /* one TLS record when it fits */
    free(frame);
}

/* The next text message (control frames handled here); malloc'ed, NUL-terminated. */
static char *recv_message(wss *w)
{
    char *msg = NULL;
    size_t len = 0;
    for (;;) {
        fill(w, 2);
        uint8_t b0 = w->buf[w->off], b1 = w->buf[w->off + 1];
        size_t hl = 2, n = b1 & 0x7F;
        if (b1 & 0x80)
            die("the server masked a frame");
        if (n == 126)
            hl += 2;
        else if (n == 127)
            hl += 8;
        fill(w, hl);
        const uint8_t *q = w->buf + w->off + 2;
        if (n == 126) {
            n = (size_t)q[0] << 8 | q[1];
        } else if (n == 127) {
            uint64_t v = 0;
            for (int i = 0; i < 8; i++)
                v = v << 8 | q[i];
            if (v > MESSAGE_MAX)
                die("a frame of %llu bytes", (unsigned long long)v);
            n = (size_t)v;
        }
        w->off += hl;
        uint8_t opcode = b0 & 0x0F;
        if (opcode >= 0x8) {
            uint8_t ctrl[125];
            if (n > sizeof(ctrl))
                die("a control frame of %zu bytes", n);
            take(w, ctrl, n);
            if (opcode == 0x8)
                die("ukeyd closed the WebSocket (code %u)", n >= 2 ? ctrl[0] << 8 | ctrl[1] : 0);
            if (opcode == 0x9)
                send_frame(w, 0xA, ctrl, n);
            continue;
        }
        if (len + n > MESSAGE_MAX)
            die("a message over %u bytes", MESSAGE_MAX);
        char *grown = realloc(msg, len + n + 1);
        if (grown == NULL)
            die("out of memory");
        msg = grown;
        take(w, (uint8_t *)msg + len, n);
        len += n;
        if (b0 & 0x80) {
            msg[len] = '\0';
            return msg;
        }
    }
}

static void ws_open(wss *w, SSL_CTX *tls, const options *o)
{
    w->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (w->fd < 0)
        die("socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(w->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("connect to 127.0.0.1:%u: %s", o->port, strerror(errno));
    int one = 1;
    (void)setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = o->timeout_ms / 1000, .tv_usec = (o->timeout_ms % 1000) * 1000};
    (void)setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

    w->ssl = SSL_new(tls);
    if (w->ssl == NULL || SSL_set_fd(w->ssl, w->fd) != 1 ||
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(w->ssl), "127.0.0.1") != 1)
        die("cannot set up TLS");
    if (SSL_connect(w->ssl) != 1)
        die("TLS handshake with ukeyd failed (does --ca hold its CA?)");

    uint8_t nonce[16];
    char key[32], joined[80], accept[40], req[512];
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (RAND_bytes(nonce, sizeof(nonce)) != 1)
        die("RAND_bytes failed");
    EVP_EncodeBlock((uint8_t *)key, nonce, sizeof(nonce));
    snprintf(joined, sizeof(joined), "%s%s", key, WS_MAGIC);
    if (EVP_Digest(joined, strlen(joined), md, &md_len, EVP_sha1(), NULL) != 1)
        die("SHA-1 failed");
    EVP_EncodeBlock((uint8_t *)accept, md, (int)md_len);
    int n = snprintf(req, sizeof(req),
                     "GET / HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nOrigin: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     o->port, o->origin, key);
    if (n < 0 || (size_t)n >= sizeof(req))
        die("--origin is too long");
    tls_write(w, req, (size_t)n);

    /* The answer's head; what follows it stays in buf as frame bytes. */
    char *end = NULL;
    while (end == NULL) {
        if (w->len == sizeof(w->buf) - 1)
            die("no end to the upgrade answer");
        size_t k = 0;
        if (SSL_read_ex(w->ssl, w->buf + w->len, sizeof(w->buf) - 1 - w->len, &k) != 1)
            die("no answer to the WebSocket upgrade");
        w->len += k;
        w->buf[w->len] = '\0';
        end = strstr((char *)w->buf, "\r\n\r\n");
    }
    if (strncmp((char *)w->buf, "HTTP/1.1 101", 12) != 0)
        die("upgrade refused: %.*s", (int)strcspn((char *)w->buf, "\r\n"), (char *)w->buf);
    char want[96];
    snprintf(want, sizeof(want), "\r\nSec-WebSocket-Accept: %s\r\n", accept);
    end[2] = '\0'; /* keep the last header line's CRLF */
    if (strcasestr((char *)w->buf, want) == NULL)
        die("wrong Sec-WebSocket-Accept");
    w->off = (size_t)((uint8_t *)end + 4 - w->buf);
    w->next_id = 1;
}

/* ---- JSON-RPC -------------------------------------------------------------- */

static long send_call(wss *w, const char *method, cJSON *params)
{
    cJSON *req = cJSON_CreateObject();
    long id = w->next_id++;
    if (req == NULL || !cJSON_AddStringToObject(req, "jsonrpc", "2.0") ||
        !cJSON_AddStringToObject(req, "method", method) ||
        !cJSON_AddNumberToObject(req, "id", (double)id))
        die("out of memory");
    if (params != NULL)
        cJSON_AddItemToObject(req, "params", params);
    char *text = cJSON_PrintUnformatted(req);
    if (text == NULL)
        die("out of memory");
    send_frame(w, 0x1, (const uint8_t *)text, strlen(text));
    cJSON_free(text);
    cJSON_Delete(req);
    return id;
}

/* Messages until the answer with this id (notifications in between are
 * dropped). Returns its result, *whole the message to free; dies on an error
 * answer. */
static cJSON *await_answer(wss *w, long id, cJSON **whole)
{
    for (;;) {
        char *text = recv_message(w);
        cJSON *m = cJSON_Parse(text);
        if (m == NULL)
            die("ukeyd sent something that is not JSON: %.200s", text);
        const cJSON *mid = cJSON_GetObjectItemCaseSensitive(m, "id");
        if (cJSON_IsNumber(mid) && (long)mid->valuedouble == id) {
            cJSON *err = cJSON_GetObjectItemCaseSensitive(m, "error");
            if (err != NULL)
                die("call %ld answered an error: %.300s", id, text);
            cJSON *res = cJSON_GetObjectItemCaseSensitive(m, "result");
            if (res == NULL)
                die("an answer without result: %.300s", text);
            free(text);
            *whole = m;
            return res;
        }
        free(text);
        cJSON_Delete(m);
    }
}

static cJSON *call(wss *w, const char *method, cJSON *params, cJSON **whole)
{
    return await_answer(w, send_call(w, method, params), whole);
}

/* Messages until the notification `method` (anything else is dropped);
 * returns its token's id in out. */
static void await_event(wss *w, const char *method, char *out, size_t cap)
{
    for (;;) {
        char *text = recv_message(w);
        cJSON *m = cJSON_Parse(text);
        if (m == NULL)
            die("ukeyd sent something that is not JSON: %.200s", text);
        const cJSON *meth = cJSON_GetObjectItemCaseSensitive(m, "method");
        if (cJSON_IsString(meth) && strcmp(meth->valuestring, method) == 0) {
            const cJSON *tok = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(m, "params"), "token");
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(tok, "id");
            snprintf(out, cap, "%s", cJSON_IsString(id) ? id->valuestring : "");
            free(text);
            cJSON_Delete(m);
            return;
        }
        free(text);
        cJSON_Delete(m);
    }
}

static cJSON *cert_list_params(const char *token, bool der)
{
    cJSON *p = cJSON_CreateObject();
    if (p == NULL || !cJSON_AddStringToObject(p, "token", token) ||
        (der && !cJSON_AddTrueToObject(p, "der")))
        die("out of memory");
    return p;
}

/* Sends method(params) and waits for its answer: the time from the first
 * byte written to the last byte read. *whole is the answer, to free. */
static uint64_t timed_call(wss *w, const char *method, cJSON *params, cJSON **res, cJSON **whole)
{
    cJSON *req = cJSON_CreateObject();
    long id = w->next_id++;
    if (req == NULL || !cJSON_AddStringToObject(req, "jsonrpc", "2.0") ||
        !cJSON_AddStringToObject(req, "method", method) ||
        !cJSON_AddNumberToObject(req, "id", (double)id))
        die("out of memory");
    if (params != NULL)
        cJSON_AddItemToObject(req, "params", params);
    char *text = cJSON_PrintUnformatted(req); /* built before the clock starts */
    if (text == NULL)
        die("out of memory");
    uint64_t t0 = now_us();
    send_frame(w, 0x1, (const uint8_t *)text, strlen(text));
    *res = await_answer(w, id, whole);
    uint64_t t1 = now_us();
    cJSON_free(text);
    cJSON_Delete(req);
    return t1 - t0;
}

/* One timed cert.list; checks it lists want certificates, none in error. */
static uint64_t timed_cert_list(wss *w, const char *token, int want)
{
    cJSON *res = NULL, *whole = NULL;
    uint64_t us = timed_call(w, "cert.list", cert_list_params(token, false), &res, &whole);
    const cJSON *certs = cJSON_GetObjectItemCaseSensitive(res, "certificates");
    if (cJSON_GetArraySize(certs) != want)
        die("cert.list listed %d certificates, not %d", cJSON_GetArraySize(certs), want);
    const cJSON *c;
    cJSON_ArrayForEach(c, certs)
    {
        if (cJSON_GetObjectItemCaseSensitive(c, "error") != NULL)
            die("cert.list reported an unreadable certificate");
    }
    cJSON_Delete(whole);
    return us;
}

static uint64_t timed_hello(wss *w)
{
    cJSON *res = NULL, *whole = NULL;
    uint64_t us = timed_call(w, "system.hello", NULL, &res, &whole);
    cJSON_Delete(whole);
    return us;
}

/* ---- the rounds ------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t pct(const uint64_t *sorted, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static void floor_run(const options *o, char *out, size_t cap)
{
    const char *const argv[] = {o->floor, "--reader", o->reader, "--runs", "1", NULL};
    run(argv, out, cap);
    out[strcspn(out, "\n")] = '\0';
}

static void cold_round(const options *o, wss *w, const char *token, long i)
{
    char id[128], floor_line[HELPER_OUT];
    uint64_t ukeyd_us = 0;
    counters ins, uk = {0}, fl = {0};

    ctl_simple(o, "counters-reset");
    ctl_simple(o, "remove");
    await_event(w, "token.removed", id, sizeof(id));
    ctl_simple(o, "insert");
    uint64_t t_ins = now_us();
    await_event(w, "token.inserted", id, sizeof(id));
    uint64_t insert_ms = (now_us() - t_ins) / 1000u;
    if (strcmp(id, token) != 0)
        die("the card came back as %s, not %s", id, token);
    ins = read_counters(o);

    bool ukeyd_first = i % 2 == 1;
    for (int k = 0; k < 2; k++) {
        ctl_simple(o, "counters-reset");
        if ((k == 0) == ukeyd_first) {
            ukeyd_us = timed_cert_list(w, token, 2);
            uk = read_counters(o);
        } else {
            floor_run(o, floor_line, sizeof(floor_line));
            fl = read_counters(o);
        }
    }
    printf("cold i=%ld first=%s ukeyd_us=%llu %s insert_ms=%llu insert_apdus=%llu "
           "insert_bytes_in=%llu insert_bytes_out=%llu ukeyd_apdus=%llu ukeyd_bytes_in=%llu "
           "ukeyd_bytes_out=%llu floor_apdus=%llu floor_bytes_in=%llu floor_bytes_out=%llu\n",
           i, ukeyd_first ? "ukeyd" : "floor", (unsigned long long)ukeyd_us, floor_line,
           (unsigned long long)insert_ms, ins.apdus, ins.bytes_in, ins.bytes_out, uk.apdus,
           uk.bytes_in, uk.bytes_out, fl.apdus, fl.bytes_in, fl.bytes_out);
    fflush(stdout);
}

static void warm_runs(const options *o, wss *w, const char *token)
{
    for (long i = 0; i < o->warmup; i++)
        (void)timed_cert_list(w, token, 2);
    ctl_simple(o, "counters-reset");
    uint64_t *t = calloc((size_t)o->warm, sizeof(*t));
    if (t == NULL)
        die("out of memory");
    for (long i = 0; i < o->warm; i++)
        t[i] = timed_cert_list(w, token, 2);
    counters c = read_counters(o);
    size_t n = (size_t)o->warm;
    qsort(t, n, sizeof(*t), cmp_u64);
    printf("warm n=%zu p50_us=%llu p90_us=%llu p99_us=%llu min_us=%llu max_us=%llu apdus=%llu "
           "bytes_in=%llu bytes_out=%llu\n",
           n, (unsigned long long)pct(t, n, 0.5), (unsigned long long)pct(t, n, 0.9),
           (unsigned long long)pct(t, n, 0.99), (unsigned long long)t[0],
           (unsigned long long)t[n - 1], c.apdus, c.bytes_in, c.bytes_out);
    /* The transport's share: system.hello on the same connection, same count. */
    for (long i = 0; i < o->warmup; i++)
        (void)timed_hello(w);
    for (long i = 0; i < o->warm; i++)
        t[i] = timed_hello(w);
    qsort(t, n, sizeof(*t), cmp_u64);
    printf("hello n=%zu p50_us=%llu p90_us=%llu p99_us=%llu\n", n,
           (unsigned long long)pct(t, n, 0.5), (unsigned long long)pct(t, n, 0.9),
           (unsigned long long)pct(t, n, 0.99));
    free(t);
}

/* One call with der: which slots, how large each certificate is. */
static void check_certs(wss *w, const char *token)
{
    cJSON *whole = NULL;
    cJSON *res = call(w, "cert.list", cert_list_params(token, true), &whole);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(res, "certificates"))
    {
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(c, "key");
        const cJSON *der = cJSON_GetObjectItemCaseSensitive(c, "der");
        const cJSON *alg = cJSON_GetObjectItemCaseSensitive(c, "key_algorithm");
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(c, "status");
        if (!cJSON_IsString(key) || !cJSON_IsString(der) || !cJSON_IsString(alg) ||
            !cJSON_IsString(status))
            die("a certificate entry without key, der, key_algorithm or status");
        size_t b64 = strlen(der->valuestring), pad = 0;
        while (pad < 2 && b64 > pad && der->valuestring[b64 - 1 - pad] == '=')
            pad++;
        printf("cert key=%s der_bytes=%zu key_algorithm=%s status=%s\n", key->valuestring,
               b64 / 4 * 3 - pad, alg->valuestring, status->valuestring);
    }
    cJSON_Delete(whole);
}

static long num_arg(const char *s, long min, long max, const char *name)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        die("%s must be a number from %ld to %ld", name, min, max);
    return v;
}

int main(int argc, char **argv)
{
    options o = {.cold = 5, .warm = 1000, .warmup = 100, .timeout_ms = 15000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            die("%s needs a value", a);
        i++;
        if (strcmp(a, "--port") == 0)
            o.port = (unsigned)num_arg(v, 1, 65535, a);
        else if (strcmp(a, "--ca") == 0)
            o.ca = v;
        else if (strcmp(a, "--origin") == 0)
            o.origin = v;
        else if (strcmp(a, "--vpiv") == 0)
            o.vpiv = v;
        else if (strcmp(a, "--ctl") == 0)
            o.ctl = v;
        else if (strcmp(a, "--floor") == 0)
            o.floor = v;
        else if (strcmp(a, "--reader") == 0)
            o.reader = v;
        else if (strcmp(a, "--cold") == 0)
            o.cold = num_arg(v, 0, 10000, a);
        else if (strcmp(a, "--warm") == 0)
            o.warm = num_arg(v, 1, 10000000, a);
        else if (strcmp(a, "--warmup") == 0)
            o.warmup = num_arg(v, 0, 10000000, a);
        else if (strcmp(a, "--timeout-ms") == 0)
            o.timeout_ms = num_arg(v, 100, 600000, a);
        else
            die("unknown option %s", a);
    }
    if (o.port == 0 || !o.ca || !o.origin || !o.vpiv || !o.ctl || !o.floor || !o.reader)
        die("usage: certs-client --port P --ca FILE --origin O --vpiv BIN --ctl SOCKET "
            "--floor BIN --reader NAME [--cold N] [--warm N] [--warmup N] [--timeout-ms MS]");

    SSL_CTX *tls = SSL_CTX_new(TLS_client_method());
    if (tls == NULL || SSL_CTX_load_verify_locations(tls, o.ca, NULL) != 1)
        die("cannot load the CA %s", o.ca);
    SSL_CTX_set_verify(tls, SSL_VERIFY_PEER, NULL);
    wss w = {.fd = -1};
    ws_open(&w, tls, &o);

    cJSON *whole = NULL;
    cJSON *sub = cJSON_CreateObject();
    cJSON *events = cJSON_AddArrayToObject(sub, "events");
    if (events == NULL || !cJSON_AddItemToArray(events, cJSON_CreateString("token.inserted")) ||
        !cJSON_AddItemToArray(events, cJSON_CreateString("token.removed")))
        die("out of memory");
    (void)call(&w, "system.subscribe", sub, &whole);
    cJSON_Delete(whole);

    /* The token in the rig's reader. */
    char token[128] = "";
    cJSON *res = call(&w, "token.list", NULL, &whole);
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(res, "tokens"))
    {
        const cJSON *reader = cJSON_GetObjectItemCaseSensitive(t, "reader");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(t, "id");
        if (cJSON_IsString(reader) && strcmp(reader->valuestring, o.reader) == 0 &&
            cJSON_IsString(id))
            snprintf(token, sizeof(token), "%s", id->valuestring);
    }
    cJSON_Delete(whole);
    if (token[0] == '\0') /* ukeyd is still identifying the card */
        await_event(&w, "token.inserted", token, sizeof(token));
    if (token[0] == '\0')
        die("ukeyd lists no token in '%s'", o.reader);
    printf("token id=%s\n", token);
    fflush(stdout);

    for (long i = 1; i <= o.cold; i++)
        cold_round(&o, &w, token, i);
    if (o.cold == 0)
        (void)timed_cert_list(&w, token, 2); /* fill the cache */
    warm_runs(&o, &w, token);
    check_certs(&w, token);

    SSL_shutdown(w.ssl);
    SSL_free(w.ssl);
    close(w.fd);
    SSL_CTX_free(tls);
    return 0;
}
