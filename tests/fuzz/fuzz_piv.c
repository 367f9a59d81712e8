/*
 * fuzz_piv.c - libFuzzer target for the PIV driver's response parsing (daemon/token/piv/).
 *
 * A fake card (a link seam: this file provides uk_card_transmit, uk_card_atr and uk_card_reader,
 * like tests/unit/piv_card_seam.c) answers each C-APDU with the next chunk of the input, so
 * SELECT, GET VERSION/SERIAL, GET DATA (certificate objects, CHUID, the card record), 61xx
 * chaining, gzip-compressed certificates, GET METADATA, GENERAL AUTHENTICATE and the TLV parsing
 * behind them all see card answers chosen by the fuzzer.
 *
 * Input:
 *   byte 0    ATR: low 5 bits n. n = 0: a YubiKey-like ATR advertising extended length;
 *             n = 31: a short T=1 ATR without it; otherwise the next n bytes are the ATR.
 *             High 3 bits: operations that authenticate with the (default) management key,
 *             run last: 0x20 generate_key 82 (P-256), 0x40 write_record, 0x80 delete_cert 83.
 *   byte 1    operations after open + list_certs, one bit each: 0x01 probe first, 0x02
 *             pin_status, 0x04 verify_pin, 0x08 sign (ECDSA P-256, slot 9a), 0x10
 *             find_staging_slot, 0x20 get_public_key 9a, 0x40 read_record, 0x80 get_caps.
 *   then      the card's answers: a 2-byte big-endian length L and L bytes (data + SW1 SW2).
 *             L < 2 makes that exchange fail as if the card were removed (L = 0) or reset
 *             (L = 1); when the input runs out every further exchange reports a removed card.
 * Corpus: tests/fuzz/corpus/piv/: hand-written scripts (tests/fuzz/corpus/make_seeds.py) and
 * sessions recorded from the virtual card (rec_*).
 *
 * Built with -DUK_FUZZ_PIV_RECORD (target fuzz_piv_record, linked with the virtual card's engine)
 * this file is instead the recorder of those sessions: the same operations run against
 * tests/vcard's engine, and every answer is written out in the input format above, so the seeds
 * walk the paths a real card takes (certificates, PIN, a real signature, metadata, staging).
 *   fuzz_piv_record OUTDIR
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "uk_card.h"
#include "uk_driver.h"
#include "uk_err.h"
#include "uk_piv.h"
#include "uk_secret.h"
#ifdef UK_FUZZ_PIV_RECORD
#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

#include "vpiv.h"
#endif

struct uk_card {
    const uint8_t *p, *end;
    uint8_t atr[32];
    size_t atr_len;
    unsigned apdus;
#ifdef UK_FUZZ_PIV_RECORD
    vpiv_card *vc; /* answers every APDU; each answer is appended to out */
    FILE *out;
    uint8_t *rbuf;
#endif
};

int uk_card_transmit(uk_card *card, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
                     size_t *resp_len)
{
    /* What the driver sends must at least be a well-formed header. */
    if (apdu == NULL || len < 4 || resp == NULL || resp_len == NULL)
        abort();
    card->apdus++;
#ifdef UK_FUZZ_PIV_RECORD
    if (card->vc != NULL) {
        size_t r = vpiv_card_apdu(card->vc, apdu, len, card->rbuf);
        if (r > cap || r > 0xFFFF)
            abort();
        uint8_t hdr[2] = {(uint8_t)(r >> 8), (uint8_t)r};
        if (fwrite(hdr, 1, 2, card->out) != 2 || fwrite(card->rbuf, 1, r, card->out) != r)
            abort();
        memcpy(resp, card->rbuf, r);
        *resp_len = r;
        return UK_OK;
    }
#endif
    if (card->end - card->p < 2) {
        card->p = card->end;
        return UK_E_CARD_REMOVED;
    }
    size_t n = (size_t)card->p[0] << 8 | card->p[1];
    card->p += 2;
    if ((size_t)(card->end - card->p) < n)
        n = (size_t)(card->end - card->p);
    if (n < 2) {
        card->p += n;
        return n == 0 ? UK_E_CARD_REMOVED : UK_E_CARD_RESET;
    }
    if (n > cap) {
        card->p += n;
        return UK_E_LIMIT_EXCEEDED;
    }
    memcpy(resp, card->p, n);
    card->p += n;
    *resp_len = n;
    return UK_OK;
}

void uk_card_atr(const uk_card *card, const uint8_t **atr, size_t *len)
{
    *atr = card->atr;
    *len = card->atr_len;
}

const char *uk_card_reader(const uk_card *card)
{
    (void)card;
    return "Fuzz Reader 00 00";
}

