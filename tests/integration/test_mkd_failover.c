/*
 * test_mkd_failover.c -- libsazukari's failover (sz_service) against real
 * mkd nodes on loopback that share one server key and one ticket-key file,
 * each with its own data directory:
 *
 *   - a first address that is closed: the second is used;
 *   - a node that answers retry_later (max_connections reached): the next
 *     one is used at once, within the deadline, without waiting out the
 *     node's suggested wait;
 *   - a session made on one node resumes on another;
 *   - a node SIGKILLed under load from several threads: every request
 *     succeeds or fails cleanly, none hangs, none runs twice, and none that
 *     the library said did not run ran (docs/PROTOCOL.md §8.5);
 *   - a rolling restart (SIGTERM drain, start again, one node at a time)
 *     under load: not one request fails.
 *
 * "Ran" is seen from the server: the PHP test application (apps/sleep.php,
 * shared by the nodes from one directory) appends each request's token to
 * one executed.log, under a lock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mkt.h"
#include "sazukari.h"
#include "testlib.h"

#ifndef MKT_APPS_DIR
#error "MKT_APPS_DIR must name tests/integration/apps"
#endif
#ifndef MKT_PHP
#define MKT_PHP "/usr/bin/php"
#endif
#ifndef SAZUKARI_CLI
#error "SAZUKARI_CLI must name the sazukari binary"
#endif

#define NODES 3

static struct {
    char dir[64]; /* shared: server key, ticket keys, the application */
    char key[128], pub[140], tkeys[128], app[128], a_key[160], a_tkeys[160],
        a_app[160];
    mkt_daemon node[NODES];
    int php;
} F;

/* --- the shared directory and the nodes ---------------------------------- */

static void copy_app(const char *name)
{
    char src[512], dst[512];
    size_t len = 0;
    char *text;

    snprintf(src, sizeof src, "%s/%s", MKT_APPS_DIR, name);
    snprintf(dst, sizeof dst, "%s/%s", F.dir, name);
    if ((text = tl_read_file(src, &len)) == NULL)
        fail_msg("cannot read %s", src);
    assert_int_equal(tl_write_file(dst, text, len), 0);
    free(text);
}

static int setup(void **st)
{
    (void)st;
    memset(&F, 0, sizeof F);
    snprintf(F.dir, sizeof F.dir, "/tmp/mkt-failover-XXXXXX");
    if (mkdtemp(F.dir) == NULL)
        return -1;
    snprintf(F.key, sizeof F.key, "%s/server.pem", F.dir);
    snprintf(F.pub, sizeof F.pub, "%s/server.pub.pem", F.dir);
    snprintf(F.tkeys, sizeof F.tkeys, "%s/ticket.keys", F.dir);
    snprintf(F.app, sizeof F.app, "%s/sleep.php", F.dir);
    snprintf(F.a_key, sizeof F.a_key, "--key_file=%s", F.key);
    snprintf(F.a_tkeys, sizeof F.a_tkeys, "--ticket_key_file=%s", F.tkeys);
    snprintf(F.a_app, sizeof F.a_app, "--app=%s", F.app);
    {
        char out[160], file[160];
        const char *keygen[] = {"keygen", out, NULL};
        const char *tk[] = {"ticket-keys", file, NULL};
        snprintf(out, sizeof out, "--out=%s", F.key);
        snprintf(file, sizeof file, "--file=%s", F.tkeys);
        if (mkt_run_mkd(keygen) != 0 || mkt_run_mkd(tk) != 0)
            return -1;
    }
    copy_app("lib.php");
    copy_app("sleep.php");
    for (int i = 0; i < NODES; i++)
        if (mkt_daemon_mkdir(&F.node[i]) != 0)
            return -1;
    return 0;
}

