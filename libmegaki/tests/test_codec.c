/*
 * test_codec.c -- the bounds-checked cursors of codec.h, the handshake
 * message codecs of msg.h, and mk_frame_check().
 *
 * What matters here is the failure behaviour: a reader or writer that runs
 * off the end stays failed (so a parser can check once at the end), a
 * length-prefixed block is taken exactly, a reserved field can be
 * back-patched, and no write ever lands past the capacity it was given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "msg.h"

/* A guard byte pattern written around writer buffers to catch overruns. */
#define GUARD 0xA5

/* --- readers ------------------------------------------------------------ */

static void test_rd_big_endian(void **st)
{
    static const uint8_t b[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F};
    mk_rd r;
    (void)st;

    mk_rd_init(&r, b, sizeof b);
    assert_int_equal(mk_rd_left(&r), 15);
    assert_int_equal(mk_rd_u8(&r), 0x01);
    assert_int_equal(mk_rd_u16(&r), 0x0203);
    assert_int_equal(mk_rd_u32(&r), 0x04050607u);
    assert_true(mk_rd_u64(&r) == 0x08090A0B0C0D0E0Full);
    assert_int_equal(mk_rd_left(&r), 0);
    assert_false(r.bad);
    assert_true(mk_rd_done(&r));
}

static void test_rd_extremes(void **st)
{
    static const uint8_t ff[8] = {0xFF, 0xFF, 0xFF, 0xFF,
                                  0xFF, 0xFF, 0xFF, 0xFF};
    mk_rd r;
    (void)st;

    mk_rd_init(&r, ff, 8);
    assert_true(mk_rd_u64(&r) == UINT64_MAX);
    mk_rd_init(&r, ff, 4);
    assert_true(mk_rd_u32(&r) == UINT32_MAX);
    mk_rd_init(&r, ff, 2);
    assert_int_equal(mk_rd_u16(&r), 0xFFFF);
}

/* Every read that does not fit fails, returns zero, consumes nothing, and
 * leaves the reader failed, even for later reads that would have fitted. */
static void test_rd_sticky(void **st)
{
    static const uint8_t b[] = {0xAA, 0xBB, 0xCC};
    uint8_t dst[4];
    mk_rd r;
    (void)st;

    mk_rd_init(&r, b, sizeof b);
    assert_int_equal(mk_rd_u32(&r), 0); /* 4 > 3 */
    assert_true(r.bad);
    assert_int_equal(mk_rd_left(&r), 3); /* nothing consumed */
    assert_int_equal(mk_rd_u8(&r), 0);   /* would fit, but sticky */
    assert_int_equal(mk_rd_u16(&r), 0);
    assert_null(mk_rd_bytes(&r, 0));
    assert_null(mk_rd_bytes(&r, 1));
    memset(dst, 0x77, sizeof dst);
    mk_rd_copy(&r, dst, 2);
    assert_int_equal(dst[0], 0); /* zero-filled on failure */
    assert_int_equal(dst[1], 0);
    assert_int_equal(dst[2], 0x77); /* and only n bytes touched */
    assert_false(mk_rd_done(&r));

    /* Each width fails exactly one byte short. */
    for (size_t w = 1; w <= 8; w *= 2) {
        uint8_t buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        mk_rd_init(&r, buf, w - 1);
        switch (w) {
        case 1:
            assert_int_equal(mk_rd_u8(&r), 0);
            break;
        case 2:
            assert_int_equal(mk_rd_u16(&r), 0);
            break;
        case 4:
            assert_int_equal(mk_rd_u32(&r), 0);
            break;
        default:
            assert_true(mk_rd_u64(&r) == 0);
            break;
        }
        assert_true(r.bad);
        mk_rd_init(&r, buf, w);
        switch (w) {
        case 1:
            assert_int_equal(mk_rd_u8(&r), 1);
            break;
        case 2:
            assert_int_equal(mk_rd_u16(&r), 0x0102);
            break;
        case 4:
            assert_int_equal(mk_rd_u32(&r), 0x01020304u);
            break;
        default:
            assert_true(mk_rd_u64(&r) == 0x0102030405060708ull);
            break;
        }
        assert_true(mk_rd_done(&r));
    }
}

static void test_rd_bytes_and_copy(void **st)
{
    static const uint8_t b[] = {1, 2, 3, 4, 5};
    uint8_t dst[3];
    const uint8_t *q;
    mk_rd r;
    (void)st;

    mk_rd_init(&r, b, sizeof b);
    q = mk_rd_bytes(&r, 0); /* an empty borrow is fine and points in */
    assert_ptr_equal(q, b);
    q = mk_rd_bytes(&r, 2);
    assert_ptr_equal(q, b);
    mk_rd_copy(&r, dst, 3);
    assert_memory_equal(dst, b + 2, 3);
    assert_true(mk_rd_done(&r));
    /* A huge n must not wrap the pointer arithmetic. */
    mk_rd_init(&r, b, sizeof b);
    assert_null(mk_rd_bytes(&r, SIZE_MAX));
    assert_true(r.bad);
    assert_int_equal(mk_rd_left(&r), sizeof b);
}

