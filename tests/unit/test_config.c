/* The configuration file: defaults, every key, and every kind of bad input. */
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
#include "uk_limits.h"
#include "uk_log.h"

static int setup_env(void **state)
{
    (void)state;
    setenv("HOME", "/home/tester", 1);
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("XDG_STATE_HOME");
    setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
    uk_log_set_level(UK_LOG_LEVEL_ERR);
    return 0;
}

static int parse(const char *text, uk_config **cfg)
{
    return uk_config_parse(text, strlen(text), "test.json", cfg);
}

static void test_config_empty_object_gives_documented_defaults(void **state)
{
    (void)state;
    uk_config *cfg = NULL;
    assert_int_equal(parse("{}", &cfg), UK_OK);
    assert_int_equal(cfg->n_origins, 0);
    assert_int_equal(cfg->n_extension_ids, 0);
    assert_int_equal(cfg->n_wss_ports, 5);
    assert_int_equal(cfg->wss_ports[0], UK_CONFIG_DEFAULT_WSS_PORT);
    assert_int_equal(cfg->wss_ports[1], 28474);
    assert_string_equal(cfg->state_dir, "/home/tester/.local/state/ukeyd");
    assert_string_equal(cfg->runtime_dir, "/run/user/4242/ukeyd");
    assert_string_equal(cfg->socket_path, "/run/user/4242/ukeyd/ukeyd.sock");
    assert_int_equal(cfg->limits.message_size, UK_LIMIT_MESSAGE);
    assert_int_equal(cfg->limits.json_depth, UK_LIMIT_JSON_DEPTH);
    assert_int_equal(cfg->log_level, UK_LOG_LEVEL_INFO);
    assert_int_equal(cfg->expiring_days, 30);
    assert_int_equal(cfg->piv_mgm_key_len, 0);
    assert_false(cfg->piv_allow_default_mgm_key);
    uk_config_free(cfg);
}

static void test_config_runtime_dir_falls_back_to_state_dir_without_xdg(void **state)
{
    (void)state;
    unsetenv("XDG_RUNTIME_DIR");
    uk_config *cfg = NULL;
    assert_int_equal(parse("{\"state_dir\": \"/var/x\"}", &cfg), UK_OK);
    assert_string_equal(cfg->runtime_dir, "/var/x/run");
    assert_string_equal(cfg->socket_path, "/var/x/run/ukeyd.sock");
    uk_config_free(cfg);
}

static void test_config_pinned_keys_are_read(void **state)
{
    (void)state;
    uk_config *cfg = NULL;
    const char *text = "{\"origins\": [\"https://portal.example.cn\", \"http://127.0.0.1:8083\"],"
                       " \"extension_ids\": [\"abcdefghijklmnopabcdefghijklmnop\"],"
                       " \"wss_port\": 40001, \"wss_fallback_ports\": [40003, 40005],"
                       " \"socket\": \"/tmp/u/s.sock\", \"state_dir\": \"~/st\","
                       " \"runtime_dir\": \"rt\", \"log_level\": \"debug\","
                       " \"expiring_days\": 14,"
                       " \"piv_management_key\": \"000102030405060708090a0b0c0d0e0f\","
                       " \"piv_allow_default_management_key\": true,"
                       " \"limits\": {\"message_size\": 4096, \"json_depth\": 8,"
                       "  \"pending_per_connection\": 2, \"connections\": 3,"
                       "  \"requests_per_second_per_origin\": 5}}\n";
    assert_int_equal(parse(text, &cfg), UK_OK);
    assert_int_equal(cfg->n_origins, 2);
    assert_string_equal(cfg->origins[1], "http://127.0.0.1:8083");
    assert_int_equal(cfg->n_extension_ids, 1);
    assert_int_equal(cfg->n_wss_ports, 3);
    assert_int_equal(cfg->wss_ports[0], 40001);
    assert_int_equal(cfg->wss_ports[2], 40005);
    assert_string_equal(cfg->socket_path, "/tmp/u/s.sock");
    assert_string_equal(cfg->state_dir, "/home/tester/st");
    assert_string_equal(cfg->runtime_dir, "/home/tester/rt");
    assert_int_equal(cfg->log_level, UK_LOG_LEVEL_DEBUG);
    assert_int_equal(cfg->expiring_days, 14);
    assert_int_equal(cfg->piv_mgm_key_len, 16);
    assert_int_equal(cfg->piv_mgm_key[15], 0x0f);
    assert_true(cfg->piv_allow_default_mgm_key);
    assert_int_equal(cfg->limits.message_size, 4096);
    assert_int_equal(cfg->limits.json_depth, 8);
    assert_int_equal(cfg->limits.pending_per_connection, 2);
    assert_int_equal(cfg->limits.connections, 3);
    assert_int_equal(cfg->limits.requests_per_second_per_origin, 5);
    assert_string_equal(cfg->path, "test.json");
    uk_config_free(cfg);
}

