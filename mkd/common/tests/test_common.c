/*
 * test_common.c -- the shared helpers of mkd: the error table (every row
 * named, unknown codes said so), the diagnostic line, the bounded text
 * appender (pieces that do not fit are dropped whole), hex, the file
 * helpers' errors; JSON strings (escapes, bytes that are not UTF-8); the
 * log's three line formats and the access log (its lines, reopening after
 * a rename, off).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mkd_access.h"
#include "mkd_err.h"
#include "mkd_log.h"
#include "mkd_util.h"
#include "testlib.h"

static void test_errors(void **st)
{
    mkd_diag d;
    (void)st;

    assert_string_equal(mkd_err_name(MKD_OK), "MKD_OK");
    assert_string_equal(mkd_err_name(MKD_ERR_CONFIG), "MKD_ERR_CONFIG");
    assert_string_equal(mkd_err_class(MKD_ERR_CONFIG), "CONFIG");
    assert_string_equal(mkd_strerror(MKD_ERR_NOMEM), "out of memory");
    assert_string_equal(mkd_err_name(9999), "MKD_ERR_UNKNOWN");
    assert_string_equal(mkd_strerror(-1), "unknown error");
    /* mkd_fail records the context and returns the code. */
    mkd_diag_clear(&d);
    assert_string_equal(mkd_diag_text(&d, MKD_ERR_LISTEN),
                        mkd_strerror(MKD_ERR_LISTEN));
    assert_int_equal(mkd_fail(&d, MKD_ERR_LISTEN, "port %d", 7),
                     MKD_ERR_LISTEN);
    assert_string_equal(mkd_diag_text(&d, MKD_ERR_LISTEN), "port 7");
    assert_int_equal(mkd_fail(NULL, MKD_ERR_ARG, "x"), MKD_ERR_ARG);
    assert_string_equal(mkd_diag_text(NULL, MKD_ERR_ARG),
                        mkd_strerror(MKD_ERR_ARG));
}

static void test_text(void **st)
{
    char buf[16];
    mkd_text t;
    (void)st;

    mkd_text_init(&t, buf, sizeof buf);
    mkd_text_put(&t, "%s", "0123456789");
    assert_int_equal(t.len, 10);
    assert_false(t.overflow);
    /* Does not fit whole: dropped, and nothing is put after it. */
    mkd_text_put(&t, "%s", "abcdefgh");
    assert_true(t.overflow);
    assert_int_equal(t.len, 10);
    assert_string_equal(buf, "0123456789");
    mkd_text_put(&t, "x");
    assert_string_equal(buf, "0123456789");
    /* Exactly full (the NUL included) fits. */
    mkd_text_init(&t, buf, sizeof buf);
    mkd_text_put(&t, "%s", "012345678901234");
    assert_false(t.overflow);
    assert_int_equal(t.len, 15);
}

static void test_hex_and_files(void **st)
{
    uint8_t b[3] = {0x00, 0xab, 0xff}, back[3];
    char hex[7];
    uint8_t *data = NULL;
    size_t len = 0;
    mkd_diag d;
    (void)st;

    mkd_hex(b, 3, hex);
    assert_string_equal(hex, "00abff");
    assert_int_equal(mkd_unhex("00ABff", 6, back, 3), MKD_OK);
    assert_memory_equal(back, b, 3);
    assert_int_equal(mkd_unhex("00abf", 5, back, 3), MKD_ERR_ARG);
    assert_int_equal(mkd_unhex("00abfg", 6, back, 3), MKD_ERR_ARG);
    assert_int_equal(mkd_read_file("/nonexistent/x", 10, &data, &len, &d),
                     MKD_ERR_SYSTEM);
    assert_non_null(strstr(d.text, "/nonexistent/x"));
    assert_null(data);
    assert_int_equal(mkd_read_file("/", 10, &data, &len, &d), MKD_ERR_SYSTEM);
    assert_non_null(strstr(d.text, "not a regular file"));
}

