/*
 * uk_policy.h - who may talk to ukeyd: strict origins, the allowlist, the Host check, extension
 * IDs and the per-origin request rate.
 *
 * Origins. A web origin is compared only in the one form browsers serialize it (the WHATWG URL
 * "ASCII serialization of an origin"), so "exact match" means byte equality and no parser
 * difference can widen the allowlist:
 *
 *   scheme "://" host [ ":" port ]
 *
 *   scheme  "https", "http", or "chrome-extension" (for native messaging and extension pages),
 *           lowercase.
 *   host    a DNS name in ASCII (IDNs in their punycode "xn--" form): labels of 1-63 bytes of
 *           [a-z0-9-], not starting or ending with '-', at most 253 bytes, no trailing dot;
 *           or a dotted-quad IPv4 address without leading zeros; or an IPv6 address in brackets
 *           in its canonical compressed lowercase form ("[::1]", "[2001:db8::1]"). A name whose
 *           last label is numeric must be a dotted quad (browsers rewrite "127.1" and "0x7f.0.0.1"
 *           to 127.0.0.1, so those never arrive in a header). chrome-extension: the 32-letter
 *           extension ID (a-p).
 *   port    1-65535 without leading zeros; omitted for the scheme's default (80, 443), as browsers
 *           do; never present for chrome-extension.
 *
 * Nothing else: no path (not even "/"), query, fragment, userinfo, whitespace, control bytes,
 * percent-encoding, uppercase, raw non-ASCII, or the opaque origin "null".
 *
 * Host (DNS rebinding). A WSS upgrade must carry "Host: 127.0.0.1:PORT" or "Host: localhost:PORT"
 * with PORT the one in use, byte for byte. No other name (a rebinding attacker's name resolving to
 * 127.0.0.1 fails here), no missing port, no uppercase, no trailing dot, no [::1] (ukeyd listens
 * on IPv4 loopback only, so a browser connecting to [::1] never reaches it).
 *
 * Access (uk_policy_origin_access). Every origin falls in one class:
 *   ALLOWED   listed in the config's "origins", or chrome-extension://ID for an allowed extension
 * ID (native messaging; over WSS an extension origin counts only when it is in "origins"). PAIRED
 * a web origin the user approved earlier (the pairing store), while pairing is on. PAIRABLE  a
 * well-formed web origin that is neither, while pairing is on: it may call system.hello and
 * system.pair only. A web origin is https://..., or http:// with host 127.0.0.1, localhost or
 * [::1]: a plain-http page on any other host can be spoofed by anyone on the network path, so it
 * can never be paired (only listed by an admin). chrome-extension:// origins are never pairable
 * (extension_ids only). REFUSED   malformed, or not allowed and pairing off (paired origins
 * included: turning pairing off suspends them; they stay stored and return when it is turned on
 * again).
 *
 * Per-origin rules (config origin_policies) apply to ALLOWED and PAIRED origins; an origin without
 * an entry gets the defaults: every method the daemon offers to web origins, no PIN from the page,
 * consent per request.
 *
 * Pairing store: <state_dir>/paired-origins.json, {"version":1,"origins":[{"origin":...,
 * "paired_at":unix-seconds}]}, mode 0600 in a 0700 directory, replaced atomically (temporary file,
 * fsync, rename, fsync of the directory) on every pair/unpair. Loaded by uk_policy_new from
 * cfg->state_dir and kept across uk_policy_reload (the state_dir of uk_policy_new stays in use). A
 * corrupt file (bad JSON or shape, an entry that is not a pairable origin, more than
 * UK_POLICY_MAX_PAIRED entries) is logged, copied to paired-origins.json.corrupt and treated as
 * empty, but left in place until the next successful pair. A file not owned by us or writable by
 * group/others is ignored (logged): it could have been planted to grant access.
 *
 * Ownership: uk_policy_new/uk_policy_free (NULL-safe). The policy copies what it needs from the
 * config; the config may be freed afterwards.
 * Thread: loop thread only (start-up, gate checks, SIGHUP reload, pairing); no locking; pair and
 * unpair write a small file synchronously. uk_origin_parse and uk_policy_host_allowed are pure and
 * may be called from any thread.
 */
#ifndef UK_POLICY_H
#define UK_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct uk_config uk_config;
typedef struct uk_policy uk_policy;

/* Longest origin accepted, in bytes: "chrome-extension://" or "https://" + a 253-byte name +
 * ":65535" fits. Longer header values are refused without further parsing. */
#define UK_ORIGIN_MAX 270u

/* Length of a Chrome extension ID: 32 letters a-p. */
#define UK_EXTENSION_ID_LEN 32u

/* At most this many paired origins are stored (uk_policy_pair: UK_E_LIMIT_EXCEEDED). */
#define UK_POLICY_MAX_PAIRED 256u
/* Requests per second (burst of as many) for one PAIRABLE origin, and for all of them together:
 * an unpaired page may only say hello and ask to pair, so it cannot flood the prompt. */
