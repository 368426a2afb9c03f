/*
 * test_cli.c -- the `sazukari` command, run as a child process against the
 * in-process server: output, request sources, the session file, load mode,
 * and one distinct exit code per class of failure.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "megaki_version.h"
#include "sztest.h"

#ifndef SZ_CLI_PATH
#error "SZ_CLI_PATH must name the sazukari binary"
#endif

typedef struct result {
    int code;
    char *out, *err;
    size_t out_len, err_len;
} result;

static char tmpdir[] = "/tmp/sz_cli_XXXXXX";

static char *slurp(int fd, size_t *len)
{
    char *buf = NULL;
    size_t n = 0, cap = 0;
    ssize_t r;

    lseek(fd, 0, SEEK_SET);
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        r = read(fd, buf + n, 4096);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int tmpfile_fd(const char *name)
{
    char path[256];
    int fd;
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    return fd;
}

/* Run the CLI with argv (NULL-terminated, without argv[0]) and the given
 * standard input (NULL: /dev/null). */
static void run(result *r, const char *in, const char *arg, ...)
{
    char *argv[64];
    int n = 0, status = 0, fin, fout, ferr;
    va_list ap;
    pid_t pid;

    /* execv() takes char *const[] for history's sake; it writes nothing. */
    argv[n++] = (char *)(uintptr_t)SZ_CLI_PATH;
    va_start(ap, arg);
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *))
        argv[n++] = (char *)(uintptr_t)a;
    va_end(ap);
    argv[n] = NULL;

    if (in != NULL) {
        fin = tmpfile_fd("stdin");
        assert_int_equal(write(fin, in, strlen(in)), (ssize_t)strlen(in));
        lseek(fin, 0, SEEK_SET);
    } else {
        fin = open("/dev/null", O_RDONLY);
    }
    fout = tmpfile_fd("stdout");
    ferr = tmpfile_fd("stderr");
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fin, 0);
        dup2(fout, 1);
        dup2(ferr, 2);
        execv(SZ_CLI_PATH, argv);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    r->code = WEXITSTATUS(status);
    r->out = slurp(fout, &r->out_len);
    r->err = slurp(ferr, &r->err_len);
    close(fin);
    close(fout);
    close(ferr);
}

static void done(result *r)
{
    free(r->out);
    free(r->err);
}

static void expect_code(result *r, int code)
{
    if (r->code != code)
        fail_msg("exit %d, want %d; stderr: %s", r->code, code, r->err);
}

#define PUB   KEYDIR "server2048.pub.pem"
#define WRONG KEYDIR "other2048.pub.pem"

static char target[64];

static void set_target(ts_server *s)
{
    snprintf(target, sizeof target, "127.0.0.1:%u", (unsigned)ts_port(s));
}

static void test_cli_ok(void **st)
{
    ts_server *s = ts_start(NULL);
    char path[256], sess[256];
    struct stat sb;
    result r;
    FILE *f;
    (void)st;

    set_target(s);
    run(&r, NULL, "-k", PUB, target, "hello world", NULL);
    expect_code(&r, 0);
    assert_int_equal(r.out_len, 11);
    assert_memory_equal(r.out, "hello world", 11);
    done(&r);

    /* From standard input, and from a file. */
    run(&r, "from stdin", "-k", PUB, target, NULL);
    expect_code(&r, 0);
    assert_string_equal(r.out, "from stdin");
    done(&r);
    snprintf(path, sizeof path, "%s/req.bin", tmpdir);
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("from a file", f);
    fclose(f);
    run(&r, NULL, "--key", PUB, "-f", path, target, NULL);
    expect_code(&r, 0);
    assert_string_equal(r.out, "from a file");
    done(&r);

    /* A session file: made 0600 on the first run, resumed on the next. */
    snprintf(sess, sizeof sess, "%s/session", tmpdir);
    run(&r, NULL, "-v", "-k", PUB, "-s", sess, target, "one", NULL);
    expect_code(&r, 0);
    assert_non_null(strstr(r.err, "full handshake"));
    done(&r);
    assert_int_equal(stat(sess, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    run(&r, NULL, "-v", "-k", PUB, "-s", sess, target, "two", NULL);
    expect_code(&r, 0);
    assert_non_null(strstr(r.err, "resumed handshake"));
    assert_string_equal(r.out, "two");
    done(&r);
    /* IPv6 brackets parse; bare IPv6 is refused with a hint. */
    run(&r, NULL, "-k", PUB, "::1:80", "x", NULL);
    expect_code(&r, 2);
    assert_non_null(strstr(r.err, "brackets"));
    done(&r);
    ts_stop(s);
}

static void test_cli_exit_codes(void **st)
{
    ts_server *s = ts_start(NULL);
    ts_config cfg;
    char refused[64], big[300];
    result r;
    (void)st;

    set_target(s);
    /* 2: usage. */
    run(&r, NULL, NULL);
    expect_code(&r, 2);
    done(&r);
    run(&r, NULL, target, "x", NULL); /* no key */
    expect_code(&r, 2);
    done(&r);
    run(&r, NULL, "-k", PUB, "no-port", "x", NULL);
    expect_code(&r, 2);
    done(&r);
    run(&r, NULL, "-k", KEYDIR "missing.pem", target, "x", NULL);
    expect_code(&r, 2);
    done(&r);
    run(&r, NULL, "-k", PUB, "--timeout", "soon", target, "x", NULL);
    expect_code(&r, 2);
    done(&r);
    /* 3: pin. */
    run(&r, NULL, "-k", WRONG, target, "x", NULL);
    expect_code(&r, 3);
    assert_non_null(strstr(r.err, "SZ_ERR_PIN"));
    done(&r);
    /* 4: connect. */
    {
        ts_server *gone = ts_start(NULL);
        snprintf(refused, sizeof refused, "127.0.0.1:%u",
                 (unsigned)ts_port(gone));
        ts_stop(gone);
    }
    run(&r, NULL, "-k", PUB, refused, "x", NULL);
    expect_code(&r, 4);
    done(&r);
    /* 5: timeout. */
    run(&r, NULL, "-k", PUB, "--timeout", "300", target, "!silent", NULL);
    expect_code(&r, 5);
    done(&r);
    /* 6: I/O. */
    run(&r, NULL, "-k", PUB, target, "!hangup", NULL);
    expect_code(&r, 6);
    done(&r);
    /* 7: protocol. */
    run(&r, NULL, "-k", PUB, target, "!garbage", NULL);
    expect_code(&r, 7);
    done(&r);
    /* 8: server error, with its text. */
    run(&r, NULL, "-k", PUB, target, "!err 1 the app said no", NULL);
    expect_code(&r, 8);
    assert_non_null(strstr(r.err, "the app said no"));
    done(&r);
    ts_stop(s);

    /* 9: too large. */
    memset(&cfg, 0, sizeof cfg);
    cfg.max_message = 100;
    s = ts_start(&cfg);
    set_target(s);
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = 0;
    run(&r, NULL, "-k", PUB, target, big, NULL);
    expect_code(&r, 9);
    done(&r);
    ts_stop(s);

    /* 10: busy. */
    cfg.max_message = 0;
    cfg.mode = TS_BUSY;
    s = ts_start(&cfg);
    set_target(s);
    run(&r, NULL, "-k", PUB, target, "x", NULL);
    expect_code(&r, 10);
    assert_non_null(strstr(r.err, "1500 ms"));
    done(&r);
    ts_stop(s);
}

static void test_cli_help(void **st)
{
    result r;
    (void)st;
    run(&r, NULL, "--help", NULL);
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "Exit status"));
    assert_non_null(strstr(r.out, "--resume-per-request"));
    done(&r);
    run(&r, NULL, "--version", NULL);
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, MEGAKI_VERSION));
    done(&r);
}

