/* SPDX-License-Identifier: MIT
 *
 * Standalone SVG figures of an explanation: the unit strip, the unit x
 * token matrix in panels, the unit x sentence matrix and the interaction
 * matrix. Labels use a monospace font so their width can be estimated
 * here; a cut label ends with an ellipsis and shows in full on hover
 * through its <title>.
 */
#include "views.h"

#include <math.h>
#include <string.h>

#define FONT_PX 12
#define CHAR_PX 7.3      /* advance of a monospace character at FONT_PX (0.6 em) */
#define MARGIN 16
#define CELL 22          /* side of a matrix cell */
#define ROW_LABEL_CHARS 24
#define COL_LABEL_CHARS 16
#define STRIP_LABEL_CHARS 24
#define STRIP_WIDTH 1100 /* the strip wraps to a new line past this width */
#define BAR_WIDTH 260
#define MONO "font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\""

typedef struct label {
    const char * s;
    size_t n;
} label;

/* A matrix figure: value(i, j) = values[i * stride + j]. */
struct grid {
    const char * title;
    const char * row_kind; /* "unit" */
    const char * col_kind; /* "token", "sentence", "unit" */
    int n_rows;
    int n_cols;
    const label * rows;    /* [n_rows] */
    const label * cols;    /* [n_cols] */
    int first_col;         /* index of column 0 in the whole figure, for tooltips */
    const double * values;
    size_t stride;
    double vmax;
};

const char * promptshap_sentence_agg_name(enum promptshap_sentence_agg agg) {
    switch (agg) {
        case PROMPTSHAP_SENTENCE_SUM: return "sum";
        case PROMPTSHAP_SENTENCE_SUM_ABS: return "sum of absolute values";
        case PROMPTSHAP_SENTENCE_MEAN_ABS: return "mean of absolute values";
    }
    return NULL;
}

/*
 * Pieces
 */

static void put_header(FILE * f, double width, double height, const char * title) {
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "font-family=\"DejaVu Sans, Verdana, sans-serif\" font-size=\"%d\" role=\"img\">\n",
            width, height, width, height, FONT_PX);
    fputs("<title>", f);
    ps_view_put_text(f, title, strlen(title), 0, 0);
    fputs("</title>\n", f);
    fprintf(f, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", width, height);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"15\" font-weight=\"bold\">", MARGIN, MARGIN + 10);
    ps_view_put_text(f, title, strlen(title), 0, 0);
    fputs("</text>\n", f);
}

/* Height the color bar takes, for layout. */
#define BAR_HEIGHT 52

/* A horizontal color bar from -vmax to +vmax with its ends and zero
 * labelled, at (x, y). The gradient's stops are the scale itself. */
static void put_color_bar(FILE * f, double x, double y, double vmax) {
    fputs("<defs><linearGradient id=\"scale\" x1=\"0\" x2=\"1\" y1=\"0\" y2=\"0\">", f);
    for (int k = 0; k <= 10; k++) {
        double v = vmax * (k - 5) / 5.0;
        fprintf(f, "<stop offset=\"%.1f\" stop-color=\"", k / 10.0);
        ps_view_put_color(f, ps_view_color(v, vmax));
        fputs("\"/>", f);
    }
    fputs("</linearGradient></defs>\n", f);
    fprintf(f, "<g class=\"color-bar\" transform=\"translate(%.1f,%.1f)\">\n", x, y);
    fprintf(f, "<rect width=\"%d\" height=\"12\" fill=\"url(#scale)\" stroke=\"#888888\" stroke-width=\"0.5\"/>\n",
            BAR_WIDTH);
    fprintf(f, "<text x=\"0\" y=\"26\" text-anchor=\"start\">%+.4g</text>\n", -vmax);
    fprintf(f, "<text x=\"%d\" y=\"26\" text-anchor=\"middle\">0</text>\n", BAR_WIDTH / 2);
    fprintf(f, "<text x=\"%d\" y=\"26\" text-anchor=\"end\">%+.4g</text>\n", BAR_WIDTH, vmax);
    fprintf(f, "<text x=\"%d\" y=\"9\" fill=\"#333333\">nats: blue lowers, orange raises the target's "
               "log-probability</text>\n",
            BAR_WIDTH + 10);
    fputs("</g>\n", f);
}

