/* The PIV driver: the vtable, identity, PIN and signing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uk_crypto.h"
#include "uk_driver_md.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_piv_int.h"
#include "uk_secret.h"

#define PIV_PIN_LEN 8

/* ---- slots ----------------------------------------------------------- */

static bool slot_is_key(uint8_t slot)
{
    return slot == 0x9A || slot == 0x9C || slot == 0x9D || slot == 0x9E ||
           (slot >= 0x82 && slot <= 0x95);
}

bool uk__piv_slot_parse(const char *key_id, uint8_t *slot)
{
    unsigned v = 0;
    if (key_id == NULL || strlen(key_id) != 2)
        return false;
    for (int i = 0; i < 2; i++) {
        char c = key_id[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return false;
        v = v * 16 + d;
    }
    if (!slot_is_key((uint8_t)v))
        return false;
    *slot = (uint8_t)v;
    return true;
}

void uk__piv_slot_name(uint8_t slot, char out[UK_KEY_ID_MAX])
{
    snprintf(out, UK_KEY_ID_MAX, "%02x", slot);
}

uint32_t uk__piv_slot_object(uint8_t slot)
{
    switch (slot) {
    case 0x9A:
        return 0x5FC105;
    case 0x9C:
        return 0x5FC10A;
    case 0x9D:
        return 0x5FC10B;
    case 0x9E:
        return 0x5FC101;
    default:
        break;
    }
    if (slot >= 0x82 && slot <= 0x95)
        return 0x5FC10Du + (uint32_t)(slot - 0x82);
    return 0;
}

/* ---- probe, open, close ---------------------------------------------- */

static int piv_probe(uk_card *card)
{
    uk__piv_io io;
    int rc = uk__piv_io_init(&io, card);
    if (rc != UK_OK)
        return rc;
    rc = uk__piv_select(&io);
    uk__piv_io_close(&io);
    return rc;
}

/* Decodes the 40 five-bit characters of a FASC-N (4 data bits least
 * significant first, then odd parity). false if a parity bit is wrong. */
static bool fascn_decode(const uint8_t *f, size_t len, uint8_t out[40])
{
    if (len != 25)
        return false;
    for (size_t c = 0; c < 40; c++) {
        unsigned v = 0, ones = 0;
        for (size_t b = 0; b < 5; b++) {
            size_t bit = c * 5 + b;
            unsigned x = (f[bit / 8] >> (7 - bit % 8)) & 1u;
            ones += x;
            if (b < 4)
                v |= x << b;
        }
        if (ones % 2 != 1)
            return false;
        out[c] = (uint8_t)v;
    }
    return true;
}

/* The card number from the CHUID: the FASC-N's agency, system and
 * credential numbers ("AAAA-SSSS-CCCCCC") when they are real; the GUID (first
 * 8 bytes in hex) when the FASC-N is the all-9 placeholder most non-federal
 * cards carry, or absent. See docs/drivers.md. */
static void chuid_serial(const uint8_t *obj, size_t len, char *out, size_t cap)
{
    const uint8_t *v, *f, *g;
    size_t l, fl, gl;
    uint8_t ch[40];
    out[0] = '\0';
    if (uk__piv_tlv_only(obj, len, 0x53, &v, &l) != 1)
        return;
    if (uk__piv_tlv_find(v, l, 0x30, &f, &fl) == 1 && fascn_decode(f, fl, ch) && ch[0] == 0xB &&
        ch[5] == 0xD && ch[10] == 0xD) {
        bool digits = true, placeholder = true;
        static const int pos[] = {1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16};
        for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++)
            digits = digits && ch[pos[i]] <= 9;
        for (int i = 1; i <= 4; i++)
            placeholder = placeholder && (ch[i] == 9 || ch[i] == 0);
        if (digits && !placeholder && cap >= 17) {
            size_t o = 0;
            for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
                if (pos[i] == 6 || pos[i] == 11)
                    out[o++] = '-';
                out[o++] = (char)('0' + ch[pos[i]]);
            }
            out[o] = '\0';
            return;
        }
    }
    if (uk__piv_tlv_find(v, l, 0x34, &g, &gl) == 1 && gl == 16 && cap >= 17) {
        bool zero = true;
        for (size_t i = 0; i < gl; i++)
            zero = zero && g[i] == 0;
        if (zero)
            return;
        for (size_t i = 0; i < 8; i++)
            snprintf(out + 2 * i, cap - 2 * i, "%02X", g[i]);
    }
}

