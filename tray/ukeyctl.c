/* ukeyctl: the command-line client of ukeyd's Unix socket.
 *
 *   ukeyctl [--socket PATH | --config FILE] call METHOD [PARAMS-JSON]
 *   ukeyctl [--socket PATH | --config FILE] status [--json]
 *   ukeyctl [--socket PATH | --config FILE] certs [--pem | --json]
 *   ukeyctl [--socket PATH | --config FILE] renewals [--json]
 *   ukeyctl [--socket PATH | --config FILE] doctor [--json] [--no-sign] [--ca-bundle FILE]
 *   ukeyctl [--socket PATH | --config FILE] origins list [--json]
 *   ukeyctl [--socket PATH | --config FILE] origins revoke ORIGIN
 *   ukeyctl [--socket PATH | --config FILE] audit [-n N] [--json]
 *
 * `call` prints the result as JSON on stdout and exits 0; on an error it
 * prints the JSON-RPC error object on stdout, a readable line on stderr, and
 * exits 1 (2 for usage, 3 when ukeyd cannot be reached). Scripts rely on
 * this output staying plain JSON.
 *
 * `origins list` (method origins.list) and `audit` (method audit.read) print a
 * table for people, or the method's result as JSON with --json; `origins
 * revoke` (method origins.revoke) prints "revoked ORIGIN". On an error these
 * print the message in English and Chinese on stderr and exit 1. Values from
 * the daemon are printed with control characters replaced, so an origin or
 * method name in the audit log cannot drive the terminal.
 *
 * `status` says whether ukeyd runs, where it listens, the keys with their certificates (dates,
 * days left) and the renewals in progress; `certs` lists the certificates in detail or as PEM;
 * `renewals` lists renewal.list; `doctor` (ukeyctl_doctor.c) runs the checks of docs/doctor.md and
 * exits 0 (all OK), 1 (a warning) or 2 (a failure). man/ukeyctl.1 is the manual. */
#include "ukeyctl.h"

#include "uk_config.h"
#include "uk_err.h"
#include "uk_frame.h"
#include "uk_jsonrpc.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long to wait for an answer; card operations can take a while. */
#define ANSWER_TIMEOUT_MS 120000

/* `audit -n`: the default and the most audit.read hands out at once. */
#define AUDIT_DEFAULT_LINES 50
#define AUDIT_MAX_LINES     1000

static void usage(FILE *f)
{
    fputs("usage: ukeyctl [--socket PATH | --config FILE] call METHOD [PARAMS-JSON]\n"
          "       ukeyctl [--socket PATH | --config FILE] status [--json]\n"
          "       ukeyctl [--socket PATH | --config FILE] certs [--pem | --json]\n"
          "       ukeyctl [--socket PATH | --config FILE] renewals [--json]\n"
          "       ukeyctl [--socket PATH | --config FILE] origins list [--json]\n"
          "       ukeyctl [--socket PATH | --config FILE] origins revoke ORIGIN\n"
          "       ukeyctl [--socket PATH | --config FILE] audit [-n N] [--json]\n"
          "       ukeyctl [--socket PATH | --config FILE] doctor [--json] [--no-sign]\n"
          "                                                      [--ca-bundle FILE]\n"
          "\n"
          "  call            send one JSON-RPC request and print the result as JSON\n"
          "  status          whether ukeyd runs, where it listens, the keys, their\n"
          "                  certificates (dates, days left) and renewals in progress\n"
          "  certs           every certificate on the keys in detail (--pem: as PEM)\n"
          "  renewals        certificate renewals, finished ones included\n"
          "  origins list    web origins that may use the key: allowed by the\n"
          "                  configuration (system or user) or approved by you\n"
          "  origins revoke  withdraw an approval given to ORIGIN\n"
          "  audit           the newest N audit log entries (default 50, at most 1000)\n"
          "  doctor          check the key, the certificate and what may get in the way;\n"
          "                  exit 0 all OK, 1 a warning, 2 a failure (see man ukeyctl)\n"
          "  --json          print the answer as JSON instead of text\n",
          f);
}

