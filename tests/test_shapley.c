/* SPDX-License-Identifier: MIT
 *
 * Tests of promptshap_estimate_run on games whose Shapley values are known in
 * closed form or by brute-force enumeration in this file. No model is loaded:
 * the eval callback computes each coalition's value in C and records which
 * coalitions the estimator asked for.
 */
#include "promptshap.h"

#include "check.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest game that gets a value table and a seen-array of 2^n entries. */
#define TABLE_MAX_PLAYERS 10
#define MAX_PLAYERS 128
#define EXACT_TOL 1e-12
#define FAIL_MESSAGE "test game failed on purpose"

typedef struct test_game test_game;

/* Value of the coalition members for one output. */
typedef double (*value_fn)(const test_game * game, const uint64_t * members, int output);

struct test_game {
    int n_players;
    int n_outputs;
    value_fn value;

    /* additive game: v(S) = constant + sum of weights over S */
    double constant;
    double weights[MAX_PLAYERS];
    /* unanimity game: v(S) = 1 when every player of carrier is in S */
    uint64_t carrier;
    /* glove game: players below n_left have a left glove, the others a right one */
    int n_left;
    /* table game: table[mask * n_outputs + output] for n_players <= TABLE_MAX_PLAYERS */
    double * table;
    uint64_t null_players; /* table game: these players never change the value */
    bool swap_01;          /* table game: players 0 and 1 are interchangeable */

    /* what the callback observed */
    long n_calls;
    long n_coalitions;
    int max_group_seen;
    long n_repeats;    /* coalitions that had been evaluated before */
    long n_stray_bits; /* coalitions with a bit set at or above n_players */
    unsigned char * seen; /* [2^n_players] when n_players <= TABLE_MAX_PLAYERS */

    /* failure injection: the fail_on_call-th call (1-based) returns fail_status */
    long fail_on_call;
    enum promptshap_status fail_status;
};

static bool has_player(const uint64_t * members, int i) {
    return (members[i / 64] >> (i % 64)) & 1u;
}

static int count_bits(uint64_t x) {
    int count = 0;
    while (x) {
        x &= x - 1;
        count++;
    }
    return count;
}

