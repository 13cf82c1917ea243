/* SPDX-License-Identifier: MIT
 *
 * promptshap-mkmodel writes a GGUF model with random weights: a llama or
 * gpt-oss network of a chosen size whose tokenizer is copied from another
 * GGUF file, optionally extended with the harmony control tokens of OpenAI's
 * GPT-OSS models. Such models exercise promptshap at realistic sizes and
 * speeds without downloading weights; what they generate is noise.
 *
 * The tool writes the file itself: the metadata through gguf.h, then the
 * tensor data in blocks of rows, so memory stays small for any model size.
 * libllama's own writer (llama_model_init_from_user + llama_model_save_to_file)
 * is not used because in llama.cpp v0.4.0 it drops tokenizer.chat_template and
 * writes every optional tensor, zero biases and an untied output included.
 * The written file is then reloaded with libllama, which decodes a short text
 * to check that every logit is finite.
 */
#include "ggml.h"
#include "gguf.h"
#include "llama.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* CMake passes these when the llama.cpp source tree is next to libllama. */
#ifndef MKMODEL_DEFAULT_VOCAB
#define MKMODEL_DEFAULT_VOCAB NULL
#endif
#ifndef MKMODEL_DEFAULT_TEMPLATE
#define MKMODEL_DEFAULT_TEMPLATE NULL
#endif

/*
 * Model shapes and presets
 */

enum arch { ARCH_LLAMA, ARCH_GPT_OSS };

/* Shape and storage types of the model to write. */
struct spec {
    enum arch arch;
    int n_layer;
    int n_embd;
    int n_ff;                   /* llama: feed-forward width; gpt-oss: width of each expert */
    int n_head;
    int n_head_kv;
    int n_head_dim;             /* gpt-oss: query/key/value width per head; llama: n_embd / n_head */
    int n_ctx;                  /* training context stored in the file, tokens */
    int n_expert;               /* gpt-oss only */
    int n_expert_used;          /* gpt-oss: experts routed per token */
    int n_swa;                  /* gpt-oss: sliding window of every other layer, tokens */
    float rope_base;
    enum ggml_type type;        /* token embeddings, output and attention/feed-forward matrices */
    enum ggml_type expert_type; /* gpt-oss expert matrices */
    bool tied;                  /* llama: the output projection reuses token_embd */
};

struct preset {
    const char * name;
    struct spec spec;
};

/* The llama-100m feed-forward width 2048 with three SwiGLU matrices has as
 * many weights as GPT-2 small's 3072 with two, so the network is GPT-2
 * small's size: about 85M parameters without embeddings.
 * gpt-oss-bench keeps gpt-oss's head width (64), expert routing, attention
 * sinks and alternating 128-token sliding-window and full-attention layers at
 * a size whose 512-token forward pass took 0.6 s on one core of a 2-core
 * AMD EPYC (BENCHMARKS.md).
 * gpt-oss-tiny, for tests, is f32 throughout. With mxfp4 or q8_0 experts,
 * ggml's CPU expert products round differently as the batch changes. On a
 * 17-word prompt, promptshap's batched and naive engines then disagreed by
 * about 2e-3 nats per unit, against about 1e-6 with f32. */
static const struct preset presets[] = {
    {"llama-100m", {.arch = ARCH_LLAMA, .n_layer = 12, .n_embd = 768, .n_ff = 2048, .n_head = 12,
                    .n_head_kv = 12, .n_ctx = 2048, .rope_base = 10000.0f, .type = GGML_TYPE_F16,
                    .expert_type = GGML_TYPE_F16, .tied = true}},
    {"llama-tiny", {.arch = ARCH_LLAMA, .n_layer = 2, .n_embd = 64, .n_ff = 128, .n_head = 4,
                    .n_head_kv = 2, .n_ctx = 512, .rope_base = 10000.0f, .type = GGML_TYPE_F32,
                    .expert_type = GGML_TYPE_F32, .tied = true}},
    {"gpt-oss-bench", {.arch = ARCH_GPT_OSS, .n_layer = 4, .n_embd = 512, .n_ff = 512, .n_head = 8,
                       .n_head_kv = 2, .n_head_dim = 64, .n_ctx = 4096, .n_expert = 8, .n_expert_used = 2,
                       .n_swa = 128, .rope_base = 150000.0f, .type = GGML_TYPE_Q8_0,
                       .expert_type = GGML_TYPE_MXFP4}},
    {"gpt-oss-tiny", {.arch = ARCH_GPT_OSS, .n_layer = 2, .n_embd = 64, .n_ff = 64, .n_head = 4,
                      .n_head_kv = 2, .n_head_dim = 16, .n_ctx = 1024, .n_expert = 4, .n_expert_used = 2,
                      .n_swa = 32, .rope_base = 150000.0f, .type = GGML_TYPE_F32,
                      .expert_type = GGML_TYPE_F32}},
};
#define N_PRESETS ((int)(sizeof(presets) / sizeof(presets[0])))

static const char * arch_name(enum arch arch) {
    return arch == ARCH_LLAMA ? "llama" : "gpt-oss";
}

/* The GPT-OSS special tokens of the o200k_harmony encoding, ids 199998 to
 * 201087 there. The named ones sit at these offsets from <|startoftext|>;
 * every other id in the range is <|reserved_ID|>. */
#define HARMONY_FIRST_ID 199998
#define N_HARMONY 1090
static const struct {
    int offset;
    const char * text;
} harmony_named[] = {
    {0, "<|startoftext|>"}, {1, "<|endoftext|>"}, {4, "<|return|>"}, {5, "<|constrain|>"},
    {7, "<|channel|>"},     {8, "<|start|>"},     {9, "<|end|>"},    {10, "<|message|>"},
    {14, "<|call|>"},       {20, "<|endofprompt|>"},
};
#define N_HARMONY_NAMED ((int)(sizeof(harmony_named) / sizeof(harmony_named[0])))
#define HARMONY_BOS 0 /* <|startoftext|> */
#define HARMONY_PAD 1 /* <|endoftext|> */
#define HARMONY_EOS 4 /* <|return|>: the end of the assistant's final message */

/*
 * Options
 */

/* --set: tensors whose every value is given */
#define MAX_SET 8

struct options {
    struct spec spec;
    const char * preset;
    bool spec_changed;       /* a flag changed the preset's shape or types */
    bool expert_type_given;
    const char * vocab;
    const char * chat_template;
    const char * out;
    bool harmony;
    bool check;
    int bench_tokens;
    int n_threads;
    uint64_t seed;
    bool verbose;
    struct tensor_value {
        const char * name;
        float value;
    } set[MAX_SET];
    int n_set;
};

