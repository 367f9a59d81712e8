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
    assert_null(cfg->origins_system);
    assert_int_equal(cfg->n_origin_policies, 0);
    assert_true(cfg->pairing);
    assert_null(cfg->pinentry);
    assert_int_equal(cfg->prompt_timeout_s, 120);
    assert_int_equal(cfg->audit_max_bytes, 1048576);
    assert_int_equal(cfg->audit_keep, 5);
    assert_int_equal(cfg->limits.pin_attempts_per_minute, 5);
    assert_null(cfg->system_path);
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

static void test_config_pkcs11_modules_are_read_and_checked(void **state)
{
    (void)state;
    uk_config *cfg = NULL;
    assert_int_equal(parse("{}", &cfg), UK_OK);
    assert_int_equal(cfg->n_pkcs11_modules, 0);
    uk_config_free(cfg);
    assert_int_equal(parse("{\"pkcs11_modules\": [{\"path\": \"/usr/lib/softhsm/libsofthsm2.so\", "
                           "\"name\": \"SoftHSM\"}, {\"path\": \"/opt/vendor/p11.so\"}]}",
                           &cfg),
                     UK_OK);
    assert_int_equal(cfg->n_pkcs11_modules, 2);
    assert_string_equal(cfg->pkcs11_modules[0].path, "/usr/lib/softhsm/libsofthsm2.so");
    assert_string_equal(cfg->pkcs11_modules[0].name, "SoftHSM");
    assert_string_equal(cfg->pkcs11_modules[1].path, "/opt/vendor/p11.so");
    assert_string_equal(cfg->pkcs11_modules[1].name, "");
    uk_config_free(cfg);
    const char *bad[] = {
        "{\"pkcs11_modules\": {}}",
        "{\"pkcs11_modules\": [\"/a.so\"]}",
        "{\"pkcs11_modules\": [{\"path\": \"libsofthsm2.so\"}]}", /* looked up in LD paths */
        "{\"pkcs11_modules\": [{\"path\": \"~/p11.so\"}]}",
        "{\"pkcs11_modules\": [{\"name\": \"no path\"}]}",
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"atr\": \"3b\"}]}",
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\"}, {\"path\": \"/a.so\"}]}",
        "{\"pkcs11_modules\": [{\"path\": 1}]}",
        "{\"pkcs11_modules\": [{\"path\": \"/1\"}, {\"path\": \"/2\"}, {\"path\": \"/3\"}, "
        "{\"path\": \"/4\"}, {\"path\": \"/5\"}, {\"path\": \"/6\"}, {\"path\": \"/7\"}, "
        "{\"path\": \"/8\"}, {\"path\": \"/9\"}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg = NULL;
        assert_int_equal(parse(bad[i], &cfg), UK_E_CONFIG_INVALID);
        assert_null(cfg);
    }
}