static bool version_at_least(const uint8_t v[3], uint8_t a, uint8_t b, uint8_t c)
{
    if (v[0] != a)
        return v[0] > a;
    if (v[1] != b)
        return v[1] > b;
    return v[2] >= c;
}

static int read_identity(uk__piv_state *st, uk_token_identity *id)
{
    uint8_t buf[512];
    size_t len = 0;
    uint16_t sw = 0;
    int rc;

    memset(id, 0, sizeof(*id));
    rc = uk__piv_transceive(&st->io, UK__PIV_INS_GET_VERSION, 0, 0, NULL, 0, buf, 16, &len, &sw);
    if (rc != UK_OK && rc != UK_E_LIMIT_EXCEEDED)
        return rc;
    if (rc == UK_OK && sw == 0x9000 && len == 3) {
        st->info.vendor = true;
        memcpy(st->info.version, buf, 3);
        st->info.metadata = version_at_least(buf, 5, 3, 0);
        st->info.move_key = version_at_least(buf, 5, 7, 0);
    } else if (rc == UK_OK) {
        (void)uk_piv_sw_to_err(sw, NULL); /* logged, not an error: a plain PIV card */
    }
    if (st->info.vendor) {
        rc = uk__piv_transceive(&st->io, UK__PIV_INS_GET_SERIAL, 0, 0, NULL, 0, buf, 16, &len, &sw);
        if (rc != UK_OK && rc != UK_E_LIMIT_EXCEEDED)
            return rc;
        if (rc == UK_OK && sw == 0x9000 && len == 4) {
            uint32_t s =
                (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
            snprintf(id->serial, sizeof(id->serial), "%u", s);
        } else if (rc == UK_OK) {
            (void)uk_piv_sw_to_err(sw, NULL);
        }
    }
    if (id->serial[0] == '\0') {
        rc = uk__piv_get_data(&st->io, 0x5FC102, buf, sizeof(buf), &len, &sw);
        if (rc != UK_OK && rc != UK_E_LIMIT_EXCEEDED)
            return rc;
        if (rc == UK_OK && sw == 0x9000)
            chuid_serial(buf, len, id->serial, sizeof(id->serial));
        else if (rc == UK_OK)
            (void)uk_piv_sw_to_err(sw, NULL);
        uk_wipe(buf, sizeof(buf));
    }
    if (id->serial[0] != '\0')
        snprintf(id->label, sizeof(id->label), "PIV %s", id->serial);
    else
        snprintf(id->label, sizeof(id->label), "PIV");
    snprintf(id->model, sizeof(id->model), "%s",
             st->info.vendor ? "PIV (YubiKey-compatible)" : "PIV");
    return UK_OK;
}

static void piv_close(void *state)
{
    uk__piv_state *st = state;
    if (st == NULL)
        return;
    uk__piv_io_close(&st->io);
    uk_wipe(st, sizeof(*st));
    free(st);
}

static int piv_open(uk_card *card, const uk_driver_options *opt, void **state,
                    uk_token_identity *id)
{
    uk__piv_state *st = calloc(1, sizeof(*st));
    int rc;
    if (st == NULL)
        return UK_E_NO_MEMORY;
    rc = uk__piv_io_init(&st->io, card);
    if (rc != UK_OK) {
        free(st);
        return rc;
    }
    st->info.ext_length = st->io.ext;
    if (opt != NULL) {
        if (opt->piv_mgm_key_len > sizeof(st->mgm_key)) {
            UK_LOG_ERR("the configured PIV management key is longer than 32 bytes");
            piv_close(st);
            return UK_E_CONFIG_INVALID;
        }
        memcpy(st->mgm_key, opt->piv_mgm_key, opt->piv_mgm_key_len);
        st->mgm_key_len = opt->piv_mgm_key_len;
        st->allow_default_mgm_key = opt->allow_default_mgm_key;
    }
    rc = uk__piv_select(&st->io);
    if (rc == UK_OK)
        rc = read_identity(st, id);
    if (rc != UK_OK) {
        piv_close(st);
        return rc;
    }
    *state = st;
    return UK_OK;
}

void uk_piv_get_info(const void *state, uk_piv_info *info)
{
    const uk__piv_state *st = state;
    *info = st->info;
}

/* ---- PIN ------------------------------------------------------------- */

static int piv_pin_status(void *state, uk_card *card, int *retries_left)
{
    uk__piv_state *st = state;
    uint16_t sw = 0;
    int rc;
    *retries_left = -1;
    st->io.card = card;
    rc = uk__piv_select(&st->io);
    if (rc != UK_OK)
        return rc;
    rc = uk__piv_transceive(&st->io, UK__PIV_INS_VERIFY, 0x00, UK__PIV_KEY_PIN, NULL, 0, NULL, 0,
                            NULL, &sw);
    if (rc != UK_OK)
        return rc;
    if (sw == 0x9000) {
        /* Verified in this session: the counter is not told, except by GET
         * METADATA on vendor cards. Unknown otherwise. */
        if (st->info.metadata) {
            uint8_t md[64];
            size_t len = 0;
            const uint8_t *v;
            size_t l;
            rc = uk__piv_transceive(&st->io, UK__PIV_INS_GET_METADATA, 0x00, UK__PIV_KEY_PIN, NULL,
                                    0, md, sizeof(md), &len, &sw);
            if (rc != UK_OK && rc != UK_E_LIMIT_EXCEEDED)
                return rc;
            if (rc == UK_OK && sw == 0x9000 && uk__piv_tlv_find(md, len, 0x06, &v, &l) == 1 &&
                l == 2)
                *retries_left = v[1];
        }
        return UK_OK;
    }
    /* Not failures here: the counter is what we asked for. */
    if ((sw & 0xFFF0) == 0x63C0) {
        *retries_left = sw & 0x0F;
        return UK_OK;
    }
    if (sw == 0x6983) {
        *retries_left = 0;
        return UK_OK;
    }
    return uk_piv_sw_to_err(sw, NULL);
}

/* SP 800-73-4: 6 to 8 characters, padded with FF, into out. We accept printable ASCII (vendor
 * cards take more than digits) and never send a PIN the card would have to reject on format,
 * which could cost a retry. */
static int pad_pin(const uk_secret *pin, uint8_t out[PIV_PIN_LEN])
{
    const uint8_t *p = pin ? uk_secret_get0_data(pin) : NULL;
    size_t n = pin ? uk_secret_get0_len(pin) : 0;
    if (p == NULL || n < 6 || n > PIV_PIN_LEN)
        return UK_E_PIN_INVALID;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7E)
            return UK_E_PIN_INVALID;
    memset(out, 0xFF, PIV_PIN_LEN);
    memcpy(out, p, n);
    return UK_OK;
}

