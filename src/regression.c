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
 *
 * The gp method samples pairs as Leverage SHAP does and fits them by
 * Gaussian-process regression (see "Gaussian-process prior" below).
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
 * Gaussian-process prior (the gp method)
 *
 * In +-1 coordinates, x_i(S) = 1 when i is in S and -1 when it is not,
 * every game has the Walsh expansion v(S) = sum_U f_U chi_U(S) with
 * chi_U = prod_{i in U} x_i. By symmetry and efficiency the Shapley value of
 * chi_U is 0 for every player when |U| is even (chi_U(N) = chi_U(empty))
 * and 2 / |U| for each member of U when |U| is odd, so
 *   phi_i = sum over odd U containing i of 2 f_U / |U|.
 * Only the odd part o(S) = (v(S) - v(N \ S)) / 2 = sum over odd U of
 * f_U chi_U(S) matters, and a sampled pair gives it exactly at S.
 *
 * The estimate is the posterior mean of phi given o at N and at the first
 * member of each sampled pair, under a Gaussian prior on the odd Walsh
 * coefficients: flat on the n coefficients of degree 1 (they are fitted by
 * generalized least squares), and for each odd degree d >= 3 independent
 * with variance rho_d / C(n, d), rho_d = GP_DECAY^((d - 3) / 2), so the
 * total variance of each odd degree is GP_DECAY times that of the one
 * below. This is universal kriging: Gaussian-process regression (kriging)
 * with an unknown linear trend. The posterior mean is a fixed linear map of
 * the sampled values, applied to each output, and it interpolates o at N,
 * so efficiency holds. The standard errors are posterior standard
 * deviations, with the prior's scale estimated from the residuals.
 *
 * Covariances depend on Hamming distances through the normalized
 * Krawtchouk polynomials
 *   k_d(h; n) = sum_j (-1)^j C(h, j) C(n - h, d - j) / C(n, d),
 * the mean of chi_U(S) chi_U(T) over the d-subsets U when S and T differ in
 * h players. With psi_i the part of phi_i from degrees d >= 3 and b the
 * number of players other than i absent from T:
 *   Cov(o(S), o(T))  = sum_d rho_d k_d(h; n)
 *   Cov(psi_i, o(T)) = x_i(T) (2 / n) sum_d rho_d k_{d-1}(b; n - 1)
 *   Var(psi_i)       = (4 / n) sum_d rho_d / d
 */

/* The factor by which the prior variance falls from one odd degree to the
 * next. Chosen on the benchmark games (BENCHMARKS.md), where 0.3 to 0.5
 * give errors within about 10% of each other. */
#define GP_DECAY 0.4
/* Degrees whose weight rho_d falls below this are left out. */
#define GP_MIN_WEIGHT 1e-20
/* Candidate pairs per draw for the space-filling design (next_in_stratum).
 * On the 14-player benchmark games 16 candidates gave about a quarter less
 * error than plain random draws, and 32 or 64 no further gain.
 * NOTE: on the 8-player model game of BENCHMARKS.md they doubled the
 * error instead. The automatic method is exact there under the default
 * budget, so only a budget below 2^n set by hand meets this case. */
#define GP_CANDIDATES 16

/* log C(a, b) */
static double log_binomial(int a, int b) {
    return lgamma(a + 1.0) - lgamma(b + 1.0) - lgamma(a - b + 1.0);
}

/* k_d(h; n) as defined above; the absolute values of its terms sum to 1,
 * so the rounding error stays near machine precision. */
static double krawtchouk(int d, int h, int n) {
    double log_total = log_binomial(n, d);
    double sum = 0.0;
    for (int j = 0; j <= d && j <= h; j++) {
        if (d - j > n - h) {
            continue;
        }
        double term = exp(log_binomial(h, j) + log_binomial(n - h, d - j) - log_total);
        sum += j % 2 ? -term : term;
    }
    return sum;
}

/* The prior, tabulated: cov_o[h] for h = 0 .. n, cov_psi[b] for
 * b = 0 .. n - 1 (without the sign x_i(T)), and var_psi. */
typedef struct {
    double * cov_o;   /* [n + 1] */
    double * cov_psi; /* [n] */
    double var_psi;
} gp_prior;

