/*
 * ukeyctl_doctor.c - `ukeyctl doctor`: the checks of docs/doctor.md, each OK, WARN, FAIL (or SKIP
 * with the reason) with a fix in plain words, in Chinese when the locale is Chinese, else in
 * English. The exit status is the worst result: 0 OK, 1 WARN, 2 FAIL (SKIP counts as OK).
 *
 * Everything about the key goes through ukeyd's socket (as for the tray); the rest is read from
 * this computer: /proc (ports, programs talking to pcscd), the NSS database (certutil), the
 * browsers' native-messaging folders, snap and flatpak.
 */
#include "ukeyctl.h"

#include "uk_base64.h"
#include "uk_err.h"
#include "uk_frame.h"
#include "uk_log.h"
#include "uk_x509.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define T(en, zh) ukctl_tr(en, zh)

#define MAX_CHECKS 64
#define MAX_PROCS  16
/* Output kept from a helper program (certutil, snap, flatpak); they print far less. */
#define CAPTURE_MAX (256 * 1024)
/* How long a helper program may run. */
#define HELPER_TIMEOUT_MS 10000

typedef enum { ST_OK = 0, ST_SKIP, ST_WARN, ST_FAIL } status;

static const char *const STATUS_NAME[] = {"OK", "SKIP", "WARN", "FAIL"};
static const char *const STATUS_TAG[] = {"[ OK ]", "[SKIP]", "[WARN]", "[FAIL]"};

struct check {
    const char *id;
    status st;
    char text[1024];
    char fix[1024];
};

static struct check checks[MAX_CHECKS];
static size_t n_checks;

static void add(const char *id, status st, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add(const char *id, status st, const char *fix, const char *fmt, ...)
{
    if (n_checks == MAX_CHECKS)
        return;
    struct check *c = &checks[n_checks++];
    c->id = id;
    c->st = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->text, sizeof c->text, fmt, ap);
    va_end(ap);
    snprintf(c->fix, sizeof c->fix, "%s", fix != NULL ? fix : "");
}

static const char *get_str(const cJSON *o, const char *key, const char *absent)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : absent;
}

/* The daemon's user message for an error response, in our language. */
static const char *error_message(const uk_jsonrpc_msg *m)
{
    const cJSON *err = m != NULL ? uk_jsonrpc_msg_get0_error(m) : NULL;
    const cJSON *msg =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(err, "data"), "message");
    const char *en = get_str(msg, "en", get_str(err, "message", "error"));
    return T(en, get_str(msg, "zh-CN", en));
}

/* Processes as "name (pid N), ..." into buf. */
static void proc_list(const ukctl_proc *p, size_t n, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%s (pid %ld%s%s)", i ? ", " : "", p[i].comm,
                 (long)p[i].pid, p[i].exe[0] ? ", " : "", p[i].exe);
    }
}

/* ---- helper programs ---- */

/* An executable named name in PATH, into buf; false when none. */
static bool find_in_path(const char *name, char *buf, size_t size)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/bin:/bin";
    while (*path != '\0') {
        size_t n = strcspn(path, ":");
        if (n > 0 && snprintf(buf, size, "%.*s/%s", (int)n, path, name) < (int)size &&
            access(buf, X_OK) == 0)
            return true;
        path += n + (path[n] == ':');
    }
    return false;
}

/* Runs argv (no shell) with stdin from /dev/null and stderr dropped; stdout into a new string
 * *out. Returns the exit status, or -1 when it could not run or took too long (killed). */