static int piv_verify_pin(void *state, uk_card *card, const uk_secret *pin, int *retries_left)
{
    uk__piv_state *st = state;
    uint8_t padded[PIV_PIN_LEN];
    uint16_t sw = 0;
    int rc;
    *retries_left = -1;
    st->io.card = card;
    if ((rc = pad_pin(pin, padded)) != UK_OK)
        return rc;
    rc = uk__piv_select(&st->io);
    if (rc != UK_OK) {
        uk_wipe(padded, sizeof(padded));
        return rc;
    }
    rc = uk__piv_transceive(&st->io, UK__PIV_INS_VERIFY, 0x00, UK__PIV_KEY_PIN, padded,
                            sizeof(padded), NULL, 0, NULL, &sw);
    uk_wipe(padded, sizeof(padded));
    if (rc != UK_OK)
        return rc;
    return uk_piv_sw_to_err(sw, retries_left);
}

/* CHANGE REFERENCE DATA of the PIN (SP 800-73-4 3.2.2): old and new, each padded to 8 bytes.
 * The card counts a wrong old PIN like a wrong VERIFY (63Cx, 6983 when blocked). */
static int piv_change_pin(void *state, uk_card *card, const uk_secret *old_pin,
                          const uk_secret *new_pin, int *retries_left)
{
    uk__piv_state *st = state;
    uint8_t data[2 * PIV_PIN_LEN];
    uint16_t sw = 0;
    int rc;
    *retries_left = -1;
    st->io.card = card;
    if ((rc = pad_pin(old_pin, data)) != UK_OK ||
        (rc = pad_pin(new_pin, data + PIV_PIN_LEN)) != UK_OK)
        goto out;
    if ((rc = uk__piv_select(&st->io)) != UK_OK)
        goto out;
    rc = uk__piv_transceive(&st->io, UK__PIV_INS_CHANGE_REFERENCE, 0x00, UK__PIV_KEY_PIN, data,
                            sizeof(data), NULL, 0, NULL, &sw);
    if (rc == UK_OK)
        rc = uk_piv_sw_to_err(sw, retries_left);
out:
    uk_wipe(data, sizeof(data));
    return rc;
}

