/* SPDX-License-Identifier: MIT
 *
 * The promptshap command-line tool: `explain` attributes a target text to
 * the prompt's units, `logprob` prints the target's per-token
 * log-probabilities. Results go to stdout, progress and warnings to stderr.
 * Exit codes: 0 success, 1 runtime failure, 2 usage error.
 */
#include "promptshap.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static const char * usage_text =
    "usage: promptshap explain -m MODEL (-p TEXT | -f FILE) [--target TEXT | --target-file FILE] [options]\n"
    "       promptshap logprob -m MODEL (-p TEXT | -f FILE) (--target TEXT | --target-file FILE) [options]\n"
    "       promptshap --help | --version\n"
    "\n"
    "explain measures how much each unit of the prompt moves the log-probability (nats) of the\n"
    "target: Shapley values (exact or sampled, with standard errors) or leave-one-out differences,\n"
    "per unit and per target token. Without a target it first generates one from the full prompt.\n"
    "logprob prints the log-probability of each target token given the prompt.\n"
    "\n"
    "inputs:\n"
    "  -m, --model FILE         GGUF model file (required)\n"
    "  -p, --prompt TEXT        prompt text\n"
    "  -f, --file FILE          read the prompt from FILE\n"
    "      --target TEXT        target text to explain\n"
    "      --target-file FILE   read the target from FILE\n"
    "\n"
    "framing:\n"
    "      --chat MODE          auto, none, template or harmony (default: auto = harmony if the model's\n"
    "                           template uses harmony markers, template if it has one, else none)\n"
    "      --chat-template T    template framing: a built-in template name (chatml, llama3, ...) or\n"
    "                           template text, instead of the model's own\n"
    "      --reasoning EFFORT   harmony reasoning effort: low, medium or high (default: medium)\n"
    "      --date YYYY-MM-DD    harmony: date line of the system message (default: none)\n"
    "      --target-sep TEXT    none framing: text between prompt and target (default: a space,\n"
    "                           or nothing when the target starts with whitespace)\n"
    "\n"
    "attribution (explain):\n"
    "      --units KIND         words, tokens or sentences (default: words)\n"
    "      --method M           auto, exact, permutation or loo (default: auto = exact up to 12 units,\n"
    "                           permutation above; exact is limited to 20 units)\n"
    "      --samples N          permutation: permutations drawn, in antithetic pairs (default: 64)\n"
    "      --seed N             permutation and sampling seed (default: 1)\n"
    "      --sentences          also aggregate over the target's sentences (sum, sum of |x|, mean of |x|)\n"
    "      --top-k K            list the K most influential units for each target token\n"
    "\n"
    "generation (explain without a target):\n"
    "  -n, --n-predict N        max tokens to generate (default: 128)\n"
    "      --temp T             sampling temperature, 0 = greedy (default: 0)\n"
    "\n"
    "engine:\n"
    "  -c, --ctx-size N         max tokens of one scored sequence (default: the model's training context)\n"
    "  -b, --batch N            tokens per llama_decode call (default: 512)\n"
    "  -t, --threads N          CPU threads (default: all cores)\n"
    "  -ngl, --gpu-layers N     layers offloaded to a GPU, -1 = all (default: 0)\n"
    "\n"
    "output:\n"
    "      --json FILE          write the result as JSON to FILE, or to stdout with '-' (docs/json.md)\n"
    "  -q, --quiet              no progress line\n"
    "  -v, --verbose            show llama.cpp's log on stderr\n"
    "  -h, --help               show this help\n"
    "      --version            show the version and the llama.cpp release\n"
    "\n"
    "exit status: 0 success, 1 runtime failure (model, input text, decoding, output file), 2 usage error.\n"
    "\n"
    "examples:\n"
    "  promptshap explain -m model.gguf -p 'explain deep leaning in 50 words' --target-file answer.txt\n"
    "  promptshap explain -m model.gguf -f prompt.txt --method permutation --samples 200 --json out.json\n"
    "  promptshap explain -m model.gguf -p 'who threw apple at gregor samsa' -n 64 --top-k 3\n"
    "  promptshap logprob -m model.gguf -p 'Once upon a time' --target 'there was a girl.'\n";

