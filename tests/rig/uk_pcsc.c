/*
 * uk-pcsc: a small PC/SC client for the test rig and the integration tests.
 *
 *   uk-pcsc list
 *   uk-pcsc wait READER present|absent [TIMEOUT_MS]
 *   uk-pcsc apdu [--auto-get-response] READER HEX [HEX...]
 *   uk-pcsc hold READER --exclusive|--shared|--transaction SECONDS
 *
 * Which pcscd it talks to is chosen by libpcsclite from PCSCLITE_CSOCK_NAME.
 * Exit status: 0 success, 1 PC/SC error or timeout (the SCARD_* name is on
 * stderr), 2 usage error.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>

enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,
    EXIT_USAGE = 2,
};

/* Responses collected over GET RESPONSE are bounded by this many bytes. */
#define RESPONSE_MAX      (1024 * 1024)
#define POLL_INTERVAL_MS  100
#define WAIT_DEFAULT_MS   10000
#define WAIT_SLICE_MAX_MS 1000

static const char usage_text[] =
    "usage: uk-pcsc list\n"
    "       uk-pcsc wait READER present|absent [TIMEOUT_MS]\n"
    "       uk-pcsc apdu [--auto-get-response] READER HEX [HEX...]\n"
    "       uk-pcsc hold READER --exclusive|--shared|--transaction SECONDS\n"
    "PCSCLITE_CSOCK_NAME selects the pcscd socket.\n";

/* Names of the PC/SC return codes. SCARD_E_UNEXPECTED and
 * SCARD_E_UNSUPPORTED_FEATURE share a value in pcsc-lite; the first wins. */
#define UK_SCARD_CODES(X)                                                                          \
    X(SCARD_S_SUCCESS)                                                                             \
    X(SCARD_F_INTERNAL_ERROR)                                                                      \
    X(SCARD_E_CANCELLED)                                                                           \
    X(SCARD_E_INVALID_HANDLE)                                                                      \
    X(SCARD_E_INVALID_PARAMETER)                                                                   \
    X(SCARD_E_INVALID_TARGET)                                                                      \
    X(SCARD_E_NO_MEMORY)                                                                           \
    X(SCARD_F_WAITED_TOO_LONG)                                                                     \
    X(SCARD_E_INSUFFICIENT_BUFFER)                                                                 \
    X(SCARD_E_UNKNOWN_READER)                                                                      \
    X(SCARD_E_TIMEOUT)                                                                             \
    X(SCARD_E_SHARING_VIOLATION)                                                                   \
    X(SCARD_E_NO_SMARTCARD)                                                                        \
    X(SCARD_E_UNKNOWN_CARD)                                                                        \
    X(SCARD_E_CANT_DISPOSE)                                                                        \
    X(SCARD_E_PROTO_MISMATCH)                                                                      \
    X(SCARD_E_NOT_READY)                                                                           \
    X(SCARD_E_INVALID_VALUE)                                                                       \
    X(SCARD_E_SYSTEM_CANCELLED)                                                                    \
    X(SCARD_F_COMM_ERROR)                                                                          \
    X(SCARD_F_UNKNOWN_ERROR)                                                                       \
    X(SCARD_E_INVALID_ATR)                                                                         \
    X(SCARD_E_NOT_TRANSACTED)                                                                      \
    X(SCARD_E_READER_UNAVAILABLE)                                                                  \
    X(SCARD_P_SHUTDOWN)                                                                            \
    X(SCARD_E_PCI_TOO_SMALL)                                                                       \
    X(SCARD_E_READER_UNSUPPORTED)                                                                  \
    X(SCARD_E_DUPLICATE_READER)                                                                    \
    X(SCARD_E_CARD_UNSUPPORTED)                                                                    \
    X(SCARD_E_NO_SERVICE)                                                                          \
    X(SCARD_E_SERVICE_STOPPED)                                                                     \
    X(SCARD_E_UNEXPECTED)                                                                          \
    X(SCARD_E_ICC_INSTALLATION)                                                                    \
    X(SCARD_E_ICC_CREATEORDER)                                                                     \
    X(SCARD_E_DIR_NOT_FOUND)                                                                       \
    X(SCARD_E_FILE_NOT_FOUND)                                                                      \
    X(SCARD_E_NO_DIR)                                                                              \
    X(SCARD_E_NO_FILE)                                                                             \
    X(SCARD_E_NO_ACCESS)                                                                           \
    X(SCARD_E_WRITE_TOO_MANY)                                                                      \
    X(SCARD_E_BAD_SEEK)                                                                            \
    X(SCARD_E_INVALID_CHV)                                                                         \
    X(SCARD_E_UNKNOWN_RES_MNG)                                                                     \
    X(SCARD_E_NO_SUCH_CERTIFICATE)                                                                 \
    X(SCARD_E_CERTIFICATE_UNAVAILABLE)                                                             \
    X(SCARD_E_NO_READERS_AVAILABLE)                                                                \
    X(SCARD_E_COMM_DATA_LOST)                                                                      \
    X(SCARD_E_NO_KEY_CONTAINER)                                                                    \
    X(SCARD_E_SERVER_TOO_BUSY)                                                                     \
    X(SCARD_W_UNSUPPORTED_CARD)                                                                    \
    X(SCARD_W_UNRESPONSIVE_CARD)                                                                   \
    X(SCARD_W_UNPOWERED_CARD)                                                                      \
    X(SCARD_W_RESET_CARD)                                                                          \
    X(SCARD_W_REMOVED_CARD)                                                                        \
    X(SCARD_W_SECURITY_VIOLATION)                                                                  \
    X(SCARD_W_WRONG_CHV)                                                                           \
    X(SCARD_W_CHV_BLOCKED)                                                                         \
    X(SCARD_W_EOF)                                                                                 \
    X(SCARD_W_CANCELLED_BY_USER)                                                                   \
    X(SCARD_W_CARD_NOT_AUTHENTICATED)

