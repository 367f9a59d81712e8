/* ukeyctl.h - what ukeyctl's files share: the request helper, the language of the texts for
 * people, and the /proc and netlink lookups doctor uses (ukeyctl_sys.c). */
#ifndef UKEYCTL_H
#define UKEYCTL_H

#include "uk_config.h"
#include "uk_jsonrpc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Sends one request on fd (params: taken, may be NULL) and returns the response, skipping
 * notifications; NULL when the daemon did not answer. */
uk_jsonrpc_msg *ukctl_round_trip(int fd, const char *method, cJSON *params);

/* The result of a response, or NULL; the error's data.reason, or NULL. */
const cJSON *ukctl_result(const uk_jsonrpc_msg *msg);
const char *ukctl_reason(const uk_jsonrpc_msg *msg);

/* Whether texts for people are in Chinese: LC_ALL, else LC_MESSAGES, else LANG (the first one
 * set and not empty) starts with "zh", or LANGUAGE does. */
bool ukctl_zh(void);
/* en or zh, by ukctl_zh(). */
const char *ukctl_tr(const char *en, const char *zh) __attribute__((format_arg(1)));

/* "2026-11-24T03:20:31Z" -> "2026-11-24" in the local time zone; other text as it is. */
void ukctl_local_date(const char *iso, char *buf, size_t size);

/* ---- doctor (ukeyctl_doctor.c) ---- */

typedef struct ukctl_doctor_opts {
    const char *socket_path;
    const uk_config *cfg;  /* may be NULL (--socket given) */
    const char *ca_bundle; /* NULL: the chain check is skipped */
    bool sign;             /* the test signature (asks the PIN through ukeyd's dialog) */
    bool json;
} ukctl_doctor_opts;

/* Runs every check, prints them, and returns the exit status: 0 all OK, 1 a WARN, 2 a FAIL. */
int ukctl_doctor(const ukctl_doctor_opts *o);

/* ---- /proc and sockets (ukeyctl_sys.c) ---- */

typedef struct ukctl_proc {
    pid_t pid;
    char comm[64]; /* /proc/PID/comm */
    char exe[256]; /* readlink /proc/PID/exe, "" when not readable */
} ukctl_proc;

/* Fills p for pid: 0, or -1 when the process is gone. */
int ukctl_proc_get(pid_t pid, ukctl_proc *p);

/*
 * Processes that listen on TCP port (IPv4 or IPv6, any local address), from /proc/net/tcp{,6}
 * and the socket inodes in /proc/PID/fd (only processes we may look into: our own, or all as
 * root). Returns how many listening sockets were found (>= 0), even when their owner is not
 * visible; fills up to max owners into out and sets *n_out.
 */
int ukctl_tcp_listeners(uint16_t port, ukctl_proc *out, size_t max, size_t *n_out);

/*
 * Processes connected to the PC/SC service (pcscd), apart from exclude (ukeyd itself): their Unix
 * sockets' peers are sockets named pcsc_socket (sock_diag) or owned by a process called pcscd.
 * Returns the count found (fills up to max), or -1 when the sockets could not be listed.
 */
int ukctl_pcsc_clients(const char *pcsc_socket, pid_t exclude, ukctl_proc *out, size_t max);

/* The peer's pid of a connected Unix socket (SO_PEERCRED), or -1. */
pid_t ukctl_peer_pid(int fd);

#endif
