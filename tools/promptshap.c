/* SPDX-License-Identifier: MIT
 *
 * The promptshap command-line tool: `explain` attributes a target text to
 * the prompt's units, `logprob` prints the target's per-token
 * log-probabilities, `game` runs an estimator on a game file; `generate`
 * and `compare` live in generate.c and compare.c. Results go to stdout,
 * progress and warnings to stderr.
 * Exit codes: 0 success, 1 runtime failure, 2 usage error.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char * usage_text =
    "usage: promptshap explain -m MODEL (-p TEXT | -f FILE) [--target TEXT | --target-file FILE] [options]\n"
    "       promptshap logprob -m MODEL (-p TEXT | -f FILE) (--target TEXT | --target-file FILE) [options]\n"
    "       promptshap generate -m MODEL (-p TEXT | -f FILE) [-n N] [--temp T] [--seed N] [options]\n"
    "       promptshap compare -m MODEL (-p TEXT | -f FILE) (--vs-prompt TEXT | --vs-prompt-file FILE |\n"
    "                          --vs-model MODEL) [--target TEXT | --target-file FILE] [options]\n"
    "       promptshap game FILE [--method M] [--budget N] [--tolerance T] [--seed N] [--interactions]\n"
    "                       [--json FILE]\n"
    "       promptshap --help | --version\n"
    "\n"
    "explain measures how much each unit of the prompt moves the log-probability (nats) of the\n"
    "target: Shapley values (exact or sampled, with standard errors) or leave-one-out differences,\n"
    "per unit and per target token. Without a target it first generates one from the full prompt.\n"
    "logprob prints the log-probability of each target token given the prompt.\n"
    "generate writes a response in the same framing; with harmony it prints the analysis, commentary\n"
    "and final channels apart, read from the control tokens, and lists malformed parts.\n"
    "compare scores one target under two prompts (--vs-prompt) or two models (--vs-model, for example\n"
    "two quantizations): per-token log-probability differences, the tokens that moved most and, for\n"
    "two models, the rank correlation (Spearman, Kendall) of the two attributions.\n"
    "game runs an estimator on a game file: a '# players N' line, comment lines, then 2^N lines\n"
    "'MASK VALUE' in increasing mask order; --method exact gives the reference values.\n"
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
    "      --method M           auto, exact, permutation, kernel, leverage, gp, loo or banzhaf (default:\n"
    "                           auto = exact when 2^n coalitions fit the budget; else gp (Gaussian-process\n"
    "                           regression) up to a budget of 4096 evaluations and leverage above it;\n"
    "                           permutation when the budget is below 4n; exact is limited to 20 units).\n"
    "                           kernel, leverage and gp below 4n evaluations fall back to exact or\n"
    "                           permutation; gp above 4096 runs leverage. banzhaf estimates Banzhaf\n"
    "                           values, a different index\n"
    "      --budget N           max distinct coalitions evaluated by sampled methods (default: 1024,\n"
    "                           enough for exact up to 10 units; permutation without --budget draws\n"
    "                           --samples permutations)\n"
    "      --tolerance T        stop sampling once max stderr / (max value - min value) < T (default: 0,\n"
    "                           spend the whole budget)\n"
    "      --interactions       also print the pairwise Shapley interaction indices (exact, up to 12 units)\n"
    "      --samples N          permutation: permutations drawn, at least 4, in antithetic pairs\n"
    "                           (an odd N is rounded up; default: 64)\n"
    "      --seed N             permutation and sampling seed (default: 1)\n"
    "      --sentences          also aggregate over the target's sentences (sum, sum of |x|, mean of |x|)\n"
    "      --top-k K            list the K most influential units for each target token\n"
    "\n"
    "generation (generate; explain and compare without a target):\n"
    "  -n, --n-predict N        max tokens to generate (default: 128)\n"
    "      --temp T             sampling temperature, 0 = greedy (default: 0); --seed seeds it\n"
    "      --explain-channel C  harmony: the channel whose text becomes the target: final (default),\n"
    "                           analysis or commentary\n"
    "\n"
    "comparison (compare):\n"
    "      --vs-prompt TEXT     the second prompt (B), scored against the same target\n"
    "      --vs-prompt-file F   read the second prompt from F\n"
    "      --vs-model FILE      the second model (B): same prompt and target, both attributions\n"
    "\n"
    "engine:\n"
    "  -c, --ctx-size N         max tokens of one scored sequence (default: the model's training context)\n"
    "  -b, --batch N            tokens per llama_decode call (default: 512)\n"
    "  -t, --threads N          CPU threads (default: all cores)\n"
    "  -ngl, --gpu-layers N     layers offloaded to a GPU, -1 = all (default: 0)\n"
    "      --mem-limit MIB      host memory scoring may plan for; a batch too large for it is halved\n"
    "                           until it fits (default: the memory the system reports available)\n"
    "      --engine E           batched (prefix trees, default) or naive (one decode per coalition,\n"
    "                           every logits row kept: the slow baseline, for benchmarks)\n"
    "      --plan               print what exact Shapley would cost (sequences, tokens, decodes) for\n"
    "                           both engines, without running the model beyond the framing\n"
    "\n"
    "output:\n"
    "      --json FILE          write the result as JSON to FILE, or to stdout with '-' (docs/json.md)\n"
    "      --svg PREFIX         write SVG figures (docs/views.md): PREFIX-units.svg, PREFIX-matrix-K.svg\n"
    "                           (40 target tokens per panel), PREFIX-sentences-{sum,sum-abs,mean-abs}.svg\n"
    "                           and, with --interactions, PREFIX-interactions.svg\n"
    "      --html FILE          write a self-contained HTML report (docs/views.md)\n"
    "      --csv FILE           write the unit x token matrix as CSV, one row per unit and token\n"
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
    "  promptshap logprob -m model.gguf -p 'Once upon a time' --target 'there was a girl.'\n"
    "  promptshap generate -m gpt-oss-20b.gguf -p 'who threw apple at gregor samsa' --reasoning low\n"
    "  promptshap compare -m model-q4.gguf --vs-model model-q8.gguf -f prompt.txt --target-file answer.txt\n";

/*
 * Messages
 */

void usage_error(const char * problem, const char * arg) {
    fprintf(stderr, "promptshap: %s: '%s'\n", problem, arg);
    fprintf(stderr, "try 'promptshap --help'\n");
    exit(EXIT_USAGE);
}

