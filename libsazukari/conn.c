/*
 * conn.c -- a connection: the handshake, the table of requests in flight,
 * and the pumps that move bytes between the transport and libmegaki.
 *
 * IMPLEMENTATION NOTES
 *
 * Bytes in. Everything read goes into one buffer of two maximal units;
 * mk_frame_check() cuts complete units off its front and each goes to
 * mk_session_handle(). A complete unit is handled the moment it is
 * buffered, so the buffer always has room for a whole unit more.
 *
 * Bytes out. A request is sealed whole (mk_seal_message) before its first
 * byte is written. libmegaki then counts it as fully sent, so a response or
 * an error record for it may be handled at any point of the write. While
 * a socket is not writable, the writer reads and handles what the server
 * sends: with many large requests in flight, neither side can then block
 * the other with full buffers.
 *
 * Requests. Each submitted request has an entry until the application has
 * collected its result and libmegaki has forgotten it. "live" means the
 * server may still send records for it: a request that timed out locally is
 * reported at once but kept (as ABANDONED) until its late response ends, so
 * that the late records are recognised and dropped.
 *
 * Failure. The first connection-level failure is sticky (c->err and its
 * details in c->fatal) and every later call reports it. Failures of one
 * request (a server error record, its own deadline) are not.
 *
 * Time. Deadlines are absolute monotonic milliseconds. The I/O timeout is
 * measured from the last byte that moved, and only while a response is
 * awaited: an idle connection never times out by itself.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum req_state {
    RQ_PENDING = 1, /* the response is still arriving */
    RQ_DONE,        /* a result is ready for the application */
    RQ_ABANDONED    /* collected, but late records may still come */
};

typedef struct sz_req {
    uint32_t id;
    uint8_t state;     /* enum req_state */
    uint8_t live;      /* libmegaki still has it in flight */
    uint64_t deadline; /* for its whole response */
    uint64_t done_seq; /* completion order, for sz_poll() */
    uint8_t *buf;      /* the response so far */
    size_t len, cap;
    int err;              /* result once DONE */
    unsigned server_code; /* error record code, if any */
    char *text;           /* error record text, if any */
} sz_req;

struct sz_conn {
    sz_client *client;
    mk_session *s;
    int fd;      /* the socket we opened, or -1 for application I/O */
    int wake[2]; /* sz_conn_cancel() writes to [1]; -1 without a socket */
    sz_io io;
    atomic_int cancelled;
    sz_settings st;
    char peer[SZ_PEER_MAX];

    int err;             /* sticky connection failure, SZ_OK if none */
    sz_error_info fatal; /* its details */
    int established;
    mk_session_info info;              /* as of the handshake */
    uint8_t blob[MK_SESSION_BLOB_MAX]; /* SECRET: the exportable session */
    size_t blob_len;

    uint64_t last_activity; /* last byte moved while something was awaited */
    uint32_t next_id;
    uint64_t done_seq;
    sz_req *reqs;
    size_t nreqs, reqcap;
    uint8_t *wbuf; /* sealed request being written */
    size_t wcap;

    size_t wrote; /* bytes write_all() handed over, for §8.5 */

    size_t in_len;
    uint8_t in[2 * MK_UNIT_MAX];
    uint8_t out[MK_HANDLE_OUT_LEN];
};

/* Over sz_io, how long one write may wait before the reader gets a turn. */
#define IO_SLICE_MS 10

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* --- failure --------------------------------------------------------------- */

/* Make the connection failed (unless it already is) and report its first
 * failure as this thread's last error. */
static int fail_info(sz_conn *c, const sz_error_info *ei)
{
    if (c->err == SZ_OK) {
        c->err = ei->err;
        c->fatal = *ei;
    }
    return sz__set_error(&c->fatal);
}

