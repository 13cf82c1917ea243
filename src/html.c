/* SPDX-License-Identifier: MIT
 *
 * The HTML report: one self-contained page. The prompt, the target, the
 * tables and the run's facts are written here as escaped HTML, colored, so
 * they read without the script. The inline script adds what needs
 * interaction: coloring the target by a hovered or selected unit, and the
 * matrices, drawn on canvases so that a 2,000-token target stays light.
 * The data for the script sits in a JSON script element, escaped so that
 * no text can close that element.
 */
#include "views.h"

#include <math.h>
#include <string.h>

static const char * page_style =
    "body{font-family:'DejaVu Sans',Verdana,sans-serif;margin:24px;color:#1a1a1a;background:#fff;max-width:1400px}\n"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}\n"
    ".note{color:#555;font-size:13px;margin:4px 0}\n"
    ".text{white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.9;border:1px solid #ddd;padding:10px;"
    "font-size:15px;max-height:420px;overflow-y:auto}\n"
    ".unit,.tok{unicode-bidi:isolate;border-radius:3px;padding:1px 0}\n"
    ".unit{cursor:pointer;outline-offset:1px}.unit.selected{outline:2px solid #000}\n"
    ".bar{display:inline-block;width:220px;height:12px;border:1px solid #888;vertical-align:middle;margin:0 6px}\n"
    ".legend{font-size:12px;color:#333}\n"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;"
    "vertical-align:top}\n"
    "td.num{text-align:right;font-family:'DejaVu Sans Mono',monospace;white-space:nowrap}\n"
    "td.label{max-width:360px;overflow-wrap:anywhere;unicode-bidi:isolate}\n"
    ".chip{display:inline-block;padding:0 4px;margin:1px 4px 1px 0;border-radius:3px;unicode-bidi:isolate;"
    "max-width:240px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:bottom}\n"
    ".scroll{max-height:480px;overflow:auto;border:1px solid #eee}\n"
    ".heat{display:flex;align-items:flex-start;max-height:640px;overflow-y:auto;border:1px solid #eee}\n"
    ".heat .cells{overflow-x:auto}\n"
    ".tip{position:fixed;pointer-events:none;background:#222;color:#fff;font-size:12px;padding:3px 6px;"
    "border-radius:3px;white-space:pre;display:none;z-index:10;max-width:600px;overflow:hidden}\n"
    "dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;font-size:13px}dt{color:#555}dd{margin:0;"
    "overflow-wrap:anywhere}\n";

/* The script: token coloring by unit, and canvas heatmaps. It reads the
 * colors from the data, so the page and the C code share one scale (its
 * 1e-9 is PS_VIEW_NOISE). */
