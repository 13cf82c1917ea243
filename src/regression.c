/* SPDX-License-Identifier: MIT
 *
 * Regression estimators of Shapley values: KernelSHAP (Lundberg and Lee,
 * "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017) and
 * Leverage SHAP (Musco and Witter, "Provably Accurate Shapley Value
 * Estimation via Leverage Score Sampling", ICLR 2025), with standard errors
 * by bootstrap over the sampled pairs.
 *
 * Both solve min sum_S mu(S) (v(S) - v(empty) - sum_{i in S} phi_i)^2 with
 * sum_i phi_i = v(N) - v(empty), over coalitions 0 < |S| < n, where
 * mu(S) = q(|S|) / C(n, |S|) and q(s) = 1 / (s (n - s)) is the Shapley
 * kernel's mass of size s; the exact minimizer is the Shapley value. They
 * differ in how they sample the sum. Coalitions come in pairs (S, N \ S).
 * For a pair, with x = 2 z_S - 1 (entries +-1), the two squared residuals
 * add up to a term that does not depend on phi plus
 * (d - x . u)^2 / 2, where phi = c / n + u, u is orthogonal to the all-ones
 * vector, c = v(N) - v(empty) and d = v(S) - v(N \ S) - (2 |S| - n) c / n.
 * So each pair is one row of an unconstrained least-squares problem in u.
 * Efficiency is exact because phi sums to c by construction.
 */
#include "estimate.h"

#include <math.h>
#include <string.h>

/* Bootstrap replicates behind each standard error. */
#define BOOTSTRAP_REPLICATES 200
/* Strata with at most this many pairs draw without replacement from a
 * shuffled list of ranks; larger ones draw at random and reject repeats. */
#define RANK_LIST_MAX (1u << 20)

static int regression_fault;

void ps_regression_set_fault(int fault) {
    regression_fault = fault;
}

/* The Shapley kernel's mass of coalitions of size s, up to a constant. */
static double kernel_mass(int n, int s) {
    if (regression_fault) {
        return 1.0;
    }
    return 1.0 / ((double)s * (double)(n - s));
}

/* C(n, k) as a double (exact up to 2^53). */
static double binomial(int n, int k) {
    double c = 1.0;
    for (int j = 1; j <= k; j++) {
        c = c * (double)(n - k + j) / (double)j;
    }
    return c;
}

/*
 * Strata of pairs
 *
 * Stratum k (1 <= k <= n / 2) contains the pairs (S, N \ S) with |S| = k.
 * When k = n - k, each pair is listed once, by its member without player
 * n - 1, so the stratum draws size-k subsets of the first n - 1 players.
 */

typedef struct {
    int size;          /* k */
    int universe;      /* players the first member is drawn from: n, or n - 1 when k = n - k */
    double n_pairs;    /* C(universe, k) */
    double mass;       /* kernel mass of the pair's two sizes: q(k) + q(n - k), or q(k) when k = n - k */
    double row_mass;   /* kernel mass of one size: q(k) */
    long drawn;        /* distinct pairs drawn so far */
    bool enumerated;   /* kernel: every pair listed, with weight mu */
    uint32_t * ranks;  /* lazily shuffled ranks, when n_pairs <= RANK_LIST_MAX and universe <= 62 */
} stratum;

/* One sampled or listed pair: store indices of S and N \ S, its stratum. */
typedef struct {
    int64_t first;
    int64_t second;
    int stratum;
    bool drawn;        /* kernel: a draw with replacement (false: an enumerated pair) */
} pair_row;

typedef struct {
    ps_sampler base;
    const struct promptshap_estimate_params * params;
    int n;
    bool leverage;
    uint64_t rng;
    int n_strata;
    stratum * strata;    /* [n_strata], stratum k at index k - 1 */
    pair_row * pairs;    /* [cap_pairs] */
    long n_pairs;
    long cap_pairs;
    long n_draws;        /* kernel: draws with replacement */
    long max_draws;      /* kernel: draws before giving up on new coalitions */
    int enum_next;       /* kernel: the next stratum to list in full */
    int enum_end;        /* kernel: strata below this index are listed in full */
    long cycle;          /* leverage: round-robin position */
    int64_t empty;
    int64_t full;
    uint64_t * mask;     /* [words] */
    int * scratch;       /* [n] */
    uint64_t binom[64][64]; /* C(a, b) for a, b < 64 */
} regression;

