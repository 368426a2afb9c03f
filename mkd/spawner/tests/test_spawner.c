/*
 * test_spawner.c -- the spawner: its message codec (every type round
 * trips; reserved and unused fields, sizes, ranges and unknown types are
 * refused), and the real process driven through the client on a libuv
 * loop, unprivileged: a worker started with exactly fds 0-3 (the channel
 * and the output ours, nothing of the spawner's), a start that fails and
 * one after it that works, a KILL for a process it did not start ignored,
 * exits reported, a close that waits for the workers' ends, a malformed
 * record that ends the conversation, and a spawner that dies reported
 * lost.
 *
 * The test binary is its own spawner: run as "test_spawner serve DIR" it
 * serves on fd 3 with a shell script standing in for PHP (DIR/worker.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "testlib.h"

static char dir[64];

/* --- the codec ------------------------------------------------------------ */

static void roundtrip(spawner_msg m)
{
    uint8_t buf[SPAWNER_MSG_LEN];
    spawner_msg back;

    assert_int_equal(spawner_msg_encode(&m, buf), MKD_OK);
    assert_int_equal(spawner_msg_parse(buf, sizeof buf, &back), MKD_OK);
    assert_int_equal(back.type, m.type);
    assert_int_equal(back.sig, m.sig);
    assert_int_equal(back.slot, m.slot);
    assert_int_equal(back.pid, m.pid);
    assert_int_equal(back.err, m.err);
    assert_int_equal(back.status, m.status);
    assert_int_equal(back.max_message, m.max_message);
    assert_true(back.settings == m.settings);
}

static void test_codec(void **st)
{
    spawner_msg m = {SPAWNER_SPAWN, 0, 7, 0, 0, 0, 1u << 20, 0}, out;
    uint8_t buf[SPAWNER_MSG_LEN];
    (void)st;

    roundtrip(m);
    roundtrip((spawner_msg){SPAWNER_SPAWNED, 0, 7, 4242, 0, 0, 0, 0});
    roundtrip((spawner_msg){SPAWNER_FAILED, 0, 7, 0, ENOENT, 0, 0, 0});
    roundtrip((spawner_msg){SPAWNER_KILL, SIGKILL, 0, 4242, 0, 0, 0, 0});
    roundtrip((spawner_msg){SPAWNER_EXITED, 9, 0, 4242, 0, -1, 0, 0});
    roundtrip((spawner_msg){SPAWNER_RELOAD, 0, 0, 0, 0, 0, 0, 0});
    roundtrip((spawner_msg){SPAWNER_RELOADED, 0, 0, 0, 0, 0, 0, 0});
    roundtrip((spawner_msg){SPAWNER_RELOAD, 0, 0, 0, 0, 0, 0, ~0ull});
    roundtrip((spawner_msg){SPAWNER_SPAWN, 0, 7, 0, 0, 0, 1u << 20,
                            0x0123456789abcdefull});
    /* Nothing malformed is ever encoded. */
    m = (spawner_msg){SPAWNER_KILL, SIGSTOP, 0, 4242, 0, 0, 0, 0};
    assert_int_equal(spawner_msg_encode(&m, buf), MKD_ERR_ARG);
    m = (spawner_msg){SPAWNER_SPAWN, 0, 7, 1, 0, 0, 1u << 20, 0}; /* pid */
    assert_int_equal(spawner_msg_encode(&m, buf), MKD_ERR_ARG);
    m = (spawner_msg){SPAWNER_SPAWN, 0, 7, 0, 0, 0, 0, 0}; /* no limit */
    assert_int_equal(spawner_msg_encode(&m, buf), MKD_ERR_ARG);
    m = (spawner_msg){SPAWNER_SPAWN, 0, 7, 0, 0, 0, SPAWNER_MESSAGE_MAX + 1, 0};
    assert_int_equal(spawner_msg_encode(&m, buf), MKD_ERR_ARG);
    m = (spawner_msg){SPAWNER_KILL, SIGTERM, 0, 4242, 0, 0, 1, 0}; /* unused */
    assert_int_equal(spawner_msg_encode(&m, buf), MKD_ERR_ARG);
    m = (spawner_msg){SPAWNER_KILL, SIGTERM, 0, 4242, 0, 0, 0, 1}; /* unused */
    assert_int_equal(spawner_msg_encode(&m, buf), MKD_ERR_ARG);
    /* Parsing refuses: a size other than 36, reserved bytes, an unknown
     * type, a signal other than TERM or KILL, a pid of 0 or below. */
    m = (spawner_msg){SPAWNER_KILL, SIGTERM, 0, 4242, 0, 0, 0, 0};
    assert_int_equal(spawner_msg_encode(&m, buf), MKD_OK);
    assert_int_equal(spawner_msg_parse(buf, SPAWNER_MSG_LEN - 1, &out),
                     MKD_ERR_FRAME_MALFORMED);
    buf[2] = 1;
    assert_int_equal(spawner_msg_parse(buf, SPAWNER_MSG_LEN, &out),
                     MKD_ERR_FRAME_MALFORMED);
    buf[2] = 0;
    buf[0] = 99;
    assert_int_equal(spawner_msg_parse(buf, SPAWNER_MSG_LEN, &out),
                     MKD_ERR_FRAME_TYPE);
    buf[0] = SPAWNER_KILL;
    buf[1] = SIGSTOP;
    assert_int_equal(spawner_msg_parse(buf, SPAWNER_MSG_LEN, &out),
                     MKD_ERR_FRAME_MALFORMED);
    buf[1] = SIGTERM;
    memset(buf + 8, 0xff, 4); /* pid -1: every process */
    assert_int_equal(spawner_msg_parse(buf, SPAWNER_MSG_LEN, &out),
                     MKD_ERR_FRAME_MALFORMED);
    assert_int_equal(out.type, 0);
}

