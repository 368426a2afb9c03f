/*
 * test_mkd.c -- the real `mkd` on loopback: handshakes, resumption (also
 * across a restart and a SIGHUP key rotation), 200 concurrent clients,
 * malformed peers, slowloris and idle timeouts, the connection limit, the
 * per-address handshake rate, graceful SIGTERM, pipelined requests with
 * record crypto inline and on the pool. Each test starts its own
 * daemon in a temporary directory on a port the kernel picks, and stops it
 * in the teardown, which also requires a clean exit 0 (under ASan that
 * includes the leak check).
 *
 * The client side is mkd/tests/mkt.c: libmegaki over plain sockets, so that
 * malformed bytes can be put on the wire by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mkt.h"
#include "testlib.h"

#ifndef MKT_SANITIZED
#define MKT_SANITIZED 0
#endif

#define D mkt_D

static void stop_clean(void)
{
    int s = mkt_daemon_stop(&D, SIGTERM, 15000);
    assert_true(s >= 0);
    assert_true(WIFEXITED(s));
    assert_int_equal(WEXITSTATUS(s), 0);
}

static void pattern(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 7;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

/* One echo round trip of len bytes. */
static void echo_ok(mkt_client *c, size_t len, uint32_t seed)
{
    uint8_t *req = malloc(len + 1), *resp = NULL;
    size_t rlen = 0;
    unsigned ecode = 0;

    assert_non_null(req);
    pattern(req, len, seed);
    assert_int_equal(mkt_client_request(c, req, len, &resp, &rlen, &ecode),
                     MK_OK);
    assert_int_equal(rlen, len);
    if (len)
        assert_memory_equal(resp, req, len);
    free(req);
    free(resp);
}

/* A client on the test daemon with a full handshake. */
static mk_client_config *pinned(void)
{
    mk_client_config *cc = mkt_client_config(D.pub);
    assert_non_null(cc);
    return cc;
}

/* A fresh client's CLIENT_HELLO (a full handshake) into out; its length. */
static size_t fresh_hello(mk_client_config *cc, uint8_t *out, size_t cap)
{
    mk_session *s = NULL;
    size_t n = 0;

    assert_int_equal(mk_session_new_client(&s, cc, NULL, 0), MK_OK);
    assert_int_equal(mk_client_hello(s, out, cap, &n), MK_OK);
    mk_session_free(s);
    return n;
}

/* What n connections in a row from one address made of a token bucket. */
typedef struct opens {
    int ok, busy;
    uint8_t blob[MK_SESSION_BLOB_MAX]; /* of the first that got through */
    size_t blen;
} opens;

/* n handshakes from src (resumptions, with blob): each must get through
 * (resumed, if it resumes) or be told to retry later with a wait. */
static void open_many(mk_client_config *cc, const char *src,
                      const uint8_t *blob, size_t blen, int n, opens *o)
{
    mkt_client c;

    memset(o, 0, sizeof *o);
    for (int i = 0; i < n; i++) {
        int r = mkt_client_open(&c, cc, src, D.port, blob, blen);
        if (r == MK_OK) {
            assert_true(blob == NULL || mkt_client_resumed(&c));
            o->ok++;
            if (o->blen == 0)
                assert_int_equal(
                    mkt_client_export(&c, o->blob, sizeof o->blob, &o->blen),
                    MK_OK);
        } else {
            assert_int_equal(r, MK_ERR_PEER_RETRY_LATER);
            assert_true(mk_session_retry_after(c.s) > 0);
            o->busy++;
        }
        mkt_client_close(&c);
    }
}

/* ------------------------------------------------------------------ */

/* First run: no configuration, a key generated and reported, a full
 * handshake and echo of messages up to the maximum size. */
static void test_full_handshake(void **st)
{
    mk_client_config *cc;
    mkt_client c;
    struct stat sb;
    char path[400];
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, NULL), 0);
    snprintf(path, sizeof path, "%s/server.pem", D.dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/ticket.keys", D.dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    cc = pinned();
    assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, NULL, 0), MK_OK);
    assert_false(mkt_client_resumed(&c));
    echo_ok(&c, 0, 1);
    echo_ok(&c, 1, 2);
    echo_ok(&c, 16384, 3);
    echo_ok(&c, 16385, 4);
    echo_ok(&c, 300000, 5);
    echo_ok(&c, 1u << 20, 6);
    mkt_client_close(&c);
    assert_int_equal(mkt_status(&D, "handshakes.full"), 1);
    assert_int_equal(mkt_status(&D, "requests"), 6);
    mk_client_config_unref(cc);
    stop_clean();
}

/* Resume: from the exported blob, no RSA; then again across a restart
 * with the same ticket-key file. */
static void test_resumption_and_restart(void **st)
{
    mk_client_config *cc;
    mkt_client c;
    uint8_t blob[MK_SESSION_BLOB_MAX];
    size_t blen = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, NULL), 0);
    cc = pinned();
    assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, NULL, 0), MK_OK);
    assert_int_equal(mkt_client_export(&c, blob, sizeof blob, &blen), MK_OK);
    mkt_client_close(&c);
    assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, blob, blen), MK_OK);
    assert_true(mkt_client_resumed(&c));
    echo_ok(&c, 1000, 9);
    assert_int_equal(mkt_client_export(&c, blob, sizeof blob, &blen), MK_OK);
    mkt_client_close(&c);
    assert_int_equal(mkt_status(&D, "handshakes.resumed"), 1);
    stop_clean();

    /* Same data directory (key and ticket-key file), new process. */
    D.port = 0;
    assert_int_equal(mkt_daemon_start(&D, NULL), 0);
    assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, blob, blen), MK_OK);
    assert_true(mkt_client_resumed(&c));
    echo_ok(&c, 10, 10);
    mkt_client_close(&c);
    assert_int_equal(mkt_status(&D, "handshakes.full"), 0);
    assert_int_equal(mkt_status(&D, "handshakes.resumed"), 1);
    mk_client_config_unref(cc);
    stop_clean();
}

/* 200 clients at once, each a full handshake and a few requests. */
#define NCLIENTS 200
typedef struct worker {
    pthread_t t;
    mk_client_config *cc;
    pthread_barrier_t *bar;
    uint32_t seed;
    int ok;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    mkt_client c;
    int ok = 1;

    pthread_barrier_wait(w->bar);
    if (mkt_client_open(&c, w->cc, NULL, D.port, NULL, 0) != MK_OK) {
        mkt_client_close(&c);
        return NULL;
    }
    for (int i = 0; i < 3 && ok; i++) {
        size_t len = (w->seed * 7919u + (unsigned)i * 104729u) % 40000;
        uint8_t *req = malloc(len + 1), *resp = NULL;
        size_t rlen = 0;
        unsigned ecode = 0;
        pattern(req, len, w->seed + (unsigned)i);
        ok = mkt_client_request(&c, req, len, &resp, &rlen, &ecode) == MK_OK &&
             rlen == len && (len == 0 || memcmp(req, resp, len) == 0);
        free(req);
        free(resp);
    }
    mkt_client_close(&c);
    w->ok = ok;
    return NULL;
}

