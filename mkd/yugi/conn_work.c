/*
 * conn_work.c -- a connection's hand-offs: its units to Yami and Yami's
 * results back (bytes to write, completed requests, the session's fate),
 * its requests to the backend and the backend's answers back to Yami to be
 * sealed, and its close record.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mkd_access.h"
#include "mkd_log.h"
#include "mkd_util.h"

void yugi__conn_kick(yugi_conn *c)
{
    int was, r;

    if (c->state == YUGI_CLOSED || c->yami == NULL)
        return;
    was = yami_conn_busy(c->yami);
    if ((r = yami_kick(c->yami)) != MKD_OK) {
        mkd_error(c->id, "cannot queue work: %s", mkd_strerror(r));
        yugi__conn_close(c, YUGI_CR_INTERNAL);
        return;
    }
    /* A pool job started (perhaps after some inline rounds): its
     * reference, dropped in on_result. An inline job leaves busy clear. */
    if (!was && yami_conn_busy(c->yami))
        c->refs++;
}

void yugi__conn_close_record(yugi_conn *c)
{
    if (yami_queue_close(c->yami) != MKD_OK) {
        yugi__conn_close(c, YUGI_CR_INTERNAL);
        return;
    }
    c->close_queued = 1;
    yugi__conn_kick(c);
}

/* Send our close record once nothing is owed: the peer closed, or we are
 * shutting down, and every request has been answered. */
void yugi__conn_maybe_close_record(yugi_conn *c)
{
    if (c->state != YUGI_ESTABLISHED || c->close_queued ||
        !(c->peer_closed || c->srv->shutting_down) || c->inflight != 0 ||
        yami_conn_busy(c->yami) || yami_conn_pending(c->yami))
        return;
    if (c->srv->shutting_down && !c->peer_closed)
        c->close_hint = YUGI_CR_SHUTDOWN;
    yugi__conn_close_record(c);
}

/* --- the backend -------------------------------------------------------- */

unsigned yugi__ecode(mkd_backend_status st)
{
    switch (st) {
    case MKD_BACKEND_APPLICATION:
        return MK_ECODE_APPLICATION;
    case MKD_BACKEND_TIMEOUT:
        return MK_ECODE_TIMEOUT;
    case MKD_BACKEND_OVERLOADED:
        return MK_ECODE_OVERLOADED;
    case MKD_BACKEND_TOO_LARGE:
        return MK_ECODE_TOO_LARGE;
    case MKD_BACKEND_SHUTDOWN:
        return MK_ECODE_SHUTDOWN;
    case MKD_BACKEND_OK:
    case MKD_BACKEND_INTERNAL:
    default:
        return MK_ECODE_INTERNAL;
    }
}

/* The text of the error record for a request the backend refused at
 * submit(): it says what the status says (the client shows both). */
const char *yugi__refusal_text(mkd_backend_status st)
{
    switch (st) {
    case MKD_BACKEND_OVERLOADED:
        return "server overloaded";
    case MKD_BACKEND_TOO_LARGE:
        return "request too large";
    case MKD_BACKEND_SHUTDOWN:
        return "server shutting down";
    case MKD_BACKEND_INTERNAL:
        return "internal error";
    default:
        return mkd_backend_status_name(st);
    }
}

/* --- a request's end ------------------------------------------------------ */

/* What the end of a request tells. */
typedef struct req_end {
    uint32_t id;
    size_t in, out;    /* body bytes: the request's, the answer's (0: error) */
    uint64_t start_ns; /* its last record opened; 0: answered at once */
    int outcome;       /* YUGI_OUT_* (a backend status, or cancelled) */
    const mkd_backend_timing *timing; /* NULL: the backend never had it */
} req_end;

static double ms_of(uint64_t us)
{
    return (double)us / 1000.0;
}

static void log_slow(const yugi_conn *c, const req_end *e, uint64_t us,
                     const mkd_backend_timing *t)
{
    mkd_warn(c->id,
             "slow request %lu: %.1f ms (queue %.1f ms, worker %.1f ms, "
             "worker pid %d), %s, %zu bytes in, %zu out, from %s:%u",
             (unsigned long)e->id, ms_of(us), ms_of(t->queue_us),
             ms_of(t->run_us), t->worker_pid, yugi_outcome_key(e->outcome),
             e->in, e->out, c->peer, c->peer_port);
}

static void access_line(const yugi_conn *c, const req_end *e, uint64_t us,
                        const mkd_backend_timing *t)
{
    mkd_access_rec r = {
        .conn_id = c->id,
        .request_id = e->id,
        .client = c->peer,
        .port = c->peer_port,
        .session_id = c->session_id,
        .bytes_in = e->in,
        .bytes_out = e->out,
        .duration_us = us,
        .queue_us = t->queue_us,
        .worker_us = t->run_us,
        .worker_pid = t->worker_pid,
        .outcome = yugi_outcome_key(e->outcome),
    };

    mkd_access_write(&r);
}

