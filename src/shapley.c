/* SPDX-License-Identifier: MIT
 *
 * Estimators of Shapley values on a game with vector values: exact
 * enumeration, Monte Carlo over antithetic permutation pairs, and
 * leave-one-out; the coalition store and the round loop the sampled
 * estimators share; the method choice and the budget rules. The regression
 * estimators (KernelSHAP, Leverage SHAP, gp) live in regression.c, Banzhaf
 * sampling in banzhaf.c. Each distinct coalition is evaluated once. Every
 * estimator is linear in the value function for a fixed sample, so the
 * per-output matrix comes at no extra evaluations.
 * The game's eval callback does the model work.
 */
#include "estimate.h"

#include <math.h>
#include <string.h>

const char * promptshap_method_name(enum promptshap_method method) {
    switch (method) {
        case PROMPTSHAP_METHOD_AUTO:        return "auto";
        case PROMPTSHAP_METHOD_EXACT:       return "exact";
        case PROMPTSHAP_METHOD_PERMUTATION: return "permutation";
        case PROMPTSHAP_METHOD_LOO:         return "loo";
        case PROMPTSHAP_METHOD_KERNEL:      return "kernel";
        case PROMPTSHAP_METHOD_LEVERAGE:    return "leverage";
        case PROMPTSHAP_METHOD_BANZHAF:     return "banzhaf";
        case PROMPTSHAP_METHOD_GP:          return "gp";
    }
    return NULL;
}

const char * promptshap_method_index(enum promptshap_method method) {
    switch (method) {
        case PROMPTSHAP_METHOD_LOO:     return "leave-one-out";
        case PROMPTSHAP_METHOD_BANZHAF: return "banzhaf";
        default:                        return "shapley";
    }
}

bool promptshap_method_parse(const char * name, enum promptshap_method * method) {
    for (int m = PROMPTSHAP_METHOD_AUTO; m <= PROMPTSHAP_METHOD_GP; m++) {
        if (strcmp(name, promptshap_method_name((enum promptshap_method)m)) == 0) {
            *method = (enum promptshap_method)m;
            return true;
        }
    }
    return false;
}

struct promptshap_estimate_params promptshap_estimate_default_params(void) {
    struct promptshap_estimate_params p = {
        .method = PROMPTSHAP_METHOD_AUTO,
        .n_samples = 64,
        .seed = 1,
        .max_group = 32,
        .progress = NULL,
        .progress_user_data = NULL,
        .budget = 0,
        .tolerance = 0.0,
        .interactions = false,
    };
    return p;
}

void promptshap_estimate_free(promptshap_estimate * est) {
    if (!est) {
        return;
    }
    free(est->values);
    free(est->std_error);
    free(est->matrix);
    free(est->v_full);
    free(est->v_empty);
    free(est->interactions);
    free(est);
}

static promptshap_estimate * estimate_alloc(int n_players, int n_outputs) {
    promptshap_estimate * est = calloc(1, sizeof(*est));
    if (!est) {
        return NULL;
    }
    est->n_players = n_players;
    est->n_outputs = n_outputs;
    est->values = calloc((size_t)n_players, sizeof(double));
    est->std_error = calloc((size_t)n_players, sizeof(double));
    est->matrix = calloc((size_t)n_players * (size_t)n_outputs, sizeof(double));
    est->v_full = calloc((size_t)n_outputs, sizeof(double));
    est->v_empty = calloc((size_t)n_outputs, sizeof(double));
    if (!est->values || !est->std_error || !est->matrix || !est->v_full || !est->v_empty) {
        promptshap_estimate_free(est);
        return NULL;
    }
    return est;
}

void ps_estimate_finish(promptshap_estimate * est) {
    double sum_values = 0.0;
    est->v_full_total = 0.0;
    est->v_empty_total = 0.0;
    for (int t = 0; t < est->n_outputs; t++) {
        est->v_full_total += est->v_full[t];
        est->v_empty_total += est->v_empty[t];
    }
    for (int i = 0; i < est->n_players; i++) {
        double v = 0.0;
        for (int t = 0; t < est->n_outputs; t++) {
            v += est->matrix[(size_t)i * est->n_outputs + t];
        }
        est->values[i] = v;
        sum_values += v;
    }
    est->efficiency_gap = fabs(sum_values - (est->v_full_total - est->v_empty_total));
}

