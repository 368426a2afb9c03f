/*
 * test_mkd_proxy.c -- trusted_proxies and the PROXY protocol on the real
 * mkd, with headers written by hand (the test with HAProxy itself is
 * test_haproxy.sh): the application (apps/hello, which echoes the address
 * it is given) sees the header's client, not the proxy; version 1 and 2,
 * IPv4 and IPv6; a trusted peer without a header, with a malformed one or
 * with none before the handshake deadline is refused; an untrusted peer
 * that sends one is closed and counted, and without one is served as
 * before; the per-address limits count the header's address.
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

#include "mkt.h"
#include "testlib.h"

#define D mkt_D

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 PROXY header for TCP over IPv4 from a.b.c.d:port to 127.0.0.1. */
static size_t v2_inet(uint8_t *out, const uint8_t src[4], uint16_t port)
{
    memcpy(out, SIG, 12);
    out[12] = 0x21; /* version 2, PROXY */
    out[13] = 0x11; /* TCP over IPv4 */
    out[14] = 0;
    out[15] = 12;
    memcpy(out + 16, src, 4);
    memcpy(out + 20, "\x7f\x00\x00\x01", 4);
    out[24] = (uint8_t)(port >> 8);
    out[25] = (uint8_t)port;
    out[26] = 0x1c; /* 7410 */
    out[27] = 0xf2;
    return 28;
}

static void start(const char *const *extra)
{
    const char *args[24];
    size_t n = 0;
    int ok = 0;

    args[n++] = "--backend=php";
    args[n++] = "--php=" MKT_PHP;
    args[n++] = "--workers=1";
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 23; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    if (mkt_daemon_start(&D, args) != 0)
        fail_msg("mkd did not start (log %s)", D.log);
    TL_POLL_UNTIL(ok, mkt_status(&D, "backend.workers_idle") == 1, 30000);
    if (!ok)
        fail_msg("the PHP pool did not become ready (log %s)", D.log);
}

/* Open (after pre, if any) from src, ask the hello app, and require its
 * answer to name who:port. */
static void hello_sees(const char *src, const uint8_t *pre, size_t pre_len,
                       const char *who, unsigned port)
{
    mk_client_config *cc = mkt_client_config(D.pub);
    mkt_client c;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    unsigned ecode = 0;
    char want[128], *text;

    assert_non_null(cc);
    assert_int_equal(mkt_client_open_after(&c, cc, src, D.port, pre, pre_len),
                     MK_OK);
    assert_int_equal(
        mkt_client_request(&c, (const uint8_t *)"hi", 2, &resp, &rlen, &ecode),
        MK_OK);
    text = calloc(1, rlen + 1);
    assert_non_null(text);
    memcpy(text, resp, rlen);
    /* port 0: the socket's own, whatever the kernel chose. */
    if (port != 0)
        snprintf(want, sizeof want, "You are %s port %u;", who, port);
    else
        snprintf(want, sizeof want, "You are %s port ", who);
    if (strstr(text, want) == NULL)
        fail_msg("expected \"%s\" in: %s", want, text);
    free(text);
    free(resp);
    mkt_client_close(&c);
    mk_client_config_unref(cc);
}

static void test_v2_and_v1_name_the_client(void **st)
{
    static const char *extra[] = {"--trusted_proxies=127.0.0.1/32", NULL};
    static const char *v1_4 = "PROXY TCP4 198.51.100.9 127.0.0.1 4242 7410\r\n";
    static const char *v1_6 = "PROXY TCP6 2001:db8::7 ::1 65535 7410\r\n";
    uint8_t h[64];
    size_t n = v2_inet(h, (const uint8_t *)"\xc0\x00\x02\x07", 50000);
    (void)st;

    start(extra);
    hello_sees("127.0.0.1", h, n, "192.0.2.7", 50000);
    hello_sees("127.0.0.1", (const uint8_t *)v1_4, strlen(v1_4), "198.51.100.9",
               4242);
    hello_sees("127.0.0.1", (const uint8_t *)v1_6, strlen(v1_6), "2001:db8::7",
               65535);
    /* A peer outside the list is served as itself. */
    hello_sees("127.0.0.2", NULL, 0, "127.0.0.2", 0);
}

/* The connection is closed by mkd, no answer but the close. */
static void closed_after(const char *src, const void *p, size_t n)
{
    int fd = mkt_tcp_connect(src, D.port);

    assert_true(fd >= 0);
    if (n > 0)
        assert_int_equal(mkt_send_all(fd, p, n), 0);
    assert_int_equal(mkt_wait_closed(fd, tl_deadline_ms(20000)), 0);
    close(fd);
}

