/*
 * test_yugi.c -- Yugi's parts without a network: the framer (whole, byte
 * at a time, odd chunks, bad headers, a callback that stops it, buffers
 * released), the per-address token bucket and its sweep, and the error
 * records that answer a backend's statuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include "internal.h"

/* --- framing --------------------------------------------------------- */

typedef struct units {
    size_t n;
    size_t total;
    uint8_t last_type;
    size_t stop_after; /* 0: never stop */
} units;

static int count_unit(void *arg, const uint8_t *u, size_t len)
{
    units *us = arg;
    size_t ulen = 0;
    assert_int_equal(mk_frame_check(u, len, &ulen), MK_OK);
    assert_int_equal(ulen, len);
    us->n++;
    us->total += len;
    us->last_type = u[0];
    return us->n == us->stop_after ? MKD_STOPPED : MKD_OK;
}

static size_t make_alert(uint8_t *out)
{
    size_t n = 0;
    assert_int_equal(mk_write_alert(MK_ALERT_RETRY_LATER, 5, out, 16, &n),
                     MK_OK);
    return n;
}

static void test_framer(void **st)
{
    uint8_t stream[4096];
    size_t n = 0, a;
    yugi_framer f;
    units us;
    int bad = 0;
    (void)st;

    for (int i = 0; i < 50; i++)
        n += make_alert(stream + n);
    a = n / 50;
    /* All at once, byte at a time, and in odd chunks: same units. */
    for (size_t chunk = 0; chunk < 8; chunk++) {
        size_t step = chunk == 0 ? n : chunk == 1 ? 1 : chunk * 3 - 1;
        memset(&f, 0, sizeof f);
        memset(&us, 0, sizeof us);
        for (size_t off = 0; off < n; off += step) {
            size_t k = n - off < step ? n - off : step;
            assert_int_equal(
                yugi__framer_feed(&f, stream + off, k, count_unit, &us, &bad),
                MKD_OK);
        }
        assert_int_equal(us.n, 50);
        assert_int_equal(us.total, n);
        /* Nothing left buffered between units. */
        assert_null(f.buf);
        assert_false(yugi__framer_partial(&f));
        yugi__framer_free(&f);
    }
    /* A partial unit keeps only what arrived. */
    memset(&f, 0, sizeof f);
    memset(&us, 0, sizeof us);
    {
        uint8_t h[6] = {
            MK_UNIT_CLIENT_HELLO,      0,   (uint8_t)(MK_UNIT_MAX_BODY >> 8),
            (uint8_t)MK_UNIT_MAX_BODY, 'M', 'G'};
        assert_int_equal(
            yugi__framer_feed(&f, h, sizeof h, count_unit, &us, &bad), MKD_OK);
        assert_true(yugi__framer_partial(&f));
        assert_true(f.cap <= 64);
        assert_int_equal(f.need, MK_UNIT_MAX);
        yugi__framer_free(&f);
    }
    /* Bad headers stop at once. */
    {
        static const uint8_t bad1[] = {0x47, 0x45, 0x54, 0x20};
        static const uint8_t bad2[] = {MK_UNIT_DATA, 0, 0xFF, 0xFF};
        static const uint8_t bad3[] = {MK_UNIT_ALERT, 0, 0, 9};
        memset(&f, 0, sizeof f);
        assert_int_equal(yugi__framer_feed(&f, bad1, 1, count_unit, &us, &bad),
                         MKD_ERR_BAD_UNIT);
        assert_int_equal(bad, MK_ERR_BAD_UNIT_TYPE);
        yugi__framer_free(&f);
        assert_int_equal(yugi__framer_feed(&f, bad2, 3, count_unit, &us, &bad),
                         MKD_OK);
        assert_int_equal(
            yugi__framer_feed(&f, bad2 + 3, 1, count_unit, &us, &bad),
            MKD_ERR_BAD_UNIT);
        assert_int_equal(bad, MK_ERR_BAD_LENGTH);
        yugi__framer_free(&f);
        assert_int_equal(yugi__framer_feed(&f, bad3, 4, count_unit, &us, &bad),
                         MKD_ERR_BAD_UNIT);
        assert_int_equal(bad, MK_ERR_BAD_LENGTH);
        yugi__framer_free(&f);
    }
    /* A callback that stops the feed: its code comes back, the rest of
     * the input is not framed. */
    {
        memset(&f, 0, sizeof f);
        memset(&us, 0, sizeof us);
        us.stop_after = 2;
        assert_int_equal(
            yugi__framer_feed(&f, stream, n, count_unit, &us, &bad),
            MKD_STOPPED);
        assert_int_equal(us.n, 2);
        yugi__framer_free(&f);
    }
    (void)a;
}

/* --- limits ------------------------------------------------------------ */