static void test_200_concurrent(void **st)
{
    static const char *const args[] = {"--handshake_rate=0",
                                       "--max_pending_per_address=1000",
                                       "--max_handshakes=1000", NULL};
    static worker w[NCLIENTS];
    pthread_barrier_t bar;
    mk_client_config *cc;
    int ok = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    pthread_barrier_init(&bar, NULL, NCLIENTS);
    for (int i = 0; i < NCLIENTS; i++) {
        w[i].cc = cc;
        w[i].bar = &bar;
        w[i].seed = (uint32_t)i + 1;
        w[i].ok = 0;
        assert_int_equal(pthread_create(&w[i].t, NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NCLIENTS; i++) {
        pthread_join(w[i].t, NULL);
        ok += w[i].ok;
    }
    pthread_barrier_destroy(&bar);
    assert_int_equal(ok, NCLIENTS);
    assert_int_equal(mkt_status(&D, "handshakes.full"), NCLIENTS);
    assert_int_equal(mkt_status(&D, "requests"), 3 * NCLIENTS);
    mk_client_config_unref(cc);
    stop_clean();
}

/* --- malformed peers ------------------------------------------------- */

/* Send bytes on a fresh connection; the daemon must hang up. */
static void bad_peer(const uint8_t *p, size_t n)
{
    int fd = mkt_tcp_connect(NULL, D.port);
    assert_true(fd >= 0);
    assert_int_equal(mkt_send_all(fd, p, n), 0);
    assert_int_equal(mkt_wait_closed(fd, 5000), 0);
    close(fd);
}

static void one_of_each_bad(mk_client_config *cc, uint32_t seed)
{
    uint8_t buf[20000];
    mkt_client c;

    /* Random bytes. */
    pattern(buf, 1000, seed);
    bad_peer(buf, 1000);
    /* A valid hello header around a body with the wrong magic. */
    pattern(buf, 300, seed + 1);
    buf[0] = MK_UNIT_CLIENT_HELLO;
    buf[1] = 0;
    buf[2] = 1;
    buf[3] = 40; /* 296 bytes of body */
    memcpy(buf + 4, "HTTP", 4);
    bad_peer(buf, 300);
    /* Out of state: a data record before any handshake. */
    pattern(buf, 100, seed + 2);
    buf[0] = MK_UNIT_DATA;
    buf[1] = 1;
    buf[2] = 0;
    buf[3] = 96;
    bad_peer(buf, 100);
    /* Huge declared lengths: over the bound of the unit type. */
    {
        static const uint8_t h1[] = {MK_UNIT_DATA, 1, 0xFF, 0xFF};
        static const uint8_t h2[] = {MK_UNIT_CLIENT_HELLO, 0, 0xFF, 0xFF};
        static const uint8_t h3[] = {MK_UNIT_ALERT, 0, 0x7F, 0xFF};
        bad_peer(h1, sizeof h1);
        bad_peer(h2, sizeof h2);
        bad_peer(h3, sizeof h3);
    }
    /* Out of state after the handshake: a second CLIENT_HELLO. */
    {
        size_t n = fresh_hello(cc, buf, sizeof buf);
        assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, NULL, 0), MK_OK);
        assert_int_equal(mkt_send_all(c.fd, buf, n), 0);
        assert_int_equal(mkt_wait_closed(c.fd, 5000), 0);
        mkt_client_close(&c);
    }
}

/* A record that fails its check gets no answer at all (PROTOCOL.md §5.3):
 * the daemon sends not a byte more and ends the connection with an
 * orderly close (a FIN, which a read sees as end of stream, not a reset).
 */
static void bad_record_gets_nothing(mk_client_config *cc)
{
    uint8_t rec[256], buf[256];
    size_t n = 0, got = 0;
    mkt_client c;
    ssize_t r;

    assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, NULL, 0), MK_OK);
    assert_int_equal(c.in_len, 0);
    assert_int_equal(mk_seal_message(c.s, 1, (const uint8_t *)"ping", 4, rec,
                                     sizeof rec, &n),
                     MK_OK);
    rec[n - 1] ^= 0x01; /* the last byte of the tag */
    assert_int_equal(mkt_send_all(c.fd, rec, n), 0);
    for (;;) {
        struct pollfd pfd = {c.fd, POLLIN, 0};
        assert_int_equal(poll(&pfd, 1, (int)tl_deadline_ms(10000)), 1);
        r = recv(c.fd, buf, sizeof buf, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    assert_int_equal(r, 0);
    assert_int_equal(got, 0);
    c.eof = 1; /* nothing to close on our side */
    mkt_client_close(&c);
}

static void test_malformed_peers(void **st)
{
    /* Random bytes may form a valid header of a unit never completed:
     * the unit deadline must then close it within bad_peer's wait. */
    static const char *const args[] = {"--handshake_rate=0",
                                       "--max_pending_per_address=10000",
                                       "--unit_timeout_ms=2000", NULL};
    mk_client_config *cc;
    mkt_client good;
    long rss0, rss1;
    uint32_t rounds;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    assert_int_equal(mkt_client_open(&good, cc, NULL, D.port, NULL, 0), MK_OK);
    /* Warm up the allocator, then measure. */
    for (uint32_t i = 0; i < 20; i++) {
        one_of_each_bad(cc, i * 10);
        echo_ok(&good, 100, i);
    }
    rss0 = mkt_rss_kb(D.pid);
    rounds = getenv("MKT_ROUNDS") ? (uint32_t)atoi(getenv("MKT_ROUNDS")) : 200;
    for (uint32_t i = 20; i < 20 + rounds; i++) {
        one_of_each_bad(cc, i * 10);
        if (i % 10 == 0)
            echo_ok(&good, 5000, i);
    }
    echo_ok(&good, 100000, 77);
    bad_record_gets_nothing(cc);
    rss1 = mkt_rss_kb(D.pid);
    fprintf(stderr, "malformed: %u bad connections, VmRSS %ld -> %ld kB\n",
            rounds * 7, rss0, rss1);
    if (!MKT_SANITIZED)
        assert_true(rss1 - rss0 < 2048);
    assert_true(mkt_status(&D, "errors.MK_ERR_BAD_UNIT_TYPE") > 0);
    assert_true(mkt_status(&D, "errors.MK_ERR_BAD_LENGTH") > 0);
    assert_true(mkt_status(&D, "errors.MK_ERR_BAD_MAGIC") > 0);
    assert_true(mkt_status(&D, "errors.MK_ERR_UNEXPECTED_MSG") > 0);
    assert_true(mkt_status(&D, "errors.MK_ERR_BAD_RECORD_MAC") > 0);
    mkt_client_close(&good);
    mk_client_config_unref(cc);
    stop_clean();
}

/* 1000 connections each declaring the largest unit and stalling: memory
 * grows only by what they sent, and they are closed at the deadline. */
static void test_declared_length_stall(void **st)
{
    static const char *const args[] = {"--handshake_rate=0",
                                       "--max_pending_per_address=10000",
                                       "--max_connections_per_address=10000",
                                       "--unit_timeout_ms=3000",
                                       "--handshake_timeout_ms=60000",
                                       NULL};
    enum { N = 1000 };
    static int fds[N];
    uint8_t hdr[100];
    long rss0, rss1;
    mk_client_config *cc;
    mkt_client good;
    uint64_t t0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    rss0 = mkt_rss_kb(D.pid);
    memset(hdr, 0x5A, sizeof hdr);
    hdr[0] = MK_UNIT_CLIENT_HELLO;
    hdr[1] = 0;
    hdr[2] = (uint8_t)(MK_UNIT_MAX_BODY >> 8);
    hdr[3] = (uint8_t)MK_UNIT_MAX_BODY;
    for (int i = 0; i < N; i++) {
        fds[i] = mkt_tcp_connect(NULL, D.port);
        assert_true(fds[i] >= 0);
        assert_int_equal(mkt_send_all(fds[i], hdr, sizeof hdr), 0);
    }
    t0 = tl_now_ms();
    tl_sleep_ms(500);
    rss1 = mkt_rss_kb(D.pid);
    fprintf(stderr,
            "stall: %d connections declaring %u bytes: VmRSS %ld -> "
            "%ld kB\n",
            N, MK_UNIT_MAX, rss0, rss1);
    if (!MKT_SANITIZED)
        assert_true(rss1 - rss0 < 16 * 1024);
    /* Others are still served meanwhile. */
    assert_int_equal(mkt_client_open(&good, cc, NULL, D.port, NULL, 0), MK_OK);
    echo_ok(&good, 1000, 1);
    mkt_client_close(&good);
    for (int i = 0; i < N; i++) {
        assert_int_equal(mkt_wait_closed(fds[i], 10000), 0);
        close(fds[i]);
    }
    /* Closed by the unit deadline, not before. */
    assert_true(tl_now_ms() - t0 >= 2000);
    assert_true(mkt_status(&D, "closed.timeout_unit") >= N);
    mk_client_config_unref(cc);
    stop_clean();
}

/* Slowloris (a unit trickled a byte at a time), a silent connection
 * (handshake deadline) and an idle session (closed with a close record). */
static void test_timeouts(void **st)
{
    static const char *const args[] = {"--unit_timeout_ms=1000",
                                       "--handshake_timeout_ms=1500",
                                       "--idle_timeout_ms=1000", NULL};
    mk_client_config *cc;
    mkt_client c;
    uint8_t hello[MK_HANDLE_OUT_LEN];
    size_t n = 0;
    uint64_t t0;
    int fd, closed = 0, ok = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    /* Trickle a real hello, one byte every 300 ms: the unit deadline runs
     * from its first byte, whatever arrives after. Were it moved by each
     * byte (300 ms < 1000 ms), the connection would last until the hello
     * is whole: that it closes before is the proof, not a clock. */
    n = fresh_hello(cc, hello, sizeof hello);
    fd = mkt_tcp_connect(NULL, D.port);
    assert_true(fd >= 0);
    t0 = tl_now_ms();
    for (size_t i = 0; i < n && !closed; i++) {
        if (mkt_send_all(fd, hello + i, 1) != 0)
            closed = 1;
        else if (mkt_wait_closed(fd, 300) == 0)
            closed = 1;
    }
    assert_true(closed);
    assert_true(tl_now_ms() - t0 >= 900);
    close(fd);
    assert_int_equal(mkt_status(&D, "closed.timeout_unit"), 1);

    /* Connected, silent: the handshake deadline. */
    fd = mkt_tcp_connect(NULL, D.port);
    assert_true(fd >= 0);
    t0 = tl_now_ms();
    assert_int_equal(mkt_wait_closed(fd, 5000), 0);
    assert_true(tl_now_ms() - t0 >= 1000);
    close(fd);
    assert_int_equal(mkt_status(&D, "closed.timeout_handshake"), 1);

    /* Established and idle: an authenticated close, then the socket. */
    assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, NULL, 0), MK_OK);
    echo_ok(&c, 10, 1);
    t0 = tl_now_ms();
    assert_int_equal(mkt_client_wait_close(&c), MK_OK);
    assert_true(c.closed);
    assert_true(tl_now_ms() - t0 >= 800);
    mkt_client_close(&c);
    TL_POLL_UNTIL(ok, mkt_status(&D, "closed.timeout_idle") == 1, 10000);
    assert_true(ok);
    mk_client_config_unref(cc);
    stop_clean();
}

