/* SPDX-License-Identifier: MIT
 *
 * Helpers shared by the view writers (src/svg.c, src/html.c, src/csv.c):
 * the diverging color scale, UTF-8 decoding, and text escaped for XML,
 * HTML and JSON inside a script element. Not part of the public API.
 */
#ifndef PROMPTSHAP_VIEWS_H
#define PROMPTSHAP_VIEWS_H

#include "internal.h"

typedef struct ps_rgb {
    unsigned char r, g, b;
} ps_rgb;

/* The scale's three anchors: negative end, zero, positive end. */
extern const ps_rgb ps_view_negative;
extern const ps_rgb ps_view_zero;
extern const ps_rgb ps_view_positive;
/* Color of a value that is not finite. */
extern const ps_rgb ps_view_missing;

/* Color of value on a scale symmetric around zero that reaches its ends at
 * -vmax and +vmax (vmax > 0); values beyond are clamped to the ends. */
ps_rgb ps_view_color(double value, double vmax);

/* True when text on background c should be white rather than black. */
bool ps_view_dark(ps_rgb c);

/* Values of at most this many nats are rounding, not attribution: exact
 * Shapley values of a prompt the model ignores come out near 1e-15. They
 * get no color and no share. */
#define PS_VIEW_NOISE 1e-9

/* Largest |x| over the finite entries of v[0..n), or 1 when there is none
 * or it is at most PS_VIEW_NOISE, so that a scale never divides by zero
 * nor blows rounding up to full color. */
double ps_view_scale(const double * v, size_t n);

/* Decodes the UTF-8 character at s[i] (i < n). Returns its length in bytes
 * and stores the code point; an invalid byte has length 1 and U+FFFD. */
size_t ps_view_next_char(const char * s, size_t n, size_t i, uint32_t * cp);

/* Flags of ps_view_put_text. */
enum {
    PS_TEXT_VISIBLE_SPACE = 1, /* space, newline, tab and CR as visible symbols */
};

/* Writes s[0..n) escaped for XML and HTML text and attribute values. An
 * invalid UTF-8 byte becomes U+FFFD and a control character its visible
 * Control Pictures symbol, since XML 1.0 forbids most of them. When
 * max_chars > 0 the text is cut after max_chars characters and ends with an
 * ellipsis. Returns the display width in columns (wide characters count
 * 2), an estimate for layout. */
size_t ps_view_put_text(FILE * f, const char * s, size_t n, size_t max_chars, int flags);

/* The width ps_view_put_text would return, without writing. */
size_t ps_view_text_width(const char * s, size_t n, size_t max_chars, int flags);

/* Writes s[0..n) as a JSON string that is safe inside an HTML script
 * element: '<', '>', '&', U+2028 and U+2029 are \u escapes, invalid UTF-8
 * bytes become \ufffd. */
void ps_view_put_json_string(FILE * f, const char * s, size_t n);

/* Writes a number for JSON with 6 significant digits, null if not finite. */
void ps_view_put_json_number(FILE * f, double x);

/* Writes a color as "#rrggbb". */
void ps_view_put_color(FILE * f, ps_rgb c);

#endif
