/*
 * uk_rpc_call.h - what a method handler sees: one request in progress.
 *
 * The method table (uk_rpc_methods.c) is the one place that lists every
 * method with its handler, known parameters and flags. A handler answers
 * exactly once, now or later (after a worker job), with uk_rpc_call_result
 * or uk_rpc_call_error; the call is freed by that answer. If the client went
 * away meanwhile the answer is dropped quietly.
 *
 * Thread: loop thread only. cJSON stays inside rpc and protocol.
 */
#ifndef UK_RPC_CALL_H
#define UK_RPC_CALL_H

#include <cjson/cJSON.h>

#include "uk_jsonrpc.h"
#include "uk_rpc.h"

typedef struct uk_rpc_call uk_rpc_call;

typedef void (*uk_rpc_handler)(uk_rpc_call *call);

enum {
    /* Reachable from every endpoint before pairing or consent (hello). */
    UK_METHOD_PUBLIC = 1u << 0,
    /* Only for same-user local endpoints (Unix socket). */
    UK_METHOD_LOCAL_ONLY = 1u << 1,
    /* Needs the user's consent in a native dialog (security layer). */
    UK_METHOD_CONSENT = 1u << 2,
    /* Needs the PIN (asked by ukeyd, or from a trusted endpoint). */
    UK_METHOD_PIN = 1u << 3,
    /* Reachable by an origin that is not paired yet (system.pair). */
    UK_METHOD_PAIRING = 1u << 4,
    /* The browser extension may call it on its own behalf (no page origin): the popup and the
     * list of origins it injects its content script into. */
    UK_METHOD_EXTENSION = 1u << 5,
    /* Not written to the audit log: it touches no key (subscriptions). */
    UK_METHOD_QUIET = 1u << 6,
};

typedef struct uk_rpc_method {
    const char *name;
    uk_rpc_handler handler;
    const char *const *params; /* known parameter names; others are INVALID_PARAMS */
    size_t n_params;
    unsigned flags;
} uk_rpc_method;

/* The method table, in one place. */
const uk_rpc_method *uk_rpc_methods(size_t *count);

/* The method being called. */
const uk_rpc_method *uk_rpc_call_method(const uk_rpc_call *call);

/* Whether the call comes from the local user's own tools (the Unix socket, not an extension). */
bool uk_rpc_call_is_local(const uk_rpc_call *call);

/* What the audit log records for the call besides endpoint, origin, method and result (copied;
 * each may be NULL to leave it unchanged). */
void uk_rpc_call_set_audit(uk_rpc_call *call, const char *token, const char *cert_serial,
                           const char *detail);

/* Per-session consent ("consent": "session"): whether origin was approved in this session. */
bool uk_rpc_session_consented(const uk_rpc_session *s, const char *origin);
/* Records it; UK_E_NO_MEMORY or UK_E_LIMIT_EXCEEDED (too many origins in one session). */
int uk_rpc_session_consent(uk_rpc_session *s, const char *origin);

/*
 * Recent strikes against a key or an origin, for throttling what a user must not be flooded with:
 * wrong PINs per key, declined pairing requests per origin. Counts the strikes for name in table
 * within the last window_ms (after adding one now when add is true). Bounded: the least recently
 * struck names are forgotten first.
 */
enum { UK_STRIKES_PIN = 0, UK_STRIKES_PAIRING = 1, UK_STRIKES_TABLES = 2 };
size_t uk_rpc_strikes(uk_rpc *rpc, int table, const char *name, uint64_t window_ms, bool add);

/* The request's params (NULL when absent), mutable so secrets can be wiped. */
cJSON *uk_rpc_call_params(uk_rpc_call *call);
const uk_rpc_peer *uk_rpc_call_peer(const uk_rpc_call *call);
uk_rpc *uk_rpc_call_rpc(const uk_rpc_call *call);
/* The calling session, NULL when it has gone away. */
uk_rpc_session *uk_rpc_call_session(const uk_rpc_call *call);

/* Answer with result (consumed). */
void uk_rpc_call_result(uk_rpc_call *call, cJSON *result);
/* Answer with an error from the table; detail and extra as uk_jsonrpc_error_new. */
void uk_rpc_call_error(uk_rpc_call *call, int err, const char *detail, cJSON *extra);
/* Answer INVALID_PARAMS for a getter's complaint. */
void uk_rpc_call_param_error(uk_rpc_call *call, const uk_jsonrpc_param_error *pe);

/* Facts for system.hello. */
const char *uk_rpc_daemon_version(const uk_rpc *rpc);
uint16_t uk_rpc_wss_port(const uk_rpc *rpc);
const uk_rpc_options *uk_rpc_get0_options(const uk_rpc *rpc);

/* Event subscriptions of a session (system.subscribe). The names are the
 * events of uk_rpc_event_names. */
const char *const *uk_rpc_event_names(size_t *count);
int uk_rpc_session_subscribe(uk_rpc_session *s, const char *event, bool on);
bool uk_rpc_session_subscribed(const uk_rpc_session *s, const char *event);

/* Turns a local session into the native-messaging session of one browser
 * extension ("chrome-extension://ID"): from now on it is treated like a
 * web origin, not like the local user. Errors: UK_E_NO_MEMORY. */
int uk_rpc_session_attach_extension(uk_rpc_session *s, const char *origin);

/* Sends the event (params consumed, may be NULL) to every session that
 * subscribed to it. */
void uk_rpc_notify(uk_rpc *rpc, const char *event, cJSON *params);

/* As uk_rpc_notify, but about something one origin owns (its renewal): only the local user's
 * sessions, WSS sessions of that origin, and extension sessions (which forward it to that origin's
 * pages only: the event's params name the origin) get it. origin NULL: the local user's own, so
 * local sessions only. */
void uk_rpc_notify_owned(uk_rpc *rpc, const char *event, const char *origin, cJSON *params);

#endif
