/* The APDU engine of the virtual PIV card: SP 800-73-4 part 2 commands plus
 * the common vendor extensions, with command chaining, GET RESPONSE and
 * (optionally) extended length. Every error is the status word a real card
 * answers with. */
#include "vpiv_int.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

enum {
    SW_OK = 0x9000,
    SW_WRONG_LENGTH = 0x6700,
    SW_LAST_CMD_EXPECTED = 0x6883,
    SW_SECURITY_STATUS = 0x6982,
    SW_AUTH_BLOCKED = 0x6983,
    SW_CONDITIONS = 0x6985,
    SW_WRONG_DATA = 0x6A80,
    SW_FILE_NOT_FOUND = 0x6A82,
    SW_NO_SPACE = 0x6A84,
    SW_WRONG_P1P2 = 0x6A86,
    SW_REF_NOT_FOUND = 0x6A88,
    SW_INS_NOT_SUPPORTED = 0x6D00,
    SW_CLA_NOT_SUPPORTED = 0x6E00,
};

static const uint8_t piv_aid[] = {0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00};
static const uint8_t default_mgm[24] = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4,
                                        5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8};
static const char default_pin[] = "123456";
static const char default_puk[] = "12345678";

typedef struct {
    uint8_t cla, ins, p1, p2;
    const uint8_t *data;
    size_t lc;
    size_t ne; /* expected response length; 0 when Le is absent */
    bool has_le;
    bool extended;
} apdu;

/* ---- objects --------------------------------------------------------- */

struct vpiv_object *vpiv_object_get(vpiv_card *card, uint32_t tag)
{
    for (size_t i = 0; i < card->n_objects; i++)
        if (card->objects[i].tag == tag)
            return &card->objects[i];
    return NULL;
}

int vpiv_object_set(vpiv_card *card, uint32_t tag, const uint8_t *data, size_t len)
{
    struct vpiv_object *o = vpiv_object_get(card, tag);
    if (len == 0) {
        /* An empty value deletes the object, as on real cards. */
        if (o != NULL) {
            free(o->data);
            *o = card->objects[--card->n_objects];
            card->dirty = true;
        }
        return 0;
    }
    uint8_t *copy = malloc(len);
    if (copy == NULL)
        return -1;
    memcpy(copy, data, len);
    if (o == NULL) {
        if (card->n_objects == VPIV_MAX_OBJECTS) {
            free(copy);
            return -1;
        }
        o = &card->objects[card->n_objects++];
        o->tag = tag;
    } else {
        free(o->data);
    }
    o->data = copy;
    o->len = len;
    card->dirty = true;
    return 0;
}

/* ---- card life cycle ------------------------------------------------- */

static void ref_set(struct vpiv_ref *ref, const char *value, uint8_t max_tries)
{
    memset(ref->value, 0xFF, sizeof(ref->value));
    memcpy(ref->value, value, strlen(value));
    ref->tries = ref->max_tries = max_tries;
    ref->is_default = true;
}

static int default_objects(vpiv_card *card)
{
    uint8_t tmp[128];
    vpiv_buf b;
    uint8_t rnd[16];

    /* CHUID: FASC-N, GUID, expiry, empty issuer signature. */
    static const uint8_t fascn[25] = {0xD4, 0xE7, 0x39, 0xDA, 0x73, 0x9C, 0xED, 0x39, 0xCE,
                                      0x73, 0x9D, 0x83, 0x68, 0x58, 0x21, 0x08, 0x42, 0x10,
                                      0x84, 0x21, 0xC8, 0x42, 0x10, 0xC3, 0xEB};
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return -1;
    vpiv_buf_init(&b, tmp, sizeof(tmp));
    vpiv_tlv_put(&b, 0x30, fascn, sizeof(fascn));
    vpiv_tlv_put(&b, 0x34, rnd, 16);
    vpiv_tlv_put(&b, 0x35, "20301231", 8);
    vpiv_tlv_put(&b, 0x3E, NULL, 0);
    vpiv_tlv_put(&b, 0xFE, NULL, 0);
    if (vpiv_object_set(card, 0x5FC102, tmp, b.len))
        return -1;

    /* CCC: card identifier (GSC-RID + manufacturer + random), versions. */
    static const uint8_t ccc_head[7] = {0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02};
    uint8_t cardid[21];
    memcpy(cardid, ccc_head, sizeof(ccc_head));
    if (RAND_bytes(cardid + 7, 14) != 1)
        return -1;
    vpiv_buf_init(&b, tmp, sizeof(tmp));
    vpiv_tlv_put(&b, 0xF0, cardid, sizeof(cardid));
    vpiv_tlv_put(&b, 0xF1, "\x21", 1);
    vpiv_tlv_put(&b, 0xF2, "\x21", 1);
    vpiv_tlv_put(&b, 0xF3, NULL, 0);
    vpiv_tlv_put(&b, 0xF4, "\x00", 1);
    vpiv_tlv_put(&b, 0xF5, "\x10", 1);
    static const uint32_t empty_ccc[] = {0xF6, 0xF7, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE};
    for (size_t i = 0; i < sizeof(empty_ccc) / sizeof(empty_ccc[0]); i++)
        vpiv_tlv_put(&b, empty_ccc[i], NULL, 0);
    if (vpiv_object_set(card, 0x5FC107, tmp, b.len))
        return -1;

    /* Discovery: the PIV AID and the PIN usage policy (PIV PIN only). */
    vpiv_buf_init(&b, tmp, sizeof(tmp));
    vpiv_tlv_put(&b, 0x4F, piv_aid, sizeof(piv_aid));
    vpiv_tlv_put(&b, 0x5F2F, "\x40\x00", 2);
    if (vpiv_object_set(card, 0x7E, tmp, b.len))
        return -1;

    /* Key History: no retired keys yet. */
    vpiv_buf_init(&b, tmp, sizeof(tmp));
    vpiv_tlv_put(&b, 0xC1, "\x00", 1);
    vpiv_tlv_put(&b, 0xC2, "\x00", 1);
    vpiv_tlv_put(&b, 0xFE, NULL, 0);
    return vpiv_object_set(card, 0x5FC10C, tmp, b.len);
}

