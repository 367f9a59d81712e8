/* ukeyd-nm: the native-messaging host Chrome starts for our extension.
 *
 * Chrome runs it with the caller's origin "chrome-extension://ID/" as the
 * first argument and speaks 4-byte native-endian length + UTF-8 JSON on
 * stdin/stdout. The host checks the ID against the configuration, connects
 * to ukeyd's Unix socket (starting ukeyd when it is not running), attaches
 * the session to that extension, then relays frames both ways unchanged.
 * It never interprets requests: the daemon applies every rule.
 *
 * Limits: a browser frame over UK_LIMIT_NM_FRAME_IN ends the session with an
 * error frame (reading it would cost the memory the limit protects); a daemon
 * frame over UK_LIMIT_NM_FRAME_OUT (Chrome's 1 MB) is replaced by a
 * LIMIT_EXCEEDED error. Exit status: 0 when the browser closed stdin. */
#include "uk_config.h"
#include "uk_err.h"
#include "uk_frame.h"
#include "uk_jsonrpc.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_policy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Chrome's framing is native-endian; the daemon's is little-endian. On the
 * machines we build for they agree, and this says so at compile time. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "native messaging relay assumes LE");

static int send_frame(int fd, const char *json, size_t len)
{
    return uk_frame_write(fd, json, len) == UK_OK ? 0 : -1;
}

/* Sends an error to the browser; id NULL when no request can carry it. */
static void send_error_for(const cJSON *id, int err, const char *detail, cJSON *extra)
{
    cJSON *msg = NULL;
    char *text = NULL;
    size_t len = 0;
    if (uk_jsonrpc_error_new(&msg, id, err, detail, extra) == UK_OK &&
        uk_jsonrpc_print(msg, &text, &len) == UK_OK)
        send_frame(STDOUT_FILENO, text, len);
    free(text);
    cJSON_Delete(msg);
}

/* Tells the browser why the session ends. */
static void send_error(int err, const char *detail)
{
    send_error_for(NULL, err, detail, NULL);
}

/* A browser frame over the daemon's message limit but within ours is read
 * whole, so it can be answered with its own id and the session goes on. */
static void answer_too_large(const char *frame, size_t len, size_t limit)
{
    cJSON *req = cJSON_ParseWithLength(frame, len);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
    /* Only an id the protocol allows is echoed (docs/protocol.md). */
    if (!(cJSON_IsString(id) ||
          (cJSON_IsNumber(id) && id->valuedouble == (double)(int64_t)id->valuedouble)))
        id = NULL;
    cJSON *extra = cJSON_CreateObject();
    if (extra != NULL) {
        cJSON_AddStringToObject(extra, "limit", "message_size");
        cJSON_AddNumberToObject(extra, "max", (double)limit);
    }
    char detail[64];
    snprintf(detail, sizeof(detail), "message is larger than %zu bytes", limit);
    send_error_for(id, UK_E_LIMIT_EXCEEDED, detail, extra);
    cJSON_Delete(req);
}

/* Starts ukeyd from the directory this host lives in (so an installed host
 * starts the installed daemon) and waits until it says it is ready. */
