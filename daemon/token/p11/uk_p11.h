/*
 * uk_p11.h - PKCS#11 modules as token sources: the module loader, module
 * slots as cards, the slot scanner and the "p11" driver.
 *
 * Modules come only from the configuration (pkcs11_modules, paths written by
 * the administrator or the user in their config file), never from a request.
 *
 * Loader: uk_p11_module_get dlopen()s a path (RTLD_NOW | RTLD_LOCAL), asks
 * C_GetInterface("PKCS 11") where the module has it, else C_GetFunctionList,
 * and copies the functions ukeyd uses into its own table whose every slot
 * starts as a stub answering CKR_FUNCTION_NOT_SUPPORTED: a module that lacks a
 * function (or gives a NULL pointer) is never called through NULL. Then
 * C_Initialize(NULL), without CKF_OS_LOCKING_OK: the scanner and the workers
 * use the module from several threads, and ukeyd keeps their calls apart
 * itself, one call at a time per module (uk__p11_C_*, uk_p11_int.h), because
 * OpenSC 0.23 with OS locking deadlocks in itself when the card goes during
 * C_Login. CKR_CRYPTOKI_ALREADY_INITIALIZED (another
 * library in this process initialised it) is accepted, and then ukeyd does
 * not C_Finalize it either. One instance per path, shared and refcounted:
 * the last uk_p11_module_put calls C_Finalize and dlclose.
 *
 * Slots: uk_p11_card_new makes the uk_card of one slot (uk_card_int.h);
 * its uk_card_transmit answers UK_E_NOT_SUPPORTED (no APDUs), its begin
 * checks that the slot still holds a token. uk_p11_card_slot tells the p11
 * driver which module and slot a card is.
 *
 * Scanner: one thread per configured module loads it and reports its slots
 * as snapshots, at start, whenever uk_p11_scan_wake is called (the token
 * layer calls it on every PC/SC change: a module over PC/SC sees the same
 * readers), at every C_WaitForSlotEvent(CKF_DONT_BLOCK) event, and every
 * UK_P11_RESCAN_MS otherwise. It never blocks in C_WaitForSlotEvent: ending
 * that wait needs C_Finalize, which would pull the module from under the
 * workers sharing it.
 *
 * Ownership: uk_p11_module_get/put; uk_p11_card_new takes its own reference;
 * uk_p11_scan_start/free. Snapshots are malloc'ed and passed to the callback,
 * which owns them.
 * Threads: the loader is thread-safe (one registry lock); a module's
 * functions are called from the scanner and the workers, one call at a
 * time. Callbacks run on the scanner thread. uk_p11_scan_wake/cancel: any
 * thread.
 * Errors: UK_E_MODULE_ERROR (the module could not be loaded or initialised:
 * logged with the path and the reason), UK_E_NO_MEMORY, UK_E_INVALID_PARAMS;
 * PKCS#11 return codes are translated by uk__p11_err (uk_p11_int.h).
 */
#ifndef UK_P11_H
#define UK_P11_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uk_card.h"
#include "uk_driver.h"
#include "uk_source.h"

/* Slots reported per module; further slots are ignored (logged). */
#define UK_P11_SLOTS_MAX UK_SOURCE_SLOTS_MAX
/* Slow re-scan of a module's slots when nothing else wakes the scanner. */
#define UK_P11_RESCAN_MS 2000u
/* A slot's reader name: "<module name>: <slot description>". */
#define UK_P11_NAME_MAX UK_SOURCE_NAME_MAX

typedef struct uk_p11_module uk_p11_module;

/* Loads (or shares) the module at path (absolute; instances are keyed by its
 * realpath, so two names of one file share one); name is for logs and reader
 * names. */
int uk_p11_module_get(const char *path, const char *name, uk_p11_module **out)
    __attribute__((warn_unused_result));
/* Drops a reference; the last one finalises and unloads. NULL-safe. */
void uk_p11_module_put(uk_p11_module *m);
const char *uk_p11_module_name(const uk_p11_module *m);

/* ---- slots as cards ----------------------------------------------------- */

/* A card for slot of m (takes a reference on m), named name (copied). */
int uk_p11_card_new(uk_card **out, uk_p11_module *m, unsigned long slot, const char *name)
    __attribute__((warn_unused_result));
/* Whether card is a module slot; then its module (borrowed) and slot id. */
bool uk_p11_card_slot(const uk_card *card, uk_p11_module **m, unsigned long *slot);

/* ---- the scanner ---------------------------------------------------------- */

/* Slots and snapshots are the token layer's module-source types (uk_source.h); mod is the
 * uk_p11_module. */
typedef uk_source_slot uk_p11_slot_state;
typedef uk_source_snapshot uk_p11_snapshot;

typedef struct uk_p11_scan uk_p11_scan;

typedef uk_source_cbs uk_p11_scan_cbs;

/* Starts the scanner thread of the module at cfg->path (cfg copied: path, name, token_label; a
 * slot whose token has another label is reported empty). source is passed back. */
int uk_p11_scan_start(uk_p11_scan **out, const uk_source_config *cfg, size_t source,
                      const uk_p11_scan_cbs *cbs) __attribute__((warn_unused_result));
/* Re-scan soon (a PC/SC change). Any thread. */
void uk_p11_scan_wake(uk_p11_scan *s);
/* Ask the thread to leave; exited() follows. Any thread. */
void uk_p11_scan_cancel(uk_p11_scan *s);
/* Joins (after exited()), drops its module reference and frees. NULL-safe. */
void uk_p11_scan_free(uk_p11_scan *s);

/* ---- the driver ----------------------------------------------------------- */

/* "p11": accepts module-slot cards only (docs/drivers.md, "PKCS#11 driver"). */
extern const uk_driver uk_driver_p11;

/* PKCS#11 modules as a token source of the token layer (uk_source.h). */
extern const uk_source_kind uk_p11_source;

#endif
