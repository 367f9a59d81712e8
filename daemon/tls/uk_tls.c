/*
 * uk_tls.c - the local TLS identity: options, the tls/ directory and its files, and the decision
 * to reuse, re-make or remove (see uk_tls.h and docs/security.md, "Local TLS"). OpenSSL work is in
 * uk_tls_x509.c, certutil in uk_tls_nss.c.
 */
#include "uk_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_secret.h"
#include "uk_tls_internal.h"

/* Largest file read back from tls/ (a PEM certificate or key is about 1 KiB). */
#define MAX_PEM_FILE (64u * 1024u)

/*
 * tls/nss-nickname records the nickname of our last successful add, so that a CA added under an
 * older nickname (the hostname changed) is still found and deleted on renewal and removal.
 */
#define NICKNAME_FILE "nss-nickname"

/* ---- small helpers -------------------------------------------------------------------------- */

static int join_path(char *dst, size_t cap, const char *a, const char *b)
{
    int n = snprintf(dst, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap) {
        UK_LOG_ERR("path too long under %.64s...", a);
        return UK_E_CONFIG_INVALID;
    }
    return UK_OK;
}

static int copy_string(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        UK_LOG_ERR("path too long: %.64s...", src);
        return UK_E_CONFIG_INVALID;
    }
    memcpy(dst, src, n + 1);
    return UK_OK;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- options -------------------------------------------------------------------------------- */

struct ctx {
    char state_dir[UK_TLS_PATH_MAX];
    char dir[UK_TLS_PATH_MAX];
    char nssdb[UK_TLS_PATH_MAX]; /* "" when there is none */
    char nickname[UK_TLS_NICKNAME_MAX];
    char host[64]; /* hostname (sanitised) or "uid N", part of names */
    const char *certutil;
    unsigned renew_days;
    unsigned validity_days;
};

static void make_host_tag(char *dst, size_t cap)
{
    char host[256];
    size_t n = 0;

    if (gethostname(host, sizeof(host)) == 0) {
        host[sizeof(host) - 1] = 0;
        for (const char *p = host; *p != 0 && n + 1 < cap; p++) {
            char ch = *p;
            bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';
            dst[n++] = ok ? ch : '_';
        }
    }
    dst[n] = 0;
    if (n == 0)
        snprintf(dst, cap, "uid %u", (unsigned)geteuid());
}

/*
 * The NSS database Chrome and Chromium use: $HOME/.pki/nssdb when it exists, else the XDG location
 * of Chromium 146+. Only existing directories count: we never create a database.
 */
static int find_nssdb(const uk_tls_options *opt, char *dst, size_t cap)
{
    char path[UK_TLS_PATH_MAX];
    int rc;

    dst[0] = 0;
    if (opt->nssdb != NULL) {
        if (opt->nssdb[0] != '/') {
            UK_LOG_ERR("nssdb must be an absolute path");
            return UK_E_CONFIG_INVALID;
        }
        if (is_dir(opt->nssdb))
            return copy_string(dst, cap, opt->nssdb);
        return UK_OK;
    }

    const char *home = opt->home != NULL ? opt->home : getenv("HOME");
    if (home == NULL || home[0] == 0)
        return UK_OK;
    if (home[0] != '/') {
        UK_LOG_WARN("HOME is not an absolute path; not looking for an NSS database");
        return UK_OK;
    }

    rc = join_path(path, sizeof(path), home, ".pki/nssdb");
    if (rc != UK_OK)
        return rc;
    if (is_dir(path))
        return copy_string(dst, cap, path);

    const char *xdg = opt->xdg_data_home;
    if (xdg == NULL && opt->home == NULL)
        xdg = getenv("XDG_DATA_HOME");
    if (xdg != NULL && xdg[0] == '/')
        rc = join_path(path, sizeof(path), xdg, "pki/nssdb");
    else
        rc = join_path(path, sizeof(path), home, ".local/share/pki/nssdb");
    if (rc != UK_OK)
        return rc;
    if (is_dir(path))
        return copy_string(dst, cap, path);
    return UK_OK;
}

