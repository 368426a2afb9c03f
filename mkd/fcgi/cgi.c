/*
 * cgi.c -- the CGI response header a FastCGI responder (PHP-FPM) writes at
 * the start of STDOUT (fcgi.h): "Name: value" lines, a blank line, then
 * the body.
 *
 * Only two headers mean anything to MKD: Status (PHP sets it for
 * http_response_code() and on a fatal error, "500 Internal Server
 * Error") and Content-Type; the rest (X-Powered-By, Set-Cookie, ...) is
 * checked for shape and skipped. A body has no HTTP framing here: it is
 * whatever follows the blank line.
 */
#include "fcgi.h"

#include <string.h>

/* RFC 9110 token characters (a header name). */
static int is_tchar(uint8_t c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
        (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int name_is(const uint8_t *p, size_t n, const char *want)
{
    size_t w = strlen(want);

    if (n != w)
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c - 'A' + 'a');
        if (c != (uint8_t)want[i])
            return 0;
    }
    return 1;
}

/* "Status: 404 Not Found": three digits, 100..599, then the end or a
 * space and a reason. */
static int parse_status(const uint8_t *v, size_t n, int *status)
{
    int s = 0;

    if (n < 3 || (n > 3 && v[3] != ' '))
        return MKD_ERR_FRAME_MALFORMED;
    for (size_t i = 0; i < 3; i++) {
        if (v[i] < '0' || v[i] > '9')
            return MKD_ERR_FRAME_MALFORMED;
        s = s * 10 + (v[i] - '0');
    }
    if (s < 100 || s > 599)
        return MKD_ERR_FRAME_MALFORMED;
    *status = s;
    return MKD_OK;
}

typedef struct cgi_state {
    int status_set, location;
} cgi_state;

/* One header line, p[0..n) without its line end. */
static int header_line(const uint8_t *p, size_t n, fcgi_cgi_head *h,
                       cgi_state *st)
{
    size_t colon = 0, v;

    while (colon < n && is_tchar(p[colon]))
        colon++;
    if (colon == 0 || colon == n || p[colon] != ':')
        return MKD_ERR_FRAME_MALFORMED;
    for (size_t i = colon + 1; i < n; i++)
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
            return MKD_ERR_FRAME_MALFORMED;
    for (v = colon + 1; v < n && (p[v] == ' ' || p[v] == '\t'); v++)
        ;
    while (n > v && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (name_is(p, colon, "status")) {
        if (st->status_set)
            return MKD_ERR_FRAME_MALFORMED;
        st->status_set = 1;
        return parse_status(p + v, n - v, &h->status);
    }
    if (name_is(p, colon, "content-type")) {
        h->ctype = p + v;
        h->ctype_len = n - v;
    }
    st->location |= name_is(p, colon, "location");
    return MKD_OK;
}

int fcgi_parse_cgi_head(const uint8_t *buf, size_t len, fcgi_cgi_head *out)
{
    cgi_state st = {0, 0};
    size_t at = 0, lines = 0;
    int r;

    if (buf == NULL || out == NULL)
        return MKD_ERR_ARG;
    memset(out, 0, sizeof *out);
    out->status = 200;
    for (;;) {
        const uint8_t *nl = at < len ? memchr(buf + at, '\n', len - at) : NULL;
        size_t end, n;
        if (nl == NULL)
            return len >= FCGI_CGI_HEAD_MAX ? MKD_ERR_FRAME_TOO_LARGE
                                            : MKD_WANT_MORE;
        end = (size_t)(nl - buf) + 1;
        if (end > FCGI_CGI_HEAD_MAX)
            return MKD_ERR_FRAME_TOO_LARGE;
        n = end - 1 - at;
        if (n > 0 && buf[at + n - 1] == '\r')
            n--;
        if (n == 0) {
            out->head_len = end;
            break;
        }
        if (++lines > FCGI_CGI_LINES_MAX)
            return MKD_ERR_FRAME_TOO_LARGE;
        if ((r = header_line(buf + at, n, out, &st)) != MKD_OK)
            return r;
        at = end;
    }
    if (!st.status_set && st.location)
        out->status = 302;
    return MKD_OK;
}
