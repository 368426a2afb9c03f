/*
 * replay_main.c -- run a harness's LLVMFuzzerTestOneInput() over every file
 * of the corpus directories given on the command line, without libFuzzer.
 * ctest runs one of these per target (fuzz_replay_<target>), so the
 * ordinary test run, with or without sanitizers or valgrind, replays the
 * committed corpus. An empty or unreadable directory is a failure: a
 * corpus that silently vanished would make the test pass vacuously.
 *
 *   fuzz_replay_<target> DIR|FILE...
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;

    if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 ||
        fseek(fp, 0, SEEK_SET) != 0 || (buf = malloc((size_t)n + 1)) == NULL ||
        fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        if (fp)
            fclose(fp);
        free(buf);
        return -1;
    }
    fclose(fp);
    /* A private copy of exactly n bytes, as libFuzzer hands it over, so
     * that ASan sees any read past the end. */
    {
        uint8_t *exact = malloc(n ? (size_t)n : 1);
        if (exact == NULL) {
            free(buf);
            return -1;
        }
        memcpy(exact, buf, (size_t)n);
        free(buf);
        (void)LLVMFuzzerTestOneInput(exact, (size_t)n);
        free(exact);
    }
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run every regular file of dir, in name order. Returns the count or -1. */
static long run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    long done = 0;

    if (d == NULL) {
        fprintf(stderr, "cannot open %s\n", dir);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **q = realloc(names, (cap ? cap * 2 : 64) * sizeof *q);
            if (q == NULL)
                abort();
            names = q;
            cap = cap ? cap * 2 : 64;
        }
        names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (names[n] == NULL)
            abort();
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (stat(names[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (run_file(names[i]) != 0)
                done = -1;
            else if (done >= 0)
                done++;
        }
        free(names[i]);
    }
    free(names);
    return done;
}

int main(int argc, char **argv)
{
    static const uint8_t tiny[4] = {0x17, 0, 0, 0x44};
    long total = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 2;
    }
    /* The degenerate inputs libFuzzer always tries first. */
    (void)LLVMFuzzerTestOneInput(tiny, 0);
    (void)LLVMFuzzerTestOneInput(tiny, 1);
    (void)LLVMFuzzerTestOneInput(tiny, sizeof tiny);
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        long n;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "%s: not found\n", argv[i]);
            return 1;
        }
        if (S_ISDIR(sb.st_mode)) {
            n = run_dir(argv[i]);
            if (n <= 0) {
                fprintf(stderr, "%s: %s\n", argv[i],
                        n == 0 ? "empty corpus" : "replay failed");
                return 1;
            }
        } else {
            if (run_file(argv[i]) != 0)
                return 1;
            n = 1;
        }
        total += n;
    }
    printf("replayed %ld inputs\n", total);
    return 0;
}
