/* SPDX-License-Identifier: MIT
 *
 * Pairwise Shapley interaction indices (Grabisch and Roubens, "An
 * axiomatic approach to the concept of interaction among players in
 * cooperative games", 1999) from a complete table of coalition values:
 *
 *   I_ij = sum over S without i and j of |S|! (n - |S| - 2)! / (n - 1)!
 *          * (v(S + i + j) - v(S + i) - v(S + j) + v(S))
 *
 * A positive I_ij means i and j add more together than apart.
 */
#include "estimate.h"

void ps_interactions_from_table(int n, const double * totals, double * out) {
    PS_ASSERT(n >= 1 && n <= PROMPTSHAP_INTERACTIONS_MAX_UNITS);

    /* w[s] = 1 / ((n - 1) * C(n - 2, s)) */
    double w[PROMPTSHAP_INTERACTIONS_MAX_UNITS + 1];
    for (int s = 0; s + 2 <= n; s++) {
        double c = 1.0;
        for (int k = 1; k <= s; k++) {
            c = c * (double)(n - 2 - s + k) / (double)k;
        }
        w[s] = 1.0 / ((double)(n - 1) * c);
    }

    const uint64_t full = ((uint64_t)1 << n) - 1;
    for (int i = 0; i < n; i++) {
        out[(size_t)i * n + i] = 0.0;
        for (int j = i + 1; j < n; j++) {
            uint64_t bi = (uint64_t)1 << i;
            uint64_t bj = (uint64_t)1 << j;
            double sum = 0.0;
            for (uint64_t mask = 0; mask <= full; mask++) {
                if (mask & (bi | bj)) {
                    continue;
                }
                double delta = totals[mask | bi | bj] - totals[mask | bi] - totals[mask | bj] + totals[mask];
                sum += w[__builtin_popcountll(mask)] * delta;
            }
            out[(size_t)i * n + j] = sum;
            out[(size_t)j * n + i] = sum;
        }
    }
}
