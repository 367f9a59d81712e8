/* The soft SKF token's exported GM/T 0016 functions: the only file that sees the SKF ABI, built
 * once per ULONG width (libukskf_soft.so: 4 bytes, libukskf_soft64.so: 8 bytes).
 *
 * Every call: take the state lock, run the fault and timing controls (skf_core.h), resolve the
 * handle (refusing closed, foreign and wrong-type handles without dereferencing them), load the
 * device file, check the device is still the one connected (present, same insertion), do the
 * work, save if it changed anything, release the lock.
 *
 * Strict where the standard is (docs/testing.md "The soft SKF module" lists the choices made
 * where it is silent): output buffers follow the length protocol, name lists are multi-strings,
 * PIN-protected operations need SKF_VerifyPIN of the user PIN on this connection first, a wrong
 * PIN costs a retry and the last one locks. */
#define UK_SKF_DECLARE_FUNCTIONS
#include "uk_skf_abi.h"

#include "skf_core.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef enum { H_DEV = 1, H_APP, H_CONT, H_HASH, H_KEY } htype;

/* A handle's id is its HANDLE value: ids are never reused, so a closed handle stays invalid. */
typedef struct hnd {
    uintptr_t id, parent;
    htype type;
    char dev[SKF_NAME_MAX];
    unsigned epoch;
    char app[SKF_NAME_MAX];
    char cont[SKF_NAME_MAX];
    /* device handles: the security state of this connection */
    char auth_app[SKF_NAME_MAX];
    unsigned auth; /* bits 1 << ADMIN_TYPE, 1 << USER_TYPE */
    bool locked;
    /* hash handles */
    skfc_md *md;
    /* session-key handles (children of a container handle): the key never leaves the module;
     * dec is the decryption SKF_DecryptInit started (NULL: none) */
    uint8_t key[16];
    ULONG key_alg;
    skfc_sm4_dec *dec;
} hnd;

/* All of these are guarded by the state lock (skf_lock_take). */
static hnd **handles;
static size_t n_handles;
static uintptr_t next_id = 0x5f000001u;

typedef struct call {
    skf_lock lock;
    const char *dir;
    bool fail_late, remove_all;
    ULONG fail_rv;
    skf_dev dev; /* loaded by resolve */
    bool loaded, dirty;
    hnd *hdev, *happ, *hcont, *hhash, *hkey;
    skf_app *app;
    skf_container *cont;
} call;

static bool seen_init;
static int init_seen(const char *dir);

/* ---- call frame: lock, controls, unlock ---- */

/* The "remove" fault: every present device is pulled out. */
static ULONG remove_all_devices(const char *dir)
{
    char **names = NULL;
    size_t n = 0;
    int rc = skf_dev_list(dir, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        skf_dev d;
        if ((rc = skf_dev_load(dir, names[i], &d)) != 0)
            break;
        if (d.present) {
            d.present = false;
            rc = skf_dev_save(dir, &d);
        }
        skf_dev_clear(&d);
    }
    skf_names_free(names, n);
    return rc == 0 ? SAR_OK : SAR_WRITEFILEERR;
}

/* Returns SAR_OK with the lock held, or the code the call must return (lock held too, except
 * when taking it failed: c->lock.fd < 0). */
static ULONG begin(call *c, bool counted)
{
    memset(c, 0, sizeof *c);
    c->lock.fd = -1;
    c->dir = skf_dir();
    if (c->dir == NULL)
        return SAR_NOTINITIALIZEERR;
    if (skf_lock_take(c->dir, &c->lock) != 0)
        return SAR_FILEERR;
    if (!seen_init && init_seen(c->dir) != 0)
        return SAR_READFILEERR;
    if (!counted)
        return SAR_OK;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/control", c->dir) >= (int)sizeof path ||
        access(path, F_OK) != 0)
        return SAR_OK; /* no controls: nothing to count, no file written per call */
    skf_ctl ctl;
    if (skf_ctl_load(c->dir, &ctl) != 0)
        return SAR_FILEERR; /* a broken control file must not pass unnoticed */
    ctl.calls++;
    ULONG rv = SAR_OK;
    if (ctl.fail_after == 0) {
        c->remove_all = ctl.fail_remove;
        if (ctl.fail_executed) {
            c->fail_late = true;
            c->fail_rv = ctl.fail_rv;
        } else {
            rv = ctl.fail_rv;
        }
        ctl.fail_after = -1;
    } else if (ctl.fail_after > 0) {
        ctl.fail_after--;
    }
    if (skf_ctl_save(c->dir, &ctl) != 0)
        return SAR_FILEERR;
    if (ctl.latency_us > 0) {
        struct timespec ts = {(time_t)(ctl.latency_us / 1000000),
                              (long)(ctl.latency_us % 1000000) * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    if (rv != SAR_OK && c->remove_all) {
        c->remove_all = false;
        if (remove_all_devices(c->dir) != SAR_OK)
            return SAR_WRITEFILEERR;
    }
    return rv;
}

static ULONG end(call *c, ULONG rv)
{
    if (c->loaded) {
        if (c->dirty && skf_dev_save(c->dir, &c->dev) != 0 && rv == SAR_OK)
            rv = SAR_WRITEFILEERR;
        skf_dev_clear(&c->dev);
    }
    if (c->remove_all && remove_all_devices(c->dir) != SAR_OK && rv == SAR_OK)
        rv = SAR_WRITEFILEERR;
    if (c->fail_late)
        rv = c->fail_rv;
    skf_lock_drop(&c->lock);
    return rv;
}

/* Runs expr inside a counted call frame. */
#define SKF_CALL(expr)                                                                             \
    do {                                                                                           \
        call c_;                                                                                   \
        ULONG rv_ = begin(&c_, true);                                                              \
        if (rv_ == SAR_OK)                                                                         \
            rv_ = (expr);                                                                          \
        return end(&c_, rv_);                                                                      \
    } while (0)

/* ---- handles ---- */

static hnd *find(HANDLE h, htype type)
{
    uintptr_t id = (uintptr_t)h;
    for (size_t i = 0; i < n_handles; i++)
        if (handles[i]->id == id)
            return handles[i]->type == type ? handles[i] : NULL;
    return NULL;
}

static hnd *find_id(uintptr_t id)
{
    for (size_t i = 0; i < n_handles; i++)
        if (handles[i]->id == id)
            return handles[i];
    return NULL;
}

static hnd *new_handle(htype type, const hnd *parent)
{
    hnd **nv = realloc(handles, (n_handles + 1) * sizeof *handles);
    if (nv == NULL)
        return NULL;
    handles = nv;
    hnd *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    if (parent != NULL)
        *h = *parent; /* names and epoch; the rest is reset below */
    h->auth = 0;
    h->auth_app[0] = '\0';
    h->locked = false;
    h->md = NULL;
    memset(h->key, 0, sizeof h->key);
    h->key_alg = 0;
    h->dec = NULL;
    h->id = next_id++;
    h->parent = parent != NULL ? parent->id : 0;
    h->type = type;
    handles[n_handles++] = h;
    return h;
}

/* Frees h and every handle below it (closing a device closes its applications...). */
static void free_handle(hnd *h)
{
    uintptr_t id = h->id;
    for (size_t i = 0; i < n_handles;) {
        if (handles[i]->parent == id) {
            free_handle(handles[i]);
            i = 0; /* the array moved */
            continue;
        }
        i++;
    }
    for (size_t i = 0; i < n_handles; i++) {
        if (handles[i] == h) {
            handles[i] = handles[--n_handles];
            break;
        }
    }
    skfc_md_free(h->md);
    skfc_sm4_dec_free(h->dec);
    OPENSSL_cleanse(h, sizeof *h); /* a session key with it */
    free(h);
}

/* Resolves h (of the given type) and its parents, loads the device and finds the application
 * and container it names. */
static ULONG resolve(call *c, HANDLE handle, htype type)
{
    hnd *h = find(handle, type);
    if (h == NULL)
        return SAR_INVALIDHANDLEERR;
    for (hnd *p = h; p != NULL; p = p->parent != 0 ? find_id(p->parent) : NULL) {
        if (p->type == H_DEV)
            c->hdev = p;
        else if (p->type == H_APP)
            c->happ = p;
        else if (p->type == H_CONT)
            c->hcont = p;
        else if (p->type == H_HASH)
            c->hhash = p;
        else
            c->hkey = p;
    }
    if (c->hdev == NULL)
        return SAR_INVALIDHANDLEERR;
    int rc = skf_dev_load(c->dir, c->hdev->dev, &c->dev);
    if (rc == -ENOENT)
        return SAR_DEVICE_REMOVED;
    if (rc != 0)
        return SAR_READFILEERR;
    c->loaded = true;
    if (!c->dev.present || c->dev.epoch != c->hdev->epoch)
        return SAR_DEVICE_REMOVED;
    if (c->happ != NULL && (c->app = skf_dev_find_app(&c->dev, c->happ->app)) == NULL)
        return SAR_INVALIDHANDLEERR; /* deleted meanwhile */
    if (c->hcont != NULL && (c->cont = skf_app_find_container(c->app, c->hcont->cont)) == NULL)
        return SAR_INVALIDHANDLEERR;
    return SAR_OK;
}

static ULONG name_arg(const char *s);

/* resolve, then check a name argument. */
static ULONG resolve_named(call *c, HANDLE h, htype type, const char *name)
{
    ULONG rv = resolve(c, h, type);
    return rv != SAR_OK ? rv : name_arg(name);
}

/* resolve, then the out-parameter must be there. */
static ULONG resolve_out(call *c, HANDLE h, htype type, const void *out)
{
    ULONG rv = resolve(c, h, type);
    return rv != SAR_OK ? rv : out == NULL ? SAR_INVALIDPARAMERR : SAR_OK;
}

static bool user_ok(const call *c)
{
    return (c->hdev->auth & (1u << USER_TYPE)) != 0 && strcmp(c->hdev->auth_app, c->app->name) == 0;
}

/* A name argument: present, NUL-terminated, shorter than 64 bytes. */
static ULONG name_arg(const char *s)
{
    if (s == NULL)
        return SAR_INVALIDPARAMERR;
    size_t n = strnlen(s, SKF_NAME_MAX);
    return n == 0 ? SAR_INVALIDPARAMERR : n == SKF_NAME_MAX ? SAR_NAMELENERR : SAR_OK;
}

/* ---- output buffers ---- */

static ULONG put_bytes(const void *src, size_t n, void *out, ULONG *len)
{
    if (len == NULL)
        return SAR_INVALIDPARAMERR;
    if (out != NULL && *len < n) {
        *len = (ULONG)n;
        return SAR_BUFFER_TOO_SMALL;
    }
    if (out != NULL)
        memcpy(out, src, n);
    *len = (ULONG)n;
    return SAR_OK;
}

/* names[0..n) as a multi-string: each name and its NUL, then one more NUL (an empty list is the
 * single NUL). */
static ULONG put_names(const char *const *names, size_t n, LPSTR out, ULONG *len)
{
    size_t need = 1;
    for (size_t i = 0; i < n; i++)
        need += strlen(names[i]) + 1;
    if (len == NULL)
        return SAR_INVALIDPARAMERR;
    if (out == NULL || *len < need) {
        ULONG rv = out == NULL ? SAR_OK : SAR_BUFFER_TOO_SMALL;
        *len = (ULONG)need;
        return rv;
    }
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]) + 1;
        memcpy(p, names[i], l);
        p += l;
    }
    *p = '\0';
    *len = (ULONG)need;
    return SAR_OK;
}

