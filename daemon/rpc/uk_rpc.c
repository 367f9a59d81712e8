/* The dispatcher: sessions, limits, calls and events. */
#include "uk_rpc.h"

#include "uk_audit.h"
#include "uk_err.h"
#include "uk_jsonrpc.h"
#include "uk_log.h"
#include "uk_policy.h"
#include "uk_rpc_call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const event_names[] = {
    "token.inserted",
    "token.removed",
    "token.changed",
    "renewal.changed",
};
#define N_EVENTS (sizeof(event_names) / sizeof(event_names[0]))

/* Names remembered per strike table, and strikes per name (more is never needed: the limits
 * configured are per minute and at most 60). */
#define STRIKE_NAMES 64
#define STRIKE_TIMES 64

struct strike {
    char name[UK_ORIGIN_MAX + 1];
    uint64_t times[STRIKE_TIMES]; /* ring, uv_now() ms */
    size_t n, next;
    uint64_t last;
};

/* Sessions of origins the user has not approved (any web page, while pairing is on) get a small
 * budget of their own, so that a page holding WebSockets open cannot lock the portals and the
 * local tools out; and a part of limits.connections is kept for the Unix socket (ukeyctl, the
 * tray, ukeyd-nm: the extension path) whatever the web does. */
#define PAIRABLE_SESSIONS            8u
#define PAIRABLE_SESSIONS_PER_ORIGIN 2u
#define LOCAL_RESERVE_MAX            8u

struct uk_rpc {
    uk_rpc_options opt;
    /* Allocated at the first strike: most days there is none, and idle memory counts. */
    struct strike (*strikes)[STRIKE_NAMES];
    char *version;
    uint16_t wss_port;
    uk_rpc_session *sessions;
    size_t n_sessions;
};

struct uk_rpc_session {
    uk_rpc *rpc;
    bool pairable;    /* opened by an origin that was not approved then: counted apart */
    uk_rpc_peer peer; /* peer.origin points at origin */
    char *origin;
    const uk_rpc_transport *transport;
    void *ctx;
    uk_rpc_call *calls;
    size_t pending;
    uint32_t events;
    /* Origins the user approved for the whole session (policy "consent": "session"). An
     * extension's session carries many page origins, so this is a list, not a flag. */
    char **consented;
    size_t n_consented;
    uk_rpc_session *prev, *next;
};

/* Page origins one extension session may carry consent for. */
#define SESSION_CONSENT_MAX 32

struct uk_rpc_call {
    uk_rpc *rpc;
    uk_rpc_session *session; /* NULL once the client has gone */
    uk_rpc_peer peer;        /* a copy that outlives the session */
    char *origin;
    char *via;
    const uk_rpc_method *method;
    char *audit_token, *audit_serial, *audit_detail;
    uk_jsonrpc_msg *msg;
    cJSON *id; /* NULL for a notification: nothing is sent back */
    uk_rpc_call *prev, *next;
};

int uk_rpc_new(const uk_rpc_options *opt, uk_rpc **out)
{
    uk_rpc *rpc = calloc(1, sizeof(*rpc));
    if (rpc == NULL)
        return UK_E_NO_MEMORY;
    rpc->opt = *opt;
    rpc->version = strdup(opt->daemon_version ? opt->daemon_version : "");
    if (rpc->version == NULL) {
        free(rpc);
        return UK_E_NO_MEMORY;
    }
    rpc->opt.daemon_version = rpc->version;
    *out = rpc;
    return UK_OK;
}

void uk_rpc_free(uk_rpc *rpc)
{
    if (rpc == NULL)
        return;
    while (rpc->sessions != NULL)
        uk_rpc_session_free(rpc->sessions);
    free(rpc->strikes);
    free(rpc->version);
    free(rpc);
}

void uk_rpc_set_tokens(uk_rpc *rpc, uk_tokens *tokens)
{
    rpc->opt.tokens = tokens;
}

void uk_rpc_set_renewal(uk_rpc *rpc, uk_renewal *renewal)
{
    rpc->opt.renewal = renewal;
}

void uk_rpc_set_prompt(uk_rpc *rpc, uk_prompt *prompt)
{
    rpc->opt.prompt = prompt;
}

void uk_rpc_set_audit(uk_rpc *rpc, uk_audit *audit)
{
    rpc->opt.audit = audit;
}

void uk_rpc_set_wss_port(uk_rpc *rpc, uint16_t port)
{
    rpc->wss_port = port;
}

