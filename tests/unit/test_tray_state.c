/* The tray's state logic (tray/tray_state.h) without a display: icon state from token.list and
 * cert.list answers, the menu, which reminder is due (once per threshold per certificate, across
 * a store round trip), the next wake-up, tray.json, and the zh-CN catalogue. Times are fixed;
 * TZ is UTC for the whole test. */
#include "tray_state.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <libintl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY 86400
/* 2026-11-24T00:00:00Z */
#define NOW ((time_t)1795478400)

static const unsigned THRESHOLDS[] = {30, 7, 1};

/* "2026-11-24T00:00:00Z" for t. */
static void iso(time_t t, char *buf, size_t size)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static cJSON *parse(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    return j;
}

/* A cert.list entry valid from nb to na (seconds), with a fingerprint and ukeyd's status. */
static cJSON *cert_entry(const char *key, const char *fp, time_t nb, time_t na, const char *status)
{
    char b[32], a[32], text[1024];
    iso(nb, b, sizeof b);
    iso(na, a, sizeof a);
    snprintf(text, sizeof text,
             "{\"key\":\"%s\",\"subject\":\"CN=张三,O=NHSA,C=CN\",\"subject_parts\":"
             "[{\"type\":\"C\",\"value\":\"CN\"},{\"type\":\"O\",\"value\":\"NHSA\"},"
             "{\"type\":\"CN\",\"value\":\"张三\"}],\"not_before\":\"%s\",\"not_after\":\"%s\","
             "\"fingerprint_sha256\":\"%s\",\"status\":\"%s\",\"days_left\":0}",
             key, b, a, fp, status);
    return parse(text);
}

/* A model with ukeyd up and one key "piv:1" (label "PIV 1") whose certificates are given. */
static void one_key(uk_tray_model *m, cJSON *certs_array)
{
    uk_tray_model_init(m, 0);
    uk_tray_model_set_daemon(m, true);
    cJSON *tl =
        parse("{\"tokens\":[{\"id\":\"piv:1\",\"reader\":\"R 00 00\",\"present\":true,"
              "\"label\":\"PIV 1\"},{\"id\":null,\"reader\":\"R 00 01\",\"present\":false}]}");
    assert_int_equal(uk_tray_model_set_tokens(m, tl, NULL), 0);
    cJSON_Delete(tl);
    cJSON *cl = cJSON_CreateObject();
    cJSON_AddStringToObject(cl, "token", "piv:1");
    cJSON_AddItemToObject(cl, "certificates", certs_array);
    assert_int_equal(uk_tray_model_set_certs(m, "piv:1", cl, NULL), 0);
    cJSON_Delete(cl);
}

static cJSON *array_of(cJSON *a, cJSON *b)
{
    cJSON *arr = cJSON_CreateArray();
    if (a)
        cJSON_AddItemToArray(arr, a);
    if (b)
        cJSON_AddItemToArray(arr, b);
    return arr;
}

static const uk_tray_item *find_item(const uk_tray_item *items, size_t n, const char *text)
{
    for (size_t i = 0; i < n; i++)
        if (strstr(items[i].text, text) != NULL)
            return &items[i];
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    unsetenv("LANGUAGE");
    setlocale(LC_ALL, "C");
    return 0;
}

static void test_tray_state_daemon_down_without_connection(void **state)
{
    (void)state;
    uk_tray_model m;
    uk_tray_model_init(&m, 0);
    assert_int_equal(uk_tray_model_state(&m, NOW), UK_TRAY_DAEMON_DOWN);
    assert_string_equal(uk_tray_state_name(UK_TRAY_DAEMON_DOWN), "daemon-down");
    char s[256];
    uk_tray_model_summary(&m, NOW, s, sizeof s);
    assert_string_equal(s, "ukeyd is not running");
    /* Losing the connection forgets the keys. */
    one_key(&m, array_of(cert_entry("9a", "aa", NOW - DAY, NOW + 100 * DAY, "valid"), NULL));
    assert_int_equal(uk_tray_model_state(&m, NOW), UK_TRAY_VALID);
    uk_tray_model_set_daemon(&m, false);
    assert_int_equal(uk_tray_model_state(&m, NOW), UK_TRAY_DAEMON_DOWN);
    assert_int_equal(m.n_tokens, 0);
}

