/* SPDX-License-Identifier: MIT
 *
 * The model object and the libllama helpers shared by scorer.c and
 * generate.c. Not part of the public API.
 */
#ifndef PROMPTSHAP_MODEL_H
#define PROMPTSHAP_MODEL_H

#include "internal.h"

#include "llama.h"

struct promptshap_model {
    struct llama_model * lm;
    const struct llama_vocab * vocab;
    int n_vocab;
    char desc[128];
    int n_gpu_layers; /* as loaded: 0 keeps every layer and the KV cache in host memory */
    const char ** markers; /* [n_markers] user-defined tokens written <...>, which libllama matches
                              in any text; borrowed from the vocabulary */
    int n_markers;
    int64_t n_embd_params;   /* elements of token_embd.weight and output.weight */
    int64_t n_expert_params; /* elements of the mixture-of-experts tensors (*_exps.*), all experts */
};

/* Routes libllama's log through promptshap_log_set and initializes the
 * backend; idempotent. */
void ps_backend_init(void);
/* Forwards one log line to the callback set with promptshap_log_set. */
void ps_log_forward(int level, const char * text);
/* The last error line libllama logged (empty if none). */
const char * ps_last_llama_error(void);

/* Tokenizes text; *tokens is malloc'ed. Returns the count or -1. Without
 * parse_special no control or marker token comes from the text itself. */
int ps_tokenize(const promptshap_model * model, const char * text, size_t len, bool add_special, bool parse_special,
                int32_t ** tokens);
/* The bytes a token decodes to (special tokens render as nothing);
 * *piece is malloc'ed and NUL-terminated. Returns the length or -1. */
int ps_token_piece(const promptshap_model * model, int32_t token, char ** piece);
/* The id of a marker that tokenizes to exactly one special token, or -1. */
int32_t ps_special_token(const promptshap_model * model, const char * marker);

int ps_default_threads(void);

/* An upper estimate of the host memory a scoring context allocates in
 * libllama: a 32-bit KV cache of n_kv cells for every layer (sliding-window
 * layers counted in full), n_rows logits rows, the attention scores of one
 * micro-batch, plus the batch. */
size_t ps_context_bytes(const promptshap_model * model, int n_kv, int n_rows, int n_seq, size_t * kv_bytes,
                        size_t * logits_bytes);

/* Costs of a decode in multiply-adds of a weight matrix product, by which
 * the planner sizes prefix trees (scorer.c). */
typedef struct ps_decode_costs {
    double token; /* a token's pass through the layers (of the experts, the routed ones) */
    double row;   /* a logits row: the output projection */
    double cell;  /* one token attending to one KV cell, in every layer: with flash attention off every
                     token of a decode attends to every cell of it, masked or not */
} ps_decode_costs;

/* Fills costs from the model's shape. */
void ps_decode_costs_of(const promptshap_model * model, ps_decode_costs * costs);

/* Returns the KV cells up to which one more cell in a decode costs at most
 * a tenth of a token with its logits row. The scorer's batch stops there,
 * since a larger tree spends more on attention than sharing can save.
 * Large models allow hundreds of cells, a 260K-parameter model fewer than
 * one sequence's. */
int ps_tree_cells_cap(const promptshap_model * model);

/* MemAvailable from /proc/meminfo in bytes, or 0 when it cannot be read. */
size_t ps_available_memory(void);

/* A context for scoring or generation: n_ctx KV cells shared by up to n_seq
 * sequences, n_batch tokens and n_outputs logits rows per llama_decode. */
struct llama_context * ps_context_new(promptshap_model * model, int n_ctx, int n_batch, int n_seq, int n_outputs,
                                      int n_threads);

/* Token ids of the framing around the user's text: head contains BOS and
 * everything before the message, tail everything between the message and
 * the target (or the generated answer). */
typedef struct ps_framing {
    int32_t * head; /* [n_head] */
    int n_head;
    int32_t * tail; /* [n_tail] */
    int n_tail;
} ps_framing;

/* Resolves PROMPTSHAP_CHAT_AUTO for a model. */
enum promptshap_chat ps_resolve_chat(const promptshap_model * model, const struct promptshap_score_params * p);

/* Builds the framing of a resolved chat mode. With harmony, final_channel
 * ends the tail with the final-channel header (for scoring a target) rather
 * than the bare assistant start (for generation). Free with ps_framing_free. */
enum promptshap_status ps_framing_build(const promptshap_model * model, enum promptshap_chat chat,
                                        const struct promptshap_score_params * p, bool final_channel,
                                        ps_framing * fr, promptshap_error * err);

void ps_framing_free(ps_framing * fr);

#endif
