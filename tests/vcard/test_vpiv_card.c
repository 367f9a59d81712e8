/* The APDU engine of the virtual card, driven the way a host drives a PIV
 * card (short APDUs, command chaining, GET RESPONSE), with every
 * cryptographic result checked host-side with OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "vpiv_int.h"

enum {
    SW_OK = 0x9000,
    SW_WRONG_LENGTH = 0x6700,
    SW_LAST_CMD_EXPECTED = 0x6883,
    SW_SECURITY = 0x6982,
    SW_BLOCKED = 0x6983,
    SW_CONDITIONS = 0x6985,
    SW_WRONG_DATA = 0x6A80,
    SW_NOT_FOUND = 0x6A82,
    SW_WRONG_P1P2 = 0x6A86,
    SW_REF_NOT_FOUND = 0x6A88,
    SW_INS = 0x6D00,
    SW_CLA = 0x6E00,
};

enum {
    INS_VERIFY = 0x20,
    INS_CHANGE_REF = 0x24,
    INS_RESET_RETRY = 0x2C,
    INS_GENERATE = 0x47,
    INS_GENERAL_AUTH = 0x87,
    INS_SELECT = 0xA4,
    INS_GET_RESPONSE = 0xC0,
    INS_GET_DATA = 0xCB,
    INS_PUT_DATA = 0xDB,
    INS_MOVE_KEY = 0xF6,
    INS_GET_METADATA = 0xF7,
    INS_GET_SERIAL = 0xF8,
    INS_RESET = 0xFB,
    INS_IMPORT_KEY = 0xFE,
    INS_SET_MGM = 0xFF,
};

enum {
    TAG_CHUID = 0x5FC102,
    TAG_CCC = 0x5FC107,
    TAG_PRINTED = 0x5FC109,
    TAG_CERT_9A = 0x5FC105,
    TAG_KEY_HISTORY = 0x5FC10C,
    TAG_DISCOVERY = 0x7E,
};

static const uint8_t piv_aid[] = {0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00};
static const uint8_t default_mgm[24] = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4,
                                        5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8};

#define BUF_CAP VPIV_MAX_APDU

/* One card per test, plus the host's view of the last exchange. */
typedef struct {
    vpiv_card *card;
    uint8_t *r; /* the last R-APDU, status word included */
    size_t rlen;
    uint8_t *data; /* response data joined over GET RESPONSE */
    size_t dlen;
} fx;

/* ---- fixture ---------------------------------------------------------- */

static int new_fixture(void **state, const vpiv_options *opt)
{
    fx *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->r = malloc(BUF_CAP);
    f->data = malloc(BUF_CAP);
    if (f->r == NULL || f->data == NULL || vpiv_card_new(&f->card, opt) != 0) {
        free(f->r);
        free(f->data);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int setup_unselected(void **state)
{
    vpiv_options opt = {.profile = VPIV_PROFILE_YUBICO, .serial = 12345678};
    return new_fixture(state, &opt);
}

static uint16_t select_piv(fx *f);

static int setup(void **state)
{
    if (setup_unselected(state) != 0)
        return -1;
    return select_piv(*state) == SW_OK ? 0 : -1;
}

static int teardown(void **state)
{
    fx *f = *state;
    vpiv_card_free(f->card);
    free(f->r);
    free(f->data);
    free(f);
    return 0;
}

/* Replaces the fixture's card with a fresh, selected one made with opt. */
static void use_card(fx *f, const vpiv_options *opt)
{
    vpiv_card_free(f->card);
    f->card = NULL;
    assert_int_equal(vpiv_card_new(&f->card, opt), 0);
    assert_int_equal(select_piv(f), SW_OK);
}

/* ---- transport -------------------------------------------------------- */

static uint16_t sw_of(const fx *f)
{
    return (uint16_t)(f->r[f->rlen - 2] << 8 | f->r[f->rlen - 1]);
}

/* Sends one C-APDU exactly as given. */
static uint16_t raw(fx *f, const uint8_t *c, size_t n)
{
    f->rlen = vpiv_card_apdu(f->card, c, n, f->r);
    assert_true(f->rlen >= 2 && f->rlen <= BUF_CAP);
    return sw_of(f);
}

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (*s) {
        if (*s == ' ') {
            s++;
            continue;
        }
        unsigned v;
        assert_int_equal(sscanf(s, "%2x", &v), 1);
        assert_true(n < cap);
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

/* Sends one C-APDU written in hex ("00 A4 04 00 ..."). */
static uint16_t hx(fx *f, const char *hex)
{
    uint8_t c[600];
    return raw(f, c, unhex(hex, c, sizeof(c)));
}

static void collect(fx *f, size_t n)
{
    assert_true(f->dlen + n <= BUF_CAP);
    memcpy(f->data + f->dlen, f->r, n);
    f->dlen += n;
}

/* A host's command: short APDUs, chained in 255-byte pieces when the data is
 * longer, then GET RESPONSE while the card answers 61xx. The joined response
 * data is in f->data. Returns the final status word. */
static uint16_t cmd(fx *f, uint8_t ins, uint8_t p1, uint8_t p2, const uint8_t *data, size_t n)
{
    uint8_t c[5 + 255];
    size_t off = 0;
    uint16_t sw;
    f->dlen = 0;
    for (;;) {
        size_t chunk = n - off > 255 ? 255 : n - off;
        bool last = off + chunk == n;
        size_t len = 4;
        c[0] = last ? 0x00 : 0x10;
        c[1] = ins;
        c[2] = p1;
        c[3] = p2;
        if (chunk > 0) {
            c[4] = (uint8_t)chunk;
            memcpy(c + 5, data + off, chunk);
            len = 5 + chunk;
        }
        sw = raw(f, c, len);
        off += chunk;
        if (last)
            break;
        if (sw != SW_OK)
            return sw;
        assert_int_equal(f->rlen, 2);
    }
    for (;;) {
        collect(f, f->rlen - 2);
        if ((sw >> 8) != 0x61)
            return sw;
        const uint8_t gr[5] = {0x00, INS_GET_RESPONSE, 0x00, 0x00, (uint8_t)sw};
        sw = raw(f, gr, sizeof(gr));
    }
}

static uint16_t select_piv(fx *f)
{
    return cmd(f, INS_SELECT, 0x04, 0x00, piv_aid, sizeof(piv_aid));
}

/* ---- host helpers ----------------------------------------------------- */

static size_t tag_list(uint32_t tag, uint8_t *out)
{
    size_t n = tag > 0xFFFF ? 3 : tag > 0xFF ? 2 : 1;
    out[0] = 0x5C;
    out[1] = (uint8_t)n;
    for (size_t i = 0; i < n; i++)
        out[2 + i] = (uint8_t)(tag >> (8 * (n - 1 - i)));
    return 2 + n;
}

static uint16_t get_data(fx *f, uint32_t tag)
{
    uint8_t tl[5];
    return cmd(f, INS_GET_DATA, 0x3F, 0xFF, tl, tag_list(tag, tl));
}

/* PUT DATA of value inside the wrapper the object uses (53 or 7E). */
static uint16_t put_data(fx *f, uint32_t tag, const uint8_t *value, size_t n)
{
    uint8_t *c = malloc(n + 16);
    assert_non_null(c);
    vpiv_buf b;
    vpiv_buf_init(&b, c, n + 16);
    b.len = tag_list(tag, c);
    vpiv_tlv_put(&b, tag == TAG_DISCOVERY ? 0x7E : 0x53, value, n);
    assert_false(b.overflow);
    uint16_t sw = cmd(f, INS_PUT_DATA, 0x3F, 0xFF, c, b.len);
    free(c);
    return sw;
}

/* A PIN or PUK as the card wants it: padded to 8 bytes with 0xFF. */
static void pad8(const char *pin, uint8_t *out)
{
    memset(out, 0xFF, 8);
    memcpy(out, pin, strlen(pin));
}

static uint16_t verify(fx *f, uint8_t ref, const char *pin)
{
    uint8_t p[8];
    pad8(pin, p);
    return cmd(f, INS_VERIFY, 0x00, ref, p, 8);
}

static uint16_t verify_pin(fx *f)
{
    return verify(f, VPIV_KEY_PIN, "123456");
}

/* CHANGE REFERENCE DATA (ins 24) or RESET RETRY COUNTER (ins 2C). */
static uint16_t old_new(fx *f, uint8_t ins, uint8_t ref, const char *old, const char *new_)
{
    uint8_t p[16];
    pad8(old, p);
    pad8(new_, p + 8);
    return cmd(f, ins, 0x00, ref, p, 16);
}

/* Status word of an empty VERIFY: the retries left, or 9000 when verified. */
static uint16_t pin_status(fx *f)
{
    return cmd(f, INS_VERIFY, 0x00, VPIV_KEY_PIN, NULL, 0);
}

static size_t mgm_block(uint8_t alg)
{
    return alg == VPIV_ALG_3DES ? 8 : 16;
}

/* The host side of the management-key cipher, on OpenSSL's EVP. */
static void host_crypt(uint8_t alg, const uint8_t *key, bool enc, const uint8_t *in, size_t n,
                       uint8_t *out)
{
    const char *name = alg == VPIV_ALG_3DES     ? "DES-EDE3-ECB"
                       : alg == VPIV_ALG_AES128 ? "AES-128-ECB"
                       : alg == VPIV_ALG_AES192 ? "AES-192-ECB"
                                                : "AES-256-ECB";
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, name, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;
    assert_non_null(c);
    assert_non_null(ctx);
    assert_int_equal(EVP_CipherInit_ex2(ctx, c, key, NULL, enc ? 1 : 0, NULL), 1);
    assert_int_equal(EVP_CIPHER_CTX_set_padding(ctx, 0), 1);
    assert_int_equal(EVP_CipherUpdate(ctx, out, &l1, in, (int)n), 1);
    assert_int_equal(EVP_CipherFinal_ex(ctx, out + l1, &l2), 1);
    assert_int_equal((size_t)(l1 + l2), n);
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
}

/* Step 1 of the mutual authentication: returns the card's encrypted witness. */
static uint16_t mgm_witness(fx *f, uint8_t alg, uint8_t *enc_witness)
{
    static const uint8_t step1[] = {0x7C, 0x02, 0x80, 0x00};
    uint16_t sw = cmd(f, INS_GENERAL_AUTH, alg, VPIV_KEY_MGM, step1, sizeof(step1));
    if (sw != SW_OK)
        return sw;
    size_t bl = mgm_block(alg);
    assert_int_equal(f->dlen, 4 + bl);
    assert_int_equal(f->data[0], 0x7C);
    assert_int_equal(f->data[1], 2 + bl);
    assert_int_equal(f->data[2], 0x80);
    assert_int_equal(f->data[3], bl);
    memcpy(enc_witness, f->data + 4, bl);
    return sw;
}

/* Step 2: answers with witness and sends a challenge of our own, which the
 * card must encrypt under the same key. */
static uint16_t mgm_answer(fx *f, uint8_t alg, const uint8_t *key, const uint8_t *witness)
{
    size_t bl = mgm_block(alg);
    uint8_t chal[16], expect[16], c[40];
    assert_int_equal(RAND_bytes(chal, (int)bl), 1);
    host_crypt(alg, key, true, chal, bl, expect);
    c[0] = 0x7C;
    c[1] = (uint8_t)(4 + 2 * bl);
    c[2] = 0x80;
    c[3] = (uint8_t)bl;
    memcpy(c + 4, witness, bl);
    c[4 + bl] = 0x81;
    c[5 + bl] = (uint8_t)bl;
    memcpy(c + 6 + bl, chal, bl);
    uint16_t sw = cmd(f, INS_GENERAL_AUTH, alg, VPIV_KEY_MGM, c, 6 + 2 * bl);
    if (sw == SW_OK) {
        assert_int_equal(f->dlen, 4 + bl);
        assert_int_equal(f->data[0], 0x7C);
        assert_int_equal(f->data[2], 0x82);
        assert_memory_equal(f->data + 4, expect, bl);
    }
    return sw;
}

static uint16_t mgm_auth(fx *f, uint8_t alg, const uint8_t *key)
{
    uint8_t enc[16], witness[16];
    uint16_t sw = mgm_witness(f, alg, enc);
    if (sw != SW_OK)
        return sw;
    host_crypt(alg, key, false, enc, mgm_block(alg), witness);
    return mgm_answer(f, alg, key, witness);
}

static void auth_default(fx *f)
{
    assert_int_equal(mgm_auth(f, VPIV_ALG_3DES, default_mgm), SW_OK);
}

static uint16_t set_mgm(fx *f, uint8_t alg, const uint8_t *key, size_t keylen)
{
    uint8_t c[3 + 32];
    c[0] = alg;
    c[1] = VPIV_KEY_MGM;
    c[2] = (uint8_t)keylen;
    memcpy(c + 3, key, keylen);
    return cmd(f, INS_SET_MGM, 0xFF, 0xFF, c, 3 + keylen);
}

static uint16_t metadata(fx *f, uint8_t ref)
{
    return cmd(f, INS_GET_METADATA, 0x00, ref, NULL, 0);
}

/* Finds tag in the response data at one level; fails the test if absent. */
static const uint8_t *find(const uint8_t *p, size_t n, uint32_t tag, size_t *len)
{
    const uint8_t *v = NULL;
    assert_int_equal(vpiv_tlv_find(p, n, tag, &v, len), 1);
    return v;
}

/* GENERATE ASYMMETRIC KEY PAIR; on success f->data holds the 7F49 object. */
static uint16_t generate(fx *f, uint8_t slot, uint8_t alg)
{
    const uint8_t c[] = {0xAC, 0x03, 0x80, 0x01, alg};
    return cmd(f, INS_GENERATE, 0x00, slot, c, sizeof(c));
}

static EVP_PKEY *pkey_from(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    assert_non_null(params);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static const char *group_name(uint8_t alg)
{
    return alg == VPIV_ALG_ECCP256 ? "prime256v1" : "secp384r1";
}

/* The public key in the contents of a 7F49 object (81/82 or 86). */
static EVP_PKEY *public_key(const uint8_t *p, size_t n, uint8_t alg)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    EVP_PKEY *pkey;
    size_t l;
    assert_non_null(bld);
    if (vpiv_alg_is_rsa(alg)) {
        const uint8_t *mod = find(p, n, 0x81, &l);
        assert_int_equal(l, 256);
        bn_n = BN_bin2bn(mod, (int)l, NULL);
        const uint8_t *exp = find(p, n, 0x82, &l);
        bn_e = BN_bin2bn(exp, (int)l, NULL);
        assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n));
        assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e));
        pkey = pkey_from("RSA", bld);
    } else {
        const uint8_t *pt = find(p, n, 0x86, &l);
        assert_int_equal(l, alg == VPIV_ALG_ECCP256 ? 65 : 97);
        assert_int_equal(pt[0], 0x04);
        assert_true(
            OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group_name(alg), 0));
        assert_true(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, l));
        pkey = pkey_from("EC", bld);
    }
    BN_free(bn_n);
    BN_free(bn_e);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

