/* SPDX-License-Identifier: MIT
 *
 * The engine benchmark: exact Shapley values of one prompt and target
 * through the naive engine (one decode per coalition, logits at every
 * position) and the batched engine (prefix trees, logits only where
 * scored), side by side, against libllama's raw prompt-processing
 * throughput on the same model. Each measurement runs in a child process of
 * its own, so that its peak resident memory is its own and no run warms the
 * next; the rounds alternate naive, batched and raw, and the medians over
 * the rounds are printed as one markdown table row.
 *
 * usage: bench_engine -m MODEL -f PROMPT_FILE --target-file FILE [--chat MODE] [--reasoning E]
 *                     [--date YYYY-MM-DD] [--rounds N] [-t THREADS] [-ngl LAYERS] [--label TEXT] [--header]
 */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 32
#define RAW_TOKENS 512

struct options {
    const char * model;
    const char * prompt_file;
    const char * target_file;
    const char * label;
    const char * date;
    enum promptshap_chat chat;
    enum promptshap_reasoning reasoning;
    int rounds;
    int threads;
    int gpu_layers;
    bool header;
};

/* What one child measured. */
struct sample {
    double seconds;                       /* exact Shapley wall time, or raw decode time */
    double tokens_per_second;             /* raw only: logits for the last position */
    double tokens_per_second_rows;        /* raw only: logits for every position */
    long peak_rss_kib;
    int n_units;
    long n_evaluations;
    struct promptshap_engine_stats stats;
    int ok;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char * read_file(const char * path, size_t * len) {
    FILE * f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_engine: cannot open '%s': %s\n", path, strerror(errno));
        exit(1);
    }
    size_t cap = 4096, n = 0;
    char * buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "bench_engine: out of memory reading '%s'\n", path);
        exit(1);
    }
    /* a trailing newline is not part of the text */
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static promptshap_model * load(const struct options * o) {
    promptshap_error err;
    promptshap_model * model = NULL;
    struct promptshap_model_params mp = promptshap_model_default_params();
    mp.n_gpu_layers = o->gpu_layers;
    if (promptshap_model_load(o->model, &mp, &model, &err) != PROMPTSHAP_OK) {
        fprintf(stderr, "bench_engine: %s\n", err.message);
        exit(1);
    }
    return model;
}

/* Exact Shapley values with one engine; the model load is not timed. */
static void run_exact(const struct options * o, enum promptshap_engine engine, struct sample * s) {
    size_t prompt_len = 0, target_len = 0;
    char * prompt = read_file(o->prompt_file, &prompt_len);
    char * target = read_file(o->target_file, &target_len);
    promptshap_model * model = load(o);
    struct promptshap_explain_params ep = promptshap_explain_default_params();
    ep.score.chat = o->chat;
    ep.score.reasoning = o->reasoning;
    ep.score.harmony_date = o->date;
    ep.score.engine = engine;
    ep.score.n_threads = o->threads;
    ep.estimate.method = PROMPTSHAP_METHOD_EXACT;
    promptshap_error err;
    promptshap_result * r = NULL;
    double t0 = now();
    if (promptshap_explain(model, prompt, prompt_len, target, target_len, &ep, &r, &err) != PROMPTSHAP_OK) {
        fprintf(stderr, "bench_engine: %s\n", err.message);
        exit(1);
    }
    s->seconds = now() - t0;
    s->n_units = r->n_units;
    s->n_evaluations = r->estimate->n_evaluations;
    s->stats = r->engine;
    promptshap_result_free(r);
    promptshap_model_free(model);
    free(prompt);
    free(target);
}

/* Median of the five timed decodes of one sequence of RAW_TOKENS tokens
 * (the first decode warms up), with logits for the last position only or
 * for every position. */
