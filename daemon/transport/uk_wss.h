/*
 * uk_wss.h - the WebSocket endpoint: wss://127.0.0.1:PORT, gated by Origin and Host.
 *
 * libwebsockets 4.1 runs on the daemon's libuv loop (a foreign loop). The listening socket is
 * 127.0.0.1 only (IPv6 disabled: lws 4.1 otherwise binds [::]). Ports are tried in the order
 * given; a port another program holds is skipped and the next one taken.
 *
 * The gate, before the upgrade (nothing reaches the dispatcher otherwise):
 *   - Origin must pass uk_policy_origin_allowed (missing, "null", malformed, unlisted: refused),
 *   - Host must be 127.0.0.1:PORT or localhost:PORT for the port in use (DNS rebinding),
 *   - a refused upgrade is answered "403 Forbidden" and closed; any request that is not a
 *     WebSocket upgrade is answered "404 Not Found" and closed: there is no HTTP API.
 * Every refusal is logged once (notice) with endpoint "wss", the origin and the reason name.
 *
 * Subprotocol: none is needed (a page's `new WebSocket(url)` sends none). A client may ask for
 * UK_WSS_SUBPROTOCOL; a request naming only other subprotocols is refused by lws.
 *
 * After the upgrade each connection is a uk_rpc session with peer {UK_ENDPOINT_WSS, origin}:
 *   - text messages (fragments reassembled) go whole to uk_rpc_session_input;
 *   - a message over message_size: uk_rpc_session_reject(LIMIT_EXCEEDED) is sent, then the
 *     connection closes with 1009; never truncated;
 *   - a binary frame closes with 1003; invalid UTF-8 in a text frame closes with 1007;
 *   - uk_rpc_session_new refusing (connection limit): close with 1013 (try again later);
 *   - the dispatcher's close(err): queued answers are flushed, then close 1008 (policy: limits,
 *     rate, protocol abuse), 1011 (internal, memory), 1013 (busy) or 1001 (cancelled: going away);
 *   - answers are queued (copied) and written one per writeable event; more than
 *     UK_WSS_QUEUE_MAX bytes waiting for a client that does not read makes send fail with
 *     LIMIT_EXCEEDED (the dispatcher then closes it).
 * Timeouts: the TLS handshake and the HTTP upgrade must complete within handshake_timeout_secs;
 * an idle WebSocket gets a ping after UK_WSS_PING_SECS and is dropped UK_WSS_HANGUP_SECS after
 * its last sign of life. Nothing is logged per frame.
 *
 * Thread: everything on the loop thread. uk_wss_start before or inside uv_run.
 * Ownership: uk_wss_start allocates; uk_wss_close (or uk_wss_stop) releases. The dispatcher and
 * the policy are borrowed: the policy must outlive the endpoint (it may be reloaded in place at any
 * time), the dispatcher must outlive uk_wss_close's return (sessions are freed inside it).
 * Shutdown: uk_wss_stop(w), then run the loop until it has nothing left; uv_loop_close() then
 * returns 0 and nothing of lws is left allocated.
 */
#ifndef UK_WSS_H
#define UK_WSS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct uk_rpc uk_rpc;
typedef struct uk_policy uk_policy;
typedef struct uk_wss uk_wss;

/* Runs on the loop thread once the endpoint is gone; w is only for identification. */
typedef void (*uk_wss_close_cb)(uk_wss *w, void *ctx);

#define UK_WSS_SUBPROTOCOL "ukeyd.jsonrpc.v1"

/* Default time a client has for the TLS handshake and the upgrade request, seconds. */
#define UK_WSS_HANDSHAKE_TIMEOUT_SECS 5u

/* Idle WebSocket: ping after this many seconds without traffic, drop after the second value. */
#define UK_WSS_PING_SECS   30u
#define UK_WSS_HANGUP_SECS 75u

/* Answers waiting for one slow client, in bytes, before send fails with LIMIT_EXCEEDED. */
#define UK_WSS_QUEUE_MAX (4u * 1024u * 1024u)

typedef struct uk_wss_options {
    uv_loop_t *loop;
    uk_rpc *rpc;
    uk_policy *policy;
    const uint16_t *ports; /* tried in order; at least one, none 0 */
    size_t n_ports;
    const char *cert_path;           /* PEM server certificate (chain) */
    const char *key_path;            /* PEM private key */
    size_t message_size;             /* largest message accepted; 0: UK_LIMIT_MESSAGE */
    unsigned handshake_timeout_secs; /* 0: UK_WSS_HANDSHAKE_TIMEOUT_SECS */
} uk_wss_options;

/*
 * Starts listening on the first free port of opt->ports. Errors: UK_E_BUSY (every port is taken;
 * logged with the list), UK_E_TLS_ERROR (certificate or key unusable; logged), UK_E_CONFIG_INVALID
 * (bad options), UK_E_NO_MEMORY, UK_E_INTERNAL (libwebsockets or its libuv plug-in failed;
 * logged). On error *out is untouched; what lws had already put on the loop is released the next
 * time the loop runs (so run it before uv_loop_close).
 */
__attribute__((warn_unused_result)) int uk_wss_start(const uk_wss_options *opt, uk_wss **out);

/* The port in use (for the runtime-dir port file and system.hello). */
uint16_t uk_wss_port(const uk_wss *w);

/* Connections established now (after the gate). */
size_t uk_wss_connection_count(const uk_wss *w);

/*
 * Closes every connection (their sessions are freed with uk_rpc_session_free before this returns)
 * and the listening socket, and starts releasing libwebsockets. lws 4.1 needs the loop to run
 * (about two passes) before it can free itself: once it has, close_cb (may be NULL) is called with
 * ctx on the loop thread, from inside uv_run and never from inside uk_wss_close, and w is freed.
 * The port is free again by then, so close_cb may start a new endpoint on the same port (a restart
 * started before close_cb would find the port still taken and move to the next one).
 * NULL-safe. After it, w may only be compared with close_cb's argument; calling it twice is a
 * programming error. May be called from inside any callback on the loop thread.
 */
void uk_wss_close(uk_wss *w, uk_wss_close_cb close_cb, void *ctx);

/* uk_wss_close(w, NULL, NULL). */
void uk_wss_stop(uk_wss *w);

#endif