static void clear_persistent(vpiv_card *card)
{
    for (size_t i = 0; i < 256; i++) {
        vpiv_key_free(card->keys[i]);
        card->keys[i] = NULL;
    }
    for (size_t i = 0; i < card->n_objects; i++)
        free(card->objects[i].data);
    card->n_objects = 0;
}

static int factory_state(vpiv_card *card)
{
    clear_persistent(card);
    ref_set(&card->pin, default_pin, VPIV_DEFAULT_TRIES);
    ref_set(&card->puk, default_puk, VPIV_DEFAULT_TRIES);
    card->mgm_alg = VPIV_ALG_3DES;
    memcpy(card->mgm_key, default_mgm, sizeof(default_mgm));
    card->mgm_len = sizeof(default_mgm);
    card->mgm_default = true;
    card->dirty = true;
    return default_objects(card);
}

int vpiv_card_new(vpiv_card **out, const vpiv_options *opt)
{
    vpiv_card *card = calloc(1, sizeof(*card));
    if (card == NULL)
        return -1;
    card->profile = opt->profile;
    card->ext_length = opt->ext_length;
    card->max_object = opt->max_object ? opt->max_object : VPIV_DEFAULT_OBJ;
    card->version[0] = 5;
    card->version[1] = 7;
    card->version[2] = 1;
    card->serial = opt->serial;
    while (card->serial == 0) {
        if (RAND_bytes((uint8_t *)&card->serial, sizeof(card->serial)) != 1)
            break;
        card->serial %= 100000000u;
    }
    if (card->serial == 0 || factory_state(card) != 0) {
        vpiv_card_free(card);
        return -1;
    }
    *out = card;
    return 0;
}

static void drop_pending(vpiv_card *card)
{
    free(card->pending);
    card->pending = NULL;
    card->pending_len = card->pending_off = 0;
}

static void drop_chain(vpiv_card *card)
{
    free(card->chain);
    card->chain = NULL;
    card->chain_len = 0;
}

void vpiv_card_reset(vpiv_card *card)
{
    card->selected = false;
    card->pin_verified = false;
    card->pin_fresh = false;
    card->mgm_authed = false;
    OPENSSL_cleanse(card->witness, sizeof(card->witness));
    OPENSSL_cleanse(card->challenge, sizeof(card->challenge));
    card->witness_len = card->challenge_len = 0;
    drop_chain(card);
    drop_pending(card);
}

void vpiv_card_free(vpiv_card *card)
{
    if (card == NULL)
        return;
    vpiv_card_reset(card);
    clear_persistent(card);
    OPENSSL_cleanse(card, sizeof(*card));
    free(card);
}

bool vpiv_card_dirty(const vpiv_card *card)
{
    return card->dirty;
}

void vpiv_card_clear_dirty(vpiv_card *card)
{
    card->dirty = false;
}

size_t vpiv_card_atr(const vpiv_card *card, uint8_t *atr, size_t cap)
{
    /* T=1 ATR; the historical bytes carry card capabilities (compact-TLV
     * tag 7) whose third byte bit 7 advertises extended Lc/Le, then the
     * card issuer's data "ukeyd". */
    uint8_t a[] = {0x3B, 0xFB, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73,
                   0xC0, 0x21, 0x80, 0x55, 'u',  'k',  'e',  'y',  'd',  0x00};
    if (card->ext_length)
        a[13] |= 0x40;
    uint8_t tck = 0;
    for (size_t i = 1; i < sizeof(a) - 1; i++)
        tck ^= a[i];
    a[sizeof(a) - 1] = tck;
    size_t n = sizeof(a) < cap ? sizeof(a) : cap;
    memcpy(atr, a, n);
    return n;
}

/* ---- APDU parsing ---------------------------------------------------- */

