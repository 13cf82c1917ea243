/* SPDX-License-Identifier: MIT
 *
 * A main() for a fuzz harness without libFuzzer: runs LLVMFuzzerTestOneInput
 * once on every file named on the command line or found in a directory
 * named there. ctest uses it to replay each harness's corpus with any
 * compiler, so an input that once crashed keeps being tested.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size);
int LLVMFuzzerInitialize(int * argc, char *** argv) __attribute__((weak));
size_t LLVMFuzzerMutate(uint8_t * data, size_t size, size_t max_size);

/* Custom mutators call this; a replay never mutates. */
size_t LLVMFuzzerMutate(uint8_t * data, size_t size, size_t max_size) {
    (void)data;
    (void)max_size;
    return size;
}

static int run_file(const char * path) {
    FILE * f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot read '%s'\n", path);
        return 1;
    }
    size_t cap = 4096, n = 0;
    uint8_t * data = malloc(cap);
    size_t got;
    while (data && (got = fread(data + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t * grown = realloc(data, cap * 2);
            if (!grown) {
                free(data);
                data = NULL;
                break;
            }
            data = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (!data) {
        fprintf(stderr, "replay: out of memory reading '%s'\n", path);
        return 1;
    }
    /* an exact-size copy, so AddressSanitizer reports a read past the end */
    uint8_t * exact = malloc(n ? n : 1);
    if (!exact) {
        free(data);
        return 1;
    }
    memcpy(exact, data, n);
    free(data);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int compare_names(const void * a, const void * b) {
    return strcmp(*(char * const *)a, *(char * const *)b);
}

/* Runs every regular file of a directory, in name order. */
static int run_dir(const char * dir, int * count) {
    DIR * d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: cannot open the directory '%s'\n", dir);
        return 1;
    }
    char ** names = NULL;
    size_t n = 0;
    struct dirent * e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char ** grown = realloc(names, (n + 1) * sizeof(char *));
        if (!grown) {
            break;
        }
        names = grown;
        names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (!names[n]) {
            break;
        }
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(char *), compare_names);
    int failed = 0;
    for (size_t k = 0; k < n; k++) {
        struct stat sb;
        if (stat(names[k], &sb) == 0 && S_ISREG(sb.st_mode)) {
            failed |= run_file(names[k]);
            (*count)++;
        }
        free(names[k]);
    }
    free(names);
    return failed;
}

int main(int argc, char ** argv) {
    if (LLVMFuzzerInitialize) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    int failed = 0, count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            failed |= run_dir(argv[i], &count);
        } else {
            failed |= run_file(argv[i]);
            count++;
        }
    }
    printf("%d inputs replayed%s\n", count, failed ? ", some unreadable" : "");
    return failed;
}
