/*
 * pool.c -- Pegasus as an mkd_backend: submit, cancel, the bounded queue,
 * dispatch to idle workers, answers, reload, drain, status, free.
 *
 * A request has one owner at a time: the queue, or the worker running it
 * (w->req). Whoever answers it takes it from its owner first, and
 * pegasus__answer marks it answered, so a second answer is refused (and
 * logged as a bug) instead of reaching the client.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mkd_log.h"
#include "internal.h"
#include "mkd_util.h"

/* ------------------------------------------------------------------ */
/* Requests and the queue                                              */

void pegasus__req_unref(pegasus__req *r)
{
    if (--r->refs > 0)
        return;
    if (r->body != NULL) {
        mkd_wipe(r->body, r->len); /* a decrypted request */
        free(r->body);
    }
    free(r);
}

static void q_remove(pegasus *p, pegasus__req *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        p->qhead = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        p->qtail = r->prev;
    r->prev = r->next = NULL;
    p->queued--;
}

static void q_push_tail(pegasus *p, pegasus__req *r)
{
    r->next = NULL;
    r->prev = p->qtail;
    if (p->qtail != NULL)
        p->qtail->next = r;
    else
        p->qhead = r;
    p->qtail = r;
    p->queued++;
}

static void on_queue_timer(uv_timer_t *t);

static uint64_t queue_timeout(const pegasus *p)
{
    return p->cfg.queue_timeout_ms ? p->cfg.queue_timeout_ms
                                   : p->cfg.request_timeout_ms;
}

/* Keep the queue timer on the head's deadline (the queue is FIFO and
 * every request waits at most the same time, so the head expires first). */
static void arm_queue_timer(pegasus *p)
{
    uint64_t now, due;

    if (p->freeing || uv_is_closing((uv_handle_t *)&p->queue_timer))
        return;
    if (p->qhead == NULL) {
        (void)uv_timer_stop(&p->queue_timer); /* cannot fail */
        return;
    }
    now = uv_now(p->loop);
    due = p->qhead->queued_at + queue_timeout(p);
    if (uv_timer_start(&p->queue_timer, on_queue_timer,
                       due > now ? due - now : 0, 0) != 0)
        mkd_error(0, "pegasus: cannot arm the queue timer");
}

static void on_queue_timer(uv_timer_t *t)
{
    pegasus *p = t->data;
    uint64_t now = uv_now(p->loop);
    unsigned n = 0;

    while (p->qhead != NULL && p->qhead->queued_at + queue_timeout(p) <= now) {
        pegasus__req *r = p->qhead;
        q_remove(p, r);
        p->queue_timeouts++;
        n++;
        pegasus__answer(p, r, MKD_BACKEND_OVERLOADED, NULL, 0,
                        "no worker became free in time");
    }
    if (n > 0)
        mkd_warn(
            0, "pegasus: %u request(s) waited over %" PRIu64 " ms for a worker",
            n, queue_timeout(p));
    arm_queue_timer(p);
}

/* How r ran, for the access log: queued until a worker took it, then run
 * there until now. */
static void req_timing(const pegasus__req *r, mkd_backend_timing *t)
{
    uint64_t now = uv_hrtime(), sent = r->sent_ns ? r->sent_ns : now;

    t->queue_us = (sent - r->queued_ns) / 1000u;
    t->run_us = (now - sent) / 1000u;
    t->worker_pid = r->sent_ns ? r->pid : 0;
}

void pegasus__answer(pegasus *p, pegasus__req *r, mkd_backend_status status,
                     const uint8_t *body, size_t len, const char *text)
{
    mkd_backend_timing t;

    if (r->answered) {
        mkd_error(r->ctx.conn_id,
                  "pegasus: bug: request %" PRIu32
                  " answered twice; second answer dropped",
                  r->ctx.request_id);
        return;
    }
    r->answered = 1;
    p->answered++;
    if (!r->cancelled) {
        req_timing(r, &t);
        r->done(r->token, status, body, len, text, &t);
    }
    pegasus__req_unref(r); /* the owner's reference */
}

