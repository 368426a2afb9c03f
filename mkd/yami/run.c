/*
 * run.c -- the pool-side step (yami.h): a job's operations run in order
 * against the connection's session. It runs on a pool thread (or inline on
 * the loop thread, when no pool job is in flight) and touches only the
 * session, the reassembly slots, the operations and the job's result.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "mkd_util.h"

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

static yami_partial *partial_take(yami_conn *c, uint32_t id, int remove)
{
    yami_partial **pp = &c->partials;

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

/* Note a refused request for the access log: its id and the bytes that
 * came (n). Without memory the line is lost, not the refusal. */
static void note_refused(yami_result *res, uint32_t id, size_t n)
{
    yami_request *r = calloc(1, sizeof *r), **tail;

    if (r == NULL)
        return;
    r->id = id;
    r->len = n;
    for (tail = &res->refused; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = r;
}

/* Seal an error record for a request that broke a buffer cap: its
 * connection's (text "request buffer limit") or the global budget's.
 * more: the bytes of the record that broke it. */
static void abort_request(yami_conn *c, uint32_t id, size_t more,
                          const char *text, yami_result *res)
{
    uint8_t rec[256];
    size_t n = 0;
    yami_partial *p = partial_take(c, id, 1);

    note_refused(res, id, (p != NULL ? p->len : 0) + more);
    if (p != NULL) {
        c->partial_bytes -= p->len;
        yami__budget_give(c->pool, p->len);
        mkd_wipe(p->buf, p->len);
        free(p->buf);
        free(p);
    }
    if (mk_seal_error(c->session, id, MK_ECODE_OVERLOADED, text, strlen(text),
                      rec, sizeof rec, &n) != MK_OK ||
        out_put(res, rec, n) != 0) {
        fail_internal(res, MK_ERR_NOMEM);
        return;
    }
    res->aborted++;
    res->responses++;
}

/* The slot of a request being received, made on its first record. */
static yami_partial *partial_get(yami_conn *c, uint32_t id)
{
    yami_partial *p = partial_take(c, id, 0);

    if (p != NULL || (p = calloc(1, sizeof *p)) == NULL)
        return p;
    p->id = id;
    p->started_ms = c->op_at_ms;
    p->next = c->partials;
    c->partials = p;
    return p;
}

/* Append n bytes to p. It grows only by what arrived: the peer's declared
 * sizes are never trusted for allocation. Copy and wipe, not realloc, so
 * no plaintext is left behind in freed memory. */
static int partial_append(yami_conn *c, yami_partial *p, const uint8_t *pt,
                          size_t n)
{
    if (p->cap - p->len < n) {
        size_t cap = p->cap ? p->cap : 256;
        uint8_t *nb;
        while (cap - p->len < n)
            cap *= 2;
        if ((nb = malloc(cap)) == NULL)
            return MKD_ERR_NOMEM;
        if (p->len)
            memcpy(nb, p->buf, p->len);
        mkd_wipe(p->buf, p->len);
        free(p->buf);
        p->buf = nb;
        p->cap = cap;
    }
    if (n)
        memcpy(p->buf + p->len, pt, n);
    p->len += n;
    c->partial_bytes += n;
    return MKD_OK;
}

/* The last record of p's request is in: move it to the result's list. */
static int partial_finish(yami_conn *c, yami_partial *p, yami_result *res)
{
    yami_request *r = calloc(1, sizeof *r), **tail;

    if (r == NULL)
        return MKD_ERR_NOMEM;
    (void)partial_take(c, p->id, 1);
    c->partial_bytes -= p->len;
    yami__budget_give(c->pool, p->len);
    r->id = p->id;
    r->len = p->len;
    r->body = p->buf;
    free(p);
    for (tail = &res->requests; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = r;
    return MKD_OK;
}

/* A piece of a request: append to its slot; move it out when final. A
 * piece past the connection's cap or the global budget refuses its
 * request instead. */
static void on_data(yami_conn *c, const mk_event *ev, const uint8_t *pt,
                    yami_result *res)
{
    yami_partial *p;

    if (c->partial_bytes + ev->len > c->buffer_max) {
        abort_request(c, ev->request_id, ev->len, "request buffer limit", res);
        return;
    }
    if (!yami__budget_take(c->pool, ev->len)) {
        res->aborted_budget++;
        abort_request(c, ev->request_id, ev->len, "server buffers full", res);
        return;
    }
    if ((p = partial_get(c, ev->request_id)) == NULL ||
        partial_append(c, p, pt, ev->len) != MKD_OK) {
        yami__budget_give(c->pool, ev->len);
        fail_internal(res, MK_ERR_NOMEM);
        return;
    }
    if (ev->final && partial_finish(c, p, res) != MKD_OK)
        fail_internal(res, MK_ERR_NOMEM);
}

/* What a handled unit's event means for the result. */
static void on_event(yami_conn *c, const mk_event *ev, const uint8_t *out,
                     yami_result *res)
{
    mk_session_info info;

    switch (ev->type) {
    case MK_EV_ESTABLISHED:
        mk_session_get_info(c->session, &info);
        res->established = 1;
        res->resumed = info.resumed;
        memcpy(res->session_id, info.session_id, MK_SESSION_ID_LEN);
        memcpy(res->key_id, info.key_id, MK_KEY_ID_LEN);
        res->max_message = info.max_message;
        break;
    case MK_EV_SEND:
        /* Still handshaking after a hello: a HELLO_RETRY went out. */
        if (mk_session_state(c->session) == MK_STATE_HANDSHAKE)
            res->hello_retry = 1;
        break;
    case MK_EV_DATA:
        /* Copied out; the buffer is wiped once, at the end of the job
         * (yami__run), not after every record. */
        on_data(c, ev, out, res);
        break;
    case MK_EV_CLOSE:
        res->peer_closed = 1;
        break;
    default:
        break;
    }
}

/*
 * How much of out may now hold plaintext (*dirty, see yami__run). Opening
 * a record decrypts into out. libmegaki reports ev.len bytes of plaintext
 * but may leave more there: the rest of an aborted request is decrypted
 * and dropped (MK_EV_NONE), and a refusal seals its error record over the
 * plaintext (MK_EV_SEND, possibly shorter). A record's plaintext is always
 * shorter than the record, so the unit's length bounds it. A hello writes
 * only wire bytes (SERVER_HELLO, HELLO_RETRY or an alert).
 */
static void mark_dirty(const uint8_t *unit, size_t ulen, const mk_event *ev,
                       size_t *dirty)
{
    if (unit[0] != MK_UNIT_CLIENT_HELLO && ulen > *dirty)
        *dirty = ulen < MK_HANDLE_OUT_LEN ? ulen : MK_HANDLE_OUT_LEN;
    if ((ev->type == MK_EV_DATA || ev->type == MK_EV_ERROR) && ev->len > *dirty)
        *dirty = ev->len;
}

/* Every unit of p[0..len) through the session, in order; out is the
 * session's scratch space. */
static void run_units(yami_conn *c, const uint8_t *p, size_t len, uint8_t *out,
                      size_t *dirty, yami_result *res)
{
    size_t off = 0;

    while (off < len && res->err == 0) {
        size_t ulen = 0;
        mk_event ev;
        int r = mk_frame_check(p + off, len - off, &ulen);
        int hello = p[off] == MK_UNIT_CLIENT_HELLO;
        if (r != MK_OK) { /* Yugi framed these: cannot happen */
            fail_internal(res, MK_ERR_USAGE);
            return;
        }
        if (yami__cancelled(c)) {
            /* Nobody will read the answer: skip, but count the hellos,
             * which the owner counts as handshakes in progress. */
            res->hellos_skipped += (unsigned)hello;
            off += ulen;
            continue;
        }
        r = mk_session_handle(c->session, p + off, ulen, out, MK_HANDLE_OUT_LEN,
                              &ev);
        if (hello) {
            res->hellos++;
            res->hellos_orphaned += (unsigned)yami__cancelled(c);
        }
        mark_dirty(p + off, ulen, &ev, dirty);
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
        on_event(c, &ev, out, res);
    }
}

/* Seal one outgoing record (response, error or close) straight into
 * res->out: ciphertext, nothing to wipe. */
static int run_seal(yami_conn *c, const yami_op *op, yami_result *res)
{
    size_t need = op->type == YAMI_OP_RESPONSE ? mk_message_wire_len(op->len)
                                               : 256 + op->len;
    size_t n = 0;
    int r;

    if (out_reserve(res, need) != 0)
        return MK_ERR_NOMEM;
    switch (op->type) {
    case YAMI_OP_RESPONSE:
        r = mk_seal_message(c->session, op->request_id, op->data, op->len,
                            res->out + res->out_len,
                            res->out_cap - res->out_len, &n);
        res->responses++;
        break;
    case YAMI_OP_ERROR:
        r = mk_seal_error(
            c->session, op->request_id, op->code, (const char *)op->data,
            op->len, res->out + res->out_len, res->out_cap - res->out_len, &n);
        res->responses++;
        break;
    case YAMI_OP_CLOSE:
        r = mk_seal_close(c->session, res->out + res->out_len,
                          res->out_cap - res->out_len, &n);
        if (r == MK_OK)
            res->close_sent = 1;
        break;
    default:
        r = MK_ERR_USAGE;
        break;
    }
    if (r == MK_OK)
        res->out_len += n;
    return r;
}

/* When the oldest request still being received began; 0: none. The owner
 * bounds how long one may stay unfinished (partial_request_timeout_ms). */
static uint64_t oldest_partial(const yami_conn *c)
{
    uint64_t t = 0;

    for (const yami_partial *p = c->partials; p != NULL; p = p->next)
        if (t == 0 || p->started_ms < t)
            t = p->started_ms;
    return t;
}

/*
 * out is only the scratch space of mk_session_handle(). Of it, only the
 * first `dirty` bytes can have held plaintext, so only those are wiped at
 * the end: a whole-buffer wipe (17 KiB) per job cost more than the crypto
 * of a small record, and a seal-only job has nothing to wipe.
 */
void yami__run(yami_conn *c, yami_op *ops, yami_result *res)
{
    uint8_t out[MK_HANDLE_OUT_LEN];
    size_t dirty = 0;
    int r;

    for (yami_op *op = ops; op != NULL && res->err == 0; op = op->next) {
        c->op_at_ms = op->at_ms;
        if (op->type == YAMI_OP_UNITS)
            run_units(c, op->data, op->len, out, &dirty, res);
        else if (!yami__cancelled(c) && (r = run_seal(c, op, res)) != MK_OK)
            fail_internal(res, r);
    }
    mkd_wipe(out, dirty);
    res->partial_since_ms = oldest_partial(c);
}