/* ---- signing --------------------------------------------------------- */

static size_t rsa_bytes(uint8_t alg)
{
    switch (alg) {
    case UK__PIV_ALG_RSA1024:
        return 128;
    case UK__PIV_ALG_RSA2048:
        return 256;
    case UK__PIV_ALG_RSA3072:
        return 384;
    case UK__PIV_ALG_RSA4096:
        return 512;
    default:
        return 0;
    }
}

static size_t ec_bytes(uint8_t alg)
{
    return alg == UK__PIV_ALG_ECCP256 ? 32 : alg == UK__PIV_ALG_ECCP384 ? 48 : 0;
}

/* The algorithm of the key in slot, learned once: GET METADATA on vendor
 * cards, else the certificate's public key. */
static int slot_alg(uk__piv_state *st, uint8_t slot, uint8_t *alg)
{
    uint16_t sw = 0;
    size_t len = 0;
    int rc;
    if (st->key_alg[slot] != 0) {
        *alg = st->key_alg[slot];
        return UK_OK;
    }
    if (st->info.metadata) {
        uint8_t md[1024];
        const uint8_t *v;
        size_t l;
        rc = uk__piv_transceive(&st->io, UK__PIV_INS_GET_METADATA, 0x00, slot, NULL, 0, md,
                                sizeof(md), &len, &sw);
        if (rc != UK_OK && rc != UK_E_LIMIT_EXCEEDED)
            return rc;
        if (rc == UK_OK && sw == 0x9000 && uk__piv_tlv_find(md, len, 0x01, &v, &l) == 1 && l == 1) {
            st->key_alg[slot] = v[0];
            *alg = v[0];
            return UK_OK;
        }
        if (rc == UK_OK && (sw == 0x6A82 || sw == 0x6A88)) {
            UK_LOG_NOTICE("no key in PIV slot %02x", slot);
            return UK_E_KEY_NOT_FOUND;
        }
    }
    uint8_t *obj = malloc(UK__PIV_MAX_OBJECT + 16);
    uint8_t *der = NULL;
    size_t der_len = 0;
    uint8_t a = 0;
    if (obj == NULL)
        return UK_E_NO_MEMORY;
    rc = uk__piv_get_data(&st->io, uk__piv_slot_object(slot), obj, UK__PIV_MAX_OBJECT + 16, &len,
                          &sw);
    if (rc == UK_OK && sw != 0x9000)
        rc = uk_piv_sw_to_err(sw, NULL);
    if (rc == UK_OK)
        rc = uk__piv_parse_cert_object(obj, len, &der, &der_len, &a);
    free(obj);
    free(der);
    if (rc == UK_E_NOT_FOUND || (rc == UK_OK && der == NULL) || rc == UK_E_CERT_INVALID) {
        UK_LOG_NOTICE("the algorithm of the key in PIV slot %02x is unknown (no metadata, no "
                      "certificate)",
                      slot);
        return UK_E_KEY_NOT_FOUND;
    }
    if (rc != UK_OK)
        return rc;
    if (a == 0)
        return UK_E_NOT_SUPPORTED;
    st->key_alg[slot] = a;
    *alg = a;
    return UK_OK;
}