void pegasus__requeue(pegasus *p, pegasus__req *r)
{
    /* Back at the head: it has waited longest. */
    r->prev = NULL;
    r->next = p->qhead;
    if (p->qhead != NULL)
        p->qhead->prev = r;
    else
        p->qtail = r;
    p->qhead = r;
    p->queued++;
    arm_queue_timer(p);
    pegasus__kick(p);
}

void pegasus__fail_queue(pegasus *p, mkd_backend_status status,
                         const char *text)
{
    while (p->qhead != NULL) {
        pegasus__req *r = p->qhead;
        q_remove(p, r);
        pegasus__answer(p, r, status, NULL, 0, text);
    }
    arm_queue_timer(p);
}

/* The idle worker to use for a request of len bytes: the current
 * generation first (a reload's old workers only fill in), then the most
 * recently idle one, so that load concentrates and surplus workers reach
 * their idle timeout; one waiting to be recycled comes last. A worker
 * started with a smaller max_message than the request (a reload raised it)
 * would take it for a protocol error: the request waits for another. */
static pegasus__worker *pick_idle(pegasus *p, size_t len)
{
    pegasus__worker *best = NULL;

    for (pegasus__worker *w = p->workers; w != NULL; w = w->next) {
        /* An idle worker whose exit or EOF is in but not yet settled
         * (finalize waits for the rest of its output) is not one. */
        if (w->state != PEGASUS_W_IDLE || w->exited || w->ipc_eof ||
            w->max_message < len)
            continue;
        if (best == NULL) {
            best = w;
            continue;
        }
        int wc = w->gen == p->gen, bc = best->gen == p->gen;
        if (wc != bc) {
            if (wc)
                best = w;
            continue;
        }
        if (w->recycle != best->recycle) {
            if (!w->recycle)
                best = w;
            continue;
        }
        if (w->idle_since > best->idle_since)
            best = w;
    }
    return best;
}

void pegasus__dispatch(pegasus *p)
{
    pegasus__worker *w;

    if (p->freeing)
        return;
    while (p->qhead != NULL && (w = pick_idle(p, p->qhead->len)) != NULL) {
        pegasus__req *r = p->qhead;
        q_remove(p, r);
        pegasus__worker_send(w, r);
    }
    arm_queue_timer(p);
}

/* ------------------------------------------------------------------ */
/* Backend operations                                                  */

/* Why submit() refuses a request at once, or MKD_BACKEND_OK. */
static mkd_backend_status refusal(pegasus *p, size_t len)
{
    if (p->draining || p->freeing)
        return MKD_BACKEND_SHUTDOWN;
    if (len > p->cfg.max_message)
        return MKD_BACKEND_TOO_LARGE;
    /* A crash loop with nobody able to serve: say so now rather than let
     * the request wait out the queue timeout. */
    if (p->crash_loop && uv_now(p->loop) < p->paused_until &&
        pegasus__count(p, 0,
                       PEGASUS_MASK(PEGASUS_W_IDLE) |
                           PEGASUS_MASK(PEGASUS_W_BUSY) |
                           PEGASUS_MASK(PEGASUS_W_DRAINING)) == 0) {
        p->overloaded++;
        return MKD_BACKEND_OVERLOADED;
    }
    return MKD_BACKEND_OK;
}

static pegasus__req *req_new(pegasus *p, const mkd_request_ctx *ctx,
                             uint8_t *body, size_t len,
                             mkd_backend_done_fn done, void *token)
{
    pegasus__req *r = calloc(1, sizeof *r);

    if (r == NULL)
        return NULL;
    /* The tag is what a worker's answer is matched by: drawn afresh for
     * every request so that a worker cannot write the answer to a request
     * before it has been sent (a counter would tell it the next one). */
    if (uv_random(NULL, NULL, &r->tag, sizeof r->tag, 0, NULL) != 0) {
        mkd_error(ctx->conn_id, "pegasus: no randomness for a request tag");
        free(r);
        return NULL;
    }
    r->pool = p;
    r->ctx = *ctx;
    r->body = body;
    r->len = len;
    r->done = done;
    r->token = token;
    /* The pool's limit, or the session's when that is smaller: a
     * connection from before a reload that raised it was told less. */
    r->max_message = p->cfg.max_message;
    if (ctx->max_response != 0 && ctx->max_response < r->max_message)
        r->max_message = ctx->max_response;
    r->queued_at = uv_now(p->loop);
    r->queued_ns = uv_hrtime();
    r->refs = 1;
    return r;
}

