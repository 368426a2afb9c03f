/*
 * conn.c -- a connection's session and its queue of operations (yami.h).
 * Loop thread only.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "mkd_util.h"

int yami_conn_new(yami *y, mk_server_config *scfg, size_t buffer_max,
                  yami_result_fn cb, void *owner, yami_conn **out)
{
    yami_conn *c = calloc(1, sizeof *c);
    int r;

    *out = NULL;
    if (c == NULL)
        return MKD_ERR_NOMEM;
    if ((r = mk_session_new_server(&c->session, scfg)) != MK_OK) {
        free(c);
        return r == MK_ERR_NOMEM ? MKD_ERR_NOMEM : MKD_ERR_CRYPTO;
    }
    atomic_init(&c->cancelled, 0);
    c->pool = y;
    c->buffer_max = buffer_max;
    c->on_result = cb;
    c->owner = owner;
    *out = c;
    return MKD_OK;
}

void yami__free_ops(yami_op *op)
{
    while (op != NULL) {
        yami_op *next = op->next;
        /* Responses are plaintext the client is owed, still private. */
        mkd_wipe(op->data, op->len);
        free(op);
        op = next;
    }
}

static void free_partials(yami_partial *p)
{
    while (p != NULL) {
        yami_partial *next = p->next;
        mkd_wipe(p->buf, p->len);
        free(p->buf);
        free(p);
        p = next;
    }
}

void yami_conn_free(yami_conn *c)
{
    if (c == NULL)
        return;
    yami__budget_give(c->pool, c->partial_bytes);
    free_partials(c->partials);
    yami__free_ops(yami__take_queue(c));
    mk_session_free(c->session);
    mkd_wipe(c, sizeof *c);
    free(c);
}

int yami_conn_busy(const yami_conn *c)
{
    return c->busy;
}

int yami_conn_pending(const yami_conn *c)
{
    return c->head != NULL;
}

size_t yami_conn_queued_bytes(const yami_conn *c)
{
    return c->queued_bytes;
}

/* What an operation weighs, for the choice between inline and pool and
 * between the pool's RSA slots and its free thread (job.c). */
typedef struct op_weight {
    size_t records; /* records it opens or seals */
    size_t hellos;  /* CLIENT_HELLO units among them */
    size_t full;    /* ... of which may need the RSA key */
} op_weight;

static void op_weigh(const yami_op *op, op_weight *w)
{
    size_t off = 0, ulen = 0;

    memset(w, 0, sizeof *w);
    switch (op->type) {
    case YAMI_OP_UNITS:
        while (off < op->len) {
            const uint8_t *u = op->data + off;
            if (mk_frame_check(u, op->len - off, &ulen) != MK_OK) {
                /* Yugi framed these: cannot happen. Weigh it as a full
                 * hello: the job goes to the pool, and yami__run reports
                 * it. */
                w->hellos++;
                w->full++;
                return;
            }
            /* Only a well-formed resumption is sure to need no RSA. */
            if (u[0] == MK_UNIT_CLIENT_HELLO) {
                w->hellos++;
                w->full += !mk_client_hello_resumes(u, ulen);
            }
            w->records++;
            off += ulen;
        }
        break;
    case YAMI_OP_RESPONSE:
        w->records = op->len == 0 ? 1
                                  : (op->len + MK_RECORD_MAX_PLAINTEXT - 1) /
                                        MK_RECORD_MAX_PLAINTEXT;
        break;
    default:
        w->records = 1;
        break;
    }
}

int yami__queue(yami_conn *c, int type, uint32_t request_id, unsigned code,
                const uint8_t *data, size_t len)
{
    yami_op *op = malloc(sizeof *op + len);
    op_weight w;

    if (op == NULL)
        return MKD_ERR_NOMEM;
    op->next = NULL;
    op->at_ms = c->pool->loop != NULL ? uv_now(c->pool->loop) : 0;
    op->type = type;
    op->request_id = request_id;
    op->code = code;
    op->len = len;
    if (len)
        memcpy(op->data, data, len);
    op_weigh(op, &w);
    if (c->tail != NULL)
        c->tail->next = op;
    else
        c->head = op;
    c->tail = op;
    c->queued_bytes += len;
    c->queued_records += w.records;
    c->queued_hellos += w.hellos;
    c->queued_full += w.full;
    return MKD_OK;
}

int yami_queue_units(yami_conn *c, const uint8_t *units, size_t len)
{
    return yami__queue(c, YAMI_OP_UNITS, 0, 0, units, len);
}

int yami_queue_response(yami_conn *c, uint32_t request_id, const uint8_t *body,
                        size_t len)
{
    return yami__queue(c, YAMI_OP_RESPONSE, request_id, 0, body, len);
}

int yami_queue_error(yami_conn *c, uint32_t request_id, unsigned code,
                     const char *text)
{
    size_t n = text != NULL ? strlen(text) : 0;

    if (n > MK_ERROR_TEXT_MAX)
        n = MK_ERROR_TEXT_MAX;
    return yami__queue(c, YAMI_OP_ERROR, request_id, code,
                       (const uint8_t *)text, n);
}

int yami_queue_close(yami_conn *c)
{
    return yami__queue(c, YAMI_OP_CLOSE, 0, 0, NULL, 0);
}

yami_op *yami__take_queue(yami_conn *c)
{
    yami_op *ops = c->head;

    c->head = c->tail = NULL;
    c->queued_bytes = 0;
    c->queued_records = 0;
    c->queued_hellos = 0;
    c->queued_full = 0;
    return ops;
}

void yami_drop_queued(yami_conn *c)
{
    yami__free_ops(yami__take_queue(c));
}

unsigned yami_conn_cancel(yami_conn *c)
{
    atomic_store_explicit(&c->cancelled, 1, memory_order_relaxed);
    yami_drop_queued(c);
    return c->busy ? c->job_full : 0;
}

int yami__cancelled(const yami_conn *c)
{
    /* Relaxed: the flag publishes nothing else. A pool thread that reads
     * it a moment late does one unit's work for nothing, no harm. */
    return atomic_load_explicit(&c->cancelled, memory_order_relaxed);
}

static void requests_free(yami_request *r)
{
    while (r != NULL) {
        yami_request *next = r->next;
        if (r->body != NULL) {
            mkd_wipe(r->body, r->len);
            free(r->body);
        }
        free(r);
        r = next;
    }
}

void yami__result_free(yami_result *res)
{
    requests_free(res->requests);
    requests_free(res->refused);
    free(res->out);
    memset(res, 0, sizeof *res);
}