static void test_tray_state_no_key_and_no_service(void **state)
{
    (void)state;
    uk_tray_model m;
    uk_tray_model_init(&m, 0);
    uk_tray_model_set_daemon(&m, true);
    cJSON *tl = parse("{\"tokens\":[{\"id\":null,\"reader\":\"R 00 00\",\"present\":false}]}");
    assert_int_equal(uk_tray_model_set_tokens(&m, tl, NULL), 0);
    cJSON_Delete(tl);
    assert_int_equal(uk_tray_model_state(&m, NOW), UK_TRAY_NO_KEY);
    char s[256];
    uk_tray_model_summary(&m, NOW, s, sizeof s);
    assert_string_equal(s, "No USB key inserted");
    assert_int_equal(uk_tray_model_set_tokens(&m, NULL, "NO_SERVICE"), 0);
    assert_int_equal(uk_tray_model_state(&m, NOW), UK_TRAY_NO_KEY);
    uk_tray_model_summary(&m, NOW, s, sizeof s);
    assert_string_equal(s, "The smart card service (pcscd) is not running");
}

static void test_tray_state_each_certificate_status(void **state)
{
    (void)state;
    uk_tray_model m;
    char s[256];
    one_key(&m, array_of(cert_entry("9a", "aa", NOW - DAY, NOW + 200 * DAY, "valid"), NULL));
    assert_int_equal(uk_tray_model_state(&m, NOW), UK_TRAY_VALID);
    uk_tray_model_summary(&m, NOW, s, sizeof s);
    assert_string_equal(s, "Certificate valid: 200 days left");

    one_key(&m, array_of(cert_entry("9a", "aa", NOW - DAY, NOW + 20 * DAY, "expiring"), NULL));
    assert_int_equal(uk_tray_model_state(&m, NOW), UK_TRAY_EXPIRING);
    uk_tray_model_summary(&m, NOW, s, sizeof s);
    assert_string_equal(s, "Certificate expires in 20 days: renew it now");

    one_key(&m, array_of(cert_entry("9a", "aa", NOW - 400 * DAY, NOW - DAY, "expired"), NULL));
    assert_int_equal(uk_tray_model_state(&m, NOW), UK_TRAY_EXPIRED);
    uk_tray_model_summary(&m, NOW, s, sizeof s);
    assert_string_equal(s, "Certificate expired on 2026-11-23: repair it on the portal");
    uk_tray_item *items = calloc(UK_TRAY_MAX_ITEMS, sizeof(*items));
    size_t n = uk_tray_menu_build(&m, NOW + DAY / 2, false, items);
    assert_non_null(find_item(items, n, "Expired 1 day ago"));
    n = uk_tray_menu_build(&m, NOW - DAY / 2, false, items);
    assert_non_null(find_item(items, n, "Expired today"));
    free(items);

    one_key(&m,
            array_of(cert_entry("9a", "aa", NOW + DAY, NOW + 366 * DAY, "not_yet_valid"), NULL));
    assert_int_equal(uk_tray_model_state(&m, NOW), UK_TRAY_NOT_YET_VALID);
    uk_tray_model_summary(&m, NOW, s, sizeof s);
    assert_string_equal(s, "New certificate not valid yet: valid from 2026-11-25");
}

static void test_tray_state_worst_certificate_wins(void **state)
{
    (void)state;
    uk_tray_model m;
    one_key(&m, array_of(cert_entry("9a", "aa", NOW - DAY, NOW + 200 * DAY, "valid"),
                         cert_entry("9c", "bb", NOW - 400 * DAY, NOW - DAY, "expired")));
    assert_int_equal(uk_tray_model_state(&m, NOW), UK_TRAY_EXPIRED);
    one_key(&m, array_of(cert_entry("9a", "aa", NOW + DAY, NOW + 200 * DAY, "not_yet_valid"),
                         cert_entry("9c", "bb", NOW - DAY, NOW + 3 * DAY, "expiring")));
    assert_int_equal(uk_tray_model_state(&m, NOW), UK_TRAY_EXPIRING);
}

