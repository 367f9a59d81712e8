/*
 * skf_core.h - the soft SKF token's state, controls and cryptography, free of the SKF ABI.
 *
 * The exported GM/T 0016 functions (skf_api.c) are the only code that sees ULONG and the packed
 * structures, so this core is compiled once and linked into both module widths
 * (libukskf_soft.so with 4-byte ULONG, libukskf_soft64.so with 8-byte ULONG), the provisioning
 * tool and the tests.
 *
 * State: one text file per device, DIR/<name>.dev, DIR being $UKSKF_DIR. Every SKF call takes
 * the state lock (a process mutex plus flock on DIR/.lock, so several processes may share one
 * token), loads the files it needs, and saves atomically (temp file, fsync, rename, fsync of
 * DIR) after any change, retry counters included: the token survives kill -9 like a real one.
 * Keys and PINs are stored in the clear: this is a test token.
 *
 * Errors: 0, or a negative errno value (-ENOENT missing, -EINVAL malformed, -ENOMEM, -EIO).
 * Thread: any, under skf_lock (the core itself has no other locking).
 */
#ifndef SKF_CORE_H
#define SKF_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SKF_ENV_DIR        "UKSKF_DIR"
#define SKF_NAME_MAX       64 /* with the NUL, as GM/T 0016 */
#define SKF_LABEL_MAX      33
#define SKF_PIN_MIN        6
#define SKF_PIN_MAX        16
#define SKF_MAX_APPS       4
#define SKF_MAX_CONTAINERS 8
#define SKF_CERT_MAX       8192
#define SKF_MAX_FILES      8
#define SKF_FILE_NAME_MAX  33                 /* 32 bytes and the NUL (GM/T 0016 file management) */
#define SKF_FILE_MAX       8192               /* largest file the soft token creates */
#define SKF_SM2_ID_DEFAULT "1234567812345678" /* GM/T 0009 default signer ID */

enum { SKF_KEY_SIGN = 0, SKF_KEY_ENC = 1 };
enum { SKF_PIN_ADMIN = 0, SKF_PIN_USER = 1 }; /* = ADMIN_TYPE, USER_TYPE */
enum { SKF_KIND_NONE = 0, SKF_KIND_RSA = 1, SKF_KIND_SM2 = 2 };

typedef struct skf_blob {
    uint8_t *p;
    size_t n;
} skf_blob;

typedef struct skf_container {
    char name[SKF_NAME_MAX];
    skf_blob key[2];  /* PKCS#8 DER private keys, [SKF_KEY_SIGN] and [SKF_KEY_ENC] */
    skf_blob cert[2]; /* DER certificates */
} skf_container;

/* A file of an application: fixed size (zeros until written), SECURE_*_ACCOUNT rights. */
typedef struct skf_file {
    char name[SKF_FILE_NAME_MAX];
    unsigned read_rights, write_rights;
    skf_blob data; /* exactly the file's size */
} skf_file;

typedef struct skf_app {
    char name[SKF_NAME_MAX];
    char pin[2][SKF_PIN_MAX + 1]; /* [SKF_PIN_ADMIN], [SKF_PIN_USER] */
    unsigned max[2], left[2];
    bool user_default; /* the user PIN was never changed */
    size_t ncont;
    skf_container cont[SKF_MAX_CONTAINERS];
    size_t nfiles;
    skf_file file[SKF_MAX_FILES];
} skf_app;

typedef struct skf_dev {
    char name[SKF_NAME_MAX];
    bool present;
    unsigned epoch; /* +1 at every insertion: connections from before a removal stay dead */
    char label[SKF_LABEL_MAX];
    char serial[SKF_LABEL_MAX];
    size_t napps;
    skf_app app[SKF_MAX_APPS];
} skf_dev;

/* ---- state (skf_state.c) ---- */

/* $UKSKF_DIR, or NULL when unset or empty. */
const char *skf_dir(void);

/* The one state lock: a process-wide mutex, then flock(DIR/.lock). */
typedef struct skf_lock {
    int fd;
} skf_lock;
int skf_lock_take(const char *dir, skf_lock *l) __attribute__((warn_unused_result));
void skf_lock_drop(skf_lock *l);

/* A device name is 1..63 characters of [A-Za-z0-9._-] (it names a file). */
bool skf_dev_name_ok(const char *name);
int skf_dev_load(const char *dir, const char *name, skf_dev *d) __attribute__((warn_unused_result));
int skf_dev_save(const char *dir, const skf_dev *d) __attribute__((warn_unused_result));
/* Wipes and frees what d holds (keys, certificates, PINs); d may then be reused. */
void skf_dev_clear(skf_dev *d);

