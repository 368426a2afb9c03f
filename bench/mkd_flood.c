/*
 * mkd_flood.c -- mkd under a flood of full handshakes, in one run:
 *   - the RSA capacity of the daemon: `openssl speed rsa2048` now, times
 *     the crypto threads mkd lets do RSA work (queue.rsa_slots);
 *   - an idle phase: legitimate clients alone. Resumed clients (each a
 *     connection, a resumed handshake, one request, a close) and
 *     full-handshake clients with a deadline, each from its own address,
 *     each at a steady pace;
 *   - a flood phase: the same clients, beside a flood of full hellos at
 *     --factor times the RSA capacity from 65,024 source addresses
 *     (127.10.0.1 .. 127.10.255.254, so no per-address limit applies),
 *     half of them waiting for their answer, half hit-and-run (the hello,
 *     then close at once).
 * Reported: the resumed clients' success rate and p50/p99 in each phase
 * (target: 100% served, flood p99 under 3x idle p99), the full-handshake
 * clients' outcomes (target: each gets an answer or retry-later within its
 * deadline, none hangs), mkd's memory growth (VmRSS sampled every 100 ms;
 * target under 32 MiB), and from the status view what became of the
 * flood's hellos: refused, run, skipped for a closed connection, or run
 * while their connection closed (orphaned).
 *
 * Usage: mkd_flood_bench [--seconds=N] [--factor=F | --rate=HELLOS_PER_S]
 *                        [--quick] [-- OPTION...]
 * (the options after "--" go to mkd, e.g. -- --backlog=4096)
 * (run from the project root; MKD_BIN overrides the mkd binary). Figures
 * are reported, never judged: the exit status is 0 whenever it ran, 2 for
 * a bad command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mkt.h"
#include "testlib.h"

#define FLOOD_THREADS 2
#define FLOOD_OPEN    6000  /* sockets open at once per flood thread */
#define FLOOD_WAIT_MS 10000 /* how long a waiting flooder waits */
#define HELLOS        64
#define RESUMERS      4
#define RESUME_PER_S  20 /* per resumed client */
#define FULLS         2
#define FULL_PER_S    2 /* per full-handshake client */
#define FULL_DEADLINE 5000
#define RESUME_LIMIT  10000 /* a resumed client's wait, for a count */
/* An alert's code, after its header and the magic (PROTOCOL.md §4.4). */
#define ALERT_CODE_AT (MK_UNIT_HEADER_LEN + 4)

static mkt_daemon D;
static atomic_int stop_legit, stop_flood;
static atomic_int phase; /* 0 idle, 1 flood, 2 after */
static uint8_t hellos[HELLOS][MK_HANDLE_OUT_LEN];
static size_t hello_len[HELLOS];
static mk_client_config *CC;
static uint8_t blob[MK_SESSION_BLOB_MAX];
static size_t blob_len;

/* --- latencies ---------------------------------------------------------- */

/* Monotonic milliseconds, to the microsecond. */
static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct lat {
    double *v; /* ms */
    size_t n, cap;
} lat;

static void lat_add(lat *l, double ms)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        double *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            tl_die("out of memory");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-th percentile (0..100) of l, sorted in place; 0 when empty. */
static double lat_pct(lat *l, double p)
{
    size_t i;

    if (l->n == 0)
        return 0;
    qsort(l->v, l->n, sizeof *l->v, cmp_double);
    i = (size_t)(p / 100.0 * (double)(l->n - 1) + 0.5);
    return l->v[i];
}

static void lat_merge(lat *into, const lat *from)
{
    for (size_t i = 0; i < from->n; i++)
        lat_add(into, from->v[i]);
}

/* --- legitimate clients -------------------------------------------------- */

typedef struct legit {
    pthread_t t;
    char src[32];
    int full; /* full handshakes, else resumed requests */
    lat ms[2];
    /* resumed: ok / failed; full: answered / retry-later / failed / hung */
    unsigned long ok[2], retry[2], failed[2], hung[2];
} legit;

static void pace(uint64_t *next, unsigned per_s)
{
    uint64_t now = tl_now_ms();

    *next += 1000 / per_s;
    if (*next > now)
        tl_sleep_ms((unsigned)(*next - now));
    else
        *next = now; /* behind: do not catch up in a burst */
}

