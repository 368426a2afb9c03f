/*
 * http.c -- the metrics listener's request parser (metrics_http.h).
 *
 * The parser sees the whole request so far on every call (it is at most
 * METRICS_HTTP_MAX bytes), so it keeps no state between calls. It is
 * strict on purpose: a scraper sends a request line and a few headers;
 * anything else is an error, never a guess.
 */
#include "metrics_http.h"

#include <string.h>

/* The index of the first CRLF in b[from..len), or len. */
static size_t find_crlf(const uint8_t *b, size_t from, size_t len)
{
    for (size_t i = from; i + 1 < len; i++)
        if (b[i] == '\r' && b[i + 1] == '\n')
            return i;
    return len;
}

/* RFC 9110 tchar: the characters of a method or a header name. */
static int is_tchar(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static int path_of(const uint8_t *t, size_t n)
{
    static const struct {
        const char *path;
        int id;
    } paths[] = {{"/metrics", METRICS_PATH_METRICS},
                 {"/health", METRICS_PATH_HEALTH},
                 {"/ready", METRICS_PATH_READY}};
    size_t plen = 0;

    while (plen < n && t[plen] != '?')
        plen++; /* a query string is ignored */
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (strlen(paths[i].path) == plen &&
            memcmp(paths[i].path, t, plen) == 0)
            return paths[i].id;
    return METRICS_PATH_NONE;
}

static int check_version(const uint8_t *v, size_t n)
{
    if (n == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1'))
        return 200;
    return n >= 5 && memcmp(v, "HTTP/", 5) == 0 ? 505 : 400;
}

/* "METHOD SP TARGET SP VERSION", b[0..n) without its CRLF. The status,
 * and in *path the path when it is 200. */
static int parse_request_line(const uint8_t *b, size_t n, int *path)
{
    size_t i = 0, t0, tlen, mlen;
    int st;

    while (i < n && is_tchar(b[i]))
        i++;
    if (i == 0 || i >= n || b[i] != ' ')
        return 400;
    mlen = i++;
    for (t0 = i; i < n && b[i] != ' '; i++)
        if (b[i] <= 0x20 || b[i] >= 0x7f)
            return 400;
    tlen = i - t0;
    if (i >= n || tlen == 0 || b[t0] != '/')
        return tlen > METRICS_HTTP_TARGET_MAX ? 414 : 400;
    if (tlen > METRICS_HTTP_TARGET_MAX)
        return 414;
    if ((st = check_version(b + i + 1, n - i - 1)) != 200)
        return st;
    if (mlen != 3 || memcmp(b, "GET", 3) != 0)
        return 405;
    *path = path_of(b + t0, tlen);
    return *path == METRICS_PATH_NONE ? 404 : 200;
}

static int name_is(const uint8_t *b, size_t n, const char *name)
{
    if (n != strlen(name))
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[i] >= 'A' && b[i] <= 'Z' ? (uint8_t)(b[i] + 32) : b[i];
        if (c != (uint8_t)name[i])
            return 0;
    }
    return 1;
}

/* "name: value", b[0..n) without its CRLF. A request with a body (or one
 * announced) is refused: this listener reads none. */
static int parse_header(const uint8_t *b, size_t n)
{
    size_t i = 0;

    while (i < n && is_tchar(b[i]))
        i++;
    if (i == 0 || i >= n || b[i] != ':')
        return 400;
    for (size_t j = i + 1; j < n; j++)
        if ((b[j] < 0x20 && b[j] != '\t') || b[j] == 0x7f)
            return 400;
    if (name_is(b, i, "transfer-encoding"))
        return 400;
    if (name_is(b, i, "content-length")) {
        for (size_t j = i + 1; j < n; j++)
            if (b[j] != ' ' && b[j] != '\t' && b[j] != '0')
                return 400;
    }
    return 200;
}

/* No complete request yet in len bytes: wait, or refuse what can no
 * longer fit. */
static int incomplete(size_t len, metrics_http_req *out)
{
    if (len >= METRICS_HTTP_MAX)
        out->status = 431;
    return out->status != 0;
}

int metrics_http_parse(const uint8_t *buf, size_t len, metrics_http_req *out)
{
    size_t pos, e = find_crlf(buf, 0, len);
    int path = METRICS_PATH_NONE, st;

    out->status = 0;
    out->path = METRICS_PATH_NONE;
    if (e == len)
        return incomplete(len, out);
    if ((st = parse_request_line(buf, e, &path)) != 200) {
        out->status = st;
        return 1;
    }
    for (pos = e + 2;; pos = e + 2) {
        if ((e = find_crlf(buf, pos, len)) == len)
            return incomplete(len, out);
        if (e == pos)
            break; /* the blank line */
        if ((st = parse_header(buf + pos, e - pos)) != 200) {
            out->status = st;
            return 1;
        }
    }
    /* Bytes after the blank line: a body or a second request. */
    out->status = e + 2 == len ? 200 : 400;
    out->path = out->status == 200 ? path : METRICS_PATH_NONE;
    return 1;
}

const char *metrics_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}
