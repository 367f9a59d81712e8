/* The PIV driver's APDU layer: the one place that builds APDUs, chains
 * commands, follows 61xx, chooses extended length and maps status words. */
#include <stdlib.h>
#include <string.h>

#include "uk_err.h"
#include "uk_log.h"
#include "uk_piv_int.h"
#include "uk_secret.h"

/* Header + extended Lc + data + extended Le. */
#define TX_CAP (4u + 3u + UK__PIV_MAX_DATA + 3u)

static const uint8_t piv_aid[] = {0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00};

int uk__piv_io_init(uk__piv_io *io, uk_card *card)
{
    const uint8_t *atr = NULL;
    size_t atr_len = 0;
    memset(io, 0, sizeof(*io));
    io->tx = malloc(TX_CAP);
    io->rx = malloc(UK_CARD_MAX_RESPONSE);
    if (io->tx == NULL || io->rx == NULL) {
        uk__piv_io_close(io);
        return UK_E_NO_MEMORY;
    }
    io->card = card;
    uk_card_atr(card, &atr, &atr_len);
    io->ext = atr != NULL && uk__piv_atr_ext_length(atr, atr_len);
    return UK_OK;
}

void uk__piv_io_close(uk__piv_io *io)
{
    /* Each exchange wipes what it used; this is the belt to those braces. */
    if (io->tx != NULL)
        uk_wipe(io->tx, TX_CAP);
    if (io->rx != NULL)
        uk_wipe(io->rx, UK_CARD_MAX_RESPONSE);
    free(io->tx);
    free(io->rx);
    io->tx = io->rx = NULL;
}

int uk_piv_sw_to_err_at(uint16_t sw, int *retries, const char *file, int line, const char *func)
{
    int err, r = -1;
    uk_log_level level = UK_LOG_LEVEL_WARNING;
    const char *what;

    if (sw == 0x9000) {
        if (retries != NULL)
            *retries = -1;
        return UK_OK;
    }
    if ((sw & 0xFFF0) == 0x63C0) {
        r = sw & 0x0F;
        err = r == 0 ? UK_E_PIN_LOCKED : UK_E_PIN_INCORRECT;
        what = "verification failed";
        level = UK_LOG_LEVEL_NOTICE;
    } else {
        switch (sw) {
        case 0x6300:
            err = UK_E_PIN_INCORRECT;
            what = "verification failed";
            level = UK_LOG_LEVEL_NOTICE;
            break;
        case 0x6983:
            r = 0;
            err = UK_E_PIN_LOCKED;
            what = "authentication method blocked";
            break;
        case 0x6982:
            err = UK_E_SECURITY_STATUS;
            what = "security status not satisfied";
            break;
        case 0x6A82:
            err = UK_E_NOT_FOUND;
            what = "file or application not found";
            level = UK_LOG_LEVEL_DEBUG;
            break;
        case 0x6A88:
            err = UK_E_KEY_NOT_FOUND;
            what = "referenced data not found";
            level = UK_LOG_LEVEL_DEBUG;
            break;
        case 0x6D00:
        case 0x6E00:
        case 0x6A81:
            err = UK_E_NOT_SUPPORTED;
            what = "instruction or class not supported";
            level = UK_LOG_LEVEL_DEBUG;
            break;
        default:
            err = UK_E_CARD_ERROR;
            what = "unexpected status";
            break;
        }
    }
    if (retries != NULL)
        *retries = r;
    uk_log_at(level, file, line, func, "PIV card answered SW %04X (%s) -> %s", sw, what,
              uk_err_name(err));
    return err;
}

/* ---- ATR ------------------------------------------------------------- */

bool uk__piv_atr_ext_length(const uint8_t *atr, size_t len)
{
    if (len < 2)
        return false;
    size_t k = atr[1] & 0x0F;
    unsigned y = atr[1] >> 4;
    size_t pos = 2;
    /* Interface bytes: TAi TBi TCi present per bits of Y, TDi chains on. */
    for (;;) {
        pos += (size_t)((y & 1) + ((y >> 1) & 1) + ((y >> 2) & 1));
        if (!(y & 8))
            break;
        if (pos >= len)
            return false;
        y = atr[pos++] >> 4;
    }
    if (k == 0 || pos + k > len)
        return false;
    const uint8_t *h = atr + pos;
    size_t end;
    if (h[0] == 0x80)
        end = k;
    else if (h[0] == 0x00 && k >= 4)
        end = k - 3; /* the last three bytes are the status indicator */
    else
        return false;
    /* Compact-TLV objects: high nibble tag, low nibble length. */
    for (size_t i = 1; i < end;) {
        unsigned tag = h[i] >> 4, l = h[i] & 0x0F;
        if (i + 1 + l > end)
            return false;
        if (tag == 7 && l >= 3)
            return (h[i + 3] & 0x40) != 0;
        i += 1 + l;
    }
    return false;
}

