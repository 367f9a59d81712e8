/* vpiv: provision, run and control the virtual PIV card. */
#include "vpiv.h"
#include "vpiv_run.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fputs("usage:\n"
          "  vpiv provision --state FILE [--profile yubico|generic] [--ext-length]\n"
          "                 [--serial N] [--max-object BYTES] [--demo-certs DIR]\n"
          "                 [--cert-from DAYS] [--cert-days DAYS] [--force]\n"
          "  vpiv run --state FILE --port PORT [--host HOST] --control SOCKET\n"
          "           [--latency-apdu-us N] [--latency-byte-us N]\n"
          "  vpiv ctl SOCKET COMMAND [ARGS]\n"
          "     status | remove | insert | drop-after N [executed] | next-sw XXXX |\n"
          "     latency APDU_US BYTE_US | counters | counters-reset | quit\n",
          f);
}

static long parse_long(const char *s, long min, long max, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *s == '\0' || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "vpiv: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

enum {
    OPT_STATE = 1,
    OPT_PROFILE,
    OPT_EXT,
    OPT_SERIAL,
    OPT_MAXOBJ,
    OPT_DEMO,
    OPT_FROM,
    OPT_DAYS,
    OPT_FORCE,
    OPT_PORT,
    OPT_HOST,
    OPT_CONTROL,
    OPT_LAT_APDU,
    OPT_LAT_BYTE,
};

static const struct option long_opts[] = {
    {"state", required_argument, NULL, OPT_STATE},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"ext-length", no_argument, NULL, OPT_EXT},
    {"serial", required_argument, NULL, OPT_SERIAL},
    {"max-object", required_argument, NULL, OPT_MAXOBJ},
    {"demo-certs", required_argument, NULL, OPT_DEMO},
    {"cert-from", required_argument, NULL, OPT_FROM},
    {"cert-days", required_argument, NULL, OPT_DAYS},
    {"force", no_argument, NULL, OPT_FORCE},
    {"port", required_argument, NULL, OPT_PORT},
    {"host", required_argument, NULL, OPT_HOST},
    {"control", required_argument, NULL, OPT_CONTROL},
    {"latency-apdu-us", required_argument, NULL, OPT_LAT_APDU},
    {"latency-byte-us", required_argument, NULL, OPT_LAT_BYTE},
    {NULL, 0, NULL, 0},
};

typedef struct {
    const char *state, *demo_dir, *host, *control;
    vpiv_options card;
    long cert_from, cert_days;
    bool force;
    int port;
    unsigned lat_apdu, lat_byte;
} args;

static void parse_args(int argc, char **argv, args *a)
{
    int c;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_STATE:
            a->state = optarg;
            break;
        case OPT_PROFILE:
            if (strcmp(optarg, "yubico") == 0)
                a->card.profile = VPIV_PROFILE_YUBICO;
            else if (strcmp(optarg, "generic") == 0)
                a->card.profile = VPIV_PROFILE_GENERIC;
            else {
                fprintf(stderr, "vpiv: unknown profile %s\n", optarg);
                exit(2);
            }
            break;
        case OPT_EXT:
            a->card.ext_length = true;
            break;
        case OPT_SERIAL:
            a->card.serial = (uint32_t)parse_long(optarg, 1, 99999999, "serial");
            break;
        case OPT_MAXOBJ:
            a->card.max_object = (size_t)parse_long(optarg, 16, 60000, "max object size");
            break;
        case OPT_DEMO:
            a->demo_dir = optarg;
            break;
        case OPT_FROM:
            a->cert_from = parse_long(optarg, -36500, 36500, "cert-from");
            break;
        case OPT_DAYS:
            a->cert_days = parse_long(optarg, -36500, 36500, "cert-days");
            break;
        case OPT_FORCE:
            a->force = true;
            break;
        case OPT_PORT:
            a->port = (int)parse_long(optarg, 1, 65535, "port");
            break;
        case OPT_HOST:
            a->host = optarg;
            break;
        case OPT_CONTROL:
            a->control = optarg;
            break;
        case OPT_LAT_APDU:
            a->lat_apdu = (unsigned)parse_long(optarg, 0, 10000000, "latency");
            break;
        case OPT_LAT_BYTE:
            a->lat_byte = (unsigned)parse_long(optarg, 0, 1000000, "latency");
            break;
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc) {
        usage(stderr);
        exit(2);
    }
}

