/* SPDX-License-Identifier: MIT
 *
 * JSON output of an explanation, as documented in docs/json.md. Numbers are
 * written with 17 significant digits so they read back to the same double;
 * a non-finite number is written as null.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* Writes bytes with JSON string escapes, without the quotes. */
static void put_escaped(FILE * f, const char * s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
            case '"':  fputs("\\\"", f); break;
            case '\\': fputs("\\\\", f); break;
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            case '\b': fputs("\\b", f); break;
            case '\f': fputs("\\f", f); break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    fprintf(f, "\\u%04x", c);
                } else {
                    fputc(c, f);
                }
        }
    }
}

static void put_string(FILE * f, const char * s, size_t n) {
    fputc('"', f);
    put_escaped(f, s, n);
    fputc('"', f);
}

/* Writes bytes that may not be valid UTF-8 (a token's bytes can end inside
 * a character, a file path is any bytes). Each byte that is not part of a
 * valid character becomes U+FFFD, so the output stays valid JSON. */
static void put_token_text(FILE * f, const char * s) {
    size_t n = strlen(s);
    size_t i = 0;
    fputc('"', f);
    while (i < n) {
        size_t bad = 0;
        if (promptshap_utf8_valid(s + i, n - i, &bad)) {
            bad = n - i;
        }
        put_escaped(f, s + i, bad);
        i += bad;
        if (i < n) {
            fputs("\\ufffd", f);
            i++;
        }
    }
    fputc('"', f);
}

static void put_number(FILE * f, double x) {
    if (isfinite(x)) {
        fprintf(f, "%.17g", x);
    } else {
        fputs("null", f);
    }
}

static void put_array(FILE * f, const double * v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        if (i > 0) {
            fputs(", ", f);
        }
        put_number(f, v[i]);
    }
    fputc(']', f);
}

static void put_target_tokens(const promptshap_result * r, FILE * f) {
    fputs(",\n  \"target_tokens\": [", f);
    for (int t = 0; t < r->n_target_tokens; t++) {
        const promptshap_target_token * tok = &r->target_tokens[t];
        fputs(t > 0 ? ",\n    {\"text\": " : "\n    {\"text\": ", f);
        put_token_text(f, tok->text);
        fprintf(f, ", \"id\": %d, \"start\": %zu, \"end\": %zu, \"logprob\": ", tok->id, tok->span.start,
                tok->span.end);
        put_number(f, tok->logprob);
        fputc('}', f);
    }
    fputs("\n  ]", f);
}

/* The engine's work: token counts always, its seconds with the timing. */
static void put_engine(const promptshap_result * r, const struct promptshap_json_meta * meta, FILE * f) {
    const struct promptshap_engine_stats * s = &r->engine;
    fprintf(f,
            ",\n  \"engine\": {\"sequences\": %lld, \"tokens_total\": %lld, \"tokens_unique\": %lld, "
            "\"tokens_decoded\": %lld, \"rows\": %lld, \"decodes\": %lld",
            s->n_sequences, s->n_tokens_total, s->n_tokens_unique, s->n_tokens_decoded, s->n_rows, s->n_decodes);
    if (!meta || meta->include_timing) {
        fputs(", \"decode_seconds\": ", f);
        put_number(f, s->decode_seconds);
        fputs(", \"softmax_seconds\": ", f);
        put_number(f, s->softmax_seconds);
    }
    fputc('}', f);
}

/* The short form of a promptshap_logprob result. */
static enum promptshap_status write_logprob_tail(const promptshap_result * r, const struct promptshap_json_meta * meta,
                                                 FILE * f) {
    double total = 0.0;
    for (int t = 0; t < r->n_target_tokens; t++) {
        total += r->target_tokens[t].logprob;
    }
    put_target_tokens(r, f);
    fputs(",\n  \"total_logprob\": ", f);
    put_number(f, total);
    put_engine(r, meta, f);
    fputs("\n}\n", f);
    return ferror(f) ? PROMPTSHAP_ERR_IO : PROMPTSHAP_OK;
}

