/*
 * fuzz_dispatch.c - libFuzzer target for the real JSON-RPC dispatcher (daemon/rpc/uk_rpc.h).
 *
 * One dispatcher (a uv loop, a policy from a parsed config, no token layer: key methods answer
 * NO_SERVICE) lives for the whole run. Each input is fed as one message to a fresh Unix-endpoint
 * session and to a fresh WSS-endpoint session from an allowed origin, then both are freed. The
 * fake transport checks that every answer is one JSON text and discards it. The rate limit is
 * set high so the WSS session is not simply refused after the first few runs.
 * Corpus: tests/fuzz/corpus/dispatch/.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "uk_config.h"
#include "uk_err.h"
#include "uk_policy.h"
#include "uk_rpc.h"

#define ORIGIN "https://portal.example.cn"

typedef struct {
    size_t sent;
    int closed;
} fake_client;

static int fake_send(void *ctx, const char *json, size_t len)
{
    fake_client *c = ctx;
    cJSON *v = cJSON_ParseWithLength(json, len);
    if (v == NULL)
        abort(); /* the dispatcher only ever sends JSON */
    cJSON_Delete(v);
    c->sent++;
    return UK_OK;
}

static void fake_close(void *ctx, int err)
{
    fake_client *c = ctx;
    c->closed = err != 0 ? err : -1;
}

static const uk_rpc_transport fake_transport = {.send = fake_send, .close = fake_close};

static struct {
    uv_loop_t loop;
    uk_config *cfg;
    uk_policy *policy;
    uk_rpc *rpc;
} g;

static void setup_once(void)
{
    static const char cfg[] = "{\"origins\": [\"" ORIGIN "\"],"
                              " \"extension_ids\": [\"abcdefghijklmnopabcdefghijklmnop\"],"
                              " \"limits\": {\"requests_per_second_per_origin\": 100000}}";
    if (g.rpc != NULL)
        return;
    uk_fuzz_quiet();
    setenv("HOME", "/nonexistent", 1);
    if (uv_loop_init(&g.loop) != 0 || uk_config_parse(cfg, strlen(cfg), "fuzz", &g.cfg) != UK_OK ||
        uk_policy_new(g.cfg, &g.policy) != UK_OK)
        abort();
    uk_rpc_options opt = {.loop = &g.loop,
                          .policy = g.policy,
                          .tokens = NULL,
                          .daemon_version = "0.0.0-fuzz",
                          .message_size = g.cfg->limits.message_size,
                          .json_depth = g.cfg->limits.json_depth,
                          .pending_per_connection = g.cfg->limits.pending_per_connection,
                          .connections = g.cfg->limits.connections};
    if (uk_rpc_new(&opt, &g.rpc) != UK_OK)
        abort();
    uk_rpc_set_wss_port(g.rpc, 28473);
}

static void feed(uk_endpoint endpoint, const char *origin, const char *msg, size_t len)
{
    fake_client c = {0};
    uk_rpc_peer peer = {.endpoint = endpoint, .origin = origin};
    uk_rpc_session *s = NULL;
    if (uk_rpc_session_new(g.rpc, &peer, &fake_transport, &c, &s) != UK_OK)
        abort();
    uk_rpc_session_input(s, msg, len);
    /* Whatever a handler left for the loop (there is no token layer: nothing should wait). */
    (void)uv_run(&g.loop, UV_RUN_NOWAIT);
    uk_rpc_session_free(s);
    if (uk_rpc_session_count(g.rpc) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    feed(UK_ENDPOINT_UNIX, NULL, (const char *)data, size);
    feed(UK_ENDPOINT_WSS, ORIGIN, (const char *)data, size);
    return 0;
}
