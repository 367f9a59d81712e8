/* ukeyd: the daemon. Start-up in order, shutdown in reverse, one libuv loop. */
#include "uk_audit.h"
#include "uk_config.h"
#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_policy.h"
#include "uk_prompt.h"
#include "uk_renewal.h"
#include "uk_rpc.h"
#include "uk_rpc_keys.h"
#include "uk_tls.h"
#include "uk_token.h"
#include "uk_unix.h"
#include "uk_worker.h"
#include "uk_wss.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#ifndef UKEYD_VERSION
#define UKEYD_VERSION "0.0.0"
#endif

typedef struct daemon_state {
    uv_loop_t loop;
    const char *config_path;
    uk_config *cfg;
    uk_policy *policy;
    uk_rpc *rpc;
    uk_tokens *tokens;
    uk_renewal *renewal;
    uk_prompt *prompt;
    uk_audit *audit;
    uk_unix *unix_ep;
    uk_wss *wss;
    uv_signal_t sig_term, sig_int, sig_hup;
    /* Twice a day a worker checks the TLS certificate; when the ceremony ran
     * again, WSS restarts with the new one. */
    uk_worker *worker;
    uv_timer_t tls_timer;
    uk_tls_paths tls_paths; /* written by the worker job, read in its done callback */
    bool tls_check_running;
    bool stopping;
    char port_file[PATH_MAX];
    int ready_fd; /* write end of the pipe the parent waits on; -1 */
} daemon_state;

/* --system-config: the administrator's file (tests point it elsewhere); NULL: /etc/ukeyd. */
static const char *system_config_path;

/* The administrator's file first, then the user's: the system's settings win. */
static int load_config(const char *path, uk_config **out)
{
    return uk_config_load_layered(system_config_path, path, out);
}

static void usage(FILE *f)
{
    fputs("usage: ukeyd [--config FILE] [--system-config FILE] [--foreground]\n"
          "       ukeyd tls-setup [--config FILE]\n"
          "       ukeyd tls-remove [--config FILE]\n"
          "       ukeyd --version | --help\n"
          "\n"
          "ukeyd lets web portals use the certificate on a USB key without plug-ins.\n"
          "Without --foreground it returns once it is ready and keeps running in the\n"
          "background; under systemd use --foreground.\n"
          "The administrator's settings in " UK_CONFIG_SYSTEM_PATH " (or --system-config)\n"
          "override the user's.\n",
          f);
}

static int mkdir_private(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        UK_LOG_ERR("cannot create %s: %s", dir, strerror(errno));
        return UK_E_IO;
    }
    return UK_OK;
}

/* mkdir -p for our own directories, each new one 0700. */
static int mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof(buf))
        return UK_E_CONFIG_INVALID;
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir_private(buf);
        *p = '/';
        if (rc != UK_OK)
            return rc;
    }
    return mkdir_private(buf);
}

static uk_tls_options tls_options(const uk_config *cfg)
{
    return (uk_tls_options){.state_dir = cfg->state_dir};
}

/* Publishes the WSS port in use for the SDK's and doctor's benefit. */
static void write_port_file(daemon_state *d, uint16_t port)
{
    int n = snprintf(d->port_file, sizeof(d->port_file), "%s/wss-port", d->cfg->runtime_dir);
    if (n < 0 || (size_t)n >= sizeof(d->port_file)) {
        d->port_file[0] = '\0';
        return;
    }
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", d->port_file);
    FILE *f = fopen(tmp, "we");
    if (f == NULL || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 ||
        rename(tmp, d->port_file) != 0) {
        UK_LOG_WARN("cannot write %s: %s", d->port_file, strerror(errno));
        d->port_file[0] = '\0';
    }
}

#define TLS_CHECK_INTERVAL_MS (12u * 3600u * 1000u)

static int start_wss(daemon_state *d, const uk_tls_paths *paths)
{
    const uk_config *cfg = d->cfg;
    uk_wss_options wo = {.loop = &d->loop,
                         .rpc = d->rpc,
                         .policy = d->policy,
                         .ports = cfg->wss_ports,
                         .n_ports = cfg->n_wss_ports,
                         .cert_path = paths->cert,
                         .key_path = paths->key,
                         .message_size = cfg->limits.message_size};
    int rc = uk_wss_start(&wo, &d->wss);
    if (rc != UK_OK)
        return rc;
    uk_rpc_set_wss_port(d->rpc, uk_wss_port(d->wss));
    write_port_file(d, uk_wss_port(d->wss));
    return UK_OK;
}