static void test_cli_load(void **st)
{
    ts_server *s = ts_start(NULL);
    ts_stats ss;
    result r;
    (void)st;

    set_target(s);
    run(&r, NULL, "--load", "-n", "300", "-c", "3", "-p", "4", "-k", PUB,
        target, "ping", NULL);
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "300 ok, 0 failed"));
    assert_non_null(strstr(r.out, "requests/s"));
    assert_non_null(strstr(r.out, "p99"));
    assert_non_null(strstr(r.err, "300/300 requests"));
    done(&r);

    run(&r, NULL, "--load", "-n", "12", "-c", "2",
        "--new-handshake-per-request", "-k", PUB, target, "ping", NULL);
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "12 full, 0 resumed"));
    done(&r);

    run(&r, NULL, "--load", "-n", "12", "-c", "1", "--resume-per-request", "-k",
        PUB, target, "ping", NULL);
    expect_code(&r, 0);
    assert_non_null(strstr(r.out, "1 full, 11 resumed"));
    done(&r);

    /* -d: for a duration instead of a count; not with -n, nor without
     * --load, nor 0. */
    run(&r, NULL, "--load", "-q", "-d", "1", "-c", "2", "-k", PUB, target,
        "ping", NULL);
    expect_code(&r, 0);
    {
        unsigned long ok = 0, failed = 1;
        assert_int_equal(
            sscanf(r.out, "requests: %lu ok, %lu failed", &ok, &failed), 2);
        assert_true(ok > 0);
        assert_int_equal(failed, 0);
    }
    done(&r);
    run(&r, NULL, "--load", "-d", "1", "-n", "5", "-k", PUB, target, "x", NULL);
    expect_code(&r, 2);
    done(&r);
    run(&r, NULL, "-d", "1", "-k", PUB, target, "x", NULL);
    expect_code(&r, 2);
    done(&r);
    run(&r, NULL, "--load", "-d", "0", "-k", PUB, target, "x", NULL);
    expect_code(&r, 2);
    done(&r);

    /* Failures are counted and set the exit code; no latency without a
     * success. */
    run(&r, NULL, "--load", "-q", "-n", "5", "-k", PUB, target,
        "!err 3 overloaded", NULL);
    expect_code(&r, 8);
    assert_non_null(strstr(r.out, "0 ok, 5 failed"));
    assert_non_null(strstr(r.out, "SZ_ERR_SERVER_OVERLOADED 5"));
    assert_non_null(strstr(r.out, "no successful request"));
    assert_null(strstr(r.out, "retry_later")); /* not a busy refusal */
    done(&r);
    ts_get_stats(s, &ss);
    assert_true(ss.requests >= 300 + 12 + 12 + 5);
    ts_stop(s);
}

static int setup(void **st)
{
    (void)st;
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    return 0;
}

static int teardown(void **st)
{
    static const char *names[] = {"stdin", "stdout", "stderr", "req.bin",
                                  "session"};
    char path[256];
    (void)st;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_ok),
        cmocka_unit_test(test_cli_exit_codes),
        cmocka_unit_test(test_cli_help),
        cmocka_unit_test(test_cli_load),
    };
    return cmocka_run_group_tests_name("sazukari_cli", tests, setup, teardown);
}
