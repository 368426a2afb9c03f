/*
 * job.c -- scheduling Yami's work (yami.h): one job per connection at a
 * time, on the libuv pool or inline on the loop thread; and the per-loop
 * yami that holds the inline budget and the counters.
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
 *
 * IMPLEMENTATION NOTE (cheap work does not wait behind RSA work). libuv's
 * pool is one FIFO queue with no priorities (uv_queue_work, 1.44), so a
 * flood of full hellos would put every resumed handshake and every record
 * job behind hundreds of RSA operations. Yami therefore hands libuv at
 * most rsa_slots jobs holding a full hello at once: the pool's threads
 * less one, at least one. The others wait in Yami's own FIFO (held) and
 * the after-work callback of each RSA job starts the next (pump). So at
 * any time at least one thread is free of RSA work, or about to be, and a
 * cheap job queued behind at most rsa_slots RSA jobs in libuv's queue
 * finds it: it waits for cheap work only. A job is an RSA job when it
 * holds a CLIENT_HELLO that is not a well-formed resumption (the same
 * test Yugi's token bucket uses); a resumed hello (two X25519 operations)
 * and record work are cheap. Order within a connection is untouched: a
 * held job is that connection's one job in flight (busy), so nothing of
 * the connection runs before it. Held jobs of connections cancelled while
 * they waited end when their turn comes, without a thread: a flood of
 * hit-and-run hellos drains at the speed of the loop, not of RSA. The
 * price: with two threads, full handshakes get one of them; threads = CPUs
 * + 1 gives RSA every core again.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct yami_job {
    uv_work_t work;
    struct yami_job *next; /* in the held list */
    yami_conn *c;
    yami_op *ops;
    unsigned hellos; /* CLIENT_HELLO units among ops */
    unsigned full;   /* ... of which full: the job takes an RSA slot */
    yami_result res;
} job;

/* The size of libuv's pool, read as libuv 1.44 reads it when it starts
 * the pool (threadpool.c): UV_THREADPOOL_SIZE, at least 1 and at most
 * 1024, else 4. */
static unsigned pool_size(void)
{
    const char *e = getenv("UV_THREADPOOL_SIZE");
    unsigned long n;

    if (e == NULL)
        return 4;
    n = strtoul(e, NULL, 10);
    return n == 0 ? 1 : n > 1024 ? 1024 : (unsigned)n;
}

int yami_new(uv_loop_t *loop, unsigned threads, size_t inline_max, yami **out)
{
    yami *y;
    unsigned n;

    *out = NULL;
    if (threads > 0) {
        /* libuv sizes its pool from the environment, once per process,
         * when the first job is queued. */
        char text[16];
        (void)snprintf(text, sizeof text, "%u", threads);
        if (setenv("UV_THREADPOOL_SIZE", text, 1) != 0)
            return MKD_ERR_SYSTEM;
    }
    if ((y = calloc(1, sizeof *y)) == NULL)
        return MKD_ERR_NOMEM;
    y->loop = loop;
    y->inline_max = inline_max;
    atomic_init(&y->budget, 0);
    atomic_init(&y->partial_total, 0);
    atomic_init(&y->output_total, 0);
    /* One thread is kept from RSA work, so cheap work always finds one;
     * with a single thread, RSA work waits for nothing but itself. */
    n = pool_size();
    y->rsa_slots = n > 1 ? n - 1 : 1;
    *out = y;
    return MKD_OK;
}

void yami_free(yami *y)
{
    free(y);
}

void yami_set_inline_max(yami *y, size_t inline_max)
{
    y->inline_max = inline_max;
}

void yami_get_stats(const yami *y, yami_stats *out)
{
    *out = y->st;
    out->rsa_slots = y->rsa_slots;
    out->rsa_running = y->rsa_running;
    out->rsa_waiting = y->nheld;
    out->budget = atomic_load_explicit(&y->budget, memory_order_relaxed);
    out->partial_bytes =
        atomic_load_explicit(&y->partial_total, memory_order_relaxed);
    out->output_bytes =
        atomic_load_explicit(&y->output_total, memory_order_relaxed);
}

/* --- the global buffer budget -------------------------------------------- */

/* Relaxed atomics throughout: the counters order no other memory, and a
 * check that races with an update is off by one record at most. */

void yami_set_budget(yami *y, size_t max)
{
    atomic_store_explicit(&y->budget, max, memory_order_relaxed);
}

void yami_output_add(yami *y, size_t n)
{
    atomic_fetch_add_explicit(&y->output_total, n, memory_order_relaxed);
}

void yami_output_sub(yami *y, size_t n)
{
    atomic_fetch_sub_explicit(&y->output_total, n, memory_order_relaxed);
}

int yami__budget_take(yami *y, size_t n)
{
    size_t max = atomic_load_explicit(&y->budget, memory_order_relaxed);
    size_t out = atomic_load_explicit(&y->output_total, memory_order_relaxed);
    size_t cur = atomic_load_explicit(&y->partial_total, memory_order_relaxed);

    do {
        if (max != 0 && (out > max || cur > max - out || n > max - out - cur))
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(
        &y->partial_total, &cur, cur + n, memory_order_relaxed,
        memory_order_relaxed));
    return 1;
}

void yami__budget_give(yami *y, size_t n)
{
    atomic_fetch_sub_explicit(&y->partial_total, n, memory_order_relaxed);
}

/* --- pool jobs ----------------------------------------------------------- */

/* The hello counters, as a job is queued and as it ends. */
static void count_queued(yami *y, const job *j)
{
    y->st.jobs_started++;
    y->st.full_queued += j->full;
    if (y->st.full_queued > y->st.full_queued_max)
        y->st.full_queued_max = y->st.full_queued;
}

