/* The soft SKF module through its exported GM/T 0016 functions, loaded with dlopen as ukeyd
 * will load a vendor's module ($UKSKF_MODULE; built and run once per ULONG width). Each test
 * gets a fresh token directory with one device "ukey0": application "ukeyd" (admin PIN
 * 12345678, user PIN 123456, 3 tries each) and container "sig" holding an SM2 key and its
 * certificate; and a freshly loaded module, connected and with the application open.
 *
 * What a signature proves is checked by OpenSSL (and by the openssl command for the CLI test),
 * never by the module itself. */
#include "uk_skf_abi.h"

#include "skf_core.h"

#include <dlfcn.h>
#include <errno.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define ID      SKF_SM2_ID_DEFAULT
#define USERPIN "123456"
/* SKF takes names and PINs as non-const LPSTR: a writable copy of a literal */
#define S(lit) ((char[]){lit})

#define SKF_FUNCS(X)                                                                               \
    X(SKF_EnumDev)                                                                                 \
    X(SKF_ConnectDev)                                                                              \
    X(SKF_DisConnectDev)                                                                           \
    X(SKF_GetDevState)                                                                             \
    X(SKF_GetDevInfo)                                                                              \
    X(SKF_WaitForDevEvent)                                                                         \
    X(SKF_CancelWaitForDevEvent)                                                                   \
    X(SKF_LockDev)                                                                                 \
    X(SKF_UnlockDev)                                                                               \
    X(SKF_EnumApplication)                                                                         \
    X(SKF_CreateApplication)                                                                       \
    X(SKF_DeleteApplication)                                                                       \
    X(SKF_OpenApplication)                                                                         \
    X(SKF_CloseApplication)                                                                        \
    X(SKF_VerifyPIN)                                                                               \
    X(SKF_ChangePIN)                                                                               \
    X(SKF_GetPINInfo)                                                                              \
    X(SKF_UnblockPIN)                                                                              \
    X(SKF_ClearSecureState)                                                                        \
    X(SKF_EnumContainer)                                                                           \
    X(SKF_CreateContainer)                                                                         \
    X(SKF_DeleteContainer)                                                                         \
    X(SKF_OpenContainer)                                                                           \
    X(SKF_CloseContainer)                                                                          \
    X(SKF_GetContainerType)                                                                        \
    X(SKF_ImportCertificate)                                                                       \
    X(SKF_ExportCertificate)                                                                       \
    X(SKF_GenRandom)                                                                               \
    X(SKF_GenECCKeyPair)                                                                           \
    X(SKF_ImportECCKeyPair)                                                                        \
    X(SKF_ECCSignData)                                                                             \
    X(SKF_ECCVerify)                                                                               \
    X(SKF_ExportPublicKey)                                                                         \
    X(SKF_GenRSAKeyPair)                                                                           \
    X(SKF_RSASignData)                                                                             \
    X(SKF_DigestInit)                                                                              \
    X(SKF_Digest)                                                                                  \
    X(SKF_CloseHandle)                                                                             \
    X(SKF_ImportSessionKey)                                                                        \
    X(SKF_DecryptInit)                                                                             \
    X(SKF_Decrypt)                                                                                 \
    X(SKF_DecryptUpdate)                                                                           \
    X(SKF_DecryptFinal)                                                                            \
    X(SKF_CreateFile)                                                                              \
    X(SKF_DeleteFile)                                                                              \
    X(SKF_EnumFiles)                                                                               \
    X(SKF_GetFileInfo)                                                                             \
    X(SKF_ReadFile)                                                                                \
    X(SKF_WriteFile)

typedef struct skf {
#define FIELD(name) name##_fn name;
    SKF_FUNCS(FIELD)
#undef FIELD
} skf;

typedef struct fx {
    char dir[64];
    void *lib;
    skf f;
    EVP_PKEY *key; /* the provisioned signing key of "sig" */
    uint8_t *cert; /* its certificate (DER) */
    size_t cert_len;
    DEVHANDLE dev;
    HAPPLICATION app;
} fx;

/* ---- helpers ---- */

static uint8_t *make_cert(EVP_PKEY *key, size_t *len)
{
    X509 *x = X509_new();
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(key, NULL);
    assert_non_null(x);
    assert_non_null(m);
    assert_non_null(pctx);
    X509_NAME *n = X509_get_subject_name(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 7), 1);
    assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
                                                (const unsigned char *)"张三", -1, -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, n), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    /* SM2 with the GM/T 0009 ID, set before the digest starts (OpenSSL's default is empty) */
    assert_int_equal(EVP_PKEY_CTX_set1_id(pctx, ID, strlen(ID)), 1);
    EVP_MD_CTX_set_pkey_ctx(m, pctx);
    assert_int_equal(EVP_DigestSignInit(m, NULL, EVP_sm3(), NULL, key), 1);
    assert_true(X509_sign_ctx(x, m) > 0);
    unsigned char *der = NULL;
    int l = i2d_X509(x, &der);
    assert_true(l > 0);
    *len = (size_t)l;
    EVP_MD_CTX_free(m);
    EVP_PKEY_CTX_free(pctx);
    X509_free(x);
    return der;
}

static void load(fx *t)
{
    const char *path = getenv("UKSKF_MODULE");
    assert_non_null(path);
    t->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(t->lib);
#define LOAD(name)                                                                                 \
    do {                                                                                           \
        void *p_ = dlsym(t->lib, #name);                                                           \
        assert_non_null(p_);                                                                       \
        memcpy(&t->f.name, &p_, sizeof p_);                                                        \
    } while (0);
    SKF_FUNCS(LOAD)
#undef LOAD
}

static void provision(const fx *t, const char *device, const char *container, bool force)
{
    unsigned char *der = NULL;
    int len = i2d_PrivateKey(t->key, &der);
    assert_true(len > 0);
    skf_provision p = {.dir = t->dir,
                       .device = device,
                       .serial = "SKF0001",
                       .app = "ukeyd",
                       .admin_pin = "12345678",
                       .user_pin = USERPIN,
                       .retries = 3,
                       .container = container,
                       .key_der = der,
                       .key_len = (size_t)len,
                       .cert_der = t->cert,
                       .cert_len = t->cert_len,
                       .force = force};
    assert_int_equal(skf_provision_device(&p), 0);
    OPENSSL_clear_free(der, (size_t)len);
}

static void connect_app(fx *t)
{
    assert_int_equal(t->f.SKF_ConnectDev(S("ukey0"), &t->dev), SAR_OK);
    assert_int_equal(t->f.SKF_OpenApplication(t->dev, S("ukeyd"), &t->app), SAR_OK);
}

static int setup(void **state)
{
    fx *t = calloc(1, sizeof *t);
    assert_non_null(t);
    snprintf(t->dir, sizeof t->dir, "/tmp/ukskf-test-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    assert_int_equal(setenv(SKF_ENV_DIR, t->dir, 1), 0);
    t->key = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    assert_non_null(t->key);
    t->cert = make_cert(t->key, &t->cert_len);
    provision(t, "ukey0", "sig", false);
    load(t);
    connect_app(t);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    fx *t = *state;
    if (t->lib != NULL)
        dlclose(t->lib); /* the module frees its handles in its destructor */
    const char *names[] = {".lock", "control", "ukey0.dev", "ukey1.dev"};
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", t->dir, names[i]);
        unlink(path);
    }
    for (const char *const *f = (const char *const[]){"pub.pem", "msg", "sig.der", "csr.pem",
                                                      "out.txt", "key.pem", "cert.der", NULL};
         *f != NULL; f++) {
        snprintf(path, sizeof path, "%s/%s", t->dir, *f);
        unlink(path);
    }
    assert_int_equal(rmdir(t->dir), 0); /* nothing unexpected left behind */
    EVP_PKEY_free(t->key);
    OPENSSL_free(t->cert);
    free(t);
    return 0;
}

static void login(fx *t)
{
    ULONG retry = 99;
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, USER_TYPE, S(USERPIN), &retry), SAR_OK);
    assert_int_equal(retry, 3);
}

static EVP_PKEY *blob_to_pkey(const ECCPUBLICKEYBLOB *b)
{
    skf_blob spki = {0};
    assert_int_equal(b->BitLen, 256);
    assert_int_equal(skfc_sm2_spki(b->XCoordinate + 32, b->YCoordinate + 32, &spki), 0);
    const unsigned char *p = spki.p;
    EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)spki.n);
    assert_non_null(pkey);
    skf_blob_clear(&spki);
    return pkey;
}

static void pkey_to_blob(EVP_PKEY *pkey, ECCPUBLICKEYBLOB *b)
{
    uint8_t pt[65];
    size_t len = 0;
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &len), 1);
    assert_int_equal(len, 65);
    memset(b, 0, sizeof *b);
    b->BitLen = 256;
    memcpy(b->XCoordinate + 32, pt + 1, 32);
    memcpy(b->YCoordinate + 32, pt + 33, 32);
}

/* DER ECDSA-Sig-Value of a signature blob (values right-aligned in 64 bytes). */
static int sig_der(const ECCSIGNATUREBLOB *sig, unsigned char **der)
{
    for (int i = 0; i < 32; i++) {
        assert_int_equal(sig->r[i], 0);
        assert_int_equal(sig->s[i], 0);
    }
    ECDSA_SIG *s = ECDSA_SIG_new();
    assert_non_null(s);
    assert_int_equal(
        ECDSA_SIG_set0(s, BN_bin2bn(sig->r + 32, 32, NULL), BN_bin2bn(sig->s + 32, 32, NULL)), 1);
    *der = NULL;
    int len = i2d_ECDSA_SIG(s, der);
    assert_true(len > 0);
    ECDSA_SIG_free(s);
    return len;
}

/* OpenSSL's verdict on an SM2 signature of msg with the signer ID id. */
static bool sm2_verifies(EVP_PKEY *pub, const void *msg, size_t n, const ECCSIGNATUREBLOB *sig,
                         const char *id)
{
    unsigned char *der = NULL;
    int len = sig_der(sig, &der);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(pub, NULL);
    assert_non_null(m);
    assert_non_null(pctx);
    assert_int_equal(EVP_PKEY_CTX_set1_id(pctx, id, strlen(id)), 1);
    EVP_MD_CTX_set_pkey_ctx(m, pctx);
    assert_int_equal(EVP_DigestVerifyInit(m, NULL, EVP_sm3(), NULL, pub), 1);
    bool ok = EVP_DigestVerify(m, der, (size_t)len, msg, n) == 1;
    EVP_MD_CTX_free(m);
    EVP_PKEY_CTX_free(pctx);
    OPENSSL_free(der);
    return ok;
}

