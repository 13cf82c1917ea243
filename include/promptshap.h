/* SPDX-License-Identifier: MIT
 *
 * promptshap: attribution of a language model's output to the parts of its
 * prompt, on llama.cpp's C API. The value of a coalition S of prompt units is
 * the log-probability (nats) of a fixed target text when the model is given only
 * the units in S; Shapley values, leave-one-out differences and their
 * per-target-token matrix are computed from that value function.
 *
 * Usage sketch:
 *
 *     promptshap_error err;
 *     promptshap_model * model = NULL;
 *     struct promptshap_model_params mp = promptshap_model_default_params();
 *     if (promptshap_model_load("model.gguf", &mp, &model, &err) != PROMPTSHAP_OK) { ... err.message ... }
 *
 *     struct promptshap_explain_params ep = promptshap_explain_default_params();
 *     ep.method = PROMPTSHAP_METHOD_EXACT;
 *     promptshap_result * res = NULL;
 *     if (promptshap_explain(model, prompt, strlen(prompt), target, strlen(target), &ep, &res, &err) == PROMPTSHAP_OK) {
 *         for (int i = 0; i < res->n_units; i++) printf("%g\n", res->estimate.values[i]);
 *     }
 *     promptshap_result_free(res);
 *     promptshap_model_free(model);
 *
 * The library never exits and never prints: every fallible function returns a
 * status and, when given a promptshap_error, a message that names the value
 * involved. llama.cpp's own log lines go to the callback set with
 * promptshap_log_set (none by default).
 */
#ifndef PROMPTSHAP_H
#define PROMPTSHAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PROMPTSHAP_VERSION_MAJOR 0
#define PROMPTSHAP_VERSION_MINOR 1
#define PROMPTSHAP_VERSION_PATCH 0
#define PROMPTSHAP_VERSION "0.1.0"

/* The llama.cpp source release promptshap is built and tested against. */
#define PROMPTSHAP_LLAMA_RELEASE "v0.4.0"

/* Largest number of units the exact method enumerates (2^20 coalitions). */
#define PROMPTSHAP_EXACT_MAX_UNITS 20
/* Default evaluation budget: enough for exact enumeration up to 10 units
 * (2^10 coalitions). The automatic method is exact when 2^n fits the
 * budget. */
#define PROMPTSHAP_DEFAULT_BUDGET 1024
/* Number of units up to which the automatic method choice is exact under
 * the default budget. */
#define PROMPTSHAP_AUTO_EXACT_MAX_UNITS 10
/* Largest number of units for pairwise interaction indices (2^12 coalitions). */
#define PROMPTSHAP_INTERACTIONS_MAX_UNITS 12
/* Largest budget the gp method runs with: its fit factors a matrix of one
 * row per sampled pair, 2048 rows (two 32 MiB matrices) at this budget.
 * Above it, gp and the automatic choice run Leverage SHAP. */
#define PROMPTSHAP_GP_MAX_BUDGET 4096

/*
 * Status codes and errors
 */

enum promptshap_status {
    PROMPTSHAP_OK                   = 0,
    PROMPTSHAP_ERR_INVALID_ARGUMENT = 1,  /* a parameter is out of range or inconsistent */
    PROMPTSHAP_ERR_INVALID_INPUT    = 2,  /* prompt or target text is empty, not UTF-8, or has no units */
    PROMPTSHAP_ERR_MODEL            = 3,  /* model file missing, unreadable or not loadable */
    PROMPTSHAP_ERR_TOO_LONG         = 4,  /* a sequence does not fit the context size */
    PROMPTSHAP_ERR_TOO_MANY_UNITS   = 5,  /* the method cannot handle this many units */
    PROMPTSHAP_ERR_DECODE           = 6,  /* llama_decode or tokenization failed */
    PROMPTSHAP_ERR_NUMERIC          = 7,  /* a log-probability is NaN or infinite */
    PROMPTSHAP_ERR_NO_MEMORY        = 8,
    PROMPTSHAP_ERR_IO               = 9,  /* reading or writing a file failed */
    PROMPTSHAP_ERR_CANCELLED        = 10, /* the progress callback asked to stop */
};

/* Returns a static, lower-case description of a status ("invalid input", ...). */
const char * promptshap_status_str(enum promptshap_status status);

/* Filled by fallible functions when the caller passes one (NULL is allowed). */
typedef struct promptshap_error {
    enum promptshap_status status;
    char message[512]; /* one line, no trailing newline; empty on success */
} promptshap_error;

