/*
 * uk_p11_int.h - inside the p11 module: the function table and the one
 * CK_RV -> uk_err translation. Only files of daemon/token/p11 include it (and
 * so <p11-kit/pkcs11.h>).
 */
#ifndef UK_P11_INT_H
#define UK_P11_INT_H

#include <p11-kit/pkcs11.h>

#include "uk_p11.h"

/*
 * The functions ukeyd calls (X-macro: name, parameter list, argument names).
 * Every entry of a module's table starts as a stub that returns
 * CKR_FUNCTION_NOT_SUPPORTED and is replaced only by a non-NULL pointer the
 * module gave.
 */
#define UK__P11_FUNCS(X)                                                                           \
    X(C_Initialize, (CK_VOID_PTR a), (a))                                                          \
    X(C_Finalize, (CK_VOID_PTR a), (a))                                                            \
    X(C_GetSlotList, (CK_BBOOL a, CK_SLOT_ID_PTR b, CK_ULONG_PTR c), (a, b, c))                    \
    X(C_GetSlotInfo, (CK_SLOT_ID a, CK_SLOT_INFO_PTR b), (a, b))                                   \
    X(C_GetTokenInfo, (CK_SLOT_ID a, CK_TOKEN_INFO_PTR b), (a, b))                                 \
    X(C_WaitForSlotEvent, (CK_FLAGS a, CK_SLOT_ID_PTR b, CK_VOID_PTR c), (a, b, c))                \
    X(C_GetMechanismInfo, (CK_SLOT_ID a, CK_MECHANISM_TYPE b, CK_MECHANISM_INFO_PTR c), (a, b, c)) \
    X(C_OpenSession,                                                                               \
      (CK_SLOT_ID a, CK_FLAGS b, CK_VOID_PTR c, CK_NOTIFY d, CK_SESSION_HANDLE_PTR e),             \
      (a, b, c, d, e))                                                                             \
    X(C_CloseSession, (CK_SESSION_HANDLE a), (a))                                                  \
    X(C_GetSessionInfo, (CK_SESSION_HANDLE a, CK_SESSION_INFO_PTR b), (a, b))                      \
    X(C_Login, (CK_SESSION_HANDLE a, CK_USER_TYPE b, CK_UTF8CHAR_PTR c, CK_ULONG d), (a, b, c, d)) \
    X(C_Logout, (CK_SESSION_HANDLE a), (a))                                                        \
    X(C_CreateObject,                                                                              \
      (CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b, CK_ULONG c, CK_OBJECT_HANDLE_PTR d), (a, b, c, d)) \
    X(C_DestroyObject, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b), (a, b))                          \
    X(C_GetAttributeValue,                                                                         \
      (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c, CK_ULONG d), (a, b, c, d))     \
    X(C_FindObjectsInit, (CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b, CK_ULONG c), (a, b, c))         \
    X(C_FindObjects, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE_PTR b, CK_ULONG c, CK_ULONG_PTR d),    \
      (a, b, c, d))                                                                                \
    X(C_FindObjectsFinal, (CK_SESSION_HANDLE a), (a))                                              \
    X(C_SignInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c), (a, b, c))        \
    X(C_Sign, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e),     \
      (a, b, c, d, e))                                                                             \
    X(C_GenerateKeyPair,                                                                           \
      (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_ATTRIBUTE_PTR c, CK_ULONG d,                    \
       CK_ATTRIBUTE_PTR e, CK_ULONG f, CK_OBJECT_HANDLE_PTR g, CK_OBJECT_HANDLE_PTR h),            \
      (a, b, c, d, e, f, g, h))

typedef struct uk__p11_fns {
#define UK__P11_FIELD(name, params, args) CK_RV(*name) params;
    UK__P11_FUNCS(UK__P11_FIELD)
#undef UK__P11_FIELD
} uk__p11_fns;

/* Another reference on m (held by the caller). */
void uk__p11_module_ref(uk_p11_module *m);

/*
 * uk__p11_C_Sign(m, ...) and so on: every call ukeyd makes into a module goes
 * through these, which hold the module's own lock for the call. A module is
 * initialised without CKF_OS_LOCKING_OK (uk_p11.h says why), so ukeyd, not the
 * module, keeps two threads out of it. The caller holds a reference on m and
 * does not hold m's lock (the calls do not nest).
 */
#define UK__P11_UNPAREN(...) __VA_ARGS__
#define UK__P11_DECL(name, params, args)                                                           \
    CK_RV uk__p11_##name(uk_p11_module *m, UK__P11_UNPAREN params);
UK__P11_FUNCS(UK__P11_DECL)
#undef UK__P11_DECL

/*
 * Translates rv of the PKCS#11 call named call into a uk_err and logs
 * "call on 'what': CKR_NAME (0x...) -> REASON (file:line function)" once, at
 * debug level for expected conditions (wrong PIN, token removed, a function
 * the module lacks), as a warning otherwise. CKR_OK gives UK_OK silently.
 * what may be NULL. Any thread.
 */
int uk__p11_err_at(CK_RV rv, const char *call, const char *what, const char *file, int line,
                   const char *func);
#define uk__p11_err(rv, call, what)                                                                \
    uk__p11_err_at((rv), (call), (what), __FILE__, __LINE__, __func__)

/* "CKR_PIN_INCORRECT", or "CKR_VENDOR_DEFINED"/"CKR_UNKNOWN". */
const char *uk__p11_rv_name(CK_RV rv);

/* Copies a blank-padded PKCS#11 string field (no NUL) into out (size >= 1),
 * without the padding; bytes outside printable ASCII become '?'. */
void uk__p11_field(const CK_UTF8CHAR *field, size_t len, char *out, size_t size);

#endif
