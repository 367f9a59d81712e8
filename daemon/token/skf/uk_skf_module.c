/*
 * uk_skf_module.c - loading SKF modules (one refcounted instance per path), the SAR -> uk_err
 * translation and the multi-string reader (uk_skf_int.h).
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_skf_abi.h" /* SAR_ codes only (width-free) */
#include "uk_skf_int.h"

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static uk_skf_module *registry;

void uk__skf_lock(uk_skf_module *m)
{
    pthread_mutex_lock(&m->call_mu);
}

uint32_t uk__skf_unlocked(uk_skf_module *m, uint32_t rv)
{
    pthread_mutex_unlock(&m->call_mu);
    return rv;
}

static void module_free(uk_skf_module *m)
{
    pthread_mutex_destroy(&m->call_mu);
    free(m->tab);
    if (m->dl != NULL)
        dlclose(m->dl);
    free(m->path);
    free(m->name);
    free(m);
}

static int module_load(uk_skf_module *m)
{
    m->dl = dlopen(m->path, RTLD_NOW | RTLD_LOCAL);
    if (m->dl == NULL) {
        const char *why = dlerror();
        UK_LOG_ERR("SKF module %s: cannot load %s: %s", m->name, m->path,
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
            UK_LOG_ERR("SKF module %s: %s does not export %s", m->name, m->path, needed[i]);
            return UK_E_MODULE_ERROR;
        }
    }
    return UK_OK;
}

int uk_skf_module_get(const char *path, const char *name, unsigned ulong_bytes, uk_skf_module **out)
{
    *out = NULL;
    if (path == NULL || path[0] != '/' ||
        (ulong_bytes != 0 && ulong_bytes != 4 && ulong_bytes != 8))
        return UK_E_INVALID_PARAMS; /* the config only gives absolute paths and these widths */
    const uk__skf_adapter *a = ulong_bytes == 8 ? &uk__skf_adapter8 : &uk__skf_adapter4;
    const char *shown = name != NULL && name[0] != '\0' ? name : path;
    char real[PATH_MAX];
    if (realpath(path, real) == NULL) {
        UK_LOG_ERR("SKF module %s: cannot load %s: %s", shown, path, strerror(errno));
        return UK_E_MODULE_ERROR;
    }
    pthread_mutex_lock(&registry_mu);
    for (uk_skf_module *m = registry; m != NULL; m = m->next) {
        if (strcmp(m->path, real) == 0) {
            int rc = UK_OK;
            if (m->a != a) {
                UK_LOG_ERR("SKF module %s: %s is already loaded with %u-byte ULONG, not %u", shown,
                           real, m->a->ulong_bytes, a->ulong_bytes);
                rc = UK_E_MODULE_ERROR;
            } else {
                m->refs++;
                *out = m;
            }
            pthread_mutex_unlock(&registry_mu);
            return rc;
        }
    }
    int rc = UK_E_NO_MEMORY;
    uk_skf_module *m = calloc(1, sizeof(*m));
    if (m == NULL)
        goto out;
    m->a = a;
    if (pthread_mutex_init(&m->call_mu, NULL) != 0) {
        free(m);
        m = NULL;
        rc = UK_E_INTERNAL;
        goto out;
    }
    m->path = strdup(real);
    m->name = strdup(shown);
    if (m->path == NULL || m->name == NULL)
        goto out;
    rc = module_load(m);
    if (rc != UK_OK)
        goto out;
    m->refs = 1;
    m->next = registry;
    registry = m;
    UK_LOG_INFO("SKF module %s loaded from %s (%u-byte ULONG)", m->name, m->path,
                m->a->ulong_bytes);
    *out = m;
    m = NULL;
out:
    pthread_mutex_unlock(&registry_mu);
    if (m != NULL)
        module_free(m);
    return rc;
}

void uk__skf_module_ref(uk_skf_module *m)
{
    pthread_mutex_lock(&registry_mu);
    m->refs++;
    pthread_mutex_unlock(&registry_mu);
}

void uk_skf_module_put(uk_skf_module *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&registry_mu);
    if (--m->refs > 0) {
        pthread_mutex_unlock(&registry_mu);
        return;
    }
    for (uk_skf_module **p = &registry; *p != NULL; p = &(*p)->next) {
        if (*p == m) {
            *p = m->next;
            break;
        }
    }
    module_free(m); /* under the lock: a get of the same path waits for the unload */
    pthread_mutex_unlock(&registry_mu);
}

const char *uk_skf_module_name(const uk_skf_module *m)
{
    return m->name;
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
