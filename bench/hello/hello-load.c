/*
 * hello-load: a WSS load client for the system.hello benchmark (bench/run-hello).
 *
 * One thread, epoll, OpenSSL and hand-written RFC 6455 framing, so that the client costs little
 * per call and the same client drives ukeyd and the baseline server. Each connection keeps
 * --depth requests in flight (1: send, wait for the answer, send the next); a call's latency is
 * the time from handing the frame to SSL_write until its answer has been read and checked.
 *
 * Modes:
 *   --requests K [--warmup-requests W]   K measured calls after W unmeasured ones
 *   --seconds S [--warmup-seconds T]     calls answered in an S-second window after T seconds
 *   --print-hello                        one call; prints the answer (JSON) to stdout
 * Output (stdout, one line): key=value pairs: calls, errors, seconds, rate (calls/s), latency
 * percentiles in microseconds, and with --server-pid the server's CPU use over the window (1.0 =
 * one core busy) next to the client's own, which shows which side is the bottleneck.
 *
 * An answer counts as a call only when it is a JSON-RPC result with the id that was sent; an
 * error answer (rate limit, anything) counts in errors= and the first one is shown on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Requests in flight per connection are tracked in a ring of this size. */
#define RING 64u

/* Largest answer accepted; system.hello answers are well under 1 KiB. */
#define MAX_FRAME (256u * 1024u)

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct conn {
    int fd;
    SSL *ssl;
    unsigned char *in; /* bytes read, not yet parsed as frames */
    size_t in_len, in_cap;
    unsigned char out[512]; /* one frame being written (SSL_write retries need the same buffer) */
    size_t out_len;
    bool want_out; /* EPOLLOUT registered */
    uint64_t next_id;
    uint64_t sent_id[RING];
    uint64_t sent_ns[RING];
    unsigned inflight;
};

struct opts {
    const char *host;
    unsigned port;
    const char *ca;
    char **origins;
    size_t n_origins;
    unsigned connections;
    unsigned depth;
    uint64_t requests, warmup_requests;
    double seconds, warmup_seconds;
    long server_pid;
    bool print_hello;
    bool quiet;
};

struct stats {
    uint64_t *lat_ns; /* latencies of measured calls */
    size_t n_lat, cap_lat;
    uint64_t calls, errors, warm_calls;
    bool measuring;
    bool first_error_shown;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "hello-load: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void die_errno(const char *what)
{
    fprintf(stderr, "hello-load: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* CPU time of process pid (all threads) in seconds, from /proc/PID/stat; -1 if unreadable. */
static double proc_cpu_seconds(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL)
        return -1;
    unsigned long utime = 0, stime = 0;
    /* After ")": state(3) ... utime is field 14, stime 15. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- blocking set-up: TCP, TLS, HTTP upgrade ---- */

static void ssl_write_all(SSL *ssl, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t n = 0;
        if (SSL_write_ex(ssl, (const char *)buf + done, len - done, &n) != 1)
            die("TLS write failed");
        done += n;
    }
}

static void expected_accept(const char *key, char *out, size_t size)
{
    char joined[128];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    int n = snprintf(joined, sizeof joined, "%s%s", key, WS_GUID);
    if (n < 0 || (size_t)n >= sizeof joined ||
        EVP_Digest(joined, (size_t)n, md, &md_len, EVP_sha1(), NULL) != 1 || size < 32)
        die("cannot compute Sec-WebSocket-Accept");
    EVP_EncodeBlock((unsigned char *)out, md, (int)md_len);
}

static void conn_open(struct conn *c, SSL_CTX *ctx, const struct opts *o, const char *origin)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die_errno("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (inet_pton(AF_INET, o->host, &a.sin_addr) != 1)
        die("--host must be an IPv4 address");
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0)
        die_errno("connect");
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        die("SSL_new");
    X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(vp, o->host) != 1)
        die("cannot set the expected IP address");
    if (SSL_connect(c->ssl) != 1)
        die("TLS handshake failed (is --ca the server's CA?)");