static int teardown(void **st)
{
    int ret = 0;
    char cmd[128];
    (void)st;

    for (int i = 0; i < NODES; i++) {
        if (F.node[i].pid > 0 && mkt_daemon_finish(&F.node[i], 30000) != 0)
            ret = -1;
        else if (F.node[i].pid <= 0)
            mkt_daemon_cleanup(&F.node[i]);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", F.dir);
    if (ret == 0 && system(cmd) != 0)
        ret = -1;
    return ret;
}

/* Start node i (again: on its port from before, if it had one) with the
 * shared keys, the echo backend or the PHP application, and extra
 * arguments; return when it serves. */
static void start_node(int i, const char *const *extra)
{
    const char *args[24];
    size_t n = 0;
    int ok = 0;

    args[n++] = F.a_key;
    args[n++] = F.a_tkeys;
    if (F.php) {
        args[n++] = "--backend=php";
        args[n++] = "--php=" MKT_PHP;
        args[n++] = F.a_app;
        args[n++] = "--workers=2";
    }
    for (size_t k = 0; extra != NULL && extra[k] != NULL && n < 23; k++)
        args[n++] = extra[k];
    args[n] = NULL;
    if (mkt_daemon_start(&F.node[i], args) != 0)
        fail_msg("node %d did not start (log %s)", i, F.node[i].log);
    if (F.php)
        TL_POLL_UNTIL(ok, mkt_status(&F.node[i], "backend.workers_idle") == 2,
                      30000);
    else
        ok = 1;
    if (!ok)
        fail_msg("node %d: the PHP pool did not become ready", i);
}

static void addr_of(int i, char *out, size_t cap)
{
    snprintf(out, cap, "127.0.0.1:%u", (unsigned)F.node[i].port);
}

static sz_client *client(void)
{
    sz_client *c = NULL;

    assert_int_equal(sz_client_new(&c), SZ_OK);
    assert_int_equal(sz_client_pin_file(c, F.pub), SZ_OK);
    /* Generous, so that a loaded machine fails nothing; "no hang" is that
     * every call returns, which these bound. */
    assert_int_equal(sz_client_set_timeouts(c, 10000, 20000, 30000), SZ_OK);
    return c;
}

/* A port nothing listens on: bound, read, closed. */
static uint16_t closed_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* A service of n addresses with these deadlines. */
static sz_service *service(sz_client *c, const char **addrs, size_t n,
                           uint32_t connect_ms, uint32_t total_ms)
{
    sz_service *s = NULL;

    assert_int_equal(sz_service_new(c, addrs, n, &s), SZ_OK);
    assert_int_equal(sz_service_set_deadlines(s, connect_ms, total_ms), SZ_OK);
    return s;
}

static void expect_echo(sz_service *s, const char *text)
{
    uint8_t *resp = NULL;
    size_t n = 0;

    assert_int_equal(
        sz_service_request(s, (const uint8_t *)text, strlen(text), &resp, &n),
        SZ_OK);
    assert_int_equal(n, strlen(text));
    assert_memory_equal(resp, text, n);
    sz_free(resp);
}

/* --- connecting ------------------------------------------------------------- */

static void test_dead_first_address(void **st)
{
    char dead[32], live[32];
    const char *addrs[2] = {dead, live};
    sz_service_stats ss;
    sz_service *s = NULL;
    sz_client *c;
    (void)st;

    start_node(0, NULL);
    snprintf(dead, sizeof dead, "127.0.0.1:%u", (unsigned)closed_port());
    addr_of(0, live, sizeof live);
    c = client();
    s = service(c, addrs, 2, 5000, 30000);
    expect_echo(s, "hello");
    assert_string_equal(sz_service_node(s), live);
    sz_service_get_stats(s, &ss);
    assert_int_equal(ss.connect_failures, 1);
    assert_int_equal(ss.connects, 1);
    sz_service_free(s);

    /* Only dead addresses: a clean SZ_ERR_CONNECT once the deadline has
     * passed, and a single pass with total_ms 0. */
    addrs[1] = dead;
    s = service(c, addrs, 2, 1000, 0);
    {
        uint8_t *resp = NULL;
        size_t n = 0;
        assert_int_equal(
            sz_service_request(s, (const uint8_t *)"x", 1, &resp, &n),
            SZ_ERR_CONNECT);
        assert_null(resp);
    }
    sz_service_get_stats(s, &ss);
    assert_int_equal(ss.connect_failures, 2);
    sz_service_free(s);

    /* A name: every address it resolves to is a node ("localhost" may be
     * ::1 first, where nothing listens). */
    snprintf(dead, sizeof dead, "localhost:%u", (unsigned)F.node[0].port);
    s = service(c, addrs, 1, 10000, 30000);
    expect_echo(s, "by name");
    assert_string_equal(sz_service_node(s), live);
    sz_service_free(s);
    sz_client_free(c);
}

/* The CLI takes a comma-separated list, moves on from a dead server, and
 * says in verbose mode which one answered. */
static void test_cli_list(void **st)
{
    char cmd[1400], out[256], err[160], live[32], want[64];
    char *text;
    (void)st;

    start_node(0, NULL);
    addr_of(0, live, sizeof live);
    snprintf(err, sizeof err, "%s/cli.err", F.dir);
    snprintf(cmd, sizeof cmd,
             "'%s' -v -k '%s' 127.0.0.1:%u,%s 'hello list' 2>'%s'",
             SAZUKARI_CLI, F.pub, (unsigned)closed_port(), live, err);
    assert_int_equal(tl_run_capture(cmd, out, sizeof out), 0);
    assert_string_equal(out, "hello list");
    text = tl_read_file(err, NULL);
    assert_non_null(text);
    snprintf(want, sizeof want, "answered by %s\n", live);
    if (strstr(text, want) == NULL)
        fail_msg("no \"%s\" in: %s", want, text);
    free(text);
    /* A bad entry anywhere in the list is a usage error. */
    snprintf(cmd, sizeof cmd, "'%s' -k '%s' %s,nohost x 2>/dev/null",
             SAZUKARI_CLI, F.pub, live);
    assert_int_equal(tl_run_capture(cmd, out, sizeof out), 2);
    /* So are a session file or load mode with several servers. */
    snprintf(cmd, sizeof cmd, "'%s' -k '%s' --load %s,%s x 2>/dev/null",
             SAZUKARI_CLI, F.pub, live, live);
    assert_int_equal(tl_run_capture(cmd, out, sizeof out), 2);
}

static void test_bad_addresses(void **st)
{
    static const char *const bad[] = {"nohost",  "h:",     ":7",    "h:0",
                                      "h:65536", "[::1:7", "::1:7", "h:7x"};
    sz_client *c;
    sz_service *s = NULL;
    (void)st;

    c = client();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sz_service_new(c, &bad[i], 1, &s), SZ_ERR_USAGE);
        assert_null(s);
    }
    assert_int_equal(sz_service_new(c, bad, 0, &s), SZ_ERR_USAGE);
    sz_client_free(c);
}