/* Pulls the device out (present = false) or puts it back (a new epoch), under the lock. */
int skf_dev_set_present(const char *dir, const char *name, bool present)
    __attribute__((warn_unused_result));

/* Names of the devices in dir, sorted; the caller frees with skf_names_free. */
int skf_dev_list(const char *dir, char ***names, size_t *n) __attribute__((warn_unused_result));
void skf_names_free(char **names, size_t n);

skf_app *skf_dev_find_app(skf_dev *d, const char *name);
skf_container *skf_app_find_container(skf_app *a, const char *name);
skf_file *skf_app_find_file(skf_app *a, const char *name);
/* Removes a file. */
void skf_app_remove_file(skf_app *a, skf_file *f);
/* Removes a container, wiping its keys. */
void skf_app_remove_container(skf_app *a, skf_container *c);

int skf_blob_set(skf_blob *b, const void *p, size_t n) __attribute__((warn_unused_result));
/* Moves src into dst (dst's old content wiped and freed), src is left empty. */
void skf_blob_move(skf_blob *dst, skf_blob *src);
void skf_blob_clear(skf_blob *b);

/* ---- fault and timing controls (skf_state.c): DIR/control ----
 * Lines (any order, unknown lines refused):
 *   fail-after N SAR [executed] [remove]   after N more counted calls, the next one returns SAR
 *                                          (hex); "executed": it is carried out first;
 *                                          "remove": every present device is removed as well
 *   latency US                             each counted call takes US microseconds longer
 *   calls N                                counted calls so far (kept by the module)
 * fail-after is one-shot: it is dropped when it fires. */
typedef struct skf_ctl {
    long fail_after; /* -1 = none */
    uint32_t fail_rv;
    bool fail_executed, fail_remove;
    unsigned long latency_us;
    unsigned long calls;
} skf_ctl;
int skf_ctl_load(const char *dir, skf_ctl *c) __attribute__((warn_unused_result));
/* Applies one control line to c (split in place); -EINVAL for anything malformed. */
int skf_ctl_parse(skf_ctl *c, char *line) __attribute__((warn_unused_result));
int skf_ctl_save(const char *dir, const skf_ctl *c) __attribute__((warn_unused_result));

/* ---- provisioning (skf_state.c), for the ukskf tool and the tests ---- */
typedef struct skf_provision {
    const char *dir, *device, *label, *serial, *app;
    const char *admin_pin, *user_pin;
    unsigned retries;
    const char *container;             /* NULL: no container */
    const uint8_t *key_der, *cert_der; /* signing pair (PKCS#8 or traditional DER), optional */
    size_t key_len, cert_len;
    const uint8_t *enc_key_der, *enc_cert_der; /* encryption pair, optional */
    size_t enc_key_len, enc_cert_len;
    bool force; /* replace an existing device file */
} skf_provision;
int skf_provision_device(const skf_provision *p) __attribute__((warn_unused_result));

/* ---- cryptography (skf_crypto.c): OpenSSL 3, keys as PKCS#8 DER ---- */
int skfc_random(uint8_t *p, size_t n) __attribute__((warn_unused_result));
int skfc_sm2_generate(skf_blob *key) __attribute__((warn_unused_result));
int skfc_rsa_generate(unsigned bits, skf_blob *key) __attribute__((warn_unused_result));
/* Re-encodes any DER private key OpenSSL reads as PKCS#8 (provisioning). */
int skfc_key_normalize(const uint8_t *der, size_t n, skf_blob *key)
    __attribute__((warn_unused_result));
/* SKF_KIND_* of a stored key and its size in bits. */
int skfc_key_kind(const skf_blob *key, int *kind, unsigned *bits)
    __attribute__((warn_unused_result));
/* The public point of an SM2 key: 32-byte big-endian x and y. */
int skfc_sm2_public(const skf_blob *key, uint8_t x[32], uint8_t y[32])
    __attribute__((warn_unused_result));
/* RSA modulus (big-endian, *n_len bytes, at most 256) and exponent (4 bytes, right-aligned). */
int skfc_rsa_public(const skf_blob *key, uint8_t n[256], size_t *n_len, uint8_t e[4])
    __attribute__((warn_unused_result));
/* The DER SubjectPublicKeyInfo of the SM2 point (x, y) (tests hand it to OpenSSL). */
int skfc_sm2_spki(const uint8_t x[32], const uint8_t y[32], skf_blob *spki)
    __attribute__((warn_unused_result));
/* SM2 signature of the digest e (already SM3(Z || M)); r and s 32 bytes big-endian. */
int skfc_sm2_sign(const skf_blob *key, const uint8_t e[32], uint8_t r[32], uint8_t s[32])
    __attribute__((warn_unused_result));