/* Strict: whole, decimal, in range; what strtoul lets through is refused. */
static void test_parse_uint(void **st)
{
    static const char *const bad[] = {
        "",   "abc",  "4096x", " 7",  "+7",
        "-1", "0x10", "7 ",    "1e3", "18446744073709551616"};
    uint64_t v = 42;
    (void)st;

    assert_int_equal(mkd_parse_uint("4096", 1, 4096, &v), MKD_OK);
    assert_int_equal(v, 4096);
    assert_int_equal(mkd_parse_uint("007", 0, 10, &v), MKD_OK);
    assert_int_equal(v, 7);
    assert_int_equal(mkd_parse_uint("18446744073709551615", 0, UINT64_MAX, &v),
                     MKD_OK);
    assert_true(v == UINT64_MAX);
    v = 42;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mkd_parse_uint(bad[i], 0, UINT64_MAX, &v),
                         MKD_ERR_ARG);
    assert_int_equal(mkd_parse_uint("0", 1, 16, &v), MKD_ERR_ARG);
    assert_int_equal(mkd_parse_uint("17", 1, 16, &v), MKD_ERR_ARG);
    assert_int_equal(mkd_parse_uint(NULL, 0, 1, &v), MKD_ERR_ARG);
    assert_int_equal(v, 42);
}

static void json_is(const char *in, size_t n, const char *want)
{
    char buf[256];
    mkd_text t;

    mkd_text_init(&t, buf, sizeof buf);
    mkd_text_json(&t, in, n);
    assert_false(t.overflow);
    assert_string_equal(buf, want);
}

static void test_json(void **st)
{
    char buf[8];
    mkd_text t;
    (void)st;

    json_is("plain", 5, "\"plain\"");
    json_is("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    json_is("\n\r\t\x01\x1f\x7f", 6, "\"\\n\\r\\t\\u0001\\u001f\\u007f\"");
    json_is("nul\0x", 5, "\"nul\\u0000x\"");
    /* Well-formed UTF-8 passes; each bad byte becomes U+FFFD. */
    json_is("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
            "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    json_is("\xff", 1, "\"\xef\xbf\xbd\"");
    json_is("\xc3", 1, "\"\xef\xbf\xbd\"");                 /* cut short */
    json_is("\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\""); /* overlong */
    json_is("\xed\xa0\x80", 3,                              /* a surrogate */
            "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    json_is("\xf4\x90\x80\x80", 4, /* past U+10FFFF */
            "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    json_is("a\xe2\x82z", 4, "\"a\xef\xbf\xbd\xef\xbf\xbdz\"");
    /* Whole or nothing. */
    mkd_text_init(&t, buf, sizeof buf);
    mkd_text_put(&t, "ab");
    mkd_text_json(&t, "0123456789", 10);
    assert_true(t.overflow);
    assert_string_equal(buf, "ab");
}

/* What fn wrote to stderr (fd 2 sent to a file meanwhile), malloc'd. */
static char *stderr_of(void (*fn)(void))
{
    char path[] = "/tmp/mkd-common-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    char *text;

    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    assert_int_equal(dup2(fd, 2), 2);
    fn();
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    close(fd);
    text = calloc(1, 8192);
    assert_non_null(text);
    {
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        (void)fread(text, 1, 8191, f);
        fclose(f);
    }
    unlink(path);
    return text;
}

static void log_three(void)
{
    mkd_log(MKD_LOG_ERROR, 7, "bad \"thing\"\nsecond line");
    mkd_log(MKD_LOG_WARN, 0, "careful");
    mkd_log(MKD_LOG_INFO, 12, "fine \xff");
    mkd_log(MKD_LOG_DEBUG, 12, "not shown");
}

static void test_log_formats(void **st)
{
    char *out;
    int f = -1;
    (void)st;

    assert_int_equal(mkd_log_format_parse("journal", &f), MKD_OK);
    assert_int_equal(f, MKD_LOG_JOURNAL);
    assert_int_equal(mkd_log_format_parse("syslog", &f), MKD_ERR_CONFIG);
    assert_string_equal(mkd_log_format_name(MKD_LOG_JSON), "json");
    mkd_log_set_level(MKD_LOG_INFO);

    mkd_log_set_format(MKD_LOG_JOURNAL);
    out = stderr_of(log_three);
    assert_string_equal(out, "<3>c7 bad \"thing\" second line\n"
                             "<4>c0 careful\n<6>c12 fine \xff\n");
    free(out);

    mkd_log_set_format(MKD_LOG_PLAIN);
    out = stderr_of(log_three);
    /* 2026-11-26T07:20:52.026Z mkd error c7 ... */
    assert_int_equal(strlen(out) > 25 && out[10] == 'T' && out[23] == 'Z', 1);
    assert_non_null(strstr(out, "Z mkd error c7 bad \"thing\" second line\n"));
    assert_non_null(strstr(out, "Z mkd warn  c0 careful\n"));
    assert_null(strstr(out, "not shown"));
    free(out);

    mkd_log_set_format(MKD_LOG_JSON);
    out = stderr_of(log_three);
    assert_non_null(strstr(out, "\"log\":\"daemon\",\"level\":\"error\","
                                "\"conn\":7,\"msg\":\"bad \\\"thing\\\" second "
                                "line\"}\n"));
    assert_non_null(strstr(out, "\"level\":\"info\",\"conn\":12,\"msg\":"
                                "\"fine \xef\xbf\xbd\"}\n"));
    assert_int_equal(strncmp(out, "{\"time\":\"", 9), 0);
    free(out);
    mkd_log_set_format(MKD_LOG_PLAIN);
}

