/* The pairing store's file: strict reading, atomic replacement. */
#include "uk_pairing.h"

#include "uk_err.h"
#include "uk_log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 256 entries of at most ~300 bytes each fit many times over; anything larger is not ours. */
#define STORE_MAX_BYTES (256u * 1024u)
#define STORE_VERSION   1
/* Largest paired_at accepted: a double holds integers exactly up to 2^53. */
#define PAIRED_AT_MAX 9007199254740992.0

bool uk__pairing_origin_ok(const char *origin)
{
    uk_origin o;
    if (origin == NULL || uk_origin_parse(origin, strlen(origin), &o, NULL) != UK_OK)
        return false;
    if (o.scheme == UK_ORIGIN_HTTPS)
        return true;
    /* Plain http only where the network cannot be in the middle. */
    return o.scheme == UK_ORIGIN_HTTP &&
           (strcmp(o.host, "127.0.0.1") == 0 || strcmp(o.host, "localhost") == 0 ||
            strcmp(o.host, "[::1]") == 0);
}

void uk__pairing_free(uk__paired *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i].origin);
    free(list);
}

static int store_path(const char *dir, const char *name, char *buf, size_t size)
{
    int w = snprintf(buf, size, "%s/%s", dir, name);
    if (w < 0 || (size_t)w >= size) {
        UK_LOG_ERR("pairing: state directory path too long: %.200s", dir);
        return UK_E_IO;
    }
    return UK_OK;
}

/* Creates dir and its missing parents with mode 0700. */
static int mkdir_p(const char *dir)
{
    char p[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof p)
        return UK_E_IO;
    memcpy(p, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            UK_LOG_ERR("pairing: cannot create %s: %s", p, strerror(errno));
            return UK_E_IO;
        }
        p[i] = saved;
    }
    return UK_OK;
}

/* Writes data as dir/name: a temporary file (0600), fsync, rename, fsync of the directory, so a
 * crash leaves either the old file or the new one, never a mix. */
static int atomic_write(const char *dir, const char *name, const char *data, size_t len)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    char tmpname[NAME_MAX];
    snprintf(tmpname, sizeof tmpname, ".%s.XXXXXX", name);
    if (store_path(dir, name, path, sizeof path) != UK_OK ||
        store_path(dir, tmpname, tmp, sizeof tmp) != UK_OK || mkdir_p(dir) != UK_OK)
        return UK_E_IO;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        UK_LOG_ERR("pairing: cannot create a file in %s: %s", dir, strerror(errno));
        return UK_E_IO;
    }
    const char *fail = NULL;
    if (fchmod(fd, 0600) != 0)
        fail = "chmod";
    for (size_t off = 0; fail == NULL && off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            fail = "write";
        else
            off += (size_t)w;
    }
    if (fail == NULL && fsync(fd) != 0)
        fail = "fsync";
    if (close(fd) != 0 && fail == NULL)
        fail = "close";
    if (fail == NULL && rename(tmp, path) != 0)
        fail = "rename";
    if (fail != NULL) {
        UK_LOG_ERR("pairing: cannot write %s (%s): %s", path, fail, strerror(errno));
        unlink(tmp);
        return UK_E_IO;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        /* The file is in place; only its durability across a power cut is in doubt. */
        UK_LOG_WARN("pairing: cannot fsync %s: %s", dir, strerror(errno));
    }
    if (dfd >= 0)
        close(dfd);
    return UK_OK;
}

/* Parses the file's text; false when it is not exactly a store we would have written. */
static bool parse_store(const char *text, size_t len, uk__paired **list, size_t *n, bool *oom)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "origins");
    bool ok = false;
    uk__paired *v = NULL;
    size_t count = 0;
    if (!cJSON_IsObject(root) || !cJSON_IsNumber(ver) || ver->valuedouble != STORE_VERSION ||
        !cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > (int)UK_POLICY_MAX_PAIRED)
        goto out;
    v = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *v);
    if (v == NULL) {
        *oom = true;
        goto out;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "origin");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "paired_at");
        if (!cJSON_IsString(o) || !uk__pairing_origin_ok(o->valuestring) || !cJSON_IsNumber(t) ||
            t->valuedouble < 0 || t->valuedouble > PAIRED_AT_MAX ||
            t->valuedouble != (double)(int64_t)t->valuedouble)
            goto out;
        for (size_t i = 0; i < count; i++)
            if (strcmp(v[i].origin, o->valuestring) == 0)
                goto out;
        if ((v[count].origin = strdup(o->valuestring)) == NULL) {
            *oom = true;
            goto out;
        }
        v[count++].paired_at = (int64_t)t->valuedouble;
    }
    ok = true;
