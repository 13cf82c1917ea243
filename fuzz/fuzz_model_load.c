/* SPDX-License-Identifier: MIT
 *
 * Fuzzes promptshap_model_load with damaged GGUF headers. The input is
 * the start of a GGUF file: magic, key-value metadata and tensor infos.
 * The harness follows it with MODEL_PAD_BYTES zero bytes, the size of the
 * tensor data of the seed taken from stories260K.gguf. So the unchanged
 * seed loads, and a mutated header reaches the hyperparameter and
 * vocabulary code rather than failing on a short file. The file lives in
 * memory (memfd) and is opened through /proc/self/fd.
 *
 * libllama is not built with coverage, so byte mutations alone rarely get
 * past its parser. A custom mutator therefore edits the parsed header:
 * integer and string values, array elements and lengths, value types,
 * keys added or removed, tensor shapes, types and offsets, and the
 * header's counts. One mutation in eight stays a byte mutation. libllama's
 * warnings and errors stand in for its coverage (count_outcome).
 *
 * A load must either succeed, giving a model whose description and
 * context size can be read, or fail with PROMPTSHAP_ERR_MODEL and a
 * message. Inputs that make libllama v0.4.0 itself abort are skipped (see
 * libllama_aborts below and fuzz/README.md).
 */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <ggml.h>
#include <gguf.h>
#include <sys/wait.h>

/* Size of stories260K.gguf (1,185,376 bytes) less its 14,176-byte header. */
#define MODEL_PAD_BYTES 1171200

#define GGUF_ALIGNMENT 32
/* More pairs and tensors than a header within scripts/fuzz.sh's 32 kB
 * max_len can hold (a pair takes at least 14 bytes, a tensor info 25). */
#define MAX_KV 4096
#define MAX_TENSORS 2048
#define MAX_DIMS 4

/*
 * A parsed header. Values point into the input or into the mutator's
 * scratch memory; nothing is owned. The parser and the mutator are
 * FUZZ_NO_COVERAGE: their branches would make libFuzzer keep inputs for
 * what the harness does rather than for what the loader does.
 */

typedef struct {
    const uint8_t * p;
    size_t n;
} bytes;

typedef struct {
    bytes key;
    uint32_t type;
    bytes value; /* the serialized value, for an array its element type and count included */
} gguf_kv;

typedef struct {
    bytes name;
    uint32_t n_dims;
    uint64_t dims[MAX_DIMS];
    uint32_t type;
    uint64_t offset;
} gguf_tensor;

typedef struct {
    uint32_t version;
    uint64_t n_tensors; /* the counts as written; a mutation may make them disagree with the lists */
    uint64_t n_kv;
    gguf_kv kv[MAX_KV];
    size_t kv_count;
    gguf_tensor tensors[MAX_TENSORS];
    size_t tensor_count;
} gguf_header;

typedef struct {
    const uint8_t * p;
    size_t n;
    size_t i;
    bool ok;
} cursor;

FUZZ_NO_COVERAGE static uint64_t get_u(cursor * c, size_t width) {
    uint64_t v = 0;
    if (!c->ok || c->n - c->i < width) {
        c->ok = false;
        return 0;
    }
    for (size_t k = 0; k < width; k++) {
        v |= (uint64_t)c->p[c->i + k] << (8 * k);
    }
    c->i += width;
    return v;
}

FUZZ_NO_COVERAGE static bytes get_str(cursor * c) {
    bytes b = {NULL, 0};
    uint64_t n = get_u(c, 8);
    if (!c->ok || n > c->n - c->i) {
        c->ok = false;
        return b;
    }
    b.p = c->p + c->i;
    b.n = (size_t)n;
    c->i += (size_t)n;
    return b;
}

