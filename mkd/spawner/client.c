/*
 * client.c -- mkd's side of the spawner (spawner.h): start it, be Pegasus's
 * launcher through it, deliver the exits it reports on the loop, and let
 * it go.
 *
 * IMPLEMENTATION NOTES
 *  - A spawn is synchronous, as uv_spawn is: the SPAWN record goes out and
 *    the answer is awaited (a fork and an exec, a millisecond or two, with
 *    a deadline in case the spawner hangs). So is a reload (the spawner
 *    reads the configuration file), so that mkd knows before it changes
 *    anything whether the spawner holds the same worker settings. EXITED
 *    records that arrive meanwhile are kept and delivered from a
 *    zero-delay timer, never from inside spawn: Pegasus does not expect
 *    its exit handling to run in the middle of starting a worker.
 *  - Everything else the spawner says is read when its socket is readable
 *    (uv_poll). It is trusted less than itself: a record that does not
 *    parse, or one it has no business sending, ends the conversation, and
 *    mkd is told the spawner is lost.
 *  - Closing waits for every worker it started to be reported ended
 *    (Pegasus has killed them by then), a few seconds at most, so that
 *    Pegasus learns of each exit and frees its workers; what is still
 *    unreported then is reported as killed, and the socket closes, which
 *    ends the spawner.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "mkd_log.h"

#define SPAWN_DEADLINE_MS 10000
#define CLOSE_WAIT_MS     5000
#define PENDING_MAX       64

struct spawner {
    pegasus_launcher launcher; /* first: the launcher's address is ours */
    uv_loop_t *loop;
    uv_process_t proc;
    uv_poll_t poll;
    uv_timer_t timer; /* delivering kept exits; the close deadline */
    int fd;
    uint64_t settings; /* the digest of mkd's worker settings */
    int handles;       /* open handles; the memory goes with the last */
    int started;       /* the process runs (uv_spawn succeeded) */
    int watching;      /* the poll handle exists */
    int closing, gone, exited;
    void (*lost)(void *arg);
    void *lost_arg;
    int *live; /* pids started and not reported ended */
    size_t nlive, cap;
    spawner_msg pending[PENDING_MAX]; /* exits read during a spawn */
    size_t npending;
};

static void on_readable(uv_poll_t *h, int status, int events);
static void finish(spawner *s);

/* --- the workers it started ------------------------------------------------ */

static int live_add(spawner *s, int pid)
{
    if (s->nlive == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        int *l = realloc(s->live, cap * sizeof *l);
        if (l == NULL)
            return MKD_ERR_NOMEM;
        s->live = l;
        s->cap = cap;
    }
    s->live[s->nlive++] = pid;
    return MKD_OK;
}

static int live_remove(spawner *s, int pid)
{
    for (size_t i = 0; i < s->nlive; i++)
        if (s->live[i] == pid) {
            s->live[i] = s->live[--s->nlive];
            return 1;
        }
    return 0;
}

/* Tell Pegasus a worker ended (if it still listens). */
static void report_exit(spawner *s, int pid, int64_t status, int sig)
{
    if (!live_remove(s, pid))
        return; /* not ours, or reported already */
    if (s->launcher.exited != NULL)
        s->launcher.exited(s->launcher.exited_arg, pid, status, sig);
    if (s->closing && s->nlive == 0)
        finish(s);
}

/* --- lifetime ------------------------------------------------------------- */

/* The memory goes when both sides are done with it: the loop with our
 * handles, and Pegasus with the launcher, which it holds until its pool
 * is freed; at shutdown that may come after spawner_close. */
static void free_if_unused(spawner *s)
{
    if (s->handles > 0 || s->launcher.exited != NULL)
        return;
    free(s->live);
    free(s);
}

static void on_closed(uv_handle_t *h)
{
    spawner *s = h->data;

    s->handles--;
    free_if_unused(s);
}

static void close_handle(spawner *s, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_closed);
}

/* The conversation is over: the socket closes (which ends the spawner),
 * what was never reported ended is reported killed, and the handles go
 * (the process handle once the spawner has exited). */