/* ---- devices ---- */

static ULONG enum_dev(call *c, BOOL present, LPSTR list, ULONG *size)
{
    char **names = NULL;
    size_t n = 0, kept = 0;
    if (skf_dev_list(c->dir, &names, &n) != 0)
        return SAR_READFILEERR;
    for (size_t i = 0; i < n; i++) {
        bool keep = !present;
        skf_dev d;
        if (present && skf_dev_load(c->dir, names[i], &d) == 0) {
            keep = d.present;
            skf_dev_clear(&d);
        }
        if (keep)
            names[kept++] = names[i];
        else
            free(names[i]);
    }
    ULONG rv = put_names((const char *const *)names, kept, list, size);
    skf_names_free(names, kept);
    return rv;
}

ULONG SKF_EnumDev(BOOL bPresent, LPSTR szNameList, ULONG *pulSize)
{
    SKF_CALL(enum_dev(&c_, bPresent, szNameList, pulSize));
}

static ULONG connect_dev(call *c, const char *name, DEVHANDLE *ph)
{
    ULONG rv = name_arg(name);
    if (rv != SAR_OK || ph == NULL)
        return rv != SAR_OK ? rv : SAR_INVALIDPARAMERR;
    *ph = NULL;
    int rc = skf_dev_load(c->dir, name, &c->dev);
    if (rc == -ENOENT || rc == -EINVAL)
        return SAR_INVALIDPARAMERR; /* no such device (or not a device name) */
    if (rc != 0)
        return SAR_READFILEERR;
    c->loaded = true;
    if (!c->dev.present)
        return SAR_DEVICE_REMOVED;
    hnd *h = new_handle(H_DEV, NULL);
    if (h == NULL)
        return SAR_MEMORYERR;
    snprintf(h->dev, sizeof h->dev, "%s", name);
    h->epoch = c->dev.epoch;
    *ph = (DEVHANDLE)h->id;
    return SAR_OK;
}

ULONG SKF_ConnectDev(LPSTR szName, DEVHANDLE *phDev)
{
    SKF_CALL(connect_dev(&c_, szName, phDev));
}

/* Closes a handle of the given kind and what was opened through it. No device access: closing
 * works after a removal, which is how a caller lets go of a pulled key. */
static ULONG close_kind(HANDLE h, htype type)
{
    hnd *x = find(h, type);
    if (x == NULL)
        return SAR_INVALIDHANDLEERR;
    free_handle(x);
    return SAR_OK;
}

ULONG SKF_DisConnectDev(DEVHANDLE hDev)
{
    SKF_CALL(close_kind(hDev, H_DEV));
}

static ULONG dev_state(call *c, const char *name, ULONG *state)
{
    ULONG rv = name_arg(name);
    if (rv != SAR_OK || state == NULL)
        return rv != SAR_OK ? rv : SAR_INVALIDPARAMERR;
    int rc = skf_dev_load(c->dir, name, &c->dev);
    if (rc == 0)
        c->loaded = true;
    *state = rc == 0 && c->dev.present ? DEV_PRESENT_STATE : DEV_ABSENT_STATE;
    return SAR_OK;
}

ULONG SKF_GetDevState(LPSTR szDevName, ULONG *pulDevState)
{
    SKF_CALL(dev_state(&c_, szDevName, pulDevState));
}

static ULONG dev_info(call *c, DEVHANDLE h, DEVINFO *info)
{
    ULONG rv = resolve_out(c, h, H_DEV, info);
    if (rv != SAR_OK)
        return rv;
    memset(info, 0, sizeof *info);
    info->Version = (VERSION){1, 0};
    /* fixed-size text fields: copied without a terminating NUL when they are full */
    strncpy(info->Manufacturer, "ukeyd soft SKF", sizeof info->Manufacturer);
    strncpy(info->Issuer, "ukeyd tests", sizeof info->Issuer);
    memcpy(info->Label, c->dev.label, strnlen(c->dev.label, sizeof info->Label));
    memcpy(info->SerialNumber, c->dev.serial, strnlen(c->dev.serial, sizeof info->SerialNumber));
    info->HWVersion = (VERSION){1, 0};
    info->FirmwareVersion = (VERSION){1, 0};
    info->AlgSymCap = SGD_SM4_ECB | SGD_SM4_CBC;
    info->AlgAsymCap = SGD_RSA | SGD_SM2_1 | SGD_SM2_3;
    info->AlgHashCap = SGD_SM3 | SGD_SHA1 | SGD_SHA256;
    info->TotalSpace = 64 * 1024;
    info->FreeSpace = 48 * 1024;
    info->MaxECCBufferSize = 256;
    info->MaxBufferSize = 4096;
    return SAR_OK;
}

ULONG SKF_GetDevInfo(DEVHANDLE hDev, DEVINFO *pDevInfo)
{
    SKF_CALL(dev_info(&c_, hDev, pDevInfo));
}

/* Another connection of this process that holds the device's lock, if any. */
static hnd *lock_holder(const hnd *self)
{
    for (size_t i = 0; i < n_handles; i++)
        if (handles[i] != self && handles[i]->type == H_DEV && handles[i]->locked &&
            strcmp(handles[i]->dev, self->dev) == 0)
            return handles[i];
    return NULL;
}

ULONG SKF_LockDev(DEVHANDLE hDev, ULONG ulTimeOut)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        call c;
        ULONG rv = begin(&c, true);
        if (rv == SAR_OK)
            rv = resolve(&c, hDev, H_DEV);
        bool busy = rv == SAR_OK && lock_holder(c.hdev) != NULL;
        if (rv == SAR_OK && !busy)
            c.hdev->locked = true;
        rv = end(&c, rv);
        if (!busy)
            return rv;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long ms =
            (now.tv_sec - start.tv_sec) * 1000LL + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (ms >= (long long)ulTimeOut)
            return SAR_TIMEOUTERR;
        usleep(10000);
    }
}

static ULONG unlock_dev(DEVHANDLE h)
{
    hnd *d = find(h, H_DEV);
    if (d == NULL)
        return SAR_INVALIDHANDLEERR;
    d->locked = false; /* no device access: unlocking a pulled key must work */
    return SAR_OK;
}

ULONG SKF_UnlockDev(DEVHANDLE hDev)
{
    SKF_CALL(unlock_dev(hDev));
}

/* ---- device events ---- */

/* What SKF_WaitForDevEvent last reported: device names and insertion epochs (0 = absent). */
typedef struct seen {
    char name[SKF_NAME_MAX];
    unsigned epoch;
} seen;
static seen *seen_list;
static size_t n_seen;
static atomic_int cancels;

/* The present devices now, as (name, epoch); under the lock. */
static int snapshot(const char *dir, seen **out, size_t *n)
{
    char **names = NULL;
    size_t count = 0;
    *out = NULL;
    *n = 0;
    if (skf_dev_list(dir, &names, &count) != 0)
        return -1;
    seen *v = calloc(count + 1, sizeof *v);
    if (v == NULL) {
        skf_names_free(names, count);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        skf_dev d;
        snprintf(v[i].name, sizeof v[i].name, "%s", names[i]);
        if (skf_dev_load(dir, names[i], &d) == 0) {
            v[i].epoch = d.present ? d.epoch : 0;
            skf_dev_clear(&d);
        }
    }
    skf_names_free(names, count);
    *out = v;
    *n = count;
    return 0;
}

static unsigned seen_epoch(const seen *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return v[i].epoch;
    return 0;
}

/* The first difference between what was reported and now, or false. */
static bool next_event(const seen *now, size_t n_now, const char **name, ULONG *event)
{
    for (size_t i = 0; i < n_seen; i++) {
        unsigned e = seen_epoch(now, n_now, seen_list[i].name);
        if (seen_list[i].epoch != 0 && seen_list[i].epoch != e) {
            *name = seen_list[i].name;
            *event = UK_SKF_DEV_EVENT_REMOVED;
            return true;
        }
    }
    for (size_t i = 0; i < n_now; i++) {
        if (now[i].epoch != 0 && seen_epoch(seen_list, n_seen, now[i].name) != now[i].epoch) {
            *name = now[i].name;
            *event = UK_SKF_DEV_EVENT_INSERTED;
            return true;
        }
    }
    return false;
}

