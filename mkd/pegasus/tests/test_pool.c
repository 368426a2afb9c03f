/*
 * test_pool.c -- Pegasus through real PHP workers (Arcangelo and the test
 * applications in arcangelo/tests/apps/), driven by a libuv loop in this
 * process, through the mkd_backend API only. No network.
 *
 *   test_pegasus GROUP     GROUP: basic faults limits lifecycle load
 *
 * Every answer is checked to arrive exactly once (on_done fails a second
 * one); every test ends with free() and uv_loop_close(), so a leaked
 * handle or an unreaped worker fails it too.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "mkd_log.h"
#include "pegasus.h"
#include "testlib.h"

#define ROOT      PEGASUS_TEST_ROOT
#define APPS      ROOT "/arcangelo/tests/apps"
#define ARCANGELO ROOT "/arcangelo/bin/arcangelo.php"

/* ------------------------------------------------------------------ */
/* Harness                                                             */

typedef struct ans ans;
struct ans {
    int count; /* answers received: must end at exactly 1 */
    unsigned status;
    uint8_t *body;
    size_t len;
    char text[1100];
    void (*then)(ans *a); /* called after each answer (load tests) */
    void *user;
    mkd_backend_timing timing; /* as the answer reported it */
};

static uv_loop_t loop;
/* Load tests: "echo" answers at once; "slowecho" after 2 ms. */
static const char *load_verb = "echo";
static mkd_backend *B;
static uv_timer_t poll_timer;
static unsigned outstanding;
static int double_answers;

static void on_done(void *token, mkd_backend_status status, const uint8_t *body,
                    size_t len, const char *text,
                    const mkd_backend_timing *timing)
{
    ans *a = token;

    a->count++;
    assert_non_null(timing);
    a->timing = *timing;
    if (a->count > 1) {
        double_answers++;
        return;
    }
    outstanding--;
    a->status = status;
    free(a->body);
    a->body = malloc(len + 1);
    assert_non_null(a->body);
    if (len > 0)
        memcpy(a->body, body, len);
    a->body[len] = '\0';
    a->len = len;
    a->text[0] = '\0';
    if (text != NULL)
        snprintf(a->text, sizeof a->text, "%s", text);
    if (a->then != NULL)
        a->then(a);
}

static void ans_reset(ans *a)
{
    free(a->body);
    a->body = NULL;
    a->count = 0;
    a->status = 999;
    a->len = 0;
    a->text[0] = '\0';
}

static mkd_backend_status submit_n(ans *a, const void *body, size_t len)
{
    mkd_request_ctx ctx;
    uint8_t *copy = malloc(len ? len : 1);
    mkd_backend_status r;

    assert_non_null(copy);
    memcpy(copy, body, len);
    memset(&ctx, 0, sizeof ctx);
    ctx.conn_id = 4242;
    ctx.request_id = 17;
    snprintf(ctx.peer_addr, sizeof ctx.peer_addr, "2001:db8::7");
    ctx.peer_port = 5555;
    for (int i = 0; i < 16; i++)
        ctx.session_id[i] = (uint8_t)(0xa0 + i);
    ctx.early = 1;
    ans_reset(a);
    r = B->ops->submit(B, &ctx, copy, len, on_done, a);
    if (r == 0)
        outstanding++;
    return r;
}

static mkd_backend_status submit(ans *a, const char *cmd)
{
    return submit_n(a, cmd, strlen(cmd));
}

static void on_poll(uv_timer_t *t)
{
    (void)t; /* only wakes the loop so that predicates are re-checked */
}

/* Run the loop until pred() holds; fail after ms, stretched for slow
 * builds and TL_TIMEOUT_SCALE (testlib.h). Deadlines are what a machine
 * with both cores busy needs, not what an idle one takes. */
static void run_until(int (*pred)(void *), void *arg, unsigned ms,
                      const char *what)
{
    uint64_t deadline;

    ms = tl_deadline_ms(ms);
    uv_update_time(&loop);
    deadline = uv_now(&loop) + ms;
    while (!pred(arg)) {
        if (uv_now(&loop) >= deadline)
            fail_msg("timed out after %u ms waiting for %s", ms, what);
        (void)uv_run(&loop, UV_RUN_ONCE);
    }
}

static int p_answered(void *arg)
{
    return ((ans *)arg)->count > 0;
}

static int p_none_outstanding(void *arg)
{
    (void)arg;
    return outstanding == 0;
}

/* Run the loop for ms: only to watch what happens over a span of time
 * (a rate, or that something does not happen), never to wait for an
 * event. */
static void run_for(uint64_t ms)
{
    uint64_t end;

    uv_update_time(&loop);
    end = uv_now(&loop) + ms;
    while (uv_now(&loop) < end)
        (void)uv_run(&loop, UV_RUN_ONCE);
}

static char status_buf[16384];

static const char *status(void)
{
    size_t n = B->ops->status(B, status_buf, sizeof status_buf);
    assert_true(n < sizeof status_buf);
    status_buf[n] = '\0';
    return status_buf;
}

/* A "backend.KEY N" value from the status block. */
static long sval(const char *key)
{
    const char *s = status();
    size_t kl = strlen(key);

    for (const char *l = s; *l != '\0';) {
        const char *nl = strchr(l, '\n');
        if (strncmp(l, key, kl) == 0 && l[kl] == ' ')
            return strtol(l + kl + 1, NULL, 10);
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    fail_msg("no %s in status:\n%s", key, s);
    return -1;
}

/* Pids of workers in a state ("busy", "idle", ... or NULL for any live),
 * from the status block. */
static size_t pids(const char *state, int *out, size_t cap)
{
    const char *s = status();
    size_t n = 0;

    for (const char *l = s; l != NULL && *l != '\0';) {
        int slot, pid;
        char st[32];
        if (sscanf(l, "pegasus.w%d pid %d state %31s", &slot, &pid, st) == 3 &&
            pid > 0 && strcmp(st, "empty") != 0 &&
            (state == NULL ? strcmp(st, "stopping") != 0
                           : strcmp(st, state) == 0) &&
            n < cap)
            out[n++] = pid;
        l = strchr(l, '\n');
        if (l != NULL)
            l++;
    }
    return n;
}

static long want_idle;

static int p_idle(void *arg)
{
    (void)arg;
    return sval("backend.workers_idle") == want_idle &&
           sval("backend.workers") == want_idle;
}

static void wait_idle(long n, unsigned ms)
{
    want_idle = n;
    run_until(p_idle, NULL, ms, "the pool to be idle at full size");
}

typedef struct at_least {
    const char *key;
    long n;
} at_least;

static int p_at_least(void *arg)
{
    const at_least *a = arg;

    return sval(a->key) >= a->n;
}

/* Run the loop until the status value key is at least n. */
static void wait_sval(const char *key, long n, unsigned ms)
{
    at_least a = {key, n};

    run_until(p_at_least, &a, ms, key);
}

static pegasus_config cfg;

static void cfg_reset(const char *app)
{
    pegasus_config_defaults(&cfg);
    cfg.php = PEGASUS_TEST_PHP;
    cfg.arcangelo = ARCANGELO;
    cfg.app = app;
    cfg.workers_min = 2;
    cfg.request_timeout_ms = 10000;
    cfg.stop_timeout_ms = 2000;
}

/* pegasus_new on cfg: the pool, or NULL with the reason in d. */
static mkd_backend *pool_new(mkd_diag *d)
{
    mkd_backend *b = NULL;

    return pegasus_new(&loop, &cfg, &b, d) == MKD_OK ? b : NULL;
}

static void start_pool(void)
{
    mkd_diag d;

    B = pool_new(&d);
    if (B == NULL)
        fail_msg("pegasus_new: %s", d.text);
    wait_idle(cfg.workers_min, 20000);
}

static int setup(void **state)
{
    (void)state;
    load_verb = "echo";
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_timer_init(&loop, &poll_timer), 0);
    assert_int_equal(uv_timer_start(&poll_timer, on_poll, 20, 20), 0);
    B = NULL;
    outstanding = 0;
    double_answers = 0;
    cfg_reset(APPS "/testapp.php");
    return 0;
}

