/*
 * The renewal journal: every field round trip (Unicode included), the state machine, refusal of a
 * second renewal on the same key location, listing, corrupt records moved aside, permissions and
 * ownership, backups that never overwrite, and crash safety: a forked child _exit()s after each
 * step of an atomic write, and the re-opened journal must hold the old record or the new one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "uk_err.h"
#include "uk_journal.h"
#include "uk_journal_testing.h"
#include "uk_log.h"

/* 2033-05-18T03:33:20Z */
#define T0     2000000000
#define T0_ISO "2033-05-18T03:33:20Z"
#define T0_FS  "20330518T033320Z"

/* ---- fixture -------------------------------------------------------------------------------- */

struct fx {
    char base[64];
    char state[128]; /* BASE/state: made by uk_journal_open */
    char renewals[160];
    char backup[160];
    uk_journal *j;
    int64_t now;
    int errors; /* log lines at err */
    char last_error[512];
};

static void capture_log(void *ctx, uk_log_level level, const char *line, size_t len)
{
    struct fx *f = ctx;
    if (level <= UK_LOG_LEVEL_ERR) {
        f->errors++;
        snprintf(f->last_error, sizeof(f->last_error), "%.*s", (int)len, line);
    }
}

static int64_t fixed_clock(void *ctx)
{
    struct fx *f = ctx;
    return f->now;
}

static void reopen(struct fx *f)
{
    uk_journal_close(f->j);
    f->j = NULL;
    assert_int_equal(uk_journal_open(f->state, &f->j), UK_OK);
    uk__journal_set_clock(f->j, fixed_clock, f);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->base, sizeof(f->base), "/tmp/uk-journal.XXXXXX");
    assert_non_null(mkdtemp(f->base));
    snprintf(f->state, sizeof(f->state), "%s/state", f->base);
    snprintf(f->renewals, sizeof(f->renewals), "%s/renewals", f->state);
    snprintf(f->backup, sizeof(f->backup), "%s/backup", f->state);
    f->now = T0;
    uk_log_set_sink(capture_log, f);
    assert_int_equal(uk_journal_open(f->state, &f->j), UK_OK);
    uk__journal_set_clock(f->j, fixed_clock, f);
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    uk_journal_close(f->j);
    uk_log_set_sink(NULL, NULL);
    chmod(f->state, 0700);
    nftw(f->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- records to write ----------------------------------------------------------------------- */

/* A renewal as the service would describe it; the strings live here. */
struct input {
    char token_id[96], serial[64], driver[32], slot[64], staged[64], alg[32];
    char csr[256];
    uint8_t spki[91], old_der[300];
    uk_renewal_rec rec;
};

static void input_init(struct input *in, const char *token_id, const char *slot, const char *staged)
{
    memset(in, 0, sizeof(*in));
    snprintf(in->token_id, sizeof(in->token_id), "%s", token_id);
    snprintf(in->serial, sizeof(in->serial), "12345678");
    snprintf(in->driver, sizeof(in->driver), "piv");
    snprintf(in->slot, sizeof(in->slot), "%s", slot);
    snprintf(in->staged, sizeof(in->staged), "%s", staged);
    snprintf(in->alg, sizeof(in->alg), "p256");
    snprintf(in->csr, sizeof(in->csr),
             "-----BEGIN CERTIFICATE REQUEST-----\nMIIBfake\n-----END CERTIFICATE REQUEST-----\n");
    for (size_t i = 0; i < sizeof(in->spki); i++)
        in->spki[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof(in->old_der); i++)
        in->old_der[i] = (uint8_t)(255 - i);
    in->rec = (uk_renewal_rec){
        .token_id = in->token_id,
        .token_serial = in->serial,
        .driver = in->driver,
        .slot = in->slot,
        .staged_slot = in->staged,
        .mode = UK_RENEWAL_EXTEND,
        .algorithm = in->alg,
        .state = UK_RENEWAL_PREPARED,
        .csr_pem = in->csr,
        .staged_spki = in->spki,
        .staged_spki_len = sizeof(in->spki),
        .old_cert_der = in->old_der,
        .old_cert_der_len = sizeof(in->old_der),
    };
}

static uk_renewal_rec *create_ok(struct fx *f, const char *token_id, const char *slot,
                                 const char *staged)
{
    struct input in;
    input_init(&in, token_id, slot, staged);
    uk_renewal_rec *r = NULL;
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_OK);
    assert_non_null(r);
    return r;
}

static const uint8_t new_der[] = {0x30, 0x82, 0x01, 0x0a, 0x02, 0x01, 0x01, 0xde, 0xad, 0xbe, 0xef};

/* Moves r through legal updates until it is in state s (r is updated in place). */
static void drive_to(struct fx *f, uk_renewal_rec *r, uk_renewal_state s)
{
    static const uk_renewal_state path_done[] = {UK_RENEWAL_COMMITTING, UK_RENEWAL_WRITTEN,
                                                 UK_RENEWAL_ACTIVATED, UK_RENEWAL_DONE};
    if (s == UK_RENEWAL_PREPARED)
        return;
    if (s == UK_RENEWAL_ABORTED) {
        r->state = s;
        assert_int_equal(uk_journal_update(f->j, r), UK_OK);
        return;
    }
    assert_int_equal(uk_renewal_rec_set1_new_cert(r, new_der, sizeof(new_der)), UK_OK);
    if (s == UK_RENEWAL_ROLLED_BACK) {
        r->state = UK_RENEWAL_COMMITTING;
        assert_int_equal(uk_journal_update(f->j, r), UK_OK);
        r->state = s;
        assert_int_equal(uk_journal_update(f->j, r), UK_OK);
        return;
    }
    for (size_t i = 0; i < sizeof(path_done) / sizeof(path_done[0]); i++) {
        r->state = path_done[i];
        assert_int_equal(uk_journal_update(f->j, r), UK_OK);
        if (path_done[i] == s)
            return;
    }
    fail();
}

static void assert_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    assert_int_equal(an, bn);
    if (an > 0)
        assert_memory_equal(a, b, an);
    else
        assert_true(a == NULL && b == NULL);
}

static void assert_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_true(a == b);
    else
        assert_string_equal(a, b);
}

static void assert_rec_equal(const uk_renewal_rec *a, const uk_renewal_rec *b)
{
    assert_string_equal(a->id, b->id);
    assert_str(a->token_id, b->token_id);
    assert_str(a->token_serial, b->token_serial);
    assert_str(a->driver, b->driver);
    assert_str(a->slot, b->slot);
    assert_str(a->staged_slot, b->staged_slot);
    assert_int_equal(a->mode, b->mode);
    assert_str(a->algorithm, b->algorithm);
    assert_str(a->origin, b->origin);
    assert_int_equal(a->state, b->state);
    assert_string_equal(a->created, b->created);
    assert_string_equal(a->updated, b->updated);
    assert_int_equal(a->revision, b->revision);
    assert_str(a->csr_pem, b->csr_pem);
    assert_bytes(a->staged_spki, a->staged_spki_len, b->staged_spki, b->staged_spki_len);
    assert_string_equal(a->old_cert_sha256, b->old_cert_sha256);
    assert_bytes(a->old_cert_der, a->old_cert_der_len, b->old_cert_der, b->old_cert_der_len);
    assert_str(a->old_cert_backup, b->old_cert_backup);
    assert_bytes(a->new_cert_der, a->new_cert_der_len, b->new_cert_der, b->new_cert_der_len);
    assert_int_equal(a->n_steps, b->n_steps);
    for (size_t i = 0; i < a->n_steps; i++) {
        assert_string_equal(a->steps[i].time, b->steps[i].time);
        assert_str(a->steps[i].step, b->steps[i].step);
        assert_str(a->steps[i].result, b->steps[i].result);
    }
}

/* ---- files ---------------------------------------------------------------------------------- */