/* A label cut to max_chars with its full text as a hover title. */
static void put_label(FILE * f, label l, size_t max_chars) {
    ps_view_put_text(f, l.s, l.n, max_chars, PS_TEXT_VISIBLE_SPACE);
    fputs("<title>", f);
    ps_view_put_text(f, l.s, l.n, 0, PS_TEXT_VISIBLE_SPACE);
    fputs("</title>", f);
}

static void put_value_text(FILE * f, double v) {
    if (isfinite(v)) {
        fprintf(f, "%+.4f", v);
    } else {
        fputs("not finite", f);
    }
}

/*
 * The matrix figure
 */

static double labels_width(const label * l, int n, size_t max_chars) {
    size_t w = 0;
    for (int i = 0; i < n; i++) {
        size_t c = ps_view_text_width(l[i].s, l[i].n, max_chars, PS_TEXT_VISIBLE_SPACE);
        w = c > w ? c : w;
    }
    return w * CHAR_PX;
}

static enum promptshap_status write_grid(const struct grid * g, FILE * f) {
    const double row_w = labels_width(g->rows, g->n_rows, ROW_LABEL_CHARS) + 10;
    const double col_h = labels_width(g->cols, g->n_cols, COL_LABEL_CHARS) + 10;
    const double x0 = MARGIN + row_w;
    const double y0 = MARGIN + 30 + col_h;
    const double bar_y = y0 + g->n_rows * CELL + 20;
    double width = x0 + g->n_cols * CELL + MARGIN;
    const double min_width = MARGIN * 2 + BAR_WIDTH + 10 + 60 * CHAR_PX;
    if (width < min_width) {
        width = min_width;
    }
    const double title_width = MARGIN * 2 + strlen(g->title) * 9.0;
    if (width < title_width) {
        width = title_width;
    }
    put_header(f, width, bar_y + BAR_HEIGHT, g->title);

    /* row labels, right-aligned against the grid */
    fprintf(f, "<g class=\"rows\" text-anchor=\"end\" %s>\n", MONO);
    for (int i = 0; i < g->n_rows; i++) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x0 - 6, y0 + i * CELL + CELL / 2.0 + 4);
        put_label(f, g->rows[i], ROW_LABEL_CHARS);
        fputs("</text>\n", f);
    }
    fputs("</g>\n", f);

    /* column labels, rotated to read upwards */
    fprintf(f, "<g class=\"cols\" %s>\n", MONO);
    for (int j = 0; j < g->n_cols; j++) {
        fprintf(f, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\">", x0 + j * CELL + CELL / 2.0 + 4, y0 - 6);
        put_label(f, g->cols[j], COL_LABEL_CHARS);
        fputs("</text>\n", f);
    }
    fputs("</g>\n", f);

    /* cells, each with its value on hover */
    fputs("<g class=\"cells\" stroke=\"#ffffff\" stroke-width=\"1\">\n", f);
    for (int i = 0; i < g->n_rows; i++) {
        for (int j = 0; j < g->n_cols; j++) {
            double v = g->values[(size_t)i * g->stride + (size_t)j];
            fprintf(f, "<rect class=\"cell\" x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"",
                    x0 + j * CELL, y0 + i * CELL, CELL, CELL);
            ps_view_put_color(f, ps_view_color(v, g->vmax));
            fprintf(f, "\" data-value=\"%.6g\"><title>%s %d ", v, g->row_kind, i);
            ps_view_put_text(f, g->rows[i].s, g->rows[i].n, 0, PS_TEXT_VISIBLE_SPACE);
            fprintf(f, ", %s %d ", g->col_kind, g->first_col + j);
            ps_view_put_text(f, g->cols[j].s, g->cols[j].n, 0, PS_TEXT_VISIBLE_SPACE);
            fputs(": ", f);
            put_value_text(f, v);
            fputs(" nats</title></rect>\n", f);
        }
    }
    fputs("</g>\n", f);

    put_color_bar(f, MARGIN, bar_y, g->vmax);
    fputs("</svg>\n", f);
    return ferror(f) ? PROMPTSHAP_ERR_IO : PROMPTSHAP_OK;
}

static label * unit_labels(const promptshap_result * r) {
    label * l = malloc(((size_t)r->n_units + 1) * sizeof(label));
    for (int i = 0; l && i < r->n_units; i++) {
        l[i].s = r->prompt + r->units[i].start;
        l[i].n = r->units[i].end - r->units[i].start;
    }
    return l;
}

