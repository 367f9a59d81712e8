/*
 * uk_x509.h - certificates as plain C data: strict DER parsing, the validity status against a
 * clock, public-key matching, signature verification and host-side digests.
 *
 * This header exposes no OpenSSL type, so the token and rpc layers never include OpenSSL; the
 * module links libcrypto privately. See docs/certificates.md for the field formats and the
 * decisions behind them (serial format, days_left boundaries, what "strict" rejects).
 *
 * Ownership: uk_x509_parse returns a uk_cert_info the caller owns and frees with
 * uk_cert_info_free (NULL-safe). Every pointer inside it is owned by the info and valid until that
 * free; read only. On error nothing is allocated and *out is left alone.
 *
 * Strings: every char * field is non-NULL, NUL-terminated, valid UTF-8 (no overlong forms, no
 * surrogates) and contains no NUL; fields that do not apply are "" (never NULL).
 *
 * Thread: pure functions, any thread, no shared state; a uk_cert_info may be read from several
 * threads at once. OpenSSL's per-thread error queue is left empty by every call.
 *
 * Errors: functions return UK_OK or a negative UK_E_* code (uk_err.h):
 *   UK_E_INVALID_PARAMS  a required pointer is NULL, a buffer is too small, an enum is out of range
 *   UK_E_CERT_INVALID    the bytes are not one strictly DER-encoded X.509 certificate we understand
 *   UK_E_NO_MEMORY       out of memory
 * plus the ones named at each function. A failure is logged once at debug level with OpenSSL's
 * reason; no OpenSSL string ever reaches the caller.
 */
#ifndef UK_X509_H
#define UK_X509_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Largest certificate accepted, in bytes of DER; larger input is UK_E_CERT_INVALID. */
#define UK_X509_DER_MAX (64u * 1024u)

/* Default threshold of uk_x509_status: EXPIRING when days_left <= this. */
#define UK_X509_EXPIRING_DAYS_DEFAULT 30u

/* Bytes of an ISO 8601 UTC time "2026-11-24T08:00:00Z", with the NUL. */
#define UK_X509_ISO_TIME_LEN 21

/* Bytes of a SHA-256 fingerprint in lowercase hex without colons, with the NUL. */
#define UK_X509_FINGERPRINT_LEN 65

/* Largest digest uk_x509_digest writes (SHA-512). */
#define UK_X509_DIGEST_MAX 64

/* Key usage bits (RFC 5280 section 4.2.1.3), in the order of the names below. */
enum {
    UK_X509_KU_DIGITAL_SIGNATURE = 1u << 0, /* "digitalSignature" */
    UK_X509_KU_NON_REPUDIATION = 1u << 1,   /* "nonRepudiation" (contentCommitment) */
    UK_X509_KU_KEY_ENCIPHERMENT = 1u << 2,  /* "keyEncipherment" */
    UK_X509_KU_DATA_ENCIPHERMENT = 1u << 3, /* "dataEncipherment" */
    UK_X509_KU_KEY_AGREEMENT = 1u << 4,     /* "keyAgreement" */
    UK_X509_KU_KEY_CERT_SIGN = 1u << 5,     /* "keyCertSign" */
    UK_X509_KU_CRL_SIGN = 1u << 6,          /* "cRLSign" */
    UK_X509_KU_ENCIPHER_ONLY = 1u << 7,     /* "encipherOnly" */
    UK_X509_KU_DECIPHER_ONLY = 1u << 8,     /* "decipherOnly" */
};
#define UK_X509_KU_COUNT 9

/* One attribute of a distinguished name. */
typedef struct uk_x509_name_part {
    /*
     * OpenSSL's short name of the attribute type ("CN", "O", "OU", "C", "L", "ST", "street",
     * "emailAddress", "serialNumber", "DC", "UID", "SN", "GN", ...) or, for types OpenSSL has no
     * name for, the dotted OID ("1.2.156.10260.4.1.1"). The same spelling as in the RFC 4514
     * string.
     */
    char *type;
    /*
     * The value as text, converted to UTF-8 from whatever string type the certificate uses, not
     * escaped. For a value that is not a character string (rare), "#" and the uppercase hex of
     * its DER encoding (RFC 4514 section 2.4, as in rfc4514) and der_hex is true.
     */
    char *value;
    bool der_hex;
    /*
     * Index of the RDN this attribute belongs to, from 0, in certificate order. The attributes of a
     * multi-valued RDN ("CN=a+UID=b") share one index.
     */
    size_t rdn;
} uk_x509_name_part;

typedef struct uk_x509_name {
    /*
     * RFC 4514 string: the RDNs in reverse certificate order (most specific first, "CN=张三,
     * O=国家医疗保障局,C=CN" without the spaces), attributes of one RDN joined with '+' (also in
     * reverse; their order carries no meaning, RFC 4514 section 2.2), special
     * characters escaped with '\' (control characters as \XX), characters beyond ASCII written
     * as UTF-8 (not escaped). Values that are not character strings, and the values of attribute
     * types OpenSSL has no name for, as "#" and the hex of their DER (RFC 4514 section 2.4; the
     * text is in parts). "" for an empty name.
     */
    char *rfc4514;
    /* The attributes in certificate order (the reverse of rfc4514); n_parts may be 0. */
    uk_x509_name_part *parts;
    size_t n_parts;
} uk_x509_name;