static bool report_progress(const struct promptshap_estimate_params * p, long done, long total) {
    return !p->progress || p->progress(p->progress_user_data, done, total);
}

/*
 * Coalition store: distinct coalitions with their values, found by hash.
 */

static uint64_t mask_hash(const uint64_t * m, int n_words) {
    uint64_t h = 0x243f6a8885a308d3ull;
    for (int w = 0; w < n_words; w++) {
        uint64_t s = h ^ m[w];
        h = ps_rng_next(&s);
    }
    return h;
}

void ps_store_free(ps_store * s) {
    free(s->members);
    free(s->values);
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

bool ps_store_init(ps_store * s, int n_words, int n_outputs, size_t expected) {
    memset(s, 0, sizeof(*s));
    s->n_words = n_words;
    s->n_outputs = n_outputs;
    s->n_slots = 64;
    while (s->n_slots < 2 * expected) {
        s->n_slots *= 2;
    }
    s->slots = malloc(s->n_slots * sizeof(int64_t));
    if (!s->slots) {
        return false;
    }
    for (size_t k = 0; k < s->n_slots; k++) {
        s->slots[k] = -1;
    }
    return true;
}

static bool store_grow_slots(ps_store * s) {
    size_t n_slots = s->n_slots * 2;
    int64_t * slots = malloc(n_slots * sizeof(int64_t));
    if (!slots) {
        return false;
    }
    for (size_t k = 0; k < n_slots; k++) {
        slots[k] = -1;
    }
    for (size_t idx = 0; idx < s->n; idx++) {
        size_t k = mask_hash(s->members + idx * s->n_words, s->n_words) & (n_slots - 1);
        while (slots[k] >= 0) {
            k = (k + 1) & (n_slots - 1);
        }
        slots[k] = (int64_t)idx;
    }
    free(s->slots);
    s->slots = slots;
    s->n_slots = n_slots;
    return true;
}

/* The slot that contains the coalition, or the empty slot where it would go. */
static size_t store_slot(const ps_store * s, const uint64_t * m) {
    size_t k = mask_hash(m, s->n_words) & (s->n_slots - 1);
    while (s->slots[k] >= 0) {
        int64_t idx = s->slots[k];
        if (memcmp(s->members + (size_t)idx * s->n_words, m, (size_t)s->n_words * sizeof(uint64_t)) == 0) {
            break;
        }
        k = (k + 1) & (s->n_slots - 1);
    }
    return k;
}

int64_t ps_store_find(const ps_store * s, const uint64_t * m) {
    return s->slots[store_slot(s, m)];
}

int64_t ps_store_add(ps_store * s, const uint64_t * m) {
    if (2 * (s->n + 1) > s->n_slots && !store_grow_slots(s)) {
        return -1;
    }
    size_t k = store_slot(s, m);
    if (s->slots[k] >= 0) {
        return s->slots[k];
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint64_t * members = realloc(s->members, cap * (size_t)s->n_words * sizeof(uint64_t));
        if (!members) {
            return -1;
        }
        s->members = members;
        double * values = realloc(s->values, cap * (size_t)s->n_outputs * sizeof(double));
        if (!values) {
            return -1;
        }
        s->values = values;
        s->cap = cap;
    }
    memcpy(s->members + s->n * s->n_words, m, (size_t)s->n_words * sizeof(uint64_t));
    s->slots[k] = (int64_t)s->n;
    return (int64_t)s->n++;
}

void ps_store_truncate(ps_store * s, size_t n_keep) {
    PS_ASSERT(n_keep >= s->n_evaluated);
    while (s->n > n_keep) {
        size_t idx = s->n - 1;
        size_t k = store_slot(s, s->members + idx * s->n_words);
        PS_ASSERT(s->slots[k] == (int64_t)idx);
        s->slots[k] = -1;
        s->n--;
    }
}

double ps_store_total(const ps_store * s, int64_t idx) {
    const double * v = s->values + (size_t)idx * s->n_outputs;
    double total = 0.0;
    for (int t = 0; t < s->n_outputs; t++) {
        total += v[t];
    }
    return total;
}

enum promptshap_status ps_store_eval(ps_store * s, const promptshap_game * game,
                                     const struct promptshap_estimate_params * p, long total,
                                     promptshap_error * err) {
    while (s->n_evaluated < s->n) {
        size_t done = s->n_evaluated;
        size_t group = s->n - done;
        if (group > (size_t)p->max_group) {
            group = (size_t)p->max_group;
        }
        enum promptshap_status st = game->eval(game->user_data, s->members + done * s->n_words, (int)group,
                                               s->values + done * s->n_outputs, err);
        if (st == PROMPTSHAP_ERR_CANCELLED) {
            return ps_fail(err, st, "cancelled after %zu of %ld coalitions", done, total);
        }
        if (st != PROMPTSHAP_OK) {
            return st;
        }
        s->n_evaluated += group;
        if (!report_progress(p, (long)s->n_evaluated, total)) {
            return ps_fail(err, PROMPTSHAP_ERR_CANCELLED, "cancelled after %zu of %ld coalitions", s->n_evaluated,
                           total);
        }
    }
    return PROMPTSHAP_OK;
}

/*
 * Rounds: grow the sample, evaluate what is new, fit, and stop at the
 * budget or once the standard errors are small enough.
 */

double ps_estimate_se_ratio(const promptshap_estimate * est) {
    double max_se = 0.0, lo = est->values[0], hi = est->values[0];
    for (int i = 0; i < est->n_players; i++) {
        max_se = fmax(max_se, est->std_error[i]);
        lo = fmin(lo, est->values[i]);
        hi = fmax(hi, est->values[i]);
    }
    if (max_se == 0.0) {
        return 0.0;
    }
    return hi > lo ? max_se / (hi - lo) : INFINITY;
}

enum promptshap_status ps_run_rounds(ps_sampler * sampler, ps_store * s, const promptshap_game * game,
                                     const struct promptshap_estimate_params * p, long budget,
                                     promptshap_estimate * est, promptshap_error * err) {
    const int n = game->n_players;
    long limit = budget;
    if (p->tolerance > 0) {
        limit = budget / 16 > 4L * n + 2 ? budget / 16 : 4L * n + 2;
        if (limit > budget) {
            limit = budget;
        }
    }
    for (;;) {
        bool more = true;
        enum promptshap_status st = sampler->grow(sampler, s, (size_t)limit, &more, err);
        if (st == PROMPTSHAP_OK) {
            st = ps_store_eval(s, game, p, budget, err);
        }
        if (st == PROMPTSHAP_OK) {
            memset(est->matrix, 0, (size_t)n * (size_t)game->n_outputs * sizeof(double));
            st = sampler->fit(sampler, s, est, err);
        }
        if (st != PROMPTSHAP_OK) {
            return st;
        }
        ps_estimate_finish(est);
        est->se_ratio = ps_estimate_se_ratio(est);
        est->n_evaluations = (long)s->n;
        if (!more || limit >= budget) {
            return PROMPTSHAP_OK;
        }
        if (p->tolerance > 0 && est->se_ratio < p->tolerance) {
            est->stopped_early = true;
            return PROMPTSHAP_OK;
        }
        limit = limit + (limit + 1) / 2;
        if (limit > budget) {
            limit = budget;
        }
    }
}

/*
 * Exact enumeration
 *
 * phi_i = sum over S not containing i of w(|S|) (v(S + i) - v(S)), with
 * w(s) = s! (n - s - 1)! / n!. Written per coalition, v(S) enters phi_i with
 * +w(|S| - 1) when i is in S and -w(|S|) when it is not, so the values of
 * the 2^n coalitions are folded into the result as they arrive and never
 * stored together. With interactions requested, the 2^n totals are kept.
 */

static enum promptshap_status run_exact(const promptshap_game * game, const struct promptshap_estimate_params * p,
                                        promptshap_estimate * est, promptshap_error * err) {
    const int n = game->n_players;
    const int T = game->n_outputs;
    const long total = 1L << n;
    const int group = p->max_group;

    /* w[s] = 1 / (n * C(n - 1, s)), exact in double for n <= 20 */
    double w[PROMPTSHAP_EXACT_MAX_UNITS + 1];
    for (int s = 0; s < n; s++) {
        double c = 1.0;
        for (int k = 1; k <= s; k++) {
            c = c * (double)(n - 1 - s + k) / (double)k;
        }
        w[s] = 1.0 / ((double)n * c);
    }

    uint64_t * members = malloc((size_t)group * sizeof(uint64_t));
    double * values = malloc((size_t)group * (size_t)T * sizeof(double));
    double * totals = p->interactions ? malloc((size_t)total * sizeof(double)) : NULL;
    if (!members || !values || (p->interactions && !totals)) {
        free(members);
        free(values);
        free(totals);
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for a group of %d coalitions", group);
    }

    enum promptshap_status st = PROMPTSHAP_OK;
    for (long first = 0; first < total && st == PROMPTSHAP_OK; first += group) {
        int m = (int)((total - first < group) ? total - first : group);
        for (int k = 0; k < m; k++) {
            members[k] = (uint64_t)(first + k);
        }
        st = game->eval(game->user_data, members, m, values, err);
        if (st == PROMPTSHAP_ERR_CANCELLED) {
            ps_fail(err, st, "cancelled after %ld of %ld coalitions", first, total);
        }
        if (st != PROMPTSHAP_OK) {
            break;
        }

        /* fold each coalition's values into the matrix */
        for (int k = 0; k < m; k++) {
            uint64_t mask = members[k];
            int size = __builtin_popcountll(mask);
            const double * v = values + (size_t)k * T;
            if (mask == 0) {
                memcpy(est->v_empty, v, (size_t)T * sizeof(double));
            }
            if (mask == (uint64_t)total - 1) {
                memcpy(est->v_full, v, (size_t)T * sizeof(double));
            }
            for (int i = 0; i < n; i++) {
                double c = ((mask >> i) & 1u) ? w[size - 1] : -w[size];
                double * row = est->matrix + (size_t)i * T;
                for (int t = 0; t < T; t++) {
                    row[t] += c * v[t];
                }
            }
            if (totals) {
                double sum = 0.0;
                for (int t = 0; t < T; t++) {
                    sum += v[t];
                }
                totals[mask] = sum;
            }
        }
        if (!report_progress(p, first + m, total)) {
            st = ps_fail(err, PROMPTSHAP_ERR_CANCELLED, "cancelled after %ld of %ld coalitions", first + m, total);
        }
    }
    if (st == PROMPTSHAP_OK && totals) {
        est->interactions = malloc((size_t)n * (size_t)n * sizeof(double));
        if (!est->interactions) {
            st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %d x %d interactions", n, n);
        } else {
            ps_interactions_from_table(n, totals, est->interactions);
        }
    }
    free(members);
    free(values);
    free(totals);
    est->n_evaluations = total;
    return st;
}

/*
 * Leave-one-out: v(N) - v(N without i), from n + 2 coalitions (fewer when
 * they coincide, as for n = 1).
 */

static enum promptshap_status run_loo(const promptshap_game * game, const struct promptshap_estimate_params * p,
                                      promptshap_estimate * est, promptshap_error * err) {
    const int n = game->n_players;
    const int T = game->n_outputs;
    const int W = PROMPTSHAP_MASK_WORDS(n);
    ps_store s = {0};
    uint64_t * m = calloc((size_t)W, sizeof(uint64_t));
    int64_t * loo = malloc((size_t)n * sizeof(int64_t));
    enum promptshap_status st = PROMPTSHAP_OK;
    if (!m || !loo || !ps_store_init(&s, W, T, (size_t)n + 2)) {
        free(m);
        free(loo);
        ps_store_free(&s);
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %d units", n);
    }

    int64_t empty = ps_store_add(&s, m);
    for (int i = 0; i < n; i++) {
        ps_mask_set(m, i);
    }
    int64_t full = ps_store_add(&s, m);
    bool ok = empty >= 0 && full >= 0;
    for (int i = 0; i < n && ok; i++) {
        ps_mask_clear(m, i);
        loo[i] = ps_store_add(&s, m);
        ok = loo[i] >= 0;
        ps_mask_set(m, i);
    }
    if (!ok) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %d units", n);
        goto done;
    }

    st = ps_store_eval(&s, game, p, (long)s.n, err);
    if (st != PROMPTSHAP_OK) {
        goto done;
    }
    memcpy(est->v_empty, s.values + (size_t)empty * T, (size_t)T * sizeof(double));
    memcpy(est->v_full, s.values + (size_t)full * T, (size_t)T * sizeof(double));
    for (int i = 0; i < n; i++) {
        const double * v = s.values + (size_t)loo[i] * T;
        for (int t = 0; t < T; t++) {
            est->matrix[(size_t)i * T + t] = est->v_full[t] - v[t];
        }
    }
    est->n_evaluations = (long)s.n;

done:
    ps_store_free(&s);
    free(m);
    free(loo);
    return st;
}

