/*
 * uk_journal.h - the renewal journal: one record per certificate renewal, kept on disk so that a
 * prepared renewal survives daemon restarts, reboots and days of waiting for the CA, and so that a
 * commit interrupted at any point can be finished or rolled back on the next start or the next
 * insert of the key. Also the backups of replaced certificates. docs/renewal.md ("Journal") has
 * the file format, the write protocol and what a crash at each step leaves behind.
 *
 * On disk, under the state directory ($XDG_STATE_HOME/ukeyd):
 *   renewals/<id>.json          one record, JSON (ADR 0003), mode 0600
 *   renewals/<id>.json.corrupt  a record that failed to read, moved aside (never deleted)
 *   backup/<serial>-<slot>-<YYYYMMDDTHHMMSSZ>-<sha256 prefix>.der   an old certificate, 0600
 * Both directories are 0700, owned by us; the journal refuses to use them otherwise.
 *
 * Every write is atomic: a temporary file in the same directory is written, fsync'ed, renamed
 * over the record (linked, for backups, so an existing backup is never replaced), and the
 * directory is fsync'ed. A reader sees the old record or the new one, never a mix.
 *
 * State machine (a record's state; uk_journal_update refuses anything else with
 * UK_E_RENEWAL_STATE and leaves the file untouched):
 *
 *   PREPARED ──► COMMITTING ──► WRITTEN ──► ACTIVATED ──► DONE
 *      │  ▲          │             │ │
 *      │  └──────────┤             │ │
 *      ▼             ▼             │ │
 *   ABORTED     ROLLED_BACK ◄──────┘ │
 *      ▲                             │
 *      └─────────────────────────────┘ (a WRITTEN certificate not valid yet, given up)
 *
 *   PREPARED     staged key generated in staged_slot, CSR signed and returned; waiting for the CA.
 *                The working key and certificate are untouched.
 *   COMMITTING   the issued certificate (new_cert_der) passed its checks and the old certificate
 *                is backed up; writing to the card has begun or is about to.
 *   WRITTEN      the new certificate is on the card and was read back byte for byte.
 *   ACTIVATED    the new key is the active one for its role (moved into slot, or the mapping
 *                recorded on the card); the old key may still be there.
 *   DONE         finished; the old key is retired.
 *   ABORTED      given up (renewal.abort) before the new key became active: from PREPARED, or
 *                from WRITTEN while the new certificate waits to become valid; the staged key
 *                (and its certificate) are to be deleted, the old pair stays active.
 *   ROLLED_BACK  a commit was undone: the card holds the old certificate and key again, and this
 *                renewal is over.
 *   COMMITTING -> PREPARED: a commit that changed nothing on the card (or whose change was
 *                undone) returns to PREPARED, so the same certificate can be committed again.
 *   A state may also be "updated" to itself (new steps, backup path, new certificate) unless it
 *   is final. DONE, ABORTED and ROLLED_BACK are final: the record is kept, never changed again.
 *
 * Required fields by state: every record has id, token_id, token_serial, driver, slot,
 * staged_slot, mode, algorithm, created, updated, csr_pem and staged_spki (origin is optional:
 * NULL for the local user). mode EXTEND also has
 * the old certificate (there was a valid one). Every state from COMMITTING on, including
 * ROLLED_BACK, has new_cert_der. Fields fixed when the record is created never change; the new
 * certificate may be set or replaced only while the stored record is PREPARED (so the one being
 * committed is the one recovery finds); the backup path, once set, never changes; steps are only
 * ever appended.
 *
 * Ownership: records returned by the journal (uk_journal_create, _get, _list) are heap-owned,
 * every pointer in them belongs to the record, and the caller frees them with
 * uk_renewal_rec_free (NULL-safe). Records passed in are only read (uk_journal_update writes
 * rec->updated); the journal keeps no pointer into them. Paths returned are malloc'ed; free().
 *
 * Thread: blocking file I/O (open, fsync, rename). Call it from worker threads or at start-up,
 * never from the loop thread. One uk_journal may be shared by any number of threads: every call
 * holds the journal's mutex, so "check for a renewal in progress, then create" is atomic.
 * One process at a time: uk_journal_open takes an exclusive flock(2) on renewals/.
 *
 * Errors: UK_OK or a negative uk_err code (uk_err.h); each function lists its own. Causes
 * (errno, paths, what was corrupt) are logged here; callers never see them.
 */
