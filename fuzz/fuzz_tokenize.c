/* SPDX-License-Identifier: MIT
 *
 * Fuzzes the boundary between user text and control tokens through a real
 * tokenizer. Prompts and targets are tokenized with ps_tokenize without
 * parse_special; only the framing's own text may become control tokens.
 * libllama v0.4.0 makes harmony's markers (<|channel|>, <|message|>,
 * <|start|>, <|end|>, <|constrain|>) user-defined tokens of a GPT-OSS
 * vocabulary, and matches user-defined tokens even without parse_special,
 * so ps_tokenize cuts user text inside every marker it spells.
 *
 * The model is the GGUF file named by PROMPTSHAP_FUZZ_MODEL: one whose
 * vocabulary contains those markers, such as the gpt-oss-tiny model that
 * `promptshap-mkmodel --preset gpt-oss-tiny --harmony` writes (as
 * scripts/fuzz.sh and the corpus replay test do). A missing file exits 77,
 * which ctest counts as skipped.
 *
 * The input's first byte chooses a cut; the rest is the text. For the text
 * and for both pieces of it (the scorer tokenizes a coalition's context and
 * the target apart), when the piece is valid UTF-8 text as the scorer
 * requires:
 *   - no token is a control or user-defined token;
 *   - the tokens' bytes, joined, are the piece exactly.
 * A libFuzzer dictionary of the markers (fuzz/tokenize.dict) makes the
 * mutations spell them often.
 */
#include "fuzz.h"
#include "model.h"

int LLVMFuzzerInitialize(int * argc, char *** argv);
int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size);

static promptshap_model * model;

int LLVMFuzzerInitialize(int * argc, char *** argv) {
    (void)argc;
    (void)argv;
    const char * path = getenv("PROMPTSHAP_FUZZ_MODEL");
    if (!path || !*path) {
        fprintf(stderr, "fuzz_tokenize: set PROMPTSHAP_FUZZ_MODEL to a GGUF model with harmony's markers, for "
                        "example one written by promptshap-mkmodel --preset gpt-oss-tiny --harmony\n");
        exit(1);
    }
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "fuzz_tokenize: skipped: the model '%s' does not exist\n", path);
        exit(77); /* ctest's skip code: the model fixture could not be written */
    }
    promptshap_error err;
    if (promptshap_model_load(path, NULL, &model, &err) != PROMPTSHAP_OK) {
        fprintf(stderr, "fuzz_tokenize: %s\n", err.message);
        exit(1);
    }
    /* a vocabulary without the markers would test nothing */
    static const char * const markers[] = {"<|channel|>", "<|message|>", "<|start|>", "<|end|>", "<|constrain|>"};
    for (size_t k = 0; k < sizeof(markers) / sizeof(markers[0]); k++) {
        if (ps_special_token(model, markers[k]) < 0) {
            fprintf(stderr, "fuzz_tokenize: '%s' has no %s token; use a model with harmony's markers\n", path,
                    markers[k]);
            exit(1);
        }
    }
    return 0;
}

FUZZ_NO_COVERAGE static void check_piece(const char * text, size_t len) {
    if (len == 0 || !promptshap_utf8_valid(text, len, NULL)) {
        return;
    }
    int32_t * tokens = NULL;
    int n = ps_tokenize(model, text, len, false, false, &tokens);
    FUZZ_ASSERT(n > 0);
    char * joined = malloc(len + 1);
    FUZZ_ASSERT(joined != NULL);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        enum llama_token_attr attr = llama_vocab_get_attr(model->vocab, tokens[i]);
        if (attr & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED)) {
            char * piece = NULL;
            ps_token_piece(model, tokens[i], &piece);
            fprintf(stderr, "user text gave token %d (attributes 0x%x, '%s')\n", (int)tokens[i], (unsigned)attr,
                    piece ? piece : "?");
            free(piece);
        }
        FUZZ_ASSERT(!(attr & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED)));
        char * piece = NULL;
        int m = ps_token_piece(model, tokens[i], &piece);
        FUZZ_ASSERT(m >= 0);
        FUZZ_ASSERT(at + (size_t)m <= len);
        memcpy(joined + at, piece, (size_t)m);
        at += (size_t)m;
        free(piece);
    }
    FUZZ_ASSERT(at == len && memcmp(joined, text, len) == 0);
    free(joined);
    free(tokens);
}

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    if (size < 2) {
        return 0;
    }
    const char * text = (const char *)data + 1;
    size_t len = size - 1;
    size_t cut = data[0] % (len + 1);
    check_piece(text, len);
    check_piece(text, cut);
    check_piece(text + cut, len - cut);
    return 0;
}
