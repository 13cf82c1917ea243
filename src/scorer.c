/* SPDX-License-Identifier: MIT
 *
 * The value function on a model. A scorer splits the prompt into units,
 * renders the framing (raw, chat template or harmony) around a coalition's
 * text, tokenizes the target once, and scores coalitions: many sequences
 * per llama_decode call, logits kept only at the positions that predict
 * target tokens, log-softmax over the full vocabulary (logsoftmax.c).
 */
#include "logsoftmax.h"
#include "model.h"

#include <math.h>
#include <string.h>

/* Stands in for the user's message when a chat template is rendered, so the
 * rendered text can be split around it. */
#define USER_SENTINEL "PROMPTSHAPUSERMESSAGE7F3A9C"

/* The sequence id that keeps the shared prefix; trees use the ids above it. */
#define PREFIX_SEQ 0

/* Upper bound on the logits rows (n_vocab floats each) kept per decode. */
#define LOGITS_BUDGET_BYTES ((size_t)256 << 20)

struct promptshap_scorer {
    promptshap_model * model;
    struct llama_context * ctx;
    struct llama_batch batch;

    char * prompt;
    size_t prompt_len;
    char * target;
    size_t target_len;
    enum promptshap_chat chat;

    int n_units;
    promptshap_span * units;       /* [n_units], byte ranges in the prompt */

    ps_framing framing;

    int n_target;
    int32_t * target_ids;          /* [n_target] */
    char ** target_text;           /* [n_target] bytes each token decodes to */
    promptshap_span * target_spans;/* [n_target] byte ranges in the target */

    int n_ctx_limit;               /* max tokens of one sequence */
    int n_kv;                      /* KV cells, = tokens per decode */
    int n_seq_max;
    int n_outputs_max;             /* logits rows per decode */
    int n_prefix;                  /* tokens every sequence starts with (the framing's head), kept
                                      decoded in sequence PREFIX_SEQ for the scorer's lifetime */
    double prefix_logp0;           /* log p(first target token | prefix), for sequences whose
                                      context is exactly the prefix */
    bool (*should_stop)(void * user_data);
    void * should_stop_data;
    enum promptshap_engine engine;
    int n_threads;                 /* for the log-softmax of scored rows */
    ps_softmax_job * jobs;         /* [n_outputs_max] scored rows of one decode */
    ps_decode_costs costs;         /* the model's decode costs, for sizing prefix trees */
    struct promptshap_engine_stats stats;
};

struct promptshap_score_params promptshap_score_default_params(void) {
    struct promptshap_score_params p = {
        .chat = PROMPTSHAP_CHAT_AUTO,
        .reasoning = PROMPTSHAP_REASONING_MEDIUM,
        .harmony_date = NULL,
        .chat_template = NULL,
        .target_sep = NULL,
        .units = PROMPTSHAP_UNITS_WORDS,
        .n_ctx = 0,
        .n_batch = 512,
        .n_threads = 0,
        .should_stop = NULL,
        .should_stop_data = NULL,
        .engine = PROMPTSHAP_ENGINE_BATCHED,
    };
    return p;
}

static char * dup_text(const char * s, size_t n) {
    char * d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* True when the chat template uses harmony's channel markers. */
static bool template_is_harmony(const char * tmpl) {
    return tmpl && strstr(tmpl, "<|start|>") && strstr(tmpl, "<|channel|>");
}

/*
 * Framing
 */

enum promptshap_status ps_framing_build(const promptshap_model * model, enum promptshap_chat chat,
                                        const struct promptshap_score_params * p, bool final_channel,
                                        ps_framing * fr, promptshap_error * err) {
    const struct llama_vocab * vocab = model->vocab;
    memset(fr, 0, sizeof(*fr));
    char * before = NULL;
    char * after = NULL;
    enum promptshap_status st = PROMPTSHAP_OK;

    if (chat == PROMPTSHAP_CHAT_NONE) {
        /* raw text: BOS if the model adds one; a model that adds none still
         * gets its BOS (or EOS) as a start token, because the empty
         * coalition needs a position from which to predict the target */
        int32_t start = -1;
        if (llama_vocab_get_add_bos(vocab) && llama_vocab_bos(vocab) != LLAMA_TOKEN_NULL) {
            start = llama_vocab_bos(vocab);
        } else if (llama_vocab_bos(vocab) != LLAMA_TOKEN_NULL) {
            start = llama_vocab_bos(vocab);
        } else if (llama_vocab_eos(vocab) != LLAMA_TOKEN_NULL) {
            start = llama_vocab_eos(vocab);
        }
        if (start < 0) {
            return ps_fail(err, PROMPTSHAP_ERR_MODEL,
                           "the model has neither a BOS nor an EOS token to start a raw sequence; use a chat framing");
        }
        fr->head = malloc(sizeof(int32_t));
        if (!fr->head) {
            return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
        }
        fr->head[0] = start;
        fr->n_head = 1;
        fr->n_tail = 0;
        return PROMPTSHAP_OK;
    }

    if (chat == PROMPTSHAP_CHAT_HARMONY) {
        st = promptshap_harmony_render(p->reasoning, p->harmony_date, final_channel, &before, &after);
        if (st != PROMPTSHAP_OK) {
            return ps_fail(err, st, "cannot render the harmony framing (reasoning '%s', date '%s')",
                           promptshap_reasoning_name(p->reasoning) ? promptshap_reasoning_name(p->reasoning) : "?",
                           p->harmony_date ? p->harmony_date : "");
        }
        if (ps_special_token(model, "<|channel|>") < 0 || ps_special_token(model, "<|message|>") < 0) {
            free(before);
            free(after);
            return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT,
                           "the model's vocabulary has no harmony control tokens (<|channel|>, <|message|>); "
                           "use --chat template or --chat none");
        }
    } else {
        /* the model's chat template (or the one requested), one user message */
        const char * tmpl = p->chat_template ? p->chat_template : promptshap_model_chat_template(model);
        if (!tmpl) {
            return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT,
                           "the model has no chat template; use --chat none or name one with --chat-template");
        }
        struct llama_chat_message msg = {"user", USER_SENTINEL};
        int n = llama_chat_apply_template(tmpl, &msg, 1, true, NULL, 0);
        if (n < 0) {
            return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT,
                           "llama_chat_apply_template does not support the chat template%s%s; "
                           "use --chat none or a built-in name with --chat-template (for example chatml)",
                           p->chat_template ? " " : "", p->chat_template ? p->chat_template : "");
        }
        char * text = malloc((size_t)n + 1);
        if (!text) {
            return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
        }
        llama_chat_apply_template(tmpl, &msg, 1, true, text, n + 1);
        text[n] = '\0';
        char * at = strstr(text, USER_SENTINEL);
        if (!at || strstr(at + 1, USER_SENTINEL)) {
            free(text);
            return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT,
                           "the chat template does not place the user's message exactly once; use --chat none");
        }
        before = dup_text(text, (size_t)(at - text));
        after = dup_text(at + strlen(USER_SENTINEL), strlen(at + strlen(USER_SENTINEL)));
        free(text);
        if (!before || !after) {
            free(before);
            free(after);
            return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
        }
    }

    /* the framing's own markers are special tokens; exactly one BOS */
    fr->n_head = ps_tokenize(model, before, strlen(before), true, true, &fr->head);
    fr->n_tail = ps_tokenize(model, after, strlen(after), false, true, &fr->tail);
    free(before);
    free(after);
    if (fr->n_head < 0 || fr->n_tail < 0) {
        return ps_fail(err, PROMPTSHAP_ERR_DECODE, "tokenizing the chat framing failed");
    }
    int32_t bos = llama_vocab_bos(vocab);
    if (fr->n_head >= 2 && fr->head[0] == bos && fr->head[1] == bos) {
        memmove(fr->head, fr->head + 1, (size_t)(fr->n_head - 1) * sizeof(int32_t));
        fr->n_head--;
    }
    if (fr->n_head == 0) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "the chat framing renders no tokens before the message");
    }
    return PROMPTSHAP_OK;
}

