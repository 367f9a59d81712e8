/*
 * uk_audit.h - the audit log: who (origin) did what (method, key, certificate serial) and when.
 *
 * One JSON object per line, with exactly these members in this order (absent ones as null):
 *
 *   {"time":"2026-11-24T03:20:31.123Z","endpoint":"wss","origin":"https://portal.example.cn",
 *    "method":"cert.sign","token":"piv:12345678","cert_serial":"1a2b","result":"OK",
 *    "detail":"slot 9a"}
 *
 * There is no member for anything else: a PIN, data to sign or a signature has no field, so it
 * cannot be written by mistake. Each string is capped at UK_AUDIT_FIELD_MAX bytes (cut on a
 * character boundary) and invalid UTF-8 is replaced by U+FFFD, so every line is valid JSON in
 * UTF-8; control characters, quotes and backslashes are escaped, so a value can never forge a line.
 *
 * Files: path (e.g. <state_dir>/audit.log), mode 0600, in a directory created 0700 when missing.
 * Before a line would make the file larger than max_bytes, it is rotated: path.<keep-1> ->
 * path.<keep>, ..., path -> path.1 (the oldest is dropped); a line longer than max_bytes still goes
 * whole into a fresh file. Each line is one write(2) on an O_APPEND descriptor, so writers sharing
 * the file never interleave.
 *
 * Ownership: uk_audit_open/uk_audit_close (NULL-safe). uk_audit_tail returns lines the caller
 * frees with uk_audit_lines_free.
 * Thread: the loop thread only (a small synchronous write per call); no locking.
 * Errors: UK_E_IO (logged once per failure streak: the caller carries on - an audit failure never
 * stops the operation it describes), UK_E_NO_MEMORY, UK_E_INVALID_PARAMS (bad arguments).
 */
#ifndef UK_AUDIT_H
#define UK_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct uk_audit uk_audit;

/* Longest string member, in bytes (before JSON escaping). */
#define UK_AUDIT_FIELD_MAX 256u
/* Bounds of max_bytes and keep, as the config allows them. */
#define UK_AUDIT_MIN_BYTES 4096u
#define UK_AUDIT_MAX_KEEP  20u
/* uk_audit_tail returns at most this many lines whatever max asks (the array is allocated up
 * front). */
#define UK_AUDIT_TAIL_MAX 100000u

/* Opens (creating) path for appending. max_bytes >= UK_AUDIT_MIN_BYTES, 1 <= keep <=
 * UK_AUDIT_MAX_KEEP, else UK_E_INVALID_PARAMS. UK_E_IO when the directory or file cannot be made.
 */
__attribute__((warn_unused_result)) int uk_audit_open(const char *path, size_t max_bytes,
                                                      unsigned keep, uk_audit **out);

void uk_audit_close(uk_audit *a);

typedef struct uk_audit_entry {
    const char *endpoint;    /* "wss" | "native-messaging" | "unix" */
    const char *origin;      /* NULL for the local user */
    const char *method;      /* the JSON-RPC method */
    const char *token;       /* key id e.g. "piv:12345678", NULL if none */
    const char *cert_serial; /* hex, NULL if none */
    const char *result;      /* "OK" or the reason name e.g. "CONSENT_DENIED" */
    const char *detail; /* optional short extra, e.g. "paired", "slot 9a"; never a PIN or data */
} uk_audit_entry;

/* Appends one line for e, stamped with the current UTC time (milliseconds), rotating first when
 * needed. Errors: UK_E_IO, UK_E_NO_MEMORY, UK_E_INVALID_PARAMS (a or e NULL). */
__attribute__((warn_unused_result)) int uk_audit_write(uk_audit *a, const uk_audit_entry *e);

/*
 * The newest up to max (at most UK_AUDIT_TAIL_MAX) lines, oldest first, across path and its rotated
 * files. Lines that are not a JSON object (a torn write after a crash, a hand edit) are skipped.
 * *lines is a malloc'ed array of *n malloc'ed NUL-terminated JSON texts without the newline (NULL
 * and 0 when there are none). Errors: UK_E_NO_MEMORY, UK_E_INVALID_PARAMS; unreadable files are
 * logged and skipped.
 */
__attribute__((warn_unused_result)) int uk_audit_tail(uk_audit *a, size_t max, char ***lines,
                                                      size_t *n);

void uk_audit_lines_free(char **lines, size_t n);

#endif