static void test_config_pkcs11_module_hints_are_read_and_checked(void **state)
{
    (void)state;
    uk_config *cfg = NULL;
    assert_int_equal(parse("{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"atr\": \"3b:FB:13 00\", "
                           "\"atr_mask\": \"ffff00ff\", \"token_label\": \"\xe5\xbc\xa0 card\"}, "
                           "{\"path\": \"/b.so\", \"atr\": \"3B02\"}, {\"path\": \"/c.so\"}]}",
                           &cfg),
                     UK_OK);
    assert_int_equal(cfg->n_pkcs11_modules, 3);
    const uk_config_module *m = &cfg->pkcs11_modules[0];
    assert_int_equal(m->atr_len, 4);
    assert_memory_equal(m->atr, "\x3b\xfb\x13\x00", 4);
    assert_memory_equal(m->atr_mask, "\xff\xff\x00\xff", 4);
    assert_string_equal(m->token_label, "\xe5\xbc\xa0 card");
    m = &cfg->pkcs11_modules[1];
    assert_int_equal(m->atr_len, 2);
    assert_memory_equal(m->atr_mask, "\xff\xff", 2); /* no mask: every bit counts */
    assert_null(m->token_label);
    assert_int_equal(cfg->pkcs11_modules[2].atr_len, 0);
    assert_null(cfg->pkcs11_modules[2].token_label);
    uk_config_free(cfg);
    /* 33 bytes is the longest ATR */
    char atr33[128] = "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"atr\": \"";
    for (int i = 0; i < 33; i++)
        strcat(atr33, "3b");
    strcat(atr33, "\"}]}");
    assert_int_equal(parse(atr33, &cfg), UK_OK);
    assert_int_equal(cfg->pkcs11_modules[0].atr_len, 33);
    uk_config_free(cfg);
    const char *bad[] = {
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"atr\": \"3bzz\"}]}", /* not hex */
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"atr\": \"3bf\"}]}",  /* half a byte */
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"atr\": \"3b\"}]}",   /* 1 byte */
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"atr\": \"\"}]}",     /* empty */
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"atr\": 59}]}",       /* not a string */
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"atr\": \"0x3bfb\"}]}",
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"atr_mask\": \"ffff\"}]}", /* no atr */
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"atr\": \"3bfb\", \"atr_mask\": \"ff\"}]}",
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"atr\": \"3bfb\", \"atr_mask\": "
        "\"ffffff\"}]}",
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"token_label\": \"\"}]}",
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"token_label\": \"padded \"}]}",
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"token_label\": "
        "\"123456789012345678901234567890123\"}]}", /* 33 bytes: a label has 32 */
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"token_label\": true}]}",
        "{\"skf_modules\": [{\"path\": \"/a.so\", \"atr\": \"3bfb\"}]}", /* PKCS#11 only */
        "{\"skf_modules\": [{\"path\": \"/a.so\", \"token_label\": \"x\"}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg = NULL;
        assert_int_equal(parse(bad[i], &cfg), UK_E_CONFIG_INVALID);
        assert_null(cfg);
    }
    /* 34 bytes */
    atr33[strlen(atr33) - 3] = '\0';
    strcat(atr33, "3b3b\"}]}");
    cfg = NULL;
    assert_int_equal(parse(atr33, &cfg), UK_E_CONFIG_INVALID);
    assert_null(cfg);
}