/* The public key from the 7F49 object GENERATE just returned. */
static EVP_PKEY *generated_key(fx *f, uint8_t alg)
{
    size_t l;
    const uint8_t *v = find(f->data, f->dlen, 0x7F49, &l);
    assert_ptr_equal(v + l, f->data + f->dlen);
    return public_key(v, l, alg);
}

static size_t digest_len(uint8_t alg)
{
    return alg == VPIV_ALG_ECCP384 ? 48 : 32;
}

static void make_digest(uint8_t alg, const char *msg, uint8_t *md)
{
    unsigned int n = 0;
    const EVP_MD *type = alg == VPIV_ALG_ECCP384 ? EVP_sha384() : EVP_sha256();
    assert_int_equal(EVP_Digest(msg, strlen(msg), md, &n, type, NULL), 1);
    assert_int_equal(n, digest_len(alg));
}

/* GENERAL AUTHENTICATE over a digest: RSA gets a PKCS#1 v1.5 block built
 * here (the card does the raw private-key operation), ECDSA the digest.
 * The signature lands in sig. */
static uint16_t sign(fx *f, uint8_t slot, uint8_t alg, const uint8_t *md, uint8_t *sig,
                     size_t *siglen)
{
    static const uint8_t sha256_prefix[] = {0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60,
                                            0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                            0x01, 0x05, 0x00, 0x04, 0x20};
    uint8_t in[256], c[300], inner[290];
    size_t inlen;
    if (vpiv_alg_is_rsa(alg)) {
        size_t tlen = sizeof(sha256_prefix) + 32;
        inlen = 256;
        in[0] = 0x00;
        in[1] = 0x01;
        memset(in + 2, 0xFF, inlen - tlen - 3);
        in[inlen - tlen - 1] = 0x00;
        memcpy(in + inlen - tlen, sha256_prefix, sizeof(sha256_prefix));
        memcpy(in + inlen - 32, md, 32);
    } else {
        inlen = digest_len(alg);
        memcpy(in, md, inlen);
    }
    vpiv_buf b, ib;
    vpiv_buf_init(&ib, inner, sizeof(inner));
    vpiv_tlv_put(&ib, 0x82, NULL, 0);
    vpiv_tlv_put(&ib, 0x81, in, inlen);
    vpiv_buf_init(&b, c, sizeof(c));
    vpiv_tlv_put(&b, 0x7C, inner, ib.len);
    assert_false(b.overflow);
    uint16_t sw = cmd(f, INS_GENERAL_AUTH, alg, slot, c, b.len);
    if (sw != SW_OK)
        return sw;
    size_t l, sl;
    const uint8_t *v = find(f->data, f->dlen, 0x7C, &l);
    const uint8_t *s = find(v, l, 0x82, &sl);
    assert_true(sl <= 512);
    memcpy(sig, s, sl);
    *siglen = sl;
    return sw;
}

static bool host_verify(EVP_PKEY *pub, uint8_t alg, const uint8_t *md, const uint8_t *sig,
                        size_t siglen)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pub, NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
    if (vpiv_alg_is_rsa(alg)) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()), 1);
    }
    int rc = EVP_PKEY_verify(ctx, sig, siglen, md, digest_len(alg));
    EVP_PKEY_CTX_free(ctx);
    return rc == 1;
}

/* Signs a fresh message with slot and checks the signature with pub. */
static void assert_signs(fx *f, uint8_t slot, uint8_t alg, EVP_PKEY *pub)
{
    uint8_t md[48], sig[512];
    size_t siglen = 0;
    make_digest(alg, "ukeyd signs this", md);
    assert_int_equal(sign(f, slot, alg, md, sig, &siglen), SW_OK);
    if (vpiv_alg_is_rsa(alg))
        assert_int_equal(siglen, 256);
    else
        assert_int_equal(sig[0], 0x30); /* DER SEQUENCE */
    assert_true(host_verify(pub, alg, md, sig, siglen));
    /* A signature over other data must not verify with the same key. */
    md[0] ^= 1;
    assert_false(host_verify(pub, alg, md, sig, siglen));
}

static uint16_t sign_status(fx *f, uint8_t slot, uint8_t alg)
{
    uint8_t md[48], sig[512];
    size_t siglen;
    make_digest(alg, "status only", md);
    return sign(f, slot, alg, md, sig, &siglen);
}

static void random_bytes(uint8_t *p, size_t n)
{
    assert_int_equal(RAND_bytes(p, (int)n), 1);
}

/* ---- SELECT and the order of things ----------------------------------- */

static void test_select_full_aid_returns_application_property_template(void **state)
{
    fx *f = *state;
    assert_int_equal(select_piv(f), SW_OK);
    size_t l, il;
    const uint8_t *apt = find(f->data, f->dlen, 0x61, &l);
    assert_ptr_equal(apt + l, f->data + f->dlen);
    const uint8_t *pix = find(apt, l, 0x4F, &il);
    assert_int_equal(il, 6);
    assert_memory_equal(pix, piv_aid + 5, 6);
    const uint8_t *auth = find(apt, l, 0x79, &il);
    const uint8_t *rid = find(auth, il, 0x4F, &il);
    assert_int_equal(il, 5);
    assert_memory_equal(rid, piv_aid, 5);
    const uint8_t *algs = find(apt, l, 0xAC, &il);
    const uint8_t *alg = find(algs, il, 0x80, &il);
    assert_int_equal(il, 1);
    assert_true(alg[0] == VPIV_ALG_RSA1024 || alg[0] == VPIV_ALG_RSA2048);
}

static void test_select_truncated_aid_selects(void **state)
{
    fx *f = *state;
    assert_int_equal(hx(f, "00 A4 04 00 05 A0 00 00 03 08"), SW_OK);
    assert_int_equal(f->r[0], 0x61);
    /* Selected: GET DATA now works. */
    assert_int_equal(get_data(f, TAG_CHUID), SW_OK);
    /* The 9-byte form (PIX without the version) too. */
    assert_int_equal(cmd(f, INS_SELECT, 0x04, 0x00, piv_aid, 9), SW_OK);
    assert_int_equal(f->data[0], 0x61);
}

static void test_select_unknown_aid_is_6a82(void **state)
{
    fx *f = *state;
    assert_int_equal(hx(f, "00 A4 04 00 07 A0 00 00 00 03 10 10"), SW_NOT_FOUND);
    assert_int_equal(f->rlen, 2);
    /* Not even the first 5 bytes of the RID. */
    assert_int_equal(hx(f, "00 A4 04 00 04 A0 00 00 03"), SW_NOT_FOUND);
    /* And it did not select: the PIV commands are still unknown. */
    assert_int_equal(get_data(f, TAG_CHUID), SW_INS);
}