typedef struct uk_cert_info {
    /* The certificate exactly as given (strict DER, so also its only encoding). */
    uint8_t *der;
    size_t der_len;
    /* X.509 version: 1, 2 or 3. */
    int version;
    uk_x509_name subject;
    uk_x509_name issuer;
    /*
     * Serial number: lowercase hex of the magnitude, two digits per byte, no sign byte ("00" for
     * zero, "80" for 128, "0100" for 256), with a leading "-" for a (non-conforming) negative one.
     * This is `openssl x509 -serial` in lowercase.
     */
    char *serial;
    /* Validity, inclusive at both ends (RFC 5280 section 4.1.2.5). */
    time_t not_before;
    time_t not_after;
    char not_before_iso[UK_X509_ISO_TIME_LEN]; /* "2026-11-24T08:00:00Z" */
    char not_after_iso[UK_X509_ISO_TIME_LEN];
    /* "RSA", "RSA-PSS", "EC", "SM2", "Ed25519", "Ed448", "DSA", or OpenSSL's name of the type. */
    char *key_alg;
    /* Key size in bits: the modulus for RSA, the field size for EC and SM2 (256 for P-256). */
    unsigned key_bits;
    /* "P-256", "P-384", "P-521", "SM2", another curve's short name ("secp256k1"), or "". */
    char *curve;
    /*
     * Signature algorithm of the certificate as OpenSSL's long name ("sha256WithRSAEncryption",
     * "ecdsa-with-SHA256", "SM2-with-SM3", "rsassaPss", "ED25519") or the dotted OID.
     */
    char *sig_alg;
    /* Key usage: has_key_usage tells whether the extension is present; key_usage has UK_X509_KU_*
     * bits (0 when absent); key_usage_names the names of the set bits in bit order (static
     * strings, not owned by the info). */
    bool has_key_usage;
    unsigned key_usage;
    const char *key_usage_names[UK_X509_KU_COUNT];
    size_t n_key_usage;
    /*
     * Extended key usage in certificate order: "serverAuth", "clientAuth", "codeSigning",
     * "emailProtection", "timeStamping", "OCSPSigning", "anyExtendedKeyUsage", "msSmartcardLogin",
     * or the dotted OID for any other purpose.
     */
    bool has_ext_key_usage;
    char **ext_key_usage;
    size_t n_ext_key_usage;
    /* SHA-256 of der, lowercase hex, no colons. */
    char fingerprint_sha256[UK_X509_FINGERPRINT_LEN];
    /* DER of the SubjectPublicKeyInfo, for uk_x509_spki_match and signature verification. */
    uint8_t *spki;
    size_t spki_len;
    /* basicConstraints is present with cA TRUE. */
    bool is_ca;
    /* Subject equals issuer and the signature verifies with the certificate's own key (SM2-with-SM3
     * with the distinguishing ID 1234567812345678). */
    bool self_signed;
} uk_cert_info;

/*
 * Parse one DER certificate (len bytes at der) into a new *out.
 * Strict: exactly one certificate and no trailing bytes; the outer structure and the
 * tbsCertificate must re-encode to the very same bytes (no non-minimal or indefinite lengths;
 * names and extension values keep their bytes, see docs/certificates.md); both signature
 * algorithm fields equal; times in the RFC 5280 form (YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ); no
 * malformed or duplicated extensions; names convertible to UTF-8 without a NUL; a public key
 * OpenSSL can decode. A PEM text, an empty buffer or more than UK_X509_DER_MAX bytes is
 * UK_E_CERT_INVALID too.
 * Errors: UK_E_INVALID_PARAMS (der NULL with len > 0, out NULL), UK_E_CERT_INVALID,
 * UK_E_NO_MEMORY.
 */
int uk_x509_parse(const uint8_t *der, size_t len, uk_cert_info **out)
    __attribute__((warn_unused_result));

/* Free an info from uk_x509_parse and everything it points to. NULL-safe. */
void uk_cert_info_free(uk_cert_info *c);

typedef enum uk_cert_status_code {
    UK_CERT_VALID = 0,
    UK_CERT_EXPIRING,
    UK_CERT_EXPIRED,
    UK_CERT_NOT_YET_VALID,
} uk_cert_status_code;

typedef struct uk_cert_status {
    uk_cert_status_code status;
    /*
     * Whole days until not_after, rounded down: floor((not_after - now) / 86400). 0 in the last
     * 24 hours (not_after itself included), negative once expired (-1 from one second after
     * not_after through one day after, ...).
     */
    long long days_left;
    /*
     * NOT_YET_VALID only (0 otherwise): days until not_before, rounded up:
     * ceil((not_before - now) / 86400), so at least 1.
     */
    long long days_until_valid;
    /* NOT_YET_VALID only ("" otherwise): not_before in ISO 8601, the moment it becomes valid. */
    char valid_from[UK_X509_ISO_TIME_LEN];
} uk_cert_status;

/*
 * Status of c at now (seconds since the epoch, UTC):
 *   NOT_YET_VALID  now < not_before
 *   EXPIRED        now > not_after (days_left < 0)
 *   EXPIRING       otherwise, when days_left <= expiring_days (so "30 days left" is always
 *                  EXPIRING with the default threshold, never sometimes VALID)
 *   VALID          otherwise
 * Both ends of the validity are inclusive: at now == not_before and at now == not_after the
 * certificate is valid (or expiring). Pass UK_X509_EXPIRING_DAYS_DEFAULT for the default.
 * Errors: UK_E_INVALID_PARAMS (c or out NULL, now outside +-2^60).
 */
int uk_x509_status(const uk_cert_info *c, time_t now, unsigned expiring_days, uk_cert_status *out)
    __attribute__((warn_unused_result));

/* "valid", "expiring", "expired", "not_yet_valid"; "unknown" for a value outside the enum. */
const char *uk_cert_status_name(uk_cert_status_code s);

