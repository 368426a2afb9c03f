/*
 * status.c -- the status text (control.h), from the rooms' counters.
 */
#include <unistd.h>

#include "control.h"
#include "mkd_util.h"

#define U(x) ((unsigned long long)(x))

static void put_connections(mkd_text *t, const yugi_stats *st)
{
    mkd_text_put(t, "connections %zu\n", st->connections);
    mkd_text_put(t, "connections.refusing %zu\n", st->refusing);
    mkd_text_put(t, "connections.accepted %llu\n", U(st->accepted));
    mkd_text_put(t, "connections.closed %llu\n", U(st->closed));
    mkd_text_put(t, "connections.max %u\n", st->max_connections);
    mkd_text_put(t, "connections.accept_errors %llu\n", U(st->accept_errors));
}

static void put_handshakes(mkd_text *t, const yugi_stats *st,
                           const yami_stats *ys)
{
    mkd_text_put(t, "handshakes.in_progress %u\n", st->handshakes_in_progress);
    mkd_text_put(t, "handshakes.full %llu\n", U(st->hs_full));
    mkd_text_put(t, "handshakes.resumed %llu\n", U(st->hs_resumed));
    mkd_text_put(t, "handshakes.full_per_s %llu\n", U(st->full_last_s));
    mkd_text_put(t, "handshakes.resumed_per_s %llu\n", U(st->resumed_last_s));
    mkd_text_put(t, "handshakes.full_per_s_10s %.1f\n",
                 (double)st->full_window / YUGI_RATE_WINDOW);
    mkd_text_put(t, "handshakes.resumed_per_s_10s %.1f\n",
                 (double)st->resumed_window / YUGI_RATE_WINDOW);
    mkd_text_put(t, "handshakes.hello_retry %llu\n", U(st->hs_retry));
    mkd_text_put(t, "handshakes.failed %llu\n", U(st->hs_failed));
    mkd_text_put(t, "handshakes.skipped %llu\n", U(ys->hellos_skipped));
    mkd_text_put(t, "handshakes.orphaned %llu\n", U(ys->hellos_orphaned));
}

static void put_traffic(mkd_text *t, const yugi_stats *st, const yami_stats *ys)
{
    mkd_text_put(t, "refused.connections %llu\n", U(st->refused_connections));
    mkd_text_put(t, "refused.pending_per_address %llu\n",
                 U(st->refused_pending));
    mkd_text_put(t, "refused.handshakes_in_progress %llu\n",
                 U(st->refused_handshakes));
    mkd_text_put(t, "refused.handshake_rate %llu\n", U(st->refused_rate));
    mkd_text_put(t, "refused.connections_per_address %llu\n",
                 U(st->refused_per_address));
    mkd_text_put(t, "refused.resume_rate %llu\n", U(st->refused_resume_rate));
    mkd_text_put(t, "proxy.headers %llu\n", U(st->proxy_headers));
    mkd_text_put(t, "proxy.refused %llu\n", U(st->proxy_refused));
    mkd_text_put(t, "proxy.untrusted %llu\n", U(st->proxy_untrusted));
    mkd_text_put(t, "requests %llu\n", U(st->requests));
    mkd_text_put(t, "responses %llu\n", U(st->responses));
    mkd_text_put(t, "requests.backend_overloaded %llu\n",
                 U(st->backend_overloaded));
    mkd_text_put(t, "requests.buffer_limit %llu\n", U(st->aborted));
    mkd_text_put(t, "requests.budget_overloaded %llu\n",
                 U(st->budget_overloaded));
    mkd_text_put(t, "queue.jobs %llu\n", U(ys->jobs_started - ys->jobs_done));
    mkd_text_put(t, "queue.jobs_total %llu\n", U(ys->jobs_started));
    mkd_text_put(t, "queue.jobs_inline %llu\n", U(ys->jobs_inline));
    mkd_text_put(t, "queue.full_hellos %llu\n", U(ys->full_queued));
    mkd_text_put(t, "queue.full_hellos_max %llu\n", U(ys->full_queued_max));
    mkd_text_put(t, "queue.hellos_run %llu\n", U(ys->hellos_run));
    mkd_text_put(t, "queue.rsa_slots %u\n", ys->rsa_slots);
    mkd_text_put(t, "queue.rsa_running %u\n", ys->rsa_running);
    mkd_text_put(t, "queue.rsa_waiting %u\n", ys->rsa_waiting);
    mkd_text_put(t, "buffers.budget %zu\n", ys->budget);
    mkd_text_put(t, "buffers.reassembly %zu\n", ys->partial_bytes);
    mkd_text_put(t, "buffers.output %zu\n", ys->output_bytes);
    mkd_text_put(t, "bytes.in %llu\n", U(st->bytes_in));
    mkd_text_put(t, "bytes.out %llu\n", U(st->bytes_out));
    mkd_text_put(t, "addresses.tracked %zu\n", st->addresses);
}

static void put_outcomes(mkd_text *t, const yugi_stats *st)
{
    for (int i = 0; i < YUGI_CR_COUNT; i++)
        mkd_text_put(t, "closed.%s %llu\n", yugi_close_reason_key(i),
                     U(st->close_reason[i]));
    for (int i = 1; i < YUGI_ERR_SLOTS; i++)
        if (st->errors[i])
            mkd_text_put(t, "errors.%s %llu\n", mk_err_name(i),
                         U(st->errors[i]));
}

size_t control_status(const control_sources *src, char *buf, size_t cap)
{
    yugi_stats st;
    yami_stats ys;
    mkd_text t;
    const char *why;
    int ready;

    yugi_server_stats(src->srv, &st);
    yami_get_stats(src->yami, &ys);
    mkd_text_init(&t, buf, cap);
    mkd_text_put(&t, "mkd %s\n",
                 st.shutting_down ? "shutting-down" : "running");
    ready = yugi_server_ready(src->srv, &why);
    mkd_text_put(&t, "ready %s\n", ready ? "yes" : "no");
    if (!ready)
        mkd_text_put(&t, "ready.reason %s\n", why);
    mkd_text_put(&t, "pid %ld\n", (long)getpid());
    mkd_text_put(&t, "uptime_s %llu\n", U(st.uptime_ms / 1000));
    put_connections(&t, &st);
    put_handshakes(&t, &st, &ys);
    put_traffic(&t, &st, &ys);
    put_outcomes(&t, &st);
    mkd_text_put(&t, "reloads %llu\n", U(st.reloads));
    mkd_text_put(&t, "reload_failures %llu\n", U(*src->reload_failures));
    if (src->metrics_port != NULL && *src->metrics_port != 0)
        mkd_text_put(&t, "metrics.port %u\n", *src->metrics_port);
    if (!t.overflow)
        t.len += yugi_server_backend_status(src->srv, buf + t.len, cap - t.len);
    return t.len;
}