/* A resumed connection, one request, a close. */
static void resumed_once(legit *g, int ph)
{
    double t0 = now_ms();
    uint8_t req[100] = {1}, *resp = NULL;
    size_t rlen = 0;
    mkt_client c;
    int r = mkt_client_open_within(&c, CC, g->src, D.port, blob, blob_len,
                                   RESUME_LIMIT);

    if (r == MK_OK && mkt_client_resumed(&c))
        r = mkt_client_request(&c, req, sizeof req, &resp, &rlen, NULL);
    else if (r == MK_OK)
        r = MK_ERR_STATE; /* not resumed: not what is measured */
    mkt_client_close(&c);
    free(resp);
    if (r == MK_OK && rlen == sizeof req) {
        g->ok[ph]++;
        lat_add(&g->ms[ph], now_ms() - t0);
    } else {
        g->failed[ph]++;
    }
}

/* A full handshake that must end within FULL_DEADLINE: established or
 * told to retry later; anything slower has hung. */
static void full_once(legit *g, int ph)
{
    double t0 = now_ms(), dt;
    mkt_client c;
    int r =
        mkt_client_open_within(&c, CC, g->src, D.port, NULL, 0, FULL_DEADLINE);

    mkt_client_close(&c);
    dt = now_ms() - t0;
    if (r == MK_ERR_TIMEOUT || dt > FULL_DEADLINE)
        g->hung[ph]++;
    else if (r == MK_OK)
        g->ok[ph]++;
    else if (r == MK_ERR_PEER_RETRY_LATER)
        g->retry[ph]++;
    else
        g->failed[ph]++;
    if (r == MK_OK)
        lat_add(&g->ms[ph], dt);
}

static void *legit_main(void *arg)
{
    legit *g = arg;
    uint64_t next = tl_now_ms();

    while (!atomic_load(&stop_legit)) {
        int ph = atomic_load(&phase);
        if (ph > 1) {
            tl_sleep_ms(10);
            continue;
        }
        if (g->full)
            full_once(g, ph);
        else
            resumed_once(g, ph);
        pace(&next, g->full ? FULL_PER_S : RESUME_PER_S);
    }
    return NULL;
}

/* --- the flood ----------------------------------------------------------- */

enum { F_CONNECTING = 1, F_WAITING };

typedef struct fconn {
    int state;
    uint64_t deadline;
} fconn;

typedef struct flooder {
    pthread_t t;
    unsigned id;
    double per_s;
    int ep;
    fconn *conns; /* by fd */
    int maxfd, open;
    unsigned long started, not_started, connect_failed, hit_and_run;
    unsigned long answered, retry_later, other_alert, closed, timed_out;
} flooder;

static void f_close(flooder *f, int fd)
{
    f->conns[fd].state = 0;
    f->open--;
    close(fd);
}

/* A new flood connection from the n-th flood address, connecting. */
static void f_start(flooder *f, unsigned long n)
{
    struct sockaddr_in src, dst;
    struct epoll_event ev;
    unsigned a = (unsigned)(n % 65024);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0 || fd >= f->maxfd) {
        if (fd >= 0)
            close(fd);
        f->not_started++;
        return;
    }
    memset(&src, 0, sizeof src);
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f0a0000u | ((a / 254) << 8) | (a % 254 + 1));
    dst = src;
    dst.sin_port = htons(D.port);
    dst.sin_addr.s_addr = htonl(0x7f000001u);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 &&
         errno != EINPROGRESS)) {
        close(fd);
        f->connect_failed++;
        return;
    }
    ev.events = EPOLLOUT;
    ev.data.fd = fd;
    if (epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        f->not_started++;
        return;
    }
    f->conns[fd].state = F_CONNECTING;
    f->conns[fd].deadline = tl_now_ms() + FLOOD_WAIT_MS;
    f->open++;
    f->started++;
}

