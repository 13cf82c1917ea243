/* SPDX-License-Identifier: MIT
 *
 * Fuzzes the result writers (JSON, CSV, the SVG figures and the HTML
 * report) on results built from the fuzz bytes. A result has prompt and
 * target bytes, made valid UTF-8 or not, unit and token spans, token texts
 * with any bytes, and values that are NaN, infinite, huge or subnormal. It
 * has up to 90 target tokens (three SVG panels), and may have sentences
 * and interactions.
 *
 * The results keep the invariants promptshap_explain guarantees and the
 * writers rely on: no NUL byte in the prompt or target, spans in order
 * and inside their text, unit and sentence spans on character boundaries,
 * sentence token ranges inside [0, n_target_tokens].
 *
 * Checks on the output:
 *   - the JSON parses;
 *   - with a valid UTF-8 prompt and target, every output is valid UTF-8;
 *   - SVG and HTML hold no control character that XML forbids;
 *   - the HTML data element is JSON that no text can close early;
 *   - the CSV has one record per unit and token, after its header.
 */
#include "fuzz.h"

#include <ctype.h>

#define MAX_UNITS 16
#define MAX_TOKENS 90
#define MAX_SENTENCES 8

/*
 * Building a result
 */

/* n bytes of the input as a NUL-terminated string without NUL bytes; with
 * make_valid each byte that breaks UTF-8 becomes '?'. */
static char * take_text(fuzz_reader * in, size_t max, bool make_valid, size_t * len) {
    size_t n = 0;
    const uint8_t * src = fuzz_take(in, max, &n);
    char * s = malloc(n + 1);
    FUZZ_ASSERT(s);
    for (size_t i = 0; i < n; i++) {
        s[i] = src[i] ? (char)src[i] : ' ';
    }
    s[n] = '\0';
    size_t bad = 0;
    while (make_valid && !promptshap_utf8_valid(s, n, &bad)) {
        s[bad] = '?';
    }
    *len = n;
    return s;
}