struct scard_name {
    LONG code;
    const char *name;
};

#define UK_SCARD_ENTRY(code) {code, #code},
static const struct scard_name scard_names[] = {UK_SCARD_CODES(UK_SCARD_ENTRY)};
#undef UK_SCARD_ENTRY

static const char *scard_name(LONG rv)
{
    for (size_t i = 0; i < sizeof(scard_names) / sizeof(scard_names[0]); i++) {
        if (scard_names[i].code == rv) {
            return scard_names[i].name;
        }
    }
    return "SCARD_UNKNOWN_CODE";
}

static void report(const char *call, LONG rv)
{
    fprintf(stderr, "uk-pcsc: %s: %s (0x%08lX)\n", call, scard_name(rv),
            (unsigned long)(uint32_t)rv);
}

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested) {
    }
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    if (s[0] < '0' || s[0] > '9') {
        return false;
    }
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Parses hex digits, ignoring spaces and colons. Returns false on odd length,
 * a bad digit or more than cap bytes. */
static bool parse_hex(const char *s, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n = 0;
    int hi = -1;
    for (; *s != '\0'; s++) {
        if (*s == ' ' || *s == ':') {
            continue;
        }
        int d = hex_digit(*s);
        if (d < 0) {
            return false;
        }
        if (hi < 0) {
            hi = d;
            continue;
        }
        if (n == cap) {
            return false;
        }
        out[n++] = (uint8_t)(hi << 4 | d);
        hi = -1;
    }
    if (hi >= 0) {
        return false;
    }
    *out_len = n;
    return true;
}

static void print_hex(FILE *f, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        fprintf(f, "%02X", p[i]);
    }
}

static LONG establish(SCARDCONTEXT *ctx)
{
    LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, ctx);
    if (rv != SCARD_S_SUCCESS) {
        report("SCardEstablishContext", rv);
    }
    return rv;
}

/* ---- list ------------------------------------------------------------- */

static void print_state(const SCARD_READERSTATE *st)
{
    DWORD s = st->dwEventState;
    const char *base = "absent";
    if (s & SCARD_STATE_UNKNOWN) {
        base = "unknown";
    } else if (s & SCARD_STATE_UNAVAILABLE) {
        base = "unavailable";
    } else if (s & SCARD_STATE_PRESENT) {
        base = "present";
    }
    printf("%s\t%s", st->szReader, base);
    if (s & SCARD_STATE_MUTE) {
        printf(",mute");
    }
    if (s & SCARD_STATE_EXCLUSIVE) {
        printf(",exclusive");
    } else if (s & SCARD_STATE_INUSE) {
        printf(",inuse");
    }
    if ((s & SCARD_STATE_PRESENT) && st->cbAtr > 0) {
        printf("\t");
        print_hex(stdout, st->rgbAtr, st->cbAtr);
    }
    printf("\n");
}

