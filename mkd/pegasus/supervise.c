/*
 * supervise.c -- the pool's shape over time: how many workers run, when a
 * new one may be spawned, which ones retire.
 *
 * All of it happens in pegasus__maintain, run from a zero-delay timer
 * (pegasus__kick) after any event that may change the picture, from the
 * periodic tick, and when a spawn delay ends. Running it from the loop,
 * never from inside another callback, keeps it free of re-entrancy: it may
 * spawn, stop and fail requests without anything else being half-done.
 *
 * IMPLEMENTATION NOTES
 *
 * Demand. want = busy workers + queued requests, clamped to
 * workers_min..workers_max (a fixed pool when they are equal). The current
 * generation is topped up to want; idle workers above it retire after
 * idle_timeout_ms.
 *
 * Failures that mean "the application is broken" are the workers that die
 * unexpectedly before they have completed a request (a start failure, a
 * crash in on_init, a fatal on the first request). Each one doubles the
 * spawn delay (100 ms .. 5 s) and spawns go one at a time; crash_loop_
 * failures of them within crash_loop_window_ms stop spawning for
 * crash_loop_pause_ms, log it loudly, and fail the queue if nobody can
 * serve it. A successful answer clears all of it. A crash after good
 * answers is a request's doing, not the application's: the worker is
 * replaced at once.
 *
 * Recycling. Soft limits (requests, lifetime, RSS) are checked between
 * requests; each worker's limits were drawn 80..100% of the configured
 * values at spawn, and at most a quarter of workers_min (at least one)
 * may be restarting at a time, so a pool never restarts all at once. A
 * restart counts from the moment its worker is stopped, not only once its
 * replacement is starting: the replacement is spawned by the next
 * maintenance pass, and until then recycle_owed holds it, or two answers
 * read in one loop iteration would both see nobody starting and both go.
 * No worker is recycled while the failure gates hold spawning back: its
 * replacement could not start.
 *
 * Reload. The generation number goes up; new workers are spawned up to
 * want; a worker of an older generation retires, when idle or as soon as
 * its answer is in (pegasus__want_retire), only while the ready workers
 * left would still cover want. A new generation that cannot start
 * therefore leaves the old one serving.
 */
#include <inttypes.h>
#include <stdio.h>

#include "mkd_log.h"
#include "internal.h"
#include "mkd_util.h"

#define BACKOFF_BASE_MS 100u
#define BACKOFF_MAX_MS  5000u

#define M_LIVE                                                                 \
    (PEGASUS_MASK(PEGASUS_W_STARTING) | PEGASUS_MASK(PEGASUS_W_IDLE) |         \
     PEGASUS_MASK(PEGASUS_W_BUSY))
#define M_READY   (PEGASUS_MASK(PEGASUS_W_IDLE) | PEGASUS_MASK(PEGASUS_W_BUSY))
#define M_BUSY    (PEGASUS_MASK(PEGASUS_W_BUSY) | PEGASUS_MASK(PEGASUS_W_DRAINING))
#define M_SERVING (M_READY | PEGASUS_MASK(PEGASUS_W_DRAINING))

unsigned pegasus__count(pegasus *p, int gen_filter, unsigned mask)
{
    unsigned n = 0;

    for (pegasus__worker *w = p->workers; w != NULL; w = w->next) {
        if (gen_filter > 0 && w->gen != p->gen)
            continue;
        if (gen_filter < 0 && w->gen == p->gen)
            continue;
        if (mask & PEGASUS_MASK(w->state))
            n++;
    }
    return n;
}

uint64_t pegasus__jitter(pegasus *p, uint64_t value)
{
    uint64_t x = p->rng;

    if (value == 0)
        return 0;
    /* xorshift64: spreading restarts needs no better randomness. */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p->rng = x;
    return value - x % (value / 5 + 1);
}

static void on_kick(uv_timer_t *t)
{
    pegasus__maintain(t->data);
}

void pegasus__kick(pegasus *p)
{
    if (p->freeing || uv_is_closing((uv_handle_t *)&p->kick) ||
        uv_is_active((uv_handle_t *)&p->kick))
        return;
    if (uv_timer_start(&p->kick, on_kick, 0, 0) != 0)
        mkd_error(0, "pegasus: cannot schedule maintenance");
}

