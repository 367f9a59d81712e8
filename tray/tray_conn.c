/* tray_conn.c - see tray_conn.h. */
#include "tray_conn.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <stdint.h>
#include <string.h>

/* Largest message accepted from ukeyd (certificate lists with DER are well below). */
#define MAX_MESSAGE (4u * 1024 * 1024)
#define BACKOFF_MIN 1
#define BACKOFF_MAX 60

struct pending {
    uk_tray_reply_fn fn;
    void *arg;
};

/* One connection attempt and its life; referenced by every operation in flight, so that a
 * callback arriving after the session ended still finds it. */
typedef struct session {
    int refs;
    bool dead;
    uk_tray_conn *owner;
    GSocketConnection *conn;
    GCancellable *cancel;
    uint8_t header[4];
    uint8_t *body;
    GQueue writes; /* GBytes to send, the head is being written */
    bool writing;
} session;

struct uk_tray_conn {
    char *path;
    uk_tray_conn_callbacks cb;
    void *ud;
    session *s;          /* the current session, NULL while down */
    GHashTable *pending; /* id -> struct pending */
    gint64 next_id;
    guint retry_source;
    unsigned backoff;
    GFileMonitor *monitor;
    bool connecting;
};

static session *session_ref(session *s)
{
    s->refs++;
    return s;
}

static void session_unref(session *s)
{
    if (--s->refs > 0)
        return;
    g_clear_object(&s->conn);
    g_clear_object(&s->cancel);
    g_free(s->body);
    GBytes *b;
    while ((b = g_queue_pop_head(&s->writes)) != NULL)
        g_bytes_unref(b);
    g_free(s);
}

static void schedule_retry(uk_tray_conn *c);
static void read_header(session *s);

static void fail_pending(uk_tray_conn *c)
{
    GHashTable *p = c->pending;
    c->pending = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, p);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        struct pending *pd = v;
        pd->fn(NULL, "DAEMON_UNAVAILABLE", pd->arg);
    }
    g_hash_table_destroy(p);
}

/* The session ends (read or write error, bad frame, ukeyd closed it). */
static void session_end(session *s)
{
    if (s->dead)
        return;
    s->dead = true;
    g_cancellable_cancel(s->cancel);
    if (s->conn != NULL)
        g_io_stream_close(G_IO_STREAM(s->conn), NULL, NULL);
    uk_tray_conn *c = s->owner;
    if (c->s == s) {
        c->s = NULL;
        session_unref(s);
        fail_pending(c);
        if (c->cb.disconnected)
            c->cb.disconnected(c->ud);
        schedule_retry(c);
    }
}

static void handle_message(session *s, const char *text, size_t len)
{
    uk_tray_conn *c = s->owner;
    cJSON *m = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(m)) {
        cJSON_Delete(m);
        session_end(s);
        return;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(m, "method");
    if (id == NULL && cJSON_IsString(method)) {
        if (c->cb.event)
            c->cb.event(method->valuestring, cJSON_GetObjectItemCaseSensitive(m, "params"), c->ud);
    } else if (cJSON_IsNumber(id)) {
        gint64 key = (gint64)id->valuedouble;
        struct pending *pd = g_hash_table_lookup(c->pending, &key);
        if (pd != NULL) {
            struct pending copy = *pd;
            g_hash_table_remove(c->pending, &key);
            const cJSON *result = cJSON_GetObjectItemCaseSensitive(m, "result");
            const cJSON *data = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(m, "error"), "data");
            const cJSON *reason = cJSON_GetObjectItemCaseSensitive(data, "reason");
            if (result != NULL)
                copy.fn(result, NULL, copy.arg);
            else
                copy.fn(NULL, cJSON_IsString(reason) ? reason->valuestring : "INTERNAL", copy.arg);
        }
    }
    cJSON_Delete(m);
}

static void body_done(GObject *src, GAsyncResult *res, gpointer data)
{
    session *s = data;
    gsize n = 0;
    gboolean ok = g_input_stream_read_all_finish(G_INPUT_STREAM(src), res, &n, NULL);
    if (!s->dead) {
        uint32_t len = (uint32_t)s->header[0] | (uint32_t)s->header[1] << 8 |
                       (uint32_t)s->header[2] << 16 | (uint32_t)s->header[3] << 24;
        if (!ok || n != len) {
            session_end(s);
        } else {
            handle_message(s, (const char *)s->body, n);
            g_clear_pointer(&s->body, g_free);
            if (!s->dead)
                read_header(s);
        }
    }
    session_unref(s);
}

static void header_done(GObject *src, GAsyncResult *res, gpointer data)
{
    session *s = data;
    gsize n = 0;
    gboolean ok = g_input_stream_read_all_finish(G_INPUT_STREAM(src), res, &n, NULL);
    if (!s->dead) {
        uint32_t len = (uint32_t)s->header[0] | (uint32_t)s->header[1] << 8 |
                       (uint32_t)s->header[2] << 16 | (uint32_t)s->header[3] << 24;
        if (!ok || n != 4 || len == 0 || len > MAX_MESSAGE) {
            session_end(s);
        } else {
            s->body = g_malloc(len);
            g_input_stream_read_all_async(g_io_stream_get_input_stream(G_IO_STREAM(s->conn)),
                                          s->body, len, G_PRIORITY_DEFAULT, s->cancel, body_done,
                                          session_ref(s));
        }
    }
    session_unref(s);
}

static void read_header(session *s)
{
    g_input_stream_read_all_async(g_io_stream_get_input_stream(G_IO_STREAM(s->conn)), s->header, 4,
                                  G_PRIORITY_DEFAULT, s->cancel, header_done, session_ref(s));
}

