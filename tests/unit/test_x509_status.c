/*
 * uk_x509_status: valid / expiring / expired / not_yet_valid at the exact boundaries, days_left
 * (floor) and days_until_valid (ceil), the threshold, names and argument checks. The certificate
 * is real (built and parsed); its validity is TX_NOT_BEFORE .. TX_NOT_AFTER.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "test_x509_helpers.h"
#include "uk_err.h"
#include "uk_x509.h"

#define DAY  ((time_t)86400)
#define NB   TX_NOT_BEFORE
#define NA   TX_NOT_AFTER
#define DEF  UK_X509_EXPIRING_DAYS_DEFAULT
#define SPAN ((long long)((NA - NB) / DAY)) /* whole days of the validity (692) */

static tx_keys keys;
static uk_cert_info *cert;

static const tx_attr subject[] = {{"CN", "status", false, 0, 0}, {NULL, NULL, false, 0, 0}};

static int group_setup(void **state)
{
    (void)state;
    tx_keys_make(&keys);
    tx_spec s = {.key = keys.p256, .subject = subject};
    cert = tx_cert_info(&s);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    uk_cert_info_free(cert);
    tx_keys_free(&keys);
    return 0;
}

static uk_cert_status at(time_t now, unsigned threshold)
{
    uk_cert_status s;
    memset(&s, 0x5a, sizeof(s));
    assert_int_equal(uk_x509_status(cert, now, threshold, &s), UK_OK);
    return s;
}

static void expect(time_t now, unsigned threshold, uk_cert_status_code code, long long days_left)
{
    uk_cert_status s = at(now, threshold);
    if (s.status != code || s.days_left != days_left)
        fail_msg("now = %lld: got %s/%lld, want %s/%lld", (long long)now,
                 uk_cert_status_name(s.status), s.days_left, uk_cert_status_name(code), days_left);
    if (code != UK_CERT_NOT_YET_VALID) {
        assert_int_equal(s.days_until_valid, 0);
        assert_string_equal(s.valid_from, "");
    }
}

static void test_x509_status_before_not_before_is_not_yet_valid(void **state)
{
    (void)state;
    uk_cert_status s = at(NB - 1, DEF);
    assert_int_equal(s.status, UK_CERT_NOT_YET_VALID);
    assert_int_equal(s.days_until_valid, 1);
    assert_string_equal(s.valid_from, "2026-01-01T00:00:00Z");
    assert_int_equal(s.days_left, SPAN); /* 692 days and 8 h + 1 s: floor */

    s = at(NB - DAY, DEF);
    assert_int_equal(s.status, UK_CERT_NOT_YET_VALID);
    assert_int_equal(s.days_until_valid, 1);
    s = at(NB - DAY - 1, DEF);
    assert_int_equal(s.days_until_valid, 2);
    s = at(NB - 10 * DAY, DEF);
    assert_int_equal(s.days_until_valid, 10);
    assert_string_equal(s.valid_from, cert->not_before_iso);
}

static void test_x509_status_not_before_itself_is_valid(void **state)
{
    (void)state;
    expect(NB, DEF, UK_CERT_VALID, SPAN);
    expect(NB + 1, DEF, UK_CERT_VALID, SPAN);
}

static void test_x509_status_expiring_boundary_with_default_threshold(void **state)
{
    (void)state;
    /* 31 days left exactly: valid. One second later "30 days left" (floor): expiring. */
    expect(NA - 31 * DAY, DEF, UK_CERT_VALID, 31);
    expect(NA - 31 * DAY + 1, DEF, UK_CERT_EXPIRING, 30);
    expect(NA - 30 * DAY, DEF, UK_CERT_EXPIRING, 30);
    expect(NA - 30 * DAY + 1, DEF, UK_CERT_EXPIRING, 29);
    expect(NA - DAY, DEF, UK_CERT_EXPIRING, 1);
    expect(NA - DAY + 1, DEF, UK_CERT_EXPIRING, 0);
}

static void test_x509_status_not_after_itself_is_still_valid(void **state)
{
    (void)state;
    expect(NA - 1, DEF, UK_CERT_EXPIRING, 0);
    expect(NA, DEF, UK_CERT_EXPIRING, 0);
    /* Even with threshold 0, the last day (days_left 0) is expiring. */
    expect(NA, 0, UK_CERT_EXPIRING, 0);
}