static const char * usage_text =
    "usage: promptshap-mkmodel (--preset NAME | --arch ARCH) [options] -o OUT.gguf\n"
    "\n"
    "Writes a GGUF model with random weights and the tokenizer of another GGUF file, reloads it with\n"
    "libllama and checks that decoding gives finite logits. The same options and seed give a\n"
    "byte-identical file. Size flags override the preset's values.\n"
    "\n"
    "model:\n"
    "      --preset NAME        llama-100m: 12 layers, width 768, feed-forward 2048, 12 heads, tied output,\n"
    "                             f16 (85M parameters without embeddings, GPT-2 small's size)\n"
    "                           llama-tiny: 2 layers, width 64, feed-forward 128, 4 heads, 2 KV heads,\n"
    "                             f32 (default for --arch llama)\n"
    "                           gpt-oss-bench: 4 layers, width 512, 8 heads of 64, 2 KV heads, 8 experts\n"
    "                             of 512, top-2, 128-token sliding window, q8_0 with mxfp4 experts\n"
    "                           gpt-oss-tiny: 2 layers, width 64, 4 heads of 16, 2 KV heads, 4 experts of\n"
    "                             64, top-2, 32-token window, f32 (default for --arch gpt-oss)\n"
    "      --arch ARCH          llama or gpt-oss\n"
    "      --layers N           transformer blocks\n"
    "      --embd N             embedding width\n"
    "      --ff N               feed-forward width (gpt-oss: width of each expert)\n"
    "      --heads N            attention heads\n"
    "      --kv-heads N         key/value heads; must divide --heads\n"
    "      --head-dim N         gpt-oss: query/key/value width per head (llama: width / heads)\n"
    "      --ctx N              training context stored in the file, tokens\n"
    "      --experts N          gpt-oss: experts per layer\n"
    "      --experts-used N     gpt-oss: experts routed per token\n"
    "      --swa N              gpt-oss: sliding window of the even-numbered layers, tokens\n"
    "      --rope-base F        RoPE frequency base (llama 10000, gpt-oss 150000)\n"
    "      --type T             f32, f16 or q8_0: token embeddings, output and attention/feed-forward\n"
    "                           matrices; norms, biases, sinks and the router stay f32\n"
    "      --expert-type T      gpt-oss expert matrices: f32, f16, q8_0 or mxfp4 (quantized types need\n"
    "                           row widths that are multiples of 32)\n"
    "      --lm-head MODE       llama: tied (the output projection reuses token_embd) or untied;\n"
    "                           gpt-oss is always untied\n"
    "      --seed N             random seed of the weights (default: 1)\n"
    "      --set NAME=VALUE     every value of tensor NAME (token_embd.weight, blk.0.attn_q.weight, ...)\n"
    "                           is VALUE, which may be 0, or nan and inf in f32 and f16 tensors;\n"
    "                           repeatable. token_embd.weight=0\n"
    "                           makes a llama model whose output ignores its input; after a value\n"
    "                           that is not finite the check does not require finite logits\n"
    "\n"
    "tokenizer:\n"
    "      --vocab FILE         GGUF file whose tokenizer.* keys are copied (default: %s)\n"
    "      --harmony            keep the vocabulary's normal tokens, drop its special ones and append\n"
    "                           the 1090 o200k_harmony special tokens (<|startoftext|> ... <|call|>,\n"
    "                           reserved ones) as control tokens; BOS <|startoftext|>, EOS and EOT\n"
    "                           <|return|>, pre-tokenizer gpt-4o. Needs a byte-level BPE vocabulary\n"
    "      --chat-template FILE tokenizer.chat_template from FILE (with --harmony, default: %s)\n"
    "\n"
    "output and checks:\n"
    "  -o, --output-file FILE   the GGUF file to write (written to a temporary name, then renamed)\n"
    "      --no-check           do not reload the file and decode\n"
    "      --bench N            also time a forward pass of N tokens (one sequence, one batch, logits\n"
    "                           of the last token only): the best of 3 passes after a warm-up\n"
    "  -t, --threads N          CPU threads for the check and --bench (default: all cores)\n"
    "  -v, --verbose            show llama.cpp's log on stderr\n"
    "  -h, --help               show this help\n"
    "\n"
    "On success stdout gets one line: architecture, parameters, file size, vocabulary size.\n"
    "exit status: 0 success, 1 failure (reading, writing or checking a file), 2 usage error.\n"
    "\n"
    "examples:\n"
    "  promptshap-mkmodel --preset gpt-oss-tiny --harmony -o models/gpt-oss-tiny.gguf\n"
    "  promptshap-mkmodel --preset llama-100m --vocab ggml-vocab-llama-bpe.gguf -o llama-100m.gguf\n"
    "  promptshap-mkmodel --arch llama --layers 4 --embd 128 --heads 4 --vocab stories260K.gguf -o s.gguf\n";

static void print_usage(void) {
    printf(usage_text, MKMODEL_DEFAULT_VOCAB ? MKMODEL_DEFAULT_VOCAB : "none, required",
           MKMODEL_DEFAULT_TEMPLATE ? MKMODEL_DEFAULT_TEMPLATE : "none, required");
}

static void usage_error(const char * problem, const char * arg) {
    if (arg) {
        fprintf(stderr, "promptshap-mkmodel: %s: '%s'\n", problem, arg);
    } else {
        fprintf(stderr, "promptshap-mkmodel: %s\n", problem);
    }
    fprintf(stderr, "try 'promptshap-mkmodel --help'\n");
    exit(EXIT_USAGE);
}

/* usage_error with a formatted problem and no argument to quote. */
static void usage_errorf(const char * fmt, ...) {
    char problem[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    usage_error(problem, NULL);
}

static void fail(const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "promptshap-mkmodel: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static int parse_int(const char * flag, const char * value, long min, long max) {
    char * end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v < min || v > max) {
        char problem[128];
        snprintf(problem, sizeof(problem), "%s must be an integer from %ld to %ld", flag, min, max);
        usage_error(problem, value);
    }
    return (int)v;
}

static enum ggml_type parse_type(const char * flag, const char * value, bool allow_mxfp4) {
    if (strcmp(value, "f32") == 0) {
        return GGML_TYPE_F32;
    }
    if (strcmp(value, "f16") == 0) {
        return GGML_TYPE_F16;
    }
    if (strcmp(value, "q8_0") == 0) {
        return GGML_TYPE_Q8_0;
    }
    if (allow_mxfp4 && strcmp(value, "mxfp4") == 0) {
        return GGML_TYPE_MXFP4;
    }
    char problem[96];
    snprintf(problem, sizeof(problem), "%s must be f32, f16%s", flag, allow_mxfp4 ? ", q8_0 or mxfp4" : " or q8_0");
    usage_error(problem, value);
    return GGML_TYPE_F32;
}

static const struct preset * find_preset(const char * name) {
    for (int i = 0; i < N_PRESETS; i++) {
        if (strcmp(presets[i].name, name) == 0) {
            return &presets[i];
        }
    }
    return NULL;
}

/* Returns the value after the flag argv[*i]; a missing one is a usage error. */
static const char * take_value(int argc, char ** argv, int * i) {
    if (*i + 1 >= argc) {
        usage_error("missing value after", argv[*i]);
    }
    *i += 1;
    return argv[*i];
}

/* Starts from the preset, or from the arch's tiny preset, so that the size
 * flags read in the second pass override it wherever they appear. */
static void parse_base(int argc, char ** argv, struct options * o) {
    const char * arch = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            print_usage();
            exit(0);
        }
        if (strcmp(argv[i], "--preset") == 0) {
            o->preset = take_value(argc, argv, &i);
        } else if (strcmp(argv[i], "--arch") == 0) {
            arch = take_value(argc, argv, &i);
        }
    }
    if (arch && strcmp(arch, "llama") != 0 && strcmp(arch, "gpt-oss") != 0) {
        usage_error("--arch must be llama or gpt-oss", arch);
    }
    if (!o->preset && !arch) {
        usage_error("missing --preset or --arch: one of them sets the model's shape", NULL);
    }
    if (!o->preset) {
        o->preset = strcmp(arch, "llama") == 0 ? "llama-tiny" : "gpt-oss-tiny";
    }
    const struct preset * p = find_preset(o->preset);
    if (!p) {
        usage_error("--preset must be llama-100m, llama-tiny, gpt-oss-bench or gpt-oss-tiny", o->preset);
    }
    if (arch && strcmp(arch, arch_name(p->spec.arch)) != 0) {
        usage_error("--arch conflicts with the architecture of --preset", arch);
    }
    o->spec = p->spec;
}