/*
 * Whether the certificate's public key is the key of the SubjectPublicKeyInfo DER (n bytes at
 * spki), e.g. the key staged on the card for a renewal. Keys are compared as keys, not as bytes:
 * a compressed and an uncompressed encoding of one EC point match.
 * Returns UK_OK when they match, UK_E_CERT_KEY_MISMATCH when they do not or when spki is not a
 * public key OpenSSL can decode (fail closed), UK_E_INVALID_PARAMS, UK_E_NO_MEMORY.
 */
int uk_x509_spki_match(const uk_cert_info *c, const uint8_t *spki, size_t n)
    __attribute__((warn_unused_result));

typedef enum uk_x509_digest_alg {
    UK_X509_DIGEST_SHA256 = 0,
    UK_X509_DIGEST_SHA384,
    UK_X509_DIGEST_SHA512,
    UK_X509_DIGEST_SM3,
} uk_x509_digest_alg;

/* Output size of alg in bytes (32, 48, 64, 32); 0 for a value outside the enum. */
size_t uk_x509_digest_len(uk_x509_digest_alg alg);

/*
 * Hash n bytes at data (data may be NULL when n is 0) with alg into out. *out_len is the capacity
 * of out on entry and the digest length on return. The one place where signing code hashes
 * host-side. Errors: UK_E_INVALID_PARAMS (unknown alg, out too small), UK_E_NO_MEMORY.
 */
int uk_x509_digest(uk_x509_digest_alg alg, const uint8_t *data, size_t n, uint8_t *out,
                   size_t *out_len) __attribute__((warn_unused_result));

typedef enum uk_x509_sig_alg {
    UK_X509_SIG_RSA_PKCS1_SHA256 = 0, /* RSASSA-PKCS1-v1_5 */
    UK_X509_SIG_RSA_PKCS1_SHA384,
    UK_X509_SIG_RSA_PKCS1_SHA512,
    UK_X509_SIG_RSA_PSS_SHA256, /* RSASSA-PSS, MGF1 with the same hash, any salt length */
    UK_X509_SIG_RSA_PSS_SHA384,
    UK_X509_SIG_RSA_PSS_SHA512,
    UK_X509_SIG_ECDSA_SHA256, /* signature as DER SEQUENCE { r, s } */
    UK_X509_SIG_ECDSA_SHA384,
    UK_X509_SIG_ECDSA_SHA512,
    UK_X509_SIG_SM2_SM3, /* GM/T 0003 with SM3, DER SEQUENCE { r, s }, ID 1234567812345678 */
} uk_x509_sig_alg;

/* The digest alg hashes with. Returns false for a value outside the enum. */
bool uk_x509_sig_alg_digest(uk_x509_sig_alg alg, uk_x509_digest_alg *out);

/*
 * Verify sig (siglen bytes) over the message data (n bytes, hashed here) with the certificate's
 * public key. SM2 uses the GM/T 0009 distinguishing ID "1234567812345678", set explicitly.
 * Returns UK_OK when the signature is valid; UK_E_SIGNATURE_INVALID when it is not (including a
 * malformed signature); UK_E_NOT_SUPPORTED when alg does not fit the key (ECDSA with an RSA key,
 * SM2 with a P-256 key, PKCS#1 with an RSA-PSS-only key); UK_E_INVALID_PARAMS; UK_E_NO_MEMORY.
 */
int uk_x509_verify_signature(const uk_cert_info *c, const uint8_t *data, size_t n,
                             const uint8_t *sig, size_t siglen, uk_x509_sig_alg alg)
    __attribute__((warn_unused_result));

/*
 * As uk_x509_verify_signature, but over a digest computed by the caller (for RSA and ECDSA the
 * hash of the message with alg's digest, e.g. from uk_x509_digest; for SM2 the value
 * e = SM3(Z || M), Z already included). digest_len must be the digest's length.
 */
int uk_x509_verify_digest(const uk_cert_info *c, const uint8_t *digest, size_t digest_len,
                          const uint8_t *sig, size_t siglen, uk_x509_sig_alg alg)
    __attribute__((warn_unused_result));

/*
 * Whether the certificate (DER, len bytes) chains up at time at: through the certificates of chain
 * (n_chain DER certificates, issuer first, each chain_len[i] bytes) to a CA of ca_bundle (a PEM
 * file of trusted certificates) when ca_bundle is not NULL; without a bundle, to the chain's last
 * certificate, taken as the anchor whether or not it is self-signed (so only the signatures and
 * the validity periods along the chain are checked). Neither a bundle nor a chain: UK_OK.
 * Errors: UK_E_CHAIN_INVALID (does not verify: a wrong issuer or signature, a certificate outside
 * its validity at at, not a CA, ...; the reason is logged), UK_E_CERT_INVALID (the certificate or
 * a chain element does not parse strictly), UK_E_CONFIG_INVALID (ca_bundle cannot be read),
 * UK_E_INVALID_PARAMS, UK_E_NO_MEMORY. Blocking file I/O when ca_bundle is given.
 */
int uk_x509_verify_chain(const uint8_t *der, size_t len, const uint8_t *const *chain,
                         const size_t *chain_len, size_t n_chain, const char *ca_bundle, time_t at)
    __attribute__((warn_unused_result));

/* ==============================================================================================
 * New keys and certificate requests (renewal.prepare)
 *
 * A renewal generates a key pair on the card, checks the public key the card reports
 * (uk_x509_check_new_key), then builds a PKCS#10 request for it in two steps around the card's
 * signature: uk_x509_csr_tbs gives the bytes to sign, the token layer signs them with the new key,
 * uk_x509_csr_finish attaches the signature and verifies it with the reported key. No OpenSSL
 * type here either; same thread, error and logging rules as above (docs/certificates.md, "New
 * keys" and "Certificate requests").
 * ============================================================================================== */