enum promptshap_status promptshap_result_write_json(const promptshap_result * r, const struct promptshap_json_meta * meta,
                                                    FILE * f) {
    const promptshap_estimate * e = r->estimate;
    const int U = r->n_units;
    const int T = r->n_target_tokens;

    /* run facts */
    fputs("{\n  \"version\": ", f);
    put_string(f, PROMPTSHAP_VERSION, strlen(PROMPTSHAP_VERSION));
    fputs(",\n  \"llama_release\": ", f);
    put_string(f, PROMPTSHAP_LLAMA_RELEASE, strlen(PROMPTSHAP_LLAMA_RELEASE));
    fputs(",\n  \"model\": ", f);
    /* a path is bytes, not necessarily UTF-8 */
    put_token_text(f, meta && meta->model ? meta->model : "");
    fprintf(f, ",\n  \"chat\": \"%s\"", promptshap_chat_name(r->chat));
    fprintf(f, ",\n  \"unit_kind\": \"%s\"", promptshap_unit_kind_name(r->unit_kind));
    fputs(",\n  \"prompt\": ", f);
    put_string(f, r->prompt, strlen(r->prompt));
    fputs(",\n  \"target\": ", f);
    put_string(f, r->target, strlen(r->target));
    if (!e) {
        return write_logprob_tail(r, meta, f);
    }
    fprintf(f, ",\n  \"method\": \"%s\"", promptshap_method_name(e->method));
    fprintf(f, ",\n  \"requested_method\": \"%s\"", promptshap_method_name(e->requested));
    fprintf(f, ",\n  \"index\": \"%s\"", promptshap_method_index(e->method));
    fprintf(f, ",\n  \"seed\": %llu", (unsigned long long)(meta ? meta->seed : 0));
    fprintf(f, ",\n  \"samples\": %d", e->n_samples);

    /* units */
    fputs(",\n  \"units\": [", f);
    for (int i = 0; i < U; i++) {
        fputs(i > 0 ? ",\n    {\"text\": " : "\n    {\"text\": ", f);
        put_string(f, r->prompt + r->units[i].start, r->units[i].end - r->units[i].start);
        fprintf(f, ", \"start\": %zu, \"end\": %zu, \"value\": ", r->units[i].start, r->units[i].end);
        put_number(f, e->values[i]);
        fputs(", \"stderr\": ", f);
        put_number(f, e->std_error[i]);
        fputc('}', f);
    }
    fputs("\n  ]", f);

    /* totals */
    fputs(",\n  \"v_full\": ", f);
    put_number(f, e->v_full_total);
    fputs(",\n  \"v_empty\": ", f);
    put_number(f, e->v_empty_total);
    fputs(",\n  \"efficiency_gap\": ", f);
    put_number(f, e->efficiency_gap);
    fprintf(f, ",\n  \"evaluations\": %ld", e->n_evaluations);
    fprintf(f, ",\n  \"budget\": %ld", e->budget);
    fputs(",\n  \"se_ratio\": ", f);
    put_number(f, e->se_ratio);
    fprintf(f, ",\n  \"stopped_early\": %s", e->stopped_early ? "true" : "false");
    if (!meta || meta->include_timing) {
        fputs(",\n  \"seconds\": ", f);
        put_number(f, r->seconds);
    }
    put_engine(r, meta, f);

    /* target tokens and the matrix */
    put_target_tokens(r, f);
    fputs(",\n  \"v_empty_tokens\": ", f);
    put_array(f, e->v_empty, T);
    fputs(",\n  \"matrix\": [", f);
    for (int i = 0; i < U; i++) {
        fputs(i > 0 ? ",\n    " : "\n    ", f);
        put_array(f, e->matrix + (size_t)i * T, T);
    }
    fputs("\n  ]", f);
    if (e->interactions) {
        fputs(",\n  \"interactions\": [", f);
        for (int i = 0; i < U; i++) {
            fputs(i > 0 ? ",\n    " : "\n    ", f);
            put_array(f, e->interactions + (size_t)i * U, U);
        }
        fputs("\n  ]", f);
    }

    /* sentences */
    if (r->sentences) {
        fputs(",\n  \"sentences\": [", f);
        for (int k = 0; k < r->n_sentences; k++) {
            const promptshap_sentence * s = &r->sentences[k];
            fputs(k > 0 ? ",\n    {\"text\": " : "\n    {\"text\": ", f);
            put_string(f, r->target + s->span.start, s->span.end - s->span.start);
            fprintf(f, ", \"start\": %zu, \"end\": %zu, \"token_begin\": %d, \"token_end\": %d",
                    s->span.start, s->span.end, s->token_begin, s->token_end);
            fputs(",\n     \"sum\": ", f);
            put_array(f, s->sum, U);
            fputs(",\n     \"sum_abs\": ", f);
            put_array(f, s->sum_abs, U);
            fputs(",\n     \"mean_abs\": ", f);
            put_array(f, s->mean_abs, U);
            fputc('}', f);
        }
        fputs("\n  ]", f);
    }
    fputs("\n}\n", f);
    return ferror(f) ? PROMPTSHAP_ERR_IO : PROMPTSHAP_OK;
}

void promptshap_json_string(FILE * f, const char * s) {
    put_token_text(f, s ? s : "");
}

void promptshap_json_number(FILE * f, double x) {
    put_number(f, x);
}
