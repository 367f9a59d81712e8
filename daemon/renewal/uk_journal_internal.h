/*
 * uk_journal_internal.h - between the two halves of the journal: uk_journal_record.c (records in
 * memory, the state machine, the JSON format) and uk_journal.c (files, locking, the API). Not for
 * other modules.
 *
 * Thread: everything here is pure (no shared state) and may run on any thread.
 * Ownership and errors as in uk_journal.h.
 */
#ifndef UK_JOURNAL_INTERNAL_H
#define UK_JOURNAL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uk_journal.h"

/* The "version" of the record files this ukeyd writes and reads. */
#define UK__JOURNAL_FILE_VERSION 1

bool uk__journal_is_lower_hex(const char *s, size_t n);

/* 2n lowercase hex digits and a NUL into out. */
void uk__journal_to_hex(const uint8_t *p, size_t n, char *out);

/* SHA-256 of p as 64 lowercase hex digits. Errors: those of uk_x509_digest. */
int uk__journal_sha256_hex(const uint8_t *p, size_t n, char out[UK_JOURNAL_FINGERPRINT_LEN])
    __attribute__((warn_unused_result));

/* t (seconds since the epoch) in UTC as "2026-11-24T08:00:00Z", or with basic as
 * "20261124T080000Z" (for file names). */
void uk__journal_format_time(int64_t t, bool basic, char *out, size_t cap);

bool uk__journal_bytes_eq(const uint8_t *a, size_t an, const uint8_t *b, size_t bn);

/* A deep copy of in (every pointer of *out its own). Errors: UK_E_NO_MEMORY. */
int uk__journal_rec_dup(const uk_renewal_rec *in, uk_renewal_rec **out)
    __attribute__((warn_unused_result));

/* uk_renewal_rec_add_step at time t. */
int uk__journal_add_step_at(uk_renewal_rec *rec, int64_t t, const char *step, const char *result)
    __attribute__((warn_unused_result));

/*
 * What every record must satisfy, in memory and on disk, except created/updated (checked where
 * they come from): required fields for its state, UTF-8 text, staged_slot not the working slot,
 * a PEM CSR, steps. what names the record in the log. Errors: UK_E_INVALID_PARAMS (logged).
 */
int uk__journal_check_fields(const uk_renewal_rec *r, const char *what)
    __attribute__((warn_unused_result));

/*
 * Whether rec may replace stored (the version on disk): the same revision, the state change
 * allowed, the fixed fields equal, stored's steps a prefix of rec's, the fields of rec's state
 * present. Logs why not.
 * Errors: UK_E_RENEWAL_STATE, UK_E_INVALID_PARAMS.
 */
int uk__journal_check_update(const uk_renewal_rec *stored, const uk_renewal_rec *rec)
    __attribute__((warn_unused_result));

/* The file's text for r, '\n'-terminated, in *out (free()), *out_len bytes.
 * Errors: UK_E_LIMIT_EXCEEDED (over UK_JOURNAL_MAX_FILE), UK_E_NO_MEMORY. */
int uk__journal_serialize(const uk_renewal_rec *r, char **out, size_t *out_len)
    __attribute__((warn_unused_result));

/*
 * Parses a record file's text strictly; expected_id is the id of its file name. On success *out
 * is a new record. Errors: UK_E_NOT_SUPPORTED (an integral version above ours: a newer ukeyd
 * wrote it), UK_E_INVALID_PARAMS (anything else wrong: a corrupt record; the reason is logged),
 * UK_E_NO_MEMORY.
 */
int uk__journal_parse(const char *text, size_t len, const char *expected_id, uk_renewal_rec **out)
    __attribute__((warn_unused_result));

#endif