static void test_x509_status_after_not_after_is_expired(void **state)
{
    (void)state;
    expect(NA + 1, DEF, UK_CERT_EXPIRED, -1);
    expect(NA + DAY, DEF, UK_CERT_EXPIRED, -1);
    expect(NA + DAY + 1, DEF, UK_CERT_EXPIRED, -2);
    expect(NA + 365 * DAY, DEF, UK_CERT_EXPIRED, -365);
}

static void test_x509_status_threshold_is_configurable(void **state)
{
    (void)state;
    expect(NA - 60 * DAY, 60, UK_CERT_EXPIRING, 60);
    expect(NA - 61 * DAY, 60, UK_CERT_VALID, 61);
    expect(NA - 60 * DAY, DEF, UK_CERT_VALID, 60);
    /* 0: only the last day (days_left 0) is expiring. */
    expect(NA - DAY, 0, UK_CERT_VALID, 1);
    expect(NA - DAY + 1, 0, UK_CERT_EXPIRING, 0);
    /* A threshold longer than the whole validity: expiring from the first second. */
    expect(NB, 100000, UK_CERT_EXPIRING, SPAN);
}

static void test_x509_status_far_dates_do_not_overflow(void **state)
{
    (void)state;
    const tx_attr far_subject[] = {{"CN", "far", false, 0, 0}, {NULL, NULL, false, 0, 0}};
    tx_spec s = {.key = keys.p256,
                 .subject = far_subject,
                 .not_before = -631152000,   /* 1950 */
                 .not_after = 253402300799}; /* 9999-12-31T23:59:59Z */
    uk_cert_info *c = tx_cert_info(&s);
    uk_cert_status st;
    assert_int_equal(uk_x509_status(c, 0, DEF, &st), UK_OK);
    assert_int_equal(st.status, UK_CERT_VALID);
    assert_int_equal(st.days_left, 2932896); /* 253402300799 / 86400, floor */
    assert_int_equal(uk_x509_status(c, (time_t)1 << 60, DEF, &st), UK_OK);
    assert_int_equal(st.status, UK_CERT_EXPIRED);
    assert_int_equal(uk_x509_status(c, -((time_t)1 << 60), DEF, &st), UK_OK);
    assert_int_equal(st.status, UK_CERT_NOT_YET_VALID);
    uk_cert_info_free(c);
}

static void test_x509_status_rejects_bad_arguments(void **state)
{
    (void)state;
    uk_cert_status s;
    assert_int_equal(uk_x509_status(NULL, NB, DEF, &s), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_status(cert, NB, DEF, NULL), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_status(cert, ((time_t)1 << 60) + 1, DEF, &s), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_status(cert, -((time_t)1 << 60) - 1, DEF, &s), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_status(cert, (time_t)INT64_MIN, DEF, &s), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_x509_status(cert, (time_t)INT64_MAX, DEF, &s), UK_E_INVALID_PARAMS);
}

static void test_x509_status_names(void **state)
{
    (void)state;
    assert_string_equal(uk_cert_status_name(UK_CERT_VALID), "valid");
    assert_string_equal(uk_cert_status_name(UK_CERT_EXPIRING), "expiring");
    assert_string_equal(uk_cert_status_name(UK_CERT_EXPIRED), "expired");
    assert_string_equal(uk_cert_status_name(UK_CERT_NOT_YET_VALID), "not_yet_valid");
    assert_string_equal(uk_cert_status_name((uk_cert_status_code)42), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x509_status_before_not_before_is_not_yet_valid),
        cmocka_unit_test(test_x509_status_not_before_itself_is_valid),
        cmocka_unit_test(test_x509_status_expiring_boundary_with_default_threshold),
        cmocka_unit_test(test_x509_status_not_after_itself_is_still_valid),
        cmocka_unit_test(test_x509_status_after_not_after_is_expired),
        cmocka_unit_test(test_x509_status_threshold_is_configurable),
        cmocka_unit_test(test_x509_status_far_dates_do_not_overflow),
        cmocka_unit_test(test_x509_status_rejects_bad_arguments),
        cmocka_unit_test(test_x509_status_names),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
