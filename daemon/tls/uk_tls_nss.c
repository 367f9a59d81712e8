/*
 * uk_tls_nss.c - the certutil adapter of the tls module: is our CA in the NSS database, add it,
 * delete it. certutil (NSS tools) runs through posix_spawn, never a shell, in a session of its own
 * with stdin on /dev/null, so it can never wait for a pass phrase; it is killed after
 * UK_TLS_TOOL_TIMEOUT_MS. Its exit status and output stay in the log. The only nickname ever named
 * is ours, and `certutil -L` without a nickname is only read.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_tls_internal.h"

extern char **environ;

/* Largest certutil output kept; the rest is read and dropped. */
#define MAX_TOOL_OUTPUT (64u * 1024u)

/* Certificates under our nickname deleted at most, in one go (one per certutil -D). */
#define MAX_NSS_DELETES 16

/* An argv whose strings are copied into the struct, so nothing const is handed to exec. */
struct argv_buf {
    char store[3 * UK_TLS_PATH_MAX];
    size_t used;
    char *argv[16];
    size_t argc;
};

static int argv_add(struct argv_buf *a, const char *s)
{
    size_t n = strlen(s) + 1;
    if (a->argc + 1 >= sizeof(a->argv) / sizeof(a->argv[0]) || n > sizeof(a->store) - a->used)
        return UK_E_CONFIG_INVALID;
    a->argv[a->argc] = memcpy(a->store + a->used, s, n);
    a->used += n;
    a->argc++;
    a->argv[a->argc] = NULL;
    return UK_OK;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Run argv (argv[0] searched in PATH) with stdin /dev/null, stdout and stderr into one pipe, in a
 * new session (no controlling terminal, so no pass phrase prompt can ever block), with default
 * signal dispositions and an empty signal mask. Keeps up to cap - 1 bytes of output, NUL
 * terminated. *status is the exit status, or -1 when it was killed or died of a signal.
 * Errors: UK_E_NOT_FOUND (no such program), UK_E_TIMEOUT (killed after UK_TLS_TOOL_TIMEOUT_MS),
 * UK_E_IO.
 */
static int run_tool(char *const argv[], char *out, size_t cap, int *status)
{
    int pfd[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    pid_t pid = -1;
    size_t len = 0;
    int rc = UK_OK;
    int err;

    *status = -1;
    out[0] = 0;
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        UK_LOG_ERR("pipe: %s", strerror(errno));
        return UK_E_IO;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
    err = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(pfd[1]);
    if (err != 0) {
        close(pfd[0]);
        if (err == ENOENT)
            return UK_E_NOT_FOUND;
        UK_LOG_ERR("cannot run %s: %s", argv[0], strerror(err));
        return UK_E_IO;
    }

    int64_t deadline = now_ms() + UK_TLS_TOOL_TIMEOUT_MS;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            UK_LOG_ERR("%s took longer than %d ms; killing it", argv[0], UK_TLS_TOOL_TIMEOUT_MS);
            kill(pid, SIGKILL);
            rc = UK_E_TIMEOUT;
            break;
        }
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            UK_LOG_ERR("poll: %s", strerror(errno));
            kill(pid, SIGKILL);
            rc = UK_E_IO;
            break;
        }
        if (n == 0)
            continue;
        char chunk[4096];
        ssize_t got = read(pfd[0], chunk, sizeof(chunk));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break; /* EOF (or an error): the child closed its ends */
        size_t keep = (size_t)got;
        if (keep > cap - 1 - len)
            keep = cap - 1 - len;
        memcpy(out + len, chunk, keep);
        len += keep;
        out[len] = 0;
    }
    close(pfd[0]);

    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0) {
        if (errno != EINTR) {
            UK_LOG_ERR("waitpid %s: %s", argv[0], strerror(errno));
            return rc != UK_OK ? rc : UK_E_IO;
        }
    }
    if (rc == UK_OK && WIFEXITED(ws))
        *status = WEXITSTATUS(ws);
    return rc;
}

/* The first line of certutil's output, for the log. */
static const char *first_line(char *text)
{
    char *nl = strchr(text, '\n');
    if (nl != NULL)
        *nl = 0;
    return text[0] != 0 ? text : "(no output)";
}

struct tool_run {
    int rc;     /* run_tool's result */
    int status; /* exit status, -1 when not known */
    char out[MAX_TOOL_OUTPUT];
};

/*
 * certutil VERB -d sql:DB [-n NICKNAME] EXTRA... (extra is NULL-terminated). The nickname is ours
 * whenever one is given: no other nickname is ever named.
 */
static void certutil(const uk__tls_nss *n, struct tool_run *r, const char *verb, bool with_nickname,
                     const char *const extra[])
{
    struct argv_buf a;
    char db[UK_TLS_PATH_MAX + 8];

    memset(&a, 0, sizeof(a));
    r->status = -1;
    r->out[0] = 0;
    int len = snprintf(db, sizeof(db), "sql:%s", n->db);
    r->rc = len < 0 || (size_t)len >= sizeof(db) ? UK_E_CONFIG_INVALID : UK_OK;
    const char *const args[] = {n->certutil, verb, "-d", db, "-n", n->nickname};
    size_t nargs = with_nickname ? 6 : 4;
    for (size_t i = 0; r->rc == UK_OK && i < nargs; i++)
        r->rc = argv_add(&a, args[i]);
    for (size_t i = 0; r->rc == UK_OK && extra[i] != NULL; i++)
        r->rc = argv_add(&a, extra[i]);
    if (r->rc == UK_OK)
        r->rc = run_tool(a.argv, r->out, sizeof(r->out), &r->status);
    if (r->rc == UK_E_NOT_FOUND)
        UK_LOG_WARN("%s not found (install libnss3-tools); the ukeyd CA is not in the NSS "
                    "database %s, so Chrome will not trust wss://127.0.0.1",
                    n->certutil, n->db);
}