static void gp_prior_fill(int n, gp_prior * prior) {
    memset(prior->cov_o, 0, (size_t)(n + 1) * sizeof(double));
    memset(prior->cov_psi, 0, (size_t)n * sizeof(double));
    prior->var_psi = 0.0;
    if (regression_fault) {
        /* independent residuals and no credit for interactions: ordinary
         * least squares on the degree-1 terms */
        prior->cov_o[0] = 1.0;
        return;
    }
    double rho = 1.0;
    for (int d = 3; d <= n && rho >= GP_MIN_WEIGHT; d += 2, rho *= GP_DECAY) {
        for (int h = 0; h <= n; h++) {
            prior->cov_o[h] += rho * krawtchouk(d, h, n);
        }
        for (int b = 0; b < n; b++) {
            prior->cov_psi[b] += rho * (2.0 / n) * krawtchouk(d - 1, b, n - 1);
        }
        prior->var_psi += rho * 4.0 / ((double)n * d);
    }
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
    int candidates;      /* gp: candidate pairs per draw, of which the least crowded is kept */
    gp_prior prior;      /* gp */
    uint64_t * mask;     /* [words] */
    uint64_t * best;     /* [words], the best candidate so far */
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

/* The sum of the squared prior covariances between the odd part at
 * mask and at the sample's rows (N and each pair's first member): small
 * for a coalition far from all of them. */
static double crowding(const regression * r, const ps_store * s, const uint64_t * mask) {
    const int W = PROMPTSHAP_MASK_WORDS(r->n);
    double sum = 0.0;
    for (long p = -1; p < r->n_pairs; p++) {
        const uint64_t * row = s->members + (size_t)(p < 0 ? r->full : r->pairs[p].first) * W;
        int h = 0;
        for (int w = 0; w < W; w++) {
            h += __builtin_popcountll(mask[w] ^ row[w]);
        }
        sum += r->prior.cov_o[h] * r->prior.cov_o[h];
    }
    return sum;
}

/* Sets r->mask to a pair of stratum h not drawn before (without
 * replacement); false when the stratum has none left. With candidates > 1
 * (gp), that many pairs are drawn and the least crowded one is kept, a
 * space-filling design. */
static bool next_in_stratum(regression * r, const ps_store * s, int h) {
    stratum * st = &r->strata[h];
    const size_t mask_size = (size_t)PROMPTSHAP_MASK_WORDS(r->n) * sizeof(uint64_t);
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
        /* the next steps of a Fisher-Yates shuffle put candidates at
         * positions j, j + 1, ...; the best one moves to position j */
        uint32_t j = (uint32_t)st->drawn;
        uint32_t left = (uint32_t)st->n_pairs - j;
        uint32_t n_candidates = 1;
        if (r->candidates > 1) {
            n_candidates = (uint32_t)r->candidates < left ? (uint32_t)r->candidates : left;
        }
        uint32_t best_at = j;
        double best_crowding = INFINITY;
        for (uint32_t c = j; c < j + n_candidates; c++) {
            uint32_t pick = c + (uint32_t)ps_rng_below(&r->rng, (uint64_t)st->n_pairs - c);
            uint32_t tmp = st->ranks[c];
            st->ranks[c] = st->ranks[pick];
            st->ranks[pick] = tmp;
            if (n_candidates > 1) {
                unrank(r, st->ranks[c], st->universe, st->size, r->mask);
                double crowd = crowding(r, s, r->mask);
                if (crowd < best_crowding) {
                    best_crowding = crowd;
                    best_at = c;
                }
            }
        }
        uint32_t tmp = st->ranks[j];
        st->ranks[j] = st->ranks[best_at];
        st->ranks[best_at] = tmp;
        unrank(r, st->ranks[j], st->universe, st->size, r->mask);
        st->drawn++;
        return true;
    }
    /* a stratum this large is sampled sparsely, so repeats are rare */
    int n_candidates = r->candidates > 1 ? r->candidates : 1;
    int found = 0;
    double best_crowding = INFINITY;
    for (int attempt = 0; attempt < 1000 && found < n_candidates; attempt++) {
        random_subset(r, st->universe, st->size, r->mask);
        if (ps_store_find(s, r->mask) >= 0) {
            continue;
        }
        found++;
        double crowd = n_candidates > 1 ? crowding(r, s, r->mask) : 0.0;
        if (crowd < best_crowding) {
            best_crowding = crowd;
            memcpy(r->best, r->mask, mask_size);
        }
    }
    if (found == 0) {
        return false;
    }
    memcpy(r->mask, r->best, mask_size);
    st->drawn++;
    return true;
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
    /* with nothing to resample the values are exact, and every replicate
     * would repeat them up to rounding */
    int n_replicates = n_order > 0 ? BOOTSTRAP_REPLICATES : 0;
    for (int b = 0; b < n_replicates; b++) {
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
        bool spread = n_replicates > 0 && var > 0;
        est->std_error[i] = spread ? sqrt(var * BOOTSTRAP_REPLICATES / (BOOTSTRAP_REPLICATES - 1)) : 0.0;
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
 * Fitting by Gaussian-process regression (the gp method; the prior is
 * described above, under "Gaussian-process prior")
 */

/* Factors the symmetric positive definite a (m x m, lower triangle read)
 * as l l^T with l lower triangular. Ridge times the mean diagonal entry is
 * added to the diagonal first. Returns false when a pivot is not positive. */
static bool cholesky(int m, const double * a, double ridge, double * l) {
    double trace = 0.0;
    for (int i = 0; i < m; i++) {
        trace += a[(size_t)i * m + i];
    }
    double shift = ridge * (trace > 0 ? trace / m : 1.0);
    for (int j = 0; j < m; j++) {
        const double * lj = l + (size_t)j * m;
        for (int i = j; i < m; i++) {
            double * li = l + (size_t)i * m;
            double sum = a[(size_t)i * m + j] + (i == j ? shift : 0.0);
            for (int k = 0; k < j; k++) {
                sum -= li[k] * lj[k];
            }
            if (i == j) {
                if (!(sum > 1e-14 * (trace > 0 ? trace / m : 1.0))) {
                    return false;
                }
                li[j] = sqrt(sum);
            } else {
                li[j] = sum / lj[j];
            }
        }
    }
    return true;
}

/* cholesky() with the smallest ridge of 0, 1e-12, 1e-10, ... 1e-4 that
 * succeeds; the ridge only matters when the sample nearly exhausts the
 * pairs, where the prior's covariance becomes singular. */
static bool cholesky_ridged(int m, const double * a, double * l) {
    for (double ridge = 0.0; ridge <= 1e-4; ridge = ridge == 0.0 ? 1e-12 : ridge * 100.0) {
        if (cholesky(m, a, ridge, l)) {
            return true;
        }
    }
    return false;
}

/* Overwrites b (m rows of width columns) with l^-1 b. */
static void forward_solve(int m, const double * l, double * b, int width) {
    for (int i = 0; i < m; i++) {
        double * bi = b + (size_t)i * width;
        const double * li = l + (size_t)i * m;
        for (int k = 0; k < i; k++) {
            const double * bk = b + (size_t)k * width;
            double c = li[k];
            for (int c2 = 0; c2 < width; c2++) {
                bi[c2] -= c * bk[c2];
            }
        }
        for (int c2 = 0; c2 < width; c2++) {
            bi[c2] /= li[i];
        }
    }
}

/* Overwrites x (n) with (l l^T)^-1 x. */
static void cholesky_solve(int n, const double * l, double * x) {
    for (int i = 0; i < n; i++) {
        double sum = x[i];
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
}

/* Whether the sample contains every pair, so that the regression is exact. */
static bool all_listed(const regression * r) {
    for (int h = 0; h < r->n_strata; h++) {
        if (r->strata[h].drawn < (long)r->strata[h].n_pairs) {
            return false;
        }
    }
    return true;
}

static enum promptshap_status gp_fit(ps_sampler * sampler, const ps_store * s, promptshap_estimate * est,
                                     promptshap_error * err) {
    regression * r = (regression *)sampler;
    const int n = r->n;
    const int T = s->n_outputs;
    /* with every pair sampled, or no degree above 1, the regression is exact */
    if (n < 3 || all_listed(r)) {
        return regression_fit(sampler, s, est, err);
    }
    const int m = (int)r->n_pairs + 1; /* row 0 is N, row t > 0 pair t - 1 */
    /* columns of the right-hand sides: X (n), Cov(psi, o) (n), o per output (T), o of the totals (1) */
    const int width = 2 * n + T + 1;
    const int col_psi = n, col_out = 2 * n, col_total = 2 * n + T;
    enum promptshap_status st = PROMPTSHAP_OK;

    const gp_prior * prior = &r->prior;
    double * cov = calloc((size_t)m * (size_t)m, sizeof(double));   /* [m][m] */
    double * chol = malloc((size_t)m * (size_t)m * sizeof(double)); /* [m][m] */
    double * rhs = malloc((size_t)m * (size_t)width * sizeof(double)); /* [m][width] */
    double * gram = malloc((size_t)n * (size_t)n * sizeof(double));
    double * gram_chol = malloc((size_t)n * (size_t)n * sizeof(double));
    double * cross = malloc((size_t)n * (size_t)n * sizeof(double)); /* [n][n], Z^T K */
    double * beta = malloc((size_t)n * sizeof(double));
    double * a = malloc((size_t)n * sizeof(double));
    int64_t * rows = malloc((size_t)m * sizeof(int64_t));
    if (!cov || !chol || !rhs || !gram || !gram_chol || !cross || !beta || !a || !rows) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory fitting %d pairs of %d units", m - 1, n);
        goto cleanup;
    }

    /* the rows' coalitions: N, then each pair's first member */
    rows[0] = r->full;
    for (int t = 1; t < m; t++) {
        rows[t] = r->pairs[t - 1].first;
    }
    const double * v_empty = s->values + (size_t)r->empty * T;
    const double * v_full = s->values + (size_t)r->full * T;
    memcpy(est->v_empty, v_empty, (size_t)T * sizeof(double));
    memcpy(est->v_full, v_full, (size_t)T * sizeof(double));

    /* the prior covariance of o between rows, by Hamming distance */
    for (int t = 0; t < m; t++) {
        const uint64_t * mt = s->members + (size_t)rows[t] * s->n_words;
        for (int u = 0; u <= t; u++) {
            const uint64_t * mu = s->members + (size_t)rows[u] * s->n_words;
            int h = 0;
            for (int w = 0; w < s->n_words; w++) {
                h += __builtin_popcountll(mt[w] ^ mu[w]);
            }
            cov[(size_t)t * m + u] = prior->cov_o[h];
            cov[(size_t)u * m + t] = prior->cov_o[h];
        }
    }

    /* right-hand sides: each row's +-1 entries, its covariances with psi and
     * its odd part per output and for the totals */
    for (int t = 0; t < m; t++) {
        const uint64_t * mt = s->members + (size_t)rows[t] * s->n_words;
        double * row = rhs + (size_t)t * width;
        int absent = 0;
        for (int i = 0; i < n; i++) {
            absent += !ps_mask_has(mt, i);
        }
        for (int i = 0; i < n; i++) {
            double x = ps_mask_has(mt, i) ? 1.0 : -1.0;
            row[i] = x;
            row[col_psi + i] = x * prior->cov_psi[absent - (x < 0)];
        }
        const double * first = s->values + (size_t)rows[t] * T;
        const double * second = t == 0 ? v_empty : s->values + (size_t)r->pairs[t - 1].second * T;
        row[col_total] = 0.0;
        for (int o = 0; o < T; o++) {
            row[col_out + o] = 0.5 * (first[o] - second[o]);
            row[col_total] += row[col_out + o];
        }
    }

    /* whiten: L^-1 of every column, with cov = L L^T */
    if (!cholesky_ridged(m, cov, chol)) {
        st = ps_fail(err, PROMPTSHAP_ERR_NUMERIC, "the covariance of %d sampled pairs of %d units is singular", m - 1,
                     n);
        goto cleanup;
    }
    forward_solve(m, chol, rhs, width);

    /* gram = Z^T Z and cross = Z^T K, with Z and K the whitened X and Cov(psi, o) */
    memset(gram, 0, (size_t)n * (size_t)n * sizeof(double));
    memset(cross, 0, (size_t)n * (size_t)n * sizeof(double));
    for (int t = 0; t < m; t++) {
        const double * row = rhs + (size_t)t * width;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                gram[(size_t)i * n + j] += row[i] * row[j];
                cross[(size_t)i * n + j] += row[i] * row[col_psi + j];
            }
        }
    }
    if (!cholesky_ridged(n, gram, gram_chol)) {
        st = ps_fail(err, PROMPTSHAP_ERR_NUMERIC, "the regression of %d pairs of %d units is singular", m - 1, n);
        goto cleanup;
    }

    /* per output, then for the totals: beta = (Z^T Z)^-1 Z^T w, and
     * phi = 2 beta + K^T (w - Z beta) for the whitened odd parts w */
    double residual_sq = 0.0;
    for (int c = col_out; c <= col_total; c++) {
        for (int i = 0; i < n; i++) {
            double sum = 0.0;
            for (int t = 0; t < m; t++) {
                sum += rhs[(size_t)t * width + i] * rhs[(size_t)t * width + c];
            }
            beta[i] = sum;
        }
        cholesky_solve(n, gram_chol, beta);
        for (int i = 0; i < n; i++) {
            a[i] = 2.0 * beta[i];
        }
        for (int t = 0; t < m; t++) {
            const double * row = rhs + (size_t)t * width;
            double res = row[c];
            for (int j = 0; j < n; j++) {
                res -= row[j] * beta[j];
            }
            for (int i = 0; i < n; i++) {
                a[i] += row[col_psi + i] * res;
            }
            if (c == col_total) {
                residual_sq += res * res;
            }
        }
        if (c == col_total) {
            break;
        }
        /* the posterior mean interpolates o(N), so this removes rounding only */
        int o = c - col_out;
        double gap = v_full[o] - v_empty[o];
        for (int i = 0; i < n; i++) {
            gap -= a[i];
        }
        for (int i = 0; i < n; i++) {
            est->matrix[(size_t)i * T + o] = a[i] + gap / n;
        }
    }

    /* standard errors: the posterior variance of phi_i,
     * Var(psi_i) - |K_i|^2 + g_i^T (Z^T Z)^-1 g_i with g_i = 2 e_i - Z^T K_i,
     * times the prior scale estimated from the residuals of the totals */
    double scale = m > n ? residual_sq / (m - n) : 0.0;
    for (int i = 0; i < n; i++) {
        double k_sq = 0.0;
        for (int t = 0; t < m; t++) {
            double k = rhs[(size_t)t * width + col_psi + i];
            k_sq += k * k;
        }
        for (int j = 0; j < n; j++) {
            a[j] = (i == j ? 2.0 : 0.0) - cross[(size_t)j * n + i];
            beta[j] = a[j];
        }
        cholesky_solve(n, gram_chol, beta);
        double var = prior->var_psi - k_sq;
        for (int j = 0; j < n; j++) {
            var += a[j] * beta[j];
        }
        est->std_error[i] = var > 0 ? sqrt(var * scale) : 0.0;
    }

cleanup:
    free(cov);
    free(chol);
    free(rhs);
    free(gram);
    free(gram_chol);
    free(cross);
    free(beta);
    free(a);
    free(rows);
    return st;
}