static void test_select_p2_0c_answers_without_fci(void **state)
{
    fx *f = *state;
    assert_int_equal(cmd(f, INS_SELECT, 0x04, 0x0C, piv_aid, sizeof(piv_aid)), SW_OK);
    assert_int_equal(f->dlen, 0);
    assert_int_equal(get_data(f, TAG_CHUID), SW_OK);
}

static void test_commands_before_select_are_6d00(void **state)
{
    fx *f = *state;
    assert_int_equal(get_data(f, TAG_CHUID), SW_INS);
    assert_int_equal(verify_pin(f), SW_INS);
    assert_int_equal(pin_status(f), SW_INS);
    assert_int_equal(cmd(f, 0xFD, 0, 0, NULL, 0), SW_INS);
    /* Nothing counted down either. */
    assert_int_equal(select_piv(f), SW_OK);
    assert_int_equal(pin_status(f), 0x63C3);
}

/* ---- GET DATA --------------------------------------------------------- */

static void test_get_data_chuid_ccc_key_history_in_53(void **state)
{
    fx *f = *state;
    const uint32_t tags[] = {TAG_CHUID, TAG_CCC, TAG_KEY_HISTORY};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(get_data(f, tags[i]), SW_OK);
        size_t l;
        const uint8_t *v = find(f->data, f->dlen, 0x53, &l);
        assert_ptr_equal(v + l, f->data + f->dlen);
        assert_true(l > 0);
        /* Every one of these objects ends with an empty FE (error detection code). */
        const uint8_t *fe;
        size_t fl;
        if (tags[i] != TAG_CCC) {
            assert_int_equal(vpiv_tlv_find(v, l, 0xFE, &fe, &fl), 1);
            assert_int_equal(fl, 0);
        }
    }
    /* CHUID: FASC-N (25 bytes), GUID (16), expiry (8). */
    assert_int_equal(get_data(f, TAG_CHUID), SW_OK);
    size_t l, il;
    const uint8_t *v = find(f->data, f->dlen, 0x53, &l);
    find(v, l, 0x30, &il);
    assert_int_equal(il, 25);
    find(v, l, 0x34, &il);
    assert_int_equal(il, 16);
    find(v, l, 0x35, &il);
    assert_int_equal(il, 8);
    /* CCC: a 21-byte card identifier. */
    assert_int_equal(get_data(f, TAG_CCC), SW_OK);
    v = find(f->data, f->dlen, 0x53, &l);
    find(v, l, 0xF0, &il);
    assert_int_equal(il, 21);
    /* Key History: no retired keys. */
    assert_int_equal(get_data(f, TAG_KEY_HISTORY), SW_OK);
    v = find(f->data, f->dlen, 0x53, &l);
    const uint8_t *n = find(v, l, 0xC1, &il);
    assert_int_equal(il, 1);
    assert_int_equal(n[0], 0);
}

static void test_get_data_discovery_uses_7e_wrapper(void **state)
{
    fx *f = *state;
    assert_int_equal(get_data(f, TAG_DISCOVERY), SW_OK);
    assert_int_equal(f->data[0], 0x7E);
    size_t l, il;
    const uint8_t *v = find(f->data, f->dlen, 0x7E, &l);
    assert_ptr_equal(v + l, f->data + f->dlen);
    const uint8_t *aid = find(v, l, 0x4F, &il);
    assert_int_equal(il, sizeof(piv_aid));
    assert_memory_equal(aid, piv_aid, sizeof(piv_aid));
    const uint8_t *policy = find(v, l, 0x5F2F, &il);
    assert_int_equal(il, 2);
    assert_int_equal(policy[0] & 0x40, 0x40); /* PIV PIN satisfies the policy */
}

static void test_get_data_absent_object_is_6a82(void **state)
{
    fx *f = *state;
    assert_int_equal(get_data(f, TAG_CERT_9A), SW_NOT_FOUND);
    assert_int_equal(f->rlen, 2);
    assert_int_equal(get_data(f, 0x5FC10D), SW_NOT_FOUND); /* retired 82 */
    assert_int_equal(get_data(f, 0x5FC0FF), SW_NOT_FOUND); /* not a PIV tag */
    assert_int_equal(get_data(f, 0x7F61), SW_NOT_FOUND);   /* BIT group template */
}

static void test_get_data_malformed_tag_list_is_6a80(void **state)
{
    fx *f = *state;
    /* Not a 5C list. */
    assert_int_equal(hx(f, "00 CB 3F FF 05 5D 03 5F C1 02"), SW_WRONG_DATA);
    /* A tag of four bytes. */
    assert_int_equal(hx(f, "00 CB 3F FF 06 5C 04 5F C1 02 00"), SW_WRONG_DATA);
    /* An empty tag. */
    assert_int_equal(hx(f, "00 CB 3F FF 02 5C 00"), SW_WRONG_DATA);
    /* A length past the data. */
    assert_int_equal(hx(f, "00 CB 3F FF 05 5C 05 5F C1 02"), SW_WRONG_DATA);
    /* Trailing bytes after the list. */
    assert_int_equal(hx(f, "00 CB 3F FF 06 5C 03 5F C1 02 00"), SW_WRONG_DATA);
    /* No data at all. */
    assert_int_equal(hx(f, "00 CB 3F FF"), SW_WRONG_DATA);
}

static void test_get_data_wrong_p1p2_is_6a86(void **state)
{
    fx *f = *state;
    assert_int_equal(hx(f, "00 CB 3F FE 05 5C 03 5F C1 02"), SW_WRONG_P1P2);
    assert_int_equal(hx(f, "00 CB 00 00 05 5C 03 5F C1 02"), SW_WRONG_P1P2);
}

static void test_get_data_pin_protected_object_needs_verify(void **state)
{
    fx *f = *state;
    auth_default(f);
    assert_int_equal(put_data(f, TAG_PRINTED, (const uint8_t *)"\x01\x05hello", 7), SW_OK);
    assert_int_equal(get_data(f, TAG_PRINTED), SW_SECURITY);
    assert_int_equal(get_data(f, 0x5FC103), SW_SECURITY); /* fingerprints, absent anyway */
    assert_int_equal(verify_pin(f), SW_OK);
    assert_int_equal(get_data(f, TAG_PRINTED), SW_OK);
    const uint8_t expect[] = {0x53, 0x07, 0x01, 0x05, 'h', 'e', 'l', 'l', 'o'};
    assert_int_equal(f->dlen, sizeof(expect));
    assert_memory_equal(f->data, expect, sizeof(expect));
    assert_int_equal(get_data(f, 0x5FC103), SW_NOT_FOUND);
}

/* ---- PIN and PUK ------------------------------------------------------ */

static void test_verify_right_pin_verifies(void **state)
{
    fx *f = *state;
    assert_int_equal(pin_status(f), 0x63C3);
    assert_int_equal(verify_pin(f), SW_OK);
    assert_int_equal(f->rlen, 2);
    assert_int_equal(pin_status(f), SW_OK);
}

static void test_verify_wrong_pin_counts_down_and_blocks(void **state)
{
    fx *f = *state;
    assert_int_equal(verify(f, VPIV_KEY_PIN, "654321"), 0x63C2);
    assert_int_equal(pin_status(f), 0x63C2);
    assert_int_equal(verify(f, VPIV_KEY_PIN, "000000"), 0x63C1);
    assert_int_equal(verify(f, VPIV_KEY_PIN, "00000000"), 0x63C0);
    /* Blocked: even the right PIN is refused and nothing counts further. */
    assert_int_equal(verify_pin(f), SW_BLOCKED);
    assert_int_equal(pin_status(f), SW_BLOCKED);
    assert_int_equal(verify(f, VPIV_KEY_PIN, "000000"), SW_BLOCKED);
}

static void test_verify_right_pin_restores_retries(void **state)
{
    fx *f = *state;
    assert_int_equal(verify(f, VPIV_KEY_PIN, "654321"), 0x63C2);
    assert_int_equal(verify(f, VPIV_KEY_PIN, "654321"), 0x63C1);
    assert_int_equal(verify_pin(f), SW_OK);
    assert_int_equal(verify(f, VPIV_KEY_PIN, "654321"), 0x63C2);
    /* A wrong PIN also ends the verified state. */
    assert_int_equal(pin_status(f), 0x63C2);
}

static void test_verify_malformed_is_rejected_without_counting(void **state)
{
    fx *f = *state;
    assert_int_equal(hx(f, "00 20 00 80 06 31 32 33 34 35 36"), SW_WRONG_DATA);
    assert_int_equal(hx(f, "00 20 01 80 08 31 32 33 34 35 36 FF FF"), SW_WRONG_P1P2);
    assert_int_equal(hx(f, "00 20 00 9A 08 31 32 33 34 35 36 FF FF"), SW_REF_NOT_FOUND);
    assert_int_equal(pin_status(f), 0x63C3);
}

static void test_verify_p1_ff_resets_security_status(void **state)
{
    fx *f = *state;
    assert_int_equal(verify_pin(f), SW_OK);
    assert_int_equal(pin_status(f), SW_OK);
    assert_int_equal(hx(f, "00 20 FF 80"), SW_OK);
    assert_int_equal(pin_status(f), 0x63C3);
    /* Keys with a PIN policy no longer sign. */
    auth_default(f);
    assert_int_equal(generate(f, VPIV_KEY_AUTH, VPIV_ALG_ECCP256), SW_OK);
    assert_int_equal(sign_status(f, VPIV_KEY_AUTH, VPIV_ALG_ECCP256), SW_SECURITY);
}

static void test_change_pin_replaces_the_pin(void **state)
{
    fx *f = *state;
    assert_int_equal(old_new(f, INS_CHANGE_REF, VPIV_KEY_PIN, "123456", "87654321"), SW_OK);
    assert_int_equal(verify_pin(f), 0x63C2);
    assert_int_equal(verify(f, VPIV_KEY_PIN, "87654321"), SW_OK);
    assert_int_equal(metadata(f, VPIV_KEY_PIN), SW_OK);
    size_t l;
    const uint8_t *def = find(f->data, f->dlen, 0x05, &l);
    assert_int_equal(def[0], 0); /* no longer the default PIN */
}

static void test_change_pin_too_short_is_6a80_without_counting(void **state)
{
    fx *f = *state;
    assert_int_equal(old_new(f, INS_CHANGE_REF, VPIV_KEY_PIN, "123456", "12345"), SW_WRONG_DATA);
    assert_int_equal(old_new(f, INS_CHANGE_REF, VPIV_KEY_PIN, "000000", "1"), SW_WRONG_DATA);
    assert_int_equal(pin_status(f), 0x63C3);
    assert_int_equal(verify_pin(f), SW_OK);
    /* An 0xFF inside the new PIN is malformed too. */
    uint8_t p[16];
    pad8("123456", p);
    memcpy(p + 8, "\x31\x32\x33\xFF\x35\x36\x37\x38", 8);
    assert_int_equal(cmd(f, INS_CHANGE_REF, 0, VPIV_KEY_PIN, p, 16), SW_WRONG_DATA);
}

