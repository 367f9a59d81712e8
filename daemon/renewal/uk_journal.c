/* The renewal journal on disk: directories, atomic writes, corrupt records, the API, backups. */
#include "uk_journal.h"
#include "uk_journal_internal.h"
#include "uk_journal_testing.h"

#include "uk_err.h"
#include "uk_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RENEWALS_DIR   "renewals"
#define BACKUP_DIR     "backup"
#define TEMP_PREFIX    ".tmp."
#define RECORD_SUFFIX  ".json"
#define CORRUPT_SUFFIX ".corrupt"
#define MAX_ASIDE      100 /* <name>.corrupt, .corrupt.1 .. .corrupt.99; backup -1 .. -99 */
#define ID_BYTES       16

struct uk_journal {
    pthread_mutex_t mu;
    int rdir;          /* renewals/, flock'ed */
    int bdir;          /* backup/ */
    char *backup_path; /* absolute path of backup/ */
    uk__journal_write_hook hook;
    void *hook_ctx;
    uk__journal_clock clock;
    void *clock_ctx;
};

/* ---- helpers --------------------------------------------------------------------------------- */

static bool id_ok(const char *id)
{
    return id != NULL && strlen(id) == UK_JOURNAL_ID_LEN - 1 &&
           uk__journal_is_lower_hex(id, UK_JOURNAL_ID_LEN - 1);
}

static int random_bytes(uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            UK_LOG_ERR("journal: getrandom: %s", strerror(errno));
            return UK_E_INTERNAL;
        }
        got += (size_t)r;
    }
    return UK_OK;
}

static int64_t now_of(const uk_journal *j)
{
    if (j != NULL && j->clock != NULL)
        return j->clock(j->clock_ctx);
    return (int64_t)time(NULL);
}

/* ---- files ----------------------------------------------------------------------------------- */

static void hook(const uk_journal *j, uk__journal_write_step step, const char *name)
{
    if (j->hook != NULL)
        j->hook(j->hook_ctx, step, name);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * Writes data to a new temporary file ".tmp.<name>.<random>" in dfd, fsyncs and closes it, and
 * returns its name in tmp. Nothing is left behind on error.
 */
static int write_temp(const uk_journal *j, int dfd, const char *name, const char *data, size_t len,
                      char *tmp, size_t tmp_cap)
{
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 8; attempt++) {
        uint8_t rnd[6];
        char hex[sizeof(rnd) * 2 + 1];
        int rc = random_bytes(rnd, sizeof(rnd));
        if (rc != UK_OK)
            return rc;
        uk__journal_to_hex(rnd, sizeof(rnd), hex);
        if ((size_t)snprintf(tmp, tmp_cap, TEMP_PREFIX "%s.%s", name, hex) >= tmp_cap)
            return UK_E_INTERNAL;
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) {
            UK_LOG_ERR("journal: cannot create %s: %s", tmp, strerror(errno));
            return UK_E_IO;
        }
    }
    if (fd < 0) {
        UK_LOG_ERR("journal: no free temporary name for %s", name);
        return UK_E_IO;
    }
    size_t half = len / 2;
    const char *fail = NULL;
    if (fchmod(fd, 0600) != 0)
        fail = "chmod";
    else if (write_all(fd, data, half) != 0)
        fail = "write";
    if (fail == NULL) {
        hook(j, UK__JOURNAL_TEMP_PARTIAL, name);
        if (write_all(fd, data + half, len - half) != 0)
            fail = "write";
    }
    if (fail == NULL) {
        hook(j, UK__JOURNAL_TEMP_WRITTEN, name);
        if (fsync(fd) != 0)
            fail = "fsync";
    }
    if (close(fd) != 0 && fail == NULL)
        fail = "close";
    if (fail != NULL) {
        UK_LOG_ERR("journal: %s of %s failed: %s", fail, tmp, strerror(errno));
        unlinkat(dfd, tmp, 0);
        return UK_E_IO;
    }
    hook(j, UK__JOURNAL_TEMP_SYNCED, name);
    return UK_OK;
}

