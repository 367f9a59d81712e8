/* Card administration: management-key authentication, key generation and
 * certificate writing. */
#include <stdlib.h>
#include <string.h>

#include "uk_crypto.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_piv_int.h"
#include "uk_secret.h"

/* The well-known factory key (3DES 0102030405060708 three times). Used only
 * when the configuration has no key and allow_default_mgm_key is set. */
static const uint8_t default_mgm_key[24] = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4,
                                            5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8};

static bool mgm_cipher(uint8_t alg, uk_crypto_cipher *c)
{
    switch (alg) {
    case UK__PIV_ALG_3DES:
        *c = UK_CRYPTO_3DES;
        return true;
    case UK__PIV_ALG_AES128:
        *c = UK_CRYPTO_AES128;
        return true;
    case UK__PIV_ALG_AES192:
        *c = UK_CRYPTO_AES192;
        return true;
    case UK__PIV_ALG_AES256:
        *c = UK_CRYPTO_AES256;
        return true;
    default:
        return false;
    }
}

/* The management key's algorithm: GET METADATA 9B on vendor cards, else
 * from the key length (24 bytes: 3DES, the PIV default; 16: AES-128; 32:
 * AES-256). */
static int mgm_alg(uk__piv_state *st, size_t key_len, uint8_t *alg)
{
    if (st->info.metadata) {
        uint8_t md[64];
        size_t len = 0;
        uint16_t sw = 0;
        const uint8_t *v;
        size_t l;
        int rc = uk__piv_transceive(&st->io, UK__PIV_INS_GET_METADATA, 0x00, UK__PIV_KEY_MGM, NULL,
                                    0, md, sizeof(md), &len, &sw);
        if (rc != UK_OK && rc != UK_E_LIMIT_EXCEEDED)
            return rc;
        if (rc == UK_OK && sw == 0x9000 && uk__piv_tlv_find(md, len, 0x01, &v, &l) == 1 && l == 1) {
            *alg = v[0];
            return UK_OK;
        }
        if (rc == UK_OK)
            (void)uk_piv_sw_to_err(sw, NULL);
    }
    switch (key_len) {
    case 24:
        *alg = UK__PIV_ALG_3DES;
        return UK_OK;
    case 16:
        *alg = UK__PIV_ALG_AES128;
        return UK_OK;
    case 32:
        *alg = UK__PIV_ALG_AES256;
        return UK_OK;
    default:
        UK_LOG_ERR("a PIV management key of %zu bytes matches no algorithm", key_len);
        return UK_E_AUTH_FAILED;
    }
}

/* One GENERAL AUTHENTICATE on the management key; the 7C contents of the
 * answer go to out (cap). SW failures become AUTH_FAILED. */
static int mgm_step(uk__piv_state *st, uint8_t alg, const uint8_t *cmd, size_t cmd_len,
                    uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t resp[64];
    size_t len = 0;
    uint16_t sw = 0;
    const uint8_t *v;
    size_t l;
    int rc = uk__piv_transceive(&st->io, UK__PIV_INS_GENERAL_AUTH, alg, UK__PIV_KEY_MGM, cmd,
                                cmd_len, resp, sizeof(resp), &len, &sw);
    if (rc == UK_E_LIMIT_EXCEEDED)
        rc = UK_E_CARD_ERROR;
    if (rc != UK_OK)
        return rc;
    if (sw != 0x9000) {
        rc = uk_piv_sw_to_err(sw, NULL);
        uk_wipe(resp, sizeof(resp));
        /* Wrong key (6982), wrong algorithm (6A80) ...: the card refused the
         * key we have. Removal and the like were returned above. */
        UK_LOG_ERR("the card refused management-key authentication (%s)", uk_err_name(rc));
        return UK_E_AUTH_FAILED;
    }
    if (uk__piv_tlv_only(resp, len, 0x7C, &v, &l) != 1 || l > cap) {
        uk_wipe(resp, sizeof(resp));
        UK_LOG_WARN("the card's management-key answer is malformed");
        return UK_E_CARD_ERROR;
    }
    memcpy(out, v, l);
    *out_len = l;
    uk_wipe(resp, sizeof(resp));
    return UK_OK;
}

