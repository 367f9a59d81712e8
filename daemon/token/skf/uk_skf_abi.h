/*
 * uk_skf_abi.h - the binary interface of GM/T 0016-2012 (GB/T 35291-2017) "smart token
 * cryptography application interface" (SKF), as vendor modules export it.
 *
 * Written for ukeyd from the standard's text; the spellings of the standard (types, structure and
 * field names, SGD_ and SAR_ constants, SKF_ function names) are kept on purpose, so that code
 * reads like the standard and a vendor's documentation can be checked against it line by line.
 *
 * ULONG width. The standard says ULONG is a 32-bit unsigned integer, and on 32-bit systems and
 * Windows every vendor agrees. Some vendors' Linux x86-64 builds, however, were compiled from a
 * header saying `typedef unsigned long ULONG;`, so their ULONG (and with it every structure field,
 * every in/out length and BOOL) is 8 bytes. Calling such a module with 4-byte ULONG pointers makes
 * it write 8 bytes into 4: a memory error in our process. The width is a property of the module,
 * so it will be a per-module option in the configuration.
 *
 * This header describes ONE width per translation unit: define UK_SKF_ULONG_BYTES to 4 (the
 * default, the standard) or 8 before including it. Code that must talk to both kinds of module
 * (the driver) compiles its adapter twice, once per width, and gives the two copies different
 * names; the soft test module and the ABI test are built twice the same way. A macro parameter
 * was chosen over two hand-written struct families because there is then exactly one text of
 * each structure, which cannot drift between the widths; the layouts of both are pinned below by
 * _Static_assert and again at run time by tests/skf/test_skf_abi.c.
 *
 * With 8-byte ULONG, BOOL is 8 bytes as well (those headers say `typedef long BOOL;`). BOOL
 * appears only as a by-value argument, where a wider 0/1 is read correctly by either kind of
 * callee, and as the out-parameter of SKF_GetPINInfo, whose storage must match the module.
 *
 * Packing. Every structure is #pragma pack(1): the standard's layouts have no padding (ULONG
 * fields follow odd-sized byte arrays, e.g. ECCCIPHERBLOB.CipherLen at offset 160 and
 * DEVINFO.AlgSymCap at offset 198). Calling convention: the platform's default C convention
 * (cdecl / System V); Windows modules use __stdcall, which does not concern ukeyd.
 *
 * Big numbers (ECC coordinates, private keys, signature r and s) are big-endian and right-aligned
 * in 64-byte fields: a 256-bit SM2 value occupies bytes 32..63, bytes 0..31 are zero. RSA values
 * are big-endian in fields sized for 2048 bits; BitLen tells the real length (right-aligned
 * too).
 *
 * Name lists (SKF_EnumDev, SKF_EnumApplication, SKF_EnumContainer) are multi-strings: each
 * name ends with one NUL, the list with a second NUL. Every output buffer follows one protocol:
 * a NULL buffer asks for the required length (written to *pulLen, SAR_OK); a buffer too small
 * returns SAR_BUFFER_TOO_SMALL with the required length in *pulLen.
 *
 * This header never includes pcsc-lite's wintypes.h names (ULONG, BYTE, BOOL, HANDLE also exist
 * there with other widths): including both in one translation unit is refused below.
 */
#ifndef UK_SKF_ABI_H
#define UK_SKF_ABI_H

#include <stddef.h>
#include <stdint.h>

#if defined(__wintypes_h__) || defined(__winscard_h__)
#error "uk_skf_abi.h and pcsc-lite's wintypes.h define the same names with other widths"
#endif

#ifndef UK_SKF_ULONG_BYTES
#define UK_SKF_ULONG_BYTES 4
#endif

/* ---- base types (GM/T 0016-2012 5.1) ---- */

typedef int8_t INT8;
typedef int16_t INT16;
typedef int32_t INT32;
typedef uint8_t UINT8;
typedef uint16_t UINT16;
typedef uint32_t UINT32;
#if UK_SKF_ULONG_BYTES == 4
typedef int32_t BOOL;
typedef int32_t LONG;
typedef uint32_t ULONG;
#elif UK_SKF_ULONG_BYTES == 8
typedef int64_t BOOL;
typedef int64_t LONG;
typedef uint64_t ULONG;
#else
#error "UK_SKF_ULONG_BYTES must be 4 or 8"
#endif
typedef UINT8 BYTE;
typedef char CHAR;
typedef INT16 SHORT;
typedef UINT16 USHORT;
typedef UINT32 UINT;
typedef UINT16 WORD;
typedef ULONG DWORD;
typedef UINT32 FLAGS;
typedef CHAR *LPSTR;
typedef void *HANDLE;
typedef HANDLE DEVHANDLE;
typedef HANDLE HAPPLICATION;
typedef HANDLE HCONTAINER;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