static void finish(spawner *s)
{
    if (s->gone)
        return;
    s->gone = 1;
    if (s->watching)
        close_handle(s, (uv_handle_t *)&s->poll);
    close_handle(s, (uv_handle_t *)&s->timer);
    if (s->fd >= 0)
        (void)close(s->fd);
    s->fd = -1;
    while (s->nlive > 0)
        report_exit(s, s->live[s->nlive - 1], 0, SIGKILL);
    /* The process handle goes once it has exited (on_exit_cb), or now if
     * it never ran. */
    if (s->exited || !s->started)
        close_handle(s, (uv_handle_t *)&s->proc);
}

/* Lost before we let it go: say so once, and end the conversation. */
static void lose(spawner *s, const char *why)
{
    int was_closing = s->closing;

    mkd_error(0, "spawner: %s", why);
    s->closing = 1;
    finish(s);
    if (!was_closing && s->lost != NULL)
        s->lost(s->lost_arg);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    spawner *s = p->data;

    s->exited = 1;
    if (!s->closing) {
        mkd_error(0, "spawner pid %d exited (status %lld, signal %d)", p->pid,
                  (long long)status, sig);
        lose(s, "it ended unexpectedly: workers can no longer be started");
    }
    if (s->gone)
        close_handle(s, (uv_handle_t *)&s->proc);
}

/* --- records from the spawner ---------------------------------------------------- */

/* Read one record without blocking. 1 with m, 0 for nothing now, -1 when
 * the conversation is over (end of stream, or a record that is not one). */
static int read_record(spawner *s, spawner_msg *m, int *fds, int *nfds)
{
    uint8_t buf[SPAWNER_MSG_LEN + 1];
    long n = spawner__recv(s->fd, buf, sizeof buf, fds, nfds);

    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (n == 0 || spawner_msg_parse(buf, (size_t)n, m) != MKD_OK) {
        for (int i = 0; i < *nfds; i++)
            (void)close(fds[i]);
        *nfds = 0;
        return -1;
    }
    return 1;
}

/* A record outside a spawn or a reload: only an exit is expected. */
static int on_record(spawner *s, const spawner_msg *m, int nfds)
{
    if (nfds != 0 || m->type != SPAWNER_EXITED)
        return -1;
    report_exit(s, m->pid, m->status, m->sig);
    return 0;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    spawner *s = h->data;
    int fds[SPAWNER_MAX_FDS], nfds = 0, r;
    spawner_msg m;

    (void)events;
    while (!s->gone && status == 0 &&
           (r = read_record(s, &m, fds, &nfds)) != 0) {
        if (r < 0 || on_record(s, &m, nfds) != 0) {
            for (int i = 0; i < nfds; i++)
                (void)close(fds[i]);
            lose(s, "the conversation with it broke");
            return;
        }
    }
}

static void on_deliver(uv_timer_t *t)
{
    spawner *s = t->data;
    size_t n = s->npending;

    s->npending = 0;
    for (size_t i = 0; i < n && !s->gone; i++)
        report_exit(s, s->pending[i].pid, s->pending[i].status,
                    s->pending[i].sig);
}

/* --- the launcher ----------------------------------------------------------- */

static int send_record(spawner *s, const spawner_msg *m)
{
    uint8_t buf[SPAWNER_MSG_LEN];
    struct pollfd p = {s->fd, POLLOUT, 0};

    if (s->gone || spawner_msg_encode(m, buf) != MKD_OK)
        return MKD_ERR_STATE;
    /* The socket is non-blocking; a 36-byte record waits for room only
     * if the spawner stopped reading, and not for long. */
    if (poll(&p, 1, SPAWN_DEADLINE_MS) != 1)
        return MKD_ERR_SYSTEM;
    return spawner__send(s->fd, buf, sizeof buf, NULL, 0);
}

/* A record read while an answer is awaited that is not it: keep an exit
 * for later; anything else is a broken conversation. */
static int keep(spawner *s, const spawner_msg *m, int nfds)
{
    if (nfds != 0 || m->type != SPAWNER_EXITED || s->npending == PENDING_MAX)
        return on_record(s, m, nfds) == 0 ? 0 : -1;
    s->pending[s->npending++] = *m;
    return 0;
}

/* Is m the answer awaited for the request q (SPAWN slot, or RELOAD)? */
static int answers(const spawner_msg *q, const spawner_msg *m, int nfds)
{
    if (q->type == SPAWNER_RELOAD)
        return m->type == SPAWNER_RELOADED && nfds == 0;
    return m->slot == q->slot && ((m->type == SPAWNER_SPAWNED && nfds == 2) ||
                                  (m->type == SPAWNER_FAILED && nfds == 0));
}