/* Reads a size flag such as --layers; returns false when argv[*i] is not one. */
static bool parse_size_flag(int argc, char ** argv, int * i, struct spec * s) {
    static const struct {
        const char * flag;
        size_t offset;
        long max;
    } sizes[] = {
        {"--layers", offsetof(struct spec, n_layer), 512},
        {"--embd", offsetof(struct spec, n_embd), 65536},
        {"--ff", offsetof(struct spec, n_ff), 1 << 20},
        {"--heads", offsetof(struct spec, n_head), 1024},
        {"--kv-heads", offsetof(struct spec, n_head_kv), 1024},
        {"--head-dim", offsetof(struct spec, n_head_dim), 1024},
        {"--ctx", offsetof(struct spec, n_ctx), 1 << 24},
        {"--experts", offsetof(struct spec, n_expert), 1024},
        {"--experts-used", offsetof(struct spec, n_expert_used), 1024},
        {"--swa", offsetof(struct spec, n_swa), 1 << 24},
    };
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        if (strcmp(argv[*i], sizes[k].flag) == 0) {
            const char * v = take_value(argc, argv, i);
            *(int *)((char *)s + sizes[k].offset) = parse_int(sizes[k].flag, v, 1, sizes[k].max);
            return true;
        }
    }
    return false;
}

static void parse_options(int argc, char ** argv, struct options * o) {
    memset(o, 0, sizeof(*o));
    o->vocab = MKMODEL_DEFAULT_VOCAB;
    o->check = true;
    o->seed = 1;
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->n_threads = n_cpu > 0 ? (int)n_cpu : 1;
    parse_base(argc, argv, o);
    struct spec * s = &o->spec;

    for (int i = 1; i < argc; i++) {
        const char * a = argv[i];
        if (strcmp(a, "--preset") == 0 || strcmp(a, "--arch") == 0) {
            i++; /* read by parse_base */
        } else if (parse_size_flag(argc, argv, &i, s)) {
            o->spec_changed = true;
        } else if (strcmp(a, "--rope-base") == 0) {
            o->spec_changed = true;
            const char * v = take_value(argc, argv, &i);
            char * end = NULL;
            s->rope_base = strtof(v, &end);
            if (end == v || *end != '\0' || !(s->rope_base > 0.0f) || !isfinite(s->rope_base)) {
                usage_error("--rope-base must be a positive number", v);
            }
        } else if (strcmp(a, "--type") == 0) {
            o->spec_changed = true;
            s->type = parse_type("--type", take_value(argc, argv, &i), false);
        } else if (strcmp(a, "--expert-type") == 0) {
            o->spec_changed = true;
            o->expert_type_given = true;
            s->expert_type = parse_type("--expert-type", take_value(argc, argv, &i), true);
        } else if (strcmp(a, "--lm-head") == 0) {
            o->spec_changed = true;
            const char * v = take_value(argc, argv, &i);
            if (strcmp(v, "tied") != 0 && strcmp(v, "untied") != 0) {
                usage_error("--lm-head must be tied or untied", v);
            }
            s->tied = strcmp(v, "tied") == 0;
        } else if (strcmp(a, "--seed") == 0) {
            const char * v = take_value(argc, argv, &i);
            char * end = NULL;
            errno = 0;
            unsigned long long seed = strtoull(v, &end, 10);
            if (errno != 0 || end == v || *end != '\0' || v[0] == '-') {
                usage_error("--seed must be an unsigned 64-bit integer", v);
            }
            o->seed = (uint64_t)seed;
        } else if (strcmp(a, "--set") == 0) {
            const char * v = take_value(argc, argv, &i);
            const char * eq = strchr(v, '=');
            if (!eq || eq == v || eq[1] == '\0' || (size_t)(eq - v) >= GGML_MAX_NAME) {
                usage_error("--set takes NAME=VALUE, for example token_embd.weight=0", v);
            }
            char * end = NULL;
            float value = strtof(eq + 1, &end);
            if (end == eq + 1 || *end != '\0') {
                usage_error("--set needs a number after '=' (or nan, inf)", v);
            }
            if (o->n_set == MAX_SET) {
                usage_errorf("--set may be given at most %d times", MAX_SET);
            }
            o->set[o->n_set].name = v;
            o->set[o->n_set].value = value;
            o->n_set++;
        } else if (strcmp(a, "--vocab") == 0) {
            o->vocab = take_value(argc, argv, &i);
        } else if (strcmp(a, "--chat-template") == 0) {
            o->chat_template = take_value(argc, argv, &i);
        } else if (strcmp(a, "--harmony") == 0) {
            o->harmony = true;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output-file") == 0) {
            o->out = take_value(argc, argv, &i);
        } else if (strcmp(a, "--no-check") == 0) {
            o->check = false;
        } else if (strcmp(a, "--bench") == 0) {
            o->bench_tokens = parse_int("--bench", take_value(argc, argv, &i), 1, 1 << 20);
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            o->n_threads = parse_int("--threads", take_value(argc, argv, &i), 1, 1024);
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            o->verbose = true;
        } else {
            usage_error("unknown option", a);
        }
    }
}

/* Rejects shapes that libllama would refuse or that the flags cannot mean. */
static void validate_options(struct options * o) {
    struct spec * s = &o->spec;
    if (!o->out) {
        usage_error("no output file: give -o FILE", NULL);
    }
    if (!o->vocab) {
        usage_error("no tokenizer source: give --vocab FILE", NULL);
    }
    if (o->harmony && !o->chat_template) {
        o->chat_template = MKMODEL_DEFAULT_TEMPLATE;
        if (!o->chat_template) {
            usage_error("--harmony needs the GPT-OSS chat template: give --chat-template FILE", NULL);
        }
    }
    if (s->n_head % s->n_head_kv != 0) {
        usage_errorf("--kv-heads %d must divide --heads %d", s->n_head_kv, s->n_head);
    }
    if (o->bench_tokens > s->n_ctx) {
        usage_errorf("--bench %d exceeds the training context --ctx %d", o->bench_tokens, s->n_ctx);
    }
    if (s->arch == ARCH_LLAMA) {
        if (s->n_embd % s->n_head != 0 || (s->n_embd / s->n_head) % 2 != 0) {
            usage_errorf("llama needs --embd / --heads to be an even integer (the head width), not %d / %d",
                         s->n_embd, s->n_head);
        }
        if (s->n_expert || s->n_expert_used || s->n_swa || s->n_head_dim || o->expert_type_given) {
            usage_error("--experts, --experts-used, --swa, --head-dim and --expert-type apply to --arch gpt-oss only",
                        NULL);
        }
        return;
    }
    if (s->n_head_dim % 2 != 0) {
        usage_errorf("--head-dim must be even because RoPE rotates pairs of values, not %d", s->n_head_dim);
    }
    if (s->n_expert_used > s->n_expert) {
        usage_errorf("--experts-used %d exceeds --experts %d", s->n_expert_used, s->n_expert);
    }
    if (s->tied) {
        usage_error("gpt-oss has an untied output projection: --lm-head tied applies to llama only", NULL);
    }
}

/*
 * Random weights
 */

/* splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
 * generators", OOPSLA 2014): one 64-bit state, one output per step. */
static uint64_t splitmix64(uint64_t * state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* FNV-1a, 64 bits: gives each tensor its own random stream. */
static uint64_t hash_name(const char * name) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char * c = (const unsigned char *)name; *c; c++) {
        h = (h ^ *c) * 0x100000001b3ULL;
    }
    return h;
}

enum fill { FILL_ONES, FILL_ZEROS, FILL_UNIFORM, FILL_CONSTANT };

/* One tensor of the file: ne[0] values per row, ne[1] * ne[2] rows. */
struct tensor_spec {
    char name[GGML_MAX_NAME];
    enum ggml_type type;
    int n_dims;
    int64_t ne[3];
    enum fill fill;
    float std;   /* standard deviation of FILL_UNIFORM values */
    float value; /* the FILL_CONSTANT value */
};

