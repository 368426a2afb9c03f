/*
 * pool.c -- see pool.h.
 *
 * IMPLEMENTATION NOTE (ordering). Records carry implicit sequence numbers,
 * so a session's units must be handled in arrival order and its responses
 * sealed in the order they were queued. One job per connection at a time,
 * each taking the whole queue, gives both without a lock: the queue is only
 * touched on the loop thread, the session only by the job in flight.
 */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

yami_stats yami_counters;

typedef struct job {
    uv_work_t work;
    yami_conn *y;
    yami_op *ops;
    yami_result res;
} job;

void yami_conn_init(yami_conn *y, mk_session *session, size_t buffer_max,
                    yami_result_fn on_result)
{
    memset(y, 0, sizeof *y);
    y->session = session;
    y->buffer_max = buffer_max;
    y->on_result = on_result;
}

static void free_ops(yami_op *op)
{
    while (op != NULL) {
        yami_op *next = op->next;
        /* Responses are plaintext the client is owed, still private. */
        mk_wipe(op->data, op->len);
        free(op);
        op = next;
    }
}

static void free_partial(yami_partial *p)
{
    mk_wipe(p->buf, p->len);
    free(p->buf);
    free(p);
}

void yami_conn_free(yami_conn *y)
{
    yami_partial *p = y->partials;

    while (p != NULL) {
        yami_partial *next = p->next;
        free_partial(p);
        p = next;
    }
    free_ops(y->head);
    y->head = y->tail = NULL;
    y->partials = NULL;
    mk_session_free(y->session);
    y->session = NULL;
}

int yami_queue(yami_conn *y, int type, uint32_t request_id, unsigned code,
               const uint8_t *data, size_t len)
{
    yami_op *op = malloc(sizeof *op + len);

    if (op == NULL)
        return -1;
    op->next = NULL;
    op->type = type;
    op->request_id = request_id;
    op->code = code;
    op->len = len;
    if (len)
        memcpy(op->data, data, len);
    if (y->tail != NULL)
        y->tail->next = op;
    else
        y->head = op;
    y->tail = op;
    y->queued_bytes += len;
    return 0;
}

void yami_drop_queued(yami_conn *y)
{
    free_ops(y->head);
    y->head = y->tail = NULL;
    y->queued_bytes = 0;
}

void yami_result_free(yami_result *res)
{
    yami_request *r = res->requests;

    while (r != NULL) {
        yami_request *next = r->next;
        mk_wipe(r->body, r->len);
        free(r->body);
        free(r);
        r = next;
    }
    free(res->out);
    memset(res, 0, sizeof *res);
}

/* --- pool side ---------------------------------------------------------- */

static int out_reserve(yami_result *res, size_t n)
{
    size_t cap;
    uint8_t *p;

    if (res->out_cap - res->out_len >= n)
        return 0;
    cap = res->out_cap ? res->out_cap : 1024;
    while (cap - res->out_len < n)
        cap *= 2;
    if ((p = realloc(res->out, cap)) == NULL)
        return -1;
    res->out = p;
    res->out_cap = cap;
    return 0;
}

static int out_put(yami_result *res, const uint8_t *p, size_t n)
{
    if (out_reserve(res, n) != 0)
        return -1;
    memcpy(res->out + res->out_len, p, n);
    res->out_len += n;
    return 0;
}

static yami_partial *partial_take(yami_conn *y, uint32_t id, int remove)
{
    yami_partial **pp = &y->partials;

    for (; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            yami_partial *p = *pp;
            if (remove)
                *pp = p->next;
            return p;
        }
    return NULL;
}

static void fail_internal(yami_result *res, int err)
{
    if (res->err == 0) {
        res->err = err;
        res->internal = 1;
    }
}

/* Seal an error record for a request that broke the buffer cap. */
static void abort_request(yami_conn *y, uint32_t id, yami_result *res)
{
    uint8_t rec[256];
    size_t n = 0;
    yami_partial *p = partial_take(y, id, 1);

    if (p != NULL) {
        y->partial_bytes -= p->len;
        free_partial(p);
    }
    if (mk_seal_error(y->session, id, MK_ECODE_OVERLOADED,
                      "request buffer limit", 20, rec, sizeof rec,
                      &n) != MK_OK ||
        out_put(res, rec, n) != 0) {
        fail_internal(res, MK_ERR_NOMEM);
        return;
    }
    res->aborted++;
    res->responses++;
}