/* r is still waiting at the tail, and over the bound: refuse it (done is
 * not called; the caller answers "overloaded" at once). */
static int over_bound(pegasus *p, pegasus__req *r)
{
    if (p->qtail != r || p->queued <= p->cfg.queue_max)
        return 0;
    q_remove(p, r);
    r->answered = 1;
    pegasus__req_unref(r);
    p->overloaded++;
    arm_queue_timer(p);
    return 1;
}

static mkd_backend_status pg_submit(mkd_backend *b, const mkd_request_ctx *ctx,
                                    uint8_t *body, size_t len,
                                    mkd_backend_done_fn done, void *token)
{
    pegasus *p = (pegasus *)b;
    pegasus__req *r;
    mkd_backend_status ret;

    if ((ret = refusal(p, len)) != MKD_BACKEND_OK)
        goto out;
    if ((r = req_new(p, ctx, body, len, done, token)) == NULL) {
        ret = MKD_BACKEND_INTERNAL;
        goto out;
    }
    body = NULL; /* owned by r now */
    q_push_tail(p, r);
    pegasus__dispatch(p);
    if (over_bound(p, r)) {
        ret = MKD_BACKEND_OVERLOADED;
        goto out;
    }
    p->submitted++;
    if (p->queued > 0)
        pegasus__kick(p); /* maybe grow the pool */

out:
    if (body != NULL) {
        mkd_wipe(body, len);
        free(body);
    }
    return ret;
}

static void pg_cancel(mkd_backend *b, void *token)
{
    pegasus *p = (pegasus *)b;
    pegasus__req *r = p->qhead;

    while (r != NULL) {
        pegasus__req *next = r->next;
        if (r->token == token) {
            q_remove(p, r);
            r->cancelled = 1;
            r->answered = 1;
            p->cancelled++;
            pegasus__req_unref(r);
        }
        r = next;
    }
    /* A request already with a worker runs to its end; only its answer is
     * dropped (killing the worker would cost more than the answer). */
    for (pegasus__worker *w = p->workers; w != NULL; w = w->next) {
        if (w->req != NULL && w->req->token == token && !w->req->cancelled) {
            w->req->cancelled = 1;
            p->cancelled++;
        }
    }
    arm_queue_timer(p);
}

static void pg_reload(mkd_backend *b)
{
    pegasus *p = (pegasus *)b;

    if (p->draining || p->freeing)
        return;
    p->gen++;
    p->reloads++;
    /* The operator changed something: give the application a fresh chance
     * instead of waiting out a crash-loop pause. */
    p->crash_loop = 0;
    p->paused_until = 0;
    p->start_streak = 0;
    p->next_spawn_at = 0;
    p->fail_n = 0;
    p->fail_pos = 0;
    mkd_info(0,
             "pegasus: reload: starting generation %u; the previous "
             "one retires as the new workers become ready",
             p->gen);
    for (pegasus__worker *w = p->workers; w != NULL; w = w->next)
        if (w->gen != p->gen && w->state == PEGASUS_W_STARTING)
            pegasus__worker_stop(w, 1, "reload");
    pegasus__kick(p);
}

static void pg_drain(mkd_backend *b, void (*done)(void *), void *arg)
{
    pegasus *p = (pegasus *)b;

    p->draining = 1;
    p->drain_cb = done;
    p->drain_arg = arg;
    mkd_info(0, "pegasus: draining: %zu queued, %u busy", p->queued,
             pegasus__count(p, 0,
                            PEGASUS_MASK(PEGASUS_W_BUSY) |
                                PEGASUS_MASK(PEGASUS_W_DRAINING)));
    pegasus__kick(p); /* done() is called from the loop, never from here */
}

