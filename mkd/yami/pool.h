/*
 * pool.h -- Yami: everything a connection's mk_session does, run as jobs
 * on the libuv thread pool, in order per connection.
 *
 * The loop thread queues operations on a yami_conn (units that arrived,
 * responses to seal, error and close records) and calls yami_kick(). At
 * most one job per connection is in flight: it takes every operation queued
 * so far, runs them in order against the session on a pool thread, and its
 * result (bytes to write, requests that completed, the session's fate) is
 * handed to the owner's callback on the loop thread. A pool thread never
 * calls libuv and never touches anything but the session, the operations
 * and the result of its own job.
 *
 * The owner keeps the yami_conn alive while yami_busy() is true; if the
 * connection closed meanwhile, the owner's callback is still called (with
 * the result) and simply discards it.
 *
 * Small record jobs run inline. Handing ~2 us of record crypto to a pool
 * thread and back costs more than the crypto itself (two futex wake-ups
 * and context switches per job). So when no job is in flight, the session
 * is established, no CLIENT_HELLO is queued, and what is queued is small
 * (at most inline_max bytes and YAMI_INLINE_RECORDS records), yami_kick()
 * runs the job on the loop thread and hands the result to the owner's
 * callback before it returns (res->ran_inline set). Handshakes, with their
 * RSA operation, always go to the pool, as does anything larger. The owner
 * must not free the yami_conn from inside that callback, and should drop
 * the queue (yami_drop_queued) when the connection goes away, so that an
 * inline run stops there.
 */
#ifndef YAMI_POOL_H
#define YAMI_POOL_H

#include "../common/compiler.h"

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "megaki.h"

enum yami_op_type {
    YAMI_OP_UNITS = 1,    /* data: complete units, back to back */
    YAMI_OP_RESPONSE = 2, /* data: response body for request_id */
    YAMI_OP_ERROR = 3,    /* data: error text; code */
    YAMI_OP_CLOSE = 4     /* seal the close record */
};

typedef struct yami_op {
    struct yami_op *next;
    int type;
    uint32_t request_id;
    unsigned code;
    size_t len;
    uint8_t data[];
} yami_op;

/* A request whose last record arrived: its whole plaintext body. */
typedef struct yami_request {
    struct yami_request *next;
    uint32_t id;
    size_t len;
    uint8_t *body; /* malloc'd; ownership passes to whoever takes it */
} yami_request;

typedef struct yami_result {
    uint8_t *out;          /* wire bytes to write, in order (malloc'd) */
    size_t out_len, out_cap;
    yami_request *requests; /* completed requests, in arrival order */
    int err;               /* first mk_err the session failed with, or 0 */
    int internal;          /* the failure was ours (memory), not the peer's */
    int established;       /* the handshake completed in this job */
    int resumed;
    int hello_retry;       /* a HELLO_RETRY went out */
    unsigned hellos;       /* CLIENT_HELLO units handled */
    int peer_closed;       /* the peer's close record arrived */
    int close_sent;        /* our close record was sealed */
    unsigned responses;    /* responses and error records sealed */
    unsigned aborted;      /* requests refused for the buffer cap */
    uint8_t session_id[MK_SESSION_ID_LEN];
    int ran_inline;        /* ran on the loop thread inside yami_kick() */
} yami_result;

typedef struct yami_conn yami_conn;
typedef void (*yami_result_fn)(yami_conn *y, yami_result *res);

/* One reassembly slot per request being received (pool side only). */
typedef struct yami_partial {
    struct yami_partial *next;
    uint32_t id;
    size_t len, cap;
    uint8_t *buf;
} yami_partial;

/* An inline run (one yami_kick() call, all its rounds) handles at most
 * inline_max bytes and at most this many records; what is left goes to the
 * pool. A record costs ~2 us whatever its size (MAC and cipher set-up), so
 * 16 small records weigh about what one 16 KiB record does (~30 us). */
#define YAMI_INLINE_RECORDS 16

struct yami_conn {
    mk_session *session;
    yami_result_fn on_result;
    size_t buffer_max;     /* cap on request bytes being reassembled */
    size_t inline_max;     /* inline jobs up to this many bytes; 0: never */
    /* Loop side. */
    yami_op *head, *tail;
    size_t queued_bytes;
    size_t queued_records; /* units queued, and records to seal */
    size_t queued_hellos;  /* CLIENT_HELLO units queued: pool only */
    int busy;              /* a pool job is in flight */
    int running_inline;    /* yami_kick() is running jobs inline */
    /* Pool side: touched only by the job in flight. */
    yami_partial *partials;
    size_t partial_bytes;
};

/* Process-wide counters read by the status view (loop thread). */
typedef struct yami_stats {
    uint64_t jobs_started, jobs_done; /* pool jobs */
    uint64_t jobs_inline;             /* jobs run on the loop thread */
} yami_stats;

extern yami_stats yami_counters;

/* session is owned by the yami_conn from now on (freed by yami_conn_free). */
void yami_conn_init(yami_conn *y, mk_session *session, size_t buffer_max,
                    yami_result_fn on_result);
/* Free the session, queued operations and reassembly buffers. Only when
 * !yami_busy(y). */
void yami_conn_free(yami_conn *y);
static inline int yami_busy(const yami_conn *y) { return y->busy; }

/* Queue an operation (copying data). Returns 0 or -1 (out of memory). */
MKD_MUST_CHECK int yami_queue(yami_conn *y, int type, uint32_t request_id, unsigned code,
               const uint8_t *data, size_t len);
/* Drop every queued operation (the session failed: nothing more will be
 * sealed). */
void yami_drop_queued(yami_conn *y);
/* Start a job if none is in flight and operations are queued: inline (see
 * above: the owner's callback runs, possibly several times, before this
 * returns) or on the pool. Called from inside the owner's callback for an
 * inline result, it only leaves the operations queued: the outer call picks
 * them up once the callback returns, so results are applied strictly in
 * order and never nest. Returns 0 or a libuv error. */
MKD_MUST_CHECK int yami_kick(uv_loop_t *loop, yami_conn *y);
/* Release what a result holds (requests not taken, output). */
void yami_result_free(yami_result *res);

/* The pool-side step, exposed for unit tests: run ops against y. */
void yami__run(yami_conn *y, yami_op *ops, yami_result *res);

#endif