static void on_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "leftover handle type %s active %d\n",
            uv_handle_type_name(uv_handle_get_type(h)), uv_is_active(h));
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    uint64_t deadline;
    int r;

    (void)state;
    if (B != NULL) {
        B->ops->free(B);
        B = NULL;
    }
    uv_close((uv_handle_t *)&poll_timer, NULL);
    /* Workers are killed; the loop reaps them and closes everything, in
     * well under a second on an idle machine, or something leaks. */
    deadline = tl_now_ms() + tl_deadline_ms(10000);
    while (uv_loop_alive(&loop) && tl_now_ms() < deadline) {
        (void)uv_run(&loop, UV_RUN_NOWAIT);
        tl_sleep_ms(2);
    }
    r = uv_loop_alive(&loop);
    if (r) {
        uv_walk(&loop, on_walk, NULL);
        uv_walk(&loop, close_any, NULL); /* so that the next test can run */
        (void)uv_run(&loop, UV_RUN_DEFAULT);
    }
    assert_int_equal(r, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(double_answers, 0);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Log capture (worker output goes to MKD's log, i.e. our stderr)      */

static int saved_stderr = -1;
static char log_path[] = "/tmp/pegasus-test-log-XXXXXX";

static void capture_start(void)
{
    int fd = mkstemp(log_path);

    assert_true(fd >= 0);
    saved_stderr = dup(2);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fd, 2) >= 0);
    assert_int_equal(close(fd), 0);
}

