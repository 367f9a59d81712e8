/* The WSS endpoint: libwebsockets 4.1 on our libuv loop, the Origin/Host gate, rpc sessions. */

/*
 * libwebsockets 4.1's public headers declare helpers over OpenSSL's RSA and EC_KEY types, which
 * OPENSSL_NO_DEPRECATED hides. This file calls no OpenSSL function itself; it only needs those
 * declarations to parse.
 */
#undef OPENSSL_NO_DEPRECATED
#include "uk_wss.h"

#include "uk_err.h"
#include "uk_peer.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_policy.h"
#include "uk_rpc.h"

#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* lws sizes its fd lookup table from this; the default (the process fd limit) costs megabytes. */
#define WSS_FD_LIMIT 1024u

/* Longest Host header we look at; anything longer is refused unread. */
#define HOST_MAX 64u

/* Longest refused Origin value written to the log. */
#define LOG_ORIGIN_MAX 200

/* Receive buffers above this are released after each message instead of being kept. */
#define RX_KEEP 4096u

/* Answers up to this size made inside a connection's RECEIVE callback are written at once, from
 * one buffer of the endpoint; larger ones go through the queue (see write_now). */
#define TX_DIRECT_MAX 4096u

/* lws 4.1.6 makes one uv_idle and one uv_timer of its own per context; room for a few more. */
#define LWS_HANDLES_MAX 8u

struct out_msg {
    struct out_msg *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then the message */
};

/* Per-connection state; lws allocates and zeroes it, and frees it after LWS_CALLBACK_CLOSED. */
struct session {
    uk_wss *w;
    struct lws *wsi;
    uk_rpc_session *rs;
    char origin[UK_ORIGIN_MAX + 1]; /* as checked by the gate */
    char *rx;
    size_t rx_len, rx_cap;
    struct out_msg *head, *tail;
    size_t queued;
    int close_code;     /* nonzero: close once the queue is empty */
    bool kill_on_timer; /* the close reason is set; LWS_CALLBACK_TIMER ends the connection */
    bool counted;
    bool gathering;    /* rx holds the first pieces of a message */
    bool in_rx;        /* inside this connection's RECEIVE callback: t_send may write at once */
    bool write_failed; /* a write from RECEIVE failed: the callback returns -1 (close) */
};

struct uk_wss {
    uv_loop_t *loop;
    uk_rpc *rpc;
    uk_policy *policy;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    uint16_t port;
    size_t message_size;
    size_t connections;
    void *foreign_loops[1];
    /* Shutdown (see uk_wss_close): lws's own non-socket handles, recorded when the context was
     * made; the idle handle that waits for them to leave the loop; the caller's callback. */
    uv_handle_t *lws_handles[LWS_HANDLES_MAX];
    size_t n_lws_handles;
    bool closing;
    uv_idle_t reaper;
    uk_wss_close_cb close_cb;
    void *close_ctx;
    unsigned char tx[LWS_PRE + TX_DIRECT_MAX]; /* write_now's frame: lws's headroom, then text */
};

/* ---- lws log lines into ours ---- */

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    /* Our own lines say what went wrong; lws's are detail (a refused upgrade, a failed bind). */
    uk_log(level == LLL_ERR ? UK_LOG_LEVEL_NOTICE : UK_LOG_LEVEL_DEBUG, "lws: %.*s", (int)n, line);
}

/* ---- the gate ---- */

static void log_refusal(const char *origin, size_t len, int err, const char *why)
{
    if (origin == NULL)
        UK_LOG_NOTICE("refused: endpoint=wss origin=(none) reason=%s (%s)", uk_err_name(err), why);
    else
        UK_LOG_NOTICE("refused: endpoint=wss origin=\"%.*s\"%s reason=%s (%s)",
                      (int)(len > LOG_ORIGIN_MAX ? LOG_ORIGIN_MAX : len), origin,
                      len > LOG_ORIGIN_MAX ? "..." : "", uk_err_name(err), why);
}

/*
 * Copies header h into buf (size bytes) and sets *len, or returns false when it is missing
 * (*len = 0) or longer than size - 1 (*len = its length, buf holds a prefix for the log).
 */