void runtime_error(const char * fmt, ...) {
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

/* Without --verbose only the library's own warnings reach stderr. */
static void log_warnings(int level, const char * text, void * user_data) {
    (void)user_data;
    if (level == 3 /* warn */ && strncmp(text, "promptshap: ", 12) == 0) {
        fputs(text, stderr);
    }
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
    if (s[0] < '0' || s[0] > '9') {
        usage_error("--seed needs a non-negative integer", s);
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        usage_error("--seed needs a non-negative integer", s);
    }
    return (uint64_t)v;
}

static bool is_date(const char * s) {
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') {
        return false;
    }
    for (int k = 0; k < 10; k++) {
        if (k != 4 && k != 7 && (s[k] < '0' || s[k] > '9')) {
            return false;
        }
    }
    int month = (s[5] - '0') * 10 + (s[6] - '0');
    int day = (s[8] - '0') * 10 + (s[9] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
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
        "-t", "--threads", "-ngl", "--gpu-layers", "--engine", "--json", "--svg", "--html", "--csv", "--budget", "--tolerance",
        "--mem-limit", "--vs-prompt", "--vs-prompt-file", "--vs-model", "--explain-channel",
    };
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        if (strcmp(a, names[k]) == 0) {
            return true;
        }
    }
    return false;
}

/* The long name of an option given by its short alias. */
static const char * long_name(const char * a) {
    static const char * const pairs[][2] = {
        {"-m", "--model"}, {"-p", "--prompt"}, {"-f", "--file"}, {"-n", "--n-predict"},
        {"-c", "--ctx-size"}, {"-b", "--batch"}, {"-t", "--threads"}, {"-ngl", "--gpu-layers"},
    };
    for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++) {
        if (strcmp(a, pairs[k][0]) == 0) {
            return pairs[k][1];
        }
    }
    return a;
}

/* An option that takes a value may appear once: a second -m or --target
 * is more likely a mistake than a wish to override the first. argv[at] is
 * the option; the options from argv[first] on, before it, are checked,
 * stepping over their values. */
static void reject_repeat(const char * a, char ** argv, int first, int at) {
    const char * name = long_name(a);
    for (int j = first; j < at;) {
        if (takes_value(argv[j])) {
            if (strcmp(long_name(argv[j]), name) == 0) {
                usage_error("option given twice; give it once", a);
            }
            j += 2;
        } else {
            j++;
        }
    }
}