const char *uk_rpc_daemon_version(const uk_rpc *rpc)
{
    return rpc->version;
}

uint16_t uk_rpc_wss_port(const uk_rpc *rpc)
{
    return rpc->wss_port;
}

const uk_rpc_options *uk_rpc_get0_options(const uk_rpc *rpc)
{
    return &rpc->opt;
}

size_t uk_rpc_strikes(uk_rpc *rpc, int table, const char *name, uint64_t window_ms, bool add)
{
    if (table < 0 || table >= UK_STRIKES_TABLES || name == NULL)
        return 0;
    uint64_t now = uv_now(rpc->opt.loop);
    if (rpc->strikes == NULL) {
        if (!add)
            return 0;
        rpc->strikes = calloc(UK_STRIKES_TABLES, sizeof(*rpc->strikes));
        if (rpc->strikes == NULL)
            return 0; /* out of memory: no throttling rather than no service */
    }
    struct strike *t = rpc->strikes[table], *hit = NULL, *victim = &t[0];
    for (size_t i = 0; i < STRIKE_NAMES; i++) {
        if (t[i].n > 0 && strcmp(t[i].name, name) == 0) {
            hit = &t[i];
            break;
        }
        /* An empty entry, else the one struck longest ago. */
        if (victim->n > 0 && (t[i].n == 0 || t[i].last < victim->last))
            victim = &t[i];
    }
    if (hit == NULL) {
        if (!add)
            return 0;
        hit = victim;
        memset(hit, 0, sizeof(*hit));
        snprintf(hit->name, sizeof(hit->name), "%s", name);
    }
    if (add) {
        hit->times[hit->next] = now;
        hit->next = (hit->next + 1) % STRIKE_TIMES;
        if (hit->n < STRIKE_TIMES)
            hit->n++;
        hit->last = now;
    }
    size_t count = 0;
    for (size_t i = 0; i < hit->n; i++)
        if (now - hit->times[i] < window_ms)
            count++;
    return count;
}

size_t uk_rpc_session_count(const uk_rpc *rpc)
{
    return rpc->n_sessions;
}

const char *const *uk_rpc_event_names(size_t *count)
{
    *count = N_EVENTS;
    return event_names;
}

static int event_index(const char *event)
{
    for (size_t i = 0; i < N_EVENTS; i++)
        if (strcmp(event_names[i], event) == 0)
            return (int)i;
    return -1;
}

int uk_rpc_session_subscribe(uk_rpc_session *s, const char *event, bool on)
{
    int i = event_index(event);
    if (i < 0)
        return UK_E_INVALID_PARAMS;
    if (on)
        s->events |= 1u << i;
    else
        s->events &= ~(1u << i);
    return UK_OK;
}

bool uk_rpc_session_subscribed(const uk_rpc_session *s, const char *event)
{
    int i = event_index(event);
    return i >= 0 && (s->events & (1u << i)) != 0;
}

/* Why a new session is refused, or NULL when there is room. */
static const char *session_room(const uk_rpc *rpc, const uk_rpc_peer *peer, bool pairable)
{
    size_t cap = rpc->opt.connections;
    if (rpc->n_sessions >= cap)
        return "connections open already";
    if (peer->endpoint == UK_ENDPOINT_UNIX)
        return NULL;
    size_t reserve = cap / 4 < LOCAL_RESERVE_MAX ? cap / 4 : LOCAL_RESERVE_MAX;
    size_t web = 0, unapproved = 0, same = 0;
    for (const uk_rpc_session *s = rpc->sessions; s != NULL; s = s->next) {
        if (s->peer.endpoint == UK_ENDPOINT_UNIX)
            continue;
        web++;
        if (s->pairable) {
            unapproved++;
            if (s->peer.origin != NULL && peer->origin != NULL &&
                strcmp(s->peer.origin, peer->origin) == 0)
                same++;
        }
    }
    if (web + reserve >= cap)
        return "web connections open already (the rest is kept for local tools)";
    if (pairable && (unapproved >= PAIRABLE_SESSIONS || same >= PAIRABLE_SESSIONS_PER_ORIGIN))
        return "connections of origins not approved open already";
    return NULL;
}

