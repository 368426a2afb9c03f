/*
 * conn.c -- one client connection: its state machine (yugi.h), reading and
 * framing, the limits applied to a CLIENT_HELLO before any RSA work,
 * writing with backpressure, deadlines, and the hand-offs to Yami (crypto)
 * and to the backend (requests).
 *
 * IMPLEMENTATION NOTES
 *  - Lifetime: a connection holds one reference per libuv handle (tcp,
 *    timer) and one while a Yami pool job runs. yugi_conn_close() issues
 *    uv_close on both handles; the memory goes when the last reference
 *    does, so a job that finishes after the close still finds its conn and
 *    simply drops its result. A small record job runs inline, inside
 *    conn_kick() (yami/pool.h), and takes no reference: its result is
 *    applied before conn_kick() returns, and even a close from there only
 *    issues uv_close, whose callbacks (which drop the handles' references)
 *    run in a later loop phase, so the conn outlives the call.
 *  - Memory: reads land in one loop-wide buffer (the loop thread reads one
 *    socket at a time); only a partial unit is copied aside, into a buffer
 *    that grows as bytes arrive and is freed when the unit completes. An
 *    idle established connection therefore holds its handles, this struct
 *    and the session, nothing else.
 *  - Deadlines: one timer per connection, armed at the earliest deadline
 *    that applies in the current state (conn_deadline). Activity only moves
 *    timestamps; the timer re-arms itself when it fires early, so a busy
 *    connection costs no timer operation per read.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "yugi.h"

#define READ_BUF_SIZE 65536
#define IN_HIGH_WATER (256 * 1024) /* bytes queued to Yami: stop reading */
#define LINGER_MS 1000             /* wait for the peer's FIN after ours */
#define MAX_REFUSING 1024          /* refused sockets kept open to say why */
#define STOP_REFUSED 0x10000       /* framing stopped: refused a hello */

/* Megaki units are at most MK_UNIT_MAX bytes; anything read beyond a unit
 * is framed from this buffer in place. */
static uint8_t read_buf[READ_BUF_SIZE];

typedef struct wreq {
    uv_write_t req;
    yugi_conn *c;
    uint8_t *buf;
    size_t len;
} wreq;

static void conn_flow(yugi_conn *c);
static void conn_rearm(yugi_conn *c);
static void conn_try_finish(yugi_conn *c);
static void conn_kick(yugi_conn *c);
static void on_result(yami_conn *y, yami_result *res);
static void conn_close_record(yugi_conn *c);

static uint64_t now_ms(const yugi_conn *c)
{
    return uv_now(c->srv->loop);
}

static yugi_conn *conn_of(yami_conn *y)
{
    return (yugi_conn *)(void *)((char *)y - offsetof(yugi_conn, yami));
}

/* --- lifetime --------------------------------------------------------- */

