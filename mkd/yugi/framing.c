/*
 * framing.c -- see framing.h.
 */
#include "framing.h"

#include <stdlib.h>
#include <string.h>

#include "megaki.h"

void yugi__framer_free(yugi_framer *f)
{
    free(f->buf);
    memset(f, 0, sizeof *f);
}

/* Make room for take more bytes: at most doubling, never past need. */
static int grow(yugi_framer *f, size_t take)
{
    size_t want = f->len + take, cap;
    uint8_t *p;

    if (want <= f->cap)
        return MKD_OK;
    cap = f->cap * 2 > want ? f->cap * 2 : want;
    if (cap < 64)
        cap = 64;
    if (cap > f->need)
        cap = f->need > want ? f->need : want;
    if ((p = realloc(f->buf, cap)) == NULL)
        return MKD_ERR_NOMEM;
    f->buf = p;
    f->cap = cap;
    return MKD_OK;
}

/* Move up to want bytes of the input into the partial unit. */
static int take_in(yugi_framer *f, const uint8_t **p, size_t *n, size_t want)
{
    size_t take = want < *n ? want : *n;

    if (grow(f, take) != MKD_OK)
        return MKD_ERR_NOMEM;
    memcpy(f->buf + f->len, *p, take);
    f->len += take;
    *p += take;
    *n -= take;
    return MKD_OK;
}

/* The header is complete (or as complete as the input): learn the unit's
 * length. MKD_OK, MKD_WANT_MORE or MKD_ERR_BAD_UNIT. */
static int check_header(yugi_framer *f, int *bad)
{
    size_t ulen = 0;
    int r = mk_frame_check(f->buf, f->len, &ulen);

    if (r != MK_OK && r != MK_WANT_READ) {
        *bad = r;
        return MKD_ERR_BAD_UNIT;
    }
    f->need = ulen;
    return MKD_OK;
}

/* The partial unit is whole: hand it over and release the buffer at once
 * (idle connections hold none). */
static int deliver(yugi_framer *f, yugi_unit_fn cb, void *arg)
{
    int r = cb(arg, f->buf, f->len);

    free(f->buf);
    f->buf = NULL;
    f->len = f->cap = f->need = 0;
    return r;
}

int yugi__framer_feed(yugi_framer *f, const uint8_t *p, size_t n,
                      yugi_unit_fn cb, void *arg, int *bad)
{
    int r;

    *bad = MK_OK;
    while (n > 0) {
        size_t ulen = 0;
        if (f->len == 0) {
            /* Fast path: whole units straight from the read buffer. */
            r = mk_frame_check(p, n, &ulen);
            if (r == MK_OK) {
                if ((r = cb(arg, p, ulen)) != MKD_OK)
                    return r;
                p += ulen;
                n -= ulen;
                continue;
            }
            if (r != MK_WANT_READ) {
                *bad = r;
                return MKD_ERR_BAD_UNIT;
            }
            /* The header's length, or the checked unit's. */
            f->need = ulen > MK_UNIT_HEADER_LEN ? ulen : MK_UNIT_HEADER_LEN;
        }
        /* Complete the header first, then learn the unit's length. */
        if (f->len < MK_UNIT_HEADER_LEN) {
            if ((r = take_in(f, &p, &n, MK_UNIT_HEADER_LEN - f->len)) !=
                    MKD_OK ||
                (r = check_header(f, bad)) != MKD_OK)
                return r;
            if (f->len < f->need && n == 0)
                return MKD_OK;
        }
        if ((r = take_in(f, &p, &n, f->need - f->len)) != MKD_OK)
            return r;
        if (f->len == f->need && (r = deliver(f, cb, arg)) != MKD_OK)
            return r;
    }
    return MKD_OK;
}