/* Sets mask to the subset of rank r (colex order) among size-k subsets of
 * the first u players. */
static void unrank(const regression * r, uint64_t rank, int u, int k, uint64_t * mask) {
    memset(mask, 0, (size_t)PROMPTSHAP_MASK_WORDS(r->n) * sizeof(uint64_t));
    for (int i = u - 1; i >= 0 && k > 0; i--) {
        if (rank >= r->binom[i][k]) {
            rank -= r->binom[i][k];
            ps_mask_set(mask, i);
            k--;
        }
    }
}

/* Sets mask to a uniform random size-k subset of the first u players. */
static void random_subset(regression * r, int u, int k, uint64_t * mask) {
    memset(mask, 0, (size_t)PROMPTSHAP_MASK_WORDS(r->n) * sizeof(uint64_t));
    for (int i = 0; i < u; i++) {
        r->scratch[i] = i;
    }
    for (int j = 0; j < k; j++) {
        int pick = j + (int)ps_rng_below(&r->rng, (uint64_t)(u - j));
        int tmp = r->scratch[j];
        r->scratch[j] = r->scratch[pick];
        r->scratch[pick] = tmp;
        ps_mask_set(mask, r->scratch[j]);
    }
}

static bool push_pair(regression * r, int64_t first, int64_t second, int h, bool drawn) {
    if (r->n_pairs == r->cap_pairs) {
        long cap = r->cap_pairs ? 2 * r->cap_pairs : 256;
        pair_row * pairs = realloc(r->pairs, (size_t)cap * sizeof(pair_row));
        if (!pairs) {
            return false;
        }
        r->pairs = pairs;
        r->cap_pairs = cap;
    }
    r->pairs[r->n_pairs++] = (pair_row){ first, second, h, drawn };
    return true;
}

/* Adds the pair (mask, complement) to the store. Returns 1 when added, 0
 * when it does not fit the limit (the store is left as it was), -1 when out
 * of memory. */
static int add_pair(regression * r, ps_store * s, size_t limit, int h, bool drawn) {
    size_t n_before = s->n;
    int64_t first = ps_store_add(s, r->mask);
    for (int i = 0; i < r->n; i++) {
        r->mask[i / 64] ^= (uint64_t)1 << (i % 64);
    }
    int64_t second = first >= 0 ? ps_store_add(s, r->mask) : -1;
    if (second < 0) {
        return -1;
    }
    if (s->n > limit) {
        ps_store_truncate(s, n_before);
        return 0;
    }
    return push_pair(r, first, second, h, drawn) ? 1 : -1;
}

/* Sets r->mask to a pair of stratum h not drawn before (without
 * replacement); false when the stratum has none left. */
static bool next_in_stratum(regression * r, const ps_store * s, int h) {
    stratum * st = &r->strata[h];
    if (st->drawn >= (long)st->n_pairs) {
        return false;
    }
    if (st->universe <= 62 && st->n_pairs <= RANK_LIST_MAX) {
        if (!st->ranks) {
            st->ranks = malloc((size_t)st->n_pairs * sizeof(uint32_t));
            if (!st->ranks) {
                return false;
            }
            for (uint32_t j = 0; j < (uint32_t)st->n_pairs; j++) {
                st->ranks[j] = j;
            }
        }
        /* one more step of a Fisher-Yates shuffle */
        uint32_t j = (uint32_t)st->drawn;
        uint32_t pick = j + (uint32_t)ps_rng_below(&r->rng, (uint64_t)st->n_pairs - j);
        uint32_t tmp = st->ranks[j];
        st->ranks[j] = st->ranks[pick];
        st->ranks[pick] = tmp;
        unrank(r, st->ranks[j], st->universe, st->size, r->mask);
        st->drawn++;
        return true;
    }
    /* a stratum this large is sampled sparsely, so repeats are rare */
    for (int attempt = 0; attempt < 1000; attempt++) {
        random_subset(r, st->universe, st->size, r->mask);
        if (ps_store_find(s, r->mask) < 0) {
            st->drawn++;
            return true;
        }
    }
    return false;
}

