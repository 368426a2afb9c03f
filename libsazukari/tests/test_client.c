/*
 * test_client.c -- libsazukari against the in-process server over TCP:
 * handshakes, transparent and explicit resumption, pins, many requests in
 * flight, every message size up to the maximum, server error records,
 * threads and cancellation.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sztest.h"

static void test_full_handshake(void **st)
{
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    sz_conn *conn = connect_ok(c, s);
    sz_conn_info ci;
    ts_stats ss;
    (void)st;

    sz_conn_get_info(conn, &ci);
    assert_false(ci.resumed);
    assert_true(ci.has_session);
    assert_int_equal(ci.max_message, 1u << 20);
    assert_int_equal(ci.max_inflight, 32);
    assert_int_equal(ci.inflight, 0);
    assert_int_equal(sz_conn_error(conn), SZ_OK);
    expect_echo(conn, "hello", "hello");
    expect_echo(conn, "", "");
    sz_conn_close(conn);
    sz_client_free(c);
    /* The close record reached the server, and it ended the connection. */
    assert_true(ts_wait_conns_done(s, 1, 5000));
    ts_get_stats(s, &ss);
    assert_int_equal(ss.full_hs, 1);
    assert_int_equal(ss.close_units, 1);
    assert_int_equal(ss.requests, 2);
    ts_stop(s);
}

/* The second connection from the same client resumes by itself. */
static void test_resume_transparent(void **st)
{
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    sz_conn_info ci;
    ts_stats ss;
    (void)st;

    for (int i = 0; i < 3; i++) {
        sz_conn *conn = connect_ok(c, s);
        sz_conn_get_info(conn, &ci);
        assert_int_equal(ci.resumed, i > 0);
        expect_echo(conn, "again", "again");
        sz_conn_close(conn);
    }
    /* Forgotten sessions: a full handshake again. */
    sz_client_forget_sessions(c);
    {
        sz_conn *conn = connect_ok(c, s);
        sz_conn_get_info(conn, &ci);
        assert_false(ci.resumed);
        sz_conn_close(conn);
    }
    /* Resumption off: always full. */
    assert_int_equal(sz_client_set_resumption(c, 0), SZ_OK);
    for (int i = 0; i < 2; i++) {
        sz_conn *conn = connect_ok(c, s);
        sz_conn_get_info(conn, &ci);
        assert_false(ci.resumed);
        sz_conn_close(conn);
    }
    ts_get_stats(s, &ss);
    assert_int_equal(ss.full_hs, 4);
    assert_int_equal(ss.resumed_hs, 2);
    sz_client_free(c);
    ts_stop(s);
}

/* Export from one client, import into a fresh one (an app restart). */
static void test_resume_export_import(void **st)
{
    ts_server *s = ts_start(NULL);
    sz_client *a = good_client(), *b = good_client();
    uint8_t blob[SZ_SESSION_MAX], junk[100];
    size_t blen = 0, n = 0;
    sz_conn *conn;
    sz_conn_info ci;
    (void)st;

    conn = connect_ok(a, s);
    assert_int_equal(sz_conn_export_session(conn, blob, 10, &n), SZ_ERR_USAGE);
    assert_int_equal(sz_conn_export_session(conn, blob, sizeof blob, &blen),
                     SZ_OK);
    assert_true(blen > 0 && blen <= SZ_SESSION_MAX);
    sz_conn_close(conn);

    assert_int_equal(sz_connect(b, "127.0.0.1", ts_port(s), blob, blen, &conn),
                     SZ_OK);
    sz_conn_get_info(conn, &ci);
    assert_true(ci.resumed);
    expect_echo(conn, "resumed", "resumed");
    sz_conn_close(conn);

    /* A blob that is not ours is ignored: a full handshake. */
    memset(junk, 0x33, sizeof junk);
    assert_int_equal(
        sz_connect(b, "127.0.0.1", ts_port(s), junk, sizeof junk, &conn),
        SZ_OK);
    sz_conn_get_info(conn, &ci);
    assert_false(ci.resumed);
    sz_conn_close(conn);
    /* One that is too long cannot be one. */
    {
        uint8_t big[SZ_SESSION_MAX + 1];
        memset(big, 0, sizeof big);
        assert_int_equal(
            sz_connect(b, "127.0.0.1", ts_port(s), big, sizeof big, &conn),
            SZ_ERR_SESSION);
        assert_null(conn);
    }
    sz_wipe(blob, sizeof blob);
    sz_client_free(a);
    sz_client_free(b);
    ts_stop(s);
}