/* A request left unfinished: from its first record it has
 * partial_request_timeout_ms to be complete, however lively the rest of
 * the connection (here, small requests answered all along); then the
 * connection is closed, counted as timeout_request. */
static void test_partial_request_timeout(void **st)
{
    static const char *const args[] = {"--partial_request_timeout_ms=1500",
                                       "--idle_timeout_ms=600000", NULL};
    mk_client_config *cc;
    mkt_client c;
    uint8_t rec[2000], body[1000] = {0}, *resp = NULL;
    size_t n = 0, rlen = 0;
    uint64_t t0, until;
    int served = 0, r = MK_OK, ok = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, NULL, 0), MK_OK);
    /* The first record of a request whose last never comes. */
    assert_int_equal(mk_seal_record(c.s, c.next_id++, 0, body, sizeof body, rec,
                                    sizeof rec, &n),
                     MK_OK);
    assert_int_equal(mkt_send_all(c.fd, rec, n), 0);
    t0 = tl_now_ms();
    until = t0 + tl_deadline_ms(30000);
    while (r == MK_OK && tl_now_ms() < until) {
        r = mkt_client_request(&c, body, 100, &resp, &rlen, NULL);
        free(resp);
        resp = NULL;
        served += r == MK_OK;
        if (r == MK_OK)
            tl_sleep_ms(100);
    }
    fprintf(stderr,
            "partial request: %d other requests served, closed after %llu "
            "ms\n",
            served, (unsigned long long)(tl_now_ms() - t0));
    assert_int_not_equal(r, MK_OK);
    assert_true(served >= 3);
    /* Closed by that deadline, not before. */
    assert_true(tl_now_ms() - t0 >= 1000);
    TL_POLL_UNTIL(ok, mkt_status(&D, "closed.timeout_request") == 1, 10000);
    assert_true(ok);
    c.eof = 1;
    mkt_client_close(&c);
    mk_client_config_unref(cc);
    stop_clean();
}

/* A peer that stops reading: the daemon stops reading from it once too
 * much waits to be written, and closes it at the write deadline. */
static void test_write_stall(void **st)
{
    static const char *const args[] = {"--write_timeout_ms=1500",
                                       "--idle_timeout_ms=60000", NULL};
    mk_client_config *cc;
    mkt_client c;
    uint8_t *big = calloc(1, 1u << 20);
    struct timeval tv = {3, 0};
    int small = 4096, sent = 0, ok = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, NULL, 0), MK_OK);
    assert_int_equal(
        setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    assert_int_equal(setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv),
                     0);
    for (int i = 0; i < 10; i++) {
        uint32_t id;
        if (mkt_client_send(&c, big, 1u << 20, &id) != MK_OK)
            break; /* our own send buffer is full: fine */
        sent++;
    }
    assert_true(sent >= 3);
    /* Never read; wait for the daemon to give up on us: the write
     * deadline, counted as such. */
    TL_POLL_UNTIL(ok, mkt_status(&D, "closed.timeout_write") >= 1, 30000);
    assert_true(ok);
    assert_int_equal(mkt_status(&D, "closed.timeout_write"), 1);
    c.eof = 1;
    mkt_client_close(&c);
    free(big);
    mk_client_config_unref(cc);
    stop_clean();
}

/* Started as root with user = nobody: binds, loads keys, then runs as
 * nobody for good. */
static void test_drop_privileges(void **st)
{
    static const char *const args[] = {"--user=nobody", NULL};
    mk_client_config *cc;
    mkt_client c;
    char path[64], line[256];
    FILE *f;
    long uid = -1;
    (void)st;

    if (geteuid() != 0)
        skip();
    assert_int_equal(mkt_daemon_start(&D, args), 0);
    snprintf(path, sizeof path, "/proc/%ld/status", (long)D.pid);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "Uid:", 4) == 0)
            uid = strtol(line + 4, NULL, 10);
    fclose(f);
    assert_int_equal(uid, 65534);
    cc = pinned();
    assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, NULL, 0), MK_OK);
    echo_ok(&c, 100, 1);
    mkt_client_close(&c);
    mk_client_config_unref(cc);
    stop_clean();
}

/* The connection limit: the one over it is told to retry later, cleanly,
 * and a slot freed is a slot usable again. */
