/* PIV renewal staging against the virtual card's engine, in process, on a
 * vendor card (MOVE KEY, GET METADATA) and a generic one (neither): free
 * retired slots, moving a staged key into 9A, deleting keys, public keys of
 * slots, the ukeyd card record and Key History. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "test_piv_util.h"
#include "uk_err.h"
#include "vpiv_int.h"

#define RECORD_OBJECT      0x5FFF55u
#define KEY_HISTORY_OBJECT 0x5FC10Cu

static int group_teardown(void **state)
{
    (void)state;
    piv_test_ca_cleanup();
    return 0;
}

static int teardown(void **state)
{
    piv_fx_free(*state);
    return 0;
}

/* A card of profile with the default management key allowed, opened. */
static piv_fx *staging_fx(void **state, vpiv_profile profile, bool ext)
{
    piv_fx *f = *state = piv_fx_new(profile, ext);
    f->opt.allow_default_mgm_key = true;
    piv_fx_open(f);
    return f;
}

/* A fresh open of the same card: forgets what the driver learned. */
static void reopen(piv_fx *f)
{
    uk_driver_piv.close(f->st);
    f->st = NULL;
    piv_fx_open(f);
}

static void find(piv_fx *f, const char *expect)
{
    char id[UK_KEY_ID_MAX];
    assert_int_equal(uk_driver_piv.find_staging_slot(f->st, f->card, id), UK_OK);
    assert_string_equal(id, expect);
}

static uint8_t *generate(piv_fx *f, const char *slot, uk_key_alg alg, size_t *spki_len)
{
    uint8_t *spki = NULL;
    assert_int_equal(uk_driver_piv.generate_key(f->st, f->card, slot, alg, &spki, spki_len), UK_OK);
    return spki;
}

/* A certificate for spki written into slot through the driver; returned. */
static uint8_t *certify(piv_fx *f, const char *slot, const uint8_t *spki, size_t spki_len,
                        size_t *len)
{
    uint8_t *der = piv_make_cert(spki, spki_len, 0, len);
    assert_int_equal(uk_driver_piv.put_cert(f->st, f->card, slot, der, *len), UK_OK);
    return der;
}

/* A certificate for a host-made key, written into the engine's object of
 * slot directly (another program's certificate; no key on the card). */
static void foreign_cert(piv_fx *f, uint8_t slot)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    unsigned char *spki = NULL;
    size_t len = 0;
    assert_non_null(k);
    int n = i2d_PUBKEY(k, &spki);
    assert_true(n > 0);
    uint8_t *der = piv_make_cert(spki, (size_t)n, 0, &len);
    piv_put_object(f->vc, slot, der, len, 0);
    free(der);
    OPENSSL_free(spki);
    EVP_PKEY_free(k);
}

/* A record blob that keeps the given key ids (C0 "82" ...) and carries an
 * opaque TLV of the renewal service (D1). */
static size_t record_keeping(uint8_t *out, size_t cap, const char *const *ids, size_t n)
{
    vpiv_buf b;
    vpiv_buf_init(&b, out, cap);
    for (size_t i = 0; i < n; i++)
        vpiv_tlv_put(&b, UK_RECORD_TAG_KEY_ID, ids[i], strlen(ids[i]));
    vpiv_tlv_put(&b, 0xD1, "renewal 7: prepared", 19);
    assert_false(b.overflow);
    return b.len;
}

/* GET DATA through the seam, as any other program would read the object. */
static size_t get_data(piv_fx *f, uint32_t tag, uint8_t *out, size_t cap, uint16_t *sw)
{
    const uint8_t apdu[] = {
        0x00,         0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, (uint8_t)(tag >> 16), (uint8_t)(tag >> 8),
        (uint8_t)tag, 0x00};
    uint8_t resp[300];
    size_t n = 0;
    assert_int_equal(uk_card_transmit(f->card, apdu, sizeof(apdu), resp, sizeof(resp), &n), UK_OK);
    assert_true(n >= 2 && n - 2 <= cap);
    *sw = (uint16_t)(resp[n - 2] << 8 | resp[n - 1]);
    memcpy(out, resp, n - 2);
    return n - 2;
}

