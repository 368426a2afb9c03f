/*
 * test_mkd_php.c -- the PHP path end to end: the real mkd with the PHP
 * backend (Pegasus running Arcangelo and a PHP application), driven by
 * libsazukari over loopback.
 *
 *   hello world          the exact answer of apps/hello (the default app)
 *   sizes                1 MiB request and response; the configured
 *                        maximum exactly, and one byte over it both ways;
 *                        a worker's answer just over it (refused, and the
 *                        connection's other requests answered)
 *   load                 50 clients x 100 requests, every answer checked
 *   SIGKILL              a worker killed mid-request: that request gets
 *                        "internal", the next succeeds, the pool refills
 *   environment          env[], env_pass, php_value, php_admin_value
 *   faults               past request_timeout_ms, throw, exit(), fatal
 *                        errors, output on stdout/stderr, a memory leak
 *                        recycled by worker_max_rss_kib
 *   signals              SIGHUP under load (no request fails); SIGHUP
 *                        raising and lowering max_message; SIGHUP applying
 *                        the pool's size, deadlines and application, and
 *                        refused for an option that needs a restart or a
 *                        bad value; SIGTERM under
 *                        load (every accepted request answered); SIGTERM
 *                        with requests outliving shutdown_timeout_ms (they
 *                        are answered "shutdown", mkd exits 0)
 *
 * "Answered exactly once" is checked from both ends. The client library
 * fails a connection on a second answer to an id (a protocol error), and
 * every request must end in exactly one outcome. On the server, the test
 * applications (tests/integration/apps/, copied into each test's data
 * directory) append each request's token to executed.log, so the test
 * knows which requests ran and how often; Yugi's status counters must show
 * as many answers as requests, and the log no "bug:" line.
 *
 * Each test runs its own daemon in a temporary directory with a small
 * pool (1 or 2 workers) and short timeouts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "mkt.h"
#include "testlib.h"
#include "sazukari.h"

#ifndef MKT_APPS_DIR
#error "MKT_APPS_DIR must name tests/integration/apps"
#endif
#ifndef MKT_PHP
#define MKT_PHP "/usr/bin/php"
#endif

#define D mkt_D

/* --- small things -------------------------------------------------------- */

/* Copy a test application from the source tree into the data directory:
 * its __DIR__ (where executed.log goes) is then this test's own. */
static void copy_app(const char *name)
{
    char src[512], dst[512];
    size_t len = 0;
    char *text;

    snprintf(src, sizeof src, "%s/%s", MKT_APPS_DIR, name);
    snprintf(dst, sizeof dst, "%s/%s", D.dir, name);
    text = tl_read_file(src, &len);
    if (text == NULL)
        fail_msg("cannot read %s", src);
    assert_int_equal(tl_write_file(dst, text, len), 0);
    free(text);
}

/* A line of mkd's log holding both a and b (b may be NULL). */
static int log_has(const char *a, const char *b)
{
    char *log = tl_read_file(D.log, NULL), *line, *save = NULL;
    int found = 0;

    if (log == NULL)
        return 0;
    for (line = strtok_r(log, "\n", &save); line != NULL && !found;
         line = strtok_r(NULL, "\n", &save))
        found = strstr(line, a) != NULL && (b == NULL || strstr(line, b));
    free(log);
    return found;
}

/* --- the daemon ---------------------------------------------------------- */

/* For a failure's diagnosis: the status view on stderr. */
static void dump_status(const char *why)
{
    char buf[16384];

    if (mkt_status_text(&D, buf, sizeof buf) == 0)
        fprintf(stderr, "--- %s; mkd status:\n%s---\n", why, buf);
}

static long long st_get(const char *key)
{
    return mkt_status(&D, key);
}

/* Every worker of the pool started and idle. */
static int pool_full(unsigned n)
{
    return st_get("backend.workers") == (long long)n &&
           st_get("backend.workers_idle") == (long long)n;
}

/*
 * Start mkd with the PHP backend serving app (copied from
 * tests/integration/apps with lib.php; NULL: mkd's default, apps/hello)
 * with a pool of `workers`, plus extra "--key=value" arguments; return when
 * every worker is ready, so that timings in the tests do not include PHP's
 * start-up.
 */
static void start_php_with(const char *app, unsigned workers,
                           const char *const *extra, int on_cmdline);

static void start_php(const char *app, unsigned workers,
                      const char *const *extra)
{
    start_php_with(app, workers, extra, 1);
}

/* The same; app and the size `workers` given on the command line only if
 * on_cmdline (else the configuration file names them, and a reload can
 * change them: the command line wins over the file). */
static void start_php_with(const char *app, unsigned workers,
                           const char *const *extra, int on_cmdline)
{
    char a_app[400], a_workers[64];
    const char *args[48];
    size_t n = 0;
    int ok = 0;

    args[n++] = "--backend=php";
    args[n++] = "--php=" MKT_PHP;
    if (app != NULL) {
        copy_app("lib.php");
        copy_app(app);
        snprintf(a_app, sizeof a_app, "--app=%s/%s", D.dir, app);
        if (on_cmdline)
            args[n++] = a_app;
    }
    snprintf(a_workers, sizeof a_workers, "--workers=%u", workers);
    if (on_cmdline)
        args[n++] = a_workers;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 47; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    if (mkt_daemon_start(&D, args) != 0)
        fail_msg("mkd did not start (log %s)", D.log);
    TL_POLL_UNTIL(ok, pool_full(workers), 30000);
    if (!ok)
        fail_msg("the PHP pool did not become ready (log %s)", D.log);
}

/* Yugi's view: every request handed on was answered once (a response or
 * an error record), none is left and none had two answers. */
static void check_all_answered(void)
{
    long long req = st_get("requests"), resp = st_get("responses");
    long long aborted = st_get("requests.buffer_limit");

    assert_true(req >= 0 && resp >= 0 && aborted >= 0);
    assert_int_equal(req, resp - aborted);
    assert_int_equal(st_get("backend.queued"), 0);
}

/* --- pool status, one line per worker ------------------------------------- */

typedef struct wstat {
    unsigned slot;
    int pid;
    char state[16];
    unsigned gen;
    unsigned long served, restarts;
    char last_exit[32];
} wstat;

/* Parse the "pegasus.wN ..." lines of the status view; returns how many
 * (slots without a worker are skipped). */
static size_t workers_of(wstat *w, size_t cap)
{
    char buf[16384], *line, *save = NULL;
    size_t n = 0;

    if (mkt_status_text(&D, buf, sizeof buf) != 0)
        return 0;
    for (line = strtok_r(buf, "\n", &save); line != NULL && n < cap;
         line = strtok_r(NULL, "\n", &save)) {
        wstat x;
        unsigned long long rss, age;
        memset(&x, 0, sizeof x);
        if (sscanf(line,
                   "pegasus.w%u pid %d state %15s gen %u served %lu "
                   "rss_kib %llu age_ms %llu restarts %lu last_exit %31[^\n]",
                   &x.slot, &x.pid, x.state, &x.gen, &x.served, &rss, &age,
                   &x.restarts, x.last_exit) == 9)
            w[n++] = x;
    }
    return n;
}

/* The pid of the (one) worker running a request, or 0. */
static int busy_worker_pid(void)
{
    wstat w[16];
    size_t n = workers_of(w, 16);

    for (size_t i = 0; i < n; i++)
        if (strcmp(w[i].state, "busy") == 0)
            return w[i].pid;
    return 0;
}

/* Every live worker belongs to generation gen, and `workers` of them are
 * ready: a reload is complete. */
static int generation_is(unsigned gen, unsigned workers)
{
    wstat w[16];
    size_t n = workers_of(w, 16);
    unsigned ready = 0;

    if (st_get("backend.generation") != (long long)gen)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i].gen != gen)
            return 0;
        if (strcmp(w[i].state, "idle") == 0 || strcmp(w[i].state, "busy") == 0)
            ready++;
    }
    return ready == workers;
}

/* --- what ran on the server: executed.log ---------------------------------- */

typedef struct executed {
    char **tok; /* sorted */
    size_t n;
    char *text;
} executed;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void executed_load(executed *e)
{
    char path[400], *p;
    size_t cap = 0;

    memset(e, 0, sizeof *e);
    snprintf(path, sizeof path, "%s/executed.log", D.dir);
    e->text = tl_read_file(path, NULL);
    if (e->text == NULL) {
        e->text = strdup(""); /* nothing ran */
        assert_non_null(e->text);
    }
    for (p = e->text; *p != '\0';) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl); /* lines are written whole */
        *nl = '\0';
        if (e->n == cap) {
            char **t = realloc(e->tok, (cap + 1024) * sizeof *t);
            assert_non_null(t);
            e->tok = t;
            cap += 1024;
        }
        e->tok[e->n++] = p;
        p = nl + 1;
    }
    if (e->n > 0)
        qsort(e->tok, e->n, sizeof *e->tok, cmp_str);
}

/* How many times the request with this token ran. */
static size_t executed_count(const executed *e, const char *tok)
{
    size_t lo = 0, hi = e->n, c = 0;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(e->tok[mid], tok) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    while (lo + c < e->n && strcmp(e->tok[lo + c], tok) == 0)
        c++;
    return c;
}

static void executed_free(executed *e)
{
    free(e->tok);
    free(e->text);
    memset(e, 0, sizeof *e);
}

/* Has the request with this token started running? (Polled: the
 * applications record a request before anything else.) */
