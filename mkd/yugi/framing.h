/*
 * framing.h -- cut a byte stream into Megaki units (docs/PROTOCOL.md §3).
 *
 * The declared length is checked by mk_frame_check() before any byte of the
 * body is buffered, and the partial-unit buffer grows only as bytes arrive
 * (never to the declared size up front), so a peer that declares a large
 * unit and stalls costs only what it sent. The buffer is released as soon as
 * the unit completes: an idle connection holds no read buffer.
 */
#ifndef YUGI_FRAMING_H
#define YUGI_FRAMING_H

#include "mkd_compiler.h"
#include "mkd_err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct yugi_framer {
    uint8_t *buf; /* partial unit, NULL when none */
    size_t len, cap;
    size_t need; /* the unit's full length once the header is in */
} yugi_framer;

/* Called for each complete unit; the bytes are borrowed for the call.
 * Returns MKD_OK to go on, anything else to stop feeding (feed returns
 * it). */
typedef int (*yugi_unit_fn)(void *arg, const uint8_t *unit, size_t len);

/* Feed n bytes. Returns MKD_OK, the callback's code that stopped it,
 * MKD_ERR_BAD_UNIT for an invalid header (the connection must close; the
 * header's mk_err is in *bad), or MKD_ERR_NOMEM. */
MKD_MUST_CHECK int yugi__framer_feed(yugi_framer *f, const uint8_t *p, size_t n,
                                     yugi_unit_fn cb, void *arg, int *bad);
static inline int yugi__framer_partial(const yugi_framer *f)
{
    return f->len != 0;
}
void yugi__framer_free(yugi_framer *f);

#endif