static int compare_size(const void * a, const void * b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Fills n ordered, non-overlapping spans inside text[0, len), possibly
 * empty. Units and sentences of a real result start and end at character
 * boundaries, because the splitters cut at ASCII whitespace and token units
 * are merged into whole characters. Target tokens may split a character. */
static void make_spans(fuzz_reader * in, const char * text, size_t len, bool whole_chars, promptshap_span * spans,
                       size_t n) {
    size_t * cuts = malloc((2 * n + 1) * sizeof(size_t));
    FUZZ_ASSERT(cuts);
    for (size_t k = 0; k < 2 * n; k++) {
        cuts[k] = fuzz_range(in, 0, len);
        while (whole_chars && cuts[k] < len && ((unsigned char)text[cuts[k]] & 0xc0) == 0x80) {
            cuts[k]++;
        }
    }
    qsort(cuts, 2 * n, sizeof(size_t), compare_size);
    for (size_t k = 0; k < n; k++) {
        spans[k].start = cuts[2 * k];
        spans[k].end = cuts[2 * k + 1];
    }
    free(cuts);
}

static double * take_doubles(fuzz_reader * in, size_t n, bool pattern) {
    double * v = calloc(n + 1, sizeof(double));
    FUZZ_ASSERT(v);
    /* a smooth pattern under one fuzzed scale, or one fuzzed value each */
    const double scale = pattern ? fuzz_double(in) : 0.0;
    for (size_t k = 0; k < n; k++) {
        v[k] = pattern ? scale * sin(1.0 + 0.7 * (double)k) : fuzz_double(in);
    }
    return v;
}

static promptshap_result * make_result(fuzz_reader * in) {
    const uint8_t flags = fuzz_u8(in);
    const bool valid_utf8 = flags & 1;
    const bool pattern = flags & 2;
    const bool with_estimate = (flags & 12) != 12; /* a logprob result in one case of four */
    const bool with_sentences = flags & 16;
    const bool with_interactions = flags & 32;
    promptshap_result * r = calloc(1, sizeof(*r));
    FUZZ_ASSERT(r);
    r->chat = (enum promptshap_chat)fuzz_range(in, PROMPTSHAP_CHAT_AUTO, PROMPTSHAP_CHAT_HARMONY);
    r->unit_kind = (enum promptshap_unit_kind)fuzz_range(in, PROMPTSHAP_UNITS_WORDS, PROMPTSHAP_UNITS_SENTENCES);
    r->seconds = fuzz_double(in);

    /* the prompt and its units */
    size_t prompt_len = 0, target_len = 0;
    r->prompt = take_text(in, fuzz_range(in, 0, 300), valid_utf8, &prompt_len);
    r->n_units = (int)fuzz_range(in, 1, MAX_UNITS);
    r->units = calloc((size_t)r->n_units, sizeof(promptshap_span));
    FUZZ_ASSERT(r->units);
    make_spans(in, r->prompt, prompt_len, true, r->units, (size_t)r->n_units);

    /* the target and its tokens: the span's bytes or any bytes */
    r->target = take_text(in, fuzz_range(in, 0, 400), valid_utf8, &target_len);
    const int T = (int)fuzz_range(in, 1, MAX_TOKENS);
    r->n_target_tokens = T;
    r->target_tokens = calloc((size_t)T, sizeof(promptshap_target_token));
    promptshap_span * spans = calloc((size_t)T, sizeof(promptshap_span));
    FUZZ_ASSERT(r->target_tokens && spans);
    make_spans(in, r->target, target_len, false, spans, (size_t)T);
    for (int t = 0; t < T; t++) {
        promptshap_target_token * tok = &r->target_tokens[t];
        tok->span = spans[t];
        tok->id = (int32_t)fuzz_u32(in);
        tok->logprob = fuzz_double(in);
        if (fuzz_u8(in) & 1) {
            size_t n = 0;
            tok->text = take_text(in, fuzz_range(in, 0, 8), false, &n);
        } else {
            tok->text = strndup(r->target + spans[t].start, spans[t].end - spans[t].start);
            FUZZ_ASSERT(tok->text);
        }
    }
    free(spans);
    if (!with_estimate) {
        return r;
    }

    /* the estimate */
    const size_t U = (size_t)r->n_units;
    promptshap_estimate * e = calloc(1, sizeof(*e));
    FUZZ_ASSERT(e);
    r->estimate = e;
    e->method = (enum promptshap_method)fuzz_range(in, PROMPTSHAP_METHOD_EXACT, PROMPTSHAP_METHOD_BANZHAF);
    e->requested = (enum promptshap_method)fuzz_range(in, PROMPTSHAP_METHOD_AUTO, PROMPTSHAP_METHOD_BANZHAF);
    e->note = fuzz_u8(in) & 1 ? "a note with <markup> & \"quotes\"" : NULL;
    e->n_players = r->n_units;
    e->n_outputs = T;
    e->n_samples = (int)fuzz_u32(in);
    e->n_evaluations = (long)(int32_t)fuzz_u32(in);
    e->budget = (long)(int32_t)fuzz_u32(in);
    e->stopped_early = fuzz_u8(in) & 1;
    e->se_ratio = fuzz_double(in);
    e->v_full_total = fuzz_double(in);
    e->v_empty_total = fuzz_double(in);
    e->efficiency_gap = fuzz_double(in);
    e->values = take_doubles(in, U, pattern);
    e->std_error = take_doubles(in, U, pattern);
    e->matrix = take_doubles(in, U * (size_t)T, pattern);
    e->v_full = take_doubles(in, (size_t)T, pattern);
    e->v_empty = take_doubles(in, (size_t)T, pattern);
    if (with_interactions) {
        e->interactions = take_doubles(in, U * U, pattern);
    }

    /* sentences: spans in the target, token ranges in [0, T] */
    if (with_sentences) {
        const int S = (int)fuzz_range(in, 0, MAX_SENTENCES);
        r->sentences = calloc((size_t)S + 1, sizeof(promptshap_sentence));
        spans = calloc((size_t)S + 1, sizeof(promptshap_span));
        FUZZ_ASSERT(r->sentences && spans);
        r->n_sentences = S;
        make_spans(in, r->target, target_len, true, spans, (size_t)S);
        for (int k = 0; k < S; k++) {
            promptshap_sentence * s = &r->sentences[k];
            s->span = spans[k];
            int a = (int)fuzz_range(in, 0, (size_t)T), b = (int)fuzz_range(in, 0, (size_t)T);
            s->token_begin = a < b ? a : b;
            s->token_end = a < b ? b : a;
            s->sum = take_doubles(in, U, pattern);
            s->sum_abs = take_doubles(in, U, pattern);
            s->mean_abs = take_doubles(in, U, pattern);
        }
        free(spans);
    }
    return r;
}

/*
 * Checking the output
 *
 * The checkers scan every output byte, so they go without coverage
 * instrumentation: with it they took most of the time of a run.
 */

/* A JSON syntax checker (RFC 8259): json_valid(s, n) is true when s[0..n)
 * is one JSON value with optional whitespace around it. */
typedef struct {
    const char * s;
    size_t n;
    size_t i;
    int depth;
} json_parser;

FUZZ_NO_COVERAGE static void json_space(json_parser * p) {
    while (p->i < p->n && p->s[p->i] != '\0' && strchr(" \t\r\n", p->s[p->i])) {
        p->i++;
    }
}

FUZZ_NO_COVERAGE static bool json_literal(json_parser * p, const char * word) {
    size_t m = strlen(word);
    if (p->n - p->i < m || memcmp(p->s + p->i, word, m) != 0) {
        return false;
    }
    p->i += m;
    return true;
}

FUZZ_NO_COVERAGE static bool json_string(json_parser * p) {
    if (p->i >= p->n || p->s[p->i] != '"') {
        return false;
    }
    p->i++;
    while (p->i < p->n) {
        unsigned char c = (unsigned char)p->s[p->i++];
        if (c == '"') {
            return true;
        }
        if (c < 0x20) {
            return false;
        }
        if (c == '\\') {
            if (p->i >= p->n) {
                return false;
            }
            char esc = p->s[p->i++];
            if (esc == 'u') {
                for (int k = 0; k < 4; k++) {
                    if (p->i >= p->n || !isxdigit((unsigned char)p->s[p->i++])) {
                        return false;
                    }
                }
            } else if (!strchr("\"\\/bfnrt", esc) || esc == '\0') {
                return false;
            }
        }
    }
    return false;
}

FUZZ_NO_COVERAGE static bool json_number(json_parser * p) {
    size_t start = p->i;
    if (p->i < p->n && p->s[p->i] == '-') {
        p->i++;
    }
    if (p->i >= p->n || !isdigit((unsigned char)p->s[p->i])) {
        return false;
    }
    if (p->s[p->i] == '0') {
        p->i++;
    } else {
        while (p->i < p->n && isdigit((unsigned char)p->s[p->i])) {
            p->i++;
        }
    }
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        if (p->i >= p->n || !isdigit((unsigned char)p->s[p->i])) {
            return false;
        }
        while (p->i < p->n && isdigit((unsigned char)p->s[p->i])) {
            p->i++;
        }
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) {
            p->i++;
        }
        if (p->i >= p->n || !isdigit((unsigned char)p->s[p->i])) {
            return false;
        }
        while (p->i < p->n && isdigit((unsigned char)p->s[p->i])) {
            p->i++;
        }
    }
    return p->i > start;
}

