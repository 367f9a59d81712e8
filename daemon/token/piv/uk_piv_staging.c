/* Renewal staging: free retired slots, MOVE/DELETE KEY, public keys of
 * slots, the ukeyd card record and Key History. docs/drivers.md, "Renewal
 * staging". */
#include <stdlib.h>
#include <string.h>

#include "uk_crypto.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_piv_int.h"

#define RETIRED_FIRST 0x82
#define RETIRED_LAST  0x95

/* The card record object's value: 53 { 80 "ukeyd", 81 version, 82 blob }. */
static const uint8_t record_magic[] = {'u', 'k', 'e', 'y', 'd'};
#define RECORD_VERSION 1
/* Room for the value and its 53 header. */
#define RECORD_OBJECT_MAX (UK_DRIVER_RECORD_MAX + 32u)

/* Key History: SP 800-73-4 part 1, 3.3.3 (Table 19/20). */
#define KEY_HISTORY_MAX_KEYS 20u
#define KEY_HISTORY_URL_MAX  118u

/* Status words that mean "no such object / the card does not know it". */
static bool sw_absent(uint16_t sw)
{
    return sw == 0x6A82 || sw == 0x6A88 || sw == 0x6A80 || sw == 0x6A86 || sw == 0x6A81;
}

/* PUT DATA 5C 03 tag 53 { value } (value may be empty: deletes the object).
 * After SELECT and management-key authentication. Status words: 9000 OK;
 * 6A80/6A81/6A82 (the card does not know or take this object) NOT_SUPPORTED
 * when unknown_unsupported, 6A84 (no room) LIMIT_EXCEEDED; else mapped. */
static int put_object(uk__piv_state *st, uint32_t tag, const uint8_t *value, size_t len,
                      bool unknown_unsupported)
{
    const size_t cap = len + 16;
    uint8_t *cmd = malloc(cap);
    const uint8_t tl[] = {(uint8_t)(tag >> 16), (uint8_t)(tag >> 8), (uint8_t)tag};
    uk__piv_buf b;
    uint16_t sw = 0;
    int rc;
    if (cmd == NULL)
        return UK_E_NO_MEMORY;
    uk__piv_buf_init(&b, cmd, cap);
    uk__piv_buf_tlv(&b, 0x5C, tl, sizeof(tl));
    uk__piv_buf_tlv(&b, 0x53, value, len);
    if (b.overflow) {
        free(cmd);
        return UK_E_LIMIT_EXCEEDED;
    }
    rc = uk__piv_transceive(&st->io, UK__PIV_INS_PUT_DATA, 0x3F, 0xFF, cmd, b.len, NULL, 0, NULL,
                            &sw);
    free(cmd);
    if (rc != UK_OK || sw == 0x9000)
        return rc;
    if (unknown_unsupported && (sw == 0x6A80 || sw == 0x6A81 || sw == 0x6A82)) {
        UK_LOG_NOTICE("the card does not store PIV object %06X (SW %04X)", (unsigned)tag, sw);
        return UK_E_NOT_SUPPORTED;
    }
    if (sw == 0x6A84) {
        UK_LOG_WARN("the card has no room for PIV object %06X (SW 6A84)", (unsigned)tag);
        return UK_E_LIMIT_EXCEEDED;
    }
    return uk_piv_sw_to_err(sw, NULL);
}

/* SELECT + management-key authentication: the start of every change. */
static int begin_admin(uk__piv_state *st, uk_card *card)
{
    st->io.card = card;
    int rc = uk__piv_select(&st->io);
    if (rc == UK_OK)
        rc = uk__piv_mgm_authenticate(st);
    return rc;
}

/* ---- capabilities ----------------------------------------------------- */

