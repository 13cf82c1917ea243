/* SPDX-License-Identifier: MIT
 *
 * Fuzzes the harmony renderer (promptshap_harmony_render) and the name
 * parsers of framing.c. The renderer gets any reasoning value, either
 * channel choice and any date bytes. A render it accepts must be the whole
 * system message with exactly one user header, ending where the user's
 * text goes. A rejected one must leave both outputs NULL.
 *
 * fuzz_harmony_parse fuzzes the parser of the model's harmony output.
 */
#include "fuzz.h"

static const char * const user_header = "<|end|><|start|>user<|message|>";

static size_t count(const char * s, const char * needle) {
    size_t n = 0;
    for (const char * p = strstr(s, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static bool ends_with(const char * s, const char * tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && memcmp(s + n - m, tail, m) == 0;
}

/* The parsers take a NUL-terminated name: a name they accept must be the
 * canonical one. */
static void check_parsers(const char * name) {
    enum promptshap_chat chat;
    if (promptshap_chat_parse(name, &chat)) {
        FUZZ_ASSERT(strcmp(promptshap_chat_name(chat), name) == 0);
    }
    enum promptshap_reasoning reasoning;
    if (promptshap_reasoning_parse(name, &reasoning)) {
        FUZZ_ASSERT(strcmp(promptshap_reasoning_name(reasoning), name) == 0);
    }
    enum promptshap_unit_kind kind;
    if (promptshap_unit_kind_parse(name, &kind)) {
        FUZZ_ASSERT(strcmp(promptshap_unit_kind_name(kind), name) == 0);
    }
    enum promptshap_method method;
    if (promptshap_method_parse(name, &method)) {
        FUZZ_ASSERT(strcmp(promptshap_method_name(method), name) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    fuzz_reader in = {data, size};
    const int reasoning = (int8_t)fuzz_u8(&in);
    const uint8_t flags = fuzz_u8(&in);
    const bool final_channel = flags & 1;
    const bool with_date = flags & 2;
    size_t n = 0;
    const uint8_t * bytes = fuzz_take(&in, 64, &n);
    char * date = malloc(n + 1);
    FUZZ_ASSERT(date);
    memcpy(date, bytes, n);
    date[n] = '\0';

    check_parsers(date);

    char * before = (char *)1;
    char * after = (char *)1;
    enum promptshap_status st = promptshap_harmony_render((enum promptshap_reasoning)reasoning, with_date ? date : NULL,
                                                          final_channel, &before, &after);
    const char * effort = promptshap_reasoning_name((enum promptshap_reasoning)reasoning);
    if (st != PROMPTSHAP_OK) {
        FUZZ_ASSERT(st == PROMPTSHAP_ERR_INVALID_ARGUMENT || st == PROMPTSHAP_ERR_NO_MEMORY);
        FUZZ_ASSERT(before == NULL && after == NULL);
        free(date);
        return 0;
    }

    /* accepted: a known effort and, when given, a date of the form ????-??-?? */
    FUZZ_ASSERT(effort != NULL);
    if (with_date) {
        FUZZ_ASSERT(strlen(date) == 10 && date[4] == '-' && date[7] == '-');
    }
    FUZZ_ASSERT(strncmp(before, "<|start|>system<|message|>", 26) == 0);
    FUZZ_ASSERT(ends_with(before, user_header));
    FUZZ_ASSERT(count(before, "<|start|>user<|message|>") == 1);
    char reasoning_line[64];
    snprintf(reasoning_line, sizeof(reasoning_line), "\nReasoning: %s\n", effort);
    FUZZ_ASSERT(strstr(before, reasoning_line) != NULL);
    if (with_date) {
        char date_line[64];
        snprintf(date_line, sizeof(date_line), "\nCurrent date: %s\n", date);
        FUZZ_ASSERT(strstr(before, date_line) != NULL);
    } else {
        FUZZ_ASSERT(strstr(before, "Current date:") == NULL);
    }
    FUZZ_ASSERT(strcmp(after, final_channel ? "<|end|><|start|>assistant<|channel|>final<|message|>"
                                            : "<|end|><|start|>assistant") == 0);
    free(before);
    free(after);
    free(date);
    return 0;
}