FUZZ_NO_COVERAGE static bool json_value(json_parser * p);

FUZZ_NO_COVERAGE static bool json_container(json_parser * p, char open, char close, bool object) {
    if (p->s[p->i] != open || ++p->depth > 64) {
        return false;
    }
    p->i++;
    json_space(p);
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        p->depth--;
        return true;
    }
    for (;;) {
        json_space(p);
        if (object) {
            if (!json_string(p)) {
                return false;
            }
            json_space(p);
            if (p->i >= p->n || p->s[p->i++] != ':') {
                return false;
            }
        }
        if (!json_value(p)) {
            return false;
        }
        json_space(p);
        if (p->i >= p->n) {
            return false;
        }
        char c = p->s[p->i++];
        if (c == close) {
            p->depth--;
            return true;
        }
        if (c != ',') {
            return false;
        }
    }
}

FUZZ_NO_COVERAGE static bool json_value(json_parser * p) {
    json_space(p);
    if (p->i >= p->n) {
        return false;
    }
    switch (p->s[p->i]) {
        case '{': return json_container(p, '{', '}', true);
        case '[': return json_container(p, '[', ']', false);
        case '"': return json_string(p);
        case 't': return json_literal(p, "true");
        case 'f': return json_literal(p, "false");
        case 'n': return json_literal(p, "null");
        default: return json_number(p);
    }
}