static const char * page_script =
    "(function () {\n"
    "'use strict';\n"
    "var data = JSON.parse(document.getElementById('promptshap-data').textContent);\n"
    "var K = data.colors, U = data.n_units, T = data.n_tokens, M = data.matrix;\n"
    "function mix(a, b, t) { return Math.round(a + t * (b - a)); }\n"
    "function color(v, vmax) {\n"
    "  if (v === null || !isFinite(v) || !(vmax > 0)) return K.missing;\n"
    "  var t = Math.min(1, Math.abs(v) / vmax), e = v < 0 ? K.negative : K.positive;\n"
    "  return [mix(K.zero[0], e[0], t), mix(K.zero[1], e[1], t), mix(K.zero[2], e[2], t)];\n"
    "}\n"
    "function css(c) { return 'rgb(' + c[0] + ', ' + c[1] + ', ' + c[2] + ')'; }\n"
    "function dark(c) { return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2] < 128; }\n"
    "function scale(get, n) { var m = 0; for (var k = 0; k < n; k++) { var v = get(k);\n"
    "  if (v !== null && isFinite(v) && Math.abs(v) > m) m = Math.abs(v); } return m > 1e-9 ? m : 1; }\n"
    "function fmt(v) { return v === null || !isFinite(v) ? 'not finite' : (v >= 0 ? '+' : '') + v.toFixed(4); }\n"
    "function visible(s) { return s.replace(/ /g, '\\u00b7').replace(/\\n/g, '\\u21b5').replace(/\\t/g, '\\u2192'); }\n"
    "function cut(s, n) { var a = Array.from(s); return a.length > n ? a.slice(0, n).join('') + '\\u2026' : s; }\n"
    "var tip = document.createElement('div'); tip.className = 'tip'; document.body.appendChild(tip);\n"
    "function showTip(ev, text) { tip.textContent = text; tip.style.display = 'block';\n"
    "  tip.style.left = (ev.clientX + 14) + 'px'; tip.style.top = (ev.clientY + 14) + 'px'; }\n"
    "function hideTip() { tip.style.display = 'none'; }\n"
    "\n"
    "// the target colored by one unit's row, or by every unit's sum\n"
    "var units = document.querySelectorAll('#prompt .unit');\n"
    "var toks = document.querySelectorAll('#target .tok');\n"
    "var colsum = new Array(T);\n"
    "for (var t = 0; t < T; t++) { var s = 0; for (var i = 0; i < U; i++) s += M[i * T + t]; colsum[t] = s; }\n"
    "var sumMax = scale(function (k) { return colsum[k]; }, T);\n"
    "var rowMax = scale(function (k) { return M[k]; }, U * T);\n"
    "var pinned = -1;\n"
    "function showTokens(i) {\n"
    "  var vmax = i < 0 ? sumMax : rowMax;\n"
    "  for (var t = 0; t < toks.length; t++) {\n"
    "    var v = i < 0 ? colsum[t] : M[i * T + t], c = color(v, vmax);\n"
    "    toks[t].style.backgroundColor = css(c); toks[t].style.color = dark(c) ? '#fff' : '#000';\n"
    "    toks[t].title = 'token ' + t + ' ' + JSON.stringify(data.tokens[t]) + ': ' + fmt(v) + ' nats';\n"
    "  }\n"
    "  for (var k = 0; k < units.length; k++) units[k].classList.toggle('selected', k === i);\n"
    "  document.getElementById('target-by').textContent = i < 0 ? 'all units together (sum of each token\\u2019s column)'\n"
    "    : 'unit ' + i + ' \\u201c' + cut(data.units[i], 60) + '\\u201d' + (i === pinned ? ' (selected; click it again to clear)' : '');\n"
    "  document.getElementById('target-min').textContent = fmt(-vmax);\n"
    "  document.getElementById('target-max').textContent = fmt(vmax);\n"
    "}\n"
    "Array.prototype.forEach.call(units, function (el) {\n"
    "  var i = Number(el.getAttribute('data-i'));\n"
    "  el.addEventListener('mouseenter', function () { showTokens(i); });\n"
    "  el.addEventListener('mouseleave', function () { showTokens(pinned); });\n"
    "  el.addEventListener('focus', function () { showTokens(i); });\n"
    "  el.addEventListener('blur', function () { showTokens(pinned); });\n"
    "  el.addEventListener('click', function () { pinned = pinned === i ? -1 : i; showTokens(pinned >= 0 ? pinned : i); });\n"
    "  el.addEventListener('keydown', function (ev) { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); el.click(); } });\n"
    "});\n"
    "showTokens(-1);\n"
    "\n"
    "// a heatmap on canvases: fixed row labels, cells that scroll sideways\n"
    "function heatmap(host, rows, cols, get, vmax, colKind) {\n"
    "  host.textContent = '';\n"
    "  var nr = rows.length, nc = cols.length, dpr = window.devicePixelRatio || 1;\n"
    "  var cw = Math.max(3, Math.min(18, Math.floor(30000 / Math.max(1, nc)))), ch = 18;\n"
    "  var font = '12px \"DejaVu Sans Mono\", monospace';\n"
    "  var probe = document.createElement('canvas').getContext('2d'); probe.font = font;\n"
    "  var rowText = rows.map(function (s) { return cut(visible(s), 24); });\n"
    "  var colText = cols.map(function (s) { return cut(visible(s), 14); });\n"
    "  var lw = 8 + Math.max.apply(null, rowText.map(function (s) { return probe.measureText(s).width; }).concat([20]));\n"
    "  var rotate = cw >= 12;\n"
    "  var top = rotate ? 8 + Math.max.apply(null, colText.map(function (s) { return probe.measureText(s).width; }).concat([20])) : 22;\n"
    "  function canvas(w, h) { var c = document.createElement('canvas'); c.width = Math.ceil(w * dpr); c.height = Math.ceil(h * dpr);\n"
    "    c.style.width = w + 'px'; c.style.height = h + 'px'; var g = c.getContext('2d'); g.scale(dpr, dpr); g.font = font; return [c, g]; }\n"
    "  var left = canvas(lw, top + nr * ch), lg = left[1];\n"
    "  lg.fillStyle = '#000'; lg.textAlign = 'right'; lg.textBaseline = 'middle';\n"
    "  for (var i = 0; i < nr; i++) lg.fillText(rowText[i], lw - 6, top + i * ch + ch / 2);\n"
    "  var right = canvas(nc * cw + 1, top + nr * ch), g = right[1];\n"
    "  g.fillStyle = '#000'; g.textBaseline = 'middle';\n"
    "  for (var j = 0; j < nc; j++) {\n"
    "    if (rotate) { g.save(); g.translate(j * cw + cw / 2, top - 4); g.rotate(-Math.PI / 2); g.fillText(colText[j], 0, 0); g.restore(); }\n"
    "    else if (j % 10 === 0) { g.fillText(String(j), j * cw, top / 2); g.fillRect(j * cw, top - 5, 1, 5); }\n"
    "  }\n"
    "  for (var r = 0; r < nr; r++) for (var k = 0; k < nc; k++) {\n"
    "    g.fillStyle = css(color(get(r, k), vmax)); g.fillRect(k * cw, top + r * ch, cw - (cw > 4 ? 1 : 0), ch - 1);\n"
    "  }\n"
    "  right[0].addEventListener('mousemove', function (ev) {\n"
    "    var b = right[0].getBoundingClientRect(), k = Math.floor((ev.clientX - b.left) / cw), r = Math.floor((ev.clientY - b.top - top) / ch);\n"
    "    if (r < 0 || r >= nr || k < 0 || k >= nc) { hideTip(); return; }\n"
    "    showTip(ev, 'unit ' + r + ' ' + cut(visible(rows[r]), 40) + '\\n' + colKind + ' ' + k + ' ' + cut(visible(cols[k]), 40) + '\\n' + fmt(get(r, k)) + ' nats');\n"
    "  });\n"
    "  right[0].addEventListener('mouseleave', hideTip);\n"
    "  var wrap = document.createElement('div'); wrap.className = 'heat';\n"
    "  var cells = document.createElement('div'); cells.className = 'cells'; cells.appendChild(right[0]);\n"
    "  wrap.appendChild(left[0]); wrap.appendChild(cells); host.appendChild(wrap);\n"
    "  var note = document.createElement('p'); note.className = 'legend';\n"
    "  note.textContent = 'scale ' + fmt(-vmax) + ' (blue) to ' + fmt(vmax) + ' (orange) nats; hover a cell for its value';\n"
    "  host.appendChild(note);\n"
    "}\n"
    "heatmap(document.getElementById('matrix'), data.units, data.tokens, function (i, t) { return M[i * T + t]; }, rowMax, 'token');\n"
    "var S = data.sentences;\n"
    "if (S) {\n"
    "  var pick = document.getElementById('sentence-agg');\n"
    "  var drawSentences = function () {\n"
    "    var key = pick.value;\n"
    "    var get = function (i, k) { return S[k][key][i]; };\n"
    "    var vmax = scale(function (n) { return get(n % U, Math.floor(n / U)); }, U * S.length);\n"
    "    heatmap(document.getElementById('sentence-matrix'), data.units, S.map(function (s) { return s.text; }), get, vmax, 'sentence');\n"
    "  };\n"
    "  pick.addEventListener('change', drawSentences);\n"
    "  drawSentences();\n"
    "}\n"
    "if (data.interactions) {\n"
    "  var P = data.interactions;\n"
    "  heatmap(document.getElementById('interactions'), data.units, data.units, function (i, j) { return P[i * U + j]; },\n"
    "    scale(function (k) { return P[k]; }, U * U), 'unit');\n"
    "}\n"
    "document.body.setAttribute('data-ready', '1');\n"
    "})();\n";

