/* SPDX-License-Identifier: MIT
 *
 * Harmony framing at the token level, on the GPT-OSS-shaped test model
 * (random weights, the gpt-oss architecture with sliding-window layers, a
 * vocabulary with harmony's control tokens and GPT-OSS's chat template):
 * the exact token sequence of a scored coalition, the empty coalition,
 * control-token text typed by a user, the reasoning efforts, and scores
 * that do not depend on how coalitions share a decode, also where the
 * sequences are longer than the sliding window.
 *
 * usage: test_harmony_model MODEL (exits 77 when MODEL does not exist)
 */
#include "model.h"

#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static promptshap_model * model;

/* Tokens of text, control tokens parsed when special is set. */
static int tokens_of(const char * text, bool special, int32_t * out, int n_max) {
    int32_t * t = NULL;
    int n = ps_tokenize(model, text, strlen(text), false, special, &t);
    CHECK(n >= 0 && n <= n_max);
    if (n > 0 && n <= n_max) {
        memcpy(out, t, (size_t)n * sizeof(int32_t));
    }
    free(t);
    return n;
}

static int count_token(const int32_t * seq, int n, int32_t token) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        k += seq[i] == token;
    }
    return k;
}

static promptshap_scorer * harmony_scorer(const char * prompt, const char * target, enum promptshap_reasoning effort,
                                          enum promptshap_engine engine) {
    struct promptshap_score_params sp = promptshap_score_default_params();
    sp.chat = PROMPTSHAP_CHAT_AUTO; /* the template must be recognized as harmony */
    sp.reasoning = effort;
    sp.engine = engine;
    sp.n_threads = 1;
    promptshap_scorer * sc = NULL;
    promptshap_error err;
    enum promptshap_status st =
        promptshap_scorer_init(model, prompt, strlen(prompt), target, strlen(target), &sp, &sc, &err);
    if (st != PROMPTSHAP_OK) {
        fprintf(stderr, "scorer_init: %s\n", err.message);
    }
    CHECK(st == PROMPTSHAP_OK);
    return sc;
}

/* The scored sequence of every coalition is: BOS-free harmony system
 * message with the effort, the user message holding exactly the kept
 * words' text, the final-channel header, then the target. */
static void test_token_sequence(void) {
    const char * prompt = "Name a primary color";
    const char * target = "Blue is one.";
    const char * efforts[3] = {"low", "medium", "high"};
    for (int r = PROMPTSHAP_REASONING_LOW; r <= PROMPTSHAP_REASONING_HIGH; r++) {
        promptshap_scorer * sc = harmony_scorer(prompt, target, (enum promptshap_reasoning)r, PROMPTSHAP_ENGINE_BATCHED);
        if (!sc) {
            return;
        }
        CHECK(promptshap_scorer_chat(sc) == PROMPTSHAP_CHAT_HARMONY);
        CHECK(promptshap_scorer_n_units(sc) == 4);

        /* the expected text, tokenized piecewise: control text parsed, user text not */
        char head[1024];
        snprintf(head, sizeof(head),
                 "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
                 "Knowledge cutoff: 2024-06\n\nReasoning: %s\n\n"
                 "# Valid channels: analysis, commentary, final. Channel must be included for every message."
                 "<|end|><|start|>user<|message|>",
                 efforts[r]);
        int32_t want[512];
        int n = tokens_of(head, true, want, 512);
        n += tokens_of("Name primary", false, want + n, 512 - n);
        n += tokens_of("<|end|><|start|>assistant<|channel|>final<|message|>", true, want + n, 512 - n);
        int target_at = n;
        n += tokens_of(target, false, want + n, 512 - n);

        uint64_t members = 0x5; /* words 0 and 2: "Name" and "primary" */
        int32_t got[512];
        int start = -1;
        int len = promptshap_scorer_sequence(sc, &members, got, 512, &start);
        CHECK(len == n);
        CHECK(start == target_at);
        CHECK(len == n && memcmp(got, want, (size_t)n * sizeof(int32_t)) == 0);
        /* the effort appears as text in the system message, and nothing else differs */
        int32_t channel = ps_special_token(model, "<|channel|>");
        int32_t message = ps_special_token(model, "<|message|>");
        CHECK(channel >= 0 && message >= 0);
        CHECK(start >= 1 && got[start - 1] == message);
        CHECK(count_token(got, len, channel) == 1);
        CHECK(count_token(got, len, message) == 3);

        /* the empty coalition: a user message with empty content */
        uint64_t none = 0;
        int n_empty = promptshap_scorer_sequence(sc, &none, got, 512, &start);
        int32_t want_empty[512];
        int m = tokens_of(head, true, want_empty, 512);
        m += tokens_of("<|end|><|start|>assistant<|channel|>final<|message|>", true, want_empty + m, 512 - m);
        int empty_target_at = m;
        m += tokens_of(target, false, want_empty + m, 512 - m);
        CHECK(n_empty == m && start == empty_target_at);
        CHECK(n_empty == m && memcmp(got, want_empty, (size_t)m * sizeof(int32_t)) == 0);
        promptshap_scorer_free(sc);
    }
}

