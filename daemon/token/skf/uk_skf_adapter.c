/*
 * uk_skf_adapter.c - the width-free adapter over one ULONG width of the SKF ABI
 * (uk_skf_int.h). Compiled twice: with UK_SKF_ULONG_BYTES=4 it defines uk__skf_adapter4, with 8
 * uk__skf_adapter8. The only code of ukeyd that sees ULONG and the packed structures.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "uk_secret.h"
#include "uk_skf_abi.h"
#include "uk_skf_int.h"

#if UK_SKF_ULONG_BYTES == 8
#define ADAPTER uk__skf_adapter8
#else
#define ADAPTER uk__skf_adapter4
#endif

/* The functions ukeyd calls (X-macro: name, parameter list). */
#define FUNCS(X)                                                                                   \
    X(SKF_EnumDev, (BOOL a, LPSTR b, ULONG * c))                                                   \
    X(SKF_ConnectDev, (LPSTR a, DEVHANDLE * b))                                                    \
    X(SKF_DisConnectDev, (DEVHANDLE a))                                                            \
    X(SKF_GetDevState, (LPSTR a, ULONG * b))                                                       \
    X(SKF_GetDevInfo, (DEVHANDLE a, DEVINFO * b))                                                  \
    X(SKF_EnumApplication, (DEVHANDLE a, LPSTR b, ULONG * c))                                      \
    X(SKF_OpenApplication, (DEVHANDLE a, LPSTR b, HAPPLICATION * c))                               \
    X(SKF_CloseApplication, (HAPPLICATION a))                                                      \
    X(SKF_VerifyPIN, (HAPPLICATION a, ULONG b, LPSTR c, ULONG * d))                                \
    X(SKF_GetPINInfo, (HAPPLICATION a, ULONG b, ULONG * c, ULONG * d, BOOL * e))                   \
    X(SKF_ClearSecureState, (HAPPLICATION a))                                                      \
    X(SKF_EnumContainer, (HAPPLICATION a, LPSTR b, ULONG * c))                                     \
    X(SKF_OpenContainer, (HAPPLICATION a, LPSTR b, HCONTAINER * c))                                \
    X(SKF_CloseContainer, (HCONTAINER a))                                                          \
    X(SKF_GetContainerType, (HCONTAINER a, ULONG * b))                                             \
    X(SKF_ExportCertificate, (HCONTAINER a, BOOL b, BYTE * c, ULONG * d))                          \
    X(SKF_ExportPublicKey, (HCONTAINER a, BOOL b, BYTE * c, ULONG * d))                            \
    X(SKF_ECCSignData, (HCONTAINER a, BYTE * b, ULONG c, PECCSIGNATUREBLOB d))                     \
    X(SKF_RSASignData, (HCONTAINER a, BYTE * b, ULONG c, BYTE * d, ULONG * e))                     \
    X(SKF_CreateContainer, (HAPPLICATION a, LPSTR b, HCONTAINER * c))                              \
    X(SKF_DeleteContainer, (HAPPLICATION a, LPSTR b))                                              \
    X(SKF_GenECCKeyPair, (HCONTAINER a, ULONG b, ECCPUBLICKEYBLOB * c))                            \
    X(SKF_GenRSAKeyPair, (HCONTAINER a, ULONG b, RSAPUBLICKEYBLOB * c))                            \
    X(SKF_ImportCertificate, (HCONTAINER a, BOOL b, BYTE * c, ULONG d))                            \
    X(SKF_ImportECCKeyPair, (HCONTAINER a, PENVELOPEDKEYBLOB b))                                   \
    X(SKF_CreateFile, (HAPPLICATION a, LPSTR b, ULONG c, ULONG d, ULONG e))                        \
    X(SKF_ReadFile, (HAPPLICATION a, LPSTR b, ULONG c, ULONG d, BYTE * e, ULONG * f))              \
    X(SKF_WriteFile, (HAPPLICATION a, LPSTR b, ULONG c, BYTE * d, ULONG e))                        \
    X(SKF_ImportSessionKey, (HCONTAINER a, ULONG b, BYTE * c, ULONG d, HANDLE * e))                \
    X(SKF_DecryptInit, (HANDLE a, BLOCKCIPHERPARAM b))                                             \
    X(SKF_DecryptUpdate, (HANDLE a, BYTE * b, ULONG c, BYTE * d, ULONG * e))                       \
    X(SKF_DecryptFinal, (HANDLE a, BYTE * b, ULONG * c))                                           \
    X(SKF_CloseHandle, (HANDLE a))