static void parse_args(int argc, char ** argv, struct cli * c) {
    memset(c, 0, sizeof(*c));
    c->ep = promptshap_explain_default_params();
    c->gp = promptshap_generate_default_params();
    c->mp = promptshap_model_default_params();
    bool method_set = false;

    if (argc < 2) {
        fputs("promptshap: a command is required: explain, logprob, generate, compare or game\n"
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
    } else if (strcmp(argv[1], "game") == 0) {
        c->command = CMD_GAME;
    } else if (strcmp(argv[1], "generate") == 0) {
        c->command = CMD_GENERATE;
    } else if (strcmp(argv[1], "compare") == 0) {
        c->command = CMD_COMPARE;
    } else {
        usage_error("unknown command (expected explain, logprob, generate, compare or game)", argv[1]);
    }
    int first_option = 2;
    if (c->command == CMD_GAME) {
        if (argc < 3 || argv[2][0] == '-') {
            usage_error("game needs a game file", argc < 3 ? "game" : argv[2]);
        }
        c->game_file = argv[2];
        first_option = 3;
    }

    for (int i = first_option; i < argc; i++) {
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
        } else if (is_opt(a, NULL, "--plan")) {
            c->plan = true;
            continue;
        } else if (is_opt(a, NULL, "--sentences")) {
            c->ep.sentences = true;
            continue;
        } else if (is_opt(a, NULL, "--interactions")) {
            c->ep.estimate.interactions = true;
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
        reject_repeat(a, argv, first_option, i - 1);
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
            if (v[0] == '\0') {
                usage_error("--chat-template needs a template name or template text", v);
            }
            c->ep.score.chat_template = v;
        } else if (is_opt(a, NULL, "--reasoning")) {
            if (!promptshap_reasoning_parse(v, &c->ep.score.reasoning)) {
                usage_error("--reasoning must be low, medium or high", v);
            }
            c->reasoning_set = true;
        } else if (is_opt(a, NULL, "--date")) {
            if (!is_date(v)) {
                usage_error("--date must be a date YYYY-MM-DD", v);
            }
            c->ep.score.harmony_date = v;
            c->reasoning_set = true;
        } else if (is_opt(a, NULL, "--target-sep")) {
            c->ep.score.target_sep = v;
            c->sep_set = true;
        } else if (is_opt(a, NULL, "--units")) {
            if (!promptshap_unit_kind_parse(v, &c->ep.score.units)) {
                usage_error("--units must be words, tokens or sentences", v);
            }
        } else if (is_opt(a, NULL, "--method")) {
            if (!promptshap_method_parse(v, &c->ep.estimate.method)) {
                usage_error("--method must be auto, exact, permutation, kernel, leverage, gp, loo or banzhaf", v);
            }
            method_set = true;
        } else if (is_opt(a, NULL, "--samples")) {
            c->ep.estimate.n_samples = (int)parse_long(a, v, 4, 1000000);
            c->samples_set = true;
        } else if (is_opt(a, NULL, "--budget")) {
            c->ep.estimate.budget = parse_long(a, v, 2, 1L << 40);
        } else if (is_opt(a, NULL, "--tolerance")) {
            c->ep.estimate.tolerance = parse_double(a, v, 0.0, 1.0);
        } else if (is_opt(a, NULL, "--seed")) {
            c->ep.estimate.seed = parse_seed(v);
            c->gp.seed = c->ep.estimate.seed;
        } else if (is_opt(a, NULL, "--top-k")) {
            c->top_k = (int)parse_long(a, v, 1, 1000000);
        } else if (is_opt(a, "-n", "--n-predict")) {
            c->gp.n_predict = (int)parse_long(a, v, 1, 1000000);
            c->generation_set = true;
        } else if (is_opt(a, NULL, "--temp")) {
            c->gp.temperature = (float)parse_double(a, v, 0.0, 100.0);
            c->generation_set = true;
        } else if (is_opt(a, "-c", "--ctx-size")) {
            c->ep.score.n_ctx = (int)parse_long(a, v, 0, INT_MAX / 4);
        } else if (is_opt(a, "-b", "--batch")) {
            c->ep.score.n_batch = (int)parse_long(a, v, 1, INT_MAX / 4);
        } else if (is_opt(a, "-t", "--threads")) {
            c->ep.score.n_threads = (int)parse_long(a, v, 1, 1024);
        } else if (is_opt(a, "-ngl", "--gpu-layers")) {
            c->mp.n_gpu_layers = (int)parse_long(a, v, -1, 100000);
        } else if (is_opt(a, NULL, "--vs-prompt")) {
            c->vs_prompt = v;
        } else if (is_opt(a, NULL, "--vs-prompt-file")) {
            c->vs_prompt_file = v;
        } else if (is_opt(a, NULL, "--vs-model")) {
            c->vs_model = v;
        } else if (is_opt(a, NULL, "--explain-channel")) {
            if (strcmp(v, "analysis") != 0 && strcmp(v, "commentary") != 0 && strcmp(v, "final") != 0) {
                usage_error("--explain-channel must be analysis, commentary or final", v);
            }
            c->explain_channel = v;
            c->gp.channel = v;
        } else if (is_opt(a, NULL, "--mem-limit")) {
            c->ep.score.max_memory_mib = parse_double(a, v, 1.0, 1e9);
        } else if (is_opt(a, NULL, "--engine")) {
            if (strcmp(v, "batched") == 0) {
                c->ep.score.engine = PROMPTSHAP_ENGINE_BATCHED;
            } else if (strcmp(v, "naive") == 0) {
                c->ep.score.engine = PROMPTSHAP_ENGINE_NAIVE;
            } else {
                usage_error("--engine must be batched or naive", v);
            }
        } else if (is_opt(a, NULL, "--json")) {
            c->json = v;
        } else if (is_opt(a, NULL, "--svg")) {
            c->svg = v;
        } else if (is_opt(a, NULL, "--html")) {
            c->html = v;
        } else if (is_opt(a, NULL, "--csv")) {
            c->csv = v;
        } else {
            usage_error("unknown option", a);
        }
    }

    /* consistency */
    if (c->ep.estimate.interactions && method_set && c->ep.estimate.method != PROMPTSHAP_METHOD_EXACT &&
        c->ep.estimate.method != PROMPTSHAP_METHOD_AUTO) {
        usage_error("--interactions needs the exact method (or auto), not",
                    promptshap_method_name(c->ep.estimate.method));
    }
    const char * const view_opts[3] = {"--svg", "--html", "--csv"};
    const char * const view_paths[3] = {c->svg, c->html, c->csv};
    for (int k = 0; k < 3; k++) {
        if (view_paths[k] && c->command != CMD_EXPLAIN) {
            usage_error("--svg, --html and --csv apply to explain only", view_opts[k]);
        }
        if (view_paths[k] && view_paths[k][0] == '\0') {
            usage_error("an output file name must not be empty", view_opts[k]);
        }
    }
    if (c->command == CMD_GAME) {
        if (c->model || c->prompt || c->prompt_file || c->target || c->target_file || c->ep.sentences ||
            c->top_k > 0 || c->generation_set) {
            const char * first = "--target";
            if (c->model) {
                first = "-m";
            } else if (c->prompt || c->prompt_file) {
                first = "-p";
            }
            usage_error("game takes only --method, --budget, --tolerance, --seed, --samples, --interactions, "
                        "--json and -q; not model options such as",
                        first);
        }
        return;
    }
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
    if (c->samples_set && method_set && c->ep.estimate.method != PROMPTSHAP_METHOD_PERMUTATION &&
        c->ep.estimate.method != PROMPTSHAP_METHOD_AUTO) {
        usage_error("--samples applies to the permutation method only", promptshap_method_name(c->ep.estimate.method));
    }
    enum promptshap_chat chat = c->ep.score.chat;
    if (c->ep.score.chat_template && (chat == PROMPTSHAP_CHAT_NONE || chat == PROMPTSHAP_CHAT_HARMONY)) {
        usage_error("--chat-template applies to template framing only, not", promptshap_chat_name(chat));
    }
    if (c->reasoning_set && (chat == PROMPTSHAP_CHAT_NONE || chat == PROMPTSHAP_CHAT_TEMPLATE)) {
        usage_error("--reasoning and --date apply to harmony framing only, not", promptshap_chat_name(chat));
    }
    if (c->sep_set && (chat == PROMPTSHAP_CHAT_TEMPLATE || chat == PROMPTSHAP_CHAT_HARMONY)) {
        usage_error("--target-sep applies to none framing only, not", promptshap_chat_name(chat));
    }
    if (c->plan && c->command != CMD_EXPLAIN) {
        usage_error("--plan applies to explain only", "--plan");
    }
    if (c->plan && !c->target && !c->target_file) {
        usage_error("--plan needs the target (--target or --target-file)", "--plan");
    }
    bool vs_prompt = c->vs_prompt || c->vs_prompt_file;
    if ((vs_prompt || c->vs_model) && c->command != CMD_COMPARE) {
        usage_error("--vs-prompt, --vs-prompt-file and --vs-model apply to compare only",
                    c->vs_model ? "--vs-model" : "--vs-prompt");
    }
    if (c->command == CMD_COMPARE) {
        if (c->vs_prompt && c->vs_prompt_file) {
            usage_error("give the second prompt once, with --vs-prompt or --vs-prompt-file, not both",
                        "--vs-prompt-file");
        }
        if (vs_prompt == (c->vs_model != NULL)) {
            usage_error("compare needs either a second prompt (--vs-prompt or --vs-prompt-file) or a second model "
                        "(--vs-model), not both",
                        vs_prompt ? "--vs-model" : "compare");
        }
        if (c->vs_model && c->vs_model[0] == '\0') {
            usage_error("the second model's path must not be empty", "--vs-model");
        }
    }
    if (c->command == CMD_GENERATE && (c->target || c->target_file)) {
        usage_error("generate writes a response and takes no target", c->target ? "--target" : "--target-file");
    }
    if (c->explain_channel && c->command != CMD_EXPLAIN && c->command != CMD_COMPARE) {
        usage_error("--explain-channel applies to explain and compare (with a generated target) only",
                    c->explain_channel);
    }
    if (c->explain_channel && (c->target || c->target_file)) {
        usage_error("--explain-channel picks the channel of a generated target, but a target is given",
                    c->target ? "--target" : "--target-file");
    }
    if (c->explain_channel && (chat == PROMPTSHAP_CHAT_NONE || chat == PROMPTSHAP_CHAT_TEMPLATE)) {
        usage_error("--explain-channel applies to harmony framing only, not", promptshap_chat_name(chat));
    }
    if (c->generation_set && (c->target || c->target_file)) {
        usage_error("-n and --temp apply to generation, but a target is given", c->target ? "--target" : "--target-file");
    }
}

/*
 * Files
 */

