/*
 * loop.c -- the server: start-up, the 1-second tick (rates, address-table
 * sweep), signals (SIGTERM/SIGINT: graceful shutdown; SIGHUP: reload), the
 * control socket that serves the status view, and the end of the loop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/log.h"
#include "../yami/keys.h"
#include "yugi.h"

/* --- status ----------------------------------------------------------- */

static const char *const reason_keys[YUGI_CR_COUNT] = {
    "done", "eof", "io", "protocol", "timeout_handshake", "timeout_idle",
    "timeout_unit", "timeout_write", "refused", "internal", "shutdown",
};

static void put(char *buf, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;
    int r;

    if (*n + 1 >= cap)
        return;
    va_start(ap, fmt);
    r = vsnprintf(buf + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (r > 0)
        *n += (size_t)r < cap - *n ? (size_t)r : cap - *n - 1;
}

size_t yugi_status(yugi_server *srv, char *buf, size_t cap)
{
    const yugi_stats *st = &srv->st;
    uint64_t full10 = 0, res10 = 0;
    unsigned last = (srv->ring_pos + YUGI_RATE_WINDOW - 1) % YUGI_RATE_WINDOW;
    size_t n = 0;

#define PUT(...) put(buf, cap, &n, __VA_ARGS__)
    for (unsigned i = 0; i < YUGI_RATE_WINDOW; i++) {
        full10 += srv->hs_full_ring[i];
        res10 += srv->hs_res_ring[i];
    }
    PUT("mkd %s\n", srv->shutting_down ? "shutting-down" : "running");
    PUT("pid %ld\n", (long)getpid());
    PUT("uptime_s %llu\n",
        (unsigned long long)((uv_now(srv->loop) - srv->started_ms) / 1000));
    PUT("connections %zu\n", srv->nconns);
    PUT("connections.refusing %zu\n", srv->nrefusing);
    PUT("connections.accepted %llu\n", (unsigned long long)st->accepted);
    PUT("connections.closed %llu\n", (unsigned long long)st->closed);
    PUT("connections.max %u\n", srv->cfg.max_connections);
    PUT("connections.accept_errors %llu\n",
        (unsigned long long)st->accept_errors);
    PUT("handshakes.in_progress %u\n", srv->hs_inflight);
    PUT("handshakes.full %llu\n", (unsigned long long)st->hs_full);
    PUT("handshakes.resumed %llu\n", (unsigned long long)st->hs_resumed);
    PUT("handshakes.full_per_s %llu\n",
        (unsigned long long)srv->hs_full_ring[last]);
    PUT("handshakes.resumed_per_s %llu\n",
        (unsigned long long)srv->hs_res_ring[last]);
    PUT("handshakes.full_per_s_10s %.1f\n", (double)full10 / YUGI_RATE_WINDOW);
    PUT("handshakes.resumed_per_s_10s %.1f\n",
        (double)res10 / YUGI_RATE_WINDOW);
    PUT("handshakes.hello_retry %llu\n", (unsigned long long)st->hs_retry);
    PUT("handshakes.failed %llu\n", (unsigned long long)st->hs_failed);
    PUT("refused.connections %llu\n",
        (unsigned long long)st->refused_connections);
    PUT("refused.pending_per_address %llu\n",
        (unsigned long long)st->refused_pending);
    PUT("refused.handshakes_in_progress %llu\n",
        (unsigned long long)st->refused_handshakes);
    PUT("refused.handshake_rate %llu\n", (unsigned long long)st->refused_rate);
    PUT("requests %llu\n", (unsigned long long)st->requests);
    PUT("responses %llu\n", (unsigned long long)st->responses);
    PUT("requests.backend_overloaded %llu\n",
        (unsigned long long)st->backend_overloaded);
    PUT("requests.buffer_limit %llu\n", (unsigned long long)st->aborted);
    PUT("queue.jobs %llu\n",
        (unsigned long long)(yami_counters.jobs_started -
                             yami_counters.jobs_done));
    PUT("queue.jobs_total %llu\n",
        (unsigned long long)yami_counters.jobs_started);
    PUT("queue.jobs_inline %llu\n",
        (unsigned long long)yami_counters.jobs_inline);
    PUT("bytes.in %llu\n", (unsigned long long)st->bytes_in);
    PUT("bytes.out %llu\n", (unsigned long long)st->bytes_out);
    PUT("addresses.tracked %zu\n", srv->addrs.count);
    for (int i = 0; i < YUGI_CR_COUNT; i++)
        PUT("closed.%s %llu\n", reason_keys[i],
            (unsigned long long)st->close_reason[i]);
    for (int i = 1; i < YUGI_ERR_SLOTS; i++)
        if (st->errors[i])
            PUT("errors.%s %llu\n", mk_err_name(i),
                (unsigned long long)st->errors[i]);
    PUT("reloads %llu\n", (unsigned long long)st->reloads);
    PUT("reload_failures %llu\n", (unsigned long long)st->reload_failures);
#undef PUT
    if (srv->backend != NULL && n < cap)
        n += srv->backend->ops->status(srv->backend, buf + n, cap - n);
    return n;
}

/* --- control socket --------------------------------------------------- */

typedef struct ctl_client {
    uv_pipe_t pipe;
    uv_write_t req;
    char *text;
} ctl_client;

static void on_ctl_closed(uv_handle_t *h)
{
    ctl_client *cc = h->data;
    free(cc->text);
    free(cc);
}

static void on_ctl_written(uv_write_t *req, int status)
{
    ctl_client *cc = req->data;
    (void)status;
    uv_close((uv_handle_t *)&cc->pipe, on_ctl_closed);
}

/* Anyone who can open the socket (mode 0600: the daemon's user) gets the
 * status block; nothing is read from the client, so there is nothing to
 * parse. */
static void on_ctl_connection(uv_stream_t *server, int status)
{
    yugi_server *srv = server->data;
    ctl_client *cc;
    uv_buf_t b;
    size_t cap = 16384, n;

    if (status < 0 || (cc = calloc(1, sizeof *cc)) == NULL)
        return;
    if (uv_pipe_init(srv->loop, &cc->pipe, 0) != 0) {
        free(cc);
        return;
    }
    cc->pipe.data = cc;
    cc->req.data = cc;
    if (uv_accept(server, (uv_stream_t *)&cc->pipe) != 0 ||
        (cc->text = malloc(cap)) == NULL) {
        uv_close((uv_handle_t *)&cc->pipe, on_ctl_closed);
        return;
    }
    n = yugi_status(srv, cc->text, cap);
    b = uv_buf_init(cc->text, (unsigned)n);
    if (uv_write(&cc->req, (uv_stream_t *)&cc->pipe, &b, 1, on_ctl_written) !=
        0)
        uv_close((uv_handle_t *)&cc->pipe, on_ctl_closed);
}

/* A socket file left by a dead daemon is removed; a live one is not. */
static int socket_in_use(const char *path)
{
    struct sockaddr_un sa;
    int fd, r;

    if (strlen(path) >= sizeof sa.sun_path)
        return 0;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return 0;
    r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    return r == 0;
}

static int control_open(yugi_server *srv)
{
    const char *path = srv->cfg.control_socket;
    mode_t old;
    int r;

    if (path[0] == '\0' || strcmp(path, "none") == 0)
        return 0;
    if (socket_in_use(path)) {
        mkd_err(0, "control socket %s is in use: another mkd is running?",
                path);
        return UV_EADDRINUSE;
    }
    (void)unlink(path);
    if ((r = uv_pipe_init(srv->loop, &srv->control, 0)) != 0)
        return r;
    srv->control.data = srv;
    srv->control_open = 1;
    old = umask(077); /* the socket file is created 0600 */
    r = uv_pipe_bind(&srv->control, path);
    umask(old);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&srv->control, 16, on_ctl_connection);
    if (r != 0) {
        mkd_err(0, "control socket %s: %s", path, uv_strerror(r));
        return r;
    }
    mkd_info(0, "status: mkd status --control_socket=%s", path);
    return 0;
}