/* A node at max_connections answers retry_later with a long suggested
 * wait: the next node serves, well before that wait. */
static void test_retry_later_next_node(void **st)
{
    static const char *const busy[] = {"--max_connections=1",
                                       "--retry_after_ms=600000", NULL};
    char a0[32], a1[32];
    const char *addrs[2] = {a0, a1};
    sz_service_stats ss;
    sz_service *s = NULL;
    sz_client *c;
    int fd, ok = 0;
    (void)st;

    start_node(0, busy);
    start_node(1, NULL);
    addr_of(0, a0, sizeof a0);
    addr_of(1, a1, sizeof a1);
    /* Hold node 0's one connection. */
    fd = mkt_tcp_connect(NULL, F.node[0].port);
    assert_true(fd >= 0);
    TL_POLL_UNTIL(ok, mkt_status(&F.node[0], "connections") == 1, 10000);
    assert_true(ok);
    c = client();
    /* The total is far below node 0's suggested wait. */
    s = service(c, addrs, 2, 10000, 60000);
    expect_echo(s, "next");
    assert_string_equal(sz_service_node(s), a1);
    sz_service_get_stats(s, &ss);
    assert_int_equal(ss.busy, 1);
    assert_true(mkt_status(&F.node[0], "refused.connections") >= 1);
    /* Node 0 rests: the next connection goes straight to node 1. */
    sz_service_free(s);
    s = service(c, addrs, 2, 10000, 30000);
    expect_echo(s, "again");
    sz_service_free(s);
    close(fd);
    sz_client_free(c);
}

