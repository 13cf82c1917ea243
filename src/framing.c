/* SPDX-License-Identifier: MIT
 *
 * Names of the framing, unit and reasoning options, and the text of the
 * harmony conversation (the chat format of OpenAI's GPT-OSS models). The
 * C API's built-in gpt-oss template has no system message and no channels,
 * so promptshap renders harmony itself; scorer.c turns the text into tokens.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

const char * promptshap_chat_name(enum promptshap_chat chat) {
    switch (chat) {
        case PROMPTSHAP_CHAT_AUTO:     return "auto";
        case PROMPTSHAP_CHAT_NONE:     return "none";
        case PROMPTSHAP_CHAT_TEMPLATE: return "template";
        case PROMPTSHAP_CHAT_HARMONY:  return "harmony";
    }
    return NULL;
}

bool promptshap_chat_parse(const char * name, enum promptshap_chat * chat) {
    for (int c = PROMPTSHAP_CHAT_AUTO; c <= PROMPTSHAP_CHAT_HARMONY; c++) {
        if (strcmp(name, promptshap_chat_name((enum promptshap_chat)c)) == 0) {
            *chat = (enum promptshap_chat)c;
            return true;
        }
    }
    return false;
}

const char * promptshap_reasoning_name(enum promptshap_reasoning reasoning) {
    switch (reasoning) {
        case PROMPTSHAP_REASONING_LOW:    return "low";
        case PROMPTSHAP_REASONING_MEDIUM: return "medium";
        case PROMPTSHAP_REASONING_HIGH:   return "high";
    }
    return NULL;
}

bool promptshap_reasoning_parse(const char * name, enum promptshap_reasoning * reasoning) {
    for (int r = PROMPTSHAP_REASONING_LOW; r <= PROMPTSHAP_REASONING_HIGH; r++) {
        if (strcmp(name, promptshap_reasoning_name((enum promptshap_reasoning)r)) == 0) {
            *reasoning = (enum promptshap_reasoning)r;
            return true;
        }
    }
    return false;
}

const char * promptshap_unit_kind_name(enum promptshap_unit_kind kind) {
    switch (kind) {
        case PROMPTSHAP_UNITS_WORDS:     return "words";
        case PROMPTSHAP_UNITS_TOKENS:    return "tokens";
        case PROMPTSHAP_UNITS_SENTENCES: return "sentences";
    }
    return NULL;
}

bool promptshap_unit_kind_parse(const char * name, enum promptshap_unit_kind * kind) {
    for (int k = PROMPTSHAP_UNITS_WORDS; k <= PROMPTSHAP_UNITS_SENTENCES; k++) {
        if (strcmp(name, promptshap_unit_kind_name((enum promptshap_unit_kind)k)) == 0) {
            *kind = (enum promptshap_unit_kind)k;
            return true;
        }
    }
    return false;
}

/* The system message follows the default of the GPT-OSS chat template: the
 * model identity, knowledge cutoff, optional date, reasoning effort and the
 * list of valid channels. */
enum promptshap_status promptshap_harmony_render(enum promptshap_reasoning reasoning, const char * date,
                                                 bool final_channel, char ** before, char ** after) {
    *before = NULL;
    *after = NULL;
    const char * effort = promptshap_reasoning_name(reasoning);
    if (!effort) {
        return PROMPTSHAP_ERR_INVALID_ARGUMENT;
    }
    if (date && (strlen(date) != 10 || date[4] != '-' || date[7] != '-')) {
        return PROMPTSHAP_ERR_INVALID_ARGUMENT;
    }

    char date_line[64] = "";
    if (date) {
        snprintf(date_line, sizeof(date_line), "Current date: %s\n", date);
    }
    size_t n = 512;
    char * b = malloc(n);
    if (!b) {
        return PROMPTSHAP_ERR_NO_MEMORY;
    }
    snprintf(b, n,
             "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
             "Knowledge cutoff: 2024-06\n"
             "%s"
             "\n"
             "Reasoning: %s\n"
             "\n"
             "# Valid channels: analysis, commentary, final. Channel must be included for every message."
             "<|end|><|start|>user<|message|>",
             date_line, effort);

    const char * tail = final_channel ? "<|end|><|start|>assistant<|channel|>final<|message|>"
                                      : "<|end|><|start|>assistant";
    char * a = malloc(strlen(tail) + 1);
    if (!a) {
        free(b);
        return PROMPTSHAP_ERR_NO_MEMORY;
    }
    memcpy(a, tail, strlen(tail) + 1);
    *before = b;
    *after = a;
    return PROMPTSHAP_OK;
}
