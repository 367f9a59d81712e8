/*
 * uk_piv.h - the PIV driver (NIST SP 800-73-4 over uk_card, plus the common
 * YubiKey-style vendor extensions when the card answers them).
 *
 * What it does per operation (APDU counts are for a card that advertises
 * extended length; without it add GET RESPONSEs of 256 bytes each):
 *   probe         SELECT PIV AID                                         1
 *   open          SELECT, GET VERSION (00 FD), then GET SERIAL (00 F8) on a
 *                 vendor card or GET DATA CHUID on a plain one            3
 *   list_certs    SELECT + GET DATA of all 24 certificate objects (9A 9C 9D
 *                 9E 82..95; retired ones are always read: see
 *                 docs/drivers.md for why Key History is not trusted)   25
 *   pin_status    SELECT, empty VERIFY (+ GET METADATA 80 if verified)  2-3
 *   verify_pin    SELECT, VERIFY                                         2
 *   sign          GENERAL AUTHENTICATE (after verify_pin in the same
 *                 transaction; +1 to learn the key's algorithm when
 *                 list_certs has not seen the slot)                      1
 *   generate_key  SELECT, management-key mutual auth (2), GENERATE       4
 *   put_cert      SELECT, management-key mutual auth (2), PUT DATA       4
 * Renewal staging (docs/drivers.md, "Renewal staging"; "+1" is GET METADATA
 * 9B, which vendor cards with metadata answer before the mutual auth):
 *   get_caps      nothing (from open)                                    0
 *   find_staging_slot  SELECT, GET DATA of the record, then per retired
 *                 slot not kept by the record: GET METADATA (vendor) and,
 *                 when it holds no key, GET DATA of its certificate  2 + 1..2 each
 *   move_key, delete_key  SELECT, mutual auth (2, +1), MOVE KEY (00 F6)  4-5
 *   delete_cert, write_record, update_key_history
 *                 SELECT, mutual auth (2, +1), PUT DATA                 4-5
 *   read_record   SELECT, GET DATA 5FFF55                                2
 *   get_public_key  SELECT, GET METADATA (vendor) or GET DATA of the
 *                 certificate                                            2
 *
 * Key ids are PIV key references in lower-case hex: "9a", "9c", "9d", "9e",
 * "82".."95".
 *
 * Thread: the reader's worker thread (like every uk_driver). The state is
 * not shared between threads.
 * Secrets: PIN and management key bytes are copied only into the APDU
 * buffer (wiped after each exchange) and into the state (the management key
 * from the options; wiped at close). APDU bodies are never logged.
 */
#ifndef UK_PIV_H
#define UK_PIV_H

#include <stdbool.h>
#include <stdint.h>

#include "uk_driver.h"

extern const uk_driver uk_driver_piv;

/*
 * The one translation of ISO 7816 status words into uk_err codes:
 *   9000 -> UK_OK; 63Cx -> UK_E_PIN_INCORRECT (*retries = x; x = 0 ->
 *   UK_E_PIN_LOCKED); 6300 -> UK_E_PIN_INCORRECT (retries unknown, -1);
 *   6983 -> UK_E_PIN_LOCKED (0); 6982 -> UK_E_SECURITY_STATUS;
 *   6A82 -> UK_E_NOT_FOUND; 6A88 -> UK_E_KEY_NOT_FOUND;
 *   6D00, 6E00, 6A81 -> UK_E_NOT_SUPPORTED; anything else -> UK_E_CARD_ERROR.
 * retries may be NULL; it is set to -1 for every other status word.
 * Logs the status word (never data) with the caller's file, line and
 * function, once: DEBUG for "not found", NOTICE for a wrong PIN, WARNING for
 * the rest; nothing for 9000.
 */
int uk_piv_sw_to_err_at(uint16_t sw, int *retries, const char *file, int line, const char *func);
#define uk_piv_sw_to_err(sw, retries)                                                              \
    uk_piv_sw_to_err_at((sw), (retries), __FILE__, __LINE__, __func__)

/* What open learned about the card (for renewal: where keys may go). */
typedef struct uk_piv_info {
    bool vendor;        /* answers GET VERSION (YubiKey-compatible) */
    uint8_t version[3]; /* vendor firmware version, 0.0.0 if none */
    bool metadata;      /* GET METADATA (vendor >= 5.3.0) */
    bool move_key;      /* MOVE KEY / DELETE KEY (vendor >= 5.7.0) */
    bool ext_length;    /* extended-length APDUs (from the ATR) */
} uk_piv_info;

/* state is the pointer uk_driver_piv.open returned. No card I/O. */
void uk_piv_get_info(const void *state, uk_piv_info *info);

#endif
