/* OpenSSL's error queue, drained into one log line. */
#include "uk_ossl.h"

#include "uk_err.h"

#include <openssl/err.h>
#include <stdbool.h>
#include <stdio.h>

int uk_ossl_fail_at(uk_log_level level, const char *file, int line, const char *func, int err,
                    const char *what)
{
    char text[768];
    size_t used = 0;
    unsigned long e;
    const char *data = NULL;
    int flags = 0;

    text[0] = '\0';
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
            err = UK_E_NO_MEMORY;
        if (used + 1 >= sizeof(text))
            continue; /* the line is full; keep draining the queue */
        char one[256];
        ERR_error_string_n(e, one, sizeof(one));
        bool with_data = (flags & ERR_TXT_STRING) != 0 && data != NULL && data[0] != '\0';
        int n = snprintf(text + used, sizeof(text) - used, "%s%s%s%s", used > 0 ? "; " : "", one,
                         with_data ? " " : "", with_data ? data : "");
        if (n < 0 || (size_t)n >= sizeof(text) - used)
            used = sizeof(text) - 1;
        else
            used += (size_t)n;
    }
    ERR_clear_error();
    uk_log_at(level, file, line, func, "%s failed: %s", what,
              used > 0 ? text : "(no OpenSSL error queued)");
    return err;
}
