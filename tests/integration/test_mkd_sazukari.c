/*
 * test_mkd_sazukari.c -- the real `mkd` driven by the client library
 * (libsazukari) and its CLI: full handshake, many requests in flight,
 * resumption (explicit blob, the client's own cache, and across an mkd
 * restart with the same ticket-key file), the connection limit seen as
 * SZ_ERR_BUSY, a graceful SIGTERM with a request in flight, and the
 * CLI's load mode (duration, and a summary that names the limit that
 * refused most of a run).
 * Built only when the sazukari target exists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mkt.h"
#include "testlib.h"
#include "sazukari.h"

#define D mkt_D

static sz_client *client(void)
{
    sz_client *c = NULL;
    assert_int_equal(sz_client_new(&c), SZ_OK);
    assert_int_equal(sz_client_pin_file(c, D.pub), SZ_OK);
    return c;
}

static void echo(sz_conn *conn, size_t len, uint8_t seed)
{
    uint8_t *req = calloc(1, len + 1), *resp = NULL;
    size_t rlen = 0;

    for (size_t i = 0; i < len; i++)
        req[i] = (uint8_t)(seed + i * 31);
    assert_int_equal(sz_request(conn, req, len, &resp, &rlen), SZ_OK);
    assert_int_equal(rlen, len);
    if (len)
        assert_memory_equal(resp, req, len);
    sz_free(resp);
    free(req);
}

static void test_sz_handshake_and_pipelining(void **st)
{
    sz_client *c;
    sz_conn *conn = NULL;
    sz_conn_info info;
    uint32_t ids[32];
    char msg[32][16];
    static const char *const args[] = {"--listen=127.0.0.1,::1", NULL};
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    c = client();
    /* IPv6 too, on the same (kernel-chosen) port. */
    assert_int_equal(sz_connect(c, "::1", D.port, NULL, 0, &conn), SZ_OK);
    echo(conn, 10, 9);
    sz_conn_close(conn);
    assert_int_equal(sz_client_set_resumption(c, 0), SZ_OK);
    assert_int_equal(sz_connect(c, "127.0.0.1", D.port, NULL, 0, &conn), SZ_OK);
    sz_conn_get_info(conn, &info);
    assert_false(info.resumed);
    assert_int_equal(info.max_inflight, 32);
    assert_int_equal(info.max_message, 1u << 20);
    echo(conn, 0, 1);
    echo(conn, 100000, 2);
    /* The server's whole in-flight window at once. */
    for (int i = 0; i < 32; i++) {
        snprintf(msg[i], sizeof msg[i], "request %d", i);
        assert_int_equal(
            sz_submit(conn, (const uint8_t *)msg[i], strlen(msg[i]), &ids[i]),
            SZ_OK);
    }
    for (int i = 31; i >= 0; i--) {
        uint8_t *resp = NULL;
        size_t rlen = 0;
        assert_int_equal(sz_wait(conn, ids[i], &resp, &rlen), SZ_OK);
        assert_int_equal(rlen, strlen(msg[i]));
        assert_memory_equal(resp, msg[i], rlen);
        sz_free(resp);
    }
    sz_conn_close(conn);
    sz_client_free(c);
    assert_int_equal(mkt_status(&D, "requests"), 35);
}

static void test_sz_resumption_restart(void **st)
{
    sz_client *c;
    sz_conn *conn = NULL;
    sz_conn_info info;
    uint8_t blob[SZ_SESSION_MAX];
    size_t blen = 0;
    int s;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, NULL), 0);
    c = client();
    assert_int_equal(sz_connect(c, "127.0.0.1", D.port, NULL, 0, &conn), SZ_OK);
    assert_int_equal(sz_conn_export_session(conn, blob, sizeof blob, &blen),
                     SZ_OK);
    sz_conn_close(conn);
    /* The client's own cache resumes without being handed the blob. */
    assert_int_equal(sz_connect(c, "127.0.0.1", D.port, NULL, 0, &conn), SZ_OK);
    sz_conn_get_info(conn, &info);
    assert_true(info.resumed);
    echo(conn, 10, 3);
    sz_conn_close(conn);
    sz_client_free(c);

    /* Restart with the same data directory (ticket-key file). */
    s = mkt_daemon_stop(&D, SIGTERM, 15000);
    assert_true(s >= 0 && WIFEXITED(s) && WEXITSTATUS(s) == 0);
    D.port = 0;
    assert_int_equal(mkt_daemon_start(&D, NULL), 0);
    c = client();
    assert_int_equal(sz_connect(c, "127.0.0.1", D.port, blob, blen, &conn),
                     SZ_OK);
    sz_conn_get_info(conn, &info);
    assert_true(info.resumed);
    echo(conn, 5000, 4);
    sz_conn_close(conn);
    sz_client_free(c);
    sz_wipe(blob, sizeof blob);
    assert_int_equal(mkt_status(&D, "handshakes.full"), 0);
}

