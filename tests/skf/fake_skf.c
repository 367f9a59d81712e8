/*
 * fake_skf.c - an SKF module that answers garbage, for the adapter's checks (test_skf_driver):
 * built with 4-byte ULONG as libfake_skf_garbage.so. Its only device, "dev0", is listed through a
 * length protocol that lies (the second SKF_EnumDev reports more bytes than it was given room
 * for) on the first two scans and every odd one after, and correctly on the other ones;
 * SKF_ConnectDev then answers SAR_OK with a NULL handle. Its digital envelopes open, but
 * SKF_DecryptUpdate claims to have written more than it was given room for; SKF_CloseHandle
 * counts the key handles closed (fake_skf_closed). Nothing here may crash or be trusted by
 * ukeyd.
 */
#define UK_SKF_DECLARE_FUNCTIONS
#include <string.h>

#include "uk_skf_abi.h"

static unsigned scans;

ULONG SKF_EnumDev(BOOL bPresent, LPSTR szNameList, ULONG *pulSize)
{
    (void)bPresent;
    static const char list[] = "dev0\0"; /* with the string's own NUL: the double NUL */
    if (szNameList == NULL) {
        scans++;
        *pulSize = sizeof(list);
        return SAR_OK;
    }
    if (*pulSize < sizeof(list))
        return SAR_BUFFER_TOO_SMALL;
    memcpy(szNameList, list, sizeof(list));
    /* grew: garbage; twice in a row first (one failed scan alone is forgiven) */
    *pulSize = scans <= 2 || scans % 2 == 1 ? sizeof(list) + 100 : sizeof(list);
    return SAR_OK;
}

ULONG SKF_ConnectDev(LPSTR szName, DEVHANDLE *phDev)
{
    (void)szName;
    *phDev = NULL; /* "success" without a handle */
    return SAR_OK;
}

ULONG SKF_OpenApplication(DEVHANDLE hDev, LPSTR szAppName, HAPPLICATION *phApplication)
{
    (void)hDev;
    (void)szAppName;
    *phApplication = NULL;
    return SAR_APPLICATION_NOT_EXISTS;
}

static unsigned closed;

/* Key handles closed so far (the test finds it with dlsym). */
__attribute__((visibility("default"))) unsigned fake_skf_closed(void);
unsigned fake_skf_closed(void)
{
    return closed;
}

ULONG SKF_ImportSessionKey(HCONTAINER hContainer, ULONG ulAlgId, BYTE *pbWrapedData,
                           ULONG ulWrapedLen, HANDLE *phKey)
{
    (void)hContainer;
    (void)ulAlgId;
    (void)pbWrapedData;
    (void)ulWrapedLen;
    *phKey = (HANDLE)&closed;
    return SAR_OK;
}

ULONG SKF_DecryptInit(HANDLE hKey, BLOCKCIPHERPARAM DecryptParam)
{
    (void)hKey;
    (void)DecryptParam;
    return SAR_OK;
}

ULONG SKF_DecryptUpdate(HANDLE hKey, BYTE *pbEncryptedData, ULONG ulEncryptedLen, BYTE *pbData,
                        ULONG *pulDataLen)
{
    (void)hKey;
    (void)pbEncryptedData;
    (void)pbData;
    *pulDataLen = ulEncryptedLen + 16; /* "wrote" past the room it had */
    return SAR_OK;
}

ULONG SKF_DecryptFinal(HANDLE hKey, BYTE *pbDecryptedData, ULONG *pulDecryptedDataLen)
{
    (void)hKey;
    (void)pbDecryptedData;
    *pulDecryptedDataLen = 0;
    return SAR_OK;
}

ULONG SKF_CloseHandle(HANDLE hHandle)
{
    if (hHandle == (HANDLE)&closed)
        closed++;
    return SAR_OK;
}