/*
 * Growing the sample
 */

static enum promptshap_status add_ends(regression * r, ps_store * s, promptshap_error * err) {
    if (s->n > 0) {
        return PROMPTSHAP_OK;
    }
    memset(r->mask, 0, (size_t)PROMPTSHAP_MASK_WORDS(r->n) * sizeof(uint64_t));
    r->empty = ps_store_add(s, r->mask);
    for (int i = 0; i < r->n; i++) {
        ps_mask_set(r->mask, i);
    }
    r->full = ps_store_add(s, r->mask);
    if (r->empty < 0 || r->full < 0) {
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for the coalitions of %d units", r->n);
    }
    return PROMPTSHAP_OK;
}

/* Adds the strata chosen by kernel_plan, whole; a stratum that does not
 * fit the limit waits for the next round (*more set). Returns false when
 * out of memory. */
static bool list_strata(regression * r, ps_store * s, size_t limit, bool * more, promptshap_error * err) {
    *more = false;
    while (r->enum_next < r->enum_end) {
        stratum * sh = &r->strata[r->enum_next];
        size_t n_before = s->n;
        long pairs_before = r->n_pairs;
        while (next_in_stratum(r, s, r->enum_next)) {
            if (add_pair(r, s, (size_t)-1, r->enum_next, false) < 0) {
                ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %zu coalitions", s->n);
                return false;
            }
        }
        if (s->n > limit) {
            ps_store_truncate(s, n_before);
            r->n_pairs = pairs_before;
            sh->drawn = 0;
            *more = true;
            return true;
        }
        r->enum_next++;
    }
    return true;
}

/* The part of a round both regressions share: the empty and full
 * coalitions, then the strata listed in full. *more is set when a listed
 * stratum must wait for the next round. */
static enum promptshap_status grow_listed(regression * r, ps_store * s, size_t limit, bool * more,
                                          promptshap_error * err) {
    enum promptshap_status st = add_ends(r, s, err);
    if (st != PROMPTSHAP_OK) {
        return st;
    }
    if (!list_strata(r, s, limit, more, err)) {
        return err ? err->status : PROMPTSHAP_ERR_NO_MEMORY;
    }
    return PROMPTSHAP_OK;
}

/* Leverage SHAP: every size has the same total leverage score, so each
 * round-robin cycle takes one new pair from every stratum k < n - k and,
 * every other cycle, one from the stratum k = n - k, which has one size
 * where the others have two. Within a stratum pairs are drawn without
 * replacement; an exhausted stratum is enumerated and drops out. */
static enum promptshap_status leverage_grow(ps_sampler * sampler, ps_store * s, size_t limit, bool * more,
                                            promptshap_error * err) {
    regression * r = (regression *)sampler;
    enum promptshap_status st = grow_listed(r, s, limit, more, err);
    if (st != PROMPTSHAP_OK || *more) {
        return st;
    }
    for (;;) {
        bool any = false;
        for (int h = r->enum_end; h < r->n_strata; h++) {
            const stratum * sh = &r->strata[h];
            if (2 * sh->size == r->n && r->cycle % 2 == 1) {
                any = any || sh->drawn < (long)sh->n_pairs;
                continue;
            }
            if (!next_in_stratum(r, s, h)) {
                continue;
            }
            any = true;
            int added = add_pair(r, s, limit, h, true);
            if (added < 0) {
                return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %zu coalitions", s->n);
            }
            if (added == 0) {
                /* put the pair back so that the next round can take it */
                r->strata[h].drawn--;
                *more = true;
                return PROMPTSHAP_OK;
            }
        }
        r->cycle++;
        if (!any) {
            *more = false;
            return PROMPTSHAP_OK;
        }
    }
}

/* KernelSHAP: the strata chosen at the start are listed in full, then
 * pairs are drawn with replacement, the first member's size s with
 * probability proportional to q(s) over the sizes not listed. */
