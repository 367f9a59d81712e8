/* The guard before a key is used (uk_rpc_guard.h), and the pairing dialog (system.pair). */
#include "uk_rpc_guard.h"

#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_policy.h"
#include "uk_prompt.h"
#include "uk_rpc_handlers.h"
#include "uk_token.h"
#include "uk_x509.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MINUTE_MS 60000u
/* Wrong PINs per key per minute when the config says nothing. */
#define PIN_STRIKES_DEFAULT 5u
/* Declined pairing requests per origin within PAIRING_WINDOW_MS before it must wait. */
#define PAIRING_STRIKES   2u
#define PAIRING_WINDOW_MS (10u * MINUTE_MS)
/* What the dialog shows of a subject and of a digest: the Assuan line is at most 1000 bytes. */
#define SUBJECT_SHOWN 160
#define DIGEST_SHOWN  32

struct uk__rpc_guard {
    uk_rpc_call *call;
    uk__rpc_guard_run_fn run;
    void (*cleanup)(void *arg);
    void *arg;
    uk__rpc_action action;
    bool need_pin;
    bool page_pin;  /* the PIN came in params */
    bool asked_pin; /* the PIN came from the dialog at least once */
    int retries;    /* PIN tries left as last known; -1 unknown */
    int last_err;   /* the card's last answer when asking again (PIN_INCORRECT) */
    char token[96];
    char key[UK_KEY_ID_MAX];
    char what[DIGEST_SHOWN * 2 + 8];
    char label[64 + 32 + 4];
    char subject[SUBJECT_SHOWN + 4];
    char serial[64];
    uk_secret *pin; /* from params, until run */
};

/* ---- words (the dialog is the protocol edge too: made here, in zh-CN and English) ---- */

bool uk__rpc_chinese(void)
{
    const char *vars[] = {"LC_ALL", "LC_MESSAGES", "LANG"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv(vars[i]);
        if (v != NULL && *v != '\0')
            return strncmp(v, "zh", 2) == 0;
    }
    return false;
}

typedef struct words {
    const char *title;
    const char *asks[8]; /* by uk__rpc_action */
    const char *key, *cert, *digest, *enter_pin, *confirm, *last_retry, *pin_prompt;
    const char *wrong_pin[2]; /* around the number of tries left */
    const char *allow, *deny, *local, *via, *pair, *ok_pin;
} words;

static const words zh = {
    .title = "ukeyd：USB Key 请求",
    .asks = {"", "请求使用您的 USB Key 签名。", "请求在您的 USB Key 上生成新的密钥对（证书更新）。",
             "请求将新证书写入您的 USB Key。",
             "请求修改您的 USB Key 的 PIN 码（请先输入当前 PIN 码）。",
             "请求用您的 USB Key 解密发给此证书的数据。",
             "请求删除为证书更新在您的 USB Key 上生成的新密钥（放弃更新）。",
             "请求核对您的 USB Key 的 PIN 码（登录；不签名，也不改动 USB Key）。"},
    .key = "USB Key：",
    .cert = "证书：",
    .digest = "待签名数据摘要：",
    .enter_pin = "输入 PIN 码即表示同意；如不认识此网站，请点击取消。",
    .confirm = "如同意，请点击允许；如不认识此网站，请点击拒绝。",
    .last_retry = "PIN 码只剩最后一次尝试机会，输错后 USB Key 将被锁定。确定要继续吗？",
    .wrong_pin = {"PIN 码错误，还剩 ", " 次机会"},
    .pin_prompt = "PIN 码：",
    .allow = "允许",
    .deny = "拒绝",
    .local = "本机程序（ukeyctl 等）",
    .via = "（经 ukeyd 浏览器扩展）",
    .pair = "请求使用您的 USB "
            "Key。\n允许后，该网站可以读取您的证书；每次签名或更新证书时仍会征得您的同意。"
            "\n仅当您信任此网站时才允许。",
    .ok_pin = "确定",
};

