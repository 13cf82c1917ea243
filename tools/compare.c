/* SPDX-License-Identifier: MIT
 *
 * `promptshap compare`: how the target's log-probabilities move between two
 * prompts on one model (-p A --vs-prompt B), or between two models on one
 * prompt (-m A --vs-model B, for example one model at two quantizations),
 * where the two attributions of the prompt's units are also compared by
 * rank correlation. Without a target, the target is generated from the
 * first prompt on the first model.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The two sides of a comparison. */
typedef struct {
    promptshap_result * lp[2];      /* logprob results */
    promptshap_result * explain[2]; /* model comparison only */
    bool same_tokens;               /* both sides scored the same target token ids */
    int * order;                    /* target tokens by |B - A|, largest first */
    double spearman, kendall;
} comparison;

static double total_logprob(const promptshap_result * r) {
    double t = 0.0;
    for (int i = 0; i < r->n_target_tokens; i++) {
        t += r->target_tokens[i].logprob;
    }
    return t;
}

static const double * diff_base;

static int by_moved(const void * pa, const void * pb) {
    int a = *(const int *)pa, b = *(const int *)pb;
    double da = fabs(diff_base[a]), db = fabs(diff_base[b]);
    if (da != db) {
        return da > db ? -1 : 1;
    }
    return (a > b) - (a < b);
}

static bool same_token_ids(const promptshap_result * a, const promptshap_result * b) {
    if (a->n_target_tokens != b->n_target_tokens) {
        return false;
    }
    for (int i = 0; i < a->n_target_tokens; i++) {
        if (a->target_tokens[i].id != b->target_tokens[i].id) {
            return false;
        }
    }
    return true;
}

/* Orders target tokens by how far they moved; false when out of memory. */
static bool order_tokens(comparison * cmp) {
    const promptshap_result * a = cmp->lp[0];
    const promptshap_result * b = cmp->lp[1];
    int n = a->n_target_tokens;
    double * diff = malloc(((size_t)n + 1) * sizeof(double));
    cmp->order = malloc(((size_t)n + 1) * sizeof(int));
    if (!diff || !cmp->order) {
        free(diff);
        return false;
    }
    for (int i = 0; i < n; i++) {
        diff[i] = b->target_tokens[i].logprob - a->target_tokens[i].logprob;
        cmp->order[i] = i;
    }
    diff_base = diff;
    qsort(cmp->order, (size_t)n, sizeof(int), by_moved);
    diff_base = NULL;
    free(diff);
    return true;
}

static void print_token(const char * text) {
    putchar('\'');
    print_clean(stdout, text, strlen(text), 24);
    putchar('\'');
}