/* A server that does not accept the ticket: the client falls back to a
 * full handshake on the same connection (HELLO_RETRY), and the cache gets
 * the new session. */
static void test_resume_refused(void **st)
{
    ts_config cfg;
    ts_server *s1 = ts_start(NULL), *s2;
    sz_client *c = good_client();
    uint8_t blob[SZ_SESSION_MAX];
    size_t blen = 0;
    sz_conn *conn;
    sz_conn_info ci;
    ts_stats ss;
    (void)st;

    conn = connect_ok(c, s1);
    assert_int_equal(sz_conn_export_session(conn, blob, sizeof blob, &blen),
                     SZ_OK);
    sz_conn_close(conn);
    ts_stop(s1);

    /* The same key, but no ticket keys: every ticket is refused. */
    memset(&cfg, 0, sizeof cfg);
    cfg.no_tickets = 1;
    s2 = ts_start(&cfg);
    assert_int_equal(sz_connect(c, "127.0.0.1", ts_port(s2), blob, blen, &conn),
                     SZ_OK);
    sz_conn_get_info(conn, &ci);
    assert_false(ci.resumed);
    assert_false(ci.has_session);
    expect_echo(conn, "fallback", "fallback");
    {
        uint8_t out[SZ_SESSION_MAX];
        size_t n = 0;
        assert_int_equal(sz_conn_export_session(conn, out, sizeof out, &n),
                         SZ_ERR_SESSION);
        assert_int_equal(n, 0);
    }
    sz_conn_close(conn);
    ts_get_stats(s2, &ss);
    assert_int_equal(ss.hello_units, 2); /* the ticket hello + the retry */
    assert_int_equal(ss.full_hs, 1);
    sz_wipe(blob, sizeof blob);
    sz_client_free(c);
    ts_stop(s2);
}

/* Key rotation: the first pin is a key the server does not hold; the server
 * steers the client to the second. Also PEM with two keys, and DER. */
static void test_pins(void **st)
{
    ts_server *s = ts_start(NULL);
    sz_client *c;
    sz_conn *conn;
    sz_conn_info ci;
    uint8_t *both;
    size_t l1 = 0, l2 = 0;
    (void)st;

    c = client_with(KEYDIR "other2048.pub.pem", KEYDIR "server2048.pub.pem",
                    NULL);
    conn = connect_ok(c, s);
    expect_echo(conn, "rotated", "rotated");
    sz_conn_get_info(conn, &ci);
    sz_conn_close(conn);
    sz_client_free(c);

    c = client_with(KEYDIR "server2048.pub.der", NULL);
    conn = connect_ok(c, s);
    sz_conn_close(conn);
    sz_client_free(c);

    /* One PEM text holding both keys pins both. */
    {
        FILE *f1 = fopen(KEYDIR "other2048.pub.pem", "rb");
        FILE *f2 = fopen(KEYDIR "server2048.pub.pem", "rb");
        assert_non_null(f1);
        assert_non_null(f2);
        both = calloc(1, 8192);
        l1 = fread(both, 1, 4096, f1);
        l2 = fread(both + l1, 1, 4096, f2);
        fclose(f1);
        fclose(f2);
    }
    assert_int_equal(sz_client_new(&c), SZ_OK);
    assert_int_equal(sz_client_pin(c, both, l1 + l2), SZ_OK);
    conn = connect_ok(c, s);
    sz_conn_close(conn);
    sz_client_free(c);
    free(both);
    ts_stop(s);
}

