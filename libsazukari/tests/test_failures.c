/*
 * test_failures.c -- everything that can go wrong, each told apart: the
 * wrong pinned key (and not one request byte sent), a tampered handshake,
 * busy and refusing servers, non-Megaki peers, refused connections, names
 * that do not resolve, servers that never answer (every timeout fires and
 * nothing hangs), servers that hang up or send garbage mid-stream, and API
 * misuse.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "megaki.h"
#include "megaki_version.h"
#include "sztest.h"

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Connect to a server in the given mode and expect err. */
static void connect_fails(int mode, sz_client *c, int err, int want_mk,
                          ts_stats *ss)
{
    ts_config cfg;
    ts_server *s;
    sz_conn *conn = (sz_conn *)&cfg; /* must be reset to NULL */
    sz_error_info ei;
    int r;

    memset(&cfg, 0, sizeof cfg);
    cfg.mode = mode;
    s = ts_start(&cfg);
    r = sz_connect(c, "127.0.0.1", ts_port(s), NULL, 0, &conn);
    sz_last_error(&ei);
    if (r != err)
        fail_msg("mode %d: got %s (%s), want %s", mode, sz_err_name(r), ei.text,
                 sz_err_name(err));
    assert_null(conn);
    assert_int_equal(ei.err, err);
    if (want_mk)
        assert_int_equal(ei.mk_err, want_mk);
    assert_true(ei.text[0] != 0);
    /* Let the server see everything before it is asked. */
    assert_true(ts_wait_conns_done(s, 1, 5000) || mode == TS_SILENT_HELLO);
    ts_get_stats(s, ss);
    ts_stop(s);
}

/* The server holds a key we do not pin: SZ_ERR_PIN, and the server
 * received nothing but hellos -- not one byte of a request. */
static void test_wrong_pin(void **st)
{
    sz_client *c = client_with(KEYDIR "other2048.pub.pem", NULL);
    ts_stats ss;
    (void)st;

    connect_fails(TS_NORMAL, c, SZ_ERR_PIN, MK_ERR_PIN, &ss);
    assert_int_equal(ss.data_units, 0);
    assert_int_equal(ss.hello_units, 1);
    assert_int_equal(ss.bytes_in, ss.hello_bytes);
    assert_int_equal(ss.full_hs, 0);
    sz_client_free(c);
}

/* A man in the middle that alters the server's hello: the Finished check
 * fails, which is reported as a pin failure, and nothing is sent. */
static void test_tampered_hello(void **st)
{
    sz_client *c = good_client();
    ts_stats ss;
    (void)st;

    connect_fails(TS_TAMPER_HELLO, c, SZ_ERR_PIN, MK_ERR_SERVER_AUTH, &ss);
    assert_int_equal(ss.data_units, 0);
    assert_int_equal(ss.bytes_in, ss.hello_bytes);
    sz_client_free(c);
}

static void test_handshake_refusals(void **st)
{
    sz_client *c = good_client();
    sz_error_info ei;
    ts_stats ss;
    (void)st;

    connect_fails(TS_BUSY, c, SZ_ERR_BUSY, MK_ERR_PEER_RETRY_LATER, &ss);
    sz_last_error(&ei);
    assert_int_equal(ei.retry_after_ms, 1500);
    connect_fails(TS_REJECT_HELLO, c, SZ_ERR_HANDSHAKE, MK_ERR_PEER_HS_FAILED,
                  &ss);
    connect_fails(TS_GARBAGE_HELLO, c, SZ_ERR_PROTOCOL, MK_ERR_BAD_UNIT_TYPE,
                  &ss);
    connect_fails(TS_HANGUP_ACCEPT, c, SZ_ERR_IO, 0, &ss);
    /* A "ticket not accepted" retry in answer to a full hello (no session
     * was offered): a protocol error, and no second hello (§4.3). */
    connect_fails(TS_RETRY_TICKET, c, SZ_ERR_PROTOCOL, MK_ERR_BAD_MESSAGE, &ss);
    assert_int_equal(ss.hello_units, 1);
    sz_client_free(c);
}

/* A server that accepts and never answers the hello: the connect timeout
 * fires on time. */
static void test_connect_timeout(void **st)
{
    sz_client *c = good_client();
    uint64_t t0;
    ts_stats ss;
    (void)st;

    assert_int_equal(sz_client_set_timeouts(c, 300, 30000, 60000), SZ_OK);
    t0 = ms_now();
    connect_fails(TS_SILENT_HELLO, c, SZ_ERR_TIMEOUT, MK_ERR_TIMEOUT, &ss);
    assert_true(ms_now() - t0 >= 290);
    assert_true(ms_now() - t0 < 5000);
    sz_client_free(c);
}

