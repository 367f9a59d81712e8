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
 * Ownership: uk_policy_new/uk_policy_free (NULL-safe). The policy copies what it needs from the
 * config; the config may be freed afterwards.
 * Thread: loop thread only (start-up, gate checks, SIGHUP reload); no locking. uk_origin_parse and
 * uk_policy_host_allowed are pure and may be called from any thread.
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

/*
 * A policy from cfg: its origins (each must already be canonical), extension IDs (each must be
 * well-formed) and requests_per_second_per_origin limit. Errors: UK_E_CONFIG_INVALID (logged,
 * naming the entry, the reason and the canonical form when one can be derived), UK_E_NO_MEMORY.
 * Duplicates are accepted and count once.
 */
__attribute__((warn_unused_result)) int uk_policy_new(const uk_config *cfg, uk_policy **out);
void uk_policy_free(uk_policy *policy);

/*
 * SIGHUP: replaces the allowlists and the rate limit with cfg's, all or nothing. On error the
 * policy is unchanged (same errors as uk_policy_new). Rate state is kept for origins that stay.
 * Sessions already open are not re-checked here (the dispatcher may ask
 * uk_policy_origin_allowed again).
 */
__attribute__((warn_unused_result)) int uk_policy_reload(uk_policy *policy, const uk_config *cfg);

/*
 * The WSS gate: whether the Origin header value (len bytes; header may be NULL for a missing
 * header) parses strictly and equals an allowed origin. Missing, empty, "null" and malformed
 * values are refused. When refused and why is not NULL, *why is a short static reason.
 */
bool uk_policy_origin_allowed(const uk_policy *policy, const char *header, size_t len,
                              const char **why);

/* The DNS-rebinding gate: whether the Host header value is "127.0.0.1:PORT" or "localhost:PORT"
 * with PORT == port (see above). NULL, empty, and port 0 are refused. */
bool uk_policy_host_allowed(const char *header, size_t len, uint16_t port);

/* Whether id (NUL-terminated) is well-formed and listed in the config's extension_ids. */
bool uk_policy_extension_allowed(const uk_policy *policy, const char *id);

/* Number of distinct allowed origins (for status and tests). */
size_t uk_policy_origin_count(const uk_policy *policy);

/*
 * Per-origin token bucket: each allowed origin (and "chrome-extension://ID" for each allowed
 * extension) may make requests_per_second_per_origin requests per second, with a burst of as many.
 * Returns true and takes a token, or false when the origin has none left (answer RATE_LIMITED).
 * origin NULL (the Unix socket: the same user as the daemon) is never limited: true. An origin that
 * is not allowed has no bucket: false. now_ms is a monotonic clock in milliseconds (uv_now()); it
 * must not go backwards (a smaller value is treated as no time passing).
 */
bool uk_policy_rate_take(uk_policy *policy, const char *origin, uint64_t now_ms);

#endif