/* ---- exchanges ------------------------------------------------------- */

/* One transmit of tx[0..n); the R-APDU stays in io->rx. Wipes the command. */
static int xmit(uk__piv_io *io, size_t n, size_t *rlen, uint16_t *sw)
{
    int rc = uk_card_transmit(io->card, io->tx, n, io->rx, UK_CARD_MAX_RESPONSE, rlen);
    uk_log(UK_LOG_LEVEL_DEBUG, "PIV APDU %02X %02X %02X %02X (%zu bytes) -> %d", io->tx[0],
           io->tx[1], io->tx[2], io->tx[3], n, rc);
    uk_wipe(io->tx, n);
    if (rc != UK_OK)
        return rc;
    if (*rlen < 2 || *rlen > UK_CARD_MAX_RESPONSE) {
        UK_LOG_WARN("the reader returned a response of %zu bytes", *rlen);
        uk_wipe(io->rx, UK_CARD_MAX_RESPONSE);
        return UK_E_CARD_ERROR;
    }
    *sw = (uint16_t)((io->rx[*rlen - 2] << 8) | io->rx[*rlen - 1]);
    *rlen -= 2;
    return UK_OK;
}

/* Appends the data of the last R-APDU to out; wipes rx. */
static int collect(uk__piv_io *io, size_t rlen, uint8_t *out, size_t cap, size_t *total)
{
    int rc = UK_OK;
    if (rlen > cap - *total) {
        UK_LOG_WARN("the card's answer is larger than %zu bytes", cap);
        rc = UK_E_LIMIT_EXCEEDED;
    } else if (rlen > 0) {
        memcpy(out + *total, io->rx, rlen);
        *total += rlen;
    }
    uk_wipe(io->rx, rlen);
    return rc;
}

/* Writes one APDU into tx; returns its length. le: 0 none, else Ne (1..65536). */
static size_t build(uk__piv_io *io, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
                    const uint8_t *data, size_t len, size_t le, bool ext)
{
    uint8_t *t = io->tx;
    size_t n = 0;
    t[n++] = cla;
    t[n++] = ins;
    t[n++] = p1;
    t[n++] = p2;
    if (ext) {
        if (len > 0) {
            t[n++] = 0x00;
            t[n++] = (uint8_t)(len >> 8);
            t[n++] = (uint8_t)len;
            memcpy(t + n, data, len);
            n += len;
        }
        if (le > 0) {
            if (len == 0)
                t[n++] = 0x00;
            t[n++] = (uint8_t)(le >> 8); /* 65536 -> 00 00 */
            t[n++] = (uint8_t)le;
        }
    } else {
        if (len > 0) {
            t[n++] = (uint8_t)len;
            memcpy(t + n, data, len);
            n += len;
        }
        if (le > 0)
            t[n++] = (uint8_t)le; /* 256 -> 00 */
    }
    return n;
}

