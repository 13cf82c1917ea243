/* SPDX-License-Identifier: MIT
 *
 * The pieces every view shares: one diverging color scale, UTF-8 decoding
 * and the text escapes of SVG, HTML and JSON inside HTML. The scale runs
 * from a blue through near-white to an orange. Readers with red-green
 * color blindness can tell these two hues apart. The endpoints were picked
 * for this project, and the scale is interpolated linearly in sRGB.
 */
#include "views.h"

#include <math.h>
#include <string.h>

const ps_rgb ps_view_negative = {24, 96, 176};  /* blue: the unit lowers the target's log-probability */
const ps_rgb ps_view_zero = {246, 246, 246};    /* near-white, neutral so that a small value keeps its hue */
const ps_rgb ps_view_positive = {204, 85, 0};   /* orange: the unit raises it */
const ps_rgb ps_view_missing = {160, 160, 160}; /* grey: not finite */

/*
 * Color
 */

static unsigned char mix(unsigned char a, unsigned char b, double t) {
    return (unsigned char)lround(a + t * ((double)b - a));
}

ps_rgb ps_view_color(double value, double vmax) {
    if (!isfinite(value) || !(vmax > 0)) {
        return ps_view_missing;
    }
    double t = fabs(value) / vmax;
    if (t > 1.0) {
        t = 1.0;
    }
    ps_rgb end = value < 0 ? ps_view_negative : ps_view_positive;
    ps_rgb c = {mix(ps_view_zero.r, end.r, t), mix(ps_view_zero.g, end.g, t), mix(ps_view_zero.b, end.b, t)};
    return c;
}

bool ps_view_dark(ps_rgb c) {
    /* relative luminance with the sRGB weights, on the gamma-encoded values */
    return 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b < 128.0;
}

double ps_view_scale(const double * v, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(v[i]) && fabs(v[i]) > m) {
            m = fabs(v[i]);
        }
    }
    return m > PS_VIEW_NOISE ? m : 1.0;
}

void ps_view_put_color(FILE * f, ps_rgb c) {
    fprintf(f, "#%02x%02x%02x", c.r, c.g, c.b);
}

/*
 * Text
 */

size_t ps_view_next_char(const char * s, size_t n, size_t i, uint32_t * cp) {
    const unsigned char * u = (const unsigned char *)s;
    unsigned char c = u[i];
    size_t len = 0;
    uint32_t v = 0, min = 0;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07, min = 0x10000;
    }
    if (len == 0 || i + len > n) {
        *cp = 0xfffd;
        return 1;
    }
    for (size_t k = 1; k < len; k++) {
        if ((u[i + k] & 0xc0) != 0x80) {
            *cp = 0xfffd;
            return 1;
        }
        v = (v << 6) | (u[i + k] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        *cp = 0xfffd;
        return 1;
    }
    *cp = v;
    return len;
}

/* Columns a character takes in a monospace font: 2 for East Asian wide
 * characters and emoji, else 1. */
static size_t char_width(uint32_t cp) {
    if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) ||
        (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
        (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1faff) || (cp >= 0x20000 && cp <= 0x3fffd)) {
        return 2;
    }
    return 1;
}

/* The code point shown for cp: control characters as their Control
 * Pictures symbol (U+2400 block), whitespace too with PS_TEXT_VISIBLE_SPACE. */
static uint32_t shown_char(uint32_t cp, int flags) {
    if (flags & PS_TEXT_VISIBLE_SPACE) {
        switch (cp) {
            case ' ': return 0x00b7;  /* middle dot */
            case '\n': return 0x21b5; /* downwards arrow with corner leftwards */
            case '\t': return 0x2192; /* rightwards arrow */
            default: break;
        }
    } else if (cp == '\n' || cp == '\t') {
        return cp;
    }
    if (cp < 0x20) {
        return 0x2400 + cp;
    }
    if (cp == 0x7f) {
        return 0x2421;
    }
    return cp;
}

static void put_utf8(FILE * f, uint32_t cp) {
    if (cp < 0x80) {
        fputc((int)cp, f);
    } else if (cp < 0x800) {
        fputc((int)(0xc0 | (cp >> 6)), f);
        fputc((int)(0x80 | (cp & 0x3f)), f);
    } else if (cp < 0x10000) {
        fputc((int)(0xe0 | (cp >> 12)), f);
        fputc((int)(0x80 | ((cp >> 6) & 0x3f)), f);
        fputc((int)(0x80 | (cp & 0x3f)), f);
    } else {
        fputc((int)(0xf0 | (cp >> 18)), f);
        fputc((int)(0x80 | ((cp >> 12) & 0x3f)), f);
        fputc((int)(0x80 | ((cp >> 6) & 0x3f)), f);
        fputc((int)(0x80 | (cp & 0x3f)), f);
    }
}

/* Walks the text as ps_view_put_text describes; writes only when f is
 * not NULL. */
static size_t walk_text(FILE * f, const char * s, size_t n, size_t max_chars, int flags) {
    size_t width = 0, chars = 0;
    for (size_t i = 0; i < n;) {
        if (max_chars > 0 && chars == max_chars) {
            if (f) {
                put_utf8(f, 0x2026);
            }
            return width + 1;
        }
        uint32_t cp = 0;
        i += ps_view_next_char(s, n, i, &cp);
        cp = shown_char(cp, flags);
        chars++;
        width += char_width(cp);
        if (!f) {
            continue;
        }
        switch (cp) {
            case '&': fputs("&amp;", f); break;
            case '<': fputs("&lt;", f); break;
            case '>': fputs("&gt;", f); break;
            case '"': fputs("&quot;", f); break;
            case '\'': fputs("&#39;", f); break;
            default: put_utf8(f, cp);
        }
    }
    return width;
}

size_t ps_view_put_text(FILE * f, const char * s, size_t n, size_t max_chars, int flags) {
    return walk_text(f, s, n, max_chars, flags);
}

size_t ps_view_text_width(const char * s, size_t n, size_t max_chars, int flags) {
    return walk_text(NULL, s, n, max_chars, flags);
}

void ps_view_put_json_string(FILE * f, const char * s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        i += ps_view_next_char(s, n, i, &cp);
        if (cp == '"' || cp == '\\') {
            fputc('\\', f);
            fputc((int)cp, f);
        } else if (cp == '\n') {
            fputs("\\n", f);
        } else if (cp < 0x20 || cp == 0x7f || cp == '<' || cp == '>' || cp == '&' || cp == 0x2028 ||
                   cp == 0x2029) {
            fprintf(f, "\\u%04x", (unsigned)cp);
        } else {
            put_utf8(f, cp);
        }
    }
    fputc('"', f);
}

void ps_view_put_json_number(FILE * f, double x) {
    if (isfinite(x)) {
        fprintf(f, "%.6g", x);
    } else {
        fputs("null", f);
    }
}
