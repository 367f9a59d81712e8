/*
 * uk_tls_internal.h - shared between the files of the tls module only (uk__tls_ names).
 *
 *   uk_tls.c       the public API: options, the tls/ directory, files, the decisions
 *   uk_tls_x509.c  the OpenSSL adapter: minting, parsing, serialising and verifying the set
 *   uk_tls_nss.c   the certutil adapter: lookup, add and delete under our nickname
 *
 * Same thread rules as uk_tls.h: blocking, never on the loop thread.
 */
#ifndef UK_TLS_INTERNAL_H
#define UK_TLS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "uk_secret.h"
#include "uk_tls.h"

/* Names of the files in tls/. */
#define UK__TLS_CA_FILE   "ca.pem"
#define UK__TLS_CERT_FILE "server.pem"
#define UK__TLS_KEY_FILE  "server.key"

/* Prefix of the NSS nickname and of the CA's common name. */
#define UK__TLS_NICKNAME_PREFIX "ukeyd local CA"

/*
 * Log OpenSSL's error queue in one line at the caller's location, clear it, and return
 * UK_E_NO_MEMORY when an allocation failed, UK_E_TLS_ERROR otherwise.
 */
int uk__tls_ossl_fail(const char *file, int line, const char *func, const char *what);
#define UK__TLS_OSSL_FAIL(what) uk__tls_ossl_fail(__FILE__, __LINE__, __func__, (what))

/* The three parts of the identity. _close frees them (NULL-safe members) and zeroes the struct. */
typedef struct uk__tls_set {
    X509 *ca;
    X509 *leaf;
    EVP_PKEY *key;         /* the server key */
    bool key_private_mode; /* server.key is ours and 0600 or stricter */
} uk__tls_set;

void uk__tls_set_close(uk__tls_set *s);

/*
 * The ceremony in memory: a new CA key and certificate, a new server key and certificate signed by
 * it, both valid [now - 5 min, now + days]; then the CA key is freed (OpenSSL clears EC private
 * scalars on free) without ever having been serialised. The result is verified like a client
 * would before it is returned. host names the CA (sanitised ASCII). On error *s is empty.
 */
int uk__tls_mint(uk__tls_set *s, time_t now, unsigned days, const char *host)
    __attribute__((warn_unused_result));

/* PEM text of one certificate: *out is malloc'ed (caller frees), *len excludes no NUL. */
int uk__tls_cert_pem(X509 *x, char **out, size_t *len) __attribute__((warn_unused_result));

/* PKCS#8 PEM of a private key into a secret buffer (caller uk_secret_free()s it). */
int uk__tls_key_pem(EVP_PKEY *key, uk_secret **out) __attribute__((warn_unused_result));

/* Parse PEM text. UK_E_CERT_INVALID when it does not parse (nothing logged); never prompts. */
int uk__tls_parse_cert(const uint8_t *pem, size_t len, X509 **out)
    __attribute__((warn_unused_result));
int uk__tls_parse_key(const uint8_t *pem, size_t len, EVP_PKEY **out)
    __attribute__((warn_unused_result));

/*
 * Verify leaf against ca as the only anchor at time at, as a browser would: TLS server purpose,
 * host localhost and address 127.0.0.1, strict X.509 (name constraints included). UK_OK,
 * UK_E_CHAIN_INVALID with *why set (nothing logged), or an OpenSSL failure (logged).
 */
int uk__tls_verify_chain(X509 *ca, X509 *leaf, time_t at, const char **why)
    __attribute__((warn_unused_result));

/*
 * Whether a loaded set may be used until now + window_days: private key mode, key matches,
 * chain verifies now, both certificates last past the window. When not, *why says which check
 * failed. Errors are OpenSSL failures only.
 */
int uk__tls_set_usable(const uk__tls_set *s, time_t now, unsigned window_days, bool *usable,
                       const char **why) __attribute__((warn_unused_result));

/* Whether PEM text (any other text around it is skipped) holds a certificate equal to x. */
bool uk__tls_pem_holds_cert(const char *text, size_t len, X509 *x);

/* An ASN1_TIME as time_t; 0 when it cannot be read. */
time_t uk__tls_time(const ASN1_TIME *t);

/* What the NSS functions need: all borrowed, nickname is always ours. */
typedef struct uk__tls_nss {
    const char *certutil; /* program path or name */
    const char *db;       /* NSS directory (without "sql:") */
    const char *nickname;
} uk__tls_nss;

/* PRESENT (our ca under our nickname with SSL trust C), ABSENT, NO_TOOL or FAILED. */
uk_tls_trust uk__tls_nss_lookup(const uk__tls_nss *n, X509 *ca);

/* Delete every certificate under our nickname: ABSENT (none left), NO_TOOL or FAILED. */
uk_tls_trust uk__tls_nss_delete(const uk__tls_nss *n);

/* Replace what is under our nickname by ca_path with trust "C,,": ADDED, NO_TOOL or FAILED. */
uk_tls_trust uk__tls_nss_add(const uk__tls_nss *n, const char *ca_path);

#endif