static void test_config_wss_port_zero_disables_wss(void **state)
{
    (void)state;
    uk_config *cfg = NULL;
    assert_int_equal(parse("{\"wss_port\": 0}", &cfg), UK_OK);
    assert_int_equal(cfg->n_wss_ports, 0);
    uk_config_free(cfg);
}

static void test_config_rejects_bad_input(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "[]",
        "null",
        "{",
        "{} {}",
        "{\"orgins\": []}",
        "{\"origins\": \"https://a.example\"}",
        "{\"origins\": [1]}",
        "{\"origins\": [\"\"]}",
        "{\"origins\": [], \"origins\": []}",
        "{\"wss_port\": 70000}",
        "{\"wss_port\": -1}",
        "{\"wss_port\": 1.5}",
        /* Out of range of long long: refused before any conversion (found by fuzz_config). */
        "{\"wss_port\": 1e300}",
        "{\"limits\": {\"connections\": -1e300}}",
        "{\"wss_port\": \"28473\"}",
        "{\"wss_fallback_ports\": [0]}",
        "{\"wss_fallback_ports\": [1,2,3,4,5,6,7,8]}",
        "{\"socket\": 5}",
        "{\"state_dir\": \"\"}",
        "{\"log_level\": \"loud\"}",
        "{\"expiring_days\": 0}",
        "{\"piv_management_key\": \"0102\"}",
        "{\"piv_management_key\": \"zz\"}",
        "{\"piv_management_key\": 5}",
        "{\"piv_allow_default_management_key\": 1}",
        "{\"expiring_days\": 400}",
        "{\"limits\": {\"message_size\": 1}}",
        "{\"limits\": {\"frames\": 1}}",
        "{\"limits\": []}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uk_config *cfg = NULL;
        int rc = uk_config_parse(bad[i], strlen(bad[i]), "bad.json", &cfg);
        if (strlen(bad[i]) == 0) {
            /* Empty text in memory is "no file": defaults. */
            assert_int_equal(rc, UK_OK);
            uk_config_free(cfg);
            continue;
        }
        if (rc != UK_E_CONFIG_INVALID)
            fail_msg("accepted: %s", bad[i]);
        assert_null(cfg);
    }
}

static void test_config_load_missing_default_file_gives_defaults(void **state)
{
    (void)state;
    char dir[] = "/tmp/uk-config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("XDG_CONFIG_HOME", dir, 1);
    uk_config *cfg = NULL;
    assert_int_equal(uk_config_load(NULL, &cfg), UK_OK);
    assert_null(cfg->path);
    uk_config_free(cfg);

    char path[256];
    snprintf(path, sizeof(path), "%s/missing.json", dir);
    assert_int_equal(uk_config_load(path, &cfg), UK_E_IO);

    snprintf(path, sizeof(path), "%s/ukeyd", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/ukeyd/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"wss_port\": 40100}", f);
    fclose(f);
    assert_int_equal(uk_config_load(NULL, &cfg), UK_OK);
    assert_int_equal(cfg->wss_ports[0], 40100);
    assert_string_equal(cfg->path, path);
    uk_config_free(cfg);

    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(uk_config_load(NULL, &cfg), UK_E_CONFIG_INVALID);
    unlink(path);
    snprintf(path, sizeof(path), "%s/ukeyd", dir);
    rmdir(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_config_empty_object_gives_documented_defaults, setup_env),
        cmocka_unit_test_setup(test_config_runtime_dir_falls_back_to_state_dir_without_xdg,
                               setup_env),
        cmocka_unit_test_setup(test_config_pinned_keys_are_read, setup_env),
        cmocka_unit_test_setup(test_config_wss_port_zero_disables_wss, setup_env),
        cmocka_unit_test_setup(test_config_rejects_bad_input, setup_env),
        cmocka_unit_test_setup(test_config_load_missing_default_file_gives_defaults, setup_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
