/*
 * fake_pcsclite.c - the scripted libpcsclite of fake_pcsclite.h. It defines
 * the SCard* functions (and the PCI structures) the token layer's adapter
 * uses, with the same prototypes as <winscard.h>.
 */
#include "fake_pcsclite.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <winscard.h>

#define MAX_READERS  16
#define MAX_CONTEXTS 64
#define MAX_HANDLES  64
#define MAX_FAILS    16
#define PNP_NAME     "\\\\?PnP?\\Notification"

const SCARD_IO_REQUEST g_rgSCardT0Pci = {SCARD_PROTOCOL_T0, sizeof(SCARD_IO_REQUEST)};
const SCARD_IO_REQUEST g_rgSCardT1Pci = {SCARD_PROTOCOL_T1, sizeof(SCARD_IO_REQUEST)};
const SCARD_IO_REQUEST g_rgSCardRawPci = {SCARD_PROTOCOL_RAW, sizeof(SCARD_IO_REQUEST)};

struct reader {
    bool used;
    char name[MAX_READERNAME];
    bool present;
    unsigned events;  /* insert/remove counter */
    unsigned card_id; /* which insertion the card is */
    bool exclusive;   /* someone else holds it */
    int drop_after;   /* -1: never */
    bool drop_empty;
    unsigned delay_ms;
    fake_card_fn fn;
    void *fn_ctx;
    SCARDHANDLE tx_owner;
};

struct context {
    bool used;
    unsigned epoch; /* service epoch it was made in */
    bool waiting;   /* blocked in SCardGetStatusChange */
    bool cancel;
};

struct handle {
    bool used;
    SCARDCONTEXT ctx;
    int reader;
    unsigned card_id;
    bool in_tx;
};

struct fail {
    char func[32];
    LONG rv;
    unsigned times;
};

