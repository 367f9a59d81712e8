/* The owner of the client end of a loopback TCP connection, from /proc. */
#include "uk_peer.h"

#include "uk_err.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Path of the kernel's IPv4 TCP table; tests may not change it. */
#define PROC_NET_TCP "/proc/net/tcp"

int uk_peer_loopback_uid(int fd, uid_t *uid)
{
    struct sockaddr_in peer, self;
    socklen_t plen = sizeof(peer), slen = sizeof(self);
    if (getpeername(fd, (struct sockaddr *)&peer, &plen) != 0 ||
        getsockname(fd, (struct sockaddr *)&self, &slen) != 0 || peer.sin_family != AF_INET ||
        self.sin_family != AF_INET || (ntohl(peer.sin_addr.s_addr) >> 24) != 127)
        return UK_E_NOT_FOUND;
    /* /proc/net/tcp prints addresses as the raw 32-bit value in hex (host
     * byte order of the network-order bytes) and ports in hex. */
    char want_local[32], want_remote[32];
    snprintf(want_local, sizeof(want_local), "%08X:%04X", (unsigned)peer.sin_addr.s_addr,
             (unsigned)ntohs(peer.sin_port));
    snprintf(want_remote, sizeof(want_remote), "%08X:%04X", (unsigned)self.sin_addr.s_addr,
             (unsigned)ntohs(self.sin_port));
    FILE *f = fopen(PROC_NET_TCP, "re");
    if (f == NULL)
        return UK_E_IO;
    char line[512];
    int rc = UK_E_NOT_FOUND;
    while (fgets(line, sizeof(line), f) != NULL) {
        char local[64], remote[64];
        unsigned long owner;
        /* sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid */
        if (sscanf(line, " %*s %63s %63s %*s %*s %*s %*s %lu", local, remote, &owner) != 3)
            continue;
        if (strcmp(local, want_local) == 0 && strcmp(remote, want_remote) == 0) {
            *uid = (uid_t)owner;
            rc = UK_OK;
            break;
        }
    }
    fclose(f);
    return rc;
}
