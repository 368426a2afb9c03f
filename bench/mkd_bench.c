/*
 * mkd_bench.c -- MKD on loopback, in one run:
 *   - the cost of one RSA-2048 private operation, as `openssl speed -seconds
 *     3 rsa2048` measures it on this machine now (the baseline);
 *   - full and resumed handshakes per second, and the daemon's own CPU time
 *     per handshake (utime + stime of the mkd process from /proc/PID/stat,
 *     before and after), as a ratio to the RSA baseline;
 *   - the memory the daemon adds per idle established connection, with
 *     10,000 of them open (VmRSS before and after).
 *
 * Each handshake is: TCP connect, CLIENT_HELLO, SERVER_HELLO, then the
 * client drops the socket (no request), so the figure is the daemon's whole
 * cost of a connection that handshakes: accept, framing, the Yami job, the
 * write, the close.
 *
 * Usage: mkd_bench [--seconds=N] [--clients=N] [--idle=N] [--quick]
 * (run from the project root; MKD_BIN overrides the mkd binary). Figures
 * are reported, never judged: the exit status is 0 whenever it ran, 2 for
 * a bad command line.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "mkt.h"
#include "testlib.h"

static mkt_daemon D;
static volatile int stop_flag;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- libmegaki alone, in this process -------------------------------- */

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Server CPU of mk_session_new_server + mk_session_handle(CLIENT_HELLO) +
 * mk_session_free, with the daemon's own key, averaged over n hellos made
 * beforehand: what the daemon cannot do with less. */
static double core_server_hs(const char *key_pem, int resumed, int n)
{
    mk_server_config *sc = NULL;
    mk_client_config *cc = mkt_client_config(D.pub);
    mk_server_key *key = NULL;
    mk_ticket_key tk;
    uint8_t *pem = NULL, *hellos = NULL, blob[MK_SESSION_BLOB_MAX];
    uint8_t *out = malloc(MK_HANDLE_OUT_LEN);
    size_t *lens = calloc((size_t)n, sizeof *lens), blen = 0, plen = 0;
    double t0, t = 0;
    FILE *f = fopen(key_pem, "rb");

    if (f == NULL || cc == NULL || out == NULL || lens == NULL)
        goto out;
    pem = malloc(65536);
    plen = fread(pem, 1, 65536, f);
    fclose(f);
    memset(&tk, 0x33, sizeof tk);
    if (mk_server_key_load_pem(&key, pem, plen) != MK_OK ||
        mk_server_config_new(&sc, mk_env_system()) != MK_OK ||
        mk_server_config_add_key(sc, key) != MK_OK ||
        mk_server_config_set_ticket_keys(sc, &tk, 1) != MK_OK)
        goto out;
    if (resumed) {
        /* One full handshake in memory for a ticket. */
        mk_session *c = NULL, *s = NULL;
        size_t hl = 0, ul = 0;
        mk_event ev;
        if (mk_session_new_client(&c, cc, NULL, 0) != MK_OK ||
            mk_session_new_server(&s, sc) != MK_OK ||
            mk_client_hello(c, out, MK_HANDLE_OUT_LEN, &hl) != MK_OK ||
            mk_session_handle(s, out, hl, out, MK_HANDLE_OUT_LEN, &ev) !=
                MK_OK ||
            mk_frame_check(out, ev.len, &ul) != MK_OK ||
            mk_session_handle(c, out, ul, out, MK_HANDLE_OUT_LEN, &ev) !=
                MK_OK ||
            mk_session_export(c, blob, sizeof blob, &blen) != MK_OK)
            goto out;
        mk_session_free(c);
        mk_session_free(s);
    }
    hellos = malloc((size_t)n * MK_HANDLE_OUT_LEN);
    for (int i = 0; i < n; i++) {
        mk_session *c = NULL;
        if (mk_session_new_client(&c, cc, resumed ? blob : NULL,
                                  resumed ? blen : 0) != MK_OK ||
            mk_client_hello(c, hellos + (size_t)i * MK_HANDLE_OUT_LEN,
                            MK_HANDLE_OUT_LEN, &lens[i]) != MK_OK)
            goto out;
        mk_session_free(c);
    }
    t0 = thread_cpu_s();
    for (int i = 0; i < n; i++) {
        mk_session *s = NULL;
        mk_event ev;
        if (mk_session_new_server(&s, sc) != MK_OK ||
            mk_session_handle(s, hellos + (size_t)i * MK_HANDLE_OUT_LEN,
                              lens[i], out, MK_HANDLE_OUT_LEN, &ev) != MK_OK ||
            ev.type != MK_EV_ESTABLISHED)
            goto out;
        mk_session_free(s);
    }
    t = (thread_cpu_s() - t0) / n;
out:
    free(pem);
    free(hellos);
    free(out);
    free(lens);
    mk_server_config_unref(sc);
    if (cc != NULL)
        mk_client_config_unref(cc);
    return t;
}

