/*
 * fake_skf.c - an SKF module that answers garbage, for the adapter's checks (test_skf_driver):
 * built with 4-byte ULONG as libfake_skf_garbage.so. Its only device, "dev0", is listed through a
 * length protocol that lies (the second SKF_EnumDev reports more bytes than it was given room
 * for) on the first two scans and every odd one after, and correctly on the other ones;
 * SKF_ConnectDev then answers SAR_OK with a NULL handle. Nothing here may crash or be trusted by
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
