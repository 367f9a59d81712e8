/* PIN operations of the token layer (uk_token.h): pin.status, pin.verify, pin.change, and
 * decryption (which verifies the PIN first), run through uk__tokens_run so that card I/O stays on
 * the reader's worker, each in one transaction. */
#include "uk_err.h"
#include "uk_limits.h"
#include "uk_token.h"
#include "uk_token_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pin_op {
    uk_tokens *t;
    char token[96];
    uk_secret *old_pin; /* change only; freed on the worker right after use, else at done */
    uk_secret *new_pin;
    int retries; /* learnt on the worker; -1 nothing */
    uk_tokens_pin_fn cb;
    void *arg;
} pin_op;

static void pin_op_free(pin_op *p)
{
    uk_secret_free(p->old_pin);
    uk_secret_free(p->new_pin);
    free(p);
}

static void pin_op_done(void *arg, int err)
{
    pin_op *p = arg;
    if (err == UK_E_PIN_LOCKED)
        p->retries = 0;
    uk__tokens_note_pin(p->t, p->token, p->retries);
    int retries = p->retries;
    if (err != UK_OK && err != UK_E_PIN_INCORRECT && err != UK_E_PIN_LOCKED)
        retries = -1;
    uk_tokens_pin_fn cb = p->cb;
    void *cb_arg = p->arg;
    pin_op_free(p);
    cb(cb_arg, err, retries);
}

static int status_op(void *arg, const uk_driver *drv, void *state, uk_card *card)
{
    pin_op *p = arg;
    if (drv->pin_status == NULL)
        return UK_E_NOT_SUPPORTED;
    return drv->pin_status(state, card, &p->retries);
}

static int change_op(void *arg, const uk_driver *drv, void *state, uk_card *card)
{
    pin_op *p = arg;
    int rc = UK_E_NOT_SUPPORTED;
    if (drv->change_pin != NULL)
        rc = drv->change_pin(state, card, p->old_pin, p->new_pin, &p->retries);
    /* Gone from memory as soon as the card has them, whatever it said. */
    uk_secret_free(p->old_pin);
    uk_secret_free(p->new_pin);
    p->old_pin = p->new_pin = NULL;
    if (rc == UK_OK) {
        /* The right old PIN restored the counter: ask the card for it (one APDU). A card that
         * now counts the PIN as verified is told to forget it, as after a signature. */
        p->retries = -1;
        if (drv->pin_status != NULL && drv->pin_status(state, card, &p->retries) != UK_OK)
            p->retries = -1;
        if (drv->logout != NULL)
            drv->logout(state, card);
    }
    return rc;
}

static int verify_op(void *arg, const uk_driver *drv, void *state, uk_card *card)
{
    pin_op *p = arg;
    int rc = drv->verify_pin(state, card, p->old_pin, &p->retries);
    uk_secret_free(p->old_pin);
    p->old_pin = NULL;
    if (rc == UK_OK) {
        /* As after pin.change: the right PIN restored the counter; read it, then have the card
         * forget the PIN, so that nothing else on this card can use the key after us. */
        p->retries = -1;
        if (drv->pin_status != NULL && drv->pin_status(state, card, &p->retries) != UK_OK)
            p->retries = -1;
    }
    if (drv->logout != NULL)
        drv->logout(state, card);
    return rc;
}

static int submit(uk_tokens *t, const char *token_id, uk__token_op_fn fn, pin_op *p)
{
    p->t = t;
    p->retries = -1;
    snprintf(p->token, sizeof(p->token), "%s", token_id ? token_id : "");
    return uk__tokens_run(t, token_id, 0, fn, pin_op_done, p);
}

int uk_tokens_pin_status(uk_tokens *t, const char *token_id, uk_tokens_pin_fn cb, void *arg)
{
    if (cb == NULL)
        return UK_E_INTERNAL;
    pin_op *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return UK_E_NO_MEMORY;
    p->cb = cb;
    p->arg = arg;
    int rc = submit(t, token_id, status_op, p);
    if (rc != UK_OK)
        pin_op_free(p);
    return rc;
}

