/* The soft SKF token's files: DIR/<device>.dev, DIR/control and the lock DIR/.lock.
 *
 * A device file is text, one record per line; names, PINs and DER are hex ("-" = empty):
 *
 *   ukskf-device 1
 *   present 0|1 EPOCH
 *   info HEX(label) HEX(serial)
 *   app HEX(name) HEX(admin PIN) MAX LEFT HEX(user PIN) MAX LEFT USER_DEFAULT
 *   container HEX(name)              (belongs to the app above)
 *   key sign|enc HEX(PKCS#8 DER)     (belong to the container above)
 *   cert sign|enc HEX(DER)
 *
 * Anything else is refused (-EINVAL): a test token that half-reads its state would hide bugs. */
#include "skf_core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static pthread_mutex_t state_mutex = PTHREAD_MUTEX_INITIALIZER;

const char *skf_dir(void)
{
    const char *d = getenv(SKF_ENV_DIR);
    return d != NULL && d[0] != '\0' ? d : NULL;
}

int skf_lock_take(const char *dir, skf_lock *l)
{
    char path[4096];
    l->fd = -1;
    if (snprintf(path, sizeof path, "%s/.lock", dir) >= (int)sizeof path)
        return -ENAMETOOLONG;
    pthread_mutex_lock(&state_mutex);
    /* flock excludes other processes; the mutex other threads of ours (flock on two
     * descriptors of one process would exclude too, but the mutex also orders the controls). */
    l->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (l->fd < 0 || flock(l->fd, LOCK_EX) != 0) {
        int e = errno;
        if (l->fd >= 0)
            close(l->fd);
        l->fd = -1;
        pthread_mutex_unlock(&state_mutex);
        return -e;
    }
    return 0;
}

void skf_lock_drop(skf_lock *l)
{
    if (l->fd < 0)
        return;
    close(l->fd); /* releases the flock */
    l->fd = -1;
    pthread_mutex_unlock(&state_mutex);
}