/* Records that name's event was reported: it now has epoch e. */
static void mark_seen(const char *name, unsigned e)
{
    for (size_t i = 0; i < n_seen; i++) {
        if (strcmp(seen_list[i].name, name) == 0) {
            seen_list[i].epoch = e;
            return;
        }
    }
    seen *nv = realloc(seen_list, (n_seen + 1) * sizeof *nv);
    if (nv == NULL)
        return;
    seen_list = nv;
    snprintf(seen_list[n_seen].name, sizeof seen_list[n_seen].name, "%s", name);
    seen_list[n_seen++].epoch = e;
}

/* Events are changes from what the module saw at its first call (of any SKF function: a
 * monitor typically enumerates first), so a change between that and the first wait is not
 * lost. */
static int init_seen(const char *dir)
{
    seen *now = NULL;
    size_t n = 0;
    if (snapshot(dir, &now, &n) != 0)
        return -1;
    free(seen_list);
    seen_list = now;
    n_seen = n;
    seen_init = true;
    return 0;
}

/* One look under the lock: SAR_OK with an event, SAR_NOT_EVENTERR without one. */
static ULONG poll_event(call *c, LPSTR name_out, ULONG *len, ULONG *event)
{
    seen *now = NULL;
    size_t n_now = 0;
    if (snapshot(c->dir, &now, &n_now) != 0)
        return SAR_READFILEERR;
    ULONG rv = SAR_NOT_EVENTERR;
    const char *name = NULL;
    ULONG ev = 0;
    if (next_event(now, n_now, &name, &ev)) {
        size_t need = strlen(name) + 1;
        if (*len < need) {
            rv = SAR_BUFFER_TOO_SMALL; /* the event stays pending */
        } else {
            memcpy(name_out, name, need);
            rv = SAR_OK;
            *event = ev;
            mark_seen(name, ev == UK_SKF_DEV_EVENT_INSERTED ? seen_epoch(now, n_now, name) : 0);
        }
        *len = (ULONG)need;
    }
    free(now);
    return rv;
}

ULONG SKF_WaitForDevEvent(LPSTR szDevName, ULONG *pulDevNameLen, ULONG *pulEvent)
{
    if (szDevName == NULL || pulDevNameLen == NULL || pulEvent == NULL)
        return SAR_INVALIDPARAMERR;
    /* Not a counted call: it runs on a monitor thread for as long as the caller lives, and
     * counting it would make fail-after depend on timing. It polls every 20 ms and holds the
     * lock only for each look. */
    for (;;) {
        if (atomic_exchange(&cancels, 0) > 0)
            return SAR_NOT_EVENTERR;
        call c;
        ULONG rv = begin(&c, false);
        if (rv == SAR_OK)
            rv = poll_event(&c, szDevName, pulDevNameLen, pulEvent);
        rv = end(&c, rv);
        if (rv != SAR_NOT_EVENTERR)
            return rv;
        usleep(20000);
    }
}

ULONG SKF_CancelWaitForDevEvent(void)
{
    /* Sticky until a wait consumes it, so a cancel that comes just before the wait starts is
     * not lost (the pcsc-lite pitfall); not counted, like the wait. */
    atomic_fetch_add(&cancels, 1);
    return SAR_OK;
}

/* ---- applications and PINs ---- */

static ULONG enum_app(call *c, DEVHANDLE h, LPSTR list, ULONG *size)
{
    ULONG rv = resolve(c, h, H_DEV);
    if (rv != SAR_OK)
        return rv;
    const char *names[SKF_MAX_APPS];
    for (size_t i = 0; i < c->dev.napps; i++)
        names[i] = c->dev.app[i].name;
    return put_names(names, c->dev.napps, list, size);
}

ULONG SKF_EnumApplication(DEVHANDLE hDev, LPSTR szAppName, ULONG *pulSize)
{
    SKF_CALL(enum_app(&c_, hDev, szAppName, pulSize));
}

/* A new handle for the application (H_APP) or container (H_CONT) name, below the handle c
 * resolved. */
static ULONG new_child(call *c, htype type, const char *name, HANDLE *ph)
{
    hnd *h = new_handle(type, type == H_APP ? c->hdev : c->happ);
    if (h == NULL)
        return SAR_MEMORYERR;
    snprintf(type == H_APP ? h->app : h->cont, SKF_NAME_MAX, "%s", name);
    *ph = (HANDLE)h->id;
    return SAR_OK;
}

static ULONG pin_len_ok(const char *pin)
{
    if (pin == NULL)
        return SAR_INVALIDPARAMERR;
    size_t n = strnlen(pin, SKF_PIN_MAX + 1);
    return n >= SKF_PIN_MIN && n <= SKF_PIN_MAX ? SAR_OK : SAR_PIN_LEN_RANGE;
}

static ULONG create_app(call *c, DEVHANDLE h, const char *name, const char *admin_pin,
                        DWORD admin_retries, const char *user_pin, DWORD user_retries,
                        HAPPLICATION *ph)
{
    ULONG rv = resolve(c, h, H_DEV);
    if (rv == SAR_OK)
        rv = name_arg(name);
    if (rv == SAR_OK)
        rv = pin_len_ok(admin_pin);
    if (rv == SAR_OK)
        rv = pin_len_ok(user_pin);
    if (rv != SAR_OK)
        return rv;
    if (ph == NULL || admin_retries == 0 || admin_retries > 15 || user_retries == 0 ||
        user_retries > 15)
        return SAR_INVALIDPARAMERR;
    if (skf_dev_find_app(&c->dev, name) != NULL)
        return SAR_APPLICATION_EXISTS;
    if (c->dev.napps == SKF_MAX_APPS)
        return SAR_NO_ROOM;
    skf_app *a = &c->dev.app[c->dev.napps++];
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    snprintf(a->pin[ADMIN_TYPE], sizeof a->pin[0], "%s", admin_pin);
    snprintf(a->pin[USER_TYPE], sizeof a->pin[0], "%s", user_pin);
    a->max[ADMIN_TYPE] = a->left[ADMIN_TYPE] = (unsigned)admin_retries;
    a->max[USER_TYPE] = a->left[USER_TYPE] = (unsigned)user_retries;
    a->user_default = true;
    c->dirty = true;
    return new_child(c, H_APP, name, ph);
}

ULONG SKF_CreateApplication(DEVHANDLE hDev, LPSTR szAppName, LPSTR szAdminPin,
                            DWORD dwAdminPinRetryCount, LPSTR szUserPin, DWORD dwUserPinRetryCount,
                            DWORD dwCreateFileRights, HAPPLICATION *phApplication)
{
    (void)dwCreateFileRights; /* creating a file always needs the user PIN here */
    SKF_CALL(create_app(&c_, hDev, szAppName, szAdminPin, dwAdminPinRetryCount, szUserPin,
                        dwUserPinRetryCount, phApplication));
}

static ULONG delete_app(call *c, DEVHANDLE h, const char *name)
{
    ULONG rv = resolve_named(c, h, H_DEV, name);
    if (rv != SAR_OK)
        return rv;
    skf_app *a = skf_dev_find_app(&c->dev, name);
    if (a == NULL)
        return SAR_APPLICATION_NOT_EXISTS;
    if ((c->hdev->auth & (1u << ADMIN_TYPE)) == 0 || strcmp(c->hdev->auth_app, name) != 0)
        return SAR_USER_NOT_LOGGED_IN; /* the admin PIN of that application */
    while (a->ncont > 0)
        skf_app_remove_container(a, &a->cont[a->ncont - 1]);
    while (a->nfiles > 0)
        skf_app_remove_file(a, &a->file[a->nfiles - 1]);
    size_t i = (size_t)(a - c->dev.app);
    OPENSSL_cleanse(a, sizeof *a);
    memmove(&c->dev.app[i], &c->dev.app[i + 1], (c->dev.napps - i - 1) * sizeof *a);
    c->dev.napps--;
    memset(&c->dev.app[c->dev.napps], 0, sizeof *a);
    c->hdev->auth = 0;
    c->dirty = true;
    return SAR_OK;
}

ULONG SKF_DeleteApplication(DEVHANDLE hDev, LPSTR szAppName)
{
    SKF_CALL(delete_app(&c_, hDev, szAppName));
}

/* Opens an application of a device (H_APP) or a container of an application (H_CONT). */
static ULONG open_child(call *c, HANDLE h, htype type, const char *name, HANDLE *ph)
{
    ULONG rv = resolve_named(c, h, type == H_APP ? H_DEV : H_APP, name);
    if (rv != SAR_OK)
        return rv;
    if (ph == NULL)
        return SAR_INVALIDPARAMERR;
    *ph = NULL;
    if (type == H_APP && skf_dev_find_app(&c->dev, name) == NULL)
        return SAR_APPLICATION_NOT_EXISTS;
    if (type == H_CONT && skf_app_find_container(c->app, name) == NULL)
        return SAR_FILE_NOT_EXIST;
    return new_child(c, type, name, ph);
}

ULONG SKF_OpenApplication(DEVHANDLE hDev, LPSTR szAppName, HAPPLICATION *phApplication)
{
    SKF_CALL(open_child(&c_, hDev, H_APP, szAppName, phApplication));
}