/* What the log holds so far. */
static char *capture_text(void)
{
    static char buf[65536];
    int fd;
    ssize_t n;

    fd = open(log_path, O_RDONLY);
    assert_true(fd >= 0);
    n = read(fd, buf, sizeof buf - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    assert_int_equal(close(fd), 0);
    return buf;
}

/* The log holds the text arg. */
static int p_logged(void *arg)
{
    return strstr(capture_text(), arg) != NULL;
}

static char *capture_end(void)
{
    char *log;

    assert_true(dup2(saved_stderr, 2) >= 0);
    assert_int_equal(close(saved_stderr), 0);
    log = capture_text();
    assert_int_equal(unlink(log_path), 0);
    memcpy(log_path + strlen(log_path) - 6, "XXXXXX", 6);
    return log;
}

/* ------------------------------------------------------------------ */
/* basic                                                               */

static void test_hello_world(void **state)
{
    ans a = {0};

    (void)state;
    cfg_reset(ROOT "/apps/hello/app.php");
    start_pool();
    assert_int_equal(submit(&a, "hi"), 0);
    run_until(p_answered, &a, 5000, "hello");
    assert_int_equal(a.status, 0);
    assert_true(strncmp((char *)a.body, "Hello, world!\n", 14) == 0);
    assert_non_null(strstr((char *)a.body, "You are 2001:db8::7 port 5555"));
    assert_non_null(strstr((char *)a.body, "request 17 of session a0a1a2a3 "
                                           "(early), 2 bytes"));
    ans_reset(&a);
}

static void test_context_and_echo(void **state)
{
    ans a = {0};

    (void)state;
    start_pool();
    assert_int_equal(submit(&a, "ctx"), 0);
    run_until(p_answered, &a, 5000, "ctx");
    assert_int_equal(a.status, 0);
    {
        const char *want =
            "{\"request_id\":17,\"connection_id\":4242,"
            "\"client_address\":\"2001:db8::7\",\"client_port\":"
            "5555,\"session_id\":\"a0a1a2a3a4a5a6a7a8a9aaabacadae"
            "af\",\"early\":true,\"worker_id\":";
        assert_true(strncmp((char *)a.body, want, strlen(want)) == 0);
    }
    assert_int_equal(submit(&a, "mixed"), 0);
    run_until(p_answered, &a, 5000, "mixed");
    assert_string_equal((char *)a.body, "ab");
    assert_int_equal(submit_n(&a, "echo:\0\1\2", 8), 0);
    run_until(p_answered, &a, 5000, "binary");
    assert_int_equal(a.len, 3);
    assert_memory_equal(a.body, "\0\1\2", 3);
    assert_int_equal(submit(&a, ""), 0);
    run_until(p_answered, &a, 5000, "empty");
    assert_string_equal((char *)a.body, "unknown command ");
    /* The answer says which worker ran it and for how long: at least the
     * 30 ms it slept. */
    assert_int_equal(submit(&a, "pidsleep:30"), 0);
    run_until(p_answered, &a, 5000, "pidsleep");
    assert_int_equal(a.timing.worker_pid, atoi((char *)a.body));
    assert_true(a.timing.run_us >= 30000);
    ans_reset(&a);
}

/* 1 MiB requests and responses, up to exactly the configured maximum. */
static void test_big(void **state)
{
    const size_t max = 1u << 20;
    uint8_t *big = malloc(max + 1);
    ans a = {0};
    char cmd[64];

    (void)state;
    assert_non_null(big);
    memcpy(big, "echo:", 5);
    for (size_t i = 5; i < max + 1; i++)
        big[i] = (uint8_t)(i * 2654435761u >> 13);
    cfg.max_message = (uint32_t)max;
    start_pool();
    /* A request of exactly max_message, echoed back. */
    assert_int_equal(submit_n(&a, big, max), 0);
    run_until(p_answered, &a, 10000, "1 MiB echo");
    assert_int_equal(a.status, 0);
    assert_int_equal(a.len, max - 5);
    assert_memory_equal(a.body, big + 5, max - 5);
    /* A response of exactly max_message. */
    snprintf(cmd, sizeof cmd, "big:%zu", max);
    assert_int_equal(submit(&a, cmd), 0);
    run_until(p_answered, &a, 10000, "1 MiB response");
    assert_int_equal(a.status, 0);
    assert_int_equal(a.len, max);
    /* One byte more either way. */
    assert_int_equal(submit_n(&a, big, max + 1), MKD_BACKEND_TOO_LARGE);
    snprintf(cmd, sizeof cmd, "big:%zu", max + 1);
    assert_int_equal(submit(&a, cmd), 0);
    run_until(p_answered, &a, 10000, "oversize response");
    assert_int_equal(a.status, MKD_BACKEND_APPLICATION);
    assert_string_equal(a.text, "response too large");
    /* And the worker is fine afterwards. */
    assert_int_equal(submit(&a, "echo:ok"), 0);
    run_until(p_answered, &a, 5000, "after big");
    assert_string_equal((char *)a.body, "ok");
    free(big);
    ans_reset(&a);
}

/* The line of log holding needle also holds want. */
static int line_has(const char *log, const char *needle, const char *want)
{
    const char *at = strstr(log, needle), *start, *end;

    if (at == NULL)
        return 0;
    for (start = at; start > log && start[-1] != '\n'; start--)
        ;
    end = strchr(at, '\n');
    if (end == NULL)
        end = at + strlen(at);
    at = strstr(start, want);
    return at != NULL && at < end;
}

static void test_output_to_log(void **state)
{
    ans a = {0};
    const char *log;
    int pid[4];
    char want[64];

    (void)state;
    start_pool();
    capture_start();
    assert_int_equal(submit(&a, "noisy"), 0);
    run_until(p_answered, &a, 5000, "noisy");
    assert_int_equal(pids("idle", pid, 4), 2);
    /* The output pipe may trail the answer. */
    run_until(p_logged, ": to-stdout", 5000, "stdout in the log");
    run_until(p_logged, ": to-stderr", 5000, "stderr in the log");
    run_until(p_logged, "PHP Warning: careful", 5000, "the warning");
    log = capture_end();
    assert_int_equal(a.status, 0);
    assert_string_equal((char *)a.body, "noisy-ok");
    /* Both lines, tagged with the worker and the request's connection. */
    assert_non_null(strstr(log, "c4242 pegasus w"));
    assert_non_null(strstr(log, ": to-stdout"));
    assert_non_null(strstr(log, ": to-stderr"));
    assert_non_null(strstr(log, "PHP Warning: careful"));
    /* At their levels: Arcangelo tags its warning (<4>, dropped from the
     * log); untagged output is info. */
    assert_non_null(strstr(log, "mkd warn  c4242 pegasus w"));
    assert_non_null(strstr(log, ": arcangelo: PHP Warning: careful"));
    assert_null(strstr(log, "<4>"));
    assert_true(line_has(log, ": to-stdout", " mkd info  c4242 pegasus w"));
    assert_true(line_has(log, ": arcangelo: PHP Warning: careful",
                         " mkd warn  c4242 pegasus w"));
    snprintf(want, sizeof want, " pid %d: to-stdout", pid[0]);
    if (strstr(log, want) == NULL) {
        snprintf(want, sizeof want, " pid %d: to-stdout", pid[1]);
        assert_non_null(strstr(log, want));
    }
    ans_reset(&a);
}

static void test_cancel_and_status(void **state)
{
    ans a = {0}, b = {0}, c = {0};
    const char *s;

    (void)state;
    cfg.workers_min = 1;
    start_pool();
    assert_int_equal(submit(&a, "sleep:300"), 0);   /* runs */
    assert_int_equal(submit(&b, "echo:queued"), 0); /* waits */
    B->ops->cancel(B, &a);
    B->ops->cancel(B, &b);
    outstanding -= 2;
    assert_int_equal(submit(&c, "echo:after"), 0);
    run_until(p_answered, &c, 5000, "after cancel");
    assert_string_equal((char *)c.body, "after");
    run_for(50);
    assert_int_equal(a.count, 0);
    assert_int_equal(b.count, 0);
    s = status();
    assert_non_null(strstr(s, "backend pegasus\n"));
    assert_non_null(strstr(s, "backend.cancelled 2\n"));
    assert_non_null(strstr(s, "pegasus.w0 pid "));
    assert_non_null(strstr(s, " state idle gen 1 served 2 rss_kib "));
    /* a ran to its end (its answer dropped); b never ran. */
    assert_true(sval("backend.answered") == 2);
    ans_reset(&c);
}

static void test_bad_config(void **state)
{
    mkd_diag d;

    (void)state;
    cfg.php = "/nonexistent/php";
    assert_null(pool_new(&d));
    assert_non_null(strstr(d.text, "/nonexistent/php"));
    cfg_reset(APPS "/no-such-app.php");
    assert_null(pool_new(&d));
    assert_non_null(strstr(d.text, "no-such-app.php"));
    cfg_reset(APPS "/testapp.php");
    cfg.workers_min = 0;
    assert_null(pool_new(&d));
    cfg_reset(APPS "/testapp.php");
    cfg.workers_max = 1;
    assert_null(pool_new(&d));
    assert_non_null(strstr(d.text, "workers_max"));
}

/* ------------------------------------------------------------------ */
/* faults                                                              */

static long want_busy;

static int p_busy(void *arg)
{
    (void)arg;
    return sval("backend.workers_busy") == want_busy;
}

static void test_sigkill_mid_request(void **state)
{
    ans a = {0}, b = {0};
    int pid[4];

    (void)state;
    start_pool();
    assert_int_equal(submit(&a, "sleep:5000"), 0);
    want_busy = 1;
    run_until(p_busy, NULL, 5000, "busy worker");
    assert_int_equal(pids("busy", pid, 4), 1);
    assert_int_equal(kill(pid[0], SIGKILL), 0);
    run_until(p_answered, &a, 5000, "the killed request's answer");
    assert_int_equal(a.status, MKD_BACKEND_INTERNAL);
    assert_string_equal(a.text, "worker crashed");
    assert_int_equal(submit(&b, "echo:next"), 0);
    run_until(p_answered, &b, 5000, "the next request");
    assert_int_equal(b.status, 0);
    assert_string_equal((char *)b.body, "next");
    wait_idle(2, 10000); /* back to full size */
    assert_true(sval("backend.crashes") == 1);
    assert_true(sval("backend.spawned") == 3);
    ans_reset(&a);
    ans_reset(&b);
}

static void test_timeout(void **state)
{
    ans a = {0}, b = {0};

    (void)state;
    cfg.request_timeout_ms = 400;
    start_pool();
    assert_int_equal(submit(&a, "sleep:5000"), 0);
    run_until(p_answered, &a, 3000, "timeout");
    assert_int_equal(a.status, MKD_BACKEND_TIMEOUT);
    assert_int_equal(submit(&b, "echo:next"), 0);
    run_until(p_answered, &b, 10000, "after timeout");
    assert_int_equal(b.status, 0);
    wait_idle(2, 10000);
    assert_true(sval("backend.timeouts") == 1);
    ans_reset(&a);
    ans_reset(&b);
}

static void test_throw(void **state)
{
    ans a = {0};

    (void)state;
    start_pool();
    assert_int_equal(submit(&a, "throw:db password is hunter2"), 0);
    run_until(p_answered, &a, 5000, "throw");
    assert_int_equal(a.status, MKD_BACKEND_APPLICATION);
    assert_string_equal(a.text, "application error"); /* not exposed */
    assert_int_equal(submit(&a, "echo:fine"), 0);
    run_until(p_answered, &a, 5000, "after throw");
    assert_int_equal(a.status, 0);
    assert_true(sval("backend.app_errors") == 1);
    assert_true(sval("backend.spawned") == 2); /* nobody restarted */
    B->ops->free(B);
    B = NULL;
    run_for(50);

    cfg.expose_errors = 1;
    start_pool();
    assert_int_equal(submit(&a, "throw:shown"), 0);
    run_until(p_answered, &a, 5000, "exposed throw");
    assert_string_equal(a.text, "RuntimeException: shown");
    ans_reset(&a);
}

static void test_exit_fatal_selfkill(void **state)
{
    ans a = {0};
    struct {
        const char *cmd;
        unsigned status;
        const char *text_or_body;
    } cases[] = {
        {"exit", 0, "partial"},
        {"fatal", MKD_BACKEND_APPLICATION, "application error"},
        {"selfkill", MKD_BACKEND_INTERNAL, "worker crashed"},
        {"recycle", 0, "bye"},
    };

    (void)state;
    start_pool();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long spawned = sval("backend.spawned");
        assert_int_equal(submit(&a, cases[i].cmd), 0);
        run_until(p_answered, &a, 10000, cases[i].cmd);
        if (a.status != cases[i].status)
            fail_msg("%s: status %u, want %u (%s)", cases[i].cmd, a.status,
                     cases[i].status, a.text);
        assert_string_equal(a.status == 0 ? (char *)a.body : a.text,
                            cases[i].text_or_body);
        /* The next request succeeds, and the pool is whole again. */
        assert_int_equal(submit(&a, "echo:next"), 0);
        run_until(p_answered, &a, 10000, "next");
        assert_int_equal(a.status, 0);
        wait_idle(2, 10000);
        assert_true(sval("backend.spawned") == spawned + 1);
    }
    ans_reset(&a);
}

