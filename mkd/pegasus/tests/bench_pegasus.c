/*
 * bench_pegasus.c -- the worker layer alone: requests per second and
 * p50/p99 latency through Pegasus and real PHP workers (apps/hello), with
 * closed-loop clients on the backend API. No network, no crypto: the
 * ceiling that the worker layer puts on MKD end to end.
 *
 *   pegasus_bench [workers [seconds [app]]]     (defaults: nproc, 3, hello)
 *
 * Not a test: numbers depend on the machine. Results go to
 * docs/PERFORMANCE.md ("Workers (Pegasus + PHP)").
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "mkd_log.h"
#include "pegasus.h"

#define MAX_SAMPLES (1u << 22)

static uv_loop_t loop;
static mkd_backend *B;
static uint64_t *lat;
static size_t nlat;
static uint64_t done_n, errors;
static int running;

typedef struct client {
    uint64_t t0;
} client;

static void submit_one(client *c);

static void on_done(void *token, mkd_backend_status status, const uint8_t *body,
                    size_t len, const char *text,
                    const mkd_backend_timing *timing)
{
    client *c = token;
    uint64_t now = uv_hrtime();

    (void)text;
    (void)timing;
    if (status != 0 || len < 13 || memcmp(body, "Hello, world!", 13) != 0)
        errors++;
    if (nlat < MAX_SAMPLES)
        lat[nlat++] = now - c->t0;
    done_n++;
    if (running)
        submit_one(c);
}

static void submit_one(client *c)
{
    static const char req[] = "hello from the benchmark";
    mkd_request_ctx ctx;
    uint8_t *body = malloc(sizeof req - 1);

    if (body == NULL)
        abort();
    memcpy(body, req, sizeof req - 1);
    memset(&ctx, 0, sizeof ctx);
    snprintf(ctx.peer_addr, sizeof ctx.peer_addr, "127.0.0.1");
    ctx.peer_port = 40000;
    c->t0 = uv_hrtime();
    if (B->ops->submit(B, &ctx, body, sizeof req - 1, on_done, c) != 0)
        errors++;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t done_at_stop;

static void on_stop(uv_timer_t *t)
{
    (void)t;
    running = 0;
    done_at_stop = done_n;
    uv_stop(&loop);
}

static void warm(uv_timer_t *t)
{
    (void)t;
    uv_stop(&loop);
}

int main(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned workers =
        argc > 1 ? (unsigned)atoi(argv[1]) : (unsigned)(ncpu > 0 ? ncpu : 2);
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    const char *app =
        argc > 3 ? argv[3] : PEGASUS_TEST_ROOT "/apps/hello/app.php";
    static const unsigned conc[] = {1, 8, 32};
    pegasus_config cfg;
    mkd_diag d;
    uv_timer_t t;

    signal(SIGPIPE, SIG_IGN);
    mkd_log_set_level(MKD_LOG_WARN);
    lat = malloc(MAX_SAMPLES * sizeof *lat);
    if (lat == NULL || uv_loop_init(&loop) != 0 || uv_timer_init(&loop, &t))
        return 1;
    pegasus_config_defaults(&cfg);
    cfg.php = PEGASUS_TEST_PHP;
    cfg.arcangelo = PEGASUS_TEST_ROOT "/arcangelo/bin/arcangelo.php";
    cfg.app = app;
    cfg.workers_min = workers;
    cfg.queue_max = 1024;
    if (pegasus_new(&loop, &cfg, &B, &d) != MKD_OK) {
        fprintf(stderr, "%s\n", d.text);
        return 1;
    }
    /* Let the workers start. */
    if (uv_timer_start(&t, warm, 500, 0) != 0)
        return 1;
    (void)uv_run(&loop, UV_RUN_DEFAULT);
    printf("pegasus: %u workers, %s, %.1f s per run\n", workers, app, seconds);
    printf("%-12s %12s %10s %10s %8s\n", "concurrency", "requests/s",
           "p50 (us)", "p99 (us)", "errors");
    for (size_t k = 0; k < sizeof conc / sizeof conc[0]; k++) {
        client *cs = calloc(conc[k], sizeof *cs);
        uint64_t t0;
        double el;

        if (cs == NULL)
            return 1;
        nlat = 0;
        done_n = errors = 0;
        running = 1;
        t0 = uv_hrtime();
        for (unsigned i = 0; i < conc[k]; i++)
            submit_one(&cs[i]);
        if (uv_timer_start(&t, on_stop, (uint64_t)(seconds * 1000), 0) != 0)
            return 1;
        (void)uv_run(&loop, UV_RUN_DEFAULT);
        el = (double)(uv_hrtime() - t0) / 1e9;
        /* Let the last answers come in before the next run. */
        if (uv_timer_start(&t, warm, 200, 0) != 0)
            return 1;
        (void)uv_run(&loop, UV_RUN_DEFAULT);
        qsort(lat, nlat, sizeof *lat, cmp_u64);
        printf("%-12u %12.0f %10.1f %10.1f %8llu\n", conc[k],
               (double)done_at_stop / el,
               nlat ? (double)lat[nlat / 2] / 1e3 : 0.0,
               nlat ? (double)lat[nlat * 99 / 100] / 1e3 : 0.0,
               (unsigned long long)errors);
        free(cs);
    }
    B->ops->free(B);
    uv_close((uv_handle_t *)&t, NULL);
    (void)uv_run(&loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&loop);
    free(lat);
    return 0;
}
