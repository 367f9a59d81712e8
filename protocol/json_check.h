/*
 * json_check.h - module-internal: strict RFC 8259 check of one JSON text before cJSON parses it.
 *
 * cJSON 1.7.15 accepts things JSON does not ("+1", "01", ".5", raw control characters in strings,
 * invalid UTF-8), truncates strings at "\u0000", and nests to 1000. uk__json_check accepts exactly
 * RFC 8259 JSON-text with these extra rules, so that cJSON only ever sees text it reads the same
 * way every other parser does:
 *   - strings are well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF);
 *   - "\u" escapes form valid code points (surrogates only in pairs) and are never U+0000;
 *   - nesting (open arrays + objects) is at most max_depth;
 *   - a number is at most UK__JSON_NUMBER_MAX characters (cJSON reads at most 63);
 *   - no byte order mark; only JSON whitespace around the value; nothing after it.
 * It does not build anything and does not allocate. Thread: pure, any thread.
 */
#ifndef UK_PROTOCOL_JSON_CHECK_H
#define UK_PROTOCOL_JSON_CHECK_H

#include <stddef.h>

#define UK__JSON_NUMBER_MAX 40u

typedef struct uk__json_problem {
    int err;            /* UK_E_PARSE_ERROR or UK_E_LIMIT_EXCEEDED */
    const char *detail; /* static English text for developers */
    const char *limit;  /* for LIMIT_EXCEEDED: "json_depth" or "json_number_length" */
    size_t max;         /* for LIMIT_EXCEEDED: the limit's value */
    size_t offset;      /* byte offset where the problem was found */
} uk__json_problem;

/* UK_OK, or the first problem's code with *problem filled in. */
int uk__json_check(const char *text, size_t len, size_t max_depth, uk__json_problem *problem);

#endif