static int resolve(const uk_tls_options *opt, struct ctx *c)
{
    int rc;

    memset(c, 0, sizeof(*c));
    if (opt == NULL || opt->state_dir == NULL || opt->state_dir[0] != '/') {
        UK_LOG_ERR("state_dir must be an absolute path");
        return UK_E_CONFIG_INVALID;
    }
    if (opt->validity_days > UK_TLS_VALIDITY_DAYS) {
        UK_LOG_ERR("validity_days %u is above %u", opt->validity_days, UK_TLS_VALIDITY_DAYS);
        return UK_E_CONFIG_INVALID;
    }
    if (opt->renew_before_days > UK_TLS_VALIDITY_DAYS) {
        UK_LOG_ERR("renew_before_days %u is above %u", opt->renew_before_days,
                   UK_TLS_VALIDITY_DAYS);
        return UK_E_CONFIG_INVALID;
    }
    c->validity_days = opt->validity_days != 0 ? opt->validity_days : UK_TLS_VALIDITY_DAYS;
    c->renew_days = opt->renew_before_days != 0 ? opt->renew_before_days : UK_TLS_RENEW_BEFORE_DAYS;
    c->certutil = opt->certutil != NULL && opt->certutil[0] != 0 ? opt->certutil : "certutil";

    rc = copy_string(c->state_dir, sizeof(c->state_dir), opt->state_dir);
    if (rc == UK_OK)
        rc = join_path(c->dir, sizeof(c->dir), opt->state_dir, "tls");
    if (rc == UK_OK)
        rc = find_nssdb(opt, c->nssdb, sizeof(c->nssdb));
    if (rc != UK_OK)
        return rc;

    make_host_tag(c->host, sizeof(c->host));
    snprintf(c->nickname, sizeof(c->nickname), UK__TLS_NICKNAME_PREFIX " (%s)", c->host);
    return UK_OK;
}

/* ---- the tls/ directory --------------------------------------------------------------------- */

/* mkdir -p, new components 0700. */
static int make_dirs(const char *path)
{
    char buf[UK_TLS_PATH_MAX];
    int rc = copy_string(buf, sizeof(buf), path);
    if (rc != UK_OK)
        return rc;

    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char saved = *p;
        *p = 0;
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
            UK_LOG_ERR("cannot create %s: %s", buf, strerror(errno));
            return UK_E_IO;
        }
        *p = saved;
        if (saved == 0)
            break;
    }
    return UK_OK;
}

/*
 * Open STATE_DIR/tls (creating both when create is set) and lock it. The directory must be a real
 * directory (not a symlink) owned by us; with create its mode is put back to 0700. UK_E_NOT_FOUND
 * when it does not exist and create is not set.
 */