/* --- the process ------------------------------------------------------------ */

typedef struct ctx {
    int exits, lost;
    int last_pid, last_sig;
} ctx;

static ctx cx;

static void on_exited(void *arg, int pid, int64_t status, int sig)
{
    (void)arg;
    (void)status;
    cx.exits++;
    cx.last_pid = pid;
    cx.last_sig = sig;
}

static void on_lost(void *arg)
{
    (void)arg;
    cx.lost++;
}

/* Run the loop until *flag reaches want (a deadline for a busy machine). */
static void run_until(uv_loop_t *loop, const int *flag, int want)
{
    uint64_t until = tl_now_ms() + tl_deadline_ms(20000);

    while (*flag < want && tl_now_ms() < until)
        (void)uv_run(loop, UV_RUN_NOWAIT), tl_sleep_ms(5);
    assert_int_equal(*flag, want);
}

static uint64_t digest_of(const char *php);

/* A loop and a spawner serving from this test binary ("serve" mode). The
 * binary is named by its path, not /proc/self/exe as mkd does: under
 * valgrind that would be valgrind itself, while uv_exepath sees through. */
static spawner *start(uv_loop_t *loop, pegasus_launcher **l)
{
    char exe[512];
    size_t n = sizeof exe;
    const char *argv[] = {exe, "serve", dir, NULL};
    spawner *s = NULL;
    mkd_diag d;

    memset(&cx, 0, sizeof cx);
    assert_int_equal(uv_loop_init(loop), 0);
    assert_int_equal(uv_exepath(exe, &n), 0);
    assert_int_equal(
        spawner_start(loop, argv, digest_of("/bin/sh"), on_lost, NULL, &s, &d),
        MKD_OK);
    *l = spawner_launcher(s);
    (*l)->exited = on_exited;
    return s;
}

/* Close the spawner, let the loop end, and close it; then let the
 * launcher go, as Pegasus does when its pool is freed (the memory stays
 * until then, which ASan and valgrind check). */
static void finish(uv_loop_t *loop, spawner *s)
{
    pegasus_launcher *l = spawner_launcher(s);

    spawner_close(s);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(loop), 0);
    assert_non_null(l->exited); /* still ours to read */
    l->ops->release(l);
}

/* The fds of pid, as a sorted list "0 1 2 3". */
static void fds_of(int pid, char *out, size_t cap)
{
    char path[64];
    int have[64] = {0};
    struct dirent *e;
    DIR *dp;
    size_t n = 0;

    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    assert_non_null(dp = opendir(path));
    while ((e = readdir(dp)) != NULL)
        if (e->d_name[0] != '.' && atoi(e->d_name) < 64)
            have[atoi(e->d_name)] = 1;
    closedir(dp);
    out[0] = '\0';
    for (int i = 0; i < 64; i++)
        if (have[i])
            n += (size_t)snprintf(out + n, cap - n, n ? " %d" : "%d", i);
}

