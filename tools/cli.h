/* SPDX-License-Identifier: MIT
 *
 * What the command-line tool's source files share: the parsed options,
 * messages, input files, atomic output files and interruption.
 */
#ifndef PROMPTSHAP_CLI_H
#define PROMPTSHAP_CLI_H

#include "promptshap.h"

#include <limits.h>
#include <stdio.h>
#include <sys/types.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

enum command { CMD_EXPLAIN, CMD_LOGPROB, CMD_GAME, CMD_GENERATE, CMD_COMPARE };

struct cli {
    enum command command;
    const char * model;
    const char * prompt;
    const char * prompt_file;
    const char * target;
    const char * target_file;
    const char * json;
    const char * svg;   /* file name prefix of the SVG figures */
    const char * html;
    const char * csv;
    const char * game_file;
    const char * vs_prompt;      /* compare: the second prompt */
    const char * vs_prompt_file;
    const char * vs_model;       /* compare: the second model */
    const char * explain_channel; /* harmony channel explained when the target is generated */
    struct promptshap_explain_params ep;
    struct promptshap_generate_params gp;
    struct promptshap_model_params mp;
    int top_k;
    bool quiet;
    bool verbose;
    bool samples_set;   /* options that apply only in some runs, for warnings */
    bool reasoning_set;
    bool sep_set;
    bool generation_set;
    bool plan;          /* explain --plan: count the work of exact Shapley, run nothing */
};

/* Where and how an output file is written. A new or regular file is
 * written to a temporary name in its directory and renamed, so readers
 * never see a partial file, and keeps an existing file's permissions. A
 * symbolic link is followed. A device or pipe (/dev/stdout, a FIFO) is
 * written in place, since it cannot be replaced. */
typedef struct {
    char path[PATH_MAX]; /* the file written: the request with links resolved */
    bool in_place;       /* device or pipe: no temporary file */
    bool exists;
    mode_t mode;         /* permissions of the existing file */
    FILE * f;
    char tmp[PATH_MAX + 16];
} output_file;

/* Prints "promptshap: PROBLEM: 'ARG'" and a hint, exits with EXIT_USAGE. */
void usage_error(const char * problem, const char * arg);
/* Prints "promptshap: " and the message on stderr. */
void runtime_error(const char * fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Reads a whole file, NUL-terminated; NULL with a message on failure. */
char * read_file(const char * path, const char * what, size_t * len);
/* read_file for text: an empty file or one that is not UTF-8 (or holds a
 * NUL byte) fails with a message naming the file and the offset. */
char * read_text_file(const char * path, const char * what, size_t * len);

/* Resolves and checks an output path before any model work. */
bool output_prepare(output_file * o, const char * path);
/* Opens the temporary file (or the device) to write. */
bool output_open(output_file * o);
/* Drops a file that failed half-way. */
void output_abandon(output_file * o);
/* Commits a written file, or drops it with a message when a write failed. */
bool output_finish(output_file * o);
/* Flushes, syncs and renames the temporary file into place. */
bool output_commit(output_file * o);

/* SIGINT and SIGTERM set a flag that should_stop reports. */
void catch_signals(void);
bool should_stop(void * user_data);
double now_seconds(void);

/* Writes at most width display columns of s[0, n) with control characters
 * escaped, and "..." when cut. */
void print_clean(FILE * f, const char * s, size_t n, size_t width);
/* Display width of what print_clean writes. */
size_t clean_width(const char * s, size_t n, size_t width);
/* One line on the scoring engine's work. */
void print_engine(const struct promptshap_engine_stats * s);

/* The prompt (from -p or -f) and the target (--target, --target-file or
 * NULL), read before any model work; false after a message. */
bool read_inputs(const struct cli * c, char ** prompt, size_t * prompt_len, char ** target, size_t * target_len);

/* The generate and compare commands. */
int run_generate(struct cli * c);
int run_compare(struct cli * c);

#endif