struct tensor_list {
    struct tensor_spec * v;
    int n;
    int cap;
};

/* Fills n values from the stream. Uniform values on [-a, a) with
 * a = std * sqrt(3) have the requested standard deviation. Besides sqrtf, which
 * IEEE 754 rounds exactly, they need only integer and float arithmetic, so they
 * do not depend on the platform's math library. */
static void fill_values(float * x, int64_t n, const struct tensor_spec * t, uint64_t * state) {
    const enum fill fill = t->fill;
    const float std = t->std;
    if (fill != FILL_UNIFORM) {
        float v = 0.0f;
        if (fill == FILL_ONES) {
            v = 1.0f;
        } else if (fill == FILL_CONSTANT) {
            v = t->value;
        }
        for (int64_t i = 0; i < n; i++) {
            x[i] = v;
        }
        return;
    }
    const float scale = std * sqrtf(3.0f) / 8388608.0f;
    for (int64_t i = 0; i < n; i++) {
        const int32_t r = (int32_t)(splitmix64(state) >> 40) - 8388608; /* 24 bits, centred */
        x[i] = (float)r * scale;
    }
}

/*
 * Tensor tables
 */

/* Appends a tensor named blk.LAYER.SUFFIX (or SUFFIX when layer < 0). The
 * default fill is uniform with standard deviation 1/sqrt(fan-in), fan-in being
 * ne0 because ggml multiplies along rows, so each matrix keeps unit-scale
 * inputs at unit scale. Returns NULL when out of memory. */
static struct tensor_spec * add_tensor(struct tensor_list * tl, int layer, const char * suffix, enum ggml_type type,
                                       int n_dims, int64_t ne0, int64_t ne1, int64_t ne2) {
    if (tl->n == tl->cap) {
        int cap = tl->cap ? 2 * tl->cap : 64;
        struct tensor_spec * v = realloc(tl->v, (size_t)cap * sizeof(*v));
        if (!v) {
            return NULL;
        }
        tl->v = v;
        tl->cap = cap;
    }
    struct tensor_spec * t = &tl->v[tl->n++];
    memset(t, 0, sizeof(*t));
    if (layer < 0) {
        snprintf(t->name, sizeof(t->name), "%s", suffix);
    } else {
        snprintf(t->name, sizeof(t->name), "blk.%d.%s", layer, suffix);
    }
    t->type = type;
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->fill = FILL_UNIFORM;
    t->std = 1.0f / sqrtf((float)ne0);
    return t;
}

static bool add_vector(struct tensor_list * tl, int layer, const char * suffix, int64_t n, enum fill fill) {
    struct tensor_spec * t = add_tensor(tl, layer, suffix, GGML_TYPE_F32, 1, n, 1, 1);
    if (t) {
        t->fill = fill;
    }
    return t != NULL;
}

/* A matrix whose output is added to the residual stream. Like GPT-2 (Radford
 * et al., "Language Models are Unsupervised Multitask Learners", 2019), it is
 * scaled by 1/sqrt(N) for N = 2 n_layer residual additions, so the residual
 * stream grows little over the layers. */
static bool add_residual_out(struct tensor_list * tl, int layer, const char * suffix, enum ggml_type type,
                             int n_dims, int64_t ne0, int64_t ne1, int64_t ne2, int n_layer) {
    struct tensor_spec * t = add_tensor(tl, layer, suffix, type, n_dims, ne0, ne1, ne2);
    if (t) {
        t->std /= sqrtf(2.0f * (float)n_layer);
    }
    return t != NULL;
}

static bool llama_tensors(const struct spec * s, int64_t n_vocab, struct tensor_list * tl) {
    const int64_t head = s->n_embd / s->n_head;
    const int64_t q = head * s->n_head;
    const int64_t kv = head * s->n_head_kv;
    bool ok = add_tensor(tl, -1, "token_embd.weight", s->type, 2, s->n_embd, n_vocab, 1) != NULL;
    for (int il = 0; il < s->n_layer && ok; il++) {
        ok = add_vector(tl, il, "attn_norm.weight", s->n_embd, FILL_ONES)
             && add_tensor(tl, il, "attn_q.weight", s->type, 2, s->n_embd, q, 1)
             && add_tensor(tl, il, "attn_k.weight", s->type, 2, s->n_embd, kv, 1)
             && add_tensor(tl, il, "attn_v.weight", s->type, 2, s->n_embd, kv, 1)
             && add_residual_out(tl, il, "attn_output.weight", s->type, 2, q, s->n_embd, 1, s->n_layer)
             && add_vector(tl, il, "ffn_norm.weight", s->n_embd, FILL_ONES)
             && add_tensor(tl, il, "ffn_gate.weight", s->type, 2, s->n_embd, s->n_ff, 1)
             && add_tensor(tl, il, "ffn_up.weight", s->type, 2, s->n_embd, s->n_ff, 1)
             && add_residual_out(tl, il, "ffn_down.weight", s->type, 2, s->n_ff, s->n_embd, 1, s->n_layer);
    }
    ok = ok && add_vector(tl, -1, "output_norm.weight", s->n_embd, FILL_ONES);
    if (ok && !s->tied) {
        ok = add_tensor(tl, -1, "output.weight", s->type, 2, s->n_embd, n_vocab, 1) != NULL;
    }
    return ok;
}

/* Appends an f32 tensor of zeros: a bias. */
static bool add_zeros(struct tensor_list * tl, int layer, const char * suffix, int n_dims, int64_t ne0, int64_t ne1) {
    struct tensor_spec * t = add_tensor(tl, layer, suffix, GGML_TYPE_F32, n_dims, ne0, ne1, 1);
    if (t) {
        t->fill = FILL_ZEROS;
    }
    return t != NULL;
}

/* One gpt-oss block: biased attention projections, one learned sink logit
 * per head (unit scale, like the attention scores it competes with), an f32
 * router and biased experts. Biases start at zero. */
static bool gpt_oss_block(const struct spec * s, int il, struct tensor_list * tl) {
    const int64_t q = (int64_t)s->n_head_dim * s->n_head;
    const int64_t kv = (int64_t)s->n_head_dim * s->n_head_kv;
    const int64_t embd = s->n_embd;
    const int64_t ff = s->n_ff;
    const int64_t ne = s->n_expert;

    /* attention */
    bool ok = add_vector(tl, il, "attn_norm.weight", embd, FILL_ONES)
              && add_tensor(tl, il, "attn_q.weight", s->type, 2, embd, q, 1)
              && add_zeros(tl, il, "attn_q.bias", 1, q, 1)
              && add_tensor(tl, il, "attn_k.weight", s->type, 2, embd, kv, 1)
              && add_zeros(tl, il, "attn_k.bias", 1, kv, 1)
              && add_tensor(tl, il, "attn_v.weight", s->type, 2, embd, kv, 1)
              && add_zeros(tl, il, "attn_v.bias", 1, kv, 1)
              && add_residual_out(tl, il, "attn_output.weight", s->type, 2, q, embd, 1, s->n_layer)
              && add_zeros(tl, il, "attn_output.bias", 1, embd, 1);
    struct tensor_spec * sinks = ok ? add_tensor(tl, il, "attn_sinks.weight", GGML_TYPE_F32, 1, s->n_head, 1, 1) : NULL;
    if (!sinks) {
        return false;
    }
    sinks->std = 1.0f;

    /* router and experts */
    return add_vector(tl, il, "post_attention_norm.weight", embd, FILL_ONES)
           && add_tensor(tl, il, "ffn_gate_inp.weight", GGML_TYPE_F32, 2, embd, ne, 1)
           && add_zeros(tl, il, "ffn_gate_inp.bias", 1, ne, 1)
           && add_tensor(tl, il, "ffn_gate_exps.weight", s->expert_type, 3, embd, ff, ne)
           && add_zeros(tl, il, "ffn_gate_exps.bias", 2, ff, ne)
           && add_tensor(tl, il, "ffn_up_exps.weight", s->expert_type, 3, embd, ff, ne)
           && add_zeros(tl, il, "ffn_up_exps.bias", 2, ff, ne)
           && add_residual_out(tl, il, "ffn_down_exps.weight", s->expert_type, 3, ff, embd, ne, s->n_layer)
           && add_zeros(tl, il, "ffn_down_exps.bias", 2, embd, ne);
}