static char *read_text(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void record_path(const struct fx *f, const char *id, const char *suffix, char *out,
                        size_t cap)
{
    snprintf(out, cap, "%s/%s.json%s", f->renewals, id, suffix);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return (int)(st.st_mode & 07777);
}

/* Entries of dir whose name starts with prefix. */
static int count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static void sha256_hex(const uint8_t *p, size_t n, char out[65])
{
    uint8_t md[32];
    unsigned len = 0;
    assert_int_equal(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
    for (unsigned i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- names and the state machine ------------------------------------------------------------ */

static void test_journal_state_names_round_trip(void **state)
{
    (void)state;
    for (int s = UK_RENEWAL_PREPARED; s <= UK_RENEWAL_ROLLED_BACK; s++) {
        uk_renewal_state back = 0;
        assert_non_null(uk_renewal_state_name((uk_renewal_state)s));
        assert_true(uk_renewal_state_from_name(uk_renewal_state_name((uk_renewal_state)s), &back));
        assert_int_equal(back, s);
    }
    uk_renewal_state st = UK_RENEWAL_DONE;
    assert_false(uk_renewal_state_from_name("PREPARED", &st));
    assert_false(uk_renewal_state_from_name("frozen", &st));
    assert_int_equal(st, UK_RENEWAL_DONE);
    assert_null(uk_renewal_state_name((uk_renewal_state)0));
    assert_null(uk_renewal_state_name((uk_renewal_state)99));
    uk_renewal_mode m = 0;
    assert_true(uk_renewal_mode_from_name("repair", &m));
    assert_int_equal(m, UK_RENEWAL_REPAIR);
    assert_false(uk_renewal_mode_from_name("renew", &m));
}

/* The allowed transitions, written out independently of the module. */
static bool expected_ok(uk_renewal_state from, uk_renewal_state to)
{
    static const char *const allowed[] = {
        "prepared>prepared",      "prepared>committing", "prepared>aborted",
        "committing>committing",  "committing>prepared", "committing>written",
        "committing>rolled_back", "written>written",     "written>activated",
        "written>rolled_back",    "written>aborted",     "activated>activated",
        "activated>done",
    };
    char key[64];
    snprintf(key, sizeof(key), "%s>%s", uk_renewal_state_name(from), uk_renewal_state_name(to));
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        if (strcmp(key, allowed[i]) == 0)
            return true;
    }
    return false;
}

static void test_journal_every_transition_is_checked_and_illegal_ones_leave_the_file(void **state)
{
    struct fx *f = *state;
    int n = 0;
    for (int from = UK_RENEWAL_PREPARED; from <= UK_RENEWAL_ROLLED_BACK; from++) {
        for (int to = UK_RENEWAL_PREPARED; to <= UK_RENEWAL_ROLLED_BACK; to++) {
            char token[32];
            snprintf(token, sizeof(token), "piv:%d", n++);
            uk_renewal_rec *r = create_ok(f, token, "9a", "82");
            drive_to(f, r, (uk_renewal_state)from);
            assert_int_equal(r->state, from);
            bool ok = expected_ok((uk_renewal_state)from, (uk_renewal_state)to);
            assert_int_equal(uk_renewal_transition_ok((uk_renewal_state)from, (uk_renewal_state)to),
                             ok);

            char path[256];
            record_path(f, r->id, "", path, sizeof(path));
            size_t before_len = 0, after_len = 0;
            char *before = read_text(path, &before_len);
            struct stat st_before, st_after;
            assert_int_equal(stat(path, &st_before), 0);

            if (r->new_cert_der == NULL)
                assert_int_equal(uk_renewal_rec_set1_new_cert(r, new_der, sizeof(new_der)), UK_OK);
            f->now++;
            r->state = (uk_renewal_state)to;
            int rc = uk_journal_update(f->j, r);
            char *after = read_text(path, &after_len);
            assert_int_equal(stat(path, &st_after), 0);
            if (ok) {
                assert_int_equal(rc, UK_OK);
                uk_renewal_rec *back = NULL;
                assert_int_equal(uk_journal_get(f->j, r->id, &back), UK_OK);
                assert_int_equal(back->state, to);
                uk_renewal_rec_free(back);
            } else {
                assert_int_equal(rc, UK_E_RENEWAL_STATE);
                assert_int_equal(before_len, after_len);
                assert_memory_equal(before, after, before_len);
                assert_int_equal(st_before.st_ino, st_after.st_ino);
            }
            free(before);
            free(after);
            uk_renewal_rec_free(r);
        }
    }
}

static void test_journal_finish_appends_a_step_and_is_final(void **state)
{
    struct fx *f = *state;
    uk_renewal_rec *r = create_ok(f, "piv:1", "9a", "82");
    size_t steps = r->n_steps;
    assert_int_equal(uk_journal_finish(f->j, r->id, UK_RENEWAL_COMMITTING), UK_E_INVALID_PARAMS);
    drive_to(f, r, UK_RENEWAL_COMMITTING);
    assert_int_equal(uk_journal_finish(f->j, r->id, UK_RENEWAL_ABORTED), UK_E_RENEWAL_STATE);
    assert_int_equal(uk_journal_finish(f->j, r->id, UK_RENEWAL_DONE), UK_E_RENEWAL_STATE);
    assert_int_equal(uk_journal_finish(f->j, r->id, UK_RENEWAL_ROLLED_BACK), UK_OK);

    uk_renewal_rec *back = NULL;
    assert_int_equal(uk_journal_get(f->j, r->id, &back), UK_OK);
    assert_int_equal(back->state, UK_RENEWAL_ROLLED_BACK);
    assert_int_equal(back->n_steps, steps + 1);
    assert_string_equal(back->steps[steps].step, "finish");
    assert_string_equal(back->steps[steps].result, "rolled_back");
    assert_string_equal(back->steps[steps].time, T0_ISO);
    /* Final: neither finish nor update may change it again. */
    assert_int_equal(uk_journal_finish(f->j, r->id, UK_RENEWAL_DONE), UK_E_RENEWAL_STATE);
    assert_int_equal(uk_renewal_rec_add_step(back, "late", "ok"), UK_OK);
    assert_int_equal(uk_journal_update(f->j, back), UK_E_RENEWAL_STATE);
    assert_int_equal(uk_journal_finish(f->j, "0123456789abcdef0123456789abcdef", UK_RENEWAL_DONE),
                     UK_E_RENEWAL_NOT_FOUND);
    uk_renewal_rec_free(back);
    uk_renewal_rec_free(r);
}

/* ---- records -------------------------------------------------------------------------------- */

static void test_journal_record_round_trips_every_field_with_unicode(void **state)
{
    struct fx *f = *state;
    struct input in;
    input_init(&in, "skf:龙脉GM3000 \"甲\"", "签名容器", "容器-2\\\n\t😀");
    snprintf(in.serial, sizeof(in.serial), "ЖЖ-12/34");
    snprintf(in.driver, sizeof(in.driver), "skf");
    snprintf(in.alg, sizeof(in.alg), "sm2");
    in.rec.mode = UK_RENEWAL_REPAIR;
    uk_renewal_rec *r = NULL;
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_OK);

    /* What create fills in. */
    assert_int_equal(strlen(r->id), 32);
    assert_int_equal(strspn(r->id, "0123456789abcdef"), 32);
    assert_string_equal(r->created, T0_ISO);
    assert_string_equal(r->updated, T0_ISO);
    char sha[65];
    sha256_hex(in.old_der, sizeof(in.old_der), sha);
    assert_string_equal(r->old_cert_sha256, sha);
    assert_int_equal(r->state, UK_RENEWAL_PREPARED);
    assert_int_equal(r->revision, 1);

    /* What the service adds later. */
    assert_int_equal(uk_renewal_rec_add_step(r, "密钥已生成", "ok"), UK_OK);
    assert_int_equal(uk_renewal_rec_add_step(r, "csr_signed", "CARD_REMOVED \"x\"\n"), UK_OK);
    assert_int_equal(uk_renewal_rec_set1_new_cert(r, new_der, sizeof(new_der)), UK_OK);
    assert_int_equal(uk_renewal_rec_set1_backup(r, "/home/用户/.local/state/ukeyd/backup/x.der"),
                     UK_OK);
    r->state = UK_RENEWAL_COMMITTING;
    f->now = T0 + 86400;
    assert_int_equal(uk_journal_update(f->j, r), UK_OK);
    assert_string_equal(r->updated, "2033-05-19T03:33:20Z");
    assert_int_equal(r->revision, 2);

    /* Another process start reads exactly the same record. */
    reopen(f);
    uk_renewal_rec *back = NULL;
    assert_int_equal(uk_journal_get(f->j, r->id, &back), UK_OK);
    assert_rec_equal(back, r);
    assert_string_equal(back->token_id, "skf:龙脉GM3000 \"甲\"");
    assert_string_equal(back->staged_slot, "容器-2\\\n\t😀");
    assert_string_equal(back->steps[0].step, "密钥已生成");

    /* The file is readable JSON with the text as UTF-8 and the binary fields as base64. */
    char path[256];
    record_path(f, r->id, "", path, sizeof(path));
    char *text = read_text(path, NULL);
    assert_non_null(strstr(text, "龙脉GM3000"));
    cJSON *o = cJSON_Parse(text);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "state")->valuestring, "committing");
    assert_string_equal(cJSON_GetObjectItem(o, "mode")->valuestring, "repair");
    assert_string_equal(cJSON_GetObjectItem(o, "new_cert_der")->valuestring, "MIIBCgIBAd6tvu8=");
    assert_string_equal(cJSON_GetObjectItem(o, "old_cert_sha256")->valuestring, sha);
    cJSON_Delete(o);
    free(text);
    uk_renewal_rec_free(back);
    uk_renewal_rec_free(r);
}

