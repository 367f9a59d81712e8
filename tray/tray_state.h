/*
 * tray_state.h - what the tray shows and when it reminds, as plain C: no GTK, no display, no
 * socket. The tray (tray_main.c) feeds it the results of token.list, cert.list and renewal.list
 * as cJSON trees and asks it for the icon state, the menu, the notifications that are due and the
 * next moment anything changes. tests/unit/test_tray_state.c drives it with JSON text and fixed
 * clocks.
 *
 * Texts are translated with gettext in the domain UK_TRAY_DOMAIN (tray/po/); in the C locale
 * they are English. Every function runs on the caller's thread (the GTK main loop) and never
 * blocks, except uk_tray_store_load/save and uk_tray_config_load, which read or write one small
 * file.
 */
#ifndef UK_TRAY_STATE_H
#define UK_TRAY_STATE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define UK_TRAY_DOMAIN "ukeyd-tray"

/* Bounds: more keys or certificates than this are an error, never silently cut. */
#define UK_TRAY_MAX_TOKENS    16
#define UK_TRAY_MAX_CERTS     32
#define UK_TRAY_MAX_REMINDERS 8
#define UK_TRAY_MAX_RENEWALS  64
/* The store keeps at most this many certificates (the most recently seen ones). */
#define UK_TRAY_STORE_MAX_CERTS 256

/* The icon, in order of precedence: the first that applies wins; among certificates the worst
 * (expired, then expiring, then not yet valid) wins. */
typedef enum uk_tray_state {
    UK_TRAY_DAEMON_DOWN = 0, /* ukeyd not running (no answer on its socket) */
    UK_TRAY_NO_KEY,          /* no key in any reader (or pcscd not running) */
    UK_TRAY_EXPIRED,
    UK_TRAY_EXPIRING,
    UK_TRAY_NOT_YET_VALID,
    UK_TRAY_VALID,
} uk_tray_state;

/* "daemon-down", "no-key", "expired", "expiring", "not-yet-valid", "valid". */
const char *uk_tray_state_name(uk_tray_state s);
/* A freedesktop icon name for the state (present in the Adwaita theme). */
const char *uk_tray_state_icon(uk_tray_state s);

typedef enum uk_tray_cert_status {
    UK_TRAY_CERT_VALID = 0,
    UK_TRAY_CERT_EXPIRING,
    UK_TRAY_CERT_EXPIRED,
    UK_TRAY_CERT_NOT_YET_VALID,
    UK_TRAY_CERT_UNREADABLE, /* the entry had "error" */
} uk_tray_cert_status;

typedef struct uk_tray_cert {
    char key[16];         /* "9a" */
    char cn[256];         /* subject CN, "" when none */
    char org[256];        /* subject O, "" when none */
    char fingerprint[72]; /* sha256 hex, the certificate's identity in the store */
    time_t not_before;
    time_t not_after;
    char daemon_status[24]; /* the status ukeyd computed ("valid", "expiring", ...) */
    bool unreadable;
} uk_tray_cert;

typedef struct uk_tray_token {
    char id[128]; /* "" for a reader without a key */
    char reader[256];
    char label[256];
    bool present;
    bool certs_known;     /* cert.list answered */
    char certs_error[32]; /* the reason cert.list failed with ("CARD_BUSY"), or "" */
    uk_tray_cert certs[UK_TRAY_MAX_CERTS];
    size_t n_certs;
    bool just_inserted; /* a token.inserted event named it since the last reminder check */
} uk_tray_token;

typedef struct uk_tray_model {
    bool daemon_up;
    bool no_service; /* token.list said NO_SERVICE: pcscd is not running */
    uk_tray_token tokens[UK_TRAY_MAX_TOKENS];
    size_t n_tokens;
    size_t renewals_in_progress; /* prepared or written renewals (renewal.list) */
    /* renewal ids in state "written" (waiting for their not-before) and "done" */
    char written_ids[UK_TRAY_MAX_RENEWALS][48];
    size_t n_written;
    char done_ids[UK_TRAY_MAX_RENEWALS][48];
    size_t n_done;
    /* 0: use the status ukeyd sends; else decide valid/expiring with this many days here. */
    unsigned expiring_days;
} uk_tray_model;