static bool get_header(struct lws *wsi, enum lws_token_indexes h, char *buf, size_t size,
                       size_t *len)
{
    int total = lws_hdr_total_length(wsi, h);
    buf[0] = '\0';
    *len = total > 0 ? (size_t)total : 0;
    if (total <= 0)
        return false;
    if ((size_t)total >= size) {
        /* Too long to be valid: keep only what fits for the log, via a bounded copy. */
        char *tmp = malloc((size_t)total + 1);
        if (tmp != NULL && lws_hdr_copy(wsi, tmp, total + 1, h) > 0) {
            memcpy(buf, tmp, size - 1);
            buf[size - 1] = '\0';
        }
        free(tmp);
        return false;
    }
    int n = lws_hdr_copy(wsi, buf, (int)size, h);
    if (n < 0)
        return false;
    *len = (size_t)n;
    return true;
}

/* Returns 0 when the upgrade may proceed; otherwise answers 403 and returns nonzero. */
static int gate(uk_wss *w, struct lws *wsi, struct session *s)
{
    char origin[UK_ORIGIN_MAX + 1], host[HOST_MAX];
    size_t olen = 0, hlen = 0;
    const char *why = NULL;
    int err = UK_OK;

    bool have_origin = get_header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin, &olen);
    bool have_host = get_header(wsi, WSI_TOKEN_HOST, host, sizeof host, &hlen);
    uid_t peer_uid = (uid_t)-1;
    /* Origin and Host can be forged by any local program; the owner of the
     * client socket cannot. A page in the user's browser runs as the user. */
    int peer_rc = uk_peer_loopback_uid(lws_get_socket_fd(wsi), &peer_uid);
    if (peer_rc != UK_OK || peer_uid != getuid()) {
        err = UK_E_ORIGIN_NOT_ALLOWED;
        why = peer_rc != UK_OK ? "the client's owner could not be found"
                               : "the client runs as another user";
    } else if (olen == 0) {
        err = UK_E_ORIGIN_NOT_ALLOWED;
        why = "no Origin header";
    } else if (!have_origin) {
        err = UK_E_ORIGIN_NOT_ALLOWED;
        why = "Origin too long";
    } else if (uk_policy_wss_origin_access(w->policy, origin, olen, &why) == UK_ACCESS_REFUSED) {
        /* A pairable origin is let in: the dispatcher gives it system.hello and system.pair
         * only, so that the user can be asked about it. */
        err = UK_E_ORIGIN_NOT_ALLOWED;
    } else if (!have_host || !uk_policy_host_allowed(host, hlen, w->port)) {
        err = UK_E_HOST_NOT_ALLOWED;
        why = hlen == 0 ? "no Host header" : "Host is not 127.0.0.1:PORT or localhost:PORT";
    }
    if (err != UK_OK) {
        log_refusal(olen > 0 ? origin : NULL, olen, err, why);
        /* The body is a fixed string: nothing from the request is reflected. */
        lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN, uk_err_name(err));
        return -1;
    }
    memcpy(s->origin, origin, olen + 1);
    return 0;
}

/* ---- rpc transport: send and close ---- */

static void request_write(struct session *s)
{
    if (s->wsi != NULL)
        lws_callback_on_writable(s->wsi);
}

/*
 * An answer made while lws delivers this connection's message in one piece (the dispatcher answers
 * most calls before uk_rpc_session_input returns), with nothing queued or held by lws ahead of it,
 * is written at once, as Node's ws does. lws 4.1 allows lws_write outside WRITEABLE: what the
 * socket does not take it keeps (lws_partial_buffered) and sends before the next WRITEABLE
 * callback, so order is kept and nothing is lost. This saves the WRITEABLE round trip, which with
 * the libuv event library costs a second loop iteration and four epoll_ctl (uv_poll_start for
 * POLLOUT and back). Answers made at other times (worker results, events) and large ones use the
 * queue.
 */
static bool may_write_now(const struct session *s, size_t len)
{
    return s->in_rx && s->head == NULL && s->wsi != NULL && len <= TX_DIRECT_MAX &&
           !lws_partial_buffered(s->wsi);
}

static void write_now(struct session *s, const char *json, size_t len)
{
    unsigned char *text = s->w->tx + LWS_PRE;
    memcpy(text, json, len);
    if (lws_write(s->wsi, text, len, LWS_WRITE_TEXT) < 0)
        s->write_failed = true; /* the socket is unusable: on_receive closes the connection */
}

