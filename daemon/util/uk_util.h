/*
 * uk_util.h - the util module in one include: errors (uk_err.h), logging (uk_log.h), secret
 * buffers (uk_secret.h), strict base64 (uk_base64.h) and limits (uk_limits.h). Each header carries
 * its own contract (ownership, thread, errors).
 *
 * Link: uk_util (static). Its only dependency, OpenSSL's libcrypto (for OPENSSL_cleanse), is
 * private: nothing here exposes an OpenSSL type.
 */
#ifndef UK_UTIL_H
#define UK_UTIL_H

#include "uk_base64.h"
#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_secret.h"

#endif
