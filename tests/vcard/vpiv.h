/*
 * vpiv — a virtual PIV card (NIST SP 800-73-4) for tests and the demo.
 *
 * The engine is a pure function of (card state, C-APDU) -> R-APDU: it knows
 * nothing about sockets, vpcd or time. vpiv_vpcd.c puts it behind vpcd and
 * adds fault and timing injection; vpiv_state.c stores it in a file.
 *
 * Profiles: VPIV_PROFILE_YUBICO answers the vendor extensions most PIV tools
 * know (GET VERSION, GET SERIAL, GET METADATA, IMPORT KEY, SET MANAGEMENT
 * KEY, MOVE/DELETE KEY, RESET, SET PIN RETRIES); VPIV_PROFILE_GENERIC answers
 * them with 6D00 like a plain PIV card.
 *
 * Ownership: vpiv_card_new/vpiv_card_load return a card the caller frees with
 * vpiv_card_free. Not thread-safe: one card, one thread.
 * Errors: functions return 0 or -1 and print the cause on stderr (this is a
 * test program; the daemon has its own error table).
 */
#ifndef VPIV_H
#define VPIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vpiv_card vpiv_card;

typedef enum { VPIV_PROFILE_YUBICO = 0, VPIV_PROFILE_GENERIC = 1 } vpiv_profile;

/* Algorithm identifiers from SP 800-78-4 table 6-2 (and the vendor AES ids). */
enum {
    VPIV_ALG_3DES = 0x03,
    VPIV_ALG_RSA1024 = 0x06,
    VPIV_ALG_RSA2048 = 0x07,
    VPIV_ALG_AES128 = 0x08,
    VPIV_ALG_AES192 = 0x0A,
    VPIV_ALG_AES256 = 0x0C,
    VPIV_ALG_ECCP256 = 0x11,
    VPIV_ALG_ECCP384 = 0x14,
};

enum {
    VPIV_PIN_POLICY_DEFAULT = 0,
    VPIV_PIN_POLICY_NEVER = 1,
    VPIV_PIN_POLICY_ONCE = 2,
    VPIV_PIN_POLICY_ALWAYS = 3,
};

/* The largest C-APDU / R-APDU the engine handles (extended length). */
#define VPIV_MAX_APDU (65536 + 16)

typedef struct {
    vpiv_profile profile;
    bool ext_length;   /* accept extended-length APDUs, advertised in the ATR */
    uint32_t serial;   /* 0: random */
    size_t max_object; /* largest data object value; 0: default 8 KiB */
} vpiv_options;

/* A blank card: PIN 123456, PUK 12345678, default 3DES management key,
 * CHUID/CCC/Discovery/Key History objects, no keys. */
int vpiv_card_new(vpiv_card **out, const vpiv_options *opt);
void vpiv_card_free(vpiv_card *card);

/* Power-on/reset: clears security status, chaining and pending responses. */
void vpiv_card_reset(vpiv_card *card);

/* The ATR; returns its length (at most cap). */
size_t vpiv_card_atr(const vpiv_card *card, uint8_t *atr, size_t cap);

/* Processes one C-APDU and writes the R-APDU (data + SW1 SW2) to rapdu
 * (capacity at least VPIV_MAX_APDU). Never fails: errors are status words. */
size_t vpiv_card_apdu(vpiv_card *card, const uint8_t *capdu, size_t clen, uint8_t *rapdu);

/* True when persistent state changed since the last vpiv_card_clear_dirty. */
bool vpiv_card_dirty(const vpiv_card *card);
void vpiv_card_clear_dirty(vpiv_card *card);

/* Persistence (vpiv_state.c): a text file written atomically (temp file,
 * fsync, rename, fsync of the directory). */
int vpiv_card_save(const vpiv_card *card, const char *path);
int vpiv_card_load(vpiv_card **out, const char *path);

/* Provisioning helpers used by `vpiv provision`: put a key pair (generated
 * here) and a certificate signed by the given CA into a slot. */
typedef struct vpiv_demo_ca vpiv_demo_ca;
int vpiv_demo_ca_new(vpiv_demo_ca **out, const char *dir);
void vpiv_demo_ca_free(vpiv_demo_ca *ca);
int vpiv_card_provision_slot(vpiv_card *card, vpiv_demo_ca *ca, uint8_t slot, uint8_t alg,
                             const char *cn, long not_before_days, long not_after_days);

#endif