/*
 * Permutation sampling with antithetic pairs
 *
 * Each pair is a uniform random permutation and its reverse; the pair's
 * estimate of phi_i is the mean of i's marginal contributions in the two
 * orders. Pairs are independent, so the standard error of the mean over P
 * pairs is the sample standard deviation of the pair estimates over sqrt(P).
 * A unit that comes early in one order comes late in the other, which
 * cancels much of the variance from the size of the preceding coalition.
 * Pairs are drawn until max_pairs are drawn or the next pair would take
 * the store past the limit.
 */

typedef struct {
    ps_sampler base;
    int n;
    int max_pairs;
    int n_pairs;
    int cap_pairs;
    uint64_t rng;
    int * perm;        /* [2 * cap_pairs][n], orders 2q and 2q + 1 form pair q */
    int64_t * prefix;  /* [2 * cap_pairs][n + 1], store index of each order's prefixes */
    uint64_t * mask;   /* [words] */
    double * pair_est; /* [n] */
    double * sum;      /* [n] */
    double * sum_sq;   /* [n] */
} permutation_sampler;

/* The estimate of each player's total value from antithetic pair q: the
 * mean of its marginal contributions in the pair's two orders. */
static void pair_estimates(const ps_store * s, const permutation_sampler * ps, int q, double * pair_est) {
    const int n = ps->n;
    const int T = s->n_outputs;
    for (int i = 0; i < n; i++) {
        pair_est[i] = 0.0;
    }
    for (int o = 2 * q; o < 2 * q + 2; o++) {
        const int64_t * pre = ps->prefix + (size_t)o * (n + 1);
        for (int k = 0; k < n; k++) {
            int i = ps->perm[(size_t)o * n + k];
            const double * after = s->values + (size_t)pre[k + 1] * T;
            const double * before = s->values + (size_t)pre[k] * T;
            double d = 0.0;
            for (int t = 0; t < T; t++) {
                d += after[t] - before[t];
            }
            pair_est[i] += 0.5 * d;
        }
    }
}

