/*
 * uk_pcsc.c - the PC/SC adapter: the only file of ukeyd that includes
 * winscard.h. See uk_pcsc.h for what it offers and why connections are
 * short-lived.
 */
#include "uk_pcsc.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <winscard.h>

#include "uk_err.h"
#include "uk_log.h"

/* ---- error translation ------------------------------------------------ */

/*
 * Every PC/SC code we may see, its name, our reason, and whether it is an
 * expected condition (logged at debug) rather than a fault (a warning).
 * SCARD_E_UNEXPECTED has the value of SCARD_E_UNSUPPORTED_FEATURE in
 * pcsc-lite; only the latter is listed.
 */
#define UK_SCARD_TABLE(X)                                                                          \
    X(SCARD_F_INTERNAL_ERROR, UK_E_INTERNAL, false)                                                \
    X(SCARD_E_CANCELLED, UK_E_CANCELLED, true)                                                     \
    X(SCARD_E_INVALID_HANDLE, UK_E_INTERNAL, false)                                                \
    X(SCARD_E_INVALID_PARAMETER, UK_E_INTERNAL, false)                                             \
    X(SCARD_E_INVALID_TARGET, UK_E_INTERNAL, false)                                                \
    X(SCARD_E_NO_MEMORY, UK_E_NO_MEMORY, false)                                                    \
    X(SCARD_F_WAITED_TOO_LONG, UK_E_TIMEOUT, false)                                                \
    X(SCARD_E_INSUFFICIENT_BUFFER, UK_E_LIMIT_EXCEEDED, false)                                     \
    X(SCARD_E_UNKNOWN_READER, UK_E_NO_READER, true)                                                \
    X(SCARD_E_TIMEOUT, UK_E_TIMEOUT, true)                                                         \
    X(SCARD_E_SHARING_VIOLATION, UK_E_CARD_BUSY, true)                                             \
    X(SCARD_E_NO_SMARTCARD, UK_E_CARD_REMOVED, true)                                               \
    X(SCARD_E_UNKNOWN_CARD, UK_E_CARD_ERROR, false)                                                \
    X(SCARD_E_CANT_DISPOSE, UK_E_CARD_ERROR, false)                                                \
    X(SCARD_E_PROTO_MISMATCH, UK_E_CARD_ERROR, false)                                              \
    X(SCARD_E_NOT_READY, UK_E_CARD_ERROR, false)                                                   \
    X(SCARD_E_INVALID_VALUE, UK_E_INTERNAL, false)                                                 \
    X(SCARD_E_SYSTEM_CANCELLED, UK_E_CANCELLED, true)                                              \
    X(SCARD_F_COMM_ERROR, UK_E_NO_SERVICE, true)                                                   \
    X(SCARD_F_UNKNOWN_ERROR, UK_E_INTERNAL, false)                                                 \
    X(SCARD_E_INVALID_ATR, UK_E_CARD_ERROR, false)                                                 \
    X(SCARD_E_NOT_TRANSACTED, UK_E_CARD_ERROR, false)                                              \
    X(SCARD_E_READER_UNAVAILABLE, UK_E_NO_READER, true)                                            \
    X(SCARD_P_SHUTDOWN, UK_E_NO_SERVICE, true)                                                     \
    X(SCARD_E_PCI_TOO_SMALL, UK_E_INTERNAL, false)                                                 \
    X(SCARD_E_READER_UNSUPPORTED, UK_E_NO_READER, false)                                           \
    X(SCARD_E_DUPLICATE_READER, UK_E_NO_READER, false)                                             \
    X(SCARD_E_CARD_UNSUPPORTED, UK_E_CARD_ERROR, false)                                            \
    X(SCARD_E_NO_SERVICE, UK_E_NO_SERVICE, true)                                                   \
    X(SCARD_E_SERVICE_STOPPED, UK_E_NO_SERVICE, true)                                              \
    X(SCARD_E_UNSUPPORTED_FEATURE, UK_E_NOT_SUPPORTED, false)                                      \
    X(SCARD_E_NO_ACCESS, UK_E_CARD_ERROR, false)                                                   \
    X(SCARD_E_NO_READERS_AVAILABLE, UK_E_NO_READER, true)                                          \
    X(SCARD_E_COMM_DATA_LOST, UK_E_CARD_ERROR, false)                                              \
    X(SCARD_E_SERVER_TOO_BUSY, UK_E_BUSY, false)                                                   \
    X(SCARD_W_UNSUPPORTED_CARD, UK_E_CARD_ERROR, false)                                            \
    X(SCARD_W_UNRESPONSIVE_CARD, UK_E_CARD_ERROR, false)                                           \
    X(SCARD_W_UNPOWERED_CARD, UK_E_CARD_ERROR, false)                                              \
    X(SCARD_W_RESET_CARD, UK_E_CARD_RESET, true)                                                   \
    X(SCARD_W_REMOVED_CARD, UK_E_CARD_REMOVED, true)                                               \
    X(SCARD_W_SECURITY_VIOLATION, UK_E_NO_SERVICE, false)

