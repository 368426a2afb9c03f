/*
 * internal.h -- Pegasus' shared internals: the pool, its workers and the
 * requests, split over three files:
 *
 *   pool.c       the mkd_backend face: submit, cancel, the queue, dispatch,
 *                answers, reload, drain, status, free;
 *   worker.c     one worker process: spawn, its state machine, the frame
 *                I/O on its channel, its output into the log, timeouts;
 *   supervise.c  the pool's shape over time: how many workers to run,
 *                spawn backoff, crash-loop detection, recycling, shrinking,
 *                retiring a reloaded generation, the end of a drain.
 *
 * Everything runs on the loop thread. Non-static functions shared between
 * the files carry the pegasus__ prefix.
 */
#ifndef PEGASUS_INTERNAL_H
#define PEGASUS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <uv.h>

#include "pegasus_ipc.h"
#include "mkd_util.h"
#include "pegasus.h"

/*
 * A worker's life (the table in worker.c lists every allowed transition):
 *
 *   STARTING --HELLO--> IDLE --request--> BUSY --answer--> IDLE
 *       |                 |                 |  \--retire--> DRAINING
 *       |                 |                 |                  |answer
 *       +-----------------+-----------------+------------------+
 *                         v  (stop: SHUTDOWN frame or SIGKILL)
 *                      STOPPING --exited, handles closed--> DEAD
 *
 * DRAINING is "busy, and stops after this request" (a reload or a drain
 * caught it mid-request). Only IDLE workers get requests; only BUSY and
 * DRAINING workers hold one.
 */
enum pegasus_wstate {
    PEGASUS_W_STARTING = 0,
    PEGASUS_W_IDLE,
    PEGASUS_W_BUSY,
    PEGASUS_W_DRAINING,
    PEGASUS_W_STOPPING,
    PEGASUS_W_DEAD,
    PEGASUS_W_NSTATES
};

typedef struct pegasus pegasus;
typedef struct pegasus__worker pegasus__worker;

typedef struct pegasus__req {
    struct pegasus__req *prev, *next; /* queue links */
    pegasus *pool;
    pegasus__worker *worker; /* while dispatched */
    mkd_request_ctx ctx;
    uint8_t *body;
    size_t len;
    mkd_backend_done_fn done;
    void *token;
    uint64_t tag;         /* random: a worker cannot tell one coming */
    uint32_t max_message; /* its answer's limit: the pool's max_message
                               when taken, or less if its session was
                               told less (ctx.max_response) */
    uint64_t queued_at;   /* uv_now at submit */
    uint64_t queued_ns;   /* uv_hrtime at submit, and when sent to a */
    uint64_t sent_ns;     /* worker (0: never): its timing */
    int pid;              /* the worker it was sent to */
    unsigned attempts;    /* dispatches (a failed write retries) */
    int cancelled;        /* done must not be called */
    int answered;
    /* The owner (queue or worker) holds one reference, an unfinished
     * write of the frame another: the body must outlive both. */
    int refs;
    uv_write_t wr;
    uint8_t head[PEGASUS_IPC_REQ_HEAD_MAX];
} pegasus__req;

struct pegasus__worker {
    pegasus__worker *prev, *next; /* pool's list of all workers */
    pegasus *pool;
    unsigned slot; /* the "w<slot>" of logs and status */
    unsigned gen;  /* pool generation it was spawned in */
    enum pegasus_wstate state;
    uv_process_t proc;
    uv_pipe_t ipc;    /* the protocol channel (fd 3) */
    uv_pipe_t out;    /* stdout + stderr, merged */
    uv_timer_t timer; /* start/request/stop/linger */
    int open_handles; /* closes pending before DEAD */
    int pid;
    int spawned;  /* the process runs (or ran) */
    int launched; /* by the pool's launcher: no proc handle; its exit
                     comes from the launcher */
    int ready;    /* said HELLO */
    int exited;
    int64_t exit_status;
    int term_signal;
    int ipc_eof, out_eof;
    int killed; /* SIGKILL sent */
    int shutdown_sent;
    int exiting; /* it announced its own exit */
    int recycle; /* soft limit reached; stop when a
                                         recycle slot is free */
    const char *stop_reason;
    pegasus__req *req;  /* BUSY/DRAINING: the request */
    uint64_t last_conn; /* conn id of the last request, for
                                         output that trails its answer */
    uint64_t served;
    uint64_t spawned_at, idle_since; /* uv_now */
    uint32_t max_message;            /* its --max-message */
    uint64_t max_requests;           /* jittered limits, 0 = none */
    uint64_t max_lifetime_ms;
    uint64_t rss_kib; /* last reading */
    uint8_t *rx;      /* frame reassembly */
    size_t rx_len, rx_cap;
    size_t rx_need;  /* size of the frame being read, once
                                         its header is in (0: unknown) */
    size_t rx_fence; /* bytes at the head of rx that were in
                                         before the request was sent: no
                                         answer to it can start there */
    char line[1024]; /* output line being assembled */
    size_t line_len;
    int line_split; /* the last piece logged was cut: the next one */
    int line_level; /* continues that line, at this level */
    uv_write_t shut_wr;
    uint8_t shut_frame[PEGASUS_IPC_HEADER];
};

typedef struct pegasus__slot {
    pegasus__worker *w;
    uint64_t restarts; /* workers after the first */
    int used;          /* ever had a worker */
    char last_exit[32];
} pegasus__slot;

#define PEGASUS_FAIL_RING 32

