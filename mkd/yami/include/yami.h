/*
 * yami.h -- Yami: everything a connection's protocol session does, run as
 * jobs on the libuv thread pool, in order per connection.
 *
 * Yami owns each connection's mk_session. Its owner (Yugi) queues
 * operations on a yami_conn (units that arrived, responses to seal, error
 * and close records) and calls yami_kick(). At most one job per connection
 * is in flight: it takes every operation queued so far, runs them in order
 * against the session on a pool thread, and its result (bytes to write,
 * requests that completed, the session's fate) is handed to the owner's
 * callback on the loop thread. A pool thread never calls libuv and never
 * touches anything but the session, the operations and the result of its
 * own job.
 *
 * The owner keeps the yami_conn alive while yami_conn_busy() is true; if
 * the connection closed meanwhile, the owner's callback is still called
 * (with the result) and simply discards it. The owner says so at once
 * (yami_conn_cancel): the pool then skips whatever of the job has not
 * started, a hello's RSA operation above all, so that a peer which sends a
 * hello and hangs up costs no RSA work.
 *
 * Small record jobs run inline. Handing ~2 us of record crypto to a pool
 * thread and back costs more than the crypto itself (two futex wake-ups
 * and context switches per job). So when no job is in flight, the session
 * is established, no CLIENT_HELLO is queued, and what is queued is small
 * (at most the pool's inline_max bytes and YAMI_INLINE_RECORDS records),
 * yami_kick() runs the job on the loop thread and hands the result to the
 * owner's callback before it returns (res->ran_inline set). Handshakes,
 * with their RSA operation, always go to the pool, as does anything
 * larger. The owner must not free the yami_conn from inside that callback,
 * and should drop the queue (yami_drop_queued) when the connection goes
 * away, so that an inline run stops there.
 *
 * Everything here but the jobs' own work runs on the loop thread. Errors
 * are mkd_err codes (mkd_err.h); the session's own failures are reported
 * in the result as an mk_err (megaki.h).
 */
#ifndef YAMI_H
#define YAMI_H

#include "mkd_compiler.h"
#include "mkd_err.h"

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "megaki.h"

/* An inline run (one yami_kick() call, all its rounds) handles at most
 * inline_max bytes and at most this many records; what is left goes to the
 * pool. A record costs ~2 us whatever its size (MAC and cipher set-up), so
 * 16 small records weigh about what one 16 KiB record does (~30 us). */
#define YAMI_INLINE_RECORDS 16

typedef struct yami yami;           /* one per loop: counters, budget */
typedef struct yami_conn yami_conn; /* one per connection: its session */

/* A request whose last record arrived: its whole plaintext body. */
typedef struct yami_request {
    struct yami_request *next;
    uint32_t id;
    size_t len;
    uint8_t *body; /* malloc'd; ownership passes to whoever takes it */
} yami_request;

typedef struct yami_result {
    uint8_t *out; /* wire bytes to write, in order (malloc'd) */
    size_t out_len, out_cap;
    yami_request *requests; /* completed requests, in arrival order */
    int err;                /* first mk_err the session failed with, or 0 */
    int internal;           /* the failure was ours (memory), not the peer's */
    int established;        /* the handshake completed in this job */
    int resumed;
    int hello_retry;          /* a HELLO_RETRY went out */
    unsigned hellos;          /* CLIENT_HELLO units handled */
    unsigned hellos_skipped;  /* ... not handled: the conn was cancelled */
    unsigned hellos_orphaned; /* handled, but cancelled meanwhile */
    /* CLIENT_HELLOs of this job that may need the RSA key (not a
     * well-formed resumption), all done with now: handled, skipped, or
     * dropped after the session failed. */
    unsigned full_hellos;
    int peer_closed;         /* the peer's close record arrived */
    int close_sent;          /* our close record was sealed */
    unsigned responses;      /* responses and error records sealed */
    unsigned aborted;        /* requests refused for a buffer cap */
    unsigned aborted_budget; /* ... of which for the global budget */
    /* Those requests (as memory allowed: for the access log), in order:
     * id, and len the body bytes received before the refusal; body NULL. */
    yami_request *refused;
    /* When the oldest request still being received after this job had its
     * first record queued (the loop's clock, uv_now); 0: none. */
    uint64_t partial_since_ms;
    uint8_t session_id[MK_SESSION_ID_LEN];
    uint8_t key_id[MK_KEY_ID_LEN]; /* established: the session's server key */
    uint32_t max_message; /* established: the limit announced to the peer */
    int ran_inline;       /* ran on the loop thread inside yami_kick() */
} yami_result;

/* The owner's callback for each result (owner as given to yami_conn_new).
 * The result is Yami's: take res->out or a request's body by setting the
 * pointer to NULL; the rest is freed after the callback returns. */
typedef void (*yami_result_fn)(void *owner, yami_result *res);