static int run_capture(char *const argv[], char **out)
{
    *out = NULL;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0 || dup2(null, 0) < 0 || dup2(p[1], 1) < 0 || dup2(null, 2) < 0)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    char *buf = malloc(CAPTURE_MAX + 1);
    size_t n = 0;
    bool timed_out = false;
    for (;;) {
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int r = poll(&pfd, 1, HELPER_TIMEOUT_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            timed_out = true;
            break;
        }
        char chunk[4096];
        ssize_t got = read(p[0], chunk, sizeof chunk);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        size_t take = buf != NULL && n + (size_t)got <= CAPTURE_MAX ? (size_t)got : 0;
        if (take > 0)
            memcpy(buf + n, chunk, take);
        n += take;
    }
    close(p[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int wst = 0;
    while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
        ;
    if (buf == NULL)
        return -1;
    buf[n] = '\0';
    *out = buf;
    if (timed_out || !WIFEXITED(wst))
        return -1;
    return WEXITSTATUS(wst);
}

/* ---- what the daemon told us ---- */

struct ctx {
    const ukctl_doctor_opts *o;
    int fd;
    pid_t ukeyd_pid;
    cJSON *hello;          /* system.hello result, or NULL */
    bool busy;             /* CARD_BUSY seen */
    char busy_reader[256]; /* the reader it named */
    char log_line[512];    /* the last line uk_x509 logged (why a chain failed) */
};

static void log_sink(void *arg, uk_log_level level, const char *line, size_t len)
{
    struct ctx *c = arg;
    (void)level;
    snprintf(c->log_line, sizeof c->log_line, "%.*s", (int)len, line);
}

/* Calls a method; the response (NULL when ukeyd did not answer). */
static uk_jsonrpc_msg *call(struct ctx *c, const char *method, cJSON *params)
{
    return c->fd >= 0 ? ukctl_round_trip(c->fd, method, params) : NULL;
}

static void note_busy(struct ctx *c, const uk_jsonrpc_msg *m)
{
    const char *reason = ukctl_reason(m);
    if (reason == NULL || strcmp(reason, "CARD_BUSY") != 0)
        return;
    c->busy = true;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(uk_jsonrpc_msg_get0_error(m), "data");
    snprintf(c->busy_reader, sizeof c->busy_reader, "%s", get_str(data, "reader", ""));
}

/* ---- the key, its certificates, the chain, a signature ---- */

static void check_certificate(const cJSON *cert, const char *label)
{
    const char *slot = get_str(cert, "key", "?");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(cert, "error");
    if (err != NULL) {
        add("certificate", ST_FAIL,
            T("The certificate on the key is damaged. Ask your certificate authority to repair it "
              "(the portal's \"Repair\").",
              "USB Key 上的证书已损坏。请在门户网站上选择“修复”，或联系证书颁发机构。"),
            T("Certificate %s on %s cannot be read (%s)",
              "%2$s 上 %1$s 位置的证书无法读取（%3$s）"),
            slot, label, get_str(err, "reason", "?"));
        return;
    }
    char from[32], to[32];
    ukctl_local_date(get_str(cert, "not_before", "?"), from, sizeof from);
    ukctl_local_date(get_str(cert, "not_after", "?"), to, sizeof to);
    const char *st = get_str(cert, "status", "?");
    const char *subject = get_str(cert, "subject", "?");
    long long days =
        (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(cert, "days_left"));
    if (strcmp(st, "valid") == 0) {
        add("certificate", ST_OK, NULL,
            T("Certificate %s (%s) on %s is valid until %s (%lld days left)",
              "%3$s 上的证书 %1$s（%2$s）有效期至 %4$s（还剩 %5$lld 天）"),
            slot, subject, label, to, days);
    } else if (strcmp(st, "expiring") == 0) {
        add("certificate", ST_WARN,
            T("Renew it now: on the portal open \"My certificates\" and choose \"Extend\".",
              "请尽快续期：在门户网站打开“我的证书”，选择“延期”。"),
            T("Certificate %s (%s) on %s expires on %s (%lld days left)",
              "%3$s 上的证书 %1$s（%2$s）将于 %4$s 到期（还剩 %5$lld 天）"),
            slot, subject, label, to, days);
    } else if (strcmp(st, "expired") == 0) {
        add("certificate", ST_FAIL,
            T("Repair it: on the portal find the certificate by its card number and choose "
              "\"Repair\".",
              "请修复证书：在门户网站按卡号找到该证书，选择“修复”。"),
            T("Certificate %s (%s) on %s expired on %s",
              "%3$s 上的证书 %1$s（%2$s）已于 %4$s 过期"),
            slot, subject, label, to);
    } else if (strcmp(st, "not_yet_valid") == 0) {
        add("certificate", ST_WARN,
            T("Nothing to do: a renewed certificate starts on its start date (usually within "
              "one working day). Sign again after that date.",
              "无需操作：续期后的证书从生效日期起才能使用（通常一个工作日内）。请在该日期之后再签名"
              "。"),
            T("Certificate %s (%s) on %s is not valid yet: valid from %s",
              "%3$s 上的证书 %1$s（%2$s）尚未生效：生效日期 %4$s"),
            slot, subject, label, from);
    } else {
        add("certificate", ST_WARN, NULL,
            T("Certificate %s on %s: status %s", "%2$s 上的证书 %1$s：状态 %3$s"), slot, label, st);
    }
}

static void check_chain(struct ctx *c, const cJSON *cert, const char *label)
{
    const char *slot = get_str(cert, "key", "?");
    const char *b64 = get_str(cert, "der", NULL);
    uint8_t *der = NULL;
    size_t len = 0;
    if (b64 == NULL || uk_base64_decode(b64, strlen(b64), &der, &len) != UK_OK) {
        add("chain", ST_FAIL, NULL,
            T("Certificate %s on %s: no data to check", "%2$s 上的证书 %1$s：没有可检查的数据"),
            slot, label);
        return;
    }
    c->log_line[0] = '\0';
    int rc = uk_x509_verify_chain(der, len, NULL, NULL, 0, c->o->ca_bundle, time(NULL));
    free(der);
    if (rc == UK_OK)
        add("chain", ST_OK, NULL,
            T("Certificate %s on %s was issued by a CA in %s",
              "%2$s 上的证书 %1$s 由 %3$s 中的 CA 签发"),
            slot, label, c->o->ca_bundle);
    else if (rc == UK_E_CONFIG_INVALID)
        add("chain", ST_FAIL,
            T("Check the file name given with --ca-bundle.", "请检查 --ca-bundle 指定的文件名。"),
            T("The CA bundle %s cannot be read", "无法读取 CA 证书文件 %s"), c->o->ca_bundle);
    else
        add("chain", ST_FAIL,
            T("This certificate was not issued by the expected CA (or it or the CA has expired). "
              "Ask your certificate authority; the portal's \"Repair\" writes a new one.",
              "此证书不是由预期的 CA 签发的（或证书、CA "
              "已过期）。请联系证书颁发机构；门户网站的“修复”会写入新证书。"),
            T("Certificate %s on %s does not chain to %s%s%s",
              "%2$s 上的证书 %1$s 无法验证到 %3$s%4$s%5$s"),
            slot, label, c->o->ca_bundle, c->log_line[0] ? ": " : "", c->log_line);
}

/* The algorithm for a test signature with the certificate's key, or NULL. */
static const char *sign_alg(const cJSON *cert, uk_x509_sig_alg *alg)
{
    const char *k = get_str(cert, "key_algorithm", "");
    const char *curve = get_str(cert, "curve", "");
    if (strcmp(k, "RSA") == 0) {
        *alg = UK_X509_SIG_RSA_PKCS1_SHA256;
        return "RSA-PKCS1-SHA256";
    }
    if (strcmp(k, "EC") == 0 && strcmp(curve, "P-384") == 0) {
        *alg = UK_X509_SIG_ECDSA_SHA384;
        return "ECDSA-SHA384";
    }
    if (strcmp(k, "EC") == 0) {
        *alg = UK_X509_SIG_ECDSA_SHA256;
        return "ECDSA-SHA256";
    }
    return NULL;
}

static void check_signature(struct ctx *c, const char *token, const char *label, const cJSON *cert)
{
    const char *slot = get_str(cert, "key", "?");
    uk_x509_sig_alg alg;
    const char *alg_name = sign_alg(cert, &alg);
    if (alg_name == NULL) {
        add("signature", ST_SKIP, NULL,
            T("Test signature skipped: the key type %s of certificate %s is not supported here",
              "跳过测试签名：此处不支持证书 %2$s 的密钥类型 %1$s"),
            get_str(cert, "key_algorithm", "?"), slot);
        return;
    }
    /* The data: a fixed text and the time, so that it is never anything a portal would send. */
    char data[128];
    int dlen =
        snprintf(data, sizeof data, "ukeyctl doctor test signature %lld", (long long)time(NULL));
    char *b64 = NULL;
    size_t b64_len = 0;
    uint8_t *der = NULL, *sig = NULL;
    size_t der_len = 0, sig_len = 0;
    uk_cert_info *info = NULL;
    uk_jsonrpc_msg *m = NULL;
    if (uk_base64_encode((const uint8_t *)data, (size_t)dlen, &b64, &b64_len) != UK_OK)
        goto out;
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "token", token);
    cJSON_AddStringToObject(params, "key", slot);
    cJSON_AddStringToObject(params, "algorithm", alg_name);
    cJSON_AddStringToObject(params, "data", b64);
    m = call(c, "sign", params);
    if (m == NULL) {
        add("signature", ST_FAIL, NULL,
            T("ukeyd did not answer the test signature", "ukeyd 未响应测试签名"));
        goto out;
    }
    if (ukctl_result(m) == NULL) {
        note_busy(c, m);
        const char *reason = ukctl_reason(m) ? ukctl_reason(m) : "?";
        bool declined =
            strcmp(reason, "CONSENT_DENIED") == 0 || strcmp(reason, "PROMPT_UNAVAILABLE") == 0;
        add("signature", declined ? ST_WARN : ST_FAIL,
            declined
                ? T("Run the check again and enter the PIN in ukeyd's window, or use --no-sign.",
                    "请重新运行检查并在 ukeyd 的窗口中输入 PIN 码，或使用 --no-sign 跳过。")
                : error_message(m),
            T("Test signature with %s on %s not made: %s",
              "未能用 %2$s 上的 %1$s 完成测试签名：%3$s"),
            slot, label, reason);
        goto out;
    }
    const char *sig_b64 = get_str(ukctl_result(m), "signature", "");
    const char *cert_b64 = get_str(cert, "der", "");
    if (uk_base64_decode(sig_b64, strlen(sig_b64), &sig, &sig_len) != UK_OK ||
        uk_base64_decode(cert_b64, strlen(cert_b64), &der, &der_len) != UK_OK ||
        uk_x509_parse(der, der_len, &info) != UK_OK) {
        add("signature", ST_FAIL, NULL,
            T("The test signature could not be read", "无法读取测试签名"));
        goto out;
    }
    if (uk_x509_verify_signature(info, (const uint8_t *)data, (size_t)dlen, sig, sig_len, alg) ==
        UK_OK)
        add("signature", ST_OK, NULL,
            T("Test signature with %s on %s verified against its certificate (%s)",
              "%2$s 上 %1$s 的测试签名已通过证书验证（%3$s）"),
            slot, label, alg_name);
    else
        add("signature", ST_FAIL,
            T("The key and the certificate on it do not belong together. Use the portal's "
              "\"Repair\" to write a matching pair.",
              "USB Key 上的密钥与证书不匹配。请使用门户网站的“修复”写入匹配的证书。"),
            T("Test signature with %s on %s does NOT verify against its certificate",
              "%2$s 上 %1$s 的测试签名无法通过证书验证"),
            slot, label);
out:
    uk_jsonrpc_msg_free(m);
    uk_cert_info_free(info);
    free(b64);
    free(der);
    free(sig);
}