/* A pool of one fake worker (fake_worker.php in the mode env names), on
 * the configuration cfg otherwise holds. */
static void start_fake(const char *const *env)
{
    cfg.arcangelo = APPS "/fake_worker.php";
    cfg.workers_min = 1;
    cfg.env = env;
    start_pool();
}

static void test_fake_workers(void **state)
{
    static const char *envs[][2] = {{"FAKE_MODE=badtag", NULL},
                                    {"FAKE_MODE=oversize", NULL},
                                    {"FAKE_MODE=garbage", NULL},
                                    {"FAKE_MODE=double", NULL}};
    static const unsigned want[] = {
        MKD_BACKEND_INTERNAL, MKD_BACKEND_APPLICATION, MKD_BACKEND_INTERNAL, 0};
    ans a = {0};

    (void)state;
    for (size_t i = 0; i < 4; i++) {
        cfg_reset(APPS "/testapp.php");
        start_fake(envs[i]);
        assert_int_equal(submit(&a, "x"), 0);
        run_until(p_answered, &a, 5000, envs[i][0]);
        if (a.status != want[i])
            fail_msg("%s: status %u (%s)", envs[i][0], a.status, a.text);
        /* The broken worker is killed and replaced ("double" breaks the
         * protocol only after its first, good, answer). */
        wait_sval("backend.protocol_errors", 1, 5000);
        wait_sval("backend.spawned", 2, 10000);
        assert_true(sval("backend.protocol_errors") == 1);
        B->ops->free(B);
        B = NULL;
        run_for(20);
    }
    ans_reset(&a);
}

/* A RESPONSE whose body is over max_message but whose frame is within the
 * frame limit (max_message + 1024) is refused too: it could not be sealed
 * for the client, whose connection, and the other requests on it, would
 * go down with it. That request gets "response too large", the worker is
 * replaced. */
static void test_response_over_max(void **state)
{
    static const char *env[] = {"FAKE_MODE=overmax", NULL};
    static const char *const over[] = {"over:1", "over:1000"};
    ans a = {0};

    (void)state;
    cfg.max_message = 4096;
    start_fake(env);
    assert_int_equal(submit(&a, "over:0"), 0);
    run_until(p_answered, &a, 5000, "a response of exactly max_message");
    assert_int_equal(a.status, 0);
    assert_int_equal(a.len, 4096);
    for (long i = 0; i < 2; i++) {
        assert_int_equal(submit(&a, over[i]), 0);
        run_until(p_answered, &a, 5000, over[i]);
        if (a.status != MKD_BACKEND_APPLICATION)
            fail_msg("%s: status %u, %zu bytes", over[i], a.status, a.len);
        assert_string_equal(a.text, "response too large");
        wait_sval("backend.protocol_errors", i + 1, 5000);
        wait_sval("backend.spawned", i + 2, 10000);
        wait_idle(1, 10000);
    }
    assert_true(sval("backend.protocol_errors") == 2);
    ans_reset(&a);
}

/* A worker tried to answer a request it had not been sent (forged): the
 * forgery reached nobody, the request the worker did hold failed, and the
 * worker was replaced. */
static void check_forgery_refused(const ans *b)
{
    if (b->status == 0)
        fail_msg("answered with \"%s\" by a worker never asked", b->body);
    assert_int_equal(b->status, MKD_BACKEND_INTERNAL);
    assert_string_equal(b->text, "worker failed");
    wait_sval("backend.protocol_errors", 1, 5000);
    wait_sval("backend.spawned", 2, 10000);
    wait_idle(1, 10000);
    assert_true(sval("backend.protocol_errors") == 1);
}

/* Two requests to a pool of one fake worker (env): the first answered as
 * `first`, the second sent after that answer is in (wait_first) or queued
 * behind the first, and answered by a forgery the worker prepared. */
static void forge_second(const char *const *env, int wait_first,
                         const char *first)
{
    ans a = {0}, b = {0};

    start_fake(env);
    assert_int_equal(submit(&a, "x"), 0);
    if (wait_first)
        run_until(p_answered, &a, 5000, "the first request");
    assert_int_equal(submit(&b, "y"), 0);
    run_until(p_answered, &b, 5000, "the second request");
    assert_int_equal(a.status, 0);
    assert_string_equal((char *)a.body, first);
    check_forgery_refused(&b);
    ans_reset(&a);
    ans_reset(&b);
}

/* The worker answers its request and then, before it is sent, the one it
 * guesses comes next (the tag that follows: what a counter would give),
 * which Pegasus reads once that request has gone to the worker. */
static void test_preanswer_next_tag(void **state)
{
    static const char *env[] = {"FAKE_MODE=preanswer", NULL};

    (void)state;
    forge_second(env, 0, "ok");
}

/* The worker starts an answer while idle and finishes it with the tag of
 * the request it gets next: an answer begun before its request was sent
 * is no answer to it, whatever its tag. */
static void test_answer_begun_before_request(void **state)
{
    static const char *env[] = {"FAKE_MODE=prefix", NULL};

    (void)state;
    forge_second(env, 1, "first");
}