static void test_journal_record_without_old_certificate_round_trips(void **state)
{
    struct fx *f = *state;
    struct input in;
    input_init(&in, "piv:1", "9c", "83");
    in.rec.mode = UK_RENEWAL_REPAIR;
    in.rec.old_cert_der = NULL;
    in.rec.old_cert_der_len = 0;
    uk_renewal_rec *r = NULL;
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_OK);
    assert_string_equal(r->old_cert_sha256, "");
    reopen(f);
    uk_renewal_rec *back = NULL;
    assert_int_equal(uk_journal_get(f->j, r->id, &back), UK_OK);
    assert_rec_equal(back, r);
    assert_null(back->old_cert_der);
    assert_null(back->new_cert_der);
    assert_null(back->old_cert_backup);
    assert_int_equal(back->n_steps, 0);
    uk_renewal_rec_free(back);
    uk_renewal_rec_free(r);
}

static void test_journal_record_origin_round_trips_and_never_changes(void **state)
{
    struct fx *f = *state;
    struct input in;
    char origin[] = "https://portal.example.cn";
    input_init(&in, "piv:1", "9a", "82");
    in.rec.origin = origin;
    uk_renewal_rec *r = NULL;
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_OK);
    assert_string_equal(r->origin, origin);
    reopen(f);
    uk_renewal_rec *back = NULL;
    assert_int_equal(uk_journal_get(f->j, r->id, &back), UK_OK);
    assert_rec_equal(back, r);
    char path[256];
    record_path(f, r->id, "", path, sizeof(path));
    char *text = read_text(path, NULL);
    cJSON *o = cJSON_Parse(text);
    assert_string_equal(cJSON_GetObjectItem(o, "origin")->valuestring, origin);
    cJSON_Delete(o);
    free(text);

    /* The origin is fixed at create: another one (or none) is refused, the file untouched. */
    char other[] = "https://evil.example";
    char *mine = back->origin;
    back->origin = other;
    assert_int_equal(uk_journal_update(f->j, back), UK_E_INVALID_PARAMS);
    back->origin = NULL;
    assert_int_equal(uk_journal_update(f->j, back), UK_E_INVALID_PARAMS);
    back->origin = mine;
    char empty[] = "";
    uk_renewal_rec *bad = NULL;
    input_init(&in, "piv:2", "9a", "82");
    in.rec.origin = empty;
    assert_int_equal(uk_journal_create(f->j, &in.rec, &bad), UK_E_INVALID_PARAMS);
    uk_renewal_rec_free(back);

    /* The local user's renewal has no origin, and the file no "origin" member. */
    uk_renewal_rec *local = create_ok(f, "piv:3", "9c", "83");
    assert_null(local->origin);
    record_path(f, local->id, "", path, sizeof(path));
    text = read_text(path, NULL);
    assert_null(strstr(text, "\"origin\""));
    free(text);
    uk_renewal_rec_free(local);
    uk_renewal_rec_free(r);
}

static void test_journal_reads_a_record_written_before_origin_existed(void **state)
{
    struct fx *f = *state;
    static const char old[] =
        "{\"version\": 1, \"id\": \"0123456789abcdef0123456789abcdef\", "
        "\"token_id\": \"piv:12345678\", \"token_serial\": \"12345678\", \"driver\": \"piv\", "
        "\"slot\": \"9a\", \"staged_slot\": \"82\", \"mode\": \"repair\", \"algorithm\": \"p256\", "
        "\"state\": \"prepared\", \"created\": \"2026-11-24T08:00:00Z\", "
        "\"updated\": \"2026-11-24T08:00:00Z\", \"revision\": 1, "
        "\"csr_pem\": \"-----BEGIN CERTIFICATE REQUEST-----\\nMIIB\\n-----END CERTIFICATE "
        "REQUEST-----\\n\", \"staged_spki\": \"AQID\", \"steps\": []}\n";
    char path[256];
    record_path(f, "0123456789abcdef0123456789abcdef", "", path, sizeof(path));
    write_text(path, old, strlen(old));
    assert_int_equal(chmod(path, 0600), 0);
    uk_renewal_rec *r = NULL;
    assert_int_equal(uk_journal_get(f->j, "0123456789abcdef0123456789abcdef", &r), UK_OK);
    assert_null(r->origin);
    assert_int_equal(r->state, UK_RENEWAL_PREPARED);
    assert_string_equal(r->staged_slot, "82");
    /* It is updated as it is: still without an origin. */
    assert_int_equal(uk_renewal_rec_add_step(r, "seen", "ok"), UK_OK);
    assert_int_equal(uk_journal_update(f->j, r), UK_OK);
    char *text = read_text(path, NULL);
    assert_null(strstr(text, "\"origin\""));
    free(text);
    uk_renewal_rec_free(r);
    assert_int_equal(f->errors, 0);
}

static void test_journal_written_can_be_aborted_but_not_after_activation(void **state)
{
    struct fx *f = *state;
    uk_renewal_rec *r = create_ok(f, "piv:1", "9a", "82");
    drive_to(f, r, UK_RENEWAL_WRITTEN);
    assert_int_equal(uk_journal_finish(f->j, r->id, UK_RENEWAL_ABORTED), UK_OK);
    uk_renewal_rec_free(r);
    r = create_ok(f, "piv:2", "9a", "82");
    drive_to(f, r, UK_RENEWAL_ACTIVATED);
    assert_int_equal(uk_journal_finish(f->j, r->id, UK_RENEWAL_ABORTED), UK_E_RENEWAL_STATE);
    uk_renewal_rec_free(r);
}