#define UK_POLICY_PAIRABLE_RATE       5u
#define UK_POLICY_PAIRABLE_RATE_TOTAL 10u
/* PAIRABLE origins with a bucket at once; the least recently used is recycled. */
#define UK_POLICY_PAIRABLE_BUCKETS 32u
/* The pairing store's file name in state_dir. */
#define UK_POLICY_PAIRING_FILE "paired-origins.json"

typedef enum uk_origin_scheme {
    UK_ORIGIN_HTTP = 1,
    UK_ORIGIN_HTTPS = 2,
    UK_ORIGIN_CHROME_EXTENSION = 3,
} uk_origin_scheme;

typedef enum uk_origin_host_kind {
    UK_ORIGIN_HOST_DNS = 1,
    UK_ORIGIN_HOST_IPV4 = 2,
    UK_ORIGIN_HOST_IPV6 = 3, /* host holds the address with its brackets */
    UK_ORIGIN_HOST_EXTENSION_ID = 4,
} uk_origin_host_kind;

typedef struct uk_origin {
    uk_origin_scheme scheme;
    uk_origin_host_kind host_kind;
    uint16_t port;                /* 0: the scheme's default port (not written) */
    char host[UK_ORIGIN_MAX + 1]; /* NUL-terminated */
    char text[UK_ORIGIN_MAX + 1]; /* the whole origin, NUL-terminated; equals the input */
} uk_origin;

/*
 * Parses s (len bytes, no NUL needed; an embedded NUL is refused) strictly as above and fills
 * *out. Returns UK_OK or UK_E_ORIGIN_NOT_ALLOWED; then *why (if why is not NULL) points to a short
 * static English reason for logs ("uppercase letter", "path not allowed", ...). *out is written
 * only on success.
 */
__attribute__((warn_unused_result)) int uk_origin_parse(const char *s, size_t len, uk_origin *out,
                                                        const char **why);

/*
 * Best-effort canonical form of a mistyped origin, for error messages: trims whitespace,
 * lowercases scheme and host, drops one trailing "/", a trailing dot and a default port, then
 * parses strictly. Writes it NUL-terminated to buf and returns true if that gave a valid origin
 * different from the input; false otherwise (buf then holds "").
 */
bool uk_origin_suggest(const char *s, size_t len, char *buf, size_t size);

/* Whether id is a well-formed extension ID: exactly 32 letters a-p. */
bool uk_extension_id_valid(const char *id, size_t len);

typedef enum uk_origin_access {
    UK_ACCESS_REFUSED = 0,  /* malformed, or not allowed and pairing off */
    UK_ACCESS_PAIRABLE = 1, /* may call system.hello and system.pair only */
    UK_ACCESS_PAIRED = 2,   /* approved by the user earlier (stored) */
    UK_ACCESS_ALLOWED = 3,  /* in the config's origins (or an allowed chrome-extension://ID) */
} uk_origin_access;

typedef enum uk_consent_mode {
    UK_CONSENT_REQUEST = 1, /* equal to UK_CONFIG_CONSENT_REQUEST */
    UK_CONSENT_SESSION = 2, /* equal to UK_CONFIG_CONSENT_SESSION */
} uk_consent_mode;

/*
 * A policy from cfg: its origins (each must already be canonical), extension IDs (each must be
 * well-formed), origin_policies (each origin canonical), pairing switch and
 * requests_per_second_per_origin limit, plus the pairing store from cfg->state_dir (see above; a
 * missing or unusable store is empty, never an error). Errors: UK_E_CONFIG_INVALID (logged,
 * naming the entry, the reason and the canonical form when one can be derived), UK_E_NO_MEMORY.
 * Duplicates are accepted and count once.
 */
__attribute__((warn_unused_result)) int uk_policy_new(const uk_config *cfg, uk_policy **out);
void uk_policy_free(uk_policy *policy);

/*
 * SIGHUP: replaces the allowlists, origin rules, pairing switch and the rate limit with cfg's, all
 * or nothing. On error the policy is unchanged (same errors as uk_policy_new). The pairing store is
 * kept (not re-read). Rate state is kept for origins that stay. Sessions already open are not
 * re-checked here (the dispatcher may ask uk_policy_origin_access again).
 */
__attribute__((warn_unused_result)) int uk_policy_reload(uk_policy *policy, const uk_config *cfg);

/* The class of origin (NUL-terminated, any text; NULL is REFUSED). See "Access" above. */
uk_origin_access uk_policy_origin_access(const uk_policy *policy, const char *origin);

