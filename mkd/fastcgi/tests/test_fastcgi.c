/*
 * test_fastcgi.c -- the FastCGI backend's settings: the upstream list
 * parser takes unix:/PATH, IPv4:PORT and [IPv6]:PORT and refuses anything
 * else by name; fastcgi_new refuses a relative script; a request whose
 * upstreams all fail to connect is answered once, "overloaded". Its traffic is
 * tested against a real PHP-FPM (tests/integration/test_fastcgi.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void test_upstream_list(void **st)
{
    static const char *good[] = {
        "unix:/run/php/fpm.sock",
        "127.0.0.1:9000",
        "[::1]:9000, 10.0.0.2:9001\tunix:/a",
    };
    static const char *bad[] = {
        "",          " , ",         "unix:relative",   "localhost:9000",
        "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:9x",
        "[::1]9000", "[::1:9000",   "1.2.3.4.5:80",
    };
    fc_upstream *ups[FASTCGI_UPSTREAMS_MAX];
    unsigned n;
    mkd_diag d;
    (void)st;

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(fastcgi_check_upstreams(good[i], &d), MKD_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(fastcgi_check_upstreams(bad[i], &d), MKD_ERR_CONFIG);
    assert_non_null(strstr(mkd_diag_text(&d, MKD_ERR_CONFIG), "1.2.3.4.5:80"));
    assert_int_equal(
        fastcgi__parse_upstreams("[::1]:9000 unix:/x/y", ups, &n, &d), MKD_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ups[0]->addr.ss_family, AF_INET6);
    assert_true(ups[1]->is_unix);
    assert_string_equal(ups[1]->path, "/x/y");
    assert_string_equal(ups[1]->name, "unix:/x/y");
    free(ups[0]);
    free(ups[1]);
}

static void test_new_checks(void **st)
{
    fastcgi_config fc = {"unix:/x", "relative.php", 8, 1000, 1000, 1000, 1024};
    uv_loop_t loop;
    mkd_backend *b;
    mkd_diag d;
    (void)st;

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(fastcgi_new(&loop, &fc, &b, &d), MKD_ERR_CONFIG);
    assert_null(b);
    fc.script = "/srv/app/fpm.php";
    assert_int_equal(fastcgi_new(&loop, &fc, &b, &d), MKD_OK);
    fc.upstreams = "nonsense";
    assert_int_equal(fastcgi_reconfigure(b, &fc, &d), MKD_ERR_CONFIG);
    b->ops->free(b);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static mkd_backend_status got_status = MKD_BACKEND_OK;
static int got_n;

static void on_done(void *token, mkd_backend_status st, const uint8_t *body,
                    size_t len, const char *text, const mkd_backend_timing *tm)
{
    (void)token;
    (void)body;
    (void)len;
    (void)text;
    (void)tm;
    got_status = st;
    got_n++;
}

/* Every upstream's connect fails (no such socket), and ejection is off
 * (fastcgi_eject_ms = 0): the request tries each upstream once and is
 * answered "overloaded", instead of trying the same ones forever. */
static void test_all_down(void **st)
{
    fastcgi_config fc = {"unix:/nonexistent/a.sock unix:/nonexistent/b.sock",
                         "/srv/app/fpm.php",
                         8,
                         1000,
                         1000,
                         0,
                         1024};
    mkd_request_ctx ctx;
    uv_loop_t loop;
    mkd_backend *b;
    uint8_t *body = malloc(2);
    char text[2048];
    size_t n;
    mkd_diag d;
    (void)st;

    assert_non_null(body);
    memcpy(body, "hi", 2);
    memset(&ctx, 0, sizeof ctx);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(fastcgi_new(&loop, &fc, &b, &d), MKD_OK);
    got_n = 0;
    assert_int_equal(b->ops->submit(b, &ctx, body, 2, on_done, NULL),
                     MKD_BACKEND_OK);
    while (got_n == 0 && uv_run(&loop, UV_RUN_ONCE) != 0)
        ;
    assert_int_equal(got_n, 1);
    assert_int_equal(got_status, MKD_BACKEND_OVERLOADED);
    n = b->ops->status(b, text, sizeof text - 1);
    text[n] = '\0';
    assert_non_null(strstr(text, "a.sock up conns 0 idle 0 requests 0 "
                                 "connect_failures 1 "));
    assert_non_null(strstr(text, "b.sock up conns 0 idle 0 requests 0 "
                                 "connect_failures 1 "));
    b->ops->free(b);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upstream_list),
        cmocka_unit_test(test_new_checks),
        cmocka_unit_test(test_all_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