static enum promptshap_status kernel_grow(ps_sampler * sampler, ps_store * s, size_t limit, bool * more,
                                          promptshap_error * err) {
    regression * r = (regression *)sampler;
    enum promptshap_status st = grow_listed(r, s, limit, more, err);
    if (st != PROMPTSHAP_OK || *more) {
        return st;
    }

    /* the rest, drawn */
    double rest = 0.0;
    for (int h = r->enum_end; h < r->n_strata; h++) {
        rest += r->strata[h].mass;
    }
    if (rest <= 0.0) {
        *more = false;
        return PROMPTSHAP_OK;
    }
    while (r->n_draws < r->max_draws) {
        double x = (double)(ps_rng_next(&r->rng) >> 11) * 0x1.0p-53 * rest;
        int h = r->enum_end;
        while (h + 1 < r->n_strata && x >= r->strata[h].mass) {
            x -= r->strata[h].mass;
            h++;
        }
        int size = r->strata[h].size;
        if (2 * size != r->n && (ps_rng_next(&r->rng) & 1u)) {
            size = r->n - size;
        }
        random_subset(r, r->n, size, r->mask);
        int added = add_pair(r, s, limit, h, true);
        if (added < 0) {
            return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %zu coalitions", s->n);
        }
        if (added == 0) {
            *more = true;
            return PROMPTSHAP_OK;
        }
        r->n_draws++;
    }
    *more = false;
    return PROMPTSHAP_OK;
}

/* Chooses the strata KernelSHAP lists in full: from the outside in, a
 * stratum is listed when the remaining budget covers it and either its
 * share of the kernel mass would draw at least as many pairs as it has or
 * the budget covers every stratum left; sizes 1 and n - 1 are listed
 * whenever the budget covers them. */
static void kernel_plan(regression * r, long budget) {
    double remaining = (double)budget - 2.0;
    double mass = 0.0, coalitions = 0.0;
    for (int h = 0; h < r->n_strata; h++) {
        mass += r->strata[h].mass;
        coalitions += 2.0 * r->strata[h].n_pairs;
    }
    r->enum_end = 0;
    for (int h = 0; h < r->n_strata; h++) {
        const stratum * sh = &r->strata[h];
        double count = 2.0 * sh->n_pairs;
        double expected = remaining * sh->mass / mass;
        bool fits = count <= remaining;
        if (!fits || !(h == 0 || expected >= count || coalitions <= remaining)) {
            break;
        }
        r->enum_end = h + 1;
        remaining -= count;
        mass -= sh->mass;
        coalitions -= count;
    }
}

/*
 * Fitting
 */

/* Solves (M + t 1 1^T / n) u = b for symmetric positive semi-definite M
 * whose null space contains 1, by Cholesky; a rank-deficient M gets a small
 * ridge. a is overwritten. Returns false when no factorization succeeds. */
static bool solve_projected(int n, double * a, const double * rhs, int n_rhs, double * u) {
    double trace = 0.0;
    for (int i = 0; i < n; i++) {
        trace += a[(size_t)i * n + i];
    }
    double t = trace > 0 ? trace / n : 1.0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            a[(size_t)i * n + j] += t / n;
        }
    }
    double * l = malloc((size_t)n * (size_t)n * sizeof(double));
    if (!l) {
        return false;
    }
    bool ok = false;
    for (double ridge = 0.0; !ok && ridge <= 1.0; ridge = ridge == 0.0 ? 1e-12 : ridge * 100.0) {
        ok = true;
        for (int j = 0; j < n && ok; j++) {
            for (int i = j; i < n; i++) {
                double sum = a[(size_t)i * n + j] + (i == j ? ridge * t : 0.0);
                for (int k = 0; k < j; k++) {
                    sum -= l[(size_t)i * n + k] * l[(size_t)j * n + k];
                }
                if (i == j) {
                    if (!(sum > 1e-13 * t)) {
                        ok = false;
                        break;
                    }
                    l[(size_t)j * n + j] = sqrt(sum);
                } else {
                    l[(size_t)i * n + j] = sum / l[(size_t)j * n + j];
                }
            }
        }
    }
    if (ok) {
        for (int c = 0; c < n_rhs; c++) {
            double * x = u + (size_t)c * n;
            const double * b = rhs + (size_t)c * n;
            for (int i = 0; i < n; i++) {
                double sum = b[i];
                for (int k = 0; k < i; k++) {
                    sum -= l[(size_t)i * n + k] * x[k];
                }
                x[i] = sum / l[(size_t)i * n + i];
            }
            for (int i = n - 1; i >= 0; i--) {
                double sum = x[i];
                for (int k = i + 1; k < n; k++) {
                    sum -= l[(size_t)k * n + i] * x[k];
                }
                x[i] = sum / l[(size_t)i * n + i];
            }
            /* u lies orthogonal to 1 in exact arithmetic; remove the rounding */
            double mean = 0.0;
            for (int i = 0; i < n; i++) {
                mean += x[i];
            }
            mean /= n;
            for (int i = 0; i < n; i++) {
                x[i] -= mean;
            }
        }
    }
    free(l);
    return ok;
}