int uk__piv_get_caps(void *state, uk_card *card, unsigned *caps)
{
    const uk__piv_state *st = state;
    (void)card;
    if (caps == NULL)
        return UK_E_INVALID_PARAMS;
    *caps = UK_TOKEN_CAP_GENERATE | UK_TOKEN_CAP_PUT_CERT | UK_TOKEN_CAP_STAGING |
            UK_TOKEN_CAP_RECORD | UK_TOKEN_CAP_KEY_HISTORY;
    if (st->info.move_key)
        *caps |= UK_TOKEN_CAP_MOVE_KEY | UK_TOKEN_CAP_DELETE_KEY;
    if (st->info.metadata)
        *caps |= UK_TOKEN_CAP_KEY_METADATA;
    return UK_OK;
}

/* ---- the card record -------------------------------------------------- */

/* Whether blob is a sequence of BER-TLVs whose UK_RECORD_TAG_KEY_ID values
 * are key ids of this driver; the slots they keep are set in kept[]. */
static bool record_blob_scan(const uint8_t *blob, size_t len, bool kept[256])
{
    const uint8_t *p = blob, *end = blob + len, *v;
    uint32_t tag;
    size_t l;
    int r;
    while ((r = uk__piv_tlv_next(&p, end, &tag, &v, &l)) == 1) {
        if (tag != UK_RECORD_TAG_KEY_ID)
            continue;
        char id[UK_KEY_ID_MAX];
        uint8_t slot;
        if (l == 0 || l >= sizeof(id))
            return false;
        memcpy(id, v, l);
        id[l] = '\0';
        if (!uk__piv_slot_parse(id, &slot))
            return false;
        if (kept != NULL)
            kept[slot] = true;
    }
    return r == 0;
}

/* GET DATA of the record: the blob into buf (cap); *len 0 when absent. */
static int record_read(uk__piv_state *st, uint8_t *buf, size_t cap, size_t *len)
{
    uint8_t *obj = malloc(RECORD_OBJECT_MAX);
    const uint8_t *v, *m, *ver, *blob;
    size_t olen = 0, l, ml, verl, bl;
    uint16_t sw = 0;
    int rc;
    *len = 0;
    if (obj == NULL)
        return UK_E_NO_MEMORY;
    rc = uk__piv_get_data(&st->io, UK__PIV_OBJ_RECORD, obj, RECORD_OBJECT_MAX, &olen, &sw);
    if (rc == UK_E_LIMIT_EXCEEDED) {
        UK_LOG_WARN("PIV object %06X is larger than a ukeyd record", UK__PIV_OBJ_RECORD);
        rc = UK_E_CARD_ERROR;
        goto out;
    }
    if (rc != UK_OK)
        goto out;
    if (sw != 0x9000 && sw_absent(sw)) {
        /* No record, or a card that does not know the object. */
        UK_LOG_DEBUG("no ukeyd record on the card (SW %04X)", sw);
        goto out;
    }
    if (sw != 0x9000) {
        rc = uk_piv_sw_to_err(sw, NULL);
        goto out;
    }
    if (uk__piv_tlv_only(obj, olen, 0x53, &v, &l) != 1) {
        UK_LOG_WARN("PIV object %06X is not one 53 TLV", UK__PIV_OBJ_RECORD);
        rc = UK_E_CARD_ERROR;
        goto out;
    }
    if (l == 0)
        goto out; /* an empty object: no record */
    if (uk__piv_tlv_find(v, l, 0x80, &m, &ml) != 1 || ml != sizeof(record_magic) ||
        memcmp(m, record_magic, ml) != 0 || uk__piv_tlv_find(v, l, 0x81, &ver, &verl) != 1 ||
        verl != 1 || uk__piv_tlv_find(v, l, 0x82, &blob, &bl) != 1) {
        UK_LOG_WARN("PIV object %06X was not written by ukeyd", UK__PIV_OBJ_RECORD);
        rc = UK_E_CARD_ERROR;
        goto out;
    }
    if (ver[0] != RECORD_VERSION) {
        UK_LOG_WARN("the ukeyd record on the card has format %u, this ukeyd reads %u", ver[0],
                    RECORD_VERSION);
        rc = UK_E_CARD_ERROR;
        goto out;
    }
    if (bl > UK_DRIVER_RECORD_MAX || !record_blob_scan(blob, bl, NULL)) {
        UK_LOG_WARN("the ukeyd record on the card is malformed");
        rc = UK_E_CARD_ERROR;
        goto out;
    }
    if (bl > cap) {
        rc = UK_E_LIMIT_EXCEEDED;
        goto out;
    }
    if (bl > 0)
        memcpy(buf, blob, bl);
    *len = bl;
out:
    free(obj);
    return rc;
}