/* --- tick ------------------------------------------------------------- */

/* Per-connection events are debug-level (a flood must not flood the log);
 * once a minute, if anything was refused or failed, one info line says how
 * much, so an operator sees an attack or a misconfiguration without debug
 * logging. */
static void log_summary(yugi_server *srv)
{
    static uint64_t last_refused, last_failed, last_hs, last_timeouts;
    const yugi_stats *st = &srv->st;
    uint64_t refused = st->refused_connections + st->refused_pending +
                       st->refused_handshakes + st->refused_rate;
    uint64_t failed = st->close_reason[YUGI_CR_PROTO] +
                      st->close_reason[YUGI_CR_INTERNAL];
    uint64_t hs = st->hs_full + st->hs_resumed;
    uint64_t timeouts = st->close_reason[YUGI_CR_TO_HANDSHAKE] +
                        st->close_reason[YUGI_CR_TO_UNIT] +
                        st->close_reason[YUGI_CR_TO_WRITE];

    if (refused != last_refused || failed != last_failed ||
        timeouts != last_timeouts)
        mkd_info(0, "last minute: %llu handshakes, %llu refused (retry "
                    "later), %llu protocol/internal failures, %llu "
                    "timeouts; %zu connections",
                 (unsigned long long)(hs - last_hs),
                 (unsigned long long)(refused - last_refused),
                 (unsigned long long)(failed - last_failed),
                 (unsigned long long)(timeouts - last_timeouts),
                 srv->nconns);
    last_refused = refused;
    last_failed = failed;
    last_hs = hs;
    last_timeouts = timeouts;
}