/* done means: nothing failed and nothing is left over. */
static void test_rd_done(void **st)
{
    static const uint8_t b[] = {1, 2};
    mk_rd r;
    (void)st;

    mk_rd_init(&r, b, sizeof b);
    assert_false(mk_rd_done(&r)); /* bytes left */
    (void)mk_rd_u8(&r);
    assert_false(mk_rd_done(&r));
    (void)mk_rd_u8(&r);
    assert_true(mk_rd_done(&r));
    (void)mk_rd_u8(&r); /* one past the end */
    assert_false(mk_rd_done(&r));

    /* An empty reader, even over NULL, is done until it is read. */
    mk_rd_init(&r, NULL, 0);
    assert_true(mk_rd_done(&r));
    assert_int_equal(mk_rd_left(&r), 0);
    assert_int_equal(mk_rd_u8(&r), 0);
    assert_false(mk_rd_done(&r));
}

/* A u16-prefixed block is exactly its declared length: one byte short and
 * the block (and the reader) fail; the bytes after it stay unread. */
static void test_rd_block16(void **st)
{
    uint8_t b[8] = {0x00, 0x03, 'a', 'b', 'c', 'd', 'e', 'f'};
    const uint8_t *q;
    size_t len = 99;
    mk_rd r;
    (void)st;

    mk_rd_init(&r, b, 5);
    q = mk_rd_block16(&r, &len);
    assert_ptr_equal(q, b + 2);
    assert_int_equal(len, 3);
    assert_true(mk_rd_done(&r));

    /* Trailing bytes are not part of the block. */
    mk_rd_init(&r, b, 6);
    q = mk_rd_block16(&r, &len);
    assert_int_equal(len, 3);
    assert_false(mk_rd_done(&r));
    assert_int_equal(mk_rd_left(&r), 1);

    /* Declared 3, only 2 present. */
    len = 99;
    mk_rd_init(&r, b, 4);
    assert_null(mk_rd_block16(&r, &len));
    assert_int_equal(len, 0);
    assert_true(r.bad);

    /* The prefix itself cut short. */
    len = 99;
    mk_rd_init(&r, b, 1);
    assert_null(mk_rd_block16(&r, &len));
    assert_int_equal(len, 0);
    assert_true(r.bad);

    /* A zero-length block is a valid, empty borrow. */
    b[1] = 0;
    len = 99;
    mk_rd_init(&r, b, 2);
    q = mk_rd_block16(&r, &len);
    assert_non_null(q);
    assert_int_equal(len, 0);
    assert_true(mk_rd_done(&r));

    /* The maximum declared length, 0xFFFF, with one byte missing. */
    {
        uint8_t *big = calloc(1, 2 + 0xFFFF);
        assert_non_null(big);
        big[0] = 0xFF;
        big[1] = 0xFF;
        mk_rd_init(&r, big, 2 + 0xFFFF - 1);
        assert_null(mk_rd_block16(&r, &len));
        assert_true(r.bad);
        mk_rd_init(&r, big, 2 + 0xFFFF);
        assert_ptr_equal(mk_rd_block16(&r, &len), big + 2);
        assert_int_equal(len, 0xFFFF);
        assert_true(mk_rd_done(&r));
        free(big);
    }

    /* After a failed block, later reads fail too. */
    b[1] = 0x09;
    mk_rd_init(&r, b, sizeof b);
    assert_null(mk_rd_block16(&r, &len));
    assert_int_equal(mk_rd_u8(&r), 0);
    assert_true(r.bad);
}

/* --- writers ------------------------------------------------------------ */

static void test_wr_big_endian(void **st)
{
    static const uint8_t want[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
                                   0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C,
                                   0x0D, 0x0E, 0x0F, 'x',  'y'};
    uint8_t b[sizeof want];
    mk_wr w;
    (void)st;

    mk_wr_init(&w, b, sizeof b);
    mk_wr_u8(&w, 0x01);
    mk_wr_u16(&w, 0x0203);
    mk_wr_u32(&w, 0x04050607u);
    mk_wr_u64(&w, 0x08090A0B0C0D0E0Full);
    mk_wr_bytes(&w, (const uint8_t *)"xy", 2);
    assert_false(w.bad);
    assert_int_equal(mk_wr_len(&w), sizeof want);
    assert_memory_equal(b, want, sizeof want);
}

/* A write that does not fit writes nothing, marks the writer failed, and
 * every later write is refused even if it would fit; the length reports
 * what was written before the failure. Guard bytes past cap stay intact. */