/* Sends one request and returns the parsed response message, or NULL. */
uk_jsonrpc_msg *ukctl_round_trip(int fd, const char *method, cJSON *params)
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
    uk_jsonrpc_msg *msg = ukctl_round_trip(fd, method, params);
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

/* Prints s with control characters replaced: the text comes from web pages, via the daemon. */
static void put_safe(const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++)
        putchar(*c < 0x20 || *c == 0x7f ? '?' : *c);
}

/* Prints s padded with spaces to width columns (bytes; our columns are ASCII). */
static void put_col(const char *s, size_t width)
{
    put_safe(s);
    for (size_t n = strlen(s); n < width; n++)
        putchar(' ');
}

static const char *get_str(const cJSON *obj, const char *key, const char *absent)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : absent;
}

/* The error's message in English and Chinese (error.data.message), for people. */
static int report_error_text(const cJSON *err, const char *what)
{
    const cJSON *msg =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(err, "data"), "message");
    const char *en = get_str(msg, "en", get_str(err, "message", "error"));
    const char *zh = get_str(msg, "zh-CN", NULL);
    fprintf(stderr, "ukeyctl: %s: %s\n", what, en);
    if (zh != NULL)
        fprintf(stderr, "ukeyctl: %s\n", zh);
    return 1;
}

/* Calls method; on success *msg holds the answer with a result. Returns 0 or the exit status. */
static int call_for_result(int fd, const char *method, cJSON *params, const char *what,
                           uk_jsonrpc_msg **msg)
{
    *msg = ukctl_round_trip(fd, method, params);
    if (*msg == NULL) {
        fprintf(stderr, "ukeyctl: no answer from ukeyd\n");
        return 3;
    }
    if (uk_jsonrpc_msg_get0_result(*msg) == NULL) {
        int rc = report_error_text(uk_jsonrpc_msg_get0_error(*msg), what);
        uk_jsonrpc_msg_free(*msg);
        *msg = NULL;
        return rc;
    }
    return 0;
}

/* "2026-11-24T03:20:31Z" -> "2026-11-24 03:20"; anything else as it is. */
static void format_date(const char *iso, char *buf, size_t size)
{
    if (strlen(iso) >= 16 && iso[10] == 'T')
        snprintf(buf, size, "%.10s %.5s", iso, iso + 11);
    else
        snprintf(buf, size, "%s", iso);
}

static int cmd_origins_list(int fd, bool json)
{
    uk_jsonrpc_msg *msg = NULL;
    int rc = call_for_result(fd, "origins.list", NULL, "cannot list origins", &msg);
    if (rc != 0)
        return rc;
    const cJSON *r = uk_jsonrpc_msg_get0_result(msg);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(r, "origins");
    if (json) {
        print_json(r);
    } else if (!cJSON_IsArray(list)) {
        fprintf(stderr, "ukeyctl: unexpected answer from ukeyd\n");
        rc = 1;
    } else if (cJSON_GetArraySize(list) == 0) {
        puts("No web origin may use the key.");
    } else {
        size_t w = strlen("ORIGIN");
        const cJSON *o;
        cJSON_ArrayForEach(o, list)
        {
            size_t n = strlen(get_str(o, "origin", "?"));
            w = n > w ? n : w;
        }
        put_col("ORIGIN", w + 2);
        puts("ACCESS   SOURCE   PAIRED            CONSENT  PIN FROM PAGE  METHODS");
        cJSON_ArrayForEach(o, list)
        {
            char date[40];
            format_date(get_str(o, "paired_at", "-"), date, sizeof date);
            const cJSON *pin = cJSON_GetObjectItemCaseSensitive(o, "pin_from_page");
            const cJSON *methods = cJSON_GetObjectItemCaseSensitive(o, "methods");
            put_col(get_str(o, "origin", "?"), w + 2);
            put_col(get_str(o, "access", "?"), 9);
            put_col(get_str(o, "source", "?"), 9);
            put_col(date, 18);
            put_col(get_str(o, "consent", "?"), 9);
            put_col(cJSON_IsTrue(pin) ? "yes" : "no", 15);
            if (!cJSON_IsArray(methods)) {
                fputs("all", stdout);
            } else if (cJSON_GetArraySize(methods) == 0) {
                fputs("none", stdout);
            } else {
                const cJSON *m;
                bool first = true;
                cJSON_ArrayForEach(m, methods)
                {
                    if (!cJSON_IsString(m))
                        continue;
                    fputs(first ? "" : ",", stdout);
                    put_safe(m->valuestring);
                    first = false;
                }
            }
            putchar('\n');
        }
    }
    uk_jsonrpc_msg_free(msg);
    return rc;
}