enum command { CMD_EXPLAIN, CMD_LOGPROB };

struct cli {
    enum command command;
    const char * model;
    const char * prompt;
    const char * prompt_file;
    const char * target;
    const char * target_file;
    const char * json;
    struct promptshap_explain_params ep;
    struct promptshap_generate_params gp;
    struct promptshap_model_params mp;
    int top_k;
    bool quiet;
    bool verbose;
};

/*
 * Messages
 */

static void usage_error(const char * problem, const char * arg) {
    fprintf(stderr, "promptshap: %s: '%s'\n", problem, arg);
    fprintf(stderr, "try 'promptshap --help'\n");
    exit(EXIT_USAGE);
}

static void runtime_error(const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("promptshap: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void log_to_stderr(int level, const char * text, void * user_data) {
    (void)level;
    (void)user_data;
    fputs(text, stderr);
}

/*
 * Argument parsing
 */

static long parse_long(const char * opt, const char * s, long min, long max) {
    char * end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        char problem[160];
        snprintf(problem, sizeof(problem), "%s needs an integer from %ld to %ld", opt, min, max);
        usage_error(problem, s);
    }
    return v;
}

static double parse_double(const char * opt, const char * s, double min, double max) {
    char * end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max)) {
        char problem[160];
        snprintf(problem, sizeof(problem), "%s needs a number from %g to %g", opt, min, max);
        usage_error(problem, s);
    }
    return v;
}

static uint64_t parse_seed(const char * s) {
    char * end = NULL;
    errno = 0;
    if (s[0] == '-') {
        usage_error("--seed needs a non-negative integer", s);
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        usage_error("--seed needs a non-negative integer", s);
    }
    return (uint64_t)v;
}

static bool is_opt(const char * arg, const char * short_name, const char * long_name) {
    return (short_name && strcmp(arg, short_name) == 0) || (long_name && strcmp(arg, long_name) == 0);
}

/* Options that take a value; the flags are handled before this check. */
static bool takes_value(const char * a) {
    static const char * const names[] = {
        "-m", "--model", "-p", "--prompt", "-f", "--file", "--target", "--target-file", "--chat",
        "--chat-template", "--reasoning", "--date", "--target-sep", "--units", "--method", "--samples",
        "--seed", "--top-k", "-n", "--n-predict", "--temp", "-c", "--ctx-size", "-b", "--batch",
        "-t", "--threads", "-ngl", "--gpu-layers", "--json",
    };
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        if (strcmp(a, names[k]) == 0) {
            return true;
        }
    }
    return false;
}