static void test_tray_state_status_follows_the_clock(void **state)
{
    (void)state;
    uk_tray_model m;
    one_key(&m, array_of(cert_entry("9a", "aa", NOW + DAY, NOW + 10 * DAY, "not_yet_valid"), NULL));
    assert_int_equal(uk_tray_model_state(&m, NOW), UK_TRAY_NOT_YET_VALID);
    assert_int_equal(uk_tray_model_state(&m, NOW + DAY), UK_TRAY_VALID);
    assert_int_equal(uk_tray_model_state(&m, NOW + 10 * DAY), UK_TRAY_VALID);
    assert_int_equal(uk_tray_model_state(&m, NOW + 10 * DAY + 1), UK_TRAY_EXPIRED);
    /* The tray's own threshold, when tray.json sets one. */
    m.expiring_days = 30;
    assert_int_equal(uk_tray_model_state(&m, NOW + 2 * DAY), UK_TRAY_EXPIRING);
    m.expiring_days = 5;
    assert_int_equal(uk_tray_model_state(&m, NOW + 2 * DAY), UK_TRAY_VALID);
    assert_int_equal(uk_tray_model_state(&m, NOW + 5 * DAY), UK_TRAY_EXPIRING);
}

static void test_tray_state_bad_answers_leave_the_model_alone(void **state)
{
    (void)state;
    uk_tray_model m;
    one_key(&m, array_of(cert_entry("9a", "aa", NOW - DAY, NOW + 200 * DAY, "valid"), NULL));
    cJSON *bad = parse("{\"tokens\":[{\"reader\":1}]}");
    assert_int_equal(uk_tray_model_set_tokens(&m, bad, NULL), -1);
    cJSON_Delete(bad);
    bad = parse("{\"certificates\":[{\"key\":\"9a\",\"not_before\":\"yesterday\"}]}");
    assert_int_equal(uk_tray_model_set_certs(&m, "piv:1", bad, NULL), -1);
    assert_int_equal(uk_tray_model_set_certs(&m, "piv:unknown", bad, NULL), -1);
    cJSON_Delete(bad);
    assert_int_equal(uk_tray_model_state(&m, NOW), UK_TRAY_VALID);
    assert_int_equal(m.tokens[0].n_certs, 1);
    /* Certificates survive a token.list that still lists the key. */
    cJSON *tl = parse("{\"tokens\":[{\"id\":\"piv:1\",\"reader\":\"R 00 00\",\"present\":true}]}");
    assert_int_equal(uk_tray_model_set_tokens(&m, tl, NULL), 0);
    cJSON_Delete(tl);
    assert_int_equal(m.tokens[0].n_certs, 1);
}

static void test_tray_state_menu_lists_keys_certificates_and_actions(void **state)
{
    (void)state;
    uk_tray_model m;
    one_key(&m, array_of(cert_entry("9a", "aa", NOW - 100 * DAY, NOW + 20 * DAY, "expiring"),
                         cert_entry("9c", "bb", NOW + 2 * DAY, NOW + 400 * DAY, "not_yet_valid")));
    uk_tray_item *items = calloc(UK_TRAY_MAX_ITEMS, sizeof(*items));
    size_t n = uk_tray_menu_build(&m, NOW, false, items);
    assert_string_equal(items[0].text, "Certificate expires in 20 days: renew it now");
    assert_non_null(find_item(items, n, "Key: PIV 1"));
    assert_non_null(find_item(items, n, "[9a] 张三 — NHSA"));
    assert_non_null(find_item(items, n, "Valid from 2026-08-16 to 2026-12-14"));
    assert_non_null(find_item(items, n, "Expiring: 20 days left"));
    assert_non_null(find_item(items, n, "Not valid yet: valid in 2 days"));
    const uk_tray_item *renew = find_item(items, n, "Open the renewal page");
    assert_non_null(renew);
    assert_int_equal(renew->action, UK_TRAY_ACTION_RENEW);
    assert_false(renew->sensitive);
    assert_int_equal(items[n - 2].action, UK_TRAY_ACTION_DOCTOR);
    assert_int_equal(items[n - 1].action, UK_TRAY_ACTION_QUIT);
    n = uk_tray_menu_build(&m, NOW, true, items);
    assert_true(find_item(items, n, "Open the renewal page")->sensitive);
    /* A key whose certificates could not be read says why. */
    assert_int_equal(uk_tray_model_set_certs(&m, "piv:1", NULL, "CARD_BUSY"), 0);
    n = uk_tray_menu_build(&m, NOW, true, items);
    assert_non_null(find_item(items, n, "Another program is using the USB key"));
    /* Renewals in progress are counted. */
    cJSON *rl = parse("{\"renewals\":[{\"renewal_id\":\"r1\",\"state\":\"prepared\"},"
                      "{\"renewal_id\":\"r0\",\"state\":\"done\"}]}");
    assert_int_equal(uk_tray_model_set_renewals(&m, rl), 0);
    cJSON_Delete(rl);
    n = uk_tray_menu_build(&m, NOW, true, items);
    assert_non_null(find_item(items, n, "1 certificate renewal in progress"));
    free(items);
}

