/* The card behind vpcd, with a control socket for fault and timing
 * injection. Single-threaded: poll() over the vpcd link, the control
 * listener and its clients.
 *
 * vpcd framing: every message is a 2-byte big-endian length and a payload. A
 * 1-byte payload is a control message (0 power off, 1 power on, 2 reset,
 * 4 get ATR); anything longer is a C-APDU answered by exactly one R-APDU. */
#include "vpiv_run.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CTL_CLIENTS 8
#define CTL_LINE        256
/* A removed or dropped card stays out at least this long, even when `insert`
 * comes at once: pcscd polls presence every 400 ms, and a card back before
 * its next poll is never seen as removed; after a failed SCardDisconnect
 * reset pcscd then shows the reader empty for good. */
#define MIN_ABSENCE_MS 1000

typedef struct {
    int fd;
    char line[CTL_LINE];
    size_t len;
} ctl_client;

typedef struct {
    const vpiv_run_options *opt;
    vpiv_card *card;
    int link;             /* vpcd connection, -1 when not connected */
    bool inserted;        /* false after `remove` or a drop until `insert` */
    long long removed_ms; /* CLOCK_MONOTONIC of the last remove or drop */
    long drop_after;      /* -1: off; else APDUs still answered before the drop */
    bool drop_executes;
    int next_sw; /* -1: off */
    unsigned lat_apdu_us, lat_byte_us;
    unsigned long long apdus_in, apdus_out, bytes_in, bytes_out;
    int listener;
    ctl_client clients[MAX_CTL_CLIENTS];
    bool quit;
} runner;

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

