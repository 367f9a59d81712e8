/*
 * uk_x509_chain.c - does an issued certificate chain up (uk_x509_verify_chain): OpenSSL's
 * X509_verify_cert over the given chain and, when configured, a CA bundle.
 */
#include "uk_x509.h"
#include "uk_x509_internal.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "uk_err.h"
#include "uk_log.h"

/* A strictly parsed DER certificate as an OpenSSL X509 (*out, caller frees). */
static int to_x509(const uint8_t *der, size_t len, X509 **out)
{
    uk_cert_info *c = NULL;
    int rc = uk_x509_parse(der, len, &c);
    uk_cert_info_free(c);
    if (rc != UK_OK)
        return rc;
    const unsigned char *p = der;
    *out = d2i_X509(NULL, &p, (long)len);
    if (*out == NULL)
        return UK__X509_FAIL(UK_E_CERT_INVALID, "d2i_X509");
    /* An SM2 signature over it verifies with GM/T 0009's ID, as its issuer made it. */
    rc = uk__x509_set_sm2_id(*out);
    if (rc != UK_OK) {
        X509_free(*out);
        *out = NULL;
    }
    return rc;
}

int uk_x509_verify_chain(const uint8_t *der, size_t len, const uint8_t *const *chain,
                         const size_t *chain_len, size_t n_chain, const char *ca_bundle, time_t at)
{
    if (der == NULL || (n_chain > 0 && (chain == NULL || chain_len == NULL)))
        return UK_E_INVALID_PARAMS;
    if (ca_bundle == NULL && n_chain == 0)
        return UK_OK; /* nothing to check against */
    X509 *leaf = NULL;
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc = UK_E_NO_MEMORY;
    if (untrusted == NULL || store == NULL || ctx == NULL)
        goto out;
    rc = to_x509(der, len, &leaf);
    if (rc != UK_OK)
        goto out;
    for (size_t i = 0; i < n_chain; i++) {
        X509 *x = NULL;
        rc = to_x509(chain[i], chain_len[i], &x);
        if (rc != UK_OK)
            goto out;
        /* Without a bundle the chain's last certificate is the anchor (a partial chain: it
         * need not be self-signed); with one, the whole chain is only a path to the bundle. */
        bool anchor = ca_bundle == NULL && i == n_chain - 1;
        int ok = anchor ? X509_STORE_add_cert(store, x) : sk_X509_push(untrusted, x) > 0;
        if (anchor)
            X509_free(x);
        if (!ok) {
            if (!anchor)
                X509_free(x);
            rc = UK__X509_FAIL(UK_E_NO_MEMORY, "chain");
            goto out;
        }
    }
    if (ca_bundle != NULL) {
        if (X509_STORE_load_file(store, ca_bundle) != 1) {
            UK_LOG_ERR("renewal_ca_bundle %s: cannot be read as PEM certificates", ca_bundle);
            rc = UK__X509_FAIL(UK_E_CONFIG_INVALID, "X509_STORE_load_file");
            goto out;
        }
    } else {
        X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
    }
    if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
        rc = UK__X509_FAIL(UK_E_NO_MEMORY, "X509_STORE_CTX_init");
        goto out;
    }
    X509_STORE_CTX_set_time(ctx, 0, at);
    int v = X509_verify_cert(ctx);
    if (v == 1) {
        rc = UK_OK;
    } else {
        int e = X509_STORE_CTX_get_error(ctx);
        UK_LOG_NOTICE("certificate chain does not verify: %s (depth %d)",
                      X509_verify_cert_error_string(e), X509_STORE_CTX_get_error_depth(ctx));
        ERR_clear_error();
        rc = e == X509_V_ERR_OUT_OF_MEM ? UK_E_NO_MEMORY : UK_E_CHAIN_INVALID;
    }
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    sk_X509_pop_free(untrusted, X509_free);
    X509_free(leaf);
    return rc;
}