/* Reads a whole file; NULL with a message on failure. */
char * read_file(const char * path, const char * what, size_t * len) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        runtime_error("cannot read the %s file '%s': it is a directory", what, path);
        return NULL;
    }
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
        runtime_error("reading the %s file '%s' failed: %s", what, path, buf ? strerror(errno) : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Resolves and checks an output path before any model work. */
bool output_prepare(output_file * o, const char * path) {
    memset(o, 0, sizeof(*o));
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
        if (!realpath(path, o->path)) {
            runtime_error("cannot write '%s': it is a symbolic link to a missing file", path);
            return false;
        }
    } else if (snprintf(o->path, sizeof(o->path), "%s", path) >= (int)sizeof(o->path)) {
        runtime_error("cannot write '%s': the path is too long", path);
        return false;
    }

    if (stat(o->path, &sb) == 0) {
        o->exists = true;
        o->mode = sb.st_mode & 07777;
        if (S_ISDIR(sb.st_mode)) {
            runtime_error("cannot write '%s': it is a directory", path);
            return false;
        }
        if (access(o->path, W_OK) != 0) {
            runtime_error("cannot write '%s': %s", path, strerror(errno));
            return false;
        }
        if (!S_ISREG(sb.st_mode)) {
            o->in_place = true;
            return true;
        }
    }

    /* the directory must exist and accept the temporary file */
    char dir[PATH_MAX];
    const char * slash = strrchr(o->path, '/');
    if (!slash) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == o->path) {
        snprintf(dir, sizeof(dir), "/");
    } else {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - o->path), o->path);
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        runtime_error("cannot write '%s': the directory '%s' does not exist", path, dir);
        return false;
    }
    if (access(dir, W_OK) != 0) {
        runtime_error("cannot write '%s': no write permission in '%s'", path, dir);
        return false;
    }
    return true;
}

bool output_open(output_file * o) {
    if (o->in_place) {
        o->f = fopen(o->path, "w");
        if (!o->f) {
            runtime_error("cannot open '%s': %s", o->path, strerror(errno));
        }
        return o->f != NULL;
    }
    snprintf(o->tmp, sizeof(o->tmp), "%s.XXXXXX", o->path);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        runtime_error("cannot create a temporary file next to '%s': %s", o->path, strerror(errno));
        return false;
    }
    o->f = fdopen(fd, "w");
    if (!o->f) {
        runtime_error("cannot open '%s': %s", o->tmp, strerror(errno));
        close(fd);
        unlink(o->tmp);
        return false;
    }
    return true;
}

bool output_finish(output_file * o) {
    if (ferror(o->f)) {
        runtime_error("writing '%s' failed", o->path);
        output_abandon(o);
        return false;
    }
    return output_commit(o);
}

/* Drops a file that failed half-way. */
void output_abandon(output_file * o) {
    if (o->f) {
        fclose(o->f);
        o->f = NULL;
    }
    if (!o->in_place && o->tmp[0]) {
        unlink(o->tmp);
    }
}