/* The module computes e = SM3(Z(ID, pub) || msg) and signs it, as a driver will. */
static void module_sign(fx *t, HCONTAINER c, ECCPUBLICKEYBLOB *pub, const void *msg, size_t n,
                        ECCSIGNATUREBLOB *sig)
{
    HANDLE h = NULL;
    BYTE e[32];
    ULONG len = 0;
    BYTE *data = malloc(n + 1); /* SKF takes non-const input */
    assert_non_null(data);
    memcpy(data, msg, n);
    assert_int_equal(t->f.SKF_DigestInit(t->dev, SGD_SM3, pub, (BYTE *)S(ID), 16, &h), SAR_OK);
    assert_int_equal(t->f.SKF_Digest(h, data, (ULONG)n, NULL, &len), SAR_OK);
    assert_int_equal(len, 32);
    assert_int_equal(t->f.SKF_Digest(h, data, (ULONG)n, e, &len), SAR_OK);
    free(data);
    assert_int_equal(t->f.SKF_CloseHandle(h), SAR_OK);
    assert_int_equal(t->f.SKF_ECCSignData(c, e, 32, sig), SAR_OK);
}

static void export_sign_pub(fx *t, HCONTAINER c, ECCPUBLICKEYBLOB *pub)
{
    ULONG len = 0;
    assert_int_equal(t->f.SKF_ExportPublicKey(c, TRUE, NULL, &len), SAR_OK);
    assert_int_equal(len, sizeof *pub);
    assert_int_equal(t->f.SKF_ExportPublicKey(c, TRUE, (BYTE *)pub, &len), SAR_OK);
}

static void set_controls(const fx *t, long fail_after, ULONG rv, bool executed, bool remove,
                         unsigned long latency_us)
{
    skf_lock l;
    skf_ctl c = {.fail_after = fail_after,
                 .fail_rv = (uint32_t)rv,
                 .fail_executed = executed,
                 .fail_remove = remove,
                 .latency_us = latency_us};
    assert_int_equal(skf_lock_take(t->dir, &l), 0);
    assert_int_equal(skf_ctl_save(t->dir, &c), 0);
    skf_lock_drop(&l);
}

static unsigned long calls_counted(const fx *t)
{
    skf_ctl c;
    assert_int_equal(skf_ctl_load(t->dir, &c), 0);
    return c.calls;
}

/* ---- devices ---- */

static void test_skf_enum_dev_is_a_multistring_with_length_protocol(void **state)
{
    fx *t = *state;
    provision(t, "ukey1", NULL, false);
    char buf[64];
    ULONG len = 0;
    assert_int_equal(t->f.SKF_EnumDev(TRUE, NULL, &len), SAR_OK);
    assert_int_equal(len, sizeof "ukey0\0ukey1\0"); /* each name + NUL, then the final NUL */
    ULONG small = len - 1;
    assert_int_equal(t->f.SKF_EnumDev(TRUE, buf, &small), SAR_BUFFER_TOO_SMALL);
    assert_int_equal(small, len);
    len = sizeof buf;
    assert_int_equal(t->f.SKF_EnumDev(TRUE, buf, &len), SAR_OK);
    assert_memory_equal(buf, "ukey0\0ukey1\0", sizeof "ukey0\0ukey1\0");

    /* a removed device is listed only when asking for every device */
    assert_int_equal(skf_dev_set_present(t->dir, "ukey1", false), 0);
    len = sizeof buf;
    assert_int_equal(t->f.SKF_EnumDev(TRUE, buf, &len), SAR_OK);
    assert_int_equal(len, sizeof "ukey0\0");
    assert_memory_equal(buf, "ukey0\0", sizeof "ukey0\0");
    len = sizeof buf;
    assert_int_equal(t->f.SKF_EnumDev(FALSE, buf, &len), SAR_OK);
    assert_int_equal(len, sizeof "ukey0\0ukey1\0");
    assert_int_equal(t->f.SKF_EnumDev(TRUE, buf, NULL), SAR_INVALIDPARAMERR);
}

static void test_skf_connect_reports_device_info_and_applications(void **state)
{
    fx *t = *state;
    DEVINFO info;
    assert_int_equal(t->f.SKF_GetDevInfo(t->dev, &info), SAR_OK);
    assert_string_equal(info.SerialNumber, "SKF0001");
    assert_string_equal(info.Label, "ukey0");
    assert_true((info.AlgAsymCap & SGD_SM2_1) != 0);
    assert_true((info.AlgHashCap & SGD_SM3) != 0);
    char names[32];
    ULONG len = sizeof names;
    assert_int_equal(t->f.SKF_EnumApplication(t->dev, names, &len), SAR_OK);
    assert_int_equal(len, sizeof "ukeyd\0");
    assert_memory_equal(names, "ukeyd\0", len);
    HAPPLICATION a = NULL;
    assert_int_equal(t->f.SKF_OpenApplication(t->dev, S("nope"), &a), SAR_APPLICATION_NOT_EXISTS);
    assert_null(a);
    DEVHANDLE d = NULL;
    assert_int_equal(t->f.SKF_ConnectDev(S("ukey9"), &d), SAR_INVALIDPARAMERR);
    ULONG st = 9;
    assert_int_equal(t->f.SKF_GetDevState(S("ukey0"), &st), SAR_OK);
    assert_int_equal(st, DEV_PRESENT_STATE);
    BYTE rnd[32] = {0}, zero[32] = {0};
    assert_int_equal(t->f.SKF_GenRandom(t->dev, rnd, sizeof rnd), SAR_OK);
    assert_memory_not_equal(rnd, zero, sizeof rnd);
}

/* ---- PINs ---- */

static void test_skf_wrong_pin_counts_down_locks_and_persists(void **state)
{
    fx *t = *state;
    ULONG retry = 99, max = 0, left = 0;
    BOOL def = FALSE;
    assert_int_equal(t->f.SKF_GetPINInfo(t->app, USER_TYPE, &max, &left, &def), SAR_OK);
    assert_int_equal(max, 3);
    assert_int_equal(left, 3);
    assert_true(def);
    /* too short: refused before the comparison, no try spent */
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, USER_TYPE, S("12"), &retry), SAR_PIN_LEN_RANGE);
    assert_int_equal(retry, 3);
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, USER_TYPE, S("000000"), &retry), SAR_PIN_INCORRECT);
    assert_int_equal(retry, 2);
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, USER_TYPE, S("000000"), &retry), SAR_PIN_INCORRECT);
    assert_int_equal(retry, 1);

    /* the counter is on the token: a new load of the module sees it */
    dlclose(t->lib);
    load(t);
    connect_app(t);
    assert_int_equal(t->f.SKF_GetPINInfo(t->app, USER_TYPE, &max, &left, &def), SAR_OK);
    assert_int_equal(left, 1);
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, USER_TYPE, S("000000"), &retry), SAR_PIN_LOCKED);
    assert_int_equal(retry, 0);
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, USER_TYPE, S(USERPIN), &retry), SAR_PIN_LOCKED);
    assert_int_equal(retry, 0);
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, 7, S(USERPIN), &retry), SAR_USER_TYPE_INVALID);

    /* the admin PIN unblocks it */
    assert_int_equal(t->f.SKF_UnblockPIN(t->app, S("12345678"), S("654321"), &retry), SAR_OK);
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, USER_TYPE, S("654321"), &retry), SAR_OK);
    assert_int_equal(retry, 3);
}

static void test_skf_right_pin_restores_retries_and_change_pin(void **state)
{
    fx *t = *state;
    ULONG retry = 0, max = 0, left = 0;
    BOOL def = TRUE;
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, USER_TYPE, S("000000"), &retry), SAR_PIN_INCORRECT);
    login(t);
    assert_int_equal(t->f.SKF_ChangePIN(t->app, USER_TYPE, S(USERPIN), S("1"), &retry),
                     SAR_PIN_LEN_RANGE);
    assert_int_equal(t->f.SKF_ChangePIN(t->app, USER_TYPE, S("999999"), S("abcdef"), &retry),
                     SAR_PIN_INCORRECT);
    assert_int_equal(retry, 2);
    assert_int_equal(t->f.SKF_ChangePIN(t->app, USER_TYPE, S(USERPIN), S("abcdef"), &retry),
                     SAR_OK);
    assert_int_equal(t->f.SKF_GetPINInfo(t->app, USER_TYPE, &max, &left, &def), SAR_OK);
    assert_int_equal(left, 3);
    assert_false(def);
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, USER_TYPE, S("abcdef"), &retry), SAR_OK);
}

static void test_skf_user_pin_required_before_key_use(void **state)
{
    fx *t = *state;
    HCONTAINER c = NULL, n = NULL;
    ECCSIGNATUREBLOB sig;
    BYTE e[32] = {1};
    assert_int_equal(t->f.SKF_OpenContainer(t->app, S("sig"), &c), SAR_OK);
    assert_int_equal(t->f.SKF_ECCSignData(c, e, 32, &sig), SAR_USER_NOT_LOGGED_IN);
    assert_int_equal(t->f.SKF_CreateContainer(t->app, S("new"), &n), SAR_USER_NOT_LOGGED_IN);
    assert_int_equal(t->f.SKF_ImportCertificate(c, TRUE, t->cert, (ULONG)t->cert_len),
                     SAR_USER_NOT_LOGGED_IN);
    ULONG retry = 0;
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, ADMIN_TYPE, S("12345678"), &retry), SAR_OK);
    assert_int_equal(t->f.SKF_ECCSignData(c, e, 32, &sig), SAR_USER_NOT_LOGGED_IN);
    login(t);
    assert_int_equal(t->f.SKF_ECCSignData(c, e, 31, &sig), SAR_INDATALENERR);
    assert_int_equal(t->f.SKF_ECCSignData(c, e, 32, &sig), SAR_OK);
    assert_int_equal(t->f.SKF_ClearSecureState(t->app), SAR_OK);
    assert_int_equal(t->f.SKF_ECCSignData(c, e, 32, &sig), SAR_USER_NOT_LOGGED_IN);
    /* a wrong PIN ends the security state too */
    login(t);
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, USER_TYPE, S("000000"), &retry), SAR_PIN_INCORRECT);
    assert_int_equal(t->f.SKF_ECCSignData(c, e, 32, &sig), SAR_USER_NOT_LOGGED_IN);
    /* and another connection never shares it */
    login(t);
    DEVHANDLE d2 = NULL;
    HAPPLICATION a2 = NULL;
    HCONTAINER c2 = NULL;
    assert_int_equal(t->f.SKF_ConnectDev(S("ukey0"), &d2), SAR_OK);
    assert_int_equal(t->f.SKF_OpenApplication(d2, S("ukeyd"), &a2), SAR_OK);
    assert_int_equal(t->f.SKF_OpenContainer(a2, S("sig"), &c2), SAR_OK);
    assert_int_equal(t->f.SKF_ECCSignData(c2, e, 32, &sig), SAR_USER_NOT_LOGGED_IN);
    assert_int_equal(t->f.SKF_DisConnectDev(d2), SAR_OK);
}