static void print_comparison(const struct cli * c, const comparison * cmp) {
    const promptshap_result * a = cmp->lp[0];
    const promptshap_result * b = cmp->lp[1];
    double ta = total_logprob(a), tb = total_logprob(b);
    for (int s = 0; s < 2; s++) {
        const char * text = cmp->lp[s]->prompt;
        if (c->vs_model) {
            text = s == 0 ? c->model : c->vs_model;
        }
        printf("%c: %s '", "AB"[s], c->vs_model ? "model" : "prompt");
        print_clean(stdout, text, strlen(text), 70);
        printf("'\n");
    }
    printf("%s framing, %d target tokens under A, %d under B\n\n", promptshap_chat_name(a->chat), a->n_target_tokens,
           b->n_target_tokens);
    if (cmp->same_tokens) {
        printf("%5s  %-28s %12s %12s %10s\n", "token", "text", "A (nats)", "B (nats)", "B - A");
        for (int i = 0; i < a->n_target_tokens; i++) {
            const promptshap_target_token * t = &a->target_tokens[i];
            printf("%5d  ", i);
            size_t w = clean_width(t->text, strlen(t->text), 24);
            print_token(t->text);
            for (size_t k = w + 2; k < 28; k++) {
                putchar(' ');
            }
            printf(" %+12.4f %+12.4f %+10.4f\n", t->logprob, b->target_tokens[i].logprob,
                   b->target_tokens[i].logprob - t->logprob);
        }
        putchar('\n');
    } else {
        printf("the two sides split the target into different tokens, so only the totals compare\n\n");
    }
    printf("log-probability of the target: A %+.6f nats, B %+.6f nats, B - A %+.6f nats\n", ta, tb, tb - ta);
    if (cmp->same_tokens && a->n_target_tokens > 0) {
        int k = c->top_k > 0 ? c->top_k : 10;
        if (k > a->n_target_tokens) {
            k = a->n_target_tokens;
        }
        printf("\nmost moved target tokens (by |B - A|):\n");
        for (int j = 0; j < k; j++) {
            int i = cmp->order[j];
            printf("  %5d  ", i);
            print_token(a->target_tokens[i].text);
            printf("  %+.4f nats\n", b->target_tokens[i].logprob - a->target_tokens[i].logprob);
        }
    }
    if (!cmp->explain[0]) {
        return;
    }

    /* the two attributions */
    const promptshap_result * ea = cmp->explain[0];
    const promptshap_result * eb = cmp->explain[1];
    printf("\nattribution of the prompt's %d %s (%s):\n", ea->n_units, promptshap_unit_kind_name(ea->unit_kind),
           promptshap_method_name(ea->estimate->method));
    printf("%-28s %12s %12s\n", "unit", "A (nats)", "B (nats)");
    for (int i = 0; i < ea->n_units; i++) {
        const char * text = ea->prompt + ea->units[i].start;
        size_t len = ea->units[i].end - ea->units[i].start;
        size_t w = clean_width(text, len, 26);
        print_clean(stdout, text, len, 26);
        for (size_t k = w; k < 28; k++) {
            putchar(' ');
        }
        printf(" %+12.4f %+12.4f\n", ea->estimate->values[i], eb->estimate->values[i]);
    }
    printf("rank correlation of the two attributions: Spearman %.4f, Kendall tau-b %.4f\n", cmp->spearman,
           cmp->kendall);
}

