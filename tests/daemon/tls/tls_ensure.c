/*
 * tls_ensure - a thin command over uk_tls for shell tests (the daemon's own `ukeyd tls-setup`
 * lives in daemon/main). Prints key=value lines.
 *
 *   tls_ensure ensure|remove|info STATE_DIR HOME [VALIDITY_DAYS]
 *
 * Exit status: 0 on success, 1 on a uk_tls error (its reason name on stderr), 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uk_err.h"
#include "uk_tls.h"

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s ensure|remove|info STATE_DIR HOME [VALIDITY_DAYS]\n", argv[0]);
        return 2;
    }
    uk_tls_options opt = {.state_dir = argv[2], .home = argv[3]};
    if (argc == 5)
        opt.validity_days = (unsigned)strtoul(argv[4], NULL, 10);

    int rc;
    if (strcmp(argv[1], "ensure") == 0) {
        uk_tls_paths p;
        rc = uk_tls_ensure(&opt, &p);
        if (rc == UK_OK)
            printf("created=%d\ncert=%s\nkey=%s\nca=%s\nnssdb=%s\nnickname=%s\ntrust=%s\n"
                   "not_after=%lld\n",
                   p.created, p.cert, p.key, p.ca, p.nssdb, p.nickname, uk_tls_trust_name(p.trust),
                   (long long)p.not_after);
    } else if (strcmp(argv[1], "remove") == 0) {
        rc = uk_tls_remove(&opt);
    } else if (strcmp(argv[1], "info") == 0) {
        uk_tls_status s;
        rc = uk_tls_info(&opt, &s);
        if (rc == UK_OK)
            printf("present=%d\nneeds_renewal=%d\nnot_after=%lld\ntrust=%s\nnickname=%s\n",
                   s.present, s.needs_renewal, (long long)s.not_after, uk_tls_trust_name(s.trust),
                   s.nickname);
    } else {
        fprintf(stderr, "unknown command %s\n", argv[1]);
        return 2;
    }
    if (rc != UK_OK) {
        fprintf(stderr, "%s\n", uk_err_name(rc));
        return 1;
    }
    return 0;
}