void ps_framing_free(ps_framing * fr) {
    free(fr->head);
    free(fr->tail);
    memset(fr, 0, sizeof(*fr));
}

enum promptshap_chat ps_resolve_chat(const promptshap_model * model, const struct promptshap_score_params * p) {
    if (p->chat != PROMPTSHAP_CHAT_AUTO) {
        return p->chat;
    }
    const char * tmpl = p->chat_template ? p->chat_template : promptshap_model_chat_template(model);
    if (template_is_harmony(tmpl)) {
        return PROMPTSHAP_CHAT_HARMONY;
    }
    return tmpl ? PROMPTSHAP_CHAT_TEMPLATE : PROMPTSHAP_CHAT_NONE;
}

/*
 * Units
 */

static enum promptshap_status build_token_units(promptshap_scorer * sc, promptshap_error * err) {
    int32_t * ids = NULL;
    int n = ps_tokenize(sc->model, sc->prompt, sc->prompt_len, false, false, &ids);
    if (n < 0) {
        return ps_fail(err, PROMPTSHAP_ERR_DECODE, "tokenizing the prompt failed");
    }
    char ** pieces = calloc((size_t)n + 1, sizeof(char *));
    size_t * lens = calloc((size_t)n + 1, sizeof(size_t));
    sc->units = calloc((size_t)n + 1, sizeof(promptshap_span));
    enum promptshap_status st = PROMPTSHAP_OK;
    if (!pieces || !lens || !sc->units) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    for (int k = 0; k < n; k++) {
        int len = ps_token_piece(sc->model, ids[k], &pieces[k]);
        if (len < 0) {
            st = ps_fail(err, PROMPTSHAP_ERR_DECODE, "cannot decode prompt token %d (id %d)", k, ids[k]);
            goto done;
        }
        lens[k] = (size_t)len;
    }
    promptshap_align_pieces(sc->prompt, sc->prompt_len, (const char * const *)pieces, lens, n, sc->units);

    /* A character split over several byte tokens (an emoji, say) becomes
     * one unit: a unit ends only at a character boundary. */
    int merged = 0;
    for (int k = 0; k < n; k++) {
        if (merged > 0 && sc->units[merged - 1].end < sc->prompt_len &&
            ((unsigned char)sc->prompt[sc->units[merged - 1].end] & 0xc0) == 0x80) {
            sc->units[merged - 1].end = sc->units[k].end;
            continue;
        }
        sc->units[merged++] = sc->units[k];
    }

    /* a unit's text excludes the whitespace a token carries in front, so
     * coalitions are composed with the prompt's own separators */
    int kept = 0;
    for (int k = 0; k < merged; k++) {
        promptshap_span s = sc->units[k];
        while (s.start < s.end && strchr(" \t\n\r\v\f", sc->prompt[s.start])) {
            s.start++;
        }
        if (s.start < s.end) {
            sc->units[kept++] = s;
        }
    }
    sc->n_units = kept;

done:
    for (int k = 0; pieces && k < n; k++) {
        free(pieces[k]);
    }
    free(pieces);
    free(lens);
    free(ids);
    return st;
}

static enum promptshap_status build_units(promptshap_scorer * sc, enum promptshap_unit_kind kind,
                                          promptshap_error * err) {
    size_t n = 0;
    enum promptshap_status st;
    switch (kind) {
        case PROMPTSHAP_UNITS_WORDS:
            st = promptshap_split_words(sc->prompt, sc->prompt_len, &sc->units, &n);
            sc->n_units = (int)n;
            break;
        case PROMPTSHAP_UNITS_SENTENCES:
            st = promptshap_split_sentences(sc->prompt, sc->prompt_len, &sc->units, &n);
            sc->n_units = (int)n;
            break;
        case PROMPTSHAP_UNITS_TOKENS:
            st = build_token_units(sc, err);
            if (st != PROMPTSHAP_OK) {
                return st;
            }
            break;
        default:
            return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "unknown unit kind %d", (int)kind);
    }
    if (st != PROMPTSHAP_OK) {
        return ps_fail(err, st, "splitting the prompt into units failed");
    }
    if (sc->n_units == 0) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT,
                       "the prompt has no %s (it is empty or only whitespace)", promptshap_unit_kind_name(kind));
    }
    return PROMPTSHAP_OK;
}

/*
 * Target tokens
 */

/* Tokenizes the target as the model would emit it after the full prompt.
 * With raw framing the target continues the prompt's text, so it is
 * tokenized together with the prompt and the prompt's tokens are removed;
 * after a chat framing it starts a fresh fragment after a special token. */
