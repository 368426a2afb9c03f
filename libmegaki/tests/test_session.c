/*
 * test_session.c -- client and server pumped in memory: full handshake and
 * resumption with every key size, messages at every boundary, byte-at-a-time
 * delivery, many requests in flight answered out of order, clean close.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pump.h"
#include "testlib.h"

static tu_env env;

static void make_pair(tu_pair *p, mk_server_config *sc, mk_client_config *cc,
                      const uint8_t *blob, size_t blob_len)
{
    mk_session *c = NULL, *s = NULL;
    assert_int_equal(mk_session_new_client(&c, cc, blob, blob_len), MK_OK);
    assert_int_equal(mk_session_new_server(&s, sc), MK_OK);
    tu_pair_init(p, c, s);
}

/* Send msg from the client as request id, answer with its reverse, check
 * both arrive intact. */
static void roundtrip(tu_pair *p, uint32_t id, size_t len)
{
    uint8_t *msg = malloc(len + 1), *rev = malloc(len + 1);
    tu_msg *m;

    tu_pattern(msg, len, id);
    for (size_t i = 0; i < len; i++)
        rev[i] = msg[len - 1 - i];
    assert_int_equal(tu_send(p, &p->c, id, msg, len), MK_OK);
    assert_int_equal(tu_pump(p), 0);
    m = tu_find_msg(&p->srv, id);
    assert_non_null(m);
    assert_true(m->complete);
    assert_int_equal(m->data.len, len);
    assert_memory_equal(m->data.p ? m->data.p : msg, msg, len);
    assert_int_equal(tu_send(p, &p->srv, id, rev, len), MK_OK);
    assert_int_equal(tu_pump(p), 0);
    m = tu_find_msg(&p->c, id);
    assert_non_null(m);
    assert_true(m->complete);
    assert_int_equal(m->data.len, len);
    assert_memory_equal(m->data.p ? m->data.p : rev, rev, len);
    tu_clear_msgs(&p->c);
    tu_clear_msgs(&p->srv);
    free(msg);
    free(rev);
}