static const words en = {
    .title = "ukeyd: USB key request",
    .asks = {"", "asks to sign with your USB key.",
             "asks to generate a new key pair on your USB key (certificate renewal).",
             "asks to write a new certificate onto your USB key.",
             "asks to change the PIN of your USB key (enter the current PIN first).",
             "asks to decrypt data sent to this certificate with your USB key.",
             "asks to delete the key prepared on your USB key for a certificate renewal (abort).",
             "asks to check the PIN of your USB key (log in; nothing is signed or changed)."},
    .key = "Key: ",
    .cert = "Certificate: ",
    .digest = "Digest of the data: ",
    .enter_pin = "Entering your PIN allows it. Cancel if you do not recognise this website.",
    .confirm = "Allow it only if you recognise this website.",
    .last_retry = "Only one PIN attempt is left: a wrong PIN will lock the USB key. Continue?",
    .wrong_pin = {"Wrong PIN, ", " tries left"},
    .pin_prompt = "PIN:",
    .allow = "Allow",
    .deny = "Deny",
    .local = "A program on this computer (ukeyctl or similar)",
    .via = " (through the ukeyd browser extension)",
    .pair = "asks to use your USB key.\nOnce allowed, it can read your certificates; signing and "
            "renewing still ask you every time.\nAllow it only if you trust this website.",
    .ok_pin = "OK",
};

static const words *lang(void)
{
    return uk__rpc_chinese() ? &zh : &en;
}

/* "https://portal.example (through the extension)" or "a program on this computer". */
static void who(const uk_rpc_call *call, const words *w, char *buf, size_t size)
{
    const uk_rpc_peer *p = uk_rpc_call_peer(call);
    if (uk_rpc_call_is_local(call))
        snprintf(buf, size, "%s", w->local);
    else
        snprintf(buf, size, "%s%s", p->origin, p->via ? w->via : "");
}

static void describe(const uk__rpc_guard *g, const words *w, const char *tail, char *buf,
                     size_t size)
{
    char whom[UK_ORIGIN_MAX + 64];
    who(g->call, w, whom, sizeof(whom));
    int n = snprintf(buf, size, "%s %s\n\n%s%s", whom, w->asks[g->action], w->key, g->label);
    if (n > 0 && (size_t)n < size && g->subject[0] != '\0')
        n += snprintf(buf + n, size - (size_t)n, "\n%s%s", w->cert, g->subject);
    if (n > 0 && (size_t)n < size && g->what[0] != '\0')
        n += snprintf(buf + n, size - (size_t)n, "\n%s%s", w->digest, g->what);
    if (n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, "\n\n%s", tail);
}

/* ---- the steps ---- */

static void finish(uk__rpc_guard *g, int err, int retries_left)
{
    cJSON *extra = uk__rpc_key_error_extra(g->call, err, retries_left, g->token);
    uk_rpc_call_set_audit(g->call, g->token, g->serial[0] ? g->serial : NULL, NULL);
    uk_rpc_call_error(g->call, err, NULL, extra);
    if (g->cleanup != NULL)
        g->cleanup(g->arg);
    uk_secret_free(g->pin);
    free(g);
}

static void start(uk__rpc_guard *g, uk_secret *pin)
{
    uk_rpc_call_set_audit(g->call, g->token, g->serial[0] ? g->serial : NULL, NULL);
    int rc = g->run(g, g->arg, pin);
    if (rc != UK_OK)
        finish(g, rc, 0);
}

static uk_prompt *prompt_of(const uk__rpc_guard *g)
{
    return uk_rpc_get0_options(uk_rpc_call_rpc(g->call))->prompt;
}

static void ask_pin(uk__rpc_guard *g);

