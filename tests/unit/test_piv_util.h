/* Shared helpers of the PIV driver tests: a fixture (virtual card + seam +
 * driver state), certificates made with OpenSSL, signature checks. */
#ifndef TEST_PIV_UTIL_H
#define TEST_PIV_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "piv_card_seam.h"
#include "uk_driver.h"
#include "uk_piv.h"
#include "vpiv.h"

typedef struct piv_fx {
    vpiv_card *vc;
    uk_card *card;
    void *st; /* driver state once opened */
    uk_token_identity id;
    uk_driver_options opt;
} piv_fx;

#define PIV_TEST_SERIAL 12345678u

piv_fx *piv_fx_new(vpiv_profile profile, bool ext);
void piv_fx_open(piv_fx *f); /* asserts UK_OK */
void piv_fx_free(piv_fx *f);

/* The demo CA shared by a test program (made once in a temporary dir). */
vpiv_demo_ca *piv_test_ca(void);
void piv_test_ca_cleanup(void);

/* Certificates: every list is freed with piv_certs_free. */
void piv_list(piv_fx *f, uk_token_cert **certs, size_t *n); /* asserts UK_OK */
const uk_token_cert *piv_find(const uk_token_cert *certs, size_t n, const char *key_id);
void piv_certs_free(uk_token_cert *certs, size_t n);

/* The DER certificate inside the object the engine holds for slot. */
size_t piv_card_cert(vpiv_card *vc, uint8_t slot, uint8_t *out, size_t cap);
/* Writes 53-less object contents {70 cert, 71 info, FE} for slot. */
void piv_put_object(vpiv_card *vc, uint8_t slot, const uint8_t *cert, size_t n, uint8_t info);
void piv_put_raw_object(vpiv_card *vc, uint8_t slot, const uint8_t *v, size_t n);
size_t piv_gzip(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/* A certificate for spki (DER), issued by a test key, with an nsComment of
 * comment_len bytes to make it as large as wanted. malloc'ed. */
uint8_t *piv_make_cert(const uint8_t *spki, size_t spki_len, size_t comment_len, size_t *len);

/* Verifies sig over digest with the public key of cert (DER) or spki (DER). */
bool piv_verify(const uint8_t *der, size_t der_len, bool is_spki, uk_sig_scheme scheme,
                uk_hash hash, const uint8_t *digest, size_t dlen, const uint8_t *sig,
                size_t sig_len);
size_t piv_digest(uk_hash hash, const char *msg, uint8_t *out);

/* verify_pin "123456" then sign; asserts both UK_OK and returns sig_len. */
size_t piv_verify_and_sign(piv_fx *f, const char *slot, uk_sig_scheme scheme, uk_hash hash,
                           const uint8_t *digest, size_t dlen, uint8_t *sig, size_t cap);
int piv_verify_pin_str(piv_fx *f, const char *pin, int *retries);

#endif