/* ---- algorithm identifiers (GM/T 0006, as listed in GM/T 0016 appendix A) ---- */

#define SGD_SM1_ECB   0x00000101u
#define SGD_SM1_CBC   0x00000102u
#define SGD_SM1_CFB   0x00000104u
#define SGD_SM1_OFB   0x00000108u
#define SGD_SM1_MAC   0x00000110u
#define SGD_SSF33_ECB 0x00000201u
#define SGD_SSF33_CBC 0x00000202u
#define SGD_SSF33_CFB 0x00000204u
#define SGD_SSF33_OFB 0x00000208u
#define SGD_SSF33_MAC 0x00000210u
#define SGD_SM4_ECB   0x00000401u /* "SMS4" in older texts */
#define SGD_SM4_CBC   0x00000402u
#define SGD_SM4_CFB   0x00000404u
#define SGD_SM4_OFB   0x00000408u
#define SGD_SM4_MAC   0x00000410u

#define SGD_RSA   0x00010000u
#define SGD_SM2_1 0x00020100u /* SM2 signature */
#define SGD_SM2_2 0x00020200u /* SM2 key exchange */
#define SGD_SM2_3 0x00020400u /* SM2 encryption */

#define SGD_SM3    0x00000001u
#define SGD_SHA1   0x00000002u
#define SGD_SHA256 0x00000004u

/* ---- other constants ---- */

#define ADMIN_TYPE 0u /* PIN types */
#define USER_TYPE  1u

#define SECURE_NEVER_ACCOUNT  0x00000000u /* file rights */
#define SECURE_ADM_ACCOUNT    0x00000001u
#define SECURE_USER_ACCOUNT   0x00000010u
#define SECURE_ANYONE_ACCOUNT 0x000000FFu

#define DEV_ABSENT_STATE  0x00000000u /* SKF_GetDevState */
#define DEV_PRESENT_STATE 0x00000001u
#define DEV_UNKNOW_STATE  0x00000002u

/* SKF_WaitForDevEvent *pulEvent */
#define UK_SKF_DEV_EVENT_INSERTED 1u
#define UK_SKF_DEV_EVENT_REMOVED  2u

/* SKF_GetContainerType *pulContainerType */
#define UK_SKF_CONTAINER_EMPTY 0u
#define UK_SKF_CONTAINER_RSA   1u
#define UK_SKF_CONTAINER_ECC   2u

/* ENVELOPEDKEYBLOB.Version */
#define UK_SKF_ENVELOPED_KEY_VERSION 1u

/* Name and PIN lengths the standard sets (names shorter than 64 bytes, device label 32). */
#define UK_SKF_NAME_MAX  64u /* including the NUL */
#define UK_SKF_LABEL_MAX 32u

#define MAX_RSA_MODULUS_LEN          256u
#define MAX_RSA_EXPONENT_LEN         4u
#define ECC_MAX_XCOORDINATE_BITS_LEN 512u
#define ECC_MAX_YCOORDINATE_BITS_LEN 512u
#define ECC_MAX_MODULUS_BITS_LEN     512u
#define MAX_IV_LEN                   32u

/* ---- error codes (GM/T 0016-2012 appendix A.2) ----
 * Codes above SAR_REACH_MAX_CONTAINER_COUNT are vendor-specific and contradict each other
 * between vendors (0x0A000033 is "no create-file right" for one, "auth blocked" for another):
 * the driver must treat any code it does not know as a plain failure. */

