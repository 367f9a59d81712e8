/*
 * fuzz_origin.c - libFuzzer target for strict origin parsing and the WSS gates
 * (daemon/policy/uk_policy.h): uk_origin_parse, uk_origin_suggest, uk_policy_origin_allowed,
 * uk_policy_host_allowed and the extension-ID checks, all on the whole input.
 *
 * Invariants checked: a parsed origin's text equals the input byte for byte, is NUL-free and
 * no longer than UK_ORIGIN_MAX; an allowed origin parses; a suggestion parses and differs from
 * the input; an allowed Host names 127.0.0.1 or localhost with the port.
 * Corpus: tests/fuzz/corpus/origin/.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "uk_config.h"
#include "uk_err.h"
#include "uk_policy.h"

static uk_policy *the_policy(void)
{
    static uk_policy *policy;
    static const char cfg_text[] =
        "{\"origins\": [\"https://portal.example.cn\", \"https://xn--fiqs8s.example:8443\","
        " \"http://127.0.0.1:8080\", \"https://[2001:db8::1]\"],"
        " \"extension_ids\": [\"abcdefghijklmnopabcdefghijklmnop\"]}";
    if (policy == NULL) {
        uk_config *cfg = NULL;
        setenv("HOME", "/nonexistent/fuzz-home", 1);
        if (uk_config_parse(cfg_text, strlen(cfg_text), "fuzz", &cfg) != UK_OK ||
            uk_policy_new(cfg, &policy) != UK_OK)
            abort();
        uk_config_free(cfg);
    }
    return policy;
}

static void check_host(const char *s, size_t len, uint16_t port)
{
    if (!uk_policy_host_allowed(s, len, port))
        return;
    char a[32], b[32];
    int na = snprintf(a, sizeof(a), "127.0.0.1:%u", (unsigned)port);
    int nb = snprintf(b, sizeof(b), "localhost:%u", (unsigned)port);
    if (port == 0 || !(((size_t)na == len && memcmp(s, a, len) == 0) ||
                       ((size_t)nb == len && memcmp(s, b, len) == 0)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    uk_policy *policy;
    uk_origin o;
    const char *why = NULL;

    uk_fuzz_quiet();
    policy = the_policy();

    memset(&o, 0xA5, sizeof(o));
    bool parsed = uk_origin_parse(s, size, &o, &why) == UK_OK;
    if (parsed) {
        if (size > UK_ORIGIN_MAX || strlen(o.text) != size || memcmp(o.text, s, size) != 0 ||
            strlen(o.host) == 0 || strlen(o.host) > size)
            abort();
        if (o.scheme < UK_ORIGIN_HTTP || o.scheme > UK_ORIGIN_CHROME_EXTENSION ||
            o.host_kind < UK_ORIGIN_HOST_DNS || o.host_kind > UK_ORIGIN_HOST_EXTENSION_ID)
            abort();
    } else if (why == NULL) {
        abort();
    }

    char buf[UK_ORIGIN_MAX + 1];
    if (uk_origin_suggest(s, size, buf, sizeof(buf))) {
        uk_origin again;
        size_t n = strlen(buf);
        if (uk_origin_parse(buf, n, &again, NULL) != UK_OK || (n == size && !memcmp(buf, s, n)))
            abort();
    } else if (buf[0] != '\0') {
        abort();
    }

    why = NULL;
    if (uk_policy_origin_allowed(policy, s, size, &why) && !parsed)
        abort();

    check_host(s, size, 28473);
    check_host(s, size, size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 0);
    check_host(size >= 2 ? s + 2 : s, size >= 2 ? size - 2 : size,
               size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 0);

    bool id_ok = uk_extension_id_valid(s, size);
    if (id_ok && size != UK_EXTENSION_ID_LEN)
        abort();
    char *z = malloc(size + 1);
    if (z == NULL)
        return 0;
    memcpy(z, s, size);
    z[size] = '\0';
    /* z ends at the input's first NUL, if any: check the ID on what the policy sees. */
    if (uk_policy_extension_allowed(policy, z) &&
        (!uk_extension_id_valid(z, strlen(z)) ||
         strcmp(z, "abcdefghijklmnopabcdefghijklmnop") != 0))
        abort();
    (void)uk_policy_rate_take(policy, z, 0);
    free(z);
    return 0;
}