/* The status block's numbers (backend.h: stats), from the same counters. */
static void pg_stats(mkd_backend *b, mkd_backend_stats *o)
{
    pegasus *p = (pegasus *)b;

    o->has_workers = 1;
    o->workers_starting =
        pegasus__count(p, 0, PEGASUS_MASK(PEGASUS_W_STARTING));
    o->workers_idle = pegasus__count(p, 0, PEGASUS_MASK(PEGASUS_W_IDLE));
    o->workers_busy = pegasus__count(
        p, 0, PEGASUS_MASK(PEGASUS_W_BUSY) | PEGASUS_MASK(PEGASUS_W_DRAINING));
    o->workers_stopping =
        pegasus__count(p, 0, PEGASUS_MASK(PEGASUS_W_STOPPING));
    /* Paused: what the status block shows as "crash_loop paused". Once
     * the pause is over (or a worker said HELLO, which ends it), the
     * application gets its chance again. */
    o->crash_loop = p->crash_loop && uv_now(p->loop) < p->paused_until;
    o->queued = p->queued;
    o->queue_max = p->cfg.queue_max;
    o->submitted = p->submitted;
    o->answered = p->answered;
    o->cancelled = p->cancelled;
    o->app_errors = p->app_errors;
    o->timeouts = p->timeouts;
    o->queue_timeouts = p->queue_timeouts;
    o->overloaded = p->overloaded;
    o->crashes = p->crashes;
    o->start_failures = p->start_failures;
    o->protocol_errors = p->protocol_errors;
    o->recycled = p->recycled;
    o->spawned = p->spawned;
    o->reloads = p->reloads;
    for (unsigned i = 0; i < p->nslots; i++)
        o->restarts += p->slots[i].restarts;
}

/* The pool-wide lines of the status block. */
static void put_counters(pegasus *p, mkd_text *s, uint64_t now)
{
    mkd_backend_stats o;

    memset(&o, 0, sizeof o);
    pg_stats(&p->base, &o);
    mkd_text_put(s, "backend pegasus\n");
    mkd_text_put(s, "backend.generation %u\n", p->gen);
    mkd_text_put(s, "backend.workers %u\n",
                 o.workers_starting + o.workers_idle + o.workers_busy);
    mkd_text_put(s, "backend.workers_idle %u\n", o.workers_idle);
    mkd_text_put(s, "backend.workers_busy %u\n", o.workers_busy);
    mkd_text_put(s, "backend.workers_starting %u\n", o.workers_starting);
    mkd_text_put(s, "backend.workers_restarting %u\n", pegasus__restarting(p));
    mkd_text_put(s, "backend.workers_min %" PRIu32 "\n", p->cfg.workers_min);
    mkd_text_put(s, "backend.workers_max %" PRIu32 "\n", p->cfg.workers_max);
    mkd_text_put(s, "backend.queued %zu\n", p->queued);
    mkd_text_put(s, "backend.queue_max %" PRIu32 "\n", p->cfg.queue_max);
    mkd_text_put(s, "backend.max_message %" PRIu32 "\n", p->cfg.max_message);
    mkd_text_put(s, "backend.submitted %" PRIu64 "\n", p->submitted);
    mkd_text_put(s, "backend.answered %" PRIu64 "\n", p->answered);
    mkd_text_put(s, "backend.cancelled %" PRIu64 "\n", p->cancelled);
    mkd_text_put(s, "backend.app_errors %" PRIu64 "\n", p->app_errors);
    mkd_text_put(s, "backend.timeouts %" PRIu64 "\n", p->timeouts);
    mkd_text_put(s, "backend.queue_timeouts %" PRIu64 "\n", p->queue_timeouts);
    mkd_text_put(s, "backend.overloaded %" PRIu64 "\n", p->overloaded);
    mkd_text_put(s, "backend.crashes %" PRIu64 "\n", p->crashes);
    mkd_text_put(s, "backend.start_failures %" PRIu64 "\n", p->start_failures);
    mkd_text_put(s, "backend.protocol_errors %" PRIu64 "\n",
                 p->protocol_errors);
    mkd_text_put(s, "backend.recycled %" PRIu64 "\n", p->recycled);
    mkd_text_put(s, "backend.restarts %" PRIu64 "\n", o.restarts);
    mkd_text_put(s, "backend.spawned %" PRIu64 "\n", p->spawned);
    mkd_text_put(s, "backend.reloads %" PRIu64 "\n", p->reloads);
    if (p->crash_loop && now < p->paused_until)
        mkd_text_put(s, "backend.crash_loop paused %" PRIu64 " ms\n",
                     p->paused_until - now);
    else
        mkd_text_put(s, "backend.crash_loop no\n");
    mkd_text_put(s, "backend.draining %s\n", p->draining ? "yes" : "no");
}