/* A request ended: its outcome counted, its latency, the access log, the
 * slow-request log. */
static void request_ended(yugi_conn *c, const req_end *e)
{
    static const mkd_backend_timing none;
    yugi_server *srv = c->srv;
    const mkd_backend_timing *t = e->timing != NULL ? e->timing : &none;
    uint64_t us = e->start_ns ? (uv_hrtime() - e->start_ns) / 1000u : 0;

    srv->st.outcomes[e->outcome]++;
    if (e->outcome != YUGI_OUT_CANCELLED)
        yugi__hist_add(&srv->st.request_latency, us);
    if (srv->lim.request_slowlog_ms != 0 &&
        us > (uint64_t)srv->lim.request_slowlog_ms * 1000u) {
        srv->st.slow_requests++;
        log_slow(c, e, us, t);
    }
    if (mkd_access_enabled())
        access_line(c, e, us, t);
}

void yugi__request_cancelled(yugi_conn *c, const yugi_req *q)
{
    req_end e = {q->id, q->len, 0, q->start_ns, YUGI_OUT_CANCELLED, NULL};

    request_ended(c, &e);
}

/* Request id, refused at once (never at the backend), ended. */
static void refused_at_once(yugi_conn *c, uint32_t id, size_t len, int outcome)
{
    req_end e = {id, len, 0, 0, outcome, NULL};

    request_ended(c, &e);
}

static void queue_error(yugi_conn *c, uint32_t id, unsigned code,
                        const char *text)
{
    if (yami_queue_error(c->yami, id, code, text) != MKD_OK)
        yugi__conn_close(c, YUGI_CR_INTERNAL);
}

/* Take a request off its connection's list and free it. */
static void req_unlink_free(yugi_conn *c, yugi_req *q)
{
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        c->reqs = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    free(q);
}

static void on_backend_done(void *token, mkd_backend_status status,
                            const uint8_t *body, size_t len, const char *text,
                            const mkd_backend_timing *timing)
{
    yugi_req *q = token;
    yugi_conn *c = q->conn;
    uint32_t id = q->id;
    req_end e = {id,          q->len,      status == MKD_BACKEND_OK ? len : 0,
                 q->start_ns, (int)status, timing};

    req_unlink_free(c, q);
    request_ended(c, &e);
    if (c->state == YUGI_CLOSED)
        return; /* cannot happen: closing cancels; be safe */
    if (c->failed) {
        /* The session failed meanwhile: the answer cannot be sealed. */
        c->inflight--;
        return;
    }
    if (status == MKD_BACKEND_OK) {
        if (yami_queue_response(c->yami, id, body, len) != MKD_OK) {
            yugi__conn_close(c, YUGI_CR_INTERNAL);
            return;
        }
    } else {
        queue_error(c, id, yugi__ecode(status), text);
        if (c->state == YUGI_CLOSED)
            return;
    }
    yugi__conn_kick(c);
}

/* Request r's context, as the backend sees it. */
static void request_ctx(const yugi_conn *c, uint32_t id, mkd_request_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->conn_id = c->id;
    ctx->request_id = id;
    memcpy(ctx->peer_addr, c->peer, sizeof ctx->peer_addr);
    ctx->peer_port = c->peer_port;
    memcpy(ctx->session_id, c->session_id, sizeof ctx->session_id);
    memcpy(ctx->key_id, c->key_id, sizeof ctx->key_id);
    ctx->max_response = c->max_message;
    ctx->early = 0;
}

/* Refuse request id at once: its body is dropped, an error answers it. */
static void refuse_request(yugi_conn *c, uint32_t id, uint8_t *body, size_t len,
                           mkd_backend_status st, const char *text)
{
    mkd_wipe(body, len);
    free(body);
    refused_at_once(c, id, len, (int)st);
    queue_error(c, id, yugi__ecode(st), text);
}

/* A request whose last record arrived: to the backend, or answered at
 * once when it cannot go there. The body's ownership moves on. */
static void dispatch(yugi_conn *c, yami_request *r)
{
    yugi_server *srv = c->srv;
    mkd_request_ctx ctx;
    mkd_backend_status st;
    yugi_req *q;
    uint8_t *body = r->body;

    r->body = NULL;
    if (c->close_queued) {
        /* Nothing can be sealed after our close record. */
        mkd_wipe(body, r->len);
        free(body);
        refused_at_once(c, r->id, r->len, YUGI_OUT_CANCELLED);
        return;
    }
    c->inflight++;
    srv->st.requests++;
    if (srv->shutting_down || srv->backend == NULL) {
        refuse_request(c, r->id, body, r->len, MKD_BACKEND_SHUTDOWN,
                       "server shutting down");
        return;
    }
    if ((q = calloc(1, sizeof *q)) == NULL) {
        refuse_request(c, r->id, body, r->len, MKD_BACKEND_INTERNAL,
                       "out of memory");
        return;
    }
    q->conn = c;
    q->id = r->id;
    q->len = r->len;
    q->start_ns = uv_hrtime();
    q->next = c->reqs;
    if (c->reqs != NULL)
        c->reqs->prev = q;
    c->reqs = q;
    request_ctx(c, r->id, &ctx);
    st = srv->backend->ops->submit(srv->backend, &ctx, body, r->len,
                                   on_backend_done, q);
    if (st != MKD_BACKEND_OK) {
        /* Refused at once: done() will not be called for it. */
        req_unlink_free(c, q);
        if (st == MKD_BACKEND_OVERLOADED)
            srv->st.backend_overloaded++;
        refused_at_once(c, r->id, r->len, (int)st);
        queue_error(c, r->id, yugi__ecode(st), yugi__refusal_text(st));
    }
}

