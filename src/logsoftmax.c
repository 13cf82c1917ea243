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
 * takes about 170 microseconds on one core of the 2-core test machine
 * (AVX2), so 16 cores score some 90,000 rows per second, more target tokens
 * than a GPU decodes per second for a 20B model. A GPU-side log-softmax
 * would need operations libllama's C API does not expose.
 *
 * exp() from libm does not vectorize, so ps_exp_nonpos below is a float
 * exponential for arguments <= 0 with a relative error under 2e-7: the
 * terms are summed in double, which keeps the log-sum-exp within 1e-6
 * nats of a double-precision reference on any row.
 */
#include "logsoftmax.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* Below this, exp(x) is under 1.7e-38 and adds nothing next to the row's
 * maximum term, which is 1. */
#define EXP_FLOOR (-87.0f)

/* e^x for x <= 0: x = k ln 2 + r with |r| <= ln(2)/2, e^r by its Taylor
 * series to degree 7 (truncation error 5e-9), 2^k built in the exponent
 * bits. Branch-free, so the loops that call it vectorize. */
static inline float ps_exp_nonpos(float x) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = x < EXP_FLOOR ? EXP_FLOOR : x;
    float kf = x * 1.44269504f + magic;
    union { float f; uint32_t u; } kb = { kf };
    int32_t k = (int32_t)(kb.u - 0x4b400000u);
    kf -= magic;
    float r = x - kf * 0.693145752f; /* ln 2 in two parts, so r is exact */
    r = r - kf * 1.42860677e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { uint32_t u; float f; } scale = { (uint32_t)(k + 127) << 23 };
    return p * scale.f;
}

/* Terms summed in float before they join the double total: 8 lanes of 8,
 * so a float partial sum adds at most 8 terms of at most 1. */
#define CHUNK 64
#define LANES 8

/* On x86-64, a second copy for AVX2 and FMA machines, chosen at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PS_TARGET_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PS_TARGET_CLONES
#endif

PS_TARGET_CLONES
double ps_log_softmax(const float * row, int n_vocab, int32_t token) {
    float lane_max[LANES];
    for (int l = 0; l < LANES; l++) {
        lane_max[l] = row[0];
    }
    int v = 0;
    for (; v + LANES <= n_vocab; v += LANES) {
        for (int l = 0; l < LANES; l++) {
            lane_max[l] = row[v + l] > lane_max[l] ? row[v + l] : lane_max[l];
        }
    }
    float max = lane_max[0];
    for (int l = 1; l < LANES; l++) {
        max = lane_max[l] > max ? lane_max[l] : max;
    }
    for (; v < n_vocab; v++) {
        max = row[v] > max ? row[v] : max;
    }

    double sum = 0.0;
    float e[CHUNK];
    v = 0;
    for (; v + CHUNK <= n_vocab; v += CHUNK) {
        for (int i = 0; i < CHUNK; i++) {
            e[i] = ps_exp_nonpos(row[v + i] - max);
        }
        float lane[LANES] = { 0 };
        for (int i = 0; i < CHUNK; i += LANES) {
            for (int l = 0; l < LANES; l++) {
                lane[l] += e[i + l];
            }
        }
        for (int l = 0; l < LANES; l++) {
            sum += (double)lane[l];
        }
    }
    for (; v < n_vocab; v++) {
        sum += (double)ps_exp_nonpos(row[v] - max);
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