static void test_pin_errors(void **st)
{
    sz_client *c = NULL;
    sz_conn *conn = NULL;
    sz_error_info ei;
    ts_server *s;
    (void)st;

    assert_int_equal(sz_client_new(&c), SZ_OK);
    /* No pins: refused before any I/O. */
    assert_int_equal(sz_connect(c, "127.0.0.1", 1, NULL, 0, &conn),
                     SZ_ERR_USAGE);
    assert_null(conn);
    assert_int_equal(sz_client_pin(c, (const uint8_t *)"junk", 4), SZ_ERR_KEY);
    assert_int_equal(sz_client_pin(c, NULL, 0), SZ_ERR_USAGE);
    /* Never the private key. */
    assert_int_equal(sz_client_pin_file(c, KEYDIR "server2048.pem"),
                     SZ_ERR_KEY);
    sz_last_error(&ei);
    assert_non_null(strstr(ei.text, "not a public key"));
    assert_int_equal(sz_client_pin_file(c, KEYDIR "weak1024.pub.pem"),
                     SZ_ERR_KEY);
    assert_int_equal(sz_client_pin_file(c, KEYDIR "no-such-file.pem"),
                     SZ_ERR_KEY);
    sz_last_error(&ei);
    assert_int_equal(ei.sys_errno, ENOENT);
    assert_non_null(strstr(ei.text, "no-such-file.pem"));
    /* A PEM with a good key and a truncated block pins nothing. */
    {
        static const char bad[] = "-----BEGIN PUBLIC KEY-----\nAAAA\n";
        assert_int_equal(sz_client_pin(c, (const uint8_t *)bad, sizeof bad - 1),
                         SZ_ERR_KEY);
    }
    assert_int_equal(sz_client_pin_file(c, KEYDIR "server2048.pub.pem"), SZ_OK);
    /* After the first connection the pins are fixed. */
    s = ts_start(NULL);
    conn = connect_ok(c, s);
    assert_int_equal(sz_client_pin_file(c, KEYDIR "other2048.pub.pem"),
                     SZ_ERR_USAGE);
    sz_conn_close(conn);
    sz_client_free(c);
    ts_stop(s);
}

/* More requests than the server allows in flight: submit blocks for a
 * slot, keeps the responses, and wait hands each over in any order. */
static void test_many_inflight(void **st)
{
    enum { N = 100 };
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    sz_conn *conn = connect_ok(c, s);
    uint32_t ids[N];
    char req[64];
    (void)st;

    for (int i = 0; i < N; i++) {
        snprintf(req, sizeof req, "request number %d", i);
        assert_int_equal(
            sz_submit(conn, (const uint8_t *)req, strlen(req), &ids[i]), SZ_OK);
        /* Sequential from 1. */
        assert_int_equal(ids[i], (uint32_t)i + 1);
    }
    for (int i = N - 1; i >= 0; i--) {
        uint8_t *resp = NULL;
        size_t len = 0;
        snprintf(req, sizeof req, "request number %d", i);
        assert_int_equal(sz_wait(conn, ids[i], &resp, &len), SZ_OK);
        assert_int_equal(len, strlen(req));
        assert_memory_equal(resp, req, len);
        sz_free(resp);
        /* Collected: the id is forgotten. */
        assert_int_equal(sz_wait(conn, ids[i], &resp, &len), SZ_ERR_USAGE);
    }
    sz_conn_close(conn);
    sz_client_free(c);
    ts_stop(s);
}

/* Responses out of order, collected with sz_poll in completion order. */
static void test_poll_out_of_order(void **st)
{
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    sz_conn *conn = connect_ok(c, s);
    uint32_t id, ids[5], flush_id, got[6];
    uint8_t *resp = NULL;
    size_t len = 0;
    sz_conn_info ci;
    (void)st;

    for (int i = 0; i < 5; i++)
        assert_int_equal(sz_submit(conn, (const uint8_t *)"!hold", 5, &ids[i]),
                         SZ_OK);
    sz_conn_get_info(conn, &ci);
    assert_int_equal(ci.inflight, 5);
    /* Nothing is ready yet. */
    assert_int_equal(sz_poll(conn, 0, &id, &resp, &len), SZ_AGAIN);
    assert_int_equal(id, 0);
    assert_int_equal(sz_submit(conn, (const uint8_t *)"!flush", 6, &flush_id),
                     SZ_OK);
    for (int i = 0; i < 6; i++) {
        char want[32];
        assert_int_equal(sz_poll(conn, -1, &got[i], &resp, &len), SZ_OK);
        if (got[i] == flush_id)
            snprintf(want, sizeof want, "flushed");
        else
            snprintf(want, sizeof want, "held %u", got[i]);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(resp, want, len);
        sz_free(resp);
    }
    /* Held ones come back newest first, then the flush. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(got[i], ids[4 - i]);
    assert_int_equal(got[5], flush_id);
    assert_int_equal(sz_poll(conn, -1, &id, &resp, &len), SZ_ERR_USAGE);
    sz_conn_close(conn);
    sz_client_free(c);
    ts_stop(s);
}

static void roundtrip_size(sz_conn *conn, size_t n)
{
    uint8_t *req = malloc(n + 1), *resp = NULL;
    size_t len = 0;

    ts_pattern(req, n, (uint32_t)n + 7);
    if (n > 0)
        req[0] = 'x'; /* never a script */
    assert_int_equal(sz_request(conn, req, n, &resp, &len), SZ_OK);
    assert_int_equal(len, n);
    if (n)
        assert_memory_equal(resp, req, n);
    sz_free(resp);
    free(req);
}

