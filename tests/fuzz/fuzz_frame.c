/*
 * fuzz_frame.c - libFuzzer target for the framing reader of the Unix socket and native messaging
 * (daemon/util/uk_frame.h: 4-byte little-endian length, then the body).
 *
 * Input: byte 0 picks the largest frame accepted (0..255 * 16 bytes: small, so that the limit is
 * hit); the rest is written into a pipe whose write end is then closed, and uk_frame_read (zero
 * timeout) runs until it fails. Every frame returned must fit the limit and the bytes consumed
 * must add up to no more than what was written. Corpus: tests/fuzz/corpus/frame/.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "uk_err.h"
#include "uk_frame.h"

/* A pipe holds 64 KiB by default: stay below it so the single write never blocks. */
#define MAX_STREAM (60u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds[2];
    if (size < 1)
        return 0;
    uk_fuzz_quiet();
    size_t max = (size_t)data[0] * 16u;
    const uint8_t *stream = data + 1;
    size_t n = size - 1 > MAX_STREAM ? MAX_STREAM : size - 1;

    if (pipe(fds) != 0)
        abort();
    if (n > 0 && uk_io_write_full(fds[1], stream, n) != UK_OK)
        abort();
    close(fds[1]);

    size_t consumed = 0;
    for (;;) {
        uint8_t *body = NULL;
        size_t len = 0;
        int rc = uk_frame_read(fds[0], max, 0, &body, &len);
        if (rc != UK_OK) {
            if (body != NULL)
                abort();
            break;
        }
        if (body == NULL || len > max)
            abort();
        consumed += 4 + len;
        if (consumed > n || (len > 0 && memcmp(body, stream + consumed - len, len) != 0))
            abort();
        free(body);
    }
    close(fds[0]);
    return 0;
}