static void test_change_pin_wrong_old_counts_down(void **state)
{
    fx *f = *state;
    assert_int_equal(old_new(f, INS_CHANGE_REF, VPIV_KEY_PIN, "111111", "222222"), 0x63C2);
    assert_int_equal(old_new(f, INS_CHANGE_REF, VPIV_KEY_PIN, "111111", "222222"), 0x63C1);
    assert_int_equal(pin_status(f), 0x63C1);
    assert_int_equal(old_new(f, INS_CHANGE_REF, VPIV_KEY_PIN, "111111", "222222"), 0x63C0);
    assert_int_equal(old_new(f, INS_CHANGE_REF, VPIV_KEY_PIN, "123456", "222222"), SW_BLOCKED);
    assert_int_equal(verify(f, VPIV_KEY_PIN, "222222"), SW_BLOCKED);
}

static void test_change_puk_replaces_the_puk(void **state)
{
    fx *f = *state;
    assert_int_equal(old_new(f, INS_CHANGE_REF, VPIV_KEY_PUK, "00000000", "11111111"), 0x63C2);
    assert_int_equal(old_new(f, INS_CHANGE_REF, VPIV_KEY_PUK, "12345678", "11111111"), SW_OK);
    /* The old PUK no longer unblocks; the new one does. */
    assert_int_equal(old_new(f, INS_RESET_RETRY, VPIV_KEY_PIN, "12345678", "654321"), 0x63C2);
    assert_int_equal(old_new(f, INS_RESET_RETRY, VPIV_KEY_PIN, "11111111", "654321"), SW_OK);
    assert_int_equal(verify(f, VPIV_KEY_PIN, "654321"), SW_OK);
}

static void block_pin(fx *f)
{
    for (int i = 2; i >= 0; i--)
        assert_int_equal(verify(f, VPIV_KEY_PIN, "999999"), 0x63C0 | i);
}

static void block_puk(fx *f)
{
    for (int i = 2; i >= 0; i--)
        assert_int_equal(old_new(f, INS_RESET_RETRY, VPIV_KEY_PIN, "99999999", "999999"),
                         0x63C0 | i);
}

static void test_reset_retry_counter_unblocks_pin_with_puk(void **state)
{
    fx *f = *state;
    block_pin(f);
    assert_int_equal(verify_pin(f), SW_BLOCKED);
    assert_int_equal(old_new(f, INS_RESET_RETRY, VPIV_KEY_PIN, "12345678", "24681357"), SW_OK);
    assert_int_equal(pin_status(f), 0x63C3);
    assert_int_equal(verify_pin(f), 0x63C2);
    assert_int_equal(verify(f, VPIV_KEY_PIN, "24681357"), SW_OK);
    /* Only the PIN can be reset this way. */
    assert_int_equal(old_new(f, INS_RESET_RETRY, VPIV_KEY_PUK, "12345678", "24681357"),
                     SW_WRONG_P1P2);
}

static void test_reset_retry_counter_with_blocked_puk_is_6983(void **state)
{
    fx *f = *state;
    block_pin(f);
    block_puk(f);
    assert_int_equal(old_new(f, INS_RESET_RETRY, VPIV_KEY_PIN, "12345678", "123456"), SW_BLOCKED);
    assert_int_equal(old_new(f, INS_CHANGE_REF, VPIV_KEY_PUK, "12345678", "12345678"), SW_BLOCKED);
    assert_int_equal(verify_pin(f), SW_BLOCKED);
}

/* ---- management key --------------------------------------------------- */

static void test_mgm_auth_3des_default_key_succeeds(void **state)
{
    fx *f = *state;
    assert_int_equal(mgm_auth(f, VPIV_ALG_3DES, default_mgm), SW_OK);
    assert_int_equal(put_data(f, TAG_PRINTED, (const uint8_t *)"x", 1), SW_OK);
}

static void test_mgm_auth_wrong_response_is_6982(void **state)
{
    fx *f = *state;
    uint8_t enc[8], witness[8];
    assert_int_equal(mgm_witness(f, VPIV_ALG_3DES, enc), SW_OK);
    host_crypt(VPIV_ALG_3DES, default_mgm, false, enc, 8, witness);
    witness[7] ^= 0x01;
    assert_int_equal(mgm_answer(f, VPIV_ALG_3DES, default_mgm, witness), SW_SECURITY);
    assert_int_equal(put_data(f, TAG_PRINTED, (const uint8_t *)"x", 1), SW_SECURITY);
    /* The witness is single-use: answering it right after a failure fails too. */
    witness[7] ^= 0x01;
    assert_int_equal(mgm_answer(f, VPIV_ALG_3DES, default_mgm, witness), SW_SECURITY);
    /* A wrong key fails the same way. */
    uint8_t wrong[24];
    memcpy(wrong, default_mgm, 24);
    wrong[0] ^= 0x80;
    assert_int_equal(mgm_auth(f, VPIV_ALG_3DES, wrong), SW_SECURITY);
    assert_int_equal(generate(f, VPIV_KEY_AUTH, VPIV_ALG_ECCP256), SW_SECURITY);
}

static void test_put_data_and_generate_need_mgm_auth(void **state)
{
    fx *f = *state;
    assert_int_equal(put_data(f, TAG_PRINTED, (const uint8_t *)"x", 1), SW_SECURITY);
    assert_int_equal(generate(f, VPIV_KEY_AUTH, VPIV_ALG_ECCP256), SW_SECURITY);
    assert_int_equal(metadata(f, VPIV_KEY_AUTH), SW_NOT_FOUND);
    auth_default(f);
    assert_int_equal(put_data(f, TAG_PRINTED, (const uint8_t *)"x", 1), SW_OK);
    assert_int_equal(generate(f, VPIV_KEY_AUTH, VPIV_ALG_ECCP256), SW_OK);
    /* A new SELECT after a reset (power cycle) forgets the authentication. */
    vpiv_card_reset(f->card);
    assert_int_equal(select_piv(f), SW_OK);
    assert_int_equal(put_data(f, TAG_PRINTED, (const uint8_t *)"y", 1), SW_SECURITY);
}

static void test_set_mgm_key_aes_then_authenticate_with_it(void **state)
{
    fx *f = *state;
    const uint8_t algs[] = {VPIV_ALG_AES128, VPIV_ALG_AES192, VPIV_ALG_AES256};
    const size_t lens[] = {16, 24, 32};
    uint8_t old_alg = VPIV_ALG_3DES;
    uint8_t old_key[32], key[32];
    memcpy(old_key, default_mgm, 24);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(mgm_auth(f, old_alg, old_key), SW_OK);
        random_bytes(key, lens[i]);
        assert_int_equal(set_mgm(f, algs[i], key, lens[i]), SW_OK);
        /* The old algorithm is now the wrong one. */
        uint8_t enc[16];
        assert_int_equal(mgm_witness(f, old_alg, enc), SW_WRONG_DATA);
        assert_int_equal(mgm_auth(f, algs[i], key), SW_OK);
        assert_int_equal(put_data(f, TAG_PRINTED, key, 4), SW_OK);
        assert_int_equal(metadata(f, VPIV_KEY_MGM), SW_OK);
        size_t l;
        assert_int_equal(find(f->data, f->dlen, 0x01, &l)[0], algs[i]);
        assert_int_equal(find(f->data, f->dlen, 0x05, &l)[0], 0);
        old_alg = algs[i];
        memcpy(old_key, key, lens[i]);
    }
}

static void test_set_mgm_key_needs_auth_and_a_valid_key(void **state)
{
    fx *f = *state;
    uint8_t key[32] = {0};
    assert_int_equal(set_mgm(f, VPIV_ALG_AES128, key, 16), SW_SECURITY);
    auth_default(f);
    assert_int_equal(set_mgm(f, VPIV_ALG_AES128, key, 24), SW_WRONG_DATA);
    assert_int_equal(set_mgm(f, 0x42, key, 16), SW_WRONG_DATA);
    assert_int_equal(cmd(f, INS_SET_MGM, 0xFF, 0x00, key, 3), SW_WRONG_P1P2);
    /* The key is unchanged. */
    assert_int_equal(mgm_auth(f, VPIV_ALG_3DES, default_mgm), SW_OK);
}

/* ---- keys: generate, sign, ECDH --------------------------------------- */

static void test_generate_key_returns_public_key_that_verifies_signatures(void **state)
{
    fx *f = *state;
    const uint8_t algs[] = {VPIV_ALG_RSA2048, VPIV_ALG_ECCP256, VPIV_ALG_ECCP384};
    auth_default(f);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(generate(f, VPIV_KEY_AUTH, algs[i]), SW_OK);
        assert_int_equal(f->data[0], 0x7F);
        assert_int_equal(f->data[1], 0x49);
        EVP_PKEY *pub = generated_key(f, algs[i]);
        if (vpiv_alg_is_rsa(algs[i])) {
            size_t l;
            const uint8_t *v = find(f->data, f->dlen, 0x7F49, &l);
            const uint8_t *e = find(v, l, 0x82, &l);
            assert_int_equal(l, 3);
            assert_memory_equal(e, "\x01\x00\x01", 3);
            assert_int_equal(EVP_PKEY_get_bits(pub), 2048);
        }
        assert_int_equal(verify_pin(f), SW_OK);
        assert_signs(f, VPIV_KEY_AUTH, algs[i], pub);
        /* The wrong algorithm in P1 is refused. */
        uint8_t other = algs[(i + 1) % 3];
        assert_int_equal(sign_status(f, VPIV_KEY_AUTH, other), SW_WRONG_DATA);
        EVP_PKEY_free(pub);
    }
}

static void test_generate_rejects_bad_requests(void **state)
{
    fx *f = *state;
    auth_default(f);
    assert_int_equal(generate(f, VPIV_KEY_AUTH, 0x42), SW_WRONG_DATA);
    assert_int_equal(generate(f, VPIV_KEY_MGM, VPIV_ALG_ECCP256), SW_WRONG_P1P2);
    assert_int_equal(hx(f, "00 47 00 9A 03 AC 01 80"), SW_WRONG_DATA);
    assert_int_equal(metadata(f, VPIV_KEY_AUTH), SW_NOT_FOUND);
}

static void test_sign_with_empty_slot_is_6a88(void **state)
{
    fx *f = *state;
    assert_int_equal(verify_pin(f), SW_OK);
    assert_int_equal(sign_status(f, VPIV_KEY_AUTH, VPIV_ALG_ECCP256), SW_REF_NOT_FOUND);
    assert_int_equal(sign_status(f, 0x96, VPIV_ALG_ECCP256), SW_WRONG_P1P2);
}