typedef struct loader {
    pthread_t t;
    mk_client_config *cc;
    const uint8_t *blob;
    size_t blob_len;
    unsigned long done, failed;
} loader;

static void *load_main(void *arg)
{
    loader *l = arg;
    while (!stop_flag) {
        mkt_client c;
        int r = mkt_client_open(&c, l->cc, NULL, D.port, l->blob, l->blob_len);
        if (r == MK_OK && (l->blob == NULL || mkt_client_resumed(&c)))
            l->done++;
        else
            l->failed++;
        /* Drop the socket without a close record: handshake cost only. */
        c.eof = 1;
        mkt_client_close(&c);
    }
    return NULL;
}

typedef struct run_result {
    double per_s;
    double cpu_per_hs; /* seconds of daemon CPU per handshake */
    unsigned long n, failed;
} run_result;

static run_result run(mk_client_config *cc, const uint8_t *blob, size_t blen,
                      int clients, double seconds)
{
    static loader ls[64];
    run_result rr;
    long long t0, t1;
    double w0, w1;
    long hz = sysconf(_SC_CLK_TCK);

    memset(&rr, 0, sizeof rr);
    stop_flag = 0;
    t0 = mkt_cpu_ticks(D.pid);
    w0 = now_s();
    for (int i = 0; i < clients; i++) {
        memset(&ls[i], 0, sizeof ls[i]);
        ls[i].cc = cc;
        ls[i].blob = blob;
        ls[i].blob_len = blen;
        if (pthread_create(&ls[i].t, NULL, load_main, &ls[i]) != 0)
            exit(1);
    }
    while (now_s() - w0 < seconds)
        usleep(20000);
    stop_flag = 1;
    for (int i = 0; i < clients; i++) {
        pthread_join(ls[i].t, NULL);
        rr.n += ls[i].done;
        rr.failed += ls[i].failed;
    }
    w1 = now_s();
    usleep(200000); /* let the daemon finish its closes */
    t1 = mkt_cpu_ticks(D.pid);
    rr.per_s = (double)rr.n / (w1 - w0);
    rr.cpu_per_hs = rr.n ? (double)(t1 - t0) / (double)hz / (double)rr.n : 0;
    return rr;
}

/* Open n established, idle connections (resumed: cheap for both sides). */
static int idle_memory(mk_client_config *cc, const uint8_t *blob, size_t blen,
                       int n, long *rss0, long *rss1)
{
    mkt_client *cs = calloc((size_t)n, sizeof *cs);
    int ok = 0;

    if (cs == NULL)
        return 0;
    sleep(1);
    *rss0 = mkt_rss_kb(D.pid);
    for (int i = 0; i < n; i++) {
        if (mkt_client_open(&cs[i], cc, NULL, D.port, blob, blen) != MK_OK) {
            fprintf(stderr, "idle connection %d failed\n", i);
            mkt_client_close(&cs[i]);
            cs[i].fd = -1;
            break;
        }
        /* Drop the client's receive buffer: only the daemon is measured,
         * but the bench must not run out of memory either. */
        free(cs[i].in);
        cs[i].in = NULL;
        cs[i].in_len = cs[i].in_cap = 0;
        ok++;
    }
    sleep(1);
    *rss1 = mkt_rss_kb(D.pid);
    for (int i = 0; i < ok; i++) {
        cs[i].eof = 1;
        mkt_client_close(&cs[i]);
    }
    free(cs);
    return ok;
}

static void usage(void)
{
    printf("usage: mkd_bench [--seconds=S] [--clients=N] [--idle=N] "
           "[--quick]\n"
           "  --seconds S   seconds per handshake run (default 5)\n"
           "  --clients N   client threads, 1..64 (default 3)\n"
           "  --idle N      idle connections for the memory figure "
           "(default 10000)\n"
           "  --quick       a short smoke run (0.5 s, 200 idle)\n"
           "Run from the project root; MKD_BIN names the mkd binary.\n"
           "Exit status: 0 when it ran (figures are reported, not judged), 2 "
           "for a bad command line.\n");
}

