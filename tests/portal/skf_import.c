/* portal_skf_import: hands an ENVELOPEDKEYBLOB made by the demo portal's test KMC
 * (examples/portal/kmc.js) to a GM/T 0016 module's SKF_ImportECCKeyPair, as ukeyd's SKF driver
 * will, so that tests/portal/kmc.test.js can check the blob against tests/skf's soft module
 * rather than against our own reading of the standard.
 *
 *   UKSKF_DIR=D portal_skf_import MODULE DEVICE APP CONTAINER USERPIN BLOBFILE
 *
 * Prints `import 0xSAR` (the module's answer) and, when that is SAR_OK, `enc-pub X Y`: the
 * container's encryption public key as the module now reports it (SKF_ExportPublicKey, 32-byte
 * hex coordinates). Exit 0 when SKF_ImportECCKeyPair was called (whatever it answered), 1 when
 * anything before it failed, 2 on bad usage or a blob file whose size is not the one its
 * CipherLen gives (the C call has no length: a short buffer would be read past its end).
 * Built once per ULONG width, like the module (UK_SKF_ULONG_BYTES). */
#include "uk_skf_abi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUNCS(X)                                                                                   \
    X(SKF_ConnectDev)                                                                              \
    X(SKF_DisConnectDev)                                                                           \
    X(SKF_OpenApplication)                                                                         \
    X(SKF_CloseApplication)                                                                        \
    X(SKF_VerifyPIN)                                                                               \
    X(SKF_OpenContainer)                                                                           \
    X(SKF_CloseContainer)                                                                          \
    X(SKF_ImportECCKeyPair)                                                                        \
    X(SKF_ExportPublicKey)

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            unsigned char *p = realloc(buf, cap = cap ? cap * 2 : 1024);
            if (p == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    *len = n;
    return buf;
}

static void hex(const BYTE *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fputs("usage: portal_skf_import MODULE DEVICE APP CONTAINER USERPIN BLOBFILE\n", stderr);
        return 2;
    }
    size_t len = 0;
    unsigned char *blob = read_file(argv[6], &len);
    if (blob == NULL) {
        fprintf(stderr, "portal_skf_import: cannot read %s\n", argv[6]);
        return 1;
    }
    ENVELOPEDKEYBLOB *env = (ENVELOPEDKEYBLOB *)blob;
    if (len < UK_SKF_ENVELOPEDKEYBLOB_SIZE(0) ||
        len != UK_SKF_ENVELOPEDKEYBLOB_SIZE(env->ECCCipherBlob.CipherLen)) {
        fprintf(stderr, "portal_skf_import: %zu bytes is not the size of this blob\n", len);
        free(blob);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "portal_skf_import: %s\n", dlerror());
        free(blob);
        return 1;
    }
#define FIELD(name) name##_fn name;
    struct {
        FUNCS(FIELD)
    } f;
#undef FIELD
    int missing = 0;
#define LOAD(name)                                                                                 \
    {                                                                                              \
        void *p_ = dlsym(lib, #name);                                                              \
        missing |= p_ == NULL;                                                                     \
        memcpy(&f.name, &p_, sizeof p_);                                                           \
    }
    FUNCS(LOAD)
#undef LOAD
    int rc = 1;
    DEVHANDLE dev = NULL;
    HAPPLICATION app = NULL;
    HCONTAINER cont = NULL;
    ULONG retries = 0, rv = 0;
    if (missing) {
        fputs("portal_skf_import: the module lacks a function\n", stderr);
    } else if ((rv = f.SKF_ConnectDev(argv[2], &dev)) != SAR_OK ||
               (rv = f.SKF_OpenApplication(dev, argv[3], &app)) != SAR_OK ||
               (rv = f.SKF_VerifyPIN(app, USER_TYPE, argv[5], &retries)) != SAR_OK ||
               (rv = f.SKF_OpenContainer(app, argv[4], &cont)) != SAR_OK) {
        fprintf(stderr, "portal_skf_import: setting up failed: 0x%08lx\n", (unsigned long)rv);
    } else {
        rv = f.SKF_ImportECCKeyPair(cont, env);
        printf("import 0x%08lx\n", (unsigned long)rv);
        rc = 0;
        if (rv == SAR_OK) {
            ECCPUBLICKEYBLOB pub;
            ULONG n = sizeof pub;
            memset(&pub, 0, sizeof pub);
            rv = f.SKF_ExportPublicKey(cont, FALSE, (BYTE *)&pub, &n);
            if (rv != SAR_OK || n != sizeof pub || pub.BitLen != 256) {
                fprintf(stderr, "portal_skf_import: export failed: 0x%08lx\n", (unsigned long)rv);
                rc = 1;
            } else {
                fputs("enc-pub ", stdout);
                hex(pub.XCoordinate + 32, 32);
                fputs(" ", stdout);
                hex(pub.YCoordinate + 32, 32);
                fputs("\n", stdout);
            }
        }
    }
    if (cont != NULL)
        f.SKF_CloseContainer(cont);
    if (app != NULL)
        f.SKF_CloseApplication(app);
    if (dev != NULL)
        f.SKF_DisConnectDev(dev);
    dlclose(lib);
    free(blob);
    return rc;
}