/* The nodes share their keys: a session made on one resumes on another
 * (the service keeps one session for all its nodes). */
static void test_resume_across_nodes(void **st)
{
    char a0[32], a1[32];
    const char *both[2] = {a0, a1};
    sz_service *s = NULL;
    sz_client *c;
    sz_conn *conn = NULL;
    sz_conn_info ci;
    int e;
    (void)st;

    start_node(0, NULL);
    start_node(1, NULL);
    addr_of(0, a0, sizeof a0);
    addr_of(1, a1, sizeof a1);
    c = client();
    s = service(c, both, 2, 10000, 30000);
    assert_int_equal(sz_service_connect(s, &conn), SZ_OK);
    sz_conn_get_info(conn, &ci);
    assert_false(ci.resumed);
    assert_string_equal(sz_service_node(s), a0);
    sz_service_free(s);
    e = mkt_daemon_stop(&F.node[0], SIGTERM, 30000);
    assert_true(e >= 0 && WIFEXITED(e) && WEXITSTATUS(e) == 0);
    F.node[0].pid = 0;
    s = service(c, both, 2, 10000, 30000);
    assert_int_equal(sz_service_connect(s, &conn), SZ_OK);
    sz_conn_get_info(conn, &ci);
    assert_string_equal(sz_service_node(s), a1);
    assert_true(ci.resumed);
    sz_service_free(s);
    assert_int_equal(mkt_status(&F.node[1], "handshakes.resumed"), 1);
    assert_int_equal(mkt_status(&F.node[1], "handshakes.full"), 0);
    sz_client_free(c);
}

/* How often TOKEN is in executed.log (a line of its own). */
static unsigned ran_token(const char *tok)
{
    char path[128], line[80];
    char *log;
    unsigned count = 0;
    size_t tl;

    snprintf(path, sizeof path, "%s/executed.log", F.dir);
    if ((log = tl_read_file(path, NULL)) == NULL)
        return 0;
    tl = (size_t)snprintf(line, sizeof line, "%s\n", tok);
    for (const char *p = log; (p = strstr(p, line)) != NULL; p += tl)
        if (p == log || p[-1] == '\n')
            count++;
    free(log);
    return count;
}

static int listener_closed(uint16_t port)
{
    int fd = mkt_tcp_connect(NULL, port);

    if (fd < 0)
        return 1;
    close(fd);
    return 0;
}

/*
 * A draining node refuses what comes next without running it, in the two
 * ways §8.5 counts as proof: its close record on an idle connection, and
 * the error "shutdown" on a connection that still has a request running.
 * Either way the service sends the request to the next node, where it runs
 * once; the request that was running on the draining node finishes there.
 */
static void test_drain_refusals_move_on(void **st)
{
    char a0[32], a1[32];
    const char *addrs[2] = {a0, a1};
    sz_service *idle = NULL, *busy = NULL;
    sz_service_stats ss;
    sz_conn *conn = NULL;
    sz_client *c;
    uint32_t id = 0;
    int ok = 0, e;
    (void)st;

    F.php = 1;
    start_node(0, NULL);
    start_node(1, NULL);
    addr_of(0, a0, sizeof a0);
    addr_of(1, a1, sizeof a1);
    c = client();
    idle = service(c, addrs, 2, 10000, 30000);
    busy = service(c, addrs, 2, 10000, 30000);
    assert_int_equal(sz_service_connect(idle, &conn), SZ_OK);
    assert_int_equal(sz_service_connect(busy, &conn), SZ_OK);
    assert_string_equal(sz_service_node(busy), a0);
    assert_int_equal(
        sz_submit(conn, (const uint8_t *)"id:long\nsleep:5000", 18, &id),
        SZ_OK);
    TL_POLL_UNTIL(ok, ran_token("long") == 1, 20000);
    assert_true(ok);
    assert_int_equal(kill(F.node[0].pid, SIGTERM), 0);
    TL_POLL_UNTIL(ok, listener_closed(F.node[0].port), 20000);
    assert_true(ok);

    expect_echo(idle, "id:after-close\nsleep:1");
    assert_string_equal(sz_service_node(idle), a1);
    sz_service_get_stats(idle, &ss);
    assert_int_equal(ss.retries, 1);

    expect_echo(busy, "id:after-shutdown\nsleep:1");
    assert_string_equal(sz_service_node(busy), a1);
    sz_service_get_stats(busy, &ss);
    assert_int_equal(ss.retries, 1);

    sz_service_free(idle);
    sz_service_free(busy);
    sz_client_free(c);
    e = mkt_daemon_stop(&F.node[0], 0, 30000);
    assert_true(e >= 0 && WIFEXITED(e) && WEXITSTATUS(e) == 0);
    F.node[0].pid = 0;
    assert_int_equal(ran_token("after-close"), 1);
    assert_int_equal(ran_token("after-shutdown"), 1);
    assert_int_equal(ran_token("long"), 1);
}

