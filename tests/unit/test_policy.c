/* The policy: strict origin parsing, the allowlist, the Host check, extension IDs and the rate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "uk_config.h"
#include "uk_err.h"
#include "uk_log.h"
#include "uk_policy.h"

#define PORT 28473

/* Log lines captured from the code under test. */
static char logged[8192];

static void sink(void *ctx, uk_log_level level, const char *line, size_t len)
{
    (void)ctx;
    (void)level;
    size_t used = strlen(logged);
    if (used + len + 2 < sizeof logged) {
        memcpy(logged + used, line, len);
        logged[used + len] = '\n';
        logged[used + len + 1] = '\0';
    }
}

static uk_config *config(const char *json)
{
    uk_config *cfg = NULL;
    assert_int_equal(uk_config_parse(json, strlen(json), "test.json", &cfg), UK_OK);
    return cfg;
}

static const char *const allowed_json =
    "{\"origins\": [\"https://portal.example.cn\", \"http://127.0.0.1:8083\","
    " \"https://[::1]:8443\", \"https://xn--fiqs8s.example\"],"
    " \"extension_ids\": [\"abcdefghijklmnopabcdefghijklmnop\"],"
    " \"limits\": {\"requests_per_second_per_origin\": 5}}";

static int setup(void **state)
{
    logged[0] = '\0';
    uk_log_set_sink(sink, NULL);
    uk_log_set_level(UK_LOG_LEVEL_DEBUG);
    uk_config *cfg = config(allowed_json);
    uk_policy *p = NULL;
    assert_int_equal(uk_policy_new(cfg, &p), UK_OK);
    uk_config_free(cfg);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    uk_policy_free(*state);
    uk_log_set_sink(NULL, NULL);
    return 0;
}

static bool allowed(void **state, const char *origin)
{
    return uk_policy_origin_allowed(*state, origin, strlen(origin), NULL);
}

static void assert_parse_fails(const char *s, size_t len, const char *why_part)
{
    uk_origin o;
    const char *why = NULL;
    int rc = uk_origin_parse(s, len, &o, &why);
    if (rc == UK_OK)
        fail_msg("origin \"%.*s\" was accepted", (int)len, s);
    assert_int_equal(rc, UK_E_ORIGIN_NOT_ALLOWED);
    assert_non_null(why);
    if (why_part != NULL && strstr(why, why_part) == NULL)
        fail_msg("origin \"%.*s\": reason \"%s\" lacks \"%s\"", (int)len, s, why, why_part);
}

static void refused(const char *s, const char *why_part)
{
    assert_parse_fails(s, strlen(s), why_part);
}

/* --- the origin matrix of the issue, against the allowlist --- */

static void test_policy_allowed_origin_is_allowed(void **state)
{
    assert_true(allowed(state, "https://portal.example.cn"));
    assert_true(allowed(state, "http://127.0.0.1:8083"));
    assert_true(allowed(state, "https://[::1]:8443"));
    assert_true(allowed(state, "https://xn--fiqs8s.example"));
    assert_int_equal(uk_policy_origin_count(*state), 4);
}

static void test_policy_other_port_is_refused(void **state)
{
    assert_false(allowed(state, "https://portal.example.cn:8443"));
    assert_false(allowed(state, "http://127.0.0.1:8084"));
    assert_false(allowed(state, "http://127.0.0.1"));
}

static void test_policy_other_scheme_is_refused(void **state)
{
    assert_false(allowed(state, "wss://portal.example.cn"));
    assert_false(allowed(state, "ftp://portal.example.cn"));
    assert_false(allowed(state, "file://"));
    assert_false(allowed(state, "chrome-extension://abcdefghijklmnopabcdefghijklmnop"));
}

static void test_policy_http_and_https_are_different_origins(void **state)
{
    assert_false(allowed(state, "http://portal.example.cn"));
    assert_false(allowed(state, "https://127.0.0.1:8083"));
}

static void test_policy_uppercase_host_is_refused(void **state)
{
    assert_false(allowed(state, "https://Portal.example.cn"));
    assert_false(allowed(state, "https://PORTAL.EXAMPLE.CN"));
    assert_false(allowed(state, "HTTPS://portal.example.cn"));
    refused("https://Portal.example.cn", "uppercase");
}

