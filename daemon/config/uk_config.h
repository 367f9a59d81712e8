/*
 * uk_config.h - the daemon's configuration file.
 *
 * One JSON object; every key is optional and has a documented default
 * (docs/configuration.md). Unknown keys are an error, so a typo such as
 * "orgins" cannot silently leave a portal out. Relative paths and "~/" are
 * resolved against $HOME.
 *
 *   origins               array of origins allowed over WSS   []
 *   extension_ids         browser extension IDs allowed over
 *                         native messaging                    []
 *   wss_port              first port to try; 0 disables WSS   28473
 *   wss_fallback_ports    tried in order when wss_port is
 *                         taken                               [28474, 28475, 38473, 38474]
 *   socket                Unix socket path                    <runtime_dir>/ukeyd.sock
 *   state_dir             persistent state (TLS, renewals)    $XDG_STATE_HOME/ukeyd
 *   runtime_dir           runtime files (socket, port file)   $XDG_RUNTIME_DIR/ukeyd
 *   log_level             err|warning|notice|info|debug       info
 *   expiring_days         a certificate is "expiring" when it
 *                         ends within this many days          30
 *   piv_management_key    hex, 3DES (24 bytes) or AES
 *                         (16/24/32): PIV key administration  none
 *   piv_allow_default_management_key
 *                         use the well-known default key      false
 *   limits                {message_size, json_depth,
 *                          pending_per_connection,
 *                          connections,
 *                          requests_per_second_per_origin}    uk_limits.h defaults
 *
 * Ownership: uk_config_load returns a config the caller frees with
 * uk_config_free (NULL-safe); its strings belong to it.
 * Thread: start-up and SIGHUP handling on the loop thread; no locking.
 * Errors: UK_E_CONFIG_INVALID (logged with the key and the reason),
 * UK_E_IO (file unreadable), UK_E_NO_MEMORY.
 */
#ifndef UK_CONFIG_H
#define UK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UK_CONFIG_DEFAULT_WSS_PORT 28473
#define UK_CONFIG_MAX_PORTS        8

typedef struct uk_config_limits {
    size_t message_size;
    size_t json_depth;
    size_t pending_per_connection;
    size_t connections;
    size_t requests_per_second_per_origin;
} uk_config_limits;

typedef struct uk_config {
    char **origins; /* as written; the policy module parses them strictly */
    size_t n_origins;
    char **extension_ids;
    size_t n_extension_ids;
    uint16_t wss_ports[UK_CONFIG_MAX_PORTS]; /* wss_port first, then the fallbacks */
    size_t n_wss_ports;                      /* 0: WSS disabled */
    char *socket_path;
    char *state_dir;
    char *runtime_dir;
    char *path;    /* the file this came from, NULL when defaults only */
    int log_level; /* a uk_log_level */
    unsigned expiring_days;
    uint8_t piv_mgm_key[32];
    size_t piv_mgm_key_len; /* 0: none configured */
    bool piv_allow_default_mgm_key;
    uk_config_limits limits;
} uk_config;

/*
 * Loads path; with path NULL, loads the default path
 * ($XDG_CONFIG_HOME/ukeyd/config.json) and uses defaults when that file does
 * not exist. An explicit path that does not exist is an error.
 */
__attribute__((warn_unused_result)) int uk_config_load(const char *path, uk_config **out);

/* Parses a config from memory (for tests and fuzzing); source names it in logs. */
__attribute__((warn_unused_result)) int uk_config_parse(const char *text, size_t len,
                                                        const char *source, uk_config **out);

void uk_config_free(uk_config *cfg);

/* The default config file path, written into buf; UK_E_CONFIG_INVALID if
 * neither XDG_CONFIG_HOME nor HOME is set or the path does not fit. */
__attribute__((warn_unused_result)) int uk_config_default_path(char *buf, size_t size);

#endif