/* --quick wins over --seconds and --idle, wherever it stands. */
static void parse_args(int argc, char **argv, double *seconds, int *clients,
                       int *idle, int *quick)
{
    static const struct option longs[] = {
        {"seconds", required_argument, NULL, 's'},
        {"clients", required_argument, NULL, 'c'},
        {"idle", required_argument, NULL, 'i'},
        {"quick", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    while ((ch = tl_getopt(argc, argv, "h", longs, usage)) != -1) {
        if (ch == 's')
            *seconds = tl_opt_double("--seconds", optarg, 0.01, 3600);
        else if (ch == 'c')
            *clients = (int)tl_opt_uint("--clients", optarg, 1, 64);
        else if (ch == 'i')
            *idle = (int)tl_opt_uint("--idle", optarg, 0, 1000000);
        else if (ch == 'q')
            *quick = 1;
    }
    if (*quick) {
        *seconds = 0.5;
        *idle = 200;
    }
}

int main(int argc, char **argv)
{
    double seconds = 5, sign_s, verify_s = 0;
    int clients = 3, idle = 10000, quick = 0, idle_ok;
    const char *args[] = {"--handshake_rate=0",
                          "--max_pending_per_address=100000",
                          "--max_connections=30000",
                          "--max_handshakes=100000",
                          "--max_connections_per_address=100000",
                          "--resume_rate=0",
                          "--log_level=warn",
                          NULL};
    mk_client_config *cc;
    mkt_client c;
    uint8_t blob[MK_SESSION_BLOB_MAX];
    size_t blen = 0;
    run_result full, res;
    long rss0 = 0, rss1 = 0;
    double core_full = 0, core_res = 0;
    struct rlimit rl;

    tl_set_prog("mkd_bench");
    parse_args(argc, argv, &seconds, &clients, &idle, &quick);
    signal(SIGPIPE, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if ((rlim_t)idle + 100 > rl.rlim_cur)
        idle = (int)rl.rlim_cur - 100;

    sign_s = mkt_openssl_rsa2048(quick ? 1 : 3, &verify_s);
    if (mkt_daemon_mkdir(&D) != 0 || mkt_daemon_start(&D, args) != 0) {
        fprintf(stderr, "mkd_bench: cannot start mkd (%s)\n", mkt_mkd_path());
        mkt_daemon_cleanup(&D);
        return 0;
    }
    cc = mkt_client_config(D.pub);
    if (cc == NULL || mkt_client_open(&c, cc, NULL, D.port, NULL, 0) != MK_OK ||
        mkt_client_export(&c, blob, sizeof blob, &blen) != MK_OK) {
        fprintf(stderr, "mkd_bench: first handshake failed\n");
        goto out;
    }
    mkt_client_close(&c);

    {
        char kp[400];
        snprintf(kp, sizeof kp, "%s/server.pem", D.dir);
        core_full = core_server_hs(kp, 0, quick ? 100 : 2000);
        core_res = core_server_hs(kp, 1, quick ? 100 : 2000);
    }
    full = run(cc, NULL, 0, clients, seconds);
    res = run(cc, blob, blen, clients, seconds);
    idle_ok = idle_memory(cc, blob, blen, idle, &rss0, &rss1);

    printf("## MKD benchmark (%s)\n\n", quick ? "quick" : "full");
    printf("openssl speed rsa2048: private op %.1f us (%.0f/s), public op "
           "%.1f us\n",
           sign_s * 1e6, sign_s > 0 ? 1 / sign_s : 0, verify_s * 1e6);
    printf("clients: %d threads, %.1f s per run, same machine as mkd\n\n",
           clients, seconds);
    printf("| handshake | per second | failed | mkd CPU per handshake | "
           "ratio to one RSA private op |\n|---|---|---|---|---|\n");
    printf("| full | %.0f | %lu | %.1f us | %.2f |\n", full.per_s, full.failed,
           full.cpu_per_hs * 1e6, sign_s > 0 ? full.cpu_per_hs / sign_s : 0);
    printf("| resumed | %.0f | %lu | %.1f us | %.2f |\n", res.per_s, res.failed,
           res.cpu_per_hs * 1e6, sign_s > 0 ? res.cpu_per_hs / sign_s : 0);
    printf("| libmegaki alone, full (in-process, same key) | - | - | %.1f us "
           "| %.2f |\n",
           core_full * 1e6, sign_s > 0 ? core_full / sign_s : 0);
    printf("| libmegaki alone, resumed | - | - | %.1f us | %.2f |\n",
           core_res * 1e6, sign_s > 0 ? core_res / sign_s : 0);
    printf("\ndaemon overhead beyond libmegaki: full %.1f us, resumed %.1f us "
           "per handshake (accept, framing, job hand-off, write, close)\n",
           (full.cpu_per_hs - core_full) * 1e6,
           (res.cpu_per_hs - core_res) * 1e6);
    printf("\nresumed / full CPU: %.2f (target <= 0.25); full / RSA op: %.2f "
           "(target <= 1.4)\n",
           full.cpu_per_hs > 0 ? res.cpu_per_hs / full.cpu_per_hs : 0,
           sign_s > 0 ? full.cpu_per_hs / sign_s : 0);
    printf("idle connections: %d established, VmRSS %ld -> %ld kB: %.0f "
           "bytes per connection (target < 8192)\n",
           idle_ok, rss0, rss1,
           idle_ok ? (double)(rss1 - rss0) * 1024.0 / idle_ok : 0);
out:
    if (cc != NULL)
        mk_client_config_unref(cc);
    (void)mkt_daemon_stop(&D, SIGTERM, 20000);
    mkt_daemon_cleanup(&D);
    return 0;
}