static double raw_decode(struct llama_context * ctx, struct llama_batch * b, int n_vocab, bool every_row) {
    double times[6];
    for (int rep = 0; rep < 6; rep++) {
        b->n_tokens = RAW_TOKENS;
        for (int i = 0; i < RAW_TOKENS; i++) {
            /* ordinary tokens spread over the vocabulary */
            b->token[i] = (int32_t)((1000 + 7919L * i) % n_vocab);
            b->pos[i] = i;
            b->n_seq_id[i] = 1;
            b->seq_id[i][0] = 0;
            b->logits[i] = every_row || i == RAW_TOKENS - 1;
        }
        llama_memory_seq_rm(llama_get_memory(ctx), 0, -1, -1);
        double t0 = now();
        if (llama_decode(ctx, *b) != 0) {
            fprintf(stderr, "bench_engine: the raw decode failed\n");
            exit(1);
        }
        times[rep] = now() - t0;
    }
    for (int i = 2; i < 6; i++) {
        for (int j = i; j > 1 && times[j] < times[j - 1]; j--) {
            double t = times[j];
            times[j] = times[j - 1];
            times[j - 1] = t;
        }
    }
    return times[3];
}

/* libllama's prompt processing on its own, in a context made as the scorer
 * makes its own. */
static void run_raw(const struct options * o, struct sample * s) {
    promptshap_model * model = load(o);
    struct llama_context * ctx = ps_context_new(model, RAW_TOKENS, RAW_TOKENS, 1, RAW_TOKENS, o->threads);
    if (!ctx) {
        fprintf(stderr, "bench_engine: cannot create a context of %d tokens\n", RAW_TOKENS);
        exit(1);
    }
    struct llama_batch b = llama_batch_init(RAW_TOKENS, 0, 1);
    s->seconds = raw_decode(ctx, &b, model->n_vocab, false);
    s->tokens_per_second = RAW_TOKENS / s->seconds;
    s->tokens_per_second_rows = RAW_TOKENS / raw_decode(ctx, &b, model->n_vocab, true);
    llama_batch_free(b);
    llama_free(ctx);
    promptshap_model_free(model);
}

/* Runs one measurement in a child and reads its sample back through a pipe. */
static struct sample measure(const struct options * o, int what) {
    struct sample s;
    memset(&s, 0, sizeof(s));
    int fd[2];
    if (pipe(fd) != 0) {
        perror("bench_engine: pipe");
        exit(1);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench_engine: fork");
        exit(1);
    }
    if (pid == 0) {
        close(fd[0]);
        promptshap_log_set(NULL, NULL);
        if (what == 2) {
            run_raw(o, &s);
        } else {
            run_exact(o, what == 0 ? PROMPTSHAP_ENGINE_NAIVE : PROMPTSHAP_ENGINE_BATCHED, &s);
        }
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        s.peak_rss_kib = ru.ru_maxrss;
        s.ok = 1;
        ssize_t w = write(fd[1], &s, sizeof(s));
        _exit(w == (ssize_t)sizeof(s) ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], &s, sizeof(s));
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof(s) || !s.ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_engine: a measurement failed (see above)\n");
        exit(1);
    }
    return s;
}

static int compare_double(const void * a, const void * b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double * v, int n) {
    qsort(v, (size_t)n, sizeof(double), compare_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_engine -m MODEL -f PROMPT_FILE --target-file FILE [--chat MODE] [--reasoning E]\n"
            "                    [--date YYYY-MM-DD] [--rounds N] [-t THREADS] [-ngl LAYERS] [--label TEXT] [--header]\n");
    exit(2);
}

