/*
 * server.c -- the metrics listener (metrics.h): one request per
 * connection, answered and closed. A connection must send its whole
 * request within CONN_TIMEOUT_MS, in at most METRICS_HTTP_MAX bytes, and
 * at most MAX_CONNS are served at once (more are closed at once): a
 * scraper needs no more, and nobody can hold the loop's memory with it.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "metrics_http.h"
#include "mkd_log.h"

#define MAX_CONNS       16
#define CONN_TIMEOUT_MS 5000
#define LINGER_MS       1000
#define BODY_FIRST      (64u * 1024)
#define BODY_MAX        (4u * 1024 * 1024)

typedef struct mconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t sh;
    metrics *m;
    struct mconn *prev, *next;
    int open_handles; /* freed when both have closed */
    int answering;
    size_t in_len;
    uint8_t in[METRICS_HTTP_MAX];
    char head[256];
    char *body;
} mconn;

struct metrics {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    metrics_sources src;
    uint16_t port;
    unsigned nconns; /* in conns: served now */
    unsigned nalive; /* ... and those whose handles are still closing */
    mconn *conns;
    int closing;    /* 1: closing, 2: the listener has closed */
    uv_tcp_t spare; /* takes a connection there is no memory for */
    int spare_busy; /* closing one */
    int spare_owed; /* another came meanwhile, still unaccepted */
};

static void maybe_free(metrics *m)
{
    if (m->closing == 2 && m->nalive == 0 && !m->spare_busy)
        free(m);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    mconn *c = h->data;
    metrics *m = c->m;

    if (--c->open_handles > 0)
        return;
    free(c->body);
    free(c);
    m->nalive--;
    maybe_free(m);
}