static ULONG close_app(HAPPLICATION h)
{
    hnd *a = find(h, H_APP);
    if (a == NULL)
        return SAR_INVALIDHANDLEERR;
    hnd *d = find_id(a->parent);
    /* closing the application ends its security state: the next user must VerifyPIN again */
    if (d != NULL && strcmp(d->auth_app, a->app) == 0)
        d->auth = 0;
    free_handle(a);
    return SAR_OK;
}

ULONG SKF_CloseApplication(HAPPLICATION hApplication)
{
    SKF_CALL(close_app(hApplication));
}

/* resolve an application handle, then a PIN type and an out-parameter. */
static ULONG resolve_pin(call *c, HAPPLICATION h, ULONG type, const void *out)
{
    ULONG rv = resolve(c, h, H_APP);
    if (rv != SAR_OK)
        return rv;
    if (type != ADMIN_TYPE && type != USER_TYPE)
        return SAR_USER_TYPE_INVALID;
    return out == NULL ? SAR_INVALIDPARAMERR : SAR_OK;
}

/* Checks pin against the application's PIN of this type, counting retries. */
static ULONG check_pin(call *c, ULONG type, const char *pin, ULONG *retry)
{
    skf_app *a = c->app;
    if (a->left[type] == 0) {
        *retry = 0;
        return SAR_PIN_LOCKED;
    }
    ULONG rv = pin_len_ok(pin);
    if (rv != SAR_OK) { /* refused before it reaches the PIN: no retry spent */
        *retry = (ULONG)a->left[type];
        return rv;
    }
    size_t n = strlen(pin), m = strlen(a->pin[type]);
    if (n == m && CRYPTO_memcmp(pin, a->pin[type], n) == 0) {
        a->left[type] = a->max[type];
        *retry = (ULONG)a->left[type];
        c->dirty = true;
        return SAR_OK;
    }
    a->left[type]--;
    c->dirty = true;
    *retry = (ULONG)a->left[type];
    if (c->hdev != NULL && strcmp(c->hdev->auth_app, a->name) == 0)
        c->hdev->auth &= ~(1u << type);
    return a->left[type] == 0 ? SAR_PIN_LOCKED : SAR_PIN_INCORRECT;
}

static ULONG verify_pin(call *c, HAPPLICATION h, ULONG type, const char *pin, ULONG *retry)
{
    ULONG rv = resolve_pin(c, h, type, retry);
    if (rv != SAR_OK)
        return rv;
    rv = check_pin(c, type, pin, retry);
    if (rv == SAR_OK) {
        if (strcmp(c->hdev->auth_app, c->app->name) != 0)
            c->hdev->auth = 0;
        snprintf(c->hdev->auth_app, sizeof c->hdev->auth_app, "%s", c->app->name);
        c->hdev->auth |= 1u << type;
    }
    return rv;
}

ULONG SKF_VerifyPIN(HAPPLICATION hApplication, ULONG ulPINType, LPSTR szPIN, ULONG *pulRetryCount)
{
    SKF_CALL(verify_pin(&c_, hApplication, ulPINType, szPIN, pulRetryCount));
}

static ULONG change_pin(call *c, HAPPLICATION h, ULONG type, const char *old_pin,
                        const char *new_pin, ULONG *retry)
{
    ULONG rv = resolve_pin(c, h, type, retry);
    if (rv != SAR_OK)
        return rv;
    rv = pin_len_ok(new_pin); /* checked first: a bad new PIN costs no retry */
    if (rv == SAR_OK)
        rv = check_pin(c, type, old_pin, retry);
    if (rv != SAR_OK)
        return rv;
    snprintf(c->app->pin[type], sizeof c->app->pin[type], "%s", new_pin);
    if (type == USER_TYPE)
        c->app->user_default = false;
    c->dirty = true;
    return SAR_OK;
}

ULONG SKF_ChangePIN(HAPPLICATION hApplication, ULONG ulPINType, LPSTR szOldPin, LPSTR szNewPin,
                    ULONG *pulRetryCount)
{
    SKF_CALL(change_pin(&c_, hApplication, ulPINType, szOldPin, szNewPin, pulRetryCount));
}

static ULONG pin_info(call *c, HAPPLICATION h, ULONG type, ULONG *max, ULONG *left, BOOL *def)
{
    ULONG rv = resolve_pin(c, h, type, max);
    if (rv != SAR_OK)
        return rv;
    if (left == NULL || def == NULL)
        return SAR_INVALIDPARAMERR;
    *max = (ULONG)c->app->max[type];
    *left = (ULONG)c->app->left[type];
    *def = type == USER_TYPE && c->app->user_default ? TRUE : FALSE;
    return SAR_OK;
}

ULONG SKF_GetPINInfo(HAPPLICATION hApplication, ULONG ulPINType, ULONG *pulMaxRetryCount,
                     ULONG *pulRemainRetryCount, BOOL *pbDefaultPin)
{
    SKF_CALL(pin_info(&c_, hApplication, ulPINType, pulMaxRetryCount, pulRemainRetryCount,
                      pbDefaultPin));
}

static ULONG unblock_pin(call *c, HAPPLICATION h, const char *admin_pin, const char *new_pin,
                         ULONG *retry)
{
    ULONG rv = resolve_out(c, h, H_APP, retry);
    if (rv != SAR_OK)
        return rv;
    rv = pin_len_ok(new_pin);
    if (rv == SAR_OK)
        rv = check_pin(c, ADMIN_TYPE, admin_pin, retry);
    if (rv != SAR_OK)
        return rv;
    snprintf(c->app->pin[USER_TYPE], sizeof c->app->pin[USER_TYPE], "%s", new_pin);
    c->app->left[USER_TYPE] = c->app->max[USER_TYPE];
    c->dirty = true;
    return SAR_OK;
}

ULONG SKF_UnblockPIN(HAPPLICATION hApplication, LPSTR szAdminPIN, LPSTR szNewUserPIN,
                     ULONG *pulRetryCount)
{
    SKF_CALL(unblock_pin(&c_, hApplication, szAdminPIN, szNewUserPIN, pulRetryCount));
}

static ULONG clear_state(call *c, HAPPLICATION h)
{
    ULONG rv = resolve(c, h, H_APP);
    if (rv == SAR_OK && strcmp(c->hdev->auth_app, c->app->name) == 0)
        c->hdev->auth = 0;
    return rv;
}

ULONG SKF_ClearSecureState(HAPPLICATION hApplication)
{
    SKF_CALL(clear_state(&c_, hApplication));
}

/* ---- containers ---- */

/* ---- files (GM/T 0016 file management) ---- */

/* Whether the rights (SECURE_*_ACCOUNT) let the caller in now. */
static bool rights_ok(const call *c, unsigned rights)
{
    if (rights == SECURE_ANYONE_ACCOUNT)
        return true;
    bool app = strcmp(c->hdev->auth_app, c->app->name) == 0;
    if ((rights & SECURE_USER_ACCOUNT) && app && (c->hdev->auth & (1u << USER_TYPE)))
        return true;
    return (rights & SECURE_ADM_ACCOUNT) && app && (c->hdev->auth & (1u << ADMIN_TYPE));
}

/* A file name argument: present, at most 32 bytes. */
static ULONG file_name_arg(const char *s)
{
    if (s == NULL)
        return SAR_INVALIDPARAMERR;
    size_t n = strnlen(s, SKF_FILE_NAME_MAX);
    return n == 0 ? SAR_INVALIDPARAMERR : n == SKF_FILE_NAME_MAX ? SAR_NAMELENERR : SAR_OK;
}

/* The file named name of the application resolved in c (after the handle checks). */
static ULONG file_arg(call *c, const char *name, skf_file **out)
{
    ULONG rv = file_name_arg(name);
    if (rv != SAR_OK)
        return rv;
    *out = skf_app_find_file(c->app, name);
    return *out != NULL ? SAR_OK : SAR_FILE_NOT_EXIST;
}

static ULONG create_file(call *c, HAPPLICATION h, const char *name, ULONG size, ULONG rr, ULONG wr)
{
    ULONG rv = resolve(c, h, H_APP);
    if (rv == SAR_OK)
        rv = file_name_arg(name);
    if (rv != SAR_OK)
        return rv;
    if (size == 0 || size > SKF_FILE_MAX)
        return SAR_INDATALENERR;
    if ((rr != SECURE_ANYONE_ACCOUNT && (rr & ~0x11u) != 0) ||
        (wr != SECURE_ANYONE_ACCOUNT && (wr & ~0x11u) != 0))
        return SAR_INVALIDPARAMERR;
    if (!user_ok(c))
        return SAR_USER_NOT_LOGGED_IN;
    if (skf_app_find_file(c->app, name) != NULL)
        return SAR_FILE_ALREADY_EXIST;
    if (c->app->nfiles == SKF_MAX_FILES)
        return SAR_NO_ROOM;
    skf_file *f = &c->app->file[c->app->nfiles];
    memset(f, 0, sizeof *f);
    uint8_t *zero = calloc(1, (size_t)size);
    if (zero == NULL || skf_blob_set(&f->data, zero, (size_t)size) != 0) {
        free(zero);
        return SAR_MEMORYERR;
    }
    free(zero);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->read_rights = (unsigned)rr;
    f->write_rights = (unsigned)wr;
    c->app->nfiles++;
    c->dirty = true;
    return SAR_OK;
}

ULONG SKF_CreateFile(HAPPLICATION hApplication, LPSTR szFileName, ULONG ulFileSize,
                     ULONG ulReadRights, ULONG ulWriteRights)
{
    SKF_CALL(create_file(&c_, hApplication, szFileName, ulFileSize, ulReadRights, ulWriteRights));
}

