/*
 * bench/certs/floor.c: the floor of a cold cert.list, for bench/run-certs.
 *
 * Sends, straight through PC/SC, the APDU sequence ukeyd's PIV driver sends to
 * list a card's certificates (daemon/token/piv/uk_piv_certs.c and
 * uk_piv_apdu.c, short APDUs): SELECT of the PIV application with Le 00, then
 * GET DATA of the certificate object of every slot in the driver's order
 * (9A 9C 9D 9E, then the retired slots 82..95) with Le 00, following each 61xx
 * with GET RESPONSE (Le = SW2) and each 6Cxx with the same command and the Le
 * the card asks for. bench/run-certs checks with the card's own counters that
 * this sends exactly as many APDUs and bytes each way as ukeyd did.
 *
 * One line per run on stdout, key=value:
 *   floor_us       SCardBeginTransaction .. SCardEndTransaction, the APDUs in
 *                  between: the floor (a client that keeps its connection)
 *   connect_us     SCardConnect before it, disconnect_us SCardDisconnect after
 *                  it (not part of the floor; ukeyd connects for every
 *                  operation, so they tell where its time goes)
 *   apdus, bytes_sent, bytes_received, objects (non-empty 9000 answers)
 *
 * usage: floor --reader NAME [--runs N]
 * Talks to the pcscd that PCSCLITE_CSOCK_NAME names. Exit 1 on a PC/SC error
 * or an unexpected status word, 2 on bad usage.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <winscard.h>

#define RESP_CAP (65536u + 2u)

static const uint8_t piv_aid[] = {0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00};

/* The driver's slot order and each slot's certificate object (SP 800-73-4). */
static const uint8_t slots[] = {0x9A, 0x9C, 0x9D, 0x9E, 0x82, 0x83, 0x84, 0x85,
                                0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x8D,
                                0x8E, 0x8F, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95};

static uint32_t slot_object(uint8_t slot)
{
    switch (slot) {
    case 0x9A:
        return 0x5FC105;
    case 0x9C:
        return 0x5FC10A;
    case 0x9D:
        return 0x5FC10B;
    case 0x9E:
        return 0x5FC101;
    default:
        return 0x5FC10Du + (uint32_t)(slot - 0x82);
    }
}

typedef struct {
    SCARDHANDLE h;
    const SCARD_IO_REQUEST *pci;
    uint8_t *resp;
    unsigned long apdus, sent, received;
} card_link;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void fail(const char *what, LONG rv)
{
    fprintf(stderr, "floor: %s: %s (0x%08lX)\n", what, pcsc_stringify_error(rv), (unsigned long)rv);
    exit(1);
}

/* One SCardTransmit; the answer's data stays in l->resp, its SW is returned. */
static uint16_t xmit(card_link *l, const uint8_t *apdu, size_t n, size_t *data_len)
{
    DWORD rlen = RESP_CAP;
    LONG rv = SCardTransmit(l->h, l->pci, apdu, (DWORD)n, NULL, l->resp, &rlen);
    if (rv != SCARD_S_SUCCESS)
        fail("SCardTransmit", rv);
    if (rlen < 2) {
        fprintf(stderr, "floor: an answer of %lu bytes\n", (unsigned long)rlen);
        exit(1);
    }
    l->apdus++;
    l->sent += n;
    l->received += rlen;
    *data_len = rlen - 2;
    return (uint16_t)(l->resp[rlen - 2] << 8 | l->resp[rlen - 1]);
}

/* A case-4 command (data, Le 00) followed to its end like the driver does;
 * returns the final SW and the total data length. */