static enum promptshap_status permutation_grow(ps_sampler * sampler, ps_store * s, size_t limit, bool * more,
                                               promptshap_error * err) {
    permutation_sampler * ps = (permutation_sampler *)sampler;
    const int n = ps->n;
    const int W = PROMPTSHAP_MASK_WORDS(n);
    while (ps->n_pairs < ps->max_pairs) {
        if (ps->n_pairs == ps->cap_pairs) {
            int cap = ps->cap_pairs ? 2 * ps->cap_pairs : 16;
            int * perm = realloc(ps->perm, (size_t)2 * cap * (size_t)n * sizeof(int));
            if (perm) {
                ps->perm = perm;
            }
            int64_t * prefix = realloc(ps->prefix, (size_t)2 * cap * (size_t)(n + 1) * sizeof(int64_t));
            if (prefix) {
                ps->prefix = prefix;
            }
            if (!perm || !prefix) {
                return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %d permutations", 2 * cap);
            }
            ps->cap_pairs = cap;
        }

        /* a uniform order by Fisher-Yates, and its reverse */
        int q = ps->n_pairs;
        int * a = ps->perm + (size_t)(2 * q) * n;
        int * b = ps->perm + (size_t)(2 * q + 1) * n;
        for (int i = 0; i < n; i++) {
            a[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = (int)ps_rng_below(&ps->rng, (uint64_t)i + 1);
            int tmp = a[i];
            a[i] = a[j];
            a[j] = tmp;
        }
        for (int i = 0; i < n; i++) {
            b[i] = a[n - 1 - i];
        }

        /* their prefixes, taken back when they do not fit the limit */
        size_t n_before = s->n;
        for (int o = 2 * q; o < 2 * q + 2; o++) {
            memset(ps->mask, 0, (size_t)W * sizeof(uint64_t));
            int64_t * pre = ps->prefix + (size_t)o * (n + 1);
            pre[0] = ps_store_add(s, ps->mask);
            for (int k = 0; k < n && pre[k] >= 0; k++) {
                ps_mask_set(ps->mask, ps->perm[(size_t)o * n + k]);
                pre[k + 1] = ps_store_add(s, ps->mask);
            }
            if (pre[n] < 0) {
                return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for the coalitions of %d permutations",
                               2 * q + 2);
            }
        }
        if (s->n > limit) {
            ps_store_truncate(s, n_before);
            *more = true;
            return PROMPTSHAP_OK;
        }
        ps->n_pairs++;
    }
    *more = false;
    return PROMPTSHAP_OK;
}

