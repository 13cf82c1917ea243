/* SPDX-License-Identifier: MIT
 *
 * Game files: the complete value table of a scalar game, read into memory
 * and offered as a promptshap_game, so estimators can be run and checked
 * without a model. The format is described in promptshap.h.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

void promptshap_game_table_free(promptshap_game_table * table) {
    if (!table) {
        return;
    }
    free(table->values);
    free(table);
}

/* Reads one line into buf; false at the end of the file. A line longer
 * than the buffer is reported through *too_long, and a NUL byte in it
 * (which would end the text early) through *has_nul. */
static bool read_line(FILE * f, char * buf, size_t size, bool * too_long, bool * has_nul) {
    char * line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    if (n < 0) {
        free(line);
        return false;
    }
    *has_nul = memchr(line, '\0', (size_t)n) != NULL;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        n--;
    }
    *too_long = (size_t)n >= size;
    size_t keep = *too_long ? size - 1 : (size_t)n;
    memcpy(buf, line, keep);
    buf[keep] = '\0';
    free(line);
    return true;
}

enum promptshap_status promptshap_game_table_read(const char * path, promptshap_game_table ** out,
                                                  promptshap_error * err) {
    *out = NULL;
    ps_ok(err);
    FILE * f = fopen(path, "r");
    if (!f) {
        return ps_fail(err, PROMPTSHAP_ERR_IO, "cannot read the game file '%s': %s", path, strerror(errno));
    }
    char line[256];
    bool too_long = false;
    bool has_nul = false;
    long line_no = 1;
    enum promptshap_status st = PROMPTSHAP_OK;
    promptshap_game_table * table = calloc(1, sizeof(*table));
    if (!table) {
        fclose(f);
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory reading '%s'", path);
    }

    /* the header */
    int n = 0, used = 0;
    if (!read_line(f, line, sizeof(line), &too_long, &has_nul) || has_nul ||
        sscanf(line, "# players %d%n", &n, &used) != 1 || line[used] != '\0') {
        st = ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT, "%s:1: expected a '# players N' line", path);
        goto done;
    }
    if (n < 1 || n > PROMPTSHAP_EXACT_MAX_UNITS) {
        st = ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT, "%s:1: the number of players must be from 1 to %d, got %d",
                     path, PROMPTSHAP_EXACT_MAX_UNITS, n);
        goto done;
    }
    table->n_players = n;
    const long count = 1L << n;
    table->values = malloc((size_t)count * sizeof(double));
    if (!table->values) {
        st = ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory for 2^%d values from '%s'", n, path);
        goto done;
    }

    /* comment lines, then one line per coalition in mask order */
    long mask = 0;
    while (read_line(f, line, sizeof(line), &too_long, &has_nul)) {
        line_no++;
        if (too_long) {
            st = ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT, "%s:%ld: the line is too long", path, line_no);
            goto done;
        }
        if (has_nul) {
            st = ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT, "%s:%ld: the line contains a NUL byte", path, line_no);
            goto done;
        }
        if (line[0] == '#' && mask == 0) {
            continue;
        }
        char * end = NULL;
        errno = 0;
        long got = strtol(line, &end, 10);
        if (end == line || errno != 0 || got != mask || mask >= count) {
            st = ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT, "%s:%ld: expected the line of coalition %ld of %ld", path,
                         line_no, mask, count);
            goto done;
        }
        char * value_end = NULL;
        double value = strtod(end, &value_end);
        while (*value_end == ' ' || *value_end == '\t') {
            value_end++;
        }
        if (value_end == end || *value_end != '\0' || !isfinite(value)) {
            st = ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT, "%s:%ld: expected a finite value after mask %ld", path,
                         line_no, mask);
            goto done;
        }
        table->values[mask++] = value;
    }
    if (ferror(f)) {
        st = ps_fail(err, PROMPTSHAP_ERR_IO, "reading the game file '%s' failed", path);
    } else if (mask != count) {
        st = ps_fail(err, PROMPTSHAP_ERR_INVALID_INPUT, "%s: %ld coalition lines, expected 2^%d = %ld", path, mask, n,
                     count);
    }

done:
    fclose(f);
    if (st != PROMPTSHAP_OK) {
        promptshap_game_table_free(table);
        return st;
    }
    *out = table;
    return PROMPTSHAP_OK;
}

static enum promptshap_status table_eval(void * user_data, const uint64_t * members, int n_coalitions,
                                         double * values, promptshap_error * err) {
    (void)err;
    const promptshap_game_table * table = user_data;
    for (int k = 0; k < n_coalitions; k++) {
        uint64_t mask = members[k];
        PS_ASSERT(mask < ((uint64_t)1 << table->n_players));
        values[k] = table->values[mask];
    }
    return PROMPTSHAP_OK;
}

promptshap_game promptshap_game_table_game(promptshap_game_table * table) {
    promptshap_game game = { table->n_players, 1, table_eval, table };
    return game;
}
