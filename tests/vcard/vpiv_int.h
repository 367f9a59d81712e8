/* Internal to the virtual card: state layout and BER-TLV helpers shared by
 * the engine, the state file and provisioning. */
#ifndef VPIV_INT_H
#define VPIV_INT_H

#include "vpiv.h"

#include <openssl/evp.h>

#define VPIV_PIN_LEN       8     /* PIN and PUK are stored padded with 0xFF */
#define VPIV_MAX_OBJECTS   64    /* distinct data objects on one card */
#define VPIV_DEFAULT_OBJ   8192  /* default largest object value */
#define VPIV_MAX_CHAIN     16384 /* largest command assembled by chaining */
#define VPIV_DEFAULT_TRIES 3

/* SP 800-73-4 key references. */
enum {
    VPIV_KEY_PIN = 0x80,
    VPIV_KEY_PUK = 0x81,
    VPIV_KEY_MGM = 0x9B,
    VPIV_KEY_AUTH = 0x9A,
    VPIV_KEY_SIGN = 0x9C,
    VPIV_KEY_KEYMGMT = 0x9D,
    VPIV_KEY_CARDAUTH = 0x9E,
    VPIV_KEY_RETIRED_FIRST = 0x82,
    VPIV_KEY_RETIRED_LAST = 0x95,
};

enum { VPIV_ORIGIN_GENERATED = 1, VPIV_ORIGIN_IMPORTED = 2 };

struct vpiv_key {
    uint8_t alg;
    uint8_t pin_policy; /* VPIV_PIN_POLICY_*, never DEFAULT once stored */
    uint8_t touch_policy;
    uint8_t origin;
    EVP_PKEY *pkey;
};

struct vpiv_object {
    uint32_t tag;
    uint8_t *data; /* the value inside the 53 (or 7E / 7F61) wrapper */
    size_t len;
};

struct vpiv_ref {
    uint8_t value[VPIV_PIN_LEN];
    uint8_t tries;
    uint8_t max_tries;
    bool is_default;
};

struct vpiv_card {
    /* persistent */
    vpiv_profile profile;
    bool ext_length;
    uint8_t version[3];
    uint32_t serial;
    size_t max_object;
    struct vpiv_ref pin;
    struct vpiv_ref puk;
    uint8_t mgm_alg;
    uint8_t mgm_key[32];
    size_t mgm_len;
    bool mgm_default;
    struct vpiv_key *keys[256]; /* indexed by key reference */
    struct vpiv_object objects[VPIV_MAX_OBJECTS];
    size_t n_objects;

    /* volatile: cleared by vpiv_card_reset */
    bool selected;
    bool pin_verified;
    bool pin_fresh; /* VERIFY happened just before: lets one PIN-always op run */
    bool mgm_authed;
    uint8_t witness[16];
    size_t witness_len;
    uint8_t challenge[16];
    size_t challenge_len;
    uint8_t *chain;
    size_t chain_len;
    uint8_t chain_ins, chain_p1, chain_p2;
    uint8_t *pending; /* response data not yet fetched with GET RESPONSE */
    size_t pending_len;
    size_t pending_off;

    bool dirty;
};

/* A growable-free output buffer over fixed storage; overflow sticks. */
typedef struct {
    uint8_t *p;
    size_t len;
    size_t cap;
    bool overflow;
} vpiv_buf;

void vpiv_buf_init(vpiv_buf *b, uint8_t *p, size_t cap);
void vpiv_buf_put(vpiv_buf *b, const void *v, size_t n);
void vpiv_buf_byte(vpiv_buf *b, uint8_t v);
void vpiv_tlv_put_tag(vpiv_buf *b, uint32_t tag);
void vpiv_tlv_put_len(vpiv_buf *b, size_t len);
void vpiv_tlv_put(vpiv_buf *b, uint32_t tag, const void *v, size_t n);

/* Reads one TLV at *p (advancing it). Returns 1 when one was read, 0 at end,
 * -1 when malformed (tag over 3 bytes, length over 3 bytes or past end). */
int vpiv_tlv_next(const uint8_t **p, const uint8_t *end, uint32_t *tag, const uint8_t **val,
                  size_t *len);
/* Finds tag among the TLVs at one level. 1 found, 0 absent, -1 malformed. */
int vpiv_tlv_find(const uint8_t *p, size_t n, uint32_t tag, const uint8_t **val, size_t *len);

/* Slot helpers. */
bool vpiv_slot_is_asym(uint8_t slot);
uint32_t vpiv_slot_object(uint8_t slot); /* certificate object tag, 0 if none */

/* Keys (vpiv_crypto.c). */
struct vpiv_key *vpiv_key_generate(uint8_t alg);
void vpiv_key_free(struct vpiv_key *key);
bool vpiv_alg_is_rsa(uint8_t alg);
bool vpiv_alg_is_ec(uint8_t alg);
/* Writes the public key as SP 800-73-4 7F49 contents (81/82 or 86). */
void vpiv_key_put_public(vpiv_buf *b, const struct vpiv_key *key);
/* IMPORT KEY payload (01..05 RSA CRT parts, 06 EC scalar) -> key. */
struct vpiv_key *vpiv_key_import(uint8_t alg, const uint8_t *data, size_t len);
/* Raw private-key operations used by GENERAL AUTHENTICATE. 0 or -1. */
int vpiv_key_rsa_raw(const struct vpiv_key *key, const uint8_t *in, size_t n, vpiv_buf *out);
int vpiv_key_ecdsa(const struct vpiv_key *key, const uint8_t *digest, size_t n, vpiv_buf *out);
int vpiv_key_ecdh(const struct vpiv_key *key, const uint8_t *point, size_t n, vpiv_buf *out);
/* Management-key block cipher, ECB, one or more blocks. */
size_t vpiv_mgm_block(uint8_t alg);
size_t vpiv_mgm_keylen(uint8_t alg);
int vpiv_mgm_crypt(uint8_t alg, const uint8_t *key, size_t keylen, bool encrypt, const uint8_t *in,
                   size_t n, uint8_t *out);

/* Objects (vpiv_card.c). */
struct vpiv_object *vpiv_object_get(vpiv_card *card, uint32_t tag);
int vpiv_object_set(vpiv_card *card, uint32_t tag, const uint8_t *data, size_t len);

#endif