#define BOTH(name)                                                                                 \
    static void name##_on_vendor_card(void **state)                                                \
    {                                                                                              \
        name(state, VPIV_PROFILE_YUBICO);                                                          \
    }                                                                                              \
    static void name##_on_generic_card(void **state)                                               \
    {                                                                                              \
        name(state, VPIV_PROFILE_GENERIC);                                                         \
    }

/* ---- capabilities ----------------------------------------------------- */

static void test_piv_caps_tell_a_vendor_card_from_a_generic_one(void **state)
{
    piv_fx *f = staging_fx(state, VPIV_PROFILE_YUBICO, true);
    const unsigned common = UK_TOKEN_CAP_GENERATE | UK_TOKEN_CAP_PUT_CERT | UK_TOKEN_CAP_STAGING |
                            UK_TOKEN_CAP_RECORD | UK_TOKEN_CAP_KEY_HISTORY;
    unsigned caps = 0;
    piv_seam_reset_counts(f->card);
    assert_int_equal(uk_driver_piv.get_caps(f->st, f->card, &caps), UK_OK);
    assert_int_equal(caps, common | UK_TOKEN_CAP_MOVE_KEY | UK_TOKEN_CAP_DELETE_KEY |
                               UK_TOKEN_CAP_KEY_METADATA);
    assert_int_equal(piv_seam_apdus(f->card), 0);

    piv_fx *g = piv_fx_new(VPIV_PROFILE_GENERIC, true);
    piv_fx_open(g);
    assert_int_equal(uk_driver_piv.get_caps(g->st, g->card, &caps), UK_OK);
    assert_int_equal(caps, common);
    piv_fx_free(g);
}

/* ---- find_staging_slot ------------------------------------------------ */

static void find_staging_slot_skips_occupied_slots(void **state, vpiv_profile profile)
{
    piv_fx *f = staging_fx(state, profile, true);
    uint8_t rec[64];
    size_t len = 0;
    static const char *const kept[] = {"84"};
    find(f, "82");

    foreign_cert(f, 0x82);                                  /* a certificate without a key */
    uint8_t *spki = generate(f, "83", UK_KEY_ECP256, &len); /* a key without a certificate */
    free(spki);
    len = record_keeping(rec, sizeof(rec), kept, 1); /* a slot kept by an open renewal */
    assert_int_equal(uk_driver_piv.write_record(f->st, f->card, rec, len), UK_OK);
    /* An empty container is a free slot. */
    piv_put_raw_object(f->vc, 0x85, (const uint8_t *)"\x70\x00\x71\x01\x00\xFE\x00", 7);

    vpiv_card_clear_dirty(f->vc);
    piv_seam_reset_counts(f->card);
    find(f, "85");
    assert_false(vpiv_card_dirty(f->vc)); /* nothing changed */
    print_message("find_staging_slot (%s, 3 slots busy): %u APDUs\n",
                  profile == VPIV_PROFILE_YUBICO ? "vendor" : "generic", piv_seam_apdus(f->card));

    /* A fresh open: the vendor card still tells the key in 83 by its
     * metadata; a generic card cannot see a key without a certificate (the
     * documented limit), so 83 looks free there. */
    reopen(f);
    find(f, profile == VPIV_PROFILE_YUBICO ? "85" : "83");
    if (profile == VPIV_PROFILE_GENERIC)
        assert_int_equal(piv_seam_ins_count(f->card, 0xF7), 0);
}
BOTH(find_staging_slot_skips_occupied_slots)