/* Connected: the hello; then wait for the answer, or hit and run. */
static void f_connected(flooder *f, int fd)
{
    unsigned k = (unsigned)(fd * 7 + f->started) % HELLOS;
    struct epoll_event ev;
    int err = 0;
    socklen_t elen = sizeof err;

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0 ||
        send(fd, hellos[k], hello_len[k], MSG_NOSIGNAL) !=
            (ssize_t)hello_len[k]) {
        f->connect_failed++;
        f_close(f, fd);
        return;
    }
    if ((fd + f->started) % 2 == 0) {
        f->hit_and_run++;
        f_close(f, fd);
        return;
    }
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(f->ep, EPOLL_CTL_MOD, fd, &ev) != 0) {
        f_close(f, fd);
        return;
    }
    f->conns[fd].state = F_WAITING;
}

/* The first bytes of the answer say what it was. */
static void f_answer(flooder *f, int fd)
{
    uint8_t b[64];
    ssize_t n = recv(fd, b, sizeof b, 0);

    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0)
        f->closed++;
    else if (b[0] == MK_UNIT_SERVER_HELLO)
        f->answered++;
    else if (b[0] == MK_UNIT_ALERT && n > ALERT_CODE_AT &&
             b[ALERT_CODE_AT] == MK_ALERT_RETRY_LATER)
        f->retry_later++;
    else
        f->other_alert++;
    f_close(f, fd);
}

static void f_sweep(flooder *f)
{
    uint64_t now = tl_now_ms();

    for (int fd = 0; fd < f->maxfd; fd++)
        if (f->conns[fd].state != 0 && f->conns[fd].deadline < now) {
            f->timed_out++;
            f_close(f, fd);
        }
}

static void *flood_main(void *arg)
{
    flooder *f = arg;
    struct epoll_event evs[256];
    uint64_t t0 = tl_now_ms(), last_sweep = t0;
    unsigned long n = f->id;

    while (!atomic_load(&stop_flood)) {
        double due = (double)(tl_now_ms() - t0) * f->per_s / 1000.0;
        int k;
        while ((double)(f->started + f->not_started + f->connect_failed) <
               due) {
            if (f->open >= FLOOD_OPEN)
                f->not_started++;
            else
                f_start(f, n);
            n += FLOOD_THREADS;
        }
        k = epoll_wait(f->ep, evs, 256, 1);
        for (int i = 0; i < k; i++) {
            int fd = evs[i].data.fd;
            if (f->conns[fd].state == F_CONNECTING)
                f_connected(f, fd);
            else if (f->conns[fd].state == F_WAITING)
                f_answer(f, fd);
        }
        if (tl_now_ms() - last_sweep >= 100) {
            f_sweep(f);
            last_sweep = tl_now_ms();
        }
    }
    for (int fd = 0; fd < f->maxfd; fd++)
        if (f->conns[fd].state != 0)
            f_close(f, fd);
    return NULL;
}

/* --- the run ------------------------------------------------------------- */

static void make_hellos(void)
{
    for (int i = 0; i < HELLOS; i++) {
        mk_session *s = NULL;
        if (mk_session_new_client(&s, CC, NULL, 0) != MK_OK ||
            mk_client_hello(s, hellos[i], MK_HANDLE_OUT_LEN, &hello_len[i]) !=
                MK_OK)
            tl_die("cannot make a hello");
        mk_session_free(s);
    }
}

/* Sleep for ms, sampling mkd's VmRSS every 100 ms; the largest seen. */
static long sample_rss(unsigned ms)
{
    uint64_t until = tl_now_ms() + ms;
    long max = 0;

    while (tl_now_ms() < until) {
        long kb = mkt_rss_kb(D.pid);
        if (kb > max)
            max = kb;
        tl_sleep_ms(100);
    }
    return max;
}

typedef struct counters {
    long long run, skipped, orphaned, refused_hs, refused_rate, refused_conn,
        refused_pending, full, accept_errors;
} counters;

static void read_counters(counters *c)
{
    c->run = mkt_status(&D, "queue.hellos_run");
    c->skipped = mkt_status(&D, "handshakes.skipped");
    c->orphaned = mkt_status(&D, "handshakes.orphaned");
    c->refused_hs = mkt_status(&D, "refused.handshakes_in_progress");
    c->refused_rate = mkt_status(&D, "refused.handshake_rate");
    c->refused_conn = mkt_status(&D, "refused.connections");
    c->refused_pending = mkt_status(&D, "refused.pending_per_address");
    c->full = mkt_status(&D, "handshakes.full");
    c->accept_errors = mkt_status(&D, "connections.accept_errors");
}