static int cmd_origins_revoke(int fd, const char *origin)
{
    cJSON *params = cJSON_CreateObject();
    if (params == NULL || cJSON_AddStringToObject(params, "origin", origin) == NULL) {
        cJSON_Delete(params);
        fprintf(stderr, "ukeyctl: out of memory\n");
        return 1;
    }
    char what[400];
    snprintf(what, sizeof what, "cannot revoke %s", origin);
    uk_jsonrpc_msg *msg = NULL;
    int rc = call_for_result(fd, "origins.revoke", params, what, &msg);
    if (rc != 0)
        return rc;
    fputs("revoked ", stdout);
    put_safe(origin);
    putchar('\n');
    uk_jsonrpc_msg_free(msg);
    return 0;
}

/* One audit entry as a line: time, endpoint, origin, method, token, serial, result (detail). */
static void print_audit_entry(const cJSON *e)
{
    put_col(get_str(e, "time", "?"), 26);
    put_col(get_str(e, "endpoint", "-"), 18);
    put_safe(get_str(e, "origin", "local"));
    fputs("  ", stdout);
    put_safe(get_str(e, "method", "-"));
    fputs("  ", stdout);
    put_safe(get_str(e, "token", "-"));
    fputs("  ", stdout);
    put_safe(get_str(e, "cert_serial", "-"));
    fputs("  ", stdout);
    put_safe(get_str(e, "result", "-"));
    const char *detail = get_str(e, "detail", NULL);
    if (detail != NULL) {
        fputs(" (", stdout);
        put_safe(detail);
        putchar(')');
    }
    putchar('\n');
}

static int cmd_audit(int fd, long lines, bool json)
{
    cJSON *params = cJSON_CreateObject();
    if (params == NULL || cJSON_AddNumberToObject(params, "limit", (double)lines) == NULL) {
        cJSON_Delete(params);
        fprintf(stderr, "ukeyctl: out of memory\n");
        return 1;
    }
    uk_jsonrpc_msg *msg = NULL;
    int rc = call_for_result(fd, "audit.read", params, "cannot read the audit log", &msg);
    if (rc != 0)
        return rc;
    const cJSON *r = uk_jsonrpc_msg_get0_result(msg);
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(r, "entries");
    if (json) {
        print_json(r);
    } else if (!cJSON_IsArray(entries)) {
        fprintf(stderr, "ukeyctl: unexpected answer from ukeyd\n");
        rc = 1;
    } else if (cJSON_GetArraySize(entries) == 0) {
        puts("The audit log is empty.");
    } else {
        const cJSON *e;
        cJSON_ArrayForEach(e, entries)
        {
            print_audit_entry(e);
        }
    }
    uk_jsonrpc_msg_free(msg);
    return rc;
}

/* ---- helpers shared with doctor ---- */

const cJSON *ukctl_result(const uk_jsonrpc_msg *msg)
{
    return msg != NULL ? uk_jsonrpc_msg_get0_result(msg) : NULL;
}

const char *ukctl_reason(const uk_jsonrpc_msg *msg)
{
    const cJSON *err = msg != NULL ? uk_jsonrpc_msg_get0_error(msg) : NULL;
    return get_str(cJSON_GetObjectItemCaseSensitive(err, "data"), "reason", NULL);
}

