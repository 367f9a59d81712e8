/*
 * uk_prompt.h - ask the user for a PIN or a yes/no consent through a GnuPG pinentry program.
 *
 * Each dialog runs one pinentry child process (uv_spawn, stdin/stdout pipes, stderr to /dev/null)
 * spoken to in the Assuan protocol, asynchronously on the libuv loop: nothing here ever blocks.
 * Dialogs are shown ONE AT A TIME in FIFO order: the next child is started only once the previous
 * one has exited and been reaped, so the user never sees two stacked ukeyd dialogs.
 *
 * Program: uk_prompt_options.program when set (an absolute path), else the first executable of
 * /usr/bin/pinentry (Debian's alternative, like gpg-agent's default), /usr/bin/pinentry-gnome3,
 * -gtk2, -qt, -curses, -tty. No environment variable chooses it. When none is found, or the
 * configured one cannot be started, uk_prompt_new still succeeds and every dialog fails with
 * UK_E_PROMPT_UNAVAILABLE (a warning is logged).
 *
 * Child environment: only PATH, HOME, DISPLAY, WAYLAND_DISPLAY, XAUTHORITY,
 * DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR, LANG, LC_ALL, LC_CTYPE, LC_MESSAGES, TERM and
 * UK_PINENTRY_* (the scripted test pinentry), as they were when uk_prompt_new ran. When ukeyd's
 * stdin is a terminal, OPTION ttyname/ttytype are sent (as gpg-agent does); OPTION lc-ctype and
 * lc-messages come from LC_ALL / LC_CTYPE / LC_MESSAGES / LANG when set.
 *
 * Thread: every function, and every callback, on the loop thread only.
 *
 * Callback guarantees:
 *   - A call that takes a callback and returns an error never calls it.
 *   - A call that returns UK_OK calls its callback exactly once, always from the loop (from inside
 *     uv_run), never from inside a uk_prompt_* call: also for uk_prompt_cancel and uk_prompt_free,
 *     whose UK_E_CANCELLED callbacks run on a later loop iteration (before free's done).
 *   - Callbacks run in the order their results became known. A callback may call any uk_prompt_*
 *     function, uk_prompt_free included.
 *   - The result is delivered as soon as it is known; the child may still be exiting then (it is
 *     sent BYE, or killed: SIGTERM, then SIGKILL 2 s later). The next dialog waits for it.
 *
 * Errors given to callbacks:
 *   UK_OK                     PIN entered (pin set, possibly empty) / user said yes.
 *   UK_E_CONSENT_DENIED       the user pressed Cancel, closed the dialog or answered no
 *                             (Assuan ERR with GPG_ERR_CANCELED 99, NOT_CONFIRMED 114 or
 *                             FULLY_CANCELED 198 in its low 16 bits).
 *   UK_E_TIMEOUT              no answer within timeout_s (pinentry's own GPG_ERR_TIMEOUT 62, or
 *                             our timer at timeout_s + 1 s, which then kills the child).
 *   UK_E_PROMPT_UNAVAILABLE   no pinentry, it could not be started, it died before answering, or
 *                             it broke the protocol (bad greeting, garbage, a line over 1000
 *                             bytes, an INQUIRE, more than 4 KiB of answer data, any other ERR).
 *   UK_E_CANCELLED            uk_prompt_cancel, or uk_prompt_free with the request pending.
 *
 * Secrets: the PIN arrives in percent-escaped D lines; every buffer that held it is wiped, and it
 * is handed over in a uk_secret that the callback owns. Nothing here logs dialog texts or PINs.
 * The process must ignore SIGPIPE (ukeyd's main does): a pinentry may die while we write to it.
 *
 * Ownership: uk_prompt_new allocates; uk_prompt_free is the destructor (asynchronous, see there).
 * Texts passed in are copied (escaped) before the call returns.
 */
#ifndef UK_PROMPT_H
#define UK_PROMPT_H

#include <stddef.h>

#include <uv.h>

#include "uk_secret.h"

typedef struct uk_prompt uk_prompt;
typedef struct uk_prompt_req uk_prompt_req;

typedef struct uk_prompt_options {
    uv_loop_t *loop;     /* required */
    const char *program; /* pinentry path; NULL or "": chosen as described above */
    unsigned timeout_s;  /* per dialog; 0: 120 s. Sent as SETTIMEOUT; a timer started with the
                            child kills it 1 s after that if pinentry has not ended by itself. */
    size_t max_queue;    /* requests waiting + shown; 0: 16 */
} uk_prompt_options;

