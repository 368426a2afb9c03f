/*
 * test_config.c -- the configuration parser: defaults, the file format,
 * bounds, errors that name the line, derived paths, and a dump that
 * parses back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "mkd_config.h"

static void test_config(void **st)
{
    mkd_config c;
    mkd_diag d;
    static const char text[] =
        "# comment\n\n  port = 9000  \nlisten=::1, 127.0.0.1\n"
        "key_file = \" /a b.pem \"\nlog_level = debug\r\n";
    (void)st;

    mkd_config_defaults(&c);
    assert_int_equal(c.port, MKD_DEFAULT_PORT);
    assert_string_equal(c.listen, "127.0.0.1");
    assert_string_equal(c.backend, "php");
    assert_int_equal(c.max_inflight, 32);
    /* session_max_age: 7 days by default, 1 minute .. 30 days. */
    assert_int_equal(c.session_max_age, 604800);
    assert_int_equal(mkd_config_set(&c, "session_max_age", "59", &d),
                     MKD_ERR_CONFIG);
    assert_int_equal(mkd_config_set(&c, "session_max_age", "2592001", &d),
                     MKD_ERR_CONFIG);
    assert_int_equal(mkd_config_set(&c, "session_max_age", "2592000", &d),
                     MKD_OK);
    assert_int_equal(c.session_max_age, 2592000);
    assert_int_equal(c.inline_crypto_max, 16384);
    assert_int_equal(mkd_config_set(&c, "inline_crypto_max", "0", &d), MKD_OK);
    assert_int_equal(c.inline_crypto_max, 0);
    assert_int_equal(mkd_config_set(&c, "inline_crypto_max", "1048577", &d),
                     MKD_ERR_CONFIG);
    assert_int_equal(mkd_config_parse(&c, text, sizeof text - 1, "t", &d),
                     MKD_OK);
    assert_int_equal(c.port, 9000);
    assert_string_equal(c.listen, "::1, 127.0.0.1");
    assert_string_equal(c.key_file, " /a b.pem ");
    assert_true(c.key_file_set);
    assert_int_equal(c.log_level, 3);
    /* Errors name the line and never leave a half-set value. */
    assert_int_equal(mkd_config_parse(&c, "port = 70000\n", 13, "t", &d),
                     MKD_ERR_CONFIG);
    assert_non_null(strstr(d.text, "t:1"));
    assert_int_equal(c.port, 9000);
    assert_int_equal(mkd_config_parse(&c, "\nprot = 1\n", 10, "t", &d),
                     MKD_ERR_CONFIG);
    assert_non_null(strstr(d.text, "t:2"));
    assert_int_equal(mkd_config_parse(&c, "port\n", 5, "t", &d),
                     MKD_ERR_CONFIG);
    assert_int_equal(mkd_config_parse(&c, "port = -1\n", 10, "t", &d),
                     MKD_ERR_CONFIG);
    assert_int_equal(mkd_config_parse(&c, "port = 1x\n", 10, "t", &d),
                     MKD_ERR_CONFIG);
    assert_int_equal(
        mkd_config_parse(&c, "port = 99999999999999999999\n", 28, "t", &d),
        MKD_ERR_CONFIG);
    assert_int_equal(mkd_config_parse(&c, "log_level = loud\n", 17, "t", &d),
                     MKD_ERR_CONFIG);
    assert_int_equal(mkd_config_set(&c, "backend", "fastcgi", &d), MKD_OK);
    assert_int_equal(mkd_config_finish(&c, &d), MKD_ERR_CONFIG);
    mkd_config_defaults(&c);
    assert_int_equal(mkd_config_set(&c, "workers", "4", &d), MKD_OK);
    assert_int_equal(mkd_config_set(&c, "workers_max", "2", &d), MKD_OK);
    assert_int_equal(mkd_config_finish(&c, &d), MKD_ERR_CONFIG);
    mkd_config_defaults(&c);
    assert_int_equal(mkd_config_set(&c, "data_dir", "/x", &d), MKD_OK);
    assert_int_equal(mkd_config_finish(&c, &d), MKD_OK);
    assert_string_equal(c.key_file, "/x/server.pem");
    assert_string_equal(c.ticket_key_file, "/x/ticket.keys");
    assert_string_equal(c.control_socket, "/x/mkd.sock");
    /* Every line of the dump parses back. */
    {
        char buf[8192];
        mkd_config back;
        size_t n = mkd_config_dump(&c, buf, sizeof buf);
        mkd_config_defaults(&back);
        assert_int_equal(mkd_config_parse(&back, buf, n, "dump", &d), MKD_OK);
        assert_int_equal(back.port, c.port);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests_name("mkd_config", tests, NULL, NULL);
}