static enum promptshap_status permutation_fit(ps_sampler * sampler, const ps_store * s, promptshap_estimate * est,
                                              promptshap_error * err) {
    permutation_sampler * ps = (permutation_sampler *)sampler;
    const int n = ps->n;
    const int T = s->n_outputs;
    const int n_pairs = ps->n_pairs;
    const int n_orders = 2 * n_pairs;
    if (n_pairs < 2) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT,
                       "the budget of %zu coalitions is too small for 2 antithetic permutation pairs of %d units",
                       s->n, n);
    }

    /* the matrix is the mean marginal contribution per output over all orders */
    for (int o = 0; o < n_orders; o++) {
        const int64_t * pre = ps->prefix + (size_t)o * (n + 1);
        for (int k = 0; k < n; k++) {
            int i = ps->perm[(size_t)o * n + k];
            const double * after = s->values + (size_t)pre[k + 1] * T;
            const double * before = s->values + (size_t)pre[k] * T;
            double * row = est->matrix + (size_t)i * T;
            for (int t = 0; t < T; t++) {
                row[t] += (after[t] - before[t]) / n_orders;
            }
        }
    }

    /* standard errors from the spread of the per-pair estimates of the
     * totals, in two passes (mean, then squared deviations) so that equal
     * pair estimates give exactly zero */
    memset(ps->sum, 0, (size_t)n * sizeof(double));
    memset(ps->sum_sq, 0, (size_t)n * sizeof(double));
    for (int pass = 0; pass < 2; pass++) {
        for (int q = 0; q < n_pairs; q++) {
            pair_estimates(s, ps, q, ps->pair_est);
            for (int i = 0; i < n; i++) {
                if (pass == 0) {
                    ps->sum[i] += ps->pair_est[i];
                } else {
                    double d = ps->pair_est[i] - ps->sum[i] / n_pairs;
                    ps->sum_sq[i] += d * d;
                }
            }
        }
    }
    for (int i = 0; i < n; i++) {
        est->std_error[i] = sqrt(ps->sum_sq[i] / (n_pairs - 1) / n_pairs);
    }

    memcpy(est->v_full, s->values + (size_t)ps->prefix[n] * T, (size_t)T * sizeof(double));
    memcpy(est->v_empty, s->values + (size_t)ps->prefix[0] * T, (size_t)T * sizeof(double));
    est->n_samples = n_orders;
    return PROMPTSHAP_OK;
}

