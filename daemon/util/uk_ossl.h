/*
 * uk_ossl.h - the one adapter from OpenSSL's error queue to our errors.
 *
 * uk_ossl_fail_at drains the calling thread's OpenSSL error queue into one
 * log line ("WHAT failed: reason; reason ...", with OpenSSL's extra data) at
 * the given level and returns err — or UK_E_NO_MEMORY when the queue held an
 * allocation failure. The queue is empty afterwards. No OpenSSL text ever
 * leaves through a return value.
 *
 * Thread: any (OpenSSL's queue is per thread).
 */
#ifndef UK_OSSL_H
#define UK_OSSL_H

#include "uk_log.h"

int uk_ossl_fail_at(uk_log_level level, const char *file, int line, const char *func, int err,
                    const char *what);

#define UK_OSSL_FAIL(level, err, what)                                                             \
    uk_ossl_fail_at((level), __FILE__, __LINE__, __func__, (err), (what))

#endif
