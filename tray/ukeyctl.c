/* ukeyctl: the command-line client of ukeyd's Unix socket.
 *
 *   ukeyctl [--socket PATH | --config FILE] call METHOD [PARAMS-JSON]
 *   ukeyctl [--socket PATH | --config FILE] status
 *
 * `call` prints the result as JSON on stdout and exits 0; on an error it
 * prints the JSON-RPC error object on stdout, a readable line on stderr, and
 * exits 1 (2 for usage, 3 when ukeyd cannot be reached). Scripts rely on
 * this output staying plain JSON. */
#include "uk_config.h"
#include "uk_err.h"
#include "uk_frame.h"
#include "uk_jsonrpc.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long to wait for an answer; card operations can take a while. */
#define ANSWER_TIMEOUT_MS 120000

static void usage(FILE *f)
{
    fputs("usage: ukeyctl [--socket PATH | --config FILE] call METHOD [PARAMS-JSON]\n"
          "       ukeyctl [--socket PATH | --config FILE] status\n",
          f);
}

/* Sends one request and returns the parsed response message, or NULL. */
static uk_jsonrpc_msg *round_trip(int fd, const char *method, cJSON *params)
{
    cJSON *id = cJSON_CreateNumber(1), *req = NULL;
    char *text = NULL;
    size_t len = 0;
    uk_jsonrpc_msg *msg = NULL;
    if (id == NULL || uk_jsonrpc_request_new(&req, id, method, params) != UK_OK ||
        uk_jsonrpc_print(req, &text, &len) != UK_OK)
        goto out;
    if (uk_frame_write(fd, text, len) != UK_OK)
        goto out;
    /* Skip notifications until our answer arrives. */
    for (;;) {
        uint8_t *body = NULL;
        size_t n = 0;
        if (uk_frame_read(fd, 16u * 1024 * 1024, ANSWER_TIMEOUT_MS, &body, &n) != UK_OK)
            goto out;
        uk_jsonrpc_limits lim = {.max_message = 16u * 1024 * 1024, .max_depth = 64};
        int rc = uk_jsonrpc_parse((const char *)body, n, &lim, &msg, NULL);
        free(body);
        if (rc != UK_OK)
            goto out;
        if (uk_jsonrpc_msg_kind(msg) == UK_JSONRPC_RESPONSE)
            break;
        uk_jsonrpc_msg_free(msg);
        msg = NULL;
    }
out:
    cJSON_Delete(id);
    cJSON_Delete(req);
    free(text);
    return msg;
}

static void print_json(const cJSON *v)
{
    char *s = cJSON_PrintUnformatted(v);
    if (s != NULL)
        puts(s);
    free(s);
}

static int report_error(const cJSON *err)
{
    print_json(err);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(err, "data");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(data, "reason");
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(err, "message");
    fprintf(stderr, "ukeyctl: %s%s%s\n", cJSON_IsString(message) ? message->valuestring : "error",
            cJSON_IsString(reason) ? " - " : "", cJSON_IsString(reason) ? reason->valuestring : "");
    return 1;
}

static int cmd_call(int fd, const char *method, const char *params_text)
{
    cJSON *params = NULL;
    if (params_text != NULL) {
        params = cJSON_Parse(params_text);
        if (params == NULL || !(cJSON_IsObject(params) || cJSON_IsArray(params))) {
            fprintf(stderr, "ukeyctl: PARAMS-JSON must be a JSON object or array\n");
            cJSON_Delete(params);
            return 2;
        }
    }
    uk_jsonrpc_msg *msg = round_trip(fd, method, params);
    if (msg == NULL) {
        fprintf(stderr, "ukeyctl: no answer from ukeyd\n");
        return 3;
    }
    int rc = 0;
    if (uk_jsonrpc_msg_get0_error(msg) != NULL)
        rc = report_error(uk_jsonrpc_msg_get0_error(msg));
    else
        print_json(uk_jsonrpc_msg_get0_result(msg));
    uk_jsonrpc_msg_free(msg);
    return rc;
}

static int cmd_status(int fd, const char *socket_path)
{
    uk_jsonrpc_msg *msg = round_trip(fd, "system.hello", NULL);
    if (msg == NULL) {
        fprintf(stderr, "ukeyctl: no answer from ukeyd\n");
        return 3;
    }
    const cJSON *r = uk_jsonrpc_msg_get0_result(msg);
    if (r == NULL) {
        int rc = report_error(uk_jsonrpc_msg_get0_error(msg));
        uk_jsonrpc_msg_free(msg);
        return rc;
    }
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(r, "version");
    const cJSON *port = cJSON_GetObjectItemCaseSensitive(r, "wss_port");
    printf("ukeyd %s is running\n", cJSON_IsString(version) ? version->valuestring : "?");
    printf("  local socket: %s\n", socket_path);
    if (cJSON_IsNumber(port))
        printf("  web pages:    wss://127.0.0.1:%d\n", port->valueint);
    else
        printf("  web pages:    WSS is off\n");
    uk_jsonrpc_msg_free(msg);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *socket_path = NULL, *config_path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "+s:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            socket_path = optarg;
            break;
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    bool is_call = strcmp(cmd, "call") == 0;
    if (!(is_call && (argc - optind == 2 || argc - optind == 3)) &&
        !(strcmp(cmd, "status") == 0 && argc - optind == 1)) {
        usage(stderr);
        return 2;
    }
    uk_config *cfg = NULL;
    if (socket_path == NULL) {
        if (uk_config_load(config_path, &cfg) != UK_OK) {
            fprintf(stderr, "ukeyctl: cannot read the configuration\n");
            return 2;
        }
        socket_path = cfg->socket_path;
    }
    int rc;
    int fd = uk_frame_connect(socket_path);
    if (fd < 0) {
        fprintf(stderr, "ukeyctl: ukeyd is not running (no answer on %s)\n", socket_path);
        rc = 3;
    } else if (is_call) {
        rc = cmd_call(fd, argv[optind + 1], argc - optind == 3 ? argv[optind + 2] : NULL);
    } else {
        rc = cmd_status(fd, socket_path);
    }
    if (fd >= 0)
        close(fd);
    uk_config_free(cfg);
    return rc;
}