/* GENERAL AUTHENTICATE: 7C { 82 00, tag input } -> 7C { 82 result }; tag 81 (challenge: sign,
 * RSA decipher) or 85 (exponentiation: ECDH). */
static int general_authenticate(uk__piv_state *st, uint8_t alg, uint8_t slot, uint8_t tag,
                                const uint8_t *in, size_t in_len, uint8_t *res, size_t cap,
                                size_t *res_len)
{
    uint8_t cmd[600], *resp = NULL;
    uk__piv_buf b;
    size_t len = 0;
    uint16_t sw = 0;
    const uint8_t *v, *s;
    size_t l, sl;
    int rc;

    uk__piv_buf_init(&b, cmd, sizeof(cmd));
    uk__piv_buf_tl(&b, 0x7C, (in_len < 0x80 ? 2 : in_len <= 0xFF ? 3 : 4) + in_len + 2);
    uk__piv_buf_tlv(&b, 0x82, NULL, 0);
    uk__piv_buf_tlv(&b, tag, in, in_len);
    if (b.overflow)
        return UK_E_INVALID_PARAMS;
    resp = malloc(1024);
    if (resp == NULL) {
        uk_wipe(cmd, b.len);
        return UK_E_NO_MEMORY;
    }
    rc = uk__piv_transceive(&st->io, UK__PIV_INS_GENERAL_AUTH, alg, slot, cmd, b.len, resp, 1024,
                            &len, &sw);
    uk_wipe(cmd, b.len);
    if (rc == UK_OK && sw != 0x9000)
        rc = uk_piv_sw_to_err(sw, NULL);
    if (rc == UK_OK) {
        if (uk__piv_tlv_only(resp, len, 0x7C, &v, &l) != 1 ||
            uk__piv_tlv_find(v, l, 0x82, &s, &sl) != 1 || sl == 0) {
            UK_LOG_WARN("the card's GENERAL AUTHENTICATE answer is malformed");
            rc = UK_E_CARD_ERROR;
        } else if (sl > cap) {
            rc = UK_E_LIMIT_EXCEEDED;
        } else {
            memcpy(res, s, sl);
            *res_len = sl;
        }
    }
    uk_wipe(resp, 1024);
    free(resp);
    return rc;
}

/* A DER ECDSA-Sig-Value: SEQUENCE { INTEGER r, INTEGER s }, nothing after. */
static bool ecdsa_der_ok(const uint8_t *sig, size_t len)
{
    const uint8_t *v, *p, *iv;
    size_t l, il;
    uint32_t tag;
    if (uk__piv_tlv_only(sig, len, 0x30, &v, &l) != 1)
        return false;
    p = v;
    for (int i = 0; i < 2; i++)
        if (uk__piv_tlv_next(&p, v + l, &tag, &iv, &il) != 1 || tag != 0x02 || il == 0)
            return false;
    return p == v + l;
}

/* The key's slot and algorithm for req, and whether req's scheme and hash
 * fit them; no PIN needed. */
static int sign_target(uk__piv_state *st, const uk_sign_req *req, uint8_t *slot, uint8_t *alg,
                       uk_crypto_md *md)
{
    if (req == NULL || req->digest == NULL || !uk__piv_slot_parse(req->key_id, slot))
        return UK_E_INVALID_PARAMS;
    if (!uk_driver_md(req->hash, md))
        return UK_E_NOT_SUPPORTED;
    if (req->digest_len != uk_crypto_md_size(*md))
        return UK_E_INVALID_PARAMS;
    int rc = slot_alg(st, *slot, alg);
    if (rc != UK_OK)
        return rc;
    bool rsa = rsa_bytes(*alg) > 0;
    bool scheme_ok = rsa ? req->scheme == UK_SIG_RSA_PKCS1 || req->scheme == UK_SIG_RSA_PSS
                         : ec_bytes(*alg) > 0 && req->scheme == UK_SIG_ECDSA;
    return scheme_ok ? UK_OK : UK_E_INVALID_PARAMS;
}