static void pin_answered(void *arg, int err, uk_secret *pin)
{
    uk__rpc_guard *g = arg;
    if (err != UK_OK) {
        /* Cancelled after a wrong PIN: the card's answer is the more useful one. */
        if (g->last_err == UK_E_PIN_INCORRECT && err == UK_E_CONSENT_DENIED)
            finish(g, UK_E_PIN_INCORRECT, g->retries);
        else
            finish(g, err, 0);
        return;
    }
    if (uk_rpc_call_session(g->call) == NULL) {
        /* The page went away while the user typed: nobody wants the signature any more. */
        uk_secret_free(pin);
        finish(g, UK_E_CANCELLED, 0);
        return;
    }
    if (uk_secret_get0_len(pin) == 0 || uk_secret_get0_len(pin) > UK_LIMIT_PIN_LENGTH) {
        uk_secret_free(pin);
        finish(g, UK_E_PIN_INVALID, 0);
        return;
    }
    g->asked_pin = true;
    start(g, pin);
}

static void ask_pin(uk__rpc_guard *g)
{
    const words *w = lang();
    char desc[1024], error[96];
    describe(g, w, w->enter_pin, desc, sizeof(desc));
    if (g->last_err == UK_E_PIN_INCORRECT)
        snprintf(error, sizeof(error), "%s%d%s", w->wrong_pin[0], g->retries, w->wrong_pin[1]);
    uk_prompt_text t = {.title = w->title,
                        .description = desc,
                        .prompt = w->pin_prompt,
                        .error = g->last_err == UK_E_PIN_INCORRECT ? error : NULL,
                        .ok = w->ok_pin,
                        .cancel = NULL};
    int rc = prompt_of(g) == NULL ? UK_E_PROMPT_UNAVAILABLE
                                  : uk_prompt_get_pin(prompt_of(g), &t, pin_answered, g, NULL);
    if (rc != UK_OK)
        finish(g, rc, 0);
}

/* After every yes: a PIN from params goes to the card, else the PIN dialog. */
static void go(uk__rpc_guard *g)
{
    if (!g->need_pin) {
        start(g, NULL);
    } else if (g->pin != NULL) {
        uk_secret *pin = g->pin;
        g->pin = NULL;
        start(g, pin);
    } else {
        ask_pin(g);
    }
}

static void consent_answered(void *arg, int err)
{
    uk__rpc_guard *g = arg;
    if (err != UK_OK) {
        finish(g, err, 0);
        return;
    }
    const uk_rpc_call *call = g->call;
    const uk_rpc_peer *p = uk_rpc_call_peer(call);
    uk_rpc_options const *opt = uk_rpc_get0_options(uk_rpc_call_rpc(call));
    if (!uk_rpc_call_is_local(call) &&
        uk_policy_consent(opt->policy, p->origin) == UK_CONSENT_SESSION &&
        uk_rpc_session_consent(uk_rpc_call_session(g->call), p->origin) != UK_OK)
        UK_LOG_WARN("rpc: could not remember the session consent of %s", p->origin);
    go(g);
}

static void confirm(uk__rpc_guard *g, const char *tail, uk_prompt_confirm_fn cb)
{
    const words *w = lang();
    char desc[1024];
    describe(g, w, tail, desc, sizeof(desc));
    uk_prompt_text t = {.title = w->title, .description = desc, .ok = w->allow, .cancel = w->deny};
    int rc = prompt_of(g) == NULL ? UK_E_PROMPT_UNAVAILABLE
                                  : uk_prompt_confirm(prompt_of(g), &t, cb, g, NULL);
    if (rc != UK_OK)
        finish(g, rc == UK_E_PROMPT_UNAVAILABLE && g->retries == 1 ? UK_E_PIN_LAST_RETRY : rc, 0);
}

/* Whether a web origin must still say yes in a CONFIRM dialog (no PIN dialog will ask it). */
static bool needs_confirm(const uk__rpc_guard *g)
{
    const uk_rpc_call *call = g->call;
    if (uk_rpc_call_is_local(call))
        return false;
    if (g->need_pin && g->pin == NULL)
        return false; /* the PIN dialog is the consent */
    const uk_rpc_peer *p = uk_rpc_call_peer(call);
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(call));
    return !(uk_policy_consent(opt->policy, p->origin) == UK_CONSENT_SESSION &&
             uk_rpc_session_consented(uk_rpc_call_session(call), p->origin));
}