/* ---- containers ---- */

static void test_skf_containers_create_enum_delete(void **state)
{
    fx *t = *state;
    HCONTAINER c1 = NULL, c2 = NULL, x = NULL;
    char names[64];
    ULONG len = 0, type = 9;
    login(t);
    assert_int_equal(t->f.SKF_CreateContainer(t->app, S("c1"), &c1), SAR_OK);
    assert_int_equal(t->f.SKF_CreateContainer(t->app, S("c2"), &c2), SAR_OK);
    assert_int_equal(t->f.SKF_CreateContainer(t->app, S("c1"), &x), SAR_FILE_ALREADY_EXIST);
    char longname[80];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(t->f.SKF_CreateContainer(t->app, longname, &x), SAR_NAMELENERR);
    assert_int_equal(t->f.SKF_EnumContainer(t->app, NULL, &len), SAR_OK);
    assert_int_equal(len, sizeof "sig\0c1\0c2\0");
    len = 3;
    assert_int_equal(t->f.SKF_EnumContainer(t->app, names, &len), SAR_BUFFER_TOO_SMALL);
    assert_int_equal(len, sizeof "sig\0c1\0c2\0");
    assert_int_equal(t->f.SKF_EnumContainer(t->app, names, &len), SAR_OK);
    assert_memory_equal(names, "sig\0c1\0c2\0", len);
    assert_int_equal(t->f.SKF_GetContainerType(c1, &type), SAR_OK);
    assert_int_equal(type, UK_SKF_CONTAINER_EMPTY);

    assert_int_equal(t->f.SKF_DeleteContainer(t->app, S("c1")), SAR_OK);
    assert_int_equal(t->f.SKF_DeleteContainer(t->app, S("c1")), SAR_FILE_NOT_EXIST);
    assert_int_equal(t->f.SKF_OpenContainer(t->app, S("c1"), &x), SAR_FILE_NOT_EXIST);
    /* a handle to a deleted container is dead */
    assert_int_equal(t->f.SKF_GetContainerType(c1, &type), SAR_INVALIDHANDLEERR);
    len = sizeof names;
    assert_int_equal(t->f.SKF_EnumContainer(t->app, names, &len), SAR_OK);
    assert_memory_equal(names, "sig\0c2\0", len);

    /* limit: SKF_MAX_CONTAINERS per application */
    for (int i = 2; i < SKF_MAX_CONTAINERS; i++) {
        char name[8];
        snprintf(name, sizeof name, "k%d", i);
        assert_int_equal(t->f.SKF_CreateContainer(t->app, name, &x), SAR_OK);
    }
    assert_int_equal(t->f.SKF_CreateContainer(t->app, S("full"), &x),
                     SAR_REACH_MAX_CONTAINER_COUNT);
}

/* ---- files (ukeyd's card record lives in two of them) ---- */

static void test_skf_files_rights_sizes_and_persistence(void **state)
{
    fx *t = *state;
    BYTE buf[64];
    ULONG len = sizeof buf;
    /* Creating needs the user PIN; names of at most 32 bytes; sizes 1..SKF_FILE_MAX. */
    assert_int_equal(
        t->f.SKF_CreateFile(t->app, S("rec"), 16, SECURE_ANYONE_ACCOUNT, SECURE_ANYONE_ACCOUNT),
        SAR_USER_NOT_LOGGED_IN);
    login(t);
    char name33[34];
    memset(name33, 'f', 33);
    name33[33] = '\0';
    assert_int_equal(
        t->f.SKF_CreateFile(t->app, name33, 16, SECURE_ANYONE_ACCOUNT, SECURE_ANYONE_ACCOUNT),
        SAR_NAMELENERR);
    assert_int_equal(
        t->f.SKF_CreateFile(t->app, S("rec"), 0, SECURE_ANYONE_ACCOUNT, SECURE_ANYONE_ACCOUNT),
        SAR_INDATALENERR);
    assert_int_equal(t->f.SKF_CreateFile(t->app, S("rec"), SKF_FILE_MAX + 1, SECURE_ANYONE_ACCOUNT,
                                         SECURE_ANYONE_ACCOUNT),
                     SAR_INDATALENERR);
    assert_int_equal(t->f.SKF_CreateFile(t->app, S("rec"), 16, 0x42, SECURE_ANYONE_ACCOUNT),
                     SAR_INVALIDPARAMERR);
    assert_int_equal(
        t->f.SKF_CreateFile(t->app, S("rec"), 16, SECURE_ANYONE_ACCOUNT, SECURE_ANYONE_ACCOUNT),
        SAR_OK);
    assert_int_equal(
        t->f.SKF_CreateFile(t->app, S("rec"), 16, SECURE_ANYONE_ACCOUNT, SECURE_ANYONE_ACCOUNT),
        SAR_FILE_ALREADY_EXIST);
    assert_int_equal(
        t->f.SKF_CreateFile(t->app, S("priv"), 8, SECURE_USER_ACCOUNT, SECURE_USER_ACCOUNT),
        SAR_OK);
    FILEATTRIBUTE fa;
    assert_int_equal(t->f.SKF_GetFileInfo(t->app, S("rec"), &fa), SAR_OK);
    assert_int_equal(fa.FileSize, 16);
    assert_int_equal(fa.WriteRights, SECURE_ANYONE_ACCOUNT);
    len = 0;
    assert_int_equal(t->f.SKF_EnumFiles(t->app, NULL, &len), SAR_OK);
    assert_int_equal(len, sizeof "rec\0priv\0");

    /* A new file reads as zeros; files do not grow; reads stop at the end. */
    len = sizeof buf;
    assert_int_equal(t->f.SKF_ReadFile(t->app, S("rec"), 0, 64, buf, &len), SAR_OK);
    assert_int_equal(len, 16);
    static const BYTE zero[16];
    assert_memory_equal(buf, zero, 16);
    assert_int_equal(t->f.SKF_WriteFile(t->app, S("rec"), 10, (BYTE *)S("abcdefg"), 7),
                     SAR_INDATALENERR);
    assert_int_equal(t->f.SKF_WriteFile(t->app, S("rec"), 4, (BYTE *)S("abcd"), 4), SAR_OK);
    len = 2;
    assert_int_equal(t->f.SKF_ReadFile(t->app, S("rec"), 4, 4, buf, &len), SAR_BUFFER_TOO_SMALL);
    len = sizeof buf;
    assert_int_equal(t->f.SKF_ReadFile(t->app, S("rec"), 17, 1, buf, &len), SAR_INDATALENERR);
    assert_int_equal(t->f.SKF_ReadFile(t->app, S("nope"), 0, 1, buf, &len), SAR_FILE_NOT_EXIST);

    /* Without the PIN: the anyone file is read and written, the user file is not. */
    assert_int_equal(t->f.SKF_ClearSecureState(t->app), SAR_OK);
    assert_int_equal(t->f.SKF_WriteFile(t->app, S("rec"), 0, (BYTE *)S("wxyz"), 4), SAR_OK);
    len = sizeof buf;
    assert_int_equal(t->f.SKF_ReadFile(t->app, S("priv"), 0, 8, buf, &len), SAR_USER_NOT_LOGGED_IN);
    assert_int_equal(t->f.SKF_WriteFile(t->app, S("priv"), 0, (BYTE *)S("x"), 1),
                     SAR_USER_NOT_LOGGED_IN);
    assert_int_equal(t->f.SKF_DeleteFile(t->app, S("priv")), SAR_USER_NOT_LOGGED_IN);

    /* What was written is on the device: another connection reads it. */
    DEVHANDLE d2 = NULL;
    HAPPLICATION a2 = NULL;
    assert_int_equal(t->f.SKF_ConnectDev(S("ukey0"), &d2), SAR_OK);
    assert_int_equal(t->f.SKF_OpenApplication(d2, S("ukeyd"), &a2), SAR_OK);
    len = sizeof buf;
    assert_int_equal(t->f.SKF_ReadFile(a2, S("rec"), 0, 16, buf, &len), SAR_OK);
    assert_memory_equal(buf, "wxyzabcd", 8);
    assert_int_equal(t->f.SKF_DisConnectDev(d2), SAR_OK);
    login(t);
    assert_int_equal(t->f.SKF_DeleteFile(t->app, S("priv")), SAR_OK);
    assert_int_equal(t->f.SKF_DeleteFile(t->app, S("priv")), SAR_FILE_NOT_EXIST);
}