bool ukctl_zh(void)
{
    const char *vars[] = {"LC_ALL", "LC_MESSAGES", "LANG"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v != NULL && v[0] != '\0') {
            if (strncmp(v, "zh", 2) == 0)
                return true;
            break;
        }
    }
    const char *lang = getenv("LANGUAGE");
    return lang != NULL && strncmp(lang, "zh", 2) == 0;
}

const char *ukctl_tr(const char *en, const char *zh)
{
    static int zh_cached = -1;
    if (zh_cached < 0)
        zh_cached = ukctl_zh() ? 1 : 0;
    return zh_cached ? zh : en;
}

void ukctl_local_date(const char *iso, char *buf, size_t size)
{
    struct tm tm = {0};
    char z = 0;
    if (sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &z) == 7 &&
        z == 'Z') {
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        time_t t = timegm(&tm);
        struct tm lt;
        if (localtime_r(&t, &lt) != NULL && strftime(buf, size, "%Y-%m-%d", &lt) > 0)
            return;
    }
    snprintf(buf, size, "%s", iso);
}

/* ---- status, certs, renewals ---- */

/* The keys (token.list) with their certificates (cert.list, der when with_der) as one JSON array:
 * each token.list entry plus "certificates" (null when not read) and "error" (the reason cert.list
 * failed with, or null). *service_reason: token.list's error reason (e.g. NO_SERVICE) or NULL.
 * Returns NULL when ukeyd did not answer. */
static cJSON *collect_keys(int fd, bool with_der, char *service_reason, size_t size)
{
    service_reason[0] = '\0';
    uk_jsonrpc_msg *tl = ukctl_round_trip(fd, "token.list", NULL);
    if (tl == NULL)
        return NULL;
    cJSON *keys = cJSON_CreateArray();
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(ukctl_result(tl), "tokens");
    if (ukctl_result(tl) == NULL)
        snprintf(service_reason, size, "%s", ukctl_reason(tl) ? ukctl_reason(tl) : "INTERNAL");
    const cJSON *t;
    cJSON_ArrayForEach(t, tokens)
    {
        cJSON *k = cJSON_Duplicate(t, true);
        if (k == NULL || !cJSON_AddItemToArray(keys, k))
            break;
        const char *id = get_str(t, "id", NULL);
        if (id == NULL || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "present"))) {
            cJSON_AddNullToObject(k, "certificates");
            cJSON_AddNullToObject(k, "error");
            continue;
        }
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "token", id);
        if (with_der)
            cJSON_AddTrueToObject(params, "der");
        uk_jsonrpc_msg *cl = ukctl_round_trip(fd, "cert.list", params);
        const cJSON *certs = cJSON_GetObjectItemCaseSensitive(ukctl_result(cl), "certificates");
        if (cJSON_IsArray(certs)) {
            cJSON_AddItemToObject(k, "certificates", cJSON_Duplicate(certs, true));
            cJSON_AddNullToObject(k, "error");
        } else {
            cJSON_AddNullToObject(k, "certificates");
            cJSON_AddStringToObject(k, "error",
                                    cl == NULL
                                        ? "DAEMON_UNAVAILABLE"
                                        : (ukctl_reason(cl) ? ukctl_reason(cl) : "INTERNAL"));
        }
        uk_jsonrpc_msg_free(cl);
    }
    uk_jsonrpc_msg_free(tl);
    return keys;
}

/* Renewals not finished (prepared or written), from renewal.list; an empty array when the method
 * fails. */
static cJSON *collect_renewals(int fd, bool only_open)
{
    cJSON *out = cJSON_CreateArray();
    uk_jsonrpc_msg *m = ukctl_round_trip(fd, "renewal.list", NULL);
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(ukctl_result(m), "renewals"))
    {
        const char *st = get_str(r, "state", "");
        if (!only_open || strcmp(st, "prepared") == 0 || strcmp(st, "written") == 0)
            cJSON_AddItemToArray(out, cJSON_Duplicate(r, true));
    }
    uk_jsonrpc_msg_free(m);
    return out;
}

static const char *service_text(const char *reason)
{
    if (strcmp(reason, "NO_SERVICE") == 0)
        return "the smart card service (pcscd) is not running";
    return reason;
}