static void on_tick(uv_timer_t *t)
{
    yugi_server *srv = t->data;
    static unsigned ticks;

    srv->hs_full_ring[srv->ring_pos] = srv->st.hs_full - srv->last_full;
    srv->hs_res_ring[srv->ring_pos] = srv->st.hs_resumed - srv->last_res;
    srv->last_full = srv->st.hs_full;
    srv->last_res = srv->st.hs_resumed;
    srv->ring_pos = (srv->ring_pos + 1) % YUGI_RATE_WINDOW;
    if (++ticks % 10 == 0)
        yugi_addrs_sweep(&srv->addrs, uv_now(srv->loop));
    if (ticks % 60 == 0)
        log_summary(srv);
}

/* --- reload ----------------------------------------------------------- */

void yugi_server_reload(yugi_server *srv)
{
    mkd_config nc;
    mk_server_config *scfg = NULL;
    size_t nk = 0, nt = 0;
    char err[512];

    if (srv->shutting_down)
        return;
    mkd_info(0, "SIGHUP: reloading keys, ticket keys, limits and backend");
    if (srv->load_config == NULL ||
        srv->load_config(srv->load_config_arg, &nc, err, sizeof err) != 0 ||
        yami_build_server_config(&nc, &scfg, &nk, &nt, err, sizeof err) !=
            0) {
        srv->st.reload_failures++;
        mkd_err(0, "reload failed, keeping the old configuration: %s", err);
        return;
    }
    /* Sockets, paths, threads and the user are fixed for the process; the
     * rest is taken. Sessions on the old configuration keep it (it is
     * reference counted) and old ticket keys listed in the file still
     * accept. */
    /* threads = 0 was resolved to the CPU count at start-up (main.c):
     * resolve it the same way, or every reload would warn. */
    if (nc.threads == 0)
        nc.threads = uv_available_parallelism();
    if (strcmp(nc.listen, srv->cfg.listen) != 0 || nc.port != srv->cfg.port ||
        strcmp(nc.user, srv->cfg.user) != 0 ||
        strcmp(nc.control_socket, srv->cfg.control_socket) != 0 ||
        strcmp(nc.backend, srv->cfg.backend) != 0 ||
        nc.threads != srv->cfg.threads)
        mkd_warn(0, "reload: listen, port, user, control_socket, backend "
                    "and threads need a restart; kept as they were");
    memcpy(nc.listen, srv->cfg.listen, sizeof nc.listen);
    nc.port = srv->cfg.port;
    memcpy(nc.user, srv->cfg.user, sizeof nc.user);
    memcpy(nc.control_socket, srv->cfg.control_socket,
           sizeof nc.control_socket);
    memcpy(nc.backend, srv->cfg.backend, sizeof nc.backend);
    nc.threads = srv->cfg.threads;
    srv->cfg = nc;
    mkd_log_set_level(nc.log_level);
    yugi_addrs_set(&srv->addrs, nc.handshake_rate, nc.handshake_burst);
    mk_server_config_unref(srv->scfg);
    srv->scfg = scfg;
    srv->backend->ops->reload(srv->backend);
    srv->st.reloads++;
    mkd_info(0, "reloaded: %zu server key(s), %zu ticket key(s)", nk, nt);
}

