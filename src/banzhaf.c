/* SPDX-License-Identifier: MIT
 *
 * Banzhaf values, a different index from Shapley's: beta_i is the mean of
 * v(S + i) - v(S) over all 2^(n-1) coalitions S without i, every size
 * weighted by its count. Sampling draws pairs (S, N \ S) uniformly without
 * replacement; exactly one member of a pair contains i, so the pair's
 * estimate of beta_i is +-(v(S) - v(N \ S)), the "maximum sample reuse"
 * idea of Wang and Jia ("Data Banzhaf", AISTATS 2023) with antithetic
 * pairs. The pair (empty, N) is always taken, so v(N) and v(empty) are
 * known; it counts as its own stratum. With a budget of 2^n every pair is
 * taken and the values are exact. Efficiency does not hold for Banzhaf
 * values, so efficiency_gap is reported, not enforced.
 */
#include "estimate.h"

#include <math.h>
#include <string.h>

/* Pair counts up to which pairs are drawn from a shuffled list of ranks. */
#define BANZHAF_RANK_LIST_MAX (1u << 20)

typedef struct {
    ps_sampler base;
    int n;
    uint64_t rng;
    double n_pairs_total; /* 2^(n-1) */
    long n_pairs;         /* pairs taken, the (empty, N) pair included */
    long cap_pairs;
    int64_t * pairs;      /* [cap_pairs][2], store indices of S and N \ S; pair 0 is (empty, N) */
    uint32_t * ranks;     /* lazily shuffled ranks 1 .. 2^(n-1) - 1, for small n */
    uint64_t * mask;      /* [words] */
    double * sum;         /* [n] */
    double * sum_sq;      /* [n] */
} banzhaf_sampler;

/* Sets mask to the canonical member of a pair not taken yet: a coalition
 * without player n - 1. Returns false when none is left. */
static bool banzhaf_next(banzhaf_sampler * b, const ps_store * s) {
    const int W = PROMPTSHAP_MASK_WORDS(b->n);
    long taken = b->n_pairs - 1;
    if ((double)b->n_pairs >= b->n_pairs_total) {
        return false;
    }
    if (b->n_pairs_total - 1 <= BANZHAF_RANK_LIST_MAX) {
        uint32_t count = (uint32_t)(b->n_pairs_total - 1);
        if (!b->ranks) {
            b->ranks = malloc((size_t)count * sizeof(uint32_t));
            if (!b->ranks) {
                return false;
            }
            for (uint32_t j = 0; j < count; j++) {
                b->ranks[j] = j + 1;
            }
        }
        uint32_t j = (uint32_t)taken;
        uint32_t pick = j + (uint32_t)ps_rng_below(&b->rng, (uint64_t)count - j);
        uint32_t tmp = b->ranks[j];
        b->ranks[j] = b->ranks[pick];
        b->ranks[pick] = tmp;
        memset(b->mask, 0, (size_t)W * sizeof(uint64_t));
        b->mask[0] = b->ranks[j];
        return true;
    }
    /* a game this large is sampled sparsely, so repeats are rare */
    for (int attempt = 0; attempt < 1000; attempt++) {
        memset(b->mask, 0, (size_t)W * sizeof(uint64_t));
        for (int i = 0; i < b->n - 1; i++) {
            if (ps_rng_next(&b->rng) & 1u) {
                ps_mask_set(b->mask, i);
            }
        }
        if (ps_store_find(s, b->mask) < 0) {
            return true;
        }
    }
    return false;
}

static enum promptshap_status banzhaf_grow(ps_sampler * sampler, ps_store * s, size_t limit, bool * more,
                                           promptshap_error * err) {
    banzhaf_sampler * b = (banzhaf_sampler *)sampler;
    for (;;) {
        if (b->n_pairs == 0) {
            memset(b->mask, 0, (size_t)PROMPTSHAP_MASK_WORDS(b->n) * sizeof(uint64_t));
        } else if (!banzhaf_next(b, s)) {
            *more = false;
            return PROMPTSHAP_OK;
        }
        if (b->n_pairs == b->cap_pairs) {
            long cap = b->cap_pairs ? 2 * b->cap_pairs : 256;
            int64_t * pairs = realloc(b->pairs, (size_t)cap * 2 * sizeof(int64_t));
            if (!pairs) {
                return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %ld pairs", cap);
            }
            b->pairs = pairs;
            b->cap_pairs = cap;
        }
        size_t n_before = s->n;
        int64_t first = ps_store_add(s, b->mask);
        for (int i = 0; i < b->n; i++) {
            b->mask[i / 64] ^= (uint64_t)1 << (i % 64);
        }
        int64_t second = first >= 0 ? ps_store_add(s, b->mask) : -1;
        if (second < 0) {
            return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %zu coalitions", s->n);
        }
        if (s->n > limit) {
            /* the shuffled rank stays in place for the next round */
            ps_store_truncate(s, n_before);
            *more = true;
            return PROMPTSHAP_OK;
        }
        b->pairs[2 * b->n_pairs] = first;
        b->pairs[2 * b->n_pairs + 1] = second;
        b->n_pairs++;
    }
}

