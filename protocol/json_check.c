#include "json_check.h"

#include <stdbool.h>
#include <stdint.h>

#include "uk_err.h"

/*
 * An iterative scanner: the only memory it needs is one bit per open container, so the depth
 * limit also bounds its stack use (no recursion). States after a value tell what may come next.
 */

#define MAX_TRACKED_DEPTH 256u /* hard ceiling on max_depth for the container stack */

struct scan {
    const unsigned char *p;
    size_t len;
    size_t pos;
    uk__json_problem *problem;
};

static int fail(struct scan *s, const char *detail)
{
    s->problem->err = UK_E_PARSE_ERROR;
    s->problem->detail = detail;
    s->problem->limit = NULL;
    s->problem->max = 0;
    s->problem->offset = s->pos;
    return UK_E_PARSE_ERROR;
}

static int fail_limit(struct scan *s, const char *detail, const char *limit, size_t max)
{
    s->problem->err = UK_E_LIMIT_EXCEEDED;
    s->problem->detail = detail;
    s->problem->limit = limit;
    s->problem->max = max;
    s->problem->offset = s->pos;
    return UK_E_LIMIT_EXCEEDED;
}

static bool at_end(const struct scan *s)
{
    return s->pos >= s->len;
}

static unsigned char peek(const struct scan *s)
{
    return s->p[s->pos];
}

static void skip_ws(struct scan *s)
{
    while (!at_end(s)) {
        unsigned char c = peek(s);
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        s->pos++;
    }
}

static int hex4(struct scan *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        if (at_end(s))
            return fail(s, "unterminated string");
        unsigned char c = peek(s);
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10u;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10u;
        else
            return fail(s, "invalid \\u escape");
        v = v << 4 | d;
        s->pos++;
    }
    *out = v;
    return UK_OK;
}

/* One UTF-8 sequence starting at a byte >= 0x80 (Unicode table 3-7, well-formed sequences). */
static int utf8_sequence(struct scan *s)
{
    unsigned char c = peek(s);
    size_t extra;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        extra = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        extra = 2;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        extra = 3;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return fail(s, "invalid UTF-8");
    }
    size_t start = s->pos;
    s->pos++;
    for (size_t i = 0; i < extra; i++) {
        if (at_end(s)) {
            s->pos = start;
            return fail(s, "invalid UTF-8");
        }
        unsigned char b = peek(s);
        if (i == 0 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf)) {
            s->pos = start;
            return fail(s, "invalid UTF-8");
        }
        s->pos++;
    }
    return UK_OK;
}

/* A string; s->pos is at the opening quote. */
static int string(struct scan *s)
{
    s->pos++;
    for (;;) {
        if (at_end(s))
            return fail(s, "unterminated string");
        unsigned char c = peek(s);
        if (c == '"') {
            s->pos++;
            return UK_OK;
        }
        if (c < 0x20)
            return fail(s, "control character in string");
        if (c >= 0x80) {
            int rc = utf8_sequence(s);
            if (rc != UK_OK)
                return rc;
            continue;
        }
        if (c != '\\') {
            s->pos++;
            continue;
        }
        size_t esc = s->pos;
        s->pos++;
        if (at_end(s))
            return fail(s, "unterminated string");
        c = peek(s);
        s->pos++;
        switch (c) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            continue;
        case 'u':
            break;
        default:
            s->pos = esc;
            return fail(s, "invalid escape in string");
        }
        unsigned u;
        int rc = hex4(s, &u);
        if (rc != UK_OK)
            return rc;
        if (u == 0) {
            s->pos = esc;
            return fail(s, "\\u0000 is not supported in strings");
        }
        if (u >= 0xdc00 && u <= 0xdfff) {
            s->pos = esc;
            return fail(s, "unpaired surrogate escape");
        }
        if (u >= 0xd800 && u <= 0xdbff) {
            if (s->len - s->pos < 2 || s->p[s->pos] != '\\' || s->p[s->pos + 1] != 'u') {
                s->pos = esc;
                return fail(s, "unpaired surrogate escape");
            }
            s->pos += 2;
            unsigned low;
            rc = hex4(s, &low);
            if (rc != UK_OK)
                return rc;
            if (low < 0xdc00 || low > 0xdfff) {
                s->pos = esc;
                return fail(s, "unpaired surrogate escape");
            }
        }
    }
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int number(struct scan *s)
{
    size_t start = s->pos;
    if (peek(s) == '-')
        s->pos++;
    if (at_end(s) || !is_digit(peek(s)))
        return fail(s, "invalid number");
    if (peek(s) == '0') {
        s->pos++;
        if (!at_end(s) && is_digit(peek(s)))
            return fail(s, "leading zero in number");
    } else {
        while (!at_end(s) && is_digit(peek(s)))
            s->pos++;
    }
    if (!at_end(s) && peek(s) == '.') {
        s->pos++;
        if (at_end(s) || !is_digit(peek(s)))
            return fail(s, "invalid number");
        while (!at_end(s) && is_digit(peek(s)))
            s->pos++;
    }
    if (!at_end(s) && (peek(s) == 'e' || peek(s) == 'E')) {
        s->pos++;
        if (!at_end(s) && (peek(s) == '+' || peek(s) == '-'))
            s->pos++;
        if (at_end(s) || !is_digit(peek(s)))
            return fail(s, "invalid number");
        while (!at_end(s) && is_digit(peek(s)))
            s->pos++;
    }
    if (s->pos - start > UK__JSON_NUMBER_MAX) {
        s->pos = start;
        return fail_limit(s, "number is too long", "json_number_length", UK__JSON_NUMBER_MAX);
    }
    return UK_OK;
}