static int open_tls_dir(const struct ctx *c, bool create, int lock_op, int *out_fd)
{
    int sfd = -1, tfd = -1;
    int rc = UK_OK;
    struct stat st;

    *out_fd = -1;
    if (create) {
        rc = make_dirs(c->state_dir);
        if (rc != UK_OK)
            return rc;
    }
    sfd = open(c->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sfd < 0) {
        if (errno == ENOENT && !create)
            return UK_E_NOT_FOUND;
        UK_LOG_ERR("cannot open %s: %s", c->state_dir, strerror(errno));
        return UK_E_IO;
    }
    if (create && mkdirat(sfd, "tls", 0700) != 0 && errno != EEXIST) {
        UK_LOG_ERR("cannot create %s: %s", c->dir, strerror(errno));
        rc = UK_E_IO;
        goto out;
    }
    tfd = openat(sfd, "tls", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (tfd < 0) {
        if (errno == ENOENT && !create) {
            rc = UK_E_NOT_FOUND;
        } else if (errno == ELOOP || errno == ENOTDIR) {
            UK_LOG_ERR("%s is not a directory (a symlink?); refusing to use it", c->dir);
            rc = UK_E_TLS_ERROR;
        } else {
            UK_LOG_ERR("cannot open %s: %s", c->dir, strerror(errno));
            rc = UK_E_IO;
        }
        goto out;
    }
    if (fstat(tfd, &st) != 0) {
        UK_LOG_ERR("cannot stat %s: %s", c->dir, strerror(errno));
        rc = UK_E_IO;
        goto out;
    }
    if (st.st_uid != geteuid()) {
        UK_LOG_ERR("%s belongs to uid %u, not to us; refusing to use it", c->dir,
                   (unsigned)st.st_uid);
        rc = UK_E_TLS_ERROR;
        goto out;
    }
    if (create && (st.st_mode & 07777) != 0700) {
        UK_LOG_NOTICE("%s had mode %04o; setting 0700", c->dir, (unsigned)(st.st_mode & 07777));
        if (fchmod(tfd, 0700) != 0) {
            UK_LOG_ERR("cannot chmod %s: %s", c->dir, strerror(errno));
            rc = UK_E_IO;
            goto out;
        }
    }
    while (flock(tfd, lock_op) != 0) {
        if (errno != EINTR) {
            UK_LOG_ERR("cannot lock %s: %s", c->dir, strerror(errno));
            rc = UK_E_IO;
            goto out;
        }
    }
    *out_fd = tfd;
    tfd = -1;
out:
    if (tfd >= 0)
        close(tfd);
    close(sfd);
    return rc;
}

/*
 * Read a small regular file of tls/ (never through a symlink) into a new buffer, which the caller
 * wipes and frees. UK_E_NOT_FOUND when it does not exist.
 */
static int read_file_at(int dfd, const char *name, uint8_t **out, size_t *out_len,
                        struct stat *out_st)
{
    int rc = UK_OK;
    uint8_t *buf = NULL;
    size_t len = 0;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

    *out = NULL;
    *out_len = 0;
    if (fd < 0) {
        if (errno == ENOENT)
            return UK_E_NOT_FOUND;
        UK_LOG_WARN("cannot open %s: %s", name, strerror(errno));
        return UK_E_IO;
    }
    if (fstat(fd, out_st) != 0 || !S_ISREG(out_st->st_mode) ||
        (uint64_t)out_st->st_size > MAX_PEM_FILE) {
        UK_LOG_WARN("%s is not a small regular file", name);
        rc = UK_E_IO;
        goto out;
    }
    buf = malloc((size_t)out_st->st_size + 1);
    if (buf == NULL) {
        rc = UK_E_NO_MEMORY;
        goto out;
    }
    while (len < (size_t)out_st->st_size) {
        ssize_t n = read(fd, buf + len, (size_t)out_st->st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            UK_LOG_WARN("cannot read %s: %s", name, n < 0 ? strerror(errno) : "short file");
            rc = UK_E_IO;
            goto out;
        }
        len += (size_t)n;
    }
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    buf = NULL;
out:
    if (buf != NULL) {
        uk_wipe(buf, (size_t)out_st->st_size + 1);
        free(buf);
    }
    close(fd);
    return rc;
}

/* Write data to tls/name with mode: a temporary file, fsync, rename. The caller fsyncs dfd. */
static int write_file_at(int dfd, const char *name, const void *data, size_t len, mode_t mode)
{
    char tmp[64];
    int rc = UK_OK;
    int fd;

    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    if (unlinkat(dfd, tmp, 0) != 0 && errno != ENOENT) {
        UK_LOG_ERR("cannot remove stale %s: %s", tmp, strerror(errno));
        return UK_E_IO;
    }
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        UK_LOG_ERR("cannot create %s: %s", tmp, strerror(errno));
        return UK_E_IO;
    }
    if (fchmod(fd, mode) != 0) { /* the umask may have taken bits away from 0644 */
        UK_LOG_ERR("cannot chmod %s: %s", tmp, strerror(errno));
        rc = UK_E_IO;
        goto out;
    }
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, (const uint8_t *)data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            UK_LOG_ERR("cannot write %s: %s", tmp, n < 0 ? strerror(errno) : "no progress");
            rc = UK_E_IO;
            goto out;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0) {
        UK_LOG_ERR("cannot fsync %s: %s", tmp, strerror(errno));
        rc = UK_E_IO;
        goto out;
    }
out:
    if (close(fd) != 0 && rc == UK_OK) {
        UK_LOG_ERR("cannot close %s: %s", tmp, strerror(errno));
        rc = UK_E_IO;
    }
    if (rc == UK_OK && renameat(dfd, tmp, dfd, name) != 0) {
        UK_LOG_ERR("cannot rename %s to %s: %s", tmp, name, strerror(errno));
        rc = UK_E_IO;
    }
    if (rc != UK_OK)
        unlinkat(dfd, tmp, 0);
    return rc;
}

/* ---- the set on disk ------------------------------------------------------------------------ */

/*
 * Load ca.pem, server.pem and server.key. UK_E_NOT_FOUND when a file is missing, UK_E_CERT_INVALID
 * when one does not parse; the caller re-makes the set in both cases.
 */