#ifndef UK_JOURNAL_H
#define UK_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A renewal id: 128 random bits as 32 lowercase hex digits, plus the NUL. */
#define UK_JOURNAL_ID_LEN 33
/* A UTC time "2026-11-24T08:00:00Z", plus the NUL. */
#define UK_JOURNAL_TIME_LEN 21
/* A SHA-256 fingerprint as 64 lowercase hex digits, plus the NUL. */
#define UK_JOURNAL_FINGERPRINT_LEN 65

/* Largest record file read or written, in bytes. Larger is UK_E_LIMIT_EXCEEDED (write) or a
 * corrupt record (read). Fixed. */
#define UK_JOURNAL_MAX_FILE (1024u * 1024u)
/* Most steps in one record's log. Fixed. */
#define UK_JOURNAL_MAX_STEPS 256u
/* Longest token serial or slot in a backup file name, in bytes before escaping. Fixed. */
#define UK_JOURNAL_MAX_NAME_PART 32u

typedef struct uk_journal uk_journal;

typedef enum uk_renewal_state {
    UK_RENEWAL_PREPARED = 1,
    UK_RENEWAL_COMMITTING,
    UK_RENEWAL_WRITTEN,
    UK_RENEWAL_ACTIVATED,
    UK_RENEWAL_DONE,
    UK_RENEWAL_ABORTED,
    UK_RENEWAL_ROLLED_BACK,
} uk_renewal_state;

typedef enum uk_renewal_mode {
    UK_RENEWAL_EXTEND = 1, /* a valid certificate is replaced before it ends */
    UK_RENEWAL_REPAIR,     /* an expired or missing certificate is replaced */
} uk_renewal_mode;

typedef struct uk_renewal_step {
    char time[UK_JOURNAL_TIME_LEN];
    char *step;   /* what was done, a short name chosen by the service: "key_generated", ... */
    char *result; /* "ok", or the uk_err name of what went wrong */
} uk_renewal_step;

typedef struct uk_renewal_rec {
    char id[UK_JOURNAL_ID_LEN]; /* set by uk_journal_create */
    char *token_id;             /* "piv:12345678" */
    char *token_serial;         /* "12345678" */
    char *driver;               /* "piv" */
    char *slot;                 /* the working key's location: "9a" */
    char *staged_slot;          /* where the new key was generated: "82" */
    uk_renewal_mode mode;
    char *algorithm; /* as the service names it: "rsa2048", "p256", "sm2" */
    /* The web origin that prepared the renewal ("https://portal.example.cn"), which alone may see
     * and continue it over the web; NULL for the local user (and in records written before this
     * field existed). Fixed at create. */
    char *origin;
    uk_renewal_state state;
    char created[UK_JOURNAL_TIME_LEN]; /* set by uk_journal_create */
    char updated[UK_JOURNAL_TIME_LEN]; /* set by every write */
    /* Writes of this record so far (1 after create), set by the journal. uk_journal_update
     * refuses a record whose revision is not the stored one: someone wrote in between. */
    uint64_t revision;
    char *csr_pem;        /* "-----BEGIN CERTIFICATE REQUEST-----..." */
    uint8_t *staged_spki; /* DER SubjectPublicKeyInfo of the staged key */
    size_t staged_spki_len;
    /* The certificate being replaced, when there was one (old_cert_der NULL otherwise). The
     * fingerprint is the SHA-256 of the DER, computed by uk_journal_create. */
    char old_cert_sha256[UK_JOURNAL_FINGERPRINT_LEN];
    uint8_t *old_cert_der;
    size_t old_cert_der_len;
    char *old_cert_backup; /* path from uk_journal_backup_cert, NULL until backed up */
    uint8_t *new_cert_der; /* the issued certificate, NULL until received */
    size_t new_cert_der_len;
    uk_renewal_step *steps;
    size_t n_steps;
} uk_renewal_rec;

/* "prepared", "committing", "written", "activated", "done", "aborted", "rolled_back" (the words
 * the file uses); NULL for a value outside the enum. */
