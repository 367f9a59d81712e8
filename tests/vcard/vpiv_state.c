/* The card's persistent state as a small text file, one record per line:
 *
 *   vpiv-state 1
 *   profile yubico|generic
 *   ext_length 0|1
 *   version 5.7.1
 *   serial N
 *   max_object N
 *   pin|puk HEX8 TRIES MAX DEFAULT
 *   mgm ALG HEX DEFAULT
 *   key SLOT ALG PIN_POLICY TOUCH_POLICY ORIGIN HEX(private key DER)
 *   obj TAG HEX
 *
 * Keys are stored in the clear: this is a test card, and the file is 0600.
 * Writes are atomic (temp file, fsync, rename, fsync of the directory) so a
 * card killed at any moment comes back with the old or the new state. */
#include "vpiv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_hex(FILE *f, const uint8_t *p, size_t n)
{
    if (n == 0)
        return fputs("-", f) < 0 ? -1 : 0;
    for (size_t i = 0; i < n; i++)
        if (fprintf(f, "%02x", p[i]) < 0)
            return -1;
    return 0;
}

static int write_state(FILE *f, const vpiv_card *c)
{
    int err = 0;
    err |= fprintf(f, "vpiv-state 1\nprofile %s\next_length %d\nversion %u.%u.%u\n",
                   c->profile == VPIV_PROFILE_YUBICO ? "yubico" : "generic", c->ext_length ? 1 : 0,
                   c->version[0], c->version[1], c->version[2]) < 0;
    err |= fprintf(f, "serial %u\nmax_object %zu\n", c->serial, c->max_object) < 0;
    const struct vpiv_ref *refs[2] = {&c->pin, &c->puk};
    for (int i = 0; i < 2; i++) {
        err |= fprintf(f, "%s ", i == 0 ? "pin" : "puk") < 0;
        err |= write_hex(f, refs[i]->value, VPIV_PIN_LEN);
        err |= fprintf(f, " %u %u %d\n", refs[i]->tries, refs[i]->max_tries,
                       refs[i]->is_default ? 1 : 0) < 0;
    }
    err |= fprintf(f, "mgm %u ", c->mgm_alg) < 0;
    err |= write_hex(f, c->mgm_key, c->mgm_len);
    err |= fprintf(f, " %d\n", c->mgm_default ? 1 : 0) < 0;
    for (int slot = 0; slot < 256; slot++) {
        const struct vpiv_key *k = c->keys[slot];
        if (k == NULL)
            continue;
        unsigned char *der = NULL;
        int len = i2d_PrivateKey(k->pkey, &der);
        if (len <= 0)
            return -1;
        err |= fprintf(f, "key %02x %u %u %u %u ", slot, k->alg, k->pin_policy, k->touch_policy,
                       k->origin) < 0;
        err |= write_hex(f, der, (size_t)len);
        err |= fputc('\n', f) == EOF;
        OPENSSL_clear_free(der, (size_t)len);
    }
    for (size_t i = 0; i < c->n_objects; i++) {
        err |= fprintf(f, "obj %x ", c->objects[i].tag) < 0;
        err |= write_hex(f, c->objects[i].data, c->objects[i].len);
        err |= fputc('\n', f) == EOF;
    }
    return err ? -1 : 0;
}

int vpiv_card_save(const vpiv_card *card, const char *path)
{
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n), *dircopy = strdup(path);
    int rc = -1, fd = -1;
    FILE *f = NULL;
    if (tmp == NULL || dircopy == NULL)
        goto out;
    snprintf(tmp, n, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
        goto out;
    fd = -1;
    if (write_state(f, card) != 0 || fflush(f) != 0 || fsync(fileno(f)) != 0)
        goto out;
    if (fclose(f) != 0) {
        f = NULL;
        goto out;
    }
    f = NULL;
    if (rename(tmp, path) != 0)
        goto out;
    int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    rc = 0;
out:
    if (rc != 0) {
        fprintf(stderr, "vpiv: cannot write %s: %s\n", path, strerror(errno));
        if (tmp)
            unlink(tmp);
    }
    if (f)
        fclose(f);
    if (fd >= 0)
        close(fd);
    free(tmp);
    free(dircopy);
    return rc;
}

/* Decodes hex ("-" is empty) into a fresh buffer. */
static int parse_hex(const char *s, uint8_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (strcmp(s, "-") == 0)
        return 0;
    long len = 0;
    unsigned char *buf = OPENSSL_hexstr2buf(s, &len);
    if (buf == NULL) {
        ERR_clear_error();
        return -1;
    }
    *out = buf;
    *n = (size_t)len;
    return 0;
}

static int parse_ref(struct vpiv_ref *ref, const char *hex, unsigned tries, unsigned max,
                     int is_default)
{
    uint8_t *v;
    size_t n;
    if (parse_hex(hex, &v, &n) != 0)
        return -1;
    int ok = n == VPIV_PIN_LEN && tries <= max && max >= 1 && max <= 255;
    if (ok) {
        memcpy(ref->value, v, VPIV_PIN_LEN);
        ref->tries = (uint8_t)tries;
        ref->max_tries = (uint8_t)max;
        ref->is_default = is_default != 0;
    }
    OPENSSL_clear_free(v, n);
    return ok ? 0 : -1;
}

