/* SPDX-License-Identifier: MIT
 *
 * Fuzzes the text functions on arbitrary bytes. UTF-8 validation is checked
 * against the views' decoder, a second implementation. The spans of the
 * word and sentence splitters must be ordered, non-empty and trimmed, and
 * cover every non-whitespace byte. A coalition's composed text must equal
 * its units joined by the whitespace that followed each one.
 */
#include "fuzz.h"
#include "views.h"

static bool is_space(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* promptshap_utf8_valid must agree with ps_view_next_char, which marks an
 * invalid byte as a one-byte U+FFFD (a real U+FFFD takes three bytes). */
static void check_utf8(const char * text, size_t len) {
    size_t bad = (size_t)-1;
    bool valid = promptshap_utf8_valid(text, len, &bad);
    size_t first_bad = len;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t n = ps_view_next_char(text, len, i, &cp);
        FUZZ_ASSERT(n >= 1 && n <= 4 && i + n <= len);
        if (cp == 0 || (cp == 0xfffd && n == 1)) {
            first_bad = i;
            break;
        }
        i += n;
    }
    FUZZ_ASSERT(valid == (first_bad == len));
    if (!valid) {
        FUZZ_ASSERT(bad == first_bad);
    }
}

/* Spans in order, non-empty, without whitespace at either end, separated
 * by whitespace only, with nothing but whitespace before the first or
 * after the last. Words also contain no whitespace. */
static void check_spans(const char * text, size_t len, const promptshap_span * s, size_t n, bool words) {
    const uint8_t * u = (const uint8_t *)text;
    size_t pos = 0;
    for (size_t k = 0; k < n; k++) {
        FUZZ_ASSERT(s[k].start >= pos);
        FUZZ_ASSERT(s[k].start < s[k].end);
        FUZZ_ASSERT(s[k].end <= len);
        for (size_t i = pos; i < s[k].start; i++) {
            FUZZ_ASSERT(is_space(u[i]));
        }
        FUZZ_ASSERT(!is_space(u[s[k].start]));
        FUZZ_ASSERT(!is_space(u[s[k].end - 1]));
        for (size_t i = s[k].start; words && i < s[k].end; i++) {
            FUZZ_ASSERT(!is_space(u[i]));
        }
        pos = s[k].end;
    }
    for (size_t i = pos; i < len; i++) {
        FUZZ_ASSERT(is_space(u[i]));
    }
}

/* Composes a coalition drawn from a hash of the text and compares it with
 * the kept units joined by the whitespace that followed each one. */
static void check_compose(const char * text, size_t len, const promptshap_span * s, size_t n) {
    if (n == 0 || n > 4096) {
        return;
    }
    uint64_t state = len;
    for (size_t i = 0; i < len; i++) {
        state = (state ^ (uint8_t)text[i]) * 0x100000001b3ull;
    }
    size_t n_words = PROMPTSHAP_MASK_WORDS(n);
    uint64_t * members = calloc(n_words, sizeof(uint64_t));
    char * expected = malloc(len + 1);
    FUZZ_ASSERT(members && expected);
    for (size_t w = 0; w < n_words; w++) {
        members[w] = ps_rng_next(&state);
    }
    /* the grand coalition in one case of four */
    bool all = (state & 3) == 0;
    if (all) {
        memset(members, 0xff, n_words * sizeof(uint64_t));
    }

    size_t m = 0;
    long prev = -1;
    for (size_t i = 0; i < n; i++) {
        if (!ps_mask_has(members, (int)i)) {
            continue;
        }
        if (prev >= 0) {
            /* the gap after a unit that has a successor is all whitespace */
            size_t gap = s[prev].end;
            while (gap < len && is_space((uint8_t)text[gap])) {
                expected[m++] = text[gap++];
            }
        }
        memcpy(expected + m, text + s[i].start, s[i].end - s[i].start);
        m += s[i].end - s[i].start;
        prev = (long)i;
    }

    char * out = NULL;
    size_t out_len = 0;
    FUZZ_ASSERT(promptshap_compose(text, len, s, (int)n, members, &out, &out_len) == PROMPTSHAP_OK);
    FUZZ_ASSERT(out_len == m);
    FUZZ_ASSERT(memcmp(out, expected, m) == 0);
    FUZZ_ASSERT(out[out_len] == '\0');
    if (all) {
        FUZZ_ASSERT(out_len == s[n - 1].end - s[0].start);
        FUZZ_ASSERT(memcmp(out, text + s[0].start, out_len) == 0);
    }
    free(out);
    free(expected);
    free(members);
}

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    /* a copy of exactly size bytes, so ASan reports any read past the end */
    char * text = malloc(size ? size : 1);
    FUZZ_ASSERT(text);
    memcpy(text, data, size);

    check_utf8(text, size);

    promptshap_span * spans = NULL;
    size_t n = 0;
    FUZZ_ASSERT(promptshap_split_words(text, size, &spans, &n) == PROMPTSHAP_OK);
    FUZZ_ASSERT((n == 0) == (spans == NULL));
    check_spans(text, size, spans, n, true);
    check_compose(text, size, spans, n);
    free(spans);

    FUZZ_ASSERT(promptshap_split_sentences(text, size, &spans, &n) == PROMPTSHAP_OK);
    FUZZ_ASSERT((n == 0) == (spans == NULL));
    check_spans(text, size, spans, n, false);
    check_compose(text, size, spans, n);
    free(spans);

    free(text);
    return 0;
}