/* The certificate to sign with: 9a when there is one, else the first readable one. */
static const cJSON *signing_cert(const cJSON *certs)
{
    const cJSON *e, *first = NULL;
    cJSON_ArrayForEach(e, certs)
    {
        if (cJSON_GetObjectItemCaseSensitive(e, "error") != NULL)
            continue;
        if (strcmp(get_str(e, "key", ""), "9a") == 0)
            return e;
        if (first == NULL)
            first = e;
    }
    return first;
}

static void check_keys(struct ctx *c)
{
    uk_jsonrpc_msg *tl = call(c, "token.list", NULL);
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(ukctl_result(tl), "tokens");
    const char *why = ukctl_reason(tl);
    if (tl == NULL || (why != NULL && strcmp(why, "NO_SERVICE") != 0)) {
        add("pcscd", ST_FAIL, NULL,
            T("ukeyd could not list the readers: %s", "ukeyd 无法列出读卡器：%s"),
            why ? why : "no answer");
        uk_jsonrpc_msg_free(tl);
        return;
    }
    if (why != NULL) {
        add("pcscd", ST_FAIL,
            T("Start the smart card service: sudo systemctl enable --now pcscd.socket (or restart "
              "the computer).",
              "请启动智能卡服务：sudo systemctl enable --now pcscd.socket（或重启电脑）。"),
            T("The smart card service (pcscd) is not reachable", "无法连接智能卡服务（pcscd）"));
        add("readers", ST_SKIP, NULL,
            T("Readers not checked: pcscd is not running", "未检查读卡器：pcscd 未运行"));
        add("key", ST_SKIP, NULL,
            T("Key not checked: pcscd is not running", "未检查 USB Key：pcscd 未运行"));
        uk_jsonrpc_msg_free(tl);
        return;
    }
    add("pcscd", ST_OK, NULL,
        T("The smart card service (pcscd) is running", "智能卡服务（pcscd）正在运行"));
    size_t readers = (size_t)cJSON_GetArraySize(tokens);
    if (readers == 0) {
        add("readers", ST_FAIL,
            T("Plug in your USB key (it is its own reader). If it is plugged in, try another USB "
              "port; if that does not help, its driver may be missing.",
              "请插入 USB Key（它本身就是读卡器）。如果已插入，请换一个 USB "
              "接口；仍不行可能是缺少驱动。"),
            T("No card reader found", "未找到读卡器"));
        add("key", ST_SKIP, NULL, T("Key not checked: no reader", "未检查 USB Key：没有读卡器"));
        uk_jsonrpc_msg_free(tl);
        return;
    }
    char names[1024] = "";
    const cJSON *t;
    cJSON_ArrayForEach(t, tokens)
    {
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", get_str(t, "reader", "?"));
    }
    add("readers", ST_OK, NULL, T("%zu reader(s): %s", "%zu 个读卡器：%s"), readers, names);
    size_t present = 0;
    cJSON_ArrayForEach(t, tokens)
    {
        const char *id = get_str(t, "id", NULL);
        if (id == NULL || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "present")))
            continue;
        present++;
        const char *label = get_str(t, "label", id);
        add("key", ST_OK, NULL, T("Key %s found in %s", "在 %2$s 中找到 USB Key %1$s"), label,
            get_str(t, "reader", "?"));
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "token", id);
        cJSON_AddTrueToObject(params, "der");
        uk_jsonrpc_msg *cl = call(c, "cert.list", params);
        const cJSON *certs = cJSON_GetObjectItemCaseSensitive(ukctl_result(cl), "certificates");
        if (!cJSON_IsArray(certs)) {
            note_busy(c, cl);
            add("certificate", ST_FAIL, error_message(cl),
                T("The certificates on %s cannot be read: %s", "无法读取 %s 上的证书：%s"), label,
                ukctl_reason(cl) ? ukctl_reason(cl) : "no answer");
            if (c->o->ca_bundle != NULL)
                add("chain", ST_SKIP, NULL,
                    T("Chain not checked: no certificate read", "未检查证书链：未读到证书"));
            add("signature", ST_SKIP, NULL,
                T("Test signature skipped: no certificate read", "跳过测试签名：未读到证书"));
            uk_jsonrpc_msg_free(cl);
            continue;
        }
        if (cJSON_GetArraySize(certs) == 0)
            add("certificate", ST_FAIL,
                T("The key holds no certificate. Use the portal's \"Repair\" to write one.",
                  "USB Key 上没有证书。请使用门户网站的“修复”写入证书。"),
                T("No certificate on %s", "%s 上没有证书"), label);
        const cJSON *e;
        cJSON_ArrayForEach(e, certs)
        {
            check_certificate(e, label);
        }
        if (c->o->ca_bundle == NULL)
            add("chain", ST_SKIP, NULL,
                T("Chain not checked: no CA bundle given (--ca-bundle FILE)",
                  "未检查证书链：未指定 CA 证书文件（--ca-bundle FILE）"));
        else
            cJSON_ArrayForEach(e, certs)
            {
                if (cJSON_GetObjectItemCaseSensitive(e, "error") == NULL)
                    check_chain(c, e, label);
            }
        const cJSON *sc = signing_cert(certs);
        if (!c->o->sign)
            add("signature", ST_SKIP, NULL,
                T("Test signature skipped (--no-sign)", "已跳过测试签名（--no-sign）"));
        else if (sc == NULL)
            add("signature", ST_SKIP, NULL,
                T("Test signature skipped: no certificate", "跳过测试签名：没有证书"));
        else
            check_signature(c, id, label, sc);
        uk_jsonrpc_msg_free(cl);
    }
    if (present == 0)
        add("key", ST_FAIL,
            T("Insert your USB key. If it is inserted, pull it out and plug it in again.",
              "请插入 USB Key。如果已插入，请拔出后重新插入。"),
            T("No USB key in the readers", "读卡器中没有 USB Key"));
    uk_jsonrpc_msg_free(tl);
}