/* A piece of a request: append to its slot; move it out when final. */
static void on_data(yami_conn *y, const mk_event *ev, const uint8_t *pt,
                    yami_result *res)
{
    yami_partial *p = partial_take(y, ev->request_id, 0);
    yami_request *r, **tail;

    if (y->partial_bytes + ev->len > y->buffer_max) {
        abort_request(y, ev->request_id, res);
        return;
    }
    if (p == NULL) {
        if ((p = calloc(1, sizeof *p)) == NULL) {
            fail_internal(res, MK_ERR_NOMEM);
            return;
        }
        p->id = ev->request_id;
        p->next = y->partials;
        y->partials = p;
    }
    if (p->cap - p->len < ev->len) {
        /* Grow only by what arrived (the peer's declared sizes are never
         * trusted for allocation). */
        size_t cap = p->cap ? p->cap : 256;
        uint8_t *nb;
        while (cap - p->len < ev->len)
            cap *= 2;
        if ((nb = malloc(cap)) == NULL) {
            fail_internal(res, MK_ERR_NOMEM);
            return;
        }
        if (p->len)
            memcpy(nb, p->buf, p->len);
        mk_wipe(p->buf, p->len);
        free(p->buf);
        p->buf = nb;
        p->cap = cap;
    }
    if (ev->len)
        memcpy(p->buf + p->len, pt, ev->len);
    p->len += ev->len;
    y->partial_bytes += ev->len;
    if (!ev->final)
        return;
    if ((r = calloc(1, sizeof *r)) == NULL) {
        fail_internal(res, MK_ERR_NOMEM);
        return;
    }
    (void)partial_take(y, p->id, 1);
    y->partial_bytes -= p->len;
    r->id = p->id;
    r->len = p->len;
    r->body = p->buf;
    free(p);
    for (tail = &res->requests; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = r;
}

static void run_units(yami_conn *y, const uint8_t *p, size_t len,
                      uint8_t *out, yami_result *res)
{
    size_t off = 0;

    while (off < len && res->err == 0) {
        size_t ulen = 0;
        mk_event ev;
        int r = mk_frame_check(p + off, len - off, &ulen);
        if (r != MK_OK) { /* Yugi framed these: cannot happen */
            fail_internal(res, MK_ERR_USAGE);
            return;
        }
        if (p[off] == MK_UNIT_CLIENT_HELLO)
            res->hellos++;
        r = mk_session_handle(y->session, p + off, ulen, out,
                              MK_HANDLE_OUT_LEN, &ev);
        off += ulen;
        if ((ev.type == MK_EV_SEND || ev.type == MK_EV_ESTABLISHED) &&
            ev.len > 0 && out_put(res, out, ev.len) != 0) {
            fail_internal(res, MK_ERR_NOMEM);
            return;
        }
        if (r != MK_OK) {
            res->err = r;
            return;
        }
        switch (ev.type) {
        case MK_EV_ESTABLISHED: {
            mk_session_info info;
            mk_session_get_info(y->session, &info);
            res->established = 1;
            res->resumed = info.resumed;
            memcpy(res->session_id, info.session_id, MK_SESSION_ID_LEN);
            break;
        }
        case MK_EV_SEND:
            /* Still handshaking after a hello: a HELLO_RETRY went out. */
            if (mk_session_state(y->session) == MK_STATE_HANDSHAKE)
                res->hello_retry = 1;
            break;
        case MK_EV_DATA:
            on_data(y, &ev, out, res);
            mk_wipe(out, ev.len);
            break;
        case MK_EV_CLOSE:
            res->peer_closed = 1;
            break;
        default:
            break;
        }
    }
}

void yami__run(yami_conn *y, yami_op *ops, yami_result *res)
{
    uint8_t out[MK_HANDLE_OUT_LEN];

    for (yami_op *op = ops; op != NULL && res->err == 0; op = op->next) {
        size_t n = 0;
        int r = MK_OK;
        switch (op->type) {
        case YAMI_OP_UNITS:
            run_units(y, op->data, op->len, out, res);
            break;
        case YAMI_OP_RESPONSE:
            if (out_reserve(res, mk_message_wire_len(op->len)) != 0) {
                fail_internal(res, MK_ERR_NOMEM);
                break;
            }
            r = mk_seal_message(y->session, op->request_id, op->data,
                                op->len, res->out + res->out_len,
                                res->out_cap - res->out_len, &n);
            res->responses++;
            break;
        case YAMI_OP_ERROR:
            if (out_reserve(res, 256 + op->len) != 0) {
                fail_internal(res, MK_ERR_NOMEM);
                break;
            }
            r = mk_seal_error(y->session, op->request_id, op->code,
                              (const char *)op->data, op->len,
                              res->out + res->out_len,
                              res->out_cap - res->out_len, &n);
            res->responses++;
            break;
        case YAMI_OP_CLOSE:
            if (out_reserve(res, 256) != 0) {
                fail_internal(res, MK_ERR_NOMEM);
                break;
            }
            r = mk_seal_close(y->session, res->out + res->out_len,
                              res->out_cap - res->out_len, &n);
            if (r == MK_OK)
                res->close_sent = 1;
            break;
        default:
            r = MK_ERR_USAGE;
            break;
        }
        if (r != MK_OK) {
            fail_internal(res, r);
            break;
        }
        res->out_len += n;
    }
    mk_wipe(out, sizeof out);
}

static void work_cb(uv_work_t *w)
{
    job *j = w->data;
    yami__run(j->y, j->ops, &j->res);
}

static void after_work_cb(uv_work_t *w, int status)
{
    job *j = w->data;
    yami_conn *y = j->y;

    (void)status; /* never cancelled: uv_cancel is not used */
    yami_counters.jobs_done++;
    free_ops(j->ops);
    y->busy = 0;
    y->on_result(y, &j->res);
    yami_result_free(&j->res);
    free(j);
}

int yami_kick(uv_loop_t *loop, yami_conn *y)
{
    job *j;
    int r;

    if (y->busy || y->head == NULL)
        return 0;
    if ((j = calloc(1, sizeof *j)) == NULL)
        return UV_ENOMEM;
    j->work.data = j;
    j->y = y;
    j->ops = y->head;
    if ((r = uv_queue_work(loop, &j->work, work_cb, after_work_cb)) != 0) {
        free(j);
        return r;
    }
    y->head = y->tail = NULL;
    y->queued_bytes = 0;
    y->busy = 1;
    yami_counters.jobs_started++;
    return 0;
}