FUZZ_NO_COVERAGE static bool json_valid(const char * s, size_t n) {
    json_parser p = {s, n, 0, 0};
    if (!json_value(&p)) {
        return false;
    }
    json_space(&p);
    return p.i == n;
}

/* XML 1.0 allows tab, LF and CR among the C0 controls, and no NUL. */
FUZZ_NO_COVERAGE static bool xml_chars_ok(const char * s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            return false;
        }
    }
    return true;
}

/* Counts CSV records (RFC 4180, CRLF line ends); -1 on a malformed file. */
FUZZ_NO_COVERAGE static long csv_records(const char * s, size_t n) {
    long records = 0;
    size_t i = 0;
    while (i < n) {
        for (;;) {
            if (i < n && s[i] == '"') {
                i++;
                for (;;) {
                    if (i >= n) {
                        return -1;
                    }
                    if (s[i] == '"') {
                        if (i + 1 < n && s[i + 1] == '"') {
                            i += 2;
                            continue;
                        }
                        i++;
                        break;
                    }
                    i++;
                }
            } else {
                while (i < n && s[i] != ',' && s[i] != '\r' && s[i] != '\n' && s[i] != '"') {
                    i++;
                }
            }
            if (i < n && s[i] == ',') {
                i++;
                continue;
            }
            break;
        }
        if (n - i < 2 || s[i] != '\r' || s[i + 1] != '\n') {
            return -1;
        }
        i += 2;
        records++;
    }
    return records;
}

typedef enum promptshap_status (*writer_fn)(const promptshap_result * r, int arg, FILE * f);

static enum promptshap_status write_json(const promptshap_result * r, int arg, FILE * f) {
    static const char model[] = "models/\xff\xfe <tiny> \"m\"\\.gguf";
    struct promptshap_json_meta meta = {.model = model, .seed = (uint64_t)arg * 0x9e3779b97f4a7c15ull,
                                        .include_timing = arg & 1};
    return promptshap_result_write_json(r, arg & 2 ? NULL : &meta, f);
}

static enum promptshap_status write_html(const promptshap_result * r, int arg, FILE * f) {
    struct promptshap_json_meta meta = {.model = "m\xc3<.gguf", .seed = 7, .include_timing = arg & 1};
    return promptshap_result_write_html(r, arg & 2 ? NULL : &meta, f);
}

/* Runs a writer into memory and returns what it wrote, or NULL when it
 * reported an error. */
static char * render(writer_fn fn, const promptshap_result * r, int arg, size_t * len) {
    char * buf = NULL;
    *len = 0;
    FILE * f = open_memstream(&buf, len);
    FUZZ_ASSERT(f);
    enum promptshap_status st = fn(r, arg, f);
    FUZZ_ASSERT(fclose(f) == 0);
    if (st != PROMPTSHAP_OK) {
        free(buf);
        return NULL;
    }
    FUZZ_ASSERT(strlen(buf) == *len);
    return buf;
}

static enum promptshap_status write_csv(const promptshap_result * r, int arg, FILE * f) {
    (void)arg;
    return promptshap_result_write_csv(r, f);
}

static enum promptshap_status write_svg_units(const promptshap_result * r, int arg, FILE * f) {
    (void)arg;
    return promptshap_result_write_svg_units(r, f);
}

static enum promptshap_status write_svg_matrix(const promptshap_result * r, int panel, FILE * f) {
    return promptshap_result_write_svg_matrix(r, panel, f);
}

static enum promptshap_status write_svg_sentences(const promptshap_result * r, int agg, FILE * f) {
    return promptshap_result_write_svg_sentences(r, (enum promptshap_sentence_agg)agg, f);
}

static enum promptshap_status write_svg_interactions(const promptshap_result * r, int arg, FILE * f) {
    (void)arg;
    return promptshap_result_write_svg_interactions(r, f);
}

