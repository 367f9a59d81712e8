/*
 * uk_p11_module.c - the PKCS#11 module loader (shared, refcounted instances)
 * and the one CK_RV -> uk_err translation.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_p11_int.h"

/* PKCS#11 3.0 C_GetInterface, declared here: p11-kit 0.24's header is 2.40.
 * A 3.0 function list starts with the 2.40 one, so only that part is used. */
typedef struct p11_interface {
    CK_UTF8CHAR *name;
    void *functions;
    CK_FLAGS flags;
} p11_interface;
typedef CK_RV (*p11_get_interface_fn)(CK_UTF8CHAR *name, CK_VERSION *version, p11_interface **iface,
                                      CK_FLAGS flags);

struct uk_p11_module {
    uk_source_module base; /* path, name, refs: the shared registry's (uk_source.h) */
    void *dl;
    bool finalize; /* we initialised it, so we finalise it */
    uk__p11_fns fns;
    pthread_mutex_t call_mu; /* held for every call into the module */
};

/* One instance per path for the whole process: PKCS#11 allows one
 * C_Initialize per process, whoever asks for the module. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static uk_source_module *registry;

/* ---- stubs: what a missing function answers ----------------------------- */

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#define STUB(name, params, args)                                                                   \
    static CK_RV stub_##name params                                                                \
    {                                                                                              \
        return CKR_FUNCTION_NOT_SUPPORTED;                                                         \
    }
UK__P11_FUNCS(STUB)
#undef STUB
#pragma GCC diagnostic pop

static void fns_init(uk__p11_fns *f)
{
#define SET_STUB(name, params, args) f->name = stub_##name;
    UK__P11_FUNCS(SET_STUB)
#undef SET_STUB
}

static void fns_take(uk__p11_fns *f, const CK_FUNCTION_LIST *fl)
{
#define TAKE(name, params, args)                                                                   \
    if (fl->name != NULL)                                                                          \
        f->name = fl->name;
    UK__P11_FUNCS(TAKE)
#undef TAKE
}

#define CALL(name, params, args)                                                                   \
    CK_RV uk__p11_##name(uk_p11_module *m, UK__P11_UNPAREN params)                                 \
    {                                                                                              \
        pthread_mutex_lock(&m->call_mu);                                                           \
        CK_RV rv = m->fns.name args;                                                               \
        pthread_mutex_unlock(&m->call_mu);                                                         \
        return rv;                                                                                 \
    }
UK__P11_FUNCS(CALL)
#undef CALL

const char *uk_p11_module_name(const uk_p11_module *m)
{
    return m->base.name;
}

/* ---- loading --------------------------------------------------------------- */

/* The module's function list: C_GetInterface("PKCS 11") where there is one,
 * else C_GetFunctionList. */
static int function_list(uk_p11_module *m, const CK_FUNCTION_LIST **out)
{
    CK_RV rv;
    p11_get_interface_fn get_iface = (p11_get_interface_fn)dlsym(m->dl, "C_GetInterface");
    if (get_iface != NULL) {
        p11_interface *iface = NULL;
        CK_UTF8CHAR name[] = "PKCS 11";
        rv = get_iface(name, NULL, &iface, 0);
        if (rv == CKR_OK && iface != NULL && iface->functions != NULL) {
            *out = iface->functions;
            return UK_OK;
        }
        UK_LOG_INFO("PKCS#11 module %s: C_GetInterface gave no interface (%s); trying "
                    "C_GetFunctionList",
                    m->base.name, uk__p11_rv_name(rv));
    }
    CK_C_GetFunctionList get_list = (CK_C_GetFunctionList)dlsym(m->dl, "C_GetFunctionList");
    if (get_list == NULL) {
        UK_LOG_ERR("PKCS#11 module %s (%s) has neither C_GetInterface nor C_GetFunctionList",
                   m->base.name, m->base.path);
        return UK_E_MODULE_ERROR;
    }
    CK_FUNCTION_LIST *fl = NULL;
    rv = get_list(&fl);
    if (rv != CKR_OK || fl == NULL) {
        UK_LOG_ERR("PKCS#11 module %s: C_GetFunctionList failed: %s", m->base.name,
                   rv != CKR_OK ? uk__p11_rv_name(rv) : "no list");
        return UK_E_MODULE_ERROR;
    }
    *out = fl;
    return UK_OK;
}