#define SAR_OK                        0x00000000u
#define SAR_FAIL                      0x0A000001u
#define SAR_UNKNOWNERR                0x0A000002u
#define SAR_NOTSUPPORTYETERR          0x0A000003u
#define SAR_FILEERR                   0x0A000004u
#define SAR_INVALIDHANDLEERR          0x0A000005u
#define SAR_INVALIDPARAMERR           0x0A000006u
#define SAR_READFILEERR               0x0A000007u
#define SAR_WRITEFILEERR              0x0A000008u
#define SAR_NAMELENERR                0x0A000009u
#define SAR_KEYUSAGEERR               0x0A00000Au
#define SAR_MODULUSLENERR             0x0A00000Bu
#define SAR_NOTINITIALIZEERR          0x0A00000Cu
#define SAR_OBJERR                    0x0A00000Du
#define SAR_MEMORYERR                 0x0A00000Eu
#define SAR_TIMEOUTERR                0x0A00000Fu
#define SAR_INDATALENERR              0x0A000010u
#define SAR_INDATAERR                 0x0A000011u
#define SAR_GENRANDERR                0x0A000012u
#define SAR_HASHOBJERR                0x0A000013u
#define SAR_HASHERR                   0x0A000014u
#define SAR_GENRSAKEYERR              0x0A000015u
#define SAR_RSAMODULUSLENERR          0x0A000016u
#define SAR_CSPIMPRTPUBKEYERR         0x0A000017u
#define SAR_RSAENCERR                 0x0A000018u
#define SAR_RSADECERR                 0x0A000019u
#define SAR_HASHNOTEQUALERR           0x0A00001Au
#define SAR_KEYNOTFOUNTERR            0x0A00001Bu /* sic: the standard's spelling */
#define SAR_CERTNOTFOUNTERR           0x0A00001Cu
#define SAR_NOTEXPORTERR              0x0A00001Du
#define SAR_DECRYPTPADERR             0x0A00001Eu
#define SAR_MACLENERR                 0x0A00001Fu
#define SAR_BUFFER_TOO_SMALL          0x0A000020u
#define SAR_KEYINFOTYPEERR            0x0A000021u
#define SAR_NOT_EVENTERR              0x0A000022u
#define SAR_DEVICE_REMOVED            0x0A000023u
#define SAR_PIN_INCORRECT             0x0A000024u
#define SAR_PIN_LOCKED                0x0A000025u
#define SAR_PIN_INVALID               0x0A000026u
#define SAR_PIN_LEN_RANGE             0x0A000027u
#define SAR_USER_ALREADY_LOGGED_IN    0x0A000028u
#define SAR_USER_PIN_NOT_INITIALIZED  0x0A000029u
#define SAR_USER_TYPE_INVALID         0x0A00002Au
#define SAR_APPLICATION_NAME_INVALID  0x0A00002Bu
#define SAR_APPLICATION_EXISTS        0x0A00002Cu
#define SAR_USER_NOT_LOGGED_IN        0x0A00002Du
#define SAR_APPLICATION_NOT_EXISTS    0x0A00002Eu
#define SAR_FILE_ALREADY_EXIST        0x0A00002Fu
#define SAR_NO_ROOM                   0x0A000030u
#define SAR_FILE_NOT_EXIST            0x0A000031u
#define SAR_REACH_MAX_CONTAINER_COUNT 0x0A000032u

/* ---- structures (GM/T 0016-2012 6.4) ---- */

#pragma pack(push, 1)

typedef struct Struct_Version {
    BYTE major;
    BYTE minor;
} VERSION;

typedef struct Struct_DEVINFO {
    VERSION Version;
    CHAR Manufacturer[64];
    CHAR Issuer[64];
    CHAR Label[32];
    CHAR SerialNumber[32];
    VERSION HWVersion;
    VERSION FirmwareVersion;
    ULONG AlgSymCap;
    ULONG AlgAsymCap;
    ULONG AlgHashCap;
    ULONG DevAuthAlgId;
    ULONG TotalSpace;
    ULONG FreeSpace;
    ULONG MaxECCBufferSize;
    ULONG MaxBufferSize;
    BYTE Reserved[64];
} DEVINFO, *PDEVINFO;

typedef struct Struct_RSAPUBLICKEYBLOB {
    ULONG AlgID;
    ULONG BitLen;
    BYTE Modulus[MAX_RSA_MODULUS_LEN];
    BYTE PublicExponent[MAX_RSA_EXPONENT_LEN];
} RSAPUBLICKEYBLOB, *PRSAPUBLICKEYBLOB;