/* One certificate as two or three lines under its key. */
static void print_cert_lines(const cJSON *c, bool detail)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(c, "error");
    fputs("  ", stdout);
    put_col(get_str(c, "key", "?"), 4);
    if (err != NULL) {
        fputs("cannot be read: ", stdout);
        put_safe(get_str(err, "reason", "?"));
        putchar('\n');
        return;
    }
    put_safe(get_str(c, "subject", "?"));
    putchar('\n');
    char from[32], to[32];
    ukctl_local_date(get_str(c, "not_before", "?"), from, sizeof from);
    ukctl_local_date(get_str(c, "not_after", "?"), to, sizeof to);
    const char *status = get_str(c, "status", "?");
    const cJSON *days = cJSON_GetObjectItemCaseSensitive(c, "days_left");
    long long d = cJSON_IsNumber(days) ? (long long)days->valuedouble : 0;
    printf("      valid from %s to %s, ", from, to);
    if (strcmp(status, "expired") == 0)
        printf("expired %lld day%s ago", -d, -d == 1 ? "" : "s");
    else if (strcmp(status, "not_yet_valid") == 0)
        printf("not valid yet (valid in %lld day%s)",
               (long long)cJSON_GetNumberValue(
                   cJSON_GetObjectItemCaseSensitive(c, "days_until_valid")),
               cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "days_until_valid")) == 1
                   ? ""
                   : "s");
    else
        printf("%lld day%s left", d, d == 1 ? "" : "s");
    printf(" (%s)\n", status);
    if (!detail)
        return;
    printf("      issuer:      ");
    put_safe(get_str(c, "issuer", "?"));
    printf("\n      serial:      ");
    put_safe(get_str(c, "serial", "?"));
    const cJSON *bits = cJSON_GetObjectItemCaseSensitive(c, "key_size");
    printf("\n      key:         %s", get_str(c, "key_algorithm", "?"));
    if (cJSON_IsNumber(bits))
        printf(" %d", bits->valueint);
    const char *curve = get_str(c, "curve", NULL);
    if (curve != NULL)
        printf(" %s", curve);
    printf("\n      signature:   %s\n      sha256:      %s\n",
           get_str(c, "signature_algorithm", "?"), get_str(c, "fingerprint_sha256", "?"));
}

static void print_renewal_line(const cJSON *r)
{
    fputs("  ", stdout);
    put_col(get_str(r, "renewal_id", "?"), 34);
    put_col(get_str(r, "token", "?"), 16);
    put_col(get_str(r, "slot", "?"), 5);
    put_col(get_str(r, "mode", "?"), 8);
    put_col(get_str(r, "state", "?"), 10);
    char when[40];
    format_date(get_str(r, "updated", "-"), when, sizeof when);
    put_safe(when);
    const char *from = get_str(r, "valid_from", NULL);
    if (from != NULL) {
        fputs("  valid from ", stdout);
        put_safe(from);
    }
    putchar('\n');
}