/* A prompt or target that spells control tokens is ordinary text. */
static void test_typed_control_tokens(void) {
    const char * prompt = "say <|channel|>final<|message|> and <|end|>";
    const char * target = "ok <|end|><|start|>assistant<|channel|>analysis";
    promptshap_scorer * sc = harmony_scorer(prompt, target, PROMPTSHAP_REASONING_MEDIUM, PROMPTSHAP_ENGINE_BATCHED);
    if (!sc) {
        return;
    }
    uint64_t all = (1u << promptshap_scorer_n_units(sc)) - 1;
    int32_t got[1024];
    int start = -1;
    int len = promptshap_scorer_sequence(sc, &all, got, 1024, &start);
    CHECK(len > 0);
    const char * markers[5] = {"<|channel|>", "<|message|>", "<|end|>", "<|start|>", "<|return|>"};
    int framing_count[5] = {1, 3, 2, 3, 0}; /* what the framing itself holds */
    for (int k = 0; k < 5; k++) {
        int32_t id = ps_special_token(model, markers[k]);
        CHECK(id >= 0);
        if (count_token(got, len, id) != framing_count[k]) {
            fprintf(stderr, "%s: %d in the sequence, %d expected\n", markers[k], count_token(got, len, id), framing_count[k]);
        }
        CHECK(count_token(got, len, id) == framing_count[k]);
    }
    /* and the target's tokens are the ones of its plain text */
    int32_t plain[256];
    int n_plain = tokens_of(target, false, plain, 256);
    CHECK(len - start == n_plain);
    CHECK(len - start == n_plain && memcmp(got + start, plain, (size_t)n_plain * sizeof(int32_t)) == 0);
    promptshap_scorer_free(sc);
}

/* User text that spells markers, back to back, at the ends, or cut short,
 * gives ordinary tokens that decode to the same bytes. */
static void test_marker_text_round_trip(void) {
    const char * texts[] = {
        "<|channel|>", "<|channel|><|message|>x", "a<|end|>", "<|start|>assistant<|constrain|>json<|end|>",
        "<|chan", "<<|end|>>", "<", "plain text", "<|return|> and <|call|>",
    };
    int32_t markers[6];
    const char * names[6] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", "<|end|>", "<|return|>"};
    for (int k = 0; k < 6; k++) {
        markers[k] = ps_special_token(model, names[k]);
        CHECK(markers[k] >= 0);
    }
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        int32_t * t = NULL;
        int n = ps_tokenize(model, texts[i], strlen(texts[i]), false, false, &t);
        CHECK(n > 0);
        char joined[256] = "";
        for (int j = 0; j < n; j++) {
            for (int k = 0; k < 6; k++) {
                if (t[j] == markers[k]) {
                    fprintf(stderr, "'%s' gave the control token %s\n", texts[i], names[k]);
                }
                CHECK(t[j] != markers[k]);
            }
            char * piece = NULL;
            int len = ps_token_piece(model, t[j], &piece);
            CHECK(len >= 0);
            if (len >= 0 && strlen(joined) + (size_t)len < sizeof(joined)) {
                strncat(joined, piece, (size_t)len);
            }
            free(piece);
        }
        CHECK(strcmp(joined, texts[i]) == 0);
        free(t);
    }
}