static void test_policy_trailing_dot_is_refused(void **state)
{
    assert_false(allowed(state, "https://portal.example.cn."));
    refused("https://portal.example.cn.", "trailing dot");
    refused("http://127.0.0.1.:8083", "trailing dot");
}

static void test_policy_userinfo_is_refused(void **state)
{
    assert_false(allowed(state, "https://user@portal.example.cn"));
    assert_false(allowed(state, "https://portal.example.cn@evil.test"));
    refused("https://user:pw@portal.example.cn", "userinfo");
}

static void test_policy_idn_is_refused_unless_punycode(void **state)
{
    assert_false(allowed(state, "https://\xe4\xb8\xad\xe5\x9b\xbd.example")); /* 中国.example */
    refused("https://\xe4\xb8\xad\xe5\x9b\xbd.example", "non-ASCII");
    assert_true(allowed(state, "https://xn--fiqs8s.example"));
}

static void test_policy_null_missing_and_empty_are_refused(void **state)
{
    const char *why = NULL;
    assert_false(uk_policy_origin_allowed(*state, "null", 4, &why));
    assert_string_equal(why, "opaque origin null");
    assert_false(uk_policy_origin_allowed(*state, NULL, 0, &why));
    assert_string_equal(why, "missing or empty");
    assert_false(uk_policy_origin_allowed(*state, "", 0, NULL));
    assert_false(allowed(state, "Null"));
    assert_false(allowed(state, "null "));
}

static void test_policy_path_and_trailing_slash_are_refused(void **state)
{
    assert_false(allowed(state, "https://portal.example.cn/"));
    assert_false(allowed(state, "https://portal.example.cn/x"));
    refused("https://portal.example.cn/", "path");
    refused("https://portal.example.cn?a=1", "query");
    refused("https://portal.example.cn#f", "fragment");
    refused("https://portal.example.cn:443/", "path");
}

static void test_policy_default_port_written_out_is_refused(void **state)
{
    assert_false(allowed(state, "https://portal.example.cn:443"));
    refused("https://portal.example.cn:443", "default port");
    refused("http://example.cn:80", "default port");
    /* The other scheme's default port is an ordinary port. */
    uk_origin o;
    assert_int_equal(uk_origin_parse("https://example.cn:80", 21, &o, NULL), UK_OK);
    assert_int_equal(o.port, 80);
    assert_int_equal(o.scheme, UK_ORIGIN_HTTPS);
}

static void test_policy_bad_ports_are_refused(void **state)
{
    (void)state;
    refused("https://example.cn:0", "port");
    refused("https://example.cn:65536", "port");
    refused("https://example.cn:99999", "port");
    refused("https://example.cn:08443", "port");
    refused("https://example.cn:", "port");
    refused("https://example.cn:+80", "port");
    refused("https://example.cn:-1", "port");
    refused("https://example.cn:8443:1", "port");
    refused("https://example.cn:1x", "port");
    uk_origin o;
    assert_int_equal(uk_origin_parse("https://example.cn:65535", 24, &o, NULL), UK_OK);
    assert_int_equal(o.port, 65535);
    assert_int_equal(uk_origin_parse("https://example.cn:1", 20, &o, NULL), UK_OK);
    assert_int_equal(o.port, 1);
}

static void test_policy_embedded_nul_is_refused(void **state)
{
    static const char s[] = "https://portal.example.cn\0.evil.test";
    assert_false(uk_policy_origin_allowed(*state, s, sizeof s - 1, NULL));
    assert_parse_fails(s, sizeof s - 1, "NUL");
    /* The allowed origin followed by a NUL is not the allowed origin either. */
    assert_false(uk_policy_origin_allowed(*state, "https://portal.example.cn", 26, NULL));
}