static int sync_dir(const uk_journal *j, int dfd, const char *name)
{
    if (fsync(dfd) != 0) {
        UK_LOG_ERR("journal: fsync of the directory of %s failed: %s", name, strerror(errno));
        return UK_E_IO;
    }
    hook(j, UK__JOURNAL_DIR_SYNCED, name);
    return UK_OK;
}

/*
 * Writes data as dfd/name atomically: temp, fsync, rename (or, with no_replace, link, which fails
 * when name exists: then *taken is set and nothing changes), fsync dir.
 */
static int write_atomic(const uk_journal *j, int dfd, const char *name, const char *data,
                        size_t len, bool no_replace, bool *taken)
{
    char tmp[NAME_MAX + 1];
    int rc = write_temp(j, dfd, name, data, len, tmp, sizeof(tmp));
    if (rc != UK_OK)
        return rc;
    int r = no_replace ? linkat(dfd, tmp, dfd, name, 0) : renameat(dfd, tmp, dfd, name);
    if (r != 0) {
        int e = errno;
        unlinkat(dfd, tmp, 0);
        if (no_replace && e == EEXIST && taken != NULL) {
            *taken = true;
            return UK_OK;
        }
        UK_LOG_ERR("journal: cannot put %s in place: %s", name, strerror(e));
        return UK_E_IO;
    }
    hook(j, UK__JOURNAL_RENAMED, name);
    if (no_replace)
        unlinkat(dfd, tmp, 0);
    return sync_dir(j, dfd, name);
}

/*
 * Reads a regular file of dfd (never through a symlink) of at most UK_JOURNAL_MAX_FILE bytes into
 * a new NUL-terminated buffer. UK_E_NOT_FOUND when absent; UK_E_INVALID_PARAMS when it is not a
 * regular file or too large (so: corrupt); UK_E_IO on a read error.
 */
