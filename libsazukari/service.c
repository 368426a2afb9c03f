/*
 * service.c -- several servers (nodes) of one service: connect to them in
 * turn, and repeat a request on another node only when the protocol proves
 * the first attempt never ran (docs/PROTOCOL.md §8.5).
 *
 * A node that failed (refused, timed out, answered retry_later, or refused
 * a request unseen) is rested until its not_before, so that the next
 * attempts go to the others; when every node is resting, the service waits
 * for the first to be ready, always inside the caller's deadline. Waits
 * grow exponentially with a random part, so that many clients failing at
 * once do not come back in step.
 *
 * Sessions resume across nodes: the service uses one session-cache key for
 * all of them, so a ticket issued by one node is offered to the next
 * (nodes that share ticket keys accept it; others fall back to a full
 * handshake by themselves).
 */
#include "internal.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_BASE_MS  25u
#define BACKOFF_CAP_MS   2000u
#define DEFAULT_TOTAL_MS 30000u

typedef struct node {
    sz_addr a;
    uint64_t not_before; /* rested until then (monotonic ms) */
    unsigned fails;      /* in a row: the rest grows with them */
} node;

struct sz_service {
    sz_client *client;
    char **entries; /* "host:port" as given */
    char **hosts;   /* their host parts */
    uint16_t *ports;
    size_t nentries;
    node *nodes; /* the entries resolved, in order */
    size_t nnodes;
    size_t cursor; /* where the next search for a node starts */
    uint32_t connect_ms, total_ms;
    sz_conn *conn; /* the current connection, or NULL */
    char node_text[SZ_ADDR_TEXT_MAX + 8];
    char key[SZ_PEER_MAX]; /* the session-cache key of the service */
    uint64_t rng;
    sz_service_stats st;
};

/* --- parsing -------------------------------------------------------------- */

/* "host:port" or "[v6]:port" into host (cap bytes) and port; 0 or -1. */
static int split_addr(const char *s, char *host, size_t cap, uint16_t *port)
{
    const char *colon, *h = s, *hend;
    unsigned long p = 0;

    if (s[0] == '[') {
        h = s + 1;
        if ((hend = strchr(h, ']')) == NULL || hend[1] != ':')
            return -1;
        colon = hend + 1;
    } else {
        if ((colon = strrchr(s, ':')) == NULL || strchr(s, ':') != colon)
            return -1;
        hend = colon;
    }
    if (hend == h || (size_t)(hend - h) >= cap || colon[1] == 0)
        return -1;
    for (const char *d = colon + 1; *d; d++) {
        if (*d < '0' || *d > '9' || p > 65535)
            return -1;
        p = p * 10 + (unsigned long)(*d - '0');
    }
    if (p == 0 || p > 65535)
        return -1;
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = 0;
    *port = (uint16_t)p;
    return 0;
}

/* One cache key for the whole service: its address list, hashed so that
 * any length fits (a collision costs a refused ticket, nothing more). */
static void make_key(sz_service *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (size_t i = 0; i < s->nentries; i++)
        for (const char *p = s->entries[i];; p++) {
            h = (h ^ (uint8_t)*p) * 1099511628211ull;
            if (*p == 0)
                break;
        }
    snprintf(s->key, sizeof s->key, "service:%016llx:%.200s",
             (unsigned long long)h, s->entries[0]);
}

static void service_release(sz_service *s)
{
    for (size_t i = 0; i < s->nentries; i++) {
        free(s->entries[i]);
        free(s->hosts[i]);
    }
    free(s->entries);
    free(s->hosts);
    free(s->ports);
    free(s->nodes);
    sz__client_unref(s->client);
    free(s);
}

static int add_entry(sz_service *s, const char *addr)
{
    char host[SZ_PEER_MAX];
    size_t i = s->nentries;

    if (addr == NULL || split_addr(addr, host, sizeof host, &s->ports[i]) < 0)
        return sz__fail(SZ_ERR_USAGE, 0,
                        "not HOST:PORT or [IPV6]:PORT: \"%.200s\"",
                        addr ? addr : "(null)");
    if ((s->entries[i] = strdup(addr)) == NULL ||
        (s->hosts[i] = strdup(host)) == NULL) {
        free(s->entries[i]);
        return sz__fail(SZ_ERR_NOMEM, MK_ERR_NOMEM, "no memory");
    }
    s->nentries++;
    return SZ_OK;
}

