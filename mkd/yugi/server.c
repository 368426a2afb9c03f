/*
 * server.c -- the server (yugi.h): its start, the 1-second tick (rates,
 * address-table sweep, a summary line a minute), reloads, the graceful
 * shutdown, and the counters the control room reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mkd_access.h"
#include "mkd_log.h"

/* How long the answers given at the shutdown deadline have to be sealed
 * and written before the connections are closed regardless. */
#define SHUTDOWN_GRACE_MS 1000

static const char *const reason_keys[YUGI_CR_COUNT] = {
    "done",
    "eof",
    "io",
    "protocol",
    "timeout_handshake",
    "timeout_idle",
    "timeout_unit",
    "timeout_write",
    "timeout_request",
    "refused",
    "internal",
    "shutdown",
};

const char *yugi_close_reason_key(int reason)
{
    return reason >= 0 && reason < YUGI_CR_COUNT ? reason_keys[reason] : "?";
}

static const char *const outcome_keys[YUGI_OUT_COUNT] = {
    "ok",        "application", "timeout",  "overloaded",
    "too_large", "internal",    "shutdown", "cancelled",
};

const char *yugi_outcome_key(int outcome)
{
    return outcome >= 0 && outcome < YUGI_OUT_COUNT ? outcome_keys[outcome]
                                                    : "?";
}

/* Bucket bounds from 100 us to 60 s, roughly 1-2.5-5 per decade: wide
 * enough for a handshake on a busy machine and a slow PHP request. */
static const uint64_t hist_bounds_us[YUGI_HIST_BUCKETS - 1] = {
    100,   250,    500,    1000,   2500,    5000,    10000,    25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 10000000, 60000000,
};

uint64_t yugi_hist_bound_us(unsigned i)
{
    return i < YUGI_HIST_BUCKETS - 1 ? hist_bounds_us[i] : UINT64_MAX;
}

