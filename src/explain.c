/* SPDX-License-Identifier: MIT
 *
 * The main job end to end: a scorer for the (prompt, target) pair, an
 * estimator over its units, and the target's sentences mapped to tokens
 * through the tokens' byte ranges.
 */
#include "model.h"

#include <math.h>
#include <string.h>

struct promptshap_explain_params promptshap_explain_default_params(void) {
    struct promptshap_explain_params p = {
        .score = promptshap_score_default_params(),
        .estimate = promptshap_estimate_default_params(),
        .sentences = false,
    };
    return p;
}

static void free_sentences(promptshap_sentence * s, int n) {
    for (int k = 0; s && k < n; k++) {
        free(s[k].sum);
        free(s[k].sum_abs);
        free(s[k].mean_abs);
    }
    free(s);
}

void promptshap_result_free(promptshap_result * r) {
    if (!r) {
        return;
    }
    free(r->prompt);
    free(r->target);
    free(r->units);
    for (int t = 0; r->target_tokens && t < r->n_target_tokens; t++) {
        free(r->target_tokens[t].text);
    }
    free(r->target_tokens);
    promptshap_estimate_free(r->estimate);
    free_sentences(r->sentences, r->n_sentences);
    free(r);
}

int promptshap_sentence_top_units(const promptshap_result * r, int sentence, int * units, int n_max) {
    const promptshap_sentence * s = &r->sentences[sentence];
    int n = n_max < r->n_units ? n_max : r->n_units;
    for (int a = 0; a < n; a++) {
        /* selection by |sum|, ties to the lower index */
        int best = -1;
        for (int i = 0; i < r->n_units; i++) {
            bool taken = false;
            for (int b = 0; b < a; b++) {
                taken = taken || units[b] == i;
            }
            if (!taken && (best < 0 || fabs(s->sum[i]) > fabs(s->sum[best]))) {
                best = i;
            }
        }
        units[a] = best;
    }
    return n;
}

/* The byte where a token's visible text starts: its first non-whitespace
 * byte, or its start when it is all whitespace. */
static size_t token_anchor(const promptshap_result * r, int t) {
    promptshap_span s = r->target_tokens[t].span;
    for (size_t b = s.start; b < s.end; b++) {
        if (!strchr(" \t\n\r\v\f", r->target[b])) {
            return b;
        }
    }
    return s.start;
}

/* Splits the target into sentences and aggregates the matrix over each
 * sentence's tokens. A token belongs to the sentence that contains its
 * anchor byte; a whitespace token between two sentences belongs to the
 * earlier one. */
static enum promptshap_status build_sentences(promptshap_result * r, promptshap_error * err) {
    promptshap_span * spans = NULL;
    size_t n = 0;
    size_t target_len = strlen(r->target);
    if (promptshap_split_sentences(r->target, target_len, &spans, &n) != PROMPTSHAP_OK) {
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory splitting the target into sentences");
    }
    const int U = r->n_units;
    const int T = r->n_target_tokens;
    int * owner = malloc(((size_t)T + 1) * sizeof(int));
    r->sentences = calloc(n + 1, sizeof(promptshap_sentence));
    if (!owner || !r->sentences) {
        free(spans);
        free(owner);
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
    }
    r->n_sentences = (int)n;

    /* the owner of each token: the last sentence that starts at or before its anchor */
    size_t s = 0;
    for (int t = 0; t < T; t++) {
        size_t a = token_anchor(r, t);
        while (s + 1 < n && spans[s + 1].start <= a) {
            s++;
        }
        owner[t] = n > 0 ? (int)s : -1;
    }

    for (size_t k = 0; k < n; k++) {
        promptshap_sentence * sen = &r->sentences[k];
        sen->span = spans[k];
        sen->sum = calloc((size_t)U, sizeof(double));
        sen->sum_abs = calloc((size_t)U, sizeof(double));
        sen->mean_abs = calloc((size_t)U, sizeof(double));
        if (!sen->sum || !sen->sum_abs || !sen->mean_abs) {
            free(spans);
            free(owner);
            return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
        }
        sen->token_begin = -1;
        sen->token_end = -1;
        for (int t = 0; t < T; t++) {
            if (owner[t] != (int)k) {
                continue;
            }
            if (sen->token_begin < 0) {
                sen->token_begin = t;
            }
            sen->token_end = t + 1;
            for (int i = 0; i < U; i++) {
                double v = r->estimate->matrix[(size_t)i * T + t];
                sen->sum[i] += v;
                sen->sum_abs[i] += fabs(v);
            }
        }
        if (sen->token_begin < 0) {
            sen->token_begin = sen->token_end = k > 0 ? r->sentences[k - 1].token_end : 0;
        }
        int count = sen->token_end - sen->token_begin;
        for (int i = 0; i < U; i++) {
            sen->mean_abs[i] = count > 0 ? sen->sum_abs[i] / count : 0.0;
        }
    }
    free(spans);
    free(owner);
    return PROMPTSHAP_OK;
}