/* Returns PROMPTSHAP_VERSION. */
const char * promptshap_version(void);
/* Returns the version string libllama reports at run time. */
const char * promptshap_llama_version(void);

/*
 * Log routing. llama.cpp and ggml log through this callback; with none set
 * (the default) their messages are dropped. level follows ggml_log_level:
 * 1 debug, 2 info, 3 warn, 4 error, 5 continuation of the previous line.
 */
typedef void (*promptshap_log_fn)(int level, const char * text, void * user_data);
void promptshap_log_set(promptshap_log_fn fn, void * user_data);

/*
 * Text: UTF-8 checks, units and sentences (no model needed)
 */

/* A byte range [start, end) in a text. */
typedef struct promptshap_span {
    size_t start;
    size_t end;
} promptshap_span;

/* Returns true if text[0..len) is valid UTF-8 without NUL bytes. On false and
 * when bad_offset is not NULL, *bad_offset is the offset of the first byte of
 * the first invalid sequence (or of the NUL byte). */
bool promptshap_utf8_valid(const char * text, size_t len, size_t * bad_offset);

/* Splits text into words: maximal runs of non-whitespace (ASCII whitespace),
 * so punctuation stays with its word. *spans is allocated with malloc and
 * freed by the caller with free(); it is NULL when *n_spans is 0. */
enum promptshap_status promptshap_split_words(const char * text, size_t len,
                                              promptshap_span ** spans, size_t * n_spans);

/* Splits text into sentences. A sentence ends after '.', '!', '?' or an
 * ellipsis (with any closing quotes or brackets) that is followed by
 * whitespace or the end of the text, except after a short list of common
 * abbreviations and single-letter initials; a blank line also ends one.
 * Single line breaks do not. Spans exclude surrounding whitespace. Same
 * ownership as promptshap_split_words. */
enum promptshap_status promptshap_split_sentences(const char * text, size_t len,
                                                  promptshap_span ** spans, size_t * n_spans);

/* Composes the text of a coalition: the kept units' original text, and
 * between two consecutive kept units the whitespace that followed the
 * earlier one in the prompt; no leading or trailing separator. members has
 * one word per 64 units (bit i % 64 of word i / 64 set = unit i kept).
 * *out is malloc'ed, NUL-terminated, freed by the caller. */
enum promptshap_status promptshap_compose(const char * text, size_t len,
                                          const promptshap_span * units, int n_units,
                                          const uint64_t * members,
                                          char ** out, size_t * out_len);

/* Aligns token pieces (the bytes each token decodes to) with text: on
 * return spans[k] is the byte range of piece k in text. A piece that starts
 * with a space the text does not have at that point (a tokenizer's added
 * space prefix) is aligned without it. Pieces that cannot be matched get an
 * empty span at the current position and the function returns false. */
bool promptshap_align_pieces(const char * text, size_t len,
                             const char * const * pieces, const size_t * piece_lens, int n_pieces,
                             promptshap_span * spans);

/*
 * Games and estimators (no model needed)
 *
 * A game has n_players and a vector value of n_outputs entries per
 * coalition (for a model: one log-probability per target token). Estimators
 * are linear in the value, so they return a value per player and per output.
 */

/* Number of 64-bit words in a coalition of n players. */
#define PROMPTSHAP_MASK_WORDS(n) (((n) + 63) / 64)

/* Evaluates n_coalitions coalitions. members contains them one after another,
 * PROMPTSHAP_MASK_WORDS(n_players) words each; values receives
 * [n_coalitions][n_outputs] doubles. Returns PROMPTSHAP_OK or an error (and
 * fills err when given). */
typedef enum promptshap_status (*promptshap_eval_fn)(void * user_data, const uint64_t * members,
                                                     int n_coalitions, double * values,
                                                     promptshap_error * err);

typedef struct promptshap_game {
    int n_players;
    int n_outputs;
    promptshap_eval_fn eval;
    void * user_data;
} promptshap_game;