static void test_refused_and_unresolvable(void **st)
{
    sz_client *c = good_client();
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    sz_conn *conn = NULL;
    sz_error_info ei;
    char host[100];
    int fd;
    (void)st;

    /* A port nobody listens on: bind one, note it, close it. */
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    assert_int_equal(
        sz_connect(c, "127.0.0.1", ntohs(a.sin_port), NULL, 0, &conn),
        SZ_ERR_CONNECT);
    sz_last_error(&ei);
    assert_int_equal(ei.sys_errno, ECONNREFUSED);
    assert_null(conn);

    /* A label over 63 bytes is refused by the resolver itself, without
     * asking any name server. */
    memset(host, 'a', 70);
    strcpy(host + 70, ".invalid");
    assert_int_equal(sz_connect(c, host, 4433, NULL, 0, &conn), SZ_ERR_RESOLVE);
    sz_last_error(&ei);
    assert_true(ei.sys_errno != 0);
    assert_null(conn);
    sz_client_free(c);
}

/* A request the server never answers: its deadline fails it alone. The
 * connection stays usable, and the late-response bookkeeping is clean. */
static void test_request_timeout(void **st)
{
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    sz_conn *conn;
    sz_error_info ei;
    uint32_t id = 0, id2 = 0, got = 0;
    uint8_t *resp = NULL;
    size_t len = 0;
    sz_conn_info ci;
    uint64_t t0;
    (void)st;

    assert_int_equal(sz_client_set_timeouts(c, 5000, 0, 300), SZ_OK);
    conn = connect_ok(c, s);
    t0 = ms_now();
    expect_fail(conn, "!silent", SZ_ERR_TIMEOUT);
    assert_true(ms_now() - t0 >= 290 && ms_now() - t0 < 5000);
    sz_last_error(&ei);
    assert_int_equal(ei.request_id, 1);
    assert_int_equal(sz_conn_error(conn), SZ_OK);
    expect_echo(conn, "next", "next");
    /* The abandoned request still counts against the server's limit. */
    sz_conn_get_info(conn, &ci);
    assert_int_equal(ci.inflight, 1);

    /* sz_poll reports the expiry with its id. */
    assert_int_equal(sz_submit(conn, (const uint8_t *)"!silent", 7, &id),
                     SZ_OK);
    assert_int_equal(sz_poll(conn, 0, &got, &resp, &len), SZ_AGAIN);
    assert_int_equal(sz_poll(conn, -1, &got, &resp, &len), SZ_ERR_TIMEOUT);
    assert_int_equal(got, id);

    /* A slow answer arrives in time for poll(-1) but not for poll(50). */
    assert_int_equal(sz_client_set_timeouts(c, 5000, 0, 30000), SZ_OK);
    sz_conn_close(conn);
    conn = connect_ok(c, s);
    /* 2 s of sleep against a 50 ms poll: the answer cannot be there in
     * time, however loaded the machine. */
    assert_int_equal(sz_submit(conn, (const uint8_t *)"!sleep 2000", 11, &id2),
                     SZ_OK);
    assert_int_equal(sz_poll(conn, 50, &got, &resp, &len), SZ_AGAIN);
    assert_int_equal(sz_poll(conn, -1, &got, &resp, &len), SZ_OK);
    assert_int_equal(got, id2);
    assert_int_equal(len, 5);
    assert_memory_equal(resp, "slept", 5);
    sz_free(resp);
    sz_conn_close(conn);
    sz_client_free(c);
    ts_stop(s);
}

/* The I/O timeout: a silent connection is dead after io_ms. */
static void test_io_timeout(void **st)
{
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    sz_conn *conn;
    uint64_t t0;
    (void)st;

    assert_int_equal(sz_client_set_timeouts(c, 5000, 300, 0), SZ_OK);
    conn = connect_ok(c, s);
    /* Idle longer than io_ms: an idle connection does not time out. */
    usleep(400 * 1000);
    expect_echo(conn, "idle is fine", "idle is fine");
    t0 = ms_now();
    expect_fail(conn, "!silent", SZ_ERR_TIMEOUT);
    assert_true(ms_now() - t0 >= 290 && ms_now() - t0 < 5000);
    assert_int_equal(sz_conn_error(conn), SZ_ERR_TIMEOUT);
    expect_fail(conn, "dead", SZ_ERR_TIMEOUT);
    sz_conn_close(conn);
    sz_client_free(c);
    ts_stop(s);
}