static void parse_args(int argc, char ** argv, struct cli * c) {
    memset(c, 0, sizeof(*c));
    c->ep = promptshap_explain_default_params();
    c->gp = promptshap_generate_default_params();
    c->mp = promptshap_model_default_params();
    bool method_set = false;
    bool samples_set = false;

    if (argc < 2) {
        fputs("promptshap: a command is required: 'explain' or 'logprob'\n"
              "try 'promptshap --help'\n",
              stderr);
        exit(EXIT_USAGE);
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage_text, stdout);
        exit(0);
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("promptshap %s (llama.cpp %s, libllama %s)\n", promptshap_version(), PROMPTSHAP_LLAMA_RELEASE,
               promptshap_llama_version());
        exit(0);
    }
    if (strcmp(argv[1], "explain") == 0) {
        c->command = CMD_EXPLAIN;
    } else if (strcmp(argv[1], "logprob") == 0) {
        c->command = CMD_LOGPROB;
    } else {
        usage_error("unknown command (expected explain or logprob)", argv[1]);
    }

    for (int i = 2; i < argc; i++) {
        const char * a = argv[i];
        /* every option but the flags below takes a value */
        if (is_opt(a, "-h", "--help")) {
            fputs(usage_text, stdout);
            exit(0);
        } else if (is_opt(a, "-q", "--quiet")) {
            c->quiet = true;
            continue;
        } else if (is_opt(a, "-v", "--verbose")) {
            c->verbose = true;
            continue;
        } else if (is_opt(a, NULL, "--sentences")) {
            c->ep.sentences = true;
            continue;
        } else if (a[0] != '-') {
            usage_error("unexpected argument (options start with '-'; quote a prompt and pass it with -p)", a);
        }
        if (!takes_value(a)) {
            usage_error("unknown option", a);
        }
        if (i + 1 >= argc) {
            usage_error("option needs a value", a);
        }
        const char * v = argv[++i];
        if (is_opt(a, "-m", "--model")) {
            c->model = v;
        } else if (is_opt(a, "-p", "--prompt")) {
            c->prompt = v;
        } else if (is_opt(a, "-f", "--file")) {
            c->prompt_file = v;
        } else if (is_opt(a, NULL, "--target")) {
            c->target = v;
        } else if (is_opt(a, NULL, "--target-file")) {
            c->target_file = v;
        } else if (is_opt(a, NULL, "--chat")) {
            if (!promptshap_chat_parse(v, &c->ep.score.chat)) {
                usage_error("--chat must be auto, none, template or harmony", v);
            }
        } else if (is_opt(a, NULL, "--chat-template")) {
            c->ep.score.chat_template = v;
        } else if (is_opt(a, NULL, "--reasoning")) {
            if (!promptshap_reasoning_parse(v, &c->ep.score.reasoning)) {
                usage_error("--reasoning must be low, medium or high", v);
            }
        } else if (is_opt(a, NULL, "--date")) {
            if (strlen(v) != 10 || v[4] != '-' || v[7] != '-') {
                usage_error("--date must be YYYY-MM-DD", v);
            }
            c->ep.score.harmony_date = v;
        } else if (is_opt(a, NULL, "--target-sep")) {
            c->ep.score.target_sep = v;
        } else if (is_opt(a, NULL, "--units")) {
            if (!promptshap_unit_kind_parse(v, &c->ep.score.units)) {
                usage_error("--units must be words, tokens or sentences", v);
            }
        } else if (is_opt(a, NULL, "--method")) {
            if (!promptshap_method_parse(v, &c->ep.estimate.method)) {
                usage_error("--method must be auto, exact, permutation or loo", v);
            }
            method_set = true;
        } else if (is_opt(a, NULL, "--samples")) {
            c->ep.estimate.n_samples = (int)parse_long(a, v, 4, 1000000);
            samples_set = true;
        } else if (is_opt(a, NULL, "--seed")) {
            c->ep.estimate.seed = parse_seed(v);
            c->gp.seed = c->ep.estimate.seed;
        } else if (is_opt(a, NULL, "--top-k")) {
            c->top_k = (int)parse_long(a, v, 1, 1000000);
        } else if (is_opt(a, "-n", "--n-predict")) {
            c->gp.n_predict = (int)parse_long(a, v, 1, 1000000);
        } else if (is_opt(a, NULL, "--temp")) {
            c->gp.temperature = (float)parse_double(a, v, 0.0, 100.0);
        } else if (is_opt(a, "-c", "--ctx-size")) {
            c->ep.score.n_ctx = (int)parse_long(a, v, 0, INT_MAX / 4);
        } else if (is_opt(a, "-b", "--batch")) {
            c->ep.score.n_batch = (int)parse_long(a, v, 1, INT_MAX / 4);
        } else if (is_opt(a, "-t", "--threads")) {
            c->ep.score.n_threads = (int)parse_long(a, v, 1, 1024);
        } else if (is_opt(a, "-ngl", "--gpu-layers")) {
            c->mp.n_gpu_layers = (int)parse_long(a, v, -1, 100000);
        } else if (is_opt(a, NULL, "--json")) {
            c->json = v;
        } else {
            usage_error("unknown option", a);
        }
    }

    /* consistency */
    if (!c->model) {
        usage_error("a model is required", "-m");
    }
    if (c->prompt && c->prompt_file) {
        usage_error("give the prompt once, with -p or -f, not both", "-f");
    }
    if (!c->prompt && !c->prompt_file) {
        usage_error("a prompt is required", "-p");
    }
    if (c->target && c->target_file) {
        usage_error("give the target once, with --target or --target-file, not both", "--target-file");
    }
    if (c->command == CMD_LOGPROB && !c->target && !c->target_file) {
        usage_error("logprob needs a target", "--target");
    }
    if (samples_set && method_set && c->ep.estimate.method != PROMPTSHAP_METHOD_PERMUTATION &&
        c->ep.estimate.method != PROMPTSHAP_METHOD_AUTO) {
        usage_error("--samples applies to the permutation method only", promptshap_method_name(c->ep.estimate.method));
    }
}