static int piv_check_sign(void *state, uk_card *card, const uk_sign_req *req)
{
    uk__piv_state *st = state;
    uint8_t slot = 0, alg = 0;
    uk_crypto_md md;
    st->io.card = card;
    int rc = uk__piv_select(&st->io);
    return rc == UK_OK ? sign_target(st, req, &slot, &alg, &md) : rc;
}

/* VERIFY with P1=FF: the card forgets the PIN (SP 800-73-4 part 2, 3.2.1). */
static void piv_logout(void *state, uk_card *card)
{
    uk__piv_state *st = state;
    static const uint8_t reset_pin[] = {0x00, 0x20, 0xFF, 0x80};
    uint8_t resp[8];
    size_t len = 0;
    st->io.card = card;
    if (uk_card_transmit(card, reset_pin, sizeof(reset_pin), resp, sizeof(resp), &len) != UK_OK ||
        len < 2 || resp[len - 2] != 0x90 || resp[len - 1] != 0x00)
        UK_LOG_NOTICE("the card did not confirm that it forgot the PIN");
}

static int piv_sign(void *state, uk_card *card, const uk_sign_req *req, uint8_t *sig, size_t cap,
                    size_t *sig_len)
{
    uk__piv_state *st = state;
    uint8_t slot = 0, alg = 0;
    uk_crypto_md md;
    int rc;
    st->io.card = card;
    if (sig == NULL || sig_len == NULL)
        return UK_E_INVALID_PARAMS;
    /* No SELECT here: the token layer verified the PIN in this transaction
     * just before (verify_pin selected), and a PIN-always key wants the
     * signature to follow the VERIFY. */
    rc = sign_target(st, req, &slot, &alg, &md);
    if (rc != UK_OK)
        return rc;

    size_t k = rsa_bytes(alg), f = ec_bytes(alg);
    uint8_t in[512], out[600];
    size_t out_len = 0;
    if (k > 0) {
        if (req->scheme == UK_SIG_RSA_PKCS1)
            rc = uk_crypto_emsa_pkcs1_v15(md, req->digest, req->digest_len, in, k);
        else if (req->scheme == UK_SIG_RSA_PSS)
            rc = uk_crypto_emsa_pss(md, req->digest, req->digest_len, k * 8, in, k);
        else
            rc = UK_E_INVALID_PARAMS;
        if (rc == UK_OK)
            rc = general_authenticate(st, alg, slot, 0x81, in, k, out, sizeof(out), &out_len);
        uk_wipe(in, k);
        if (rc == UK_OK && out_len > k) {
            UK_LOG_WARN("the card's RSA signature is longer than the modulus");
            rc = UK_E_CARD_ERROR;
        }
        if (rc == UK_OK && cap < k)
            rc = UK_E_LIMIT_EXCEEDED;
        if (rc == UK_OK) {
            /* Left-pad to the modulus length (I2OSP). */
            memset(sig, 0, k - out_len);
            memcpy(sig + (k - out_len), out, out_len);
            *sig_len = k;
        }
    } else if (f > 0) {
        if (req->scheme != UK_SIG_ECDSA)
            return UK_E_INVALID_PARAMS;
        /* FIPS 186-4 6.4: the leftmost bits of the digest, as many as the
         * order has (P-256: 256, P-384: 384); a shorter digest is the same
         * integer left-padded with zeros. */
        memset(in, 0, f);
        if (req->digest_len >= f)
            memcpy(in, req->digest, f);
        else
            memcpy(in + (f - req->digest_len), req->digest, req->digest_len);
        rc = general_authenticate(st, alg, slot, 0x81, in, f, out, sizeof(out), &out_len);
        uk_wipe(in, f);
        if (rc == UK_OK && !ecdsa_der_ok(out, out_len)) {
            UK_LOG_WARN("the card's ECDSA signature is not DER");
            rc = UK_E_CARD_ERROR;
        }
        if (rc == UK_OK && cap < out_len)
            rc = UK_E_LIMIT_EXCEEDED;
        if (rc == UK_OK) {
            memcpy(sig, out, out_len);
            *sig_len = out_len;
        }
    } else {
        UK_LOG_NOTICE("PIV slot %02x holds a key of algorithm %02x, which ukeyd cannot sign with",
                      slot, alg);
        rc = UK_E_NOT_SUPPORTED;
    }
    uk_wipe(out, sizeof(out));
    return rc;
}

