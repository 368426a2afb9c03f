/*
 * worker.c -- one worker process: spawn, state machine, frames, output,
 * timeouts. See internal.h for the state diagram.
 *
 * IMPLEMENTATION NOTES
 *
 * How a worker's end is observed. Three things happen when a worker goes
 * away, in no fixed order: the process exit (SIGCHLD), EOF on its protocol
 * channel, EOF on its output pipe. The last frames it wrote may still be
 * unread when the exit is reported (a handler that calls exit() writes its
 * RESPONSE and then dies), so an exit alone never fails the request: we
 * wait for the channel's EOF, or a short linger after the exit if a
 * grandchild process keeps the channel open, and only then answer what is
 * left with "worker crashed" (finalize). EOF on the channel while the
 * process still runs means the worker can no longer answer: the request is
 * failed at once and the process killed.
 *
 * Who answers a request. Exactly one of: the worker's RESPONSE/APP_ERROR,
 * the request timer (MKD_BACKEND_TIMEOUT), a broken frame (the worker is
 * killed), finalize (crash), or free(). Each of them detaches the request
 * from the worker (w->req = NULL) before answering, and pegasus__answer
 * refuses a second answer, so no request is answered twice.
 *
 * The timer serves whichever deadline the state has: STARTING the start
 * timeout, BUSY/DRAINING the request timeout (armed once, at dispatch),
 * STOPPING the stop timeout, and after the exit the linger.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mkd_log.h"
#include "internal.h"
#include "mkd_util.h"

#define LINGER_MS     250
#define RX_CHUNK      65536
#define LINE_MAX_EMIT 800

/* Every transition a worker may make; anything else is a bug, logged and
 * refused (style guide 3.5: the table is the state machine). */
static const unsigned char allowed[PEGASUS_W_NSTATES][PEGASUS_W_NSTATES] = {
    /*                 START IDLE BUSY DRAIN STOP DEAD */
    /* STARTING */ {0, 1, 0, 0, 1, 0},
    /* IDLE     */ {0, 0, 1, 0, 1, 0},
    /* BUSY     */ {0, 1, 0, 1, 1, 0},
    /* DRAINING */ {0, 0, 0, 0, 1, 0},
    /* STOPPING */ {0, 0, 0, 0, 0, 1},
    /* DEAD     */ {0, 0, 0, 0, 0, 0},
};

const char *pegasus__state_name(enum pegasus_wstate s)
{
    switch (s) {
    case PEGASUS_W_STARTING:
        return "starting";
    case PEGASUS_W_IDLE:
        return "idle";
    case PEGASUS_W_BUSY:
        return "busy";
    case PEGASUS_W_DRAINING:
        return "draining";
    case PEGASUS_W_STOPPING:
        return "stopping";
    case PEGASUS_W_DEAD:
        return "dead";
    case PEGASUS_W_NSTATES:
    default:
        return "?";
    }
}

/* The connection a worker's log line belongs to: the request it runs, or
 * the one it ran last (its output pipe may be read after the answer). */
static uint64_t cid(const pegasus__worker *w)
{
    return w->req != NULL ? w->req->ctx.conn_id : w->last_conn;
}

static int set_state(pegasus__worker *w, enum pegasus_wstate to)
{
    if (w->state == to)
        return 0;
    if (!allowed[w->state][to]) {
        mkd_error(cid(w),
                  "pegasus w%u pid %d: bug: refused transition "
                  "%s -> %s",
                  w->slot, w->pid, pegasus__state_name(w->state),
                  pegasus__state_name(to));
        return -1;
    }
    mkd_debug(cid(w), "pegasus w%u pid %d: %s -> %s", w->slot, w->pid,
              pegasus__state_name(w->state), pegasus__state_name(to));
    w->state = to;
    return 0;
}

static void arm(pegasus__worker *w, uint64_t ms, uv_timer_cb cb)
{
    if (uv_is_closing((uv_handle_t *)&w->timer))
        return;
    /* uv_timer_start only fails for a closing handle or a NULL cb. */
    if (uv_timer_start(&w->timer, cb, ms, 0) != 0)
        mkd_error(0, "pegasus w%u: cannot arm timer", w->slot);
}

static void disarm(pegasus__worker *w)
{
    if (!uv_is_closing((uv_handle_t *)&w->timer))
        (void)uv_timer_stop(&w->timer); /* cannot fail */
}

static void on_timer(uv_timer_t *t);

/* ------------------------------------------------------------------ */
/* Process end                                                         */

uint64_t pegasus__rss_kib(int pid)
{
    char path[64], buf[128];
    unsigned long long size = 0, resident = 0;
    long page;
    ssize_t n;
    int fd, r;

    if (pid <= 0)
        return 0;
    r = snprintf(path, sizeof path, "/proc/%d/statm", pid);
    if (r < 0 || (size_t)r >= sizeof path)
        return 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof buf - 1);
    (void)close(fd); /* read-only procfs file: nothing to lose */
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return 0;
    page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        return 0;
    return (uint64_t)resident * (uint64_t)page / 1024u;
}