/*
 * Files
 */

/* Reads a whole file; NULL with a message on failure. */
static char * read_file(const char * path, const char * what, size_t * len) {
    FILE * f = fopen(path, "rb");
    if (!f) {
        runtime_error("cannot read the %s file '%s': %s", what, path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char * buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n + 1 < cap) {
            break;
        }
        char * grown = realloc(buf, cap * 2);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (!buf || failed) {
        runtime_error("reading the %s file '%s' failed", what, path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Checks before any model work that an output file can be created. */
static bool check_output_path(const char * path) {
    char dir[4096];
    const char * slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == path) {
        snprintf(dir, sizeof(dir), "/");
    } else {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        runtime_error("cannot write '%s': the directory '%s' does not exist", path, dir);
        return false;
    }
    if (access(dir, W_OK) != 0) {
        runtime_error("cannot write '%s': no write permission in '%s'", path, dir);
        return false;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        runtime_error("cannot write '%s': it is a directory", path);
        return false;
    }
    return true;
}

/* Writes a file through a temporary name in the same directory and a
 * rename, so readers never see a partial file. */
typedef struct {
    FILE * f;
    char tmp[4200];
    const char * path;
} atomic_file;

static bool atomic_open(atomic_file * a, const char * path) {
    a->path = path;
    snprintf(a->tmp, sizeof(a->tmp), "%s.tmp.XXXXXX", path);
    int fd = mkstemp(a->tmp);
    if (fd < 0) {
        runtime_error("cannot create a temporary file next to '%s': %s", path, strerror(errno));
        return false;
    }
    a->f = fdopen(fd, "w");
    if (!a->f) {
        close(fd);
        unlink(a->tmp);
        runtime_error("cannot open '%s': %s", a->tmp, strerror(errno));
        return false;
    }
    return true;
}

static bool atomic_commit(atomic_file * a) {
    bool ok = fflush(a->f) == 0 && fsync(fileno(a->f)) == 0;
    ok = (fclose(a->f) == 0) && ok;
    if (ok) {
        /* mkstemp creates mode 0600; give the file the usual permissions */
        mode_t mask = umask(0);
        umask(mask);
        chmod(a->tmp, 0666 & ~mask);
        ok = rename(a->tmp, a->path) == 0;
    }
    if (!ok) {
        runtime_error("writing '%s' failed: %s", a->path, strerror(errno));
        unlink(a->tmp);
    }
    return ok;
}

/*
 * Progress and interruption
 */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

struct progress {
    double start;
    bool shown;
    bool enabled;
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool on_progress(void * user_data, long done, long total) {
    struct progress * p = user_data;
    if (interrupted) {
        return false;
    }
    double elapsed = now_seconds() - p->start;
    if (!p->enabled || elapsed < 1.0) {
        return true;
    }
    double rate = done / elapsed;
    double left = rate > 0 ? (total - done) / rate : 0.0;
    fprintf(stderr, "\r%ld/%ld coalitions, %.1f/s, %.0f s left   ", done, total, rate, left);
    if (done == total) {
        fputc('\n', stderr);
    }
    p->shown = true;
    return true;
}

/*
 * Output
 */

/* Prints text on one line: control characters shown as escapes, cut to
 * width bytes (at a UTF-8 boundary) with "..." when longer. */
static void print_clean(FILE * f, const char * s, size_t n, size_t width) {
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (shown >= width && (c & 0xc0) != 0x80) {
            fputs("...", f);
            return;
        }
        if (c == '\n') {
            fputs("\\n", f);
            shown += 2;
        } else if (c == '\t') {
            fputs("\\t", f);
            shown += 2;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\x%02x", c);
            shown += 4;
        } else {
            fputc(c, f);
            if ((c & 0xc0) != 0x80) {
                shown++;
            }
        }
    }
}

/* Display width of the text print_clean writes, up to width. */
static size_t clean_width(const char * s, size_t n, size_t width) {
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (shown >= width && (c & 0xc0) != 0x80) {
            return shown + 3;
        }
        if (c == '\n' || c == '\t') {
            shown += 2;
        } else if (c < 0x20 || c == 0x7f) {
            shown += 4;
        } else if ((c & 0xc0) != 0x80) {
            shown++;
        }
    }
    return shown;
}

static void print_table(const promptshap_result * r) {
    const promptshap_estimate * e = r->estimate;
    const int U = r->n_units;
    const bool sampled = e->method == PROMPTSHAP_METHOD_PERMUTATION;
    const int label_width = 24;
    const int bar_width = 20;
    double total_abs = 0.0, max_abs = 0.0;
    for (int i = 0; i < U; i++) {
        total_abs += fabs(e->values[i]);
        if (fabs(e->values[i]) > max_abs) {
            max_abs = fabs(e->values[i]);
        }
    }

    printf("%-*s %12s %7s", label_width + 3, "unit", e->method == PROMPTSHAP_METHOD_LOO ? "loo (nats)" : "shapley (nats)",
           "share");
    if (sampled) {
        printf(" %10s", "stderr");
    }
    printf("  bar (+ helps, - hurts the target)\n");
    for (int i = 0; i < U; i++) {
        const char * text = r->prompt + r->units[i].start;
        size_t len = r->units[i].end - r->units[i].start;
        print_clean(stdout, text, len, (size_t)label_width);
        size_t w = clean_width(text, len, (size_t)label_width);
        for (size_t k = w; k < (size_t)label_width + 3; k++) {
            putchar(' ');
        }
        double share = total_abs > 0 ? 100.0 * fabs(e->values[i]) / total_abs : 0.0;
        printf(" %+12.4f %6.1f%%", e->values[i], share);
        if (sampled) {
            printf(" %10.4f", e->std_error[i]);
        }
        int n_bar = max_abs > 0 ? (int)lround(bar_width * fabs(e->values[i]) / max_abs) : 0;
        printf("  ");
        for (int k = 0; k < n_bar; k++) {
            putchar(e->values[i] >= 0 ? '+' : '-');
        }
        putchar('\n');
    }
    putchar('\n');
    printf("v(N)     %+.6f nats  (full prompt, %d target tokens)\n", e->v_full_total, r->n_target_tokens);
    printf("v(empty) %+.6f nats  (no prompt units)\n", e->v_empty_total);
    printf("efficiency gap %.3g  |sum of values - (v(N) - v(empty))|\n", e->efficiency_gap);
    printf("method %s, %s framing, %d %s, %ld coalitions evaluated", promptshap_method_name(e->method),
           promptshap_chat_name(r->chat), U, promptshap_unit_kind_name(r->unit_kind), e->n_evaluations);
    if (sampled) {
        printf(", %d permutations", e->n_samples);
    }
    printf(", %.2f s\n", r->seconds);
}

static void print_top_k(const promptshap_result * r, int k) {
    const int U = r->n_units;
    const int T = r->n_target_tokens;
    if (k > U) {
        k = U;
    }
    int * order = malloc((size_t)U * sizeof(int));
    if (!order) {
        return;
    }
    printf("\ntop %d units per target token (value in nats):\n", k);
    for (int t = 0; t < T; t++) {
        const double * col = r->estimate->matrix;
        for (int i = 0; i < U; i++) {
            order[i] = i;
        }
        /* partial selection sort by |value|, ties by unit index */
        for (int a = 0; a < k; a++) {
            int best = a;
            for (int b = a + 1; b < U; b++) {
                double vb = fabs(col[(size_t)order[b] * T + t]);
                double vbest = fabs(col[(size_t)order[best] * T + t]);
                if (vb > vbest) {
                    best = b;
                }
            }
            int tmp = order[a];
            order[a] = order[best];
            order[best] = tmp;
        }
        printf("%4d ", t);
        const char * text = r->target_tokens[t].text;
        putchar('\'');
        print_clean(stdout, text, strlen(text), 16);
        printf("' %+.3f:", r->target_tokens[t].logprob);
        for (int a = 0; a < k; a++) {
            int i = order[a];
            printf("  ");
            print_clean(stdout, r->prompt + r->units[i].start, r->units[i].end - r->units[i].start, 16);
            printf(" %+.4f", col[(size_t)i * T + t]);
        }
        putchar('\n');
    }
    free(order);
}

static void print_sentences(const promptshap_result * r) {
    const int U = r->n_units;
    printf("\n%d target sentences (sum of values over each sentence's tokens, nats; largest |sum| first):\n",
           r->n_sentences);
    for (int k = 0; k < r->n_sentences; k++) {
        const promptshap_sentence * s = &r->sentences[k];
        printf("%3d tokens %d-%d  ", k + 1, s->token_begin, s->token_end);
        print_clean(stdout, r->target + s->span.start, s->span.end - s->span.start, 48);
        putchar('\n');
        /* the three units with the largest |sum| */
        int shown[3] = {-1, -1, -1};
        for (int a = 0; a < 3 && a < U; a++) {
            int best = -1;
            for (int i = 0; i < U; i++) {
                if (i == shown[0] || i == shown[1]) {
                    continue;
                }
                if (best < 0 || fabs(s->sum[i]) > fabs(s->sum[best])) {
                    best = i;
                }
            }
            shown[a] = best;
            printf("      ");
            print_clean(stdout, r->prompt + r->units[best].start, r->units[best].end - r->units[best].start, 24);
            printf(" %+.4f (mean |x| %.4f)\n", s->sum[best], s->mean_abs[best]);
        }
    }
}

static int write_json(const struct cli * c, const promptshap_result * r) {
    struct promptshap_json_meta meta = {
        .model = c->model,
        .seed = c->ep.estimate.seed,
        .include_timing = true,
    };
    if (strcmp(c->json, "-") == 0) {
        if (promptshap_result_write_json(r, &meta, stdout) != PROMPTSHAP_OK) {
            runtime_error("writing JSON to stdout failed");
            return EXIT_RUNTIME;
        }
        return 0;
    }
    atomic_file a;
    if (!atomic_open(&a, c->json)) {
        return EXIT_RUNTIME;
    }
    if (promptshap_result_write_json(r, &meta, a.f) != PROMPTSHAP_OK) {
        fclose(a.f);
        unlink(a.tmp);
        runtime_error("writing '%s' failed", c->json);
        return EXIT_RUNTIME;
    }
    return atomic_commit(&a) ? 0 : EXIT_RUNTIME;
}

static void print_logprobs(const promptshap_result * r) {
    double total = 0.0;
    printf("%5s  %-24s %12s\n", "index", "token", "logprob");
    for (int t = 0; t < r->n_target_tokens; t++) {
        const char * text = r->target_tokens[t].text;
        printf("%5d  '", t);
        print_clean(stdout, text, strlen(text), 20);
        size_t w = clean_width(text, strlen(text), 20);
        printf("'");
        for (size_t k = w; k < 23; k++) {
            putchar(' ');
        }
        printf(" %+12.6f\n", r->target_tokens[t].logprob);
        total += r->target_tokens[t].logprob;
    }
    printf("total %+.6f nats over %d tokens (%s framing)\n", total, r->n_target_tokens, promptshap_chat_name(r->chat));
}

/*
 * main
 */

int main(int argc, char ** argv) {
    struct cli c;
    parse_args(argc, argv, &c);
    promptshap_log_set(c.verbose ? log_to_stderr : NULL, NULL);
    bool json_stdout = c.json && strcmp(c.json, "-") == 0;

    /* inputs and output paths, before any model work */
    size_t prompt_len = 0, target_len = 0;
    char * prompt = NULL;
    char * target = NULL;
    if (c.prompt_file) {
        prompt = read_file(c.prompt_file, "prompt", &prompt_len);
    } else {
        prompt_len = strlen(c.prompt);
        prompt = malloc(prompt_len + 1);
        if (prompt) {
            memcpy(prompt, c.prompt, prompt_len + 1);
        }
    }
    if (!prompt) {
        return EXIT_RUNTIME;
    }
    if (c.target_file) {
        target = read_file(c.target_file, "target", &target_len);
        if (!target) {
            free(prompt);
            return EXIT_RUNTIME;
        }
    } else if (c.target) {
        target_len = strlen(c.target);
        target = malloc(target_len + 1);
        memcpy(target, c.target, target_len + 1);
    }
    if (c.json && !json_stdout && !check_output_path(c.json)) {
        free(prompt);
        free(target);
        return EXIT_RUNTIME;
    }

    /* the model */
    promptshap_error err;
    promptshap_model * model = NULL;
    if (promptshap_model_load(c.model, &c.mp, &model, &err) != PROMPTSHAP_OK) {
        runtime_error("%s", err.message);
        free(prompt);
        free(target);
        return EXIT_RUNTIME;
    }

    /* the target: given, or generated from the full prompt */
    if (!target) {
        if (promptshap_generate(model, prompt, prompt_len, &c.ep.score, &c.gp, &target, &err) != PROMPTSHAP_OK) {
            runtime_error("generating the target failed: %s", err.message);
            promptshap_model_free(model);
            free(prompt);
            return EXIT_RUNTIME;
        }
        target_len = strlen(target);
        FILE * out = json_stdout ? stderr : stdout;
        fprintf(out, "generated target (%s, %d tokens max):\n", c.gp.temperature > 0 ? "sampled" : "greedy",
                c.gp.n_predict);
        fprintf(out, "%s\n\n", target);
    }

    /* run */
    struct progress prog = {
        .start = now_seconds(),
        .enabled = !c.quiet && isatty(STDERR_FILENO),
    };
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    c.ep.estimate.progress = on_progress;
    c.ep.estimate.progress_user_data = &prog;
    promptshap_result * r = NULL;
    enum promptshap_status st = PROMPTSHAP_OK;
    if (c.command == CMD_LOGPROB) {
        st = promptshap_logprob(model, prompt, prompt_len, target, target_len, &c.ep.score, &r, &err);
    } else {
        st = promptshap_explain(model, prompt, prompt_len, target, target_len, &c.ep, &r, &err);
    }
    if (prog.shown) {
        fputc('\n', stderr);
    }
    int rc = 0;
    if (st != PROMPTSHAP_OK) {
        runtime_error("%s", err.message);
        rc = EXIT_RUNTIME;
    } else {
        /* report */
        if (!json_stdout) {
            if (c.command == CMD_LOGPROB) {
                print_logprobs(r);
            } else {
                print_table(r);
                if (c.top_k > 0) {
                    print_top_k(r, c.top_k);
                }
                if (r->sentences) {
                    print_sentences(r);
                }
            }
        }
        if (c.json) {
            rc = write_json(&c, r);
        }
    }
    promptshap_result_free(r);
    promptshap_model_free(model);
    free(prompt);
    free(target);
    return rc;
}