typedef struct table {
#define FIELD(name, params) name##_fn name;
    FUNCS(FIELD)
#undef FIELD
    unsigned found; /* how many came from the module */
} table;

/* Stubs: what a module lacking the function answers. Parameters are unused on purpose. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#define STUB(name, params)                                                                         \
    static ULONG stub_##name params                                                                \
    {                                                                                              \
        return SAR_NOTSUPPORTYETERR;                                                               \
    }
FUNCS(STUB)
#undef STUB
#pragma GCC diagnostic pop

static void *table_new(void *dl)
{
    table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
        /* dlsym gives void *; POSIX guarantees it converts to a function pointer. */
#define TAKE(name, params)                                                                         \
    t->name = stub_##name;                                                                         \
    {                                                                                              \
        void *sym = dl != NULL ? dlsym(dl, #name) : NULL;                                          \
        if (sym != NULL) {                                                                         \
            memcpy(&t->name, &sym, sizeof(t->name));                                               \
            t->found++;                                                                            \
        }                                                                                          \
    }
    FUNCS(TAKE)
#undef TAKE
    return t;
}

static bool has(const void *tab, const char *fn)
{
    const table *t = tab;
#define HAS(name, params)                                                                          \
    if (strcmp(fn, #name) == 0)                                                                    \
        return t->name != stub_##name;
    FUNCS(HAS)
#undef HAS
    return false;
}

/* A module's ULONG result as a 32-bit SAR code: a wider value is not one. */
static uint32_t sar(ULONG rv)
{
#if UK_SKF_ULONG_BYTES == 8
    if (rv > 0xFFFFFFFFu)
        return UK__SKF_GARBAGE;
#endif
    return (uint32_t)rv;
}

/* Copies a name into a writable buffer for the LPSTR parameters (the standard's functions do not
 * promise to leave it alone). */
static bool name_copy(char buf[UK_SKF_NAME_MAX], const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= UK_SKF_NAME_MAX)
        return false;
    memcpy(buf, name, n + 1);
    return true;
}

/* The length protocol of name lists: ask (NULL buffer), allocate, fetch. kind 0: devices (bPresent
 * TRUE), 1: applications of h, 2: containers of h. */
static uint32_t enum_names(const table *t, int kind, void *h, char **list, size_t *len)
{
    *list = NULL;
    *len = 0;
    ULONG size = 0;
    ULONG rv = kind == 0   ? t->SKF_EnumDev(TRUE, NULL, &size)
               : kind == 1 ? t->SKF_EnumApplication(h, NULL, &size)
                           : t->SKF_EnumContainer(h, NULL, &size);
    if (rv != SAR_OK)
        return sar(rv);
    if (size == 0)
        return SAR_OK; /* some vendors' empty list */
    if ((uint64_t)size > UK__SKF_OUT_MAX)
        return UK__SKF_GARBAGE;
    ULONG cap = size;
    char *buf = calloc(1, (size_t)cap + 2); /* two NULs past what the module may fill */
    if (buf == NULL)
        return UK__SKF_NOMEM;
    rv = kind == 0   ? t->SKF_EnumDev(TRUE, buf, &size)
         : kind == 1 ? t->SKF_EnumApplication(h, buf, &size)
                     : t->SKF_EnumContainer(h, buf, &size);
    if (rv != SAR_OK || size > cap) {
        free(buf);
        /* A list that grew between the calls (a device plugged in) is read at the next scan. */
        return rv == SAR_OK ? UK__SKF_GARBAGE : sar(rv);
    }
    *list = buf;
    *len = (size_t)size;
    return SAR_OK;
}

static uint32_t enum_dev(const void *tab, char **list, size_t *len)
{
    return enum_names(tab, 0, NULL, list, len);
}

static uint32_t enum_app(const void *tab, void *dev, char **list, size_t *len)
{
    return enum_names(tab, 1, dev, list, len);
}

static uint32_t enum_cont(const void *tab, void *app, char **list, size_t *len)
{
    return enum_names(tab, 2, app, list, len);
}

/* A file name: at most 32 bytes (GM/T 0016 file management). */
static bool file_name_copy(char buf[UK_SKF_NAME_MAX], const char *name)
{
    return strlen(name) <= 32 && name_copy(buf, name);
}

static uint32_t create_file(const void *tab, void *app, const char *name, size_t size,
                            unsigned read_rights, unsigned write_rights)
{
    const table *t = tab;
    char buf[UK_SKF_NAME_MAX];
    if (!file_name_copy(buf, name))
        return SAR_NAMELENERR;
    if ((uint64_t)size > UK__SKF_OUT_MAX)
        return SAR_INDATALENERR;
    return sar(t->SKF_CreateFile(app, buf, (ULONG)size, read_rights, write_rights));
}

static uint32_t read_file(const void *tab, void *app, const char *name, size_t offset, uint8_t *out,
                          size_t *len)
{
    const table *t = tab;
    char buf[UK_SKF_NAME_MAX];
    if (!file_name_copy(buf, name))
        return SAR_NAMELENERR;
    if ((uint64_t)offset > UK__SKF_OUT_MAX || (uint64_t)*len > UK__SKF_OUT_MAX)
        return SAR_INDATALENERR;
    ULONG want = (ULONG)*len, got = (ULONG)*len;
    uint32_t rv = sar(t->SKF_ReadFile(app, buf, (ULONG)offset, want, out, &got));
    if (rv != SAR_OK)
        return rv;
    if (got > want)
        return UK__SKF_GARBAGE;
    *len = (size_t)got;
    return SAR_OK;
}

static uint32_t write_file(const void *tab, void *app, const char *name, size_t offset,
                           const uint8_t *data, size_t n)
{
    const table *t = tab;
    char buf[UK_SKF_NAME_MAX];
    if (!file_name_copy(buf, name))
        return SAR_NAMELENERR;
    if ((uint64_t)offset > UK__SKF_OUT_MAX || (uint64_t)n > UK__SKF_OUT_MAX || n == 0)
        return SAR_INDATALENERR;
    /* pbData is not const in the standard: hand the module a copy. */
    uint8_t *copy = malloc(n);
    if (copy == NULL)
        return UK__SKF_NOMEM;
    memcpy(copy, data, n);
    uint32_t rv = sar(t->SKF_WriteFile(app, buf, (ULONG)offset, copy, (ULONG)n));
    free(copy);
    return rv;
}

static uint32_t connect_dev(const void *tab, const char *name, void **dev)
{
    const table *t = tab;
    char buf[UK_SKF_NAME_MAX];
    *dev = NULL;
    if (!name_copy(buf, name))
        return SAR_NAMELENERR;
    DEVHANDLE h = NULL;
    uint32_t rv = sar(t->SKF_ConnectDev(buf, &h));
    if (rv == SAR_OK && h == NULL)
        return UK__SKF_GARBAGE;
    *dev = h;
    return rv;
}

static uint32_t disconnect_dev(const void *tab, void *dev)
{
    return sar(((const table *)tab)->SKF_DisConnectDev(dev));
}

static uint32_t dev_state(const void *tab, const char *name, bool *present)
{
    const table *t = tab;
    char buf[UK_SKF_NAME_MAX];
    if (!name_copy(buf, name))
        return SAR_NAMELENERR;
    ULONG st = DEV_UNKNOW_STATE;
    uint32_t rv = sar(t->SKF_GetDevState(buf, &st));
    *present = rv == SAR_OK && st == DEV_PRESENT_STATE;
    return rv;
}

/* A fixed-size field of DEVINFO (not NUL-terminated when full) as printable text. */
static void field(const CHAR *f, size_t len, char *out, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < len && f[i] != '\0' && n + 1 < size; i++) {
        unsigned char c = (unsigned char)f[i];
        out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

static uint32_t dev_info(const void *tab, void *dev, uk__skf_devinfo *out)
{
    const table *t = tab;
    DEVINFO di;
    memset(&di, 0, sizeof(di));
    memset(out, 0, sizeof(*out));
    uint32_t rv = sar(t->SKF_GetDevInfo(dev, &di));
    if (rv != SAR_OK)
        return rv;
    field(di.Manufacturer, sizeof(di.Manufacturer), out->manufacturer, sizeof(out->manufacturer));
    field(di.Label, sizeof(di.Label), out->label, sizeof(out->label));
    field(di.SerialNumber, sizeof(di.SerialNumber), out->serial, sizeof(out->serial));
    return SAR_OK;
}

static uint32_t open_app(const void *tab, void *dev, const char *name, void **app)
{
    const table *t = tab;
    char buf[UK_SKF_NAME_MAX];
    *app = NULL;
    if (!name_copy(buf, name))
        return SAR_NAMELENERR;
    HAPPLICATION h = NULL;
    uint32_t rv = sar(t->SKF_OpenApplication(dev, buf, &h));
    if (rv == SAR_OK && h == NULL)
        return UK__SKF_GARBAGE;
    *app = h;
    return rv;
}

static uint32_t close_app(const void *tab, void *app)
{
    return sar(((const table *)tab)->SKF_CloseApplication(app));
}

static uint32_t verify_pin(const void *tab, void *app, const uint8_t *pin, size_t pin_len,
                           unsigned *retries)
{
    const table *t = tab;
    char buf[UK_SKF_NAME_MAX];
    if (pin_len == 0 || pin_len >= sizeof(buf) || memchr(pin, 0, pin_len) != NULL)
        return SAR_PIN_LEN_RANGE;
    memcpy(buf, pin, pin_len);
    buf[pin_len] = '\0';
    ULONG left = 0;
    uint32_t rv = sar(t->SKF_VerifyPIN(app, USER_TYPE, buf, &left));
    uk_wipe(buf, sizeof(buf));
    *retries = (uint64_t)left > 0xFFFFu ? 0xFFFFu : (unsigned)left;
    return rv;
}

static uint32_t pin_info(const void *tab, void *app, unsigned *max, unsigned *left)
{
    const table *t = tab;
    ULONG m = 0, l = 0;
    BOOL def = FALSE;
    uint32_t rv = sar(t->SKF_GetPINInfo(app, USER_TYPE, &m, &l, &def));
    *max = (uint64_t)m > 0xFFFFu ? 0xFFFFu : (unsigned)m;
    *left = (uint64_t)l > 0xFFFFu ? 0xFFFFu : (unsigned)l;
    return rv;
}

static uint32_t clear_secure_state(const void *tab, void *app)
{
    return sar(((const table *)tab)->SKF_ClearSecureState(app));
}

static uint32_t open_cont(const void *tab, void *app, const char *name, void **cont)
{
    const table *t = tab;
    char buf[UK_SKF_NAME_MAX];
    *cont = NULL;
    if (!name_copy(buf, name))
        return SAR_NAMELENERR;
    HCONTAINER h = NULL;
    uint32_t rv = sar(t->SKF_OpenContainer(app, buf, &h));
    if (rv == SAR_OK && h == NULL)
        return UK__SKF_GARBAGE;
    *cont = h;
    return rv;
}

static uint32_t close_cont(const void *tab, void *cont)
{
    return sar(((const table *)tab)->SKF_CloseContainer(cont));
}

static uint32_t cont_type(const void *tab, void *cont, unsigned *type)
{
    ULONG ty = UK_SKF_CONTAINER_EMPTY;
    uint32_t rv = sar(((const table *)tab)->SKF_GetContainerType(cont, &ty));
    *type = (uint64_t)ty > 2u ? UK_SKF_CONTAINER_EMPTY : (unsigned)ty;
    return rv;
}

static uint32_t export_cert(const void *tab, void *cont, bool sign, uint8_t **der, size_t *len)
{
    const table *t = tab;
    *der = NULL;
    *len = 0;
    ULONG size = 0;
    uint32_t rv = sar(t->SKF_ExportCertificate(cont, sign ? TRUE : FALSE, NULL, &size));
    if (rv != SAR_OK)
        return rv;
    if (size == 0)
        return SAR_CERTNOTFOUNTERR;
    if ((uint64_t)size > UK__SKF_OUT_MAX)
        return UK__SKF_GARBAGE;
    ULONG cap = size;
    uint8_t *buf = malloc((size_t)cap);
    if (buf == NULL)
        return UK__SKF_NOMEM;
    rv = sar(t->SKF_ExportCertificate(cont, sign ? TRUE : FALSE, buf, &size));
    if (rv != SAR_OK || size > cap || size == 0) {
        free(buf);
        return rv != SAR_OK ? rv : UK__SKF_GARBAGE;
    }
    *der = buf;
    *len = (size_t)size;
    return SAR_OK;
}

/* An SM2 point from its blob: 256 bits, right-aligned in the 64-byte fields. */
static uint32_t ecc_from_blob(const ECCPUBLICKEYBLOB *blob, uk__skf_ecc_pub *pub)
{
    if (blob->BitLen != 256)
        return UK__SKF_GARBAGE;
    for (size_t i = 0; i < 32; i++) {
        if (blob->XCoordinate[i] != 0 || blob->YCoordinate[i] != 0)
            return UK__SKF_GARBAGE;
    }
    memcpy(pub->x, blob->XCoordinate + 32, 32);
    memcpy(pub->y, blob->YCoordinate + 32, 32);
    return SAR_OK;
}

/* An RSA key of 1024 to 2048 bits from its blob (modulus right-aligned). */
static uint32_t rsa_from_blob(const RSAPUBLICKEYBLOB *blob, uint8_t n[256], size_t *n_len,
                              uint8_t e[4])
{
    if (blob->BitLen < 1024 || blob->BitLen > 2048 || blob->BitLen % 8 != 0)
        return UK__SKF_GARBAGE;
    size_t k = (size_t)blob->BitLen / 8;
    memcpy(n, blob->Modulus + sizeof(blob->Modulus) - k, k);
    *n_len = k;
    memcpy(e, blob->PublicExponent, 4);
    return SAR_OK;
}

static uint32_t export_ecc_pub(const void *tab, void *cont, bool sign, uk__skf_ecc_pub *pub)
{
    const table *t = tab;
    ECCPUBLICKEYBLOB blob;
    memset(&blob, 0, sizeof(blob));
    ULONG size = sizeof(blob);
    uint32_t rv = sar(t->SKF_ExportPublicKey(cont, sign ? TRUE : FALSE, (BYTE *)&blob, &size));
    if (rv != SAR_OK)
        return rv;
    return size == sizeof(blob) ? ecc_from_blob(&blob, pub) : UK__SKF_GARBAGE;
}

static uint32_t export_rsa_pub(const void *tab, void *cont, bool sign, uint8_t n[256],
                               size_t *n_len, uint8_t e[4])
{
    const table *t = tab;
    RSAPUBLICKEYBLOB blob;
    memset(&blob, 0, sizeof(blob));
    ULONG size = sizeof(blob);
    uint32_t rv = sar(t->SKF_ExportPublicKey(cont, sign ? TRUE : FALSE, (BYTE *)&blob, &size));
    if (rv != SAR_OK)
        return rv;
    return size == sizeof(blob) ? rsa_from_blob(&blob, n, n_len, e) : UK__SKF_GARBAGE;
}

static uint32_t create_cont(const void *tab, void *app, const char *name, void **cont)
{
    const table *t = tab;
    char buf[UK_SKF_NAME_MAX];
    *cont = NULL;
    if (!name_copy(buf, name))
        return SAR_NAMELENERR;
    HCONTAINER h = NULL;
    uint32_t rv = sar(t->SKF_CreateContainer(app, buf, &h));
    if (rv == SAR_OK && h == NULL)
        return UK__SKF_GARBAGE;
    *cont = h;
    return rv;
}

static uint32_t delete_cont(const void *tab, void *app, const char *name)
{
    const table *t = tab;
    char buf[UK_SKF_NAME_MAX];
    if (!name_copy(buf, name))
        return SAR_NAMELENERR;
    return sar(t->SKF_DeleteContainer(app, buf));
}

static uint32_t gen_ecc(const void *tab, void *cont, uk__skf_ecc_pub *pub)
{
    const table *t = tab;
    ECCPUBLICKEYBLOB blob;
    memset(&blob, 0, sizeof(blob));
    uint32_t rv = sar(t->SKF_GenECCKeyPair(cont, SGD_SM2_1, &blob));
    return rv == SAR_OK ? ecc_from_blob(&blob, pub) : rv;
}

static uint32_t gen_rsa(const void *tab, void *cont, unsigned bits, uint8_t n[256], size_t *n_len,
                        uint8_t e[4])
{
    const table *t = tab;
    RSAPUBLICKEYBLOB blob;
    memset(&blob, 0, sizeof(blob));
    uint32_t rv = sar(t->SKF_GenRSAKeyPair(cont, bits, &blob));
    if (rv != SAR_OK)
        return rv;
    return blob.BitLen == bits ? rsa_from_blob(&blob, n, n_len, e) : UK__SKF_GARBAGE;
}

static uint32_t import_cert(const void *tab, void *cont, bool sign, const uint8_t *der, size_t len)
{
    const table *t = tab;
    if (len == 0 || len > UK__SKF_OUT_MAX)
        return SAR_INDATALENERR;
    BYTE *buf = malloc(len); /* the standard's BYTE * is not const */
    if (buf == NULL)
        return UK__SKF_NOMEM;
    memcpy(buf, der, len);
    uint32_t rv = sar(t->SKF_ImportCertificate(cont, sign ? TRUE : FALSE, buf, (ULONG)len));
    free(buf);
    return rv;
}

static uint32_t ecc_sign(const void *tab, void *cont, const uint8_t e[32], uint8_t r[32],
                         uint8_t s[32])
{
    const table *t = tab;
    BYTE in[32];
    memcpy(in, e, sizeof(in));
    ECCSIGNATUREBLOB sig;
    memset(&sig, 0, sizeof(sig));
    uint32_t rv = sar(t->SKF_ECCSignData(cont, in, sizeof(in), &sig));
    if (rv != SAR_OK)
        return rv;
    for (size_t i = 0; i < 32; i++) {
        if (sig.r[i] != 0 || sig.s[i] != 0)
            return UK__SKF_GARBAGE; /* not a 256-bit value right-aligned */
    }
    memcpy(r, sig.r + 32, 32);
    memcpy(s, sig.s + 32, 32);
    return SAR_OK;
}

static uint32_t rsa_sign(const void *tab, void *cont, const uint8_t *in, size_t n, uint8_t *sig,
                         size_t *sig_len)
{
    const table *t = tab;
    BYTE buf[512];
    if (n > sizeof(buf) || *sig_len > UK__SKF_OUT_MAX)
        return SAR_INDATALENERR;
    memcpy(buf, in, n);
    ULONG size = (ULONG)*sig_len;
    uint32_t rv = sar(t->SKF_RSASignData(cont, buf, (ULONG)n, sig, &size));
    if (rv != SAR_OK)
        return rv;
    if ((uint64_t)size > *sig_len || size == 0)
        return UK__SKF_GARBAGE;
    *sig_len = (size_t)size;
    return SAR_OK;
}

static uint32_t import_ecc_keypair(const void *tab, void *cont, const uk__skf_envelope *env)
{
    const table *t = tab;
    if (env->c2_len == 0 || env->c2_len > sizeof(env->c2))
        return SAR_INDATALENERR;
    size_t size = UK_SKF_ENVELOPEDKEYBLOB_SIZE(env->c2_len);
    if (size < sizeof(ENVELOPEDKEYBLOB))
        size = sizeof(ENVELOPEDKEYBLOB);
    ENVELOPEDKEYBLOB *b = calloc(1, size);
    if (b == NULL)
        return UK__SKF_NOMEM;
    b->Version = env->version;
    b->ulSymmAlgID = env->symm_alg;
    b->ulBits = env->bits;
    memcpy(b->cbEncryptedPriKey, env->enc_priv, 64);
    b->PubKey.BitLen = 256;
    memcpy(b->PubKey.XCoordinate + 32, env->pub.x, 32);
    memcpy(b->PubKey.YCoordinate + 32, env->pub.y, 32);
    memcpy(b->ECCCipherBlob.XCoordinate + 32, env->c1x, 32);
    memcpy(b->ECCCipherBlob.YCoordinate + 32, env->c1y, 32);
    memcpy(b->ECCCipherBlob.HASH, env->c3, 32);
    b->ECCCipherBlob.CipherLen = (ULONG)env->c2_len;
    /* the cipher runs past Cipher[1], into the rest of the allocation */
    memcpy((uint8_t *)b + offsetof(ENVELOPEDKEYBLOB, ECCCipherBlob.Cipher), env->c2, env->c2_len);
    uint32_t rv = sar(t->SKF_ImportECCKeyPair(cont, b));
    uk_wipe(b, size); /* only ciphertext, but no copy of wrapped key material stays around */
    free(b);
    return rv;
}

/* A length the module may be offered in one ULONG: at most what is left, never more than 4 GiB. */
static ULONG room(uint64_t n)
{
    return (ULONG)(n > 0xFFFFFFFFu ? 0xFFFFFFFFu : n);
}

/* Update and Final of an initialized decryption: n bytes of in, whole, into out. Without padding
 * the plaintext is exactly as long as the ciphertext: at any point the module may have given
 * back at most what it was given, and in the end all of it. */
static uint32_t decrypt_run(const table *t, HANDLE key, const uint8_t *in, size_t n, uint8_t *out)
{
    BYTE piece[UK__SKF_DECRYPT_CHUNK];
    BYTE tail[16];
    size_t fed = 0, done = 0;
    uint32_t rv = SAR_OK;
    while (rv == SAR_OK && fed < n) {
        size_t k = n - fed < sizeof(piece) ? n - fed : sizeof(piece);
        memcpy(piece, in + fed, k); /* pbEncryptedData is not const in the standard */
        fed += k;
        ULONG cap = room(fed - done), got = cap;
        rv = sar(t->SKF_DecryptUpdate(key, piece, (ULONG)k, out + done, &got));
        if (rv == SAR_OK && (uint64_t)got > cap)
            rv = UK__SKF_GARBAGE;
        if (rv == SAR_OK)
            done += (size_t)got;
    }
    if (rv == SAR_OK) {
        /* the module's buffer for what it kept back: at most a block without padding */
        ULONG got = sizeof(tail);
        rv = sar(t->SKF_DecryptFinal(key, tail, &got));
        if (rv == SAR_OK && ((uint64_t)got > sizeof(tail) || (uint64_t)got > n - done))
            rv = UK__SKF_GARBAGE;
        if (rv == SAR_OK) {
            memcpy(out + done, tail, (size_t)got);
            done += (size_t)got;
        }
    }
    if (rv == SAR_OK && done != n)
        rv = UK__SKF_GARBAGE;
    uk_wipe(tail, sizeof(tail));
    uk_wipe(piece, sizeof(piece));
    return rv;
}

static uint32_t session_decrypt(const void *tab, void *cont, uint32_t sym_alg,
                                const uk_sm2_cipher *wrapped, const uint8_t iv[16],
                                const uint8_t *in, size_t n, uint8_t *out, size_t *out_len)
{
    const table *t = tab;
    size_t cap = *out_len;
    *out_len = 0;
    if (wrapped->c2_len == 0 || wrapped->c2_len > sizeof(wrapped->c2) || n % 16 != 0)
        return SAR_INDATALENERR;
    if (cap < n)
        return SAR_BUFFER_TOO_SMALL;
    /* a key the module could not release would stay on the device until it is unplugged */
    if (t->SKF_CloseHandle == stub_SKF_CloseHandle)
        return SAR_NOTSUPPORTYETERR;
    size_t size = UK_SKF_ECCCIPHERBLOB_SIZE(wrapped->c2_len);
    ECCCIPHERBLOB *b = calloc(1, size < sizeof(*b) ? sizeof(*b) : size);
    if (b == NULL)
        return UK__SKF_NOMEM;
    memcpy(b->XCoordinate + 32, wrapped->c1x, 32);
    memcpy(b->YCoordinate + 32, wrapped->c1y, 32);
    memcpy(b->HASH, wrapped->c3, 32);
    b->CipherLen = (ULONG)wrapped->c2_len;
    /* the cipher runs past Cipher[1], into the rest of the allocation */
    memcpy((uint8_t *)b + offsetof(ECCCIPHERBLOB, Cipher), wrapped->c2, wrapped->c2_len);
    HANDLE key = NULL;
    uint32_t rv = sar(t->SKF_ImportSessionKey(cont, sym_alg, (BYTE *)b, (ULONG)size, &key));
    uk_wipe(b, size); /* the wrapped session key: no copy stays around */
    free(b);
    if (rv == SAR_OK && key == NULL)
        return UK__SKF_GARBAGE; /* nothing to close */
    if (rv != SAR_OK)
        return rv;
    BLOCKCIPHERPARAM param;
    memset(&param, 0, sizeof(param));
    memcpy(param.IV, iv, 16);
    param.IVLen = 16;
    param.PaddingType = 0;
    rv = sar(t->SKF_DecryptInit(key, param));
    if (rv == SAR_OK)
        rv = decrypt_run(t, key, in, n, out);
    /* a refused close after a good decryption leaves the plaintext good: the result stands */
    (void)t->SKF_CloseHandle(key);
    if (rv != SAR_OK) {
        uk_wipe(out, cap); /* no partial plaintext for a caller that was told it failed */
        return rv;
    }
    *out_len = n;
    return SAR_OK;
}

const uk__skf_adapter ADAPTER = {
    .ulong_bytes = UK_SKF_ULONG_BYTES,
    .table_new = table_new,
    .has = has,
    .enum_dev = enum_dev,
    .connect_dev = connect_dev,
    .disconnect_dev = disconnect_dev,
    .dev_state = dev_state,
    .dev_info = dev_info,
    .enum_app = enum_app,
    .open_app = open_app,
    .close_app = close_app,
    .verify_pin = verify_pin,
    .pin_info = pin_info,
    .clear_secure_state = clear_secure_state,
    .enum_cont = enum_cont,
    .open_cont = open_cont,
    .close_cont = close_cont,
    .cont_type = cont_type,
    .export_cert = export_cert,
    .export_ecc_pub = export_ecc_pub,
    .export_rsa_pub = export_rsa_pub,
    .ecc_sign = ecc_sign,
    .rsa_sign = rsa_sign,
    .create_cont = create_cont,
    .delete_cont = delete_cont,
    .gen_ecc = gen_ecc,
    .gen_rsa = gen_rsa,
    .import_cert = import_cert,
    .import_ecc_keypair = import_ecc_keypair,
    .session_decrypt = session_decrypt,
    .create_file = create_file,
    .read_file = read_file,
    .write_file = write_file,
};