static void start_legit(legit *g)
{
    for (int i = 0; i < RESUMERS + FULLS; i++) {
        memset(&g[i], 0, sizeof g[i]);
        g[i].full = i >= RESUMERS;
        snprintf(g[i].src, sizeof g[i].src, "127.%d.0.%d", g[i].full ? 2 : 1,
                 i + 1);
        if (pthread_create(&g[i].t, NULL, legit_main, &g[i]) != 0)
            tl_die("pthread_create");
    }
}

static void start_flood(flooder *f, double per_s, int maxfd)
{
    for (unsigned i = 0; i < FLOOD_THREADS; i++) {
        memset(&f[i], 0, sizeof f[i]);
        f[i].id = i;
        f[i].per_s = per_s / FLOOD_THREADS;
        f[i].maxfd = maxfd;
        f[i].ep = epoll_create1(EPOLL_CLOEXEC);
        f[i].conns = calloc((size_t)maxfd, sizeof *f[i].conns);
        if (f[i].ep < 0 || f[i].conns == NULL)
            tl_die("epoll:");
        if (pthread_create(&f[i].t, NULL, flood_main, &f[i]) != 0)
            tl_die("pthread_create");
    }
}

static void report_resumed(legit *g, double seconds)
{
    lat all[2] = {{0}};
    unsigned long ok[2] = {0}, bad[2] = {0};
    double p99[2];

    for (int i = 0; i < RESUMERS; i++)
        for (int ph = 0; ph < 2; ph++) {
            lat_merge(&all[ph], &g[i].ms[ph]);
            ok[ph] += g[i].ok[ph];
            bad[ph] += g[i].failed[ph];
        }
    printf("\n| resumed clients (%d x %d/s) | served | failed | p50 | p99 "
           "|\n|---|---|---|---|---|\n",
           RESUMERS, RESUME_PER_S);
    for (int ph = 0; ph < 2; ph++) {
        double p50 = lat_pct(&all[ph], 50);
        p99[ph] = lat_pct(&all[ph], 99);
        printf("| %s (%.0f s) | %lu (%.1f%%) | %lu | %.2f ms | %.2f ms |\n",
               ph ? "flood" : "idle", seconds, ok[ph],
               ok[ph] + bad[ph] ? 100.0 * ok[ph] / (ok[ph] + bad[ph]) : 0,
               bad[ph], p50, p99[ph]);
        free(all[ph].v);
    }
    printf("\nresumed p99 flood / idle: %.2f (target < 3); served during the "
           "flood: %.1f%% (target 100%%)\n",
           p99[0] > 0 ? p99[1] / p99[0] : 0,
           ok[1] + bad[1] ? 100.0 * ok[1] / (ok[1] + bad[1]) : 0);
}

static void report_full(legit *g)
{
    printf("\n| full-handshake clients (%d x %d/s, deadline %d ms) | "
           "established | retry later | failed | hung | p99 established "
           "|\n|---|---|---|---|---|---|\n",
           FULLS, FULL_PER_S, FULL_DEADLINE);
    for (int ph = 0; ph < 2; ph++) {
        lat all = {0};
        unsigned long ok = 0, retry = 0, bad = 0, hung = 0;
        for (int i = RESUMERS; i < RESUMERS + FULLS; i++) {
            lat_merge(&all, &g[i].ms[ph]);
            ok += g[i].ok[ph];
            retry += g[i].retry[ph];
            bad += g[i].failed[ph];
            hung += g[i].hung[ph];
        }
        printf("| %s | %lu | %lu | %lu | %lu | %.1f ms |\n",
               ph ? "flood" : "idle", ok, retry, bad, hung, lat_pct(&all, 99));
        free(all.v);
    }
}

