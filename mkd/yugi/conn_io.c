/*
 * conn_io.c -- a connection's bytes: reading and framing them (with the
 * limits a CLIENT_HELLO must pass before any RSA work), and writing with
 * backpressure.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mkd_log.h"

#define IN_HIGH_WATER (256 * 1024) /* bytes queued to Yami: stop reading */

static uint64_t now_ms(const yugi_conn *c)
{
    return uv_now(c->srv->loop);
}

/* --- writing ---------------------------------------------------------- */

typedef struct wreq {
    uv_write_t req;
    yugi_conn *c;
    uint8_t *buf;
    size_t len;
} wreq;

static void on_write(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    yugi_conn *c = w->c;

    c->wq_bytes -= w->len;
    yami_output_sub(c->srv->yami, w->len);
    free(w->buf);
    free(w);
    if (c->state == YUGI_CLOSED)
        return;
    if (status < 0) {
        yugi__conn_close(c, YUGI_CR_IO);
        return;
    }
    c->write_progress = now_ms(c);
    yugi__conn_try_finish(c);
    if (c->state != YUGI_CLOSED) {
        yugi__conn_flow(c);
        yugi__conn_rearm(c);
    }
}

int yugi__conn_write(yugi_conn *c, uint8_t *buf, size_t len)
{
    wreq *w;
    uv_buf_t b;

    if (c->state == YUGI_CLOSED || c->state == YUGI_LINGER) {
        free(buf);
        return MKD_OK;
    }
    if ((w = malloc(sizeof *w)) == NULL) {
        free(buf);
        return MKD_ERR_NOMEM;
    }
    w->c = c;
    w->buf = buf;
    w->len = len;
    b = uv_buf_init((char *)buf, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(buf);
        free(w);
        return MKD_ERR_LOOP;
    }
    if (c->wq_bytes == 0)
        c->write_progress = now_ms(c);
    c->wq_bytes += len;
    yami_output_add(c->srv->yami, len);
    c->srv->st.bytes_out += len;
    return MKD_OK;
}

void yugi__write_alert(yugi_conn *c, unsigned code, uint32_t arg)
{
    uint8_t *a = malloc(16);
    size_t n = 0;

    if (a == NULL || mk_write_alert(code, arg, a, 16, &n) != MK_OK) {
        free(a);
        return;
    }
    if (yugi__conn_write(c, a, n) != MKD_OK)
        yugi__conn_close(c, YUGI_CR_INTERNAL);
}

/* --- reading ---------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    yugi_conn *c = h->data;

    (void)hint;
    *buf = uv_buf_init((char *)c->srv->read_buf, sizeof c->srv->read_buf);
}

/* Refuse a hello before any RSA work: plaintext "retry later", then go. */
static int refuse_hello(yugi_conn *c, uint32_t wait_ms)
{
    yugi__write_alert(c, MK_ALERT_RETRY_LATER, wait_ms);
    yugi__conn_drain(c, YUGI_CR_REFUSED);
    return MKD_STOPPED;
}

static int batch_put(yugi_conn *c, const uint8_t *p, size_t n)
{
    if (c->batch_cap - c->batch_len < n) {
        size_t cap = c->batch_cap ? c->batch_cap * 2 : 4096;
        uint8_t *b;
        while (cap - c->batch_len < n)
            cap *= 2;
        if ((b = realloc(c->batch, cap)) == NULL)
            return MKD_ERR_NOMEM;
        c->batch = b;
        c->batch_cap = cap;
    }
    memcpy(c->batch + c->batch_len, p, n);
    c->batch_len += n;
    return MKD_OK;
}

/* The limits a hello passes: for a full handshake (an RSA operation) the
 * global cap on full handshakes in progress, then for either kind the
 * source address's token bucket (resumptions: cheaper, a higher rate).
 * A resumption is not held to the cap: a flood of full hellos that fills
 * it must not lock out the clients that need no RSA work. MKD_OK, or
 * MKD_STOPPED when refused. */