const char *uk_renewal_state_name(uk_renewal_state s);
/* The state of a name above; false (and *out untouched) for anything else. */
bool uk_renewal_state_from_name(const char *name, uk_renewal_state *out);
/* "extend", "repair"; NULL for a value outside the enum. */
const char *uk_renewal_mode_name(uk_renewal_mode m);
bool uk_renewal_mode_from_name(const char *name, uk_renewal_mode *out);

/* Whether s is DONE, ABORTED or ROLLED_BACK. */
bool uk_renewal_state_is_final(uk_renewal_state s);
/* Whether the state machine above allows from -> to (from == to only for a non-final state). */
bool uk_renewal_transition_ok(uk_renewal_state from, uk_renewal_state to);

/* Frees rec and everything it points to. NULL-safe. Only for records the journal returned or
 * records built the same way (every pointer malloc'ed). */
void uk_renewal_rec_free(uk_renewal_rec *rec);

/* Frees an array from uk_journal_list (each record and the array). NULL-safe. */
void uk_renewal_recs_free(uk_renewal_rec **recs, size_t n);

/*
 * Appends {now, step, result} to the log of a heap-owned record (copies both strings). Nothing is
 * written to disk until uk_journal_update. Errors: UK_E_INVALID_PARAMS (empty or not UTF-8),
 * UK_E_LIMIT_EXCEEDED (UK_JOURNAL_MAX_STEPS), UK_E_NO_MEMORY; rec is unchanged on error.
 */
int uk_renewal_rec_add_step(uk_renewal_rec *rec, const char *step, const char *result)
    __attribute__((warn_unused_result));

/* Replaces rec->new_cert_der with a copy of der[0..len) (len > 0) in a heap-owned record.
 * Errors: UK_E_INVALID_PARAMS, UK_E_NO_MEMORY; rec is unchanged on error. */
int uk_renewal_rec_set1_new_cert(uk_renewal_rec *rec, const uint8_t *der, size_t len)
    __attribute__((warn_unused_result));

/* Replaces rec->old_cert_backup with a copy of path in a heap-owned record.
 * Errors: UK_E_INVALID_PARAMS, UK_E_NO_MEMORY; rec is unchanged on error. */
int uk_renewal_rec_set1_backup(uk_renewal_rec *rec, const char *path)
    __attribute__((warn_unused_result));

/*
 * Opens the journal under state_dir (an absolute path), creating state_dir (new components 0700),
 * state_dir/renewals and state_dir/backup (0700) as needed, and removes temporary files that an
 * interrupted write left behind. Refuses a renewals/ or backup/ that is not a directory (a
 * symlink), that belongs to another user, or whose mode gives group or others any access, and a
 * state_dir that belongs to another user or that group or others may write. *out is set only on
 * success.
 * Errors: UK_E_INVALID_PARAMS (state_dir NULL, relative or too long), UK_E_CONFIG_INVALID (a
 * refused directory, logged with the reason), UK_E_BUSY (another process has the journal open),
 * UK_E_IO, UK_E_NO_MEMORY.
 */
int uk_journal_open(const char *state_dir, uk_journal **out) __attribute__((warn_unused_result));

/* Closes the journal and releases its lock. NULL-safe. No call may be running on it. */
void uk_journal_close(uk_journal *j);

/*
 * Records a new renewal. rec_in->state must be PREPARED; its id, created, updated, revision and
 * old_cert_sha256 are ignored (the journal sets them; the fingerprint is computed from
 * old_cert_der); old_cert_backup and new_cert_der must be NULL. Its steps are kept.
 * On success *out is the record as written (caller frees).
 * Errors: UK_E_INVALID_PARAMS (a required field missing or empty, a string not UTF-8, EXTEND
 * without old certificate, CSR not PEM), UK_E_RENEWAL_STATE (state not PREPARED),
 * UK_E_RENEWAL_IN_PROGRESS (an unfinished renewal exists for the same token_id and slot, or uses
 * the same staged_slot on the same token_id), UK_E_LIMIT_EXCEEDED, UK_E_IO, UK_E_NO_MEMORY.
 */
int uk_journal_create(uk_journal *j, const uk_renewal_rec *rec_in, uk_renewal_rec **out)
    __attribute__((warn_unused_result));