void pegasus__worker_kill(pegasus__worker *w)
{
    pegasus_launcher *l = w->pool->cfg.launcher;
    int failed;

    if (!w->spawned || w->exited || w->pid <= 0)
        return;
    /* The worker leads its own process group (UV_PROCESS_DETACHED, or the
     * launcher's setsid), so this also takes down anything the
     * application started. The direct kill is the fallback. */
    if (w->launched)
        failed = l->ops->kill(l, w->pid, SIGKILL) != MKD_OK;
    else
        failed = uv_kill(-w->pid, SIGKILL) != 0 &&
                 uv_process_kill(&w->proc, SIGKILL) != 0;
    if (failed)
        mkd_warn(cid(w), "pegasus w%u pid %d: SIGKILL failed", w->slot, w->pid);
    w->killed = 1;
}

/* Out of the pool's list of workers. */
static void unlink_worker(pegasus__worker *w)
{
    pegasus *p = w->pool;

    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        p->workers = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
}

static void on_closed(uv_handle_t *h)
{
    pegasus__worker *w = h->data;
    pegasus *p = w->pool;

    if (--w->open_handles > 0)
        return;
    (void)set_state(w, PEGASUS_W_DEAD);
    unlink_worker(w);
    if (w->rx != NULL) {
        mkd_wipe(w->rx, w->rx_cap);
        free(w->rx);
    }
    mkd_wipe(w->line, sizeof w->line);
    free(w);
    pegasus__handle_closed(p);
}

static void close_handle(pegasus__worker *w, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_closed);
}

/* One line of worker output into the log, at the level it asks for
 * (pegasus_output_level). complete: the line ended here; else it was over
 * LINE_MAX_EMIT and its next piece keeps its level. */
static void emit_line(pegasus__worker *w, const char *s, size_t n, int complete)
{
    char clean[LINE_MAX_EMIT + 1];
    size_t m = 0, skip = 0;
    int level;

    while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    level = w->line_split ? w->line_level : pegasus_output_level(s, n, &skip);
    w->line_split = !complete;
    w->line_level = level;
    /* Worker output is untrusted text going to a terminal or journald:
     * control characters become '?'. */
    for (size_t i = skip; i < n && m < LINE_MAX_EMIT; i++) {
        unsigned char c = (unsigned char)s[i];
        clean[m++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
    }
    clean[m] = '\0';
    mkd_log(level, cid(w), "pegasus w%u pid %d: %s", w->slot, w->pid, clean);
}

static void flush_line(pegasus__worker *w, int complete)
{
    if (w->line_len > 0)
        emit_line(w, w->line, w->line_len, complete);
    w->line_len = 0;
}

/*
 * The worker is gone for good (exited, channel closed or lingered):
 * answer what it held, count the failure, close its handles.
 */
static void finalize(pegasus__worker *w)
{
    pegasus *p = w->pool;
    enum pegasus_wstate was = w->state;
    pegasus__req *r = w->req;

    if (was == PEGASUS_W_DEAD || uv_is_closing((uv_handle_t *)&w->ipc))
        return;
    disarm(w);
    flush_line(w, 1);
    w->req = NULL;
    /* Out of service first: counting the death may fail the queue, and
     * the done() callbacks that runs may submit again. */
    (void)set_state(w, PEGASUS_W_STOPPING);
    /* Free the slot before counting the death: the replacement spawned
     * from there takes this slot, so the slot's restart count and last
     * exit describe one line of succession in the status view. */
    if (w->slot < p->nslots && p->slots[w->slot].w == w)
        p->slots[w->slot].w = NULL;
    switch (was) {
    case PEGASUS_W_STARTING:
    case PEGASUS_W_IDLE:
    case PEGASUS_W_BUSY:
    case PEGASUS_W_DRAINING:
        pegasus__on_death(p, w); /* we did not stop it */
        break;
    case PEGASUS_W_STOPPING:
    case PEGASUS_W_DEAD:
    case PEGASUS_W_NSTATES:
    default:
        break;
    }
    close_handle(w, (uv_handle_t *)&w->ipc);
    close_handle(w, (uv_handle_t *)&w->out);
    close_handle(w, (uv_handle_t *)&w->timer);
    if (!w->launched)
        close_handle(w, (uv_handle_t *)&w->proc);
    if (r != NULL) {
        r->worker = NULL;
        pegasus__answer(p, r, MKD_BACKEND_INTERNAL, NULL, 0, "worker crashed");
    }
    pegasus__dispatch(p);
    pegasus__kick(p);
}

/* The channel is unusable while the process may still run: fail the
 * request now (no answer can come any more) and kill the process. */
static void lost(pegasus__worker *w, mkd_backend_status code, const char *text,
                 const char *why)
{
    pegasus *p = w->pool;
    pegasus__req *r = w->req;

    if (w->state == PEGASUS_W_STOPPING || w->state == PEGASUS_W_DEAD) {
        pegasus__worker_kill(w);
        return;
    }
    mkd_warn(cid(w), "pegasus w%u pid %d: %s (while %s)", w->slot, w->pid, why,
             pegasus__state_name(w->state));
    w->req = NULL;
    pegasus__worker_kill(w);
    w->stop_reason = why;
    (void)set_state(w, PEGASUS_W_STOPPING); /* before on_death: see finalize */
    if (!w->exited)
        arm(w, p->cfg.stop_timeout_ms, on_timer);
    /* A request timeout is our decision, not a failure of the worker. */
    if (code != MKD_BACKEND_TIMEOUT)
        pegasus__on_death(p, w);
    if (r != NULL) {
        r->worker = NULL;
        pegasus__answer(p, r, code, NULL, 0, text);
    }
    pegasus__dispatch(p);
    pegasus__kick(p);
}

static void maybe_finalize(pegasus__worker *w)
{
    if (w->exited && w->ipc_eof && w->out_eof)
        finalize(w);
}

static void worker_exited(pegasus__worker *w, int64_t status, int sig);

static void on_exit_cb(uv_process_t *proc, int64_t status, int sig)
{
    worker_exited(proc->data, status, sig);
}

void pegasus__launched_exit(void *arg, int pid, int64_t status, int sig)
{
    pegasus *p = arg;

    for (pegasus__worker *w = p->workers; w != NULL; w = w->next)
        if (w->launched && w->pid == pid && !w->exited) {
            worker_exited(w, status, sig);
            return;
        }
}

/* The process ended (its exit status or signal). */
static void worker_exited(pegasus__worker *w, int64_t status, int sig)
{
    pegasus *p = w->pool;
    char desc[32];
    int r;

    w->exited = 1;
    w->exit_status = status;
    w->term_signal = sig;
    if (sig != 0)
        r = snprintf(desc, sizeof desc, "signal %d", sig);
    else
        r = snprintf(desc, sizeof desc, "status %" PRId64, status);
    if (r < 0)
        desc[0] = '\0';
    if (w->slot < p->nslots)
        memcpy(p->slots[w->slot].last_exit, desc, sizeof desc);
    if (w->state == PEGASUS_W_STOPPING)
        mkd_debug(0, "pegasus w%u pid %d: exited (%s; %s)", w->slot, w->pid,
                  desc, w->stop_reason ? w->stop_reason : "stopped");
    else
        mkd_warn(cid(w), "pegasus w%u pid %d: exited (%s) while %s", w->slot,
                 w->pid, desc, pegasus__state_name(w->state));
    if (w->ipc_eof && w->out_eof)
        finalize(w);
    else
        arm(w, LINGER_MS, on_timer);
}

/* ------------------------------------------------------------------ */
/* Timeouts                                                            */

static void on_timer(uv_timer_t *t)
{
    pegasus__worker *w = t->data;
    pegasus *p = w->pool;

    if (w->exited) {
        /* The linger after the exit is over. */
        finalize(w);
        return;
    }
    switch (w->state) {
    case PEGASUS_W_STARTING:
        lost(w, MKD_BACKEND_INTERNAL, "worker crashed",
             "not ready within start_timeout_ms");
        break;
    case PEGASUS_W_BUSY:
    case PEGASUS_W_DRAINING:
        p->timeouts++;
        mkd_warn(cid(w),
                 "pegasus w%u pid %d: request %" PRIu32
                 " timed out after %" PRIu32 " ms; killing the worker",
                 w->slot, w->pid, w->req ? w->req->ctx.request_id : 0,
                 p->cfg.request_timeout_ms);
        lost(w, MKD_BACKEND_TIMEOUT, "request timed out", "request timed out");
        break;
    case PEGASUS_W_STOPPING:
        if (!w->killed) {
            mkd_warn(0,
                     "pegasus w%u pid %d: did not stop within %" PRIu32
                     " ms; killing it",
                     w->slot, w->pid, p->cfg.stop_timeout_ms);
            pegasus__worker_kill(w);
        } else {
            mkd_error(0, "pegasus w%u pid %d: still alive after SIGKILL",
                      w->slot, w->pid);
        }
        arm(w, p->cfg.stop_timeout_ms, on_timer);
        break;
    case PEGASUS_W_IDLE:
    case PEGASUS_W_DEAD:
    case PEGASUS_W_NSTATES:
    default:
        break; /* a stale expiry: nothing is due in these states */
    }
}

/* ------------------------------------------------------------------ */
/* Output capture                                                      */

static void out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pegasus__worker *w = h->data;

    (void)suggested;
    if (w->line_len >= LINE_MAX_EMIT)
        flush_line(w, 0); /* an overlong line goes out in pieces */
    buf->base = w->line + w->line_len;
    buf->len = LINE_MAX_EMIT - w->line_len;
}