static void conn_close(mconn *c)
{
    metrics *m = c->m;

    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        m->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    m->nconns--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* The exposition text, in a buffer grown until it fits; NULL without
 * memory. */
static char *render(const metrics_sources *src, size_t *len)
{
    for (size_t cap = BODY_FIRST; cap <= BODY_MAX; cap *= 2) {
        char *buf = malloc(cap);
        mkd_text t;

        if (buf == NULL)
            return NULL;
        mkd_text_init(&t, buf, cap);
        metrics_render(src, &t);
        if (!t.overflow) {
            *len = t.len;
            return buf;
        }
        free(buf);
    }
    return NULL;
}

/* The body of an answer; its status may change (503: not ready). */
static char *body_of(mconn *c, int *status, int path, size_t *len)
{
    yugi_stats st;
    const char *why = NULL;
    char text[128];

    if (*status == 200 && path == METRICS_PATH_METRICS)
        return render(&c->m->src, len);
    if (*status != 200)
        snprintf(text, sizeof text, "%d %s\n", *status,
                 metrics_http_reason(*status));
    else if (path == METRICS_PATH_HEALTH) {
        yugi_server_stats(c->m->src.srv, &st);
        *status = st.shutting_down ? 503 : 200;
        snprintf(text, sizeof text, "%s\n",
                 st.shutting_down ? "shutting down" : "ok");
    } else {
        *status = yugi_server_ready(c->m->src.srv, &why) ? 200 : 503;
        snprintf(text, sizeof text, "%s%s\n", why ? "not ready: " : "ready",
                 why ? why : "");
    }
    *len = strlen(text);
    return strdup(text);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *buf);

static void on_linger_end(uv_timer_t *t)
{
    conn_close(t->data);
}

/* The answer is out: end our side, then read (and drop) what the client
 * still sends until it closes, for at most LINGER_MS. Closing with
 * unread bytes would reset the connection, and the client could lose
 * the answer (a refused oversized request, say). */
static void on_shutdown(uv_shutdown_t *sh, int status)
{
    mconn *c = sh->data;

    if (status != 0 || uv_is_closing((uv_handle_t *)&c->tcp) ||
        uv_timer_start(&c->timer, on_linger_end, LINGER_MS, 0) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static void on_written(uv_write_t *w, int status)
{
    mconn *c = w->data;

    c->sh.data = c;
    if (status != 0 ||
        uv_shutdown(&c->sh, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

static void answer(mconn *c, int status, int path)
{
    size_t len = 0;
    uv_buf_t bufs[2];
    int hn;

    c->answering = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    if ((c->body = body_of(c, &status, path, &len)) == NULL) {
        conn_close(c);
        return;
    }
    hn = snprintf(c->head, sizeof c->head,
                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                  "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                  "Connection: close\r\n%s\r\n",
                  status, metrics_http_reason(status),
                  path == METRICS_PATH_METRICS && status == 200
                      ? "text/plain; version=0.0.4; charset=utf-8"
                      : "text/plain; charset=utf-8",
                  len, status == 405 ? "Allow: GET\r\n" : "");
    bufs[0] = uv_buf_init(c->head, (unsigned)hn);
    bufs[1] = uv_buf_init(c->body, (unsigned)len);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, bufs, 2, on_written) != 0)
        conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *buf)
{
    mconn *c = h->data;

    (void)want;
    if (c->answering)
        c->in_len = 0; /* lingering: what comes is dropped */
    *buf = uv_buf_init((char *)c->in + c->in_len,
                       (unsigned)(sizeof c->in - c->in_len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    mconn *c = s->data;
    metrics_http_req req;

    (void)buf;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (c->answering)
        return;
    c->in_len += (size_t)n;
    if (metrics_http_parse(c->in, c->in_len, &req))
        answer(c, req.status, req.path);
}

static void on_timeout(uv_timer_t *t)
{
    mconn *c = t->data;

    if (!c->answering)
        answer(c, 408, METRICS_PATH_NONE);
}

static void on_connection(uv_stream_t *server, int status);

static void on_spare_closed(uv_handle_t *h)
{
    metrics *m = h->data;

    m->spare_busy = 0;
    if (m->spare_owed && !m->closing) {
        m->spare_owed = 0;
        on_connection((uv_stream_t *)&m->tcp, 0); /* the one left waiting */
    }
    maybe_free(m);
}

/* No memory for a connection: take it with the spare handle and close it
 * at once. Left unaccepted, it would stop libuv from accepting on this
 * listener for good. */
static void refuse(metrics *m, uv_stream_t *server)
{
    if (m->spare_busy) {
        m->spare_owed = 1;
        return;
    }
    m->spare_busy = 1;
    (void)uv_tcp_init(m->loop, &m->spare);
    m->spare.data = m;
    (void)uv_accept(server, (uv_stream_t *)&m->spare);
    uv_close((uv_handle_t *)&m->spare, on_spare_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    metrics *m = server->data;
    mconn *c;

    if (status < 0 || m->closing)
        return;
    if ((c = calloc(1, sizeof *c)) == NULL) {
        refuse(m, server);
        return;
    }
    c->m = m;
    (void)uv_tcp_init(m->loop, &c->tcp);
    (void)uv_timer_init(m->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = m->conns;
    if (m->conns != NULL)
        m->conns->prev = c;
    m->conns = c;
    m->nconns++;
    m->nalive++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        m->nconns > MAX_CONNS ||
        uv_timer_start(&c->timer, on_timeout, CONN_TIMEOUT_MS, 0) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

/* --- the address --------------------------------------------------------- */

static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;

    if (*s == '\0' || strlen(s) > 5)
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

static int is_loopback(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >>
                24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

int metrics_parse_listen(const char *spec, int allow_remote,
                         struct sockaddr_storage *sa, mkd_diag *d)
{
    char host[64];
    const char *colon = strrchr(spec, ':');
    size_t hl = colon != NULL ? (size_t)(colon - spec) : 0;
    uint16_t port = 0;
    int v6 = hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']';

    memset(sa, 0, sizeof *sa);
    if (colon == NULL || hl == 0 || hl >= sizeof host ||
        parse_port(colon + 1, &port) != 0)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "metrics_listen: \"%s\" is not HOST:PORT", spec);
    memcpy(host, spec + v6, hl - 2 * (size_t)v6);
    host[hl - 2 * (size_t)v6] = '\0';
    if ((v6 ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)sa)
            : uv_ip4_addr(host, port, (struct sockaddr_in *)sa)) != 0)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "metrics_listen: \"%s\" is not an IP address "
                        "(IPv6 in brackets)",
                        host);
    if (!allow_remote && !is_loopback(sa))
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "metrics_listen: %s is not a loopback address; set "
                        "metrics_allow_remote = 1 to serve the metrics to "
                        "the network",
                        host);
    return MKD_OK;
}

/* --- open, close -------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h)
{
    metrics *m = h->data;

    m->closing = 2;
    maybe_free(m);
}

static int bound_port(metrics *m)
{
    struct sockaddr_storage ss;
    int n = sizeof ss;

    if (uv_tcp_getsockname(&m->tcp, (struct sockaddr *)&ss, &n) != 0)
        return -1;
    m->port = ntohs(ss.ss_family == AF_INET
                        ? ((struct sockaddr_in *)&ss)->sin_port
                        : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

int metrics_open(uv_loop_t *loop, const char *spec, int allow_remote,
                 const metrics_sources *src, metrics **out, mkd_diag *d)
{
    struct sockaddr_storage sa;
    metrics *m;
    int r;

    *out = NULL;
    if ((r = metrics_parse_listen(spec, allow_remote, &sa, d)) != MKD_OK)
        return r;
    if ((m = calloc(1, sizeof *m)) == NULL)
        return mkd_fail(d, MKD_ERR_NOMEM, "metrics listener");
    m->loop = loop;
    m->src = *src;
    (void)uv_tcp_init(loop, &m->tcp);
    m->tcp.data = m;
    if ((r = uv_tcp_bind(&m->tcp, (const struct sockaddr *)&sa, 0)) != 0 ||
        (r = uv_listen((uv_stream_t *)&m->tcp, 16, on_connection)) != 0 ||
        (r = bound_port(m)) != 0) {
        metrics_close(m);
        return mkd_fail(d, MKD_ERR_LISTEN, "metrics_listen %s: %s", spec,
                        r == -1 ? "no port" : uv_strerror(r));
    }
    mkd_info(0, "metrics: http://%.*s:%u/metrics",
             (int)(strrchr(spec, ':') - spec), spec, m->port);
    *out = m;
    return MKD_OK;
}

uint16_t metrics_port(const metrics *m)
{
    return m->port;
}

void metrics_close(metrics *m)
{
    if (m == NULL || m->closing)
        return;
    m->closing = 1;
    while (m->conns != NULL)
        conn_close(m->conns);
    uv_close((uv_handle_t *)&m->tcp, on_listener_closed);
}