enum promptshap_method {
    PROMPTSHAP_METHOD_AUTO        = 0, /* exact when 2^n fits the budget, else gp up to PROMPTSHAP_GP_MAX_BUDGET
                                          and leverage above it (permutation below 4n) */
    PROMPTSHAP_METHOD_EXACT       = 1, /* all 2^n coalitions, closed-form Shapley weights */
    PROMPTSHAP_METHOD_PERMUTATION = 2, /* Monte Carlo over antithetic permutation pairs */
    PROMPTSHAP_METHOD_LOO         = 3, /* leave-one-out: v(N) - v(N without i) */
    PROMPTSHAP_METHOD_KERNEL      = 4, /* KernelSHAP: constrained weighted least squares, paired sampling */
    PROMPTSHAP_METHOD_LEVERAGE    = 5, /* Leverage SHAP: paired sampling by leverage scores, without replacement */
    PROMPTSHAP_METHOD_BANZHAF     = 6, /* Banzhaf values (a different index) by paired uniform sampling */
    PROMPTSHAP_METHOD_GP          = 7, /* Gaussian-process regression on the pairs leverage samples */
};

/* Returns "auto", "exact", "permutation", "loo", "kernel", "leverage",
 * "banzhaf" or "gp"; NULL for other values. */
const char * promptshap_method_name(enum promptshap_method method);
/* Parses a method name; returns false if it is unknown. */
bool promptshap_method_parse(const char * name, enum promptshap_method * method);

/* Called after each evaluated group of coalitions; returning false cancels
 * the run with PROMPTSHAP_ERR_CANCELLED. */
typedef bool (*promptshap_progress_fn)(void * user_data, long done, long total);

struct promptshap_estimate_params {
    enum promptshap_method method;
    int n_samples;     /* permutation: permutations drawn, in antithetic pairs (rounded up to even);
                          at least 4, default 64 */
    uint64_t seed;     /* permutation: random seed; default 1 */
    int max_group;     /* coalitions passed to one eval call (progress is reported between calls); default 32 */
    promptshap_progress_fn progress;
    void * progress_user_data;
    long budget;       /* max distinct coalitions evaluated; 0 = PROMPTSHAP_DEFAULT_BUDGET, except that
                          permutation with budget 0 draws n_samples permutations. exact and loo always
                          evaluate 2^n and n + 2 coalitions */
    double tolerance;  /* sampled methods: stop once max std_error / (max value - min value) is below
                          this; 0 = use the whole budget (default) */
    bool interactions; /* also compute pairwise Shapley interaction indices; needs exact enumeration
                          (AUTO becomes exact) and at most PROMPTSHAP_INTERACTIONS_MAX_UNITS players */
};

struct promptshap_estimate_params promptshap_estimate_default_params(void);

typedef struct promptshap_estimate {
    enum promptshap_method method; /* the method that ran (never AUTO) */
    int n_players;
    int n_outputs;
    int n_samples;          /* permutations used (0 for exact and loo) */
    long n_evaluations;     /* distinct coalitions evaluated */
    double * values;        /* [n_players], value per player summed over outputs */
    double * std_error;     /* [n_players], standard error of values; 0 for exact and loo */
    double * matrix;        /* [n_players][n_outputs], value per player and output */
    double * v_full;        /* [n_outputs], value of the grand coalition */
    double * v_empty;       /* [n_outputs], value of the empty coalition */
    double v_full_total;    /* sum of v_full */
    double v_empty_total;   /* sum of v_empty */
    double efficiency_gap;  /* |sum(values) - (v_full_total - v_empty_total)| */
    enum promptshap_method requested; /* the method asked for; differs from method after AUTO or a fallback */
    const char * note;      /* static text saying why method differs from requested, or NULL */
    long budget;            /* the evaluation budget in force (0 for permutation driven by n_samples) */
    double se_ratio;        /* achieved max std_error / (max value - min value); 0 when every std_error is 0 */
    bool stopped_early;     /* the tolerance was met before the budget was spent */
    double * interactions;  /* [n_players][n_players] pairwise Shapley interaction indices of the values
                               summed over outputs, diagonal 0; NULL unless requested */
} promptshap_estimate;

/* Returns "shapley", "leave-one-out" or "banzhaf": the index a method estimates. */
const char * promptshap_method_index(enum promptshap_method method);

/* Runs an estimator on a game. The result is owned by the caller and freed
 * with promptshap_estimate_free. */
enum promptshap_status promptshap_estimate_run(const promptshap_game * game,
                                               const struct promptshap_estimate_params * params,
                                               promptshap_estimate ** out, promptshap_error * err);

/* Frees an estimate; accepts NULL. */
void promptshap_estimate_free(promptshap_estimate * est);

/*
 * Game files: complete value tables of scalar games
 *
 * Format: a "# players N" line, comment lines starting with '#', then 2^N
 * lines "MASK VALUE" in increasing mask order (bit i of MASK set = player i
 * present). Estimators run on such a table without a model, and exact
 * enumeration gives the reference values.
 */

