/* Internal to the PIV driver: the APDU layer, BER-TLV helpers, the state. */
#ifndef UK_PIV_INT_H
#define UK_PIV_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uk_card.h"
#include "uk_driver.h"
#include "uk_piv.h"

/* Largest data object value we read or write (a certificate container).
 * SP 800-73-4 containers are under 2 KiB, vendor cards hold about 3 KiB;
 * 16 KiB leaves room and bounds what a hostile card can make us hold. */
#define UK__PIV_MAX_OBJECT (16u * 1024u)
/* Largest decompressed certificate (CertInfo gzip bit). */
#define UK__PIV_MAX_CERT (16u * 1024u)
/* Largest command data we ever send (a PUT DATA of one object). */
#define UK__PIV_MAX_DATA (UK__PIV_MAX_OBJECT + 64u)

enum {
    UK__PIV_INS_VERIFY = 0x20,
    UK__PIV_INS_CHANGE_REFERENCE = 0x24,
    UK__PIV_INS_GENERATE = 0x47,
    UK__PIV_INS_GENERAL_AUTH = 0x87,
    UK__PIV_INS_SELECT = 0xA4,
    UK__PIV_INS_GET_RESPONSE = 0xC0,
    UK__PIV_INS_GET_DATA = 0xCB,
    UK__PIV_INS_PUT_DATA = 0xDB,
    UK__PIV_INS_MOVE_KEY = 0xF6, /* vendor: P1 destination (FF: delete), P2 source */
    UK__PIV_INS_GET_METADATA = 0xF7,
    UK__PIV_INS_GET_SERIAL = 0xF8,
    UK__PIV_INS_GET_VERSION = 0xFD,
};

/* SP 800-78-4 algorithm identifiers (+ vendor AES and large RSA). */
enum {
    UK__PIV_ALG_3DES = 0x03,
    UK__PIV_ALG_RSA3072 = 0x05,
    UK__PIV_ALG_RSA1024 = 0x06,
    UK__PIV_ALG_RSA2048 = 0x07,
    UK__PIV_ALG_AES128 = 0x08,
    UK__PIV_ALG_AES192 = 0x0A,
    UK__PIV_ALG_AES256 = 0x0C,
    UK__PIV_ALG_ECCP256 = 0x11,
    UK__PIV_ALG_ECCP384 = 0x14,
    UK__PIV_ALG_RSA4096 = 0x16,
};

#define UK__PIV_KEY_PIN 0x80
#define UK__PIV_KEY_MGM 0x9B

/* Objects of renewal staging: Key History (SP 800-73-4) and the ukeyd card
 * record, a vendor-range object that yubico-piv-tool, ykman and the YubiKey
 * minidriver leave alone (they use 5FFF00 admin data, 5FFF01 attestation,
 * 5FFF10 MSCMAP, 5FFF11..15 MSROOTS). docs/drivers.md, "Renewal staging". */
#define UK__PIV_OBJ_KEY_HISTORY 0x5FC10Cu
#define UK__PIV_OBJ_RECORD      0x5FFF55u

/* ---- APDU layer (uk_piv_apdu.c) --------------------------------------- */

typedef struct uk__piv_io {
    uk_card *card; /* set at the start of each operation */
    bool ext;      /* the card takes extended-length APDUs */
    uint8_t *tx;   /* one C-APDU; wiped after each exchange */
    uint8_t *rx;   /* one R-APDU (UK_CARD_MAX_RESPONSE); wiped after each exchange */
} uk__piv_io;

int uk__piv_io_init(uk__piv_io *io, uk_card *card) __attribute__((warn_unused_result));
void uk__piv_io_close(uk__piv_io *io);

/*
 * Sends one command (INS P1 P2 + data) and collects its whole answer:
 * command chaining (CLA 10) when data does not fit one short APDU and the
 * card has no extended length, GET RESPONSE after 61xx, one resend after
 * 6Cxx. Le is sent iff cap > 0; the answer's data goes to out[0..cap).
 * Returns UK_OK with *sw set (whatever it is: the caller maps it with
 * uk_piv_sw_to_err), a transport error of uk_card_transmit, UK_E_CARD_ERROR
 * for a response that breaks the protocol, or UK_E_LIMIT_EXCEEDED when the
 * answer does not fit cap. Only the data of a 9000 answer is meaningful.
 */
int uk__piv_transceive(uk__piv_io *io, uint8_t ins, uint8_t p1, uint8_t p2, const uint8_t *data,
                       size_t len, uint8_t *out, size_t cap, size_t *out_len, uint16_t *sw)
    __attribute__((warn_unused_result));

/* SELECT the PIV application (accepting its FCI). UK_E_NOT_SUPPORTED when
 * the card has no PIV application. */
int uk__piv_select(uk__piv_io *io) __attribute__((warn_unused_result));

/* GET DATA of one object (tag 5FC1xx, 7E...): the whole answer, 53 wrapper
 * included, into out (cap). *sw as for uk__piv_transceive. */
int uk__piv_get_data(uk__piv_io *io, uint32_t tag, uint8_t *out, size_t cap, size_t *out_len,
                     uint16_t *sw) __attribute__((warn_unused_result));

/* Whether the ATR's historical bytes advertise extended Lc/Le (card
 * capabilities, compact-TLV tag 7, third byte bit 0x40). */