struct scard_code {
    long rv;
    const char *name;
    int err;
    bool expected;
};

#define UK_SCARD_ROW(code, err, expected) {(long)(code), #code, (err), (expected)},
static const struct scard_code scard_codes[] = {UK_SCARD_TABLE(UK_SCARD_ROW)};
#undef UK_SCARD_ROW

static const struct scard_code *scard_lookup(long rv)
{
    for (size_t i = 0; i < sizeof(scard_codes) / sizeof(scard_codes[0]); i++) {
        if (scard_codes[i].rv == rv)
            return &scard_codes[i];
    }
    return NULL;
}

const char *uk__pcsc_name(long rv)
{
    if (rv == SCARD_S_SUCCESS)
        return "SCARD_S_SUCCESS";
    const struct scard_code *c = scard_lookup(rv);
    return c != NULL ? c->name : "SCARD_UNKNOWN";
}

int uk__pcsc_err_at(long rv, const char *call, const char *reader, const char *file, int line,
                    const char *func)
{
    if (rv == SCARD_S_SUCCESS)
        return UK_OK;
    const struct scard_code *c = scard_lookup(rv);
    /* An unknown code is a failure of the card path we cannot be more precise about. */
    int err = c != NULL ? c->err : UK_E_CARD_ERROR;
    uk_log_level level = c != NULL && c->expected ? UK_LOG_LEVEL_DEBUG : UK_LOG_LEVEL_WARNING;
    uk_log_at(level, file, line, func, "%s%s%s%s: %s (0x%08lX) -> %s", call,
              reader != NULL ? " on '" : "", reader != NULL ? reader : "",
              reader != NULL ? "'" : "", c != NULL ? c->name : "SCARD_UNKNOWN",
              (unsigned long)(uint32_t)rv, uk_err_name(err));
    return err;
}

/* pcscd went away (stopped, restarted, crashed): drop the context, make a new one. */
static bool service_lost(LONG rv)
{
    return rv == SCARD_E_NO_SERVICE || rv == SCARD_E_SERVICE_STOPPED || rv == SCARD_F_COMM_ERROR ||
           rv == SCARD_E_INVALID_HANDLE;
}

/* ---- reader monitor --------------------------------------------------- */

static const char pnp_reader[] = "\\\\?PnP?\\Notification";

/* Where libpcsclite connects when PCSCLITE_CSOCK_NAME is not set (its
 * compiled-in PCSCLITE_CSOCK_NAME, not exported by the headers). */
static const char pcscd_socket_default[] = "/run/pcscd/pcscd.comm";

struct uk__pcsc_monitor {
    uv_thread_t thread;
    uk__pcsc_monitor_cbs cbs;
    uk__stop *stop;

    /* ctx may be cancelled from the loop thread: the monitor changes it
     * (establish, release) only under mu, and the loop cancels under mu. */
    uv_mutex_t mu;
    SCARDCONTEXT ctx;
    bool have_ctx;

    /* Wakes a wait of the monitor (uk__pcsc_monitor_cancel writes to it). */
    int wake_fd;

