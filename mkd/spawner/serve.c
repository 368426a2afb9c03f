/*
 * serve.c -- the spawner process (spawner.h): a poll loop over mkd's
 * socket and a self-pipe for SIGCHLD. It starts workers, signals them,
 * reaps them and reports their exits; when mkd's end closes it kills what
 * is left and returns.
 *
 * IMPLEMENTATION NOTES
 *  - It runs as root. What it reads from mkd is one fixed-size record at a
 *    time, parsed in full (spawner_msg.c, fuzzed); a malformed one ends
 *    the conversation. It signals only the process groups of workers it
 *    started and has not yet reaped, so a pid from mkd can name nothing
 *    else.
 *  - A worker is started like uv_spawn does it: fork, then in the child a
 *    new session (setsid: kill(-pid) reaches everything the application
 *    starts), default signal dispositions, the worker's group and user
 *    (set for good: no way back to root), its directory, /dev/null on
 *    stdin, the output pipe on stdout and stderr, the channel on fd 3,
 *    every other descriptor closed at exec. An exec that fails writes its
 *    errno into a close-on-exec pipe, so the parent tells "started" from
 *    "could not start" before it answers.
 */
#define _GNU_SOURCE /* close_range, pipe2, SOCK_CLOEXEC with setgroups */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "mkd_log.h"

extern char **environ;

typedef struct serve_state {
    int fd; /* mkd */
    const spawner_source *src;
    pid_t *kids; /* started and not yet reaped */
    size_t nkids, cap;
} serve_state;

static int chld_pipe[2] = {-1, -1};

static void on_sigchld(int sig)
{
    int saved = errno;
    char c = 0;

    (void)sig;
    if (write(chld_pipe[1], &c, 1) < 0) {
        /* full: a wake-up is already pending */
    }
    errno = saved;
}

/* --- children ------------------------------------------------------------ */

/* Room for one more child, made before the fork: once a worker runs, its
 * pid is recorded without a chance to fail. */
static int kid_reserve(serve_state *st)
{
    if (st->nkids == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        pid_t *k = realloc(st->kids, cap * sizeof *k);
        if (k == NULL)
            return ENOMEM;
        st->kids = k;
        st->cap = cap;
    }
    return 0;
}

/* Take pid off the list; 0 if it was not there. */
static int kid_remove(serve_state *st, pid_t pid)
{
    for (size_t i = 0; i < st->nkids; i++)
        if (st->kids[i] == pid) {
            st->kids[i] = st->kids[--st->nkids];
            return 1;
        }
    return 0;
}

static int kid_known(const serve_state *st, pid_t pid)
{
    for (size_t i = 0; i < st->nkids; i++)
        if (st->kids[i] == pid)
            return 1;
    return 0;
}

/* --- the worker, in the child ----------------------------------------------- */

/* Leave root for the workers' group and user, for good. */
static int become_worker(const spawner_settings *s)
{
    if (s->gid >= 0) {
        gid_t g = (gid_t)s->gid;
        if (setgroups(1, &g) != 0 || setgid(g) != 0)
            return errno;
    }
    if (s->uid >= 0) {
        if (setuid((uid_t)s->uid) != 0)
            return errno;
        if (s->uid != 0 && (setuid(0) == 0 || geteuid() == 0))
            return EPERM;
    }
    return 0;
}

/* The descriptors the worker has: 0 /dev/null, 1 and 2 the output, 3 the
 * channel; everything else closes at exec. */
static int worker_fds(int out_w, int ipc_w)
{
    int nul = open("/dev/null", O_RDONLY);

    if (nul < 0 || dup2(nul, 0) < 0 || dup2(out_w, 1) < 0 ||
        dup2(out_w, 2) < 0 || dup2(ipc_w, 3) < 0)
        return errno;
    if (close_range(4, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
        return errno;
    return 0;
}

static void default_signals(void)
{
    static const int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD};
    sigset_t none;

    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        (void)signal(sigs[i], SIG_DFL);
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
}

/* In the forked child: become the worker and exec it. Never returns. */
static void child_exec(const spawner_settings *s, const pegasus_command *cmd,
                       int out_w, int ipc_w, int err_w)
{
    int e;

    default_signals();
    if (setsid() < 0 || (e = become_worker(s)) != 0 || chdir(cmd->dir) != 0 ||
        (e = worker_fds(out_w, ipc_w)) != 0) {
        e = errno ? errno : EPERM;
        goto fail;
    }
    /* execvp searches PATH in environ, and gives environ to the worker:
     * both are the worker's own (PATH and the configured entries). */
    environ = (char **)(uintptr_t)cmd->envp;
    execvp(cmd->argv[0], (char **)(uintptr_t)cmd->argv);
    e = errno;
fail:
    if (write(err_w, &e, sizeof e) < 0) {
        /* the parent sees a short read: a failure all the same */
    }
    _exit(127);
}

/* --- starting one -------------------------------------------------------- */

typedef struct spawn_fds {
    int ipc[2], out[2], err[2]; /* ours [0], the worker's [1] */
} spawn_fds;

static void close_fd(int *fd)
{
    if (*fd >= 0)
        (void)close(*fd);
    *fd = -1;
}

static void spawn_fds_close(spawn_fds *f)
{
    for (int i = 0; i < 2; i++) {
        close_fd(&f->ipc[i]);
        close_fd(&f->out[i]);
        close_fd(&f->err[i]);
    }
}

static int spawn_fds_open(spawn_fds *f)
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->ipc) != 0 ||
        pipe2(f->out, O_CLOEXEC) != 0 || pipe2(f->err, O_CLOEXEC) != 0)
        return errno;
    return 0;
}

