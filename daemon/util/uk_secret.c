#include "uk_secret.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

struct uk_secret {
    size_t len;
    uint8_t data[]; /* len bytes + NUL */
};

void uk_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        OPENSSL_cleanse(p, n);
}

uk_secret *uk_secret_new(const void *p, size_t n)
{
    if (n > SIZE_MAX - sizeof(uk_secret) - 1)
        return NULL;
    uk_secret *s = malloc(sizeof(*s) + n + 1);
    if (s == NULL)
        return NULL;
    s->len = n;
    if (n > 0)
        memcpy(s->data, p, n);
    s->data[n] = 0;
    return s;
}

void uk_secret_free(uk_secret *s)
{
    if (s == NULL)
        return;
    uk_wipe(s->data, s->len + 1);
    uk_wipe(&s->len, sizeof(s->len));
    free(s);
}

const uint8_t *uk_secret_get0_data(const uk_secret *s)
{
    return s->data;
}

size_t uk_secret_get0_len(const uk_secret *s)
{
    return s->len;
}
