/* The Unix-socket endpoint: same-user clients, length-prefixed JSON. */
#include "uk_unix.h"

#include "uk_err.h"
#include "uk_log.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct client client;

struct uk_unix {
    uv_pipe_t server;
    uk_rpc *rpc;
    char *path;
    size_t message_size;
    client *clients; /* doubly linked, for stop */
    bool stopping;
};

struct client {
    uv_pipe_t pipe;
    uk_unix *server;
    uk_rpc_session *session;
    uint8_t *buf; /* one frame being assembled: header + body */
    size_t len;
    size_t cap;
    bool closing;
    client *prev, *next;
};

typedef struct {
    uv_write_t req;
    uint8_t data[]; /* header + JSON */
} write_req;

static void client_closed(uv_handle_t *h)
{
    client *c = h->data;
    uk_rpc_session_free(c->session);
    free(c->buf);
    free(c);
}

static void client_close(client *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->server->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    /* The session lives until the handle is closed, so the dispatcher never
     * sees it vanish during a call; sends to a closing pipe are refused. */
    uv_close((uv_handle_t *)&c->pipe, client_closed);
}

static void write_done(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    if (status < 0 && status != UV_ECANCELED)
        UK_LOG_DEBUG("unix: write failed: %s", uv_strerror(status));
    free(w);
}

static int client_send(void *ctx, const char *json, size_t len)
{
    client *c = ctx;
    if (c->closing)
        return UK_E_CANCELLED;
    if (len > UINT32_MAX)
        return UK_E_LIMIT_EXCEEDED;
    write_req *w = malloc(sizeof(*w) + 4 + len);
    if (w == NULL)
        return UK_E_NO_MEMORY;
    w->data[0] = (uint8_t)len;
    w->data[1] = (uint8_t)(len >> 8);
    w->data[2] = (uint8_t)(len >> 16);
    w->data[3] = (uint8_t)(len >> 24);
    memcpy(w->data + 4, json, len);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)(4 + len));
    int rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, write_done);
    if (rc != 0) {
        free(w);
        return UK_E_IO;
    }
    return UK_OK;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    client *c = req->data;
    (void)status;
    free(req);
    client_close(c);
}

static void client_request_close(void *ctx, int err)
{
    client *c = ctx;
    UK_LOG_INFO("unix: closing a client: %s", uk_err_name(err));
    /* Let queued answers (the error that explains the close) go out first. */
    if (c->closing)
        return;
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req != NULL)
        req->data = c;
    if (req == NULL || uv_shutdown(req, (uv_stream_t *)&c->pipe, on_shutdown) != 0) {
        free(req);
        client_close(c);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->pipe);
}

static const uk_rpc_transport client_transport = {
    .send = client_send,
    .close = client_request_close,
};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client *c = h->data;
    (void)suggested;
    /* Read at most to the end of the current frame's header or body, so a
     * large frame is never read past its limit. */
    size_t want = c->len < 4 ? 4 - c->len : 0;
    if (want == 0) {
        size_t body = (size_t)c->buf[0] | (size_t)c->buf[1] << 8 | (size_t)c->buf[2] << 16 |
                      (size_t)c->buf[3] << 24;
        want = 4 + body - c->len;
    }
    if (want > 65536)
        want = 65536;
    if (c->len + want > c->cap) {
        size_t cap = c->len + want;
        uint8_t *p = realloc(c->buf, cap);
        if (p == NULL) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        c->buf = p;
        c->cap = cap;
    }
    *buf = uv_buf_init((char *)c->buf + c->len, (unsigned)want);
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
    client *c = stream->data;
    (void)buf;
    if (n < 0) {
        client_close(c);
        return;
    }
    c->len += (size_t)n;
    if (c->len < 4)
        return;
    size_t body = (size_t)c->buf[0] | (size_t)c->buf[1] << 8 | (size_t)c->buf[2] << 16 |
                  (size_t)c->buf[3] << 24;
    if (body > c->server->message_size) {
        UK_LOG_NOTICE("unix: frame of %zu bytes over the %zu-byte limit", body,
                      c->server->message_size);
        uk_rpc_session_reject(c->session, UK_E_LIMIT_EXCEEDED);
        client_request_close(c, UK_E_LIMIT_EXCEEDED);
        return;
    }
    if (c->len < 4 + body)
        return;
    c->len = 0;
    uk_rpc_session_input(c->session, (const char *)c->buf + 4, body);
    /* Keep memory bounded by the largest recent frame, not the largest ever. */
    if (c->cap > 65536) {
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
    }
}