    /* Monitor thread only. */
    char sock_path[PATH_MAX]; /* pcscd's socket, as libpcsclite will use it */
    int ino_fd;               /* inotify, watching ino_dir; -1 until needed */
    int ino_wd;
    char ino_dir[PATH_MAX];
    char names[UK__READERS_MAX][UK__READER_NAME_MAX];
    SCARD_READERSTATE st[UK__READERS_MAX + 1]; /* the readers, then PnP */
    size_t n;                                  /* readers in st (PnP not counted) */
    int reported_service;                      /* what the loop was last told; 1 = nothing yet */
    bool warned_too_many;
};

static void monitor_release(uk__pcsc_monitor *m)
{
    uv_mutex_lock(&m->mu);
    if (m->have_ctx) {
        (void)SCardReleaseContext(m->ctx);
        m->have_ctx = false;
    }
    uv_mutex_unlock(&m->mu);
    m->n = 0; /* the next context starts from SCARD_STATE_UNAWARE */
}

static void monitor_publish(uk__pcsc_monitor *m, int service)
{
    uk__pcsc_snapshot *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        UK_LOG_ERR("out of memory: a reader change is not reported");
        return;
    }
    s->service = service;
    if (service == UK_OK) {
        for (size_t i = 0; i < m->n; i++) {
            const SCARD_READERSTATE *st = &m->st[i];
            uk__reader_state *r = &s->readers[s->n++];
            DWORD ev = st->dwEventState;
            memcpy(r->name, m->names[i], sizeof(r->name));
            bool usable = (ev & (SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE)) == 0;
            r->present = usable && (ev & SCARD_STATE_PRESENT) != 0;
            r->mute = r->present && (ev & SCARD_STATE_MUTE) != 0;
            r->exclusive = r->present && (ev & SCARD_STATE_EXCLUSIVE) != 0;
            r->events = (unsigned)((ev >> 16) & 0xFFFFu);
            if (r->present && st->cbAtr <= sizeof(r->atr)) {
                memcpy(r->atr, st->rgbAtr, st->cbAtr);
                r->atr_len = st->cbAtr;
            }
        }
    }
    m->reported_service = service;
    m->cbs.snapshot(m->cbs.ctx, s);
}

/* Lists the readers into names[]; returns the PC/SC code. */
static LONG monitor_list(uk__pcsc_monitor *m, char (*names)[UK__READER_NAME_MAX], size_t *count)
{
    char buf[(UK__READERS_MAX + 1) * UK__READER_NAME_MAX + 1];
    DWORD len = sizeof(buf);
    *count = 0;
    LONG rv = SCardListReaders(m->ctx, NULL, buf, &len);
    if (rv == SCARD_E_NO_READERS_AVAILABLE)
        return SCARD_S_SUCCESS;
    if (rv == SCARD_E_INSUFFICIENT_BUFFER) {
        /* More readers than pcsc-lite itself can watch at once. */
        if (!m->warned_too_many)
            UK_LOG_WARN("more readers than ukeyd can watch; some are ignored");
        m->warned_too_many = true;
        return SCARD_S_SUCCESS;
    }
    if (rv != SCARD_S_SUCCESS)
        return rv;
    if (len == 0 || len > sizeof(buf))
        return SCARD_S_SUCCESS;
    buf[sizeof(buf) - 1] = '\0';
    for (const char *p = buf; *p != '\0' && p < buf + len; p += strlen(p) + 1) {
        if (*count == UK__READERS_MAX) {
            if (!m->warned_too_many)
                UK_LOG_WARN("more than %u readers; '%s' and later ones are ignored",
                            UK__READERS_MAX, p);
            m->warned_too_many = true;
            break;
        }
        if (strlen(p) >= UK__READER_NAME_MAX)
            continue;
        strcpy(names[(*count)++], p);
    }
    return SCARD_S_SUCCESS;
}

/*
 * Rebuilds st[] for the listed readers: a reader already watched keeps the
 * state it was last seen in (so SCardGetStatusChange reports only what
 * changed since), a new one starts UNAWARE. Returns whether the list changed.
 */