static void test_wr_sticky(void **st)
{
    uint8_t b[8];
    mk_wr w;
    (void)st;

    memset(b, GUARD, sizeof b);
    mk_wr_init(&w, b, 3);
    mk_wr_u16(&w, 0x1122);
    mk_wr_u16(&w, 0x3344); /* 2 > 1 left */
    assert_true(w.bad);
    assert_int_equal(mk_wr_len(&w), 2);
    mk_wr_u8(&w, 0x55); /* would fit, but sticky */
    mk_wr_bytes(&w, (const uint8_t *)"z", 1);
    assert_null(mk_wr_reserve(&w, 0));
    assert_int_equal(mk_wr_len(&w), 2);
    assert_int_equal(b[0], 0x11);
    assert_int_equal(b[1], 0x22);
    for (size_t i = 2; i < sizeof b; i++)
        assert_int_equal(b[i], GUARD);

    /* Each width fails one byte short of room, without a partial write. */
    for (size_t n = 1; n <= 8; n *= 2) {
        memset(b, GUARD, sizeof b);
        mk_wr_init(&w, b, n - 1);
        switch (n) {
        case 1:
            mk_wr_u8(&w, 0);
            break;
        case 2:
            mk_wr_u16(&w, 0);
            break;
        case 4:
            mk_wr_u32(&w, 0);
            break;
        default:
            mk_wr_u64(&w, 0);
            break;
        }
        assert_true(w.bad);
        assert_int_equal(mk_wr_len(&w), 0);
        for (size_t i = 0; i < sizeof b; i++)
            assert_int_equal(b[i], GUARD);
    }

    /* A zero-capacity writer takes empty writes only. */
    mk_wr_init(&w, b, 0);
    mk_wr_bytes(&w, NULL, 0);
    assert_false(w.bad);
    mk_wr_u8(&w, 1);
    assert_true(w.bad);
}

/* Reserve a length field, write the body, back-patch: the pattern every
 * message writer uses. */
static void test_wr_backpatch(void **st)
{
    uint8_t b[32];
    uint8_t *len16, *len32, *len64;
    mk_wr w;
    mk_rd r;
    size_t n = 0;
    (void)st;

    memset(b, GUARD, sizeof b);
    mk_wr_init(&w, b, sizeof b);
    mk_wr_u8(&w, 0x17);
    len16 = mk_wr_reserve(&w, 2);
    len32 = mk_wr_reserve(&w, 4);
    len64 = mk_wr_reserve(&w, 8);
    assert_non_null(len16);
    assert_non_null(len32);
    assert_non_null(len64);
    assert_ptr_equal(len16, b + 1);
    mk_wr_bytes(&w, (const uint8_t *)"hello", 5);
    assert_false(w.bad);
    mk_put_u16(len16, (uint16_t)(mk_wr_len(&w) - 3));
    mk_put_u32(len32, 0xDEADBEEFu);
    mk_put_u64(len64, 0x0123456789ABCDEFull);
    assert_int_equal(mk_wr_len(&w), 1 + 2 + 4 + 8 + 5);
    assert_int_equal(b[sizeof b - 1], GUARD);

    mk_rd_init(&r, b, mk_wr_len(&w));
    assert_int_equal(mk_rd_u8(&r), 0x17);
    assert_int_equal(mk_rd_u16(&r), 17);
    assert_int_equal(mk_rd_u32(&r), 0xDEADBEEFu);
    assert_true(mk_rd_u64(&r) == 0x0123456789ABCDEFull);
    assert_memory_equal(mk_rd_bytes(&r, 5), "hello", 5);
    assert_true(mk_rd_done(&r));

    /* The block written with a back-patched prefix reads back exactly. */
    mk_wr_init(&w, b, sizeof b);
    len16 = mk_wr_reserve(&w, 2);
    mk_wr_bytes(&w, (const uint8_t *)"abc", 3);
    mk_put_u16(len16, 3);
    mk_rd_init(&r, b, mk_wr_len(&w));
    assert_memory_equal(mk_rd_block16(&r, &n), "abc", 3);
    assert_int_equal(n, 3);
    assert_true(mk_rd_done(&r));

    /* A reservation that does not fit is NULL and fails the writer. */
    mk_wr_init(&w, b, 4);
    assert_null(mk_wr_reserve(&w, 5));
    assert_true(w.bad);
    mk_wr_init(&w, b, 4);
    assert_null(mk_wr_reserve(&w, SIZE_MAX));
    assert_true(w.bad);
}

static void test_put_get(void **st)
{
    static const uint16_t v16[] = {0,      1,      0x00FF, 0x0100,
                                   0x7FFF, 0x8000, 0xFFFF};
    static const uint32_t v32[] = {
        0, 1, 0xFF, 0x100, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu, 0x01020304u};
    uint8_t b[8];
    (void)st;

    for (size_t i = 0; i < sizeof v16 / sizeof v16[0]; i++) {
        mk_put_u16(b, v16[i]);
        assert_int_equal(mk_get_u16(b), v16[i]);
        assert_int_equal(b[0], v16[i] >> 8);
    }
    for (size_t i = 0; i < sizeof v32 / sizeof v32[0]; i++) {
        mk_put_u32(b, v32[i]);
        assert_int_equal(mk_get_u32(b), v32[i]);
        assert_int_equal(b[0], v32[i] >> 24);
        assert_int_equal(b[3], v32[i] & 0xFF);
    }
    mk_put_u64(b, 0x8000000000000001ull);
    assert_int_equal(b[0], 0x80);
    assert_int_equal(b[7], 0x01);
    assert_int_equal(mk_get_u32(b), 0x80000000u);
    assert_int_equal(mk_get_u32(b + 4), 1);
}

