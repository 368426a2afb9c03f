/*
 * conn.c -- one client connection's life: accepting it (and the limits
 * that apply before it gets a session), its state machine (internal.h),
 * its deadlines, and its end.
 *
 * IMPLEMENTATION NOTES
 *  - Lifetime: a connection holds one reference per libuv handle (tcp,
 *    timer) and one while a Yami pool job runs. yugi__conn_close() issues
 *    uv_close on both handles; the memory goes when the last reference
 *    does, so a job that finishes after the close still finds its conn and
 *    simply drops its result. A small record job runs inline, inside
 *    yugi__conn_kick() (yami.h), and takes no reference: its result is
 *    applied before the kick returns, and even a close from there only
 *    issues uv_close, whose callbacks (which drop the handles' references)
 *    run in a later loop phase, so the conn outlives the call.
 *  - Memory: reads land in the server's one read buffer (the loop thread
 *    reads one socket at a time); only a partial unit is copied aside, into
 *    a buffer that grows as bytes arrive and is freed when the unit
 *    completes. An idle established connection therefore holds its
 *    handles, this struct and the session, nothing else.
 *  - Deadlines: one timer per connection, armed at the earliest deadline
 *    that applies in the current state (conn_deadline). Activity only moves
 *    timestamps; the timer re-arms itself when it fires early, so a busy
 *    connection costs no timer operation per read.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mkd_log.h"
#include "mkd_util.h"

#define LINGER_MS    1000 /* wait for the peer's FIN after ours */
#define MAX_REFUSING 1024 /* refused sockets kept open to say why */

static uint64_t now_ms(const yugi_conn *c)
{
    return uv_now(c->srv->loop);
}

/* --- lifetime --------------------------------------------------------- */

void yugi__conn_unref(yugi_conn *c)
{
    if (--c->refs > 0)
        return;
    yugi__framer_free(&c->framer);
    free(c->batch);
    free(c->pbuf);
    yami_conn_free(c->yami);
    mkd_wipe(c, sizeof *c);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    yugi__conn_unref(h->data);
}

/* Give back what the connection counted against the limits, except the
 * full hellos of its Yami job in flight (job_full): those still hold their
 * slot under max_handshakes until the job's result reports them (handled
 * or skipped), or hanging up after a hello would free a slot while its RSA
 * work is still queued. */
static void conn_uncount(yugi_conn *c, unsigned job_full)
{
    yugi_server *srv = c->srv;
    unsigned give = c->hs_queued > job_full ? c->hs_queued - job_full : 0;

    srv->hs_inflight -= give;
    c->hs_queued -= give;
    if (c->proxy_wait) { /* counted nowhere else yet */
        srv->nproxy_wait--;
        c->proxy_wait = 0;
        return;
    }
    if (c->addr != NULL) {
        if (c->pending)
            c->addr->pending--;
        if (c->counted)
            c->addr->conns--;
        yugi__addrs_put(&srv->addrs, c->addr);
        c->addr = NULL;
    }
    c->pending = 0;
    if (c->counted)
        srv->nconns--;
    else
        srv->nrefusing--;
}

/* The backend must never answer into a closed connection. (After the
 * shutdown deadline the backend is gone, and with it every request: its
 * free() answered them.) */
static void conn_cancel_requests(yugi_conn *c)
{
    mkd_backend *b = c->srv->backend;
    yugi_req *q;

    while ((q = c->reqs) != NULL) {
        c->reqs = q->next;
        if (b != NULL)
            b->ops->cancel(b, q);
        yugi__request_cancelled(c, q);
        free(q);
    }
}

void yugi__conn_close(yugi_conn *c, int reason)
{
    yugi_server *srv = c->srv;
    unsigned job_full = 0;

    if (c->state == YUGI_CLOSED)
        return;
    c->state = YUGI_CLOSED;
    /* Nothing more is sealed or written. Dropping the queue also ends an
     * inline Yami run that this close happens inside of. A pool job in
     * flight skips what it has not started (a hello's RSA operation) and
     * its result is dropped in on_result. */
    if (c->yami != NULL)
        job_full = yami_conn_cancel(c->yami);
    if (reason >= 0 && reason < YUGI_CR_COUNT)
        c->close_reason = reason;
    srv->st.close_reason[c->close_reason]++;
    srv->st.closed++;
    mkd_debug(c->id, "close %s (%s:%u)", yugi_close_reason_key(c->close_reason),
              c->peer, c->peer_port);
    conn_cancel_requests(c);
    conn_uncount(c, job_full);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    yugi__maybe_finish(srv);
}

