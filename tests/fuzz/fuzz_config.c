/*
 * fuzz_config.c - libFuzzer target for the configuration file (daemon/config/uk_config.h) and
 * the policy built from it (daemon/policy/uk_policy.h).
 *
 * The input is the file's text. When it parses, the parsed values must respect the documented
 * bounds, and uk_policy_new runs on it (it re-parses every origin strictly); when the policy is
 * built, a reload with the same config must succeed and change nothing that can be counted.
 * Corpus: tests/fuzz/corpus/config/.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "uk_config.h"
#include "uk_err.h"
#include "uk_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uk_config *cfg = NULL;
    uk_policy *policy = NULL;

    uk_fuzz_quiet();
    /* Paths are resolved against HOME; keep them away from the real one. */
    setenv("HOME", "/nonexistent/fuzz-home", 1);
    unsetenv("XDG_STATE_HOME");
    unsetenv("XDG_RUNTIME_DIR");
    if (uk_config_parse((const char *)data, size, "fuzz", &cfg) != UK_OK) {
        if (cfg != NULL)
            abort();
        return 0;
    }
    if (cfg == NULL || cfg->n_wss_ports > UK_CONFIG_MAX_PORTS ||
        cfg->piv_mgm_key_len > sizeof(cfg->piv_mgm_key) ||
        (cfg->n_origins > 0 && cfg->origins == NULL) ||
        (cfg->n_extension_ids > 0 && cfg->extension_ids == NULL))
        abort();
    for (size_t i = 0; i < cfg->n_origins; i++)
        if (cfg->origins[i] == NULL)
            abort();
    for (size_t i = 0; i < cfg->n_extension_ids; i++)
        if (cfg->extension_ids[i] == NULL)
            abort();
    if (uk_policy_new(cfg, &policy) == UK_OK) {
        size_t n = uk_policy_origin_count(policy);
        if (n > cfg->n_origins)
            abort();
        for (size_t i = 0; i < cfg->n_origins; i++)
            if (!uk_policy_origin_allowed(policy, cfg->origins[i], strlen(cfg->origins[i]), NULL))
                abort(); /* every accepted entry is allowed */
        if (uk_policy_reload(policy, cfg) != UK_OK || uk_policy_origin_count(policy) != n)
            abort();
        uk_policy_free(policy);
    }
    uk_config_free(cfg);
    return 0;
}