/* --- mk_frame_check ------------------------------------------------------ */

static const uint8_t known_types[] = {
    MK_UNIT_CLIENT_HELLO, MK_UNIT_SERVER_HELLO, MK_UNIT_HELLO_RETRY,
    MK_UNIT_ALERT,        MK_UNIT_DATA,         MK_UNIT_ERROR,
    MK_UNIT_CLOSE};

static int is_known(unsigned t)
{
    for (size_t i = 0; i < sizeof known_types; i++)
        if (known_types[i] == t)
            return 1;
    return 0;
}

/* Fill a header for type t with a declared body length of body. */
static void hdr(uint8_t h[4], uint8_t t, uint16_t body)
{
    h[0] = t;
    h[1] = 0;
    mk_put_u16(h + 2, body);
}

static void test_frame_empty_and_partial(void **st)
{
    uint8_t h[4];
    size_t ul = 12345;
    (void)st;

    /* Nothing yet: want a header. */
    assert_int_equal(mk_frame_check(NULL, 0, &ul), MK_WANT_READ);
    assert_int_equal(ul, MK_UNIT_HEADER_LEN);
    /* A known type with a partial header: still want the header. */
    hdr(h, MK_UNIT_DATA, 100);
    for (size_t n = 1; n < MK_UNIT_HEADER_LEN; n++) {
        ul = 0;
        assert_int_equal(mk_frame_check(h, n, &ul), MK_WANT_READ);
        assert_int_equal(ul, MK_UNIT_HEADER_LEN);
    }
}

/* The type byte alone decides: a non-Megaki peer is refused after one
 * byte, and only the seven unit types pass. */
static void test_frame_types(void **st)
{
    uint8_t h[4];
    size_t ul;
    (void)st;

    for (unsigned t = 0; t < 256; t++) {
        hdr(h, (uint8_t)t, 10); /* 10 is valid for ALERT only */
        int r1 = mk_frame_check(h, 1, &ul);
        if (is_known(t)) {
            assert_int_equal(r1, MK_WANT_READ);
        } else {
            assert_int_equal(r1, MK_ERR_BAD_UNIT_TYPE);
            assert_int_equal(mk_frame_check(h, 4, &ul), MK_ERR_BAD_UNIT_TYPE);
        }
    }
}

/* Whole units: WANT_READ with the full length until the last byte is in,
 * then OK with exactly that length, however many bytes follow. */
static void test_frame_whole_unit(void **st)
{
    uint8_t buf[4 + MK_UNIT_HEADER_LEN + 10 + 100];
    size_t ul;
    (void)st;

    memset(buf, 0, sizeof buf);
    hdr(buf, MK_UNIT_ALERT, 10);
    for (size_t n = MK_UNIT_HEADER_LEN; n < 14; n++) {
        ul = 0;
        assert_int_equal(mk_frame_check(buf, n, &ul), MK_WANT_READ);
        assert_int_equal(ul, 14);
    }
    assert_int_equal(mk_frame_check(buf, 14, &ul), MK_OK);
    assert_int_equal(ul, 14);
    assert_int_equal(mk_frame_check(buf, sizeof buf, &ul), MK_OK);
    assert_int_equal(ul, 14);
    /* The flags byte is not framing's business. */
    buf[1] = 0xFF;
    assert_int_equal(mk_frame_check(buf, 14, &ul), MK_OK);
}

/* The largest unit any type may declare fits MK_UNIT_MAX, so a framer
 * buffer of that size always suffices. */
static void test_frame_max_unit(void **st)
{
    uint8_t h[4];
    size_t ul;
    (void)st;

    for (size_t i = 0; i < sizeof known_types; i++) {
        for (unsigned body = 0; body <= 0xFFFF; body++) {
            hdr(h, known_types[i], (uint16_t)body);
            int r = mk_frame_check(h, 4, &ul);
            if (r == MK_WANT_READ) {
                assert_true(ul <= MK_UNIT_MAX);
                assert_int_equal(ul, 4 + body);
            } else {
                assert_int_equal(r, MK_ERR_BAD_LENGTH);
            }
        }
    }
}

/* --- handshake message codecs (msg.h) ------------------------------------ */

/* Every strict prefix and every one-byte extension of a good unit must be
 * refused by its parser (with the length field kept consistent). */
typedef int (*parse_fn)(const uint8_t *, size_t, void *);

static int p_ch(const uint8_t *u, size_t n, void *o)
{
    return mk__ch_parse(u, n, o);
}
static int p_sh(const uint8_t *u, size_t n, void *o)
{
    return mk__sh_parse(u, n, o);
}
static int p_rt(const uint8_t *u, size_t n, void *o)
{
    return mk__retry_parse(u, n, o);
}
static int p_al(const uint8_t *u, size_t n, void *o)
{
    return mk__alert_parse(u, n, o);
}

