/*
 * tray_conn.h - the tray's connection to ukeyd's Unix socket on the GLib main loop: asynchronous
 * connect, read and write (GIO), 4-byte little-endian length framing, JSON-RPC requests with their
 * replies, notifications, and reconnection with backoff (1 s doubling to 60 s) plus a file monitor
 * on the socket's path, so that a restarted ukeyd is found at once and nothing runs while it is
 * up and idle.
 *
 * Every callback runs on the main loop thread. No call blocks.
 */
#ifndef UK_TRAY_CONN_H
#define UK_TRAY_CONN_H

#include <cjson/cJSON.h>
#include <stdbool.h>

typedef struct uk_tray_conn uk_tray_conn;

/* The answer to a request: result (borrowed, valid during the call) or, when it failed, result
 * NULL and reason the error's data.reason ("DAEMON_UNAVAILABLE" when the connection was lost
 * before the answer). */
typedef void (*uk_tray_reply_fn)(const cJSON *result, const char *reason, void *arg);

typedef struct uk_tray_conn_callbacks {
    void (*connected)(void *ud);
    /* The connection is gone (or a connect attempt failed); a retry is scheduled. */
    void (*disconnected)(void *ud);
    /* A notification: method and params (borrowed). */
    void (*event)(const char *method, const cJSON *params, void *ud);
} uk_tray_conn_callbacks;

/* A connection to socket_path (copied); nothing happens before uk_tray_conn_start. */
uk_tray_conn *uk_tray_conn_new(const char *socket_path, const uk_tray_conn_callbacks *cb, void *ud);

/* Connects now (and again after each loss). */
void uk_tray_conn_start(uk_tray_conn *c);

bool uk_tray_conn_is_up(const uk_tray_conn *c);

/*
 * Sends a request; params (may be NULL) is taken. fn is called exactly once, later (never from
 * inside this call), also when the connection is lost. Returns false (and calls nothing) when
 * not connected.
 */
bool uk_tray_conn_call(uk_tray_conn *c, const char *method, cJSON *params, uk_tray_reply_fn fn,
                       void *arg);

#endif
