/*
 * fuzz_fcgi.c -- libFuzzer harness for the FastCGI record decoder and the
 * CGI header parser (mkd/fcgi).
 *
 * The input is read as a responder's byte stream, decoded record by record
 * as the backend does (each record's STDOUT content appended to a stream
 * whose header section is parsed as it grows). Beyond "no crash, no
 * overread" (ASan/UBSan): a record never claims more bytes than
 * FCGI_RECORD_MAX, nor content past what it consumed; the header parser's
 * head_len lies inside its input and ends a line; and every prefix of a
 * complete record asks for more rather than deciding otherwise.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out_stream[FCGI_CGI_HEAD_MAX + FCGI_CONTENT_MAX];

static void check_head(const uint8_t *p, size_t n)
{
    fcgi_cgi_head h;
    int r = fcgi_parse_cgi_head(p, n, &h);

    if (r == MKD_OK &&
        (h.head_len == 0 || h.head_len > n || p[h.head_len - 1] != '\n' ||
         h.status < 100 || h.status > 599 ||
         (h.ctype != NULL && (h.ctype < p || h.ctype + h.ctype_len > p + n))))
        abort();
    if (r == MKD_WANT_MORE && n >= FCGI_CGI_HEAD_MAX)
        abort();
}

static void check_prefixes(const uint8_t *p, size_t used)
{
    fcgi_record r;
    size_t c;

    /* Cut only at a few places to keep this fast: inside the header and
     * just before the end. */
    for (size_t k = 0; k < used && k < FCGI_HEADER + 2; k++)
        if (fcgi_parse_record(p, k, p[2] << 8 | p[3], &r, &c) != MKD_WANT_MORE)
            abort();
    if (fcgi_parse_record(p, used - 1, p[2] << 8 | p[3], &r, &c) !=
        MKD_WANT_MORE)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t at = 0, have = 0;
    uint16_t id = size >= 4 ? (uint16_t)(data[2] << 8 | data[3]) : 1;

    /* The input also goes to the header parser as a whole. */
    check_head(data, size);
    while (at < size) {
        fcgi_record r;
        size_t used;
        int rc = fcgi_parse_record(data + at, size - at, id, &r, &used);
        if (used > FCGI_RECORD_MAX)
            abort();
        if (rc != MKD_OK)
            break;
        if (used < FCGI_HEADER + (size_t)r.content_len || used > size - at ||
            r.content != data + at + FCGI_HEADER)
            abort();
        check_prefixes(data + at, used);
        if (r.type == FCGI_STDOUT &&
            have + r.content_len <= sizeof out_stream) {
            memcpy(out_stream + have, r.content, r.content_len);
            have += r.content_len;
            check_head(out_stream, have);
        }
        at += used;
    }
    return 0;
}