/* The worker answers once it has the request's tag, before it has read
 * the body (16 MiB: far more than a socket buffer, so that the REQUEST
 * frame cannot have been written whole when the answer comes). */
static void test_answer_before_request_written(void **state)
{
    static const char *env[] = {"FAKE_MODE=early", NULL};
    const size_t len = 16u << 20;
    uint8_t *big = calloc(1, len);
    ans a = {0};

    (void)state;
    assert_non_null(big);
    cfg.max_message = (uint32_t)len;
    start_fake(env);
    assert_int_equal(submit_n(&a, big, len), 0);
    run_until(p_answered, &a, 10000, "the request");
    check_forgery_refused(&a);
    free(big);
    ans_reset(&a);
}

static void test_start_failures(void **state)
{
    static const char *v2[] = {"FAKE_MODE=version2", NULL};
    static const char *silent[] = {"FAKE_MODE=silent", NULL};
    mkd_diag d;
    const char *log;

    (void)state;
    /* A worker of another protocol version never becomes ready. */
    cfg.arcangelo = APPS "/fake_worker.php";
    cfg.env = v2;
    cfg.workers_min = 1;
    cfg.crash_loop_failures = 2;
    cfg.crash_loop_pause_ms = 60000;
    B = pool_new(&d);
    assert_non_null(B);
    /* The second failure is the crash loop: nothing starts after it. */
    wait_sval("backend.start_failures", 2, 10000);
    assert_true(sval("backend.start_failures") == 2);
    assert_true(sval("backend.workers_idle") == 0);
    assert_non_null(strstr(status(), "backend.crash_loop paused"));
    B->ops->free(B);
    B = NULL;
    run_for(20);
    /* A PHP that cannot be executed at all (here: a directory) fails in
     * uv_spawn itself: counted the same way, no spinning either. */
    cfg_reset(APPS "/testapp.php");
    cfg.php = "/tmp";
    cfg.workers_min = 3;
    cfg.crash_loop_failures = 4;
    cfg.crash_loop_pause_ms = 60000;
    capture_start();
    B = pool_new(&d);
    assert_non_null(B);
    wait_sval("backend.start_failures", 4, 10000);
    log = capture_end();
    assert_non_null(strstr(log, "cannot start /tmp: permission denied"));
    assert_true(sval("backend.start_failures") == 4);
    assert_non_null(strstr(status(), "backend.crash_loop paused"));
    B->ops->free(B);
    B = NULL;
    run_for(20);
    /* One that never says HELLO is killed at the start timeout. */
    cfg_reset(APPS "/testapp.php");
    cfg.arcangelo = APPS "/fake_worker.php";
    cfg.workers_min = 1;
    cfg.env = silent;
    cfg.start_timeout_ms = 300;
    B = pool_new(&d);
    assert_non_null(B);
    /* The next try comes after a backoff and another start timeout. */
    wait_sval("backend.start_failures", 1, 10000);
    assert_true(sval("backend.start_failures") == 1);
}

static void test_crash_loop(void **state)
{
    char link[] = "/tmp/pegasus-test-app-XXXXXX";
    char path[64];
    ans a = {0}, b = {0};
    long spawned;
    const char *log;

    (void)state;
    /* The app is a symlink, as in a symlink-swap deploy. */
    assert_non_null(mkdtemp(link));
    snprintf(path, sizeof path, "%s/app.php", link);
    assert_int_equal(symlink(APPS "/init_throws.php", path), 0);
    cfg_reset(path);
    cfg.crash_loop_failures = 3;
    cfg.crash_loop_window_ms = 5000;
    cfg.crash_loop_pause_ms = 700;
    capture_start();
    B = pool_new(NULL);
    assert_non_null(B);
    /* Queued before the loop is detected: answered with an error then. */
    assert_int_equal(submit(&a, "echo:x"), 0);
    run_until(p_answered, &a, 20000, "queued request failed");
    assert_int_equal(a.status, MKD_BACKEND_INTERNAL);
    assert_string_equal(a.text, "application unavailable");
    assert_non_null(strstr(status(), "backend.crash_loop paused"));
    /* While paused with nobody ready, a request is refused at once, and
     * the numbers say why (readiness reads them). */
    assert_int_equal(submit(&b, "echo:y"), MKD_BACKEND_OVERLOADED);
    {
        mkd_backend_stats bs;
        memset(&bs, 0, sizeof bs);
        B->ops->stats(B, &bs);
        assert_true(bs.has_workers && bs.crash_loop);
        assert_int_equal(bs.workers_idle + bs.workers_busy, 0);
        assert_true(bs.start_failures >= 3);
    }
    /* It does not spin: over ~2 s, a probe per pause, not hundreds (a
     * rate, so watched over a fixed span). */
    spawned = sval("backend.spawned");
    run_for(2000);
    assert_true(sval("backend.spawned") - spawned <= 4);
    assert_true(sval("backend.spawned") - spawned >= 1);
    log = capture_end();
    assert_non_null(strstr(log, "CRASH LOOP"));
    assert_non_null(strstr(log, "cannot connect to the database"));
    /* Fix the deploy and reload: served again at once. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink(APPS "/testapp.php", path), 0);
    B->ops->reload(B);
    wait_idle(2, 20000);
    assert_int_equal(submit(&b, "echo:back"), 0);
    run_until(p_answered, &b, 5000, "after the fix");
    assert_int_equal(b.status, 0);
    assert_string_equal((char *)b.body, "back");
    assert_non_null(strstr(status(), "backend.crash_loop no"));
    {
        mkd_backend_stats bs;
        memset(&bs, 0, sizeof bs);
        B->ops->stats(B, &bs);
        assert_false(bs.crash_loop);
        assert_int_equal(bs.workers_idle, 2);
        assert_int_equal(bs.reloads, 1);
    }
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(link), 0);
    ans_reset(&a);
    ans_reset(&b);
}

/* ------------------------------------------------------------------ */
/* limits                                                              */

static void test_queue_full(void **state)
{
    ans a[5] = {{0}};

    (void)state;
    cfg.workers_min = 1;
    cfg.queue_max = 2;
    start_pool();
    assert_int_equal(submit(&a[0], "sleep:300"), 0); /* running */
    assert_int_equal(submit(&a[1], "echo:1"), 0);    /* queued */
    assert_int_equal(submit(&a[2], "echo:2"), 0);    /* queued */
    assert_int_equal(submit(&a[3], "echo:3"), MKD_BACKEND_OVERLOADED);
    run_until(p_none_outstanding, NULL, 5000, "answers");
    for (int i = 0; i < 3; i++)
        assert_int_equal(a[i].status, 0);
    assert_int_equal(a[3].count, 0);
    assert_true(sval("backend.overloaded") == 1);
    for (int i = 0; i < 5; i++)
        ans_reset(&a[i]);
}

static void test_queue_timeout(void **state)
{
    ans a = {0}, b = {0};

    (void)state;
    cfg.workers_min = 1;
    cfg.queue_timeout_ms = 200;
    start_pool();
    /* Far longer than the queue timeout: even a loop held up for a while
     * reads the timeout before this answer. */
    assert_int_equal(submit(&a, "sleep:2000"), 0);
    assert_int_equal(submit(&b, "echo:late"), 0);
    run_until(p_answered, &b, 5000, "queue timeout");
    assert_int_equal(b.status, MKD_BACKEND_OVERLOADED);
    assert_int_equal(a.count, 0); /* the running one is unaffected */
    run_until(p_answered, &a, 10000, "running request");
    assert_int_equal(a.status, 0);
    ans_reset(&a);
    ans_reset(&b);
}

static int seen_pid(const int *v, size_t n, int pid)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == pid)
            return 1;
    return 0;
}