static int t_send(void *ctx, const char *json, size_t len)
{
    struct session *s = ctx;
    if (s->close_code != 0 || s->write_failed)
        return UK_OK; /* closing: later answers are dropped with the connection */
    if (len > UK_WSS_QUEUE_MAX || s->queued > UK_WSS_QUEUE_MAX - len)
        return UK_E_LIMIT_EXCEEDED;
    if (may_write_now(s, len)) {
        write_now(s, json, len);
        return UK_OK;
    }
    struct out_msg *m = malloc(sizeof *m + LWS_PRE + len);
    if (m == NULL)
        return UK_E_NO_MEMORY;
    m->next = NULL;
    m->len = len;
    if (len > 0)
        memcpy(m->buf + LWS_PRE, json, len);
    if (s->tail != NULL)
        s->tail->next = m;
    else
        s->head = m;
    s->tail = m;
    s->queued += len;
    request_write(s);
    return UK_OK;
}

static int close_code_for(int err)
{
    switch (err) {
    case UK_E_CANCELLED:
        return LWS_CLOSE_STATUS_GOINGAWAY;
    case UK_E_BUSY:
        return 1013; /* try again later */
    case UK_E_INTERNAL:
    case UK_E_NO_MEMORY:
        return LWS_CLOSE_STATUS_UNEXPECTED_CONDITION;
    default:
        return LWS_CLOSE_STATUS_POLICY_VIOLATION;
    }
}

static void begin_close(struct session *s, int code)
{
    if (s->close_code != 0)
        return;
    s->close_code = code;
    if (s->wsi != NULL) {
        /* keep reading: on_receive drops messages now, and lws must see the close ack */
        lws_callback_on_writable(s->wsi);
    }
}

static void t_close(void *ctx, int err)
{
    begin_close(ctx, close_code_for(err));
}

static const uk_rpc_transport transport = {.send = t_send, .close = t_close};

static void session_release(struct session *s)
{
    if (s->rs != NULL) {
        uk_rpc_session_free(s->rs);
        s->rs = NULL;
    }
    while (s->head != NULL) {
        struct out_msg *m = s->head;
        s->head = m->next;
        free(m);
    }
    s->tail = NULL;
    s->queued = 0;
    free(s->rx);
    s->rx = NULL;
    s->rx_len = s->rx_cap = 0;
    if (s->counted) {
        s->w->connections--;
        s->counted = false;
    }
    s->wsi = NULL;
}

/* ---- events ---- */

/*
 * Sends a close frame with code, then ends the connection once the client answers (or lws gives
 * up waiting). Debian's lws 4.1.6 is a _DEBUG build whose service loop, after a callback returns
 * -1, closes the connection a second time at once ("uv repeat test") and so drops the close frame
 * it had just queued; lws timeouts close without one. The wsi timer is the path that keeps it:
 * the reason is set here, the timer fires on the next loop turn, LWS_CALLBACK_TIMER returns -1,
 * and lws sends the close frame and waits for the client's answer as usual.
 */