/* Wait for the answer to q into *m (its descriptors in fds): MKD_OK, or
 * MKD_ERR_FRAME_MALFORMED if the conversation broke or no answer came in
 * time. Exits read meanwhile are kept for later. */
static int await_answer(spawner *s, const spawner_msg *q, spawner_msg *m,
                        int *fds)
{
    uint64_t until = uv_hrtime() / 1000000u + SPAWN_DEADLINE_MS;
    int nfds = 0, r;

    for (;;) {
        uint64_t now = uv_hrtime() / 1000000u;
        struct pollfd p = {s->fd, POLLIN, 0};
        if (now >= until)
            return MKD_ERR_FRAME_MALFORMED;
        if (poll(&p, 1, (int)(until - now)) <= 0)
            continue; /* interrupted, or the deadline: checked above */
        if ((r = read_record(s, m, fds, &nfds)) == 0)
            continue;
        if (r > 0 && answers(q, m, nfds))
            return MKD_OK;
        if (r < 0 || keep(s, m, nfds) != 0) {
            for (int i = 0; i < nfds; i++)
                (void)close(fds[i]);
            return MKD_ERR_FRAME_MALFORMED;
        }
    }
}

/* Send q and wait for its answer; the spawner is lost if that fails.
 * Exits kept meanwhile are delivered from the loop. */
static int exchange(spawner *s, const spawner_msg *q, spawner_msg *m, int *fds)
{
    int r;

    if ((r = send_record(s, q)) != MKD_OK)
        lose(s, "it does not take requests");
    else if ((r = await_answer(s, q, m, fds)) != MKD_OK)
        lose(s, "no valid answer to a request");
    if (s->npending > 0 && !s->gone)
        (void)uv_timer_start(&s->timer, on_deliver, 0, 0);
    return r;
}

/* The worker started: keep track of it, or have it killed rather than
 * lose its exit. */
static int track(spawner *s, int pid, int ipc_fd, int out_fd)
{
    spawner_msg k = {.type = SPAWNER_KILL, .sig = SIGKILL, .pid = pid};

    if (live_add(s, pid) == MKD_OK)
        return MKD_OK;
    (void)send_record(s, &k);
    (void)close(ipc_fd);
    (void)close(out_fd);
    return MKD_ERR_NOMEM;
}

static int l_spawn(pegasus_launcher *l, unsigned slot, uint32_t max_message,
                   int *pid, int *ipc_fd, int *out_fd)
{
    spawner *s = (spawner *)l;
    spawner_msg q = {.type = SPAWNER_SPAWN,
                     .slot = slot,
                     .max_message = max_message,
                     .settings = s->settings},
                m;
    int fds[SPAWNER_MAX_FDS], r;

    if (s->closing)
        return MKD_ERR_STATE;
    if ((r = exchange(s, &q, &m, fds)) != MKD_OK)
        return r;
    if (m.type == SPAWNER_FAILED) {
        mkd_error(0, "spawner: cannot start the worker of slot %u: %s", slot,
                  m.err == ESTALE ? "it read other worker settings than mkd "
                                    "(the configuration changed between the "
                                    "two readings; SIGHUP mkd)"
                                  : strerror(m.err));
        return MKD_ERR_SYSTEM;
    }
    *pid = m.pid;
    *ipc_fd = fds[0];
    *out_fd = fds[1];
    return track(s, *pid, *ipc_fd, *out_fd);
}

static int l_kill(pegasus_launcher *l, int pid, int sig)
{
    spawner *s = (spawner *)l;
    spawner_msg m = {.type = SPAWNER_KILL, .sig = (uint8_t)sig, .pid = pid};

    return send_record(s, &m);
}

static void l_release(pegasus_launcher *l)
{
    spawner *s = (spawner *)l;

    s->launcher.exited = NULL;
    s->launcher.exited_arg = NULL;
    free_if_unused(s);
}

static const pegasus_launcher_ops launcher_ops = {l_spawn, l_kill, l_release};

/* --- start, reload, close ---------------------------------------------------------- */

