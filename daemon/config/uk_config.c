/* The configuration file: strict JSON with documented defaults. */
#include "uk_config.h"

#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Larger files are not configuration; refuse them before reading. */
#define CONFIG_MAX_BYTES (256u * 1024u)

static const uint16_t default_fallback[] = {28474, 28475, 38473, 38474};

void uk_config_free(uk_config *cfg)
{
    if (cfg == NULL)
        return;
    OPENSSL_cleanse(cfg->piv_mgm_key, sizeof(cfg->piv_mgm_key));
    for (size_t i = 0; i < cfg->n_origins; i++)
        free(cfg->origins[i]);
    free(cfg->origins);
    free(cfg->origins_system);
    for (size_t i = 0; i < cfg->n_origin_policies; i++) {
        uk_config_origin_policy *op = &cfg->origin_policies[i];
        free(op->origin);
        for (size_t j = 0; j < op->n_methods; j++)
            free(op->methods[j]);
        free(op->methods);
    }
    free(cfg->origin_policies);
    free(cfg->pinentry);
    for (size_t i = 0; i < cfg->n_extension_ids; i++)
        free(cfg->extension_ids[i]);
    free(cfg->extension_ids);
    free(cfg->socket_path);
    free(cfg->state_dir);
    free(cfg->runtime_dir);
    free(cfg->renewal_ca_bundle);
    for (size_t i = 0; i < cfg->n_pkcs11_modules; i++) {
        free(cfg->pkcs11_modules[i].path);
        free(cfg->pkcs11_modules[i].name);
        free(cfg->pkcs11_modules[i].token_label);
    }
    free(cfg->pkcs11_modules);
    for (size_t i = 0; i < cfg->n_skf_modules; i++) {
        free(cfg->skf_modules[i].path);
        free(cfg->skf_modules[i].name);
    }
    free(cfg->skf_modules);
    free(cfg->path);
    free(cfg->system_path);
    free(cfg);
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s/%s", a, b);
    return s;
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] == '/' ? v : NULL;
}

/* $XDG_<name> or $HOME/<fallback>, then /ukeyd. */
static char *xdg_dir(const char *xdg, const char *home_rel)
{
    const char *base = env_nonempty(xdg);
    if (base != NULL)
        return join(base, "ukeyd");
    const char *home = env_nonempty("HOME");
    if (home == NULL)
        return NULL;
    char *mid = join(home, home_rel);
    char *dir = mid ? join(mid, "ukeyd") : NULL;
    free(mid);
    return dir;
}

int uk_config_default_path(char *buf, size_t size)
{
    char *dir = xdg_dir("XDG_CONFIG_HOME", ".config");
    if (dir == NULL)
        return UK_E_CONFIG_INVALID;
    int n = snprintf(buf, size, "%s/config.json", dir);
    free(dir);
    return n < 0 || (size_t)n >= size ? UK_E_CONFIG_INVALID : UK_OK;
}

/* Resolves "~/x" and relative paths against $HOME; absolute paths stay. */
static int resolve_path(const char *key, const char *value, char **out)
{
    if (value[0] == '\0' || strlen(value) >= PATH_MAX) {
        UK_LOG_ERR("config: \"%s\" must be a non-empty path", key);
        return UK_E_CONFIG_INVALID;
    }
    if (value[0] == '/') {
        *out = strdup(value);
        return *out ? UK_OK : UK_E_NO_MEMORY;
    }
    const char *home = env_nonempty("HOME");
    if (home == NULL) {
        UK_LOG_ERR("config: \"%s\" is relative but HOME is not set", key);
        return UK_E_CONFIG_INVALID;
    }
    const char *rel = strncmp(value, "~/", 2) == 0 ? value + 2 : value;
    *out = join(home, rel);
    return *out ? UK_OK : UK_E_NO_MEMORY;
}

static int set_defaults(uk_config *cfg)
{
    cfg->wss_ports[0] = UK_CONFIG_DEFAULT_WSS_PORT;
    cfg->n_wss_ports = 1;
    for (size_t i = 0; i < sizeof(default_fallback) / sizeof(default_fallback[0]); i++)
        cfg->wss_ports[cfg->n_wss_ports++] = default_fallback[i];
    cfg->log_level = UK_LOG_LEVEL_INFO;
    cfg->expiring_days = 30;
    cfg->pairing = true;
    cfg->prompt_timeout_s = UK_CONFIG_DEFAULT_PROMPT_TIMEOUT_S;
    cfg->audit_max_bytes = UK_CONFIG_DEFAULT_AUDIT_MAX_BYTES;
    cfg->audit_keep = UK_CONFIG_DEFAULT_AUDIT_KEEP;
    cfg->limits = (uk_config_limits){
        .message_size = UK_LIMIT_MESSAGE,
        .json_depth = UK_LIMIT_JSON_DEPTH,
        .pending_per_connection = UK_LIMIT_PENDING_PER_CONNECTION,
        .connections = UK_LIMIT_CONNECTIONS,
        .requests_per_second_per_origin = UK_LIMIT_REQUESTS_PER_SECOND_PER_ORIGIN,
        .pin_attempts_per_minute = UK_LIMIT_PIN_ATTEMPTS_PER_MINUTE,
    };
    return UK_OK;
}

