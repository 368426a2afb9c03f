/*
 * ipc.c -- see ipc.h. Every byte of a frame is read through the bounds-
 * checked cursor below (style guide 3.4): no pointer arithmetic on wire
 * data outside it, and a body must be consumed exactly.
 */
#include "pegasus_ipc.h"

#include <string.h>

#include "mkd_log.h"

/* ------------------------------------------------------------------ */
/* Reader and writer cursors                                           */

typedef struct rd {
    const uint8_t *p, *end;
} rd;

static int rd_avail(const rd *r, size_t n)
{
    return (size_t)(r->end - r->p) >= n;
}

static int rd_u8(rd *r, uint8_t *v)
{
    if (!rd_avail(r, 1))
        return -1;
    *v = r->p[0];
    r->p += 1;
    return 0;
}

static int rd_u16(rd *r, uint16_t *v)
{
    if (!rd_avail(r, 2))
        return -1;
    *v = (uint16_t)((unsigned)r->p[0] << 8 | r->p[1]);
    r->p += 2;
    return 0;
}

static int rd_u32(rd *r, uint32_t *v)
{
    if (!rd_avail(r, 4))
        return -1;
    *v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 |
         (uint32_t)r->p[2] << 8 | (uint32_t)r->p[3];
    r->p += 4;
    return 0;
}

