/*
 * internal.h -- Yami's internals, shared by its files and its own tests
 * (through the yami_internal target; the build refuses anyone else):
 *
 *   conn.c  a connection: its session, the queue of operations
 *   run.c   the pool-side step: the queued operations against the session
 *   job.c   scheduling: pool jobs, inline runs, the per-loop yami
 *
 * Non-static functions shared between the files carry the yami__ prefix.
 */
#ifndef YAMI_INTERNAL_H
#define YAMI_INTERNAL_H

#include "yami.h"

#include <stdatomic.h>

enum yami_op_type {
    YAMI_OP_UNITS = 1,    /* data: complete units, back to back */
    YAMI_OP_RESPONSE = 2, /* data: response body for request_id */
    YAMI_OP_ERROR = 3,    /* data: error text; code */
    YAMI_OP_CLOSE = 4     /* seal the close record */
};

typedef struct yami_op {
    struct yami_op *next;
    uint64_t at_ms; /* the loop's clock when it was queued */
    int type;
    uint32_t request_id;
    unsigned code;
    size_t len;
    uint8_t data[];
} yami_op;

/* One reassembly slot per request being received (pool side only). */
typedef struct yami_partial {
    struct yami_partial *next;
    uint64_t started_ms; /* its first record was queued then */
    uint32_t id;
    size_t len, cap;
    uint8_t *buf;
} yami_partial;

struct yami_job; /* job.c */

struct yami {
    uv_loop_t *loop;
    size_t inline_max; /* inline jobs up to this many bytes; 0: never */
    yami_stats st;     /* loop thread only */
    /* Jobs with a full hello (RSA work): at most rsa_slots in libuv's
     * pool at once, the rest held here in arrival order (job.c). */
    unsigned rsa_slots, rsa_running;
    struct yami_job *held, *held_tail;
    unsigned nheld;
    /* The global buffer budget: its size and what counts against it,
     * read and written by pool threads and the loop thread alike. */
    atomic_size_t budget, partial_total, output_total;
};

struct yami_conn {
    yami *pool;
    mk_session *session;
    yami_result_fn on_result;
    void *owner;
    size_t buffer_max; /* cap on request bytes being reassembled */
    /* Loop side. */
    yami_op *head, *tail;
    size_t queued_bytes;
    size_t queued_records; /* units queued, and records to seal */
    size_t queued_hellos;  /* CLIENT_HELLO units queued: pool only */
    size_t queued_full;    /* ... of which may need the RSA key */
    int busy;              /* a pool job is in flight */
    int running_inline;    /* yami_kick() is running jobs inline */
    unsigned job_full;     /* full hellos of the job in flight */
    /* Set on the loop thread by yami_conn_cancel, read by the pool thread
     * before each unit: the only field both touch while a job runs. */
    atomic_int cancelled;
    /* Pool side: touched only by the job in flight. */
    yami_partial *partials;
    size_t partial_bytes;
    uint64_t op_at_ms; /* at_ms of the operation being run */
};

/* conn.c */
MKD_MUST_CHECK int yami__queue(yami_conn *c, int type, uint32_t request_id,
                               unsigned code, const uint8_t *data, size_t len);
/* Detach the whole queue (a job takes it). */
yami_op *yami__take_queue(yami_conn *c);
void yami__free_ops(yami_op *op);
void yami__result_free(yami_result *res);

/* run.c: the pool-side step, run ops against c's session (also what the
 * unit tests drive directly). */
void yami__run(yami_conn *c, yami_op *ops, yami_result *res);
/* c was cancelled (yami_conn_cancel): any thread. */
int yami__cancelled(const yami_conn *c);

/* job.c: the global budget, from any thread. Take n bytes of request
 * reassembly (1), or nothing if that would pass the budget (0); give
 * them back. */
int yami__budget_take(yami *y, size_t n);
void yami__budget_give(yami *y, size_t n);

#endif