static int has_run(const char *tok)
{
    executed e;
    size_t c;

    executed_load(&e);
    c = executed_count(&e, tok);
    executed_free(&e);
    return c > 0;
}

static void assert_ran(const executed *e, const char *tok, size_t times)
{
    size_t c = executed_count(e, tok);
    if (c != times)
        fail_msg("request %s ran %zu times, expected %zu", tok, c, times);
}

/* The requests with the tokens PREFIX0 .. PREFIX(n-1) ran once each. */
static void assert_each_ran_once(const char *prefix, int n)
{
    executed e;
    char tok[32];

    executed_load(&e);
    for (int i = 0; i < n; i++) {
        snprintf(tok, sizeof tok, "%s%d", prefix, i);
        assert_ran(&e, tok, 1);
    }
    executed_free(&e);
}

/* --- the client ------------------------------------------------------------- */

static sz_client *client(void)
{
    sz_client *c = NULL;
    assert_int_equal(sz_client_new(&c), SZ_OK);
    assert_int_equal(sz_client_pin_file(c, D.pub), SZ_OK);
    /* A hang shows as SZ_ERR_TIMEOUT (a failure), well within ctest's. */
    assert_int_equal(sz_client_set_timeouts(c, 10000, 20000, 40000), SZ_OK);
    return c;
}

static sz_conn *connect_to(sz_client *c)
{
    sz_conn *conn = NULL;
    int r = sz_connect(c, "127.0.0.1", D.port, NULL, 0, &conn);
    if (r != SZ_OK)
        fail_msg("connect: %s", sz_err_name(r));
    return conn;
}

/* Send req without waiting: its id. */
static uint32_t send_req(sz_conn *conn, const char *req)
{
    uint32_t id = 0;
    int r = sz_submit(conn, (const uint8_t *)req, strlen(req), &id);

    if (r != SZ_OK)
        fail_msg("request \"%.40s\": not sent: %s", req, sz_err_name(r));
    return id;
}

/* Wait for the answer to request id (sent as req), which must be exactly
 * `expect` (NULL: the request itself, an echo). */
static void wait_ok(sz_conn *conn, uint32_t id, const char *req,
                    const char *expect)
{
    uint8_t *resp = NULL;
    size_t rlen = 0;
    int r = sz_wait(conn, id, &resp, &rlen);

    if (r != SZ_OK) {
        sz_error_info ei;
        sz_last_error(&ei);
        fail_msg("request \"%.40s\": %s (%s)", req, sz_err_name(r), ei.text);
    }
    if (expect == NULL)
        expect = req;
    if (rlen != strlen(expect) || memcmp(resp, expect, rlen) != 0)
        fail_msg("request \"%.40s\": got \"%.*s\", expected \"%s\"", req,
                 (int)(rlen < 200 ? rlen : 200), (const char *)resp, expect);
    sz_free(resp);
}

/* One request whose response must be exactly `expect` (NULL: the request
 * itself, an echo). */
static void request_ok(sz_conn *conn, const char *req, const char *expect)
{
    wait_ok(conn, send_req(conn, req), req, expect);
}

/* Wait for the answer to request id (sent as req), which must be the error
 * err; the server's error text must be `text` (if not NULL). */
static void wait_fails(sz_conn *conn, uint32_t id, const char *req, int err,
                       const char *text)
{
    uint8_t *resp = NULL;
    size_t rlen = 0;
    sz_error_info ei;
    int r = sz_wait(conn, id, &resp, &rlen);

    sz_last_error(&ei);
    if (r != err)
        fail_msg("request \"%.40s\": %s (%s), expected %s", req, sz_err_name(r),
                 ei.text, sz_err_name(err));
    assert_null(resp);
    if (text != NULL)
        assert_string_equal(ei.text, text);
}

/* A request that must fail with err; the server's error text must be
 * `text` (if not NULL). Returns how long it took, in ms. */
static uint64_t request_fails(sz_conn *conn, const char *req, int err,
                              const char *text)
{
    uint64_t t0 = tl_now_ms();

    wait_fails(conn, send_req(conn, req), req, err, text);
    return tl_now_ms() - t0;
}

/* A response "... pid=N" from a test app: N. */
static int pid_in(sz_conn *conn, const char *req, const char *prefix)
{
    uint8_t *resp = NULL;
    size_t rlen = 0;
    char text[128];
    int pid = 0;
    int r = sz_request(conn, (const uint8_t *)req, strlen(req), &resp, &rlen);

    if (r != SZ_OK)
        fail_msg("request \"%s\": %s", req, sz_err_name(r));
    assert_true(rlen < sizeof text);
    memcpy(text, resp, rlen);
    text[rlen] = '\0';
    sz_free(resp);
    assert_int_equal(strncmp(text, prefix, strlen(prefix)), 0);
    assert_int_equal(sscanf(text + strlen(prefix), "%d", &pid), 1);
    assert_true(pid > 0);
    return pid;
}

/* --- hello world ------------------------------------------------------------ */

/* Our own socket under sz_connect_io: the test must know the client port
 * that apps/hello prints. */
static long fd_read(void *ctx, uint8_t *buf, size_t len, int timeout_ms)
{
    int fd = *(int *)ctx;
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    ssize_t n;

    if (r == 0 || (r < 0 && errno == EINTR))
        return SZ_IO_TIMEOUT; /* the library checks its own deadline */
    if (r < 0)
        return -1;
    n = recv(fd, buf, len, 0);
    return n < 0 ? -1 : (long)n;
}

static long fd_write(void *ctx, const uint8_t *buf, size_t len, int timeout_ms)
{
    int fd = *(int *)ctx;
    struct pollfd p = {fd, POLLOUT, 0};
    int r = poll(&p, 1, timeout_ms);
    ssize_t n;

    if (r == 0 || (r < 0 && errno == EINTR))
        return SZ_IO_TIMEOUT;
    if (r < 0)
        return -1;
    n = send(fd, buf, len, MSG_NOSIGNAL);
    return n < 0 ? -1 : (long)n;
}

