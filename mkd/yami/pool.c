/*
 * pool.c -- see pool.h.
 *
 * IMPLEMENTATION NOTE (ordering). Records carry implicit sequence numbers,
 * so a session's units must be handled in arrival order and its responses
 * sealed in the order they were queued. One job per connection at a time,
 * each taking the whole queue, gives both without a lock: the queue is only
 * touched on the loop thread, the session only by the job in flight.
 *
 * IMPLEMENTATION NOTE (inline jobs). A small job runs on the loop thread,
 * inside yami_kick(), when no pool job is in flight: the session is then
 * touched by nobody else (the last pool job's writes are published to the
 * loop thread by libuv before its after-work callback), so the one-job-at-
 * a-time rule, and with it the ordering, is unchanged. The owner's callback
 * for an inline result may queue more and kick again (a request refused by
 * the backend queues its error record; the peer's close record makes the
 * owner queue ours). That nested kick sees running_inline and only leaves
 * the operations queued; the outer call loops, taking the queue again,
 * until it is empty, would break the per-call budget, or is not inline
 * work. Whatever is left then goes to the pool as an ordinary job, which
 * is also how a busy connection yields the loop to the others.
 *
 * Why these bounds: record crypto of 16 KiB costs ~30 us of a core, a small
 * record ~2 us, while a round trip through the pool costs two thread
 * wake-ups and context switches on each side (loop -> pool -> loop), more
 * than the crypto of a small record. Running it inline saves that latency
 * and CPU; the price is that the loop thread, which serves every
 * connection, is busy for the crypto's duration. inline_max (the option
 * inline_crypto_max, 16 KiB by default) and YAMI_INLINE_RECORDS keep that
 * to tens of microseconds per kick. Handshakes (an RSA operation, ~0.3 ms)
 * never run inline.
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

/* What an operation weighs for the choice between inline and pool: the
 * records it opens or seals and the hellos among its units. */
static void op_weigh(const yami_op *op, size_t *records, size_t *hellos)
{
    size_t off = 0, ulen = 0;

    *records = 0;
    *hellos = 0;
    switch (op->type) {
    case YAMI_OP_UNITS:
        while (off < op->len) {
            if (mk_frame_check(op->data + off, op->len - off, &ulen) !=
                MK_OK) {
                /* Yugi framed these: cannot happen. Weigh it as a hello,
                 * so the job goes to the pool and run_units reports it. */
                (*hellos)++;
                return;
            }
            if (op->data[off] == MK_UNIT_CLIENT_HELLO)
                (*hellos)++;
            (*records)++;
            off += ulen;
        }
        break;
    case YAMI_OP_RESPONSE:
        *records = op->len == 0 ? 1
                                : (op->len + MK_RECORD_MAX_PLAINTEXT - 1) /
                                      MK_RECORD_MAX_PLAINTEXT;
        break;
    default:
        *records = 1;
        break;
    }
}

int yami_queue(yami_conn *y, int type, uint32_t request_id, unsigned code,
               const uint8_t *data, size_t len)
{
    yami_op *op = malloc(sizeof *op + len);
    size_t records = 0, hellos = 0;

    if (op == NULL)
        return -1;
    op->next = NULL;
    op->type = type;
    op->request_id = request_id;
    op->code = code;
    op->len = len;
    if (len)
        memcpy(op->data, data, len);
    op_weigh(op, &records, &hellos);
    if (y->tail != NULL)
        y->tail->next = op;
    else
        y->head = op;
    y->tail = op;
    y->queued_bytes += len;
    y->queued_records += records;
    y->queued_hellos += hellos;
    return 0;
}

/* Detach the whole queue (a job takes it). */
static yami_op *take_queue(yami_conn *y)
{
    yami_op *ops = y->head;

    y->head = y->tail = NULL;
    y->queued_bytes = 0;
    y->queued_records = 0;
    y->queued_hellos = 0;
    return ops;
}

