/*
 * fuzz_cms.c - libFuzzer target for the CMS code of the x509 module: what a web page hands to
 * verify.cms and decrypt.cms. The first byte picks what is done with the rest:
 *   0  uk_x509_cms_verify on the DER, attached content
 *   1  the same, detached: the second byte n, then the DER, then n bytes of content
 *   2  uk_x509_cms_envelope_open for three recipients (RSA-2048, P-256, SM2; fuzz_cms_keys.h), then
 *      uk_x509_cms_envelope_finish with a card answer made of input bytes (a card that lies);
 *      for SM2, uk_x509_cms_envelope_sm2 (what the token is given) and uk_x509_cms_envelope_unpad
 *      of a token answer made of input bytes
 *   3  the same, with the answer the card would give (the recipient's private key here does the
 *      card's part; for SM2 the token's session-key unwrap and SM4-CBC), so that the unpadding,
 *      KDF, unwrap and content decryption see real keys with fuzzed envelopes.
 * Invariants: a success returns what the header promises (lengths within the input's, a card
 * input of the size the key needs); nothing leaks (LeakSanitizer in the fuzz preset).
 * Seed corpus: tests/fuzz/corpus/cms/: `openssl cms -sign` (RSA attached, P-256 detached and
 * without attributes), GM/T 0010 SM2 SignedData built by hand and signed by `openssl pkeyutl
 * -rawin -digest sm3` with the default ID (sig_sm2_*: attached, detached, and without signed
 * attributes with the sm2-1 signature OID; OpenSSL 3.0's CMS cannot make them), and `openssl cms
 * -encrypt` to these recipients (RSA, EC, both, by key id, RSA-OAEP), and GM/T 0010 envelopes to
 * the SM2 one (env_sm2_*: sm2-3 key transport, SM4-CBC; built by hand), each after its mode byte.
 * Run: build/fuzz/tests/fuzz/fuzz_cms -max_len=4096 tests/fuzz/corpus/cms/
 */
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_cms_keys.h"
#include "uk_err.h"
#include "uk_x509.h"

enum { MODE_VERIFY, MODE_VERIFY_DETACHED, MODE_OPEN_LYING_CARD, MODE_OPEN_TRUE_CARD, MODES };

static uk_cert_info *certs[3];
static EVP_PKEY *keys[3];

static void setup(void)
{
    if (certs[0] != NULL)
        return;
    const unsigned char *k0 = fuzz_cms_rsa_key, *k1 = fuzz_cms_ec_key, *k2 = fuzz_cms_sm2_key;
    if (uk_x509_parse(fuzz_cms_rsa_cert, fuzz_cms_rsa_cert_len, &certs[0]) != UK_OK ||
        uk_x509_parse(fuzz_cms_ec_cert, fuzz_cms_ec_cert_len, &certs[1]) != UK_OK ||
        uk_x509_parse(fuzz_cms_sm2_cert, fuzz_cms_sm2_cert_len, &certs[2]) != UK_OK ||
        (keys[0] = d2i_AutoPrivateKey(NULL, &k0, (long)fuzz_cms_rsa_key_len)) == NULL ||
        (keys[1] = d2i_AutoPrivateKey(NULL, &k1, (long)fuzz_cms_ec_key_len)) == NULL ||
        (keys[2] = d2i_AutoPrivateKey(NULL, &k2, (long)fuzz_cms_sm2_key_len)) == NULL)
        abort();
}

static void verify(const uint8_t *der, size_t len, const uint8_t *content, size_t content_len)
{
    uk_x509_cms_verified *v = NULL;
    if (uk_x509_cms_verify(der, len, content, content_len, &v) != UK_OK)
        return;
    if (v == NULL || v->signer_der == NULL || v->signer_der_len == 0 || v->signer_der_len >= len ||
        v->detached != (content != NULL) || (v->content_len > 0 && v->content == NULL))
        abort();
    if (content != NULL ? v->content_len != content_len ||
                              (content_len > 0 && memcmp(v->content, content, content_len) != 0)
                        : v->content_len >= len)
        abort();
    uk_x509_cms_verified_free(v);
}

/* What the card computes for how with keys[which]: RSA without padding, or ECDH's X. */
static size_t card_answer(size_t which, uk_x509_unwrap how, const uint8_t *in, size_t in_len,
                          uint8_t *out, size_t cap)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(keys[which], NULL);
    EVP_PKEY *peer = NULL;
    size_t n = cap;
    bool ok = false;
    if (ctx == NULL)
        abort();
    if (how == UK_X509_UNWRAP_RSA) {
        ok = EVP_PKEY_decrypt_init(ctx) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) == 1 &&
             EVP_PKEY_decrypt(ctx, out, &n, in, in_len) == 1;
    } else if (how == UK_X509_UNWRAP_SM2) {
        /* The token's SM2 decryption: fails (C3 check) unless the SM2Cipher is genuine. */
        ok = EVP_PKEY_decrypt_init(ctx) == 1 && EVP_PKEY_decrypt(ctx, out, &n, in, in_len) == 1;
    } else {
        /* The peer point on the recipient's curve, as the card would take it. */
        EVP_PKEY *tmpl = keys[which];
        peer = EVP_PKEY_new();
        ok = peer != NULL && EVP_PKEY_copy_parameters(peer, tmpl) == 1 &&
             EVP_PKEY_set1_encoded_public_key(peer, in, in_len) == 1 &&
             EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
             EVP_PKEY_derive(ctx, out, &n) == 1;
    }
    EVP_PKEY_free(peer);
    EVP_PKEY_CTX_free(ctx);
    return ok ? n : 0;
}