/* Mutual authentication with the management key (SP 800-73-4 part 2,
 * appendix A.1 style): the card's encrypted witness is decrypted and sent
 * back with our own challenge, and the card must return that challenge
 * encrypted, proving it holds the same key. */
int uk__piv_mgm_authenticate(uk__piv_state *st)
{
    const uint8_t *key = st->mgm_key;
    size_t key_len = st->mgm_key_len;
    uint8_t alg = 0, tmp[64], cmd[64], witness[16], challenge[16], expect[16];
    const uint8_t *v;
    size_t tmp_len = 0, l;
    uk_crypto_cipher cipher;
    uk__piv_buf b;
    int rc;

    if (key_len == 0) {
        if (!st->allow_default_mgm_key) {
            UK_LOG_ERR("no PIV management key is configured and the default key is not allowed");
            return UK_E_AUTH_FAILED;
        }
        key = default_mgm_key;
        key_len = sizeof(default_mgm_key);
    }
    rc = mgm_alg(st, key_len, &alg);
    if (rc != UK_OK)
        return rc;
    if (!mgm_cipher(alg, &cipher) || uk_crypto_cipher_key_len(cipher) != key_len) {
        UK_LOG_ERR("the card's management key (algorithm %02x) does not match the configured "
                   "key of %zu bytes",
                   alg, key_len);
        return UK_E_AUTH_FAILED;
    }
    size_t bl = uk_crypto_cipher_block(cipher);

    /* Step 1: 7C { 80 00 } -> 7C { 80 E(witness) } */
    static const uint8_t step1[] = {0x7C, 0x02, 0x80, 0x00};
    rc = mgm_step(st, alg, step1, sizeof(step1), tmp, sizeof(tmp), &tmp_len);
    if (rc != UK_OK)
        goto out;
    if (uk__piv_tlv_find(tmp, tmp_len, 0x80, &v, &l) != 1 || l != bl) {
        UK_LOG_WARN("the card's witness is malformed");
        rc = UK_E_CARD_ERROR;
        goto out;
    }
    rc = uk_crypto_ecb(cipher, key, key_len, false, v, bl, witness);
    if (rc == UK_OK)
        rc = uk_crypto_random(challenge, bl);
    if (rc == UK_OK)
        rc = uk_crypto_ecb(cipher, key, key_len, true, challenge, bl, expect);
    if (rc != UK_OK)
        goto out;

    /* Step 2: 7C { 80 witness, 81 challenge } -> 7C { 82 E(challenge) } */
    uk__piv_buf_init(&b, cmd, sizeof(cmd));
    uk__piv_buf_tl(&b, 0x7C, 4 + 2 * bl);
    uk__piv_buf_tlv(&b, 0x80, witness, bl);
    uk__piv_buf_tlv(&b, 0x81, challenge, bl);
    rc = mgm_step(st, alg, cmd, b.len, tmp, sizeof(tmp), &tmp_len);
    if (rc != UK_OK)
        goto out;
    if (uk__piv_tlv_find(tmp, tmp_len, 0x82, &v, &l) != 1 || l != bl ||
        !uk__piv_mem_equal(v, expect, bl)) {
        UK_LOG_ERR("the card did not prove it holds the management key");
        rc = UK_E_AUTH_FAILED;
        goto out;
    }
    rc = UK_OK;
out:
    uk_wipe(tmp, sizeof(tmp));
    uk_wipe(cmd, sizeof(cmd));
    uk_wipe(witness, sizeof(witness));
    uk_wipe(challenge, sizeof(challenge));
    uk_wipe(expect, sizeof(expect));
    return rc;
}

/* ---- key generation ---------------------------------------------------- */

