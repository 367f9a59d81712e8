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
    for (size_t i = 0; i < cfg->n_extension_ids; i++)
        free(cfg->extension_ids[i]);
    free(cfg->extension_ids);
    free(cfg->socket_path);
    free(cfg->state_dir);
    free(cfg->runtime_dir);
    free(cfg->path);
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
    cfg->limits = (uk_config_limits){
        .message_size = UK_LIMIT_MESSAGE,
        .json_depth = UK_LIMIT_JSON_DEPTH,
        .pending_per_connection = UK_LIMIT_PENDING_PER_CONNECTION,
        .connections = UK_LIMIT_CONNECTIONS,
        .requests_per_second_per_origin = UK_LIMIT_REQUESTS_PER_SECOND_PER_ORIGIN,
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

static int get_string_array(const cJSON *item, const char *key, char ***out, size_t *n)
{
    if (!cJSON_IsArray(item)) {
        UK_LOG_ERR("config: \"%s\" must be an array of strings", key);
        return UK_E_CONFIG_INVALID;
    }
    size_t count = (size_t)cJSON_GetArraySize(item);
    char **v = calloc(count ? count : 1, sizeof(*v));
    if (v == NULL)
        return UK_E_NO_MEMORY;
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, item)
    {
        if (!cJSON_IsString(e) || e->valuestring[0] == '\0') {
            UK_LOG_ERR("config: \"%s\"[%zu] must be a non-empty string", key, i);
            goto fail;
        }
        v[i] = strdup(e->valuestring);
        if (v[i] == NULL)
            goto fail;
        i++;
    }
    *out = v;
    *n = i;
    return UK_OK;
fail:
    for (size_t j = 0; j < i; j++)
        free(v[j]);
    free(v);
    return UK_E_CONFIG_INVALID;
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

static int parse_key(uk_config *cfg, const cJSON *item, bool *port_set, const cJSON **fallback)
{
    const char *key = item->string;
    if (strcmp(key, "origins") == 0)
        return get_string_array(item, key, &cfg->origins, &cfg->n_origins);
    if (strcmp(key, "extension_ids") == 0)
        return get_string_array(item, key, &cfg->extension_ids, &cfg->n_extension_ids);
    if (strcmp(key, "wss_port") == 0) {
        *port_set = true;
        return get_port(item, key, true, &cfg->wss_ports[0]);
    }
    if (strcmp(key, "wss_fallback_ports") == 0) {
        *fallback = item;
        return UK_OK;
    }
    if (strcmp(key, "limits") == 0)
        return parse_limits(item, &cfg->limits);
    if (strcmp(key, "piv_allow_default_management_key") == 0) {
        if (!cJSON_IsBool(item)) {
            UK_LOG_ERR("config: \"%s\" must be true or false", key);
            return UK_E_CONFIG_INVALID;
        }
        cfg->piv_allow_default_mgm_key = cJSON_IsTrue(item);
        return UK_OK;
    }
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
    char **path = strcmp(key, "socket") == 0        ? &cfg->socket_path
                  : strcmp(key, "state_dir") == 0   ? &cfg->state_dir
                  : strcmp(key, "runtime_dir") == 0 ? &cfg->runtime_dir
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

int uk_config_parse(const char *text, size_t len, const char *source, uk_config **out)
{
    uk_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return UK_E_NO_MEMORY;
    int rc = set_defaults(cfg);
    cJSON *root = NULL;
    if (len > 0) {
        const char *end = NULL;
        root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
        if (root == NULL || !cJSON_IsObject(root)) {
            UK_LOG_ERR("config: %s is not a JSON object", source ? source : "(memory)");
            rc = UK_E_CONFIG_INVALID;
            goto out;
        }
        /* Only whitespace may follow the object. */
        while (end != NULL && end < text + len && strchr(" \t\r\n", *end) != NULL && *end != '\0')
            end++;
        if (end == NULL || end != text + len) {
            UK_LOG_ERR("config: %s has text after the JSON object", source ? source : "(memory)");
            rc = UK_E_CONFIG_INVALID;
            goto out;
        }
        bool port_set = false;
        const cJSON *fallback = NULL, *item;
        cJSON_ArrayForEach(item, root)
        {
            /* A repeated key would make the file mean two things. */
            for (const cJSON *prev = root->child; prev != item; prev = prev->next) {
                if (strcmp(prev->string, item->string) == 0) {
                    UK_LOG_ERR("config: key \"%s\" appears twice", item->string);
                    rc = UK_E_CONFIG_INVALID;
                    goto out;
                }
            }
            if ((rc = parse_key(cfg, item, &port_set, &fallback)) != UK_OK)
                goto out;
        }
        if ((rc = parse_ports(cfg, port_set, fallback)) != UK_OK)
            goto out;
    }
    rc = finish_paths(cfg);
    if (rc == UK_OK && source != NULL && (cfg->path = strdup(source)) == NULL)
        rc = UK_E_NO_MEMORY;
out:
    cJSON_Delete(root);
    if (rc != UK_OK) {
        uk_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return UK_OK;
}

int uk_config_load(const char *path, uk_config **out)
{
    char defpath[PATH_MAX];
    bool explicit_path = path != NULL;
    if (!explicit_path) {
        int rc = uk_config_default_path(defpath, sizeof(defpath));
        if (rc != UK_OK)
            return rc;
        path = defpath;
    }
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT && !explicit_path)
            return uk_config_parse("", 0, NULL, out);
        UK_LOG_ERR("config: cannot open %s: %s", path, strerror(errno));
        return UK_E_IO;
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
        rc = uk_config_parse(buf, n, path, out);
    }
    free(buf);
    return rc;
}
