/*
 * test_x509_helpers.h - certificates, keys and signatures made at test time for the x509 tests,
 * with the OpenSSL API (exact control of names, serials, dates, extensions) and the openssl CLI
 * (an independent second opinion). Failures abort the test through cmocka asserts.
 */
#ifndef TEST_X509_HELPERS_H
#define TEST_X509_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>

#include "uk_x509.h"

/* 2026-01-01T00:00:00Z and 2027-11-24T08:00:00Z: the default validity of built certificates. */
#define TX_NOT_BEFORE ((time_t)1767225600)
#define TX_NOT_AFTER  ((time_t)1827043200)

/* One attribute of a name; join puts it in the RDN of the previous one (multi-valued RDN). */
typedef struct tx_attr {
    const char *type;
    const char *value; /* the bytes of the value, as stored (UTF-8 for a UTF8String) */
    bool join;
    int asn1_type; /* 0: UTF8String (PrintableString for C); else a V_ASN1_* type */
    size_t len;    /* 0: strlen(value) */
} tx_attr;

typedef struct tx_ext {
    const char *name;  /* "keyUsage", "extendedKeyUsage", "basicConstraints", ... */
    const char *value; /* OpenSSL config syntax: "critical,digitalSignature" */
} tx_ext;

typedef struct tx_spec {
    EVP_PKEY *key;          /* the subject's key (required) */
    EVP_PKEY *issuer_key;   /* NULL: self-signed with key */
    const tx_attr *subject; /* ends with {NULL}; NULL: an empty name */
    const tx_attr *issuer;  /* NULL: the subject */
    const char *serial_hex; /* NULL: "01"; a leading '-' makes it negative */
    time_t not_before;      /* 0: TX_NOT_BEFORE */
    time_t not_after;       /* 0: TX_NOT_AFTER */
    const tx_ext *ext;      /* ends with {NULL}; may be NULL */
    const char *md;         /* NULL: SHA256 (SM3 for an SM2 issuer key) */
    const char *sm2_id;     /* SM2 issuer: NULL = "1234567812345678", "" = empty ID */
} tx_spec;

/* Keys made once per test program (RSA-2048 takes a moment). */
typedef struct tx_keys {
    EVP_PKEY *rsa;     /* RSA-2048 */
    EVP_PKEY *rsa_b;   /* another RSA-2048 */
    EVP_PKEY *p256;    /* EC P-256 */
    EVP_PKEY *p256_b;  /* another EC P-256 */
    EVP_PKEY *p384;    /* EC P-384 */
    EVP_PKEY *sm2;     /* SM2 */
    EVP_PKEY *ed25519; /* Ed25519 */
} tx_keys;

void tx_keys_make(tx_keys *k);
void tx_keys_free(tx_keys *k);

/* A new certificate per spec, as malloc'd DER. */
void tx_cert_der(const tx_spec *s, uint8_t **der, size_t *len);

/* Parse DER with uk_x509_parse and assert success. */
uk_cert_info *tx_parse_ok(const uint8_t *der, size_t len);

/* Build and parse in one step; the DER is dropped. */
uk_cert_info *tx_cert_info(const tx_spec *s);

/* SPKI DER of key (malloc'd); compressed selects the compressed EC point form. */
void tx_spki(EVP_PKEY *key, bool compressed, uint8_t **der, size_t *len);

/*
 * Sign data with key per alg (message, hashed by OpenSSL); sm2_id as in tx_spec. *sig is
 * malloc'd.
 */
void tx_sign(EVP_PKEY *key, uk_x509_sig_alg alg, const char *sm2_id, const uint8_t *data, size_t n,
             uint8_t **sig, size_t *siglen);

/* Sign a precomputed digest with key per alg (SM2: the raw e value). *sig is malloc'd. */
void tx_sign_digest(EVP_PKEY *key, uk_x509_sig_alg alg, const uint8_t *dg, size_t dn, uint8_t **sig,
                    size_t *siglen);

/* ---- files and the openssl CLI ----------------------------------------------------------- */

/* Whether `openssl version` runs; the CLI tests skip themselves otherwise. */
bool tx_have_openssl_cli(void);

/* A new temporary directory (path in dir, at least 64 bytes) and its recursive removal. */
void tx_tmpdir_make(char *dir, size_t size);
void tx_tmpdir_remove(const char *dir);

void tx_write_file(const char *path, const void *p, size_t n);
/* The whole file, malloc'd; asserts it exists. */
uint8_t *tx_read_file(const char *path, size_t *n);

/* Run a shell command; returns its exit status. Its stdout (first out_size - 1 bytes,
 * NUL-terminated, trailing newlines removed) goes to out when out is not NULL. */
int tx_run(char *out, size_t out_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Lowercase s in place and drop every ':'. */
void tx_lower_nocolon(char *s);

/* Deterministic bytes (xorshift64*), for "random" inputs that replay the same on every run. */
void tx_prng_fill(uint64_t *state, uint8_t *p, size_t n);

#endif
