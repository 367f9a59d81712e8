/*
 * uk_peer.h - who is on the other end of a loopback TCP connection.
 *
 * Browsers send Origin and Host, but any local program can forge both; on a
 * machine with several users, another user's program could reach
 * 127.0.0.1:PORT like a page does. For a loopback connection the kernel
 * knows the client socket's owner: its row in /proc/net/tcp has the client
 * address as local and ours as remote, and carries the uid.
 *
 * Thread: any; reads /proc (a few kB on a desktop), no state.
 * Errors: UK_E_NOT_FOUND (not a loopback IPv4 connection, or no matching row
 * — the client already went away), UK_E_IO.
 */
#ifndef UK_PEER_H
#define UK_PEER_H

#include <sys/types.h>

/* The uid owning the client end of the accepted loopback socket fd. */
int uk_peer_loopback_uid(int fd, uid_t *uid) __attribute__((warn_unused_result));

#endif
