/*
 * uk_x509_internal.h - shared by the files of the x509 module only (never installed, never
 * included outside daemon/x509/). May name OpenSSL types.
 */
#ifndef UK_X509_INTERNAL_H
#define UK_X509_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "uk_x509.h"

/* GM/T 0009 default signer ID, set explicitly on every SM2 operation. */
#define UK__X509_SM2_ID     "1234567812345678"
#define UK__X509_SM2_ID_LEN 16

/*
 * Log OpenSSL's error queue once at debug level (what, then every queued reason), clear it, and
 * return UK_E_NO_MEMORY when an allocation failure is queued, err otherwise.
 */
int uk__x509_ossl_fail(const char *file, int line, const char *func, int err, const char *what);

#define UK__X509_FAIL(err, what) uk__x509_ossl_fail(__FILE__, __LINE__, __func__, (err), (what))

/*
 * Decode the certificate's SubjectPublicKeyInfo into a new key (caller frees with
 * EVP_PKEY_free). Errors: UK_E_INTERNAL (not a key: the info was not made by uk_x509_parse),
 * UK_E_NO_MEMORY.
 */
int uk__x509_get1_key(const uk_cert_info *c, EVP_PKEY **out);

/* Whether pk is an SM2 key: of type SM2, or an EC key on the SM2 curve. */
int uk__x509_is_sm2(const EVP_PKEY *pk);

/* On a certificate signed with SM2-with-SM3, the GM/T 0009 ID its signature is verified with
 * (OpenSSL's default is empty): every X509 the module verifies gets it. NO_MEMORY. */
int uk__x509_set_sm2_id(X509 *x);

/* The OpenSSL digest of alg, or NULL for a value outside the enum. */
const EVP_MD *uk__x509_md(uk_x509_digest_alg alg);

/* The signature scheme of an algorithm of uk_x509.h (verification and CSRs). */
typedef enum uk__x509_scheme {
    UK__X509_SCHEME_RSA_PKCS1,
    UK__X509_SCHEME_RSA_PSS,
    UK__X509_SCHEME_ECDSA,
    UK__X509_SCHEME_SM2,
} uk__x509_scheme;

uk__x509_scheme uk__x509_scheme_of(uk_x509_sig_alg alg);

#endif
