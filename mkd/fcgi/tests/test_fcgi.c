/*
 * test_fcgi.c -- the FastCGI record codec and the CGI header parser:
 * byte-exact encodings, streams cut at the record limit and padded, and
 * every malformed input refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "fcgi.h"

static void test_begin_abort(void **st)
{
    uint8_t b[16];
    static const uint8_t want[16] = {1, 1, 0x12, 0x34, 0, 8, 0, 0,
                                     0, 1, 1,    0,    0, 0, 0, 0};
    (void)st;

    assert_int_equal(fcgi_encode_begin(b, sizeof b, 0x1234, FCGI_KEEP_CONN),
                     16);
    assert_memory_equal(b, want, 16);
    assert_int_equal(fcgi_encode_begin(b, 15, 1, 0), 0);
    assert_int_equal(fcgi_encode_begin(b, 16, 0, 0), 0); /* id 0: mgmt */
    assert_int_equal(fcgi_encode_abort(b, sizeof b, 7), 8);
    assert_int_equal(b[1], FCGI_ABORT_REQUEST);
    assert_int_equal(b[3], 7);
    assert_int_equal(b[5], 0);
}

static void test_params(void **st)
{
    uint8_t b[600];
    char v[300];
    size_t pos = 0;
    (void)st;

    memset(v, 'x', sizeof v);
    assert_int_equal(fcgi_put_param(b, sizeof b, &pos, "A", 1, "bc", 2),
                     MKD_OK);
    assert_int_equal(pos, 5);
    assert_memory_equal(b,
                        "\x01\x02"
                        "Abc",
                        5);
    assert_int_equal(fcgi_put_param(b, sizeof b, &pos, "N", 1, v, 300), MKD_OK);
    /* 1-byte name length, 4-byte value length with the top bit set */
    assert_memory_equal(b + 5,
                        "\x01\x80\x00\x01\x2c"
                        "N",
                        6);
    assert_int_equal(pos, 5 + 6 + 300);
    assert_int_equal(fcgi_put_param(b, sizeof b, &pos, "E", 1, NULL, 0),
                     MKD_OK);
    assert_int_equal(pos, 5 + 6 + 300 + 3);
    /* no room: nothing written, pos unchanged */
    assert_int_equal(fcgi_put_param(b, sizeof b, &pos, "N", 1, v, 300),
                     MKD_ERR_BUFFER);
    assert_int_equal(pos, 314);
}

static void test_stream_chunks(void **st)
{
    size_t len = 2 * FCGI_CONTENT_MAX + 3, cap, n;
    uint8_t *data = malloc(len), *out;
    size_t at = 0, got = 0;
    (void)st;

    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7);
    cap = fcgi_stream_size(len, 1);
    /* two full records (65535 + 1 padding), one of 3 (+5), the end */
    assert_int_equal(cap, 2 * (8 + 65535 + 1) + (8 + 3 + 5) + 8);
    out = malloc(cap);
    assert_non_null(out);
    assert_int_equal(
        fcgi_encode_stream(out, cap - 1, FCGI_STDIN, 9, data, len, 1), 0);
    n = fcgi_encode_stream(out, cap, FCGI_STDIN, 9, data, len, 1);
    assert_int_equal(n, cap);
    while (at < n) {
        size_t c = (size_t)out[at + 4] << 8 | out[at + 5];
        assert_int_equal(out[at], 1);
        assert_int_equal(out[at + 1], FCGI_STDIN);
        assert_int_equal((c + out[at + 6]) % 8, 0);
        assert_memory_equal(out + at + 8, data + got, c);
        got += c;
        at += 8 + c + out[at + 6];
        if (c == 0)
            break;
    }
    assert_int_equal(at, n);
    assert_int_equal(got, len);
    assert_int_equal(fcgi_stream_size(0, 1), 8);
    assert_int_equal(fcgi_stream_size(0, 0), 0);
    free(data);
    free(out);
}