/* --- shutdown --------------------------------------------------------- */

static void on_closed_nothing(uv_handle_t *h)
{
    (void)h;
}

static void close_if(uv_handle_t *h)
{
    if (h->loop != NULL && !uv_is_closing(h))
        uv_close(h, on_closed_nothing);
}

static int finished;

void yugi_maybe_finish(yugi_server *srv)
{
    if (!srv->shutting_down || finished || srv->conns != NULL ||
        !srv->backend_drained)
        return;
    finished = 1;
    mkd_info(0, "all connections closed");
    close_if((uv_handle_t *)&srv->sig_term);
    close_if((uv_handle_t *)&srv->sig_int);
    close_if((uv_handle_t *)&srv->sig_hup);
    close_if((uv_handle_t *)&srv->tick);
    close_if((uv_handle_t *)&srv->shutdown_timer);
    if (srv->control_open) {
        close_if((uv_handle_t *)&srv->control);
        (void)unlink(srv->cfg.control_socket);
    }
    if (srv->backend != NULL) {
        srv->backend->ops->free(srv->backend);
        srv->backend = NULL;
    }
}

static void force_close_all(yugi_server *srv)
{
    while (srv->conns != NULL)
        yugi_conn_close(srv->conns, YUGI_CR_SHUTDOWN);
}

/* How long the answers given at the shutdown deadline have to be sealed
 * and written before the connections are closed regardless. */
#define SHUTDOWN_GRACE_MS 1000

static void on_shutdown_grace(uv_timer_t *t)
{
    yugi_server *srv = t->data;
    if (srv->nconns > 0)
        mkd_warn(0, "shutdown: closing %zu connection(s) still open",
                 srv->nconns);
    force_close_all(srv);
    yugi_maybe_finish(srv);
}

/*
 * shutdown_timeout_ms is over and requests are still running (or the
 * answers to them are still being written). Closing the connections now
 * would leave the clients of running requests with a cut connection and
 * no answer, so first the backend goes: its free() answers everything it
 * still holds with MK_ECODE_SHUTDOWN through the done callbacks (backend.h),
 * which queues authenticated error records to Yami. Those get
 * SHUTDOWN_GRACE_MS to be sealed and written; a connection whose answers
 * are all out then closes by itself with its close record, and the rest
 * are closed when the grace ends.
 */
static void on_shutdown_deadline(uv_timer_t *t)
{
    yugi_server *srv = t->data;
    mkd_backend *b = srv->backend;

    mkd_warn(0, "shutdown deadline: answering what is still running with "
                "\"shutdown\"; closing %zu connection(s) within %d ms",
             srv->nconns, SHUTDOWN_GRACE_MS);
    if (b != NULL) {
        /* srv->backend stays set while free() runs: a connection that
         * fails inside a done callback cancels its other requests
         * through it. Nothing may reach the backend afterwards. (Such a
         * close cannot finish the server from inside free(): either
         * backend_drained is still 0, or the backend drained and holds
         * nothing to answer.) */
        b->ops->free(b);
        srv->backend = NULL;
    }
    srv->backend_drained = 1;
    if (uv_timer_start(&srv->shutdown_timer, on_shutdown_grace,
                       SHUTDOWN_GRACE_MS, 0) != 0)
        force_close_all(srv);
    yugi_maybe_finish(srv);
}