/*
 * Pieces
 */

static void put_text(FILE * f, const char * s, size_t n) {
    ps_view_put_text(f, s, n, 0, 0);
}

static void put_cstr(FILE * f, const char * s) {
    ps_view_put_text(f, s, strlen(s), 0, 0);
}

/* A style attribute coloring an element by value. */
static void put_style(FILE * f, double v, double vmax) {
    ps_rgb c = ps_view_color(v, vmax);
    fputs(" style=\"background-color:", f);
    ps_view_put_color(f, c);
    fprintf(f, ";color:%s\"", ps_view_dark(c) ? "#ffffff" : "#000000");
}

static void put_value(FILE * f, double v) {
    if (isfinite(v)) {
        fprintf(f, "%+.4f", v);
    } else {
        fputs("not finite", f);
    }
}

/* The color bar as a CSS gradient with labelled ends. */
static void put_legend(FILE * f, double vmax, const char * min_id, const char * max_id) {
    fputs("<p class=\"legend\"><span", f);
    if (min_id) {
        fprintf(f, " id=\"%s\"", min_id);
    }
    fputc('>', f);
    put_value(f, -vmax);
    fputs("</span><span class=\"bar\" style=\"background:linear-gradient(to right", f);
    for (int k = 0; k <= 10; k++) {
        fputc(',', f);
        ps_view_put_color(f, ps_view_color(vmax * (k - 5) / 5.0, vmax));
    }
    fputs(")\"></span><span", f);
    if (max_id) {
        fprintf(f, " id=\"%s\"", max_id);
    }
    fputc('>', f);
    put_value(f, vmax);
    fputs("</span> nats: blue lowers, orange raises the target's log-probability</p>\n", f);
}