static void test_connection_limit(void **st)
{
    static const char *const args[] = {"--max_connections=5",
                                       "--retry_after_ms=777", NULL};
    mk_client_config *cc;
    mkt_client c[6];
    int ok = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    for (int i = 0; i < 5; i++)
        assert_int_equal(mkt_client_open(&c[i], cc, NULL, D.port, NULL, 0),
                         MK_OK);
    assert_int_equal(mkt_client_open(&c[5], cc, NULL, D.port, NULL, 0),
                     MK_ERR_PEER_RETRY_LATER);
    assert_int_equal(mk_session_retry_after(c[5].s), 777);
    mkt_client_close(&c[5]);
    for (int i = 0; i < 5; i++)
        echo_ok(&c[i], 100, (uint32_t)i);
    mkt_client_close(&c[0]);
    /* The server notices the close: its slot is free again. */
    TL_POLL_UNTIL(ok, mkt_status(&D, "connections") == 4, 10000);
    assert_true(ok);
    assert_int_equal(mkt_client_open(&c[0], cc, NULL, D.port, NULL, 0), MK_OK);
    echo_ok(&c[0], 100, 9);
    for (int i = 0; i < 5; i++)
        mkt_client_close(&c[i]);
    assert_int_equal(mkt_status(&D, "refused.connections"), 1);
    mk_client_config_unref(cc);
    stop_clean();
}

/* One address holds at most max_connections_per_address connections,
 * resumed ones included: the one over it is told to retry later, another
 * address is not affected, and a slot freed is usable again. */
static void test_connections_per_address(void **st)
{
    static const char *const args[] = {"--max_connections_per_address=3",
                                       "--retry_after_ms=555", NULL};
    mk_client_config *cc;
    mkt_client c[3], x;
    uint8_t blob[MK_SESSION_BLOB_MAX];
    size_t blen = 0;
    int ok = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    assert_int_equal(mkt_client_open(&c[0], cc, "127.0.0.2", D.port, NULL, 0),
                     MK_OK);
    assert_int_equal(mkt_client_export(&c[0], blob, sizeof blob, &blen), MK_OK);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(
            mkt_client_open(&c[i], cc, "127.0.0.2", D.port, blob, blen), MK_OK);
        assert_true(mkt_client_resumed(&c[i]));
    }
    assert_int_equal(mkt_client_open(&x, cc, "127.0.0.2", D.port, blob, blen),
                     MK_ERR_PEER_RETRY_LATER);
    assert_int_equal(mk_session_retry_after(x.s), 555);
    mkt_client_close(&x);
    assert_int_equal(mkt_status(&D, "refused.connections_per_address"), 1);
    /* Another address is not affected. */
    assert_int_equal(mkt_client_open(&x, cc, "127.0.0.3", D.port, NULL, 0),
                     MK_OK);
    echo_ok(&x, 10, 1);
    mkt_client_close(&x);
    for (int i = 0; i < 3; i++)
        echo_ok(&c[i], 100, (uint32_t)i);
    /* A slot freed is a slot usable again. */
    mkt_client_close(&c[0]);
    TL_POLL_UNTIL(ok, mkt_status(&D, "connections") == 2, 10000);
    assert_true(ok);
    assert_int_equal(
        mkt_client_open(&c[0], cc, "127.0.0.2", D.port, blob, blen), MK_OK);
    echo_ok(&c[0], 100, 9);
    for (int i = 0; i < 3; i++)
        mkt_client_close(&c[i]);
    assert_int_equal(mkt_status(&D, "refused.connections_per_address"), 1);
    mk_client_config_unref(cc);
    stop_clean();
}

/* --- the global buffer budget ------------------------------------------- */

/* Request id (next on c) of len zero bytes, sealed whole: its wire bytes,
 * malloc'd, *n of them, to be sent in pieces. */
static uint8_t *sealed_request(mkt_client *c, size_t len, uint32_t *id,
                               size_t *n)
{
    uint8_t *body = calloc(1, len + 1), *w = malloc(mk_message_wire_len(len));

    assert_non_null(body);
    assert_non_null(w);
    *id = c->next_id++;
    assert_int_equal(
        mk_seal_message(c->s, *id, body, len, w, mk_message_wire_len(len), n),
        MK_OK);
    free(body);
    return w;
}

/* Where the unit holding byte at of w[0..n) ends: a place to cut. */
static size_t unit_end(const uint8_t *w, size_t n, size_t at)
{
    size_t off = 0, ulen = 0;

    while (off <= at && off < n) {
        assert_int_equal(mk_frame_check(w + off, n - off, &ulen), MK_OK);
        off += ulen;
    }
    return off;
}

/* Many connections each park most of a large request, the attack that
 * made mkd hold their sum: past buffer_budget, the next request is
 * answered "overloaded" while the parked ones go on, and mkd's memory
 * stays near the budget. Every connection is usable afterwards. */
static void test_buffer_budget(void **st)
{
    static const char *const args[] = {"--buffer_budget=2097152", NULL};
    enum { N = 24, LEN = 1000000 };
    static mkt_client c[N];
    static uint8_t *w[N];
    static size_t n[N], cut[N];
    static uint32_t id[N];
    mk_client_config *cc;
    uint8_t blob[MK_SESSION_BLOB_MAX], *resp = NULL;
    size_t blen = 0, rlen = 0;
    long long parked = 0, refused = 0;
    long rss0, rss1;
    unsigned ecode = 0;
    int ok = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    assert_int_equal(mkt_client_open(&c[0], cc, NULL, D.port, NULL, 0), MK_OK);
    assert_int_equal(mkt_client_export(&c[0], blob, sizeof blob, &blen), MK_OK);
    for (int i = 1; i < N; i++)
        assert_int_equal(mkt_client_open(&c[i], cc, NULL, D.port, blob, blen),
                         MK_OK);
    rss0 = mkt_rss_kb(D.pid);
    /* One at a time, nine tenths of each request; then wait until mkd
     * has either buffered it or refused it. */
    for (int i = 0; i < N; i++) {
        long long r0 = mkt_status(&D, "buffers.reassembly");
        w[i] = sealed_request(&c[i], LEN, &id[i], &n[i]);
        cut[i] = unit_end(w[i], n[i], n[i] * 9 / 10);
        assert_int_equal(mkt_send_all(c[i].fd, w[i], cut[i]), 0);
        TL_POLL_UNTIL(
            ok,
            mkt_status(&D, "buffers.reassembly") >= r0 + LEN * 8 / 10 ||
                mkt_status(&D, "requests.budget_overloaded") > refused,
            10000);
        assert_true(ok);
        assert_true(mkt_status(&D, "buffers.reassembly") <= 2097152);
        refused = mkt_status(&D, "requests.budget_overloaded");
        parked = i + 1 - refused;
    }
    rss1 = mkt_rss_kb(D.pid);
    fprintf(stderr,
            "%d requests parked at 90%%: %lld held, %lld overloaded; VmRSS "
            "%ld -> %ld kB\n",
            N, parked, refused, rss0, rss1);
    assert_int_equal(parked, 2);
    if (!MKT_SANITIZED)
        assert_true(rss1 - rss0 < 8 * 1024);
    /* The parked ones finish and are answered; the refused ones were told
     * "overloaded" (the rest of their records is dropped) and go on. */
    for (int i = 0; i < N; i++) {
        assert_int_equal(mkt_send_all(c[i].fd, w[i] + cut[i], n[i] - cut[i]),
                         0);
        if (i < parked) {
            assert_int_equal(mkt_client_wait(&c[i], id[i], &resp, &rlen, NULL),
                             MK_OK);
            assert_int_equal(rlen, LEN);
            free(resp);
        } else {
            assert_int_equal(
                mkt_client_wait(&c[i], id[i], &resp, &rlen, &ecode),
                MK_ERR_PEER_ERROR);
            assert_int_equal(ecode, MK_ECODE_OVERLOADED);
        }
        free(w[i]);
    }
    TL_POLL_UNTIL(ok,
                  mkt_status(&D, "buffers.reassembly") == 0 &&
                      mkt_status(&D, "buffers.output") == 0,
                  10000);
    assert_true(ok);
    for (int i = 0; i < N; i++) {
        echo_ok(&c[i], 1000, (uint32_t)i);
        mkt_client_close(&c[i]);
    }
    assert_int_equal(mkt_status(&D, "requests.budget_overloaded"), N - 2);
    mk_client_config_unref(cc);
    stop_clean();
}