static void check_exclusive(struct ctx *c)
{
    const char *sock = getenv("PCSCLITE_CSOCK_NAME");
    if (sock == NULL || sock[0] == '\0')
        sock = "/run/pcscd/pcscd.comm";
    ukctl_proc procs[MAX_PROCS];
    int n = ukctl_pcsc_clients(sock, c->ukeyd_pid, procs, MAX_PROCS);
    char list[2048] = "";
    if (n > 0)
        proc_list(procs, (size_t)n < MAX_PROCS ? (size_t)n : MAX_PROCS, list, sizeof list);
    if (!c->busy) {
        if (n > 0)
            add("exclusive", ST_OK, NULL,
                T("No program holds the key exclusively (also using the smart card service: %s)",
                  "没有程序独占 USB Key（同时使用智能卡服务的程序：%s）"),
                list);
        else
            add("exclusive", ST_OK, NULL,
                T("No program holds the key exclusively", "没有程序独占 USB Key"));
        return;
    }
    char fix[1024];
    if (n > 0)
        snprintf(fix, sizeof fix,
                 T("Quit the other program (for a vendor's tray tool: right-click its icon, Exit), "
                   "then try again. Programs connected to the smart card service: %s.",
                   "请退出占用 USB Key "
                   "的其他程序（厂商托盘工具：右键点击图标，选择退出），然后重试。连接智能卡服务的"
                   "程序：%s。"),
                 list);
    else
        snprintf(fix, sizeof fix, "%s",
                 T("Quit the other certificate tools (other provinces' or vendors' tray tools), "
                   "then try again. The program could not be named from here (it may run as "
                   "another user).",
                   "请退出其他证书工具（其他省份或厂商的托盘程序），然后重试。此处无法确定是哪个程"
                   "序（它可能以其他用户身份运行）。"));
    add("exclusive", ST_FAIL, fix,
        T("Another program holds the key in %s exclusively", "另一个程序独占了 %s 中的 USB Key"),
        c->busy_reader[0] ? c->busy_reader : "?");
}