/* After the fork: did the exec succeed? 0, or the child's errno (then it
 * has been reaped). */
static int exec_result(spawn_fds *f, pid_t pid)
{
    int e = 0, st;
    ssize_t n;

    close_fd(&f->ipc[1]);
    close_fd(&f->out[1]);
    close_fd(&f->err[1]);
    do
        n = read(f->err[0], &e, sizeof e);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return 0; /* closed by the exec */
    if (n != (ssize_t)sizeof e || e <= 0)
        e = EIO;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return e;
}

/* Start the worker of slot. 0 with *pid and our ends, or an errno. */
static int spawn_worker(serve_state *st, const spawner_msg *m, pid_t *pid,
                        int *ipc_fd, int *out_fd)
{
    const spawner_settings *s = st->src->current(st->src->arg);
    spawn_fds f = {{-1, -1}, {-1, -1}, {-1, -1}};
    pegasus_config pc = s->pc;
    pegasus_command cmd;
    mkd_diag d;
    int e;

    /* mkd names the settings it means; a command other than those would
     * be a worker the pool does not know it runs. */
    if (m->settings != s->digest) {
        mkd_error(0, "spawner: mkd's worker settings are not the ones this "
                     "spawner read (the configuration changed between the "
                     "two readings): not starting a worker; SIGHUP mkd");
        return ESTALE;
    }
    /* The pool's limit, not this process's reading of the file: mkd holds
     * the worker to the one it asked for. */
    pc.max_message = m->max_message;
    if (pegasus_command_build(&pc, m->slot, &cmd, &d) != MKD_OK) {
        mkd_error(0, "spawner: %s", d.text);
        return ENOENT;
    }
    if ((e = spawn_fds_open(&f)) != 0 || (e = kid_reserve(st)) != 0)
        goto out;
    if ((*pid = fork()) < 0) {
        e = errno;
        goto out;
    }
    if (*pid == 0)
        child_exec(s, &cmd, f.out[1], f.ipc[1], f.err[1]);
    if ((e = exec_result(&f, *pid)) != 0)
        goto out;
    st->kids[st->nkids++] = *pid;
    *ipc_fd = f.ipc[0];
    *out_fd = f.out[0];
    f.ipc[0] = f.out[0] = -1;
out:
    spawn_fds_close(&f);
    pegasus_command_free(&cmd);
    return e;
}

/* --- talking to mkd ---------------------------------------------------------- */

static int send_msg(int fd, const spawner_msg *m, const int *fds, int nfds)
{
    uint8_t buf[SPAWNER_MSG_LEN];
    int r;

    if ((r = spawner_msg_encode(m, buf)) != MKD_OK)
        return r;
    return spawner__send(fd, buf, sizeof buf, fds, nfds);
}

static int on_spawn(serve_state *st, const spawner_msg *m)
{
    spawner_msg reply = {0};
    int fds[2] = {-1, -1}, r;
    pid_t pid = 0;
    int e = spawn_worker(st, m, &pid, &fds[0], &fds[1]);

    reply.slot = m->slot;
    if (e != 0) {
        reply.type = SPAWNER_FAILED;
        reply.err = e;
        return send_msg(st->fd, &reply, NULL, 0);
    }
    reply.type = SPAWNER_SPAWNED;
    reply.pid = pid;
    r = send_msg(st->fd, &reply, fds, 2);
    (void)close(fds[0]);
    (void)close(fds[1]);
    return r;
}

static int on_kill(serve_state *st, const spawner_msg *m)
{
    if (!kid_known(st, m->pid))
        return MKD_OK; /* reaped already, or never ours: nothing to do */
    if (kill(-m->pid, m->sig) != 0)
        (void)kill(m->pid, m->sig);
    return MKD_OK;
}

