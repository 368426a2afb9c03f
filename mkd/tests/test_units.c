/*
 * test_units.c -- unit tests of MKD's parts without a network: the
 * configuration parser, the framer (byte at a time, bad headers, buffers
 * released), the per-address token bucket, the ticket-key file, Yami's
 * pool step driven against a real client session in memory, its inline
 * jobs (order, re-entrancy, budget, what stays on the pool), the error
 * texts of backend refusals, and the echo backend's free() answering what
 * it still holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/util.h"
#include "echo.h"
#include "yami/keys.h"
#include "yami/pool.h"
#include "yugi/framing.h"
#include "yugi/limits.h"
#include "yugi/yugi.h"

/* --- configuration --------------------------------------------------- */

static void test_config(void **st)
{
    mkd_config c;
    char err[256];
    static const char text[] =
        "# comment\n\n  port = 9000  \nlisten=::1, 127.0.0.1\n"
        "key_file = \" /a b.pem \"\nlog_level = debug\r\n";
    (void)st;

    mkd_config_defaults(&c);
    assert_int_equal(c.port, MKD_DEFAULT_PORT);
    assert_string_equal(c.listen, "127.0.0.1");
    assert_string_equal(c.backend, "php");
    assert_int_equal(c.max_inflight, 32);
    assert_int_equal(c.inline_crypto_max, 16384);
    assert_int_equal(mkd_config_set(&c, "inline_crypto_max", "0", err,
                                    sizeof err),
                     0);
    assert_int_equal(c.inline_crypto_max, 0);
    assert_int_equal(mkd_config_set(&c, "inline_crypto_max", "1048577", err,
                                    sizeof err),
                     -1);
    assert_int_equal(mkd_config_parse(&c, text, sizeof text - 1, "t", err,
                                      sizeof err),
                     0);
    assert_int_equal(c.port, 9000);
    assert_string_equal(c.listen, "::1, 127.0.0.1");
    assert_string_equal(c.key_file, " /a b.pem ");
    assert_true(c.key_file_set);
    assert_int_equal(c.log_level, 3);
    /* Errors name the line and never leave a half-set value. */
    assert_int_equal(
        mkd_config_parse(&c, "port = 70000\n", 13, "t", err, sizeof err), -1);
    assert_non_null(strstr(err, "t:1"));
    assert_int_equal(c.port, 9000);
    assert_int_equal(
        mkd_config_parse(&c, "\nprot = 1\n", 10, "t", err, sizeof err), -1);
    assert_non_null(strstr(err, "t:2"));
    assert_int_equal(mkd_config_parse(&c, "port\n", 5, "t", err, sizeof err),
                     -1);
    assert_int_equal(
        mkd_config_parse(&c, "port = -1\n", 10, "t", err, sizeof err), -1);
    assert_int_equal(
        mkd_config_parse(&c, "port = 1x\n", 10, "t", err, sizeof err), -1);
    assert_int_equal(mkd_config_parse(&c, "port = 99999999999999999999\n",
                                      28, "t", err, sizeof err),
                     -1);
    assert_int_equal(mkd_config_parse(&c, "log_level = loud\n", 17, "t", err,
                                      sizeof err),
                     -1);
    assert_int_equal(mkd_config_set(&c, "backend", "fastcgi", err,
                                    sizeof err),
                     0);
    assert_int_equal(mkd_config_finish(&c, err, sizeof err), -1);
    mkd_config_defaults(&c);
    assert_int_equal(mkd_config_set(&c, "workers", "4", err, sizeof err), 0);
    assert_int_equal(mkd_config_set(&c, "workers_max", "2", err, sizeof err),
                     0);
    assert_int_equal(mkd_config_finish(&c, err, sizeof err), -1);
    mkd_config_defaults(&c);
    assert_int_equal(mkd_config_set(&c, "data_dir", "/x", err, sizeof err),
                     0);
    assert_int_equal(mkd_config_finish(&c, err, sizeof err), 0);
    assert_string_equal(c.key_file, "/x/server.pem");
    assert_string_equal(c.ticket_key_file, "/x/ticket.keys");
    assert_string_equal(c.control_socket, "/x/mkd.sock");
    /* Every line of the dump parses back. */
    {
        char buf[8192];
        mkd_config d;
        size_t n = mkd_config_dump(&c, buf, sizeof buf);
        mkd_config_defaults(&d);
        assert_int_equal(mkd_config_parse(&d, buf, n, "dump", err,
                                          sizeof err),
                         0);
        assert_int_equal(d.port, c.port);
    }
}

