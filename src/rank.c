/* SPDX-License-Identifier: MIT
 *
 * Rank correlations of two attributions of the same units, for comparing
 * models (for example one model at two quantizations): Spearman's rho with
 * average ranks for ties, and Kendall's tau-b, which corrects for ties.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

typedef struct {
    double value;
    int index;
} ranked;

static int compare_ranked(const void * pa, const void * pb) {
    const ranked * a = pa;
    const ranked * b = pb;
    if (a->value != b->value) {
        return a->value < b->value ? -1 : 1;
    }
    return (a->index > b->index) - (a->index < b->index);
}

/* Ranks 1..n, tied values sharing the mean of their ranks. */
static bool average_ranks(const double * x, int n, double * rank) {
    ranked * r = malloc((size_t)n * sizeof(ranked));
    if (!r) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        r[i] = (ranked){ x[i], i };
    }
    qsort(r, (size_t)n, sizeof(ranked), compare_ranked);
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && r[j].value == r[i].value) {
            j++;
        }
        double mean = 0.5 * (double)(i + 1 + j); /* ranks i+1 .. j */
        for (int k = i; k < j; k++) {
            rank[r[k].index] = mean;
        }
        i = j;
    }
    free(r);
    return true;
}

static double pearson(const double * a, const double * b, int n) {
    double ma = 0, mb = 0;
    for (int i = 0; i < n; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= n;
    mb /= n;
    double sab = 0, saa = 0, sbb = 0;
    for (int i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : NAN;
}

enum promptshap_status promptshap_rank_correlation(const double * a, const double * b, int n, double * spearman,
                                                   double * kendall, promptshap_error * err) {
    ps_ok(err);
    *spearman = NAN;
    *kendall = NAN;
    if (n < 2) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "a rank correlation needs at least 2 values, got %d", n);
    }
    for (int i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) {
            return ps_fail(err, PROMPTSHAP_ERR_NUMERIC, "value %d is not finite (%g, %g)", i, a[i], b[i]);
        }
    }
    double * ra = malloc((size_t)n * sizeof(double));
    double * rb = malloc((size_t)n * sizeof(double));
    if (!ra || !rb || !average_ranks(a, n, ra) || !average_ranks(b, n, rb)) {
        free(ra);
        free(rb);
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
    }
    *spearman = pearson(ra, rb, n);
    free(ra);
    free(rb);

    /* tau-b = (concordant - discordant) / sqrt((n0 - ties in a) (n0 - ties in b)) */
    long long concordant = 0, discordant = 0, ties_a = 0, ties_b = 0;
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            double da = a[i] - a[j];
            double db = b[i] - b[j];
            if (da == 0 && db == 0) {
                ties_a++;
                ties_b++;
            } else if (da == 0) {
                ties_a++;
            } else if (db == 0) {
                ties_b++;
            } else if ((da > 0) == (db > 0)) {
                concordant++;
            } else {
                discordant++;
            }
        }
    }
    long long n0 = (long long)n * (n - 1) / 2;
    double denom = sqrt((double)(n0 - ties_a) * (double)(n0 - ties_b));
    *kendall = denom > 0 ? (double)(concordant - discordant) / denom : NAN;
    return PROMPTSHAP_OK;
}
