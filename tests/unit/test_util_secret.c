/* Secret buffers: private copies, NUL-terminated, wiped before their memory is released. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <malloc.h>
#include <stdbool.h>
#include <string.h>
#include <cmocka.h>

#include "uk_secret.h"

/*
 * The test binary links with -Wl,--wrap=free, so every free() in it (uk_util's included) comes here
 * first. When the watched block is freed, look at its bytes before they are really released.
 */
void __wrap_free(void *p);
void __real_free(void *p);

static const void *watched;
static const char *watched_needle;
static bool watched_seen;
static bool watched_still_held_secret;

void __wrap_free(void *p)
{
    if (p != NULL && p == watched) {
        size_t n = malloc_usable_size(p);
        watched_seen = true;
        watched_still_held_secret = memmem(p, n, watched_needle, strlen(watched_needle)) != NULL;
        watched = NULL;
    }
    __real_free(p);
}

static void test_secret_keeps_a_private_nul_terminated_copy(void **state)
{
    (void)state;
    char pin[] = "123456";
    uk_secret *s = uk_secret_new(pin, 6);
    assert_non_null(s);
    memset(pin, 'x', 6);
    assert_int_equal(uk_secret_get0_len(s), 6);
    assert_memory_equal(uk_secret_get0_data(s), "123456", 7);
    uk_secret_free(s);
}

static void test_secret_accepts_empty_content(void **state)
{
    (void)state;
    uk_secret *s = uk_secret_new(NULL, 0);
    assert_non_null(s);
    assert_int_equal(uk_secret_get0_len(s), 0);
    assert_int_equal(uk_secret_get0_data(s)[0], 0);
    uk_secret_free(s);
}

static void test_secret_free_accepts_null(void **state)
{
    (void)state;
    uk_secret_free(NULL);
    uk_wipe(NULL, 10);
}

static void test_secret_free_wipes_content_before_release(void **state)
{
    (void)state;
    uk_secret *s = uk_secret_new("wipe-me-314159", 14);
    assert_non_null(s);
    watched = s; /* the secret is a single block starting at the handle */
    watched_needle = "wipe-me";
    watched_seen = false;
    watched_still_held_secret = true;
    uk_secret_free(s);
    assert_true(watched_seen);
    assert_false(watched_still_held_secret);
}

static void test_wipe_zeroes_every_byte(void **state)
{
    (void)state;
    uint8_t buf[37];
    memset(buf, 0xa5, sizeof(buf));
    uk_wipe(buf, sizeof(buf));
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);
}

static void test_wipe_leaves_bytes_outside_the_range(void **state)
{
    (void)state;
    uint8_t buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uk_wipe(buf + 2, 3);
    static const uint8_t want[8] = {1, 2, 0, 0, 0, 6, 7, 8};
    assert_memory_equal(buf, want, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_keeps_a_private_nul_terminated_copy),
        cmocka_unit_test(test_secret_accepts_empty_content),
        cmocka_unit_test(test_secret_free_accepts_null),
        cmocka_unit_test(test_secret_free_wipes_content_before_release),
        cmocka_unit_test(test_wipe_zeroes_every_byte),
        cmocka_unit_test(test_wipe_leaves_bytes_outside_the_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