static int admit_hello(yugi_conn *c, const uint8_t *unit, size_t len)
{
    yugi_server *srv = c->srv;
    const yugi_limits *lim = &srv->lim;
    /* Only a well-formed resumption takes the cheaper bucket: anything
     * else may need the RSA key. */
    int kind = mk_client_hello_resumes(unit, len) ? YUGI_BUCKET_RESUME
                                                  : YUGI_BUCKET_FULL;
    uint32_t wait;

    if (kind == YUGI_BUCKET_FULL && srv->hs_inflight >= lim->max_handshakes) {
        srv->st.refused_handshakes++;
        mkd_debug(c->id, "refused: %u handshakes in progress",
                  srv->hs_inflight);
        return refuse_hello(c, lim->retry_after_ms);
    }
    if (c->addr != NULL &&
        (wait = yugi__addr_take(&srv->addrs, c->addr, kind, now_ms(c))) != 0) {
        if (kind == YUGI_BUCKET_FULL)
            srv->st.refused_rate++;
        else
            srv->st.refused_resume_rate++;
        mkd_debug(c->id, "refused: %s rate from %s",
                  kind == YUGI_BUCKET_FULL ? "handshake" : "resumption",
                  c->peer);
        return refuse_hello(
            c, wait > lim->retry_after_ms ? wait : lim->retry_after_ms);
    }
    if (kind == YUGI_BUCKET_FULL) {
        c->hs_queued++;
        srv->hs_inflight++;
    }
    if (!c->hello_seen)
        c->hello_ns = uv_hrtime();
    c->hello_seen = 1;
    return MKD_OK;
}

/* A complete unit arrived (the framer's callback). */
static int on_unit(void *arg, const uint8_t *unit, size_t len)
{
    yugi_conn *c = arg;
    int r;

    c->units_read++;
    if (unit[0] == MK_UNIT_CLIENT_HELLO && c->state == YUGI_HANDSHAKE &&
        (r = admit_hello(c, unit, len)) != MKD_OK)
        return r;
    return batch_put(c, unit, len);
}

/* A unit header the framer refused. Before keys exist the peer may be
 * told; after, never. */
static void bad_unit(yugi_conn *c, int code)
{
    if (code > 0 && code < YUGI_ERR_SLOTS)
        c->srv->st.errors[code]++;
    mkd_debug(c->id, "bad unit header: %s", mk_err_name(code));
    if (c->state == YUGI_HANDSHAKE) {
        yugi__write_alert(c, MK_ALERT_BAD_MESSAGE, 0);
        yugi__conn_drain(c, YUGI_CR_PROTO);
    } else {
        yugi__conn_close(c, YUGI_CR_PROTO);
    }
}

/* Frame what was read; hand the whole units to Yami as one operation. */
static void conn_take_input(yugi_conn *c, size_t nread)
{
    int was_partial = yugi__framer_partial(&c->framer), bad = MK_OK, r;

    c->last_active = now_ms(c);
    c->units_read = 0;
    r = yugi__framer_feed(&c->framer, c->srv->read_buf, nread, on_unit, c,
                          &bad);
    if (yugi__framer_partial(&c->framer) && (!was_partial || c->units_read))
        c->unit_start = c->last_active;
    if (r != MKD_OK) {
        c->batch_len = 0;
        if (r == MKD_ERR_BAD_UNIT)
            bad_unit(c, bad);
        else if (r != MKD_STOPPED)
            yugi__conn_close(c, YUGI_CR_INTERNAL);
        return;
    }
    if (c->batch_len > 0) {
        r = yami_queue_units(c->yami, c->batch, c->batch_len);
        c->batch_len = 0;
        if (r != MKD_OK) {
            yugi__conn_close(c, YUGI_CR_INTERNAL);
            return;
        }
        yugi__conn_kick(c);
    }
    /* Keep no read-side memory on an idle connection. */
    if (c->batch_cap > 4096 || !yugi__framer_partial(&c->framer)) {
        free(c->batch);
        c->batch = NULL;
        c->batch_cap = 0;
    }
}

/* --- a trusted proxy's header ------------------------------------------ */

/* The client's address from a header; LOCAL (the proxy's own health
 * check) and Unix sockets keep the proxy's. */
static void proxy_peer(yugi_conn *c, const mkd_proxy_header *h,
                       struct sockaddr_storage *ss)
{
    int len = sizeof *ss;

    memset(ss, 0, sizeof *ss);
    if (h->family == MKD_PROXY_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, h->src, 4);
        a->sin_port = htons(h->src_port);
    } else if (h->family == MKD_PROXY_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        memcpy(a->sin6_addr.s6_addr, h->src, 16);
        a->sin6_port = htons(h->src_port);
    } else if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)ss, &len) != 0) {
        memset(ss, 0, sizeof *ss);
    }
}

/* The header parsed from what was read so far: the bytes it took of this
 * read, or 0 with *r MORE or BAD. Split headers are copied aside. */