static void on_out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pegasus__worker *w = s->data;
    size_t start = 0;

    (void)buf;
    if (nread < 0) {
        flush_line(w, 1);
        (void)uv_read_stop(s); /* always 0 */
        w->out_eof = 1;
        maybe_finalize(w);
        return;
    }
    w->line_len += (size_t)nread;
    for (size_t i = 0; i < w->line_len; i++) {
        if (w->line[i] == '\n') {
            emit_line(w, w->line + start, i - start, 1);
            start = i + 1;
        }
    }
    if (start > 0) {
        memmove(w->line, w->line + start, w->line_len - start);
        w->line_len -= start;
    }
}

/* ------------------------------------------------------------------ */
/* Frames from the worker                                              */

/* The largest frame w may send: the limit it was started with (a reload
 * may have changed the pool's since) and the frame's overhead. */
static uint32_t rx_limit(const pegasus__worker *w)
{
    return w->max_message + PEGASUS_IPC_OVERHEAD;
}

static void shutdown_written(uv_write_t *wr, int status)
{
    pegasus__worker *w = wr->data;

    if (status < 0 && status != UV_ECANCELED && !w->exited)
        pegasus__worker_kill(w); /* it cannot hear us: no graceful stop */
}

static void send_shutdown(pegasus__worker *w)
{
    uv_buf_t b;

    if (w->shutdown_sent || w->ipc_eof || w->exited)
        return;
    if (pegasus_ipc_encode_shutdown(w->shut_frame, sizeof w->shut_frame) !=
        sizeof w->shut_frame) {
        pegasus__worker_kill(w);
        return;
    }
    b = uv_buf_init((char *)w->shut_frame, sizeof w->shut_frame);
    w->shut_wr.data = w;
    if (uv_write(&w->shut_wr, (uv_stream_t *)&w->ipc, &b, 1,
                 shutdown_written) != 0) {
        pegasus__worker_kill(w);
        return;
    }
    w->shutdown_sent = 1;
}