bool output_commit(output_file * o) {
    bool ok = fflush(o->f) == 0;
    if (!o->in_place) {
        ok = ok && fsync(fileno(o->f)) == 0;
    }
    int saved = errno;
    ok = (fclose(o->f) == 0) && ok;
    o->f = NULL;
    if (ok && !o->in_place) {
        /* mkstemp creates mode 0600: give the usual or the previous permissions */
        mode_t mode = o->mode;
        if (!o->exists) {
            mode_t mask = umask(0);
            umask(mask);
            mode = 0666 & ~mask;
        }
        ok = chmod(o->tmp, mode) == 0 && rename(o->tmp, o->path) == 0;
        saved = errno;
    }
    if (!ok) {
        runtime_error("writing '%s' failed: %s", o->path, strerror(saved));
        if (!o->in_place) {
            unlink(o->tmp);
        }
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

/* SIGINT and SIGTERM ask the run to stop at the next decode. Output files
 * are written only after a complete run, so nothing partial is left. A
 * repeated signal changes nothing. */
void catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool should_stop(void * user_data) {
    (void)user_data;
    return interrupted != 0;
}

struct progress {
    double start;
    bool shown;
    bool enabled;
};

double now_seconds(void) {
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
void print_clean(FILE * f, const char * s, size_t n, size_t width) {
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
size_t clean_width(const char * s, size_t n, size_t width) {
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

static bool is_sampled(enum promptshap_method method) {
    return method == PROMPTSHAP_METHOD_PERMUTATION || method == PROMPTSHAP_METHOD_KERNEL ||
           method == PROMPTSHAP_METHOD_LEVERAGE || method == PROMPTSHAP_METHOD_GP ||
           method == PROMPTSHAP_METHOD_BANZHAF;
}

static const char * value_label(enum promptshap_method method) {
    switch (method) {
        case PROMPTSHAP_METHOD_LOO:     return "loo (nats)";
        case PROMPTSHAP_METHOD_BANZHAF: return "banzhaf (nats)";
        default:                        return "shapley (nats)";
    }
}

/* One line on the engine's work: the tokens it decoded against the tokens
 * of one decode per coalition. */
void print_engine(const struct promptshap_engine_stats * s) {
    printf("engine: %lld tokens decoded in %lld decodes for %lld sequences of %lld tokens in all", s->n_tokens_decoded,
           s->n_decodes, s->n_sequences, s->n_tokens_total);
    if (s->n_tokens_decoded > 0 && (double)s->n_tokens_total >= 1.05 * (double)s->n_tokens_decoded) {
        printf(" (%.1fx fewer)", (double)s->n_tokens_total / (double)s->n_tokens_decoded);
    }
    printf("; model %.2f s, log-softmax %.2f s\n", s->decode_seconds, s->softmax_seconds);
}

/* The budget, the standard error ratio, a fallback note and the
 * interaction matrix, below a table of values. */
static void print_run_facts(const promptshap_estimate * e, int first_index) {
    if (is_sampled(e->method)) {
        if (e->budget > 0) {
            printf("budget %ld, %ld evaluations spent", e->budget, e->n_evaluations);
        } else {
            printf("%ld evaluations spent", e->n_evaluations);
        }
        printf(", stderr ratio %.3g  (max stderr / (max value - min value))%s\n", e->se_ratio,
               e->stopped_early ? ", tolerance met" : "");
    }
    if (e->method == PROMPTSHAP_METHOD_BANZHAF) {
        printf("index banzhaf: Banzhaf values, a different index from Shapley's; they need not add up to "
               "v(N) - v(empty)\n");
    }
    if (e->note && e->requested != e->method && e->requested != PROMPTSHAP_METHOD_AUTO) {
        printf("note: %s requested; %s\n", promptshap_method_name(e->requested), e->note);
    }
    if (e->interactions) {
        const int n = e->n_players;
        printf("\npairwise Shapley interaction indices (%s %d first; + means the two add more together than apart):\n",
               first_index ? "unit" : "player", first_index);
        printf("%6s", "");
        for (int j = 0; j < n; j++) {
            printf(" %9d", j + first_index);
        }
        putchar('\n');
        for (int i = 0; i < n; i++) {
            printf("%6d", i + first_index);
            for (int j = 0; j < n; j++) {
                printf(" %+9.4f", e->interactions[(size_t)i * n + j]);
            }
            putchar('\n');
        }
    }
}

/* True when the table may use color and block glyphs: stdout is a
 * terminal and NO_COLOR is unset or empty (https://no-color.org). Piped
 * output stays plain text. */
static bool stdout_color;

/* Prints a bar of width columns at |value| = max_abs. Plain: '+' or '-'
 * per column. In color: orange for a positive value and blue for a negative
 * one, as in the SVG and HTML views, in block glyphs with eighths. */
static void print_bar(double value, double max_abs, int width) {
    if (!stdout_color) {
        int n_bar = max_abs > 0 ? (int)lround(width * fabs(value) / max_abs) : 0;
        for (int k = 0; k < n_bar; k++) {
            putchar(value >= 0 ? '+' : '-');
        }
        return;
    }
    static const char * const partial[8] = {"", "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589"};
    long eighths = max_abs > 0 ? lround(8.0 * width * fabs(value) / max_abs) : 0;
    fputs(value >= 0 ? "\x1b[38;5;166m" : "\x1b[38;5;25m", stdout);
    for (long k = 0; k < eighths / 8; k++) {
        fputs("\u2588", stdout);
    }
    fputs(partial[eighths % 8], stdout);
    fputs("\x1b[0m", stdout);
}

static void print_table(const promptshap_result * r) {
    const promptshap_estimate * e = r->estimate;
    const int U = r->n_units;
    const bool sampled = is_sampled(e->method);
    const int label_width = 24;
    const int bar_width = 20;
    /* Values of at most 1e-9 nats (the views' PS_VIEW_NOISE) print as 0,
     * with a share of 0 and no bar: when v(N) equals v(empty), exact
     * Shapley leaves values of about 1e-15 whose shares would be noise. */
    const double noise = 1e-9;
    double total_abs = 0.0, max_abs = 0.0;
    for (int i = 0; i < U; i++) {
        double a = fabs(e->values[i]) <= noise ? 0.0 : fabs(e->values[i]);
        total_abs += a;
        if (a > max_abs) {
            max_abs = a;
        }
    }

    printf("%-*s %12s %7s", label_width + 3, "unit", value_label(e->method), "share");
    if (sampled) {
        printf(" %10s", "stderr");
    }
    printf("  %s\n", stdout_color ? "bar (orange helps, blue hurts the target)" : "bar (+ helps, - hurts the target)");
    for (int i = 0; i < U; i++) {
        const char * text = r->prompt + r->units[i].start;
        size_t len = r->units[i].end - r->units[i].start;
        print_clean(stdout, text, len, (size_t)label_width);
        size_t w = clean_width(text, len, (size_t)label_width);
        for (size_t k = w; k < (size_t)label_width + 3; k++) {
            putchar(' ');
        }
        double value = fabs(e->values[i]) <= noise ? 0.0 : e->values[i];
        double share = total_abs > 0 ? 100.0 * fabs(value) / total_abs : 0.0;
        printf(" %+12.4f %6.1f%%", value, share);
        if (sampled) {
            printf(" %10.4f", e->std_error[i]);
        }
        printf("  ");
        print_bar(value, max_abs, bar_width);
        putchar('\n');
    }
    putchar('\n');
    printf("v(N)     %+.6f nats  (full prompt, %d target tokens)\n", e->v_full_total, r->n_target_tokens);
    printf("v(empty) %+.6f nats  (no prompt units)\n", e->v_empty_total);
    printf("efficiency gap %.3g  |sum of values - (v(N) - v(empty))|\n", e->efficiency_gap);
    printf("method %s, %s framing, %d %s, %ld coalitions evaluated", promptshap_method_name(e->method),
           promptshap_chat_name(r->chat), U, promptshap_unit_kind_name(r->unit_kind), e->n_evaluations);
    if (e->method == PROMPTSHAP_METHOD_PERMUTATION) {
        printf(", %d permutations", e->n_samples);
    }
    printf(", %.2f s\n", r->seconds);
    print_engine(&r->engine);
    print_run_facts(e, 1);
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
    printf("\n%d target sentences (sum of values over each sentence's tokens, nats; largest |sum| first):\n",
           r->n_sentences);
    for (int k = 0; k < r->n_sentences; k++) {
        const promptshap_sentence * s = &r->sentences[k];
        printf("%3d tokens %d-%d  ", k + 1, s->token_begin, s->token_end);
        print_clean(stdout, r->target + s->span.start, s->span.end - s->span.start, 48);
        putchar('\n');
        /* the three units with the largest |sum| */
        int top[3];
        int n_top = promptshap_sentence_top_units(r, k, top, 3);
        for (int a = 0; a < n_top; a++) {
            int best = top[a];
            printf("      ");
            print_clean(stdout, r->prompt + r->units[best].start, r->units[best].end - r->units[best].start, 24);
            printf(" %+.4f (mean |x| %.4f)\n", s->sum[best], s->mean_abs[best]);
        }
    }
}

/* A view writer, called with an open file; arg is the panel or the
 * sentence aggregation where the view has one. */
typedef enum promptshap_status (*view_fn)(const struct cli * c, const promptshap_result * r, int arg, FILE * f);

static enum promptshap_status view_html(const struct cli * c, const promptshap_result * r, int arg, FILE * f) {
    (void)arg;
    struct promptshap_json_meta meta = {.model = c->model, .seed = c->ep.estimate.seed, .include_timing = true};
    return promptshap_result_write_html(r, &meta, f);
}

static enum promptshap_status view_csv(const struct cli * c, const promptshap_result * r, int arg, FILE * f) {
    (void)c;
    (void)arg;
    return promptshap_result_write_csv(r, f);
}

static enum promptshap_status view_units(const struct cli * c, const promptshap_result * r, int arg, FILE * f) {
    (void)c;
    (void)arg;
    return promptshap_result_write_svg_units(r, f);
}

static enum promptshap_status view_matrix(const struct cli * c, const promptshap_result * r, int panel, FILE * f) {
    (void)c;
    return promptshap_result_write_svg_matrix(r, panel, f);
}

static enum promptshap_status view_sentences(const struct cli * c, const promptshap_result * r, int agg, FILE * f) {
    (void)c;
    return promptshap_result_write_svg_sentences(r, (enum promptshap_sentence_agg)agg, f);
}

static enum promptshap_status view_interactions(const struct cli * c, const promptshap_result * r, int arg,
                                                FILE * f) {
    (void)c;
    (void)arg;
    return promptshap_result_write_svg_interactions(r, f);
}

/* Writes one view to a prepared output file: all of it, or nothing. */
static int write_view(output_file * out, view_fn fn, const struct cli * c, const promptshap_result * r, int arg) {
    if (!output_open(out)) {
        return EXIT_RUNTIME;
    }
    enum promptshap_status st = fn(c, r, arg, out->f);
    if (st != PROMPTSHAP_OK) {
        runtime_error("writing '%s' failed: %s", out->path, promptshap_status_str(st));
        output_abandon(out);
        return EXIT_RUNTIME;
    }
    return output_commit(out) ? 0 : EXIT_RUNTIME;
}

/* Checks the path PREFIX-NAME.svg. */
static bool prepare_svg(output_file * out, const char * prefix, const char * name) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s-%s.svg", prefix, name) >= (int)sizeof(path)) {
        runtime_error("cannot write '%s-%s.svg': the path is too long", prefix, name);
        return false;
    }
    return output_prepare(out, path);
}

/* Writes the SVG figures, each file on its own through a temporary name. */
static int write_svgs(const struct cli * c, const promptshap_result * r) {
    output_file out;
    if (!prepare_svg(&out, c->svg, "units") || write_view(&out, view_units, c, r, 0) != 0) {
        return EXIT_RUNTIME;
    }
    for (int k = 0; k < promptshap_svg_n_panels(r); k++) {
        char name[32];
        snprintf(name, sizeof(name), "matrix-%d", k + 1);
        if (!prepare_svg(&out, c->svg, name) || write_view(&out, view_matrix, c, r, k) != 0) {
            return EXIT_RUNTIME;
        }
    }
    static const char * const sentence_names[] = {"sentences-sum", "sentences-sum-abs", "sentences-mean-abs"};
    for (int agg = 0; r->sentences && r->n_sentences > 0 && agg < 3; agg++) {
        if (!prepare_svg(&out, c->svg, sentence_names[agg]) || write_view(&out, view_sentences, c, r, agg) != 0) {
            return EXIT_RUNTIME;
        }
    }
    if (r->estimate->interactions &&
        (!prepare_svg(&out, c->svg, "interactions") || write_view(&out, view_interactions, c, r, 0) != 0)) {
        return EXIT_RUNTIME;
    }
    return 0;
}

static int write_views(const struct cli * c, const promptshap_result * r, output_file * html_out,
                       output_file * csv_out) {
    if (c->svg && write_svgs(c, r) != 0) {
        return EXIT_RUNTIME;
    }
    if (c->html && write_view(html_out, view_html, c, r, 0) != 0) {
        return EXIT_RUNTIME;
    }
    if (c->csv && write_view(csv_out, view_csv, c, r, 0) != 0) {
        return EXIT_RUNTIME;
    }
    return 0;
}

static int write_json(const struct cli * c, output_file * out, const promptshap_result * r) {
    struct promptshap_json_meta meta = {
        .model = c->model,
        .seed = c->ep.estimate.seed,
        .include_timing = true,
    };
    if (strcmp(c->json, "-") == 0) {
        /* stdout is checked for write errors at exit */
        promptshap_result_write_json(r, &meta, stdout);
        return 0;
    }
    if (!output_open(out)) {
        return EXIT_RUNTIME;
    }
    if (promptshap_result_write_json(r, &meta, out->f) != PROMPTSHAP_OK) {
        runtime_error("writing '%s' failed", c->json);
        output_abandon(out);
        return EXIT_RUNTIME;
    }
    return output_commit(out) ? 0 : EXIT_RUNTIME;
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

/* Options whose use depends on what auto settings resolved to. */
static void warn_unused_options(const struct cli * c, const promptshap_result * r) {
    if (c->samples_set && r->estimate && r->estimate->method != PROMPTSHAP_METHOD_PERMUTATION) {
        fprintf(stderr, "promptshap: warning: --samples ignored: the method chosen was %s (use --method permutation)\n",
                promptshap_method_name(r->estimate->method));
    }
    if (c->reasoning_set && r->chat != PROMPTSHAP_CHAT_HARMONY) {
        fprintf(stderr, "promptshap: warning: --reasoning and --date ignored: the framing is %s\n",
                promptshap_chat_name(r->chat));
    }
    if (c->sep_set && r->chat != PROMPTSHAP_CHAT_NONE) {
        fprintf(stderr, "promptshap: warning: --target-sep ignored: the framing is %s\n", promptshap_chat_name(r->chat));
    }
    if (c->ep.score.chat_template && r->chat != PROMPTSHAP_CHAT_TEMPLATE) {
        fprintf(stderr, "promptshap: warning: --chat-template ignored: the framing is %s\n",
                promptshap_chat_name(r->chat));
    }
    if (c->explain_channel && r->chat != PROMPTSHAP_CHAT_HARMONY) {
        fprintf(stderr, "promptshap: warning: --explain-channel ignored: the framing is %s, which has no channels\n",
                promptshap_chat_name(r->chat));
    }
}

/* A prompt that moves no target token's log-probability at all, to the
 * last bit, is more likely a model that ignores its context (or a broken
 * one) than a real result. */
static void warn_untrusted(const promptshap_result * r) {
    const promptshap_estimate * e = r->estimate;
    if (!e || r->n_target_tokens == 0) {
        return;
    }
    for (int t = 0; t < r->n_target_tokens; t++) {
        if (e->v_full[t] != e->v_empty[t]) {
            return;
        }
    }
    fprintf(stderr,
            "promptshap: warning: every target token has the same log-probability under the full prompt "
            "(all %d units) as under the empty coalition (no units), so every value is 0; the model ignores "
            "the prompt, or the framing hides it from the model\n",
            r->n_units);
}

/*
 * The game command
 */

static void write_game_json(FILE * f, const struct cli * c, const promptshap_estimate * e) {
    const int n = e->n_players;
    fprintf(f, "{\n  \"version\": \"%s\",\n  \"game_file\": ", PROMPTSHAP_VERSION);
    fputc('"', f);
    for (const char * p = c->game_file; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') {
            fprintf(f, "\\%c", ch);
        } else if (ch < 0x20 || ch >= 0x7f) {
            fprintf(f, "\\u%04x", ch);
        } else {
            fputc(ch, f);
        }
    }
    fputc('"', f);
    fprintf(f, ",\n  \"method\": \"%s\",\n  \"requested_method\": \"%s\",\n  \"index\": \"%s\"",
            promptshap_method_name(e->method), promptshap_method_name(e->requested), promptshap_method_index(e->method));
    fprintf(f, ",\n  \"seed\": %llu,\n  \"players\": %d", (unsigned long long)c->ep.estimate.seed, n);
    fputs(",\n  \"values\": [", f);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s%.17g", i ? ", " : "", e->values[i]);
    }
    fputs("],\n  \"stderr\": [", f);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s%.17g", i ? ", " : "", e->std_error[i]);
    }
    fprintf(f, "],\n  \"v_full\": %.17g,\n  \"v_empty\": %.17g,\n  \"efficiency_gap\": %.17g", e->v_full_total,
            e->v_empty_total, e->efficiency_gap);
    fprintf(f, ",\n  \"evaluations\": %ld,\n  \"budget\": %ld,\n  \"se_ratio\": %.17g", e->n_evaluations, e->budget,
            isfinite(e->se_ratio) ? e->se_ratio : -1.0);
    fprintf(f, ",\n  \"tolerance\": %.17g,\n  \"stopped_early\": %s", c->ep.estimate.tolerance,
            e->stopped_early ? "true" : "false");
    if (e->interactions) {
        fputs(",\n  \"interactions\": [", f);
        for (int i = 0; i < n; i++) {
            fputs(i ? ",\n    [" : "\n    [", f);
            for (int j = 0; j < n; j++) {
                fprintf(f, "%s%.17g", j ? ", " : "", e->interactions[(size_t)i * n + j]);
            }
            fputc(']', f);
        }
        fputs("\n  ]", f);
    }
    fputs("\n}\n", f);
}

/* Runs an estimator on a game file: the players' values on stdout, or
 * JSON. */
static int run_game(const struct cli * c) {
    bool json_stdout = c->json && strcmp(c->json, "-") == 0;
    output_file json_out;
    if (c->json && !json_stdout && !output_prepare(&json_out, c->json)) {
        return EXIT_RUNTIME;
    }
    promptshap_error err;
    promptshap_game_table * table = NULL;
    if (promptshap_game_table_read(c->game_file, &table, &err) != PROMPTSHAP_OK) {
        runtime_error("%s", err.message);
        return EXIT_RUNTIME;
    }
    promptshap_game game = promptshap_game_table_game(table);
    promptshap_estimate * e = NULL;
    double start = now_seconds();
    if (promptshap_estimate_run(&game, &c->ep.estimate, &e, &err) != PROMPTSHAP_OK) {
        runtime_error("%s: %s", c->game_file, err.message);
        promptshap_game_table_free(table);
        return EXIT_RUNTIME;
    }
    double seconds = now_seconds() - start;

    int rc = 0;
    if (!json_stdout) {
        const bool sampled = is_sampled(e->method);
        printf("%-8s %16s%s\n", "player", promptshap_method_index(e->method), sampled ? "     stderr" : "");
        for (int i = 0; i < e->n_players; i++) {
            printf("%-8d %+16.10f", i, e->values[i]);
            if (sampled) {
                printf(" %10.3g", e->std_error[i]);
            }
            putchar('\n');
        }
        printf("\nv(N) %+.10f, v(empty) %+.10f, efficiency gap %.3g\n", e->v_full_total, e->v_empty_total,
               e->efficiency_gap);
        printf("method %s, %d players, %ld coalitions evaluated, %.3f s\n", promptshap_method_name(e->method),
               e->n_players, e->n_evaluations, seconds);
        print_run_facts(e, 0);
    }
    if (json_stdout) {
        write_game_json(stdout, c, e);
    } else if (c->json) {
        if (!output_open(&json_out)) {
            rc = EXIT_RUNTIME;
        } else {
            write_game_json(json_out.f, c, e);
            if (!output_finish(&json_out)) {
                rc = EXIT_RUNTIME;
            }
        }
    }
    promptshap_estimate_free(e);
    promptshap_game_table_free(table);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        runtime_error("writing to stdout failed: %s", strerror(errno));
        rc = EXIT_RUNTIME;
    }
    return rc;
}