static int cmd_status(int fd, const char *socket_path, bool json)
{
    uk_jsonrpc_msg *hello = NULL;
    int rc = call_for_result(fd, "system.hello", NULL, "ukeyd did not answer", &hello);
    if (rc != 0)
        return rc;
    const cJSON *h = uk_jsonrpc_msg_get0_result(hello);
    char service[64];
    cJSON *keys = collect_keys(fd, false, service, sizeof service);
    cJSON *renewals = collect_renewals(fd, true);
    if (keys == NULL) {
        fprintf(stderr, "ukeyctl: no answer from ukeyd\n");
        rc = 3;
        goto out;
    }
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(h, "version");
    const cJSON *port = cJSON_GetObjectItemCaseSensitive(h, "wss_port");
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "running");
        cJSON_AddStringToObject(o, "version", cJSON_IsString(version) ? version->valuestring : "");
        cJSON_AddStringToObject(o, "socket", socket_path);
        if (cJSON_IsNumber(port))
            cJSON_AddNumberToObject(o, "wss_port", port->valuedouble);
        else
            cJSON_AddNullToObject(o, "wss_port");
        if (service[0] != '\0')
            cJSON_AddStringToObject(o, "service_error", service);
        else
            cJSON_AddNullToObject(o, "service_error");
        cJSON_AddItemToObject(o, "keys", keys);
        cJSON_AddItemToObject(o, "renewals", renewals);
        keys = renewals = NULL;
        print_json(o);
        cJSON_Delete(o);
        goto out;
    }
    printf("ukeyd %s is running\n", cJSON_IsString(version) ? version->valuestring : "?");
    printf("  local socket: %s\n", socket_path);
    if (cJSON_IsNumber(port))
        printf("  web pages:    wss://127.0.0.1:%d\n", port->valueint);
    else
        printf("  web pages:    WSS is off\n");
    putchar('\n');
    if (service[0] != '\0') {
        printf("Keys: %s\n", service_text(service));
    } else {
        size_t present = 0;
        const cJSON *k;
        cJSON_ArrayForEach(k, keys)
        {
            if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(k, "present")) ||
                get_str(k, "id", NULL) == NULL) {
                fputs("Reader ", stdout);
                put_safe(get_str(k, "reader", "?"));
                puts(": no key");
                continue;
            }
            present++;
            fputs("Key ", stdout);
            put_safe(get_str(k, "label", get_str(k, "id", "?")));
            fputs(" (", stdout);
            put_safe(get_str(k, "id", "?"));
            fputs(") in ", stdout);
            put_safe(get_str(k, "reader", "?"));
            putchar('\n');
            const char *err = get_str(k, "error", NULL);
            const cJSON *certs = cJSON_GetObjectItemCaseSensitive(k, "certificates");
            if (err != NULL)
                printf("  certificates cannot be read: %s\n", err);
            else if (cJSON_GetArraySize(certs) == 0)
                puts("  no certificate");
            const cJSON *c;
            cJSON_ArrayForEach(c, certs)
            {
                print_cert_lines(c, false);
            }
        }
        if (present == 0)
            puts("No key inserted.");
    }
    if (cJSON_GetArraySize(renewals) == 0) {
        puts("Renewals in progress: none");
    } else {
        puts("Renewals in progress:");
        const cJSON *r;
        cJSON_ArrayForEach(r, renewals)
        {
            print_renewal_line(r);
        }
    }
out:
    cJSON_Delete(keys);
    cJSON_Delete(renewals);
    uk_jsonrpc_msg_free(hello);
    return rc;
}

/* The certificate of a cert.list entry (der, base64) as PEM on stdout. */
static void print_pem(const cJSON *c)
{
    const char *b64 = get_str(c, "der", NULL);
    if (b64 == NULL)
        return;
    puts("-----BEGIN CERTIFICATE-----");
    for (size_t n = strlen(b64), i = 0; i < n; i += 64)
        printf("%.*s\n", (int)(n - i < 64 ? n - i : 64), b64 + i);
    puts("-----END CERTIFICATE-----");
}

static int cmd_certs(int fd, bool pem, bool json)
{
    char service[64];
    cJSON *keys = collect_keys(fd, pem || json, service, sizeof service);
    if (keys == NULL) {
        fprintf(stderr, "ukeyctl: no answer from ukeyd\n");
        return 3;
    }
    int rc = 0;
    if (service[0] != '\0') {
        fprintf(stderr, "ukeyctl: cannot list the keys: %s\n", service_text(service));
        rc = 1;
    } else if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "keys", keys);
        keys = NULL;
        print_json(o);
        cJSON_Delete(o);
    } else {
        size_t shown = 0;
        const cJSON *k;
        cJSON_ArrayForEach(k, keys)
        {
            const cJSON *certs = cJSON_GetObjectItemCaseSensitive(k, "certificates");
            const char *err = get_str(k, "error", NULL);
            if (err != NULL) {
                fprintf(stderr, "ukeyctl: %s: certificates cannot be read: %s\n",
                        get_str(k, "id", "?"), err);
                rc = 1;
            }
            if (!cJSON_IsArray(certs))
                continue;
            if (!pem) {
                fputs("Key ", stdout);
                put_safe(get_str(k, "label", get_str(k, "id", "?")));
                fputs(" (", stdout);
                put_safe(get_str(k, "id", "?"));
                puts(")");
            }
            const cJSON *c;
            cJSON_ArrayForEach(c, certs)
            {
                shown++;
                if (pem)
                    print_pem(c);
                else
                    print_cert_lines(c, true);
            }
        }
        if (shown == 0 && rc == 0) {
            fprintf(stderr, "ukeyctl: no certificate found (is the key inserted?)\n");
            rc = 1;
        }
    }
    cJSON_Delete(keys);
    return rc;
}