static const char * index_title(const promptshap_result * r) {
    const char * index = promptshap_method_index(r->estimate->method);
    return index ? index : "value";
}

/*
 * Public writers
 */

int promptshap_svg_n_panels(const promptshap_result * r) {
    return (r->n_target_tokens + PROMPTSHAP_SVG_PANEL_TOKENS - 1) / PROMPTSHAP_SVG_PANEL_TOKENS;
}

enum promptshap_status promptshap_result_write_svg_matrix(const promptshap_result * r, int panel, FILE * f) {
    if (!r->estimate || panel < 0 || panel >= promptshap_svg_n_panels(r)) {
        return PROMPTSHAP_ERR_INVALID_ARGUMENT;
    }
    const int T = r->n_target_tokens;
    const int first = panel * PROMPTSHAP_SVG_PANEL_TOKENS;
    const int n_cols = T - first < PROMPTSHAP_SVG_PANEL_TOKENS ? T - first : PROMPTSHAP_SVG_PANEL_TOKENS;
    label * rows = unit_labels(r);
    label * cols = malloc((size_t)n_cols * sizeof(label));
    if (!rows || !cols) {
        free(rows);
        free(cols);
        return PROMPTSHAP_ERR_NO_MEMORY;
    }
    for (int j = 0; j < n_cols; j++) {
        cols[j].s = r->target_tokens[first + j].text;
        cols[j].n = strlen(cols[j].s);
    }
    char title[160];
    snprintf(title, sizeof(title), "Unit x target token (%s, nats): tokens %d-%d of %d, panel %d of %d",
             index_title(r), first, first + n_cols - 1, T, panel + 1, promptshap_svg_n_panels(r));
    struct grid g = {
        .title = title,
        .row_kind = "unit",
        .col_kind = "token",
        .n_rows = r->n_units,
        .n_cols = n_cols,
        .rows = rows,
        .cols = cols,
        .first_col = first,
        .values = r->estimate->matrix + first,
        .stride = (size_t)T,
        .vmax = ps_view_scale(r->estimate->matrix, (size_t)r->n_units * (size_t)T),
    };
    enum promptshap_status st = write_grid(&g, f);
    free(rows);
    free(cols);
    return st;
}

enum promptshap_status promptshap_result_write_svg_sentences(const promptshap_result * r,
                                                             enum promptshap_sentence_agg agg, FILE * f) {
    const char * agg_name = promptshap_sentence_agg_name(agg);
    if (!r->estimate || !r->sentences || r->n_sentences < 1 || !agg_name) {
        return PROMPTSHAP_ERR_INVALID_ARGUMENT;
    }
    const int U = r->n_units;
    const int S = r->n_sentences;
    label * rows = unit_labels(r);
    label * cols = malloc((size_t)S * sizeof(label));
    double * values = malloc((size_t)U * (size_t)S * sizeof(double));
    if (!rows || !cols || !values) {
        free(rows);
        free(cols);
        free(values);
        return PROMPTSHAP_ERR_NO_MEMORY;
    }
    for (int k = 0; k < S; k++) {
        const promptshap_sentence * s = &r->sentences[k];
        cols[k].s = r->target + s->span.start;
        cols[k].n = s->span.end - s->span.start;
        const double * col = agg == PROMPTSHAP_SENTENCE_SUM ? s->sum : agg == PROMPTSHAP_SENTENCE_SUM_ABS ? s->sum_abs
                                                                                                         : s->mean_abs;
        for (int i = 0; i < U; i++) {
            values[(size_t)i * S + k] = col[i];
        }
    }
    char title[160];
    snprintf(title, sizeof(title), "Unit x target sentence (%s over each sentence's tokens, nats)", agg_name);
    struct grid g = {
        .title = title,
        .row_kind = "unit",
        .col_kind = "sentence",
        .n_rows = U,
        .n_cols = S,
        .rows = rows,
        .cols = cols,
        .values = values,
        .stride = (size_t)S,
        .vmax = ps_view_scale(values, (size_t)U * (size_t)S),
    };
    enum promptshap_status st = write_grid(&g, f);
    free(rows);
    free(cols);
    free(values);
    return st;
}