/* Rounds a byte offset up to the start of a UTF-8 character. */
static size_t char_start(const char * s, size_t len, size_t i) {
    while (i < len && ((unsigned char)s[i] & 0xc0) == 0x80) {
        i++;
    }
    return i;
}

/*
 * Sections
 */

static void put_prompt(FILE * f, const promptshap_result * r) {
    const promptshap_estimate * e = r->estimate;
    const double vmax = ps_view_scale(e->values, (size_t)r->n_units);
    fputs("<section id=\"prompt-section\"><h2>Prompt</h2>\n", f);
    fprintf(f, "<p class=\"note\">Each of the %d %s colored by its %s value. Hover or focus one to color the "
               "target by its contribution; click it to keep that coloring.</p>\n",
            r->n_units, promptshap_unit_kind_name(r->unit_kind), promptshap_method_index(e->method));
    put_legend(f, vmax, NULL, NULL);
    fputs("<div id=\"prompt\" class=\"text\">", f);
    size_t pos = 0;
    for (int i = 0; i < r->n_units; i++) {
        promptshap_span u = r->units[i];
        put_text(f, r->prompt + pos, u.start - pos);
        fprintf(f, "<span class=\"unit\" tabindex=\"0\" data-i=\"%d\" data-value=\"%.17g\"", i, e->values[i]);
        put_style(f, e->values[i], vmax);
        fprintf(f, " title=\"unit %d: ", i);
        put_value(f, e->values[i]);
        fputs(" nats\">", f);
        put_text(f, r->prompt + u.start, u.end - u.start);
        fputs("</span>", f);
        pos = u.end;
    }
    put_cstr(f, r->prompt + pos);
    fputs("</div></section>\n", f);
}

static enum promptshap_status put_target(FILE * f, const promptshap_result * r) {
    const promptshap_estimate * e = r->estimate;
    const int T = r->n_target_tokens;
    const size_t len = strlen(r->target);
    double * colsum = calloc((size_t)T + 1, sizeof(double));
    if (!colsum) {
        return PROMPTSHAP_ERR_NO_MEMORY;
    }
    for (int i = 0; i < r->n_units; i++) {
        for (int t = 0; t < T; t++) {
            colsum[t] += e->matrix[(size_t)i * T + t];
        }
    }
    const double vmax = ps_view_scale(colsum, (size_t)T);
    fputs("<section id=\"target-section\"><h2>Target</h2>\n", f);
    fprintf(f, "<p class=\"note\">Each of the %d target tokens colored by the contribution of <b id=\"target-by\">all "
               "units together (sum of each token's column)</b>.</p>\n",
            T);
    put_legend(f, vmax, "target-min", "target-max");