bool skf_dev_name_ok(const char *name)
{
    size_t n = strnlen(name, SKF_NAME_MAX);
    if (n == 0 || n >= SKF_NAME_MAX || name[0] == '.')
        return false;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int dev_path(char *path, size_t size, const char *dir, const char *name)
{
    if (!skf_dev_name_ok(name))
        return -EINVAL;
    return snprintf(path, size, "%s/%s.dev", dir, name) >= (int)size ? -ENAMETOOLONG : 0;
}

/* ---- blobs ---- */

int skf_blob_set(skf_blob *b, const void *p, size_t n)
{
    uint8_t *q = NULL;
    if (n > 0) {
        q = OPENSSL_malloc(n);
        if (q == NULL)
            return -ENOMEM;
        memcpy(q, p, n);
    }
    skf_blob_clear(b);
    b->p = q;
    b->n = n;
    return 0;
}

void skf_blob_move(skf_blob *dst, skf_blob *src)
{
    skf_blob_clear(dst);
    *dst = *src;
    src->p = NULL;
    src->n = 0;
}

void skf_blob_clear(skf_blob *b)
{
    OPENSSL_clear_free(b->p, b->n);
    b->p = NULL;
    b->n = 0;
}

static void container_clear(skf_container *c)
{
    for (int i = 0; i < 2; i++) {
        skf_blob_clear(&c->key[i]);
        skf_blob_clear(&c->cert[i]);
    }
}

void skf_dev_clear(skf_dev *d)
{
    for (size_t i = 0; i < d->napps; i++) {
        for (size_t j = 0; j < d->app[i].ncont; j++)
            container_clear(&d->app[i].cont[j]);
        for (size_t j = 0; j < d->app[i].nfiles; j++)
            skf_blob_clear(&d->app[i].file[j].data);
    }
    OPENSSL_cleanse(d, sizeof *d);
}

skf_app *skf_dev_find_app(skf_dev *d, const char *name)
{
    for (size_t i = 0; i < d->napps; i++)
        if (strncmp(d->app[i].name, name, SKF_NAME_MAX) == 0)
            return &d->app[i];
    return NULL;
}

skf_container *skf_app_find_container(skf_app *a, const char *name)
{
    for (size_t i = 0; i < a->ncont; i++)
        if (strncmp(a->cont[i].name, name, SKF_NAME_MAX) == 0)
            return &a->cont[i];
    return NULL;
}

skf_file *skf_app_find_file(skf_app *a, const char *name)
{
    for (size_t i = 0; i < a->nfiles; i++)
        if (strncmp(a->file[i].name, name, SKF_FILE_NAME_MAX) == 0)
            return &a->file[i];
    return NULL;
}

void skf_app_remove_file(skf_app *a, skf_file *f)
{
    size_t i = (size_t)(f - a->file);
    skf_blob_clear(&f->data);
    memmove(&a->file[i], &a->file[i + 1], (a->nfiles - i - 1) * sizeof a->file[0]);
    a->nfiles--;
    memset(&a->file[a->nfiles], 0, sizeof a->file[0]);
}

void skf_app_remove_container(skf_app *a, skf_container *c)
{
    size_t i = (size_t)(c - a->cont);
    container_clear(c);
    memmove(&a->cont[i], &a->cont[i + 1], (a->ncont - i - 1) * sizeof a->cont[0]);
    a->ncont--;
    memset(&a->cont[a->ncont], 0, sizeof a->cont[0]);
}

/* ---- text encoding ---- */

static int put_hex(FILE *f, const void *p, size_t n)
{
    if (n == 0)
        return fputs(" -", f) < 0 ? -EIO : 0;
    size_t len = 2 * n + 1;
    char *s = OPENSSL_malloc(len);
    if (s == NULL)
        return -ENOMEM;
    int rc = OPENSSL_buf2hexstr_ex(s, len, NULL, p, n, '\0') && fprintf(f, " %s", s) > 0 ? 0 : -EIO;
    OPENSSL_clear_free(s, len);
    return rc;
}

static int put_str(FILE *f, const char *s)
{
    return put_hex(f, s, strlen(s));
}

static int get_hex(const char *s, skf_blob *b)
{
    skf_blob_clear(b);
    if (strcmp(s, "-") == 0)
        return 0;
    size_t len = strlen(s) / 2 + 1, n = 0;
    uint8_t *p = OPENSSL_malloc(len);
    if (p == NULL)
        return -ENOMEM;
    if (!OPENSSL_hexstr2buf_ex(p, len, &n, s, '\0') || n == 0) {
        ERR_clear_error();
        OPENSSL_free(p);
        return -EINVAL;
    }
    b->p = p;
    b->n = n;
    return 0;
}

/* A hex string into a C string of at most size - 1 characters without NULs. */
static int get_str(const char *s, char *out, size_t size)
{
    skf_blob b = {0};
    int rc = get_hex(s, &b);
    if (rc == 0 && (b.n >= size || (b.n > 0 && memchr(b.p, 0, b.n) != NULL)))
        rc = -EINVAL;
    if (rc == 0) {
        if (b.n > 0)
            memcpy(out, b.p, b.n);
        out[b.n] = '\0';
    }
    skf_blob_clear(&b);
    return rc;
}

static int write_dev(FILE *f, const skf_dev *d)
{
    int rc = fprintf(f, "ukskf-device 1\npresent %d %u\ninfo", d->present ? 1 : 0, d->epoch) > 0
                 ? 0
                 : -EIO;
    if (rc == 0)
        rc = put_str(f, d->label);
    if (rc == 0)
        rc = put_str(f, d->serial);
    for (size_t i = 0; rc == 0 && i < d->napps; i++) {
        const skf_app *a = &d->app[i];
        rc = fputs("\napp", f) >= 0 ? put_str(f, a->name) : -EIO;
        for (int t = SKF_PIN_ADMIN; rc == 0 && t <= SKF_PIN_USER; t++) {
            rc = put_str(f, a->pin[t]);
            if (rc == 0 && fprintf(f, " %u %u", a->max[t], a->left[t]) < 0)
                rc = -EIO;
        }
        if (rc == 0 && fprintf(f, " %d", a->user_default ? 1 : 0) < 0)
            rc = -EIO;
        for (size_t j = 0; rc == 0 && j < a->nfiles; j++) {
            const skf_file *fl = &a->file[j];
            rc = fputs("\nfile", f) >= 0 ? put_str(f, fl->name) : -EIO;
            if (rc == 0 && fprintf(f, " %u %u", fl->read_rights, fl->write_rights) < 0)
                rc = -EIO;
            if (rc == 0)
                rc = put_hex(f, fl->data.p, fl->data.n);
        }
        for (size_t j = 0; rc == 0 && j < a->ncont; j++) {
            const skf_container *c = &a->cont[j];
            rc = fputs("\ncontainer", f) >= 0 ? put_str(f, c->name) : -EIO;
            for (int k = 0; rc == 0 && k < 4; k++) {
                const skf_blob *b = k < 2 ? &c->key[k] : &c->cert[k - 2];
                if (b->n == 0)
                    continue;
                if (fprintf(f, "\n%s %s", k < 2 ? "key" : "cert", k % 2 == 0 ? "sign" : "enc") < 0)
                    rc = -EIO;
                else
                    rc = put_hex(f, b->p, b->n);
            }
        }
    }
    if (rc == 0 && fputc('\n', f) == EOF)
        rc = -EIO;
    return rc;
}

/* Writes the text made by fill to path atomically: temp file, fsync, rename, fsync of dir. */
static int write_atomic(const char *dir, const char *path, int (*fill)(FILE *, const void *),
                        const void *arg)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(tmp);
        return -ENOMEM;
    }
    int rc = fill(f, arg);
    if (rc == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -EIO;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int fill_dev(FILE *f, const void *arg)
{
    return write_dev(f, arg);
}

int skf_dev_save(const char *dir, const skf_dev *d)
{
    char path[4096];
    int rc = dev_path(path, sizeof path, dir, d->name);
    return rc != 0 ? rc : write_atomic(dir, path, fill_dev, d);
}

/* Splits line into at most max space-separated words (in place). */
static size_t split(char *line, char **w, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(line, " \n", &save); t != NULL;
         t = strtok_r(NULL, " \n", &save)) {
        if (n == max)
            return max + 1;
        w[n++] = t;
    }
    return n;
}

