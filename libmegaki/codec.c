/*
 * codec.c -- the bounds-checked cursors of codec.h. Big-endian throughout
 * (docs/PROTOCOL.md §1).
 */
#include "codec.h"

#include <string.h>

void mk_rd_init(mk_rd *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->end = p ? p + len : p;
    r->bad = 0;
}

size_t mk_rd_left(const mk_rd *r)
{
    return (size_t)(r->end - r->p);
}

const uint8_t *mk_rd_bytes(mk_rd *r, size_t n)
{
    if (r->bad || n > mk_rd_left(r)) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

uint8_t mk_rd_u8(mk_rd *r)
{
    const uint8_t *q = mk_rd_bytes(r, 1);
    return q ? q[0] : 0;
}

uint16_t mk_rd_u16(mk_rd *r)
{
    const uint8_t *q = mk_rd_bytes(r, 2);
    return q ? mk_get_u16(q) : 0;
}

uint32_t mk_rd_u32(mk_rd *r)
{
    const uint8_t *q = mk_rd_bytes(r, 4);
    return q ? mk_get_u32(q) : 0;
}

uint64_t mk_rd_u64(mk_rd *r)
{
    const uint8_t *q = mk_rd_bytes(r, 8);
    return q ? ((uint64_t)mk_get_u32(q) << 32) | mk_get_u32(q + 4) : 0;
}

void mk_rd_copy(mk_rd *r, uint8_t *dst, size_t n)
{
    const uint8_t *q = mk_rd_bytes(r, n);
    if (q)
        memcpy(dst, q, n);
    else
        memset(dst, 0, n);
}

const uint8_t *mk_rd_block16(mk_rd *r, size_t *len)
{
    size_t n = mk_rd_u16(r);
    const uint8_t *q = mk_rd_bytes(r, n);
    *len = q ? n : 0;
    return q;
}

int mk_rd_done(const mk_rd *r)
{
    return !r->bad && r->p == r->end;
}

void mk_wr_init(mk_wr *w, uint8_t *p, size_t cap)
{
    w->p = w->start = p;
    w->end = p ? p + cap : p;
    w->bad = 0;
}

uint8_t *mk_wr_reserve(mk_wr *w, size_t n)
{
    if (w->bad || n > (size_t)(w->end - w->p)) {
        w->bad = 1;
        return NULL;
    }
    uint8_t *q = w->p;
    w->p += n;
    return q;
}

void mk_wr_bytes(mk_wr *w, const uint8_t *p, size_t n)
{
    uint8_t *q = mk_wr_reserve(w, n);
    if (q && n)
        memcpy(q, p, n);
}

void mk_wr_u8(mk_wr *w, uint8_t v)
{
    uint8_t *q = mk_wr_reserve(w, 1);
    if (q)
        q[0] = v;
}

void mk_wr_u16(mk_wr *w, uint16_t v)
{
    uint8_t *q = mk_wr_reserve(w, 2);
    if (q)
        mk_put_u16(q, v);
}

void mk_wr_u32(mk_wr *w, uint32_t v)
{
    uint8_t *q = mk_wr_reserve(w, 4);
    if (q)
        mk_put_u32(q, v);
}

void mk_wr_u64(mk_wr *w, uint64_t v)
{
    uint8_t *q = mk_wr_reserve(w, 8);
    if (q)
        mk_put_u64(q, v);
}

size_t mk_wr_len(const mk_wr *w)
{
    return (size_t)(w->p - w->start);
}

void mk_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void mk_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void mk_put_u64(uint8_t *p, uint64_t v)
{
    mk_put_u32(p, (uint32_t)(v >> 32));
    mk_put_u32(p + 4, (uint32_t)v);
}

uint16_t mk_get_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t mk_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

/* Bytes of the one well-formed UTF-8 sequence at p[0..n), or 0. The
 * ranges are those of RFC 3629 §4: the second byte's range depends on the
 * first, which is what rules out overlong forms (E0, F0), surrogates (ED)
 * and code points above U+10FFFF (F4). */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0], lo = 0x80, hi = 0xBF;
    size_t len;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

size_t mk_utf8_valid_len(const uint8_t *p, size_t n)
{
    size_t i = 0, k;

    while (i < n && (k = utf8_seq(p + i, n - i)) != 0)
        i += k;
    return i;
}