void yugi__hist_add(yugi_hist *h, uint64_t us)
{
    unsigned i = 0;

    while (i < YUGI_HIST_BUCKETS - 1 && us > hist_bounds_us[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum_us += us;
}

static void on_tick(uv_timer_t *t);

static void addrs_configure(yugi_addrs *t, const yugi_limits *l)
{
    yugi__addrs_set(t, YUGI_BUCKET_FULL, l->handshake_rate, l->handshake_burst);
    yugi__addrs_set(t, YUGI_BUCKET_RESUME, l->resume_rate, l->resume_burst);
}

int yugi_server_new(uv_loop_t *loop, const yugi_config *cfg,
                    mk_server_config *scfg, yami *y, mkd_backend *backend,
                    yugi_server **out)
{
    yugi_server *srv = calloc(1, sizeof *srv);

    *out = NULL;
    if (srv == NULL ||
        snprintf(srv->listen, sizeof srv->listen, "%s", cfg->listen) >=
            (int)sizeof srv->listen ||
        yugi__addrs_init(&srv->addrs) != MKD_OK) {
        free(srv);
        mk_server_config_unref(scfg);
        if (backend != NULL)
            backend->ops->free(backend);
        return MKD_ERR_NOMEM;
    }
    srv->loop = loop;
    srv->port = cfg->port;
    srv->backlog = cfg->backlog;
    srv->lim = cfg->limits;
    addrs_configure(&srv->addrs, &srv->lim);
    yami_set_budget(y, srv->lim.buffer_budget);
    srv->scfg = scfg;
    srv->yami = y;
    srv->backend = backend;
    srv->started_ms = uv_now(loop);
    /* uv_timer_init cannot fail. */
    (void)uv_timer_init(loop, &srv->tick);
    (void)uv_timer_init(loop, &srv->shutdown_timer);
    (void)uv_check_init(loop, &srv->flush);
    srv->tick.data = srv->shutdown_timer.data = srv;
    *out = srv;
    return MKD_OK;
}

/* Once per loop iteration: the access log's lines of this round, in one
 * write. */
static void on_flush(uv_check_t *h)
{
    (void)h;
    mkd_access_flush();
}

int yugi_server_listen(yugi_server *srv, mkd_diag *d)
{
    int r;

    mkd_diag_clear(d);
    if ((r = yugi__listen(srv, d)) != MKD_OK)
        return r;
    if (uv_timer_start(&srv->tick, on_tick, 1000, 1000) != 0)
        return mkd_fail(d, MKD_ERR_LOOP, "cannot start the server's tick");
    if (uv_check_start(&srv->flush, on_flush) != 0)
        return mkd_fail(d, MKD_ERR_LOOP, "cannot start the access log flush");
    /* It must not keep the loop alive by itself. */
    uv_unref((uv_handle_t *)&srv->flush);
    return MKD_OK;
}

uint16_t yugi_server_port(const yugi_server *srv)
{
    return srv->port;
}

/* --- tick ------------------------------------------------------------- */

/* Per-connection events are debug-level (a flood must not flood the log);
 * once a minute, if anything was refused or failed, one info line says how
 * much, so an operator sees an attack or a misconfiguration without debug
 * logging. */
static void log_summary(yugi_server *srv)
{
    const yugi_stats *st = &srv->st;
    yugi_summary now, *last = &srv->summary;

    now.refused = st->refused_connections + st->refused_pending +
                  st->refused_handshakes + st->refused_rate +
                  st->refused_per_address + st->refused_resume_rate;
    now.failed =
        st->close_reason[YUGI_CR_PROTO] + st->close_reason[YUGI_CR_INTERNAL];
    now.handshakes = st->hs_full + st->hs_resumed;
    now.timeouts = st->close_reason[YUGI_CR_TO_HANDSHAKE] +
                   st->close_reason[YUGI_CR_TO_UNIT] +
                   st->close_reason[YUGI_CR_TO_WRITE] +
                   st->close_reason[YUGI_CR_TO_REQUEST];
    if (now.refused != last->refused || now.failed != last->failed ||
        now.timeouts != last->timeouts)
        mkd_info(0,
                 "last minute: %llu handshakes, %llu refused (retry "
                 "later), %llu protocol/internal failures, %llu "
                 "timeouts; %zu connections",
                 (unsigned long long)(now.handshakes - last->handshakes),
                 (unsigned long long)(now.refused - last->refused),
                 (unsigned long long)(now.failed - last->failed),
                 (unsigned long long)(now.timeouts - last->timeouts),
                 srv->nconns);
    *last = now;
}

static void on_tick(uv_timer_t *t)
{
    yugi_server *srv = t->data;

    srv->hs_full_ring[srv->ring_pos] = srv->st.hs_full - srv->last_full;
    srv->hs_res_ring[srv->ring_pos] = srv->st.hs_resumed - srv->last_res;
    srv->last_full = srv->st.hs_full;
    srv->last_res = srv->st.hs_resumed;
    srv->ring_pos = (srv->ring_pos + 1) % YUGI_RATE_WINDOW;
    if (++srv->ticks % 10 == 0)
        yugi__addrs_sweep(&srv->addrs, uv_now(srv->loop));
    if (srv->ticks % 60 == 0)
        log_summary(srv);
}

/* --- reload ----------------------------------------------------------- */

void yugi_server_reload(yugi_server *srv, const yugi_limits *limits,
                        mk_server_config *scfg)
{
    if (srv->shutting_down) {
        mk_server_config_unref(scfg);
        return;
    }
    srv->lim = *limits;
    addrs_configure(&srv->addrs, limits);
    yami_set_budget(srv->yami, limits->buffer_budget);
    /* Sessions on the old configuration keep it: it is reference
     * counted. */
    mk_server_config_unref(srv->scfg);
    srv->scfg = scfg;
    srv->backend->ops->reload(srv->backend);
    srv->st.reloads++;
}

/* --- counters ----------------------------------------------------------- */

void yugi_server_stats(const yugi_server *srv, yugi_stats *out)
{
    unsigned last = (srv->ring_pos + YUGI_RATE_WINDOW - 1) % YUGI_RATE_WINDOW;

    *out = srv->st;
    out->shutting_down = srv->shutting_down;
    out->uptime_ms = uv_now(srv->loop) - srv->started_ms;
    out->connections = srv->nconns;
    out->refusing = srv->nrefusing;
    out->addresses = srv->addrs.count;
    out->listeners = srv->shutting_down ? 0 : srv->nlisteners;
    out->handshakes_in_progress = srv->hs_inflight;
    out->max_connections = srv->lim.max_connections;
    out->full_last_s = srv->hs_full_ring[last];
    out->resumed_last_s = srv->hs_res_ring[last];
    out->full_window = out->resumed_window = 0;
    for (unsigned i = 0; i < YUGI_RATE_WINDOW; i++) {
        out->full_window += srv->hs_full_ring[i];
        out->resumed_window += srv->hs_res_ring[i];
    }
}

void yugi_server_backend_stats(yugi_server *srv, mkd_backend_stats *out)
{
    memset(out, 0, sizeof *out);
    if (srv->backend != NULL)
        srv->backend->ops->stats(srv->backend, out);
}

int yugi_server_ready(yugi_server *srv, const char **why)
{
    mkd_backend_stats b;

    *why = NULL;
    if (srv->shutting_down || srv->backend == NULL)
        *why = "shutting down";
    else if (srv->nlisteners == 0)
        *why = "not listening";
    if (*why != NULL)
        return 0;
    yugi_server_backend_stats(srv, &b);
    if (b.has_workers && b.crash_loop)
        *why = "the application is in a crash loop";
    else if (b.has_workers && b.workers_idle + b.workers_busy == 0)
        *why = "no worker ready";
    return *why == NULL;
}

size_t yugi_server_backend_status(yugi_server *srv, char *buf, size_t cap)
{
    if (srv->backend == NULL || cap == 0)
        return 0;
    return srv->backend->ops->status(srv->backend, buf, cap);
}

/* --- shutdown --------------------------------------------------------- */

static void on_closed_nothing(uv_handle_t *h)
{
    (void)h;
}

static void close_if(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_closed_nothing);
}

void yugi__maybe_finish(yugi_server *srv)
{
    void (*done)(void *);

    if (!srv->shutting_down || srv->finished || srv->conns != NULL ||
        !srv->backend_drained)
        return;
    srv->finished = 1;
    mkd_info(0, "all connections closed");
    close_if((uv_handle_t *)&srv->tick);
    close_if((uv_handle_t *)&srv->shutdown_timer);
    close_if((uv_handle_t *)&srv->flush);
    mkd_access_flush();
    if (srv->backend != NULL) {
        srv->backend->ops->free(srv->backend);
        srv->backend = NULL;
    }
    done = srv->done;
    srv->done = NULL;
    if (done != NULL)
        done(srv->done_arg);
}

static void force_close_all(yugi_server *srv)
{
    while (srv->conns != NULL)
        yugi__conn_close(srv->conns, YUGI_CR_SHUTDOWN);
}

static void on_shutdown_grace(uv_timer_t *t)
{
    yugi_server *srv = t->data;

    if (srv->nconns > 0)
        mkd_warn(0, "shutdown: closing %zu connection(s) still open",
                 srv->nconns);
    force_close_all(srv);
    yugi__maybe_finish(srv);
}

/*
 * shutdown_timeout_ms is over and requests are still running (or the
 * answers to them are still being written). Closing the connections now
 * would leave the clients of running requests with a cut connection and
 * no answer, so first the backend goes: its free() answers everything it
 * still holds with MKD_BACKEND_SHUTDOWN through the done callbacks
 * (backend.h), which queues authenticated error records to Yami. Those get
 * SHUTDOWN_GRACE_MS to be sealed and written; a connection whose answers
 * are all out then closes by itself with its close record, and the rest
 * are closed when the grace ends.
 */
static void on_shutdown_deadline(uv_timer_t *t)
{
    yugi_server *srv = t->data;
    mkd_backend *b = srv->backend;

    mkd_warn(0,
             "shutdown deadline: answering what is still running with "
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
    yugi__maybe_finish(srv);
}

static void on_backend_drained(void *arg)
{
    yugi_server *srv = arg;

    srv->backend_drained = 1;
    yugi__maybe_finish(srv);
}

/* Close everything now: connections, then the backend (through finish). */
static void shutdown_now(yugi_server *srv)
{
    srv->backend_drained = 1;
    force_close_all(srv);
    yugi__maybe_finish(srv);
}

void yugi_server_shutdown(yugi_server *srv, int graceful, void (*done)(void *),
                          void *arg)
{
    yugi_conn *c, *next;

    if (srv->shutting_down) {
        if (!srv->finished && !graceful)
            shutdown_now(srv);
        return;
    }
    srv->shutting_down = 1;
    srv->done = done;
    srv->done_arg = arg;
    yugi__listeners_close(srv);
    if (!graceful) {
        shutdown_now(srv);
        return;
    }
    mkd_info(0, "shutting down: %zu connection(s), up to %u ms", srv->nconns,
             srv->lim.shutdown_timeout_ms);
    if (uv_timer_start(&srv->shutdown_timer, on_shutdown_deadline,
                       srv->lim.shutdown_timeout_ms, 0) != 0)
        force_close_all(srv);
    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        yugi__conn_shutdown(c);
    }
    srv->backend->ops->drain(srv->backend, on_backend_drained, srv);
    yugi__maybe_finish(srv);
}

void yugi_server_free(yugi_server *srv)
{
    if (srv == NULL)
        return;
    free(srv->listeners);
    yugi__addrs_free(&srv->addrs);
    mk_server_config_unref(srv->scfg);
    free(srv);
}