void pegasus__tick_cb(uv_timer_t *t)
{
    pegasus *p = t->data;

    /* Fresh RSS figures for idle workers (soft limit) and the status. */
    for (pegasus__worker *w = p->workers; w != NULL; w = w->next)
        if (w->state == PEGASUS_W_IDLE || w->state == PEGASUS_W_BUSY)
            w->rss_kib = pegasus__rss_kib(w->pid);
    pegasus__maintain(p);
}

void pegasus__spawn_timer_cb(uv_timer_t *t)
{
    pegasus__maintain(t->data);
}

static void arm_spawn_timer(pegasus *p, uint64_t at)
{
    uint64_t now = uv_now(p->loop);

    if (uv_is_closing((uv_handle_t *)&p->spawn_timer))
        return;
    if (uv_timer_start(&p->spawn_timer, pegasus__spawn_timer_cb,
                       at > now ? at - now : 0, 0) != 0)
        mkd_error(0, "pegasus: cannot arm the spawn timer");
}

void pegasus__on_death(pegasus *p, pegasus__worker *w)
{
    uint64_t now = uv_now(p->loop);
    unsigned recent = 0, shift;
    uint64_t delay;

    if (w->ready)
        p->crashes++;
    else
        p->start_failures++;
    if (w->ready && w->served > 0)
        return; /* a request's doing: replace at once */
    if (w->gen != p->gen)
        return; /* a reload replaced that code already */
    p->fail_at[p->fail_pos] = now;
    p->fail_pos = (p->fail_pos + 1) % PEGASUS_FAIL_RING;
    if (p->fail_n < PEGASUS_FAIL_RING)
        p->fail_n++;
    p->start_streak++;
    shift = p->start_streak - 1 < 6 ? p->start_streak - 1 : 6;
    delay = (uint64_t)BACKOFF_BASE_MS << shift;
    if (delay > BACKOFF_MAX_MS)
        delay = BACKOFF_MAX_MS;
    p->next_spawn_at = now + delay;
    for (unsigned i = 0; i < p->fail_n; i++)
        if (now - p->fail_at[i] <= p->cfg.crash_loop_window_ms)
            recent++;
    if (recent < p->cfg.crash_loop_failures && !p->crash_loop)
        return;
    /* Once in a crash loop, every further early death pauses again, until
     * a worker answers a request. */
    p->crash_loop = 1;
    p->paused_until = now + p->cfg.crash_loop_pause_ms;
    mkd_error(0,
              "pegasus: CRASH LOOP: %u worker(s) died before serving a "
              "request within %" PRIu32 " ms (last: w%u pid %d); not "
              "starting workers for %" PRIu32 " ms. Check the application "
              "%s and the worker output above.",
              recent, p->cfg.crash_loop_window_ms, w->slot, w->pid,
              p->cfg.crash_loop_pause_ms, p->str.app);
    /* Failing the queue calls done(): not from here, which may run inside
     * submit() (a failed dispatch), but from the next maintenance pass. */
    p->fail_queue_pending = 1;
    pegasus__kick(p);
}

void pegasus__on_ready(pegasus *p, pegasus__worker *w)
{
    (void)w;
    /* Ready is not yet healthy (it may die right after): the streak stays
     * until an answer, but a pause has served its purpose. */
    p->paused_until = 0;
}

void pegasus__on_served(pegasus *p)
{
    if (p->start_streak == 0 && !p->crash_loop)
        return;
    if (p->crash_loop)
        mkd_info(0, "pegasus: the application answers again; crash loop "
                    "over");
    p->start_streak = 0;
    p->crash_loop = 0;
    p->paused_until = 0;
    p->next_spawn_at = 0;
    p->fail_n = 0;
    p->fail_pos = 0;
}

/* The failure gates: whether they hold spawning back now. *until is when
 * the wait ends, or 0 when a worker still starting holds it (its HELLO or
 * its death runs maintenance again). */
static int spawn_held(pegasus *p, uint64_t now, uint64_t *until)
{
    *until = 0;
    if (p->crash_loop && now < p->paused_until) {
        *until = p->paused_until;
        return 1;
    }
    if (p->start_streak == 0 && !p->crash_loop)
        return 0;
    /* Failing: one at a time, after the backoff. */
    if (pegasus__count(p, 1, PEGASUS_MASK(PEGASUS_W_STARTING)) > 0)
        return 1;
    if (now < p->next_spawn_at) {
        *until = p->next_spawn_at;
        return 1;
    }
    return 0;
}