static void write_compare_json(FILE * f, const struct cli * c, const char * prompt, const char * vs_prompt,
                               const comparison * cmp) {
    const promptshap_result * a = cmp->lp[0];
    const promptshap_result * b = cmp->lp[1];
    fputs("{\n  \"version\": ", f);
    promptshap_json_string(f, promptshap_version());
    fprintf(f, ",\n  \"kind\": \"%s\"", c->vs_model ? "models" : "prompts");
    fputs(",\n  \"model\": ", f);
    promptshap_json_string(f, c->model);
    if (c->vs_model) {
        fputs(",\n  \"vs_model\": ", f);
        promptshap_json_string(f, c->vs_model);
    }
    fprintf(f, ",\n  \"chat\": \"%s\"", promptshap_chat_name(a->chat));
    fputs(",\n  \"prompt\": ", f);
    promptshap_json_string(f, prompt);
    if (vs_prompt) {
        fputs(",\n  \"vs_prompt\": ", f);
        promptshap_json_string(f, vs_prompt);
    }
    fputs(",\n  \"target\": ", f);
    promptshap_json_string(f, a->target);
    fprintf(f, ",\n  \"same_tokens\": %s", cmp->same_tokens ? "true" : "false");
    fputs(",\n  \"total_a\": ", f);
    promptshap_json_number(f, total_logprob(a));
    fputs(",\n  \"total_b\": ", f);
    promptshap_json_number(f, total_logprob(b));
    fputs(",\n  \"total_diff\": ", f);
    promptshap_json_number(f, total_logprob(b) - total_logprob(a));
    fputs(",\n  \"tokens\": [", f);
    for (int i = 0; cmp->same_tokens && i < a->n_target_tokens; i++) {
        const promptshap_target_token * t = &a->target_tokens[i];
        fputs(i ? ",\n    {\"text\": " : "\n    {\"text\": ", f);
        promptshap_json_string(f, t->text);
        fprintf(f, ", \"id\": %d, \"logprob_a\": ", t->id);
        promptshap_json_number(f, t->logprob);
        fputs(", \"logprob_b\": ", f);
        promptshap_json_number(f, b->target_tokens[i].logprob);
        fputs(", \"diff\": ", f);
        promptshap_json_number(f, b->target_tokens[i].logprob - t->logprob);
        fputc('}', f);
    }
    fputs(cmp->same_tokens && a->n_target_tokens ? "\n  ]" : "]", f);
    fputs(",\n  \"most_moved\": [", f);
    for (int j = 0; cmp->same_tokens && j < a->n_target_tokens; j++) {
        fprintf(f, "%s%d", j ? ", " : "", cmp->order[j]);
    }
    fputc(']', f);
    if (cmp->explain[0]) {
        const promptshap_result * ea = cmp->explain[0];
        const promptshap_result * eb = cmp->explain[1];
        fprintf(f, ",\n  \"method\": \"%s\"", promptshap_method_name(ea->estimate->method));
        fputs(",\n  \"units\": [", f);
        for (int i = 0; i < ea->n_units; i++) {
            size_t len = ea->units[i].end - ea->units[i].start;
            char * text = malloc(len + 1);
            if (text) {
                memcpy(text, ea->prompt + ea->units[i].start, len);
                text[len] = '\0';
            }
            fputs(i ? ",\n    {\"text\": " : "\n    {\"text\": ", f);
            promptshap_json_string(f, text);
            free(text);
            fputs(", \"value_a\": ", f);
            promptshap_json_number(f, ea->estimate->values[i]);
            fputs(", \"value_b\": ", f);
            promptshap_json_number(f, eb->estimate->values[i]);
            fputc('}', f);
        }
        fputs("\n  ],\n  \"spearman\": ", f);
        promptshap_json_number(f, cmp->spearman);
        fputs(",\n  \"kendall\": ", f);
        promptshap_json_number(f, cmp->kendall);
    }
    fputs("\n}\n", f);
}

/* Scores (and, comparing models, explains) one side. */
static bool score_side(struct cli * c, promptshap_model * model, const char * prompt, size_t prompt_len,
                       const char * target, size_t target_len, comparison * cmp, int side) {
    promptshap_error err;
    if (promptshap_logprob(model, prompt, prompt_len, target, target_len, &c->ep.score, &cmp->lp[side], &err) !=
        PROMPTSHAP_OK) {
        runtime_error("scoring side %c failed: %s", "AB"[side], err.message);
        return false;
    }
    if (c->vs_model &&
        promptshap_explain(model, prompt, prompt_len, target, target_len, &c->ep, &cmp->explain[side], &err) !=
            PROMPTSHAP_OK) {
        runtime_error("explaining side %c failed: %s", "AB"[side], err.message);
        return false;
    }
    return true;
}

static promptshap_model * load_model(const struct cli * c, const char * path) {
    promptshap_error err;
    promptshap_model * model = NULL;
    if (promptshap_model_load(path, &c->mp, &model, &err) != PROMPTSHAP_OK) {
        runtime_error("%s", err.message);
        return NULL;
    }
    return model;
}