static enum promptshap_status build_target(promptshap_scorer * sc, const char * full_text, size_t full_len,
                                           const struct promptshap_score_params * p, promptshap_error * err) {
    const char * sep = "";
    if (sc->chat == PROMPTSHAP_CHAT_NONE) {
        if (p->target_sep) {
            sep = p->target_sep;
        } else if (!strchr(" \t\n\r\v\f", sc->target[0])) {
            sep = " ";
        }
    }
    size_t sep_len = strlen(sep);
    size_t joined_len = sep_len + sc->target_len;
    char * joined = malloc(full_len + joined_len + 1);
    if (!joined) {
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
    }
    size_t off = 0;
    if (sc->chat == PROMPTSHAP_CHAT_NONE) {
        memcpy(joined, full_text, full_len);
        off = full_len;
    }
    memcpy(joined + off, sep, sep_len);
    memcpy(joined + off + sep_len, sc->target, sc->target_len);
    joined[off + joined_len] = '\0';

    int32_t * all = NULL;
    int32_t * ctx_ids = NULL;
    int n_all = ps_tokenize(sc->model, joined, off + joined_len, false, false, &all);
    int n_ctx = 0;
    if (off > 0) {
        n_ctx = ps_tokenize(sc->model, joined, off, false, false, &ctx_ids);
    }
    free(joined);
    if (n_all < 0 || n_ctx < 0) {
        free(all);
        free(ctx_ids);
        return ps_fail(err, PROMPTSHAP_ERR_DECODE, "tokenizing the target failed");
    }
    bool prefix = n_ctx <= n_all && (n_ctx == 0 || memcmp(all, ctx_ids, (size_t)n_ctx * sizeof(int32_t)) == 0);
    free(ctx_ids);
    if (!prefix) {
        free(all);
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT,
                       "the tokenizer merges the end of the prompt with the start of the target; "
                       "separate them with --target-sep (for example --target-sep ' ')");
    }
    sc->n_target = n_all - n_ctx;
    if (sc->n_target == 0) {
        free(all);
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT, "the target has no tokens");
    }
    sc->target_ids = malloc((size_t)sc->n_target * sizeof(int32_t));
    sc->target_text = calloc((size_t)sc->n_target, sizeof(char *));
    sc->target_spans = calloc((size_t)sc->n_target, sizeof(promptshap_span));
    size_t * lens = calloc((size_t)sc->n_target, sizeof(size_t));
    if (!sc->target_ids || !sc->target_text || !sc->target_spans || !lens) {
        free(all);
        free(lens);
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
    }
    memcpy(sc->target_ids, all + n_ctx, (size_t)sc->n_target * sizeof(int32_t));
    free(all);

    /* byte ranges: align the pieces with separator + target, then drop the separator */
    enum promptshap_status st = PROMPTSHAP_OK;
    for (int t = 0; t < sc->n_target && st == PROMPTSHAP_OK; t++) {
        int len = ps_token_piece(sc->model, sc->target_ids[t], &sc->target_text[t]);
        if (len < 0) {
            st = ps_fail(err, PROMPTSHAP_ERR_DECODE, "cannot decode target token %d", t);
        } else {
            lens[t] = (size_t)len;
        }
    }
    if (st == PROMPTSHAP_OK) {
        char * with_sep = malloc(joined_len + 1);
        if (!with_sep) {
            st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
        } else {
            memcpy(with_sep, sep, sep_len);
            memcpy(with_sep + sep_len, sc->target, sc->target_len);
            promptshap_align_pieces(with_sep, joined_len, (const char * const *)sc->target_text, lens,
                                    sc->n_target, sc->target_spans);
            free(with_sep);
            for (int t = 0; t < sc->n_target; t++) {
                promptshap_span * s = &sc->target_spans[t];
                s->start = s->start > sep_len ? s->start - sep_len : 0;
                s->end = s->end > sep_len ? s->end - sep_len : 0;
            }
        }
    }
    free(lens);
    return st;
}

/*
 * Scorer life cycle
 */

static enum promptshap_status check_text(const char * what, const char * text, size_t len, promptshap_error * err) {
    size_t bad = 0;
    if (len == 0) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT, "the %s is empty", what);
    }
    if (!promptshap_utf8_valid(text, len, &bad)) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT,
                       "the %s is not valid UTF-8 text: byte 0x%02x at offset %zu%s", what,
                       (unsigned)(unsigned char)text[bad], bad, text[bad] == 0 ? " (a NUL byte)" : "");
    }
    return PROMPTSHAP_OK;
}

/* Token sequence of a coalition's context: head, kept units' text, tail. */
static int context_tokens(promptshap_scorer * sc, const uint64_t * members, int32_t ** out) {
    char * text = NULL;
    size_t len = 0;
    *out = NULL;
    if (promptshap_compose(sc->prompt, sc->prompt_len, sc->units, sc->n_units, members, &text, &len) !=
        PROMPTSHAP_OK) {
        return -1;
    }
    int32_t * body = NULL;
    int n_body = 0;
    if (len > 0) {
        /* the user's text never produces control tokens */
        n_body = ps_tokenize(sc->model, text, len, false, false, &body);
    }
    free(text);
    if (n_body < 0) {
        return -1;
    }
    int n = sc->framing.n_head + n_body + sc->framing.n_tail;
    int32_t * t = malloc(((size_t)n + (size_t)sc->n_target + 1) * sizeof(int32_t));
    if (!t) {
        free(body);
        return -1;
    }
    memcpy(t, sc->framing.head, (size_t)sc->framing.n_head * sizeof(int32_t));
    if (n_body > 0) {
        memcpy(t + sc->framing.n_head, body, (size_t)n_body * sizeof(int32_t));
    }
    if (sc->framing.n_tail > 0) {
        memcpy(t + sc->framing.n_head + n_body, sc->framing.tail, (size_t)sc->framing.n_tail * sizeof(int32_t));
    }
    free(body);
    *out = t;
    return n;
}

static int engine_decode(promptshap_scorer * sc, struct llama_batch * b);

/* Decodes the framing's head once into PREFIX_SEQ. Every coalition's
 * sequence starts with it, so trees copy these cells instead of decoding
 * the head again. */
static enum promptshap_status decode_prefix(promptshap_scorer * sc, promptshap_error * err) {
    struct llama_batch * b = &sc->batch;
    sc->n_prefix = sc->framing.n_head;
    b->n_tokens = sc->n_prefix;
    for (int pos = 0; pos < sc->n_prefix; pos++) {
        b->token[pos] = sc->framing.head[pos];
        b->pos[pos] = pos;
        b->n_seq_id[pos] = 1;
        b->seq_id[pos][0] = PREFIX_SEQ;
        b->logits[pos] = pos == sc->n_prefix - 1;
    }
    int ret = engine_decode(sc, b);
    if (ret == 2) {
        return ps_fail(err, PROMPTSHAP_ERR_CANCELLED, "cancelled");
    }
    if (ret != 0) {
        return ps_fail(err, PROMPTSHAP_ERR_DECODE, "llama_decode failed with code %d on the %d-token framing prefix",
                       ret, sc->n_prefix);
    }
    const float * row = llama_get_logits_ith(sc->ctx, sc->n_prefix - 1);
    if (!row) {
        return ps_fail(err, PROMPTSHAP_ERR_DECODE, "libllama returned no logits for the framing prefix");
    }
    sc->prefix_logp0 = ps_log_softmax(row, sc->model->n_vocab, sc->target_ids[0]);
    sc->stats.n_rows++;
    return PROMPTSHAP_OK;
}

/* Sizes one decode: KV cells for the kept prefix and a batch of n_batch
 * tokens (at least one whole sequence of n_seq_cells), sequence slots and
 * logits rows. */