/* One line per worker slot. */
static void put_slot(pegasus *p, mkd_text *s, unsigned i, uint64_t now)
{
    const pegasus__slot *sl = &p->slots[i];
    const pegasus__worker *w = sl->w;
    const char *last = sl->last_exit[0] ? sl->last_exit : "-";

    if (w == NULL) {
        if (sl->used)
            mkd_text_put(s,
                         "pegasus.w%u pid 0 state empty restarts %" PRIu64
                         " last_exit %s\n",
                         i, sl->restarts, last);
        return;
    }
    mkd_text_put(
        s,
        "pegasus.w%u pid %d state %s gen %u served %" PRIu64 " rss_kib %" PRIu64
        " age_ms %" PRIu64 " restarts %" PRIu64 " last_exit %s\n",
        i, w->pid, pegasus__state_name(w->state), w->gen, w->served,
        pegasus__rss_kib(w->pid), now - w->spawned_at, sl->restarts, last);
}

static size_t pg_status(mkd_backend *b, char *buf, size_t cap)
{
    pegasus *p = (pegasus *)b;
    uint64_t now = uv_now(p->loop);
    mkd_text s;

    mkd_text_init(&s, buf, cap);
    put_counters(p, &s, now);
    for (unsigned i = 0; i < p->nslots; i++)
        put_slot(p, &s, i, now);
    return s.len;
}

/* A list copy_list made; its strings are wiped first when secret (the
 * environment holds the application's passwords). */
static void free_list(char **list, int secret)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
        if (secret)
            mkd_wipe(list[i], strlen(list[i]));
        free(list[i]);
    }
    free(list);
}

static void strings_free(pegasus__strings *s)
{
    free_list(s->php_ini, 0);
    free_list(s->php_admin, 0);
    free_list(s->env, 1);
    free(s->php);
    free(s->arcangelo);
    free(s->app);
    memset(s, 0, sizeof *s);
}

static void free_pool(pegasus *p)
{
    if (p->cfg.launcher != NULL && p->cfg.launcher->exited_arg == p)
        p->cfg.launcher->ops->release(p->cfg.launcher);
    strings_free(&p->str);
    free(p->slots);
    free(p);
}

void pegasus__handle_closed(pegasus *p)
{
    if (p->freeing) {
        if (p->open_handles == 0 && p->workers == NULL)
            free_pool(p);
        return;
    }
    pegasus__kick(p); /* a worker is gone: maybe replace it, maybe the
                         drain is complete */
}

static void on_pool_handle_closed(uv_handle_t *h)
{
    pegasus *p = h->data;

    p->open_handles--;
    pegasus__handle_closed(p);
}

static void pg_free(mkd_backend *b)
{
    pegasus *p = (pegasus *)b;
    uv_timer_t *timers[] = {&p->kick, &p->tick, &p->spawn_timer,
                            &p->queue_timer};

    if (p->freeing)
        return;
    /* Set first: a done() called from here that submits again is
     * refused. */
    p->freeing = 1;
    pegasus__fail_queue(p, MKD_BACKEND_SHUTDOWN, "server shutting down");
    for (pegasus__worker *w = p->workers; w != NULL; w = w->next)
        pegasus__worker_stop(w, 0, "shutdown");
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
        if (!uv_is_closing((uv_handle_t *)timers[i]))
            uv_close((uv_handle_t *)timers[i], on_pool_handle_closed);
    /* Workers go as their exits are reaped; the last close frees p. */
}

static const mkd_backend_ops pegasus_ops = {
    .name = "pegasus",
    .submit = pg_submit,
    .cancel = pg_cancel,
    .reload = pg_reload,
    .drain = pg_drain,
    .status = pg_status,
    .stats = pg_stats,
    .free = pg_free,
};

/* ------------------------------------------------------------------ */
/* Construction                                                        */

