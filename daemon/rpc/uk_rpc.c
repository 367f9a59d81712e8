/* The dispatcher: sessions, limits, calls and events. */
#include "uk_rpc.h"

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

struct uk_rpc {
    uk_rpc_options opt;
    char *version;
    uint16_t wss_port;
    uk_rpc_session *sessions;
    size_t n_sessions;
};

struct uk_rpc_session {
    uk_rpc *rpc;
    uk_rpc_peer peer; /* peer.origin points at origin */
    char *origin;
    const uk_rpc_transport *transport;
    void *ctx;
    uk_rpc_call *calls;
    size_t pending;
    uint32_t events;
    uk_rpc_session *prev, *next;
};

struct uk_rpc_call {
    uk_rpc *rpc;
    uk_rpc_session *session; /* NULL once the client has gone */
    uk_rpc_peer peer;        /* a copy that outlives the session */
    char *origin;
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

int uk_rpc_session_new(uk_rpc *rpc, const uk_rpc_peer *peer, const uk_rpc_transport *transport,
                       void *ctx, uk_rpc_session **out)
{
    if (rpc->n_sessions >= rpc->opt.connections) {
        UK_LOG_NOTICE("rpc: refused a client of %s: %zu connections open already",
                      peer->origin ? peer->origin : "the local socket", rpc->n_sessions);
        return UK_E_LIMIT_EXCEEDED;
    }
    uk_rpc_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return UK_E_NO_MEMORY;
    s->rpc = rpc;
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
    free(s->origin);
    free(s);
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
    free(c);
}

void uk_rpc_session_input(uk_rpc_session *s, const char *text, size_t len)
{
    uk_rpc *rpc = s->rpc;
    uk_jsonrpc_limits limits = {.max_message = rpc->opt.message_size,
                                .max_depth = rpc->opt.json_depth};
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
    int err = UK_OK;
    uk_jsonrpc_param_error pe = {0};
    if (!uk_policy_rate_take(rpc->opt.policy, s->peer.origin, uv_now(rpc->opt.loop)))
        err = UK_E_RATE_LIMITED;
    else if (m == NULL)
        err = UK_E_METHOD_NOT_FOUND;
    else if ((m->flags & UK_METHOD_LOCAL_ONLY) && s->peer.endpoint != UK_ENDPOINT_UNIX)
        err = UK_E_METHOD_NOT_ALLOWED;
    else if (s->pending >= rpc->opt.pending_per_connection)
        err = UK_E_LIMIT_EXCEEDED;
    else
        err = uk_jsonrpc_params_check_known(uk_jsonrpc_msg_get0_params(msg), m->params, m->n_params,
                                            &pe);
    if (err != UK_OK) {
        if (err == UK_E_RATE_LIMITED)
            UK_LOG_NOTICE("rpc: %s is over its request rate", s->peer.origin);
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
        (s->origin && (c->origin = strdup(s->origin)) == NULL)) {
        if (c)
            cJSON_Delete(c->id);
        free(c);
        uk_jsonrpc_msg_free(msg);
        s->transport->close(s->ctx, UK_E_NO_MEMORY);
        return;
    }
    c->rpc = rpc;
    c->session = s;
    c->peer.endpoint = s->peer.endpoint;
    c->peer.origin = c->origin;
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
    if (call->session != NULL && call->id != NULL) {
        cJSON *out = NULL;
        if (uk_jsonrpc_param_error_new(&out, call->id, pe) == UK_OK)
            session_send(call->session, out);
        else
            call->session->transport->close(call->session->ctx, UK_E_NO_MEMORY);
    }
    call_free(call);
}

void uk_rpc_notify(uk_rpc *rpc, const char *event, cJSON *params)
{
    for (uk_rpc_session *s = rpc->sessions; s != NULL; s = s->next) {
        if (!uk_rpc_session_subscribed(s, event))
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