static void test_skf_certificates_import_export(void **state)
{
    fx *t = *state;
    HCONTAINER c = NULL;
    ULONG len = 0;
    login(t);
    assert_int_equal(t->f.SKF_OpenContainer(t->app, S("sig"), &c), SAR_OK);
    /* the provisioned signing certificate */
    assert_int_equal(t->f.SKF_ExportCertificate(c, TRUE, NULL, &len), SAR_OK);
    assert_int_equal(len, t->cert_len);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    ULONG small = len - 1;
    assert_int_equal(t->f.SKF_ExportCertificate(c, TRUE, buf, &small), SAR_BUFFER_TOO_SMALL);
    assert_int_equal(small, len);
    assert_int_equal(t->f.SKF_ExportCertificate(c, TRUE, buf, &len), SAR_OK);
    assert_memory_equal(buf, t->cert, t->cert_len);
    /* no encryption certificate yet */
    assert_int_equal(t->f.SKF_ExportCertificate(c, FALSE, NULL, &len), SAR_CERTNOTFOUNTERR);
    /* not a certificate, or one with bytes after it */
    assert_int_equal(t->f.SKF_ImportCertificate(c, FALSE, t->cert, (ULONG)t->cert_len - 1),
                     SAR_INDATAERR);
    uint8_t *longer = malloc(t->cert_len + 1);
    assert_non_null(longer);
    memcpy(longer, t->cert, t->cert_len);
    longer[t->cert_len] = 0;
    assert_int_equal(t->f.SKF_ImportCertificate(c, FALSE, longer, (ULONG)t->cert_len + 1),
                     SAR_INDATAERR);
    assert_int_equal(t->f.SKF_ImportCertificate(c, FALSE, t->cert, (ULONG)t->cert_len), SAR_OK);
    len = (ULONG)t->cert_len;
    assert_int_equal(t->f.SKF_ExportCertificate(c, FALSE, buf, &len), SAR_OK);
    assert_memory_equal(buf, t->cert, t->cert_len);
    free(longer);
    free(buf);
}

/* ---- SM2 ---- */

static void test_skf_sm2_generated_key_signs_for_openssl_with_default_id(void **state)
{
    fx *t = *state;
    HCONTAINER c = NULL;
    ECCPUBLICKEYBLOB pub, gen;
    ECCSIGNATUREBLOB sig;
    ULONG type = 0;
    char msg[] = "renew the certificate of 张三";
    login(t);
    assert_int_equal(t->f.SKF_CreateContainer(t->app, S("staged"), &c), SAR_OK);
    assert_int_equal(t->f.SKF_GenECCKeyPair(c, SGD_SM2_3, &gen), SAR_NOTSUPPORTYETERR);
    assert_int_equal(t->f.SKF_GenECCKeyPair(c, SGD_SM2_1, &gen), SAR_OK);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_OK);
    assert_int_equal(type, UK_SKF_CONTAINER_ECC);
    export_sign_pub(t, c, &pub);
    assert_memory_equal(&pub, &gen, sizeof pub);
    module_sign(t, c, &pub, msg, sizeof msg - 1, &sig);

    EVP_PKEY *pkey = blob_to_pkey(&pub);
    assert_true(sm2_verifies(pkey, msg, sizeof msg - 1, &sig, ID));
    /* the ID is really part of it: OpenSSL's empty default does not verify */
    assert_false(sm2_verifies(pkey, msg, sizeof msg - 1, &sig, ""));
    assert_false(sm2_verifies(pkey, "other", 5, &sig, ID));
    EVP_PKEY_free(pkey);
    /* the module's own verification agrees */
    HANDLE h = NULL;
    BYTE e[32];
    ULONG len = sizeof e;
    assert_int_equal(t->f.SKF_DigestInit(t->dev, SGD_SM3, &pub, (BYTE *)S(ID), 16, &h), SAR_OK);
    assert_int_equal(t->f.SKF_Digest(h, (BYTE *)msg, sizeof msg - 1, e, &len), SAR_OK);
    assert_int_equal(t->f.SKF_Digest(h, (BYTE *)msg, sizeof msg - 1, e, &len), SAR_HASHOBJERR);
    assert_int_equal(t->f.SKF_CloseHandle(h), SAR_OK);
    assert_int_equal(t->f.SKF_ECCVerify(t->dev, &pub, e, 32, &sig), SAR_OK);
    e[0] ^= 1;
    assert_int_equal(t->f.SKF_ECCVerify(t->dev, &pub, e, 32, &sig), SAR_FAIL);
}

static void test_skf_provisioned_key_matches_its_certificate(void **state)
{
    fx *t = *state;
    HCONTAINER c = NULL;
    ECCPUBLICKEYBLOB pub, want;
    ECCSIGNATUREBLOB sig;
    login(t);
    assert_int_equal(t->f.SKF_OpenContainer(t->app, S("sig"), &c), SAR_OK);
    export_sign_pub(t, c, &pub);
    const unsigned char *p = t->cert;
    X509 *x = d2i_X509(NULL, &p, (long)t->cert_len);
    assert_non_null(x);
    pkey_to_blob(X509_get0_pubkey(x), &want);
    assert_memory_equal(&pub, &want, sizeof pub);
    module_sign(t, c, &pub, "login", 5, &sig);
    assert_true(sm2_verifies(X509_get0_pubkey(x), "login", 5, &sig, ID));
    X509_free(x);
}

/* ---- enveloped key import (GM/T 0016 ENVELOPEDKEYBLOB) ---- */

typedef struct envelope {
    ENVELOPEDKEYBLOB *blob; /* UK_SKF_ENVELOPEDKEYBLOB_SIZE(16) bytes */
    EVP_PKEY *key;          /* the wrapped pair, as the KMC made it */
} envelope;

/* The test KMC: a new SM2 pair, its private key SM4-ECB-encrypted under a random key, that key
 * SM2-encrypted to `to`. */
static void make_envelope(const ECCPUBLICKEYBLOB *to, bool whole_field, envelope *env)
{
    uint8_t field[64] = {0}, sm4[16];
    BIGNUM *d = NULL;
    env->key = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    assert_non_null(env->key);
    assert_int_equal(EVP_PKEY_get_bn_param(env->key, OSSL_PKEY_PARAM_PRIV_KEY, &d), 1);
    assert_int_equal(BN_bn2binpad(d, field + 32, 32), 32);
    BN_clear_free(d);
    env->blob = calloc(1, UK_SKF_ENVELOPEDKEYBLOB_SIZE(16));
    assert_non_null(env->blob);
    ENVELOPEDKEYBLOB *b = env->blob;
    b->Version = 1;
    b->ulSymmAlgID = SGD_SM4_ECB;
    b->ulBits = 256;
    assert_int_equal(skfc_random(sm4, sizeof sm4), 0);
    if (whole_field)
        assert_int_equal(skfc_sm4_ecb(true, sm4, field, 64, b->cbEncryptedPriKey), 0);
    else
        assert_int_equal(skfc_sm4_ecb(true, sm4, field + 32, 32, b->cbEncryptedPriKey + 32), 0);
    pkey_to_blob(env->key, &b->PubKey);
    ECCCIPHERBLOB *cb = &b->ECCCipherBlob;
    assert_int_equal(skfc_sm2_encrypt(to->XCoordinate + 32, to->YCoordinate + 32, sm4, 16,
                                      cb->XCoordinate + 32, cb->YCoordinate + 32, cb->HASH,
                                      cb->Cipher),
                     0);
    cb->CipherLen = 16;
    OPENSSL_cleanse(field, sizeof field);
    OPENSSL_cleanse(sm4, sizeof sm4);
}

static void envelope_free(envelope *env)
{
    free(env->blob);
    EVP_PKEY_free(env->key);
}

/* The encryption key stored by the module really is the KMC's: it signs for the KMC's public
 * key (checked on the state file, outside the module). */
static void assert_stored_enc_key(const fx *t, const char *container, EVP_PKEY *want)
{
    skf_dev d;
    ECCSIGNATUREBLOB sig;
    uint8_t e[32] = {0}, x[32], y[32];
    assert_int_equal(skf_dev_load(t->dir, "ukey0", &d), 0);
    skf_container *c = skf_app_find_container(skf_dev_find_app(&d, "ukeyd"), container);
    assert_non_null(c);
    assert_int_equal(skfc_sm2_public(&c->key[SKF_KEY_ENC], x, y), 0);
    ECCPUBLICKEYBLOB wb;
    pkey_to_blob(want, &wb);
    assert_memory_equal(x, wb.XCoordinate + 32, 32);
    assert_memory_equal(y, wb.YCoordinate + 32, 32);
    memset(&sig, 0, sizeof sig);
    assert_int_equal(skfc_sm2_sign(&c->key[SKF_KEY_ENC], e, sig.r + 32, sig.s + 32), 0);
    assert_int_equal(skfc_sm2_verify(x, y, e, sig.r + 32, sig.s + 32), 0);
    skf_dev_clear(&d);
}

static void test_skf_envelope_import_good(void **state)
{
    fx *t = *state;
    HCONTAINER c = NULL;
    ECCPUBLICKEYBLOB sign_pub, enc_pub;
    ULONG len = 0;
    login(t);
    assert_int_equal(t->f.SKF_OpenContainer(t->app, S("sig"), &c), SAR_OK);
    export_sign_pub(t, c, &sign_pub);
    for (int whole = 0; whole < 2; whole++) {
        envelope env;
        make_envelope(&sign_pub, whole == 1, &env);
        assert_int_equal(t->f.SKF_ImportECCKeyPair(c, env.blob), SAR_OK);
        len = sizeof enc_pub;
        assert_int_equal(t->f.SKF_ExportPublicKey(c, FALSE, (BYTE *)&enc_pub, &len), SAR_OK);
        assert_memory_equal(&enc_pub, &env.blob->PubKey, sizeof enc_pub);
        assert_stored_enc_key(t, "sig", env.key);
        envelope_free(&env);
    }
    /* the signing key is untouched */
    ECCPUBLICKEYBLOB again;
    export_sign_pub(t, c, &again);
    assert_memory_equal(&again, &sign_pub, sizeof again);
}