/*
 * Driver
 */

/* Runs KernelSHAP, Leverage SHAP or gp (method); gp samples as Leverage
 * SHAP does. */
static enum promptshap_status run_regression(const promptshap_game * game,
                                             const struct promptshap_estimate_params * p, long budget,
                                             enum promptshap_method method, promptshap_estimate * est,
                                             promptshap_error * err) {
    const int n = game->n_players;
    const int W = PROMPTSHAP_MASK_WORDS(n);
    const bool leverage = method != PROMPTSHAP_METHOD_KERNEL;
    regression * r = calloc(1, sizeof(*r));
    if (!r) {
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for a regression of %d units", n);
    }
    r->base.grow = leverage ? leverage_grow : kernel_grow;
    r->base.fit = method == PROMPTSHAP_METHOD_GP ? gp_fit : regression_fit;
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
    r->best = calloc((size_t)W, sizeof(uint64_t));
    r->scratch = malloc((size_t)n * sizeof(int));
    r->prior.cov_o = malloc((size_t)(n + 1) * sizeof(double));
    r->prior.cov_psi = malloc((size_t)n * sizeof(double));
    ps_store s = {0};
    enum promptshap_status st;
    if (!r->strata || !r->mask || !r->best || !r->scratch || !r->prior.cov_o || !r->prior.cov_psi ||
        !ps_store_init(&s, W, game->n_outputs, (size_t)budget)) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for a regression of %d units", n);
        goto cleanup;
    }
    if (method == PROMPTSHAP_METHOD_GP) {
        gp_prior_fill(n, &r->prior);
        r->candidates = GP_CANDIDATES;
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
    free(r->best);
    free(r->scratch);
    free(r->prior.cov_o);
    free(r->prior.cov_psi);
    free(r);
    return st;
}

enum promptshap_status ps_run_kernel(const promptshap_game * game, const struct promptshap_estimate_params * p,
                                     long budget, promptshap_estimate * est, promptshap_error * err) {
    return run_regression(game, p, budget, PROMPTSHAP_METHOD_KERNEL, est, err);
}

enum promptshap_status ps_run_leverage(const promptshap_game * game, const struct promptshap_estimate_params * p,
                                       long budget, promptshap_estimate * est, promptshap_error * err) {
    return run_regression(game, p, budget, PROMPTSHAP_METHOD_LEVERAGE, est, err);
}

enum promptshap_status ps_run_gp(const promptshap_game * game, const struct promptshap_estimate_params * p,
                                 long budget, promptshap_estimate * est, promptshap_error * err) {
    return run_regression(game, p, budget, PROMPTSHAP_METHOD_GP, est, err);
}