typedef struct Struct_RSAPRIVATEKEYBLOB {
    ULONG AlgID;
    ULONG BitLen;
    BYTE Modulus[MAX_RSA_MODULUS_LEN];
    BYTE PublicExponent[MAX_RSA_EXPONENT_LEN];
    BYTE PrivateExponent[MAX_RSA_MODULUS_LEN];
    BYTE Prime1[MAX_RSA_MODULUS_LEN / 2];
    BYTE Prime2[MAX_RSA_MODULUS_LEN / 2];
    BYTE Prime1Exponent[MAX_RSA_MODULUS_LEN / 2];
    BYTE Prime2Exponent[MAX_RSA_MODULUS_LEN / 2];
    BYTE Coefficient[MAX_RSA_MODULUS_LEN / 2];
} RSAPRIVATEKEYBLOB, *PRSAPRIVATEKEYBLOB;

typedef struct Struct_ECCPUBLICKEYBLOB {
    ULONG BitLen;
    BYTE XCoordinate[ECC_MAX_XCOORDINATE_BITS_LEN / 8];
    BYTE YCoordinate[ECC_MAX_YCOORDINATE_BITS_LEN / 8];
} ECCPUBLICKEYBLOB, *PECCPUBLICKEYBLOB;

typedef struct Struct_ECCPRIVATEKEYBLOB {
    ULONG BitLen;
    BYTE PrivateKey[ECC_MAX_MODULUS_BITS_LEN / 8];
} ECCPRIVATEKEYBLOB, *PECCPRIVATEKEYBLOB;

/* Cipher[1] stands for CipherLen bytes that follow: the blob of an n-byte SM2 ciphertext takes
 * offsetof(ECCCIPHERBLOB, Cipher) + n bytes (UK_SKF_ECCCIPHERBLOB_SIZE). */
typedef struct Struct_ECCCIPHERBLOB {
    BYTE XCoordinate[ECC_MAX_XCOORDINATE_BITS_LEN / 8];
    BYTE YCoordinate[ECC_MAX_XCOORDINATE_BITS_LEN / 8];
    BYTE HASH[32];
    ULONG CipherLen;
    BYTE Cipher[1];
} ECCCIPHERBLOB, *PECCCIPHERBLOB;

typedef struct Struct_ECCSIGNATUREBLOB {
    BYTE r[ECC_MAX_XCOORDINATE_BITS_LEN / 8];
    BYTE s[ECC_MAX_XCOORDINATE_BITS_LEN / 8];
} ECCSIGNATUREBLOB, *PECCSIGNATUREBLOB;

typedef struct Struct_BLOCKCIPHERPARAM {
    BYTE IV[MAX_IV_LEN];
    ULONG IVLen;
    ULONG PaddingType;
    ULONG FeedBitLen;
} BLOCKCIPHERPARAM, *PBLOCKCIPHERPARAM;

/*
 * An encryption key pair sent wrapped by a key-management centre (KMC):
 * cbEncryptedPriKey is the private key (as in ECCPRIVATEKEYBLOB.PrivateKey: right-aligned in 64
 * bytes) encrypted with ulSymmAlgID (an ECB mode, SGD_SM4_ECB in practice) under a random
 * symmetric key; that key is SM2-encrypted (ECCCipherBlob) to the container's SIGNING public
 * key; PubKey is the public half of the wrapped pair. ECCCipherBlob.Cipher holds the 16-byte
 * symmetric key, so the blob as sent is UK_SKF_ENVELOPEDKEYBLOB_SIZE(16) bytes, past sizeof.
 */
typedef struct SKF_ENVELOPEDKEYBLOB {
    ULONG Version;
    ULONG ulSymmAlgID;
    ULONG ulBits;
    BYTE cbEncryptedPriKey[64];
    ECCPUBLICKEYBLOB PubKey;
    ECCCIPHERBLOB ECCCipherBlob;
} ENVELOPEDKEYBLOB, *PENVELOPEDKEYBLOB;

typedef struct Struct_FILEATTRIBUTE {
    CHAR FileName[32];
    ULONG FileSize;
    ULONG ReadRights;
    ULONG WriteRights;
} FILEATTRIBUTE, *PFILEATTRIBUTE;

#pragma pack(pop)