/* Paths that depend on other keys are filled in after parsing. */
static int finish_paths(uk_config *cfg)
{
    if (cfg->state_dir == NULL) {
        cfg->state_dir = xdg_dir("XDG_STATE_HOME", ".local/state");
        if (cfg->state_dir == NULL) {
            UK_LOG_ERR("config: no state_dir, and neither XDG_STATE_HOME nor HOME is set");
            return UK_E_CONFIG_INVALID;
        }
    }
    if (cfg->runtime_dir == NULL) {
        const char *xdg = env_nonempty("XDG_RUNTIME_DIR");
        if (xdg != NULL) {
            cfg->runtime_dir = join(xdg, "ukeyd");
        } else {
            /* Without a per-user runtime dir, keep runtime files with the
             * state: /tmp would invite another local user to squat. */
            cfg->runtime_dir = join(cfg->state_dir, "run");
        }
        if (cfg->runtime_dir == NULL)
            return UK_E_NO_MEMORY;
    }
    if (cfg->socket_path == NULL) {
        cfg->socket_path = join(cfg->runtime_dir, "ukeyd.sock");
        if (cfg->socket_path == NULL)
            return UK_E_NO_MEMORY;
    }
    return UK_OK;
}

/* A repeated key would make the file mean two things; what names the object in the log. */
static bool has_duplicate(const cJSON *obj, const char *what)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        for (const cJSON *prev = obj->child; prev != item; prev = prev->next) {
            if (strcmp(prev->string, item->string) == 0) {
                UK_LOG_ERR("config: key \"%.64s\" appears twice in %s", item->string, what);
                return true;
            }
        }
    }
    return false;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* An array of non-empty strings, each at most max_len bytes (0: no bound). *out is allocated even
 * for an empty array, so "set but empty" stays distinguishable from "absent". */
static int get_string_array(const cJSON *item, const char *key, size_t max_len, char ***out,
                            size_t *n)
{
    if (!cJSON_IsArray(item)) {
        UK_LOG_ERR("config: \"%s\" must be an array of strings", key);
        return UK_E_CONFIG_INVALID;
    }
    size_t count = (size_t)cJSON_GetArraySize(item);
    char **v = calloc(count ? count : 1, sizeof(*v));
    if (v == NULL)
        return UK_E_NO_MEMORY;
    int rc = UK_E_CONFIG_INVALID;
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, item)
    {
        if (!cJSON_IsString(e) || e->valuestring[0] == '\0' ||
            (max_len > 0 && strlen(e->valuestring) > max_len)) {
            if (max_len > 0)
                UK_LOG_ERR("config: \"%s\"[%zu] must be a non-empty string of at most %zu bytes",
                           key, i, max_len);
            else
                UK_LOG_ERR("config: \"%s\"[%zu] must be a non-empty string", key, i);
            goto fail;
        }
        v[i] = strdup(e->valuestring);
        if (v[i] == NULL) {
            rc = UK_E_NO_MEMORY;
            goto fail;
        }
        i++;
    }
    *out = v;
    *n = i;
    return UK_OK;
fail:
    free_strings(v, i);
    return rc;
}

static int get_bool(const cJSON *item, const char *key, bool *out)
{
    if (!cJSON_IsBool(item)) {
        UK_LOG_ERR("config: \"%s\" must be true or false", key);
        return UK_E_CONFIG_INVALID;
    }
    *out = cJSON_IsTrue(item);
    return UK_OK;
}

/* One origin_policies entry: {"methods": [...], "pin_from_page": bool, "consent": "..."}. */
static int parse_origin_policy(const cJSON *item, uk_config_origin_policy *op)
{
    const char *origin = item->string;
    if (origin[0] == '\0') {
        UK_LOG_ERR("config: \"origin_policies\" has an empty origin");
        return UK_E_CONFIG_INVALID;
    }
    if (!cJSON_IsObject(item)) {
        UK_LOG_ERR("config: \"origin_policies\".\"%.280s\" must be an object", origin);
        return UK_E_CONFIG_INVALID;
    }
    if (has_duplicate(item, "an origin_policies entry"))
        return UK_E_CONFIG_INVALID;
    op->consent = UK_CONFIG_CONSENT_REQUEST;
    if ((op->origin = strdup(origin)) == NULL)
        return UK_E_NO_MEMORY;
    const cJSON *m;
    cJSON_ArrayForEach(m, item)
    {
        int rc;
        if (strcmp(m->string, "methods") == 0) {
            rc = get_string_array(m, "origin_policies.*.methods", UK_CONFIG_METHOD_MAX,
                                  &op->methods, &op->n_methods);
            op->methods_set = rc == UK_OK;
        } else if (strcmp(m->string, "pin_from_page") == 0) {
            rc = get_bool(m, "origin_policies.*.pin_from_page", &op->pin_from_page);
        } else if (strcmp(m->string, "consent") == 0) {
            const char *v = cJSON_IsString(m) ? m->valuestring : "";
            op->consent = strcmp(v, "request") == 0   ? UK_CONFIG_CONSENT_REQUEST
                          : strcmp(v, "session") == 0 ? UK_CONFIG_CONSENT_SESSION
                                                      : 0;
            rc = op->consent != 0 ? UK_OK : UK_E_CONFIG_INVALID;
            if (rc != UK_OK)
                UK_LOG_ERR("config: \"origin_policies.*.consent\" must be \"request\" or "
                           "\"session\"");
        } else {
            UK_LOG_ERR("config: unknown key \"origin_policies.*.%.64s\" (for \"%.280s\")",
                       m->string, origin);
            rc = UK_E_CONFIG_INVALID;
        }
        if (rc != UK_OK)
            return rc;
    }
    return UK_OK;
}