static void conn_unref(yugi_conn *c)
{
    if (--c->refs > 0)
        return;
    yugi_framer_free(&c->framer);
    free(c->batch);
    yami_conn_free(&c->yami);
    mk_wipe(c, sizeof *c);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

static const char *const reason_names[YUGI_CR_COUNT] = {
    "done",         "eof",       "io",       "protocol",
    "handshake-timeout", "idle-timeout", "unit-timeout", "write-timeout",
    "refused",      "internal",  "shutdown",
};

void yugi_conn_close(yugi_conn *c, int reason)
{
    yugi_server *srv = c->srv;
    yugi_req *q;

    if (c->state == YUGI_CLOSED)
        return;
    c->state = YUGI_CLOSED;
    /* Nothing more is sealed or written. Dropping the queue also ends an
     * inline Yami run that this close happens inside of. (A pool job in
     * flight took its operations with it and is dropped in on_result.) */
    yami_drop_queued(&c->yami);
    if (reason >= 0 && reason < YUGI_CR_COUNT)
        c->close_reason = reason;
    srv->st.close_reason[c->close_reason]++;
    srv->st.closed++;
    mkd_debug(c->id, "close %s (%s:%u)", reason_names[c->close_reason],
              c->peer, c->peer_port);
    /* The backend must never answer into a closed connection. (After the
     * shutdown deadline the backend is gone, and with it every request:
     * its free() answered them.) */
    while ((q = c->reqs) != NULL) {
        c->reqs = q->next;
        if (srv->backend != NULL)
            srv->backend->ops->cancel(srv->backend, q);
        free(q);
    }
    srv->hs_inflight -= c->hs_queued;
    c->hs_queued = 0;
    if (c->addr != NULL) {
        if (c->pending)
            c->addr->pending--;
        yugi_addrs_put(&srv->addrs, c->addr);
        c->addr = NULL;
    }
    c->pending = 0;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (c->counted)
        srv->nconns--;
    else
        srv->nrefusing--;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    yugi_maybe_finish(srv);
}

/* Stop taking input and close once everything queued is written. */
static void conn_drain(yugi_conn *c, int reason)
{
    if (c->state == YUGI_CLOSED || c->state == YUGI_LINGER)
        return;
    if (c->state != YUGI_DRAINING) {
        c->close_reason = reason;
        /* Writes and a running job are all that may hold it now, and the
         * write deadline covers the first: this bounds the rest. */
        c->drain_until = now_ms(c) + c->srv->cfg.write_timeout_ms;
    }
    c->state = YUGI_DRAINING;
    if (c->failed)
        yami_drop_queued(&c->yami);
    conn_try_finish(c);
    if (c->state != YUGI_CLOSED) {
        conn_flow(c);
        conn_rearm(c);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    yugi_conn *c = req->data;
    free(req);
    if (status < 0 && status != UV_ECANCELED && c->state != YUGI_CLOSED)
        yugi_conn_close(c, -1);
}

/* DRAINING and all written: send FIN and wait briefly for the peer's, so
 * our last bytes are not destroyed by a reset. */
static void conn_try_finish(yugi_conn *c)
{
    uv_shutdown_t *req;

    if (c->state != YUGI_DRAINING || c->wq_bytes != 0 ||
        yami_busy(&c->yami) || c->yami.head != NULL)
        return;
    if ((req = malloc(sizeof *req)) == NULL) {
        yugi_conn_close(c, -1);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        yugi_conn_close(c, -1);
        return;
    }
    c->state = YUGI_LINGER;
    c->linger_until = now_ms(c) + LINGER_MS;
    conn_flow(c);
    conn_rearm(c);
}

/* --- writing ---------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    yugi_conn *c = w->c;

    c->wq_bytes -= w->len;
    free(w->buf);
    free(w);
    if (c->state == YUGI_CLOSED)
        return;
    if (status < 0) {
        yugi_conn_close(c, YUGI_CR_IO);
        return;
    }
    c->write_progress = now_ms(c);
    conn_try_finish(c);
    if (c->state != YUGI_CLOSED) {
        conn_flow(c);
        conn_rearm(c);
    }
}

/* Write buf (malloc'd; ownership passes here). */
static int conn_write(yugi_conn *c, uint8_t *buf, size_t len)
{
    wreq *w;
    uv_buf_t b;

    if (c->state == YUGI_CLOSED || c->state == YUGI_LINGER) {
        free(buf);
        return 0;
    }
    if ((w = malloc(sizeof *w)) == NULL) {
        free(buf);
        return -1;
    }
    w->c = c;
    w->buf = buf;
    w->len = len;
    b = uv_buf_init((char *)buf, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(buf);
        free(w);
        return -1;
    }
    if (c->wq_bytes == 0)
        c->write_progress = now_ms(c);
    c->wq_bytes += len;
    c->srv->st.bytes_out += len;
    return 0;
}

static void write_alert(yugi_conn *c, unsigned code, uint32_t arg)
{
    uint8_t *a = malloc(16);
    size_t n = 0;

    if (a == NULL || mk_write_alert(code, arg, a, 16, &n) != MK_OK) {
        free(a);
        return;
    }
    if (conn_write(c, a, n) != 0)
        yugi_conn_close(c, YUGI_CR_INTERNAL);
}

/* --- deadlines -------------------------------------------------------- */

static uint64_t conn_deadline(const yugi_conn *c, int *why)
{
    const mkd_config *cfg = &c->srv->cfg;
    uint64_t d = UINT64_MAX;

#define EARLIER(t, r)   \
    do {                \
        if ((t) < d) {  \
            d = (t);    \
            *why = (r); \
        }               \
    } while (0)
    *why = -1;
    switch (c->state) {
    case YUGI_HANDSHAKE:
        EARLIER(c->accepted_at + cfg->handshake_timeout_ms,
                YUGI_CR_TO_HANDSHAKE);
        break;
    case YUGI_ESTABLISHED:
        if (c->inflight == 0 && !yami_busy(&c->yami) &&
            c->yami.head == NULL && c->wq_bytes == 0)
            EARLIER(c->last_active + cfg->idle_timeout_ms, YUGI_CR_TO_IDLE);
        break;
    case YUGI_DRAINING:
        EARLIER(c->drain_until, -1);
        break;
    case YUGI_LINGER:
        EARLIER(c->linger_until, -1);
        break;
    default:
        break;
    }
    if (yugi_framer_partial(&c->framer) && c->state != YUGI_LINGER)
        EARLIER(c->unit_start + cfg->unit_timeout_ms, YUGI_CR_TO_UNIT);
    if (c->wq_bytes != 0)
        EARLIER(c->write_progress + cfg->write_timeout_ms, YUGI_CR_TO_WRITE);
#undef EARLIER
    return d;
}

static void on_timer(uv_timer_t *t)
{
    yugi_conn *c = t->data;
    int why;
    uint64_t d;

    c->timer_armed = 0;
    if (c->state == YUGI_CLOSED)
        return;
    d = conn_deadline(c, &why);
    if (d <= now_ms(c)) {
        if (why >= 0)
            mkd_debug(c->id, "timeout: %s", reason_names[why]);
        if (why == YUGI_CR_TO_IDLE && !c->close_queued) {
            /* An idle session ends with an authenticated close, so the
             * client can tell it from a cut connection. */
            c->close_hint = YUGI_CR_TO_IDLE;
            conn_close_record(c);
            if (c->state != YUGI_CLOSED)
                conn_rearm(c);
            return;
        }
        yugi_conn_close(c, why);
        return;
    }
    conn_rearm(c);
}

static void conn_rearm(yugi_conn *c)
{
    int why;
    uint64_t d = conn_deadline(c, &why), now = now_ms(c);

    if (c->state == YUGI_CLOSED || d == UINT64_MAX)
        return;
    if (c->timer_armed && c->timer_at <= d)
        return; /* fires early and re-arms: cheaper than restarting */
    c->timer_at = d;
    c->timer_armed = 1;
    if (uv_timer_start(&c->timer, on_timer, d > now ? d - now : 0, 0) != 0)
        yugi_conn_close(c, YUGI_CR_INTERNAL);
}

/* --- reading ---------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init((char *)read_buf, sizeof read_buf);
}

/* Refuse a hello before any RSA work: plaintext "retry later", then go. */
static void refuse_hello(yugi_conn *c, uint32_t wait_ms)
{
    write_alert(c, MK_ALERT_RETRY_LATER, wait_ms);
    conn_drain(c, YUGI_CR_REFUSED);
}

static int batch_put(yugi_conn *c, const uint8_t *p, size_t n)
{
    if (c->batch_cap - c->batch_len < n) {
        size_t cap = c->batch_cap ? c->batch_cap * 2 : 4096;
        uint8_t *b;
        while (cap - c->batch_len < n)
            cap *= 2;
        if ((b = realloc(c->batch, cap)) == NULL)
            return -1;
        c->batch = b;
        c->batch_cap = cap;
    }
    memcpy(c->batch + c->batch_len, p, n);
    c->batch_len += n;
    return 0;
}

/* A complete unit arrived. Hellos pass the limits here: the global cap on
 * handshakes in progress, then (for a full handshake, the one that costs an
 * RSA operation) the source address's token bucket. */
static int on_unit(void *arg, const uint8_t *unit, size_t len)
{
    yugi_conn *c = arg;
    yugi_server *srv = c->srv;

    c->frame_stop++; /* counts units completed in this read */
    if (unit[0] == MK_UNIT_CLIENT_HELLO && c->state == YUGI_HANDSHAKE) {
        /* Only a well-formed resumption skips the token bucket: anything
         * else may need the RSA key. */
        int full = !mk_client_hello_resumes(unit, len);
        uint32_t wait;

        if (srv->hs_inflight >= srv->cfg.max_handshakes) {
            srv->st.refused_handshakes++;
            mkd_debug(c->id, "refused: %u handshakes in progress",
                      srv->hs_inflight);
            refuse_hello(c, srv->cfg.retry_after_ms);
            return STOP_REFUSED;
        }
        if (full && c->addr != NULL &&
            (wait = yugi_addr_take(&srv->addrs, c->addr, now_ms(c))) != 0) {
            srv->st.refused_rate++;
            mkd_debug(c->id, "refused: handshake rate from %s", c->peer);
            refuse_hello(c, wait > srv->cfg.retry_after_ms
                                ? wait
                                : srv->cfg.retry_after_ms);
            return STOP_REFUSED;
        }
        c->hs_queued++;
        srv->hs_inflight++;
        c->hello_seen = 1;
    }
    return batch_put(c, unit, len) == 0 ? 0 : -1;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    yugi_conn *c = s->data;
    int was_partial, r;

    (void)buf;
    if (c->state == YUGI_CLOSED)
        return;
    if (nread < 0) {
        int lingering = c->state == YUGI_LINGER || c->state == YUGI_DRAINING;
        yugi_conn_close(c, lingering ? -1
                                     : nread == UV_EOF ? YUGI_CR_EOF
                                                       : YUGI_CR_IO);
        return;
    }
    if (nread == 0)
        return;
    c->srv->st.bytes_in += (uint64_t)nread;
    if (c->state != YUGI_HANDSHAKE && c->state != YUGI_ESTABLISHED)
        return; /* draining: whatever comes now is not read */
    c->last_active = now_ms(c);
    was_partial = yugi_framer_partial(&c->framer);
    c->frame_stop = 0;
    r = yugi_framer_feed(&c->framer, read_buf, (size_t)nread, on_unit, c);
    if (yugi_framer_partial(&c->framer) && (!was_partial || c->frame_stop))
        c->unit_start = c->last_active;
    if (r == STOP_REFUSED) {
        c->batch_len = 0;
        return;
    }
    if (r != 0) {
        c->batch_len = 0;
        if (r == -1) {
            yugi_conn_close(c, YUGI_CR_INTERNAL);
            return;
        }
        if (r > 0 && r < YUGI_ERR_SLOTS)
            c->srv->st.errors[r]++;
        mkd_debug(c->id, "bad unit header: %s", mk_err_name(r));
        /* Before keys exist the peer may be told; after, never. */
        if (c->state == YUGI_HANDSHAKE) {
            write_alert(c, MK_ALERT_BAD_MESSAGE, 0);
            conn_drain(c, YUGI_CR_PROTO);
        } else {
            yugi_conn_close(c, YUGI_CR_PROTO);
        }
        return;
    }
    if (c->batch_len > 0) {
        r = yami_queue(&c->yami, YAMI_OP_UNITS, 0, 0, c->batch,
                       c->batch_len);
        c->batch_len = 0;
        if (r != 0) {
            yugi_conn_close(c, YUGI_CR_INTERNAL);
            return;
        }
        conn_kick(c);
    }
    /* Keep no read-side memory on an idle connection. */
    if (c->batch_cap > 4096 || !yugi_framer_partial(&c->framer)) {
        free(c->batch);
        c->batch = NULL;
        c->batch_cap = 0;
    }
    if (c->state != YUGI_CLOSED) {
        conn_flow(c);
        conn_rearm(c);
    }
}

/* Read unless too much waits to be written or to be decrypted. */
static void conn_flow(yugi_conn *c)
{
    int want;

    if (c->state == YUGI_CLOSED)
        return;
    want = c->wq_bytes < c->srv->cfg.write_high_water &&
           c->yami.queued_bytes < IN_HIGH_WATER;
    if (c->state == YUGI_LINGER || c->state == YUGI_DRAINING)
        want = 1; /* to see the peer's FIN; input is discarded */
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            yugi_conn_close(c, YUGI_CR_IO);
            return;
        }
        c->reading = 1;
    } else if (!want && c->reading) {
        (void)uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* --- Yami ------------------------------------------------------------- */

/* Hand what is queued to Yami. A small record job runs inline: on_result
 * is called from in here, so c may be CLOSED on return (callers check).
 * From inside on_result for an inline result, this only queues; the run
 * that is under way picks it up. */
static void conn_kick(yugi_conn *c)
{
    int was = yami_busy(&c->yami), r;

    if (c->state == YUGI_CLOSED)
        return;
    /* Read at every kick, so a reload applies to open connections. */
    c->yami.inline_max = c->srv->cfg.inline_crypto_max;
    if ((r = yami_kick(c->srv->loop, &c->yami)) != 0) {
        mkd_err(c->id, "cannot queue work: %s", uv_strerror(r));
        yugi_conn_close(c, YUGI_CR_INTERNAL);
        return;
    }
    /* A pool job started (perhaps after some inline rounds): its
     * reference, dropped in on_result. An inline job leaves busy clear. */
    if (!was && yami_busy(&c->yami))
        c->refs++;
}

/* Send our close record once nothing is owed: the peer closed, or we are
 * shutting down, and every request has been answered. */
static void conn_close_record(yugi_conn *c)
{
    if (yami_queue(&c->yami, YAMI_OP_CLOSE, 0, 0, NULL, 0) != 0) {
        yugi_conn_close(c, YUGI_CR_INTERNAL);
        return;
    }
    c->close_queued = 1;
    conn_kick(c);
}

static void conn_maybe_close_record(yugi_conn *c)
{
    if (c->state != YUGI_ESTABLISHED || c->close_queued ||
        !(c->peer_closed || c->srv->shutting_down) || c->inflight != 0 ||
        yami_busy(&c->yami) || c->yami.head != NULL)
        return;
    if (c->srv->shutting_down && !c->peer_closed)
        c->close_hint = YUGI_CR_SHUTDOWN;
    conn_close_record(c);
}

static void queue_error(yugi_conn *c, uint32_t id, unsigned code,
                        const char *text)
{
    size_t n = text ? strlen(text) : 0;

    if (n > MK_ERROR_TEXT_MAX)
        n = MK_ERROR_TEXT_MAX;
    if (yami_queue(&c->yami, YAMI_OP_ERROR, id, code, (const uint8_t *)text,
                   n) != 0)
        yugi_conn_close(c, YUGI_CR_INTERNAL);
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

static void on_backend_done(void *token, unsigned status,
                            const uint8_t *body, size_t len,
                            const char *text)
{
    yugi_req *q = token;
    yugi_conn *c = q->conn;
    uint32_t id = q->id;

    req_unlink_free(c, q);
    if (c->state == YUGI_CLOSED)
        return; /* cannot happen: closing cancels; be safe */
    if (c->failed) {
        /* The session failed meanwhile: the answer cannot be sealed. */
        c->inflight--;
        return;
    }
    if (status == 0) {
        if (yami_queue(&c->yami, YAMI_OP_RESPONSE, id, 0, body, len) != 0) {
            yugi_conn_close(c, YUGI_CR_INTERNAL);
            return;
        }
    } else {
        queue_error(c, id, status, text);
        if (c->state == YUGI_CLOSED)
            return;
    }
    conn_kick(c);
}

/* The text of the error record for a request the backend refused at
 * submit(): it says what the code says (the client shows both). */
const char *yugi_refusal_text(unsigned code)
{
    switch (code) {
    case MK_ECODE_OVERLOADED:
        return "server overloaded";
    case MK_ECODE_TOO_LARGE:
        return "request too large";
    case MK_ECODE_SHUTDOWN:
        return "server shutting down";
    case MK_ECODE_INTERNAL:
        return "internal error";
    default:
        return mk_error_code_name(code);
    }
}

static void dispatch(yugi_conn *c, yami_request *r)
{
    yugi_server *srv = c->srv;
    mkd_request_ctx ctx;
    yugi_req *q;
    unsigned st;
    uint8_t *body = r->body;

    r->body = NULL;
    if (c->close_queued) {
        /* Nothing can be sealed after our close record. */
        mk_wipe(body, r->len);
        free(body);
        return;
    }
    c->inflight++;
    srv->st.requests++;
    if (srv->shutting_down || srv->backend == NULL) {
        mk_wipe(body, r->len);
        free(body);
        queue_error(c, r->id, MK_ECODE_SHUTDOWN, "server shutting down");
        return;
    }
    if ((q = calloc(1, sizeof *q)) == NULL) {
        mk_wipe(body, r->len);
        free(body);
        queue_error(c, r->id, MK_ECODE_INTERNAL, "out of memory");
        return;
    }
    q->conn = c;
    q->id = r->id;
    q->next = c->reqs;
    if (c->reqs != NULL)
        c->reqs->prev = q;
    c->reqs = q;
    memset(&ctx, 0, sizeof ctx);
    ctx.conn_id = c->id;
    ctx.request_id = r->id;
    memcpy(ctx.peer_addr, c->peer, sizeof ctx.peer_addr);
    ctx.peer_port = c->peer_port;
    memcpy(ctx.session_id, c->session_id, sizeof ctx.session_id);
    ctx.early = 0;
    st = srv->backend->ops->submit(srv->backend, &ctx, body, r->len,
                                   on_backend_done, q);
    if (st != 0) {
        /* Refused at once: done() will not be called for it. */
        req_unlink_free(c, q);
        if (st == MK_ECODE_OVERLOADED)
            srv->st.backend_overloaded++;
        queue_error(c, r->id, st, yugi_refusal_text(st));
    }
}

/* A Yami job's result, from the pool (after-work callback) or inline
 * (from inside conn_kick). Both take the same path; only the pool job
 * holds a reference to drop. */
static void on_result(yami_conn *y, yami_result *res)
{
    yugi_conn *c = conn_of(y);
    yugi_server *srv = c->srv;
    unsigned k = res->hellos < c->hs_queued ? res->hellos : c->hs_queued;

    c->hs_queued -= k;
    srv->hs_inflight -= k;
    if (c->state == YUGI_CLOSED)
        goto out; /* the connection went away while the job ran */
    if (res->out_len > 0) {
        uint8_t *out = res->out;
        res->out = NULL;
        if (conn_write(c, out, res->out_len) != 0) {
            yugi_conn_close(c, YUGI_CR_INTERNAL);
            goto out;
        }
    }
    c->inflight -= res->responses - res->aborted;
    srv->st.responses += res->responses;
    srv->st.aborted += res->aborted;
    if (res->hello_retry)
        srv->st.hs_retry++;
    if (res->established && c->state == YUGI_HANDSHAKE) {
        c->state = YUGI_ESTABLISHED;
        memcpy(c->session_id, res->session_id, sizeof c->session_id);
        if (res->resumed)
            srv->st.hs_resumed++;
        else
            srv->st.hs_full++;
        if (c->pending && c->addr != NULL)
            c->addr->pending--;
        c->pending = 0;
        mkd_debug(c->id, "established (%s) from %s:%u",
                  res->resumed ? "resumed" : "full", c->peer, c->peer_port);
    }
    if (res->err != 0) {
        c->failed = 1;
        if (res->err > 0 && res->err < YUGI_ERR_SLOTS)
            srv->st.errors[res->err]++;
        if (c->state == YUGI_HANDSHAKE)
            srv->st.hs_failed++;
        mkd_debug(c->id, "session failed: %s", mk_err_name(res->err));
        if (res->internal)
            mkd_warn(c->id, "internal failure: %s", mk_err_name(res->err));
        /* An alert or error record may have been produced: send it. */
        conn_drain(c, res->internal ? YUGI_CR_INTERNAL : YUGI_CR_PROTO);
        goto out;
    }
    for (yami_request *r = res->requests; r != NULL; r = r->next) {
        dispatch(c, r);
        if (c->state == YUGI_CLOSED)
            goto out;
    }
    if (res->peer_closed)
        c->peer_closed = 1;
    if (res->close_sent)
        conn_drain(c, c->close_hint ? c->close_hint : YUGI_CR_DONE);
    if (c->state == YUGI_CLOSED)
        goto out;
    conn_kick(c);
    conn_maybe_close_record(c);
    conn_try_finish(c);
    if (c->state != YUGI_CLOSED) {
        conn_flow(c);
        conn_rearm(c);
    }
out:
    if (!res->ran_inline)
        conn_unref(c); /* the pool job's reference */
}

/* --- accept and shutdown ------------------------------------------------ */

static void peer_name(yugi_conn *c, struct sockaddr_storage *ss)
{
    int len = sizeof *ss;

    memset(ss, 0, sizeof *ss);
    strcpy(c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)ss, &len) != 0)
        return;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        (void)uv_ip4_name(a, c->peer, sizeof c->peer);
        c->peer_port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        (void)uv_ip6_name(a, c->peer, sizeof c->peer);
        c->peer_port = ntohs(a->sin6_port);
    }
}