/* Bytes of an ECCCIPHERBLOB / ENVELOPEDKEYBLOB whose Cipher holds n bytes. */
#define UK_SKF_ECCCIPHERBLOB_SIZE(n) (offsetof(ECCCIPHERBLOB, Cipher) + (size_t)(n))
#define UK_SKF_ENVELOPEDKEYBLOB_SIZE(n)                                                            \
    (offsetof(ENVELOPEDKEYBLOB, ECCCipherBlob.Cipher) + (size_t)(n))

/* The layouts, pinned: U is the ULONG width. Offsets are the standard's with U = 4. */
#define UK__SKF_U UK_SKF_ULONG_BYTES
_Static_assert(sizeof(ULONG) == UK__SKF_U, "ULONG width");
_Static_assert(sizeof(BOOL) == UK__SKF_U, "BOOL width");
_Static_assert(sizeof(VERSION) == 2, "VERSION");
_Static_assert(offsetof(DEVINFO, Manufacturer) == 2, "DEVINFO.Manufacturer");
_Static_assert(offsetof(DEVINFO, Issuer) == 66, "DEVINFO.Issuer");
_Static_assert(offsetof(DEVINFO, Label) == 130, "DEVINFO.Label");
_Static_assert(offsetof(DEVINFO, SerialNumber) == 162, "DEVINFO.SerialNumber");
_Static_assert(offsetof(DEVINFO, HWVersion) == 194, "DEVINFO.HWVersion");
_Static_assert(offsetof(DEVINFO, FirmwareVersion) == 196, "DEVINFO.FirmwareVersion");
_Static_assert(offsetof(DEVINFO, AlgSymCap) == 198, "DEVINFO.AlgSymCap");
_Static_assert(offsetof(DEVINFO, MaxBufferSize) == 198 + 7 * UK__SKF_U, "DEVINFO.MaxBufferSize");
_Static_assert(offsetof(DEVINFO, Reserved) == 198 + 8 * UK__SKF_U, "DEVINFO.Reserved");
_Static_assert(sizeof(DEVINFO) == 262 + 8 * UK__SKF_U, "DEVINFO: 294 bytes with 4-byte ULONG");
_Static_assert(offsetof(RSAPUBLICKEYBLOB, Modulus) == 2 * UK__SKF_U, "RSAPUBLICKEYBLOB.Modulus");
_Static_assert(sizeof(RSAPUBLICKEYBLOB) == 2 * UK__SKF_U + 260, "RSAPUBLICKEYBLOB");
_Static_assert(offsetof(RSAPRIVATEKEYBLOB, PrivateExponent) == 2 * UK__SKF_U + 260,
               "RSAPRIVATEKEYBLOB.PrivateExponent");
_Static_assert(offsetof(RSAPRIVATEKEYBLOB, Coefficient) == 2 * UK__SKF_U + 516 + 4 * 128,
               "RSAPRIVATEKEYBLOB.Coefficient");
_Static_assert(sizeof(RSAPRIVATEKEYBLOB) == 2 * UK__SKF_U + 1156, "RSAPRIVATEKEYBLOB");
_Static_assert(offsetof(ECCPUBLICKEYBLOB, XCoordinate) == UK__SKF_U, "ECCPUBLICKEYBLOB.X");
_Static_assert(offsetof(ECCPUBLICKEYBLOB, YCoordinate) == UK__SKF_U + 64, "ECCPUBLICKEYBLOB.Y");
_Static_assert(sizeof(ECCPUBLICKEYBLOB) == UK__SKF_U + 128, "ECCPUBLICKEYBLOB: 132 bytes");
_Static_assert(sizeof(ECCPRIVATEKEYBLOB) == UK__SKF_U + 64, "ECCPRIVATEKEYBLOB");
_Static_assert(offsetof(ECCCIPHERBLOB, HASH) == 128, "ECCCIPHERBLOB.HASH");
_Static_assert(offsetof(ECCCIPHERBLOB, CipherLen) == 160, "ECCCIPHERBLOB.CipherLen");
_Static_assert(offsetof(ECCCIPHERBLOB, Cipher) == 160 + UK__SKF_U, "ECCCIPHERBLOB.Cipher");
_Static_assert(sizeof(ECCCIPHERBLOB) == 161 + UK__SKF_U, "ECCCIPHERBLOB: 165 + cipher length");
_Static_assert(sizeof(ECCSIGNATUREBLOB) == 128, "ECCSIGNATUREBLOB");
_Static_assert(offsetof(ECCSIGNATUREBLOB, s) == 64, "ECCSIGNATUREBLOB.s");
_Static_assert(offsetof(BLOCKCIPHERPARAM, IVLen) == 32, "BLOCKCIPHERPARAM.IVLen");
_Static_assert(sizeof(BLOCKCIPHERPARAM) == 32 + 3 * UK__SKF_U, "BLOCKCIPHERPARAM");
_Static_assert(offsetof(ENVELOPEDKEYBLOB, cbEncryptedPriKey) == 3 * UK__SKF_U,
               "ENVELOPEDKEYBLOB.cbEncryptedPriKey");