int uk__piv_read_record(void *state, uk_card *card, uint8_t *buf, size_t cap, size_t *len)
{
    uk__piv_state *st = state;
    if (len == NULL || (buf == NULL && cap > 0))
        return UK_E_INVALID_PARAMS;
    *len = 0;
    st->io.card = card;
    int rc = uk__piv_select(&st->io);
    if (rc != UK_OK)
        return rc;
    return record_read(st, buf, cap, len);
}

int uk__piv_write_record(void *state, uk_card *card, const uint8_t *blob, size_t len)
{
    uk__piv_state *st = state;
    uint8_t val[RECORD_OBJECT_MAX];
    uk__piv_buf b;
    const uint8_t version = RECORD_VERSION;
    int rc;
    if (len > UK_DRIVER_RECORD_MAX)
        return UK_E_LIMIT_EXCEEDED;
    if ((blob == NULL && len > 0) || (len > 0 && !record_blob_scan(blob, len, NULL)))
        return UK_E_INVALID_PARAMS;
    uk__piv_buf_init(&b, val, sizeof(val));
    if (len > 0) {
        uk__piv_buf_tlv(&b, 0x80, record_magic, sizeof(record_magic));
        uk__piv_buf_tlv(&b, 0x81, &version, 1);
        uk__piv_buf_tlv(&b, 0x82, blob, len);
    }
    if (b.overflow)
        return UK_E_LIMIT_EXCEEDED;
    rc = begin_admin(st, card);
    if (rc == UK_OK)
        rc = put_object(st, UK__PIV_OBJ_RECORD, val, b.len, true);
    return rc;
}

/* ---- Key History ------------------------------------------------------ */

int uk__piv_update_key_history(void *state, uk_card *card, unsigned on_card, unsigned off_card,
                               const char *url)
{
    uk__piv_state *st = state;
    uint8_t val[16 + KEY_HISTORY_URL_MAX];
    uk__piv_buf b;
    size_t ul = url != NULL ? strlen(url) : 0;
    if (on_card > KEY_HISTORY_MAX_KEYS || off_card > KEY_HISTORY_MAX_KEYS - on_card)
        return UK_E_INVALID_PARAMS;
    if ((off_card > 0 && ul == 0) || (url != NULL && (ul == 0 || ul > KEY_HISTORY_URL_MAX)) ||
        (url != NULL && on_card + off_card == 0))
        return UK_E_INVALID_PARAMS;
    const uint8_t on = (uint8_t)on_card, off = (uint8_t)off_card;
    uk__piv_buf_init(&b, val, sizeof(val));
    uk__piv_buf_tlv(&b, 0xC1, &on, 1);
    uk__piv_buf_tlv(&b, 0xC2, &off, 1);
    if (url != NULL)
        uk__piv_buf_tlv(&b, 0xF3, url, ul);
    uk__piv_buf_tlv(&b, 0xFE, NULL, 0);
    if (b.overflow)
        return UK_E_INTERNAL;
    int rc = begin_admin(st, card);
    if (rc == UK_OK)
        rc = put_object(st, UK__PIV_OBJ_KEY_HISTORY, val, b.len, false);
    return rc;
}

/* ---- keys --------------------------------------------------------------- */

/* GET METADATA of a key slot (cards with metadata only). Returns transport
 * errors; *sw 9000 is a key, 6A82/6A88 no key, anything else unknown (the
 * caller maps and logs it). */
