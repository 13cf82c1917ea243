/* SPDX-License-Identifier: MIT
 *
 * Model loading with checks that name the file and the failure, plus the
 * tokenizer and context helpers that scorer.c and generate.c share.
 */
#include "model.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The last error line libllama logged, quoted when a load fails. */
static char last_llama_error[256];

static void quiet_log(enum ggml_log_level level, const char * text, void * user_data) {
    (void)user_data;
    if (level == GGML_LOG_LEVEL_ERROR && text) {
        size_t n = strlen(text);
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ')) {
            n--;
        }
        if (n >= sizeof(last_llama_error)) {
            n = sizeof(last_llama_error) - 1;
        }
        memcpy(last_llama_error, text, n);
        last_llama_error[n] = '\0';
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
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = p.n_gpu_layers;
    struct llama_model * lm = llama_model_load_from_file(path, mp);
    if (!lm) {
        return ps_fail(err, PROMPTSHAP_ERR_MODEL,
                       "libllama %s could not load '%s'%s%s (a truncated file or an unsupported "
                       "architecture; --verbose shows llama.cpp's log)",
                       PROMPTSHAP_LLAMA_RELEASE, path, last_llama_error[0] ? ": " : "", last_llama_error);
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

int ps_tokenize(const promptshap_model * model, const char * text, size_t len, bool add_special, bool parse_special,
                int32_t ** tokens) {
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

size_t ps_context_bytes(const promptshap_model * model, int n_kv, int n_rows, int n_seq, size_t * kv_bytes,
                        size_t * logits_bytes) {
    double layers = llama_model_n_layer(model->lm);
    double heads = llama_model_n_head_kv(model->lm);
    double per_cell = layers * heads * (double)(head_width(model, "key_length") + head_width(model, "value_length")) * 4.0;
    double kv = per_cell * n_kv;
    double logits = (double)n_rows * model->n_vocab * sizeof(float);
    /* llama_batch_init: token, pos, n_seq_id, logits and n_seq ids per token */
    double batch = (double)n_kv * (4.0 + 4.0 + 4.0 + 1.0 + sizeof(void *) + 4.0 * n_seq);
    double total = kv + logits + batch;
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