static int read_small(int dfd, const char *name, char **out, size_t *out_len)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return UK_E_NOT_FOUND;
        if (errno == ELOOP)
            return UK_E_INVALID_PARAMS;
        UK_LOG_ERR("journal: cannot open %s: %s", name, strerror(errno));
        return UK_E_IO;
    }
    int rc = UK_OK;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        UK_LOG_ERR("journal: cannot stat %s: %s", name, strerror(errno));
        rc = UK_E_IO;
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)UK_JOURNAL_MAX_FILE) {
        UK_LOG_ERR("journal: %s is not a regular file of at most %u bytes", name,
                   UK_JOURNAL_MAX_FILE);
        rc = UK_E_INVALID_PARAMS;
        goto out;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    if ((buf = malloc(cap + 1)) == NULL) {
        rc = UK_E_NO_MEMORY;
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            UK_LOG_ERR("journal: cannot read %s: %s", name, strerror(errno));
            rc = UK_E_IO;
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == cap) { /* grew while we read it */
            rc = UK_E_INVALID_PARAMS;
            goto out;
        }
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

/* Moves dfd/name to name.corrupt (or .corrupt.N, never over an earlier one) and logs it. */
static void move_aside(int dfd, const char *name)
{
    char aside[NAME_MAX + 1];
    for (int n = 0; n < MAX_ASIDE; n++) {
        int w = n == 0 ? snprintf(aside, sizeof(aside), "%s" CORRUPT_SUFFIX, name)
                       : snprintf(aside, sizeof(aside), "%s" CORRUPT_SUFFIX ".%d", name, n);
        if (w < 0 || (size_t)w >= sizeof(aside))
            break;
        struct stat st;
        if (fstatat(dfd, aside, &st, AT_SYMLINK_NOFOLLOW) == 0)
            continue;
        if (renameat(dfd, name, dfd, aside) != 0) {
            UK_LOG_ERR("journal: cannot move the corrupt record %s aside: %s", name,
                       strerror(errno));
            return;
        }
        if (fsync(dfd) != 0)
            UK_LOG_WARN("journal: fsync after moving %s aside: %s", name, strerror(errno));
        UK_LOG_ERR("journal: the renewal record %s is corrupt; moved aside to %s", name, aside);
        return;
    }
    UK_LOG_ERR("journal: the renewal record %s is corrupt and could not be moved aside", name);
}

/*
 * Reads record id (valid) under the lock. A corrupt record is moved aside and reported as
 * UK_E_IO with *corrupt set.
 */
static int read_locked(uk_journal *j, const char *id, uk_renewal_rec **out, bool *corrupt)
{
    char name[UK_JOURNAL_ID_LEN + sizeof(RECORD_SUFFIX)];
    snprintf(name, sizeof(name), "%s" RECORD_SUFFIX, id);
    char *text = NULL;
    size_t len = 0;
    *corrupt = false;
    int rc = read_small(j->rdir, name, &text, &len);
    if (rc == UK_OK)
        rc = uk__journal_parse(text, len, id, out);
    free(text);
    if (rc == UK_E_NOT_FOUND)
        return UK_E_RENEWAL_NOT_FOUND;
    if (rc == UK_E_INVALID_PARAMS) {
        move_aside(j->rdir, name);
        *corrupt = true;
        return UK_E_IO;
    }
    return rc;
}

/* The id of a record file name "<32 hex>.json"; false for any other name. */
static bool record_name(const char *name, char id[UK_JOURNAL_ID_LEN])
{
    if (strlen(name) != UK_JOURNAL_ID_LEN - 1 + strlen(RECORD_SUFFIX) ||
        strcmp(name + UK_JOURNAL_ID_LEN - 1, RECORD_SUFFIX) != 0 ||
        !uk__journal_is_lower_hex(name, UK_JOURNAL_ID_LEN - 1))
        return false;
    memcpy(id, name, UK_JOURNAL_ID_LEN - 1);
    id[UK_JOURNAL_ID_LEN - 1] = '\0';
    return true;
}

static DIR *open_dir_stream(int dfd)
{
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        UK_LOG_ERR("journal: cannot list a directory: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    return d;
}

static int cmp_rec(const void *a, const void *b)
{
    const uk_renewal_rec *x = *(const uk_renewal_rec *const *)a;
    const uk_renewal_rec *y = *(const uk_renewal_rec *const *)b;
    int c = strcmp(x->created, y->created);
    return c != 0 ? c : strcmp(x->id, y->id);
}

static int list_locked(uk_journal *j, bool unfinished_only, uk_renewal_rec ***out, size_t *out_n)
{
    DIR *d = open_dir_stream(j->rdir);
    if (d == NULL)
        return UK_E_IO;
    int rc = UK_OK;
    uk_renewal_rec **recs = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((errno = 0, e = readdir(d)) != NULL) {
        char id[UK_JOURNAL_ID_LEN];
        if (!record_name(e->d_name, id))
            continue;
        uk_renewal_rec *r = NULL;
        bool corrupt = false;
        rc = read_locked(j, id, &r, &corrupt);
        if ((rc == UK_E_IO && corrupt) || rc == UK_E_NOT_SUPPORTED ||
            rc == UK_E_RENEWAL_NOT_FOUND) {
            rc = UK_OK;
            continue;
        }
        if (rc != UK_OK)
            goto out;
        if (unfinished_only && uk_renewal_state_is_final(r->state)) {
            uk_renewal_rec_free(r);
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            uk_renewal_rec **p = realloc(recs, ncap * sizeof(*p));
            if (p == NULL) {
                uk_renewal_rec_free(r);
                rc = UK_E_NO_MEMORY;
                goto out;
            }
            recs = p;
            cap = ncap;
        }
        recs[n++] = r;
    }
    if (errno != 0) {
        UK_LOG_ERR("journal: cannot list the renewals: %s", strerror(errno));
        rc = UK_E_IO;
        goto out;
    }
    if (n > 0)
        qsort(recs, n, sizeof(*recs), cmp_rec);
out:
    closedir(d);
    if (rc != UK_OK) {
        uk_renewal_recs_free(recs, n);
        return rc;
    }
    *out = n > 0 ? recs : NULL;
    if (n == 0)
        free(recs);
    *out_n = n;
    return UK_OK;
}

static int write_record(uk_journal *j, const uk_renewal_rec *r, bool is_new)
{
    char name[UK_JOURNAL_ID_LEN + sizeof(RECORD_SUFFIX)];
    snprintf(name, sizeof(name), "%s" RECORD_SUFFIX, r->id);
    char *text = NULL;
    size_t len = 0;
    int rc = uk__journal_serialize(r, &text, &len);
    if (rc != UK_OK)
        return rc;
    bool taken = false;
    rc = write_atomic(j, j->rdir, name, text, len, is_new, &taken);
    free(text);
    if (rc == UK_OK && taken) {
        UK_LOG_ERR("journal: record %s exists already", r->id);
        rc = UK_E_INTERNAL;
    }
    return rc;
}

/* ---- open / close ---------------------------------------------------------------------------- */

/* mkdir -p, new components 0700. */
static int make_dirs(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
            UK_LOG_ERR("journal: cannot create %s: %s", buf, strerror(errno));
            return UK_E_IO;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    return UK_OK;
}

/* Opens state_dir/name (creating it 0700), refusing a symlink, another owner or open modes. */
static int open_private_dir(int sfd, const char *state_dir, const char *name, int *out)
{
    bool made = mkdirat(sfd, name, 0700) == 0;
    if (!made && errno != EEXIST) {
        UK_LOG_ERR("journal: cannot create %s/%s: %s", state_dir, name, strerror(errno));
        return UK_E_IO;
    }
    int fd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR) {
            UK_LOG_ERR("journal: %s/%s is not a directory (a symlink?); refusing to use it",
                       state_dir, name);
            return UK_E_CONFIG_INVALID;
        }
        UK_LOG_ERR("journal: cannot open %s/%s: %s", state_dir, name, strerror(errno));
        return UK_E_IO;
    }
    struct stat st;
    int rc = UK_OK;
    if (made && fchmod(fd, 0700) != 0) { /* whatever the umask took away */
        UK_LOG_ERR("journal: cannot chmod %s/%s: %s", state_dir, name, strerror(errno));
        rc = UK_E_IO;
    } else if (fstat(fd, &st) != 0) {
        UK_LOG_ERR("journal: cannot stat %s/%s: %s", state_dir, name, strerror(errno));
        rc = UK_E_IO;
    } else if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        UK_LOG_ERR("journal: %s/%s must belong to uid %u and be closed to others (mode 0700); "
                   "it belongs to uid %u with mode %04o",
                   state_dir, name, (unsigned)geteuid(), (unsigned)st.st_uid,
                   (unsigned)(st.st_mode & 07777));
        rc = UK_E_CONFIG_INVALID;
    }
    if (rc != UK_OK) {
        close(fd);
        return rc;
    }
    *out = fd;
    return UK_OK;
}