/* What a new public key is. */
typedef enum uk_x509_key_kind {
    UK_X509_KEY_RSA = 0, /* rsaEncryption (an id-RSASSA-PSS key is OTHER) */
    UK_X509_KEY_EC_P256, /* id-ecPublicKey, namedCurve prime256v1 */
    UK_X509_KEY_EC_P384, /* id-ecPublicKey, namedCurve secp384r1 */
    UK_X509_KEY_SM2,     /* id-ecPublicKey, namedCurve sm2p256v1 */
    UK_X509_KEY_OTHER,   /* anything else (P-521, Ed25519, DSA, ...): never accepted */
} uk_x509_key_kind;

/* The bit of kind in uk_x509_key_policy.allowed. */
#define UK_X509_KEY_ALLOW(kind) (1u << (unsigned)(kind))

/* Default RSA modulus bounds of uk_x509_key_policy_init, in bits (both inclusive). */
#define UK_X509_RSA_MIN_BITS_DEFAULT 2048u
#define UK_X509_RSA_MAX_BITS_DEFAULT 8192u

/* Longest signature uk_x509_csr_finish takes, in bytes (RSA-16384); longer is SIGNATURE_INVALID. */
#define UK_X509_CSR_SIG_MAX 2048u

/* Bytes of uk_x509_key_info.reason, with the NUL. */
#define UK_X509_KEY_REASON_LEN 160

typedef struct uk_x509_key_policy {
    /*
     * UK_X509_KEY_ALLOW bits of the kinds accepted. To check the "right curve", allow only the
     * kind that was asked of the card (a P-256 request answered with a P-384 key is rejected).
     */
    unsigned allowed;
    unsigned rsa_min_bits;
    unsigned rsa_max_bits;
    /*
     * false: the public exponent must be 65537. true: any exponent SP 800-56B allows (odd,
     * 2^16 < e < 2^256). Exponent 3 is rejected either way.
     */
    bool rsa_any_exponent;
} uk_x509_key_policy;

/*
 * The default policy: RSA, P-256 and P-384 allowed (SM2 not: set
 * UK_X509_KEY_ALLOW(UK_X509_KEY_SM2) for a token that makes SM2 keys), RSA modulus of 2048 to
 * 8192 bits, exponent 65537 only. NULL-safe.
 */
void uk_x509_key_policy_init(uk_x509_key_policy *pol);

/* "RSA", "P-256", "P-384", "SM2", or "other". */
const char *uk_x509_key_kind_name(uk_x509_key_kind kind);

/* Why uk_x509_check_new_key rejected a key. */
typedef enum uk_x509_key_problem {
    UK_X509_KEY_OK = 0,
    /* Not one SubjectPublicKeyInfo OpenSSL decodes, trailing bytes, not DER, empty or too big. */
    UK_X509_KEY_MALFORMED,
    /* A kind the policy does not allow (a curve not asked for, SM2 not enabled, Ed25519...). */
    UK_X509_KEY_KIND_NOT_ALLOWED,
    UK_X509_KEY_RSA_SIZE,     /* modulus outside rsa_min_bits..rsa_max_bits */
    UK_X509_KEY_RSA_EXPONENT, /* public exponent not accepted */
    UK_X509_KEY_RSA_ROCA,     /* the ROCA fingerprint (CVE-2017-15361, Infineon RSALib) */
    UK_X509_KEY_RSA_INVALID,  /* fails SP 800-56B (even modulus, a small factor, a prime) */
    UK_X509_KEY_EC_PARAMS,    /* explicit curve parameters instead of a named curve */
    UK_X509_KEY_EC_POINT,     /* the point is not on its curve, or is the point at infinity */
} uk_x509_key_problem;

typedef struct uk_x509_key_info {
    uk_x509_key_kind kind; /* as far as it was found out; OTHER when the SPKI does not decode */
    unsigned bits;         /* RSA modulus bits; EC/SM2 field bits (256, 384); 0 when unknown */
    uk_x509_key_problem problem;
    /* Why, in English, for the log and ukeyctl (never for the browser); "" when accepted. */
    char reason[UK_X509_KEY_REASON_LEN];
} uk_x509_key_info;

/*
 * Check the new public key (SubjectPublicKeyInfo DER, len bytes at spki) a card reported against
 * pol (NULL: the defaults of uk_x509_key_policy_init), in this order:
 *   - one SPKI OpenSSL decodes, no trailing bytes (a point off its curve does not even decode:
 *     EC_POINT, anything else: MALFORMED);
 *   - EC and SM2: a named curve, and not the point at infinity (EVP_PKEY_public_check);
 *   - strict DER: the key re-encodes to the very bytes given (they go into the request as they
 *     are);
 *   - a kind the policy allows;
 *   - RSA: modulus size, public exponent, the ROCA fingerprint (uk_x509_rsa_roca_fingerprint),
 *     then OpenSSL's SP 800-56B public-key check.
 * *out is always written (also on UK_E_KEY_REJECTED, with problem and reason).
 * Returns UK_OK, UK_E_KEY_REJECTED (every failing check, a malformed SPKI included: the bytes come
 * from the card's key generation, not from a certificate), UK_E_INVALID_PARAMS (out NULL, spki
 * NULL with len > 0, rsa_min_bits > rsa_max_bits), UK_E_NO_MEMORY, UK_E_INTERNAL.
 */
int uk_x509_check_new_key(const uint8_t *spki, size_t len, const uk_x509_key_policy *pol,
                          uk_x509_key_info *out) __attribute__((warn_unused_result));