/* splitmix64: a small deterministic generator for reproducible game data. */
static uint64_t next_random(uint64_t * state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Returns a uniform double in [-1, 1). */
static double random_unit(uint64_t * state) {
    return (double)(next_random(state) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static double additive_value(const test_game * game, const uint64_t * members, int output) {
    (void)output;
    double v = game->constant;
    for (int i = 0; i < game->n_players; i++) {
        if (has_player(members, i)) {
            v += game->weights[i];
        }
    }
    return v;
}

static double unanimity_value(const test_game * game, const uint64_t * members, int output) {
    (void)output;
    return (members[0] & game->carrier) == game->carrier ? 1.0 : 0.0;
}

static double glove_value(const test_game * game, const uint64_t * members, int output) {
    (void)output;
    int left = 0;
    int right = 0;
    for (int i = 0; i < game->n_players; i++) {
        if (has_player(members, i)) {
            if (i < game->n_left) {
                left++;
            } else {
                right++;
            }
        }
    }
    return left < right ? left : right;
}

static double table_value(const test_game * game, const uint64_t * members, int output) {
    uint64_t mask = members[0] & ~game->null_players;
    if (game->swap_01 && (mask & 3u) == 2u) {
        mask ^= 3u; /* {1} and {0} look the same to the game */
    }
    return game->table[mask * (uint64_t)game->n_outputs + (uint64_t)output];
}

/* Output 0 additive, output 1 glove, output 2 table. */
static double mixed_value(const test_game * game, const uint64_t * members, int output) {
    switch (output) {
    case 0: return additive_value(game, members, output);
    case 1: return glove_value(game, members, output);
    default: return table_value(game, members, output);
    }
}

static void record_coalition(test_game * game, const uint64_t * members) {
    int n = game->n_players;
    int words = PROMPTSHAP_MASK_WORDS(n);
    game->n_coalitions++;
    if (n % 64 != 0 && (members[words - 1] >> (n % 64)) != 0) {
        game->n_stray_bits++;
    }
    if (game->seen != NULL) {
        uint64_t mask = members[0] & ((UINT64_C(1) << n) - 1);
        if (game->seen[mask]) {
            game->n_repeats++;
        }
        game->seen[mask] = 1;
    }
}

static enum promptshap_status eval_game(void * user_data, const uint64_t * members, int n_coalitions,
                                        double * values, promptshap_error * err) {
    test_game * game = user_data;
    game->n_calls++;
    if (n_coalitions > game->max_group_seen) {
        game->max_group_seen = n_coalitions;
    }
    if (game->fail_on_call == game->n_calls) {
        if (err != NULL) {
            err->status = game->fail_status;
            snprintf(err->message, sizeof err->message, "%s", FAIL_MESSAGE);
        }
        return game->fail_status;
    }
    int words = PROMPTSHAP_MASK_WORDS(game->n_players);
    for (int c = 0; c < n_coalitions; c++) {
        const uint64_t * coalition = members + (size_t)c * (size_t)words;
        record_coalition(game, coalition);
        for (int k = 0; k < game->n_outputs; k++) {
            values[(size_t)c * (size_t)game->n_outputs + (size_t)k] = game->value(game, coalition, k);
        }
    }
    return PROMPTSHAP_OK;
}

/* Sets up the bookkeeping shared by every game. Value-specific fields stay zero. */
static void game_init(test_game * game, int n_players, int n_outputs, value_fn value) {
    memset(game, 0, sizeof *game);
    game->n_players = n_players;
    game->n_outputs = n_outputs;
    game->value = value;
    if (n_players <= TABLE_MAX_PLAYERS) {
        game->seen = calloc((size_t)1 << n_players, 1);
    }
}

/* Fills a table of 2^n_players * n_outputs values in [-1, 1) from seed. */
static void game_fill_table(test_game * game, uint64_t seed) {
    size_t size = ((size_t)1 << game->n_players) * (size_t)game->n_outputs;
    game->table = malloc(size * sizeof *game->table);
    for (size_t i = 0; i < size; i++) {
        game->table[i] = random_unit(&seed);
    }
}

/* Clears what the callback observed so the game can be run again. */
static void game_reset_counts(test_game * game) {
    game->n_calls = 0;
    game->n_coalitions = 0;
    game->max_group_seen = 0;
    game->n_repeats = 0;
    game->n_stray_bits = 0;
    if (game->seen != NULL) {
        memset(game->seen, 0, (size_t)1 << game->n_players);
    }
}

static void game_free(test_game * game) {
    free(game->table);
    free(game->seen);
    game->table = NULL;
    game->seen = NULL;
}

static promptshap_game as_game(test_game * game) {
    promptshap_game g = { game->n_players, game->n_outputs, eval_game, game };
    return g;
}

/* Runs method on game with default parameters apart from the method, the
 * sample count and the seed. On error it fails a check and returns NULL. */
static promptshap_estimate * run_method(test_game * game, enum promptshap_method method, int n_samples, uint64_t seed) {
    struct promptshap_estimate_params params = promptshap_estimate_default_params();
    params.method = method;
    params.n_samples = n_samples;
    params.seed = seed;
    promptshap_game g = as_game(game);
    promptshap_estimate * est = NULL;
    promptshap_error err;
    enum promptshap_status status = promptshap_estimate_run(&g, &params, &est, &err);
    CHECK(status == PROMPTSHAP_OK);
    if (status != PROMPTSHAP_OK) {
        fprintf(stderr, "  estimate_run(%s): %s\n", promptshap_method_name(method), err.message);
        promptshap_estimate_free(est);
        return NULL;
    }
    CHECK(est != NULL);
    return est;
}

/* Brute-force Shapley values of one output of a game with at most
 * TABLE_MAX_PLAYERS players: phi_i = sum over S without i of
 * |S|! (n - |S| - 1)! / n! * (v(S + i) - v(S)). */
static void reference_shapley(const test_game * game, int output, double * phi) {
    int n = game->n_players;
    double factorial[TABLE_MAX_PLAYERS + 1];
    factorial[0] = 1.0;
    for (int k = 1; k <= n; k++) {
        factorial[k] = factorial[k - 1] * k;
    }
    for (int i = 0; i < n; i++) {
        phi[i] = 0.0;
        uint64_t bit = UINT64_C(1) << i;
        for (uint64_t mask = 0; mask < (UINT64_C(1) << n); mask++) {
            if (mask & bit) {
                continue;
            }
            uint64_t with_i = mask | bit;
            int size = count_bits(mask);
            double weight = factorial[size] * factorial[n - size - 1] / factorial[n];
            phi[i] += weight * (game->value(game, &with_i, output) - game->value(game, &mask, output));
        }
    }
}

/* Returns true when every a[i] is within tol of b[i]. */
static bool values_match(const double * a, const double * b, int n, double tol) {
    for (int i = 0; i < n; i++) {
        if (!(fabs(a[i] - b[i]) <= tol)) {
            return false;
        }
    }
    return true;
}

static double mean_abs_error(const double * a, const double * b, int n) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        sum += fabs(a[i] - b[i]);
    }
    return sum / n;
}

/* Tolerance for efficiency: 1e-9 relative to the total gain, at least 1e-9. */
static double efficiency_tol(const promptshap_estimate * est) {
    return 1e-9 * fmax(1.0, fabs(est->v_full_total - est->v_empty_total));
}

static double sum_values(const promptshap_estimate * est) {
    double sum = 0.0;
    for (int i = 0; i < est->n_players; i++) {
        sum += est->values[i];
    }
    return sum;
}

static void test_defaults(void) {
    struct promptshap_estimate_params params = promptshap_estimate_default_params();
    CHECK(params.n_samples == 64);
    CHECK(params.seed == 1);
    CHECK(params.max_group == 32);
    CHECK(params.progress == NULL);
}

static void test_method_names(void) {
    const enum promptshap_method methods[] = {
        PROMPTSHAP_METHOD_AUTO,     PROMPTSHAP_METHOD_EXACT,   PROMPTSHAP_METHOD_PERMUTATION, PROMPTSHAP_METHOD_LOO,
        PROMPTSHAP_METHOD_KERNEL,   PROMPTSHAP_METHOD_LEVERAGE, PROMPTSHAP_METHOD_BANZHAF,    PROMPTSHAP_METHOD_GP,
    };
    const char * names[] = { "auto", "exact", "permutation", "loo", "kernel", "leverage", "banzhaf", "gp" };
    for (int k = 0; k < 8; k++) {
        const char * name = promptshap_method_name(methods[k]);
        CHECK(name != NULL);
        if (name != NULL) {
            CHECK(strcmp(name, names[k]) == 0);
        }
        enum promptshap_method parsed = (enum promptshap_method)-1;
        CHECK(promptshap_method_parse(names[k], &parsed));
        CHECK(parsed == methods[k]);
    }
    enum promptshap_method parsed = PROMPTSHAP_METHOD_LOO;
    CHECK(!promptshap_method_parse("bogus", &parsed));
    CHECK(!promptshap_method_parse("", &parsed));
    CHECK(!promptshap_method_parse("exact ", &parsed));
    CHECK(promptshap_method_name((enum promptshap_method)99) == NULL);
}

static void check_additive_values(const promptshap_estimate * est, const test_game * game) {
    for (int i = 0; i < game->n_players; i++) {
        CHECK_NEAR(est->values[i], game->weights[i], EXACT_TOL);
    }
}

static void test_additive(void) {
    static const double weights[] = { 0.5, -1.25, 2.0, 0.0, 3.75, -0.125 };
    test_game game;
    game_init(&game, 6, 1, additive_value);
    game.constant = 0.3;
    memcpy(game.weights, weights, sizeof weights);

    promptshap_estimate * est = run_method(&game, PROMPTSHAP_METHOD_EXACT, 64, 1);
    if (est != NULL) {
        CHECK(est->method == PROMPTSHAP_METHOD_EXACT);
        CHECK(est->n_players == 6);
        CHECK(est->n_outputs == 1);
        CHECK(est->n_samples == 0);
        check_additive_values(est, &game);
        CHECK_NEAR(est->v_empty_total, 0.3, EXACT_TOL);
        CHECK_NEAR(est->v_full_total, 0.3 + 4.875, EXACT_TOL);
        for (int i = 0; i < 6; i++) {
            CHECK(est->std_error[i] == 0.0);
        }
    }
    promptshap_estimate_free(est);

    game_reset_counts(&game);
    est = run_method(&game, PROMPTSHAP_METHOD_LOO, 64, 1);
    if (est != NULL) {
        CHECK(est->method == PROMPTSHAP_METHOD_LOO);
        CHECK(est->n_samples == 0);
        check_additive_values(est, &game);
        for (int i = 0; i < 6; i++) {
            CHECK(est->std_error[i] == 0.0);
        }
    }
    promptshap_estimate_free(est);

    /* Every marginal contribution in an additive game is the weight, so any
     * sample of permutations gives the exact values. */
    const int sample_counts[] = { 4, 10, 64 };
    for (int k = 0; k < 3; k++) {
        game_reset_counts(&game);
        est = run_method(&game, PROMPTSHAP_METHOD_PERMUTATION, sample_counts[k], 11u + (uint64_t)k);
        if (est != NULL) {
            CHECK(est->method == PROMPTSHAP_METHOD_PERMUTATION);
            CHECK(est->n_samples == sample_counts[k]);
            check_additive_values(est, &game);
        }
        promptshap_estimate_free(est);
    }
    game_free(&game);
}

/* 70 players need two mask words, so bit i % 64 of word i / 64 is exercised. */
static void test_two_words(void) {
    test_game game;
    game_init(&game, 70, 1, additive_value);
    game.constant = -2.0;
    for (int i = 0; i < 70; i++) {
        game.weights[i] = (i % 7) - 3.0 + 0.01 * i;
    }
    promptshap_estimate * est = run_method(&game, PROMPTSHAP_METHOD_LOO, 64, 1);
    if (est != NULL) {
        check_additive_values(est, &game);
        CHECK(est->n_evaluations == 72);
        CHECK(game.n_coalitions == 72);
    }
    CHECK(game.n_stray_bits == 0);
    promptshap_estimate_free(est);

    game_reset_counts(&game);
    est = run_method(&game, PROMPTSHAP_METHOD_PERMUTATION, 6, 5);
    if (est != NULL) {
        check_additive_values(est, &game);
        CHECK(est->efficiency_gap < efficiency_tol(est));
    }
    CHECK(game.n_stray_bits == 0);
    promptshap_estimate_free(est);

    struct promptshap_estimate_params params = promptshap_estimate_default_params();
    params.method = PROMPTSHAP_METHOD_AUTO;
    params.n_samples = 4;
    promptshap_game g = as_game(&game);
    est = NULL;
    CHECK(promptshap_estimate_run(&g, &params, &est, NULL) == PROMPTSHAP_OK);
    CHECK(est != NULL);
    if (est != NULL) {
        CHECK(est->method == PROMPTSHAP_METHOD_GP);
        check_additive_values(est, &game);
    }
    promptshap_estimate_free(est);
    game_free(&game);
}

static void test_unanimity(void) {
    test_game game;
    game_init(&game, 6, 1, unanimity_value);
    game.carrier = (1u << 1) | (1u << 3) | (1u << 4);
    promptshap_estimate * est = run_method(&game, PROMPTSHAP_METHOD_EXACT, 64, 1);
    if (est != NULL) {
        for (int i = 0; i < 6; i++) {
            double expected = (game.carrier >> i) & 1u ? 1.0 / 3.0 : 0.0;
            CHECK_NEAR(est->values[i], expected, EXACT_TOL);
        }
        CHECK_NEAR(est->v_full_total, 1.0, 0.0);
        CHECK_NEAR(est->v_empty_total, 0.0, 0.0);
    }
    promptshap_estimate_free(est);

    /* Leave-one-out credits each carrier player with the whole unit. */
    game_reset_counts(&game);
    est = run_method(&game, PROMPTSHAP_METHOD_LOO, 64, 1);
    if (est != NULL) {
        for (int i = 0; i < 6; i++) {
            double expected = (game.carrier >> i) & 1u ? 1.0 : 0.0;
            CHECK_NEAR(est->values[i], expected, EXACT_TOL);
        }
        CHECK_NEAR(est->efficiency_gap, 2.0, EXACT_TOL);
    }
    promptshap_estimate_free(est);
    game_free(&game);
}

static void test_glove(void) {
    /* player 0 has the only left glove, players 1 and 2 a right glove each */
    test_game game;
    game_init(&game, 3, 1, glove_value);
    game.n_left = 1;
    const double known[3] = { 2.0 / 3.0, 1.0 / 6.0, 1.0 / 6.0 };
    promptshap_estimate * est = run_method(&game, PROMPTSHAP_METHOD_EXACT, 64, 1);
    if (est != NULL) {
        for (int i = 0; i < 3; i++) {
            CHECK_NEAR(est->values[i], known[i], EXACT_TOL);
        }
        CHECK(values_match(est->values, known, 3, EXACT_TOL));
        CHECK(est->values[1] == est->values[2]);

        /* The comparison must be able to fail: a reference off by 1e-6 is rejected. */
        double wrong[3];
        memcpy(wrong, known, sizeof wrong);
        wrong[1] += 1e-6;
        CHECK(!values_match(est->values, wrong, 3, EXACT_TOL));
    }
    promptshap_estimate_free(est);
    game_free(&game);

    /* 2 left and 3 right gloves, against brute force */
    game_init(&game, 5, 1, glove_value);
    game.n_left = 2;
    double reference[5];
    reference_shapley(&game, 0, reference);
    est = run_method(&game, PROMPTSHAP_METHOD_EXACT, 64, 1);
    if (est != NULL) {
        for (int i = 0; i < 5; i++) {
            CHECK_NEAR(est->values[i], reference[i], EXACT_TOL);
        }
        CHECK_NEAR(est->values[0], est->values[1], EXACT_TOL);
        CHECK_NEAR(est->values[2], est->values[4], EXACT_TOL);
        CHECK(est->values[0] > est->values[2]);
    }
    promptshap_estimate_free(est);
    game_free(&game);
}

/* Player 4 is null and players 0 and 1 are symmetric in a random game. */
static void test_null_and_symmetry(void) {
    test_game game;
    game_init(&game, 6, 1, table_value);
    game_fill_table(&game, 2024);
    game.null_players = 1u << 4;
    game.swap_01 = true;
    double reference[6];
    reference_shapley(&game, 0, reference);
    CHECK_NEAR(reference[4], 0.0, EXACT_TOL);

    promptshap_estimate * est = run_method(&game, PROMPTSHAP_METHOD_EXACT, 64, 1);
    if (est != NULL) {
        CHECK_NEAR(est->values[4], 0.0, EXACT_TOL);
        CHECK_NEAR(est->values[0], est->values[1], EXACT_TOL);
        for (int i = 0; i < 6; i++) {
            CHECK_NEAR(est->values[i], reference[i], EXACT_TOL);
        }
    }
    promptshap_estimate_free(est);

    game_reset_counts(&game);
    est = run_method(&game, PROMPTSHAP_METHOD_PERMUTATION, 16, 3);
    if (est != NULL) {
        CHECK_NEAR(est->values[4], 0.0, EXACT_TOL);
        CHECK_NEAR(est->std_error[4], 0.0, EXACT_TOL);
    }
    promptshap_estimate_free(est);

    game_reset_counts(&game);
    est = run_method(&game, PROMPTSHAP_METHOD_LOO, 64, 1);
    if (est != NULL) {
        CHECK_NEAR(est->values[4], 0.0, EXACT_TOL);
    }
    promptshap_estimate_free(est);
    game_free(&game);
}

/* Three outputs: an additive, a glove and a random table value per coalition. */
static void test_vector(void) {
    static const double weights[] = { 1.5, -0.5, 0.25, 2.0, -1.0 };
    test_game game;
    game_init(&game, 5, 3, mixed_value);
    memcpy(game.weights, weights, sizeof weights);
    game.constant = -4.0;
    game.n_left = 2;
    game_fill_table(&game, 77);

    double reference[3][5];
    for (int k = 0; k < 3; k++) {
        reference_shapley(&game, k, reference[k]);
    }
    uint64_t full = 31;
    uint64_t empty = 0;

    promptshap_estimate * est = run_method(&game, PROMPTSHAP_METHOD_EXACT, 64, 1);
    if (est != NULL) {
        CHECK(est->n_outputs == 3);
        for (int i = 0; i < 5; i++) {
            double row_sum = 0.0;
            for (int k = 0; k < 3; k++) {
                CHECK_NEAR(est->matrix[i * 3 + k], reference[k][i], EXACT_TOL);
                row_sum += est->matrix[i * 3 + k];
            }
            CHECK_NEAR(est->values[i], row_sum, EXACT_TOL);
        }
        double total_full = 0.0;
        double total_empty = 0.0;
        for (int k = 0; k < 3; k++) {
            CHECK_NEAR(est->v_full[k], mixed_value(&game, &full, k), 0.0);
            CHECK_NEAR(est->v_empty[k], mixed_value(&game, &empty, k), 0.0);
            total_full += est->v_full[k];
            total_empty += est->v_empty[k];
        }
        CHECK_NEAR(est->v_full_total, total_full, EXACT_TOL);
        CHECK_NEAR(est->v_empty_total, total_empty, EXACT_TOL);
        CHECK_NEAR(sum_values(est), est->v_full_total - est->v_empty_total, efficiency_tol(est));
        CHECK(est->efficiency_gap < efficiency_tol(est));
    }
    promptshap_estimate_free(est);

    /* loo: matrix[i][k] = v_full[k] - v(N without i)[k] */
    game_reset_counts(&game);
    est = run_method(&game, PROMPTSHAP_METHOD_LOO, 64, 1);
    if (est != NULL) {
        for (int i = 0; i < 5; i++) {
            uint64_t without_i = full & ~(UINT64_C(1) << i);
            double row_sum = 0.0;
            for (int k = 0; k < 3; k++) {
                double expected = mixed_value(&game, &full, k) - mixed_value(&game, &without_i, k);
                CHECK_NEAR(est->matrix[i * 3 + k], expected, EXACT_TOL);
                row_sum += est->matrix[i * 3 + k];
            }
            CHECK_NEAR(est->values[i], row_sum, EXACT_TOL);
        }
        double gap = fabs(sum_values(est) - (est->v_full_total - est->v_empty_total));
        CHECK_NEAR(est->efficiency_gap, gap, 1e-9);
    }
    promptshap_estimate_free(est);

    /* Each permutation's marginal contributions add up to v(N) - v(empty). */
    game_reset_counts(&game);
    est = run_method(&game, PROMPTSHAP_METHOD_PERMUTATION, 10, 9);
    if (est != NULL) {
        for (int i = 0; i < 5; i++) {
            double row_sum = est->matrix[i * 3] + est->matrix[i * 3 + 1] + est->matrix[i * 3 + 2];
            CHECK_NEAR(est->values[i], row_sum, EXACT_TOL);
            CHECK_NEAR(est->matrix[i * 3], weights[i], EXACT_TOL);
        }
        CHECK_NEAR(sum_values(est), est->v_full_total - est->v_empty_total, efficiency_tol(est));
        CHECK(est->efficiency_gap < efficiency_tol(est));
    }
    promptshap_estimate_free(est);
    game_free(&game);
}

/* exact evaluates each of the 2^n coalitions once, and loo n + 2 distinct ones. */
static void test_evaluation_counts(void) {
    const int sizes[] = { 1, 2, 4, 7, 10 };
    for (int k = 0; k < 5; k++) {
        int n = sizes[k];
        test_game game;
        game_init(&game, n, 1, table_value);
        game_fill_table(&game, 500u + (uint64_t)n);
        promptshap_estimate * est = run_method(&game, PROMPTSHAP_METHOD_EXACT, 64, 1);
        if (est != NULL) {
            CHECK(est->n_evaluations == 1L << n);
        }
        CHECK(game.n_coalitions == 1L << n);
        CHECK(game.n_repeats == 0);
        CHECK(game.n_stray_bits == 0);
        promptshap_estimate_free(est);

        /* For n = 1 the leave-one-out coalition is the empty one, so only 2
         * coalitions are distinct. */
        long distinct = n == 1 ? 2 : n + 2;
        game_reset_counts(&game);
        est = run_method(&game, PROMPTSHAP_METHOD_LOO, 64, 1);
        if (est != NULL) {
            CHECK(est->n_evaluations == distinct);
        }
        CHECK(game.n_coalitions == distinct);
        CHECK(game.n_repeats == 0);
        game_free(&game);
        promptshap_estimate_free(est);
    }
}

/* The permutation estimator on a random game: v(S) is a random table value
 * plus an additive part. A game with only pairwise interactions would not do,
 * because an antithetic pair of permutations gives its Shapley values exactly. */
static void test_permutation(void) {
    enum { N = 8 };
    test_game game;
    game_init(&game, N, 1, table_value);
    game_fill_table(&game, 31337);
    uint64_t state = 99;
    double additive[N];
    for (int i = 0; i < N; i++) {
        additive[i] = 3.0 * random_unit(&state);
    }
    for (uint64_t mask = 0; mask < (1u << N); mask++) {
        for (int i = 0; i < N; i++) {
            if ((mask >> i) & 1u) {
                game.table[mask] += additive[i];
            }
        }
    }
    double reference[N];
    reference_shapley(&game, 0, reference);

    promptshap_estimate * exact = run_method(&game, PROMPTSHAP_METHOD_EXACT, 64, 1);
    if (exact != NULL) {
        CHECK(values_match(exact->values, reference, N, EXACT_TOL));
    }
    promptshap_estimate_free(exact);

    game_reset_counts(&game);
    promptshap_estimate * est = run_method(&game, PROMPTSHAP_METHOD_PERMUTATION, 64, 3);
    if (est != NULL) {
        CHECK(est->n_samples == 64);
        int outside = 0;
        for (int i = 0; i < N; i++) {
            CHECK(est->std_error[i] > 0.0);
            if (fabs(est->values[i] - reference[i]) > 4.0 * est->std_error[i]) {
                outside++;
            }
        }
        CHECK(outside <= 1);
        CHECK(est->efficiency_gap < efficiency_tol(est));
        CHECK(est->n_evaluations == game.n_coalitions);
        CHECK(est->n_evaluations <= 1L << N);
    }
    CHECK(game.n_repeats == 0);
    CHECK(game.n_calls > 0);

    /* The same seed gives bit-identical results, and another seed other values. */
    promptshap_estimate * again = run_method(&game, PROMPTSHAP_METHOD_PERMUTATION, 64, 3);
    promptshap_estimate * other = run_method(&game, PROMPTSHAP_METHOD_PERMUTATION, 64, 4);
    if (est != NULL && again != NULL && other != NULL) {
        CHECK(memcmp(est->values, again->values, N * sizeof(double)) == 0);
        CHECK(memcmp(est->std_error, again->std_error, N * sizeof(double)) == 0);
        CHECK(memcmp(est->values, other->values, N * sizeof(double)) != 0);
    }
    promptshap_estimate_free(est);
    promptshap_estimate_free(again);
    promptshap_estimate_free(other);

    /* an odd sample count is rounded up to whole antithetic pairs */
    est = run_method(&game, PROMPTSHAP_METHOD_PERMUTATION, 7, 3);
    if (est != NULL) {
        CHECK(est->n_samples == 8);
    }
    promptshap_estimate_free(est);

    /* more samples, smaller error: mean absolute error averaged over 5 seeds */
    double error_small = 0.0;
    double error_large = 0.0;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        promptshap_estimate * small = run_method(&game, PROMPTSHAP_METHOD_PERMUTATION, 20, seed);
        promptshap_estimate * large = run_method(&game, PROMPTSHAP_METHOD_PERMUTATION, 400, seed);
        if (small != NULL && large != NULL) {
            error_small += mean_abs_error(small->values, reference, N) / 5.0;
            error_large += mean_abs_error(large->values, reference, N) / 5.0;
        }
        promptshap_estimate_free(small);
        promptshap_estimate_free(large);
    }
    CHECK(error_large < error_small);
    CHECK(error_large > 0.0);
    game_free(&game);
}

