/* SPDX-License-Identifier: MIT
 *
 * Generation of the target when the user gives none: the prompt is framed
 * as for scoring, the model answers greedily (or by sampling with a seed),
 * and with harmony framing the answer's channels are parsed by their
 * control tokens (harmony.c).
 */
#include "model.h"

#include <string.h>

struct promptshap_generate_params promptshap_generate_default_params(void) {
    struct promptshap_generate_params p = {
        .n_predict = 128,
        .temperature = 0.0f,
        .seed = 1,
    };
    return p;
}

/* A response without harmony: one message, the bytes of every token but
 * the end token. */
static enum promptshap_status plain_generation(const promptshap_model * model, const int32_t * tokens, int n,
                                               bool stopped, enum promptshap_chat chat,
                                               promptshap_generation ** out, promptshap_error * err) {
    promptshap_generation * gen = calloc(1, sizeof(*gen));
    ps_text answer = { 0 };
    ps_text raw = { 0 };
    bool ok = gen && ps_text_add(&answer, "", 0) && ps_text_add(&raw, "", 0);
    if (ok) {
        gen->chat = chat;
        gen->hit_limit = !stopped;
        gen->n_tokens = n;
        gen->tokens = malloc(((size_t)n + 1) * sizeof(int32_t));
        ok = gen->tokens != NULL;
    }
    for (int i = 0; ok && i < n; i++) {
        gen->tokens[i] = tokens[i];
        char * piece = NULL;
        int len = ps_token_piece(model, tokens[i], &piece);
        ok = len >= 0 && ps_text_add(&raw, piece, (size_t)len);
        if (ok && !(stopped && i == n - 1)) {
            ok = ps_text_add(&answer, piece, (size_t)len);
        }
        free(piece);
    }
    if (ok) {
        gen->messages = calloc(1, sizeof(promptshap_message));
        ok = gen->messages != NULL;
    }
    if (ok) {
        gen->n_messages = 1;
        promptshap_message * m = &gen->messages[0];
        m->role = malloc(sizeof("assistant"));
        if (m->role) {
            memcpy(m->role, "assistant", sizeof("assistant"));
        }
        m->text = answer.data;
        answer.data = NULL;
        m->token_begin = 0;
        m->token_end = stopped ? n - 1 : n;
        m->complete = stopped;
        ok = m->role != NULL;
        gen->text = raw.data;
        raw.data = NULL;
    }
    free(answer.data);
    free(raw.data);
    if (!ok) {
        promptshap_generation_free(gen);
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory while generating");
    }
    *out = gen;
    return PROMPTSHAP_OK;
}

/* The harmony control tokens of a model's vocabulary. */
static struct promptshap_harmony_ids harmony_ids_of(const promptshap_model * model) {
    struct promptshap_harmony_ids h = {
        .start = ps_special_token(model, "<|start|>"),
        .end = ps_special_token(model, "<|end|>"),
        .message = ps_special_token(model, "<|message|>"),
        .channel = ps_special_token(model, "<|channel|>"),
        .constrain = ps_special_token(model, "<|constrain|>"),
        .ret = ps_special_token(model, "<|return|>"),
        .call = ps_special_token(model, "<|call|>"),
    };
    return h;
}

static bool is_harmony_id(const struct promptshap_harmony_ids * h, int32_t t) {
    return t == h->start || t == h->end || t == h->message || t == h->channel || t == h->constrain;
}

/* The text of a token with control tokens written out ("<|channel|>"),
 * malloc'ed and NUL-terminated; NULL when out of memory. */
static char * token_text(const promptshap_model * model, int32_t token) {
    char small[64];
    int n = llama_token_to_piece(model->vocab, token, small, (int32_t)sizeof(small), 0, true);
    char * s = NULL;
    if (n >= 0) {
        s = malloc((size_t)n + 1);
        if (s) {
            memcpy(s, small, (size_t)n);
            s[n] = '\0';
        }
        return s;
    }
    s = malloc((size_t)(-n) + 1);
    if (s) {
        int m = llama_token_to_piece(model->vocab, token, s, -n, 0, true);
        s[m > 0 ? m : 0] = '\0';
    }
    return s;
}

