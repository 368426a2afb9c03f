/*
 * render.c -- the Prometheus text exposition format (0.0.4) from the
 * rooms' counters: the same numbers `mkd status` prints, named the
 * Prometheus way (docs/MKD.md lists them). Label values come from the
 * rooms' own tables (close reasons, request outcomes, mk_err names), so
 * they need no escaping.
 */
#include <stdio.h>

#include "metrics.h"

#define U(x) ((unsigned long long)(x))

/* "# HELP" and "# TYPE" of a family. */
static void family(mkd_text *t, const char *name, const char *type,
                   const char *help)
{
    mkd_text_put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(mkd_text *t, const char *name, const char *type,
                const char *help, unsigned long long v)
{
    family(t, name, type, help);
    mkd_text_put(t, "%s %llu\n", name, v);
}

/* One series of a histogram family, labelled lab (`kind="full"`, or ""
 * for none). The buckets are cumulative, their bounds in seconds. */
static void hist(mkd_text *t, const char *name, const char *lab,
                 const yugi_hist *h)
{
    const char *sep = lab[0] != '\0' ? "," : "";
    unsigned long long cum = 0;

    for (unsigned i = 0; i + 1 < YUGI_HIST_BUCKETS; i++) {
        cum += h->bucket[i];
        mkd_text_put(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, lab, sep,
                     (double)yugi_hist_bound_us(i) / 1e6, cum);
    }
    mkd_text_put(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, lab, sep,
                 U(h->count));
    /* No braces at all without labels: "name_sum{}" is not in every
     * parser's grammar. */
    mkd_text_put(t, "%s_sum%s%s%s %.6f\n", name, *sep ? "{" : "", lab,
                 *sep ? "}" : "", (double)h->sum_us / 1e6);
    mkd_text_put(t, "%s_count%s%s%s %llu\n", name, *sep ? "{" : "", lab,
                 *sep ? "}" : "", U(h->count));
}

static void put_connections(mkd_text *t, const yugi_stats *st)
{
    one(t, "mkd_connections", "gauge", "Connections open.", U(st->connections));
    one(t, "mkd_connections_max", "gauge", "The max_connections limit.",
        U(st->max_connections));
    one(t, "mkd_connections_accepted_total", "counter", "Connections accepted.",
        U(st->accepted));
    family(t, "mkd_connections_closed_total", "counter",
           "Connections closed, by reason.");
    for (int i = 0; i < YUGI_CR_COUNT; i++)
        mkd_text_put(t, "mkd_connections_closed_total{reason=\"%s\"} %llu\n",
                     yugi_close_reason_key(i), U(st->close_reason[i]));
    family(t, "mkd_refused_total", "counter",
           "Connections and handshakes refused (retry later), by limit.");
    mkd_text_put(t,
                 "mkd_refused_total{limit=\"max_connections\"} %llu\n"
                 "mkd_refused_total{limit=\"max_pending_per_address\"} %llu\n"
                 "mkd_refused_total{limit=\"max_handshakes\"} %llu\n"
                 "mkd_refused_total{limit=\"handshake_rate\"} %llu\n"
                 "mkd_refused_total{limit=\"max_connections_per_address\"} "
                 "%llu\n"
                 "mkd_refused_total{limit=\"resume_rate\"} %llu\n",
                 U(st->refused_connections), U(st->refused_pending),
                 U(st->refused_handshakes), U(st->refused_rate),
                 U(st->refused_per_address), U(st->refused_resume_rate));
}

static void put_proxy(mkd_text *t, const yugi_stats *st)
{
    family(t, "mkd_proxy_headers_total", "counter",
           "PROXY protocol headers, by outcome.");
    mkd_text_put(t,
                 "mkd_proxy_headers_total{outcome=\"taken\"} %llu\n"
                 "mkd_proxy_headers_total{outcome=\"refused\"} %llu\n"
                 "mkd_proxy_headers_total{outcome=\"untrusted\"} %llu\n",
                 U(st->proxy_headers), U(st->proxy_refused),
                 U(st->proxy_untrusted));
}

static void put_handshakes(mkd_text *t, const yugi_stats *st)
{
    one(t, "mkd_handshakes_in_progress", "gauge",
        "Full handshakes admitted and not finished.",
        U(st->handshakes_in_progress));
    family(t, "mkd_handshakes_total", "counter", "Handshakes done, by kind.");
    mkd_text_put(t,
                 "mkd_handshakes_total{kind=\"full\"} %llu\n"
                 "mkd_handshakes_total{kind=\"resumed\"} %llu\n",
                 U(st->hs_full), U(st->hs_resumed));
    one(t, "mkd_handshakes_failed_total", "counter", "Handshakes that failed.",
        U(st->hs_failed));
    family(t, "mkd_handshake_duration_seconds", "histogram",
           "From the first CLIENT_HELLO to the SERVER_HELLO, by kind.");
    hist(t, "mkd_handshake_duration_seconds", "kind=\"full\"",
         &st->hs_full_latency);
    hist(t, "mkd_handshake_duration_seconds", "kind=\"resumed\"",
         &st->hs_resumed_latency);
}

static void put_requests(mkd_text *t, const yugi_stats *st)
{
    family(t, "mkd_requests_total", "counter",
           "Requests ended, by outcome (ok, or the error they got).");
    for (int i = 0; i < YUGI_OUT_COUNT; i++)
        mkd_text_put(t, "mkd_requests_total{outcome=\"%s\"} %llu\n",
                     yugi_outcome_key(i), U(st->outcomes[i]));
    one(t, "mkd_slow_requests_total", "counter",
        "Requests slower than request_slowlog_ms.", U(st->slow_requests));
    family(t, "mkd_request_duration_seconds", "histogram",
           "From a request's last record to its answer.");
    hist(t, "mkd_request_duration_seconds", "", &st->request_latency);
    one(t, "mkd_received_bytes_total", "counter", "Bytes read from clients.",
        U(st->bytes_in));
    one(t, "mkd_sent_bytes_total", "counter", "Bytes written to clients.",
        U(st->bytes_out));
    family(t, "mkd_errors_total", "counter",
           "Connections failed by a protocol error, by its name.");
    for (int i = 1; i < YUGI_ERR_SLOTS; i++)
        if (st->errors[i])
            mkd_text_put(t, "mkd_errors_total{error=\"%s\"} %llu\n",
                         mk_err_name(i), U(st->errors[i]));
}

static void put_queues(mkd_text *t, const yami_stats *ys,
                       const mkd_backend_stats *b)
{
    one(t, "mkd_crypto_jobs_queued", "gauge",
        "Crypto jobs on the thread pool, not done.",
        U(ys->jobs_started - ys->jobs_done));
    one(t, "mkd_crypto_rsa_waiting", "gauge",
        "Full handshakes waiting for an RSA slot.", U(ys->rsa_waiting));
    family(t, "mkd_buffer_bytes", "gauge",
           "Bytes held against buffer_budget, by use.");
    mkd_text_put(t,
                 "mkd_buffer_bytes{use=\"reassembly\"} %zu\n"
                 "mkd_buffer_bytes{use=\"output\"} %zu\n",
                 ys->partial_bytes, ys->output_bytes);
    one(t, "mkd_backend_queue_depth", "gauge", "Requests waiting for a worker.",
        U(b->queued));
    one(t, "mkd_backend_queue_max", "gauge", "The queue_max limit.",
        U(b->queue_max));
}

static void put_workers(mkd_text *t, const mkd_backend_stats *b)
{
    family(t, "mkd_workers", "gauge", "PHP workers, by state.");
    mkd_text_put(t,
                 "mkd_workers{state=\"starting\"} %u\n"
                 "mkd_workers{state=\"idle\"} %u\n"
                 "mkd_workers{state=\"busy\"} %u\n"
                 "mkd_workers{state=\"stopping\"} %u\n",
                 b->workers_starting, b->workers_idle, b->workers_busy,
                 b->workers_stopping);
    one(t, "mkd_workers_crash_loop", "gauge",
        "1 while the pool is paused after the application kept dying.",
        U(b->crash_loop));
    one(t, "mkd_worker_crashes_total", "counter", "Workers that died unasked.",
        U(b->crashes));
    one(t, "mkd_worker_start_failures_total", "counter",
        "Workers that failed to start.", U(b->start_failures));
    one(t, "mkd_workers_spawned_total", "counter", "Workers started.",
        U(b->spawned));
    one(t, "mkd_workers_recycled_total", "counter",
        "Workers retired by a limit (requests, lifetime, memory).",
        U(b->recycled));
}

void metrics_render(const metrics_sources *src, mkd_text *t)
{
    yugi_stats st;
    yami_stats ys;
    mkd_backend_stats b;
    const char *why;

    yugi_server_stats(src->srv, &st);
    yami_get_stats(src->yami, &ys);
    yugi_server_backend_stats(src->srv, &b);
    one(t, "mkd_ready", "gauge", "1 when ready to serve (as /ready).",
        U(yugi_server_ready(src->srv, &why)));
    one(t, "mkd_uptime_seconds", "gauge", "Seconds since start.",
        U(st.uptime_ms / 1000));
    put_connections(t, &st);
    put_handshakes(t, &st);
    put_proxy(t, &st);
    put_requests(t, &st);
    put_queues(t, &ys, &b);
    put_workers(t, &b);
    one(t, "mkd_reloads_total", "counter", "Reloads applied (SIGHUP).",
        U(st.reloads));
    one(t, "mkd_reload_failures_total", "counter",
        "Reloads refused (the old configuration kept).",
        U(*src->reload_failures));
}
