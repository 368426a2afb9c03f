/*
 * test_proxy.c -- the PROXY protocol header parser and the trusted_proxies
 * list: both versions, every address family, every prefix of a valid
 * header (MORE), the header alone and followed by bytes (DONE, its own
 * length), TLVs checked and skipped, and malformed or foreign bytes
 * refused as early as they can be.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "mkd_proxy.h"

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header into out: command byte, family byte, then body[0..n). */
static size_t v2(uint8_t *out, uint8_t cmd, uint8_t fam, const uint8_t *body,
                 size_t n)
{
    memcpy(out, SIG, 12);
    out[12] = cmd;
    out[13] = fam;
    out[14] = (uint8_t)(n >> 8);
    out[15] = (uint8_t)n;
    memcpy(out + 16, body, n);
    return 16 + n;
}

/* Every prefix is MORE; the whole is DONE with its length, also with
 * bytes after it. */
static void check_boundaries(const uint8_t *h, size_t len,
                             mkd_proxy_header *out)
{
    uint8_t buf[1024];

    assert_true(len + 8 <= sizeof buf);
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(mkd_proxy_parse(h, i, out), MKD_PROXY_MORE);
        assert_int_equal(out->version, 0);
    }
    memcpy(buf, h, len);
    memcpy(buf + len, "\x01\x00\x00\x10rest", 8);
    assert_int_equal(mkd_proxy_parse(buf, len + 8, out), MKD_PROXY_DONE);
    assert_int_equal(out->len, len);
    assert_int_equal(mkd_proxy_parse(h, len, out), MKD_PROXY_DONE);
    assert_int_equal(out->len, len);
}

static const uint8_t INET_BODY[12] = {
    192, 0, 2, 7, 127, 0, 0, 1, 0xC3, 0x50, 0x1C, 0xF2}; /* 50000, 7410 */

static void test_v2_inet(void **st)
{
    uint8_t h[64];
    mkd_proxy_header out;
    size_t n = v2(h, 0x21, 0x11, INET_BODY, sizeof INET_BODY);
    (void)st;

    check_boundaries(h, n, &out);
    assert_int_equal(out.version, 2);
    assert_int_equal(out.family, MKD_PROXY_INET);
    assert_memory_equal(out.src, INET_BODY, 4);
    assert_memory_equal(out.dst, INET_BODY + 4, 4);
    assert_int_equal(out.src_port, 50000);
    assert_int_equal(out.dst_port, 7410);
    /* One byte short of the addresses, with the length saying so. */
    n = v2(h, 0x21, 0x11, INET_BODY, 11);
    assert_int_equal(mkd_proxy_parse(h, n, &out), MKD_PROXY_BAD);
    assert_int_equal(out.version, 0);
}

static void test_v2_inet6_tlvs(void **st)
{
    uint8_t body[36 + 32], h[128];
    mkd_proxy_header out;
    size_t n;
    (void)st;

    for (unsigned i = 0; i < 32; i++)
        body[i] = (uint8_t)(i + 1);
    body[32] = 0x12, body[33] = 0x34, body[34] = 0x00, body[35] = 0x50;
    /* ALPN "h2", a NOOP of 0 bytes, a NOOP of the rest. */
    memcpy(body + 36, "\x01\x00\x02h2\x04\x00\x00\x04\x00\x18", 11);
    memset(body + 47, 0, 21);
    body[46] = 0x15; /* the last NOOP holds the 21 bytes left */
    n = v2(h, 0x21, 0x21, body, sizeof body);
    check_boundaries(h, n, &out);
    assert_int_equal(out.family, MKD_PROXY_INET6);
    assert_memory_equal(out.src, body, 16);
    assert_memory_equal(out.dst, body + 16, 16);
    assert_int_equal(out.src_port, 0x1234);
    assert_int_equal(out.dst_port, 80);
    /* A TLV longer than what is left, or a partial TLV header: refused. */
    body[46] = 0x16;
    n = v2(h, 0x21, 0x21, body, sizeof body);
    assert_int_equal(mkd_proxy_parse(h, n, &out), MKD_PROXY_BAD);
    n = v2(h, 0x21, 0x21, body, 36 + 2);
    assert_int_equal(mkd_proxy_parse(h, n, &out), MKD_PROXY_BAD);
    /* Short of the IPv6 block. */
    n = v2(h, 0x21, 0x21, body, 35);
    assert_int_equal(mkd_proxy_parse(h, n, &out), MKD_PROXY_BAD);
}