static enum promptshap_status banzhaf_fit(ps_sampler * sampler, const ps_store * s, promptshap_estimate * est,
                                          promptshap_error * err) {
    banzhaf_sampler * b = (banzhaf_sampler *)sampler;
    const int n = b->n;
    const int T = s->n_outputs;
    const long m = b->n_pairs - 1; /* sampled pairs besides (empty, N) */
    if (b->n_pairs < 1 || (m < 2 && b->n_pairs_total > 2)) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT,
                       "the budget of %zu coalitions is too small for Banzhaf sampling of %d units", s->n, n);
    }
    const double share_first = 1.0 / b->n_pairs_total;
    const double share_rest = 1.0 - share_first;
    memcpy(est->v_empty, s->values + (size_t)b->pairs[0] * T, (size_t)T * sizeof(double));
    memcpy(est->v_full, s->values + (size_t)b->pairs[1] * T, (size_t)T * sizeof(double));

    /* the stratified mean per output: the (empty, N) pair with weight
     * 1 / 2^(n-1), the sampled pairs sharing the rest */
    memset(b->sum, 0, (size_t)n * sizeof(double));
    memset(b->sum_sq, 0, (size_t)n * sizeof(double));
    for (long p = 0; p < b->n_pairs; p++) {
        const uint64_t * first = s->members + (size_t)b->pairs[2 * p] * s->n_words;
        const double * a = s->values + (size_t)b->pairs[2 * p] * T;
        const double * c = s->values + (size_t)b->pairs[2 * p + 1] * T;
        double weight = p == 0 ? share_first : share_rest / (double)m;
        double total = 0.0;
        for (int t = 0; t < T; t++) {
            total += a[t] - c[t];
        }
        for (int i = 0; i < n; i++) {
            double sign = ps_mask_has(first, i) ? 1.0 : -1.0;
            double * row = est->matrix + (size_t)i * T;
            for (int t = 0; t < T; t++) {
                row[t] += weight * sign * (a[t] - c[t]);
            }
            if (p > 0) {
                b->sum[i] += sign * total;
            }
        }
    }

    /* standard error of the sampled part, with the finite population
     * correction of sampling without replacement */
    for (long p = 1; p < b->n_pairs; p++) {
        const uint64_t * first = s->members + (size_t)b->pairs[2 * p] * s->n_words;
        double total = ps_store_total(s, b->pairs[2 * p]) - ps_store_total(s, b->pairs[2 * p + 1]);
        for (int i = 0; i < n; i++) {
            double dev = (ps_mask_has(first, i) ? total : -total) - b->sum[i] / (double)m;
            b->sum_sq[i] += dev * dev;
        }
    }
    double population = b->n_pairs_total - 1;
    double fpc = population > 0 ? 1.0 - (double)m / population : 0.0;
    for (int i = 0; i < n; i++) {
        double var = m > 1 ? b->sum_sq[i] / (double)(m - 1) / (double)m * fpc : 0.0;
        est->std_error[i] = var > 0 ? share_rest * sqrt(var) : 0.0;
    }
    est->n_samples = (int)(2 * b->n_pairs);
    return PROMPTSHAP_OK;
}

enum promptshap_status ps_run_banzhaf(const promptshap_game * game, const struct promptshap_estimate_params * p,
                                      long budget, promptshap_estimate * est, promptshap_error * err) {
    const int n = game->n_players;
    banzhaf_sampler b = {
        .base = { banzhaf_grow, banzhaf_fit },
        .n = n,
        .rng = p->seed,
        .n_pairs_total = ldexp(1.0, n - 1),
    };
    ps_store s = {0};
    b.mask = calloc((size_t)PROMPTSHAP_MASK_WORDS(n), sizeof(uint64_t));
    b.sum = malloc((size_t)n * sizeof(double));
    b.sum_sq = malloc((size_t)n * sizeof(double));
    enum promptshap_status st;
    if (!b.mask || !b.sum || !b.sum_sq || !ps_store_init(&s, PROMPTSHAP_MASK_WORDS(n), game->n_outputs, (size_t)budget)) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for Banzhaf sampling of %d units", n);
    } else {
        st = ps_run_rounds(&b.base, &s, game, p, budget, est, err);
    }
    ps_store_free(&s);
    free(b.pairs);
    free(b.ranks);
    free(b.mask);
    free(b.sum);
    free(b.sum_sq);
    return st;
}