int uk_rpc_session_new(uk_rpc *rpc, const uk_rpc_peer *peer, const uk_rpc_transport *transport,
                       void *ctx, uk_rpc_session **out)
{
    bool pairable = peer->endpoint != UK_ENDPOINT_UNIX &&
                    uk_policy_origin_access(rpc->opt.policy, peer->origin) == UK_ACCESS_PAIRABLE;
    const char *full = session_room(rpc, peer, pairable);
    if (full != NULL) {
        UK_LOG_NOTICE("rpc: refused a client of %s: %zu %s",
                      peer->origin ? peer->origin : "the local socket", rpc->n_sessions, full);
        return UK_E_LIMIT_EXCEEDED;
    }
    uk_rpc_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return UK_E_NO_MEMORY;
    s->rpc = rpc;
    s->pairable = pairable;
    s->peer.endpoint = peer->endpoint;
    if (peer->origin != NULL && (s->origin = strdup(peer->origin)) == NULL) {
        free(s);
        return UK_E_NO_MEMORY;
    }
    s->peer.origin = s->origin;
    s->transport = transport;
    s->ctx = ctx;
    s->next = rpc->sessions;
    if (rpc->sessions)
        rpc->sessions->prev = s;
    rpc->sessions = s;
    rpc->n_sessions++;
    *out = s;
    return UK_OK;
}

int uk_rpc_session_attach_extension(uk_rpc_session *s, const char *origin)
{
    char *copy = strdup(origin);
    if (copy == NULL)
        return UK_E_NO_MEMORY;
    free(s->origin);
    s->origin = copy;
    s->peer.origin = copy;
    s->peer.endpoint = UK_ENDPOINT_NM;
    return UK_OK;
}

void uk_rpc_session_free(uk_rpc_session *s)
{
    if (s == NULL)
        return;
    /* Calls still running answer into the void. */
    for (uk_rpc_call *c = s->calls; c != NULL; c = c->next)
        c->session = NULL;
    if (s->prev)
        s->prev->next = s->next;
    else
        s->rpc->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->rpc->n_sessions--;
    for (size_t i = 0; i < s->n_consented; i++)
        free(s->consented[i]);
    free(s->consented);
    free(s->origin);
    free(s);
}

bool uk_rpc_session_consented(const uk_rpc_session *s, const char *origin)
{
    for (size_t i = 0; s != NULL && origin != NULL && i < s->n_consented; i++)
        if (strcmp(s->consented[i], origin) == 0)
            return true;
    return false;
}

int uk_rpc_session_consent(uk_rpc_session *s, const char *origin)
{
    if (s == NULL || origin == NULL || uk_rpc_session_consented(s, origin))
        return UK_OK;
    if (s->n_consented >= SESSION_CONSENT_MAX)
        return UK_E_LIMIT_EXCEEDED;
    char **grown = realloc(s->consented, (s->n_consented + 1) * sizeof(*grown));
    if (grown == NULL)
        return UK_E_NO_MEMORY;
    s->consented = grown;
    if ((grown[s->n_consented] = strdup(origin)) == NULL)
        return UK_E_NO_MEMORY;
    s->n_consented++;
    return UK_OK;
}

/* Serialises and sends msg (consumed) to the session. */
static void session_send(uk_rpc_session *s, cJSON *msg)
{
    char *text = NULL;
    size_t len = 0;
    int rc = msg ? uk_jsonrpc_print(msg, &text, &len) : UK_E_NO_MEMORY;
    cJSON_Delete(msg);
    if (rc == UK_OK)
        rc = s->transport->send(s->ctx, text, len);
    free(text);
    if (rc != UK_OK)
        s->transport->close(s->ctx, rc);
}

void uk_rpc_session_reject(uk_rpc_session *s, int err)
{
    if (s == NULL)
        return;
    /* The transports reject only what is over the message limit or cannot
     * be framed; say which limit, as the parser does for size. */
    cJSON *extra = NULL, *msg = NULL;
    if (err == UK_E_LIMIT_EXCEEDED && (extra = cJSON_CreateObject()) != NULL) {
        cJSON_AddStringToObject(extra, "limit", "message_size");
        cJSON_AddNumberToObject(extra, "max", (double)s->rpc->opt.message_size);
    }
    char detail[64];
    snprintf(detail, sizeof(detail), "message is larger than %zu bytes", s->rpc->opt.message_size);
    if (uk_jsonrpc_error_new(&msg, NULL, err, err == UK_E_LIMIT_EXCEEDED ? detail : NULL, extra) !=
        UK_OK) {
        s->transport->close(s->ctx, UK_E_NO_MEMORY);
        return;
    }
    session_send(s, msg);
}

static const uk_rpc_method *find_method(const char *name)
{
    size_t n;
    const uk_rpc_method *m = uk_rpc_methods(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(m[i].name, name) == 0)
            return &m[i];
    return NULL;
}