/* Every size from 0 to the server's maximum, then one over it: refused
 * locally, nothing sent, the connection still fine. */
static void test_every_size(void **st)
{
    enum { MAX = 3000 };
    ts_config cfg;
    ts_server *s;
    sz_client *c = good_client();
    sz_conn *conn;
    ts_stats before, after;
    uint8_t *big = calloc(1, MAX + 1);
    uint32_t id = 0;
    (void)st;

    memset(&cfg, 0, sizeof cfg);
    cfg.max_message = MAX;
    s = ts_start(&cfg);
    conn = connect_ok(c, s);
    for (size_t n = 0; n <= MAX; n++)
        roundtrip_size(conn, n);
    ts_get_stats(s, &before);
    assert_int_equal(sz_submit(conn, big, MAX + 1, &id), SZ_ERR_TOO_LARGE);
    assert_int_equal(id, 0);
    {
        sz_error_info ei;
        sz_last_error(&ei);
        assert_int_equal(ei.err, SZ_ERR_TOO_LARGE);
        assert_int_equal(ei.request_id, 0);
    }
    expect_echo(conn, "still fine", "still fine");
    ts_get_stats(s, &after);
    assert_int_equal(after.data_units, before.data_units + 1);
    free(big);
    sz_conn_close(conn);
    sz_client_free(c);
    ts_stop(s);
}

/* Record boundaries and the default 1 MiB maximum, both directions. */
static void test_large_messages(void **st)
{
    static const size_t sizes[] = {16383, 16384,  16385,   32768,
                                   65536, 100000, 1u << 20};
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    sz_conn *conn = connect_ok(c, s);
    uint8_t *big = calloc(1, (1u << 20) + 1);
    uint32_t id;
    (void)st;

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char req[32];
        uint8_t *resp = NULL, *want = malloc(sizes[i]);
        size_t len = 0;
        roundtrip_size(conn, sizes[i]);
        snprintf(req, sizeof req, "!big %zu", sizes[i]);
        assert_int_equal(
            sz_request(conn, (const uint8_t *)req, strlen(req), &resp, &len),
            SZ_OK);
        ts_pattern(want, sizes[i], (uint32_t)sizes[i]);
        assert_int_equal(len, sizes[i]);
        assert_memory_equal(resp, want, len);
        sz_free(resp);
        free(want);
    }
    assert_int_equal(sz_submit(conn, big, (1u << 20) + 1, &id),
                     SZ_ERR_TOO_LARGE);
    /* Many large requests at once: the writer must keep reading. */
    {
        uint32_t ids[32];
        for (int i = 0; i < 32; i++) {
            big[0] = 'y';
            assert_int_equal(sz_submit(conn, big, 200000, &ids[i]), SZ_OK);
        }
        for (int i = 0; i < 32; i++) {
            uint8_t *resp = NULL;
            size_t len = 0;
            assert_int_equal(sz_wait(conn, ids[i], &resp, &len), SZ_OK);
            assert_int_equal(len, 200000);
            sz_free(resp);
        }
    }
    free(big);
    sz_conn_close(conn);
    sz_client_free(c);
    ts_stop(s);
}