static bool monitor_rebuild(uk__pcsc_monitor *m, char (*names)[UK__READER_NAME_MAX], size_t count)
{
    SCARD_READERSTATE st[UK__READERS_MAX + 1];
    bool changed = count != m->n;
    memset(st, 0, sizeof(st));
    for (size_t i = 0; i < count; i++) {
        st[i].dwCurrentState = SCARD_STATE_UNAWARE;
        for (size_t j = 0; j < m->n; j++) {
            if (strcmp(m->names[j], names[i]) == 0) {
                st[i] = m->st[j];
                if (j != i)
                    changed = true;
                break;
            }
        }
        if (st[i].dwCurrentState == SCARD_STATE_UNAWARE)
            changed = true;
    }
    st[count] = m->st[m->n]; /* PnP keeps its state */
    for (size_t i = 0; i < count; i++)
        memcpy(m->names[i], names[i], UK__READER_NAME_MAX);
    memcpy(m->st, st, sizeof(st));
    m->n = count;
    for (size_t i = 0; i < count; i++)
        m->st[i].szReader = m->names[i];
    m->st[count].szReader = pnp_reader;
    return changed;
}

/*
 * While pcscd stays away, the monitor does not poll: it watches the
 * directory of pcscd's socket (or, while that does not exist, its nearest
 * existing ancestor) with inotify and tries again when something is created
 * there. Returns false when no watch can be set (then it polls).
 */
static bool monitor_arm_watch(uk__pcsc_monitor *m)
{
    char dir[PATH_MAX];
    if (m->ino_fd < 0) {
        m->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (m->ino_fd < 0)
            return false;
    }
    snprintf(dir, sizeof(dir), "%s", m->sock_path);
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (slash == NULL)
            return false;
        if (slash == dir)
            slash[1] = '\0'; /* "/" */
        else
            *slash = '\0';
        if (access(dir, F_OK) == 0 || strcmp(dir, "/") == 0)
            break;
    }
    if (m->ino_wd >= 0 && strcmp(dir, m->ino_dir) == 0)
        return true;
    if (m->ino_wd >= 0)
        (void)inotify_rm_watch(m->ino_fd, m->ino_wd);
    m->ino_wd = inotify_add_watch(
        m->ino_fd, dir, IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
    if (m->ino_wd < 0)
        return false;
    snprintf(m->ino_dir, sizeof(m->ino_dir), "%s", dir);
    UK_LOG_DEBUG("waiting for pcscd's socket %s (watching %s)", m->sock_path, dir);
    return true;
}

/* Sleeps up to ms, less if woken (stop) or, with watch, if the watched
 * directory changed; returns whether it did. */
static bool monitor_wait(uk__pcsc_monitor *m, unsigned ms, bool watch)
{
    struct pollfd p[2] = {{.fd = m->wake_fd, .events = POLLIN},
                          {.fd = watch ? m->ino_fd : -1, .events = POLLIN}};
    uint64_t deadline = uk__now_ms() + ms;
    for (;;) {
        uint64_t now = uk__now_ms();
        int left = now >= deadline ? 0 : (int)(deadline - now);
        int n = poll(p, 2, left);
        if (n >= 0 || errno != EINTR)
            break;
    }
    if (p[0].revents & POLLIN) {
        uint64_t v;
        (void)!read(m->wake_fd, &v, sizeof(v));
    }
    bool changed = (p[1].revents & POLLIN) != 0;
    if (changed) {
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        while (read(m->ino_fd, buf, sizeof(buf)) > 0) {
        }
    }
    return changed;
}

