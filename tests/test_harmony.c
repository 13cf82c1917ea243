/* SPDX-License-Identifier: MIT
 *
 * The harmony response parser on token sequences written by hand: well-formed
 * responses, tool calls, text that spells control tokens, and the malformed
 * shapes a model produces at high temperature. No model is needed: control
 * tokens get small ids, ordinary tokens carry their text.
 */
#include "promptshap.h"

#include "check.h"

#include <stdlib.h>
#include <string.h>

enum { START = 1, END = 2, MESSAGE = 3, CHANNEL = 4, CONSTRAIN = 5, RETURN = 6, CALL = 7 };

static const struct promptshap_harmony_ids ids = {
    .start = START, .end = END, .message = MESSAGE, .channel = CHANNEL,
    .constrain = CONSTRAIN, .ret = RETURN, .call = CALL,
};

/* One step of a scripted response: a control id, or 0 with text. */
typedef struct {
    int32_t id;
    const char * text;
} step;

static const char * control_text(int32_t id) {
    switch (id) {
        case START:     return "<|start|>";
        case END:       return "<|end|>";
        case MESSAGE:   return "<|message|>";
        case CHANNEL:   return "<|channel|>";
        case CONSTRAIN: return "<|constrain|>";
        case RETURN:    return "<|return|>";
        case CALL:      return "<|call|>";
    }
    return "";
}

static promptshap_generation * parse(const step * steps, int n, bool hit_limit) {
    int32_t tokens[64];
    const char * pieces[64];
    for (int i = 0; i < n; i++) {
        /* ordinary tokens get ids above the control ids */
        tokens[i] = steps[i].id ? steps[i].id : 100 + i;
        pieces[i] = steps[i].id ? control_text(steps[i].id) : steps[i].text;
    }
    promptshap_generation * g = NULL;
    promptshap_error err;
    enum promptshap_status st = promptshap_harmony_parse(tokens, pieces, n, &ids, "assistant", hit_limit, &g, &err);
    CHECK(st == PROMPTSHAP_OK);
    return g;
}

static bool has_problem(const promptshap_generation * g, const char * words) {
    for (int k = 0; k < g->n_problems; k++) {
        if (strstr(g->problems[k], words)) {
            return true;
        }
    }
    return false;
}

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void test_well_formed(void) {
    const step s[] = {
        {CHANNEL, NULL}, {0, "analysis"}, {MESSAGE, NULL}, {0, "User asks"}, {0, " about Paris."}, {END, NULL},
        {START, NULL}, {0, "assistant"}, {CHANNEL, NULL}, {0, "final"}, {MESSAGE, NULL}, {0, "Paris"},
        {0, " is in France."}, {RETURN, NULL},
    };
    promptshap_generation * g = parse(s, N(s), false);
    CHECK(g->n_messages == 2);
    CHECK(g->n_problems == 0);
    CHECK(strcmp(g->messages[0].role, "assistant") == 0);
    CHECK(strcmp(g->messages[0].channel, "analysis") == 0);
    CHECK(strcmp(g->messages[0].text, "User asks about Paris.") == 0);
    CHECK(g->messages[0].complete);
    CHECK(g->messages[0].token_begin == 3 && g->messages[0].token_end == 5);
    CHECK(strcmp(g->messages[1].channel, "final") == 0);
    CHECK(strcmp(g->messages[1].text, "Paris is in France.") == 0);
    CHECK(g->messages[1].token_begin == 11 && g->messages[1].token_end == 13);
    CHECK(!g->hit_limit);
    CHECK(strstr(g->text, "<|channel|>analysis<|message|>User asks") == g->text);

    char * final = promptshap_generation_channel_text(g, "final");
    CHECK(final && strcmp(final, "Paris is in France.") == 0);
    free(final);
    CHECK(promptshap_generation_channel_text(g, "commentary") == NULL);
    promptshap_generation_free(g);
}

static void test_tool_call(void) {
    const step s[] = {
        {CHANNEL, NULL}, {0, "commentary to=functions.get_weather"}, {0, " "}, {CONSTRAIN, NULL}, {0, "json"},
        {MESSAGE, NULL}, {0, "{\"city\": \"Paris\"}"}, {CALL, NULL},
    };
    promptshap_generation * g = parse(s, N(s), false);
    CHECK(g->n_messages == 1 && g->n_problems == 0);
    CHECK(strcmp(g->messages[0].channel, "commentary") == 0);
    CHECK(g->messages[0].recipient && strcmp(g->messages[0].recipient, "functions.get_weather") == 0);
    CHECK(g->messages[0].constrain && strcmp(g->messages[0].constrain, "json") == 0);
    CHECK(strcmp(g->messages[0].text, "{\"city\": \"Paris\"}") == 0);
    promptshap_generation_free(g);
}

/* Text that spells a control token is content: only ids make structure. */
static void test_spelled_markers_are_text(void) {
    const step s[] = {
        {CHANNEL, NULL}, {0, "final"}, {MESSAGE, NULL}, {0, "write <|channel|> or <|end|>"}, {RETURN, NULL},
    };
    promptshap_generation * g = parse(s, N(s), false);
    CHECK(g->n_messages == 1 && g->n_problems == 0);
    CHECK(strcmp(g->messages[0].text, "write <|channel|> or <|end|>") == 0);
    promptshap_generation_free(g);
}