/*
 * Reads record id. A record that fails to read (truncated, not JSON, unknown state, missing or
 * unknown field, wrong type, bad base64, fingerprint that does not match, id that does not match
 * its file name) is moved aside to <id>.json.corrupt, logged, and reported as UK_E_IO; it shows in
 * uk_journal_list_corrupt from then on.
 * Errors: UK_E_INVALID_PARAMS (id not 32 lowercase hex digits), UK_E_RENEWAL_NOT_FOUND,
 * UK_E_NOT_SUPPORTED (written by a newer ukeyd; left in place), UK_E_IO, UK_E_NO_MEMORY.
 */
int uk_journal_get(uk_journal *j, const char *id, uk_renewal_rec **out)
    __attribute__((warn_unused_result));

/*
 * Every record (unfinished_only false) or every record whose state is not final, oldest first
 * (by created, then id). *recs is NULL when *n is 0; free with uk_renewal_recs_free. Corrupt
 * records found on the way are moved aside and logged (see uk_journal_get) and left out; records
 * of a newer ukeyd are left out with a warning.
 * Errors: UK_E_IO (the directory could not be read), UK_E_NO_MEMORY.
 */
int uk_journal_list(uk_journal *j, bool unfinished_only, uk_renewal_rec ***recs, size_t *n)
    __attribute__((warn_unused_result));

/*
 * File names (not paths) of the records moved aside, "<id>.json.corrupt[.N]", sorted; for
 * renewal.list and ukeyctl doctor. Free each name and the array. *names is NULL when *n is 0.
 * Errors: UK_E_IO, UK_E_NO_MEMORY.
 */
int uk_journal_list_corrupt(uk_journal *j, char ***names, size_t *n)
    __attribute__((warn_unused_result));

/*
 * Writes rec over the stored record rec->id, after checking it against the stored one: the same
 * revision (rec was read from the current version), the state change allowed (see above), the
 * fixed fields equal, the stored steps a prefix of rec->steps, and the fields each state needs
 * present. Sets rec->updated and increments rec->revision on success. On any error the file is
 * untouched.
 * Errors: UK_E_RENEWAL_STATE (transition not allowed, the record is final, or rec is stale: the
 * record was written since rec was read; read it again),
 * UK_E_INVALID_PARAMS (a fixed field changed, steps rewritten, a field missing for the state),
 * UK_E_RENEWAL_NOT_FOUND, UK_E_LIMIT_EXCEEDED, UK_E_NOT_SUPPORTED, UK_E_IO, UK_E_NO_MEMORY.
 */
int uk_journal_update(uk_journal *j, uk_renewal_rec *rec) __attribute__((warn_unused_result));

/*
 * Moves record id to final_state (DONE, ABORTED or ROLLED_BACK) and appends the step
 * {now, "finish", "<state name>"}. The record is kept.
 * Errors: UK_E_INVALID_PARAMS (final_state not final), UK_E_RENEWAL_STATE (not allowed from the
 * current state), and those of uk_journal_get and uk_journal_update.
 */
int uk_journal_finish(uk_journal *j, const char *id, uk_renewal_state final_state)
    __attribute__((warn_unused_result));

/*
 * Backs up a certificate before it is replaced: writes der[0..len) to
 * backup/<serial>-<slot>-<YYYYMMDDTHHMMSSZ>-<first 16 hex digits of its SHA-256>.der (0600,
 * atomically) and returns the absolute path in *path (caller frees). Bytes of serial and slot
 * other than [A-Za-z0-9] are written as %XX. An existing backup is never replaced: when the name
 * is taken by the same bytes, that file is the backup and its path is returned; by other bytes,
 * "-1", "-2", ... is added before ".der".
 * Errors: UK_E_INVALID_PARAMS (empty serial, slot or der; serial or slot longer than
 * UK_JOURNAL_MAX_NAME_PART), UK_E_LIMIT_EXCEEDED (every suffix taken), UK_E_IO, UK_E_NO_MEMORY.
 */
int uk_journal_backup_cert(uk_journal *j, const char *token_serial, const char *slot,
                           const uint8_t *der, size_t len, char **path)
    __attribute__((warn_unused_result));

#endif