static void decide(uk__rpc_guard *g)
{
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(g->call));
    if (g->need_pin) {
        unsigned max =
            opt->pin_attempts_per_minute ? opt->pin_attempts_per_minute : PIN_STRIKES_DEFAULT;
        if (uk_rpc_strikes(uk_rpc_call_rpc(g->call), UK_STRIKES_PIN, g->token, MINUTE_MS, false) >=
            max) {
            UK_LOG_NOTICE("rpc: %s: too many wrong PINs in the last minute", g->token);
            finish(g, UK_E_RATE_LIMITED, 0);
            return;
        }
        /* retries 0 is not trusted: the snapshot may predate another program's unblock, and
         * the card answers PIN_LOCKED itself without spending anything. */
        if (g->retries == 1) {
            /* This dialog names the origin, the key and the action, so its yes is the consent
             * as well; with the PIN dialog next, the user then types the PIN knowingly. */
            confirm(g, lang()->last_retry, consent_answered);
            return;
        }
    }
    if (needs_confirm(g))
        confirm(g, lang()->confirm, consent_answered);
    else
        go(g);
}

/* The certificate of the key, for the dialog's subject and the audit's serial. */
static void certs_found(void *arg, int err, const uk_token_cert *certs, size_t n)
{
    uk__rpc_guard *g = arg;
    if (err != UK_OK) {
        /* The key went away (or cannot be read) before anything was asked: say so now rather
         * than show a dialog for a key that is not there. */
        finish(g, err, 0);
        return;
    }
    for (size_t i = 0; g->key[0] != '\0' && i < n; i++) {
        uk_cert_info *ci = NULL;
        if (strcmp(certs[i].key_id, g->key) != 0 || certs[i].error != UK_OK ||
            uk_x509_parse(certs[i].der, certs[i].der_len, &ci) != UK_OK)
            continue;
        const char *subj = ci->subject.rfc4514 ? ci->subject.rfc4514 : "";
        size_t len = strlen(subj);
        if (len > SUBJECT_SHOWN) {
            /* Cut at a character boundary (UTF-8 continuation bytes are 10xxxxxx). */
            len = SUBJECT_SHOWN;
            while (len > 0 && ((unsigned char)subj[len] & 0xC0) == 0x80)
                len--;
            snprintf(g->subject, sizeof(g->subject), "%.*s...", (int)len, subj);
        } else {
            snprintf(g->subject, sizeof(g->subject), "%s", subj);
        }
        snprintf(g->serial, sizeof(g->serial), "%s", ci->serial ? ci->serial : "");
        uk_cert_info_free(ci);
        break;
    }
    decide(g);
}