FUZZ_NO_COVERAGE static size_t scalar_size(uint32_t type) {
    static const size_t sizes[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < GGUF_TYPE_COUNT ? sizes[type] : 0;
}

/* Skips one value of the type; arrays of arrays are not parsed. */
FUZZ_NO_COVERAGE static void skip_value(cursor * c, uint32_t type, bool in_array) {
    if (type == GGUF_TYPE_STRING) {
        get_str(c);
    } else if (type == GGUF_TYPE_ARRAY && !in_array) {
        uint32_t elem = (uint32_t)get_u(c, 4);
        uint64_t n = get_u(c, 8);
        if (elem == GGUF_TYPE_ARRAY || (elem != GGUF_TYPE_STRING && scalar_size(elem) == 0)) {
            c->ok = false;
        }
        for (uint64_t k = 0; c->ok && k < n; k++) {
            skip_value(c, elem, true);
        }
    } else if (scalar_size(type) > 0) {
        get_u(c, scalar_size(type));
    } else {
        c->ok = false;
    }
}

FUZZ_NO_COVERAGE static bool parse_header(const uint8_t * data, size_t size, gguf_header * h) {
    cursor c = {data, size, 0, true};
    memset(h, 0, sizeof(*h));
    if (size < 4 || memcmp(data, "GGUF", 4) != 0) {
        return false;
    }
    c.i = 4;
    h->version = (uint32_t)get_u(&c, 4);
    h->n_tensors = get_u(&c, 8);
    h->n_kv = get_u(&c, 8);
    for (uint64_t k = 0; c.ok && k < h->n_kv; k++) {
        if (h->kv_count == MAX_KV) {
            return false;
        }
        gguf_kv * kv = &h->kv[h->kv_count++];
        kv->key = get_str(&c);
        kv->type = (uint32_t)get_u(&c, 4);
        size_t start = c.i;
        skip_value(&c, kv->type, false);
        kv->value.p = data + start;
        kv->value.n = c.i - start;
    }
    for (uint64_t k = 0; c.ok && k < h->n_tensors; k++) {
        if (h->tensor_count == MAX_TENSORS) {
            return false;
        }
        gguf_tensor * t = &h->tensors[h->tensor_count++];
        t->name = get_str(&c);
        t->n_dims = (uint32_t)get_u(&c, 4);
        if (t->n_dims > MAX_DIMS) {
            return false;
        }
        for (uint32_t d = 0; d < t->n_dims; d++) {
            t->dims[d] = get_u(&c, 8);
        }
        t->type = (uint32_t)get_u(&c, 4);
        t->offset = get_u(&c, 8);
    }
    return c.ok;
}

/* Writes the header, padded with zeros to GGUF_ALIGNMENT; returns its size,
 * or 0 when it does not fit in max bytes. */
FUZZ_NO_COVERAGE static size_t write_header(const gguf_header * h, uint8_t * out, size_t max) {
    size_t n = 0;
    bool fits = true;
#define PUT(src, len)                                 \
    do {                                              \
        if (fits && (len) <= max - n) {               \
            memcpy(out + n, (src), (len));            \
            n += (len);                               \
        } else {                                      \
            fits = false;                             \
        }                                             \
    } while (0)
#define PUT_U(value, width)                           \
    do {                                              \
        uint64_t v_ = (value);                        \
        uint8_t b_[8];                                \
        for (int k_ = 0; k_ < (width); k_++) {        \
            b_[k_] = (uint8_t)(v_ >> (8 * k_));       \
        }                                             \
        PUT(b_, (size_t)(width));                     \
    } while (0)
    PUT("GGUF", 4);
    PUT_U(h->version, 4);
    PUT_U(h->n_tensors, 8);
    PUT_U(h->n_kv, 8);
    for (size_t k = 0; k < h->kv_count; k++) {
        PUT_U(h->kv[k].key.n, 8);
        PUT(h->kv[k].key.p, h->kv[k].key.n);
        PUT_U(h->kv[k].type, 4);
        PUT(h->kv[k].value.p, h->kv[k].value.n);
    }
    for (size_t k = 0; k < h->tensor_count; k++) {
        const gguf_tensor * t = &h->tensors[k];
        PUT_U(t->name.n, 8);
        PUT(t->name.p, t->name.n);
        PUT_U(t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims && d < MAX_DIMS; d++) {
            PUT_U(t->dims[d], 8);
        }
        PUT_U(t->type, 4);
        PUT_U(t->offset, 8);
    }
    while (fits && n % GGUF_ALIGNMENT != 0) {
        PUT("", 1);
    }
#undef PUT
#undef PUT_U
    return fits ? n : 0;
}

FUZZ_NO_COVERAGE static const gguf_kv * find_kv(const gguf_header * h, const char * key) {
    for (size_t k = 0; k < h->kv_count; k++) {
        if (h->kv[k].key.n == strlen(key) && memcmp(h->kv[k].key.p, key, h->kv[k].key.n) == 0) {
            return &h->kv[k];
        }
    }
    return NULL;
}

/*
 * The custom mutator
 */

size_t LLVMFuzzerMutate(uint8_t * data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t * data, size_t size, size_t max_size, unsigned int seed);
int LLVMFuzzerInitialize(int * argc, char *** argv);
int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size);