/* An input file must hold text: not empty, valid UTF-8, no NUL byte. */
static bool check_text_file(const char * path, const char * what, const char * text, size_t len) {
    size_t bad = 0;
    if (len == 0) {
        runtime_error("the %s file '%s' is empty", what, path);
        return false;
    }
    if (!promptshap_utf8_valid(text, len, &bad)) {
        runtime_error("the %s file '%s' is not valid UTF-8 text: byte 0x%02x at offset %zu%s; save it as UTF-8",
                      what, path, (unsigned)(unsigned char)text[bad], bad,
                      text[bad] == 0 ? " (a NUL byte)" : "");
        return false;
    }
    return true;
}

char * read_text_file(const char * path, const char * what, size_t * len) {
    char * text = read_file(path, what, len);
    if (text && !check_text_file(path, what, text, *len)) {
        free(text);
        return NULL;
    }
    return text;
}

bool read_inputs(const struct cli * c, char ** prompt, size_t * prompt_len, char ** target, size_t * target_len) {
    *prompt = NULL;
    *target = NULL;
    *prompt_len = 0;
    *target_len = 0;
    if (c->prompt_file) {
        *prompt = read_text_file(c->prompt_file, "prompt", prompt_len);
    } else {
        *prompt_len = strlen(c->prompt);
        *prompt = malloc(*prompt_len + 1);
        if (*prompt) {
            memcpy(*prompt, c->prompt, *prompt_len + 1);
        } else {
            runtime_error("out of memory");
        }
    }
    if (!*prompt) {
        return false;
    }
    if (c->target_file) {
        *target = read_text_file(c->target_file, "target", target_len);
    } else if (c->target) {
        *target_len = strlen(c->target);
        *target = malloc(*target_len + 1);
        if (*target) {
            memcpy(*target, c->target, *target_len + 1);
        } else {
            runtime_error("out of memory");
        }
    }
    if ((c->target_file || c->target) && !*target) {
        free(*prompt);
        *prompt = NULL;
        return false;
    }
    return true;
}