static void check_exact(const uint8_t *unit, size_t len, parse_fn fn,
                        void *scratch)
{
    uint8_t *copy = malloc(len + 1);
    assert_non_null(copy);
    assert_int_equal(fn(unit, len, scratch), MK_OK);
    for (size_t n = 0; n < len; n++) {
        /* Prefix with its header length patched to match: the body itself
         * is what is short. */
        memcpy(copy, unit, n);
        if (n >= MK_UNIT_HEADER_LEN)
            mk_put_u16(copy + 2, (uint16_t)(n - MK_UNIT_HEADER_LEN));
        assert_int_not_equal(fn(copy, n, scratch), MK_OK);
    }
    memcpy(copy, unit, len);
    copy[len] = 0;
    mk_put_u16(copy + 2, (uint16_t)(len + 1 - MK_UNIT_HEADER_LEN));
    assert_int_not_equal(fn(copy, len + 1, scratch), MK_OK);
    /* Header length disagreeing with the unit length. */
    memcpy(copy, unit, len);
    mk_put_u16(copy + 2, (uint16_t)(len - MK_UNIT_HEADER_LEN + 1));
    assert_int_equal(fn(copy, len, scratch), MK_ERR_BAD_MESSAGE);
    /* Nonzero header flags. */
    memcpy(copy, unit, len);
    copy[1] = 0x01;
    assert_int_equal(fn(copy, len, scratch), MK_ERR_BAD_MESSAGE);
    /* Magic and version. */
    memcpy(copy, unit, len);
    copy[4] ^= 0x20;
    assert_int_equal(fn(copy, len, scratch), MK_ERR_BAD_MAGIC);
    memcpy(copy, unit, len);
    copy[7] = MK_PROTOCOL_VERSION + 1;
    assert_int_equal(fn(copy, len, scratch), MK_ERR_BAD_VERSION);
    free(copy);
}