/* Leave service now: SHUTDOWN (it exits when it reads it) or SIGKILL. */
static void stop_now(pegasus__worker *w, int graceful, const char *reason)
{
    pegasus *p = w->pool;

    w->stop_reason = reason;
    mkd_debug(0, "pegasus w%u pid %d: stopping (%s)", w->slot, w->pid, reason);
    if (graceful)
        send_shutdown(w);
    else
        pegasus__worker_kill(w);
    (void)set_state(w, PEGASUS_W_STOPPING);
    if (!w->exited)
        arm(w, p->cfg.stop_timeout_ms, on_timer);
}

void pegasus__worker_stop(pegasus__worker *w, int graceful, const char *reason)
{
    pegasus *p = w->pool;
    pegasus__req *r;

    switch (w->state) {
    case PEGASUS_W_STARTING:
    case PEGASUS_W_IDLE:
        stop_now(w, graceful, reason);
        break;
    case PEGASUS_W_BUSY:
    case PEGASUS_W_DRAINING:
        if (w->req == NULL) {
            /* Its answer is in (on_answer detached it): stop now. */
            stop_now(w, graceful, reason);
            break;
        }
        w->stop_reason = reason;
        if (graceful) {
            /* Never cut a request short for a soft reason: it stops after
             * its answer (on_answer). */
            (void)set_state(w, PEGASUS_W_DRAINING);
            break;
        }
        r = w->req;
        w->req = NULL;
        r->worker = NULL;
        stop_now(w, 0, reason);
        /* It was running: "shutdown" would tell the client it never ran
         * (docs/PROTOCOL.md §8.5), so it is a request that ran too long. */
        pegasus__answer(p, r, MKD_BACKEND_TIMEOUT, NULL, 0,
                        "stopped at the server's shutdown deadline");
        break;
    case PEGASUS_W_STOPPING:
        if (!graceful)
            pegasus__worker_kill(w);
        break;
    case PEGASUS_W_DEAD:
    case PEGASUS_W_NSTATES:
    default:
        break;
    }
}

static void protocol_error(pegasus__worker *w, int res)
{
    pegasus *p = w->pool;
    unsigned type = w->rx_len > 0 ? w->rx[0] : 0;

    p->protocol_errors++;
    mkd_error(cid(w), "pegasus w%u pid %d: protocol error: %s (%s frame)",
              w->slot, w->pid, mkd_strerror(res), pegasus_ipc_type_name(type));
    /* A response over max_message is the application's doing; anything
     * else means the worker (Arcangelo or a replacement) is broken. */
    if (res == MKD_ERR_FRAME_TOO_LARGE && type == PEGASUS_IPC_RESPONSE)
        lost(w, MKD_BACKEND_APPLICATION, "response too large",
             "response over max_message");
    else
        lost(w, MKD_BACKEND_INTERNAL, "worker failed", "protocol error");
}

static void on_hello(pegasus__worker *w, const pegasus_ipc_frame *f)
{
    pegasus *p = w->pool;

    switch (w->state) {
    case PEGASUS_W_STARTING:
        break;
    case PEGASUS_W_STOPPING:
        return; /* stopped before it was ready; SHUTDOWN is on its way */
    case PEGASUS_W_IDLE:
    case PEGASUS_W_BUSY:
    case PEGASUS_W_DRAINING:
    case PEGASUS_W_DEAD:
    case PEGASUS_W_NSTATES:
    default:
        protocol_error(w, MKD_ERR_FRAME_MALFORMED);
        return;
    }
    if (f->version != PEGASUS_IPC_VERSION) {
        mkd_error(0,
                  "pegasus w%u pid %d: speaks worker protocol version %u, "
                  "not %u",
                  w->slot, w->pid, f->version, PEGASUS_IPC_VERSION);
        lost(w, MKD_BACKEND_INTERNAL, "worker failed",
             "wrong protocol version");
        return;
    }
    if (f->pid != (uint32_t)w->pid)
        mkd_debug(0, "pegasus w%u pid %d: HELLO names pid %" PRIu32, w->slot,
                  w->pid, f->pid);
    disarm(w);
    w->ready = 1;
    w->idle_since = uv_now(p->loop);
    if (set_state(w, PEGASUS_W_IDLE) != 0)
        return;
    mkd_debug(0, "pegasus w%u pid %d: ready (gen %u, %.*s)", w->slot, w->pid,
              w->gen, (int)f->data_len, (const char *)f->data);
    pegasus__on_ready(p, w);
    pegasus__dispatch(p);
    pegasus__kick(p);
}

/* Does f answer the request w holds? Its tag must match, and it must have
 * been written after the whole REQUEST frame was: the frame began after
 * the request was sent (nothing of it was in before, w->rx_fence), and
 * nothing of the request is still waiting to be written. A worker that
 * answers earlier answers a request it has not read, whatever the tag. */
static int answers_req(const pegasus__worker *w, const pegasus_ipc_frame *f)
{
    return w->req != NULL && f->tag == w->req->tag && w->rx_fence == 0 &&
           uv_stream_get_write_queue_size((const uv_stream_t *)&w->ipc) == 0;
}