static void test_hello_world(void **st)
{
    sz_client *c;
    sz_conn *conn = NULL;
    sz_conn_info info;
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    sz_io io;
    char expect[512], sid[9], big[1001];
    int fd;
    (void)st;

    start_php(NULL, 2, NULL); /* no --app: mkd's default, apps/hello */
    c = client();
    fd = mkt_tcp_connect(NULL, D.port);
    assert_true(fd >= 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
    memset(&io, 0, sizeof io);
    io.read = fd_read;
    io.write = fd_write;
    io.ctx = &fd;
    io.peer = "hello";
    assert_int_equal(sz_connect_io(c, &io, NULL, 0, &conn), SZ_OK);
    sz_conn_get_info(conn, &info);
    snprintf(sid, sizeof sid, "%02x%02x%02x%02x", info.session_id[0],
             info.session_id[1], info.session_id[2], info.session_id[3]);

    snprintf(expect, sizeof expect,
             "Hello, world!\nYou are 127.0.0.1 port %u; this is request 1 "
             "of session %s, 5 bytes.\n",
             ntohs(sa.sin_port), sid);
    request_ok(conn, "hello", expect);
    snprintf(expect, sizeof expect,
             "Hello, world!\nYou are 127.0.0.1 port %u; this is request 2 "
             "of session %s, 0 bytes.\n",
             ntohs(sa.sin_port), sid);
    request_ok(conn, "", expect);
    memset(big, 'b', 1000);
    big[1000] = '\0';
    snprintf(expect, sizeof expect,
             "Hello, world!\nYou are 127.0.0.1 port %u; this is request 3 "
             "of session %s, 1000 bytes.\n",
             ntohs(sa.sin_port), sid);
    request_ok(conn, big, expect);
    sz_conn_close(conn);
    close(fd);
    sz_client_free(c);

#ifdef SAZUKARI_CLI
    {
        /* The README's command: the CLI prints the answer. */
        char cmd[1200], out[512], tail[128];
        unsigned port = 0, rid = 0;
        size_t n;
        FILE *p;

        snprintf(cmd, sizeof cmd, "'%s' -k '%s' 127.0.0.1:%u 'hello'",
                 SAZUKARI_CLI, D.pub, D.port);
        p = popen(cmd, "r");
        assert_non_null(p);
        n = fread(out, 1, sizeof out - 1, p);
        out[n] = '\0';
        assert_int_equal(pclose(p), 0);
        assert_int_equal(sscanf(out,
                                "Hello, world!\nYou are 127.0.0.1 port %u; "
                                "this is request %u of session %8[0-9a-f], "
                                "%127[^\n]",
                                &port, &rid, sid, tail),
                         4);
        assert_true(port > 0);
        assert_int_equal(rid, 1);
        assert_string_equal(tail, "5 bytes.");
    }
#endif
    check_all_answered();
}

/* --- sizes ------------------------------------------------------------------ */

#define MAX_MESSAGE 1572864u /* 1.5 MiB: not the default, to see it apply */

static uint8_t *random_body(size_t len, const char *id_line, uint32_t seed)
{
    uint8_t *b = malloc(len);
    size_t h = strlen(id_line);
    uint32_t x = seed;

    assert_non_null(b);
    for (size_t i = 0; i < len; i++) {
        x = x * 1664525u + 1013904223u;
        b[i] = (uint8_t)(x >> 24);
    }
    memcpy(b, id_line, h); /* recorded by the app */
    return b;
}

static void echo_exact(sz_conn *conn, size_t len, const char *id_line,
                       uint32_t seed)
{
    uint8_t *req = random_body(len, id_line, seed), *resp = NULL;
    size_t rlen = 0;
    int r = sz_request(conn, req, len, &resp, &rlen);

    if (r != SZ_OK)
        fail_msg("echo of %zu bytes: %s", len, sz_err_name(r));
    assert_int_equal(rlen, len);
    assert_memory_equal(resp, req, len);
    sz_free(resp);
    free(req);
}

static void grow_exact(sz_conn *conn, size_t len)
{
    char req[64];
    uint8_t *resp = NULL;
    size_t rlen = 0, i;

    snprintf(req, sizeof req, "grow:%zu", len);
    assert_int_equal(
        sz_request(conn, (const uint8_t *)req, strlen(req), &resp, &rlen),
        SZ_OK);
    assert_int_equal(rlen, len);
    for (i = 0; i < len && resp[i] == 'g'; i++)
        ;
    assert_int_equal(i, len);
    sz_free(resp);
}

static void test_sizes(void **st)
{
    static const char *const args[] = {"--max_message=1572864", NULL};
    sz_client *c;
    sz_conn *conn;
    sz_conn_info info;
    uint8_t *over, *resp = NULL;
    size_t rlen = 0;
    uint32_t id = 0;
    char req[64];
    executed e;
    (void)st;

    start_php("echo.php", 1, args);
    c = client();
    conn = connect_to(c);
    sz_conn_get_info(conn, &info);
    assert_int_equal(info.max_message, MAX_MESSAGE);

    /* 1 MiB both ways, then exactly the configured maximum. */
    echo_exact(conn, 1u << 20, "id:mib\n", 1);
    echo_exact(conn, MAX_MESSAGE, "id:max\n", 2);
    grow_exact(conn, 1u << 20);
    grow_exact(conn, MAX_MESSAGE);

    /* One byte over: the request is refused by the client before it is
     * sent; the response is refused by Arcangelo ("response too large", an
     * application error). The connection and the worker go on. */
    over = random_body(MAX_MESSAGE + 1, "id:over\n", 3);
    assert_int_equal(sz_submit(conn, over, MAX_MESSAGE + 1, &id),
                     SZ_ERR_TOO_LARGE);
    free(over);
    snprintf(req, sizeof req, "grow:%u", MAX_MESSAGE + 1);
    request_fails(conn, req, SZ_ERR_SERVER_APP, "response too large");
    echo_exact(conn, 100, "id:after\n", 4);
    assert_int_equal(sz_request(conn, NULL, 0, &resp, &rlen), SZ_OK);
    assert_int_equal(rlen, 0);
    sz_free(resp);
    sz_conn_close(conn);
    sz_client_free(c);

    executed_load(&e);
    assert_ran(&e, "mib", 1);
    assert_ran(&e, "max", 1);
    assert_ran(&e, "over", 0);
    assert_ran(&e, "after", 1);
    executed_free(&e);
    assert_int_equal(st_get("backend.crashes"), 0);
    assert_int_equal(st_get("backend.app_errors"), 1);
    check_all_answered();
}

/* --- an answer just over max_message ---------------------------------------- */

/*
 * Answers over max_message by less than the worker protocol's frame
 * overhead (1 and 1000 bytes), from a worker that does not hold to the
 * limit (lax_arcangelo.php). They could not be sealed for the client:
 * Pegasus refuses them itself, so that request gets the application error
 * "response too large", the worker is replaced, and the other requests in
 * flight on the same connection are answered; the connection goes on.
 */
static void test_answer_over_max(void **st)
{
    static const char *const args[] = {
        "--max_message=65536", "--arcangelo=" MKT_APPS_DIR "/lax_arcangelo.php",
        NULL};
    static const char *const body[] = {"id:v0\nsleep:300\ngrow:65537",
                                       "id:v1\nsmall", "id:v2\ngrow:66536",
                                       "id:v3\nsmall"};
    uint32_t id[4];
    sz_client *c;
    sz_conn *conn;
    (void)st;

    start_php("sleep.php", 1, args);
    c = client();
    conn = connect_to(c);
    /* The first one runs (slowly) while the others wait behind it. */
    for (int i = 0; i < 4; i++)
        id[i] = send_req(conn, body[i]);
    wait_fails(conn, id[0], body[0], SZ_ERR_SERVER_APP, "response too large");
    wait_ok(conn, id[1], body[1], NULL);
    wait_fails(conn, id[2], body[2], SZ_ERR_SERVER_APP, "response too large");
    wait_ok(conn, id[3], body[3], NULL);
    request_ok(conn, "id:v4\nafter", NULL);
    sz_conn_close(conn);
    sz_client_free(c);

    assert_each_ran_once("v", 5);
    assert_int_equal(st_get("backend.protocol_errors"), 2);
    assert_true(st_get("backend.spawned") >= 3);
    check_all_answered();
}

/* --- clients under load ----------------------------------------------------- */

/* What became of one request (by its sequence number in its thread). */
enum {
    OUT_NONE = 0, /* not submitted */
    OUT_OK,       /* the right response */
    OUT_SHUTDOWN, /* SZ_ERR_SERVER_SHUTDOWN */
    OUT_CLOSED,   /* SZ_ERR_CLOSED: the server's close came first */
    OUT_REFUSED,  /* sz_submit failed after the signal: never sent */
    OUT_FAILED    /* anything else: a test failure */
};

typedef struct load_thread {
    pthread_t th;
    unsigned idx;
    sz_client *cl;
    unsigned max;      /* requests at most */
    unsigned depth;    /* submitted together, then awaited */
    const char *extra; /* a line appended to each body ("sleep:10") */
    uint8_t *out;      /* [max] OUT_* */
    unsigned n;        /* requests attempted */
    unsigned ok, ok_after_signal, failed;
    char why[1400]; /* the first failure */
} load_thread;

static struct {
    atomic_int stop;      /* submit no more */
    atomic_int signalled; /* SIGTERM sent: connections may end */
    atomic_uint ok;
} L;

static void token_of(char *tok, size_t cap, unsigned idx, unsigned n)
{
    snprintf(tok, cap, "%u-%u", idx, n);
}

/* "id:T-N\n[extra\n]" then letters up to a length that varies. */
static size_t load_body(char *b, size_t cap, const load_thread *t, unsigned n)
{
    char tok[32];
    size_t len, want = 16 + (size_t)((t->idx * 131u + n * 37u) % 1500u);
    int h;

    token_of(tok, sizeof tok, t->idx, n);
    h = snprintf(b, cap, "id:%s\n%s%s", tok, t->extra ? t->extra : "",
                 t->extra ? "\n" : "");
    for (len = (size_t)h; len < want && len < cap; len++)
        b[len] = (char)('a' + (t->idx * 7u + n * 13u + len) % 26u);
    return len;
}

static void load_fail(load_thread *t, unsigned n, const char *what, int err)
{
    sz_error_info ei;

    sz_last_error(&ei);
    t->out[n] = OUT_FAILED;
    if (t->failed++ == 0)
        snprintf(t->why, sizeof t->why, "client %u request %u: %s: %s (%s)",
                 t->idx, n, what, sz_err_name(err), ei.text);
}

/* One request in a client's window. */
typedef struct pending {
    uint32_t id;
    unsigned n;
    size_t len;
    char body[2048];
} pending;

#define WINDOW 8

/* How the request q ended: record it; returns 0 if the connection can take
 * more requests. */
static int load_settle(load_thread *t, pending *q, int r, uint8_t *resp,
                       size_t rlen)
{
    switch (r) {
    case SZ_OK:
        if (rlen != q->len || memcmp(resp, q->body, rlen) != 0) {
            load_fail(t, q->n, "wrong response", r);
            return -1;
        }
        t->out[q->n] = OUT_OK;
        t->ok++;
        atomic_fetch_add(&L.ok, 1);
        if (atomic_load(&L.signalled))
            t->ok_after_signal++;
        return 0;
    case SZ_ERR_SERVER_SHUTDOWN:
    case SZ_ERR_CLOSED:
        if (!atomic_load(&L.signalled)) {
            load_fail(t, q->n, "wait", r);
            return -1;
        }
        t->out[q->n] = r == SZ_ERR_CLOSED ? OUT_CLOSED : OUT_SHUTDOWN;
        return -1;
    default:
        load_fail(t, q->n, "wait", r);
        return -1;
    }
}

/*
 * A client: one connection (a new one when the server ends it), `depth`
 * requests in flight, each new one submitted as soon as the oldest is
 * answered, so that requests keep arriving while others run. Once a
 * connection is over (an error, the server's close, "shutdown"), what is
 * still in flight on it is awaited, then it is closed.
 */
static void *load_main(void *arg)
{
    load_thread *t = arg;
    sz_conn *conn = NULL;
    pending *w = calloc(WINDOW, sizeof *w);
    unsigned n = 0, head = 0, count = 0;
    int dead = 0;

    if (w == NULL) {
        snprintf(t->why, sizeof t->why, "client %u: out of memory", t->idx);
        t->failed++;
        return NULL;
    }
    for (;;) {
        uint8_t *resp = NULL;
        size_t rlen = 0;
        pending *q;
        int r;

        while (!dead && count < t->depth && n < t->max &&
               !atomic_load(&L.stop)) {
            if (conn == NULL) {
                r = sz_connect(t->cl, "127.0.0.1", D.port, NULL, 0, &conn);
                if (r != SZ_OK) {
                    conn = NULL;
                    /* After SIGTERM the listener is closed: the end. */
                    if (!atomic_load(&L.signalled))
                        load_fail(t, n, "connect", r);
                    goto out;
                }
            }
            q = &w[(head + count) % WINDOW];
            q->n = n++;
            q->len = load_body(q->body, sizeof q->body, t, q->n);
            r = sz_submit(conn, (const uint8_t *)q->body, q->len, &q->id);
            if (r != SZ_OK) {
                /* Not sent (sz_submit saw the server's close first, or
                 * the write failed): not an accepted request, and only
                 * acceptable once the server is going away. */
                if (atomic_load(&L.signalled))
                    t->out[q->n] = OUT_REFUSED;
                else
                    load_fail(t, q->n, "submit", r);
                dead = 1;
                break;
            }
            count++;
        }
        if (count == 0) {
            if (!dead || t->failed)
                break; /* all done, or a failure */
            sz_conn_close(conn);
            conn = NULL;
            dead = 0;
            continue;
        }
        q = &w[head];
        r = sz_wait(conn, q->id, &resp, &rlen);
        if (load_settle(t, q, r, resp, rlen) != 0)
            dead = 1;
        sz_free(resp);
        head = (head + 1) % WINDOW;
        count--;
    }
out:
    t->n = n;
    sz_conn_close(conn);
    free(w);
    return NULL;
}

static load_thread *load_start(unsigned nthreads, unsigned max, unsigned depth,
                               const char *extra)
{
    load_thread *t = calloc(nthreads, sizeof *t);

    assert_non_null(t);
    assert_true(depth >= 1 && depth <= WINDOW);
    atomic_store(&L.stop, 0);
    atomic_store(&L.signalled, 0);
    atomic_store(&L.ok, 0);
    for (unsigned i = 0; i < nthreads; i++) {
        t[i].idx = i;
        t[i].cl = client();
        t[i].max = max;
        t[i].depth = depth;
        t[i].extra = extra;
        t[i].out = calloc(max, 1);
        assert_non_null(t[i].out);
        assert_int_equal(pthread_create(&t[i].th, NULL, load_main, &t[i]), 0);
    }
    return t;
}

/* Join the threads; fail (after joining them all) if any failed. */
static void load_join(load_thread *t, unsigned nthreads)
{
    char why[sizeof t->why] = "";
    unsigned failed = 0;

    for (unsigned i = 0; i < nthreads; i++) {
        assert_int_equal(pthread_join(t[i].th, NULL), 0);
        if (t[i].failed && failed++ == 0)
            memcpy(why, t[i].why, sizeof why);
    }
    if (failed)
        fail_msg("%u client(s) failed; first: %s", failed, why);
}

static void load_free(load_thread *t, unsigned nthreads)
{
    for (unsigned i = 0; i < nthreads; i++) {
        free(t[i].out);
        sz_client_free(t[i].cl);
    }
    free(t);
}

/*
 * The server ran exactly the requests that were answered with a response,
 * each once, and nothing else: a request refused ("shutdown"), never
 * accepted (the server's close came first) or never sent did not run.
 * Returns the number of requests that got a response.
 */
static unsigned check_executed(const load_thread *t, unsigned nthreads)
{
    executed e;
    unsigned ok = 0;
    char tok[32];

    executed_load(&e);
    for (unsigned i = 0; i < nthreads; i++) {
        for (unsigned n = 0; n < t[i].n; n++) {
            size_t want = t[i].out[n] == OUT_OK ? 1 : 0;
            token_of(tok, sizeof tok, i, n);
            assert_ran(&e, tok, want);
            ok += t[i].out[n] == OUT_OK;
        }
    }
    /* Nothing ran that the clients do not know of. */
    assert_int_equal(e.n, ok);
    executed_free(&e);
    return ok;
}

static void test_50_clients_100_requests(void **st)
{
    enum { CLIENTS = 50, REQUESTS = 100 };
    load_thread *t;
    (void)st;

    start_php("echo.php", 2, NULL);
    t = load_start(CLIENTS, REQUESTS, 2, NULL);
    load_join(t, CLIENTS);
    for (unsigned i = 0; i < CLIENTS; i++) {
        assert_int_equal(t[i].n, REQUESTS);
        assert_int_equal(t[i].ok, REQUESTS);
    }
    assert_int_equal(check_executed(t, CLIENTS), CLIENTS * REQUESTS);
    load_free(t, CLIENTS);
    assert_int_equal(st_get("requests"), CLIENTS * REQUESTS);
    assert_int_equal(st_get("backend.answered"), CLIENTS * REQUESTS);
    assert_int_equal(st_get("backend.app_errors"), 0);
    assert_int_equal(st_get("backend.crashes"), 0);
    check_all_answered();
}

/* --- a worker killed mid-request -------------------------------------------- */

/* /proc/PID/cmdline names arcangelo: about to kill a worker, not some
 * process that reused the pid. */
static int is_worker(int pid)
{
    char path[64], *cmd;
    size_t len = 0;
    int yes = 0;

    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    if ((cmd = tl_read_file(path, &len)) == NULL)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (cmd[i] == '\0')
            cmd[i] = ' ';
    yes = strstr(cmd, "arcangelo.php") != NULL;
    free(cmd);
    return yes;
}

static void test_sigkill_worker(void **st)
{
    sz_client *c;
    sz_conn *conn;
    sz_error_info ei;
    wstat w[16];
    size_t nw;
    uint32_t id = 0;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    int pid = 0, ok = 0, killed_seen = 0, r;
    char status[16384];
    executed e;
    (void)st;

    start_php("kill.php", 2, NULL);
    c = client();
    conn = connect_to(c);
    pid_in(conn, "id:k0\nquick", "quick pid=");
    assert_int_equal(sz_submit(conn, (const uint8_t *)"id:k1\nhang", 10, &id),
                     SZ_OK);
    /* Mid-request: the handler runs (a worker is "busy" as soon as the
     * request is written to it, before PHP has read it). */
    TL_POLL_UNTIL(ok, has_run("k1"), 10000);
    assert_true(ok);
    pid = busy_worker_pid();
    assert_true(pid > 0);
    assert_true(is_worker(pid));
    assert_int_equal(kill(pid, SIGKILL), 0);

    r = sz_wait(conn, id, &resp, &rlen);
    sz_last_error(&ei);
    assert_int_equal(r, SZ_ERR_SERVER_INTERNAL);
    assert_int_equal(ei.server_code, MK_ECODE_INTERNAL);
    assert_string_equal(ei.text, "worker crashed");
    assert_null(resp);
    /* The next request, on the same connection, is served. */
    assert_true(pid_in(conn, "id:k2\nquick", "quick pid=") != pid);

    /* The pool is back to its size with a new worker, the crash counted,
     * and the dead worker's slot shows how it ended. */
    TL_POLL_UNTIL(ok, pool_full(2), 10000);
    assert_true(ok);
    assert_int_equal(st_get("backend.crashes"), 1);
    assert_int_equal(st_get("backend.spawned"), 3);
    nw = workers_of(w, 16);
    assert_int_equal(nw, 2);
    for (size_t i = 0; i < nw; i++)
        assert_true(w[i].pid != pid);
    assert_int_equal(mkt_status_text(&D, status, sizeof status), 0);
    for (char *l = strstr(status, "pegasus.w"); l != NULL;
         l = strstr(l + 1, "pegasus.w")) {
        char *nl = strchr(l, '\n');
        size_t ll = nl != NULL ? (size_t)(nl - l) : strlen(l);
        killed_seen +=
            ll >= 18 && memcmp(l + ll - 18, "last_exit signal 9", 18) == 0;
    }
    assert_int_equal(killed_seen, 1);
    sz_conn_close(conn);
    sz_client_free(c);

    executed_load(&e);
    assert_ran(&e, "k0", 1);
    assert_ran(&e, "k1", 1);
    assert_ran(&e, "k2", 1);
    executed_free(&e);
    check_all_answered();
}

/* --- faults in the handler ------------------------------------------------- */

static void test_request_timeout(void **st)
{
    static const char *const args[] = {"--request_timeout_ms=1000", NULL};
    sz_client *c;
    sz_conn *conn;
    sz_error_info ei;
    uint64_t took;
    char req[64];
    int ok = 0;
    executed e;
    (void)st;

    start_php("sleep.php", 2, args);
    c = client();
    conn = connect_to(c);
    took = request_fails(conn, "id:slow\nsleep:20000", SZ_ERR_SERVER_TIMEOUT,
                         "request timed out");
    sz_last_error(&ei);
    assert_int_equal(ei.server_code, MK_ECODE_TIMEOUT);
    /* At the timeout, not when the handler would have ended (20 s): the
     * margin is for a loaded machine. */
    assert_true(took >= 900 && took < 15000);
    /* Later requests are fine, on the same connection and a new one. */
    for (int i = 0; i < 10; i++) {
        snprintf(req, sizeof req, "id:fast%d\nsleep:1", i);
        request_ok(conn, req, NULL);
    }
    sz_conn_close(conn);
    conn = connect_to(c);
    request_ok(conn, "id:fresh\nsleep:0", NULL);
    sz_conn_close(conn);
    sz_client_free(c);

    TL_POLL_UNTIL(ok, pool_full(2), 10000);
    assert_true(ok);
    assert_int_equal(st_get("backend.timeouts"), 1);
    assert_true(log_has("timed out after 1000 ms; killing the worker", NULL));
    executed_load(&e);
    assert_ran(&e, "slow", 1);
    assert_ran(&e, "fresh", 1);
    assert_int_equal(e.n, 12);
    executed_free(&e);
    check_all_answered();
}

static void test_throw(void **st)
{
    sz_client *c;
    sz_conn *conn;
    sz_error_info ei;
    int pid;
    executed e;
    (void)st;

    start_php("throw.php", 1, NULL);
    c = client();
    conn = connect_to(c);
    pid = pid_in(conn, "id:t0\nhello", "fine pid=");
    /* The client gets the generic text; the message stays in the log. */
    request_fails(conn, "id:t1\nthrow", SZ_ERR_SERVER_APP, "application error");
    sz_last_error(&ei);
    assert_int_equal(ei.server_code, MK_ECODE_APPLICATION);
    /* The same worker goes on serving. */
    assert_int_equal(pid_in(conn, "id:t2\nagain", "fine pid="), pid);
    sz_conn_close(conn);
    sz_client_free(c);

    assert_true(
        log_has("RuntimeException: the secret detail stays in the log", NULL));
    assert_true(log_has("Stack trace:", NULL));
    assert_int_equal(st_get("backend.app_errors"), 1);
    assert_int_equal(st_get("backend.crashes"), 0);
    assert_int_equal(st_get("backend.spawned"), 1);
    executed_load(&e);
    assert_ran(&e, "t0", 1);
    assert_ran(&e, "t1", 1);
    assert_ran(&e, "t2", 1);
    executed_free(&e);
    check_all_answered();
}

/* exit() in a handler: the response is what it echoed (as under PHP-FPM;
 * docs/WORKER-PROTOCOL.md), the worker ends and is replaced, the next
 * request is served by the new one. */
static void test_exit(void **st)
{
    sz_client *c;
    sz_conn *conn;
    int pid, pid2, ok = 0;
    executed e;
    (void)st;

    start_php("exit.php", 1, NULL);
    c = client();
    conn = connect_to(c);
    pid = pid_in(conn, "id:x0\nping", "alive pid=");
    request_ok(conn, "id:x1\nexit", "partial output");
    pid2 = pid_in(conn, "id:x2\nping", "alive pid=");
    assert_true(pid2 != pid);
    sz_conn_close(conn);
    sz_client_free(c);

    TL_POLL_UNTIL(ok, pool_full(1), 10000);
    assert_true(ok);
    assert_true(log_has("exit() ends the worker", NULL));
    /* A worker that announced its exit did not crash; it was replaced. */
    assert_int_equal(st_get("backend.crashes"), 0);
    assert_int_equal(st_get("backend.spawned"), 2);
    executed_load(&e);
    assert_ran(&e, "x0", 1);
    assert_ran(&e, "x1", 1);
    assert_ran(&e, "x2", 1);
    executed_free(&e);
    check_all_answered();
}

/* Fatal errors (memory_limit, E_USER_ERROR): that request gets an
 * application error, the worker ends and is replaced, the next is served. */
static void test_fatal(void **st)
{
    static const char *const args[] = {"--php_memory_limit=64M", NULL};
    sz_client *c;
    sz_conn *conn;
    int p0, p1, p2, ok = 0;
    (void)st;

    start_php("fatal.php", 1, args);
    c = client();
    conn = connect_to(c);
    p0 = pid_in(conn, "id:f0\nping", "alive pid=");
    request_fails(conn, "id:f1\noom", SZ_ERR_SERVER_APP, "application error");
    p1 = pid_in(conn, "id:f2\nping", "alive pid=");
    request_fails(conn, "id:f3\nuser", SZ_ERR_SERVER_APP, "application error");
    p2 = pid_in(conn, "id:f4\nping", "alive pid=");
    assert_true(p0 != p1 && p1 != p2 && p0 != p2);
    sz_conn_close(conn);
    sz_client_free(c);

    TL_POLL_UNTIL(ok, pool_full(1), 10000);
    assert_true(ok);
    assert_true(
        log_has("fatal error ends the worker: Allowed memory size", NULL));
    assert_true(
        log_has("fatal error ends the worker: a fatal user error", NULL));
    assert_int_equal(st_get("backend.app_errors"), 2);
    assert_int_equal(st_get("backend.crashes"), 0);
    assert_each_ran_once("f", 5);
    check_all_answered();
}

/* Output to stdout and stderr never reaches the response; it goes to
 * mkd's log, line by line, tagged with the connection and the worker. */
static void test_output(void **st)
{
    sz_client *c;
    sz_conn *conn;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    unsigned long conn_id = 0;
    char text[128], tag[64], expect[128];
    int ok = 0;
    (void)st;

    start_php("output.php", 1, NULL);
    c = client();
    conn = connect_to(c);
    assert_int_equal(
        sz_request(conn, (const uint8_t *)"id:o1\nTAG4711", 13, &resp, &rlen),
        SZ_OK);
    assert_true(rlen < sizeof text);
    memcpy(text, resp, rlen);
    text[rlen] = '\0';
    sz_free(resp);
    assert_int_equal(sscanf(text, "echoed printed returned conn=%lu", &conn_id),
                     1);
    snprintf(expect, sizeof expect, "echoed printed returned conn=%lu",
             conn_id);
    assert_string_equal(text, expect);
    /* Again: the stray output of the first request left nothing behind. */
    request_ok(conn, "id:o2\nTAG4712", expect);
    sz_conn_close(conn);
    sz_client_free(c);

    /* The output pipe is read on its own: the lines may trail the answer. */
    snprintf(tag, sizeof tag, "c%lu pegasus w0 pid ", conn_id);
    TL_POLL_UNTIL(ok,
                  log_has(tag, ": to-stdout TAG4711") &&
                      log_has(tag, ": to-stderr TAG4711") &&
                      log_has(tag, ": via-php-stdout TAG4711") &&
                      log_has(tag, "a notice TAG4711") &&
                      log_has(tag, ": to-stdout TAG4712"),
                  10000);
    if (!ok)
        fail_msg("worker output missing from the log %s", D.log);
    check_all_answered();
}

/* A leaking application is recycled by worker_max_rss_kib between
 * requests, before memory_limit would kill it: no request fails. */
static void test_leak_recycled(void **st)
{
    enum { REQUESTS = 40 };
    static const char *const args[] = {"--worker_max_rss_kib=65536", NULL};
    sz_client *c;
    sz_conn *conn;
    int pids[REQUESTS], last = 0, distinct = 0;
    unsigned maxn = 0;
    char req[32];
    (void)st;

    start_php("leak.php", 1, args);
    c = client();
    conn = connect_to(c);
    for (int i = 0; i < REQUESTS; i++) {
        uint8_t *resp = NULL;
        size_t rlen = 0;
        char text[64];
        unsigned n = 0;
        int r;

        snprintf(req, sizeof req, "id:l%d\n", i);
        r = sz_request(conn, (const uint8_t *)req, strlen(req), &resp, &rlen);
        if (r != SZ_OK)
            fail_msg("leak request %d: %s", i, sz_err_name(r));
        assert_true(rlen < sizeof text);
        memcpy(text, resp, rlen);
        text[rlen] = '\0';
        sz_free(resp);
        assert_int_equal(sscanf(text, "pid=%d n=%u", &pids[i], &n), 2);
        if (pids[i] != last) {
            distinct++;
            assert_int_equal(n, 1); /* a fresh worker */
            last = pids[i];
        }
        if (n > maxn)
            maxn = n;
    }
    sz_conn_close(conn);
    sz_client_free(c);

    /* 4 MiB a request: 40 would pass memory_limit (128M) in one worker. */
    assert_true(distinct >= 3);
    assert_true(maxn < 25);
    assert_true(st_get("backend.recycled") >= 2);
    assert_true(log_has("recycling (max_rss", NULL));
    assert_int_equal(st_get("backend.crashes"), 0);
    assert_int_equal(st_get("backend.app_errors"), 0);
    check_all_answered();
}

/* --- signals ------------------------------------------------------------------ */

/* SIGHUP three times under load: each reload starts a new generation of
 * workers and retires the old one, and no request fails. */
static void test_sighup_under_load(void **st)
{
    enum { CLIENTS = 8 };
    load_thread *t;
    unsigned before;
    int ok = 0;
    (void)st;

    start_php("sleep.php", 2, NULL);
    t = load_start(CLIENTS, 20000, 1, "sleep:3");
    TL_POLL_UNTIL(ok, atomic_load(&L.ok) >= 40, 20000);
    for (unsigned gen = 2; ok && gen <= 4; gen++) {
        before = atomic_load(&L.ok);
        if (kill(D.pid, SIGHUP) != 0) {
            ok = 0;
            break;
        }
        TL_POLL_UNTIL(ok, generation_is(gen, 2), 20000);
        if (!ok) {
            dump_status("reload incomplete");
            break;
        }
        /* Requests go on being answered by the new generation. */
        TL_POLL_UNTIL(ok, atomic_load(&L.ok) >= before + 40, 20000);
        if (!ok) {
            dump_status("no progress after a reload");
            break;
        }
    }
    atomic_store(&L.stop, 1);
    load_join(t, CLIENTS);
    assert_true(ok);
    check_executed(t, CLIENTS);
    for (unsigned i = 0; i < CLIENTS; i++)
        assert_int_equal(t[i].ok, t[i].n);
    load_free(t, CLIENTS);
    assert_int_equal(st_get("reloads"), 3);
    assert_int_equal(st_get("backend.reloads"), 3);
    /* Nothing that needs a restart changed: no warning says so. */
    assert_false(log_has("need a restart", NULL));
    assert_int_equal(st_get("backend.crashes"), 0);
    assert_int_equal(st_get("backend.timeouts"), 0);
    check_all_answered();
}

/* The configuration file of a test that reloads: just max_message. */
static void write_max_message(const char *conf, unsigned max)
{
    char text[64];
    int n = snprintf(text, sizeof text, "max_message = %u\n", max);

    assert_int_equal(tl_write_file(conf, text, (size_t)n), 0);
}

/* SIGHUP number gen (the file says max): every worker of the new
 * generation is ready, started with the new limit. */
static void reload_max_message(const char *conf, unsigned max, unsigned gen)
{
    int ok = 0;

    write_max_message(conf, max);
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    TL_POLL_UNTIL(ok, generation_is(gen, 2), 20000);
    if (!ok)
        dump_status("reload incomplete");
    assert_true(ok);
    assert_int_equal(st_get("backend.max_message"), max);
}

/* On conn, an answer of max bytes goes through and one of a byte more is
 * the application error "response too large" (the connection goes on). */
static void answers_held_to(sz_conn *conn, unsigned max)
{
    char req[32];

    grow_exact(conn, max);
    snprintf(req, sizeof req, "grow:%u", max + 1);
    request_fails(conn, req, SZ_ERR_SERVER_APP, "response too large");
}

/* A new connection, which must have been told max. */
static sz_conn *connect_told(sz_client *c, unsigned max)
{
    sz_conn *conn = connect_to(c);
    sz_conn_info info;

    sz_conn_get_info(conn, &info);
    assert_int_equal(info.max_message, max);
    return conn;
}

/*
 * SIGHUP changing max_message: the protocol (new connections) and the PHP
 * pool (its own check, and the workers it starts) take the new value
 * together. Raised, a request and an answer of the new maximum go through
 * and one byte more is refused; lowered, the same at the lower value, and
 * a connection from before it, told more, gets the application error
 * "response too large" for an answer over the new value: it is never cut.
 */
static void test_sighup_max_message(void **st)
{
    char conf[400], a_conf[420];
    const char *const args[] = {a_conf, NULL};
    sz_client *c;
    sz_conn *before, *raised, *lowered;
    (void)st;

    snprintf(conf, sizeof conf, "%s/mkd.conf", D.dir);
    snprintf(a_conf, sizeof a_conf, "--config=%s", conf);
    write_max_message(conf, 65536);
    start_php("echo.php", 2, args);
    c = client();
    before = connect_told(c, 65536);
    answers_held_to(before, 65536);

    reload_max_message(conf, 131072, 2);
    raised = connect_told(c, 131072);
    echo_exact(raised, 131072, "id:raised\n", 7);
    answers_held_to(raised, 131072);
    /* Told 65536 before the raise: held to that, and never cut. */
    answers_held_to(before, 65536);

    reload_max_message(conf, 32768, 3);
    lowered = connect_told(c, 32768);
    answers_held_to(lowered, 32768);
    /* Told 131072 and 65536, but now held to 32768, and never cut. */
    answers_held_to(raised, 32768);
    request_ok(raised, "id:still\nthere", NULL);
    answers_held_to(before, 32768);
    sz_conn_close(before);
    sz_conn_close(raised);
    sz_conn_close(lowered);
    sz_client_free(c);

    assert_int_equal(st_get("backend.protocol_errors"), 0);
    assert_int_equal(st_get("backend.crashes"), 0);
    check_all_answered();
}

/* --- reload: every setting of the pool, or a refusal ------------------- */

/* Write the test's configuration file (the whole text). */
static void write_conf(const char *conf, const char *text)
{
    assert_int_equal(tl_write_file(conf, text, strlen(text)), 0);
}

/* SIGHUP with the file now saying text; wait for generation gen of
 * `workers` ready workers. */
static void reload_to(const char *conf, const char *text, unsigned gen,
                      unsigned workers)
{
    int ok = 0;

    write_conf(conf, text);
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    TL_POLL_UNTIL(ok, generation_is(gen, workers), 20000);
    if (!ok)
        dump_status("reload incomplete");
    assert_true(ok);
    assert_int_equal(st_get("reload_failures"), 0);
}

/* The file's text for a pool of `workers` running app, with a timeout. */
static void pool_conf(char *text, size_t cap, const char *app, unsigned workers,
                      unsigned timeout_ms)
{
    snprintf(text, cap, "app = %s/%s\nworkers = %u\nrequest_timeout_ms = %u\n",
             D.dir, app, workers, timeout_ms);
}

/* "--config=DIR/mkd.conf" into arg, the path into conf. */
static void conf_paths(char *conf, size_t ccap, char *arg, size_t acap)
{
    snprintf(conf, ccap, "%s/mkd.conf", D.dir);
    snprintf(arg, acap, "--config=%s", conf);
}

/* The configuration file of a reload test, and the argument naming it. */
static char rl_conf[400], rl_arg[420];

/* mkd serving app with `workers` and a timeout from its configuration
 * file (so that a reload can change them); a connection to it. */
static sz_conn *start_from_file(const char *app, unsigned workers,
                                unsigned timeout_ms, sz_client **c)
{
    const char *const args[] = {rl_arg, NULL};
    char text[1024];

    conf_paths(rl_conf, sizeof rl_conf, rl_arg, sizeof rl_arg);
    pool_conf(text, sizeof text, app, workers, timeout_ms);
    write_conf(rl_conf, text);
    start_php_with(app, workers, args, 0);
    *c = client();
    return connect_to(*c);
}

/* SIGHUP to generation gen with the file now saying app, workers and
 * timeout_ms. */
static void reload_pool(const char *app, unsigned workers, unsigned timeout_ms,
                        unsigned gen)
{
    char text[1024];

    pool_conf(text, sizeof text, app, workers, timeout_ms);
    reload_to(rl_conf, text, gen, workers);
}

/* The end of a reload test: nothing crashed, everything answered. */
static void reload_done(sz_client *c, sz_conn *conn)
{
    sz_conn_close(conn);
    sz_client_free(c);
    assert_int_equal(st_get("backend.crashes"), 0);
    check_all_answered();
}

/* SIGHUP applies the pool's size (1 worker, then 3). A request running
 * across the reload is answered by the old generation, which retires
 * after it. */
static void test_reload_pool_size(void **st)
{
    sz_client *c;
    sz_conn *conn = start_from_file("sleep.php", 1, 30000, &c);
    uint32_t slow = send_req(conn, "id:across\nsleep:1500");
    (void)st;

    reload_pool("sleep.php", 3, 30000, 2);
    wait_ok(conn, slow, "id:across\nsleep:1500", NULL);
    assert_int_equal(st_get("backend.workers"), 3);
    reload_done(c, conn);
}

/* SIGHUP applies request_timeout_ms: a request that was fine is now
 * answered "timeout". */
static void test_reload_request_timeout(void **st)
{
    sz_client *c;
    sz_conn *conn = start_from_file("sleep.php", 1, 30000, &c);
    (void)st;

    request_ok(conn, "id:slow-ok\nsleep:2000", NULL);
    reload_pool("sleep.php", 1, 1000, 2);
    request_fails(conn, "id:too-slow\nsleep:20000", SZ_ERR_SERVER_TIMEOUT,
                  "request timed out");
    reload_done(c, conn);
}

/* SIGHUP applies app: the new generation runs the new file (env.php
 * answers a command, where sleep.php echoes it). */
static void test_reload_app(void **st)
{
    sz_client *c;
    sz_conn *conn = start_from_file("sleep.php", 1, 30000, &c);
    (void)st;

    copy_app("env.php");
    request_ok(conn, "env:NOPE", "env:NOPE");
    reload_pool("env.php", 1, 30000, 2);
    request_ok(conn, "env:NOPE", "(unset)");
    reload_done(c, conn);
}

/* The env.php answer to body on conn must be expect. */
static void env_says(sz_conn *conn, const char *body, const char *expect)
{
    request_ok(conn, body, expect);
}

/*
 * The workers' environment and php.ini settings: env[NAME], env_pass (a
 * variable of mkd's own environment), php_value and php_admin_value, and
 * nothing else of mkd's environment. The application changed precision at
 * start-up and changes it in a request; being a php_admin_value, the next
 * request sees the operator's value again. A reload applies new values.
 */
static void test_env_and_ini(void **st)
{
    char conf[400], a_conf[420];
    const char *const args[] = {a_conf, NULL};
    static const char first[] = "env[DB_PASSWORD] = s3cret one\n"
                                "env_pass = MKT_PASSED\n"
                                "php_value[serialize_precision] = 9\n"
                                "php_admin_value[precision] = 5\n";
    sz_client *c;
    sz_conn *conn;
    (void)st;

    conf_paths(conf, sizeof conf, a_conf, sizeof a_conf);
    write_conf(conf, first);
    assert_int_equal(setenv("MKT_PASSED", "from mkd", 1), 0);
    assert_int_equal(setenv("MKT_NOT_PASSED", "kept from workers", 1), 0);
    start_php("env.php", 2, args);
    c = client();
    conn = connect_to(c);
    env_says(conn, "env:DB_PASSWORD", "s3cret one");
    env_says(conn, "env:MKT_PASSED", "from mkd");
    env_says(conn, "env:MKT_NOT_PASSED", "(unset)");
    env_says(conn, "ini:serialize_precision", "9");
    env_says(conn, "ini:precision", "5"); /* start-up set 3: put back */
    /* php_value: the application's to change, and it stays changed. */
    env_says(conn, "set:serialize_precision=11", "11");
    /* php_admin_value: changed within the request, put back after it. */
    env_says(conn, "set:precision=7", "7");
    for (int i = 0; i < 4; i++) /* whichever worker answers */
        env_says(conn, "ini:precision", "5");
    assert_true(log_has("php_admin_value precision was changed", NULL));
    /* The secret never reaches the log. */
    assert_false(log_has("s3cret", NULL));

    reload_to(conf,
              "env[DB_PASSWORD] = s3cret two\n"
              "php_value[serialize_precision] = 12\n"
              "php_admin_value[precision] = 6\n",
              2, 2);
    env_says(conn, "env:DB_PASSWORD", "s3cret two");
    env_says(conn, "env:MKT_PASSED", "(unset)");
    env_says(conn, "ini:serialize_precision", "12");
    env_says(conn, "ini:precision", "6");
    sz_conn_close(conn);
    sz_client_free(c);
    (void)unsetenv("MKT_PASSED");
    (void)unsetenv("MKT_NOT_PASSED");
    assert_false(log_has("s3cret", NULL));
    assert_int_equal(st_get("backend.crashes"), 0);
}

/* SIGHUP with base and line in the file must be refused, its message
 * holding why; the pool keeps generation 1 and answers on conn. */
static void reload_refused(sz_conn *conn, const char *base, const char *line,
                           const char *why, long long failures)
{
    char text[2048];
    int ok = 0;

    snprintf(text, sizeof text, "%s%s", base, line);
    write_conf(rl_conf, text);
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    TL_POLL_UNTIL(ok, st_get("reload_failures") == failures, 20000);
    assert_true(ok);
    assert_true(log_has("reload refused", why));
    assert_int_equal(st_get("backend.generation"), 1);
    assert_int_equal(st_get("backend.reloads"), 0);
    request_ok(conn, "id:still", "id:still");
}

/*
 * A reload that changes an option needing a restart is refused, naming
 * it, and so is one with a bad value; mkd keeps running on the old
 * configuration, the pool untouched.
 */
static void test_reload_refused(void **st)
{
    char base[1024];
    sz_client *c;
    sz_conn *conn = start_from_file("echo.php", 1, 30000, &c);
    (void)st;

    pool_conf(base, sizeof base, "echo.php", 2, 30000); /* would apply */
    reload_refused(conn, base, "backlog = 100\n",
                   "backlog changed, and it needs a restart", 1);
    reload_refused(conn, base, "env[1BAD] = x\n",
                   "env[1BAD]: not a variable name", 2);
    reload_refused(conn, base, "php_value[display_errors] = 1\n",
                   "php_value[display_errors]: Arcangelo sets it itself", 3);
    reload_refused(conn, base, "arcangelo = /nonexistent/a.php\n",
                   "arcangelo /nonexistent/a.php", 4);
    assert_int_equal(st_get("backend.workers"), 1);
    reload_done(c, conn);
}

/*
 * SIGTERM under load. What "every accepted request is answered" means
 * here, per request a client submitted (sz_submit returned SZ_OK):
 *   - it ends in exactly one of: its correct response; the authenticated
 *     error SZ_ERR_SERVER_SHUTDOWN (it arrived after the signal); or
 *     SZ_ERR_CLOSED, the server's authenticated close record, which the
 *     server sends only when everything it accepted on that connection has
 *     been answered: a request behind it was never accepted;
 *   - never SZ_ERR_IO, SZ_ERR_TIMEOUT or a protocol error, and no hang
 *     (the client's I/O timeout would turn one into SZ_ERR_TIMEOUT);
 *   - it ran on the server (executed.log) exactly once if it got its
 *     response, and not at all otherwise.
 * A connect or submit that fails after the signal is no accepted request
 * (the listener is closed); before it, any failure fails the test. mkd
 * drains within shutdown_timeout_ms (no deadline was needed) and exits 0.
 */
static void test_sigterm_under_load(void **st)
{
    enum { CLIENTS = 12 };
    load_thread *t;
    unsigned after = 0, total = 0, refused = 0, n_ok = 0, n_shut = 0,
             n_closed = 0, n_unsent = 0;
    uint64_t t0;
    int ok = 0, s;
    (void)st;

    start_php("sleep.php", 2, NULL);
    t = load_start(CLIENTS, 20000, 2, "sleep:15");
    TL_POLL_UNTIL(ok, atomic_load(&L.ok) >= 60, 20000);
    if (!ok) {
        /* No client thread may outlive the test. */
        atomic_store(&L.stop, 1);
        load_join(t, CLIENTS);
        fail_msg("the clients made no progress (log %s)", D.log);
    }
    atomic_store(&L.signalled, 1); /* before the signal: see load_main */
    t0 = tl_now_ms();
    assert_int_equal(kill(D.pid, SIGTERM), 0);
    load_join(t, CLIENTS);
    s = mkt_daemon_stop(&D, 0, 20000); /* signal 0: wait for the exit */
    assert_true(s >= 0 && WIFEXITED(s));
    assert_int_equal(WEXITSTATUS(s), 0);
    assert_true(tl_now_ms() - t0 < 10000);

    for (unsigned i = 0; i < CLIENTS; i++) {
        after += t[i].ok_after_signal;
        for (unsigned n = 0; n < t[i].n; n++) {
            total += t[i].out[n] != OUT_NONE;
            n_ok += t[i].out[n] == OUT_OK;
            n_shut += t[i].out[n] == OUT_SHUTDOWN;
            n_closed += t[i].out[n] == OUT_CLOSED;
            n_unsent += t[i].out[n] == OUT_REFUSED;
        }
    }
    refused = n_shut + n_closed + n_unsent;
    fprintf(stderr,
            "SIGTERM under load: %u requests: %u answered (%u of "
            "them after the signal), %u \"shutdown\", %u behind the "
            "server's close, %u not sent\n",
            total, n_ok, after, n_shut, n_closed, n_unsent);
    /* Requests in flight at the signal were answered with their
     * responses, not cut. */
    assert_true(after >= 1);
    check_executed(t, CLIENTS);
    load_free(t, CLIENTS);
    assert_true(total > refused);
    assert_true(log_has("pegasus: drained", NULL));
    assert_false(log_has("shutdown deadline", NULL));
    assert_true(log_has("exit 0", NULL));
}

/*
 * Requests outliving shutdown_timeout_ms: one running in the (only)
 * worker, one queued behind it. At the deadline both are answered with an
 * authenticated error (not a cut connection): the running one "timeout"
 * (it may have run), the queued one "shutdown" (it did not: a client may
 * send it elsewhere, docs/PROTOCOL.md §8.5). Then the connections close
 * and mkd exits 0.
 */
static void test_shutdown_deadline(void **st)
{
    static const char *const args[] = {"--shutdown_timeout_ms=1500", NULL};
    sz_client *c;
    sz_conn *a, *b;
    sz_error_info ei;
    uint32_t ida = 0, idb = 0;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    uint64_t t0, took;
    int ok = 0, s;
    executed e;
    (void)st;

    start_php("sleep.php", 1, args);
    c = client();
    a = connect_to(c);
    b = connect_to(c);
    assert_int_equal(
        sz_submit(a, (const uint8_t *)"id:d1\nsleep:30000", 17, &ida), SZ_OK);
    TL_POLL_UNTIL(ok, has_run("d1"), 10000);
    assert_true(ok);
    assert_int_equal(
        sz_submit(b, (const uint8_t *)"id:d2\nsleep:30000", 17, &idb), SZ_OK);
    TL_POLL_UNTIL(ok, st_get("backend.queued") == 1, 10000);
    assert_true(ok);

    t0 = tl_now_ms();
    assert_int_equal(kill(D.pid, SIGTERM), 0);
    assert_int_equal(sz_wait(a, ida, &resp, &rlen), SZ_ERR_SERVER_TIMEOUT);
    sz_last_error(&ei);
    assert_int_equal(ei.server_code, MK_ECODE_TIMEOUT);
    took = tl_now_ms() - t0;
    assert_int_equal(sz_wait(b, idb, &resp, &rlen), SZ_ERR_SERVER_SHUTDOWN);
    /* At the deadline (1.5 s), not when the handler would have ended
     * (30 s); the margin is for a loaded machine. */
    assert_true(took >= 1400 && took < 20000);
    /* Then each connection ends with the server's authenticated close. */
    assert_int_equal(sz_request(a, (const uint8_t *)"x", 1, &resp, &rlen),
                     SZ_ERR_CLOSED);
    assert_int_equal(sz_request(b, (const uint8_t *)"x", 1, &resp, &rlen),
                     SZ_ERR_CLOSED);
    sz_conn_close(a);
    sz_conn_close(b);
    sz_client_free(c);
    s = mkt_daemon_stop(&D, 0, 10000);
    assert_true(s >= 0 && WIFEXITED(s));
    assert_int_equal(WEXITSTATUS(s), 0);
    assert_true(log_has("shutdown deadline", NULL));

    executed_load(&e);
    assert_ran(&e, "d1", 1); /* it was running */
    assert_ran(&e, "d2", 0); /* it was still queued */
    executed_free(&e);
}

/* The same deadline with the echo backend (no PHP): the fix is Yugi's, for
 * any backend. */
static void test_shutdown_deadline_echo(void **st)
{
    static const char *const args[] = {"--echo_delay_ms=30000",
                                       "--shutdown_timeout_ms=500", NULL};
    sz_client *c;
    sz_conn *a;
    uint32_t id = 0;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    uint64_t t0, took;
    int ok = 0, s;
    (void)st;

    if (mkt_daemon_start(&D, args) != 0) /* mkt's default: --backend=echo */
        fail_msg("mkd did not start (log %s)", D.log);
    c = client();
    a = connect_to(c);
    assert_int_equal(sz_submit(a, (const uint8_t *)"slow", 4, &id), SZ_OK);
    TL_POLL_UNTIL(ok, st_get("backend.queued") == 1, 10000);
    assert_true(ok);
    t0 = tl_now_ms();
    assert_int_equal(kill(D.pid, SIGTERM), 0);
    assert_int_equal(sz_wait(a, id, &resp, &rlen), SZ_ERR_SERVER_SHUTDOWN);
    took = tl_now_ms() - t0;
    assert_true(took >= 400 && took < 20000); /* not the 30 s echo delay */
    sz_conn_close(a);
    sz_client_free(c);
    s = mkt_daemon_stop(&D, 0, 10000);
    assert_true(s >= 0 && WIFEXITED(s));
    assert_int_equal(WEXITSTATUS(s), 0);
}

/* --- privilege separation ----------------------------------------------- */

/* A copy of Arcangelo and the probe application that the workers' user
 * can read wherever the source tree sits: dir/php. */
static void php_tree(char *arcangelo, size_t acap, char *app, size_t pcap)
{
    char cmd[1600];

    snprintf(cmd, sizeof cmd,
             "set -e; mkdir -p '%s/php'; cp -R '%s' '%s/php/arcangelo'; "
             "cp '%s/probe.php' '%s/php/'; chmod -R a+rX '%s/php'",
             D.dir, MKT_ARCANGELO_DIR, D.dir, MKT_APPS_DIR, D.dir, D.dir);
    assert_int_equal(system(cmd), 0);
    snprintf(arcangelo, acap, "--arcangelo=%s/php/arcangelo/bin/arcangelo.php",
             D.dir);
    snprintf(app, pcap, "--app=%s/php/probe.php", D.dir);
}

/* The owner of path (uid), -1 if it cannot be read. */
static long owner_of(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? (long)sb.st_uid : -1;
}

/* Every line of the probe's report says "denied", but its uid line. */
static void check_probe(const char *report, size_t len)
{
    char *text = strndup(report, len), *line, *save = NULL;
    int lines = 0;

    assert_non_null(text);
    fprintf(stderr, "probe:\n%s", text);
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save), lines++) {
        if (strncmp(line, "uid ", 4) == 0)
            assert_string_equal(line, "uid 33"); /* www-data */
        else if (strstr(line, " denied") == NULL)
            fail_msg("the application got through: %s", line);
    }
    assert_int_equal(lines, 10);
    free(text);
}