static uint16_t parse_apdu(const uint8_t *c, size_t n, bool ext_ok, apdu *a)
{
    memset(a, 0, sizeof(*a));
    if (n < 4)
        return SW_WRONG_LENGTH;
    a->cla = c[0];
    a->ins = c[1];
    a->p1 = c[2];
    a->p2 = c[3];
    /* No data is an empty range at the end, never NULL: parsers compute
     * data + lc, which is undefined for a null pointer. */
    a->data = c + n;
    if (n == 4)
        return 0;
    if (n == 5) {
        a->has_le = true;
        a->ne = c[4] ? c[4] : 256;
        return 0;
    }
    if (c[4] != 0) {
        a->lc = c[4];
        a->data = c + 5;
        if (n == 5 + a->lc)
            return 0;
        if (n == 6 + a->lc) {
            a->has_le = true;
            a->ne = c[5 + a->lc] ? c[5 + a->lc] : 256;
            return 0;
        }
        return SW_WRONG_LENGTH;
    }
    /* c[4] == 0 with more bytes: extended length. */
    if (!ext_ok || n < 7)
        return SW_WRONG_LENGTH;
    a->extended = true;
    if (n == 7) {
        size_t le = ((size_t)c[5] << 8) | c[6];
        a->has_le = true;
        a->ne = le ? le : 65536;
        return 0;
    }
    a->lc = ((size_t)c[5] << 8) | c[6];
    a->data = c + 7;
    if (a->lc == 0)
        return SW_WRONG_LENGTH;
    if (n == 7 + a->lc)
        return 0;
    if (n == 9 + a->lc) {
        size_t le = ((size_t)c[7 + a->lc] << 8) | c[8 + a->lc];
        a->has_le = true;
        a->ne = le ? le : 65536;
        return 0;
    }
    return SW_WRONG_LENGTH;
}

/* ---- PIN and PUK ----------------------------------------------------- */

static uint16_t tries_sw(const struct vpiv_ref *ref)
{
    return (uint16_t)(0x63C0 | (ref->tries > 15 ? 15 : ref->tries));
}

/* A PIN or PUK is 6 to 8 bytes padded to 8 with 0xFF, with no 0xFF inside. */
static bool ref_format_ok(const uint8_t *v)
{
    size_t len = 0;
    while (len < VPIV_PIN_LEN && v[len] != 0xFF)
        len++;
    for (size_t i = len; i < VPIV_PIN_LEN; i++)
        if (v[i] != 0xFF)
            return false;
    return len >= 6;
}

/* Checks a candidate against a reference, updating its retry counter. */
static uint16_t ref_check(vpiv_card *card, struct vpiv_ref *ref, const uint8_t *candidate)
{
    if (ref->tries == 0)
        return SW_AUTH_BLOCKED;
    if (CRYPTO_memcmp(ref->value, candidate, VPIV_PIN_LEN) != 0) {
        ref->tries--;
        card->dirty = true;
        return tries_sw(ref);
    }
    if (ref->tries != ref->max_tries) {
        ref->tries = ref->max_tries;
        card->dirty = true;
    }
    return SW_OK;
}

static struct vpiv_ref *ref_for(vpiv_card *card, uint8_t p2)
{
    if (p2 == VPIV_KEY_PIN)
        return &card->pin;
    if (p2 == VPIV_KEY_PUK)
        return &card->puk;
    return NULL;
}

static uint16_t cmd_verify(vpiv_card *card, const apdu *a)
{
    struct vpiv_ref *ref = ref_for(card, a->p2);
    if (ref == NULL)
        return SW_REF_NOT_FOUND;
    if (a->p1 == 0xFF) {
        if (a->lc != 0)
            return SW_WRONG_P1P2;
        if (a->p2 == VPIV_KEY_PIN)
            card->pin_verified = card->pin_fresh = false;
        return SW_OK;
    }
    if (a->p1 != 0x00)
        return SW_WRONG_P1P2;
    if (a->lc == 0) {
        if (ref->tries == 0)
            return SW_AUTH_BLOCKED;
        if (a->p2 == VPIV_KEY_PIN && card->pin_verified)
            return SW_OK;
        return tries_sw(ref);
    }
    if (a->lc != VPIV_PIN_LEN)
        return SW_WRONG_DATA;
    uint16_t sw = ref_check(card, ref, a->data);
    if (a->p2 == VPIV_KEY_PIN) {
        card->pin_verified = sw == SW_OK;
        card->pin_fresh = sw == SW_OK;
    }
    return sw;
}

static uint16_t cmd_change_reference(vpiv_card *card, const apdu *a)
{
    struct vpiv_ref *ref = ref_for(card, a->p2);
    if (a->p1 != 0x00 || ref == NULL)
        return ref ? SW_WRONG_P1P2 : SW_REF_NOT_FOUND;
    if (a->lc != 2 * VPIV_PIN_LEN)
        return SW_WRONG_DATA;
    if (ref->tries == 0)
        return SW_AUTH_BLOCKED;
    if (!ref_format_ok(a->data + VPIV_PIN_LEN))
        return SW_WRONG_DATA;
    uint16_t sw = ref_check(card, ref, a->data);
    if (sw != SW_OK)
        return sw;
    memcpy(ref->value, a->data + VPIV_PIN_LEN, VPIV_PIN_LEN);
    ref->is_default = false;
    card->dirty = true;
    return SW_OK;
}

static uint16_t cmd_reset_retry(vpiv_card *card, const apdu *a)
{
    if (a->p1 != 0x00 || a->p2 != VPIV_KEY_PIN)
        return SW_WRONG_P1P2;
    if (a->lc != 2 * VPIV_PIN_LEN)
        return SW_WRONG_DATA;
    if (card->puk.tries == 0)
        return SW_AUTH_BLOCKED;
    if (!ref_format_ok(a->data + VPIV_PIN_LEN))
        return SW_WRONG_DATA;
    uint16_t sw = ref_check(card, &card->puk, a->data);
    if (sw != SW_OK)
        return sw;
    memcpy(card->pin.value, a->data + VPIV_PIN_LEN, VPIV_PIN_LEN);
    card->pin.tries = card->pin.max_tries;
    card->pin.is_default = false;
    card->pin_verified = card->pin_fresh = false;
    card->dirty = true;
    return SW_OK;
}