/*
 * The ROCA fingerprint of an RSA modulus (big-endian, len bytes): true when, for every prime p
 * from 3 to 167, N mod p lies in the multiplicative subgroup generated by 65537 mod p (so N
 * mod p is never 0). Keys from Infineon's RSALib always have it; other keys have it with a
 * probability of about 2^-27.8. The subgroups are computed at each call (docs/certificates.md).
 */
bool uk_x509_rsa_roca_fingerprint(const uint8_t *n, size_t len);

/* A certificate request being built; opaque. Used by one thread at a time. */
typedef struct uk_x509_csr uk_x509_csr;

/* One attribute of an explicit subject (uk_x509_csr_req.subject). */
typedef struct uk_x509_subject_attr {
    const char *type;  /* a short name ("CN", "O", "C", "serialNumber", ...) or a dotted OID */
    const char *value; /* UTF-8 text */
    size_t rdn;        /* RDN index: from 0, rising by at most 1, equal within a multi-valued RDN */
} uk_x509_subject_attr;

typedef struct uk_x509_csr_req {
    /*
     * The certificate being renewed (from uk_x509_parse; borrowed for the call). Unless subject
     * is given, the request's subject is this certificate's subject, byte for byte (string types
     * and attribute order included). May be NULL when subject is given (a repair with no
     * certificate left).
     */
    const uk_cert_info *current;
    /*
     * An explicit subject (renewal.prepare's subject), in certificate order (the order of
     * uk_x509_name.parts, C first). Values are encoded as RFC 5280 asks: PrintableString for C,
     * serialNumber and dnQualifier, IA5String for emailAddress and DC, UTF8String otherwise.
     * n_subject 0: take current's.
     */
    const uk_x509_subject_attr *subject;
    size_t n_subject;
    /* The new key's SubjectPublicKeyInfo DER; it goes into the request unchanged. */
    const uint8_t *spki;
    size_t spki_len;
    /*
     * How the card will sign: RSA PKCS#1 v1.5 or PSS (MGF1 with the same hash, salt as long as
     * the hash: 32 bytes with SHA-256), ECDSA, or SM2 with SM3 (distinguishing ID
     * 1234567812345678). Must fit the key (NOT_SUPPORTED otherwise).
     */
    uk_x509_sig_alg sig_alg;
    /*
     * false (the default): no extensionRequest; the CA applies its own profile. true: copy the
     * keyUsage and extendedKeyUsage extensions of current (bytes and criticality) into an
     * extensionRequest, for CAs that issue what is asked. Requires current.
     */
    bool copy_usage;
} uk_x509_csr_req;

/*
 * Build the request for req and return the DER CertificationRequestInfo the card must sign in
 * *tbs (malloc'd, caller frees with free()) and the state for uk_x509_csr_finish in *state
 * (caller frees with uk_x509_csr_free). The request is version 1 (0), attributes empty unless
 * copy_usage.
 * What the card signs:
 *   RSA and ECDSA  the hash of *tbs with the algorithm's digest (uk_x509_digest, or
 *                  uk_x509_csr_digest), signed with the matching scheme (PKCS#1 v1.5 DigestInfo,
 *                  PSS with a salt as long as the hash, ECDSA as DER SEQUENCE { r, s });
 *   SM2            e = SM3(Z || tbs) where Z is computed from the new key and the ID
 *                  1234567812345678 (uk_x509_sm2_digest, or uk_x509_csr_digest); a card that
 *                  hashes itself must be given that ID. Signature as DER SEQUENCE { r, s }.
 * The request is not checked against a key policy here: call uk_x509_check_new_key first.
 * Errors: UK_E_INVALID_PARAMS (a NULL pointer, no subject source, copy_usage without current,
 * sig_alg outside the enum, a subject part that does not encode), UK_E_KEY_REJECTED (spki does not
 * decode, has trailing bytes or is not DER), UK_E_NOT_SUPPORTED (sig_alg does not fit the key),
 * UK_E_CERT_INVALID (current's DER does not decode), UK_E_NO_MEMORY. On error nothing is returned.
 */
int uk_x509_csr_tbs(const uk_x509_csr_req *req, uint8_t **tbs, size_t *tbs_len, uk_x509_csr **state)
    __attribute__((warn_unused_result));

/* The signature algorithm the state was built for. */
uk_x509_sig_alg uk_x509_csr_get_sig_alg(const uk_x509_csr *state);

/*
 * The digest the card signs for state (see uk_x509_csr_tbs): the hash of the TBS, or SM2's
 * SM3(Z || TBS). *out_len: capacity on entry (UK_X509_DIGEST_MAX is always enough), length on
 * return. Errors: UK_E_INVALID_PARAMS, UK_E_NO_MEMORY.
 */
int uk_x509_csr_digest(const uk_x509_csr *state, uint8_t *out, size_t *out_len)
    __attribute__((warn_unused_result));

/*
 * Attach the card's signature (sig_len bytes at sig) and the signature algorithm to the request
 * (X509_REQ_set1_signature_algo + X509_REQ_set0_signature), verify it with X509_REQ_verify and
 * the new key, and return the request as PEM text (*pem, NUL-terminated) and DER (*der,
 * *der_len), each malloc'd for the caller to free() and each optional (pass NULL).
 * Returns UK_E_SIGNATURE_INVALID when the signature does not verify (the card signed with
 * another key than the one it reported, or with another scheme; also an empty or over-long
 * signature): nothing is returned, and the state may be given another signature. Also
 * UK_E_INVALID_PARAMS (state NULL, sig NULL with sig_len > 0, exactly one of der/der_len NULL),
 * UK_E_NO_MEMORY.
 */
int uk_x509_csr_finish(uk_x509_csr *state, const uint8_t *sig, size_t sig_len, char **pem,
                       uint8_t **der, size_t *der_len) __attribute__((warn_unused_result));