static void call_free(uk_rpc_call *c)
{
    if (c->session != NULL) {
        if (c->prev)
            c->prev->next = c->next;
        else
            c->session->calls = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->session->pending--;
    }
    uk_jsonrpc_msg_free(c->msg);
    cJSON_Delete(c->id);
    free(c->origin);
    free(c->via);
    free(c->audit_token);
    free(c->audit_serial);
    free(c->audit_detail);
    free(c);
}

static const char *endpoint_audit_name(uk_endpoint e)
{
    return e == UK_ENDPOINT_WSS ? "wss" : e == UK_ENDPOINT_NM ? "native-messaging" : "unix";
}

/* One audit line for a call that ends with err (UK_OK: success). The public handshake methods
 * (hello, subscribe) are not recorded: they touch no key and a page may send them often. */
static void audit(uk_rpc *rpc, const uk_rpc_peer *peer, const char *method, unsigned flags,
                  const char *token, const char *serial, const char *detail, int err)
{
    if (rpc->opt.audit == NULL || (flags & (UK_METHOD_PUBLIC | UK_METHOD_QUIET)))
        return;
    char via[UK_ORIGIN_MAX + 16];
    if (detail == NULL && peer->via != NULL) {
        snprintf(via, sizeof(via), "via %s", peer->via);
        detail = via;
    }
    uk_audit_entry e = {.endpoint = endpoint_audit_name(peer->endpoint),
                        .origin = peer->origin,
                        .method = method,
                        .token = token,
                        .cert_serial = serial,
                        .result = err == UK_OK ? "OK" : uk_err_name(err),
                        .detail = detail};
    /* A failed write is logged by the audit module; the request itself goes on. */
    if (uk_audit_write(rpc->opt.audit, &e) != UK_OK)
        return;
}

static void call_audit(uk_rpc_call *c, int err)
{
    audit(c->rpc, &c->peer, c->method->name, c->method->flags, c->audit_token, c->audit_serial,
          c->audit_detail, err);
}

static int replace_str(char **dst, const char *src)
{
    if (src == NULL)
        return UK_OK;
    char *copy = strdup(src);
    if (copy == NULL)
        return UK_E_NO_MEMORY;
    free(*dst);
    *dst = copy;
    return UK_OK;
}

void uk_rpc_call_set_audit(uk_rpc_call *call, const char *token, const char *cert_serial,
                           const char *detail)
{
    /* Out of memory only thins the audit line; the call goes on. */
    (void)replace_str(&call->audit_token, token);
    (void)replace_str(&call->audit_serial, cert_serial);
    (void)replace_str(&call->audit_detail, detail);
}

const uk_rpc_method *uk_rpc_call_method(const uk_rpc_call *call)
{
    return call->method;
}

bool uk_rpc_call_is_local(const uk_rpc_call *call)
{
    return call->peer.endpoint == UK_ENDPOINT_UNIX;
}

/*
 * Who may call m: the local user anything; a web origin (or the extension on its own behalf)
 * what its access level and the per-origin policy allow. The origin is decided here, per
 * request, so a SIGHUP or a revoked pairing takes effect on open connections at once.
 */
static int admit(uk_rpc *rpc, const uk_rpc_peer *peer, const uk_rpc_method *m)
{
    if (peer->endpoint == UK_ENDPOINT_UNIX)
        return UK_OK;
    uk_origin_access access = uk_policy_origin_access(rpc->opt.policy, peer->origin);
    if (access == UK_ACCESS_REFUSED)
        return UK_E_ORIGIN_NOT_ALLOWED;
    /* The extension on its own behalf (no page origin) only reads what its popup shows and
     * where to inject its content script. */
    if (peer->endpoint == UK_ENDPOINT_NM && peer->via == NULL)
        return (m->flags & (UK_METHOD_PUBLIC | UK_METHOD_EXTENSION)) ? UK_OK
                                                                     : UK_E_METHOD_NOT_ALLOWED;
    if (m->flags & UK_METHOD_LOCAL_ONLY)
        return UK_E_METHOD_NOT_ALLOWED;
    if (m->flags & (UK_METHOD_PUBLIC | UK_METHOD_PAIRING))
        return UK_OK;
    if (access == UK_ACCESS_PAIRABLE)
        return UK_E_NOT_PAIRED;
    return uk_policy_method_allowed(rpc->opt.policy, peer->origin, m->name)
               ? UK_OK
               : UK_E_METHOD_NOT_ALLOWED;
}