int uk_tokens_change_pin(uk_tokens *t, const char *token_id, uk_secret *old_pin, uk_secret *new_pin,
                         uk_tokens_pin_fn cb, void *arg)
{
    int rc = UK_E_NO_MEMORY;
    pin_op *p = NULL;
    if (cb == NULL) {
        rc = UK_E_INTERNAL;
        goto fail;
    }
    if (old_pin == NULL || new_pin == NULL) {
        rc = UK_E_PIN_REQUIRED;
        goto fail;
    }
    if (uk_secret_get0_len(old_pin) > UK_LIMIT_PIN_LENGTH ||
        uk_secret_get0_len(new_pin) > UK_LIMIT_PIN_LENGTH) {
        rc = UK_E_PIN_INVALID;
        goto fail;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL)
        goto fail;
    p->cb = cb;
    p->arg = arg;
    p->old_pin = old_pin;
    p->new_pin = new_pin;
    rc = submit(t, token_id, change_op, p);
    if (rc != UK_OK)
        pin_op_free(p); /* frees both PINs */
    return rc;
fail:
    uk_secret_free(old_pin); /* consumed in every case */
    uk_secret_free(new_pin);
    return rc;
}

int uk_tokens_verify_pin(uk_tokens *t, const char *token_id, uk_secret *pin, uk_tokens_pin_fn cb,
                         void *arg)
{
    int rc = UK_E_NO_MEMORY;
    pin_op *p = NULL;
    if (cb == NULL) {
        rc = UK_E_INTERNAL;
    } else if (pin == NULL) {
        rc = UK_E_PIN_REQUIRED;
    } else if (uk_secret_get0_len(pin) > UK_LIMIT_PIN_LENGTH) {
        rc = UK_E_PIN_INVALID;
    } else if ((p = calloc(1, sizeof(*p))) != NULL) {
        p->cb = cb;
        p->arg = arg;
        p->old_pin = pin;
        rc = submit(t, token_id, verify_op, p);
        if (rc != UK_OK)
            pin_op_free(p); /* frees the PIN */
        return rc;
    }
    uk_secret_free(pin); /* consumed in every case */
    return rc;
}

/* ---- decryption ---- */

/* Largest input and result of a private-key step (an RSA-4096 ciphertext). */
#define DECRYPT_MAX 512u

typedef struct decrypt_op {
    uk_tokens *t;
    char token[96];
    char key_id[UK_KEY_ID_MAX];
    bool envelope; /* open_envelope with env, else decrypt with kind */
    uk_decrypt_kind kind;
    uk_envelope_req env; /* env.in is in */
    uint8_t *in;
    size_t in_len;
    uk_secret *pin; /* freed on the worker right after VERIFY, else at done */
    int retries;
    uint8_t *out; /* a secret: wiped before free */
    size_t out_cap, out_len;
    uk_tokens_decrypt_fn cb;
    void *arg;
} decrypt_op;

static void decrypt_op_free(decrypt_op *p)
{
    if (p == NULL)
        return;
    uk_secret_free(p->pin);
    if (p->out != NULL)
        uk_wipe(p->out, p->out_cap);
    free(p->out);
    free(p->in);
    free(p);
}

static int decrypt_run(void *arg, const uk_driver *drv, void *state, uk_card *card)
{
    decrypt_op *p = arg;
    if (drv->verify_pin == NULL ||
        (p->envelope ? drv->open_envelope == NULL : drv->decrypt == NULL))
        return UK_E_NOT_SUPPORTED;
    /* The key of the certificate the caller found: after a renewal on a card that cannot move
     * keys, a role's certificate belongs to the key in the staging slot. */
    int rc = uk__tokens_map_role(drv, state, card, p->key_id);
    /* A request that cannot work must not cost a PIN try. */
    if (rc == UK_OK && p->envelope && drv->check_envelope != NULL)
        rc = drv->check_envelope(state, card, p->key_id);
    if (rc == UK_OK)
        rc = drv->verify_pin(state, card, p->pin, &p->retries);
    uk_secret_free(p->pin);
    p->pin = NULL;
    if (rc != UK_OK)
        return rc;
    rc = p->envelope
             ? drv->open_envelope(state, card, p->key_id, &p->env, p->out, p->out_cap, &p->out_len)
             : drv->decrypt(state, card, p->key_id, p->kind, p->in, p->in_len, p->out, p->out_cap,
                            &p->out_len);
    if (drv->logout != NULL)
        drv->logout(state, card);
    /* The right PIN restored the counter: read it (one APDU, spends nothing). */
    p->retries = -1;
    if (drv->pin_status != NULL && drv->pin_status(state, card, &p->retries) != UK_OK)
        p->retries = -1;
    return rc;
}

