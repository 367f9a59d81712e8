/*
 * uk_skf.h - GM/T 0016 (SKF) vendor modules as token sources: the loader, devices as cards, the
 * device scanner and the "skf" driver (docs/drivers.md, "SKF driver").
 *
 * Modules come only from the configuration (skf_modules: path, name, ulong_bytes), never from a
 * request.
 *
 * Loader: uk_skf_module_get dlopen()s a path (RTLD_NOW | RTLD_LOCAL) and fills the function
 * table of the adapter for the module's ULONG width (4 or 8; uk_skf_int.h), every entry a stub
 * until the module's own symbol replaces it. One instance per path (keyed by its realpath),
 * shared and refcounted; the last uk_skf_module_put dlclose()s it. The same file configured with
 * two widths is refused (MODULE_ERROR) rather than called with the wrong one.
 *
 * Devices: uk_skf_card_new makes the uk_card of one device (uk_card_int.h), named
 * "<module name>: <device name>"; uk_card_transmit answers UK_E_NOT_SUPPORTED (no APDUs), begin
 * checks SKF_GetDevState. uk_skf_card_dev tells the skf driver which module and device a card is.
 *
 * Scanner (uk_skf_source, uk_source.h): one thread per configured module lists the present
 * devices (SKF_EnumDev) at start, whenever the token layer sees a PC/SC change, and every
 * UK_SKF_RESCAN_MS otherwise. It never blocks in SKF_WaitForDevEvent: vendors' cancel functions
 * are missing or unreliable, and a wait that cannot be ended would hold the daemon at shutdown.
 *
 * Threads: the loader is thread-safe (one registry lock); a module is called from its scanner
 * and its devices' workers, one call at a time (a lock per instance: vendors' modules are rarely
 * thread-safe). Errors: UK_E_MODULE_ERROR (the module could not be loaded: logged
 * with the path and reason), UK_E_NO_MEMORY, UK_E_INVALID_PARAMS; SAR codes are translated by
 * uk__skf_err (uk_skf_int.h).
 */
#ifndef UK_SKF_H
#define UK_SKF_H

#include <stdbool.h>
#include <stddef.h>

#include "uk_card.h"
#include "uk_driver.h"
#include "uk_source.h"

/* Slow re-scan of a module's devices when nothing else wakes the scanner. */
#define UK_SKF_RESCAN_MS 2000u

typedef struct uk_skf_module uk_skf_module;

/* Loads (or shares) the module at path (absolute) with ULONG width ulong_bytes (4 or 8; 0 = 4);
 * name is for logs and reader names. */
int uk_skf_module_get(const char *path, const char *name, unsigned ulong_bytes, uk_skf_module **out)
    __attribute__((warn_unused_result));
/* Drops a reference; the last one unloads. NULL-safe. */
void uk_skf_module_put(uk_skf_module *m);
const char *uk_skf_module_name(const uk_skf_module *m);

/* A card for device dev (copied) of m (takes a reference on m), named name (copied). */
int uk_skf_card_new(uk_card **out, uk_skf_module *m, const char *dev, const char *name)
    __attribute__((warn_unused_result));
/* Whether card is an SKF device; then its module (borrowed) and device name (borrowed). */
bool uk_skf_card_dev(const uk_card *card, uk_skf_module **m, const char **dev);

/* SKF modules as a token source of the token layer. */
extern const uk_source_kind uk_skf_source;

/* "skf": accepts SKF device cards only (docs/drivers.md, "SKF driver"). */
extern const uk_driver uk_driver_skf;

#endif