static void test_journal_create_refuses_bad_input(void **state)
{
    struct fx *f = *state;
    struct input in;
    uk_renewal_rec *r = NULL;

    input_init(&in, "piv:1", "9a", "82");
    in.rec.state = UK_RENEWAL_COMMITTING;
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_E_RENEWAL_STATE);

    input_init(&in, "", "9a", "82");
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_E_INVALID_PARAMS);
    input_init(&in, "piv:1", "9a", "9a"); /* staging over the working key */
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_E_INVALID_PARAMS);
    input_init(&in, "piv:1", "9a", "82");
    in.rec.old_cert_der = NULL; /* extend needs the certificate it extends */
    in.rec.old_cert_der_len = 0;
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_E_INVALID_PARAMS);
    input_init(&in, "piv:1", "9a", "82");
    snprintf(in.csr, sizeof(in.csr), "MIIBfake");
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_E_INVALID_PARAMS);
    input_init(&in, "piv:1", "9a", "82");
    in.driver[1] = (char)0xff; /* not UTF-8 */
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_E_INVALID_PARAMS);
    input_init(&in, "piv:1", "9a", "82");
    in.rec.mode = (uk_renewal_mode)7;
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_E_INVALID_PARAMS);
    input_init(&in, "piv:1", "9a", "82");
    in.rec.staged_spki_len = 0;
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_E_INVALID_PARAMS);
    input_init(&in, "piv:1", "9a", "82");
    uint8_t der[] = {1, 2, 3};
    in.rec.new_cert_der = der; /* not known at prepare */
    in.rec.new_cert_der_len = sizeof(der);
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_E_INVALID_PARAMS);

    assert_null(r);
    assert_int_equal(count_entries(f->renewals, ""), 0);
}

static void test_journal_create_refuses_a_second_unfinished_renewal_of_a_slot(void **state)
{
    struct fx *f = *state;
    struct input in;
    uk_renewal_rec *a = create_ok(f, "piv:1", "9a", "82");
    uk_renewal_rec *r = NULL;

    input_init(&in, "piv:1", "9a", "83"); /* same token and slot */
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_E_RENEWAL_IN_PROGRESS);
    input_init(&in, "piv:1", "9c", "82"); /* same staging location */
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_E_RENEWAL_IN_PROGRESS);
    input_init(&in, "piv:1", "82", "83"); /* staging over a renewal's staged key */
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_E_RENEWAL_IN_PROGRESS);
    assert_null(r);

    /* Another token, or another slot and staging location: fine. */
    uk_renewal_rec *b = create_ok(f, "piv:2", "9a", "82");
    uk_renewal_rec *c = create_ok(f, "piv:1", "9c", "83");

    /* Once a's renewal is over, its slot may be renewed again; still in progress mid-commit. */
    drive_to(f, a, UK_RENEWAL_WRITTEN);
    input_init(&in, "piv:1", "9a", "84");
    assert_int_equal(uk_journal_create(f->j, &in.rec, &r), UK_E_RENEWAL_IN_PROGRESS);
    assert_int_equal(uk_journal_finish(f->j, a->id, UK_RENEWAL_ROLLED_BACK), UK_OK);
    uk_renewal_rec *d = create_ok(f, "piv:1", "9a", "84");

    uk_renewal_rec_free(a);
    uk_renewal_rec_free(b);
    uk_renewal_rec_free(c);
    uk_renewal_rec_free(d);
}

struct race {
    struct fx *f;
    pthread_barrier_t *go;
    int rc;
};

static void *race_create(void *arg)
{
    struct race *r = arg;
    struct input in;
    uk_renewal_rec *out = NULL;
    input_init(&in, "piv:7", "9a", "82");
    pthread_barrier_wait(r->go);
    r->rc = uk_journal_create(r->f->j, &in.rec, &out);
    uk_renewal_rec_free(out);
    return NULL;
}

static void test_journal_create_from_many_threads_lets_exactly_one_win(void **state)
{
    struct fx *f = *state;
    enum { N = 8 };
    pthread_t t[N];
    struct race r[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        r[i] = (struct race){.f = f, .go = &go};
        assert_int_equal(pthread_create(&t[i], NULL, race_create, &r[i]), 0);
    }
    int won = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        won += r[i].rc == UK_OK;
        refused += r[i].rc == UK_E_RENEWAL_IN_PROGRESS;
    }
    pthread_barrier_destroy(&go);
    assert_int_equal(won, 1);
    assert_int_equal(refused, N - 1);
    assert_int_equal(count_entries(f->renewals, ""), 1);
}

static void test_journal_update_refuses_changes_to_what_is_fixed(void **state)
{
    struct fx *f = *state;
    uk_renewal_rec *r = create_ok(f, "piv:1", "9a", "82");
    assert_int_equal(uk_renewal_rec_add_step(r, "key_generated", "ok"), UK_OK);
    assert_int_equal(uk_journal_update(f->j, r), UK_OK);
    char path[256];
    record_path(f, r->id, "", path, sizeof(path));
    char *before = read_text(path, NULL);

    char other[] = "9c";
    char *slot = r->slot;
    r->slot = other;
    assert_int_equal(uk_journal_update(f->j, r), UK_E_INVALID_PARAMS);
    r->slot = slot;

    r->n_steps = 0; /* steps removed */
    assert_int_equal(uk_journal_update(f->j, r), UK_E_INVALID_PARAMS);
    r->n_steps = 1;
    char rewritten[] = "key_imported";
    char *step = r->steps[0].step;
    r->steps[0].step = rewritten;
    assert_int_equal(uk_journal_update(f->j, r), UK_E_INVALID_PARAMS);
    r->steps[0].step = step;

    r->state = UK_RENEWAL_COMMITTING; /* without the certificate being committed */
    assert_int_equal(uk_journal_update(f->j, r), UK_E_INVALID_PARAMS);

    char *after = read_text(path, NULL);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* Committing fixes the new certificate: it may not be swapped afterwards. */
    assert_int_equal(uk_renewal_rec_set1_new_cert(r, new_der, sizeof(new_der)), UK_OK);
    assert_int_equal(uk_journal_update(f->j, r), UK_OK);
    uint8_t other_der[] = {0x30, 0x03, 0x02, 0x01, 0x02};
    assert_int_equal(uk_renewal_rec_set1_new_cert(r, other_der, sizeof(other_der)), UK_OK);
    assert_int_equal(uk_journal_update(f->j, r), UK_E_INVALID_PARAMS);
    /* Back to prepared (commit undone) keeps the certificate; then it may change. */
    assert_int_equal(uk_renewal_rec_set1_new_cert(r, new_der, sizeof(new_der)), UK_OK);
    r->state = UK_RENEWAL_PREPARED;
    assert_int_equal(uk_journal_update(f->j, r), UK_OK);
    assert_int_equal(uk_renewal_rec_set1_new_cert(r, other_der, sizeof(other_der)), UK_OK);
    assert_int_equal(uk_journal_update(f->j, r), UK_OK);

    /* A backup path, once recorded, stays. */
    assert_int_equal(uk_renewal_rec_set1_backup(r, "/b/1.der"), UK_OK);
    assert_int_equal(uk_journal_update(f->j, r), UK_OK);
    assert_int_equal(uk_renewal_rec_set1_backup(r, "/b/2.der"), UK_OK);
    assert_int_equal(uk_journal_update(f->j, r), UK_E_INVALID_PARAMS);
    uk_renewal_rec_free(r);
}

static void test_journal_update_of_a_stale_copy_is_refused(void **state)
{
    struct fx *f = *state;
    uk_renewal_rec *r = create_ok(f, "piv:1", "9a", "82");
    uk_renewal_rec *a = NULL, *b = NULL;
    assert_int_equal(uk_journal_get(f->j, r->id, &a), UK_OK);
    assert_int_equal(uk_journal_get(f->j, r->id, &b), UK_OK);
    assert_int_equal(uk_renewal_rec_set1_new_cert(a, new_der, sizeof(new_der)), UK_OK);
    a->state = UK_RENEWAL_COMMITTING;
    assert_int_equal(uk_journal_update(f->j, a), UK_OK);
    assert_int_equal(a->revision, 2);

    /* b was read before a's write: aborting from it would hide a commit in progress. */
    char path[256];
    record_path(f, r->id, "", path, sizeof(path));
    char *before = read_text(path, NULL);
    b->state = UK_RENEWAL_ABORTED;
    assert_int_equal(uk_journal_update(f->j, b), UK_E_RENEWAL_STATE);
    b->state = UK_RENEWAL_PREPARED;
    assert_int_equal(uk_journal_update(f->j, b), UK_E_RENEWAL_STATE);
    char *after = read_text(path, NULL);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* Read again, it goes on from the stored state. */
    uk_renewal_rec_free(b);
    assert_int_equal(uk_journal_get(f->j, r->id, &b), UK_OK);
    assert_int_equal(b->state, UK_RENEWAL_COMMITTING);
    b->state = UK_RENEWAL_WRITTEN;
    assert_int_equal(uk_journal_update(f->j, b), UK_OK);
    assert_int_equal(b->revision, 3);
    uk_renewal_rec_free(a);
    uk_renewal_rec_free(b);
    uk_renewal_rec_free(r);
}