static void test_config_skf_modules_are_read_with_their_ulong_width(void **state)
{
    (void)state;
    uk_config *cfg = NULL;
    assert_int_equal(parse("{\"skf_modules\": [{\"path\": \"/opt/v/skf.so\", \"name\": \"V\"}, "
                           "{\"path\": \"/opt/w/skf64.so\", \"ulong_bytes\": 8}]}",
                           &cfg),
                     UK_OK);
    assert_int_equal(cfg->n_skf_modules, 2);
    assert_string_equal(cfg->skf_modules[0].path, "/opt/v/skf.so");
    assert_string_equal(cfg->skf_modules[0].name, "V");
    assert_int_equal(cfg->skf_modules[0].ulong_bytes, 4);
    assert_string_equal(cfg->skf_modules[1].name, "");
    assert_int_equal(cfg->skf_modules[1].ulong_bytes, 8);
    assert_int_equal(cfg->n_pkcs11_modules, 0);
    uk_config_free(cfg);
    const char *bad[] = {
        "{\"skf_modules\": [{\"path\": \"skf.so\"}]}",
        "{\"skf_modules\": [{\"path\": \"/a.so\", \"ulong_bytes\": 2}]}",
        "{\"skf_modules\": [{\"path\": \"/a.so\", \"ulong_bytes\": \"8\"}]}",
        "{\"skf_modules\": [{\"path\": \"/a.so\"}, {\"path\": \"/a.so\"}]}",
        "{\"pkcs11_modules\": [{\"path\": \"/a.so\", \"ulong_bytes\": 4}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg = NULL;
        assert_int_equal(parse(bad[i], &cfg), UK_E_CONFIG_INVALID);
        assert_null(cfg);
    }
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
        "{\"limits\": {\"connections\": 3, \"connections\": 4}}",
        "{\"limits\": {\"pin_attempts_per_minute\": 0}}",
        "{\"limits\": {\"pin_attempts_per_minute\": 61}}",
        "{\"limits\": {\"pin_attempts_per_minute\": true}}",
        "{\"pairing\": 1}",
        "{\"pairing\": \"no\"}",
        "{\"pinentry\": \"pinentry-gtk\"}",
        "{\"pinentry\": \"\"}",
        "{\"pinentry\": 5}",
        "{\"pinentry\": [\"/usr/bin/pinentry\"]}",
        "{\"prompt_timeout\": 4}",
        "{\"prompt_timeout\": 601}",
        "{\"prompt_timeout\": 60.5}",
        "{\"prompt_timeout\": \"60\"}",
        "{\"audit_max_bytes\": 4095}",
        "{\"audit_max_bytes\": 1073741825}",
        "{\"audit_max_bytes\": -1}",
        "{\"audit_keep\": 0}",
        "{\"audit_keep\": 21}",
        "{\"audit_keep\": null}",
        /* A system-only key in the user's file. */
        "{\"user_origins\": false}",
        "{\"origin_policies\": []}",
        "{\"origin_policies\": {\"https://a.cn\": true}}",
        "{\"origin_policies\": {\"\": {}}}",
        "{\"origin_policies\": {\"https://a.cn\": {\"methds\": []}}}",
        "{\"origin_policies\": {\"https://a.cn\": {}, \"https://a.cn\": {}}}",
        "{\"origin_policies\": {\"https://a.cn\": {\"consent\": \"always\"}}}",
        "{\"origin_policies\": {\"https://a.cn\": {\"consent\": 1}}}",
        "{\"origin_policies\": {\"https://a.cn\": {\"consent\": \"Session\"}}}",
        "{\"origin_policies\": {\"https://a.cn\": {\"pin_from_page\": \"yes\"}}}",
        "{\"origin_policies\": {\"https://a.cn\": {\"methods\": \"sign\"}}}",
        "{\"origin_policies\": {\"https://a.cn\": {\"methods\": [\"\"]}}}",
        "{\"origin_policies\": {\"https://a.cn\": {\"methods\": [7]}}}",
        "{\"origin_policies\": {\"https://a.cn\": {\"methods\": [\"x\", \"x\"], "
        "\"methods\": []}}}",
        "{\"origin_policies\": {\"https://a.cn\": {\"methods\": "
        "[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]}}}",
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

static void test_config_policy_keys_are_read(void **state)
{
    (void)state;
    uk_config *cfg = NULL;
    const char *text = "{\"origin_policies\": {"
                       "  \"https://a.cn\": {\"methods\": [\"token.list\", \"cert.sign\"],"
                       "                     \"pin_from_page\": true, \"consent\": \"session\"},"
                       "  \"https://b.cn\": {},"
                       "  \"https://c.cn\": {\"methods\": []}},"
                       " \"pairing\": false, \"pinentry\": \"/usr/bin/pinentry-gnome3\","
                       " \"prompt_timeout\": 5, \"audit_max_bytes\": 4096, \"audit_keep\": 20,"
                       " \"limits\": {\"pin_attempts_per_minute\": 60}}";
    assert_int_equal(parse(text, &cfg), UK_OK);
    assert_int_equal(cfg->n_origin_policies, 3);
    const uk_config_origin_policy *a = uk_config_get0_origin_policy(cfg, "https://a.cn");
    assert_non_null(a);
    assert_true(a->methods_set);
    assert_int_equal(a->n_methods, 2);
    assert_string_equal(a->methods[1], "cert.sign");
    assert_true(a->pin_from_page);
    assert_int_equal(a->consent, UK_CONFIG_CONSENT_SESSION);
    assert_false(a->from_system);
    const uk_config_origin_policy *b = uk_config_get0_origin_policy(cfg, "https://b.cn");
    assert_non_null(b);
    assert_false(b->methods_set);
    assert_null(b->methods);
    assert_int_equal(b->n_methods, 0);
    assert_false(b->pin_from_page);
    assert_int_equal(b->consent, UK_CONFIG_CONSENT_REQUEST);
    const uk_config_origin_policy *c = uk_config_get0_origin_policy(cfg, "https://c.cn");
    assert_true(c->methods_set); /* set but empty: nothing allowed */
    assert_int_equal(c->n_methods, 0);
    assert_null(uk_config_get0_origin_policy(cfg, "https://d.cn"));
    assert_false(cfg->pairing);
    assert_string_equal(cfg->pinentry, "/usr/bin/pinentry-gnome3");
    assert_int_equal(cfg->prompt_timeout_s, 5);
    assert_int_equal(cfg->audit_max_bytes, 4096);
    assert_int_equal(cfg->audit_keep, 20);
    assert_int_equal(cfg->limits.pin_attempts_per_minute, 60);
    uk_config_free(cfg);

    assert_int_equal(parse("{\"pinentry\": null, \"audit_max_bytes\": 1073741824,"
                           " \"prompt_timeout\": 600, \"audit_keep\": 1}",
                           &cfg),
                     UK_OK);
    assert_null(cfg->pinentry);
    assert_int_equal(cfg->audit_max_bytes, 1073741824);
    uk_config_free(cfg);
}

/* --- the system file, layered over the user's --- */

struct files {
    char dir[64];
    char sys[128];
    char user[128];
};

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static int setup_files(void **state)
{
    setup_env(state);
    struct files *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/uk-config-layer-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->sys, sizeof f->sys, "%s/system.json", f->dir);
    snprintf(f->user, sizeof f->user, "%s/user.json", f->dir);
    *state = f;
    return 0;
}