static void test_max_requests_staggered(void **state)
{
    ans a = {0};
    int seen[64];
    size_t nseen = 0;
    long max_starting = 0;

    (void)state;
    cfg.workers_min = 4;
    cfg.max_requests = 10;
    start_pool();
    /* Run until five recycles happened (bounded), rather than for a fixed
     * count: how many fit in a fixed count depends on how fast a
     * replacement starts, which a loaded or sanitized machine slows. */
    for (int i = 0; i < 1200 && (i < 120 || sval("backend.recycled") < 5);
         i++) {
        long st;
        /* A few ms each, so that replacements (~25 ms to start) become
         * ready while the test runs. */
        assert_int_equal(submit(&a, "pidsleep:5"), 0);
        run_until(p_answered, &a, 5000, "pid");
        assert_int_equal(a.status, 0);
        if (!seen_pid(seen, nseen, atoi((char *)a.body)) && nseen < 64)
            seen[nseen++] = atoi((char *)a.body);
        st = sval("backend.workers_starting");
        if (st > max_starting)
            max_starting = st;
    }
    /* At 8..10 requests per worker; never more than one restarting at a
     * time (a quarter of 4), so a worker past its limit may serve on while
     * another one's replacement starts. */
    fprintf(stderr, "%zu workers served, %ld recycled\n", nseen,
            sval("backend.recycled"));
    assert_true(nseen >= 6);
    assert_true(max_starting <= 1);
    assert_true(sval("backend.recycled") >= 5);
    assert_true(sval("backend.crashes") == 0);
    ans_reset(&a);
}

/* The most workers seen starting, and restarting (starting, or stopped
 * for recycling and not yet replaced), at any loop iteration. */
static long most_starting, most_restarting;
static uv_prepare_t sampler; /* static: it must outlive a failed assertion */

static void sample_restarts(uv_prepare_t *h)
{
    long st = sval("backend.workers_starting");
    long rs = sval("backend.workers_restarting");

    (void)h;
    if (st > most_starting)
        most_starting = st;
    if (rs > most_restarting)
        most_restarting = rs;
}

static void sampler_start(void)
{
    most_starting = most_restarting = 0;
    assert_int_equal(uv_prepare_init(&loop, &sampler), 0);
    assert_int_equal(uv_prepare_start(&sampler, sample_restarts), 0);
}

/* Stop sampling; never more than the cap (1) seen restarting. */
static void sampler_check(void)
{
    uv_close((uv_handle_t *)&sampler, NULL);
    fprintf(stderr, "at most %ld starting, %ld restarting\n", most_starting,
            most_restarting);
    assert_true(most_starting <= 1);
    assert_true(most_restarting <= 1);
}

static long want_recycled;

/* The pool is whole again after the recycles the test expects. */
static int p_recycled_idle(void *arg)
{
    (void)arg;
    return sval("backend.recycled") >= want_recycled &&
           sval("backend.workers_idle") == 4 && sval("backend.workers") == 4;
}

/* Answers that arrive in one loop iteration must not restart more workers
 * at once than the recycle cap allows: each recycle counts until its
 * replacement has started, not only once it is starting. */
static void test_recycle_cap_burst(void **state)
{
    ans a[4] = {{0}};

    (void)state;
    cfg.workers_min = 4;  /* recycle cap: 1 */
    cfg.max_requests = 1; /* 80..100 % of 1: every worker after 1 request */
    start_pool();
    sampler_start();
    for (int round = 0; round < 3; round++) {
        want_recycled = sval("backend.recycled") + 4;
        for (int i = 0; i < 4; i++)
            assert_int_equal(submit(&a[i], "echo:x"), 0);
        /* Not a wait for an event: the loop is kept from reading while
         * the four answers come in, so that it reads them together. */
        tl_sleep_ms(tl_deadline_ms(100));
        run_until(p_none_outstanding, NULL, 5000, "four answers");
        run_until(p_recycled_idle, NULL, 20000, "four recycles");
    }
    sampler_check();
    assert_true(sval("backend.crashes") == 0);
    for (int i = 0; i < 4; i++)
        ans_reset(&a[i]);
}

/* A replacement's HELLO and another worker's last answer read in one loop
 * iteration: the answer's worker is recycled (nobody is starting any
 * more), and the maintenance pass that follows must not also stop an idle
 * worker still waiting for its turn before it has spawned the first one's
 * replacement. */
static void test_recycle_cap_hello_and_answer(void **state)
{
    ans a = {0}, b = {0}, c = {0};

    (void)state;
    cfg.workers_min = 4;
    cfg.max_requests = 1;
    start_pool();
    sampler_start();
    /* One worker recycled: its replacement starts... */
    assert_int_equal(submit(&a, "echo:a"), 0);
    run_until(p_answered, &a, 5000, "the first answer");
    wait_sval("backend.spawned", 5, 10000);
    /* ...while a second one at its limit waits for its turn (its answer
     * comes long before a PHP start), and a third one runs on. */
    assert_int_equal(submit(&b, "echo:b"), 0);
    assert_int_equal(submit(&c, "pidsleep:500"), 0);
    run_until(p_answered, &b, 5000, "the second answer");
    /* Not a wait for an event: the loop is kept from reading until the
     * replacement's HELLO and then the third answer are both in. */
    tl_sleep_ms(tl_deadline_ms(1000));
    run_until(p_answered, &c, 5000, "the third answer");
    want_recycled = 3;
    run_until(p_recycled_idle, NULL, 20000, "three recycles");
    sampler_check();
    ans_reset(&a);
    ans_reset(&b);
    ans_reset(&c);
}

static void test_memory_recycle(void **state)
{
    ans a = {0};
    int first = 0, recycled = 0;

    (void)state;
    cfg.workers_min = 1;
    cfg.max_rss_kib = 96 * 1024;
    start_pool();
    for (int i = 0; i < 12; i++) {
        assert_int_equal(submit(&a, "leak:16"), 0);
        /* It may wait for a recycled worker's replacement to start. */
        run_until(p_answered, &a, 10000, "leak");
        assert_int_equal(a.status, 0);
        /* Never more than ~6 x 16 MiB kept before a recycle. */
        assert_true(atoi((char *)a.body + 5) <= 7);
        if (atoi((char *)a.body + 5) == 1 && i > 0)
            recycled++;
        (void)first;
    }
    assert_true(recycled >= 1);
    assert_true(sval("backend.recycled") >= 1);
    assert_true(sval("backend.crashes") == 0);
    ans_reset(&a);
}