int sz_service_new(sz_client *c, const char *const *addrs, size_t n,
                   sz_service **out)
{
    sz_service *s = NULL;
    int ret;

    if (out == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_service_new: out is NULL");
    *out = NULL;
    if (c == NULL || addrs == NULL || n == 0 || n > SZ_SERVICE_MAX)
        return sz__fail(SZ_ERR_USAGE, 0,
                        "sz_service_new: 1 to %d addresses are needed",
                        SZ_SERVICE_MAX);
    if ((s = calloc(1, sizeof *s)) == NULL ||
        (s->entries = calloc(n, sizeof *s->entries)) == NULL ||
        (s->hosts = calloc(n, sizeof *s->hosts)) == NULL ||
        (s->ports = calloc(n, sizeof *s->ports)) == NULL) {
        ret = sz__fail(SZ_ERR_NOMEM, MK_ERR_NOMEM, "no memory for a service");
        goto out;
    }
    s->client = sz__client_ref(c);
    for (size_t i = 0; i < n; i++)
        if ((ret = add_entry(s, addrs[i])) != SZ_OK)
            goto out;
    pthread_mutex_lock(&c->lock);
    s->connect_ms = c->connect_ms;
    pthread_mutex_unlock(&c->lock);
    s->total_ms = DEFAULT_TOTAL_MS;
    /* Jitter only: no secret depends on it. */
    s->rng = sz__now_ms() ^ (uint64_t)(uintptr_t)s ^ 0x9e3779b97f4a7c15ull;
    make_key(s);
    *out = s;
    s = NULL;
    ret = SZ_OK;
out:
    if (s != NULL && s->client == NULL) {
        free(s->entries);
        free(s->hosts);
        free(s->ports);
        free(s);
    } else if (s != NULL) {
        service_release(s);
    }
    return ret;
}

void sz_service_free(sz_service *s)
{
    if (s == NULL)
        return;
    sz_conn_close(s->conn);
    service_release(s);
}

int sz_service_set_deadlines(sz_service *s, uint32_t connect_ms,
                             uint32_t total_ms)
{
    if (s == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_service_set_deadlines: NULL");
    s->connect_ms = connect_ms;
    s->total_ms = total_ms;
    return SZ_OK;
}

const char *sz_service_node(const sz_service *s)
{
    return s != NULL ? s->node_text : "";
}

void sz_service_get_stats(const sz_service *s, sz_service_stats *st)
{
    if (st != NULL)
        *st = s != NULL ? s->st : (sz_service_stats){0};
}

/* --- waiting ----------------------------------------------------------------- */

static uint64_t next_rand(sz_service *s)
{
    /* xorshift64 */
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

/* The wait before attempt number k (0, 1, ...): half of an exponentially
 * growing step, plus a random part of the other half. */
static uint64_t backoff_ms(sz_service *s, unsigned k)
{
    uint64_t step = BACKOFF_BASE_MS << (k < 7 ? k : 7);

    if (step > BACKOFF_CAP_MS)
        step = BACKOFF_CAP_MS;
    return step / 2 + next_rand(s) % (step / 2 + 1);
}

/* Sleep until t, but never past deadline; 0 if the deadline is not
 * reached afterwards. */
static int sleep_until(uint64_t t, uint64_t deadline)
{
    uint64_t now;

    if (t > deadline)
        t = deadline;
    while ((now = sz__now_ms()) < t)
        (void)poll(NULL, 0, sz__budget(t, now));
    return sz__now_ms() < deadline;
}

/* --- connecting --------------------------------------------------------------- */

/* Resolve every entry into s->nodes; nodes resolved earlier keep their
 * rest times. Fails only if no entry resolves. */
static int resolve_all(sz_service *s)
{
    sz_addr fresh[SZ_SERVICE_MAX];
    sz_error_info ei;
    size_t n = 0, resolved = 0;
    node *nodes;

    memset(&ei, 0, sizeof ei);
    for (size_t i = 0; i < s->nentries && n < SZ_SERVICE_MAX; i++)
        if (sz__net_resolve(s->hosts[i], s->ports[i], fresh, SZ_SERVICE_MAX, &n,
                            &ei) == SZ_OK)
            resolved++;
    if (resolved == 0 || n == 0) {
        if (ei.err == 0)
            sz__info(&ei, SZ_ERR_RESOLVE, 0, "no address for the service");
        return sz__set_error(&ei);
    }
    if ((nodes = calloc(n, sizeof *nodes)) == NULL)
        return sz__fail(SZ_ERR_NOMEM, MK_ERR_NOMEM, "no memory");
    for (size_t i = 0; i < n; i++) {
        nodes[i].a = fresh[i];
        for (size_t j = 0; j < s->nnodes; j++)
            if (s->nodes[j].a.port == fresh[i].port &&
                strcmp(s->nodes[j].a.host, fresh[i].host) == 0) {
                nodes[i].not_before = s->nodes[j].not_before;
                nodes[i].fails = s->nodes[j].fails;
            }
    }
    free(s->nodes);
    s->nodes = nodes;
    s->nnodes = n;
    if (s->cursor >= n)
        s->cursor = 0;
    return SZ_OK;
}

/* The first node at or after the cursor that is not resting; if all are,
 * the one that is ready first. */
static size_t pick(const sz_service *s, uint64_t now)
{
    size_t best = s->cursor % s->nnodes;

    for (size_t k = 0; k < s->nnodes; k++) {
        size_t i = (s->cursor + k) % s->nnodes;
        if (s->nodes[i].not_before <= now)
            return i;
        if (s->nodes[i].not_before < s->nodes[best].not_before)
            best = i;
    }
    return best;
}

/* Failures after which another node may well succeed. */
static int moves_on(int err)
{
    return err == SZ_ERR_CONNECT || err == SZ_ERR_TIMEOUT || err == SZ_ERR_IO ||
           err == SZ_ERR_BUSY || err == SZ_ERR_CLOSED ||
           err == SZ_ERR_SERVER_OVERLOADED || err == SZ_ERR_SERVER_SHUTDOWN;
}

/* Rest node i after a failure: longer with each failure in a row. */
static void rest(sz_service *s, size_t i, uint32_t at_least)
{
    uint64_t b = backoff_ms(s, s->nodes[i].fails++);

    s->nodes[i].not_before = sz__now_ms() + (b > at_least ? b : at_least);
    s->cursor = i + 1;
}

static void drop_conn(sz_service *s)
{
    sz_conn_close(s->conn);
    s->conn = NULL;
}

static int try_node(sz_service *s, size_t i, uint64_t deadline)
{
    const sz_addr *a = &s->nodes[i].a;
    uint64_t dl = deadline;

    if (s->connect_ms != 0 && sz__now_ms() + s->connect_ms < dl)
        dl = sz__now_ms() + s->connect_ms;
    snprintf(s->node_text, sizeof s->node_text,
             strchr(a->host, ':') ? "[%s]:%u" : "%s:%u", a->host,
             (unsigned)a->port);
    return sz__connect_tcp(s->client, a->host, a->port, s->key, NULL, 0, dl,
                           &s->conn);
}

static int connect_within(sz_service *s, uint64_t deadline)
{
    sz_error_info ei;
    size_t i, tried = 0;
    int ret;

    memset(&ei, 0, sizeof ei);
    if (s->conn != NULL && sz_conn_error(s->conn) == SZ_OK)
        return SZ_OK;
    drop_conn(s);
    if ((ret = resolve_all(s)) != SZ_OK)
        return ret;
    for (;;) {
        i = pick(s, sz__now_ms());
        /* A single pass tries every node once, resting or not. */
        if (s->total_ms != 0 && s->nodes[i].not_before > sz__now_ms() &&
            !sleep_until(s->nodes[i].not_before, deadline))
            return ret != SZ_OK ? sz__set_error(&ei)
                                : sz__fail(SZ_ERR_TIMEOUT, MK_ERR_TIMEOUT,
                                           "no node ready in time");
        if ((ret = try_node(s, i, deadline)) == SZ_OK) {
            s->cursor = i;
            s->nodes[i].fails = 0;
            s->st.connects++;
            return SZ_OK;
        }
        sz_last_error(&ei);
        if (!moves_on(ret))
            return ret;
        s->st.busy += ret == SZ_ERR_BUSY;
        s->st.connect_failures += ret != SZ_ERR_BUSY;
        rest(s, i, ret == SZ_ERR_BUSY ? ei.retry_after_ms : 0);
        if ((s->total_ms == 0 && ++tried >= s->nnodes) ||
            sz__now_ms() >= deadline)
            return sz__set_error(&ei);
    }
}

int sz_service_connect(sz_service *s, sz_conn **conn)
{
    uint64_t deadline;
    int ret;

    if (conn != NULL)
        *conn = NULL;
    if (s == NULL || conn == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_service_connect: NULL");
    deadline = s->total_ms ? sz__now_ms() + s->total_ms : SZ_NO_DEADLINE;
    if ((ret = connect_within(s, deadline)) == SZ_OK)
        *conn = s->conn;
    return ret;
}

/* --- requests -------------------------------------------------------------------- */

/* After a failed request: may it be sent again, on another node? Only if
 * it provably did not run, and the failure is one another node may not
 * share (not too large, not cancelled, not the pins). */
static int may_repeat(int err, int not_run)
{
    return not_run && moves_on(err);
}

int sz_service_request(sz_service *s, const uint8_t *req, size_t req_len,
                       uint8_t **resp, size_t *resp_len)
{
    sz_error_info ei;
    uint64_t deadline;
    int ret, not_run;

    if (s == NULL || resp == NULL || resp_len == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_service_request: NULL");
    deadline = s->total_ms ? sz__now_ms() + s->total_ms : SZ_NO_DEADLINE;
    for (;;) {
        if ((ret = connect_within(s, deadline)) != SZ_OK) {
            sz__set_not_run(1); /* nothing was sent */
            return ret;
        }
        ret = sz_request(s->conn, req, req_len, resp, resp_len);
        if (ret == SZ_OK)
            return SZ_OK;
        not_run = sz_last_error_not_run();
        sz_last_error(&ei);
        /* A node that refused a request unseen, or whose connection
         * failed, rests; a request's own failure keeps the connection. */
        if (sz_conn_error(s->conn) != SZ_OK ||
            ret == SZ_ERR_SERVER_OVERLOADED || ret == SZ_ERR_SERVER_SHUTDOWN) {
            drop_conn(s);
            rest(s, s->cursor, 0);
        }
        if (!may_repeat(ret, not_run) || s->total_ms == 0 ||
            sz__now_ms() >= deadline)
            break;
        s->st.retries++;
    }
    sz__set_error(&ei);
    sz__set_not_run(not_run);
    return ret;
}
