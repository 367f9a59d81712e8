/*
 * fake_p11.c - broken PKCS#11 modules for the error paths of the p11 loader
 * and driver (tests/unit/test_p11.c). One source, one shared library per
 * behaviour (tests/p11/CMakeLists.txt):
 *
 *   FAKE_P11_NO_SYMBOLS  exports neither C_GetInterface nor C_GetFunctionList
 *   FAKE_P11_INIT_FAILS  C_Initialize answers CKR_GENERAL_ERROR
 *   FAKE_P11_GARBAGE     C_GetSlotList announces 2 slots, then claims to have
 *                        written 50 into room for 2
 *   FAKE_P11_SPARSE      one slot with an initialised token; a function list
 *                        with most entries NULL, and C_FindObjects that
 *                        returns more handles than asked for
 */
#include <string.h>

#include <p11-kit/pkcs11.h>

#define EXPORT __attribute__((visibility("default")))

#ifdef FAKE_P11_NO_SYMBOLS
EXPORT int fake_p11_nothing_here(void);
EXPORT int fake_p11_nothing_here(void)
{
    return 0;
}
#else

static void pad(unsigned char *dst, size_t n, const char *s)
{
    memset(dst, ' ', n);
    memcpy(dst, s, strlen(s) < n ? strlen(s) : n);
}

static CK_RV fake_initialize(CK_VOID_PTR args)
{
    (void)args;
#ifdef FAKE_P11_INIT_FAILS
    return CKR_GENERAL_ERROR;
#else
    return CKR_OK;
#endif
}

static CK_RV fake_finalize(CK_VOID_PTR r)
{
    (void)r;
    return CKR_OK;
}

static CK_RV fake_get_slot_list(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR n)
{
    (void)present;
#ifdef FAKE_P11_GARBAGE
    if (list == NULL)
        *n = 2;
    else
        *n = 50; /* the lie: only 2 fit */
#else
    if (list != NULL) {
        if (*n < 1)
            return CKR_BUFFER_TOO_SMALL;
        list[0] = 7;
    }
    *n = 1;
#endif
    return CKR_OK;
}

static CK_RV fake_get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
    if (slot != 7)
        return CKR_SLOT_ID_INVALID;
    memset(info, 0, sizeof(*info));
    pad(info->slotDescription, sizeof(info->slotDescription), "Fake slot");
    pad(info->manufacturerID, sizeof(info->manufacturerID), "ukeyd tests");
    info->flags = CKF_TOKEN_PRESENT;
    return CKR_OK;
}

static CK_RV fake_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    if (slot != 7)
        return CKR_SLOT_ID_INVALID;
    memset(info, 0, sizeof(*info));
    pad(info->label, sizeof(info->label), "fake token");
    pad(info->manufacturerID, sizeof(info->manufacturerID), "ukeyd tests");
    pad(info->model, sizeof(info->model), "sparse");
    pad(info->serialNumber, sizeof(info->serialNumber), "FAKE0001");
    info->flags = CKF_TOKEN_INITIALIZED | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED;
    info->ulMaxPinLen = 0xffffffffu; /* garbage bounds the driver must not trust */
    info->ulMinPinLen = 0xffffffffu;
    return CKR_OK;
}

static CK_RV fake_open_session(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
                               CK_SESSION_HANDLE_PTR h)
{
    (void)flags;
    (void)app;
    (void)notify;
    if (slot != 7)
        return CKR_SLOT_ID_INVALID;
    *h = 1;
    return CKR_OK;
}

static CK_RV fake_close_session(CK_SESSION_HANDLE h)
{
    (void)h;
    return CKR_OK;
}

static CK_RV fake_find_init(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
    (void)h;
    (void)t;
    (void)n;
    return CKR_OK;
}

static CK_RV fake_find(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max, CK_ULONG_PTR n)
{
    (void)h;
    if (max > 0)
        out[0] = 42;
    *n = max + 1000; /* more than asked for: garbage */
    return CKR_OK;
}

static CK_RV fake_find_final(CK_SESSION_HANDLE h)
{
    (void)h;
    return CKR_OK;
}

static CK_FUNCTION_LIST fake_list = {
    .version = {2, 40},
    .C_Initialize = fake_initialize,
    .C_Finalize = fake_finalize,
    .C_GetSlotList = fake_get_slot_list,
    .C_GetSlotInfo = fake_get_slot_info,
    .C_GetTokenInfo = fake_get_token_info,
    .C_OpenSession = fake_open_session,
    .C_CloseSession = fake_close_session,
    .C_FindObjectsInit = fake_find_init,
    .C_FindObjects = fake_find,
    .C_FindObjectsFinal = fake_find_final,
    /* everything else NULL: the loader must put its stubs there */
};

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out);
EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
    *out = &fake_list;
    return CKR_OK;
}
#endif
