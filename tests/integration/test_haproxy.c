/*
 * test_haproxy.c -- several MKD nodes behind the real HAProxy (Debian's),
 * configured by dist/haproxy/mkd.cfg, the file docs/SCALING.md quotes:
 * TCP mode, send-proxy-v2, round robin over three nodes that share one
 * server key and one ticket-key file and trust 127.0.0.1 (HAProxy) in
 * trusted_proxies. Everything on loopback, on ports picked at run time;
 * HAProxy runs in the foreground (-db) and is stopped by its PID.
 *
 *  - The application (apps/hello, which echoes the client address it is
 *    given) sees the client's address (127.0.0.2), not HAProxy's.
 *  - A session made through one node resumes on the others: every node's
 *    handshakes.resumed moves.
 *  - The two-phase ticket-key rotation (--stage, reload every node one by
 *    one, --promote, reload every node one by one), with resumptions and
 *    fresh handshakes through HAProxy between every step and a client
 *    resuming in the background throughout: not one resumption fails.
 *  - The per-address limits count the PROXY header's address: one client
 *    behind the proxy is refused, another is not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mkt.h"
#include "testlib.h"

#define NODES 3

static mkt_daemon N[NODES];
static char shared[64]; /* the server key, ticket keys, haproxy.cfg */
static char ticket_file[128];
static pid_t hap_pid = -1;
static uint16_t hap_port;
static mk_client_config *cc;

/* --- HAProxy ------------------------------------------------------------- */

/* A port free now on 127.0.0.1 (HAProxy binds it a moment later). */
static uint16_t free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* text with every "@key@" replaced by value (text is freed). */
static char *fill(char *text, const char *key, const char *value)
{
    char *at = strstr(text, key), *out;
    size_t kl = strlen(key), vl = strlen(value), tl = strlen(text);

    if (at == NULL)
        fail_msg("%s: no %s placeholder", MKT_HAPROXY_CFG, key);
    out = malloc(tl - kl + vl + 1);
    assert_non_null(out);
    memcpy(out, text, (size_t)(at - text));
    memcpy(out + (at - text), value, vl);
    strcpy(out + (at - text) + vl, at + kl);
    free(text);
    return out;
}

/* dist/haproxy/mkd.cfg with this run's addresses, into shared/. */
static void write_cfg(char *path, size_t cap)
{
    char *text = tl_read_file(MKT_HAPROXY_CFG, NULL), v[64], key[16];

    assert_non_null(text);
    hap_port = free_port();
    snprintf(v, sizeof v, "127.0.0.1:%u", hap_port);
    text = fill(text, "@FRONTEND@", v);
    for (int i = 0; i < NODES; i++) {
        snprintf(key, sizeof key, "@NODE%d@", i + 1);
        snprintf(v, sizeof v, "127.0.0.1:%u", N[i].port);
        text = fill(text, key, v);
    }
    assert_null(strchr(text, '@'));
    snprintf(path, cap, "%s/haproxy.cfg", shared);
    assert_int_equal(tl_write_file(path, text, strlen(text)), 0);
    free(text);
}