static int module_load(uk_p11_module *m)
{
    m->dl = dlopen(m->base.path, RTLD_NOW | RTLD_LOCAL);
    if (m->dl == NULL) {
        const char *why = dlerror();
        UK_LOG_ERR("PKCS#11 module %s: cannot load %s: %s", m->base.name, m->base.path,
                   why != NULL ? why : "unknown reason");
        return UK_E_MODULE_ERROR;
    }
    const CK_FUNCTION_LIST *fl = NULL;
    int rc = function_list(m, &fl);
    if (rc != UK_OK)
        return rc;
    if (fl->version.major < 2) {
        UK_LOG_ERR("PKCS#11 module %s: interface version %u.%u is too old", m->base.name,
                   fl->version.major, fl->version.minor);
        return UK_E_MODULE_ERROR;
    }
    fns_init(&m->fns);
    fns_take(&m->fns, fl);
    /* No CKF_OS_LOCKING_OK: call_mu keeps every other thread out of the
     * module, so it need not lock at all (PKCS#11 2.40, 5.4, case 1). With OS
     * locking, OpenSC 0.23 deadlocks in itself when the card goes during
     * C_Login (an error path in sc_lock leaves its own mutex held). */
    CK_RV rv = m->fns.C_Initialize(NULL);
    if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        /* Someone else in this process initialised it; they finalise it. */
        UK_LOG_INFO("PKCS#11 module %s was already initialised in this process", m->base.name);
        return UK_OK;
    }
    if (rv != CKR_OK) {
        UK_LOG_ERR("PKCS#11 module %s (%s): C_Initialize failed", m->base.name, m->base.path);
        return uk__p11_err(rv, "C_Initialize", m->base.name) == UK_E_NO_MEMORY ? UK_E_NO_MEMORY
                                                                               : UK_E_MODULE_ERROR;
    }
    m->finalize = true;
    return UK_OK;
}

static void module_unload(uk_source_module *base)
{
    uk_p11_module *m = (uk_p11_module *)base;
    if (m->finalize) {
        CK_RV rv = m->fns.C_Finalize(NULL);
        if (rv != CKR_OK)
            (void)uk__p11_err(rv, "C_Finalize", m->base.name);
    }
    /* A module that could not be loaded leaves no handle; one whose
     * C_Initialize failed is unloaded without C_Finalize. */
    if (m->dl != NULL)
        dlclose(m->dl);
    pthread_mutex_destroy(&m->call_mu);
    free(m);
}