/* --- under load ---------------------------------------------------------------- */

enum { THREADS = 6, MAX_REQ = 4000 };

typedef struct outcome {
    int err;     /* sz_err */
    int not_run; /* sz_last_error_not_run() */
} outcome;

typedef struct load_thread {
    pthread_t th;
    unsigned idx, n;
    outcome out[MAX_REQ];
} load_thread;

static struct {
    atomic_int stop;
    atomic_uint ok, failed;
    sz_client *c;
    char addr[NODES][32];
} L;

static void *load_main(void *arg)
{
    load_thread *t = arg;
    const char *addrs[NODES];
    sz_service *s = NULL;

    /* Each thread prefers another node, so that all carry load. */
    for (unsigned i = 0; i < NODES; i++)
        addrs[i] = L.addr[(t->idx + i) % NODES];
    if (sz_service_new(L.c, addrs, NODES, &s) != SZ_OK ||
        sz_service_set_deadlines(s, 5000, 60000) != SZ_OK)
        return NULL;
    while (!atomic_load(&L.stop) && t->n < MAX_REQ) {
        char body[64];
        uint8_t *resp = NULL;
        size_t len = 0;
        int n = snprintf(body, sizeof body, "id:t%u-%u\nsleep:5", t->idx, t->n);
        int r = sz_service_request(s, (const uint8_t *)body, (size_t)n, &resp,
                                   &len);
        t->out[t->n].err = r;
        t->out[t->n].not_run = r != SZ_OK && sz_last_error_not_run();
        if (r == SZ_OK && (len != (size_t)n || memcmp(resp, body, len) != 0))
            t->out[t->n].err = -1; /* a wrong answer */
        t->n++;
        if (t->out[t->n - 1].err == SZ_OK)
            atomic_fetch_add(&L.ok, 1);
        else
            atomic_fetch_add(&L.failed, 1);
        sz_free(resp);
    }
    sz_service_free(s);
    return NULL;
}

static load_thread *load_start(void)
{
    load_thread *t = calloc(THREADS, sizeof *t);

    assert_non_null(t);
    atomic_store(&L.stop, 0);
    atomic_store(&L.ok, 0);
    atomic_store(&L.failed, 0);
    L.c = client();
    for (int i = 0; i < NODES; i++)
        addr_of(i, L.addr[i], sizeof L.addr[i]);
    for (unsigned i = 0; i < THREADS; i++) {
        t[i].idx = i;
        assert_int_equal(pthread_create(&t[i].th, NULL, load_main, &t[i]), 0);
    }
    return t;
}

static void load_stop(load_thread *t)
{
    atomic_store(&L.stop, 1);
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i].th, NULL);
    sz_client_free(L.c);
}

/* Wait until `more` requests more have succeeded. */
static void progress(unsigned more, load_thread *t)
{
    unsigned target = atomic_load(&L.ok) + more;
    int ok = 0;

    TL_POLL_UNTIL(ok, atomic_load(&L.ok) >= target, 60000);
    if (!ok) {
        load_stop(t);
        free(t);
        fail_msg("the clients made no progress");
    }
}