static void find_staging_slot_with_all_twenty_used_is_no_staging_slot(void **state,
                                                                      vpiv_profile profile)
{
    piv_fx *f = staging_fx(state, profile, true);
    uint8_t rec[64];
    char id[UK_KEY_ID_MAX] = "x";
    static const char *const kept[] = {"95", "94"};
    size_t len = record_keeping(rec, sizeof(rec), kept, 2);
    assert_int_equal(uk_driver_piv.write_record(f->st, f->card, rec, len), UK_OK);
    for (uint8_t s = 0x82; s <= 0x93; s++) {
        if (profile == VPIV_PROFILE_YUBICO && s % 2 == 0) {
            char slot[UK_KEY_ID_MAX];
            snprintf(slot, sizeof(slot), "%02x", s);
            free(generate(f, slot, UK_KEY_ECP256, &len));
        } else {
            foreign_cert(f, s);
        }
    }
    reopen(f); /* decided from the card alone, not from what this session did */
    vpiv_card_clear_dirty(f->vc);
    assert_int_equal(uk_driver_piv.find_staging_slot(f->st, f->card, id), UK_E_NO_STAGING_SLOT);
    assert_string_equal(id, "");
    assert_false(vpiv_card_dirty(f->vc));

    /* Freeing one makes it the answer. */
    if (profile == VPIV_PROFILE_YUBICO) {
        assert_int_equal(uk_driver_piv.delete_key(f->st, f->card, "8a"), UK_OK);
        find(f, "8a");
    } else {
        assert_int_equal(uk_driver_piv.delete_cert(f->st, f->card, "8b"), UK_OK);
        find(f, "8b");
    }
    /* Used again; then dropping the record's claim frees its slots. */
    if (profile == VPIV_PROFILE_YUBICO)
        free(generate(f, "8a", UK_KEY_ECP256, &len));
    else
        foreign_cert(f, 0x8b);
    assert_int_equal(uk_driver_piv.find_staging_slot(f->st, f->card, id), UK_E_NO_STAGING_SLOT);
    assert_int_equal(uk_driver_piv.write_record(f->st, f->card, NULL, 0), UK_OK);
    find(f, "94");
}
BOTH(find_staging_slot_with_all_twenty_used_is_no_staging_slot)

static void test_piv_find_staging_slot_refuses_an_unreadable_record(void **state)
{
    piv_fx *f = staging_fx(state, VPIV_PROFILE_YUBICO, true);
    char id[UK_KEY_ID_MAX];
    /* Something of another program in our object: nothing is assumed free. */
    assert_int_equal(vpiv_object_set(f->vc, RECORD_OBJECT, (const uint8_t *)"\x01\x02xy", 4), 0);
    assert_int_equal(uk_driver_piv.find_staging_slot(f->st, f->card, id), UK_E_CARD_ERROR);
    uint8_t buf[UK_DRIVER_RECORD_MAX];
    size_t len = 99;
    assert_int_equal(uk_driver_piv.read_record(f->st, f->card, buf, sizeof(buf), &len),
                     UK_E_CARD_ERROR);
    assert_int_equal(len, 0);
    /* A record of a newer format is not read either. */
    static const uint8_t newer[] = {0x80, 5, 'u', 'k', 'e', 'y', 'd', 0x81, 1, 2, 0x82, 0};
    assert_int_equal(vpiv_object_set(f->vc, RECORD_OBJECT, newer, sizeof(newer)), 0);
    assert_int_equal(uk_driver_piv.find_staging_slot(f->st, f->card, id), UK_E_CARD_ERROR);
}

/* ---- moving a staged key into 9A -------------------------------------- */

static void sign_and_check(piv_fx *f, const char *slot, uk_sig_scheme scheme, const uint8_t *cert,
                           size_t cert_len)
{
    uint8_t digest[32], sig[600];
    size_t dlen = piv_digest(UK_HASH_SHA256, "renewed", digest);
    size_t sl =
        piv_verify_and_sign(f, slot, scheme, UK_HASH_SHA256, digest, dlen, sig, sizeof(sig));
    assert_true(piv_verify(cert, cert_len, false, scheme, UK_HASH_SHA256, digest, dlen, sig, sl));
}

