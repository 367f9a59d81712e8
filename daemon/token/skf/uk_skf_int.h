/*
 * uk_skf_int.h - inside the skf module: the width-free adapter over a vendor's GM/T 0016
 * functions, the module instance and the one SAR -> uk_err translation. Only files of
 * daemon/token/skf include it.
 *
 * The adapter (uk_skf_adapter.c) is the only code that sees ULONG and the packed structures of
 * uk_skf_abi.h. It is compiled twice, with UK_SKF_ULONG_BYTES 4 and 8, into uk__skf_adapter4 and
 * uk__skf_adapter8; everything else calls it through uk__skf_adapter with plain C types, so one
 * driver serves both kinds of module. Every table entry starts as a stub answering
 * SAR_NOTSUPPORTYETERR and is replaced only by a symbol the module exports: a module lacking a
 * function is never called through NULL.
 *
 * Adapter results are SAR codes as uint32_t, plus the two below for what the adapter itself
 * found (a ULONG return wider than 32 bits is UK__SKF_GARBAGE). Output buffers (name lists,
 * certificates) are asked for with a NULL buffer first, then malloc'ed: the caller frees them.
 * PINs are copied into a buffer the adapter wipes before it returns.
 * Threads: any; a module instance is shared by its scanner and its devices' workers.
 */
#ifndef UK_SKF_INT_H
#define UK_SKF_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uk_skf.h"

/* The module answered something impossible (a length that grew, a list without its end). */
#define UK__SKF_GARBAGE 0xFFFFFF01u
/* Memory for an output buffer could not be had. */
#define UK__SKF_NOMEM 0xFFFFFF02u

/* Largest name list or certificate accepted from a module. */
#define UK__SKF_OUT_MAX 65536u

/* Most ciphertext handed to one SKF_DecryptUpdate: modules' I/O buffers are small (DEVINFO's
 * MaxBufferSize), and a bounded piece keeps every length the module answers small. */
#define UK__SKF_DECRYPT_CHUNK 1024u

typedef struct uk__skf_devinfo {
    char manufacturer[65];
    char label[33];
    char serial[33];
} uk__skf_devinfo;

typedef struct uk__skf_ecc_pub {
    uint8_t x[32], y[32]; /* big-endian */
} uk__skf_ecc_pub;

/* An ENVELOPEDKEYBLOB, width-free (256-bit values as 32 bytes, big-endian). */
typedef struct uk__skf_envelope {
    uint32_t version, symm_alg, bits;
    uint8_t enc_priv[64]; /* the encrypted 64-byte private-key field */
    uk__skf_ecc_pub pub;  /* the wrapped pair's public key */
    uint8_t c1x[32], c1y[32], c3[32];
    uint8_t c2[64]; /* the SM2-encrypted symmetric key */
    size_t c2_len;
} uk__skf_envelope;