static int teardown_files(void **state)
{
    struct files *f = *state;
    unlink(f->sys);
    unlink(f->user);
    rmdir(f->dir);
    free(f);
    return 0;
}

static uk_config *layered(struct files *f, const char *sys, const char *user)
{
    if (sys != NULL)
        write_file(f->sys, sys, 0644);
    if (user != NULL)
        write_file(f->user, user, 0600);
    uk_config *cfg = NULL;
    int rc = uk_config_load_layered(f->sys, f->user, &cfg);
    if (rc != UK_OK)
        fail_msg("layered load failed: %d", rc);
    return cfg;
}

static void test_config_layered_missing_system_file_is_none(void **state)
{
    struct files *f = *state;
    write_file(f->user, "{\"origins\": [\"https://u.cn\"], \"pairing\": false}", 0600);
    uk_config *cfg = NULL;
    assert_int_equal(uk_config_load_layered(f->sys, f->user, &cfg), UK_OK);
    assert_null(cfg->system_path);
    assert_string_equal(cfg->path, f->user);
    assert_int_equal(cfg->n_origins, 1);
    assert_false(cfg->origins_system[0]);
    assert_false(cfg->pairing);
    uk_config_free(cfg);
    /* An explicit user file that does not exist stays an error. */
    unlink(f->user);
    assert_int_equal(uk_config_load_layered(f->sys, f->user, &cfg), UK_E_IO);
}

static void test_config_layered_system_keys_win(void **state)
{
    struct files *f = *state;
    uk_config *cfg = layered(f,
                             "{\"prompt_timeout\": 30, \"audit_keep\": 2,"
                             " \"limits\": {\"pin_attempts_per_minute\": 3},"
                             " \"extension_ids\": [\"abcdefghijklmnopabcdefghijklmnop\"]}",
                             "{\"prompt_timeout\": 600, \"audit_max_bytes\": 8192,"
                             " \"limits\": {\"pin_attempts_per_minute\": 60, \"connections\": 7},"
                             " \"extension_ids\": [\"bbcdefghijklmnopabcdefghijklmnop\"]}");
    assert_string_equal(cfg->system_path, f->sys);
    assert_string_equal(cfg->path, f->user);
    assert_int_equal(cfg->prompt_timeout_s, 30);
    assert_int_equal(cfg->audit_keep, 2);
    assert_int_equal(cfg->audit_max_bytes, 8192); /* not set by the system: the user's */
    assert_int_equal(cfg->limits.pin_attempts_per_minute, 3);
    assert_int_equal(cfg->limits.connections, 7); /* each limit is its own key */
    assert_int_equal(cfg->n_extension_ids, 1);
    assert_string_equal(cfg->extension_ids[0], "abcdefghijklmnopabcdefghijklmnop");
    assert_true(cfg->extension_ids_system);
    uk_config_free(cfg);
}