static int set_load(int tfd, uk__tls_set *s)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    struct stat st;
    int rc;

    memset(s, 0, sizeof(*s));
    rc = read_file_at(tfd, UK__TLS_CA_FILE, &buf, &len, &st);
    if (rc == UK_OK)
        rc = uk__tls_parse_cert(buf, len, &s->ca);
    free(buf);
    buf = NULL;
    if (rc != UK_OK)
        goto out;

    rc = read_file_at(tfd, UK__TLS_CERT_FILE, &buf, &len, &st);
    if (rc == UK_OK)
        rc = uk__tls_parse_cert(buf, len, &s->leaf);
    free(buf);
    buf = NULL;
    if (rc != UK_OK)
        goto out;

    rc = read_file_at(tfd, UK__TLS_KEY_FILE, &buf, &len, &st);
    if (rc == UK_OK) {
        s->key_private_mode = st.st_uid == geteuid() && (st.st_mode & 077) == 0;
        rc = uk__tls_parse_key(buf, len, &s->key);
        uk_wipe(buf, len);
        free(buf);
        buf = NULL;
    }
out:
    if (rc != UK_OK)
        uk__tls_set_close(s);
    return rc;
}

/* Write the set: the key first, the CA last; then the directory entry is made durable. */
static int set_write(int tfd, const uk__tls_set *s)
{
    uk_secret *key = NULL;
    char *pem = NULL;
    size_t len = 0;
    int rc;

    rc = uk__tls_key_pem(s->key, &key);
    if (rc == UK_OK)
        rc = write_file_at(tfd, UK__TLS_KEY_FILE, uk_secret_get0_data(key), uk_secret_get0_len(key),
                           0600);
    uk_secret_free(key);
    if (rc == UK_OK)
        rc = uk__tls_cert_pem(s->leaf, &pem, &len);
    if (rc == UK_OK)
        rc = write_file_at(tfd, UK__TLS_CERT_FILE, pem, len, 0644);
    free(pem);
    pem = NULL;
    if (rc == UK_OK)
        rc = uk__tls_cert_pem(s->ca, &pem, &len);
    if (rc == UK_OK)
        rc = write_file_at(tfd, UK__TLS_CA_FILE, pem, len, 0644);
    free(pem);
    if (rc == UK_OK && fsync(tfd) != 0) {
        UK_LOG_ERR("cannot fsync the tls directory: %s", strerror(errno));
        rc = UK_E_IO;
    }
    return rc;
}

static void nss_of(const struct ctx *c, uk__tls_nss *n)
{
    n->certutil = c->certutil;
    n->db = c->nssdb;
    n->nickname = c->nickname;
}

/* The nickname recorded in tls/nss-nickname; "" when there is none or it is not one of ours. */
static void recorded_nickname(int tfd, char *dst, size_t cap)
{
    static const char prefix[] = UK__TLS_NICKNAME_PREFIX " (";
    uint8_t *buf = NULL;
    size_t len = 0;
    struct stat st;

    dst[0] = 0;
    if (read_file_at(tfd, NICKNAME_FILE, &buf, &len, &st) != UK_OK)
        return;
    while (len > 0 && buf[len - 1] == '\n')
        len--;
    bool ok = len < cap && len > sizeof(prefix) - 1 &&
              memcmp(buf, prefix, sizeof(prefix) - 1) == 0 && buf[len - 1] == ')';
    for (size_t i = 0; ok && i < len; i++)
        ok = buf[i] >= 0x20 && buf[i] != 0x7f;
    if (ok) {
        memcpy(dst, buf, len);
        dst[len] = 0;
    }
    free(buf);
}

/* Delete the CA under a nickname we used before, when it is not the current one. */
static void delete_old_nickname(const struct ctx *c, const char *old)
{
    if (old[0] == 0 || strcmp(old, c->nickname) == 0)
        return;
    uk__tls_nss n;
    nss_of(c, &n);
    n.nickname = old;
    if (uk__tls_nss_delete(&n) == UK_TLS_TRUST_ABSENT)
        UK_LOG_NOTICE("no certificate left under our former nickname '%s'", old);
}