void pegasus_config_defaults(pegasus_config *c)
{
    memset(c, 0, sizeof *c);
    c->php = "/usr/bin/php";
    c->workers_min = 2;
    c->workers_max = 0; /* = workers_min */
    c->queue_max = 256;
    c->queue_timeout_ms = 0;
    c->request_timeout_ms = 30000;
    c->start_timeout_ms = 10000;
    c->stop_timeout_ms = 5000;
    c->idle_timeout_ms = 10000;
    c->max_message = 1u << 20;
    c->crash_loop_failures = 5;
    c->crash_loop_window_ms = 10000;
    c->crash_loop_pause_ms = 30000;
    c->uid = -1;
    c->gid = -1;
}

static size_t list_len(const char *const *list)
{
    size_t n = 0;

    while (list != NULL && list[n] != NULL)
        n++;
    return n;
}

/* A copy of a NULL-terminated list (NULL for NULL); 0 when out of
 * memory. */
static int copy_list(const char *const *src, char ***out)
{
    size_t n = list_len(src);

    *out = NULL;
    if (src == NULL)
        return 1;
    if ((*out = calloc(n + 1, sizeof **out)) == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (((*out)[i] = strdup(src[i])) == NULL)
            return 0;
    return 1;
}

/* path made absolute against the working directory, links kept. */
static char *absolute(const char *path)
{
    char cwd[4096], *out;
    size_t n;

    if (path[0] == '/')
        return strdup(path);
    if (getcwd(cwd, sizeof cwd) == NULL)
        return NULL;
    n = strlen(cwd) + 1 + strlen(path) + 1;
    out = malloc(n);
    if (out != NULL && snprintf(out, n, "%s/%s", cwd, path) < 0) {
        free(out);
        out = NULL;
    }
    return out;
}

static int max_message_ok(uint32_t max_message)
{
    return max_message > 0 &&
           max_message <= PEGASUS_IPC_HARD_MAX - PEGASUS_IPC_OVERHEAD;
}

/* max_message, and the argument that tells workers spawned from now on. */
static void set_max_message(pegasus *p, uint32_t max_message)
{
    p->cfg.max_message = max_message;
    (void)snprintf(p->max_message_arg, sizeof p->max_message_arg,
                   "--max-message=%" PRIu32, max_message);
}

static const char *config_problem(const pegasus_config *c)
{
    if (c->arcangelo == NULL || c->arcangelo[0] == '\0')
        return "arcangelo: path to arcangelo.php is required";
    if (c->app == NULL || c->app[0] == '\0')
        return "app: path to the application is required";
    if (c->php == NULL || c->php[0] == '\0')
        return "php: path to the PHP binary is required";
    if (c->workers_min < 1 || c->workers_min > 1024)
        return "workers_min must be 1..1024";
    if (c->workers_max != 0 &&
        (c->workers_max < c->workers_min || c->workers_max > 1024))
        return "workers_max must be workers_min..1024";
    if (c->queue_max > 1000000)
        return "queue_max must be at most 1000000";
    if (list_len(c->php_ini) + list_len(c->php_admin) > PEGASUS_INI_MAX)
        return "php_ini and php_admin take at most 30 settings together";
    if (list_len(c->env) > PEGASUS_ENV_MAX)
        return "env takes at most 30 entries";
    if (c->request_timeout_ms == 0 || c->start_timeout_ms == 0 ||
        c->stop_timeout_ms == 0 || c->idle_timeout_ms == 0)
        return "timeouts must be at least 1 ms";
    if (!max_message_ok(c->max_message))
        return "max_message must be 1 .. 256 MiB";
    if (c->crash_loop_failures == 0 ||
        c->crash_loop_failures > PEGASUS_FAIL_RING)
        return "crash_loop_failures must be 1..32";
    if (c->crash_loop_window_ms == 0 || c->crash_loop_pause_ms == 0)
        return "crash loop window and pause must be at least 1 ms";
    return NULL;
}

static int check_path(const char *what, const char *path, int mode, mkd_diag *d)
{
    if (access(path, mode) == 0)
        return MKD_OK;
    return mkd_fail(d, MKD_ERR_BACKEND, "pegasus: %s %s: %s", what, path,
                    strerror(errno));
}

/* The settings make sense and the files are there: fail at start-up, with
 * the path in the message, rather than as a crash loop of workers that
 * cannot exec. A bare "php" is looked up in PATH by exec, so only paths
 * are checked. */
static int check_config(const pegasus_config *c, mkd_diag *d)
{
    const char *problem = config_problem(c);
    int r;

    if (problem != NULL)
        return mkd_fail(d, MKD_ERR_BACKEND, "pegasus: %s", problem);
    if ((strchr(c->php, '/') != NULL &&
         (r = check_path("php", c->php, X_OK, d)) != MKD_OK) ||
        (r = check_path("arcangelo", c->arcangelo, R_OK, d)) != MKD_OK ||
        (r = check_path("app", c->app, R_OK, d)) != MKD_OK)
        return r;
    return MKD_OK;
}

/* Our own copies of the configuration's strings. Workers run in the
 * application's directory: every path they are given must be absolute.
 * Symbolic links are kept: the app is resolved at each spawn (a deploy
 * that swaps a link is picked up by a reload), and so is php
 * (update-alternatives). */
static int strings_copy(const pegasus_config *cfg, pegasus__strings *s,
                        mkd_diag *d)
{
    memset(s, 0, sizeof *s);
    s->php = strchr(cfg->php, '/') ? absolute(cfg->php) : strdup(cfg->php);
    s->arcangelo = absolute(cfg->arcangelo);
    s->app = absolute(cfg->app);
    if (s->php == NULL || s->arcangelo == NULL || s->app == NULL) {
        strings_free(s);
        return mkd_fail(d, MKD_ERR_BACKEND, "pegasus: cannot resolve paths: %s",
                        strerror(errno));
    }
    if (!copy_list(cfg->php_ini, &s->php_ini) ||
        !copy_list(cfg->php_admin, &s->php_admin) ||
        !copy_list(cfg->env, &s->env)) {
        strings_free(s);
        return mkd_fail(d, MKD_ERR_NOMEM, "pegasus: out of memory");
    }
    return MKD_OK;
}

/* cfg's strings are now s's. */
static void strings_use(pegasus_config *cfg, const pegasus__strings *s)
{
    cfg->php = s->php;
    cfg->arcangelo = s->arcangelo;
    cfg->app = s->app;
    cfg->php_ini = (const char *const *)s->php_ini;
    cfg->php_admin = (const char *const *)s->php_admin;
    cfg->env = (const char *const *)s->env;
}

/* Slots for at least nslots workers: room for a full generation retiring
 * while the next one starts. Never fewer than before (workers of an older
 * generation may sit in the high ones). MKD_OK or MKD_ERR_NOMEM. */
static int ensure_slots(pegasus *p, unsigned nslots)
{
    pegasus__slot *slots;

    if (nslots <= p->nslots)
        return MKD_OK;
    if ((slots = realloc(p->slots, nslots * sizeof *slots)) == NULL)
        return MKD_ERR_NOMEM;
    memset(slots + p->nslots, 0, (nslots - p->nslots) * sizeof *slots);
    p->slots = slots;
    p->nslots = nslots;
    return MKD_OK;
}

static int copy_config(pegasus *p, const pegasus_config *cfg, mkd_diag *d)
{
    int r;

    p->cfg = *cfg;
    if (p->cfg.workers_max == 0)
        p->cfg.workers_max = p->cfg.workers_min;
    if ((r = strings_copy(cfg, &p->str, d)) != MKD_OK)
        return r;
    strings_use(&p->cfg, &p->str);
    set_max_message(p, cfg->max_message);
    if (ensure_slots(p, 2 * p->cfg.workers_max) != MKD_OK)
        return mkd_fail(d, MKD_ERR_NOMEM, "pegasus: out of memory");
    return MKD_OK;
}

/* Supervision often enough for the idle timeout to be honoured within a
 * quarter of itself, and at most once a second otherwise. */
static void start_tick(pegasus *p)
{
    unsigned period = p->cfg.idle_timeout_ms / 4;

    if (period < 50)
        period = 50;
    if (period > 1000)
        period = 1000;
    if (uv_timer_start(&p->tick, pegasus__tick_cb, period, period) != 0)
        mkd_error(0, "pegasus: cannot start the supervision timer");
}

/* The pool's timers, and supervision started. uv_timer_init cannot fail
 * on a live loop. */
static void start_timers(pegasus *p)
{
    uv_timer_t *timers[] = {&p->kick, &p->tick, &p->spawn_timer,
                            &p->queue_timer};

    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
        (void)uv_timer_init(p->loop, timers[i]);
        timers[i]->data = p;
        p->open_handles++;
    }
    start_tick(p);
}

