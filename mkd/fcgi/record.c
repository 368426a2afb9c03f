/*
 * record.c -- FastCGI records: the client's encoders and the decoder of
 * what a responder sends back (fcgi.h).
 *
 * Every length is checked against the buffer before it is used; the
 * decoder looks at a record only once all of it (padding too) is there.
 */
#include "fcgi.h"

#include <string.h>

static void put_header(uint8_t *p, uint8_t type, uint16_t id, uint16_t clen,
                       uint8_t plen)
{
    p[0] = FCGI_VERSION;
    p[1] = type;
    p[2] = (uint8_t)(id >> 8);
    p[3] = (uint8_t)id;
    p[4] = (uint8_t)(clen >> 8);
    p[5] = (uint8_t)clen;
    p[6] = plen;
    p[7] = 0;
}

/* Padding that brings content to a multiple of 8 (the spec recommends
 * aligned records; responders must accept any). */
static uint8_t pad_of(size_t clen)
{
    return (uint8_t)((8u - (clen & 7u)) & 7u);
}

size_t fcgi_encode_begin(uint8_t *out, size_t cap, uint16_t request_id,
                         uint8_t flags)
{
    if (out == NULL || cap < FCGI_HEADER + 8u || request_id == 0)
        return 0;
    put_header(out, FCGI_BEGIN_REQUEST, request_id, 8, 0);
    memset(out + FCGI_HEADER, 0, 8);
    out[FCGI_HEADER + 1] = FCGI_ROLE_RESPONDER;
    out[FCGI_HEADER + 2] = flags & FCGI_KEEP_CONN;
    return FCGI_HEADER + 8u;
}

size_t fcgi_encode_abort(uint8_t *out, size_t cap, uint16_t request_id)
{
    if (out == NULL || cap < FCGI_HEADER || request_id == 0)
        return 0;
    put_header(out, FCGI_ABORT_REQUEST, request_id, 0, 0);
    return FCGI_HEADER;
}

/* A name-value length: 1 byte below 128, else 4 with the top bit set. */
static size_t nv_len_size(size_t n)
{
    return n < 128u ? 1u : 4u;
}

static size_t put_nv_len(uint8_t *p, size_t n)
{
    if (n < 128u) {
        p[0] = (uint8_t)n;
        return 1;
    }
    p[0] = (uint8_t)(0x80u | (n >> 24));
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
    return 4;
}

int fcgi_put_param(uint8_t *out, size_t cap, size_t *pos, const char *name,
                   size_t name_len, const char *value, size_t value_len)
{
    size_t need, at;

    if (out == NULL || pos == NULL || name == NULL ||
        (value == NULL && value_len != 0) || name_len > 0x7fffffffu ||
        value_len > 0x7fffffffu || *pos > cap)
        return MKD_ERR_ARG;
    need = nv_len_size(name_len) + nv_len_size(value_len);
    if (cap - *pos < need || cap - *pos - need < name_len ||
        cap - *pos - need - name_len < value_len)
        return MKD_ERR_BUFFER;
    at = *pos;
    at += put_nv_len(out + at, name_len);
    at += put_nv_len(out + at, value_len);
    memcpy(out + at, name, name_len);
    at += name_len;
    if (value_len != 0)
        memcpy(out + at, value, value_len);
    *pos = at + value_len;
    return MKD_OK;
}

size_t fcgi_stream_size(size_t len, int end)
{
    size_t full = len / FCGI_CONTENT_MAX, rest = len % FCGI_CONTENT_MAX;
    size_t n =
        full * (FCGI_HEADER + FCGI_CONTENT_MAX + pad_of(FCGI_CONTENT_MAX));

    if (rest != 0)
        n += FCGI_HEADER + rest + pad_of(rest);
    return end ? n + FCGI_HEADER : n;
}

size_t fcgi_encode_stream(uint8_t *out, size_t cap, uint8_t type,
                          uint16_t request_id, const uint8_t *data, size_t len,
                          int end)
{
    size_t need = fcgi_stream_size(len, end), at = 0;

    if (out == NULL || (data == NULL && len != 0) || request_id == 0 ||
        (type != FCGI_PARAMS && type != FCGI_STDIN) || cap < need)
        return 0;
    while (len > 0) {
        size_t c = len < FCGI_CONTENT_MAX ? len : FCGI_CONTENT_MAX;
        uint8_t pad = pad_of(c);
        put_header(out + at, type, request_id, (uint16_t)c, pad);
        memcpy(out + at + FCGI_HEADER, data, c);
        memset(out + at + FCGI_HEADER + c, 0, pad);
        at += FCGI_HEADER + c + pad;
        data += c;
        len -= c;
    }
    if (end) {
        put_header(out + at, type, request_id, 0, 0);
        at += FCGI_HEADER;
    }
    return at;
}

/* END_REQUEST's body: appStatus u32, protocolStatus u8, reserved[3]. */
static int parse_end(fcgi_record *r)
{
    const uint8_t *c = r->content;

    if (r->content_len != 8u || c[4] > FCGI_UNKNOWN_ROLE)
        return MKD_ERR_FRAME_MALFORMED;
    r->app_status = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 |
                    (uint32_t)c[2] << 8 | c[3];
    r->protocol_status = c[4];
    return MKD_OK;
}

int fcgi_parse_record(const uint8_t *buf, size_t len, uint16_t request_id,
                      fcgi_record *out, size_t *consumed)
{
    size_t total;

    if (buf == NULL || out == NULL || consumed == NULL)
        return MKD_ERR_ARG;
    memset(out, 0, sizeof *out);
    *consumed = 0;
    if (len < FCGI_HEADER)
        return MKD_WANT_MORE;
    if (buf[0] != FCGI_VERSION)
        return MKD_ERR_FRAME_MALFORMED;
    out->type = buf[1];
    if (out->type != FCGI_STDOUT && out->type != FCGI_STDERR &&
        out->type != FCGI_END_REQUEST)
        return MKD_ERR_FRAME_TYPE;
    out->request_id = (uint16_t)(buf[2] << 8 | buf[3]);
    if (out->request_id != request_id || request_id == 0)
        return MKD_ERR_FRAME_MALFORMED;
    out->content_len = (uint16_t)(buf[4] << 8 | buf[5]);
    total = FCGI_HEADER + (size_t)out->content_len + buf[6];
    *consumed = total;
    if (len < total)
        return MKD_WANT_MORE;
    out->content = buf + FCGI_HEADER;
    if (out->type == FCGI_END_REQUEST)
        return parse_end(out);
    return MKD_OK;
}