/* ---- SELECT, GET DATA, PUT DATA -------------------------------------- */

static uint16_t cmd_select(vpiv_card *card, const apdu *a, vpiv_buf *out)
{
    if (a->p1 != 0x04 || (a->p2 != 0x00 && a->p2 != 0x0C))
        return SW_FILE_NOT_FOUND;
    /* Right-truncated AIDs select too (SP 800-73-4 part 1, 2.2). */
    if (a->lc < 5 || a->lc > sizeof(piv_aid) || memcmp(a->data, piv_aid, a->lc) != 0)
        return SW_FILE_NOT_FOUND;
    if (!card->selected) {
        card->pin_verified = card->pin_fresh = card->mgm_authed = false;
        card->selected = true;
    }
    if (a->p2 == 0x0C)
        return SW_OK;
    uint8_t tmp[96], alg[32];
    vpiv_buf b, al;
    vpiv_buf_init(&al, alg, sizeof(alg));
    static const uint8_t algs[] = {VPIV_ALG_RSA1024, VPIV_ALG_RSA2048, VPIV_ALG_ECCP256,
                                   VPIV_ALG_ECCP384};
    for (size_t i = 0; i < sizeof(algs); i++)
        vpiv_tlv_put(&al, 0x80, &algs[i], 1);
    vpiv_tlv_put(&al, 0x06, "\x00", 1);
    vpiv_buf_init(&b, tmp, sizeof(tmp));
    vpiv_tlv_put(&b, 0x4F, piv_aid + 5, 6);
    vpiv_tlv_put_tag(&b, 0x79);
    vpiv_tlv_put_len(&b, 7);
    vpiv_tlv_put(&b, 0x4F, piv_aid, 5);
    vpiv_tlv_put(&b, 0x50, "ukeyd virtual PIV", 17);
    vpiv_tlv_put(&b, 0xAC, alg, al.len);
    vpiv_tlv_put(out, 0x61, tmp, b.len);
    return SW_OK;
}

/* Reads the 5C tag list of GET DATA / PUT DATA. */
static bool parse_tag_list(const uint8_t **p, const uint8_t *end, uint32_t *tag)
{
    uint32_t t;
    const uint8_t *v;
    size_t l;
    if (vpiv_tlv_next(p, end, &t, &v, &l) != 1 || t != 0x5C || l < 1 || l > 3)
        return false;
    *tag = 0;
    for (size_t i = 0; i < l; i++)
        *tag = (*tag << 8) | v[i];
    return true;
}

static uint32_t object_wrapper(uint32_t tag)
{
    return tag == 0x7E || tag == 0x7F61 ? tag : 0x53;
}

static bool object_tag_valid(uint32_t tag)
{
    return tag == 0x7E || tag == 0x7F61 || (tag >= 0x5FC101 && tag <= 0x5FC1FF) ||
           (tag >= 0x5FFF00 && tag <= 0x5FFFFF);
}

static bool object_needs_pin(uint32_t tag)
{
    return tag == 0x5FC103 || tag == 0x5FC108 || tag == 0x5FC109 || tag == 0x5FC121;
}

static uint16_t cmd_get_data(vpiv_card *card, const apdu *a, vpiv_buf *out)
{
    if (a->p1 != 0x3F || a->p2 != 0xFF)
        return SW_WRONG_P1P2;
    const uint8_t *p = a->data;
    uint32_t tag;
    if (!parse_tag_list(&p, a->data + a->lc, &tag) || p != a->data + a->lc)
        return SW_WRONG_DATA;
    if (!object_tag_valid(tag))
        return SW_FILE_NOT_FOUND;
    if (object_needs_pin(tag) && !card->pin_verified)
        return SW_SECURITY_STATUS;
    struct vpiv_object *o = vpiv_object_get(card, tag);
    if (o == NULL)
        return SW_FILE_NOT_FOUND;
    vpiv_tlv_put(out, object_wrapper(tag), o->data, o->len);
    return SW_OK;
}

static uint16_t cmd_put_data(vpiv_card *card, const uint8_t *data, size_t len, const apdu *a)
{
    if (a->p1 != 0x3F || a->p2 != 0xFF)
        return SW_WRONG_P1P2;
    if (!card->mgm_authed)
        return SW_SECURITY_STATUS;
    const uint8_t *p = data, *end = data + len, *v;
    uint32_t tag, wrapper;
    size_t l;
    if (!parse_tag_list(&p, end, &tag) || vpiv_tlv_next(&p, end, &wrapper, &v, &l) != 1 || p != end)
        return SW_WRONG_DATA;
    if (!object_tag_valid(tag) || wrapper != object_wrapper(tag))
        return SW_WRONG_DATA;
    if (l > card->max_object)
        return SW_NO_SPACE;
    if (vpiv_object_set(card, tag, v, l) != 0)
        return SW_NO_SPACE;
    return SW_OK;
}

/* ---- GENERAL AUTHENTICATE -------------------------------------------- */

typedef struct {
    const uint8_t *v[6]; /* indexed by tag - 0x80, tags 80..85 */
    size_t len[6];
    bool has[6];
} auth_template;

