/* The policy: strict origin parsing, the allowlist, the Host check, extension IDs and the rate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* A fresh XDG_STATE_HOME per test: the default state_dir, where the pairing store lives. */
static char state_home[64];
static char state_dir[96];
static char store[160];

static int setup(void **state)
{
    strcpy(state_home, "/tmp/uk-policy-XXXXXX");
    assert_non_null(mkdtemp(state_home));
    setenv("XDG_STATE_HOME", state_home, 1);
    snprintf(state_dir, sizeof state_dir, "%s/ukeyd", state_home);
    snprintf(store, sizeof store, "%s/%s", state_dir, UK_POLICY_PAIRING_FILE);
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
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", state_home);
    assert_int_equal(system(cmd), 0);
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
    /* Neither allowed nor pairable: no bucket. */
    assert_false(uk_policy_rate_take(*state, "http://evil.test", 0));
    assert_false(uk_policy_rate_take(*state, "https://Evil.test", 0));
    assert_false(
        uk_policy_rate_take(*state, "chrome-extension://bbcdefghijklmnopabcdefghijklmnop", 0));
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

/* --- access classes --- */

static uk_origin_access access_of(void **state, const char *origin)
{
    return uk_policy_origin_access(*state, origin);
}

static uk_origin_access wss_access(void **state, const char *origin, const char **why)
{
    return uk_policy_wss_origin_access(*state, origin, strlen(origin), why);
}

static void test_policy_access_classes(void **state)
{
    const char *ext = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";
    assert_int_equal(access_of(state, "https://portal.example.cn"), UK_ACCESS_ALLOWED);
    assert_int_equal(access_of(state, "http://127.0.0.1:8083"), UK_ACCESS_ALLOWED);
    assert_int_equal(access_of(state, ext), UK_ACCESS_ALLOWED);
    /* Web origins not listed: pairable. */
    assert_int_equal(access_of(state, "https://new.example.cn"), UK_ACCESS_PAIRABLE);
    assert_int_equal(access_of(state, "https://portal.example.cn:8443"), UK_ACCESS_PAIRABLE);
    assert_int_equal(access_of(state, "http://127.0.0.1:9999"), UK_ACCESS_PAIRABLE);
    assert_int_equal(access_of(state, "http://127.0.0.1"), UK_ACCESS_PAIRABLE);
    assert_int_equal(access_of(state, "http://localhost:3000"), UK_ACCESS_PAIRABLE);
    assert_int_equal(access_of(state, "http://[::1]:8080"), UK_ACCESS_PAIRABLE);
    /* Plain http elsewhere can be spoofed on the network: never pairable. */
    assert_int_equal(access_of(state, "http://portal.example.cn"), UK_ACCESS_REFUSED);
    assert_int_equal(access_of(state, "http://127.0.0.2:8083"), UK_ACCESS_REFUSED);
    assert_int_equal(access_of(state, "http://192.168.1.10"), UK_ACCESS_REFUSED);
    assert_int_equal(access_of(state, "http://localhost.example.cn"), UK_ACCESS_REFUSED);
    /* Extensions only through extension_ids. */
    assert_int_equal(access_of(state, "chrome-extension://bbcdefghijklmnopabcdefghijklmnop"),
                     UK_ACCESS_REFUSED);
    /* Malformed. */
    assert_int_equal(access_of(state, "https://New.example.cn"), UK_ACCESS_REFUSED);
    assert_int_equal(access_of(state, "https://new.example.cn/"), UK_ACCESS_REFUSED);
    assert_int_equal(access_of(state, "null"), UK_ACCESS_REFUSED);
    assert_int_equal(access_of(state, ""), UK_ACCESS_REFUSED);
    assert_int_equal(access_of(state, NULL), UK_ACCESS_REFUSED);
    assert_int_equal(uk_policy_origin_access(NULL, "https://portal.example.cn"), UK_ACCESS_REFUSED);

    /* Over WSS an extension origin counts only when listed in origins. */
    const char *why = NULL;
    assert_int_equal(wss_access(state, ext, &why), UK_ACCESS_REFUSED);
    assert_non_null(why);
    assert_int_equal(wss_access(state, "https://portal.example.cn", NULL), UK_ACCESS_ALLOWED);
    why = NULL;
    assert_int_equal(wss_access(state, "https://new.example.cn", &why), UK_ACCESS_PAIRABLE);
    assert_string_equal(why, "not paired yet");
    assert_int_equal(uk_policy_wss_origin_access(*state, NULL, 0, &why), UK_ACCESS_REFUSED);
    /* The gate lets only ALLOWED and PAIRED through. */
    assert_false(allowed(state, "https://new.example.cn"));
    assert_true(uk_policy_pairing_enabled(*state));
}

static void test_policy_pairing_off_refuses_unknown_origins(void **state)
{
    (void)state;
    uk_config *cfg = config("{\"origins\": [\"https://a.cn\"], \"pairing\": false}");
    uk_policy *p = NULL;
    assert_int_equal(uk_policy_new(cfg, &p), UK_OK);
    uk_config_free(cfg);
    assert_false(uk_policy_pairing_enabled(p));
    assert_int_equal(uk_policy_origin_access(p, "https://a.cn"), UK_ACCESS_ALLOWED);
    assert_int_equal(uk_policy_origin_access(p, "https://b.cn"), UK_ACCESS_REFUSED);
    const char *why = NULL;
    assert_false(uk_policy_origin_allowed(p, "https://b.cn", 12, &why));
    assert_non_null(strstr(why, "pairing is off"));
    assert_int_equal(uk_policy_pair(p, "https://b.cn", 1000), UK_E_ORIGIN_NOT_ALLOWED);
    assert_false(uk_policy_rate_take(p, "https://b.cn", 0));
    uk_policy_free(p);
}

/* --- pairing store --- */

static uk_policy *reopen(uk_policy *p, const char *json)
{
    uk_policy_free(p);
    uk_config *cfg = config(json);
    uk_policy *q = NULL;
    assert_int_equal(uk_policy_new(cfg, &q), UK_OK);
    uk_config_free(cfg);
    return q;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    mkdir(state_dir, 0700);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = calloc(1, 256 * 1024);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 256 * 1024 - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_policy_pair_persists_across_restart(void **state)
{
    const char *o = "https://new.example.cn";
    struct stat st;
    assert_int_not_equal(stat(state_dir, &st), 0); /* nothing written before the first pair */
    assert_int_equal(uk_policy_pair(*state, o, 1764000000), UK_OK);
    assert_int_equal(access_of(state, o), UK_ACCESS_PAIRED);
    assert_true(allowed(state, o));
    assert_int_equal(uk_policy_paired_count(*state), 1);
    /* Already paired, listed, or never pairable: refused. */
    assert_int_equal(uk_policy_pair(*state, o, 1), UK_E_ORIGIN_NOT_ALLOWED);
    assert_int_equal(uk_policy_pair(*state, "https://portal.example.cn", 1),
                     UK_E_ORIGIN_NOT_ALLOWED);
    assert_int_equal(uk_policy_pair(*state, "http://evil.test", 1), UK_E_ORIGIN_NOT_ALLOWED);
    assert_int_equal(
        uk_policy_pair(*state, "chrome-extension://bbcdefghijklmnopabcdefghijklmnop", 1),
        UK_E_ORIGIN_NOT_ALLOWED);
    assert_int_equal(uk_policy_pair(*state, "https://Bad.cn", 1), UK_E_ORIGIN_NOT_ALLOWED);
    assert_int_equal(uk_policy_pair(*state, NULL, 1), UK_E_ORIGIN_NOT_ALLOWED);
    assert_int_equal(uk_policy_pair(*state, "http://localhost:3000", 1764000001), UK_OK);

    /* Private file in a private directory, no temporary left behind. */
    assert_int_equal(stat(store, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(state_dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", state_dir);
    assert_int_equal(system(cmd), 0);

    *state = reopen(*state, allowed_json);
    assert_int_equal(uk_policy_paired_count(*state), 2);
    assert_int_equal(access_of(state, o), UK_ACCESS_PAIRED);
    assert_int_equal(access_of(state, "http://localhost:3000"), UK_ACCESS_PAIRED);
}

static void test_policy_unpair(void **state)
{
    const char *o = "https://new.example.cn";
    assert_int_equal(uk_policy_unpair(*state, o), UK_E_NOT_FOUND);
    assert_int_equal(uk_policy_pair(*state, o, 5), UK_OK);
    assert_int_equal(uk_policy_pair(*state, "https://other.example.cn", 6), UK_OK);
    assert_int_equal(uk_policy_unpair(*state, o), UK_OK);
    assert_int_equal(access_of(state, o), UK_ACCESS_PAIRABLE);
    assert_int_equal(uk_policy_unpair(*state, o), UK_E_NOT_FOUND);
    assert_int_equal(uk_policy_unpair(*state, "https://portal.example.cn"), UK_E_NOT_FOUND);
    assert_int_equal(uk_policy_unpair(*state, NULL), UK_E_NOT_FOUND);
    *state = reopen(*state, allowed_json);
    assert_int_equal(access_of(state, o), UK_ACCESS_PAIRABLE);
    assert_int_equal(access_of(state, "https://other.example.cn"), UK_ACCESS_PAIRED);
}

static void assert_store_corrupt(void **state, const char *text)
{
    char corrupt[200];
    snprintf(corrupt, sizeof corrupt, "%s.corrupt", store);
    unlink(corrupt);
    write_text(store, text, 0600);
    logged[0] = '\0';
    *state = reopen(*state, allowed_json);
    assert_int_equal(uk_policy_paired_count(*state), 0);
    if (strstr(logged, "corrupt") == NULL)
        fail_msg("not reported corrupt: %s", text);
    /* A copy is kept and the file itself is left alone until the next pair. */
    char *copy = read_text(corrupt);
    assert_non_null(copy);
    assert_string_equal(copy, text);
    free(copy);
    char *still = read_text(store);
    assert_string_equal(still, text);
    free(still);
}

static void test_policy_corrupt_store_is_empty_and_kept(void **state)
{
    assert_store_corrupt(state, "{not json");
    assert_store_corrupt(state, "[]");
    assert_store_corrupt(state, "{\"version\": 2, \"origins\": []}");
    assert_store_corrupt(state, "{\"version\": 1, \"origins\": {}}");
    assert_store_corrupt(state, "{\"version\": 1, \"origins\": [{\"origin\": \"http://evil.test\","
                                " \"paired_at\": 1}]}");
    assert_store_corrupt(state, "{\"version\": 1, \"origins\": [{\"origin\": \"chrome-extension://"
                                "bbcdefghijklmnopabcdefghijklmnop\", \"paired_at\": 1}]}");
    assert_store_corrupt(state, "{\"version\": 1, \"origins\": [{\"origin\": \"https://a.cn\","
                                " \"paired_at\": -1}]}");
    assert_store_corrupt(state, "{\"version\": 1, \"origins\": [{\"origin\": \"https://a.cn\","
                                " \"paired_at\": 1}, {\"origin\": \"https://a.cn\","
                                " \"paired_at\": 2}]}");
    assert_store_corrupt(state, "{\"version\": 1, \"origins\": [{\"paired_at\": 1}]}");

    /* The next pair replaces it with a good store. */
    assert_int_equal(uk_policy_pair(*state, "https://new.example.cn", 7), UK_OK);
    *state = reopen(*state, allowed_json);
    assert_int_equal(uk_policy_paired_count(*state), 1);
}

static void test_policy_untrusted_store_is_ignored(void **state)
{
    write_text(store,
               "{\"version\": 1, \"origins\": [{\"origin\": \"https://a.cn\", \"paired_at\": 1}]}",
               0666);
    *state = reopen(*state, allowed_json);
    assert_int_equal(uk_policy_paired_count(*state), 0);
    assert_non_null(strstr(logged, "not a private file"));
    assert_int_equal(chmod(store, 0600), 0);
    *state = reopen(*state, allowed_json);
    assert_int_equal(uk_policy_paired_count(*state), 1);
    assert_int_equal(access_of(state, "https://a.cn"), UK_ACCESS_PAIRED);
}

static void write_store_of(size_t n)
{
    size_t size = 64 + n * 64;
    char *text = malloc(size);
    assert_non_null(text);
    size_t off = (size_t)snprintf(text, size, "{\"version\": 1, \"origins\": [");
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(text + off, size - off,
                                "%s{\"origin\": \"https://o%zu.example.cn\", \"paired_at\": %zu}",
                                i ? ", " : "", i, i);
    snprintf(text + off, size - off, "]}");
    write_text(store, text, 0600);
    free(text);
}

static void test_policy_pairing_limit(void **state)
{
    write_store_of(UK_POLICY_MAX_PAIRED);
    *state = reopen(*state, allowed_json);
    assert_int_equal(uk_policy_paired_count(*state), UK_POLICY_MAX_PAIRED);
    assert_int_equal(access_of(state, "https://o255.example.cn"), UK_ACCESS_PAIRED);
    assert_int_equal(uk_policy_pair(*state, "https://one-more.example.cn", 1), UK_E_LIMIT_EXCEEDED);
    assert_int_equal(uk_policy_unpair(*state, "https://o0.example.cn"), UK_OK);
    assert_int_equal(uk_policy_pair(*state, "https://one-more.example.cn", 1), UK_OK);
    /* More than the limit in the file is corruption. */
    write_store_of(UK_POLICY_MAX_PAIRED + 1);
    *state = reopen(*state, allowed_json);
    assert_int_equal(uk_policy_paired_count(*state), 0);
}

static void test_policy_pair_write_failure_leaves_origin_unpaired(void **state)
{
    /* state_dir under a regular file: the directory cannot be made. */
    char blocker[128], json[256];
    snprintf(blocker, sizeof blocker, "%s/blocker", state_home);
    write_text(blocker, "x", 0600);
    snprintf(json, sizeof json, "{\"state_dir\": \"%s/sub\"}", blocker);
    *state = reopen(*state, json);
    assert_int_equal(uk_policy_pair(*state, "https://new.example.cn", 1), UK_E_IO);
    assert_int_equal(access_of(state, "https://new.example.cn"), UK_ACCESS_PAIRABLE);
    assert_int_equal(uk_policy_paired_count(*state), 0);
}

static void test_policy_reload_keeps_pairings(void **state)
{
    const char *o = "https://new.example.cn";
    assert_int_equal(uk_policy_pair(*state, o, 9), UK_OK);
    uk_config *cfg = config("{\"origins\": [\"https://x.cn\"]}");
    assert_int_equal(uk_policy_reload(*state, cfg), UK_OK);
    uk_config_free(cfg);
    assert_int_equal(access_of(state, o), UK_ACCESS_PAIRED);
    /* Pairing turned off suspends the pairing; on again restores it. */
    cfg = config("{\"pairing\": false}");
    assert_int_equal(uk_policy_reload(*state, cfg), UK_OK);
    uk_config_free(cfg);
    assert_int_equal(access_of(state, o), UK_ACCESS_REFUSED);
    assert_false(uk_policy_method_allowed(*state, o, "token.list"));
    assert_int_equal(uk_policy_paired_count(*state), 1);
    /* Revoking still works while it is off. */
    cfg = config("{}");
    assert_int_equal(uk_policy_reload(*state, cfg), UK_OK);
    uk_config_free(cfg);
    assert_int_equal(access_of(state, o), UK_ACCESS_PAIRED);
}

/* --- per-origin rules --- */

static const char *const rules_json =
    "{\"origins\": [\"https://a.cn\", \"https://b.cn\", \"https://c.cn\"],"
    " \"extension_ids\": [\"abcdefghijklmnopabcdefghijklmnop\"],"
    " \"origin_policies\": {"
    "  \"https://a.cn\": {\"methods\": [\"token.list\", \"cert.sign\"], \"pin_from_page\": true,"
    "                    \"consent\": \"session\"},"
    "  \"https://c.cn\": {\"methods\": []},"
    "  \"https://paired.cn\": {\"consent\": \"session\"},"
    "  \"https://pairable.cn\": {\"pin_from_page\": true},"
    "  \"chrome-extension://abcdefghijklmnopabcdefghijklmnop\": {\"methods\": [\"cert.list\"]}}}";

static void test_policy_per_origin_rules_and_defaults(void **state)
{
    *state = reopen(*state, rules_json);
    uk_policy *p = *state;
    assert_true(uk_policy_method_allowed(p, "https://a.cn", "cert.sign"));
    assert_false(uk_policy_method_allowed(p, "https://a.cn", "cert.write"));
    assert_false(uk_policy_method_allowed(p, "https://a.cn", NULL));
    assert_true(uk_policy_pin_from_page(p, "https://a.cn"));
    assert_int_equal(uk_policy_consent(p, "https://a.cn"), UK_CONSENT_SESSION);
    /* No entry: the defaults. */
    assert_true(uk_policy_method_allowed(p, "https://b.cn", "anything.at.all"));
    assert_false(uk_policy_pin_from_page(p, "https://b.cn"));
    assert_int_equal(uk_policy_consent(p, "https://b.cn"), UK_CONSENT_REQUEST);
    /* An empty list allows nothing. */
    assert_false(uk_policy_method_allowed(p, "https://c.cn", "token.list"));
    const char *ext = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";
    assert_true(uk_policy_method_allowed(p, ext, "cert.list"));
    assert_false(uk_policy_method_allowed(p, ext, "cert.sign"));
    /* Rules apply to a paired origin too. */
    assert_int_equal(uk_policy_consent(p, "https://paired.cn"), UK_CONSENT_REQUEST);
    assert_int_equal(uk_policy_pair(p, "https://paired.cn", 1), UK_OK);
    assert_int_equal(uk_policy_consent(p, "https://paired.cn"), UK_CONSENT_SESSION);
    assert_true(uk_policy_method_allowed(p, "https://paired.cn", "token.list"));
    /* Pairable and refused origins get nothing, whatever their entry says. */
    assert_false(uk_policy_method_allowed(p, "https://pairable.cn", "system.hello"));
    assert_false(uk_policy_pin_from_page(p, "https://pairable.cn"));
    assert_int_equal(uk_policy_consent(p, "https://pairable.cn"), UK_CONSENT_REQUEST);
    assert_false(uk_policy_method_allowed(p, "http://evil.test", "token.list"));
    assert_false(uk_policy_method_allowed(NULL, "https://a.cn", "token.list"));
    assert_false(uk_policy_pin_from_page(p, NULL));
}

/* The answers for one origin, asked again and again as a session does, follow every change: a
 * reload that changes its rules or drops it, pairing and unpairing. */
static void test_policy_repeated_questions_follow_changes(void **state)
{
    *state = reopen(*state, rules_json);
    uk_policy *p = *state;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(uk_policy_origin_access(p, "https://a.cn"), UK_ACCESS_ALLOWED);
        assert_false(uk_policy_method_allowed(p, "https://a.cn", "cert.write"));
        assert_true(uk_policy_pin_from_page(p, "https://a.cn"));
    }
    uk_config *cfg = config("{\"origins\": [\"https://a.cn\"], \"origin_policies\": {"
                            " \"https://a.cn\": {\"methods\": [\"cert.write\"]}}}");
    assert_int_equal(uk_policy_reload(p, cfg), UK_OK);
    uk_config_free(cfg);
    assert_true(uk_policy_method_allowed(p, "https://a.cn", "cert.write"));
    assert_false(uk_policy_pin_from_page(p, "https://a.cn"));
    cfg = config("{\"origins\": [\"https://b.cn\"]}");
    assert_int_equal(uk_policy_reload(p, cfg), UK_OK);
    uk_config_free(cfg);
    assert_int_equal(uk_policy_origin_access(p, "https://a.cn"), UK_ACCESS_PAIRABLE);
    assert_false(uk_policy_method_allowed(p, "https://a.cn", "cert.write"));
    assert_int_equal(uk_policy_pair(p, "https://a.cn", 1), UK_OK);
    assert_int_equal(uk_policy_origin_access(p, "https://a.cn"), UK_ACCESS_PAIRED);
    assert_true(uk_policy_method_allowed(p, "https://a.cn", "cert.write"));
    assert_int_equal(uk_policy_unpair(p, "https://a.cn"), UK_OK);
    assert_int_equal(uk_policy_origin_access(p, "https://a.cn"), UK_ACCESS_PAIRABLE);
    /* Two origins in turn, and one too long to keep. */
    char longo[UK_ORIGIN_MAX + 40];
    snprintf(longo, sizeof longo, "https://%0*d.cn", UK_ORIGIN_MAX, 7);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(uk_policy_origin_access(p, "https://b.cn"), UK_ACCESS_ALLOWED);
        assert_int_equal(uk_policy_origin_access(p, longo), UK_ACCESS_REFUSED);
        assert_int_equal(uk_policy_origin_access(p, "https://a.cn"), UK_ACCESS_PAIRABLE);
    }
}

static void test_policy_rules_origin_must_be_canonical(void **state)
{
    (void)state;
    assert_config_refused("{\"origin_policies\": {\"https://A.cn\": {}}}",
                          "write it as \"https://a.cn\"");
}

/* --- the list --- */

struct seen {
    char text[16][300];
    size_t n;
};

static void collect(void *arg, const uk_policy_origin_info *info)
{
    struct seen *s = arg;
    assert_true(s->n < 16);
    char methods[128] = "all";
    if (info->methods != NULL) {
        methods[0] = '\0';
        for (size_t i = 0; i < info->n_methods; i++)
            snprintf(methods + strlen(methods), sizeof methods - strlen(methods), "%s%s",
                     i ? "," : "", info->methods[i]);
    }
    snprintf(s->text[s->n++], sizeof s->text[0], "%s %s%s paired_at=%lld pin=%d consent=%d [%s]",
             info->origin, info->access == UK_ACCESS_ALLOWED ? "allowed" : "paired",
             info->from_system ? " system" : "", (long long)info->paired_at, info->pin_from_page,
             (int)info->consent, methods);
}

static void test_policy_origins_foreach_lists_config_then_paired(void **state)
{
    uk_policy_free(*state);
    uk_config *cfg = config(rules_json);
    cfg->origins_system[1] = true; /* as uk_config_load_layered marks it */
    assert_int_equal(uk_policy_new(cfg, (uk_policy **)state), UK_OK);
    uk_config_free(cfg);
    uk_policy *p = *state;
    assert_int_equal(uk_policy_pair(p, "https://z.cn", 200), UK_OK);
    assert_int_equal(uk_policy_pair(p, "https://paired.cn", 100), UK_OK);
    struct seen s = {0};
    uk_policy_origins_foreach(p, collect, &s);
    assert_int_equal(s.n, 6);
    assert_string_equal(s.text[0],
                        "https://a.cn allowed paired_at=0 pin=1 consent=2 [token.list,cert.sign]");
    assert_string_equal(s.text[1], "https://b.cn allowed system paired_at=0 pin=0 consent=1 [all]");
    assert_string_equal(s.text[2], "https://c.cn allowed paired_at=0 pin=0 consent=1 []");
    assert_string_equal(s.text[3], "chrome-extension://abcdefghijklmnopabcdefghijklmnop allowed "
                                   "paired_at=0 pin=0 consent=1 [cert.list]");
    assert_string_equal(s.text[4], "https://z.cn paired paired_at=200 pin=0 consent=1 [all]");
    assert_string_equal(s.text[5], "https://paired.cn paired paired_at=100 pin=0 consent=2 [all]");

    /* Pairing off: the paired ones are not effective, so not listed. */
    cfg = config("{\"origins\": [\"https://a.cn\"], \"pairing\": false}");
    assert_int_equal(uk_policy_reload(p, cfg), UK_OK);
    uk_config_free(cfg);
    memset(&s, 0, sizeof s);
    uk_policy_origins_foreach(p, collect, &s);
    assert_int_equal(s.n, 1);
    uk_policy_origins_foreach(NULL, collect, &s);
}

static void test_policy_rate_for_paired_and_pairable(void **state)
{
    const char *o = "https://new.example.cn";
    /* Pairable: a few per second per origin. */
    for (unsigned i = 0; i < UK_POLICY_PAIRABLE_RATE; i++)
        assert_true(uk_policy_rate_take(*state, o, 0));
    assert_false(uk_policy_rate_take(*state, o, 0));
    /* ... and a few more for all of them together. */
    int granted = 0;
    char name[64];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "https://p%d.example.cn", i);
        granted += uk_policy_rate_take(*state, name, 0);
    }
    assert_int_equal(granted, UK_POLICY_PAIRABLE_RATE_TOTAL - UK_POLICY_PAIRABLE_RATE);
    /* Paired: the full per-origin rate (5 here). */
    assert_int_equal(uk_policy_pair(*state, o, 1), UK_OK);
    for (int i = 0; i < 5; i++)
        assert_true(uk_policy_rate_take(*state, o, 0));
    assert_false(uk_policy_rate_take(*state, o, 0));
}

static void test_policy_pairable_buckets_are_recycled(void **state)
{
    char name[64];
    /* Many more origins than slots: no unbounded growth, and each new one starts full. */
    for (uint64_t t = 0; t < 200; t++) {
        snprintf(name, sizeof name, "https://q%u.example.cn", (unsigned)t);
        assert_true(uk_policy_rate_take(*state, name, t * 1000u));
    }
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
        cmocka_unit_test_setup_teardown(test_policy_access_classes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_pairing_off_refuses_unknown_origins, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_pair_persists_across_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_unpair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_corrupt_store_is_empty_and_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_untrusted_store_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_pairing_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_pair_write_failure_leaves_origin_unpaired,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_reload_keeps_pairings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_per_origin_rules_and_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_repeated_questions_follow_changes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_rules_origin_must_be_canonical, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_origins_foreach_lists_config_then_paired, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_policy_rate_for_paired_and_pairable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_pairable_buckets_are_recycled, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