/* An SM2 envelope, which the token opens itself: what it is given (uk_x509_cms_envelope_sm2),
 * what it answers (a true token: SKF_ImportSessionKey's SM2 decryption of the SM2Cipher, then
 * SM4-CBC without padding; a lying one: input bytes), and the unpadding of that answer. */
static void open_sm2(uk_x509_cms_envelope *e, const uint8_t *der, size_t len,
                     const uint8_t *card_in, size_t card_in_len, bool true_card)
{
    uk_x509_sm2_cipher key;
    uint8_t iv[16], cek[64];
    const uint8_t *ct = NULL;
    size_t ct_len = 0;
    if (uk_x509_cms_envelope_sm2(e, &key, iv, &ct, &ct_len) != UK_OK)
        return;
    if (key.c2_len == 0 || key.c2_len > sizeof(key.c2) || ct == NULL || ct_len == 0 ||
        ct_len % 16 != 0 || ct_len > len)
        abort();
    uint8_t *plain = malloc(ct_len);
    if (plain == NULL)
        abort();
    bool have = false;
    if (true_card) {
        size_t n = card_answer(2, UK_X509_UNWRAP_SM2, card_in, card_in_len, cek, sizeof(cek));
        EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
        int l = 0;
        have = n == 16 && cc != NULL && EVP_DecryptInit_ex(cc, EVP_sm4_cbc(), NULL, cek, iv) == 1 &&
               EVP_CIPHER_CTX_set_padding(cc, 0) == 1 &&
               EVP_DecryptUpdate(cc, plain, &l, ct, (int)ct_len) == 1 && (size_t)l == ct_len;
        EVP_CIPHER_CTX_free(cc);
    } else {
        for (size_t i = 0; i < ct_len; i++)
            plain[i] = der[i % len] ^ (uint8_t)i;
        have = true;
    }
    uint8_t *content = NULL;
    size_t content_len = 0;
    if (have && uk_x509_cms_envelope_unpad(e, plain, ct_len, &content, &content_len) == UK_OK &&
        (content == NULL || content_len >= ct_len ||
         (content_len > 0 && memcmp(content, plain, content_len) != 0)))
        abort();
    free(content);
    free(plain);
}

static void open_envelope(const uint8_t *der, size_t len, bool true_card)
{
    uk_x509_cms_envelope *e = NULL;
    size_t which = 99, card_in_len = 0;
    uk_x509_unwrap how = 0;
    const uint8_t *card_in = NULL;
    const uk_cert_info *const recips[3] = {certs[0], certs[1], certs[2]};
    if (uk_x509_cms_envelope_open(der, len, recips, 3, &e, &which, &how, &card_in, &card_in_len) !=
        UK_OK)
        return;
    /* SM2: a DER SM2Cipher of a content key (at most 32 bytes): well under 160 bytes. */
    if (e == NULL || which > 2 || card_in == NULL || card_in_len == 0 ||
        (how != UK_X509_UNWRAP_RSA && how != UK_X509_UNWRAP_ECDH && how != UK_X509_UNWRAP_SM2) ||
        (how == UK_X509_UNWRAP_RSA && (which != 0 || card_in_len != 256)) ||
        (how == UK_X509_UNWRAP_ECDH && (which != 1 || card_in_len != 65)) ||
        (how == UK_X509_UNWRAP_SM2 && (which != 2 || card_in_len > 160 || card_in[0] != 0x30)))
        abort();
    if (how == UK_X509_UNWRAP_SM2) {
        open_sm2(e, der, len, card_in, card_in_len, true_card);
        uk_x509_cms_envelope_free(e);
        return;
    }
    uint8_t out[512];
    size_t out_len = how == UK_X509_UNWRAP_RSA ? 256 : 32;
    if (true_card) {
        out_len = card_answer(which, how, card_in, card_in_len, out, sizeof(out));
    } else {
        for (size_t i = 0; i < out_len; i++)
            out[i] = der[i % len] ^ (uint8_t)i;
    }
    uint8_t *content = NULL;
    size_t content_len = 0;
    if (out_len > 0 &&
        uk_x509_cms_envelope_finish(e, out, out_len, &content, &content_len) == UK_OK) {
        if (content == NULL && content_len != 0)
            abort();
        if (content_len > len)
            abort();
    }
    free(content);
    uk_x509_cms_envelope_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uk_fuzz_quiet();
    setup();
    if (size < 2)
        return 0;
    unsigned mode = data[0] % MODES;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (mode) {
    case MODE_VERIFY:
        verify(p, n, NULL, 0);
        break;
    case MODE_VERIFY_DETACHED: {
        size_t k = p[0];
        if (k > n - 1)
            return 0;
        verify(p + 1, n - 1 - k, p + n - k, k);
        break;
    }
    case MODE_OPEN_LYING_CARD:
        open_envelope(p, n, false);
        break;
    default:
        open_envelope(p, n, true);
        break;
    }
    return 0;
}