static ULONG delete_file(call *c, HAPPLICATION h, const char *name)
{
    skf_file *f = NULL;
    ULONG rv = resolve(c, h, H_APP);
    if (rv == SAR_OK)
        rv = file_arg(c, name, &f);
    if (rv != SAR_OK)
        return rv;
    if (!rights_ok(c, f->write_rights))
        return SAR_USER_NOT_LOGGED_IN;
    skf_app_remove_file(c->app, f);
    c->dirty = true;
    return SAR_OK;
}

ULONG SKF_DeleteFile(HAPPLICATION hApplication, LPSTR szFileName)
{
    SKF_CALL(delete_file(&c_, hApplication, szFileName));
}

/* The names of an application's files (files) or containers, as a multi-string. */
static ULONG enum_in_app(call *c, HAPPLICATION h, bool files, LPSTR list, ULONG *size)
{
    ULONG rv = resolve(c, h, H_APP);
    if (rv != SAR_OK)
        return rv;
    const char *names[SKF_MAX_FILES > SKF_MAX_CONTAINERS ? SKF_MAX_FILES : SKF_MAX_CONTAINERS];
    size_t n = files ? c->app->nfiles : c->app->ncont;
    for (size_t i = 0; i < n; i++)
        names[i] = files ? c->app->file[i].name : c->app->cont[i].name;
    return put_names(names, n, list, size);
}

ULONG SKF_EnumFiles(HAPPLICATION hApplication, LPSTR szFileList, ULONG *pulSize)
{
    SKF_CALL(enum_in_app(&c_, hApplication, true, szFileList, pulSize));
}

static ULONG file_info(call *c, HAPPLICATION h, const char *name, FILEATTRIBUTE *info)
{
    skf_file *f = NULL;
    ULONG rv = resolve_out(c, h, H_APP, info);
    if (rv == SAR_OK)
        rv = file_arg(c, name, &f);
    if (rv != SAR_OK)
        return rv;
    memset(info, 0, sizeof *info);
    memcpy(info->FileName, f->name, strlen(f->name)); /* 32 bytes, no NUL when full */
    info->FileSize = (ULONG)f->data.n;
    info->ReadRights = f->read_rights;
    info->WriteRights = f->write_rights;
    return SAR_OK;
}

ULONG SKF_GetFileInfo(HAPPLICATION hApplication, LPSTR szFileName, FILEATTRIBUTE *pFileInfo)
{
    SKF_CALL(file_info(&c_, hApplication, szFileName, pFileInfo));
}

static ULONG read_file(call *c, HAPPLICATION h, const char *name, ULONG off, ULONG size, BYTE *out,
                       ULONG *out_len)
{
    skf_file *f = NULL;
    ULONG rv = resolve_out(c, h, H_APP, out_len);
    if (rv == SAR_OK)
        rv = file_arg(c, name, &f);
    if (rv != SAR_OK)
        return rv;
    if (!rights_ok(c, f->read_rights))
        return SAR_USER_NOT_LOGGED_IN;
    if (off > f->data.n)
        return SAR_INDATALENERR;
    ULONG n = size < f->data.n - off ? size : (ULONG)(f->data.n - off);
    if (out == NULL) {
        *out_len = n;
        return SAR_OK;
    }
    if (*out_len < n) {
        *out_len = n;
        return SAR_BUFFER_TOO_SMALL;
    }
    memcpy(out, f->data.p + off, n);
    *out_len = n;
    return SAR_OK;
}

ULONG SKF_ReadFile(HAPPLICATION hApplication, LPSTR szFileName, ULONG ulOffset, ULONG ulSize,
                   BYTE *pbOutData, ULONG *pulOutLen)
{
    SKF_CALL(read_file(&c_, hApplication, szFileName, ulOffset, ulSize, pbOutData, pulOutLen));
}

static ULONG write_file(call *c, HAPPLICATION h, const char *name, ULONG off, const BYTE *data,
                        ULONG size)
{
    ULONG rv = resolve(c, h, H_APP);
    if (rv == SAR_OK)
        rv = file_name_arg(name);
    if (rv != SAR_OK)
        return rv;
    if (data == NULL || size == 0)
        return SAR_INVALIDPARAMERR;
    skf_file *f = skf_app_find_file(c->app, name);
    if (f == NULL)
        return SAR_FILE_NOT_EXIST;
    if (!rights_ok(c, f->write_rights))
        return SAR_USER_NOT_LOGGED_IN;
    if (off > f->data.n || size > f->data.n - off)
        return SAR_INDATALENERR; /* files do not grow */
    memcpy(f->data.p + off, data, size);
    c->dirty = true;
    return SAR_OK;
}

ULONG SKF_WriteFile(HAPPLICATION hApplication, LPSTR szFileName, ULONG ulOffset, BYTE *pbData,
                    ULONG ulSize)
{
    SKF_CALL(write_file(&c_, hApplication, szFileName, ulOffset, pbData, ulSize));
}

ULONG SKF_EnumContainer(HAPPLICATION hApplication, LPSTR szContainerName, ULONG *pulSize)
{
    SKF_CALL(enum_in_app(&c_, hApplication, false, szContainerName, pulSize));
}