static bool gpt_oss_tensors(const struct spec * s, int64_t n_vocab, struct tensor_list * tl) {
    bool ok = add_tensor(tl, -1, "token_embd.weight", s->type, 2, s->n_embd, n_vocab, 1) != NULL;
    for (int il = 0; il < s->n_layer && ok; il++) {
        ok = gpt_oss_block(s, il, tl);
    }
    return ok && add_vector(tl, -1, "output_norm.weight", s->n_embd, FILL_ONES)
           && add_tensor(tl, -1, "output.weight", s->type, 2, s->n_embd, n_vocab, 1);
}

/* Returns the first tensor whose rows are not a whole number of its type's
 * blocks (32 values for q8_0 and mxfp4), or NULL. */
static const struct tensor_spec * misaligned_tensor(const struct tensor_list * tl) {
    for (int i = 0; i < tl->n; i++) {
        if (tl->v[i].ne[0] % ggml_blck_size(tl->v[i].type) != 0) {
            return &tl->v[i];
        }
    }
    return NULL;
}

static int64_t n_elements(const struct tensor_spec * t) {
    return t->ne[0] * t->ne[1] * t->ne[2];
}

/*
 * Metadata
 */

static void set_arch_u32(struct gguf_context * meta, const struct spec * s, const char * key, uint32_t v) {
    char name[128];
    snprintf(name, sizeof(name), "%s.%s", arch_name(s->arch), key);
    gguf_set_val_u32(meta, name, v);
}

static void set_arch_f32(struct gguf_context * meta, const struct spec * s, const char * key, float v) {
    char name[128];
    snprintf(name, sizeof(name), "%s.%s", arch_name(s->arch), key);
    gguf_set_val_f32(meta, name, v);
}

/* Sets the general keys and the hyperparameters that libllama's loader reads
 * for the architecture (llama.cpp v0.4.0: src/llama-model.cpp, src/models/). */
static void set_hparams(struct gguf_context * meta, const struct options * o, int64_t n_vocab) {
    const struct spec * s = &o->spec;
    char name[64];
    char description[192];
    snprintf(name, sizeof(name), "%s%s", o->preset, o->spec_changed ? "-custom" : "");
    snprintf(description, sizeof(description),
             "random weights from promptshap-mkmodel (preset %s%s, seed %" PRIu64 "); it generates noise", o->preset,
             o->spec_changed ? " with changed sizes or types" : "", o->seed);
    gguf_set_val_str(meta, "general.architecture", arch_name(s->arch));
    gguf_set_val_str(meta, "general.name", name);
    gguf_set_val_str(meta, "general.description", description);

    set_arch_u32(meta, s, "vocab_size", (uint32_t)n_vocab);
    set_arch_u32(meta, s, "context_length", (uint32_t)s->n_ctx);
    set_arch_u32(meta, s, "embedding_length", (uint32_t)s->n_embd);
    set_arch_u32(meta, s, "block_count", (uint32_t)s->n_layer);
    set_arch_u32(meta, s, "feed_forward_length", (uint32_t)s->n_ff);
    set_arch_u32(meta, s, "attention.head_count", (uint32_t)s->n_head);
    set_arch_u32(meta, s, "attention.head_count_kv", (uint32_t)s->n_head_kv);
    set_arch_f32(meta, s, "attention.layer_norm_rms_epsilon", 1e-5f);
    set_arch_f32(meta, s, "rope.freq_base", s->rope_base);
    if (s->arch == ARCH_LLAMA) {
        set_arch_u32(meta, s, "rope.dimension_count", (uint32_t)(s->n_embd / s->n_head));
        return;
    }
    /* gpt-oss: layer il uses the sliding window when il is even (the loader's
     * default sliding_window_pattern of 2) */
    set_arch_u32(meta, s, "attention.key_length", (uint32_t)s->n_head_dim);
    set_arch_u32(meta, s, "attention.value_length", (uint32_t)s->n_head_dim);
    set_arch_u32(meta, s, "rope.dimension_count", (uint32_t)s->n_head_dim);
    set_arch_u32(meta, s, "attention.sliding_window", (uint32_t)s->n_swa);
    set_arch_u32(meta, s, "expert_count", (uint32_t)s->n_expert);
    set_arch_u32(meta, s, "expert_used_count", (uint32_t)s->n_expert_used);
    set_arch_u32(meta, s, "expert_feed_forward_length", (uint32_t)s->n_ff);
}

/* Reads a whole file into a NUL-terminated string; returns NULL with errno
 * set on failure. */
static char * read_text_file(const char * path) {
    FILE * f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 1 << 16;
    size_t n = 0;
    char * text = malloc(cap);
    while (text) {
        n += fread(text + n, 1, cap - n - 1, f);
        if (n < cap - 1) {
            break;
        }
        cap *= 2;
        char * bigger = realloc(text, cap);
        if (!bigger) {
            free(text);
        }
        text = bigger;
    }
    bool bad = !text || ferror(f);
    fclose(f);
    if (bad) {
        free(text);
        errno = errno ? errno : EIO;
        return NULL;
    }
    text[n] = '\0';
    return text;
}

/* Returns the id of KEY when it is an array of strings, else -1. */
static int64_t find_string_array(const struct gguf_context * g, const char * key) {
    int64_t id = gguf_find_key(g, key);
    if (id < 0 || gguf_get_kv_type(g, id) != GGUF_TYPE_ARRAY || gguf_get_arr_type(g, id) != GGUF_TYPE_STRING) {
        return -1;
    }
    return id;
}

/* Copies every tokenizer.* key of the vocabulary file as it is; returns the
 * number of tokens, or -1 when out of memory. */
static int64_t copy_tokenizer(struct gguf_context * meta, const struct gguf_context * vocab) {
    struct gguf_context * tok = gguf_init_empty();
    if (!tok) {
        return -1;
    }
    gguf_set_kv(tok, vocab);
    for (int64_t i = gguf_get_n_kv(tok) - 1; i >= 0; i--) {
        char key[256];
        snprintf(key, sizeof(key), "%s", gguf_get_key(tok, i));
        if (strncmp(key, "tokenizer.", 10) != 0) {
            gguf_remove_key(tok, key);
        }
    }
    gguf_set_kv(meta, tok);
    gguf_free(tok);
    return (int64_t)gguf_get_arr_n(vocab, find_string_array(vocab, "tokenizer.ggml.tokens"));
}

/* Number of leading normal tokens when every other token comes after them,
 * else -1 (the first misplaced token goes to *bad). */
static int64_t count_normal_prefix(const int32_t * types, int64_t n, int64_t * bad) {
    int64_t n_normal = n;
    while (n_normal > 0 && types[n_normal - 1] != LLAMA_TOKEN_TYPE_NORMAL) {
        n_normal--;
    }
    for (int64_t i = 0; i < n_normal; i++) {
        if (types[i] != LLAMA_TOKEN_TYPE_NORMAL) {
            *bad = i;
            return -1;
        }
    }
    return n_normal;
}