static void access_one(uint32_t id, const char *client, const char *outcome)
{
    static const uint8_t sid[16] = {0x5c, 0x2d, 0x22, 0x0e, 0xff};
    mkd_access_rec r = {
        .conn_id = 42,
        .request_id = id,
        .client = client,
        .port = 51234,
        .session_id = sid,
        .bytes_in = 5,
        .bytes_out = 120,
        .duration_us = 1234,
        .queue_us = 12,
        .worker_us = 1100,
        .worker_pid = 4321,
        .outcome = outcome,
    };
    mkd_access_write(&r);
}

static void test_access_log(void **st)
{
    char dir[] = "/tmp/mkd-access-XXXXXX", path[64], moved[64], *text;
    mkd_diag d;
    (void)st;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/access.log", dir);
    snprintf(moved, sizeof moved, "%s/access.log.1", dir);
    assert_int_equal(mkd_access_open("relative.log", &d), MKD_ERR_CONFIG);
    assert_int_equal(mkd_access_open("/nonexistent/dir/a.log", &d),
                     MKD_ERR_SYSTEM);
    assert_non_null(strstr(d.text, "/nonexistent/dir/a.log"));
    assert_false(mkd_access_enabled());

    mkd_log_set_format(MKD_LOG_PLAIN);
    assert_int_equal(mkd_access_open(path, &d), MKD_OK);
    assert_string_equal(mkd_access_path(), path);
    access_one(7, "127.0.0.1", "ok");
    access_one(8, "::1", "timeout");
    /* Buffered until flushed. */
    text = tl_read_file(path, NULL);
    assert_string_equal(text, "");
    free(text);
    mkd_access_flush();
    text = tl_read_file(path, NULL);
    assert_non_null(strstr(text, " mkd access c42 client=127.0.0.1:51234 "
                                 "session=5c2d220e request=7 in=5 out=120 "
                                 "ms=1.234 queue_ms=0.012 worker_ms=1.100 "
                                 "worker_pid=4321 outcome=ok\n"));
    assert_non_null(strstr(text, "client=[::1]:51234 "));
    assert_non_null(strstr(text, "outcome=timeout\n"));
    free(text);

    /* logrotate: rename, reopen; the next line goes to the new file. */
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(mkd_access_reopen(&d), MKD_OK);
    mkd_log_set_format(MKD_LOG_JSON);
    access_one(9, "10.0.0.1", "ok");
    mkd_log_set_format(MKD_LOG_JOURNAL);
    access_one(10, "10.0.0.1", "application");
    mkd_access_close();
    assert_false(mkd_access_enabled());
    access_one(11, "10.0.0.1", "ok"); /* off: nothing */
    text = tl_read_file(path, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"log\":\"access\",\"conn\":42,\"client\":"
                                 "\"10.0.0.1\",\"port\":51234,\"session\":"
                                 "\"5c2d220e\",\"request\":9,\"bytes_in\":5,"
                                 "\"bytes_out\":120,\"duration_ms\":1.234,"
                                 "\"queue_ms\":0.012,\"worker_ms\":1.100,"
                                 "\"worker_pid\":4321,\"outcome\":\"ok\"}\n"));
    assert_non_null(strstr(text, "\n<6>access c42 client=10.0.0.1:51234 "));
    assert_null(strstr(text, "request=11"));
    assert_null(strstr(text, "request=7"));
    free(text);
    text = tl_read_file(moved, NULL);
    assert_non_null(strstr(text, "request=7"));
    assert_null(strstr(text, "request=9"));
    free(text);
    mkd_log_set_format(MKD_LOG_PLAIN);
    unlink(path);
    unlink(moved);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_hex_and_files),
        cmocka_unit_test(test_parse_uint),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_log_formats),
        cmocka_unit_test(test_access_log),
    };
    return cmocka_run_group_tests_name("mkd_common", tests, NULL, NULL);
}