static int get_uint(const char *s, unsigned max, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

static int parse_app(skf_dev *d, char **w)
{
    if (d->napps == SKF_MAX_APPS)
        return -EINVAL;
    skf_app *a = &d->app[d->napps++];
    unsigned def = 0;
    int rc = get_str(w[1], a->name, sizeof a->name);
    for (int t = SKF_PIN_ADMIN; rc == 0 && t <= SKF_PIN_USER; t++) {
        rc = get_str(w[2 + 3 * t], a->pin[t], sizeof a->pin[t]);
        if (rc == 0)
            rc = get_uint(w[3 + 3 * t], 255, &a->max[t]);
        if (rc == 0)
            rc = get_uint(w[4 + 3 * t], a->max[t], &a->left[t]);
    }
    if (rc == 0)
        rc = get_uint(w[8], 1, &def);
    a->user_default = def == 1;
    return rc;
}

static int parse_line(skf_dev *d, char *line, bool *header)
{
    char *w[10];
    size_t n = split(line, w, 9);
    if (n == 0)
        return 0;
    if (!*header) {
        *header = true;
        return n == 2 && strcmp(w[0], "ukskf-device") == 0 && strcmp(w[1], "1") == 0 ? 0 : -EINVAL;
    }
    skf_app *a = d->napps > 0 ? &d->app[d->napps - 1] : NULL;
    skf_container *c = a != NULL && a->ncont > 0 ? &a->cont[a->ncont - 1] : NULL;
    if (strcmp(w[0], "present") == 0 && n == 3) {
        unsigned p = 0;
        int rc = get_uint(w[1], 1, &p);
        d->present = p == 1;
        return rc != 0 ? rc : get_uint(w[2], UINT32_MAX, &d->epoch);
    }
    if (strcmp(w[0], "info") == 0 && n == 3) {
        int rc = get_str(w[1], d->label, sizeof d->label);
        return rc != 0 ? rc : get_str(w[2], d->serial, sizeof d->serial);
    }
    if (strcmp(w[0], "app") == 0 && n == 9)
        return parse_app(d, w);
    if (strcmp(w[0], "file") == 0 && n == 5 && a != NULL) {
        if (a->nfiles == SKF_MAX_FILES)
            return -EINVAL;
        skf_file *fl = &a->file[a->nfiles++];
        int rc = get_str(w[1], fl->name, sizeof fl->name);
        if (rc == 0)
            rc = get_uint(w[2], 0xFF, &fl->read_rights);
        if (rc == 0)
            rc = get_uint(w[3], 0xFF, &fl->write_rights);
        if (rc == 0)
            rc = get_hex(w[4], &fl->data);
        return rc == 0 && (fl->data.n == 0 || fl->data.n > SKF_FILE_MAX) ? -EINVAL : rc;
    }
    if (strcmp(w[0], "container") == 0 && n == 2 && a != NULL) {
        if (a->ncont == SKF_MAX_CONTAINERS)
            return -EINVAL;
        return get_str(w[1], a->cont[a->ncont++].name, SKF_NAME_MAX);
    }
    bool key = strcmp(w[0], "key") == 0, cert = strcmp(w[0], "cert") == 0;
    if ((key || cert) && n == 3 && c != NULL) {
        int which = strcmp(w[1], "sign") == 0  ? SKF_KEY_SIGN
                    : strcmp(w[1], "enc") == 0 ? SKF_KEY_ENC
                                               : -1;
        if (which < 0)
            return -EINVAL;
        return get_hex(w[2], key ? &c->key[which] : &c->cert[which]);
    }
    return -EINVAL;
}

int skf_dev_load(const char *dir, const char *name, skf_dev *d)
{
    char path[4096];
    memset(d, 0, sizeof *d);
    int rc = dev_path(path, sizeof path, dir, name);
    if (rc != 0)
        return rc;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    snprintf(d->name, sizeof d->name, "%s", name);
    char *line = NULL;
    size_t cap = 0;
    bool header = false;
    while (rc == 0 && getline(&line, &cap, f) > 0)
        rc = parse_line(d, line, &header);
    if (rc == 0 && (ferror(f) || !header))
        rc = -EINVAL;
    if (line != NULL)
        OPENSSL_clear_free(line, cap);
    fclose(f);
    if (rc != 0)
        skf_dev_clear(d);
    return rc;
}

int skf_dev_set_present(const char *dir, const char *name, bool present)
{
    skf_lock l;
    skf_dev d;
    int rc = skf_lock_take(dir, &l);
    if (rc != 0)
        return rc;
    if ((rc = skf_dev_load(dir, name, &d)) == 0) {
        if (present && !d.present)
            d.epoch++; /* a new insertion: connections from before stay dead */
        d.present = present;
        rc = skf_dev_save(dir, &d);
        skf_dev_clear(&d);
    }
    skf_lock_drop(&l);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void skf_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int skf_dev_list(const char *dir, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    DIR *dh = opendir(dir);
    if (dh == NULL)
        return -errno;
    char **v = NULL;
    size_t count = 0;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(dh)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || strcmp(e->d_name + len - 4, ".dev") != 0)
            continue;
        char *name = strndup(e->d_name, len - 4);
        char **nv = name != NULL ? realloc(v, (count + 1) * sizeof *v) : NULL;
        if (nv == NULL) {
            free(name);
            rc = -ENOMEM;
            break;
        }
        v = nv;
        if (skf_dev_name_ok(name))
            v[count++] = name;
        else
            free(name);
    }
    closedir(dh);
    if (rc != 0) {
        skf_names_free(v, count);
        return rc;
    }
    if (count > 1)
        qsort(v, count, sizeof *v, cmp_names);
    *names = v;
    *n = count;
    return 0;
}