static int key_metadata(uk__piv_state *st, uint8_t slot, uint8_t *md, size_t cap, size_t *len,
                        uint16_t *sw)
{
    int rc = uk__piv_transceive(&st->io, UK__PIV_INS_GET_METADATA, 0x00, slot, NULL, 0, md, cap,
                                len, sw);
    return rc == UK_E_LIMIT_EXCEEDED ? UK_E_CARD_ERROR : rc;
}

static bool sw_no_key(uint16_t sw)
{
    return sw == 0x6A82 || sw == 0x6A88;
}

/* Whether the certificate object of slot is empty or absent: UK_OK with
 * *empty; transport errors. Anything unreadable counts as not empty. */
static int cert_object_empty(uk__piv_state *st, uint8_t slot, uint8_t *obj, size_t cap, bool *empty)
{
    size_t len = 0;
    uint16_t sw = 0;
    const uint8_t *v, *c;
    size_t l, cl;
    *empty = false;
    int rc = uk__piv_get_data(&st->io, uk__piv_slot_object(slot), obj, cap, &len, &sw);
    if (rc == UK_E_LIMIT_EXCEEDED)
        return UK_OK; /* something large is there */
    if (rc != UK_OK)
        return rc;
    if (sw != 0x9000) {
        *empty = sw_absent(sw);
        if (!*empty)
            (void)uk_piv_sw_to_err(sw, NULL); /* logged; the slot counts as used */
        return UK_OK;
    }
    /* 53 {} or a container without a certificate (70 absent or empty). */
    if (uk__piv_tlv_only(obj, len, 0x53, &v, &l) == 1) {
        int r = uk__piv_tlv_find(v, l, 0x70, &c, &cl);
        *empty = l == 0 || (r == 0) || (r == 1 && cl == 0);
    }
    return UK_OK;
}

int uk__piv_find_staging_slot(void *state, uk_card *card, char key_id_out[UK_KEY_ID_MAX])
{
    uk__piv_state *st = state;
    bool kept[256] = {false};
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;
    if (key_id_out == NULL)
        return UK_E_INVALID_PARAMS;
    key_id_out[0] = '\0';
    st->io.card = card;
    buf = malloc(UK__PIV_MAX_OBJECT + 16);
    if (buf == NULL)
        return UK_E_NO_MEMORY;
    rc = uk__piv_select(&st->io);
    if (rc == UK_OK)
        rc = record_read(st, buf, UK_DRIVER_RECORD_MAX, &len);
    if (rc != UK_OK)
        goto out;
    (void)record_blob_scan(buf, len, kept); /* record_read checked it */

    for (unsigned s = RETIRED_FIRST; s <= RETIRED_LAST; s++) {
        uint8_t slot = (uint8_t)s;
        bool empty = false;
        if (kept[slot] || st->key_alg[slot] != 0)
            continue; /* kept by the record, or a key/certificate seen this session */
        if (st->info.metadata) {
            size_t ml = 0;
            uint16_t sw = 0;
            const uint8_t *v;
            size_t l;
            rc = key_metadata(st, slot, buf, 1024, &ml, &sw);
            if (rc != UK_OK)
                goto out;
            if (sw == 0x9000 && uk__piv_tlv_find(buf, ml, 0x01, &v, &l) == 1 && l == 1)
                st->key_alg[slot] = v[0];
            else if (sw != 0x9000 && !sw_no_key(sw))
                (void)uk_piv_sw_to_err(sw, NULL);
            if (!sw_no_key(sw))
                continue; /* a key, or the card cannot tell: not free */
        }
        int er = cert_object_empty(st, slot, buf, UK__PIV_MAX_OBJECT + 16, &empty);
        if (er != UK_OK) {
            rc = er;
            goto out;
        }
        if (!empty)
            continue;
        uk__piv_slot_name(slot, key_id_out);
        rc = UK_OK;
        goto out;
    }
    UK_LOG_NOTICE("no free retired PIV slot for a new key");
    rc = UK_E_NO_STAGING_SLOT;
out:
    free(buf);
    return rc;
}

