/* SPDX-License-Identifier: MIT
 *
 * Model loading with checks that name the file and the failure, plus the
 * tokenizer and context helpers that scorer.c and generate.c share.
 */
#include "model.h"

#include "gguf.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The last error line libllama logged, quoted when a context cannot be
 * made, and the first one since the model load began: a failed load logs
 * its cause first and a generic "failed to load model" last. */
static char last_llama_error[256];
static char first_llama_error[256];

static void copy_line(char * dst, size_t size, const char * text) {
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ')) {
        n--;
    }
    if (n >= size) {
        n = size - 1;
    }
    memcpy(dst, text, n);
    dst[n] = '\0';
}

static void quiet_log(enum ggml_log_level level, const char * text, void * user_data) {
    (void)user_data;
    if (level == GGML_LOG_LEVEL_ERROR && text) {
        copy_line(last_llama_error, sizeof(last_llama_error), text);
        if (!first_llama_error[0]) {
            copy_line(first_llama_error, sizeof(first_llama_error), text);
        }
    }
    ps_log_forward((int)level, text);
}

void ps_backend_init(void) {
    static bool done;
    if (!done) {
        llama_log_set(quiet_log, NULL);
        llama_backend_init();
        done = true;
    }
}

struct promptshap_model_params promptshap_model_default_params(void) {
    struct promptshap_model_params p = {
        .n_gpu_layers = 0,
    };
    return p;
}

/* libllama matches user-defined tokens in any text, even when asked not to
 * parse special tokens, and it makes GPT-OSS's <|channel|>, <|message|>,
 * <|start|>, <|constrain|> and <|end|> user-defined so that they render.
 * A user who types "<|channel|>" would then inject a control token. The
 * markers among the user-defined tokens (text in angle brackets) are
 * listed here, and ps_tokenize cuts user text inside each occurrence. */
static bool find_markers(promptshap_model * model) {
    int cap = 0;
    for (int32_t id = 0; id < model->n_vocab; id++) {
        if (!(llama_vocab_get_attr(model->vocab, id) & LLAMA_TOKEN_ATTR_USER_DEFINED)) {
            continue;
        }
        const char * text = llama_vocab_get_text(model->vocab, id);
        size_t n = text ? strlen(text) : 0;
        if (n < 3 || text[0] != '<' || text[n - 1] != '>') {
            continue;
        }
        if (model->n_markers == cap) {
            cap = cap ? 2 * cap : 16;
            const char ** grown = realloc(model->markers, (size_t)cap * sizeof(char *));
            if (!grown) {
                return false;
            }
            model->markers = grown;
        }
        model->markers[model->n_markers++] = text;
    }
    return true;
}

static int compare_strings(const void * a, const void * b) {
    return strcmp(*(const char * const *)a, *(const char * const *)b);
}

/* Checks, before libllama reads the file, what libllama v0.4.0 asserts
 * on rather than reports: a block count of 0 or above its 512-layer limit,
 * and a vocabulary that lists one token text twice. Either would abort the
 * process inside libllama. */
/* Adds the weights of a GGUF file's tensors that ps_decode_costs_of does
 * not charge to every token: the embedding table and output projection,
 * and the experts, of which a token passes through the routed share only. */
static void count_weights(const struct gguf_context * g, promptshap_model * counts) {
    for (int64_t i = 0; i < gguf_get_n_tensors(g); i++) {
        const char * name = gguf_get_tensor_name(g, i);
        enum ggml_type type = gguf_get_tensor_type(g, i);
        int64_t n = (int64_t)(gguf_get_tensor_size(g, i) / ggml_type_size(type)) * ggml_blck_size(type);
        if (strcmp(name, "token_embd.weight") == 0 || strcmp(name, "output.weight") == 0) {
            counts->n_embd_params += n;
        } else if (strstr(name, "_exps.")) {
            counts->n_expert_params += n;
        }
    }
}

/* Adds the counts of the other files of a model split in n_split files,
 * named as libllama names them (PREFIX-00002-of-00004.gguf). A file that
 * cannot be read is skipped here, and libllama's load reports it.
 * NOTE: not yet run on a split model; the file names follow
 * llama_split_path as libllama's loader does. */
static void count_split_weights(const char * path, int n_split, promptshap_model * counts) {
    char prefix[PATH_MAX];
    char part[PATH_MAX];
    if (n_split < 2 || llama_split_prefix(prefix, sizeof(prefix), path, 0, n_split) <= 0) {
        return;
    }
    for (int i = 1; i < n_split; i++) {
        if (llama_split_path(part, sizeof(part), prefix, i, n_split) <= 0) {
            continue;
        }
        struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
        struct gguf_context * g = gguf_init_from_file(part, gp);
        if (g) {
            count_weights(g, counts);
            gguf_free(g);
        }
    }
}