/* The worker has exec'd sleep (the script's last step). */
static int is_sleeping(int pid)
{
    char path[64], exe[256];
    ssize_t n;

    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    n = readlink(path, exe, sizeof exe - 1);
    if (n <= 0)
        return 0;
    exe[n] = '\0';
    return strstr(exe, "sleep") != NULL;
}

static void test_spawn_and_kill(void **st)
{
    uv_loop_t loop;
    spawner *s;
    pegasus_launcher *l;
    int pid = 0, ipc = -1, out = -1, ok = 0;
    char buf[64], fds[64];
    ssize_t n;
    (void)st;

    s = start(&loop, &l);
    assert_int_equal(l->ops->spawn(l, 3, 4096, &pid, &ipc, &out), MKD_OK);
    assert_true(pid > 0);
    /* Its channel and its output are ours. */
    n = read(ipc, buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    /* The limit is the one mkd asked for, not the spawner's own (the
     * defaults' 1 MiB). */
    assert_string_equal(buf, "ready --max-message=4096 --worker=3\n");
    n = read(out, buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "hello from the worker"));
    /* Exactly stdin, stdout, stderr and the channel: nothing of the
     * spawner's (its socket to mkd) reached the worker. */
    TL_POLL_UNTIL(ok, is_sleeping(pid), 20000);
    assert_true(ok);
    fds_of(pid, fds, sizeof fds);
    assert_string_equal(fds, "0 1 2 3");
    /* A KILL for a process it did not start is ignored: ours lives. */
    assert_int_equal(l->ops->kill(l, (int)getpid(), SIGKILL), MKD_OK);
    assert_int_equal(l->ops->kill(l, pid, SIGTERM), MKD_OK);
    run_until(&loop, &cx.exits, 1);
    assert_int_equal(cx.last_pid, pid);
    assert_int_equal(cx.last_sig, SIGTERM);
    close(ipc);
    close(out);
    finish(&loop, s);
    assert_int_equal(cx.lost, 0);
}

static void test_failed_start(void **st)
{
    uv_loop_t loop;
    spawner *s;
    pegasus_launcher *l;
    int pid = 0, ipc = -1, out = -1;
    mkd_diag d;
    (void)st;

    s = start(&loop, &l);
    /* A reload whose settings are not the ones mkd read is refused, and
     * the spawner keeps the settings it had: a start still works. */
    assert_int_equal(spawner_reload(s, digest_of("/usr/bin/php"), &d),
                     MKD_ERR_CONFIG_CHANGED);
    assert_int_equal(l->ops->spawn(l, 1, 4096, &pid, &ipc, &out), MKD_OK);
    close(ipc);
    close(out);
    /* A reload breaks the command (the serving side's reload flips PHP to
     * a missing binary): the start fails, the spawner stays; the next
     * reload mends it and a start works. */
    assert_int_equal(spawner_reload(s, digest_of("/nonexistent/php"), &d),
                     MKD_OK);
    assert_int_equal(l->ops->spawn(l, 2, 4096, &pid, &ipc, &out),
                     MKD_ERR_SYSTEM);
    assert_int_equal(spawner_reload(s, digest_of("/bin/sh"), &d), MKD_OK);
    assert_int_equal(l->ops->spawn(l, 1, 4096, &pid, &ipc, &out), MKD_OK);
    close(ipc);
    close(out);
    /* Closing waits for the workers' end (the spawner kills them when we
     * go, or they see their channel close). */
    finish(&loop, s);
    assert_int_equal(cx.exits, 2);
    assert_int_equal(cx.lost, 0);
}