int uk__piv_move_key(void *state, uk_card *card, const char *from, const char *to)
{
    uk__piv_state *st = state;
    uint8_t src = 0, dst = 0;
    uint16_t sw = 0;
    int rc;
    if (!uk__piv_slot_parse(from, &src) || !uk__piv_slot_parse(to, &dst) || src == dst)
        return UK_E_INVALID_PARAMS;
    if (!st->info.move_key)
        return UK_E_NOT_SUPPORTED; /* never send a vendor instruction the card did not claim */
    rc = begin_admin(st, card);
    if (rc == UK_OK)
        rc = uk__piv_transceive(&st->io, UK__PIV_INS_MOVE_KEY, dst, src, NULL, 0, NULL, 0, NULL,
                                &sw);
    if (rc != UK_OK)
        return rc;
    /* Whatever the answer, what we knew of both slots may be stale now. */
    uint8_t alg = st->key_alg[src];
    st->key_alg[src] = 0;
    st->key_alg[dst] = 0;
    if (sw != 0x9000) {
        rc = uk_piv_sw_to_err(sw, NULL);
        return sw == 0x6A82 || sw == 0x6A88 ? UK_E_KEY_NOT_FOUND : rc;
    }
    st->key_alg[dst] = alg;
    return UK_OK;
}

int uk__piv_delete_key(void *state, uk_card *card, const char *key_id)
{
    uk__piv_state *st = state;
    uint8_t slot = 0;
    uint16_t sw = 0;
    int rc;
    if (!uk__piv_slot_parse(key_id, &slot))
        return UK_E_INVALID_PARAMS;
    if (!st->info.move_key)
        return UK_E_NOT_SUPPORTED;
    rc = begin_admin(st, card);
    if (rc == UK_OK)
        rc = uk__piv_transceive(&st->io, UK__PIV_INS_MOVE_KEY, 0xFF, slot, NULL, 0, NULL, 0, NULL,
                                &sw);
    if (rc != UK_OK)
        return rc;
    st->key_alg[slot] = 0;
    if (sw != 0x9000) {
        rc = uk_piv_sw_to_err(sw, NULL);
        return sw == 0x6A82 || sw == 0x6A88 ? UK_E_KEY_NOT_FOUND : rc;
    }
    return UK_OK;
}

int uk__piv_delete_cert(void *state, uk_card *card, const char *key_id)
{
    uk__piv_state *st = state;
    uint8_t slot = 0;
    if (!uk__piv_slot_parse(key_id, &slot))
        return UK_E_INVALID_PARAMS;
    int rc = begin_admin(st, card);
    if (rc == UK_OK)
        rc = put_object(st, uk__piv_slot_object(slot), NULL, 0, false);
    return rc;
}

/* The SubjectPublicKeyInfo TLV inside a DER certificate: Certificate {
 * tbsCertificate { [0] version?, serial, signature, issuer, validity,
 * subject, subjectPublicKeyInfo, ... } ... }. */
static bool cert_spki(const uint8_t *der, size_t len, const uint8_t **spki, size_t *spki_len)
{
    const uint8_t *v, *tbs, *p, *end, *iv, *start;
    size_t l, tl, il;
    uint32_t tag;
    if (uk__piv_tlv_only(der, len, 0x30, &v, &l) != 1 ||
        uk__piv_tlv_find(v, l, 0x30, &tbs, &tl) != 1)
        return false;
    p = tbs;
    end = tbs + tl;
    if (uk__piv_tlv_next(&p, end, &tag, &iv, &il) != 1)
        return false;
    if (tag == 0xA0 && uk__piv_tlv_next(&p, end, &tag, &iv, &il) != 1)
        return false;
    if (tag != 0x02) /* serialNumber */
        return false;
    /* signature, issuer, validity, subject */
    for (int i = 0; i < 4; i++)
        if (uk__piv_tlv_next(&p, end, &tag, &iv, &il) != 1 || tag != 0x30)
            return false;
    start = p;
    if (uk__piv_tlv_next(&p, end, &tag, &iv, &il) != 1 || tag != 0x30)
        return false;
    *spki = start;
    *spki_len = (size_t)(p - start);
    return true;
}

