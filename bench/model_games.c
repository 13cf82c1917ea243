/* SPDX-License-Identifier: MIT
 *
 * Builds complete game files from a real model: for each prompt below, the
 * value of every coalition of its words (the log-probability of the target
 * in nats, summed over target tokens, "none" framing), written in the game
 * file format to DIR/model-nN-K.txt. The values are computed once here and
 * read back by bench_estimators.
 *
 * usage: model_games MODEL DIR
 */
#include "promptshap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char * const prompts[] = {
    "the little girl went to the park with her dog",         /* 10 words */
    "once upon a time a boy found a red ball",               /* 10 words */
    "Tom and his sister wanted to bake a big cake for mom",  /* 12 words */
    "the cat sat on the warm mat all day",                   /* 9 words */
    "Lily saw a bird in the tall tree",                      /* 8 words */
};
static const char * const target = "They were very happy and played together all day.";

int main(int argc, char ** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: model_games MODEL DIR\n");
        return 2;
    }
    promptshap_error err;
    promptshap_model * model = NULL;
    struct promptshap_model_params mp = promptshap_model_default_params();
    if (promptshap_model_load(argv[1], &mp, &model, &err) != PROMPTSHAP_OK) {
        fprintf(stderr, "model_games: %s\n", err.message);
        return 1;
    }
    struct promptshap_score_params sp = promptshap_score_default_params();
    sp.chat = PROMPTSHAP_CHAT_NONE;
    for (size_t k = 0; k < sizeof(prompts) / sizeof(prompts[0]); k++) {
        promptshap_scorer * sc = NULL;
        if (promptshap_scorer_init(model, prompts[k], strlen(prompts[k]), target, strlen(target), &sp, &sc, &err) !=
            PROMPTSHAP_OK) {
            fprintf(stderr, "model_games: %s\n", err.message);
            return 1;
        }
        int n = promptshap_scorer_n_units(sc);
        int T = promptshap_scorer_n_target_tokens(sc);
        long count = 1L << n;
        char path[1024];
        snprintf(path, sizeof(path), "%s/model-n%d-%zu.txt", argv[2], n, k + 1);
        FILE * f = fopen(path, "w");
        if (!f) {
            perror(path);
            return 1;
        }
        fprintf(f, "# players %d\n# stories260K, none framing, prompt '%s', target '%s'; value: log-probability "
                   "of the target in nats\n", n, prompts[k], target);
        const int group = 64;
        uint64_t members[64];
        double * values = malloc((size_t)group * (size_t)T * sizeof(double));
        for (long first = 0; first < count; first += group) {
            int m = (int)(count - first < group ? count - first : group);
            for (int j = 0; j < m; j++) {
                members[j] = (uint64_t)(first + j);
            }
            if (promptshap_scorer_eval(sc, members, m, values, &err) != PROMPTSHAP_OK) {
                fprintf(stderr, "model_games: %s\n", err.message);
                return 1;
            }
            for (int j = 0; j < m; j++) {
                double total = 0.0;
                for (int t = 0; t < T; t++) {
                    total += values[(size_t)j * T + t];
                }
                fprintf(f, "%ld %.17g\n", first + j, total);
            }
        }
        free(values);
        fclose(f);
        fprintf(stderr, "wrote %s (%d players)\n", path, n);
        promptshap_scorer_free(sc);
    }
    promptshap_model_free(model);
    return 0;
}