/* How many of n wanted workers the gates let start now; when they hold
 * spawning back until a time, the spawn timer is armed for it. */
static unsigned spawn_allowance(pegasus *p, uint64_t now, unsigned n)
{
    uint64_t until;

    if (n == 0)
        return 0;
    if (spawn_held(p, now, &until)) {
        if (until != 0)
            arm_spawn_timer(p, until);
        return 0;
    }
    return p->start_streak > 0 || p->crash_loop ? 1 : n;
}

static unsigned recycle_cap(const pegasus *p)
{
    unsigned cap = p->cfg.workers_min / 4;
    return cap > 0 ? cap : 1;
}

static const char *soft_limit(pegasus *p, pegasus__worker *w, int read_rss)
{
    uint64_t now = uv_now(p->loop);

    if (w->max_requests != 0 && w->served >= w->max_requests)
        return "max_requests";
    if (w->max_lifetime_ms != 0 && now - w->spawned_at >= w->max_lifetime_ms)
        return "max_lifetime";
    if (p->cfg.max_rss_kib != 0) {
        if (read_rss)
            w->rss_kib = pegasus__rss_kib(w->pid);
        if (w->rss_kib > p->cfg.max_rss_kib)
            return "max_rss";
    }
    return NULL;
}

static void mark_recycle(pegasus__worker *w, const char *reason)
{
    if (w->recycle)
        return;
    w->recycle = 1;
    w->stop_reason = reason;
    w->rss_kib = pegasus__rss_kib(w->pid);
    mkd_info(0,
             "pegasus w%u pid %d: recycling (%s; %" PRIu64
             " requests, rss %" PRIu64 " KiB)",
             w->slot, w->pid, reason, w->served, w->rss_kib);
}

unsigned pegasus__restarting(pegasus *p)
{
    return p->recycle_owed +
           pegasus__count(p, 1, PEGASUS_MASK(PEGASUS_W_STARTING));
}

/* May one more worker leave service to be recycled now? */
static int recycle_may_start(pegasus *p)
{
    uint64_t until;

    return !spawn_held(p, uv_now(p->loop), &until) &&
           pegasus__restarting(p) < recycle_cap(p);
}

/* Stop w for recycling. It counts as restarting from now on: maintenance
 * spawns its replacement later, from the loop. */
static void recycle_stop(pegasus *p, pegasus__worker *w)
{
    p->recycled++;
    p->recycle_owed++;
    pegasus__worker_stop(w, 1, w->stop_reason);
}

int pegasus__recycle(pegasus *p, pegasus__worker *w)
{
    const char *reason = w->recycle ? w->stop_reason : soft_limit(p, w, 1);

    if (reason == NULL)
        return 0;
    mark_recycle(w, reason);
    if (p->draining || w->gen != p->gen) {
        /* It goes anyway, and nobody replaces it. */
        p->recycled++;
        pegasus__worker_stop(w, 1, reason);
        return 1;
    }
    if (!recycle_may_start(p))
        return 0;
    recycle_stop(p, w);
    return 1;
}

/* Workers wanted outside a drain: busy ones plus queued requests, within
 * workers_min..workers_max. */
static unsigned demand(const pegasus *p, unsigned busy)
{
    uint64_t d = (uint64_t)busy + p->queued;

    return d < p->cfg.workers_min   ? p->cfg.workers_min
           : d > p->cfg.workers_max ? p->cfg.workers_max
                                    : (unsigned)d;
}

int pegasus__want_retire(pegasus *p, pegasus__worker *w)
{
    unsigned busy, cur_ready, old_ready;

    if (w->gen == p->gen || p->draining)
        return 0;
    /* The rule maintain applies to an idle worker of an older generation,
     * applied when its answer is in: under steady load such a worker is
     * handed the next queued request as soon as it is idle, so maintain
     * never sees it idle, and a reload would never complete. w still
     * counts as busy and as an old ready worker here. */
    busy = pegasus__count(p, 0, M_BUSY);
    cur_ready = pegasus__count(p, 1, M_READY);
    old_ready = pegasus__count(p, -1, M_READY);
    return cur_ready + old_ready - 1 >= demand(p, busy);
}

/* 0. A crash loop was found (on_death): fail the queue if nobody can
 * serve it. Not from on_death, which may run inside submit(). */