/* Is f the answer w owes? A stale one (its request timed out) is dropped
 * quietly; anything else is a protocol error. So is a RESPONSE over the
 * max_message the worker was started with (--max-message), which the
 * frame limit lets through by up to the frame's overhead: the worker broke
 * a limit it was given. (deliver() says why no answer over the request's
 * limit may reach the client.) */
static int answer_expected(pegasus__worker *w, const pegasus_ipc_frame *f)
{
    switch (w->state) {
    case PEGASUS_W_BUSY:
    case PEGASUS_W_DRAINING:
        break;
    case PEGASUS_W_STOPPING:
        return 0; /* its request was already answered (a timeout) */
    case PEGASUS_W_STARTING:
    case PEGASUS_W_IDLE:
    case PEGASUS_W_DEAD:
    case PEGASUS_W_NSTATES:
    default:
        protocol_error(w, MKD_ERR_FRAME_MALFORMED);
        return 0;
    }
    if (!answers_req(w, f)) {
        protocol_error(w, MKD_ERR_FRAME_MALFORMED);
        return 0;
    }
    if (f->type == PEGASUS_IPC_RESPONSE && f->data_len > w->max_message) {
        protocol_error(w, MKD_ERR_FRAME_TOO_LARGE);
        return 0;
    }
    return 1;
}

/* Its answer is in: what w does next. */
static void after_answer(pegasus__worker *w, int exiting)
{
    pegasus *p = w->pool;

    if (exiting) {
        w->exiting = 1;
        w->stop_reason = "the worker exits (exit() or fatal error)";
        (void)set_state(w, PEGASUS_W_STOPPING);
        if (!w->exited)
            arm(w, p->cfg.stop_timeout_ms, on_timer);
    } else if (w->state == PEGASUS_W_DRAINING) {
        pegasus__worker_stop(w, 1, w->stop_reason);
    } else if (pegasus__want_retire(p, w)) {
        pegasus__worker_stop(w, 1, "reload");
    } else if (!pegasus__recycle(p, w)) {
        (void)set_state(w, PEGASUS_W_IDLE);
    }
}

/* The frame's answer to r: its response, or the application's error. A
 * response over r's own limit (what its connection was told) could not be
 * sealed for the client, and failing there would take the client's whole
 * connection down: it is the application's error. (Within the worker's
 * limit, a reload lowered max_message since the worker started: no fault
 * of the worker's, which goes on.) */
static void deliver(pegasus *p, pegasus__req *r, const pegasus_ipc_frame *f)
{
    char text[PEGASUS_IPC_ERROR_TEXT_MAX + 1];

    if (f->type == PEGASUS_IPC_RESPONSE && f->data_len <= r->max_message) {
        pegasus__answer(p, r, MKD_BACKEND_OK, f->data, f->data_len, NULL);
        return;
    }
    p->app_errors++;
    if (f->type == PEGASUS_IPC_RESPONSE) {
        pegasus__answer(p, r, MKD_BACKEND_APPLICATION, NULL, 0,
                        "response too large");
        return;
    }
    memcpy(text, f->data, f->data_len);
    text[f->data_len] = '\0';
    pegasus__answer(p, r, MKD_BACKEND_APPLICATION, NULL, 0,
                    f->data_len > 0 ? text : "application error");
}

static void on_answer(pegasus__worker *w, const pegasus_ipc_frame *f)
{
    pegasus *p = w->pool;
    pegasus__req *r = w->req;

    if (!answer_expected(w, f))
        return;
    /* Detach and settle the worker's next state before answering: done()
     * may submit again, and dispatch must see the truth. */
    disarm(w);
    w->req = NULL;
    r->worker = NULL;
    w->served++;
    w->idle_since = uv_now(p->loop);
    after_answer(w, (f->flags & PEGASUS_IPC_ANS_EXITING) != 0);
    pegasus__on_served(p);
    deliver(p, r, f);
    pegasus__dispatch(p);
    pegasus__kick(p);
}

static void ipc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pegasus__worker *w = h->data;
    size_t need = w->rx_len + RX_CHUNK;

    (void)suggested;
    /* A large frame whose header is in gets its whole size at once (the
     * header was checked against the limit), not 64 KiB steps. */
    if (w->rx_need > need)
        need = w->rx_need;
    if (w->rx_cap < need) {
        uint8_t *n = malloc(need);
        if (n == NULL) {
            buf->base = NULL;
            buf->len = 0; /* read_cb gets UV_ENOBUFS */
            return;
        }
        /* Copy and wipe rather than realloc: a response is plaintext the
         * client will get encrypted, and it should not linger in freed
         * memory. */
        if (w->rx != NULL) {
            memcpy(n, w->rx, w->rx_len);
            mkd_wipe(w->rx, w->rx_cap);
            free(w->rx);
        }
        w->rx = n;
        w->rx_cap = need;
    }
    buf->base = (char *)w->rx + w->rx_len;
    buf->len = w->rx_cap - w->rx_len;
}

static void on_frame(pegasus__worker *w, const pegasus_ipc_frame *f)
{
    switch (f->type) {
    case PEGASUS_IPC_HELLO:
        on_hello(w, f);
        break;
    case PEGASUS_IPC_RESPONSE:
    case PEGASUS_IPC_APP_ERROR:
        on_answer(w, f);
        break;
    case PEGASUS_IPC_REQUEST:
    case PEGASUS_IPC_SHUTDOWN:
    default:
        protocol_error(w, MKD_ERR_FRAME_TYPE); /* wrong direction */
        break;
    }
}

