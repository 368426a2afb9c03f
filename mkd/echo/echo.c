/*
 * echo.c -- see echo.h.
 *
 * Answers are deferred (a uv_timer, due after echo_delay_ms, 0 by default)
 * rather than given inside submit(): the backend contract lets a caller
 * assume that done() never runs re-entrantly from submit(), as it cannot
 * with Pegasus. The delay simulates a slow application for tests of
 * shutdown and of requests in flight.
 */
#include "echo.h"

#include <stdlib.h>
#include <string.h>

#include "mkd_util.h"

typedef struct echo_req {
    struct echo_req *next;
    void *token;
    mkd_backend_done_fn done;
    uint8_t *body;
    size_t len;
    uint64_t due;
    uint64_t submitted_ns; /* uv_hrtime, for its timing */
    int cancelled;
} echo_req;

typedef struct echo {
    mkd_backend base;
    uv_timer_t timer;
    uint32_t delay_ms;
    echo_req *head, *tail;
    size_t queued;
    uint64_t answered, cancelled, reloads;
    int draining;
    void (*drained)(void *);
    void *drained_arg;
    int closing;
} echo;

static void on_timer(uv_timer_t *h);

/* Echo runs no worker: the request's whole time is its run. */
static void timing_of(const echo_req *r, mkd_backend_timing *t)
{
    t->queue_us = 0;
    t->run_us = (uv_hrtime() - r->submitted_ns) / 1000u;
    t->worker_pid = 0;
}

static void req_free(echo_req *r)
{
    mkd_wipe(r->body, r->len);
    free(r->body);
    free(r);
}

static void check_drained(echo *e)
{
    if (e->draining && e->head == NULL && e->drained != NULL) {
        void (*fn)(void *) = e->drained;
        e->drained = NULL;
        fn(e->drained_arg);
    }
}

static void echo_arm(echo *e)
{
    uint64_t now = uv_now(e->timer.loop);

    if (e->head == NULL) {
        (void)uv_timer_stop(&e->timer);
        return;
    }
    /* Requests share one delay, so the queue is in due order. */
    (void)uv_timer_start(&e->timer, on_timer,
                         e->head->due > now ? e->head->due - now : 0, 0);
}

static void on_timer(uv_timer_t *h)
{
    echo *e = h->data;
    uint64_t now = uv_now(h->loop);

    /* Answer what is due; answers may queue new requests (a pipelining
     * client), which are due later and wait for the next pass. */
    while (e->head != NULL && e->head->due <= now) {
        echo_req *r = e->head;
        mkd_backend_timing tm;
        e->head = r->next;
        if (e->head == NULL)
            e->tail = NULL;
        e->queued--;
        if (!r->cancelled) {
            e->answered++;
            timing_of(r, &tm);
            r->done(r->token, MKD_BACKEND_OK, r->body, r->len, NULL, &tm);
        } else {
            e->cancelled++;
        }
        req_free(r);
    }
    echo_arm(e);
    check_drained(e);
}

static mkd_backend_status echo_submit(mkd_backend *b,
                                      const mkd_request_ctx *ctx, uint8_t *body,
                                      size_t len, mkd_backend_done_fn done,
                                      void *token)
{
    echo *e = (echo *)b;
    echo_req *r;

    (void)ctx;
    if (e->draining || (r = calloc(1, sizeof *r)) == NULL) {
        mkd_wipe(body, len);
        free(body);
        return e->draining ? MKD_BACKEND_SHUTDOWN : MKD_BACKEND_INTERNAL;
    }
    r->token = token;
    r->done = done;
    r->body = body;
    r->len = len;
    if (e->tail != NULL)
        e->tail->next = r;
    else
        e->head = r;
    e->tail = r;
    e->queued++;
    r->due = uv_now(e->timer.loop) + e->delay_ms;
    r->submitted_ns = uv_hrtime();
    if (e->head == r)
        echo_arm(e);
    return MKD_BACKEND_OK;
}

static void echo_cancel(mkd_backend *b, void *token)
{
    echo *e = (echo *)b;
    for (echo_req *r = e->head; r != NULL; r = r->next)
        if (r->token == token)
            r->cancelled = 1;
}

static void echo_reload(mkd_backend *b)
{
    ((echo *)b)->reloads++; /* nothing to reload: no code, no config */
}

static void echo_drain(mkd_backend *b, void (*done)(void *), void *arg)
{
    echo *e = (echo *)b;
    e->draining = 1;
    e->drained = done;
    e->drained_arg = arg;
    check_drained(e);
}

static size_t echo_status(mkd_backend *b, char *buf, size_t cap)
{
    echo *e = (echo *)b;
    mkd_text t;

    mkd_text_init(&t, buf, cap);
    mkd_text_put(&t,
                 "backend echo\nbackend.queued %zu\nbackend.answered %llu\n"
                 "backend.cancelled %llu\nbackend.reloads %llu\n",
                 e->queued, (unsigned long long)e->answered,
                 (unsigned long long)e->cancelled,
                 (unsigned long long)e->reloads);
    return t.len;
}

static void echo_stats(mkd_backend *b, mkd_backend_stats *out)
{
    echo *e = (echo *)b;

    out->queued = e->queued;
    out->answered = e->answered;
    out->cancelled = e->cancelled;
    out->reloads = e->reloads;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Anything still queued is answered "shutdown" (backend.h: free). Each
 * request leaves the list before its done() runs: a done() that closes its
 * connection cancels that connection's other requests, and the cancel
 * must find them still listed. */
static void echo_free(mkd_backend *b)
{
    echo *e = (echo *)b;
    echo_req *r;
    mkd_backend_timing tm;

    e->draining = 1; /* a done() that submits again is refused */
    while ((r = e->head) != NULL) {
        e->head = r->next;
        if (e->head == NULL)
            e->tail = NULL;
        e->queued--;
        if (!r->cancelled) {
            e->answered++;
            timing_of(r, &tm);
            r->done(r->token, MKD_BACKEND_SHUTDOWN, NULL, 0,
                    "server shutting down", &tm);
        }
        req_free(r);
    }
    uv_close((uv_handle_t *)&e->timer, on_closed);
}

static const mkd_backend_ops echo_ops = {
    .name = "echo",
    .submit = echo_submit,
    .cancel = echo_cancel,
    .reload = echo_reload,
    .drain = echo_drain,
    .status = echo_status,
    .stats = echo_stats,
    .free = echo_free,
};

int mkd_echo_new(uv_loop_t *loop, uint32_t delay_ms, mkd_backend **out)
{
    echo *e = calloc(1, sizeof *e);

    *out = NULL;
    if (e == NULL)
        return MKD_ERR_NOMEM;
    if (uv_timer_init(loop, &e->timer) != 0) {
        free(e);
        return MKD_ERR_LOOP;
    }
    e->timer.data = e;
    e->delay_ms = delay_ms;
    e->base.ops = &echo_ops;
    *out = &e->base;
    return MKD_OK;
}