/* An antithetic pair (a permutation and its reverse) gives the exact Shapley
 * values of a game with only pairwise interactions, v(S) = sum of a_i + sum
 * of b_ij over pairs in S: i's two marginal contributions add up to
 * 2 a_i + sum over j of b_ij. */
static double pairwise_value(const test_game * game, const uint64_t * members, int output) {
    (void)output;
    double v = 0.0;
    for (int i = 0; i < game->n_players; i++) {
        if (!has_player(members, i)) {
            continue;
        }
        v += game->weights[i];
        for (int j = i + 1; j < game->n_players; j++) {
            if (has_player(members, j)) {
                v += game->table[i * game->n_players + j];
            }
        }
    }
    return v;
}

static void test_antithetic(void) {
    enum { N = 9 };
    test_game game;
    game_init(&game, N, 1, pairwise_value);
    uint64_t state = 5;
    game.table = malloc(N * N * sizeof(double));
    for (int i = 0; i < N * N; i++) {
        game.table[i] = random_unit(&state);
    }
    for (int i = 0; i < N; i++) {
        game.weights[i] = random_unit(&state);
    }
    double reference[N];
    reference_shapley(&game, 0, reference);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        promptshap_estimate * est = run_method(&game, PROMPTSHAP_METHOD_PERMUTATION, 4, seed);
        if (est != NULL) {
            CHECK(values_match(est->values, reference, N, 1e-12));
            /* The pair estimates agree to rounding, so the standard error is
             * zero up to the rounding of the variance formula. */
            for (int i = 0; i < N; i++) {
                CHECK_NEAR(est->std_error[i], 0.0, 1e-6);
            }
        }
        promptshap_estimate_free(est);
    }
    game_free(&game);
}