/* ---- this computer ---- */

static void check_wss_port(struct ctx *c)
{
    const uk_config *cfg = c->o->cfg;
    if (cfg == NULL) {
        add("wss_port", ST_SKIP, NULL,
            T("Port not checked: the configuration could not be read", "未检查端口：无法读取配置"));
        return;
    }
    if (cfg->n_wss_ports == 0) {
        add("wss_port", ST_OK, NULL, T("WSS is off in the configuration", "配置中已关闭 WSS"));
        return;
    }
    unsigned want = cfg->wss_ports[0];
    const cJSON *hp = cJSON_GetObjectItemCaseSensitive(c->hello, "wss_port");
    int in_use = cJSON_IsNumber(hp) ? hp->valueint : -1;
    if (c->hello != NULL && in_use == (int)want) {
        add("wss_port", ST_OK, NULL, T("ukeyd listens on its port %u", "ukeyd 正在监听其端口 %u"),
            want);
        return;
    }
    ukctl_proc procs[MAX_PROCS];
    size_t n = 0;
    int found = ukctl_tcp_listeners((uint16_t)want, procs, MAX_PROCS, &n);
    char who[2048];
    proc_list(procs, n, who, sizeof who);
    if (n == 0)
        snprintf(who, sizeof who, "%s",
                 found > 0 ? T("a program of another user", "另一个用户的程序")
                           : T("nobody now", "目前无人"));
    char fix[1024];
    snprintf(fix, sizeof fix,
             T("Quit %s if you do not need it. ukeyd uses the next port of wss_fallback_ports "
               "meanwhile; pages find it through the extension.",
               "如不需要，请退出 %s。在此期间 ukeyd 使用 wss_fallback_ports "
               "中的下一个端口，网页通过扩展找到它。"),
             who);
    if (c->hello == NULL) {
        if (found > 0)
            add("wss_port", ST_WARN, fix, T("Port %u is taken by %s", "端口 %u 已被 %s 占用"), want,
                who);
        else
            add("wss_port", ST_OK, NULL, T("Port %u is free", "端口 %u 空闲"), want);
    } else if (in_use > 0) {
        add("wss_port", ST_WARN, fix,
            T("Port %u is taken by %s; ukeyd uses port %d instead",
              "端口 %u 已被 %s 占用；ukeyd 改用端口 %d"),
            want, who, in_use);
    } else {
        add("wss_port", ST_FAIL, fix,
            T("Port %u is taken by %s and no fallback port was free: web pages cannot reach ukeyd "
              "over WSS",
              "端口 %u 已被 %s 占用，且没有空闲的备用端口：网页无法通过 WSS 连接 ukeyd"),
            want, who);
    }
}

/* Well-known local ports of other vendors' helpers. Sources and limits: docs/doctor.md. */
static const struct vendor_port {
    uint16_t port;
    const char *en, *zh;
} VENDOR_PORTS[] = {
    {61232, "China E-Port (中国电子口岸) UKey client", "中国电子口岸 UKey 客户端"},
    {21061, "a provincial platform's UKey driver", "某省级平台的 UKey 驱动"},
};