static enum promptshap_status check_gguf(const char * path, promptshap_model * counts, promptshap_error * err) {
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    struct gguf_context * g = gguf_init_from_file(path, gp);
    if (!g) {
        return ps_fail(err, PROMPTSHAP_ERR_MODEL,
                       "could not load '%s': it starts like a GGUF file but its header is damaged or "
                       "truncated%s%s; download or convert the model again",
                       path, first_llama_error[0] ? ": " : "", first_llama_error);
    }
    enum promptshap_status st = PROMPTSHAP_OK;
    int64_t arch_key = gguf_find_key(g, "general.architecture");
    if (arch_key >= 0 && gguf_get_kv_type(g, arch_key) == GGUF_TYPE_STRING) {
        char key[160];
        snprintf(key, sizeof(key), "%s.block_count", gguf_get_val_str(g, arch_key));
        int64_t k = gguf_find_key(g, key);
        if (k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_UINT32) {
            uint32_t layers = gguf_get_val_u32(g, k);
            if (layers == 0 || layers > 512) {
                st = ps_fail(err, PROMPTSHAP_ERR_MODEL, "'%s' has %s = %u; a model needs 1 to 512 layers",
                             path, key, layers);
            }
        }
    }
    int64_t tokens = gguf_find_key(g, "tokenizer.ggml.tokens");
    if (st == PROMPTSHAP_OK && tokens >= 0 && gguf_get_kv_type(g, tokens) == GGUF_TYPE_ARRAY &&
        gguf_get_arr_type(g, tokens) == GGUF_TYPE_STRING) {
        size_t n = gguf_get_arr_n(g, tokens);
        const char ** texts = malloc((n + 1) * sizeof(char *));
        if (!texts) {
            st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory checking the vocabulary of '%s'", path);
        } else {
            for (size_t i = 0; i < n; i++) {
                texts[i] = gguf_get_arr_str(g, tokens, i);
            }
            qsort(texts, n, sizeof(char *), compare_strings);
            for (size_t i = 1; i < n && st == PROMPTSHAP_OK; i++) {
                if (strcmp(texts[i - 1], texts[i]) == 0) {
                    st = ps_fail(err, PROMPTSHAP_ERR_MODEL,
                                 "'%s' lists the token '%.60s' twice in tokenizer.ggml.tokens; the vocabulary is "
                                 "damaged", path, texts[i]);
                }
            }
            free(texts);
        }
    }
    count_weights(g, counts);
    int64_t split_key = gguf_find_key(g, "split.count");
    if (split_key >= 0 && gguf_get_kv_type(g, split_key) == GGUF_TYPE_UINT16) {
        count_split_weights(path, gguf_get_val_u16(g, split_key), counts);
    }
    gguf_free(g);
    return st;
}

enum promptshap_status promptshap_model_load(const char * path, const struct promptshap_model_params * params,
                                             promptshap_model ** out, promptshap_error * err) {
    *out = NULL;
    ps_ok(err);
    struct promptshap_model_params p = params ? *params : promptshap_model_default_params();

    /* check the file before libllama opens it, for a clearer message */
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        return ps_fail(err, PROMPTSHAP_ERR_MODEL, "cannot open model '%s': it is a directory", path);
    }
    FILE * f = fopen(path, "rb");
    if (!f) {
        return ps_fail(err, PROMPTSHAP_ERR_MODEL, "cannot open model '%s': %s", path, strerror(errno));
    }
    unsigned char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got != 4 || memcmp(magic, "GGUF", 4) != 0) {
        return ps_fail(err, PROMPTSHAP_ERR_MODEL,
                       "'%s' is not a GGUF model file (it does not start with the bytes 'GGUF'); "
                       "convert the model with llama.cpp's convert_hf_to_gguf.py",
                       path);
    }

    ps_backend_init();
    last_llama_error[0] = '\0';
    first_llama_error[0] = '\0';
    promptshap_model counts = {0};
    enum promptshap_status st = check_gguf(path, &counts, err);
    if (st != PROMPTSHAP_OK) {
        return st;
    }
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = p.n_gpu_layers;
    struct llama_model * lm = llama_model_load_from_file(path, mp);
    if (!lm) {
        return ps_fail(err, PROMPTSHAP_ERR_MODEL,
                       "libllama %s could not load '%s'%s%s (a truncated file or an unsupported "
                       "architecture; --verbose shows llama.cpp's log)",
                       PROMPTSHAP_LLAMA_RELEASE, path, first_llama_error[0] ? ": " : "", first_llama_error);
    }

    promptshap_model * model = calloc(1, sizeof(*model));
    if (!model) {
        llama_model_free(lm);
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory loading '%s'", path);
    }
    model->lm = lm;
    model->n_gpu_layers = p.n_gpu_layers;
    model->n_embd_params = counts.n_embd_params;
    model->n_expert_params = counts.n_expert_params;
    model->vocab = llama_model_get_vocab(lm);
    model->n_vocab = llama_vocab_n_tokens(model->vocab);
    llama_model_desc(lm, model->desc, sizeof(model->desc));
    if (!find_markers(model)) {
        promptshap_model_free(model);
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory loading '%s'", path);
    }
    if (llama_model_has_encoder(lm) || !llama_model_has_decoder(lm)) {
        promptshap_model_free(model);
        return ps_fail(err, PROMPTSHAP_ERR_MODEL,
                       "'%s' is not a decoder-only language model; promptshap scores causal models only", path);
    }
    *out = model;
    return PROMPTSHAP_OK;
}

