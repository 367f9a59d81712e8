/*
 * uk_base64.h - strict base64 (RFC 4648 section 4, standard alphabet, '=' padding).
 *
 * Decoding accepts exactly the canonical encoding: length a multiple of 4, padding only at the end
 * and only as much as needed, no whitespace, no URL-safe characters, and zero bits in the unused
 * low bits of the last character. Everything else is rejected, so one byte string has exactly one
 * accepted text (no malleability in data to sign).
 *
 * Ownership: outputs are malloc'd, caller frees them with free(). On error nothing is allocated
 * and the out-parameters are left alone.
 * Thread: pure functions, any thread.
 */
#ifndef UK_BASE64_H
#define UK_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed to encode n bytes, without the NUL. */
size_t uk_base64_encoded_len(size_t n);

/*
 * Encode n bytes at p into a new NUL-terminated string *out of *out_len characters (out_len may be
 * NULL). Errors: UK_E_NO_MEMORY, UK_E_LIMIT_EXCEEDED (n too large to encode in memory).
 */
int uk_base64_encode(const uint8_t *p, size_t n, char **out, size_t *out_len)
    __attribute__((warn_unused_result));

/*
 * Decode n characters at s into new bytes *out, *out_len. *out is never NULL on success, even for
 * an empty input. Errors: UK_E_INVALID_PARAMS (not canonical base64), UK_E_NO_MEMORY.
 */
int uk_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len)
    __attribute__((warn_unused_result));

#endif
