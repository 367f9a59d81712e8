/*
 * uk_pcsc.h - the PC/SC adapter, private to the token layer.
 *
 * uk_pcsc.c is the only file of ukeyd that includes winscard.h: nothing
 * here exposes a PC/SC type. It offers three things:
 *
 *   - uk__pcsc_err(): the one translation of SCARD_* codes into uk_err,
 *     logging the native name, the PC/SC call, file and line once;
 *   - the reader monitor: a thread blocked in SCardGetStatusChange (the
 *     readers plus "\\?PnP?\Notification") that reports every change as a
 *     snapshot, and survives pcscd stopping and starting again;
 *   - card connections (struct uk_card, the object drivers see through
 *     uk_card.h): one per reader, used on that reader's worker thread only.
 *
 * Card connections are short-lived on purpose: uk__card_begin() connects in
 * shared mode and begins a transaction, uk__card_end() ends it and
 * disconnects (SCARD_LEAVE_CARD). Between operations ukeyd holds no
 * connection, so another program may still open the card exclusively (and
 * gets no SHARING_VIOLATION because of us).
 */
#ifndef UK_PCSC_H
#define UK_PCSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uk_card.h"
#include "uk_card_int.h"
#include "uk_token_internal.h"

/* ---- error translation ------------------------------------------------ */

/*
 * Translates the PC/SC return code rv of the call named call into a uk_err
 * and logs "call: SCARD_NAME (0x...) -> REASON" once, with the caller's
 * file/line/function; expected conditions (removed card, sharing violation,
 * no service, cancelled, timeout) at debug level, the rest as warnings.
 * reader may be NULL. SCARD_S_SUCCESS gives UK_OK and logs nothing.
 * Any thread.
 */
int uk__pcsc_err_at(long rv, const char *call, const char *reader, const char *file, int line,
                    const char *func);
#define uk__pcsc_err(rv, call, reader)                                                             \
    uk__pcsc_err_at((rv), (call), (reader), __FILE__, __LINE__, __func__)

/* "SCARD_E_SHARING_VIOLATION" or "SCARD_UNKNOWN". Any thread. */
const char *uk__pcsc_name(long rv);

/* ---- reader monitor --------------------------------------------------- */

/* One reader as SCardGetStatusChange last reported it. */
typedef struct uk__reader_state {
    char name[UK__READER_NAME_MAX];
    bool present;    /* a card is in the reader (possibly mute) */
    bool mute;       /* a card that does not answer */
    bool exclusive;  /* another program holds it with SCARD_SHARE_EXCLUSIVE */
    unsigned events; /* pcsc-lite's insert/remove counter for this reader */
    uint8_t atr[UK__ATR_MAX];
    size_t atr_len;
} uk__reader_state;

/* What the monitor reports: every reader, or that pcscd cannot be reached. */
typedef struct uk__pcsc_snapshot {
    int service; /* UK_OK, or UK_E_NO_SERVICE (then n == 0) */
    size_t n;
    uk__reader_state readers[UK__READERS_MAX];
} uk__pcsc_snapshot;

typedef struct uk__pcsc_monitor uk__pcsc_monitor;

/*
 * Called on the monitor thread with a snapshot it now owns (free()), after
 * the first scan and after every change. exited() is called once, last,
 * when the thread is about to return (after uk__pcsc_monitor_stop).
 */
typedef struct uk__pcsc_monitor_cbs {
    void (*snapshot)(void *ctx, uk__pcsc_snapshot *snap);
    void (*exited)(void *ctx);
    void *ctx;
} uk__pcsc_monitor_cbs;

/*
 * Starts the monitor thread. It establishes its own SCARDCONTEXT, retrying
 * while pcscd is not there with back-off (UK__SERVICE_RETRY_MIN_MS doubling
 * to _MAX_MS), then by watching for pcscd's socket (PCSCLITE_CSOCK_NAME, read
 * here, or libpcsclite's default) with inotify instead of polling; every
 * wait ends at once on uk__pcsc_monitor_cancel. Logs "pcscd is back" when a
 * lost service returns. Errors: UK_E_NO_MEMORY, UK_E_INTERNAL. Loop thread.
 */
int uk__pcsc_monitor_start(uk__pcsc_monitor **out, const uk__pcsc_monitor_cbs *cbs, uk__stop *stop)
    __attribute__((warn_unused_result));

/*
 * Asks the monitor to leave: call after uk__stop_set(stop). Wakes a wait
 * between attempts and sends SCardCancel to end a blocking
 * SCardGetStatusChange. A cancel that arrives
 * just before the thread enters the call is lost (pcsc-lite only cancels a
 * call in progress), so the caller repeats this until exited() was called.
 * Loop thread.
 */
void uk__pcsc_monitor_cancel(uk__pcsc_monitor *m);

/* Joins the thread (call after exited()) and frees the monitor. */
void uk__pcsc_monitor_free(uk__pcsc_monitor *m);

/* ---- card connections (the reader's worker thread only) ---------------- */

/* A PC/SC connection object for reader (copied). No PC/SC call is made here. */
int uk__card_new(uk_card **out, const char *reader, uk__stop *stop)
    __attribute__((warn_unused_result));

/*
 * The PC/SC kind of uk_card (uk_card_int.h): uk__card_begin connects
 * (shared, T=1 or T=0) and begins a transaction, establishing the worker's
 * own context first when there is none or pcscd was restarted. Errors:
 * UK_E_CARD_BUSY (SCARD_E_SHARING_VIOLATION: another program holds the card
 * exclusively; one attempt, the caller retries), UK_E_CARD_REMOVED,
 * UK_E_NO_READER, UK_E_NO_SERVICE, UK_E_CARD_ERROR; a reset card is
 * reconnected there (SCardReconnect, SCARD_LEAVE_CARD). uk__card_end ends the
 * transaction and disconnects (SCARD_LEAVE_CARD); uk__card_reconnect after
 * UK_E_CARD_RESET does SCardReconnect and a new transaction; uk__card_forget
 * drops the cached ATR; uk__card_free releases the context.
 */

/* APDUs sent through this connection since it was made (for tests, logs). */
uint64_t uk__card_transmits(const uk_card *card);

#endif