/* Fills the parts of a result that come from the scorer. */
static enum promptshap_status result_from_scorer(promptshap_result * r, const promptshap_scorer * sc,
                                                 const char * prompt, size_t prompt_len, const char * target,
                                                 size_t target_len, enum promptshap_unit_kind kind,
                                                 promptshap_error * err) {
    r->chat = promptshap_scorer_chat(sc);
    r->unit_kind = kind;
    r->n_units = promptshap_scorer_n_units(sc);
    r->n_target_tokens = promptshap_scorer_n_target_tokens(sc);
    r->prompt = malloc(prompt_len + 1);
    r->target = malloc(target_len + 1);
    r->units = calloc((size_t)r->n_units, sizeof(promptshap_span));
    r->target_tokens = calloc((size_t)r->n_target_tokens, sizeof(promptshap_target_token));
    if (!r->prompt || !r->target || !r->units || !r->target_tokens) {
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
    }
    memcpy(r->prompt, prompt, prompt_len);
    r->prompt[prompt_len] = '\0';
    memcpy(r->target, target, target_len);
    r->target[target_len] = '\0';
    for (int i = 0; i < r->n_units; i++) {
        r->units[i] = promptshap_scorer_unit(sc, i);
    }
    for (int t = 0; t < r->n_target_tokens; t++) {
        const char * text = NULL;
        promptshap_target_token * tok = &r->target_tokens[t];
        tok->id = promptshap_scorer_target_token(sc, t, &text, &tok->span);
        tok->text = malloc(strlen(text) + 1);
        if (!tok->text) {
            return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
        }
        memcpy(tok->text, text, strlen(text) + 1);
    }
    return PROMPTSHAP_OK;
}

enum promptshap_status promptshap_explain(promptshap_model * model, const char * prompt, size_t prompt_len,
                                          const char * target, size_t target_len,
                                          const struct promptshap_explain_params * params,
                                          promptshap_result ** out, promptshap_error * err) {
    *out = NULL;
    ps_ok(err);
    struct promptshap_explain_params p = params ? *params : promptshap_explain_default_params();
    double t0 = ps_now();

    /* the value function */
    promptshap_scorer * sc = NULL;
    enum promptshap_status st = promptshap_scorer_init(model, prompt, prompt_len, target, target_len, &p.score, &sc, err);
    if (st != PROMPTSHAP_OK) {
        return st;
    }
    promptshap_result * r = calloc(1, sizeof(*r));
    if (!r) {
        promptshap_scorer_free(sc);
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
    }
    st = result_from_scorer(r, sc, prompt, prompt_len, target, target_len, p.score.units, err);
    if (st != PROMPTSHAP_OK) {
        goto done;
    }

    /* the estimator */
    promptshap_game game = promptshap_scorer_game(sc);
    st = promptshap_estimate_run(&game, &p.estimate, &r->estimate, err);
    if (st != PROMPTSHAP_OK) {
        goto done;
    }
    for (int t = 0; t < r->n_target_tokens; t++) {
        r->target_tokens[t].logprob = r->estimate->v_full[t];
    }

    /* the sentence view */
    if (p.sentences) {
        st = build_sentences(r, err);
    }

done:
    promptshap_scorer_stats(sc, &r->engine);
    promptshap_scorer_free(sc);
    if (st != PROMPTSHAP_OK) {
        promptshap_result_free(r);
        return st;
    }
    r->seconds = ps_now() - t0;
    *out = r;
    return PROMPTSHAP_OK;
}

enum promptshap_status promptshap_logprob(promptshap_model * model, const char * prompt, size_t prompt_len,
                                          const char * target, size_t target_len,
                                          const struct promptshap_score_params * params, promptshap_result ** out,
                                          promptshap_error * err) {
    *out = NULL;
    ps_ok(err);
    struct promptshap_score_params p = params ? *params : promptshap_score_default_params();
    double t0 = ps_now();
    promptshap_scorer * sc = NULL;
    enum promptshap_status st = promptshap_scorer_init(model, prompt, prompt_len, target, target_len, &p, &sc, err);
    if (st != PROMPTSHAP_OK) {
        return st;
    }
    promptshap_result * r = calloc(1, sizeof(*r));
    double * values = NULL;
    uint64_t * all = NULL;
    if (!r) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    st = result_from_scorer(r, sc, prompt, prompt_len, target, target_len, p.units, err);
    if (st != PROMPTSHAP_OK) {
        goto done;
    }

    /* the full prompt is the only coalition */
    values = malloc((size_t)r->n_target_tokens * sizeof(double));
    all = calloc((size_t)PROMPTSHAP_MASK_WORDS(r->n_units), sizeof(uint64_t));
    if (!values || !all) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    for (int i = 0; i < r->n_units; i++) {
        ps_mask_set(all, i);
    }
    st = promptshap_scorer_eval(sc, all, 1, values, err);
    for (int t = 0; st == PROMPTSHAP_OK && t < r->n_target_tokens; t++) {
        r->target_tokens[t].logprob = values[t];
    }

done:
    free(values);
    free(all);
    if (r) {
        promptshap_scorer_stats(sc, &r->engine);
    }
    promptshap_scorer_free(sc);
    if (st != PROMPTSHAP_OK) {
        promptshap_result_free(r);
        return st;
    }
    r->seconds = ps_now() - t0;
    *out = r;
    return PROMPTSHAP_OK;
}