/* ---- controls ---- */

int skf_ctl_parse(skf_ctl *c, char *line)
{
    char *w[6], *end = NULL;
    size_t n = split(line, w, 5);
    if (n == 0)
        return 0;
    if (strcmp(w[0], "fail-after") == 0 && n >= 3) {
        errno = 0;
        long after = strtol(w[1], &end, 10);
        if (*end != '\0' || after < 0 || errno != 0)
            return -EINVAL;
        unsigned long rv = strtoul(w[2], &end, 16);
        if (*end != '\0' || rv == 0 || rv > UINT32_MAX || errno != 0)
            return -EINVAL;
        bool executed = false, remove = false;
        for (size_t i = 3; i < n; i++) {
            if (strcmp(w[i], "executed") == 0)
                executed = true;
            else if (strcmp(w[i], "remove") == 0)
                remove = true;
            else
                return -EINVAL;
        }
        c->fail_after = after;
        c->fail_rv = (uint32_t)rv;
        c->fail_executed = executed;
        c->fail_remove = remove;
        return 0;
    }
    if (n == 2 && (strcmp(w[0], "latency") == 0 || strcmp(w[0], "calls") == 0)) {
        errno = 0;
        unsigned long v = strtoul(w[1], &end, 10);
        if (*end != '\0' || w[1][0] == '-' || errno != 0)
            return -EINVAL;
        if (w[0][0] == 'l' && v > 10000000)
            return -EINVAL; /* 10 s a call: surely a typo */
        *(w[0][0] == 'l' ? &c->latency_us : &c->calls) = v;
        return 0;
    }
    return -EINVAL;
}

int skf_ctl_load(const char *dir, skf_ctl *c)
{
    char path[4096];
    memset(c, 0, sizeof *c);
    c->fail_after = -1;
    if (snprintf(path, sizeof path, "%s/control", dir) >= (int)sizeof path)
        return -ENAMETOOLONG;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return errno == ENOENT ? 0 : -errno;
    char line[256];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL)
        rc = skf_ctl_parse(c, line);
    fclose(f);
    return rc;
}