static int parse_origin_policies(uk_config *cfg, const cJSON *obj)
{
    if (!cJSON_IsObject(obj)) {
        UK_LOG_ERR("config: \"origin_policies\" must be an object mapping origins to rules");
        return UK_E_CONFIG_INVALID;
    }
    if (has_duplicate(obj, "origin_policies"))
        return UK_E_CONFIG_INVALID;
    size_t count = (size_t)cJSON_GetArraySize(obj);
    cfg->origin_policies = calloc(count ? count : 1, sizeof *cfg->origin_policies);
    if (cfg->origin_policies == NULL)
        return UK_E_NO_MEMORY;
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        /* Counted before parsing so that uk_config_free releases a half-filled entry. */
        uk_config_origin_policy *op = &cfg->origin_policies[cfg->n_origin_policies++];
        int rc = parse_origin_policy(item, op);
        if (rc != UK_OK)
            return rc;
    }
    return UK_OK;
}

const uk_config_origin_policy *uk_config_get0_origin_policy(const uk_config *cfg,
                                                            const char *origin)
{
    if (cfg == NULL || origin == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->n_origin_policies; i++)
        if (strcmp(cfg->origin_policies[i].origin, origin) == 0)
            return &cfg->origin_policies[i];
    return NULL;
}

static int get_uint(const cJSON *item, const char *key, double min, double max, double *out)
{
    if (!cJSON_IsNumber(item) || item->valuedouble < min || item->valuedouble > max ||
        item->valuedouble != (double)(long long)item->valuedouble) {
        UK_LOG_ERR("config: \"%s\" must be a whole number from %.0f to %.0f", key, min, max);
        return UK_E_CONFIG_INVALID;
    }
    *out = item->valuedouble;
    return UK_OK;
}

static int get_port(const cJSON *item, const char *key, bool allow_zero, uint16_t *out)
{
    double v;
    int rc = get_uint(item, key, allow_zero ? 0 : 1, 65535, &v);
    if (rc == UK_OK)
        *out = (uint16_t)v;
    return rc;
}

static int parse_limits(const cJSON *obj, uk_config_limits *lim)
{
    if (!cJSON_IsObject(obj)) {
        UK_LOG_ERR("config: \"limits\" must be an object");
        return UK_E_CONFIG_INVALID;
    }
    if (has_duplicate(obj, "limits"))
        return UK_E_CONFIG_INVALID;
    const struct {
        const char *key;
        size_t *field;
        double min, max;
    } fields[] = {
        {"message_size", &lim->message_size, 1024, 16 * 1024 * 1024},
        {"json_depth", &lim->json_depth, 2, 256},
        {"pending_per_connection", &lim->pending_per_connection, 1, 1024},
        {"connections", &lim->connections, 1, 4096},
        {"requests_per_second_per_origin", &lim->requests_per_second_per_origin, 1, 100000},
        {"pin_attempts_per_minute", &lim->pin_attempts_per_minute, 1, 60},
    };
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        size_t i;
        for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
            if (strcmp(item->string, fields[i].key) == 0)
                break;
        if (i == sizeof(fields) / sizeof(fields[0])) {
            UK_LOG_ERR("config: unknown key \"limits.%s\"", item->string);
            return UK_E_CONFIG_INVALID;
        }
        double v;
        int rc = get_uint(item, fields[i].key, fields[i].min, fields[i].max, &v);
        if (rc != UK_OK)
            return rc;
        *fields[i].field = (size_t)v;
    }
    return UK_OK;
}

/* Hex bytes of a hint ("3B:FB:13", "3bfb13", "3B FB 13"): ':' and ' ' are skipped, the rest
 * must be pairs of hex digits, 2 to UK_LIMIT_ATR_BYTES bytes. */