typedef struct promptshap_game_table {
    int n_players;
    double * values; /* [2^n_players], the value of each coalition, indexed by its mask */
} promptshap_game_table;

/* Reads a game file. Fails with PROMPTSHAP_ERR_IO when the file cannot be
 * read and PROMPTSHAP_ERR_INVALID_INPUT (naming the line) when it is not in
 * the format above or has more than PROMPTSHAP_EXACT_MAX_UNITS players. The
 * table is freed with promptshap_game_table_free. */
enum promptshap_status promptshap_game_table_read(const char * path, promptshap_game_table ** out,
                                                  promptshap_error * err);

/* Frees a table; accepts NULL. */
void promptshap_game_table_free(promptshap_game_table * table);

/* The table as a game with one output. The game borrows the table. */
promptshap_game promptshap_game_table_game(promptshap_game_table * table);

/*
 * Models
 */

typedef struct promptshap_model promptshap_model;

struct promptshap_model_params {
    int n_gpu_layers; /* layers offloaded to a GPU; -1 = all, default 0 */
};

struct promptshap_model_params promptshap_model_default_params(void);

/* Loads a GGUF model. Fails with PROMPTSHAP_ERR_MODEL when the file is
 * missing, unreadable, not a GGUF file or not loadable by libllama. */
enum promptshap_status promptshap_model_load(const char * path,
                                             const struct promptshap_model_params * params,
                                             promptshap_model ** out, promptshap_error * err);

/* Frees a model; accepts NULL. */
void promptshap_model_free(promptshap_model * model);

/* Returns the model's description ("llama 260K ...") into buf; borrowed
 * pointers are valid until the model is freed. */
const char * promptshap_model_desc(const promptshap_model * model);
/* Returns the model's chat template, or NULL when it has none. */
const char * promptshap_model_chat_template(const promptshap_model * model);
/* Returns the model's training context size in tokens. */
int promptshap_model_n_ctx_train(const promptshap_model * model);

/*
 * Framing: how a coalition's text and the target are put before the model
 */

enum promptshap_chat {
    PROMPTSHAP_CHAT_AUTO     = 0, /* harmony if the template uses harmony markers, else template if any, else none */
    PROMPTSHAP_CHAT_NONE     = 1, /* raw text (BOS if the model adds one), then the target */
    PROMPTSHAP_CHAT_TEMPLATE = 2, /* the model's chat template, one user message, assistant turn opened */
    PROMPTSHAP_CHAT_HARMONY  = 3, /* GPT-OSS harmony: system, user, assistant final channel */
};

enum promptshap_reasoning {
    PROMPTSHAP_REASONING_LOW    = 0,
    PROMPTSHAP_REASONING_MEDIUM = 1,
    PROMPTSHAP_REASONING_HIGH   = 2,
};

/* Returns "auto", "none", "template" or "harmony"; NULL for other values. */
const char * promptshap_chat_name(enum promptshap_chat chat);
bool promptshap_chat_parse(const char * name, enum promptshap_chat * chat);
/* Returns "low", "medium" or "high"; NULL for other values. */
const char * promptshap_reasoning_name(enum promptshap_reasoning reasoning);
bool promptshap_reasoning_parse(const char * name, enum promptshap_reasoning * reasoning);

/* Renders the harmony conversation that precedes the target: the system
 * message with the reasoning effort, the user message with content, then
 * "<|start|>assistant" and, when final_channel is true, the final-channel
 * header "<|channel|>final<|message|>". date is "YYYY-MM-DD" or NULL to leave
 * the date line out. The result is split at the user's content so the
 * caller can tokenize the user's text without special tokens: *before and
 * *after are malloc'ed and freed by the caller. */
enum promptshap_status promptshap_harmony_render(enum promptshap_reasoning reasoning, const char * date,
                                                 bool final_channel, char ** before, char ** after);

/*
 * Scoring: the value function on a model
 */

enum promptshap_unit_kind {
    PROMPTSHAP_UNITS_WORDS     = 0,
    PROMPTSHAP_UNITS_TOKENS    = 1,
    PROMPTSHAP_UNITS_SENTENCES = 2,
};

const char * promptshap_unit_kind_name(enum promptshap_unit_kind kind);
bool promptshap_unit_kind_parse(const char * name, enum promptshap_unit_kind * kind);