static bool parse_auth_template(const uint8_t *data, size_t len, auth_template *t)
{
    const uint8_t *p = data, *v;
    uint32_t tag;
    size_t l;
    memset(t, 0, sizeof(*t));
    if (vpiv_tlv_next(&p, data + len, &tag, &v, &l) != 1 || tag != 0x7C || p != data + len)
        return false;
    const uint8_t *q = v, *end = v + l, *iv;
    size_t il;
    int rc;
    while ((rc = vpiv_tlv_next(&q, end, &tag, &iv, &il)) == 1) {
        if (tag < 0x80 || tag > 0x85 || t->has[tag - 0x80])
            return false;
        t->has[tag - 0x80] = true;
        t->v[tag - 0x80] = iv;
        t->len[tag - 0x80] = il;
    }
    return rc == 0;
}

static uint16_t mgm_auth(vpiv_card *card, const apdu *a, const auth_template *t, vpiv_buf *out)
{
    size_t bl = vpiv_mgm_block(card->mgm_alg);
    uint8_t tmp[16], enc[16];
    if (a->p1 != card->mgm_alg)
        return SW_WRONG_DATA;
    card->mgm_authed = false;
    if (t->has[0] && t->len[0] == 0 && !t->has[1] && !t->has[2]) {
        /* Step 1 of mutual authentication: the card's encrypted witness. */
        if (RAND_bytes(card->witness, (int)bl) != 1 ||
            vpiv_mgm_crypt(card->mgm_alg, card->mgm_key, card->mgm_len, true, card->witness, bl,
                           enc) != 0)
            return SW_CONDITIONS;
        card->witness_len = bl;
        vpiv_tlv_put_tag(out, 0x7C);
        vpiv_tlv_put_len(out, 2 + bl);
        vpiv_tlv_put(out, 0x80, enc, bl);
        return SW_OK;
    }
    if (t->has[0] && t->len[0] == bl && !t->has[2]) {
        /* Step 2: the host proves it decrypted the witness; it may send a
         * challenge of its own for the card to encrypt. */
        bool ok = card->witness_len == bl && CRYPTO_memcmp(card->witness, t->v[0], bl) == 0;
        OPENSSL_cleanse(card->witness, sizeof(card->witness));
        card->witness_len = 0;
        if (!ok)
            return SW_SECURITY_STATUS;
        if (t->has[1]) {
            if (t->len[1] != bl || vpiv_mgm_crypt(card->mgm_alg, card->mgm_key, card->mgm_len, true,
                                                  t->v[1], bl, enc) != 0)
                return SW_WRONG_DATA;
            vpiv_tlv_put_tag(out, 0x7C);
            vpiv_tlv_put_len(out, 2 + bl);
            vpiv_tlv_put(out, 0x82, enc, bl);
        }
        card->mgm_authed = true;
        return SW_OK;
    }
    if (t->has[1] && t->len[1] == 0 && !t->has[0] && !t->has[2]) {
        /* External authentication, step 1: a plain challenge. */
        if (RAND_bytes(card->challenge, (int)bl) != 1)
            return SW_CONDITIONS;
        card->challenge_len = bl;
        vpiv_tlv_put_tag(out, 0x7C);
        vpiv_tlv_put_len(out, 2 + bl);
        vpiv_tlv_put(out, 0x81, card->challenge, bl);
        return SW_OK;
    }
    if (t->has[2] && t->len[2] == bl && !t->has[0] && !t->has[1]) {
        bool ok = card->challenge_len == bl &&
                  vpiv_mgm_crypt(card->mgm_alg, card->mgm_key, card->mgm_len, true, card->challenge,
                                 bl, tmp) == 0 &&
                  CRYPTO_memcmp(tmp, t->v[2], bl) == 0;
        OPENSSL_cleanse(card->challenge, sizeof(card->challenge));
        card->challenge_len = 0;
        if (!ok)
            return SW_SECURITY_STATUS;
        card->mgm_authed = true;
        return SW_OK;
    }
    return SW_WRONG_DATA;
}

static uint8_t effective_pin_policy(uint8_t slot, uint8_t policy)
{
    if (policy != VPIV_PIN_POLICY_DEFAULT)
        return policy;
    if (slot == VPIV_KEY_SIGN)
        return VPIV_PIN_POLICY_ALWAYS;
    if (slot == VPIV_KEY_CARDAUTH)
        return VPIV_PIN_POLICY_NEVER;
    return VPIV_PIN_POLICY_ONCE;
}