static void count_done(yami *y, const job *j)
{
    y->st.jobs_done++;
    y->st.full_queued -= j->full;
    y->st.hellos_run += j->res.hellos;
    y->st.hellos_skipped += j->res.hellos_skipped;
    y->st.hellos_orphaned += j->res.hellos_orphaned;
}

static void work_cb(uv_work_t *w)
{
    job *j = w->data;
    yami__run(j->c, j->ops, &j->res);
}

/* The job is over (run, skipped or failed): its result to the owner. */
static void job_finish(job *j)
{
    yami_conn *c = j->c;

    count_done(c->pool, j);
    yami__free_ops(j->ops);
    c->busy = 0;
    c->job_full = 0;
    j->res.full_hellos = j->full;
    c->on_result(c->owner, &j->res);
    yami__result_free(&j->res);
    free(j);
}

static void after_work_cb(uv_work_t *w, int status);

/* Into libuv's pool. MKD_OK or MKD_ERR_LOOP. */
static int job_submit(job *j)
{
    yami *y = j->c->pool;

    if (uv_queue_work(y->loop, &j->work, work_cb, after_work_cb) != 0)
        return MKD_ERR_LOOP;
    if (j->full)
        y->rsa_running++;
    return MKD_OK;
}

static void held_push(yami *y, job *j)
{
    j->next = NULL;
    if (y->held_tail != NULL)
        y->held_tail->next = j;
    else
        y->held = j;
    y->held_tail = j;
    y->nheld++;
}

static job *held_pop(yami *y)
{
    job *j = y->held;

    if (j == NULL)
        return NULL;
    y->held = j->next;
    if (y->held == NULL)
        y->held_tail = NULL;
    y->nheld--;
    return j;
}

/* Fill the free RSA slots with held jobs, oldest first. A held job whose
 * connection was cancelled meanwhile ends here, its hellos skipped: no
 * thread, no RSA work. (Its result may reach an owner that kicks again:
 * that only adds to the held list or takes a free slot, and the loop
 * looks again.) */
static void pump(yami *y)
{
    job *j;

    while (y->rsa_running < y->rsa_slots && (j = held_pop(y)) != NULL) {
        if (yami__cancelled(j->c)) {
            j->res.hellos_skipped = j->hellos;
            job_finish(j);
        } else if (job_submit(j) != MKD_OK) {
            /* uv_queue_work fails only on bad arguments: cannot happen. */
            j->res.err = MK_ERR_USAGE;
            j->res.internal = 1;
            job_finish(j);
        }
    }
}

static void after_work_cb(uv_work_t *w, int status)
{
    job *j = w->data;
    yami *y = j->c->pool;

    (void)status; /* never cancelled: uv_cancel is not used */
    if (j->full) {
        /* The next RSA job starts before this result is applied. */
        y->rsa_running--;
        pump(y);
    }
    job_finish(j);
}

/* --- inline jobs (loop thread) ------------------------------------------ */

/* May what is queued now run inline, given what this call already spent?
 * Only called with no pool job in flight: the session is the loop's to
 * read. */
static int inline_ok(const yami_conn *c, size_t spent_bytes,
                     size_t spent_records)
{
    size_t max = c->pool->inline_max;

    return max != 0 && c->queued_hellos == 0 && c->session != NULL &&
           mk_session_state(c->session) == MK_STATE_ESTABLISHED &&
           spent_bytes <= max && c->queued_bytes <= max - spent_bytes &&
           spent_records <= YAMI_INLINE_RECORDS &&
           c->queued_records <= YAMI_INLINE_RECORDS - spent_records;
}

/* Run queued jobs on the loop thread while inline_ok() holds (it does on
 * entry), applying each result before taking the queue again. */
static void run_inline(yami_conn *c)
{
    size_t spent_bytes = 0, spent_records = 0;

    c->running_inline = 1;
    do {
        yami_result res;
        yami_op *ops;

        spent_bytes += c->queued_bytes;
        spent_records += c->queued_records;
        ops = yami__take_queue(c);
        memset(&res, 0, sizeof res);
        c->pool->st.jobs_inline++;
        yami__run(c, ops, &res);
        yami__free_ops(ops);
        res.ran_inline = 1;
        /* May queue more and kick: that kick only queues (running_inline),
         * and this loop takes it. May close the connection: its owner
         * then drops the queue, which ends the loop. */
        c->on_result(c->owner, &res);
        yami__result_free(&res);
    } while (c->head != NULL && inline_ok(c, spent_bytes, spent_records));
    c->running_inline = 0;
}

int yami_kick(yami_conn *c)
{
    yami *y = c->pool;
    job *j;
    int r;

    if (c->busy || c->running_inline || c->head == NULL)
        return MKD_OK;
    if (inline_ok(c, 0, 0)) {
        run_inline(c);
        /* The rest, if any (over the budget, or not inline work), goes to
         * the pool below: nothing else would pick it up. */
        if (c->head == NULL)
            return MKD_OK;
    }
    if ((j = calloc(1, sizeof *j)) == NULL)
        return MKD_ERR_NOMEM;
    j->work.data = j;
    j->c = c;
    j->ops = c->head;
    j->hellos = (unsigned)c->queued_hellos;
    j->full = (unsigned)c->queued_full;
    /* Behind the held ones, if any: RSA jobs start in arrival order. */
    if (j->full && (y->held != NULL || y->rsa_running >= y->rsa_slots)) {
        held_push(y, j);
    } else if ((r = job_submit(j)) != MKD_OK) {
        free(j);
        return r;
    }
    (void)yami__take_queue(c);
    c->busy = 1;
    c->job_full = j->full;
    count_queued(y, j);
    return MKD_OK;
}