/* Decoding strategy for the coalitions of one evaluation. */
enum promptshap_engine {
    PROMPTSHAP_ENGINE_BATCHED = 0, /* prefix trees, many sequences per decode, logits only where scored */
    PROMPTSHAP_ENGINE_NAIVE   = 1, /* one decode per coalition over its whole sequence, logits at every
                                      position: the baseline of a notebook workflow, for benchmarks */
};

struct promptshap_score_params {
    enum promptshap_chat chat;
    enum promptshap_reasoning reasoning; /* harmony only; default medium */
    const char * harmony_date;           /* harmony only: "YYYY-MM-DD" or NULL for no date line */
    const char * chat_template;          /* template framing: a built-in template name or template text to use
                                            instead of the model's own; NULL = the model's */
    const char * target_sep;             /* none framing: text between the prompt and the target;
                                            NULL = a space unless the target starts with whitespace */
    enum promptshap_unit_kind units;
    int n_ctx;                           /* max tokens of one scored sequence; 0 = the model's training context */
    int n_batch;                         /* tokens per llama_decode call; default 512 */
    int n_threads;                       /* 0 = all cores */
    bool (*should_stop)(void * user_data); /* checked between and during decodes; true cancels
                                              scoring with PROMPTSHAP_ERR_CANCELLED; NULL = never */
    void * should_stop_data;
    enum promptshap_engine engine;       /* default PROMPTSHAP_ENGINE_BATCHED */
    double max_memory_mib;               /* host memory scoring may plan for; 0 = what the system reports
                                            available. A batch that does not fit is halved until it does */
};

struct promptshap_score_params promptshap_score_default_params(void);

/* A scorer contains a model context, the prompt's units, the framing and the
 * target's tokens: it is the value function of one (prompt, target) pair. */
typedef struct promptshap_scorer promptshap_scorer;

/* Prepares scoring of target under prompt. Both texts are copied. Fails with
 * PROMPTSHAP_ERR_INVALID_INPUT for an empty or non-UTF-8 text or a prompt
 * without units, and PROMPTSHAP_ERR_TOO_LONG when the full prompt plus target
 * exceeds the context size. */
enum promptshap_status promptshap_scorer_init(promptshap_model * model,
                                              const char * prompt, size_t prompt_len,
                                              const char * target, size_t target_len,
                                              const struct promptshap_score_params * params,
                                              promptshap_scorer ** out, promptshap_error * err);

void promptshap_scorer_free(promptshap_scorer * scorer);

/* The framing in use after AUTO was resolved. */
enum promptshap_chat promptshap_scorer_chat(const promptshap_scorer * scorer);
int promptshap_scorer_n_units(const promptshap_scorer * scorer);
/* Byte range of unit i in the prompt. */
promptshap_span promptshap_scorer_unit(const promptshap_scorer * scorer, int i);
int promptshap_scorer_n_target_tokens(const promptshap_scorer * scorer);
/* Token id, text and byte range in the target of target token t. The text
 * pointer is borrowed until the scorer is freed. */
int32_t promptshap_scorer_target_token(const promptshap_scorer * scorer, int t,
                                       const char ** text, promptshap_span * span);

/* Writes the full token sequence of a coalition (framing, kept units,
 * target) into tokens when n_max is large enough, and returns its length;
 * *target_start receives the index of the first target token. Returns -1 on
 * failure. Call with tokens = NULL to get the length. */
int promptshap_scorer_sequence(promptshap_scorer * scorer, const uint64_t * members,
                               int32_t * tokens, int n_max, int * target_start);

/* Scores coalitions in batches: values receives [n][n_target_tokens]
 * log-probabilities (nats) of each target token given the coalition's
 * context and the target tokens before it. */
enum promptshap_status promptshap_scorer_eval(promptshap_scorer * scorer, const uint64_t * members,
                                              int n, double * values, promptshap_error * err);

/* Work of a scorer's engine, counted since the scorer was created (or, from
 * promptshap_scorer_plan, what one evaluation would do). A token counts once
 * per llama_decode that processes it. */
struct promptshap_engine_stats {
    long long n_sequences;      /* coalition sequences scored */
    long long n_tokens_total;   /* tokens of those sequences (framing, kept units, target): the work of one
                                   full decode per coalition */
    long long n_tokens_unique;  /* distinct tokens of the prefix tree of those sequences */
    long long n_tokens_decoded; /* tokens sent to llama_decode, the framing head included once */
    long long n_rows;           /* logits rows: the naive engine computes one per position; the batched
                                   engine counts the rows it scores, once per sequence (identical
                                   sequences share one computed row) */
    long long n_decodes;        /* llama_decode calls */
    double decode_seconds;      /* wall time inside llama_decode */
    double softmax_seconds;     /* wall time of the log-softmax over scored rows */
};