enum promptshap_status promptshap_generate_full(promptshap_model * model, const char * prompt, size_t prompt_len,
                                                const struct promptshap_score_params * sp,
                                                const struct promptshap_generate_params * gp,
                                                promptshap_generation ** out, promptshap_error * err) {
    *out = NULL;
    ps_ok(err);
    struct promptshap_score_params s = sp ? *sp : promptshap_score_default_params();
    struct promptshap_generate_params g = gp ? *gp : promptshap_generate_default_params();
    size_t bad = 0;
    if (prompt_len == 0) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT, "the prompt is empty");
    }
    if (!promptshap_utf8_valid(prompt, prompt_len, &bad)) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT,
                       "the prompt is not valid UTF-8 text: byte 0x%02x at offset %zu%s",
                       (unsigned)(unsigned char)prompt[bad], bad, prompt[bad] == 0 ? " (a NUL byte)" : "");
    }
    if (g.n_predict < 1) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "the number of tokens to generate must be at least 1, got %d",
                       g.n_predict);
    }
    if (!(g.temperature >= 0.0f)) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "the temperature must be 0 or more, got %g",
                       (double)g.temperature);
    }

    /* framing and prompt tokens; harmony leaves the channel to the model */
    enum promptshap_chat chat = ps_resolve_chat(model, &s);
    ps_framing fr;
    enum promptshap_status st = ps_framing_build(model, chat, &s, false, &fr, err);
    if (st != PROMPTSHAP_OK) {
        return st;
    }
    int32_t * body = NULL;
    /* the user's text never produces control tokens */
    int n_body = ps_tokenize(model, prompt, prompt_len, false, false, &body);
    int n_prompt = fr.n_head + (n_body > 0 ? n_body : 0) + fr.n_tail;
    int32_t * tokens = malloc(((size_t)n_prompt + (size_t)g.n_predict + 1) * sizeof(int32_t));
    char ** pieces = calloc((size_t)g.n_predict + 1, sizeof(char *));
    if (n_body < 0 || !tokens || !pieces) {
        free(body);
        free(tokens);
        free(pieces);
        ps_framing_free(&fr);
        return ps_fail(err, n_body < 0 ? PROMPTSHAP_ERR_DECODE : PROMPTSHAP_ERR_NO_MEMORY,
                       n_body < 0 ? "tokenizing the prompt failed" : "out of memory");
    }
    memcpy(tokens, fr.head, (size_t)fr.n_head * sizeof(int32_t));
    if (n_body > 0) {
        memcpy(tokens + fr.n_head, body, (size_t)n_body * sizeof(int32_t));
    }
    if (fr.n_tail > 0) {
        memcpy(tokens + fr.n_head + n_body, fr.tail, (size_t)fr.n_tail * sizeof(int32_t));
    }
    free(body);
    ps_framing_free(&fr);

    int n_limit = s.n_ctx > 0 ? s.n_ctx : llama_model_n_ctx_train(model->lm);
    if (n_prompt + g.n_predict > n_limit) {
        free(tokens);
        free(pieces);
        return ps_fail(err, PROMPTSHAP_ERR_TOO_LONG,
                       "the prompt needs %d tokens and generation up to %d more, more than the context size %d; "
                       "lower -n or raise -c",
                       n_prompt, g.n_predict, n_limit);
    }

    /* context, sampler */
    int n_ctx = n_prompt + g.n_predict;
    struct llama_context * ctx = ps_context_new(model, n_ctx, n_prompt > 1 ? n_prompt : 1, 1, 1, s.n_threads);
    if (!ctx) {
        free(tokens);
        free(pieces);
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "libllama could not create a context of %d tokens", n_ctx);
    }
    if (s.should_stop) {
        llama_set_abort_callback(ctx, s.should_stop, s.should_stop_data);
    }
    struct llama_sampler * smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    if (g.temperature > 0.0f) {
        llama_sampler_chain_add(smpl, llama_sampler_init_temp(g.temperature));
        llama_sampler_chain_add(smpl, llama_sampler_init_dist((uint32_t)g.seed));
    } else {
        llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
    }
    struct promptshap_harmony_ids h = harmony_ids_of(model);

    /* decode the prompt, then one token at a time */
    struct llama_batch batch = llama_batch_get_one(tokens, n_prompt);
    int n_generated = 0;
    bool stopped = false; /* at an end token */
    while (n_generated < g.n_predict) {
        if (s.should_stop && s.should_stop(s.should_stop_data)) {
            st = ps_fail(err, PROMPTSHAP_ERR_CANCELLED, "cancelled");
            break;
        }
        int ret = llama_decode(ctx, batch);
        if (ret != 0) {
            st = ps_fail(err, ret == 2 ? PROMPTSHAP_ERR_CANCELLED : PROMPTSHAP_ERR_DECODE,
                         ret == 2 ? "cancelled" : "llama_decode failed while generating (code %d)", ret);
            break;
        }
        int32_t tok = llama_sampler_sample(smpl, ctx, -1);
        tokens[n_prompt + n_generated] = tok;
        pieces[n_generated] = token_text(model, tok);
        if (!pieces[n_generated]) {
            st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory while generating");
            break;
        }
        batch = llama_batch_get_one(&tokens[n_prompt + n_generated], 1);
        n_generated++;
        /* harmony continues past <|end|>: only <|return|>, <|call|> or
         * another end-of-generation token ends the response */
        if (chat == PROMPTSHAP_CHAT_HARMONY) {
            if (tok == h.ret || tok == h.call || (llama_vocab_is_eog(model->vocab, tok) && !is_harmony_id(&h, tok))) {
                stopped = true;
                break;
            }
        } else if (llama_vocab_is_eog(model->vocab, tok)) {
            stopped = true;
            break;
        }
    }
    llama_sampler_free(smpl);
    llama_free(ctx);

    promptshap_generation * gen = NULL;
    if (st == PROMPTSHAP_OK && chat == PROMPTSHAP_CHAT_HARMONY) {
        st = promptshap_harmony_parse(tokens + n_prompt, (const char * const *)pieces, n_generated, &h, "assistant",
                                      !stopped, &gen, err);
    } else if (st == PROMPTSHAP_OK) {
        st = plain_generation(model, tokens + n_prompt, n_generated, stopped, chat, &gen, err);
    }
    for (int i = 0; i < n_generated; i++) {
        free(pieces[i]);
    }
    free(pieces);
    free(tokens);
    if (st != PROMPTSHAP_OK) {
        return st;
    }
    gen->chat = chat;
    *out = gen;
    return PROMPTSHAP_OK;
}

enum promptshap_status promptshap_generate(promptshap_model * model, const char * prompt, size_t prompt_len,
                                           const struct promptshap_score_params * sp,
                                           const struct promptshap_generate_params * gp, char ** text,
                                           promptshap_error * err) {
    *text = NULL;
    promptshap_generation * gen = NULL;
    enum promptshap_status st = promptshap_generate_full(model, prompt, prompt_len, sp, gp, &gen, err);
    if (st != PROMPTSHAP_OK) {
        return st;
    }
    const char * channel = NULL;
    if (gen->chat == PROMPTSHAP_CHAT_HARMONY) {
        channel = gp && gp->channel ? gp->channel : "final";
    }
    char * answer = promptshap_generation_channel_text(gen, channel);
    int n_tokens = gen->n_tokens;
    promptshap_generation_free(gen);
    if (!answer && channel) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT,
                       "the model wrote no %s-channel message in %d tokens; raise -n, or give the target with "
                       "--target",
                       channel, n_tokens);
    }
    if (!answer || answer[0] == '\0') {
        free(answer);
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT,
                       "the model generated an empty answer%s%s; give the target with --target",
                       channel ? " on the channel " : "", channel ? channel : "");
    }
    *text = answer;
    return PROMPTSHAP_OK;
}