static int fail(sz_conn *c, int err, int mkerr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(sz_conn *c, int err, int mkerr, const char *fmt, ...)
{
    sz_error_info ei;
    va_list ap;

    memset(&ei, 0, sizeof ei);
    ei.err = err;
    ei.mk_err = mkerr;
    va_start(ap, fmt);
    vsnprintf(ei.text, sizeof ei.text, fmt, ap);
    va_end(ap);
    return fail_info(c, &ei);
}

static int fail_errno(sz_conn *c, int err, int sys_errno, const char *what)
{
    sz_error_info ei;

    sz__info(&ei, err, MK_ERR_IO, "%s: %s", what,
             sys_errno ? strerror(sys_errno) : "transport callback failed");
    ei.sys_errno = sys_errno;
    return fail_info(c, &ei);
}

static int sticky(sz_conn *c)
{
    return sz__set_error(&c->fatal);
}

/* --- the request table ------------------------------------------------------ */

static sz_req *req_find(sz_conn *c, uint32_t id)
{
    for (size_t i = 0; i < c->nreqs; i++)
        if (c->reqs[i].id == id)
            return &c->reqs[i];
    return NULL;
}

static int req_add(sz_conn *c, uint32_t id, uint64_t deadline)
{
    sz_req *r;

    if (c->nreqs == c->reqcap) {
        size_t cap = c->reqcap ? c->reqcap * 2 : 16;
        sz_req *p = realloc(c->reqs, cap * sizeof *p);
        if (p == NULL)
            return SZ_ERR_NOMEM;
        c->reqs = p;
        c->reqcap = cap;
    }
    r = &c->reqs[c->nreqs++];
    memset(r, 0, sizeof *r);
    r->id = id;
    r->state = RQ_PENDING;
    r->live = 1;
    r->deadline = deadline;
    return SZ_OK;
}

static void req_clear(sz_req *r)
{
    if (r->buf != NULL) {
        /* Response plaintext: the application's business, not ours. */
        mk_wipe(r->buf, r->len);
        free(r->buf);
    }
    free(r->text);
    r->buf = NULL;
    r->text = NULL;
    r->len = r->cap = 0;
}

/* Entries move: never hold an sz_req pointer across a removal. */
static void req_remove(sz_conn *c, sz_req *r)
{
    req_clear(r);
    *r = c->reqs[--c->nreqs];
}

static void req_finish(sz_conn *c, sz_req *r, int err)
{
    r->state = RQ_DONE;
    r->err = err;
    r->done_seq = ++c->done_seq;
}

/* Is anything still owed by the server? */
static int awaiting(const sz_conn *c)
{
    for (size_t i = 0; i < c->nreqs; i++)
        if (c->reqs[i].live)
            return 1;
    return 0;
}

static int any_done(const sz_conn *c)
{
    for (size_t i = 0; i < c->nreqs; i++)
        if (c->reqs[i].state == RQ_DONE)
            return 1;
    return 0;
}

static uint64_t earliest_deadline(const sz_conn *c)
{
    uint64_t dl = SZ_NO_DEADLINE;
    for (size_t i = 0; i < c->nreqs; i++)
        if (c->reqs[i].state == RQ_PENDING)
            dl = min64(dl, c->reqs[i].deadline);
    return dl;
}

/* Requests whose deadline has passed fail on their own. */
static void expire(sz_conn *c, uint64_t now)
{
    for (size_t i = 0; i < c->nreqs; i++) {
        sz_req *r = &c->reqs[i];
        if (r->state == RQ_PENDING && r->deadline <= now) {
            req_clear(r);
            req_finish(c, r, SZ_ERR_TIMEOUT);
        }
    }
}

/* Hand a finished request's result to the application. */
static int collect(sz_conn *c, sz_req *r, uint8_t **resp, size_t *resp_len)
{
    sz_error_info ei;
    int ret = r->err;

    if (ret == SZ_OK) {
        if (r->buf == NULL && (r->buf = malloc(1)) == NULL)
            return sz__fail(SZ_ERR_NOMEM, MK_ERR_NOMEM,
                            "no memory for a response");
        *resp = r->buf;
        *resp_len = r->len;
        r->buf = NULL;
        r->len = r->cap = 0;
    } else {
        if (ret == SZ_ERR_TIMEOUT)
            sz__info(&ei, ret, MK_ERR_TIMEOUT,
                     "no response to request %u within %u ms", r->id,
                     c->st.request_ms);
        else
            sz__info(&ei, ret, 0, "%s", r->text ? r->text : "");
        ei.server_code = r->server_code;
        ei.request_id = r->id;
        sz__set_error(&ei);
    }
    if (r->live) {
        req_clear(r);
        r->state = RQ_ABANDONED;
    } else {
        req_remove(c, r);
    }
    return ret;
}

/* --- transport --------------------------------------------------------------- */

/* One read into the input buffer, waiting timeout_ms at most (a socket
 * never waits here). Returns bytes (> 0), 0 at end of stream,
 * SZ_IO_TIMEOUT, or -1 (errno set for sockets, 0 for callbacks). */
static long tp_read_once(sz_conn *c, int timeout_ms)
{
    uint8_t *p = c->in + c->in_len;
    size_t room = sizeof c->in - c->in_len;
    long n;

    if (c->fd >= 0)
        return sz__net_read(c->fd, p, room);
    errno = 0;
    n = c->io.read(c->io.ctx, p, room, timeout_ms);
    if (n > (long)room || (n < 0 && n != SZ_IO_TIMEOUT))
        return -1;
    return n;
}

/* One read into the input buffer, waiting until deadline at most. Returns
 * bytes (> 0), 0 at end of stream, SZ_IO_TIMEOUT, SZ__IO_CANCELLED, or -1
 * (errno set for sockets, 0 for callbacks). */
static long tp_read(sz_conn *c, uint64_t deadline)
{
    long n;

    if (atomic_load(&c->cancelled))
        return SZ__IO_CANCELLED;
    if (c->in_len == sizeof c->in) {
        /* Cannot happen (a complete unit is always handled at once), and
         * a zero-length read would look like the end of the stream. */
        errno = ENOBUFS;
        return -1;
    }
    if (c->fd < 0) {
        n = tp_read_once(c, sz__budget(deadline, sz__now_ms()));
        return atomic_load(&c->cancelled) ? SZ__IO_CANCELLED : n;
    }
    for (;;) {
        int w;
        /* Try first: data is often there already. */
        if ((n = tp_read_once(c, 0)) != SZ_IO_TIMEOUT)
            return n;
        w = sz__net_wait(c->fd, c->wake[0], POLLIN,
                         sz__budget(deadline, sz__now_ms()));
        if (w == 0)
            return SZ_IO_TIMEOUT;
        if (w < 0)
            return w; /* -1 or SZ__IO_CANCELLED */
    }
}

static int handle_units(sz_conn *c);

/* A write step's result when it wrote nothing but has time left: it waited
 * (or its slice ran out) and took in what the server sent meanwhile. */
#define WRITE_WAITED (-4)

/* While a write waits: take in what the server has sent, without waiting,
 * and handle it (see the notes above). */
static int absorb(sz_conn *c)
{
    long got = tp_read_once(c, 0);

    if (got == 0)
        return fail(c, SZ_ERR_IO, MK_ERR_EOF,
                    "server closed the connection while a request was "
                    "being sent");
    if (got == SZ_IO_TIMEOUT)
        return SZ_OK;
    if (got < 0)
        return fail_errno(c, SZ_ERR_IO, c->fd >= 0 ? errno : 0, "read");
    c->in_len += (size_t)got;
    return handle_units(c);
}

/* One write step on the socket. *n is what the write returned, except
 * when the socket took nothing: then the step waits until it is writable
 * (until dl at most), with read_too reading what came meanwhile, and *n is
 * WRITE_WAITED, or SZ_IO_TIMEOUT if dl passed. */
static int sock_write_step(sz_conn *c, const uint8_t *p, size_t len,
                           uint64_t dl, int read_too, long *n)
{
    short ev = POLLOUT;
    int w;

    if ((*n = sz__net_write(c->fd, p, len)) != SZ_IO_TIMEOUT)
        return SZ_OK;
    if (read_too && c->in_len < sizeof c->in)
        ev |= POLLIN;
    w = sz__net_wait(c->fd, c->wake[0], ev, sz__budget(dl, sz__now_ms()));
    if (w == SZ__IO_CANCELLED)
        return fail(c, SZ_ERR_CANCELLED, 0, "cancelled");
    if (w < 0)
        return fail_errno(c, SZ_ERR_IO, errno, "poll");
    if (w == 0)
        return SZ_OK; /* *n stays SZ_IO_TIMEOUT: dl passed */
    *n = WRITE_WAITED;
    return w & POLLIN ? absorb(c) : SZ_OK;
}

/* One write step through the callbacks, with *n as for the socket.
 * Callbacks cannot be polled both ways at once, so a write that may have
 * to wait for the server is tried in short slices with a nonblocking read
 * in between (callbacks that honour timeout_ms make this work; blocking
 * ones just block). */
static int io_write_step(sz_conn *c, const uint8_t *p, size_t len, uint64_t dl,
                         int read_too, long *n)
{
    int budget = sz__budget(dl, sz__now_ms()), ret;

    if (read_too && (budget < 0 || budget > IO_SLICE_MS))
        budget = IO_SLICE_MS;
    errno = 0;
    *n = c->io.write(c->io.ctx, p, len, budget);
    if (atomic_load(&c->cancelled))
        return fail(c, SZ_ERR_CANCELLED, 0, "cancelled");
    if (*n > (long)len || (*n < 0 && *n != SZ_IO_TIMEOUT))
        *n = -1; /* outside the contract: a failed write */
    if (*n != SZ_IO_TIMEOUT)
        return SZ_OK;
    if (read_too && c->in_len < sizeof c->in && (ret = absorb(c)) != SZ_OK)
        return ret;
    if (sz__now_ms() < dl)
        *n = WRITE_WAITED; /* the callback woke early, or a slice */
    return SZ_OK;
}

/* Write all of p[0..len). Fails when the deadline passes, or when io_ms
 * pass without progress. With read_too, whatever the server sends while
 * the transport is not writable is read and handled (see the notes
 * above). */
static int write_all(sz_conn *c, const uint8_t *p, size_t len,
                     uint64_t deadline, int read_too)
{
    uint64_t progress = sz__now_ms(), dl;
    long n;
    int ret;

    while (len > 0) {
        dl = c->st.io_ms ? min64(deadline, progress + c->st.io_ms) : deadline;
        if (atomic_load(&c->cancelled))
            return fail(c, SZ_ERR_CANCELLED, 0, "cancelled");
        ret = c->fd >= 0 ? sock_write_step(c, p, len, dl, read_too, &n)
                         : io_write_step(c, p, len, dl, read_too, &n);
        if (ret != SZ_OK)
            return ret;
        if (n == WRITE_WAITED)
            continue;
        if (n == SZ_IO_TIMEOUT)
            return fail(c, SZ_ERR_TIMEOUT, MK_ERR_TIMEOUT,
                        "write made no progress for %llu ms",
                        (unsigned long long)(sz__now_ms() - progress));
        if (n <= 0)
            return fail_errno(c, SZ_ERR_IO, c->fd >= 0 ? errno : 0,
                              n == 0 ? "write returned 0" : "write");
        p += n;
        len -= (size_t)n;
        c->wrote += (size_t)n;
        progress = sz__now_ms();
    }
    return SZ_OK;
}

/* --- handling units after the handshake ------------------------------------- */

static int on_data(sz_conn *c, const mk_event *ev)
{
    sz_req *r = req_find(c, ev->request_id);

    /* libmegaki accepts DATA only for ids it has in flight, and every one
     * of those has an entry; a missing one would be our bug, not the
     * server's, so it is dropped rather than failing the connection. */
    if (r == NULL)
        return SZ_OK;
    if (r->state == RQ_PENDING) {
        if (r->len + ev->len > r->cap) {
            /* Geometric growth; libmegaki bounds the total by max_message. */
            size_t cap = r->cap ? r->cap : 256;
            uint8_t *p;
            while (cap < r->len + ev->len)
                cap *= 2;
            if ((p = realloc(r->buf, cap)) == NULL)
                return fail(c, SZ_ERR_NOMEM, MK_ERR_NOMEM,
                            "no memory for a response of %zu bytes",
                            r->len + ev->len);
            r->buf = p;
            r->cap = cap;
        }
        if (ev->len)
            memcpy(r->buf + r->len, c->out, ev->len);
        r->len += ev->len;
    }
    if (ev->final) {
        r->live = 0;
        if (r->state == RQ_PENDING)
            req_finish(c, r, SZ_OK);
        else if (r->state == RQ_ABANDONED)
            req_remove(c, r);
    }
    return SZ_OK;
}

static int on_error(sz_conn *c, const mk_event *ev)
{
    int err = sz__map_ecode(ev->error_code);
    size_t tlen = ev->len < SZ_ERROR_TEXT_MAX ? ev->len : SZ_ERROR_TEXT_MAX;
    sz_error_info ei;
    sz_req *r;

    if (ev->request_id == 0) {
        /* A connection-level error: libmegaki has ended the session. */
        sz__info(&ei, err, MK_ERR_PEER_ERROR, "%.*s", (int)tlen,
                 (const char *)c->out);
        ei.server_code = ev->error_code;
        return fail_info(c, &ei);
    }
    if ((r = req_find(c, ev->request_id)) == NULL)
        return SZ_OK; /* see on_data */
    r->live = 0;
    if (r->state == RQ_PENDING) {
        req_clear(r);
        if ((r->text = malloc(tlen + 1)) != NULL) {
            memcpy(r->text, c->out, tlen);
            r->text[tlen] = 0;
        }
        r->server_code = ev->error_code;
        req_finish(c, r, err);
    } else if (r->state == RQ_ABANDONED) {
        req_remove(c, r);
    }
    return SZ_OK;
}

static int handle_unit(sz_conn *c, const uint8_t *unit, size_t len)
{
    mk_event ev;
    int r = mk_session_handle(c->s, unit, len, c->out, sizeof c->out, &ev);

    if (r != MK_OK)
        return fail(c, sz__map_mk(r), r, "server broke the protocol: %s",
                    mk_strerror(r));
    switch (ev.type) {
    case MK_EV_DATA:
        return on_data(c, &ev);
    case MK_EV_ERROR:
        return on_error(c, &ev);
    case MK_EV_CLOSE:
        return fail(c, SZ_ERR_CLOSED, MK_ERR_PEER_CLOSED,
                    "server closed the connection");
    default:
        return SZ_OK;
    }
}

/* Handle every complete unit in the input buffer. */
static int handle_units(sz_conn *c)
{
    size_t off = 0, ulen = 0;
    int ret = SZ_OK, r;

    while (c->err == SZ_OK && off < c->in_len) {
        r = mk_frame_check(c->in + off, c->in_len - off, &ulen);
        if (r == MK_WANT_READ)
            break;
        if (r != MK_OK) {
            ret = fail(c, SZ_ERR_PROTOCOL, r, "server sent garbage: %s",
                       mk_strerror(r));
            break;
        }
        ret = handle_unit(c, c->in + off, ulen);
        off += ulen;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return c->err != SZ_OK ? sticky(c) : ret;
}

/*
 * Read once and handle what came, waiting until `until` at most (and less
 * if the I/O timeout is nearer). SZ_OK: something was read (or the
 * callback woke early); SZ_AGAIN: `until` passed; anything else: the
 * connection failed.
 */
static int read_step(sz_conn *c, uint64_t until)
{
    uint64_t io_dl = SZ_NO_DEADLINE, now;
    long n;

    if (c->err != SZ_OK)
        return sticky(c);
    if (c->st.io_ms && awaiting(c))
        io_dl = c->last_activity + c->st.io_ms;
    n = tp_read(c, min64(until, io_dl));
    now = sz__now_ms();
    if (n > 0) {
        c->in_len += (size_t)n;
        c->last_activity = now;
        return handle_units(c);
    }
    if (n == 0)
        return fail(c, SZ_ERR_IO, MK_ERR_TRUNCATED,
                    c->in_len ? "server hung up in the middle of a record"
                              : "server hung up without an authenticated "
                                "close");
    if (n == SZ__IO_CANCELLED)
        return fail(c, SZ_ERR_CANCELLED, 0, "cancelled");
    if (n != SZ_IO_TIMEOUT)
        return fail_errno(c, SZ_ERR_IO, c->fd >= 0 ? errno : 0, "read");
    if (io_dl <= until && now >= io_dl)
        return fail(c, SZ_ERR_TIMEOUT, MK_ERR_TIMEOUT,
                    "the server sent nothing for %u ms", c->st.io_ms);
    return now >= until ? SZ_AGAIN : SZ_OK;
}

/* --- handshake ---------------------------------------------------------------- */

static int handshake_fail(sz_conn *c, int r)
{
    sz_error_info ei;

    switch (r) {
    case MK_ERR_PIN:
        sz__info(&ei, SZ_ERR_PIN, r,
                 "the server holds none of the pinned keys");
        break;
    case MK_ERR_SERVER_AUTH:
        sz__info(&ei, SZ_ERR_PIN, r,
                 "the server could not prove it holds the pinned key "
                 "(wrong server, or the handshake was tampered with)");
        break;
    case MK_ERR_PEER_RETRY_LATER:
        sz__info(&ei, SZ_ERR_BUSY, r, "server is busy: retry in %u ms",
                 mk_session_retry_after(c->s));
        ei.retry_after_ms = mk_session_retry_after(c->s);
        break;
    default:
        sz__info(&ei, sz__map_mk(r), r, "handshake failed: %s", mk_strerror(r));
        break;
    }
    return fail_info(c, &ei);
}

static int handshake(sz_conn *c, uint64_t deadline)
{
    size_t n = 0, ulen = 0;
    mk_event ev;
    int r, ret;

    r = mk_client_hello(c->s, c->out, sizeof c->out, &n);
    if (r != MK_OK)
        return handshake_fail(c, r);
    if ((ret = write_all(c, c->out, n, deadline, 0)) != SZ_OK)
        return ret;
    for (;;) {
        r = mk_frame_check(c->in, c->in_len, &ulen);
        if (r == MK_WANT_READ) {
            long got = tp_read(c, deadline);
            if (got > 0) {
                c->in_len += (size_t)got;
                continue;
            }
            if (got == SZ_IO_TIMEOUT && sz__now_ms() < deadline)
                continue;
            if (got == SZ_IO_TIMEOUT)
                return fail(c, SZ_ERR_TIMEOUT, MK_ERR_TIMEOUT,
                            "no answer to the handshake within %u ms",
                            c->st.connect_ms);
            if (got == 0)
                return fail(c, SZ_ERR_IO, MK_ERR_EOF,
                            "server hung up during the handshake");
            if (got == SZ__IO_CANCELLED)
                return fail(c, SZ_ERR_CANCELLED, 0, "cancelled");
            return fail_errno(c, SZ_ERR_IO, c->fd >= 0 ? errno : 0, "read");
        }
        if (r != MK_OK)
            return fail(c, SZ_ERR_PROTOCOL, r, "not a Megaki server: %s",
                        mk_strerror(r));
        r = mk_session_handle(c->s, c->in, ulen, c->out, sizeof c->out, &ev);
        memmove(c->in, c->in + ulen, c->in_len - ulen);
        c->in_len -= ulen;
        if (r != MK_OK)
            return handshake_fail(c, r);
        if (ev.type == MK_EV_SEND) {
            /* HELLO_RETRY: the server steered us to another pinned key or
             * refused our ticket; the new hello goes out at once. */
            if ((ret = write_all(c, c->out, ev.len, deadline, 0)) != SZ_OK)
                return ret;
        } else if (ev.type == MK_EV_ESTABLISHED) {
            break;
        }
    }
    c->established = 1;
    mk_session_get_info(c->s, &c->info);
    if (c->info.has_ticket &&
        mk_session_export(c->s, c->blob, sizeof c->blob, &c->blob_len) != MK_OK)
        c->blob_len = 0;
    if (c->blob_len && c->st.resume)
        sz__cache_put(c->client, c->peer, c->blob, c->blob_len);
    /* The server may have sent more right behind its hello. */
    return handle_units(c);
}

/* --- connecting ---------------------------------------------------------------- */

static void conn_free(sz_conn *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nreqs; i++)
        req_clear(&c->reqs[i]);
    free(c->reqs);
    free(c->wbuf);
    mk_session_free(c->s);
    sz__net_close(c->fd);
    sz__net_close(c->wake[0]);
    sz__net_close(c->wake[1]);
    sz__client_unref(c->client);
    mk_wipe(c, sizeof *c);
    free(c);
}

/* A connection object with its session, before any I/O. *offered says
 * whether a session blob was given to libmegaki to resume. */
static int conn_new(sz_client *cl, const char *peer, const uint8_t *session,
                    size_t session_len, sz_conn **out, int *offered)
{
    uint8_t blob[MK_SESSION_BLOB_MAX];
    size_t blen = 0;
    sz_settings st;
    sz_conn *c = NULL;
    int ret, r;

    *out = NULL;
    *offered = 0;
    if (session == NULL && session_len != 0)
        return sz__fail(SZ_ERR_USAGE, 0, "session is NULL, length is not 0");
    if (session_len > SZ_SESSION_MAX)
        return sz__fail(SZ_ERR_SESSION, 0,
                        "session blob of %zu bytes: not one of ours",
                        session_len);
    if ((ret = sz__client_begin(cl, &st)) != SZ_OK)
        return ret;
    if ((c = calloc(1, sizeof *c)) == NULL) {
        ret = sz__fail(SZ_ERR_NOMEM, MK_ERR_NOMEM, "no memory for a conn");
        goto out;
    }
    c->client = sz__client_ref(cl);
    c->fd = c->wake[0] = c->wake[1] = -1;
    atomic_init(&c->cancelled, 0);
    c->st = st;
    c->next_id = 1;
    memcpy(c->peer, peer, strlen(peer) + 1);
    if (session != NULL) {
        memcpy(blob, session, session_len);
        blen = session_len;
    } else if (st.resume) {
        blen = sz__cache_get(cl, peer, blob, sizeof blob);
    }
    r = mk_session_new_client(&c->s, cl->cfg, blen ? blob : NULL, blen);
    if (r != MK_OK) {
        ret = sz__fail(sz__map_mk(r), r, "new session: %s", mk_strerror(r));
        goto out;
    }
    *offered = blen != 0;
    *out = c;
    c = NULL;
    ret = SZ_OK;
out:
    mk_wipe(blob, sizeof blob);
    conn_free(c);
    return ret;
}

/* Handshake on a connection whose transport is ready; frees it on failure. */
static int conn_start(sz_conn *c, uint64_t deadline, int offered, sz_conn **out)
{
    sz_error_info ei;
    int ret = handshake(c, deadline);

    if (ret == SZ_OK) {
        *out = c;
        return SZ_OK;
    }
    /* A remembered session that led to a refusal must not be offered
     * again; transient failures (busy, timeouts, I/O) keep it. */
    if (offered && (ret == SZ_ERR_PIN || ret == SZ_ERR_PROTOCOL ||
                    ret == SZ_ERR_HANDSHAKE || ret == SZ_ERR_VERSION))
        sz__cache_drop(c->client, c->peer);
    ei = c->fatal;
    conn_free(c);
    return sz__set_error(&ei);
}

int sz_connect(sz_client *cl, const char *host, uint16_t port,
               const uint8_t *session, size_t session_len, sz_conn **out)
{
    char peer[SZ_PEER_MAX];
    int n;

    if (out == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_connect: out is NULL");
    *out = NULL;
    if (cl == NULL || host == NULL || host[0] == 0 || port == 0)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_connect: no host or port");
    /* The cache key; brackets keep an IPv6 address readable. */
    n = snprintf(peer, sizeof peer, strchr(host, ':') ? "[%s]:%u" : "%s:%u",
                 host, (unsigned)port);
    if (n < 0 || (size_t)n >= sizeof peer)
        return sz__fail(SZ_ERR_USAGE, 0, "host name too long");
    return sz__connect_tcp(cl, host, port, peer, session, session_len, 0, out);
}

int sz__connect_tcp(sz_client *cl, const char *host, uint16_t port,
                    const char *peer, const uint8_t *session,
                    size_t session_len, uint64_t deadline, sz_conn **out)
{
    sz_error_info ei;
    sz_conn *c = NULL;
    int offered = 0, ret;

    if ((ret = conn_new(cl, peer, session, session_len, &c, &offered)) != SZ_OK)
        return ret;
    if (deadline == 0)
        deadline =
            c->st.connect_ms ? sz__now_ms() + c->st.connect_ms : SZ_NO_DEADLINE;
    if (sz__net_pipe(c->wake) < 0) {
        fail_errno(c, SZ_ERR_IO, errno, "pipe");
        goto failed;
    }
    if (sz__net_connect(host, port, deadline, &c->fd, &ei) != SZ_OK) {
        fail_info(c, &ei);
        goto failed;
    }
    return conn_start(c, deadline, offered, out);
failed:
    ei = c->fatal;
    conn_free(c);
    return sz__set_error(&ei);
}

int sz_connect_io(sz_client *cl, const sz_io *io, const uint8_t *session,
                  size_t session_len, sz_conn **out)
{
    const char *peer;
    sz_conn *c = NULL;
    int offered = 0, ret;

    if (out == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_connect_io: out is NULL");
    *out = NULL;
    if (cl == NULL || io == NULL || io->read == NULL || io->write == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_connect_io: no callbacks");
    peer = io->peer ? io->peer : "";
    if (strlen(peer) >= SZ_PEER_MAX)
        return sz__fail(SZ_ERR_USAGE, 0, "peer name too long");
    if ((ret = conn_new(cl, peer, session, session_len, &c, &offered)) != SZ_OK)
        return ret;
    c->io = *io;
    c->io.peer = NULL; /* borrowed only for this call */
    return conn_start(
        c, c->st.connect_ms ? sz__now_ms() + c->st.connect_ms : SZ_NO_DEADLINE,
        offered, out);
}

void sz_conn_close(sz_conn *c)
{
    sz_error_info saved;
    size_t n = 0;

    if (c == NULL)
        return;
    /* A void call must not disturb the caller's view of the last error. */
    sz_last_error(&saved);
    if (c->established && !atomic_load(&c->cancelled) &&
        (c->err == SZ_OK || c->err == SZ_ERR_CLOSED) &&
        mk_seal_close(c->s, c->out, sizeof c->out, &n) == MK_OK) {
        /* Best effort, and brief: the close is a courtesy that lets the
         * server tell a clean end from a cut connection. */
        uint32_t ms = c->st.io_ms && c->st.io_ms < 1000 ? c->st.io_ms : 1000;
        c->st.io_ms = ms;
        (void)write_all(c, c->out, n, sz__now_ms() + ms, 0);
    }
    conn_free(c);
    sz__set_error(&saved);
}

void sz_conn_cancel(sz_conn *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->cancelled, 1);
    if (c->wake[1] >= 0) {
        /* Full pipe (EAGAIN) means a wake-up is already pending. */
        ssize_t w = write(c->wake[1], "", 1);
        (void)w;
    }
}

int sz_conn_error(const sz_conn *c)
{
    if (c == NULL)
        return SZ_ERR_USAGE;
    if (c->err == SZ_OK && atomic_load(&c->cancelled))
        return SZ_ERR_CANCELLED;
    return c->err;
}

/* --- requests ------------------------------------------------------------------- */

static uint32_t alloc_id(sz_conn *c)
{
    /* Sequential from 1, skipping 0 and anything still known after a wrap
     * (2^32 requests on one connection). */
    for (;;) {
        uint32_t id = c->next_id++;
        if (c->next_id == 0)
            c->next_id = 1;
        if (id != 0 && req_find(c, id) == NULL)
            return id;
    }
}

/* sz_submit() without the §8.5 verdict: *unsent stays 1 unless the
 * request's last byte may have reached the transport. */
static int submit(sz_conn *c, const uint8_t *req, size_t req_len,
                  uint32_t *request_id, int *unsent)
{
    mk_session_info si;
    size_t wire, n = 0;
    uint64_t now;
    uint32_t id;
    int ret, r;

    if (c->err != SZ_OK)
        return sticky(c);
    if (req_len > c->info.max_message)
        return sz__fail(SZ_ERR_TOO_LARGE, MK_ERR_MESSAGE_TOO_LARGE,
                        "request of %zu bytes is over the server's maximum "
                        "of %u",
                        req_len, c->info.max_message);
    /* Notice a close (or error) the server sent while we were idle, rather
     * than write a request into a connection it has given up on. */
    if (c->fd >= 0 && (ret = read_step(c, sz__now_ms())) != SZ_OK &&
        ret != SZ_AGAIN)
        return ret;
    /* At the server's limit: wait for a slot, keeping what arrives. */
    for (;;) {
        mk_session_get_info(c->s, &si);
        if (si.inflight < si.max_inflight)
            break;
        ret = read_step(c, earliest_deadline(c));
        if (ret == SZ_AGAIN)
            expire(c, sz__now_ms());
        else if (ret != SZ_OK)
            return ret;
    }
    wire = mk_message_wire_len(req_len);
    if (wire > c->wcap) {
        free(c->wbuf);
        c->wcap = 0;
        if ((c->wbuf = malloc(wire)) == NULL)
            return sz__fail(SZ_ERR_NOMEM, MK_ERR_NOMEM,
                            "no memory to send %zu bytes", req_len);
        c->wcap = wire;
    }
    id = alloc_id(c);
    now = sz__now_ms();
    if (req_add(c, id,
                c->st.request_ms ? now + c->st.request_ms : SZ_NO_DEADLINE) !=
        SZ_OK)
        return sz__fail(SZ_ERR_NOMEM, MK_ERR_NOMEM, "no memory for a request");
    r = mk_seal_message(c->s, id, req, req_len, c->wbuf, c->wcap, &n);
    if (r != MK_OK) {
        req_remove(c, req_find(c, id));
        if (r == MK_ERR_MESSAGE_TOO_LARGE)
            return sz__fail(SZ_ERR_TOO_LARGE, r, "request too large");
        return fail(c, sz__map_mk(r), r, "cannot seal the request: %s",
                    mk_strerror(r));
    }
    c->wrote = 0;
    ret = write_all(c, c->wbuf, n, SZ_NO_DEADLINE, 1);
    /* Short of its last byte, the final record cannot have arrived. */
    *unsent = c->wrote < n;
    if (ret != SZ_OK)
        return ret;
    /* The I/O timeout now counts from here. */
    c->last_activity = sz__now_ms();
    *request_id = id;
    return SZ_OK;
}

int sz_submit(sz_conn *c, const uint8_t *req, size_t req_len,
              uint32_t *request_id)
{
    int unsent = 1, ret;

    if (request_id != NULL)
        *request_id = 0;
    if (c == NULL || request_id == NULL || (req == NULL && req_len != 0))
        return sz__fail(SZ_ERR_USAGE, 0, "sz_submit: bad arguments");
    ret = submit(c, req, req_len, request_id, &unsent);
    if (ret != SZ_OK)
        sz__set_not_run(unsent);
    return ret;
}

/* What a finished request's error proves (docs/PROTOCOL.md §8.5): the
 * server refused it unseen, or closed before answering it. */
static int refused_unseen(int err)
{
    return err == SZ_ERR_SERVER_OVERLOADED || err == SZ_ERR_SERVER_SHUTDOWN ||
           err == SZ_ERR_TOO_LARGE;
}

static int collect_verdict(sz_conn *c, sz_req *r, uint8_t **resp,
                           size_t *resp_len)
{
    int ret = collect(c, r, resp, resp_len);

    if (ret != SZ_OK)
        sz__set_not_run(refused_unseen(ret));
    return ret;
}

int sz_wait(sz_conn *c, uint32_t request_id, uint8_t **resp, size_t *resp_len)
{
    sz_req *r;
    int ret;

    if (resp != NULL)
        *resp = NULL;
    if (resp_len != NULL)
        *resp_len = 0;
    if (c == NULL || resp == NULL || resp_len == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_wait: bad arguments");
    for (;;) {
        r = req_find(c, request_id);
        if (r == NULL || r->state == RQ_ABANDONED || request_id == 0)
            return sz__fail(SZ_ERR_USAGE, 0, "request %u is not outstanding",
                            request_id);
        if (r->state == RQ_DONE)
            return collect_verdict(c, r, resp, resp_len);
        ret = read_step(c, r->deadline);
        if (ret == SZ_AGAIN) {
            expire(c, sz__now_ms());
        } else if (ret != SZ_OK) {
            /* The read that ended the connection may also have completed
             * this request: a server's last answer and its close record
             * often arrive together. The answer came first and stands;
             * the failure is reported by the next call (as in sz_poll). */
            r = req_find(c, request_id);
            if (r != NULL && r->state == RQ_DONE)
                return collect_verdict(c, r, resp, resp_len);
            /* The server's close with this request unanswered: it never
             * handed it to its application. */
            sz__set_not_run(ret == SZ_ERR_CLOSED && c->err == SZ_ERR_CLOSED);
            return ret;
        }
    }
}

int sz_request(sz_conn *c, const uint8_t *req, size_t req_len, uint8_t **resp,
               size_t *resp_len)
{
    uint32_t id = 0;
    int ret;

    if (resp != NULL)
        *resp = NULL;
    if (resp_len != NULL)
        *resp_len = 0;
    if (resp == NULL || resp_len == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_request: bad arguments");
    if ((ret = sz_submit(c, req, req_len, &id)) != SZ_OK)
        return ret;
    return sz_wait(c, id, resp, resp_len);
}

int sz_poll(sz_conn *c, int timeout_ms, uint32_t *request_id, uint8_t **resp,
            size_t *resp_len)
{
    uint64_t poll_dl, now;
    sz_req *best;
    int pending;

    if (request_id != NULL)
        *request_id = 0;
    if (resp != NULL)
        *resp = NULL;
    if (resp_len != NULL)
        *resp_len = 0;
    if (c == NULL || request_id == NULL || resp == NULL || resp_len == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_poll: bad arguments");
    poll_dl =
        timeout_ms < 0 ? SZ_NO_DEADLINE : sz__now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        best = NULL;
        pending = 0;
        for (size_t i = 0; i < c->nreqs; i++) {
            sz_req *r = &c->reqs[i];
            if (r->state == RQ_DONE &&
                (best == NULL || r->done_seq < best->done_seq))
                best = r;
            pending |= r->state == RQ_PENDING;
        }
        if (best != NULL) {
            *request_id = best->id;
            return collect(c, best, resp, resp_len);
        }
        if (c->err != SZ_OK)
            return sticky(c);
        if (!pending)
            return sz__fail(SZ_ERR_USAGE, 0, "no request is outstanding");
        /* A connection failure is picked up by the next round, after any
         * response that completed before it. */
        if (read_step(c, min64(poll_dl, earliest_deadline(c))) != SZ_AGAIN)
            continue;
        now = sz__now_ms();
        expire(c, now);
        /* A request that expired just now is reported before "nothing". */
        if (now >= poll_dl && !any_done(c))
            return sz__fail(SZ_AGAIN, 0, "nothing ready yet");
    }
}

/* --- session and facts ------------------------------------------------------------ */

int sz_conn_export_session(const sz_conn *c, uint8_t *out, size_t cap,
                           size_t *out_len)
{
    if (out_len != NULL)
        *out_len = 0;
    if (c == NULL || out == NULL || out_len == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_conn_export_session: NULL");
    /* The blob was taken right after the handshake: libmegaki wipes the
     * session's secrets when it fails, so it cannot be exported later. */
    if (c->blob_len == 0)
        return sz__fail(SZ_ERR_SESSION, MK_ERR_STATE,
                        "the server issued no session ticket");
    if (cap < c->blob_len)
        return sz__fail(SZ_ERR_USAGE, MK_ERR_BUFFER,
                        "buffer of %zu bytes, the session needs %zu", cap,
                        c->blob_len);
    memcpy(out, c->blob, c->blob_len);
    *out_len = c->blob_len;
    return SZ_OK;
}

void sz_conn_get_info(const sz_conn *c, sz_conn_info *info)
{
    mk_session_info si;

    if (info == NULL)
        return;
    memset(info, 0, sizeof *info);
    if (c == NULL)
        return;
    info->resumed = c->info.resumed;
    info->has_session = c->blob_len != 0;
    memcpy(info->session_id, c->info.session_id, sizeof info->session_id);
    memcpy(info->key_id, c->info.key_id, sizeof info->key_id);
    info->max_message = c->info.max_message;
    info->max_inflight = c->info.max_inflight;
    mk_session_get_info(c->s, &si);
    info->inflight = si.inflight;
}