/* The engine's counters since the scorer was created. */
void promptshap_scorer_stats(const promptshap_scorer * scorer, struct promptshap_engine_stats * stats);

/* Plans the evaluation of n coalitions without running the model: stats
 * receives the sequences, tokens, rows and decode calls that
 * promptshap_scorer_eval would use (seconds are zero; the framing head,
 * decoded when the scorer was created, is not counted). */
enum promptshap_status promptshap_scorer_plan(promptshap_scorer * scorer, const uint64_t * members, int n,
                                              struct promptshap_engine_stats * stats, promptshap_error * err);

/* Reference scoring of one coalition: one token per llama_decode call with
 * the KV cache kept, logits at every position. Slow; for tests. */
enum promptshap_status promptshap_scorer_eval_reference(promptshap_scorer * scorer, const uint64_t * members,
                                                        double * values, promptshap_error * err);

/* The scorer as a game (players: units; outputs: target tokens). The game
 * borrows the scorer. */
promptshap_game promptshap_scorer_game(promptshap_scorer * scorer);

/*
 * Generation
 */

struct promptshap_generate_params {
    int n_predict;     /* max tokens to generate; default 128 */
    float temperature; /* 0 = greedy (default) */
    uint64_t seed;     /* sampling seed when temperature > 0 */
    const char * channel; /* harmony: the channel whose text promptshap_generate returns; NULL = "final" */
};

struct promptshap_generate_params promptshap_generate_default_params(void);

/* Harmony's control token ids in a vocabulary; -1 for one it lacks. */
struct promptshap_harmony_ids {
    int32_t start, end, message, channel, constrain, ret, call;
};

/* One message of a generated response. */
typedef struct promptshap_message {
    char * role;      /* the header's role, "assistant" for the message the prompt opened */
    char * channel;   /* harmony channel name ("analysis", "commentary", "final"); "" when the header has
                         none; NULL without harmony */
    char * recipient; /* the header's "to=..." target, or NULL */
    char * constrain; /* the content type after <|constrain|>, or NULL */
    char * text;      /* the content, NUL-terminated */
    int token_begin;  /* content tokens [token_begin, token_end) of the generated tokens */
    int token_end;
    bool complete;    /* ended by <|end|>, <|return|> or <|call|> (harmony) or an end-of-generation token */
} promptshap_message;

/* A generated response: its tokens, its raw text and, with harmony, its
 * messages as read from the control tokens. */
typedef struct promptshap_generation {
    enum promptshap_chat chat;      /* framing after AUTO was resolved */
    int n_tokens;
    int32_t * tokens;               /* [n_tokens] generated tokens, the end token included */
    char * text;                    /* the bytes of every generated token, control tokens written as their text */
    int n_messages;
    promptshap_message * messages;  /* [n_messages]; without harmony one message holding the text */
    int n_problems;
    char ** problems;               /* malformed harmony structure, one sentence each; never glued into a
                                       message */
    bool hit_limit;                 /* generation stopped at n_predict rather than at an end token */
} promptshap_generation;

/* Reads harmony messages from generated tokens. pieces[i] is the
 * NUL-terminated text of tokens[i]; role is the role the prompt opened
 * (the framing ends with "<|start|>assistant", so generation starts inside
 * that header). Control tokens are recognized by id only, so text that
 * merely spells "<|channel|>" stays content. hit_limit tells whether the
 * tokens end because a limit was hit. Free with promptshap_generation_free. */
enum promptshap_status promptshap_harmony_parse(const int32_t * tokens, const char * const * pieces, int n,
                                                const struct promptshap_harmony_ids * ids, const char * role,
                                                bool hit_limit, promptshap_generation ** out,
                                                promptshap_error * err);

/* The text of every message on a channel, in order, separated by blank
 * lines; NULL when there is none (or on allocation failure). Without
 * harmony, channel NULL gives the whole answer. Freed by the caller. */
char * promptshap_generation_channel_text(const promptshap_generation * gen, const char * channel);

/* Generates a response to prompt with the framing of sp and parses its
 * harmony channels. */
