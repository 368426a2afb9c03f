/*
 * fastcgi.c -- the FastCGI backend's operations (backend.h), its settings
 * and its status. See fastcgi.h for what it does; the parts are named in
 * internal.h.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "mkd_log.h"

static int settings(fastcgi *b, const fastcgi_config *cfg, mkd_diag *d)
{
    if (cfg->script == NULL || cfg->script[0] != '/' ||
        strlen(cfg->script) >= sizeof b->script)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "fastcgi_script: an absolute path is needed (the "
                        "script as the FastCGI server sees it)");
    if (cfg->max_conns == 0 || cfg->connect_timeout_ms == 0 ||
        cfg->request_timeout_ms == 0)
        return mkd_fail(d, MKD_ERR_CONFIG, "fastcgi: a zero limit");
    memcpy(b->script, cfg->script, strlen(cfg->script) + 1);
    b->max_conns = cfg->max_conns;
    b->connect_timeout_ms = cfg->connect_timeout_ms;
    b->request_timeout_ms = cfg->request_timeout_ms;
    b->eject_ms = cfg->eject_ms;
    b->max_message = cfg->max_message;
    return MKD_OK;
}

/* Close up's idle connections; the busy ones close when their request
 * ends (conn.c: conn_ended). */
static void close_idle(fc_upstream *up)
{
    fc_conn *c = up->conns, *next;

    for (; c != NULL; c = next) {
        next = c->next;
        if (c->state == FC_IDLE)
            fastcgi__conn_close(c);
    }
}

/* The current upstreams leave: each is freed now if it has no
 * connection, else with its last one. */
static void retire_all(fastcgi *b)
{
    for (unsigned i = 0; i < b->nups; i++) {
        fc_upstream *up = b->ups[i];
        close_idle(up); /* before it is retired: the last would free it */
        up->retired = 1;
        up->next = b->retired;
        b->retired = up;
        fastcgi__upstream_gone_conn(b, up);
    }
    b->nups = 0;
}

int fastcgi_reconfigure(mkd_backend *base, const fastcgi_config *cfg,
                        mkd_diag *d)
{
    fastcgi *b = (fastcgi *)base;
    fc_upstream *ups[FASTCGI_UPSTREAMS_MAX];
    unsigned n;
    int r;

    mkd_diag_clear(d);
    if ((r = fastcgi__parse_upstreams(cfg->upstreams, ups, &n, d)) != MKD_OK)
        return r;
    if ((r = settings(b, cfg, d)) != MKD_OK) { /* checks before it sets */
        for (unsigned i = 0; i < n; i++)
            free(ups[i]);
        return r;
    }
    retire_all(b);
    memcpy(b->ups, ups, n * sizeof ups[0]);
    b->nups = n;
    b->rr = 0;
    b->reloads++;
    return MKD_OK;
}

static mkd_backend_status fc_submit(mkd_backend *base,
                                    const mkd_request_ctx *ctx, uint8_t *body,
                                    size_t len, mkd_backend_done_fn done,
                                    void *token)
{
    fastcgi *b = (fastcgi *)base;
    mkd_backend_status st = MKD_BACKEND_INTERNAL;
    fc_upstream *up;
    fc_req *r = NULL;
    int e = MKD_ERR_SYSTEM;

    if (b->draining) {
        st = MKD_BACKEND_SHUTDOWN;
        goto out;
    }
    if (len > b->max_message) {
        st = MKD_BACKEND_TOO_LARGE;
        goto out;
    }
    if ((r = calloc(1, sizeof *r)) == NULL)
        goto out;
    r->token = token;
    r->done = done;
    r->conn_id = ctx->conn_id;
    r->max_body = ctx->max_response ? ctx->max_response : b->max_message;
    r->submitted_ns = uv_hrtime();
    if (fastcgi__req_encode(b, r, ctx, body, len) != MKD_OK)
        goto out;
    while (e == MKD_ERR_SYSTEM && (up = fastcgi__pick(b, r)) != NULL)
        e = fastcgi__conn_run(b, up, r);
    if (e == MKD_ERR_SYSTEM) {
        b->overloaded++;
        st = MKD_BACKEND_OVERLOADED;
    }
    if (e != MKD_OK)
        goto out;
    b->submitted++;
    b->inflight++;
    r->next = b->reqs;
    if (b->reqs != NULL)
        b->reqs->prev = r;
    b->reqs = r;
    r = NULL;
    st = MKD_BACKEND_OK;
out:
    if (r != NULL) {
        if (r->wire != NULL)
            mkd_wipe(r->wire, r->wire_len);
        free(r->wire);
        free(r);
    }
    mkd_wipe(body, len);
    free(body);
    return st;
}

static void fc_cancel(mkd_backend *base, void *token)
{
    fastcgi *b = (fastcgi *)base;

    for (fc_req *r = b->reqs; r != NULL; r = r->next)
        if (r->token == token)
            r->cancelled = 1;
}

/* A reload's settings come through fastcgi_reconfigure (main calls it
 * with the new configuration); there is no code here to reload. */
static void fc_reload(mkd_backend *base)
{
    (void)base;
}

void fastcgi__maybe_drained(fastcgi *b)
{
    if (b->draining && b->inflight == 0 && b->drained != NULL) {
        void (*fn)(void *) = b->drained;
        b->drained = NULL;
        fn(b->drained_arg);
    }
}

static void fc_drain(mkd_backend *base, void (*done)(void *), void *arg)
{
    fastcgi *b = (fastcgi *)base;

    b->draining = 1;
    b->drained = done;
    b->drained_arg = arg;
    fastcgi__maybe_drained(b);
}

