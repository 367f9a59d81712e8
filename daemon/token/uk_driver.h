/*
 * uk_driver.h - the driver vtable: what a token driver (PIV today; PKCS#11
 * and SKF later) provides to the token layer.
 *
 * Life cycle, all on the reader's worker thread, each call inside one card
 * transaction that the token layer opened:
 *   probe(card)            is this card ours? May SELECT; changes nothing
 *                          persistent. UK_OK = ours, UK_E_NOT_SUPPORTED = not.
 *   open(card, &state)     reads the identity; state is the driver's own
 *   ... operations ...
 *   close(state)           frees state (no card I/O: the card may be gone)
 * After UK_E_CARD_RESET the token layer reconnects and calls open again.
 * Optional operations may be NULL; the token layer answers NOT_SUPPORTED.
 *
 * Secrets: a PIN arrives as a uk_secret the caller owns and wipes; a driver
 * copies it only into the APDU buffer, which it wipes before returning.
 *
 * Errors: uk_err.h codes. Drivers translate status words once, through
 * uk_piv_sw_to_err-style functions of their own, logging the native code.
 */
#ifndef UK_DRIVER_H
#define UK_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uk_card.h"
#include "uk_secret.h"

/* A key location, in the driver's own words: PIV slot "9a", "82", ... */
#define UK_KEY_ID_MAX 16

/* Largest card record (read_record / write_record), in bytes. Fixed: it must
 * fit a PIV data object next to the certificates on the smallest cards. */
#define UK_DRIVER_RECORD_MAX 1024u

/*
 * The card record is a sequence of BER-TLVs (tags of 1 to 3 bytes, definite
 * length fields of 1 to 4 bytes: short form, 81, 82 or 83) whose tags and
 * meaning the renewal service defines, with one exception the drivers
 * understand: every TLV tagged
 * UK_RECORD_TAG_KEY_ID holds one key id ("82", no terminating NUL) that the
 * record keeps (a staged key, the backup of an old key, the active key of a
 * role); find_staging_slot never returns such a key id. write_record refuses
 * a blob that is not such a sequence.
 */
#define UK_RECORD_TAG_KEY_ID 0xC0u
/*
 * A TLV tagged UK_RECORD_TAG_ROLE holds "<role key id> <active key id>" ("9a 82", no NUL): on a
 * token that cannot move keys, the renewal service leaves a renewed key where it was generated
 * and records here that it is now the key of the role. The token layer signs with the active key
 * when asked for the role (sign, key "9a"). Drivers need not understand it.
 */
#define UK_RECORD_TAG_ROLE 0xC1u

/* What get_caps reports: bits of an unsigned. */
enum {
    UK_TOKEN_CAP_GENERATE = 1u << 0,     /* generate_key */
    UK_TOKEN_CAP_PUT_CERT = 1u << 1,     /* put_cert, delete_cert */
    UK_TOKEN_CAP_MOVE_KEY = 1u << 2,     /* move_key */
    UK_TOKEN_CAP_DELETE_KEY = 1u << 3,   /* delete_key */
    UK_TOKEN_CAP_KEY_METADATA = 1u << 4, /* the token tells whether a slot holds a key and its
                                            public key without a certificate: find_staging_slot
                                            sees keys without certificates, get_public_key works
                                            for them */
    UK_TOKEN_CAP_STAGING = 1u << 5,      /* find_staging_slot */
    UK_TOKEN_CAP_RECORD = 1u << 6,       /* read_record, write_record (the token may still
                                            refuse to store it: NOT_SUPPORTED at the write) */
    UK_TOKEN_CAP_KEY_HISTORY = 1u << 7,  /* update_key_history */

    /* Key locations are free-form ids, none of them a standard place other software reads by
     * position (PKCS#11 CKA_ID): a renewal retires the old pair wherever it is (PIV: only in the
     * retired slots 82..95, never 9A/9C). */
    UK_TOKEN_CAP_ANY_KEY_ID = 1u << 8,
    /* Private keys are seen (and destroyed) only after verify_pin in the same transaction
     * (PKCS#11 CKF_LOGIN_REQUIRED): delete_key without it answers PIN_REQUIRED, changing
     * nothing. */
    UK_TOKEN_CAP_DELETE_NEEDS_PIN = 1u << 9,
};