static int read_full(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_frame(int fd, const uint8_t *p, size_t n)
{
    uint8_t hdr[2] = {(uint8_t)(n >> 8), (uint8_t)n};
    return write_full(fd, hdr, 2) == 0 && write_full(fd, p, n) == 0 ? 0 : -1;
}

static void link_close(runner *r)
{
    if (r->link >= 0) {
        close(r->link);
        r->link = -1;
    }
    vpiv_card_reset(r->card);
}

static long long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void card_remove(runner *r)
{
    r->inserted = false;
    r->removed_ms = monotonic_ms();
}

static bool may_connect(const runner *r)
{
    return r->inserted && r->link < 0 && monotonic_ms() - r->removed_ms >= MIN_ABSENCE_MS;
}

static void link_try_connect(runner *r)
{
    char port[16];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    snprintf(port, sizeof(port), "%d", r->opt->port);
    if (getaddrinfo(r->opt->host, port, &hints, &res) != 0)
        return;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            r->link = fd;
            vpiv_card_reset(r->card);
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
}

static void save_if_dirty(runner *r)
{
    if (vpiv_card_dirty(r->card) && vpiv_card_save(r->card, r->opt->state_path) == 0)
        vpiv_card_clear_dirty(r->card);
}

static void sleep_us(unsigned long long us)
{
    if (us == 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !got_signal)
        ;
}

static void handle_apdu(runner *r, const uint8_t *c, size_t n)
{
    static uint8_t rapdu[VPIV_MAX_APDU];
    size_t rlen;
    r->apdus_in++;
    r->bytes_in += n;
    if (r->drop_after == 0) {
        /* The card loses power with this command: maybe after executing it
         * (a write that happened but was never confirmed), never answering. */
        if (r->drop_executes) {
            vpiv_card_apdu(r->card, c, n, rapdu);
            save_if_dirty(r);
        }
        r->drop_after = -1;
        card_remove(r);
        link_close(r);
        return;
    }
    if (r->drop_after > 0)
        r->drop_after--;
    if (r->next_sw >= 0) {
        rapdu[0] = (uint8_t)(r->next_sw >> 8);
        rapdu[1] = (uint8_t)r->next_sw;
        rlen = 2;
        r->next_sw = -1;
    } else {
        rlen = vpiv_card_apdu(r->card, c, n, rapdu);
        save_if_dirty(r);
    }
    sleep_us((unsigned long long)r->lat_apdu_us + (unsigned long long)r->lat_byte_us * (n + rlen));
    if (send_frame(r->link, rapdu, rlen) != 0) {
        link_close(r);
        return;
    }
    r->apdus_out++;
    r->bytes_out += rlen;
}

/* vpcd writes a frame's length and payload in two send() calls; with Nagle
 * on its side, the payload waits for our ACK of the length, which delayed
 * ACK holds back ~40 ms. Quick ACK (which the kernel clears again) keeps
 * every APDU from paying that. */
static void quickack(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

static void link_readable(runner *r)
{
    static uint8_t buf[VPIV_MAX_APDU];
    uint8_t hdr[2];
    quickack(r->link);
    if (read_full(r->link, hdr, 2) != 0) {
        link_close(r); /* vpcd went away (pcscd stopped): reconnect later */
        return;
    }
    size_t n = ((size_t)hdr[0] << 8) | hdr[1];
    quickack(r->link);
    if (n == 0 || read_full(r->link, buf, n) != 0) {
        link_close(r);
        return;
    }
    if (n > 1) {
        handle_apdu(r, buf, n);
        return;
    }
    switch (buf[0]) {
    case 0: /* power off */
    case 1: /* power on */
    case 2: /* reset */
        vpiv_card_reset(r->card);
        break;
    case 4: {
        uint8_t atr[33];
        size_t alen = vpiv_card_atr(r->card, atr, sizeof(atr));
        if (send_frame(r->link, atr, alen) != 0)
            link_close(r);
        break;
    }
    default:
        break;
    }
}

static void ctl_reply(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ctl_reply(int fd, const char *fmt, ...)
{
    char line[CTL_LINE];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    write_full(fd, (const uint8_t *)line, (size_t)n);
}

static bool parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    if (s == NULL || *s == '\0' || *s == '-')
        return false;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

static void ctl_command(runner *r, int fd, char *line)
{
    char *argv[4] = {0};
    int argc = 0;
    for (char *save = NULL, *tok = strtok_r(line, " \t\r", &save); tok && argc < 4;
         tok = strtok_r(NULL, " \t\r", &save))
        argv[argc++] = tok;
    if (argc == 0) {
        ctl_reply(fd, "err empty command");
        return;
    }
    const char *cmd = argv[0];
    unsigned long a, b;
    if (strcmp(cmd, "status") == 0) {
        ctl_reply(fd, "ok %s %s drop_after=%ld next_sw=%04x latency=%u/%u",
                  r->inserted ? "inserted" : "removed", r->link >= 0 ? "connected" : "waiting",
                  r->drop_after, r->next_sw < 0 ? 0 : r->next_sw, r->lat_apdu_us, r->lat_byte_us);
    } else if (strcmp(cmd, "remove") == 0 && argc == 1) {
        card_remove(r);
        link_close(r);
        ctl_reply(fd, "ok removed");
    } else if (strcmp(cmd, "insert") == 0 && argc == 1) {
        r->inserted = true;
        if (may_connect(r))
            link_try_connect(r);
        ctl_reply(fd, "ok %s", r->link >= 0 ? "inserted" : "inserting");
    } else if (strcmp(cmd, "drop-after") == 0 && (argc == 2 || argc == 3) &&
               parse_ulong(argv[1], 1000000000ul, &a) &&
               (argc == 2 || strcmp(argv[2], "executed") == 0)) {
        r->drop_after = (long)a;
        r->drop_executes = argc == 3;
        ctl_reply(fd, "ok drop after %lu", a);
    } else if (strcmp(cmd, "next-sw") == 0 && argc == 2) {
        char hex[8];
        snprintf(hex, sizeof(hex), "0x%.4s", argv[1]);
        if (strlen(argv[1]) != 4 || !parse_ulong(hex, 0xFFFF, &a)) {
            ctl_reply(fd, "err next-sw takes four hex digits");
            return;
        }
        r->next_sw = (int)a;
        ctl_reply(fd, "ok next sw %04lx", a);
    } else if (strcmp(cmd, "latency") == 0 && argc == 3 && parse_ulong(argv[1], 10000000, &a) &&
               parse_ulong(argv[2], 1000000, &b)) {
        r->lat_apdu_us = (unsigned)a;
        r->lat_byte_us = (unsigned)b;
        ctl_reply(fd, "ok latency %lu us per apdu, %lu us per byte", a, b);
    } else if (strcmp(cmd, "counters") == 0 && argc == 1) {
        ctl_reply(fd, "ok apdus_in=%llu apdus_out=%llu bytes_in=%llu bytes_out=%llu", r->apdus_in,
                  r->apdus_out, r->bytes_in, r->bytes_out);
    } else if (strcmp(cmd, "counters-reset") == 0 && argc == 1) {
        r->apdus_in = r->apdus_out = r->bytes_in = r->bytes_out = 0;
        ctl_reply(fd, "ok");
    } else if (strcmp(cmd, "quit") == 0 && argc == 1) {
        r->quit = true;
        ctl_reply(fd, "ok bye");
    } else {
        ctl_reply(fd, "err unknown command or arguments: %s", cmd);
    }
}

static void ctl_readable(runner *r, ctl_client *c)
{
    ssize_t n = read(c->fd, c->line + c->len, sizeof(c->line) - 1 - c->len);
    if (n <= 0) {
        close(c->fd);
        c->fd = -1;
        c->len = 0;
        return;
    }
    c->len += (size_t)n;
    char *nl;
    while ((nl = memchr(c->line, '\n', c->len)) != NULL) {
        *nl = '\0';
        size_t used = (size_t)(nl - c->line) + 1;
        ctl_command(r, c->fd, c->line);
        memmove(c->line, c->line + used, c->len - used);
        c->len -= used;
    }
    if (c->len == sizeof(c->line) - 1) {
        ctl_reply(c->fd, "err line too long");
        close(c->fd);
        c->fd = -1;
        c->len = 0;
    }
}

static int ctl_listen(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "vpiv: control socket path too long: %s\n", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    mode_t old = umask(077);
    int rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc != 0 || listen(fd, 8) != 0) {
        fprintf(stderr, "vpiv: cannot listen on %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int vpiv_run(vpiv_card *card, const vpiv_run_options *opt)
{
    runner r = {.opt = opt,
                .card = card,
                .link = -1,
                .inserted = true,
                .removed_ms = -MIN_ABSENCE_MS,
                .drop_after = -1,
                .next_sw = -1,
                .lat_apdu_us = opt->latency_apdu_us,
                .lat_byte_us = opt->latency_byte_us};
    for (int i = 0; i < MAX_CTL_CLIENTS; i++)
        r.clients[i].fd = -1;
    r.listener = ctl_listen(opt->control_path);
    if (r.listener < 0)
        return -1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    while (!got_signal && !r.quit) {
        if (may_connect(&r))
            link_try_connect(&r);
        struct pollfd pfd[2 + MAX_CTL_CLIENTS];
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = r.listener, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = r.link, .events = POLLIN};
        for (int i = 0; i < MAX_CTL_CLIENTS; i++)
            pfd[n++] = (struct pollfd){.fd = r.clients[i].fd, .events = POLLIN};
        /* Poll with a short timeout only while waiting for vpcd to listen. */
        int timeout = r.inserted && r.link < 0 ? 100 : -1;
        if (poll(pfd, (nfds_t)n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[0].revents & POLLIN) {
            int fd = accept4(r.listener, NULL, NULL, SOCK_CLOEXEC);
            int slot = -1;
            for (int i = 0; i < MAX_CTL_CLIENTS && fd >= 0; i++)
                if (r.clients[i].fd < 0) {
                    slot = i;
                    break;
                }
            if (slot >= 0)
                r.clients[slot] = (ctl_client){.fd = fd};
            else if (fd >= 0)
                close(fd);
        }
        if (r.link >= 0 && pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
            link_readable(&r);
        for (int i = 0; i < MAX_CTL_CLIENTS; i++)
            if (r.clients[i].fd >= 0 && pfd[2 + i].fd == r.clients[i].fd &&
                pfd[2 + i].revents & (POLLIN | POLLHUP | POLLERR))
                ctl_readable(&r, &r.clients[i]);
    }
    save_if_dirty(&r);
    link_close(&r);
    for (int i = 0; i < MAX_CTL_CLIENTS; i++)
        if (r.clients[i].fd >= 0)
            close(r.clients[i].fd);
    close(r.listener);
    unlink(opt->control_path);
    return 0;
}
