/*
 * fuzz_frame.c -- mk_frame_check() and unit splitting over an arbitrary
 * byte stream, plus the handshake parsers on every unit it delimits.
 *
 * Checks, aborting on violation (a finding, not a crash elsewhere):
 *   - an OK unit has exactly the declared length, fits the input and
 *     MK_UNIT_MAX; one byte fewer is WANT_READ with the same length;
 *   - the verdict after the 4-byte header alone is the verdict of the whole
 *     (only the length may still be missing), so a caller never buffers
 *     more than a header to refuse a unit;
 *   - WANT_READ asks for more than is there.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "msg.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static void parse_all(const uint8_t *u, size_t n)
{
    mk_ch ch;
    mk_sh sh;
    mk_retry rt;
    mk_alert_msg a;
    mk_extras x;
    (void)mk__ch_parse(u, n, &ch);
    (void)mk__sh_parse(u, n, &sh);
    (void)mk__retry_parse(u, n, &rt);
    (void)mk__alert_parse(u, n, &a);
    if (n > MK_UNIT_HEADER_LEN)
        (void)mk__extras_parse(u + MK_UNIT_HEADER_LEN, n - MK_UNIT_HEADER_LEN,
                               &x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;

    if (size > FZ_MAX_INPUT)
        return 0;
    for (;;) {
        const uint8_t *p = data + off;
        size_t left = size - off, ul = 0, hl = 0;
        int r = mk_frame_check(p, left, &ul);

        if (left >= MK_UNIT_HEADER_LEN) {
            int rh = mk_frame_check(p, MK_UNIT_HEADER_LEN, &hl);
            if (r == MK_OK || r == MK_WANT_READ)
                check(rh == MK_WANT_READ ? hl == ul : rh == MK_OK && ul == hl);
            else
                check(rh == r);
        }
        if (r == MK_WANT_READ) {
            check(ul >= MK_UNIT_HEADER_LEN && ul > left);
            check(ul <= MK_UNIT_MAX);
            break;
        }
        if (r != MK_OK) {
            check(r == MK_ERR_BAD_UNIT_TYPE || r == MK_ERR_BAD_LENGTH);
            break;
        }
        check(ul >= MK_UNIT_HEADER_LEN && ul <= left && ul <= MK_UNIT_MAX);
        check(ul == MK_UNIT_HEADER_LEN + ((size_t)p[2] << 8 | p[3]));
        if (ul > MK_UNIT_HEADER_LEN) {
            size_t ul2 = 0;
            check(mk_frame_check(p, ul - 1, &ul2) == MK_WANT_READ);
            check(ul2 == ul);
        }
        parse_all(p, ul);
        off += ul;
        if (off == size)
            break;
    }
    return 0;
}