static void test_skf_envelope_import_bad_is_refused_with_the_right_code(void **state)
{
    fx *t = *state;
    HCONTAINER c = NULL, empty = NULL;
    ECCPUBLICKEYBLOB sign_pub, other_pub;
    envelope env, wrong;
    ULONG len = 0;
    login(t);
    assert_int_equal(t->f.SKF_OpenContainer(t->app, S("sig"), &c), SAR_OK);
    export_sign_pub(t, c, &sign_pub);
    make_envelope(&sign_pub, false, &env);
    ENVELOPEDKEYBLOB *b = env.blob;

    /* sealed to another key (wrong recipient) */
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    assert_non_null(other);
    pkey_to_blob(other, &other_pub);
    make_envelope(&other_pub, false, &wrong);
    assert_int_equal(t->f.SKF_ImportECCKeyPair(c, wrong.blob), SAR_INDATAERR);
    /* corrupted wrapped key, hash, C1, encrypted private key */
    b->ECCCipherBlob.Cipher[3] ^= 0x40;
    assert_int_equal(t->f.SKF_ImportECCKeyPair(c, b), SAR_INDATAERR);
    b->ECCCipherBlob.Cipher[3] ^= 0x40;
    b->ECCCipherBlob.HASH[0] ^= 1;
    assert_int_equal(t->f.SKF_ImportECCKeyPair(c, b), SAR_INDATAERR);
    b->ECCCipherBlob.HASH[0] ^= 1;
    b->ECCCipherBlob.XCoordinate[63] ^= 1; /* C1 off the curve */
    assert_int_equal(t->f.SKF_ImportECCKeyPair(c, b), SAR_INDATAERR);
    b->ECCCipherBlob.XCoordinate[63] ^= 1;
    b->cbEncryptedPriKey[40] ^= 1; /* decrypts to a key that is not PubKey's */
    assert_int_equal(t->f.SKF_ImportECCKeyPair(c, b), SAR_INDATAERR);
    b->cbEncryptedPriKey[40] ^= 1;
    b->PubKey.YCoordinate[63] ^= 1; /* names another public key */
    assert_int_equal(t->f.SKF_ImportECCKeyPair(c, b), SAR_INDATAERR);
    b->PubKey.YCoordinate[63] ^= 1;
    /* header fields */
    b->ulSymmAlgID = SGD_SM4_CBC;
    assert_int_equal(t->f.SKF_ImportECCKeyPair(c, b), SAR_INVALIDPARAMERR);
    b->ulSymmAlgID = SGD_SM1_ECB;
    assert_int_equal(t->f.SKF_ImportECCKeyPair(c, b), SAR_NOTSUPPORTYETERR);
    b->ulSymmAlgID = SGD_SM4_ECB;
    b->Version = 2;
    assert_int_equal(t->f.SKF_ImportECCKeyPair(c, b), SAR_INVALIDPARAMERR);
    b->Version = 1;
    b->ulBits = 512;
    assert_int_equal(t->f.SKF_ImportECCKeyPair(c, b), SAR_MODULUSLENERR);
    b->ulBits = 256;
    b->ECCCipherBlob.CipherLen = 32;
    assert_int_equal(t->f.SKF_ImportECCKeyPair(c, b), SAR_INDATALENERR);
    b->ECCCipherBlob.CipherLen = 16;
    /* nothing was imported by any of those */
    len = sizeof other_pub;
    assert_int_equal(t->f.SKF_ExportPublicKey(c, FALSE, (BYTE *)&other_pub, &len),
                     SAR_KEYNOTFOUNTERR);
    /* a container without a signing key has nothing to open it with */
    assert_int_equal(t->f.SKF_CreateContainer(t->app, S("empty"), &empty), SAR_OK);
    assert_int_equal(t->f.SKF_ImportECCKeyPair(empty, b), SAR_KEYNOTFOUNTERR);
    /* and the repaired envelope goes in */
    assert_int_equal(t->f.SKF_ImportECCKeyPair(c, b), SAR_OK);
    EVP_PKEY_free(other);
    envelope_free(&env);
    envelope_free(&wrong);
}

/* ---- digital envelopes (SKF_ImportSessionKey, SKF_Decrypt*) ---- */

/* Logged in, "sig" open as *c with an SM2 encryption pair the test KMC made: its key. */
static EVP_PKEY *with_enc_key(fx *t, HCONTAINER *c)
{
    ECCPUBLICKEYBLOB sign_pub;
    envelope env;
    login(t);
    assert_int_equal(t->f.SKF_OpenContainer(t->app, S("sig"), c), SAR_OK);
    export_sign_pub(t, *c, &sign_pub);
    make_envelope(&sign_pub, false, &env);
    assert_int_equal(t->f.SKF_ImportECCKeyPair(*c, env.blob), SAR_OK);
    EVP_PKEY *k = env.key;
    env.key = NULL;
    envelope_free(&env);
    return k;
}

/* One value of a DER SEQUENCE as 32 bytes big-endian (an INTEGER) or as it is (an OCTET
 * STRING of want bytes). */
static void der_value(const ASN1_TYPE *v, uint8_t *out, size_t want)
{
    if (v->type == V_ASN1_INTEGER) {
        BIGNUM *bn = ASN1_INTEGER_to_BN(v->value.integer, NULL);
        assert_non_null(bn);
        assert_int_equal(BN_bn2binpad(bn, out, (int)want), (int)want);
        BN_free(bn);
        return;
    }
    assert_int_equal(v->type, V_ASN1_OCTET_STRING);
    assert_int_equal(ASN1_STRING_length(v->value.octet_string), (int)want);
    memcpy(out, ASN1_STRING_get0_data(v->value.octet_string), want);
}

/* A session key SM2-encrypted by OpenSSL to `to` (a GM/T 0009 SM2Cipher: C1 x, C1 y, C3, C2),
 * as the ECCCIPHERBLOB an SKF caller sends: blob holds UK_SKF_ECCCIPHERBLOB_SIZE(16) bytes. */
static void seal_session_key(EVP_PKEY *to, const uint8_t key[16], ECCCIPHERBLOB *blob)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(to, NULL);
    unsigned char der[256];
    size_t len = sizeof der;
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_encrypt_init(ctx), 1);
    assert_int_equal(EVP_PKEY_encrypt(ctx, der, &len, key, 16), 1);
    EVP_PKEY_CTX_free(ctx);
    const unsigned char *p = der;
    ASN1_SEQUENCE_ANY *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, (long)len);
    assert_non_null(seq);
    assert_int_equal(sk_ASN1_TYPE_num(seq), 4);
    memset(blob, 0, UK_SKF_ECCCIPHERBLOB_SIZE(16));
    der_value(sk_ASN1_TYPE_value(seq, 0), blob->XCoordinate + 32, 32);
    der_value(sk_ASN1_TYPE_value(seq, 1), blob->YCoordinate + 32, 32);
    der_value(sk_ASN1_TYPE_value(seq, 2), blob->HASH, 32);
    der_value(sk_ASN1_TYPE_value(seq, 3), blob->Cipher, 16);
    blob->CipherLen = 16;
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
}

/* SM4 (CBC with iv, or ECB with iv NULL) by OpenSSL; *n: plaintext length in, ciphertext out. */
static void sm4_encrypt(const uint8_t key[16], const uint8_t *iv, bool padding, const uint8_t *in,
                        size_t *n, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int a = 0, b = 0;
    assert_non_null(ctx);
    assert_int_equal(
        EVP_EncryptInit_ex(ctx, iv != NULL ? EVP_sm4_cbc() : EVP_sm4_ecb(), NULL, key, iv), 1);
    assert_int_equal(EVP_CIPHER_CTX_set_padding(ctx, padding ? 1 : 0), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, out, &a, in, (int)*n), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, out + a, &b), 1);
    *n = (size_t)(a + b);
    EVP_CIPHER_CTX_free(ctx);
}

static BLOCKCIPHERPARAM cbc_param(const uint8_t iv[16], ULONG padding)
{
    BLOCKCIPHERPARAM p;
    memset(&p, 0, sizeof p);
    memcpy(p.IV, iv, 16);
    p.IVLen = 16;
    p.PaddingType = padding;
    return p;
}

static void test_skf_session_key_opens_an_openssl_envelope(void **state)
{
    fx *t = *state;
    HCONTAINER c = NULL;
    EVP_PKEY *enc = with_enc_key(t, &c);
    uint8_t key[16], iv[16], msg[100], ct[128], out[160];
    BYTE blob[UK_SKF_ECCCIPHERBLOB_SIZE(16)];
    assert_int_equal(skfc_random(key, sizeof key), 0);
    assert_int_equal(skfc_random(iv, sizeof iv), 0);
    assert_int_equal(skfc_random(msg, sizeof msg), 0);
    seal_session_key(enc, key, (ECCCIPHERBLOB *)blob);
    for (ULONG pad = 0; pad < 2; pad++) {
        size_t n = pad ? sizeof msg : 96; /* without padding: whole blocks */
        size_t ct_len = n;
        sm4_encrypt(key, iv, pad == 1, msg, &ct_len, ct);
        HANDLE k = NULL;
        assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_CBC, blob, sizeof blob, &k), SAR_OK);
        assert_non_null(k);
        /* single shot, with the length protocol first */
        assert_int_equal(t->f.SKF_DecryptInit(k, cbc_param(iv, pad)), SAR_OK);
        ULONG len = 0;
        assert_int_equal(t->f.SKF_Decrypt(k, ct, (ULONG)ct_len, NULL, &len), SAR_OK);
        assert_int_equal(len, n);
        len = 5;
        assert_int_equal(t->f.SKF_Decrypt(k, ct, (ULONG)ct_len, out, &len), SAR_BUFFER_TOO_SMALL);
        assert_int_equal(len, n);
        len = sizeof out;
        assert_int_equal(t->f.SKF_Decrypt(k, ct, (ULONG)ct_len, out, &len), SAR_OK);
        assert_int_equal(len, n);
        assert_memory_equal(out, msg, n);
        /* the operation ended with it */
        assert_int_equal(t->f.SKF_DecryptFinal(k, out, &len), SAR_NOTINITIALIZEERR);
        /* in pieces that split blocks: whole blocks come back, the rest waits */
        assert_int_equal(t->f.SKF_DecryptInit(k, cbc_param(iv, pad)), SAR_OK);
        size_t cuts[] = {7, 33, 16, 0, ct_len - 56}, done = 0, fed = 0;
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            len = 0;
            assert_int_equal(t->f.SKF_DecryptUpdate(k, ct + fed, (ULONG)cuts[i], NULL, &len),
                             SAR_OK);
            ULONG need = len;
            assert_true(need % 16 == 0 && need <= fed + cuts[i] - done);
            len = sizeof out - done;
            assert_int_equal(t->f.SKF_DecryptUpdate(k, ct + fed, (ULONG)cuts[i], out + done, &len),
                             SAR_OK);
            assert_int_equal(len, need);
            fed += cuts[i];
            done += len;
        }
        assert_int_equal(done, pad ? ct_len - 16 : ct_len); /* padding: the last block waits */
        len = 0;
        assert_int_equal(t->f.SKF_DecryptFinal(k, NULL, &len), SAR_OK);
        assert_int_equal(len, n - done);
        len = sizeof out - done;
        assert_int_equal(t->f.SKF_DecryptFinal(k, out + done, &len), SAR_OK);
        assert_int_equal(done + len, n);
        assert_memory_equal(out, msg, n);
        /* closed: the key is gone */
        assert_int_equal(t->f.SKF_CloseHandle(k), SAR_OK);
        assert_int_equal(t->f.SKF_DecryptInit(k, cbc_param(iv, pad)), SAR_INVALIDHANDLEERR);
        assert_int_equal(t->f.SKF_Decrypt(k, ct, (ULONG)ct_len, out, &len), SAR_INVALIDHANDLEERR);
        assert_int_equal(t->f.SKF_CloseHandle(k), SAR_INVALIDHANDLEERR);
    }
    /* ECB, PKCS#5 */
    size_t ct_len = sizeof msg;
    sm4_encrypt(key, NULL, true, msg, &ct_len, ct);
    HANDLE k = NULL;
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_ECB, blob, sizeof blob, &k), SAR_OK);
    BLOCKCIPHERPARAM p;
    memset(&p, 0, sizeof p);
    p.PaddingType = 1; /* no IV for ECB */
    assert_int_equal(t->f.SKF_DecryptInit(k, p), SAR_OK);
    ULONG len = sizeof out;
    assert_int_equal(t->f.SKF_Decrypt(k, ct, (ULONG)ct_len, out, &len), SAR_OK);
    assert_int_equal(len, sizeof msg);
    assert_memory_equal(out, msg, sizeof msg);
    /* a key handle dies with its container */
    assert_int_equal(t->f.SKF_CloseContainer(c), SAR_OK);
    assert_int_equal(t->f.SKF_DecryptInit(k, p), SAR_INVALIDHANDLEERR);
    assert_int_equal(t->f.SKF_CloseHandle(k), SAR_INVALIDHANDLEERR);
    EVP_PKEY_free(enc);
}