static unsigned rsa_bits(uint8_t alg)
{
    switch (alg) {
    case UK__PIV_ALG_RSA1024:
        return 1024;
    case UK__PIV_ALG_RSA2048:
        return 2048;
    case UK__PIV_ALG_RSA3072:
        return 3072;
    case UK__PIV_ALG_RSA4096:
        return 4096;
    default:
        return 0;
    }
}

int uk__piv_pub_to_spki(uint8_t alg, const uint8_t *v, size_t l, uint8_t **spki, size_t *spki_len)
{
    const uint8_t *n, *e, *pt;
    size_t nl, el, ptl;
    unsigned bits = rsa_bits(alg);
    uk_crypto_curve curve = alg == UK__PIV_ALG_ECCP256   ? UK_CRYPTO_CURVE_P256
                            : alg == UK__PIV_ALG_ECCP384 ? UK_CRYPTO_CURVE_P384
                                                         : UK_CRYPTO_CURVE_NONE;
    int rc;
    *spki = NULL;
    *spki_len = 0;
    if (bits > 0) {
        if (uk__piv_tlv_find(v, l, 0x81, &n, &nl) != 1 ||
            uk__piv_tlv_find(v, l, 0x82, &e, &el) != 1)
            return UK_E_CARD_ERROR;
        rc = uk_crypto_spki_from_rsa(n, nl, e, el, spki, spki_len);
    } else if (curve != UK_CRYPTO_CURVE_NONE) {
        if (uk__piv_tlv_find(v, l, 0x86, &pt, &ptl) != 1)
            return UK_E_CARD_ERROR;
        rc = uk_crypto_spki_from_ec(curve, pt, ptl, spki, spki_len);
    } else {
        UK_LOG_NOTICE("a PIV public key of algorithm %02x is not one ukeyd knows", alg);
        return UK_E_NOT_SUPPORTED;
    }
    if (rc == UK_E_INVALID_PARAMS)
        rc = UK_E_KEY_REJECTED;
    if (rc != UK_OK)
        return rc;
    /* The key must be the one the algorithm says. */
    uk_crypto_key_info ki;
    rc = uk_crypto_spki_info(*spki, *spki_len, &ki);
    bool ok = rc == UK_OK && (bits > 0 ? ki.type == UK_CRYPTO_KEY_RSA && ki.bits == bits
                                       : ki.type == UK_CRYPTO_KEY_EC && ki.curve == curve);
    if (!ok) {
        UK_LOG_WARN("the card's public key is not of the algorithm it claims (%02x)", alg);
        free(*spki);
        *spki = NULL;
        *spki_len = 0;
        return UK_E_KEY_REJECTED;
    }
    return UK_OK;
}

/* 7F49 { 81 n, 82 e } or 7F49 { 86 point } -> SPKI DER. */
static int public_key_spki(uint8_t alg, const uint8_t *resp, size_t len, uint8_t **spki,
                           size_t *spki_len)
{
    const uint8_t *v;
    size_t l;
    if (uk__piv_tlv_only(resp, len, 0x7F49, &v, &l) != 1) {
        UK_LOG_WARN("the generated public key is not one 7F49 TLV");
        return UK_E_CARD_ERROR;
    }
    /* The card must have made the key it was asked for. */
    return uk__piv_pub_to_spki(alg, v, l, spki, spki_len);
}