void promptshap_model_free(promptshap_model * model) {
    if (!model) {
        return;
    }
    llama_model_free(model->lm);
    free(model->markers);
    free(model);
}

const char * promptshap_model_desc(const promptshap_model * model) {
    return model->desc;
}

const char * promptshap_model_chat_template(const promptshap_model * model) {
    return llama_model_chat_template(model->lm, NULL);
}

int promptshap_model_n_ctx_train(const promptshap_model * model) {
    return llama_model_n_ctx_train(model->lm);
}

/*
 * Tokens
 */

/* llama_tokenize into a malloc'ed buffer; the count, or -1. */
static int tokenize_once(const promptshap_model * model, const char * text, size_t len, bool add_special,
                         bool parse_special, int32_t ** tokens) {
    *tokens = NULL;
    if (len > INT32_MAX / 2) {
        return -1;
    }
    /* at most one token per byte, plus BOS and EOS */
    int cap = (int)len + 4;
    int32_t * buf = malloc((size_t)cap * sizeof(int32_t));
    if (!buf) {
        return -1;
    }
    int n = llama_tokenize(model->vocab, text, (int32_t)len, buf, cap, add_special, parse_special);
    if (n < 0 && n != INT32_MIN) {
        cap = -n;
        int32_t * grown = realloc(buf, (size_t)cap * sizeof(int32_t));
        if (!grown) {
            free(buf);
            return -1;
        }
        buf = grown;
        n = llama_tokenize(model->vocab, text, (int32_t)len, buf, cap, add_special, parse_special);
    }
    if (n < 0) {
        free(buf);
        return -1;
    }
    *tokens = buf;
    return n;
}

/* The length of the marker that starts at text[i], or 0. */
static size_t marker_at(const promptshap_model * model, const char * text, size_t len, size_t i) {
    for (int k = 0; k < model->n_markers; k++) {
        size_t m = strlen(model->markers[k]);
        if (m <= len - i && memcmp(text + i, model->markers[k], m) == 0) {
            return m;
        }
    }
    return 0;
}

int ps_tokenize(const promptshap_model * model, const char * text, size_t len, bool add_special, bool parse_special,
                int32_t ** tokens) {
    if (parse_special || add_special || model->n_markers == 0 || !memchr(text, '<', len)) {
        return tokenize_once(model, text, len, add_special, parse_special, tokens);
    }
    /* Text that may spell a marker: tokenize the pieces between cuts made
     * one byte into every marker, so no piece holds a whole marker. After
     * the '<' is where a regex pre-tokenizer splits such text anyway. */
    *tokens = NULL;
    int32_t * all = NULL;
    int n_all = 0;
    size_t from = 0;
    for (size_t i = 0; i <= len; i++) {
        bool cut = i == len;
        if (!cut && text[i] == '<' && marker_at(model, text, len, i) > 0) {
            cut = true;
            i++; /* the piece ends after the '<' */
        }
        if (!cut || i == from) {
            continue;
        }
        int32_t * part = NULL;
        int n = tokenize_once(model, text + from, i - from, false, false, &part);
        int32_t * grown = n >= 0 ? realloc(all, ((size_t)n_all + (size_t)n + 1) * sizeof(int32_t)) : NULL;
        if (!grown) {
            free(part);
            free(all);
            return -1;
        }
        all = grown;
        if (n > 0) {
            memcpy(all + n_all, part, (size_t)n * sizeof(int32_t));
        }
        n_all += n;
        free(part);
        from = i;
        i--; /* the loop's i++ moves on to the byte after the cut */
    }
    if (!all) {
        all = malloc(sizeof(int32_t));
        if (!all) {
            return -1;
        }
    }
    *tokens = all;
    return n_all;
}