static void test_v2_unix_local_unspec(void **st)
{
    uint8_t body[216], h[300];
    mkd_proxy_header out;
    size_t n;
    (void)st;

    memset(body, 0, sizeof body);
    memcpy(body, "/run/a.sock", 11);
    n = v2(h, 0x21, 0x31, body, sizeof body);
    check_boundaries(h, n, &out);
    assert_int_equal(out.family, MKD_PROXY_UNIX);
    n = v2(h, 0x21, 0x31, body, 215);
    assert_int_equal(mkd_proxy_parse(h, n, &out), MKD_PROXY_BAD);
    /* LOCAL: the block (any family) is discarded. */
    n = v2(h, 0x20, 0x00, body, 0);
    check_boundaries(h, n, &out);
    assert_int_equal(out.family, MKD_PROXY_LOCAL);
    n = v2(h, 0x20, 0x11, INET_BODY, sizeof INET_BODY);
    check_boundaries(h, n, &out);
    assert_int_equal(out.family, MKD_PROXY_LOCAL);
    /* PROXY with UNSPEC: no address either. */
    n = v2(h, 0x21, 0x00, body, 5);
    check_boundaries(h, n, &out);
    assert_int_equal(out.family, MKD_PROXY_LOCAL);
}

static void test_v2_refused(void **st)
{
    uint8_t h[64];
    mkd_proxy_header out;
    size_t n;
    (void)st;

    /* Version 1 in the v2 byte, command 2, datagrams, unknown family:
     * refused as soon as the byte is there. */
    n = v2(h, 0x11, 0x11, INET_BODY, sizeof INET_BODY);
    assert_int_equal(mkd_proxy_parse(h, 13, &out), MKD_PROXY_BAD);
    n = v2(h, 0x22, 0x11, INET_BODY, sizeof INET_BODY);
    assert_int_equal(mkd_proxy_parse(h, 13, &out), MKD_PROXY_BAD);
    n = v2(h, 0x21, 0x12, INET_BODY, sizeof INET_BODY);
    assert_int_equal(mkd_proxy_parse(h, n, &out), MKD_PROXY_BAD);
    n = v2(h, 0x21, 0x41, INET_BODY, sizeof INET_BODY);
    assert_int_equal(mkd_proxy_parse(h, n, &out), MKD_PROXY_BAD);
    /* A wrong signature byte anywhere: refused at that byte. */
    for (size_t i = 0; i < 12; i++) {
        n = v2(h, 0x21, 0x11, INET_BODY, sizeof INET_BODY);
        h[i] ^= 0x40;
        assert_int_equal(mkd_proxy_parse(h, i + 1, &out), MKD_PROXY_BAD);
        assert_int_equal(mkd_proxy_parse(h, n, &out), MKD_PROXY_BAD);
    }
    (void)n;
}

