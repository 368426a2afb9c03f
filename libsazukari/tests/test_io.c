/*
 * test_io.c -- connections over application I/O callbacks (sz_io): the
 * test server serves one end of a socketpair, the callbacks drive the
 * other. Also a transport that moves one byte per call, callbacks that
 * fail, and timeouts honoured through the callbacks' timeout_ms.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "megaki.h"
#include "sztest.h"

typedef struct pipe_io {
    int fd;
    size_t max_chunk; /* 0: no limit; 1: one byte per call */
    int fail_after;   /* calls until the callbacks report an error; 0 off */
    int eof_reads;    /* reads return end of stream */
    unsigned reads, writes;
} pipe_io;

static int wait_fd(int fd, short ev, int timeout_ms)
{
    struct pollfd p = {fd, ev, 0};
    int r;
    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r;
}

static long io_read(void *ctx, uint8_t *buf, size_t len, int timeout_ms)
{
    pipe_io *p = ctx;
    ssize_t n;

    p->reads++;
    if (p->fail_after && p->reads + p->writes >= (unsigned)p->fail_after)
        return -1;
    if (p->eof_reads)
        return 0;
    if (p->max_chunk && len > p->max_chunk)
        len = p->max_chunk;
    if (wait_fd(p->fd, POLLIN, timeout_ms) == 0)
        return SZ_IO_TIMEOUT;
    n = recv(p->fd, buf, len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return SZ_IO_TIMEOUT;
    return (long)n;
}

static long io_write(void *ctx, const uint8_t *buf, size_t len, int timeout_ms)
{
    pipe_io *p = ctx;
    ssize_t n;

    p->writes++;
    if (p->fail_after && p->reads + p->writes >= (unsigned)p->fail_after)
        return -1;
    if (p->max_chunk && len > p->max_chunk)
        len = p->max_chunk;
    if (wait_fd(p->fd, POLLOUT, timeout_ms) == 0)
        return SZ_IO_TIMEOUT;
    n = send(p->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return SZ_IO_TIMEOUT;
    return (long)n;
}

/* A socketpair whose far end the server serves; fills io. */
static void pair(ts_server *s, pipe_io *p, sz_io *io, const char *peer)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ts_adopt(s, sv[1]);
    memset(p, 0, sizeof *p);
    p->fd = sv[0];
    io->read = io_read;
    io->write = io_write;
    io->ctx = p;
    io->peer = peer;
}

static void test_io_basic_and_resume(void **st)
{
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    uint8_t blob[SZ_SESSION_MAX];
    size_t blen = 0;
    sz_conn *conn = NULL;
    sz_conn_info ci;
    pipe_io p;
    sz_io io;
    (void)st;

    pair(s, &p, &io, "app-peer");
    assert_int_equal(sz_connect_io(c, &io, NULL, 0, &conn), SZ_OK);
    sz_conn_get_info(conn, &ci);
    assert_false(ci.resumed);
    expect_echo(conn, "over callbacks", "over callbacks");
    assert_int_equal(sz_conn_export_session(conn, blob, sizeof blob, &blen),
                     SZ_OK);
    sz_conn_close(conn);
    close(p.fd);

    /* The cache entry is keyed by the peer name. */
    pair(s, &p, &io, "app-peer");
    assert_int_equal(sz_connect_io(c, &io, NULL, 0, &conn), SZ_OK);
    sz_conn_get_info(conn, &ci);
    assert_true(ci.resumed);
    sz_conn_close(conn);
    close(p.fd);

    pair(s, &p, &io, "another-peer");
    assert_int_equal(sz_connect_io(c, &io, NULL, 0, &conn), SZ_OK);
    sz_conn_get_info(conn, &ci);
    assert_false(ci.resumed);
    sz_conn_close(conn);
    close(p.fd);

    /* An exported blob works over callbacks too. */
    pair(s, &p, &io, NULL);
    assert_int_equal(sz_connect_io(c, &io, blob, blen, &conn), SZ_OK);
    sz_conn_get_info(conn, &ci);
    assert_true(ci.resumed);
    expect_echo(conn, "again", "again");
    sz_conn_close(conn);
    close(p.fd);
    sz_wipe(blob, sizeof blob);
    sz_client_free(c);
    ts_stop(s);
}

/* One byte per read and per write: every partial path in the pumps. */
static void test_io_byte_at_a_time(void **st)
{
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    sz_conn *conn = NULL;
    uint8_t *msg = malloc(40000), *resp = NULL;
    size_t len = 0;
    uint32_t ids[3];
    pipe_io p;
    sz_io io;
    (void)st;

    pair(s, &p, &io, NULL);
    p.max_chunk = 1;
    assert_int_equal(sz_connect_io(c, &io, NULL, 0, &conn), SZ_OK);
    ts_pattern(msg, 40000, 3);
    msg[0] = 'm';
    for (int i = 0; i < 3; i++)
        assert_int_equal(sz_submit(conn, msg, i == 1 ? 40000 : 17, &ids[i]),
                         SZ_OK);
    for (int i = 2; i >= 0; i--) {
        assert_int_equal(sz_wait(conn, ids[i], &resp, &len), SZ_OK);
        assert_int_equal(len, i == 1 ? 40000 : 17);
        assert_memory_equal(resp, msg, len);
        sz_free(resp);
    }
    assert_true(p.reads > 40000 && p.writes > 40000);
    sz_conn_close(conn);
    close(p.fd);
    free(msg);
    sz_client_free(c);
    ts_stop(s);
}

/* Many large requests over callbacks: the writer must read in between or
 * both sides would stall on full buffers. */
static void test_io_no_deadlock(void **st)
{
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    sz_conn *conn = NULL;
    uint8_t *msg = calloc(1, 300000), *resp = NULL;
    size_t len = 0;
    uint32_t ids[32];
    pipe_io p;
    sz_io io;
    (void)st;

    assert_int_equal(sz_client_set_timeouts(c, 5000, 10000, 30000), SZ_OK);
    pair(s, &p, &io, NULL);
    assert_int_equal(sz_connect_io(c, &io, NULL, 0, &conn), SZ_OK);
    msg[0] = 'z';
    for (int i = 0; i < 32; i++)
        assert_int_equal(sz_submit(conn, msg, 300000, &ids[i]), SZ_OK);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(sz_wait(conn, ids[i], &resp, &len), SZ_OK);
        assert_int_equal(len, 300000);
        sz_free(resp);
    }
    sz_conn_close(conn);
    close(p.fd);
    free(msg);
    sz_client_free(c);
    ts_stop(s);
}

