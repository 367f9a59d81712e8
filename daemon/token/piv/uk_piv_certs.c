/* Certificate objects: reading every slot, the container format, gzip. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "uk_crypto.h"
#include "uk_err.h"
#include "uk_limits.h"
#include "uk_log.h"
#include "uk_piv_int.h"

/* Every slot that has a certificate object, in the order users expect:
 * the four standard slots, then the twenty retired key management slots. */
static const uint8_t cert_slots[] = {0x9A, 0x9C, 0x9D, 0x9E, 0x82, 0x83, 0x84, 0x85,
                                     0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x8D,
                                     0x8E, 0x8F, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95};

/* gzip (RFC 1952) into a new buffer of at most UK__PIV_MAX_CERT bytes; the
 * whole input must be one complete gzip member. */
static int gunzip(const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len)
{
    z_stream z;
    uint8_t *buf = malloc(UK__PIV_MAX_CERT);
    int zr, rc = UK_E_CERT_INVALID;
    if (buf == NULL)
        return UK_E_NO_MEMORY;
    if (in_len > UINT32_MAX) {
        free(buf);
        return UK_E_CERT_INVALID;
    }
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        free(buf);
        return UK_E_NO_MEMORY;
    }
    z.next_in = (Bytef *)(uintptr_t)in; /* zlib's API is not const-correct */
    z.avail_in = (uInt)in_len;
    z.next_out = buf;
    z.avail_out = UK__PIV_MAX_CERT;
    zr = inflate(&z, Z_FINISH);
    if (zr == Z_STREAM_END && z.avail_in == 0) {
        *out = buf;
        *out_len = UK__PIV_MAX_CERT - z.avail_out;
        buf = NULL;
        rc = UK_OK;
    } else if (zr == Z_BUF_ERROR && z.avail_out == 0) {
        UK_LOG_WARN("a compressed certificate inflates past %u bytes", UK__PIV_MAX_CERT);
    } else {
        UK_LOG_WARN("a compressed certificate is not valid gzip (zlib %d)", zr);
    }
    inflateEnd(&z);
    free(buf);
    return rc;
}

static uint8_t piv_alg_of(const uk_crypto_key_info *ki)
{
    if (ki->type == UK_CRYPTO_KEY_RSA) {
        switch (ki->bits) {
        case 1024:
            return UK__PIV_ALG_RSA1024;
        case 2048:
            return UK__PIV_ALG_RSA2048;
        case 3072:
            return UK__PIV_ALG_RSA3072;
        case 4096:
            return UK__PIV_ALG_RSA4096;
        default:
            return 0;
        }
    }
    if (ki->type == UK_CRYPTO_KEY_EC)
        return ki->curve == UK_CRYPTO_CURVE_P256   ? UK__PIV_ALG_ECCP256
               : ki->curve == UK_CRYPTO_CURVE_P384 ? UK__PIV_ALG_ECCP384
                                                   : 0;
    return 0;
}

int uk__piv_parse_cert_object(const uint8_t *obj, size_t len, uint8_t **der, size_t *der_len,
                              uint8_t *alg)
{
    const uint8_t *v, *p, *end, *iv, *cert = NULL;
    size_t l, il, cert_len = 0;
    uint32_t tag;
    bool have_cert = false, have_info = false, gz = false;
    int r;

    *der = NULL;
    *der_len = 0;
    *alg = 0;
    if (len == 0)
        return UK_OK;
    if (uk__piv_tlv_only(obj, len, 0x53, &v, &l) != 1) {
        UK_LOG_WARN("a certificate object is not one 53 TLV");
        return UK_E_CERT_INVALID;
    }
    p = v;
    end = v + l;
    while ((r = uk__piv_tlv_next(&p, end, &tag, &iv, &il)) == 1) {
        if (tag == 0x70) {
            if (have_cert)
                return UK_E_CERT_INVALID;
            have_cert = true;
            cert = iv;
            cert_len = il;
        } else if (tag == 0x71) {
            if (have_info || il > 1)
                return UK_E_CERT_INVALID;
            have_info = true;
            gz = il == 1 && (iv[0] & 0x01);
        }
        /* 72 (MSCUID), FE (error detection code) and others: ignored. */
    }
    if (r < 0) {
        UK_LOG_WARN("a certificate object has a malformed TLV");
        return UK_E_CERT_INVALID;
    }
    if (!have_cert || cert_len == 0)
        return UK_OK; /* an empty container: no certificate here */

    uint8_t *out = NULL;
    size_t out_len = 0;
    if (gz) {
        int rc = gunzip(cert, cert_len, &out, &out_len);
        if (rc != UK_OK)
            return rc;
    } else {
        out = malloc(cert_len);
        if (out == NULL)
            return UK_E_NO_MEMORY;
        memcpy(out, cert, cert_len);
        out_len = cert_len;
    }
    uk_crypto_key_info ki;
    int rc = uk_crypto_cert_key_info(out, out_len, &ki);
    if (rc != UK_OK) {
        UK_LOG_WARN("a certificate object holds %zu bytes that are not one X.509 certificate",
                    out_len);
        free(out);
        return UK_E_CERT_INVALID;
    }
    *alg = piv_alg_of(&ki);
    *der = out;
    *der_len = out_len;
    return UK_OK;
}