/* The weight of each row of pair p: mu for a listed pair; for a drawn one
 * the stratum's mass spread over its draws (leverage) or the undrawn mass
 * spread over all draws (kernel). counts[h] is the number of pairs of
 * stratum h in the sample being fitted. */
static double pair_weight(const regression * r, const pair_row * p, const double * counts, double drawn_mass,
                          double n_draws) {
    const stratum * sh = &r->strata[p->stratum];
    if (!p->drawn) {
        return sh->row_mass / binomial(r->n, sh->size);
    }
    if (r->leverage) {
        double rows = (2 * sh->size == r->n ? 2.0 : 1.0) * counts[p->stratum];
        return sh->row_mass / rows;
    }
    return drawn_mass / (2.0 * n_draws);
}

typedef struct {
    double * a;      /* [n][n] */
    double * rhs;    /* [n_rhs][n] */
    double * counts; /* [n_strata] */
} fit_work;

/* Fits u for the sample with multiplicity mult[p] per pair (NULL: 1), for
 * n_rhs right-hand sides: the totals, or each output. rows[p] is pair p's
 * centred +-1 row (n entries) and d[p * n_rhs + c] its difference for
 * right-hand side c. u receives [n_rhs][n]. */
static bool fit_sample(const regression * r, const double * rows, const double * mult, const double * d, int n_rhs,
                       fit_work * w, double * u) {
    const int n = r->n;
    memset(w->a, 0, (size_t)n * (size_t)n * sizeof(double));
    memset(w->rhs, 0, (size_t)n_rhs * (size_t)n * sizeof(double));
    memset(w->counts, 0, (size_t)r->n_strata * sizeof(double));
    double n_draws = 0.0, drawn_mass = 0.0;
    for (long p = 0; p < r->n_pairs; p++) {
        double m = mult ? mult[p] : 1.0;
        w->counts[r->pairs[p].stratum] += m;
        if (r->pairs[p].drawn) {
            n_draws += m;
        }
    }
    for (int h = r->enum_end; h < r->n_strata; h++) {
        drawn_mass += r->strata[h].mass;
    }

    /* normal equations of sum_p weight_p (d_p - x_p . u)^2 */
    for (long p = 0; p < r->n_pairs; p++) {
        double m = mult ? mult[p] : 1.0;
        if (m == 0.0) {
            continue;
        }
        double weight = m * pair_weight(r, &r->pairs[p], w->counts, drawn_mass, n_draws);
        PS_ASSERT(weight >= 0.0);
        const double * x = rows + (size_t)p * n;
        for (int i = 0; i < n; i++) {
            double wx = weight * x[i];
            double * a_row = w->a + (size_t)i * n;
            for (int j = 0; j <= i; j++) {
                a_row[j] += wx * x[j];
            }
            for (int c = 0; c < n_rhs; c++) {
                w->rhs[(size_t)c * n + i] += wx * d[(size_t)p * n_rhs + c];
            }
        }
    }
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            w->a[(size_t)i * n + j] = w->a[(size_t)j * n + i];
        }
    }
    return solve_projected(n, w->a, w->rhs, n_rhs, u);
}

/* Whether the bootstrap resamples pair p: a drawn pair of a stratum that
 * is not exhausted (an exhausted one is known exactly). */
static bool resampled(const regression * r, const pair_row * p) {
    const stratum * sh = &r->strata[p->stratum];
    return p->drawn && !(r->leverage && sh->drawn >= (long)sh->n_pairs);
}