typedef struct uk__skf_adapter {
    unsigned ulong_bytes;
    /* The function table of the module dlopen()ed as dl (stubs where it lacks a symbol); NULL
     * when out of memory. Freed with free(). */
    void *(*table_new)(void *dl);
    /* Whether the module exports the named SKF function (logs). */
    bool (*has)(const void *tab, const char *fn);
    /* SKF_EnumDev(TRUE): the names of the present devices as a multi-string (*list malloc'ed,
     * *len bytes, or NULL and 0 for none). */
    uint32_t (*enum_dev)(const void *tab, char **list, size_t *len);
    uint32_t (*connect_dev)(const void *tab, const char *name, void **dev);
    uint32_t (*disconnect_dev)(const void *tab, void *dev);
    uint32_t (*dev_state)(const void *tab, const char *name, bool *present);
    uint32_t (*dev_info)(const void *tab, void *dev, uk__skf_devinfo *out);
    uint32_t (*enum_app)(const void *tab, void *dev, char **list, size_t *len);
    uint32_t (*open_app)(const void *tab, void *dev, const char *name, void **app);
    uint32_t (*close_app)(const void *tab, void *app);
    /* The user PIN; *retries is the count the module wrote (tries left after a wrong PIN). */
    uint32_t (*verify_pin)(const void *tab, void *app, const uint8_t *pin, size_t pin_len,
                           unsigned *retries);
    uint32_t (*pin_info)(const void *tab, void *app, unsigned *max, unsigned *left);
    uint32_t (*clear_secure_state)(const void *tab, void *app);
    uint32_t (*enum_cont)(const void *tab, void *app, char **list, size_t *len);
    uint32_t (*open_cont)(const void *tab, void *app, const char *name, void **cont);
    uint32_t (*close_cont)(const void *tab, void *cont);
    /* UK_SKF_CONTAINER_EMPTY / _RSA / _ECC (uk_skf_abi.h). */
    uint32_t (*cont_type)(const void *tab, void *cont, unsigned *type);
    /* The signing (sign) or encryption certificate, malloc'ed; SAR codes of the module when
     * there is none. */
    uint32_t (*export_cert)(const void *tab, void *cont, bool sign, uint8_t **der, size_t *len);
    uint32_t (*export_ecc_pub)(const void *tab, void *cont, bool sign, uk__skf_ecc_pub *pub);
    /* The RSA public key: big-endian modulus (*n_len bytes, at most 256) and exponent. */
    uint32_t (*export_rsa_pub)(const void *tab, void *cont, bool sign, uint8_t n[256],
                               size_t *n_len, uint8_t e[4]);
    /* SKF_ECCSignData over e = SM3(Z || M) (32 bytes); r and s big-endian. */
    uint32_t (*ecc_sign)(const void *tab, void *cont, const uint8_t e[32], uint8_t r[32],
                         uint8_t s[32]);
    /* SKF_RSASignData: PKCS#1 v1.5 type 1 over in (a DigestInfo); *sig_len: cap in, length out. */
    uint32_t (*rsa_sign)(const void *tab, void *cont, const uint8_t *in, size_t n, uint8_t *sig,
                         size_t *sig_len);
    /* Renewal: a new container (SAR_FILE_ALREADY_EXIST when the name is taken), a container
     * removed with its keys and certificates, a new signing key pair in a container (SM2 with
     * SGD_SM2_1, or RSA of bits), a certificate imported (sign: the signing one). */
    uint32_t (*create_cont)(const void *tab, void *app, const char *name, void **cont);
    uint32_t (*delete_cont)(const void *tab, void *app, const char *name);
    uint32_t (*gen_ecc)(const void *tab, void *cont, uk__skf_ecc_pub *pub);
    uint32_t (*gen_rsa)(const void *tab, void *cont, unsigned bits, uint8_t n[256], size_t *n_len,
                        uint8_t e[4]);
    uint32_t (*import_cert)(const void *tab, void *cont, bool sign, const uint8_t *der, size_t len);
    /* SKF_ImportECCKeyPair: the encryption pair of env into the container. */
    uint32_t (*import_ecc_keypair)(const void *tab, void *cont, const uk__skf_envelope *env);
    /* A GM/T 0016 digital envelope opened on the device: SKF_ImportSessionKey of wrapped (the
     * session key of sym_alg, e.g. SGD_SM4_CBC, SM2-encrypted to the container's encryption
     * key), SKF_DecryptInit with iv (16 bytes, no padding), SKF_DecryptUpdate over in (n bytes,
     * a multiple of 16) in pieces of at most UK__SKF_DECRYPT_CHUNK bytes, SKF_DecryptFinal;
     * the plaintext into out (*out_len: capacity in, at least n; length out). The session key's
     * handle is closed whatever happened. */
    uint32_t (*session_decrypt)(const void *tab, void *cont, uint32_t sym_alg,
                                const uk_sm2_cipher *wrapped, const uint8_t iv[16],
                                const uint8_t *in, size_t n, uint8_t *out, size_t *out_len);
    /* Files of an application (ukeyd's card record): a new file of size bytes with
     * SECURE_*_ACCOUNT rights, a read of at most *len bytes at offset (*len: the bytes read), a
     * write of n bytes at offset. Names of at most 32 bytes (else NAMELENERR). */
    uint32_t (*create_file)(const void *tab, void *app, const char *name, size_t size,
                            unsigned read_rights, unsigned write_rights);
    uint32_t (*read_file)(const void *tab, void *app, const char *name, size_t offset, uint8_t *out,
                          size_t *len);
    uint32_t (*write_file)(const void *tab, void *app, const char *name, size_t offset,
                           const uint8_t *data, size_t n);
} uk__skf_adapter;

extern const uk__skf_adapter uk__skf_adapter4;
extern const uk__skf_adapter uk__skf_adapter8;

/* A loaded module (refcounted; uk_skf_module_get / put in uk_skf.h). */
struct uk_skf_module {
    uk_source_module base; /* path (the real path), name, refs: the shared registry's */
    void *dl;
    const uk__skf_adapter *a;
    void *tab;
    /* Every call into the module holds it: vendors' modules are rarely thread-safe, and the
     * scanner and the workers of its devices call it from several threads. */
    pthread_mutex_t call_mu;
};

/* Another reference on m (held by the caller). */
void uk__skf_module_ref(uk_skf_module *m);

/* Takes m's call lock; uk__skf_unlocked drops it and returns rv. */
void uk__skf_lock(uk_skf_module *m);
uint32_t uk__skf_unlocked(uk_skf_module *m, uint32_t rv);

/* Calls adapter function fn of module m under its call lock: UK__SKF(m, enum_dev, &list, &len).
 * (The call is an argument of uk__skf_unlocked, so it runs after the lock and before the
 * unlock.) */
#define UK__SKF(m, fn, ...)                                                                        \
    (uk__skf_lock(m), uk__skf_unlocked((m), (m)->a->fn((m)->tab, __VA_ARGS__)))

/*
 * Translates sar of the SKF call named call into a uk_err and logs
 * "call on 'what': SAR_NAME (0x...) -> REASON (file:line function)" once, at debug level for
 * expected conditions (wrong PIN, device removed, a function the module lacks), as a warning
 * otherwise. SAR_OK gives UK_OK silently. Codes the standard does not define (vendors' own,
 * which contradict each other) are CARD_ERROR. what may be NULL. Any thread.
 */
int uk__skf_err_at(uint32_t sar, const char *call, const char *what, const char *file, int line,
                   const char *func);
#define uk__skf_err(sar, call, what)                                                               \
    uk__skf_err_at((sar), (call), (what), __FILE__, __LINE__, __func__)

/* "SAR_PIN_INCORRECT", or "SAR_UNKNOWN" for a code the standard does not define. */
const char *uk__skf_sar_name(uint32_t sar);

/*
 * The next name of a multi-string (list, len bytes) from *pos: NULL at its end (a NUL where a
 * name would start, or the end of the buffer). A name not NUL-terminated within the buffer ends
 * the list as well (module garbage is never read past the buffer).
 */
const char *uk__skf_next_name(const char *list, size_t len, size_t *pos);

#endif