/* Servers that break mid-stream: a clean error each time. */
static void test_broken_streams(void **st)
{
    static const struct {
        const char *req;
        int err;
        int mk_err;
    } cases[] = {
        {"!cut", SZ_ERR_IO, MK_ERR_TRUNCATED},
        {"!hangup", SZ_ERR_IO, MK_ERR_TRUNCATED},
        {"!garbage", SZ_ERR_PROTOCOL, MK_ERR_BAD_UNIT_TYPE},
        {"!badmac", SZ_ERR_PROTOCOL, MK_ERR_BAD_RECORD_MAC},
    };
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    (void)st;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sz_conn *conn = connect_ok(c, s);
        sz_error_info ei;
        uint32_t ids[3];
        /* Two ordinary requests in flight with the bad one. */
        assert_int_equal(sz_submit(conn, (const uint8_t *)"a", 1, &ids[0]),
                         SZ_OK);
        assert_int_equal(sz_submit(conn, (const uint8_t *)cases[i].req,
                                   strlen(cases[i].req), &ids[1]),
                         SZ_OK);
        {
            uint8_t *resp = NULL;
            size_t len = 0;
            assert_int_equal(sz_wait(conn, ids[1], &resp, &len), cases[i].err);
            /* A cut connection proves nothing: it may have run. */
            assert_int_equal(sz_last_error_not_run(), 0);
            sz_last_error(&ei);
            assert_int_equal(ei.mk_err, cases[i].mk_err);
            /* The answer that came before the break is still there. */
            assert_int_equal(sz_wait(conn, ids[0], &resp, &len), SZ_OK);
            assert_int_equal(len, 1);
            sz_free(resp);
        }
        assert_int_equal(sz_conn_error(conn), cases[i].err);
        assert_int_equal(sz_submit(conn, (const uint8_t *)"b", 1, &ids[2]),
                         cases[i].err);
        sz_conn_close(conn);
    }
    sz_client_free(c);
    ts_stop(s);
}

static void test_usage_errors(void **st)
{
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    sz_conn *conn = NULL;
    uint8_t *resp = (uint8_t *)"x";
    size_t len = 9;
    uint32_t id = 9;
    sz_io io;
    (void)st;

    assert_int_equal(sz_client_new(NULL), SZ_ERR_USAGE);
    assert_int_equal(sz_connect(NULL, "h", 1, NULL, 0, &conn), SZ_ERR_USAGE);
    assert_int_equal(sz_connect(c, NULL, 1, NULL, 0, &conn), SZ_ERR_USAGE);
    assert_int_equal(sz_connect(c, "h", 0, NULL, 0, &conn), SZ_ERR_USAGE);
    assert_int_equal(sz_connect(c, "h", 1, NULL, 5, &conn), SZ_ERR_USAGE);
    assert_int_equal(sz_connect(c, "h", 1, NULL, 0, NULL), SZ_ERR_USAGE);
    memset(&io, 0, sizeof io);
    assert_int_equal(sz_connect_io(c, &io, NULL, 0, &conn), SZ_ERR_USAGE);
    assert_null(conn);

    conn = connect_ok(c, s);
    assert_int_equal(sz_request(conn, NULL, 3, &resp, &len), SZ_ERR_USAGE);
    assert_null(resp);
    assert_int_equal(len, 0);
    assert_int_equal(sz_submit(conn, NULL, 0, NULL), SZ_ERR_USAGE);
    assert_int_equal(sz_wait(conn, 77, &resp, &len), SZ_ERR_USAGE);
    assert_int_equal(sz_wait(conn, 0, &resp, &len), SZ_ERR_USAGE);
    assert_int_equal(sz_poll(conn, 0, &id, &resp, &len), SZ_ERR_USAGE);
    assert_int_equal(id, 0);
    /* Misuse does not hurt the connection. */
    assert_int_equal(sz_conn_error(conn), SZ_OK);
    expect_echo(conn, "ok", "ok");
    sz_conn_close(conn);
    sz_conn_close(NULL);
    sz_conn_cancel(NULL);
    assert_int_equal(sz_conn_error(NULL), SZ_ERR_USAGE);
    sz_client_free(NULL);
    sz_free(NULL);
    sz_client_free(c);
    ts_stop(s);
}

static void test_error_table(void **st)
{
    (void)st;
    assert_string_equal(sz_err_name(SZ_OK), "SZ_OK");
    assert_string_equal(sz_err_name(SZ_ERR_PIN), "SZ_ERR_PIN");
    assert_string_equal(sz_err_name(SZ_AGAIN), "SZ_AGAIN");
    assert_string_equal(sz_err_name(12345), "SZ_ERR_UNKNOWN");
    assert_string_equal(sz_strerror(12345), "unknown error");
    /* Every code has a distinct name and a message. */
    for (int i = 0; i <= SZ_AGAIN; i++) {
        assert_string_not_equal(sz_err_name(i), "SZ_ERR_UNKNOWN");
        assert_true(strlen(sz_strerror(i)) > 5);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(sz_err_name(i), sz_err_name(j));
    }
    assert_string_equal(sz_version(), MEGAKI_VERSION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrong_pin),
        cmocka_unit_test(test_tampered_hello),
        cmocka_unit_test(test_handshake_refusals),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_refused_and_unresolvable),
        cmocka_unit_test(test_request_timeout),
        cmocka_unit_test(test_io_timeout),
        cmocka_unit_test(test_broken_streams),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_error_table),
    };
    return cmocka_run_group_tests_name("sazukari_failures", tests, NULL, NULL);
}
