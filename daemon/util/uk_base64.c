#include "uk_base64.h"
#include "uk_err.h"

#include <stdbool.h>
#include <stdlib.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t uk_base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

int uk_base64_encode(const uint8_t *p, size_t n, char **out, size_t *out_len)
{
    if (n > (SIZE_MAX - 1) / 4 * 3 - 2)
        return UK_E_LIMIT_EXCEEDED;
    size_t len = uk_base64_encoded_len(n);
    char *s = malloc(len + 1);
    if (s == NULL)
        return UK_E_NO_MEMORY;

    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        s[o++] = alphabet[v >> 18];
        s[o++] = alphabet[(v >> 12) & 63];
        s[o++] = alphabet[(v >> 6) & 63];
        s[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        s[o++] = alphabet[v >> 18];
        s[o++] = alphabet[(v >> 12) & 63];
        s[o++] = '=';
        s[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        s[o++] = alphabet[v >> 18];
        s[o++] = alphabet[(v >> 12) & 63];
        s[o++] = alphabet[(v >> 6) & 63];
        s[o++] = '=';
    }
    s[o] = '\0';
    *out = s;
    if (out_len != NULL)
        *out_len = o;
    return UK_OK;
}

/* Value of a base64 character, or -1. */
static int value_of(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int uk_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len)
{
    if (n % 4 != 0)
        return UK_E_INVALID_PARAMS;
    size_t pad = 0;
    if (n >= 4 && s[n - 1] == '=')
        pad = s[n - 2] == '=' ? 2 : 1;
    size_t len = n / 4 * 3 - pad;

    /* Validate everything before allocating. */
    for (size_t i = 0; i < n - pad; i++) {
        if (value_of(s[i]) < 0)
            return UK_E_INVALID_PARAMS;
    }
    if (pad == 2 && (value_of(s[n - 3]) & 0x0f) != 0)
        return UK_E_INVALID_PARAMS;
    if (pad == 1 && (value_of(s[n - 2]) & 0x03) != 0)
        return UK_E_INVALID_PARAMS;

    uint8_t *b = malloc(len > 0 ? len : 1);
    if (b == NULL)
        return UK_E_NO_MEMORY;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = (uint32_t)value_of(s[i]) << 18 | (uint32_t)value_of(s[i + 1]) << 12;
        bool last = i + 4 == n;
        if (last && pad == 2) {
            b[o++] = (uint8_t)(v >> 16);
            break;
        }
        v |= (uint32_t)value_of(s[i + 2]) << 6;
        if (last && pad == 1) {
            b[o++] = (uint8_t)(v >> 16);
            b[o++] = (uint8_t)(v >> 8);
            break;
        }
        v |= (uint32_t)value_of(s[i + 3]);
        b[o++] = (uint8_t)(v >> 16);
        b[o++] = (uint8_t)(v >> 8);
        b[o++] = (uint8_t)v;
    }
    *out = b;
    *out_len = len;
    return UK_OK;
}