static void test_skf_session_key_refusals(void **state)
{
    fx *t = *state;
    HCONTAINER c = NULL;
    HANDLE k = NULL;
    uint8_t key[16] = {1, 2, 3}, iv[16] = {9}, ct[48] = {0}, out[64];
    BYTE blob[UK_SKF_ECCCIPHERBLOB_SIZE(16) + 1];
    ECCCIPHERBLOB *cb = (ECCCIPHERBLOB *)blob;
    const ULONG size = UK_SKF_ECCCIPHERBLOB_SIZE(16);
    ULONG len = 0;

    /* no encryption key yet */
    login(t);
    assert_int_equal(t->f.SKF_OpenContainer(t->app, S("sig"), &c), SAR_OK);
    memset(blob, 0, sizeof blob);
    cb->CipherLen = 16;
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_CBC, blob, size, &k), SAR_KEYNOTFOUNTERR);
    assert_int_equal(t->f.SKF_CloseContainer(c), SAR_OK);
    EVP_PKEY *enc = with_enc_key(t, &c);
    seal_session_key(enc, key, cb);
    /* not logged in */
    assert_int_equal(t->f.SKF_ClearSecureState(t->app), SAR_OK);
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_CBC, blob, size, &k),
                     SAR_USER_NOT_LOGGED_IN);
    login(t);
    /* algorithms the token has no cipher for */
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM1_CBC, blob, size, &k),
                     SAR_NOTSUPPORTYETERR);
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_OFB, blob, size, &k),
                     SAR_NOTSUPPORTYETERR);
    /* lengths: of the blob, of the key in it */
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_CBC, blob, size - 1, &k),
                     SAR_INDATALENERR);
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_CBC, blob, size + 1, &k),
                     SAR_INDATALENERR);
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_CBC, blob, 100, &k), SAR_INDATALENERR);
    cb->CipherLen = 17;
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_CBC, blob, size + 1, &k),
                     SAR_INDATALENERR);
    cb->CipherLen = 16;
    /* tampered: C3, C2, C1 */
    cb->HASH[5] ^= 1;
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_CBC, blob, size, &k), SAR_INDATAERR);
    cb->HASH[5] ^= 1;
    cb->Cipher[15] ^= 0x80;
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_CBC, blob, size, &k), SAR_INDATAERR);
    cb->Cipher[15] ^= 0x80;
    cb->XCoordinate[0] = 1; /* not right-aligned */
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_CBC, blob, size, &k), SAR_INDATAERR);
    cb->XCoordinate[0] = 0;
    assert_null(k);
    /* a fault injected into the new functions like into any other */
    set_controls(t, 0, SAR_FAIL, false, false, 0);
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_CBC, blob, size, &k), SAR_FAIL);
    assert_int_equal(t->f.SKF_ImportSessionKey(c, SGD_SM4_CBC, blob, size, &k), SAR_OK);
    assert_non_null(k);

    /* parameters */
    BLOCKCIPHERPARAM p = cbc_param(iv, 0);
    p.IVLen = 8;
    assert_int_equal(t->f.SKF_DecryptInit(k, p), SAR_INVALIDPARAMERR);
    p = cbc_param(iv, 2);
    assert_int_equal(t->f.SKF_DecryptInit(k, p), SAR_INVALIDPARAMERR);
    assert_int_equal(t->f.SKF_DecryptInit(c, cbc_param(iv, 0)), SAR_INVALIDHANDLEERR);
    /* no Init, or none any more */
    len = sizeof out;
    assert_int_equal(t->f.SKF_Decrypt(k, ct, 16, out, &len), SAR_NOTINITIALIZEERR);
    assert_int_equal(t->f.SKF_DecryptUpdate(k, ct, 16, out, &len), SAR_NOTINITIALIZEERR);
    assert_int_equal(t->f.SKF_DecryptFinal(k, out, &len), SAR_NOTINITIALIZEERR);
    /* a partial block at the end, without padding: refused, and the decryption is over */
    assert_int_equal(t->f.SKF_DecryptInit(k, cbc_param(iv, 0)), SAR_OK);
    len = 8;
    assert_int_equal(t->f.SKF_DecryptUpdate(k, ct, 20, out, &len), SAR_BUFFER_TOO_SMALL);
    assert_int_equal(len, 16);
    assert_int_equal(t->f.SKF_DecryptUpdate(k, ct, 20, out, &len), SAR_OK);
    assert_int_equal(len, 16);
    len = sizeof out;
    assert_int_equal(t->f.SKF_DecryptFinal(k, out, &len), SAR_INDATALENERR);
    assert_int_equal(t->f.SKF_DecryptFinal(k, out, &len), SAR_NOTINITIALIZEERR);
    assert_int_equal(t->f.SKF_DecryptInit(k, cbc_param(iv, 0)), SAR_OK);
    len = sizeof out;
    assert_int_equal(t->f.SKF_Decrypt(k, ct, 40, out, &len), SAR_INDATALENERR);
    /* with padding: what does not end in PKCS#5 */
    uint8_t plain[32], bad[48];
    size_t n = sizeof plain;
    memset(plain, 0x00, sizeof plain);
    sm4_encrypt(key, iv, false, plain, &n, bad); /* last byte 0: no valid padding */
    assert_int_equal(t->f.SKF_DecryptInit(k, cbc_param(iv, 1)), SAR_OK);
    len = sizeof out;
    assert_int_equal(t->f.SKF_Decrypt(k, bad, (ULONG)n, out, &len), SAR_DECRYPTPADERR);
    assert_int_equal(t->f.SKF_DecryptInit(k, cbc_param(iv, 1)), SAR_OK);
    len = sizeof out;
    assert_int_equal(t->f.SKF_Decrypt(k, bad, 0, out, &len), SAR_INDATALENERR); /* no block */
    assert_int_equal(t->f.SKF_DecryptInit(k, cbc_param(iv, 0)), SAR_OK);
    assert_int_equal(t->f.SKF_DecryptUpdate(k, NULL, 16, out, &len), SAR_INVALIDPARAMERR);
    assert_int_equal(t->f.SKF_DecryptFinal(k, out, NULL), SAR_INVALIDPARAMERR);
    /* closing a key handle does not close the container; a hash handle still closes */
    assert_int_equal(t->f.SKF_CloseHandle(k), SAR_OK);
    assert_int_equal(t->f.SKF_DecryptFinal(k, out, &len), SAR_INVALIDHANDLEERR);
    assert_int_equal(t->f.SKF_CloseHandle(k), SAR_INVALIDHANDLEERR);
    assert_int_equal(t->f.SKF_CloseHandle(c), SAR_INVALIDHANDLEERR);
    HANDLE h = NULL;
    assert_int_equal(t->f.SKF_DigestInit(t->dev, SGD_SM3, NULL, NULL, 0, &h), SAR_OK);
    assert_int_equal(t->f.SKF_CloseHandle(h), SAR_OK);
    assert_int_equal(t->f.SKF_CloseContainer(c), SAR_OK);
    EVP_PKEY_free(enc);
}

/* ---- RSA ---- */