static int cmd_list(int argc, char **argv)
{
    (void)argv;
    if (argc != 0) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    SCARDCONTEXT ctx;
    if (establish(&ctx) != SCARD_S_SUCCESS) {
        return EXIT_FAIL;
    }
    int ret = EXIT_FAIL;
    char *names = NULL;
    SCARD_READERSTATE *states = NULL;
    DWORD len = 0;
    LONG rv = SCardListReaders(ctx, NULL, NULL, &len);
    if (rv == SCARD_E_NO_READERS_AVAILABLE) {
        ret = EXIT_OK;
        goto out;
    }
    if (rv != SCARD_S_SUCCESS) {
        report("SCardListReaders", rv);
        goto out;
    }
    names = calloc(len, 1);
    if (names == NULL) {
        goto out;
    }
    rv = SCardListReaders(ctx, NULL, names, &len);
    if (rv == SCARD_E_NO_READERS_AVAILABLE) {
        ret = EXIT_OK;
        goto out;
    }
    if (rv != SCARD_S_SUCCESS) {
        report("SCardListReaders", rv);
        goto out;
    }
    size_t count = 0;
    for (const char *p = names; *p != '\0'; p += strlen(p) + 1) {
        count++;
    }
    states = calloc(count, sizeof(*states));
    if (states == NULL) {
        goto out;
    }
    size_t i = 0;
    for (const char *p = names; *p != '\0'; p += strlen(p) + 1) {
        states[i].szReader = p;
        states[i].dwCurrentState = SCARD_STATE_UNAWARE;
        i++;
    }
    rv = SCardGetStatusChange(ctx, 0, states, (DWORD)count);
    if (rv != SCARD_S_SUCCESS && rv != SCARD_E_TIMEOUT) {
        report("SCardGetStatusChange", rv);
        goto out;
    }
    for (i = 0; i < count; i++) {
        print_state(&states[i]);
    }
    ret = EXIT_OK;
out:
    free(states);
    free(names);
    SCardReleaseContext(ctx);
    return ret;
}

/* ---- wait ------------------------------------------------------------- */

static bool state_reached(DWORD s, bool want_present)
{
    if (want_present) {
        return (s & SCARD_STATE_PRESENT) && !(s & SCARD_STATE_MUTE);
    }
    return (s & (SCARD_STATE_EMPTY | SCARD_STATE_UNKNOWN)) != 0;
}

/* Waits until READER has (or has no) card. Tolerates a pcscd that is not up
 * yet and a reader that has not appeared yet, by polling for those. */
