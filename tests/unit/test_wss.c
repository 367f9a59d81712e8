/*
 * The WSS endpoint against a real TLS WebSocket client.
 *
 * The server (uk_wss on libwebsockets on a libuv loop) runs on a loop thread of its own; each test
 * body is a blocking client written with OpenSSL, so frames, headers and timings are exactly what
 * the test says (including what a browser would never send). The dispatcher is a fake linked in
 * place of daemon/rpc (link seam): it echoes, and records what reached it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "uk_config.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_policy.h"
#include "uk_rpc.h"
#include "uk_wss.h"

#define ALLOWED "https://portal.example.cn"

/* ------------------------------------------------------------------------------------------ */
/* Fake dispatcher (link seam for daemon/rpc).                                                 */

struct uk_rpc {
    atomic_int created;  /* sessions ever created */
    atomic_int open;     /* sessions not yet freed */
    atomic_int inputs;   /* messages delivered */
    atomic_int rejects;  /* uk_rpc_session_reject calls */
    atomic_int max_open; /* refuse new sessions beyond this (0: no limit) */
    pthread_mutex_t mu;
    char last_origin[UK_ORIGIN_MAX + 1];
    int last_endpoint;
};

/* The fake runs on the loop thread, where cmocka's asserts must not be used. */
#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: fake dispatcher: %s failed\n", __FILE__, __LINE__, #x);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct uk_rpc_session {
    uk_rpc *rpc;
    uk_rpc_transport t;
    void *ctx;
};

int uk_rpc_session_new(uk_rpc *rpc, const uk_rpc_peer *peer, const uk_rpc_transport *transport,
                       void *ctx, uk_rpc_session **out)
{
    int max = atomic_load(&rpc->max_open);
    if (max > 0 && atomic_load(&rpc->open) >= max)
        return UK_E_LIMIT_EXCEEDED;
    uk_rpc_session *s = calloc(1, sizeof *s);
    if (s == NULL)
        return UK_E_NO_MEMORY;
    s->rpc = rpc;
    s->t = *transport;
    s->ctx = ctx;
    pthread_mutex_lock(&rpc->mu);
    snprintf(rpc->last_origin, sizeof rpc->last_origin, "%s", peer->origin ? peer->origin : "");
    rpc->last_endpoint = (int)peer->endpoint;
    pthread_mutex_unlock(&rpc->mu);
    atomic_fetch_add(&rpc->created, 1);
    atomic_fetch_add(&rpc->open, 1);
    *out = s;
    return UK_OK;
}

void uk_rpc_session_free(uk_rpc_session *s)
{
    if (s == NULL)
        return;
    atomic_fetch_sub(&s->rpc->open, 1);
    free(s);
}

/*
 * Echoes, except for a few commands: "burst:N" answers N messages "m0".."mN-1", "big:N" answers
 * N bytes of 'x', "close" answers "bye" then asks the transport to close (LIMIT_EXCEEDED).
 */
void uk_rpc_session_input(uk_rpc_session *s, const char *msg, size_t len)
{
    char buf[32];
    atomic_fetch_add(&s->rpc->inputs, 1);
    if (len > 6 && memcmp(msg, "burst:", 6) == 0) {
        int n = atoi(msg + 6);
        for (int i = 0; i < n; i++) {
            int k = snprintf(buf, sizeof buf, "m%d", i);
            CHECK(s->t.send(s->ctx, buf, (size_t)k) == UK_OK);
        }
        return;
    }
    if (len > 4 && memcmp(msg, "big:", 4) == 0) {
        size_t n = (size_t)atol(msg + 4);
        char *big = malloc(n);
        CHECK(big != NULL);
        memset(big, 'x', n);
        CHECK(s->t.send(s->ctx, big, n) == UK_OK);
        free(big);
        return;
    }
    if (len == 5 && memcmp(msg, "close", 5) == 0) {
        CHECK(s->t.send(s->ctx, "bye", 3) == UK_OK);
        s->t.close(s->ctx, UK_E_LIMIT_EXCEEDED);
        return;
    }
    (void)s->t.send(s->ctx, msg, len);
}

void uk_rpc_session_reject(uk_rpc_session *s, int err)
{
    char buf[128];
    atomic_fetch_add(&s->rpc->rejects, 1);
    int n = snprintf(buf, sizeof buf, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":\"%s\"}",
                     uk_err_name(err));
    (void)s->t.send(s->ctx, buf, (size_t)n);
}

size_t uk_rpc_session_count(const uk_rpc *rpc)
{
    return (size_t)atomic_load(&((uk_rpc *)(uintptr_t)rpc)->open);
}

/* ------------------------------------------------------------------------------------------ */
/* Log capture (lines come from the loop thread).                                              */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char logged[65536];

static void sink(void *ctx, uk_log_level level, const char *line, size_t len)
{
    (void)ctx;
    (void)level;
    if (getenv("LWSDBG"))
        fprintf(stderr, "LOG %.*s\n", (int)len, line);
    pthread_mutex_lock(&log_mu);
    size_t used = strlen(logged);
    if (used + len + 2 < sizeof logged) {
        memcpy(logged + used, line, len);
        logged[used + len] = '\n';
        logged[used + len + 1] = '\0';
    }
    pthread_mutex_unlock(&log_mu);
}