    unsigned char raw[16];
    char key[32], accept[64], req[1024];
    if (RAND_bytes(raw, sizeof raw) != 1)
        die("RAND_bytes");
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
    expected_accept(key, accept, sizeof accept);
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\n"
                     "Host: %s:%u\r\n"
                     "Origin: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "\r\n",
                     o->host, o->port, origin, key);
    if (n < 0 || (size_t)n >= sizeof req)
        die("upgrade request too long");
    ssl_write_all(c->ssl, req, (size_t)n);

    /* Read the response head; keep anything after it as frame bytes. */
    char head[4096];
    size_t len = 0;
    char *end = NULL;
    while (end == NULL) {
        size_t got = 0;
        if (len + 1 >= sizeof head ||
            SSL_read_ex(c->ssl, head + len, sizeof head - 1 - len, &got) != 1)
            die("no WebSocket upgrade response");
        len += got;
        head[len] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "hello-load: upgrade refused: %.*s\n", (int)strcspn(head, "\r\n"), head);
        exit(1);
    }
    char want[96];
    snprintf(want, sizeof want, "Sec-WebSocket-Accept: %s\r\n", accept);
    if (strcasestr(head, want) == NULL)
        die("wrong Sec-WebSocket-Accept");
    size_t rest = len - (size_t)(end + 4 - head);
    c->in_cap = 4096;
    c->in = malloc(c->in_cap);
    if (c->in == NULL)
        die("out of memory");
    memcpy(c->in, end + 4, rest);
    c->in_len = rest;
    /* With read-ahead, bytes buffered inside OpenSSL would never wake epoll; servers send nothing
     * unasked right after the upgrade, so this does not happen, but it must not go unnoticed. */
    if (SSL_has_pending(c->ssl))
        die("data buffered after the upgrade response");

    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) != 0)
        die_errno("fcntl");
    c->next_id = 1;
}

/* ---- framing ---- */

static uint32_t xorshift(void)
{
    static uint32_t s = 2463534242u;
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
}

/* Writes one masked client frame (opcode, payload) into c->out. */
static void frame(struct conn *c, unsigned opcode, const void *payload, size_t len)
{
    if (len > 125)
        die("frame too long for the client's buffer");
    uint32_t mask = xorshift();
    unsigned char *p = c->out;
    p[0] = (unsigned char)(0x80u | opcode);
    p[1] = (unsigned char)(0x80u | len);
    memcpy(p + 2, &mask, 4);
    const unsigned char *m = p + 2, *in = payload;
    for (size_t i = 0; i < len; i++)
        p[6 + i] = in[i] ^ m[i & 3];
    c->out_len = 6 + len;
}

static void set_events(int ep, struct conn *c, bool out)
{
    if (c->want_out == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        die_errno("epoll_ctl");
    c->want_out = out;
}

/* Tries to write c->out; returns true when it is all written. */
static bool flush_out(int ep, struct conn *c)
{
    if (c->out_len == 0)
        return true;
    size_t n = 0;
    if (SSL_write_ex(c->ssl, c->out, c->out_len, &n) == 1) {
        c->out_len = 0;
        set_events(ep, c, false);
        return true;
    }
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        set_events(ep, c, true);
        return false;
    }
    die("TLS write failed");
    return false;
}

static void send_request(int ep, struct conn *c)
{
    char json[96];
    uint64_t id = c->next_id++;
    int n = snprintf(json, sizeof json,
                     "{\"jsonrpc\":\"2.0\",\"method\":\"system.hello\",\"id\":%" PRIu64 "}", id);
    unsigned slot = (unsigned)(id % RING);
    c->sent_id[slot] = id;
    c->sent_ns[slot] = now_ns();
    c->inflight++;
    frame(c, 1, json, (size_t)n);
    flush_out(ep, c);
}

