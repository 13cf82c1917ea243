/* SPDX-License-Identifier: MIT
 *
 * The SVG, HTML and CSV writers on results built by hand (no model): the
 * color scale's sign and symmetry, escaping of a hostile prompt, panel
 * splitting, CSV quoting, the writers' errors, and the size of the report
 * for a 100-unit prompt and a 2,000-token target. With a directory
 * argument it also leaves its files there for the browser test.
 */
#include "check.h"
#include "views.h"

#include <string.h>

/* A prompt with markup, quotes, an ampersand, emoji, right-to-left text
 * and a 300-character word. */
static char hostile_prompt[1024];

static void make_hostile_prompt(void) {
    char word[301];
    for (int k = 0; k < 300; k++) {
        word[k] = (char)('a' + k % 26);
    }
    word[300] = '\0';
    snprintf(hostile_prompt, sizeof(hostile_prompt),
             "<script>alert(1)</script> <b>bold</b> \"double\" 'single' a&b \xf0\x9f\x98\x80 "
             "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d %s </script><!--",
             word);
}

/* Counts the occurrences of needle in s. */
static int count(const char * s, const char * needle) {
    int n = 0;
    for (const char * p = strstr(s, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/* Builds a result: the prompt's words as units, the target's words (with
 * the whitespace before each) as tokens, a matrix whose signs vary, and
 * the sentences aggregated as promptshap_explain does. */
static promptshap_result * make_result(const char * prompt, const char * target, double sign) {
    promptshap_result * r = calloc(1, sizeof(*r));
    r->prompt = strdup(prompt);
    r->target = strdup(target);
    promptshap_span * spans = NULL;
    size_t n = 0;
    promptshap_split_words(prompt, strlen(prompt), &spans, &n);
    r->units = spans;
    r->n_units = (int)n;
    promptshap_split_words(target, strlen(target), &spans, &n);
    r->n_target_tokens = (int)n;
    r->target_tokens = calloc(n, sizeof(promptshap_target_token));
    for (size_t t = 0; t < n; t++) {
        size_t start = t > 0 ? spans[t - 1].end : 0;
        promptshap_target_token * tok = &r->target_tokens[t];
        tok->span.start = start;
        tok->span.end = spans[t].end;
        tok->text = strndup(target + start, spans[t].end - start);
        tok->id = (int32_t)t;
    }
    free(spans);

    const int U = r->n_units, T = r->n_target_tokens;
    promptshap_estimate * e = calloc(1, sizeof(*e));
    e->method = PROMPTSHAP_METHOD_EXACT;
    e->n_players = U;
    e->n_outputs = T;
    e->values = calloc((size_t)U, sizeof(double));
    e->std_error = calloc((size_t)U, sizeof(double));
    e->matrix = calloc((size_t)U * T, sizeof(double));
    e->v_full = calloc((size_t)T, sizeof(double));
    e->v_empty = calloc((size_t)T, sizeof(double));
    for (int i = 0; i < U; i++) {
        for (int t = 0; t < T; t++) {
            double v = sign * sin(1.0 + i * 0.7 + t * 0.31) * (1.0 + i % 3);
            e->matrix[(size_t)i * T + t] = v;
            e->values[i] += v;
        }
    }
    e->n_evaluations = 1L << (U < 20 ? U : 20);
    r->estimate = e;

    /* sentences: a token belongs to the last sentence starting at or before its end */
    promptshap_split_sentences(target, strlen(target), &spans, &n);
    r->n_sentences = (int)n;
    r->sentences = calloc(n, sizeof(promptshap_sentence));
    for (size_t k = 0; k < n; k++) {
        promptshap_sentence * s = &r->sentences[k];
        s->span = spans[k];
        s->sum = calloc((size_t)U, sizeof(double));
        s->sum_abs = calloc((size_t)U, sizeof(double));
        s->mean_abs = calloc((size_t)U, sizeof(double));
        s->token_begin = -1;
        for (int t = 0; t < T; t++) {
            size_t end = r->target_tokens[t].span.end;
            bool mine = end > spans[k].start && (k + 1 == n || end <= spans[k + 1].start);
            if (!mine) {
                continue;
            }
            s->token_begin = s->token_begin < 0 ? t : s->token_begin;
            s->token_end = t + 1;
            for (int i = 0; i < U; i++) {
                s->sum[i] += e->matrix[(size_t)i * T + t];
                s->sum_abs[i] += fabs(e->matrix[(size_t)i * T + t]);
            }
        }
        for (int i = 0; i < U && s->token_end > s->token_begin; i++) {
            s->mean_abs[i] = s->sum_abs[i] / (s->token_end - s->token_begin);
        }
    }
    free(spans);
    return r;
}

static void free_sentences_of(promptshap_result * r) {
    for (int k = 0; k < r->n_sentences; k++) {
        free(r->sentences[k].sum);
        free(r->sentences[k].sum_abs);
        free(r->sentences[k].mean_abs);
    }
    free(r->sentences);
    r->sentences = NULL;
    r->n_sentences = 0;
}

/* Runs a writer into a malloc'ed string. */
typedef enum promptshap_status (*writer_fn)(const promptshap_result * r, int arg, FILE * f);

static char * render(writer_fn fn, const promptshap_result * r, int arg, enum promptshap_status * st) {
    /* static storage: gcc 12 takes a pointer filled through open_memstream
     * for a pointer into this frame and warns at every use of the result */
    static char * buf;
    static size_t len;
    buf = NULL;
    len = 0;
    FILE * f = open_memstream(&buf, &len);
    *st = fn(r, arg, f);
    fclose(f);
    return buf;
}

static enum promptshap_status svg_units(const promptshap_result * r, int arg, FILE * f) {
    (void)arg;
    return promptshap_result_write_svg_units(r, f);
}

static enum promptshap_status svg_matrix(const promptshap_result * r, int panel, FILE * f) {
    return promptshap_result_write_svg_matrix(r, panel, f);
}

static enum promptshap_status svg_sentences(const promptshap_result * r, int agg, FILE * f) {
    return promptshap_result_write_svg_sentences(r, (enum promptshap_sentence_agg)agg, f);
}

static enum promptshap_status svg_interactions(const promptshap_result * r, int arg, FILE * f) {
    (void)arg;
    return promptshap_result_write_svg_interactions(r, f);
}

static enum promptshap_status html(const promptshap_result * r, int arg, FILE * f) {
    (void)arg;
    struct promptshap_json_meta meta = {.model = "models/<tiny>&.gguf", .seed = 7, .include_timing = true};
    return promptshap_result_write_html(r, &meta, f);
}

static enum promptshap_status csv(const promptshap_result * r, int arg, FILE * f) {
    (void)arg;
    return promptshap_result_write_csv(r, f);
}

/*
 * Tests
 */

static void test_color_scale(void) {
    ps_rgb zero = ps_view_color(0.0, 1.0);
    CHECK(zero.r == ps_view_zero.r);
    CHECK(zero.g == ps_view_zero.g);
    CHECK(zero.b == ps_view_zero.b);
    ps_rgb top = ps_view_color(5.0, 1.0);
    CHECK(top.r == ps_view_positive.r);
    CHECK(top.b == ps_view_positive.b);
    ps_rgb bottom = ps_view_color(-5.0, 1.0);
    CHECK(bottom.r == ps_view_negative.r);
    CHECK(bottom.b == ps_view_negative.b);
    ps_rgb nan_color = ps_view_color(NAN, 1.0);
    CHECK(nan_color.r == ps_view_missing.r);

    /* the hue follows the sign: orange (red over blue) above zero, blue below */
    const double xs[] = {0.05, 0.3, 0.9, 2.5};
    for (size_t k = 0; k < sizeof(xs) / sizeof(xs[0]); k++) {
        ps_rgb pos = ps_view_color(xs[k], 2.5);
        ps_rgb neg = ps_view_color(-xs[k], 2.5);
        CHECK(pos.r > pos.b);
        CHECK(neg.b > neg.r);
        /* symmetric: the same distance from the zero color's lightness scale */
        int dp = abs(pos.g - ps_view_zero.g), dn = abs(neg.g - ps_view_zero.g);
        CHECK(dp > 0);
    CHECK(dn > 0);
    }
    /* darker with size */
    CHECK(ps_view_color(0.2, 1.0).b > ps_view_color(0.8, 1.0).b);
    CHECK(ps_view_scale((const double[]){-3.0, 2.0, NAN}, 3) == 3.0);
    CHECK(ps_view_scale((const double[]){0.0, 0.0}, 2) == 1.0);
    /* rounding noise, as exact Shapley leaves when v(N) equals v(empty), gets no color */
    CHECK(ps_view_scale((const double[]){-8.9e-16, 2.7e-15}, 2) == 1.0);
    CHECK(ps_view_scale((const double[]){-2e-9, 1e-12}, 2) == 2e-9);
}

static void test_hostile_svg(void) {
    promptshap_result * r = make_result(hostile_prompt, "Once upon a time. There was a <cat> & a dog.", 1.0);
    enum promptshap_status st;
    char * s = render(svg_units, r, 0, &st);
    CHECK(st == PROMPTSHAP_OK);
    CHECK(strstr(s, "<script") == NULL);
    CHECK(strstr(s, "<b>") == NULL);
    CHECK(strstr(s, "<!--") == NULL);
    CHECK(strstr(s, "&lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
    CHECK(strstr(s, "a&amp;b") != NULL);
    CHECK(strstr(s, "&quot;double&quot;") != NULL);
    CHECK(strstr(s, "\xf0\x9f\x98\x80") != NULL);
    CHECK(strstr(s, "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d") != NULL);
    /* the long word: cut with an ellipsis in the label, whole in the title */
    CHECK(strstr(s, "abcdefghijklmnopqrstuvwx\xe2\x80\xa6<title>abcdefghijklmnopqrstuvwxyzabcd") != NULL);
    CHECK(strstr(s, "opqrstuvwxyzabcdefghijklmn</title>") != NULL);
    CHECK(count(s, "class=\"unit\"") == r->n_units);
    free(s);

    s = render(svg_matrix, r, 0, &st);
    CHECK(st == PROMPTSHAP_OK);
    CHECK(strstr(s, "<script") == NULL);
    CHECK(strstr(s, "&lt;cat&gt;") != NULL);
    /* whitespace of a token is visible: " upon" shows as a middle dot */
    CHECK(strstr(s, "\xc2\xb7upon") != NULL);
    CHECK(count(s, "class=\"cell\"") == r->n_units * r->n_target_tokens);
    free(s);
    promptshap_result_free(r);
}

static void test_hostile_html(void) {
    promptshap_result * r = make_result(hostile_prompt, "Once upon a time. There was a <cat> & a dog.", 1.0);
    enum promptshap_status st;
    char * s = render(html, r, 0, &st);
    CHECK(st == PROMPTSHAP_OK);
    CHECK(count(s, "<script") == 2);
    CHECK(count(s, "</script>") == 2);
    CHECK(strstr(s, "<b>bold") == NULL);
    CHECK(strstr(s, "&lt;b&gt;bold&lt;/b&gt;") != NULL);
    CHECK(strstr(s, "models/&lt;tiny&gt;&amp;.gguf") != NULL);
    CHECK(count(s, "class=\"unit\"") == r->n_units);
    CHECK(count(s, "class=\"tok\"") == r->n_target_tokens);
    CHECK(count(s, "<tr class=\"sentence\">") == r->n_sentences);
    CHECK(strstr(s, "default-src 'none'") != NULL);
    CHECK(strstr(s, "http://") == NULL);
    CHECK(strstr(s, "https://") == NULL);
    /* the data element contains no '<' at all, so no text can close it */
    const char * data = strstr(s, "id=\"promptshap-data\">");
    CHECK(data != NULL);
    if (data) {
        const char * end = strstr(data, "</script>");
        const char * lt = strchr(data + strlen("id=\"promptshap-data\">"), '<');
        CHECK(end != NULL);
    CHECK(lt == end);
    }
    free(s);
    promptshap_result_free(r);
}

static void test_panels(void) {
    /* 85 tokens: panels of 40, 40 and 5 */
    char target[1024] = "";
    for (int t = 0; t < 85; t++) {
        strcat(target, t ? " w" : "w");
        char num[8];
        snprintf(num, sizeof(num), "%d", t);
        strcat(target, num);
    }
    promptshap_result * r = make_result("one two three", target, 1.0);
    CHECK(r->n_target_tokens == 85);
    CHECK(promptshap_svg_n_panels(r) == 3);
    enum promptshap_status st;
    char * first = render(svg_matrix, r, 0, &st);
    CHECK(st == PROMPTSHAP_OK);
    char * last = render(svg_matrix, r, 2, &st);
    CHECK(st == PROMPTSHAP_OK);
    CHECK(count(first, "class=\"cell\"") == 3 * 40);
    CHECK(count(last, "class=\"cell\"") == 3 * 5);
    CHECK(strstr(last, "tokens 80-84 of 85, panel 3 of 3") != NULL);
    /* one scale for every panel: the color bars' labels agree */
    const char * bar_first = strstr(first, "<g class=\"color-bar\"");
    const char * bar_last = strstr(last, "<g class=\"color-bar\"");
    CHECK(bar_first != NULL);
    CHECK(bar_last != NULL);
    if (bar_first && bar_last) {
        CHECK(strcmp(strchr(bar_first, '>'), strchr(bar_last, '>')) == 0);
    }
    free(first);
    free(last);
    free(render(svg_matrix, r, 3, &st));
    CHECK(st == PROMPTSHAP_ERR_INVALID_ARGUMENT);
    free(render(svg_matrix, r, -1, &st));
    CHECK(st == PROMPTSHAP_ERR_INVALID_ARGUMENT);
    promptshap_result_free(r);
}

static void test_sentences_and_interactions(void) {
    promptshap_result * r = make_result("tell me a story", "A cat sat. It was warm! The end.", 1.0);
    CHECK(r->n_sentences == 3);
    const char * titles[] = {"(sum over", "(sum of absolute values over", "(mean of absolute values over"};
    for (int agg = 0; agg < 3; agg++) {
        enum promptshap_status st;
        char * s = render(svg_sentences, r, agg, &st);
        CHECK(st == PROMPTSHAP_OK);
        CHECK(strstr(s, titles[agg]) != NULL);
        CHECK(count(s, "class=\"cell\"") == r->n_units * 3);
        free(s);
    }
    enum promptshap_status st;
    free(render(svg_sentences, r, 3, &st));
    CHECK(st == PROMPTSHAP_ERR_INVALID_ARGUMENT);
    free(render(svg_interactions, r, 0, &st));
    CHECK(st == PROMPTSHAP_ERR_INVALID_ARGUMENT);

    r->estimate->interactions = calloc((size_t)r->n_units * r->n_units, sizeof(double));
    r->estimate->interactions[1] = r->estimate->interactions[r->n_units] = -0.25;
    char * s = render(svg_interactions, r, 0, &st);
    CHECK(st == PROMPTSHAP_OK);
    CHECK(count(s, "class=\"cell\"") == r->n_units * r->n_units);
    free(s);
    s = render(html, r, 0, &st);
    CHECK(st == PROMPTSHAP_OK);
    CHECK(strstr(s, "id=\"interactions\"") != NULL);
    free(s);

    /* a result without sentences */
    free_sentences_of(r);
    free(render(svg_sentences, r, 0, &st));
    CHECK(st == PROMPTSHAP_ERR_INVALID_ARGUMENT);
    s = render(html, r, 0, &st);
    CHECK(st == PROMPTSHAP_OK);
    CHECK(strstr(s, "id=\"sentences\"") == NULL);
    free(s);
    promptshap_result_free(r);
}

/* Splits one CSV record at *p (RFC 4180) into fields; returns the count. */
static int csv_record(const char ** p, char fields[][512], int max_fields) {
    int n = 0;
    const char * s = *p;
    while (n < max_fields) {
        size_t k = 0;
        if (*s == '"') {
            s++;
            while (*s && !(s[0] == '"' && s[1] != '"')) {
                if (s[0] == '"') {
                    s++;
                }
                if (k < 511) {
                    fields[n][k++] = *s;
                }
                s++;
            }
            s++;
        } else {
            while (*s && *s != ',' && *s != '\r') {
                if (k < 511) {
                    fields[n][k++] = *s;
                }
                s++;
            }
        }
        fields[n++][k] = '\0';
        if (*s == ',') {
            s++;
            continue;
        }
        break;
    }
    if (s[0] == '\r' && s[1] == '\n') {
        s += 2;
    }
    *p = s;
    return n;
}

static void test_csv(void) {
    promptshap_result * r = make_result("say \"hi\",then go\xe2\x80\xa6", "Hello, \"world\"\nbye", 1.0);
    /* a token whose bytes end inside a character */
    free(r->target_tokens[0].text);
    r->target_tokens[0].text = strdup("Hel\xe2\x80");
    enum promptshap_status st;
    char * s = render(csv, r, 0, &st);
    CHECK(st == PROMPTSHAP_OK);
    CHECK(strncmp(s, "unit,unit_start,unit_end,token_index,token_text,value\r\n", 55) == 0);
    const char * p = s;
    char fields[8][512];
    CHECK(csv_record(&p, fields, 8) == 6);
    int rows = 0;
    while (*p) {
        int n = csv_record(&p, fields, 8);
        CHECK(n == 6);
        int i = rows / r->n_target_tokens, t = rows % r->n_target_tokens;
        promptshap_span u = r->units[i];
        CHECK(strlen(fields[0]) == u.end - u.start);
        if (strlen(fields[0]) == u.end - u.start) {
            CHECK(memcmp(fields[0], r->prompt + u.start, u.end - u.start) == 0);
        }
        CHECK((size_t)atol(fields[1]) == u.start);
        CHECK((size_t)atol(fields[2]) == u.end);
        CHECK(atoi(fields[3]) == t);
        if (t == 0) {
            CHECK(strcmp(fields[4], "Hel\xef\xbf\xbd\xef\xbf\xbd") == 0);
        } else {
            CHECK(strcmp(fields[4], r->target_tokens[t].text) == 0);
        }
        CHECK(strtod(fields[5], NULL) == r->estimate->matrix[(size_t)i * r->n_target_tokens + t]);
        rows++;
    }
    CHECK(rows == r->n_units * r->n_target_tokens);
    CHECK(strstr(s, "\r\n\"\"\"hi\"\",then\",") != NULL);
    CHECK(strstr(s, ",\" \"\"world\"\"\",") != NULL);
    CHECK(strstr(s, ",\"\nbye\",") != NULL);
    free(s);
    promptshap_result_free(r);
}

static void test_errors(void) {
    promptshap_result * r = make_result("a b", "c d", 1.0);
    promptshap_estimate * e = r->estimate;
    r->estimate = NULL; /* a result of promptshap_logprob */
    enum promptshap_status st;
    writer_fn all[] = {svg_units, svg_matrix, svg_sentences, svg_interactions, html, csv};
    for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
        free(render(all[k], r, 0, &st));
        CHECK(st == PROMPTSHAP_ERR_INVALID_ARGUMENT);
    }
    r->estimate = e;

    /* a device that accepts no bytes */
    FILE * full = fopen("/dev/full", "w");
    if (full) {
        setvbuf(full, NULL, _IONBF, 0);
        CHECK(promptshap_result_write_svg_units(r, full) == PROMPTSHAP_ERR_IO);
        CHECK(promptshap_result_write_csv(r, full) == PROMPTSHAP_ERR_IO);
        fclose(full);
    }
    CHECK(strcmp(promptshap_sentence_agg_name(PROMPTSHAP_SENTENCE_MEAN_ABS), "mean of absolute values") == 0);
    CHECK(promptshap_sentence_agg_name((enum promptshap_sentence_agg)9) == NULL);
    promptshap_result_free(r);
}

/* A 100-unit prompt and a 2,000-token target. */
static promptshap_result * make_big(void) {
    static char prompt[2048], target[40000];
    prompt[0] = target[0] = '\0';
    for (int i = 0; i < 100; i++) {
        char w[16];
        snprintf(w, sizeof(w), i ? " p%d" : "p%d", i);
        strcat(prompt, w);
    }
    size_t n = 0;
    for (int t = 0; t < 2000; t++) {
        /* words "t0 t1 ..." with a period closing every 15th */
        const char * format = " t%d";
        if (t == 0) {
            format = "t%d";
        } else if (t % 15 == 14) {
            format = " t%d.";
        }
        n += (size_t)snprintf(target + n, sizeof(target) - n, format, t);
    }
    return make_result(prompt, target, 1.0);
}

static void test_big_report(void) {
    promptshap_result * r = make_big();
    CHECK(r->n_units == 100);
    CHECK(r->n_target_tokens == 2000);
    enum promptshap_status st;
    char * s = render(html, r, 0, &st);
    CHECK(st == PROMPTSHAP_OK);
    /* the matrix goes as data, not as 200,000 elements */
    CHECK(strlen(s) < 4u * 1024 * 1024);
    CHECK(count(s, "class=\"tok\"") == 2000);
    free(s);
    CHECK(promptshap_svg_n_panels(r) == 50);
    promptshap_result_free(r);
}

/* Writes one file for the browser test. */
static void keep(const char * dir, const char * name, writer_fn fn, const promptshap_result * r, int arg) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE * f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        CHECK(fn(r, arg, f) == PROMPTSHAP_OK);
        CHECK(fclose(f) == 0);
    }
}

static void write_fixtures(const char * dir) {
    promptshap_result * r = make_result(hostile_prompt, "Once upon a time. There was a <cat> & a dog.", 1.0);
    keep(dir, "hostile.html", html, r, 0);
    keep(dir, "hostile-units.svg", svg_units, r, 0);
    keep(dir, "hostile-matrix-1.svg", svg_matrix, r, 0);
    keep(dir, "hostile-sentences-sum.svg", svg_sentences, r, 0);
    promptshap_result_free(r);

    /* the same result with every sign flipped */
    r = make_result("alpha beta gamma", "one two three four", 1.0);
    keep(dir, "flip-plus.html", html, r, 0);
    keep(dir, "flip-plus-units.svg", svg_units, r, 0);
    promptshap_result_free(r);
    r = make_result("alpha beta gamma", "one two three four", -1.0);
    keep(dir, "flip-minus.html", html, r, 0);
    keep(dir, "flip-minus-units.svg", svg_units, r, 0);
    promptshap_result_free(r);

    r = make_big();
    keep(dir, "big.html", html, r, 0);
    promptshap_result_free(r);
}

int main(int argc, char ** argv) {
    make_hostile_prompt();
    test_color_scale();
    test_hostile_svg();
    test_hostile_html();
    test_panels();
    test_sentences_and_interactions();
    test_csv();
    test_errors();
    test_big_report();
    if (argc > 1) {
        write_fixtures(argv[1]);
    }
    return CHECK_REPORT();
}