/* Output waiting to be written counts against the same budget: while a
 * peer that stopped reading holds more of it than the budget, a new
 * request elsewhere is answered "overloaded"; once it is read, requests
 * are served again. The echo backend's delay lets all of the peer's
 * requests in before their answers pile up. */
static void test_buffer_budget_output(void **st)
{
    static const char *const args[] = {"--buffer_budget=1048576",
                                       "--echo_delay_ms=1000",
                                       "--write_timeout_ms=60000", NULL};
    enum { K = 30, LEN = 300000 };
    mk_client_config *cc;
    mkt_client a, b;
    uint8_t *big = calloc(1, LEN), *resp = NULL, req[100] = {0};
    uint32_t ids[K];
    size_t rlen = 0;
    unsigned ecode = 0;
    int answered = 0, ok = 0;
    (void)st;

    assert_non_null(big);
    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    assert_int_equal(mkt_client_open(&a, cc, NULL, D.port, NULL, 0), MK_OK);
    assert_int_equal(mkt_client_open(&b, cc, NULL, D.port, NULL, 0), MK_OK);
    /* 9 MB of answers, more than the kernel's socket buffers hold while
     * A does not read (its receive buffer grows only as it reads). */
    for (int i = 0; i < K; i++)
        assert_int_equal(mkt_client_send(&a, big, LEN, &ids[i]), MK_OK);
    /* Every answer made, then over the budget: the kernel takes a few
     * MB of them (the send buffer grows as it is written), so while
     * answers are still being made the total may sink under the budget
     * again, and B's request could slip through on a busy machine. */
    TL_POLL_UNTIL(ok,
                  mkt_status(&D, "responses") >= K &&
                      mkt_status(&D, "buffers.output") > 1048576,
                  30000);
    assert_true(ok);
    assert_int_equal(
        mkt_client_request(&b, req, sizeof req, &resp, &rlen, &ecode),
        MK_ERR_PEER_ERROR);
    assert_int_equal(ecode, MK_ECODE_OVERLOADED);
    assert_true(mkt_status(&D, "requests.budget_overloaded") >= 1);
    /* A reads its answers (one that came after the budget was spent got
     * "overloaded"). */
    for (int i = 0; i < K; i++) {
        int r = mkt_client_wait(&a, ids[i], &resp, &rlen, &ecode);
        if (r == MK_OK) {
            assert_int_equal(rlen, LEN);
            free(resp);
            answered++;
        } else {
            assert_int_equal(r, MK_ERR_PEER_ERROR);
            assert_int_equal(ecode, MK_ECODE_OVERLOADED);
        }
    }
    assert_true(answered > 5);
    TL_POLL_UNTIL(ok, mkt_status(&D, "buffers.output") == 0, 10000);
    assert_true(ok);
    echo_ok(&b, 100, 2);
    echo_ok(&a, 100, 3);
    mkt_client_close(&a);
    mkt_client_close(&b);
    free(big);
    mk_client_config_unref(cc);
    stop_clean();
}

/* A full-handshake flood from 127.0.0.2 is throttled by its token bucket;
 * 127.0.0.1 still handshakes, and resumption is not throttled. */
static void test_handshake_flood(void **st)
{
    static const char *const args[] = {"--handshake_rate=2",
                                       "--handshake_burst=3", NULL};
    mk_client_config *cc;
    mkt_client c;
    static opens o;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    open_many(cc, "127.0.0.2", NULL, 0, 20, &o);
    fprintf(stderr, "flood from 127.0.0.2: %d handshakes, %d retry-later\n",
            o.ok, o.busy);
    assert_true(o.ok >= 3);
    assert_true(o.busy >= 10);
    /* Another address is not affected. */
    assert_int_equal(mkt_client_open(&c, cc, "127.0.0.1", D.port, NULL, 0),
                     MK_OK);
    echo_ok(&c, 10, 1);
    mkt_client_close(&c);
    /* The throttled address can still resume (no RSA work). */
    assert_int_equal(
        mkt_client_open(&c, cc, "127.0.0.2", D.port, o.blob, o.blen), MK_OK);
    assert_true(mkt_client_resumed(&c));
    mkt_client_close(&c);
    assert_true(mkt_status(&D, "refused.handshake_rate") >= 10);
    mk_client_config_unref(cc);
    stop_clean();
}

/* Resumptions cost no RSA but are not free: each address has a token
 * bucket of its own for them. Past its burst, retry later with the wait
 * to the next token; another address resumes as before. */
static void test_resume_rate(void **st)
{
    static const char *const args[] = {"--resume_rate=2", "--resume_burst=3",
                                       NULL};
    mk_client_config *cc;
    mkt_client c;
    static opens full, res;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    open_many(cc, "127.0.0.4", NULL, 0, 1, &full);
    assert_int_equal(full.ok, 1);
    open_many(cc, "127.0.0.4", full.blob, full.blen, 20, &res);
    fprintf(stderr, "resumptions from 127.0.0.4: %d done, %d retry-later\n",
            res.ok, res.busy);
    assert_true(res.ok >= 3);
    assert_true(res.busy >= 10);
    assert_int_equal(mkt_status(&D, "refused.resume_rate"), res.busy);
    assert_int_equal(mkt_status(&D, "refused.handshake_rate"), 0);
    /* Another address is not affected. */
    assert_int_equal(
        mkt_client_open(&c, cc, "127.0.0.5", D.port, full.blob, full.blen),
        MK_OK);
    assert_true(mkt_client_resumed(&c));
    echo_ok(&c, 10, 1);
    mkt_client_close(&c);
    mk_client_config_unref(cc);
    stop_clean();
}

/* Hellos beyond the cap on handshakes in progress are told to retry
 * later before any RSA work; the others complete. */
static void test_handshakes_in_progress(void **st)
{
    static const char *const args[] = {"--max_handshakes=1",
                                       "--handshake_rate=0",
                                       "--max_pending_per_address=1000", NULL};
    enum { N = 30 };
    static mkt_client c[N];
    mk_client_config *cc;
    int ok = 0, busy = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    for (int i = 0; i < N; i++)
        assert_int_equal(mkt_client_start(&c[i], cc, NULL, D.port, NULL, 0),
                         MK_OK);
    for (int i = 0; i < N; i++) {
        int r = mkt_client_finish(&c[i]);
        if (r == MK_OK)
            ok++;
        else if (r == MK_ERR_PEER_RETRY_LATER)
            busy++;
        mkt_client_close(&c[i]);
    }
    fprintf(stderr,
            "%d hellos at once, 1 allowed in progress: %d done, %d "
            "retry-later\n",
            N, ok, busy);
    assert_int_equal(ok + busy, N);
    assert_true(ok >= 1);
    assert_true(busy >= 1);
    assert_int_equal(mkt_status(&D, "refused.handshakes_in_progress"), busy);
    assert_int_equal(mkt_status(&D, "handshakes.in_progress"), 0);
    mk_client_config_unref(cc);
    stop_clean();
}