void uk__rpc_guard_start(uk_rpc_call *call, const uk__rpc_guard_info *info,
                         uk__rpc_guard_run_fn run, void (*cleanup)(void *arg), void *arg)
{
    const uk_rpc_options *opt = uk_rpc_get0_options(uk_rpc_call_rpc(call));
    uk__rpc_guard *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(
            uk_rpc_call_params(call), info->pin_param != NULL ? info->pin_param : "pin"));
        uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
        if (cleanup != NULL)
            cleanup(arg);
        return;
    }
    g->call = call;
    g->run = run;
    g->cleanup = cleanup;
    g->arg = arg;
    g->action = info->action;
    g->need_pin = info->need_pin;
    g->retries = -1;
    snprintf(g->token, sizeof(g->token), "%s", info->token);
    snprintf(g->key, sizeof(g->key), "%s", info->key ? info->key : "");
    if (info->what != NULL) {
        size_t wl = strlen(info->what);
        snprintf(g->what, sizeof(g->what), "%.*s%s", DIGEST_SHOWN * 2, info->what,
                 wl > DIGEST_SHOWN * 2 ? "..." : "");
    }

    /* A PIN in params: whose is it allowed to be? */
    uk_jsonrpc_param_error pe;
    cJSON *params = uk_rpc_call_params(call);
    const char *pin_name = info->pin_param != NULL ? info->pin_param : "pin";
    cJSON *pin_item = cJSON_GetObjectItemCaseSensitive(params, pin_name);
    const uk_rpc_peer *p = uk_rpc_call_peer(call);
    if (pin_item != NULL) {
        bool allowed =
            uk_rpc_call_is_local(call) || uk_policy_pin_from_page(opt->policy, p->origin);
        if (!allowed || !g->need_pin) {
            uk_jsonrpc_wipe_tree(pin_item);
            finish(g, allowed ? UK_E_INVALID_PARAMS : UK_E_PIN_FROM_PAGE_DISABLED, 0);
            return;
        }
        if (uk_jsonrpc_param_get1_secret(params, pin_name, true, UK_LIMIT_PIN_LENGTH, &g->pin,
                                         &pe) != UK_OK) {
            uk_jsonrpc_wipe_tree(pin_item);
            uk_rpc_call_param_error(call, &pe);
            if (cleanup != NULL)
                cleanup(arg);
            free(g);
            return;
        }
        g->page_pin = true;
    }

    if (opt->tokens == NULL) {
        finish(g, UK_E_NO_SERVICE, 0);
        return;
    }
    /* The key as the user knows it, and its PIN tries (no card I/O: the snapshot). */
    uk_token_summary *list = NULL;
    size_t n = 0;
    bool found = false;
    if (uk_tokens_list(opt->tokens, &list, &n) == UK_OK) {
        for (size_t i = 0; i < n && !found; i++) {
            if (!list[i].present || strcmp(list[i].id, g->token) != 0)
                continue;
            found = true;
            g->retries = list[i].pin_retries;
            const uk_token_identity *id = &list[i].identity;
            if (id->serial[0] != '\0')
                snprintf(g->label, sizeof(g->label), "%s (%s)",
                         id->label[0] ? id->label : id->model, id->serial);
            else
                snprintf(g->label, sizeof(g->label), "%s", id->label[0] ? id->label : g->token);
        }
        free(list);
    }
    if (!found) {
        finish(g, UK_E_NO_TOKEN, 0);
        return;
    }
    if (g->key[0] == '\0' || uk_tokens_list_certs(opt->tokens, g->token, certs_found, g) != UK_OK)
        decide(g);
}

bool uk__rpc_guard_refuse_pin(uk_rpc_call *call)
{
    static const char *const names[] = {"pin", "old_pin", "new_pin"};
    cJSON *params = uk_rpc_call_params(call);
    bool any = false;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        any = any || cJSON_GetObjectItemCaseSensitive(params, names[i]) != NULL;
    if (!any || uk_rpc_call_is_local(call) ||
        uk_policy_pin_from_page(uk_rpc_get0_options(uk_rpc_call_rpc(call))->policy,
                                uk_rpc_call_peer(call)->origin))
        return false;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        uk_jsonrpc_wipe_tree(cJSON_GetObjectItemCaseSensitive(params, names[i]));
    uk_rpc_call_error(call, UK_E_PIN_FROM_PAGE_DISABLED, NULL, NULL);
    return true;
}

bool uk__rpc_guard_done(uk__rpc_guard *g, int err, int retries_left)
{
    if (err == UK_E_PIN_INCORRECT)
        (void)uk_rpc_strikes(uk_rpc_call_rpc(g->call), UK_STRIKES_PIN, g->token, MINUTE_MS, true);
    /* Only a PIN the user typed in our dialog is asked again: a page's or a script's PIN is
     * their business, and retrying it would burn tries. */
    if (err == UK_E_PIN_INCORRECT && g->asked_pin && retries_left > 0) {
        g->last_err = err;
        g->retries = retries_left;
        decide(g);
        return true;
    }
    uk_rpc_call_set_audit(g->call, g->token, g->serial[0] ? g->serial : NULL, NULL);
    uk_secret_free(g->pin);
    free(g);
    return false;
}