static int parse_key(vpiv_card *c, unsigned slot, unsigned alg, unsigned pp, unsigned tp,
                     unsigned origin, const char *hex)
{
    uint8_t *der;
    size_t n;
    if (slot > 255 || !vpiv_slot_is_asym((uint8_t)slot) ||
        (!vpiv_alg_is_rsa((uint8_t)alg) && !vpiv_alg_is_ec((uint8_t)alg)) ||
        parse_hex(hex, &der, &n) != 0)
        return -1;
    const unsigned char *p = der;
    EVP_PKEY *pkey = d2i_AutoPrivateKey(NULL, &p, (long)n);
    OPENSSL_clear_free(der, n);
    struct vpiv_key *k = pkey ? calloc(1, sizeof(*k)) : NULL;
    if (k == NULL) {
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        return -1;
    }
    k->alg = (uint8_t)alg;
    k->pin_policy = (uint8_t)pp;
    k->touch_policy = (uint8_t)tp;
    k->origin = (uint8_t)origin;
    k->pkey = pkey;
    vpiv_key_free(c->keys[slot]);
    c->keys[slot] = k;
    return 0;
}

/* hex is at least as large as line, so %s cannot overflow it. */
static int parse_line(vpiv_card *c, const char *line, char *hex)
{
    char word[32];
    unsigned a, b, d, e, f;
    int flag;
    if (sscanf(line, "%31s", word) != 1)
        return 0;
    if (strcmp(word, "vpiv-state") == 0)
        return sscanf(line, "vpiv-state %u", &a) == 1 && a == 1 ? 0 : -1;
    if (strcmp(word, "profile") == 0) {
        if (sscanf(line, "profile %31s", word) != 1)
            return -1;
        c->profile = strcmp(word, "generic") == 0 ? VPIV_PROFILE_GENERIC : VPIV_PROFILE_YUBICO;
        return 0;
    }
    if (strcmp(word, "ext_length") == 0) {
        if (sscanf(line, "ext_length %d", &flag) != 1)
            return -1;
        c->ext_length = flag != 0;
        return 0;
    }
    if (strcmp(word, "version") == 0) {
        if (sscanf(line, "version %u.%u.%u", &a, &b, &d) != 3 || a > 255 || b > 255 || d > 255)
            return -1;
        c->version[0] = (uint8_t)a;
        c->version[1] = (uint8_t)b;
        c->version[2] = (uint8_t)d;
        return 0;
    }
    if (strcmp(word, "serial") == 0)
        return sscanf(line, "serial %u", &c->serial) == 1 ? 0 : -1;
    if (strcmp(word, "max_object") == 0)
        return sscanf(line, "max_object %zu", &c->max_object) == 1 && c->max_object > 0 ? 0 : -1;
    if (strcmp(word, "pin") == 0 || strcmp(word, "puk") == 0) {
        if (sscanf(line, "%*s %s %u %u %d", hex, &a, &b, &flag) != 4)
            return -1;
        return parse_ref(word[1] == 'i' ? &c->pin : &c->puk, hex, a, b, flag);
    }
    if (strcmp(word, "mgm") == 0) {
        uint8_t *k;
        size_t n;
        if (sscanf(line, "mgm %u %s %d", &a, hex, &flag) != 3 || a > 255 ||
            parse_hex(hex, &k, &n) != 0)
            return -1;
        int ok = n == vpiv_mgm_keylen((uint8_t)a) && n > 0;
        if (ok) {
            c->mgm_alg = (uint8_t)a;
            memcpy(c->mgm_key, k, n);
            c->mgm_len = n;
            c->mgm_default = flag != 0;
        }
        OPENSSL_clear_free(k, n);
        return ok ? 0 : -1;
    }
    if (strcmp(word, "key") == 0) {
        if (sscanf(line, "key %x %u %u %u %u %s", &a, &b, &d, &e, &f, hex) != 6)
            return -1;
        return parse_key(c, a, b, d, e, f, hex);
    }
    if (strcmp(word, "obj") == 0) {
        uint8_t *v;
        size_t n;
        if (sscanf(line, "obj %x %s", &a, hex) != 2 || parse_hex(hex, &v, &n) != 0)
            return -1;
        int rc = n > 0 ? vpiv_object_set(c, a, v, n) : -1;
        OPENSSL_free(v);
        return rc;
    }
    return -1;
}

int vpiv_card_load(vpiv_card **out, const char *path)
{
    vpiv_options opt = {.profile = VPIV_PROFILE_YUBICO, .serial = 1};
    vpiv_card *card = NULL;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        fprintf(stderr, "vpiv: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (vpiv_card_new(&card, &opt) != 0) {
        fclose(f);
        return -1;
    }
    /* Start from nothing: only what the file says exists. */
    for (size_t i = 0; i < card->n_objects; i++)
        free(card->objects[i].data);
    card->n_objects = 0;
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        lineno++;
        char *hex = malloc((size_t)got + 1);
        /* The version header comes first: anything else is not our file. */
        int bad = hex == NULL || (lineno == 1 && strncmp(line, "vpiv-state ", 11) != 0) ||
                  parse_line(card, line, hex) != 0;
        if (hex != NULL)
            OPENSSL_clear_free(hex, (size_t)got + 1);
        if (bad) {
            fprintf(stderr, "vpiv: %s:%d: malformed line\n", path, lineno);
            rc = -1;
            break;
        }
    }
    if (line != NULL)
        OPENSSL_clear_free(line, cap);
    fclose(f);
    if (rc != 0 || lineno == 0) {
        if (lineno == 0)
            fprintf(stderr, "vpiv: %s: empty state file\n", path);
        vpiv_card_free(card);
        return -1;
    }
    card->dirty = false;
    *out = card;
    return 0;
}
