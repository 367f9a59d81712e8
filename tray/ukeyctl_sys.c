/*
 * ukeyctl_sys.c - who listens on a port, who talks to pcscd: /proc/net/tcp{,6}, NETLINK_SOCK_DIAG
 * for Unix sockets and their peers, and the socket inodes in /proc/PID/fd.
 *
 * Limits, said plainly (docs/doctor.md): a process's fds are readable only for our own processes
 * (or all as root), so another user's program (a vendor service running as root) is found as "a
 * socket" without a name; pcscd does not tell which client holds a card exclusively, so the
 * clients listed are all programs connected to pcscd, the holder among them.
 */
#include "ukeyctl.h"

#include <dirent.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Most sockets looked at in one scan; more are ignored (the answer may then be incomplete). */
#define MAX_SOCKETS 8192

int ukctl_proc_get(pid_t pid, ukctl_proc *p)
{
    char path[64];
    memset(p, 0, sizeof(*p));
    p->pid = pid;
    snprintf(path, sizeof path, "/proc/%ld/comm", (long)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    if (fgets(p->comm, sizeof p->comm, f) == NULL)
        p->comm[0] = '\0';
    fclose(f);
    p->comm[strcspn(p->comm, "\n")] = '\0';
    snprintf(path, sizeof path, "/proc/%ld/exe", (long)pid);
    ssize_t n = readlink(path, p->exe, sizeof p->exe - 1);
    p->exe[n > 0 ? n : 0] = '\0';
    return 0;
}

/* Calls fn(pid, inode, arg) for every socket fd of every process we may look into; stops when
 * fn returns true. */
static void scan_socket_fds(bool (*fn)(pid_t, unsigned long, void *), void *arg)
{
    DIR *proc = opendir("/proc");
    if (proc == NULL)
        return;
    struct dirent *d;
    bool stop = false;
    while (!stop && (d = readdir(proc)) != NULL) {
        char *end;
        long pid = strtol(d->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/fd", pid);
        DIR *fds = opendir(path);
        if (fds == NULL)
            continue;
        struct dirent *f;
        while (!stop && (f = readdir(fds)) != NULL) {
            char link[320], target[64];
            if (f->d_name[0] == '.')
                continue;
            snprintf(link, sizeof link, "/proc/%ld/fd/%s", pid, f->d_name);
            ssize_t n = readlink(link, target, sizeof target - 1);
            if (n <= 0)
                continue;
            target[n] = '\0';
            unsigned long inode;
            if (sscanf(target, "socket:[%lu]", &inode) == 1)
                stop = fn((pid_t)pid, inode, arg);
        }
        closedir(fds);
    }
    closedir(proc);
}

/* ---- TCP listeners ---- */

struct inode_set {
    unsigned long *v;
    size_t n, cap;
};

static void set_add(struct inode_set *s, unsigned long x)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i] == x)
            return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        if (cap > MAX_SOCKETS)
            return;
        unsigned long *v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL)
            return;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

static bool set_has(const struct inode_set *s, unsigned long x)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i] == x)
            return true;
    return false;
}

/* Adds the inodes of sockets listening on port in file (/proc/net/tcp or tcp6). */
static void listening_inodes(const char *file, uint16_t port, struct inode_set *s)
{
    FILE *f = fopen(file, "re");
    if (f == NULL)
        return;
    char line[512];
    if (fgets(line, sizeof line, f) == NULL) { /* header */
        fclose(f);
        return;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        char local[64];
        unsigned st;
        unsigned long inode;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, " %*d: %63s %*s %x %*s %*s %*s %*u %*u %lu", local, &st, &inode) != 3)
            continue;
        const char *colon = strrchr(local, ':');
        if (colon == NULL || st != 0x0A) /* TCP_LISTEN */
            continue;
        if (strtoul(colon + 1, NULL, 16) == port)
            set_add(s, inode);
    }
    fclose(f);
}

struct owner_scan {
    const struct inode_set *inodes;
    ukctl_proc *out;
    size_t max, n;
};

static bool owner_fn(pid_t pid, unsigned long inode, void *arg)
{
    struct owner_scan *o = arg;
    if (!set_has(o->inodes, inode))
        return false;
    for (size_t i = 0; i < o->n; i++)
        if (o->out[i].pid == pid)
            return false;
    if (o->n < o->max && ukctl_proc_get(pid, &o->out[o->n]) == 0)
        o->n++;
    return o->n == o->max;
}

int ukctl_tcp_listeners(uint16_t port, ukctl_proc *out, size_t max, size_t *n_out)
{
    struct inode_set s = {0};
    listening_inodes("/proc/net/tcp", port, &s);
    listening_inodes("/proc/net/tcp6", port, &s);
    struct owner_scan o = {.inodes = &s, .out = out, .max = max};
    if (s.n > 0 && max > 0)
        scan_socket_fds(owner_fn, &o);
    *n_out = o.n;
    int found = (int)s.n;
    free(s.v);
    return found;
}

