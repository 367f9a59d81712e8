/*
 * uk_prompt_internal.h - the pure parts of uk_prompt (Assuan escaping, ERR mapping, program
 * choice, environment filter), exposed for tests/unit/test_prompt.c. Not for other modules.
 *
 * Thread: every function here is pure or reads the file system only; any thread.
 */
#ifndef UK_PROMPT_INTERNAL_H
#define UK_PROMPT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest Assuan line, without its LF (libassuan's ASSUAN_LINELENGTH is 1000 + CR LF). Fixed. */
#define UK__PROMPT_LINE_MAX 1000u

/* Most answer data (decoded D lines) accepted for one dialog; more is a protocol error. Fixed. */
#define UK__PROMPT_ANSWER_MAX 4096u

/* After SETTIMEOUT's timeout_s, before our timer kills a pinentry that did not end by itself. */
#define UK__PROMPT_TIMEOUT_GRACE_MS 1000u

/* Between SIGTERM and SIGKILL, and between BYE and SIGTERM. */
#define UK__PROMPT_KILL_GRACE_MS 2000u

#define UK__PROMPT_DEFAULT_TIMEOUT_S 120u
#define UK__PROMPT_DEFAULT_QUEUE     16u

/* libgpg-error codes (low 16 bits of an Assuan ERR code). */
#define UK__GPG_ERR_TIMEOUT        62u
#define UK__GPG_ERR_CANCELED       99u
#define UK__GPG_ERR_NOT_CONFIRMED  114u
#define UK__GPG_ERR_FULLY_CANCELED 198u

/* Default programs, in the order tried; NULL-terminated. */
extern const char *const uk__prompt_default_programs[];

/*
 * Length of s once percent-escaped for Assuan: '%' and every byte < 0x20 (CR and LF included)
 * become %XX (upper-case hex); other bytes, UTF-8 included, are kept.
 */
size_t uk__prompt_escaped_len(const char *s);

/*
 * Write s escaped (as above) plus a NUL to out (cap bytes). Returns UK_OK and the length without
 * the NUL in *len, or UK_E_INVALID_PARAMS (out untouched beyond cap) when it does not fit.
 */
int uk__prompt_escape(const char *s, char *out, size_t cap, size_t *len);

/*
 * Decode n bytes of Assuan data (D-line payload) at in: %XX becomes the byte XX (hex, either case).
 * Writes at most cap bytes to out and their count to *len. Returns UK_OK, or
 * UK_E_PROMPT_UNAVAILABLE when a '%' is not followed by two hex digits or out is too small
 * (then out may hold part of the data: the caller wipes it).
 */
int uk__prompt_unescape(const char *in, size_t n, uint8_t *out, size_t cap, size_t *len);

/*
 * Map an Assuan "ERR <code> <text>" line (n bytes, no LF) to a ukeyd reason:
 * CANCELED / NOT_CONFIRMED / FULLY_CANCELED -> UK_E_CONSENT_DENIED, TIMEOUT -> UK_E_TIMEOUT,
 * anything else, a malformed line included -> UK_E_PROMPT_UNAVAILABLE.
 */
int uk__prompt_err_from_line(const char *line, size_t n);

/* Whether s is valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF). */
bool uk__prompt_utf8_valid(const char *s);

/* The first of candidates (NULL-terminated) that is an executable regular file, or NULL. */
const char *uk__prompt_pick(const char *const *candidates);

/* Whether the environment entry "NAME=value" is passed to pinentry (see uk_prompt.h). */
bool uk__prompt_env_allowed(const char *entry);

#endif