static bool peer_is_us(uv_pipe_t *pipe)
{
    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (uv_fileno((uv_handle_t *)pipe, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred))
        return false;
    if (cred.uid != getuid()) {
        UK_LOG_NOTICE("unix: refused a client of uid %u (pid %d): not our user", (unsigned)cred.uid,
                      (int)cred.pid);
        return false;
    }
    return true;
}

static void on_connection(uv_stream_t *server, int status)
{
    uk_unix *u = server->data;
    if (status < 0 || u->stopping)
        return;
    client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->server = u;
    uv_pipe_init(server->loop, &c->pipe, 0);
    c->pipe.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->pipe, client_closed);
        return;
    }
    c->next = u->clients;
    if (u->clients)
        u->clients->prev = c;
    u->clients = c;
    uk_rpc_peer peer = {.endpoint = UK_ENDPOINT_UNIX, .origin = NULL};
    if (!peer_is_us(&c->pipe) ||
        uk_rpc_session_new(u->rpc, &peer, &client_transport, c, &c->session) != UK_OK) {
        client_close(c);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) != 0)
        client_close(c);
}

/* The socket's directory must be ours and closed to everyone else. */
static int prepare_dir(const char *path)
{
    char dir[PATH_MAX];
    size_t n = strlen(path);
    const char *slash = strrchr(path, '/');
    if (slash == NULL || n >= sizeof(dir))
        return UK_E_CONFIG_INVALID;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    if (dir[0] == '\0')
        return UK_E_CONFIG_INVALID;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        UK_LOG_ERR("unix: cannot create %s: %s", dir, strerror(errno));
        return UK_E_IO;
    }
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        UK_LOG_ERR("unix: %s is not a directory", dir);
        return UK_E_CONFIG_INVALID;
    }
    if (st.st_uid != getuid() || (st.st_mode & 077) != 0) {
        UK_LOG_ERR("unix: %s must belong to uid %u and be closed to others (mode 0700)", dir,
                   (unsigned)getuid());
        return UK_E_CONFIG_INVALID;
    }
    return UK_OK;
}

/* A socket file left behind by a crash is removed; a live one means another
 * ukeyd is running. */
static int clear_stale(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return UK_OK;
    if (!S_ISSOCK(st.st_mode)) {
        UK_LOG_ERR("unix: %s exists and is not a socket", path);
        return UK_E_CONFIG_INVALID;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return UK_E_IO;
    int live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    if (live) {
        UK_LOG_ERR("unix: another ukeyd answers on %s", path);
        return UK_E_BUSY;
    }
    unlink(path);
    return UK_OK;
}

int uk_unix_start(const uk_unix_options *opt, uk_unix **out)
{
    struct sockaddr_un sa;
    if (strlen(opt->path) >= sizeof(sa.sun_path)) {
        UK_LOG_ERR("unix: socket path longer than %zu bytes: %s", sizeof(sa.sun_path) - 1,
                   opt->path);
        return UK_E_CONFIG_INVALID;
    }
    int rc = prepare_dir(opt->path);
    if (rc == UK_OK)
        rc = clear_stale(opt->path);
    if (rc != UK_OK)
        return rc;
    uk_unix *u = calloc(1, sizeof(*u));
    if (u == NULL || (u->path = strdup(opt->path)) == NULL) {
        free(u);
        return UK_E_NO_MEMORY;
    }
    u->rpc = opt->rpc;
    u->message_size = opt->message_size;
    uv_pipe_init(opt->loop, &u->server, 0);
    u->server.data = u;
    /* Bind with a umask that leaves the socket 0600 from its first moment. */
    mode_t old = umask(0177);
    int uvrc = uv_pipe_bind(&u->server, u->path);
    umask(old);
    if (uvrc == 0)
        uvrc = uv_listen((uv_stream_t *)&u->server, 64, on_connection);
    if (uvrc != 0) {
        UK_LOG_ERR("unix: cannot listen on %s: %s", u->path, uv_strerror(uvrc));
        u->stopping = true;
        uk_unix_stop(u);
        return UK_E_IO;
    }
    chmod(u->path, 0600);
    UK_LOG_INFO("unix: listening on %s", u->path);
    *out = u;
    return UK_OK;
}

static void server_closed(uv_handle_t *h)
{
    uk_unix *u = h->data;
    free(u->path);
    free(u);
}

void uk_unix_stop(uk_unix *u)
{
    if (u == NULL)
        return;
    u->stopping = true;
    while (u->clients != NULL)
        client_close(u->clients);
    unlink(u->path);
    uv_close((uv_handle_t *)&u->server, server_closed);
}