static void check_vendor_ports(void)
{
    size_t hits = 0;
    for (size_t i = 0; i < sizeof VENDOR_PORTS / sizeof VENDOR_PORTS[0]; i++) {
        const struct vendor_port *v = &VENDOR_PORTS[i];
        ukctl_proc procs[MAX_PROCS];
        size_t n = 0;
        if (ukctl_tcp_listeners(v->port, procs, MAX_PROCS, &n) <= 0)
            continue;
        hits++;
        char who[2048];
        proc_list(procs, n, who, sizeof who);
        if (n == 0)
            snprintf(who, sizeof who, "%s", T("a program of another user", "另一个用户的程序"));
        add("vendor_ports", ST_WARN,
            T("Another vendor's certificate helper is running. If the portal's key operations "
              "fail, quit it (its tray icon: Exit) and try again.",
              "另一厂商的证书助手正在运行。如果门户网站的 USB Key "
              "操作失败，请退出它（托盘图标：退出）后重试。"),
            T("Port %u (%s) is in use by %s", "端口 %u（%s）正被 %s 使用"), v->port,
            T(v->en, v->zh), who);
    }
    if (hits == 0)
        add("vendor_ports", ST_OK, NULL,
            T("No other vendor's helper listens on the known ports",
              "已知端口上没有其他厂商的助手程序"));
}

/* The NSS database Chrome uses: $HOME/.pki/nssdb, else $XDG_DATA_HOME/pki/nssdb. */
static bool find_nssdb(char *buf, size_t size)
{
    struct stat st;
    const char *home = getenv("HOME");
    if (home != NULL && home[0] == '/' && snprintf(buf, size, "%s/.pki/nssdb", home) < (int)size &&
        stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
        return true;
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg != NULL && xdg[0] == '/' && snprintf(buf, size, "%s/pki/nssdb", xdg) < (int)size &&
        stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
        return true;
    return false;
}

static void check_nss(struct ctx *c)
{
    if (c->o->cfg != NULL && c->o->cfg->n_wss_ports == 0) {
        add("nss", ST_SKIP, NULL,
            T("Local TLS CA not checked: WSS is off", "未检查本地 TLS CA：WSS 已关闭"));
        return;
    }
    char db[4096], certutil[4096];
    if (!find_nssdb(db, sizeof db)) {
        add("nss", ST_WARN,
            T("Start Chrome once (it creates its certificate store), then restart ukeyd: "
              "systemctl --user restart ukeyd.",
              "请先启动一次 Chrome（它会创建证书库），然后重启 ukeyd：systemctl --user restart "
              "ukeyd。"),
            T("No browser certificate store (NSS database) found",
              "未找到浏览器证书库（NSS 数据库）"));
        return;
    }
    if (!find_in_path("certutil", certutil, sizeof certutil)) {
        add("nss", ST_SKIP, NULL,
            T("Local TLS CA not checked: certutil is not installed (package libnss3-tools)",
              "未检查本地 TLS CA：未安装 certutil（软件包 libnss3-tools）"));
        return;
    }
    char dbarg[4200];
    snprintf(dbarg, sizeof dbarg, "sql:%s", db);
    char opt_l[] = "-L", opt_d[] = "-d";
    char *argv[] = {certutil, opt_l, opt_d, dbarg, NULL};
    char *out = NULL;
    int rc = run_capture(argv, &out);
    if (rc == 0 && out != NULL && strstr(out, "ukeyd local CA") != NULL)
        add("nss", ST_OK, NULL,
            T("ukeyd's local TLS CA is trusted in %s", "ukeyd 的本地 TLS CA 已在 %s 中受信任"), db);
    else if (rc == 0)
        add("nss", ST_FAIL,
            T("Restart ukeyd (systemctl --user restart ukeyd): it adds its CA when it starts. Then "
              "restart Chrome.",
              "请重启 ukeyd（systemctl --user restart ukeyd）：它启动时会添加其 CA。然后重启 "
              "Chrome。"),
            T("ukeyd's local TLS CA is not in %s: pages cannot reach ukeyd over WSS",
              "ukeyd 的本地 TLS CA 不在 %s 中：网页无法通过 WSS 连接 ukeyd"),
            db);
    else
        add("nss", ST_WARN, NULL, T("certutil could not read %s", "certutil 无法读取 %s"), db);
    free(out);
}

static const struct browser {
    const char *name;
    const char *bins[3];
    const char *user_dir;   /* under $XDG_CONFIG_HOME */
    const char *system_dir; /* native-messaging-hosts */
} BROWSERS[] = {
    {"Google Chrome",
     {"google-chrome", "google-chrome-stable", NULL},
     "google-chrome",
     "/etc/opt/chrome/native-messaging-hosts"},
    {"Chromium",
     {"chromium", "chromium-browser", NULL},
     "chromium",
     "/etc/chromium/native-messaging-hosts"},
    {"Microsoft Edge",
     {"microsoft-edge", "microsoft-edge-stable", NULL},
     "microsoft-edge",
     "/etc/opt/edge/native-messaging-hosts"},
};

#define NM_HOST "io.ukeyd.host"

/* Whether file is our manifest and names an executable host; why it is not into why. */
static bool manifest_ok(const char *file, char *why, size_t size)
{
    FILE *f = fopen(file, "re");
    if (f == NULL) {
        snprintf(why, size, "%s", T("missing", "不存在"));
        return false;
    }
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *m = cJSON_Parse(buf);
    const char *name = get_str(m, "name", ""), *path = get_str(m, "path", ""),
               *type = get_str(m, "type", "");
    bool ok = false;
    if (m == NULL)
        snprintf(why, size, "%s", T("not valid JSON", "不是有效的 JSON"));
    else if (strcmp(name, NM_HOST) != 0 || strcmp(type, "stdio") != 0)
        snprintf(why, size, "%s", T("wrong name or type", "名称或类型错误"));
    else if (path[0] != '/' || access(path, X_OK) != 0)
        snprintf(why, size, T("the host program %s is missing", "宿主程序 %s 不存在"), path);
    else if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "allowed_origins")) == 0)
        snprintf(why, size, "%s", T("no extension allowed", "未允许任何扩展"));
    else
        ok = true;
    cJSON_Delete(m);
    return ok;
}