static int tls_check_work(void *arg)
{
    daemon_state *d = arg;
    uk_tls_options to = tls_options(d->cfg);
    return uk_tls_ensure(&to, &d->tls_paths);
}

static void wss_closed_for_renewal(uk_wss *w, void *ctx)
{
    daemon_state *d = ctx;
    (void)w;
    if (d->stopping)
        return;
    int rc = start_wss(d, &d->tls_paths);
    if (rc != UK_OK)
        UK_LOG_ERR("tls: WSS could not restart with the renewed certificate: %s", uk_err_name(rc));
}

static void tls_check_done(void *arg, int status)
{
    daemon_state *d = arg;
    d->tls_check_running = false;
    if (status == UK_E_CANCELLED)
        return;
    if (status != UK_OK) {
        UK_LOG_ERR("tls: the periodic certificate check failed: %s", uk_err_name(status));
        return;
    }
    if (!d->tls_paths.created || d->wss == NULL)
        return;
    UK_LOG_NOTICE("tls: the certificate was renewed; restarting the WSS endpoint");
    /* The new endpoint starts only once the old one has let go of its port,
     * so it keeps the port that clients know. */
    uk_wss_close(d->wss, wss_closed_for_renewal, d);
    d->wss = NULL;
}

static void on_tls_timer(uv_timer_t *t)
{
    daemon_state *d = t->data;
    if (d->tls_check_running || d->worker == NULL)
        return;
    if (uk_worker_submit(d->worker, tls_check_work, tls_check_done, d) == UK_OK)
        d->tls_check_running = true;
}