enum promptshap_status promptshap_result_write_svg_interactions(const promptshap_result * r, FILE * f) {
    if (!r->estimate || !r->estimate->interactions) {
        return PROMPTSHAP_ERR_INVALID_ARGUMENT;
    }
    const int U = r->n_units;
    label * rows = unit_labels(r);
    if (!rows) {
        return PROMPTSHAP_ERR_NO_MEMORY;
    }
    struct grid g = {
        .title = "Pairwise Shapley interaction of units (nats)",
        .row_kind = "unit",
        .col_kind = "unit",
        .n_rows = U,
        .n_cols = U,
        .rows = rows,
        .cols = rows,
        .values = r->estimate->interactions,
        .stride = (size_t)U,
        .vmax = ps_view_scale(r->estimate->interactions, (size_t)U * (size_t)U),
    };
    enum promptshap_status st = write_grid(&g, f);
    free(rows);
    return st;
}

/*
 * The unit strip
 */

enum promptshap_status promptshap_result_write_svg_units(const promptshap_result * r, FILE * f) {
    if (!r->estimate) {
        return PROMPTSHAP_ERR_INVALID_ARGUMENT;
    }
    const int U = r->n_units;
    const double * v = r->estimate->values;
    const double vmax = ps_view_scale(v, (size_t)U);
    const double row_h = 52;
    double * x = malloc(((size_t)U + 1) * sizeof(double));
    double * w = malloc(((size_t)U + 1) * sizeof(double));
    int * line = malloc(((size_t)U + 1) * sizeof(int));
    if (!x || !w || !line) {
        free(x);
        free(w);
        free(line);
        return PROMPTSHAP_ERR_NO_MEMORY;
    }

    /* flow the units into lines */
    int n_lines = 1;
    double cx = MARGIN, width = MARGIN * 2 + BAR_WIDTH + 10 + 60 * CHAR_PX;
    for (int i = 0; i < U; i++) {
        const char * s = r->prompt + r->units[i].start;
        size_t n = r->units[i].end - r->units[i].start;
        size_t chars = ps_view_text_width(s, n, STRIP_LABEL_CHARS, PS_TEXT_VISIBLE_SPACE);
        w[i] = (chars > 8 ? chars : 8) * CHAR_PX + 12;
        if (cx + w[i] > STRIP_WIDTH && cx > MARGIN) {
            n_lines++;
            cx = MARGIN;
        }
        x[i] = cx;
        line[i] = n_lines - 1;
        cx += w[i] + 4;
        if (cx + MARGIN > width) {
            width = cx + MARGIN;
        }
    }
    const double y0 = MARGIN + 30;
    const double bar_y = y0 + n_lines * row_h + 10;
    char title[160];
    snprintf(title, sizeof(title), "Prompt units by %s value (nats, %s)", index_title(r),
             promptshap_method_name(r->estimate->method));
    put_header(f, width, bar_y + BAR_HEIGHT, title);

    /* one box per unit, the value under it */
    fprintf(f, "<g class=\"units\" %s text-anchor=\"middle\">\n", MONO);
    for (int i = 0; i < U; i++) {
        ps_rgb c = ps_view_color(v[i], vmax);
        double y = y0 + line[i] * row_h;
        fprintf(f, "<g class=\"unit\" data-value=\"%.6g\">", v[i]);
        fprintf(f, "<rect class=\"cell\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"24\" rx=\"3\" fill=\"", x[i], y,
                w[i]);
        ps_view_put_color(f, c);
        fputs("\"/>", f);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">", x[i] + w[i] / 2, y + 16,
                ps_view_dark(c) ? "#ffffff" : "#000000");
        label l = {r->prompt + r->units[i].start, r->units[i].end - r->units[i].start};
        put_label(f, l, STRIP_LABEL_CHARS);
        fprintf(f, "</text><text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#333333\">", x[i] + w[i] / 2, y + 38);
        put_value_text(f, v[i]);
        fputs("</text></g>\n", f);
    }
    fputs("</g>\n", f);
    put_color_bar(f, MARGIN, bar_y, vmax);
    fputs("</svg>\n", f);
    free(x);
    free(w);
    free(line);
    return ferror(f) ? PROMPTSHAP_ERR_IO : PROMPTSHAP_OK;
}