static uint16_t key_auth(vpiv_card *card, const apdu *a, const auth_template *t, vpiv_buf *out)
{
    struct vpiv_key *key = card->keys[a->p2];
    if (key == NULL)
        return SW_REF_NOT_FOUND;
    if (a->p1 != key->alg)
        return SW_WRONG_DATA;
    switch (key->pin_policy) {
    case VPIV_PIN_POLICY_ONCE:
        if (!card->pin_verified)
            return SW_SECURITY_STATUS;
        break;
    case VPIV_PIN_POLICY_ALWAYS:
        if (!card->pin_verified || !card->pin_fresh)
            return SW_SECURITY_STATUS;
        break;
    default:
        break;
    }
    if (!t->has[2] || t->len[2] != 0)
        return SW_WRONG_DATA;
    uint8_t res[600];
    vpiv_buf r;
    vpiv_buf_init(&r, res, sizeof(res));
    int rc = -1;
    if (t->has[1] && !t->has[5]) {
        if (vpiv_alg_is_rsa(key->alg))
            rc = vpiv_key_rsa_raw(key, t->v[1], t->len[1], &r);
        else if (t->len[1] >= 1 && t->len[1] <= 64)
            rc = vpiv_key_ecdsa(key, t->v[1], t->len[1], &r);
    } else if (t->has[5] && !t->has[1] && vpiv_alg_is_ec(key->alg)) {
        rc = vpiv_key_ecdh(key, t->v[5], t->len[5], &r);
    }
    if (key->pin_policy == VPIV_PIN_POLICY_ALWAYS)
        card->pin_fresh = false;
    if (rc != 0 || r.overflow) {
        OPENSSL_cleanse(res, sizeof(res));
        return SW_WRONG_DATA;
    }
    uint8_t hdr[8];
    vpiv_buf h;
    vpiv_buf_init(&h, hdr, sizeof(hdr));
    vpiv_tlv_put_tag(&h, 0x82);
    vpiv_tlv_put_len(&h, r.len);
    vpiv_tlv_put_tag(out, 0x7C);
    vpiv_tlv_put_len(out, h.len + r.len);
    vpiv_buf_put(out, hdr, h.len);
    vpiv_buf_put(out, res, r.len);
    OPENSSL_cleanse(res, sizeof(res));
    return SW_OK;
}

static uint16_t cmd_general_authenticate(vpiv_card *card, const uint8_t *data, size_t len,
                                         const apdu *a, vpiv_buf *out)
{
    auth_template t;
    if (!parse_auth_template(data, len, &t))
        return SW_WRONG_DATA;
    if (a->p2 == VPIV_KEY_MGM)
        return mgm_auth(card, a, &t, out);
    if (vpiv_slot_is_asym(a->p2))
        return key_auth(card, a, &t, out);
    return SW_WRONG_P1P2;
}

/* ---- key management -------------------------------------------------- */

/* Reads the optional vendor PIN/touch policy tags (AA, AB). */
static bool parse_policies(const uint8_t *p, size_t n, uint8_t *pin, uint8_t *touch)
{
    const uint8_t *v;
    size_t l;
    int rc;
    *pin = VPIV_PIN_POLICY_DEFAULT;
    *touch = 0;
    if ((rc = vpiv_tlv_find(p, n, 0xAA, &v, &l)) < 0 || (rc == 1 && (l != 1 || v[0] > 3)))
        return false;
    if (rc == 1)
        *pin = v[0];
    if ((rc = vpiv_tlv_find(p, n, 0xAB, &v, &l)) < 0 || (rc == 1 && (l != 1 || v[0] > 3)))
        return false;
    if (rc == 1)
        *touch = v[0];
    return true;
}

static void store_key(vpiv_card *card, uint8_t slot, struct vpiv_key *key, uint8_t pin_policy,
                      uint8_t touch)
{
    key->pin_policy = effective_pin_policy(slot, pin_policy);
    key->touch_policy = touch ? touch : 1;
    vpiv_key_free(card->keys[slot]);
    card->keys[slot] = key;
    card->dirty = true;
}

static uint16_t cmd_generate(vpiv_card *card, const uint8_t *data, size_t len, const apdu *a,
                             vpiv_buf *out)
{
    if (a->p1 != 0x00 || !vpiv_slot_is_asym(a->p2))
        return SW_WRONG_P1P2;
    if (!card->mgm_authed)
        return SW_SECURITY_STATUS;
    const uint8_t *p = data, *v, *alg;
    uint32_t tag;
    size_t l, alen;
    if (vpiv_tlv_next(&p, data + len, &tag, &v, &l) != 1 || tag != 0xAC || p != data + len ||
        vpiv_tlv_find(v, l, 0x80, &alg, &alen) != 1 || alen != 1)
        return SW_WRONG_DATA;
    if (!vpiv_alg_is_rsa(alg[0]) && !vpiv_alg_is_ec(alg[0]))
        return SW_WRONG_DATA;
    uint8_t pin_policy = 0, touch = 0;
    if (card->profile == VPIV_PROFILE_YUBICO && !parse_policies(v, l, &pin_policy, &touch))
        return SW_WRONG_DATA;
    struct vpiv_key *key = vpiv_key_generate(alg[0]);
    if (key == NULL)
        return SW_CONDITIONS;
    uint8_t pub[600];
    vpiv_buf b;
    vpiv_buf_init(&b, pub, sizeof(pub));
    vpiv_key_put_public(&b, key);
    vpiv_tlv_put(out, 0x7F49, pub, b.len);
    store_key(card, a->p2, key, pin_policy, touch);
    return SW_OK;
}

static uint16_t cmd_import_key(vpiv_card *card, const uint8_t *data, size_t len, const apdu *a)
{
    if (!vpiv_slot_is_asym(a->p2))
        return SW_WRONG_P1P2;
    if (!card->mgm_authed)
        return SW_SECURITY_STATUS;
    if (!vpiv_alg_is_rsa(a->p1) && !vpiv_alg_is_ec(a->p1))
        return SW_WRONG_P1P2;
    uint8_t pin_policy, touch;
    if (!parse_policies(data, len, &pin_policy, &touch))
        return SW_WRONG_DATA;
    struct vpiv_key *key = vpiv_key_import(a->p1, data, len);
    if (key == NULL)
        return SW_WRONG_DATA;
    store_key(card, a->p2, key, pin_policy, touch);
    return SW_OK;
}

