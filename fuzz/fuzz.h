/* SPDX-License-Identifier: MIT
 *
 * Helpers shared by the libFuzzer harnesses. A reader turns the fuzz bytes
 * into sizes, choices and doubles, and gives zeros once the bytes run out.
 * FUZZ_ASSERT aborts, so libFuzzer records the input. In-memory files serve
 * the functions that take a path.
 */
#ifndef PROMPTSHAP_FUZZ_H
#define PROMPTSHAP_FUZZ_H

#include "promptshap.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* For a harness's own checkers and helpers: without coverage
 * instrumentation (clang), and never inlined into instrumented code. */
#if defined(__clang__)
#define FUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))
#else
#define FUZZ_NO_COVERAGE __attribute__((noinline))
#endif

/* Aborts with the file, line and condition, whatever the build type. */
#define FUZZ_ASSERT(cond)                                                                \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

typedef struct fuzz_reader {
    const uint8_t * data;
    size_t size;
} fuzz_reader;

static inline uint8_t fuzz_u8(fuzz_reader * in) {
    if (in->size == 0) {
        return 0;
    }
    uint8_t b = in->data[0];
    in->data++;
    in->size--;
    return b;
}

static inline uint32_t fuzz_u32(fuzz_reader * in) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        v = (v << 8) | fuzz_u8(in);
    }
    return v;
}

/* An integer in [lo, hi]. */
static inline size_t fuzz_range(fuzz_reader * in, size_t lo, size_t hi) {
    if (hi <= lo) {
        return lo;
    }
    size_t span = hi - lo + 1;
    size_t v = span <= 256 ? fuzz_u8(in) : fuzz_u32(in);
    return lo + v % span;
}

/* Up to max bytes of the input, borrowed. */
static inline const uint8_t * fuzz_take(fuzz_reader * in, size_t max, size_t * n) {
    *n = max < in->size ? max : in->size;
    const uint8_t * p = in->data;
    in->data += *n;
    in->size -= *n;
    return p;
}

/* A double that is often one of the values writers get wrong (NaN, the
 * infinities, zeros of both signs, huge and tiny magnitudes), otherwise
 * any bit pattern. */
static inline double fuzz_double(fuzz_reader * in) {
    static const double special[] = {
        0.0, -0.0, 1.0, -1.0, 0.5, -2.25, 1e-300, -4.9e-324, 1e300, -1.7976931348623157e308,
        9.2e18, -9.3e18, 2147483648.0, 1e-7, 123456.789,
    };
    uint8_t kind = fuzz_u8(in);
    if (kind < 32) {
        return NAN;
    }
    if (kind < 48) {
        return kind & 1 ? INFINITY : -INFINITY;
    }
    if (kind < 160) {
        return special[kind % (sizeof(special) / sizeof(special[0]))];
    }
    uint64_t bits = ((uint64_t)fuzz_u32(in) << 32) | fuzz_u32(in);
    double x;
    memcpy(&x, &bits, sizeof(x));
    return x;
}

/* An anonymous in-memory file holding data, opened under a path such as
 * "/proc/self/fd/5" so that path-taking functions can read it. Returns the
 * descriptor (close it when done) or -1. */
static inline int fuzz_memfile(const void * data, size_t size, char * path, size_t path_size) {
    int fd = memfd_create("promptshap-fuzz", MFD_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    const uint8_t * p = data;
    size_t done = 0;
    while (done < size) {
        ssize_t got = write(fd, p + done, size - done);
        if (got <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)got;
    }
    snprintf(path, path_size, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