out:
    cJSON_Delete(root);
    if (!ok) {
        uk__pairing_free(v, count);
        return false;
    }
    *list = v;
    *n = count;
    return true;
}

int uk__pairing_load(const char *dir, uk__paired **list, size_t *n)
{
    char path[PATH_MAX];
    *list = NULL;
    *n = 0;
    if (dir == NULL || store_path(dir, UK_POLICY_PAIRING_FILE, path, sizeof path) != UK_OK)
        return UK_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ENOENT)
            UK_LOG_ERR("pairing: cannot open %s: %s; no origin is paired", path, strerror(errno));
        return UK_OK;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        UK_LOG_ERR("pairing: %s is not a private file of ours (owner, mode or type); ignored, no "
                   "origin is paired",
                   path);
        close(fd);
        return UK_OK;
    }
    if (st.st_size > (off_t)STORE_MAX_BYTES) {
        UK_LOG_ERR("pairing: %s is larger than %u bytes; ignored, no origin is paired", path,
                   STORE_MAX_BYTES);
        close(fd);
        return UK_OK;
    }
    char *buf = malloc(STORE_MAX_BYTES + 1);
    if (buf == NULL) {
        close(fd);
        return UK_E_NO_MEMORY;
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, STORE_MAX_BYTES + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (len += (size_t)r) > STORE_MAX_BYTES)
            break;
    }
    close(fd);
    bool oom = false;
    int rc = UK_OK;
    if (len <= STORE_MAX_BYTES && parse_store(buf, len, list, n, &oom)) {
        UK_LOG_DEBUG("pairing: %zu paired origins from %s", *n, path);
    } else if (oom) {
        rc = UK_E_NO_MEMORY;
    } else {
        /* Kept as it is until the next pair replaces it, and copied aside for whoever looks. */
        UK_LOG_ERR("pairing: %s is corrupt; no origin is paired until one is approved again (a "
                   "copy is in %s.corrupt)",
                   path, UK_POLICY_PAIRING_FILE);
        if (len <= STORE_MAX_BYTES)
            (void)atomic_write(dir, UK_POLICY_PAIRING_FILE ".corrupt", buf, len);
    }
    free(buf);
    return rc;
}

int uk__pairing_save(const char *dir, const uk__paired *list, size_t n)
{
    if (dir == NULL) {
        UK_LOG_ERR("pairing: no state directory to store paired origins in");
        return UK_E_IO;
    }
    cJSON *root = cJSON_CreateObject(), *arr = NULL;
    int rc = UK_E_NO_MEMORY;
    char *text = NULL;
    if (root == NULL || cJSON_AddNumberToObject(root, "version", STORE_VERSION) == NULL ||
        (arr = cJSON_AddArrayToObject(root, "origins")) == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        if (e == NULL || !cJSON_AddItemToArray(arr, e) ||
            cJSON_AddStringToObject(e, "origin", list[i].origin) == NULL ||
            cJSON_AddNumberToObject(e, "paired_at", (double)list[i].paired_at) == NULL)
            goto out;
    }
    if ((text = cJSON_Print(root)) == NULL)
        goto out;
    size_t len = strlen(text);
    char *grown = realloc(text, len + 2);
    if (grown == NULL)
        goto out;
    text = grown;
    memcpy(text + len, "\n", 2);
    rc = atomic_write(dir, UK_POLICY_PAIRING_FILE, text, len + 1);
out:
    free(text);
    cJSON_Delete(root);
    return rc;
}