typedef struct yami_stats {
    uint64_t jobs_started, jobs_done; /* pool jobs */
    uint64_t jobs_inline;             /* jobs run on the loop thread */
    /* Full hellos (RSA work) in pool jobs not done yet (a gauge) and the
     * most there ever were at once. */
    uint64_t full_queued, full_queued_max;
    uint64_t hellos_run;      /* handled (each a handshake's crypto) */
    uint64_t hellos_skipped;  /* never handled: their conn was cancelled */
    uint64_t hellos_orphaned; /* cancelled while they ran */
    /* Jobs with a full hello (RSA work): how many may be on the pool at
     * once, how many are, and how many wait in Yami for a slot. */
    unsigned rsa_slots, rsa_running, rsa_waiting;
    /* The global buffer budget (yami_set_budget) and what counts against
     * it now. */
    size_t budget, partial_bytes, output_bytes;
} yami_stats;

/* The Yami of one loop. threads sizes libuv's pool (UV_THREADPOOL_SIZE,
 * read once per process when the pool first starts; 0 leaves libuv's
 * choice). Jobs with a full hello take at most all of its threads but one
 * (at least one): the last is kept for cheap work (job.c). inline_max:
 * the option inline_crypto_max (0: every job on the pool). MKD_OK,
 * MKD_ERR_NOMEM or MKD_ERR_SYSTEM. */
MKD_MUST_CHECK int yami_new(uv_loop_t *loop, unsigned threads,
                            size_t inline_max, yami **out);
/* Only once no connection of it is busy. NULL: nothing. */
void yami_free(yami *y);
/* A reload: applies from the next kick of every connection. */
void yami_set_inline_max(yami *y, size_t inline_max);
void yami_get_stats(const yami *y, yami_stats *out);
/* The global budget (the option buffer_budget; 0: none) for the request
 * bytes being reassembled on all connections together plus the bytes the
 * owner has queued to be written (yami_output_add). A request whose next
 * record would take the total past it is refused with "overloaded", as one
 * past its connection's buffer_max is: the session goes on. Applies from
 * the next record. */
void yami_set_budget(yami *y, size_t max);
/* Bytes the owner queued to be written, and wrote or dropped: they count
 * against the budget meanwhile. */
void yami_output_add(yami *y, size_t n);
void yami_output_sub(yami *y, size_t n);

/* A connection's session, server side, on scfg (a reference is taken).
 * buffer_max caps the request bytes being reassembled (a request past it
 * is refused with "overloaded" and the session goes on). MKD_OK,
 * MKD_ERR_NOMEM or MKD_ERR_CRYPTO. */
MKD_MUST_CHECK int yami_conn_new(yami *y, mk_server_config *scfg,
                                 size_t buffer_max, yami_result_fn cb,
                                 void *owner, yami_conn **out);
/* Free the session, queued operations and reassembly buffers. Only when
 * !yami_conn_busy(c). NULL: nothing. */
void yami_conn_free(yami_conn *c);
/* A pool job is in flight. */
int yami_conn_busy(const yami_conn *c);
/* Operations are queued that no job has taken yet. */
int yami_conn_pending(const yami_conn *c);
/* Bytes queued and not yet taken by a job (for read backpressure). */
size_t yami_conn_queued_bytes(const yami_conn *c);

/* Queue an operation (data is copied). MKD_OK or MKD_ERR_NOMEM. */
MKD_MUST_CHECK int yami_queue_units(yami_conn *c, const uint8_t *units,
                                    size_t len);
MKD_MUST_CHECK int yami_queue_response(yami_conn *c, uint32_t request_id,
                                       const uint8_t *body, size_t len);
/* code: an MK_ECODE_* for the error record; text at most
 * MK_ERROR_TEXT_MAX bytes are sent. */
MKD_MUST_CHECK int yami_queue_error(yami_conn *c, uint32_t request_id,
                                    unsigned code, const char *text);
MKD_MUST_CHECK int yami_queue_close(yami_conn *c);
/* Drop every queued operation (the session failed, or the connection
 * closed: nothing more will be sealed). */
void yami_drop_queued(yami_conn *c);
/* The connection is gone: drop what is queued, and let the job in flight
 * (if any) skip every unit it has not started, so no hello of a closed
 * connection costs an RSA operation. The job's result still comes, with
 * the hellos it skipped in hellos_skipped. Returns the full hellos of the
 * job in flight (0 if none): its result reports them in full_hellos,
 * which keeps the owner's count of handshakes in progress exact. */
unsigned yami_conn_cancel(yami_conn *c);
/* Start a job if none is in flight and operations are queued: inline (see
 * above: the owner's callback runs, possibly several times, before this
 * returns) or on the pool. Called from inside the owner's callback for an
 * inline result, it only leaves the operations queued: the outer call
 * picks them up once the callback returns, so results are applied strictly
 * in order and never nest. MKD_OK, MKD_ERR_NOMEM or MKD_ERR_LOOP. */
MKD_MUST_CHECK int yami_kick(yami_conn *c);

#endif