bool uk__piv_atr_ext_length(const uint8_t *atr, size_t len);

/* ---- BER-TLV (uk_piv_tlv.c) ------------------------------------------- */

/* Reads one TLV at *p (advancing it): 1 read, 0 at end, -1 malformed (tag
 * over 3 bytes, length form other than 1..4 bytes, value past end). */
int uk__piv_tlv_next(const uint8_t **p, const uint8_t *end, uint32_t *tag, const uint8_t **val,
                     size_t *len);
/* The first TLV with tag at this level: 1 found, 0 absent, -1 malformed. */
int uk__piv_tlv_find(const uint8_t *p, size_t n, uint32_t tag, const uint8_t **val, size_t *len);
/* The one TLV that makes up all of p[0..n): 1 if it has tag, -1 otherwise. */
int uk__piv_tlv_only(const uint8_t *p, size_t n, uint32_t tag, const uint8_t **val, size_t *len);

/* A writer over caller storage; overflow sticks. */
typedef struct uk__piv_buf {
    uint8_t *p;
    size_t len;
    size_t cap;
    bool overflow;
} uk__piv_buf;

void uk__piv_buf_init(uk__piv_buf *b, uint8_t *p, size_t cap);
void uk__piv_buf_put(uk__piv_buf *b, const void *v, size_t n);
/* Tag and definite length (short or 81/82/83 form). */
void uk__piv_buf_tl(uk__piv_buf *b, uint32_t tag, size_t len);
void uk__piv_buf_tlv(uk__piv_buf *b, uint32_t tag, const void *v, size_t n);

/* ---- driver state (uk_piv.c) ------------------------------------------ */

typedef struct uk__piv_state {
    uk__piv_io io;
    uk_piv_info info;
    /* SP 800-78 algorithm of the key in each slot, 0 when not known yet:
     * learned from list_certs (certificate), GET METADATA or generate_key. */
    uint8_t key_alg[256];
    uint8_t mgm_key[32]; /* from uk_driver_options; wiped at close */
    size_t mgm_key_len;
    bool allow_default_mgm_key;
} uk__piv_state;

/* "9a" -> 0x9A for the slots that hold asymmetric keys; false otherwise. */
bool uk__piv_slot_parse(const char *key_id, uint8_t *slot);
/* 0x9A -> "9a". */
void uk__piv_slot_name(uint8_t slot, char out[UK_KEY_ID_MAX]);
/* Certificate object tag of a key slot; 0 if the slot has none. */
uint32_t uk__piv_slot_object(uint8_t slot);

/* Constant-time comparison. */
bool uk__piv_mem_equal(const uint8_t *a, const uint8_t *b, size_t n);

/* ---- operations in their own files ------------------------------------ */

int uk__piv_list_certs(void *state, uk_card *card, uk_token_cert **certs, size_t *n);
/*
 * Parses a certificate container (the GET DATA answer: 53 { 70 cert, 71
 * certinfo, FE lrc }). UK_OK with *der NULL for an empty object; UK_OK with
 * a malloc'ed DER certificate (decompressed when CertInfo says gzip) and its
 * key's SP 800-78 algorithm in *alg (0 if not one PIV signs with); or
 * UK_E_CERT_INVALID.
 */
int uk__piv_parse_cert_object(const uint8_t *obj, size_t len, uint8_t **der, size_t *der_len,
                              uint8_t *alg) __attribute__((warn_unused_result));

/* Management-key mutual authentication (uk_piv_admin.c); after SELECT. */
int uk__piv_mgm_authenticate(uk__piv_state *st) __attribute__((warn_unused_result));
/* Public key contents (81 n, 82 e | 86 point: inside 7F49, or GET METADATA
 * tag 04) of SP 800-78 algorithm alg -> malloc'ed SPKI DER, checked to be a
 * key of that algorithm (else KEY_REJECTED). NOT_SUPPORTED for other algs. */
int uk__piv_pub_to_spki(uint8_t alg, const uint8_t *v, size_t l, uint8_t **spki, size_t *spki_len)
    __attribute__((warn_unused_result));

int uk__piv_generate_key(void *state, uk_card *card, const char *key_id, uk_key_alg alg,
                         uint8_t **spki, size_t *spki_len);
int uk__piv_put_cert(void *state, uk_card *card, const char *key_id, const uint8_t *der,
                     size_t len);

/* Renewal staging (uk_piv_staging.c): the uk_driver operations of the same
 * names. */
int uk__piv_get_caps(void *state, uk_card *card, unsigned *caps);
int uk__piv_find_staging_slot(void *state, uk_card *card, char key_id_out[UK_KEY_ID_MAX]);
int uk__piv_move_key(void *state, uk_card *card, const char *from, const char *to);
int uk__piv_delete_key(void *state, uk_card *card, const char *key_id);
int uk__piv_delete_cert(void *state, uk_card *card, const char *key_id);
int uk__piv_get_public_key(void *state, uk_card *card, const char *key_id, uint8_t **spki,
                           size_t *spki_len);
int uk__piv_read_record(void *state, uk_card *card, uint8_t *buf, size_t cap, size_t *len);
int uk__piv_write_record(void *state, uk_card *card, const uint8_t *blob, size_t len);
int uk__piv_update_key_history(void *state, uk_card *card, unsigned on_card, unsigned off_card,
                               const char *url);

#endif