/* --- framing --------------------------------------------------------- */

typedef struct units {
    size_t n;
    size_t total;
    uint8_t last_type;
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
    return 0;
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
            assert_int_equal(yugi_framer_feed(&f, stream + off, k,
                                              count_unit, &us),
                             0);
        }
        assert_int_equal(us.n, 50);
        assert_int_equal(us.total, n);
        /* Nothing left buffered between units. */
        assert_null(f.buf);
        assert_false(yugi_framer_partial(&f));
        yugi_framer_free(&f);
    }
    /* A partial unit keeps only what arrived. */
    memset(&f, 0, sizeof f);
    memset(&us, 0, sizeof us);
    {
        uint8_t h[6] = {MK_UNIT_CLIENT_HELLO, 0, (uint8_t)(MK_UNIT_MAX_BODY >> 8),
                        (uint8_t)MK_UNIT_MAX_BODY, 'M', 'G'};
        assert_int_equal(yugi_framer_feed(&f, h, sizeof h, count_unit, &us),
                         0);
        assert_true(yugi_framer_partial(&f));
        assert_true(f.cap <= 64);
        assert_int_equal(f.need, MK_UNIT_MAX);
        yugi_framer_free(&f);
    }
    /* Bad headers stop at once. */
    {
        static const uint8_t bad1[] = {0x47, 0x45, 0x54, 0x20};
        static const uint8_t bad2[] = {MK_UNIT_DATA, 0, 0xFF, 0xFF};
        static const uint8_t bad3[] = {MK_UNIT_ALERT, 0, 0, 9};
        memset(&f, 0, sizeof f);
        assert_int_equal(yugi_framer_feed(&f, bad1, 1, count_unit, &us),
                         MK_ERR_BAD_UNIT_TYPE);
        yugi_framer_free(&f);
        assert_int_equal(yugi_framer_feed(&f, bad2, 3, count_unit, &us), 0);
        assert_int_equal(yugi_framer_feed(&f, bad2 + 3, 1, count_unit, &us),
                         MK_ERR_BAD_LENGTH);
        yugi_framer_free(&f);
        assert_int_equal(yugi_framer_feed(&f, bad3, 4, count_unit, &us),
                         MK_ERR_BAD_LENGTH);
        yugi_framer_free(&f);
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

    assert_int_equal(yugi_addrs_init(&t, 2, 3), 0);
    memset(&a1, 0, sizeof a1);
    a1.sin_family = AF_INET;
    a1.sin_addr.s_addr = htonl(0x7f000001);
    a2 = a1;
    a2.sin_addr.s_addr = htonl(0x7f000002);
    x = yugi_addrs_get(&t, (struct sockaddr *)&a1, 1000);
    y = yugi_addrs_get(&t, (struct sockaddr *)&a2, 1000);
    assert_ptr_not_equal(x, y);
    assert_ptr_equal(yugi_addrs_get(&t, (struct sockaddr *)&a1, 1000), x);
    assert_int_equal(x->refs, 2);
    /* Burst of 3, then wait for the refill at 2/s. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(yugi_addr_take(&t, x, 1000), 0);
    assert_int_equal(yugi_addr_take(&t, x, 1000), 500);
    assert_int_equal(yugi_addr_take(&t, x, 1250), 250);
    assert_int_equal(yugi_addr_take(&t, x, 1500), 0);
    /* The other address is untouched. */
    assert_int_equal(yugi_addr_take(&t, y, 1500), 0);
    /* IPv6: one bucket per /64. */
    memset(&b1, 0, sizeof b1);
    b1.sin6_family = AF_INET6;
    b1.sin6_addr.s6_addr[0] = 0x20;
    b1.sin6_addr.s6_addr[15] = 1;
    b2 = b1;
    b2.sin6_addr.s6_addr[15] = 2;
    z = yugi_addrs_get(&t, (struct sockaddr *)&b1, 1000);
    w = yugi_addrs_get(&t, (struct sockaddr *)&b2, 1000);
    assert_ptr_equal(z, w);
    assert_int_equal(t.count, 3);
    /* Sweep drops only unreferenced, refilled entries. */
    yugi_addrs_put(&t, x);
    yugi_addrs_put(&t, x);
    yugi_addrs_put(&t, y);
    yugi_addrs_sweep(&t, 1600);
    assert_int_equal(t.count, 3); /* both still refilling */
    yugi_addrs_sweep(&t, 10000);
    assert_int_equal(t.count, 1); /* the IPv6 entry is still referenced */
    yugi_addrs_free(&t);
}