static void size_plan(promptshap_scorer * sc, int n_batch, int n_seq_cells, bool naive) {
    /* a tree holds at most 255 sequences, so a larger batch is never used */
    if (n_batch / 255 > n_seq_cells) {
        n_batch = 255 * n_seq_cells;
    }
    /* Nor a tree whose attention costs more than its sharing saves. On the
     * 260K-parameter demo model (1 thread, 64 coalitions of 230 tokens),
     * trees of 2 sequences per decode took 2.4 times the naive engine's
     * time and trees of 7 sequences 5 times; the cap gives it one sequence
     * per decode. */
    int cap = ps_tree_cells_cap(sc->model);
    if (n_batch > cap) {
        n_batch = cap;
    }
    sc->n_kv = sc->framing.n_head + (n_batch > n_seq_cells ? n_batch : n_seq_cells);
    /* libllama keeps at least one logits row per sequence slot, so the
     * slots may not outnumber the rows, and neither the KV cells */
    sc->n_seq_max = (int)llama_max_parallel_sequences();
    if (sc->n_seq_max > 256) {
        sc->n_seq_max = 256;
    }
    if (sc->n_seq_max > sc->n_kv) {
        sc->n_seq_max = sc->n_kv;
    }
    size_t row_bytes = (size_t)sc->model->n_vocab * sizeof(float);
    size_t rows = LOGITS_BUDGET_BYTES / row_bytes;
    if (rows < (size_t)sc->n_target) {
        rows = (size_t)sc->n_target;
    }
    if (rows < (size_t)sc->n_seq_max) {
        rows = (size_t)sc->n_seq_max;
    }
    if (rows > (size_t)sc->n_kv || naive) {
        rows = (size_t)sc->n_kv; /* the naive engine keeps a row for every position */
    }
    sc->n_outputs_max = (int)rows;
}

enum promptshap_status promptshap_scorer_init(promptshap_model * model, const char * prompt, size_t prompt_len,
                                              const char * target, size_t target_len,
                                              const struct promptshap_score_params * params,
                                              promptshap_scorer ** out, promptshap_error * err) {
    *out = NULL;
    ps_ok(err);
    struct promptshap_score_params p = params ? *params : promptshap_score_default_params();
    enum promptshap_status st;

    /* check the inputs and parameters */
    if ((st = check_text("prompt", prompt, prompt_len, err)) != PROMPTSHAP_OK ||
        (st = check_text("target", target, target_len, err)) != PROMPTSHAP_OK) {
        return st;
    }
    if (p.n_batch < 1) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "the batch size must be at least 1 token, got %d",
                       p.n_batch);
    }
    if (p.n_ctx < 0) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "the context size must not be negative, got %d", p.n_ctx);
    }
    if (p.target_sep && !promptshap_utf8_valid(p.target_sep, strlen(p.target_sep), NULL)) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT, "the target separator is not valid UTF-8");
    }

    promptshap_scorer * sc = calloc(1, sizeof(*sc));
    if (!sc) {
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
    }
    sc->model = model;
    ps_decode_costs_of(model, &sc->costs);
    sc->prompt = dup_text(prompt, prompt_len);
    sc->prompt_len = prompt_len;
    sc->target = dup_text(target, target_len);
    sc->target_len = target_len;
    if (!sc->prompt || !sc->target) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
        goto fail;
    }
    sc->chat = ps_resolve_chat(model, &p);

    /* units, framing, target tokens */
    if ((st = build_units(sc, p.units, err)) != PROMPTSHAP_OK ||
        (st = ps_framing_build(model, sc->chat, &p, true, &sc->framing, err)) != PROMPTSHAP_OK) {
        goto fail;
    }
    {
        int W = PROMPTSHAP_MASK_WORDS(sc->n_units);
        uint64_t * all = calloc((size_t)W, sizeof(uint64_t));
        char * full = NULL;
        size_t full_len = 0;
        if (!all) {
            st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
            goto fail;
        }
        for (int i = 0; i < sc->n_units; i++) {
            ps_mask_set(all, i);
        }
        st = promptshap_compose(sc->prompt, sc->prompt_len, sc->units, sc->n_units, all, &full, &full_len);
        free(all);
        if (st == PROMPTSHAP_OK) {
            st = build_target(sc, full, full_len, &p, err);
        }
        free(full);
        if (st != PROMPTSHAP_OK) {
            goto fail;
        }
    }

    /* the full coalition sets the sequence length the context must hold */
    {
        int W = PROMPTSHAP_MASK_WORDS(sc->n_units);
        uint64_t * all = calloc((size_t)W, sizeof(uint64_t));
        if (!all) {
            st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
            goto fail;
        }
        for (int i = 0; i < sc->n_units; i++) {
            ps_mask_set(all, i);
        }
        int32_t * ctx_ids = NULL;
        int n_context = context_tokens(sc, all, &ctx_ids);
        free(all);
        free(ctx_ids);
        if (n_context < 0) {
            st = ps_fail(err, PROMPTSHAP_ERR_DECODE, "tokenizing the prompt failed");
            goto fail;
        }
        int n_train = llama_model_n_ctx_train(model->lm);
        sc->n_ctx_limit = p.n_ctx > 0 ? p.n_ctx : n_train;
        int n_full = n_context + sc->n_target;
        if (n_full > sc->n_ctx_limit) {
            st = ps_fail(err, PROMPTSHAP_ERR_TOO_LONG,
                         "the prompt and the target need %d tokens (framing and prompt %d, target %d) but the "
                         "context size is %d; raise -c (the model was trained with %d) or shorten the inputs",
                         n_full, n_context, sc->n_target, sc->n_ctx_limit, n_train);
            goto fail;
        }

        /* Room for one sequence of any coalition: sub-coalitions rarely
         * tokenize longer than the full prompt, and the 64 spare cells cover
         * the cases where they do. */
        int n_seq_cells = n_full + 64 < sc->n_ctx_limit ? n_full + 64 : sc->n_ctx_limit;
        size_plan(sc, p.n_batch, n_seq_cells, p.engine == PROMPTSHAP_ENGINE_NAIVE);

        /* Check the memory before libllama allocates it, so a request that
         * cannot fit fails with the numbers rather than inside libllama; a
         * batch too large for the memory is halved until it fits. With
         * layers on a GPU the cache is not in host memory, so the check is
         * off. */
        if (model->n_gpu_layers == 0 || !llama_supports_gpu_offload()) {
            size_t kv_bytes = 0, logits_bytes = 0;
            size_t have = p.max_memory_mib > 0 ? (size_t)(p.max_memory_mib * 1048576.0) : ps_available_memory();
            size_t need = ps_context_bytes(model, sc->n_kv, sc->n_outputs_max, sc->n_seq_max, &kv_bytes,
                                           &logits_bytes);
            int n_batch = p.n_batch;
            while (have > 0 && need > have && n_batch > n_seq_cells) {
                n_batch /= 2;
                size_plan(sc, n_batch, n_seq_cells, p.engine == PROMPTSHAP_ENGINE_NAIVE);
                need = ps_context_bytes(model, sc->n_kv, sc->n_outputs_max, sc->n_seq_max, &kv_bytes, &logits_bytes);
            }
            if (have > 0 && need > have) {
                st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY,
                             "scoring needs about %.0f MiB (KV cache %.0f MiB for %d cells, logits %.0f MiB for %d "
                             "rows) but %.0f MiB of memory are available, even with the smallest batch; shorten "
                             "the prompt or the target%s",
                             need / 1048576.0, kv_bytes / 1048576.0, sc->n_kv, logits_bytes / 1048576.0,
                             sc->n_outputs_max, have / 1048576.0,
                             p.max_memory_mib > 0 ? ", or raise --mem-limit" : "");
                goto fail;
            }
            if (n_batch != p.n_batch) {
                char msg[256];
                snprintf(msg, sizeof(msg),
                         "promptshap: lowered the batch from %d to %d tokens to fit in %.0f MiB of memory\n",
                         p.n_batch, sc->n_kv - sc->framing.n_head, have / 1048576.0);
                ps_log_forward(GGML_LOG_LEVEL_WARN, msg);
            }
        }
    }

    /* the context and one batch */
    sc->ctx = ps_context_new(model, sc->n_kv, sc->n_kv, sc->n_seq_max, sc->n_outputs_max, p.n_threads);
    if (!sc->ctx) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY,
                     "libllama could not create a context of %d tokens%s%s; lower --batch or -c", sc->n_kv,
                     ps_last_llama_error()[0] ? ": " : "", ps_last_llama_error());
        goto fail;
    }
    sc->engine = p.engine;
    sc->n_threads = p.n_threads > 0 ? p.n_threads : ps_default_threads();
    sc->jobs = malloc((size_t)sc->n_outputs_max * sizeof(ps_softmax_job));
    if (!sc->jobs) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %d logits rows", sc->n_outputs_max);
        goto fail;
    }
    if (p.should_stop) {
        sc->should_stop = p.should_stop;
        sc->should_stop_data = p.should_stop_data;
        llama_set_abort_callback(sc->ctx, p.should_stop, p.should_stop_data);
    }
    sc->batch = llama_batch_init(sc->n_kv, 0, sc->n_seq_max);
    if (!sc->batch.token) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for a batch of %d tokens", sc->n_kv);
        goto fail;
    }
    if ((st = decode_prefix(sc, err)) != PROMPTSHAP_OK) {
        goto fail;
    }
    *out = sc;
    return PROMPTSHAP_OK;

