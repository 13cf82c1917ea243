/* SPDX-License-Identifier: MIT
 *
 * log p(token | logits row) for the rows a decode keeps. A row is as wide
 * as the vocabulary (151k to 201k entries on current models), and an exact
 * Shapley run scores hundreds of thousands of rows, so this is the engine's
 * second-largest cost after the model itself. The rows are read in place
 * from libllama's output buffer, in two vectorized passes (maximum, then
 * the sum of exponentials), and spread over threads.
 *
 * With layers on a GPU, libllama still copies each kept row to host
 * memory, and the rows are scored here on the CPU threads. That stays off
 * the critical path because only scored rows exist: one 152k-entry row
 * takes about 130 microseconds on one core of the 2-core test machine
 * (AVX2), so 16 cores score over 100,000 rows per second, more target tokens
 * than a GPU decodes per second for a 20B model. A GPU-side log-softmax
 * would need operations libllama's C API does not expose.
 *
 * exp() from libm does not vectorize, so vexp below is a float exponential
 * for arguments <= 0 with a relative error under 2e-7, written with the
 * compiler's vector extensions so that it runs 8 lanes at a time: the
 * terms are summed in double, which keeps the log-sum-exp within 1e-6 nats
 * of a double-precision reference on any row. Written as plain loops that
 * GCC 12 was left to vectorize, the same arithmetic took 190 to 205
 * microseconds per 152k-entry row read from memory (1 core, AVX2). With
 * vector types it takes 125 to 130.
 */
#include "logsoftmax.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define LANES 8
typedef float v8f __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t v8i __attribute__((vector_size(LANES * sizeof(int32_t))));
typedef uint32_t v8u __attribute__((vector_size(LANES * sizeof(uint32_t))));

/* The helpers below take and return 32-byte vectors, which the AVX2 copy of
 * ps_log_softmax passes in registers and the default target in memory. A
 * helper compiled once for the default target and called from the AVX2
 * copy would read its arguments from the wrong place (at -O0 this
 * crashed), so they are always inlined into each copy. */
#define PS_VECTOR_HELPER static inline __attribute__((always_inline))

/* Below this, exp(x) is under 1.7e-38 and adds nothing next to the row's
 * maximum term, which is 1. */
#define EXP_FLOOR (-87.0f)

PS_VECTOR_HELPER v8f splat(float x) {
    return (v8f){ x, x, x, x, x, x, x, x };
}

/* a where mask is set, else b */
PS_VECTOR_HELPER v8f select_v8f(v8i mask, v8f a, v8f b) {
    return (v8f)((mask & (v8i)a) | (~mask & (v8i)b));
}

PS_VECTOR_HELPER v8f load_v8f(const float * p) {
    v8f v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* e^x for x <= 0, per lane: x = k ln 2 + r with |r| <= ln(2)/2, e^r by its
 * Taylor series to degree 7 (truncation error 5e-9), 2^k built in the
 * exponent bits. */
PS_VECTOR_HELPER v8f vexp(v8f x) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = select_v8f(x < splat(EXP_FLOOR), splat(EXP_FLOOR), x);
    v8f kf = x * 1.44269504f + magic;
    v8i k = (v8i)kf - 0x4b400000;
    kf -= magic;
    v8f r = x - kf * 0.693145752f; /* ln 2 in two parts, so r is exact */
    r = r - kf * 1.42860677e-06f;
    v8f p = r * (1.0f / 5040.0f) + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* unsigned, so that lanes with x above 0 or NaN, whose results are
     * never used, shift without overflow */
    return p * (v8f)((v8u)(k + 127) << 23);
}

/* On x86-64, a second copy for AVX2 and FMA machines, chosen at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PS_TARGET_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PS_TARGET_CLONES
#endif

/* Terms per step of the sum: 8 lanes of 8 float terms of at most 1 each
 * join the double total together. */
#define STEP (8 * LANES)