/* The one worker is another one now, ready. */
static int p_replaced(void *arg)
{
    int pid[4];

    return sval("backend.workers") == 1 && pids("idle", pid, 4) == 1 &&
           pid[0] != *(const int *)arg;
}

static void test_lifetime(void **state)
{
    int before[4];

    (void)state;
    cfg.workers_min = 1;
    cfg.max_lifetime_s = 1;
    cfg.idle_timeout_ms = 200; /* a faster supervision tick */
    start_pool();
    assert_int_equal(pids("idle", before, 4), 1);
    run_until(p_replaced, &before[0], 10000,
              "a worker past its lifetime "
              "replaced");
    assert_true(sval("backend.recycled") >= 1);
}

static void test_grow_shrink(void **state)
{
    ans a[4] = {{0}};

    (void)state;
    cfg.workers_min = 1;
    cfg.workers_max = 3;
    cfg.idle_timeout_ms = 300;
    start_pool();
    for (int i = 0; i < 4; i++)
        assert_int_equal(submit(&a[i], "sleep:400"), 0);
    run_until(p_none_outstanding, NULL, 10000, "answers");
    for (int i = 0; i < 4; i++)
        assert_int_equal(a[i].status, 0);
    assert_true(sval("backend.spawned") == 3); /* grew to the maximum */
    wait_idle(1, 10000);                       /* and shrank back */
    for (int i = 0; i < 4; i++)
        ans_reset(&a[i]);
}

/* ------------------------------------------------------------------ */
/* Load: clients that send their next request when answered            */

typedef struct client {
    ans a; /* first: the token */
    int id, sent, ok, failed, refused;
    int total;
    char expect[64];
} client;

static int load_running;

static void client_next(client *c)
{
    char cmd[96];
    unsigned r;

    if (c->sent >= c->total)
        return;
    snprintf(c->expect, sizeof c->expect, "c%d-r%d", c->id, c->sent);
    snprintf(cmd, sizeof cmd, "%s:%s", load_verb, c->expect);
    c->sent++;
    r = submit(&c->a, cmd);
    if (r != 0) {
        c->refused++;
        c->sent = c->total; /* stop this client */
    }
}

static void client_then(ans *a)
{
    client *c = (client *)a;

    if (a->status == 0 && a->len == strlen(c->expect) &&
        memcmp(a->body, c->expect, a->len) == 0)
        c->ok++;
    else
        c->failed++;
    if (load_running)
        client_next(c);
}

static client *clients_start(int n, int per)
{
    client *cs = calloc((size_t)n, sizeof *cs);

    assert_non_null(cs);
    load_running = 1;
    for (int i = 0; i < n; i++) {
        cs[i].id = i;
        cs[i].total = per;
        cs[i].a.then = client_then;
        client_next(&cs[i]);
    }
    return cs;
}

static void clients_free(client *cs, int n)
{
    for (int i = 0; i < n; i++)
        ans_reset(&cs[i].a);
    free(cs);
}

static void test_load_50x100(void **state)
{
    const int n = 50, per = 100;
    client *cs;
    int ok = 0, failed = 0;

    (void)state;
    cfg.workers_min = 4;
    start_pool();
    cs = clients_start(n, per);
    run_until(p_none_outstanding, NULL, 60000, "5000 answers");
    for (int i = 0; i < n; i++) {
        ok += cs[i].ok;
        failed += cs[i].failed + cs[i].refused;
    }
    assert_int_equal(failed, 0);
    assert_int_equal(ok, n * per);
    assert_true(sval("backend.answered") == n * per);
    clients_free(cs, n);
}

/* Every live worker is of the current generation, and the pool is idle at
 * full size (*arg workers). */
static int p_one_generation(void *arg)
{
    const char *s;
    long gen = sval("backend.generation"), n = *(const long *)arg;

    if (sval("backend.workers_idle") != n || sval("backend.workers") != n)
        return 0;
    s = status();
    for (const char *l = s; l != NULL && *l != '\0';) {
        int slot, pid;
        unsigned g;
        char st[32];
        if (sscanf(l, "pegasus.w%d pid %d state %31s gen %u", &slot, &pid, st,
                   &g) == 4 &&
            strcmp(st, "stopping") != 0 && (long)g != gen)
            return 0;
        l = strchr(l, '\n');
        if (l != NULL)
            l++;
    }
    return 1;
}

static int reloads_left;

static void do_reload(uv_timer_t *t)
{
    B->ops->reload(B);
    if (--reloads_left == 0)
        (void)uv_timer_stop(t); /* cannot fail */
}

static void test_reload_under_load(void **state)
{
    const int n = 20, per = 60;
    client *cs;
    static uv_timer_t rt; /* static: it must outlive a failed assertion */
    int ok = 0, failed = 0, p[16];
    size_t np;

    (void)state;
    cfg.workers_min = 3;
    start_pool();
    load_verb = "slowecho";
    assert_int_equal(uv_timer_init(&loop, &rt), 0);
    /* Two reloads while the clients run (1200 requests of 2 ms on three
     * workers take most of a second even on a fast machine). */
    reloads_left = 2;
    assert_int_equal(uv_timer_start(&rt, do_reload, 100, 150), 0);
    cs = clients_start(n, per);
    run_until(p_none_outstanding, NULL, 60000, "answers");
    uv_close((uv_handle_t *)&rt, NULL);
    load_verb = "echo";
    for (int i = 0; i < n; i++) {
        ok += cs[i].ok;
        failed += cs[i].failed + cs[i].refused;
    }
    assert_int_equal(failed, 0);
    assert_int_equal(ok, n * per);
    assert_true(sval("backend.reloads") >= 2);
    /* Only the newest generation is left, at full size (slots freed by
     * exiting workers may take a moment to let the last one start). */
    run_until(p_one_generation, &(long){3}, 20000, "one generation left");
    np = pids(NULL, p, 16);
    assert_int_equal(np, 3);
    assert_true(sval("backend.crashes") == 0);
    clients_free(cs, n);
}

/* A new max_message, then reload(), as mkd does on SIGHUP. */
static void set_max_message(uint32_t max)
{
    assert_int_equal(pegasus_set_max_message(B, max), MKD_OK);
    B->ops->reload(B);
}

/* pegasus_set_max_message: requests are held to the new value from then
 * on, the ones taken before keep theirs, and the new workers get it. */