int uk__piv_generate_key(void *state, uk_card *card, const char *key_id, uk_key_alg alg,
                         uint8_t **spki, size_t *spki_len)
{
    uk__piv_state *st = state;
    uint8_t slot = 0, a;
    int rc;
    st->io.card = card;
    if (spki == NULL || spki_len == NULL || !uk__piv_slot_parse(key_id, &slot))
        return UK_E_INVALID_PARAMS;
    *spki = NULL;
    *spki_len = 0;
    switch (alg) {
    case UK_KEY_RSA2048:
        a = UK__PIV_ALG_RSA2048;
        break;
    case UK_KEY_ECP256:
        a = UK__PIV_ALG_ECCP256;
        break;
    case UK_KEY_ECP384:
        a = UK__PIV_ALG_ECCP384;
        break;
    default:
        return UK_E_NOT_SUPPORTED;
    }
    rc = uk__piv_select(&st->io);
    if (rc == UK_OK)
        rc = uk__piv_mgm_authenticate(st);
    if (rc != UK_OK)
        return rc;

    const uint8_t cmd[] = {0xAC, 0x03, 0x80, 0x01, a};
    uint8_t resp[1024];
    size_t len = 0;
    uint16_t sw = 0;
    rc = uk__piv_transceive(&st->io, UK__PIV_INS_GENERATE, 0x00, slot, cmd, sizeof(cmd), resp,
                            sizeof(resp), &len, &sw);
    if (rc == UK_E_LIMIT_EXCEEDED)
        rc = UK_E_CARD_ERROR;
    if (rc == UK_OK && sw != 0x9000)
        rc = uk_piv_sw_to_err(sw, NULL);
    /* Whatever happened, the slot's old key may be gone: forget what we knew. */
    st->key_alg[slot] = 0;
    if (rc != UK_OK)
        return rc;
    rc = public_key_spki(a, resp, len, spki, spki_len);
    if (rc == UK_OK)
        st->key_alg[slot] = a;
    return rc;
}

/* ---- certificates ------------------------------------------------------ */

int uk__piv_put_cert(void *state, uk_card *card, const char *key_id, const uint8_t *der, size_t len)
{
    uk__piv_state *st = state;
    uint8_t slot = 0;
    uk_crypto_key_info ki;
    int rc;
    st->io.card = card;
    if (der == NULL || len == 0 || !uk__piv_slot_parse(key_id, &slot))
        return UK_E_INVALID_PARAMS;
    /* Never write something that list_certs would call broken. */
    if (uk_crypto_cert_key_info(der, len, &ki) != UK_OK)
        return UK_E_CERT_INVALID;
    if (len > UK__PIV_MAX_OBJECT - 16)
        return UK_E_LIMIT_EXCEEDED;

    uint32_t tag = uk__piv_slot_object(slot);
    uint8_t *cmd = malloc(UK__PIV_MAX_DATA);
    if (cmd == NULL)
        return UK_E_NO_MEMORY;
    /* 5C 03 tag, 53 { 70 cert, 71 00 (not compressed), FE 00 } */
    uk__piv_buf b;
    size_t inner = len + (len < 0x80 ? 2 : len <= 0xFF ? 3 : len <= 0xFFFF ? 4 : 5) + 3 + 2;
    const uint8_t tl[] = {(uint8_t)(tag >> 16), (uint8_t)(tag >> 8), (uint8_t)tag};
    uk__piv_buf_init(&b, cmd, UK__PIV_MAX_DATA);
    uk__piv_buf_tlv(&b, 0x5C, tl, sizeof(tl));
    uk__piv_buf_tl(&b, 0x53, inner);
    uk__piv_buf_tlv(&b, 0x70, der, len);
    uk__piv_buf_tlv(&b, 0x71, "\x00", 1);
    uk__piv_buf_tlv(&b, 0xFE, NULL, 0);
    if (b.overflow) {
        free(cmd);
        return UK_E_LIMIT_EXCEEDED;
    }
    rc = uk__piv_select(&st->io);
    if (rc == UK_OK)
        rc = uk__piv_mgm_authenticate(st);
    if (rc == UK_OK) {
        uint16_t sw = 0;
        rc = uk__piv_transceive(&st->io, UK__PIV_INS_PUT_DATA, 0x3F, 0xFF, cmd, b.len, NULL, 0,
                                NULL, &sw);
        if (rc == UK_OK && sw != 0x9000)
            rc = uk_piv_sw_to_err(sw, NULL);
    }
    free(cmd);
    return rc;
}