static enum promptshap_status regression_fit(ps_sampler * sampler, const ps_store * s, promptshap_estimate * est,
                                             promptshap_error * err) {
    regression * r = (regression *)sampler;
    const int n = r->n;
    const int T = s->n_outputs;
    const long P = r->n_pairs;
    enum promptshap_status st = PROMPTSHAP_OK;

    const double * v_empty = s->values + (size_t)r->empty * T;
    const double * v_full = s->values + (size_t)r->full * T;
    memcpy(est->v_empty, v_empty, (size_t)T * sizeof(double));
    memcpy(est->v_full, v_full, (size_t)T * sizeof(double));

    double * rows = malloc((size_t)(P > 0 ? P : 1) * (size_t)n * sizeof(double));
    double * d_out = malloc((size_t)(P > 0 ? P : 1) * (size_t)T * sizeof(double));
    double * d_total = malloc((size_t)(P > 0 ? P : 1) * sizeof(double));
    double * u = malloc((size_t)T * (size_t)n * sizeof(double));
    double * u_boot = malloc((size_t)n * sizeof(double));
    double * mult = malloc((size_t)(P > 0 ? P : 1) * sizeof(double));
    double * sum = calloc((size_t)n, sizeof(double));
    double * sum_sq = calloc((size_t)n, sizeof(double));
    long * members_of = malloc((size_t)r->n_strata * sizeof(long));
    long * first_of = malloc(((size_t)r->n_strata + 1) * sizeof(long));
    long * order = malloc((size_t)(P > 0 ? P : 1) * sizeof(long));
    fit_work w = {
        .a = malloc((size_t)n * (size_t)n * sizeof(double)),
        .rhs = malloc((size_t)(T > 1 ? T : 1) * (size_t)n * sizeof(double)),
        .counts = malloc((size_t)r->n_strata * sizeof(double)),
    };
    if (!rows || !d_out || !d_total || !u || !u_boot || !mult || !sum || !sum_sq || !members_of || !first_of ||
        !order || !w.a || !w.rhs || !w.counts) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory fitting %ld pairs of %d units", P, n);
        goto cleanup;
    }

    /* each pair's centred row and differences */
    for (long p = 0; p < P; p++) {
        const uint64_t * m = s->members + (size_t)r->pairs[p].first * s->n_words;
        int size = 0;
        for (int i = 0; i < n; i++) {
            size += ps_mask_has(m, i);
        }
        double mean = (2.0 * size - n) / n;
        for (int i = 0; i < n; i++) {
            rows[(size_t)p * n + i] = (ps_mask_has(m, i) ? 1.0 : -1.0) - mean;
        }
        const double * a = s->values + (size_t)r->pairs[p].first * T;
        const double * b = s->values + (size_t)r->pairs[p].second * T;
        d_total[p] = 0.0;
        for (int t = 0; t < T; t++) {
            double c = v_full[t] - v_empty[t];
            double d = a[t] - b[t] - mean * c;
            d_out[(size_t)p * T + t] = d;
            d_total[p] += d;
        }
    }

    /* the point estimate, per output */
    if (!fit_sample(r, rows, NULL, d_out, T, &w, u)) {
        st = ps_fail(err, PROMPTSHAP_ERR_NUMERIC, "the regression of %ld pairs of %d units is singular", P, n);
        goto cleanup;
    }
    for (int i = 0; i < n; i++) {
        for (int t = 0; t < T; t++) {
            est->matrix[(size_t)i * T + t] = (v_full[t] - v_empty[t]) / n + u[(size_t)t * n + i];
        }
    }

    /* bootstrap: resample the drawn pairs with replacement within their
     * stratum (leverage) or among all draws (kernel); listed pairs stay */
    for (int h = 0; h <= r->n_strata; h++) {
        first_of[h] = 0;
    }
    long n_order = 0;
    for (int h = 0; h < r->n_strata; h++) {
        first_of[h] = n_order;
        for (long p = 0; p < P; p++) {
            bool group = r->leverage ? r->pairs[p].stratum == h : h == 0;
            if (resampled(r, &r->pairs[p]) && group) {
                order[n_order++] = p;
            }
        }
        members_of[h] = n_order - first_of[h];
    }
    uint64_t rng = r->params->seed ^ 0x5bd1e995b0075eedull;
    for (int b = 0; b < BOOTSTRAP_REPLICATES; b++) {
        for (long p = 0; p < P; p++) {
            mult[p] = resampled(r, &r->pairs[p]) ? 0.0 : 1.0;
        }
        for (int h = 0; h < r->n_strata; h++) {
            long count = members_of[h];
            for (long k = 0; k < count; k++) {
                long pick = first_of[h] + (long)ps_rng_below(&rng, (uint64_t)count);
                mult[order[pick]] += 1.0;
            }
        }
        if (!fit_sample(r, rows, mult, d_total, 1, &w, u_boot)) {
            continue;
        }
        for (int i = 0; i < n; i++) {
            sum[i] += u_boot[i];
            sum_sq[i] += u_boot[i] * u_boot[i];
        }
    }
    for (int i = 0; i < n; i++) {
        double mean = sum[i] / BOOTSTRAP_REPLICATES;
        double var = sum_sq[i] / BOOTSTRAP_REPLICATES - mean * mean;
        est->std_error[i] = var > 0 ? sqrt(var * BOOTSTRAP_REPLICATES / (BOOTSTRAP_REPLICATES - 1)) : 0.0;
    }

