/* SPDX-License-Identifier: MIT
 *
 * Pieces shared by the estimators in shapley.c, regression.c, banzhaf.c and
 * interactions.c: the store of distinct coalitions with their values, and
 * the loop that grows a sample in rounds until the budget is spent or the
 * standard errors meet the tolerance. Not part of the public API.
 */
#ifndef PROMPTSHAP_ESTIMATE_H
#define PROMPTSHAP_ESTIMATE_H

#include "internal.h"

/* Distinct coalitions with their values, found by hash. Coalitions are
 * evaluated in the order they were added; values of the first n_evaluated
 * are valid. */
typedef struct {
    int n_words;
    int n_outputs;
    size_t n;           /* distinct coalitions stored */
    size_t n_evaluated; /* coalitions whose values are filled */
    size_t cap;         /* capacity of members and values */
    uint64_t * members; /* [cap][n_words] */
    double * values;    /* [cap][n_outputs] */
    size_t n_slots;     /* power of two */
    int64_t * slots;    /* [n_slots], index into members or -1 */
} ps_store;

bool ps_store_init(ps_store * s, int n_words, int n_outputs, size_t expected);
void ps_store_free(ps_store * s);
/* Returns the index of the coalition, adding it if new; -1 if out of memory. */
int64_t ps_store_add(ps_store * s, const uint64_t * members);
/* Returns the index of the coalition, or -1 when it is not stored. */
int64_t ps_store_find(const ps_store * s, const uint64_t * members);
/* Removes the coalitions added after the first n_keep (none of them
 * evaluated yet), newest first, which keeps the hash table's probe chains
 * intact. */
void ps_store_truncate(ps_store * s, size_t n_keep);
/* Evaluates the coalitions not yet evaluated, in groups of max_group, and
 * reports progress against total. */
enum promptshap_status ps_store_eval(ps_store * s, const promptshap_game * game,
                                     const struct promptshap_estimate_params * p, long total,
                                     promptshap_error * err);
/* Sum over outputs of the value of stored coalition idx. */
double ps_store_total(const ps_store * s, int64_t idx);

/* Fills est->values, the totals and the efficiency gap from est->matrix,
 * v_full and v_empty. */
void ps_estimate_finish(promptshap_estimate * est);
/* max std_error / (max value - min value), from est->values and std_error. */
double ps_estimate_se_ratio(const promptshap_estimate * est);

/* A sampled estimator seen by the round loop. */
typedef struct ps_sampler ps_sampler;
struct ps_sampler {
    /* Adds coalitions to the store, never more than limit in all; returns
     * false when the design has nothing left to add. */
    enum promptshap_status (*grow)(ps_sampler * sampler, ps_store * s, size_t limit, bool * more,
                                   promptshap_error * err);
    /* Fills est->matrix, std_error, v_full and v_empty from the evaluated
     * store. */
    enum promptshap_status (*fit)(ps_sampler * sampler, const ps_store * s, promptshap_estimate * est,
                                  promptshap_error * err);
};

/* Runs a sampler in rounds: with a tolerance the sample grows by half at a
 * time from max(4n + 2, budget / 16) coalitions, and stops once the
 * standard error ratio is below the tolerance; without one it takes the
 * whole budget at once. */
enum promptshap_status ps_run_rounds(ps_sampler * sampler, ps_store * s, const promptshap_game * game,
                                     const struct promptshap_estimate_params * p, long budget,
                                     promptshap_estimate * est, promptshap_error * err);

/* The estimators outside shapley.c. */
enum promptshap_status ps_run_kernel(const promptshap_game * game, const struct promptshap_estimate_params * p,
                                     long budget, promptshap_estimate * est, promptshap_error * err);
enum promptshap_status ps_run_leverage(const promptshap_game * game, const struct promptshap_estimate_params * p,
                                       long budget, promptshap_estimate * est, promptshap_error * err);
/* Gaussian-process regression on the pairs Leverage SHAP samples
 * (regression.c). */
enum promptshap_status ps_run_gp(const promptshap_game * game, const struct promptshap_estimate_params * p,
                                 long budget, promptshap_estimate * est, promptshap_error * err);
enum promptshap_status ps_run_banzhaf(const promptshap_game * game, const struct promptshap_estimate_params * p,
                                      long budget, promptshap_estimate * est, promptshap_error * err);

/* Pairwise Shapley interaction indices from the totals of all 2^n
 * coalitions (totals[mask]); out is [n][n]. */
void ps_interactions_from_table(int n, const double * totals, double * out);

/* Test hook: a nonzero fault makes the regression estimators use uniform
 * weights in place of the Shapley kernel, and gp a prior of independent
 * residuals with no credit for interactions, so tests can check that their
 * error bounds reject a wrong estimator. */
void ps_regression_set_fault(int fault);

#endif