/* budget > 0 caps the distinct coalitions; budget 0 draws n_samples
 * permutations whatever they cost. */
static enum promptshap_status run_permutation(const promptshap_game * game,
                                              const struct promptshap_estimate_params * p, long budget,
                                              promptshap_estimate * est, promptshap_error * err) {
    const int n = game->n_players;
    permutation_sampler ps = {
        .base = { permutation_grow, permutation_fit },
        .n = n,
        .max_pairs = (p->n_samples + 1) / 2,
        .rng = p->seed,
    };
    if (budget > 0) {
        /* with a budget above the number of coalitions, later pairs add
         * none, so the count of pairs needs its own bound */
        ps.max_pairs = budget < INT32_MAX / 2 ? (int)budget : INT32_MAX / 2;
    }
    long cap = budget;
    if (budget <= 0) {
        /* the maximum number of distinct prefixes of the permutations */
        cap = 2L * ps.max_pairs * (n - 1) + 2;
    }
    ps_store s = {0};
    ps.mask = calloc((size_t)PROMPTSHAP_MASK_WORDS(n), sizeof(uint64_t));
    ps.pair_est = malloc((size_t)n * sizeof(double));
    ps.sum = malloc((size_t)n * sizeof(double));
    ps.sum_sq = malloc((size_t)n * sizeof(double));
    enum promptshap_status st;
    if (!ps.mask || !ps.pair_est || !ps.sum || !ps.sum_sq ||
        !ps_store_init(&s, PROMPTSHAP_MASK_WORDS(n), game->n_outputs, (size_t)cap)) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for permutations of %d units", n);
    } else {
        st = ps_run_rounds(&ps.base, &s, game, p, cap, est, err);
    }
    ps_store_free(&s);
    free(ps.perm);
    free(ps.prefix);
    free(ps.mask);
    free(ps.pair_est);
    free(ps.sum);
    free(ps.sum_sq);
    return st;
}