static size_t due(uk_tray_model *m, uk_tray_store *s, time_t now, uk_tray_note *notes)
{
    return uk_tray_reminders_due(m, s, THRESHOLDS, 3, now, notes);
}

static void test_tray_state_reminders_once_per_threshold(void **state)
{
    (void)state;
    uk_tray_model m;
    uk_tray_store *s = calloc(1, sizeof(*s));
    uk_tray_note notes[UK_TRAY_MAX_NOTES];
    time_t na = NOW + 40 * DAY;
    one_key(&m, array_of(cert_entry("9a", "aa", NOW - DAY, na, "valid"), NULL));
    assert_int_equal(due(&m, s, NOW, notes), 0); /* 40 days: nothing yet */
    /* 30 days left: one note, once. */
    assert_int_equal(due(&m, s, na - 30 * DAY, notes), 1);
    assert_int_equal(notes[0].kind, UK_TRAY_NOTE_EXPIRING);
    assert_int_equal(notes[0].threshold, 30);
    assert_string_equal(notes[0].summary, "Your certificate expires in 30 days");
    assert_true(s->dirty);
    assert_int_equal(due(&m, s, na - 29 * DAY, notes), 0);
    assert_int_equal(due(&m, s, na - 8 * DAY, notes), 0);
    assert_int_equal(due(&m, s, na - 7 * DAY, notes), 1);
    assert_int_equal(notes[0].threshold, 7);
    assert_int_equal(due(&m, s, na - 1 * DAY, notes), 1);
    assert_int_equal(notes[0].threshold, 1);
    assert_int_equal(due(&m, s, na - 1, notes), 0);
    /* Expired: once. */
    assert_int_equal(due(&m, s, na + 1, notes), 1);
    assert_int_equal(notes[0].kind, UK_TRAY_NOTE_EXPIRED);
    assert_int_equal(due(&m, s, na + DAY, notes), 0);
    free(s);
}

static void test_tray_state_first_seen_late_gets_one_note(void **state)
{
    (void)state;
    uk_tray_model m;
    uk_tray_store *s = calloc(1, sizeof(*s));
    uk_tray_note notes[UK_TRAY_MAX_NOTES];
    one_key(&m, array_of(cert_entry("9a", "aa", NOW - DAY, NOW + 5 * DAY, "expiring"), NULL));
    assert_int_equal(due(&m, s, NOW, notes), 1);
    assert_int_equal(notes[0].threshold, 7);
    assert_int_equal(notes[0].days_left, 5);
    assert_int_equal(due(&m, s, NOW + DAY, notes), 0); /* 30 was marked with 7 */
    free(s);
}

static void test_tray_state_two_certificates_of_a_key_one_note(void **state)
{
    (void)state;
    uk_tray_model m;
    uk_tray_store *s = calloc(1, sizeof(*s));
    uk_tray_note notes[UK_TRAY_MAX_NOTES];
    one_key(&m, array_of(cert_entry("9a", "aa", NOW - DAY, NOW + 20 * DAY, "expiring"),
                         cert_entry("9c", "bb", NOW - DAY, NOW + 20 * DAY, "expiring")));
    assert_int_equal(due(&m, s, NOW, notes), 1);
    assert_int_equal(s->n_certs, 2); /* both marked */
    assert_int_equal(due(&m, s, NOW, notes), 0);
    free(s);
}

