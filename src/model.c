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
static enum promptshap_status check_gguf(const char * path, promptshap_error * err) {
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
    enum promptshap_status st = check_gguf(path, err);
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
    /* Flash attention off: with the 260K-parameter test model on a 2-core
     * CPU, libllama's default (auto) setting ran prompt processing about 3x
     * slower than disabled. */
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    /* One KV buffer for all sequences, so the cells of a batch are shared
     * out by need rather than split evenly between n_seq sequences. */
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

/* Width of an attention key or value per head: the GGUF key
 * <arch>.attention.key_length (value_length) when present, else the
 * embedding width over the head count. */
static long head_width(const promptshap_model * model, const char * which) {
    char arch[64];
    char key[128];
    char value[32];
    if (llama_model_meta_val_str(model->lm, "general.architecture", arch, sizeof(arch)) > 0) {
        snprintf(key, sizeof(key), "%s.attention.%s", arch, which);
        if (llama_model_meta_val_str(model->lm, key, value, sizeof(value)) > 0 && atol(value) > 0) {
            return atol(value);
        }
    }
    int n_head = llama_model_n_head(model->lm);
    return n_head > 0 ? llama_model_n_embd(model->lm) / n_head : llama_model_n_embd(model->lm);
}

int ps_tree_cells_cap(const promptshap_model * model) {
    double n_embd = llama_model_n_embd(model->lm);
    double layers = llama_model_n_layer(model->lm);
    double heads = llama_model_n_head(model->lm);
    double width = (double)head_width(model, "key_length") + (double)head_width(model, "value_length");
    /* multiply-adds per token of the weights outside the embedding, and of
     * one scored logits row, against those of attending to one more cell */
    double weights = (double)llama_model_n_params(model->lm) - (double)model->n_vocab * n_embd;
    double per_token = (weights > 0 ? weights : 0) + (double)model->n_vocab * n_embd;
    double per_cell = layers * heads * width;
    if (per_cell <= 0) {
        return INT_MAX;
    }
    double cap = 0.1 * per_token / per_cell;
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