static void count_conns(fastcgi *b, unsigned *busy, unsigned *idle)
{
    *busy = *idle = 0;
    for (unsigned i = 0; i < b->nups; i++) {
        *idle += b->ups[i]->nidle;
        *busy += b->ups[i]->nconns - b->ups[i]->nidle;
    }
}

static size_t fc_status(mkd_backend *base, char *buf, size_t cap)
{
    fastcgi *b = (fastcgi *)base;
    uint64_t now = uv_now(b->loop);
    unsigned busy, idle, up = 0;
    mkd_text t;

    count_conns(b, &busy, &idle);
    for (unsigned i = 0; i < b->nups; i++)
        up += b->ups[i]->ejected_until <= now;
    mkd_text_init(&t, buf, cap);
    mkd_text_put(&t,
                 "backend fastcgi\nbackend.upstreams %u\n"
                 "backend.upstreams_up %u\nbackend.connections_busy %u\n"
                 "backend.connections_idle %u\nbackend.inflight %zu\n",
                 b->nups, up, busy, idle, b->inflight);
    mkd_text_put(
        &t,
        "backend.submitted %llu\nbackend.answered %llu\n"
        "backend.cancelled %llu\nbackend.app_errors %llu\n"
        "backend.timeouts %llu\nbackend.overloaded %llu\n"
        "backend.connections_lost %llu\nbackend.protocol_errors "
        "%llu\nbackend.stderr_records %llu\nbackend.reloads %llu\n",
        (unsigned long long)b->submitted, (unsigned long long)b->answered,
        (unsigned long long)b->cancelled, (unsigned long long)b->app_errors,
        (unsigned long long)b->timeouts, (unsigned long long)b->overloaded,
        (unsigned long long)b->lost, (unsigned long long)b->protocol_errors,
        (unsigned long long)b->stderr_records, (unsigned long long)b->reloads);
    for (unsigned i = 0; i < b->nups; i++) {
        fc_upstream *u = b->ups[i];
        mkd_text_put(&t,
                     "backend.upstream %s %s conns %u idle %u requests %llu "
                     "connect_failures %llu ejections %llu\n",
                     u->name, u->ejected_until > now ? "ejected" : "up",
                     u->nconns, u->nidle, (unsigned long long)u->requests,
                     (unsigned long long)u->connect_failures,
                     (unsigned long long)u->ejections);
    }
    return t.len;
}

static void fc_stats(mkd_backend *base, mkd_backend_stats *out)
{
    fastcgi *b = (fastcgi *)base;

    /* No queue: a request is on a connection or refused. */
    out->submitted = b->submitted;
    out->answered = b->answered;
    out->cancelled = b->cancelled;
    out->app_errors = b->app_errors;
    out->timeouts = b->timeouts;
    out->overloaded = b->overloaded;
    out->crashes = b->lost;
    out->protocol_errors = b->protocol_errors;
    out->reloads = b->reloads;
}

void fastcgi__maybe_free(fastcgi *b)
{
    if (!b->freed || b->open_handles > 0)
        return;
    while (b->retired != NULL) {
        fc_upstream *up = b->retired;
        b->retired = up->next;
        free(up);
    }
    free(b);
}

/* Close every connection, answer what is left "shutdown", then go once
 * the last handle has closed. */
static void fc_free(mkd_backend *base)
{
    fastcgi *b = (fastcgi *)base;

    b->draining = b->freed = 1;
    /* A retired upstream has a connection until its last closes, which
     * frees it. */
    while (b->retired != NULL)
        fastcgi__conn_close(b->retired->conns);
    for (unsigned i = 0; i < b->nups; i++) {
        while (b->ups[i]->conns != NULL)
            fastcgi__conn_close(b->ups[i]->conns);
        free(b->ups[i]);
    }
    b->nups = 0;
    /* "shutdown" only for a request PHP-FPM never got (docs/PROTOCOL.md
     * §8.5: clients send those again elsewhere); one written to it,
     * even in part, may have run. */
    while (b->reqs != NULL) {
        int sent = b->reqs->started_ns != 0;

        fastcgi__req_answer(
            b, b->reqs, sent ? MKD_BACKEND_TIMEOUT : MKD_BACKEND_SHUTDOWN, NULL,
            0, sent ? "still running at shutdown" : "server shutting down");
    }
    fastcgi__maybe_free(b);
}

static const mkd_backend_ops fastcgi_ops = {
    .name = "fastcgi",
    .submit = fc_submit,
    .cancel = fc_cancel,
    .reload = fc_reload,
    .drain = fc_drain,
    .status = fc_status,
    .stats = fc_stats,
    .free = fc_free,
};

int fastcgi_new(uv_loop_t *loop, const fastcgi_config *cfg, mkd_backend **out,
                mkd_diag *d)
{
    fastcgi *b = calloc(1, sizeof *b);
    int r;

    mkd_diag_clear(d);
    *out = NULL;
    if (b == NULL)
        return mkd_fail(d, MKD_ERR_NOMEM, "out of memory");
    b->loop = loop;
    b->base.ops = &fastcgi_ops;
    if ((r = fastcgi__parse_upstreams(cfg->upstreams, b->ups, &b->nups, d)) !=
            MKD_OK ||
        (r = settings(b, cfg, d)) != MKD_OK) {
        for (unsigned i = 0; i < b->nups; i++)
            free(b->ups[i]);
        free(b);
        return r;
    }
    *out = &b->base;
    return MKD_OK;
}