/* Removes what an interrupted write left: ".tmp.*" files. Only under the journal's lock. */
static void remove_temps(int dfd)
{
    DIR *d = open_dir_stream(dfd);
    if (d == NULL)
        return;
    bool removed = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX)) != 0)
            continue;
        if (unlinkat(dfd, e->d_name, 0) == 0) {
            UK_LOG_NOTICE("journal: removed %s, left by an interrupted write", e->d_name);
            removed = true;
        }
    }
    closedir(d);
    if (removed)
        fsync(dfd);
}

int uk_journal_open(const char *state_dir, uk_journal **out)
{
    if (state_dir == NULL || state_dir[0] != '/' ||
        strlen(state_dir) + sizeof("/" BACKUP_DIR) + NAME_MAX >= PATH_MAX || out == NULL)
        return UK_E_INVALID_PARAMS;
    int rc = make_dirs(state_dir);
    if (rc != UK_OK)
        return rc;
    uk_journal *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return UK_E_NO_MEMORY;
    j->rdir = j->bdir = -1;
    int sfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (sfd < 0 || fstat(sfd, &st) != 0) {
        UK_LOG_ERR("journal: cannot open %s: %s", state_dir, strerror(errno));
        rc = UK_E_IO;
        goto out;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
        UK_LOG_ERR("journal: %s must belong to uid %u and be writable by it alone; it belongs "
                   "to uid %u with mode %04o",
                   state_dir, (unsigned)geteuid(), (unsigned)st.st_uid,
                   (unsigned)(st.st_mode & 07777));
        rc = UK_E_CONFIG_INVALID;
        goto out;
    }
    if ((rc = open_private_dir(sfd, state_dir, RENEWALS_DIR, &j->rdir)) != UK_OK ||
        (rc = open_private_dir(sfd, state_dir, BACKUP_DIR, &j->bdir)) != UK_OK)
        goto out;
    if (flock(j->rdir, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            UK_LOG_ERR("journal: %s/" RENEWALS_DIR " is in use by another process", state_dir);
            rc = UK_E_BUSY;
        } else {
            UK_LOG_ERR("journal: cannot lock %s/" RENEWALS_DIR ": %s", state_dir, strerror(errno));
            rc = UK_E_IO;
        }
        goto out;
    }
    size_t n = strlen(state_dir) + sizeof("/" BACKUP_DIR);
    if ((j->backup_path = malloc(n)) == NULL) {
        rc = UK_E_NO_MEMORY;
        goto out;
    }
    snprintf(j->backup_path, n, "%s/" BACKUP_DIR, state_dir);
    if (pthread_mutex_init(&j->mu, NULL) != 0) {
        rc = UK_E_INTERNAL;
        goto out;
    }
    remove_temps(j->rdir);
    remove_temps(j->bdir);
out:
    if (sfd >= 0)
        close(sfd);
    if (rc != UK_OK) {
        if (j->rdir >= 0)
            close(j->rdir);
        if (j->bdir >= 0)
            close(j->bdir);
        free(j->backup_path);
        free(j);
        return rc;
    }
    *out = j;
    return UK_OK;
}

