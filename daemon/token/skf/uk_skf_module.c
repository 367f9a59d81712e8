/*
 * uk_skf_module.c - loading SKF modules (one refcounted instance per path), the SAR -> uk_err
 * translation and the multi-string reader (uk_skf_int.h).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_skf_abi.h" /* SAR_ codes only (width-free) */
#include "uk_skf_int.h"

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static uk_source_module *registry;

void uk__skf_lock(uk_skf_module *m)
{
    pthread_mutex_lock(&m->call_mu);
}

uint32_t uk__skf_unlocked(uk_skf_module *m, uint32_t rv)
{
    pthread_mutex_unlock(&m->call_mu);
    return rv;
}

static void module_unload(uk_source_module *base)
{
    uk_skf_module *m = (uk_skf_module *)base;
    pthread_mutex_destroy(&m->call_mu);
    free(m->tab);
    if (m->dl != NULL)
        dlclose(m->dl);
    free(m);
}

static int module_load(uk_skf_module *m)
{
    m->dl = dlopen(m->base.path, RTLD_NOW | RTLD_LOCAL);
    if (m->dl == NULL) {
        const char *why = dlerror();
        UK_LOG_ERR("SKF module %s: cannot load %s: %s", m->base.name, m->base.path,
                   why != NULL ? why : "dlopen failed");
        return UK_E_MODULE_ERROR;
    }
    m->tab = m->a->table_new(m->dl);
    if (m->tab == NULL)
        return UK_E_NO_MEMORY;
    /* Without these nothing works: not an SKF module (or the wrong file). */
    static const char *const needed[] = {"SKF_EnumDev", "SKF_ConnectDev", "SKF_OpenApplication"};
    for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
        if (!m->a->has(m->tab, needed[i])) {
            UK_LOG_ERR("SKF module %s: %s does not export %s", m->base.name, m->base.path,
                       needed[i]);
            return UK_E_MODULE_ERROR;
        }
    }
    return UK_OK;
}