static int haproxy_answers(void)
{
    int fd = mkt_tcp_connect(NULL, hap_port);

    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

static void haproxy_start(void)
{
    char cfg[128], log[128];
    int ok = 0, st;

    write_cfg(cfg, sizeof cfg);
    snprintf(log, sizeof log, "%s/haproxy.log", shared);
    if ((hap_pid = fork()) == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(MKT_HAPROXY, "haproxy", "-db", "-f", cfg, (char *)NULL);
        _exit(127);
    }
    assert_true(hap_pid > 0);
    TL_POLL_UNTIL(ok, haproxy_answers() || waitpid(hap_pid, &st, WNOHANG) != 0,
                  20000);
    if (!ok || !haproxy_answers()) {
        char *text = tl_read_file(log, NULL);
        fail_msg("HAProxy (%s) did not start:\n%s", MKT_HAPROXY,
                 text ? text : "(no log)");
    }
}

static void haproxy_stop(void)
{
    int st = 0, ok = 0;

    if (hap_pid <= 0)
        return;
    kill(hap_pid, SIGTERM);
    TL_POLL_UNTIL(ok, waitpid(hap_pid, &st, WNOHANG) == hap_pid, 20000);
    if (!ok) {
        kill(hap_pid, SIGKILL);
        waitpid(hap_pid, &st, 0);
    }
    hap_pid = -1;
}

/* --- the nodes ----------------------------------------------------------- */

static void run_mkd(const char *const *argv)
{
    char *out = NULL;

    if (mkt_run_mkd_output(argv, &out) != 0)
        fail_msg("mkd %s failed: %s", argv[0], out ? out : "");
    free(out);
}

/* The shared key and ticket-key file, three nodes, HAProxy. */
static void cluster_start(const char *extra)
{
    char a_data[128], a_key[160], a_out[160], a_tk[160];
    const char *keygen[] = {"keygen", a_out, a_data, NULL};
    const char *tk[] = {"ticket-keys", a_tk, a_data, NULL};

    strcpy(shared, "/tmp/mkt-hap.XXXXXX");
    assert_non_null(mkdtemp(shared));
    snprintf(a_data, sizeof a_data, "--data_dir=%s", shared);
    snprintf(a_out, sizeof a_out, "--out=%s/server.pem", shared);
    snprintf(a_key, sizeof a_key, "--key_file=%s/server.pem", shared);
    snprintf(ticket_file, sizeof ticket_file, "%s/ticket.keys", shared);
    snprintf(a_tk, sizeof a_tk, "--ticket_key_file=%s", ticket_file);
    run_mkd(keygen);
    run_mkd(tk);
    for (int i = 0; i < NODES; i++) {
        const char *args[] = {a_key,
                              a_tk,
                              "--trusted_proxies=127.0.0.1/32",
                              "--backend=php",
                              "--php=" MKT_PHP,
                              "--workers=1",
                              extra,
                              NULL};
        int ok = 0;
        memset(&N[i], 0, sizeof N[i]);
        assert_int_equal(mkt_daemon_mkdir(&N[i]), 0);
        snprintf(N[i].pub, sizeof N[i].pub, "%s/server.pub.pem", shared);
        if (mkt_daemon_start(&N[i], args) != 0)
            fail_msg("node %d did not start (log %s)", i + 1, N[i].log);
        TL_POLL_UNTIL(ok, mkt_status(&N[i], "backend.workers_idle") == 1,
                      30000);
        if (!ok)
            fail_msg("node %d: no PHP worker ready", i + 1);
    }
    haproxy_start();
    cc = mkt_client_config(N[0].pub);
    assert_non_null(cc);
}

static int cluster_teardown(void **st)
{
    static const char *names[] = {"server.pem",   "server.pub.pem",
                                  "server.pub.h", "ticket.keys",
                                  "haproxy.cfg",  "haproxy.log"};
    int ret = 0;
    char path[160];
    (void)st;

    haproxy_stop();
    if (cc != NULL)
        mk_client_config_unref(cc);
    cc = NULL;
    for (int i = 0; i < NODES; i++)
        if (N[i].dir[0] != '\0' && mkt_daemon_finish(&N[i], 20000) != 0)
            ret = -1;
    for (size_t i = 0; ret == 0 && i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", shared, names[i]);
        unlink(path);
    }
    if (ret == 0)
        rmdir(shared);
    else
        fprintf(stderr, "kept %s\n", shared);
    return ret;
}

static long long sum_status(const char *key)
{
    long long s = 0;

    for (int i = 0; i < NODES; i++)
        s += mkt_status(&N[i], key);
    return s;
}

/* --- clients through HAProxy ------------------------------------------ */

/* Open from src through HAProxy (resuming blob if *blen), require a
 * resumption if it had a ticket, ask the hello app and require it to name
 * src; then keep the session's newest ticket in blob. */
static void through(const char *src, uint8_t *blob, size_t *blen)
{
    mkt_client c;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    unsigned ecode = 0;
    char want[64];
    int had = *blen != 0;

    assert_int_equal(
        mkt_client_open(&c, cc, src, hap_port, had ? blob : NULL, *blen),
        MK_OK);
    if (had && !mkt_client_resumed(&c))
        fail_msg("a resumption through HAProxy fell back to a full handshake");
    assert_int_equal(
        mkt_client_request(&c, (const uint8_t *)"x", 1, &resp, &rlen, &ecode),
        MK_OK);
    snprintf(want, sizeof want, "You are %s port ", src);
    resp = realloc(resp, rlen + 1);
    assert_non_null(resp);
    resp[rlen] = '\0';
    if (strstr((char *)resp, want) == NULL)
        fail_msg("expected \"%s\" in: %s", want, (char *)resp);
    free(resp);
    assert_int_equal(mkt_client_export(&c, blob, MK_SESSION_BLOB_MAX, blen),
                     MK_OK);
    mkt_client_close(&c);
}

/* Nodes that have resumed a session. */
static int nodes_resumed(void)
{
    int n = 0;

    for (int i = 0; i < NODES; i++)
        n += mkt_status(&N[i], "handshakes.resumed") > 0;
    return n;
}

static void test_address_and_resumption(void **st)
{
    uint8_t blob[MK_SESSION_BLOB_MAX];
    size_t blen = 0;
    int rounds = 0;
    (void)st;

    cluster_start(NULL);
    through("127.0.0.2", blob, &blen); /* full */
    /* One session resumed again and again: round robin takes it to every
     * node (a bound, not a count: the rotation is not a strict cycle). */
    while (nodes_resumed() < NODES && rounds++ < 30)
        through("127.0.0.2", blob, &blen);
    if (nodes_resumed() < NODES)
        fail_msg("after %d resumptions, a node has resumed none", rounds);
    for (int i = 0; i < NODES; i++) {
        assert_true(mkt_status(&N[i], "proxy.headers") >= 1);
        assert_int_equal(mkt_status(&N[i], "proxy.refused"), 0);
        assert_int_equal(mkt_status(&N[i], "proxy.untrusted"), 0);
    }
    assert_int_equal(sum_status("handshakes.resumed"), rounds);
}

/* Clients that keep resuming, and one fresh client, through HAProxy. */
#define CLIENTS 3
static uint8_t blobs[CLIENTS][MK_SESSION_BLOB_MAX];
static size_t blens[CLIENTS];
static unsigned resumptions;

static void load_round(void)
{
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < CLIENTS; i++) {
            through(i == 0 ? "127.0.0.2" : "127.0.0.3", blobs[i], &blens[i]);
            resumptions++;
        }
        /* A fresh session takes a ticket of whichever node's key issues
         * now; the next round resumes it elsewhere. */
        blens[r % CLIENTS] = 0;
        through("127.0.0.2", blobs[r % CLIENTS], &blens[r % CLIENTS]);
    }
}

