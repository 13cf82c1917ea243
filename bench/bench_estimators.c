/* SPDX-License-Identifier: MIT
 *
 * Scores promptshap's estimators against exact values on game files: for
 * each game, method, budget (a multiple of the number of players) and
 * seed, the relative squared error ||phi_hat - phi||^2 / ||phi||^2, the
 * share of players whose true value lies within 2 reported standard errors,
 * and the relative efficiency gap. Games are grouped by file name without
 * the trailing "-NUMBER.txt"; each group gets a markdown table on stdout
 * with the median and 90th percentile of the error over games and seeds.
 * Banzhaf estimates are scored against exact Banzhaf values.
 *
 * usage: bench_estimators [--seeds N] [--method NAME]... [--multiple K]... GAME_FILE...
 * --method limits the run to the methods named, --multiple replaces the
 * budgets 4n to 128n by K n; both can be repeated.
 */
#include "promptshap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GAMES 64
#define N_MULTIPLIERS 6
#define MAX_MULTIPLIERS 16
#define N_METHODS 5

static const int default_multipliers[N_MULTIPLIERS] = { 4, 8, 16, 32, 64, 128 };
static const enum promptshap_method all_methods[N_METHODS] = {
    PROMPTSHAP_METHOD_PERMUTATION, PROMPTSHAP_METHOD_KERNEL, PROMPTSHAP_METHOD_LEVERAGE, PROMPTSHAP_METHOD_GP,
    PROMPTSHAP_METHOD_BANZHAF,
};

typedef struct {
    char group[128];
    promptshap_game_table * table;
    double * shapley; /* [n], exact */
    double * banzhaf; /* [n], exact */
} game_entry;