static int rd_u64(rd *r, uint64_t *v)
{
    uint32_t hi, lo;

    if (rd_u32(r, &hi) != 0 || rd_u32(r, &lo) != 0)
        return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

/* Borrow n bytes. */
static int rd_bytes(rd *r, size_t n, const uint8_t **p)
{
    if (!rd_avail(r, n))
        return -1;
    *p = r->p;
    r->p += n;
    return 0;
}

/* A sub-reader over the next n bytes, which the caller must consume. */
static int rd_sub(rd *r, size_t n, rd *sub)
{
    const uint8_t *p;

    if (rd_bytes(r, n, &p) != 0)
        return -1;
    sub->p = p;
    sub->end = p + n;
    return 0;
}

static size_t rd_left(const rd *r)
{
    return (size_t)(r->end - r->p);
}

typedef struct wr {
    uint8_t *p, *end;
    int fail;
} wr;

static void wr_u8(wr *w, uint8_t v)
{
    if (w->fail || w->p == w->end) {
        w->fail = 1;
        return;
    }
    *w->p++ = v;
}

static void wr_u16(wr *w, uint16_t v)
{
    wr_u8(w, (uint8_t)(v >> 8));
    wr_u8(w, (uint8_t)v);
}

static void wr_u32(wr *w, uint32_t v)
{
    wr_u16(w, (uint16_t)(v >> 16));
    wr_u16(w, (uint16_t)v);
}

static void wr_u64(wr *w, uint64_t v)
{
    wr_u32(w, (uint32_t)(v >> 32));
    wr_u32(w, (uint32_t)v);
}

static void wr_bytes(wr *w, const void *src, size_t n)
{
    if (w->fail || (size_t)(w->end - w->p) < n) {
        w->fail = 1;
        return;
    }
    if (n > 0)
        memcpy(w->p, src, n);
    w->p += n;
}

static size_t wr_done(const wr *w, const uint8_t *start)
{
    return w->fail ? 0 : (size_t)(w->p - start);
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

static int parse_hello(rd *b, pegasus_ipc_frame *f)
{
    uint16_t flags;

    if (rd_u16(b, &f->version) != 0 || rd_u16(b, &flags) != 0 ||
        rd_u32(b, &f->pid) != 0)
        return MKD_ERR_FRAME_MALFORMED;
    /* Reserved flags must be zero so that a later version can use them. */
    if (flags != 0 || rd_left(b) > PEGASUS_IPC_SOFTWARE_MAX)
        return MKD_ERR_FRAME_MALFORMED;
    f->data_len = rd_left(b);
    if (rd_bytes(b, f->data_len, &f->data) != 0)
        return MKD_ERR_FRAME_MALFORMED;
    return MKD_OK;
}

static int parse_request(rd *b, pegasus_ipc_frame *f)
{
    pegasus_ipc_ctx *c = &f->ctx;
    uint16_t ctx_len;
    const uint8_t *sid, *addr;
    rd cx;

    if (rd_u16(b, &ctx_len) != 0 || ctx_len < PEGASUS_IPC_CTX_FIXED ||
        ctx_len > PEGASUS_IPC_CTX_MAX || rd_sub(b, ctx_len, &cx) != 0)
        return MKD_ERR_FRAME_MALFORMED;
    if (rd_u64(&cx, &c->tag) != 0 || rd_u64(&cx, &c->conn_id) != 0 ||
        rd_u32(&cx, &c->request_id) != 0 || rd_u16(&cx, &c->port) != 0 ||
        rd_u8(&cx, &c->flags) != 0 || rd_u8(&cx, &c->addr_len) != 0 ||
        rd_bytes(&cx, sizeof c->session_id, &sid) != 0)
        return MKD_ERR_FRAME_MALFORMED;
    if ((c->flags & ~PEGASUS_IPC_REQ_EARLY) != 0 ||
        c->addr_len > PEGASUS_IPC_ADDR_MAX ||
        rd_bytes(&cx, c->addr_len, &addr) != 0)
        return MKD_ERR_FRAME_MALFORMED;
    /* An address is printable ASCII; anything else is a broken peer. */
    for (size_t i = 0; i < c->addr_len; i++)
        if (addr[i] < 0x21 || addr[i] > 0x7e)
            return MKD_ERR_FRAME_MALFORMED;
    memcpy(c->session_id, sid, sizeof c->session_id);
    memcpy(c->addr, addr, c->addr_len);
    c->addr[c->addr_len] = '\0';
    /* Context bytes past the fields we know are a later minor revision's
     * additions: skipped by design (WORKER-PROTOCOL.md section 4). */
    f->tag = c->tag;
    f->flags = c->flags;
    f->data_len = rd_left(b);
    if (rd_bytes(b, f->data_len, &f->data) != 0)
        return MKD_ERR_FRAME_MALFORMED;
    return MKD_OK;
}

static int parse_answer(rd *b, pegasus_ipc_frame *f)
{
    if (rd_u64(b, &f->tag) != 0 || rd_u8(b, &f->flags) != 0)
        return MKD_ERR_FRAME_MALFORMED;
    if ((f->flags & ~PEGASUS_IPC_ANS_EXITING) != 0)
        return MKD_ERR_FRAME_MALFORMED;
    f->data_len = rd_left(b);
    if (f->type == PEGASUS_IPC_APP_ERROR &&
        f->data_len > PEGASUS_IPC_ERROR_TEXT_MAX)
        return MKD_ERR_FRAME_MALFORMED;
    if (rd_bytes(b, f->data_len, &f->data) != 0)
        return MKD_ERR_FRAME_MALFORMED;
    return MKD_OK;
}

/* The body of f (type, len and body set), every byte of it used. */
static int parse_body(pegasus_ipc_frame *f)
{
    rd b;
    int ret;

    b.p = f->body;
    b.end = f->body + f->len;
    switch (f->type) {
    case PEGASUS_IPC_HELLO:
        ret = parse_hello(&b, f);
        break;
    case PEGASUS_IPC_REQUEST:
        ret = parse_request(&b, f);
        break;
    case PEGASUS_IPC_RESPONSE:
    case PEGASUS_IPC_APP_ERROR:
        ret = parse_answer(&b, f);
        break;
    case PEGASUS_IPC_SHUTDOWN:
        ret = f->len == 0 ? MKD_OK : MKD_ERR_FRAME_MALFORMED;
        break;
    default:
        ret = MKD_ERR_FRAME_TYPE;
        break;
    }
    if (ret == MKD_OK && rd_left(&b) != 0)
        ret = MKD_ERR_FRAME_MALFORMED;
    return ret;
}

int pegasus_ipc_parse(const uint8_t *buf, size_t len, uint32_t max_len,
                      pegasus_ipc_frame *out, size_t *consumed)
{
    int ret;
    uint8_t type;
    uint32_t blen;
    const uint8_t *body;
    rd r;

    if (out == NULL || consumed == NULL || (buf == NULL && len > 0))
        return MKD_ERR_ARG;
    *consumed = 0;
    memset(out, 0, sizeof *out);
    if (len == 0)
        return MKD_WANT_MORE; /* (NULL + 0 is not C) */
    if (max_len == 0 || max_len > PEGASUS_IPC_HARD_MAX)
        max_len = PEGASUS_IPC_HARD_MAX;
    r.p = buf;
    r.end = buf + len;
    if (rd_u8(&r, &type) != 0 || rd_u32(&r, &blen) != 0)
        return MKD_WANT_MORE;
    /* Type and size are judged on the header alone, before anyone buffers
     * the body: a bad peer costs five bytes, not max_len. */
    if (type < PEGASUS_IPC_HELLO || type > PEGASUS_IPC_SHUTDOWN)
        return MKD_ERR_FRAME_TYPE;
    if (blen > max_len)
        return MKD_ERR_FRAME_TOO_LARGE;
    if (rd_bytes(&r, blen, &body) != 0) {
        *consumed = PEGASUS_IPC_HEADER + (size_t)blen;
        return MKD_WANT_MORE;
    }
    out->type = type;
    out->len = blen;
    out->body = body;
    ret = parse_body(out);
    if (ret != MKD_OK) {
        memset(out, 0, sizeof *out);
        return ret;
    }
    *consumed = PEGASUS_IPC_HEADER + (size_t)blen;
    return MKD_OK;
}

const char *pegasus_ipc_type_name(unsigned type)
{
    switch (type) {
    case PEGASUS_IPC_HELLO:
        return "HELLO";
    case PEGASUS_IPC_REQUEST:
        return "REQUEST";
    case PEGASUS_IPC_RESPONSE:
        return "RESPONSE";
    case PEGASUS_IPC_APP_ERROR:
        return "APP_ERROR";
    case PEGASUS_IPC_SHUTDOWN:
        return "SHUTDOWN";
    default:
        return "unknown";
    }
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */

size_t pegasus_ipc_encode_request_head(uint8_t *out, size_t cap,
                                       const pegasus_ipc_ctx *ctx,
                                       size_t body_len)
{
    wr w = {out, out + cap, 0};
    size_t ctx_len, total;

    if (out == NULL || ctx == NULL || ctx->addr_len > PEGASUS_IPC_ADDR_MAX ||
        (ctx->flags & ~PEGASUS_IPC_REQ_EARLY) != 0)
        return 0;
    for (size_t i = 0; i < ctx->addr_len; i++)
        if ((uint8_t)ctx->addr[i] < 0x21 || (uint8_t)ctx->addr[i] > 0x7e)
            return 0;
    ctx_len = PEGASUS_IPC_CTX_FIXED + ctx->addr_len;
    total = 2 + ctx_len;
    if (body_len > PEGASUS_IPC_HARD_MAX - total)
        return 0;
    total += body_len;
    wr_u8(&w, PEGASUS_IPC_REQUEST);
    wr_u32(&w, (uint32_t)total);
    wr_u16(&w, (uint16_t)ctx_len);
    wr_u64(&w, ctx->tag);
    wr_u64(&w, ctx->conn_id);
    wr_u32(&w, ctx->request_id);
    wr_u16(&w, ctx->port);
    wr_u8(&w, ctx->flags);
    wr_u8(&w, ctx->addr_len);
    wr_bytes(&w, ctx->session_id, sizeof ctx->session_id);
    wr_bytes(&w, ctx->addr, ctx->addr_len);
    return wr_done(&w, out);
}

size_t pegasus_ipc_encode_shutdown(uint8_t *out, size_t cap)
{
    wr w = {out, out + cap, 0};

    if (out == NULL)
        return 0;
    wr_u8(&w, PEGASUS_IPC_SHUTDOWN);
    wr_u32(&w, 0);
    return wr_done(&w, out);
}

size_t pegasus_ipc_encode_hello(uint8_t *out, size_t cap, uint16_t version,
                                uint32_t pid, const char *software)
{
    wr w = {out, out + cap, 0};
    size_t slen = software != NULL ? strlen(software) : 0;

    if (out == NULL || slen > PEGASUS_IPC_SOFTWARE_MAX)
        return 0;
    wr_u8(&w, PEGASUS_IPC_HELLO);
    wr_u32(&w, (uint32_t)(PEGASUS_IPC_HELLO_FIXED + slen));
    wr_u16(&w, version);
    wr_u16(&w, 0);
    wr_u32(&w, pid);
    wr_bytes(&w, software, slen);
    return wr_done(&w, out);
}

size_t pegasus_ipc_encode_answer_head(uint8_t *out, size_t cap, uint8_t type,
                                      uint64_t tag, uint8_t flags,
                                      size_t data_len)
{
    wr w = {out, out + cap, 0};

    if (out == NULL ||
        (type != PEGASUS_IPC_RESPONSE && type != PEGASUS_IPC_APP_ERROR) ||
        (flags & ~PEGASUS_IPC_ANS_EXITING) != 0 ||
        data_len > PEGASUS_IPC_HARD_MAX - PEGASUS_IPC_ANSWER_FIXED ||
        (type == PEGASUS_IPC_APP_ERROR &&
         data_len > PEGASUS_IPC_ERROR_TEXT_MAX))
        return 0;
    wr_u8(&w, type);
    wr_u32(&w, (uint32_t)(PEGASUS_IPC_ANSWER_FIXED + data_len));
    wr_u64(&w, tag);
    wr_u8(&w, flags);
    return wr_done(&w, out);
}

/* ------------------------------------------------------------------ */
/* Worker output lines                                                 */

/* What PHP's own error log writes when its error_log is stderr: the
 * engine's messages that no handler of Arcangelo's saw (start-up, a
 * parse error in Arcangelo itself, a fatal error's own line). */
static const struct {
    const char *prefix;
    int level;
} php_prefixes[] = {
    {"PHP Fatal error:", MKD_LOG_ERROR},
    {"PHP Parse error:", MKD_LOG_ERROR},
    {"PHP Recoverable fatal error:", MKD_LOG_ERROR},
    {"PHP Warning:", MKD_LOG_WARN},
    {"PHP Notice:", MKD_LOG_WARN},
    {"PHP Deprecated:", MKD_LOG_WARN},
};

int pegasus_output_level(const char *line, size_t len, size_t *skip)
{
    static const int by_priority[8] = {
        MKD_LOG_ERROR, MKD_LOG_ERROR, MKD_LOG_ERROR, MKD_LOG_ERROR,
        MKD_LOG_WARN,  MKD_LOG_INFO,  MKD_LOG_INFO,  MKD_LOG_DEBUG,
    };

    *skip = 0;
    if (len >= 3 && line[0] == '<' && line[1] >= '0' && line[1] <= '7' &&
        line[2] == '>') {
        *skip = 3;
        return by_priority[line[1] - '0'];
    }
    for (size_t i = 0; i < sizeof php_prefixes / sizeof php_prefixes[0]; i++) {
        size_t n = strlen(php_prefixes[i].prefix);
        if (len >= n && memcmp(line, php_prefixes[i].prefix, n) == 0)
            return php_prefixes[i].level;
    }
    return MKD_LOG_INFO;
}