/* Nothing is queued for or running in Yami. */
static int yami_idle(const yugi_conn *c)
{
    return c->yami == NULL ||
           (!yami_conn_busy(c->yami) && !yami_conn_pending(c->yami));
}

void yugi__conn_drain(yugi_conn *c, int reason)
{
    if (c->state == YUGI_CLOSED || c->state == YUGI_LINGER)
        return;
    if (c->state != YUGI_DRAINING) {
        c->close_reason = reason;
        /* Writes and a running job are all that may hold it now, and the
         * write deadline covers the first: this bounds the rest. */
        c->drain_until = now_ms(c) + c->srv->lim.write_timeout_ms;
    }
    c->state = YUGI_DRAINING;
    if (c->failed && c->yami != NULL)
        yami_drop_queued(c->yami);
    yugi__conn_try_finish(c);
    if (c->state != YUGI_CLOSED) {
        yugi__conn_flow(c);
        yugi__conn_rearm(c);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    yugi_conn *c = req->data;

    free(req);
    if (status < 0 && status != UV_ECANCELED && c->state != YUGI_CLOSED)
        yugi__conn_close(c, -1);
}

/* DRAINING and all written: send FIN and wait briefly for the peer's, so
 * our last bytes are not destroyed by a reset. */
void yugi__conn_try_finish(yugi_conn *c)
{
    uv_shutdown_t *req;

    if (c->state != YUGI_DRAINING || c->wq_bytes != 0 || !yami_idle(c))
        return;
    if ((req = malloc(sizeof *req)) == NULL) {
        yugi__conn_close(c, -1);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        yugi__conn_close(c, -1);
        return;
    }
    c->state = YUGI_LINGER;
    c->linger_until = now_ms(c) + LINGER_MS;
    yugi__conn_flow(c);
    yugi__conn_rearm(c);
}

/* --- deadlines -------------------------------------------------------- */

static void earlier(uint64_t *d, int *why, uint64_t t, int reason)
{
    if (t < *d) {
        *d = t;
        *why = reason;
    }
}

/* The earliest deadline in the current state, and the close reason it
 * carries (-1: none of its own). */
static uint64_t conn_deadline(const yugi_conn *c, int *why)
{
    const yugi_limits *lim = &c->srv->lim;
    uint64_t d = UINT64_MAX;

    *why = -1;
    switch (c->state) {
    case YUGI_HANDSHAKE:
        earlier(&d, why, c->accepted_at + lim->handshake_timeout_ms,
                YUGI_CR_TO_HANDSHAKE);
        break;
    case YUGI_ESTABLISHED:
        if (c->inflight == 0 && yami_idle(c) && c->wq_bytes == 0)
            earlier(&d, why, c->last_active + lim->idle_timeout_ms,
                    YUGI_CR_TO_IDLE);
        /* A request left unfinished holds its buffer: however lively the
         * rest of the connection, it has this long to be complete. */
        if (c->partial_since != 0)
            earlier(&d, why, c->partial_since + lim->partial_request_timeout_ms,
                    YUGI_CR_TO_REQUEST);
        break;
    case YUGI_DRAINING:
        earlier(&d, why, c->drain_until, -1);
        break;
    case YUGI_LINGER:
        earlier(&d, why, c->linger_until, -1);
        break;
    default:
        break;
    }
    if (yugi__framer_partial(&c->framer) && c->state != YUGI_LINGER)
        earlier(&d, why, c->unit_start + lim->unit_timeout_ms, YUGI_CR_TO_UNIT);
    if (c->wq_bytes != 0)
        earlier(&d, why, c->write_progress + lim->write_timeout_ms,
                YUGI_CR_TO_WRITE);
    return d;
}

static void on_timer(uv_timer_t *t)
{
    yugi_conn *c = t->data;
    int why;

    c->timer_armed = 0;
    if (c->state == YUGI_CLOSED)
        return;
    if (conn_deadline(c, &why) > now_ms(c)) {
        yugi__conn_rearm(c);
        return;
    }
    if (why >= 0)
        mkd_debug(c->id, "timeout: %s", yugi_close_reason_key(why));
    if (why == YUGI_CR_TO_IDLE && !c->close_queued) {
        /* An idle session ends with an authenticated close, so the client
         * can tell it from a cut connection. */
        c->close_hint = YUGI_CR_TO_IDLE;
        yugi__conn_close_record(c);
        if (c->state != YUGI_CLOSED)
            yugi__conn_rearm(c);
        return;
    }
    yugi__conn_close(c, why);
}

void yugi__conn_rearm(yugi_conn *c)
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
        yugi__conn_close(c, YUGI_CR_INTERNAL);
}

