/*
 * uk_frame.h - blocking frame I/O for ukeyd's local clients (ukeyctl,
 * ukeyd-nm): a frame is a 4-byte little-endian length and that many bytes,
 * the framing of the Unix socket (docs/adr/0002-unix-socket-framing.md) and
 * of native messaging on the machines we build for.
 *
 * Thread: any; these are plain blocking calls on a file descriptor, for
 * client programs — never for the daemon's loop thread.
 * Errors: UK_E_IO (end of stream or a read/write error; errno tells which),
 * UK_E_TIMEOUT, UK_E_LIMIT_EXCEEDED (a header announcing more than max: the
 * header has been read, the body has not), UK_E_NO_MEMORY.
 */
#ifndef UK_FRAME_H
#define UK_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Connects to the Unix socket at path; the fd, or -1 with errno set. */
int uk_frame_connect(const char *path);

/* Reads exactly n bytes; timeout_ms < 0 waits as long as it takes. */
int uk_io_read_full(int fd, void *p, size_t n, int timeout_ms) __attribute__((warn_unused_result));
int uk_io_write_full(int fd, const void *p, size_t n) __attribute__((warn_unused_result));

int uk_frame_write(int fd, const void *body, size_t len) __attribute__((warn_unused_result));

/* Reads one frame of at most max bytes into a new buffer (*out, free()). */
int uk_frame_read(int fd, size_t max, int timeout_ms, uint8_t **out, size_t *len)
    __attribute__((warn_unused_result));

#endif