/* As root: mkd as nobody, one worker as www-data started by the spawner,
 * running the arcangelo and app arguments given, plus extra (or NULL);
 * return when the worker is ready. */
static void start_separated(const char *a_arc, const char *a_app,
                            const char *extra)
{
    const char *args[12];
    size_t n = 0;
    int ok = 0;

    snprintf(D.data, sizeof D.data, "%s/data", D.dir);
    args[n++] = "--backend=php";
    args[n++] = "--php=" MKT_PHP;
    args[n++] = "--user=nobody";
    args[n++] = "--worker_user=www-data";
    args[n++] = "--workers=1";
    args[n++] = a_arc;
    args[n++] = a_app;
    if (extra != NULL)
        args[n++] = extra;
    args[n] = NULL;
    if (mkt_daemon_start(&D, args) != 0)
        fail_msg("mkd did not start (log %s)", D.log);
    TL_POLL_UNTIL(ok, pool_full(1), 30000);
    assert_true(ok);
}

/*
 * Started as root with user = nobody and worker_user = www-data, on its
 * first run (it makes its data directory and keys): mkd runs as nobody,
 * the spawner as root, the application as www-data. A hostile application
 * tries to read the private key, the ticket keys, the data directory, the
 * control socket, mkd's memory and environment, and to stop mkd and its
 * own parent: every attempt is denied, the daemon keeps serving, the files
 * it made belong to nobody, and a reload after that first run reads them.
 */