/* Free a state from uk_x509_csr_tbs. NULL-safe. */
void uk_x509_csr_free(uk_x509_csr *state);

/*
 * SM2 signing digest e = SM3(Z || msg), Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)
 * with the ID 1234567812345678 and the SM2 key of the SubjectPublicKeyInfo at spki (GM/T 0003.2,
 * GM/T 0009): what a card that signs a digest is given. *out_len: capacity on entry (at least
 * 32), 32 on return. Errors: UK_E_INVALID_PARAMS, UK_E_KEY_REJECTED (spki does not decode),
 * UK_E_NOT_SUPPORTED (not an SM2 key), UK_E_NO_MEMORY, UK_E_INTERNAL.
 */
int uk_x509_sm2_digest(const uint8_t *spki, size_t spki_len, const uint8_t *msg, size_t n,
                       uint8_t *out, size_t *out_len) __attribute__((warn_unused_result));

/* ==============================================================================================
 * SM2 enveloped keys (the encryption key pair of a dual certificate, from a CA's KMC)
 *
 * A KMC sends the encryption private key wrapped for the new signing key in one of two forms:
 * GM/T 0009 SM2EnvelopedKey (DER) or GM/T 0016 ENVELOPEDKEYBLOB (the C structure
 * SKF_ImportECCKeyPair takes, layout in daemon/token/skf/uk_skf_abi.h). uk_x509_sm2_envelope_blob
 * turns the first into the second; nothing is decrypted here (the key does that). Same thread,
 * error and logging rules as above (docs/certificates.md, "SM2 enveloped keys").
 * ============================================================================================== */

/* Largest SM2EnvelopedKey accepted, in bytes of DER (a real one is about 280). */
#define UK_X509_SM2_ENVELOPE_DER_MAX 1024u

/*
 * Bytes of the ENVELOPEDKEYBLOB uk_x509_sm2_envelope_blob writes for a module whose ULONG is
 * ulong_bytes (4: 388 bytes, the standard; 8: 408): the structure with its ECCCipherBlob.Cipher
 * holding the 16-byte SM4 key (UK_SKF_ENVELOPEDKEYBLOB_SIZE(16)).
 */
#define UK_X509_SKF_ENVELOPE_LEN(ulong_bytes) (5u * (size_t)(ulong_bytes) + 368u)

/*
 * Convert an SM2EnvelopedKey (DER, len bytes at der) into an ENVELOPEDKEYBLOB for a module whose
 * ULONG is ulong_bytes (4 or 8) wide, little-endian, written to blob (*blob_len: capacity on
 * entry, at least UK_X509_SKF_ENVELOPE_LEN(ulong_bytes); the length on return).
 *
 *   SM2EnvelopedKey ::= SEQUENCE {
 *     symAlgID               AlgorithmIdentifier,  -- SM4 1.2.156.10197.1.104 or SM4-ECB
 *                                                  -- 1.2.156.10197.1.104.1; parameters absent
 *                                                  -- or NULL
 *     symEncryptedKey        SM2Cipher,            -- SEQUENCE { x INTEGER, y INTEGER,
 *                                                  --   hash OCTET STRING (32), cipher OCTET
 *                                                  --   STRING (16: the SM4 key) }
 *     sm2PublicKey           BIT STRING,           -- 04 || X || Y, 65 bytes
 *     sm2EncryptedPrivateKey BIT STRING }          -- SM4-ECB of the private key: 32 bytes (the
 *                                                  -- key) or 64 (its right-aligned field)
 *
 * Strict: one SEQUENCE in DER (re-encodes to the same bytes), no trailing bytes, every field of
 * the right type and length, BIT STRINGs without unused bits, x and y non-negative and at most
 * 32 bytes, C1 = (x, y) and the public key points on the SM2 curve.
 * The blob: Version 1, ulSymmAlgID SGD_SM4_ECB, ulBits 256, cbEncryptedPriKey the encrypted key
 * right-aligned in its 64 bytes (a 32-byte one after 32 zero bytes: the "short" form; a 64-byte
 * one as it is), PubKey { BitLen 256, X, Y }, ECCCipherBlob { C1's X and Y, HASH, CipherLen 16,
 * Cipher }, every 256-bit value right-aligned in its 64-byte field.
 * Errors: UK_E_INVALID_PARAMS for everything (NULL pointers, ulong_bytes not 4 or 8, blob too
 * small, empty or larger than UK_X509_SM2_ENVELOPE_DER_MAX, any malformed field; the reason is
 * logged), UK_E_NO_MEMORY. On error blob and *blob_len are left alone.
 */
int uk_x509_sm2_envelope_blob(const uint8_t *der, size_t len, unsigned ulong_bytes, uint8_t *blob,
                              size_t *blob_len) __attribute__((warn_unused_result));

/* An SM2 ciphertext (GM/T 0003.4), width-free: C1 = (c1x, c1y) and C3 (the SM3 hash), 32 bytes
 * big-endian each, C2 of c2_len bytes. */
typedef struct uk_x509_sm2_cipher {
    uint8_t c1x[32], c1y[32], c3[32];
    uint8_t c2[64];
    size_t c2_len;
} uk_x509_sm2_cipher;

/*
 * Split a GM/T 0009 SM2Cipher (DER SEQUENCE { x INTEGER, y INTEGER, hash OCTET STRING (32),
 * cipherText OCTET STRING (1..64) }, len bytes at der, nothing after it) into *out: x and y
 * non-negative, at most 32 bytes, C1 = (x, y) a point of the SM2 curve. Errors:
 * UK_E_INVALID_PARAMS for anything else (the reason is logged), UK_E_NO_MEMORY.
 */
