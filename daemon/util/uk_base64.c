/* Strict base64 on OpenSSL's block coder: decode, then re-encode and demand
 * the very same text, which rejects every non-canonical form at once
 * (whitespace, missing or extra padding, stray bits, other alphabets). */
#include "uk_base64.h"

#include "uk_err.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* EVP_EncodeBlock and EVP_DecodeBlock take int lengths. */
#define BASE64_MAX_INPUT ((size_t)(1u << 30))

size_t uk_base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

int uk_base64_encode(const uint8_t *p, size_t n, char **out, size_t *out_len)
{
    if (n > BASE64_MAX_INPUT)
        return UK_E_LIMIT_EXCEEDED;
    size_t len = uk_base64_encoded_len(n);
    char *s = malloc(len + 1);
    if (s == NULL)
        return UK_E_NO_MEMORY;
    int w = n ? EVP_EncodeBlock((unsigned char *)s, p, (int)n) : 0;
    s[w] = '\0';
    *out = s;
    if (out_len != NULL)
        *out_len = (size_t)w;
    return UK_OK;
}

int uk_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len)
{
    if (n % 4 != 0 || n > BASE64_MAX_INPUT)
        return UK_E_INVALID_PARAMS;
    size_t pad = n >= 1 && s[n - 1] == '=' ? (n >= 2 && s[n - 2] == '=' ? 2 : 1) : 0;
    uint8_t *buf = malloc(n / 4 * 3 + 1);
    char *again = malloc(n + 1);
    int rc = UK_E_INVALID_PARAMS;
    if (buf == NULL || again == NULL) {
        rc = UK_E_NO_MEMORY;
        goto out;
    }
    int got = n ? EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n) : 0;
    if (got < 0 || (size_t)got != n / 4 * 3)
        goto out;
    size_t len = (size_t)got - pad;
    int w = len ? EVP_EncodeBlock((unsigned char *)again, buf, (int)len) : 0;
    if ((size_t)w != n || memcmp(again, s, n) != 0)
        goto out;
    *out = buf;
    *out_len = len;
    buf = NULL;
    rc = UK_OK;
out:
    if (buf != NULL)
        OPENSSL_clear_free(buf, n / 4 * 3 + 1);
    free(again);
    return rc;
}