static void test_parse_records(void **st)
{
    uint8_t b[40] = {1, 6, 0, 5, 0, 3, 5, 0, 'a', 'b', 'c', 0, 0, 0, 0, 0,
                     1, 3, 0, 5, 0, 8, 0, 0, 0,   0,   1,   2, 0, 0, 0, 0};
    fcgi_record r;
    size_t used;
    (void)st;

    for (size_t k = 0; k < 16; k++) {
        assert_int_equal(fcgi_parse_record(b, k, 5, &r, &used), MKD_WANT_MORE);
        assert_int_equal(used, k < 8 ? 0 : 16);
    }
    assert_int_equal(fcgi_parse_record(b, 32, 5, &r, &used), MKD_OK);
    assert_int_equal(used, 16);
    assert_int_equal(r.type, FCGI_STDOUT);
    assert_int_equal(r.content_len, 3);
    assert_memory_equal(r.content, "abc", 3);
    assert_int_equal(fcgi_parse_record(b + 16, 16, 5, &r, &used), MKD_OK);
    assert_int_equal(r.type, FCGI_END_REQUEST);
    assert_int_equal(r.app_status, 0x102);
    assert_int_equal(r.protocol_status, FCGI_REQUEST_COMPLETE);
    /* the wrong request id, version, type; a short END_REQUEST; an
     * unknown protocol status */
    assert_int_equal(fcgi_parse_record(b, 32, 6, &r, &used),
                     MKD_ERR_FRAME_MALFORMED);
    b[0] = 2;
    assert_int_equal(fcgi_parse_record(b, 32, 5, &r, &used),
                     MKD_ERR_FRAME_MALFORMED);
    b[0] = 1;
    b[1] = FCGI_STDIN;
    assert_int_equal(fcgi_parse_record(b, 32, 5, &r, &used),
                     MKD_ERR_FRAME_TYPE);
    b[1] = 10; /* GET_VALUES_RESULT: never asked for */
    assert_int_equal(fcgi_parse_record(b, 32, 5, &r, &used),
                     MKD_ERR_FRAME_TYPE);
    b[16 + 5] = 7;
    assert_int_equal(fcgi_parse_record(b + 16, 16, 5, &r, &used),
                     MKD_ERR_FRAME_MALFORMED);
    b[16 + 5] = 8;
    b[16 + 12] = 4;
    assert_int_equal(fcgi_parse_record(b + 16, 16, 5, &r, &used),
                     MKD_ERR_FRAME_MALFORMED);
}

static int head(const char *s, fcgi_cgi_head *h)
{
    return fcgi_parse_cgi_head((const uint8_t *)s, strlen(s), h);
}

static void test_cgi_head(void **st)
{
    fcgi_cgi_head h;
    const char *php = "X-Powered-By: PHP/8.2.7\r\n"
                      "Content-type: text/html; charset=UTF-8\r\n\r\nHello";
    char *big;
    (void)st;

    assert_int_equal(head(php, &h), MKD_OK);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.head_len, strlen(php) - 5);
    assert_int_equal(h.ctype_len, strlen("text/html; charset=UTF-8"));
    assert_memory_equal(h.ctype, "text/html", 9);
    assert_int_equal(head("Status: 500 Internal Server Error\n\n", &h), MKD_OK);
    assert_int_equal(h.status, 500);
    assert_int_equal(head("Location: /x\r\n\r\n", &h), MKD_OK);
    assert_int_equal(h.status, 302);
    assert_int_equal(head("\r\nbody", &h), MKD_OK);
    assert_int_equal(h.head_len, 2);
    assert_int_equal(head("Content-Type: a\r\n", &h), MKD_WANT_MORE);
    assert_int_equal(head("", &h), MKD_WANT_MORE);
    assert_int_equal(head("no colon\r\n\r\n", &h), MKD_ERR_FRAME_MALFORMED);
    assert_int_equal(head(": empty\r\n\r\n", &h), MKD_ERR_FRAME_MALFORMED);
    assert_int_equal(head("Status: 20\r\n\r\n", &h), MKD_ERR_FRAME_MALFORMED);
    assert_int_equal(head("Status: 999\r\n\r\n", &h), MKD_ERR_FRAME_MALFORMED);
    assert_int_equal(head("Status: 200\r\nStatus: 500\r\n\r\n", &h),
                     MKD_ERR_FRAME_MALFORMED);
    assert_int_equal(head("A: b\x01\r\n\r\n", &h), MKD_ERR_FRAME_MALFORMED);
    big = malloc(FCGI_CGI_HEAD_MAX + 1);
    assert_non_null(big);
    memset(big, 'a', FCGI_CGI_HEAD_MAX);
    big[FCGI_CGI_HEAD_MAX] = '\0';
    assert_int_equal(head(big, &h), MKD_ERR_FRAME_TOO_LARGE);
    for (size_t i = 0; i + 5 <= FCGI_CGI_HEAD_MAX; i += 5)
        memcpy(big + i, "A: b\n", 5);
    assert_int_equal(head(big, &h), MKD_ERR_FRAME_TOO_LARGE); /* lines */
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_begin_abort),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_stream_chunks),
        cmocka_unit_test(test_parse_records),
        cmocka_unit_test(test_cgi_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