_Static_assert(offsetof(ENVELOPEDKEYBLOB, PubKey) == 3 * UK__SKF_U + 64, "ENVELOPEDKEYBLOB.PubKey");
_Static_assert(offsetof(ENVELOPEDKEYBLOB, ECCCipherBlob) == 4 * UK__SKF_U + 192,
               "ENVELOPEDKEYBLOB.ECCCipherBlob");
_Static_assert(sizeof(ENVELOPEDKEYBLOB) == 5 * UK__SKF_U + 353, "ENVELOPEDKEYBLOB");
_Static_assert(offsetof(FILEATTRIBUTE, FileSize) == 32, "FILEATTRIBUTE.FileSize");
_Static_assert(sizeof(FILEATTRIBUTE) == 32 + 3 * UK__SKF_U, "FILEATTRIBUTE");

/* ---- functions: one pointer type per SKF function ukeyd or the soft module uses ----
 * UK_SKF_FN(name, args) declares `typedef ULONG (*name_fn)args;` and, when the includer defines
 * UK_SKF_DECLARE_FUNCTIONS (the soft module), also the function itself with default visibility,
 * so that the exported definitions are checked against the same text the driver calls through.
 * Not declared: SKF_ImportRSAKeyPair (RSA key import; no CA in scope sends RSA envelopes) and
 * SKF_ECCDecrypt (not in the 2012 text; some vendors and later revisions add it, with differing
 * signatures, so the driver cannot rely on it), the session-key functions other than the
 * import and decryption of a digital envelope, and the agreement functions, which ukeyd does not
 * use. */