    /* token spans in target order; a span cut inside a character is moved
     * to the character's end, so each token shows whole characters */
    fputs("<div id=\"target\" class=\"text\">", f);
    size_t pos = 0;
    for (int t = 0; t < T; t++) {
        promptshap_span s = r->target_tokens[t].span;
        size_t start = char_start(r->target, len, s.start > pos ? s.start : pos);
        size_t end = char_start(r->target, len, s.end > start ? s.end : start);
        put_text(f, r->target + pos, start - pos);
        fprintf(f, "<span class=\"tok\" data-t=\"%d\"", t);
        put_style(f, colsum[t], vmax);
        fputc('>', f);
        put_text(f, r->target + start, end - start);
        fputs("</span>", f);
        pos = end;
    }
    put_text(f, r->target + pos, len - pos);
    fputs("</div></section>\n", f);
    free(colsum);
    return PROMPTSHAP_OK;
}

static void put_units_table(FILE * f, const promptshap_result * r) {
    const promptshap_estimate * e = r->estimate;
    const double vmax = ps_view_scale(e->values, (size_t)r->n_units);
    double total_abs = 0.0;
    for (int i = 0; i < r->n_units; i++) {
        total_abs += isfinite(e->values[i]) ? fabs(e->values[i]) : 0.0;
    }
    if (total_abs <= PS_VIEW_NOISE * r->n_units) {
        total_abs = 0.0; /* rounding only: no shares */
    }
    fputs("<section id=\"units-section\"><h2>Units</h2>\n<div class=\"scroll\"><table id=\"units\">\n", f);
    fputs("<tr><th>#</th><th>unit</th><th>bytes</th><th>value (nats)</th><th>standard error</th><th>share of "
          "|values|</th></tr>\n",
          f);
    for (int i = 0; i < r->n_units; i++) {
        promptshap_span u = r->units[i];
        fprintf(f, "<tr><td class=\"num\">%d</td><td class=\"label\">", i);
        put_text(f, r->prompt + u.start, u.end - u.start);
        fprintf(f, "</td><td class=\"num\">%zu-%zu</td><td class=\"num\"", u.start, u.end);
        put_style(f, e->values[i], vmax);
        fputc('>', f);
        put_value(f, e->values[i]);
        fprintf(f, "</td><td class=\"num\">%.4f</td><td class=\"num\">%.1f%%</td></tr>\n", e->std_error[i],
                total_abs > 0 ? 100.0 * fabs(e->values[i]) / total_abs : 0.0);
    }
    fputs("</table></div></section>\n", f);
}

/* The sentence table: each sentence with the three units of largest |sum|. */
static void put_sentence_table(FILE * f, const promptshap_result * r) {
    const int U = r->n_units;
    double vmax = 0.0;
    for (int k = 0; k < r->n_sentences; k++) {
        double m = ps_view_scale(r->sentences[k].sum, (size_t)U);
        vmax = m > vmax ? m : vmax;
    }
    fputs("<section id=\"sentences-section\"><h2>Sentences</h2>\n", f);
    fputs("<p class=\"note\">Each target sentence with the three units whose values summed over the sentence's "
          "tokens are largest in magnitude.</p>\n",
          f);
    fputs("<div class=\"scroll\"><table id=\"sentences\">\n<tr><th>#</th><th>tokens</th><th>sentence</th><th>top "
          "units (sum, nats)</th></tr>\n",
          f);
    for (int k = 0; k < r->n_sentences; k++) {
        const promptshap_sentence * s = &r->sentences[k];
        fprintf(f, "<tr class=\"sentence\"><td class=\"num\">%d</td><td class=\"num\">%d-%d</td><td class=\"label\">",
                k + 1, s->token_begin, s->token_end);
        put_text(f, r->target + s->span.start, s->span.end - s->span.start);
        fputs("</td><td>", f);
        int top[3];
        int n_top = promptshap_sentence_top_units(r, k, top, 3);
        for (int a = 0; a < n_top; a++) {
            int best = top[a];
            fputs("<span class=\"chip\"", f);
            put_style(f, s->sum[best], vmax);
            fputc('>', f);
            put_text(f, r->prompt + r->units[best].start, r->units[best].end - r->units[best].start);
            fputs(" ", f);
            put_value(f, s->sum[best]);
            fputs("</span>", f);
        }
        fputs("</td></tr>\n", f);
    }
    fputs("</table></div></section>\n", f);
}