static uk_source_module *module_alloc(const void *arg)
{
    (void)arg;
    uk_p11_module *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    if (pthread_mutex_init(&m->call_mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    fns_init(&m->fns);
    return &m->base;
}

static int module_load_base(uk_source_module *base)
{
    return module_load((uk_p11_module *)base);
}

static const uk_source_module_kind p11_kind = {
    .what = "PKCS#11",
    .mu = &registry_mu,
    .list = &registry,
    .alloc = module_alloc,
    .load = module_load_base,
    .unload = module_unload,
};

int uk_p11_module_get(const char *path, const char *name, uk_p11_module **out)
{
    uk_source_module *m = NULL;
    int rc = uk_source_module_get(&p11_kind, path, name, NULL, &m);
    *out = (uk_p11_module *)m;
    return rc;
}

void uk__p11_module_ref(uk_p11_module *m)
{
    uk_source_module_ref(&p11_kind, &m->base);
}

void uk_p11_module_put(uk_p11_module *m)
{
    uk_source_module_put(&p11_kind, m != NULL ? &m->base : NULL);
}

/* ---- strings ----------------------------------------------------------------- */

void uk__p11_field(const CK_UTF8CHAR *field, size_t len, char *out, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < size; i++) {
        unsigned char c = field[i];
        out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

/* ---- errors ------------------------------------------------------------------- */

/* CKR name, uk_err, expected (logged at debug). */
#define RV_TABLE(X)                                                                                \
    X(CKR_CANCEL, UK_E_CANCELLED, 1)                                                               \
    X(CKR_HOST_MEMORY, UK_E_NO_MEMORY, 0)                                                          \
    X(CKR_SLOT_ID_INVALID, UK_E_CARD_REMOVED, 1)                                                   \
    X(CKR_GENERAL_ERROR, UK_E_CARD_ERROR, 0)                                                       \
    X(CKR_FUNCTION_FAILED, UK_E_CARD_ERROR, 0)                                                     \
    X(CKR_ARGUMENTS_BAD, UK_E_INTERNAL, 0)                                                         \
    X(CKR_NO_EVENT, UK_E_NOT_FOUND, 1)                                                             \
    X(CKR_CANT_LOCK, UK_E_MODULE_ERROR, 0)                                                         \
    X(CKR_ATTRIBUTE_SENSITIVE, UK_E_NOT_SUPPORTED, 1)                                              \
    X(CKR_ATTRIBUTE_TYPE_INVALID, UK_E_NOT_SUPPORTED, 1)                                           \
    X(CKR_ATTRIBUTE_VALUE_INVALID, UK_E_NOT_SUPPORTED, 0)                                          \
    X(CKR_DATA_INVALID, UK_E_INVALID_PARAMS, 0)                                                    \
    X(CKR_DATA_LEN_RANGE, UK_E_INVALID_PARAMS, 0)                                                  \
    X(CKR_DEVICE_ERROR, UK_E_CARD_ERROR, 0)                                                        \
    X(CKR_DEVICE_MEMORY, UK_E_LIMIT_EXCEEDED, 0)                                                   \
    X(CKR_DEVICE_REMOVED, UK_E_CARD_REMOVED, 1)                                                    \
    X(CKR_FUNCTION_CANCELED, UK_E_CANCELLED, 1)                                                    \
    X(CKR_FUNCTION_NOT_SUPPORTED, UK_E_NOT_SUPPORTED, 1)                                           \
    X(CKR_KEY_HANDLE_INVALID, UK_E_KEY_NOT_FOUND, 0)                                               \
    X(CKR_KEY_SIZE_RANGE, UK_E_NOT_SUPPORTED, 0)                                                   \
    X(CKR_KEY_TYPE_INCONSISTENT, UK_E_NOT_SUPPORTED, 0)                                            \
    X(CKR_KEY_FUNCTION_NOT_PERMITTED, UK_E_NOT_SUPPORTED, 0)                                       \
    X(CKR_MECHANISM_INVALID, UK_E_NOT_SUPPORTED, 0)                                                \
    X(CKR_MECHANISM_PARAM_INVALID, UK_E_NOT_SUPPORTED, 0)                                          \
    X(CKR_OBJECT_HANDLE_INVALID, UK_E_KEY_NOT_FOUND, 0)                                            \
    X(CKR_OPERATION_ACTIVE, UK_E_INTERNAL, 0)                                                      \
    X(CKR_OPERATION_NOT_INITIALIZED, UK_E_INTERNAL, 0)                                             \
    X(CKR_PIN_INCORRECT, UK_E_PIN_INCORRECT, 1)                                                    \
    X(CKR_PIN_INVALID, UK_E_PIN_INVALID, 1)                                                        \
    X(CKR_PIN_LEN_RANGE, UK_E_PIN_INVALID, 1)                                                      \
    X(CKR_PIN_EXPIRED, UK_E_AUTH_FAILED, 0)                                                        \
    X(CKR_PIN_LOCKED, UK_E_PIN_LOCKED, 1)                                                          \
    X(CKR_SESSION_CLOSED, UK_E_CARD_RESET, 1)                                                      \
    X(CKR_SESSION_COUNT, UK_E_CARD_BUSY, 0)                                                        \
    X(CKR_SESSION_HANDLE_INVALID, UK_E_CARD_RESET, 1)                                              \
    X(CKR_SESSION_READ_ONLY, UK_E_INTERNAL, 0)                                                     \
    X(CKR_SESSION_READ_ONLY_EXISTS, UK_E_CARD_BUSY, 0)                                             \
    X(CKR_SIGNATURE_INVALID, UK_E_SIGNATURE_INVALID, 0)                                            \
    X(CKR_SIGNATURE_LEN_RANGE, UK_E_SIGNATURE_INVALID, 0)                                          \
    X(CKR_TEMPLATE_INCOMPLETE, UK_E_NOT_SUPPORTED, 0)                                              \
    X(CKR_TEMPLATE_INCONSISTENT, UK_E_NOT_SUPPORTED, 0)                                            \
    X(CKR_TOKEN_NOT_PRESENT, UK_E_CARD_REMOVED, 1)                                                 \
    X(CKR_TOKEN_NOT_RECOGNIZED, UK_E_CARD_ERROR, 0)                                                \
    X(CKR_TOKEN_WRITE_PROTECTED, UK_E_NOT_SUPPORTED, 0)                                            \
    X(CKR_USER_ALREADY_LOGGED_IN, UK_OK, 1)                                                        \
    X(CKR_USER_NOT_LOGGED_IN, UK_E_SECURITY_STATUS, 0)                                             \
    X(CKR_USER_PIN_NOT_INITIALIZED, UK_E_AUTH_FAILED, 0)                                           \
    X(CKR_USER_TYPE_INVALID, UK_E_INTERNAL, 0)                                                     \
    X(CKR_USER_ANOTHER_ALREADY_LOGGED_IN, UK_E_CARD_BUSY, 0)                                       \
    X(CKR_USER_TOO_MANY_TYPES, UK_E_CARD_BUSY, 0)                                                  \
    X(CKR_RANDOM_NO_RNG, UK_E_NOT_SUPPORTED, 0)                                                    \
    X(CKR_BUFFER_TOO_SMALL, UK_E_LIMIT_EXCEEDED, 0)                                                \
    X(CKR_CRYPTOKI_NOT_INITIALIZED, UK_E_MODULE_ERROR, 0)                                          \
    X(CKR_CRYPTOKI_ALREADY_INITIALIZED, UK_E_INTERNAL, 0)

const char *uk__p11_rv_name(CK_RV rv)
{
    switch (rv) {
    case CKR_OK:
        return "CKR_OK";
#define NAME(n, e, x)                                                                              \
    case n:                                                                                        \
        return #n;
        RV_TABLE(NAME)
#undef NAME
    default:
        return rv >= CKR_VENDOR_DEFINED ? "CKR_VENDOR_DEFINED" : "CKR_UNKNOWN";
    }
}

int uk__p11_err_at(CK_RV rv, const char *call, const char *what, const char *file, int line,
                   const char *func)
{
    if (rv == CKR_OK)
        return UK_OK;
    int err = UK_E_CARD_ERROR;
    bool expected = false;
    switch (rv) {
#define MAP(n, e, x)                                                                               \
    case n:                                                                                        \
        err = e;                                                                                   \
        expected = x;                                                                              \
        break;
        RV_TABLE(MAP)
#undef MAP
    default:
        break;
    }
    uk_log_at(expected ? UK_LOG_LEVEL_DEBUG : UK_LOG_LEVEL_WARNING, file, line, func,
              "%s on '%s': %s (0x%lx) -> %s", call, what != NULL ? what : "-", uk__p11_rv_name(rv),
              (unsigned long)rv, err == UK_OK ? "OK" : uk_err_name(err));
    return err;
}