static void monitor_main(void *arg)
{
    uk__pcsc_monitor *m = arg;
    unsigned backoff = UK__SERVICE_RETRY_MIN_MS;
    bool lost = false; /* the service went away after working */
    bool establish_logged = false;
    char names[UK__READERS_MAX][UK__READER_NAME_MAX];

    pthread_setname_np(pthread_self(), "uk-monitor");
    while (!uk__stop_requested(m->stop)) {
        if (!m->have_ctx) {
            SCARDCONTEXT ctx;
            LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
            if (rv != SCARD_S_SUCCESS) {
                if (!establish_logged)
                    (void)uk__pcsc_err(rv, "SCardEstablishContext", NULL);
                if (m->reported_service != UK_E_NO_SERVICE) {
                    UK_LOG_NOTICE("pcscd is not reachable (%s); retrying", uk__pcsc_name(rv));
                    monitor_publish(m, UK_E_NO_SERVICE);
                }
                establish_logged = true;
                /* Quick retries first (a restart takes a moment), then wait
                 * for pcscd's socket to appear instead of polling. */
                bool watch = backoff >= UK__SERVICE_RETRY_MAX_MS && monitor_arm_watch(m);
                if (monitor_wait(m, watch ? UK__SERVICE_WATCH_MS : backoff, watch))
                    backoff = UK__SERVICE_RETRY_MIN_MS;
                else if (!watch)
                    backoff = backoff * 2 > UK__SERVICE_RETRY_MAX_MS ? UK__SERVICE_RETRY_MAX_MS
                                                                     : backoff * 2;
                continue;
            }
            uv_mutex_lock(&m->mu);
            m->ctx = ctx;
            m->have_ctx = true;
            uv_mutex_unlock(&m->mu);
            if (lost || establish_logged)
                UK_LOG_NOTICE("pcscd is back; scanning readers again");
            lost = false;
            establish_logged = false;
            backoff = UK__SERVICE_RETRY_MIN_MS;
            m->n = 0;
            memset(m->st, 0, sizeof(m->st));
        }

        size_t count = 0;
        LONG rv = monitor_list(m, names, &count);
        if (rv != SCARD_S_SUCCESS) {
            if (service_lost(rv)) {
                UK_LOG_WARN("lost pcscd (%s from SCardListReaders)", uk__pcsc_name(rv));
                monitor_release(m);
                lost = true;
                monitor_publish(m, UK_E_NO_SERVICE);
                continue;
            }
            (void)uk__pcsc_err(rv, "SCardListReaders", NULL);
            (void)monitor_wait(m, UK__SERVICE_RETRY_MAX_MS, false);
            continue;
        }
        /* When the reader list changed (or the loop has not heard from this
         * context yet), take the states without waiting and report them;
         * otherwise block until something changes (SCardCancel ends it). */
        bool report = monitor_rebuild(m, names, count) || m->reported_service != UK_OK;
        rv = SCardGetStatusChange(m->ctx, report ? 0 : INFINITE, m->st, (DWORD)(m->n + 1));
        if (rv == SCARD_S_SUCCESS || (rv == SCARD_E_TIMEOUT && report)) {
            for (size_t i = 0; i <= m->n; i++) {
                if ((m->st[i].dwEventState & SCARD_STATE_CHANGED) && i < m->n)
                    report = true; /* PnP: the next pass lists the readers again */
                m->st[i].dwCurrentState = m->st[i].dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
            }
            if (report)
                monitor_publish(m, UK_OK);
            continue;
        }
        if (rv == SCARD_E_CANCELLED || rv == SCARD_E_TIMEOUT)
            continue;
        if (rv == SCARD_E_UNKNOWN_READER || rv == SCARD_E_READER_UNAVAILABLE) {
            /* A reader left between the list and the wait: list again. */
            (void)uk__pcsc_err(rv, "SCardGetStatusChange", NULL);
            continue;
        }
        if (service_lost(rv)) {
            UK_LOG_WARN("lost pcscd (%s from SCardGetStatusChange)", uk__pcsc_name(rv));
            monitor_release(m);
            lost = true;
            monitor_publish(m, UK_E_NO_SERVICE);
            continue;
        }
        /* Anything else: do not spin on it. */
        (void)uk__pcsc_err(rv, "SCardGetStatusChange", NULL);
        (void)monitor_wait(m, UK__SERVICE_RETRY_MAX_MS, false);
    }
    monitor_release(m);
    m->cbs.exited(m->cbs.ctx);
}