/* Empties the model (daemon down, nothing known). */
void uk_tray_model_init(uk_tray_model *m, unsigned expiring_days);

/* ukeyd answered (up) or the connection is gone (down: tokens are forgotten). */
void uk_tray_model_set_daemon(uk_tray_model *m, bool up);

/*
 * The answer to token.list: result (the "result" member) or, on an error, reason (e.g.
 * "NO_SERVICE") with result NULL. Certificates of tokens still present with the same id are kept.
 * Returns 0, or -1 when the result does not have the documented shape or exceeds the bounds
 * (the model is then unchanged).
 */
int uk_tray_model_set_tokens(uk_tray_model *m, const cJSON *result, const char *reason);

/* The answer to cert.list for token_id: result, or reason on an error. Returns 0, or -1 when the
 * token is unknown or the result has the wrong shape. */
int uk_tray_model_set_certs(uk_tray_model *m, const char *token_id, const cJSON *result,
                            const char *reason);

/* The answer to renewal.list. Returns 0 or -1 (wrong shape; unchanged). */
int uk_tray_model_set_renewals(uk_tray_model *m, const cJSON *result);

/* Marks the token a token.inserted event named (for the "needs repair" reminder). */
void uk_tray_model_mark_inserted(uk_tray_model *m, const char *token_id);

/* The status of c at now (using m->expiring_days when set) and its whole days left. */
uk_tray_cert_status uk_tray_cert_status_at(const uk_tray_model *m, const uk_tray_cert *c,
                                           time_t now, long long *days_left);

/* The icon state at now. */
uk_tray_state uk_tray_model_state(const uk_tray_model *m, time_t now);

/* One line for the tooltip / the menu's first line, translated: "Certificate valid: 200 days
 * left". Written into buf (always terminated). */
void uk_tray_model_summary(const uk_tray_model *m, time_t now, char *buf, size_t size);

/* ---- the menu ----------------------------------------------------------------------------- */

typedef enum uk_tray_item_kind {
    UK_TRAY_ITEM_INFO = 0, /* insensitive text */
    UK_TRAY_ITEM_KEY,      /* insensitive, a key's heading */
    UK_TRAY_ITEM_SEPARATOR,
    UK_TRAY_ITEM_ACTION,
} uk_tray_item_kind;

typedef enum uk_tray_action {
    UK_TRAY_ACTION_NONE = 0,
    UK_TRAY_ACTION_RENEW,  /* "Open the renewal page" */
    UK_TRAY_ACTION_DOCTOR, /* "Run check" */
    UK_TRAY_ACTION_QUIT,
} uk_tray_action;

typedef struct uk_tray_item {
    uk_tray_item_kind kind;
    uk_tray_action action;
    bool sensitive;
    int indent; /* 0 or 1 */
    char text[512];
} uk_tray_item;

#define UK_TRAY_MAX_ITEMS (8 + UK_TRAY_MAX_TOKENS * (2 + 3 * 4))

/*
 * The menu at now: the summary, each present key with its certificates (CN and O, start and end
 * date in the local time zone, days left or until valid), then the actions. have_renewal_url
 * makes "Open the renewal page" sensitive. Fills items (UK_TRAY_MAX_ITEMS) and returns the count.
 */
size_t uk_tray_menu_build(const uk_tray_model *m, time_t now, bool have_renewal_url,
                          uk_tray_item *items);

/* ---- reminders ---------------------------------------------------------------------------- */

/* What has been said about one certificate (remembered across restarts). */
typedef struct uk_tray_store_cert {
    char fingerprint[72];
    unsigned notified[UK_TRAY_MAX_REMINDERS]; /* thresholds already announced */
    size_t n_notified;
    bool expired_notified;
    bool seen_not_yet_valid;
    bool valid_notified;
    time_t last_seen;
} uk_tray_store_cert;