static int parse_hex_hint(const char *key, const char *member, const char *s, uint8_t *out,
                          size_t *len)
{
    size_t n = 0, digits = 0;
    unsigned byte = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == ':' || *p == ' ')
            continue;
        int v = -1;
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            v = *p - 'A' + 10;
        if (v < 0) {
            UK_LOG_ERR("config: \"%s\" \"%s\" must be hex digits (':' or ' ' between bytes): "
                       "'%c' is not",
                       key, member, (*p >= 0x20 && *p < 0x7f) ? *p : '?');
            return UK_E_CONFIG_INVALID;
        }
        byte = (byte << 4) | (unsigned)v;
        if (++digits % 2 == 0) {
            if (n == UK_LIMIT_ATR_BYTES) {
                UK_LOG_ERR("config: \"%s\" \"%s\" is longer than an ATR (%u bytes)", key, member,
                           UK_LIMIT_ATR_BYTES);
                return UK_E_CONFIG_INVALID;
            }
            out[n++] = (uint8_t)byte;
            byte = 0;
        }
    }
    if (digits % 2 != 0 || n < 2) {
        UK_LOG_ERR("config: \"%s\" \"%s\" must be whole bytes, at least 2 (an ATR has 2 to %u)",
                   key, member, UK_LIMIT_ATR_BYTES);
        return UK_E_CONFIG_INVALID;
    }
    *len = n;
    return UK_OK;
}

/* The hints of a pkcs11_modules entry: "atr", "atr_mask", "token_label" (uk_config.h). */
static int parse_hint(const char *key, const cJSON *f, uk_config_module *m, uint8_t *mask,
                      size_t *mask_len)
{
    if (!cJSON_IsString(f)) {
        UK_LOG_ERR("config: \"%s\" \"%s\" must be a string", key, f->string);
        return UK_E_CONFIG_INVALID;
    }
    if (strcmp(f->string, "atr") == 0)
        return parse_hex_hint(key, "atr", f->valuestring, m->atr, &m->atr_len);
    if (strcmp(f->string, "atr_mask") == 0)
        return parse_hex_hint(key, "atr_mask", f->valuestring, mask, mask_len);
    size_t n = strlen(f->valuestring);
    if (n == 0 || n > UK_LIMIT_TOKEN_LABEL_BYTES || f->valuestring[n - 1] == ' ') {
        UK_LOG_ERR("config: \"%s\" \"token_label\" must have 1 to %u bytes and no trailing blank "
                   "(PKCS#11 pads labels with blanks)",
                   key, UK_LIMIT_TOKEN_LABEL_BYTES);
        return UK_E_CONFIG_INVALID;
    }
    free(m->token_label);
    m->token_label = strdup(f->valuestring);
    return m->token_label != NULL ? UK_OK : UK_E_NO_MEMORY;
}

/*
 * "pkcs11_modules": [{"path": "/abs/module.so", "name": "..."}] and "skf_modules" (the same, with
 * "ulong_bytes": 4 or 8). Paths must be absolute: a bare name would be looked up by dlopen in
 * LD_LIBRARY_PATH, which whoever controls the environment chooses, and a module runs inside
 * ukeyd. key names the array; skf allows "ulong_bytes".
 */
static int parse_modules(const cJSON *arr, const char *key, size_t limit, bool skf,
                         uk_config_module **out, size_t *n_out)
{
    if (!cJSON_IsArray(arr)) {
        UK_LOG_ERR("config: \"%s\" must be an array", key);
        return UK_E_CONFIG_INVALID;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n > limit) {
        UK_LOG_ERR("config: \"%s\" lists %zu modules; at most %zu", key, n, limit);
        return UK_E_CONFIG_INVALID;
    }
    if (n == 0)
        return UK_OK;
    *out = calloc(n, sizeof(**out));
    if (*out == NULL)
        return UK_E_NO_MEMORY;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        uk_config_module *m = &(*out)[*n_out];
        if (!cJSON_IsObject(e)) {
            UK_LOG_ERR("config: \"%s\" entries must be objects", key);
            return UK_E_CONFIG_INVALID;
        }
        const char *path = NULL, *name = "";
        unsigned width = skf ? 4u : 0u;
        uint8_t mask[UK_LIMIT_ATR_BYTES];
        size_t mask_len = 0;
        (*n_out)++; /* from here on, uk_config_free frees what m holds */
        const cJSON *f;
        cJSON_ArrayForEach(f, e)
        {
            if (!skf && (strcmp(f->string, "atr") == 0 || strcmp(f->string, "atr_mask") == 0 ||
                         strcmp(f->string, "token_label") == 0)) {
                int rc = parse_hint(key, f, m, mask, &mask_len);
                if (rc != UK_OK)
                    return rc;
                continue;
            }
            if (skf && strcmp(f->string, "ulong_bytes") == 0) {
                if (!cJSON_IsNumber(f) || (f->valuedouble != 4 && f->valuedouble != 8)) {
                    UK_LOG_ERR("config: \"%s\" \"ulong_bytes\" must be 4 or 8", key);
                    return UK_E_CONFIG_INVALID;
                }
                width = (unsigned)f->valuedouble;
                continue;
            }
            bool is_path = strcmp(f->string, "path") == 0;
            if ((!is_path && strcmp(f->string, "name") != 0) || !cJSON_IsString(f)) {
                UK_LOG_ERR("config: \"%s\" entry member \"%.64s\" is unknown or not a string", key,
                           f->string);
                return UK_E_CONFIG_INVALID;
            }
            if (is_path)
                path = f->valuestring;
            else
                name = f->valuestring;
        }
        if (path == NULL || path[0] != '/' || strlen(path) >= PATH_MAX) {
            UK_LOG_ERR("config: every \"%s\" entry needs an absolute \"path\"", key);
            return UK_E_CONFIG_INVALID;
        }
        if (strlen(name) > 63) {
            UK_LOG_ERR("config: a \"%s\" name has at most 63 bytes", key);
            return UK_E_CONFIG_INVALID;
        }
        if (mask_len > 0 && mask_len != m->atr_len) {
            UK_LOG_ERR("config: a \"%s\" \"atr_mask\" needs an \"atr\" of its length (%zu bytes, "
                       "\"atr\" has %zu)",
                       key, mask_len, m->atr_len);
            return UK_E_CONFIG_INVALID;
        }
        for (size_t i = 0; i < m->atr_len; i++)
            m->atr_mask[i] = mask_len > 0 ? mask[i] : 0xffu;
        for (size_t i = 0; i + 1 < *n_out; i++) {
            if (strcmp((*out)[i].path, path) == 0) {
                UK_LOG_ERR("config: \"%s\" lists %.256s twice", key, path);
                return UK_E_CONFIG_INVALID;
            }
        }
        m->path = strdup(path);
        m->name = strdup(name);
        m->ulong_bytes = width;
        if (m->path == NULL || m->name == NULL)
            return UK_E_NO_MEMORY;
    }
    return UK_OK;
}