static void test_msg_client_hello(void **st)
{
    uint8_t out[MK_UNIT_MAX], kem[256], ticket[112], early[20];
    mk_ch ch, got;
    size_t len = 0;
    (void)st;

    for (size_t i = 0; i < sizeof kem; i++)
        kem[i] = (uint8_t)i;
    memset(ticket, 0x5A, sizeof ticket);
    memset(early, 0xEE, sizeof early);

    /* Full mode. */
    memset(&ch, 0, sizeof ch);
    ch.mode = MK_MODE_FULL;
    memset(ch.random, 0x11, sizeof ch.random);
    memset(ch.share, 0x22, sizeof ch.share);
    ch.time_ms = 0x0102030405060708ull;
    memcpy(ch.key_id, "KEYID-01", MK_KEY_ID_LEN);
    ch.kem = kem;
    ch.kem_len = sizeof kem;
    assert_int_equal(mk__ch_write(&ch, out, sizeof out, &len), MK_OK);
    assert_int_equal(len, 4 + 4 + 2 + 32 + 32 + 8 + 8 + 2 + 256);
    assert_int_equal(out[0], MK_UNIT_CLIENT_HELLO);
    assert_int_equal(mk_get_u16(out + 2), len - 4);
    assert_int_equal(mk__ch_parse(out, len, &got), MK_OK);
    assert_int_equal(got.mode, MK_MODE_FULL);
    assert_memory_equal(got.random, ch.random, 32);
    assert_memory_equal(got.share, ch.share, 32);
    assert_true(got.time_ms == ch.time_ms);
    assert_memory_equal(got.key_id, "KEYID-01", 8);
    assert_int_equal(got.kem_len, 256);
    assert_memory_equal(got.kem, kem, 256);
    assert_null(got.ticket);
    assert_null(got.binder);
    check_exact(out, len, p_ch, &got);
    /* Unknown mode and unknown flags. */
    out[8] = 2;
    assert_int_equal(mk__ch_parse(out, len, &got), MK_ERR_BAD_MESSAGE);
    out[8] = MK_MODE_FULL;
    out[9] = 0x02;
    assert_int_equal(mk__ch_parse(out, len, &got), MK_ERR_BAD_MESSAGE);

    /* An empty key transport is refused. */
    ch.kem_len = 0;
    assert_int_equal(mk__ch_write(&ch, out, sizeof out, &len), MK_OK);
    assert_int_equal(mk__ch_parse(out, len, &got), MK_ERR_BAD_MESSAGE);

    /* Resume mode with an early block: the binder is written as zeros. */
    memset(&ch, 0, sizeof ch);
    ch.mode = MK_MODE_RESUME;
    ch.flags = MK_CH_EARLY;
    ch.ticket = ticket;
    ch.ticket_len = sizeof ticket;
    ch.early = early;
    ch.early_len = sizeof early;
    assert_int_equal(mk__ch_write(&ch, out, sizeof out, &len), MK_OK);
    assert_int_equal(len, 4 + 4 + 2 + 32 + 32 + 8 + 2 + 112 + 2 + 20 + 32);
    for (size_t i = len - 32; i < len; i++)
        assert_int_equal(out[i], 0);
    assert_int_equal(mk__ch_parse(out, len, &got), MK_OK);
    assert_int_equal(got.mode, MK_MODE_RESUME);
    assert_int_equal(got.ticket_len, sizeof ticket);
    assert_int_equal(got.early_len, sizeof early);
    assert_ptr_equal(got.binder, out + len - 32);
    check_exact(out, len, p_ch, &got);

    /* A ticket of 0, or of more than 256 bytes, makes the hello malformed
     * (§4.1); 1 and 256 parse (whether the server can use it is §7). */
    {
        static const size_t lens[] = {0, 1, MK_TICKET_MAX, MK_TICKET_MAX + 1};
        uint8_t big[MK_TICKET_MAX + 1];
        memset(big, 0x5A, sizeof big);
        ch.ticket = big;
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            ch.ticket_len = lens[i];
            assert_int_equal(mk__ch_write(&ch, out, sizeof out, &len), MK_OK);
            assert_int_equal(mk__ch_parse(out, len, &got),
                             lens[i] == 0 || lens[i] > MK_TICKET_MAX
                                 ? MK_ERR_BAD_MESSAGE
                                 : MK_OK);
            assert_int_equal(mk_client_hello_resumes(out, len),
                             lens[i] >= 1 && lens[i] <= MK_TICKET_MAX);
        }
        ch.ticket = ticket;
    }

    /* The smallest hellos that parse (§3): a full one with a 1-byte key
     * transport is 89 bytes of body, which framing allows; with none it
     * would be 88, which framing refuses from the header alone. A
     * resuming one with a 1-byte ticket is 113. */
    {
        static const struct {
            uint8_t mode;
            size_t field_len, body;
            int frames;
        } small[] = {
            {MK_MODE_FULL, 1, 89, 1},
            {MK_MODE_FULL, 0, 88, 0},
            {MK_MODE_RESUME, 1, 113, 1},
        };
        for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
            size_t ul = 0;
            memset(&ch, 0, sizeof ch);
            ch.mode = small[i].mode;
            ch.kem = kem;
            ch.ticket = ticket;
            if (ch.mode == MK_MODE_FULL)
                ch.kem_len = small[i].field_len;
            else
                ch.ticket_len = small[i].field_len;
            assert_int_equal(mk__ch_write(&ch, out, sizeof out, &len), MK_OK);
            assert_int_equal(len, 4 + small[i].body);
            assert_int_equal(mk_frame_check(out, len, &ul),
                             small[i].frames ? MK_OK : MK_ERR_BAD_LENGTH);
            if (small[i].frames)
                assert_int_equal(mk__ch_parse(out, len, &got), MK_OK);
        }
    }

    /* The writer refuses a small buffer without writing past it. */
    {
        uint8_t small[64];
        memset(small, GUARD, sizeof small);
        ch.ticket_len = sizeof ticket;
        assert_int_equal(mk__ch_write(&ch, small, 60, &len), MK_ERR_BUFFER);
        assert_int_equal(len, 0);
        for (size_t i = 60; i < sizeof small; i++)
            assert_int_equal(small[i], GUARD);
    }
}

static void test_msg_server_hello(void **st)
{
    uint8_t out[1100], extras[16 + 128];
    mk_sh sh, got;
    size_t len = 0;
    (void)st;

    memset(extras, 0x33, sizeof extras);
    memset(&sh, 0, sizeof sh);
    sh.mode = MK_MODE_RESUME;
    memset(sh.random, 0x44, 32);
    memset(sh.share, 0x55, 32);
    sh.extras = extras;
    sh.extras_len = sizeof extras;
    assert_int_equal(mk__sh_write(&sh, out, sizeof out, &len), MK_OK);
    assert_int_equal(len, 4 + 4 + 2 + 32 + 32 + 2 + sizeof extras + 32);
    assert_int_equal(mk__sh_parse(out, len, &got), MK_OK);
    assert_int_equal(got.mode, MK_MODE_RESUME);
    assert_int_equal(got.extras_len, sizeof extras);
    assert_ptr_equal(got.finished, out + len - 32);
    check_exact(out, len, p_sh, &got);

    /* Extras: IV plus whole blocks only. */
    for (size_t n = 0; n <= 48; n++) {
        sh.extras_len = n;
        assert_int_equal(mk__sh_write(&sh, out, sizeof out, &len), MK_OK);
        assert_int_equal(mk__sh_parse(out, len, &got),
                         (n >= 32 && n % 16 == 0) ? MK_OK : MK_ERR_BAD_MESSAGE);
    }
}

