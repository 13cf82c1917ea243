/* SPDX-License-Identifier: MIT
 *
 * Generation of the target when the user gives none: the prompt is framed
 * as for scoring, the model answers greedily (or by sampling with a seed),
 * and with harmony framing the answer's channels are parsed by their
 * control tokens so that only the final channel's text is kept.
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

/* Growable byte buffer. */
typedef struct {
    char * data;
    size_t n;
    size_t cap;
} text_buf;

static bool text_append(text_buf * b, const char * s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n + 1) {
            cap *= 2;
        }
        char * d = realloc(b->data, cap);
        if (!d) {
            return false;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->n, s, n);
    b->n += n;
    b->data[b->n] = '\0';
    return true;
}

/* Harmony control tokens, -1 where the vocabulary lacks one. */
typedef struct {
    int32_t start, end, message, channel, ret, call;
} harmony_ids;

/* Position of the harmony parser within a message. */
enum harmony_state {
    IN_HEADER,  /* after <|start|>: role, then <|channel|> name */
    IN_CHANNEL, /* after <|channel|>: the channel name */
    IN_MESSAGE, /* after <|message|>: content until <|end|>, <|return|> or <|call|> */
};

enum promptshap_status promptshap_generate(promptshap_model * model, const char * prompt, size_t prompt_len,
                                           const struct promptshap_score_params * sp,
                                           const struct promptshap_generate_params * gp, char ** text,
                                           promptshap_error * err) {
    *text = NULL;
    ps_ok(err);
    struct promptshap_score_params s = sp ? *sp : promptshap_score_default_params();
    struct promptshap_generate_params g = gp ? *gp : promptshap_generate_default_params();
    size_t bad = 0;
    if (prompt_len == 0) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT, "the prompt is empty");
    }
    if (!promptshap_utf8_valid(prompt, prompt_len, &bad)) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT, "the prompt is not valid UTF-8 text: byte %zu", bad);
    }
    if (g.n_predict < 1) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "the number of tokens to generate must be at least 1, got %d",
                       g.n_predict);
    }

    /* framing and prompt tokens; harmony leaves the channel to the model */
    enum promptshap_chat chat = ps_resolve_chat(model, &s);
    ps_framing fr;
    enum promptshap_status st = ps_framing_build(model, chat, &s, false, &fr, err);
    if (st != PROMPTSHAP_OK) {
        return st;
    }
    int32_t * body = NULL;
    int n_body = ps_tokenize(model, prompt, prompt_len, false, false, &body);
    int n_prompt = fr.n_head + (n_body > 0 ? n_body : 0) + fr.n_tail;
    int32_t * tokens = malloc(((size_t)n_prompt + (size_t)g.n_predict + 1) * sizeof(int32_t));
    if (n_body < 0 || !tokens) {
        free(body);
        free(tokens);
        ps_framing_free(&fr);
        return ps_fail(err, PROMPTSHAP_ERR_DECODE, "tokenizing the prompt failed");
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
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "libllama could not create a context of %d tokens", n_ctx);
    }
    struct llama_sampler * smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    if (g.temperature > 0.0f) {
        llama_sampler_chain_add(smpl, llama_sampler_init_temp(g.temperature));
        llama_sampler_chain_add(smpl, llama_sampler_init_dist((uint32_t)g.seed));
    } else {
        llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
    }

    harmony_ids h = {-1, -1, -1, -1, -1, -1};
    if (chat == PROMPTSHAP_CHAT_HARMONY) {
        h.start = ps_special_token(model, "<|start|>");
        h.end = ps_special_token(model, "<|end|>");
        h.message = ps_special_token(model, "<|message|>");
        h.channel = ps_special_token(model, "<|channel|>");
        h.ret = ps_special_token(model, "<|return|>");
        h.call = ps_special_token(model, "<|call|>");
    }

    /* decode the prompt, then one token at a time */
    text_buf answer = {0};
    text_buf channel = {0};
    enum harmony_state state = IN_HEADER;
    bool in_final = false;
    bool saw_final = false;
    struct llama_batch batch = llama_batch_get_one(tokens, n_prompt);
    int n_generated = 0;
    while (st == PROMPTSHAP_OK && n_generated < g.n_predict) {
        if (llama_decode(ctx, batch) != 0) {
            st = ps_fail(err, PROMPTSHAP_ERR_DECODE, "llama_decode failed while generating");
            break;
        }
        int32_t tok = llama_sampler_sample(smpl, ctx, -1);
        tokens[n_prompt + n_generated] = tok;
        batch = llama_batch_get_one(&tokens[n_prompt + n_generated], 1);
        n_generated++;

        if (chat != PROMPTSHAP_CHAT_HARMONY) {
            if (llama_vocab_is_eog(model->vocab, tok)) {
                break;
            }
            char * piece = NULL;
            int n = ps_token_piece(model, tok, &piece);
            if (n < 0 || !text_append(&answer, piece, (size_t)n)) {
                st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory while generating");
            }
            free(piece);
            continue;
        }

        /* harmony: follow the control tokens, keep the final channel's content */
        if (tok == h.ret || tok == h.call) {
            break;
        }
        if (tok == h.start) {
            state = IN_HEADER;
            channel.n = 0;
            in_final = false;
            continue;
        }
        if (tok == h.channel) {
            state = IN_CHANNEL;
            channel.n = 0;
            continue;
        }
        if (tok == h.message) {
            state = IN_MESSAGE;
            in_final = channel.n >= 5 && strncmp(channel.data, "final", 5) == 0;
            saw_final = saw_final || in_final;
            continue;
        }
        if (tok == h.end) {
            state = IN_HEADER;
            in_final = false;
            continue;
        }
        if (llama_vocab_is_eog(model->vocab, tok)) {
            break;
        }
        char * piece = NULL;
        int n = ps_token_piece(model, tok, &piece);
        bool ok = n >= 0;
        if (ok && state == IN_CHANNEL) {
            ok = text_append(&channel, piece, (size_t)n);
        } else if (ok && state == IN_MESSAGE && in_final) {
            ok = text_append(&answer, piece, (size_t)n);
        }
        free(piece);
        if (!ok) {
            st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory while generating");
        }
    }

    llama_sampler_free(smpl);
    llama_free(ctx);
    free(tokens);
    free(channel.data);
    if (st == PROMPTSHAP_OK && chat == PROMPTSHAP_CHAT_HARMONY && !saw_final) {
        st = ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT,
                     "the model wrote no final-channel answer within %d tokens; raise -n or give the target "
                     "with --target",
                     g.n_predict);
    }
    if (st == PROMPTSHAP_OK && answer.n == 0) {
        st = ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT,
                     "the model generated an empty answer; give the target with --target");
    }
    if (st != PROMPTSHAP_OK) {
        free(answer.data);
        return st;
    }
    *text = answer.data;
    return PROMPTSHAP_OK;
}