static void test_piv_staged_key_moves_into_9a_and_signs_there(void **state)
{
    piv_fx *f = staging_fx(state, VPIV_PROFILE_YUBICO, true);
    size_t old_spki_len = 0, new_spki_len = 0, old_len = 0, new_len = 0, n = 0;
    char staged[UK_KEY_ID_MAX], backup[UK_KEY_ID_MAX];
    uk_token_cert *certs;

    /* The working pair in 9A. */
    uint8_t *old_spki = generate(f, "9a", UK_KEY_RSA2048, &old_spki_len);
    uint8_t *old_cert = certify(f, "9a", old_spki, old_spki_len, &old_len);

    /* Staging: a new key and its certificate in a free retired slot. */
    assert_int_equal(uk_driver_piv.find_staging_slot(f->st, f->card, staged), UK_OK);
    assert_string_equal(staged, "82");
    uint8_t *new_spki = generate(f, staged, UK_KEY_ECP256, &new_spki_len);
    uint8_t *new_cert = certify(f, staged, new_spki, new_spki_len, &new_len);

    /* Commit: the old pair to a backup slot first, then the new one to 9A;
     * a certificate goes in before its key, so no slot ever pairs a key
     * with another key's certificate. */
    assert_int_equal(uk_driver_piv.find_staging_slot(f->st, f->card, backup), UK_OK);
    assert_string_equal(backup, "83");
    assert_int_equal(uk_driver_piv.put_cert(f->st, f->card, backup, old_cert, old_len), UK_OK);
    piv_seam_reset_counts(f->card);
    assert_int_equal(uk_driver_piv.move_key(f->st, f->card, "9a", backup), UK_OK);
    print_message("move_key: %u APDUs\n", piv_seam_apdus(f->card));
    assert_int_equal(uk_driver_piv.put_cert(f->st, f->card, "9a", new_cert, new_len), UK_OK);
    assert_int_equal(uk_driver_piv.move_key(f->st, f->card, staged, "9a"), UK_OK);
    assert_int_equal(uk_driver_piv.delete_cert(f->st, f->card, staged), UK_OK);
    /* Done twice, the last move finds its source empty. */
    assert_int_equal(uk_driver_piv.move_key(f->st, f->card, staged, "9a"), UK_E_KEY_NOT_FOUND);

    /* The new key signs from 9A and its certificate verifies the signature;
     * the old key still signs from the backup slot. */
    sign_and_check(f, "9a", UK_SIG_ECDSA, new_cert, new_len);
    sign_and_check(f, backup, UK_SIG_RSA_PKCS1, old_cert, old_len);

    /* What every tool now sees. */
    piv_list(f, &certs, &n);
    assert_int_equal(n, 2);
    const uk_token_cert *c9a = piv_find(certs, n, "9a"), *cb = piv_find(certs, n, backup);
    assert_non_null(c9a);
    assert_non_null(cb);
    assert_memory_equal(c9a->der, new_cert, new_len);
    assert_memory_equal(cb->der, old_cert, old_len);
    assert_null(piv_find(certs, n, staged));
    piv_certs_free(certs, n);

    /* After a restart: the staged key is checked by its public key. */
    reopen(f);
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    assert_int_equal(uk_driver_piv.get_public_key(f->st, f->card, "9a", &spki, &spki_len), UK_OK);
    assert_int_equal(spki_len, new_spki_len);
    assert_memory_equal(spki, new_spki, new_spki_len);
    free(spki);
    assert_int_equal(uk_driver_piv.get_public_key(f->st, f->card, staged, &spki, &spki_len),
                     UK_E_KEY_NOT_FOUND);
    sign_and_check(f, "9a", UK_SIG_ECDSA, new_cert, new_len);
    find(f, staged);

    free(old_spki);
    free(old_cert);
    free(new_spki);
    free(new_cert);
}

static void test_piv_move_key_replaces_the_destination_and_needs_a_source(void **state)
{
    piv_fx *f = staging_fx(state, VPIV_PROFILE_YUBICO, true);
    size_t a_len = 0, b_len = 0, l = 0;
    uint8_t *a = generate(f, "84", UK_KEY_ECP256, &a_len);
    uint8_t *b = generate(f, "85", UK_KEY_ECP384, &b_len);
    uint8_t *spki = NULL;
    assert_int_equal(uk_driver_piv.move_key(f->st, f->card, "84", "85"), UK_OK);
    assert_int_equal(uk_driver_piv.get_public_key(f->st, f->card, "85", &spki, &l), UK_OK);
    assert_int_equal(l, a_len);
    assert_memory_equal(spki, a, a_len);
    free(spki);
    assert_int_equal(uk_driver_piv.move_key(f->st, f->card, "84", "86"), UK_E_KEY_NOT_FOUND);
    assert_int_equal(uk_driver_piv.move_key(f->st, f->card, "85", "85"), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_driver_piv.move_key(f->st, f->card, "85", "9b"), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_driver_piv.move_key(f->st, f->card, NULL, "82"), UK_E_INVALID_PARAMS);
    free(a);
    free(b);
}