/* ---- PC/SC clients ---- */

struct unix_sock {
    unsigned long inode, peer;
    bool pcsc_name; /* bound to the pcscd socket's path */
};

/* Every Unix socket of our network namespace with its peer and whether it carries name. */
static int unix_sockets(const char *name, struct unix_sock **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -1;
    struct {
        struct nlmsghdr nlh;
        struct unix_diag_req r;
    } req = {
        .nlh = {.nlmsg_len = sizeof(req),
                .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
        .r = {.sdiag_family = AF_UNIX,
              .udiag_states = ~0u,
              .udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER},
    };
    struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
    if (sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&nl, sizeof nl) < 0) {
        close(fd);
        return -1;
    }
    struct unix_sock *v = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    long buf[8192 / sizeof(long)];
    for (;;) {
        ssize_t len = recv(fd, buf, sizeof buf, 0);
        if (len < 0 && errno == EINTR)
            continue;
        if (len <= 0)
            goto out;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len);
             h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE) {
                rc = 0;
                goto out;
            }
            if (h->nlmsg_type == NLMSG_ERROR)
                goto out;
            struct unix_diag_msg *m = NLMSG_DATA(h);
            struct unix_sock s = {.inode = m->udiag_ino};
            int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
            for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, alen);
                 a = RTA_NEXT(a, alen)) {
                if (a->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(a) >= sizeof(uint32_t)) {
                    uint32_t peer;
                    memcpy(&peer, RTA_DATA(a), sizeof peer);
                    s.peer = peer;
                } else if (a->rta_type == UNIX_DIAG_NAME && name != NULL) {
                    size_t nl_len = RTA_PAYLOAD(a);
                    s.pcsc_name = nl_len == strlen(name) && memcmp(RTA_DATA(a), name, nl_len) == 0;
                }
            }
            if (n == cap) {
                size_t c = cap ? cap * 2 : 256;
                if (c > MAX_SOCKETS)
                    continue;
                struct unix_sock *nv = realloc(v, c * sizeof(*nv));
                if (nv == NULL)
                    goto out;
                v = nv;
                cap = c;
            }
            v[n++] = s;
        }
    }
out:
    close(fd);
    if (rc != 0) {
        free(v);
        return -1;
    }
    *out = v;
    *n_out = n;
    return 0;
}

struct pcscd_scan {
    struct inode_set pcscd_inodes; /* sockets owned by a process named pcscd */
    struct inode_set client_inodes;
    pid_t exclude;
    ukctl_proc *out;
    size_t max, n;
    int found;
};

static bool pcscd_fn(pid_t pid, unsigned long inode, void *arg)
{
    struct pcscd_scan *s = arg;
    ukctl_proc p;
    /* comm is read per socket: cheap enough for the few hundred sockets of a desktop. */
    if (ukctl_proc_get(pid, &p) == 0 && strcmp(p.comm, "pcscd") == 0)
        set_add(&s->pcscd_inodes, inode);
    return false;
}

static bool client_fn(pid_t pid, unsigned long inode, void *arg)
{
    struct pcscd_scan *s = arg;
    if (pid == s->exclude || !set_has(&s->client_inodes, inode))
        return false;
    for (size_t i = 0; i < s->n; i++)
        if (s->out[i].pid == pid)
            return false;
    ukctl_proc p;
    if (ukctl_proc_get(pid, &p) != 0 || strcmp(p.comm, "pcscd") == 0)
        return false;
    s->found++;
    if (s->n < s->max)
        s->out[s->n++] = p;
    return false;
}

int ukctl_pcsc_clients(const char *pcsc_socket, pid_t exclude, ukctl_proc *out, size_t max)
{
    struct unix_sock *socks = NULL;
    size_t n = 0;
    if (unix_sockets(pcsc_socket, &socks, &n) != 0)
        return -1;
    struct pcscd_scan s = {.exclude = exclude, .out = out, .max = max};
    scan_socket_fds(pcscd_fn, &s);
    for (size_t i = 0; i < n; i++) {
        /* A server-side socket of pcscd (named like the listener, or owned by pcscd): its peer
         * is a client; a socket whose peer is owned by pcscd is a client itself. */
        if ((socks[i].pcsc_name || set_has(&s.pcscd_inodes, socks[i].inode)) && socks[i].peer)
            set_add(&s.client_inodes, socks[i].peer);
        if (socks[i].peer && set_has(&s.pcscd_inodes, socks[i].peer))
            set_add(&s.client_inodes, socks[i].inode);
    }
    scan_socket_fds(client_fn, &s);
    free(socks);
    free(s.pcscd_inodes.v);
    free(s.client_inodes.v);
    return s.found;
}

pid_t ukctl_peer_pid(int fd)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
        return -1;
    return cr.pid;
}