static int literal(struct scan *s, const char *word, size_t n)
{
    if (s->len - s->pos < n)
        return fail(s, "unexpected character");
    for (size_t i = 0; i < n; i++) {
        if (s->p[s->pos + i] != (unsigned char)word[i])
            return fail(s, "unexpected character");
    }
    s->pos += n;
    return UK_OK;
}

int uk__json_check(const char *text, size_t len, size_t max_depth, uk__json_problem *problem)
{
    struct scan s = {.p = (const unsigned char *)text, .len = len, .pos = 0, .problem = problem};
    /* One bit per open container: 1 = object, 0 = array. */
    uint8_t stack[MAX_TRACKED_DEPTH / 8] = {0};
    size_t depth = 0;
    int rc;

    if (max_depth > MAX_TRACKED_DEPTH)
        max_depth = MAX_TRACKED_DEPTH;
    if (len >= 3 && s.p[0] == 0xef && s.p[1] == 0xbb && s.p[2] == 0xbf)
        return fail(&s, "byte order mark is not allowed");

    skip_ws(&s);
    if (at_end(&s))
        return fail(&s, "empty message");

    for (;;) {
        /* Expect a value. */
        skip_ws(&s);
        if (at_end(&s))
            return fail(&s, "unexpected end of message");
        unsigned char c = peek(&s);
        bool opened = false;
        switch (c) {
        case '{':
        case '[':
            if (depth >= max_depth)
                return fail_limit(&s, "nesting is too deep", "json_depth", max_depth);
            if (c == '{')
                stack[depth / 8] |= (uint8_t)(1u << (depth % 8));
            else
                stack[depth / 8] &= (uint8_t) ~(1u << (depth % 8));
            depth++;
            s.pos++;
            opened = true;
            break;
        case '"':
            rc = string(&s);
            if (rc != UK_OK)
                return rc;
            break;
        case 't':
            rc = literal(&s, "true", 4);
            if (rc != UK_OK)
                return rc;
            break;
        case 'f':
            rc = literal(&s, "false", 5);
            if (rc != UK_OK)
                return rc;
            break;
        case 'n':
            rc = literal(&s, "null", 4);
            if (rc != UK_OK)
                return rc;
            break;
        default:
            if (c == '-' || is_digit(c)) {
                rc = number(&s);
                if (rc != UK_OK)
                    return rc;
                break;
            }
            return fail(&s, "unexpected character");
        }

        if (opened) {
            bool object = stack[(depth - 1) / 8] & (1u << ((depth - 1) % 8));
            skip_ws(&s);
            if (at_end(&s))
                return fail(&s, "unexpected end of message");
            if (peek(&s) == (object ? '}' : ']')) {
                s.pos++;
                depth--;
                /* fall through to "after a value" */
            } else if (object) {
                goto member_name;
            } else {
                continue; /* first element */
            }
        }

        /* After a value: close containers, or move to the next element or member. */
        for (;;) {
            skip_ws(&s);
            if (depth == 0) {
                if (!at_end(&s))
                    return fail(&s, "unexpected data after the message");
                return UK_OK;
            }
            if (at_end(&s))
                return fail(&s, "unexpected end of message");
            bool object = stack[(depth - 1) / 8] & (1u << ((depth - 1) % 8));
            c = peek(&s);
            if (c == (object ? '}' : ']')) {
                s.pos++;
                depth--;
                continue;
            }
            if (c != ',')
                return fail(&s, object ? "expected ',' or '}'" : "expected ',' or ']'");
            s.pos++;
            if (!object)
                break; /* next element */
            skip_ws(&s);
            goto member_name;
        }
        continue;

    member_name:
        if (at_end(&s))
            return fail(&s, "unexpected end of message");
        if (peek(&s) != '"')
            return fail(&s, "expected a member name");
        rc = string(&s);
        if (rc != UK_OK)
            return rc;
        skip_ws(&s);
        if (at_end(&s) || peek(&s) != ':')
            return fail(&s, "expected ':'");
        s.pos++;
    }
}