void yami_drop_queued(yami_conn *y)
{
    free_ops(take_queue(y));
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

/* *dirty: how much of out may hold plaintext (see yami__run). */
static void run_units(yami_conn *y, const uint8_t *p, size_t len,
                      uint8_t *out, size_t *dirty, yami_result *res)
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
        /* Opening a record decrypts into out. libmegaki reports ev.len
         * bytes of plaintext but may leave more there: the rest of an
         * aborted request is decrypted and dropped (MK_EV_NONE), and a
         * refusal seals its error record over the plaintext (MK_EV_SEND,
         * possibly shorter). A record's plaintext is always shorter than
         * the record, so the unit's length bounds it. A hello writes only
         * wire bytes (SERVER_HELLO, HELLO_RETRY or an alert). */
        if (p[off] != MK_UNIT_CLIENT_HELLO && ulen > *dirty)
            *dirty = ulen < MK_HANDLE_OUT_LEN ? ulen : MK_HANDLE_OUT_LEN;
        if ((ev.type == MK_EV_DATA || ev.type == MK_EV_ERROR) &&
            ev.len > *dirty)
            *dirty = ev.len;
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
            /* Copied out; the buffer is wiped once, at the end of the job
             * (yami__run), not after every record. */
            on_data(y, &ev, out, res);
            break;
        case MK_EV_CLOSE:
            res->peer_closed = 1;
            break;
        default:
            break;
        }
    }
}

/*
 * out is only the scratch space of mk_session_handle(); sealing writes
 * straight into res->out (ciphertext, nothing to wipe). Of out, only the
 * first `dirty` bytes can have held plaintext, so only those are wiped at
 * the end: a whole-buffer wipe (17 KiB) per job cost more than the
 * crypto of a small record, and a seal-only job has nothing to wipe.
 */
void yami__run(yami_conn *y, yami_op *ops, yami_result *res)
{
    uint8_t out[MK_HANDLE_OUT_LEN];
    size_t dirty = 0;

    for (yami_op *op = ops; op != NULL && res->err == 0; op = op->next) {
        size_t n = 0;
        int r = MK_OK;
        switch (op->type) {
        case YAMI_OP_UNITS:
            run_units(y, op->data, op->len, out, &dirty, res);
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
    mk_wipe(out, dirty);
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

/* --- inline jobs (loop thread) ------------------------------------------ */

/* May what is queued now run inline, given what this call already spent?
 * Only called with no pool job in flight: the session is the loop's to
 * read. */
static int inline_ok(const yami_conn *y, size_t spent_bytes,
                     size_t spent_records)
{
    return y->inline_max != 0 && y->queued_hellos == 0 &&
           y->session != NULL &&
           mk_session_state(y->session) == MK_STATE_ESTABLISHED &&
           spent_bytes <= y->inline_max &&
           y->queued_bytes <= y->inline_max - spent_bytes &&
           spent_records <= YAMI_INLINE_RECORDS &&
           y->queued_records <= YAMI_INLINE_RECORDS - spent_records;
}

/* Run queued jobs on the loop thread while inline_ok() holds (it does on
 * entry), applying each result before taking the queue again. */
static void run_inline(yami_conn *y)
{
    size_t spent_bytes = 0, spent_records = 0;

    y->running_inline = 1;
    do {
        yami_result res;
        yami_op *ops;

        spent_bytes += y->queued_bytes;
        spent_records += y->queued_records;
        ops = take_queue(y);
        memset(&res, 0, sizeof res);
        yami_counters.jobs_inline++;
        yami__run(y, ops, &res);
        free_ops(ops);
        res.ran_inline = 1;
        /* May queue more and kick: that kick only queues (running_inline),
         * and this loop takes it. May close the connection: its owner
         * then drops the queue, which ends the loop. */
        y->on_result(y, &res);
        yami_result_free(&res);
    } while (y->head != NULL && inline_ok(y, spent_bytes, spent_records));
    y->running_inline = 0;
}

int yami_kick(uv_loop_t *loop, yami_conn *y)
{
    job *j;
    int r;

    if (y->busy || y->running_inline || y->head == NULL)
        return 0;
    if (inline_ok(y, 0, 0)) {
        run_inline(y);
        /* The rest, if any (over the budget, or not inline work), goes to
         * the pool below: nothing else would pick it up. */
        if (y->head == NULL)
            return 0;
    }
    if ((j = calloc(1, sizeof *j)) == NULL)
        return UV_ENOMEM;
    j->work.data = j;
    j->y = y;
    j->ops = y->head;
    if ((r = uv_queue_work(loop, &j->work, work_cb, after_work_cb)) != 0) {
        free(j);
        return r;
    }
    (void)take_queue(y);
    y->busy = 1;
    yami_counters.jobs_started++;
    return 0;
}