static void test_tray_state_reminders_remembered_across_restarts(void **state)
{
    (void)state;
    char dir[] = "/tmp/uk-tray-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/sub/tray-reminders.json", dir);
    uk_tray_model m;
    uk_tray_store *s = calloc(1, sizeof(*s));
    uk_tray_note notes[UK_TRAY_MAX_NOTES];
    assert_int_equal(uk_tray_store_load(s, path), 0); /* missing: empty */
    one_key(&m, array_of(cert_entry("9a", "aa", NOW - DAY, NOW + 20 * DAY, "expiring"), NULL));
    assert_int_equal(due(&m, s, NOW, notes), 1);
    assert_int_equal(uk_tray_store_save(s, path), 0);
    assert_false(s->dirty);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* "Restart": a new store from the file says nothing new. */
    uk_tray_store *s2 = calloc(1, sizeof(*s2));
    assert_int_equal(uk_tray_store_load(s2, path), 0);
    assert_int_equal(s2->n_certs, 1);
    assert_int_equal(due(&m, s2, NOW + 60, notes), 0);
    /* A damaged file: -1 and an empty store. */
    FILE *f = fopen(path, "w");
    fputs("{\"version\":1,\"certificates\":[{\"fingerprint\":3}]}", f);
    fclose(f);
    assert_int_equal(uk_tray_store_load(s2, path), -1);
    assert_int_equal(s2->n_certs, 0);
    unlink(path);
    snprintf(path, sizeof path, "%s/sub", dir);
    rmdir(path);
    rmdir(dir);
    free(s);
    free(s2);
}

static void test_tray_state_renewed_certificate_valid_and_repair_notes(void **state)
{
    (void)state;
    uk_tray_model m;
    uk_tray_store *s = calloc(1, sizeof(*s));
    uk_tray_note notes[UK_TRAY_MAX_NOTES];
    /* Seen not yet valid, later valid: "now valid" once. */
    one_key(&m,
            array_of(cert_entry("9a", "new", NOW + DAY, NOW + 366 * DAY, "not_yet_valid"), NULL));
    assert_int_equal(due(&m, s, NOW, notes), 0);
    assert_int_equal(due(&m, s, NOW + DAY + 1, notes), 1);
    assert_int_equal(notes[0].kind, UK_TRAY_NOTE_NOW_VALID);
    assert_int_equal(due(&m, s, NOW + 2 * DAY, notes), 0);
    /* A renewal written for later and then done: once. */
    cJSON *rl = parse("{\"renewals\":[{\"renewal_id\":\"r1\",\"state\":\"written\"}]}");
    assert_int_equal(uk_tray_model_set_renewals(&m, rl), 0);
    cJSON_Delete(rl);
    assert_int_equal(due(&m, s, NOW + 2 * DAY, notes), 0);
    rl = parse("{\"renewals\":[{\"renewal_id\":\"r1\",\"state\":\"done\"}]}");
    assert_int_equal(uk_tray_model_set_renewals(&m, rl), 0);
    cJSON_Delete(rl);
    assert_int_equal(due(&m, s, NOW + 2 * DAY, notes), 1);
    assert_int_equal(notes[0].kind, UK_TRAY_NOTE_NOW_VALID);
    assert_int_equal(due(&m, s, NOW + 2 * DAY, notes), 0);
    /* A key with an expired certificate inserted: "needs repair" at every insertion. */
    one_key(&m, array_of(cert_entry("9a", "old", NOW - 400 * DAY, NOW - DAY, "expired"), NULL));
    uk_tray_model_mark_inserted(&m, "piv:1");
    assert_int_equal(due(&m, s, NOW, notes), 1);
    assert_int_equal(notes[0].kind, UK_TRAY_NOTE_REPAIR);
    assert_string_equal(notes[0].summary, "This key needs repair");
    assert_int_equal(due(&m, s, NOW, notes), 0);
    uk_tray_model_mark_inserted(&m, "piv:1");
    assert_int_equal(due(&m, s, NOW, notes), 1);
    free(s);
}

static void test_tray_state_next_wakeup(void **state)
{
    (void)state;
    uk_tray_model m;
    /* Nothing known: the next (UTC) midnight. */
    uk_tray_model_init(&m, 0);
    assert_int_equal(uk_tray_next_wakeup(&m, NOW + 3600), NOW + DAY);
    /* A certificate that becomes valid in an hour. */
    one_key(&m,
            array_of(cert_entry("9a", "aa", NOW + 3600, NOW + 100 * DAY, "not_yet_valid"), NULL));
    assert_int_equal(uk_tray_next_wakeup(&m, NOW), NOW + 3600);
    /* days_left drops one second past not_after - k days. */
    one_key(&m, array_of(cert_entry("9a", "aa", NOW - DAY, NOW + 10 * DAY + 7200, "valid"), NULL));
    assert_int_equal(uk_tray_next_wakeup(&m, NOW), NOW + 7201);
    time_t t = uk_tray_next_wakeup(&m, NOW + 7201);
    assert_true(t > NOW + 7201);
    assert_true(t <= NOW + DAY);
}