static void test_piv_delete_key_destroys_the_key_only(void **state)
{
    piv_fx *f = staging_fx(state, VPIV_PROFILE_YUBICO, true);
    size_t spki_len = 0, cert_len = 0, n = 0;
    uk_token_cert *certs;
    uint8_t *spki = generate(f, "9c", UK_KEY_ECP256, &spki_len);
    uint8_t *cert = certify(f, "9c", spki, spki_len, &cert_len);
    assert_int_equal(uk_driver_piv.delete_key(f->st, f->card, "9c"), UK_OK);
    assert_null(f->vc->keys[0x9C]);
    uint8_t *p = NULL;
    size_t l = 0;
    assert_int_equal(uk_driver_piv.get_public_key(f->st, f->card, "9c", &p, &l),
                     UK_E_KEY_NOT_FOUND);
    assert_int_equal(uk_driver_piv.delete_key(f->st, f->card, "9c"), UK_E_KEY_NOT_FOUND);
    /* The certificate stays until delete_cert. */
    piv_list(f, &certs, &n);
    assert_non_null(piv_find(certs, n, "9c"));
    piv_certs_free(certs, n);
    assert_int_equal(uk_driver_piv.delete_cert(f->st, f->card, "9c"), UK_OK);
    assert_int_equal(uk_driver_piv.delete_cert(f->st, f->card, "9c"), UK_OK);
    piv_list(f, &certs, &n);
    assert_int_equal(n, 0);
    piv_certs_free(certs, n);
    free(spki);
    free(cert);
}

static void test_piv_changes_without_the_management_key_are_auth_failed(void **state)
{
    piv_fx *f = *state = piv_fx_new(VPIV_PROFILE_YUBICO, true);
    piv_fx_open(f); /* no key configured, default not allowed */
    static const uint8_t rec[] = {0xD1, 0x01, 0x00};
    assert_int_equal(uk_driver_piv.write_record(f->st, f->card, rec, sizeof(rec)),
                     UK_E_AUTH_FAILED);
    assert_int_equal(uk_driver_piv.update_key_history(f->st, f->card, 1, 0, NULL),
                     UK_E_AUTH_FAILED);
    assert_int_equal(uk_driver_piv.move_key(f->st, f->card, "82", "83"), UK_E_AUTH_FAILED);
    assert_int_equal(uk_driver_piv.delete_key(f->st, f->card, "82"), UK_E_AUTH_FAILED);
    assert_int_equal(uk_driver_piv.delete_cert(f->st, f->card, "82"), UK_E_AUTH_FAILED);
    assert_int_equal(piv_seam_ins_count(f->card, 0xDB), 0);
    assert_int_equal(piv_seam_ins_count(f->card, 0xF6), 0);
}

/* ---- the generic card --------------------------------------------------- */

static void test_piv_generic_card_cannot_move_or_delete_keys(void **state)
{
    piv_fx *f = staging_fx(state, VPIV_PROFILE_GENERIC, true);
    size_t spki_len = 0, cert_len = 0;
    uint8_t *spki = generate(f, "9a", UK_KEY_ECP256, &spki_len);
    piv_seam_reset_counts(f->card);
    assert_int_equal(uk_driver_piv.move_key(f->st, f->card, "9a", "82"), UK_E_NOT_SUPPORTED);
    assert_int_equal(uk_driver_piv.delete_key(f->st, f->card, "9a"), UK_E_NOT_SUPPORTED);
    /* Nothing was sent: a vendor instruction goes only to a card that has it. */
    assert_int_equal(piv_seam_apdus(f->card), 0);
    assert_non_null(f->vc->keys[0x9A]);

    /* The card answers the vendor instruction 6D00 anyway. */
    const uint8_t move[] = {0x00, 0xF6, 0x82, 0x9A};
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(uk_card_transmit(f->card, move, sizeof(move), r, sizeof(r), &rl), UK_OK);
    assert_int_equal(rl, 2);
    assert_int_equal(r[0] << 8 | r[1], 0x6D00);
    assert_int_equal(uk_piv_sw_to_err(0x6D00, NULL), UK_E_NOT_SUPPORTED);

    /* The public key: no metadata, so only from the certificate. */
    uint8_t *p = NULL;
    size_t l = 0;
    assert_int_equal(uk_driver_piv.get_public_key(f->st, f->card, "9a", &p, &l),
                     UK_E_NOT_SUPPORTED);
    uint8_t *cert = certify(f, "9a", spki, spki_len, &cert_len);
    reopen(f);
    assert_int_equal(uk_driver_piv.get_public_key(f->st, f->card, "9a", &p, &l), UK_OK);
    assert_int_equal(l, spki_len);
    assert_memory_equal(p, spki, spki_len);
    assert_int_equal(piv_seam_ins_count(f->card, 0xF7), 0);
    free(p);

    /* Record and Key History work the same as on a vendor card. */
    static const uint8_t rec[] = {0xC0, 0x02, '8', '2', 0xD1, 0x02, 0x9a, 0x82};
    uint8_t buf[UK_DRIVER_RECORD_MAX];
    assert_int_equal(uk_driver_piv.write_record(f->st, f->card, rec, sizeof(rec)), UK_OK);
    assert_int_equal(uk_driver_piv.read_record(f->st, f->card, buf, sizeof(buf), &l), UK_OK);
    assert_int_equal(l, sizeof(rec));
    assert_memory_equal(buf, rec, sizeof(rec));
    assert_int_equal(uk_driver_piv.update_key_history(f->st, f->card, 1, 0, NULL), UK_OK);
    find(f, "83");
    free(spki);
    free(cert);
}