/* Builds the harmony vocabulary: the base's normal tokens and merges, then the
 * 1090 o200k_harmony special tokens as control tokens. The base's own special
 * tokens go, because libllama would treat several of them (<|eot_id|>,
 * <|im_end|>, <|end_of_text|>) as end-of-generation tokens. Returns the
 * vocabulary size, or -1 after printing why. */
static int64_t harmony_tokenizer(struct gguf_context * meta, const struct gguf_context * vocab, const char * path) {
    int64_t model_id = gguf_find_key(vocab, "tokenizer.ggml.model");
    int64_t tokens_id = find_string_array(vocab, "tokenizer.ggml.tokens");
    int64_t types_id = gguf_find_key(vocab, "tokenizer.ggml.token_type");
    int64_t merges_id = find_string_array(vocab, "tokenizer.ggml.merges");
    if (model_id < 0 || gguf_get_kv_type(vocab, model_id) != GGUF_TYPE_STRING
        || strcmp(gguf_get_val_str(vocab, model_id), "gpt2") != 0 || merges_id < 0) {
        fail("--harmony needs a byte-level BPE vocabulary (tokenizer.ggml.model 'gpt2' with merges); '%s' has none",
             path);
        return -1;
    }
    if (types_id < 0 || gguf_get_kv_type(vocab, types_id) != GGUF_TYPE_ARRAY
        || gguf_get_arr_type(vocab, types_id) != GGUF_TYPE_INT32
        || gguf_get_arr_n(vocab, types_id) != gguf_get_arr_n(vocab, tokens_id)) {
        fail("'%s' has no int32 tokenizer.ggml.token_type array of one entry per token", path);
        return -1;
    }

    /* the base: its normal tokens, which must all come first */
    const int64_t n_base_all = (int64_t)gguf_get_arr_n(vocab, tokens_id);
    int64_t bad = 0;
    const int64_t n_base = count_normal_prefix(gguf_get_arr_data(vocab, types_id), n_base_all, &bad);
    if (n_base <= 0) {
        fail("--harmony needs the vocabulary's special tokens after all its normal ones, but token %" PRId64
             " ('%s') of '%s' is not normal", bad, gguf_get_arr_str(vocab, tokens_id, (size_t)bad), path);
        return -1;
    }

    /* token texts and types, harmony's appended */
    const int64_t n_vocab = n_base + N_HARMONY;
    const char ** text = malloc((size_t)n_vocab * sizeof(*text));
    int32_t * type = malloc((size_t)n_vocab * sizeof(*type));
    char (*reserved)[32] = malloc(N_HARMONY * sizeof(*reserved));
    const size_t n_merges = gguf_get_arr_n(vocab, merges_id);
    const char ** merges = malloc((n_merges ? n_merges : 1) * sizeof(*merges));
    if (!text || !type || !reserved || !merges) {
        free(text);
        free(type);
        free(reserved);
        free(merges);
        fail("out of memory");
        return -1;
    }
    for (int64_t i = 0; i < n_base; i++) {
        text[i] = gguf_get_arr_str(vocab, tokens_id, (size_t)i);
        type[i] = LLAMA_TOKEN_TYPE_NORMAL;
    }
    for (int i = 0; i < N_HARMONY; i++) {
        snprintf(reserved[i], sizeof(reserved[i]), "<|reserved_%d|>", HARMONY_FIRST_ID + i);
        text[n_base + i] = reserved[i];
        type[n_base + i] = LLAMA_TOKEN_TYPE_CONTROL;
    }
    for (int i = 0; i < N_HARMONY_NAMED; i++) {
        text[n_base + harmony_named[i].offset] = harmony_named[i].text;
    }
    for (size_t i = 0; i < n_merges; i++) {
        merges[i] = gguf_get_arr_str(vocab, merges_id, i);
    }

    /* gpt-4o is the pre-tokenizer of GPT-OSS's o200k encoding */
    gguf_set_val_str(meta, "tokenizer.ggml.model", "gpt2");
    gguf_set_val_str(meta, "tokenizer.ggml.pre", "gpt-4o");
    gguf_set_arr_str(meta, "tokenizer.ggml.tokens", text, (size_t)n_vocab);
    gguf_set_arr_data(meta, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, type, (size_t)n_vocab);
    gguf_set_arr_str(meta, "tokenizer.ggml.merges", merges, n_merges);
    gguf_set_val_u32(meta, "tokenizer.ggml.bos_token_id", (uint32_t)(n_base + HARMONY_BOS));
    gguf_set_val_u32(meta, "tokenizer.ggml.eos_token_id", (uint32_t)(n_base + HARMONY_EOS));
    gguf_set_val_u32(meta, "tokenizer.ggml.eot_token_id", (uint32_t)(n_base + HARMONY_EOS));
    gguf_set_val_u32(meta, "tokenizer.ggml.padding_token_id", (uint32_t)(n_base + HARMONY_PAD));
    gguf_set_val_bool(meta, "tokenizer.ggml.add_bos_token", false);
    gguf_set_val_bool(meta, "tokenizer.ggml.add_eos_token", false);
    free(text);
    free(type);
    free(reserved);
    free(merges);
    return n_vocab;
}

/* Builds the metadata and the tensor table. Returns 0, or an exit status after
 * printing why. */
static int build_model(const struct options * o, struct gguf_context * meta, struct tensor_list * tl,
                       int64_t * n_vocab_out) {
    /* the tokenizer */
    struct gguf_init_params gp = {.no_alloc = true, .ctx = NULL};
    struct gguf_context * vocab = gguf_init_from_file(o->vocab, gp);
    if (!vocab) {
        fail("cannot read the GGUF file '%s' (--vocab): the file is missing or not GGUF", o->vocab);
        return EXIT_RUNTIME;
    }
    if (find_string_array(vocab, "tokenizer.ggml.tokens") < 0 || gguf_find_key(vocab, "tokenizer.ggml.model") < 0) {
        fail("'%s' (--vocab) has no tokenizer: tokenizer.ggml.model or tokenizer.ggml.tokens is missing", o->vocab);
        gguf_free(vocab);
        return EXIT_RUNTIME;
    }
    struct gguf_context * tok = gguf_init_empty();
    int64_t n_vocab = o->harmony ? harmony_tokenizer(tok, vocab, o->vocab) : copy_tokenizer(tok, vocab);
    gguf_free(vocab);
    if (n_vocab <= 0) {
        gguf_free(tok);
        return EXIT_RUNTIME;
    }
    *n_vocab_out = n_vocab;

    /* the chat template */
    if (o->chat_template) {
        char * text = read_text_file(o->chat_template);
        if (!text) {
            fail("cannot read the chat template '%s': %s", o->chat_template, strerror(errno));
            gguf_free(tok);
            return EXIT_RUNTIME;
        }
        if (o->harmony && !(strstr(text, "<|start|>") && strstr(text, "<|channel|>"))) {
            fprintf(stderr, "promptshap-mkmodel: warning: the chat template '%s' has no <|start|> and <|channel|>"
                            " markers, so promptshap's --chat auto will not choose harmony framing\n",
                    o->chat_template);
        }
        gguf_set_val_str(tok, "tokenizer.chat_template", text);
        free(text);
    }

    /* general keys and hyperparameters first, then the tokenizer */
    set_hparams(meta, o, n_vocab);
    gguf_set_kv(meta, tok);
    gguf_free(tok);

    bool ok = o->spec.arch == ARCH_LLAMA ? llama_tensors(&o->spec, n_vocab, tl)
                                         : gpt_oss_tensors(&o->spec, n_vocab, tl);
    if (!ok) {
        fail("out of memory");
        return EXIT_RUNTIME;
    }
    for (int k = 0; k < o->n_set; k++) {
        const char * name = o->set[k].name;
        size_t len = (size_t)(strchr(name, '=') - name);
        struct tensor_spec * found = NULL;
        for (int i = 0; i < tl->n && !found; i++) {
            if (strlen(tl->v[i].name) == len && memcmp(tl->v[i].name, name, len) == 0) {
                found = &tl->v[i];
            }
        }
        if (!found) {
            fprintf(stderr, "promptshap-mkmodel: --set %s: this model has no tensor '%.*s'; its tensors are %s, %s, ...,"
                            " %s\n", name, (int)len, name, tl->v[0].name, tl->v[1 % tl->n].name, tl->v[tl->n - 1].name);
            fprintf(stderr, "try 'promptshap-mkmodel --help'\n");
            return EXIT_USAGE;
        }
        /* ggml's quantizers do not carry NaN or infinity through */
        if (!isfinite(o->set[k].value) && found->type != GGML_TYPE_F32 && found->type != GGML_TYPE_F16) {
            fprintf(stderr, "promptshap-mkmodel: --set %s: %s is stored as %s, which cannot hold a value that is not"
                            " finite; give it --type f32 or f16 (--expert-type for experts)\n",
                    name, found->name, ggml_type_name(found->type));
            fprintf(stderr, "try 'promptshap-mkmodel --help'\n");
            return EXIT_USAGE;
        }
        found->fill = FILL_CONSTANT;
        found->value = o->set[k].value;
    }
    const struct tensor_spec * t = misaligned_tensor(tl);
    if (t) {
        fprintf(stderr, "promptshap-mkmodel: %s stores rows in blocks of %" PRId64 " values, but %s has rows of %" PRId64
                        "; change --type/--expert-type or the sizes\n",
                ggml_type_name(t->type), (int64_t)ggml_blck_size(t->type), t->name, t->ne[0]);
        fprintf(stderr, "try 'promptshap-mkmodel --help'\n");
        return EXIT_USAGE;
    }
    return 0;
}

