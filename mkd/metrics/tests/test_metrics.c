/*
 * test_metrics.c -- the metrics room without a daemon: the HTTP request
 * parser (each answer it gives, a request cut anywhere, the size limit)
 * and the listen address rules (loopback only unless allowed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "metrics_http.h"

static int parse_str(const char *s, metrics_http_req *r)
{
    return metrics_http_parse((const uint8_t *)s, strlen(s), r);
}

static void expect(const char *s, int status, int path)
{
    metrics_http_req r;

    if (parse_str(s, &r) != 1 || r.status != status || r.path != path)
        fail_msg("\"%s\": status %d path %d, want %d %d", s, r.status, r.path,
                 status, path);
}

static void test_http_answers(void **st)
{
    (void)st;
    expect("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Accept: text/plain;version=0.0.4\r\n\r\n",
           200, METRICS_PATH_METRICS);
    expect("GET /health HTTP/1.0\r\n\r\n", 200, METRICS_PATH_HEALTH);
    expect("GET /ready?verbose=1 HTTP/1.1\r\n\r\n", 200, METRICS_PATH_READY);
    expect("GET /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 200,
           METRICS_PATH_METRICS);
    expect("GET /metricsx HTTP/1.1\r\n\r\n", 404, 0);
    expect("GET / HTTP/1.1\r\n\r\n", 404, 0);
    expect("POST /metrics HTTP/1.1\r\n", 405, 0);
    expect("HEAD /metrics HTTP/1.1\r\n", 405, 0);
    expect("GET /metrics HTTP/2.0\r\n", 505, 0);
    expect("GET /metrics FOO/1.1\r\n", 400, 0);
    expect("GET metrics HTTP/1.1\r\n", 400, 0);
    expect("GET  /metrics HTTP/1.1\r\n", 400, 0);
    expect("\r\nGET /metrics HTTP/1.1\r\n\r\n", 400, 0);
    expect("GET /metrics HTTP/1.1\r\nNo colon\r\n\r\n", 400, 0);
    expect("GET /metrics HTTP/1.1\r\nX: a\x01"
           "b\r\n\r\n",
           400, 0);
    expect("GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\n", 400, 0);
    expect("GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
           0);
    /* A second request after the first: one request per connection. */
    expect("GET /health HTTP/1.1\r\n\r\nGET /ready HTTP/1.1\r\n\r\n", 400, 0);
}

static void test_http_limits(void **st)
{
    static char big[METRICS_HTTP_MAX + 64];
    const char *req = "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n";
    metrics_http_req r;
    size_t n;

    (void)st;
    /* Cut anywhere before its end, a request needs more. */
    for (n = 0; n < strlen(req); n++)
        assert_int_equal(metrics_http_parse((const uint8_t *)req, n, &r), 0);
    /* A target over the limit. */
    n = (size_t)snprintf(big, sizeof big, "GET /%0*d HTTP/1.1\r\n\r\n",
                         METRICS_HTTP_TARGET_MAX, 0);
    assert_int_equal(metrics_http_parse((const uint8_t *)big, n, &r), 1);
    assert_int_equal(r.status, 414);
    /* Headers that never end, up to the limit: refused there, not
     * waited for. */
    n = (size_t)snprintf(big, sizeof big, "GET /metrics HTTP/1.1\r\nX: ");
    memset(big + n, 'a', sizeof big - n);
    assert_int_equal(
        metrics_http_parse((const uint8_t *)big, METRICS_HTTP_MAX - 1, &r), 0);
    assert_int_equal(
        metrics_http_parse((const uint8_t *)big, METRICS_HTTP_MAX, &r), 1);
    assert_int_equal(r.status, 431);
}

static int listen_ok(const char *spec, int allow)
{
    struct sockaddr_storage sa;
    mkd_diag d;

    return metrics_parse_listen(spec, allow, &sa, &d) == MKD_OK;
}

static void test_listen_address(void **st)
{
    (void)st;
    assert_true(listen_ok("127.0.0.1:9464", 0));
    assert_true(listen_ok("127.0.0.2:0", 0));
    assert_true(listen_ok("[::1]:9464", 0));
    /* Not loopback: refused unless allowed. */
    assert_false(listen_ok("0.0.0.0:9464", 0));
    assert_false(listen_ok("192.0.2.1:9464", 0));
    assert_false(listen_ok("[::]:9464", 0));
    assert_true(listen_ok("0.0.0.0:9464", 1));
    assert_true(listen_ok("[::]:9464", 1));
    /* Not an address. */
    assert_false(listen_ok("localhost:9464", 1));
    assert_false(listen_ok("127.0.0.1", 0));
    assert_false(listen_ok("127.0.0.1:", 0));
    assert_false(listen_ok("127.0.0.1:65536", 0));
    assert_false(listen_ok("127.0.0.1:94x4", 0));
    assert_false(listen_ok(":9464", 0));
    assert_false(listen_ok("::1:9464", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_answers),
        cmocka_unit_test(test_http_limits),
        cmocka_unit_test(test_listen_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
