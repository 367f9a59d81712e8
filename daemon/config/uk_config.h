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
 *                          requests_per_second_per_origin,
 *                          pin_attempts_per_minute}           uk_limits.h defaults
 *   origin_policies       {origin: {methods, pin_from_page,
 *                          consent}} per-origin rules         {} (see below)
 *   pairing               origins not in "origins" may ask
 *                         the user to approve them            true
 *   pinentry              absolute path of the pinentry
 *                         program; null: chosen at run time   null
 *   prompt_timeout        seconds a prompt waits (5-600)      120
 *   audit_max_bytes       audit.log rotation size
 *                         (4096-1073741824)                   1048576
 *   audit_keep            rotated audit files kept (1-20)     5
 *   user_origins          system file only: false ignores the
 *                         user's origins and origin_policies  true
 *   pkcs11_modules        [{"path": absolute path of a PKCS#11
 *                         module, "name": shown in reader
 *                         names and logs (optional), hints
 *                         (optional): "atr" (hex, 2-33 bytes),
 *                         "atr_mask" (hex, as long as "atr"),
 *                         "token_label" (1-32 bytes)}], at most
 *                         UK_LIMIT_PKCS11_MODULES, no path
 *                         twice                               []
 *   skf_modules           [{"path": absolute path of a GM/T
 *                         0016 SKF module, "name" (optional),
 *                         "ulong_bytes": 4 or 8, the module's
 *                         ULONG width (optional, 4)}], at most
 *                         UK_LIMIT_SKF_MODULES, no path twice []
 *
 * origin_policies entry: "methods" (array of method names, at most
 * UK_CONFIG_METHOD_MAX bytes each; absent: every method the daemon offers to
 * web origins - the daemon checks the names against its method table),
 * "pin_from_page" (bool, false) and "consent" ("request" | "session",
 * "request"). Unknown members are errors.
 *
 * Layering (uk_config_load_layered): the administrator's system file
 * (UK_CONFIG_SYSTEM_PATH) is merged with the user's file and wins; see the
 * function. The system file must be owned by root (or by the current euid,
 * so tests and unprivileged installs can use one) and must not be writable by
 * group or others: a file another user can edit cannot speak for the
 * administrator.
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

#include "uk_limits.h"

#define UK_CONFIG_DEFAULT_WSS_PORT 28473
#define UK_CONFIG_MAX_PORTS        8
#define UK_CONFIG_SYSTEM_PATH      "/etc/ukeyd/config.json"
/* Longest method name accepted in origin_policies[*].methods, in bytes. */
#define UK_CONFIG_METHOD_MAX 64u

#define UK_CONFIG_DEFAULT_PROMPT_TIMEOUT_S 120u
#define UK_CONFIG_DEFAULT_AUDIT_MAX_BYTES  (1024u * 1024u)
#define UK_CONFIG_DEFAULT_AUDIT_KEEP       5u

/* Values of uk_config_origin_policy.consent; equal to uk_policy.h's uk_consent_mode. */
#define UK_CONFIG_CONSENT_REQUEST 1
#define UK_CONFIG_CONSENT_SESSION 2

typedef struct uk_config_limits {
    size_t message_size;
    size_t json_depth;
    size_t pending_per_connection;
    size_t connections;
    size_t requests_per_second_per_origin;
    size_t pin_attempts_per_minute; /* per key; enforced by the rpc layer */
} uk_config_limits;

/* One origin_policies entry. */
typedef struct uk_config_origin_policy {
    char *origin;   /* as written; the policy module parses it strictly */
    char **methods; /* methods_set: the allowed names (n_methods may be 0: none) */
    size_t n_methods;
    bool methods_set; /* false: "methods" absent, methods NULL - every web method */
    bool pin_from_page;
    int consent;      /* UK_CONFIG_CONSENT_REQUEST or UK_CONFIG_CONSENT_SESSION */
    bool from_system; /* the entry came from the system file */
} uk_config_origin_policy;

