/* SPDX-License-Identifier: MIT
 *
 * Reading a generated harmony response. A harmony message is
 *
 *     <|start|>ROLE [to=RECIPIENT]<|channel|>CHANNEL [to=RECIPIENT] [<|constrain|>TYPE]<|message|>CONTENT<|end|>
 *
 * and the last one ends with <|return|> (or <|call|> for a tool call)
 * instead of <|end|>. The prompt ends with "<|start|>assistant", so the
 * first generated tokens continue that header. The parser walks the token
 * ids, never the text, so a user or model that writes the characters
 * "<|channel|>" produces content, not structure. Anything that does not fit
 * the grammar is reported as a problem and starts a fresh part; it is never
 * appended to a neighbouring message.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* A malloc'ed copy of s[0, n), NUL-terminated. */
static char * dup_n(const char * s, size_t n) {
    char * d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static const char * skip_space(const char * s) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
        s++;
    }
    return s;
}

/* The first word of s (up to whitespace), malloc'ed. */
static char * first_word(const char * s) {
    s = skip_space(s);
    size_t n = 0;
    while (s[n] && s[n] != ' ' && s[n] != '\t' && s[n] != '\n' && s[n] != '\r') {
        n++;
    }
    return dup_n(s, n);
}

/* The value of the first "to=..." word in s, malloc'ed, or NULL. */
static char * find_recipient(const char * s) {
    const char * p = s;
    while ((p = strstr(p, "to=")) != NULL) {
        if (p == s || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n') {
            return first_word(p + 3);
        }
        p += 3;
    }
    return NULL;
}

enum part {
    PART_ROLE,      /* header text before <|channel|> */
    PART_CHANNEL,   /* header text after <|channel|> */
    PART_CONSTRAIN, /* header text after <|constrain|> */
    PART_CONTENT,   /* after <|message|> */
    PART_OUTSIDE,   /* after an end token, before the next <|start|> */
};

typedef struct {
    promptshap_generation * g;
    int cap_messages;
    int cap_problems;
    bool failed; /* out of memory */
    /* the message being read */
    enum part part;
    ps_text role, channel, constrain, content;
    bool has_channel;
    int content_begin;
} parser;