typedef struct uk_tray_store {
    uk_tray_store_cert certs[UK_TRAY_STORE_MAX_CERTS];
    size_t n_certs;
    char renewals_notified[UK_TRAY_MAX_RENEWALS][48]; /* "written" renewals announced when done */
    size_t n_renewals_notified;
    char renewals_waiting[UK_TRAY_MAX_RENEWALS][48]; /* seen "written", not announced yet */
    size_t n_renewals_waiting;
    bool dirty; /* changed since loaded: save it */
} uk_tray_store;

typedef enum uk_tray_note_kind {
    UK_TRAY_NOTE_EXPIRING = 0, /* threshold reached: days left */
    UK_TRAY_NOTE_EXPIRED,      /* found expired (once per certificate) */
    UK_TRAY_NOTE_REPAIR,       /* a key with an expired certificate was inserted */
    UK_TRAY_NOTE_NOW_VALID,    /* a renewed (not yet valid) certificate became valid */
} uk_tray_note_kind;

typedef struct uk_tray_note {
    uk_tray_note_kind kind;
    unsigned threshold; /* EXPIRING: the threshold announced (30, 7, 1) */
    long long days_left;
    char summary[256]; /* translated title */
    char body[768];    /* translated text */
} uk_tray_note;

#define UK_TRAY_MAX_NOTES 16

/*
 * The notifications due at now, given the thresholds (days, any order; at most
 * UK_TRAY_MAX_REMINDERS): for each certificate on a present key, the smallest threshold it has
 * reached and not been announced yet (thresholds above it are then marked too, so a certificate
 * first seen with 5 days left gets one notification, "7 days", not three); an expired certificate
 * once; a certificate seen not yet valid and now valid once; a renewal seen "written" and now done
 * once; and a "needs repair" note for each key marked inserted that holds an expired certificate
 * (every insertion; the mark is cleared). Certificates of one key that reach the same threshold
 * together get one note. Updates store (dirty when changed) and returns the number of notes
 * written to notes (at most UK_TRAY_MAX_NOTES; beyond that a round's notes are dropped).
 */
size_t uk_tray_reminders_due(uk_tray_model *m, uk_tray_store *store, const unsigned *thresholds,
                             size_t n_thresholds, time_t now, uk_tray_note *notes);

/*
 * The next moment after now at which the state, a day count or a reminder may change (a
 * certificate's not-before, a whole day before its not-after, one second past it), capped at
 * the next local midnight. now + 86400 at most; never <= now.
 */
time_t uk_tray_next_wakeup(const uk_tray_model *m, time_t now);

/* Store <-> JSON text. parse: 0 or -1 (not the documented shape; *s is then empty). */
void uk_tray_store_init(uk_tray_store *s);
int uk_tray_store_parse(uk_tray_store *s, const char *text, size_t len);
/* New string (caller frees with free()), or NULL when out of memory. */
char *uk_tray_store_print(const uk_tray_store *s);

/* Reads path into s: 0 (also for a missing file: empty store), -1 for an unreadable or damaged
 * file (the store is empty; the caller logs it). */
int uk_tray_store_load(uk_tray_store *s, const char *path);
/* Writes s to path atomically (a temporary file in the same directory, mode 0600, fsync, rename),
 * creating the directory (0700) when missing. 0 or -1 (errno set). Clears dirty on success. */
int uk_tray_store_save(uk_tray_store *s, const char *path);

/* ---- the tray's own settings ($XDG_CONFIG_HOME/ukeyd/tray.json) ------------------------------ */

typedef struct uk_tray_config {
    char renewal_url[1024]; /* "" when not set */
    unsigned expiring_days; /* 0: ukeyd's status */
    unsigned reminder_days[UK_TRAY_MAX_REMINDERS];
    size_t n_reminder_days;
} uk_tray_config;

/* Defaults: no URL, ukeyd's expiring status, reminders at 30, 7 and 1 days. */
void uk_tray_config_init(uk_tray_config *c);
/* Parses text: 0, or -1 with a message in err (unknown key, wrong type, out of range, an URL that
 * is not http(s)://). On -1, c holds the defaults. */
int uk_tray_config_parse(uk_tray_config *c, const char *text, size_t len, char *err,
                         size_t err_size);
/* Reads path (a missing file: defaults, 0). */
int uk_tray_config_load(uk_tray_config *c, const char *path, char *err, size_t err_size);

#endif