/* How often the token "tI-N" is in executed.log. */
static unsigned ran(const char *log, unsigned i, unsigned n)
{
    char tok[40];
    unsigned count = 0;
    size_t tl;

    tl = (size_t)snprintf(tok, sizeof tok, "t%u-%u\n", i, n);
    for (const char *p = log; (p = strstr(p, tok)) != NULL; p += tl)
        if (p == log || p[-1] == '\n')
            count++;
    return count;
}

/* Every request: answered rightly and run once; or failed cleanly, run at
 * most once, and not at all if the library said it did not run. Returns
 * the number of failures. */
static unsigned check_runs(const load_thread *t)
{
    char path[128];
    char *log;
    unsigned failures = 0;

    snprintf(path, sizeof path, "%s/executed.log", F.dir);
    log = tl_read_file(path, NULL);
    assert_non_null(log);
    for (unsigned i = 0; i < THREADS; i++)
        for (unsigned n = 0; n < t[i].n; n++) {
            const outcome *o = &t[i].out[n];
            unsigned r = ran(log, i, n);
            if (o->err == SZ_OK) {
                if (r != 1)
                    fail_msg("t%u-%u answered, ran %u times", i, n, r);
                continue;
            }
            failures++;
            fprintf(stderr, "t%u-%u: %s (%s), ran %u time(s)\n", i, n,
                    sz_err_name(o->err),
                    o->not_run ? "did not run" : "may have run", r);
            assert_true(o->err > 0); /* never a wrong answer */
            assert_true(r <= 1);
            if (o->not_run)
                assert_int_equal(r, 0);
            assert_true(o->err != SZ_ERR_PROTOCOL && o->err != SZ_ERR_PIN);
        }
    free(log);
    return failures;
}

/* Every node serving the PHP application, the clients at work on them,
 * and `warm` requests answered. */
static load_thread *nodes_under_load(unsigned warm)
{
    load_thread *t;

    F.php = 1;
    for (int i = 0; i < NODES; i++)
        start_node(i, NULL);
    t = load_start();
    progress(warm, t);
    return t;
}

static void test_sigkill_under_load(void **st)
{
    load_thread *t;
    unsigned failures, total = 0;
    (void)st;

    t = nodes_under_load(60);
    {
        int s = mkt_daemon_stop(&F.node[0], SIGKILL, 10000);
        assert_true(s >= 0 && WIFSIGNALED(s));
    }
    F.node[0].pid = 0;
    /* The clients move to the other nodes. */
    progress(60, t);
    load_stop(t);
    failures = check_runs(t);
    for (unsigned i = 0; i < THREADS; i++)
        total += t[i].n;
    fprintf(stderr, "SIGKILL under load: %u requests, %u failed\n", total,
            failures);
    free(t);
}

static void test_rolling_restart(void **st)
{
    load_thread *t;
    unsigned failures;
    int s;
    (void)st;

    t = nodes_under_load(30);
    for (int i = 0; i < NODES; i++) {
        s = mkt_daemon_stop(&F.node[i], SIGTERM, 30000);
        if (!(s >= 0 && WIFEXITED(s) && WEXITSTATUS(s) == 0)) {
            load_stop(t);
            free(t);
            fail_msg("node %d did not drain and exit 0 (log %s)", i,
                     F.node[i].log);
        }
        F.node[i].pid = 0;
        progress(30, t); /* on the others */
        start_node(i, NULL);
        progress(30, t);
    }
    load_stop(t);
    failures = check_runs(t);
    fprintf(stderr, "rolling restart: %u succeeded, %u failed\n",
            atomic_load(&L.ok), failures);
    assert_int_equal(failures, 0);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_bad_addresses),       T(test_cli_list),
        T(test_dead_first_address),  T(test_retry_later_next_node),
        T(test_resume_across_nodes), T(test_drain_refusals_move_on),
        T(test_sigkill_under_load),  T(test_rolling_restart),
#undef T
    };

    if (getenv("MKT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("MKT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