static void problem(parser * p, const char * fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void problem(parser * p, const char * fmt, ...) {
    promptshap_generation * g = p->g;
    if (g->n_problems == p->cap_problems) {
        int cap = p->cap_problems ? 2 * p->cap_problems : 4;
        char ** d = realloc(g->problems, (size_t)cap * sizeof(char *));
        if (!d) {
            p->failed = true;
            return;
        }
        g->problems = d;
        p->cap_problems = cap;
    }
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    char * s = dup_n(text, strlen(text));
    if (!s) {
        p->failed = true;
        return;
    }
    g->problems[g->n_problems++] = s;
}

static void reset_header(parser * p, const char * role) {
    p->role.n = 0;
    p->channel.n = 0;
    p->constrain.n = 0;
    p->content.n = 0;
    if (p->role.data) {
        p->role.data[0] = '\0';
    }
    if (p->channel.data) {
        p->channel.data[0] = '\0';
    }
    if (p->constrain.data) {
        p->constrain.data[0] = '\0';
    }
    if (p->content.data) {
        p->content.data[0] = '\0';
    }
    if (role && !ps_text_add(&p->role, role, strlen(role))) {
        p->failed = true;
    }
    p->has_channel = false;
    p->part = PART_ROLE;
}

/* Ends the message being read at token end (exclusive). */
static void emit(parser * p, int end, bool complete) {
    promptshap_generation * g = p->g;
    if (g->n_messages == p->cap_messages) {
        int cap = p->cap_messages ? 2 * p->cap_messages : 4;
        promptshap_message * d = realloc(g->messages, (size_t)cap * sizeof(promptshap_message));
        if (!d) {
            p->failed = true;
            return;
        }
        g->messages = d;
        p->cap_messages = cap;
    }
    const char * role = p->role.data ? p->role.data : "";
    const char * channel = p->channel.data ? p->channel.data : "";
    promptshap_message m = { 0 };
    m.role = first_word(role);
    m.channel = first_word(channel);
    m.recipient = find_recipient(channel);
    if (!m.recipient) {
        m.recipient = find_recipient(role);
    }
    if (p->constrain.n > 0) {
        m.constrain = first_word(p->constrain.data);
    }
    m.text = dup_n(p->content.data ? p->content.data : "", p->content.n);
    m.token_begin = p->content_begin;
    m.token_end = end;
    m.complete = complete;
    if (!m.role || !m.channel || !m.text) {
        free(m.role);
        free(m.channel);
        free(m.recipient);
        free(m.constrain);
        free(m.text);
        p->failed = true;
        return;
    }
    g->messages[g->n_messages++] = m;
}

static const char * part_name(enum part part) {
    switch (part) {
        case PART_ROLE:      return "a message header";
        case PART_CHANNEL:   return "a channel name";
        case PART_CONSTRAIN: return "a content type";
        case PART_CONTENT:   return "message content";
        case PART_OUTSIDE:   return "the space between messages";
    }
    return "?";
}

enum promptshap_status promptshap_harmony_parse(const int32_t * tokens, const char * const * pieces, int n,
                                                const struct promptshap_harmony_ids * ids, const char * role,
                                                bool hit_limit, promptshap_generation ** out,
                                                promptshap_error * err) {
    *out = NULL;
    ps_ok(err);
    if (n < 0 || (n > 0 && (!tokens || !pieces)) || !ids) {
        return ps_fail(err, PROMPTSHAP_ERR_INVALID_ARGUMENT, "harmony parse: no tokens or ids given");
    }
    promptshap_generation * g = calloc(1, sizeof(*g));
    if (!g) {
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory");
    }
    g->chat = PROMPTSHAP_CHAT_HARMONY;
    g->hit_limit = hit_limit;
    g->n_tokens = n;
    g->tokens = malloc(((size_t)n + 1) * sizeof(int32_t));
    parser p = { .g = g };
    ps_text text = { 0 };
    if (!g->tokens || !ps_text_add(&text, "", 0)) {
        p.failed = true;
    } else if (n > 0) {
        memcpy(g->tokens, tokens, (size_t)n * sizeof(int32_t));
    }
    reset_header(&p, role ? role : "assistant");
    bool ended = false; /* <|return|> or <|call|> seen */

    for (int i = 0; i < n && !p.failed; i++) {
        int32_t t = tokens[i];
        const char * piece = pieces[i] ? pieces[i] : "";
        if (!ps_text_add(&text, piece, strlen(piece))) {
            p.failed = true;
            break;
        }
        if (ended) {
            problem(&p, "token %d comes after the response ended", i);
            continue;
        }
        if (t == ids->start) {
            if (p.part == PART_CONTENT) {
                problem(&p, "a <|start|> token at token %d inside the content of a message that was never "
                            "ended; the message is kept as incomplete", i);
                emit(&p, i, false);
            } else if (p.part != PART_OUTSIDE) {
                problem(&p, "a <|start|> token at token %d inside %s; that header is dropped", i, part_name(p.part));
            }
            reset_header(&p, NULL);
        } else if (t == ids->channel) {
            if (p.part == PART_CONTENT) {
                problem(&p, "a <|channel|> token at token %d inside the content of a message; the message is "
                            "kept as incomplete and a new header starts", i);
                emit(&p, i, false);
                const char * r = p.role.data ? p.role.data : "";
                char * keep = dup_n(r, strlen(r));
                reset_header(&p, keep ? keep : "");
                free(keep);
            } else if (p.part == PART_OUTSIDE) {
                problem(&p, "a <|channel|> token at token %d without a <|start|> before it", i);
                reset_header(&p, "");
            } else if (p.has_channel) {
                problem(&p, "a second <|channel|> token at token %d in one header; the channel name so far "
                            "('%s') is dropped", i, p.channel.data ? p.channel.data : "");
                p.channel.n = 0;
                if (p.channel.data) {
                    p.channel.data[0] = '\0';
                }
            }
            p.has_channel = true;
            p.part = PART_CHANNEL;
        } else if (t == ids->constrain) {
            if (p.part == PART_ROLE || p.part == PART_CHANNEL) {
                p.part = PART_CONSTRAIN;
            } else {
                problem(&p, "a <|constrain|> token at token %d inside %s", i, part_name(p.part));
            }
        } else if (t == ids->message) {
            if (p.part == PART_CONTENT) {
                problem(&p, "a second <|message|> token at token %d in one message; it is left out", i);
                continue;
            }
            if (p.part == PART_OUTSIDE) {
                problem(&p, "a <|message|> token at token %d without a <|start|> before it", i);
                reset_header(&p, "");
            }
            if (!p.has_channel) {
                problem(&p, "the message whose content starts at token %d has no <|channel|> in its header", i + 1);
            } else {
                char * name = first_word(p.channel.data ? p.channel.data : "");
                if (name && strcmp(name, "analysis") != 0 && strcmp(name, "commentary") != 0 &&
                    strcmp(name, "final") != 0) {
                    problem(&p, "the channel name '%s' before token %d is not analysis, commentary or final", name,
                            i);
                }
                free(name);
            }
            p.part = PART_CONTENT;
            p.content_begin = i + 1;
        } else if (t == ids->end || t == ids->ret || t == ids->call) {
            if (p.part == PART_CONTENT) {
                emit(&p, i, true);
            } else if (p.part == PART_OUTSIDE) {
                problem(&p, "an end token at token %d outside any message", i);
            } else {
                problem(&p, "an end token at token %d inside %s, before any <|message|>; the header is dropped", i,
                        part_name(p.part));
            }
            p.part = PART_OUTSIDE;
            ended = t != ids->end;
        } else {
            /* ordinary text */
            size_t len = strlen(piece);
            bool ok = true;
            switch (p.part) {
                case PART_ROLE:      ok = ps_text_add(&p.role, piece, len); break;
                case PART_CHANNEL:   ok = ps_text_add(&p.channel, piece, len); break;
                case PART_CONSTRAIN: ok = ps_text_add(&p.constrain, piece, len); break;
                case PART_CONTENT:   ok = ps_text_add(&p.content, piece, len); break;
                case PART_OUTSIDE:
                    if (*skip_space(piece)) {
                        problem(&p, "text at token %d outside any message: '%.40s'", i, piece);
                    }
                    break;
            }
            if (!ok) {
                p.failed = true;
            }
        }
    }
    if (!p.failed) {
        if (p.part == PART_CONTENT) {
            problem(&p, "the response stops after %d tokens inside the content of a message%s", n,
                    hit_limit ? " (the token limit was reached; raise -n)" : "");
            emit(&p, n, false);
        } else if (p.part != PART_OUTSIDE && (n > 0 || hit_limit)) {
            problem(&p, "the response stops after %d tokens inside %s%s", n, part_name(p.part),
                    hit_limit ? " (the token limit was reached; raise -n)" : "");
        }
    }
    free(p.role.data);
    free(p.channel.data);
    free(p.constrain.data);
    free(p.content.data);
    g->text = text.data;
    if (p.failed) {
        promptshap_generation_free(g);
        return ps_fail(err, PROMPTSHAP_ERR_NO_MEMORY, "out of memory while reading the harmony response");
    }
    *out = g;
    return PROMPTSHAP_OK;
}

char * promptshap_generation_channel_text(const promptshap_generation * gen, const char * channel) {
    ps_text b = { 0 };
    bool found = false;
    for (int k = 0; k < gen->n_messages; k++) {
        const promptshap_message * m = &gen->messages[k];
        bool match = channel ? (m->channel && strcmp(m->channel, channel) == 0) : true;
        if (!match) {
            continue;
        }
        if ((found && !ps_text_add(&b, "\n\n", 2)) || !ps_text_add(&b, m->text, strlen(m->text))) {
            free(b.data);
            return NULL;
        }
        found = true;
    }
    return found ? b.data : NULL;
}

void promptshap_generation_free(promptshap_generation * gen) {
    if (!gen) {
        return;
    }
    for (int k = 0; k < gen->n_messages; k++) {
        promptshap_message * m = &gen->messages[k];
        free(m->role);
        free(m->channel);
        free(m->recipient);
        free(m->constrain);
        free(m->text);
    }
    for (int k = 0; k < gen->n_problems; k++) {
        free(gen->problems[k]);
    }
    free(gen->messages);
    free(gen->problems);
    free(gen->tokens);
    free(gen->text);
    free(gen);
}