int ps_token_piece(const promptshap_model * model, int32_t token, char ** piece) {
    char small[64];
    int n = llama_token_to_piece(model->vocab, token, small, (int32_t)sizeof(small), 0, false);
    int cap = n >= 0 ? n : -n;
    char * buf = malloc((size_t)cap + 1);
    if (!buf) {
        return -1;
    }
    if (n >= 0) {
        memcpy(buf, small, (size_t)n);
    } else {
        n = llama_token_to_piece(model->vocab, token, buf, cap, 0, false);
        if (n < 0) {
            free(buf);
            return -1;
        }
    }
    buf[n] = '\0';
    *piece = buf;
    return n;
}

/* Single token id of a special marker such as "<|channel|>", or -1. */
int32_t ps_special_token(const promptshap_model * model, const char * marker) {
    int32_t * t = NULL;
    int n = ps_tokenize(model, marker, strlen(marker), false, true, &t);
    int32_t id = (n == 1) ? t[0] : -1;
    free(t);
    return id;
}

/*
 * Contexts
 */

int ps_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

struct llama_context * ps_context_new(promptshap_model * model, int n_ctx, int n_batch, int n_seq, int n_outputs,
                                      int n_threads) {
    ps_backend_init();
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)n_batch;
    cp.n_ubatch = (uint32_t)(n_batch < 512 ? n_batch : 512);
    cp.n_seq_max = (uint32_t)n_seq;
    cp.n_outputs_max = (uint32_t)n_outputs;
    cp.n_threads = n_threads > 0 ? n_threads : ps_default_threads();
    cp.n_threads_batch = cp.n_threads;
    /* Flash attention off. With it, exact Shapley of the 6-word example ran
     * faster, because ggml's CPU kernel skips masked cells. On one core of a
     * 2-core AMD EPYC the batched engine took 37.6 s against 43.0 s on a
     * 100M-parameter llama with harmony framing, and 0.7 s against 1.7 to
     * 1.9 s on the 260K-parameter demo model. But libllama v0.4.0 casts the
     * 32-bit cache to 16 bits for it. On the GPT-OSS-shaped test model a
     * coalition's log-probabilities then differed by 1.3e-3 nats between a
     * prefix tree and a decode of its own (4.3e-3 against one token per
     * decode), where 1e-4 is allowed. */
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    /* One KV buffer for all sequences. A split cache cannot run prefix
     * trees: libllama v0.4.0 rejects a batch whose tokens carry several
     * sequence ids there ("coupled sequences", llama_batch_allocr::
     * split_equal), gives every sequence n_ctx cells of its own, and copies
     * the cells that llama_memory_seq_cp would share. */
    cp.kv_unified = true;
    /* Sliding-window layers (GPT-OSS alternates them) keep a full-size
     * cache, so cells copied from the kept prefix with llama_memory_seq_cp
     * stay valid in every sequence of a tree. A window-sized cache would
     * need about window x sequences cells anyway, more than a tree's batch;
     * the harmony_model test checks that prefix trees and single decodes
     * agree on a model whose sequences are longer than its window. */
    cp.swa_full = true;
    cp.no_perf = true;
    /* A 32-bit KV cache: with libllama's default 16-bit cache, scoring a
     * 254-token target in one decode and one token per decode disagreed by
     * up to 0.014 nats per token (0.04 nats in total) on the 260K test
     * model; with 32 bits they agree within 2e-5. Attribution differences
     * are often that small, so precision wins over cache memory. */
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    return llama_init_from_model(model->lm, cp);
}

/* Returns the integer hyperparameter <arch>.NAME of the GGUF metadata, or 0. */
static long arch_value(const promptshap_model * model, const char * name) {
    char arch[64];
    char key[128];
    char value[32];
    if (llama_model_meta_val_str(model->lm, "general.architecture", arch, sizeof(arch)) <= 0) {
        return 0;
    }
    snprintf(key, sizeof(key), "%s.%s", arch, name);
    if (llama_model_meta_val_str(model->lm, key, value, sizeof(value)) <= 0) {
        return 0;
    }
    return atol(value);
}

/* Width of an attention key or value per head: the GGUF key
 * <arch>.attention.key_length (value_length) when present, else the
 * embedding width over the head count. */