static void test_io_failures(void **st)
{
    ts_server *s = ts_start(NULL);
    sz_client *c = good_client();
    sz_conn *conn = NULL;
    sz_client *wrong = client_with(KEYDIR "other2048.pub.pem", NULL);
    ts_stats ss;
    pipe_io p;
    sz_io io;
    (void)st;

    /* The callback fails during the handshake. */
    pair(s, &p, &io, NULL);
    p.fail_after = 2;
    assert_int_equal(sz_connect_io(c, &io, NULL, 0, &conn), SZ_ERR_IO);
    assert_null(conn);
    close(p.fd);

    /* End of stream at once. */
    pair(s, &p, &io, NULL);
    p.eof_reads = 1;
    assert_int_equal(sz_connect_io(c, &io, NULL, 0, &conn), SZ_ERR_IO);
    close(p.fd);

    /* The callback fails after the handshake, mid-request. */
    pair(s, &p, &io, NULL);
    assert_int_equal(sz_connect_io(c, &io, NULL, 0, &conn), SZ_OK);
    p.fail_after = (int)(p.reads + p.writes + 1);
    expect_fail(conn, "x", SZ_ERR_IO);
    sz_conn_close(conn);
    close(p.fd);

    /* Timeouts through timeout_ms. */
    assert_int_equal(sz_client_set_timeouts(c, 5000, 0, 200), SZ_OK);
    pair(s, &p, &io, NULL);
    assert_int_equal(sz_connect_io(c, &io, NULL, 0, &conn), SZ_OK);
    expect_fail(conn, "!silent", SZ_ERR_TIMEOUT);
    expect_echo(conn, "after", "after");
    sz_conn_close(conn);
    close(p.fd);

    /* The wrong pin over callbacks: nothing but the hello went out. */
    assert_true(ts_wait_conns_done(s, 4, 5000));
    ts_get_stats(s, &ss);
    pair(s, &p, &io, NULL);
    assert_int_equal(sz_connect_io(wrong, &io, NULL, 0, &conn), SZ_ERR_PIN);
    close(p.fd);
    {
        ts_stats after;
        assert_true(ts_wait_conns_done(s, 5, 5000));
        ts_get_stats(s, &after);
        assert_int_equal(after.data_units, ss.data_units);
        assert_int_equal(after.bytes_in - ss.bytes_in,
                         after.hello_bytes - ss.hello_bytes);
    }
    sz_client_free(wrong);
    sz_client_free(c);
    ts_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_io_basic_and_resume),
        cmocka_unit_test(test_io_byte_at_a_time),
        cmocka_unit_test(test_io_no_deadlock),
        cmocka_unit_test(test_io_failures),
    };
    return cmocka_run_group_tests_name("sazukari_io", tests, NULL, NULL);
}