static void test_slot_9c_needs_verify_before_each_signature(void **state)
{
    fx *f = *state;
    auth_default(f);
    assert_int_equal(generate(f, VPIV_KEY_SIGN, VPIV_ALG_ECCP256), SW_OK);
    EVP_PKEY *pub = generated_key(f, VPIV_ALG_ECCP256);
    assert_int_equal(sign_status(f, VPIV_KEY_SIGN, VPIV_ALG_ECCP256), SW_SECURITY);
    assert_int_equal(verify_pin(f), SW_OK);
    assert_signs(f, VPIV_KEY_SIGN, VPIV_ALG_ECCP256, pub);
    assert_int_equal(sign_status(f, VPIV_KEY_SIGN, VPIV_ALG_ECCP256), SW_SECURITY);
    assert_int_equal(verify_pin(f), SW_OK);
    assert_signs(f, VPIV_KEY_SIGN, VPIV_ALG_ECCP256, pub);
    /* The PIN is still verified for the other slots. */
    assert_int_equal(pin_status(f), SW_OK);
    EVP_PKEY_free(pub);
}

static void test_slot_9a_needs_pin_once(void **state)
{
    fx *f = *state;
    auth_default(f);
    assert_int_equal(generate(f, VPIV_KEY_AUTH, VPIV_ALG_ECCP256), SW_OK);
    EVP_PKEY *pub = generated_key(f, VPIV_ALG_ECCP256);
    assert_int_equal(sign_status(f, VPIV_KEY_AUTH, VPIV_ALG_ECCP256), SW_SECURITY);
    assert_int_equal(verify_pin(f), SW_OK);
    assert_signs(f, VPIV_KEY_AUTH, VPIV_ALG_ECCP256, pub);
    assert_signs(f, VPIV_KEY_AUTH, VPIV_ALG_ECCP256, pub);
    EVP_PKEY_free(pub);
}

static void test_slot_9e_signs_without_pin(void **state)
{
    fx *f = *state;
    auth_default(f);
    assert_int_equal(generate(f, VPIV_KEY_CARDAUTH, VPIV_ALG_ECCP384), SW_OK);
    EVP_PKEY *pub = generated_key(f, VPIV_ALG_ECCP384);
    assert_signs(f, VPIV_KEY_CARDAUTH, VPIV_ALG_ECCP384, pub);
    assert_signs(f, VPIV_KEY_CARDAUTH, VPIV_ALG_ECCP384, pub);
    assert_int_equal(pin_status(f), 0x63C3);
    EVP_PKEY_free(pub);
}

static void test_ecdh_with_9d_equals_host_ecdh(void **state)
{
    fx *f = *state;
    const uint8_t algs[] = {VPIV_ALG_ECCP256, VPIV_ALG_ECCP384};
    auth_default(f);
    assert_int_equal(verify_pin(f), SW_OK);
    for (size_t i = 0; i < 2; i++) {
        uint8_t alg = algs[i];
        assert_int_equal(generate(f, VPIV_KEY_KEYMGMT, alg), SW_OK);
        EVP_PKEY *card_pub = generated_key(f, alg);
        EVP_PKEY *peer =
            EVP_PKEY_Q_keygen(NULL, NULL, "EC", alg == VPIV_ALG_ECCP256 ? "P-256" : "P-384");
        assert_non_null(peer);
        uint8_t pt[97], c[120], inner[110], host[48];
        size_t ptlen = 0, hostlen = sizeof(host);
        assert_int_equal(
            EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &ptlen),
            1);
        vpiv_buf b, ib;
        vpiv_buf_init(&ib, inner, sizeof(inner));
        vpiv_tlv_put(&ib, 0x82, NULL, 0);
        vpiv_tlv_put(&ib, 0x85, pt, ptlen);
        vpiv_buf_init(&b, c, sizeof(c));
        vpiv_tlv_put(&b, 0x7C, inner, ib.len);
        assert_int_equal(cmd(f, INS_GENERAL_AUTH, alg, VPIV_KEY_KEYMGMT, c, b.len), SW_OK);
        size_t l, sl;
        const uint8_t *v = find(f->data, f->dlen, 0x7C, &l);
        const uint8_t *secret = find(v, l, 0x82, &sl);

        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(peer, NULL);
        assert_non_null(ctx);
        assert_int_equal(EVP_PKEY_derive_init(ctx), 1);
        assert_int_equal(EVP_PKEY_derive_set_peer(ctx, card_pub), 1);
        assert_int_equal(EVP_PKEY_derive(ctx, host, &hostlen), 1);
        assert_int_equal(sl, hostlen);
        assert_memory_equal(secret, host, hostlen);
        EVP_PKEY_CTX_free(ctx);
        EVP_PKEY_free(peer);
        EVP_PKEY_free(card_pub);

        /* A point that is not on the curve is refused. */
        pt[ptlen - 1] ^= 0x01;
        vpiv_buf_init(&ib, inner, sizeof(inner));
        vpiv_tlv_put(&ib, 0x82, NULL, 0);
        vpiv_tlv_put(&ib, 0x85, pt, ptlen);
        vpiv_buf_init(&b, c, sizeof(c));
        vpiv_tlv_put(&b, 0x7C, inner, ib.len);
        assert_int_equal(cmd(f, INS_GENERAL_AUTH, alg, VPIV_KEY_KEYMGMT, c, b.len), SW_WRONG_DATA);
    }
}

/* ---- IMPORT KEY ------------------------------------------------------- */