/* One pkcs11_modules or skf_modules entry. */
typedef struct uk_config_module {
    char *path;           /* absolute */
    char *name;           /* "" when not given */
    unsigned ulong_bytes; /* skf_modules: 4 (default) or 8; pkcs11_modules: 0 */
    /* pkcs11_modules hints (docs/configuration.md): the module serves only tokens that match
     * them, and takes such a card over from the built-in drivers. atr_len 0: no "atr"; the mask
     * is all ff when "atr_mask" is not given. token_label: NULL when not given. */
    uint8_t atr[UK_LIMIT_ATR_BYTES], atr_mask[UK_LIMIT_ATR_BYTES];
    size_t atr_len;
    char *token_label;
} uk_config_module;
typedef uk_config_module uk_config_pkcs11_module;

typedef struct uk_config {
    char **origins; /* as written; the policy module parses them strictly */
    size_t n_origins;
    bool
        *origins_system; /* n_origins flags (NULL when n_origins is 0): listed by the system file */
    char **extension_ids;
    size_t n_extension_ids;
    bool extension_ids_system; /* extension_ids came from the system file */
    uk_config_origin_policy *origin_policies;
    size_t n_origin_policies;
    bool pairing;
    char *pinentry; /* absolute path, or NULL: chosen at run time */
    unsigned prompt_timeout_s;
    size_t audit_max_bytes;
    unsigned audit_keep;
    uint16_t wss_ports[UK_CONFIG_MAX_PORTS]; /* wss_port first, then the fallbacks */
    size_t n_wss_ports;                      /* 0: WSS disabled */
    char *socket_path;
    char *state_dir;
    char *runtime_dir;
    /* PEM file of trusted CAs for renewal.commit (renewal_ca_bundle); NULL: none. */
    char *renewal_ca_bundle;
    char *path;        /* the (user) file this came from, NULL when none */
    char *system_path; /* the system file merged in, NULL when none */
    int log_level;     /* a uk_log_level */
    unsigned expiring_days;
    uint8_t piv_mgm_key[32];
    size_t piv_mgm_key_len; /* 0: none configured */
    bool piv_allow_default_mgm_key;
    uk_config_limits limits;
    uk_config_pkcs11_module *pkcs11_modules;
    size_t n_pkcs11_modules;
    uk_config_module *skf_modules;
    size_t n_skf_modules;
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

/*
 * Loads the system config (system_path; NULL: UK_CONFIG_SYSTEM_PATH; a missing file means none)
 * and the user config (user_path as uk_config_load), and merges them: every key the system file
 * sets wins over the user's (each member of "limits" counts as its own key); "origins" is the
 * union (system first) unless the system file sets "user_origins": false (a system-only key), in
 * which case the user's origins and origin_policies are ignored with a log line;
 * "origin_policies" entries from the system file override the user's for the same origin, and
 * an origin the system file lists (in either key) is governed by the system file alone: a user
 * entry for it is ignored with a log line, so the user cannot loosen the defaults either;
 * "pairing": false in the system file cannot be turned on by the user (nor true off: the system
 * file wins). The result records which origins, policies and extension IDs came from the system
 * file (origins_system, origin_policies[i].from_system, extension_ids_system), and both paths.
 *
 * Errors as uk_config_load; a system file with the wrong owner or mode is refused with
 * UK_E_CONFIG_INVALID (logged), an unreadable one with UK_E_IO. Either file's errors are logged
 * naming that file.
 */
__attribute__((warn_unused_result)) int
uk_config_load_layered(const char *system_path, const char *user_path, uk_config **out);

/* The origin_policies entry for origin (byte equality), or NULL. */
const uk_config_origin_policy *uk_config_get0_origin_policy(const uk_config *cfg,
                                                            const char *origin);

/* The default config file path, written into buf; UK_E_CONFIG_INVALID if
 * neither XDG_CONFIG_HOME nor HOME is set or the path does not fit. */
__attribute__((warn_unused_result)) int uk_config_default_path(char *buf, size_t size);

#endif