enum promptshap_status promptshap_generate_full(promptshap_model * model, const char * prompt, size_t prompt_len,
                                                const struct promptshap_score_params * sp,
                                                const struct promptshap_generate_params * gp,
                                                promptshap_generation ** out, promptshap_error * err);

/* Frees a generation; accepts NULL. */
void promptshap_generation_free(promptshap_generation * gen);

/* Generates a response to prompt with the framing of sp (units and target
 * fields are ignored). With harmony framing only the text of gp->channel
 * (the final channel by default) is returned. *text is malloc'ed,
 * NUL-terminated, freed by the caller. */
enum promptshap_status promptshap_generate(promptshap_model * model, const char * prompt, size_t prompt_len,
                                           const struct promptshap_score_params * sp,
                                           const struct promptshap_generate_params * gp,
                                           char ** text, promptshap_error * err);

/*
 * Explanation: units, scoring and an estimator, end to end
 */

struct promptshap_explain_params {
    struct promptshap_score_params score;
    struct promptshap_estimate_params estimate;
    bool sentences; /* aggregate the matrix over the target's sentences */
};

struct promptshap_explain_params promptshap_explain_default_params(void);

/* One sentence of the target and the matrix aggregated over its tokens. */
typedef struct promptshap_sentence {
    promptshap_span span;  /* byte range in the target */
    int token_begin;       /* first target token of the sentence */
    int token_end;         /* one past its last target token */
    double * sum;          /* [n_units], sum of the matrix over the sentence's tokens, nats */
    double * sum_abs;      /* [n_units], sum of absolute values */
    double * mean_abs;     /* [n_units], mean of absolute values (0 for a sentence without tokens) */
} promptshap_sentence;

typedef struct promptshap_target_token {
    int32_t id;
    char * text;           /* the bytes the token decodes to (may be part of a UTF-8 character) */
    promptshap_span span;  /* byte range in the target */
    double logprob;        /* log p(token | full prompt, earlier target tokens), nats */
} promptshap_target_token;

typedef struct promptshap_result {
    char * prompt;                  /* copy of the prompt, NUL-terminated */
    char * target;                  /* copy of the target, NUL-terminated */
    enum promptshap_chat chat;      /* framing after AUTO was resolved */
    enum promptshap_unit_kind unit_kind;
    int n_units;
    promptshap_span * units;        /* [n_units], byte ranges in the prompt */
    int n_target_tokens;
    promptshap_target_token * target_tokens; /* [n_target_tokens] */
    promptshap_estimate * estimate; /* values, standard errors, matrix [n_units][n_target_tokens];
                                       NULL for promptshap_logprob */
    int n_sentences;
    promptshap_sentence * sentences; /* [n_sentences], NULL unless sentences were requested */
    double seconds;                 /* wall time of scoring and estimation */
    struct promptshap_engine_stats engine; /* the scoring engine's work for this result */
} promptshap_result;

/* Explains target under prompt. The result is freed with
 * promptshap_result_free. */
enum promptshap_status promptshap_explain(promptshap_model * model,
                                          const char * prompt, size_t prompt_len,
                                          const char * target, size_t target_len,
                                          const struct promptshap_explain_params * params,
                                          promptshap_result ** out, promptshap_error * err);

/* Scores target under the full prompt only: a result whose target tokens
 * carry their log-probabilities and whose estimate is NULL. */
enum promptshap_status promptshap_logprob(promptshap_model * model,
                                          const char * prompt, size_t prompt_len,
                                          const char * target, size_t target_len,
                                          const struct promptshap_score_params * params,
                                          promptshap_result ** out, promptshap_error * err);

/* Writes into units the indices of the (at most n_max) units whose sum over
 * the given sentence's tokens is largest in magnitude, largest first, and
 * returns how many it wrote. The result must have sentences. */
int promptshap_sentence_top_units(const promptshap_result * result, int sentence, int * units, int n_max);

/* Frees a result; accepts NULL. */
void promptshap_result_free(promptshap_result * result);

/* Run facts written into the JSON output beside the result. */
struct promptshap_json_meta {
    const char * model;  /* model path as given */
    uint64_t seed;
    bool include_timing; /* write "seconds" (false gives byte-identical output run to run) */
};

/* Rank correlations of two value vectors over the same n units: Spearman's
 * rho (average ranks for ties) and Kendall's tau-b. A coefficient is NaN
 * when one vector is constant. Fails for n < 2 or a value that is not
 * finite. */
enum promptshap_status promptshap_rank_correlation(const double * a, const double * b, int n, double * spearman,
                                                   double * kendall, promptshap_error * err);