/* --- ticket-key file --------------------------------------------------- */

static void test_ticket_file(void **st)
{
    char dir[] = "/tmp/mkdu.XXXXXX", path[128], err[256];
    mk_ticket_key k1[MK_TICKET_KEYS_MAX], k2[MK_TICKET_KEYS_MAX];
    size_t n1 = 0, n2 = 0, n = 0;
    struct stat sb;
    (void)st;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.keys", dir);
    assert_int_equal(yami_ticket_file_update(path, 0, 4, &n, err,
                                             sizeof err),
                     0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(yami_ticket_file_read(path, k1, MK_TICKET_KEYS_MAX, &n1,
                                           err, sizeof err),
                     0);
    assert_int_equal(n1, 1);
    /* Create is idempotent; rotate prepends and keeps the old one. */
    assert_int_equal(yami_ticket_file_update(path, 0, 4, &n, err,
                                             sizeof err),
                     0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(yami_ticket_file_update(path, 1, 4, &n, err,
                                                 sizeof err),
                         0);
    assert_int_equal(yami_ticket_file_read(path, k2, MK_TICKET_KEYS_MAX, &n2,
                                           err, sizeof err),
                     0);
    assert_int_equal(n2, 4);
    assert_memory_not_equal(k2[0].name, k1[0].name, 16);
    /* Malformed files are refused with the line. */
    {
        FILE *f = fopen(path, "w");
        fputs("# x\n00112233445566778899aabbccddeeff 0011\n", f);
        fclose(f);
        assert_int_equal(yami_ticket_file_read(path, k2, MK_TICKET_KEYS_MAX,
                                               &n2, err, sizeof err),
                         -1);
        assert_non_null(strstr(err, ":2:"));
        f = fopen(path, "w");
        fputs("# only a comment\n", f);
        fclose(f);
        assert_int_equal(yami_ticket_file_read(path, k2, MK_TICKET_KEYS_MAX,
                                               &n2, err, sizeof err),
                         -1);
    }
    mk_wipe(k1, sizeof k1);
    mk_wipe(k2, sizeof k2);
    unlink(path);
    rmdir(dir);
}

/* --- Yami's pool step ---------------------------------------------------- */

static mk_server_config *server_config(uint32_t max_inflight)
{
    mk_server_config *sc = NULL;
    mk_server_key *k = NULL;
    mk_ticket_key tk;
    uint8_t *pem = NULL;
    size_t len = 0;

    assert_int_equal(mkd_read_file("tests/vectors/keys/server2048.pem",
                                   65536, &pem, &len),
                     0);
    assert_int_equal(mk_server_key_load_pem(&k, pem, len), MK_OK);
    free(pem);
    assert_int_equal(mk_server_config_new(&sc, mk_env_system()), MK_OK);
    assert_int_equal(mk_server_config_add_key(sc, k), MK_OK);
    memset(&tk, 7, sizeof tk);
    assert_int_equal(mk_server_config_set_ticket_keys(sc, &tk, 1), MK_OK);
    assert_int_equal(mk_server_config_set_limits(sc, 1u << 20, max_inflight,
                                                 3600),
                     MK_OK);
    return sc;
}

static mk_client_config *client_config(void)
{
    mk_client_config *cc = NULL;
    uint8_t *pem = NULL;
    size_t len = 0;

    assert_int_equal(mkd_read_file("tests/vectors/keys/server2048.pub.pem",
                                   65536, &pem, &len),
                     0);
    assert_int_equal(mk_client_config_new(&cc, mk_env_system()), MK_OK);
    assert_int_equal(mk_client_config_pin(cc, pem, len), MK_OK);
    free(pem);
    return cc;
}

static yami_op *op(int type, uint32_t id, const uint8_t *p, size_t len)
{
    yami_op *o = calloc(1, sizeof *o + len);
    o->type = type;
    o->request_id = id;
    o->len = len;
    if (len)
        memcpy(o->data, p, len);
    return o;
}

/* Hand every unit in out[0..n) to the client session; collect data. */
static void client_take(mk_session *c, const uint8_t *p, size_t n,
                        uint8_t *got, size_t *got_len, int *ecode)
{
    uint8_t *out = malloc(MK_HANDLE_OUT_LEN);
    size_t off = 0;

    while (off < n) {
        size_t ulen = 0;
        mk_event ev;
        assert_int_equal(mk_frame_check(p + off, n - off, &ulen), MK_OK);
        assert_int_equal(mk_session_handle(c, p + off, ulen, out,
                                           MK_HANDLE_OUT_LEN, &ev),
                         MK_OK);
        if (ev.type == MK_EV_DATA && got) {
            memcpy(got + *got_len, out, ev.len);
            *got_len += ev.len;
        }
        if (ev.type == MK_EV_ERROR && ecode)
            *ecode = (int)ev.error_code;
        off += ulen;
    }
    free(out);
}

static void test_yami_run(void **st)
{
    mk_server_config *sc = server_config(4);
    mk_client_config *cc = client_config();
    mk_session *c = NULL, *s = NULL;
    uint8_t hello[MK_HANDLE_OUT_LEN];
    uint8_t *wire, *big, *got;
    size_t n = 0, wn = 0, glen = 0;
    yami_conn y;
    yami_result res;
    yami_op *o;
    int ecode = 0;
    (void)st;

    assert_int_equal(mk_session_new_client(&c, cc, NULL, 0), MK_OK);
    assert_int_equal(mk_session_new_server(&s, sc), MK_OK);
    yami_conn_init(&y, s, 100000, NULL);

    /* The hello: a SERVER_HELLO comes out, the session is established. */
    assert_int_equal(mk_client_hello(c, hello, sizeof hello, &n), MK_OK);
    memset(&res, 0, sizeof res);
    o = op(YAMI_OP_UNITS, 0, hello, n);
    yami__run(&y, o, &res);
    free(o);
    assert_int_equal(res.err, 0);
    assert_true(res.established);
    assert_false(res.resumed);
    assert_int_equal(res.hellos, 1);
    client_take(c, res.out, res.out_len, NULL, NULL, NULL);
    assert_int_equal(mk_session_state(c), MK_STATE_ESTABLISHED);
    yami_result_free(&res);

    /* Two requests in one batch (one of 3 records): both come out whole. */
    big = malloc(40000);
    got = malloc(200000);
    wire = malloc(200000);
    for (size_t i = 0; i < 40000; i++)
        big[i] = (uint8_t)(i * 7);
    assert_int_equal(mk_seal_message(c, 1, big, 40000, wire, 200000, &wn),
                     MK_OK);
    assert_int_equal(mk_seal_message(c, 2, (const uint8_t *)"hi", 2,
                                     wire + wn, 200000 - wn, &n),
                     MK_OK);
    wn += n;
    memset(&res, 0, sizeof res);
    o = op(YAMI_OP_UNITS, 0, wire, wn);
    yami__run(&y, o, &res);
    free(o);
    assert_int_equal(res.err, 0);
    assert_non_null(res.requests);
    assert_int_equal(res.requests->id, 1);
    assert_int_equal(res.requests->len, 40000);
    assert_memory_equal(res.requests->body, big, 40000);
    assert_non_null(res.requests->next);
    assert_int_equal(res.requests->next->id, 2);
    assert_int_equal(y.partial_bytes, 0);
    yami_result_free(&res);

    /* Responses sealed in queue order. */
    memset(&res, 0, sizeof res);
    o = op(YAMI_OP_RESPONSE, 2, (const uint8_t *)"ok", 2);
    o->next = op(YAMI_OP_RESPONSE, 1, big, 40000);
    yami__run(&y, o, &res);
    free(o->next);
    free(o);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.responses, 2);
    client_take(c, res.out, res.out_len, got, &glen, NULL);
    assert_int_equal(glen, 40002);
    assert_memory_equal(got, "ok", 2);
    assert_memory_equal(got + 2, big, 40000);
    yami_result_free(&res);

    /* Over the buffer cap: the request is refused with "overloaded" and
     * the session goes on. */
    {
        uint8_t *huge = calloc(1, 150000);
        assert_int_equal(mk_seal_message(c, 3, huge, 150000, wire, 200000,
                                         &wn),
                         MK_OK);
        free(huge);
    }
    memset(&res, 0, sizeof res);
    o = op(YAMI_OP_UNITS, 0, wire, wn);
    yami__run(&y, o, &res);
    free(o);
    assert_int_equal(res.err, 0);
    assert_null(res.requests);
    assert_int_equal(res.aborted, 1);
    assert_int_equal(y.partial_bytes, 0);
    client_take(c, res.out, res.out_len, NULL, NULL, &ecode);
    assert_int_equal(ecode, MK_ECODE_OVERLOADED);
    yami_result_free(&res);

    /* A tampered record: the session fails, nothing comes out. */
    assert_int_equal(mk_seal_message(c, 4, (const uint8_t *)"x", 1, wire,
                                     200000, &wn),
                     MK_OK);
    wire[wn - 1] ^= 1;
    memset(&res, 0, sizeof res);
    o = op(YAMI_OP_UNITS, 0, wire, wn);
    o->next = op(YAMI_OP_CLOSE, 0, NULL, 0);
    yami__run(&y, o, &res);
    free(o->next);
    free(o);
    assert_int_equal(res.err, MK_ERR_BAD_RECORD_MAC);
    assert_false(res.internal);
    assert_int_equal(res.out_len, 0);
    assert_false(res.close_sent);
    yami_result_free(&res);

    free(big);
    free(got);
    free(wire);
    yami_conn_free(&y);
    mk_session_free(c);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* --- Yami's inline jobs ------------------------------------------------- */

/* A stand-in for Yugi's on_result: it collects the output in the order
 * results are applied, answers every request with its own body (queue and
 * kick, as conn.c does after a dispatch), and checks that an inline result
 * is never applied inside another one. */
typedef struct inl_ctx {
    yami_conn y; /* first: the callback gets &y */
    uv_loop_t loop;
    uint8_t *wire;
    size_t wire_len, wire_cap;
    unsigned results, inline_results, errors;
    int in_inline;         /* inside on_result for an inline result */
    int drop_after_echo;   /* drop the queue after queueing the answers */
} inl_ctx;

static void inl_on_result(yami_conn *y, yami_result *res)
{
    inl_ctx *t = (inl_ctx *)(void *)y;
    unsigned before;

    if (res->ran_inline) {
        assert_false(t->in_inline); /* never nested */
        /* Inline only when no pool job is in flight. */
        assert_false(yami_busy(y));
        t->in_inline = 1;
        t->inline_results++;
    }
    t->results++;
    if (res->err != 0) {
        t->errors++;
        yami_drop_queued(y);
        goto done;
    }
    if (t->wire_cap - t->wire_len < res->out_len) {
        t->wire_cap = (t->wire_len + res->out_len) * 2;
        t->wire = realloc(t->wire, t->wire_cap);
        assert_non_null(t->wire);
    }
    if (res->out_len)
        memcpy(t->wire + t->wire_len, res->out, res->out_len);
    t->wire_len += res->out_len;
    for (yami_request *r = res->requests; r != NULL; r = r->next)
        assert_int_equal(yami_queue(y, YAMI_OP_RESPONSE, r->id, 0, r->body,
                                    r->len),
                         0);
    if (t->drop_after_echo) {
        yami_drop_queued(y);
        goto done;
    }
    before = t->results;
    assert_int_equal(yami_kick(&t->loop, y), 0);
    if (res->ran_inline) {
        /* Nested inside an inline run: only queued, neither applied here
         * nor sent to the pool; the outer run takes it. */
        assert_int_equal(t->results, before);
        assert_false(yami_busy(y));
    }
done:
    if (res->ran_inline)
        t->in_inline = 0;
}

/* Request id carries inl_len(id) bytes of (id + j) & 0xFF: ids 1..29 are
 * small (id * 1000 + 1 bytes), 30..39 large (over the inline threshold),
 * 40 and up tiny. */
static size_t inl_len(uint32_t id)
{
    return id >= 40 ? 10 : id >= 30 ? 40000 : id * 1000u + 1;
}

/* Feed the collected output to the client; record the ids of complete
 * responses in order and check each body against its pattern. */
static size_t inl_client_take(inl_ctx *t, mk_session *c, uint32_t *order,
                              size_t max)
{
    uint8_t *out = malloc(MK_HANDLE_OUT_LEN), *got[128] = {0};
    size_t off = 0, n = 0, glen[128] = {0};

    assert_non_null(out);
    while (off < t->wire_len) {
        size_t ulen = 0;
        mk_event ev;
        assert_int_equal(mk_frame_check(t->wire + off, t->wire_len - off,
                                        &ulen),
                         MK_OK);
        /* Records sealed out of order would fail here: the sequence
         * numbers are implicit in the MAC. */
        assert_int_equal(mk_session_handle(c, t->wire + off, ulen, out,
                                           MK_HANDLE_OUT_LEN, &ev),
                         MK_OK);
        off += ulen;
        if (ev.type != MK_EV_DATA)
            continue;
        assert_true(ev.request_id < 128);
        got[ev.request_id] = realloc(got[ev.request_id],
                                     glen[ev.request_id] + ev.len + 1);
        memcpy(got[ev.request_id] + glen[ev.request_id], out, ev.len);
        glen[ev.request_id] += ev.len;
        if (!ev.final)
            continue;
        assert_true(n < max);
        order[n++] = ev.request_id;
        {
            uint32_t id = ev.request_id;
            size_t want = inl_len(id);
            assert_int_equal(glen[id], want);
            for (size_t j = 0; j < want; j++)
                assert_int_equal(got[id][j], (uint8_t)(id + j));
        }
        free(got[ev.request_id]);
        got[ev.request_id] = NULL;
        glen[ev.request_id] = 0;
    }
    for (int i = 0; i < 128; i++)
        free(got[i]);
    free(out);
    t->wire_len = 0;
    return n;
}

/* The client seals request id (see inl_client_take for its body) and the
 * wire bytes are queued to Yami as one read's worth of units. */
static void inl_send(inl_ctx *t, mk_session *c, uint32_t id)
{
    size_t len = inl_len(id), n = 0;
    uint8_t *body = malloc(len), *w = malloc(mk_message_wire_len(len));

    assert_non_null(body);
    assert_non_null(w);
    for (size_t j = 0; j < len; j++)
        body[j] = (uint8_t)(id + j);
    assert_int_equal(mk_seal_message(c, id, body, len, w,
                                     mk_message_wire_len(len), &n),
                     MK_OK);
    assert_int_equal(yami_queue(&t->y, YAMI_OP_UNITS, 0, 0, w, n), 0);
    free(body);
    free(w);
}

static void test_yami_inline(void **st)
{
    static inl_ctx t;
    mk_server_config *sc = server_config(32);
    mk_client_config *cc = client_config();
    mk_session *c = NULL, *s = NULL;
    uint8_t hello[MK_HANDLE_OUT_LEN];
    uint32_t order[64];
    size_t n = 0;
    uint64_t pool0, inl0;
    (void)st;

    memset(&t, 0, sizeof t);
    assert_int_equal(uv_loop_init(&t.loop), 0);
    assert_int_equal(mk_session_new_client(&c, cc, NULL, 0), MK_OK);
    assert_int_equal(mk_session_new_server(&s, sc), MK_OK);
    yami_conn_init(&t.y, s, 1u << 20, inl_on_result);
    t.y.inline_max = 16384;

    /* The hello always goes to the pool, however small. */
    assert_int_equal(mk_client_hello(c, hello, sizeof hello, &n), MK_OK);
    assert_true(n <= t.y.inline_max);
    assert_int_equal(yami_queue(&t.y, YAMI_OP_UNITS, 0, 0, hello, n), 0);
    inl0 = yami_counters.jobs_inline;
    pool0 = yami_counters.jobs_started;
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    assert_true(yami_busy(&t.y));
    assert_int_equal(t.results, 0);
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.results, 1);
    assert_int_equal(yami_counters.jobs_inline, inl0);
    assert_int_equal(yami_counters.jobs_started, pool0 + 1);
    client_take(c, t.wire, t.wire_len, NULL, NULL, NULL);
    assert_int_equal(mk_session_state(c), MK_STATE_ESTABLISHED);
    t.wire_len = 0;

    /* A small request: opened, answered (the answer queued from inside
     * the callback, by a nested kick) and sealed, all inside one kick. */
    t.results = 0;
    inl_send(&t, c, 1);
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    assert_false(yami_busy(&t.y));
    assert_int_equal(t.results, 2);
    assert_int_equal(t.inline_results, 2);
    assert_int_equal(yami_counters.jobs_started, pool0 + 1);
    assert_int_equal(inl_client_take(&t, c, order, 64), 1);
    assert_int_equal(order[0], 1);

    /* Small requests interleaved with a large one (over the threshold),
     * which goes to the pool; the small ones that arrive meanwhile wait
     * for it (only queued), then everything comes out in request order. */
    t.results = t.inline_results = 0;
    inl_send(&t, c, 2);
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    inl_send(&t, c, 3);
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    assert_int_equal(t.inline_results, 4);
    inl_send(&t, c, 30);
    assert_true(t.y.queued_bytes > t.y.inline_max);
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    assert_true(yami_busy(&t.y));
    inl_send(&t, c, 4);
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    inl_send(&t, c, 5);
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    assert_int_equal(t.inline_results, 4); /* 4, 5 wait behind 30 */
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_false(yami_busy(&t.y));
    assert_null(t.y.head);
    inl_send(&t, c, 6);
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    inl_send(&t, c, 31);
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    inl_send(&t, c, 7);
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(inl_client_take(&t, c, order, 64), 8);
    {
        static const uint32_t want[] = {2, 3, 30, 4, 5, 6, 31, 7};
        for (size_t i = 0; i < 8; i++)
            assert_int_equal(order[i], want[i]);
    }
    assert_int_equal(t.errors, 0);

    /* The budget of one kick: 10 requests in one read (10 records) run
     * inline, but their 10 answers would pass YAMI_INLINE_RECORDS, so
     * they go to the pool. Too many records at once: the pool. */
    t.results = t.inline_results = 0;
    pool0 = yami_counters.jobs_started;
    for (uint32_t id = 40; id < 50; id++)
        inl_send(&t, c, id);
    assert_int_equal(t.y.queued_records, 10);
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    assert_int_equal(t.inline_results, 1);
    assert_true(yami_busy(&t.y));
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(yami_counters.jobs_started, pool0 + 1);
    for (uint32_t id = 50; id < 68; id++)
        inl_send(&t, c, id);
    assert_true(t.y.queued_bytes < t.y.inline_max);
    assert_true(t.y.queued_records > YAMI_INLINE_RECORDS);
    t.inline_results = 0;
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    assert_true(yami_busy(&t.y));
    assert_int_equal(t.inline_results, 0);
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(inl_client_take(&t, c, order, 64), 28);
    for (size_t i = 0; i < 28; i++)
        assert_int_equal(order[i], 40 + i);

    /* inline_max 0: everything on the pool. */
    t.y.inline_max = 0;
    t.inline_results = 0;
    inl_send(&t, c, 1);
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    assert_true(yami_busy(&t.y));
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.inline_results, 0);
    assert_int_equal(inl_client_take(&t, c, order, 64), 1);
    t.y.inline_max = 16384;

    /* The owner drops the queue from inside the callback (its connection
     * closed): the run ends there, nothing is sealed or sent to the pool. */
    t.drop_after_echo = 1;
    t.results = 0;
    inl_send(&t, c, 2);
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    assert_int_equal(t.results, 1);
    assert_false(yami_busy(&t.y));
    assert_null(t.y.head);
    assert_int_equal(t.wire_len, 0);
    t.drop_after_echo = 0;

    /* A CLIENT_HELLO after the handshake never runs inline either (the
     * session refuses it, on the pool). */
    {
        mk_session *c2 = NULL;
        assert_int_equal(mk_session_new_client(&c2, cc, NULL, 0), MK_OK);
        assert_int_equal(mk_client_hello(c2, hello, sizeof hello, &n),
                         MK_OK);
        mk_session_free(c2);
    }
    assert_int_equal(yami_queue(&t.y, YAMI_OP_UNITS, 0, 0, hello, n), 0);
    assert_int_equal(t.y.queued_hellos, 1);
    assert_int_equal(yami_kick(&t.loop, &t.y), 0);
    assert_true(yami_busy(&t.y));
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.errors, 1);

    assert_int_equal(uv_loop_close(&t.loop), 0);
    free(t.wire);
    yami_conn_free(&t.y);
    mk_session_free(c);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* --- refusals and the end of a backend -------------------------------- */