fail:
    promptshap_scorer_free(sc);
    return st;
}

void promptshap_scorer_free(promptshap_scorer * sc) {
    if (!sc) {
        return;
    }
    if (sc->batch.token) {
        llama_batch_free(sc->batch);
    }
    if (sc->ctx) {
        llama_free(sc->ctx);
    }
    free(sc->jobs);
    for (int t = 0; sc->target_text && t < sc->n_target; t++) {
        free(sc->target_text[t]);
    }
    free(sc->target_text);
    free(sc->target_ids);
    free(sc->target_spans);
    ps_framing_free(&sc->framing);
    free(sc->units);
    free(sc->prompt);
    free(sc->target);
    free(sc);
}

enum promptshap_chat promptshap_scorer_chat(const promptshap_scorer * sc) {
    return sc->chat;
}

int promptshap_scorer_n_units(const promptshap_scorer * sc) {
    return sc->n_units;
}

promptshap_span promptshap_scorer_unit(const promptshap_scorer * sc, int i) {
    PS_ASSERT(i >= 0 && i < sc->n_units);
    return sc->units[i];
}

int promptshap_scorer_n_target_tokens(const promptshap_scorer * sc) {
    return sc->n_target;
}

int32_t promptshap_scorer_target_token(const promptshap_scorer * sc, int t, const char ** text,
                                       promptshap_span * span) {
    PS_ASSERT(t >= 0 && t < sc->n_target);
    if (text) {
        *text = sc->target_text[t];
    }
    if (span) {
        *span = sc->target_spans[t];
    }
    return sc->target_ids[t];
}

int promptshap_scorer_sequence(promptshap_scorer * sc, const uint64_t * members, int32_t * tokens, int n_max,
                               int * target_start) {
    int32_t * t = NULL;
    int n = context_tokens(sc, members, &t);
    if (n < 0) {
        return -1;
    }
    memcpy(t + n, sc->target_ids, (size_t)sc->n_target * sizeof(int32_t));
    if (target_start) {
        *target_start = n;
    }
    int total = n + sc->n_target;
    if (tokens && total <= n_max) {
        memcpy(tokens, t, (size_t)total * sizeof(int32_t));
    }
    free(t);
    return total;
}

/*
 * Scoring
 */

static void describe_members(const promptshap_scorer * sc, const uint64_t * members, char * buf, size_t size) {
    size_t n = 0;
    buf[0] = '\0';
    n += (size_t)snprintf(buf + n, size - n, "{");
    for (int i = 0; i < sc->n_units && n + 16 < size; i++) {
        if (ps_mask_has(members, i)) {
            n += (size_t)snprintf(buf + n, size - n, "%s%d", n > 1 ? "," : "", i);
        }
    }
    snprintf(buf + n, size - n, "}");
}

/* Stores the log-probabilities of one sequence's target tokens, checking
 * that they are finite. */
static enum promptshap_status check_values(const promptshap_scorer * sc, const uint64_t * members,
                                           const double * values, promptshap_error * err) {
    for (int t = 0; t < sc->n_target; t++) {
        if (!isfinite(values[t])) {
            char who[128];
            describe_members(sc, members, who, sizeof(who));
            return ps_fail(err, PROMPTSHAP_ERR_NUMERIC,
                           "the log-probability of target token %d is %g for the coalition of units %s; "
                           "the model's logits are not finite (a broken or badly quantized model?)",
                           t, values[t], who);
        }
    }
    return PROMPTSHAP_OK;
}

/* One coalition's token sequence during promptshap_scorer_eval. */
typedef struct {
    int32_t * tokens;  /* [len]: context, then the target */
    int len;
    int n_context;     /* tokens before the target */
    int coalition;     /* index in the caller's list */
} scored_seq;

static int lcp(const scored_seq * a, const scored_seq * b) {
    int n = a->len < b->len ? a->len : b->len;
    int k = 0;
    while (k < n && a->tokens[k] == b->tokens[k]) {
        k++;
    }
    return k;
}