static void test_v1(void **st)
{
    static const char *l4 = "PROXY TCP4 192.0.2.7 127.0.0.1 50000 7410\r\n";
    static const char *l6 = "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n";
    static const char *lu = "PROXY UNKNOWN\r\n";
    static const char *lu2 = "PROXY UNKNOWN ffff::1 ::1 1 2\r\n";
    static const char *max = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
                             "ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                             "65535 65535\r\n";
    static const char *max6 = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
                              "ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                              "65535 65535\r\n";
    mkd_proxy_header out;
    (void)st;

    check_boundaries((const uint8_t *)l4, strlen(l4), &out);
    assert_int_equal(out.version, 1);
    assert_int_equal(out.family, MKD_PROXY_INET);
    assert_memory_equal(out.src, "\xc0\x00\x02\x07", 4);
    assert_int_equal(out.src_port, 50000);
    assert_int_equal(out.dst_port, 7410);
    check_boundaries((const uint8_t *)l6, strlen(l6), &out);
    assert_int_equal(out.family, MKD_PROXY_INET6);
    assert_int_equal(out.src[0], 0x20);
    assert_int_equal(out.src_port, 0);
    assert_int_equal(out.dst_port, 65535);
    check_boundaries((const uint8_t *)lu, strlen(lu), &out);
    assert_int_equal(out.family, MKD_PROXY_LOCAL);
    check_boundaries((const uint8_t *)lu2, strlen(lu2), &out);
    assert_int_equal(out.family, MKD_PROXY_LOCAL);
    /* The longest line the specification allows is 107 bytes. */
    assert_int_equal(strlen(max), MKD_PROXY_V1_MAX);
    check_boundaries((const uint8_t *)max, strlen(max), &out);
    assert_int_equal(out.family, MKD_PROXY_LOCAL);
    /* The longest TCP6 line: every address bit set. */
    check_boundaries((const uint8_t *)max6, strlen(max6), &out);
    assert_int_equal(out.family, MKD_PROXY_INET6);
    assert_int_equal(out.dst[15], 0xff);
}

static void test_v1_refused(void **st)
{
    static const char *bad[] = {
        "PROXY TCP4 192.0.2.7 127.0.0.1 50000 7410\n",    /* no CR */
        "PROXY TCP4 192.0.2.7 127.0.0.1 50000 7410\rX",   /* CR, not LF */
        "PROXY TCP4 192.0.2.7  127.0.0.1 50000 7410\r\n", /* two blanks */
        "PROXY TCP4 192.0.2.7 127.0.0.1 50000 7410 \r\n", /* trailing */
        "PROXY TCP4 192.0.2.7 127.0.0.1 50000\r\n",       /* a port short */
        "PROXY TCP4 192.0.2.7 127.0.0.1 1 2 3\r\n",       /* a field more */
        "PROXY TCP4 ::1 127.0.0.1 50000 7410\r\n",        /* v6 under TCP4 */
        "PROXY TCP6 192.0.2.7 ::1 50000 7410\r\n",        /* v4 under TCP6 */
        "PROXY TCP4 192.0.2.07 127.0.0.1 50000 7410\r\n",
        "PROXY TCP4 192.0.2.7 127.0.0.1 65536 7410\r\n",
        "PROXY TCP4 192.0.2.7 127.0.0.1 050 7410\r\n", /* leading zero */
        "PROXY TCP4 192.0.2.7 127.0.0.1 -1 7410\r\n",
        "PROXY UDP4 192.0.2.7 127.0.0.1 1 2\r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY \r\n",
        "PROXY TCP4 192.0.2.7 127.0.0.1 1\t2\r\n",
        "proxy TCP4 192.0.2.7 127.0.0.1 1 2\r\n",
    };
    char longl[200];
    mkd_proxy_header out;
    (void)st;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = mkd_proxy_parse((const uint8_t *)bad[i], strlen(bad[i]), &out);
        if (r != MKD_PROXY_BAD)
            fail_msg("accepted: %s", bad[i]);
    }
    /* No CRLF within 107 bytes: refused at 107, more wanted before. */
    memset(longl, 'A', sizeof longl);
    memcpy(longl, "PROXY UNKNOWN ", 14);
    assert_int_equal(mkd_proxy_parse((uint8_t *)longl, 106, &out),
                     MKD_PROXY_MORE);
    assert_int_equal(mkd_proxy_parse((uint8_t *)longl, 107, &out),
                     MKD_PROXY_BAD);
    /* 106 bytes then CRLF is 108: too long. */
    memcpy(longl + 106, "\r\n", 2);
    assert_int_equal(mkd_proxy_parse((uint8_t *)longl, 108, &out),
                     MKD_PROXY_BAD);
    memcpy(longl + 105, "\r\n", 2);
    assert_int_equal(mkd_proxy_parse((uint8_t *)longl, 107, &out),
                     MKD_PROXY_DONE);
    assert_int_equal(out.len, 107);
}