/* A request the backend refuses at submit() gets an error text that says
 * what its code says, not "overloaded" for everything. */
static void test_refusal_text(void **st)
{
    (void)st;
    assert_string_equal(yugi_refusal_text(MK_ECODE_OVERLOADED),
                        "server overloaded");
    assert_string_equal(yugi_refusal_text(MK_ECODE_TOO_LARGE),
                        "request too large");
    assert_string_equal(yugi_refusal_text(MK_ECODE_SHUTDOWN),
                        "server shutting down");
    assert_string_equal(yugi_refusal_text(MK_ECODE_INTERNAL),
                        "internal error");
    assert_string_equal(yugi_refusal_text(99), "unknown");
}

typedef struct answers {
    int n;
    unsigned status[4];
    void *token[4];
} answers;

static answers ans;

static void record_done(void *token, unsigned status, const uint8_t *body,
                        size_t len, const char *text)
{
    (void)body;
    (void)len;
    (void)text;
    if (ans.n < 4) {
        ans.status[ans.n] = status;
        ans.token[ans.n] = token;
    }
    ans.n++;
}

/* The shutdown deadline frees the backend to get every outstanding
 * request answered (backend.h: free). The echo backend answers them
 * "shutdown", except what was cancelled. */
static void test_echo_free_answers(void **st)
{
    uv_loop_t loop;
    mkd_backend *b;
    mkd_request_ctx ctx;
    int tokens[3];
    (void)st;

    memset(&ans, 0, sizeof ans);
    memset(&ctx, 0, sizeof ctx);
    assert_int_equal(uv_loop_init(&loop), 0);
    b = mkd_echo_new(&loop, 60000);
    assert_non_null(b);
    for (int i = 0; i < 3; i++) {
        uint8_t *body = malloc(4);
        assert_non_null(body);
        memcpy(body, "ping", 4);
        assert_int_equal(b->ops->submit(b, &ctx, body, 4, record_done,
                                        &tokens[i]),
                         0);
    }
    b->ops->cancel(b, &tokens[1]);
    assert_int_equal(ans.n, 0);
    b->ops->free(b);
    assert_int_equal(ans.n, 2);
    assert_int_equal(ans.status[0], MK_ECODE_SHUTDOWN);
    assert_ptr_equal(ans.token[0], &tokens[0]);
    assert_int_equal(ans.status[1], MK_ECODE_SHUTDOWN);
    assert_ptr_equal(ans.token[1], &tokens[2]);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_framer),
        cmocka_unit_test(test_token_bucket),
        cmocka_unit_test(test_ticket_file),
        cmocka_unit_test(test_yami_run),
        cmocka_unit_test(test_yami_inline),
        cmocka_unit_test(test_refusal_text),
        cmocka_unit_test(test_echo_free_answers),
    };
    return cmocka_run_group_tests_name("mkd_units", tests, NULL, NULL);
}