typedef struct uk_token_identity {
    char serial[32]; /* what users know the key by (card number); "" if none */
    char label[64];  /* a human name for the key */
    char model[32];  /* e.g. "PIV", "PIV (YubiKey-compatible)" */
} uk_token_identity;

/* One certificate (or one broken certificate object) on a token. */
typedef struct uk_token_cert {
    char key_id[UK_KEY_ID_MAX];
    uint8_t *der; /* malloc'ed; NULL when error != UK_OK */
    size_t der_len;
    int error; /* UK_OK, or why this one object could not be read (CERT_INVALID...) */
} uk_token_cert;

void uk_token_certs_free(uk_token_cert *certs, size_t n);

typedef enum uk_key_alg {
    UK_KEY_RSA2048 = 1,
    UK_KEY_ECP256,
    UK_KEY_ECP384,
    UK_KEY_SM2,
} uk_key_alg;

typedef enum uk_sig_scheme {
    UK_SIG_RSA_PKCS1 = 1, /* EMSA-PKCS1-v1_5 built on the host */
    UK_SIG_RSA_PSS,       /* EMSA-PSS, MGF1 with the same hash, salt = hash length */
    UK_SIG_ECDSA,         /* DER-encoded ECDSA-Sig-Value */
    UK_SIG_SM2,           /* SM2 with SM3 and the GM/T 0009 default ID */
} uk_sig_scheme;

typedef enum uk_hash {
    UK_HASH_SHA256 = 1,
    UK_HASH_SHA384,
    UK_HASH_SHA512,
    UK_HASH_SM3,
} uk_hash;

typedef enum uk_decrypt_kind {
    UK_DECRYPT_RSA_RAW = 1, /* RSA decryption primitive, no padding removed */
    UK_DECRYPT_ECDH,        /* ECDH with the key: the shared secret */
} uk_decrypt_kind;

/* An SM2 ciphertext (GM/T 0003.4), width-free: C1 = (c1x, c1y) and C3 (the SM3 hash), 32 bytes
 * big-endian each, C2 of c2_len bytes (at most 64). */
typedef struct uk_sm2_cipher {
    uint8_t c1x[32], c1y[32], c3[32];
    uint8_t c2[64];
    size_t c2_len;
} uk_sm2_cipher;

/*
 * A GM/T 0010 digital envelope whose content the token decrypts itself (open_envelope): the
 * content key, SM2-encrypted to the token's encryption key, and the content, SM4-CBC with iv,
 * whole blocks, padding still on. The token unwraps the key and keeps it (GM/T 0016
 * SKF_ImportSessionKey): the key never reaches the host.
 */
typedef struct uk_envelope_req {
    uk_sm2_cipher key;
    uint8_t iv[16];
    const uint8_t *in;
    size_t in_len;
} uk_envelope_req;

typedef struct uk_sign_req {
    char key_id[UK_KEY_ID_MAX];
    uk_sig_scheme scheme;
    uk_hash hash;
    const uint8_t *digest; /* always a digest: the token layer hashes data on the host */
    size_t digest_len;
} uk_sign_req;

/* What a driver is told at open (from the configuration). */
typedef struct uk_driver_options {
    /* PIV management key (3DES/AES) as raw bytes; len 0 = none configured.
     * The well-known default key is used only when allow_default_mgm_key. */
    uint8_t piv_mgm_key[32];
    size_t piv_mgm_key_len;
    bool allow_default_mgm_key;
} uk_driver_options;