/* Status words that mean "no such object": no entry, not an error. */
static bool sw_absent(uint16_t sw)
{
    return sw == 0x6A82 || sw == 0x6A88 || sw == 0x6A80 || sw == 0x6A86;
}

static void certs_free(uk_token_cert *certs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(certs[i].der);
    free(certs);
}

int uk__piv_list_certs(void *state, uk_card *card, uk_token_cert **certs, size_t *n)
{
    uk__piv_state *st = state;
    const size_t nslots = sizeof(cert_slots);
    const size_t cap = UK__PIV_MAX_OBJECT + 16; /* the value and its 53 header */
    uk_token_cert *list = calloc(nslots, sizeof(*list));
    uint8_t *obj = malloc(cap);
    size_t count = 0;
    int rc;

    *certs = NULL;
    *n = 0;
    st->io.card = card;
    if (list == NULL || obj == NULL) {
        rc = UK_E_NO_MEMORY;
        goto out;
    }
    /* Another program may have selected another application since our last
     * operation (shared mode): select again. */
    rc = uk__piv_select(&st->io);
    if (rc != UK_OK)
        goto out;
    for (size_t i = 0; i < nslots && count < UK_LIMIT_CERTS_PER_TOKEN; i++) {
        uint8_t slot = cert_slots[i];
        size_t len = 0;
        uint16_t sw = 0;
        uk_token_cert *c = &list[count];
        rc = uk__piv_get_data(&st->io, uk__piv_slot_object(slot), obj, cap, &len, &sw);
        if (rc == UK_E_LIMIT_EXCEEDED) {
            UK_LOG_WARN("the certificate object of PIV slot %02x is too large", slot);
            uk__piv_slot_name(slot, c->key_id);
            c->error = UK_E_CERT_INVALID;
            count++;
            continue;
        }
        if (rc != UK_OK)
            goto out; /* removed, reset, no service...: the whole list fails */
        if (sw != 0x9000) {
            int err = uk_piv_sw_to_err(sw, NULL);
            if (sw_absent(sw))
                continue;
            uk__piv_slot_name(slot, c->key_id);
            c->error = err;
            count++;
            continue;
        }
        uint8_t alg = 0;
        rc = uk__piv_parse_cert_object(obj, len, &c->der, &c->der_len, &alg);
        if (rc == UK_E_NO_MEMORY)
            goto out;
        if (rc == UK_OK && c->der == NULL)
            continue; /* empty container */
        uk__piv_slot_name(slot, c->key_id);
        c->error = rc;
        if (rc == UK_OK && alg != 0)
            st->key_alg[slot] = alg;
        else if (rc != UK_OK)
            UK_LOG_WARN("PIV slot %02x: the certificate cannot be read (%s)", slot,
                        uk_err_name(rc));
        count++;
    }
    rc = UK_OK;
    *certs = list;
    *n = count;
    list = NULL;
out:
    if (list != NULL)
        certs_free(list, count);
    free(obj);
    return rc;
}
