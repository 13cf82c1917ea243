/* SPDX-License-Identifier: MIT
 *
 * A tiny test harness: CHECK is never compiled out and prints the file, line
 * and expression of a failed condition; test programs end with
 * CHECK_REPORT(), which prints the counts and returns the exit status.
 */
#ifndef PROMPTSHAP_CHECK_H
#define PROMPTSHAP_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                              \
    do {                                                                         \
        check_count++;                                                           \
        if (!(cond)) {                                                           \
            check_failures++;                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

/* CHECK_NEAR prints both numbers, which a bare CHECK cannot. */
#define CHECK_NEAR(a, b, tol)                                                    \
    do {                                                                         \
        double check_a_ = (a), check_b_ = (b);                                   \
        check_count++;                                                           \
        if (!(fabs(check_a_ - check_b_) <= (tol))) {                             \
            check_failures++;                                                    \
            fprintf(stderr, "%s:%d: check failed: %s = %.17g, %s = %.17g, tolerance %g\n", \
                    __FILE__, __LINE__, #a, check_a_, #b, check_b_, (double)(tol)); \
        }                                                                        \
    } while (0)

#define CHECK_REPORT()                                                           \
    (printf("%d passed, %d failed\n", check_count - check_failures, check_failures), \
     check_failures == 0 ? 0 : 1)

#endif