static int compare_seq(const void * pa, const void * pb) {
    const scored_seq * a = pa;
    const scored_seq * b = pb;
    int n = a->len < b->len ? a->len : b->len;
    for (int k = 0; k < n; k++) {
        if (a->tokens[k] != b->tokens[k]) {
            return a->tokens[k] < b->tokens[k] ? -1 : 1;
        }
    }
    return (a->len > b->len) - (a->len < b->len);
}

static void free_seqs(scored_seq * seqs, int n) {
    for (int k = 0; seqs && k < n; k++) {
        free(seqs[k].tokens);
    }
    free(seqs);
}

/* Tokenizes the full sequence of each coalition exactly as scoring reads it
 * and sorts the list, so that neighbours share the longest prefixes. */
static enum promptshap_status build_seqs(promptshap_scorer * sc, const uint64_t * members, int n,
                                         scored_seq ** out, promptshap_error * err) {
    const int W = PROMPTSHAP_MASK_WORDS(sc->n_units);
    const int T = sc->n_target;
    scored_seq * seqs = calloc((size_t)n + 1, sizeof(scored_seq));
    *out = NULL;
    if (!seqs) {
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %d coalitions", n);
    }
    for (int k = 0; k < n; k++) {
        scored_seq * q = &seqs[k];
        q->coalition = k;
        q->n_context = context_tokens(sc, members + (size_t)k * W, &q->tokens);
        if (q->n_context < 0) {
            free_seqs(seqs, n);
            return ps_fail(err, PROMPTSHAP_ERR_DECODE, "tokenizing coalition %d failed", k);
        }
        q->len = q->n_context + T;
        int room = sc->n_kv < sc->n_ctx_limit ? sc->n_kv : sc->n_ctx_limit;
        if (q->len > room) {
            char who[128];
            describe_members(sc, members + (size_t)k * W, who, sizeof(who));
            free_seqs(seqs, n);
            return ps_fail(err, PROMPTSHAP_ERR_TOO_LONG,
                           "the coalition of units %s needs %d tokens, more than the context of %d; raise -c", who,
                           q->len, room);
        }
        memcpy(q->tokens + q->n_context, sc->target_ids, (size_t)T * sizeof(int32_t));
    }
    qsort(seqs, (size_t)n, sizeof(scored_seq), compare_seq);
    *out = seqs;
    return PROMPTSHAP_OK;
}

/* The planner: the sorted list seqs[first, ...) is cut into one prefix
 * tree per decode, as long as its distinct tokens fit the cells beside the
 * kept prefix (cells in all, at most the KV cells), its sequences the
 * sequence slots and its scored rows the logits rows. Returns the end of
 * the tree starting at first and its token count. */
static int next_tree(const promptshap_scorer * sc, const scored_seq * seqs, int n, int first, int cells,
                     int * n_tokens) {
    const int T = sc->n_target;
    int last = first + 1;
    int tokens = seqs[first].len - sc->n_prefix;
    int rows = T;
    while (last < n && last - first < sc->n_seq_max - 1) {
        int add = seqs[last].len - lcp(&seqs[last - 1], &seqs[last]);
        if (sc->n_prefix + tokens + add > cells || rows + T > sc->n_outputs_max) {
            break;
        }
        tokens += add;
        rows += T;
        last++;
    }
    *n_tokens = tokens;
    return last;
}

/* Returns the attention work of a tree of n tokens: the cells each token
 * attends to, summed. libllama v0.4.0 decodes the tree in micro-batches of
 * n_ubatch tokens. With flash attention off, every token of a micro-batch
 * attends to every cell up to the last one in use. That count is rounded
 * up to a multiple of 256 (llama_kv_cache::get_n_kv), at most n_ctx. */
static double tree_attention(int n_prefix, int n, int n_ubatch, int n_ctx) {
    double work = 0.0;
    for (int done = 0; done < n;) {
        int u = n - done < n_ubatch ? n - done : n_ubatch;
        done += u;
        int cells = (n_prefix + done + 255) / 256 * 256;
        work += (double)u * (double)(cells < n_ctx ? cells : n_ctx);
    }
    return work;
}

/* Chooses the cells per tree for one evaluation. Larger trees share more
 * tokens, but their tokens attend to more cells. Budgets from one sequence
 * per tree up to all KV cells are priced with ps_decode_costs, and the
 * cheapest wins, the larger on a tie. Logits rows are left out because
 * every plan has the same. */
static int choose_tree_cells(const promptshap_scorer * sc, const scored_seq * seqs, int n) {
    /* NOTE: the costs were measured on a CPU. With layers on a GPU, where a
     * decode's fixed cost counts for more and attention for less, the
     * largest trees are kept, untimed there. */
    if (sc->model->n_gpu_layers != 0 && llama_supports_gpu_offload()) {
        return sc->n_kv;
    }
    const int n_ctx = (int)llama_n_ctx(sc->ctx);
    const int n_ubatch = (int)llama_n_ubatch(sc->ctx);
    /* one sequence per tree, then the multiples of 256 where the attended
     * cells step up (doubling, then growing by half), then all cells */
    int budgets[48];
    int n_budgets = 0;
    budgets[n_budgets++] = sc->n_prefix + 1;
    for (int cells = 256; cells < sc->n_kv && n_budgets < 47; cells = cells < 1024 ? cells * 2 : cells / 512 * 768) {
        budgets[n_budgets++] = cells;
    }
    budgets[n_budgets++] = sc->n_kv;

    int best = sc->n_kv;
    double best_cost = INFINITY;
    for (int b = 0; b < n_budgets; b++) {
        double cost = 0.0;
        for (int first = 0; first < n;) {
            int n_tokens = 0;
            int last = next_tree(sc, seqs, n, first, budgets[b], &n_tokens);
            cost += (double)n_tokens * sc->costs.token +
                    sc->costs.cell * tree_attention(sc->n_prefix, n_tokens, n_ubatch, n_ctx);
            first = last;
        }
        if (cost <= best_cost) {
            best_cost = cost;
            best = budgets[b];
        }
    }
    return best;
}

/* Adds the sequence, token and tree counts of a sorted list to stats. */
static void count_plan(const scored_seq * seqs, int n, struct promptshap_engine_stats * stats) {
    for (int k = 0; k < n; k++) {
        stats->n_sequences++;
        stats->n_tokens_total += seqs[k].len;
        stats->n_tokens_unique += seqs[k].len - (k > 0 ? lcp(&seqs[k - 1], &seqs[k]) : 0);
    }
}

/* Frees the cells of the tree's sequences; the prefix stays. */
static void release_tree(llama_memory_t mem, int n_seqs) {
    for (int id = PREFIX_SEQ + 1; id <= PREFIX_SEQ + n_seqs; id++) {
        llama_memory_seq_rm(mem, id, -1, -1);
    }
}