/* Every whole frame in w->rx, in order, until the worker leaves. */
static void read_frames(pegasus__worker *w)
{
    pegasus_ipc_frame f;
    size_t used = 0;
    int res;

    while (w->rx_len > 0 && w->state != PEGASUS_W_DEAD &&
           !uv_is_closing((uv_handle_t *)&w->ipc)) {
        res = pegasus_ipc_parse(w->rx, w->rx_len, rx_limit(w), &f, &used);
        if (res == MKD_WANT_MORE) {
            w->rx_need = used;
            break;
        }
        w->rx_need = 0;
        if (res != MKD_OK) {
            protocol_error(w, res);
            w->rx_len = w->rx_fence = 0; /* the stream is dead; drop the rest */
            break;
        }
        on_frame(w, &f);
        w->rx_fence = w->rx_fence > used ? w->rx_fence - used : 0;
        if (w->rx_len >= used) {
            mkd_wipe(w->rx, used);
            memmove(w->rx, w->rx + used, w->rx_len - used);
            w->rx_len -= used;
        } else {
            w->rx_len = 0;
        }
    }
}

static void on_ipc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pegasus__worker *w = s->data;

    (void)buf;
    if (nread == UV_ENOBUFS) {
        mkd_error(cid(w), "pegasus w%u pid %d: out of memory for a frame",
                  w->slot, w->pid);
        lost(w, MKD_BACKEND_INTERNAL, "out of memory", "out of memory");
        return;
    }
    if (nread < 0) {
        (void)uv_read_stop(s); /* always 0 */
        w->ipc_eof = 1;
        if (!w->exited && w->state != PEGASUS_W_STOPPING)
            lost(w, MKD_BACKEND_INTERNAL, "worker crashed",
                 "closed its channel");
        maybe_finalize(w);
        return;
    }
    w->rx_len += (size_t)nread;
    read_frames(w);
    /* Give back what a large frame made us hold. */
    if (w->rx_len == 0 && w->rx_cap > RX_CHUNK * 2) {
        mkd_wipe(w->rx, w->rx_cap);
        free(w->rx);
        w->rx = NULL;
        w->rx_cap = 0;
    }
}

/* ------------------------------------------------------------------ */
/* Requests to the worker                                              */

static void on_req_written(uv_write_t *wr, int status)
{
    pegasus__req *r = wr->data;
    pegasus__worker *w = r->worker;

    if (status < 0 && status != UV_ECANCELED && w != NULL && w->req == r &&
        !r->answered) {
        /* The worker cannot have read the whole frame, so the handler
         * never ran: another worker may take the request. */
        mkd_warn(r->ctx.conn_id,
                 "pegasus w%u pid %d: request write failed "
                 "(%s); retrying elsewhere",
                 w->slot, w->pid, uv_strerror(status));
        w->req = NULL;
        r->worker = NULL;
        lost(w, MKD_BACKEND_INTERNAL, "worker crashed", "channel write failed");
        if (r->attempts < 3)
            pegasus__requeue(w->pool, r);
        else
            pegasus__answer(w->pool, r, MKD_BACKEND_INTERNAL, NULL, 0,
                            "worker failed");
        pegasus__dispatch(w->pool);
    }
    pegasus__req_unref(r);
}

/* The request's context as the wire carries it. */
static void wire_ctx(const pegasus__req *r, pegasus_ipc_ctx *c)
{
    size_t alen;

    memset(c, 0, sizeof *c);
    c->tag = r->tag;
    c->conn_id = r->ctx.conn_id;
    c->request_id = r->ctx.request_id;
    c->port = r->ctx.peer_port;
    c->flags = r->ctx.early ? PEGASUS_IPC_REQ_EARLY : 0;
    memcpy(c->session_id, r->ctx.session_id, sizeof c->session_id);
    /* MKD's address text comes from inet_ntop; keep only what the wire
     * allows (printable ASCII, 45 bytes) whatever it holds. */
    alen = strnlen(r->ctx.peer_addr, sizeof r->ctx.peer_addr);
    for (size_t i = 0; i < alen && c->addr_len < PEGASUS_IPC_ADDR_MAX; i++) {
        char ch = r->ctx.peer_addr[i];
        if (ch > 0x20 && ch < 0x7f)
            c->addr[c->addr_len++] = ch;
    }
}

void pegasus__worker_send(pegasus__worker *w, pegasus__req *r)
{
    pegasus *p = w->pool;
    pegasus_ipc_ctx c;
    uv_buf_t bufs[2];
    size_t n;
    int rc;

    wire_ctx(r, &c);
    n = pegasus_ipc_encode_request_head(r->head, sizeof r->head, &c, r->len);
    if (n == 0) {
        /* Unreachable: the address was filtered above and submit() bounds
         * the body far below the hard maximum. */
        pegasus__answer(p, r, MKD_BACKEND_INTERNAL, NULL, 0, "bad request");
        return;
    }
    bufs[0] = uv_buf_init((char *)r->head, (unsigned)n);
    bufs[1] = uv_buf_init((char *)r->body, (unsigned)r->len);
    r->wr.data = r;
    r->refs++;
    r->worker = w;
    r->attempts++;
    rc = uv_write(&r->wr, (uv_stream_t *)&w->ipc, bufs, r->len > 0 ? 2 : 1,
                  on_req_written);
    if (rc != 0) {
        r->refs--;
        r->worker = NULL;
        mkd_warn(r->ctx.conn_id,
                 "pegasus w%u pid %d: cannot write to the "
                 "worker (%s)",
                 w->slot, w->pid, uv_strerror(rc));
        lost(w, MKD_BACKEND_INTERNAL, "worker crashed", "channel write failed");
        pegasus__requeue(p, r);
        return;
    }
    w->req = r;
    r->sent_ns = uv_hrtime();
    r->pid = w->pid;
    w->rx_fence = w->rx_len; /* in before the request: not its answer */
    w->last_conn = r->ctx.conn_id;
    if (set_state(w, PEGASUS_W_BUSY) != 0) {
        /* Cannot happen: dispatch only picks IDLE workers. */
        lost(w, MKD_BACKEND_INTERNAL, "worker failed", "bad state");
        return;
    }
    arm(w, p->cfg.request_timeout_ms, on_timer);
}