static void test_config_layered_origins_are_the_union_system_first(void **state)
{
    struct files *f = *state;
    uk_config *cfg = layered(f, "{\"origins\": [\"https://s.cn\", \"https://both.cn\"]}",
                             "{\"origins\": [\"https://both.cn\", \"https://u.cn\"]}");
    assert_int_equal(cfg->n_origins, 3);
    assert_string_equal(cfg->origins[0], "https://s.cn");
    assert_string_equal(cfg->origins[1], "https://both.cn");
    assert_string_equal(cfg->origins[2], "https://u.cn");
    assert_true(cfg->origins_system[0]);
    assert_true(cfg->origins_system[1]);
    assert_false(cfg->origins_system[2]);
    assert_false(cfg->extension_ids_system);
    uk_config_free(cfg);
}

static void test_config_layered_user_cannot_reenable_pairing(void **state)
{
    struct files *f = *state;
    uk_config *cfg = layered(f, "{\"pairing\": false}", "{\"pairing\": true}");
    assert_false(cfg->pairing);
    uk_config_free(cfg);
    /* The system file wins either way. */
    cfg = layered(f, "{\"pairing\": true}", "{\"pairing\": false}");
    assert_true(cfg->pairing);
    uk_config_free(cfg);
    /* Unset in the system file: the user decides. */
    cfg = layered(f, "{}", "{\"pairing\": false}");
    assert_false(cfg->pairing);
    uk_config_free(cfg);
}

static void test_config_layered_user_cannot_loosen_system_origin_policy(void **state)
{
    struct files *f = *state;
    uk_config *cfg =
        layered(f,
                "{\"origins\": [\"https://s.cn\", \"https://t.cn\"],"
                " \"origin_policies\": {\"https://s.cn\": {\"methods\": [\"token.list\"]}}}",
                "{\"origins\": [\"https://u.cn\"], \"origin_policies\": {"
                "  \"https://s.cn\": {\"pin_from_page\": true, \"consent\": \"session\"},"
                "  \"https://t.cn\": {\"pin_from_page\": true},"
                "  \"https://u.cn\": {\"consent\": \"session\"}}}");
    assert_int_equal(cfg->n_origin_policies, 2);
    const uk_config_origin_policy *s = uk_config_get0_origin_policy(cfg, "https://s.cn");
    assert_non_null(s);
    assert_true(s->from_system);
    assert_false(s->pin_from_page);
    assert_int_equal(s->consent, UK_CONFIG_CONSENT_REQUEST);
    assert_true(s->methods_set);
    assert_int_equal(s->n_methods, 1);
    /* Listed by the system without rules: the defaults hold, the user's entry is ignored. */
    assert_null(uk_config_get0_origin_policy(cfg, "https://t.cn"));
    const uk_config_origin_policy *u = uk_config_get0_origin_policy(cfg, "https://u.cn");
    assert_non_null(u);
    assert_false(u->from_system);
    assert_int_equal(u->consent, UK_CONFIG_CONSENT_SESSION);
    uk_config_free(cfg);
}

static void test_config_layered_user_origins_false_ignores_user_lists(void **state)
{
    struct files *f = *state;
    uk_config *cfg =
        layered(f, "{\"user_origins\": false, \"origins\": [\"https://s.cn\"]}",
                "{\"origins\": [\"https://u.cn\"], \"prompt_timeout\": 60,"
                " \"origin_policies\": {\"https://u.cn\": {\"pin_from_page\": true}}}");
    assert_int_equal(cfg->n_origins, 1);
    assert_string_equal(cfg->origins[0], "https://s.cn");
    assert_true(cfg->origins_system[0]);
    assert_int_equal(cfg->n_origin_policies, 0);
    assert_int_equal(cfg->prompt_timeout_s, 60); /* other user keys still count */
    uk_config_free(cfg);
    /* Without system origins, no origins at all. */
    cfg = layered(f, "{\"user_origins\": false}", "{\"origins\": [\"https://u.cn\"]}");
    assert_int_equal(cfg->n_origins, 0);
    uk_config_free(cfg);
}