/* Hit and run: hellos from many addresses on connections closed at once.
 * Each hello keeps its slot under max_handshakes until Yami is done with
 * its job, so the hellos queued for RSA work never pass the cap however
 * fast their peers hang up; and Yami skips the hellos of connections
 * already gone instead of running their RSA operation. One crypto thread
 * keeps the queue long enough for both to show. */
static void test_hit_and_run(void **st)
{
    static const char *const args[] = {
        "--max_handshakes=4", "--threads=1", "--handshake_rate=0",
        "--max_pending_per_address=100000", NULL};
    enum { N = 400, HELLOS = 16 };
    static uint8_t hello[HELLOS][MK_HANDLE_OUT_LEN];
    size_t hlen[HELLOS];
    mk_client_config *cc;
    mkt_client c;
    long long run, skipped, refused;
    int ok = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    for (int i = 0; i < HELLOS; i++)
        hlen[i] = fresh_hello(cc, hello[i], sizeof hello[i]);
    for (int i = 0; i < N; i++) {
        char src[32];
        int fd;
        snprintf(src, sizeof src, "127.0.%d.%d", 1 + i / 200, 1 + i % 200);
        fd = mkt_tcp_connect(src, D.port);
        assert_true(fd >= 0);
        assert_int_equal(mkt_send_all(fd, hello[i % HELLOS], hlen[i % HELLOS]),
                         0);
        close(fd);
    }
    /* Every hello accounted for: refused at the cap, run, or skipped. */
    TL_POLL_UNTIL(ok,
                  mkt_status(&D, "queue.hellos_run") +
                          mkt_status(&D, "handshakes.skipped") +
                          mkt_status(&D, "refused.handshakes_in_progress") ==
                      N,
                  30000);
    run = mkt_status(&D, "queue.hellos_run");
    skipped = mkt_status(&D, "handshakes.skipped");
    refused = mkt_status(&D, "refused.handshakes_in_progress");
    fprintf(stderr,
            "%d hit-and-run hellos, max_handshakes 4: %lld run, %lld "
            "skipped, %lld refused; at most %lld queued at once\n",
            N, run, skipped, refused, mkt_status(&D, "queue.full_hellos_max"));
    assert_true(ok);
    assert_true(mkt_status(&D, "queue.full_hellos_max") <= 4);
    assert_true(skipped > 0);
    TL_POLL_UNTIL(ok, mkt_status(&D, "handshakes.in_progress") == 0, 10000);
    assert_true(ok);
    assert_int_equal(mkt_status(&D, "queue.full_hellos"), 0);
    /* The slots came back: a real client still handshakes. */
    assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, NULL, 0), MK_OK);
    echo_ok(&c, 100, 1);
    mkt_client_close(&c);
    mk_client_config_unref(cc);
    stop_clean();
}

/* A flood of full hellos that keeps max_handshakes full does not lock
 * out resumptions: they need no RSA work and are not held to that cap
 * (their own per-address bucket bounds them). */
typedef struct hello_flood {
    pthread_t t;
    const uint8_t *hello;
    size_t len;
    atomic_int stop;
    unsigned long sent;
} hello_flood;

static void *hello_flood_main(void *arg)
{
    hello_flood *f = arg;
    int fds[8];

    while (!atomic_load(&f->stop)) {
        for (int i = 0; i < 8; i++) {
            char src[32];
            snprintf(src, sizeof src, "127.0.7.%lu", 1 + f->sent % 200);
            fds[i] = mkt_tcp_connect(src, D.port);
            if (fds[i] >= 0 && mkt_send_all(fds[i], f->hello, f->len) == 0)
                f->sent++;
        }
        /* Each waits for its answer (the server hello or retry-later). */
        for (int i = 0; i < 8; i++) {
            if (fds[i] < 0)
                continue;
            struct pollfd pfd = {fds[i], POLLIN, 0};
            uint8_t b[64];
            if (poll(&pfd, 1, 5000) > 0)
                (void)recv(fds[i], b, sizeof b, 0);
            close(fds[i]);
        }
    }
    return NULL;
}

static void test_resume_during_flood(void **st)
{
    static const char *const args[] = {
        "--max_handshakes=4", "--threads=1", "--handshake_rate=0",
        "--max_pending_per_address=100000", NULL};
    static hello_flood f;
    uint8_t hello[MK_HANDLE_OUT_LEN], blob[MK_SESSION_BLOB_MAX];
    size_t blen = 0;
    mk_client_config *cc;
    mkt_client c;
    int resumed = 0, ok = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, NULL, 0), MK_OK);
    assert_int_equal(mkt_client_export(&c, blob, sizeof blob, &blen), MK_OK);
    mkt_client_close(&c);
    memset(&f, 0, sizeof f);
    f.hello = hello;
    f.len = fresh_hello(cc, hello, sizeof hello);
    assert_int_equal(pthread_create(&f.t, NULL, hello_flood_main, &f), 0);
    /* The flood has filled the cap at least once. */
    TL_POLL_UNTIL(ok, mkt_status(&D, "refused.handshakes_in_progress") > 0,
                  20000);
    for (int i = 0; i < 50; i++) {
        int r = mkt_client_open(&c, cc, NULL, D.port, blob, blen);
        resumed += r == MK_OK && mkt_client_resumed(&c);
        mkt_client_close(&c);
    }
    atomic_store(&f.stop, 1);
    pthread_join(f.t, NULL);
    fprintf(stderr,
            "during a flood of %lu full hellos (max_handshakes 4, %lld "
            "refused): %d of 50 resumptions\n",
            f.sent, mkt_status(&D, "refused.handshakes_in_progress"), resumed);
    assert_true(ok);
    assert_int_equal(resumed, 50);
    mk_client_config_unref(cc);
    stop_clean();
}

/* SIGTERM: no new connections, the request in flight is answered, then a
 * close record, and exit 0. */
static void test_sigterm_drains(void **st)
{
    static const char *const args[] = {"--echo_delay_ms=1500", NULL};
    mk_client_config *cc;
    mkt_client c;
    uint8_t req[5000], *resp = NULL;
    size_t rlen = 0;
    uint32_t id;
    unsigned ecode = 0;
    int s, fd, ok = 0;
    (void)st;

    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, NULL, 0), MK_OK);
    pattern(req, sizeof req, 5);
    assert_int_equal(mkt_client_send(&c, req, sizeof req, &id), MK_OK);
    /* The request is with the backend (its answer 1.5 s away) before the
     * signal comes. */
    TL_POLL_UNTIL(ok, mkt_status(&D, "requests") == 1, 10000);
    assert_true(ok);
    kill(D.pid, SIGTERM);
    /* The listener closes. */
    TL_POLL_UNTIL(
        ok, (fd = mkt_tcp_connect(NULL, D.port)) < 0 || (close(fd), 0), 10000);
    assert_true(ok);
    assert_int_equal(mkt_client_wait(&c, id, &resp, &rlen, &ecode), MK_OK);
    assert_int_equal(rlen, sizeof req);
    assert_memory_equal(resp, req, sizeof req);
    free(resp);
    assert_int_equal(mkt_client_wait_close(&c), MK_OK);
    assert_true(c.closed);
    mkt_client_close(&c);
    s = mkt_daemon_stop(&D, 0, 5000); /* signal 0: just wait */
    assert_true(s >= 0 && WIFEXITED(s));
    assert_int_equal(WEXITSTATUS(s), 0);
    mk_client_config_unref(cc);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* SIGHUP: a new server key added and the ticket keys rotated; sessions
 * from before stay resumable, clients pinning either key handshake, and
 * a ticket key rotated out of the file no longer resumes (the client falls
 * back to a full handshake by itself). */