int uk__piv_transceive(uk__piv_io *io, uint8_t ins, uint8_t p1, uint8_t p2, const uint8_t *data,
                       size_t len, uint8_t *out, size_t cap, size_t *out_len, uint16_t *sw)
{
    size_t total = 0, rlen = 0;
    int rc;
    if (len > UK__PIV_MAX_DATA || (len > 0 && data == NULL) || (cap > 0 && out == NULL))
        return UK_E_INVALID_PARAMS;
    if (out_len != NULL)
        *out_len = 0;

    /* Extended only when it saves something: data over 255 bytes or an
     * answer that may exceed 256. */
    bool ext = io->ext && (len > 255 || cap > 256);
    /* Le asks for everything the card has (256 / 65536); cap is checked as
     * the answer arrives. */
    size_t le = cap == 0 ? 0 : ext ? 65536 : 256;

    /* Command chaining for short APDUs: all chunks but the last carry
     * CLA 10 and no Le, and must be answered 9000 with no data. */
    size_t off = 0;
    if (!ext) {
        while (len - off > 255) {
            size_t n = build(io, 0x10, ins, p1, p2, data + off, 255, 0, false);
            rc = xmit(io, n, &rlen, sw);
            if (rc != UK_OK)
                return rc;
            uk_wipe(io->rx, rlen);
            if (*sw != 0x9000)
                return UK_OK; /* the caller maps the refusal */
            if (rlen != 0) {
                UK_LOG_WARN("the card answered data to a chained command");
                return UK_E_CARD_ERROR;
            }
            off += 255;
        }
    }
    const uint8_t *last = len > off ? data + off : NULL; /* never NULL + 0 */
    size_t n = build(io, 0x00, ins, p1, p2, last, len - off, le, ext);
    rc = xmit(io, n, &rlen, sw);
    if (rc != UK_OK)
        return rc;
    if ((*sw & 0xFF00) == 0x6C00 && cap > 0 && !ext) {
        /* Wrong Le: send the same last command again with the Le it wants. */
        uk_wipe(io->rx, rlen);
        size_t want = (*sw & 0xFF) ? (*sw & 0xFF) : 256;
        n = build(io, 0x00, ins, p1, p2, last, len - off, want, false);
        rc = xmit(io, n, &rlen, sw);
        if (rc != UK_OK)
            return rc;
    }
    rc = collect(io, rlen, out, cap, &total);
    while (rc == UK_OK && (*sw & 0xFF00) == 0x6100) {
        if (cap == 0 || total == cap) {
            UK_LOG_WARN("the card has more to answer than the %zu bytes expected", cap);
            rc = UK_E_LIMIT_EXCEEDED;
            break;
        }
        size_t more = (*sw & 0xFF) ? (*sw & 0xFF) : 256;
        n = build(io, 0x00, UK__PIV_INS_GET_RESPONSE, 0x00, 0x00, NULL, 0, more, false);
        rc = xmit(io, n, &rlen, sw);
        if (rc != UK_OK)
            break;
        if (rlen == 0 && (*sw & 0xFF00) == 0x6100) {
            UK_LOG_WARN("GET RESPONSE returned no data but announced more");
            rc = UK_E_CARD_ERROR;
            break;
        }
        rc = collect(io, rlen, out, cap, &total);
    }
    if (rc != UK_OK) {
        uk_wipe(out, total);
        return rc;
    }
    if (out_len != NULL)
        *out_len = total;
    return UK_OK;
}

int uk__piv_select(uk__piv_io *io)
{
    uint8_t fci[256];
    size_t len = 0;
    uint16_t sw = 0;
    int rc = uk__piv_transceive(io, UK__PIV_INS_SELECT, 0x04, 0x00, piv_aid, sizeof(piv_aid), fci,
                                sizeof(fci), &len, &sw);
    if (rc == UK_E_LIMIT_EXCEEDED)
        return UK_E_CARD_ERROR;
    if (rc != UK_OK)
        return rc;
    if (sw == 0x9000)
        return UK_OK;
    rc = uk_piv_sw_to_err(sw, NULL);
    /* "Not found", "not supported", or any refusal of SELECT: not a PIV card. */
    return rc == UK_E_CARD_ERROR || rc == UK_E_NOT_FOUND ? UK_E_NOT_SUPPORTED : rc;
}

int uk__piv_get_data(uk__piv_io *io, uint32_t tag, uint8_t *out, size_t cap, size_t *out_len,
                     uint16_t *sw)
{
    uint8_t cmd[5];
    size_t n = 0;
    cmd[n++] = 0x5C;
    if (tag > 0xFFFF) {
        cmd[n++] = 3;
        cmd[n++] = (uint8_t)(tag >> 16);
        cmd[n++] = (uint8_t)(tag >> 8);
    } else if (tag > 0xFF) {
        cmd[n++] = 2;
        cmd[n++] = (uint8_t)(tag >> 8);
    } else {
        cmd[n++] = 1;
    }
    cmd[n++] = (uint8_t)tag;
    return uk__piv_transceive(io, UK__PIV_INS_GET_DATA, 0x3F, 0xFF, cmd, n, out, cap, out_len, sw);
}

bool uk__piv_mem_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    volatile uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}
