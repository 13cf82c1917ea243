/* SPDX-License-Identifier: MIT
 *
 * The log-softmax of scored logits rows against a double-precision
 * reference: every row length from 1 to 200 (each tail of the vector
 * loops), vocabulary-sized rows, extreme and tied logits, the token at
 * either end, and the threaded driver against one row at a time.
 */
#include "logsoftmax.h"

#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* uniform in [0, 1), splitmix64 */
static double uniform(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

static double reference(const float * row, int n, int token) {
    double max = row[0];
    for (int v = 1; v < n; v++) {
        max = row[v] > max ? row[v] : max;
    }
    double sum = 0.0;
    for (int v = 0; v < n; v++) {
        sum += exp((double)row[v] - max);
    }
    return (double)row[token] - max - log(sum);
}

static void fill(float * row, int n, double scale, double shift) {
    for (int v = 0; v < n; v++) {
        row[v] = (float)(shift + scale * (2.0 * uniform() - 1.0));
    }
}

/* Every length through the vector loops' tails, the maximum at each place. */
static void test_lengths(void) {
    float row[200];
    double worst = 0.0;
    for (int n = 1; n <= 200; n++) {
        fill(row, n, 8.0, 0.0);
        int at = (int)(uniform() * n);
        row[at] = 12.0f;
        for (int token = 0; token < n; token += (n > 20 ? 7 : 1)) {
            worst = fmax(worst, fabs(ps_log_softmax(row, n, token) - reference(row, n, token)));
        }
        worst = fmax(worst, fabs(ps_log_softmax(row, n, n - 1) - reference(row, n, n - 1)));
    }
    CHECK_NEAR(worst, 0.0, 1e-6);
}

/* Vocabulary-sized rows: flat, wide, shifted far from zero, one logit far
 * above the rest, and logits far below the maximum (under exp's floor). */
static void test_vocabulary_rows(void) {
    /* 201,091 entries: 3 past a multiple of 64, so the tail loop runs, also
     * on the rows whose maximum is -300 */
    const int n = 201091;
    float * row = malloc((size_t)n * sizeof(float));
    CHECK(row != NULL);
    if (!row) {
        return;
    }
    const double scales[] = {0.0, 1.0, 10.0, 40.0};
    const double shifts[] = {0.0, -300.0, 250.0};
    double worst = 0.0;
    for (size_t i = 0; i < sizeof(scales) / sizeof(scales[0]); i++) {
        for (size_t j = 0; j < sizeof(shifts) / sizeof(shifts[0]); j++) {
            fill(row, n, scales[i], shifts[j]);
            const int tokens[] = {0, 1, 77, n / 2, n - 1};
            for (size_t k = 0; k < sizeof(tokens) / sizeof(tokens[0]); k++) {
                worst = fmax(worst, fabs(ps_log_softmax(row, n, tokens[k]) - reference(row, n, tokens[k])));
            }
        }
    }
    CHECK_NEAR(worst, 0.0, 1e-6);

    /* a flat row: log(1 / n) for every token */
    fill(row, n, 0.0, 3.5);
    CHECK_NEAR(ps_log_softmax(row, n, 12345), -log((double)n), 1e-6);

    /* one logit 200 above the others: its probability rounds to 1, and a
     * token 200 below scores -200 - log(1 + tiny) */
    fill(row, n, 0.0, -200.0);
    row[n - 3] = 0.0f;
    CHECK_NEAR(ps_log_softmax(row, n, n - 3), 0.0, 1e-6);
    CHECK_NEAR(ps_log_softmax(row, n, 5), -200.0, 1e-6);
    free(row);
}

/* The threaded driver gives each job exactly what one call gives. A
 * thread takes at least 2^20 entries, so these 8M entries allow up to 8. */
static void test_rows_threads(void) {
    const int n_vocab = 201088;
    const int n_rows = 40;
    float * rows = malloc((size_t)n_vocab * n_rows * sizeof(float));
    double * out = malloc((size_t)n_rows * sizeof(double));
    ps_softmax_job * jobs = malloc((size_t)n_rows * sizeof(ps_softmax_job));
    CHECK(rows != NULL);
    CHECK(out != NULL);
    CHECK(jobs != NULL);
    if (rows && out && jobs) {
        fill(rows, n_vocab * n_rows, 6.0, -1.0);
        for (int threads = 1; threads <= 4; threads++) {
            for (int r = 0; r < n_rows; r++) {
                out[r] = NAN;
                jobs[r] = (ps_softmax_job){ .row = rows + (size_t)r * n_vocab, .token = (r * 977) % n_vocab,
                                            .out = &out[r] };
            }
            ps_log_softmax_rows(jobs, n_rows, n_vocab, threads);
            for (int r = 0; r < n_rows; r++) {
                CHECK(out[r] == ps_log_softmax(jobs[r].row, n_vocab, jobs[r].token));
            }
        }
    }
    free(rows);
    free(out);
    free(jobs);
}

int main(void) {
    test_lengths();
    test_vocabulary_rows();
    test_rows_threads();
    return CHECK_REPORT();
}
