/* The pure parts of uk_prompt: Assuan escaping, ERR mapping, program choice, environment filter. */
#include "uk_prompt_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uk_err.h"

const char *const uk__prompt_default_programs[] = {
    "/usr/bin/pinentry", /* Debian's alternative: the flavour the user installed */
    "/usr/bin/pinentry-gnome3", "/usr/bin/pinentry-gtk2", "/usr/bin/pinentry-qt",
    "/usr/bin/pinentry-curses", "/usr/bin/pinentry-tty",  NULL,
};

static bool needs_escape(unsigned char c)
{
    return c == '%' || c < 0x20;
}

size_t uk__prompt_escaped_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *q = (const unsigned char *)s; *q != '\0'; q++)
        n += needs_escape(*q) ? 3 : 1;
    return n;
}

int uk__prompt_escape(const char *s, char *out, size_t cap, size_t *len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = uk__prompt_escaped_len(s);
    if (n >= cap)
        return UK_E_INVALID_PARAMS;
    char *o = out;
    for (const unsigned char *q = (const unsigned char *)s; *q != '\0'; q++) {
        if (needs_escape(*q)) {
            *o++ = '%';
            *o++ = hex[*q >> 4];
            *o++ = hex[*q & 0x0f];
        } else {
            *o++ = (char)*q;
        }
    }
    *o = '\0';
    *len = n;
    return UK_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int uk__prompt_unescape(const char *in, size_t n, uint8_t *out, size_t cap, size_t *len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int b = (unsigned char)in[i];
        if (b == '%') {
            if (n - i < 3)
                return UK_E_PROMPT_UNAVAILABLE;
            int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
            if (hi < 0 || lo < 0)
                return UK_E_PROMPT_UNAVAILABLE;
            b = hi * 16 + lo;
            i += 2;
        }
        if (o == cap)
            return UK_E_PROMPT_UNAVAILABLE;
        out[o++] = (uint8_t)b;
    }
    *len = o;
    return UK_OK;
}

int uk__prompt_err_from_line(const char *line, size_t n)
{
    if (n < 5 || memcmp(line, "ERR ", 4) != 0)
        return UK_E_PROMPT_UNAVAILABLE;
    unsigned long code = 0;
    size_t i = 4, digits = 0;
    for (; i < n && line[i] >= '0' && line[i] <= '9' && digits < 10; i++, digits++)
        code = code * 10 + (unsigned long)(line[i] - '0');
    if (digits == 0 || code > 0xffffffffUL || (i < n && line[i] != ' '))
        return UK_E_PROMPT_UNAVAILABLE;
    switch (code & 0xffffu) {
    case UK__GPG_ERR_CANCELED:
    case UK__GPG_ERR_NOT_CONFIRMED:
    case UK__GPG_ERR_FULLY_CANCELED:
        return UK_E_CONSENT_DENIED;
    case UK__GPG_ERR_TIMEOUT:
        return UK_E_TIMEOUT;
    default:
        return UK_E_PROMPT_UNAVAILABLE;
    }
}

bool uk__prompt_utf8_valid(const char *s)
{
    const unsigned char *q = (const unsigned char *)s;
    while (*q != '\0') {
        unsigned c = *q;
        size_t more;
        unsigned cp, min;
        if (c < 0x80) {
            q++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            more = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        q++;
        for (size_t k = 0; k < more; k++, q++) {
            if ((*q & 0xc0) != 0x80) /* also stops at the NUL */
                return false;
            cp = (cp << 6) | (*q & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

const char *uk__prompt_pick(const char *const *candidates)
{
    for (; *candidates != NULL; candidates++) {
        struct stat st;
        if (stat(*candidates, &st) == 0 && S_ISREG(st.st_mode) && access(*candidates, X_OK) == 0)
            return *candidates;
    }
    return NULL;
}

bool uk__prompt_env_allowed(const char *entry)
{
    static const char *const names[] = {
        "PATH",
        "HOME",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "XAUTHORITY",
        "DBUS_SESSION_BUS_ADDRESS",
        "XDG_RUNTIME_DIR",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "LC_MESSAGES",
        "TERM",
        NULL,
    };
    const char *eq = strchr(entry, '=');
    if (eq == NULL || eq == entry)
        return false;
    size_t n = (size_t)(eq - entry);
    static const char prefix[] = "UK_PINENTRY_";
    if (n > sizeof(prefix) - 1 && memcmp(entry, prefix, sizeof(prefix) - 1) == 0)
        return true;
    for (size_t i = 0; names[i] != NULL; i++) {
        if (strlen(names[i]) == n && memcmp(entry, names[i], n) == 0)
            return true;
    }
    return false;
}