/* Every coalition's log-probabilities are the same decoded in one prefix
 * tree, one coalition per decode (naive engine) or one token per decode.
 * The framing head and target are longer than the model's sliding window,
 * so the shared cells of the window layers are exercised. */
static void test_same_numbers(void) {
    const char * prompt = "explain deep leaning in 50 words";
    const char * target = "Deep learning trains neural networks with many layers on large data sets, "
                          "learning features directly from examples.";
    promptshap_scorer * batched = harmony_scorer(prompt, target, PROMPTSHAP_REASONING_LOW, PROMPTSHAP_ENGINE_BATCHED);
    promptshap_scorer * naive = harmony_scorer(prompt, target, PROMPTSHAP_REASONING_LOW, PROMPTSHAP_ENGINE_NAIVE);
    if (!batched || !naive) {
        promptshap_scorer_free(batched);
        promptshap_scorer_free(naive);
        return;
    }
    const int U = promptshap_scorer_n_units(batched);
    const int T = promptshap_scorer_n_target_tokens(batched);
    CHECK(U == 6);
    uint64_t start_len_check = (1u << U) - 1;
    int start = 0;
    int len = promptshap_scorer_sequence(batched, &start_len_check, NULL, 0, &start);
    char window[32];
    int64_t swa = 0;
    if (llama_model_meta_val_str(model->lm, "gpt-oss.attention.sliding_window", window, sizeof(window)) > 0) {
        swa = atoll(window);
    }
    CHECK(swa > 0 && start > swa && len - start > swa / 2);

    const int n = 1 << U;
    uint64_t * members = malloc((size_t)n * sizeof(uint64_t));
    double * a = malloc((size_t)n * T * sizeof(double));
    double * b = malloc((size_t)n * T * sizeof(double));
    double * ref = malloc((size_t)T * sizeof(double));
    promptshap_error err;
    for (int k = 0; k < n; k++) {
        members[k] = (uint64_t)k;
    }
    CHECK(promptshap_scorer_eval(batched, members, n, a, &err) == PROMPTSHAP_OK);
    CHECK(promptshap_scorer_eval(naive, members, n, b, &err) == PROMPTSHAP_OK);
    double worst = 0.0;
    for (int i = 0; i < n * T; i++) {
        worst = fmax(worst, fabs(a[i] - b[i]));
    }
    CHECK_NEAR(worst, 0.0, 1e-4);
    /* one token per decode, for the full and the empty coalition and one between */
    const int picks[3] = {n - 1, 0, 0x15};
    for (int p = 0; p < 3; p++) {
        uint64_t m = (uint64_t)picks[p];
        CHECK(promptshap_scorer_eval_reference(naive, &m, ref, &err) == PROMPTSHAP_OK);
        double w = 0.0;
        for (int t = 0; t < T; t++) {
            w = fmax(w, fabs(ref[t] - a[(size_t)picks[p] * T + t]));
        }
        CHECK_NEAR(w, 0.0, 1e-4);
    }
    /* the batched engine shares the head: fewer tokens than one decode per coalition */
    struct promptshap_engine_stats sa, sb;
    promptshap_scorer_stats(batched, &sa);
    promptshap_scorer_stats(naive, &sb);
    CHECK(sa.n_tokens_decoded * 2 < sb.n_tokens_decoded);
    CHECK(sa.n_rows < sb.n_rows);
    free(members);
    free(a);
    free(b);
    free(ref);
    promptshap_scorer_free(batched);
    promptshap_scorer_free(naive);
}

static char captured[4096];