/* After our CA is in the database: forget a former nickname, record the current one. */
static void record_nickname(const struct ctx *c, int tfd)
{
    char old[UK_TLS_NICKNAME_MAX];
    char line[UK_TLS_NICKNAME_MAX + 1];

    recorded_nickname(tfd, old, sizeof(old));
    if (strcmp(old, c->nickname) == 0)
        return;
    delete_old_nickname(c, old);
    int n = snprintf(line, sizeof(line), "%s\n", c->nickname);
    if (n > 0 && (size_t)n < sizeof(line) &&
        write_file_at(tfd, NICKNAME_FILE, line, (size_t)n, 0644) != UK_OK)
        UK_LOG_WARN("could not record the NSS nickname; a later hostname change may leave '%s' "
                    "behind",
                    c->nickname);
}

/* ---- public API ----------------------------------------------------------------------------- */

const char *uk_tls_trust_name(uk_tls_trust t)
{
    switch (t) {
    case UK_TLS_TRUST_NO_DB:
        return "no-db";
    case UK_TLS_TRUST_PRESENT:
        return "present";
    case UK_TLS_TRUST_ADDED:
        return "added";
    case UK_TLS_TRUST_ABSENT:
        return "absent";
    case UK_TLS_TRUST_NO_TOOL:
        return "no-certutil";
    case UK_TLS_TRUST_FAILED:
        return "failed";
    }
    return "unknown";
}

static int fill_paths(const struct ctx *c, uk_tls_paths *out)
{
    int rc = copy_string(out->dir, sizeof(out->dir), c->dir);
    if (rc == UK_OK)
        rc = join_path(out->cert, sizeof(out->cert), c->dir, UK__TLS_CERT_FILE);
    if (rc == UK_OK)
        rc = join_path(out->key, sizeof(out->key), c->dir, UK__TLS_KEY_FILE);
    if (rc == UK_OK)
        rc = join_path(out->ca, sizeof(out->ca), c->dir, UK__TLS_CA_FILE);
    if (rc == UK_OK)
        rc = copy_string(out->nssdb, sizeof(out->nssdb), c->nssdb);
    if (rc == UK_OK)
        rc = copy_string(out->nickname, sizeof(out->nickname), c->nickname);
    return rc;
}

int uk_tls_ensure(const uk_tls_options *opt, uk_tls_paths *out)
{
    struct ctx c;
    uk__tls_set set;
    int tfd = -1;
    bool usable = false;
    const char *why = NULL;
    int rc;

    memset(&set, 0, sizeof(set));
    memset(out, 0, sizeof(*out));
    ERR_clear_error();
    rc = resolve(opt, &c);
    if (rc == UK_OK)
        rc = fill_paths(&c, out);
    if (rc == UK_OK)
        rc = open_tls_dir(&c, true, LOCK_EX, &tfd);
    if (rc != UK_OK)
        goto out;

    rc = set_load(tfd, &set);
    if (rc == UK_OK) {
        rc = uk__tls_set_usable(&set, time(NULL), c.renew_days, &usable, &why);
        if (rc != UK_OK)
            goto out;
    } else if (rc == UK_E_NOT_FOUND || rc == UK_E_CERT_INVALID || rc == UK_E_IO) {
        why = rc == UK_E_NOT_FOUND ? "a file is missing" : "a file is damaged";
        rc = UK_OK;
    } else {
        goto out;
    }

    if (!usable) {
        UK_LOG_NOTICE("making a new local CA and server certificate in %s: %s", c.dir, why);
        uk__tls_set_close(&set);
        rc = uk__tls_mint(&set, time(NULL), c.validity_days, c.host);
        if (rc == UK_OK)
            rc = set_write(tfd, &set);
        if (rc != UK_OK)
            goto out;
        out->created = true;
    }
    out->not_after = uk__tls_time(X509_get0_notAfter(set.leaf));

    out->trust = UK_TLS_TRUST_NO_DB;
    if (c.nssdb[0] != 0) {
        uk__tls_nss n;
        nss_of(&c, &n);
        uk_tls_trust t = out->created ? UK_TLS_TRUST_ABSENT : uk__tls_nss_lookup(&n, set.ca);
        if (t == UK_TLS_TRUST_ABSENT || t == UK_TLS_TRUST_FAILED)
            t = uk__tls_nss_add(&n, out->ca);
        if (t == UK_TLS_TRUST_ADDED || t == UK_TLS_TRUST_PRESENT)
            record_nickname(&c, tfd);
        out->trust = t;
    }
out:
    uk__tls_set_close(&set);
    if (tfd >= 0)
        close(tfd); /* releases the lock */
    if (rc != UK_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}

int uk_tls_remove(const uk_tls_options *opt)
{
    static const char *const names[] = {UK__TLS_KEY_FILE,
                                        UK__TLS_CERT_FILE,
                                        UK__TLS_CA_FILE,
                                        NICKNAME_FILE,
                                        "." UK__TLS_KEY_FILE ".tmp",
                                        "." UK__TLS_CERT_FILE ".tmp",
                                        "." UK__TLS_CA_FILE ".tmp",
                                        "." NICKNAME_FILE ".tmp"};
    struct ctx c;
    char old[UK_TLS_NICKNAME_MAX];
    int tfd = -1;
    int rc;

    ERR_clear_error();
    rc = resolve(opt, &c);
    if (rc != UK_OK)
        return rc;
    rc = open_tls_dir(&c, false, LOCK_EX, &tfd);
    if (rc != UK_OK && rc != UK_E_NOT_FOUND)
        return rc;

    old[0] = 0;
    if (tfd >= 0)
        recorded_nickname(tfd, old, sizeof(old));
    if (c.nssdb[0] != 0) {
        uk__tls_nss n;
        nss_of(&c, &n);
        if (uk__tls_nss_delete(&n) == UK_TLS_TRUST_FAILED)
            UK_LOG_WARN("could not remove '%s' from the NSS database %s", c.nickname, c.nssdb);
        delete_old_nickname(&c, old);
    }
    if (tfd < 0)
        return UK_OK;

    rc = UK_OK;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (unlinkat(tfd, names[i], 0) != 0 && errno != ENOENT) {
            UK_LOG_ERR("cannot remove %s/%s: %s", c.dir, names[i], strerror(errno));
            rc = UK_E_IO;
        }
    }
    close(tfd);
    if (rc == UK_OK && rmdir(c.dir) != 0 && errno != ENOENT) {
        if (errno == ENOTEMPTY || errno == EEXIST) {
            UK_LOG_NOTICE("%s holds other files; leaving the directory", c.dir);
        } else {
            UK_LOG_ERR("cannot remove %s: %s", c.dir, strerror(errno));
            rc = UK_E_IO;
        }
    }
    if (rc == UK_OK)
        UK_LOG_NOTICE("removed the local TLS files in %s", c.dir);
    return rc;
}