static void stop_endpoints(daemon_state *d)
{
    d->stopping = true;
    if (d->wss != NULL) {
        uk_wss_stop(d->wss);
        d->wss = NULL;
    }
    if (d->unix_ep != NULL) {
        uk_unix_stop(d->unix_ep);
        d->unix_ep = NULL;
    }
    if (d->port_file[0] != '\0') {
        unlink(d->port_file);
        d->port_file[0] = '\0';
    }
    if (d->renewal != NULL) {
        /* Before the token layer: its card jobs are cancelled with the layer's. */
        uk_rpc_set_renewal(d->rpc, NULL);
        uk_renewal_free(d->renewal);
        d->renewal = NULL;
    }
    if (d->prompt != NULL) {
        /* A dialog on screen is closed; its request answers CANCELLED into a closed socket. */
        uk_prompt_free(d->prompt, NULL, NULL);
        d->prompt = NULL;
        uk_rpc_set_prompt(d->rpc, NULL);
    }
    if (d->tokens != NULL) {
        /* Its threads are joined and its handles closed before the loop
         * empties; nothing needs to happen when that is done. */
        uk_tokens_stop(d->tokens, NULL, NULL);
        d->tokens = NULL;
    }
    if (d->worker != NULL) {
        uv_close((uv_handle_t *)&d->tls_timer, NULL);
        /* A check still running finishes; its answer finds WSS gone. */
        uk_worker_close(d->worker, NULL, NULL);
        d->worker = NULL;
    }
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    daemon_state *d = h->data;
    UK_LOG_NOTICE("%s: shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    stop_endpoints(d);
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    uv_close((uv_handle_t *)&d->sig_hup, NULL);
}

static void on_hup(uv_signal_t *h, int signum)
{
    daemon_state *d = h->data;
    (void)signum;
    uk_config *cfg = NULL;
    if (load_config(d->config_path, &cfg) != UK_OK) {
        UK_LOG_ERR("SIGHUP: the configuration has errors; keeping the current one");
        return;
    }
    if (uk_policy_reload(d->policy, cfg) != UK_OK) {
        UK_LOG_ERR("SIGHUP: the new origins are invalid; keeping the current ones");
        uk_config_free(cfg);
        return;
    }
    uk_log_set_level((uk_log_level)cfg->log_level);
    /* Endpoints, paths and limits keep their start-up values: they are in
     * use. Origins and extension IDs take effect for new connections. */
    uk_config_free(d->cfg);
    d->cfg = cfg;
    UK_LOG_NOTICE("SIGHUP: reloaded %zu origins and %zu extension IDs", cfg->n_origins,
                  cfg->n_extension_ids);
}

static void on_token_event(void *ctx, uk_token_event ev, const uk_token_summary *t)
{
    daemon_state *d = ctx;
    /* An inserted key (also each key present at start) first finishes or rolls back any
     * renewal a crash or a pulled key interrupted; the job is queued before any request's. */
    if (ev == UK_TOKEN_INSERTED && t->present && d->renewal != NULL) {
        int rc = uk_renewal_recover(d->renewal, t->id, NULL, NULL);
        if (rc != UK_OK)
            UK_LOG_WARN("renewal recovery on %s not started: %s", t->id, uk_err_name(rc));
    }
    uk_rpc_token_event(d->rpc, ev, t);
}

static int start_tokens(daemon_state *d)
{
    const uk_config *cfg = d->cfg;
    uk_tokens_options to = {.loop = &d->loop, .on_event = on_token_event, .ctx = d};
    memcpy(to.driver.piv_mgm_key, cfg->piv_mgm_key, cfg->piv_mgm_key_len);
    to.driver.piv_mgm_key_len = cfg->piv_mgm_key_len;
    to.driver.allow_default_mgm_key = cfg->piv_allow_default_mgm_key;
    /* PKCS#11 and SKF modules: paths from the configuration files only (never from a
     * request). */
    uk_tokens_module mods[UK_LIMIT_PKCS11_MODULES];
    for (size_t i = 0; i < cfg->n_pkcs11_modules && i < UK_LIMIT_PKCS11_MODULES; i++) {
        const uk_config_module *cm = &cfg->pkcs11_modules[i];
        mods[i] = (uk_tokens_module){.path = cm->path,
                                     .name = cm->name,
                                     .atr_len = cm->atr_len,
                                     .token_label = cm->token_label};
        _Static_assert(UK_TOKENS_ATR_MAX == UK_LIMIT_ATR_BYTES, "one ATR size");
        memcpy(mods[i].atr, cm->atr, cm->atr_len);
        memcpy(mods[i].atr_mask, cm->atr_mask, cm->atr_len);
    }
    to.modules = mods;
    to.n_modules = cfg->n_pkcs11_modules;
    uk_tokens_skf_module skf[UK_LIMIT_SKF_MODULES];
    for (size_t i = 0; i < cfg->n_skf_modules && i < UK_LIMIT_SKF_MODULES; i++)
        skf[i] = (uk_tokens_skf_module){.path = cfg->skf_modules[i].path,
                                        .name = cfg->skf_modules[i].name,
                                        .ulong_bytes = cfg->skf_modules[i].ulong_bytes};
    to.skf_modules = skf;
    to.n_skf_modules = cfg->n_skf_modules;
    int rc = uk_tokens_start(&to, &d->tokens);
    OPENSSL_cleanse(to.driver.piv_mgm_key, sizeof(to.driver.piv_mgm_key));
    return rc;
}

static int start(daemon_state *d)
{
    const uk_config *cfg = d->cfg;
    int rc = mkdirs(cfg->state_dir);
    if (rc == UK_OK)
        rc = mkdirs(cfg->runtime_dir);
    if (rc == UK_OK)
        rc = uk_policy_new(cfg, &d->policy);
    if (rc != UK_OK)
        return rc;
    uk_rpc_options ro = {
        .loop = &d->loop,
        .policy = d->policy,
        .daemon_version = UKEYD_VERSION,
        .message_size = cfg->limits.message_size,
        .json_depth = cfg->limits.json_depth,
        .pending_per_connection = cfg->limits.pending_per_connection,
        .connections = cfg->limits.connections,
        .expiring_days = cfg->expiring_days,
        .pin_attempts_per_minute = (unsigned)cfg->limits.pin_attempts_per_minute,
    };
    if ((rc = uk_rpc_new(&ro, &d->rpc)) != UK_OK)
        return rc;
    /* The audit log is kept next to the renewal journal; without it ukeyd still serves (the
     * failure is logged), since refusing to sign would hurt the user more than a gap. */
    char audit_path[PATH_MAX];
    if (snprintf(audit_path, sizeof(audit_path), "%s/audit.log", cfg->state_dir) <
            (int)sizeof(audit_path) &&
        uk_audit_open(audit_path, cfg->audit_max_bytes, cfg->audit_keep, &d->audit) != UK_OK)
        UK_LOG_WARN("audit log %s could not be opened; continuing without it", audit_path);
    uk_rpc_set_audit(d->rpc, d->audit);
    uk_prompt_options po = {
        .loop = &d->loop, .program = cfg->pinentry, .timeout_s = cfg->prompt_timeout_s};
    if ((rc = uk_prompt_new(&po, &d->prompt)) != UK_OK)
        return rc;
    uk_rpc_set_prompt(d->rpc, d->prompt);
    UK_LOG_INFO("dialogs: %s", uk_prompt_program(d->prompt) ? uk_prompt_program(d->prompt)
                                                            : "no pinentry program found");
    /* Keys are watched from the start; pcscd not running is not an error
     * (the token layer waits for it and says so in the log). */
    if ((rc = start_tokens(d)) != UK_OK)
        return rc;
    uk_rpc_set_tokens(d->rpc, d->tokens);
    uk_unix_options uo = {.loop = &d->loop,
                          .rpc = d->rpc,
                          .path = cfg->socket_path,
                          .message_size = cfg->limits.message_size};
    if ((rc = uk_unix_start(&uo, &d->unix_ep)) != UK_OK)
        return rc;
    /* The renewal journal lives in the state directory; refusing it (wrong owner or mode,
     * another ukeyd: after the socket, which names the other one first) stops the start: renewals
     * must never run without their journal. */
    if ((rc = uk_renewal_new(&d->loop, d->tokens, cfg->state_dir, &d->renewal)) != UK_OK)
        return rc;
    uk_rpc_set_renewal(d->rpc, d->renewal);
    uk_renewal_set_on_changed(d->renewal, uk_rpc_renewal_changed, d->rpc);
    if ((rc = uk_renewal_set_ca_bundle(d->renewal, cfg->renewal_ca_bundle)) != UK_OK)
        return rc;
    if (cfg->n_wss_ports > 0) {
        uk_tls_options to = tls_options(cfg);
        uk_tls_paths paths;
        if ((rc = uk_tls_ensure(&to, &paths)) != UK_OK)
            return rc;
        if (paths.created)
            UK_LOG_NOTICE("tls: made a new local CA and server certificate (trust: %s)",
                          uk_tls_trust_name(paths.trust));
        if ((rc = start_wss(d, &paths)) != UK_OK)
            return rc;
        if ((rc = uk_worker_new(&d->worker, &d->loop, "ukeyd-tls")) != UK_OK)
            return rc;
        uv_timer_init(&d->loop, &d->tls_timer);
        d->tls_timer.data = d;
        uv_timer_start(&d->tls_timer, on_tls_timer, TLS_CHECK_INTERVAL_MS, TLS_CHECK_INTERVAL_MS);
        /* An idle timer must not keep the loop alive at shutdown. */
        uv_unref((uv_handle_t *)&d->tls_timer);
    }
    uv_signal_init(&d->loop, &d->sig_term);
    uv_signal_init(&d->loop, &d->sig_int);
    uv_signal_init(&d->loop, &d->sig_hup);
    d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
    uv_signal_start(&d->sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_stop_signal, SIGINT);
    uv_signal_start(&d->sig_hup, on_hup, SIGHUP);
    return UK_OK;
}

/* Detaches once start-up succeeded, so `ukeyd` returns with the socket
 * ready; the parent's exit status says whether it is. */
static int daemonize(daemon_state *d)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return UK_E_IO;
    pid_t pid = fork();
    if (pid < 0)
        return UK_E_IO;
    if (pid > 0) {
        close(fds[1]);
        char status = 1;
        ssize_t n;
        do
            n = read(fds[0], &status, 1);
        while (n < 0 && errno == EINTR);
        _exit(n == 1 && status == 0 ? 0 : 1);
    }
    close(fds[0]);
    setsid();
    d->ready_fd = fds[1];
    return UK_OK;
}

