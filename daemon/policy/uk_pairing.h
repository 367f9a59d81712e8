/*
 * uk_pairing.h - the pairing store's file, internal to the policy module (see uk_policy.h,
 * "Pairing store", for the format and the rules).
 *
 * Ownership: uk__pairing_load returns an array the caller frees with uk__pairing_free.
 * Thread: the loop thread (called from uk_policy_new, uk_policy_pair and uk_policy_unpair).
 */
#ifndef UK_PAIRING_H
#define UK_PAIRING_H

#include "uk_policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct uk__paired {
    char *origin;
    int64_t paired_at; /* unix seconds */
} uk__paired;

/* Whether origin (NUL-terminated) may be paired at all: a strictly parsed https origin, or http
 * with host 127.0.0.1, localhost or [::1]. Never chrome-extension. */
bool uk__pairing_origin_ok(const char *origin);

/*
 * Reads dir/UK_POLICY_PAIRING_FILE into *list (*n entries, in file order). A missing, untrusted or
 * unreadable file gives an empty list (logged unless missing); a corrupt one too, after a copy to
 * "<file>.corrupt" (the file itself is left alone). Errors: UK_E_NO_MEMORY only.
 */
__attribute__((warn_unused_result)) int uk__pairing_load(const char *dir, uk__paired **list,
                                                         size_t *n);

/* Replaces dir/UK_POLICY_PAIRING_FILE with list atomically (see uk_policy.h), creating dir 0700
 * when missing. Errors: UK_E_IO (logged), UK_E_NO_MEMORY. */
__attribute__((warn_unused_result)) int uk__pairing_save(const char *dir, const uk__paired *list,
                                                         size_t n);

void uk__pairing_free(uk__paired *list, size_t n);

#endif