/* --- accept and shutdown ------------------------------------------------ */

void yugi__conn_set_peer(yugi_conn *c, const struct sockaddr_storage *ss)
{
    strcpy(c->peer, "?");
    c->peer_port = 0;
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

/* 0, or -1 when the peer is already gone (reset before we asked). */
static int peer_name(yugi_conn *c, struct sockaddr_storage *ss)
{
    int len = sizeof *ss;

    memset(ss, 0, sizeof *ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)ss, &len) != 0) {
        memset(ss, 0, sizeof *ss);
        yugi__conn_set_peer(c, ss);
        return -1;
    }
    yugi__conn_set_peer(c, ss);
    return 0;
}

/* Is the peer one of trusted_proxies? */
static int peer_trusted(const yugi_server *srv,
                        const struct sockaddr_storage *ss)
{
    const mkd_proxy_cidrs *l = &srv->lim.trusted_proxies;

    if (l->n == 0)
        return 0;
    if (ss->ss_family == AF_INET)
        return mkd_proxy_cidrs_match(
            l, MKD_PROXY_INET,
            (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr);
    if (ss->ss_family == AF_INET6)
        return mkd_proxy_cidrs_match(
            l, MKD_PROXY_INET6,
            ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr);
    return 0;
}

/* A trusted proxy's connection: nothing is counted against an address
 * until its header names the client (conn_io.c), which must come within
 * the handshake deadline. Only the global cap applies meanwhile. */
static void await_proxy(yugi_conn *c)
{
    yugi_server *srv = c->srv;

    c->proxy_wait = 1;
    srv->nproxy_wait++;
    if (srv->shutting_down ||
        srv->nconns + srv->nproxy_wait > srv->lim.max_connections) {
        srv->st.refused_connections++;
        yugi__conn_close(c, YUGI_CR_REFUSED);
        return;
    }
    yugi__conn_flow(c);
    if (c->state != YUGI_CLOSED)
        yugi__conn_rearm(c);
}

static void on_early_closed(uv_handle_t *h)
{
    free(h);
}

/* Out of memory for a connection: take the socket off the backlog anyway,
 * or the listener spins. */
static void accept_and_drop(yugi_server *srv, uv_stream_t *listener)
{
    uv_tcp_t *tmp = malloc(sizeof *tmp);

    if (tmp == NULL || uv_tcp_init(srv->loop, tmp) != 0) {
        free(tmp);
        return;
    }
    (void)uv_accept(listener, (uv_stream_t *)tmp);
    uv_close((uv_handle_t *)tmp, on_early_closed);
}

/* A fresh connection: accepted, its handles referenced, on the list. */
static yugi_conn *conn_new(yugi_server *srv, uv_stream_t *listener)
{
    yugi_conn *c = calloc(1, sizeof *c);
    int r;

    if (c == NULL || uv_tcp_init(srv->loop, &c->tcp) != 0) {
        free(c);
        accept_and_drop(srv, listener);
        return NULL;
    }
    c->srv = srv;
    c->tcp.data = c;
    if ((r = uv_accept(listener, (uv_stream_t *)&c->tcp)) != 0) {
        mkd_debug(0, "accept: %s", uv_strerror(r));
        uv_close((uv_handle_t *)&c->tcp, on_early_closed);
        return NULL;
    }
    (void)uv_timer_init(srv->loop, &c->timer); /* cannot fail */
    c->timer.data = c;
    c->refs = 2;
    c->id = ++srv->next_id;
    c->accepted_at = c->last_active = now_ms(c);
    c->close_reason = YUGI_CR_EOF;
    c->state = YUGI_HANDSHAKE;
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->st.accepted++;
    return c;
}

/* The limit a new connection is over, as the counter of its refusals;
 * NULL when it is within them all. */
static uint64_t *over_limit(yugi_server *srv, const yugi_conn *c)
{
    const yugi_limits *lim = &srv->lim;
    yugi_stats *st = &srv->st;

    if (c->addr != NULL && srv->nconns >= lim->max_connections)
        return &st->refused_connections;
    /* One address (or /64) must not take every connection. */
    if (c->addr != NULL && c->addr->conns >= lim->max_connections_per_address)
        return &st->refused_per_address;
    if (srv->shutting_down || c->addr == NULL ||
        c->addr->pending >= lim->max_pending_per_address)
        return &st->refused_pending;
    return NULL;
}

/* Over a limit at accept: say why (a client reads it as the answer to its
 * hello), unless so many are being refused that keeping sockets open is
 * the bigger danger. */
static void refuse_conn(yugi_conn *c, uint64_t *counter)
{
    yugi_server *srv = c->srv;

    c->refused = 1;
    srv->nrefusing++;
    (*counter)++;
    if (srv->nrefusing > MAX_REFUSING || srv->shutting_down ||
        c->addr == NULL) {
        yugi__conn_close(c, YUGI_CR_REFUSED);
        return;
    }
    yugi__write_alert(c, MK_ALERT_RETRY_LATER, srv->lim.retry_after_ms);
    yugi__conn_drain(c, YUGI_CR_REFUSED);
}

void yugi__conn_accepted(yugi_server *srv, uv_stream_t *listener)
{
    struct sockaddr_storage ss;
    yugi_conn *c = conn_new(srv, listener);

    if (c == NULL)
        return;
    (void)uv_tcp_nodelay(&c->tcp, 1);
    if (peer_name(c, &ss) != 0) {
        /* Nothing can be said to it, nor known about it: no limit,
         * trusted or not, can be applied. (A health check that connects
         * and resets at once.) */
        mkd_debug(c->id, "accepted a connection already gone");
        c->refused = 1;
        srv->nrefusing++;
        yugi__conn_close(c, YUGI_CR_IO);
        return;
    }
    if (peer_trusted(srv, &ss)) {
        mkd_debug(c->id, "accepted from proxy %s:%u", c->peer, c->peer_port);
        await_proxy(c);
        return;
    }
    mkd_debug(c->id, "accepted from %s:%u", c->peer, c->peer_port);
    yugi__conn_admit(c, &ss);
}

void yugi__conn_admit(yugi_conn *c, const struct sockaddr_storage *ss)
{
    yugi_server *srv = c->srv;
    const yugi_limits *lim = &srv->lim;
    uint64_t *refusals;
    int r;

    c->addr =
        yugi__addrs_get(&srv->addrs, (const struct sockaddr *)ss, now_ms(c));
    if ((refusals = over_limit(srv, c)) != NULL) {
        refuse_conn(c, refusals);
        return;
    }
    c->counted = 1;
    srv->nconns++;
    c->addr->conns++;
    c->pending = 1;
    c->addr->pending++;
    if ((r = yami_conn_new(srv->yami, srv->scfg, lim->conn_buffer_max,
                           yugi__on_result, c, &c->yami)) != MKD_OK) {
        mkd_error(c->id, "session: %s", mkd_strerror(r));
        yugi__conn_close(c, YUGI_CR_INTERNAL);
        return;
    }
    yugi__conn_flow(c);
    if (c->state != YUGI_CLOSED)
        yugi__conn_rearm(c);
}

void yugi__conn_shutdown(yugi_conn *c)
{
    switch (c->state) {
    case YUGI_HANDSHAKE:
        yugi__conn_close(c, YUGI_CR_SHUTDOWN);
        break;
    case YUGI_ESTABLISHED:
        yugi__conn_maybe_close_record(c);
        break;
    default:
        break;
    }
}