/* The pool's own copies of its configuration's strings (a reload
 * replaces them all at once). */
typedef struct pegasus__strings {
    char *php, *arcangelo, *app;
    char **php_ini, **php_admin, **env;
} pegasus__strings;

struct pegasus {
    mkd_backend base;
    uv_loop_t *loop;
    pegasus_config cfg;   /* its strings are str's */
    pegasus__strings str; /* ours */
    char max_message_arg[32];

    pegasus__req *qhead, *qtail;
    size_t queued;
    pegasus__worker *workers; /* every worker not yet freed */
    pegasus__slot *slots;
    unsigned nslots;
    unsigned gen;
    uint64_t rng; /* jitter only, not security */

    uv_timer_t kick;        /* deferred maintenance (0 ms) */
    uv_timer_t tick;        /* periodic supervision */
    uv_timer_t spawn_timer; /* backoff / crash-loop pause end */
    uv_timer_t queue_timer; /* head-of-queue deadline */
    int open_handles;

    /* spawn gating */
    unsigned start_streak; /* start failures since a HELLO */
    uint64_t fail_at[PEGASUS_FAIL_RING];
    unsigned fail_n; /* entries used in fail_at (ring) */
    unsigned fail_pos;
    uint64_t next_spawn_at;
    uint64_t paused_until;
    int crash_loop;         /* in a crash loop until an answer */
    int fail_queue_pending; /* crash loop: fail the queue in the
                                         next maintenance pass */
    unsigned recycle_owed;  /* workers stopped for recycling
                                         whose replacement maintenance has
                                         not spawned yet */

    int draining, freeing;
    void (*drain_cb)(void *);
    void *drain_arg;

    /* counters for the status block */
    uint64_t submitted, answered, app_errors, timeouts, crashes, start_failures,
        overloaded, queue_timeouts, recycled, spawned, reloads, cancelled,
        protocol_errors;
};

/* pool.c */
/* Answer r (unless already answered; done is skipped if cancelled) and
 * drop the owner's reference. status 0 = body is the response. */
void pegasus__answer(pegasus *p, pegasus__req *r, mkd_backend_status status,
                     const uint8_t *body, size_t len, const char *text);
void pegasus__req_unref(pegasus__req *r);
/* Put a request back at the head of the queue (its worker could not take
 * it, so it never ran). */
void pegasus__requeue(pegasus *p, pegasus__req *r);
/* Hand queued requests to idle workers. */
void pegasus__dispatch(pegasus *p);
/* Answer every queued request with an error (crash loop, free). */
void pegasus__fail_queue(pegasus *p, mkd_backend_status status,
                         const char *text);
void pegasus__handle_closed(pegasus *p);

/* worker.c */
const char *pegasus__state_name(enum pegasus_wstate s);
/* Spawn one worker in the current generation. MKD_OK (also when the
 * process runs but cannot be watched: it is killed, and its exit counts as
 * a start failure); MKD_ERR_STATE when every slot is taken (workers still
 * stopping); MKD_ERR_NOMEM or MKD_ERR_LOOP; MKD_ERR_CONFIG when the
 * application cannot be resolved. Failures of the start itself have been
 * recorded as start failures. */
int pegasus__worker_spawn(pegasus *p);
/* Send r to the IDLE worker w. */
void pegasus__worker_send(pegasus__worker *w, pegasus__req *r);
/* Stop w: graceful sends SHUTDOWN when it is idle or starting, else it is
 * killed. A BUSY worker becomes DRAINING and stops after its answer. */
void pegasus__worker_stop(pegasus__worker *w, int graceful, const char *reason);
/* A worker the launcher started has ended (the launcher's exited
 * callback; arg is the pool). */
void pegasus__launched_exit(void *arg, int pid, int64_t status, int sig);
/* SIGKILL the worker's process group (free, timeouts). */
void pegasus__worker_kill(pegasus__worker *w);
/* Resident set size in KiB from /proc/PID/statm; 0 if unknown. */
uint64_t pegasus__rss_kib(int pid);

/* supervise.c */
/* Schedule maintenance on the next loop iteration (coalesced). */
void pegasus__kick(pegasus *p);
void pegasus__maintain(pegasus *p);
/* Events the supervisor counts: an unexpected end of a worker (not
 * stopped by us, not announced by it), a HELLO, an answer. */
void pegasus__on_death(pegasus *p, pegasus__worker *w);
void pegasus__on_ready(pegasus *p, pegasus__worker *w);
void pegasus__on_served(pegasus *p);
/* After an answer: a worker at a soft limit is marked (w->recycle) and
 * stopped if a recycle may start now. 1 when it was stopped. */
int pegasus__recycle(pegasus *p, pegasus__worker *w);
/* Recycles in progress, which the recycle cap bounds: workers stopped for
 * recycling whose replacement is not spawned yet, and workers starting.
 * The status block shows it so that the bound can be watched. */
unsigned pegasus__restarting(pegasus *p);
/* After an answer: should this worker of an older generation (a reload)
 * retire now, the current generation covering the load without it? */
int pegasus__want_retire(pegasus *p, pegasus__worker *w);
uint64_t pegasus__jitter(pegasus *p, uint64_t value);
void pegasus__tick_cb(uv_timer_t *t);
void pegasus__spawn_timer_cb(uv_timer_t *t);
/* Live counts. */
unsigned pegasus__count(pegasus *p, int current_gen, unsigned state_mask);
#define PEGASUS_MASK(s) (1u << (s))

#endif /* PEGASUS_INTERNAL_H */