/*
 * Writing
 */

static bool write_zeros(FILE * f, int64_t n) {
    static const char zeros[64];
    while (n > 0) {
        size_t k = n < (int64_t)sizeof(zeros) ? (size_t)n : sizeof(zeros);
        if (fwrite(zeros, 1, k, f) != k) {
            return false;
        }
        n -= (int64_t)k;
    }
    return true;
}

/* Generates a tensor's values block by block of rows, converts them to the
 * tensor's type and appends them. */
static bool write_tensor_data(FILE * f, const struct tensor_spec * t, uint64_t seed) {
    const int64_t n_per_row = t->ne[0];
    const int64_t n_rows = t->ne[1] * t->ne[2];
    const int64_t block = n_per_row >= (1 << 20) ? 1 : (1 << 20) / n_per_row;
    const size_t row_size = ggml_row_size(t->type, n_per_row);
    float * values = malloc((size_t)(block * n_per_row) * sizeof(float));
    void * packed = malloc((size_t)block * row_size);
    bool ok = values && packed;
    uint64_t state = hash_name(t->name) ^ (seed * 0x9e3779b97f4a7c15ULL);

    for (int64_t r = 0; ok && r < n_rows; r += block) {
        const int64_t nr = n_rows - r < block ? n_rows - r : block;
        fill_values(values, nr * n_per_row, t, &state);
        const void * out = values;
        if (t->type != GGML_TYPE_F32) {
            ggml_quantize_chunk(t->type, values, packed, 0, nr, n_per_row, NULL);
            out = packed;
        }
        ok = fwrite(out, row_size, (size_t)nr, f) == (size_t)nr;
    }
    free(values);
    free(packed);
    return ok;
}

/* Adds the tensor descriptions to the metadata; the data comes later. */
static bool add_tensor_infos(struct gguf_context * meta, const struct tensor_list * tl) {
    struct ggml_init_params ip = {
        .mem_size = (size_t)tl->n * ggml_tensor_overhead(),
        .mem_buffer = NULL,
        .no_alloc = true,
    };
    struct ggml_context * ctx = ggml_init(ip);
    if (!ctx) {
        return false;
    }
    for (int i = 0; i < tl->n; i++) {
        const struct tensor_spec * t = &tl->v[i];
        struct ggml_tensor * g = ggml_new_tensor(ctx, t->type, t->n_dims, t->ne);
        ggml_set_name(g, t->name);
        gguf_add_tensor(meta, g);
    }
    ggml_free(ctx);
    return true;
}

/* Writes metadata and tensor data to FILE, each tensor at the offset that
 * gguf.h assigned to it. */
static bool write_stream(FILE * f, const struct gguf_context * meta, const struct tensor_list * tl, uint64_t seed) {
    if (!gguf_write_to_file_ptr(meta, f, true)) {
        return false;
    }
    const int64_t data_start = (int64_t)ftello(f);
    const int64_t alignment = (int64_t)gguf_get_alignment(meta);
    int64_t at = data_start;
    for (int i = 0; i < tl->n; i++) {
        const int64_t want = data_start + (int64_t)gguf_get_tensor_offset(meta, i);
        if (!write_zeros(f, want - at) || !write_tensor_data(f, &tl->v[i], seed)) {
            return false;
        }
        at = want + (int64_t)gguf_get_tensor_size(meta, i);
    }
    return write_zeros(f, (alignment - at % alignment) % alignment);
}

/* Writes the model to a temporary file next to OUT, then renames it, so OUT
 * is never left half written. */
static int write_model(const char * out, struct gguf_context * meta, const struct tensor_list * tl, uint64_t seed) {
    if (!add_tensor_infos(meta, tl)) {
        fail("out of memory");
        return EXIT_RUNTIME;
    }
    size_t n = strlen(out) + 8;
    char * tmp = malloc(n);
    if (!tmp) {
        fail("out of memory");
        return EXIT_RUNTIME;
    }
    snprintf(tmp, n, "%s.XXXXXX", out);
    int fd = mkstemp(tmp);
    FILE * f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        fail("cannot create a temporary file next to '%s': %s", out, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(tmp);
        return EXIT_RUNTIME;
    }

    bool ok = write_stream(f, meta, tl, seed) && fchmod(fd, 0644) == 0;
    int saved = errno;
    ok = (fclose(f) == 0) && ok;
    if (ok && rename(tmp, out) != 0) {
        saved = errno;
        ok = false;
    }
    if (!ok) {
        fail("writing '%s' failed: %s", out, strerror(saved ? saved : EIO));
        unlink(tmp);
    }
    free(tmp);
    return ok ? 0 : EXIT_RUNTIME;
}

/*
 * Checking
 */

static char last_llama_error[256];

/* Keeps libllama's last error for the failure message; prints its log only
 * with --verbose. */