/* The reported standard error should match the spread of the estimates over
 * many seeds, within the sampling noise of 50 runs. */
static void test_std_error_scale(void) {
    enum { N = 6, RUNS = 50 };
    test_game game;
    game_init(&game, N, 1, table_value);
    game_fill_table(&game, 606);

    double sum[N] = { 0 };
    double sum_sq[N] = { 0 };
    double mean_se[N] = { 0 };
    int n_ok = 0;
    for (uint64_t seed = 1; seed <= RUNS; seed++) {
        promptshap_estimate * est = run_method(&game, PROMPTSHAP_METHOD_PERMUTATION, 16, 1000u + seed);
        if (est != NULL) {
            n_ok++;
            for (int i = 0; i < N; i++) {
                sum[i] += est->values[i];
                sum_sq[i] += est->values[i] * est->values[i];
                mean_se[i] += est->std_error[i] / RUNS;
            }
        }
        promptshap_estimate_free(est);
    }
    CHECK(n_ok == RUNS);

    for (int i = 0; i < N; i++) {
        double mean = sum[i] / RUNS;
        double spread = sqrt((sum_sq[i] - RUNS * mean * mean) / (RUNS - 1));
        double ratio = mean_se[i] / spread;
        CHECK(ratio > 0.6);
        CHECK(ratio < 1.6);
        if (!(ratio > 0.6 && ratio < 1.6)) {
            fprintf(stderr, "  player %d: mean std_error %g, spread over seeds %g\n", i, mean_se[i], spread);
        }
    }
    game_free(&game);
}