int pegasus_new(uv_loop_t *loop, const pegasus_config *cfg, mkd_backend **out,
                mkd_diag *d)
{
    pegasus *p;
    int r;

    mkd_diag_clear(d);
    *out = NULL;
    if (loop == NULL || cfg == NULL)
        return mkd_fail(d, MKD_ERR_ARG, "pegasus: no loop or configuration");
    if ((r = check_config(cfg, d)) != MKD_OK)
        return r;
    if ((p = calloc(1, sizeof *p)) == NULL)
        return mkd_fail(d, MKD_ERR_NOMEM, "pegasus: out of memory");
    p->base.ops = &pegasus_ops;
    p->loop = loop;
    if ((r = copy_config(p, cfg, d)) != MKD_OK) {
        free_pool(p);
        return r;
    }
    p->gen = 1;
    p->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)p;
    if (p->rng == 0)
        p->rng = 0x9e3779b97f4a7c15ull;
    start_timers(p);
    if (p->cfg.launcher != NULL) {
        p->cfg.launcher->exited = pegasus__launched_exit;
        p->cfg.launcher->exited_arg = p;
    }
    mkd_info(0, "pegasus: %" PRIu32 "..%" PRIu32 " workers of %s for %s",
             p->cfg.workers_min, p->cfg.workers_max, p->str.php, p->str.app);
    pegasus__kick(p);
    *out = &p->base;
    return MKD_OK;
}