static int start_process(spawner *s, const char *const *argv, int theirs,
                         mkd_diag *d)
{
    uv_process_options_t o;
    uv_stdio_container_t stdio[4];
    int r;

    memset(&o, 0, sizeof o);
    memset(stdio, 0, sizeof stdio);
    for (int i = 0; i < 3; i++) {
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = i;
    }
    stdio[SPAWNER_FD].flags = UV_INHERIT_FD;
    stdio[SPAWNER_FD].data.fd = theirs;
    o.file = argv[0];
    o.args = (char **)(uintptr_t)argv;
    o.stdio = stdio;
    o.stdio_count = 4;
    o.exit_cb = on_exit_cb;
    r = uv_spawn(s->loop, &s->proc, &o);
    s->handles++; /* initialised even when it failed */
    if (r != 0)
        return mkd_fail(d, MKD_ERR_LOOP, "spawner: cannot start %s: %s",
                        argv[0], uv_strerror(r));
    s->started = 1;
    mkd_info(0, "spawner pid %d started", s->proc.pid);
    return MKD_OK;
}

int spawner_start(uv_loop_t *loop, const char *const *argv, uint64_t settings,
                  void (*lost)(void *arg), void *arg, spawner **out,
                  mkd_diag *d)
{
    spawner *s = calloc(1, sizeof *s);
    int sv[2] = {-1, -1}, r;

    mkd_diag_clear(d);
    *out = NULL;
    if (s == NULL)
        return mkd_fail(d, MKD_ERR_NOMEM, "out of memory");
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        free(s);
        return mkd_fail(d, MKD_ERR_SYSTEM, "spawner: socketpair: %s",
                        strerror(errno));
    }
    s->launcher.ops = &launcher_ops;
    s->loop = loop;
    s->settings = settings;
    s->fd = sv[0];
    s->lost = lost;
    s->lost_arg = arg;
    s->proc.data = s->poll.data = s->timer.data = s;
    (void)uv_timer_init(loop, &s->timer); /* cannot fail */
    s->handles++;
    r = start_process(s, argv, sv[1], d);
    (void)close(sv[1]);
    if (r == MKD_OK && uv_poll_init(loop, &s->poll, s->fd) != 0)
        r = mkd_fail(d, MKD_ERR_LOOP, "spawner: cannot watch its socket");
    else if (r == MKD_OK) {
        s->handles++;
        s->watching = 1;
    }
    if (r == MKD_OK && uv_poll_start(&s->poll, UV_READABLE, on_readable) != 0)
        r = mkd_fail(d, MKD_ERR_LOOP, "spawner: cannot watch its socket");
    if (r != MKD_OK) {
        /* Closing the socket ends a spawner that started; the handles go
         * on the loop, and s with them. */
        s->closing = 1;
        finish(s);
        return r;
    }
    *out = s;
    return MKD_OK;
}

int spawner__pid(const spawner *s)
{
    return s->started ? s->proc.pid : 0;
}

pegasus_launcher *spawner_launcher(spawner *s)
{
    return &s->launcher;
}

int spawner_reload(spawner *s, uint64_t settings, mkd_diag *d)
{
    spawner_msg q = {.type = SPAWNER_RELOAD, .settings = settings}, m;
    int fds[SPAWNER_MAX_FDS], r;

    mkd_diag_clear(d);
    if (s->closing || s->gone)
        return mkd_fail(d, MKD_ERR_STATE, "the spawner is gone");
    if ((r = exchange(s, &q, &m, fds)) != MKD_OK)
        return mkd_fail(d, r, "the spawner did not answer");
    if (m.err == ESTALE)
        return mkd_fail(d, MKD_ERR_CONFIG_CHANGED,
                        "the spawner read other worker settings than mkd: "
                        "the configuration changed between the two "
                        "readings");
    if (m.err != 0)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "the spawner could not read the configuration (its "
                        "log line says why)");
    s->settings = settings;
    return MKD_OK;
}

static void on_close_deadline(uv_timer_t *t)
{
    spawner *s = t->data;

    if (s->nlive > 0)
        mkd_warn(0,
                 "spawner: %zu worker(s) not reported ended; letting "
                 "it go",
                 s->nlive);
    finish(s);
}

void spawner_close(spawner *s)
{
    if (s == NULL || s->closing)
        return;
    s->closing = 1;
    if (s->nlive == 0 || s->gone) {
        finish(s);
        return;
    }
    if (uv_timer_start(&s->timer, on_close_deadline, CLOSE_WAIT_MS, 0) != 0)
        finish(s);
}
