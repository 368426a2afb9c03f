/*
 * framing.c -- see framing.h.
 */
#include "framing.h"

#include <stdlib.h>
#include <string.h>

#include "megaki.h"

void yugi_framer_free(yugi_framer *f)
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
        return 0;
    cap = f->cap * 2 > want ? f->cap * 2 : want;
    if (cap < 64)
        cap = 64;
    if (cap > f->need)
        cap = f->need > want ? f->need : want;
    if ((p = realloc(f->buf, cap)) == NULL)
        return -1;
    f->buf = p;
    f->cap = cap;
    return 0;
}

int yugi_framer_feed(yugi_framer *f, const uint8_t *p, size_t n,
                     yugi_unit_fn cb, void *arg)
{
    while (n > 0) {
        size_t ulen = 0, take;
        int r;

        if (f->len == 0) {
            /* Fast path: whole units straight from the read buffer. */
            r = mk_frame_check(p, n, &ulen);
            if (r == MK_OK) {
                if ((r = cb(arg, p, ulen)) != 0)
                    return r;
                p += ulen;
                n -= ulen;
                continue;
            }
            if (r != MK_WANT_READ)
                return r;
            f->need = ulen; /* header length, or the checked unit length */
        }
        /* Complete the header first, then learn the unit's length. */
        if (f->len < MK_UNIT_HEADER_LEN) {
            take = MK_UNIT_HEADER_LEN - f->len;
            if (take > n)
                take = n;
            if (f->need < MK_UNIT_HEADER_LEN)
                f->need = MK_UNIT_HEADER_LEN;
            if (grow(f, take) != 0)
                return -1;
            memcpy(f->buf + f->len, p, take);
            f->len += take;
            p += take;
            n -= take;
            r = mk_frame_check(f->buf, f->len, &ulen);
            if (r != MK_OK && r != MK_WANT_READ)
                return r;
            f->need = ulen;
            if (f->len < f->need && n == 0)
                return 0;
        }
        take = f->need - f->len;
        if (take > n)
            take = n;
        if (grow(f, take) != 0)
            return -1;
        memcpy(f->buf + f->len, p, take);
        f->len += take;
        p += take;
        n -= take;
        if (f->len == f->need) {
            r = cb(arg, f->buf, f->len);
            /* Release the buffer at once: idle connections hold none. */
            free(f->buf);
            f->buf = NULL;
            f->len = f->cap = f->need = 0;
            if (r != 0)
                return r;
        }
    }
    return 0;
}