/* ---- the card record ---------------------------------------------------- */

static void record_round_trips(void **state, vpiv_profile profile)
{
    /* Short APDUs: a record over 255 bytes is chained. */
    piv_fx *f = staging_fx(state, profile, false);
    uint8_t buf[UK_DRIVER_RECORD_MAX], blob[UK_DRIVER_RECORD_MAX + 8];
    size_t len = 99;

    assert_int_equal(uk_driver_piv.read_record(f->st, f->card, buf, sizeof(buf), &len), UK_OK);
    assert_int_equal(len, 0); /* absent: empty */

    static const char *const kept[] = {"82", "83"};
    size_t n = record_keeping(blob, sizeof(blob), kept, 2);
    assert_int_equal(uk_driver_piv.write_record(f->st, f->card, blob, n), UK_OK);
    assert_int_equal(uk_driver_piv.read_record(f->st, f->card, buf, sizeof(buf), &len), UK_OK);
    assert_int_equal(len, n);
    assert_memory_equal(buf, blob, n);
    assert_non_null(vpiv_object_get(f->vc, RECORD_OBJECT));

    /* Exactly the limit: D1 82 03 FC <1020 bytes> is 1024 bytes. */
    blob[0] = 0xD1;
    blob[1] = 0x82;
    blob[2] = 0x03;
    blob[3] = 0xFC;
    for (size_t i = 4; i < UK_DRIVER_RECORD_MAX; i++)
        blob[i] = (uint8_t)i;
    assert_int_equal(uk_driver_piv.write_record(f->st, f->card, blob, UK_DRIVER_RECORD_MAX), UK_OK);
    assert_int_equal(uk_driver_piv.read_record(f->st, f->card, buf, sizeof(buf), &len), UK_OK);
    assert_int_equal(len, UK_DRIVER_RECORD_MAX);
    assert_memory_equal(buf, blob, UK_DRIVER_RECORD_MAX);
    assert_true(piv_seam_max_capdu(f->card) <= 5 + 255 + 1);
    /* A buffer too small for it is an error, never a cut record. */
    assert_int_equal(uk_driver_piv.read_record(f->st, f->card, buf, 100, &len),
                     UK_E_LIMIT_EXCEEDED);

    /* One byte more: refused before anything is sent; the record stays. */
    blob[3] = 0xFD;
    blob[UK_DRIVER_RECORD_MAX] = 0;
    piv_seam_reset_counts(f->card);
    assert_int_equal(uk_driver_piv.write_record(f->st, f->card, blob, UK_DRIVER_RECORD_MAX + 1),
                     UK_E_LIMIT_EXCEEDED);
    assert_int_equal(piv_seam_apdus(f->card), 0);
    /* Not a TLV sequence, or a kept key id that is no slot: refused too. */
    static const uint8_t not_tlv[] = {0xD1, 0x05, 0x01};
    static const uint8_t bad_id[] = {0xC0, 0x02, '9', 'b'};
    static const uint8_t long_id[] = {0xC0, 0x10, '8', '2', '8', '2', '8', '2', '8',
                                      '2',  '8',  '2', '8', '2', '8', '2', '8', '2'};
    assert_int_equal(uk_driver_piv.write_record(f->st, f->card, not_tlv, sizeof(not_tlv)),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_driver_piv.write_record(f->st, f->card, bad_id, sizeof(bad_id)),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_driver_piv.write_record(f->st, f->card, long_id, sizeof(long_id)),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(piv_seam_apdus(f->card), 0);
    assert_int_equal(uk_driver_piv.read_record(f->st, f->card, buf, sizeof(buf), &len), UK_OK);
    assert_int_equal(len, UK_DRIVER_RECORD_MAX);

    /* An empty record deletes the object. */
    assert_int_equal(uk_driver_piv.write_record(f->st, f->card, NULL, 0), UK_OK);
    assert_null(vpiv_object_get(f->vc, RECORD_OBJECT));
    assert_int_equal(uk_driver_piv.read_record(f->st, f->card, buf, sizeof(buf), &len), UK_OK);
    assert_int_equal(len, 0);
}
BOTH(record_round_trips)

/* A card that knows no object 5FFF55: GET DATA and PUT DATA of it are 6A80
 * (the tag list sits after a short or an extended Lc). */
static size_t refuse_record_object(void *ctx, const uint8_t *c, size_t n, uint8_t *r, size_t cap)
{
    static const uint8_t tag[] = {0x5C, 0x03, 0x5F, 0xFF, 0x55};
    (void)ctx;
    (void)cap;
    if (c[1] != 0xDB && c[1] != 0xCB)
        return 0;
    for (size_t off = 5; off <= 7; off += 2)
        if (n >= off + sizeof(tag) && memcmp(c + off, tag, sizeof(tag)) == 0)
            return piv_seam_answer(r, NULL, 0, 0x6A80);
    return 0;
}

static void test_piv_record_on_a_card_that_refuses_the_object(void **state)
{
    piv_fx *f = staging_fx(state, VPIV_PROFILE_GENERIC, true);
    uint8_t buf[16];
    size_t len = 99;
    char id[UK_KEY_ID_MAX];
    static const uint8_t rec[] = {0xD1, 0x01, 0x00};
    piv_seam_set_hook(f->card, refuse_record_object, NULL);
    assert_int_equal(uk_driver_piv.read_record(f->st, f->card, buf, sizeof(buf), &len), UK_OK);
    assert_int_equal(len, 0);
    assert_int_equal(uk_driver_piv.write_record(f->st, f->card, rec, sizeof(rec)),
                     UK_E_NOT_SUPPORTED);
    assert_int_equal(uk_driver_piv.find_staging_slot(f->st, f->card, id), UK_OK);
}

/* ---- Key History -------------------------------------------------------- */

static void key_history_reads_back_by_get_data(void **state, vpiv_profile profile)
{
    piv_fx *f = staging_fx(state, profile, true);
    uint8_t obj[300];
    uint16_t sw = 0;
    size_t n = get_data(f, KEY_HISTORY_OBJECT, obj, sizeof(obj), &sw);
    static const uint8_t blank[] = {0x53, 0x08, 0xC1, 0x01, 0x00, 0xC2, 0x01, 0x00, 0xFE, 0x00};
    assert_int_equal(sw, 0x9000);
    assert_int_equal(n, sizeof(blank));
    assert_memory_equal(obj, blank, sizeof(blank));

    assert_int_equal(uk_driver_piv.update_key_history(f->st, f->card, 2, 0, NULL), UK_OK);
    static const uint8_t two[] = {0x53, 0x08, 0xC1, 0x01, 0x02, 0xC2, 0x01, 0x00, 0xFE, 0x00};
    n = get_data(f, KEY_HISTORY_OBJECT, obj, sizeof(obj), &sw);
    assert_int_equal(sw, 0x9000);
    assert_int_equal(n, sizeof(two));
    assert_memory_equal(obj, two, sizeof(two));

    const char *url = "http://certs.example.com/"
                      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_int_equal(uk_driver_piv.update_key_history(f->st, f->card, 1, 3, url), UK_OK);
    n = get_data(f, KEY_HISTORY_OBJECT, obj, sizeof(obj), &sw);
    assert_int_equal(sw, 0x9000);
    size_t ul = strlen(url);
    assert_int_equal(n, 2 + 3 + 3 + 2 + ul + 2);
    assert_int_equal(obj[0], 0x53);
    assert_int_equal(obj[1], 3 + 3 + 2 + ul + 2);
    static const uint8_t counts[] = {0xC1, 0x01, 0x01, 0xC2, 0x01, 0x03, 0xF3};
    assert_memory_equal(obj + 2, counts, sizeof(counts));
    assert_int_equal(obj[9], ul);
    assert_memory_equal(obj + 10, url, ul);
    assert_int_equal(obj[10 + ul], 0xFE);
    assert_int_equal(obj[11 + ul], 0x00);

    /* Values SP 800-73-4 does not allow are refused before any APDU. */
    char long_url[130];
    memset(long_url, 'a', sizeof(long_url) - 1);
    long_url[sizeof(long_url) - 1] = '\0';
    piv_seam_reset_counts(f->card);
    assert_int_equal(uk_driver_piv.update_key_history(f->st, f->card, 21, 0, NULL),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_driver_piv.update_key_history(f->st, f->card, 15, 6, url),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_driver_piv.update_key_history(f->st, f->card, 0, 1, NULL),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_driver_piv.update_key_history(f->st, f->card, 0, 0, url),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_driver_piv.update_key_history(f->st, f->card, 1, 1, long_url),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_driver_piv.update_key_history(f->st, f->card, 1, 1, ""),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(piv_seam_apdus(f->card), 0);

    /* Back to nothing retired. */
    assert_int_equal(uk_driver_piv.update_key_history(f->st, f->card, 0, 0, NULL), UK_OK);
    n = get_data(f, KEY_HISTORY_OBJECT, obj, sizeof(obj), &sw);
    assert_int_equal(n, sizeof(blank));
    assert_memory_equal(obj, blank, sizeof(blank));
}
BOTH(key_history_reads_back_by_get_data)

/* ---- public keys --------------------------------------------------------- */

static void test_piv_get_public_key_from_metadata_matches_generate(void **state)
{
    piv_fx *f = staging_fx(state, VPIV_PROFILE_YUBICO, true);
    static const uk_key_alg algs[] = {UK_KEY_RSA2048, UK_KEY_ECP256, UK_KEY_ECP384};
    static const char *const slots[] = {"86", "87", "88"};
    for (size_t i = 0; i < 3; i++) {
        size_t gl = 0, l = 0;
        uint8_t *g = generate(f, slots[i], algs[i], &gl), *p = NULL;
        reopen(f);
        assert_int_equal(uk_driver_piv.get_public_key(f->st, f->card, slots[i], &p, &l), UK_OK);
        assert_int_equal(l, gl);
        assert_memory_equal(p, g, gl);
        free(p);
        free(g);
    }
    uint8_t *p = NULL;
    size_t l = 0;
    assert_int_equal(uk_driver_piv.get_public_key(f->st, f->card, "89", &p, &l),
                     UK_E_KEY_NOT_FOUND);
    assert_null(p);
    assert_int_equal(uk_driver_piv.get_public_key(f->st, f->card, "9b", &p, &l),
                     UK_E_INVALID_PARAMS);
}

int main(void)
{
#define T(name) cmocka_unit_test_teardown(name, teardown)
    const struct CMUnitTest tests[] = {
        T(test_piv_caps_tell_a_vendor_card_from_a_generic_one),
        T(find_staging_slot_skips_occupied_slots_on_vendor_card),
        T(find_staging_slot_skips_occupied_slots_on_generic_card),
        T(find_staging_slot_with_all_twenty_used_is_no_staging_slot_on_vendor_card),
        T(find_staging_slot_with_all_twenty_used_is_no_staging_slot_on_generic_card),
        T(test_piv_find_staging_slot_refuses_an_unreadable_record),
        T(test_piv_staged_key_moves_into_9a_and_signs_there),
        T(test_piv_move_key_replaces_the_destination_and_needs_a_source),
        T(test_piv_delete_key_destroys_the_key_only),
        T(test_piv_changes_without_the_management_key_are_auth_failed),
        T(test_piv_generic_card_cannot_move_or_delete_keys),
        T(record_round_trips_on_vendor_card),
        T(record_round_trips_on_generic_card),
        T(test_piv_record_on_a_card_that_refuses_the_object),
        T(key_history_reads_back_by_get_data_on_vendor_card),
        T(key_history_reads_back_by_get_data_on_generic_card),
        T(test_piv_get_public_key_from_metadata_matches_generate),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
