/*
 * fuzz_x509.c - libFuzzer target for the x509 module: uk_x509_parse on arbitrary bytes and, for
 * what parses, the status at the validity boundaries, SPKI self-match and the invariants the
 * header promises (strings non-NULL and NUL-terminated, DER kept as given, fingerprint length).
 * Seed corpus: tests/fuzz/corpus/x509/ (real certificates: RSA, EC, SM2 with Chinese names).
 *
 * Built by tests/fuzz/CMakeLists.txt: a libFuzzer binary in the preset "fuzz", a replayer of the
 * corpus (ctest, label "fuzz") elsewhere. Run: build/fuzz/tests/fuzz/fuzz_x509 -max_len=4096
 * tests/fuzz/corpus/x509/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "uk_err.h"
#include "uk_x509.h"

static void check_name(const uk_x509_name *n)
{
    if (n->rfc4514 == NULL || (n->n_parts > 0 && n->parts == NULL))
        abort();
    for (size_t i = 0; i < n->n_parts; i++) {
        if (n->parts[i].type == NULL || n->parts[i].value == NULL ||
            (i > 0 && n->parts[i].rdn < n->parts[i - 1].rdn))
            abort();
    }
}

static void check_status(const uk_cert_info *c, time_t now)
{
    uk_cert_status st;
    if (uk_x509_status(c, now, UK_X509_EXPIRING_DAYS_DEFAULT, &st) != UK_OK)
        abort();
    if (uk_cert_status_name(st.status)[0] == 'u') /* "unknown" */
        abort();
    if ((st.status == UK_CERT_EXPIRED) != (now > c->not_after && now >= c->not_before))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uk_cert_info *c = NULL;
    uk_fuzz_quiet();
    if (uk_x509_parse(data, size, &c) != UK_OK)
        return 0;
    if (c->der_len != size || memcmp(c->der, data, size) != 0 ||
        strlen(c->fingerprint_sha256) != UK_X509_FINGERPRINT_LEN - 1 || c->serial == NULL ||
        c->key_alg == NULL || c->curve == NULL || c->sig_alg == NULL ||
        strlen(c->not_before_iso) != UK_X509_ISO_TIME_LEN - 1 ||
        strlen(c->not_after_iso) != UK_X509_ISO_TIME_LEN - 1)
        abort();
    check_name(&c->subject);
    check_name(&c->issuer);
    for (size_t i = 0; i < c->n_ext_key_usage; i++)
        if (c->ext_key_usage[i] == NULL)
            abort();

    check_status(c, c->not_before - 1);
    check_status(c, c->not_before);
    check_status(c, c->not_after);
    check_status(c, c->not_after + 1);

    /* The certificate's own key always matches itself. */
    if (uk_x509_spki_match(c, c->spki, c->spki_len) != UK_OK)
        abort();
    /* A signature of garbage never verifies. */
    static const uint8_t junk[72] = {0x30, 0x46, 0x02, 0x21, 0x00};
    if (uk_x509_verify_signature(c, data, size, junk, sizeof(junk), UK_X509_SIG_ECDSA_SHA256) ==
        UK_OK)
        abort();
    uk_cert_info_free(c);
    return 0;
}