static void put_fact(FILE * f, const char * name, const char * value) {
    fprintf(f, "<dt>%s</dt><dd>", name);
    put_cstr(f, value);
    fputs("</dd>\n", f);
}

static void put_run(FILE * f, const promptshap_result * r, const struct promptshap_json_meta * meta) {
    const promptshap_estimate * e = r->estimate;
    char buf[160];
    fputs("<section id=\"run-section\"><h2>Run</h2>\n<dl id=\"run\">\n", f);
    put_fact(f, "model", meta && meta->model ? meta->model : "");
    put_fact(f, "framing", promptshap_chat_name(r->chat));
    put_fact(f, "units", promptshap_unit_kind_name(r->unit_kind));
    snprintf(buf, sizeof(buf), "%s (%s)", promptshap_method_name(e->method), promptshap_method_index(e->method));
    put_fact(f, "method", buf);
    if (e->note) {
        put_fact(f, "method note", e->note);
    }
    if (e->budget > 0) {
        snprintf(buf, sizeof(buf), "%ld coalitions", e->budget);
        put_fact(f, "budget", buf);
    }
    if (e->n_samples > 0) {
        snprintf(buf, sizeof(buf), "%d permutations%s", e->n_samples, e->stopped_early ? ", stopped at the tolerance" : "");
        put_fact(f, "samples", buf);
    }
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)(meta ? meta->seed : 0));
    put_fact(f, "seed", buf);
    snprintf(buf, sizeof(buf), "%ld coalitions", e->n_evaluations);
    put_fact(f, "evaluations", buf);
    if (!meta || meta->include_timing) {
        snprintf(buf, sizeof(buf), "%.2f s", r->seconds);
        put_fact(f, "time", buf);
    }
    snprintf(buf, sizeof(buf), "%+.6f nats (full prompt, %d target tokens)", e->v_full_total, r->n_target_tokens);
    put_fact(f, "v(N)", buf);
    snprintf(buf, sizeof(buf), "%+.6f nats (no prompt units)", e->v_empty_total);
    put_fact(f, "v(empty)", buf);
    snprintf(buf, sizeof(buf), "%.3g nats, |sum of values - (v(N) - v(empty))|", e->efficiency_gap);
    put_fact(f, "efficiency gap", buf);
    double se_max = 0.0;
    for (int i = 0; i < r->n_units; i++) {
        se_max = e->std_error[i] > se_max ? e->std_error[i] : se_max;
    }
    snprintf(buf, sizeof(buf), "largest %.4f nats (per unit in the units table)", se_max);
    put_fact(f, "standard errors", buf);
    snprintf(buf, sizeof(buf), "promptshap %s, llama.cpp %s", PROMPTSHAP_VERSION, PROMPTSHAP_LLAMA_RELEASE);
    put_fact(f, "software", buf);
    fputs("</dl></section>\n", f);
}

