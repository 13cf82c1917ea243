/* SPDX-License-Identifier: MIT
 *
 * Text handling that needs no model: UTF-8 validation, word and sentence
 * splitting with byte ranges, the composition of a coalition's text from
 * the kept units, and the alignment of token pieces with the text they
 * came from.
 */
#include "internal.h"

#include <string.h>

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool promptshap_utf8_valid(const char * text, size_t len, size_t * bad_offset) {
    const unsigned char * s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned int cp;
        if (c == 0) {
            goto bad;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            goto bad;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xc0) != 0x80) {
                goto bad;
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* overlong forms, UTF-16 surrogates and code points past U+10FFFF */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            goto bad;
        }
        i += n + 1;
    }
    return true;

bad:
    if (bad_offset) {
        *bad_offset = i;
    }
    return false;
}

/* Growable span array. */
typedef struct {
    promptshap_span * data;
    size_t n;
    size_t cap;
} span_vec;

static bool span_push(span_vec * v, size_t start, size_t end) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        promptshap_span * data = realloc(v->data, cap * sizeof(*data));
        if (!data) {
            return false;
        }
        v->data = data;
        v->cap = cap;
    }
    v->data[v->n].start = start;
    v->data[v->n].end = end;
    v->n++;
    return true;
}

static enum promptshap_status span_finish(span_vec * v, bool ok, promptshap_span ** spans, size_t * n_spans) {
    if (!ok) {
        free(v->data);
        *spans = NULL;
        *n_spans = 0;
        return PROMPTSHAP_ERR_NO_MEMORY;
    }
    if (v->n == 0) {
        free(v->data);
        v->data = NULL;
    }
    *spans = v->data;
    *n_spans = v->n;
    return PROMPTSHAP_OK;
}

enum promptshap_status promptshap_split_words(const char * text, size_t len,
                                              promptshap_span ** spans, size_t * n_spans) {
    span_vec v = {0};
    bool ok = true;
    size_t i = 0;
    while (i < len && ok) {
        while (i < len && is_space((unsigned char)text[i])) {
            i++;
        }
        if (i == len) {
            break;
        }
        size_t start = i;
        while (i < len && !is_space((unsigned char)text[i])) {
            i++;
        }
        ok = span_push(&v, start, i);
    }
    return span_finish(&v, ok, spans, n_spans);
}

/* Words after which a period does not end a sentence, compared without
 * case. Single letters (initials such as "J. Smith") are handled apart. */
static const char * const abbreviations[] = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "e.g", "i.e", "cf", "fig", "no",
    "approx", "dept", "est", "inc", "ltd", "co", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec",
};

/* True if the word that ends just before the period at text[dot] is an
 * abbreviation. "etc" is not in the list because it ends sentences more
 * often than not. */
static bool is_abbreviation(const char * text, size_t dot) {
    size_t start = dot;
    while (start > 0 && !is_space((unsigned char)text[start - 1]) && text[start - 1] != '(' &&
           text[start - 1] != '"') {
        start--;
    }
    size_t n = dot - start;
    if (n == 0) {
        return false;
    }
    if (n == 1 && text[start] >= 'A' && text[start] <= 'Z') {
        return true;
    }
    for (size_t k = 0; k < sizeof(abbreviations) / sizeof(abbreviations[0]); k++) {
        const char * a = abbreviations[k];
        if (strlen(a) != n) {
            continue;
        }
        size_t j = 0;
        while (j < n) {
            char c = text[start + j];
            if (c >= 'A' && c <= 'Z') {
                c = (char)(c - 'A' + 'a');
            }
            if (c != a[j]) {
                break;
            }
            j++;
        }
        if (j == n) {
            return true;
        }
    }
    return false;
}

static bool is_closer(unsigned char c) {
    return c == '"' || c == '\'' || c == ')' || c == ']' || c == '}';
}

/* Length of a closing quote or bracket at text[i], including the UTF-8
 * right quotes U+2019 and U+201D; 0 if there is none. */
static size_t closer_len(const char * text, size_t len, size_t i) {
    const unsigned char * s = (const unsigned char *)text;
    if (is_closer(s[i])) {
        return 1;
    }
    if (i + 2 < len && s[i] == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0x99 || s[i + 2] == 0x9d)) {
        return 3;
    }
    return 0;
}