static int fill_ctl(FILE *f, const void *arg)
{
    const skf_ctl *c = arg;
    int err = 0;
    if (c->fail_after >= 0)
        err |= fprintf(f, "fail-after %ld %08x%s%s\n", c->fail_after, (unsigned)c->fail_rv,
                       c->fail_executed ? " executed" : "", c->fail_remove ? " remove" : "") < 0;
    if (c->latency_us > 0)
        err |= fprintf(f, "latency %lu\n", c->latency_us) < 0;
    err |= fprintf(f, "calls %lu\n", c->calls) < 0;
    return err ? -EIO : 0;
}

int skf_ctl_save(const char *dir, const skf_ctl *c)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/control", dir) >= (int)sizeof path)
        return -ENAMETOOLONG;
    return write_atomic(dir, path, fill_ctl, c);
}

/* ---- provisioning ---- */

static int pin_ok(const char *pin)
{
    size_t n = pin != NULL ? strnlen(pin, SKF_PIN_MAX + 1) : 0;
    return n >= SKF_PIN_MIN && n <= SKF_PIN_MAX ? 0 : -EINVAL;
}

static int provision_pair(skf_container *c, int which, const uint8_t *key, size_t key_len,
                          const uint8_t *cert, size_t cert_len)
{
    int rc = 0;
    if (key != NULL)
        rc = skfc_key_normalize(key, key_len, &c->key[which]);
    if (rc == 0 && cert != NULL)
        rc = skfc_cert_check(cert, cert_len) != 0 ? -EINVAL
                                                  : skf_blob_set(&c->cert[which], cert, cert_len);
    return rc;
}

int skf_provision_device(const skf_provision *p)
{
    skf_dev d;
    char path[4096];
    int rc = dev_path(path, sizeof path, p->dir, p->device);
    if (rc != 0)
        return rc;
    if (!p->force && access(path, F_OK) == 0)
        return -EEXIST;
    memset(&d, 0, sizeof d);
    snprintf(d.name, sizeof d.name, "%s", p->device);
    d.present = true;
    d.epoch = 1;
    const char *label = p->label != NULL ? p->label : p->device;
    const char *serial = p->serial != NULL ? p->serial : "";
    if (strlen(label) >= sizeof d.label || strlen(serial) >= sizeof d.serial ||
        pin_ok(p->admin_pin) != 0 || pin_ok(p->user_pin) != 0 || p->retries == 0 ||
        p->retries > 255 || p->app == NULL || strnlen(p->app, SKF_NAME_MAX) == 0 ||
        strnlen(p->app, SKF_NAME_MAX) >= SKF_NAME_MAX)
        return -EINVAL;
    snprintf(d.label, sizeof d.label, "%s", label);
    snprintf(d.serial, sizeof d.serial, "%s", serial);
    d.napps = 1;
    skf_app *a = &d.app[0];
    snprintf(a->name, sizeof a->name, "%s", p->app);
    snprintf(a->pin[SKF_PIN_ADMIN], sizeof a->pin[0], "%s", p->admin_pin);
    snprintf(a->pin[SKF_PIN_USER], sizeof a->pin[0], "%s", p->user_pin);
    for (int t = 0; t < 2; t++)
        a->max[t] = a->left[t] = p->retries;
    a->user_default = true;
    if (p->container != NULL) {
        if (strnlen(p->container, SKF_NAME_MAX) == 0 ||
            strnlen(p->container, SKF_NAME_MAX) >= SKF_NAME_MAX) {
            rc = -EINVAL;
            goto out;
        }
        skf_container *c = &a->cont[a->ncont++];
        snprintf(c->name, sizeof c->name, "%s", p->container);
        rc = provision_pair(c, SKF_KEY_SIGN, p->key_der, p->key_len, p->cert_der, p->cert_len);
        if (rc == 0)
            rc = provision_pair(c, SKF_KEY_ENC, p->enc_key_der, p->enc_key_len, p->enc_cert_der,
                                p->enc_cert_len);
    }
    if (rc == 0) {
        skf_lock l;
        rc = skf_lock_take(p->dir, &l);
        if (rc == 0 && !p->force && access(path, F_OK) == 0)
            rc = -EEXIST; /* made meanwhile */
        if (rc == 0)
            rc = skf_dev_save(p->dir, &d);
        skf_lock_drop(&l);
    }
out:
    skf_dev_clear(&d);
    return rc;
}