/* ------------------------------------------------------------------ */
/* Spawning                                                            */

/* What a worker is started with. The arrays point into the pool's
 * configuration and into the strings here. */
typedef struct spawn_args {
    pegasus_command cmd;
    uv_file fds[2]; /* the output pipe: ours, the worker's */
    uv_stdio_container_t stdio[4];
} spawn_args;

static int pick_slot(pegasus *p, unsigned *slot)
{
    for (unsigned i = 0; i < p->nslots; i++) {
        if (p->slots[i].w == NULL) {
            *slot = i;
            return 0;
        }
    }
    return -1;
}

/* A new worker of the current generation in slot, linked into the pool:
 * from here on its close callbacks own it. NULL when out of memory. */
static pegasus__worker *worker_new(pegasus *p, unsigned slot)
{
    pegasus__worker *w = calloc(1, sizeof *w);

    if (w == NULL)
        return NULL;
    w->pool = p;
    w->slot = slot;
    w->gen = p->gen;
    w->state = PEGASUS_W_STARTING;
    w->proc.data = w->ipc.data = w->out.data = w->timer.data = w;
    w->spawned_at = uv_now(p->loop);
    w->max_message = p->cfg.max_message; /* what build_command passes */
    w->max_requests = pegasus__jitter(p, p->cfg.max_requests);
    w->max_lifetime_ms =
        pegasus__jitter(p, (uint64_t)p->cfg.max_lifetime_s * 1000u);
    w->next = p->workers;
    if (p->workers != NULL)
        p->workers->prev = w;
    p->workers = w;
    p->slots[slot].w = w;
    if (p->slots[slot].used)
        p->slots[slot].restarts++;
    p->slots[slot].used = 1;
    p->spawned++;
    return w;
}

/* Its timer and both pipes; w->open_handles counts those that exist. */
static int worker_handles(pegasus__worker *w)
{
    uv_loop_t *loop = w->pool->loop;

    if (uv_timer_init(loop, &w->timer) != 0)
        return MKD_ERR_LOOP;
    w->open_handles++;
    if (uv_pipe_init(loop, &w->ipc, 0) != 0)
        return MKD_ERR_LOOP;
    w->open_handles++;
    if (uv_pipe_init(loop, &w->out, 0) != 0)
        return MKD_ERR_LOOP;
    w->open_handles++;
    return MKD_OK;
}

/* stdout and stderr share one pipe that we read into the log; the
 * protocol has fd 3 to itself, so a stray echo cannot corrupt it. */
static int setup_stdio(pegasus__worker *w, spawn_args *a)
{
    if (uv_pipe(a->fds, UV_NONBLOCK_PIPE, 0) != 0)
        return MKD_ERR_LOOP;
    memset(a->stdio, 0, sizeof a->stdio);
    a->stdio[0].flags = UV_IGNORE; /* /dev/null */
    a->stdio[1].flags = UV_INHERIT_FD;
    a->stdio[1].data.fd = a->fds[1];
    a->stdio[2].flags = UV_INHERIT_FD;
    a->stdio[2].data.fd = a->fds[1];
    a->stdio[3].flags = UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
    a->stdio[3].data.stream = (uv_stream_t *)&w->ipc;
    return MKD_OK;
}

/* Everything the process is started with, in a. */
static int spawn_args_build(pegasus__worker *w, spawn_args *a)
{
    pegasus *p = w->pool;
    mkd_diag d;
    int rc;

    if ((rc = pegasus_command_build(&p->cfg, w->slot, &a->cmd, &d)) != MKD_OK) {
        mkd_error(0, "%s", mkd_diag_text(&d, rc));
        return rc;
    }
    return setup_stdio(w, a);
}

static void spawn_args_clear(spawn_args *a)
{
    for (int i = 0; i < 2; i++)
        if (a->fds[i] >= 0)
            (void)close(a->fds[i]);
    pegasus_command_free(&a->cmd);
}

static void process_options(pegasus *p, spawn_args *a, uv_process_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->exit_cb = on_exit_cb;
    o->file = p->str.php;
    o->args = (char **)(uintptr_t)a->cmd.argv;
    o->env = (char **)(uintptr_t)a->cmd.envp;
    o->cwd = a->cmd.dir;
    o->stdio = a->stdio;
    o->stdio_count = 4;
    /* A session of its own: a terminal's ^C reaches MKD, which drains,
     * not every worker at once; and kill(-pid) reaches its children. */
    o->flags = UV_PROCESS_DETACHED;
    if (p->cfg.gid >= 0) {
        o->flags |= UV_PROCESS_SETGID;
        o->gid = (uv_gid_t)p->cfg.gid;
    }
    if (p->cfg.uid >= 0) {
        o->flags |= UV_PROCESS_SETUID;
        o->uid = (uv_uid_t)p->cfg.uid;
    }
}