int uk_x509_sm2_cipher_split(const uint8_t *der, size_t len, uk_x509_sm2_cipher *out)
    __attribute__((warn_unused_result));

/* ==============================================================================================
 * CMS SignedData (sign.cms, verify.cms)
 * A SignedData is built in two steps around the card's signature, like a certificate request:
 * uk_x509_cms_sign_begin gives the digest the card signs (the hash of the DER of the signed
 * attributes: content type id-data, signing time, message digest of the content), the token layer
 * signs it, uk_x509_cms_sign_finish attaches the signature and verifies the result. Same thread,
 * error and logging rules as above (docs/certificates.md, "CMS").
 * ============================================================================================== */

/* Largest CMS structure uk_x509_cms_verify decodes, in bytes of DER. */
#define UK_X509_CMS_MAX (1024u * 1024u)

/* A SignedData being built; opaque. Used by one thread at a time. */
typedef struct uk_x509_cms_sign uk_x509_cms_sign;

typedef struct uk_x509_cms_sign_req {
    const uk_cert_info *signer; /* the key's certificate (borrowed); it goes into the result */
    uk_x509_digest_alg digest;  /* SHA-256/384/512 (RSA, EC keys) or SM3 (SM2 keys) */
    const uint8_t *data;        /* the content (copied) */
    size_t data_len;
    bool detached;       /* true: the content is left out of the structure */
    time_t signing_time; /* the signingTime attribute */
} uk_x509_cms_sign_req;

/*
 * Build a SignedData (version 1, PKCS#7 content types, the signer identified by issuer and serial,
 * the certificate included, no S/MIME capabilities) and return in tbs_digest (*tbs_digest_len:
 * capacity on entry, UK_X509_DIGEST_MAX is enough; length on return) the digest the card signs
 * with *sig_alg: RSA PKCS#1 v1.5 (signatureAlgorithm rsaEncryption) or ECDSA (ecdsa-with-SHA*,
 * DER SEQUENCE { r, s }) with req->digest; for an SM2 key (GM/T 0010) UK_X509_SIG_SM2_SM3
 * (digestAlgorithm SM3, signatureAlgorithm SM2-with-SM3 1.2.156.10197.1.501) over
 * e = SM3(Z || attributes), Z with the ID 1234567812345678: the value the card signs as it is.
 * *state is freed with uk_x509_cms_sign_free.
 * Errors: UK_E_INVALID_PARAMS (NULL pointers, a digest outside the enum), UK_E_NOT_SUPPORTED (the
 * key is not RSA, EC or SM2; SM2 with a digest other than SM3, SM3 with a key other than SM2),
 * UK_E_CERT_INVALID, UK_E_NO_MEMORY, UK_E_INTERNAL. On error nothing is returned.
 */
int uk_x509_cms_sign_begin(const uk_x509_cms_sign_req *req, uk_x509_cms_sign **state,
                           uk_x509_sig_alg *sig_alg, uint8_t *tbs_digest, size_t *tbs_digest_len)
    __attribute__((warn_unused_result));

/*
 * Attach the card's signature, encode the SignedData, decode it again and verify it (signature and
 * message digest, as uk_x509_cms_verify); return its DER in *der (malloc'd, caller frees).
 * UK_E_SIGNATURE_INVALID when it does not verify (the card signed with another key than the
 * certificate's): nothing is returned. Also UK_E_INVALID_PARAMS, UK_E_NO_MEMORY.
 */
int uk_x509_cms_sign_finish(uk_x509_cms_sign *state, const uint8_t *sig, size_t sig_len,
                            uint8_t **der, size_t *der_len) __attribute__((warn_unused_result));

/* Free a state from uk_x509_cms_sign_begin. NULL-safe. */
void uk_x509_cms_sign_free(uk_x509_cms_sign *state);

/* What uk_x509_cms_verify found; every pointer owned by it. */
typedef struct uk_x509_cms_verified {
    uint8_t *signer_der; /* the signer's certificate, as carried in the structure */
    size_t signer_der_len;
    uint8_t *content; /* the signed content (a copy of the detached content when given) */
    size_t content_len;
    bool detached;
    bool has_signing_time;
    time_t signing_time;
} uk_x509_cms_verified;

/*
 * Verify a DER CMS SignedData with exactly one signer whose certificate it carries: the signature
 * with that certificate's key and the message digest against the content — attached, or given in
 * content (content_len bytes) for a detached one. An SM2 signer (GM/T 0010) is checked here rather
 * than by OpenSSL's CMS_verify (which cannot set the SM2 ID): digest SM3, signature SM2-with-SM3,
 * sm2 or sm2-1, the ID 1234567812345678, with signed attributes (at most 32; one contentType equal
 * to eContentType, one messageDigest) or without (the signature over the content). Says nothing
 * about trust in the certificate (no chain, no validity period, no revocation): the caller judges
 * the signer it returns. *out is freed with uk_x509_cms_verified_free. Errors: UK_E_INVALID_PARAMS
 * (not DER of a SignedData, trailing bytes, larger than UK_X509_CMS_MAX, content both attached and
 * given or in neither), UK_E_NOT_SUPPORTED (not one signer; an SM2 signer with another digest or
 * signature algorithm, or too many attributes), UK_E_SIGNATURE_INVALID (does not verify, or the
 * signer's certificate is missing), UK_E_NO_MEMORY.
 */
int uk_x509_cms_verify(const uint8_t *der, size_t len, const uint8_t *content, size_t content_len,
                       uk_x509_cms_verified **out) __attribute__((warn_unused_result));