static void put_bn_param(vpiv_buf *b, uint32_t tag, EVP_PKEY *pkey, const char *name, size_t len)
{
    BIGNUM *bn = NULL;
    uint8_t tmp[128];
    assert_int_equal(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
    assert_true(len <= sizeof(tmp));
    assert_int_equal(BN_bn2binpad(bn, tmp, (int)len), (int)len);
    vpiv_tlv_put(b, tag, tmp, len);
    BN_clear_free(bn);
}

static void test_import_rsa_key_signs_verifiably(void **state)
{
    fx *f = *state;
    EVP_PKEY *host = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(host);
    uint8_t c[700];
    vpiv_buf b;
    vpiv_buf_init(&b, c, sizeof(c));
    put_bn_param(&b, 0x01, host, OSSL_PKEY_PARAM_RSA_FACTOR1, 128);
    put_bn_param(&b, 0x02, host, OSSL_PKEY_PARAM_RSA_FACTOR2, 128);
    put_bn_param(&b, 0x03, host, OSSL_PKEY_PARAM_RSA_EXPONENT1, 128);
    put_bn_param(&b, 0x04, host, OSSL_PKEY_PARAM_RSA_EXPONENT2, 128);
    put_bn_param(&b, 0x05, host, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 128);
    assert_false(b.overflow);
    assert_int_equal(cmd(f, INS_IMPORT_KEY, VPIV_ALG_RSA2048, VPIV_KEY_KEYMGMT, c, b.len),
                     SW_SECURITY);
    auth_default(f);
    assert_int_equal(cmd(f, INS_IMPORT_KEY, VPIV_ALG_RSA2048, VPIV_KEY_KEYMGMT, c, b.len), SW_OK);
    assert_int_equal(verify_pin(f), SW_OK);
    assert_signs(f, VPIV_KEY_KEYMGMT, VPIV_ALG_RSA2048, host);
    assert_int_equal(metadata(f, VPIV_KEY_KEYMGMT), SW_OK);
    size_t l;
    assert_int_equal(find(f->data, f->dlen, 0x03, &l)[0], VPIV_ORIGIN_IMPORTED);

    /* CRT parts that do not belong together are refused. */
    c[10] ^= 0x01;
    assert_int_equal(cmd(f, INS_IMPORT_KEY, VPIV_ALG_RSA2048, VPIV_KEY_AUTH, c, b.len),
                     SW_WRONG_DATA);
    assert_int_equal(metadata(f, VPIV_KEY_AUTH), SW_NOT_FOUND);
    EVP_PKEY_free(host);
}

static void test_import_ec_key_signs_verifiably(void **state)
{
    fx *f = *state;
    const uint8_t algs[] = {VPIV_ALG_ECCP256, VPIV_ALG_ECCP384};
    auth_default(f);
    for (size_t i = 0; i < 2; i++) {
        uint8_t alg = algs[i];
        EVP_PKEY *host =
            EVP_PKEY_Q_keygen(NULL, NULL, "EC", alg == VPIV_ALG_ECCP256 ? "P-256" : "P-384");
        assert_non_null(host);
        uint8_t c[64];
        vpiv_buf b;
        vpiv_buf_init(&b, c, sizeof(c));
        put_bn_param(&b, 0x06, host, OSSL_PKEY_PARAM_PRIV_KEY, digest_len(alg));
        assert_false(b.overflow);
        assert_int_equal(cmd(f, INS_IMPORT_KEY, alg, VPIV_KEY_CARDAUTH, c, b.len), SW_OK);
        assert_signs(f, VPIV_KEY_CARDAUTH, alg, host);
        /* A scalar of the wrong size is refused. */
        assert_int_equal(cmd(f, INS_IMPORT_KEY, alg, VPIV_KEY_CARDAUTH, c, b.len - 1),
                         SW_WRONG_DATA);
        EVP_PKEY_free(host);
    }
}

/* ---- GET METADATA, MOVE KEY, DELETE KEY, RESET ------------------------ */

static void test_metadata_pin_and_puk_report_retries(void **state)
{
    fx *f = *state;
    assert_int_equal(verify(f, VPIV_KEY_PIN, "000000"), 0x63C2);
    assert_int_equal(metadata(f, VPIV_KEY_PIN), SW_OK);
    const uint8_t pin[] = {0x01, 0x01, 0xFF, 0x05, 0x01, 0x01, 0x06, 0x02, 0x03, 0x02};
    assert_int_equal(f->dlen, sizeof(pin));
    assert_memory_equal(f->data, pin, sizeof(pin));
    assert_int_equal(metadata(f, VPIV_KEY_PUK), SW_OK);
    const uint8_t puk[] = {0x01, 0x01, 0xFF, 0x05, 0x01, 0x01, 0x06, 0x02, 0x03, 0x03};
    assert_int_equal(f->dlen, sizeof(puk));
    assert_memory_equal(f->data, puk, sizeof(puk));
}

static void test_metadata_mgm_reports_alg_and_default(void **state)
{
    fx *f = *state;
    assert_int_equal(metadata(f, VPIV_KEY_MGM), SW_OK);
    size_t l;
    assert_int_equal(find(f->data, f->dlen, 0x01, &l)[0], VPIV_ALG_3DES);
    assert_int_equal(find(f->data, f->dlen, 0x05, &l)[0], 1);
    auth_default(f);
    uint8_t key[24];
    random_bytes(key, sizeof(key));
    assert_int_equal(set_mgm(f, VPIV_ALG_3DES, key, 24), SW_OK);
    assert_int_equal(metadata(f, VPIV_KEY_MGM), SW_OK);
    assert_int_equal(find(f->data, f->dlen, 0x05, &l)[0], 0);
    /* Setting the default key back makes it the default again. */
    assert_int_equal(mgm_auth(f, VPIV_ALG_3DES, key), SW_OK);
    assert_int_equal(set_mgm(f, VPIV_ALG_3DES, default_mgm, 24), SW_OK);
    assert_int_equal(metadata(f, VPIV_KEY_MGM), SW_OK);
    assert_int_equal(find(f->data, f->dlen, 0x05, &l)[0], 1);
}

static void test_metadata_asym_slot_reports_key(void **state)
{
    fx *f = *state;
    assert_int_equal(metadata(f, VPIV_KEY_SIGN), SW_NOT_FOUND);
    auth_default(f);
    assert_int_equal(generate(f, VPIV_KEY_SIGN, VPIV_ALG_ECCP256), SW_OK);
    uint8_t pub[200];
    size_t publen;
    const uint8_t *v = find(f->data, f->dlen, 0x7F49, &publen);
    memcpy(pub, v, publen);
    assert_int_equal(metadata(f, VPIV_KEY_SIGN), SW_OK);
    size_t l;
    v = find(f->data, f->dlen, 0x01, &l);
    assert_int_equal(l, 1);
    assert_int_equal(v[0], VPIV_ALG_ECCP256);
    v = find(f->data, f->dlen, 0x02, &l);
    assert_int_equal(l, 2);
    assert_int_equal(v[0], VPIV_PIN_POLICY_ALWAYS);
    v = find(f->data, f->dlen, 0x03, &l);
    assert_int_equal(v[0], VPIV_ORIGIN_GENERATED);
    v = find(f->data, f->dlen, 0x04, &l);
    assert_int_equal(l, publen);
    assert_memory_equal(v, pub, publen);
    /* Slot 9E's default policy is "never". */
    assert_int_equal(generate(f, VPIV_KEY_CARDAUTH, VPIV_ALG_ECCP256), SW_OK);
    assert_int_equal(metadata(f, VPIV_KEY_CARDAUTH), SW_OK);
    assert_int_equal(find(f->data, f->dlen, 0x02, &l)[0], VPIV_PIN_POLICY_NEVER);
    /* An explicit policy in GENERATE is kept. */
    const uint8_t c[] = {0xAC, 0x06, 0x80, 0x01, VPIV_ALG_ECCP256, 0xAA, 0x01, 0x01};
    assert_int_equal(cmd(f, INS_GENERATE, 0x00, VPIV_KEY_AUTH, c, sizeof(c)), SW_OK);
    assert_int_equal(metadata(f, VPIV_KEY_AUTH), SW_OK);
    assert_int_equal(find(f->data, f->dlen, 0x02, &l)[0], VPIV_PIN_POLICY_NEVER);
    assert_int_equal(metadata(f, 0x42), SW_WRONG_P1P2);
}

static void test_move_key_moves_the_key(void **state)
{
    fx *f = *state;
    auth_default(f);
    assert_int_equal(generate(f, VPIV_KEY_AUTH, VPIV_ALG_ECCP256), SW_OK);
    EVP_PKEY *pub = generated_key(f, VPIV_ALG_ECCP256);
    vpiv_card_reset(f->card);
    assert_int_equal(select_piv(f), SW_OK);
    assert_int_equal(cmd(f, INS_MOVE_KEY, 0x82, VPIV_KEY_AUTH, NULL, 0), SW_SECURITY);
    auth_default(f);
    assert_int_equal(cmd(f, INS_MOVE_KEY, 0x82, VPIV_KEY_AUTH, NULL, 0), SW_OK);
    assert_int_equal(metadata(f, VPIV_KEY_AUTH), SW_NOT_FOUND);
    assert_int_equal(verify_pin(f), SW_OK);
    assert_int_equal(sign_status(f, VPIV_KEY_AUTH, VPIV_ALG_ECCP256), SW_REF_NOT_FOUND);
    assert_signs(f, 0x82, VPIV_ALG_ECCP256, pub);
    /* Moving from an empty slot, or onto itself, fails. */
    assert_int_equal(cmd(f, INS_MOVE_KEY, 0x83, VPIV_KEY_AUTH, NULL, 0), SW_REF_NOT_FOUND);
    assert_int_equal(cmd(f, INS_MOVE_KEY, 0x82, 0x82, NULL, 0), SW_WRONG_P1P2);
    EVP_PKEY_free(pub);
}

static void test_delete_key_empties_the_slot(void **state)
{
    fx *f = *state;
    auth_default(f);
    assert_int_equal(generate(f, VPIV_KEY_KEYMGMT, VPIV_ALG_ECCP256), SW_OK);
    assert_int_equal(cmd(f, INS_MOVE_KEY, 0xFF, VPIV_KEY_KEYMGMT, NULL, 0), SW_OK);
    assert_int_equal(metadata(f, VPIV_KEY_KEYMGMT), SW_NOT_FOUND);
    assert_int_equal(verify_pin(f), SW_OK);
    assert_int_equal(sign_status(f, VPIV_KEY_KEYMGMT, VPIV_ALG_ECCP256), SW_REF_NOT_FOUND);
    assert_int_equal(cmd(f, INS_MOVE_KEY, 0xFF, VPIV_KEY_KEYMGMT, NULL, 0), SW_REF_NOT_FOUND);
}

static void test_reset_only_when_pin_and_puk_blocked(void **state)
{
    fx *f = *state;
    auth_default(f);
    assert_int_equal(generate(f, VPIV_KEY_AUTH, VPIV_ALG_ECCP256), SW_OK);
    uint8_t key[16] = {0};
    assert_int_equal(set_mgm(f, VPIV_ALG_AES128, key, 16), SW_OK);
    assert_int_equal(put_data(f, TAG_PRINTED, (const uint8_t *)"x", 1), SW_OK);
    assert_int_equal(cmd(f, INS_RESET, 0, 0, NULL, 0), SW_CONDITIONS);
    block_pin(f);
    assert_int_equal(cmd(f, INS_RESET, 0, 0, NULL, 0), SW_CONDITIONS);
    block_puk(f);
    assert_int_equal(cmd(f, INS_RESET, 0, 0, NULL, 0), SW_OK);
    /* Factory state: default PIN, PUK and management key, no keys, no data. */
    assert_int_equal(verify_pin(f), SW_OK);
    assert_int_equal(old_new(f, INS_CHANGE_REF, VPIV_KEY_PUK, "12345678", "12345678"), SW_OK);
    assert_int_equal(metadata(f, VPIV_KEY_AUTH), SW_NOT_FOUND);
    assert_int_equal(get_data(f, TAG_PRINTED), SW_NOT_FOUND);
    assert_int_equal(get_data(f, TAG_CHUID), SW_OK);
    assert_int_equal(mgm_auth(f, VPIV_ALG_3DES, default_mgm), SW_OK);
}

static void test_get_version_and_serial(void **state)
{
    fx *f = *state;
    assert_int_equal(cmd(f, 0xFD, 0, 0, NULL, 0), SW_OK);
    assert_int_equal(f->dlen, 3);
    assert_int_equal(cmd(f, INS_GET_SERIAL, 0, 0, NULL, 0), SW_OK);
    const uint8_t serial[] = {0x00, 0xBC, 0x61, 0x4E}; /* 12345678 */
    assert_int_equal(f->dlen, 4);
    assert_memory_equal(f->data, serial, 4);
}

static void test_generic_profile_answers_vendor_ins_with_6d00(void **state)
{
    fx *f = *state;
    vpiv_options opt = {.profile = VPIV_PROFILE_GENERIC, .serial = 1};
    use_card(f, &opt);
    const uint8_t vendor[] = {0xFD, 0xF8, 0xF7, 0xFE, 0xFF, 0xF6, 0xFB, 0xFA};
    /* Even with every right in place. */
    auth_default(f);
    assert_int_equal(verify_pin(f), SW_OK);
    for (size_t i = 0; i < sizeof(vendor); i++) {
        uint8_t c[] = {0x00, vendor[i], 0x00, 0x9A};
        assert_int_equal(raw(f, c, sizeof(c)), SW_INS);
        assert_int_equal(f->rlen, 2);
        uint8_t d[] = {0x00, vendor[i], 0xFF, 0xFF, 0x03, 0x03, 0x9B, 0x00};
        assert_int_equal(raw(f, d, sizeof(d)), SW_INS);
    }
    /* The standard PIV commands still work. */
    assert_int_equal(get_data(f, TAG_CHUID), SW_OK);
    assert_int_equal(generate(f, VPIV_KEY_CARDAUTH, VPIV_ALG_ECCP256), SW_OK);
    EVP_PKEY *pub = generated_key(f, VPIV_ALG_ECCP256);
    assert_signs(f, VPIV_KEY_CARDAUTH, VPIV_ALG_ECCP256, pub);
    EVP_PKEY_free(pub);
}

/* ---- chaining, GET RESPONSE, extended length -------------------------- */

/* A PUT DATA command for a 3000-byte value in 5FC105, and the object's value. */
static size_t big_put(uint8_t *c, uint8_t *value, size_t vlen)
{
    random_bytes(value, vlen);
    vpiv_buf b;
    vpiv_buf_init(&b, c, vlen + 16);
    b.len = tag_list(TAG_CERT_9A, c);
    vpiv_tlv_put(&b, 0x53, value, vlen);
    assert_false(b.overflow);
    return b.len;
}

static void test_chaining_assembles_3000_byte_put_data(void **state)
{
    fx *f = *state;
    uint8_t *c = malloc(3016), *value = malloc(3000);
    assert_non_null(c);
    assert_non_null(value);
    size_t n = big_put(c, value, 3000);
    assert_int_equal(n, 5 + 4 + 3000);
    auth_default(f);
    assert_int_equal(cmd(f, INS_PUT_DATA, 0x3F, 0xFF, c, n), SW_OK);
    struct vpiv_object *o = vpiv_object_get(f->card, TAG_CERT_9A);
    assert_non_null(o);
    assert_int_equal(o->len, 3000);
    assert_memory_equal(o->data, value, 3000);
    assert_int_equal(get_data(f, TAG_CERT_9A), SW_OK);
    assert_int_equal(f->dlen, 3004);
    assert_memory_equal(f->data, "\x53\x82\x0B\xB8", 4);
    assert_memory_equal(f->data + 4, value, 3000);
    free(c);
    free(value);
}

static void test_chaining_interrupted_by_other_ins_is_6883(void **state)
{
    fx *f = *state;
    uint8_t *c = malloc(3016), *value = malloc(3000);
    assert_non_null(c);
    assert_non_null(value);
    size_t n = big_put(c, value, 3000);
    auth_default(f);
    uint8_t first[5 + 255] = {0x10, INS_PUT_DATA, 0x3F, 0xFF, 0xFF};
    memcpy(first + 5, c, 255);
    assert_int_equal(raw(f, first, sizeof(first)), SW_OK);
    assert_int_equal(hx(f, "00 CB 3F FF 05 5C 03 5F C1 02"), SW_LAST_CMD_EXPECTED);
    /* The chain is gone: the next command stands on its own. */
    assert_int_equal(get_data(f, TAG_CHUID), SW_OK);
    assert_int_equal(get_data(f, TAG_CERT_9A), SW_NOT_FOUND);
    /* Same INS but other P1/P2 breaks the chain too. */
    assert_int_equal(raw(f, first, sizeof(first)), SW_OK);
    assert_int_equal(hx(f, "00 DB 3F FE 01 00"), SW_LAST_CMD_EXPECTED);
    /* And a complete chain still works afterwards. */
    assert_int_equal(cmd(f, INS_PUT_DATA, 0x3F, 0xFF, c, n), SW_OK);
    free(c);
    free(value);
}

static void test_long_response_comes_in_61xx_chunks(void **state)
{
    fx *f = *state;
    uint8_t *c = malloc(3016), *value = malloc(3000);
    assert_non_null(c);
    assert_non_null(value);
    size_t n = big_put(c, value, 3000);
    auth_default(f);
    assert_int_equal(cmd(f, INS_PUT_DATA, 0x3F, 0xFF, c, n), SW_OK);

    uint8_t *joined = malloc(3004);
    assert_non_null(joined);
    size_t got = 0;
    uint16_t sw = hx(f, "00 CB 3F FF 05 5C 03 5F C1 05 00");
    for (;;) {
        size_t left = 3004 - (got + f->rlen - 2);
        memcpy(joined + got, f->r, f->rlen - 2);
        got += f->rlen - 2;
        if (left == 0) {
            assert_int_equal(sw, SW_OK);
            break;
        }
        /* Full 256-byte chunks, each announcing what is left (00: 256 or more). */
        assert_int_equal(f->rlen - 2, 256);
        assert_int_equal(sw, 0x6100 | (left > 255 ? 0 : left));
        const uint8_t gr[5] = {0x00, INS_GET_RESPONSE, 0x00, 0x00, (uint8_t)sw};
        sw = raw(f, gr, sizeof(gr));
    }
    assert_int_equal(got, 3004);
    assert_memory_equal(joined + 4, value, 3000);
    /* Nothing is left to fetch. */
    assert_int_not_equal(hx(f, "00 C0 00 00 00"), SW_OK);
    /* A short Le takes smaller pieces. */
    assert_int_equal(hx(f, "00 CB 3F FF 05 5C 03 5F C1 05 10"), 0x6100);
    assert_int_equal(f->rlen, 18);
    assert_memory_equal(f->r, "\x53\x82\x0B\xB8", 4);
    /* Any other command drops what was pending. */
    assert_int_equal(get_data(f, TAG_CHUID), SW_OK);
    assert_int_not_equal(hx(f, "00 C0 00 00 00"), SW_OK);
    free(joined);
    free(c);
    free(value);
}

static void test_extended_length_rejected_without_option(void **state)
{
    fx *f = *state;
    assert_int_equal(hx(f, "00 CB 3F FF 00 00 05 5C 03 5F C1 02 00 00"), SW_WRONG_LENGTH);
    assert_int_equal(hx(f, "00 CB 3F FF 00 00 05 5C 03 5F C1 02"), SW_WRONG_LENGTH);
    assert_int_equal(hx(f, "00 C0 00 00 00 01 00"), SW_WRONG_LENGTH);
}

static void test_extended_length_answered_in_one_piece_with_option(void **state)
{
    fx *f = *state;
    vpiv_options opt = {.profile = VPIV_PROFILE_YUBICO, .ext_length = true, .serial = 7};
    use_card(f, &opt);
    auth_default(f);
    uint8_t *c = malloc(3016 + 9), *value = malloc(3000);
    assert_non_null(c);
    assert_non_null(value);
    size_t n = big_put(c + 7, value, 3000);
    c[0] = 0x00;
    c[1] = INS_PUT_DATA;
    c[2] = 0x3F;
    c[3] = 0xFF;
    c[4] = 0x00;
    c[5] = (uint8_t)(n >> 8);
    c[6] = (uint8_t)n;
    assert_int_equal(raw(f, c, 7 + n), SW_OK);
    assert_int_equal(hx(f, "00 CB 3F FF 00 00 05 5C 03 5F C1 05 00 00"), SW_OK);
    assert_int_equal(f->rlen, 3004 + 2);
    assert_memory_equal(f->r, "\x53\x82\x0B\xB8", 4);
    assert_memory_equal(f->r + 4, value, 3000);
    /* Short APDUs still work the short way on the same card. */
    assert_int_equal(hx(f, "00 CB 3F FF 05 5C 03 5F C1 05 00"), 0x6100);
    assert_int_equal(f->rlen, 258);
    free(c);
    free(value);
}

/* The card-capabilities byte of the ATR's historical bytes (compact-TLV 73). */
static uint8_t atr_caps3(const uint8_t *atr, size_t n)
{
    for (size_t i = 4; i + 3 < n; i++)
        if (atr[i] == 0x73)
            return atr[i + 3];
    fail_msg("no card capabilities in the ATR");
    return 0;
}

static void test_atr_advertises_extended_length_only_with_option(void **state)
{
    fx *f = *state;
    uint8_t a[40], b[40];
    size_t na = vpiv_card_atr(f->card, a, sizeof(a));
    vpiv_options opt = {.profile = VPIV_PROFILE_YUBICO, .ext_length = true, .serial = 7};
    use_card(f, &opt);
    size_t nb = vpiv_card_atr(f->card, b, sizeof(b));
    assert_int_equal(na, nb);
    assert_int_equal(a[0], 0x3B);
    assert_int_equal(atr_caps3(a, na) & 0x40, 0);
    assert_int_equal(atr_caps3(b, nb) & 0x40, 0x40);
    /* Only that bit and the check byte differ, and the check bytes are right. */
    size_t diffs = 0;
    for (size_t i = 0; i < na - 1; i++)
        diffs += a[i] != b[i];
    assert_int_equal(diffs, 1);
    uint8_t xa = 0, xb = 0;
    for (size_t i = 1; i < na; i++) {
        xa ^= a[i];
        xb ^= b[i];
    }
    assert_int_equal(xa, 0);
    assert_int_equal(xb, 0);
}

/* ---- state file ------------------------------------------------------- */

typedef struct {
    char dir[64];
    char path[96];
} tmpstate;

static void tmpstate_init(tmpstate *t)
{
    const char *base = getenv("TMPDIR");
    snprintf(t->dir, sizeof(t->dir), "%s/vpiv-test-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/card", t->dir);
}

static void tmpstate_close(tmpstate *t)
{
    unlink(t->path);
    rmdir(t->dir);
}

static void test_state_save_load_round_trip(void **state)
{
    fx *f = *state;
    tmpstate t;
    tmpstate_init(&t);
    auth_default(f);
    assert_int_equal(generate(f, VPIV_KEY_AUTH, VPIV_ALG_RSA2048), SW_OK);
    EVP_PKEY *rsa = generated_key(f, VPIV_ALG_RSA2048);
    assert_int_equal(generate(f, VPIV_KEY_CARDAUTH, VPIV_ALG_ECCP384), SW_OK);
    EVP_PKEY *ec = generated_key(f, VPIV_ALG_ECCP384);
    uint8_t *c = malloc(3016), *value = malloc(3000);
    assert_non_null(c);
    assert_non_null(value);
    assert_int_equal(cmd(f, INS_PUT_DATA, 0x3F, 0xFF, c, big_put(c, value, 3000)), SW_OK);
    uint8_t key[16];
    random_bytes(key, sizeof(key));
    assert_int_equal(set_mgm(f, VPIV_ALG_AES128, key, sizeof(key)), SW_OK);
    assert_int_equal(verify(f, VPIV_KEY_PIN, "000000"), 0x63C2);
    assert_int_equal(old_new(f, INS_RESET_RETRY, VPIV_KEY_PIN, "00000000", "123456"), 0x63C2);
    assert_int_equal(old_new(f, INS_RESET_RETRY, VPIV_KEY_PIN, "00000000", "123456"), 0x63C1);
    assert_true(vpiv_card_dirty(f->card));

    assert_int_equal(vpiv_card_save(f->card, t.path), 0);
    vpiv_card *loaded = NULL;
    assert_int_equal(vpiv_card_load(&loaded, t.path), 0);
    assert_false(vpiv_card_dirty(loaded));
    /* Every object byte for byte, and no others. */
    assert_int_equal(loaded->n_objects, f->card->n_objects);
    for (size_t i = 0; i < f->card->n_objects; i++) {
        const struct vpiv_object *a = &f->card->objects[i];
        const struct vpiv_object *b = vpiv_object_get(loaded, a->tag);
        assert_non_null(b);
        assert_int_equal(a->len, b->len);
        assert_memory_equal(a->data, b->data, a->len);
    }
    assert_int_equal(loaded->serial, f->card->serial);
    assert_int_equal(loaded->profile, f->card->profile);
    vpiv_card_free(f->card);
    f->card = loaded;

    assert_int_equal(select_piv(f), SW_OK);
    assert_int_equal(pin_status(f), 0x63C2);
    assert_int_equal(metadata(f, VPIV_KEY_PUK), SW_OK);
    size_t l;
    const uint8_t *retries = find(f->data, f->dlen, 0x06, &l);
    assert_int_equal(retries[1], 1);
    assert_int_equal(get_data(f, TAG_CERT_9A), SW_OK);
    assert_int_equal(f->dlen, 3004);
    assert_memory_equal(f->data + 4, value, 3000);
    assert_signs(f, VPIV_KEY_CARDAUTH, VPIV_ALG_ECCP384, ec);
    assert_int_equal(verify_pin(f), SW_OK);
    assert_signs(f, VPIV_KEY_AUTH, VPIV_ALG_RSA2048, rsa);
    assert_int_equal(metadata(f, VPIV_KEY_AUTH), SW_OK);
    assert_int_equal(find(f->data, f->dlen, 0x02, &l)[0], VPIV_PIN_POLICY_ONCE);
    assert_int_equal(find(f->data, f->dlen, 0x03, &l)[0], VPIV_ORIGIN_GENERATED);
    assert_int_equal(mgm_auth(f, VPIV_ALG_AES128, key), SW_OK);
    assert_int_equal(cmd(f, INS_GET_SERIAL, 0, 0, NULL, 0), SW_OK);
    assert_memory_equal(f->data, "\x00\xBC\x61\x4E", 4);

    free(c);
    free(value);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    tmpstate_close(&t);
}

static void test_state_load_keeps_profile_and_ext_length(void **state)
{
    fx *f = *state;
    tmpstate t;
    tmpstate_init(&t);
    vpiv_options opt = {.profile = VPIV_PROFILE_GENERIC, .ext_length = true, .serial = 99};
    use_card(f, &opt);
    assert_int_equal(vpiv_card_save(f->card, t.path), 0);
    vpiv_card *loaded = NULL;
    assert_int_equal(vpiv_card_load(&loaded, t.path), 0);
    vpiv_card_free(f->card);
    f->card = loaded;
    assert_int_equal(select_piv(f), SW_OK);
    assert_int_equal(cmd(f, 0xFD, 0, 0, NULL, 0), SW_INS);
    assert_int_equal(hx(f, "00 CB 3F FF 00 00 05 5C 03 5F C1 02 00 00"), SW_OK);
    tmpstate_close(&t);
}

static void test_state_load_rejects_malformed_files(void **state)
{
    (void)state;
    tmpstate t;
    tmpstate_init(&t);
    static const char *const bad[] = {
        "",
        "vpiv-state 2\n",
        "not a state file\n",
        "vpiv-state 1\nbogus 1\n",
        "vpiv-state 1\npin 3132 3 3 1\n",
        "vpiv-state 1\npin 313233343536ffff 4 3 1\n",
        "vpiv-state 1\nmgm 3 0102 1\n",
        "vpiv-state 1\nmgm 99 0102030405060708 1\n",
        "vpiv-state 1\nkey 9a 17 3 1 1 00ff\n",
        "vpiv-state 1\nkey 9b 17 3 1 1 00ff\n",
        "vpiv-state 1\nobj 5fc102 zz\n",
        "vpiv-state 1\nobj 5fc102 -\n",
        "vpiv-state 1\nversion 5.7\n",
        /* Records without the header line first: not a vpiv state file. */
        "serial 5\nvpiv-state 1\n",
        "profile generic\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *fp = fopen(t.path, "w");
        assert_non_null(fp);
        fputs(bad[i], fp);
        fclose(fp);
        vpiv_card *card = NULL;
        if (vpiv_card_load(&card, t.path) == 0) {
            vpiv_card_free(card);
            fail_msg("loaded malformed state %zu: %s", i, bad[i]);
        }
        assert_null(card);
    }
    vpiv_card *card = NULL;
    tmpstate_close(&t);
    assert_int_equal(vpiv_card_load(&card, t.path), -1);
}

/* ---- status words for malformed APDUs --------------------------------- */

static void test_unknown_cla_is_6e00(void **state)
{
    fx *f = *state;
    assert_int_equal(hx(f, "80 CB 3F FF 05 5C 03 5F C1 02"), SW_CLA);
    assert_int_equal(hx(f, "0C CB 3F FF 05 5C 03 5F C1 02"), SW_CLA);
    assert_int_equal(hx(f, "FF A4 04 00 05 A0 00 00 03 08"), SW_CLA);
}

static void test_unknown_ins_is_6d00(void **state)
{
    fx *f = *state;
    assert_int_equal(hx(f, "00 12 00 00"), SW_INS);
    assert_int_equal(hx(f, "00 B0 00 00 00"), SW_INS);
    assert_int_equal(hx(f, "00 E2 00 00 01 00"), SW_INS);
}

static void test_truncated_apdus_are_6700(void **state)
{
    fx *f = *state;
    assert_int_equal(hx(f, ""), SW_WRONG_LENGTH);
    assert_int_equal(hx(f, "00 A4 04"), SW_WRONG_LENGTH);
    /* Lc says 11, three bytes follow. */
    assert_int_equal(hx(f, "00 A4 04 00 0B A0 00 00"), SW_WRONG_LENGTH);
    /* Lc 5, six bytes follow plus Le: one byte too many. */
    assert_int_equal(hx(f, "00 CB 3F FF 05 5C 03 5F C1 02 00 00"), SW_WRONG_LENGTH);
    assert_int_equal(hx(f, "00 CB 3F FF 05 5C 03"), SW_WRONG_LENGTH);
    /* The card is still fine. */
    assert_int_equal(get_data(f, TAG_CHUID), SW_OK);
}

static void test_commands_without_data_are_rejected_cleanly(void **state)
{
    fx *f = *state;
    auth_default(f);
    assert_int_equal(hx(f, "00 DB 3F FF"), SW_WRONG_DATA);
    assert_int_equal(hx(f, "00 87 03 9B"), SW_WRONG_DATA);
    assert_int_equal(hx(f, "00 87 11 9A 00"), SW_WRONG_DATA);
    assert_int_equal(hx(f, "00 47 00 9A"), SW_WRONG_DATA);
    assert_int_equal(hx(f, "00 FE 11 9A"), SW_WRONG_DATA);
    assert_int_equal(hx(f, "00 FF FF FF"), SW_WRONG_DATA);
    assert_int_equal(hx(f, "00 24 00 80"), SW_WRONG_DATA);
    assert_int_equal(hx(f, "00 2C 00 80"), SW_WRONG_DATA);
    assert_int_equal(hx(f, "00 A4 04 00"), SW_NOT_FOUND);
    /* An empty chained piece is accepted and adds nothing. */
    assert_int_equal(hx(f, "10 CB 3F FF"), SW_OK);
    assert_int_equal(hx(f, "00 CB 3F FF 05 5C 03 5F C1 02"), SW_OK);
}

/* Random commands from the card's own instruction set: whatever the bytes,
 * the card answers with a status word (and the sanitizers watch). */
static void test_random_apdus_always_answer_with_a_status_word(void **state)
{
    fx *f = *state;
    static const uint8_t ins[] = {0xA4, 0xCB, 0xDB, 0x20, 0x24, 0x2C, 0x87, 0x47, 0xC0,
                                  0xFD, 0xF8, 0xF7, 0xFE, 0xFF, 0xF6, 0xFA, 0x00};
    uint32_t x = 0x2545F491u;
    uint8_t c[300];
    auth_default(f);
    assert_int_equal(verify_pin(f), SW_OK);
    for (int i = 0; i < 20000; i++) {
        size_t n = 0;
        for (size_t j = 0; j < sizeof(c); j++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            c[j] = (uint8_t)x;
            if (j == 0)
                n = x % 300;
        }
        c[0] &= 0x10;
        c[1] = ins[c[1] % sizeof(ins)];
        if (c[1] == 0xFB || c[1] == 0x47)
            c[1] = 0xCB; /* no factory reset or key generation here */
        if (n > 5 && c[4] != 0)
            n = (size_t)(c[4] + 5 + (c[5] & 1));
        if (n > sizeof(c))
            n = sizeof(c);
        raw(f, c, n);
        uint8_t sw1 = f->r[f->rlen - 2];
        assert_true(sw1 == 0x90 || sw1 == 0x61 || (sw1 >= 0x62 && sw1 <= 0x6F));
    }
    vpiv_card_reset(f->card);
    assert_int_equal(select_piv(f), SW_OK);
    assert_int_equal(get_data(f, TAG_CHUID), SW_OK);
}

#define T(name)            cmocka_unit_test_setup_teardown(name, setup, teardown)
#define T_UNSELECTED(name) cmocka_unit_test_setup_teardown(name, setup_unselected, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_UNSELECTED(test_select_full_aid_returns_application_property_template),
        T_UNSELECTED(test_select_truncated_aid_selects),
        T_UNSELECTED(test_select_unknown_aid_is_6a82),
        T_UNSELECTED(test_select_p2_0c_answers_without_fci),
        T_UNSELECTED(test_commands_before_select_are_6d00),
        T(test_get_data_chuid_ccc_key_history_in_53),
        T(test_get_data_discovery_uses_7e_wrapper),
        T(test_get_data_absent_object_is_6a82),
        T(test_get_data_malformed_tag_list_is_6a80),
        T(test_get_data_wrong_p1p2_is_6a86),
        T(test_get_data_pin_protected_object_needs_verify),
        T(test_verify_right_pin_verifies),
        T(test_verify_wrong_pin_counts_down_and_blocks),
        T(test_verify_right_pin_restores_retries),
        T(test_verify_malformed_is_rejected_without_counting),
        T(test_verify_p1_ff_resets_security_status),
        T(test_change_pin_replaces_the_pin),
        T(test_change_pin_too_short_is_6a80_without_counting),
        T(test_change_pin_wrong_old_counts_down),
        T(test_change_puk_replaces_the_puk),
        T(test_reset_retry_counter_unblocks_pin_with_puk),
        T(test_reset_retry_counter_with_blocked_puk_is_6983),
        T(test_mgm_auth_3des_default_key_succeeds),
        T(test_mgm_auth_wrong_response_is_6982),
        T(test_put_data_and_generate_need_mgm_auth),
        T(test_set_mgm_key_aes_then_authenticate_with_it),
        T(test_set_mgm_key_needs_auth_and_a_valid_key),
        T(test_generate_key_returns_public_key_that_verifies_signatures),
        T(test_generate_rejects_bad_requests),
        T(test_sign_with_empty_slot_is_6a88),
        T(test_slot_9c_needs_verify_before_each_signature),
        T(test_slot_9a_needs_pin_once),
        T(test_slot_9e_signs_without_pin),
        T(test_ecdh_with_9d_equals_host_ecdh),
        T(test_import_rsa_key_signs_verifiably),
        T(test_import_ec_key_signs_verifiably),
        T(test_metadata_pin_and_puk_report_retries),
        T(test_metadata_mgm_reports_alg_and_default),
        T(test_metadata_asym_slot_reports_key),
        T(test_move_key_moves_the_key),
        T(test_delete_key_empties_the_slot),
        T(test_reset_only_when_pin_and_puk_blocked),
        T(test_get_version_and_serial),
        T(test_generic_profile_answers_vendor_ins_with_6d00),
        T(test_chaining_assembles_3000_byte_put_data),
        T(test_chaining_interrupted_by_other_ins_is_6883),
        T(test_long_response_comes_in_61xx_chunks),
        T(test_extended_length_rejected_without_option),
        T(test_extended_length_answered_in_one_piece_with_option),
        T(test_atr_advertises_extended_length_only_with_option),
        T(test_state_save_load_round_trip),
        T(test_state_load_keeps_profile_and_ext_length),
        T(test_state_load_rejects_malformed_files),
        T(test_unknown_cla_is_6e00),
        T(test_unknown_ins_is_6d00),
        T(test_truncated_apdus_are_6700),
        T(test_commands_without_data_are_rejected_cleanly),
        T(test_random_apdus_always_answer_with_a_status_word),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