static void test_config_layered_bad_files_are_refused(void **state)
{
    struct files *f = *state;
    uk_config *cfg = NULL;
    write_file(f->user, "{}", 0600);
    write_file(f->sys, "{\"prompt_timeout\": 1}", 0644);
    assert_int_equal(uk_config_load_layered(f->sys, f->user, &cfg), UK_E_CONFIG_INVALID);
    write_file(f->sys, "{\"user_origins\": 0}", 0644);
    assert_int_equal(uk_config_load_layered(f->sys, f->user, &cfg), UK_E_CONFIG_INVALID);
    write_file(f->sys, "", 0644);
    assert_int_equal(uk_config_load_layered(f->sys, f->user, &cfg), UK_E_CONFIG_INVALID);
    /* A good system file does not excuse a bad user file. */
    write_file(f->sys, "{}", 0644);
    write_file(f->user, "{\"user_origins\": true}", 0600);
    assert_int_equal(uk_config_load_layered(f->sys, f->user, &cfg), UK_E_CONFIG_INVALID);
    assert_null(cfg);
}

static void test_config_layered_system_file_owner_and_mode(void **state)
{
    struct files *f = *state;
    uk_config *cfg = NULL;
    write_file(f->user, "{}", 0600);
    write_file(f->sys, "{}", 0664); /* group-writable */
    assert_int_equal(uk_config_load_layered(f->sys, f->user, &cfg), UK_E_CONFIG_INVALID);
    write_file(f->sys, "{}", 0646); /* world-writable */
    assert_int_equal(uk_config_load_layered(f->sys, f->user, &cfg), UK_E_CONFIG_INVALID);
    write_file(f->sys, "{}", 0444);
    assert_int_equal(uk_config_load_layered(f->sys, f->user, &cfg), UK_OK);
    uk_config_free(cfg);
    cfg = NULL;
    /* A directory is not a config file. */
    assert_int_equal(uk_config_load_layered(f->dir, f->user, &cfg), UK_E_CONFIG_INVALID);
    if (geteuid() != 0)
        return; /* only root can give the file to someone else */
    assert_int_equal(chown(f->sys, 4242, 4242), 0);
    assert_int_equal(uk_config_load_layered(f->sys, f->user, &cfg), UK_E_CONFIG_INVALID);
    assert_null(cfg);
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
        cmocka_unit_test_setup(test_config_pkcs11_modules_are_read_and_checked, setup_env),
        cmocka_unit_test_setup(test_config_pkcs11_module_hints_are_read_and_checked, setup_env),
        cmocka_unit_test_setup(test_config_skf_modules_are_read_with_their_ulong_width, setup_env),
        cmocka_unit_test_setup(test_config_load_missing_default_file_gives_defaults, setup_env),
        cmocka_unit_test_setup(test_config_policy_keys_are_read, setup_env),
        cmocka_unit_test_setup_teardown(test_config_layered_missing_system_file_is_none,
                                        setup_files, teardown_files),
        cmocka_unit_test_setup_teardown(test_config_layered_system_keys_win, setup_files,
                                        teardown_files),
        cmocka_unit_test_setup_teardown(test_config_layered_origins_are_the_union_system_first,
                                        setup_files, teardown_files),
        cmocka_unit_test_setup_teardown(test_config_layered_user_cannot_reenable_pairing,
                                        setup_files, teardown_files),
        cmocka_unit_test_setup_teardown(test_config_layered_user_cannot_loosen_system_origin_policy,
                                        setup_files, teardown_files),
        cmocka_unit_test_setup_teardown(test_config_layered_user_origins_false_ignores_user_lists,
                                        setup_files, teardown_files),
        cmocka_unit_test_setup_teardown(test_config_layered_bad_files_are_refused, setup_files,
                                        teardown_files),
        cmocka_unit_test_setup_teardown(test_config_layered_system_file_owner_and_mode, setup_files,
                                        teardown_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