static void test_sighup_rotation(void **st)
{
    char conf[400], key1[400], key2[400], tk[400], pub2[400], text[2048],
        a_conf[420], a_tk[420], a_out[420];
    mk_client_config *cc1, *cc2;
    mkt_client c;
    uint8_t blob[MK_SESSION_BLOB_MAX], blob2[MK_SESSION_BLOB_MAX];
    size_t blen = 0, blen2 = 0;
    const char *args[] = {a_conf, NULL};
    int ok = 0;
    (void)st;

    snprintf(conf, sizeof conf, "%s/mkd.conf", D.dir);
    snprintf(key1, sizeof key1, "%s/one.pem", D.dir);
    snprintf(key2, sizeof key2, "%s/two.pem", D.dir);
    snprintf(pub2, sizeof pub2, "%s/two.pub.pem", D.dir);
    snprintf(tk, sizeof tk, "%s/shared.keys", D.dir);
    snprintf(a_conf, sizeof a_conf, "--config=%s", conf);
    snprintf(a_tk, sizeof a_tk, "--ticket_key_file=%s", tk);
    snprintf(D.pub, sizeof D.pub, "%s/one.pub.pem", D.dir);
    {
        const char *kg[] = {"keygen", a_out, NULL};
        snprintf(a_out, sizeof a_out, "--out=%s", key1);
        assert_int_equal(mkt_run_mkd(kg), 0);
        snprintf(a_out, sizeof a_out, "--out=%s", key2);
        assert_int_equal(mkt_run_mkd(kg), 0);
    }
    snprintf(text, sizeof text,
             "# test\nkey_file = %s\nticket_key_file = %s\n"
             "log_level = debug\n",
             key1, tk);
    write_text(conf, text);
    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc1 = mkt_client_config(D.pub);
    cc2 = mkt_client_config(pub2);
    assert_non_null(cc1);
    assert_non_null(cc2);
    assert_int_equal(mkt_client_open(&c, cc1, NULL, D.port, NULL, 0), MK_OK);
    assert_int_equal(mkt_client_export(&c, blob, sizeof blob, &blen), MK_OK);
    mkt_client_close(&c);
    /* Not yet served: key two. */
    assert_int_not_equal(mkt_client_open(&c, cc2, NULL, D.port, NULL, 0),
                         MK_OK);
    mkt_client_close(&c);

    {
        const char *rot[] = {"ticket-keys", "--rotate", a_tk, NULL};
        assert_int_equal(mkt_run_mkd(rot), 0);
    }
    snprintf(text, sizeof text,
             "key_file = %s, %s\nticket_key_file = %s\nlog_level = debug\n",
             key2, key1, tk);
    write_text(conf, text);
    kill(D.pid, SIGHUP);
    TL_POLL_UNTIL(ok, mkt_status(&D, "reloads") == 1, 10000);
    assert_true(ok);

    /* The old session resumes under the old (now accept-only) ticket key. */
    assert_int_equal(mkt_client_open(&c, cc1, NULL, D.port, blob, blen), MK_OK);
    assert_true(mkt_client_resumed(&c));
    mkt_client_close(&c);
    /* Both keys handshake. */
    assert_int_equal(mkt_client_open(&c, cc1, NULL, D.port, NULL, 0), MK_OK);
    echo_ok(&c, 10, 1);
    mkt_client_close(&c);
    assert_int_equal(mkt_client_open(&c, cc2, NULL, D.port, NULL, 0), MK_OK);
    echo_ok(&c, 10, 2);
    assert_int_equal(mkt_client_export(&c, blob2, sizeof blob2, &blen2), MK_OK);
    mkt_client_close(&c);

    /* Rotate again keeping one key: the first ticket key is gone. */
    {
        const char *rot[] = {"ticket-keys", "--rotate", "--keep=1", a_tk, NULL};
        assert_int_equal(mkt_run_mkd(rot), 0);
    }
    kill(D.pid, SIGHUP);
    TL_POLL_UNTIL(ok, mkt_status(&D, "reloads") == 2, 10000);
    assert_true(ok);
    assert_int_equal(mkt_client_open(&c, cc1, NULL, D.port, blob, blen), MK_OK);
    assert_false(mkt_client_resumed(&c)); /* fell back to a full handshake */
    mkt_client_close(&c);
    assert_int_equal(mkt_client_open(&c, cc2, NULL, D.port, blob2, blen2),
                     MK_OK);
    assert_false(mkt_client_resumed(&c));
    mkt_client_close(&c);

    /* A broken key file on reload: the old configuration stays. */
    write_text(conf, "key_file = /nonexistent.pem\n");
    kill(D.pid, SIGHUP);
    TL_POLL_UNTIL(ok, mkt_status(&D, "reload_failures") == 1, 10000);
    assert_true(ok);
    assert_int_equal(mkt_client_open(&c, cc2, NULL, D.port, NULL, 0), MK_OK);
    mkt_client_close(&c);
    mk_client_config_unref(cc1);
    mk_client_config_unref(cc2);
    stop_clean();
}

/* The operator commands: keygen output files and modes, ticket-key
 * rotation bounded by --keep, status over the control socket. */