static int public_key_from_cert(uk__piv_state *st, uint8_t slot, uint8_t **spki, size_t *spki_len)
{
    const size_t cap = UK__PIV_MAX_OBJECT + 16;
    uint8_t *obj = malloc(cap), *der = NULL, alg = 0;
    size_t len = 0, der_len = 0, sl = 0;
    const uint8_t *s;
    uint16_t sw = 0;
    uk_crypto_key_info ki;
    int rc;
    if (obj == NULL)
        return UK_E_NO_MEMORY;
    rc = uk__piv_get_data(&st->io, uk__piv_slot_object(slot), obj, cap, &len, &sw);
    if (rc == UK_E_LIMIT_EXCEEDED)
        rc = UK_E_CERT_INVALID;
    if (rc == UK_OK && sw != 0x9000) {
        if (!sw_absent(sw))
            rc = uk_piv_sw_to_err(sw, NULL);
        len = 0; /* no object: like an empty one */
    }
    if (rc == UK_OK)
        rc = uk__piv_parse_cert_object(obj, len, &der, &der_len, &alg);
    free(obj);
    if (rc != UK_OK)
        return rc;
    if (der == NULL) {
        UK_LOG_NOTICE("PIV slot %02x: no certificate, and the card cannot tell its public key",
                      slot);
        return UK_E_NOT_SUPPORTED;
    }
    if (!cert_spki(der, der_len, &s, &sl) || uk_crypto_spki_info(s, sl, &ki) != UK_OK) {
        free(der);
        return UK_E_CERT_INVALID;
    }
    *spki = malloc(sl);
    if (*spki == NULL) {
        free(der);
        return UK_E_NO_MEMORY;
    }
    memcpy(*spki, s, sl);
    *spki_len = sl;
    free(der);
    if (alg != 0)
        st->key_alg[slot] = alg;
    return UK_OK;
}

int uk__piv_get_public_key(void *state, uk_card *card, const char *key_id, uint8_t **spki,
                           size_t *spki_len)
{
    uk__piv_state *st = state;
    uint8_t slot = 0;
    int rc;
    if (spki == NULL || spki_len == NULL || !uk__piv_slot_parse(key_id, &slot))
        return UK_E_INVALID_PARAMS;
    *spki = NULL;
    *spki_len = 0;
    st->io.card = card;
    rc = uk__piv_select(&st->io);
    if (rc != UK_OK)
        return rc;
    if (!st->info.metadata)
        return public_key_from_cert(st, slot, spki, spki_len);

    uint8_t md[1024];
    const uint8_t *a, *pub;
    size_t len = 0, al, pl;
    uint16_t sw = 0;
    rc = key_metadata(st, slot, md, sizeof(md), &len, &sw);
    if (rc != UK_OK)
        return rc;
    if (sw_no_key(sw)) {
        st->key_alg[slot] = 0;
        return UK_E_KEY_NOT_FOUND;
    }
    if (sw != 0x9000)
        return uk_piv_sw_to_err(sw, NULL);
    if (uk__piv_tlv_find(md, len, 0x01, &a, &al) != 1 || al != 1 ||
        uk__piv_tlv_find(md, len, 0x04, &pub, &pl) != 1) {
        UK_LOG_WARN("the card's key metadata of slot %02x has no algorithm or public key", slot);
        return UK_E_CARD_ERROR;
    }
    rc = uk__piv_pub_to_spki(a[0], pub, pl, spki, spki_len);
    if (rc == UK_OK)
        st->key_alg[slot] = a[0];
    return rc;
}