static void tell_parent(daemon_state *d, int rc)
{
    if (d->ready_fd < 0)
        return;
    char status = rc == UK_OK ? 0 : 1;
    if (write(d->ready_fd, &status, 1) != 1)
        UK_LOG_WARN("could not signal readiness to the parent");
    close(d->ready_fd);
    d->ready_fd = -1;
    if (rc == UK_OK) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            close(null);
        }
    }
}

static int run_daemon(const char *config_path, bool foreground)
{
    daemon_state d = {.config_path = config_path, .ready_fd = -1};
    int rc = load_config(config_path, &d.cfg);
    if (rc != UK_OK)
        return 2;
    uk_log_set_level((uk_log_level)d.cfg->log_level);
    if (!foreground && daemonize(&d) != UK_OK) {
        uk_config_free(d.cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    /* A helper that idles most of its life: one malloc arena is plenty for
     * a loop thread and a few card threads, and each extra arena would keep
     * its own pages. */
    mallopt(M_ARENA_MAX, 1);
    uv_loop_init(&d.loop);
    rc = start(&d);
    tell_parent(&d, rc);
    if (rc == UK_OK) {
        UK_LOG_NOTICE("ukeyd %s ready: socket %s, wss %s%u", UKEYD_VERSION, d.cfg->socket_path,
                      d.wss ? "127.0.0.1:" : "off", d.wss ? uk_wss_port(d.wss) : 0u);
        /* Start-up (TLS ceremony, certificate parsing) leaves freed heap
         * behind; give it back before settling into the idle state. */
        malloc_trim(0);
        uv_run(&d.loop, UV_RUN_DEFAULT);
    } else {
        UK_LOG_ERR("start-up failed: %s", uk_err_name(rc));
        /* Signals are set up last, so nothing but the endpoints is open. */
        stop_endpoints(&d);
    }
    /* Let every closing handle finish, then the loop must be empty. */
    uv_run(&d.loop, UV_RUN_DEFAULT);
    uk_rpc_free(d.rpc);
    uk_audit_close(d.audit);
    uk_policy_free(d.policy);
    int close_rc = uv_loop_close(&d.loop);
    if (close_rc != 0)
        UK_LOG_ERR("loop still had handles at exit: %s", uv_strerror(close_rc));
    else if (rc == UK_OK)
        UK_LOG_NOTICE("stopped cleanly");
    uk_config_free(d.cfg);
    return rc != UK_OK || close_rc != 0 ? 1 : 0;
}

static int run_tls(const char *config_path, bool remove)
{
    uk_config *cfg = NULL;
    if (load_config(config_path, &cfg) != UK_OK)
        return 2;
    int rc = mkdirs(cfg->state_dir);
    uk_tls_options to = tls_options(cfg);
    if (rc == UK_OK && remove) {
        rc = uk_tls_remove(&to);
        if (rc == UK_OK)
            printf("removed the local TLS certificates and their trust\n");
    } else if (rc == UK_OK) {
        uk_tls_paths paths;
        rc = uk_tls_ensure(&to, &paths);
        if (rc == UK_OK)
            printf("%s %s\nCA %s\ntrust in the browser's NSS database: %s\n",
                   paths.created ? "created" : "kept", paths.cert, paths.ca,
                   uk_tls_trust_name(paths.trust));
    }
    if (rc != UK_OK)
        fprintf(stderr, "ukeyd: %s\n", uk_err_message(rc, getenv("LANG")));
    uk_config_free(cfg);
    return rc == UK_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"foreground", no_argument, NULL, 'f'},
        {"system-config", required_argument, NULL, 's'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *command = NULL;
    bool foreground = false;
    if (argc > 1 && argv[1][0] != '-') {
        command = argv[1];
        argv++;
        argc--;
    }
    int c;
    while ((c = getopt_long(argc, argv, "c:s:fVh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'f':
            foreground = true;
            break;
        case 's':
            system_config_path = optarg;
            break;
        case 'V':
            printf("ukeyd %s\n", UKEYD_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (command == NULL)
        return run_daemon(config_path, foreground);
    if (strcmp(command, "tls-setup") == 0)
        return run_tls(config_path, false);
    if (strcmp(command, "tls-remove") == 0)
        return run_tls(config_path, true);
    usage(stderr);
    return 2;
}