/* What parse_key needs besides the config: keys handled after the loop, and which file it reads. */
struct parse_state {
    bool system; /* the system file: "user_origins" is allowed */
    bool port_set;
    const cJSON *fallback;
    bool user_origins;
};

static int parse_key(uk_config *cfg, const cJSON *item, struct parse_state *st)
{
    const char *key = item->string;
    if (strcmp(key, "origins") == 0) {
        int rc = get_string_array(item, key, 0, &cfg->origins, &cfg->n_origins);
        if (rc == UK_OK && cfg->n_origins > 0 &&
            (cfg->origins_system = calloc(cfg->n_origins, sizeof(bool))) == NULL)
            rc = UK_E_NO_MEMORY;
        return rc;
    }
    if (strcmp(key, "extension_ids") == 0)
        return get_string_array(item, key, 0, &cfg->extension_ids, &cfg->n_extension_ids);
    if (strcmp(key, "origin_policies") == 0)
        return parse_origin_policies(cfg, item);
    if (strcmp(key, "pairing") == 0)
        return get_bool(item, key, &cfg->pairing);
    if (strcmp(key, "user_origins") == 0) {
        if (!st->system) {
            UK_LOG_ERR("config: \"user_origins\" is only valid in the system file (%s)",
                       UK_CONFIG_SYSTEM_PATH);
            return UK_E_CONFIG_INVALID;
        }
        return get_bool(item, key, &st->user_origins);
    }
    if (strcmp(key, "pinentry") == 0) {
        if (cJSON_IsNull(item))
            return UK_OK; /* explicit "choose automatically" */
        if (!cJSON_IsString(item) || item->valuestring[0] != '/' ||
            strlen(item->valuestring) >= PATH_MAX) {
            /* An absolute path only: a name looked up in PATH would let whoever controls the
             * environment choose the program that reads the PIN. */
            UK_LOG_ERR("config: \"pinentry\" must be an absolute path or null");
            return UK_E_CONFIG_INVALID;
        }
        cfg->pinentry = strdup(item->valuestring);
        return cfg->pinentry ? UK_OK : UK_E_NO_MEMORY;
    }
    if (strcmp(key, "prompt_timeout") == 0) {
        double v;
        int rc = get_uint(item, key, 5, 600, &v);
        if (rc == UK_OK)
            cfg->prompt_timeout_s = (unsigned)v;
        return rc;
    }
    if (strcmp(key, "audit_max_bytes") == 0) {
        double v;
        int rc = get_uint(item, key, 4096, 1073741824.0, &v);
        if (rc == UK_OK)
            cfg->audit_max_bytes = (size_t)v;
        return rc;
    }
    if (strcmp(key, "audit_keep") == 0) {
        double v;
        int rc = get_uint(item, key, 1, 20, &v);
        if (rc == UK_OK)
            cfg->audit_keep = (unsigned)v;
        return rc;
    }
    if (strcmp(key, "wss_port") == 0) {
        st->port_set = true;
        return get_port(item, key, true, &cfg->wss_ports[0]);
    }
    if (strcmp(key, "wss_fallback_ports") == 0) {
        st->fallback = item;
        return UK_OK;
    }
    if (strcmp(key, "limits") == 0)
        return parse_limits(item, &cfg->limits);
    if (strcmp(key, "pkcs11_modules") == 0)
        return parse_modules(item, key, UK_LIMIT_PKCS11_MODULES, false, &cfg->pkcs11_modules,
                             &cfg->n_pkcs11_modules);
    if (strcmp(key, "skf_modules") == 0)
        return parse_modules(item, key, UK_LIMIT_SKF_MODULES, true, &cfg->skf_modules,
                             &cfg->n_skf_modules);
    if (strcmp(key, "piv_allow_default_management_key") == 0)
        return get_bool(item, key, &cfg->piv_allow_default_mgm_key);
    if (strcmp(key, "piv_management_key") == 0) {
        long n = 0;
        unsigned char *k = cJSON_IsString(item) ? OPENSSL_hexstr2buf(item->valuestring, &n) : NULL;
        bool ok = k != NULL && (n == 16 || n == 24 || n == 32);
        if (ok) {
            memcpy(cfg->piv_mgm_key, k, (size_t)n);
            cfg->piv_mgm_key_len = (size_t)n;
        }
        OPENSSL_clear_free(k, k ? (size_t)n : 0);
        ERR_clear_error();
        /* The key is a secret: the value is never logged. */
        if (!ok) {
            UK_LOG_ERR("config: \"%s\" must be 32, 48 or 64 hex digits", key);
            return UK_E_CONFIG_INVALID;
        }
        return UK_OK;
    }
    if (strcmp(key, "expiring_days") == 0) {
        double v;
        int rc = get_uint(item, key, 1, 365, &v);
        if (rc == UK_OK)
            cfg->expiring_days = (unsigned)v;
        return rc;
    }
    if (strcmp(key, "log_level") == 0) {
        uk_log_level level;
        if (!cJSON_IsString(item) || !uk_log_level_from_name(item->valuestring, &level)) {
            UK_LOG_ERR("config: \"log_level\" must be err, warning, notice, info or debug");
            return UK_E_CONFIG_INVALID;
        }
        cfg->log_level = (int)level;
        return UK_OK;
    }
    char **path = strcmp(key, "socket") == 0              ? &cfg->socket_path
                  : strcmp(key, "state_dir") == 0         ? &cfg->state_dir
                  : strcmp(key, "runtime_dir") == 0       ? &cfg->runtime_dir
                  : strcmp(key, "renewal_ca_bundle") == 0 ? &cfg->renewal_ca_bundle
                                                          : NULL;
    if (path != NULL) {
        if (!cJSON_IsString(item)) {
            UK_LOG_ERR("config: \"%s\" must be a string", key);
            return UK_E_CONFIG_INVALID;
        }
        return resolve_path(key, item->valuestring, path);
    }
    UK_LOG_ERR("config: unknown key \"%s\"", key);
    return UK_E_CONFIG_INVALID;
}