static void test_msg_extras(void **st)
{
    uint8_t out[400], ticket[MK_TICKET_MAX + 1];
    mk_extras x, got;
    size_t len = 0;
    (void)st;

    memset(ticket, 0x66, sizeof ticket);
    memset(&x, 0, sizeof x);
    x.max_message = MK_MESSAGE_MAX_DEFAULT;
    x.max_inflight = MK_INFLIGHT_DEFAULT;
    x.ticket_lifetime = MK_TICKET_LIFETIME_DEFAULT;
    x.ticket = ticket;
    x.ticket_len = 112;
    assert_int_equal(mk__extras_write(&x, out, sizeof out, &len), MK_OK);
    assert_int_equal(mk__extras_parse(out, len, &got), MK_OK);
    assert_int_equal(got.max_message, x.max_message);
    assert_int_equal(got.max_inflight, x.max_inflight);
    assert_int_equal(got.ticket_lifetime, x.ticket_lifetime);
    assert_int_equal(got.ticket_len, 112);
    for (size_t n = 0; n < len; n++)
        assert_int_equal(mk__extras_parse(out, n, &got), MK_ERR_BAD_MESSAGE);
    out[len] = 0;
    assert_int_equal(mk__extras_parse(out, len + 1, &got), MK_ERR_BAD_MESSAGE);

    /* Out-of-range limits; and a ticket comes with a lifetime and a
     * lifetime with a ticket (§4.2.1): either alone is malformed, neither
     * is resumption turned off. */
    {
        struct {
            uint32_t msg, inflight, life;
            size_t ticket_len;
            int ok;
        } cases[] = {
            {0, 1, 1, 112, 0},
            {1, 1, 1, 112, 1},
            {MK_MESSAGE_MAX_LIMIT, MK_INFLIGHT_LIMIT, MK_TICKET_LIFETIME_LIMIT,
             112, 1},
            {MK_MESSAGE_MAX_LIMIT + 1, 1, 1, 112, 0},
            {1, 0, 1, 112, 0},
            {1, MK_INFLIGHT_LIMIT + 1, 1, 112, 0},
            {1, 1, MK_TICKET_LIFETIME_LIMIT + 1, 112, 0},
            {1, 1, 0, 0, 1},
            {1, 1, 1, 1, 1},
            {1, 1, 0, 112, 0},
            {1, 1, MK_TICKET_LIFETIME_DEFAULT, 0, 0},
            {1, 1, MK_TICKET_LIFETIME_LIMIT, MK_TICKET_MAX, 1},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            x.max_message = cases[i].msg;
            x.max_inflight = cases[i].inflight;
            x.ticket_lifetime = cases[i].life;
            x.ticket_len = cases[i].ticket_len;
            assert_int_equal(mk__extras_write(&x, out, sizeof out, &len),
                             MK_OK);
            assert_int_equal(mk__extras_parse(out, len, &got),
                             cases[i].ok ? MK_OK : MK_ERR_BAD_MESSAGE);
        }
        /* The largest extras (the last case): 14 bytes and a 256-byte
         * ticket, which encrypt to 272 and make the largest SERVER_HELLO
         * (§3). */
        assert_int_equal(len, 14 + MK_TICKET_MAX);
    }
    /* A ticket longer than any the protocol issues. */
    x.ticket_lifetime = 1;
    x.ticket_len = MK_TICKET_MAX + 1;
    assert_int_equal(mk__extras_write(&x, out, sizeof out, &len), MK_OK);
    assert_int_equal(mk__extras_parse(out, len, &got), MK_ERR_BAD_MESSAGE);
    x.ticket_lifetime = 0;
    /* The reserved u16 must be zero. */
    x.ticket_len = 0;
    assert_int_equal(mk__extras_write(&x, out, sizeof out, &len), MK_OK);
    out[7] = 1;
    assert_int_equal(mk__extras_parse(out, len, &got), MK_ERR_BAD_MESSAGE);
}

/* mk_utf8_valid_len: RFC 3629's well-formed sequences, at the edges of
 * each range, and what is not UTF-8 (overlong forms, surrogates, beyond
 * U+10FFFF, stray or missing continuation bytes). */
static void test_utf8(void **st)
{
    static const struct {
        const char *s;
        size_t valid; /* length of the well-formed prefix */
    } cases[] = {
        {"", 0},
        {"plain ascii\x7F", 12},
        {"\xC2\x80\xDF\xBF", 4},                 /* U+0080, U+07FF */
        {"\xE0\xA0\x80\xEF\xBF\xBF", 6},         /* U+0800, U+FFFF */
        {"\xED\x9F\xBF\xEE\x80\x80", 6},         /* around the surrogates */
        {"\xF0\x90\x80\x80\xF4\x8F\xBF\xBF", 8}, /* U+10000, U+10FFFF */
        {"a\xC0\x80", 1},                        /* overlong NUL */
        {"a\xC1\xBF", 1},                        /* overlong */
        {"a\xE0\x9F\xBF", 1},                    /* overlong */
        {"a\xED\xA0\x80", 1},                    /* surrogate U+D800 */
        {"a\xED\xBF\xBF", 1},                    /* surrogate U+DFFF */
        {"a\xF0\x8F\xBF\xBF", 1},                /* overlong */
        {"a\xF4\x90\x80\x80", 1},                /* U+110000 */
        {"a\xF5\x80\x80\x80", 1},
        {"a\xFF", 1},
        {"a\x80", 1},          /* a lone continuation byte */
        {"ab\xE2\x82", 2},     /* cut short */
        {"ab\xE2\x82\x41", 2}, /* a continuation missing */
    };
    (void)st;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(
            mk_utf8_valid_len((const uint8_t *)cases[i].s, strlen(cases[i].s)),
            cases[i].valid);
    /* NUL is a character like any other. */
    assert_int_equal(mk_utf8_valid_len((const uint8_t *)"a\0b", 3), 3);
    assert_int_equal(mk_utf8_valid_len(NULL, 0), 0);
}