static void check_native_messaging(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    char cfgdir[4096];
    if (xdg != NULL && xdg[0] == '/')
        snprintf(cfgdir, sizeof cfgdir, "%s", xdg);
    else
        snprintf(cfgdir, sizeof cfgdir, "%s/.config", home ? home : "");
    size_t installed = 0;
    for (size_t i = 0; i < sizeof BROWSERS / sizeof BROWSERS[0]; i++) {
        const struct browser *b = &BROWSERS[i];
        char bin[4096];
        bool found = false;
        for (size_t k = 0; !found && b->bins[k] != NULL; k++)
            found = find_in_path(b->bins[k], bin, sizeof bin) && strncmp(bin, "/snap/", 6) != 0;
        if (!found)
            continue;
        installed++;
        char user[4200], sys[4200], why_user[512], why_sys[512];
        snprintf(user, sizeof user, "%s/%s/NativeMessagingHosts/" NM_HOST ".json", cfgdir,
                 b->user_dir);
        snprintf(sys, sizeof sys, "%s/" NM_HOST ".json", b->system_dir);
        if (manifest_ok(user, why_user, sizeof why_user))
            add("native_messaging", ST_OK, NULL,
                T("%s: the native-messaging host is registered (%s)",
                  "%s：本地消息宿主已注册（%s）"),
                b->name, user);
        else if (manifest_ok(sys, why_sys, sizeof why_sys))
            add("native_messaging", ST_OK, NULL,
                T("%s: the native-messaging host is registered (%s)",
                  "%s：本地消息宿主已注册（%s）"),
                b->name, sys);
        else
            add("native_messaging", ST_FAIL,
                T("Register it: run the native-host installer that comes with ukeyd "
                  "(install.sh --user), or reinstall the ukeyd package; then restart the browser.",
                  "请注册：运行 ukeyd 附带的本地宿主安装程序（install.sh --user），或重新安装 "
                  "ukeyd 软件包；然后重启浏览器。"),
                T("%s: the native-messaging host %s is not registered (%s: %s)",
                  "%s：本地消息宿主 %s 未注册（%s：%s）"),
                b->name, NM_HOST, user, why_user);
    }
    if (installed == 0)
        add("native_messaging", ST_SKIP, NULL,
            T("No Chrome, Chromium or Edge installed from a package",
              "未找到以软件包安装的 Chrome、Chromium 或 Edge"));
}

static void check_extension(struct ctx *c)
{
    uk_jsonrpc_msg *m = call(c, "audit.read", cJSON_Parse("{\"limit\":1000}"));
    const cJSON *e, *last = NULL;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(ukctl_result(m), "entries"))
    {
        if (strcmp(get_str(e, "endpoint", ""), "native-messaging") == 0)
            last = e;
    }
    if (last != NULL)
        add("extension", ST_OK, NULL,
            T("The browser extension has used ukeyd (last at %s)",
              "浏览器扩展已使用过 ukeyd（最近一次 %s）"),
            get_str(last, "time", "?"));
    else
        add("extension", ST_WARN,
            T("Not checkable from here: open the portal in Chrome; the extension's icon shows "
              "whether it reaches ukeyd. Install the ukeyd extension if the icon is missing.",
              "无法在此检查：请在 Chrome 中打开门户网站，扩展图标会显示是否能连接 "
              "ukeyd。如果没有该图标，请安装 ukeyd 扩展。"),
            T("No sign of the browser extension in ukeyd's audit log",
              "ukeyd 的审计日志中没有浏览器扩展的记录"));
    uk_jsonrpc_msg_free(m);
}