static int compare_double(const void * a, const void * b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted values by linear interpolation. */
static double quantile(const double * sorted, int count, double q) {
    double pos = q * (count - 1);
    int lo = (int)floor(pos);
    int hi = lo + 1 < count ? lo + 1 : lo;
    return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

static promptshap_estimate * run(promptshap_game_table * table, enum promptshap_method method, long budget,
                                 uint64_t seed) {
    promptshap_game game = promptshap_game_table_game(table);
    struct promptshap_estimate_params p = promptshap_estimate_default_params();
    p.method = method;
    p.budget = budget;
    p.seed = seed;
    p.max_group = 4096;
    promptshap_estimate * est = NULL;
    promptshap_error err;
    if (promptshap_estimate_run(&game, &p, &est, &err) != PROMPTSHAP_OK) {
        fprintf(stderr, "bench_estimators: %s with budget %ld failed: %s\n", promptshap_method_name(method), budget,
                err.message);
        exit(1);
    }
    return est;
}

/* Sets group to the file's base name without "-NUMBER.txt". */
static void group_name(const char * path, char * group, size_t size) {
    const char * base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(group, size, "%s", base);
    char * dash = strrchr(group, '-');
    if (dash) {
        *dash = '\0';
    }
}

int main(int argc, char ** argv) {
    int n_seeds = 10;
    game_entry games[MAX_GAMES];
    int n_games = 0;
    enum promptshap_method methods[N_METHODS];
    int n_methods = 0;
    int multipliers[MAX_MULTIPLIERS];
    int n_multipliers = 0;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--seeds") == 0 && a + 1 < argc) {
            n_seeds = atoi(argv[++a]);
            continue;
        }
        if (strcmp(argv[a], "--method") == 0 && a + 1 < argc) {
            enum promptshap_method method;
            if (!promptshap_method_parse(argv[++a], &method) || n_methods == N_METHODS) {
                fprintf(stderr, "bench_estimators: unknown method or more than %d: --method '%s'\n", N_METHODS,
                        argv[a]);
                return 2;
            }
            methods[n_methods++] = method;
            continue;
        }
        if (strcmp(argv[a], "--multiple") == 0 && a + 1 < argc) {
            int multiple = atoi(argv[++a]);
            if (multiple < 1 || n_multipliers == MAX_MULTIPLIERS) {
                fprintf(stderr, "bench_estimators: --multiple must be a positive integer, at most %d of them: '%s'\n",
                        MAX_MULTIPLIERS, argv[a]);
                return 2;
            }
            multipliers[n_multipliers++] = multiple;
            continue;
        }
        if (n_games == MAX_GAMES) {
            fprintf(stderr, "bench_estimators: at most %d games\n", MAX_GAMES);
            return 2;
        }
        game_entry * g = &games[n_games];
        promptshap_error err;
        if (promptshap_game_table_read(argv[a], &g->table, &err) != PROMPTSHAP_OK) {
            fprintf(stderr, "bench_estimators: %s\n", err.message);
            return 1;
        }
        group_name(argv[a], g->group, sizeof(g->group));
        int n = g->table->n_players;
        promptshap_estimate * exact = run(g->table, PROMPTSHAP_METHOD_EXACT, 0, 1);
        promptshap_estimate * banzhaf = run(g->table, PROMPTSHAP_METHOD_BANZHAF, 1L << n, 1);
        g->shapley = malloc((size_t)n * sizeof(double));
        g->banzhaf = malloc((size_t)n * sizeof(double));
        memcpy(g->shapley, exact->values, (size_t)n * sizeof(double));
        memcpy(g->banzhaf, banzhaf->values, (size_t)n * sizeof(double));
        promptshap_estimate_free(exact);
        promptshap_estimate_free(banzhaf);
        n_games++;
    }
    if (n_games == 0 || n_seeds < 1) {
        fprintf(stderr, "usage: bench_estimators [--seeds N] [--method NAME]... [--multiple K]... GAME_FILE...\n");
        return 2;
    }
    if (n_methods == 0) {
        memcpy(methods, all_methods, sizeof(all_methods));
        n_methods = N_METHODS;
    }
    if (n_multipliers == 0) {
        memcpy(multipliers, default_multipliers, sizeof(default_multipliers));
        n_multipliers = N_MULTIPLIERS;
    }

    double * errors = malloc((size_t)MAX_GAMES * (size_t)n_seeds * sizeof(double));
    for (int first = 0; first < n_games; first++) {
        /* one table per group, in the order groups first appear */
        bool seen = false;
        for (int k = 0; k < first; k++) {
            seen = seen || strcmp(games[k].group, games[first].group) == 0;
        }
        if (seen) {
            continue;
        }
        int n_in_group = 0, n_min = 64, n_max = 0;
        for (int k = first; k < n_games; k++) {
            if (strcmp(games[k].group, games[first].group) == 0) {
                n_in_group++;
                int n = games[k].table->n_players;
                n_min = n < n_min ? n : n_min;
                n_max = n > n_max ? n : n_max;
            }
        }
        printf("\n### %s: %d games, %d to %d players, %d seeds\n\n", games[first].group, n_in_group, n_min, n_max,
               n_seeds);
        printf("| method | budget | evaluations (mean) | median rel. sq. error | p90 rel. sq. error | "
               "coverage of 2 SE | max rel. efficiency gap |\n");
        printf("|---|---|---|---|---|---|---|\n");
        for (int mi = 0; mi < n_methods; mi++) {
            for (int bi = 0; bi < n_multipliers; bi++) {
                int count = 0;
                long n_covered = 0, n_players = 0;
                double evaluations = 0.0, max_gap = 0.0;
                int n_exact = 0;
                for (int k = first; k < n_games; k++) {
                    game_entry * g = &games[k];
                    if (strcmp(g->group, games[first].group) != 0) {
                        continue;
                    }
                    int n = g->table->n_players;
                    long budget = (long)multipliers[bi] * n;
                    const double * truth = methods[mi] == PROMPTSHAP_METHOD_BANZHAF ? g->banzhaf : g->shapley;
                    for (int seed = 1; seed <= n_seeds; seed++) {
                        promptshap_estimate * est = run(g->table, methods[mi], budget, (uint64_t)seed);
                        double num = 0.0, den = 0.0, gain = fabs(est->v_full_total - est->v_empty_total);
                        for (int i = 0; i < n; i++) {
                            double d = est->values[i] - truth[i];
                            num += d * d;
                            den += truth[i] * truth[i];
                            n_covered += fabs(d) <= 2.0 * est->std_error[i] + 1e-12 * fmax(1.0, fabs(truth[i]));
                            n_players++;
                        }
                        errors[count++] = num / den;
                        evaluations += (double)est->n_evaluations;
                        n_exact += est->method == PROMPTSHAP_METHOD_EXACT;
                        if (methods[mi] != PROMPTSHAP_METHOD_BANZHAF) {
                            max_gap = fmax(max_gap, est->efficiency_gap / fmax(gain, 1e-300));
                        }
                        promptshap_estimate_free(est);
                    }
                }
                qsort(errors, (size_t)count, sizeof(double), compare_double);
                printf("| %s%s | %dn | %.0f | %.4g | %.4g | %.1f%% | ", promptshap_method_name(methods[mi]),
                       n_exact ? " (exact fallback)" : "", multipliers[bi], evaluations / count,
                       quantile(errors, count, 0.5), quantile(errors, count, 0.9), 100.0 * n_covered / n_players);
                if (methods[mi] == PROMPTSHAP_METHOD_BANZHAF) {
                    printf("n/a |\n");
                } else {
                    printf("%.2g |\n", max_gap);
                }
                fflush(stdout);
            }
        }
    }
    free(errors);
    for (int k = 0; k < n_games; k++) {
        promptshap_game_table_free(games[k].table);
        free(games[k].shapley);
        free(games[k].banzhaf);
    }
    return 0;
}