static long head_width(const promptshap_model * model, const char * which) {
    char name[64];
    snprintf(name, sizeof(name), "attention.%s", which);
    long width = arch_value(model, name);
    if (width > 0) {
        return width;
    }
    int n_head = llama_model_n_head(model->lm);
    return n_head > 0 ? llama_model_n_embd(model->lm) / n_head : llama_model_n_embd(model->lm);
}

/* With flash attention off, attention computes a query-key product, a
 * masked softmax entry and a weighted value sum for every token and cell.
 * These run in separate passes over a score matrix in memory, so one of
 * its multiply-adds costs more than one of a weight matrix product. Measured with exact
 * Shapley of the 6-word example with harmony framing on the GPT-OSS-shaped
 * benchmark model, on one core of a 2-core AMD EPYC. Prefix trees whose
 * tokens attended to 768, 512 and 256 cells took 12.6, 11.9 and 11.5 s
 * inside llama_decode (13.4, 12.9 and 11.9 s in a second run) for nearly
 * the same 4,600 tokens. That is 0.5 to 0.6 microseconds per token and
 * cell (4,096 multiply-adds), while a logits row (66M multiply-adds) took
 * 2.3 ms: about 4 times the cost per multiply-add. */
#define ATTENTION_COST_FACTOR 4.0

void ps_decode_costs_of(const promptshap_model * model, ps_decode_costs * c) {
    double n_embd = llama_model_n_embd(model->lm);
    double layers = llama_model_n_layer(model->lm);
    double heads = llama_model_n_head(model->lm);
    double width = (double)head_width(model, "key_length") + (double)head_width(model, "value_length");
    /* the weights outside the embedding table and the output projection,
     * of the experts only the routed share */
    double weights = (double)llama_model_n_params(model->lm) - (double)model->n_embd_params;
    long experts = arch_value(model, "expert_count");
    long used = arch_value(model, "expert_used_count");
    if (experts > 0 && used > 0 && used <= experts) {
        weights -= (double)model->n_expert_params * (double)(experts - used) / (double)experts;
    }
    if (weights < 0) {
        weights = 0;
    }
    c->token = weights;
    c->row = (double)model->n_vocab * n_embd;
    c->cell = ATTENTION_COST_FACTOR * layers * heads * width;
}

int ps_tree_cells_cap(const promptshap_model * model) {
    ps_decode_costs c;
    ps_decode_costs_of(model, &c);
    if (c.cell <= 0) {
        return INT_MAX;
    }
    double cap = 0.1 * (c.token + c.row) / c.cell;
    return cap > 1e9 ? 1000000000 : (int)cap;
}

size_t ps_context_bytes(const promptshap_model * model, int n_kv, int n_rows, int n_seq, size_t * kv_bytes,
                        size_t * logits_bytes) {
    double layers = llama_model_n_layer(model->lm);
    double heads = llama_model_n_head_kv(model->lm);
    double per_cell = layers * heads * (double)(head_width(model, "key_length") + head_width(model, "value_length")) * 4.0;
    double kv = per_cell * n_kv;
    double logits = (double)n_rows * model->n_vocab * sizeof(float);
    /* llama_batch_init: token, pos, n_seq_id, logits and n_seq ids per token */
    double batch = (double)n_kv * (4.0 + 4.0 + 4.0 + 1.0 + sizeof(void *) + 4.0 * n_seq);
    /* libllama's compute buffer, dominated (flash attention off) by the
     * attention scores of one micro-batch against every cell, and its
     * softmax, for all heads of a layer at once */
    double n_ubatch = n_kv < 512 ? n_kv : 512;
    double compute = 2.0 * (double)n_kv * n_ubatch * llama_model_n_head(model->lm) * 4.0;
    double total = kv + logits + batch + compute;
    *kv_bytes = kv > (double)SIZE_MAX ? SIZE_MAX : (size_t)kv;
    *logits_bytes = logits > (double)SIZE_MAX ? SIZE_MAX : (size_t)logits;
    return total > (double)SIZE_MAX ? SIZE_MAX : (size_t)total;
}

size_t ps_available_memory(void) {
    FILE * f = fopen("/proc/meminfo", "r");
    if (!f) {
        return 0;
    }
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long v = 0;
        if (sscanf(line, "MemAvailable: %llu kB", &v) == 1) {
            kib = (size_t)v;
            break;
        }
    }
    fclose(f);
    return kib * 1024;
}

const char * ps_last_llama_error(void) {
    return last_llama_error;
}