PS_TARGET_CLONES
double ps_log_softmax(const float * row, int n_vocab, int32_t token) {
    /* the maximum, four vectors at a time */
    float max = row[0];
    int v = 0;
    if (n_vocab >= 4 * LANES) {
        v8f m0 = load_v8f(row), m1 = m0, m2 = m0, m3 = m0;
        for (; v + 4 * LANES <= n_vocab; v += 4 * LANES) {
            v8f a = load_v8f(row + v), b = load_v8f(row + v + LANES);
            v8f c = load_v8f(row + v + 2 * LANES), d = load_v8f(row + v + 3 * LANES);
            m0 = select_v8f(a > m0, a, m0);
            m1 = select_v8f(b > m1, b, m1);
            m2 = select_v8f(c > m2, c, m2);
            m3 = select_v8f(d > m3, d, m3);
        }
        m0 = select_v8f(m1 > m0, m1, m0);
        m2 = select_v8f(m3 > m2, m3, m2);
        m0 = select_v8f(m2 > m0, m2, m0);
        for (int l = 0; l < LANES; l++) {
            max = m0[l] > max ? m0[l] : max;
        }
    }
    for (; v < n_vocab; v++) {
        max = row[v] > max ? row[v] : max;
    }

    /* the sum of exponentials: four independent vector sums per step */
    const v8f vmax = splat(max);
    double sum = 0.0;
    v = 0;
    for (; v + STEP <= n_vocab; v += STEP) {
        const float * p = row + v;
        v8f s0 = vexp(load_v8f(p) - vmax) + vexp(load_v8f(p + 4 * LANES) - vmax);
        v8f s1 = vexp(load_v8f(p + LANES) - vmax) + vexp(load_v8f(p + 5 * LANES) - vmax);
        v8f s2 = vexp(load_v8f(p + 2 * LANES) - vmax) + vexp(load_v8f(p + 6 * LANES) - vmax);
        v8f s3 = vexp(load_v8f(p + 3 * LANES) - vmax) + vexp(load_v8f(p + 7 * LANES) - vmax);
        v8f t = (s0 + s1) + (s2 + s3);
        for (int l = 0; l < LANES; l++) {
            sum += (double)t[l];
        }
    }
    /* the last entries, up to 8 at a time */
    for (; v < n_vocab; v += LANES) {
        int n = n_vocab - v < LANES ? n_vocab - v : LANES;
        v8f x = vmax; /* unused lanes: e^0 */
        memcpy(&x, row + v, (size_t)n * sizeof(float));
        v8f e = vexp(x - vmax);
        for (int l = 0; l < n; l++) {
            sum += (double)e[l];
        }
    }
    return (double)row[token] - (double)max - log(sum);
}

typedef struct {
    const ps_softmax_job * jobs;
    int n_jobs;
    int n_vocab;
    int first; /* this worker takes jobs first, first + stride, ... */
    int stride;
} worker_arg;

static void * worker(void * p) {
    const worker_arg * a = p;
    for (int j = a->first; j < a->n_jobs; j += a->stride) {
        *a->jobs[j].out = ps_log_softmax(a->jobs[j].row, a->n_vocab, a->jobs[j].token);
    }
    return NULL;
}

/* Fewer entries than this are not worth a thread. */
#define MIN_ENTRIES_PER_THREAD (1 << 20)

void ps_log_softmax_rows(const ps_softmax_job * jobs, int n_jobs, int n_vocab, int n_threads) {
    long entries = (long)n_jobs * n_vocab;
    int n = n_threads;
    if (n > n_jobs) {
        n = n_jobs;
    }
    if (n > 1 && entries / n < MIN_ENTRIES_PER_THREAD) {
        n = (int)(entries / MIN_ENTRIES_PER_THREAD);
    }
    if (n > PS_SOFTMAX_MAX_THREADS) {
        n = PS_SOFTMAX_MAX_THREADS;
    }
    if (n < 1) {
        n = 1;
    }
    pthread_t threads[PS_SOFTMAX_MAX_THREADS];
    worker_arg args[PS_SOFTMAX_MAX_THREADS];
    int started = 0;
    for (int t = 0; t < n; t++) {
        args[t] = (worker_arg){ .jobs = jobs, .n_jobs = n_jobs, .n_vocab = n_vocab, .first = t, .stride = n };
    }
    /* worker 0 runs on this thread; a worker that cannot start is run here too */
    for (int t = 1; t < n; t++) {
        if (pthread_create(&threads[t], NULL, worker, &args[t]) != 0) {
            break;
        }
        started = t;
    }
    worker(&args[0]);
    for (int t = started + 1; t < n; t++) {
        worker(&args[t]);
    }
    for (int t = 1; t <= started; t++) {
        pthread_join(threads[t], NULL);
    }
}