/* JSON pieces for callers that write their own objects: a string (bytes
 * that are not valid UTF-8 become U+FFFD; NULL is written as "") and a
 * number (17 significant digits, null when not finite). */
void promptshap_json_string(FILE * f, const char * s);
void promptshap_json_number(FILE * f, double x);

/* Writes a result as one JSON object (see docs/json.md); a result of
 * promptshap_logprob gives the short form without units' values. Returns
 * PROMPTSHAP_ERR_IO if writing fails. */
enum promptshap_status promptshap_result_write_json(const promptshap_result * result,
                                                    const struct promptshap_json_meta * meta, FILE * f);

/*
 * Views: SVG figures, an HTML report and CSV (docs/views.md)
 *
 * Every view colors a value on one diverging scale centered at zero and
 * symmetric around it: blue for a unit that lowers the target's
 * log-probability, orange for one that raises it, near-white for zero,
 * in raw nats. The writers take a result of promptshap_explain (a result of
 * promptshap_logprob has no values and gives PROMPTSHAP_ERR_INVALID_ARGUMENT),
 * write to f and return PROMPTSHAP_ERR_IO when writing fails. Prompt and
 * target text is escaped, so markup in it shows as text.
 */

/* Output tokens per panel of the unit x token matrix figure. */
#define PROMPTSHAP_SVG_PANEL_TOKENS 40

/* Aggregation of a sentence's tokens in the unit x sentence figure. */
enum promptshap_sentence_agg {
    PROMPTSHAP_SENTENCE_SUM      = 0, /* promptshap_sentence.sum */
    PROMPTSHAP_SENTENCE_SUM_ABS  = 1, /* promptshap_sentence.sum_abs */
    PROMPTSHAP_SENTENCE_MEAN_ABS = 2, /* promptshap_sentence.mean_abs */
};

/* Returns "sum", "sum of absolute values" or "mean of absolute values";
 * NULL for other values. */
const char * promptshap_sentence_agg_name(enum promptshap_sentence_agg agg);

/* Writes the unit strip: the prompt's units in order, each colored by its
 * value with the value printed under it, and a labelled color bar. */
enum promptshap_status promptshap_result_write_svg_units(const promptshap_result * result, FILE * f);

/* Returns the number of panels of the unit x token matrix figure:
 * n_target_tokens / PROMPTSHAP_SVG_PANEL_TOKENS rounded up. */
int promptshap_svg_n_panels(const promptshap_result * result);

/* Writes panel `panel` (0-based, below promptshap_svg_n_panels) of the unit
 * x token matrix: rows are units, columns up to PROMPTSHAP_SVG_PANEL_TOKENS
 * target tokens with whitespace shown as symbols. Every panel uses the
 * scale of the whole matrix, so panels compare. */
enum promptshap_status promptshap_result_write_svg_matrix(const promptshap_result * result, int panel, FILE * f);

/* Writes the unit x sentence matrix with the aggregation named in the
 * title. Needs a result explained with sentences on
 * (PROMPTSHAP_ERR_INVALID_ARGUMENT otherwise). */
enum promptshap_status promptshap_result_write_svg_sentences(const promptshap_result * result,
                                                             enum promptshap_sentence_agg agg, FILE * f);

/* Writes the pairwise interaction matrix (unit x unit, nats). Needs a
 * result explained with interactions on (PROMPTSHAP_ERR_INVALID_ARGUMENT
 * otherwise). */
enum promptshap_status promptshap_result_write_svg_interactions(const promptshap_result * result, FILE * f);

/* Writes one self-contained HTML report: the prompt with each unit colored
 * by its value, the target with each token colored by the contribution of
 * the unit hovered or selected, the sentence table and the interaction
 * matrix (when the result has them), the unit x token matrix, and the
 * run's facts from result and meta. The page loads nothing: its script
 * and styles are inline and its Content-Security-Policy blocks every
 * request. */
enum promptshap_status promptshap_result_write_html(const promptshap_result * result,
                                                    const struct promptshap_json_meta * meta, FILE * f);

/* Writes the unit x token matrix in long form, one row per unit and token:
 * unit,unit_start,unit_end,token_index,token_text,value (RFC 4180 quoting,
 * CRLF line ends, a header row; byte offsets; value in nats). */
enum promptshap_status promptshap_result_write_csv(const promptshap_result * result, FILE * f);

#ifdef __cplusplus
}
#endif

#endif /* PROMPTSHAP_H */