static uk_source_module *module_alloc(const void *arg)
{
    uk_skf_module *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->a = arg;
    if (pthread_mutex_init(&m->call_mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    return &m->base;
}

/* One file is one module: loaded with one ULONG width, it cannot serve the other. */
static int module_share(const uk_source_module *base, const void *arg, const char *shown)
{
    const uk_skf_module *m = (const uk_skf_module *)base;
    const uk__skf_adapter *a = arg;
    if (m->a == a)
        return UK_OK;
    UK_LOG_ERR("SKF module %s: %s is already loaded with %u-byte ULONG, not %u", shown, base->path,
               m->a->ulong_bytes, a->ulong_bytes);
    return UK_E_MODULE_ERROR;
}

static int module_load_base(uk_source_module *base)
{
    return module_load((uk_skf_module *)base);
}

static const char *module_note(const uk_source_module *base)
{
    return ((const uk_skf_module *)base)->a->ulong_bytes == 8 ? " (8-byte ULONG)"
                                                              : " (4-byte ULONG)";
}

static const uk_source_module_kind skf_kind = {
    .what = "SKF",
    .mu = &registry_mu,
    .list = &registry,
    .alloc = module_alloc,
    .share = module_share,
    .load = module_load_base,
    .note = module_note,
    .unload = module_unload,
};

int uk_skf_module_get(const char *path, const char *name, unsigned ulong_bytes, uk_skf_module **out)
{
    *out = NULL;
    if (ulong_bytes != 0 && ulong_bytes != 4 && ulong_bytes != 8)
        return UK_E_INVALID_PARAMS; /* the config only gives these widths */
    const uk__skf_adapter *a = ulong_bytes == 8 ? &uk__skf_adapter8 : &uk__skf_adapter4;
    uk_source_module *m = NULL;
    int rc = uk_source_module_get(&skf_kind, path, name, a, &m);
    *out = (uk_skf_module *)m;
    return rc;
}

void uk__skf_module_ref(uk_skf_module *m)
{
    uk_source_module_ref(&skf_kind, &m->base);
}

void uk_skf_module_put(uk_skf_module *m)
{
    uk_source_module_put(&skf_kind, m != NULL ? &m->base : NULL);
}

const char *uk_skf_module_name(const uk_skf_module *m)
{
    return m->base.name;
}

const char *uk__skf_next_name(const char *list, size_t len, size_t *pos)
{
    if (list == NULL || *pos >= len || list[*pos] == '\0')
        return NULL;
    const char *name = list + *pos;
    const char *end = memchr(name, '\0', len - *pos);
    if (end == NULL)
        return NULL; /* not terminated inside the buffer: the list ends here */
    *pos = (size_t)(end - list) + 1;
    return name;
}

/* ---- errors ------------------------------------------------------------------- */

/* SAR name, uk_err, expected (logged at debug). GM/T 0016-2012 appendix A.2; codes it does not
 * define are CARD_ERROR (vendors give them contradicting meanings). */
#define SAR_TABLE(X)                                                                               \
    X(SAR_FAIL, UK_E_CARD_ERROR, 0)                                                                \
    X(SAR_UNKNOWNERR, UK_E_CARD_ERROR, 0)                                                          \
    X(SAR_NOTSUPPORTYETERR, UK_E_NOT_SUPPORTED, 1)                                                 \
    X(SAR_FILEERR, UK_E_CARD_ERROR, 0)                                                             \
    X(SAR_INVALIDHANDLEERR, UK_E_CARD_RESET, 1)                                                    \
    X(SAR_INVALIDPARAMERR, UK_E_INTERNAL, 0)                                                       \
    X(SAR_READFILEERR, UK_E_CARD_ERROR, 0)                                                         \
    X(SAR_WRITEFILEERR, UK_E_CARD_ERROR, 0)                                                        \
    X(SAR_NAMELENERR, UK_E_INVALID_PARAMS, 0)                                                      \
    X(SAR_KEYUSAGEERR, UK_E_NOT_SUPPORTED, 0)                                                      \
    X(SAR_MODULUSLENERR, UK_E_NOT_SUPPORTED, 0)                                                    \
    X(SAR_NOTINITIALIZEERR, UK_E_MODULE_ERROR, 0)                                                  \
    X(SAR_OBJERR, UK_E_CARD_ERROR, 0)                                                              \
    X(SAR_MEMORYERR, UK_E_LIMIT_EXCEEDED, 0)                                                       \
    X(SAR_TIMEOUTERR, UK_E_TIMEOUT, 0)                                                             \
    X(SAR_INDATALENERR, UK_E_INVALID_PARAMS, 0)                                                    \
    X(SAR_INDATAERR, UK_E_INVALID_PARAMS, 0)                                                       \
    X(SAR_GENRANDERR, UK_E_CARD_ERROR, 0)                                                          \
    X(SAR_HASHOBJERR, UK_E_CARD_ERROR, 0)                                                          \
    X(SAR_HASHERR, UK_E_CARD_ERROR, 0)                                                             \
    X(SAR_GENRSAKEYERR, UK_E_CARD_ERROR, 0)                                                        \
    X(SAR_RSAMODULUSLENERR, UK_E_NOT_SUPPORTED, 0)                                                 \
    X(SAR_CSPIMPRTPUBKEYERR, UK_E_CARD_ERROR, 0)                                                   \
    X(SAR_RSAENCERR, UK_E_CARD_ERROR, 0)                                                           \
    X(SAR_RSADECERR, UK_E_CARD_ERROR, 0)                                                           \
    X(SAR_HASHNOTEQUALERR, UK_E_CARD_ERROR, 0)                                                     \
    X(SAR_KEYNOTFOUNTERR, UK_E_KEY_NOT_FOUND, 1)                                                   \
    X(SAR_CERTNOTFOUNTERR, UK_E_CERT_NOT_FOUND, 1)                                                 \
    X(SAR_NOTEXPORTERR, UK_E_NOT_SUPPORTED, 0)                                                     \
    X(SAR_DECRYPTPADERR, UK_E_DECRYPT_FAILED, 0)                                                   \
    X(SAR_MACLENERR, UK_E_CARD_ERROR, 0)                                                           \
    X(SAR_BUFFER_TOO_SMALL, UK_E_LIMIT_EXCEEDED, 0)                                                \
    X(SAR_KEYINFOTYPEERR, UK_E_NOT_SUPPORTED, 0)                                                   \
    X(SAR_NOT_EVENTERR, UK_E_NOT_FOUND, 1)                                                         \
    X(SAR_DEVICE_REMOVED, UK_E_CARD_REMOVED, 1)                                                    \
    X(SAR_PIN_INCORRECT, UK_E_PIN_INCORRECT, 1)                                                    \
    X(SAR_PIN_LOCKED, UK_E_PIN_LOCKED, 1)                                                          \
    X(SAR_PIN_INVALID, UK_E_PIN_INVALID, 1)                                                        \
    X(SAR_PIN_LEN_RANGE, UK_E_PIN_INVALID, 1)                                                      \
    X(SAR_USER_ALREADY_LOGGED_IN, UK_OK, 1)                                                        \
    X(SAR_USER_PIN_NOT_INITIALIZED, UK_E_AUTH_FAILED, 0)                                           \
    X(SAR_USER_TYPE_INVALID, UK_E_INTERNAL, 0)                                                     \
    X(SAR_APPLICATION_NAME_INVALID, UK_E_CARD_ERROR, 0)                                            \
    X(SAR_APPLICATION_EXISTS, UK_E_CARD_ERROR, 0)                                                  \
    X(SAR_USER_NOT_LOGGED_IN, UK_E_SECURITY_STATUS, 1)                                             \
    X(SAR_APPLICATION_NOT_EXISTS, UK_E_CARD_ERROR, 0)                                              \
    X(SAR_FILE_ALREADY_EXIST, UK_E_CARD_ERROR, 0)                                                  \
    X(SAR_NO_ROOM, UK_E_LIMIT_EXCEEDED, 0)                                                         \
    X(SAR_FILE_NOT_EXIST, UK_E_KEY_NOT_FOUND, 1)                                                   \
    X(SAR_REACH_MAX_CONTAINER_COUNT, UK_E_LIMIT_EXCEEDED, 0)                                       \
    X(UK__SKF_GARBAGE, UK_E_MODULE_ERROR, 0)                                                       \
    X(UK__SKF_NOMEM, UK_E_NO_MEMORY, 0)

const char *uk__skf_sar_name(uint32_t sar)
{
    switch (sar) {
    case SAR_OK:
        return "SAR_OK";
#define NAME(n, e, x)                                                                              \
    case n:                                                                                        \
        return #n;
        SAR_TABLE(NAME)
#undef NAME
    default:
        return "SAR_UNKNOWN";
    }
}

int uk__skf_err_at(uint32_t sar, const char *call, const char *what, const char *file, int line,
                   const char *func)
{
    if (sar == SAR_OK)
        return UK_OK;
    int err = UK_E_CARD_ERROR;
    bool expected = false;
    switch (sar) {
#define MAP(n, e, x)                                                                               \
    case n:                                                                                        \
        err = e;                                                                                   \
        expected = x;                                                                              \
        break;
        SAR_TABLE(MAP)
#undef MAP
    default:
        break;
    }
    uk_log_at(expected ? UK_LOG_LEVEL_DEBUG : UK_LOG_LEVEL_WARNING, file, line, func,
              "%s on '%s': %s (0x%08lx) -> %s", call, what != NULL ? what : "-",
              uk__skf_sar_name(sar), (unsigned long)sar, err == UK_OK ? "OK" : uk_err_name(err));
    return err;
}