static void test_policy_whitespace_and_control_bytes_are_refused(void **state)
{
    assert_false(allowed(state, " https://portal.example.cn"));
    assert_false(allowed(state, "https://portal.example.cn "));
    refused("https://portal.example.cn ", "whitespace");
    refused("https://portal .example.cn", "whitespace");
    refused("https://portal.example.cn\t", "whitespace");
    refused("https://portal.example.cn\r\nX: y", "control");
    refused("https://portal.example.cn\x7f", "control");
}

static void test_policy_very_long_origin_is_refused(void **state)
{
    char big[70000];
    memset(big, 'a', sizeof big);
    memcpy(big, "https://", 8);
    assert_false(uk_policy_origin_allowed(*state, big, sizeof big, NULL));
    assert_parse_fails(big, sizeof big, "too long");
    /* A 64-byte label is one too many; 253 bytes of name is the most. */
    char name[400];
    snprintf(name, sizeof name, "https://%.64s.cn", big + 8);
    refused(name, "63");
    char longest[300] = "https://";
    for (int i = 0; i < 4; i++)
        strcat(longest, i < 3 ? "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
                              : "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    uk_origin o;
    assert_int_equal(strlen(longest), 8 + 253);
    assert_int_equal(uk_origin_parse(longest, strlen(longest), &o, NULL), UK_OK);
    strcat(longest, "a");
    refused(longest, "253");
}

static void test_policy_percent_encoding_and_odd_hosts_are_refused(void **state)
{
    (void)state;
    refused("https://portal%2eexample.cn", "percent");
    refused("https://[::1%25lo]:8443", "percent");
    refused("https://", "empty host");
    refused("https://:8443", "empty host");
    refused("https://a..cn", "empty label");
    refused("https://.cn", "empty label");
    refused("https://-a.cn", "'-'");
    refused("https://a-.cn", "'-'");
    refused("https://a_b.cn", "character");
    refused("https://a*.cn", "character");
    refused("https://*.example.cn", "character");
    refused("https://a,b.cn", "character");
    refused("https:portal.example.cn", "scheme");
    refused("https:/portal.example.cn", "scheme");
    refused("//portal.example.cn", "scheme");
    refused("portal.example.cn", "scheme");
    refused("https://a.cn\\x", "character");
}

static void test_policy_ip_literals_must_be_canonical(void **state)
{
    (void)state;
    uk_origin o;
    assert_int_equal(uk_origin_parse("http://10.0.0.1", 15, &o, NULL), UK_OK);
    assert_int_equal(o.host_kind, UK_ORIGIN_HOST_IPV4);
    refused("http://127.1", "IPv4");
    refused("http://0x7f.0.0.1", "IPv4");
    refused("http://127.000.000.001", "IPv4");
    refused("http://256.0.0.1", "IPv4");
    refused("http://1.2.3.4.5", "IPv4");
    refused("http://2130706433", "IPv4");
    refused("http://a.1", "IPv4");
    const char *v6 = "https://[2001:db8::1]";
    assert_int_equal(uk_origin_parse(v6, strlen(v6), &o, NULL), UK_OK);
    assert_int_equal(o.host_kind, UK_ORIGIN_HOST_IPV6);
    assert_string_equal(o.host, "[2001:db8::1]");
    refused("https://[2001:0db8::1]", "canonical");
    refused("https://[2001:db8:0:0:0:0:0:1]", "canonical");
    refused("https://[::ffff:127.0.0.1]", "canonical");
    refused("https://[0:0:0:0:0:0:0:1]", "canonical");
    refused("https://[1:0:0:2:0:0:0:3]", "canonical"); /* the longer run is compressed */
    const char *v6b = "https://[1::2:0:0:0:3]";
    refused(v6b, "canonical");
    const char *v6c = "https://[1::2:0:0:3]";
    assert_int_equal(uk_origin_parse(v6c, strlen(v6c), &o, NULL), UK_OK);
    const char *v6d = "https://[1:0:2:3:4:5:6:7]"; /* a single zero piece is not compressed */
    assert_int_equal(uk_origin_parse(v6d, strlen(v6d), &o, NULL), UK_OK);
    refused("https://[::1", "IPv6");
    refused("https://[::1]x", "IPv6");
    refused("https://[zz::1]", "IPv6");
    refused("https://::1", "port");
}

static void test_policy_chrome_extension_origins(void **state)
{
    (void)state;
    uk_origin o;
    const char *ok = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";
    assert_int_equal(uk_origin_parse(ok, strlen(ok), &o, NULL), UK_OK);
    assert_int_equal(o.scheme, UK_ORIGIN_CHROME_EXTENSION);
    assert_int_equal(o.host_kind, UK_ORIGIN_HOST_EXTENSION_ID);
    refused("chrome-extension://abcdefghijklmnopabcdefghijklmnop/", "path");
    refused("chrome-extension://abcdefghijklmnopabcdefghijklmnoq", "extension ID");
    refused("chrome-extension://abcdefghijklmnopabcdefghijklmno", "extension ID");
    refused("chrome-extension://abcdefghijklmnopabcdefghijklmnop:1", "port");
}

static void test_policy_parse_fills_every_field(void **state)
{
    (void)state;
    uk_origin o;
    const char *s = "https://portal.example.cn:8443";
    assert_int_equal(uk_origin_parse(s, strlen(s), &o, NULL), UK_OK);
    assert_int_equal(o.scheme, UK_ORIGIN_HTTPS);
    assert_int_equal(o.host_kind, UK_ORIGIN_HOST_DNS);
    assert_int_equal(o.port, 8443);
    assert_string_equal(o.host, "portal.example.cn");
    assert_string_equal(o.text, s);
}

/* --- configuration --- */

static void assert_config_refused(const char *json, const char *log_part)
{
    uk_config *cfg = config(json);
    uk_policy *p = NULL;
    logged[0] = '\0';
    assert_int_equal(uk_policy_new(cfg, &p), UK_E_CONFIG_INVALID);
    assert_null(p);
    uk_config_free(cfg);
    if (strstr(logged, log_part) == NULL)
        fail_msg("log \"%s\" lacks \"%s\"", logged, log_part);
}

static void test_policy_config_origin_must_be_canonical(void **state)
{
    (void)state;
    assert_config_refused("{\"origins\": [\"https://Portal.Example.cn/\"]}",
                          "write it as \"https://portal.example.cn\"");
    assert_config_refused("{\"origins\": [\"https://portal.example.cn:443\"]}",
                          "write it as \"https://portal.example.cn\"");
    assert_config_refused("{\"origins\": [\"https://portal.example.cn.\"]}",
                          "write it as \"https://portal.example.cn\"");
    assert_config_refused("{\"origins\": [\" http://127.0.0.1:8083 \"]}",
                          "write it as \"http://127.0.0.1:8083\"");
    assert_config_refused("{\"origins\": [\"https://*.example.cn\"]}", "is not valid");
    assert_config_refused("{\"origins\": [\"null\"]}", "opaque origin null");
    assert_config_refused("{\"origins\": [\"https://u@portal.example.cn\"]}", "userinfo");
    assert_config_refused("{\"origins\": [\"https://a.cn/path\"]}", "path");
}

static void test_policy_config_extension_id_must_be_well_formed(void **state)
{
    (void)state;
    assert_config_refused("{\"extension_ids\": [\"ABCDEFGHIJKLMNOPABCDEFGHIJKLMNOP\"]}",
                          "not 32 letters a-p");
    assert_config_refused("{\"extension_ids\": [\"abcdefghijklmnopabcdefghijklmnoz\"]}",
                          "not 32 letters a-p");
    assert_config_refused("{\"extension_ids\": [\"abc\"]}", "not 32 letters a-p");
}

static void test_policy_suggest_gives_canonical_form(void **state)
{
    (void)state;
    char buf[UK_ORIGIN_MAX + 1];
    const char *s = "HTTPS://Portal.Example.CN.:443/";
    assert_true(uk_origin_suggest(s, strlen(s), buf, sizeof buf));
    assert_string_equal(buf, "https://portal.example.cn");
    s = "https://portal.example.cn";
    assert_false(uk_origin_suggest(s, strlen(s), buf, sizeof buf));
    assert_string_equal(buf, "");
    s = "https://a.cn/deep/path";
    assert_false(uk_origin_suggest(s, strlen(s), buf, sizeof buf));
    assert_false(uk_origin_suggest(NULL, 0, buf, sizeof buf));
}

static void test_policy_empty_config_allows_nothing(void **state)
{
    (void)state;
    uk_config *cfg = config("{}");
    uk_policy *p = NULL;
    assert_int_equal(uk_policy_new(cfg, &p), UK_OK);
    uk_config_free(cfg);
    assert_false(uk_policy_origin_allowed(p, "https://portal.example.cn", 25, NULL));
    assert_false(uk_policy_extension_allowed(p, "abcdefghijklmnopabcdefghijklmnop"));
    assert_int_equal(uk_policy_origin_count(p), 0);
    uk_policy_free(p);
    uk_policy_free(NULL);
}

static void test_policy_duplicates_count_once(void **state)
{
    (void)state;
    uk_config *cfg = config("{\"origins\": [\"https://a.cn\", \"https://a.cn\"]}");
    uk_policy *p = NULL;
    assert_int_equal(uk_policy_new(cfg, &p), UK_OK);
    uk_config_free(cfg);
    assert_int_equal(uk_policy_origin_count(p), 1);
    uk_policy_free(p);
}

/* --- Host --- */

static bool host(const char *h, uint16_t port)
{
    return uk_policy_host_allowed(h, strlen(h), port);
}

static void test_policy_host_matrix(void **state)
{
    (void)state;
    assert_true(host("127.0.0.1:28473", PORT));
    assert_true(host("localhost:28473", PORT));
    assert_false(host("127.0.0.1:28474", PORT));  /* wrong port */
    assert_false(host("localhost:2847", PORT));   /* prefix of the port */
    assert_false(host("localhost:284730", PORT)); /* port with a digit more */
    assert_false(host("localhost:028473", PORT)); /* leading zero */
    assert_false(host("127.0.0.1", PORT));        /* missing port */
    assert_false(host("localhost", PORT));        /* missing port */
    assert_false(host("127.0.0.1:", PORT));       /* empty port */
    assert_false(host("evil.test:28473", PORT));  /* DNS rebinding */
    assert_false(host("127.0.0.2:28473", PORT));  /* other loopback address */
    assert_false(host("127.1:28473", PORT));      /* short form */
    assert_false(host("[::1]:28473", PORT));      /* IPv6: we listen on IPv4 only */
    assert_false(host("LOCALHOST:28473", PORT));  /* browsers lowercase the host */
    assert_false(host("Localhost:28473", PORT));
    assert_false(host("localhost.:28473", PORT));  /* trailing dot */
    assert_false(host("u@localhost:28473", PORT)); /* userinfo */
    assert_false(host("localhost:28473 ", PORT));
    assert_false(host(" localhost:28473", PORT));
    assert_false(host("localhost:28473/", PORT));
    assert_false(host("", PORT));
    assert_false(uk_policy_host_allowed(NULL, 0, PORT));
    assert_false(host("127.0.0.1:0", 0));
    static const char nul[] = "localhost:28473\0x";
    assert_false(uk_policy_host_allowed(nul, sizeof nul - 1, PORT));
    assert_true(host("127.0.0.1:1", 1));
    assert_true(host("localhost:65535", 65535));
}

/* --- extensions --- */

static void test_policy_extension_ids(void **state)
{
    assert_true(uk_policy_extension_allowed(*state, "abcdefghijklmnopabcdefghijklmnop"));
    assert_false(uk_policy_extension_allowed(*state, "bbcdefghijklmnopabcdefghijklmnop"));
    assert_false(uk_policy_extension_allowed(*state, "abcdefghijklmnopabcdefghijklmnopa"));
    assert_false(uk_policy_extension_allowed(*state, "ABCDEFGHIJKLMNOPABCDEFGHIJKLMNOP"));
    assert_false(uk_policy_extension_allowed(*state, ""));
    assert_false(uk_policy_extension_allowed(*state, NULL));
    assert_true(uk_extension_id_valid("pppppppppppppppppppppppppppppppp", 32));
    assert_false(uk_extension_id_valid("qppppppppppppppppppppppppppppppp", 32));
}

/* --- reload --- */

static void test_policy_reload_replaces_allowlist(void **state)
{
    uk_config *cfg = config("{\"origins\": [\"https://new.example.cn\"]}");
    assert_int_equal(uk_policy_reload(*state, cfg), UK_OK);
    uk_config_free(cfg);
    assert_true(allowed(state, "https://new.example.cn"));
    assert_false(allowed(state, "https://portal.example.cn"));
    assert_false(uk_policy_extension_allowed(*state, "abcdefghijklmnopabcdefghijklmnop"));
}

static void test_policy_failed_reload_keeps_old_policy(void **state)
{
    uk_config *cfg = config("{\"origins\": [\"https://new.example.cn\", \"https://BAD.cn\"]}");
    assert_int_equal(uk_policy_reload(*state, cfg), UK_E_CONFIG_INVALID);
    uk_config_free(cfg);
    assert_true(allowed(state, "https://portal.example.cn"));
    assert_false(allowed(state, "https://new.example.cn"));
}

/* --- rate --- */

static void test_policy_rate_allows_burst_then_refuses(void **state)
{
    const char *o = "https://portal.example.cn";
    for (int i = 0; i < 5; i++)
        assert_true(uk_policy_rate_take(*state, o, 1000));
    assert_false(uk_policy_rate_take(*state, o, 1000));
    assert_false(uk_policy_rate_take(*state, o, 1100)); /* half a token */
    assert_true(uk_policy_rate_take(*state, o, 1200));  /* 1 token after 200 ms at 5/s */
    assert_false(uk_policy_rate_take(*state, o, 1200));
    assert_false(uk_policy_rate_take(*state, o, 500)); /* the clock going back adds nothing */
    for (int i = 0; i < 5; i++)
        assert_true(uk_policy_rate_take(*state, o, 999999));
    assert_false(uk_policy_rate_take(*state, o, 999999));
}

static void test_policy_rate_is_per_origin(void **state)
{
    for (int i = 0; i < 5; i++)
        assert_true(uk_policy_rate_take(*state, "https://portal.example.cn", 0));
    assert_false(uk_policy_rate_take(*state, "https://portal.example.cn", 0));
    assert_true(uk_policy_rate_take(*state, "http://127.0.0.1:8083", 0));
    assert_true(
        uk_policy_rate_take(*state, "chrome-extension://abcdefghijklmnopabcdefghijklmnop", 0));
}

static void test_policy_rate_unknown_origin_refused_local_unlimited(void **state)
{
    assert_false(uk_policy_rate_take(*state, "https://evil.test", 0));
    for (int i = 0; i < 1000; i++)
        assert_true(uk_policy_rate_take(*state, NULL, 0));
}

static void test_policy_rate_state_survives_reload(void **state)
{
    const char *o = "https://portal.example.cn";
    for (int i = 0; i < 5; i++)
        assert_true(uk_policy_rate_take(*state, o, 0));
    uk_config *cfg = config(allowed_json);
    assert_int_equal(uk_policy_reload(*state, cfg), UK_OK);
    uk_config_free(cfg);
    assert_false(uk_policy_rate_take(*state, o, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_policy_allowed_origin_is_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_other_port_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_other_scheme_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_http_and_https_are_different_origins, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_uppercase_host_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_trailing_dot_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_userinfo_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_idn_is_refused_unless_punycode, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_null_missing_and_empty_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_path_and_trailing_slash_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_default_port_written_out_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_bad_ports_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_embedded_nul_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_whitespace_and_control_bytes_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_very_long_origin_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_percent_encoding_and_odd_hosts_are_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_ip_literals_must_be_canonical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_chrome_extension_origins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_parse_fills_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_config_origin_must_be_canonical, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_config_extension_id_must_be_well_formed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_suggest_gives_canonical_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_empty_config_allows_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_duplicates_count_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_host_matrix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_extension_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_reload_replaces_allowlist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_failed_reload_keeps_old_policy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_rate_allows_burst_then_refuses, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_rate_is_per_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_rate_unknown_origin_refused_local_unlimited,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_rate_state_survives_reload, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