/* Free a result of uk_x509_cms_verify. NULL-safe. */
void uk_x509_cms_verified_free(uk_x509_cms_verified *v);

/* An EnvelopedData being opened (decrypt.cms); opaque. */
typedef struct uk_x509_cms_envelope uk_x509_cms_envelope;

/* What the card does for an envelope. */
typedef enum uk_x509_unwrap {
    UK_X509_UNWRAP_RSA = 1, /* the raw RSA primitive on the encrypted key (modulus length) */
    UK_X509_UNWRAP_ECDH,    /* ECDH with the originator's point (04 || X || Y): the X coordinate */
    UK_X509_UNWRAP_SM2,     /* SM2 decryption (GM/T 0003.4, SM3) of a GM/T 0009 SM2Cipher (DER
                             * SEQUENCE { x, y, hash, cipherText }): the plaintext, the content key */
} uk_x509_unwrap;

/*
 * Decode a DER CMS EnvelopedData and find the recipient that is one of certs (n_certs parsed
 * certificates of the key, borrowed): a KeyTransRecipientInfo naming the certificate by issuer and
 * serial or by subjectKeyIdentifier, RSA key, rsaEncryption (PKCS#1 v1.5) key transport; or SM2
 * key, sm2-3 (1.2.156.10197.1.301.3) or sm2 key transport of a GM/T 0009 SM2Cipher (GM/T 0010;
 * *how UK_X509_UNWRAP_SM2, *card_in the SM2Cipher's DER); or a KeyAgreeRecipientInfo (RFC 5753:
 * ephemeral-static ECDH, an X9.63 KDF scheme, AES key wrap) with an EC key. Other recipients (for
 * other keys, of other kinds) may be there too. *which is that certificate's index, *how what the
 * card must do with *card_in (borrowed from *out). *out is freed with uk_x509_cms_envelope_free.
 * Errors: UK_E_INVALID_PARAMS (not the DER of an EnvelopedData, no encrypted content: detached, an
 * originator point that is not on the key's curve's size), UK_E_DECRYPT_FAILED (no recipient is
 * one of certs: not meant for this key; an SM2 encrypted key that is not an SM2Cipher),
 * UK_E_NOT_SUPPORTED (the key's recipient is of a kind ukeyd cannot use: RSA-OAEP, another KDF or
 * key wrap; an AEAD or unknown content cipher; content in BER pieces), UK_E_NO_MEMORY.
 */
int uk_x509_cms_envelope_open(const uint8_t *der, size_t len, const uk_cert_info *const *certs,
                              size_t n_certs, uk_x509_cms_envelope **out, size_t *which,
                              uk_x509_unwrap *how, const uint8_t **card_in, size_t *card_in_len)
    __attribute__((warn_unused_result));

/*
 * With the card's answer card_out (RSA: the raw result, the modulus length; ECDH: the shared X
 * coordinate; not for SM2 envelopes, which the token opens itself: uk_x509_cms_envelope_sm2),
 * recover the content-encryption key — PKCS#1 v1.5 unpadding in constant time over the block, the
 * key exactly the content cipher's length; or the X9.63 KDF over ECC-CMS-SharedInfo and the AES key
 * unwrap with its integrity check — and decrypt the content (CBC ciphers such as
 * AES-128/192/256-CBC, DES-EDE3-CBC, SM4-CBC) into *content (malloc'd, caller frees).
 * UK_E_DECRYPT_FAILED for a bad padding or unwrap, a wrong key length and content that does not
 * decrypt, alike. Also UK_E_INVALID_PARAMS, UK_E_NO_MEMORY, UK_E_INTERNAL.
 */
int uk_x509_cms_envelope_finish(uk_x509_cms_envelope *e, const uint8_t *card_out,
                                size_t card_out_len, uint8_t **content, size_t *content_len)
    __attribute__((warn_unused_result));

/*
 * What a token that opens GM/T 0010 envelopes itself needs (*how UK_X509_UNWRAP_SM2; GM/T 0016
 * SKF_ImportSessionKey keeps the content key inside the token, which then decrypts the content):
 * the recipient's SM2Cipher split into *key (C1 checked on the SM2 curve, C2 1..64 bytes), the
 * content's SM4-CBC IV and its ciphertext (borrowed from e; whole 16-byte blocks).
 * UK_E_NOT_SUPPORTED when the content cipher is not SM4-CBC (tokens decrypt SM4 only: an SM2
 * recipient with AES content cannot be opened); UK_E_DECRYPT_FAILED for an SM2Cipher that does
 * not decode or whose C1 is not a point of the curve; UK_E_INVALID_PARAMS (not an SM2 envelope,
 * no 16-byte IV, ciphertext not whole blocks).
 */
int uk_x509_cms_envelope_sm2(const uk_x509_cms_envelope *e, uk_x509_sm2_cipher *key, uint8_t iv[16],
                             const uint8_t **ct, size_t *ct_len)
    __attribute__((warn_unused_result));

/*
 * The content from what the token decrypted (the SM4-CBC plaintext with its padding, exactly the
 * ciphertext's length): the PKCS#7 padding checked and removed, into *content (malloc'd, caller
 * frees). UK_E_DECRYPT_FAILED for a wrong length or a bad padding (a wrong key looks like that);
 * UK_E_INVALID_PARAMS, UK_E_NO_MEMORY.
 */
int uk_x509_cms_envelope_unpad(const uk_x509_cms_envelope *e, const uint8_t *plain, size_t len,
                               uint8_t **content, size_t *content_len)
    __attribute__((warn_unused_result));

/* Free an envelope from uk_x509_cms_envelope_open. NULL-safe. */
void uk_x509_cms_envelope_free(uk_x509_cms_envelope *e);

#endif