static int cmd_wait(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *reader = argv[0];
    bool want_present;
    if (strcmp(argv[1], "present") == 0) {
        want_present = true;
    } else if (strcmp(argv[1], "absent") == 0) {
        want_present = false;
    } else {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    uint64_t timeout = WAIT_DEFAULT_MS;
    if (argc == 3 && !parse_u64(argv[2], 24ULL * 3600 * 1000, &timeout)) {
        fprintf(stderr, "uk-pcsc: bad timeout '%s' (milliseconds)\n", argv[2]);
        return EXIT_USAGE;
    }
    const int64_t deadline = now_ms() + (int64_t)timeout;
    SCARDCONTEXT ctx = 0;
    bool have_ctx = false;
    LONG last = SCARD_E_TIMEOUT;
    SCARD_READERSTATE st;
    memset(&st, 0, sizeof(st));
    st.szReader = reader;
    st.dwCurrentState = SCARD_STATE_UNAWARE;

    for (;;) {
        int64_t left = deadline - now_ms();
        if (!have_ctx) {
            last = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
            if (last == SCARD_S_SUCCESS) {
                have_ctx = true;
                st.dwCurrentState = SCARD_STATE_UNAWARE;
                continue;
            }
            if (last != SCARD_E_NO_SERVICE) {
                report("SCardEstablishContext", last);
                return EXIT_FAIL;
            }
            if (!want_present) {
                return EXIT_OK; /* no pcscd, so no card */
            }
        } else {
            int64_t slice = left < 0 ? 0 : left;
            if (slice > WAIT_SLICE_MAX_MS) {
                slice = WAIT_SLICE_MAX_MS;
            }
            last = SCardGetStatusChange(ctx, (DWORD)slice, &st, 1);
            if (last == SCARD_S_SUCCESS) {
                if (state_reached(st.dwEventState, want_present)) {
                    SCardReleaseContext(ctx);
                    return EXIT_OK;
                }
                if (st.dwEventState & SCARD_STATE_UNKNOWN) {
                    /* Reader not there (yet): poll rather than spin. */
                    st.dwCurrentState = SCARD_STATE_UNAWARE;
                    sleep_ms(POLL_INTERVAL_MS);
                } else {
                    st.dwCurrentState = st.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
                }
            } else if (last == SCARD_E_UNKNOWN_READER) {
                if (!want_present) {
                    SCardReleaseContext(ctx);
                    return EXIT_OK;
                }
                st.dwCurrentState = SCARD_STATE_UNAWARE;
                sleep_ms(POLL_INTERVAL_MS);
            } else if (last == SCARD_E_NO_SERVICE || last == SCARD_E_SERVICE_STOPPED ||
                       last == SCARD_E_INVALID_HANDLE) {
                SCardReleaseContext(ctx);
                have_ctx = false;
                if (!want_present) {
                    return EXIT_OK;
                }
            } else if (last != SCARD_E_TIMEOUT) {
                report("SCardGetStatusChange", last);
                SCardReleaseContext(ctx);
                return EXIT_FAIL;
            }
        }
        if (now_ms() >= deadline) {
            break;
        }
        if (!have_ctx) {
            sleep_ms(POLL_INTERVAL_MS);
        }
    }
    if (have_ctx) {
        SCardReleaseContext(ctx);
    }
    fprintf(stderr, "uk-pcsc: timeout after %llu ms waiting for card %s in '%s' (last: %s)\n",
            (unsigned long long)timeout, want_present ? "present" : "absent", reader,
            scard_name(last));
    return EXIT_FAIL;
}

/* ---- apdu ------------------------------------------------------------- */

static const SCARD_IO_REQUEST *pci_for(DWORD proto)
{
    return proto == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
}

struct buf {
    uint8_t *p;
    size_t len;
};

static bool buf_append(struct buf *b, const uint8_t *p, size_t len)
{
    if (len > RESPONSE_MAX - b->len) {
        fprintf(stderr, "uk-pcsc: response longer than %d bytes\n", RESPONSE_MAX);
        return false;
    }
    memcpy(b->p + b->len, p, len);
    b->len += len;
    return true;
}

/* Sends one command; with auto_get_response, follows 61xx with GET RESPONSE
 * and prints the joined data and the last status word. */
static LONG transmit_one(SCARDHANDLE card, DWORD proto, const uint8_t *cmd, size_t cmd_len,
                         bool auto_get_response, struct buf *resp, uint8_t *rx)
{
    resp->len = 0;
    DWORD rx_len = MAX_BUFFER_SIZE_EXTENDED;
    LONG rv = SCardTransmit(card, pci_for(proto), cmd, (DWORD)cmd_len, NULL, rx, &rx_len);
    if (rv != SCARD_S_SUCCESS) {
        report("SCardTransmit", rv);
        return rv;
    }
    for (;;) {
        if (rx_len < 2) {
            fprintf(stderr, "uk-pcsc: response shorter than a status word\n");
            return SCARD_F_COMM_ERROR;
        }
        uint8_t sw1 = rx[rx_len - 2];
        uint8_t sw2 = rx[rx_len - 1];
        if (!auto_get_response || sw1 != 0x61) {
            return buf_append(resp, rx, rx_len) ? SCARD_S_SUCCESS : SCARD_E_INSUFFICIENT_BUFFER;
        }
        if (!buf_append(resp, rx, rx_len - 2)) {
            return SCARD_E_INSUFFICIENT_BUFFER;
        }
        const uint8_t get_response[5] = {0x00, 0xC0, 0x00, 0x00, sw2};
        rx_len = MAX_BUFFER_SIZE_EXTENDED;
        rv = SCardTransmit(card, pci_for(proto), get_response, sizeof(get_response), NULL, rx,
                           &rx_len);
        if (rv != SCARD_S_SUCCESS) {
            report("SCardTransmit (GET RESPONSE)", rv);
            return rv;
        }
    }
}

static int cmd_apdu(int argc, char **argv)
{
    bool auto_get_response = false;
    const char *reader = NULL;
    int first_apdu = -1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--auto-get-response") == 0) {
            auto_get_response = true;
        } else if (reader == NULL) {
            reader = argv[i];
        } else if (first_apdu < 0) {
            first_apdu = i;
        }
    }
    if (reader == NULL || first_apdu < 0) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }

    int ret = EXIT_FAIL;
    uint8_t *cmd = malloc(MAX_BUFFER_SIZE_EXTENDED);
    uint8_t *rx = malloc(MAX_BUFFER_SIZE_EXTENDED);
    struct buf resp = {.p = malloc(RESPONSE_MAX), .len = 0};
    SCARDCONTEXT ctx = 0;
    SCARDHANDLE card = 0;
    bool have_ctx = false, have_card = false, in_transaction = false;
    if (cmd == NULL || rx == NULL || resp.p == NULL) {
        fprintf(stderr, "uk-pcsc: out of memory\n");
        goto out;
    }
    /* Check every APDU before touching the card. */
    for (int i = first_apdu; i < argc; i++) {
        size_t len;
        if (strcmp(argv[i], "--auto-get-response") == 0) {
            continue;
        }
        if (!parse_hex(argv[i], cmd, MAX_BUFFER_SIZE_EXTENDED, &len) || len < 4) {
            fprintf(stderr, "uk-pcsc: bad APDU '%s' (hex, at least 4 bytes)\n", argv[i]);
            ret = EXIT_USAGE;
            goto out;
        }
    }
    if (establish(&ctx) != SCARD_S_SUCCESS) {
        goto out;
    }
    have_ctx = true;
    DWORD proto = 0;
    LONG rv = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                           &card, &proto);
    if (rv != SCARD_S_SUCCESS) {
        report("SCardConnect", rv);
        goto out;
    }
    have_card = true;
    rv = SCardBeginTransaction(card);
    if (rv != SCARD_S_SUCCESS) {
        report("SCardBeginTransaction", rv);
        goto out;
    }
    in_transaction = true;
    for (int i = first_apdu; i < argc; i++) {
        size_t len = 0;
        if (strcmp(argv[i], "--auto-get-response") == 0) {
            continue;
        }
        /* Checked before the card was opened; parsed again into the one command buffer. */
        if (!parse_hex(argv[i], cmd, MAX_BUFFER_SIZE_EXTENDED, &len)) {
            goto out;
        }
        if (transmit_one(card, proto, cmd, len, auto_get_response, &resp, rx) != SCARD_S_SUCCESS) {
            goto out;
        }
        print_hex(stdout, resp.p, resp.len);
        printf("\n");
        fflush(stdout);
    }
    ret = EXIT_OK;
