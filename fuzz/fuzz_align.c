/* SPDX-License-Identifier: MIT
 *
 * Fuzzes promptshap_align_pieces, the map from token pieces to byte ranges
 * of the text. Half the inputs cut the text into pieces and put a space in
 * front of some of them, as a tokenizer's added space prefix does: those
 * must align exactly at the cuts unless a piece was then damaged. The
 * other half pair a text with unrelated pieces. Every span must lie in
 * the text, in order, and hold its piece's bytes.
 */
#include "fuzz.h"

#define MAX_PIECES 64

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    fuzz_reader in = {data, size};
    const bool derived = fuzz_u8(&in) & 1;
    const int n_pieces = (int)fuzz_range(&in, 0, MAX_PIECES);
    size_t len = fuzz_range(&in, 0, 512);
    const uint8_t * src = fuzz_take(&in, len, &len);
    char * text = malloc(len ? len : 1);
    FUZZ_ASSERT(text);
    memcpy(text, src, len);

    /* each piece in its own allocation of its exact size */
    char * pieces[MAX_PIECES] = {0};
    size_t lens[MAX_PIECES] = {0};
    size_t cut_start[MAX_PIECES] = {0};
    size_t cut_end[MAX_PIECES] = {0};
    bool damaged = false;
    size_t pos = 0;
    for (int k = 0; k < n_pieces; k++) {
        const uint8_t * bytes;
        size_t n;
        bool space = false;
        if (derived) {
            /* the last piece takes the rest of the text */
            n = k + 1 == n_pieces ? len - pos : fuzz_range(&in, 0, len - pos);
            bytes = (const uint8_t *)text + pos;
            /* a prefix space only where the text has none, so the match is not ambiguous */
            space = (fuzz_u8(&in) & 3) == 0 && n > 0 && text[pos] != ' ';
            cut_start[k] = pos;
            cut_end[k] = pos + n;
            pos += n;
        } else {
            n = fuzz_range(&in, 0, 16);
            bytes = fuzz_take(&in, n, &n);
        }
        lens[k] = n + (space ? 1 : 0);
        pieces[k] = malloc(lens[k] ? lens[k] : 1);
        FUZZ_ASSERT(pieces[k]);
        if (space) {
            pieces[k][0] = ' ';
        }
        memcpy(pieces[k] + (space ? 1 : 0), bytes, n);
        /* damage a derived piece now and then */
        if (derived && lens[k] > 0 && fuzz_u8(&in) == 0xa5) {
            pieces[k][fuzz_range(&in, 0, lens[k] - 1)] ^= (char)(1 + fuzz_u8(&in) % 255);
            damaged = true;
        }
    }

    promptshap_span spans[MAX_PIECES + 1];
    /* a guard entry that must stay untouched */
    spans[n_pieces].start = 12345;
    spans[n_pieces].end = 54321;
    bool ok = promptshap_align_pieces(text, len, (const char * const *)pieces, lens, n_pieces, spans);
    FUZZ_ASSERT(spans[n_pieces].start == 12345 && spans[n_pieces].end == 54321);

    size_t prev_end = 0;
    for (int k = 0; k < n_pieces; k++) {
        const promptshap_span s = spans[k];
        FUZZ_ASSERT(s.start <= s.end && s.end <= len);
        FUZZ_ASSERT(s.start == prev_end);
        const size_t n = s.end - s.start;
        const bool exact = n == lens[k] && memcmp(text + s.start, pieces[k], n) == 0;
        const bool stripped = lens[k] >= 1 && pieces[k][0] == ' ' && n == lens[k] - 1 &&
                              memcmp(text + s.start, pieces[k] + 1, n) == 0;
        /* an unmatched piece gets an empty span and makes the result false */
        FUZZ_ASSERT(exact || stripped || (n == 0 && !ok));
        prev_end = s.end;
    }
    if (ok) {
        FUZZ_ASSERT(prev_end == len);
    }
    if (derived && n_pieces > 0 && !damaged) {
        FUZZ_ASSERT(ok);
        for (int k = 0; k < n_pieces; k++) {
            FUZZ_ASSERT(spans[k].start == cut_start[k] && spans[k].end == cut_end[k]);
        }
    }

    for (int k = 0; k < n_pieces; k++) {
        free(pieces[k]);
    }
    free(text);
    return 0;
}