static void test_set_max_message(void **state)
{
    const size_t n = 6000;
    uint8_t *big = malloc(n);
    ans a = {0}, b = {0};

    (void)state;
    assert_non_null(big);
    memcpy(big, "echo:", 5);
    memset(big + 5, 'e', n - 5);
    cfg.workers_min = 1;
    cfg.max_message = 4096;
    start_pool();
    assert_int_equal(submit_n(&a, big, n), MKD_BACKEND_TOO_LARGE);
    assert_int_equal(pegasus_set_max_message(B, 0), MKD_ERR_ARG);
    assert_int_equal(pegasus_set_max_message(B, (256u << 20) + 1), MKD_ERR_ARG);
    /* Raised: a request over the old value is taken, and waits for a
     * worker started with the new one rather than going to the idle old
     * one (whose own frame limit it would break: "worker crashed"). */
    set_max_message(8192);
    assert_int_equal(submit_n(&a, big, n), 0);
    run_until(p_answered, &a, 10000, "a request over the old limit");
    if (a.status != 0)
        fail_msg("status %u (%s)", a.status, a.text);
    assert_int_equal(a.len, n - 5);
    run_until(p_one_generation, &(long){1}, 20000, "the new generation");
    assert_int_equal(submit(&a, "big:8192"), 0);
    run_until(p_answered, &a, 5000, "an answer at the new limit");
    assert_int_equal(a.status, 0);
    assert_int_equal(a.len, 8192);
    assert_true(sval("backend.max_message") == 8192);
    /* Lowered while a request runs: its answer is held to the limit it was
     * taken under; the next request's to the new one. */
    assert_int_equal(submit(&a, "big:6000"), 0);
    set_max_message(4096);
    assert_int_equal(submit_n(&b, big, n), MKD_BACKEND_TOO_LARGE);
    run_until(p_answered, &a, 5000, "the answer taken under 8192");
    if (a.status != 0)
        fail_msg("status %u (%s)", a.status, a.text);
    assert_int_equal(a.len, 6000);
    assert_int_equal(submit(&a, "big:6000"), 0);
    run_until(p_answered, &a, 5000, "an answer over the new limit");
    assert_int_equal(a.status, MKD_BACKEND_APPLICATION);
    assert_string_equal(a.text, "response too large");
    /* No worker was at fault: none was killed. */
    assert_true(sval("backend.protocol_errors") == 0);
    assert_true(sval("backend.crashes") == 0);
    free(big);
    ans_reset(&a);
    ans_reset(&b);
}

static int drained;

static void on_drained(void *arg)
{
    int *flag = arg;
    (*flag)++;
}

static void do_drain(uv_timer_t *t)
{
    (void)t;
    B->ops->drain(B, on_drained, &drained);
}

static int p_drained(void *arg)
{
    (void)arg;
    return drained > 0;
}

static void test_drain_under_load(void **state)
{
    const int n = 30, per = 1000;
    client *cs;
    static uv_timer_t dt; /* static: it must outlive a failed assertion */
    int ok = 0, failed = 0, refused = 0, sent = 0;
    ans late = {0};

    (void)state;
    cfg.workers_min = 3;
    start_pool();
    drained = 0;
    assert_int_equal(uv_timer_init(&loop, &dt), 0);
    assert_int_equal(uv_timer_start(&dt, do_drain, 200, 0), 0);
    cs = clients_start(n, per);
    run_until(p_drained, NULL, 30000, "drain");
    uv_close((uv_handle_t *)&dt, NULL);
    assert_int_equal(drained, 1);
    /* Every accepted request was answered, and answered well. */
    assert_int_equal(outstanding, 0);
    for (int i = 0; i < n; i++) {
        ok += cs[i].ok;
        failed += cs[i].failed;
        refused += cs[i].refused;
        sent += cs[i].sent == per ? cs[i].ok + cs[i].failed + cs[i].refused
                                  : cs[i].sent;
    }
    assert_int_equal(failed, 0);
    assert_int_equal(refused, n); /* each client's first refused submit */
    assert_true(ok > 0);
    assert_int_equal(sval("backend.workers"), 0);
    /* After the drain, a request is refused with "shutdown". */
    assert_int_equal(submit(&late, "echo:late"), MKD_BACKEND_SHUTDOWN);
    run_for(50);
    assert_int_equal(drained, 1);
    clients_free(cs, n);
    (void)sent;
}

static void test_free_answers_outstanding(void **state)
{
    ans a[3] = {{0}};

    (void)state;
    start_pool();
    for (int i = 0; i < 3; i++)
        assert_int_equal(submit(&a[i], "sleep:3000"), 0);
    want_busy = 2;
    run_until(p_busy, NULL, 5000, "two busy");
    B->ops->free(B);
    B = NULL;
    /* The two running ones may have run: "timeout", never "shutdown",
     * which tells a client it is safe to send again elsewhere. The queued
     * one never reached a worker. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(a[i].count, 1);
    assert_int_equal(a[0].status, MKD_BACKEND_TIMEOUT);
    assert_int_equal(a[1].status, MKD_BACKEND_TIMEOUT);
    assert_int_equal(a[2].status, MKD_BACKEND_SHUTDOWN);
    for (int i = 0; i < 3; i++)
        ans_reset(&a[i]);
}

/* ------------------------------------------------------------------ */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv)
{
    const struct CMUnitTest basic[] = {
        T(test_hello_world),   T(test_context_and_echo),  T(test_big),
        T(test_output_to_log), T(test_cancel_and_status), T(test_bad_config),
    };
    const struct CMUnitTest faults[] = {
        T(test_sigkill_mid_request),
        T(test_timeout),
        T(test_throw),
        T(test_exit_fatal_selfkill),
        T(test_fake_workers),
        T(test_response_over_max),
        T(test_preanswer_next_tag),
        T(test_answer_begun_before_request),
        T(test_answer_before_request_written),
        T(test_start_failures),
        T(test_crash_loop),
    };
    const struct CMUnitTest limits[] = {
        T(test_queue_full),
        T(test_queue_timeout),
        T(test_max_requests_staggered),
        T(test_recycle_cap_burst),
        T(test_recycle_cap_hello_and_answer),
        T(test_memory_recycle),
        T(test_lifetime),
        T(test_grow_shrink),
    };
    const struct CMUnitTest lifecycle[] = {
        T(test_reload_under_load),
        T(test_set_max_message),
        T(test_drain_under_load),
        T(test_free_answers_outstanding),
    };
    const struct CMUnitTest load[] = {
        T(test_load_50x100),
    };
    const char *g = argc > 1 ? argv[1] : "all";
    int fails = 0, any = 0;

    /* A worker dying while we write to it must not kill us (MKD ignores
     * SIGPIPE the same way). */
    signal(SIGPIPE, SIG_IGN);
    if (getenv("PEGASUS_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("PEGASUS_TEST_FILTER"));
    mkd_log_set_level(getenv("PEGASUS_TEST_DEBUG") ? MKD_LOG_DEBUG
                                                   : MKD_LOG_INFO);
#define GROUP(name)                                                            \
    if (strcmp(g, #name) == 0 || strcmp(g, "all") == 0) {                      \
        any = 1;                                                               \
        fails += cmocka_run_group_tests_name(#name, name, NULL, NULL);         \
    }
    GROUP(basic)
    GROUP(faults)
    GROUP(limits)
    GROUP(lifecycle)
    GROUP(load)
    if (!any) {
        fprintf(stderr, "unknown group %s\n", g);
        return 2;
    }
    return fails ? 1 : 0;
}