static uint64_t rng_state;

/* A number in [0, n) from xorshift64*, seeded by libFuzzer. */
FUZZ_NO_COVERAGE static uint64_t rnd(uint64_t n) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return n ? (rng_state * 0x2545f4914f6cdd1dull) % n : 0;
}

/* Integers that are likely to break size computations. */
FUZZ_NO_COVERAGE static uint64_t interesting_int(void) {
    static const uint64_t values[] = {
        0, 1, 2, 3, 4, 7, 8, 16, 31, 32, 63, 64, 255, 256, 512, 1024, 2048, 4096, 65535, 65536,
        0x7fffffffu, 0x80000000u, 0xffffffffu, 0x100000000ull, 0x7fffffffffffffffull, 0xffffffffffffffffull,
    };
    uint64_t v = values[rnd(sizeof(values) / sizeof(values[0]))];
    switch (rnd(4)) {
        case 0: return v + 1;
        case 1: return v - 1;
        default: return v;
    }
}

static const char * const interesting_strings[] = {
    "", "llama", "nonexistent", "gpt2", "bert", "t5", "rwkv", "ugm", "spm", "bpe", "wpm", "none", "plamo2",
    "gemma", "gemma3", "qwen2", "phi3", "mamba", "falcon", "deepseek2", "gpt-oss", "<s>", "</s>", "<unk>",
    "[EMPTY_0]", "\xff\xfe", "{{ messages }}", "{% for m in messages %}{{ m.content }}{% endfor %}",
};

/* Keys libllama reads for a llama model, to add with any value. */
static const char * const interesting_keys[] = {
    "general.alignment", "general.architecture", "llama.context_length", "llama.embedding_length",
    "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
    "llama.block_count", "llama.rope.dimension_count", "llama.attention.layer_norm_rms_epsilon",
    "llama.attention.key_length", "llama.attention.value_length", "llama.expert_count", "llama.expert_used_count",
    "llama.vocab_size", "llama.rope.freq_base", "llama.rope.scaling.type", "llama.rope.scaling.factor",
    "llama.attention.sliding_window", "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_space_prefix", "tokenizer.chat_template", "tokenizer.ggml.token_type_count",
    "tokenizer.ggml.eot_token_id", "tokenizer.ggml.padding_token_id",
};

/* Scratch memory for values built by one mutation; the header points into it. */
static uint8_t scratch[1 << 20];
static size_t scratch_used;

FUZZ_NO_COVERAGE static bytes scratch_put(const void * p, size_t n) {
    bytes b = {scratch + scratch_used, n};
    FUZZ_ASSERT(n <= sizeof(scratch) - scratch_used);
    memcpy(scratch + scratch_used, p, n);
    scratch_used += n;
    return b;
}

FUZZ_NO_COVERAGE static bytes scratch_uint(uint64_t v, size_t width) {
    uint8_t b[8];
    for (size_t k = 0; k < width; k++) {
        b[k] = (uint8_t)(v >> (8 * k));
    }
    return scratch_put(b, width);
}

FUZZ_NO_COVERAGE static bytes scratch_string(const char * s) {
    size_t n = strlen(s);
    uint8_t * start = scratch + scratch_used;
    scratch_uint(n, 8);
    scratch_put(s, n);
    bytes b = {start, 8 + n};
    return b;
}

/* A value of the type with interesting contents. */
FUZZ_NO_COVERAGE static bytes any_value(uint32_t type) {
    if (type == GGUF_TYPE_STRING) {
        return scratch_string(interesting_strings[rnd(sizeof(interesting_strings) / sizeof(interesting_strings[0]))]);
    }
    if (type == GGUF_TYPE_ARRAY) {
        uint8_t * start = scratch + scratch_used;
        uint32_t elem = rnd(2) ? GGUF_TYPE_INT32 : GGUF_TYPE_STRING;
        uint64_t n = rnd(4);
        scratch_uint(elem, 4);
        scratch_uint(n, 8);
        for (uint64_t k = 0; k < n; k++) {
            if (elem == GGUF_TYPE_STRING) {
                scratch_string(interesting_strings[rnd(sizeof(interesting_strings) / sizeof(interesting_strings[0]))]);
            } else {
                scratch_uint(interesting_int(), 4);
            }
        }
        bytes b = {start, (size_t)(scratch + scratch_used - start)};
        return b;
    }
    if (type == GGUF_TYPE_FLOAT32) {
        static const float floats[] = {0.0f, -1.0f, 1e-5f, 1e30f, 3.4e38f, INFINITY, NAN};
        float f = floats[rnd(sizeof(floats) / sizeof(floats[0]))];
        return scratch_put(&f, 4);
    }
    if (type == GGUF_TYPE_FLOAT64) {
        static const double doubles[] = {0.0, -1.0, 1e-300, 1e300, INFINITY, NAN};
        double d = doubles[rnd(sizeof(doubles) / sizeof(doubles[0]))];
        return scratch_put(&d, 8);
    }
    return scratch_uint(interesting_int(), scalar_size(type) ? scalar_size(type) : 4);
}