int uk__pcsc_monitor_start(uk__pcsc_monitor **out, const uk__pcsc_monitor_cbs *cbs, uk__stop *stop)
{
    uk__pcsc_monitor *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return UK_E_NO_MEMORY;
    m->cbs = *cbs;
    m->stop = stop;
    m->reported_service = 1;
    m->ino_fd = -1;
    m->ino_wd = -1;
    /* Read here, on the loop thread, like libpcsclite reads it once. */
    const char *sock = getenv("PCSCLITE_CSOCK_NAME");
    snprintf(m->sock_path, sizeof(m->sock_path), "%s",
             sock != NULL && sock[0] != '\0' ? sock : pcscd_socket_default);
    m->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->wake_fd < 0) {
        free(m);
        return UK_E_INTERNAL;
    }
    if (uv_mutex_init(&m->mu) != 0) {
        close(m->wake_fd);
        free(m);
        return UK_E_INTERNAL;
    }
    int rc = uv_thread_create(&m->thread, monitor_main, m);
    if (rc != 0) {
        UK_LOG_ERR("uv_thread_create: %s", uv_strerror(rc));
        uv_mutex_destroy(&m->mu);
        close(m->wake_fd);
        free(m);
        return rc == UV_ENOMEM ? UK_E_NO_MEMORY : UK_E_INTERNAL;
    }
    *out = m;
    return UK_OK;
}

void uk__pcsc_monitor_cancel(uk__pcsc_monitor *m)
{
    uint64_t one = 1;
    (void)!write(m->wake_fd, &one, sizeof(one)); /* a wait between attempts */
    uv_mutex_lock(&m->mu);
    if (m->have_ctx)
        (void)SCardCancel(m->ctx);
    uv_mutex_unlock(&m->mu);
}

void uk__pcsc_monitor_free(uk__pcsc_monitor *m)
{
    if (m == NULL)
        return;
    uv_thread_join(&m->thread);
    uv_mutex_destroy(&m->mu);
    close(m->wake_fd);
    if (m->ino_fd >= 0)
        close(m->ino_fd);
    free(m);
}

/* ---- card connections ------------------------------------------------- */

typedef struct pcsc_card pcsc_card;
static const uk__card_ops pcsc_ops;

struct pcsc_card {
    uk_card base; /* first: the uk_card the token layer and drivers see */
    char reader[UK__READER_NAME_MAX];
    uk__stop *stop;
    SCARDCONTEXT ctx;
    bool have_ctx;
    SCARDHANDLE h;
    bool connected;
    bool in_tx;
    DWORD proto;
    uint8_t atr[UK__ATR_MAX];
    size_t atr_len;
    uint64_t transmits;
};

#define PROTOCOLS (SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)

int uk__card_new(uk_card **out, const char *reader, uk__stop *stop)
{
    if (strlen(reader) >= UK__READER_NAME_MAX)
        return UK_E_LIMIT_EXCEEDED;
    pcsc_card *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return UK_E_NO_MEMORY;
    c->base.ops = &pcsc_ops;
    strcpy(c->reader, reader);
    c->stop = stop;
    *out = &c->base;
    return UK_OK;
}

static void card_disconnect(pcsc_card *c)
{
    if (c->in_tx) {
        LONG rv = SCardEndTransaction(c->h, SCARD_LEAVE_CARD);
        if (rv != SCARD_S_SUCCESS)
            UK_LOG_DEBUG("SCardEndTransaction on '%s': %s", c->reader, uk__pcsc_name(rv));
        c->in_tx = false;
    }
    if (c->connected) {
        LONG rv = SCardDisconnect(c->h, SCARD_LEAVE_CARD);
        if (rv != SCARD_S_SUCCESS)
            UK_LOG_DEBUG("SCardDisconnect on '%s': %s", c->reader, uk__pcsc_name(rv));
        c->connected = false;
    }
}