/* Each server error code maps to its own sz_err; the connection lives on.
 * Only "overloaded", "shutdown" and "too large" prove that the request did
 * not run (docs/PROTOCOL.md §8.5). */
static void test_server_errors(void **st)
{
    static const struct {
        const char *req;
        int err;
        unsigned code;
        int not_run;
    } cases[] = {
        {"!err 1 boom", SZ_ERR_SERVER_APP, 1, 0},
        {"!err 2", SZ_ERR_SERVER_TIMEOUT, 2, 0},
        {"!err 3 later", SZ_ERR_SERVER_OVERLOADED, 3, 1},
        {"!err 4", SZ_ERR_TOO_LARGE, 4, 1},
        {"!err 5 oops", SZ_ERR_SERVER_INTERNAL, 5, 0},
        {"!err 6 bye", SZ_ERR_SERVER_SHUTDOWN, 6, 1},
        {"!err 99 future", SZ_ERR_SERVER_OTHER, 99, 0},
    };
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    sz_conn *conn = connect_ok(c, s);
    sz_error_info ei;
    (void)st;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t id = 0;
        uint8_t *resp = NULL;
        size_t len = 0;
        const char *sp;
        assert_int_equal(sz_submit(conn, (const uint8_t *)cases[i].req,
                                   strlen(cases[i].req), &id),
                         SZ_OK);
        assert_int_equal(sz_wait(conn, id, &resp, &len), cases[i].err);
        assert_null(resp);
        assert_int_equal(sz_last_error_not_run(), cases[i].not_run);
        sz_last_error(&ei);
        assert_int_equal(ei.err, cases[i].err);
        assert_int_equal(ei.server_code, cases[i].code);
        assert_int_equal(ei.request_id, id);
        sp = strchr(cases[i].req + 5, ' ');
        assert_string_equal(ei.text, sp ? sp + 1 : "");
        assert_int_equal(sz_conn_error(conn), SZ_OK);
        expect_echo(conn, "alive", "alive");
    }
    /* A connection-level error ends the connection, for every call. */
    expect_fail(conn, "!connerr 6", SZ_ERR_SERVER_SHUTDOWN);
    /* It ends the connection: no proof for the request in flight. */
    assert_int_equal(sz_last_error_not_run(), 0);
    sz_last_error(&ei);
    assert_int_equal(ei.request_id, 0);
    assert_int_equal(ei.server_code, 6);
    assert_int_equal(sz_conn_error(conn), SZ_ERR_SERVER_SHUTDOWN);
    expect_fail(conn, "more", SZ_ERR_SERVER_SHUTDOWN);
    assert_int_equal(sz_last_error_not_run(), 1); /* never sent */
    sz_conn_close(conn);

    /* A clean close by the server. */
    conn = connect_ok(c, s);
    expect_fail(conn, "!closerec", SZ_ERR_CLOSED);
    /* Closed before it was answered: it did not run. */
    assert_int_equal(sz_last_error_not_run(), 1);
    assert_int_equal(sz_conn_error(conn), SZ_ERR_CLOSED);
    expect_fail(conn, "after", SZ_ERR_CLOSED);
    sz_conn_close(conn);

    /* The last answer and the close record in the same read: the answer
     * is delivered, the close reported next. */
    conn = connect_ok(c, s);
    expect_echo(conn, "!lastword", "last word");
    expect_fail(conn, "after", SZ_ERR_CLOSED);
    sz_conn_close(conn);
    sz_client_free(c);
    ts_stop(s);
}

static void test_ipv6_and_names(void **st)
{
    ts_config cfg;
    ts_server *s;
    sz_client *c = good_client();
    sz_conn *conn = NULL;
    (void)st;

    memset(&cfg, 0, sizeof cfg);
    s = ts_start(&cfg);
    assert_int_equal(sz_connect(c, "localhost", ts_port(s), NULL, 0, &conn),
                     SZ_OK);
    expect_echo(conn, "by name", "by name");
    sz_conn_close(conn);
    ts_stop(s);

    cfg.ipv6 = 1;
    s = ts_start(&cfg);
    assert_int_equal(sz_connect(c, "::1", ts_port(s), NULL, 0, &conn), SZ_OK);
    expect_echo(conn, "v6", "v6");
    sz_conn_close(conn);
    ts_stop(s);
    sz_client_free(c);
}