static int parse_ports(uk_config *cfg, bool port_set, const cJSON *fallback)
{
    if (port_set && cfg->wss_ports[0] == 0) {
        cfg->n_wss_ports = 0; /* WSS off */
        return UK_OK;
    }
    if (fallback == NULL)
        return UK_OK;
    if (!cJSON_IsArray(fallback) || cJSON_GetArraySize(fallback) > UK_CONFIG_MAX_PORTS - 1) {
        UK_LOG_ERR("config: \"wss_fallback_ports\" must be an array of at most %d ports",
                   UK_CONFIG_MAX_PORTS - 1);
        return UK_E_CONFIG_INVALID;
    }
    cfg->n_wss_ports = 1;
    const cJSON *e;
    cJSON_ArrayForEach(e, fallback)
    {
        int rc = get_port(e, "wss_fallback_ports", false, &cfg->wss_ports[cfg->n_wss_ports]);
        if (rc != UK_OK)
            return rc;
        cfg->n_wss_ports++;
    }
    return UK_OK;
}

/* Parses text as one JSON object followed by nothing but whitespace. */
static int parse_root(const char *text, size_t len, const char *source, cJSON **out)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root == NULL || !cJSON_IsObject(root)) {
        UK_LOG_ERR("config: %s is not a JSON object", source ? source : "(memory)");
        cJSON_Delete(root);
        return UK_E_CONFIG_INVALID;
    }
    while (end != NULL && end < text + len && strchr(" \t\r\n", *end) != NULL && *end != '\0')
        end++;
    if (end == NULL || end != text + len) {
        UK_LOG_ERR("config: %s has text after the JSON object", source ? source : "(memory)");
        cJSON_Delete(root);
        return UK_E_CONFIG_INVALID;
    }
    if (has_duplicate(root, source ? source : "(memory)")) {
        cJSON_Delete(root);
        return UK_E_CONFIG_INVALID;
    }
    *out = root;
    return UK_OK;
}

/* A config from root (NULL: defaults only). system: root is the system file ("user_origins" is
 * allowed; its value goes to *user_origins when that is not NULL). */
static int build(const cJSON *root, const char *source, bool system, bool *user_origins,
                 uk_config **out)
{
    uk_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return UK_E_NO_MEMORY;
    int rc = set_defaults(cfg);
    struct parse_state st = {.system = system, .user_origins = true};
    if (root != NULL) {
        const cJSON *item;
        cJSON_ArrayForEach(item, root)
        {
            if ((rc = parse_key(cfg, item, &st)) != UK_OK)
                goto out;
        }
        if ((rc = parse_ports(cfg, st.port_set, st.fallback)) != UK_OK)
            goto out;
    }
    rc = finish_paths(cfg);
    if (rc == UK_OK && source != NULL && (cfg->path = strdup(source)) == NULL)
        rc = UK_E_NO_MEMORY;
out:
    if (rc != UK_OK) {
        uk_config_free(cfg);
        return rc;
    }
    if (user_origins != NULL)
        *user_origins = st.user_origins;
    *out = cfg;
    return UK_OK;
}