struct call_count {
    const char *func;
    unsigned n;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

static struct {
    bool up;
    unsigned epoch;
    unsigned readers_gen; /* bumped when a reader comes or goes */
    unsigned next_card_id;
    struct reader readers[MAX_READERS];
    struct context contexts[MAX_CONTEXTS];
    struct handle handles[MAX_HANDLES];
    struct fail fails[MAX_FAILS];
    unsigned violations;
    unsigned transactions;
    struct call_count counts[16];
} F = {.up = true};

static const char *const counted[] = {
    "SCardEstablishContext", "SCardReleaseContext", "SCardListReaders", "SCardGetStatusChange",
    "SCardCancel",           "SCardConnect",        "SCardReconnect",   "SCardDisconnect",
    "SCardBeginTransaction", "SCardEndTransaction", "SCardTransmit",    "SCardStatus",
};

/* ---- script side -------------------------------------------------------- */

void fake_pcsc_reset(void)
{
    pthread_mutex_lock(&mu);
    memset(&F, 0, sizeof(F));
    F.up = true;
    F.epoch = 1;
    F.next_card_id = 1;
    for (size_t i = 0; i < sizeof(counted) / sizeof(counted[0]); i++)
        F.counts[i].func = counted[i];
    pthread_mutex_unlock(&mu);
}

static int find_reader(const char *name)
{
    for (int i = 0; i < MAX_READERS; i++) {
        if (F.readers[i].used && strcmp(F.readers[i].name, name) == 0)
            return i;
    }
    return -1;
}

void fake_pcsc_set_service(bool up)
{
    pthread_mutex_lock(&mu);
    if (F.up && !up)
        F.epoch++; /* every context made so far dies */
    F.up = up;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

void fake_pcsc_add_reader(const char *name)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_READERS; i++) {
        if (!F.readers[i].used) {
            memset(&F.readers[i], 0, sizeof(F.readers[i]));
            F.readers[i].used = true;
            snprintf(F.readers[i].name, sizeof(F.readers[i].name), "%s", name);
            F.readers[i].drop_after = -1;
            break;
        }
    }
    F.readers_gen++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

void fake_pcsc_remove_reader(const char *name)
{
    pthread_mutex_lock(&mu);
    int i = find_reader(name);
    if (i >= 0)
        F.readers[i].used = false;
    F.readers_gen++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

void fake_pcsc_insert(const char *name, fake_card_fn fn, void *ctx)
{
    pthread_mutex_lock(&mu);
    int i = find_reader(name);
    if (i >= 0) {
        struct reader *r = &F.readers[i];
        r->present = true;
        r->events++;
        r->card_id = F.next_card_id++;
        r->fn = fn;
        r->fn_ctx = ctx;
        r->drop_after = -1;
    }
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

static void remove_locked(struct reader *r)
{
    if (!r->present)
        return;
    r->present = false;
    r->events++;
    r->tx_owner = 0;
    pthread_cond_broadcast(&cond);
}

void fake_pcsc_remove(const char *name)
{
    pthread_mutex_lock(&mu);
    int i = find_reader(name);
    if (i >= 0)
        remove_locked(&F.readers[i]);
    pthread_mutex_unlock(&mu);
}

void fake_pcsc_set_exclusive(const char *name, bool held)
{
    pthread_mutex_lock(&mu);
    int i = find_reader(name);
    if (i >= 0)
        F.readers[i].exclusive = held;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

void fake_pcsc_drop_after(const char *name, int n, bool empty_answer)
{
    pthread_mutex_lock(&mu);
    int i = find_reader(name);
    if (i >= 0) {
        F.readers[i].drop_after = n;
        F.readers[i].drop_empty = empty_answer;
    }
    pthread_mutex_unlock(&mu);
}

void fake_pcsc_set_delay(const char *name, unsigned ms)
{
    pthread_mutex_lock(&mu);
    int i = find_reader(name);
    if (i >= 0)
        F.readers[i].delay_ms = ms;
    pthread_mutex_unlock(&mu);
}

void fake_pcsc_fail(const char *func, long rv, unsigned times)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_FAILS; i++) {
        if (F.fails[i].times == 0) {
            snprintf(F.fails[i].func, sizeof(F.fails[i].func), "%s", func);
            F.fails[i].rv = (LONG)rv;
            F.fails[i].times = times;
            break;
        }
    }
    pthread_mutex_unlock(&mu);
}

unsigned fake_pcsc_calls(const char *func)
{
    unsigned n = 0;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < sizeof(counted) / sizeof(counted[0]); i++) {
        if (F.counts[i].func != NULL && strcmp(F.counts[i].func, func) == 0)
            n = F.counts[i].n;
    }
    pthread_mutex_unlock(&mu);
    return n;
}

unsigned fake_pcsc_violations(void)
{
    pthread_mutex_lock(&mu);
    unsigned n = F.violations;
    pthread_mutex_unlock(&mu);
    return n;
}

unsigned fake_pcsc_transactions(void)
{
    pthread_mutex_lock(&mu);
    unsigned n = F.transactions;
    pthread_mutex_unlock(&mu);
    return n;
}

/* ---- library side --------------------------------------------------------- */

/* Counts the call; returns an injected code or SCARD_S_SUCCESS. Locked. */
static LONG enter(const char *func)
{
    for (size_t i = 0; i < sizeof(counted) / sizeof(counted[0]); i++) {
        if (F.counts[i].func != NULL && strcmp(F.counts[i].func, func) == 0)
            F.counts[i].n++;
    }
    for (int i = 0; i < MAX_FAILS; i++) {
        if (F.fails[i].times > 0 && strcmp(F.fails[i].func, func) == 0) {
            F.fails[i].times--;
            return F.fails[i].rv;
        }
    }
    return SCARD_S_SUCCESS;
}

static struct context *ctx_get(SCARDCONTEXT c)
{
    if (c <= 0 || c > MAX_CONTEXTS || !F.contexts[c - 1].used)
        return NULL;
    return &F.contexts[c - 1];
}

/* SCARD_S_SUCCESS, or why the context cannot be used. */
static LONG ctx_check(SCARDCONTEXT c)
{
    struct context *x = ctx_get(c);
    if (x == NULL)
        return SCARD_E_INVALID_HANDLE;
    if (!F.up || x->epoch != F.epoch)
        return SCARD_E_NO_SERVICE;
    return SCARD_S_SUCCESS;
}

static struct handle *h_get(SCARDHANDLE h)
{
    if (h <= 0 || h > MAX_HANDLES || !F.handles[h - 1].used)
        return NULL;
    return &F.handles[h - 1];
}

/* The handle's card is still the one it connected to. */
static LONG h_check(SCARDHANDLE h, struct handle **out)
{
    struct handle *x = h_get(h);
    if (x == NULL)
        return SCARD_E_INVALID_HANDLE;
    LONG rv = ctx_check(x->ctx);
    if (rv != SCARD_S_SUCCESS)
        return rv;
    struct reader *r = &F.readers[x->reader];
    if (!r->used)
        return SCARD_E_READER_UNAVAILABLE;
    if (!r->present || r->card_id != x->card_id)
        return SCARD_W_REMOVED_CARD;
    *out = x;
    return SCARD_S_SUCCESS;
}

LONG SCardEstablishContext(DWORD scope, LPCVOID r1, LPCVOID r2, LPSCARDCONTEXT out)
{
    (void)scope;
    (void)r1;
    (void)r2;
    pthread_mutex_lock(&mu);
    LONG rv = enter("SCardEstablishContext");
    if (rv == SCARD_S_SUCCESS && !F.up)
        rv = SCARD_E_NO_SERVICE;
    if (rv == SCARD_S_SUCCESS) {
        rv = SCARD_E_NO_MEMORY;
        for (int i = 0; i < MAX_CONTEXTS; i++) {
            if (!F.contexts[i].used) {
                memset(&F.contexts[i], 0, sizeof(F.contexts[i]));
                F.contexts[i].used = true;
                F.contexts[i].epoch = F.epoch;
                *out = i + 1;
                rv = SCARD_S_SUCCESS;
                break;
            }
        }
    }
    pthread_mutex_unlock(&mu);
    return rv;
}

LONG SCardReleaseContext(SCARDCONTEXT c)
{
    pthread_mutex_lock(&mu);
    LONG rv = enter("SCardReleaseContext");
    struct context *x = ctx_get(c);
    if (x == NULL) {
        rv = SCARD_E_INVALID_HANDLE;
    } else {
        for (int i = 0; i < MAX_HANDLES; i++) {
            if (F.handles[i].used && F.handles[i].ctx == c) {
                F.violations++; /* a connection left open */
                F.handles[i].used = false;
            }
        }
        x->used = false;
        if (rv == SCARD_S_SUCCESS && x->epoch != F.epoch)
            rv = SCARD_E_NO_SERVICE;
    }
    pthread_mutex_unlock(&mu);
    return rv;
}

LONG SCardListReaders(SCARDCONTEXT c, LPCSTR groups, LPSTR buf, LPDWORD len)
{
    (void)groups;
    pthread_mutex_lock(&mu);
    LONG rv = enter("SCardListReaders");
    if (rv == SCARD_S_SUCCESS)
        rv = ctx_check(c);
    if (rv == SCARD_S_SUCCESS) {
        size_t need = 1, n = 0;
        for (int i = 0; i < MAX_READERS; i++) {
            if (F.readers[i].used) {
                need += strlen(F.readers[i].name) + 1;
                n++;
            }
        }
        if (n == 0) {
            rv = SCARD_E_NO_READERS_AVAILABLE;
        } else if (buf == NULL) {
            *len = need;
        } else if (*len < need) {
            *len = need;
            rv = SCARD_E_INSUFFICIENT_BUFFER;
        } else {
            char *p = buf;
            for (int i = 0; i < MAX_READERS; i++) {
                if (F.readers[i].used) {
                    strcpy(p, F.readers[i].name);
                    p += strlen(p) + 1;
                }
            }
            *p = '\0';
            *len = need;
        }
    }
    pthread_mutex_unlock(&mu);
    return rv;
}

/* The state pcsc-lite would report for one entry; sets *changed. Locked. */
static DWORD reader_event(const SCARD_READERSTATE *st, unsigned gen_at_start, bool *changed)
{
    DWORD cur = st->dwCurrentState;
    if (strcmp(st->szReader, PNP_NAME) == 0) {
        *changed = F.readers_gen != gen_at_start;
        return *changed ? SCARD_STATE_CHANGED : 0;
    }
    int i = find_reader(st->szReader);
    if (i < 0) {
        *changed = (cur & SCARD_STATE_UNKNOWN) == 0;
        return SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE |
               (*changed ? SCARD_STATE_CHANGED | SCARD_STATE_IGNORE : 0);
    }
    const struct reader *r = &F.readers[i];
    DWORD ev = (DWORD)r->events << 16;
    ev |= r->present ? SCARD_STATE_PRESENT : SCARD_STATE_EMPTY;
    if (r->present && r->exclusive)
        ev |= SCARD_STATE_EXCLUSIVE;
    *changed = cur == SCARD_STATE_UNAWARE || ((cur & 0xFFFF0000u) && (cur >> 16) != r->events) ||
               ((cur & SCARD_STATE_PRESENT) != 0) != r->present ||
               ((cur & SCARD_STATE_EXCLUSIVE) != 0) != (r->present && r->exclusive);
    if (*changed)
        ev |= SCARD_STATE_CHANGED;
    return ev;
}

LONG SCardGetStatusChange(SCARDCONTEXT c, DWORD timeout, SCARD_READERSTATE *st, DWORD n)
{
    pthread_mutex_lock(&mu);
    LONG rv = enter("SCardGetStatusChange");
    struct context *x = ctx_get(c);
    if (rv == SCARD_S_SUCCESS && x == NULL)
        rv = SCARD_E_INVALID_HANDLE;
    if (rv == SCARD_S_SUCCESS && n > 16)
        rv = SCARD_E_INVALID_PARAMETER;
    unsigned gen = F.readers_gen;
    if (x != NULL)
        x->cancel = false; /* a cancel sent before the call is lost */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (timeout != INFINITE) {
        deadline.tv_sec += timeout / 1000;
        deadline.tv_nsec += (long)(timeout % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    while (rv == SCARD_S_SUCCESS) {
        if (!F.up || x->epoch != F.epoch) {
            rv = x->waiting ? SCARD_F_COMM_ERROR : SCARD_E_NO_SERVICE;
            break;
        }
        if (x->cancel) {
            x->cancel = false;
            rv = SCARD_E_CANCELLED;
            break;
        }
        bool any = false;
        for (DWORD i = 0; i < n; i++) {
            bool changed = false;
            st[i].dwEventState = reader_event(&st[i], gen, &changed);
            int ri = find_reader(st[i].szReader);
            st[i].cbAtr = 0;
            if (ri >= 0 && F.readers[ri].present) {
                static const BYTE atr[] = {0x3B, 0x80, 0x80, 0x01, 0x01};
                memcpy(st[i].rgbAtr, atr, sizeof(atr));
                st[i].cbAtr = sizeof(atr);
            }
            any = any || changed;
        }
        if (any)
            break;
        if (timeout == 0) {
            rv = SCARD_E_TIMEOUT;
            break;
        }
        x->waiting = true;
        int e = timeout == INFINITE ? pthread_cond_wait(&cond, &mu)
                                    : pthread_cond_timedwait(&cond, &mu, &deadline);
        if (e == ETIMEDOUT) {
            x->waiting = false;
            rv = SCARD_E_TIMEOUT;
            break;
        }
    }
    if (x != NULL)
        x->waiting = false;
    pthread_mutex_unlock(&mu);
    return rv;
}

LONG SCardCancel(SCARDCONTEXT c)
{
    pthread_mutex_lock(&mu);
    LONG rv = enter("SCardCancel");
    struct context *x = ctx_get(c);
    if (x == NULL) {
        rv = SCARD_E_INVALID_HANDLE;
    } else if (x->waiting) { /* only a call in progress is cancelled */
        x->cancel = true;
        pthread_cond_broadcast(&cond);
    }
    pthread_mutex_unlock(&mu);
    return rv;
}

LONG SCardConnect(SCARDCONTEXT c, LPCSTR reader, DWORD share, DWORD protos, LPSCARDHANDLE out,
                  LPDWORD proto)
{
    pthread_mutex_lock(&mu);
    LONG rv = enter("SCardConnect");
    if (rv == SCARD_S_SUCCESS)
        rv = ctx_check(c);
    int ri = find_reader(reader);
    if (rv == SCARD_S_SUCCESS && ri < 0)
        rv = SCARD_E_UNKNOWN_READER;
    if (rv == SCARD_S_SUCCESS && !F.readers[ri].present)
        rv = SCARD_E_NO_SMARTCARD;
    if (rv == SCARD_S_SUCCESS && F.readers[ri].exclusive)
        rv = SCARD_E_SHARING_VIOLATION;
    if (rv == SCARD_S_SUCCESS && (share != SCARD_SHARE_SHARED || (protos & SCARD_PROTOCOL_T1) == 0))
        F.violations++; /* ukeyd always shares */
    if (rv == SCARD_S_SUCCESS) {
        rv = SCARD_E_NO_MEMORY;
        for (int i = 0; i < MAX_HANDLES; i++) {
            if (!F.handles[i].used) {
                F.handles[i] = (struct handle){
                    .used = true, .ctx = c, .reader = ri, .card_id = F.readers[ri].card_id};
                *out = i + 1;
                *proto = SCARD_PROTOCOL_T1;
                rv = SCARD_S_SUCCESS;
                break;
            }
        }
    }
    pthread_mutex_unlock(&mu);
    return rv;
}

LONG SCardReconnect(SCARDHANDLE h, DWORD share, DWORD protos, DWORD init, LPDWORD proto)
{
    (void)share;
    (void)protos;
    (void)init;
    pthread_mutex_lock(&mu);
    LONG rv = enter("SCardReconnect");
    struct handle *x = NULL;
    if (rv == SCARD_S_SUCCESS)
        rv = h_check(h, &x);
    if (rv == SCARD_S_SUCCESS)
        *proto = SCARD_PROTOCOL_T1;
    pthread_mutex_unlock(&mu);
    return rv;
}

LONG SCardDisconnect(SCARDHANDLE h, DWORD disposition)
{
    pthread_mutex_lock(&mu);
    LONG rv = enter("SCardDisconnect");
    struct handle *x = h_get(h);
    if (disposition != SCARD_LEAVE_CARD)
        F.violations++;
    if (x == NULL) {
        rv = SCARD_E_INVALID_HANDLE;
    } else {
        struct reader *r = &F.readers[x->reader];
        if (r->tx_owner == h)
            r->tx_owner = 0;
        x->used = false;
    }
    pthread_mutex_unlock(&mu);
    return rv;
}

LONG SCardBeginTransaction(SCARDHANDLE h)
{
    pthread_mutex_lock(&mu);
    LONG rv = enter("SCardBeginTransaction");
    struct handle *x = NULL;
    if (rv == SCARD_S_SUCCESS)
        rv = h_check(h, &x);
    if (rv == SCARD_S_SUCCESS) {
        struct reader *r = &F.readers[x->reader];
        if (r->tx_owner != 0 && r->tx_owner != h)
            F.violations++; /* two of ours at once: the worker did not serialise */
        r->tx_owner = h;
        x->in_tx = true;
        F.transactions++;
    }
    pthread_mutex_unlock(&mu);
    return rv;
}

LONG SCardEndTransaction(SCARDHANDLE h, DWORD disposition)
{
    pthread_mutex_lock(&mu);
    LONG rv = enter("SCardEndTransaction");
    struct handle *x = h_get(h);
    if (disposition != SCARD_LEAVE_CARD)
        F.violations++;
    if (x == NULL) {
        rv = SCARD_E_INVALID_HANDLE;
    } else {
        struct reader *r = &F.readers[x->reader];
        if (r->tx_owner == h)
            r->tx_owner = 0;
        x->in_tx = false;
        if (rv == SCARD_S_SUCCESS && (!r->present || r->card_id != x->card_id))
            rv = SCARD_W_REMOVED_CARD;
    }
    pthread_mutex_unlock(&mu);
    return rv;
}

LONG SCardTransmit(SCARDHANDLE h, const SCARD_IO_REQUEST *pci, LPCBYTE send, DWORD send_len,
                   SCARD_IO_REQUEST *recv_pci, LPBYTE recv, LPDWORD recv_len)
{
    (void)pci;
    (void)recv_pci;
    pthread_mutex_lock(&mu);
    LONG rv = enter("SCardTransmit");
    struct handle *x = NULL;
    if (rv == SCARD_S_SUCCESS)
        rv = h_check(h, &x);
    if (rv != SCARD_S_SUCCESS) {
        pthread_mutex_unlock(&mu);
        return rv;
    }
    struct reader *r = &F.readers[x->reader];
    if (!x->in_tx || r->tx_owner != h)
        F.violations++; /* an APDU outside our transaction */
    if (r->drop_after == 0) {
        bool empty = r->drop_empty;
        r->drop_after = -1;
        remove_locked(r);
        pthread_mutex_unlock(&mu);
        if (empty) {
            *recv_len = 0;
            return SCARD_S_SUCCESS;
        }
        return SCARD_W_REMOVED_CARD;
    }
    if (r->drop_after > 0)
        r->drop_after--;
    fake_card_fn fn = r->fn;
    void *fn_ctx = r->fn_ctx;
    unsigned delay = r->delay_ms;
    pthread_mutex_unlock(&mu);

    if (delay > 0) {
        struct timespec ts = {.tv_sec = delay / 1000, .tv_nsec = (long)(delay % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    size_t len = 0;
    if (fn != NULL) {
        fn(fn_ctx, send, send_len, recv, *recv_len, &len);
    } else if (*recv_len >= 2) {
        recv[0] = 0x6D;
        recv[1] = 0x00;
        len = 2;
    }
    *recv_len = (DWORD)len;
    return SCARD_S_SUCCESS;
}

LONG SCardStatus(SCARDHANDLE h, LPSTR name, LPDWORD name_len, LPDWORD state, LPDWORD proto,
                 LPBYTE atr, LPDWORD atr_len)
{
    (void)name;
    (void)name_len;
    pthread_mutex_lock(&mu);
    LONG rv = enter("SCardStatus");
    struct handle *x = NULL;
    if (rv == SCARD_S_SUCCESS)
        rv = h_check(h, &x);
    if (rv == SCARD_S_SUCCESS) {
        static const BYTE card_atr[] = {0x3B, 0x80, 0x80, 0x01, 0x01};
        if (state != NULL)
            *state = SCARD_PRESENT | SCARD_POWERED | SCARD_NEGOTIABLE;
        if (proto != NULL)
            *proto = SCARD_PROTOCOL_T1;
        if (atr != NULL && atr_len != NULL && *atr_len >= sizeof(card_atr)) {
            memcpy(atr, card_atr, sizeof(card_atr));
            *atr_len = sizeof(card_atr);
        }
    }
    pthread_mutex_unlock(&mu);
    return rv;
}
