/* uk_fuzz_quiet: drop ukeyd's log lines while fuzzing (see fuzz.h). */
#include "fuzz.h"

#include <stdbool.h>

#include "uk_log.h"

static void drop_line(void *ctx, uk_log_level level, const char *line, size_t len)
{
    (void)ctx;
    (void)level;
    (void)line;
    (void)len;
}

void uk_fuzz_quiet(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    /* DEBUG so that the formatting of every log line still runs (and is fuzzed). */
    uk_log_set_level(UK_LOG_LEVEL_DEBUG);
    uk_log_set_sink(drop_line, NULL);
}
