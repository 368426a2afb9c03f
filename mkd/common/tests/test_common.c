/*
 * test_common.c -- the shared helpers of mkd: the error table (every row
 * named, unknown codes said so), the diagnostic line, the bounded text
 * appender (pieces that do not fit are dropped whole), hex, and the file
 * helpers' errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "mkd_err.h"
#include "mkd_util.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_hex_and_files),
        cmocka_unit_test(test_parse_uint),
    };
    return cmocka_run_group_tests_name("mkd_common", tests, NULL, NULL);
}