/*
 * Whether `certutil -L` lists our nickname with SSL trust flags holding C (trusted CA for TLS
 * servers). Lines are "NICKNAME<spaces>SSL,S/MIME,JAR/XPI".
 */
static bool listed_as_trusted(const char *list, const char *nickname)
{
    size_t nlen = strlen(nickname);

    for (const char *line = list; line != NULL && *line != 0;) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (len > nlen && memcmp(line, nickname, nlen) == 0 && line[nlen] == ' ') {
            const char *p = line + nlen;
            const char *stop = line + len;
            while (p < stop && *p == ' ')
                p++;
            for (; p < stop && *p != ',' && *p != ' '; p++) {
                if (*p == 'C')
                    return true;
            }
        }
        line = end != NULL ? end + 1 : NULL;
    }
    return false;
}

static uk_tls_trust lookup(const uk__tls_nss *n, X509 *ca, struct tool_run *r)
{
    static const char *const pem[] = {"-a", NULL};
    static const char *const none[] = {NULL};

    certutil(n, r, "-L", true, pem);
    if (r->rc == UK_E_NOT_FOUND)
        return UK_TLS_TRUST_NO_TOOL;
    if (r->rc != UK_OK)
        return UK_TLS_TRUST_FAILED;
    if (r->status != 0)
        return UK_TLS_TRUST_ABSENT; /* "could not find certificate named ..." */
    if (!uk__tls_pem_holds_cert(r->out, strlen(r->out), ca))
        return UK_TLS_TRUST_ABSENT;

    /* Present is not enough: an add that failed half-way leaves the certificate without trust. */
    certutil(n, r, "-L", false, none);
    if (r->rc == UK_E_NOT_FOUND)
        return UK_TLS_TRUST_NO_TOOL;
    if (r->rc != UK_OK || r->status != 0)
        return UK_TLS_TRUST_FAILED;
    return listed_as_trusted(r->out, n->nickname) ? UK_TLS_TRUST_PRESENT : UK_TLS_TRUST_ABSENT;
}

/* Each certutil -D removes one certificate; it fails once none is left under the nickname. */
static uk_tls_trust delete_ours(const uk__tls_nss *n, struct tool_run *r)
{
    static const char *const none[] = {NULL};

    for (int i = 0; i < MAX_NSS_DELETES; i++) {
        certutil(n, r, "-D", true, none);
        if (r->rc == UK_E_NOT_FOUND)
            return UK_TLS_TRUST_NO_TOOL;
        if (r->rc != UK_OK)
            return UK_TLS_TRUST_FAILED;
        if (r->status != 0)
            return UK_TLS_TRUST_ABSENT;
        UK_LOG_INFO("removed the certificate named '%s' from %s", n->nickname, n->db);
    }
    UK_LOG_WARN("more than %d certificates named '%s' in %s", MAX_NSS_DELETES, n->nickname, n->db);
    return UK_TLS_TRUST_FAILED;
}

static uk_tls_trust add(const uk__tls_nss *n, const char *ca_path, struct tool_run *r)
{
    const char *const extra[] = {"-t", "C,,", "-i", ca_path, NULL};

    uk_tls_trust t = delete_ours(n, r);
    if (t != UK_TLS_TRUST_ABSENT)
        return t;
    certutil(n, r, "-A", true, extra);
    if (r->rc == UK_E_NOT_FOUND)
        return UK_TLS_TRUST_NO_TOOL;
    if (r->rc != UK_OK || r->status != 0) {
        UK_LOG_WARN("could not add the ukeyd CA to the NSS database %s (does it have a "
                    "password?): %s",
                    n->db, r->rc == UK_OK ? first_line(r->out) : uk_err_name(r->rc));
        /* certutil may have stored the certificate without its trust (a password-protected
         * database): take it out again, so the database is as we found it. */
        (void)delete_ours(n, r);
        return UK_TLS_TRUST_FAILED;
    }
    UK_LOG_NOTICE("added the ukeyd CA to the NSS database %s as '%s'", n->db, n->nickname);
    return UK_TLS_TRUST_ADDED;
}

uk_tls_trust uk__tls_nss_lookup(const uk__tls_nss *n, X509 *ca)
{
    struct tool_run *r = malloc(sizeof(*r));
    if (r == NULL)
        return UK_TLS_TRUST_FAILED;
    uk_tls_trust t = lookup(n, ca, r);
    free(r);
    return t;
}

uk_tls_trust uk__tls_nss_delete(const uk__tls_nss *n)
{
    struct tool_run *r = malloc(sizeof(*r));
    if (r == NULL)
        return UK_TLS_TRUST_FAILED;
    uk_tls_trust t = delete_ours(n, r);
    free(r);
    return t;
}

uk_tls_trust uk__tls_nss_add(const uk__tls_nss *n, const char *ca_path)
{
    struct tool_run *r = malloc(sizeof(*r));
    if (r == NULL)
        return UK_TLS_TRUST_FAILED;
    uk_tls_trust t = add(n, ca_path, r);
    free(r);
    return t;
}