static int cmd_renewals(int fd, bool json)
{
    uk_jsonrpc_msg *msg = NULL;
    int rc = call_for_result(fd, "renewal.list", NULL, "cannot list renewals", &msg);
    if (rc != 0)
        return rc;
    const cJSON *r = uk_jsonrpc_msg_get0_result(msg);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(r, "renewals");
    if (json) {
        print_json(r);
    } else if (cJSON_GetArraySize(list) == 0) {
        puts("No certificate renewal.");
    } else {
        puts("  RENEWAL                           TOKEN           SLOT MODE    STATE     UPDATED");
        const cJSON *e;
        cJSON_ArrayForEach(e, list)
        {
            print_renewal_line(e);
        }
    }
    uk_jsonrpc_msg_free(msg);
    return rc;
}

/* The subcommand and its arguments, checked before connecting. */
struct command {
    enum {
        CMD_CALL,
        CMD_STATUS,
        CMD_CERTS,
        CMD_RENEWALS,
        CMD_ORIGINS_LIST,
        CMD_ORIGINS_REVOKE,
        CMD_AUDIT,
        CMD_DOCTOR
    } kind;
    const char *arg1, *arg2;
    bool json, pem, no_sign;
    const char *ca_bundle;
    long lines;
};

/* Options a subcommand accepts. */
enum { OPT_JSON = 1, OPT_N = 2, OPT_PEM = 4, OPT_DOCTOR = 8 };

/* Reads the options after the subcommand (argv[0] is the first of them). */
static bool parse_sub_options(int argc, char **argv, unsigned allowed, struct command *c)
{
    for (int i = 0; i < argc; i++) {
        if ((allowed & OPT_JSON) && strcmp(argv[i], "--json") == 0) {
            c->json = true;
        } else if ((allowed & OPT_PEM) && strcmp(argv[i], "--pem") == 0) {
            c->pem = true;
        } else if ((allowed & OPT_DOCTOR) && strcmp(argv[i], "--no-sign") == 0) {
            c->no_sign = true;
        } else if ((allowed & OPT_DOCTOR) && strcmp(argv[i], "--ca-bundle") == 0 && i + 1 < argc) {
            c->ca_bundle = argv[++i];
        } else if ((allowed & OPT_DOCTOR) && strncmp(argv[i], "--ca-bundle=", 12) == 0) {
            c->ca_bundle = argv[i] + 12;
        } else if ((allowed & OPT_N) && strncmp(argv[i], "-n", 2) == 0) {
            const char *v = argv[i][2] != '\0' ? argv[i] + 2 : (i + 1 < argc ? argv[++i] : NULL);
            char *end = NULL;
            long n = v != NULL ? strtol(v, &end, 10) : 0;
            if (v == NULL || end == v || *end != '\0' || n < 1 || n > AUDIT_MAX_LINES) {
                fprintf(stderr, "ukeyctl: -n takes a number from 1 to %d\n", AUDIT_MAX_LINES);
                return false;
            }
            c->lines = n;
        } else {
            return false;
        }
    }
    return !(c->pem && c->json);
}