static void record(struct stats *st, uint64_t ns)
{
    if (!st->measuring) {
        st->warm_calls++;
        return;
    }
    st->calls++;
    if (st->n_lat == st->cap_lat) {
        size_t cap = st->cap_lat ? st->cap_lat * 2 : 65536;
        uint64_t *p = realloc(st->lat_ns, cap * sizeof *p);
        if (p == NULL)
            die("out of memory");
        st->lat_ns = p;
        st->cap_lat = cap;
    }
    st->lat_ns[st->n_lat++] = ns;
}

/* Checks one answer; returns false for an error answer. */
static bool answer(struct conn *c, struct stats *st, const char *text, size_t len, bool print)
{
    uint64_t t = now_ns();
    const char *idp = memmem(text, len, "\"id\":", 5);
    const char *res = memmem(text, len, "\"result\":", 9);
    uint64_t id = 0;
    if (idp != NULL)
        id = strtoull(idp + 5, NULL, 10);
    unsigned slot = (unsigned)(id % RING);
    if (idp == NULL || c->inflight == 0 || c->sent_id[slot] != id) {
        fprintf(stderr, "hello-load: answer with an unexpected id: %.*s\n", (int)len, text);
        exit(1);
    }
    c->sent_id[slot] = 0;
    c->inflight--;
    if (print && st->measuring)
        printf("%.*s\n", (int)len, text);
    if (res == NULL) {
        if (st->measuring)
            st->errors++;
        if (!st->first_error_shown) {
            st->first_error_shown = true;
            fprintf(stderr, "hello-load: error answer: %.*s\n", (int)(len > 300 ? 300 : len), text);
        }
        return false;
    }
    record(st, t - c->sent_ns[slot]);
    return true;
}

/*
 * Parses the complete frames in c->in. Returns the number of answers handled. Pings are answered;
 * a close frame or a malformed frame ends the run.
 */
static unsigned parse_frames(int ep, struct conn *c, struct stats *st, bool print)
{
    unsigned answers = 0;
    size_t off = 0;
    for (;;) {
        const unsigned char *p = c->in + off;
        size_t avail = c->in_len - off;
        if (avail < 2)
            break;
        unsigned opcode = p[0] & 0x0fu;
        bool fin = (p[0] & 0x80u) != 0;
        if (p[1] & 0x80u)
            die("the server sent a masked frame");
        uint64_t plen = p[1] & 0x7fu;
        size_t hdr = 2;
        if (plen == 126) {
            if (avail < 4)
                break;
            plen = ((uint64_t)p[2] << 8) | p[3];
            hdr = 4;
        } else if (plen == 127) {
            if (avail < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | p[2 + i];
            hdr = 10;
        }
        if (plen > MAX_FRAME)
            die("frame too large");
        if (avail < hdr + plen)
            break;
        const char *payload = (const char *)p + hdr;
        if (!fin && opcode != 0)
            die("fragmented answers are not expected");
        if (opcode == 1) {
            answer(c, st, payload, (size_t)plen, print);
            answers++;
        } else if (opcode == 9) {
            if (c->out_len != 0)
                die("ping while a write is pending");
            frame(c, 10, payload, (size_t)plen);
            flush_out(ep, c);
        } else if (opcode == 8) {
            die("the server closed the connection");
        } else if (opcode != 10) {
            die("unexpected frame opcode");
        }
        off += hdr + (size_t)plen;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return answers;
}

/* Reads what TLS has; returns false on EOF. */
static bool read_in(int ep, struct conn *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 4096) {
            if (c->in_cap >= MAX_FRAME * 2)
                die("receive buffer overflow");
            c->in_cap *= 2;
            unsigned char *p = realloc(c->in, c->in_cap);
            if (p == NULL)
                die("out of memory");
            c->in = p;
        }
        size_t n = 0;
        if (SSL_read_ex(c->ssl, c->in + c->in_len, c->in_cap - c->in_len, &n) == 1) {
            c->in_len += n;
            continue;
        }
        int e = SSL_get_error(c->ssl, 0);
        if (e == SSL_ERROR_WANT_READ)
            return true;
        if (e == SSL_ERROR_WANT_WRITE) {
            set_events(ep, c, true);
            return true;
        }
        return false;
    }
}