int main(int argc, char ** argv) {
    struct options o = {
        .chat = PROMPTSHAP_CHAT_NONE,
        .reasoning = PROMPTSHAP_REASONING_MEDIUM,
        .rounds = 5,
        .label = "",
    };
    for (int i = 1; i < argc; i++) {
        const char * a = argv[i];
        const char * v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--header") == 0) {
            o.header = true;
            continue;
        }
        if (!v) {
            usage();
        }
        i++;
        if (strcmp(a, "-m") == 0) {
            o.model = v;
        } else if (strcmp(a, "-f") == 0) {
            o.prompt_file = v;
        } else if (strcmp(a, "--target-file") == 0) {
            o.target_file = v;
        } else if (strcmp(a, "--date") == 0) {
            o.date = v;
        } else if (strcmp(a, "--label") == 0) {
            o.label = v;
        } else if (strcmp(a, "--chat") == 0) {
            if (!promptshap_chat_parse(v, &o.chat)) {
                usage();
            }
        } else if (strcmp(a, "--reasoning") == 0) {
            if (!promptshap_reasoning_parse(v, &o.reasoning)) {
                usage();
            }
        } else if (strcmp(a, "--rounds") == 0) {
            o.rounds = atoi(v);
        } else if (strcmp(a, "-t") == 0) {
            o.threads = atoi(v);
        } else if (strcmp(a, "-ngl") == 0) {
            o.gpu_layers = atoi(v);
        } else {
            usage();
        }
    }
    if (!o.model || !o.prompt_file || !o.target_file || o.rounds < 1 || o.rounds > MAX_ROUNDS) {
        usage();
    }

    double naive_s[MAX_ROUNDS], batched_s[MAX_ROUNDS], raw_tps[MAX_ROUNDS], raw_rows_tps[MAX_ROUNDS];
    double naive_rss[MAX_ROUNDS], batched_rss[MAX_ROUNDS];
    struct sample naive = { 0 }, batched = { 0 };
    for (int r = 0; r < o.rounds; r++) {
        naive = measure(&o, 0);
        batched = measure(&o, 1);
        struct sample raw = measure(&o, 2);
        naive_s[r] = naive.seconds;
        batched_s[r] = batched.seconds;
        raw_tps[r] = raw.tokens_per_second;
        raw_rows_tps[r] = raw.tokens_per_second_rows;
        naive_rss[r] = naive.peak_rss_kib / 1024.0;
        batched_rss[r] = batched.peak_rss_kib / 1024.0;
        fprintf(stderr, "bench_engine: %s round %d: naive %.2f s, batched %.2f s, raw %.0f tokens/s\n", o.label, r + 1,
                naive.seconds, batched.seconds, raw.tokens_per_second);
    }
    double tn = median(naive_s, o.rounds);
    double tb = median(batched_s, o.rounds);
    double tps = median(raw_tps, o.rounds);
    double tps_rows = median(raw_rows_tps, o.rounds);
    /* the time the raw throughput needs for the tree's distinct tokens,
     * over the time the batched engine took; the second figure also
     * charges each scored logits row what a row costs in the raw decode
     * with every row kept */
    double t_tokens = (double)batched.stats.n_tokens_unique / tps;
    double row_cost = 1.0 / tps_rows - 1.0 / tps;
    double t_rows = row_cost > 0 ? (double)batched.stats.n_rows * row_cost : 0.0;
    if (o.header) {
        printf("| case | units | coalitions | naive s | batched s | speedup | tokens naive | tokens batched | "
               "unique tokens | rows batched | raw tokens/s | raw tokens/s, every row | efficiency | "
               "efficiency with rows | peak RSS naive MiB | peak RSS batched MiB |\n");
        printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    }
    printf("| %s | %d | %ld | %.2f | %.2f | %.2fx | %lld | %lld | %lld | %lld | %.0f | %.0f | %.2f | %.2f | %.0f | %.0f "
           "|\n",
           o.label, batched.n_units, batched.n_evaluations, tn, tb, tn / tb, naive.stats.n_tokens_decoded,
           batched.stats.n_tokens_decoded, batched.stats.n_tokens_unique, batched.stats.n_rows, tps, tps_rows,
           t_tokens / tb, (t_tokens + t_rows) / tb, median(naive_rss, o.rounds), median(batched_rss, o.rounds));
    return 0;
}
