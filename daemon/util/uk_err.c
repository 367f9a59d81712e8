#include "uk_err.h"

#include <string.h>
#include <strings.h>

struct row {
    int code;
    int rpc;
    bool retriable;
    const char *name;
    const char *en;
    const char *zh;
};

static const struct row rows[] = {
#define X(name, value, rpc, retriable, en, zh) {(value), (rpc), (retriable) != 0, #name, en, zh},
#include "errors.def"
#undef X
};

#define ROW_COUNT (sizeof(rows) / sizeof(rows[0]))

/* The enum and the table come from the same file; make sure every value is negative. */
#define X(name, value, rpc, retriable, en, zh)                                                     \
    _Static_assert((value) < 0, #name " must be negative");                                        \
    _Static_assert((rpc) <= -32000 && (rpc) >= -32768, #name " needs a JSON-RPC error code");
#include "errors.def"
#undef X

static const struct row *find(int err)
{
    for (size_t i = 0; i < ROW_COUNT; i++) {
        if (rows[i].code == err)
            return &rows[i];
    }
    return NULL;
}

static const struct row *find_or_internal(int err)
{
    const struct row *r = find(err);
    return r != NULL ? r : find(UK_E_INTERNAL);
}

const char *uk_err_name(int err)
{
    if (err == UK_OK)
        return "OK";
    const struct row *r = find(err);
    return r != NULL ? r->name : "UNKNOWN";
}

static bool lang_is_zh(const char *lang)
{
    if (lang == NULL)
        return false;
    return strcasecmp(lang, "zh-CN") == 0 || strcasecmp(lang, "zh_CN") == 0 ||
           strcasecmp(lang, "zh") == 0 || strcasecmp(lang, "zh-Hans") == 0;
}

const char *uk_err_message(int err, const char *lang)
{
    bool zh = lang_is_zh(lang);
    if (err == UK_OK)
        return zh ? "成功。" : "Success.";
    const struct row *r = find_or_internal(err);
    return zh ? r->zh : r->en;
}

int uk_err_rpc_code(int err)
{
    return find_or_internal(err)->rpc;
}

bool uk_err_retriable(int err)
{
    const struct row *r = find(err);
    return r != NULL && r->retriable;
}

bool uk_err_known(int err)
{
    return find(err) != NULL;
}

size_t uk_err_count(void)
{
    return ROW_COUNT;
}

int uk_err_at(size_t i)
{
    return i < ROW_COUNT ? rows[i].code : UK_OK;
}

bool uk_err_from_name(const char *name, int *out)
{
    if (name == NULL)
        return false;
    for (size_t i = 0; i < ROW_COUNT; i++) {
        if (strcmp(rows[i].name, name) == 0) {
            *out = rows[i].code;
            return true;
        }
    }
    return false;
}