static void full_handshake_with(const char *key, const char *pub)
{
    mk_server_config *sc = tu_server_config(&env, key, 1);
    mk_client_config *cc = tu_client_config(&env, pub);
    mk_session_info ci, si;
    tu_pair p;

    make_pair(&p, sc, cc, NULL, 0);
    assert_int_equal(tu_connect(&p), 0);
    assert_true(p.c.established);
    assert_true(p.srv.established);
    mk_session_get_info(p.c.s, &ci);
    mk_session_get_info(p.srv.s, &si);
    assert_int_equal(ci.state, MK_STATE_ESTABLISHED);
    assert_false(ci.resumed);
    assert_true(ci.has_ticket);
    assert_memory_equal(ci.session_id, si.session_id, MK_SESSION_ID_LEN);
    assert_memory_equal(ci.key_id, si.key_id, MK_KEY_ID_LEN);
    assert_int_equal(ci.max_message, MK_MESSAGE_MAX_DEFAULT);
    assert_int_equal(ci.max_inflight, MK_INFLIGHT_DEFAULT);
    roundtrip(&p, 1, 100);
    tu_pair_free(&p);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

static void test_full_2048(void **st)
{
    (void)st;
    full_handshake_with("server2048.pem", "server2048.pub.pem");
}

static void test_full_3072(void **st)
{
    (void)st;
    full_handshake_with("server3072.pem", "server3072.pub.pem");
}

static void test_full_4096(void **st)
{
    (void)st;
    full_handshake_with("server4096.pem", "server4096.pub.pem");
}

static void test_pin_der(void **st)
{
    /* A DER SPKI pin and a PEM pin of the same key are one key. */
    mk_client_config *cc = NULL;
    size_t len;
    uint8_t *der = tl_load("tests/vectors/keys/server2048.pub.der", &len);
    uint8_t id1[MK_KEY_ID_LEN], id2[MK_KEY_ID_LEN];
    mk_server_key *k = tu_server_key("server2048.pem");
    (void)st;
    assert_int_equal(mk_client_config_new(&cc, &env.env), MK_OK);
    assert_int_equal(mk_client_config_pin(cc, der, len), MK_OK);
    assert_int_equal(mk_client_config_pin_count(cc), 1);
    assert_int_equal(mk_public_key_id(der, len, id1), MK_OK);
    mk_server_key_id(k, id2);
    assert_memory_equal(id1, id2, MK_KEY_ID_LEN);
    mk_server_key_free(k);
    mk_client_config_unref(cc);
    free(der);
}

static void test_weak_key_refused(void **st)
{
    size_t len;
    uint8_t *pem = tl_load("tests/vectors/keys/weak1024.pem", &len);
    uint8_t *pub = NULL;
    mk_server_key *k = NULL;
    mk_client_config *cc = NULL;
    (void)st;
    assert_int_equal(mk_server_key_load_pem(&k, pem, len), MK_ERR_KEY_SIZE);
    assert_null(k);
    free(pem);
    pub = tl_load("tests/vectors/keys/weak1024.pub.pem", &len);
    assert_int_equal(mk_client_config_new(&cc, &env.env), MK_OK);
    assert_int_equal(mk_client_config_pin(cc, pub, len), MK_ERR_KEY_SIZE);
    assert_int_equal(mk_client_config_pin(cc, (const uint8_t *)"junk", 4),
                     MK_ERR_KEY_FORMAT);
    mk_client_config_unref(cc);
    free(pub);
}

/* Full handshake, export the session, import it into a new client, and
 * resume: no RSA, a fresh ticket, and working records. */
static void test_resumption(void **st)
{
    mk_server_config *sc = tu_server_config(&env, "server2048.pem", 1);
    mk_client_config *cc = tu_client_config(&env, "server2048.pub.pem");
    uint8_t blob[MK_SESSION_BLOB_MAX], blob2[MK_SESSION_BLOB_MAX];
    size_t blen = 0, blen2 = 0;
    mk_session_info ci, si;
    tu_pair p;
    (void)st;

    make_pair(&p, sc, cc, NULL, 0);
    assert_int_equal(tu_connect(&p), 0);
    assert_int_equal(mk_session_export(p.c.s, blob, sizeof blob, &blen), MK_OK);
    assert_int_equal(mk_session_export(p.srv.s, blob2, sizeof blob2, &blen2),
                     MK_ERR_STATE);
    tu_pair_free(&p);

    for (int round = 0; round < 3; round++) {
        make_pair(&p, sc, cc, blob, blen);
        assert_int_equal(tu_connect(&p), 0);
        mk_session_get_info(p.c.s, &ci);
        mk_session_get_info(p.srv.s, &si);
        assert_true(ci.resumed);
        assert_true(si.resumed);
        assert_memory_equal(ci.session_id, si.session_id, MK_SESSION_ID_LEN);
        assert_memory_equal(ci.key_id, si.key_id, MK_KEY_ID_LEN);
        /* A resumption is one round trip: hello and hello, no retry. */
        assert_int_equal(p.srv.units, 1);
        roundtrip(&p, 7, 5000);
        /* Each handshake issues a fresh ticket: chain them. */
        assert_int_equal(mk_session_export(p.c.s, blob2, sizeof blob2, &blen2),
                         MK_OK);
        assert_true(blen2 != blen || memcmp(blob, blob2, blen) != 0);
        memcpy(blob, blob2, blen2);
        blen = blen2;
        tu_pair_free(&p);
    }
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* Message sizes at every boundary: 0, 1, around the AES block, around the
 * record size, and the announced maximum. */
static void test_boundaries(void **st)
{
    static const size_t sizes[] = {0,     1,     15,    16,    17,    31,
                                   32,    33,    16383, 16384, 16385, 32767,
                                   32768, 32769, 65536, 100000};
    mk_server_config *sc = tu_server_config(&env, "server2048.pem", 0);
    mk_client_config *cc = tu_client_config(&env, "server2048.pub.pem");
    tu_pair p;
    uint32_t id = 1;
    (void)st;

    make_pair(&p, sc, cc, NULL, 0);
    assert_int_equal(tu_connect(&p), 0);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        roundtrip(&p, id++, sizes[i]);
    roundtrip(&p, id++, MK_MESSAGE_MAX_DEFAULT);
    /* One byte over the maximum is refused before anything is sealed. */
    {
        size_t n = MK_MESSAGE_MAX_DEFAULT + 1;
        uint8_t *big = calloc(1, n);
        assert_int_equal(tu_send(&p, &p.c, id++, big, n),
                         MK_ERR_MESSAGE_TOO_LARGE);
        free(big);
    }
    tu_pair_free(&p);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* Everything, handshake included, delivered one byte at a time. */
static void test_byte_at_a_time(void **st)
{
    mk_server_config *sc = tu_server_config(&env, "server2048.pem", 1);
    mk_client_config *cc = tu_client_config(&env, "server2048.pub.pem");
    tu_pair p;
    (void)st;

    make_pair(&p, sc, cc, NULL, 0);
    p.chunk = 1;
    assert_int_equal(tu_connect(&p), 0);
    assert_true(p.c.established);
    roundtrip(&p, 1, 0);
    roundtrip(&p, 2, 17);
    roundtrip(&p, 3, 40000);
    tu_pair_free(&p);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* The maximum number of requests in flight, answered in reverse order, with
 * the request records interleaved on the wire. */
static void test_inflight_out_of_order(void **st)
{
    mk_server_config *sc = tu_server_config(&env, "server2048.pem", 0);
    mk_client_config *cc = tu_client_config(&env, "server2048.pub.pem");
    enum { N = 32 };
    uint8_t msg[20000];
    tu_pair p;
    (void)st;

    make_pair(&p, sc, cc, NULL, 0);
    assert_int_equal(tu_connect(&p), 0);
    /* Interleave: first records of every request, then the final ones. */
    for (uint32_t id = 1; id <= N; id++) {
        uint8_t rec[MK_RECORD_MAX_PLAINTEXT + 100];
        size_t n = 0;
        tu_pattern(msg, sizeof msg, id);
        assert_int_equal(
            mk_seal_record(p.c.s, id, 0, msg, 16384, rec, sizeof rec, &n),
            MK_OK);
        tu_buf_put(&p.c2s, rec, n);
    }
    /* One more than the server allows is refused locally. */
    {
        uint8_t rec[200];
        size_t n = 0;
        assert_int_equal(
            mk_seal_record(p.c.s, N + 1, 1, msg, 10, rec, sizeof rec, &n),
            MK_ERR_LIMIT);
    }
    for (uint32_t id = N; id >= 1; id--) {
        uint8_t rec[MK_RECORD_MAX_PLAINTEXT + 100];
        size_t n = 0;
        tu_pattern(msg, sizeof msg, id);
        assert_int_equal(mk_seal_record(p.c.s, id, 1, msg + 16384,
                                        sizeof msg - 16384, rec, sizeof rec,
                                        &n),
                         MK_OK);
        tu_buf_put(&p.c2s, rec, n);
    }
    assert_int_equal(tu_pump(&p), 0);
    for (uint32_t id = 1; id <= N; id++) {
        tu_msg *m = tu_find_msg(&p.srv, id);
        assert_non_null(m);
        assert_true(m->complete);
        tu_pattern(msg, sizeof msg, id);
        assert_int_equal(m->data.len, sizeof msg);
        assert_memory_equal(m->data.p, msg, sizeof msg);
    }
    /* Answer out of order: odd ids descending, then even ids ascending,
     * one with an error record. */
    for (uint32_t id = N - 1; id >= 1; id -= 2) {
        char text[16];
        snprintf(text, sizeof text, "resp %u", id);
        assert_int_equal(
            tu_send(&p, &p.srv, id, (const uint8_t *)text, strlen(text)),
            MK_OK);
        if (id == 1)
            break;
    }
    for (uint32_t id = 2; id <= N; id += 2) {
        uint8_t out[200];
        size_t n = 0;
        if (id == 10) {
            assert_int_equal(mk_seal_error(p.srv.s, id, MK_ECODE_APPLICATION,
                                           "boom", 4, out, sizeof out, &n),
                             MK_OK);
            tu_buf_put(&p.s2c, out, n);
            continue;
        }
        char text[16];
        snprintf(text, sizeof text, "resp %u", id);
        assert_int_equal(
            tu_send(&p, &p.srv, id, (const uint8_t *)text, strlen(text)),
            MK_OK);
    }
    assert_int_equal(tu_pump(&p), 0);
    for (uint32_t id = 1; id <= N; id++) {
        tu_msg *m = tu_find_msg(&p.c, id);
        char text[16];
        assert_non_null(m);
        assert_true(m->complete);
        if (id == 10) {
            assert_true(m->error);
            assert_int_equal(m->ecode, MK_ECODE_APPLICATION);
            continue;
        }
        snprintf(text, sizeof text, "resp %u", id);
        assert_int_equal(m->data.len, strlen(text));
        assert_memory_equal(m->data.p, text, strlen(text));
    }
    /* All answered: the table is empty again on both sides. */
    {
        mk_session_info ci, si;
        mk_session_get_info(p.c.s, &ci);
        mk_session_get_info(p.srv.s, &si);
        assert_int_equal(ci.inflight, 0);
        assert_int_equal(si.inflight, 0);
    }
    tu_pair_free(&p);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

static void test_close(void **st)
{
    mk_server_config *sc = tu_server_config(&env, "server2048.pem", 0);
    mk_client_config *cc = tu_client_config(&env, "server2048.pub.pem");
    uint8_t out[200];
    size_t n = 0;
    tu_pair p;
    (void)st;

    make_pair(&p, sc, cc, NULL, 0);
    assert_int_equal(tu_connect(&p), 0);
    /* No ticket keys: nothing to export. */
    assert_int_equal(mk_session_export(p.c.s, out, sizeof out, &n),
                     MK_ERR_STATE);
    assert_int_equal(mk_seal_close(p.c.s, out, sizeof out, &n), MK_OK);
    tu_buf_put(&p.c2s, out, n);
    assert_int_equal(mk_seal_record(p.c.s, 1, 1, out, 1, out, sizeof out, &n),
                     MK_ERR_STATE);
    assert_int_equal(tu_pump(&p), 0);
    assert_true(p.srv.closed);
    assert_int_equal(mk_seal_close(p.srv.s, out, sizeof out, &n), MK_OK);
    tu_buf_put(&p.s2c, out, n);
    assert_int_equal(tu_pump(&p), 0);
    assert_true(p.c.closed);
    assert_int_equal(mk_session_state(p.c.s), MK_STATE_CLOSED);
    assert_int_equal(mk_session_state(p.srv.s), MK_STATE_CLOSED);
    tu_pair_free(&p);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* The server rotated its RSA key: a client pinning old and new keys, old
 * first, is told the server's key ids and retries on the same connection. */
static void test_key_rotation_retry(void **st)
{
    mk_server_config *sc = tu_server_config(&env, "server3072.pem", 0);
    mk_client_config *cc = tu_client_config(&env, "other2048.pub.pem");
    size_t len;
    uint8_t *pub = tl_load("tests/vectors/keys/server3072.pub.pem", &len);
    mk_session_info ci;
    tu_pair p;
    (void)st;

    assert_int_equal(mk_client_config_pin(cc, pub, len), MK_OK);
    free(pub);
    make_pair(&p, sc, cc, NULL, 0);
    assert_int_equal(tu_connect(&p), 0);
    assert_true(p.c.established);
    mk_session_get_info(p.c.s, &ci);
    {
        uint8_t id[MK_KEY_ID_LEN];
        mk_server_key *k = tu_server_key("server3072.pem");
        mk_server_key_id(k, id);
        assert_memory_equal(ci.key_id, id, MK_KEY_ID_LEN);
        mk_server_key_free(k);
    }
    tu_pair_free(&p);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* The server refuses a request before it has arrived whole (overloaded):
 * the client finishes it with an empty final record, and both sides free
 * the slot at that record. A response of more than the maximum is refused
 * on the server before anything is sealed. */
static void test_early_error(void **st)
{
    mk_server_config *sc = tu_server_config(&env, "server2048.pem", 0);
    mk_client_config *cc = tu_client_config(&env, "server2048.pub.pem");
    uint8_t rec[MK_RECORD_MAX_PLAINTEXT + 100], msg[100];
    mk_session_info ci, si;
    size_t n = 0;
    tu_pair p;
    (void)st;

    make_pair(&p, sc, cc, NULL, 0);
    assert_int_equal(tu_connect(&p), 0);
    tu_pattern(msg, sizeof msg, 3);
    assert_int_equal(
        mk_seal_record(p.c.s, 5, 0, msg, sizeof msg, rec, sizeof rec, &n),
        MK_OK);
    tu_buf_put(&p.c2s, rec, n);
    assert_int_equal(tu_pump(&p), 0);
    /* Not complete: the server may not answer with data yet. */
    assert_int_equal(mk_seal_record(p.srv.s, 5, 1, msg, 1, rec, sizeof rec, &n),
                     MK_ERR_STATE);
    assert_int_equal(mk_seal_error(p.srv.s, 5, MK_ECODE_OVERLOADED, "busy", 4,
                                   rec, sizeof rec, &n),
                     MK_OK);
    tu_buf_put(&p.s2c, rec, n);
    assert_int_equal(tu_pump(&p), 0);
    assert_true(tu_find_msg(&p.c, 5)->error);
    assert_int_equal(tu_find_msg(&p.c, 5)->ecode, MK_ECODE_OVERLOADED);
    mk_session_get_info(p.c.s, &ci);
    mk_session_get_info(p.srv.s, &si);
    assert_int_equal(ci.inflight, 1);
    assert_int_equal(si.inflight, 1);
    /* More records of the refused request are swallowed, not delivered. */
    assert_int_equal(
        mk_seal_record(p.c.s, 5, 0, msg, sizeof msg, rec, sizeof rec, &n),
        MK_OK);
    tu_buf_put(&p.c2s, rec, n);
    assert_int_equal(mk_seal_record(p.c.s, 5, 1, NULL, 0, rec, sizeof rec, &n),
                     MK_OK);
    tu_buf_put(&p.c2s, rec, n);
    assert_int_equal(tu_pump(&p), 0);
    assert_int_equal(tu_find_msg(&p.srv, 5)->data.len, sizeof msg);
    mk_session_get_info(p.c.s, &ci);
    mk_session_get_info(p.srv.s, &si);
    assert_int_equal(ci.inflight, 0);
    assert_int_equal(si.inflight, 0);
    tu_clear_msgs(&p.srv);
    tu_clear_msgs(&p.c);

    /* The id is free again and works normally. */
    roundtrip(&p, 5, 10);

    /* A response over the maximum is refused before sealing. */
    assert_int_equal(tu_send(&p, &p.c, 6, msg, 1), MK_OK);
    assert_int_equal(tu_pump(&p), 0);
    {
        size_t big = MK_MESSAGE_MAX_DEFAULT + 1;
        uint8_t *b = calloc(1, big);
        assert_int_equal(tu_send(&p, &p.srv, 6, b, big),
                         MK_ERR_MESSAGE_TOO_LARGE);
        free(b);
    }
    assert_int_equal(mk_session_state(p.srv.s), MK_STATE_ESTABLISHED);
    tu_pair_free(&p);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

static void test_error_strings(void **st)
{
    (void)st;
    assert_string_equal(mk_err_name(MK_ERR_BAD_RECORD_MAC),
                        "MK_ERR_BAD_RECORD_MAC");
    assert_string_equal(mk_err_class(MK_ERR_PIN), "AUTH");
    assert_string_equal(mk_strerror(MK_OK), "success");
    assert_string_equal(mk_err_name(9999), "MK_ERR_UNKNOWN");
    assert_string_equal(mk_error_code_name(MK_ECODE_OVERLOADED), "overloaded");
}

static int setup(void **st)
{
    (void)st;
    tu_env_init(&env, "test_session");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_2048),
        cmocka_unit_test(test_full_3072),
        cmocka_unit_test(test_full_4096),
        cmocka_unit_test(test_pin_der),
        cmocka_unit_test(test_weak_key_refused),
        cmocka_unit_test(test_resumption),
        cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_inflight_out_of_order),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_key_rotation_retry),
        cmocka_unit_test(test_early_error),
        cmocka_unit_test(test_error_strings),
    };
    return cmocka_run_group_tests_name("session", tests, setup, NULL);
}