/* One client, several threads, each with its own connection. */
struct thr {
    sz_conn *conn;
    int n, ok;
};

static void *thr_main(void *arg)
{
    struct thr *t = arg;
    for (int i = 0; i < t->n; i++) {
        char req[32];
        uint8_t *resp = NULL;
        size_t len = 0;
        snprintf(req, sizeof req, "thread req %d", i);
        if (sz_request(t->conn, (const uint8_t *)req, strlen(req), &resp,
                       &len) == SZ_OK &&
            len == strlen(req) && memcmp(resp, req, len) == 0)
            t->ok++;
        sz_free(resp);
    }
    sz_conn_close(t->conn);
    return NULL;
}

static void test_threads(void **st)
{
    enum { T = 4 };
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    pthread_t th[T];
    struct thr t[T];
    (void)st;

    for (int i = 0; i < T; i++) {
        t[i].conn = connect_ok(c, s);
        t[i].n = 50;
        t[i].ok = 0;
    }
    /* The connections keep the client alive: the application may let go
     * of it before they are done. */
    sz_client_free(c);
    for (int i = 0; i < T; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
    for (int i = 0; i < T; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(t[i].ok, 50);
    }
    ts_stop(s);
}

/* Connections made concurrently from one shared client. */
struct cthr {
    sz_client *c;
    uint16_t port;
    int ok;
};

static void *connect_main(void *arg)
{
    struct cthr *t = arg;
    for (int i = 0; i < 10; i++) {
        sz_conn *conn = NULL;
        uint8_t *resp = NULL;
        size_t len = 0;
        if (sz_connect(t->c, "127.0.0.1", t->port, NULL, 0, &conn) == SZ_OK &&
            sz_request(conn, (const uint8_t *)"c", 1, &resp, &len) == SZ_OK &&
            len == 1)
            t->ok++;
        sz_free(resp);
        sz_conn_close(conn);
    }
    return NULL;
}

static void test_concurrent_connects(void **st)
{
    enum { T = 4 };
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    pthread_t th[T];
    struct cthr t[T];
    (void)st;

    for (int i = 0; i < T; i++) {
        t[i].c = c;
        t[i].port = ts_port(s);
        t[i].ok = 0;
        assert_int_equal(pthread_create(&th[i], NULL, connect_main, &t[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(t[i].ok, 10);
    }
    sz_client_free(c);
    ts_stop(s);
}

struct canceller {
    sz_conn *conn;
    int ms;
};

static void *cancel_main(void *arg)
{
    struct canceller *k = arg;
    usleep((useconds_t)k->ms * 1000);
    sz_conn_cancel(k->conn);
    return NULL;
}

/* A request with no timeouts at all, on a server that never answers, is
 * ended from another thread. */
static void test_cancel(void **st)
{
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    sz_conn *conn;
    struct canceller k;
    pthread_t th;
    (void)st;

    assert_int_equal(sz_client_set_timeouts(c, 0, 0, 0), SZ_OK);
    conn = connect_ok(c, s);
    k.conn = conn;
    k.ms = 100;
    assert_int_equal(pthread_create(&th, NULL, cancel_main, &k), 0);
    expect_fail(conn, "!silent", SZ_ERR_CANCELLED);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(sz_conn_error(conn), SZ_ERR_CANCELLED);
    expect_fail(conn, "x", SZ_ERR_CANCELLED);
    sz_conn_close(conn);
    sz_client_free(c);
    ts_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_handshake),
        cmocka_unit_test(test_resume_transparent),
        cmocka_unit_test(test_resume_export_import),
        cmocka_unit_test(test_resume_refused),
        cmocka_unit_test(test_pins),
        cmocka_unit_test(test_pin_errors),
        cmocka_unit_test(test_many_inflight),
        cmocka_unit_test(test_poll_out_of_order),
        cmocka_unit_test(test_every_size),
        cmocka_unit_test(test_large_messages),
        cmocka_unit_test(test_server_errors),
        cmocka_unit_test(test_ipv6_and_names),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_concurrent_connects),
        cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests_name("sazukari_client", tests, NULL, NULL);
}
