/* Strict origin parsing: only the form browsers serialize is accepted (see uk_policy.h). */
#include "uk_policy.h"

#include "uk_err.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define DNS_NAME_MAX  253u
#define DNS_LABEL_MAX 63u

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_lower_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z');
}

bool uk_extension_id_valid(const char *id, size_t len)
{
    if (id == NULL || len != UK_EXTENSION_ID_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (id[i] < 'a' || id[i] > 'p')
            return false;
    return true;
}

/* A decimal port without sign or leading zero, 1..65535. */
static bool parse_port(const char *s, size_t len, uint16_t *out)
{
    if (len == 0 || len > 5 || s[0] == '0')
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10u + (unsigned)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* The WHATWG "ends in a number" test: browsers parse such a host as IPv4 and rewrite it. */
static bool ends_in_number(const char *h, size_t len)
{
    size_t start = len;
    while (start > 0 && h[start - 1] != '.')
        start--;
    const char *last = h + start;
    size_t n = len - start;
    if (n == 0)
        return false;
    bool digits = true;
    for (size_t i = 0; i < n; i++)
        digits = digits && is_digit(last[i]);
    if (digits)
        return true;
    if (n >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
        for (size_t i = 2; i < n; i++)
            if (!is_hex(last[i]))
                return false;
        return true;
    }
    return false;
}

/* Exactly four decimal parts 0..255, no leading zeros: the only IPv4 form a browser writes. */
static bool canonical_ipv4(const char *h, size_t len)
{
    size_t parts = 0, i = 0;
    while (i <= len) {
        size_t start = i;
        unsigned v = 0;
        while (i < len && h[i] != '.') {
            if (!is_digit(h[i]) || i - start >= 3)
                return false;
            v = v * 10u + (unsigned)(h[i] - '0');
            i++;
        }
        size_t n = i - start;
        if (n == 0 || v > 255 || (n > 1 && h[start] == '0'))
            return false;
        parts++;
        i++; /* skip '.' (or step past the end) */
    }
    return parts == 4;
}

static bool dns_name(const char *h, size_t len, const char **why)
{
    if (len > DNS_NAME_MAX) {
        *why = "host name longer than 253 bytes";
        return false;
    }
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && h[i] != '.') {
            if (!is_lower_alnum(h[i]) && h[i] != '-') {
                *why = "character not allowed in a host name";
                return false;
            }
            continue;
        }
        size_t n = i - start;
        if (n == 0) {
            *why = i == len ? "trailing dot in host" : "empty label in host";
            return false;
        }
        if (n > DNS_LABEL_MAX) {
            *why = "host label longer than 63 bytes";
            return false;
        }
        if (h[start] == '-' || h[i - 1] == '-') {
            *why = "host label starts or ends with '-'";
            return false;
        }
        start = i + 1;
    }
    return true;
}

/* Serializes an IPv6 address as the WHATWG URL standard does (RFC 5952 compression, lowercase,
 * no embedded IPv4), with brackets. */
static void ipv6_serialize(const unsigned char a[16], char *buf, size_t size)
{
    uint16_t piece[8];
    for (int i = 0; i < 8; i++)
        piece[i] = (uint16_t)((a[2 * i] << 8) | a[2 * i + 1]);
    int compress = -1, best = 1;
    for (int i = 0; i < 8;) {
        if (piece[i] != 0) {
            i++;
            continue;
        }
        int j = i;
        while (j < 8 && piece[j] == 0)
            j++;
        if (j - i > best) {
            best = j - i;
            compress = i;
        }
        i = j;
    }
    size_t n = (size_t)snprintf(buf, size, "[");
    bool ignore0 = false;
    for (int i = 0; i < 8 && n < size; i++) {
        if (ignore0 && piece[i] == 0)
            continue;
        ignore0 = false;
        if (compress == i) {
            n += (size_t)snprintf(buf + n, size - n, "%s", i == 0 ? "::" : ":");
            ignore0 = true;
            continue;
        }
        n += (size_t)snprintf(buf + n, size - n, "%x%s", piece[i], i == 7 ? "" : ":");
    }
    if (n < size)
        snprintf(buf + n, size - n, "]");
}

static bool ipv6_host(const char *h, size_t len, const char **why)
{
    char in[64], canon[64];
    unsigned char addr[16];
    if (len < 3 || len - 2 >= sizeof in) {
        *why = "invalid IPv6 address";
        return false;
    }
    memcpy(in, h + 1, len - 2);
    in[len - 2] = '\0';
    if (inet_pton(AF_INET6, in, addr) != 1) {
        *why = "invalid IPv6 address";
        return false;
    }
    ipv6_serialize(addr, canon, sizeof canon);
    if (strlen(canon) != len || memcmp(canon, h, len) != 0) {
        *why = "IPv6 address not in canonical compressed form";
        return false;
    }
    return true;
}

static int fail(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return UK_E_ORIGIN_NOT_ALLOWED;
}

/* Byte-level screening shared by every scheme. */
static const char *bad_byte(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0)
            return "NUL byte";
        if (c == ' ' || c == '\t')
            return "whitespace";
        if (c < 0x20 || c == 0x7f)
            return "control character";
        if (c >= 0x80)
            return "non-ASCII byte (an IDN must be written in punycode)";
        if (c >= 'A' && c <= 'Z')
            return "uppercase letter";
        if (c == '%')
            return "percent-encoding";
    }
    return NULL;
}