/*
 * Method choice and checks
 */

/* Minimum evaluations a regression estimator runs with: below 4n the
 * sampled part of the regression is too small to trust. */
static long regression_min_budget(int n) {
    return 4L * n;
}

/* Minimum evaluations permutation sampling needs for 2 antithetic pairs,
 * the least that gives a standard error. */
static long permutation_min_budget(int n) {
    return 4L * n - 2 > 2 ? 4L * n - 2 : 2;
}

static bool exact_fits(int n, long budget) {
    return n <= PROMPTSHAP_EXACT_MAX_UNITS && (1L << n) <= budget;
}

/* PROMPTSHAP_GP_MAX_BUDGET as a string literal, for notes */
#define STRINGIFY(x) #x
#define EXPAND_STRINGIFY(x) STRINGIFY(x)
#define GP_MAX_BUDGET_TEXT EXPAND_STRINGIFY(PROMPTSHAP_GP_MAX_BUDGET)

static bool is_regression(enum promptshap_method method) {
    return method == PROMPTSHAP_METHOD_KERNEL || method == PROMPTSHAP_METHOD_LEVERAGE ||
           method == PROMPTSHAP_METHOD_GP;
}

/* Resolves AUTO and the fallbacks of the regression estimators below 4n
 * evaluations; sets est->note when the method run is not the one asked for. */
static enum promptshap_status choose_method(const promptshap_game * game, struct promptshap_estimate_params * p,
                                            long budget, promptshap_estimate * est, promptshap_error * err) {
    const int n = game->n_players;
    est->requested = p->method;
    if (p->method == PROMPTSHAP_METHOD_AUTO) {
        if (p->interactions) {
            p->method = PROMPTSHAP_METHOD_EXACT;
            est->note = "interactions need all 2^n coalitions: exact enumeration";
        } else if (exact_fits(n, budget)) {
            p->method = PROMPTSHAP_METHOD_EXACT;
            est->note = "2^n coalitions fit the budget: exact enumeration";
        } else if (budget >= regression_min_budget(n) && budget <= PROMPTSHAP_GP_MAX_BUDGET) {
            p->method = PROMPTSHAP_METHOD_GP;
            est->note = "2^n coalitions exceed the budget: Gaussian-process regression";
        } else if (budget >= regression_min_budget(n)) {
            p->method = PROMPTSHAP_METHOD_LEVERAGE;
            est->note = "2^n coalitions exceed the budget, which is above the gp limit: Leverage SHAP";
        } else {
            p->method = PROMPTSHAP_METHOD_PERMUTATION;
            est->note = "the budget is below 4n evaluations: permutation sampling";
        }
    } else if (is_regression(p->method) && budget < regression_min_budget(n)) {
        if (exact_fits(n, budget)) {
            p->method = PROMPTSHAP_METHOD_EXACT;
            est->note = "regression needs at least 4n evaluations, but 2^n fit the budget: exact enumeration";
        } else {
            p->method = PROMPTSHAP_METHOD_PERMUTATION;
            est->note = "regression needs at least 4n evaluations: permutation sampling instead";
        }
    } else if (p->method == PROMPTSHAP_METHOD_GP && budget > PROMPTSHAP_GP_MAX_BUDGET) {
        p->method = PROMPTSHAP_METHOD_LEVERAGE;
        est->note = "gp is limited to " GP_MAX_BUDGET_TEXT " evaluations: Leverage SHAP instead";
    }

    if (p->method == PROMPTSHAP_METHOD_EXACT && n > PROMPTSHAP_EXACT_MAX_UNITS) {
        return ps_fail(err, PROMPTSHAP_ERR_TOO_MANY_UNITS,
                       "exact enumeration of %d units needs 2^%d coalitions; it is limited to %d units: "
                       "use the permutation method or leverage",
                       n, n, PROMPTSHAP_EXACT_MAX_UNITS);
    }
    if (p->interactions && p->method != PROMPTSHAP_METHOD_EXACT) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT,
                       "interactions need the exact method (or auto), not %s", promptshap_method_name(p->method));
    }
    if (p->interactions && n > PROMPTSHAP_INTERACTIONS_MAX_UNITS) {
        return ps_fail(err, PROMPTSHAP_ERR_TOO_MANY_UNITS, "interactions are limited to %d units, got %d",
                       PROMPTSHAP_INTERACTIONS_MAX_UNITS, n);
    }
    bool by_budget = p->budget > 0 || est->requested != PROMPTSHAP_METHOD_PERMUTATION;
    if (p->method == PROMPTSHAP_METHOD_PERMUTATION && by_budget && budget < permutation_min_budget(n)) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT,
                       "a budget of %ld evaluations is too small for %d units: sampling needs at least %ld",
                       budget, n, permutation_min_budget(n));
    }
    if (p->method == PROMPTSHAP_METHOD_BANZHAF && budget < 4 && !exact_fits(n, budget)) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT,
                       "a budget of %ld evaluations is too small for Banzhaf sampling: it needs at least 4", budget);
    }
    return PROMPTSHAP_OK;
}

