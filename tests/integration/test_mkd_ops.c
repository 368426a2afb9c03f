/*
 * test_mkd_ops.c -- mkd as an operator meets it: the command line of every
 * subcommand (getopt_long: bad numbers, out-of-range values, unknown
 * options, both forms of a value, every configuration option, '-'),
 * `mkd config --test` on good and bad configurations, and the readiness
 * protocol of the service manager (sd_notify).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mkt.h"
#include "testlib.h"

#define D mkt_D

/* Run mkd with args (NULL-terminated); its exit status, and its output
 * in *out (the caller frees it). */
static int run(char **out, const char *const *args)
{
    int st = mkt_run_mkd_output(args, out);

    assert_non_null(*out);
    return st;
}

/* A usage error: exit 2, a line that says what (want), then the pointer to
 * the subcommand's help. */
static void usage_error(const char *const *args, const char *want)
{
    char *out = NULL, hint[80];
    int st = run(&out, args);

    snprintf(hint, sizeof hint, "\nTry 'mkd %s --help'.\n", args[0]);
    if (st != 2 || strstr(out, want) == NULL || strstr(out, hint) == NULL)
        fail_msg("mkd %s %s: exit %d, said:\n%s(wanted exit 2, \"%s\")",
                 args[0], args[1] ? args[1] : "", st, out, want);
    free(out);
}

/* Each refused with the option named and what it wanted; before getopt,
 * most of these went through (a 2048-bit key for --bits=abc, 4096 for
 * 4096x, any --keep). */
static void test_usage_errors(void **st)
{
    static const struct {
        const char *args[4];
        const char *want;
    } cases[] = {
        {{"keygen", "--bits=abc"}, "--bits: expected 2048, 3072 or 4096"},
        {{"keygen", "--bits=4096x"}, "--bits: expected 2048, 3072 or 4096"},
        {{"keygen", "--bits", "1024"}, "not '1024'"},
        {{"ticket-keys", "--keep=0"}, "--keep: expected a number in 1..16"},
        {{"ticket-keys", "--keep=99"}, "--keep: expected a number in 1..16"},
        {{"ticket-keys", "--keep", "abc"}, "--keep: expected a number"},
        {{"ticket-keys", "--rotate=yes"}, "--rotate takes no value"},
        {{"ticket-keys", "--stage", "--promote"}, "give one"},
        {{"keygen", "--out=-"}, "never written to standard output"},
        {{"ticket-keys", "--file", "-"}, "never written to standard output"},
        {{"keygen", "--out"}, "--out needs a value"},
        {{"keygen", "--bit=2048"}, "write the option in full (--bits)"},
        {{"serve", "--port=abc"},
         "--port: \"abc\" is not a number in 0..65535"},
        {{"serve", "--port", "70000"}, "is not a number in 0..65535"},
        {{"serve", "--max-message=0"}, "--max_message: \"0\" is not a number"},
        {{"serve", "--log_level=loud"}, "is not error, warn, info or debug"},
        {{"serve", "--nosuch=1"}, "unknown option '--nosuch'"},
        {{"serve", "--rotate"}, "unknown option '--rotate'"},
        {{"serve", "-x"}, "unknown option '-x'"},
        {{"status", "extra"}, "unexpected argument 'extra'"},
    };
    /* Configuration errors (the file could have said them): exit 2. The
     * access log and the metrics listener are opened late in serve's
     * start-up, but they are refused up front with the others. */
    static const struct {
        const char *args[4];
        const char *want;
    } config_errors[] = {
        {{"config", "--ticket_key_file=-"}, "cannot hold a key"},
        {{"config", "--access_log=relative.log"}, "is not off, stderr or an"},
        {{"config", "--test", "--metrics_listen=10.0.0.1:9464"},
         "is not a loopback address"},
        {{"serve", "--metrics_listen=bogus"}, "\"bogus\" is not HOST:PORT"},
        {{"config", "--trusted_proxies=10.0.0.0/33"}, "trusted_proxies: "},
    };
    char *out = NULL;
    (void)st;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        usage_error(cases[i].args, cases[i].want);
    for (size_t i = 0; i < sizeof config_errors / sizeof config_errors[0];
         i++) {
        assert_int_equal(run(&out, config_errors[i].args), 2);
        assert_non_null(strstr(out, config_errors[i].want));
        free(out);
    }
}

