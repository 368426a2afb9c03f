/*
 * test_config.c -- the configuration parser: defaults, the file format,
 * bounds, errors that name the line, derived paths, and a dump that
 * parses back; the workers' environment and php.ini settings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
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

/* set must fail, with a message holding want. */
static void refused(mkd_config *c, const char *key, const char *value,
                    const char *want)
{
    mkd_diag d;

    assert_int_equal(mkd_config_set(c, key, value, &d), MKD_ERR_CONFIG);
    if (strstr(d.text, want) == NULL)
        fail_msg("%s = %s: \"%s\" does not say \"%s\"", key, value, d.text,
                 want);
}

/*
 * env[NAME], env_pass, php_value[NAME], php_admin_value[NAME]: names and
 * values checked when given, bounds, the last kind given for a directive
 * wins, and env values never shown (not in messages, not in the dump).
 */
static void test_env_and_ini(void **st)
{
    static mkd_config c, back;
    char buf[16384], key[32];
    mkd_diag d;
    size_t n;
    (void)st;

    mkd_config_defaults(&c);
    assert_int_equal(mkd_config_set(&c, "env[DB_PASSWORD]", "hunter2 x", &d),
                     MKD_OK);
    assert_int_equal(mkd_config_set(&c, "php_value[date.timezone]", "UTC", &d),
                     MKD_OK);
    assert_int_equal(mkd_config_set(&c, "php_value[precision]", "5", &d),
                     MKD_OK);
    /* Given again as admin: one setting, the admin kind. */
    assert_int_equal(mkd_config_set(&c, "php_admin_value[precision]", "6", &d),
                     MKD_OK);
    assert_int_equal(c.nkv, 3);
    assert_int_equal(c.kv[2].kind, MKD_KV_PHP_ADMIN);
    assert_string_equal(c.kv[2].value, "6");
    refused(&c, "env[1BAD]", "x", "not a variable name");
    refused(&c, "env[A-B]", "x", "not a variable name");
    refused(&c, "env[]", "x", "expected env[NAME]");
    refused(&c, "env[X", "x", "expected env[NAME]");
    refused(&c, "envv[X]", "x", "unknown option");
    refused(&c, "php_value[_x]", "1", "not a php.ini directive name");
    refused(&c, "php_value[display_errors]", "1", "Arcangelo sets it itself");
    refused(&c, "php_admin_value[error_log]", "/x", "Arcangelo sets it itself");
    refused(&c, "php_value[precision]", "a\"b", "double quote");
    refused(&c, "php_value[precision]", "a\nb", "control character");
    memset(buf, 'v', 600);
    buf[600] = '\0';
    /* The message never shows an env value. */
    assert_int_equal(mkd_config_set(&c, "env[LONG]", buf, &d), MKD_ERR_CONFIG);
    assert_non_null(strstr(d.text, "value too long"));
    assert_null(strstr(d.text, "vvvv"));
    /* Bounded: MKD_ENV_MAX variables. */
    for (unsigned i = 1; i < MKD_ENV_MAX; i++) {
        snprintf(key, sizeof key, "env[V%u]", i);
        assert_int_equal(mkd_config_set(&c, key, "1", &d), MKD_OK);
    }
    refused(&c, "env[ONE_MORE]", "1", "too many settings");
    /* The env_pass list, checked when the configuration is finished. */
    mkd_config_defaults(&back);
    assert_int_equal(mkd_config_set(&back, "env[A]", "1", &d), MKD_OK);
    assert_int_equal(mkd_config_set(&back, "env_pass", "B, C", &d), MKD_OK);
    assert_int_equal(mkd_config_finish(&back, &d), MKD_OK);
    assert_int_equal(mkd_config_set(&back, "env_pass", "B C B", &d), MKD_OK);
    assert_int_equal(mkd_config_finish(&back, &d), MKD_ERR_CONFIG);
    assert_non_null(strstr(d.text, "B is listed twice"));
    assert_int_equal(mkd_config_set(&back, "env_pass", "A", &d), MKD_OK);
    assert_int_equal(mkd_config_finish(&back, &d), MKD_ERR_CONFIG);
    assert_non_null(strstr(d.text, "also set by env[A]"));
    assert_int_equal(mkd_config_set(&back, "env_pass", "B 9X", &d), MKD_OK);
    assert_int_equal(mkd_config_finish(&back, &d), MKD_ERR_CONFIG);
    assert_non_null(strstr(d.text, "\"9X\" is not a variable name"));
    /* The dump names env[] variables but never shows their values; the
     * php.ini settings parse back. */
    n = mkd_config_dump(&c, buf, sizeof buf);
    assert_non_null(strstr(buf, "env[DB_PASSWORD] is set"));
    assert_null(strstr(buf, "hunter2"));
    mkd_config_defaults(&back);
    assert_int_equal(mkd_config_parse(&back, buf, n, "dump", &d), MKD_OK);
    assert_int_equal(back.nkv, 2);
    assert_string_equal(back.kv[0].key, "date.timezone");
    assert_string_equal(back.kv[1].value, "6");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_env_and_ini),
    };
    return cmocka_run_group_tests_name("mkd_config", tests, NULL, NULL);
}
