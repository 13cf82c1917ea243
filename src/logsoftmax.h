/* SPDX-License-Identifier: MIT
 *
 * Log-softmax of the scored logits rows. Not part of the public API.
 */
#ifndef PROMPTSHAP_LOGSOFTMAX_H
#define PROMPTSHAP_LOGSOFTMAX_H

#include <stdint.h>

#define PS_SOFTMAX_MAX_THREADS 64

/* One row to score: *out = log p(token | row). */
typedef struct {
    const float * row; /* [n_vocab] logits, read in place */
    int32_t token;
    double * out;
} ps_softmax_job;

/* log p(token | row) over n_vocab logits. */
double ps_log_softmax(const float * row, int n_vocab, int32_t token);

/* Scores every job, spread over up to n_threads threads (the caller's
 * included); small requests stay on the calling thread. */
void ps_log_softmax_rows(const ps_softmax_job * jobs, int n_jobs, int n_vocab, int n_threads);

#endif