static void test_journal_get_and_update_unknown_or_malformed_ids(void **state)
{
    struct fx *f = *state;
    uk_renewal_rec *r = NULL;
    assert_int_equal(uk_journal_get(f->j, "0123456789abcdef0123456789abcdef", &r),
                     UK_E_RENEWAL_NOT_FOUND);
    assert_int_equal(uk_journal_get(f->j, "../../../../etc/passwd", &r), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_journal_get(f->j, "0123456789ABCDEF0123456789ABCDEF", &r),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_journal_get(f->j, "", &r), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_journal_get(f->j, NULL, &r), UK_E_INVALID_PARAMS);
    assert_null(r);

    uk_renewal_rec *a = create_ok(f, "piv:1", "9a", "82");
    memcpy(a->id, "0123456789abcdef0123456789abcdef", 33);
    assert_int_equal(uk_journal_update(f->j, a), UK_E_RENEWAL_NOT_FOUND);
    assert_int_equal(count_entries(f->renewals, ""), 1);
    uk_renewal_rec_free(a);
}

static void test_journal_step_log_is_bounded(void **state)
{
    struct fx *f = *state;
    uk_renewal_rec *r = create_ok(f, "piv:1", "9a", "82");
    for (unsigned i = 0; i < UK_JOURNAL_MAX_STEPS; i++)
        assert_int_equal(uk_renewal_rec_add_step(r, "retry", "CARD_REMOVED"), UK_OK);
    assert_int_equal(uk_renewal_rec_add_step(r, "retry", "CARD_REMOVED"), UK_E_LIMIT_EXCEEDED);
    assert_int_equal(uk_renewal_rec_add_step(r, "", "ok"), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_journal_update(f->j, r), UK_OK);
    uk_renewal_rec *back = NULL;
    assert_int_equal(uk_journal_get(f->j, r->id, &back), UK_OK);
    assert_int_equal(back->n_steps, UK_JOURNAL_MAX_STEPS);
    uk_renewal_rec_free(back);
    uk_renewal_rec_free(r);
}

static void test_journal_list_all_or_unfinished_oldest_first(void **state)
{
    struct fx *f = *state;
    uk_renewal_rec **recs = NULL;
    size_t n = 99;
    assert_int_equal(uk_journal_list(f->j, false, &recs, &n), UK_OK);
    assert_int_equal(n, 0);
    assert_null(recs);

    f->now = T0 + 30;
    uk_renewal_rec *c = create_ok(f, "piv:3", "9a", "82");
    f->now = T0 + 10;
    uk_renewal_rec *a = create_ok(f, "piv:1", "9a", "82");
    f->now = T0 + 20;
    uk_renewal_rec *b = create_ok(f, "piv:2", "9a", "82");
    f->now = T0 + 40;
    uk_renewal_rec *d = create_ok(f, "piv:4", "9a", "82");
    drive_to(f, a, UK_RENEWAL_DONE);
    assert_int_equal(uk_journal_finish(f->j, c->id, UK_RENEWAL_ABORTED), UK_OK);
    drive_to(f, d, UK_RENEWAL_WRITTEN);

    assert_int_equal(uk_journal_list(f->j, false, &recs, &n), UK_OK);
    assert_int_equal(n, 4);
    assert_string_equal(recs[0]->id, a->id);
    assert_string_equal(recs[1]->id, b->id);
    assert_string_equal(recs[2]->id, c->id);
    assert_string_equal(recs[3]->id, d->id);
    uk_renewal_recs_free(recs, n);

    assert_int_equal(uk_journal_list(f->j, true, &recs, &n), UK_OK);
    assert_int_equal(n, 2);
    assert_string_equal(recs[0]->id, b->id);
    assert_int_equal(recs[0]->state, UK_RENEWAL_PREPARED);
    assert_string_equal(recs[1]->id, d->id);
    assert_int_equal(recs[1]->state, UK_RENEWAL_WRITTEN);
    uk_renewal_recs_free(recs, n);

    uk_renewal_rec_free(a);
    uk_renewal_rec_free(b);
    uk_renewal_rec_free(c);
    uk_renewal_rec_free(d);
}

/* ---- corrupt records ------------------------------------------------------------------------ */

/* The record's JSON with key set to value (a JSON text), or removed when value is NULL. */
static char *edit_json(const char *text, const char *key, const char *value)
{
    cJSON *o = cJSON_Parse(text);
    assert_non_null(o);
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    if (value != NULL) {
        cJSON *v = cJSON_Parse(value);
        assert_non_null(v);
        cJSON_AddItemToObject(o, key, v);
    }
    char *out = cJSON_Print(o);
    cJSON_Delete(o);
    return out;
}