/* AUTO is exact up to PROMPTSHAP_AUTO_EXACT_MAX_UNITS players under the
 * default budget, and gp above. */
static void test_auto(void) {
    const int sizes[] = { 5, PROMPTSHAP_AUTO_EXACT_MAX_UNITS, PROMPTSHAP_AUTO_EXACT_MAX_UNITS + 1 };
    for (int k = 0; k < 3; k++) {
        test_game game;
        game_init(&game, sizes[k], 1, additive_value);
        for (int i = 0; i < sizes[k]; i++) {
            game.weights[i] = 0.5 * i;
        }
        promptshap_estimate * est = run_method(&game, PROMPTSHAP_METHOD_AUTO, 8, 1);
        if (est != NULL) {
            enum promptshap_method expected =
                sizes[k] <= PROMPTSHAP_AUTO_EXACT_MAX_UNITS ? PROMPTSHAP_METHOD_EXACT : PROMPTSHAP_METHOD_GP;
            CHECK(est->method == expected);
            check_additive_values(est, &game);
        }
        promptshap_estimate_free(est);
        game_free(&game);
    }
}

/* No eval call gets more than max_group coalitions, and grouping does not
 * change the result. */
static void test_max_group(void) {
    test_game game;
    game_init(&game, 7, 2, table_value);
    game_fill_table(&game, 4242);
    promptshap_estimate * whole = run_method(&game, PROMPTSHAP_METHOD_EXACT, 64, 1);

    const int groups[] = { 1, 5 };
    for (int k = 0; k < 2; k++) {
        game_reset_counts(&game);
        struct promptshap_estimate_params params = promptshap_estimate_default_params();
        params.method = PROMPTSHAP_METHOD_EXACT;
        params.max_group = groups[k];
        promptshap_game g = as_game(&game);
        promptshap_estimate * est = NULL;
        CHECK(promptshap_estimate_run(&g, &params, &est, NULL) == PROMPTSHAP_OK);
        CHECK(game.max_group_seen <= groups[k]);
        CHECK(game.n_coalitions == 128);
        if (est != NULL && whole != NULL) {
            CHECK(values_match(est->values, whole->values, 7, EXACT_TOL));
            CHECK(values_match(est->matrix, whole->matrix, 14, EXACT_TOL));
        }
        promptshap_estimate_free(est);

        game_reset_counts(&game);
        params.method = PROMPTSHAP_METHOD_PERMUTATION;
        params.n_samples = 12;
        est = NULL;
        CHECK(promptshap_estimate_run(&g, &params, &est, NULL) == PROMPTSHAP_OK);
        CHECK(game.max_group_seen <= groups[k]);
        CHECK(game.n_repeats == 0);
        promptshap_estimate_free(est);
    }
    promptshap_estimate_free(whole);
    game_free(&game);
}