static void check_sandboxed_browsers(void)
{
    char found[1024] = "";
    char bin[4096];
    const char *snap_bins[] = {"/snap/bin/chromium", "/snap/bin/google-chrome",
                               "/snap/bin/microsoft-edge"};
    for (size_t i = 0; i < sizeof snap_bins / sizeof snap_bins[0]; i++)
        if (access(snap_bins[i], X_OK) == 0) {
            size_t l = strlen(found);
            snprintf(found + l, sizeof found - l, "%s%s (Snap)", l ? ", " : "", snap_bins[i]);
        }
    if (found[0] == '\0' && find_in_path("snap", bin, sizeof bin)) {
        char list[] = "list";
        char *argv[] = {bin, list, NULL};
        char *out = NULL;
        if (run_capture(argv, &out) == 0 && out != NULL)
            for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
                char name[128];
                if (sscanf(line, "%127s", name) == 1 &&
                    (strcmp(name, "chromium") == 0 || strcmp(name, "google-chrome") == 0 ||
                     strcmp(name, "microsoft-edge") == 0)) {
                    size_t l = strlen(found);
                    snprintf(found + l, sizeof found - l, "%s%s (Snap)", l ? ", " : "", name);
                }
            }
        free(out);
    }
    if (find_in_path("flatpak", bin, sizeof bin)) {
        char list[] = "list", app[] = "--app", cols[] = "--columns=application";
        char *argv[] = {bin, list, app, cols, NULL};
        char *out = NULL;
        if (run_capture(argv, &out) == 0 && out != NULL)
            for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"))
                if (strcmp(line, "com.google.Chrome") == 0 ||
                    strcmp(line, "org.chromium.Chromium") == 0 ||
                    strcmp(line, "com.microsoft.Edge") == 0 ||
                    strcmp(line, "io.github.ungoogled_software.ungoogled_chromium") == 0) {
                    size_t l = strlen(found);
                    snprintf(found + l, sizeof found - l, "%s%s (Flatpak)", l ? ", " : "", line);
                }
        free(out);
    }
    if (found[0] == '\0')
        add("sandboxed_browsers", ST_OK, NULL,
            T("No Snap or Flatpak browser found", "未发现 Snap 或 Flatpak 浏览器"));
    else
        add("sandboxed_browsers", ST_WARN,
            T("These browsers cannot start ukeyd's extension helper; the portal falls back to "
              "the WSS connection there. For the extension, install Chrome or Chromium from a "
              ".deb package.",
              "这些浏览器无法启动 ukeyd 扩展的辅助程序，门户网站将改用 WSS "
              "连接。如需使用扩展，请安装 .deb 软件包版本的 Chrome 或 Chromium。"),
            T("Sandboxed browsers: %s", "沙盒浏览器：%s"), found);
}

/* ---- output ---- */

static int print_and_rate(bool json)
{
    status worst = ST_OK;
    for (size_t i = 0; i < n_checks; i++)
        if (checks[i].st > worst)
            worst = checks[i].st;
    if (worst == ST_SKIP)
        worst = ST_OK;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "checks");
        for (size_t i = 0; i < n_checks; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "id", checks[i].id);
            cJSON_AddStringToObject(e, "status", STATUS_NAME[checks[i].st]);
            cJSON_AddStringToObject(e, "text", checks[i].text);
            if (checks[i].fix[0] != '\0')
                cJSON_AddStringToObject(e, "fix", checks[i].fix);
            else
                cJSON_AddNullToObject(e, "fix");
            cJSON_AddItemToArray(arr, e);
        }
        cJSON_AddStringToObject(o, "worst", STATUS_NAME[worst]);
        char *s = cJSON_PrintUnformatted(o);
        if (s != NULL)
            puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        for (size_t i = 0; i < n_checks; i++) {
            printf("%s %s\n", STATUS_TAG[checks[i].st], checks[i].text);
            if (checks[i].fix[0] != '\0' && checks[i].st >= ST_WARN)
                printf("       %s%s\n", T("Fix: ", "解决办法："), checks[i].fix);
        }
        size_t warn = 0, fail = 0;
        for (size_t i = 0; i < n_checks; i++) {
            warn += checks[i].st == ST_WARN;
            fail += checks[i].st == ST_FAIL;
        }
        printf(T("\n%zu checks: %zu failed, %zu warnings\n",
                 "\n共 %zu 项检查：%zu 项失败，%zu 项警告\n"),
               n_checks, fail, warn);
    }
    return worst == ST_FAIL ? 2 : worst == ST_WARN ? 1 : 0;
}

int ukctl_doctor(const ukctl_doctor_opts *o)
{
    struct ctx c = {.o = o, .fd = -1, .ukeyd_pid = -1};
    uk_log_set_sink(log_sink, &c);
    c.fd = uk_frame_connect(o->socket_path);
    uk_jsonrpc_msg *hello = c.fd >= 0 ? ukctl_round_trip(c.fd, "system.hello", NULL) : NULL;
    if (ukctl_result(hello) != NULL) {
        c.hello = cJSON_Duplicate(ukctl_result(hello), true);
        c.ukeyd_pid = ukctl_peer_pid(c.fd);
        add("daemon", ST_OK, NULL, T("ukeyd %s is running (%s)", "ukeyd %s 正在运行（%s）"),
            get_str(c.hello, "version", "?"), o->socket_path);
    } else {
        add("daemon", ST_FAIL,
            T("Start it: systemctl --user start ukeyd (or log out and in again).",
              "请启动它：systemctl --user start ukeyd（或注销后重新登录）。"),
            T("ukeyd is not running (no answer on %s)", "ukeyd 未运行（%s 无响应）"),
            o->socket_path);
        if (c.fd >= 0)
            close(c.fd);
        c.fd = -1;
    }
    uk_jsonrpc_msg_free(hello);
    if (c.fd >= 0) {
        check_keys(&c);
        check_exclusive(&c);
    } else {
        add("key", ST_SKIP, NULL,
            T("The key is checked through ukeyd, which is not running",
              "USB Key 需通过 ukeyd 检查，而 ukeyd 未运行"));
    }
    check_wss_port(&c);
    check_vendor_ports();
    check_nss(&c);
    check_native_messaging();
    if (c.fd >= 0)
        check_extension(&c);
    check_sandboxed_browsers();
    int rc = print_and_rate(o->json);
    if (c.fd >= 0)
        close(c.fd);
    cJSON_Delete(c.hello);
    uk_log_set_sink(NULL, NULL);
    return rc;
}