static void test_tray_state_config(void **state)
{
    (void)state;
    uk_tray_config c;
    char err[256];
    const char *good = "{\"renewal_url\":\"https://portal.example.cn/#/cert\",\"expiring_days\":20,"
                       "\"reminder_days\":[14,3]}";
    assert_int_equal(uk_tray_config_parse(&c, good, strlen(good), err, sizeof err), 0);
    assert_string_equal(c.renewal_url, "https://portal.example.cn/#/cert");
    assert_int_equal(c.expiring_days, 20);
    assert_int_equal(c.n_reminder_days, 2);
    assert_int_equal(c.reminder_days[1], 3);
    const char *bad[] = {"{\"renewal_uri\":\"https://x\"}",
                         "{\"renewal_url\":\"javascript:x\"}",
                         "{\"expiring_days\":0}",
                         "{\"reminder_days\":[1.5]}",
                         "[]",
                         "{\"renewal_url\":\"https://a b\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(uk_tray_config_parse(&c, bad[i], strlen(bad[i]), err, sizeof err), -1);
        assert_int_equal(c.n_reminder_days, 3); /* the defaults */
        assert_string_equal(c.renewal_url, "");
    }
    assert_int_equal(uk_tray_config_load(&c, "/nonexistent/tray.json", err, sizeof err), 0);
}

/* The zh-CN catalogue built from tray/po/zh_CN.po (UK_TRAY_TEST_LOCALEDIR). */
static void test_tray_state_texts_in_chinese(void **state)
{
    (void)state;
    struct stat st;
    if (stat(UK_TRAY_TEST_LOCALEDIR "/zh_CN/LC_MESSAGES/ukeyd-tray.mo", &st) != 0 ||
        setlocale(LC_ALL, "C.UTF-8") == NULL)
        skip();
    setenv("LANGUAGE", "zh_CN", 1);
    bindtextdomain(UK_TRAY_DOMAIN, UK_TRAY_TEST_LOCALEDIR);
    bind_textdomain_codeset(UK_TRAY_DOMAIN, "UTF-8");
    uk_tray_model m;
    one_key(&m, array_of(cert_entry("9a", "aa", NOW - DAY, NOW + 20 * DAY, "expiring"), NULL));
    char s[256];
    uk_tray_model_summary(&m, NOW, s, sizeof s);
    assert_string_equal(s, "证书将在 20 天后到期：请尽快续期");
    uk_tray_item *items = calloc(UK_TRAY_MAX_ITEMS, sizeof(*items));
    size_t n = uk_tray_menu_build(&m, NOW, true, items);
    assert_non_null(find_item(items, n, "打开证书续期页面"));
    assert_non_null(find_item(items, n, "有效期 2026-11-23 至 2026-12-14"));
    free(items);
    unsetenv("LANGUAGE");
    setlocale(LC_ALL, "C");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_tray_state_daemon_down_without_connection, setup),
        cmocka_unit_test_setup(test_tray_state_no_key_and_no_service, setup),
        cmocka_unit_test_setup(test_tray_state_each_certificate_status, setup),
        cmocka_unit_test_setup(test_tray_state_worst_certificate_wins, setup),
        cmocka_unit_test_setup(test_tray_state_status_follows_the_clock, setup),
        cmocka_unit_test_setup(test_tray_state_bad_answers_leave_the_model_alone, setup),
        cmocka_unit_test_setup(test_tray_state_menu_lists_keys_certificates_and_actions, setup),
        cmocka_unit_test_setup(test_tray_state_reminders_once_per_threshold, setup),
        cmocka_unit_test_setup(test_tray_state_first_seen_late_gets_one_note, setup),
        cmocka_unit_test_setup(test_tray_state_two_certificates_of_a_key_one_note, setup),
        cmocka_unit_test_setup(test_tray_state_reminders_remembered_across_restarts, setup),
        cmocka_unit_test_setup(test_tray_state_renewed_certificate_valid_and_repair_notes, setup),
        cmocka_unit_test_setup(test_tray_state_next_wakeup, setup),
        cmocka_unit_test_setup(test_tray_state_config, setup),
        cmocka_unit_test_setup(test_tray_state_texts_in_chinese, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