static void test_journal_corrupt_records_are_moved_aside_and_reported(void **state)
{
    struct fx *f = *state;
    uk_renewal_rec *r = create_ok(f, "piv:1", "9a", "82");
    assert_int_equal(uk_renewal_rec_add_step(r, "key_generated", "ok"), UK_OK);
    assert_int_equal(uk_journal_update(f->j, r), UK_OK);
    char path[256], aside[256];
    record_path(f, r->id, "", path, sizeof(path));
    record_path(f, r->id, ".corrupt", aside, sizeof(aside));
    size_t good_len = 0;
    char *good = read_text(path, &good_len);

    char dup_key[8192], bad_utf8[8192], nul_escape[8192], trailing[8192], half[8192];
    snprintf(dup_key, sizeof(dup_key), "{\"state\": \"done\", %s", good + 1);
    snprintf(half, sizeof(half), "%.*s", (int)(good_len / 2), good);
    snprintf(trailing, sizeof(trailing), "%s{}", good);
    char *p = strstr(good, "\"piv:1\"");
    assert_non_null(p);
    snprintf(bad_utf8, sizeof(bad_utf8), "%.*s\"piv:\xff\"%s", (int)(p - good), good, p + 7);
    snprintf(nul_escape, sizeof(nul_escape), "%.*s\"piv:1\\u0000x\"%s", (int)(p - good), good,
             p + 7);

    char *edited[] = {
        edit_json(good, "state", "\"frozen\""),
        edit_json(good, "state", "\"PREPARED\""),
        edit_json(good, "state", NULL),
        edit_json(good, "csr_pem", NULL),
        edit_json(good, "token_id", NULL),
        edit_json(good, "steps", NULL),
        edit_json(good, "version", NULL),
        edit_json(good, "color", "\"blue\""),
        edit_json(good, "id", "\"ffffffffffffffffffffffffffffffff\""),
        edit_json(good, "old_cert_sha256",
                  "\"0000000000000000000000000000000000000000000000000000000000000000\""),
        edit_json(good, "old_cert_der", NULL),
        edit_json(good, "staged_spki", "\"AAA\""),
        edit_json(good, "staged_spki", "\"AQ==\\n\""),
        edit_json(good, "created", "\"2033-05-18 03:33:20\""),
        edit_json(good, "steps", "{}"),
        edit_json(good, "steps", "[{\"time\": \"2033-05-18T03:33:20Z\", \"step\": \"x\"}]"),
        edit_json(good, "steps",
                  "[{\"time\": \"2033-05-18T03:33:20Z\", \"step\": \"x\", \"result\": 1}]"),
        edit_json(good, "mode", "\"renew\""),
        edit_json(good, "slot", "\"82\""), /* the staged slot */
        edit_json(good, "version", "1.5"),
        edit_json(good, "revision", NULL),
        edit_json(good, "revision", "0"),
        edit_json(good, "revision", "2.5"),
        edit_json(good, "revision", "\"2\""),
        edit_json(good, "state", "\"committing\""), /* without new_cert_der */
    };
    const char *texts[] = {"",      "not json", "[]",     "null",    half,
                           dup_key, trailing,   bad_utf8, nul_escape};
    size_t n_edited = sizeof(edited) / sizeof(edited[0]);
    size_t n_texts = sizeof(texts) / sizeof(texts[0]);

    for (size_t i = 0; i < n_edited + n_texts; i++) {
        const char *bad = i < n_edited ? edited[i] : texts[i - n_edited];
        write_text(path, bad, strlen(bad));
        int errors = f->errors;
        uk_renewal_rec *back = NULL;
        int rc = uk_journal_get(f->j, r->id, &back);
        if (rc != UK_E_IO)
            print_error("case %zu was read as %s:\n%s\n", i, uk_err_name(rc), bad);
        assert_int_equal(rc, UK_E_IO);
        assert_null(back);
        assert_true(f->errors > errors); /* reported */
        assert_non_null(strstr(f->last_error, ".corrupt"));
        /* Moved aside with its exact bytes, never dropped. */
        assert_false(exists(path));
        size_t len = 0;
        char *kept = read_text(aside, &len);
        assert_non_null(kept);
        assert_int_equal(len, strlen(bad));
        assert_memory_equal(kept, bad, len);
        free(kept);
        assert_int_equal(uk_journal_get(f->j, r->id, &back), UK_E_RENEWAL_NOT_FOUND);
        assert_int_equal(unlink(aside), 0);
    }
    for (size_t i = 0; i < n_edited; i++)
        cJSON_free(edited[i]);

    /* The good text still reads; a second corruption never replaces the first one aside. */
    write_text(path, good, good_len);
    uk_renewal_rec *back = NULL;
    assert_int_equal(uk_journal_get(f->j, r->id, &back), UK_OK);
    uk_renewal_rec_free(back);
    write_text(path, "{", 1);
    assert_int_equal(uk_journal_get(f->j, r->id, &back), UK_E_IO);
    write_text(path, "}", 1);
    uk_renewal_rec_free(create_ok(f, "piv:2", "9a", "82"));
    uk_renewal_rec **recs = NULL;
    size_t n = 0;
    assert_int_equal(uk_journal_list(f->j, false, &recs, &n), UK_OK); /* skips and moves it */
    assert_int_equal(n, 1);
    assert_string_equal(recs[0]->token_id, "piv:2");
    uk_renewal_recs_free(recs, n);
    char *first = read_text(aside, NULL);
    assert_string_equal(first, "{");
    free(first);
    char second[300];
    snprintf(second, sizeof(second), "%s.1", aside);
    char *text2 = read_text(second, NULL);
    assert_string_equal(text2, "}");
    free(text2);

    char **names = NULL;
    assert_int_equal(uk_journal_list_corrupt(f->j, &names, &n), UK_OK);
    assert_int_equal(n, 2);
    char want[64];
    snprintf(want, sizeof(want), "%s.json.corrupt", r->id);
    assert_string_equal(names[0], want);
    snprintf(want, sizeof(want), "%s.json.corrupt.1", r->id);
    assert_string_equal(names[1], want);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(good);
    uk_renewal_rec_free(r);
}

static void test_journal_symlinked_record_is_treated_as_corrupt(void **state)
{
    struct fx *f = *state;
    uk_renewal_rec *r = create_ok(f, "piv:1", "9a", "82");
    char path[256], target[256], aside[256];
    record_path(f, r->id, "", path, sizeof(path));
    record_path(f, r->id, ".corrupt", aside, sizeof(aside));
    snprintf(target, sizeof(target), "%s/elsewhere.json", f->base);
    assert_int_equal(rename(path, target), 0);
    assert_int_equal(symlink(target, path), 0);
    uk_renewal_rec *back = NULL;
    assert_int_equal(uk_journal_get(f->j, r->id, &back), UK_E_IO);
    assert_true(exists(aside));
    assert_true(exists(target));
    uk_renewal_rec_free(r);
}

static void test_journal_record_of_a_newer_ukeyd_is_left_alone(void **state)
{
    struct fx *f = *state;
    uk_renewal_rec *r = create_ok(f, "piv:1", "9a", "82");
    char path[256];
    record_path(f, r->id, "", path, sizeof(path));
    char *good = read_text(path, NULL);
    char *newer = edit_json(good, "version", "2");
    char *with_more = edit_json(newer, "hologram", "true");
    write_text(path, with_more, strlen(with_more));

    uk_renewal_rec *back = NULL;
    assert_int_equal(uk_journal_get(f->j, r->id, &back), UK_E_NOT_SUPPORTED);
    assert_true(exists(path));
    uk_renewal_rec **recs = NULL;
    size_t n = 9;
    assert_int_equal(uk_journal_list(f->j, false, &recs, &n), UK_OK);
    assert_int_equal(n, 0);
    assert_true(exists(path));
    assert_int_equal(count_entries(f->renewals, ""), 1);
    cJSON_free(newer);
    cJSON_free(with_more);
    free(good);
    uk_renewal_rec_free(r);
}

/* ---- directories, modes, owners ------------------------------------------------------------- */

static void test_journal_dirs_are_0700_and_files_0600(void **state)
{
    struct fx *f = *state;
    mode_t old = umask(0); /* the journal must not depend on the umask */
    uk_journal_close(f->j);
    f->j = NULL;
    char fresh[200];
    snprintf(fresh, sizeof(fresh), "%s/x/y/ukeyd", f->base);
    assert_int_equal(uk_journal_open(fresh, &f->j), UK_OK);
    char sub[256];
    assert_int_equal(mode_of(fresh), 0700);
    snprintf(sub, sizeof(sub), "%s/x", f->base);
    assert_int_equal(mode_of(sub), 0700);
    snprintf(sub, sizeof(sub), "%s/renewals", fresh);
    assert_int_equal(mode_of(sub), 0700);
    snprintf(sub, sizeof(sub), "%s/backup", fresh);
    assert_int_equal(mode_of(sub), 0700);

    uk_renewal_rec *r = create_ok(f, "piv:1", "9a", "82");
    snprintf(sub, sizeof(sub), "%s/renewals/%s.json", fresh, r->id);
    assert_int_equal(mode_of(sub), 0600);
    assert_int_equal(uk_renewal_rec_add_step(r, "x", "ok"), UK_OK);
    assert_int_equal(uk_journal_update(f->j, r), UK_OK);
    assert_int_equal(mode_of(sub), 0600);
    char *bpath = NULL;
    assert_int_equal(uk_journal_backup_cert(f->j, "1", "9a", new_der, sizeof(new_der), &bpath),
                     UK_OK);
    assert_int_equal(mode_of(bpath), 0600);
    umask(old);
    free(bpath);
    uk_renewal_rec_free(r);
}

static void expect_refused(struct fx *f, int want)
{
    uk_journal *j = NULL;
    assert_int_equal(uk_journal_open(f->state, &j), want);
    assert_null(j);
}

static void test_journal_refuses_dirs_open_to_others_or_not_ours(void **state)
{
    struct fx *f = *state;
    uk_journal_close(f->j);
    f->j = NULL;

    assert_int_equal(chmod(f->renewals, 0777), 0);
    expect_refused(f, UK_E_CONFIG_INVALID);
    assert_non_null(strstr(f->last_error, "renewals"));
    assert_int_equal(chmod(f->renewals, 0750), 0);
    expect_refused(f, UK_E_CONFIG_INVALID);
    assert_int_equal(chmod(f->renewals, 0700), 0);
    assert_int_equal(chmod(f->backup, 0703), 0);
    expect_refused(f, UK_E_CONFIG_INVALID);
    assert_int_equal(chmod(f->backup, 0700), 0);
    assert_int_equal(chmod(f->state, 0777), 0);
    expect_refused(f, UK_E_CONFIG_INVALID);
    assert_int_equal(chmod(f->state, 0700), 0);

    /* Another user's directory (the test runs as root in CI, so it can hand it over). */
    if (geteuid() == 0) {
        assert_int_equal(chown(f->renewals, 65534, 65534), 0);
        expect_refused(f, UK_E_CONFIG_INVALID);
        assert_non_null(strstr(f->last_error, "belongs to uid 65534"));
        assert_int_equal(chown(f->renewals, 0, 0), 0);
        assert_int_equal(chown(f->state, 65534, 65534), 0);
        expect_refused(f, UK_E_CONFIG_INVALID);
        assert_int_equal(chown(f->state, 0, 0), 0);
    }

    /* A symlink in place of a directory. */
    char moved[200];
    snprintf(moved, sizeof(moved), "%s/real-backup", f->base);
    assert_int_equal(rename(f->backup, moved), 0);
    assert_int_equal(symlink(moved, f->backup), 0);
    expect_refused(f, UK_E_CONFIG_INVALID);
    assert_int_equal(unlink(f->backup), 0);
    assert_int_equal(rename(moved, f->backup), 0);

    /* Put right, the same directories are accepted again. */
    assert_int_equal(uk_journal_open(f->state, &f->j), UK_OK);
}