/* ---- system.pair ---- */

typedef struct pair_req {
    uk_rpc_call *call;
} pair_req;

static cJSON *paired_result(bool already)
{
    cJSON *r = cJSON_CreateObject();
    if (r != NULL && (!cJSON_AddBoolToObject(r, "paired", true) ||
                      !cJSON_AddBoolToObject(r, "already", already))) {
        cJSON_Delete(r);
        r = NULL;
    }
    return r;
}

static void pair_answered(void *arg, int err)
{
    pair_req *req = arg;
    uk_rpc_call *call = req->call;
    uk_rpc *rpc = uk_rpc_call_rpc(call);
    const uk_rpc_peer *p = uk_rpc_call_peer(call);
    free(req);
    if (err == UK_E_CONSENT_DENIED)
        (void)uk_rpc_strikes(rpc, UK_STRIKES_PAIRING, p->origin, PAIRING_WINDOW_MS, true);
    if (err == UK_OK)
        err = uk_policy_pair(uk_rpc_get0_options(rpc)->policy, p->origin, (int64_t)time(NULL));
    if (err != UK_OK) {
        uk_rpc_call_error(call, err, NULL, NULL);
        return;
    }
    UK_LOG_NOTICE("pairing: the user approved %s", p->origin);
    uk_rpc_call_set_audit(call, NULL, NULL, "approved by the user");
    cJSON *r = paired_result(false);
    if (r == NULL)
        uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
    else
        uk_rpc_call_result(call, r);
}

/* system.pair {}: an origin that is not allowed yet asks the user, in a native dialog that shows
 * the origin, to let it use the key. One request per origin at a time is the dialog queue's
 * business; declines are counted so a page cannot keep the dialog on screen. */
void uk__rpc_system_pair(uk_rpc_call *call)
{
    uk_rpc *rpc = uk_rpc_call_rpc(call);
    const uk_rpc_options *opt = uk_rpc_get0_options(rpc);
    const uk_rpc_peer *p = uk_rpc_call_peer(call);
    if (uk_rpc_call_is_local(call) || p->origin == NULL) {
        uk_rpc_call_error(call, UK_E_METHOD_NOT_ALLOWED, "the local user needs no pairing", NULL);
        return;
    }
    uk_origin_access access = uk_policy_origin_access(opt->policy, p->origin);
    if (access == UK_ACCESS_ALLOWED || access == UK_ACCESS_PAIRED) {
        cJSON *r = paired_result(true);
        if (r == NULL)
            uk_rpc_call_error(call, UK_E_NO_MEMORY, NULL, NULL);
        else
            uk_rpc_call_result(call, r);
        return;
    }
    if (access != UK_ACCESS_PAIRABLE) {
        uk_rpc_call_error(call, UK_E_ORIGIN_NOT_ALLOWED, NULL, NULL);
        return;
    }
    if (uk_rpc_strikes(rpc, UK_STRIKES_PAIRING, p->origin, PAIRING_WINDOW_MS, false) >=
        PAIRING_STRIKES) {
        uk_rpc_call_error(call, UK_E_RATE_LIMITED, "the user declined this origin recently", NULL);
        return;
    }
    const words *w = lang();
    char whom[UK_ORIGIN_MAX + 64], desc[1024];
    who(call, w, whom, sizeof(whom));
    snprintf(desc, sizeof(desc), "%s %s", whom, w->pair);
    uk_prompt_text t = {.title = w->title, .description = desc, .ok = w->allow, .cancel = w->deny};
    pair_req *req = calloc(1, sizeof(*req));
    int rc = UK_E_NO_MEMORY;
    if (req != NULL) {
        req->call = call;
        rc = opt->prompt == NULL ? UK_E_PROMPT_UNAVAILABLE
                                 : uk_prompt_confirm(opt->prompt, &t, pair_answered, req, NULL);
    }
    if (rc != UK_OK) {
        free(req);
        uk_rpc_call_error(call, rc, NULL, NULL);
    }
}