static bool log_has(const char *part)
{
    pthread_mutex_lock(&log_mu);
    bool found = strstr(logged, part) != NULL;
    pthread_mutex_unlock(&log_mu);
    return found;
}

static void log_clear(void)
{
    pthread_mutex_lock(&log_mu);
    logged[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

/* ------------------------------------------------------------------------------------------ */
/* Certificate, ports.                                                                         */

static void make_cert(const char *cert_path, const char *key_path)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    assert_non_null(pkey);
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    assert_int_equal(X509_set_pubkey(x, pkey), 1);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *san =
        X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    assert_non_null(san);
    assert_int_equal(X509_add_ext(x, san, -1), 1);
    X509_EXTENSION_free(san);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
    FILE *f = fopen(key_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    f = fopen(cert_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

/* A listening socket on 127.0.0.1 (port 0: any); returns the fd and writes the port. */
static int listen_on(uint16_t port, uint16_t *out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *out = ntohs(a.sin_port);
    return fd;
}

/* A port that was free a moment ago. */
static uint16_t free_port(void)
{
    uint16_t port;
    close(listen_on(0, &port));
    return port;
}

/* ------------------------------------------------------------------------------------------ */
/* Fixture: the server on its own loop thread.                                                 */

typedef struct fx {
    char dir[64];
    char cert[128];
    char key[128];
    uv_loop_t loop;
    uv_async_t stop;
    uv_async_t restart;
    pthread_t thread;
    bool running;
    int close_rc;
    int open_after_stop;
    uk_wss *old_wss;
    atomic_int restarted;
    bool restart_cb_was_sync;
    bool restart_cb_saw_old;
    int restart_rc;
    uint16_t restart_port;
    uk_rpc rpc;
    uk_config *cfg;
    uk_policy *policy;
    uk_wss *wss;
    uint16_t port;
} fx;

static void walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "handle left open: %s\n", uv_handle_type_name(h->type));
}

static void on_stop(uv_async_t *a)
{
    fx *f = a->data;
    uk_wss_stop(f->wss);
    f->wss = NULL;
    f->open_after_stop = atomic_load(&f->rpc.open); /* sessions are freed inside the stop */
    uv_close((uv_handle_t *)&f->stop, NULL);
    uv_close((uv_handle_t *)&f->restart, NULL);
}

/* Restart from the loop thread: close, and start again on the same port in the close callback. */
static void on_restarted(uk_wss *w, void *ctx)
{
    fx *f = ctx;
    f->restart_cb_saw_old = w == f->old_wss;
    uint16_t port = f->port;
    uk_wss_options opt = {.loop = &f->loop,
                          .rpc = &f->rpc,
                          .policy = f->policy,
                          .ports = &port,
                          .n_ports = 1,
                          .cert_path = f->cert,
                          .key_path = f->key};
    f->restart_rc = uk_wss_start(&opt, &f->wss);
    f->restart_port = f->restart_rc == UK_OK ? uk_wss_port(f->wss) : 0;
    atomic_store(&f->restarted, 1);
}

static void on_restart(uv_async_t *a)
{
    fx *f = a->data;
    f->old_wss = f->wss;
    f->wss = NULL;
    uk_wss_close(f->old_wss, on_restarted, f);
    f->restart_cb_was_sync = atomic_load(&f->restarted) != 0;
}

/* The loop thread: serves until on_stop, then lets the loop run dry, as the daemon does. */
static void *loop_main(void *arg)
{
    fx *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT); /* returns once the loop has nothing left */
    f->close_rc = uv_loop_close(&f->loop);
    if (f->close_rc != 0)
        uv_walk(&f->loop, walk_cb, NULL);
    return NULL;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    log_clear();
    uk_log_set_sink(sink, NULL);
    uk_log_set_level(UK_LOG_LEVEL_DEBUG);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_wss.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->cert, sizeof f->cert, "%s/server.pem", f->dir);
    snprintf(f->key, sizeof f->key, "%s/server.key", f->dir);
    make_cert(f->cert, f->key);
    pthread_mutex_init(&f->rpc.mu, NULL);
    /* Pairing off: this is the allowlist's test (pairable origins: tests/daemon/gate.test.js);
     * the state directory (pairing store) is the test's own. */
    char json[512];
    snprintf(json, sizeof json,
             "{\"origins\": [\"" ALLOWED "\", \"http://127.0.0.1:8083\"], \"pairing\": false, "
             "\"state_dir\": \"%s\"}",
             f->dir);
    assert_int_equal(uk_config_parse(json, strlen(json), "test", &f->cfg), UK_OK);
    assert_int_equal(uk_policy_new(f->cfg, &f->policy), UK_OK);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_async_init(&f->loop, &f->stop, on_stop), 0);
    f->stop.data = f;
    assert_int_equal(uv_async_init(&f->loop, &f->restart, on_restart), 0);
    f->restart.data = f;
    *state = f;
    return 0;
}