/* Array edits: drop, duplicate or overwrite an element, or change the
 * count alone so the array no longer matches its length. */
FUZZ_NO_COVERAGE static void mutate_array(gguf_kv * kv) {
    cursor c = {kv->value.p, kv->value.n, 0, true};
    uint32_t elem = (uint32_t)get_u(&c, 4);
    uint64_t n = get_u(&c, 8);
    if (!c.ok) {
        return;
    }
    /* element boundaries */
    size_t cap = (size_t)(n < 4096 ? n : 4096) + 1;
    size_t * at = malloc((cap + 1) * sizeof(size_t));
    FUZZ_ASSERT(at);
    size_t m = 0;
    at[0] = c.i;
    while (m < cap - 1 && m < n) {
        skip_value(&c, elem, true);
        if (!c.ok) {
            break;
        }
        at[++m] = c.i;
    }
    uint8_t * start = scratch + scratch_used;
    const int op = (int)rnd(5);
    if (op == 0 || m == 0) {
        scratch_uint(elem, 4);
        scratch_uint(interesting_int(), 8);
        scratch_put(kv->value.p + 12, kv->value.n - 12);
    } else {
        const size_t k = (size_t)rnd(m);
        const size_t j = (size_t)rnd(m);
        uint64_t count = n;
        if (op == 1) {
            count = n - 1;
        } else if (op == 2) {
            count = n + 1;
        }
        scratch_uint(elem, 4);
        scratch_uint(count, 8);
        for (size_t e = 0; e < m; e++) {
            const uint8_t * p = kv->value.p + at[e];
            size_t len = at[e + 1] - at[e];
            if (op == 1 && e == k) {
                continue; /* drop element k */
            }
            if (op == 3 && e == k) {
                p = kv->value.p + at[j]; /* element k becomes a copy of element j */
                len = at[j + 1] - at[j];
            }
            if (op == 4 && e == k) {
                any_value(elem); /* element k replaced: the new value is appended in place */
                continue;
            }
            scratch_put(p, len);
            if (op == 2 && e == k) {
                scratch_put(p, len); /* element k twice */
            }
        }
        /* elements past the ones walked stay as they were */
        scratch_put(kv->value.p + at[m], kv->value.n - at[m]);
    }
    kv->value.p = start;
    kv->value.n = (size_t)(scratch + scratch_used - start);
    free(at);
}

