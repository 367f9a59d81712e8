/* Blocking frame I/O for local clients. */
#include "uk_frame.h"

#include "uk_err.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int uk_frame_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        fd = -1;
    }
    return fd;
}

int uk_io_read_full(int fd, void *p, size_t n, int timeout_ms)
{
    char *c = p;
    while (n > 0) {
        if (timeout_ms >= 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            int rc = poll(&pfd, 1, timeout_ms);
            if (rc < 0 && errno == EINTR)
                continue;
            if (rc == 0)
                return UK_E_TIMEOUT;
            if (rc < 0)
                return UK_E_IO;
        }
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return UK_E_IO;
        c += r;
        n -= (size_t)r;
    }
    return UK_OK;
}

int uk_io_write_full(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return UK_E_IO;
        c += w;
        n -= (size_t)w;
    }
    return UK_OK;
}

int uk_frame_write(int fd, const void *body, size_t len)
{
    if (len > UINT32_MAX)
        return UK_E_LIMIT_EXCEEDED;
    uint8_t hdr[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                      (uint8_t)(len >> 24)};
    int rc = uk_io_write_full(fd, hdr, sizeof(hdr));
    return rc == UK_OK ? uk_io_write_full(fd, body, len) : rc;
}

int uk_frame_read(int fd, size_t max, int timeout_ms, uint8_t **out, size_t *len)
{
    uint8_t hdr[4];
    int rc = uk_io_read_full(fd, hdr, sizeof(hdr), timeout_ms);
    if (rc != UK_OK)
        return rc;
    size_t n = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 24;
    if (n > max)
        return UK_E_LIMIT_EXCEEDED;
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return UK_E_NO_MEMORY;
    if ((rc = uk_io_read_full(fd, buf, n, timeout_ms)) != UK_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return UK_OK;
}