/* Starts uk_wss with the fields of o that are set (ports default to one free port). */
static int fx_start(fx *f, const uk_wss_options *o)
{
    uint16_t port = free_port();
    uk_wss_options opt = o != NULL ? *o : (uk_wss_options){0};
    opt.loop = &f->loop;
    opt.rpc = &f->rpc;
    opt.policy = f->policy;
    if (opt.cert_path == NULL)
        opt.cert_path = f->cert;
    if (opt.key_path == NULL)
        opt.key_path = f->key;
    if (opt.n_ports == 0) {
        opt.ports = &port;
        opt.n_ports = 1;
    }
    int rc = uk_wss_start(&opt, &f->wss);
    if (rc == UK_OK)
        f->port = uk_wss_port(f->wss);
    assert_int_equal(pthread_create(&f->thread, NULL, loop_main, f), 0);
    f->running = true;
    return rc;
}

/* Stops the server and waits for the loop to close; asserts uv_loop_close() == 0. */
static void fx_stop(fx *f)
{
    if (!f->running)
        return;
    f->running = false;
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    assert_int_equal(f->close_rc, 0);
    assert_int_equal(f->open_after_stop, 0);
    assert_int_equal(atomic_load(&f->rpc.open), 0);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->running) {
        fx_stop(f);
    } else if (f->stop.data != NULL && !uv_is_closing((uv_handle_t *)&f->stop)) {
        /* Never started: close the loop here. */
        uv_close((uv_handle_t *)&f->stop, NULL);
        uv_close((uv_handle_t *)&f->restart, NULL);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&f->loop), 0);
    }
    uk_policy_free(f->policy);
    uk_config_free(f->cfg);
    pthread_mutex_destroy(&f->rpc.mu);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    uk_log_set_sink(NULL, NULL);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* A blocking TLS WebSocket client.                                                            */

typedef struct client {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char head[4096]; /* the last HTTP response head */
} client;

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void cl_open(client *c, uint16_t port)
{
    memset(c, 0, sizeof *c);
    c->fd = tcp_connect(port);
    c->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(c->ctx);
    c->ssl = SSL_new(c->ctx);
    assert_non_null(c->ssl);
    SSL_set_fd(c->ssl, c->fd);
    static char sni[] = "localhost"; /* the macro casts away const */
    SSL_set_tlsext_host_name(c->ssl, sni);
    if (SSL_connect(c->ssl) != 1) {
        ERR_print_errors_fp(stderr);
        fail_msg("TLS handshake failed");
    }
}

static void cl_close(client *c)
{
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    if (c->ctx != NULL)
        SSL_CTX_free(c->ctx);
    if (c->fd > 0)
        close(c->fd);
    memset(c, 0, sizeof *c);
}

static void cl_write(client *c, const void *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t w = 0;
        if (SSL_write_ex(c->ssl, (const char *)p + done, n - done, &w) != 1)
            fail_msg("TLS write failed");
        done += w;
    }
}

/* Reads exactly n bytes; false on EOF or error. */
static bool cl_read(client *c, void *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t r = 0;
        if (SSL_read_ex(c->ssl, (char *)p + done, n - done, &r) != 1)
            return false;
        done += r;
    }
    return true;
}

/* Whether the server closes the connection (EOF or reset) without sending anything more. */
static bool cl_eof(client *c)
{
    char b;
    size_t r = 0;
    return SSL_read_ex(c->ssl, &b, 1, &r) != 1;
}

/* Reads what is left until the server closes (at most size - 1 bytes); false if it does not. */
static bool cl_drain(client *c, char *buf, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        size_t r = 0;
        if (SSL_read_ex(c->ssl, buf + n, size - 1 - n, &r) != 1) {
            buf[n] = '\0';
            return true;
        }
        n += r;
    }
    buf[n] = '\0';
    return false;
}

