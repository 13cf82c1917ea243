/* SPDX-License-Identifier: MIT
 *
 * `promptshap generate`: a response to the prompt in the framing explain
 * would score it with. With harmony the analysis, commentary and final
 * channels are printed apart, as read from the control tokens, and every
 * malformed part of the response is listed rather than merged into a
 * channel.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char * stop_reason(const promptshap_generation * g) {
    if (g->hit_limit) {
        return "stopped at the token limit";
    }
    return g->chat == PROMPTSHAP_CHAT_HARMONY ? "ended by the model" : "ended by an end-of-generation token";
}

static void print_generation(const promptshap_generation * g, const struct cli * c) {
    printf("%s framing, %s, %d tokens, %s\n\n", promptshap_chat_name(g->chat),
           c->gp.temperature > 0 ? "sampled" : "greedy", g->n_tokens, stop_reason(g));
    if (g->chat != PROMPTSHAP_CHAT_HARMONY) {
        printf("%s\n", g->n_messages > 0 ? g->messages[0].text : "");
        return;
    }
    for (int k = 0; k < g->n_messages; k++) {
        const promptshap_message * m = &g->messages[k];
        printf("[%s", m->channel[0] ? m->channel : "no channel");
        if (m->recipient) {
            printf(" to=%s", m->recipient);
        }
        if (m->constrain) {
            printf(" <|constrain|>%s", m->constrain);
        }
        printf("%s]\n%s\n\n", m->complete ? "" : ", incomplete", m->text);
    }
    if (g->n_messages == 0) {
        printf("(no message)\n\n");
    }
    if (g->n_problems > 0) {
        printf("problems in the response's structure (%d):\n", g->n_problems);
        for (int k = 0; k < g->n_problems; k++) {
            printf("  - %s\n", g->problems[k]);
        }
    }
}

static void write_generation_json(FILE * f, const struct cli * c, const char * prompt,
                                  const promptshap_generation * g) {
    fputs("{\n  \"version\": ", f);
    promptshap_json_string(f, promptshap_version());
    fputs(",\n  \"model\": ", f);
    promptshap_json_string(f, c->model);
    fprintf(f, ",\n  \"chat\": \"%s\"", promptshap_chat_name(g->chat));
    if (g->chat == PROMPTSHAP_CHAT_HARMONY) {
        fprintf(f, ",\n  \"reasoning\": \"%s\"", promptshap_reasoning_name(c->ep.score.reasoning));
    }
    fputs(",\n  \"prompt\": ", f);
    promptshap_json_string(f, prompt);
    fputs(",\n  \"temperature\": ", f);
    promptshap_json_number(f, c->gp.temperature);
    fprintf(f, ",\n  \"seed\": %llu", (unsigned long long)c->gp.seed);
    fprintf(f, ",\n  \"n_predict\": %d", c->gp.n_predict);
    fprintf(f, ",\n  \"hit_limit\": %s", g->hit_limit ? "true" : "false");
    fputs(",\n  \"tokens\": [", f);
    for (int i = 0; i < g->n_tokens; i++) {
        fprintf(f, "%s%d", i ? ", " : "", g->tokens[i]);
    }
    fputs("],\n  \"text\": ", f);
    promptshap_json_string(f, g->text);
    fputs(",\n  \"messages\": [", f);
    for (int k = 0; k < g->n_messages; k++) {
        const promptshap_message * m = &g->messages[k];
        fputs(k ? ",\n    {\"role\": " : "\n    {\"role\": ", f);
        promptshap_json_string(f, m->role);
        fputs(", \"channel\": ", f);
        if (m->channel) {
            promptshap_json_string(f, m->channel);
        } else {
            fputs("null", f);
        }
        fputs(", \"recipient\": ", f);
        if (m->recipient) {
            promptshap_json_string(f, m->recipient);
        } else {
            fputs("null", f);
        }
        fputs(", \"constrain\": ", f);
        if (m->constrain) {
            promptshap_json_string(f, m->constrain);
        } else {
            fputs("null", f);
        }
        fprintf(f, ", \"token_begin\": %d, \"token_end\": %d, \"complete\": %s, \"text\": ", m->token_begin,
                m->token_end, m->complete ? "true" : "false");
        promptshap_json_string(f, m->text);
        fputc('}', f);
    }
    fputs(g->n_messages ? "\n  ],\n  \"problems\": [" : "],\n  \"problems\": [", f);
    for (int k = 0; k < g->n_problems; k++) {
        fputs(k ? ",\n    " : "\n    ", f);
        promptshap_json_string(f, g->problems[k]);
    }
    fputs(g->n_problems ? "\n  ]\n}\n" : "]\n}\n", f);
}

int run_generate(struct cli * c) {
    bool json_stdout = c->json && strcmp(c->json, "-") == 0;
    char * prompt = NULL;
    char * target = NULL;
    size_t prompt_len = 0, target_len = 0;
    if (!read_inputs(c, &prompt, &prompt_len, &target, &target_len)) {
        return EXIT_RUNTIME;
    }
    output_file json_out;
    if (c->json && !json_stdout && !output_prepare(&json_out, c->json)) {
        free(prompt);
        return EXIT_RUNTIME;
    }
    promptshap_error err;
    promptshap_model * model = NULL;
    if (promptshap_model_load(c->model, &c->mp, &model, &err) != PROMPTSHAP_OK) {
        runtime_error("%s", err.message);
        free(prompt);
        return EXIT_RUNTIME;
    }
    catch_signals();
    c->ep.score.should_stop = should_stop;
    promptshap_generation * g = NULL;
    int rc = 0;
    if (promptshap_generate_full(model, prompt, prompt_len, &c->ep.score, &c->gp, &g, &err) != PROMPTSHAP_OK) {
        runtime_error("generation failed: %s", err.message);
        rc = EXIT_RUNTIME;
    } else {
        if (!json_stdout) {
            print_generation(g, c);
        }
        if (json_stdout) {
            write_generation_json(stdout, c, prompt, g);
        } else if (c->json) {
            if (!output_open(&json_out)) {
                rc = EXIT_RUNTIME;
            } else {
                write_generation_json(json_out.f, c, prompt, g);
                if (!output_finish(&json_out)) {
                    rc = EXIT_RUNTIME;
                }
            }
        }
    }
    promptshap_generation_free(g);
    promptshap_model_free(model);
    free(prompt);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        runtime_error("writing to stdout failed: %s", strerror(errno));
        rc = EXIT_RUNTIME;
    }
    return rc;
}