static uint16_t cmd_set_mgm(vpiv_card *card, const uint8_t *data, size_t len, const apdu *a)
{
    if (a->p1 != 0xFF || (a->p2 != 0xFF && a->p2 != 0xFE))
        return SW_WRONG_P1P2;
    if (!card->mgm_authed)
        return SW_SECURITY_STATUS;
    if (len < 3 || data[1] != VPIV_KEY_MGM || vpiv_mgm_keylen(data[0]) == 0 ||
        data[2] != vpiv_mgm_keylen(data[0]) || len != 3 + (size_t)data[2])
        return SW_WRONG_DATA;
    card->mgm_alg = data[0];
    OPENSSL_cleanse(card->mgm_key, sizeof(card->mgm_key));
    memcpy(card->mgm_key, data + 3, data[2]);
    card->mgm_len = data[2];
    card->mgm_default = card->mgm_alg == VPIV_ALG_3DES && card->mgm_len == sizeof(default_mgm) &&
                        memcmp(card->mgm_key, default_mgm, sizeof(default_mgm)) == 0;
    card->dirty = true;
    return SW_OK;
}

static uint16_t cmd_move_key(vpiv_card *card, const apdu *a)
{
    uint8_t dst = a->p1, src = a->p2;
    if (!vpiv_slot_is_asym(src) || (dst != 0xFF && (!vpiv_slot_is_asym(dst) || dst == src)))
        return SW_WRONG_P1P2;
    if (!card->mgm_authed)
        return SW_SECURITY_STATUS;
    if (card->keys[src] == NULL)
        return SW_REF_NOT_FOUND;
    if (dst == 0xFF) {
        vpiv_key_free(card->keys[src]);
    } else {
        /* The destination's key, if any, is replaced. Certificates are data
         * objects and stay where they are. */
        vpiv_key_free(card->keys[dst]);
        card->keys[dst] = card->keys[src];
    }
    card->keys[src] = NULL;
    card->dirty = true;
    return SW_OK;
}

static void put_byte_tlv(vpiv_buf *out, uint32_t tag, uint8_t v)
{
    vpiv_tlv_put(out, tag, &v, 1);
}

static uint16_t cmd_get_metadata(vpiv_card *card, const apdu *a, vpiv_buf *out)
{
    if (a->p1 != 0x00)
        return SW_WRONG_P1P2;
    uint8_t slot = a->p2;
    struct vpiv_ref *ref = ref_for(card, slot);
    if (ref != NULL) {
        uint8_t retries[2] = {ref->max_tries, ref->tries};
        put_byte_tlv(out, 0x01, 0xFF);
        put_byte_tlv(out, 0x05, ref->is_default ? 1 : 0);
        vpiv_tlv_put(out, 0x06, retries, 2);
        return SW_OK;
    }
    if (slot == VPIV_KEY_MGM) {
        put_byte_tlv(out, 0x01, card->mgm_alg);
        vpiv_tlv_put(out, 0x02, "\x00\x01", 2);
        put_byte_tlv(out, 0x05, card->mgm_default ? 1 : 0);
        return SW_OK;
    }
    if (!vpiv_slot_is_asym(slot))
        return SW_WRONG_P1P2;
    struct vpiv_key *key = card->keys[slot];
    if (key == NULL)
        return SW_FILE_NOT_FOUND;
    uint8_t policy[2] = {key->pin_policy, key->touch_policy};
    uint8_t pub[600];
    vpiv_buf b;
    vpiv_buf_init(&b, pub, sizeof(pub));
    vpiv_key_put_public(&b, key);
    put_byte_tlv(out, 0x01, key->alg);
    vpiv_tlv_put(out, 0x02, policy, 2);
    put_byte_tlv(out, 0x03, key->origin);
    vpiv_tlv_put(out, 0x04, pub, b.len);
    return SW_OK;
}

static uint16_t cmd_reset(vpiv_card *card)
{
    if (card->pin.tries != 0 || card->puk.tries != 0)
        return SW_CONDITIONS;
    if (factory_state(card) != 0)
        return SW_CONDITIONS;
    vpiv_card_reset(card);
    card->selected = true;
    return SW_OK;
}

static uint16_t cmd_set_pin_retries(vpiv_card *card, const apdu *a)
{
    if (a->p1 == 0 || a->p2 == 0)
        return SW_WRONG_P1P2;
    if (!card->mgm_authed || !card->pin_verified)
        return SW_SECURITY_STATUS;
    ref_set(&card->pin, default_pin, a->p1);
    ref_set(&card->puk, default_puk, a->p2);
    card->dirty = true;
    return SW_OK;
}

/* ---- dispatch -------------------------------------------------------- */