static bool parse_command(int argc, char **argv, struct command *c)
{
    int n = argc;
    const char *cmd = argv[0];
    *c = (struct command){.lines = AUDIT_DEFAULT_LINES};
    if (strcmp(cmd, "call") == 0 && (n == 2 || n == 3)) {
        *c = (struct command){.kind = CMD_CALL, .arg1 = argv[1], .arg2 = n == 3 ? argv[2] : NULL};
        return true;
    }
    if (strcmp(cmd, "status") == 0) {
        c->kind = CMD_STATUS;
        return parse_sub_options(n - 1, argv + 1, OPT_JSON, c);
    }
    if (strcmp(cmd, "certs") == 0) {
        c->kind = CMD_CERTS;
        return parse_sub_options(n - 1, argv + 1, OPT_JSON | OPT_PEM, c);
    }
    if (strcmp(cmd, "renewals") == 0) {
        c->kind = CMD_RENEWALS;
        return parse_sub_options(n - 1, argv + 1, OPT_JSON, c);
    }
    if (strcmp(cmd, "doctor") == 0) {
        c->kind = CMD_DOCTOR;
        return parse_sub_options(n - 1, argv + 1, OPT_JSON | OPT_DOCTOR, c);
    }
    if (strcmp(cmd, "origins") == 0 && n >= 2 && strcmp(argv[1], "list") == 0) {
        c->kind = CMD_ORIGINS_LIST;
        return parse_sub_options(n - 2, argv + 2, OPT_JSON, c);
    }
    if (strcmp(cmd, "origins") == 0 && n == 3 && strcmp(argv[1], "revoke") == 0) {
        c->kind = CMD_ORIGINS_REVOKE;
        c->arg1 = argv[2];
        return true;
    }
    if (strcmp(cmd, "audit") == 0) {
        c->kind = CMD_AUDIT;
        return parse_sub_options(n - 1, argv + 1, OPT_JSON | OPT_N, c);
    }
    return false;
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
    struct command cmd;
    if (!parse_command(argc - optind, argv + optind, &cmd)) {
        usage(stderr);
        return 2;
    }
    uk_config *cfg = NULL;
    if (socket_path == NULL || cmd.kind == CMD_DOCTOR) {
        /* The system file may move the socket too, as it does for the daemon. Doctor reads
         * the ports from it even with --socket (when it can). */
        if (uk_config_load_layered(NULL, config_path, &cfg) != UK_OK) {
            if (socket_path == NULL) {
                fprintf(stderr, "ukeyctl: cannot read the configuration\n");
                return 2;
            }
            cfg = NULL;
        }
        if (socket_path == NULL)
            socket_path = cfg->socket_path;
    }
    if (cmd.kind == CMD_DOCTOR) {
        ukctl_doctor_opts o = {.socket_path = socket_path,
                               .cfg = cfg,
                               .ca_bundle = cmd.ca_bundle,
                               .sign = !cmd.no_sign,
                               .json = cmd.json};
        int rc = ukctl_doctor(&o);
        uk_config_free(cfg);
        return rc;
    }
    int rc;
    int fd = uk_frame_connect(socket_path);
    if (fd < 0) {
        fprintf(stderr, "ukeyctl: ukeyd is not running (no answer on %s)\n", socket_path);
        rc = 3;
    } else {
        switch (cmd.kind) {
        case CMD_CALL:
            rc = cmd_call(fd, cmd.arg1, cmd.arg2);
            break;
        case CMD_STATUS:
            rc = cmd_status(fd, socket_path, cmd.json);
            break;
        case CMD_CERTS:
            rc = cmd_certs(fd, cmd.pem, cmd.json);
            break;
        case CMD_RENEWALS:
            rc = cmd_renewals(fd, cmd.json);
            break;
        case CMD_ORIGINS_LIST:
            rc = cmd_origins_list(fd, cmd.json);
            break;
        case CMD_ORIGINS_REVOKE:
            rc = cmd_origins_revoke(fd, cmd.arg1);
            break;
        case CMD_AUDIT:
        default:
            rc = cmd_audit(fd, cmd.lines, cmd.json);
            break;
        }
    }
    if (fd >= 0)
        close(fd);
    uk_config_free(cfg);
    return rc;
}