/* Length of a terminator at text[i]: '.', '!', '?' or U+2026; 0 if none. */
static size_t terminator_len(const char * text, size_t len, size_t i) {
    const unsigned char * s = (const unsigned char *)text;
    if (s[i] == '.' || s[i] == '!' || s[i] == '?') {
        return 1;
    }
    if (i + 2 < len && s[i] == 0xe2 && s[i + 1] == 0x80 && s[i + 2] == 0xa6) {
        return 3;
    }
    return 0;
}

enum promptshap_status promptshap_split_sentences(const char * text, size_t len,
                                                  promptshap_span ** spans, size_t * n_spans) {
    span_vec v = {0};
    bool ok = true;
    size_t i = 0;
    while (i < len && ok) {
        /* skip whitespace before the sentence */
        while (i < len && is_space((unsigned char)text[i])) {
            i++;
        }
        if (i == len) {
            break;
        }
        size_t start = i;
        size_t end = len;
        while (i < len) {
            /* a blank line ends the sentence */
            if (text[i] == '\n') {
                size_t j = i + 1;
                while (j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r')) {
                    j++;
                }
                if (j < len && text[j] == '\n') {
                    end = i;
                    break;
                }
            }
            size_t t = terminator_len(text, len, i);
            if (t == 0) {
                i++;
                continue;
            }
            size_t first_dot = i;
            /* a run of terminators ("...", "?!"), then closing quotes or brackets */
            while (i < len && (t = terminator_len(text, len, i)) > 0) {
                i += t;
            }
            size_t c;
            while (i < len && (c = closer_len(text, len, i)) > 0) {
                i += c;
            }
            if (i < len && !is_space((unsigned char)text[i])) {
                continue;
            }
            if (text[first_dot] == '.' && i == first_dot + 1 && is_abbreviation(text, first_dot)) {
                continue;
            }
            end = i;
            break;
        }
        if (i >= len) {
            end = len;
        }
        /* trim trailing whitespace of a sentence that ended at a blank line or the end */
        while (end > start && is_space((unsigned char)text[end - 1])) {
            end--;
        }
        ok = span_push(&v, start, end);
        if (i < end) {
            i = end;
        }
    }
    return span_finish(&v, ok, spans, n_spans);
}

enum promptshap_status promptshap_compose(const char * text, size_t len,
                                          const promptshap_span * units, int n_units,
                                          const uint64_t * members,
                                          char ** out, size_t * out_len) {
    /* the composition is never longer than the text */
    char * buf = malloc(len + 1);
    if (!buf) {
        return PROMPTSHAP_ERR_NO_MEMORY;
    }
    size_t n = 0;
    int prev = -1;
    for (int i = 0; i < n_units; i++) {
        if (!ps_mask_has(members, i)) {
            continue;
        }
        PS_ASSERT(units[i].start <= units[i].end && units[i].end <= len);
        if (prev >= 0) {
            /* the whitespace that followed the previous kept unit */
            size_t s = units[prev].end;
            size_t e = s;
            while (e < len && is_space((unsigned char)text[e])) {
                e++;
            }
            memcpy(buf + n, text + s, e - s);
            n += e - s;
        }
        memcpy(buf + n, text + units[i].start, units[i].end - units[i].start);
        n += units[i].end - units[i].start;
        prev = i;
    }
    PS_ASSERT(n <= len);
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return PROMPTSHAP_OK;
}

bool promptshap_align_pieces(const char * text, size_t len,
                             const char * const * pieces, const size_t * piece_lens, int n_pieces,
                             promptshap_span * spans) {
    size_t pos = 0;
    bool all = true;
    for (int k = 0; k < n_pieces; k++) {
        const char * p = pieces[k];
        size_t n = piece_lens[k];
        if (n <= len - pos && memcmp(text + pos, p, n) == 0) {
            spans[k].start = pos;
            spans[k].end = pos + n;
            pos += n;
            continue;
        }
        /* a space the tokenizer added in front of a text fragment */
        if (n >= 1 && p[0] == ' ' && n - 1 <= len - pos && memcmp(text + pos, p + 1, n - 1) == 0) {
            spans[k].start = pos;
            spans[k].end = pos + n - 1;
            pos += n - 1;
            continue;
        }
        spans[k].start = pos;
        spans[k].end = pos;
        all = false;
    }
    return all && pos == len;
}
