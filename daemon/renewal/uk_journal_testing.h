/*
 * uk_journal_testing.h - seams of the renewal journal for its tests. Never called by ukeyd.
 *
 * The write hook runs after each step of an atomic write, so a test can end the process there
 * (_exit in a forked child) and prove that a reader then sees the old record or the new one,
 * never a mix. The clock makes times (and so backup names) predictable.
 *
 * Thread: set hooks right after uk_journal_open, before the journal is shared.
 */
#ifndef UK_JOURNAL_TESTING_H
#define UK_JOURNAL_TESTING_H

#include <stdint.h>

#include "uk_journal.h"

typedef enum uk__journal_write_step {
    UK__JOURNAL_TEMP_PARTIAL = 1, /* the first half of the bytes is in the temporary file */
    UK__JOURNAL_TEMP_WRITTEN,     /* every byte is in the temporary file */
    UK__JOURNAL_TEMP_SYNCED,      /* the temporary file is fsync'ed and closed */
    UK__JOURNAL_RENAMED,          /* renamed over the record (a backup: linked to its name) */
    UK__JOURNAL_DIR_SYNCED,       /* the directory is fsync'ed: the write is complete */
} uk__journal_write_step;

/* name: the final file name being written ("<id>.json", or the backup's name). */
typedef void (*uk__journal_write_hook)(void *ctx, uk__journal_write_step step, const char *name);

/* Seconds since 1970-01-01T00:00:00Z. */
typedef int64_t (*uk__journal_clock)(void *ctx);

/* fn NULL removes the hook. */
void uk__journal_set_write_hook(uk_journal *j, uk__journal_write_hook fn, void *ctx);

/* fn NULL restores time(2). */
void uk__journal_set_clock(uk_journal *j, uk__journal_clock fn, void *ctx);

#endif