/*
 * The WSS gate's view of an Origin header value (len bytes, no NUL needed; NULL for a missing
 * header): like uk_policy_origin_access, except that a chrome-extension origin is ALLOWED only when
 * listed in "origins" (extension_ids admit native messaging, not WSS) and is REFUSED otherwise.
 * Unless the answer is ALLOWED or PAIRED and why is not NULL, *why is a short static reason.
 */
uk_origin_access uk_policy_wss_origin_access(const uk_policy *policy, const char *header,
                                             size_t len, const char **why);

/*
 * Whether uk_policy_wss_origin_access gives ALLOWED or PAIRED: a page that may use the key.
 * Missing, empty, "null", malformed, unlisted and not-yet-paired values are refused. When refused
 * and why is not NULL, *why is a short static reason.
 */
bool uk_policy_origin_allowed(const uk_policy *policy, const char *header, size_t len,
                              const char **why);

/*
 * Rules for an ALLOWED or PAIRED origin (the defaults when it has no origin_policies entry). For
 * anything REFUSED or PAIRABLE these answer false / false / UK_CONSENT_REQUEST.
 * uk_policy_method_allowed answers whether the origin's rules admit method (NUL-terminated); the
 * daemon still checks that the method is offered to web origins at all.
 */
bool uk_policy_method_allowed(const uk_policy *policy, const char *origin, const char *method);
bool uk_policy_pin_from_page(const uk_policy *policy, const char *origin);
uk_consent_mode uk_policy_consent(const uk_policy *policy, const char *origin);

/* Whether origins outside the allowlist may ask to be paired (config "pairing"). */
bool uk_policy_pairing_enabled(const uk_policy *policy);

/*
 * Stores origin as paired at now_unix and writes the store. origin must be PAIRABLE now (so not
 * already paired): else UK_E_ORIGIN_NOT_ALLOWED. UK_E_LIMIT_EXCEEDED when UK_POLICY_MAX_PAIRED are
 * stored; UK_E_IO when the store cannot be written (logged; then the origin is not paired);
 * UK_E_NO_MEMORY. The caller asks the user first.
 */
__attribute__((warn_unused_result)) int uk_policy_pair(uk_policy *policy, const char *origin,
                                                       int64_t now_unix);

/* Removes origin from the store (whether or not pairing is on) and writes it. UK_E_NOT_FOUND when
 * not stored; UK_E_IO when the store cannot be written (then it stays paired). */
__attribute__((warn_unused_result)) int uk_policy_unpair(uk_policy *policy, const char *origin);

/* Number of origins in the pairing store (effective or not). */
size_t uk_policy_paired_count(const uk_policy *policy);

typedef struct uk_policy_origin_info {
    const char *origin;
    uk_origin_access access; /* ALLOWED or PAIRED */
    bool from_system;        /* listed by the system config file */
    int64_t paired_at;       /* unix seconds, 0 unless PAIRED */
    bool pin_from_page;
    uk_consent_mode consent;
    const char *const *methods; /* NULL/0: all web methods; else the allowed names (maybe 0) */
    size_t n_methods;
} uk_policy_origin_info;

/*
 * Calls fn for each ALLOWED origin (the config's origins in order, then chrome-extension://ID for
 * each allowed extension not also listed) and then each PAIRED origin in pairing order (none while
 * pairing is off; an origin both listed and paired is reported once, as ALLOWED). Pointers in info
 * are valid only during the call; fn must not change the policy.
 */
void uk_policy_origins_foreach(const uk_policy *policy,
                               void (*fn)(void *arg, const uk_policy_origin_info *info), void *arg);

/* The DNS-rebinding gate: whether the Host header value is "127.0.0.1:PORT" or "localhost:PORT"
 * with PORT == port (see above). NULL, empty, and port 0 are refused. */
bool uk_policy_host_allowed(const char *header, size_t len, uint16_t port);

/* Whether id (NUL-terminated) is well-formed and listed in the config's extension_ids. */
bool uk_policy_extension_allowed(const uk_policy *policy, const char *id);

/* Number of distinct allowed origins (for status and tests). */
size_t uk_policy_origin_count(const uk_policy *policy);

/*
 * Per-origin token bucket: each allowed origin (and "chrome-extension://ID" for each allowed
 * extension) and each PAIRED origin may make requests_per_second_per_origin requests per second,
 * with a burst of as many. A PAIRABLE origin gets UK_POLICY_PAIRABLE_RATE, and all of them together
 * UK_POLICY_PAIRABLE_RATE_TOTAL. Returns true and takes a token, or false when the origin has none
 * left (answer RATE_LIMITED). origin NULL (the Unix socket: the same user as the daemon) is never
 * limited: true. A REFUSED origin has no bucket: false. now_ms is a monotonic clock in milliseconds
 * (uv_now()); it must not go backwards (a smaller value is treated as no time passing).
 */
bool uk_policy_rate_take(uk_policy *policy, const char *origin, uint64_t now_ms);

#endif