static void card_release(pcsc_card *c)
{
    card_disconnect(c);
    if (c->have_ctx) {
        (void)SCardReleaseContext(c->ctx);
        c->have_ctx = false;
    }
}

static void pcsc_free(uk_card *base)
{
    pcsc_card *card = (pcsc_card *)base;
    if (card == NULL)
        return;
    card_release(card);
    free(card);
}

static void pcsc_forget(uk_card *base)
{
    pcsc_card *card = (pcsc_card *)base;
    card->atr_len = 0;
}

static void card_read_atr(pcsc_card *c)
{
    BYTE atr[MAX_ATR_SIZE];
    DWORD atr_len = sizeof(atr), state = 0, proto = 0;
    LONG rv = SCardStatus(c->h, NULL, NULL, &state, &proto, atr, &atr_len);
    if (rv == SCARD_S_SUCCESS && atr_len <= sizeof(c->atr)) {
        memcpy(c->atr, atr, atr_len);
        c->atr_len = atr_len;
    }
}

static LONG card_begin_tx(pcsc_card *c)
{
    LONG rv = SCardBeginTransaction(c->h);
    if (rv == SCARD_W_RESET_CARD) {
        /* Reset by someone else since we connected: acknowledge and go on. */
        rv = SCardReconnect(c->h, SCARD_SHARE_SHARED, PROTOCOLS, SCARD_LEAVE_CARD, &c->proto);
        if (rv == SCARD_S_SUCCESS)
            rv = SCardBeginTransaction(c->h);
    }
    return rv;
}

static int pcsc_begin_c(pcsc_card *c)
{
    for (int attempt = 0;; attempt++) {
        LONG rv;
        if (!c->have_ctx) {
            rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &c->ctx);
            if (rv != SCARD_S_SUCCESS)
                return uk__pcsc_err(rv, "SCardEstablishContext", c->reader);
            c->have_ctx = true;
        }
        if (!c->connected) {
            rv = SCardConnect(c->ctx, c->reader, SCARD_SHARE_SHARED, PROTOCOLS, &c->h, &c->proto);
            if (rv != SCARD_S_SUCCESS) {
                if (service_lost(rv) && attempt == 0) {
                    /* A context from before a pcscd restart: make a new one. */
                    UK_LOG_DEBUG("SCardConnect on '%s': %s; new context", c->reader,
                                 uk__pcsc_name(rv));
                    card_release(c);
                    continue;
                }
                if (service_lost(rv))
                    card_release(c);
                return uk__pcsc_err(rv, "SCardConnect", c->reader);
            }
            c->connected = true;
            if (c->atr_len == 0)
                card_read_atr(c);
        }
        rv = card_begin_tx(c);
        if (rv != SCARD_S_SUCCESS) {
            int err = uk__pcsc_err(rv, "SCardBeginTransaction", c->reader);
            if (service_lost(rv))
                card_release(c);
            else
                card_disconnect(c);
            return err;
        }
        c->in_tx = true;
        return UK_OK;
    }
}

static void pcsc_end(uk_card *base)
{
    pcsc_card *c = (pcsc_card *)base;
    card_disconnect(c);
}

static int pcsc_reconnect(uk_card *base)
{
    pcsc_card *c = (pcsc_card *)base;
    if (!c->connected)
        return pcsc_begin_c(c);
    if (c->in_tx) {
        (void)SCardEndTransaction(c->h, SCARD_LEAVE_CARD);
        c->in_tx = false;
    }
    LONG rv = SCardReconnect(c->h, SCARD_SHARE_SHARED, PROTOCOLS, SCARD_LEAVE_CARD, &c->proto);
    if (rv == SCARD_S_SUCCESS)
        rv = card_begin_tx(c);
    if (rv != SCARD_S_SUCCESS) {
        int err = uk__pcsc_err(rv, "SCardReconnect", c->reader);
        if (service_lost(rv))
            card_release(c);
        else
            card_disconnect(c);
        return err;
    }
    c->in_tx = true;
    return UK_OK;
}