static void write_next(session *s);

static void write_done(GObject *src, GAsyncResult *res, gpointer data)
{
    session *s = data;
    gboolean ok = g_output_stream_write_all_finish(G_OUTPUT_STREAM(src), res, NULL, NULL);
    GBytes *b = g_queue_pop_head(&s->writes);
    if (b != NULL)
        g_bytes_unref(b);
    s->writing = false;
    if (!s->dead) {
        if (!ok)
            session_end(s);
        else
            write_next(s);
    }
    session_unref(s);
}

static void write_next(session *s)
{
    GBytes *b = g_queue_peek_head(&s->writes);
    if (b == NULL || s->writing)
        return;
    s->writing = true;
    gsize n = 0;
    const void *p = g_bytes_get_data(b, &n);
    g_output_stream_write_all_async(g_io_stream_get_output_stream(G_IO_STREAM(s->conn)), p, n,
                                    G_PRIORITY_DEFAULT, s->cancel, write_done, session_ref(s));
}

static void connect_done(GObject *src, GAsyncResult *res, gpointer data)
{
    uk_tray_conn *c = data;
    GSocketConnection *conn = g_socket_client_connect_finish(G_SOCKET_CLIENT(src), res, NULL);
    c->connecting = false;
    if (conn == NULL) {
        if (c->cb.disconnected)
            c->cb.disconnected(c->ud);
        schedule_retry(c);
        return;
    }
    session *s = g_new0(session, 1);
    s->refs = 1; /* c->s */
    s->owner = c;
    s->conn = conn;
    s->cancel = g_cancellable_new();
    g_queue_init(&s->writes);
    c->s = s;
    c->backoff = 0;
    read_header(s);
    if (c->cb.connected)
        c->cb.connected(c->ud);
}

static void try_connect(uk_tray_conn *c)
{
    if (c->s != NULL || c->connecting)
        return;
    c->connecting = true;
    GSocketClient *client = g_socket_client_new();
    GSocketAddress *addr = g_unix_socket_address_new(c->path);
    g_socket_client_connect_async(client, G_SOCKET_CONNECTABLE(addr), NULL, connect_done, c);
    g_object_unref(addr);
    g_object_unref(client);
}

static gboolean retry_fired(gpointer data)
{
    uk_tray_conn *c = data;
    c->retry_source = 0;
    try_connect(c);
    return G_SOURCE_REMOVE;
}

static void schedule_retry(uk_tray_conn *c)
{
    if (c->retry_source != 0)
        return;
    c->backoff = c->backoff == 0 ? BACKOFF_MIN : MIN(c->backoff * 2, BACKOFF_MAX);
    c->retry_source = g_timeout_add_seconds(c->backoff, retry_fired, c);
}

/* The socket file appeared (ukeyd started): connect now instead of at the next retry. */
static void socket_changed(GFileMonitor *m, GFile *file, GFile *other, GFileMonitorEvent ev,
                           gpointer data)
{
    uk_tray_conn *c = data;
    (void)m;
    (void)file;
    (void)other;
    if (ev != G_FILE_MONITOR_EVENT_CREATED || c->s != NULL)
        return;
    if (c->retry_source != 0) {
        g_source_remove(c->retry_source);
        c->retry_source = 0;
    }
    c->backoff = 0;
    try_connect(c);
}

uk_tray_conn *uk_tray_conn_new(const char *socket_path, const uk_tray_conn_callbacks *cb, void *ud)
{
    uk_tray_conn *c = g_new0(uk_tray_conn, 1);
    c->path = g_strdup(socket_path);
    c->cb = *cb;
    c->ud = ud;
    c->pending = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    c->next_id = 1;
    return c;
}

void uk_tray_conn_start(uk_tray_conn *c)
{
    if (c->monitor == NULL) {
        GFile *f = g_file_new_for_path(c->path);
        c->monitor = g_file_monitor_file(f, G_FILE_MONITOR_NONE, NULL, NULL);
        if (c->monitor != NULL)
            g_signal_connect(c->monitor, "changed", G_CALLBACK(socket_changed), c);
        g_object_unref(f);
    }
    try_connect(c);
}

bool uk_tray_conn_is_up(const uk_tray_conn *c)
{
    return c->s != NULL;
}

bool uk_tray_conn_call(uk_tray_conn *c, const char *method, cJSON *params, uk_tray_reply_fn fn,
                       void *arg)
{
    if (c->s == NULL) {
        cJSON_Delete(params);
        return false;
    }
    gint64 id = c->next_id++;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "jsonrpc", "2.0");
    cJSON_AddStringToObject(req, "method", method);
    if (params != NULL)
        cJSON_AddItemToObject(req, "params", params);
    cJSON_AddNumberToObject(req, "id", (double)id);
    char *text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (text == NULL)
        return false;
    size_t len = strlen(text);
    uint8_t *frame = g_malloc(len + 4);
    frame[0] = (uint8_t)len;
    frame[1] = (uint8_t)(len >> 8);
    frame[2] = (uint8_t)(len >> 16);
    frame[3] = (uint8_t)(len >> 24);
    memcpy(frame + 4, text, len);
    cJSON_free(text);
    struct pending *pd = g_new(struct pending, 1);
    pd->fn = fn;
    pd->arg = arg;
    gint64 *key = g_new(gint64, 1);
    *key = id;
    g_hash_table_insert(c->pending, key, pd);
    g_queue_push_tail(&c->s->writes, g_bytes_new_take(frame, len + 4));
    write_next(c->s);
    return true;
}