enum promptshap_status promptshap_estimate_run(const promptshap_game * game,
                                               const struct promptshap_estimate_params * params,
                                               promptshap_estimate ** out, promptshap_error * err) {
    *out = NULL;
    ps_ok(err);
    struct promptshap_estimate_params p = params ? *params : promptshap_estimate_default_params();
    if (!game || !game->eval) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "the game has no eval callback");
    }
    const int n = game->n_players;

    /* check the request */
    if (n <= 0) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "a game needs at least one player, got %d", n);
    }
    if (game->n_outputs <= 0) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "a game needs at least one output, got %d",
                       game->n_outputs);
    }
    if (p.max_group <= 0) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "max_group must be positive, got %d", p.max_group);
    }
    if (!promptshap_method_name(p.method)) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "unknown method %d", (int)p.method);
    }
    if (p.budget < 0) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "the budget must be positive, got %ld", p.budget);
    }
    if (!(p.tolerance >= 0.0) || !isfinite(p.tolerance)) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "the tolerance must be a finite number >= 0, got %g",
                       p.tolerance);
    }
    if (p.method == PROMPTSHAP_METHOD_PERMUTATION && p.budget == 0 && p.n_samples < 4) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT,
                       "permutation sampling needs at least 4 permutations (2 antithetic pairs) for a standard "
                       "error, got %d",
                       p.n_samples);
    }

    promptshap_estimate * est = estimate_alloc(n, game->n_outputs);
    if (!est) {
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %d units and %d outputs", n,
                       game->n_outputs);
    }
    long budget = p.budget > 0 ? p.budget : PROMPTSHAP_DEFAULT_BUDGET;
    enum promptshap_status st = choose_method(game, &p, budget, est, err);
    est->method = p.method;
    if (st == PROMPTSHAP_OK) {
        switch (p.method) {
            case PROMPTSHAP_METHOD_EXACT:
                st = run_exact(game, &p, est, err);
                break;
            case PROMPTSHAP_METHOD_PERMUTATION: {
                bool by_budget = p.budget > 0 || est->requested != PROMPTSHAP_METHOD_PERMUTATION;
                est->budget = by_budget ? budget : 0;
                st = run_permutation(game, &p, est->budget, est, err);
                break;
            }
            case PROMPTSHAP_METHOD_LOO:
                st = run_loo(game, &p, est, err);
                break;
            case PROMPTSHAP_METHOD_KERNEL:
                est->budget = budget;
                st = ps_run_kernel(game, &p, budget, est, err);
                break;
            case PROMPTSHAP_METHOD_LEVERAGE:
                est->budget = budget;
                st = ps_run_leverage(game, &p, budget, est, err);
                break;
            case PROMPTSHAP_METHOD_BANZHAF:
                est->budget = budget;
                st = ps_run_banzhaf(game, &p, budget, est, err);
                break;
            case PROMPTSHAP_METHOD_GP:
                est->budget = budget;
                st = ps_run_gp(game, &p, budget, est, err);
                break;
            default:
                st = ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "unknown method %d", (int)p.method);
                break;
        }
    }
    if (st != PROMPTSHAP_OK) {
        promptshap_estimate_free(est);
        return st;
    }
    if (p.method == PROMPTSHAP_METHOD_EXACT) {
        est->budget = budget > est->n_evaluations ? budget : est->n_evaluations;
    }
    ps_estimate_finish(est);
    est->se_ratio = ps_estimate_se_ratio(est);
    *out = est;
    return PROMPTSHAP_OK;
}