static int cmd_provision(const args *a)
{
    if (a->state == NULL) {
        usage(stderr);
        return 2;
    }
    if (!a->force && access(a->state, F_OK) == 0) {
        fprintf(stderr, "vpiv: %s exists (use --force to replace the card)\n", a->state);
        return 1;
    }
    if (a->cert_days <= a->cert_from) {
        fprintf(stderr, "vpiv: --cert-days must be after --cert-from\n");
        return 2;
    }
    vpiv_card *card = NULL;
    vpiv_demo_ca *ca = NULL;
    int rc = 1;
    if (vpiv_card_new(&card, &a->card) != 0)
        goto out;
    if (a->demo_dir != NULL) {
        /* The people in the manual's portal have Chinese names; so do ours. */
        if (vpiv_demo_ca_new(&ca, a->demo_dir) != 0 ||
            vpiv_card_provision_slot(card, ca, 0x9A, 0x07, "张三", a->cert_from, a->cert_days) !=
                0 ||
            vpiv_card_provision_slot(card, ca, 0x9C, 0x11, "张三", a->cert_from, a->cert_days) != 0)
            goto out;
    }
    if (vpiv_card_save(card, a->state) != 0)
        goto out;
    rc = 0;
out:
    vpiv_demo_ca_free(ca);
    vpiv_card_free(card);
    return rc;
}

static int cmd_run(const args *a)
{
    if (a->state == NULL || a->port == 0 || a->control == NULL) {
        usage(stderr);
        return 2;
    }
    vpiv_card *card = NULL;
    if (vpiv_card_load(&card, a->state) != 0)
        return 1;
    vpiv_run_options opt = {.state_path = a->state,
                            .host = a->host ? a->host : "127.0.0.1",
                            .port = a->port,
                            .control_path = a->control,
                            .latency_apdu_us = a->lat_apdu,
                            .latency_byte_us = a->lat_byte};
    int rc = vpiv_run(card, &opt) == 0 ? 0 : 1;
    vpiv_card_free(card);
    return rc;
}

static int cmd_ctl(int argc, char **argv)
{
    if (argc < 4) {
        usage(stderr);
        return 2;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(argv[2]) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "vpiv: socket path too long\n");
        return 2;
    }
    strcpy(sa.sun_path, argv[2]);
    char line[256];
    size_t n = 0;
    for (int i = 3; i < argc; i++) {
        int w = snprintf(line + n, sizeof(line) - n, "%s%s", i > 3 ? " " : "", argv[i]);
        if (w < 0 || (size_t)w >= sizeof(line) - n - 1) {
            fprintf(stderr, "vpiv: command too long\n");
            return 2;
        }
        n += (size_t)w;
    }
    line[n++] = '\n';
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "vpiv: cannot reach the card at %s: %s\n", argv[2], strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    char reply[512];
    size_t got = 0;
    if (write(fd, line, n) != (ssize_t)n) {
        close(fd);
        return 1;
    }
    while (got < sizeof(reply) - 1) {
        ssize_t r = read(fd, reply + got, sizeof(reply) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (memchr(reply, '\n', got))
            break;
    }
    close(fd);
    reply[got] = '\0';
    fputs(reply, stdout);
    return strncmp(reply, "ok", 2) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "ctl") == 0)
        return cmd_ctl(argc, argv);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    args a = {.cert_from = -30, .cert_days = 365};
    const char *cmd = argv[1];
    optind = 2;
    parse_args(argc, argv, &a);
    if (strcmp(cmd, "provision") == 0)
        return cmd_provision(&a);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(&a);
    usage(stderr);
    return 2;
}