/* --help everywhere: the command's usage on stdout, exit 0, nothing run
 * (mkd_bench --help used to run the benchmark). */
static void test_help(void **st)
{
    static const char *const cmds[] = {"serve",       "keygen", "pubkey",
                                       "ticket-keys", "status", "config"};
    char *out = NULL, want[64];
    (void)st;

    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *args[] = {cmds[i], "--help", NULL};
        assert_int_equal(run(&out, args), 0);
        snprintf(want, sizeof want, "mkd %s", cmds[i]);
        if (strcmp(cmds[i], "serve") == 0)
            snprintf(want, sizeof want, "mkd [serve]");
        assert_non_null(strstr(out, want));
        assert_non_null(strstr(out, "Exit status"));
        free(out);
    }
    {
        const char *args[] = {"--help", NULL};
        assert_int_equal(run(&out, args), 0);
        assert_non_null(strstr(out, "mkd ticket-keys"));
        free(out);
    }
    {
        const char *args[] = {"frob", NULL};
        assert_int_equal(run(&out, args), 2);
        assert_non_null(strstr(out, "unknown command 'frob'"));
        free(out);
    }
}

/* `--opt VALUE` and `--opt=VALUE` alike, for mkd's own options. */
static void test_value_forms(void **st)
{
    char key[400], *out = NULL;
    struct stat sb;
    (void)st;

    snprintf(key, sizeof key, "%s/k.pem", D.dir);
    {
        const char *args[] = {"keygen", "--out", key, "--bits", "3072", NULL};
        assert_int_equal(run(&out, args), 0);
        assert_non_null(strstr(out, "bits: 3072"));
        free(out);
    }
    assert_int_equal(stat(key, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    {
        const char *args[] = {"pubkey", "--key_file", key, NULL};
        assert_int_equal(run(&out, args), 0);
        assert_non_null(strstr(out, "bits: 3072"));
        free(out);
    }
    snprintf(key, sizeof key, "%s/t.keys", D.dir);
    {
        const char *args[] = {"ticket-keys", "--file", key,
                              "--keep",      "2",      NULL};
        assert_int_equal(run(&out, args), 0);
        assert_non_null(strstr(out, "created, 1 key(s)"));
        free(out);
    }
}

/* Every row of the option table, as `mkd config` prints it, is taken back
 * on the command line as `--name value` (every other one with dashes) and
 * as `--name=value`, and gives the same configuration. */
static void test_every_config_option(void **st)
{
    const char *base[] = {"config", NULL};
    char *dump = NULL, *again = NULL, *line, *save = NULL;
    static const char *args[512];
    static char *owned[256];
    size_t n = 0, k = 0;
    (void)st;

    assert_int_equal(run(&dump, base), 0);
    args[n++] = "config";
    for (line = strtok_r(dump, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save), k++) {
        char *eq = strstr(line, " = "), *opt;
        assert_non_null(eq);
        assert_true(k < 256);
        *eq = '\0';
        opt = owned[k] = malloc(strlen(line) + strlen(eq + 3) + 4);
        assert_non_null(opt);
        if (k % 2) { /* --name value, every other one with dashes */
            sprintf(opt, "--%s", line);
            for (char *c = opt; k % 4 == 1 && *c; c++)
                *c = *c == '_' ? '-' : *c;
            args[n++] = opt;
            args[n++] = eq + 3;
        } else {
            sprintf(opt, "--%s=%s", line, eq + 3);
            args[n++] = opt;
        }
    }
    args[n] = NULL;
    assert_true(k > 50);
    assert_int_equal(run(&again, args), 0);
    free(dump);
    assert_int_equal(run(&dump, base), 0);
    assert_string_equal(again, dump);
    for (size_t i = 0; i < k; i++)
        free(owned[i]);
    free(dump);
    free(again);
}

/* ready_file = - writes the port to standard output, once serving. */
static void test_ready_file_stdout(void **st)
{
    char a_dir[320], line[32] = {0};
    const char *argv[] = {mkt_mkd_path(),     "serve",    a_dir,
                          "--ready_file=-",   "--port=0", "--backend=echo",
                          "--log_level=warn", NULL};
    int fds[2], status;
    size_t got = 0;
    pid_t pid;
    (void)st;

    snprintf(a_dir, sizeof a_dir, "--data_dir=%s", D.dir);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        close(fds[0]);
        execv(argv[0], (char **)(uintptr_t)argv);
        _exit(127);
    }
    close(fds[1]);
    /* Within a generous deadline: an mkd that writes elsewhere (a file
     * named "-") must fail the test, not hang it. */
    while (got < sizeof line - 1 && strchr(line, '\n') == NULL) {
        struct pollfd p = {fds[0], POLLIN, 0};
        ssize_t r = -1;
        if (poll(&p, 1, (int)tl_deadline_ms(60000)) == 1)
            r = read(fds[0], line + got, sizeof line - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fds[0]);
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(atoi(line) > 0);
    assert_non_null(strchr(line, '\n'));
    assert_int_equal(access("-", F_OK), -1); /* no file named "-" */
}

/* `mkd config --test` with args after "config --test --data_dir=DIR";
 * its exit status, and its output in *out. */
static int config_test(char **out, const char *a1, const char *a2)
{
    char dir_arg[320];
    const char *args[] = {"config", "--test", dir_arg, a1, a2, NULL};

    snprintf(dir_arg, sizeof dir_arg, "--data_dir=%s", D.dir);
    return run(out, args);
}

static void expect_test_fails(const char *a1, const char *a2, const char *want)
{
    char *out = NULL;
    int st = config_test(&out, a1, a2);

    if (st != 1 || strstr(out, want) == NULL ||
        strstr(out, "configuration test failed") == NULL)
        fail_msg("config --test %s %s: exit %d, said:\n%s(wanted exit 1, "
                 "\"%s\")",
                 a1, a2 ? a2 : "", st, out, want);
    free(out);
}

/* The good configuration passes, a worker loaded the application, and
 * the first-run files are named but not made (that is serve's job). */
static void test_config_test_good(void **st)
{
    char path[400], *out = NULL;
    (void)st;

    /* As root the worker runs as nobody, who must reach the app. */
    assert_int_equal(chmod(D.dir, 0755), 0);
    assert_int_equal(config_test(&out, NULL, NULL), 0);
    assert_non_null(strstr(out, "mkd: configuration OK"));
    assert_non_null(strstr(out, "does not exist yet"));
    free(out);
    snprintf(path, sizeof path, "%s/server.pem", D.dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof path, "%s/ticket.keys", D.dir);
    assert_int_equal(access(path, F_OK), -1);
    /* With the files made, as an installed mkd has them. */
    {
        char kf[420], tf[420];
        const char *keygen[] = {"keygen", kf, NULL};
        const char *tk[] = {"ticket-keys", tf, NULL};
        snprintf(kf, sizeof kf, "--out=%s/server.pem", D.dir);
        snprintf(tf, sizeof tf, "--file=%s/ticket.keys", D.dir);
        assert_int_equal(run(&out, keygen), 0);
        free(out);
        assert_int_equal(run(&out, tk), 0);
        free(out);
    }
    assert_int_equal(config_test(&out, "--listen=127.0.0.1,::1", NULL), 0);
    assert_non_null(strstr(out, "mkd: configuration OK"));
    assert_null(strstr(out, "does not exist yet"));
    free(out);
}

/* Each bad input is its own line; all four at once are all said. */
static void test_config_test_bad(void **st)
{
    char *out = NULL, key[400], arg[420], app[400];
    FILE *f;
    (void)st;

    expect_test_fails("--key_file=/nonexistent.pem", NULL,
                      "keys: /nonexistent.pem: No such file");
    expect_test_fails("--app=/nonexistent.php", NULL,
                      "app: pegasus: application /nonexistent.php");
    expect_test_fails("--listen=bogus", NULL,
                      "listen: \"bogus\" is not an IPv4 or IPv6 address");
    expect_test_fails("--listen=192.0.2.1", NULL, "listen on 192.0.2.1");
    expect_test_fails("--user=nosuchuser", NULL,
                      "user nosuchuser: no such user");
    expect_test_fails("--worker_group=nosuchgroup", NULL,
                      "worker_group nosuchgroup: no such group");
    {
        const char *args[] = {"config",
                              "--test",
                              "--key_file=/nonexistent.pem",
                              "--app=/nonexistent.php",
                              "--listen=bogus",
                              "--user=nosuchuser",
                              NULL};
        assert_int_equal(run(&out, args), 1);
        assert_non_null(strstr(out, "failed: 4 problem(s)"));
        free(out);
    }
    /* A key others may read is refused, as serve refuses it. */
    snprintf(key, sizeof key, "%s/k.pem", D.dir);
    snprintf(arg, sizeof arg, "--out=%s", key);
    {
        const char *keygen[] = {"keygen", arg, NULL};
        assert_int_equal(run(&out, keygen), 0);
        free(out);
    }
    assert_int_equal(chmod(key, 0644), 0);
    snprintf(arg, sizeof arg, "--key_file=%s", key);
    expect_test_fails(arg, NULL, "(mode 0644)");
    /* A PHP parse error in the application: the worker's own words. */
    assert_int_equal(chmod(D.dir, 0755), 0);
    snprintf(app, sizeof app, "%s/bad.php", D.dir);
    assert_non_null(f = fopen(app, "w"));
    fputs("<?php\nfunction (\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(app, 0644), 0);
    snprintf(app, sizeof app, "--app=%s/bad.php", D.dir);
    expect_test_fails(app, NULL, "ParseError");
    expect_test_fails(app, NULL, "exited before it was ready");
}

/* The next notification on fd, within a generous deadline ("" if none). */
static void next_notification(int fd, char *buf, size_t cap)
{
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n = -1;

    buf[0] = '\0';
    if (poll(&p, 1, (int)tl_deadline_ms(60000)) == 1)
        n = recv(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
}

static void expect_notification(int fd, const char *want, const char *also)
{
    char msg[1024];

    next_notification(fd, msg, sizeof msg);
    if (strncmp(msg, want, strlen(want)) != 0 ||
        (also != NULL && strstr(msg, also) == NULL))
        fail_msg("notification \"%s\", wanted \"%s\"...\"%s\"", msg, want,
                 also ? also : "");
}

/* A service manager's side of the readiness protocol: a datagram socket
 * named by NOTIFY_SOCKET. mkd says READY=1 once a PHP worker has loaded
 * the application (the control socket shows it ready then), RELOADING=1
 * with MONOTONIC_USEC and READY=1 again around SIGHUP, STOPPING=1 on
 * SIGTERM. */
static void test_notify(void **st)
{
    char sock[300], dir_arg[320], out[64], *status = NULL;
    const char *argv[] = {
        mkt_mkd_path(),     "serve", dir_arg, "--port=0", "--workers=1",
        "--log_level=warn", NULL};
    const char *st_args[] = {"status", dir_arg, NULL};
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd, wst;
    pid_t pid;
    (void)st;

    snprintf(dir_arg, sizeof dir_arg, "--data_dir=%s", D.dir);
    assert_int_equal(chmod(D.dir, 0755), 0); /* the workers' user reads */
    snprintf(sock, sizeof sock, "%s/notify.sock", D.dir);
    assert_true(strlen(sock) < sizeof sa.sun_path);
    memcpy(sa.sun_path, sock, strlen(sock));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("NOTIFY_SOCKET", sock, 1);
        execv(argv[0], (char **)(uintptr_t)argv);
        _exit(127);
    }
    expect_notification(fd, "READY=1\n", "STATUS=serving on port ");
    assert_int_equal(mkt_run_mkd_output(st_args, &status), 0);
    assert_non_null(status);
    assert_non_null(strstr(status, "backend.workers_idle 1"));
    free(status);
    kill(pid, SIGHUP);
    expect_notification(fd, "RELOADING=1\nMONOTONIC_USEC=", "STATUS=");
    expect_notification(fd, "READY=1\n", "STATUS=serving");
    kill(pid, SIGTERM);
    expect_notification(fd, "STOPPING=1\n", "STATUS=stopping");
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    /* Nothing more, and nothing from the workers: the variable was
     * mkd's alone. */
    assert_int_equal(recv(fd, out, sizeof out, MSG_DONTWAIT), -1);
    close(fd);
}

/* An application that needs PCRE's JIT at load: a warning (the JIT could
 * not allocate its memory) stops it, so its worker never becomes ready. */
static const char jit_app[] =
    "<?php\n"
    "set_error_handler(function (int $no, string $msg): bool {\n"
    "    throw new ErrorException($msg, 0, $no);\n"
    "});\n"
    "if (ini_get('pcre.jit') !== '1') throw new Exception('pcre.jit off');\n"
    "if (preg_match('/^(a|b)+c$/', str_repeat('ab', 50) . 'c') !== 1)\n"
    "    throw new Exception(preg_last_error_msg());\n"
    "restore_error_handler();\n"
    "return function (string $body, Megaki\\Context $ctx): string {\n"
    "    return $body;\n"
    "};\n";

/* config --test with the JIT app, in a child that first forbids memory
 * both written and executed, as MemoryDenyWriteExecute=yes does (the
 * kernel's PR_SET_MDWE, inherited by mkd and its workers): 0 when the
 * worker failed with PCRE's JIT error, 77 when the kernel lacks it. */
static int jit_app_under_mdwe(const char *const *args)
{
    char *out = NULL;
    pid_t pid = fork();
    int st;

    if (pid == 0) {
        if (prctl(65 /* PR_SET_MDWE */, 1 /* REFUSE_EXEC_GAIN */, 0, 0, 0))
            _exit(77);
        st = mkt_run_mkd_output(args, &out);
        _exit(st == 1 && out != NULL &&
                      strstr(out, "Allocation of JIT memory failed") != NULL
                  ? 0
                  : 1);
    }
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* dist/mkd.service leaves MemoryDenyWriteExecute off so that PCRE's JIT
 * works in the workers, and mkd leaves pcre.jit as PHP has it: a worker
 * that needs the JIT loads. Under the setting the unit leaves out, the
 * same worker fails, which is why it is left out (dist/tests checks the
 * unit's side). */
static void test_pcre_jit(void **st)
{
    char app[400], app_arg[420], dir_arg[320];
    const char *args[] = {"config", "--test", dir_arg, app_arg, NULL};
    char *out = NULL;
    FILE *f;
    int r;
    (void)st;

    assert_int_equal(chmod(D.dir, 0755), 0);
    snprintf(app, sizeof app, "%s/jit.php", D.dir);
    assert_non_null(f = fopen(app, "w"));
    fputs(jit_app, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(app, 0644), 0);
    snprintf(app_arg, sizeof app_arg, "--app=%s", app);
    snprintf(dir_arg, sizeof dir_arg, "--data_dir=%s", D.dir);
    if (run(&out, args) != 0)
        fail_msg("the JIT application did not load:\n%s", out);
    free(out);
    if (tl_slow_build()) /* valgrind's own JIT needs such memory */
        return;
    r = jit_app_under_mdwe(args);
    if (r == 77)
        fprintf(stderr, "(no PR_SET_MDWE in this kernel: that half skipped)\n");
    else
        assert_int_equal(r, 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, mkt_setup, mkt_teardown)
    const struct CMUnitTest tests[] = {
        T(test_usage_errors),      T(test_help),
        T(test_value_forms),       T(test_every_config_option),
        T(test_ready_file_stdout), T(test_config_test_good),
        T(test_config_test_bad),   T(test_notify),
        T(test_pcre_jit),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