static void test_lost(void **st)
{
    uv_loop_t loop;
    spawner *s;
    pegasus_launcher *l;
    int pid = 0, ipc = -1, out = -1;
    (void)st;

    s = start(&loop, &l);
    assert_int_equal(l->ops->spawn(l, 2, 4096, &pid, &ipc, &out), MKD_OK);
    close(ipc);
    close(out);
    /* The spawner is killed under us: mkd hears it is lost, and the
     * worker it held is reported ended. */
    assert_int_equal(kill(spawner__pid(s), SIGKILL), 0);
    run_until(&loop, &cx.lost, 1);
    assert_int_equal(cx.exits, 1);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    /* Its worker outlived it (nobody was left to kill it): ours to end. */
    (void)kill(pid, SIGKILL);
    (void)waitpid(pid, NULL, WNOHANG);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* Its handles are gone, but Pegasus may still hold the launcher:
     * the memory stays until it lets go (ASan checks both ways). */
    assert_non_null(l->exited);
    l->ops->release(l);
}

/* A malformed record from "mkd": the spawner ends the conversation and
 * kills what it started, and says so in its exit status. */
static void test_malformed_from_mkd(void **st)
{
    int sv[2], status;
    char exe[512];
    size_t n = sizeof exe;
    pid_t child;
    (void)st;

    assert_int_equal(uv_exepath(exe, &n), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(sv[0]);
        if (dup2(sv[1], SPAWNER_FD) < 0)
            _exit(99);
        execl(exe, "test_spawner", "serve", dir, (char *)NULL);
        _exit(98);
    }
    close(sv[1]);
    assert_int_equal(send(sv[0], "junk!", 5, 0), 5);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    close(sv[0]);
}

/* --- the serving side (this binary, run as the spawner) -------------------- */

static spawner_settings settings;
static char script[128], app[128];

static const spawner_settings *current(void *arg)
{
    (void)arg;
    return &settings;
}

/* The worker settings the serving side reads, PHP being php. */
static void settings_for(pegasus_config *pc, const char *d, const char *php)
{
    snprintf(script, sizeof script, "%s/worker.sh", d);
    snprintf(app, sizeof app, "%s/app", d);
    pegasus_config_defaults(pc);
    pc->php = php;
    pc->arcangelo = script;
    pc->app = app;
}

static uint64_t digest_of(const char *php)
{
    pegasus_config pc;

    settings_for(&pc, dir, php);
    return pegasus_command_digest(&pc);
}

/* Each reload flips PHP between the shell and a binary that is not
 * there, if that is what mkd read (want). */
static int reload(void *arg, uint64_t want, mkd_diag *d)
{
    const char *php = strcmp(settings.pc.php, "/bin/sh") == 0
                          ? "/nonexistent/php"
                          : "/bin/sh";
    (void)arg;

    if (digest_of(php) != want)
        return mkd_fail(d, MKD_ERR_CONFIG_CHANGED, "not what mkd read");
    settings.pc.php = php;
    settings.digest = want;
    return MKD_OK;
}

static int serve(const char *d)
{
    spawner_source src = {current, reload, NULL};

    snprintf(dir, sizeof dir, "%s", d);
    settings_for(&settings.pc, d, "/bin/sh");
    settings.digest = pegasus_command_digest(&settings.pc);
    settings.uid = settings.gid = -1;
    return spawner_serve(SPAWNER_FD, &src);
}

/* The stand-in worker: says hello on both ends, then becomes sleep. */
static const char worker_sh[] = "echo \"hello from the worker\"\n"
                                "echo \"ready $1 $2\" >&3\n"
                                "exec sleep 60\n";

static int setup(void **st)
{
    char path[128];
    (void)st;

    snprintf(path, sizeof path, "%s/worker.sh", dir);
    if (tl_write_file(path, worker_sh, sizeof worker_sh - 1) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/app", dir);
    return tl_write_file(path, "", 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec),
        cmocka_unit_test(test_spawn_and_kill),
        cmocka_unit_test(test_failed_start),
        cmocka_unit_test(test_lost),
        cmocka_unit_test(test_malformed_from_mkd),
    };
    int r;

    if (argc == 3 && strcmp(argv[1], "serve") == 0)
        return serve(argv[2]);
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof dir, "/tmp/spawner.XXXXXX");
    if (mkdtemp(dir) == NULL || setup(NULL) != 0)
        return 1;
    r = cmocka_run_group_tests_name("spawner", tests, NULL, NULL);
    snprintf(app, sizeof app, "rm -rf '%s'", dir);
    if (system(app) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return r;
}