static void test_privilege_separation(void **st)
{
    char a_arc[600], a_app[600], body[2048], key[400];
    uint8_t *resp = NULL;
    size_t rlen = 0;
    sz_client *c;
    sz_conn *conn;
    int ok = 0;
    (void)st;

    if (geteuid() != 0)
        skip();
    php_tree(a_arc, sizeof a_arc, a_app, sizeof a_app);
    start_separated(a_arc, a_app, NULL);

    snprintf(key, sizeof key, "%s/server.pem", D.data);
    snprintf(body, sizeof body,
             "mkd:%ld\nkey:%s\ntickets:%s/ticket.keys\ndata:%s\n"
             "socket:%s\n",
             (long)D.pid, key, D.data, D.data, D.ctl);
    c = client();
    conn = connect_to(c);
    assert_int_equal(
        sz_request(conn, (const uint8_t *)body, strlen(body), &resp, &rlen),
        SZ_OK);
    check_probe((const char *)resp, rlen);
    sz_free(resp);

    /* Unharmed: it answers again, and its files are nobody's. */
    assert_int_equal(
        sz_request(conn, (const uint8_t *)"mkd:0\n", 6, &resp, &rlen), SZ_OK);
    assert_true(rlen > 6 && memcmp(resp, "uid 33\n", 7) == 0);
    sz_free(resp);
    sz_conn_close(conn);
    sz_client_free(c);
    assert_true(st_get("connections") >= 0);
    assert_int_equal(owner_of(key), 65534);
    assert_int_equal(owner_of(D.data), 65534);
    assert_int_equal(owner_of(D.ctl), 65534);
    /* The first reload after that first run reads the keys again. */
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    TL_POLL_UNTIL(ok, st_get("reloads") == 1, 10000);
    assert_true(ok);
    assert_int_equal(st_get("reload_failures"), 0);
}