static void decrypt_done(void *arg, int err)
{
    decrypt_op *p = arg;
    if (err == UK_E_PIN_LOCKED)
        p->retries = 0;
    uk__tokens_note_pin(p->t, p->token, p->retries);
    int retries = err == UK_E_PIN_INCORRECT || err == UK_E_PIN_LOCKED ? p->retries : -1;
    if (err == UK_OK)
        p->cb(p->arg, UK_OK, -1, p->out, p->out_len);
    else
        p->cb(p->arg, err, retries, NULL, 0);
    decrypt_op_free(p);
}

/* The checks and the copies both decryptions share; the PIN is consumed in every case. */
static int decrypt_start(uk_tokens *t, const char *token_id, const char *key_id, const uint8_t *in,
                         size_t in_len, size_t in_max, size_t out_cap, uk_secret *pin,
                         uk_tokens_decrypt_fn cb, void *arg, decrypt_op **out)
{
    int rc = UK_E_NO_MEMORY;
    decrypt_op *p = NULL;
    if (cb == NULL) {
        rc = UK_E_INTERNAL;
        goto fail;
    }
    if (key_id == NULL || key_id[0] == '\0' || strlen(key_id) >= UK_KEY_ID_MAX || in == NULL ||
        in_len == 0 || in_len > in_max) {
        rc = UK_E_INVALID_PARAMS;
        goto fail;
    }
    if (pin == NULL) {
        rc = UK_E_PIN_REQUIRED;
        goto fail;
    }
    if (uk_secret_get0_len(pin) > UK_LIMIT_PIN_LENGTH) {
        rc = UK_E_PIN_INVALID;
        goto fail;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL || (p->in = malloc(in_len)) == NULL ||
        (p->out = malloc(out_cap)) == NULL)
        goto fail;
    p->t = t;
    p->retries = -1;
    snprintf(p->token, sizeof(p->token), "%s", token_id ? token_id : "");
    snprintf(p->key_id, sizeof(p->key_id), "%s", key_id);
    memcpy(p->in, in, in_len);
    p->in_len = in_len;
    p->out_cap = out_cap;
    p->pin = pin;
    p->cb = cb;
    p->arg = arg;
    *out = p;
    return UK_OK;
fail:
    if (p != NULL)
        p->pin = NULL;
    decrypt_op_free(p);
    uk_secret_free(pin);
    return rc;
}

int uk_tokens_decrypt(uk_tokens *t, const char *token_id, const char *key_id, uk_decrypt_kind kind,
                      const uint8_t *in, size_t in_len, uk_secret *pin, uk_tokens_decrypt_fn cb,
                      void *arg)
{
    decrypt_op *p = NULL;
    int rc =
        decrypt_start(t, token_id, key_id, in, in_len, DECRYPT_MAX, DECRYPT_MAX, pin, cb, arg, &p);
    if (rc != UK_OK)
        return rc;
    p->kind = kind;
    rc = uk__tokens_run(t, token_id, 0, decrypt_run, decrypt_done, p);
    if (rc != UK_OK)
        decrypt_op_free(p); /* frees the PIN */
    return rc;
}

int uk_tokens_open_envelope(uk_tokens *t, const char *token_id, const char *key_id,
                            const uk_envelope_req *req, uk_secret *pin, uk_tokens_decrypt_fn cb,
                            void *arg)
{
    if (req == NULL || req->key.c2_len == 0 || req->key.c2_len > sizeof(req->key.c2) ||
        req->in_len % 16 != 0) {
        uk_secret_free(pin);
        return UK_E_INVALID_PARAMS;
    }
    decrypt_op *p = NULL;
    int rc = decrypt_start(t, token_id, key_id, req->in, req->in_len, UK_TOKENS_ENVELOPE_MAX,
                           req->in_len, pin, cb, arg, &p);
    if (rc != UK_OK)
        return rc;
    p->envelope = true;
    p->env = *req;
    p->env.in = p->in;
    rc = uk__tokens_run(t, token_id, 0, decrypt_run, decrypt_done, p);
    if (rc != UK_OK)
        decrypt_op_free(p); /* frees the PIN */
    return rc;
}
