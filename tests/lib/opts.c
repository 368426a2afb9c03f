/*
 * opts.c -- the benchmarks' and tools' command-line options (testlib.h):
 * getopt_long with --help and usage errors, and strict values. Apart from
 * testlib.c because it uses mkd_common's number parser (the one mkd's own
 * command line uses), which the libFuzzer build of testlib does not link.
 */
#include "testlib.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>

#include "mkd_util.h"

int tl_getopt(int argc, char **argv, const char *shorts,
              const struct option *longs, void (*usage)(void))
{
    int ch = getopt_long(argc, argv, shorts, longs, NULL);

    if (ch == 'h') {
        usage();
        exit(0);
    }
    if (ch == '?' || ch == ':')
        tl_usage_error(NULL);
    if (ch == -1 && shorts[0] != '+' && optind < argc)
        tl_usage_error("unexpected argument '%s'", argv[optind]);
    return ch;
}

unsigned long long tl_opt_uint(const char *name, const char *arg,
                               unsigned long long min, unsigned long long max)
{
    uint64_t v = 0;

    if (mkd_parse_uint(arg, min, max, &v) != MKD_OK)
        tl_usage_error("%s: expected a whole number in %llu..%llu, not '%s'",
                       name, min, max, arg);
    return v;
}

double tl_opt_double(const char *name, const char *arg, double min, double max)
{
    double v = 0;
    char *end = NULL;

    errno = 0;
    if ((*arg >= '0' && *arg <= '9') || *arg == '.')
        v = strtod(arg, &end);
    if (end == NULL || errno != 0 || *end != '\0' || !(v >= min && v <= max))
        tl_usage_error("%s: expected a number in %g..%g, not '%s'", name, min,
                       max, arg);
    return v;
}
