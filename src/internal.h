/* SPDX-License-Identifier: MIT
 *
 * Helpers shared by the library's source files: the always-on assert,
 * error reporting and coalition bit sets. Not part of the public API.
 */
#ifndef PROMPTSHAP_INTERNAL_H
#define PROMPTSHAP_INTERNAL_H

#include "promptshap.h"

#include <stdarg.h>
#include <stdlib.h>

/* Guards internal invariants in every build type; never used on user input. */
#define PS_ASSERT(cond)                                                         \
    do {                                                                        \
        if (!(cond)) {                                                          \
            ps_assert_fail(__FILE__, __LINE__, #cond);                          \
        }                                                                       \
    } while (0)

void ps_assert_fail(const char * file, int line, const char * expr);

/* Sets err (when not NULL) and returns status, so callers can write
 * `return ps_fail(err, STATUS, "...", ...);`. */
enum promptshap_status ps_fail(promptshap_error * err, enum promptshap_status status,
                               const char * fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Clears err to PROMPTSHAP_OK with an empty message. */
void ps_ok(promptshap_error * err);

static inline int ps_mask_has(const uint64_t * members, int i) {
    return (int)((members[i / 64] >> (i % 64)) & 1u);
}

static inline void ps_mask_set(uint64_t * members, int i) {
    members[i / 64] |= (uint64_t)1 << (i % 64);
}

static inline void ps_mask_clear(uint64_t * members, int i) {
    members[i / 64] &= ~((uint64_t)1 << (i % 64));
}

/* A growable NUL-terminated byte buffer; zero-initialize, free data. */
typedef struct {
    char * data;
    size_t n;
    size_t cap;
} ps_text;

/* Appends s[0, n); false when out of memory (the text is unchanged). */
bool ps_text_add(ps_text * t, const char * s, size_t n);

/* Seconds on a monotonic clock. */
double ps_now(void);

/* splitmix64: a small, well-mixed generator for reproducible sampling. */
static inline uint64_t ps_rng_next(uint64_t * state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform integer in [0, n) without modulo bias. */
uint64_t ps_rng_below(uint64_t * state, uint64_t n);

#endif