static int on_reload(serve_state *st, const spawner_msg *m)
{
    spawner_msg reply = {.type = SPAWNER_RELOADED};
    mkd_diag d;
    int r = st->src->reload(st->src->arg, m->settings, &d);

    if (r != MKD_OK) {
        mkd_error(0, "spawner: reload failed, keeping the old settings: %s",
                  mkd_diag_text(&d, r));
        reply.err = r == MKD_ERR_CONFIG_CHANGED ? ESTALE : EINVAL;
    }
    return send_msg(st->fd, &reply, NULL, 0);
}

/* One record from mkd. MKD_OK to go on, MKD_STOPPED at its end, or an
 * error (the conversation ends). */
static int on_message(serve_state *st)
{
    uint8_t buf[SPAWNER_MSG_LEN + 1];
    int fds[SPAWNER_MAX_FDS], nfds = 0;
    spawner_msg m;
    long n = spawner__recv(st->fd, buf, sizeof buf, fds, &nfds);
    int r;

    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? MKD_OK
                                                 : MKD_ERR_FRAME_MALFORMED;
    if (n == 0)
        return MKD_STOPPED;
    for (int i = 0; i < nfds; i++)
        (void)close(fds[i]); /* mkd sends none: never keep one */
    if (nfds > 0)
        return MKD_ERR_FRAME_MALFORMED;
    if ((r = spawner_msg_parse(buf, (size_t)n, &m)) != MKD_OK) {
        mkd_error(0, "spawner: %s from mkd: conversation ended",
                  mkd_strerror(r));
        return r;
    }
    switch (m.type) {
    case SPAWNER_SPAWN:
        return on_spawn(st, &m);
    case SPAWNER_KILL:
        return on_kill(st, &m);
    case SPAWNER_RELOAD:
        return on_reload(st, &m);
    default:
        mkd_error(0, "spawner: %s is not mkd's to send",
                  spawner_msg_name(m.type));
        return MKD_ERR_FRAME_TYPE;
    }
}

/* Every child that ended: reported (ours) or just reaped. */
static int reap(serve_state *st)
{
    spawner_msg m = {0};
    pid_t pid;
    int status, r;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (!kid_remove(st, pid))
            continue;
        m.type = SPAWNER_EXITED;
        m.pid = pid;
        m.status = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
        m.sig = WIFSIGNALED(status) ? (uint8_t)WTERMSIG(status) : 0;
        if ((r = send_msg(st->fd, &m, NULL, 0)) != MKD_OK)
            return r;
    }
    return MKD_OK;
}

/* The end: every worker killed and reaped. */
static void kill_all(serve_state *st)
{
    int status;

    for (size_t i = 0; i < st->nkids; i++)
        if (kill(-st->kids[i], SIGKILL) != 0)
            (void)kill(st->kids[i], SIGKILL);
    for (size_t i = 0; i < st->nkids; i++)
        while (waitpid(st->kids[i], &status, 0) < 0 && errno == EINTR)
            ;
    st->nkids = 0;
}

static int setup_signals(void)
{
    struct sigaction sa;
    static const int ignored[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP};

    if (pipe2(chld_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return MKD_ERR_SYSTEM;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, &sa, NULL) != 0)
        return MKD_ERR_SYSTEM;
    /* mkd decides when this process ends (it closes the socket): a
     * terminal's ^C or a stray signal to the group must not. */
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        (void)signal(ignored[i], SIG_IGN);
    return MKD_OK;
}

static int serve_loop(serve_state *st)
{
    struct pollfd p[2];
    char drain[64];
    int r = MKD_OK;

    for (;;) {
        p[0].fd = st->fd;
        p[0].events = POLLIN;
        p[1].fd = chld_pipe[0];
        p[1].events = POLLIN;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return MKD_ERR_SYSTEM;
        }
        if (p[1].revents & POLLIN) {
            while (read(chld_pipe[0], drain, sizeof drain) > 0)
                ;
            if ((r = reap(st)) != MKD_OK)
                return r;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if ((r = on_message(st)) != MKD_OK)
                return r == MKD_STOPPED ? MKD_OK : r;
        }
    }
}

int spawner_serve(int fd, const spawner_source *src)
{
    serve_state st = {fd, src, NULL, 0, 0};
    int r;

    /* Nothing of this process may be read or traced by the workers. */
    (void)prctl(PR_SET_DUMPABLE, 0);
    if ((r = setup_signals()) != MKD_OK) {
        mkd_error(0, "spawner: cannot set up signals: %s", strerror(errno));
        return 1;
    }
    r = serve_loop(&st);
    kill_all(&st);
    free(st.kids);
    return r == MKD_OK ? 0 : 1;
}
