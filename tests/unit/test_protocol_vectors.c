/* Replays every protocol/vectors/NNN-name.json through the codec (rules in vectors/README.md). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>

#include "uk_base64.h"
#include "uk_jsonrpc.h"

#ifndef UK_VECTORS_DIR
#error "UK_VECTORS_DIR must name protocol/vectors"
#endif

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* NNN-name.json with name in [a-z0-9-]. */
static bool vector_name(const char *n)
{
    size_t len = strlen(n);
    if (len < 10 || strcmp(n + len - 5, ".json") != 0)
        return false;
    for (int i = 0; i < 3; i++) {
        if (n[i] < '0' || n[i] > '9')
            return false;
    }
    if (n[3] != '-')
        return false;
    for (size_t i = 4; i < len - 5; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

/* Subset match; on a mismatch, fail naming the file and the path. */
static void match(const char *file, const char *path, const cJSON *want, const cJSON *got)
{
    char sub[256];
    if (got == NULL)
        fail_msg("%s: %s is missing", file, path);
    if (cJSON_IsObject(want)) {
        if (!cJSON_IsObject(got))
            fail_msg("%s: %s is not an object", file, path);
        for (const cJSON *w = want->child; w != NULL; w = w->next) {
            snprintf(sub, sizeof(sub), "%s.%s", path, w->string);
            match(file, sub, w, cJSON_GetObjectItemCaseSensitive(got, w->string));
        }
    } else if (cJSON_IsArray(want)) {
        if (!cJSON_IsArray(got) || cJSON_GetArraySize(got) != cJSON_GetArraySize(want))
            fail_msg("%s: %s is not an array of %d", file, path, cJSON_GetArraySize(want));
        for (int i = 0; i < cJSON_GetArraySize(want); i++) {
            snprintf(sub, sizeof(sub), "%s[%d]", path, i);
            match(file, sub, cJSON_GetArrayItem(want, i), cJSON_GetArrayItem(got, i));
        }
    } else if (cJSON_IsNumber(want)) {
        if (!cJSON_IsNumber(got) || got->valuedouble != want->valuedouble)
            fail_msg("%s: %s is not %.17g", file, path, want->valuedouble);
    } else if (cJSON_IsString(want)) {
        if (!cJSON_IsString(got) || strcmp(got->valuestring, want->valuestring) != 0)
            fail_msg("%s: %s is \"%s\", want \"%s\"", file, path,
                     cJSON_IsString(got) ? got->valuestring : "(not a string)", want->valuestring);
    } else if ((want->type & 0xff) != (got->type & 0xff)) {
        fail_msg("%s: %s has the wrong type", file, path);
    }
}

static void replay(const char *file, const char *text, size_t text_len)
{
    cJSON *v = cJSON_ParseWithLength(text, text_len);
    if (v == NULL)
        fail_msg("%s: not JSON", file);
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(v, "description");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(v, "request");
    const cJSON *req64 = cJSON_GetObjectItemCaseSensitive(v, "request_base64");
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(v, "response");
    if (!cJSON_IsString(desc) || desc->valuestring[0] == '\0')
        fail_msg("%s: needs a description", file);
    if ((req == NULL) == (req64 == NULL))
        fail_msg("%s: needs exactly one of request and request_base64", file);
    if (!cJSON_IsObject(want))
        fail_msg("%s: needs a response object", file);

    uint8_t *bytes = NULL;
    size_t len = 0;
    if (req != NULL) {
        assert_true(cJSON_IsString(req));
        len = strlen(req->valuestring);
        bytes = malloc(len > 0 ? len : 1);
        memcpy(bytes, req->valuestring, len);
    } else {
        assert_true(cJSON_IsString(req64));
        if (uk_base64_decode(req64->valuestring, strlen(req64->valuestring), &bytes, &len) != UK_OK)
            fail_msg("%s: request_base64 is not base64", file);
    }

    uk_jsonrpc_msg *msg = NULL;
    cJSON *reply = NULL;
    int rc = uk_jsonrpc_parse((const char *)bytes, len, NULL, &msg, &reply);
    if (rc == UK_OK)
        fail_msg("%s: the codec accepted it", file);
    assert_non_null(reply);

    /* Compare what goes on the wire: print, then read back. */
    char *out = NULL;
    assert_int_equal(uk_jsonrpc_print(reply, &out, NULL), UK_OK);
    cJSON *got = cJSON_Parse(out);
    assert_non_null(got);
    match(file, "response", want, got);

    /* The reason named by the vector is the one returned, with its own code. */
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(want, "error"), "data"),
        "reason");
    if (cJSON_IsString(reason))
        assert_string_equal(reason->valuestring, uk_err_name(rc));

    cJSON_Delete(got);
    free(out);
    cJSON_Delete(reply);
    free(bytes);
    cJSON_Delete(v);
}

static void test_vectors_all_replay_to_their_expected_responses(void **state)
{
    (void)state;
    DIR *d = opendir(UK_VECTORS_DIR);
    assert_non_null(d);
    char *names[1000];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0)
            continue;
        if (!vector_name(e->d_name))
            fail_msg("%s: vector files are named NNN-name.json", e->d_name);
        assert_true(n < sizeof(names) / sizeof(names[0]));
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_str);
    assert_true(n >= 50);

    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strncmp(names[i - 1], names[i], 3) == 0)
            fail_msg("%s and %s share a number", names[i - 1], names[i]);
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", UK_VECTORS_DIR, names[i]);
        size_t len = 0;
        char *text = read_file(path, &len);
        replay(names[i], text, len);
        free(text);
    }
    print_message("%zu vectors replayed\n", n);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_all_replay_to_their_expected_responses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