out:
    if (in_transaction) {
        rv = SCardEndTransaction(card, SCARD_LEAVE_CARD);
        if (rv != SCARD_S_SUCCESS && ret == EXIT_OK) {
            report("SCardEndTransaction", rv);
            ret = EXIT_FAIL;
        }
    }
    if (have_card) {
        SCardDisconnect(card, SCARD_LEAVE_CARD);
    }
    if (have_ctx) {
        SCardReleaseContext(ctx);
    }
    free(resp.p);
    free(rx);
    free(cmd);
    return ret;
}

/* ---- hold ------------------------------------------------------------- */

static int cmd_hold(int argc, char **argv)
{
    if (argc != 3) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *reader = argv[0];
    DWORD share;
    bool transaction = false;
    if (strcmp(argv[1], "--exclusive") == 0) {
        share = SCARD_SHARE_EXCLUSIVE;
    } else if (strcmp(argv[1], "--shared") == 0) {
        share = SCARD_SHARE_SHARED;
    } else if (strcmp(argv[1], "--transaction") == 0) {
        share = SCARD_SHARE_SHARED;
        transaction = true;
    } else {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    char *end = NULL;
    errno = 0;
    double seconds = strtod(argv[2], &end);
    if (errno != 0 || *end != '\0' || end == argv[2] || !(seconds >= 0) || seconds > 86400) {
        fprintf(stderr, "uk-pcsc: bad duration '%s' (seconds)\n", argv[2]);
        return EXIT_USAGE;
    }

    install_stop_handlers();
    SCARDCONTEXT ctx;
    if (establish(&ctx) != SCARD_S_SUCCESS) {
        return EXIT_FAIL;
    }
    int ret = EXIT_FAIL;
    SCARDHANDLE card;
    DWORD proto;
    LONG rv =
        SCardConnect(ctx, reader, share, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &card, &proto);
    if (rv != SCARD_S_SUCCESS) {
        report("SCardConnect", rv);
        goto out_ctx;
    }
    if (transaction) {
        rv = SCardBeginTransaction(card);
        if (rv != SCARD_S_SUCCESS) {
            report("SCardBeginTransaction", rv);
            goto out_card;
        }
    }
    printf("held %s\n", reader);
    fflush(stdout);
    const int64_t deadline = now_ms() + (int64_t)(seconds * 1000.0);
    while (!stop_requested && now_ms() < deadline) {
        int64_t left = deadline - now_ms();
        sleep_ms(left > 50 ? 50 : left);
    }
    ret = EXIT_OK;
    if (transaction) {
        rv = SCardEndTransaction(card, SCARD_LEAVE_CARD);
        if (rv != SCARD_S_SUCCESS) {
            report("SCardEndTransaction", rv);
        }
    }
out_card:
    SCardDisconnect(card, SCARD_LEAVE_CARD);
out_ctx:
    SCardReleaseContext(ctx);
    return ret;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "list") == 0) {
        return cmd_list(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "wait") == 0) {
        return cmd_wait(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "apdu") == 0) {
        return cmd_apdu(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "hold") == 0) {
        return cmd_hold(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        fputs(usage_text, stdout);
        return EXIT_OK;
    }
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}