static void free_certs(uk_token_cert *certs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(certs[i].der);
    free(certs);
}

static void run_admin_ops(const uk_driver *d, void *st, uk_card *card, uint8_t admin)
{
    if (admin & 0x01) {
        uint8_t *spki = NULL;
        size_t spki_len = 0;
        if (d->generate_key(st, card, "82", UK_KEY_ECP256, &spki, &spki_len) == UK_OK &&
            (spki == NULL || spki_len == 0))
            abort();
        free(spki);
    }
    if ((admin & 0x02) && d->write_record != NULL) {
        static const uint8_t blob[] = {0x01, 0x02, 0x82, 0x00};
        int rc = d->write_record(st, card, blob, sizeof(blob));
        (void)rc;
    }
    if ((admin & 0x04) && d->delete_cert != NULL) {
        int rc = d->delete_cert(st, card, "83");
        (void)rc;
    }
}

static void run_ops(const uk_driver *d, void *st, uk_card *card, uint8_t ops)
{
    uk_token_cert *certs = NULL;
    size_t n = 0;
    int retries = 0;

    if (d->list_certs(st, card, &certs, &n) == UK_OK) {
        if (n > 24 || (n > 0 && certs == NULL))
            abort();
        for (size_t i = 0; i < n; i++)
            if ((certs[i].error == UK_OK) != (certs[i].der != NULL) ||
                (certs[i].der != NULL && certs[i].der_len == 0) || certs[i].key_id[0] == '\0')
                abort();
        free_certs(certs, n);
    } else if (certs != NULL || n != 0) {
        abort();
    }
    if (ops & 0x02)
        (void)d->pin_status(st, card, &retries);
    if (ops & 0x04) {
        uk_secret *pin = uk_secret_new("123456", 6);
        if (pin != NULL) {
            (void)d->verify_pin(st, card, pin, &retries);
            uk_secret_free(pin);
        }
    }
    if (ops & 0x08) {
        static const uint8_t digest[32] = {1, 2, 3};
        uk_sign_req req = {.key_id = "9a",
                           .scheme = UK_SIG_ECDSA,
                           .hash = UK_HASH_SHA256,
                           .digest = digest,
                           .digest_len = sizeof(digest)};
        uint8_t sig[1024];
        size_t sig_len = 0;
        if (d->sign(st, card, &req, sig, sizeof(sig), &sig_len) == UK_OK && sig_len > sizeof(sig))
            abort();
    }
    if ((ops & 0x10) && d->find_staging_slot != NULL) {
        char key_id[UK_KEY_ID_MAX];
        (void)d->find_staging_slot(st, card, key_id);
    }
    if ((ops & 0x20) && d->get_public_key != NULL) {
        uint8_t *spki = NULL;
        size_t spki_len = 0;
        if (d->get_public_key(st, card, "9a", &spki, &spki_len) == UK_OK &&
            (spki == NULL || spki_len == 0))
            abort();
        free(spki);
    }
    if ((ops & 0x40) && d->read_record != NULL) {
        uint8_t rec[UK_DRIVER_RECORD_MAX];
        size_t rec_len = 0;
        if (d->read_record(st, card, rec, sizeof(rec), &rec_len) == UK_OK && rec_len > sizeof(rec))
            abort();
    }
    if ((ops & 0x80) && d->get_caps != NULL) {
        unsigned caps = 0;
        (void)d->get_caps(st, card, &caps);
    }
}