static void test_foreign_and_signature(void **st)
{
    static const uint8_t hello[] = {0x01, 0x00, 0x00, 0x20};
    mkd_proxy_header out;
    (void)st;

    /* A Megaki hello, an HTTP request: BAD at the first byte. */
    assert_int_equal(mkd_proxy_parse(hello, 1, &out), MKD_PROXY_BAD);
    assert_int_equal(mkd_proxy_parse((const uint8_t *)"GET / ", 6, &out),
                     MKD_PROXY_BAD);
    assert_int_equal(mkd_proxy_parse((const uint8_t *)"PROXZ", 5, &out),
                     MKD_PROXY_BAD);
    assert_int_equal(mkd_proxy_parse(hello, 0, &out), MKD_PROXY_MORE);
    assert_false(mkd_proxy_signature(hello, sizeof hello));
    assert_false(mkd_proxy_signature(hello, 0));
    assert_true(mkd_proxy_signature((const uint8_t *)"PRO", 3));
    assert_true(mkd_proxy_signature((const uint8_t *)"PROXY TCP4", 10));
    assert_true(mkd_proxy_signature(SIG, 1));
    assert_true(mkd_proxy_signature(SIG, 12));
    assert_false(mkd_proxy_signature((const uint8_t *)"PROXX", 5));
}

static void test_cidrs(void **st)
{
    mkd_proxy_cidrs l;
    char err[128];
    uint8_t a4[4] = {10, 1, 2, 3}, b4[4] = {10, 2, 0, 1},
            lo[4] = {127, 0, 0, 1}, lo2[4] = {127, 0, 0, 2};
    uint8_t m6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
    uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                      0,    0,    0,    0,    0, 0, 0, 9};
    (void)st;

    assert_int_equal(mkd_proxy_cidrs_parse("", &l, err, sizeof err), 0);
    assert_int_equal(l.n, 0);
    assert_false(mkd_proxy_cidrs_match(&l, MKD_PROXY_INET, lo));
    assert_int_equal(mkd_proxy_cidrs_parse(" 10.1.0.0/16, 127.0.0.1 "
                                           "2001:db8::/32",
                                           &l, err, sizeof err),
                     0);
    assert_int_equal(l.n, 3);
    assert_true(mkd_proxy_cidrs_match(&l, MKD_PROXY_INET, a4));
    assert_false(mkd_proxy_cidrs_match(&l, MKD_PROXY_INET, b4));
    assert_true(mkd_proxy_cidrs_match(&l, MKD_PROXY_INET, lo));
    assert_false(mkd_proxy_cidrs_match(&l, MKD_PROXY_INET, lo2));
    assert_true(mkd_proxy_cidrs_match(&l, MKD_PROXY_INET6, m6));
    assert_true(mkd_proxy_cidrs_match(&l, MKD_PROXY_INET6, v6));
    v6[3] = 0xb9;
    assert_false(mkd_proxy_cidrs_match(&l, MKD_PROXY_INET6, v6));
    assert_int_equal(mkd_proxy_cidrs_parse("0.0.0.0/0", &l, err, sizeof err),
                     0);
    assert_true(mkd_proxy_cidrs_match(&l, MKD_PROXY_INET, b4));
    assert_int_equal(mkd_proxy_cidrs_parse("10.1.2.3/33", &l, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "prefix"));
    assert_int_equal(mkd_proxy_cidrs_parse("10.1.2.3/16", &l, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "bits set"));
    assert_int_equal(mkd_proxy_cidrs_parse("localhost", &l, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "not an IP address"));
    assert_int_equal(mkd_proxy_cidrs_parse("10.0.0.0/", &l, err, sizeof err),
                     -1);
    assert_int_equal(mkd_proxy_cidrs_parse("10.0.0.0/+8", &l, err, sizeof err),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_inet),
        cmocka_unit_test(test_v2_inet6_tlvs),
        cmocka_unit_test(test_v2_unix_local_unspec),
        cmocka_unit_test(test_v2_refused),
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_v1_refused),
        cmocka_unit_test(test_foreign_and_signature),
        cmocka_unit_test(test_cidrs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