static void test_sz_busy_and_sigterm(void **st)
{
    static const char *const args[] = {"--max_connections=1",
                                       "--echo_delay_ms=1000", NULL};
    sz_client *c;
    sz_conn *conn = NULL, *other = NULL;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    uint32_t id = 0;
    int s, ok = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    c = client();
    assert_int_equal(sz_connect(c, "127.0.0.1", D.port, NULL, 0, &conn), SZ_OK);
    assert_int_equal(sz_connect(c, "127.0.0.1", D.port, NULL, 0, &other),
                     SZ_ERR_BUSY);
    assert_null(other);
    assert_int_equal(sz_submit(conn, (const uint8_t *)"slow", 4, &id), SZ_OK);
    /* The request is with the backend before the signal comes. */
    TL_POLL_UNTIL(ok, mkt_status(&D, "requests") == 1, 10000);
    assert_true(ok);
    kill(D.pid, SIGTERM);
    assert_int_equal(sz_wait(conn, id, &resp, &rlen), SZ_OK);
    assert_int_equal(rlen, 4);
    assert_memory_equal(resp, "slow", 4);
    sz_free(resp);
    /* Then the server's clean close. */
    {
        uint8_t *r2 = NULL;
        size_t l2 = 0;
        int e = sz_request(conn, (const uint8_t *)"x", 1, &r2, &l2);
        assert_true(e == SZ_ERR_CLOSED || e == SZ_ERR_SERVER_SHUTDOWN ||
                    e == SZ_ERR_IO);
        sz_free(r2);
    }
    sz_conn_close(conn);
    sz_client_free(c);
    s = mkt_daemon_stop(&D, 0, 10000);
    assert_true(s >= 0 && WIFEXITED(s));
    assert_int_equal(WEXITSTATUS(s), 0);
}

/* The CLI: one request, the response on standard output. */
static void test_sz_cli(void **st)
{
    char cmd[1200], out[256];
    FILE *p;
    size_t n;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, NULL), 0);
    snprintf(cmd, sizeof cmd, "'%s' -k '%s' 127.0.0.1:%u 'hello mkd'",
             SAZUKARI_CLI, D.pub, D.port);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_string_equal(out, "hello mkd");
}

/*
 * The load mode against a real mkd whose per-address handshake rate is
 * deliberately low: most full handshakes are refused with retry_later, the
 * rate counts the successes only, and the summary says the refusals
 * dominate and names the option (handshake_rate). mkd's own counter
 * agrees that it refused them for that reason.
 */
static void test_sz_cli_load_throttled(void **st)
{
    static const char *const args[] = {"--handshake_rate=1",
                                       "--handshake_burst=2", NULL};
    char cmd[1200], out[4096];
    unsigned long ok = 0, failed = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    snprintf(cmd, sizeof cmd,
             "'%s' -q --load --new-handshake-per-request -n 200 -k '%s' "
             "127.0.0.1:%u ping",
             SAZUKARI_CLI, D.pub, D.port);
    assert_int_equal(tl_run_capture(cmd, out, sizeof out), 10); /* busy */
    assert_int_equal(sscanf(out, "requests: %lu ok, %lu failed", &ok, &failed),
                     2);
    assert_int_equal(ok + failed, 200);
    assert_true(ok >= 2 && ok < failed);
    assert_non_null(strstr(out, "requests/s (successful)"));
    assert_non_null(strstr(out, "were refused with retry_later"));
    assert_non_null(strstr(out, "handshake_rate"));
    assert_true(mkt_status(&D, "refused.handshake_rate") >= (long long)failed);
}

/* The duration mode runs for -d seconds, whatever the count. */
static void test_sz_cli_load_duration(void **st)
{
    char cmd[1200], out[4096];
    unsigned long ok = 0, failed = 1;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, NULL), 0);
    snprintf(cmd, sizeof cmd,
             "'%s' -q --load -d 1 -c 2 -k '%s' 127.0.0.1:%u ping", SAZUKARI_CLI,
             D.pub, D.port);
    assert_int_equal(tl_run_capture(cmd, out, sizeof out), 0);
    assert_int_equal(sscanf(out, "requests: %lu ok, %lu failed", &ok, &failed),
                     2);
    assert_true(ok > 0);
    assert_int_equal(failed, 0);
    assert_null(strstr(out, "retry_later"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sz_handshake_and_pipelining,
                                        mkt_setup, mkt_teardown),
        cmocka_unit_test_setup_teardown(test_sz_resumption_restart, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_sz_busy_and_sigterm, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_sz_cli, mkt_setup, mkt_teardown),
        cmocka_unit_test_setup_teardown(test_sz_cli_load_throttled, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_sz_cli_load_duration, mkt_setup,
                                        mkt_teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("mkd_sazukari", tests, NULL, NULL);
}