/* probe (if asked), open, then run_ops: the same in the fuzzer and the recorder. */
static void session(uk_card *card, uint8_t ops, uint8_t admin)
{
    const uk_driver *d = &uk_driver_piv;
    if ((ops & 0x01) && d->probe(card) != UK_OK)
        return;
    uk_driver_options opt = {.allow_default_mgm_key = true};
    uk_token_identity id;
    void *st = NULL;
    if (d->open(card, &opt, &st, &id) != UK_OK) {
        if (st != NULL)
            abort();
        return;
    }
    if (st == NULL || memchr(id.serial, 0, sizeof(id.serial)) == NULL ||
        memchr(id.label, 0, sizeof(id.label)) == NULL ||
        memchr(id.model, 0, sizeof(id.model)) == NULL)
        abort();
    uk_piv_info info;
    uk_piv_get_info(st, &info);
    run_ops(d, st, card, ops);
    run_admin_ops(d, st, card, admin);
    d->close(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t atr_ext[] = {0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE,
                                      0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59,
                                      0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40};
    static const uint8_t atr_short[] = {0x3B, 0x80, 0x80, 0x01, 0x01};
    uk_card card = {0};
    const uint8_t *p = data, *end = data + size;

    uk_fuzz_quiet();
    if (size < 2)
        return 0;
    uint8_t admin = (uint8_t)(*p >> 5);
    size_t n = *p++ & 0x1F;
    if (n == 0) {
        memcpy(card.atr, atr_ext, sizeof(atr_ext));
        card.atr_len = sizeof(atr_ext);
    } else if (n == 31) {
        memcpy(card.atr, atr_short, sizeof(atr_short));
        card.atr_len = sizeof(atr_short);
    } else {
        if ((size_t)(end - p) < n + 1)
            return 0;
        memcpy(card.atr, p, n);
        card.atr_len = n;
        p += n;
    }
    uint8_t ops = *p++;
    card.p = p;
    card.end = end;

    session(&card, ops, admin);
    return 0;
}

#ifdef UK_FUZZ_PIV_RECORD
/* ---- the recorder (see the top of the file) ---------------------------- */

typedef struct {
    const char *name;
    vpiv_profile profile;
    bool ext;
    uint8_t ops;
    uint8_t admin;   /* the high 3 bits of byte 0 */
    uint8_t alg_9a;  /* 0: slot empty */
    bool more_slots; /* 9c RSA-2048, 9d P-384, 82 P-256 */
} scenario;

static int record(const scenario *sc, vpiv_demo_ca *ca, const char *dir)
{
    vpiv_options o = {.profile = sc->profile, .ext_length = sc->ext, .serial = 12345678u};
    uk_card card = {0};
    char path[4096];
    int rc = -1;

    if (vpiv_card_new(&card.vc, &o) != 0)
        return -1;
    card.rbuf = malloc(VPIV_MAX_APDU);
    if (card.rbuf == NULL)
        goto out;
    if (sc->alg_9a != 0 &&
        vpiv_card_provision_slot(card.vc, ca, 0x9A, sc->alg_9a, "Fuzz 9a", -1, 365) != 0)
        goto out;
    if (sc->more_slots &&
        (vpiv_card_provision_slot(card.vc, ca, 0x9C, VPIV_ALG_RSA2048, "Fuzz 9c", -1, 365) != 0 ||
         vpiv_card_provision_slot(card.vc, ca, 0x9D, VPIV_ALG_ECCP384, "Fuzz 9d", -1, 10) != 0 ||
         vpiv_card_provision_slot(card.vc, ca, 0x82, VPIV_ALG_ECCP256, "Fuzz 82", -9, -1) != 0))
        goto out;
    card.atr_len = vpiv_card_atr(card.vc, card.atr, sizeof(card.atr));
    if (card.atr_len == 0 || card.atr_len > 30)
        goto out;
    snprintf(path, sizeof(path), "%s/%s", dir, sc->name);
    card.out = fopen(path, "wb");
    if (card.out == NULL)
        goto out;
    uint8_t head[2] = {(uint8_t)(card.atr_len | sc->admin << 5), sc->ops};
    if (fwrite(head, 1, 1, card.out) != 1 ||
        fwrite(card.atr, 1, card.atr_len, card.out) != card.atr_len ||
        fwrite(head + 1, 1, 1, card.out) != 1)
        goto out;
    session(&card, sc->ops, sc->admin);
    rc = 0;
out:
    if (card.out != NULL && fclose(card.out) != 0)
        rc = -1;
    free(card.rbuf);
    vpiv_card_free(card.vc);
    return rc;
}

/* The demo CA's files: one flat directory. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        (void)unlink(path);
    }
    closedir(d);
    (void)rmdir(dir);
}

int main(int argc, char **argv)
{
    static const scenario scenarios[] = {
        {"rec_vendor_ext_all", VPIV_PROFILE_YUBICO, true, 0xFF, 7, VPIV_ALG_ECCP256, true},
        {"rec_generic_short_all", VPIV_PROFILE_GENERIC, false, 0xFF, 7, VPIV_ALG_ECCP256, true},
        {"rec_vendor_short_rsa9a", VPIV_PROFILE_YUBICO, false, 0x7F, 1, VPIV_ALG_RSA2048, false},
        {"rec_vendor_empty", VPIV_PROFILE_YUBICO, true, 0xFF, 0, 0, false},
    };
    char ca_dir[] = "/tmp/uk-fuzz-piv-XXXXXX";
    vpiv_demo_ca *ca = NULL;
    int rc = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    uk_fuzz_quiet();
    if (mkdtemp(ca_dir) == NULL || vpiv_demo_ca_new(&ca, ca_dir) != 0)
        return 1;
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        if (record(&scenarios[i], ca, argv[1]) != 0) {
            fprintf(stderr, "%s: recording %s failed\n", argv[0], scenarios[i].name);
            rc = 1;
        }
    }
    vpiv_demo_ca_free(ca);
    remove_dir(ca_dir);
    return rc;
}
#endif