static void report_flood(const flooder *f, double seconds, double target,
                         const counters *c0, const counters *c1)
{
    unsigned long st = 0, ns = 0, cf = 0, hr = 0, an = 0, rl = 0, oa = 0,
                  cl = 0, to = 0;

    for (int i = 0; i < FLOOD_THREADS; i++) {
        st += f[i].started;
        ns += f[i].not_started;
        cf += f[i].connect_failed;
        hr += f[i].hit_and_run;
        an += f[i].answered;
        rl += f[i].retry_later;
        oa += f[i].other_alert;
        cl += f[i].closed;
        to += f[i].timed_out;
    }
    printf("\nflood: target %.0f hellos/s, offered %.0f/s (%lu connections "
           "in %.1f s; %lu not started: the client was at its limit of "
           "open sockets or could not keep up)\n",
           target, (double)st / seconds, st, seconds, ns);
    printf("flood outcomes: %lu hit-and-run; waiting: %lu answered, %lu "
           "retry-later, %lu other alert, %lu closed unanswered, %lu no "
           "answer in %d ms; %lu connects failed\n",
           hr, an, rl, oa, cl, to, FLOOD_WAIT_MS, cf);
    printf("mkd, flood phase (status deltas): %lld hellos run (%.0f/s), %lld "
           "skipped (connection closed before its turn), %lld orphaned "
           "(closed while its RSA ran), refused: %lld handshakes in "
           "progress, %lld rate, %lld connections, %lld pending; %lld accept "
           "errors\n",
           c1->run - c0->run, (double)(c1->run - c0->run) / seconds,
           c1->skipped - c0->skipped, c1->orphaned - c0->orphaned,
           c1->refused_hs - c0->refused_hs, c1->refused_rate - c0->refused_rate,
           c1->refused_conn - c0->refused_conn,
           c1->refused_pending - c0->refused_pending,
           c1->accept_errors - c0->accept_errors);
    printf("hellos queued at once, most: %lld (max_handshakes 256)\n",
           mkt_status(&D, "queue.full_hellos_max"));
}

static void usage(void)
{
    printf("usage: mkd_flood_bench [--seconds=S] [--factor=F | "
           "--rate=HELLOS_PER_S] [--quick]\n"
           "                       [-- MKD_OPTION...]\n"
           "  --seconds S   length of each phase (default 10; --quick: 1)\n"
           "  --factor F    flood at F times mkd's RSA capacity (default 10)\n"
           "  --rate R      flood at R full hellos per second instead\n"
           "  --quick       a short smoke run\n"
           "What follows -- goes to mkd (e.g. -- --backlog=4096).\n"
           "Run from the project root; MKD_BIN names the mkd binary.\n"
           "Exit status: 0 when it ran (figures are reported, not judged), 2 "
           "for a bad command line.\n");
}

