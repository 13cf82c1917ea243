/* SPDX-License-Identifier: MIT
 *
 * Status strings, error reporting, versions, log routing, the clock and the
 * random number helper shared by the other files.
 */
#include "model.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char * promptshap_status_str(enum promptshap_status status) {
    switch (status) {
        case PROMPTSHAP_OK:                   return "ok";
        case PROMPTSHAP_ERR_INVALID_ARGUMENT: return "invalid argument";
        case PROMPTSHAP_ERR_INVALID_INPUT:    return "invalid input";
        case PROMPTSHAP_ERR_MODEL:            return "model not loadable";
        case PROMPTSHAP_ERR_TOO_LONG:         return "sequence too long";
        case PROMPTSHAP_ERR_TOO_MANY_UNITS:   return "too many units";
        case PROMPTSHAP_ERR_DECODE:           return "decode failed";
        case PROMPTSHAP_ERR_NUMERIC:          return "non-finite value";
        case PROMPTSHAP_ERR_NO_MEMORY:        return "out of memory";
        case PROMPTSHAP_ERR_IO:               return "input/output error";
        case PROMPTSHAP_ERR_CANCELLED:        return "cancelled";
    }
    return "unknown status";
}

void ps_assert_fail(const char * file, int line, const char * expr) {
    /* an internal invariant is broken: continuing would give wrong numbers */
    fprintf(stderr, "promptshap: internal error at %s:%d: %s\n", file, line, expr);
    abort();
}

enum promptshap_status ps_fail(promptshap_error * err, enum promptshap_status status, const char * fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void ps_ok(promptshap_error * err) {
    if (err) {
        err->status = PROMPTSHAP_OK;
        err->message[0] = '\0';
    }
}

const char * promptshap_version(void) {
    return PROMPTSHAP_VERSION;
}

const char * promptshap_llama_version(void) {
    return llama_version();
}

static promptshap_log_fn log_fn;
static void * log_user_data;

void promptshap_log_set(promptshap_log_fn fn, void * user_data) {
    log_fn = fn;
    log_user_data = user_data;
}

void ps_log_forward(int level, const char * text) {
    if (log_fn) {
        log_fn(level, text, log_user_data);
    }
}

double ps_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t ps_rng_below(uint64_t * state, uint64_t n) {
    PS_ASSERT(n > 0);
    /* reject the top sliver of the range so every residue is equally likely */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = ps_rng_next(state);
    } while (x >= limit);
    return x % n;
}

bool ps_text_add(ps_text * t, const char * s, size_t n) {
    if (t->n + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        while (cap < t->n + n + 1) {
            cap *= 2;
        }
        char * d = realloc(t->data, cap);
        if (!d) {
            return false;
        }
        t->data = d;
        t->cap = cap;
    }
    memcpy(t->data + t->n, s, n);
    t->n += n;
    t->data[t->n] = '\0';
    return true;
}