static void test_skf_rsa_container_signs_pkcs1(void **state)
{
    fx *t = *state;
    HCONTAINER c = NULL;
    RSAPUBLICKEYBLOB pub, exported;
    ULONG len = 0, type = 0;
    ECCPUBLICKEYBLOB ecc;
    login(t);
    assert_int_equal(t->f.SKF_CreateContainer(t->app, S("rsa"), &c), SAR_OK);
    assert_int_equal(t->f.SKF_GenRSAKeyPair(c, 1000, &pub), SAR_MODULUSLENERR);
    assert_int_equal(t->f.SKF_GenRSAKeyPair(c, 2048, &pub), SAR_OK);
    assert_int_equal(t->f.SKF_GenECCKeyPair(c, SGD_SM2_1, &ecc), SAR_KEYUSAGEERR);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_OK);
    assert_int_equal(type, UK_SKF_CONTAINER_RSA);
    assert_int_equal(pub.AlgID, SGD_RSA);
    assert_int_equal(pub.BitLen, 2048);
    len = sizeof exported;
    assert_int_equal(t->f.SKF_ExportPublicKey(c, TRUE, (BYTE *)&exported, &len), SAR_OK);
    assert_int_equal(len, sizeof exported);
    assert_memory_equal(&exported, &pub, sizeof pub);

    /* sign a SHA-256 DigestInfo; OpenSSL verifies it as a plain RSA/SHA-256 signature */
    static const char msg[] = "RSA still exists";
    uint8_t di[51] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    unsigned int dlen = 0;
    assert_int_equal(EVP_Digest(msg, sizeof msg - 1, di + 19, &dlen, EVP_sha256(), NULL), 1);
    BYTE sig[256];
    ULONG sig_len = 0;
    assert_int_equal(t->f.SKF_RSASignData(c, di, sizeof di, NULL, &sig_len), SAR_OK);
    assert_int_equal(sig_len, 256);
    sig_len = 100;
    assert_int_equal(t->f.SKF_RSASignData(c, di, sizeof di, sig, &sig_len), SAR_BUFFER_TOO_SMALL);
    assert_int_equal(sig_len, 256);
    assert_int_equal(t->f.SKF_RSASignData(c, di, sizeof di, sig, &sig_len), SAR_OK);

    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *n = BN_bin2bn(pub.Modulus, sizeof pub.Modulus, NULL);
    BIGNUM *e = BN_bin2bn(pub.PublicExponent, sizeof pub.PublicExponent, NULL);
    assert_non_null(bld);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e), 1);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(kctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(kctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, pkey), 1);
    assert_int_equal(EVP_DigestVerify(m, sig, sig_len, (const unsigned char *)msg, sizeof msg - 1),
                     1);
    EVP_MD_CTX_free(m);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(kctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
}

/* ---- handles ---- */

static void test_skf_closed_and_foreign_handles_are_refused(void **state)
{
    fx *t = *state;
    HCONTAINER c = NULL;
    ULONG type = 0, len = 0;
    int local = 0;
    assert_int_equal(t->f.SKF_OpenContainer(t->app, S("sig"), &c), SAR_OK);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_OK);
    /* the wrong kind of handle, a made-up one, a pointer into our stack, NULL */
    assert_int_equal(t->f.SKF_GetContainerType(t->app, &type), SAR_INVALIDHANDLEERR);
    assert_int_equal(t->f.SKF_EnumContainer(c, NULL, &len), SAR_INVALIDHANDLEERR);
    assert_int_equal(t->f.SKF_GetContainerType((HANDLE)(uintptr_t)0x1234, &type),
                     SAR_INVALIDHANDLEERR);
    assert_int_equal(t->f.SKF_GetContainerType(&local, &type), SAR_INVALIDHANDLEERR);
    assert_int_equal(t->f.SKF_GetContainerType(NULL, &type), SAR_INVALIDHANDLEERR);
    /* closed, closed twice */
    assert_int_equal(t->f.SKF_CloseContainer(c), SAR_OK);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_INVALIDHANDLEERR);
    assert_int_equal(t->f.SKF_CloseContainer(c), SAR_INVALIDHANDLEERR);
    /* closing the device closes what was opened through it */
    assert_int_equal(t->f.SKF_OpenContainer(t->app, S("sig"), &c), SAR_OK);
    assert_int_equal(t->f.SKF_DisConnectDev(t->dev), SAR_OK);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_INVALIDHANDLEERR);
    assert_int_equal(t->f.SKF_EnumContainer(t->app, NULL, &len), SAR_INVALIDHANDLEERR);
    assert_int_equal(t->f.SKF_DisConnectDev(t->dev), SAR_INVALIDHANDLEERR);
}

/* ---- removal and events ---- */

static void test_skf_removed_device_stays_dead_until_reconnected(void **state)
{
    fx *t = *state;
    ULONG retry = 0, st = 9, len = 0;
    DEVINFO info;
    assert_int_equal(skf_dev_set_present(t->dir, "ukey0", false), 0);
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, USER_TYPE, S(USERPIN), &retry), SAR_DEVICE_REMOVED);
    assert_int_equal(t->f.SKF_GetDevInfo(t->dev, &info), SAR_DEVICE_REMOVED);
    assert_int_equal(t->f.SKF_GetDevState(S("ukey0"), &st), SAR_OK);
    assert_int_equal(st, DEV_ABSENT_STATE);
    assert_int_equal(t->f.SKF_EnumDev(TRUE, NULL, &len), SAR_OK);
    assert_int_equal(len, 1); /* the empty list: just the final NUL */
    DEVHANDLE d = NULL;
    assert_int_equal(t->f.SKF_ConnectDev(S("ukey0"), &d), SAR_DEVICE_REMOVED);
    /* back in: the old connection is still dead, a new one works */
    assert_int_equal(skf_dev_set_present(t->dir, "ukey0", true), 0);
    assert_int_equal(t->f.SKF_GetDevInfo(t->dev, &info), SAR_DEVICE_REMOVED);
    assert_int_equal(t->f.SKF_DisConnectDev(t->dev), SAR_OK);
    connect_app(t);
    login(t);
}

typedef struct waiter {
    fx *t;
    char name[SKF_NAME_MAX];
    ULONG event, rv;
} waiter;

static void *wait_thread(void *arg)
{
    waiter *w = arg;
    ULONG len = sizeof w->name;
    w->rv = w->t->f.SKF_WaitForDevEvent(w->name, &len, &w->event);
    return NULL;
}

static void wait_event(fx *t, waiter *w, bool present)
{
    pthread_t th;
    memset(w, 0, sizeof *w);
    w->t = t;
    assert_int_equal(pthread_create(&th, NULL, wait_thread, w), 0);
    usleep(50000);
    assert_int_equal(skf_dev_set_present(t->dir, "ukey0", present), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
}

static void test_skf_wait_for_dev_event_reports_removal_insertion_and_cancel(void **state)
{
    fx *t = *state;
    waiter w;
    wait_event(t, &w, false);
    assert_int_equal(w.rv, SAR_OK);
    assert_string_equal(w.name, "ukey0");
    assert_int_equal(w.event, UK_SKF_DEV_EVENT_REMOVED);
    wait_event(t, &w, true);
    assert_int_equal(w.rv, SAR_OK);
    assert_string_equal(w.name, "ukey0");
    assert_int_equal(w.event, UK_SKF_DEV_EVENT_INSERTED);
    /* a cancel from another thread ends a wait; one given before the wait is not lost */
    pthread_t th;
    memset(&w, 0, sizeof w);
    w.t = t;
    assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
    usleep(50000);
    assert_int_equal(t->f.SKF_CancelWaitForDevEvent(), SAR_OK);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(w.rv, SAR_NOT_EVENTERR);
    assert_int_equal(t->f.SKF_CancelWaitForDevEvent(), SAR_OK);
    wait_thread(&w);
    assert_int_equal(w.rv, SAR_NOT_EVENTERR);
}

/* ---- fault and timing controls ---- */

static void test_skf_fail_after_n_calls(void **state)
{
    fx *t = *state;
    ULONG type = 0, retry = 0;
    HCONTAINER c = NULL, n = NULL;
    set_controls(t, 2, SAR_FAIL, false, false, 0);
    assert_int_equal(t->f.SKF_OpenContainer(t->app, S("sig"), &c), SAR_OK);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_OK);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_FAIL); /* the third call */
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_OK);   /* one-shot */
    assert_int_equal(calls_counted(t), 4);

    /* "executed": the call happens, its answer is lost */
    assert_int_equal(t->f.SKF_VerifyPIN(t->app, USER_TYPE, S(USERPIN), &retry), SAR_OK);
    set_controls(t, 0, SAR_DEVICE_REMOVED, true, false, 0);
    assert_int_equal(t->f.SKF_CreateContainer(t->app, S("half"), &n), SAR_DEVICE_REMOVED);
    assert_int_equal(t->f.SKF_OpenContainer(t->app, S("half"), &n), SAR_OK);

    /* "remove": the key is pulled out at that call */
    set_controls(t, 1, SAR_DEVICE_REMOVED, false, true, 0);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_OK);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_DEVICE_REMOVED);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_DEVICE_REMOVED);
    ULONG st = 9;
    assert_int_equal(t->f.SKF_GetDevState(S("ukey0"), &st), SAR_OK);
    assert_int_equal(st, DEV_ABSENT_STATE);
}

static void test_skf_latency_slows_every_call(void **state)
{
    fx *t = *state;
    ULONG type = 0;
    HCONTAINER c = NULL;
    assert_int_equal(t->f.SKF_OpenContainer(t->app, S("sig"), &c), SAR_OK);
    set_controls(t, -1, 0, false, false, 40000);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_OK);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_OK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    assert_true(ms >= 80);
}

/* ---- the openssl command as the judge ---- */

static void write_file(const fx *t, const char *name, const void *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", t->dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Runs the openssl command in the test directory; its exit status, its output in out. */
static int run_openssl(const fx *t, const char *args, char *out, size_t size)
{
    char cmd[1024], path[128];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >out.txt 2>&1", t->dir, getenv("UK_OPENSSL"),
             args);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    snprintf(path, sizeof path, "%s/out.txt", t->dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
    return WEXITSTATUS(st);
}

/* A PKCS#10 request for the container's key, signed by the module (SM2 with SM3). */
static void write_csr(fx *t, HCONTAINER c, ECCPUBLICKEYBLOB *pub)
{
    X509_REQ *req = X509_REQ_new();
    EVP_PKEY *pkey = blob_to_pkey(pub);
    X509_ALGOR *alg = X509_ALGOR_new();
    ASN1_BIT_STRING *bits = ASN1_BIT_STRING_new();
    assert_non_null(req);
    assert_non_null(alg);
    assert_non_null(bits);
    assert_int_equal(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
                                                (const unsigned char *)"张三", -1, -1, 0),
                     1);
    assert_int_equal(X509_REQ_set_pubkey(req, pkey), 1);
    assert_int_equal(X509_ALGOR_set0(alg, OBJ_nid2obj(NID_SM2_with_SM3), V_ASN1_UNDEF, NULL), 1);
    assert_int_equal(X509_REQ_set1_signature_algo(req, alg), 1);
    unsigned char *tbs = NULL, *der = NULL;
    int tbs_len = i2d_re_X509_REQ_tbs(req, &tbs);
    assert_true(tbs_len > 0);
    ECCSIGNATUREBLOB sig;
    module_sign(t, c, pub, tbs, (size_t)tbs_len, &sig);
    int len = sig_der(&sig, &der);
    assert_int_equal(ASN1_BIT_STRING_set(bits, der, len), 1);
    bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
    bits->flags |= ASN1_STRING_FLAG_BITS_LEFT; /* no unused bits */
    X509_REQ_set0_signature(req, bits);
    char path[128];
    snprintf(path, sizeof path, "%s/csr.pem", t->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509_REQ(f, req), 1);
    assert_int_equal(fclose(f), 0);
    OPENSSL_free(tbs);
    OPENSSL_free(der);
    X509_ALGOR_free(alg);
    EVP_PKEY_free(pkey);
    X509_REQ_free(req);
}