cleanup:
    free(rows);
    free(d_out);
    free(d_total);
    free(u);
    free(u_boot);
    free(mult);
    free(sum);
    free(sum_sq);
    free(members_of);
    free(first_of);
    free(order);
    free(w.a);
    free(w.rhs);
    free(w.counts);
    return st;
}

/*
 * Driver
 */

static enum promptshap_status run_regression(const promptshap_game * game,
                                             const struct promptshap_estimate_params * p, long budget,
                                             bool leverage, promptshap_estimate * est, promptshap_error * err) {
    const int n = game->n_players;
    const int W = PROMPTSHAP_MASK_WORDS(n);
    regression * r = calloc(1, sizeof(*r));
    if (!r) {
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for a regression of %d units", n);
    }
    r->base.grow = leverage ? leverage_grow : kernel_grow;
    r->base.fit = regression_fit;
    r->params = p;
    r->n = n;
    r->leverage = leverage;
    r->rng = p->seed;
    r->n_strata = n / 2;
    r->empty = r->full = -1;
    r->max_draws = 4 * budget;
    for (int a = 0; a < 64; a++) {
        for (int b = 0; b < 64; b++) {
            r->binom[a][b] = b > a ? 0 : (b == 0 || b == a) ? 1 : r->binom[a - 1][b - 1] + r->binom[a - 1][b];
        }
    }
    r->strata = calloc((size_t)(r->n_strata > 0 ? r->n_strata : 1), sizeof(stratum));
    r->mask = calloc((size_t)W, sizeof(uint64_t));
    r->scratch = malloc((size_t)n * sizeof(int));
    ps_store s = {0};
    enum promptshap_status st;
    if (!r->strata || !r->mask || !r->scratch || !ps_store_init(&s, W, game->n_outputs, (size_t)budget)) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for a regression of %d units", n);
        goto cleanup;
    }
    for (int h = 0; h < r->n_strata; h++) {
        stratum * sh = &r->strata[h];
        sh->size = h + 1;
        bool middle = 2 * sh->size == n;
        sh->universe = middle ? n - 1 : n;
        sh->n_pairs = binomial(sh->universe, sh->size);
        sh->row_mass = kernel_mass(n, sh->size);
        sh->mass = middle ? sh->row_mass : 2.0 * sh->row_mass;
    }
    if (!leverage) {
        kernel_plan(r, budget);
    }
    st = ps_run_rounds(&r->base, &s, game, p, budget, est, err);

cleanup:
    ps_store_free(&s);
    for (int h = 0; r->strata && h < r->n_strata; h++) {
        free(r->strata[h].ranks);
    }
    free(r->strata);
    free(r->pairs);
    free(r->mask);
    free(r->scratch);
    free(r);
    return st;
}

enum promptshap_status ps_run_kernel(const promptshap_game * game, const struct promptshap_estimate_params * p,
                                     long budget, promptshap_estimate * est, promptshap_error * err) {
    return run_regression(game, p, budget, false, est, err);
}

enum promptshap_status ps_run_leverage(const promptshap_game * game, const struct promptshap_estimate_params * p,
                                       long budget, promptshap_estimate * est, promptshap_error * err) {
    return run_regression(game, p, budget, true, est, err);
}