static void fail_queue_if_due(pegasus *p)
{
    if (!p->fail_queue_pending)
        return;
    p->fail_queue_pending = 0;
    if (pegasus__count(p, 0, M_SERVING) == 0 && p->qhead != NULL) {
        mkd_error(0,
                  "pegasus: no worker can serve; failing %zu queued "
                  "request(s)",
                  p->queued);
        pegasus__fail_queue(p, MKD_BACKEND_INTERNAL, "application unavailable");
    }
}

/* Workers wanted now: demand(), or in a drain only what the queue still
 * needs, up to the maximum. */
static unsigned wanted(pegasus *p)
{
    size_t d;

    if (!p->draining)
        return demand(p, pegasus__count(p, 0, M_BUSY));
    if (p->queued == 0)
        return 0;
    d = p->queued + pegasus__count(p, 1, PEGASUS_MASK(PEGASUS_W_BUSY));
    return d > p->cfg.workers_max ? p->cfg.workers_max : (unsigned)d;
}

/* 1. Older generations (reload): retire while coverage allows. */
static void retire_old(pegasus *p, unsigned want)
{
    unsigned cur_ready = pegasus__count(p, 1, M_READY);
    unsigned old_active = pegasus__count(p, -1, M_READY);

    for (pegasus__worker *w = p->workers; w != NULL; w = w->next) {
        if (w->gen == p->gen)
            continue;
        if (w->state == PEGASUS_W_STARTING) {
            pegasus__worker_stop(w, 1, "reload");
        } else if (w->state == PEGASUS_W_IDLE &&
                   (p->draining || cur_ready + old_active - 1 >= want)) {
            pegasus__worker_stop(w, 1, "reload");
            old_active--;
        }
    }
}

/* 2. The current generation outside a drain: soft limits, then the idle
 * ones above want after idle_timeout_ms. */
static void recycle_and_shrink(pegasus *p, unsigned want, uint64_t now)
{
    unsigned live = pegasus__count(p, 1, M_LIVE);

    for (pegasus__worker *w = p->workers; w != NULL; w = w->next) {
        const char *reason;
        if (w->gen != p->gen || w->state != PEGASUS_W_IDLE)
            continue;
        reason = w->recycle ? w->stop_reason : soft_limit(p, w, 0);
        if (reason != NULL) {
            mark_recycle(w, reason);
            if (recycle_may_start(p)) {
                recycle_stop(p, w);
                live--;
            }
            continue;
        }
        if (live > want && now - w->idle_since >= p->cfg.idle_timeout_ms) {
            pegasus__worker_stop(w, 1, "idle");
            live--;
        }
    }
}

/* 3. A drain with nothing left to run: everyone stops. */
static void stop_all(pegasus *p)
{
    for (pegasus__worker *w = p->workers; w != NULL; w = w->next)
        if (w->state != PEGASUS_W_STOPPING && w->state != PEGASUS_W_DEAD)
            pegasus__worker_stop(w, 1, "drain");
}

/* 4. Spawn up to want, as the failure gates allow. Each spawn is the
 * replacement a recycle is owed, if any; at want, none is owed. */
static void spawn_wanted(pegasus *p, unsigned want, uint64_t now)
{
    unsigned live = pegasus__count(p, 1, M_LIVE);
    unsigned n = spawn_allowance(p, now, live < want ? want - live : 0);

    for (unsigned i = 0; i < n && !p->freeing; i++) {
        if (pegasus__worker_spawn(p) != MKD_OK)
            break; /* recorded; the gates decide the next try */
        live++;
        if (p->recycle_owed > 0)
            p->recycle_owed--;
    }
    if (live >= want)
        p->recycle_owed = 0;
}

/* 5. Drain complete: nothing queued, every worker gone. */
static void finish_drain(pegasus *p)
{
    void (*cb)(void *) = p->drain_cb;

    if (!p->draining || p->queued != 0 || p->workers != NULL || cb == NULL)
        return;
    p->drain_cb = NULL;
    mkd_info(0, "pegasus: drained");
    cb(p->drain_arg);
}

void pegasus__maintain(pegasus *p)
{
    uint64_t now;
    unsigned want;

    if (p->freeing)
        return;
    now = uv_now(p->loop);
    fail_queue_if_due(p);
    want = wanted(p);
    retire_old(p, want);
    if (!p->draining)
        recycle_and_shrink(p, want, now);
    if (p->draining && p->queued == 0)
        stop_all(p);
    spawn_wanted(p, want, now);
    finish_drain(p);
}