void uk_journal_close(uk_journal *j)
{
    if (j == NULL)
        return;
    pthread_mutex_destroy(&j->mu);
    close(j->bdir);
    close(j->rdir); /* releases the flock */
    free(j->backup_path);
    free(j);
}

void uk__journal_set_write_hook(uk_journal *j, uk__journal_write_hook fn, void *ctx)
{
    j->hook = fn;
    j->hook_ctx = ctx;
}

void uk__journal_set_clock(uk_journal *j, uk__journal_clock fn, void *ctx)
{
    j->clock = fn;
    j->clock_ctx = ctx;
}

/* ---- records --------------------------------------------------------------------------------- */

/* Whether an unfinished renewal a holds a key location of b on the same token. */
static bool overlaps(const uk_renewal_rec *a, const uk_renewal_rec *b)
{
    return strcmp(a->token_id, b->token_id) == 0 &&
           (strcmp(a->slot, b->slot) == 0 || strcmp(a->staged_slot, b->staged_slot) == 0 ||
            strcmp(a->slot, b->staged_slot) == 0 || strcmp(a->staged_slot, b->slot) == 0);
}

static int new_id(uk_journal *j, char id[UK_JOURNAL_ID_LEN])
{
    for (int attempt = 0; attempt < 4; attempt++) {
        uint8_t rnd[ID_BYTES];
        int rc = random_bytes(rnd, sizeof(rnd));
        if (rc != UK_OK)
            return rc;
        uk__journal_to_hex(rnd, sizeof(rnd), id);
        char name[UK_JOURNAL_ID_LEN + sizeof(RECORD_SUFFIX) + sizeof(CORRUPT_SUFFIX)];
        struct stat st;
        snprintf(name, sizeof(name), "%s" RECORD_SUFFIX, id);
        bool used = fstatat(j->rdir, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
        snprintf(name, sizeof(name), "%s" RECORD_SUFFIX CORRUPT_SUFFIX, id);
        used = used || fstatat(j->rdir, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (!used)
            return UK_OK;
    }
    return UK_E_INTERNAL;
}

int uk_journal_create(uk_journal *j, const uk_renewal_rec *rec_in, uk_renewal_rec **out)
{
    if (j == NULL || rec_in == NULL || out == NULL)
        return UK_E_INVALID_PARAMS;
    if (rec_in->state != UK_RENEWAL_PREPARED)
        return UK_E_RENEWAL_STATE;
    if (rec_in->new_cert_der != NULL || rec_in->old_cert_backup != NULL)
        return UK_E_INVALID_PARAMS;
    int rc = uk__journal_check_fields(rec_in, "new renewal");
    if (rc != UK_OK)
        return rc;

    uk_renewal_rec *r = NULL, **open_recs = NULL;
    size_t n_open = 0;
    pthread_mutex_lock(&j->mu);
    if ((rc = list_locked(j, true, &open_recs, &n_open)) != UK_OK)
        goto out;
    for (size_t i = 0; i < n_open; i++) {
        if (overlaps(open_recs[i], rec_in)) {
            UK_LOG_NOTICE("journal: renewal %s (%s) is in progress for %s slot %s",
                          open_recs[i]->id, uk_renewal_state_name(open_recs[i]->state),
                          open_recs[i]->token_id, open_recs[i]->slot);
            rc = UK_E_RENEWAL_IN_PROGRESS;
            goto out;
        }
    }
    if ((rc = uk__journal_rec_dup(rec_in, &r)) != UK_OK || (rc = new_id(j, r->id)) != UK_OK)
        goto out;
    uk__journal_format_time(now_of(j), false, r->created, sizeof(r->created));
    memcpy(r->updated, r->created, sizeof(r->updated));
    r->revision = 1;
    r->old_cert_sha256[0] = '\0';
    if (r->old_cert_der != NULL &&
        (rc = uk__journal_sha256_hex(r->old_cert_der, r->old_cert_der_len, r->old_cert_sha256)) !=
            UK_OK)
        goto out;
    if ((rc = write_record(j, r, true)) != UK_OK)
        goto out;
    UK_LOG_INFO("journal: renewal %s prepared for %s slot %s (staged in %s)", r->id, r->token_id,
                r->slot, r->staged_slot);
    *out = r;
    r = NULL;
out:
    pthread_mutex_unlock(&j->mu);
    uk_renewal_recs_free(open_recs, n_open);
    uk_renewal_rec_free(r);
    return rc;
}

int uk_journal_get(uk_journal *j, const char *id, uk_renewal_rec **out)
{
    if (j == NULL || out == NULL || !id_ok(id))
        return UK_E_INVALID_PARAMS;
    bool corrupt;
    pthread_mutex_lock(&j->mu);
    int rc = read_locked(j, id, out, &corrupt);
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int uk_journal_list(uk_journal *j, bool unfinished_only, uk_renewal_rec ***recs, size_t *n)
{
    if (j == NULL || recs == NULL || n == NULL)
        return UK_E_INVALID_PARAMS;
    pthread_mutex_lock(&j->mu);
    int rc = list_locked(j, unfinished_only, recs, n);
    pthread_mutex_unlock(&j->mu);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int uk_journal_list_corrupt(uk_journal *j, char ***names, size_t *n)
{
    if (j == NULL || names == NULL || n == NULL)
        return UK_E_INVALID_PARAMS;
    pthread_mutex_lock(&j->mu);
    int rc = UK_OK;
    char **v = NULL;
    size_t count = 0, cap = 0;
    DIR *d = open_dir_stream(j->rdir);
    if (d == NULL) {
        rc = UK_E_IO;
        goto out;
    }
    struct dirent *e;
    const char *mark = RECORD_SUFFIX CORRUPT_SUFFIX;
    while ((e = readdir(d)) != NULL) {
        if (strlen(e->d_name) < UK_JOURNAL_ID_LEN - 1 + strlen(mark) ||
            !uk__journal_is_lower_hex(e->d_name, UK_JOURNAL_ID_LEN - 1) ||
            strncmp(e->d_name + UK_JOURNAL_ID_LEN - 1, mark, strlen(mark)) != 0)
            continue;
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            char **p = realloc(v, ncap * sizeof(*p));
            if (p == NULL) {
                rc = UK_E_NO_MEMORY;
                goto out;
            }
            v = p;
            cap = ncap;
        }
        if ((v[count] = strdup(e->d_name)) == NULL) {
            rc = UK_E_NO_MEMORY;
            goto out;
        }
        count++;
    }
    if (count > 0)
        qsort(v, count, sizeof(*v), cmp_str);
out:
    if (d != NULL)
        closedir(d);
    pthread_mutex_unlock(&j->mu);
    if (rc != UK_OK || count == 0) {
        for (size_t i = 0; i < count; i++)
            free(v[i]);
        free(v);
        v = NULL;
        count = 0;
    }
    if (rc == UK_OK) {
        *names = v;
        *n = count;
    }
    return rc;
}

/* Checks rec against the stored record and writes it; sets rec->updated on success. */
static int update_locked(uk_journal *j, uk_renewal_rec *rec)
{
    uk_renewal_rec *stored = NULL;
    bool corrupt;
    int rc = read_locked(j, rec->id, &stored, &corrupt);
    if (rc == UK_OK)
        rc = uk__journal_check_update(stored, rec);
    if (rc == UK_OK) {
        uk_renewal_rec w = *rec;
        memcpy(w.old_cert_sha256, stored->old_cert_sha256, sizeof(w.old_cert_sha256));
        uk__journal_format_time(now_of(j), false, w.updated, sizeof(w.updated));
        w.revision = stored->revision + 1;
        rc = write_record(j, &w, false);
        if (rc == UK_OK) {
            memcpy(rec->updated, w.updated, sizeof(rec->updated));
            rec->revision = w.revision;
            memcpy(rec->old_cert_sha256, w.old_cert_sha256, sizeof(rec->old_cert_sha256));
            if (stored->state != rec->state)
                UK_LOG_INFO("journal: renewal %s: %s -> %s", rec->id,
                            uk_renewal_state_name(stored->state),
                            uk_renewal_state_name(rec->state));
        }
    }
    uk_renewal_rec_free(stored);
    return rc;
}

int uk_journal_update(uk_journal *j, uk_renewal_rec *rec)
{
    if (j == NULL || rec == NULL || !id_ok(rec->id))
        return UK_E_INVALID_PARAMS;
    pthread_mutex_lock(&j->mu);
    int rc = update_locked(j, rec);
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int uk_journal_finish(uk_journal *j, const char *id, uk_renewal_state final_state)
{
    if (j == NULL || !id_ok(id) || !uk_renewal_state_is_final(final_state))
        return UK_E_INVALID_PARAMS;
    uk_renewal_rec *r = NULL;
    bool corrupt;
    pthread_mutex_lock(&j->mu);
    int rc = read_locked(j, id, &r, &corrupt);
    if (rc == UK_OK && !uk_renewal_transition_ok(r->state, final_state)) {
        UK_LOG_NOTICE("journal: renewal %s: cannot finish as %s from %s", id,
                      uk_renewal_state_name(final_state), uk_renewal_state_name(r->state));
        rc = UK_E_RENEWAL_STATE;
    }
    if (rc == UK_OK)
        rc = uk__journal_add_step_at(r, now_of(j), "finish", uk_renewal_state_name(final_state));
    if (rc == UK_OK) {
        r->state = final_state;
        rc = update_locked(j, r);
    }
    pthread_mutex_unlock(&j->mu);
    uk_renewal_rec_free(r);
    return rc;
}

/* ---- backups --------------------------------------------------------------------------------- */

/* Appends s to out, bytes other than [A-Za-z0-9] as %XX. */
static void escape_part(const char *s, char *out, size_t cap)
{
    size_t o = strlen(out);
    for (const unsigned char *p = (const unsigned char *)s; *p != 0 && o + 4 < cap; p++) {
        unsigned c = *p;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            out[o++] = (char)c;
        } else {
            snprintf(out + o, cap - o, "%%%02X", c);
            o += 3;
        }
    }
    out[o] = '\0';
}

static bool same_file_bytes(int dfd, const char *name, const uint8_t *der, size_t len)
{
    char *text = NULL;
    size_t n = 0;
    if (read_small(dfd, name, &text, &n) != UK_OK)
        return false;
    bool same = uk__journal_bytes_eq((const uint8_t *)text, n, der, len);
    free(text);
    return same;
}

int uk_journal_backup_cert(uk_journal *j, const char *token_serial, const char *slot,
                           const uint8_t *der, size_t len, char **path)
{
    if (j == NULL || path == NULL || token_serial == NULL || slot == NULL || der == NULL ||
        len == 0 || token_serial[0] == '\0' || slot[0] == '\0' ||
        strlen(token_serial) > UK_JOURNAL_MAX_NAME_PART || strlen(slot) > UK_JOURNAL_MAX_NAME_PART)
        return UK_E_INVALID_PARAMS;
    if (len > UK_JOURNAL_MAX_FILE)
        return UK_E_LIMIT_EXCEEDED;
    char sha[UK_JOURNAL_FINGERPRINT_LEN];
    int rc = uk__journal_sha256_hex(der, len, sha);
    if (rc != UK_OK)
        return rc;

    /* Escaped, serial and slot take at most 3 * 32 bytes each; with the time, the digest
     * prefix, the separators, "-99" and ".der" (and ".tmp." + 13 for the temporary file) the
     * name stays within NAME_MAX; base is sized so that the compiler can see that too. */
    char base[NAME_MAX - 16] = "";
    char stamp[24];
    escape_part(token_serial, base, sizeof(base));
    strcat(base, "-");
    escape_part(slot, base, sizeof(base));
    pthread_mutex_lock(&j->mu);
    uk__journal_format_time(now_of(j), true, stamp, sizeof(stamp));
    size_t bl = strlen(base);
    snprintf(base + bl, sizeof(base) - bl, "-%s-%.16s", stamp, sha);

    char tmp[NAME_MAX + 1], name[NAME_MAX + 1];
    bool placed = false;
    snprintf(name, sizeof(name), "%s.der", base);
    rc = write_temp(j, j->bdir, name, (const char *)der, len, tmp, sizeof(tmp));
    bool have_tmp = rc == UK_OK;
    for (int n = 0; rc == UK_OK && !placed && n < MAX_ASIDE; n++) {
        if (n > 0)
            snprintf(name, sizeof(name), "%s-%d.der", base, n);
        if (linkat(j->bdir, tmp, j->bdir, name, 0) == 0) {
            hook(j, UK__JOURNAL_RENAMED, name);
            placed = true;
        } else if (errno != EEXIST) {
            UK_LOG_ERR("journal: cannot put the backup %s in place: %s", name, strerror(errno));
            rc = UK_E_IO;
        } else if (same_file_bytes(j->bdir, name, der, len)) {
            placed = true; /* this very certificate, backed up already */
        }
    }
    if (have_tmp)
        unlinkat(j->bdir, tmp, 0);
    if (rc == UK_OK && !placed) {
        UK_LOG_ERR("journal: every backup name for %s is taken", base);
        rc = UK_E_LIMIT_EXCEEDED;
    }
    if (rc == UK_OK)
        rc = sync_dir(j, j->bdir, name);
    char *full = NULL;
    if (rc == UK_OK) {
        size_t n = strlen(j->backup_path) + 1 + strlen(name) + 1;
        if ((full = malloc(n)) == NULL)
            rc = UK_E_NO_MEMORY;
        else
            snprintf(full, n, "%s/%s", j->backup_path, name);
    }
    pthread_mutex_unlock(&j->mu);
    if (rc == UK_OK) {
        UK_LOG_INFO("journal: certificate of %s slot %s backed up to %s", token_serial, slot, full);
        *path = full;
    }
    return rc;
}