int run_compare(struct cli * c) {
    bool json_stdout = c->json && strcmp(c->json, "-") == 0;
    char * prompt = NULL;
    char * target = NULL;
    char * vs_prompt = NULL;
    size_t prompt_len = 0, target_len = 0, vs_len = 0;
    promptshap_model * model = NULL;
    comparison cmp = { .spearman = NAN, .kendall = NAN };
    output_file json_out;
    int rc = EXIT_RUNTIME;

    /* inputs and the output path, before any model work */
    if (!read_inputs(c, &prompt, &prompt_len, &target, &target_len)) {
        return EXIT_RUNTIME;
    }
    if (c->vs_prompt_file) {
        vs_prompt = read_text_file(c->vs_prompt_file, "second prompt", &vs_len);
    } else if (c->vs_prompt) {
        vs_len = strlen(c->vs_prompt);
        vs_prompt = malloc(vs_len + 1);
        if (vs_prompt) {
            memcpy(vs_prompt, c->vs_prompt, vs_len + 1);
        }
    }
    if ((c->vs_prompt || c->vs_prompt_file) && !vs_prompt) {
        goto done;
    }
    if (c->json && !json_stdout && !output_prepare(&json_out, c->json)) {
        goto done;
    }
    /* a second model that cannot be read fails now, not after the first side's work */
    if (c->vs_model && access(c->vs_model, R_OK) != 0) {
        runtime_error("cannot read the second model '%s': %s", c->vs_model, strerror(errno));
        goto done;
    }
    catch_signals();
    c->ep.score.should_stop = should_stop;

    model = load_model(c, c->model);
    if (!model) {
        goto done;
    }
    if (!target) {
        promptshap_error err;
        if (promptshap_generate(model, prompt, prompt_len, &c->ep.score, &c->gp, &target, &err) != PROMPTSHAP_OK) {
            runtime_error("generating the target failed: %s", err.message);
            goto done;
        }
        target_len = strlen(target);
        if (!c->sep_set) {
            c->ep.score.target_sep = "";
        }
        fprintf(json_stdout ? stderr : stdout, "generated target (from the first prompt on the first model):\n%s\n\n",
                target);
    }
    if (!score_side(c, model, prompt, prompt_len, target, target_len, &cmp, 0)) {
        goto done;
    }
    if (c->vs_model) {
        promptshap_model_free(model);
        model = load_model(c, c->vs_model);
        if (!model || !score_side(c, model, prompt, prompt_len, target, target_len, &cmp, 1)) {
            goto done;
        }
        if (cmp.explain[0]->n_units != cmp.explain[1]->n_units) {
            runtime_error("the two models split the prompt into %d and %d units; compare with --units words",
                          cmp.explain[0]->n_units, cmp.explain[1]->n_units);
            goto done;
        }
        promptshap_error err;
        if (cmp.explain[0]->n_units >= 2 &&
            promptshap_rank_correlation(cmp.explain[0]->estimate->values, cmp.explain[1]->estimate->values,
                                        cmp.explain[0]->n_units, &cmp.spearman, &cmp.kendall, &err) != PROMPTSHAP_OK) {
            runtime_error("comparing the attributions failed: %s", err.message);
            goto done;
        }
    } else if (!score_side(c, model, vs_prompt, vs_len, target, target_len, &cmp, 1)) {
        goto done;
    }
    cmp.same_tokens = same_token_ids(cmp.lp[0], cmp.lp[1]);
    if (cmp.same_tokens && !order_tokens(&cmp)) {
        runtime_error("out of memory");
        goto done;
    }

    /* report */
    rc = 0;
    if (!json_stdout) {
        print_comparison(c, &cmp);
    }
    if (json_stdout) {
        write_compare_json(stdout, c, prompt, vs_prompt, &cmp);
    } else if (c->json) {
        if (!output_open(&json_out)) {
            rc = EXIT_RUNTIME;
        } else {
            write_compare_json(json_out.f, c, prompt, vs_prompt, &cmp);
            if (!output_finish(&json_out)) {
                rc = EXIT_RUNTIME;
            }
        }
    }

done:
    for (int s = 0; s < 2; s++) {
        promptshap_result_free(cmp.lp[s]);
        promptshap_result_free(cmp.explain[s]);
    }
    free(cmp.order);
    promptshap_model_free(model);
    free(prompt);
    free(target);
    free(vs_prompt);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        runtime_error("writing to stdout failed: %s", strerror(errno));
        rc = EXIT_RUNTIME;
    }
    return rc;
}