static void on_early_closed(uv_handle_t *h)
{
    free(h);
}

void yugi_conn_accepted(yugi_server *srv, uv_stream_t *listener)
{
    const mkd_config *cfg = &srv->cfg;
    struct sockaddr_storage ss;
    mk_session *session = NULL;
    yugi_conn *c = calloc(1, sizeof *c);
    uv_tcp_t *tmp;
    int r;

    if (c == NULL || uv_tcp_init(srv->loop, &c->tcp) != 0) {
        /* Take the socket off the backlog anyway, or the listener spins. */
        free(c);
        if ((tmp = malloc(sizeof *tmp)) != NULL &&
            uv_tcp_init(srv->loop, tmp) == 0) {
            (void)uv_accept(listener, (uv_stream_t *)tmp);
            uv_close((uv_handle_t *)tmp, on_early_closed);
        } else {
            free(tmp);
        }
        return;
    }
    c->srv = srv;
    c->tcp.data = c;
    if ((r = uv_accept(listener, (uv_stream_t *)&c->tcp)) != 0) {
        mkd_debug(0, "accept: %s", uv_strerror(r));
        c->tcp.data = c;
        uv_close((uv_handle_t *)&c->tcp, on_early_closed);
        return;
    }
    (void)uv_timer_init(srv->loop, &c->timer); /* cannot fail */
    c->timer.data = c;
    c->refs = 2;
    c->id = ++srv->next_id;
    c->accepted_at = c->last_active = now_ms(c);
    c->close_reason = YUGI_CR_EOF;
    yami_conn_init(&c->yami, NULL, cfg->conn_buffer_max, on_result);
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->st.accepted++;
    (void)uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c, &ss);
    c->addr = yugi_addrs_get(&srv->addrs, (struct sockaddr *)&ss,
                             now_ms(c));
    mkd_debug(c->id, "accepted from %s:%u", c->peer, c->peer_port);

    if (srv->shutting_down || c->addr == NULL ||
        srv->nconns >= cfg->max_connections ||
        c->addr->pending >= cfg->max_pending_per_address) {
        c->state = YUGI_HANDSHAKE; /* until conn_drain below */
        c->refused = 1;
        srv->nrefusing++;
        if (c->addr != NULL && srv->nconns >= cfg->max_connections)
            srv->st.refused_connections++;
        else
            srv->st.refused_pending++;
        /* Say why (a client reads it as the answer to its hello), unless
         * so many are being refused that keeping sockets open is the
         * bigger danger. */
        if (srv->nrefusing > MAX_REFUSING || srv->shutting_down ||
            c->addr == NULL) {
            yugi_conn_close(c, YUGI_CR_REFUSED);
            return;
        }
        write_alert(c, MK_ALERT_RETRY_LATER, cfg->retry_after_ms);
        conn_drain(c, YUGI_CR_REFUSED);
        return;
    }
    c->counted = 1;
    srv->nconns++;
    c->pending = 1;
    c->addr->pending++;
    if ((r = mk_session_new_server(&session, srv->scfg)) != MK_OK) {
        mkd_err(c->id, "session: %s", mk_strerror(r));
        yugi_conn_close(c, YUGI_CR_INTERNAL);
        return;
    }
    c->yami.session = session;
    c->state = YUGI_HANDSHAKE;
    conn_flow(c);
    if (c->state != YUGI_CLOSED)
        conn_rearm(c);
}

void yugi_conn_shutdown(yugi_conn *c)
{
    switch (c->state) {
    case YUGI_HANDSHAKE:
        yugi_conn_close(c, YUGI_CR_SHUTDOWN);
        break;
    case YUGI_ESTABLISHED:
        conn_maybe_close_record(c);
        break;
    default:
        break;
    }
}
