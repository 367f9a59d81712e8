/* The SKF structure layouts against GM/T 0016-2012, at run time (the header pins the same at
 * compile time with _Static_assert). The expected numbers are written out here for both ULONG
 * widths, independently of the header's own formulas; the test is built once per width. */
#include "uk_skf_abi.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

/* Expected value with 4-byte ULONG (the standard's) and with 8-byte ULONG. */
#if UK_SKF_ULONG_BYTES == 4
#define W(four, eight) (four)
#else
#define W(four, eight) (eight)
#endif

#define LAYOUT(actual, expected) assert_int_equal((size_t)(actual), (size_t)(expected))

static void test_skf_abi_base_types(void **state)
{
    (void)state;
    LAYOUT(sizeof(ULONG), W(4, 8));
    LAYOUT(sizeof(BOOL), W(4, 8));
    LAYOUT(sizeof(DWORD), W(4, 8));
    LAYOUT(sizeof(BYTE), 1);
    LAYOUT(sizeof(UINT32), 4);
    LAYOUT(sizeof(HANDLE), sizeof(void *));
}

static void test_skf_abi_devinfo(void **state)
{
    (void)state;
    LAYOUT(sizeof(VERSION), 2);
    LAYOUT(offsetof(DEVINFO, Manufacturer), 2);
    LAYOUT(offsetof(DEVINFO, Issuer), 66);
    LAYOUT(offsetof(DEVINFO, Label), 130);
    LAYOUT(offsetof(DEVINFO, SerialNumber), 162);
    LAYOUT(offsetof(DEVINFO, HWVersion), 194);
    LAYOUT(offsetof(DEVINFO, FirmwareVersion), 196);
    LAYOUT(offsetof(DEVINFO, AlgSymCap), 198);
    LAYOUT(offsetof(DEVINFO, AlgAsymCap), W(202, 206));
    LAYOUT(offsetof(DEVINFO, AlgHashCap), W(206, 214));
    LAYOUT(offsetof(DEVINFO, DevAuthAlgId), W(210, 222));
    LAYOUT(offsetof(DEVINFO, TotalSpace), W(214, 230));
    LAYOUT(offsetof(DEVINFO, FreeSpace), W(218, 238));
    LAYOUT(offsetof(DEVINFO, MaxECCBufferSize), W(222, 246));
    LAYOUT(offsetof(DEVINFO, MaxBufferSize), W(226, 254));
    LAYOUT(offsetof(DEVINFO, Reserved), W(230, 262));
    LAYOUT(sizeof(DEVINFO), W(294, 326));
}

static void test_skf_abi_rsa_blobs(void **state)
{
    (void)state;
    LAYOUT(offsetof(RSAPUBLICKEYBLOB, BitLen), W(4, 8));
    LAYOUT(offsetof(RSAPUBLICKEYBLOB, Modulus), W(8, 16));
    LAYOUT(offsetof(RSAPUBLICKEYBLOB, PublicExponent), W(264, 272));
    LAYOUT(sizeof(RSAPUBLICKEYBLOB), W(268, 276));
    LAYOUT(offsetof(RSAPRIVATEKEYBLOB, PrivateExponent), W(268, 276));
    LAYOUT(offsetof(RSAPRIVATEKEYBLOB, Prime1), W(524, 532));
    LAYOUT(offsetof(RSAPRIVATEKEYBLOB, Prime2), W(652, 660));
    LAYOUT(offsetof(RSAPRIVATEKEYBLOB, Prime1Exponent), W(780, 788));
    LAYOUT(offsetof(RSAPRIVATEKEYBLOB, Prime2Exponent), W(908, 916));
    LAYOUT(offsetof(RSAPRIVATEKEYBLOB, Coefficient), W(1036, 1044));
    LAYOUT(sizeof(RSAPRIVATEKEYBLOB), W(1164, 1172));
}