/* explain --plan: the work of exact Shapley in each engine, from the
 * planner's token counts. Only the framing head is decoded. */
static int print_plan(struct cli * c, promptshap_model * model, const char * prompt, size_t prompt_len,
                      const char * target, size_t target_len) {
    promptshap_error err;
    struct promptshap_engine_stats plan[2];
    int n = 0, n_target = 0;
    enum promptshap_chat chat = PROMPTSHAP_CHAT_NONE;
    for (int e = 0; e < 2; e++) {
        struct promptshap_score_params sp = c->ep.score;
        sp.engine = e == 0 ? PROMPTSHAP_ENGINE_NAIVE : PROMPTSHAP_ENGINE_BATCHED;
        promptshap_scorer * sc = NULL;
        if (promptshap_scorer_init(model, prompt, prompt_len, target, target_len, &sp, &sc, &err) != PROMPTSHAP_OK) {
            runtime_error("%s", err.message);
            return EXIT_RUNTIME;
        }
        n = promptshap_scorer_n_units(sc);
        n_target = promptshap_scorer_n_target_tokens(sc);
        chat = promptshap_scorer_chat(sc);
        if (n > PROMPTSHAP_EXACT_MAX_UNITS) {
            promptshap_scorer_free(sc);
            runtime_error("--plan counts exact Shapley, which allows at most %d units; the prompt has %d",
                          PROMPTSHAP_EXACT_MAX_UNITS, n);
            return EXIT_RUNTIME;
        }
        long count = 1L << n;
        int W = PROMPTSHAP_MASK_WORDS(n);
        uint64_t * members = calloc((size_t)count * (size_t)W, sizeof(uint64_t));
        if (!members) {
            promptshap_scorer_free(sc);
            runtime_error("out of memory for %ld coalitions", count);
            return EXIT_RUNTIME;
        }
        for (long k = 0; k < count; k++) {
            for (int i = 0; i < n; i++) {
                if ((k >> i) & 1) {
                    members[(size_t)k * W + (size_t)(i / 64)] |= (uint64_t)1 << (i % 64);
                }
            }
        }
        enum promptshap_status st = promptshap_scorer_plan(sc, members, (int)count, &plan[e], &err);
        free(members);
        promptshap_scorer_free(sc);
        if (st != PROMPTSHAP_OK) {
            runtime_error("%s", err.message);
            return EXIT_RUNTIME;
        }
    }
    printf("exact Shapley of %d %s against %d target tokens, %s framing: %ld coalitions\n\n", n,
           promptshap_unit_kind_name(c->ep.score.units), n_target, promptshap_chat_name(chat), 1L << n);
    printf("%-8s %14s %14s %14s %10s\n", "engine", "tokens", "logits rows", "decode calls", "sequences");
    printf("%-8s %14lld %14lld %14lld %10lld\n", "naive", plan[0].n_tokens_decoded, plan[0].n_rows, plan[0].n_decodes,
           plan[0].n_sequences);
    printf("%-8s %14lld %14lld %14lld %10lld\n", "batched", plan[1].n_tokens_decoded, plan[1].n_rows,
           plan[1].n_decodes, plan[1].n_sequences);
    printf("\nthe coalitions' sequences hold %lld tokens, %lld of them distinct in their prefix tree; the "
           "batched engine\ndecodes the framing head once more when it starts\n",
           plan[1].n_tokens_total, plan[1].n_tokens_unique);
    return 0;
}