static void on_backend_drained(void *arg)
{
    yugi_server *srv = arg;
    srv->backend_drained = 1;
    yugi_maybe_finish(srv);
}

void yugi_server_shutdown(yugi_server *srv)
{
    yugi_conn *c, *next;

    if (srv->shutting_down) {
        mkd_warn(0, "second signal: closing now");
        srv->backend_drained = 1;
        force_close_all(srv);
        yugi_maybe_finish(srv);
        return;
    }
    srv->shutting_down = 1;
    mkd_info(0, "shutting down: %zu connection(s), up to %u ms",
             srv->nconns, srv->cfg.shutdown_timeout_ms);
    yugi_listeners_close(srv);
    if (uv_timer_start(&srv->shutdown_timer, on_shutdown_deadline,
                       srv->cfg.shutdown_timeout_ms, 0) != 0)
        force_close_all(srv);
    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        yugi_conn_shutdown(c);
    }
    srv->backend->ops->drain(srv->backend, on_backend_drained, srv);
    yugi_maybe_finish(srv);
}

static void on_signal(uv_signal_t *h, int signum)
{
    yugi_server *srv = h->data;
    if (signum == SIGHUP)
        yugi_server_reload(srv);
    else
        yugi_server_shutdown(srv);
}

/* --- start and run ---------------------------------------------------- */

int yugi_server_init(yugi_server *srv, uv_loop_t *loop,
                     const mkd_config *cfg, mk_server_config *scfg,
                     mkd_backend *backend)
{
    int r;

    memset(srv, 0, sizeof *srv);
    srv->loop = loop;
    srv->cfg = *cfg;
    srv->scfg = scfg;
    srv->backend = backend;
    srv->started_ms = uv_now(loop);
    if (yugi_addrs_init(&srv->addrs, cfg->handshake_rate,
                        cfg->handshake_burst) != 0)
        return UV_ENOMEM;
    uv_signal_init(loop, &srv->sig_term);
    uv_signal_init(loop, &srv->sig_int);
    uv_signal_init(loop, &srv->sig_hup);
    uv_timer_init(loop, &srv->tick);
    uv_timer_init(loop, &srv->shutdown_timer);
    srv->sig_term.data = srv->sig_int.data = srv->sig_hup.data = srv;
    srv->tick.data = srv->shutdown_timer.data = srv;
    if ((r = uv_signal_start(&srv->sig_term, on_signal, SIGTERM)) != 0 ||
        (r = uv_signal_start(&srv->sig_int, on_signal, SIGINT)) != 0 ||
        (r = uv_signal_start(&srv->sig_hup, on_signal, SIGHUP)) != 0 ||
        (r = uv_timer_start(&srv->tick, on_tick, 1000, 1000)) != 0)
        return r;
    if ((r = yugi_listen(srv)) != 0)
        return r;
    if ((r = control_open(srv)) != 0)
        return r;
    return 0;
}

/* Undo a partial init (start-up failed before the loop ran). */
void yugi_server_abort(yugi_server *srv)
{
    srv->shutting_down = 1;
    srv->backend_drained = 1;
    yugi_listeners_close(srv);
    yugi_maybe_finish(srv);
    (void)uv_run(srv->loop, UV_RUN_DEFAULT);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, on_closed_nothing);
}

int yugi_server_run(yugi_server *srv)
{
    int r = uv_run(srv->loop, UV_RUN_DEFAULT);

    (void)r;
    if (uv_loop_close(srv->loop) == UV_EBUSY) {
        /* Should not happen; never leave the loop half-open. */
        mkd_warn(0, "handles still open at exit; closing them");
        uv_walk(srv->loop, walk_close, NULL);
        (void)uv_run(srv->loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(srv->loop);
    }
    free(srv->listeners);
    srv->listeners = NULL;
    yugi_addrs_free(&srv->addrs);
    mk_server_config_unref(srv->scfg);
    srv->scfg = NULL;
    return srv->exit_code;
}
