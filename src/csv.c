/* SPDX-License-Identifier: MIT
 *
 * The unit x token matrix as CSV in long form (RFC 4180): a header row,
 * then one row per unit and target token, units in prompt order and
 * tokens in target order.
 */
#include "views.h"

#include <math.h>
#include <string.h>

/* Writes one field, quoted when it contains a comma, a quote, CR or LF
 * (quotes doubled). A token's bytes can end inside a UTF-8 character, so
 * each invalid byte becomes U+FFFD and the file stays valid UTF-8. */
static void put_field(FILE * f, const char * s, size_t n) {
    bool quote = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n') {
            quote = true;
            break;
        }
    }
    if (quote) {
        fputc('"', f);
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t len = ps_view_next_char(s, n, i, &cp);
        if (cp == 0xfffd && len == 1) {
            fputs("\xef\xbf\xbd", f);
        } else if (cp == '"') {
            fputs("\"\"", f);
        } else {
            fwrite(s + i, 1, len, f);
        }
        i += len;
    }
    if (quote) {
        fputc('"', f);
    }
}

enum promptshap_status promptshap_result_write_csv(const promptshap_result * r, FILE * f) {
    if (!r->estimate) {
        return PROMPTSHAP_ERR_INVALID_ARGUMENT;
    }
    const int T = r->n_target_tokens;
    fputs("unit,unit_start,unit_end,token_index,token_text,value\r\n", f);
    for (int i = 0; i < r->n_units; i++) {
        const promptshap_span u = r->units[i];
        for (int t = 0; t < T; t++) {
            const char * text = r->target_tokens[t].text;
            double v = r->estimate->matrix[(size_t)i * T + t];
            put_field(f, r->prompt + u.start, u.end - u.start);
            fprintf(f, ",%zu,%zu,%d,", u.start, u.end, t);
            put_field(f, text, strlen(text));
            /* an empty field for a value that is not finite */
            if (isfinite(v)) {
                fprintf(f, ",%.17g\r\n", v);
            } else {
                fputs(",\r\n", f);
            }
            if (ferror(f)) {
                return PROMPTSHAP_ERR_IO;
            }
        }
    }
    return ferror(f) ? PROMPTSHAP_ERR_IO : PROMPTSHAP_OK;
}