/* The page origin an extension named for one request: strictly parsed, or refused. */
static int relayed_origin(const char *text, const char **why)
{
    uk_origin o;
    return uk_origin_parse(text, strlen(text), &o, why) == UK_OK &&
                   o.scheme != UK_ORIGIN_CHROME_EXTENSION
               ? UK_OK
               : UK_E_ORIGIN_NOT_ALLOWED;
}

void uk_rpc_session_input(uk_rpc_session *s, const char *text, size_t len)
{
    uk_rpc *rpc = s->rpc;
    uk_jsonrpc_limits limits = {.max_message = rpc->opt.message_size,
                                .max_depth = rpc->opt.json_depth,
                                .allow_origin = s->peer.endpoint == UK_ENDPOINT_NM};
    uk_jsonrpc_msg *msg = NULL;
    cJSON *reply = NULL;
    int rc = uk_jsonrpc_parse(text, len, &limits, &msg, &reply);
    if (rc != UK_OK) {
        if (reply == NULL) {
            s->transport->close(s->ctx, rc);
            return;
        }
        session_send(s, reply);
        return;
    }
    uk_jsonrpc_kind kind = uk_jsonrpc_msg_kind(msg);
    if (kind == UK_JSONRPC_RESPONSE) {
        /* We never send requests, so there is nothing to match this to; not
         * answering keeps two misbehaving peers from ping-ponging. */
        UK_LOG_DEBUG("rpc: dropped a response from a client");
        uk_jsonrpc_msg_free(msg);
        return;
    }
    const cJSON *id = kind == UK_JSONRPC_REQUEST ? uk_jsonrpc_msg_get0_id(msg) : NULL;
    const char *name = uk_jsonrpc_msg_get0_method(msg);
    const uk_rpc_method *m = find_method(name);
    /* Whose request this is: the session's client, or the page an extension relays for. */
    uk_rpc_peer peer = s->peer;
    const char *relayed = uk_jsonrpc_msg_get0_origin(msg);
    const char *why = NULL;
    int err = UK_OK;
    uk_jsonrpc_param_error pe = {0};
    if (relayed != NULL) {
        peer.via = s->peer.origin;
        peer.origin = relayed;
        err = relayed_origin(relayed, &why);
    }
    /* A refused origin has no rate bucket, so it is told why rather than RATE_LIMITED; any
     * other refusal is rate-limited first, so a page cannot flood the audit log with them. */
    int denied = UK_OK;
    if (err == UK_OK && m == NULL)
        err = UK_E_METHOD_NOT_FOUND;
    else if (err == UK_OK && (denied = admit(rpc, &peer, m)) == UK_E_ORIGIN_NOT_ALLOWED)
        err = denied;
    else if (err == UK_OK &&
             !uk_policy_rate_take(rpc->opt.policy, peer.origin, uv_now(rpc->opt.loop)))
        err = UK_E_RATE_LIMITED;
    else if (err == UK_OK && denied != UK_OK) {
        err = denied;
        audit(rpc, &peer, m->name, 0, NULL, NULL, "refused before the method ran", err);
    } else if (err == UK_OK && s->pending >= rpc->opt.pending_per_connection)
        err = UK_E_LIMIT_EXCEEDED;
    else if (err == UK_OK)
        err = uk_jsonrpc_params_check_known(uk_jsonrpc_msg_get0_params(msg), m->params, m->n_params,
                                            &pe);
    if (err != UK_OK) {
        if (err == UK_E_RATE_LIMITED)
            UK_LOG_NOTICE("rpc: %s is over its request rate", peer.origin);
        else if (err == UK_E_ORIGIN_NOT_ALLOWED || err == UK_E_NOT_PAIRED ||
                 err == UK_E_METHOD_NOT_ALLOWED)
            UK_LOG_NOTICE("refused: endpoint=%s origin=%s%s%s method=%s reason=%s%s%s",
                          endpoint_audit_name(peer.endpoint), peer.origin ? peer.origin : "(local)",
                          peer.via ? " via=" : "", peer.via ? peer.via : "", name, uk_err_name(err),
                          why ? " why=" : "", why ? why : "");
        if (id != NULL) {
            cJSON *out = NULL;
            int brc = err == UK_E_INVALID_PARAMS ? uk_jsonrpc_param_error_new(&out, id, &pe)
                                                 : uk_jsonrpc_error_new(&out, id, err, NULL, NULL);
            if (brc == UK_OK)
                session_send(s, out);
            else
                s->transport->close(s->ctx, brc);
        }
        uk_jsonrpc_msg_free(msg);
        return;
    }
    uk_rpc_call *c = calloc(1, sizeof(*c));
    if (c == NULL || (id != NULL && (c->id = cJSON_Duplicate(id, true)) == NULL) ||
        (peer.origin && (c->origin = strdup(peer.origin)) == NULL) ||
        (peer.via && (c->via = strdup(peer.via)) == NULL)) {
        if (c) {
            cJSON_Delete(c->id);
            free(c->origin);
        }
        free(c);
        uk_jsonrpc_msg_free(msg);
        s->transport->close(s->ctx, UK_E_NO_MEMORY);
        return;
    }
    c->rpc = rpc;
    c->session = s;
    c->method = m;
    c->peer.endpoint = peer.endpoint;
    c->peer.origin = c->origin;
    c->peer.via = c->via;
    c->msg = msg;
    c->next = s->calls;
    if (s->calls)
        s->calls->prev = c;
    s->calls = c;
    s->pending++;
    m->handler(c);
}