static uint16_t dispatch(vpiv_card *card, const apdu *a, const uint8_t *data, size_t len,
                         vpiv_buf *out)
{
    apdu full = *a;
    full.data = data;
    full.lc = len;
    if (a->ins == 0xA4)
        return cmd_select(card, &full, out);
    if (!card->selected)
        return SW_INS_NOT_SUPPORTED;
    switch (a->ins) {
    case 0xCB:
        return cmd_get_data(card, &full, out);
    case 0xDB:
        return cmd_put_data(card, data, len, &full);
    case 0x20:
        return cmd_verify(card, &full);
    case 0x24:
        return cmd_change_reference(card, &full);
    case 0x2C:
        return cmd_reset_retry(card, &full);
    case 0x87:
        return cmd_general_authenticate(card, data, len, &full, out);
    case 0x47:
        return cmd_generate(card, data, len, &full, out);
    default:
        break;
    }
    if (card->profile != VPIV_PROFILE_YUBICO)
        return SW_INS_NOT_SUPPORTED;
    switch (a->ins) {
    case 0xFD:
        vpiv_buf_put(out, card->version, 3);
        return SW_OK;
    case 0xF8: {
        uint8_t s[4] = {(uint8_t)(card->serial >> 24), (uint8_t)(card->serial >> 16),
                        (uint8_t)(card->serial >> 8), (uint8_t)card->serial};
        vpiv_buf_put(out, s, 4);
        return SW_OK;
    }
    case 0xF7:
        return cmd_get_metadata(card, &full, out);
    case 0xFE:
        return cmd_import_key(card, data, len, &full);
    case 0xFF:
        return cmd_set_mgm(card, data, len, &full);
    case 0xF6:
        return cmd_move_key(card, &full);
    case 0xFB:
        return cmd_reset(card);
    case 0xFA:
        return cmd_set_pin_retries(card, &full);
    default:
        return SW_INS_NOT_SUPPORTED;
    }
}

static size_t finish(uint8_t *r, size_t n, uint16_t sw)
{
    r[n] = (uint8_t)(sw >> 8);
    r[n + 1] = (uint8_t)sw;
    return n + 2;
}

/* Sends up to max bytes of the pending response; 61xx announces the rest. */
static size_t send_pending(vpiv_card *card, size_t max, uint8_t *r)
{
    size_t left = card->pending_len - card->pending_off;
    size_t n = left < max ? left : max;
    memcpy(r, card->pending + card->pending_off, n);
    card->pending_off += n;
    left -= n;
    if (left == 0) {
        drop_pending(card);
        return finish(r, n, SW_OK);
    }
    return finish(r, n, (uint16_t)(0x6100 | (left > 255 ? 0 : left)));
}

size_t vpiv_card_apdu(vpiv_card *card, const uint8_t *capdu, size_t clen, uint8_t *rapdu)
{
    apdu a;
    uint16_t sw = parse_apdu(capdu, clen, card->ext_length, &a);
    if (sw != 0)
        return finish(rapdu, 0, sw);
    if ((a.cla & ~0x10) != 0)
        return finish(rapdu, 0, SW_CLA_NOT_SUPPORTED);

    if (a.ins == 0xC0) {
        if (card->pending == NULL || a.p1 != 0 || a.p2 != 0)
            return finish(rapdu, 0, card->pending ? SW_WRONG_P1P2 : SW_CONDITIONS);
        return send_pending(card, a.has_le ? a.ne : 256, rapdu);
    }
    drop_pending(card);

    if (card->chain_len > 0 &&
        (a.ins != card->chain_ins || a.p1 != card->chain_p1 || a.p2 != card->chain_p2)) {
        drop_chain(card);
        return finish(rapdu, 0, SW_LAST_CMD_EXPECTED);
    }
    if (a.cla & 0x10 || card->chain_len > 0) {
        if (card->chain_len + a.lc > VPIV_MAX_CHAIN) {
            drop_chain(card);
            return finish(rapdu, 0, SW_WRONG_LENGTH);
        }
        uint8_t *grown = realloc(card->chain, card->chain_len + a.lc + 1);
        if (grown == NULL) {
            drop_chain(card);
            return finish(rapdu, 0, SW_CONDITIONS);
        }
        card->chain = grown;
        if (a.lc > 0)
            memcpy(card->chain + card->chain_len, a.data, a.lc);
        card->chain_len += a.lc;
        card->chain_ins = a.ins;
        card->chain_p1 = a.p1;
        card->chain_p2 = a.p2;
        if (a.cla & 0x10)
            return finish(rapdu, 0, SW_OK);
    }

    uint8_t *resp = malloc(VPIV_MAX_APDU);
    if (resp == NULL) {
        drop_chain(card);
        return finish(rapdu, 0, SW_CONDITIONS);
    }
    vpiv_buf out;
    vpiv_buf_init(&out, resp, VPIV_MAX_APDU - 2);
    if (card->chain_len > 0)
        sw = dispatch(card, &a, card->chain, card->chain_len, &out);
    else
        sw = dispatch(card, &a, a.data, a.lc, &out);
    drop_chain(card);
    if (out.overflow)
        sw = SW_CONDITIONS;
    if (sw != SW_OK || out.len == 0) {
        OPENSSL_cleanse(resp, out.len);
        free(resp);
        return finish(rapdu, 0, sw);
    }
    /* Short APDUs get at most 256 bytes at a time; the rest waits for GET
     * RESPONSE. Extended APDUs get everything they asked for at once. */
    size_t max = a.extended ? (a.has_le ? a.ne : 65536) : (a.has_le ? a.ne : 256);
    card->pending = resp;
    card->pending_len = out.len;
    card->pending_off = 0;
    return send_pending(card, max, rapdu);
}
