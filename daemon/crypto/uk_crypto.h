/*
 * uk_crypto.h - host-side cryptography that card drivers need, so that no
 * driver includes OpenSSL: signature padding for cards that only do raw RSA,
 * public keys from card data (SP 800-73-4 7F49 parts) to SubjectPublicKeyInfo
 * DER, what kind of key a certificate or SPKI holds, the management-key block
 * cipher and random bytes.
 *
 * Link: uk_crypto (static). OpenSSL is a private dependency: nothing here
 * exposes an OpenSSL type.
 *
 * Thread: every function may be called from any thread (no shared state).
 * Ownership: buffers returned through uint8_t ** are malloc'ed; the caller
 * frees them with free(). Output buffers given by the caller are written
 * only on success, except em/out which may hold partial data on failure and
 * are wiped then.
 * Errors: UK_OK or a negative uk_err code (uk_err.h):
 *   UK_E_INVALID_PARAMS  a length or enum value the function cannot use
 *   UK_E_CERT_INVALID    a certificate or SPKI that does not parse
 *   UK_E_KEY_REJECTED    public key parts that do not make a valid key
 *                        (EC point not on the curve, even RSA modulus...)
 *   UK_E_NO_MEMORY, UK_E_INTERNAL (OpenSSL failed; its queue is logged and
 *                        cleared, never returned)
 */
#ifndef UK_CRYPTO_H
#define UK_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Digests used in signature padding (values match uk_hash of uk_driver.h,
 * but drivers map them explicitly). */
typedef enum uk_crypto_md {
    UK_CRYPTO_SHA256 = 1,
    UK_CRYPTO_SHA384,
    UK_CRYPTO_SHA512,
} uk_crypto_md;

/* Output size of md in bytes; 0 for an unknown value. */
size_t uk_crypto_md_size(uk_crypto_md md);

/*
 * EMSA-PKCS1-v1_5 (RFC 8017 9.2) of an already computed digest: writes
 * 00 01 FF..FF 00 DigestInfo(md, digest) into em[0..em_len) where em_len is
 * the RSA modulus length in bytes. digest_len must equal uk_crypto_md_size(md);
 * em_len must leave at least 8 bytes of FF padding.
 */
int uk_crypto_emsa_pkcs1_v15(uk_crypto_md md, const uint8_t *digest, size_t digest_len, uint8_t *em,
                             size_t em_len) __attribute__((warn_unused_result));

/*
 * The DER DigestInfo of an already computed digest (what EMSA-PKCS1-v1_5 pads, and what an SKF
 * SKF_RSASignData or a PKCS#11 CKM_RSA_PKCS signs) into out (cap bytes; 83 always suffice).
 */
int uk_crypto_digest_info(uk_crypto_md md, const uint8_t *digest, size_t digest_len, uint8_t *out,
                          size_t cap, size_t *out_len) __attribute__((warn_unused_result));

/*
 * EMSA-PSS (RFC 8017 9.1.1) of an already computed digest, MGF1 with the
 * same hash, a random salt as long as the hash, trailer BC. mod_bits is the
 * modulus size in bits; the encoded message is written right-aligned into
 * em[0..em_len) with em_len = (mod_bits + 7) / 8 (a leading zero byte when
 * mod_bits - 1 is a multiple of 8), ready for the raw RSA operation.
 */
int uk_crypto_emsa_pss(uk_crypto_md md, const uint8_t *digest, size_t digest_len, size_t mod_bits,
                       uint8_t *em, size_t em_len) __attribute__((warn_unused_result));

typedef enum uk_crypto_key_type {
    UK_CRYPTO_KEY_RSA = 1,
    UK_CRYPTO_KEY_EC,
    UK_CRYPTO_KEY_OTHER, /* SM2, Ed25519, ... : parsed, but no curve/size we use */
} uk_crypto_key_type;

typedef enum uk_crypto_curve {
    UK_CRYPTO_CURVE_NONE = 0,
    UK_CRYPTO_CURVE_P256,
    UK_CRYPTO_CURVE_P384,
    UK_CRYPTO_CURVE_OTHER,
    UK_CRYPTO_CURVE_SM2, /* only for uk_crypto_spki_from_ec (key info reports SM2 as OTHER) */
} uk_crypto_curve;

typedef struct uk_crypto_key_info {
    uk_crypto_key_type type;
    unsigned bits;         /* RSA modulus bits, EC field bits */
    uk_crypto_curve curve; /* EC only */
} uk_crypto_key_info;

/* The public key of a DER SubjectPublicKeyInfo. */
int uk_crypto_spki_info(const uint8_t *spki, size_t len, uk_crypto_key_info *info)
    __attribute__((warn_unused_result));

/* The public key of a DER X.509 certificate (the whole input must be one
 * certificate). UK_E_CERT_INVALID when it does not parse. */
int uk_crypto_cert_key_info(const uint8_t *cert, size_t len, uk_crypto_key_info *info)
    __attribute__((warn_unused_result));

/* SPKI DER of an RSA public key given as big-endian modulus and exponent. */
int uk_crypto_spki_from_rsa(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len,
                            uint8_t **spki, size_t *spki_len) __attribute__((warn_unused_result));

/* SPKI DER of an EC public key given as an uncompressed point (04 X Y): P-256,
 * P-384 or SM2 (an id-ecPublicKey SPKI with the SM2 curve). The point is
 * checked to be on the curve. */
int uk_crypto_spki_from_ec(uk_crypto_curve curve, const uint8_t *point, size_t len, uint8_t **spki,
                           size_t *spki_len) __attribute__((warn_unused_result));

/* Block ciphers of PIV management keys. */
typedef enum uk_crypto_cipher {
    UK_CRYPTO_3DES = 1, /* DES-EDE3, 24-byte key, 8-byte block */
    UK_CRYPTO_AES128,
    UK_CRYPTO_AES192,
    UK_CRYPTO_AES256,
} uk_crypto_cipher;

size_t uk_crypto_cipher_key_len(uk_crypto_cipher c); /* 0 if unknown */
size_t uk_crypto_cipher_block(uk_crypto_cipher c);   /* 0 if unknown */

/* ECB without padding over n bytes (a multiple of the block size). The key
 * schedule is wiped by OpenSSL when the context is freed. */
int uk_crypto_ecb(uk_crypto_cipher c, const uint8_t *key, size_t key_len, bool encrypt,
                  const uint8_t *in, size_t n, uint8_t *out) __attribute__((warn_unused_result));

/* n bytes from the OpenSSL DRBG. */
int uk_crypto_random(uint8_t *buf, size_t n) __attribute__((warn_unused_result));

/* The digest md of data[0..n) into out (cap >= uk_crypto_md_size(md)). */
int uk_crypto_digest(uk_crypto_md md, const uint8_t *data, size_t n, uint8_t *out, size_t cap)
    __attribute__((warn_unused_result));

/* The subject Name of a DER certificate as DER (malloc'ed), e.g. for the
 * CKA_SUBJECT of a PKCS#11 certificate object. UK_E_CERT_INVALID when the input
 * is not exactly one certificate. */
int uk_crypto_cert_subject(const uint8_t *cert, size_t len, uint8_t **subject, size_t *subject_len)
    __attribute__((warn_unused_result));

/* An ECDSA signature as the raw r || s of equal halves (PKCS#11 CKM_ECDSA) to
 * DER ECDSA-Sig-Value; LIMIT_EXCEEDED when it does not fit cap. */
int uk_crypto_ecdsa_raw_to_der(const uint8_t *raw, size_t len, uint8_t *der, size_t cap,
                               size_t *der_len) __attribute__((warn_unused_result));

#endif