/* What keep_going saw of the progress reports. */
struct progress_log {
    long n_calls;
    long last_done;
    long last_total;
    long n_decreases; /* reports whose done was below the previous one */
    long n_overruns;  /* reports with done above total */
};

static bool keep_going(void * user_data, long done, long total) {
    struct progress_log * log = user_data;
    if (done < log->last_done) {
        log->n_decreases++;
    }
    if (done > total) {
        log->n_overruns++;
    }
    log->n_calls++;
    log->last_done = done;
    log->last_total = total;
    return true;
}

static bool stop_now(void * user_data, long done, long total) {
    (void)done;
    (void)total;
    long * calls = user_data;
    (*calls)++;
    return false;
}

static void test_progress(void) {
    test_game game;
    game_init(&game, 6, 1, table_value);
    game_fill_table(&game, 8);
    promptshap_game g = as_game(&game);

    struct progress_log log = { 0, 0, 0, 0, 0 };
    struct promptshap_estimate_params params = promptshap_estimate_default_params();
    params.method = PROMPTSHAP_METHOD_EXACT;
    params.max_group = 8;
    params.progress = keep_going;
    params.progress_user_data = &log;
    promptshap_estimate * est = NULL;
    CHECK(promptshap_estimate_run(&g, &params, &est, NULL) == PROMPTSHAP_OK);
    CHECK(log.n_calls >= 8); /* 64 coalitions in groups of at most 8 */
    CHECK(log.last_total > 0);
    CHECK(log.last_done == log.last_total);
    CHECK(log.n_decreases == 0);
    CHECK(log.n_overruns == 0);
    promptshap_estimate_free(est);

    const enum promptshap_method methods[] = {
        PROMPTSHAP_METHOD_EXACT, PROMPTSHAP_METHOD_PERMUTATION, PROMPTSHAP_METHOD_LOO,
    };
    for (int k = 0; k < 3; k++) {
        long calls = 0;
        params.method = methods[k];
        params.max_group = 2;
        params.progress = stop_now;
        params.progress_user_data = &calls;
        game_reset_counts(&game);
        promptshap_error err;
        est = NULL;
        CHECK(promptshap_estimate_run(&g, &params, &est, &err) == PROMPTSHAP_ERR_CANCELLED);
        CHECK(err.status == PROMPTSHAP_ERR_CANCELLED);
        CHECK(err.message[0] != '\0');
        CHECK(calls == 1);
        CHECK(game.n_calls == 1);
        CHECK(est == NULL);
        promptshap_estimate_free(est);
    }
    game_free(&game);
}