static void test_token_bucket(void **st)
{
    yugi_addrs t;
    struct sockaddr_in a1, a2;
    struct sockaddr_in6 b1, b2;
    yugi_addr *x, *y, *z, *w;
    (void)st;

    assert_int_equal(yugi__addrs_init(&t), MKD_OK);
    yugi__addrs_set(&t, YUGI_BUCKET_FULL, 2, 3);
    yugi__addrs_set(&t, YUGI_BUCKET_RESUME, 4, 2);
    memset(&a1, 0, sizeof a1);
    a1.sin_family = AF_INET;
    a1.sin_addr.s_addr = htonl(0x7f000001);
    a2 = a1;
    a2.sin_addr.s_addr = htonl(0x7f000002);
    x = yugi__addrs_get(&t, (struct sockaddr *)&a1, 1000);
    y = yugi__addrs_get(&t, (struct sockaddr *)&a2, 1000);
    assert_ptr_not_equal(x, y);
    assert_ptr_equal(yugi__addrs_get(&t, (struct sockaddr *)&a1, 1000), x);
    assert_int_equal(x->refs, 2);
    /* Burst of 3, then wait for the refill at 2/s. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(yugi__addr_take(&t, x, YUGI_BUCKET_FULL, 1000), 0);
    assert_int_equal(yugi__addr_take(&t, x, YUGI_BUCKET_FULL, 1000), 500);
    assert_int_equal(yugi__addr_take(&t, x, YUGI_BUCKET_FULL, 1250), 250);
    assert_int_equal(yugi__addr_take(&t, x, YUGI_BUCKET_FULL, 1500), 0);
    /* The resumption bucket is another: burst of 2, refilled at 4/s. */
    for (int i = 0; i < 2; i++)
        assert_int_equal(yugi__addr_take(&t, x, YUGI_BUCKET_RESUME, 1500), 0);
    assert_int_equal(yugi__addr_take(&t, x, YUGI_BUCKET_RESUME, 1500), 250);
    /* The other address is untouched. */
    assert_int_equal(yugi__addr_take(&t, y, YUGI_BUCKET_FULL, 1500), 0);
    /* IPv6: one bucket per /64. */
    memset(&b1, 0, sizeof b1);
    b1.sin6_family = AF_INET6;
    b1.sin6_addr.s6_addr[0] = 0x20;
    b1.sin6_addr.s6_addr[15] = 1;
    b2 = b1;
    b2.sin6_addr.s6_addr[15] = 2;
    z = yugi__addrs_get(&t, (struct sockaddr *)&b1, 1000);
    w = yugi__addrs_get(&t, (struct sockaddr *)&b2, 1000);
    assert_ptr_equal(z, w);
    assert_int_equal(t.count, 3);
    /* Sweep drops only unreferenced, refilled entries. */
    yugi__addrs_put(&t, x);
    yugi__addrs_put(&t, x);
    yugi__addrs_put(&t, y);
    yugi__addrs_sweep(&t, 1600);
    assert_int_equal(t.count, 3); /* both still refilling */
    yugi__addrs_sweep(&t, 10000);
    assert_int_equal(t.count, 1); /* the IPv6 entry is still referenced */
    yugi__addrs_free(&t);
}

/* --- what a backend's status becomes ------------------------------------- */

/* A request the backend refuses at submit() gets an error text that says
 * what its status says, not "overloaded" for everything, and each status
 * maps to the protocol's error code. */
static void test_refusals(void **st)
{
    (void)st;
    assert_string_equal(yugi__refusal_text(MKD_BACKEND_OVERLOADED),
                        "server overloaded");
    assert_string_equal(yugi__refusal_text(MKD_BACKEND_TOO_LARGE),
                        "request too large");
    assert_string_equal(yugi__refusal_text(MKD_BACKEND_SHUTDOWN),
                        "server shutting down");
    assert_string_equal(yugi__refusal_text(MKD_BACKEND_INTERNAL),
                        "internal error");
    assert_string_equal(yugi__refusal_text((mkd_backend_status)99), "unknown");
    assert_int_equal(yugi__ecode(MKD_BACKEND_APPLICATION),
                     MK_ECODE_APPLICATION);
    assert_int_equal(yugi__ecode(MKD_BACKEND_TIMEOUT), MK_ECODE_TIMEOUT);
    assert_int_equal(yugi__ecode(MKD_BACKEND_OVERLOADED), MK_ECODE_OVERLOADED);
    assert_int_equal(yugi__ecode(MKD_BACKEND_TOO_LARGE), MK_ECODE_TOO_LARGE);
    assert_int_equal(yugi__ecode(MKD_BACKEND_SHUTDOWN), MK_ECODE_SHUTDOWN);
    assert_int_equal(yugi__ecode(MKD_BACKEND_INTERNAL), MK_ECODE_INTERNAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framer),
        cmocka_unit_test(test_token_bucket),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests_name("yugi", tests, NULL, NULL);
}
