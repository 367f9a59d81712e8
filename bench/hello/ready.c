/*
 * ready: time from exec to the first accepted connection, for bench/run-hello.
 *
 * usage: ready (--port P | --unix PATH) [--runs N] [--timeout-ms T] -- COMMAND [ARG...]
 *
 * Each run takes the time, forks, execs COMMAND (stdout and stderr to /dev/null), and in a tight
 * loop tries to connect to 127.0.0.1:P (or the Unix socket PATH) until a connection succeeds;
 * the time from just before fork to that success is the run's figure. Then COMMAND gets SIGTERM
 * and is waited for before the next run. Prints one line: runs=N median_ms=... min_ms=...
 * max_ms=... all_ms=a,b,c. Exit status 1 if a run did not become ready within the timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 100

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool try_connect(unsigned port, const char *unix_path)
{
    int fd;
    bool ok;
    if (unix_path != NULL) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        if (strlen(unix_path) >= sizeof a.sun_path)
            return false;
        strcpy(a.sun_path, unix_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        /* A port in the ephemeral range can be "reached" by connecting to itself (TCP
         * simultaneous open) when nothing listens: that is not the server. */
        struct sockaddr_in me;
        socklen_t len = sizeof me;
        if (ok && getsockname(fd, (struct sockaddr *)&me, &len) == 0 && me.sin_port == a.sin_port)
            ok = false;
    }
    if (fd >= 0)
        close(fd);
    return ok;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
    fputs("usage: ready (--port P | --unix PATH) [--runs N] [--timeout-ms T] -- COMMAND [ARG...]\n",
          f);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"port", required_argument, NULL, 'p'}, {"unix", required_argument, NULL, 'u'},
        {"runs", required_argument, NULL, 'n'}, {"timeout-ms", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    unsigned port = 0, runs = 10;
    double timeout = 5000;
    const char *unix_path = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
        switch (ch) {
        case 'p':
            port = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'u':
            unix_path = optarg;
            break;
        case 'n':
            runs = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't':
            timeout = strtod(optarg, NULL);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc || (port == 0) == (unix_path == NULL) || port > 65535 || runs == 0 ||
        runs > MAX_RUNS) {
        usage(stderr);
        return 2;
    }
    char **cmd = argv + optind;
    if (try_connect(port, unix_path)) {
        fprintf(stderr, "ready: something already accepts connections there\n");
        return 1;
    }

    double ms[MAX_RUNS];
    int rc = 0;
    for (unsigned r = 0; r < runs; r++) {
        double t0 = now_ms();
        pid_t pid = fork();
        if (pid < 0) {
            perror("ready: fork");
            return 1;
        }
        if (pid == 0) {
            int null = open("/dev/null", O_RDWR);
            if (null >= 0) {
                dup2(null, STDOUT_FILENO);
                dup2(null, STDERR_FILENO);
            }
            execvp(cmd[0], cmd);
            _exit(127);
        }
        bool up = false;
        double t1 = t0;
        while (!up) {
            up = try_connect(port, unix_path);
            t1 = now_ms();
            if (!up && (t1 - t0 > timeout || waitpid(pid, NULL, WNOHANG) == pid))
                break;
        }
        kill(pid, SIGTERM);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!up) {
            fprintf(stderr, "ready: run %u: %s did not accept a connection\n", r + 1, cmd[0]);
            rc = 1;
            break;
        }
        ms[r] = t1 - t0;
        /* Let the port or socket go before the next start. */
        for (int i = 0; i < 500 && try_connect(port, unix_path); i++)
            usleep(2000);
    }
    if (rc != 0)
        return rc;
    double sorted[MAX_RUNS];
    memcpy(sorted, ms, runs * sizeof *ms);
    qsort(sorted, runs, sizeof *sorted, cmp_double);
    double median = runs % 2 ? sorted[runs / 2] : (sorted[runs / 2 - 1] + sorted[runs / 2]) / 2;
    printf("runs=%u median_ms=%.1f min_ms=%.1f max_ms=%.1f all_ms=", runs, median, sorted[0],
           sorted[runs - 1]);
    for (unsigned r = 0; r < runs; r++)
        printf("%s%.1f", r ? "," : "", ms[r]);
    printf("\n");
    return 0;
}