static void reload_node(int i)
{
    long long before = mkt_status(&N[i], "reloads");
    int ok = 0;

    assert_int_equal(kill(N[i].pid, SIGHUP), 0);
    TL_POLL_UNTIL(ok, mkt_status(&N[i], "reloads") == before + 1, 20000);
    if (!ok)
        fail_msg("node %d did not reload (log %s)", i + 1, N[i].log);
    assert_int_equal(mkt_status(&N[i], "reload_failures"), 0);
}

static void ticket_keys(const char *op)
{
    char a_file[160];
    const char *argv[] = {"ticket-keys", op, a_file, NULL};

    snprintf(a_file, sizeof a_file, "--file=%s", ticket_file);
    run_mkd(argv);
}

/* Light load in the background all through the rotation: one client from
 * 127.0.0.4 resuming its session again and again (every fifth time a
 * fresh one, to take a ticket of whichever key issues then), a few ms
 * apart. It cannot assert (cmocka's asserts belong to the main thread):
 * it counts. */
typedef struct loader {
    pthread_t th;
    mk_client_config *cc;
    atomic_int stop;
    unsigned resumed, fell_back, errors;
} loader;

static void *load_run(void *arg)
{
    loader *l = arg;
    uint8_t blob[MK_SESSION_BLOB_MAX];
    size_t blen = 0;
    struct timespec pause = {0, 5 * 1000 * 1000};

    for (unsigned i = 1; !atomic_load(&l->stop); i++) {
        mkt_client c;
        int r = mkt_client_open(&c, l->cc, "127.0.0.4", hap_port,
                                blen ? blob : NULL, blen);
        if (r != MK_OK)
            l->errors++;
        else if (blen != 0 && mkt_client_resumed(&c))
            l->resumed++;
        else if (blen != 0)
            l->fell_back++;
        if (r != MK_OK || i % 5 == 0 ||
            mkt_client_export(&c, blob, sizeof blob, &blen) != MK_OK)
            blen = 0;
        mkt_client_close(&c);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static void test_two_phase_rotation(void **st)
{
    const char *phase[] = {"--stage", "--promote"};
    loader l;
    (void)st;

    cluster_start(NULL);
    memset(&l, 0, sizeof l);
    l.cc = mkt_client_config(N[0].pub);
    assert_non_null(l.cc);
    assert_int_equal(pthread_create(&l.th, NULL, load_run, &l), 0);
    memset(blens, 0, sizeof blens);
    for (int i = 0; i < CLIENTS; i++)
        through("127.0.0.2", blobs[i], &blens[i]);
    resumptions = 0;
    load_round();
    /* Each phase on the shared file, then every node reloaded in turn,
     * with clients resuming through HAProxy before and after each. */
    for (int p = 0; p < 2; p++) {
        ticket_keys(phase[p]);
        for (int i = 0; i < NODES; i++) {
            reload_node(i);
            load_round();
        }
    }
    atomic_store(&l.stop, 1);
    assert_int_equal(pthread_join(l.th, NULL), 0);
    mk_client_config_unref(l.cc);
    /* Every one of them resumed (through() fails otherwise), and so did
     * every resumption of the background client. */
    assert_true(resumptions >= 7 * 2 * CLIENTS);
    if (l.fell_back != 0 || l.errors != 0)
        fail_msg("background load: %u resumed, %u fell back, %u failed",
                 l.resumed, l.fell_back, l.errors);
    print_message("background load: %u resumptions, none fell back\n",
                  l.resumed);
    assert_true(l.resumed > 0);
    assert_int_equal(sum_status("handshakes.failed"), 0);
}

/* max_connections_per_address = 1 on each node: sessions from 127.0.0.2
 * fill its share on all three (those that land on a node already holding
 * one are told to retry later: HAProxy's round robin is not strictly a
 * cycle); then a fourth from it is refused, while 127.0.0.3 behind the
 * same proxy is served. */
static void test_limits_by_proxy_address(void **st)
{
    mkt_client c[NODES], more;
    int kept = 0, refused = 0;
    (void)st;

    cluster_start("--max_connections_per_address=1");
    for (int tries = 0; kept < NODES && tries < 30; tries++) {
        int r = mkt_client_open(&c[kept], cc, "127.0.0.2", hap_port, NULL, 0);
        if (r == MK_OK) {
            kept++;
            continue;
        }
        assert_int_equal(r, MK_ERR_PEER_RETRY_LATER);
        mkt_client_close(&c[kept]);
        refused++;
    }
    /* One on each node: a node takes one from an address. */
    assert_int_equal(kept, NODES);
    assert_int_equal(mkt_client_open(&more, cc, "127.0.0.2", hap_port, NULL, 0),
                     MK_ERR_PEER_RETRY_LATER);
    mkt_client_close(&more);
    assert_int_equal(mkt_client_open(&more, cc, "127.0.0.3", hap_port, NULL, 0),
                     MK_OK);
    mkt_client_close(&more);
    /* At least those (HAProxy's own connections, from 127.0.0.1, may
     * have met the limit too: the start-up probe, the health checks). */
    assert_true(sum_status("refused.connections_per_address") >= refused + 1);
    for (int i = 0; i < NODES; i++)
        mkt_client_close(&c[i]);
}

/* docs/SCALING.md quotes dist/haproxy/mkd.cfg whole, as an indented
 * block: the configuration it explains is the one tested here. */
static void test_scaling_quotes_cfg(void **st)
{
    char *cfg = tl_read_file(MKT_HAPROXY_CFG, NULL);
    char *doc = tl_read_file(MKT_SCALING_MD, NULL), *want, *line, *save;
    size_t n = 0;
    (void)st;

    assert_non_null(cfg);
    assert_non_null(doc);
    want = calloc(1, 2 * strlen(cfg) + 16);
    assert_non_null(want);
    /* Line by line, keeping empty lines (strtok_r would drop them). */
    for (line = cfg; *line != '\0'; line = save) {
        save = strchr(line, '\n');
        save = save != NULL ? save + 1 : line + strlen(line);
        if (save - line > 1)
            n += (size_t)sprintf(want + n, "    ");
        memcpy(want + n, line, (size_t)(save - line));
        n += (size_t)(save - line);
    }
    if (strstr(doc, want) == NULL)
        fail_msg("docs/SCALING.md does not quote %s exactly (indented by "
                 "four spaces)",
                 MKT_HAPROXY_CFG);
    free(want);
    free(cfg);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scaling_quotes_cfg),
        cmocka_unit_test_teardown(test_address_and_resumption,
                                  cluster_teardown),
        cmocka_unit_test_teardown(test_two_phase_rotation, cluster_teardown),
        cmocka_unit_test_teardown(test_limits_by_proxy_address,
                                  cluster_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