int uk_origin_parse(const char *s, size_t len, uk_origin *out, const char **why)
{
    static const struct {
        const char *name;
        uk_origin_scheme scheme;
        uint16_t default_port;
    } schemes[] = {
        {"https://", UK_ORIGIN_HTTPS, 443},
        {"http://", UK_ORIGIN_HTTP, 80},
        {"chrome-extension://", UK_ORIGIN_CHROME_EXTENSION, 0},
    };
    if (s == NULL || len == 0)
        return fail(why, "missing or empty");
    if (len == 4 && memcmp(s, "null", 4) == 0)
        return fail(why, "opaque origin null");
    if (len > UK_ORIGIN_MAX)
        return fail(why, "too long");
    const char *bad = bad_byte(s, len);
    if (bad != NULL)
        return fail(why, bad);

    size_t k = 0;
    for (; k < sizeof schemes / sizeof schemes[0]; k++) {
        size_t n = strlen(schemes[k].name);
        if (len >= n && memcmp(s, schemes[k].name, n) == 0)
            break;
    }
    if (k == sizeof schemes / sizeof schemes[0])
        return fail(why, "scheme is not https, http or chrome-extension");
    size_t skip = strlen(schemes[k].name);
    const char *a = s + skip; /* authority: everything after "://" */
    size_t alen = len - skip;
    if (memchr(a, '/', alen) != NULL)
        return fail(why, "path not allowed (an origin has no trailing slash)");
    if (memchr(a, '?', alen) != NULL || memchr(a, '#', alen) != NULL)
        return fail(why, "query or fragment not allowed");
    if (memchr(a, '@', alen) != NULL)
        return fail(why, "userinfo not allowed");
    if (alen == 0)
        return fail(why, "empty host");

    /* Split host and port: IPv6 literals keep their ':' inside brackets. */
    size_t hlen = alen;
    const char *colon = NULL;
    if (a[0] == '[') {
        const char *rb = memchr(a, ']', alen);
        if (rb == NULL)
            return fail(why, "unterminated IPv6 address");
        hlen = (size_t)(rb - a) + 1;
        if (hlen < alen) {
            if (a[hlen] != ':')
                return fail(why, "junk after IPv6 address");
            colon = a + hlen;
        }
    } else {
        colon = memchr(a, ':', alen);
        if (colon != NULL)
            hlen = (size_t)(colon - a);
    }
    uint16_t port = 0;
    if (colon != NULL) {
        if (schemes[k].scheme == UK_ORIGIN_CHROME_EXTENSION)
            return fail(why, "port not allowed in an extension origin");
        size_t plen = alen - hlen - 1;
        if (!parse_port(colon + 1, plen, &port))
            return fail(why, "port must be 1-65535 without leading zeros");
        if (port == schemes[k].default_port)
            return fail(why, "default port must be omitted");
    }
    if (hlen == 0)
        return fail(why, "empty host");

    uk_origin_host_kind kind;
    const char *reason = NULL;
    if (schemes[k].scheme == UK_ORIGIN_CHROME_EXTENSION) {
        if (!uk_extension_id_valid(a, hlen))
            return fail(why, "extension ID must be 32 letters a-p");
        kind = UK_ORIGIN_HOST_EXTENSION_ID;
    } else if (a[0] == '[') {
        if (!ipv6_host(a, hlen, &reason))
            return fail(why, reason);
        kind = UK_ORIGIN_HOST_IPV6;
    } else if (a[hlen - 1] == '.') {
        return fail(why, "trailing dot in host");
    } else if (ends_in_number(a, hlen)) {
        if (!canonical_ipv4(a, hlen))
            return fail(why, "IPv4 address not in dotted-quad form");
        kind = UK_ORIGIN_HOST_IPV4;
    } else {
        if (!dns_name(a, hlen, &reason))
            return fail(why, reason);
        kind = UK_ORIGIN_HOST_DNS;
    }

    out->scheme = schemes[k].scheme;
    out->host_kind = kind;
    out->port = port;
    memcpy(out->host, a, hlen);
    out->host[hlen] = '\0';
    memcpy(out->text, s, len);
    out->text[len] = '\0';
    return UK_OK;
}

bool uk_origin_suggest(const char *s, size_t len, char *buf, size_t size)
{
    char t[2 * UK_ORIGIN_MAX];
    uk_origin o;
    if (size == 0)
        return false;
    buf[0] = '\0';
    if (s == NULL)
        return false;
    const char *orig = s;
    size_t orig_len = len;
    while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
        s++;
        len--;
    }
    while (len > 0 &&
           (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    if (len == 0 || len >= sizeof t)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        t[n++] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    if (n > 0 && t[n - 1] == '/')
        n--;
    t[n] = '\0';
    char *sep = strstr(t, "://");
    if (sep == NULL)
        return false;
    char *host = sep + 3;
    char *port = NULL;
    if (host[0] != '[') {
        port = strrchr(host, ':');
        if (port != NULL)
            *port++ = '\0';
    }
    size_t hl = strlen(host);
    if (hl > 0 && host[hl - 1] == '.')
        host[--hl] = '\0';
    if (port != NULL && ((strncmp(t, "https:", 6) == 0 && strcmp(port, "443") == 0) ||
                         (strncmp(t, "http:", 5) == 0 && strcmp(port, "80") == 0)))
        port = NULL;
    char out[sizeof t + 8];
    int w = snprintf(out, sizeof out, "%.*s%s%s%s", (int)(host - t), t, host, port ? ":" : "",
                     port ? port : "");
    if (w < 0 || (size_t)w >= sizeof out)
        return false;
    if (uk_origin_parse(out, (size_t)w, &o, NULL) != UK_OK)
        return false;
    if ((size_t)w == orig_len && memcmp(out, orig, orig_len) == 0)
        return false;
    if ((size_t)w >= size)
        return false;
    memcpy(buf, out, (size_t)w + 1);
    return true;
}