/*
 * With privilege separation the root spawner builds the workers' command
 * from its own reading of the configuration: the workers still get
 * env[...], env_pass and the php.ini settings, and a reload that changes
 * them reaches the next generation (mkd and the spawner agree on the new
 * settings).
 */
static void test_env_under_spawner(void **st)
{
    char a_arc[600], a_app[600], conf[400], a_conf[420], cmd[1200];
    sz_client *c;
    sz_conn *conn;
    (void)st;

    if (geteuid() != 0)
        skip();
    php_tree(a_arc, sizeof a_arc, a_app, sizeof a_app);
    snprintf(cmd, sizeof cmd,
             "cp '%s/env.php' '%s/php/' && chmod a+r '%s/php/env.php'",
             MKT_APPS_DIR, D.dir, D.dir);
    assert_int_equal(system(cmd), 0);
    snprintf(a_app, sizeof a_app, "--app=%s/php/env.php", D.dir);
    conf_paths(conf, sizeof conf, a_conf, sizeof a_conf);
    write_conf(conf, "env[DB_PASSWORD] = one\nenv_pass = MKT_PASSED\n"
                     "php_admin_value[precision] = 5\n");
    assert_int_equal(chmod(conf, 0644), 0); /* mkd reads it as nobody */
    assert_int_equal(setenv("MKT_PASSED", "from mkd", 1), 0);
    start_separated(a_arc, a_app, a_conf);
    (void)unsetenv("MKT_PASSED");
    c = client();
    conn = connect_to(c);
    request_ok(conn, "env:DB_PASSWORD", "one");
    request_ok(conn, "env:MKT_PASSED", "from mkd");
    request_ok(conn, "ini:precision", "5");
    reload_to(conf, "env[DB_PASSWORD] = two\nphp_value[precision] = 8\n", 2, 1);
    request_ok(conn, "env:DB_PASSWORD", "two");
    request_ok(conn, "env:MKT_PASSED", "(unset)");
    request_ok(conn, "ini:precision", "3"); /* a php_value: start-up set 3 */
    sz_conn_close(conn);
    sz_client_free(c);
    assert_false(log_has("one", "DB_PASSWORD"));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, mkt_setup, mkt_teardown)
    const struct CMUnitTest tests[] = {
        T(test_hello_world),
        T(test_sizes),
        T(test_answer_over_max),
        T(test_50_clients_100_requests),
        T(test_sigkill_worker),
        T(test_request_timeout),
        T(test_throw),
        T(test_exit),
        T(test_fatal),
        T(test_output),
        T(test_leak_recycled),
        T(test_sighup_under_load),
        T(test_sighup_max_message),
        T(test_reload_pool_size),
        T(test_reload_request_timeout),
        T(test_reload_app),
        T(test_env_and_ini),
        T(test_reload_refused),
        T(test_sigterm_under_load),
        T(test_shutdown_deadline),
        T(test_shutdown_deadline_echo),
        T(test_privilege_separation),
        T(test_env_under_spawner),
    };
#undef T
    /* MKT_FILTER=test_exit (a cmocka pattern) runs some of them. */
    if (getenv("MKT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("MKT_FILTER"));
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("mkd_php", tests, NULL, NULL);
}