/* A channel header inside content: the message is cut, not glued to the next. */
static void test_channel_inside_content(void) {
    const step s[] = {
        {CHANNEL, NULL}, {0, "analysis"}, {MESSAGE, NULL}, {0, "thinking"}, {CHANNEL, NULL}, {0, "final"},
        {MESSAGE, NULL}, {0, "answer"}, {RETURN, NULL},
    };
    promptshap_generation * g = parse(s, N(s), false);
    CHECK(g->n_messages == 2);
    CHECK(strcmp(g->messages[0].text, "thinking") == 0 && !g->messages[0].complete);
    CHECK(strcmp(g->messages[1].channel, "final") == 0 && strcmp(g->messages[1].text, "answer") == 0);
    CHECK(has_problem(g, "<|channel|> token at token 4 inside the content"));
    promptshap_generation_free(g);
}

static void test_malformed_headers(void) {
    /* two channel markers in one header */
    const step a[] = {
        {CHANNEL, NULL}, {0, "analysis"}, {CHANNEL, NULL}, {0, "final"}, {MESSAGE, NULL}, {0, "x"}, {RETURN, NULL},
    };
    promptshap_generation * g = parse(a, N(a), false);
    CHECK(has_problem(g, "second <|channel|>"));
    CHECK(g->n_messages == 1 && strcmp(g->messages[0].channel, "final") == 0);
    promptshap_generation_free(g);

    /* no channel, then an unknown channel */
    const step b[] = {
        {MESSAGE, NULL}, {0, "bare"}, {END, NULL}, {START, NULL}, {0, "assistant"}, {CHANNEL, NULL},
        {0, "finale"}, {MESSAGE, NULL}, {0, "y"}, {RETURN, NULL},
    };
    g = parse(b, N(b), false);
    CHECK(has_problem(g, "has no <|channel|>"));
    CHECK(has_problem(g, "'finale' before token 7 is not analysis, commentary or final"));
    CHECK(g->n_messages == 2 && strcmp(g->messages[0].channel, "") == 0);
    char * final = promptshap_generation_channel_text(g, "final");
    CHECK(final == NULL); /* "finale" is not "final" */
    free(final);
    promptshap_generation_free(g);

    /* an end token inside a header, text between messages */
    const step c[] = {
        {CHANNEL, NULL}, {0, "analysis"}, {END, NULL}, {0, "stray words"}, {START, NULL}, {0, "assistant"},
        {CHANNEL, NULL}, {0, "final"}, {MESSAGE, NULL}, {0, "z"}, {RETURN, NULL},
    };
    g = parse(c, N(c), false);
    CHECK(has_problem(g, "end token at token 2 inside a channel name"));
    CHECK(has_problem(g, "text at token 3 outside any message: 'stray words'"));
    CHECK(g->n_messages == 1 && strcmp(g->messages[0].text, "z") == 0);
    promptshap_generation_free(g);
}

static void test_truncated(void) {
    const step s[] = {
        {CHANNEL, NULL}, {0, "analysis"}, {MESSAGE, NULL}, {0, "long thoughts"},
    };
    promptshap_generation * g = parse(s, N(s), true);
    CHECK(g->hit_limit);
    CHECK(g->n_messages == 1 && !g->messages[0].complete);
    CHECK(has_problem(g, "stops after 4 tokens inside the content of a message (the token limit was reached"));
    promptshap_generation_free(g);

    const step h[] = {{CHANNEL, NULL}, {0, "fin"}};
    g = parse(h, N(h), true);
    CHECK(g->n_messages == 0);
    CHECK(has_problem(g, "inside a channel name"));
    promptshap_generation_free(g);

    /* nothing generated */
    g = parse(NULL, 0, false);
    CHECK(g->n_messages == 0 && g->n_problems == 0 && g->text && g->text[0] == '\0');
    promptshap_generation_free(g);
}

/* Two messages on one channel are joined with a blank line. */
static void test_channel_text_joins(void) {
    const step s[] = {
        {CHANNEL, NULL}, {0, "analysis"}, {MESSAGE, NULL}, {0, "one"}, {END, NULL}, {START, NULL},
        {0, "assistant"}, {CHANNEL, NULL}, {0, "analysis"}, {MESSAGE, NULL}, {0, "two"}, {END, NULL},
    };
    promptshap_generation * g = parse(s, N(s), false);
    char * text = promptshap_generation_channel_text(g, "analysis");
    CHECK(text && strcmp(text, "one\n\ntwo") == 0);
    free(text);
    promptshap_generation_free(g);
}

static void test_bad_arguments(void) {
    promptshap_generation * g = NULL;
    promptshap_error err;
    CHECK(promptshap_harmony_parse(NULL, NULL, 3, &ids, "assistant", false, &g, &err) ==
          PROMPTSHAP_ERR_INVALID_ARGUMENT);
    CHECK(g == NULL);
}

int main(void) {
    test_well_formed();
    test_tool_call();
    test_spelled_markers_are_text();
    test_channel_inside_content();
    test_malformed_headers();
    test_truncated();
    test_channel_text_joins();
    test_bad_arguments();
    return CHECK_REPORT();
}