static void log_callback(enum ggml_log_level level, const char * text, void * user_data) {
    const bool * verbose = user_data;
    if (level == GGML_LOG_LEVEL_ERROR) {
        snprintf(last_llama_error, sizeof(last_llama_error), "%s", text);
        size_t n = strlen(last_llama_error);
        if (n > 0 && last_llama_error[n - 1] == '\n') {
            last_llama_error[n - 1] = '\0';
        }
    }
    if (*verbose) {
        fputs(text, stderr);
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* True when the harmony markers promptshap relies on are single tokens and
 * <|return|> and <|call|> end generation. */
static bool harmony_tokens_ok(const struct llama_vocab * vocab) {
    static const char * const markers[] = {"<|start|>", "<|end|>", "<|message|>", "<|channel|>",
                                           "<|constrain|>", "<|return|>", "<|call|>", "<|startoftext|>"};
    for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
        llama_token t[4];
        int n = llama_tokenize(vocab, markers[i], (int32_t)strlen(markers[i]), t, 4, false, true);
        if (n != 1) {
            fail("the written vocabulary tokenizes %s to %d tokens, not 1", markers[i], n);
            return false;
        }
        bool end = strcmp(markers[i], "<|return|>") == 0 || strcmp(markers[i], "<|call|>") == 0;
        if (end && !llama_vocab_is_eog(vocab, t[0])) {
            fail("libllama does not treat %s as an end-of-generation token", markers[i]);
            return false;
        }
    }
    return true;
}

/* Decodes a short text with logits for every token; true when that works
 * and, if require_finite, every logit is finite. */
static bool decode_text(struct llama_context * ctx, const struct llama_vocab * vocab, bool require_finite) {
    static const char text[] = "The quick brown fox jumps over the lazy dog. Once upon a time, 1 + 2 = 3.";
    llama_token tokens[256];
    int n = llama_tokenize(vocab, text, (int32_t)strlen(text), tokens, 256, true, false);
    if (n <= 0) {
        fail("the written vocabulary cannot tokenize a short English text (%d)", n);
        return false;
    }

    struct llama_batch batch = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        batch.token[i] = tokens[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = true;
    }
    batch.n_tokens = n;
    int rc = llama_decode(ctx, batch);
    llama_batch_free(batch);
    if (rc != 0) {
        fail("llama_decode failed on the written model%s%s", last_llama_error[0] ? ": " : "", last_llama_error);
        return false;
    }

    const int n_vocab = llama_vocab_n_tokens(vocab);
    for (int i = 0; i < n; i++) {
        const float * logits = llama_get_logits_ith(ctx, i);
        if (!logits) {
            fail("libllama returned no logits for token %d", i);
            return false;
        }
        for (int v = 0; v < n_vocab; v++) {
            if (require_finite && !isfinite(logits[v])) {
                fail("logit %d of token %d is not finite (%g)", v, i, (double)logits[v]);
                return false;
            }
        }
    }
    return true;
}

/* One forward pass of n tokens, logits for the last only: the best of 3 timed
 * passes after a warm-up, in seconds, or a negative value on failure. */
static double time_forward(struct llama_context * ctx, int n, int n_vocab, uint64_t seed) {
    struct llama_batch batch = llama_batch_init(n, 0, 1);
    uint64_t state = seed;
    for (int i = 0; i < n; i++) {
        batch.token[i] = (llama_token)(splitmix64(&state) % (uint64_t)n_vocab);
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = i == n - 1;
    }
    batch.n_tokens = n;
    double best = -1.0;
    for (int pass = 0; pass < 4; pass++) {
        llama_memory_clear(llama_get_memory(ctx), true);
        double t0 = now_seconds();
        if (llama_decode(ctx, batch) != 0) {
            best = -1.0;
            break;
        }
        double dt = now_seconds() - t0;
        if (pass > 0 && (best < 0.0 || dt < best)) {
            best = dt;
        }
    }
    llama_batch_free(batch);
    return best;
}

/* Reloads the written file with libllama and decodes with it. */
static int check_model(const struct options * o, double * bench_seconds) {
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model * model = llama_model_load_from_file(o->out, mp);
    if (!model) {
        fail("libllama cannot load the written file '%s'%s%s", o->out, last_llama_error[0] ? ": " : "",
             last_llama_error);
        return EXIT_RUNTIME;
    }
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    struct llama_context_params cp = llama_context_default_params();
    /* room for the check's text (at most 256 tokens) even past a short
     * training context; libllama only warns about that */
    cp.n_ctx = (uint32_t)(o->bench_tokens > 256 ? o->bench_tokens : 256);
    cp.n_batch = cp.n_ctx;
    cp.n_ubatch = cp.n_ctx;
    cp.n_seq_max = 1;
    cp.n_threads = o->n_threads;
    cp.n_threads_batch = o->n_threads;
    /* as promptshap runs its models: no flash attention, 32-bit KV cache */
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.no_perf = true;
    struct llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fail("libllama cannot create a context for '%s'%s%s", o->out, last_llama_error[0] ? ": " : "",
             last_llama_error);
        llama_model_free(model);
        return EXIT_RUNTIME;
    }

    bool require_finite = true;
    for (int k = 0; k < o->n_set; k++) {
        require_finite = require_finite && isfinite(o->set[k].value);
    }
    bool ok = (!o->harmony || harmony_tokens_ok(vocab)) && decode_text(ctx, vocab, require_finite);
    if (ok && o->bench_tokens > 0) {
        *bench_seconds = time_forward(ctx, o->bench_tokens, llama_vocab_n_tokens(vocab), o->seed);
        if (*bench_seconds < 0.0) {
            fail("llama_decode failed on %d tokens%s%s", o->bench_tokens, last_llama_error[0] ? ": " : "",
                 last_llama_error);
            ok = false;
        }
    }
    llama_free(ctx);
    llama_model_free(model);
    return ok ? 0 : EXIT_RUNTIME;
}

/*
 * Driver
 */

/* Prints the one-line summary: architecture, parameters (all, without the
 * embedding and output matrices, and for MoE those active per token), file
 * size and vocabulary size. */
static void print_summary(const struct options * o, const struct tensor_list * tl, int64_t n_vocab) {
    int64_t total = 0;
    int64_t embeddings = 0;
    int64_t experts = 0;
    for (int i = 0; i < tl->n; i++) {
        const struct tensor_spec * t = &tl->v[i];
        total += n_elements(t);
        if (strcmp(t->name, "token_embd.weight") == 0 || strcmp(t->name, "output.weight") == 0) {
            embeddings += n_elements(t);
        }
        if (strstr(t->name, "_exps.")) {
            experts += n_elements(t);
        }
    }
    const struct spec * s = &o->spec;
    struct stat st;
    double mib = stat(o->out, &st) == 0 ? (double)st.st_size / (1024.0 * 1024.0) : -1.0;
    printf("%s: %s, %d layers, width %d, %.2fM parameters (%.2fM without embeddings", o->out, arch_name(s->arch),
           s->n_layer, s->n_embd, (double)total / 1e6, (double)(total - embeddings) / 1e6);
    if (s->arch == ARCH_GPT_OSS) {
        double idle = (double)experts * (double)(s->n_expert - s->n_expert_used) / (double)s->n_expert;
        printf(", %.2fM active per token", ((double)(total - embeddings) - idle) / 1e6);
    }
    printf("), %.1f MiB, vocabulary %" PRId64 " tokens\n", mib, n_vocab);
}

int main(int argc, char ** argv) {
    struct options o;
    parse_options(argc, argv, &o);
    validate_options(&o);
    llama_log_set(log_callback, &o.verbose);
    llama_backend_init();

    /* metadata and tensor table */
    struct gguf_context * meta = gguf_init_empty();
    struct tensor_list tl = {0};
    int64_t n_vocab = 0;
    int status = build_model(&o, meta, &tl, &n_vocab);

    /* the file */
    if (status == 0) {
        status = write_model(o.out, meta, &tl, o.seed);
    }
    gguf_free(meta);

    /* the check and the optional timing */
    double bench_seconds = -1.0;
    if (status == 0 && o.check) {
        status = check_model(&o, &bench_seconds);
    }
    if (status == 0) {
        print_summary(&o, &tl, n_vocab);
        if (bench_seconds >= 0.0) {
            printf("forward pass of %d tokens: %.3f s (best of 3, %d threads)\n", o.bench_tokens, bench_seconds,
                   o.n_threads);
        }
    }
    free(tl.v);
    llama_backend_free();
    return status;
}
