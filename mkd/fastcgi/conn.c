/*
 * conn.c -- connections to an upstream: connect (with its deadline),
 * write a request's records, read the answer's, keep the connection for
 * the next request (FCGI_KEEP_CONN), close.
 *
 * A connection holds at most one request. An idle one keeps reading: a
 * responder that closes it (PHP-FPM recycling a worker) or sends bytes
 * nobody asked for gets it closed at once, not handed the next request.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "mkd_log.h"
#include "mkd_util.h"

static void on_closed(uv_handle_t *h)
{
    fc_conn *c = h->data;
    fastcgi *b = c->b;

    b->open_handles--;
    if (--c->open_handles > 0)
        return;
    mkd_wipe(c->in, sizeof c->in); /* answers, in the clear */
    free(c);
    fastcgi__maybe_free(b);
}

static void unlink_conn(fc_conn *c)
{
    fc_upstream *up = c->up;

    for (fc_conn **pp = &up->conns; *pp != NULL; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    up->nconns--;
    if (c->state == FC_IDLE)
        up->nidle--;
}

/* Close c; whoever held its request has answered or moved it. */
void fastcgi__conn_close(fc_conn *c)
{
    if (c->state == FC_CLOSING)
        return;
    unlink_conn(c);
    c->state = FC_CLOSING;
    c->req = NULL;
    uv_close(&c->io.h, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
    fastcgi__upstream_gone_conn(c->b, c->up);
}

/* A deadline passed: tell the responder to stop (best effort, never
 * waiting on a full socket), then close. */
void fastcgi__conn_abort(fc_conn *c)
{
    uint8_t rec[FCGI_HEADER];
    uv_buf_t buf;

    if (c->state == FC_BUSY &&
        fcgi_encode_abort(rec, sizeof rec, FC_REQUEST_ID) == sizeof rec) {
        buf = uv_buf_init((char *)rec, sizeof rec);
        (void)uv_try_write(&c->io.s, &buf, 1);
    }
    fastcgi__conn_close(c);
}

/* The request on c cannot go on: answer it, close c. */
static void conn_fail(fc_conn *c, mkd_backend_status st, const char *text)
{
    fc_req *r = c->req;
    fastcgi *b = c->b;

    if (st == MKD_BACKEND_TIMEOUT)
        fastcgi__conn_abort(c);
    else
        fastcgi__conn_close(c);
    if (r != NULL)
        fastcgi__req_answer(b, r, st, NULL, 0, text);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    fc_conn *c = h->data;
    (void)hint;

    *buf = uv_buf_init((char *)c->in + c->in_len,
                       (unsigned)(sizeof c->in - c->in_len));
}

/* The request on c ended (END_REQUEST): c goes back to its upstream's
 * idle connections before the answer, so that a submit from inside the
 * answer's callback may take it. */
static void conn_ended(fc_conn *c)
{
    fc_req *r = c->req;
    fastcgi *b = c->b;

    (void)uv_timer_stop(&c->timer);
    c->req = NULL;
    /* Records of ours still unwritten would reach the next request. */
    if (c->writing || c->up->retired || b->freed) {
        fastcgi__conn_close(c);
    } else {
        c->state = FC_IDLE;
        c->up->nidle++;
    }
    fastcgi__req_finish(b, r);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    fc_conn *c = s->data;
    mkd_backend_status st;
    const char *text;
    int r;
    (void)buf;

    if (n == 0 || c->state == FC_CLOSING)
        return;
    if (n < 0 || c->state != FC_BUSY) {
        if (c->state == FC_BUSY) {
            c->b->lost++;
            mkd_warn(0,
                     "fastcgi: upstream %s closed the connection "
                     "mid-request (%s)",
                     c->up->name, n < 0 ? uv_err_name((int)n) : "data");
        }
        conn_fail(c, MKD_BACKEND_INTERNAL,
                  "the application's server went away");
        return;
    }
    c->in_len += (size_t)n;
    r = fastcgi__req_input(c, &st, &text);
    if (r > 0)
        conn_ended(c);
    else if (r < 0)
        conn_fail(c, st, text);
}

static void on_write(uv_write_t *w, int status)
{
    fc_conn *c = w->data;

    c->writing = 0;
    if (status < 0 && c->state == FC_BUSY) {
        c->b->lost++;
        mkd_warn(0, "fastcgi: writing to upstream %s: %s", c->up->name,
                 uv_err_name(status));
        conn_fail(c, MKD_BACKEND_INTERNAL,
                  "the application's server went away");
    }
}

static void on_answer_timeout(uv_timer_t *t)
{
    fc_conn *c = t->data;

    if (c->state != FC_BUSY)
        return;
    c->b->timeouts++;
    mkd_warn(c->req->conn_id,
             "fastcgi: upstream %s gave no answer in %u ms: aborted",
             c->up->name, c->b->request_timeout_ms);
    conn_fail(c, MKD_BACKEND_TIMEOUT, "request timed out");
}

/* Send r's records on c (connected, reading) and start its deadline. */
static int conn_start(fc_conn *c, fc_req *r)
{
    uv_buf_t buf = uv_buf_init((char *)r->wire, (unsigned)r->wire_len);

    c->req = r;
    c->state = FC_BUSY;
    c->in_len = 0;
    c->up->requests++;
    r->started_ns = uv_hrtime();
    c->writing = 1;
    if (uv_write(&c->wreq, &c->io.s, &buf, 1, on_write) != 0 ||
        uv_timer_start(&c->timer, on_answer_timeout, c->b->request_timeout_ms,
                       0) != 0)
        return MKD_ERR_LOOP;
    return MKD_OK;
}

/* The connect failed or timed out: eject the upstream, and the request
 * tries the next one it has not tried. */
static void connect_failed(fc_conn *c, const char *why)
{
    fc_req *r = c->req;
    fastcgi *b = c->b;

    mkd_warn(0, "fastcgi: connecting to upstream %s: %s", c->up->name, why);
    fastcgi__eject(b, c->up);
    fastcgi__conn_close(c);
    if (r != NULL)
        fastcgi__req_dispatch(b, r);
}

static void on_connect_timeout(uv_timer_t *t)
{
    fc_conn *c = t->data;

    if (c->state == FC_CONNECTING)
        connect_failed(c, "timed out");
}

static void on_connect(uv_connect_t *req, int status)
{
    fc_conn *c = req->data;
    fc_req *r = c->req;

    if (c->state != FC_CONNECTING)
        return;
    if (status < 0) {
        connect_failed(c, uv_strerror(status));
        return;
    }
    c->up->ejected_until = 0;
    if (uv_read_start(&c->io.s, on_alloc, on_read) != 0 ||
        conn_start(c, r) != MKD_OK)
        conn_fail(c, MKD_BACKEND_INTERNAL, "internal error");
}

static int conn_connect(fc_conn *c)
{
    fc_upstream *up = c->up;
    int r;

    c->creq.data = c;
    if (up->is_unix) {
        uv_pipe_connect(&c->creq, &c->io.pipe, up->path, on_connect);
        r = 0;
    } else {
        r = uv_tcp_connect(&c->creq, &c->io.tcp,
                           (const struct sockaddr *)&up->addr, on_connect);
    }
    if (r == 0)
        r = uv_timer_start(&c->timer, on_connect_timeout,
                           c->b->connect_timeout_ms, 0);
    return r;
}

/* A new connection to up for r. */
static int conn_open(fastcgi *b, fc_upstream *up, fc_req *r)
{
    fc_conn *c = calloc(1, sizeof *c);
    int e;

    if (c == NULL)
        return MKD_ERR_NOMEM;
    c->b = b;
    c->up = up;
    (void)uv_timer_init(b->loop, &c->timer); /* cannot fail */
    c->io.h.data = c->timer.data = c->wreq.data = c;
    c->open_handles = 1;
    b->open_handles++;
    e = up->is_unix ? uv_pipe_init(b->loop, &c->io.pipe, 0)
                    : uv_tcp_init(b->loop, &c->io.tcp);
    if (e != 0) {
        uv_close((uv_handle_t *)&c->timer, on_closed);
        return MKD_ERR_LOOP;
    }
    c->io.h.data = c;
    c->open_handles++;
    b->open_handles++;
    c->state = FC_CONNECTING;
    c->req = r;
    c->next = up->conns;
    up->conns = c;
    up->nconns++;
    if ((e = conn_connect(c)) != 0) {
        c->req = NULL;
        mkd_warn(0, "fastcgi: connecting to upstream %s: %s", up->name,
                 uv_strerror(e));
        fastcgi__eject(b, up);
        fastcgi__conn_close(c);
        return MKD_ERR_SYSTEM;
    }
    return MKD_OK;
}

int fastcgi__conn_run(fastcgi *b, fc_upstream *up, fc_req *r)
{
    for (fc_conn *c = up->conns; c != NULL; c = c->next)
        if (c->state == FC_IDLE) {
            up->nidle--;
            if (conn_start(c, r) != MKD_OK) {
                c->req = NULL;
                fastcgi__conn_close(c);
                return MKD_ERR_LOOP;
            }
            return MKD_OK;
        }
    return conn_open(b, up, r);
}