static void test_msg_retry(void **st)
{
    uint8_t out[200];
    mk_retry rt, got;
    size_t len = 0;
    (void)st;

    memset(&rt, 0, sizeof rt);
    rt.reason = MK_RETRY_KEY_ID;
    rt.nkeys = 3;
    for (size_t i = 0; i < 3; i++)
        memset(rt.key_ids[i], (int)(0x70 + i), MK_KEY_ID_LEN);
    assert_int_equal(mk__retry_write(&rt, out, sizeof out, &len), MK_OK);
    assert_int_equal(len, 4 + 4 + 2 + 3 * 8);
    assert_int_equal(mk__retry_parse(out, len, &got), MK_OK);
    assert_int_equal(got.reason, MK_RETRY_KEY_ID);
    assert_int_equal(got.nkeys, 3);
    assert_memory_equal(got.key_ids[2], rt.key_ids[2], MK_KEY_ID_LEN);
    check_exact(out, len, p_rt, &got);
    /* Unknown reasons. */
    for (unsigned reason = 0; reason < 256; reason++) {
        out[8] = (uint8_t)reason;
        assert_int_equal(
            mk__retry_parse(out, len, &got),
            (reason == MK_RETRY_TICKET || reason == MK_RETRY_KEY_ID)
                ? MK_OK
                : MK_ERR_BAD_MESSAGE);
    }
    /* No keys is well-formed (the client then finds no pin). */
    rt.nkeys = 0;
    assert_int_equal(mk__retry_write(&rt, out, sizeof out, &len), MK_OK);
    assert_int_equal(mk__retry_parse(out, len, &got), MK_OK);
    /* More keys than any server may hold. */
    rt.nkeys = MK_MAX_KEYS + 1;
    assert_int_equal(mk__retry_write(&rt, out, sizeof out, &len), MK_ERR_USAGE);
    rt.nkeys = MK_MAX_KEYS;
    assert_int_equal(mk__retry_write(&rt, out, sizeof out, &len), MK_OK);
    assert_int_equal(mk__retry_parse(out, len, &got), MK_OK);
    out[9] = MK_MAX_KEYS + 1;
    assert_int_equal(mk__retry_parse(out, len, &got), MK_ERR_BAD_MESSAGE);
}

static void test_msg_alert(void **st)
{
    uint8_t out[16];
    mk_alert_msg a;
    size_t len = 0;
    (void)st;

    assert_int_equal(
        mk_write_alert(MK_ALERT_RETRY_LATER, 1500, out, sizeof out, &len),
        MK_OK);
    assert_int_equal(len, 14);
    assert_int_equal(mk__alert_parse(out, len, &a), MK_OK);
    assert_int_equal(a.code, MK_ALERT_RETRY_LATER);
    assert_int_equal(a.arg, 1500);
    check_exact(out, len, p_al, &a);
    out[9] = 1; /* reserved byte */
    assert_int_equal(mk__alert_parse(out, len, &a), MK_ERR_BAD_MESSAGE);
    /* Code 0 and codes above a byte are the caller's mistake. */
    assert_int_equal(mk_write_alert(0, 0, out, sizeof out, &len), MK_ERR_USAGE);
    assert_int_equal(mk_write_alert(256, 0, out, sizeof out, &len),
                     MK_ERR_USAGE);
    assert_int_equal(mk_write_alert(1, 0, out, 13, &len), MK_ERR_BUFFER);
    assert_int_equal(len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rd_big_endian),
        cmocka_unit_test(test_rd_extremes),
        cmocka_unit_test(test_rd_sticky),
        cmocka_unit_test(test_rd_bytes_and_copy),
        cmocka_unit_test(test_rd_done),
        cmocka_unit_test(test_rd_block16),
        cmocka_unit_test(test_wr_big_endian),
        cmocka_unit_test(test_wr_sticky),
        cmocka_unit_test(test_wr_backpatch),
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_frame_empty_and_partial),
        cmocka_unit_test(test_frame_types),
        cmocka_unit_test(test_frame_whole_unit),
        cmocka_unit_test(test_frame_max_unit),
        cmocka_unit_test(test_msg_client_hello),
        cmocka_unit_test(test_msg_server_hello),
        cmocka_unit_test(test_msg_extras),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_msg_retry),
        cmocka_unit_test(test_msg_alert),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