int uk_config_parse(const char *text, size_t len, const char *source, uk_config **out)
{
    cJSON *root = NULL;
    if (len > 0) {
        int rc = parse_root(text, len, source, &root);
        if (rc != UK_OK)
            return rc;
    }
    int rc = build(root, source, false, NULL, out);
    cJSON_Delete(root);
    return rc;
}

/* The system file speaks for the administrator: only root (or the account running us, for tests
 * and unprivileged installs) may own it, and nobody else may be able to change it. */
static int check_system_file(const char *path, const struct stat *st)
{
    if (!S_ISREG(st->st_mode)) {
        UK_LOG_ERR("config: system config %s is not a regular file; refused", path);
        return UK_E_CONFIG_INVALID;
    }
    if (st->st_uid != 0 && st->st_uid != geteuid()) {
        UK_LOG_ERR("config: system config %s is owned by uid %u, not root; refused (chown root "
                   "%s)",
                   path, (unsigned)st->st_uid, path);
        return UK_E_CONFIG_INVALID;
    }
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        UK_LOG_ERR("config: system config %s is writable by group or others (mode %03o); refused "
                   "(chmod go-w %s)",
                   path, (unsigned)(st->st_mode & 0777), path);
        return UK_E_CONFIG_INVALID;
    }
    return UK_OK;
}

/*
 * Reads and parses one file. A missing file gives *root NULL and UK_OK when missing_ok; otherwise
 * UK_E_IO. system: the ownership and mode rules above apply.
 */
static int load_root(const char *path, bool system, bool missing_ok, cJSON **root)
{
    *root = NULL;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT && missing_ok)
            return UK_OK;
        UK_LOG_ERR("config: cannot open %s: %s", path, strerror(errno));
        return UK_E_IO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        UK_LOG_ERR("config: cannot stat %s: %s", path, strerror(errno));
        fclose(f);
        return UK_E_IO;
    }
    if (system) {
        int rc = check_system_file(path, &st);
        if (rc != UK_OK) {
            fclose(f);
            return rc;
        }
    }
    char *buf = malloc(CONFIG_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, CONFIG_MAX_BYTES + 1, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (buf == NULL)
        return UK_E_NO_MEMORY;
    int rc;
    if (err) {
        UK_LOG_ERR("config: cannot read %s", path);
        rc = UK_E_IO;
    } else if (n > CONFIG_MAX_BYTES) {
        UK_LOG_ERR("config: %s is larger than %u bytes", path, CONFIG_MAX_BYTES);
        rc = UK_E_CONFIG_INVALID;
    } else if (n == 0) {
        UK_LOG_ERR("config: %s is empty", path);
        rc = UK_E_CONFIG_INVALID;
    } else {
        rc = parse_root(buf, n, path, root);
    }
    free(buf);
    return rc;
}

/* The user's file: path, or the default path, where a missing file means defaults. */
static int load_user_root(const char *path, char *defpath, size_t size, cJSON **root,
                          const char **used)
{
    bool explicit_path = path != NULL;
    if (!explicit_path) {
        int rc = uk_config_default_path(defpath, size);
        if (rc != UK_OK)
            return rc;
        path = defpath;
    }
    int rc = load_root(path, false, !explicit_path, root);
    *used = rc == UK_OK && *root != NULL ? path : NULL;
    return rc;
}

int uk_config_load(const char *path, uk_config **out)
{
    char defpath[PATH_MAX];
    cJSON *root = NULL;
    const char *used = NULL;
    int rc = load_user_root(path, defpath, sizeof defpath, &root, &used);
    if (rc == UK_OK)
        rc = build(root, used, false, NULL, out);
    cJSON_Delete(root);
    return rc;
}

/* cJSON_HasObjectItem ignores case; keys here are exact. */
static bool has_key(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key) != NULL;
}

static bool array_has_string(const cJSON *arr, const char *s)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (cJSON_IsString(e) && strcmp(e->valuestring, s) == 0)
            return true;
    }
    return false;
}

/* Whether the system file names origin in "origins" or "origin_policies". */
static bool system_lists(const cJSON *sys, const char *origin)
{
    return array_has_string(cJSON_GetObjectItemCaseSensitive(sys, "origins"), origin) ||
           cJSON_GetObjectItemCaseSensitive(
               cJSON_GetObjectItemCaseSensitive(sys, "origin_policies"), origin) != NULL;
}