static uint16_t command(card_link *l, uint8_t ins, uint8_t p1, uint8_t p2, const uint8_t *data,
                        size_t len, size_t *total)
{
    uint8_t apdu[4 + 1 + 255 + 1];
    size_t n = 0, got = 0;
    apdu[n++] = 0x00;
    apdu[n++] = ins;
    apdu[n++] = p1;
    apdu[n++] = p2;
    apdu[n++] = (uint8_t)len;
    memcpy(apdu + n, data, len);
    n += len;
    apdu[n++] = 0x00;
    uint16_t sw = xmit(l, apdu, n, &got);
    if ((sw & 0xFF00) == 0x6C00) {
        apdu[n - 1] = (uint8_t)sw;
        sw = xmit(l, apdu, n, &got);
    }
    *total = got;
    while ((sw & 0xFF00) == 0x6100) {
        const uint8_t get_response[5] = {0x00, 0xC0, 0x00, 0x00, (uint8_t)sw};
        sw = xmit(l, get_response, sizeof(get_response), &got);
        *total += got;
    }
    return sw;
}

/* The sequence of one cold list; returns how many objects held data. */
static unsigned list_once(card_link *l)
{
    size_t total = 0;
    unsigned objects = 0;
    uint16_t sw = command(l, 0xA4, 0x04, 0x00, piv_aid, sizeof(piv_aid), &total);
    if (sw != 0x9000) {
        fprintf(stderr, "floor: SELECT answered %04X\n", sw);
        exit(1);
    }
    for (size_t i = 0; i < sizeof(slots); i++) {
        uint32_t tag = slot_object(slots[i]);
        const uint8_t tag_list[5] = {0x5C, 0x03, (uint8_t)(tag >> 16), (uint8_t)(tag >> 8),
                                     (uint8_t)tag};
        sw = command(l, 0xCB, 0x3F, 0xFF, tag_list, sizeof(tag_list), &total);
        if (sw == 0x9000 && total > 0)
            objects++;
        else if (sw != 0x9000 && sw != 0x6A82 && sw != 0x6A88) {
            fprintf(stderr, "floor: GET DATA of slot %02X answered %04X\n", slots[i], sw);
            exit(1);
        }
    }
    return objects;
}

int main(int argc, char **argv)
{
    const char *reader = NULL;
    long runs = 1;
    bool usage = false;
    for (int i = 1; i < argc && !usage; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--reader") == 0 && i + 1 < argc) {
            reader = argv[++i];
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = strtol(argv[++i], &end, 10);
            usage = *end != '\0' || runs < 1 || runs > 100000;
        } else {
            usage = true;
        }
    }
    if (reader == NULL || usage) {
        fprintf(stderr, "usage: floor --reader NAME [--runs N]\n");
        return 2;
    }

    SCARDCONTEXT ctx;
    LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
    if (rv != SCARD_S_SUCCESS)
        fail("SCardEstablishContext", rv);
    card_link l = {.resp = malloc(RESP_CAP)};
    if (l.resp == NULL) {
        fprintf(stderr, "floor: out of memory\n");
        return 1;
    }
    for (long r = 0; r < runs; r++) {
        DWORD proto = 0;
        uint64_t t0 = now_us();
        rv = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                          &l.h, &proto);
        if (rv != SCARD_S_SUCCESS)
            fail("SCardConnect", rv);
        l.pci = proto == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
        l.apdus = l.sent = l.received = 0;
        uint64_t t1 = now_us();
        rv = SCardBeginTransaction(l.h);
        if (rv != SCARD_S_SUCCESS)
            fail("SCardBeginTransaction", rv);
        unsigned objects = list_once(&l);
        rv = SCardEndTransaction(l.h, SCARD_LEAVE_CARD);
        if (rv != SCARD_S_SUCCESS)
            fail("SCardEndTransaction", rv);
        uint64_t t2 = now_us();
        rv = SCardDisconnect(l.h, SCARD_LEAVE_CARD);
        if (rv != SCARD_S_SUCCESS)
            fail("SCardDisconnect", rv);
        uint64_t t3 = now_us();
        printf("floor_us=%llu connect_us=%llu disconnect_us=%llu apdus=%lu bytes_sent=%lu "
               "bytes_received=%lu objects=%u\n",
               (unsigned long long)(t2 - t1), (unsigned long long)(t1 - t0),
               (unsigned long long)(t3 - t2), l.apdus, l.sent, l.received, objects);
        fflush(stdout);
    }
    free(l.resp);
    (void)SCardReleaseContext(ctx);
    return 0;
}
