/* SPDX-License-Identifier: MIT
 *
 * Tests of the text functions that need no model: UTF-8 validation, word and
 * sentence splitting, composing a coalition's text, aligning token pieces
 * with text, and rendering the harmony conversation around a user message.
 */
#include "promptshap.h"

#include "check.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_ITEMS(array) (sizeof(array) / sizeof((array)[0]))

static bool starts_with(const char * text, const char * prefix) {
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

static bool ends_with(const char * text, const char * suffix) {
    size_t len = strlen(text);
    size_t suffix_len = strlen(suffix);
    return len >= suffix_len && strcmp(text + len - suffix_len, suffix) == 0;
}

/* Compares spans with the expected ones and prints each mismatch with the
 * text, so a failure shows what was split where. */
static void check_spans(const char * text, const promptshap_span * got, size_t n_got,
                        const promptshap_span * expected, size_t n_expected) {
    CHECK(n_got == n_expected);
    size_t n = n_got < n_expected ? n_got : n_expected;
    for (size_t k = 0; k < n; k++) {
        CHECK(got[k].start == expected[k].start);
        CHECK(got[k].end == expected[k].end);
        if (got[k].start != expected[k].start || got[k].end != expected[k].end) {
            fprintf(stderr, "  span %zu of \"%s\": got [%zu, %zu), expected [%zu, %zu)\n", k, text, got[k].start,
                    got[k].end, expected[k].start, expected[k].end);
        }
    }
}

/* promptshap_split_words or promptshap_split_sentences */
typedef enum promptshap_status (*split_fn)(const char * text, size_t len, promptshap_span ** spans, size_t * n_spans);

/* Runs split on text and compares the spans with the expected ones. */
static void check_split(split_fn split, const char * text, const promptshap_span * expected, size_t n_expected) {
    promptshap_span * spans = NULL;
    size_t n_spans = 12345;
    CHECK(split(text, strlen(text), &spans, &n_spans) == PROMPTSHAP_OK);
    check_spans(text, spans, n_spans, expected, n_expected);
    free(spans);
}

/* Checks that split finds nothing in text and sets *spans to NULL. */
static void check_split_empty(split_fn split, const char * text) {
    promptshap_span placeholder = { 1, 2 };
    promptshap_span * spans = &placeholder;
    size_t n_spans = 12345;
    CHECK(split(text, strlen(text), &spans, &n_spans) == PROMPTSHAP_OK);
    CHECK(n_spans == 0);
    CHECK(spans == NULL);
    if (spans != &placeholder) {
        free(spans);
    }
}

struct utf8_case {
    const char * text;
    size_t len;
    bool valid;
    size_t bad_offset; /* offset of the lead byte of the first invalid sequence */
};

#define UTF8_CASE(text, valid, bad_offset) { text, sizeof(text) - 1, valid, bad_offset }

static void test_utf8(void) {
    static const struct utf8_case cases[] = {
        UTF8_CASE("", true, 0),
        UTF8_CASE("plain ASCII, with punctuation!", true, 0),
        UTF8_CASE("caf\xC3\xA9", true, 0),                /* é */
        UTF8_CASE("\xE6\x97\xA5\xE6\x9C\xAC", true, 0),   /* 日本 */
        UTF8_CASE("ok \xF0\x9F\x98\x80", true, 0),        /* U+1F600 */
        UTF8_CASE("\xC2\x80\xE0\xA0\x80\xF0\x90\x80\x80", true, 0), /* U+0080, U+0800, U+10000 */
        UTF8_CASE("\xED\x9F\xBF\xEE\x80\x80", true, 0),   /* U+D7FF and U+E000 around the surrogates */
        UTF8_CASE("\xF4\x8F\xBF\xBF", true, 0),           /* U+10FFFF, the last code point */
        /* overlong encodings */
        UTF8_CASE("ab\xC0\xAF", false, 2),
        UTF8_CASE("\xC1\xBF", false, 0),
        UTF8_CASE("\xE0\x80\xAF", false, 0),
        UTF8_CASE("\xE0\x9F\xBF", false, 0),
        UTF8_CASE("x\xF0\x80\x80\xAF", false, 1),
        /* UTF-16 surrogates */
        UTF8_CASE("\xED\xA0\x80", false, 0),
        UTF8_CASE("ok \xED\xBF\xBF", false, 3),
        /* truncated sequences, at the end and before another character */
        UTF8_CASE("a\xC3", false, 1),
        UTF8_CASE("\xE6\x97", false, 0),
        UTF8_CASE("ab\xF0\x9F\x98", false, 2),
        UTF8_CASE("\xC3\xA9\xC3", false, 2),
        UTF8_CASE("\xE6\x97x", false, 0),
        UTF8_CASE("\xC3 ", false, 0),
        /* continuation bytes without a lead byte */
        UTF8_CASE("a\x80z", false, 1),
        UTF8_CASE("\xBF", false, 0),
        /* bytes above F4 and code points above U+10FFFF */
        UTF8_CASE("\xF5\x80\x80\x80", false, 0),
        UTF8_CASE("a\xFF", false, 1),
        UTF8_CASE("\xFE", false, 0),
        UTF8_CASE("\xF4\x90\x80\x80", false, 0),
        /* embedded NUL */
        UTF8_CASE("a\0b", false, 1),
        UTF8_CASE("\0", false, 0),
    };
    for (size_t k = 0; k < N_ITEMS(cases); k++) {
        size_t bad_offset = 9999;
        bool valid = promptshap_utf8_valid(cases[k].text, cases[k].len, &bad_offset);
        CHECK(valid == cases[k].valid);
        if (!cases[k].valid) {
            CHECK(bad_offset == cases[k].bad_offset);
        }
        if (valid != cases[k].valid || (!valid && bad_offset != cases[k].bad_offset)) {
            fprintf(stderr, "  utf8 case %zu: valid %d, bad_offset %zu\n", k, (int)valid, bad_offset);
        }
    }
    CHECK(!promptshap_utf8_valid("\xFF", 1, NULL));
    CHECK(promptshap_utf8_valid("abc\xFF", 3, NULL)); /* only len bytes are read */
}

static void test_words(void) {
    static const promptshap_span explain[] = { { 0, 7 }, { 8, 12 }, { 13, 20 }, { 21, 23 }, { 24, 26 }, { 27, 32 } };
    check_split(promptshap_split_words, "explain deep leaning in 50 words", explain, N_ITEMS(explain));

    static const promptshap_span padded[] = { { 3, 9 }, { 12, 18 } };
    check_split(promptshap_split_words, "  \tHello,\n\n world!\r\n", padded, N_ITEMS(padded));

    static const promptshap_span runs[] = { { 0, 1 }, { 3, 4 }, { 6, 7 } };
    check_split(promptshap_split_words, "a  b\t\tc\n", runs, N_ITEMS(runs));

    static const promptshap_span hello[] = { { 0, 6 }, { 7, 13 } };
    check_split(promptshap_split_words, "Hello, world!", hello, N_ITEMS(hello));

    static const promptshap_span one[] = { { 0, 1 } };
    check_split(promptshap_split_words, "x", one, N_ITEMS(one));

    /* Multibyte letters are part of words, and U+00A0 is not ASCII whitespace. */
    static const promptshap_span accented[] = { { 0, 6 }, { 7, 12 } };
    check_split(promptshap_split_words, "na\xC3\xAFve caf\xC3\xA9", accented, N_ITEMS(accented));
    static const promptshap_span nbsp[] = { { 0, 4 } };
    check_split(promptshap_split_words, "a\xC2\xA0" "b", nbsp, N_ITEMS(nbsp));

    check_split_empty(promptshap_split_words, "");
    check_split_empty(promptshap_split_words, " \t\r\n ");
}

/* Eight sentences about generative AI in construction, with commas, brackets
 * and "e.g." inside sentences. */
static const char * const construction[] = {
    "Generative artificial intelligence (Gen AI) is starting to change how construction firms plan their projects.",
    "Estimators use it to draft bills of quantities, e.g. for concrete, rebar and formwork.",
    "Site managers ask chatbots to summarise daily logs, safety reports and subcontractor emails.",
    "Designers compare dozens of layout options in an afternoon instead of a week.",
    "Still, every output has to be checked by a qualified engineer before anything is built.",
    "Errors in load calculations (for instance, a missing wind load) can be costly and dangerous.",
    "Firms that adopt Gen AI carefully report shorter tender cycles and fewer change orders.",
    "The main obstacles remain data quality, staff training and unclear liability.",
};

/* Joins the construction sentences with separator and checks that each comes
 * back as one span. */
static void check_paragraph(const char * separator) {
    enum { N = (int)N_ITEMS(construction) };
    char text[2048];
    promptshap_span expected[N];
    size_t len = 0;
    for (int k = 0; k < N; k++) {
        if (k > 0) {
            len += (size_t)snprintf(text + len, sizeof text - len, "%s", separator);
        }
        expected[k].start = len;
        len += (size_t)snprintf(text + len, sizeof text - len, "%s", construction[k]);
        expected[k].end = len;
    }
    CHECK(len < sizeof text);
    check_split(promptshap_split_sentences, text, expected, N);
}

static void test_sentences(void) {
    check_paragraph(" ");
    check_paragraph("\n");
    check_paragraph("  \n\n");

    static const promptshap_span doctor[] = { { 0, 18 }, { 19, 26 } };
    check_split(promptshap_split_sentences, "Dr. Smith arrived. He sat.", doctor, N_ITEMS(doctor));

    static const promptshap_span initials[] = { { 0, 23 }, { 24, 35 } };
    check_split(promptshap_split_sentences, "J. K. Rowling wrote it. Fans agree.", initials, N_ITEMS(initials));

    static const promptshap_span decimal[] = { { 0, 17 }, { 18, 22 } };
    check_split(promptshap_split_sentences, "Pi is 3.14 today. Yes!", decimal, N_ITEMS(decimal));

    static const promptshap_span ellipsis[] = { { 0, 7 }, { 8, 13 }, { 14, 21 } };
    check_split(promptshap_split_sentences, "Wait... what? Really!", ellipsis, N_ITEMS(ellipsis));

    /* a single line break inside a sentence does not end it */
    static const promptshap_span wrapped[] = { { 0, 28 }, { 29, 41 } };
    check_split(promptshap_split_sentences, "The crane arrived\non Monday. It was tall.", wrapped, N_ITEMS(wrapped));

    /* a blank line ends a sentence without a terminator */
    static const promptshap_span heading[] = { { 0, 9 }, { 11, 35 } };
    check_split(promptshap_split_sentences, "Site plan\n\nSafety rules apply here.", heading, N_ITEMS(heading));
    static const promptshap_span spaced_heading[] = { { 0, 9 }, { 13, 37 } };
    check_split(promptshap_split_sentences, "Site plan\n \t\nSafety rules apply here.", spaced_heading,
                N_ITEMS(spaced_heading));

    /* closing quotes and brackets stay with the sentence they close */
    static const promptshap_span quoted[] = { { 0, 15 }, { 16, 29 } };
    check_split(promptshap_split_sentences, "He said \"Stop.\" Then he left.", quoted, N_ITEMS(quoted));
    static const promptshap_span bracketed[] = { { 0, 15 }, { 16, 27 } };
    check_split(promptshap_split_sentences, "(See the plan.) Then build.", bracketed, N_ITEMS(bracketed));

    /* the last sentence needs no terminator */
    static const promptshap_span unfinished[] = { { 0, 10 }, { 11, 26 } };
    check_split(promptshap_split_sentences, "It rained. The site closed", unfinished, N_ITEMS(unfinished));
    static const promptshap_span single[] = { { 0, 5 } };
    check_split(promptshap_split_sentences, "hello", single, N_ITEMS(single));

    /* spans leave out the whitespace around sentences */
    static const promptshap_span trimmed[] = { { 2, 12 }, { 15, 26 } };
    check_split(promptshap_split_sentences, "  First one.   Second one.  \n", trimmed, N_ITEMS(trimmed));

    check_split_empty(promptshap_split_sentences, "");
    check_split_empty(promptshap_split_sentences, "  \n\n ");
}

/* Composes the units listed in keep (n_keep indexes) and compares the result
 * with expected. */
static void check_compose(const char * text, const promptshap_span * units, int n_units, const int * keep,
                          int n_keep, const char * expected) {
    uint64_t members[4] = { 0, 0, 0, 0 };
    for (int k = 0; k < n_keep; k++) {
        members[keep[k] / 64] |= UINT64_C(1) << (keep[k] % 64);
    }
    char * out = NULL;
    size_t out_len = 9999;
    CHECK(promptshap_compose(text, strlen(text), units, n_units, members, &out, &out_len) == PROMPTSHAP_OK);
    CHECK(out != NULL);
    if (out == NULL) {
        return;
    }
    CHECK(out_len == strlen(expected));
    CHECK(strcmp(out, expected) == 0);
    CHECK(out[out_len] == '\0');
    if (strcmp(out, expected) != 0) {
        fprintf(stderr, "  compose of \"%s\": got \"%s\", expected \"%s\"\n", text, out, expected);
    }
    free(out);
}

static void test_compose(void) {
    const char * text = "a b\n\nc  d";
    static const promptshap_span units[] = { { 0, 1 }, { 2, 3 }, { 5, 6 }, { 8, 9 } };
    check_compose(text, units, 4, (const int[]){ 0, 2 }, 2, "a c");
    check_compose(text, units, 4, (const int[]){ 1, 2 }, 2, "b\n\nc");
    check_compose(text, units, 4, (const int[]){ 2, 3 }, 2, "c  d");
    check_compose(text, units, 4, (const int[]){ 0, 3 }, 2, "a d");
    check_compose(text, units, 4, (const int[]){ 3 }, 1, "d");
    check_compose(text, units, 4, NULL, 0, "");
    check_compose(text, units, 4, (const int[]){ 0, 1, 2, 3 }, 4, "a b\n\nc  d");

    /* keeping every unit returns the text without its outer whitespace */
    const char * padded = "  a b\n\nc  d \n";
    promptshap_span * words = NULL;
    size_t n_words = 0;
    CHECK(promptshap_split_words(padded, strlen(padded), &words, &n_words) == PROMPTSHAP_OK);
    CHECK(n_words == 4);
    if (n_words == 4) {
        check_compose(padded, words, 4, (const int[]){ 0, 1, 2, 3 }, 4, "a b\n\nc  d");
        check_compose(padded, words, 4, (const int[]){ 3 }, 1, "d");
    }
    free(words);

    /* 70 units use two mask words. Every tenth word is followed by a line break. */
    char many[512];
    promptshap_span many_units[70];
    size_t len = 0;
    for (int i = 0; i < 70; i++) {
        many_units[i].start = len;
        len += (size_t)snprintf(many + len, sizeof many - len, "w%d", i);
        many_units[i].end = len;
        len += (size_t)snprintf(many + len, sizeof many - len, "%s", i % 10 == 9 ? "\n" : " ");
    }
    CHECK(len < sizeof many);
    check_compose(many, many_units, 70, (const int[]){ 3, 65 }, 2, "w3 w65");
    check_compose(many, many_units, 70, (const int[]){ 9, 64 }, 2, "w9\nw64");
    check_compose(many, many_units, 70, (const int[]){ 69 }, 1, "w69");
}

/* Aligns pieces with text and compares the result and the spans. */
static void check_align(const char * text, const char * const * pieces, int n_pieces, bool expected_ok,
                        const promptshap_span * expected) {
    size_t piece_lens[8];
    promptshap_span spans[8];
    for (int k = 0; k < n_pieces; k++) {
        piece_lens[k] = strlen(pieces[k]);
        spans[k].start = spans[k].end = 9999;
    }
    bool ok = promptshap_align_pieces(text, strlen(text), pieces, piece_lens, n_pieces, spans);
    CHECK(ok == expected_ok);
    check_spans(text, spans, (size_t)n_pieces, expected, (size_t)n_pieces);
}

static void test_align(void) {
    const char * exact_pieces[] = { "explain", " deep" };
    static const promptshap_span exact_spans[] = { { 0, 7 }, { 7, 12 } };
    check_align("explain deep", exact_pieces, 2, true, exact_spans);

    /* the tokenizer's added space before the first piece is not in the text */
    const char * prefixed_pieces[] = { " explain", " deep" };
    check_align("explain deep", prefixed_pieces, 2, true, exact_spans);

    /* pieces may split a UTF-8 character */
    const char * byte_pieces[] = { "caf", "\xC3", "\xA9" };
    static const promptshap_span byte_spans[] = { { 0, 3 }, { 3, 4 }, { 4, 5 } };
    check_align("caf\xC3\xA9", byte_pieces, 3, true, byte_spans);

    /* an unmatched piece gets an empty span where alignment stopped */
    const char * wrong_pieces[] = { "explain", " dope" };
    static const promptshap_span wrong_spans[] = { { 0, 7 }, { 7, 7 } };
    check_align("explain deep", wrong_pieces, 2, false, wrong_spans);
}

static void test_harmony(void) {
    char * before = NULL;
    char * after = NULL;
    CHECK(promptshap_harmony_render(PROMPTSHAP_REASONING_MEDIUM, NULL, true, &before, &after) == PROMPTSHAP_OK);
    CHECK(before != NULL);
    CHECK(after != NULL);
    if (before != NULL && after != NULL) {
        CHECK(starts_with(before, "<|start|>system<|message|>"));
        CHECK(strstr(before, "Reasoning: medium") != NULL);
        CHECK(strstr(before, "Current date") == NULL);
        CHECK(ends_with(before, "<|end|><|start|>user<|message|>"));
        CHECK(strcmp(after, "<|end|><|start|>assistant<|channel|>final<|message|>") == 0);
    }
    free(before);
    free(after);

    before = after = NULL;
    CHECK(promptshap_harmony_render(PROMPTSHAP_REASONING_HIGH, NULL, false, &before, &after) == PROMPTSHAP_OK);
    if (before != NULL && after != NULL) {
        CHECK(strstr(before, "Reasoning: high") != NULL);
        CHECK(strcmp(after, "<|end|><|start|>assistant") == 0);
    }
    free(before);
    free(after);

    before = after = NULL;
    CHECK(promptshap_harmony_render(PROMPTSHAP_REASONING_LOW, "2025-06-28", true, &before, &after) == PROMPTSHAP_OK);
    if (before != NULL && after != NULL) {
        CHECK(strstr(before, "Current date: 2025-06-28") != NULL);
        CHECK(strstr(before, "Reasoning: low") != NULL);
        CHECK(ends_with(before, "<|start|>user<|message|>"));
    }
    free(before);
    free(after);
}

static void test_reasoning_names(void) {
    const enum promptshap_reasoning levels[] = {
        PROMPTSHAP_REASONING_LOW, PROMPTSHAP_REASONING_MEDIUM, PROMPTSHAP_REASONING_HIGH,
    };
    const char * names[] = { "low", "medium", "high" };
    for (int k = 0; k < 3; k++) {
        enum promptshap_reasoning parsed = (enum promptshap_reasoning)-1;
        CHECK(promptshap_reasoning_parse(names[k], &parsed));
        CHECK(parsed == levels[k]);
        const char * name = promptshap_reasoning_name(levels[k]);
        CHECK(name != NULL);
        if (name != NULL) {
            CHECK(strcmp(name, names[k]) == 0);
        }
    }
    const char * rejected[] = { "", "none", "minimal", "max", "med", "low " };
    for (size_t k = 0; k < N_ITEMS(rejected); k++) {
        enum promptshap_reasoning parsed = PROMPTSHAP_REASONING_MEDIUM;
        CHECK(!promptshap_reasoning_parse(rejected[k], &parsed));
    }
    CHECK(promptshap_reasoning_name((enum promptshap_reasoning)7) == NULL);
}

int main(void) {
    test_utf8();
    test_words();
    test_sentences();
    test_compose();
    test_align();
    test_harmony();
    test_reasoning_names();
    return CHECK_REPORT();
}