int pegasus_set_max_message(mkd_backend *b, uint32_t max_message)
{
    pegasus *p = (pegasus *)b;

    if (b == NULL || b->ops != &pegasus_ops || !max_message_ok(max_message))
        return MKD_ERR_ARG;
    if (p->cfg.max_message != max_message)
        mkd_info(0, "pegasus: max_message %" PRIu32 " (was %" PRIu32 ")",
                 max_message, p->cfg.max_message);
    set_max_message(p, max_message);
    return MKD_OK;
}

int pegasus_reconfigure(mkd_backend *b, const pegasus_config *cfg, mkd_diag *d)
{
    pegasus *p = (pegasus *)b;
    pegasus__strings str;
    pegasus_config next;
    int r;

    mkd_diag_clear(d);
    if (b == NULL || b->ops != &pegasus_ops || cfg == NULL)
        return mkd_fail(d, MKD_ERR_ARG, "pegasus: not a pool");
    if ((r = check_config(cfg, d)) != MKD_OK)
        return r;
    next = *cfg;
    if (next.workers_max == 0)
        next.workers_max = next.workers_min;
    /* Fixed for the pool's life: who starts the workers, and as whom. */
    next.uid = p->cfg.uid;
    next.gid = p->cfg.gid;
    next.launcher = p->cfg.launcher;
    if ((r = strings_copy(cfg, &str, d)) != MKD_OK)
        return r;
    if (ensure_slots(p, 2 * next.workers_max) != MKD_OK) {
        strings_free(&str);
        return mkd_fail(d, MKD_ERR_NOMEM, "pegasus: out of memory");
    }
    /* Nothing fails from here: the pool switches whole. */
    strings_free(&p->str);
    p->str = str;
    strings_use(&next, &p->str);
    p->cfg = next;
    set_max_message(p, next.max_message);
    if (!p->freeing)
        start_tick(p);
    arm_queue_timer(p);
    mkd_info(0,
             "pegasus: new settings: %" PRIu32 "..%" PRIu32
             " workers of %s for %s",
             p->cfg.workers_min, p->cfg.workers_max, p->str.php, p->str.app);
    return MKD_OK;
}

int pegasus_config_check(const pegasus_config *cfg, mkd_diag *d)
{
    mkd_diag_clear(d);
    return check_config(cfg, d);
}