/* 0 when (r, s) is a valid signature of e under (x, y); -EBADMSG when not. */
int skfc_sm2_verify(const uint8_t x[32], const uint8_t y[32], const uint8_t e[32],
                    const uint8_t r[32], const uint8_t s[32]) __attribute__((warn_unused_result));
/* Z = SM3(ENTL || ID || a || b || xG || yG || x || y) (GM/T 0003.2, 5.5). */
int skfc_sm2_z(const uint8_t x[32], const uint8_t y[32], const uint8_t *id, size_t id_len,
               uint8_t z[32]) __attribute__((warn_unused_result));
/* SM2 encryption (GM/T 0003.4) of in to (x, y): C1 = (c1x, c1y), C3 = hash, C2 = out (n bytes). */
int skfc_sm2_encrypt(const uint8_t x[32], const uint8_t y[32], const uint8_t *in, size_t n,
                     uint8_t c1x[32], uint8_t c1y[32], uint8_t c3[32], uint8_t *out)
    __attribute__((warn_unused_result));
/* The reverse with a private key; -EBADMSG when C1 is not on the curve or C3 does not match. */
int skfc_sm2_decrypt(const skf_blob *key, const uint8_t c1x[32], const uint8_t c1y[32],
                     const uint8_t c3[32], const uint8_t *c2, size_t n, uint8_t *out)
    __attribute__((warn_unused_result));
/* The SM2 key pair with private scalar d; -EBADMSG unless 1 <= d < n and d*G = (x, y). */
int skfc_sm2_from_private(const uint8_t d[32], const uint8_t x[32], const uint8_t y[32],
                          skf_blob *key) __attribute__((warn_unused_result));
/* SM4-ECB without padding, n a multiple of 16. */
int skfc_sm4_ecb(bool encrypt, const uint8_t key[16], const uint8_t *in, size_t n, uint8_t *out)
    __attribute__((warn_unused_result));
/* Streaming SM4 decryption (SKF_DecryptInit / Update / Final): CBC with iv (16 bytes) or ECB
 * with iv NULL; with padding, PKCS#5 is checked and removed at the end. Update gives back whole
 * blocks and keeps the rest (with padding the last whole block too, until the end is known);
 * skfc_sm4_dec_out says beforehand exactly how many bytes an update of n bytes gives, so a
 * caller can answer the length protocol without touching the state. */
#define SKF_CIPHER_MAX (1u << 20) /* most ciphertext one call takes */
typedef struct skfc_sm4_dec skfc_sm4_dec;
skfc_sm4_dec *skfc_sm4_dec_new(const uint8_t key[16], const uint8_t *iv, bool padding);
/* A copy of d in its current state (to find a result's length without consuming d). */
skfc_sm4_dec *skfc_sm4_dec_dup(const skfc_sm4_dec *d);
size_t skfc_sm4_dec_out(const skfc_sm4_dec *d, size_t n);
int skfc_sm4_dec_update(skfc_sm4_dec *d, const uint8_t *in, size_t n, uint8_t *out, size_t *out_len)
    __attribute__((warn_unused_result));
/* The rest (at most 16 bytes; with padding at most 15): -EINVAL when a partial block is left
 * (with padding: anything but one block), -EBADMSG when the padding is wrong. */
int skfc_sm4_dec_final(skfc_sm4_dec *d, uint8_t out[16], size_t *out_len)
    __attribute__((warn_unused_result));
/* Wipes the key schedule and what is buffered; NULL-safe. */
void skfc_sm4_dec_free(skfc_sm4_dec *d);
/* PKCS#1 v1.5 type 1 signature of in (a DigestInfo or raw hash); sig has the modulus size. */
int skfc_rsa_sign(const skf_blob *key, const uint8_t *in, size_t n, uint8_t *sig, size_t *sig_len)
    __attribute__((warn_unused_result));
/* 0 when p..p+n is exactly one DER X.509 certificate. */
int skfc_cert_check(const uint8_t *p, size_t n) __attribute__((warn_unused_result));

/* Streaming digests: SKF_MD_SM3, SHA1, SHA256. */
enum { SKF_MD_SM3 = 1, SKF_MD_SHA1, SKF_MD_SHA256 };
typedef struct skfc_md skfc_md;
skfc_md *skfc_md_new(int alg);
int skfc_md_update(skfc_md *m, const void *p, size_t n) __attribute__((warn_unused_result));
/* out must hold skfc_md_size bytes. */
int skfc_md_final(skfc_md *m, uint8_t *out) __attribute__((warn_unused_result));
size_t skfc_md_size(const skfc_md *m);
void skfc_md_free(skfc_md *m);

#endif