/* Through the pool's launcher: it starts the process elsewhere and hands
 * back its pid and our ends of its channel and output. */
static int start_launched(pegasus__worker *w, spawn_args *a)
{
    pegasus *p = w->pool;
    pegasus_launcher *l = p->cfg.launcher;
    int pid = 0, ipc_fd = -1, out_fd = -1, rc;

    if ((rc = l->ops->spawn(l, w->slot, w->max_message, &pid, &ipc_fd,
                            &out_fd)) != MKD_OK) {
        mkd_error(0, "pegasus w%u: the launcher cannot start a worker: %s",
                  w->slot, mkd_strerror(rc));
        return rc;
    }
    w->spawned = 1;
    w->launched = 1;
    w->pid = pid;
    a->fds[0] = out_fd;
    if (uv_pipe_open(&w->ipc, ipc_fd) != 0) {
        (void)close(ipc_fd);
        return MKD_ERR_LOOP; /* it runs: the caller kills it */
    }
    return MKD_OK;
}

static int start_process(pegasus__worker *w, spawn_args *a)
{
    pegasus *p = w->pool;
    uv_process_options_t o;
    int rc;

    if (p->cfg.launcher != NULL)
        return start_launched(w, a);
    process_options(p, a, &o);
    rc = uv_spawn(p->loop, &w->proc, &o);
    /* uv_spawn initialises the handle even when it fails: close it too. */
    w->open_handles++;
    (void)close(a->fds[1]); /* the child has its copy (or never will) */
    a->fds[1] = -1;
    if (rc != 0) {
        mkd_error(0, "pegasus w%u: cannot start %s: %s", w->slot, p->str.php,
                  uv_strerror(rc));
        return MKD_ERR_LOOP;
    }
    w->spawned = 1;
    w->pid = w->proc.pid;
    return MKD_OK;
}

/* Read its output and its channel, and time its start. */
static int watch(pegasus__worker *w, spawn_args *a)
{
    int rc;

    if ((rc = uv_pipe_open(&w->out, a->fds[0])) == 0) {
        a->fds[0] = -1;
        if ((rc = uv_read_start((uv_stream_t *)&w->out, out_alloc,
                                on_out_read)) == 0)
            rc = uv_read_start((uv_stream_t *)&w->ipc, ipc_alloc, on_ipc_read);
    }
    if (rc != 0) {
        mkd_error(0, "pegasus w%u pid %d: cannot watch the worker: %s", w->slot,
                  w->pid, uv_strerror(rc));
        return MKD_ERR_LOOP;
    }
    arm(w, w->pool->cfg.start_timeout_ms, on_timer);
    return MKD_OK;
}

/* The process runs but we cannot talk to it: kill it, and let the exit
 * path count the start failure. */
static void cannot_watch(pegasus__worker *w)
{
    w->out_eof = 1;
    w->ipc_eof = 1;
    pegasus__worker_kill(w);
}

/* A worker whose process never ran leaves: closing its handles unlinks
 * and frees it (on_closed); without any handle it goes here. */
static void abandon(pegasus__worker *w)
{
    pegasus *p = w->pool;

    if (w->slot < p->nslots && p->slots[w->slot].w == w)
        p->slots[w->slot].w = NULL;
    if (w->open_handles == 0) {
        unlink_worker(w);
        free(w);
        return;
    }
    (void)set_state(w, PEGASUS_W_STOPPING);
    close_handle(w, (uv_handle_t *)&w->timer);
    if (w->open_handles >= 2)
        close_handle(w, (uv_handle_t *)&w->ipc);
    if (w->open_handles >= 3)
        close_handle(w, (uv_handle_t *)&w->out);
    if (w->open_handles >= 4)
        close_handle(w, (uv_handle_t *)&w->proc);
}

int pegasus__worker_spawn(pegasus *p)
{
    pegasus__worker *w;
    spawn_args a = {.fds = {-1, -1}};
    unsigned slot;
    int rc;

    if (pick_slot(p, &slot) != 0)
        return MKD_ERR_STATE; /* the pool is full of stopping workers */
    if ((w = worker_new(p, slot)) == NULL)
        return MKD_ERR_NOMEM;
    if ((rc = worker_handles(w)) != MKD_OK) {
        abandon(w); /* our failure, not the application's */
        goto out;
    }
    if ((rc = spawn_args_build(w, &a)) != MKD_OK ||
        (rc = start_process(w, &a)) != MKD_OK) {
        if (w->spawned) {
            /* Launched, but its channel cannot be watched: like below. */
            cannot_watch(w);
            rc = MKD_OK;
            goto out;
        }
        /* Never ran: a start failure (a missing PHP binary or app must
         * not spin either), then the handles go. */
        pegasus__on_death(p, w);
        abandon(w);
        goto out;
    }
    if (watch(w, &a) != MKD_OK)
        cannot_watch(w); /* the worker exists: its exit finishes it */
    else
        mkd_debug(0, "pegasus w%u pid %d: spawned (gen %u)", slot, w->pid,
                  w->gen);

out:
    spawn_args_clear(&a);
    return rc;
}
