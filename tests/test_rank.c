/* SPDX-License-Identifier: MIT
 *
 * Rank correlations against values worked out by hand: identical and
 * reversed orders, ties (average ranks for Spearman, tau-b for Kendall),
 * a constant vector and bad input.
 */
#include "promptshap.h"

#include "check.h"

int main(void) {
    promptshap_error err;
    double rho = 0, tau = 0;

    const double a[5] = {0.3, -1.0, 2.5, 0.0, 1.2};
    const double scaled[5] = {3.0, -10.0, 25.0, 0.0, 12.0};
    CHECK(promptshap_rank_correlation(a, scaled, 5, &rho, &tau, &err) == PROMPTSHAP_OK);
    CHECK_NEAR(rho, 1.0, 1e-15);
    CHECK_NEAR(tau, 1.0, 1e-15);

    const double reversed[5] = {-0.3, 1.0, -2.5, 0.0, -1.2};
    CHECK(promptshap_rank_correlation(a, reversed, 5, &rho, &tau, &err) == PROMPTSHAP_OK);
    CHECK_NEAR(rho, -1.0, 1e-15);
    CHECK_NEAR(tau, -1.0, 1e-15);

    /* one swap of neighbours in ranks 1..4: rho = 1 - 6*2/(4*15) = 0.8,
     * tau = (5 - 1)/6 */
    const double x[4] = {1, 2, 3, 4};
    const double y[4] = {1, 3, 2, 4};
    CHECK(promptshap_rank_correlation(x, y, 4, &rho, &tau, &err) == PROMPTSHAP_OK);
    CHECK_NEAR(rho, 0.8, 1e-12);
    CHECK_NEAR(tau, 4.0 / 6.0, 1e-12);

    /* ties: y ranks (1.5, 1.5, 3, 4); pairs: 5 concordant, 1 tied in y;
     * tau-b = 5 / sqrt(6 * 5); rho = Pearson of the ranks */
    const double t[4] = {7, 7, 8, 9};
    CHECK(promptshap_rank_correlation(x, t, 4, &rho, &tau, &err) == PROMPTSHAP_OK);
    CHECK_NEAR(tau, 5.0 / sqrt(30.0), 1e-12);
    CHECK_NEAR(rho, 4.5 / sqrt(5.0 * 4.5), 1e-12);

    /* a constant vector has no ranks to correlate */
    const double flat[4] = {2, 2, 2, 2};
    CHECK(promptshap_rank_correlation(x, flat, 4, &rho, &tau, &err) == PROMPTSHAP_OK);
    CHECK(isnan(rho) && isnan(tau));

    const double bad[2] = {1, NAN};
    CHECK(promptshap_rank_correlation(x, bad, 2, &rho, &tau, &err) == PROMPTSHAP_ERR_NUMERIC);
    CHECK(promptshap_rank_correlation(x, y, 1, &rho, &tau, &err) == PROMPTSHAP_ERR_INVALID_ARGUMENT);
    return CHECK_REPORT();
}
