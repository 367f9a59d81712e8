/* ukskf: provisions soft SKF devices and drives their controls (docs/testing.md).
 *
 *   ukskf provision [--dir D] --device NAME [--label L] [--serial S] [--app APP]
 *                   [--admin-pin P] [--user-pin P] [--retries N] [--container C]
 *                   [--key FILE --cert FILE] [--enc-key FILE --enc-cert FILE] [--force]
 *   ukskf remove|insert [--dir D] --device NAME
 *   ukskf ctl [--dir D] fail-after N SAR [executed] [remove] | latency US | clear | show
 *
 * D defaults to $UKSKF_DIR. Keys and certificates are PEM or DER. Exit 0 on success, 1 on a
 * failure (with one line on stderr), 2 on bad usage. */
#include "skf_core.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fputs("usage: ukskf provision|remove|insert|ctl [--dir D] ... (see docs/testing.md)\n", stderr);
    return 2;
}

/* Reads a PEM or DER key (as DER) or certificate (as DER) from path. */
static int read_der(const char *path, bool key, skf_blob *out)
{
    BIO *bio = BIO_new_file(path, "rb");
    if (bio == NULL) {
        ERR_clear_error();
        return -ENOENT;
    }
    unsigned char *der = NULL;
    int len = -1;
    if (key) {
        EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        if (pkey == NULL && BIO_reset(bio) == 0)
            pkey = d2i_PrivateKey_bio(bio, NULL);
        if (pkey != NULL)
            len = i2d_PrivateKey(pkey, &der);
        EVP_PKEY_free(pkey);
    } else {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL && BIO_reset(bio) == 0)
            x = d2i_X509_bio(bio, NULL);
        if (x != NULL)
            len = i2d_X509(x, &der);
        X509_free(x);
    }
    BIO_free(bio);
    ERR_clear_error();
    if (len <= 0)
        return -EINVAL;
    out->p = der;
    out->n = (size_t)len;
    return 0;
}

static int provision(const char *dir, int argc, char **argv)
{
    static const struct option opts[] = {
        {"device", 1, NULL, 'd'},  {"label", 1, NULL, 'l'},     {"serial", 1, NULL, 's'},
        {"app", 1, NULL, 'a'},     {"admin-pin", 1, NULL, 'A'}, {"user-pin", 1, NULL, 'U'},
        {"retries", 1, NULL, 'r'}, {"container", 1, NULL, 'c'}, {"key", 1, NULL, 'k'},
        {"cert", 1, NULL, 'x'},    {"enc-key", 1, NULL, 'K'},   {"enc-cert", 1, NULL, 'X'},
        {"force", 0, NULL, 'f'},   {NULL, 0, NULL, 0}};
    skf_provision p = {
        .dir = dir, .app = "ukeyd", .admin_pin = "12345678", .user_pin = "123456", .retries = 10};
    const char *files[4] = {NULL};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'd':
            p.device = optarg;
            break;
        case 'l':
            p.label = optarg;
            break;
        case 's':
            p.serial = optarg;
            break;
        case 'a':
            p.app = optarg;
            break;
        case 'A':
            p.admin_pin = optarg;
            break;
        case 'U':
            p.user_pin = optarg;
            break;
        case 'r':
            p.retries = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'c':
            p.container = optarg;
            break;
        case 'k':
            files[0] = optarg;
            break;
        case 'x':
            files[1] = optarg;
            break;
        case 'K':
            files[2] = optarg;
            break;
        case 'X':
            files[3] = optarg;
            break;
        case 'f':
            p.force = true;
            break;
        default:
            return usage();
        }
    }
    if (p.device == NULL || optind != argc ||
        ((files[0] || files[1] || files[2] || files[3]) && p.container == NULL))
        return usage();
    skf_blob b[4] = {{0}};
    int rc = 0;
    for (int i = 0; rc == 0 && i < 4; i++) {
        if (files[i] != NULL && (rc = read_der(files[i], i % 2 == 0, &b[i])) != 0)
            fprintf(stderr, "ukskf: cannot read %s\n", files[i]);
    }
    if (rc == 0) {
        p.key_der = b[0].p, p.key_len = b[0].n, p.cert_der = b[1].p, p.cert_len = b[1].n;
        p.enc_key_der = b[2].p, p.enc_key_len = b[2].n;
        p.enc_cert_der = b[3].p, p.enc_cert_len = b[3].n;
        rc = skf_provision_device(&p);
        if (rc != 0)
            fprintf(stderr, "ukskf: cannot provision %s: %s\n", p.device, strerror(-rc));
    }
    for (int i = 0; i < 4; i++)
        skf_blob_clear(&b[i]);
    return rc == 0 ? 0 : 1;
}

static int presence(const char *dir, bool present, int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "--device") != 0)
        return usage();
    int rc = skf_dev_set_present(dir, argv[2], present);
    if (rc != 0)
        fprintf(stderr, "ukskf: %s: %s\n", argv[2], strerror(-rc));
    return rc == 0 ? 0 : 1;
}

static int ctl(const char *dir, int argc, char **argv)
{
    if (argc < 2)
        return usage();
    skf_lock l;
    skf_ctl c;
    int rc = skf_lock_take(dir, &l);
    if (rc == 0)
        rc = skf_ctl_load(dir, &c);
    const char *cmd = argv[1];
    if (rc == 0 && strcmp(cmd, "show") == 0 && argc == 2) {
        printf("fail-after %ld %08x%s%s\nlatency %lu\ncalls %lu\n", c.fail_after,
               (unsigned)c.fail_rv, c.fail_executed ? " executed" : "",
               c.fail_remove ? " remove" : "", c.latency_us, c.calls);
    } else if (rc == 0 && strcmp(cmd, "clear") == 0 && argc == 2) {
        memset(&c, 0, sizeof c);
        c.fail_after = -1;
        rc = skf_ctl_save(dir, &c);
    } else if (rc == 0 && (strcmp(cmd, "latency") == 0 || strcmp(cmd, "fail-after") == 0)) {
        /* the words form one control line, checked by the module's own parser */
        char line[256] = "";
        for (int i = 1; i < argc; i++) {
            size_t used = strlen(line);
            if (snprintf(line + used, sizeof line - used, "%s%s", i > 1 ? " " : "", argv[i]) >=
                (int)(sizeof line - used))
                rc = -E2BIG;
        }
        if (rc == 0)
            rc = skf_ctl_parse(&c, line);
        if (rc == 0)
            rc = skf_ctl_save(dir, &c);
    } else if (rc == 0) {
        skf_lock_drop(&l);
        return usage();
    }
    skf_lock_drop(&l);
    if (rc != 0)
        fprintf(stderr, "ukskf: ctl %s: %s\n", cmd, strerror(-rc));
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    const char *dir = skf_dir();
    argv++, argc--; /* argv[0] is now the command */
    if (argc >= 3 && strcmp(argv[1], "--dir") == 0) {
        dir = argv[2];
        argv[2] = argv[0];
        argv += 2, argc -= 2;
    }
    if (dir == NULL) {
        fputs("ukskf: no --dir and no $UKSKF_DIR\n", stderr);
        return 2;
    }
    if (strcmp(cmd, "provision") == 0)
        return provision(dir, argc, argv);
    if (strcmp(cmd, "remove") == 0 || strcmp(cmd, "insert") == 0)
        return presence(dir, strcmp(cmd, "insert") == 0, argc, argv);
    if (strcmp(cmd, "ctl") == 0)
        return ctl(dir, argc, argv);
    return usage();
}