/* --- Yami's results ------------------------------------------------------- */

static void on_established(yugi_conn *c, const yami_result *res)
{
    yugi_server *srv = c->srv;

    c->state = YUGI_ESTABLISHED;
    memcpy(c->session_id, res->session_id, sizeof c->session_id);
    memcpy(c->key_id, res->key_id, sizeof c->key_id);
    c->max_message = res->max_message;
    if (res->resumed)
        srv->st.hs_resumed++;
    else
        srv->st.hs_full++;
    if (c->hello_ns != 0)
        yugi__hist_add(res->resumed ? &srv->st.hs_resumed_latency
                                    : &srv->st.hs_full_latency,
                       (uv_hrtime() - c->hello_ns) / 1000u);
    if (c->pending && c->addr != NULL)
        c->addr->pending--;
    c->pending = 0;
    mkd_debug(c->id, "established (%s) from %s:%u",
              res->resumed ? "resumed" : "full", c->peer, c->peer_port);
}

static void on_session_failed(yugi_conn *c, const yami_result *res)
{
    yugi_server *srv = c->srv;

    c->failed = 1;
    if (res->err > 0 && res->err < YUGI_ERR_SLOTS)
        srv->st.errors[res->err]++;
    if (c->state == YUGI_HANDSHAKE)
        srv->st.hs_failed++;
    mkd_debug(c->id, "session failed: %s", mk_err_name(res->err));
    if (res->internal)
        mkd_warn(c->id, "internal failure: %s", mk_err_name(res->err));
    /* An alert or error record may have been produced: send it. */
    yugi__conn_drain(c, res->internal ? YUGI_CR_INTERNAL : YUGI_CR_PROTO);
}

/* Apply a live result; c may be CLOSED on return. */
static void apply_result(yugi_conn *c, yami_result *res)
{
    yugi_server *srv = c->srv;

    if (res->out_len > 0) {
        uint8_t *out = res->out;
        res->out = NULL;
        if (yugi__conn_write(c, out, res->out_len) != MKD_OK) {
            yugi__conn_close(c, YUGI_CR_INTERNAL);
            return;
        }
    }
    c->inflight -= res->responses - res->aborted;
    srv->st.responses += res->responses;
    srv->st.aborted += res->aborted - res->aborted_budget;
    srv->st.budget_overloaded += res->aborted_budget;
    /* Refused while being received (a buffer cap): answered "overloaded"
     * by Yami already. */
    for (yami_request *r = res->refused; r != NULL; r = r->next)
        refused_at_once(c, r->id, r->len, MKD_BACKEND_OVERLOADED);
    if (res->hello_retry)
        srv->st.hs_retry++;
    if (res->established && c->state == YUGI_HANDSHAKE)
        on_established(c, res);
    if (res->err != 0) {
        on_session_failed(c, res);
        return;
    }
    for (yami_request *r = res->requests; r != NULL; r = r->next) {
        dispatch(c, r);
        if (c->state == YUGI_CLOSED)
            return;
    }
    if (res->peer_closed)
        c->peer_closed = 1;
    if (res->close_sent)
        yugi__conn_drain(c, c->close_hint ? c->close_hint : YUGI_CR_DONE);
    if (c->state == YUGI_CLOSED)
        return;
    yugi__conn_kick(c);
    yugi__conn_maybe_close_record(c);
    yugi__conn_try_finish(c);
    if (c->state != YUGI_CLOSED) {
        yugi__conn_flow(c);
        yugi__conn_rearm(c);
    }
}

/* A Yami job's result, from the pool (after-work callback) or inline
 * (from inside yugi__conn_kick). Both take the same path; only the pool
 * job holds a reference to drop. Its full hellos, handled or skipped, give
 * back their handshake slots here, also for a closed connection. */
void yugi__on_result(void *owner, yami_result *res)
{
    yugi_conn *c = owner;
    yugi_server *srv = c->srv;
    unsigned done = res->full_hellos;
    unsigned k = done < c->hs_queued ? done : c->hs_queued;

    c->hs_queued -= k;
    srv->hs_inflight -= k;
    c->partial_since = res->partial_since_ms;
    if (c->state != YUGI_CLOSED)
        apply_result(c, res);
    if (!res->ran_inline)
        yugi__conn_unref(c); /* the pool job's reference */
}
