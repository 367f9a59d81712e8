/*
 * uk_rpc.h - the JSON-RPC dispatcher every endpoint feeds.
 *
 * A transport (WSS, Unix socket, native messaging) creates one session per
 * client connection, hands it each complete message, and gives it a way to
 * send messages back. The dispatcher parses (protocol/), enforces the
 * per-session and per-origin limits, runs the method from the method table
 * and answers. Transports never see JSON structure; handlers never see
 * transports.
 *
 * Thread: everything here runs on the loop thread. Handlers that need the
 * card hand work to a worker (daemon/loop) and answer later; a session freed
 * in the meantime simply drops the late answer.
 *
 * Ownership: uk_rpc_new/uk_rpc_free for the dispatcher, which must outlive
 * its sessions; uk_rpc_session_new/uk_rpc_session_free for a session, freed
 * by its transport when the connection is gone (also after the transport's
 * close callback ran). Strings passed in are copied.
 *
 * Errors: UK_E_LIMIT_EXCEEDED when the connection limit is reached (the
 * transport refuses the client), UK_E_NO_MEMORY.
 */
#ifndef UK_RPC_H
#define UK_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef enum uk_endpoint {
    UK_ENDPOINT_UNIX = 1, /* same-user local clients: ukeyctl, tray, ukeyd-nm */
    UK_ENDPOINT_WSS = 2,  /* wss://127.0.0.1 from an allowed page origin */
    UK_ENDPOINT_NM = 3,   /* a browser extension through the native-messaging host */
} uk_endpoint;

typedef struct uk_rpc uk_rpc;
typedef struct uk_rpc_session uk_rpc_session;

typedef struct uk_policy uk_policy;
typedef struct uk_tokens uk_tokens;
typedef struct uk_prompt uk_prompt;
typedef struct uk_audit uk_audit;

/* The renewal service (uk_renewal.h). */
typedef struct uk_renewal uk_renewal;

typedef struct uk_rpc_options {
    uv_loop_t *loop;
    uk_policy *policy; /* borrowed: origins, pairing, per-origin rules and request rate */
    uk_prompt *prompt; /* borrowed: PIN and consent dialogs; NULL: PROMPT_UNAVAILABLE */
    uk_audit *audit;   /* borrowed: the audit log; NULL: none */
    unsigned pin_attempts_per_minute; /* wrong PINs per key per minute; 0: 5 */
    uk_tokens *tokens;                /* borrowed: keys; NULL answers NO_SERVICE */
    uk_renewal *renewal;              /* borrowed: renewal.*; NULL answers NO_SERVICE */
    unsigned expiring_days;           /* certificate status "expiring" threshold; 0: 30 */
    const char *daemon_version;
    size_t message_size;           /* largest message accepted */
    size_t json_depth;             /* deepest nesting accepted */
    size_t pending_per_connection; /* requests in progress per session */
    size_t connections;            /* sessions at once, all endpoints */
} uk_rpc_options;

/* How the dispatcher reaches one client. */
typedef struct uk_rpc_transport {
    /* Queue one complete JSON text for the client (len bytes, not
     * NUL-terminated; copy it). Returns 0, or a UK_E_* code after which the
     * dispatcher asks for a close. */
    int (*send)(void *ctx, const char *json, size_t len);
    /* Close the connection soon (a protocol violation, a limit); err says
     * why. The transport still calls uk_rpc_session_free afterwards. */
    void (*close)(void *ctx, int err);
} uk_rpc_transport;

typedef struct uk_rpc_peer {
    uk_endpoint endpoint;
    /* WSS: the Origin header as checked by the gate; NM: the extension's
     * origin "chrome-extension://ID", or for one request the page origin the
     * extension relayed it for (then via is the extension's); Unix: NULL. */
    const char *origin;
    const char *via; /* the extension that relayed a page's request, else NULL */
} uk_rpc_peer;

__attribute__((warn_unused_result)) int uk_rpc_new(const uk_rpc_options *opt, uk_rpc **out);
void uk_rpc_free(uk_rpc *rpc);

/* The token layer, created after the dispatcher (it reports events to it). */
void uk_rpc_set_tokens(uk_rpc *rpc, uk_tokens *tokens);

/* The renewal service, created after the token layer. NULL: renewal.* answer NO_SERVICE. */
void uk_rpc_set_renewal(uk_rpc *rpc, uk_renewal *renewal);
/* renewal.changed for a record that recovery or the activation timer changed, to its owner's
 * sessions; rpc is the uk_rpc (void * to fit uk_renewal_set_on_changed). Loop thread. */
struct uk_renewal_rec;
void uk_rpc_renewal_changed(void *rpc, const struct uk_renewal_rec *rec);

/* The dialogs and the audit log, created after the dispatcher; NULL: none. */
void uk_rpc_set_prompt(uk_rpc *rpc, uk_prompt *prompt);
void uk_rpc_set_audit(uk_rpc *rpc, uk_audit *audit);

/* Published in system.hello; 0 when WSS is off. */
void uk_rpc_set_wss_port(uk_rpc *rpc, uint16_t port);

__attribute__((warn_unused_result)) int uk_rpc_session_new(uk_rpc *rpc, const uk_rpc_peer *peer,
                                                           const uk_rpc_transport *transport,
                                                           void *ctx, uk_rpc_session **out);
void uk_rpc_session_free(uk_rpc_session *s);

/*
 * One complete message from the client. The answer, if any, goes out through
 * the transport's send, now or later. Bad input is answered with a JSON-RPC
 * error, never a crash; a client that keeps breaking the rules is closed.
 */
void uk_rpc_session_input(uk_rpc_session *s, const char *msg, size_t len);

/*
 * The transport could not read a message (larger than the limit, invalid
 * framing): answers {"id": null, "error": err} to the client.
 */
void uk_rpc_session_reject(uk_rpc_session *s, int err);

/* Sessions open now (for tests and status). */
size_t uk_rpc_session_count(const uk_rpc *rpc);

#endif
