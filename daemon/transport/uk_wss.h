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
 * Ownership: uk_wss_start allocates; shutting down takes two steps, because libwebsockets 4.1
 * frees a context on a foreign loop only after the loop has closed its handles:
 *
 *     uk_wss_stop(w);              closes connections and the listener (sessions freed now)
 *     ... uv_run(loop, UV_RUN_DEFAULT) returns (the loop has nothing left) ...
 *     uk_wss_free(w);              frees lws and w; before or after uv_loop_close()
 *
 * The dispatcher and the policy are borrowed and must outlive uk_wss_stop (the policy may be
 * reloaded in place at any time).
 */
#ifndef UK_WSS_H
#define UK_WSS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct uk_rpc uk_rpc;
typedef struct uk_policy uk_policy;
typedef struct uk_wss uk_wss;

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
 * logged).
 *
 * On UK_E_BUSY and UK_E_TLS_ERROR lws has already put handles on the loop, so *out is set to an
 * endpoint that is stopped and never listened: release it like any other (run the loop, then
 * uk_wss_free; uk_wss_stop is a no-op on it). On the other errors *out is untouched. Initialise
 * the pointer to NULL and the same shutdown code serves every case.
 */
__attribute__((warn_unused_result)) int uk_wss_start(const uk_wss_options *opt, uk_wss **out);

/* The port in use (for the runtime-dir port file and system.hello). */
uint16_t uk_wss_port(const uk_wss *w);

/* Connections established now (after the gate). */
size_t uk_wss_connection_count(const uk_wss *w);

/*
 * Closes every connection (their sessions are freed with uk_rpc_session_free before this
 * returns), stops listening and starts closing lws's handles. NULL-safe; a second call does
 * nothing. w stays valid (uk_wss_port still answers) until uk_wss_free.
 */
void uk_wss_stop(uk_wss *w);

/*
 * Frees w after uk_wss_stop and a loop run that let lws's handles close (uv_run returned because
 * the loop had nothing left). NULL-safe. Calling it without uk_wss_stop is a programming error:
 * it is logged and w is stopped and leaked (freeing lws then would crash it).
 */
void uk_wss_free(uk_wss *w);

#endif