static void test_skf_sm2_signatures_verify_with_openssl_command(void **state)
{
    fx *t = *state;
    if (getenv("UK_OPENSSL") == NULL || getenv("UK_OPENSSL")[0] == '\0')
        skip();
    HCONTAINER c = NULL;
    ECCPUBLICKEYBLOB pub;
    ECCSIGNATUREBLOB sig;
    char msg[] = "sign me";
    login(t);
    assert_int_equal(t->f.SKF_CreateContainer(t->app, S("cli"), &c), SAR_OK);
    assert_int_equal(t->f.SKF_GenECCKeyPair(c, SGD_SM2_1, &pub), SAR_OK);
    module_sign(t, c, &pub, msg, sizeof msg - 1, &sig);
    unsigned char *der = NULL;
    int len = sig_der(&sig, &der);
    write_file(t, "sig.der", der, (size_t)len);
    OPENSSL_free(der);
    write_file(t, "msg", msg, sizeof msg - 1);
    EVP_PKEY *pkey = blob_to_pkey(&pub);
    char path[128];
    snprintf(path, sizeof path, "%s/pub.pem", t->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PUBKEY(f, pkey), 1);
    assert_int_equal(fclose(f), 0);
    EVP_PKEY_free(pkey);

    char out[512];
    /* OpenSSL 3.0's dgst has no -vfyopt: -sigopt serves signing and verifying */
    assert_int_equal(
        run_openssl(t, "dgst -sm3 -verify pub.pem -sigopt distid:" ID " -signature sig.der msg",
                    out, sizeof out),
        0);
    assert_non_null(strstr(out, "Verified OK"));
    assert_int_not_equal(
        run_openssl(t, "dgst -sm3 -verify pub.pem -signature sig.der msg", out, sizeof out), 0);
    /* a request signed on the key: req takes -vfyopt, and exits 0 whatever the verdict (3.0),
     * so the verdict is read from its output */
    write_csr(t, c, &pub);
    run_openssl(t, "req -in csr.pem -noout -verify -vfyopt distid:" ID, out, sizeof out);
    assert_non_null(strstr(out, "self-signature verify OK"));
    run_openssl(t, "req -in csr.pem -noout -verify", out, sizeof out);
    assert_non_null(strstr(out, "self-signature verify failure"));
}

static void test_skf_lock_dev_excludes_other_connections(void **state)
{
    fx *t = *state;
    DEVHANDLE d2 = NULL;
    assert_int_equal(t->f.SKF_ConnectDev(S("ukey0"), &d2), SAR_OK);
    assert_int_equal(t->f.SKF_LockDev(t->dev, 0), SAR_OK);
    assert_int_equal(t->f.SKF_LockDev(t->dev, 0), SAR_OK); /* the holder may lock again */
    assert_int_equal(t->f.SKF_LockDev(d2, 50), SAR_TIMEOUTERR);
    assert_int_equal(t->f.SKF_UnlockDev(t->dev), SAR_OK);
    assert_int_equal(t->f.SKF_LockDev(d2, 50), SAR_OK);
    /* disconnecting releases the lock */
    assert_int_equal(t->f.SKF_DisConnectDev(d2), SAR_OK);
    assert_int_equal(t->f.SKF_LockDev(t->dev, 0), SAR_OK);
}

/* Runs the ukskf tool with args; its exit status. */
static int run_tool(const fx *t, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >/dev/null 2>&1", t->dir, getenv("UKSKF_TOOL"),
             args);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_skf_ukskf_tool_provisions_from_files_and_drives_controls(void **state)
{
    fx *t = *state;
    if (getenv("UKSKF_TOOL") == NULL)
        skip();
    char path[128];
    snprintf(path, sizeof path, "%s/key.pem", t->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, t->key, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(f), 0);
    write_file(t, "cert.der", t->cert, t->cert_len);
    assert_int_equal(run_tool(t, "provision --dir . --device ukey1 --serial 42 --container c1"
                                 " --key key.pem --cert cert.der"),
                     0);
    /* refuses to overwrite, refuses a bad PIN, refuses a certificate that is not one */
    assert_int_equal(run_tool(t, "provision --dir . --device ukey1"), 1);
    assert_int_equal(run_tool(t, "provision --dir . --device ukey2 --user-pin 1"), 1);
    assert_int_equal(run_tool(t, "provision --dir . --device ukey2 --container c --cert key.pem"),
                     1);

    DEVHANDLE d = NULL;
    HAPPLICATION a = NULL;
    HCONTAINER c = NULL;
    ULONG len = 0, st = 9, type = 0;
    assert_int_equal(t->f.SKF_ConnectDev(S("ukey1"), &d), SAR_OK);
    assert_int_equal(t->f.SKF_OpenApplication(d, S("ukeyd"), &a), SAR_OK);
    assert_int_equal(t->f.SKF_OpenContainer(a, S("c1"), &c), SAR_OK);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_OK);
    assert_int_equal(type, UK_SKF_CONTAINER_ECC);
    assert_int_equal(t->f.SKF_ExportCertificate(c, TRUE, NULL, &len), SAR_OK);
    assert_int_equal(len, t->cert_len);

    assert_int_equal(run_tool(t, "remove --dir . --device ukey1"), 0);
    assert_int_equal(t->f.SKF_GetDevState(S("ukey1"), &st), SAR_OK);
    assert_int_equal(st, DEV_ABSENT_STATE);
    assert_int_equal(run_tool(t, "insert --dir . --device ukey1"), 0);
    assert_int_equal(t->f.SKF_GetContainerType(c, &type), SAR_DEVICE_REMOVED);

    assert_int_equal(run_tool(t, "ctl --dir . fail-after 1 0A000001"), 0);
    assert_int_equal(run_tool(t, "ctl --dir . fail-after 1 zz"), 1);
    assert_int_equal(t->f.SKF_GetDevState(S("ukey1"), &st), SAR_OK);
    assert_int_equal(t->f.SKF_GetDevState(S("ukey1"), &st), SAR_FAIL);
    assert_int_equal(calls_counted(t), 2);
    assert_int_equal(run_tool(t, "ctl --dir . clear"), 0);
    assert_int_equal(t->f.SKF_DisConnectDev(d), SAR_OK);
    snprintf(path, sizeof path, "%s/ukey2.dev", t->dir);
    assert_int_equal(access(path, F_OK), -1); /* nothing half-made */
    unlink(path);
}

static void test_skf_application_create_and_delete(void **state)
{
    fx *t = *state;
    HAPPLICATION a = NULL;
    ULONG retry = 0, len = 0;
    assert_int_equal(t->f.SKF_CreateApplication(t->dev, S("ukeyd"), S("12345678"), 3, S("123456"),
                                                3, SECURE_ANYONE_ACCOUNT, &a),
                     SAR_APPLICATION_EXISTS);
    assert_int_equal(t->f.SKF_CreateApplication(t->dev, S("second"), S("87654321"), 5, S("1234"), 5,
                                                SECURE_ANYONE_ACCOUNT, &a),
                     SAR_PIN_LEN_RANGE);
    assert_int_equal(t->f.SKF_CreateApplication(t->dev, S("second"), S("87654321"), 5, S("654321"),
                                                5, SECURE_ANYONE_ACCOUNT, &a),
                     SAR_OK);
    assert_int_equal(t->f.SKF_EnumApplication(t->dev, NULL, &len), SAR_OK);
    assert_int_equal(len, sizeof "ukeyd\0second\0");
    /* deleting needs that application's admin PIN */
    assert_int_equal(t->f.SKF_DeleteApplication(t->dev, S("second")), SAR_USER_NOT_LOGGED_IN);
    assert_int_equal(t->f.SKF_VerifyPIN(a, ADMIN_TYPE, S("87654321"), &retry), SAR_OK);
    assert_int_equal(t->f.SKF_DeleteApplication(t->dev, S("second")), SAR_OK);
    assert_int_equal(t->f.SKF_DeleteApplication(t->dev, S("second")), SAR_APPLICATION_NOT_EXISTS);
    assert_int_equal(t->f.SKF_ClearSecureState(a), SAR_INVALIDHANDLEERR); /* its handle died */
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_skf_enum_dev_is_a_multistring_with_length_protocol),
        T(test_skf_connect_reports_device_info_and_applications),
        T(test_skf_wrong_pin_counts_down_locks_and_persists),
        T(test_skf_right_pin_restores_retries_and_change_pin),
        T(test_skf_user_pin_required_before_key_use),
        T(test_skf_containers_create_enum_delete),
        T(test_skf_files_rights_sizes_and_persistence),
        T(test_skf_certificates_import_export),
        T(test_skf_sm2_generated_key_signs_for_openssl_with_default_id),
        T(test_skf_provisioned_key_matches_its_certificate),
        T(test_skf_envelope_import_good),
        T(test_skf_envelope_import_bad_is_refused_with_the_right_code),
        T(test_skf_session_key_opens_an_openssl_envelope),
        T(test_skf_session_key_refusals),
        T(test_skf_rsa_container_signs_pkcs1),
        T(test_skf_closed_and_foreign_handles_are_refused),
        T(test_skf_removed_device_stays_dead_until_reconnected),
        T(test_skf_wait_for_dev_event_reports_removal_insertion_and_cancel),
        T(test_skf_fail_after_n_calls),
        T(test_skf_latency_slows_every_call),
        T(test_skf_sm2_signatures_verify_with_openssl_command),
        T(test_skf_application_create_and_delete),
        T(test_skf_lock_dev_excludes_other_connections),
        T(test_skf_ukskf_tool_provisions_from_files_and_drives_controls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
