/*
 * fuzz_metrics_http.c -- libFuzzer harness for the metrics listener's
 * HTTP request parser (mkd/metrics/http.c).
 *
 * Beyond "no crash, no overread" (ASan/UBSan): the answer is one of the
 * statuses the parser may give, a 200 names a path, and the parser
 * agrees with itself on every prefix the socket could have delivered,
 * and "more needed" is never the answer for METRICS_HTTP_MAX bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "metrics_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int status_known(int st)
{
    static const int ok[] = {200, 400, 404, 405, 414, 431, 505};

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (st == ok[i])
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    metrics_http_req whole, part;
    size_t n = size < METRICS_HTTP_MAX ? size : METRICS_HTTP_MAX;
    int done = metrics_http_parse(data, n, &whole);

    if (!done) {
        if (n >= METRICS_HTTP_MAX || whole.status != 0)
            abort();
        return 0;
    }
    if (!status_known(whole.status) ||
        (whole.status == 200) != (whole.path != METRICS_PATH_NONE))
        abort();
    /* The first complete prefix decides (the server stops reading
     * there): the whole input must say the same, or, after a complete
     * request, 400 for the bytes that follow it. Short inputs are cut
     * everywhere; long ones after each '\n' (only a line's end can
     * complete anything below the size limit), which keeps this linear
     * enough to fuzz fast. */
    for (size_t k = 0; k < n; k++)
        if ((n <= 512 || data[k] == '\n') &&
            metrics_http_parse(data, n <= 512 ? k : k + 1, &part)) {
            if (part.status != whole.status &&
                !(part.status == 200 && whole.status == 400))
                abort();
            break;
        }
    return 0;
}