/* The script's data: texts, values and the colors of the scale. */
static void put_data(FILE * f, const promptshap_result * r) {
    const promptshap_estimate * e = r->estimate;
    const int U = r->n_units;
    const int T = r->n_target_tokens;
    fputs("<script type=\"application/json\" id=\"promptshap-data\">{\"colors\": {", f);
    const ps_rgb * anchors[] = {&ps_view_negative, &ps_view_zero, &ps_view_positive, &ps_view_missing};
    const char * names[] = {"negative", "zero", "positive", "missing"};
    for (int k = 0; k < 4; k++) {
        fprintf(f, "%s\"%s\": [%d, %d, %d]", k ? ", " : "", names[k], anchors[k]->r, anchors[k]->g, anchors[k]->b);
    }
    fprintf(f, "},\n\"n_units\": %d, \"n_tokens\": %d,\n\"units\": [", U, T);
    for (int i = 0; i < U; i++) {
        fputs(i ? ", " : "", f);
        ps_view_put_json_string(f, r->prompt + r->units[i].start, r->units[i].end - r->units[i].start);
    }
    fputs("],\n\"tokens\": [", f);
    for (int t = 0; t < T; t++) {
        fputs(t ? ", " : "", f);
        ps_view_put_json_string(f, r->target_tokens[t].text, strlen(r->target_tokens[t].text));
    }
    fputs("],\n\"matrix\": [", f);
    for (size_t k = 0; k < (size_t)U * T; k++) {
        if (k > 0) {
            /* a line break every 64 numbers keeps the page's source readable */
            fputs(k % 64 == 0 ? ",\n" : ",", f);
        }
        ps_view_put_json_number(f, e->matrix[k]);
    }
    fputs("]", f);
    if (r->sentences) {
        fputs(",\n\"sentences\": [", f);
        for (int k = 0; k < r->n_sentences; k++) {
            const promptshap_sentence * s = &r->sentences[k];
            const double * arrays[] = {s->sum, s->sum_abs, s->mean_abs};
            const char * keys[] = {"sum", "sum_abs", "mean_abs"};
            fputs(k ? ",\n{\"text\": " : "{\"text\": ", f);
            ps_view_put_json_string(f, r->target + s->span.start, s->span.end - s->span.start);
            for (int a = 0; a < 3; a++) {
                fprintf(f, ", \"%s\": [", keys[a]);
                for (int i = 0; i < U; i++) {
                    fputs(i ? "," : "", f);
                    ps_view_put_json_number(f, arrays[a][i]);
                }
                fputc(']', f);
            }
            fputc('}', f);
        }
        fputc(']', f);
    }
    if (e->interactions) {
        fputs(",\n\"interactions\": [", f);
        for (size_t k = 0; k < (size_t)U * U; k++) {
            fputs(k ? "," : "", f);
            ps_view_put_json_number(f, e->interactions[k]);
        }
        fputc(']', f);
    }
    fputs("}</script>\n", f);
}

/*
 * The page
 */

enum promptshap_status promptshap_result_write_html(const promptshap_result * r,
                                                    const struct promptshap_json_meta * meta, FILE * f) {
    const promptshap_estimate * e = r->estimate;
    if (!e) {
        return PROMPTSHAP_ERR_INVALID_ARGUMENT;
    }

    /* head: no request may leave the page */
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n", f);
    fputs("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
          "script-src 'unsafe-inline'\">\n",
          f);
    fputs("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n", f);
    fputs("<title>promptshap: attribution report</title>\n<style>\n", f);
    fputs(page_style, f);
    fputs("</style>\n</head>\n<body>\n", f);

    /* summary */
    fputs("<h1>promptshap: attribution report</h1>\n<p class=\"note\">", f);
    fprintf(f, "%d %s, %d target tokens, %s on %s framing. A value is the change in the target's log-probability "
               "(nats) that a prompt unit brings.</p>\n",
            r->n_units, promptshap_unit_kind_name(r->unit_kind), r->n_target_tokens, promptshap_method_name(e->method),
            promptshap_chat_name(r->chat));

    put_prompt(f, r);
    if (put_target(f, r) != PROMPTSHAP_OK) {
        return PROMPTSHAP_ERR_NO_MEMORY;
    }
    put_units_table(f, r);
    if (r->sentences) {
        put_sentence_table(f, r);
    }

    /* the matrices, drawn by the script */
    fputs("<section id=\"matrix-section\"><h2>Unit x target token</h2>\n<div id=\"matrix\"><noscript>The matrix "
          "needs JavaScript.</noscript></div></section>\n",
          f);
    if (r->sentences) {
        fputs("<section id=\"sentence-matrix-section\"><h2>Unit x target sentence</h2>\n<p class=\"note\"><label>"
              "aggregation over each sentence's tokens <select id=\"sentence-agg\">"
              "<option value=\"sum\">sum</option><option value=\"sum_abs\">sum of absolute values</option>"
              "<option value=\"mean_abs\">mean of absolute values</option></select></label></p>\n"
              "<div id=\"sentence-matrix\"></div></section>\n",
              f);
    }
    if (e->interactions) {
        fputs("<section id=\"interactions-section\"><h2>Pairwise interactions</h2>\n<div id=\"interactions\"></div>"
              "</section>\n",
              f);
    }
    put_run(f, r, meta);

    put_data(f, r);
    fputs("<script>\n", f);
    fputs(page_script, f);
    fputs("</script>\n</body>\n</html>\n", f);
    return ferror(f) ? PROMPTSHAP_ERR_IO : PROMPTSHAP_OK;
}