/* Sends a request (len bytes) and reads the response head; returns the status, 0 if none. */
static int cl_request(client *c, const char *req, size_t len)
{
    cl_write(c, req, len);
    size_t n = 0;
    c->head[0] = '\0';
    while (n + 1 < sizeof c->head) {
        if (!cl_read(c, c->head + n, 1))
            break;
        n++;
        c->head[n] = '\0';
        if (n >= 4 && memcmp(c->head + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    int status = 0;
    if (sscanf(c->head, "HTTP/1.%*d %d", &status) != 1)
        return 0;
    return status;
}

/* An upgrade request with the given Host and Origin (NULL: header left out) and extra lines. */
static int cl_upgrade(client *c, const char *host, const char *origin, const char *extra)
{
    char req[8192];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\n%s%s%s"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s%s%s\r\n",
                     host ? "Host: " : "", host ? host : "", host ? "\r\n" : "",
                     origin ? "Origin: " : "", origin ? origin : "", origin ? "\r\n" : "",
                     extra ? extra : "");
    assert_true(n > 0 && (size_t)n < sizeof req);
    return cl_request(c, req, (size_t)n);
}

/* pattern with each "PORT" replaced by port, into buf. */
static size_t subst_port(char *buf, size_t size, const char *pattern, uint16_t port)
{
    size_t n = 0;
    for (const char *p = pattern; *p != '\0' && n + 8 < size;) {
        if (strncmp(p, "PORT", 4) == 0) {
            n += (size_t)snprintf(buf + n, size - n, "%u", (unsigned)port);
            p += 4;
        } else {
            buf[n++] = *p++;
        }
    }
    buf[n] = '\0';
    return n;
}

static const char *host_of(const fx *f)
{
    static char buf[32];
    snprintf(buf, sizeof buf, "127.0.0.1:%u", (unsigned)f->port);
    return buf;
}

/* Connects and upgrades as an allowed page would; asserts 101. */
static void cl_connect_ok(client *c, const fx *f)
{
    cl_open(c, f->port);
    int status = cl_upgrade(c, host_of(f), ALLOWED, NULL);
    if (status != 101)
        fail_msg("upgrade answered %d:\n%s", status, c->head);
}

/* One masked frame. */
static void cl_frame(client *c, int opcode, bool fin, const void *p, size_t n)
{
    unsigned char h[14];
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    size_t hl = 0;
    h[hl++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        h[hl++] = (unsigned char)(0x80 | n);
    } else if (n <= 0xffff) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(n >> 8);
        h[hl++] = (unsigned char)n;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    memcpy(h + hl, mask, 4);
    hl += 4;
    unsigned char *buf = malloc(hl + n + 1);
    assert_non_null(buf);
    memcpy(buf, h, hl);
    for (size_t i = 0; i < n; i++)
        buf[hl + i] = ((const unsigned char *)p)[i] ^ mask[i % 4];
    cl_write(c, buf, hl + n);
    free(buf);
}

static void cl_text(client *c, const char *s)
{
    cl_frame(c, 1, true, s, strlen(s));
}

typedef struct msg {
    int opcode; /* 1 text, 2 binary, 8 close, -1 connection ended without a close frame */
    char *data; /* NUL-terminated */
    size_t len;
    int close_code;
} msg;

/* Reads the next whole message (pings answered, fragments joined) or the close frame. */
static msg cl_recv(client *c)
{
    msg m = {.opcode = -1};
    for (;;) {
        unsigned char h[2];
        if (!cl_read(c, h, 2))
            return m;
        int op = h[0] & 0x0f;
        bool fin = (h[0] & 0x80) != 0;
        uint64_t n = h[1] & 0x7f;
        assert_false(h[1] & 0x80); /* server frames are not masked */
        if (n == 126 || n == 127) {
            unsigned char e[8];
            size_t el = n == 126 ? 2 : 8;
            if (!cl_read(c, e, el))
                return m;
            n = 0;
            for (size_t i = 0; i < el; i++)
                n = (n << 8) | e[i];
        }
        unsigned char *p = malloc(n + 1);
        assert_non_null(p);
        if (!cl_read(c, p, n)) {
            free(p);
            return m;
        }
        if (op == 9) { /* ping: answer */
            cl_frame(c, 10, true, p, n);
            free(p);
            continue;
        }
        if (op == 10) { /* pong: ignore */
            free(p);
            continue;
        }
        if (op == 8) {
            free(m.data);
            m.data = NULL;
            m.len = 0;
            m.opcode = 8;
            m.close_code = n >= 2 ? (p[0] << 8 | p[1]) : 1005;
            free(p);
            return m;
        }
        char *d = realloc(m.data, m.len + n + 1);
        assert_non_null(d);
        memcpy(d + m.len, p, n);
        m.len += n;
        d[m.len] = '\0';
        m.data = d;
        free(p);
        if (op != 0)
            m.opcode = op;
        if (fin)
            return m;
    }
}

/* Expects a text message equal to want. */
static void expect_text(client *c, const char *want)
{
    msg m = cl_recv(c);
    if (m.opcode != 1 || strcmp(m.data, want) != 0)
        fail_msg("expected text \"%.80s\", got opcode %d \"%.80s\"", want, m.opcode,
                 m.data ? m.data : "");
    free(m.data);
}

/* Expects a close frame with code. */
static void expect_close(client *c, int code)
{
    msg m = cl_recv(c);
    if (m.opcode != 8 || m.close_code != code)
        fail_msg("expected close %d, got opcode %d code %d \"%.80s\"", code, m.opcode, m.close_code,
                 m.data ? m.data : "");
    free(m.data);
}

/*
 * An upgrade that must be refused with 403 and the connection closed, with no session made. The
 * body names the reason and reflects nothing from the request.
 */
static void expect_refused(fx *f, const char *host, const char *origin, const char *extra)
{
    client c;
    char body[4096];
    int before = atomic_load(&f->rpc.created);
    cl_open(&c, f->port);
    int status = cl_upgrade(&c, host, origin, extra);
    if (status != 403)
        fail_msg("Host %s Origin %s: expected 403, got %d:\n%s", host ? host : "(none)",
                 origin ? origin : "(none)", status, c.head);
    assert_null(strcasestr(c.head, "Access-Control-Allow"));
    assert_true(cl_drain(&c, body, sizeof body));
    assert_true(strstr(body, "ORIGIN_NOT_ALLOWED") != NULL ||
                strstr(body, "HOST_NOT_ALLOWED") != NULL);
    assert_null(strstr(body, "evil"));
    cl_close(&c);
    assert_int_equal(atomic_load(&f->rpc.created), before);
}

/* ------------------------------------------------------------------------------------------ */
/* Tests.                                                                                      */

static void test_wss_allowed_origin_gets_echo(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    client c;
    cl_connect_ok(&c, f);
    assert_null(strstr(c.head, "Sec-WebSocket-Protocol")); /* none asked, none chosen */
    cl_text(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.hello\"}");
    expect_text(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.hello\"}");
    assert_int_equal(atomic_load(&f->rpc.created), 1);
    pthread_mutex_lock(&f->rpc.mu);
    assert_string_equal(f->rpc.last_origin, ALLOWED);
    assert_int_equal(f->rpc.last_endpoint, UK_ENDPOINT_WSS);
    pthread_mutex_unlock(&f->rpc.mu);
    cl_frame(&c, 8, true, "\x03\xe8", 2); /* close 1000 */
    expect_close(&c, 1000);
    cl_close(&c);
}

static void test_wss_localhost_host_and_subprotocol_accepted(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    client c;
    char host[32];
    snprintf(host, sizeof host, "localhost:%u", (unsigned)f->port);
    cl_open(&c, f->port);
    assert_int_equal(cl_upgrade(&c, host, "http://127.0.0.1:8083",
                                "Sec-WebSocket-Protocol: " UK_WSS_SUBPROTOCOL "\r\n"),
                     101);
    assert_non_null(strstr(c.head, "Sec-WebSocket-Protocol: " UK_WSS_SUBPROTOCOL));
    cl_text(&c, "hi");
    expect_text(&c, "hi");
    cl_close(&c);
    /* A subprotocol we do not speak is refused. */
    cl_open(&c, f->port);
    assert_int_not_equal(cl_upgrade(&c, host, ALLOWED, "Sec-WebSocket-Protocol: chat\r\n"), 101);
    cl_close(&c);
}

static void test_wss_origin_matrix_refused_before_upgrade(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    static const char *const bad[] = {
        "https://portal.example.cn:8443",  /* other port */
        "wss://portal.example.cn",         /* other scheme */
        "http://portal.example.cn",        /* http vs https */
        "https://PORTAL.example.cn",       /* uppercase host */
        "https://portal.example.cn.",      /* trailing dot */
        "https://user@portal.example.cn",  /* userinfo */
        "https://\xe4\xb8\xad.example.cn", /* IDN, raw */
        "null",                            /* opaque origin */
        "",                                /* empty */
        "https://portal.example.cn/",      /* trailing slash */
        "https://portal.example.cn:443",   /* default port written out */
        "https://portal.example.cn:0",     /* port 0 */
        "https://evil.test",               /* simply not listed */
        "https://portal.example.cn.evil.test",
        "*",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_refused(f, host_of(f), bad[i], NULL);
    expect_refused(f, host_of(f), NULL, NULL); /* missing */
    /* Very long, and two Origin headers (lws joins them; the result is not an origin). */
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "https://", 8);
    expect_refused(f, host_of(f), big, NULL);
    expect_refused(f, host_of(f), ALLOWED, "Origin: " ALLOWED "\r\n");
    expect_refused(f, host_of(f), ALLOWED, "Origin: https://evil.test\r\n");
    assert_int_equal(atomic_load(&f->rpc.created), 0);
    assert_true(log_has("endpoint=wss origin=\"https://evil.test\" reason=ORIGIN_NOT_ALLOWED"));
    assert_true(log_has("endpoint=wss origin=\"null\" reason=ORIGIN_NOT_ALLOWED"));
    assert_true(log_has("endpoint=wss origin=(none) reason=ORIGIN_NOT_ALLOWED (no Origin header)"));
}

static void test_wss_origin_with_nul_or_control_bytes_refused(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    /* An Origin with a NUL byte inside: the allowed origin, then "\0.evil.test". */
    char req[512];
    size_t n = subst_port(req, sizeof req,
                          "GET / HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n"
                          "Origin: https://portal.example.cn",
                          f->port);
    static const char rest[] = "\0.evil.test\r\n"
                               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n\r\n";
    memcpy(req + n, rest, sizeof rest - 1);
    client c;
    cl_open(&c, f->port);
    int status = cl_request(&c, req, n + sizeof rest - 1);
    assert_int_not_equal(status, 101);
    cl_close(&c);
    expect_refused(f, host_of(f), "https://portal.example.cn\t", NULL);
    assert_int_equal(atomic_load(&f->rpc.created), 0);
}

static void test_wss_host_matrix(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    char h[64];
    static const char *const pattern[] = {
        "127.0.0.1:PORT1",  /* wrong port */
        "127.0.0.1",        /* missing port */
        "evil.test:PORT",   /* DNS rebinding */
        "127.0.0.2:PORT",   /* another loopback address */
        "[::1]:PORT",       /* IPv6 loopback: we listen on IPv4 only */
        "LOCALHOST:PORT",   /* uppercase */
        "localhost.:PORT",  /* trailing dot */
        "u@localhost:PORT", /* userinfo */
        "localhost:PORT/",  /* junk */
        "",                 /* empty */
    };
    for (size_t i = 0; i < sizeof pattern / sizeof pattern[0]; i++) {
        subst_port(h, sizeof h, pattern[i], f->port);
        expect_refused(f, h, ALLOWED, NULL);
    }
    assert_true(log_has("reason=HOST_NOT_ALLOWED"));
    /* No Host at all (HTTP/1.1 requires one; lws may refuse it first: never 101). */
    client c;
    cl_open(&c, f->port);
    assert_int_not_equal(cl_upgrade(&c, NULL, ALLOWED, NULL), 101);
    cl_close(&c);
    assert_int_equal(atomic_load(&f->rpc.created), 0);
}

static void test_wss_plain_http_requests_get_404(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    static const char *const reqs[] = {
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\nOrigin: " ALLOWED "\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n\r\n",
        "POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\nOrigin: " ALLOWED "\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        "OPTIONS / HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\nOrigin: " ALLOWED "\r\n"
        "Access-Control-Request-Method: POST\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        char req[1024];
        size_t n = subst_port(req, sizeof req, reqs[i], f->port);
        client c;
        cl_open(&c, f->port);
        int status = cl_request(&c, req, n);
        if (status != 404)
            fail_msg("request %zu: expected 404, got %d:\n%s", i, status, c.head);
        assert_null(strcasestr(c.head, "Access-Control-Allow"));
        char body[4096];
        assert_true(cl_drain(&c, body, sizeof body));
        cl_close(&c);
    }
    assert_int_equal(atomic_load(&f->rpc.created), 0);
    assert_true(log_has("endpoint=wss origin=(none) reason=NOT_FOUND"));
}

static void test_wss_message_at_limit_echoed_over_limit_rejected_1009(void **state)
{
    fx *f = *state;
    uk_wss_options o = {.message_size = 4096};
    assert_int_equal(fx_start(f, &o), UK_OK);
    char *big = malloc(4098);
    assert_non_null(big);
    memset(big, 'a', 4097);
    big[4096] = '\0';
    client c;
    cl_connect_ok(&c, f);
    cl_text(&c, big); /* exactly the limit */
    expect_text(&c, big);
    big[4096] = 'a';
    big[4097] = '\0';
    cl_text(&c, big); /* one byte over */
    expect_text(&c, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":\"LIMIT_EXCEEDED\"}");
    expect_close(&c, 1009);
    cl_close(&c);
    assert_int_equal(atomic_load(&f->rpc.rejects), 1);
    assert_int_equal(atomic_load(&f->rpc.inputs), 1);
    free(big);
}

static void test_wss_huge_frame_rejected_without_reading_it(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    client c;
    cl_connect_ok(&c, f);
    /* A frame header announcing 1 GiB, then a little of it: refused from the header. */
    unsigned char h[14] = {0x81, 0x80 | 127, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4};
    cl_write(&c, h, sizeof h);
    char some[1024] = {0};
    cl_write(&c, some, sizeof some);
    expect_text(&c, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":\"LIMIT_EXCEEDED\"}");
    expect_close(&c, 1009);
    cl_close(&c);
    assert_int_equal(atomic_load(&f->rpc.inputs), 0);
}

static void test_wss_fragmented_message_reassembled(void **state)
{
    fx *f = *state;
    uk_wss_options o = {.message_size = 100};
    assert_int_equal(fx_start(f, &o), UK_OK);
    client c;
    cl_connect_ok(&c, f);
    cl_frame(&c, 1, false, "{\"jsonrpc\":", 11);
    cl_frame(&c, 9, true, "p", 1); /* a ping between fragments is allowed (its pong is skipped) */
    cl_frame(&c, 0, false, "\"2.0\",", 6);
    cl_frame(&c, 0, true, "\"id\":7}", 7);
    expect_text(&c, "{\"jsonrpc\":\"2.0\",\"id\":7}");
    assert_int_equal(atomic_load(&f->rpc.inputs), 1);
    /* Fragments that add up to more than the limit. */
    char part[60];
    memset(part, 'b', sizeof part);
    cl_frame(&c, 1, false, part, sizeof part);
    cl_frame(&c, 0, true, part, sizeof part);
    expect_text(&c, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":\"LIMIT_EXCEEDED\"}");
    expect_close(&c, 1009);
    cl_close(&c);
    assert_int_equal(atomic_load(&f->rpc.inputs), 1);
}

static double now_secs(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_wss_binary_frame_closes_1003(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    client c;
    cl_connect_ok(&c, f);
    cl_frame(&c, 2, true, "\x01\x02\x03", 3);
    expect_close(&c, 1003);
    /* The client's close ack ends the connection at once (not at lws's 5 s close timeout), and
     * the session is freed. */
    double t0 = now_secs();
    cl_frame(&c, 8, true, "\x03\xeb", 2);
    assert_true(cl_eof(&c));
    for (int i = 0; i < 200 && atomic_load(&f->rpc.open) != 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&f->rpc.open), 0);
    assert_true(now_secs() - t0 < 2.0);
    cl_close(&c);
    assert_int_equal(atomic_load(&f->rpc.inputs), 0);
}

static void test_wss_invalid_utf8_closes_1007(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    client c;
    cl_connect_ok(&c, f);
    cl_frame(&c, 1, true, "{\"a\":\"\xff\xfe\"}", 10);
    expect_close(&c, 1007);
    cl_close(&c);
    assert_int_equal(atomic_load(&f->rpc.inputs), 0);
}

static void test_wss_thousand_malformed_messages_reach_dispatcher(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    static const char *const junk[] = {
        "",
        "{",
        "}",
        "[]",
        "null",
        "{\"jsonrpc\":",
        "\"\\u0000\"",
        "{\"id\":1e999}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        "\xc3\xa9\xe4\xb8\xad",
    };
    client c;
    cl_connect_ok(&c, f);
    for (int i = 0; i < 1000; i++) {
        const char *j = junk[i % (sizeof junk / sizeof junk[0])];
        cl_text(&c, j);
        expect_text(&c, j);
    }
    assert_int_equal(atomic_load(&f->rpc.inputs), 1000);
    cl_text(&c, "still here");
    expect_text(&c, "still here");
    cl_close(&c);
}

static void test_wss_answers_queue_and_large_answers_arrive_whole(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    client c;
    cl_connect_ok(&c, f);
    cl_text(&c, "burst:5");
    for (int i = 0; i < 5; i++) {
        char want[8];
        snprintf(want, sizeof want, "m%d", i);
        expect_text(&c, want);
    }
    cl_text(&c, "big:300000");
    msg m = cl_recv(&c);
    assert_int_equal(m.opcode, 1);
    assert_int_equal(m.len, 300000);
    assert_int_equal(m.data[0], 'x');
    assert_int_equal(m.data[299999], 'x');
    free(m.data);
    cl_close(&c);
}

static void test_wss_dispatcher_close_flushes_then_closes_1008(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    client c;
    cl_connect_ok(&c, f);
    cl_text(&c, "close");
    expect_text(&c, "bye");
    expect_close(&c, 1008);
    cl_close(&c);
}

static void test_wss_connection_limit_closes_1013(void **state)
{
    fx *f = *state;
    atomic_store(&f->rpc.max_open, 1);
    assert_int_equal(fx_start(f, NULL), UK_OK);
    client a, b;
    cl_connect_ok(&a, f);
    cl_text(&a, "one");
    expect_text(&a, "one");
    cl_connect_ok(&b, f);
    expect_close(&b, 1013);
    cl_close(&b);
    assert_true(log_has("reason=LIMIT_EXCEEDED"));
    cl_text(&a, "still one");
    expect_text(&a, "still one");
    cl_close(&a);
}

/* The listening socket in /proc/net/tcp{,6}: count LISTEN entries on port, and their address. */
static int proc_listeners(const char *file, uint16_t port, char *addr, size_t size)
{
    FILE *fp = fopen(file, "r");
    if (fp == NULL)
        return 0;
    char line[512];
    int count = 0;
    while (fgets(line, sizeof line, fp) != NULL) {
        char local[64];
        unsigned st = 0;
        if (sscanf(line, " %*d: %63s %*s %x", local, &st) != 2)
            continue;
        char *colon = strrchr(local, ':');
        if (colon == NULL || st != 0x0A || strtoul(colon + 1, NULL, 16) != port)
            continue;
        *colon = '\0';
        snprintf(addr, size, "%s", local);
        count++;
    }
    fclose(fp);
    return count;
}

static void test_wss_listens_on_ipv4_loopback_only(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    char addr[64] = "";
    assert_int_equal(proc_listeners("/proc/net/tcp", f->port, addr, sizeof addr), 1);
    assert_string_equal(addr, "0100007F"); /* 127.0.0.1 */
    assert_int_equal(proc_listeners("/proc/net/tcp6", f->port, addr, sizeof addr), 0);
}

static void test_wss_port_fallback_takes_next_free_port(void **state)
{
    fx *f = *state;
    uint16_t taken;
    int squatter = listen_on(0, &taken);
    uint16_t ports[2] = {taken, free_port()};
    uk_wss_options o = {.ports = ports, .n_ports = 2};
    assert_int_equal(fx_start(f, &o), UK_OK);
    assert_int_equal(uk_wss_port(f->wss), ports[1]);
    assert_true(log_has("is taken, trying the next one"));
    client c;
    cl_connect_ok(&c, f);
    cl_text(&c, "x");
    expect_text(&c, "x");
    cl_close(&c);
    close(squatter);
}

static void test_wss_every_port_taken_is_busy(void **state)
{
    fx *f = *state;
    uint16_t a, b;
    int s1 = listen_on(0, &a);
    int s2 = listen_on(0, &b);
    uint16_t ports[2] = {a, b};
    uk_wss_options o = {.ports = ports, .n_ports = 2};
    assert_int_equal(fx_start(f, &o), UK_E_BUSY);
    assert_null(f->wss);
    assert_true(log_has("every port is taken"));
    fx_stop(f); /* lws left nothing on the loop: uv_loop_close() == 0 */
    close(s1);
    close(s2);
}

static void test_wss_missing_certificate_is_tls_error(void **state)
{
    fx *f = *state;
    uk_wss_options o = {.cert_path = "/nonexistent/cert.pem"};
    assert_int_equal(fx_start(f, &o), UK_E_TLS_ERROR);
    assert_null(f->wss);
    fx_stop(f);
}

static void test_wss_bad_options_refused(void **state)
{
    fx *f = *state;
    uk_wss *w = NULL;
    uint16_t zero = 0;
    uk_wss_options o = {.loop = &f->loop,
                        .rpc = &f->rpc,
                        .policy = f->policy,
                        .cert_path = f->cert,
                        .key_path = f->key};
    assert_int_equal(uk_wss_start(&o, &w), UK_E_CONFIG_INVALID); /* no ports */
    o.ports = &zero;
    o.n_ports = 1;
    assert_int_equal(uk_wss_start(&o, &w), UK_E_CONFIG_INVALID); /* port 0 */
    assert_int_equal(uk_wss_start(NULL, &w), UK_E_CONFIG_INVALID);
    assert_null(w);
    uk_wss_stop(NULL);
    uk_wss_close(NULL, NULL, NULL);
}

static void test_wss_silent_client_dropped_after_handshake_timeout(void **state)
{
    fx *f = *state;
    uk_wss_options o = {.handshake_timeout_secs = 1};
    assert_int_equal(fx_start(f, &o), UK_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* TCP only, no TLS ClientHello. */
    int fd = tcp_connect(f->port);
    char b;
    ssize_t r = recv(fd, &b, 1, 0);
    assert_true(r <= 0);
    assert_true(r == 0 || errno != EAGAIN); /* closed by the server, not our 10 s timeout */
    close(fd);
    /* TLS, then half a request (slow loris). */
    client c;
    cl_open(&c, f->port);
    const char *part = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    cl_write(&c, part, strlen(part));
    assert_true(cl_eof(&c));
    cl_close(&c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(secs < 9.0);
    assert_int_equal(atomic_load(&f->rpc.created), 0);
}

static void test_wss_stop_with_open_connections_closes_loop_cleanly(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    client a, b;
    cl_connect_ok(&a, f);
    cl_connect_ok(&b, f);
    cl_text(&a, "a");
    expect_text(&a, "a");
    cl_text(&b, "burst:3");
    expect_text(&b, "m0");
    assert_int_equal(atomic_load(&f->rpc.open), 2);
    fx_stop(f); /* asserts uv_loop_close() == 0 and every session freed */
    msg m = cl_recv(&a);
    assert_true(m.opcode == 8 || m.opcode == -1);
    free(m.data);
    cl_close(&a);
    cl_close(&b);
}

static void test_wss_restart_in_close_callback_keeps_the_port(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    uint16_t port = f->port;
    client c;
    cl_connect_ok(&c, f);
    cl_text(&c, "before");
    expect_text(&c, "before");
    uv_async_send(&f->restart);
    for (int i = 0; i < 1000 && atomic_load(&f->restarted) == 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&f->restarted), 1);
    assert_false(f->restart_cb_was_sync); /* never called from inside uk_wss_close */
    assert_true(f->restart_cb_saw_old);
    assert_int_equal(f->restart_rc, UK_OK);
    assert_int_equal(f->restart_port, port); /* the old listener was gone by then */
    assert_int_equal(atomic_load(&f->rpc.open), 0);
    msg m = cl_recv(&c); /* the old connection was closed */
    assert_true(m.opcode == 8 || m.opcode == -1);
    free(m.data);
    cl_close(&c);
    cl_connect_ok(&c, f);
    cl_text(&c, "after");
    expect_text(&c, "after");
    cl_close(&c);
}

static void test_wss_policy_reload_applies_to_new_upgrades(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_start(f, NULL), UK_OK);
    client c;
    cl_connect_ok(&c, f);
    cl_close(&c);
    /* The 101 can reach us before the server's ESTABLISHED callback made the session: wait for
     * it, so the refusal below is not blamed for a late session of this connection. */
    for (int i = 0; i < 500 && atomic_load(&f->rpc.created) < 1; i++)
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    assert_int_equal(atomic_load(&f->rpc.created), 1);
    /* The policy is reloaded from the test thread while the loop waits in epoll: the gate reads
     * it only inside callbacks, which cannot run until the next connection arrives. */
    uk_config *cfg = NULL;
    char json[512];
    snprintf(json, sizeof json,
             "{\"origins\": [\"https://new.example.cn\"], \"pairing\": false, \"state_dir\": "
             "\"%s\"}",
             f->dir);
    assert_int_equal(uk_config_parse(json, strlen(json), "reload", &cfg), UK_OK);
    assert_int_equal(uk_policy_reload(f->policy, cfg), UK_OK);
    uk_config_free(cfg);
    expect_refused(f, host_of(f), ALLOWED, NULL);
    cl_open(&c, f->port);
    assert_int_equal(cl_upgrade(&c, host_of(f), "https://new.example.cn", NULL), 101);
    cl_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_wss_allowed_origin_gets_echo),
        T(test_wss_localhost_host_and_subprotocol_accepted),
        T(test_wss_origin_matrix_refused_before_upgrade),
        T(test_wss_origin_with_nul_or_control_bytes_refused),
        T(test_wss_host_matrix),
        T(test_wss_plain_http_requests_get_404),
        T(test_wss_message_at_limit_echoed_over_limit_rejected_1009),
        T(test_wss_huge_frame_rejected_without_reading_it),
        T(test_wss_fragmented_message_reassembled),
        T(test_wss_binary_frame_closes_1003),
        T(test_wss_invalid_utf8_closes_1007),
        T(test_wss_thousand_malformed_messages_reach_dispatcher),
        T(test_wss_answers_queue_and_large_answers_arrive_whole),
        T(test_wss_dispatcher_close_flushes_then_closes_1008),
        T(test_wss_connection_limit_closes_1013),
        T(test_wss_listens_on_ipv4_loopback_only),
        T(test_wss_port_fallback_takes_next_free_port),
        T(test_wss_every_port_taken_is_busy),
        T(test_wss_missing_certificate_is_tls_error),
        T(test_wss_bad_options_refused),
        T(test_wss_silent_client_dropped_after_handshake_timeout),
        T(test_wss_stop_with_open_connections_closes_loop_cleanly),
        T(test_wss_restart_in_close_callback_keeps_the_port),
        T(test_wss_policy_reload_applies_to_new_upgrades),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
