/*
 * uk_limits.h - every limit ukeyd enforces, in one place.
 *
 * Exceeding a limit is an error (LIMIT_EXCEEDED, RATE_LIMITED) or a close with a policy code,
 * never a silent truncation. Limits marked "config" are defaults that the configuration may lower
 * or raise; the others are fixed by a format or by a peer.
 *
 * Header only; no functions. Values are plain integer constants usable in #if.
 */
#ifndef UK_LIMITS_H
#define UK_LIMITS_H

/*
 * Largest JSON-RPC message accepted from a client, in bytes of UTF-8, on every endpoint (one
 * WebSocket message, one Unix-socket frame, one native-messaging frame). 64 KiB holds a
 * certificate chain or 48 KiB of data to sign in base64. Config.
 */
#define UK_LIMIT_MESSAGE (64u * 1024u)

/*
 * Deepest JSON nesting accepted: the count of open arrays and objects at the deepest point, the
 * top-level object counting 1. Checked before cJSON sees the text (its own limit is 1000). Config.
 */
#define UK_LIMIT_JSON_DEPTH 32u

/* Requests of one connection that may be in progress (received, not yet answered). Config. */
#define UK_LIMIT_PENDING_PER_CONNECTION 16u

/* Client connections open at once, over all endpoints together. Config. */
#define UK_LIMIT_CONNECTIONS 64u

/* Requests per second that one origin may send, over all its connections. Config. */
#define UK_LIMIT_REQUESTS_PER_SECOND_PER_ORIGIN 50u

/*
 * Largest native-messaging frame read from the browser (4-byte length + JSON). Larger than
 * UK_LIMIT_MESSAGE on purpose: a frame up to this size is read whole and answered with
 * LIMIT_EXCEEDED carrying the request id; a larger length prefix closes the connection, since
 * reading it would cost the memory the limit is there to protect. Config.
 */
#define UK_LIMIT_NM_FRAME_IN (1024u * 1024u)

/*
 * Largest native-messaging frame written to the browser, in bytes of JSON. Chrome drops the
 * connection above 1 MiB (1048576) host -> browser; we stay below both 1 MB readings. Fixed.
 */
#define UK_LIMIT_NM_FRAME_OUT 1000000u

/* Certificates read from one token; more are ignored with a warning in the log. Fixed. */
#define UK_LIMIT_CERTS_PER_TOKEN 32u

/* PIN verifications per token per minute (wrong or right), against guessing. Config. */
#define UK_LIMIT_PIN_ATTEMPTS_PER_MINUTE 5u

/* Longest PIN accepted, in bytes (PIV allows 8, SKF 16, PKCS#11 modules vary). Fixed. */
#define UK_LIMIT_PIN_LENGTH 64u

/* PKCS#11 modules in the configuration (pkcs11_modules): each gets a scanner thread. */
#define UK_LIMIT_PKCS11_MODULES 8u
/* SKF modules in the configuration (skf_modules): each gets a scanner thread. */
#define UK_LIMIT_SKF_MODULES 8u
/* Longest ATR, in bytes (ISO/IEC 7816-3): the pkcs11_modules "atr" hint and its mask. Fixed. */
#define UK_LIMIT_ATR_BYTES 33u
/* Longest PKCS#11 token label, in bytes (CK_TOKEN_INFO.label): the "token_label" hint. Fixed. */
#define UK_LIMIT_TOKEN_LABEL_BYTES 32u

/* Longest JSON-RPC method name, in bytes. Fixed. */
#define UK_LIMIT_METHOD_LENGTH 64u

/* Longest JSON-RPC id string, in bytes. Numeric ids are integers within +-(2^53 - 1). Fixed. */
#define UK_LIMIT_ID_LENGTH 128u

/*
 * Jobs waiting in one worker queue (not yet started). UK_LIMIT_CONNECTIONS *
 * UK_LIMIT_PENDING_PER_CONNECTION, so the queue cannot fill while every client keeps its limit.
 */
#define UK_LIMIT_WORKER_QUEUE (UK_LIMIT_CONNECTIONS * UK_LIMIT_PENDING_PER_CONNECTION)

/* Longest log line in bytes, including the priority prefix; longer lines end in "...". Fixed. */
#define UK_LIMIT_LOG_LINE 2048u

#endif
