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
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct job {
    uv_work_t work;
    yami_conn *c;
    yami_op *ops;
    unsigned hellos; /* CLIENT_HELLO units among ops */
    yami_result res;
} job;

int yami_new(uv_loop_t *loop, unsigned threads, size_t inline_max, yami **out)
{
    yami *y;

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
}

/* --- pool jobs ----------------------------------------------------------- */

/* The hello counters, as a job is queued and as it ends. */
static void count_queued(yami *y, const job *j)
{
    y->st.jobs_started++;
    y->st.hellos_queued += j->hellos;
    if (y->st.hellos_queued > y->st.hellos_queued_max)
        y->st.hellos_queued_max = y->st.hellos_queued;
}

static void count_done(yami *y, const job *j)
{
    y->st.jobs_done++;
    y->st.hellos_queued -= j->hellos;
    y->st.hellos_run += j->res.hellos;
    y->st.hellos_skipped += j->res.hellos_skipped;
    y->st.hellos_orphaned += j->res.hellos_orphaned;
}

static void work_cb(uv_work_t *w)
{
    job *j = w->data;
    yami__run(j->c, j->ops, &j->res);
}

static void after_work_cb(uv_work_t *w, int status)
{
    job *j = w->data;
    yami_conn *c = j->c;

    (void)status; /* never cancelled: uv_cancel is not used */
    count_done(c->pool, j);
    yami__free_ops(j->ops);
    c->busy = 0;
    c->job_hellos = 0;
    c->on_result(c->owner, &j->res);
    yami__result_free(&j->res);
    free(j);
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
    job *j;

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
    if (uv_queue_work(c->pool->loop, &j->work, work_cb, after_work_cb) != 0) {
        free(j);
        return MKD_ERR_LOOP;
    }
    (void)yami__take_queue(c);
    c->busy = 1;
    c->job_hellos = j->hellos;
    count_queued(c->pool, j);
    return MKD_OK;
}