FUZZ_NO_COVERAGE static void mutate_header(gguf_header * h) {
    /* the version and the counts only rarely: libllama's parser rejects most such files at once */
    uint64_t op = rnd(24);
    if (op >= 12) {
        op = op == 23 ? 11 : op % 11;
    }
    switch (op) {
        case 0: /* an integer or string value */
        case 1:
            if (h->kv_count > 0) {
                gguf_kv * kv = &h->kv[rnd(h->kv_count)];
                if (kv->type == GGUF_TYPE_ARRAY) {
                    mutate_array(kv);
                } else {
                    kv->value = any_value(kv->type);
                }
            }
            break;
        case 2: /* an array, most often the vocabulary */
        case 3:
            for (size_t tries = 0; tries < 8 && h->kv_count > 0; tries++) {
                gguf_kv * kv = &h->kv[rnd(h->kv_count)];
                if (kv->type == GGUF_TYPE_ARRAY) {
                    mutate_array(kv);
                    break;
                }
            }
            break;
        case 4: /* a value of another type */
            if (h->kv_count > 0) {
                gguf_kv * kv = &h->kv[rnd(h->kv_count)];
                kv->type = (uint32_t)rnd(GGUF_TYPE_COUNT + 1);
                kv->value = any_value(kv->type);
            }
            break;
        case 5: { /* a key that is not there yet, with any value (libllama rejects duplicate keys) */
            const char * key = interesting_keys[rnd(sizeof(interesting_keys) / sizeof(interesting_keys[0]))];
            if (h->kv_count < MAX_KV && !find_kv(h, key)) {
                gguf_kv * kv = &h->kv[h->kv_count++];
                kv->key = scratch_put(key, strlen(key));
                kv->type = (uint32_t)rnd(GGUF_TYPE_COUNT);
                kv->value = any_value(kv->type);
                h->n_kv++;
            }
            break;
        }
        case 6: /* a key removed */
            if (h->kv_count > 0) {
                size_t k = rnd(h->kv_count);
                memmove(&h->kv[k], &h->kv[k + 1], (h->kv_count - k - 1) * sizeof(gguf_kv));
                h->kv_count--;
                h->n_kv--;
            }
            break;
        case 7: /* a tensor's shape */
        case 8:
            if (h->tensor_count > 0) {
                gguf_tensor * t = &h->tensors[rnd(h->tensor_count)];
                if (rnd(4) == 0) {
                    t->n_dims = (uint32_t)rnd(MAX_DIMS + 1);
                }
                if (t->n_dims > 0) {
                    t->dims[rnd(t->n_dims)] = interesting_int();
                }
            }
            break;
        case 9: /* a tensor's type, offset or name */
            if (h->tensor_count > 0) {
                gguf_tensor * t = &h->tensors[rnd(h->tensor_count)];
                switch (rnd(3)) {
                    case 0: t->type = (uint32_t)rnd(48); break;
                    case 1: t->offset = rnd(2) ? interesting_int() : t->offset + GGUF_ALIGNMENT; break;
                    default: t->name = h->tensors[rnd(h->tensor_count)].name; break;
                }
            }
            break;
        case 10: /* a tensor removed or duplicated */
            if (h->tensor_count > 0) {
                size_t k = rnd(h->tensor_count);
                if (rnd(2) && h->tensor_count < MAX_TENSORS) {
                    h->tensors[h->tensor_count++] = h->tensors[k];
                    h->n_tensors++;
                } else {
                    memmove(&h->tensors[k], &h->tensors[k + 1], (h->tensor_count - k - 1) * sizeof(gguf_tensor));
                    h->tensor_count--;
                    h->n_tensors--;
                }
            }
            break;
        default: /* the version or a count */
            switch (rnd(3)) {
                case 0: h->version = (uint32_t)rnd(5); break;
                case 1: h->n_kv += rnd(2) ? 1 : -1; break;
                default: h->n_tensors += rnd(2) ? 1 : -1; break;
            }
            break;
    }
}

FUZZ_NO_COVERAGE size_t LLVMFuzzerCustomMutator(uint8_t * data, size_t size, size_t max_size, unsigned int seed) {
    static gguf_header h;
    static uint8_t out[1 << 20];
    rng_state = (uint64_t)seed * 0x9e3779b97f4a7c15ull + 1;
    scratch_used = 0;
    if (rnd(8) == 0 || !parse_header(data, size, &h)) {
        return LLVMFuzzerMutate(data, size, max_size);
    }
    /* one to three edits */
    for (uint64_t k = 0, n = 1 + rnd(3); k < n; k++) {
        mutate_header(&h);
    }
    size_t n = write_header(&h, out, max_size < sizeof(out) ? max_size : sizeof(out));
    if (n == 0) {
        return LLVMFuzzerMutate(data, size, max_size);
    }
    memcpy(data, out, n);
    return n;
}

/*
 * The target
 */

const char * __asan_default_options(void);
const char * __lsan_default_suppressions(void);

/* Full stacks for leak reports: the fast unwinder stops inside libggml,
 * which is built without frame pointers, and the suppression below needs
 * the frames above it. */
const char * __asan_default_options(void) {
    return "fast_unwind_on_malloc=0";
}

/* libllama v0.4.0 leaks the ggml context that gguf_init_from_file returns
 * when llama_model_loader's constructor throws before storing it (for
 * example on a general.architecture value that is not a string), about
 * 17 kB per failed load. The leak is libllama's, so it is suppressed;
 * any other leak under promptshap_model_load still fails the run. */
const char * __lsan_default_suppressions(void) {
    return "leak:gguf_init_from_reader\n";
}

/* libllama is not instrumented, so the harness turns what it logs into
 * coverage: each distinct warning or error line and each model
 * description sets one of these counters, and libFuzzer keeps an input
 * that reaches a new one. A line counts without its digits and without
 * what lies between its first and last quote (a key or tensor name from
 * the file, which may itself contain quotes). */
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t outcome_counters[4096];