static void test_refusals(void **st)
{
    static const char *extra[] = {"--trusted_proxies=127.0.0.1",
                                  "--handshake_timeout_ms=500", NULL};
    mk_client_config *cc;
    static uint8_t hello[MK_HANDLE_OUT_LEN];
    uint8_t h[64];
    size_t n = v2_inet(h, (const uint8_t *)"\xc0\x00\x02\x07", 1);
    mkt_client c;
    int ok = 0;
    (void)st;

    start(extra);
    cc = mkt_client_config(D.pub);
    assert_non_null(cc);
    /* Trusted, but a hello where the header belongs. */
    {
        mk_session *s = NULL;
        size_t hn = 0;
        assert_int_equal(mk_session_new_client(&s, cc, NULL, 0), MK_OK);
        assert_int_equal(mk_client_hello(s, hello, sizeof hello, &hn), MK_OK);
        mk_session_free(s);
        closed_after("127.0.0.1", hello, hn);
    }
    TL_POLL_UNTIL(ok, mkt_status(&D, "proxy.refused") == 1, 10000);
    assert_true(ok);
    /* Trusted, a header that breaks off and a malformed v1 line. */
    closed_after("127.0.0.1", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 31);
    TL_POLL_UNTIL(ok, mkt_status(&D, "proxy.refused") == 2, 10000);
    assert_true(ok);
    /* Trusted, silent: the handshake deadline closes it. */
    closed_after("127.0.0.1", NULL, 0);
    closed_after("127.0.0.1", h, 20); /* a partial header, then silence */
    /* Untrusted, with a header: closed, counted; the client is not
     * answered a Megaki alert either. */
    closed_after("127.0.0.2", h, n);
    closed_after("127.0.0.2", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 33);
    TL_POLL_UNTIL(ok, mkt_status(&D, "proxy.untrusted") == 2, 10000);
    assert_true(ok);
    assert_int_equal(mkt_status(&D, "proxy.headers"), 0);
    assert_true(mkt_status(&D, "closed.timeout_handshake") >= 2);
    /* An untrusted peer without one is served. */
    assert_int_equal(mkt_client_open(&c, cc, "127.0.0.2", D.port, NULL, 0),
                     MK_OK);
    mkt_client_close(&c);
    mk_client_config_unref(cc);
}

/* max_connections_per_address counts the header's address: two
 * connections "from" 192.0.2.7 fill its share, a third is told to retry
 * later, while 192.0.2.8, through the same proxy, is served. */
static void test_limits_by_client_address(void **st)
{
    static const char *extra[] = {"--trusted_proxies=127.0.0.0/8",
                                  "--max_connections_per_address=2", NULL};
    mk_client_config *cc;
    mkt_client a, b, x, y;
    uint8_t h7[64], h8[64];
    size_t n7 = v2_inet(h7, (const uint8_t *)"\xc0\x00\x02\x07", 1000);
    size_t n8 = v2_inet(h8, (const uint8_t *)"\xc0\x00\x02\x08", 1000);
    (void)st;

    start(extra);
    cc = mkt_client_config(D.pub);
    assert_non_null(cc);
    assert_int_equal(mkt_client_open_after(&a, cc, "127.0.0.1", D.port, h7, n7),
                     MK_OK);
    assert_int_equal(mkt_client_open_after(&b, cc, "127.0.0.1", D.port, h7, n7),
                     MK_OK);
    assert_int_equal(mkt_client_open_after(&x, cc, "127.0.0.1", D.port, h7, n7),
                     MK_ERR_PEER_RETRY_LATER);
    mkt_client_close(&x);
    assert_int_equal(mkt_client_open_after(&y, cc, "127.0.0.1", D.port, h8, n8),
                     MK_OK);
    assert_int_equal(mkt_status(&D, "refused.connections_per_address"), 1);
    assert_int_equal(mkt_status(&D, "proxy.headers"), 4);
    mkt_client_close(&a);
    mkt_client_close(&b);
    mkt_client_close(&y);
    mk_client_config_unref(cc);
}

static void test_bad_list_refused(void **st)
{
    static const char *argv[] = {"config", "--test",
                                 "--trusted_proxies=10.0.0.1/8", NULL};
    char *out = NULL;
    (void)st;

    assert_int_not_equal(mkt_run_mkd_output(argv, &out), 0);
    assert_non_null(out);
    if (strstr(out, "trusted_proxies") == NULL)
        fail_msg("no reason given: %s", out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v2_and_v1_name_the_client,
                                        mkt_setup, mkt_teardown),
        cmocka_unit_test_setup_teardown(test_refusals, mkt_setup, mkt_teardown),
        cmocka_unit_test_setup_teardown(test_limits_by_client_address,
                                        mkt_setup, mkt_teardown),
        cmocka_unit_test(test_bad_list_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