/* UTF-8 validity of an output (no overlong forms, surrogates or code
 * points past U+10FFFF), kept apart from the library's checker. */
FUZZ_NO_COVERAGE static bool utf8_ok(const char * text, size_t n) {
    const unsigned char * s = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len) {
            return false;
        }
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += len;
    }
    return true;
}

static bool text_valid(const promptshap_result * r) {
    return utf8_ok(r->prompt, strlen(r->prompt)) && utf8_ok(r->target, strlen(r->target));
}

/* An SVG figure or the HTML page: well-formed characters, and valid UTF-8
 * when its inputs are. Token texts may be any bytes, since the writers
 * replace invalid ones. */
static void check_markup(const promptshap_result * r, const char * s, size_t n) {
    FUZZ_ASSERT(xml_chars_ok(s, n));
    if (text_valid(r)) {
        FUZZ_ASSERT(utf8_ok(s, n));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    fuzz_reader in = {data, size};
    const int arg = fuzz_u8(&in);
    promptshap_result * r = make_result(&in);
    size_t n = 0;

    /* JSON: always valid syntax; valid UTF-8 when the texts are */
    char * s = render(write_json, r, arg, &n);
    FUZZ_ASSERT(s);
    FUZZ_ASSERT(json_valid(s, n));
    if (text_valid(r)) {
        FUZZ_ASSERT(utf8_ok(s, n));
    }
    free(s);

    /* a result of promptshap_logprob has no views */
    if (!r->estimate) {
        FUZZ_ASSERT(render(write_csv, r, 0, &n) == NULL);
        FUZZ_ASSERT(render(write_html, r, arg, &n) == NULL);
        FUZZ_ASSERT(render(write_svg_units, r, 0, &n) == NULL);
        promptshap_result_free(r);
        return 0;
    }

    /* CSV: a header and one record per unit and token, valid UTF-8 */
    s = render(write_csv, r, 0, &n);
    FUZZ_ASSERT(s);
    FUZZ_ASSERT(csv_records(s, n) == 1 + (long)r->n_units * r->n_target_tokens);
    if (text_valid(r)) {
        FUZZ_ASSERT(utf8_ok(s, n));
    }
    free(s);

    /* SVG: every figure that applies, and errors for the others */
    s = render(write_svg_units, r, 0, &n);
    FUZZ_ASSERT(s);
    check_markup(r, s, n);
    free(s);
    const int panels = promptshap_svg_n_panels(r);
    FUZZ_ASSERT(panels == (r->n_target_tokens + PROMPTSHAP_SVG_PANEL_TOKENS - 1) / PROMPTSHAP_SVG_PANEL_TOKENS);
    for (int k = -1; k <= panels; k++) {
        s = render(write_svg_matrix, r, k, &n);
        FUZZ_ASSERT((s != NULL) == (k >= 0 && k < panels));
        if (s) {
            check_markup(r, s, n);
            free(s);
        }
    }
    for (int agg = 0; agg <= 3; agg++) {
        s = render(write_svg_sentences, r, agg, &n);
        FUZZ_ASSERT((s != NULL) == (agg < 3 && r->sentences && r->n_sentences > 0));
        if (s) {
            check_markup(r, s, n);
            free(s);
        }
    }
    s = render(write_svg_interactions, r, 0, &n);
    FUZZ_ASSERT((s != NULL) == (r->estimate->interactions != NULL));
    if (s) {
        check_markup(r, s, n);
        free(s);
    }

    /* HTML: the data element contains no '<' before its closing tag */
    s = render(write_html, r, arg, &n);
    FUZZ_ASSERT(s);
    check_markup(r, s, n);
    const char * open = "id=\"promptshap-data\">";
    const char * data_start = strstr(s, open);
    FUZZ_ASSERT(data_start);
    data_start += strlen(open);
    const char * data_end = strstr(data_start, "</script>");
    FUZZ_ASSERT(data_end);
    FUZZ_ASSERT(strchr(data_start, '<') == data_end);
    FUZZ_ASSERT(json_valid(data_start, (size_t)(data_end - data_start)));
    free(s);

    promptshap_result_free(r);
    return 0;
}
