/*
 * fuzz_sm2env.c - libFuzzer target for uk_x509_sm2_envelope_blob (GM/T 0009 SM2EnvelopedKey to
 * the GM/T 0016 ENVELOPEDKEYBLOB) on arbitrary bytes, at both ULONG widths, with the invariants
 * the header promises: both widths accept or refuse alike, a refusal is UK_E_INVALID_PARAMS and
 * leaves the output alone, an accepted blob has its fixed fields (Version 1, SGD_SM4_ECB, 256
 * bits, CipherLen 16), the zero halves of its right-aligned fields, and the public point of the
 * input.
 * Seed corpus: tests/fuzz/corpus/sm2env/, envelopes written by the demo portal's test KMC
 * (examples/portal/kmc.js: both SM4 OIDs, both private-key forms; kmc-*.der) and a few near
 * misses cut from them.
 *
 * Built by tests/fuzz/CMakeLists.txt: a libFuzzer binary in the preset "fuzz", a replayer of the
 * corpus (ctest, label "fuzz") elsewhere. Run: build/fuzz/tests/fuzz/fuzz_sm2env -max_len=1200
 * tests/fuzz/corpus/sm2env/
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "uk_err.h"
#include "uk_x509.h"

#define BLOB_MAX UK_X509_SKF_ENVELOPE_LEN(8)

static uint32_t ulong_at(const uint8_t *p, unsigned width)
{
    for (unsigned i = 4; i < width; i++)
        if (p[i] != 0)
            abort();
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* Convert at width u; returns whether it was accepted, checking the invariants either way. */
static bool convert(const uint8_t *data, size_t size, unsigned u, uint8_t blob[BLOB_MAX])
{
    memset(blob, 0x5a, BLOB_MAX);
    size_t n = BLOB_MAX;
    int err = uk_x509_sm2_envelope_blob(data, size, u, blob, &n);
    if (err != UK_OK) {
        if (err != UK_E_INVALID_PARAMS || n != BLOB_MAX)
            abort();
        for (size_t i = 0; i < BLOB_MAX; i++)
            if (blob[i] != 0x5a)
                abort();
        return false;
    }
    if (n != UK_X509_SKF_ENVELOPE_LEN(u))
        abort();
    /* Version, ulSymmAlgID, ulBits, PubKey.BitLen, CipherLen (GM/T 0016, pack(1)). */
    if (ulong_at(blob, u) != 1 || ulong_at(blob + u, u) != 0x401 ||
        ulong_at(blob + 2 * u, u) != 256 || ulong_at(blob + 3 * u + 64, u) != 256 ||
        ulong_at(blob + 4 * u + 352, u) != 16)
        abort();
    /* The upper halves of PubKey X, Y and C1 X, Y are zero (256-bit values right-aligned). */
    for (size_t f = 0; f < 4; f++)
        if (!all_zero(blob + 4 * u + 64 + 64 * f, 32))
            abort();
    /* PubKey X || Y is in the input after 04 (the sm2PublicKey BIT STRING). */
    uint8_t point[65];
    point[0] = 0x04;
    memcpy(point + 1, blob + 4 * u + 64 + 32, 32);
    memcpy(point + 33, blob + 4 * u + 128 + 32, 32);
    if (memmem(data, size, point, sizeof(point)) == NULL)
        abort();
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uk_fuzz_quiet();
    uint8_t b4[BLOB_MAX], b8[BLOB_MAX];
    bool ok4 = convert(data, size, 4, b4);
    bool ok8 = convert(data, size, 8, b8);
    if (ok4 != ok8)
        abort();
    /* Same bytes past the three leading ULONGs' widening: cbEncryptedPriKey, and the cipher. */
    if (ok4 && (memcmp(b4 + 12, b8 + 24, 64) != 0 || memcmp(b4 + 372, b8 + 392, 16) != 0))
        abort();
    return 0;
}