/* Decryption with a slot's key (uk_driver.h, decrypt). No SELECT: as for a signature, the token
 * layer verified the PIN just before. The input is checked against the key first, so the card is
 * only asked what it can answer. */
static int piv_decrypt(void *state, uk_card *card, const char *key_id, uk_decrypt_kind kind,
                       const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *out_len)
{
    uk__piv_state *st = state;
    uint8_t slot = 0, alg = 0;
    st->io.card = card;
    if (in == NULL || out == NULL || out_len == NULL || !uk__piv_slot_parse(key_id, &slot))
        return UK_E_INVALID_PARAMS;
    int rc = slot_alg(st, slot, &alg);
    if (rc != UK_OK)
        return rc;
    size_t k = rsa_bytes(alg), f = ec_bytes(alg);
    uint8_t res[600];
    size_t res_len = 0;
    if (kind == UK_DECRYPT_RSA_RAW && k > 0 && in_len == k) {
        rc = general_authenticate(st, alg, slot, 0x81, in, in_len, res, sizeof(res), &res_len);
        if (rc == UK_OK && res_len > k) {
            UK_LOG_WARN("the card's RSA result is longer than the modulus");
            rc = UK_E_CARD_ERROR;
        }
        if (rc == UK_OK && cap < k)
            rc = UK_E_LIMIT_EXCEEDED;
        if (rc == UK_OK) { /* I2OSP: the card may drop leading zeros */
            memset(out, 0, k - res_len);
            memcpy(out + (k - res_len), res, res_len);
            *out_len = k;
        }
    } else if (kind == UK_DECRYPT_ECDH && f > 0 && in_len == 2 * f + 1 && in[0] == 0x04) {
        rc = general_authenticate(st, alg, slot, 0x85, in, in_len, res, sizeof(res), &res_len);
        if (rc == UK_OK && res_len != f) {
            UK_LOG_WARN("the card's ECDH secret has %zu bytes, not %zu", res_len, f);
            rc = UK_E_CARD_ERROR;
        }
        if (rc == UK_OK && cap < f)
            rc = UK_E_LIMIT_EXCEEDED;
        if (rc == UK_OK) {
            memcpy(out, res, f);
            *out_len = f;
        }
    } else {
        rc = k > 0 || f > 0 ? UK_E_INVALID_PARAMS : UK_E_NOT_SUPPORTED;
    }
    uk_wipe(res, sizeof(res));
    return rc;
}

const uk_driver uk_driver_piv = {
    .name = "piv",
    .probe = piv_probe,
    .open = piv_open,
    .close = piv_close,
    .list_certs = uk__piv_list_certs,
    .pin_status = piv_pin_status,
    .verify_pin = piv_verify_pin,
    .sign = piv_sign,
    .generate_key = uk__piv_generate_key,
    .put_cert = uk__piv_put_cert,
    .get_caps = uk__piv_get_caps,
    .find_staging_slot = uk__piv_find_staging_slot,
    .move_key = uk__piv_move_key,
    .delete_key = uk__piv_delete_key,
    .delete_cert = uk__piv_delete_cert,
    .get_public_key = uk__piv_get_public_key,
    .read_record = uk__piv_read_record,
    .write_record = uk__piv_write_record,
    .update_key_history = uk__piv_update_key_history,
    .check_sign = piv_check_sign,
    .logout = piv_logout,
    .change_pin = piv_change_pin,
    .decrypt = piv_decrypt,
};