static void test_errors(void) {
    test_game game;
    game_init(&game, 4, 1, additive_value);
    struct promptshap_estimate_params params = promptshap_estimate_default_params();
    params.method = PROMPTSHAP_METHOD_EXACT;
    promptshap_estimate * est = NULL;
    promptshap_error err;

    promptshap_game g = as_game(&game);
    g.n_players = 0;
    CHECK(promptshap_estimate_run(&g, &params, &est, &err) == PROMPTSHAP_ERR_INVALID_ARGUMENT);
    CHECK(err.status == PROMPTSHAP_ERR_INVALID_ARGUMENT);
    CHECK(err.message[0] != '\0');
    CHECK(est == NULL);
    CHECK(promptshap_estimate_run(&g, &params, &est, NULL) == PROMPTSHAP_ERR_INVALID_ARGUMENT);

    g = as_game(&game);
    g.n_outputs = 0;
    CHECK(promptshap_estimate_run(&g, &params, &est, &err) == PROMPTSHAP_ERR_INVALID_ARGUMENT);

    g = as_game(&game);
    params.max_group = 0;
    CHECK(promptshap_estimate_run(&g, &params, &est, &err) == PROMPTSHAP_ERR_INVALID_ARGUMENT);

    params = promptshap_estimate_default_params();
    params.method = PROMPTSHAP_METHOD_PERMUTATION;
    params.n_samples = 0;
    CHECK(promptshap_estimate_run(&g, &params, &est, &err) == PROMPTSHAP_ERR_INVALID_ARGUMENT);

    params.method = (enum promptshap_method)99;
    params.n_samples = 64;
    CHECK(promptshap_estimate_run(&g, &params, &est, &err) == PROMPTSHAP_ERR_INVALID_ARGUMENT);
    CHECK(est == NULL);
    CHECK(game.n_calls == 0);
    params.method = PROMPTSHAP_METHOD_EXACT;
    game_free(&game);

    /* exact rejects more than PROMPTSHAP_EXACT_MAX_UNITS players and names the alternative */
    game_init(&game, PROMPTSHAP_EXACT_MAX_UNITS + 1, 1, additive_value);
    g = as_game(&game);
    CHECK(promptshap_estimate_run(&g, &params, &est, &err) == PROMPTSHAP_ERR_TOO_MANY_UNITS);
    CHECK(err.status == PROMPTSHAP_ERR_TOO_MANY_UNITS);
    CHECK(strstr(err.message, "permutation") != NULL);
    CHECK(est == NULL);
    CHECK(game.n_calls == 0);
    game_free(&game);

    /* an eval error stops the run with the callback's status and message */
    const enum promptshap_method methods[] = {
        PROMPTSHAP_METHOD_EXACT, PROMPTSHAP_METHOD_PERMUTATION, PROMPTSHAP_METHOD_LOO,
    };
    for (int k = 0; k < 3; k++) {
        game_init(&game, 5, 1, additive_value);
        game.fail_on_call = 2;
        game.fail_status = PROMPTSHAP_ERR_NUMERIC;
        g = as_game(&game);
        params.method = methods[k];
        params.max_group = 2;
        memset(&err, 0, sizeof err);
        CHECK(promptshap_estimate_run(&g, &params, &est, &err) == PROMPTSHAP_ERR_NUMERIC);
        CHECK(err.status == PROMPTSHAP_ERR_NUMERIC);
        CHECK(strstr(err.message, FAIL_MESSAGE) != NULL);
        CHECK(game.n_calls == 2);
        CHECK(est == NULL);
        promptshap_estimate_free(est);
        game_free(&game);
    }

    promptshap_estimate_free(NULL);
}

/* Runs last because a library that calls a NULL eval crashes the program. */
static void test_null_eval(void) {
    test_game game;
    game_init(&game, 4, 1, additive_value);
    promptshap_game g = as_game(&game);
    g.eval = NULL;
    struct promptshap_estimate_params params = promptshap_estimate_default_params();
    promptshap_estimate * est = NULL;
    promptshap_error err;
    CHECK(promptshap_estimate_run(&g, &params, &est, &err) == PROMPTSHAP_ERR_INVALID_ARGUMENT);
    CHECK(est == NULL);
    game_free(&game);
}

int main(void) {
    test_defaults();
    test_method_names();
    test_additive();
    test_two_words();
    test_unanimity();
    test_glove();
    test_null_and_symmetry();
    test_vector();
    test_evaluation_counts();
    test_permutation();
    test_antithetic();
    test_std_error_scale();
    test_auto();
    test_max_group();
    test_progress();
    test_errors();
    test_null_eval();
    return CHECK_REPORT();
}