cJSON *uk_rpc_call_params(uk_rpc_call *call)
{
    return uk_jsonrpc_msg_get0_params(call->msg);
}

const uk_rpc_peer *uk_rpc_call_peer(const uk_rpc_call *call)
{
    return &call->peer;
}

uk_rpc *uk_rpc_call_rpc(const uk_rpc_call *call)
{
    return call->rpc;
}

uk_rpc_session *uk_rpc_call_session(const uk_rpc_call *call)
{
    return call->session;
}

void uk_rpc_call_result(uk_rpc_call *call, cJSON *result)
{
    call_audit(call, UK_OK);
    if (call->session != NULL && call->id != NULL) {
        cJSON *out = NULL;
        if (uk_jsonrpc_response_new(&out, call->id, result) == UK_OK)
            session_send(call->session, out);
        else
            call->session->transport->close(call->session->ctx, UK_E_NO_MEMORY);
    } else {
        cJSON_Delete(result);
    }
    call_free(call);
}

void uk_rpc_call_error(uk_rpc_call *call, int err, const char *detail, cJSON *extra)
{
    call_audit(call, err);
    if (call->session != NULL && call->id != NULL) {
        cJSON *out = NULL;
        if (uk_jsonrpc_error_new(&out, call->id, err, detail, extra) == UK_OK)
            session_send(call->session, out);
        else
            call->session->transport->close(call->session->ctx, UK_E_NO_MEMORY);
    } else {
        cJSON_Delete(extra);
    }
    call_free(call);
}

void uk_rpc_call_param_error(uk_rpc_call *call, const uk_jsonrpc_param_error *pe)
{
    call_audit(call, UK_E_INVALID_PARAMS);
    if (call->session != NULL && call->id != NULL) {
        cJSON *out = NULL;
        if (uk_jsonrpc_param_error_new(&out, call->id, pe) == UK_OK)
            session_send(call->session, out);
        else
            call->session->transport->close(call->session->ctx, UK_E_NO_MEMORY);
    }
    call_free(call);
}

static void notify(uk_rpc *rpc, const char *event, const char *owner, bool owned, cJSON *params)
{
    for (uk_rpc_session *s = rpc->sessions; s != NULL; s = s->next) {
        if (!uk_rpc_session_subscribed(s, event))
            continue;
        if (owned && s->peer.endpoint != UK_ENDPOINT_UNIX &&
            (owner == NULL || (s->peer.endpoint == UK_ENDPOINT_WSS &&
                               (s->peer.origin == NULL || strcmp(s->peer.origin, owner) != 0))))
            continue;
        cJSON *copy = params ? cJSON_Duplicate(params, true) : NULL;
        cJSON *msg = NULL;
        if ((params != NULL && copy == NULL) ||
            uk_jsonrpc_notification_new(&msg, event, copy) != UK_OK) {
            s->transport->close(s->ctx, UK_E_NO_MEMORY);
            continue;
        }
        session_send(s, msg);
    }
    cJSON_Delete(params);
}

void uk_rpc_notify(uk_rpc *rpc, const char *event, cJSON *params)
{
    notify(rpc, event, NULL, false, params);
}

void uk_rpc_notify_owned(uk_rpc *rpc, const char *event, const char *origin, cJSON *params)
{
    notify(rpc, event, origin, true, params);
}