static size_t proxy_feed(yugi_conn *c, size_t nread, mkd_proxy_header *h,
                         int *r)
{
    const uint8_t *in = c->srv->read_buf;
    size_t old = c->plen, take;

    if (old == 0 && (*r = mkd_proxy_parse(in, nread, h)) != MKD_PROXY_MORE)
        return *r == MKD_PROXY_DONE ? h->len : 0;
    if (c->pbuf == NULL && (c->pbuf = malloc(YUGI_PROXY_MAX)) == NULL) {
        *r = MKD_PROXY_BAD;
        return 0;
    }
    take = nread < YUGI_PROXY_MAX - old ? nread : YUGI_PROXY_MAX - old;
    memcpy(c->pbuf + old, in, take);
    c->plen += take;
    *r = mkd_proxy_parse(c->pbuf, c->plen, h);
    if (*r == MKD_PROXY_MORE && c->plen == YUGI_PROXY_MAX)
        *r = MKD_PROXY_BAD; /* longer than we take */
    return *r == MKD_PROXY_DONE ? h->len - old : 0;
}

/* Bytes from a trusted proxy before its header is complete. */
static void conn_take_proxy(yugi_conn *c, size_t nread)
{
    yugi_server *srv = c->srv;
    struct sockaddr_storage ss;
    mkd_proxy_header h;
    char via[sizeof c->peer];
    int r;
    size_t used = proxy_feed(c, nread, &h, &r), rest = nread - used;

    if (r == MKD_PROXY_MORE)
        return;
    free(c->pbuf);
    c->pbuf = NULL;
    c->plen = 0;
    if (r != MKD_PROXY_DONE) {
        srv->st.proxy_refused++;
        mkd_debug(c->id, "refused: no valid PROXY header from proxy %s",
                  c->peer);
        yugi__conn_close(c, YUGI_CR_PROTO);
        return;
    }
    srv->st.proxy_headers++;
    c->proxy_wait = 0;
    srv->nproxy_wait--;
    c->input_seen = 1; /* the client's bytes follow the header */
    proxy_peer(c, &h, &ss);
    memcpy(via, c->peer, sizeof via);
    yugi__conn_set_peer(c, &ss);
    mkd_debug(c->id, "PROXY v%u: client %s:%u via %s", h.version, c->peer,
              c->peer_port, via);
    yugi__conn_admit(c, &ss);
    if (c->state == YUGI_CLOSED || c->refused || rest == 0)
        return;
    memmove(srv->read_buf, srv->read_buf + used, rest);
    conn_take_input(c, rest);
}

/* A peer outside trusted_proxies that opens with a PROXY signature is
 * misconfigured or forging its address: closed and counted. */
static int untrusted_proxy(yugi_conn *c, size_t nread)
{
    if (c->input_seen)
        return 0;
    c->input_seen = 1;
    if (!mkd_proxy_signature(c->srv->read_buf, nread))
        return 0;
    c->srv->st.proxy_untrusted++;
    mkd_debug(c->id, "refused: PROXY header from %s, not a trusted proxy",
              c->peer);
    yugi__conn_close(c, YUGI_CR_PROTO);
    return 1;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    yugi_conn *c = s->data;

    (void)buf;
    if (c->state == YUGI_CLOSED)
        return;
    if (nread < 0) {
        int lingering = c->state == YUGI_LINGER || c->state == YUGI_DRAINING;
        yugi__conn_close(c, lingering         ? -1
                            : nread == UV_EOF ? YUGI_CR_EOF
                                              : YUGI_CR_IO);
        return;
    }
    if (nread == 0)
        return;
    c->srv->st.bytes_in += (uint64_t)nread;
    if (c->state != YUGI_HANDSHAKE && c->state != YUGI_ESTABLISHED)
        return; /* draining: whatever comes now is not read */
    if (c->proxy_wait)
        conn_take_proxy(c, (size_t)nread);
    else if (c->refused)
        return; /* no session: it was told to retry later */
    else if (!untrusted_proxy(c, (size_t)nread))
        conn_take_input(c, (size_t)nread);
    if (c->state != YUGI_CLOSED) {
        yugi__conn_flow(c);
        yugi__conn_rearm(c);
    }
}

/* Read unless too much waits to be written or to be decrypted. */
void yugi__conn_flow(yugi_conn *c)
{
    int want;

    if (c->state == YUGI_CLOSED)
        return;
    want = c->wq_bytes < c->srv->lim.write_high_water &&
           (c->yami == NULL || yami_conn_queued_bytes(c->yami) < IN_HIGH_WATER);
    if (c->state == YUGI_LINGER || c->state == YUGI_DRAINING)
        want = 1; /* to see the peer's FIN; input is discarded */
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            yugi__conn_close(c, YUGI_CR_IO);
            return;
        }
        c->reading = 1;
    } else if (!want && c->reading) {
        (void)uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}