static int start_daemon(const char *config_path)
{
    char self[PATH_MAX], exe[PATH_MAX + 8];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    snprintf(exe, sizeof(exe), "%s/ukeyd", self);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* stdout is the browser's channel: never let the daemon write to it. */
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
        }
        if (config_path)
            execl(exe, "ukeyd", "--config", config_path, (char *)NULL);
        else
            execl(exe, "ukeyd", (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* The first exchange: attach this session to the extension. */
static int attach(int sock, const char *origin)
{
    cJSON *params = cJSON_CreateObject(), *id = cJSON_CreateString("attach"), *req = NULL;
    char *text = NULL, *answer = NULL;
    size_t len = 0;
    int rc = -1;
    if (params == NULL || id == NULL || !cJSON_AddStringToObject(params, "extension", origin) ||
        uk_jsonrpc_request_new(&req, id, "system.attach", params) != UK_OK) {
        params = NULL;
        goto out;
    }
    params = NULL;
    if (uk_jsonrpc_print(req, &text, &len) != UK_OK || send_frame(sock, text, len) != 0)
        goto out;
    if (uk_frame_read(sock, UK_LIMIT_NM_FRAME_OUT, -1, (uint8_t **)&answer, &len) != UK_OK)
        goto out;
    cJSON *v = cJSON_ParseWithLength(answer, len);
    rc = v != NULL && cJSON_GetObjectItemCaseSensitive(v, "result") != NULL ? 0 : -1;
    if (rc != 0 && v != NULL)
        send_frame(STDOUT_FILENO, answer, len); /* the daemon's reason, for the extension */
    cJSON_Delete(v);
out:
    cJSON_Delete(params);
    cJSON_Delete(id);
    cJSON_Delete(req);
    free(text);
    free(answer);
    return rc;
}

static int relay(int sock, size_t message_size)
{
    struct pollfd pfd[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            uint8_t *buf = NULL;
            size_t n = 0;
            int rc = uk_frame_read(STDIN_FILENO, UK_LIMIT_NM_FRAME_IN, -1, &buf, &n);
            if (rc == UK_E_LIMIT_EXCEEDED) {
                /* Reading it would cost the memory the limit protects. */
                uk_log(UK_LOG_LEVEL_NOTICE, "ukeyd-nm: a browser frame over the %u-byte limit",
                       UK_LIMIT_NM_FRAME_IN);
                send_error(UK_E_LIMIT_EXCEEDED, "native messaging frame too large");
                return 1;
            }
            if (rc != UK_OK)
                return 0; /* the browser closed the port, maybe mid-frame */
            if (n > message_size) {
                answer_too_large((const char *)buf, n, message_size);
                free(buf);
                continue;
            }
            rc = send_frame(sock, (const char *)buf, n);
            free(buf);
            if (rc != 0) {
                send_error(UK_E_DAEMON_UNAVAILABLE, "ukeyd closed the connection");
                return 1;
            }
        }
        if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            uint8_t *buf = NULL;
            size_t len = 0;
            /* The daemon never sends more than its own answers; anything
             * over 16 MiB is a broken peer. */
            if (uk_frame_read(sock, 16u * 1024 * 1024, -1, &buf, &len) != UK_OK) {
                send_error(UK_E_DAEMON_UNAVAILABLE, "ukeyd closed the connection");
                return 1;
            }
            int rc = len > UK_LIMIT_NM_FRAME_OUT
                         ? (send_error(UK_E_LIMIT_EXCEEDED, "answer too large for the browser"), 0)
                         : send_frame(STDOUT_FILENO, (const char *)buf, len);
            free(buf);
            if (rc != 0)
                return 0;
        }
    }
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    uk_log_set_ident("ukeyd-nm");
    /* Chrome passes the caller origin first; on some platforms a window
     * handle follows. UKEYD_CONFIG lets tests and packagers point at a
     * config file. */
    if (argc < 2 || strncmp(argv[1], "chrome-extension://", 19) != 0) {
        fprintf(stderr, "ukeyd-nm is started by the browser for the ukeyd extension.\n");
        return 2;
    }
    const char *config_path = getenv("UKEYD_CONFIG");
    uk_config *cfg = NULL;
    uk_policy *policy = NULL;
    int rc = 1, sock = -1;
    /* The administrator's file first, as ukeyd reads it: extension_ids set there count here too. */
    if (uk_config_load_layered(NULL, config_path, &cfg) != UK_OK ||
        uk_policy_new(cfg, &policy) != UK_OK) {
        send_error(UK_E_CONFIG_INVALID, "ukeyd configuration invalid");
        goto out;
    }
    char id[64];
    const char *p = argv[1] + 19;
    size_t n = strcspn(p, "/");
    if (n >= sizeof(id) || (p[n] != '\0' && strcmp(p + n, "/") != 0)) {
        send_error(UK_E_ORIGIN_NOT_ALLOWED, "malformed extension origin");
        goto out;
    }
    memcpy(id, p, n);
    id[n] = '\0';
    /* Checked here too, so a host started for a stranger never even wakes
     * the daemon. */
    if (!uk_policy_extension_allowed(policy, id)) {
        uk_log(UK_LOG_LEVEL_NOTICE, "ukeyd-nm: extension %s is not allowed", id);
        send_error(UK_E_ORIGIN_NOT_ALLOWED, "extension not allowed");
        goto out;
    }
    sock = uk_frame_connect(cfg->socket_path);
    if (sock < 0 && start_daemon(config_path) == 0) {
        for (int i = 0; i < 50 && sock < 0; i++) {
            sock = uk_frame_connect(cfg->socket_path);
            if (sock < 0)
                nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000}, NULL);
        }
    }
    if (sock < 0) {
        send_error(UK_E_DAEMON_UNAVAILABLE, "ukeyd is not running and could not be started");
        goto out;
    }
    if (attach(sock, argv[1]) != 0)
        goto out;
    rc = relay(sock, cfg->limits.message_size);
out:
    if (sock >= 0)
        close(sock);
    uk_policy_free(policy);
    uk_config_free(cfg);
    return rc;
}