static ULONG create_container(call *c, HAPPLICATION h, const char *name, HCONTAINER *ph)
{
    ULONG rv = resolve_named(c, h, H_APP, name);
    if (rv != SAR_OK)
        return rv;
    if (ph == NULL)
        return SAR_INVALIDPARAMERR;
    *ph = NULL;
    if (!user_ok(c))
        return SAR_USER_NOT_LOGGED_IN;
    if (skf_app_find_container(c->app, name) != NULL)
        return SAR_FILE_ALREADY_EXIST;
    if (c->app->ncont == SKF_MAX_CONTAINERS)
        return SAR_REACH_MAX_CONTAINER_COUNT;
    skf_container *k = &c->app->cont[c->app->ncont++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    c->dirty = true;
    return new_child(c, H_CONT, name, ph);
}

ULONG SKF_CreateContainer(HAPPLICATION hApplication, LPSTR szContainerName, HCONTAINER *phContainer)
{
    SKF_CALL(create_container(&c_, hApplication, szContainerName, phContainer));
}

static ULONG delete_container(call *c, HAPPLICATION h, const char *name)
{
    ULONG rv = resolve_named(c, h, H_APP, name);
    if (rv != SAR_OK)
        return rv;
    if (!user_ok(c))
        return SAR_USER_NOT_LOGGED_IN;
    skf_container *k = skf_app_find_container(c->app, name);
    if (k == NULL)
        return SAR_FILE_NOT_EXIST;
    skf_app_remove_container(c->app, k);
    c->dirty = true;
    return SAR_OK; /* open handles to it now fail: resolve no longer finds the name */
}

ULONG SKF_DeleteContainer(HAPPLICATION hApplication, LPSTR szContainerName)
{
    SKF_CALL(delete_container(&c_, hApplication, szContainerName));
}

ULONG SKF_OpenContainer(HAPPLICATION hApplication, LPSTR szContainerName, HCONTAINER *phContainer)
{
    SKF_CALL(open_child(&c_, hApplication, H_CONT, szContainerName, phContainer));
}

ULONG SKF_CloseContainer(HCONTAINER hContainer)
{
    SKF_CALL(close_kind(hContainer, H_CONT));
}

/* The kind of the container's keys: the signing key decides, else the encryption key. */
static int container_kind(const skf_container *k)
{
    for (int i = 0; i < 2; i++) {
        int kind = 0;
        unsigned bits = 0;
        if (k->key[i].n > 0 && skfc_key_kind(&k->key[i], &kind, &bits) == 0)
            return kind;
    }
    return SKF_KIND_NONE;
}

static ULONG container_type(call *c, HCONTAINER h, ULONG *type)
{
    ULONG rv = resolve_out(c, h, H_CONT, type);
    if (rv != SAR_OK)
        return rv;
    int kind = container_kind(c->cont);
    *type = kind == SKF_KIND_RSA   ? UK_SKF_CONTAINER_RSA
            : kind == SKF_KIND_SM2 ? UK_SKF_CONTAINER_ECC
                                   : UK_SKF_CONTAINER_EMPTY;
    return SAR_OK;
}

ULONG SKF_GetContainerType(HCONTAINER hContainer, ULONG *pulContainerType)
{
    SKF_CALL(container_type(&c_, hContainer, pulContainerType));
}

static ULONG import_cert(call *c, HCONTAINER h, BOOL sign, const BYTE *cert, ULONG len)
{
    ULONG rv = resolve(c, h, H_CONT);
    if (rv != SAR_OK)
        return rv;
    if (cert == NULL || len == 0)
        return SAR_INVALIDPARAMERR;
    if (!user_ok(c))
        return SAR_USER_NOT_LOGGED_IN;
    if (len > SKF_CERT_MAX)
        return SAR_NO_ROOM;
    if (skfc_cert_check(cert, (size_t)len) != 0)
        return SAR_INDATAERR; /* not exactly one DER certificate */
    if (skf_blob_set(&c->cont->cert[sign ? SKF_KEY_SIGN : SKF_KEY_ENC], cert, (size_t)len) != 0)
        return SAR_MEMORYERR;
    c->dirty = true;
    return SAR_OK;
}

ULONG SKF_ImportCertificate(HCONTAINER hContainer, BOOL bSignFlag, BYTE *pbCert, ULONG ulCertLen)
{
    SKF_CALL(import_cert(&c_, hContainer, bSignFlag, pbCert, ulCertLen));
}

static ULONG export_cert(call *c, HCONTAINER h, BOOL sign, BYTE *out, ULONG *len)
{
    ULONG rv = resolve(c, h, H_CONT);
    if (rv != SAR_OK)
        return rv;
    const skf_blob *b = &c->cont->cert[sign ? SKF_KEY_SIGN : SKF_KEY_ENC];
    if (len == NULL)
        return SAR_INVALIDPARAMERR;
    if (b->n == 0)
        return SAR_CERTNOTFOUNTERR;
    return put_bytes(b->p, b->n, out, len);
}

ULONG SKF_ExportCertificate(HCONTAINER hContainer, BOOL bSignFlag, BYTE *pbCert, ULONG *pulCertLen)
{
    SKF_CALL(export_cert(&c_, hContainer, bSignFlag, pbCert, pulCertLen));
}

/* ---- cryptography ---- */

static ULONG gen_random(call *c, DEVHANDLE h, BYTE *out, ULONG len)
{
    ULONG rv = resolve(c, h, H_DEV);
    if (rv != SAR_OK)
        return rv;
    if (out == NULL || len == 0 || len > 4096)
        return SAR_INVALIDPARAMERR;
    return skfc_random(out, (size_t)len) == 0 ? SAR_OK : SAR_GENRANDERR;
}

ULONG SKF_GenRandom(DEVHANDLE hDev, BYTE *pbRandom, ULONG ulRandomLen)
{
    SKF_CALL(gen_random(&c_, hDev, pbRandom, ulRandomLen));
}

static void ecc_blob(ECCPUBLICKEYBLOB *b, const uint8_t x[32], const uint8_t y[32])
{
    memset(b, 0, sizeof *b);
    b->BitLen = 256;
    memcpy(b->XCoordinate + 32, x, 32); /* right-aligned in 64 bytes */
    memcpy(b->YCoordinate + 32, y, 32);
}

/* A 256-bit value right-aligned in a 64-byte field: the upper half must be zero. */
static bool from64(const BYTE field[64], uint8_t out[32])
{
    for (int i = 0; i < 32; i++)
        if (field[i] != 0)
            return false;
    memcpy(out, field + 32, 32);
    return true;
}

/* Refuses a key operation that would mix algorithms in one container. */
static bool kind_fits(const skf_container *k, int kind)
{
    int have = container_kind(k);
    return have == SKF_KIND_NONE || have == kind;
}

static ULONG gen_ecc(call *c, HCONTAINER h, ULONG alg, ECCPUBLICKEYBLOB *blob)
{
    ULONG rv = resolve_out(c, h, H_CONT, blob);
    if (rv != SAR_OK)
        return rv;
    if (alg != SGD_SM2_1)
        return SAR_NOTSUPPORTYETERR;
    if (!user_ok(c))
        return SAR_USER_NOT_LOGGED_IN;
    if (!kind_fits(c->cont, SKF_KIND_SM2))
        return SAR_KEYUSAGEERR;
    skf_blob key = {0};
    uint8_t x[32], y[32];
    if (skfc_sm2_generate(&key) != 0 || skfc_sm2_public(&key, x, y) != 0) {
        skf_blob_clear(&key);
        return SAR_FAIL;
    }
    skf_blob_move(&c->cont->key[SKF_KEY_SIGN], &key);
    c->dirty = true;
    ecc_blob(blob, x, y);
    return SAR_OK;
}

ULONG SKF_GenECCKeyPair(HCONTAINER hContainer, ULONG ulAlgId, ECCPUBLICKEYBLOB *pBlob)
{
    SKF_CALL(gen_ecc(&c_, hContainer, ulAlgId, pBlob));
}

/* The checks of an envelope's header, before any cryptography. */
static ULONG envelope_header(const ENVELOPEDKEYBLOB *env)
{
    if (env->Version != UK_SKF_ENVELOPED_KEY_VERSION)
        return SAR_INVALIDPARAMERR;
    if (env->ulSymmAlgID == SGD_SM1_ECB || env->ulSymmAlgID == SGD_SSF33_ECB)
        return SAR_NOTSUPPORTYETERR; /* real ECB algorithms this token has no cipher for */
    if (env->ulSymmAlgID != SGD_SM4_ECB)
        return SAR_INVALIDPARAMERR; /* not an ECB block cipher: the standard requires one */
    if (env->ulBits != 256 || env->PubKey.BitLen != 256)
        return SAR_MODULUSLENERR;
    if (env->ECCCipherBlob.CipherLen != 16)
        return SAR_INDATALENERR; /* the wrapped SM4 key */
    return SAR_OK;
}

/* The 16-byte symmetric key an ECCCIPHERBLOB (CipherLen checked by the caller) carries, SM2-
 * decrypted with key: SAR_INDATAERR when it does not open. */
static ULONG cipher_blob_open(const skf_blob *key, const ECCCIPHERBLOB *cb, uint8_t sm4[16])
{
    uint8_t c1x[32], c1y[32];
    if (!from64(cb->XCoordinate, c1x) || !from64(cb->YCoordinate, c1y))
        return SAR_INDATAERR;
    /* wrong recipient and a corrupted C1/C3/C2 look alike: C3 does not match */
    return skfc_sm2_decrypt(key, c1x, c1y, cb->HASH, cb->Cipher, 16, sm4) == 0 ? SAR_OK
                                                                               : SAR_INDATAERR;
}

/* Unwraps the private key of env with the container's signing key into key. */
static ULONG envelope_open(const skf_blob *sign_key, const ENVELOPEDKEYBLOB *env, skf_blob *key)
{
    uint8_t px[32], py[32], sm4[16], d[64], plain[64];
    ULONG rv = SAR_INDATAERR;
    if (!from64(env->PubKey.XCoordinate, px) || !from64(env->PubKey.YCoordinate, py))
        goto out;
    if (cipher_blob_open(sign_key, &env->ECCCipherBlob, sm4) != SAR_OK)
        goto out;
    /* cbEncryptedPriKey holds the right-aligned 64-byte PrivateKey field encrypted either whole
     * (64 bytes of cipher) or as its 32 significant bytes right-aligned (upper half zero) */
    bool short_form = true;
    for (int i = 0; i < 32; i++)
        short_form = short_form && env->cbEncryptedPriKey[i] == 0;
    if (short_form) {
        memset(plain, 0, 32);
        if (skfc_sm4_ecb(false, sm4, env->cbEncryptedPriKey + 32, 32, plain + 32) != 0)
            goto out;
    } else if (skfc_sm4_ecb(false, sm4, env->cbEncryptedPriKey, 64, plain) != 0) {
        goto out;
    }
    if (!from64(plain, d))
        goto out;
    rv = skfc_sm2_from_private(d, px, py, key) == 0 ? SAR_OK : SAR_INDATAERR;
out:
    OPENSSL_cleanse(sm4, sizeof sm4);
    OPENSSL_cleanse(d, sizeof d);
    OPENSSL_cleanse(plain, sizeof plain);
    return rv;
}

static ULONG import_ecc(call *c, HCONTAINER h, const ENVELOPEDKEYBLOB *env)
{
    ULONG rv = resolve_out(c, h, H_CONT, env);
    if (rv != SAR_OK)
        return rv;
    if (!user_ok(c))
        return SAR_USER_NOT_LOGGED_IN;
    rv = envelope_header(env);
    if (rv != SAR_OK)
        return rv;
    int kind = 0;
    unsigned bits = 0;
    const skf_blob *sign_key = &c->cont->key[SKF_KEY_SIGN];
    if (sign_key->n == 0 || skfc_key_kind(sign_key, &kind, &bits) != 0 || kind != SKF_KIND_SM2)
        return SAR_KEYNOTFOUNTERR; /* the envelope is sealed to the signing key */
    skf_blob key = {0};
    rv = envelope_open(sign_key, env, &key);
    if (rv == SAR_OK) {
        skf_blob_move(&c->cont->key[SKF_KEY_ENC], &key);
        c->dirty = true;
    }
    skf_blob_clear(&key);
    return rv;
}

ULONG SKF_ImportECCKeyPair(HCONTAINER hContainer, PENVELOPEDKEYBLOB pEnvelopedKeyBlob)
{
    SKF_CALL(import_ecc(&c_, hContainer, pEnvelopedKeyBlob));
}

static ULONG ecc_sign(call *c, HCONTAINER h, const BYTE *data, ULONG len, ECCSIGNATUREBLOB *sig)
{
    ULONG rv = resolve(c, h, H_CONT);
    if (rv != SAR_OK)
        return rv;
    if (data == NULL || sig == NULL)
        return SAR_INVALIDPARAMERR;
    if (len != 32)
        return SAR_INDATALENERR; /* the SM3 digest of Z || M, nothing else */
    if (!user_ok(c))
        return SAR_USER_NOT_LOGGED_IN;
    int kind = 0;
    unsigned bits = 0;
    const skf_blob *key = &c->cont->key[SKF_KEY_SIGN];
    if (key->n == 0 || skfc_key_kind(key, &kind, &bits) != 0)
        return SAR_KEYNOTFOUNTERR;
    if (kind != SKF_KIND_SM2)
        return SAR_KEYUSAGEERR;
    memset(sig, 0, sizeof *sig);
    return skfc_sm2_sign(key, data, sig->r + 32, sig->s + 32) == 0 ? SAR_OK : SAR_FAIL;
}

ULONG SKF_ECCSignData(HCONTAINER hContainer, BYTE *pbData, ULONG ulDataLen,
                      PECCSIGNATUREBLOB pSignature)
{
    SKF_CALL(ecc_sign(&c_, hContainer, pbData, ulDataLen, pSignature));
}

static ULONG ecc_verify(call *c, DEVHANDLE h, const ECCPUBLICKEYBLOB *pub, const BYTE *data,
                        ULONG len, const ECCSIGNATUREBLOB *sig)
{
    ULONG rv = resolve(c, h, H_DEV);
    if (rv != SAR_OK)
        return rv;
    uint8_t x[32], y[32], r[32], s[32];
    if (pub == NULL || data == NULL || sig == NULL || pub->BitLen != 256 ||
        !from64(pub->XCoordinate, x) || !from64(pub->YCoordinate, y) || !from64(sig->r, r) ||
        !from64(sig->s, s))
        return SAR_INVALIDPARAMERR;
    if (len != 32)
        return SAR_INDATALENERR;
    return skfc_sm2_verify(x, y, data, r, s) == 0 ? SAR_OK : SAR_FAIL;
}

ULONG SKF_ECCVerify(DEVHANDLE hDev, ECCPUBLICKEYBLOB *pECCPubKeyBlob, BYTE *pbData, ULONG ulDataLen,
                    PECCSIGNATUREBLOB pSignature)
{
    SKF_CALL(ecc_verify(&c_, hDev, pECCPubKeyBlob, pbData, ulDataLen, pSignature));
}

static ULONG export_pub(call *c, HCONTAINER h, BOOL sign, BYTE *out, ULONG *len)
{
    ULONG rv = resolve_out(c, h, H_CONT, len);
    if (rv != SAR_OK)
        return rv;
    const skf_blob *key = &c->cont->key[sign ? SKF_KEY_SIGN : SKF_KEY_ENC];
    int kind = 0;
    unsigned bits = 0;
    if (key->n == 0 || skfc_key_kind(key, &kind, &bits) != 0)
        return SAR_KEYNOTFOUNTERR;
    if (kind == SKF_KIND_SM2) {
        ECCPUBLICKEYBLOB b;
        uint8_t x[32], y[32];
        if (skfc_sm2_public(key, x, y) != 0)
            return SAR_FAIL;
        ecc_blob(&b, x, y);
        return put_bytes(&b, sizeof b, out, len);
    }
    RSAPUBLICKEYBLOB b;
    uint8_t n[256];
    size_t n_len = 0;
    memset(&b, 0, sizeof b);
    if (skfc_rsa_public(key, n, &n_len, b.PublicExponent) != 0)
        return SAR_FAIL;
    b.AlgID = SGD_RSA;
    b.BitLen = (ULONG)bits;
    memcpy(b.Modulus + sizeof b.Modulus - n_len, n, n_len); /* right-aligned, as BitLen says */
    return put_bytes(&b, sizeof b, out, len);
}

ULONG SKF_ExportPublicKey(HCONTAINER hContainer, BOOL bSignFlag, BYTE *pbBlob, ULONG *pulBlobLen)
{
    SKF_CALL(export_pub(&c_, hContainer, bSignFlag, pbBlob, pulBlobLen));
}

static ULONG gen_rsa(call *c, HCONTAINER h, ULONG bits, RSAPUBLICKEYBLOB *blob)
{
    ULONG rv = resolve_out(c, h, H_CONT, blob);
    if (rv != SAR_OK)
        return rv;
    if (bits != 1024 && bits != 2048)
        return SAR_MODULUSLENERR;
    if (!user_ok(c))
        return SAR_USER_NOT_LOGGED_IN;
    if (!kind_fits(c->cont, SKF_KIND_RSA))
        return SAR_KEYUSAGEERR;
    skf_blob key = {0};
    uint8_t n[256];
    size_t n_len = 0;
    memset(blob, 0, sizeof *blob);
    if (skfc_rsa_generate((unsigned)bits, &key) != 0 ||
        skfc_rsa_public(&key, n, &n_len, blob->PublicExponent) != 0) {
        skf_blob_clear(&key);
        return SAR_GENRSAKEYERR;
    }
    skf_blob_move(&c->cont->key[SKF_KEY_SIGN], &key);
    c->dirty = true;
    blob->AlgID = SGD_RSA;
    blob->BitLen = bits;
    memcpy(blob->Modulus + sizeof blob->Modulus - n_len, n, n_len);
    return SAR_OK;
}

ULONG SKF_GenRSAKeyPair(HCONTAINER hContainer, ULONG ulBitsLen, RSAPUBLICKEYBLOB *pBlob)
{
    SKF_CALL(gen_rsa(&c_, hContainer, ulBitsLen, pBlob));
}

static ULONG rsa_sign(call *c, HCONTAINER h, const BYTE *data, ULONG len, BYTE *sig, ULONG *sig_len)
{
    ULONG rv = resolve(c, h, H_CONT);
    if (rv != SAR_OK)
        return rv;
    if (data == NULL || sig_len == NULL || len == 0)
        return SAR_INVALIDPARAMERR;
    const skf_blob *key = &c->cont->key[SKF_KEY_SIGN];
    int kind = 0;
    unsigned bits = 0;
    if (key->n == 0 || skfc_key_kind(key, &kind, &bits) != 0)
        return SAR_KEYNOTFOUNTERR;
    if (kind != SKF_KIND_RSA)
        return SAR_KEYUSAGEERR;
    size_t k = bits / 8;
    if (len > k - 11)
        return SAR_INDATALENERR;
    if (sig == NULL || *sig_len < k) {
        ULONG r = sig == NULL ? SAR_OK : SAR_BUFFER_TOO_SMALL;
        *sig_len = (ULONG)k;
        return r;
    }
    if (!user_ok(c))
        return SAR_USER_NOT_LOGGED_IN;
    size_t out = k;
    if (skfc_rsa_sign(key, data, (size_t)len, sig, &out) != 0)
        return SAR_FAIL;
    *sig_len = (ULONG)out;
    return SAR_OK;
}

ULONG SKF_RSASignData(HCONTAINER hContainer, BYTE *pbData, ULONG ulDataLen, BYTE *pbSignature,
                      ULONG *pulSignLen)
{
    SKF_CALL(rsa_sign(&c_, hContainer, pbData, ulDataLen, pbSignature, pulSignLen));
}

/* ---- digests ---- */

static ULONG digest_init(call *c, DEVHANDLE h, ULONG alg, const ECCPUBLICKEYBLOB *pub,
                         const BYTE *id, ULONG id_len, HANDLE *ph)
{
    ULONG rv = resolve_out(c, h, H_DEV, ph);
    if (rv != SAR_OK)
        return rv;
    *ph = NULL;
    int md = alg == SGD_SM3      ? SKF_MD_SM3
             : alg == SGD_SHA1   ? SKF_MD_SHA1
             : alg == SGD_SHA256 ? SKF_MD_SHA256
                                 : 0;
    if (md == 0)
        return SAR_NOTSUPPORTYETERR;
    uint8_t z[32], x[32], y[32];
    bool with_z = pub != NULL;
    if (with_z) {
        /* GM/T 0016: with a public key (SM3 only) the hash starts with Z(ID, key) */
        if (md != SKF_MD_SM3 || pub->BitLen != 256 || !from64(pub->XCoordinate, x) ||
            !from64(pub->YCoordinate, y) || id == NULL || id_len == 0 || id_len >= 8192)
            return SAR_INVALIDPARAMERR;
        if (skfc_sm2_z(x, y, id, (size_t)id_len, z) != 0)
            return SAR_HASHERR;
    }
    skfc_md *m = skfc_md_new(md);
    if (m == NULL)
        return SAR_HASHOBJERR;
    if (with_z && skfc_md_update(m, z, sizeof z) != 0) {
        skfc_md_free(m);
        return SAR_HASHERR;
    }
    hnd *hh = new_handle(H_HASH, c->hdev);
    if (hh == NULL) {
        skfc_md_free(m);
        return SAR_MEMORYERR;
    }
    hh->md = m;
    *ph = (HANDLE)hh->id;
    return SAR_OK;
}

ULONG SKF_DigestInit(DEVHANDLE hDev, ULONG ulAlgID, ECCPUBLICKEYBLOB *pPubKey, BYTE *pucID,
                     ULONG ulIDLen, HANDLE *phHash)
{
    SKF_CALL(digest_init(&c_, hDev, ulAlgID, pPubKey, pucID, ulIDLen, phHash));
}

static ULONG digest_update(call *c, HANDLE h, const BYTE *data, ULONG len)
{
    ULONG rv = resolve(c, h, H_HASH);
    if (rv != SAR_OK)
        return rv;
    if (data == NULL && len > 0)
        return SAR_INVALIDPARAMERR;
    if (c->hhash->md == NULL)
        return SAR_HASHOBJERR; /* already finished */
    return skfc_md_update(c->hhash->md, data, (size_t)len) == 0 ? SAR_OK : SAR_HASHERR;
}

ULONG SKF_DigestUpdate(HANDLE hHash, BYTE *pbData, ULONG ulDataLen)
{
    SKF_CALL(digest_update(&c_, hHash, pbData, ulDataLen));
}

/* Finishes the hash into out (length protocol: a NULL or short buffer leaves it running). */
static ULONG digest_final(call *c, BYTE *out, ULONG *len)
{
    skfc_md *m = c->hhash->md;
    size_t n = skfc_md_size(m);
    if (len == NULL)
        return SAR_INVALIDPARAMERR;
    if (out == NULL || *len < n) {
        ULONG rv = out == NULL ? SAR_OK : SAR_BUFFER_TOO_SMALL;
        *len = (ULONG)n;
        return rv;
    }
    ULONG rv = skfc_md_final(m, out) == 0 ? SAR_OK : SAR_HASHERR;
    *len = (ULONG)n;
    skfc_md_free(m);
    c->hhash->md = NULL;
    return rv;
}

static ULONG digest(call *c, HANDLE h, const BYTE *data, ULONG len, BYTE *out, ULONG *out_len)
{
    ULONG rv = resolve(c, h, H_HASH);
    if (rv != SAR_OK)
        return rv;
    if (c->hhash->md == NULL)
        return SAR_HASHOBJERR;
    if (data == NULL && len > 0)
        return SAR_INVALIDPARAMERR;
    if (out == NULL || out_len == NULL || *out_len < skfc_md_size(c->hhash->md))
        return digest_final(c, out, out_len); /* the length answer; nothing hashed yet */
    if (skfc_md_update(c->hhash->md, data, (size_t)len) != 0)
        return SAR_HASHERR;
    return digest_final(c, out, out_len);
}

ULONG SKF_Digest(HANDLE hHash, BYTE *pbData, ULONG ulDataLen, BYTE *pbHashData, ULONG *pulHashLen)
{
    SKF_CALL(digest(&c_, hHash, pbData, ulDataLen, pbHashData, pulHashLen));
}

static ULONG digest_final_call(call *c, HANDLE h, BYTE *out, ULONG *len)
{
    ULONG rv = resolve(c, h, H_HASH);
    if (rv != SAR_OK)
        return rv;
    if (c->hhash->md == NULL)
        return SAR_HASHOBJERR;
    return digest_final(c, out, len);
}

ULONG SKF_DigestFinal(HANDLE hHash, BYTE *pHashData, ULONG *pulHashLen)
{
    SKF_CALL(digest_final_call(&c_, hHash, pHashData, pulHashLen));
}

/* ---- session keys (digital envelopes) ---- */

static ULONG import_session_key(call *c, HCONTAINER h, ULONG alg, const BYTE *data, ULONG len,
                                HANDLE *ph)
{
    ULONG rv = resolve_out(c, h, H_CONT, ph);
    if (rv != SAR_OK)
        return rv;
    *ph = NULL;
    if (data == NULL)
        return SAR_INVALIDPARAMERR;
    if (!user_ok(c))
        return SAR_USER_NOT_LOGGED_IN;
    if (alg != SGD_SM4_ECB && alg != SGD_SM4_CBC)
        return SAR_NOTSUPPORTYETERR;
    int kind = 0;
    unsigned bits = 0;
    const skf_blob *key = &c->cont->key[SKF_KEY_ENC];
    if (key->n == 0 || skfc_key_kind(key, &kind, &bits) != 0)
        return SAR_KEYNOTFOUNTERR;
    if (kind != SKF_KIND_SM2)
        return SAR_KEYUSAGEERR; /* an RSA container's envelopes are not ECCCIPHERBLOBs */
    /* the blob is packed: any alignment reads right */
    const ECCCIPHERBLOB *cb = (const ECCCIPHERBLOB *)data;
    if ((size_t)len < offsetof(ECCCIPHERBLOB, Cipher) || cb->CipherLen != 16 ||
        (size_t)len != UK_SKF_ECCCIPHERBLOB_SIZE(16))
        return SAR_INDATALENERR; /* an SM4 key, exactly */
    uint8_t sm4[16];
    rv = cipher_blob_open(key, cb, sm4);
    if (rv == SAR_OK) {
        hnd *hk = new_handle(H_KEY, c->hcont);
        if (hk == NULL) {
            rv = SAR_MEMORYERR;
        } else {
            memcpy(hk->key, sm4, sizeof sm4);
            hk->key_alg = alg;
            *ph = (HANDLE)hk->id;
        }
    }
    OPENSSL_cleanse(sm4, sizeof sm4);
    return rv;
}

ULONG SKF_ImportSessionKey(HCONTAINER hContainer, ULONG ulAlgId, BYTE *pbWrapedData,
                           ULONG ulWrapedLen, HANDLE *phKey)
{
    SKF_CALL(import_session_key(&c_, hContainer, ulAlgId, pbWrapedData, ulWrapedLen, phKey));
}

/* Ends the decryption of the key handle being used. */
static void decrypt_end(call *c)
{
    skfc_sm4_dec_free(c->hkey->dec);
    c->hkey->dec = NULL;
}

static ULONG decrypt_init(call *c, HANDLE h, const BLOCKCIPHERPARAM *p)
{
    ULONG rv = resolve(c, h, H_KEY);
    if (rv != SAR_OK)
        return rv;
    bool cbc = c->hkey->key_alg == SGD_SM4_CBC;
    /* FeedBitLen is for the feedback modes: ignored for ECB and CBC */
    if ((cbc && p->IVLen != 16) || p->PaddingType > 1)
        return SAR_INVALIDPARAMERR;
    skfc_sm4_dec *d = skfc_sm4_dec_new(c->hkey->key, cbc ? p->IV : NULL, p->PaddingType == 1);
    if (d == NULL)
        return SAR_MEMORYERR;
    decrypt_end(c); /* a new Init starts over */
    c->hkey->dec = d;
    return SAR_OK;
}

ULONG SKF_DecryptInit(HANDLE hKey, BLOCKCIPHERPARAM DecryptParam)
{
    SKF_CALL(decrypt_init(&c_, hKey, &DecryptParam));
}

/* resolve, then the arguments every decryption call has, and a decryption going on. */
static ULONG decrypt_args(call *c, HANDLE h, const BYTE *in, ULONG n, const ULONG *out_len)
{
    ULONG rv = resolve(c, h, H_KEY);
    if (rv != SAR_OK)
        return rv;
    if ((in == NULL && n > 0) || out_len == NULL)
        return SAR_INVALIDPARAMERR;
    if (c->hkey->dec == NULL)
        return SAR_NOTINITIALIZEERR;
    return n > SKF_CIPHER_MAX ? SAR_INDATALENERR : SAR_OK;
}

/* The rest of a decryption (and n more bytes of in first) run on a copy of its state into
 * plain (at least n + 16 bytes), so that a length answer leaves the decryption as it was. */
static ULONG decrypt_rest(const skfc_sm4_dec *dec, const BYTE *in, size_t n, uint8_t *plain,
                          size_t *plain_len)
{
    skfc_sm4_dec *d = skfc_sm4_dec_dup(dec);
    if (d == NULL)
        return SAR_MEMORYERR;
    size_t a = 0, b = 0;
    int rc = skfc_sm4_dec_update(d, in, n, plain, &a);
    if (rc == 0)
        rc = skfc_sm4_dec_final(d, plain + a, &b);
    skfc_sm4_dec_free(d);
    *plain_len = a + b;
    return rc == 0          ? SAR_OK
           : rc == -EINVAL  ? SAR_INDATALENERR
           : rc == -EBADMSG ? SAR_DECRYPTPADERR
                            : SAR_FAIL;
}

/* SKF_Decrypt (in, n) and SKF_DecryptFinal (no input): the whole rest, then the decryption
 * ends, also when the data was refused (a NULL or short buffer only asks for the length). */
static ULONG decrypt_last(call *c, HANDLE h, const BYTE *in, ULONG n, BYTE *out, ULONG *out_len)
{
    ULONG rv = decrypt_args(c, h, in, n, out_len);
    if (rv != SAR_OK)
        return rv;
    size_t cap = (size_t)n + 32, len = 0;
    uint8_t *plain = malloc(cap);
    if (plain == NULL)
        return SAR_MEMORYERR;
    rv = decrypt_rest(c->hkey->dec, in, n, plain, &len);
    if (rv == SAR_OK) {
        rv = put_bytes(plain, len, out, out_len);
        if (rv == SAR_OK && out != NULL)
            decrypt_end(c);
    } else if (rv != SAR_MEMORYERR) {
        decrypt_end(c);
    }
    OPENSSL_clear_free(plain, cap);
    return rv;
}

ULONG SKF_Decrypt(HANDLE hKey, BYTE *pbEncryptedData, ULONG ulEncryptedLen, BYTE *pbData,
                  ULONG *pulDataLen)
{
    SKF_CALL(decrypt_last(&c_, hKey, pbEncryptedData, ulEncryptedLen, pbData, pulDataLen));
}

static ULONG decrypt_update(call *c, HANDLE h, const BYTE *in, ULONG n, BYTE *out, ULONG *out_len)
{
    ULONG rv = decrypt_args(c, h, in, n, out_len);
    if (rv != SAR_OK)
        return rv;
    size_t need = skfc_sm4_dec_out(c->hkey->dec, (size_t)n);
    if (out == NULL || *out_len < need) {
        rv = out == NULL ? SAR_OK : SAR_BUFFER_TOO_SMALL;
        *out_len = (ULONG)need;
        return rv;
    }
    size_t got = 0;
    if (skfc_sm4_dec_update(c->hkey->dec, in, (size_t)n, out, &got) != 0) {
        decrypt_end(c);
        return SAR_FAIL;
    }
    *out_len = (ULONG)got;
    return SAR_OK;
}

ULONG SKF_DecryptUpdate(HANDLE hKey, BYTE *pbEncryptedData, ULONG ulEncryptedLen, BYTE *pbData,
                        ULONG *pulDataLen)
{
    SKF_CALL(decrypt_update(&c_, hKey, pbEncryptedData, ulEncryptedLen, pbData, pulDataLen));
}

ULONG SKF_DecryptFinal(HANDLE hKey, BYTE *pbDecryptedData, ULONG *pulDecryptedDataLen)
{
    SKF_CALL(decrypt_last(&c_, hKey, NULL, 0, pbDecryptedData, pulDecryptedDataLen));
}

/* Hash and session-key handles; neither needs the device. */
static ULONG close_handle(HANDLE h)
{
    return find(h, H_KEY) != NULL ? close_kind(h, H_KEY) : close_kind(h, H_HASH);
}

ULONG SKF_CloseHandle(HANDLE hHandle)
{
    SKF_CALL(close_handle(hHandle));
}

/* Frees what the module holds when it is unloaded, so a dlclose leaves no leak behind. */
__attribute__((destructor)) static void unload(void)
{
    while (n_handles > 0)
        free_handle(handles[n_handles - 1]);
    free(handles);
    handles = NULL;
    free(seen_list);
    seen_list = NULL;
    n_seen = 0;
    seen_init = false;
}