static void test_journal_refuses_a_relative_state_dir(void **state)
{
    (void)state;
    uk_journal *j = NULL;
    assert_int_equal(uk_journal_open("state/ukeyd", &j), UK_E_INVALID_PARAMS);
    assert_int_equal(uk_journal_open(NULL, &j), UK_E_INVALID_PARAMS);
    assert_null(j);
}

static void test_journal_second_open_is_busy(void **state)
{
    struct fx *f = *state;
    uk_journal *j2 = NULL;
    assert_int_equal(uk_journal_open(f->state, &j2), UK_E_BUSY);
    assert_null(j2);
    uk_journal_close(f->j);
    f->j = NULL;
    assert_int_equal(uk_journal_open(f->state, &j2), UK_OK);
    uk_journal_close(j2);
}

static void test_journal_open_removes_temporary_files_only(void **state)
{
    struct fx *f = *state;
    uk_renewal_rec *r = create_ok(f, "piv:1", "9a", "82");
    char p[300];
    snprintf(p, sizeof(p), "%s/.tmp.%s.json.0011aabbccdd", f->renewals, r->id);
    write_text(p, "{\"half", 6);
    snprintf(p, sizeof(p), "%s/.tmp.1-9a.der.001122334455", f->backup);
    write_text(p, "\x30", 1);
    snprintf(p, sizeof(p), "%s/notes.txt", f->renewals);
    write_text(p, "mine", 4);
    reopen(f);
    assert_int_equal(count_entries(f->renewals, ".tmp."), 0);
    assert_int_equal(count_entries(f->backup, ".tmp."), 0);
    assert_true(exists(p));
    uk_renewal_rec *back = NULL;
    assert_int_equal(uk_journal_get(f->j, r->id, &back), UK_OK);
    assert_rec_equal(back, r);
    uk_renewal_rec_free(back);
    uk_renewal_rec_free(r);
}

/* ---- backups -------------------------------------------------------------------------------- */

static void test_journal_backup_names_and_never_overwrites(void **state)
{
    struct fx *f = *state;
    static const uint8_t der1[] = {0x30, 0x03, 0x02, 0x01, 0x05};
    static const uint8_t der2[] = {0x30, 0x03, 0x02, 0x01, 0x06};
    char sha1[65], sha2[65], want[400];
    sha256_hex(der1, sizeof(der1), sha1);
    sha256_hex(der2, sizeof(der2), sha2);

    char *p1 = NULL;
    assert_int_equal(uk_journal_backup_cert(f->j, "12345678", "9a", der1, sizeof(der1), &p1),
                     UK_OK);
    snprintf(want, sizeof(want), "%s/12345678-9a-" T0_FS "-%.16s.der", f->backup, sha1);
    assert_string_equal(p1, want);
    size_t len = 0;
    char *got = read_text(p1, &len);
    assert_int_equal(len, sizeof(der1));
    assert_memory_equal(got, der1, len);
    free(got);

    /* The same certificate again in the same second: that backup is the backup. */
    char *p1b = NULL;
    assert_int_equal(uk_journal_backup_cert(f->j, "12345678", "9a", der1, sizeof(der1), &p1b),
                     UK_OK);
    assert_string_equal(p1b, p1);
    assert_int_equal(count_entries(f->backup, ""), 1);

    /* A name taken by other bytes is never replaced: the backup gets "-1". */
    snprintf(want, sizeof(want), "%s/12345678-9a-" T0_FS "-%.16s.der", f->backup, sha2);
    write_text(want, "someone else's", 14);
    char *p2 = NULL;
    assert_int_equal(uk_journal_backup_cert(f->j, "12345678", "9a", der2, sizeof(der2), &p2),
                     UK_OK);
    snprintf(want, sizeof(want), "%s/12345678-9a-" T0_FS "-%.16s-1.der", f->backup, sha2);
    assert_string_equal(p2, want);
    snprintf(want, sizeof(want), "%s/12345678-9a-" T0_FS "-%.16s.der", f->backup, sha2);
    got = read_text(want, NULL);
    assert_string_equal(got, "someone else's");
    free(got);
    got = read_text(p2, &len);
    assert_int_equal(len, sizeof(der2));
    assert_memory_equal(got, der2, len);
    free(got);

    /* A second later, another file; the first stays. */
    f->now++;
    char *p3 = NULL;
    assert_int_equal(uk_journal_backup_cert(f->j, "12345678", "9a", der1, sizeof(der1), &p3),
                     UK_OK);
    assert_string_not_equal(p3, p1);
    assert_true(exists(p1));
    assert_int_equal(count_entries(f->backup, ""), 4);
    assert_int_equal(count_entries(f->backup, ".tmp."), 0);
    free(p1);
    free(p1b);
    free(p2);
    free(p3);
}

static void test_journal_backup_escapes_serial_and_slot(void **state)
{
    struct fx *f = *state;
    static const uint8_t der[] = {0x30, 0x00};
    char sha[65], want[400], *p = NULL;
    sha256_hex(der, sizeof(der), sha);
    assert_int_equal(uk_journal_backup_cert(f->j, "AB/CD 1-", "签", der, sizeof(der), &p), UK_OK);
    snprintf(want, sizeof(want), "%s/AB%%2FCD%%201%%2D-%%E7%%AD%%BE-" T0_FS "-%.16s.der", f->backup,
             sha);
    assert_string_equal(p, want);
    free(p);
    p = NULL;
    char long_serial[UK_JOURNAL_MAX_NAME_PART + 2];
    memset(long_serial, '/', sizeof(long_serial) - 1);
    long_serial[sizeof(long_serial) - 1] = '\0';
    assert_int_equal(uk_journal_backup_cert(f->j, long_serial, "9a", der, sizeof(der), &p),
                     UK_E_INVALID_PARAMS);
    long_serial[UK_JOURNAL_MAX_NAME_PART] = '\0'; /* the longest allowed, all escaped */
    char long_slot[UK_JOURNAL_MAX_NAME_PART + 1];
    memset(long_slot, '%', sizeof(long_slot) - 1);
    long_slot[sizeof(long_slot) - 1] = '\0';
    assert_int_equal(uk_journal_backup_cert(f->j, long_serial, long_slot, der, sizeof(der), &p),
                     UK_OK);
    free(p);
    p = NULL;
    assert_int_equal(uk_journal_backup_cert(f->j, "", "9a", der, sizeof(der), &p),
                     UK_E_INVALID_PARAMS);
    assert_int_equal(uk_journal_backup_cert(f->j, "1", "9a", der, 0, &p), UK_E_INVALID_PARAMS);
    assert_null(p);
}

/* ---- crash safety --------------------------------------------------------------------------- */

#define CHILD_CRASHED  42
#define CHILD_FINISHED 43
#define CHILD_FAILED   44

struct crash_at {
    uk__journal_write_step step;
};

static void crash_hook(void *ctx, uk__journal_write_step step, const char *name)
{
    const struct crash_at *c = ctx;
    (void)name;
    if (step == c->step)
        _exit(CHILD_CRASHED); /* no atexit, no flush, no close: as abrupt as a kill */
}

