/*
 * uk_driver_md.h - the one mapping from a signature request's hash (uk_hash, uk_driver.h) to the
 * digest the crypto module pads with (uk_crypto_md), for the drivers that pad on the host (PIV,
 * PKCS#11, SKF RSA). Header only: drivers link uk_crypto, the token layer does not need to.
 */
#ifndef UK_DRIVER_MD_H
#define UK_DRIVER_MD_H

#include <stdbool.h>

#include "uk_crypto.h"
#include "uk_driver.h"

/* false for a hash the crypto module does not pad with (SM3: SM2 signs it without padding). */
static inline bool uk_driver_md(uk_hash h, uk_crypto_md *md)
{
    switch (h) {
    case UK_HASH_SHA256:
        *md = UK_CRYPTO_SHA256;
        return true;
    case UK_HASH_SHA384:
        *md = UK_CRYPTO_SHA384;
        return true;
    case UK_HASH_SHA512:
        *md = UK_CRYPTO_SHA512;
        return true;
    default:
        return false;
    }
}

#endif
