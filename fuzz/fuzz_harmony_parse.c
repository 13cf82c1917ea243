/* SPDX-License-Identifier: MIT
 *
 * Fuzzes the harmony response parser (promptshap_harmony_parse) on token
 * streams built from the fuzz bytes: control tokens in any order, some of
 * them missing from the vocabulary, and text tokens with any bytes,
 * including text that spells a control marker. Checks:
 *   - the generation keeps the tokens, and its text is every piece in order;
 *   - each message's content range lies inside the tokens, and its text is
 *     exactly the pieces of the text tokens in that range, so no text is
 *     glued into a message it does not belong to;
 *   - role and channel are single words;
 *   - promptshap_generation_channel_text joins a channel's messages with
 *     blank lines.
 */
#include "fuzz.h"

#define MAX_TOKENS 256

/* Control token ids, apart from the text tokens' ids (below 100000). */
static const int32_t control_ids[7] = {200006, 200007, 200008, 200005, 200003, 200002, 200012};
static const char * const control_text[7] = {
    "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>",
};

/* Text pieces that the header grammar gives a meaning to. */
static const char * const words[] = {
    "assistant", "analysis", "final", "commentary", " to=functions.get", " json", " ", "\n", "<|channel|>",
    "user", "final ", "to=", "",
};

static bool is_control(const struct promptshap_harmony_ids * ids, int32_t t) {
    return t == ids->start || t == ids->end || t == ids->message || t == ids->channel || t == ids->constrain ||
           t == ids->ret || t == ids->call;
}

static bool single_word(const char * s) {
    for (; *s; s++) {
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
            return false;
        }
    }
    return true;
}

/* Checks promptshap_generation_channel_text against the messages. */
static void check_channel_text(const promptshap_generation * g, const char * channel) {
    size_t expected_len = 0;
    int found = 0;
    for (int k = 0; k < g->n_messages; k++) {
        if (strcmp(g->messages[k].channel, channel) == 0) {
            expected_len += strlen(g->messages[k].text) + (found ? 2 : 0);
            found++;
        }
    }
    char * text = promptshap_generation_channel_text(g, channel);
    FUZZ_ASSERT((text != NULL) == (found > 0));
    if (!text) {
        return;
    }
    FUZZ_ASSERT(strlen(text) == expected_len);
    size_t pos = 0;
    int seen = 0;
    for (int k = 0; k < g->n_messages; k++) {
        if (strcmp(g->messages[k].channel, channel) != 0) {
            continue;
        }
        if (seen++ > 0) {
            FUZZ_ASSERT(memcmp(text + pos, "\n\n", 2) == 0);
            pos += 2;
        }
        size_t n = strlen(g->messages[k].text);
        FUZZ_ASSERT(memcmp(text + pos, g->messages[k].text, n) == 0);
        pos += n;
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    fuzz_reader in = {data, size};
    const uint8_t flags = fuzz_u8(&in);
    const uint8_t missing = fuzz_u8(&in);
    const bool hit_limit = flags & 1;

    /* the vocabulary's control ids, a set bit of `missing` marking one it lacks */
    int32_t id[7];
    for (int k = 0; k < 7; k++) {
        id[k] = (missing >> k) & 1 ? -1 : control_ids[k];
    }
    struct promptshap_harmony_ids ids = {id[0], id[1], id[2], id[3], id[4], id[5], id[6]};

    /* the prompt's role: usually "assistant", else any short text */
    char role[17] = "assistant";
    if (flags & 2) {
        size_t n = 0;
        const uint8_t * p = fuzz_take(&in, fuzz_range(&in, 0, 16), &n);
        for (size_t k = 0; k < n; k++) {
            role[k] = p[k] ? (char)p[k] : ' ';
        }
        role[n] = '\0';
    }

    /* the tokens */
    const int n = (int)fuzz_range(&in, 0, MAX_TOKENS);
    int32_t * tokens = malloc(((size_t)n + 1) * sizeof(int32_t));
    char ** pieces = calloc((size_t)n + 1, sizeof(char *));
    FUZZ_ASSERT(tokens && pieces);
    for (int i = 0; i < n; i++) {
        const uint8_t kind = fuzz_u8(&in) % 12;
        if (kind < 7 && id[kind] >= 0) {
            tokens[i] = id[kind];
            pieces[i] = strdup(control_text[kind]);
        } else if (kind < 9) {
            tokens[i] = (int32_t)fuzz_range(&in, 0, 99999);
            pieces[i] = strdup(words[fuzz_u8(&in) % (sizeof(words) / sizeof(words[0]))]);
        } else {
            tokens[i] = (int32_t)fuzz_range(&in, 0, 99999);
            size_t m = 0;
            const uint8_t * p = fuzz_take(&in, fuzz_range(&in, 0, 8), &m);
            pieces[i] = malloc(m + 1);
            FUZZ_ASSERT(pieces[i]);
            for (size_t k = 0; k < m; k++) {
                pieces[i][k] = p[k] ? (char)p[k] : 'x';
            }
            pieces[i][m] = '\0';
        }
        FUZZ_ASSERT(pieces[i]);
    }

    promptshap_generation * g = NULL;
    promptshap_error err;
    enum promptshap_status st =
        promptshap_harmony_parse(tokens, (const char * const *)pieces, n, &ids, role, hit_limit, &g, &err);
    FUZZ_ASSERT(st == PROMPTSHAP_OK);
    FUZZ_ASSERT(g != NULL);

    /* the tokens and the raw text */
    FUZZ_ASSERT(g->n_tokens == n);
    FUZZ_ASSERT(n == 0 || memcmp(g->tokens, tokens, (size_t)n * sizeof(int32_t)) == 0);
    FUZZ_ASSERT(g->hit_limit == hit_limit);
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        size_t m = strlen(pieces[i]);
        FUZZ_ASSERT(memcmp(g->text + pos, pieces[i], m) == 0);
        pos += m;
    }
    FUZZ_ASSERT(g->text[pos] == '\0');

    /* messages: content ranges in order of the tokens, text from text tokens only */
    for (int k = 0; k < g->n_messages; k++) {
        const promptshap_message * m = &g->messages[k];
        FUZZ_ASSERT(m->role && m->channel && m->text);
        FUZZ_ASSERT(single_word(m->role));
        FUZZ_ASSERT(single_word(m->channel));
        FUZZ_ASSERT(m->token_begin >= 0 && m->token_begin <= m->token_end && m->token_end <= n);
        if (k > 0) {
            FUZZ_ASSERT(m->token_begin >= g->messages[k - 1].token_end);
        }
        size_t at = 0;
        for (int i = m->token_begin; i < m->token_end; i++) {
            if (is_control(&ids, tokens[i])) {
                continue;
            }
            size_t len = strlen(pieces[i]);
            FUZZ_ASSERT(memcmp(m->text + at, pieces[i], len) == 0);
            at += len;
        }
        FUZZ_ASSERT(m->text[at] == '\0');
    }
    for (int k = 0; k < g->n_problems; k++) {
        FUZZ_ASSERT(g->problems[k] != NULL && g->problems[k][0] != '\0');
    }
    check_channel_text(g, "final");
    check_channel_text(g, "analysis");
    check_channel_text(g, "");

    promptshap_generation_free(g);
    for (int i = 0; i < n; i++) {
        free(pieces[i]);
    }
    free(pieces);
    free(tokens);
    return 0;
}