enum crash_op { OP_CREATE, OP_UPDATE, OP_BACKUP };

/* In a child process: open the journal, run op, and "crash" at step. Returns the exit code. */
static int run_child(struct fx *f, enum crash_op op, uk__journal_write_step step,
                     uk_renewal_rec *next)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uk_journal *j = NULL;
        if (uk_journal_open(f->state, &j) != UK_OK)
            _exit(CHILD_FAILED);
        struct crash_at c = {.step = step};
        uk__journal_set_write_hook(j, crash_hook, &c);
        uk__journal_set_clock(j, fixed_clock, f);
        int rc = UK_E_INTERNAL;
        if (op == OP_CREATE) {
            struct input in;
            uk_renewal_rec *out = NULL;
            input_init(&in, "piv:9", "9a", "82");
            rc = uk_journal_create(j, &in.rec, &out);
        } else if (op == OP_UPDATE) {
            rc = uk_journal_update(j, next);
        } else {
            char *p = NULL;
            rc = uk_journal_backup_cert(j, "12345678", "9a", new_der, sizeof(new_der), &p);
        }
        _exit(rc == UK_OK ? CHILD_FINISHED : CHILD_FAILED);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_journal_crash_at_every_write_step_leaves_old_or_new(void **state)
{
    struct fx *f = *state;
    for (int step = UK__JOURNAL_TEMP_PARTIAL; step <= UK__JOURNAL_DIR_SYNCED; step++) {
        bool new_visible = step >= UK__JOURNAL_RENAMED;

        /* create: no record before the rename, the whole record from it on. */
        uk_journal_close(f->j);
        f->j = NULL;
        f->now = T0 + step;
        assert_int_equal(run_child(f, OP_CREATE, (uk__journal_write_step)step, NULL),
                         CHILD_CRASHED);
        reopen(f);
        assert_int_equal(count_entries(f->renewals, ".tmp."), 0);
        uk_renewal_rec **recs = NULL;
        size_t n = 0;
        assert_int_equal(uk_journal_list(f->j, false, &recs, &n), UK_OK);
        assert_int_equal(n, new_visible ? 1 : 0);
        assert_int_equal(count_entries(f->renewals, ""), new_visible ? 1 : 0);
        if (!new_visible)
            continue;
        uk_renewal_rec *old = recs[0];
        free(recs);
        struct input in;
        input_init(&in, "piv:9", "9a", "82");
        in.rec.n_steps = 0;
        memcpy(in.rec.id, old->id, sizeof(in.rec.id));
        snprintf(in.rec.created, sizeof(in.rec.created), "%s", old->created);
        snprintf(in.rec.updated, sizeof(in.rec.updated), "%s", old->created);
        in.rec.revision = 1;
        sha256_hex(in.old_der, sizeof(in.old_der), in.rec.old_cert_sha256);
        assert_rec_equal(old, &in.rec);

        char path[256];
        record_path(f, old->id, "", path, sizeof(path));
        size_t old_len = 0;
        char *old_bytes = read_text(path, &old_len);

        /* update: exactly the old record, or exactly the new one. */
        uk_renewal_rec *next = NULL;
        assert_int_equal(uk_journal_get(f->j, old->id, &next), UK_OK);
        assert_int_equal(uk_renewal_rec_add_step(next, "cert_received", "ok"), UK_OK);
        assert_int_equal(uk_renewal_rec_set1_new_cert(next, new_der, sizeof(new_der)), UK_OK);
        next->state = UK_RENEWAL_COMMITTING;
        snprintf(next->updated, sizeof(next->updated), "2033-05-18T04:33:20Z");
        f->now = T0 + 3600;
        for (int ustep = UK__JOURNAL_TEMP_PARTIAL; ustep <= UK__JOURNAL_DIR_SYNCED; ustep++) {
            uk_journal_close(f->j);
            f->j = NULL;
            assert_int_equal(run_child(f, OP_UPDATE, (uk__journal_write_step)ustep, next),
                             CHILD_CRASHED);
            reopen(f);
            assert_int_equal(count_entries(f->renewals, ".tmp."), 0);
            uk_renewal_rec *seen = NULL;
            assert_int_equal(uk_journal_get(f->j, old->id, &seen), UK_OK);
            next->revision++; /* what the write makes of it */
            assert_rec_equal(seen, ustep >= UK__JOURNAL_RENAMED ? next : old);
            next->revision--;
            uk_renewal_rec_free(seen);
            write_text(path, old_bytes, old_len); /* the old version again, for the next step */
        }
        /* Without a crash the child finishes, and the new record is there. */
        uk_journal_close(f->j);
        f->j = NULL;
        assert_int_equal(run_child(f, OP_UPDATE, (uk__journal_write_step)0, next), CHILD_FINISHED);
        reopen(f);
        uk_renewal_rec *seen = NULL;
        assert_int_equal(uk_journal_get(f->j, old->id, &seen), UK_OK);
        next->revision++;
        assert_rec_equal(seen, next);
        uk_renewal_rec_free(seen);
        assert_int_equal(unlink(path), 0); /* a clean directory for the next step */
        free(old_bytes);
        uk_renewal_rec_free(next);
        uk_renewal_rec_free(old);
    }
}

static void test_journal_crash_during_backup_leaves_none_or_a_whole_one(void **state)
{
    struct fx *f = *state;
    char sha[65];
    sha256_hex(new_der, sizeof(new_der), sha);
    for (int step = UK__JOURNAL_TEMP_PARTIAL; step <= UK__JOURNAL_DIR_SYNCED; step++) {
        uk_journal_close(f->j);
        f->j = NULL;
        f->now = T0 + 100 * step;
        assert_int_equal(run_child(f, OP_BACKUP, (uk__journal_write_step)step, NULL),
                         CHILD_CRASHED);
        reopen(f);
        assert_int_equal(count_entries(f->backup, ".tmp."), 0);
        char stamp[32], name[300];
        time_t t = (time_t)f->now;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
        snprintf(name, sizeof(name), "%s/12345678-9a-%s-%.16s.der", f->backup, stamp, sha);
        if (step >= UK__JOURNAL_RENAMED) {
            size_t len = 0;
            char *got = read_text(name, &len);
            assert_non_null(got);
            assert_int_equal(len, sizeof(new_der));
            assert_memory_equal(got, new_der, len);
            free(got);
            assert_int_equal(unlink(name), 0);
        } else {
            assert_false(exists(name));
        }
        assert_int_equal(count_entries(f->backup, ""), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_state_names_round_trip),
        cmocka_unit_test_setup_teardown(
            test_journal_every_transition_is_checked_and_illegal_ones_leave_the_file, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_journal_finish_appends_a_step_and_is_final, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_record_round_trips_every_field_with_unicode,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_record_without_old_certificate_round_trips,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_record_origin_round_trips_and_never_changes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_reads_a_record_written_before_origin_existed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_journal_written_can_be_aborted_but_not_after_activation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_create_refuses_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_journal_create_refuses_a_second_unfinished_renewal_of_a_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_create_from_many_threads_lets_exactly_one_win,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_update_refuses_changes_to_what_is_fixed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_update_of_a_stale_copy_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_get_and_update_unknown_or_malformed_ids, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_step_log_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_list_all_or_unfinished_oldest_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_corrupt_records_are_moved_aside_and_reported,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_symlinked_record_is_treated_as_corrupt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_record_of_a_newer_ukeyd_is_left_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_dirs_are_0700_and_files_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_refuses_dirs_open_to_others_or_not_ours, setup,
                                        teardown),
        cmocka_unit_test(test_journal_refuses_a_relative_state_dir),
        cmocka_unit_test_setup_teardown(test_journal_second_open_is_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_open_removes_temporary_files_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_backup_names_and_never_overwrites, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_backup_escapes_serial_and_slot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_crash_at_every_write_step_leaves_old_or_new,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_crash_during_backup_leaves_none_or_a_whole_one,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