/*
 * main
 */

int main(int argc, char ** argv) {
    struct cli c;
    parse_args(argc, argv, &c);
    if (c.command == CMD_GAME) {
        return run_game(&c);
    }
    promptshap_log_set(c.verbose ? log_to_stderr : log_warnings, NULL);
    bool json_stdout = c.json && strcmp(c.json, "-") == 0;

    if (c.command == CMD_GENERATE) {
        return run_generate(&c);
    }
    if (c.command == CMD_COMPARE) {
        return run_compare(&c);
    }

    /* inputs and output paths, before any model work */
    size_t prompt_len = 0, target_len = 0;
    char * prompt = NULL;
    char * target = NULL;
    if (!read_inputs(&c, &prompt, &prompt_len, &target, &target_len)) {
        return EXIT_RUNTIME;
    }
    output_file json_out;
    if (c.json && !json_stdout && !output_prepare(&json_out, c.json)) {
        free(prompt);
        free(target);
        return EXIT_RUNTIME;
    }
    /* the number of SVG panels depends on the target, so the first figure's
     * path stands for the directory of all of them */
    output_file html_out, csv_out, svg_first;
    if ((c.html && !output_prepare(&html_out, c.html)) || (c.csv && !output_prepare(&csv_out, c.csv)) ||
        (c.svg && !prepare_svg(&svg_first, c.svg, "units"))) {
        free(prompt);
        free(target);
        return EXIT_RUNTIME;
    }
    stdout_color = isatty(STDOUT_FILENO) && !(getenv("NO_COLOR") && getenv("NO_COLOR")[0]);

    /* the model */
    promptshap_error err;
    promptshap_model * model = NULL;
    if (promptshap_model_load(c.model, &c.mp, &model, &err) != PROMPTSHAP_OK) {
        runtime_error("%s", err.message);
        free(prompt);
        free(target);
        return EXIT_RUNTIME;
    }

    if (c.plan) {
        int rc = print_plan(&c, model, prompt, prompt_len, target, target_len);
        promptshap_model_free(model);
        free(prompt);
        free(target);
        return rc;
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
        /* the generated text continues the prompt exactly as it was produced */
        if (!c.sep_set) {
            c.ep.score.target_sep = "";
        }
        FILE * out = json_stdout ? stderr : stdout;
        fprintf(out, "generated target (%s, %d tokens max%s%s):\n", c.gp.temperature > 0 ? "sampled" : "greedy",
                c.gp.n_predict, c.explain_channel ? ", channel " : "", c.explain_channel ? c.explain_channel : "");
        fprintf(out, "%s\n\n", target);
    }

    /* the SVG figures and the HTML report show the sentence view; the
     * table prints it only with --sentences */
    bool print_sentence_table = c.ep.sentences;
    if (c.svg || c.html) {
        c.ep.sentences = true;
    }

    /* run */
    struct progress prog = {
        .start = now_seconds(),
        .enabled = !c.quiet && isatty(STDERR_FILENO),
    };
    catch_signals();
    c.ep.score.should_stop = should_stop;
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
    if (st == PROMPTSHAP_ERR_CANCELLED) {
        runtime_error("interrupted: %s in %.1f s; no result was printed and no output file written", err.message,
                      now_seconds() - prog.start);
        rc = EXIT_RUNTIME;
    } else if (st != PROMPTSHAP_OK) {
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
                if (r->sentences && print_sentence_table) {
                    print_sentences(r);
                }
            }
        }
        if (c.json) {
            rc = write_json(&c, &json_out, r);
        }
        if (rc == 0 && c.command == CMD_EXPLAIN) {
            rc = write_views(&c, r, &html_out, &csv_out);
        }
    }
    if (rc == 0 && r) {
        warn_unused_options(&c, r);
        warn_untrusted(r);
    }
    promptshap_result_free(r);
    promptshap_model_free(model);
    free(prompt);
    free(target);

    /* results that never reached stdout are a failure */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        runtime_error("writing to stdout failed: %s", strerror(errno));
        rc = EXIT_RUNTIME;
    }
    return rc;
}