/*
 * A transmit that got no answer (vpcd reports a vanished card as an empty
 * response with SCARD_S_SUCCESS; readers report SCARD_E_NOT_TRANSACTED):
 * ask pcscd, for a moment, whether the card is still there.
 */
static int card_settle(pcsc_card *c, LONG transmit_rv)
{
    uint64_t deadline = uk__now_ms() + UK__REMOVAL_SETTLE_MS;
    for (;;) {
        DWORD state = 0, proto = 0;
        LONG rv = SCardStatus(c->h, NULL, NULL, &state, &proto, NULL, NULL);
        if (rv == SCARD_W_REMOVED_CARD || rv == SCARD_E_NO_SMARTCARD ||
            (rv == SCARD_S_SUCCESS && (state & SCARD_ABSENT))) {
            UK_LOG_INFO("'%s': no answer to an APDU (%s): the card was removed", c->reader,
                        uk__pcsc_name(transmit_rv));
            return UK_E_CARD_REMOVED;
        }
        if (rv == SCARD_W_RESET_CARD)
            return UK_E_CARD_RESET;
        if (rv != SCARD_S_SUCCESS && rv != SCARD_E_INSUFFICIENT_BUFFER)
            return uk__pcsc_err(rv, "SCardStatus", c->reader);
        if (uk__now_ms() >= deadline || !uk__stop_sleep(c->stop, UK__REMOVAL_POLL_MS))
            break;
    }
    UK_LOG_WARN("'%s': no answer to an APDU (%s), the card is still present", c->reader,
                uk__pcsc_name(transmit_rv));
    return UK_E_CARD_ERROR;
}

static int pcsc_transmit(uk_card *base, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
                         size_t *resp_len)
{
    pcsc_card *c = (pcsc_card *)base;
    *resp_len = 0;
    if (!c->connected || !c->in_tx) {
        UK_LOG_ERR("'%s': transmit outside a transaction", c->reader);
        return UK_E_INTERNAL;
    }
    if (len < 4 || cap < 2)
        return UK_E_INTERNAL;
    const SCARD_IO_REQUEST *pci = SCARD_PCI_T1;
    if (c->proto == SCARD_PROTOCOL_T0)
        pci = SCARD_PCI_T0;
    else if (c->proto == SCARD_PROTOCOL_RAW)
        pci = SCARD_PCI_RAW;
    DWORD rlen = (DWORD)(cap > UK_CARD_MAX_RESPONSE ? UK_CARD_MAX_RESPONSE : cap);
    c->transmits++;
    LONG rv = SCardTransmit(c->h, pci, apdu, (DWORD)len, NULL, resp, &rlen);
    if (rv == SCARD_S_SUCCESS && rlen >= 2 && rlen <= cap) {
        *resp_len = rlen;
        return UK_OK;
    }
    if (rv == SCARD_S_SUCCESS || rv == SCARD_E_NOT_TRANSACTED)
        return card_settle(c, rv);
    if (service_lost(rv)) {
        int err = uk__pcsc_err(rv, "SCardTransmit", c->reader);
        card_release(c);
        return err;
    }
    return uk__pcsc_err(rv, "SCardTransmit", c->reader);
}

static void pcsc_atr(const uk_card *base, const uint8_t **atr, size_t *len)
{
    const pcsc_card *card = (const pcsc_card *)base;
    *atr = card->atr;
    *len = card->atr_len;
}

static const char *pcsc_reader(const uk_card *base)
{
    const pcsc_card *card = (const pcsc_card *)base;
    return card->reader;
}

uint64_t uk__card_transmits(const uk_card *card)
{
    return ((const pcsc_card *)card)->transmits;
}

static int pcsc_begin(uk_card *base)
{
    return pcsc_begin_c((pcsc_card *)base);
}

static const uk__card_ops pcsc_ops = {
    .kind = "pcsc",
    .begin = pcsc_begin,
    .end = pcsc_end,
    .reconnect = pcsc_reconnect,
    .forget = pcsc_forget,
    .free = pcsc_free,
    .transmit = pcsc_transmit,
    .atr = pcsc_atr,
    .reader = pcsc_reader,
};