static int close_soon(struct lws *wsi, struct session *s, int code, const char *reason)
{
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)(uintptr_t)reason,
                     strlen(reason));
    s->kill_on_timer = true;
    lws_set_timer_usecs(wsi, 1);
    return 0;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t k;
        uint32_t v;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            v = c & 0x1fu;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            v = c & 0x0fu;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            v = c & 0x07u;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            v = (v << 6) | (p[i + j] & 0x3fu);
        }
        if ((k == 2 && v < 0x800) || (k == 3 && (v < 0x10000 || v > 0x10ffff)) ||
            (v >= 0xd800 && v <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static int on_established(uk_wss *w, struct lws *wsi, struct session *s)
{
    s->w = w;
    s->wsi = wsi;
    const uk_rpc_peer peer = {.endpoint = UK_ENDPOINT_WSS, .origin = s->origin};
    uk_rpc_session *rs = NULL;
    int rc = uk_rpc_session_new(w->rpc, &peer, &transport, s, &rs);
    if (rc != UK_OK) {
        log_refusal(s->origin, strlen(s->origin), rc, "session refused by the dispatcher");
        s->wsi = NULL;
        if (rc == UK_E_LIMIT_EXCEEDED)
            return close_soon(wsi, s, 1013, "LIMIT_EXCEEDED");
        return close_soon(wsi, s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, uk_err_name(rc));
    }
    s->rs = rs;
    s->counted = true;
    w->connections++;
    return 0;
}

static int rx_append(struct session *s, const void *in, size_t len)
{
    if (s->rx_len + len > s->rx_cap) {
        size_t cap = s->rx_cap ? s->rx_cap : 1024;
        while (cap < s->rx_len + len)
            cap *= 2;
        if (cap > s->w->message_size)
            cap = s->w->message_size;
        char *p = realloc(s->rx, cap);
        if (p == NULL)
            return UK_E_NO_MEMORY;
        s->rx = p;
        s->rx_cap = cap;
    }
    if (len > 0)
        memcpy(s->rx + s->rx_len, in, len);
    s->rx_len += len;
    return UK_OK;
}

static int on_receive(struct lws *wsi, struct session *s, const void *in, size_t len)
{
    if (s->rs == NULL || s->close_code != 0)
        return 0; /* closing: drop what is still arriving */
    if (lws_frame_is_binary(wsi)) {
        UK_LOG_INFO("wss: closing origin=\"%s\": binary frame (text only)", s->origin);
        s->rx_len = 0;
        s->gathering = false;
        begin_close(s, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE);
        return 0;
    }
    size_t remaining = lws_remaining_packet_payload(wsi);
    size_t limit = s->w->message_size;
    if (len > limit || s->rx_len > limit - len || remaining > limit - len - s->rx_len) {
        UK_LOG_INFO("wss: closing origin=\"%s\": message larger than %zu bytes", s->origin, limit);
        s->rx_len = 0;
        s->gathering = false;
        uk_rpc_session_reject(s->rs, UK_E_LIMIT_EXCEEDED);
        begin_close(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
        return 0;
    }
    /* A message in one piece (one frame, one callback) is read where lws holds it. A message in
     * several pieces is gathered first; control frames may have come between its fragments, and
     * lws answers a ping at the next WRITEABLE, so its answer is queued to go out after that. */
    bool one_piece = !s->gathering && remaining == 0 && lws_is_final_fragment(wsi);
    const char *text = in;
    size_t n = len;
    if (!one_piece) {
        s->gathering = true;
        if (rx_append(s, in, len) != UK_OK) {
            s->rx_len = 0;
            s->gathering = false;
            uk_rpc_session_reject(s->rs, UK_E_NO_MEMORY);
            begin_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
            return 0;
        }
        if (!lws_is_final_fragment(wsi) || remaining != 0)
            return 0;
        text = s->rx;
        n = s->rx_len;
        s->rx_len = 0;
        s->gathering = false;
    }
    if (n == 0)
        text = "";
    if (!utf8_valid((const unsigned char *)text, n)) {
        UK_LOG_INFO("wss: closing origin=\"%s\": text message is not UTF-8", s->origin);
        begin_close(s, LWS_CLOSE_STATUS_INVALID_PAYLOAD);
        return 0;
    }
    /* The dispatcher may answer (send) or ask for a close from inside this call. */
    s->in_rx = one_piece;
    uk_rpc_session_input(s->rs, text, n);
    s->in_rx = false;
    if (s->rx_cap > RX_KEEP) {
        free(s->rx);
        s->rx = NULL;
        s->rx_cap = 0;
    }
    return s->write_failed ? -1 : 0;
}

static int on_writeable(struct lws *wsi, struct session *s)
{
    struct out_msg *m = s->head;
    if (m != NULL) {
        s->head = m->next;
        if (s->head == NULL)
            s->tail = NULL;
        s->queued -= m->len;
        int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
        free(m);
        if (n < 0)
            return -1;
        if (s->head != NULL || s->close_code != 0)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (s->close_code != 0 && !s->kill_on_timer)
        return close_soon(wsi, s, s->close_code, "");
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct session *s = user;
    uk_wss *w = lws_context_user(lws_get_context(wsi));

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        /* Not an upgrade: there is no HTTP API. */
        log_refusal(NULL, 0, UK_E_NOT_FOUND, "plain HTTP request, not a WebSocket upgrade");
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, "NOT_FOUND");
        return -1;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (w == NULL || s == NULL)
            return -1;
        return gate(w, wsi, s);
    case LWS_CALLBACK_ESTABLISHED:
        if (w == NULL || s == NULL)
            return -1;
        return on_established(w, wsi, s);
    case LWS_CALLBACK_RECEIVE:
        return s != NULL ? on_receive(wsi, s, in, len) : -1;
    case LWS_CALLBACK_TIMER:
        return s != NULL && s->kill_on_timer ? -1 : 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return s != NULL && s->rs != NULL ? on_writeable(wsi, s) : 0;
    case LWS_CALLBACK_CLOSED:
        if (s != NULL && s->rs != NULL)
            session_release(s);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ---- start and stop ---- */

/* lws keeps pointers to these for the life of the vhost, which ends after uk_wss_stop returns
 * (during the caller's last uv_run): they are constant tables, not part of uk_wss. */
static const struct lws_protocols protocols[] = {
    {
        .name = UK_WSS_SUBPROTOCOL,
        .callback = callback,
        .per_session_data_size = sizeof(struct session),
        .rx_buffer_size = 16384,
    },
    {0},
};

static const lws_retry_bo_t idle_policy = {
    .secs_since_valid_ping = UK_WSS_PING_SECS,
    .secs_since_valid_hangup = UK_WSS_HANGUP_SECS,
};

/* The handles on the loop, to find the ones lws_create_context adds. */
struct handle_set {
    uv_handle_t **h;
    size_t n, cap;
};

static void collect_handle(uv_handle_t *h, void *arg)
{
    struct handle_set *set = arg;
    if (set->n < set->cap)
        set->h[set->n] = h;
    set->n++;
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(size_t *)arg)++;
}

static bool in_set(const struct handle_set *set, const uv_handle_t *h)
{
    for (size_t i = 0; i < set->n && i < set->cap; i++)
        if (set->h[i] == h)
            return true;
    return false;
}

struct new_handles {
    uk_wss *w;
    const struct handle_set *before;
};

/* lws's own handles live in its context until the final destroy; its socket (poll) handles are
 * freed earlier and are not recorded, so a recorded address is never reused by someone else. */
static void record_new_handle(uv_handle_t *h, void *arg)
{
    struct new_handles *nh = arg;
    if (h->type == UV_POLL || in_set(nh->before, h))
        return;
    if (nh->w->n_lws_handles < LWS_HANDLES_MAX)
        nh->w->lws_handles[nh->w->n_lws_handles++] = h;
}

/* Whether another socket holds 127.0.0.1:port, to tell a taken port from a TLS failure. */
static bool port_taken(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool taken = bind(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

static void ports_text(const uint16_t *ports, size_t n, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++) {
        int k = snprintf(buf + used, size - used, "%s%u", i ? ", " : "", (unsigned)ports[i]);
        if (k < 0)
            break;
        used += (size_t)k;
    }
}

static int create_vhost(uk_wss *w, const uk_wss_options *opt, uint16_t port)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.vhost_name = "ukeyd";
    /* DO_SSL_GLOBAL_INIT is checked per vhost too: without it the vhost silently serves
     * plain text. DISABLE_IPV6 keeps "127.0.0.1" from becoming [::] (lws 4.1). UTF-8 is checked
     * here per message rather than by lws, whose failure path loses the 1007 close frame. */
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_DISABLE_IPV6 |
                   LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
                   LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS; /* we verify no peer: no CA bundle */
    info.ssl_cert_filepath = opt->cert_path;
    info.ssl_private_key_filepath = opt->key_path;
    info.alpn = "http/1.1"; /* no HTTP/2: upgrades go through the one gate above */
    info.timeout_secs =
        opt->handshake_timeout_secs ? opt->handshake_timeout_secs : UK_WSS_HANDSHAKE_TIMEOUT_SECS;
    info.timeout_secs_ah_idle = info.timeout_secs;
    info.keepalive_timeout = (int)info.timeout_secs;
    info.retry_and_idle_policy = &idle_policy;
    info.user = w;
    w->vhost = lws_create_vhost(w->ctx, &info);
    if (w->vhost == NULL)
        return port_taken(port) ? UK_E_BUSY : UK_E_TLS_ERROR;
    w->port = (uint16_t)lws_get_vhost_listen_port(w->vhost);
    return UK_OK;
}

int uk_wss_start(const uk_wss_options *opt, uk_wss **out)
{
    if (opt == NULL || out == NULL || opt->loop == NULL || opt->rpc == NULL ||
        opt->policy == NULL || opt->ports == NULL || opt->n_ports == 0 || opt->cert_path == NULL ||
        opt->key_path == NULL)
        return UK_E_CONFIG_INVALID;
    for (size_t i = 0; i < opt->n_ports; i++)
        if (opt->ports[i] == 0)
            return UK_E_CONFIG_INVALID;

    uk_wss *w = calloc(1, sizeof *w);
    if (w == NULL)
        return UK_E_NO_MEMORY;
    w->loop = opt->loop;
    w->rpc = opt->rpc;
    w->policy = opt->policy;
    w->message_size = opt->message_size ? opt->message_size : UK_LIMIT_MESSAGE;
    w->foreign_loops[0] = opt->loop;

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                   LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
                   LWS_SERVER_OPTION_SKIP_SERVER_CANONICAL_NAME;
    info.foreign_loops = w->foreign_loops;
    info.fd_limit_per_thread = WSS_FD_LIMIT;
    info.server_string = "ukeyd";
    info.user = w;
    info.gid = -1;
    info.uid = -1;
    size_t n_before = 0;
    uv_walk(opt->loop, count_handle, &n_before);
    struct handle_set before = {.h = calloc(n_before + 1, sizeof(uv_handle_t *)),
                                .cap = n_before + 1};
    if (before.h == NULL) {
        free(w);
        return UK_E_NO_MEMORY;
    }
    uv_walk(opt->loop, collect_handle, &before);
    w->ctx = lws_create_context(&info);
    if (w->ctx != NULL) {
        struct new_handles nh = {.w = w, .before = &before};
        uv_walk(opt->loop, record_new_handle, &nh);
    }
    free(before.h);
    if (w->ctx == NULL) {
        UK_LOG_ERR("wss: libwebsockets did not start (is libwebsockets-evlib-uv installed?)");
        free(w);
        return UK_E_INTERNAL;
    }

    int rc = UK_E_BUSY;
    for (size_t i = 0; i < opt->n_ports; i++) {
        rc = create_vhost(w, opt, opt->ports[i]);
        if (rc == UK_OK)
            break;
        if (rc == UK_E_TLS_ERROR) {
            UK_LOG_ERR("wss: cannot use certificate %s with key %s", opt->cert_path, opt->key_path);
            break;
        }
        UK_LOG_NOTICE("wss: port %u is taken, trying the next one", (unsigned)opt->ports[i]);
    }
    if (rc != UK_OK) {
        if (rc == UK_E_BUSY) {
            char list[256];
            ports_text(opt->ports, opt->n_ports, list, sizeof list);
            UK_LOG_ERR("wss: every port is taken (%s)", list);
        }
        /* lws has put handles on the loop: they and w are released while the loop runs. */
        uk_wss_stop(w);
        return rc;
    }
    UK_LOG_INFO("wss: listening on wss://127.0.0.1:%u", (unsigned)w->port);
    *out = w;
    return UK_OK;
}

uint16_t uk_wss_port(const uk_wss *w)
{
    return w != NULL ? w->port : 0;
}

size_t uk_wss_connection_count(const uk_wss *w)
{
    return w != NULL ? w->connections : 0;
}

/*
 * Shutdown. libwebsockets 4.1 on a foreign loop frees its context only on a second
 * lws_context_destroy(), which must come after the loop has closed lws's handles (calling it at
 * once crashes). The first call closes the sockets (one loop pass to finish) and, from their close
 * callbacks, lws's own idle and timer handles (one more pass). The reaper, an idle handle, checks
 * on each pass that those recorded handles and every other handle being closed have left the loop,
 * then makes the second call, and ends with the caller's callback.
 */

struct find {
    const uk_wss *w;
    bool busy;
};

static void find_lws_handle(uv_handle_t *h, void *arg)
{
    struct find *f = arg;
    if (h == (const uv_handle_t *)&f->w->reaper)
        return;
    if (uv_is_closing(h))
        f->busy = true;
    for (size_t i = 0; i < f->w->n_lws_handles; i++)
        if (h == f->w->lws_handles[i])
            f->busy = true;
}

static void on_reaped(uv_handle_t *h)
{
    uk_wss *w = h->data;
    if (w->close_cb != NULL)
        w->close_cb(w, w->close_ctx);
    free(w);
}

static void on_reap(uv_idle_t *idle)
{
    uk_wss *w = idle->data;
    struct find f = {.w = w, .busy = false};
    uv_walk(idle->loop, find_lws_handle, &f);
    if (f.busy)
        return;
    uv_idle_stop(idle);
    lws_context_destroy(w->ctx); /* the second call: frees the context, vhost and TLS state */
    w->ctx = NULL;
    uv_close((uv_handle_t *)idle, on_reaped);
}

void uk_wss_close(uk_wss *w, uk_wss_close_cb close_cb, void *ctx)
{
    if (w == NULL || w->closing)
        return;
    w->closing = true;
    w->close_cb = close_cb;
    w->close_ctx = ctx;
    /* Closes every connection (LWS_CALLBACK_CLOSED frees their sessions now) and the listener,
     * and starts closing lws's uv handles. */
    lws_context_destroy(w->ctx);
    uv_idle_init(w->loop, &w->reaper); /* cannot fail for an idle handle */
    w->reaper.data = w;
    uv_idle_start(&w->reaper, on_reap);
}

void uk_wss_stop(uk_wss *w)
{
    uk_wss_close(w, NULL, NULL);
}