static void test_skf_abi_ecc_blobs(void **state)
{
    (void)state;
    LAYOUT(offsetof(ECCPUBLICKEYBLOB, XCoordinate), W(4, 8));
    LAYOUT(offsetof(ECCPUBLICKEYBLOB, YCoordinate), W(68, 72));
    LAYOUT(sizeof(ECCPUBLICKEYBLOB), W(132, 136));
    LAYOUT(offsetof(ECCPRIVATEKEYBLOB, PrivateKey), W(4, 8));
    LAYOUT(sizeof(ECCPRIVATEKEYBLOB), W(68, 72));
    LAYOUT(offsetof(ECCCIPHERBLOB, YCoordinate), 64);
    LAYOUT(offsetof(ECCCIPHERBLOB, HASH), 128);
    LAYOUT(offsetof(ECCCIPHERBLOB, CipherLen), 160);
    LAYOUT(offsetof(ECCCIPHERBLOB, Cipher), W(164, 168));
    LAYOUT(sizeof(ECCCIPHERBLOB), W(165, 169));
    LAYOUT(UK_SKF_ECCCIPHERBLOB_SIZE(16), W(180, 184));
    LAYOUT(offsetof(ECCSIGNATUREBLOB, s), 64);
    LAYOUT(sizeof(ECCSIGNATUREBLOB), 128);
}

static void test_skf_abi_envelope_and_params(void **state)
{
    (void)state;
    LAYOUT(offsetof(ENVELOPEDKEYBLOB, ulSymmAlgID), W(4, 8));
    LAYOUT(offsetof(ENVELOPEDKEYBLOB, ulBits), W(8, 16));
    LAYOUT(offsetof(ENVELOPEDKEYBLOB, cbEncryptedPriKey), W(12, 24));
    LAYOUT(offsetof(ENVELOPEDKEYBLOB, PubKey), W(76, 88));
    LAYOUT(offsetof(ENVELOPEDKEYBLOB, ECCCipherBlob), W(208, 224));
    LAYOUT(sizeof(ENVELOPEDKEYBLOB), W(373, 393));
    LAYOUT(UK_SKF_ENVELOPEDKEYBLOB_SIZE(16), W(388, 408));
    LAYOUT(offsetof(BLOCKCIPHERPARAM, IVLen), 32);
    LAYOUT(offsetof(BLOCKCIPHERPARAM, PaddingType), W(36, 40));
    LAYOUT(offsetof(BLOCKCIPHERPARAM, FeedBitLen), W(40, 48));
    LAYOUT(sizeof(BLOCKCIPHERPARAM), W(44, 56));
    LAYOUT(offsetof(FILEATTRIBUTE, FileSize), 32);
    LAYOUT(offsetof(FILEATTRIBUTE, ReadRights), W(36, 40));
    LAYOUT(offsetof(FILEATTRIBUTE, WriteRights), W(40, 48));
    LAYOUT(sizeof(FILEATTRIBUTE), W(44, 56));
}

static void test_skf_abi_constants(void **state)
{
    (void)state;
    assert_int_equal(SGD_SM4_ECB, 0x401);
    assert_int_equal(SGD_SM2_1, 0x20100);
    assert_int_equal(SGD_SM3, 1);
    assert_int_equal(SAR_BUFFER_TOO_SMALL, 0x0A000020);
    assert_int_equal(SAR_DEVICE_REMOVED, 0x0A000023);
    assert_int_equal(SAR_PIN_INCORRECT, 0x0A000024);
    assert_int_equal(SAR_PIN_LOCKED, 0x0A000025);
    assert_int_equal(SAR_USER_NOT_LOGGED_IN, 0x0A00002D);
    assert_int_equal(SAR_REACH_MAX_CONTAINER_COUNT, 0x0A000032);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skf_abi_base_types),
        cmocka_unit_test(test_skf_abi_devinfo),
        cmocka_unit_test(test_skf_abi_rsa_blobs),
        cmocka_unit_test(test_skf_abi_ecc_blobs),
        cmocka_unit_test(test_skf_abi_envelope_and_params),
        cmocka_unit_test(test_skf_abi_constants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
