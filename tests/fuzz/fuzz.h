/*
 * fuzz.h - what every fuzz target in tests/fuzz/ shares.
 *
 * Each target defines LLVMFuzzerTestOneInput. With UK_FUZZ=ON it links with
 * -fsanitize=fuzzer (libFuzzer's main); otherwise with replay_main.c, which
 * runs it over every file of the committed corpus (a ctest test, label
 * "fuzz"). A target returns 0 for every input; a broken invariant is abort().
 */
#ifndef UK_FUZZ_H
#define UK_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Silence ukeyd's logger (a sink that drops every line): the inputs are
 * malformed on purpose and would log on every run. Idempotent. */
void uk_fuzz_quiet(void);

#endif
