/*
 * uk_unix.h - the Unix-socket endpoint for same-user local clients (ukeyctl,
 * the tray, the native-messaging host).
 *
 * The socket lives in a directory of its own that must be ours and 0700; the
 * socket itself is 0600, and every client's peer credentials (SO_PEERCRED)
 * must carry our uid, or it is closed before a byte is read.
 *
 * Framing: each message is a 4-byte unsigned length, little-endian, followed
 * by that many bytes of UTF-8 JSON (the native-messaging framing on the
 * machines we run on, so the host relays frames unchanged). A length over
 * the message limit gets a LIMIT_EXCEEDED error and the connection closes,
 * since the stream cannot be resynchronised without reading the whole frame.
 *
 * Thread: loop thread only. Ownership: uk_unix_start returns a server the
 * caller stops with uk_unix_stop, after which the loop must run until its
 * handles are closed.
 * Errors: UK_E_IO (cannot create/bind; the log says why), UK_E_BUSY (another
 * ukeyd answers on the socket), UK_E_CONFIG_INVALID (the directory is not
 * ours or is open to others), UK_E_NO_MEMORY.
 */
#ifndef UK_UNIX_H
#define UK_UNIX_H

#include <stddef.h>
#include <uv.h>

#include "uk_rpc.h"

typedef struct uk_unix uk_unix;

typedef struct uk_unix_options {
    uv_loop_t *loop;
    uk_rpc *rpc;
    const char *path; /* the socket; its directory is created 0700 if missing */
    size_t message_size;
} uk_unix_options;

__attribute__((warn_unused_result)) int uk_unix_start(const uk_unix_options *opt, uk_unix **out);
void uk_unix_stop(uk_unix *u);

#endif
