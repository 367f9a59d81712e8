/*
 * uk_x509_status.c - the validity status of a parsed certificate against a clock. Plain
 * arithmetic on time_t; no OpenSSL.
 */
#include <string.h>

#include "uk_err.h"
#include "uk_x509.h"

#define DAY 86400LL

/* Bound on now: with |not_after| < 2^38 (years 0 to 9999), no difference below can overflow. */
#define NOW_LIMIT (1LL << 60)

/* floor(a / b) for b > 0; C division truncates toward zero. */
static long long floor_div(long long a, long long b)
{
    long long q = a / b;
    if (a % b != 0 && a < 0)
        q--;
    return q;
}

int uk_x509_status(const uk_cert_info *c, time_t now, unsigned expiring_days, uk_cert_status *out)
{
    if (c == NULL || out == NULL || (long long)now > NOW_LIMIT || (long long)now < -NOW_LIMIT)
        return UK_E_INVALID_PARAMS;
    uk_cert_status s;
    memset(&s, 0, sizeof(s));
    long long to_end = (long long)c->not_after - (long long)now;
    long long to_start = (long long)c->not_before - (long long)now;
    s.days_left = floor_div(to_end, DAY);
    if (to_start > 0) {
        s.status = UK_CERT_NOT_YET_VALID;
        s.days_until_valid = (to_start + DAY - 1) / DAY;
        memcpy(s.valid_from, c->not_before_iso, sizeof(s.valid_from));
        s.valid_from[sizeof(s.valid_from) - 1] = 0;
    } else if (to_end < 0) {
        s.status = UK_CERT_EXPIRED;
    } else if (s.days_left <= (long long)expiring_days) {
        s.status = UK_CERT_EXPIRING;
    } else {
        s.status = UK_CERT_VALID;
    }
    *out = s;
    return UK_OK;
}

const char *uk_cert_status_name(uk_cert_status_code s)
{
    switch (s) {
    case UK_CERT_VALID:
        return "valid";
    case UK_CERT_EXPIRING:
        return "expiring";
    case UK_CERT_EXPIRED:
        return "expired";
    case UK_CERT_NOT_YET_VALID:
        return "not_yet_valid";
    }
    return "unknown";
}