int uk_tls_info(const uk_tls_options *opt, uk_tls_status *out)
{
    struct ctx c;
    uk__tls_set set;
    int tfd = -1;
    bool usable = false;
    const char *why = NULL;
    int rc;

    memset(&set, 0, sizeof(set));
    memset(out, 0, sizeof(*out));
    ERR_clear_error();
    rc = resolve(opt, &c);
    if (rc == UK_OK)
        rc = copy_string(out->nssdb, sizeof(out->nssdb), c.nssdb);
    if (rc == UK_OK)
        rc = copy_string(out->nickname, sizeof(out->nickname), c.nickname);
    if (rc != UK_OK)
        goto out;
    out->needs_renewal = true;
    out->trust = c.nssdb[0] != 0 ? UK_TLS_TRUST_ABSENT : UK_TLS_TRUST_NO_DB;

    rc = open_tls_dir(&c, false, LOCK_SH, &tfd);
    if (rc == UK_OK)
        rc = set_load(tfd, &set);
    if (rc == UK_E_NOT_FOUND || rc == UK_E_CERT_INVALID || rc == UK_E_IO) {
        rc = UK_OK; /* nothing usable there: present stays false */
        goto out;
    }
    if (rc != UK_OK)
        goto out;

    time_t now = time(NULL);
    out->not_after = uk__tls_time(X509_get0_notAfter(set.leaf));
    /* Present: usable right now (a zero window); needs renewal: not usable over the window. */
    rc = uk__tls_set_usable(&set, now, 0, &out->present, &why);
    if (rc == UK_OK)
        rc = uk__tls_set_usable(&set, now, c.renew_days, &usable, &why);
    if (rc != UK_OK)
        goto out;
    out->needs_renewal = !usable;

    if (c.nssdb[0] != 0) {
        uk__tls_nss n;
        nss_of(&c, &n);
        out->trust = uk__tls_nss_lookup(&n, set.ca);
    }
out:
    uk__tls_set_close(&set);
    if (tfd >= 0)
        close(tfd);
    if (rc != UK_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}