/* Scores the jobs' rows on the scorer's threads and times it. */
static void score_rows(promptshap_scorer * sc, const ps_softmax_job * jobs, int n_jobs) {
    double t0 = ps_now();
    ps_log_softmax_rows(jobs, n_jobs, sc->model->n_vocab, sc->n_threads);
    sc->stats.softmax_seconds += ps_now() - t0;
    sc->stats.n_rows += n_jobs;
}

/* llama_decode, counted and timed. */
static int engine_decode(promptshap_scorer * sc, struct llama_batch * b) {
    double t0 = ps_now();
    int ret = llama_decode(sc->ctx, *b);
    sc->stats.decode_seconds += ps_now() - t0;
    sc->stats.n_decodes++;
    sc->stats.n_tokens_decoded += b->n_tokens;
    return ret;
}

/* Decodes seqs[first, last) as one prefix tree in a single llama_decode call
 * and stores each sequence's target log-probabilities. In sorted order a
 * sequence shares the most tokens with its predecessor, so the tree's
 * tokens are found by walking the list: a shared token is placed once and
 * carries the ids of every sequence that passes through it. path[pos] is
 * the batch index of the current sequence's token at pos. rows[id][t] is
 * the batch index whose logits score target token t of sequence id. */
static enum promptshap_status decode_tree(promptshap_scorer * sc, const scored_seq * seqs, int first, int last,
                                          const uint64_t * members, double * values, int * path, int * rows,
                                          promptshap_error * err) {
    const int W = PROMPTSHAP_MASK_WORDS(sc->n_units);
    const int T = sc->n_target;
    struct llama_batch * b = &sc->batch;
    llama_memory_t mem = llama_get_memory(sc->ctx);
    enum promptshap_status st = PROMPTSHAP_OK;

    /* build the tree in the batch, after the prefix every sequence shares */
    const int P = sc->n_prefix;
    b->n_tokens = 0;
    for (int j = first; j < last; j++) {
        const scored_seq * q = &seqs[j];
        int id = PREFIX_SEQ + 1 + (j - first);
        int shared = j > first ? lcp(&seqs[j - 1], q) : P;
        for (int pos = P; pos < q->len; pos++) {
            int idx;
            if (pos < shared) {
                idx = path[pos];
                b->seq_id[idx][b->n_seq_id[idx]++] = id;
            } else {
                idx = b->n_tokens++;
                b->token[idx] = q->tokens[pos];
                b->pos[idx] = pos;
                b->n_seq_id[idx] = 1;
                b->seq_id[idx][0] = id;
                b->logits[idx] = 0;
                path[pos] = idx;
            }
            /* position pos predicts token pos + 1: keep the rows that predict the target */
            if (pos >= q->n_context - 1 && pos < q->len - 1) {
                b->logits[idx] = 1;
            }
        }
        /* the rows that score this sequence's target, before path is
         * overwritten; -1 for a row of the prefix decoded at init */
        for (int t = 0; t < T; t++) {
            int pos = q->n_context - 1 + t;
            rows[(size_t)(j - first) * T + t] = pos < P ? -1 : path[pos];
        }
        llama_memory_seq_cp(mem, PREFIX_SEQ, id, -1, -1);
    }

    /* decode */
    if (sc->should_stop && sc->should_stop(sc->should_stop_data)) {
        release_tree(mem, last - first);
        return ps_fail(err, PROMPTSHAP_ERR_CANCELLED, "cancelled");
    }
    int ret = b->n_tokens > 0 ? engine_decode(sc, b) : 0;
    if (ret != 0) {
        release_tree(mem, last - first);
        if (ret == 2) {
            return ps_fail(err, PROMPTSHAP_ERR_CANCELLED, "cancelled");
        }
        return ps_fail(err, PROMPTSHAP_ERR_DECODE,
                       "llama_decode failed with code %d on a batch of %d tokens in %d sequences%s", ret,
                       b->n_tokens, last - first, ret == 1 ? ": no KV cache slot; lower --batch" : "");
    }

    /* the kept rows, scored on all threads; a row shared by sequences
     * (a target token that sits in a shared part of the tree) is scored
     * once per sequence, which keeps the jobs independent */
    int n_jobs = 0;
    for (int j = first; j < last && st == PROMPTSHAP_OK; j++) {
        const scored_seq * q = &seqs[j];
        double * out = values + (size_t)q->coalition * T;
        for (int t = 0; t < T; t++) {
            int idx = rows[(size_t)(j - first) * T + t];
            if (idx < 0) {
                out[t] = sc->prefix_logp0;
                continue;
            }
            const float * row = llama_get_logits_ith(sc->ctx, idx);
            if (!row) {
                st = ps_fail(err, PROMPTSHAP_ERR_DECODE, "libllama returned no logits for a scored position");
                break;
            }
            sc->jobs[n_jobs++] = (ps_softmax_job){ .row = row, .token = sc->target_ids[t], .out = &out[t] };
        }
    }
    if (st == PROMPTSHAP_OK) {
        score_rows(sc, sc->jobs, n_jobs);
    }
    for (int j = first; j < last && st == PROMPTSHAP_OK; j++) {
        const scored_seq * q = &seqs[j];
        st = check_values(sc, members + (size_t)q->coalition * W, values + (size_t)q->coalition * T, err);
    }
    release_tree(mem, last - first);
    return st;
}

/* The naive engine: each coalition alone, its whole sequence in one
 * decode from position 0 with logits at every position, as a notebook
 * workflow computes it. */
static enum promptshap_status eval_naive(promptshap_scorer * sc, const uint64_t * members, int n, double * values,
                                         promptshap_error * err) {
    const int W = PROMPTSHAP_MASK_WORDS(sc->n_units);
    const int T = sc->n_target;
    const llama_seq_id id = PREFIX_SEQ + 1;
    llama_memory_t mem = llama_get_memory(sc->ctx);
    struct llama_batch * b = &sc->batch;
    enum promptshap_status st = PROMPTSHAP_OK;
    for (int k = 0; k < n && st == PROMPTSHAP_OK; k++) {
        int32_t * seq = NULL;
        int n_context = context_tokens(sc, members + (size_t)k * W, &seq);
        if (n_context < 0) {
            return ps_fail(err, PROMPTSHAP_ERR_DECODE, "tokenizing coalition %d failed", k);
        }
        int len = n_context + T;
        if (len > sc->n_kv - sc->n_prefix) {
            free(seq);
            return ps_fail(err, PROMPTSHAP_ERR_TOO_LONG, "a coalition needs %d tokens, more than the context of %d",
                           len, sc->n_kv - sc->n_prefix);
        }
        memcpy(seq + n_context, sc->target_ids, (size_t)T * sizeof(int32_t));
        b->n_tokens = len;
        for (int pos = 0; pos < len; pos++) {
            b->token[pos] = seq[pos];
            b->pos[pos] = pos;
            b->n_seq_id[pos] = 1;
            b->seq_id[pos][0] = id;
            b->logits[pos] = 1;
        }
        free(seq);
        if (sc->should_stop && sc->should_stop(sc->should_stop_data)) {
            return ps_fail(err, PROMPTSHAP_ERR_CANCELLED, "cancelled");
        }
        sc->stats.n_sequences++;
        sc->stats.n_tokens_total += len;
        sc->stats.n_tokens_unique += len;
        int ret = engine_decode(sc, b);
        if (ret != 0) {
            st = ps_fail(err, ret == 2 ? PROMPTSHAP_ERR_CANCELLED : PROMPTSHAP_ERR_DECODE,
                         "llama_decode failed with code %d on a sequence of %d tokens", ret, len);
        }
        if (st == PROMPTSHAP_OK) {
            /* logits were computed at every position; the target's rows are scored */
            sc->stats.n_rows += len - T;
            for (int t = 0; t < T; t++) {
                sc->jobs[t] = (ps_softmax_job){ .row = llama_get_logits_ith(sc->ctx, n_context - 1 + t),
                                                .token = sc->target_ids[t],
                                                .out = &values[(size_t)k * T + t] };
            }
            score_rows(sc, sc->jobs, T);
            st = check_values(sc, members + (size_t)k * W, values + (size_t)k * T, err);
        }
        llama_memory_seq_rm(mem, id, -1, -1);
    }
    return st;
}