typedef struct uk_driver {
    const char *name; /* "piv" */
    int (*probe)(uk_card *card);
    int (*open)(uk_card *card, const uk_driver_options *opt, void **state, uk_token_identity *id);
    void (*close)(void *state);

    /* Every certificate; a broken object is an entry with error set. */
    int (*list_certs)(void *state, uk_card *card, uk_token_cert **certs, size_t *n);
    /* Retries left (-1 unknown) without spending one. */
    int (*pin_status)(void *state, uk_card *card, int *retries_left);
    /* UK_E_PIN_INCORRECT with *retries_left, UK_E_PIN_LOCKED, UK_E_PIN_INVALID (format). */
    int (*verify_pin)(void *state, uk_card *card, const uk_secret *pin, int *retries_left);
    /* sig capacity cap; the token layer verifies PIN in the same transaction first. */
    int (*sign)(void *state, uk_card *card, const uk_sign_req *req, uint8_t *sig, size_t cap,
                size_t *sig_len);

    /* Renewal (optional). The SPKI of the new public key is returned as DER. */
    int (*generate_key)(void *state, uk_card *card, const char *key_id, uk_key_alg alg,
                        uint8_t **spki, size_t *spki_len);
    int (*put_cert)(void *state, uk_card *card, const char *key_id, const uint8_t *der, size_t len);

    /*
     * Renewal staging (optional, each may be NULL). All run like the
     * operations above: on the reader's worker, inside one transaction, with
     * the state open returned. Those that change the card authenticate to it
     * themselves (PIV: the management key from uk_driver_options) and fail
     * with AUTH_FAILED, before changing anything, when they cannot.
     * Docs: docs/drivers.md, "Renewal staging".
     */

    /* UK_TOKEN_CAP_* bits for this token. May use the card (PIV does not). */
    int (*get_caps)(void *state, uk_card *card, unsigned *caps);
    /*
     * A free key location for a new key, never one in use: a spare slot
     * (PIV: retired slots 82..95, lowest first) that holds no key as far as
     * the token can tell (see UK_TOKEN_CAP_KEY_METADATA), no certificate, and
     * is not kept by the card record (UK_RECORD_TAG_KEY_ID). Changes nothing.
     * UK_E_NO_STAGING_SLOT when none is free; a card record that cannot be
     * read is an error (CARD_ERROR, or the card's refusal), never taken for
     * "nothing kept".
     */
    int (*find_staging_slot)(void *state, uk_card *card, char key_id_out[UK_KEY_ID_MAX]);
    /*
     * Moves the private key in `from` to `to`, replacing any key in `to`
     * (move or delete that one first if it must survive). Certificates are
     * not moved: put_cert / delete_cert them. KEY_NOT_FOUND when `from` holds
     * no key; NOT_SUPPORTED when the token cannot (then nothing was sent to
     * it).
     */
    int (*move_key)(void *state, uk_card *card, const char *from, const char *to);
    /* Destroys the private key in key_id (its certificate stays). Errors as move_key;
     * PIN_REQUIRED, with nothing changed, on a token with UK_TOKEN_CAP_DELETE_NEEDS_PIN when the
     * PIN was not verified in this transaction. */
    int (*delete_key)(void *state, uk_card *card, const char *key_id);
    /* Empties key_id's certificate object (its key stays). OK when already empty. */
    int (*delete_cert)(void *state, uk_card *card, const char *key_id);
    /*
     * The public key in key_id as DER SubjectPublicKeyInfo, malloc'ed (caller
     * frees): from the token's key metadata when it has some
     * (UK_TOKEN_CAP_KEY_METADATA; KEY_NOT_FOUND when the slot holds no key),
     * else from the slot's certificate (NOT_SUPPORTED when there is none:
     * such a token cannot tell the key of a slot without a certificate).
     */
    int (*get_public_key)(void *state, uk_card *card, const char *key_id, uint8_t **spki,
                          size_t *spki_len);
    /*
     * The card record into buf (cap >= UK_DRIVER_RECORD_MAX is always
     * enough; a smaller cap that the record does not fit is LIMIT_EXCEEDED):
     * *len = 0 when there is none. Needs no PIN: anyone can read it, so it
     * holds no secret. CARD_ERROR when the object exists but was not written
     * by ukeyd (or by a newer one).
     */
    int (*read_record)(void *state, uk_card *card, uint8_t *buf, size_t cap, size_t *len);
    /*
     * Replaces the card record with blob (len <= UK_DRIVER_RECORD_MAX, else
     * LIMIT_EXCEEDED; len 0 deletes it). INVALID_PARAMS when blob is not a
     * TLV sequence (see UK_RECORD_TAG_KEY_ID); NOT_SUPPORTED when the card
     * refuses to store the object.
     */
    int (*write_record)(void *state, uk_card *card, const uint8_t *blob, size_t len);
    /*
     * Tells other middleware how many retired keys the token holds: PIV Key
     * History (SP 800-73-4: keysWithOnCardCerts, keysWithOffCardCerts,
     * offCardCertURL). on_card + off_card <= 20; url (NULL for none, at most
     * 118 bytes) is required when off_card > 0 and allowed only when
     * on_card + off_card > 0 (else INVALID_PARAMS). OpenSC shows the
     * certificates of the first on_card retired slots (82 upward) only: count
     * up to the highest retired slot that has one.
     */
    int (*update_key_history)(void *state, uk_card *card, unsigned on_card, unsigned off_card,
                              const char *url);

    /*
     * Whether sign(req) could succeed — the key exists and fits the scheme
     * and hash — checked without the PIN, so a request that cannot work
     * never spends a PIN try. UK_OK or the error sign would return.
     */
    int (*check_sign)(void *state, uk_card *card, const uk_sign_req *req);
    /*
     * Forgets a PIN verified in this transaction (best effort; nothing to
     * report), so that no other program on the same card can use the key
     * without the PIN after ukeyd's operation. Called after every operation
     * that verified the PIN, whatever its outcome.
     */
    void (*logout)(void *state, uk_card *card);

    /*
     * Changes the user PIN from old_pin to new_pin (optional; pin.change). Both formats are
     * checked before anything is sent (PIN_INVALID: no try spent; PIV: 6 to 8 printable ASCII
     * characters). A wrong old_pin is PIN_INCORRECT with *retries_left (a try was spent),
     * PIN_LOCKED when none is left. Both secrets stay the caller's; the APDU buffer is wiped.
     */
    int (*change_pin)(void *state, uk_card *card, const uk_secret *old_pin,
                      const uk_secret *new_pin, int *retries_left);

    /*
     * The private-key operation of decryption with key_id (optional; decrypt.cms), after the
     * token layer verified the PIN in this transaction (PIV: GENERAL AUTHENTICATE, usually with
     * the key-management key 9d):
     *   UK_DECRYPT_RSA_RAW  in is the ciphertext (exactly the modulus length); out gets the raw
     *                       result m = c^d mod n, left-padded to the modulus length. Padding is the
     *                       host's business (uk_crypto_pkcs1_v15_unpad).
     *   UK_DECRYPT_ECDH     in is the other party's public point (uncompressed, 04 || X || Y, on
     *                       the key's curve); out gets the shared secret X coordinate.
     * KEY_NOT_FOUND (no key), INVALID_PARAMS (the kind or the input does not fit the key: the
     * card is not asked), LIMIT_EXCEEDED (cap too small). out holds a secret: the caller wipes it.
     */
    int (*decrypt)(void *state, uk_card *card, const char *key_id, uk_decrypt_kind kind,
                   const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *out_len);

    /*
     * Imports an encryption key pair that a key-management centre sent wrapped (optional; SKF
     * dual certificates) into the container of key_id ("<c>/sign" or "<c>/enc"), after the token
     * layer verified the PIN in this transaction. blob is a GM/T 0016 ENVELOPEDKEYBLOB in its
     * standard byte form (4-byte little-endian ULONG fields, the ECCCipherBlob's cipher bytes
     * following; docs/drivers.md), wrapped to the container's signing public key.
     * ENVELOPE_INVALID for a blob that does not parse (nothing sent) or that the token refuses
     * (wrong recipient, corrupted, unsupported cipher); KEY_NOT_FOUND (no such container, or no
     * signing key in it). The blob holds no secret in the clear.
     */
    int (*import_enveloped_key)(void *state, uk_card *card, const char *key_id, const uint8_t *blob,
                                size_t len);

    /*
     * Decrypts an envelope's content on the token (optional; SKF) with the encryption key of
     * key_id (SKF: "<c>/enc"; a signing key is KEY_NOT_FOUND: the token unwraps only with a
     * container's encryption key), after the token layer verified the PIN in this transaction.
     * out (cap >= req->in_len) gets the plaintext with its padding. DECRYPT_FAILED when the token
     * refuses the wrapped key (another key's envelope, a corrupted C3) or the content;
     * INVALID_PARAMS (not whole blocks, c2_len not a content key's). out holds a secret: the
     * caller wipes it.
     */
    int (*open_envelope)(void *state, uk_card *card, const char *key_id, const uk_envelope_req *req,
                         uint8_t *out, size_t cap, size_t *out_len);
    /*
     * Whether key_id can open envelopes at all (optional; called before the PIN is verified, so
     * that a request that cannot work costs no PIN try): KEY_NOT_FOUND (no such key, or a key
     * that cannot, such as an SKF signing key), NOT_SUPPORTED.
     */
    int (*check_envelope)(void *state, uk_card *card, const char *key_id);
} uk_driver;

#endif