/*
 * Create the prompter. Errors: UK_E_INVALID_PARAMS (opt, opt->loop or out NULL),
 * UK_E_CONFIG_INVALID (program set but not an absolute path, or longer than PATH_MAX; logged),
 * UK_E_NO_MEMORY. A program that is absolute but missing or not executable is accepted with a
 * warning (it may be installed later); its dialogs fail with UK_E_PROMPT_UNAVAILABLE.
 * On error *out is untouched and nothing is left on the loop.
 */
int uk_prompt_new(const uk_prompt_options *opt, uk_prompt **out)
    __attribute__((warn_unused_result));

/*
 * Destroy the prompter: every request whose callback has not run yet (queued, shown, or answered
 * but not yet delivered) gets it with UK_E_CANCELLED from the loop; a shown dialog's child is
 * killed (SIGTERM, then SIGKILL after 2 s) and reaped; handles are closed; then done(ctx) is called
 * (done may be NULL) and the memory released. Run the loop until done: afterwards nothing of p is
 * left on it, so uv_loop_close() can return 0. p must not be used after this call, except from
 * callbacks that run before done (uk_prompt_cancel is then a no-op, submissions fail with
 * UK_E_CANCELLED). NULL-safe; calling it twice is a programming error. May be called from a
 * callback.
 */
void uk_prompt_free(uk_prompt *p, void (*done)(void *ctx), void *ctx);

typedef struct uk_prompt_text {
    const char *title;       /* SETTITLE */
    const char *description; /* SETDESC: may contain '\n' */
    const char *prompt;      /* SETPROMPT, e.g. "PIN:" (PIN dialogs only; ignored for confirm) */
    const char *error;       /* SETERROR, e.g. "Wrong PIN, 2 tries left"; NULL for none */
    const char *ok;          /* SETOK button text; NULL: pinentry's default */
    const char *cancel;      /* SETCANCEL */
} uk_prompt_text;

/*
 * Texts: each may be NULL or "" (not sent). Each must be valid UTF-8, and its command line
 * ("SETDESC " + the text percent-escaped: '%', and bytes < 0x20 such as '\n', become %XX) must fit
 * in the Assuan limit of 1000 bytes; otherwise UK_E_INVALID_PARAMS (never truncated).
 */

/* pin: owned by the callback (free with uk_secret_free); NULL unless err == UK_OK. */
typedef void (*uk_prompt_pin_fn)(void *arg, int err, uk_secret *pin);
typedef void (*uk_prompt_confirm_fn)(void *arg, int err); /* UK_OK = user said yes */

/*
 * Queue a dialog (GETPIN / CONFIRM). Returns UK_OK and calls cb exactly once later (never from
 * inside this call), or an error and never calls cb: UK_E_INVALID_PARAMS (p, text or cb NULL, a
 * text too long or not UTF-8), UK_E_BUSY (max_queue requests are waiting or shown),
 * UK_E_CANCELLED (uk_prompt_free was called), UK_E_NO_MEMORY. *req (req may be NULL) is a handle
 * valid until cb starts running. The PIN is returned as typed; the caller checks its length.
 */
int uk_prompt_get_pin(uk_prompt *p, const uk_prompt_text *text, uk_prompt_pin_fn cb, void *arg,
                      uk_prompt_req **req) __attribute__((warn_unused_result));
int uk_prompt_confirm(uk_prompt *p, const uk_prompt_text *text, uk_prompt_confirm_fn cb, void *arg,
                      uk_prompt_req **req) __attribute__((warn_unused_result));

/*
 * Cancel a queued or shown dialog (a shown one's child is killed). Its callback runs with
 * UK_E_CANCELLED from the loop, on a later iteration, never from inside this call; also when the
 * answer had already arrived but the callback had not run yet (a PIN received is then wiped).
 * NULL-safe; a second call is a no-op. Must not be called once the callback has started.
 */
void uk_prompt_cancel(uk_prompt_req *req);

/* The program chosen (for logs and `ukeyctl doctor`), borrowed; NULL when none was found. */
const char *uk_prompt_program(const uk_prompt *p);

#endif
