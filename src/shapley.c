/* SPDX-License-Identifier: MIT
 *
 * Estimators of Shapley values on a game with vector values: exact
 * enumeration, Monte Carlo over antithetic permutation pairs, and
 * leave-one-out. Each distinct coalition is evaluated once. Every estimator
 * is linear in the value function, so the per-output matrix comes at no
 * extra evaluations. The game's eval callback does the model work.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

const char * promptshap_method_name(enum promptshap_method method) {
    switch (method) {
        case PROMPTSHAP_METHOD_AUTO:        return "auto";
        case PROMPTSHAP_METHOD_EXACT:       return "exact";
        case PROMPTSHAP_METHOD_PERMUTATION: return "permutation";
        case PROMPTSHAP_METHOD_LOO:         return "loo";
    }
    return NULL;
}

bool promptshap_method_parse(const char * name, enum promptshap_method * method) {
    for (int m = PROMPTSHAP_METHOD_AUTO; m <= PROMPTSHAP_METHOD_LOO; m++) {
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

/* Fills the totals and the efficiency gap from the matrix and v_full/v_empty. */
static void estimate_finish(promptshap_estimate * est) {
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

typedef struct {
    int n_words;
    int n_outputs;
    size_t n;          /* distinct coalitions stored */
    size_t cap;        /* capacity of members and values */
    uint64_t * members;/* [cap][n_words] */
    double * values;   /* [cap][n_outputs], filled by store_eval */
    size_t n_slots;    /* power of two */
    int64_t * slots;   /* [n_slots], index into members or -1 */
} coalition_store;

static uint64_t mask_hash(const uint64_t * m, int n_words) {
    uint64_t h = 0x243f6a8885a308d3ull;
    for (int w = 0; w < n_words; w++) {
        uint64_t s = h ^ m[w];
        h = ps_rng_next(&s);
    }
    return h;
}

static void store_free(coalition_store * s) {
    free(s->members);
    free(s->values);
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

static bool store_init(coalition_store * s, int n_words, int n_outputs, size_t expected) {
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

static bool store_grow_slots(coalition_store * s) {
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

/* Returns the index of the coalition, adding it if new; -1 if out of memory. */
static int64_t store_add(coalition_store * s, const uint64_t * m) {
    if (2 * (s->n + 1) > s->n_slots && !store_grow_slots(s)) {
        return -1;
    }
    size_t k = mask_hash(m, s->n_words) & (s->n_slots - 1);
    while (s->slots[k] >= 0) {
        int64_t idx = s->slots[k];
        if (memcmp(s->members + (size_t)idx * s->n_words, m, (size_t)s->n_words * sizeof(uint64_t)) == 0) {
            return idx;
        }
        k = (k + 1) & (s->n_slots - 1);
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint64_t * members = realloc(s->members, cap * (size_t)s->n_words * sizeof(uint64_t));
        if (!members) {
            return -1;
        }
        s->members = members;
        s->cap = cap;
    }
    memcpy(s->members + s->n * s->n_words, m, (size_t)s->n_words * sizeof(uint64_t));
    s->slots[k] = (int64_t)s->n;
    return (int64_t)s->n++;
}

/* Evaluates every stored coalition in groups of max_group. */
static enum promptshap_status store_eval(coalition_store * s, const promptshap_game * game,
                                         const struct promptshap_estimate_params * p, promptshap_error * err) {
    s->values = malloc(s->n * (size_t)s->n_outputs * sizeof(double));
    if (!s->values && s->n > 0) {
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory storing the values of %zu coalitions", s->n);
    }
    for (size_t done = 0; done < s->n;) {
        size_t group = s->n - done;
        if (group > (size_t)p->max_group) {
            group = (size_t)p->max_group;
        }
        enum promptshap_status st = game->eval(game->user_data, s->members + done * s->n_words, (int)group,
                                               s->values + done * s->n_outputs, err);
        if (st == PROMPTSHAP_ERR_CANCELLED) {
            return ps_fail(err, st, "cancelled after %zu of %zu coalitions", done, s->n);
        }
        if (st != PROMPTSHAP_OK) {
            return st;
        }
        done += group;
        if (!report_progress(p, (long)done, (long)s->n)) {
            return ps_fail(err, PROMPTSHAP_ERR_CANCELLED, "cancelled after %zu of %zu coalitions", done, s->n);
        }
    }
    return PROMPTSHAP_OK;
}

/*
 * Exact enumeration
 *
 * phi_i = sum over S not containing i of w(|S|) (v(S + i) - v(S)), with
 * w(s) = s! (n - s - 1)! / n!. Written per coalition, v(S) enters phi_i with
 * +w(|S| - 1) when i is in S and -w(|S|) when it is not, so the values of
 * the 2^n coalitions are folded into the result as they arrive and never
 * stored together.
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
    if (!members || !values) {
        free(members);
        free(values);
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
        }
        if (!report_progress(p, first + m, total)) {
            st = ps_fail(err, PROMPTSHAP_ERR_CANCELLED, "cancelled after %ld of %ld coalitions", first + m, total);
        }
    }
    free(members);
    free(values);
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
    coalition_store s = {0};
    uint64_t * m = calloc((size_t)W, sizeof(uint64_t));
    int64_t * loo = malloc((size_t)n * sizeof(int64_t));
    enum promptshap_status st = PROMPTSHAP_OK;
    if (!m || !loo || !store_init(&s, W, T, (size_t)n + 2)) {
        free(m);
        free(loo);
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %d units", n);
    }

    int64_t empty = store_add(&s, m);
    for (int i = 0; i < n; i++) {
        ps_mask_set(m, i);
    }
    int64_t full = store_add(&s, m);
    bool ok = empty >= 0 && full >= 0;
    for (int i = 0; i < n && ok; i++) {
        ps_mask_clear(m, i);
        loo[i] = store_add(&s, m);
        ok = loo[i] >= 0;
        ps_mask_set(m, i);
    }
    if (!ok) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %d units", n);
        goto done;
    }

    st = store_eval(&s, game, p, err);
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
    store_free(&s);
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
 */

/* The estimate of each player's total value from antithetic pair q: the
 * mean of its marginal contributions in the pair's two orders. */
static void pair_estimates(const coalition_store * s, const int * perm, const int64_t * prefix, int q, int n, int T,
                           double * pair_est) {
    for (int i = 0; i < n; i++) {
        pair_est[i] = 0.0;
    }
    for (int o = 2 * q; o < 2 * q + 2; o++) {
        const int64_t * pre = prefix + (size_t)o * (n + 1);
        for (int k = 0; k < n; k++) {
            int i = perm[(size_t)o * n + k];
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

static enum promptshap_status run_permutation(const promptshap_game * game,
                                              const struct promptshap_estimate_params * p,
                                              promptshap_estimate * est, promptshap_error * err) {
    const int n = game->n_players;
    const int T = game->n_outputs;
    const int W = PROMPTSHAP_MASK_WORDS(n);
    const int n_pairs = (p->n_samples + 1) / 2;
    const int n_orders = 2 * n_pairs;

    coalition_store s = {0};
    int * perm = malloc((size_t)n_orders * (size_t)n * sizeof(int));
    int64_t * prefix = malloc((size_t)n_orders * (size_t)(n + 1) * sizeof(int64_t));
    uint64_t * m = calloc((size_t)W, sizeof(uint64_t));
    double * pair_est = malloc((size_t)n * sizeof(double));
    double * sum = calloc((size_t)n, sizeof(double));
    double * sum_sq = calloc((size_t)n, sizeof(double));
    enum promptshap_status st = PROMPTSHAP_OK;
    bool ok = perm && prefix && m && pair_est && sum && sum_sq &&
              store_init(&s, W, T, (size_t)n_orders * (size_t)n);
    if (!ok) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %d permutations of %d units", n_orders, n);
        goto cleanup;
    }

    /* draw the permutations and collect the distinct prefix coalitions */
    uint64_t rng = p->seed;
    for (int q = 0; q < n_pairs; q++) {
        int * a = perm + (size_t)(2 * q) * n;
        int * b = perm + (size_t)(2 * q + 1) * n;
        for (int i = 0; i < n; i++) {
            a[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = (int)ps_rng_below(&rng, (uint64_t)i + 1);
            int tmp = a[i];
            a[i] = a[j];
            a[j] = tmp;
        }
        for (int i = 0; i < n; i++) {
            b[i] = a[n - 1 - i];
        }
    }
    for (int o = 0; o < n_orders && ok; o++) {
        memset(m, 0, (size_t)W * sizeof(uint64_t));
        int64_t * pre = prefix + (size_t)o * (n + 1);
        pre[0] = store_add(&s, m);
        ok = pre[0] >= 0;
        for (int k = 0; k < n && ok; k++) {
            ps_mask_set(m, perm[(size_t)o * n + k]);
            pre[k + 1] = store_add(&s, m);
            ok = pre[k + 1] >= 0;
        }
    }
    if (!ok) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for the coalitions of %d permutations", n_orders);
        goto cleanup;
    }

    st = store_eval(&s, game, p, err);
    if (st != PROMPTSHAP_OK) {
        goto cleanup;
    }

    /* the matrix is the mean marginal contribution per output over all orders */
    for (int o = 0; o < n_orders; o++) {
        const int64_t * pre = prefix + (size_t)o * (n + 1);
        for (int k = 0; k < n; k++) {
            int i = perm[(size_t)o * n + k];
            const double * after = s.values + (size_t)pre[k + 1] * T;
            const double * before = s.values + (size_t)pre[k] * T;
            double * row = est->matrix + (size_t)i * T;
            for (int t = 0; t < T; t++) {
                row[t] += (after[t] - before[t]) / n_orders;
            }
        }
    }

    /* standard errors from the spread of the per-pair estimates of the
     * totals, in two passes (mean, then squared deviations) so that equal
     * pair estimates give exactly zero */
    for (int pass = 0; pass < 2; pass++) {
        for (int q = 0; q < n_pairs; q++) {
            pair_estimates(&s, perm, prefix, q, n, T, pair_est);
            for (int i = 0; i < n; i++) {
                if (pass == 0) {
                    sum[i] += pair_est[i];
                } else {
                    double d = pair_est[i] - sum[i] / n_pairs;
                    sum_sq[i] += d * d;
                }
            }
        }
    }
    for (int i = 0; i < n; i++) {
        est->std_error[i] = sqrt(sum_sq[i] / (n_pairs - 1) / n_pairs);
    }

    {
        const double * full = s.values + (size_t)prefix[n] * T;
        const double * empty = s.values + (size_t)prefix[0] * T;
        memcpy(est->v_full, full, (size_t)T * sizeof(double));
        memcpy(est->v_empty, empty, (size_t)T * sizeof(double));
    }
    est->n_samples = n_orders;
    est->n_evaluations = (long)s.n;

cleanup:
    store_free(&s);
    free(perm);
    free(prefix);
    free(m);
    free(pair_est);
    free(sum);
    free(sum_sq);
    return st;
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
    if (p.method == PROMPTSHAP_METHOD_AUTO) {
        p.method = n <= PROMPTSHAP_AUTO_EXACT_MAX_UNITS ? PROMPTSHAP_METHOD_EXACT : PROMPTSHAP_METHOD_PERMUTATION;
    }
    if (p.method == PROMPTSHAP_METHOD_EXACT && n > PROMPTSHAP_EXACT_MAX_UNITS) {
        return ps_fail(err, PROMPTSHAP_ERR_TOO_MANY_UNITS,
                       "exact enumeration of %d units needs 2^%d coalitions; it is limited to %d units: "
                       "use the permutation method",
                       n, n, PROMPTSHAP_EXACT_MAX_UNITS);
    }
    if (p.method == PROMPTSHAP_METHOD_PERMUTATION && p.n_samples < 4) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT,
                       "permutation sampling needs at least 4 permutations (2 antithetic pairs) for a standard "
                       "error, got %d",
                       p.n_samples);
    }
    if (!promptshap_method_name(p.method)) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "unknown method %d", (int)p.method);
    }

    promptshap_estimate * est = estimate_alloc(n, game->n_outputs);
    if (!est) {
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %d units and %d outputs", n,
                       game->n_outputs);
    }
    est->method = p.method;

    enum promptshap_status st;
    switch (p.method) {
        case PROMPTSHAP_METHOD_EXACT:       st = run_exact(game, &p, est, err); break;
        case PROMPTSHAP_METHOD_PERMUTATION: st = run_permutation(game, &p, est, err); break;
        case PROMPTSHAP_METHOD_LOO:         st = run_loo(game, &p, est, err); break;
        default:                            st = PROMPTSHAP_ERR_INVALID_ARGUMENT; break;
    }
    if (st != PROMPTSHAP_OK) {
        promptshap_estimate_free(est);
        return st;
    }
    estimate_finish(est);
    *out = est;
    return PROMPTSHAP_OK;
}