FUZZ_NO_COVERAGE static void count_outcome(const char * text) {
    const char * first_quote = strchr(text, '\'');
    const char * last_quote = strrchr(text, '\'');
    uint32_t hash = 2166136261u;
    for (const char * p = text; *p; p++) {
        if (first_quote && p > first_quote && p < last_quote) {
            continue;
        }
        if (*p < '0' || *p > '9') {
            hash = (hash ^ (uint8_t)*p) * 16777619u;
        }
    }
    outcome_counters[hash % sizeof(outcome_counters)] = 1;
}

static void on_log(int level, const char * text, void * user_data) {
    (void)user_data;
    /* ggml's levels: 3 warning, 4 error */
    if (level == 3 || level == 4) {
        count_outcome(text);
    }
}

/* Exit status of a child process that libllama aborted. */
#define LIBLLAMA_ABORT_EXIT 86

static void exit_on_ggml_abort(const char * message) {
    (void)message;
    _exit(LIBLLAMA_ABORT_EXIT);
}

/* Loads the file in a child process and returns true when libllama
 * aborted there (a failed GGML_ASSERT or GGML_ABORT). libllama v0.4.0
 * stops the process rather than failing the load on several damaged
 * headers (fuzz/README.md lists them), and those inputs are not this
 * harness's to report. Any other end of the child, a crash included,
 * leaves the input to the load in the harness's own process.
 *
 * A file that gguf's parser rejects fails the load before any of those
 * checks, so it skips the child, which costs a fork of this process. */
FUZZ_NO_COVERAGE static bool libllama_aborts(const char * path) {
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    struct gguf_context * gguf = gguf_init_from_file(path, params);
    if (!gguf) {
        return false;
    }
    gguf_free(gguf);

    fflush(NULL);
    pid_t pid = fork();
    FUZZ_ASSERT(pid >= 0);
    if (pid == 0) {
        int null_fd = open("/dev/null", O_WRONLY);
        if (null_fd >= 0) {
            dup2(null_fd, STDERR_FILENO);
        }
        ggml_set_abort_callback(exit_on_ggml_abort);
        promptshap_model * model = NULL;
        promptshap_model_load(path, NULL, &model, NULL);
        _exit(0);
    }
    /* libFuzzer's SIGALRM timer for -timeout interrupts the wait */
    int status = 0;
    pid_t done;
    do {
        done = waitpid(pid, &status, 0);
    } while (done < 0 && errno == EINTR);
    FUZZ_ASSERT(done == pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == LIBLLAMA_ABORT_EXIT;
}

static void ignore_ggml_log(enum ggml_log_level level, const char * text, void * user_data) {
    (void)level;
    (void)text;
    (void)user_data;
}

int LLVMFuzzerInitialize(int * argc, char *** argv) {
    (void)argc;
    (void)argv;
    /* libFuzzer prints the stack of an abort; ggml's own backtrace runs gdb */
    setenv("GGML_NO_BACKTRACE", "1", 0);
    promptshap_log_set(on_log, NULL);
    /* quiet until the first load routes ggml's log through promptshap */
    ggml_log_set(ignore_ggml_log, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof(path));
    FUZZ_ASSERT(fd >= 0);
    /* zeros without writing them: the file grows sparse */
    FUZZ_ASSERT(ftruncate(fd, (off_t)(size + MODEL_PAD_BYTES)) == 0);
    if (libllama_aborts(path)) {
        count_outcome("libllama aborted");
        close(fd);
        return 0;
    }

    promptshap_model * model = NULL;
    promptshap_error err;
    enum promptshap_status st = promptshap_model_load(path, NULL, &model, &err);
    close(fd);
    FUZZ_ASSERT(err.status == st);
    if (st != PROMPTSHAP_OK) {
        FUZZ_ASSERT(model == NULL);
        FUZZ_ASSERT(st == PROMPTSHAP_ERR_MODEL || st == PROMPTSHAP_ERR_NO_MEMORY);
        FUZZ_ASSERT(err.message[0] != '\0');
        return 0;
    }
    FUZZ_ASSERT(model != NULL);
    FUZZ_ASSERT(promptshap_model_desc(model) != NULL);
    count_outcome(promptshap_model_desc(model));
    (void)promptshap_model_chat_template(model);
    (void)promptshap_model_n_ctx_train(model);
    promptshap_model_free(model);
    return 0;
}
