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
} uk_driver;

#endif