static void conn_close(struct conn *c)
{
    int fl = fcntl(c->fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
    /* A clean close: WebSocket close 1000, then TLS close_notify. */
    static const unsigned char code[2] = {0x03, 0xe8};
    frame(c, 8, code, sizeof code);
    size_t n = 0;
    (void)SSL_write_ex(c->ssl, c->out, c->out_len, &n);
    (void)SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
    close(c->fd);
    free(c->in);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1000.0;
}

static void usage(FILE *f)
{
    fputs("usage: hello-load --port P --ca CA.pem --origin O [--origin O2...]\n"
          "                  [--host 127.0.0.1] [--connections N] [--depth D]\n"
          "                  (--requests K [--warmup-requests W] |\n"
          "                   --seconds S [--warmup-seconds T] | --print-hello)\n"
          "                  [--server-pid PID] [--quiet]\n"
          "Connections take the origins in turn.\n",
          f);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"ca", required_argument, NULL, 'a'},
        {"origin", required_argument, NULL, 'o'},
        {"connections", required_argument, NULL, 'c'},
        {"depth", required_argument, NULL, 'd'},
        {"requests", required_argument, NULL, 'n'},
        {"warmup-requests", required_argument, NULL, 'w'},
        {"seconds", required_argument, NULL, 's'},
        {"warmup-seconds", required_argument, NULL, 'W'},
        {"server-pid", required_argument, NULL, 'P'},
        {"print-hello", no_argument, NULL, 'x'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct opts){.host = "127.0.0.1", .connections = 1, .depth = 1};
    o->origins = calloc((size_t)argc, sizeof *o->origins);
    if (o->origins == NULL)
        die("out of memory");
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'H':
            o->host = optarg;
            break;
        case 'p':
            o->port = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'a':
            o->ca = optarg;
            break;
        case 'o':
            o->origins[o->n_origins++] = optarg;
            break;
        case 'c':
            o->connections = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            o->depth = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'n':
            o->requests = strtoull(optarg, NULL, 10);
            break;
        case 'w':
            o->warmup_requests = strtoull(optarg, NULL, 10);
            break;
        case 's':
            o->seconds = strtod(optarg, NULL);
            break;
        case 'W':
            o->warmup_seconds = strtod(optarg, NULL);
            break;
        case 'P':
            o->server_pid = strtol(optarg, NULL, 10);
            break;
        case 'x':
            o->print_hello = true;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (o->print_hello) {
        o->connections = 1;
        o->depth = 1;
        o->requests = 1;
        o->warmup_requests = 0;
        o->seconds = 0;
    }
    bool by_count = o->requests > 0, by_time = o->seconds > 0;
    if (optind != argc || o->port == 0 || o->port > 65535 || o->ca == NULL || o->n_origins == 0 ||
        o->connections == 0 || o->depth == 0 || o->depth >= RING || by_count == by_time) {
        usage(stderr);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    struct opts o;
    parse_args(argc, argv, &o);

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, o.ca, NULL) != 1)
        die("cannot load the CA");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* One read() per batch of records instead of two per record: the client stays cheap. Safe
     * because read_in() reads until WANT_READ, so nothing is left in OpenSSL's buffer. */
    SSL_CTX_set_read_ahead(ctx, 1);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die_errno("epoll_create1");
    struct conn *conns = calloc(o.connections, sizeof *conns);
    if (conns == NULL)
        die("out of memory");
    for (unsigned i = 0; i < o.connections; i++) {
        conn_open(&conns[i], ctx, &o, o.origins[i % o.n_origins]);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) != 0)
            die_errno("epoll_ctl");
    }
    if (!o.quiet) {
        const SSL_CIPHER *cipher = SSL_get_current_cipher(conns[0].ssl);
        fprintf(stderr, "hello-load: %u connection(s), %s %s\n", o.connections,
                SSL_get_version(conns[0].ssl), cipher ? SSL_CIPHER_get_name(cipher) : "?");
    }

    struct stats st = {0};
    bool by_time = o.seconds > 0;
    st.measuring = by_time ? o.warmup_seconds <= 0 : o.warmup_requests == 0;
    uint64_t start = now_ns(), t0 = start, t1 = 0;
    double srv0 = -1, cli0 = 0;
    if (st.measuring) {
        srv0 = o.server_pid > 0 ? proc_cpu_seconds(o.server_pid) : -1;
        cli0 = self_cpu_seconds();
    }
    uint64_t window_ns = (uint64_t)(o.seconds * 1e9), warm_ns = (uint64_t)(o.warmup_seconds * 1e9);
    bool stop_sending = false;
    double srv1 = -1, cli1 = 0;

    for (unsigned i = 0; i < o.connections; i++)
        for (unsigned d = 0; d < o.depth; d++)
            if (conns[i].out_len == 0)
                send_request(ep, &conns[i]);

    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die_errno("epoll_wait");
        }
        if (n == 0)
            die("no answer for a second");
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            if ((evs[k].events & EPOLLOUT) && !flush_out(ep, c))
                continue;
            if (!read_in(ep, c))
                die("the server closed the connection");
            parse_frames(ep, c, &st, o.print_hello);
            /* Keep depth requests in flight (one frame buffered at a time). */
            while (!stop_sending && c->inflight < o.depth && c->out_len == 0)
                send_request(ep, c);
        }
        uint64_t t = now_ns();
        if (!st.measuring && !stop_sending) {
            bool warm = by_time ? t - start >= warm_ns : st.warm_calls >= o.warmup_requests;
            if (warm) {
                st.measuring = true;
                t0 = t;
                srv0 = o.server_pid > 0 ? proc_cpu_seconds(o.server_pid) : -1;
                cli0 = self_cpu_seconds();
            }
        } else if (st.measuring &&
                   (by_time ? t - t0 >= window_ns : st.calls + st.errors >= o.requests)) {
            t1 = t;
            srv1 = srv0 >= 0 ? proc_cpu_seconds(o.server_pid) : -1;
            cli1 = self_cpu_seconds();
            stop_sending = true;
            st.measuring = false; /* answers still in flight are drained, not counted */
        }
        if (stop_sending) {
            unsigned left = 0;
            for (unsigned i = 0; i < o.connections; i++)
                left += conns[i].inflight;
            if (left == 0)
                break;
        }
    }
    double secs = (double)(t1 - t0) / 1e9;
    for (unsigned i = 0; i < o.connections; i++)
        conn_close(&conns[i]);

    if (!o.print_hello) {
        qsort(st.lat_ns, st.n_lat, sizeof *st.lat_ns, cmp_u64);
        printf("connections=%u depth=%u calls=%" PRIu64 " errors=%" PRIu64
               " seconds=%.3f rate=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f "
               "max_us=%.1f client_cpu=%.2f",
               o.connections, o.depth, st.calls, st.errors, secs,
               secs > 0 ? (double)st.calls / secs : 0, pct(st.lat_ns, st.n_lat, 50),
               pct(st.lat_ns, st.n_lat, 90), pct(st.lat_ns, st.n_lat, 99),
               pct(st.lat_ns, st.n_lat, 99.9), pct(st.lat_ns, st.n_lat, 100),
               secs > 0 ? (cli1 - cli0) / secs : 0);
        if (srv1 >= 0)
            printf(" server_cpu=%.2f", (srv1 - srv0) / secs);
        printf("\n");
    }
    free(st.lat_ns);
    free(conns);
    free(o.origins);
    close(ep);
    SSL_CTX_free(ctx);
    return 0;
}