/* Options; what follows "--" goes to mkd (into args, from index 1). */
static void parse_args(int argc, char **argv, double *seconds, double *factor,
                       double *rate, int *quick, const char **args)
{
    static const struct option longs[] = {
        {"seconds", required_argument, NULL, 's'},
        {"factor", required_argument, NULL, 'f'},
        {"rate", required_argument, NULL, 'r'},
        {"quick", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch, dashes;

    while ((ch = tl_getopt(argc, argv, "+h", longs, usage)) != -1) {
        if (ch == 's')
            *seconds = tl_opt_double("--seconds", optarg, 0.1, 3600);
        else if (ch == 'f')
            *factor = tl_opt_double("--factor", optarg, 0.01, 1000);
        else if (ch == 'r')
            *rate = tl_opt_double("--rate", optarg, 1, 10000000);
        else if (ch == 'q')
            *quick = 1;
    }
    /* getopt_long stops after "--" (optind is past it) or at an operand. */
    dashes = optind > 1 && strcmp(argv[optind - 1], "--") == 0;
    if (optind < argc && !dashes)
        tl_usage_error("unexpected argument '%s' (mkd's options go after --)",
                       argv[optind]);
    if (argc - optind > 30)
        tl_usage_error("at most 30 options for mkd");
    for (int k = 1; optind < argc; k++)
        args[k] = argv[optind++];
    if (*quick)
        *seconds = 1;
}

/* Up to the hard limit of open files; returns the flood's share. */
static int raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur > 200000 ? 200000 : (int)rl.rlim_cur;
}

/* Once the flood stops: mkd drains its queue. */
static void wait_drained(void)
{
    int ok = 0;

    TL_POLL_UNTIL(ok,
                  mkt_status(&D, "queue.full_hellos") == 0 &&
                      mkt_status(&D, "handshakes.in_progress") == 0,
                  30000);
    if (!ok)
        fprintf(stderr, "mkd_flood_bench: mkd's queue did not drain\n");
}

static int first_session(void)
{
    mkt_client c;
    int r;

    if ((CC = mkt_client_config(D.pub)) == NULL)
        return -1;
    r = mkt_client_open(&c, CC, NULL, D.port, NULL, 0);
    if (r == MK_OK)
        r = mkt_client_export(&c, blob, sizeof blob, &blob_len);
    mkt_client_close(&c);
    return r == MK_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *args[32] = {"--log_level=warn"};
    static legit g[RESUMERS + FULLS];
    static flooder f[FLOOD_THREADS];
    double seconds = 10, factor = 10, rate = 0, sign_s, capacity;
    long long slots;
    int quick = 0, maxfd = raise_nofile();
    long rss_idle, rss_idle_max, rss_flood_max, rss_end;
    counters c0, c1;

    tl_set_prog("mkd_flood_bench");
    parse_args(argc, argv, &seconds, &factor, &rate, &quick, args);
    signal(SIGPIPE, SIG_IGN);
    sign_s = mkt_openssl_rsa2048(quick ? 1 : 3, NULL);
    if (mkt_daemon_mkdir(&D) != 0 || mkt_daemon_start(&D, args) != 0 ||
        first_session() != 0) {
        fprintf(stderr, "mkd_flood_bench: cannot start mkd (%s)\n",
                mkt_mkd_path());
        mkt_daemon_cleanup(&D);
        return 0;
    }
    make_hellos();
    /* An mkd from before RSA slots let RSA work take every thread. */
    if ((slots = mkt_status(&D, "queue.rsa_slots")) < 1)
        slots = sysconf(_SC_NPROCESSORS_ONLN);
    capacity = sign_s > 0 ? (double)slots / sign_s : 1000;
    if (rate <= 0)
        rate = factor * capacity;

    rss_idle = mkt_rss_kb(D.pid);
    start_legit(g);
    rss_idle_max = sample_rss((unsigned)(seconds * 1000));
    read_counters(&c0);
    atomic_store(&phase, 1);
    start_flood(f, rate, maxfd);
    rss_flood_max = sample_rss((unsigned)(seconds * 1000));
    atomic_store(&phase, 2);
    atomic_store(&stop_flood, 1);
    for (int i = 0; i < FLOOD_THREADS; i++)
        pthread_join(f[i].t, NULL);
    wait_drained();
    read_counters(&c1);
    atomic_store(&stop_legit, 1);
    for (int i = 0; i < RESUMERS + FULLS; i++)
        pthread_join(g[i].t, NULL);
    rss_end = mkt_rss_kb(D.pid);

    printf("## mkd under a handshake flood (%s)\n\n", quick ? "quick" : "full");
    printf("openssl speed rsa2048: private op %.1f us; mkd RSA slots %lld: "
           "capacity about %.0f full handshakes/s; flood at %.1fx = %.0f/s\n",
           sign_s * 1e6, slots, capacity, rate / capacity, rate);
    report_resumed(g, seconds);
    report_full(g);
    report_flood(f, seconds, rate, &c0, &c1);
    printf("\nmkd VmRSS: %ld kB at start, %ld kB most while idle, %ld kB most "
           "during the flood (+%.1f MiB over idle; target < 32 MiB), %ld kB "
           "after\n",
           rss_idle, rss_idle_max, rss_flood_max,
           (double)(rss_flood_max - rss_idle_max) / 1024.0, rss_end);
    for (int i = 0; i < RESUMERS + FULLS; i++)
        for (int ph = 0; ph < 2; ph++)
            free(g[i].ms[ph].v);
    for (int i = 0; i < FLOOD_THREADS; i++) {
        close(f[i].ep);
        free(f[i].conns);
    }
    mk_client_config_unref(CC);
    (void)mkt_daemon_stop(&D, SIGTERM, 20000);
    mkt_daemon_cleanup(&D);
    return 0;
}