enum promptshap_status promptshap_scorer_eval(promptshap_scorer * sc, const uint64_t * members, int n,
                                              double * values, promptshap_error * err) {
    if (n <= 0) {
        return PROMPTSHAP_OK;
    }
    if (sc->engine == PROMPTSHAP_ENGINE_NAIVE) {
        return eval_naive(sc, members, n, values, err);
    }
    const int T = sc->n_target;
    scored_seq * seqs = NULL;
    enum promptshap_status st = build_seqs(sc, members, n, &seqs, err);
    if (st != PROMPTSHAP_OK) {
        return st;
    }
    int * path = malloc((size_t)sc->n_kv * sizeof(int));
    int * rows = malloc((size_t)sc->n_seq_max * (size_t)T * sizeof(int));
    if (!path || !rows) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for %d coalitions", n);
    }
    if (st == PROMPTSHAP_OK) {
        count_plan(seqs, n, &sc->stats);
    }
    int cells = st == PROMPTSHAP_OK ? choose_tree_cells(sc, seqs, n) : 0;
    int first = 0;
    while (first < n && st == PROMPTSHAP_OK) {
        int n_tokens = 0;
        int last = next_tree(sc, seqs, n, first, cells, &n_tokens);
        st = decode_tree(sc, seqs, first, last, members, values, path, rows, err);
        first = last;
    }
    free_seqs(seqs, n);
    free(path);
    free(rows);
    return st;
}

enum promptshap_status promptshap_scorer_plan(promptshap_scorer * sc, const uint64_t * members, int n,
                                              struct promptshap_engine_stats * stats, promptshap_error * err) {
    memset(stats, 0, sizeof(*stats));
    ps_ok(err);
    if (n <= 0) {
        return PROMPTSHAP_OK;
    }
    scored_seq * seqs = NULL;
    enum promptshap_status st = build_seqs(sc, members, n, &seqs, err);
    if (st != PROMPTSHAP_OK) {
        return st;
    }
    count_plan(seqs, n, stats);
    if (sc->engine == PROMPTSHAP_ENGINE_NAIVE) {
        stats->n_tokens_unique = stats->n_tokens_total;
        stats->n_tokens_decoded = stats->n_tokens_total;
        stats->n_rows = stats->n_tokens_total;
        stats->n_decodes = n;
    } else {
        int cells = choose_tree_cells(sc, seqs, n);
        for (int first = 0; first < n;) {
            int n_tokens = 0;
            int last = next_tree(sc, seqs, n, first, cells, &n_tokens);
            stats->n_tokens_decoded += n_tokens;
            stats->n_decodes += n_tokens > 0;
            first = last;
        }
        for (int k = 0; k < n; k++) {
            /* rows inside the kept prefix were scored when it was decoded */
            int in_prefix = sc->n_prefix - (seqs[k].n_context - 1);
            stats->n_rows += sc->n_target - (in_prefix > 0 ? in_prefix : 0);
        }
    }
    free_seqs(seqs, n);
    return PROMPTSHAP_OK;
}

void promptshap_scorer_stats(const promptshap_scorer * sc, struct promptshap_engine_stats * stats) {
    *stats = sc->stats;
}

enum promptshap_status promptshap_scorer_eval_reference(promptshap_scorer * sc, const uint64_t * members,
                                                        double * values, promptshap_error * err) {
    int target_start = 0;
    int len = promptshap_scorer_sequence(sc, members, NULL, 0, &target_start);
    if (len < 0) {
        return ps_fail(err, PROMPTSHAP_ERR_DECODE, "tokenizing the coalition failed");
    }
    int32_t * seq = malloc((size_t)len * sizeof(int32_t));
    if (!seq) {
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
    }
    promptshap_scorer_sequence(sc, members, seq, len, &target_start);

    /* a sequence of its own, from position 0: the kept prefix is not used */
    const llama_seq_id id = PREFIX_SEQ + 1;
    llama_memory_t mem = llama_get_memory(sc->ctx);
    llama_memory_seq_rm(mem, id, -1, -1);
    struct llama_batch * b = &sc->batch;
    enum promptshap_status st = PROMPTSHAP_OK;
    for (int j = 0; j < len - 1; j++) {
        b->n_tokens = 1;
        b->token[0] = seq[j];
        b->pos[0] = j;
        b->n_seq_id[0] = 1;
        b->seq_id[0][0] = id;
        b->logits[0] = 1;
        int ret = llama_decode(sc->ctx, *b);
        if (ret != 0) {
            st = ps_fail(err, PROMPTSHAP_ERR_DECODE, "llama_decode failed with code %d at position %d", ret, j);
            break;
        }
        if (j + 1 >= target_start) {
            const float * row = llama_get_logits_ith(sc->ctx, 0);
            values[j + 1 - target_start] = ps_log_softmax(row, sc->model->n_vocab, seq[j + 1]);
        }
    }
    llama_memory_seq_rm(mem, id, -1, -1);
    free(seq);
    return st;
}

static enum promptshap_status scorer_game_eval(void * user_data, const uint64_t * members, int n, double * values,
                                               promptshap_error * err) {
    return promptshap_scorer_eval((promptshap_scorer *)user_data, members, n, values, err);
}

promptshap_game promptshap_scorer_game(promptshap_scorer * sc) {
    promptshap_game g = {
        .n_players = sc->n_units,
        .n_outputs = sc->n_target,
        .eval = scorer_game_eval,
        .user_data = sc,
    };
    return g;
}
