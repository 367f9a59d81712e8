/*
 * uk_secret.h - a heap buffer for PINs and keys that is wiped when freed.
 *
 * Ownership: uk_secret_new() returns a buffer the caller owns and frees with uk_secret_free()
 * (NULL-safe). get0 pointers are borrowed and valid until the free. The content is a private copy;
 * callers wipe their own source buffer (uk_wipe) once the copy is made.
 *
 * Thread: a uk_secret has no locking; one thread at a time. uk_wipe may be called anywhere.
 *
 * What it does not do: it does not lock pages into RAM (mlock is per page, not per buffer, and
 * unlocking one secret could unlock a neighbour's page) and it never caches: callers keep a secret
 * only for the operation that needs it. There is deliberately no function to print or log one.
 */
#ifndef UK_SECRET_H
#define UK_SECRET_H

#include <stddef.h>
#include <stdint.h>

typedef struct uk_secret uk_secret;

/*
 * Copy n bytes from p (p may be NULL when n is 0) into a new secret. The copy is followed by a NUL
 * byte that is not counted in the length, so a PIN can be used as a C string. Returns NULL when
 * out of memory (the only failure).
 */
uk_secret *uk_secret_new(const void *p, size_t n) __attribute__((warn_unused_result));

/* Wipe the content (OPENSSL_cleanse) and free the buffer. NULL-safe. */
void uk_secret_free(uk_secret *s);

/* The bytes (NUL-terminated, see uk_secret_new) and their count, borrowed. */
const uint8_t *uk_secret_get0_data(const uk_secret *s);
size_t uk_secret_get0_len(const uk_secret *s);

/* Overwrite n bytes at p with zeros in a way the compiler may not remove. NULL-safe. */
void uk_wipe(void *p, size_t n);

#endif