static void test_operator_commands(void **st)
{
    char out[420], a_out[440], tk[420], a_tk[440], path[440], line[256];
    struct stat sb;
    FILE *f;
    int keys = 0;
    (void)st;

    snprintf(out, sizeof out, "%s/k/srv.pem", D.dir);
    snprintf(a_out, sizeof a_out, "--out=%s", out);
    {
        const char *kg[] = {"keygen", a_out, NULL};
        assert_int_equal(mkt_run_mkd(kg), 0);
        assert_int_equal(mkt_run_mkd(kg), 1); /* never overwrites */
    }
    assert_int_equal(stat(out, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/k/srv.pub.pem", D.dir);
    assert_int_equal(stat(path, &sb), 0);
    snprintf(path, sizeof path, "%s/k/srv.pub.h", D.dir);
    assert_int_equal(stat(path, &sb), 0);
    snprintf(tk, sizeof tk, "%s/t/keys", D.dir);
    snprintf(a_tk, sizeof a_tk, "--ticket_key_file=%s", tk);
    {
        const char *rot[] = {"ticket-keys", "--rotate", "--keep=3", a_tk, NULL};
        for (int i = 0; i < 5; i++)
            assert_int_equal(mkt_run_mkd(rot), 0);
    }
    assert_int_equal(stat(tk, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    f = fopen(tk, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f) != NULL)
        keys += line[0] != '#';
    fclose(f);
    assert_int_equal(keys, 3);
    assert_int_equal(mkt_daemon_start(&D, NULL), 0);
    assert_int_equal(mkt_status(&D, "connections"), 0);
    assert_true(mkt_status(&D, "backend.answered") == 0);
    stop_clean();
}

/* --- inline record crypto ------------------------------------------------ */

/* Request i of a round: mostly small (run inline on the loop thread), every
 * tenth over inline_crypto_max (on the pool), 0 bytes now and then. */
static size_t pipe_len(unsigned i)
{
    return i % 10 == 5 ? 20000 + i * 131 : (i * 337u) % 3000;
}

/* Many requests in flight on one connection, small ones around large ones:
 * every answer is whole and right, and they come back in request order (the
 * echo backend answers in arrival order, and Yami must keep that order
 * across inline and pool jobs, or the records' implicit sequence numbers
 * break). inline_on: whether the daemon runs with inlining. */
static void pipelined(const char *const *args, int inline_on)
{
    enum { ROUNDS = 20, PER_ROUND = 30 };
    mk_client_config *cc;
    mkt_client c;
    uint8_t *out = malloc(MK_HANDLE_OUT_LEN), *req = malloc(40000),
            *got = malloc(40000);
    long long inl, pool;

    assert_non_null(out);
    assert_non_null(req);
    assert_non_null(got);
    assert_int_equal(mkt_daemon_start(&D, args), 0);
    cc = pinned();
    assert_int_equal(mkt_client_open(&c, cc, NULL, D.port, NULL, 0), MK_OK);
    /* One small request at a time: each is one job to open it and one to
     * seal its answer, both inline (no pool job at all), or both on the
     * pool. */
    inl = mkt_status(&D, "queue.jobs_inline");
    pool = mkt_status(&D, "queue.jobs_total");
    for (unsigned i = 0; i < 20; i++)
        echo_ok(&c, i * 700, 7000 + i);
    if (inline_on) {
        assert_int_equal(mkt_status(&D, "queue.jobs_inline"), inl + 40);
        assert_int_equal(mkt_status(&D, "queue.jobs_total"), pool);
    } else {
        assert_int_equal(mkt_status(&D, "queue.jobs_inline"), 0);
        assert_int_equal(mkt_status(&D, "queue.jobs_total"), pool + 40);
    }
    /* Then many at once. */
    for (unsigned round = 0; round < ROUNDS; round++) {
        uint32_t ids[PER_ROUND];
        unsigned next = 0;
        size_t glen = 0;

        for (unsigned i = 0; i < PER_ROUND; i++) {
            pattern(req, pipe_len(i), round * 100 + i);
            assert_int_equal(mkt_client_send(&c, req, pipe_len(i), &ids[i]),
                             MK_OK);
        }
        while (next < PER_ROUND) {
            mk_event ev;
            assert_int_equal(mkt_client_next_event(&c, out, &ev), MK_OK);
            if (ev.type == MK_EV_NONE)
                continue;
            /* Only the answer that is due, never an error. */
            assert_int_equal(ev.type, MK_EV_DATA);
            assert_int_equal(ev.request_id, ids[next]);
            assert_true(glen + ev.len <= pipe_len(next));
            memcpy(got + glen, out, ev.len);
            glen += ev.len;
            if (!ev.final)
                continue;
            assert_int_equal(glen, pipe_len(next));
            pattern(req, pipe_len(next), round * 100 + next);
            if (glen)
                assert_memory_equal(got, req, glen);
            glen = 0;
            next++;
        }
    }
    mkt_client_close(&c);
    assert_int_equal(mkt_status(&D, "requests"), 20 + ROUNDS * PER_ROUND);
    assert_int_equal(mkt_status(&D, "responses"), 20 + ROUNDS * PER_ROUND);
    /* The large requests always take the pool. (How many of the small
     * ones ran inline depends on how reads and answers batch up.) */
    assert_true(mkt_status(&D, "queue.jobs_total") >= pool + 2 * ROUNDS);
    if (!inline_on)
        assert_int_equal(mkt_status(&D, "queue.jobs_inline"), 0);
    mk_client_config_unref(cc);
    free(out);
    free(req);
    free(got);
    stop_clean();
}

static void test_pipelined_inline(void **st)
{
    (void)st;
    pipelined(NULL, 1);
}

/* The same with inlining off: every job on the pool, as before it
 * existed. */
static void test_pipelined_pool(void **st)
{
    static const char *const args[] = {"--inline_crypto_max=0", NULL};
    (void)st;
    pipelined(args, 0);
}

/* A line of the daemon's log holding text. */
static int log_has(const char *text)
{
    char *log = tl_read_file(D.log, NULL);
    int found = log != NULL && strstr(log, text) != NULL;

    free(log);
    return found;
}

/* Key and ticket-key files that group or others may read are refused at
 * start, with the file and its mode in the log, as ssh refuses private
 * keys; once made private again, they are taken. */
static void test_key_file_modes(void **st)
{
    char key[420], a_key[440], tk[420], a_tk[440], a_out[440];
    const char *args[] = {a_key, a_tk, NULL};
    int s;
    (void)st;

    snprintf(key, sizeof key, "%s/k/srv.pem", D.dir);
    snprintf(tk, sizeof tk, "%s/k/ticket.keys", D.dir);
    snprintf(a_key, sizeof a_key, "--key_file=%s", key);
    snprintf(a_tk, sizeof a_tk, "--ticket_key_file=%s", tk);
    snprintf(a_out, sizeof a_out, "--out=%s", key);
    snprintf(D.pub, sizeof D.pub, "%s/k/srv.pub.pem", D.dir);
    {
        const char *kg[] = {"keygen", a_out, NULL};
        const char *tkc[] = {"ticket-keys", a_tk, NULL};
        assert_int_equal(mkt_run_mkd(kg), 0);
        assert_int_equal(mkt_run_mkd(tkc), 0);
    }
    assert_int_equal(chmod(key, 0640), 0);
    assert_int_equal(mkt_daemon_spawn(&D, args), 0);
    s = mkt_daemon_stop(&D, 0, 20000); /* signal 0: it ends by itself */
    assert_true(s >= 0 && WIFEXITED(s));
    assert_int_equal(WEXITSTATUS(s), 1);
    assert_true(log_has("is readable by group or others (mode 0640)"));
    assert_int_equal(chmod(key, 0600), 0);
    assert_int_equal(chmod(tk, 0604), 0);
    assert_int_equal(mkt_daemon_spawn(&D, args), 0);
    s = mkt_daemon_stop(&D, 0, 20000);
    assert_true(s >= 0 && WIFEXITED(s));
    assert_int_equal(WEXITSTATUS(s), 1);
    assert_true(log_has("ticket.keys is readable by group or others"));
    assert_int_equal(chmod(tk, 0600), 0);
    assert_int_equal(mkt_daemon_start(&D, args), 0);
    stop_clean();
}

/* ready_file is never written through a symbolic link (as root, a link
 * planted there would truncate any file): mkd says so and the file the
 * link names is untouched. */
static void test_ready_file_symlink(void **st)
{
    char target[420], link[420], a_ready[440];
    const char *args[] = {a_ready, NULL};
    char *text;
    int ok = 0;
    (void)st;

    snprintf(target, sizeof target, "%s/precious", D.dir);
    snprintf(link, sizeof link, "%s/ready-link", D.dir);
    snprintf(a_ready, sizeof a_ready, "--ready_file=%s", link);
    write_text(target, "keep me\n");
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(mkt_daemon_spawn(&D, args), 0);
    TL_POLL_UNTIL(ok, log_has("serving (port"), 30000);
    assert_true(ok);
    assert_true(log_has("ready_file"));
    text = tl_read_file(target, NULL);
    assert_non_null(text);
    assert_string_equal(text, "keep me\n");
    free(text);
    stop_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_handshake, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_resumption_and_restart, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_200_concurrent, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_peers, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_declared_length_stall, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_timeouts, mkt_setup, mkt_teardown),
        cmocka_unit_test_setup_teardown(test_partial_request_timeout, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_write_stall, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_drop_privileges, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_connections_per_address, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_buffer_budget, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_buffer_budget_output, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_flood, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_resume_rate, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_handshakes_in_progress, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_hit_and_run, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_resume_during_flood, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_drains, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_sighup_rotation, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_key_file_modes, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_ready_file_symlink, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_operator_commands, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_inline, mkt_setup,
                                        mkt_teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_pool, mkt_setup,
                                        mkt_teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    /* MKT_FILTER=test_name (a glob) runs only the tests it matches. */
    if (getenv("MKT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("MKT_FILTER"));
    return cmocka_run_group_tests_name("mkd_integration", tests, NULL, NULL);
}
