/* Blocking frame I/O of the local clients, over a socketpair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "uk_err.h"
#include "uk_frame.h"

static void test_frame_round_trip_and_little_endian_header(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(uk_frame_write(sv[0], "{\"a\":1}", 7), UK_OK);
    uint8_t hdr[4];
    assert_int_equal(read(sv[1], hdr, 4), 4);
    assert_int_equal(hdr[0], 7);
    assert_int_equal(hdr[1] | hdr[2] | hdr[3], 0);
    char body[7];
    assert_int_equal(read(sv[1], body, 7), 7);
    assert_int_equal(uk_frame_write(sv[0], "xyz", 3), UK_OK);
    uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(uk_frame_read(sv[1], 16, 1000, &out, &len), UK_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(out, "xyz", 3);
    free(out);
    close(sv[0]);
    close(sv[1]);
}

static void test_frame_read_refuses_oversized_header_and_reports_eof_and_timeout(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(uk_frame_read(sv[1], 16, 50, &out, &len), UK_E_TIMEOUT);
    const uint8_t big[4] = {0x00, 0x00, 0x10, 0x00}; /* 1 MiB */
    assert_int_equal(write(sv[0], big, 4), 4);
    assert_int_equal(uk_frame_read(sv[1], 1024, 1000, &out, &len), UK_E_LIMIT_EXCEEDED);
    /* Half a body, then the peer goes away. */
    const uint8_t hdr[4] = {10, 0, 0, 0};
    assert_int_equal(write(sv[0], hdr, 4), 4);
    assert_int_equal(write(sv[0], "abc", 3), 3);
    close(sv[0]);
    assert_int_equal(uk_frame_read(sv[1], 1024, 1000, &out, &len), UK_E_IO);
    assert_null(out);
    close(sv[1]);
}

static void test_frame_connect_reports_missing_socket(void **state)
{
    (void)state;
    assert_int_equal(uk_frame_connect("/nonexistent/ukeyd.sock"), -1);
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(uk_frame_connect(longpath), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_round_trip_and_little_endian_header),
        cmocka_unit_test(test_frame_read_refuses_oversized_header_and_reports_eof_and_timeout),
        cmocka_unit_test(test_frame_connect_reports_missing_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
