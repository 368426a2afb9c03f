/*
 * metrics_http.h -- the metrics listener's HTTP request parser: just
 * enough HTTP/1.x for a scraper and a health check. A request is a
 * request line and headers, no body; anything but GET of /metrics,
 * /health or /ready gets an error status. Length-checked throughout:
 * nothing is read past len, and the whole request must fit in
 * METRICS_HTTP_MAX bytes.
 */
#ifndef METRICS_HTTP_H
#define METRICS_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* The whole request (request line and headers) at most. */
#define METRICS_HTTP_MAX        4096
/* The request target (path and query) at most. */
#define METRICS_HTTP_TARGET_MAX 256

enum metrics_path {
    METRICS_PATH_NONE = 0,
    METRICS_PATH_METRICS,
    METRICS_PATH_HEALTH,
    METRICS_PATH_READY
};

typedef struct metrics_http_req {
    int status; /* 200, or the error to answer (400 404 405 414 431 505) */
    int path;   /* enum metrics_path, when status is 200 */
} metrics_http_req;

/* Parse the bytes received so far, buf[0..len). 0: more are needed (len
 * is below METRICS_HTTP_MAX); 1: the request is complete, or known bad,
 * and *out says what to answer. */
int metrics_http_parse(const uint8_t *buf, size_t len, metrics_http_req *out);

/* The reason phrase of a status this room answers ("Not Found"). */
const char *metrics_http_reason(int status);

#endif