#ifdef UK_SKF_DECLARE_FUNCTIONS
#ifndef UK_SKF_EXPORT
#define UK_SKF_EXPORT __attribute__((visibility("default")))
#endif
#define UK_SKF_FN(name, args)                                                                      \
    typedef ULONG(*name##_fn) args;                                                                \
    UK_SKF_EXPORT ULONG name args
#else
#define UK_SKF_FN(name, args) typedef ULONG(*name##_fn) args
#endif

/* Devices. SKF_WaitForDevEvent blocks until a device appears or goes (event 1 / 2) and names it;
 * SKF_CancelWaitForDevEvent, from another thread, makes a blocked wait return. */
UK_SKF_FN(SKF_WaitForDevEvent, (LPSTR szDevName, ULONG *pulDevNameLen, ULONG *pulEvent));
UK_SKF_FN(SKF_CancelWaitForDevEvent, (void));
UK_SKF_FN(SKF_EnumDev, (BOOL bPresent, LPSTR szNameList, ULONG *pulSize));
UK_SKF_FN(SKF_ConnectDev, (LPSTR szName, DEVHANDLE *phDev));
UK_SKF_FN(SKF_DisConnectDev, (DEVHANDLE hDev));
UK_SKF_FN(SKF_GetDevState, (LPSTR szDevName, ULONG *pulDevState));
UK_SKF_FN(SKF_GetDevInfo, (DEVHANDLE hDev, DEVINFO *pDevInfo));
UK_SKF_FN(SKF_LockDev, (DEVHANDLE hDev, ULONG ulTimeOut));
UK_SKF_FN(SKF_UnlockDev, (DEVHANDLE hDev));

/* Applications and PINs. *pulRetryCount is the number of tries left after a wrong PIN. */
UK_SKF_FN(SKF_EnumApplication, (DEVHANDLE hDev, LPSTR szAppName, ULONG *pulSize));
UK_SKF_FN(SKF_CreateApplication,
          (DEVHANDLE hDev, LPSTR szAppName, LPSTR szAdminPin, DWORD dwAdminPinRetryCount,
           LPSTR szUserPin, DWORD dwUserPinRetryCount, DWORD dwCreateFileRights,
           HAPPLICATION *phApplication));
UK_SKF_FN(SKF_DeleteApplication, (DEVHANDLE hDev, LPSTR szAppName));
UK_SKF_FN(SKF_OpenApplication, (DEVHANDLE hDev, LPSTR szAppName, HAPPLICATION *phApplication));
UK_SKF_FN(SKF_CloseApplication, (HAPPLICATION hApplication));
UK_SKF_FN(SKF_VerifyPIN,
          (HAPPLICATION hApplication, ULONG ulPINType, LPSTR szPIN, ULONG *pulRetryCount));
UK_SKF_FN(SKF_ChangePIN, (HAPPLICATION hApplication, ULONG ulPINType, LPSTR szOldPin,
                          LPSTR szNewPin, ULONG *pulRetryCount));
UK_SKF_FN(SKF_GetPINInfo, (HAPPLICATION hApplication, ULONG ulPINType, ULONG *pulMaxRetryCount,
                           ULONG *pulRemainRetryCount, BOOL *pbDefaultPin));
UK_SKF_FN(SKF_UnblockPIN,
          (HAPPLICATION hApplication, LPSTR szAdminPIN, LPSTR szNewUserPIN, ULONG *pulRetryCount));
UK_SKF_FN(SKF_ClearSecureState, (HAPPLICATION hApplication));

/* Files of an application (GM/T 0016 file management): fixed size at creation, names of at most
 * 32 bytes; rights are SECURE_*_ACCOUNT values. SKF_ReadFile's *pulOutLen is the buffer's size in
 * and the bytes read out. */
UK_SKF_FN(SKF_CreateFile, (HAPPLICATION hApplication, LPSTR szFileName, ULONG ulFileSize,
                           ULONG ulReadRights, ULONG ulWriteRights));
UK_SKF_FN(SKF_DeleteFile, (HAPPLICATION hApplication, LPSTR szFileName));
UK_SKF_FN(SKF_EnumFiles, (HAPPLICATION hApplication, LPSTR szFileList, ULONG *pulSize));
UK_SKF_FN(SKF_GetFileInfo, (HAPPLICATION hApplication, LPSTR szFileName, FILEATTRIBUTE *pFileInfo));
UK_SKF_FN(SKF_ReadFile, (HAPPLICATION hApplication, LPSTR szFileName, ULONG ulOffset, ULONG ulSize,
                         BYTE *pbOutData, ULONG *pulOutLen));
UK_SKF_FN(SKF_WriteFile, (HAPPLICATION hApplication, LPSTR szFileName, ULONG ulOffset, BYTE *pbData,
                          ULONG ulSize));

/* Containers. bSignFlag TRUE = the signing key pair / certificate, FALSE = the encryption one. */
UK_SKF_FN(SKF_EnumContainer, (HAPPLICATION hApplication, LPSTR szContainerName, ULONG *pulSize));
UK_SKF_FN(SKF_CreateContainer,
          (HAPPLICATION hApplication, LPSTR szContainerName, HCONTAINER *phContainer));
UK_SKF_FN(SKF_DeleteContainer, (HAPPLICATION hApplication, LPSTR szContainerName));
UK_SKF_FN(SKF_OpenContainer,
          (HAPPLICATION hApplication, LPSTR szContainerName, HCONTAINER *phContainer));
UK_SKF_FN(SKF_CloseContainer, (HCONTAINER hContainer));
UK_SKF_FN(SKF_GetContainerType, (HCONTAINER hContainer, ULONG *pulContainerType));
UK_SKF_FN(SKF_ImportCertificate,
          (HCONTAINER hContainer, BOOL bSignFlag, BYTE *pbCert, ULONG ulCertLen));
UK_SKF_FN(SKF_ExportCertificate,
          (HCONTAINER hContainer, BOOL bSignFlag, BYTE *pbCert, ULONG *pulCertLen));

/* Cryptography. SKF_ECCSignData signs a 32-byte digest that the caller has already computed as
 * SM3(Z || message) (SKF_DigestInit with the public key and signer ID does that); the module
 * does not hash again. SKF_RSASignData applies PKCS#1 v1.5 type 1 padding to pbData, which is
 * the DER DigestInfo (or, for SSL-style signatures, the raw hash) the caller built. */
UK_SKF_FN(SKF_GenRandom, (DEVHANDLE hDev, BYTE *pbRandom, ULONG ulRandomLen));
UK_SKF_FN(SKF_GenECCKeyPair, (HCONTAINER hContainer, ULONG ulAlgId, ECCPUBLICKEYBLOB *pBlob));
UK_SKF_FN(SKF_ImportECCKeyPair, (HCONTAINER hContainer, PENVELOPEDKEYBLOB pEnvelopedKeyBlob));
UK_SKF_FN(SKF_ECCSignData,
          (HCONTAINER hContainer, BYTE *pbData, ULONG ulDataLen, PECCSIGNATUREBLOB pSignature));
UK_SKF_FN(SKF_ECCVerify, (DEVHANDLE hDev, ECCPUBLICKEYBLOB *pECCPubKeyBlob, BYTE *pbData,
                          ULONG ulDataLen, PECCSIGNATUREBLOB pSignature));
UK_SKF_FN(SKF_ExportPublicKey,
          (HCONTAINER hContainer, BOOL bSignFlag, BYTE *pbBlob, ULONG *pulBlobLen));
UK_SKF_FN(SKF_GenRSAKeyPair, (HCONTAINER hContainer, ULONG ulBitsLen, RSAPUBLICKEYBLOB *pBlob));
UK_SKF_FN(SKF_RSASignData, (HCONTAINER hContainer, BYTE *pbData, ULONG ulDataLen, BYTE *pbSignature,
                            ULONG *pulSignLen));
UK_SKF_FN(SKF_DigestInit, (DEVHANDLE hDev, ULONG ulAlgID, ECCPUBLICKEYBLOB *pPubKey, BYTE *pucID,
                           ULONG ulIDLen, HANDLE *phHash));
UK_SKF_FN(SKF_Digest,
          (HANDLE hHash, BYTE *pbData, ULONG ulDataLen, BYTE *pbHashData, ULONG *pulHashLen));
UK_SKF_FN(SKF_DigestUpdate, (HANDLE hHash, BYTE *pbData, ULONG ulDataLen));
UK_SKF_FN(SKF_DigestFinal, (HANDLE hHash, BYTE *pHashData, ULONG *pulHashLen));

/* Digital envelopes (GM/T 0016 session keys). SKF_ImportSessionKey has the device decrypt
 * pbWrapedData with the container's ENCRYPTION private key (for an SM2 container an
 * ECCCIPHERBLOB, UK_SKF_ECCCIPHERBLOB_SIZE(CipherLen) bytes) and keeps the session key inside:
 * the caller only ever holds its handle, which SKF_CloseHandle releases. DecryptParam goes BY
 * VALUE, as the standard writes it: a pointer here would be read as the start of the structure
 * by a conforming module. PaddingType 0 is none, 1 PKCS#5. SKF_DecryptUpdate returns whole
 * blocks only and keeps the rest (with padding, the last block waits for SKF_DecryptFinal);
 * the output lengths follow the length protocol above. */
UK_SKF_FN(SKF_ImportSessionKey, (HCONTAINER hContainer, ULONG ulAlgId, BYTE *pbWrapedData,
                                 ULONG ulWrapedLen, HANDLE *phKey));
UK_SKF_FN(SKF_DecryptInit, (HANDLE hKey, BLOCKCIPHERPARAM DecryptParam));
UK_SKF_FN(SKF_Decrypt, (HANDLE hKey, BYTE *pbEncryptedData, ULONG ulEncryptedLen, BYTE *pbData,
                        ULONG *pulDataLen));
UK_SKF_FN(SKF_DecryptUpdate, (HANDLE hKey, BYTE *pbEncryptedData, ULONG ulEncryptedLen,
                              BYTE *pbData, ULONG *pulDataLen));
UK_SKF_FN(SKF_DecryptFinal, (HANDLE hKey, BYTE *pbDecryptedData, ULONG *pulDecryptedDataLen));

/* Closes a hash or session-key handle (the standard has one function for both). */
UK_SKF_FN(SKF_CloseHandle, (HANDLE hHandle));

#endif