/* Puts item (consumed) as m[key], replacing what was there. */
static bool put(cJSON *m, const char *key, cJSON *item)
{
    if (item == NULL)
        return false;
    cJSON_DeleteItemFromObjectCaseSensitive(m, key);
    if (!cJSON_AddItemToObject(m, key, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

/* The merged object (see uk_config_load_layered); both inputs are already validated. NULL: out of
 * memory. */
static cJSON *merge(const cJSON *sys, const cJSON *user, bool user_origins, const char *sys_path)
{
    cJSON *m = user != NULL ? cJSON_Duplicate(user, true) : cJSON_CreateObject();
    if (m == NULL)
        return NULL;
    if (!user_origins) {
        if (has_key(m, "origins") || has_key(m, "origin_policies"))
            UK_LOG_NOTICE("config: %s sets \"user_origins\": false; the user's origins and "
                          "origin_policies are ignored",
                          sys_path);
        cJSON_DeleteItemFromObjectCaseSensitive(m, "origins");
        cJSON_DeleteItemFromObjectCaseSensitive(m, "origin_policies");
    }
    /* The system file alone governs an origin it names, so the user cannot loosen its rules, not
     * even where the administrator left the defaults. */
    cJSON *upol = cJSON_GetObjectItemCaseSensitive(m, "origin_policies");
    for (cJSON *e = upol ? upol->child : NULL, *next; e != NULL; e = next) {
        next = e->next;
        if (system_lists(sys, e->string)) {
            UK_LOG_WARN("config: origin_policies entry for \"%.280s\" ignored: %s governs that "
                        "origin",
                        e->string, sys_path);
            cJSON_Delete(cJSON_DetachItemViaPointer(upol, e));
        }
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, sys)
    {
        const char *key = item->string;
        cJSON *mine = cJSON_GetObjectItemCaseSensitive(m, key);
        if (strcmp(key, "user_origins") == 0)
            continue; /* consumed above */
        if ((strcmp(key, "origins") == 0 || strcmp(key, "origin_policies") == 0 ||
             strcmp(key, "limits") == 0) &&
            mine != NULL) {
            /* Union, system first: the user's entries follow unless the system has them. */
            cJSON *u = cJSON_Duplicate(item, true);
            if (u == NULL)
                goto oom;
            const cJSON *e;
            cJSON_ArrayForEach(e, mine)
            {
                bool dup =
                    cJSON_IsArray(u) ? array_has_string(u, e->valuestring) : has_key(u, e->string);
                if (dup)
                    continue;
                cJSON *c = cJSON_Duplicate(e, true);
                if (c == NULL) {
                    cJSON_Delete(u);
                    goto oom;
                }
                if (cJSON_IsArray(u))
                    cJSON_AddItemToArray(u, c);
                else
                    cJSON_AddItemToObject(u, e->string, c);
            }
            if (!put(m, key, u))
                goto oom;
            continue;
        }
        if (!put(m, key, cJSON_Duplicate(item, true)))
            goto oom;
    }
    return m;
oom:
    cJSON_Delete(m);
    return NULL;
}

int uk_config_load_layered(const char *system_path, const char *user_path, uk_config **out)
{
    char defpath[PATH_MAX];
    cJSON *sys = NULL, *user = NULL, *merged = NULL;
    uk_config *check = NULL, *cfg = NULL;
    const char *used = NULL;
    bool user_origins = true;
    if (out == NULL)
        return UK_E_INTERNAL;
    if (system_path == NULL)
        system_path = UK_CONFIG_SYSTEM_PATH;
    int rc = load_root(system_path, true, true, &sys);
    if (rc != UK_OK)
        goto out;
    if (sys == NULL) {
        rc = uk_config_load(user_path, out);
        goto out;
    }
    /* Each file is checked on its own first, so a mistake is reported against its file. */
    if ((rc = build(sys, system_path, true, &user_origins, &check)) != UK_OK)
        goto out;
    uk_config_free(check);
    check = NULL;
    if ((rc = load_user_root(user_path, defpath, sizeof defpath, &user, &used)) != UK_OK)
        goto out;
    if (user != NULL) {
        if ((rc = build(user, used, false, NULL, &check)) != UK_OK)
            goto out;
        uk_config_free(check);
        check = NULL;
    }
    if ((merged = merge(sys, user, user_origins, system_path)) == NULL) {
        rc = UK_E_NO_MEMORY;
        goto out;
    }
    if ((rc = build(merged, used, false, NULL, &cfg)) != UK_OK)
        goto out;
    if ((cfg->system_path = strdup(system_path)) == NULL) {
        rc = UK_E_NO_MEMORY;
        goto out;
    }
    const cJSON *sys_origins = cJSON_GetObjectItemCaseSensitive(sys, "origins");
    const cJSON *sys_pol = cJSON_GetObjectItemCaseSensitive(sys, "origin_policies");
    for (size_t i = 0; i < cfg->n_origins; i++)
        cfg->origins_system[i] = array_has_string(sys_origins, cfg->origins[i]);
    for (size_t i = 0; i < cfg->n_origin_policies; i++)
        cfg->origin_policies[i].from_system =
            cJSON_GetObjectItemCaseSensitive(sys_pol, cfg->origin_policies[i].origin) != NULL;
    cfg->extension_ids_system = has_key(sys, "extension_ids");
    *out = cfg;
    cfg = NULL;
out:
    uk_config_free(cfg);
    cJSON_Delete(merged);
    cJSON_Delete(user);
    cJSON_Delete(sys);
    return rc;
}
