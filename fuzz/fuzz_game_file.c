/* SPDX-License-Identifier: MIT
 *
 * Fuzzes the game-file reader (promptshap_game_table_read) with the input
 * as the file. A table it accepts must have 1 to PROMPTSHAP_EXACT_MAX_UNITS
 * players and finite values. Exact enumeration and one other estimator then
 * run on it, and the exact values must satisfy efficiency when the table's
 * values are at most 1e6 in magnitude.
 */
#include "fuzz.h"

static const enum promptshap_method methods[] = {
    PROMPTSHAP_METHOD_EXACT,  PROMPTSHAP_METHOD_PERMUTATION, PROMPTSHAP_METHOD_LOO,     PROMPTSHAP_METHOD_KERNEL,
    PROMPTSHAP_METHOD_LEVERAGE, PROMPTSHAP_METHOD_BANZHAF,   PROMPTSHAP_METHOD_AUTO,
};

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof(path));
    FUZZ_ASSERT(fd >= 0);
    promptshap_game_table * table = NULL;
    promptshap_error err;
    enum promptshap_status st = promptshap_game_table_read(path, &table, &err);
    close(fd);
    FUZZ_ASSERT(err.status == st);
    if (st != PROMPTSHAP_OK) {
        FUZZ_ASSERT(table == NULL);
        FUZZ_ASSERT(err.message[0] != '\0');
        return 0;
    }

    FUZZ_ASSERT(table->n_players >= 1 && table->n_players <= PROMPTSHAP_EXACT_MAX_UNITS);
    const long count = 1L << table->n_players;
    double max_abs = 0.0;
    for (long k = 0; k < count; k++) {
        FUZZ_ASSERT(isfinite(table->values[k]));
        max_abs = fmax(max_abs, fabs(table->values[k]));
    }

    /* one exact run, then a method chosen by the input's size */
    promptshap_game game = promptshap_game_table_game(table);
    for (int pass = 0; pass < 2; pass++) {
        struct promptshap_estimate_params p = promptshap_estimate_default_params();
        p.method = pass == 0 ? PROMPTSHAP_METHOD_EXACT : methods[size % (sizeof(methods) / sizeof(methods[0]))];
        p.budget = 64 + (long)(size % 200);
        p.seed = size;
        promptshap_estimate * e = NULL;
        st = promptshap_estimate_run(&game, &p, &e, &err);
        if (st != PROMPTSHAP_OK) {
            FUZZ_ASSERT(e == NULL);
            continue;
        }
        FUZZ_ASSERT(e->n_players == table->n_players);
        if (pass == 0 && max_abs <= 1e6) {
            FUZZ_ASSERT(e->efficiency_gap <= 1e-6);
        }
        promptshap_estimate_free(e);
    }
    promptshap_game_table_free(table);
    return 0;
}