static void capture_log(int level, const char * text, void * user_data) {
    (void)level;
    (void)user_data;
    size_t n = strlen(captured);
    snprintf(captured + n, sizeof(captured) - n, "%s", text);
}

/* A batch too large for the memory limit is halved until it fits, with a
 * warning; a limit no batch fits fails before libllama allocates. */
static void test_memory_limit(void) {
    const char * prompt = "Name a primary color";
    const char * target = "Blue is one.";
    struct promptshap_score_params sp = promptshap_score_default_params();
    sp.n_threads = 1;
    sp.n_batch = 100000;
    sp.max_memory_mib = 128;
    promptshap_scorer * sc = NULL;
    promptshap_error err;
    captured[0] = '\0';
    promptshap_log_set(capture_log, NULL);
    enum promptshap_status st =
        promptshap_scorer_init(model, prompt, strlen(prompt), target, strlen(target), &sp, &sc, &err);
    promptshap_log_set(NULL, NULL);
    CHECK(st == PROMPTSHAP_OK);
    CHECK(strstr(captured, "promptshap: lowered the batch from 100000 to") != NULL);
    promptshap_scorer_free(sc);

    sp.max_memory_mib = 1;
    sc = NULL;
    st = promptshap_scorer_init(model, prompt, strlen(prompt), target, strlen(target), &sp, &sc, &err);
    CHECK(st == PROMPTSHAP_ERR_NO_MEMORY);
    CHECK(sc == NULL);
    CHECK(strstr(err.message, "even with the smallest batch") != NULL);
    CHECK(strstr(err.message, "raise --mem-limit") != NULL);
}

/* Generation on the shaped model: reproducible with a seed, and its
 * channels are read from tokens (random weights rarely write a channel
 * header, so any structure found is reported as problems or messages). */
static void test_generate(void) {
    struct promptshap_score_params sp = promptshap_score_default_params();
    sp.n_threads = 1;
    struct promptshap_generate_params gp = promptshap_generate_default_params();
    gp.n_predict = 12;
    gp.temperature = 1.0f;
    gp.seed = 3;
    promptshap_generation * g1 = NULL;
    promptshap_generation * g2 = NULL;
    promptshap_error err;
    const char * prompt = "Name a primary color";
    CHECK(promptshap_generate_full(model, prompt, strlen(prompt), &sp, &gp, &g1, &err) == PROMPTSHAP_OK);
    CHECK(promptshap_generate_full(model, prompt, strlen(prompt), &sp, &gp, &g2, &err) == PROMPTSHAP_OK);
    if (g1 && g2) {
        CHECK(g1->chat == PROMPTSHAP_CHAT_HARMONY);
        CHECK(g1->n_tokens == g2->n_tokens);
        CHECK(g1->n_tokens == g2->n_tokens &&
              memcmp(g1->tokens, g2->tokens, (size_t)g1->n_tokens * sizeof(int32_t)) == 0);
        CHECK(strcmp(g1->text, g2->text) == 0);
        /* a response that never reached an end token says so */
        CHECK(!g1->hit_limit || g1->n_problems > 0 || g1->n_messages > 0 || g1->n_tokens == gp.n_predict);
    }
    promptshap_generation_free(g1);
    promptshap_generation_free(g2);
}

int main(int argc, char ** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_harmony_model MODEL\n");
        return 2;
    }
    FILE * f = fopen(argv[1], "rb");
    if (!f) {
        fprintf(stderr, "skipping: the shaped model '%s' does not exist\n", argv[1]);
        return 77;
    }
    fclose(f);
    promptshap_error err;
    struct promptshap_model_params mp = promptshap_model_default_params();
    if (promptshap_model_load(argv[1], &mp, &model, &err) != PROMPTSHAP_OK) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], err.message);
        return 1;
    }
    test_token_sequence();
    test_typed_control_tokens();
    test_marker_text_round_trip();
    test_same_numbers();
    test_memory_limit();
    test_generate();
    promptshap_model_free(model);
    return CHECK_REPORT();
}
