/*
 * test_attacks.c -- an active attacker between client and server: the
 * RSA-OAEP oracles, record tampering and replay, and downgrades.
 *
 * Every test pumps real sessions in memory and tampers with the bytes in
 * flight: every bit of every handshake message and of every record kind is
 * flipped, records are replayed, reordered, dropped, reflected and cut
 * short, keys and tickets are swapped, malformed RSA ciphertexts are sent,
 * small-order X25519 shares are offered, limits are overrun, units arrive
 * out of state and the random source fails at every draw.
 *
 * The pass criteria are the ones of the catalogue: a tampered handshake
 * never completes with keys that differ, a tampered record is refused with
 * one error and without a byte of plaintext, an RSA decryption failure is
 * invisible until key confirmation, and nothing leaks (run under valgrind:
 * every session, configuration and buffer is freed).
 *
 * A few tests reach into struct mk_session (internal.h) to play a client
 * that ignores the server's announced limits, or to derive keys the way an
 * attacker holding a chosen root secret would. That is the only use of
 * internals here; everything else goes through megaki.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "msg.h"
#include "pump.h"
#include "testlib.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND_H 1
#endif
#endif

#define KEYDIR "tests/vectors/keys/"

static const uint8_t oaep_label[] = "megaki v2";
#define OAEP_LABEL_LEN (sizeof oaep_label - 1)

/* Shared fixture: one deterministic environment, a server with
 * server2048.pem and a ticket key, a client pinning it, and a session blob
 * from one full handshake so that most tests can build established pairs
 * by resumption (no RSA) at a fraction of a millisecond each. */
static tu_env env;
static mk_server_config *g_sc;
static mk_client_config *g_cc;
static uint8_t g_blob[MK_SESSION_BLOB_MAX];
static size_t g_blob_len;
static uint8_t g_garbage[MK_UNIT_MAX];
/* The session blob layout (session.c): the ticket starts here. */
#define BLOB_TICKET_OFF (4 + MK_KEY_ID_LEN + 8 + 4 + MK_SECRET_LEN + 2)
#define BLOB_SECRET_OFF (4 + MK_KEY_ID_LEN + 8 + 4)

/* The exhaustive bit-flip loops take seconds natively but far too long
 * under valgrind (every flip is a handshake). There, or with
 * MK_ATTACKS_STRIDE=n in the environment, they flip every bit of the first
 * 8 bytes (header, magic) and then every n-th bit (n odd, so every bit
 * position of a byte still comes up); everything else runs in full. */
static size_t g_stride = 1;

static int want_bit(size_t bit)
{
    return g_stride <= 1 || bit < 64 || bit % g_stride == 0;
}

/* Handler output buffer; filled with a canary before each record test so
 * that "nothing was decrypted into it" can be checked byte for byte. */
static uint8_t g_out[MK_HANDLE_OUT_LEN];
#define CANARY 0xCC

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

static void flip(uint8_t *p, size_t bit)
{
    p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
}

static int out_untouched(void)
{
    for (size_t i = 0; i < sizeof g_out; i++)
        if (g_out[i] != CANARY)
            return 0;
    return 1;
}

static int is_frame_err(int e)
{
    return e == MK_ERR_BAD_UNIT_TYPE || e == MK_ERR_BAD_LENGTH;
}

static mk_server_config *server_cfg(const mk_env *e, const char *key,
                                    const mk_ticket_key *tk, size_t ntk)
{
    mk_server_config *c = NULL;
    assert_int_equal(mk_server_config_new(&c, e), MK_OK);
    assert_int_equal(mk_server_config_add_key(c, tu_server_key(key)), MK_OK);
    if (ntk)
        assert_int_equal(mk_server_config_set_ticket_keys(c, tk, ntk), MK_OK);
    return c;
}

static void pin_file(mk_client_config *c, const char *name)
{
    char path[128];
    size_t len;
    uint8_t *pem;

    snprintf(path, sizeof path, KEYDIR "%s", name);
    pem = tl_load(path, &len);
    assert_int_equal(mk_client_config_pin(c, pem, len), MK_OK);
    free(pem);
}

/* A client configuration pinning pub1 and, if given, pub2 (in order). */
static mk_client_config *client_cfg(const mk_env *e, const char *pub1,
                                    const char *pub2)
{
    mk_client_config *c = NULL;
    assert_int_equal(mk_client_config_new(&c, e), MK_OK);
    pin_file(c, pub1);
    if (pub2)
        pin_file(c, pub2);
    return c;
}

static void ticket_key(mk_ticket_key *tk, const char *name, uint8_t fill)
{
    memset(tk, 0, sizeof *tk);
    memcpy(tk->name, name, 16);
    memset(tk->secret, fill, sizeof tk->secret);
}

static void key_id_of(const char *key, uint8_t id[MK_KEY_ID_LEN])
{
    mk_server_key *k = tu_server_key(key);
    mk_server_key_id(k, id);
    mk_server_key_free(k);
}

static void pair_new(tu_pair *p, mk_server_config *sc, mk_client_config *cc,
                     const uint8_t *blob, size_t blob_len)
{
    mk_session *c = NULL, *s = NULL;
    assert_int_equal(mk_session_new_client(&c, cc, blob, blob_len), MK_OK);
    assert_int_equal(mk_session_new_server(&s, sc), MK_OK);
    tu_pair_init(p, c, s);
}

/* Client hello into the client-to-server wire. */
static void pair_hello(tu_pair *p)
{
    uint8_t out[MK_HANDLE_OUT_LEN];
    size_t n = 0;
    assert_int_equal(mk_client_hello(p->c.s, out, sizeof out, &n), MK_OK);
    tu_buf_put(&p->c2s, out, n);
}

/* An established pair by resumption from the fixture blob. */
static void pair_resumed(tu_pair *p)
{
    mk_session_info ci;
    pair_new(p, g_sc, g_cc, g_blob, g_blob_len);
    assert_int_equal(tu_connect(p), 0);
    assert_true(p->c.established && p->srv.established);
    mk_session_get_info(p->c.s, &ci);
    assert_true(ci.resumed);
}

/* Both directions carry a message: the two sides hold the same keys. */
static void roundtrip_ok(tu_pair *p, uint32_t id)
{
    static const uint8_t q[] = "ping", a[] = "pong!";
    tu_msg *m;

    assert_int_equal(tu_send(p, &p->c, id, q, sizeof q), MK_OK);
    assert_int_equal(tu_pump(p), 0);
    m = tu_find_msg(&p->srv, id);
    assert_non_null(m);
    assert_true(m->complete);
    assert_int_equal(m->data.len, sizeof q);
    assert_memory_equal(m->data.p, q, sizeof q);
    assert_int_equal(tu_send(p, &p->srv, id, a, sizeof a), MK_OK);
    assert_int_equal(tu_pump(p), 0);
    m = tu_find_msg(&p->c, id);
    assert_non_null(m);
    assert_true(m->complete);
    assert_int_equal(m->data.len, sizeof a);
    assert_memory_equal(m->data.p, a, sizeof a);
}

/* Capture the first flight each way of a handshake: the client's hello and
 * the server's reply (SERVER_HELLO, HELLO_RETRY or ALERT). */
static void capture(tu_pair *p, tu_buf *ch, tu_buf *reply)
{
    pair_hello(p);
    tu_buf_put(ch, p->c2s.p, p->c2s.len);
    tu_feed(p, &p->srv, &p->c2s, &p->s2c);
    tu_buf_put(reply, p->s2c.p, p->s2c.len);
}

/* Deliver exactly one unit from wire[0..len) to s the way a transport
 * would: frame it first. Returns the framing error, MK_WANT_READ if the
 * unit is incomplete, or what mk_session_handle() returned. */
static int deliver(mk_session *s, const uint8_t *wire, size_t len, mk_event *ev)
{
    size_t ul = 0;
    int r = mk_frame_check(wire, len, &ul);
    memset(ev, 0, sizeof *ev);
    if (r != MK_OK)
        return r;
    return mk_session_handle(s, wire, ul, g_out, sizeof g_out, ev);
}

/* Deliver one authentic record that s must refuse with err: nothing is
 * sent in answer and not a byte of it reaches the caller's buffer. */
static void expect_refused(mk_session *s, const uint8_t *rec, size_t n, int err)
{
    mk_event ev;

    memset(g_out, CANARY, sizeof g_out);
    assert_int_equal(deliver(s, rec, n, &ev), err);
    assert_int_equal(ev.type, MK_EV_NONE);
    assert_int_equal(ev.len, 0);
    assert_true(out_untouched());
    assert_int_equal(mk_session_error(s), err);
}

/* ---------------------------------------------------------------------- */
/* 1. Handshake bit flips                                                  */

/* Offsets in a full CLIENT_HELLO (msg.c). */
enum {
    CH_FLAGS = 1,
    CH_LEN = 2,
    CH_MAGIC = 4,
    CH_VERSION = 7,
    CH_MODE = 8,
    CH_CHFLAGS = 9,
    CH_RANDOM = 10,
    CH_KEYID = 82,
    CH_KEMLEN = 90,
    CH_KEM = 92,
    CH_TICKETLEN = 82,
    CH_TICKET = 84
};

/* Every bit of a full CLIENT_HELLO. The handshake must never complete on
 * the client, and the region decides how it fails: a flip in the random,
 * the share, the time or the RSA ciphertext is invisible to the server
 * (which answers with an ordinary SERVER_HELLO: no OAEP oracle) and caught
 * by the client's Finished check; a flipped key id draws a HELLO_RETRY the
 * client cannot satisfy; anything structural draws an alert. */
static void test_flip_client_hello_full(void **st)
{
    tu_buf ref = {0}, dummy = {0};
    tu_pair p;
    size_t len, counts[4] = {0};
    (void)st;

    pair_new(&p, g_sc, g_cc, NULL, 0);
    capture(&p, &ref, &dummy);
    len = ref.len;
    assert_int_equal(len, CH_KEM + 256);
    tu_pair_free(&p);

    for (size_t bit = 0; bit < len * 8; bit++) {
        size_t byte = bit / 8;
        if (!want_bit(bit))
            continue;
        pair_new(&p, g_sc, g_cc, NULL, 0);
        pair_hello(&p);
        assert_int_equal(p.c2s.len, len);
        flip(p.c2s.p, bit);
        if (byte == CH_LEN || byte == CH_LEN + 1)
            tu_buf_put(&p.c2s, g_garbage, sizeof g_garbage);
        (void)tu_pump(&p);

        /* Never established on the client, and never silently stalled. */
        assert_false(p.c.established);
        assert_int_not_equal(mk_session_state(p.c.s), MK_STATE_ESTABLISHED);
        assert_true(p.c.err != 0 || p.srv.err != 0);

        if (byte == 0) {
            assert_true(is_frame_err(p.srv.err));
            counts[0]++;
        } else if (byte < CH_RANDOM || (byte >= CH_KEMLEN && byte < CH_KEM)) {
            /* Structure: the server refuses and says so in an alert. */
            assert_true(p.srv.err == MK_ERR_BAD_MESSAGE ||
                        p.srv.err == MK_ERR_BAD_MAGIC ||
                        p.srv.err == MK_ERR_BAD_VERSION ||
                        p.srv.err == MK_ERR_BAD_LENGTH);
            if (p.srv.err != MK_ERR_BAD_LENGTH)
                assert_true(p.c.err == MK_ERR_PEER_BAD_MESSAGE ||
                            p.c.err == MK_ERR_PEER_VERSION);
            counts[1]++;
        } else if (byte >= CH_KEYID && byte < CH_KEMLEN) {
            /* Unknown key id: HELLO_RETRY naming a key not pinned. */
            assert_int_equal(p.srv.err, 0);
            assert_false(p.srv.established);
            assert_int_equal(p.c.err, MK_ERR_PIN);
            counts[2]++;
        } else {
            /* Random, share, time, ciphertext: the server carries on. */
            assert_int_equal(p.srv.err, 0);
            assert_true(p.srv.established);
            assert_int_equal(p.c.err, MK_ERR_SERVER_AUTH);
            counts[3]++;
        }
        tu_pair_free(&p);
    }
    print_message("CH full: %zu bits: %zu frame, %zu alert, %zu retry->pin, "
                  "%zu server-auth\n",
                  len * 8, counts[0], counts[1], counts[2], counts[3]);
    tu_buf_free(&ref);
    tu_buf_free(&dummy);
}

/* Every bit of a resuming CLIENT_HELLO. A flip in the ticket makes it
 * unusable: the server asks for a full handshake and the client falls
 * back to one, which completes with agreeing keys and resumed == 0. Any
 * other flip breaks the binder or the structure and the handshake fails. */
static void test_flip_client_hello_resume(void **st)
{
    tu_buf ref = {0}, dummy = {0};
    tu_pair p;
    size_t len, counts[3] = {0};
    (void)st;

    pair_new(&p, g_sc, g_cc, g_blob, g_blob_len);
    capture(&p, &ref, &dummy);
    len = ref.len;
    assert_int_equal(ref.p[CH_MODE], MK_MODE_RESUME);
    assert_int_equal(mk_get_u16(ref.p + CH_TICKETLEN), MK_TICKET_LEN);
    assert_int_equal(len, CH_TICKET + MK_TICKET_LEN + MK_MAC_LEN);
    tu_pair_free(&p);

    for (size_t bit = 0; bit < len * 8; bit++) {
        size_t byte = bit / 8;
        mk_session_info ci, si;
        if (!want_bit(bit))
            continue;
        pair_new(&p, g_sc, g_cc, g_blob, g_blob_len);
        pair_hello(&p);
        flip(p.c2s.p, bit);
        if (byte == CH_LEN || byte == CH_LEN + 1)
            tu_buf_put(&p.c2s, g_garbage, sizeof g_garbage);
        (void)tu_pump(&p);

        mk_session_get_info(p.c.s, &ci);
        mk_session_get_info(p.srv.s, &si);
        if (byte >= CH_TICKET && byte < CH_TICKET + MK_TICKET_LEN) {
            /* Fallback: HELLO_RETRY, then a full handshake. */
            assert_true(p.c.established && p.srv.established);
            assert_false(ci.resumed);
            assert_false(si.resumed);
            assert_int_equal(p.srv.units, 2);
            roundtrip_ok(&p, 1);
            counts[0]++;
        } else {
            assert_false(p.c.established);
            assert_false(ci.resumed);
            assert_true(p.c.err != 0 || p.srv.err != 0);
            if (byte >= CH_RANDOM && byte < CH_TICKETLEN) {
                assert_int_equal(p.srv.err, MK_ERR_BAD_BINDER);
                assert_int_equal(p.c.err, MK_ERR_PEER_HS_FAILED);
                counts[1]++;
            } else if (byte >= CH_TICKET + MK_TICKET_LEN) {
                assert_int_equal(p.srv.err, MK_ERR_BAD_BINDER);
                counts[1]++;
            } else {
                assert_false(p.srv.established);
                counts[2]++;
            }
        }
        tu_pair_free(&p);
    }
    print_message("CH resume: %zu bits: %zu ticket->full fallback, %zu bad "
                  "binder, %zu structural\n",
                  len * 8, counts[0], counts[1], counts[2]);
    tu_buf_free(&ref);
    tu_buf_free(&dummy);
}

/* Offsets in a SERVER_HELLO. */
enum { SH_MODE = 8, SH_RANDOM = 10, SH_XLEN = 74, SH_EXTRAS = 76 };

/* Every bit of a SERVER_HELLO (full or resumed): the client fails with
 * MK_ERR_SERVER_AUTH or a parse error, never establishes. */
static void flip_server_hello(int resume)
{
    tu_buf ch = {0}, ref = {0};
    tu_pair p;
    size_t len, auth = 0, parse = 0;

    pair_new(&p, g_sc, g_cc, resume ? g_blob : NULL, resume ? g_blob_len : 0);
    capture(&p, &ch, &ref);
    len = ref.len;
    assert_int_equal(ref.p[0], MK_UNIT_SERVER_HELLO);
    assert_int_equal(ref.p[SH_MODE], resume ? MK_MODE_RESUME : MK_MODE_FULL);
    tu_pair_free(&p);

    for (size_t bit = 0; bit < len * 8; bit++) {
        size_t byte = bit / 8;
        mk_event ev;
        int r;
        if (!want_bit(bit))
            continue;
        pair_new(&p, g_sc, g_cc, resume ? g_blob : NULL,
                 resume ? g_blob_len : 0);
        pair_hello(&p);
        tu_feed(&p, &p.srv, &p.c2s, &p.s2c);
        assert_true(p.srv.established);
        assert_int_equal(p.s2c.len, len);
        flip(p.s2c.p, bit);
        if (byte == 2 || byte == 3)
            tu_buf_put(&p.s2c, g_garbage, sizeof g_garbage);
        r = deliver(p.c.s, p.s2c.p, p.s2c.len, &ev);

        assert_int_not_equal(r, MK_OK);
        assert_int_not_equal(r, MK_WANT_READ);
        assert_int_not_equal(ev.type, MK_EV_ESTABLISHED);
        assert_int_not_equal(mk_session_state(p.c.s), MK_STATE_ESTABLISHED);
        if ((byte >= SH_RANDOM && byte < SH_XLEN) || byte >= SH_EXTRAS) {
            assert_int_equal(r, MK_ERR_SERVER_AUTH);
            auth++;
        } else {
            assert_true(r == MK_ERR_BAD_MESSAGE || r == MK_ERR_BAD_MAGIC ||
                        r == MK_ERR_BAD_VERSION || is_frame_err(r));
            parse++;
        }
        tu_pair_free(&p);
    }
    print_message("SH %s: %zu bits: %zu server-auth, %zu parse\n",
                  resume ? "resume" : "full", len * 8, auth, parse);
    tu_buf_free(&ch);
    tu_buf_free(&ref);
}

static void test_flip_server_hello_full(void **st)
{
    (void)st;
    flip_server_hello(0);
}

static void test_flip_server_hello_resume(void **st)
{
    (void)st;
    flip_server_hello(1);
}

/* Every bit of a HELLO_RETRY. The retry is not authenticated, but all it
 * can do is make the client choose among keys it pins itself, so every
 * flip ends the handshake: a damaged key id matches no pin (MK_ERR_PIN),
 * anything else fails to parse or names the wrong reason.
 *   reason KEY_ID: the client pins other2048 first, then server2048;
 *   reason TICKET: a resuming client meets a server with other ticket keys.
 */
static void flip_retry(int ticket)
{
    mk_ticket_key tk;
    mk_server_config *sc;
    mk_client_config *cc;
    tu_buf ch = {0}, ref = {0};
    tu_pair p;
    size_t len, pin = 0, parse = 0;

    ticket_key(&tk, "other-ticketkey!", 0x17);
    sc = ticket ? server_cfg(&env.env, "server2048.pem", &tk, 1)
                : mk_server_config_ref(g_sc);
    cc = ticket
             ? mk_client_config_ref(g_cc)
             : client_cfg(&env.env, "other2048.pub.pem", "server2048.pub.pem");

    /* Untampered, the retry leads to an established full handshake. */
    pair_new(&p, sc, cc, ticket ? g_blob : NULL, ticket ? g_blob_len : 0);
    capture(&p, &ch, &ref);
    assert_int_equal(ref.p[0], MK_UNIT_HELLO_RETRY);
    assert_int_equal(ref.p[8], ticket ? 1 : 2); /* reason */
    assert_int_equal(tu_pump(&p), 0);
    assert_true(p.c.established && p.srv.established);
    roundtrip_ok(&p, 3);
    len = ref.len;
    assert_int_equal(len, 4 + 4 + 2 + MK_KEY_ID_LEN);
    tu_pair_free(&p);

    for (size_t bit = 0; bit < len * 8; bit++) {
        size_t byte = bit / 8;
        if (!want_bit(bit))
            continue;
        pair_new(&p, sc, cc, ticket ? g_blob : NULL, ticket ? g_blob_len : 0);
        pair_hello(&p);
        tu_feed(&p, &p.srv, &p.c2s, &p.s2c);
        assert_int_equal(p.s2c.len, len);
        flip(p.s2c.p, bit);
        if (byte == 2 || byte == 3)
            tu_buf_put(&p.s2c, g_garbage, sizeof g_garbage);
        (void)tu_pump(&p);
        assert_false(p.c.established);
        assert_false(p.srv.established);
        if (byte >= 10) {
            assert_int_equal(p.c.err, MK_ERR_PIN);
            pin++;
        } else {
            assert_true(p.c.err == MK_ERR_BAD_MESSAGE ||
                        p.c.err == MK_ERR_BAD_MAGIC ||
                        p.c.err == MK_ERR_BAD_VERSION || is_frame_err(p.c.err));
            parse++;
        }
        /* The client wrote no second hello. */
        assert_int_equal(p.c2s.len, 0);
        tu_pair_free(&p);
    }
    print_message("HELLO_RETRY (%s): %zu bits: %zu pin, %zu parse\n",
                  ticket ? "ticket" : "key id", len * 8, pin, parse);
    tu_buf_free(&ch);
    tu_buf_free(&ref);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

static void test_flip_hello_retry_key_id(void **st)
{
    (void)st;
    flip_retry(0);
}

static void test_flip_hello_retry_ticket(void **st)
{
    (void)st;
    flip_retry(1);
}

/* ---------------------------------------------------------------------- */
/* 2. Record bit flips                                                     */

enum rec_kind {
    REC_DATA_C2S,
    REC_DATA_S2C,
    REC_ERROR_S2C,
    REC_CLOSE_C2S,
    REC_CLOSE_S2C,
    REC_DATA_C2S_PART,
    REC_ERROR_CONN
};
static const char *const rec_names[] = {"DATA c->s",
                                        "DATA s->c",
                                        "ERROR s->c",
                                        "CLOSE c->s",
                                        "CLOSE s->c",
                                        "DATA c->s (non-final)",
                                        "ERROR s->c (connection)"};

/* On a fresh resumed pair, seal one record of the given kind into rec and
 * return the session that is to receive it. */
static mk_session *seal_kind(tu_pair *p, enum rec_kind k, uint8_t *rec,
                             size_t cap, size_t *n)
{
    static const uint8_t msg[33] = "thirty-three bytes of request..";

    *n = 0;
    if (k == REC_DATA_S2C || k == REC_ERROR_S2C) {
        /* The client has request 5 in flight and the server has it. */
        assert_int_equal(tu_send(p, &p->c, 5, msg, 10), MK_OK);
        assert_int_equal(tu_pump(p), 0);
        assert_true(tu_find_msg(&p->srv, 5)->complete);
    }
    switch (k) {
    case REC_DATA_C2S:
        assert_int_equal(
            mk_seal_record(p->c.s, 5, 1, msg, sizeof msg, rec, cap, n), MK_OK);
        return p->srv.s;
    case REC_DATA_C2S_PART:
        assert_int_equal(
            mk_seal_record(p->c.s, 5, 0, msg, sizeof msg, rec, cap, n), MK_OK);
        return p->srv.s;
    case REC_DATA_S2C:
        assert_int_equal(
            mk_seal_record(p->srv.s, 5, 1, msg, sizeof msg, rec, cap, n),
            MK_OK);
        return p->c.s;
    case REC_ERROR_S2C:
        assert_int_equal(mk_seal_error(p->srv.s, 5, MK_ECODE_APPLICATION,
                                       "nope", 4, rec, cap, n),
                         MK_OK);
        return p->c.s;
    case REC_ERROR_CONN:
        assert_int_equal(
            mk_seal_error(p->srv.s, 0, MK_ECODE_SHUTDOWN, NULL, 0, rec, cap, n),
            MK_OK);
        return p->c.s;
    case REC_CLOSE_C2S:
        assert_int_equal(mk_seal_close(p->c.s, rec, cap, n), MK_OK);
        return p->srv.s;
    case REC_CLOSE_S2C:
    default:
        assert_int_equal(mk_seal_close(p->srv.s, rec, cap, n), MK_OK);
        return p->c.s;
    }
}

/* Every bit of a record: refused with MK_ERR_BAD_RECORD_MAC (or a framing
 * error when the type or length bytes are hit, or MK_ERR_UNEXPECTED_MSG
 * when the type byte turned into a unit the receiver never accepts, which
 * the dispatch table refuses before any MAC), the handler's output buffer
 * untouched (nothing decrypted), no event, no reply, the session failed
 * with the same error it returned. The untampered record is accepted. */
static void flip_record(enum rec_kind k)
{
    uint8_t rec[256], *wire = malloc(256 + sizeof g_garbage);
    size_t n = 0, mac = 0, frame = 0, unexpected = 0;
    mk_session *rx;
    mk_event ev;
    tu_pair p;

    assert_non_null(wire);
    /* Control: the same record untampered is accepted. */
    pair_resumed(&p);
    rx = seal_kind(&p, k, rec, sizeof rec, &n);
    memset(g_out, CANARY, sizeof g_out);
    assert_int_equal(deliver(rx, rec, n, &ev), MK_OK);
    assert_int_not_equal(ev.type, MK_EV_NONE);
    tu_pair_free(&p);

    for (size_t bit = 0; bit < n * 8; bit++) {
        size_t byte = bit / 8, wl = n, m = 0;
        int r;
        if (!want_bit(bit))
            continue;
        pair_resumed(&p);
        rx = seal_kind(&p, k, rec, sizeof rec, &m);
        assert_int_equal(m, n);
        memcpy(wire, rec, n);
        flip(wire, bit);
        if (byte == 2 || byte == 3) {
            memcpy(wire + n, g_garbage, sizeof g_garbage);
            wl += sizeof g_garbage;
        }
        memset(g_out, CANARY, sizeof g_out);
        r = deliver(rx, wire, wl, &ev);

        assert_int_equal(ev.type, MK_EV_NONE);
        assert_int_equal(ev.len, 0);
        assert_true(out_untouched());
        assert_int_equal(p.c2s.len, 0);
        assert_int_equal(p.s2c.len, 0);
        if (byte == 0 && is_frame_err(r)) {
            frame++;
        } else if (byte == 0 && r == MK_ERR_UNEXPECTED_MSG) {
            /* Only a type the receiver has no row for. */
            assert_true(wire[0] == MK_UNIT_ERROR && rx == p.srv.s);
            assert_int_equal(mk_session_error(rx), r);
            unexpected++;
        } else if ((byte == 2 || byte == 3) && r == MK_ERR_BAD_LENGTH) {
            frame++;
        } else {
            assert_int_equal(r, MK_ERR_BAD_RECORD_MAC);
            assert_int_equal(mk_session_error(rx), MK_ERR_BAD_RECORD_MAC);
            mac++;
        }
        tu_pair_free(&p);
    }
    print_message("%s: %zu bits: %zu bad-mac, %zu framing, %zu unexpected\n",
                  rec_names[k], n * 8, mac, frame, unexpected);
    free(wire);
}

static void test_flip_data_c2s(void **st)
{
    (void)st;
    flip_record(REC_DATA_C2S);
    flip_record(REC_DATA_C2S_PART);
}

static void test_flip_data_s2c(void **st)
{
    (void)st;
    flip_record(REC_DATA_S2C);
}

static void test_flip_error_s2c(void **st)
{
    (void)st;
    flip_record(REC_ERROR_S2C);
    flip_record(REC_ERROR_CONN);
}

static void test_flip_close(void **st)
{
    (void)st;
    flip_record(REC_CLOSE_C2S);
    flip_record(REC_CLOSE_S2C);
}

/* ---------------------------------------------------------------------- */
/* 3. Replay, reorder, drop, reflect, cross-session, truncate              */

/* Two requests from the client, sealed but not sent. */
static void two_requests(tu_pair *p, tu_buf *r1, tu_buf *r2)
{
    uint8_t rec[256];
    size_t n = 0;
    assert_int_equal(mk_seal_message(p->c.s, 1, (const uint8_t *)"one", 3, rec,
                                     sizeof rec, &n),
                     MK_OK);
    tu_buf_put(r1, rec, n);
    assert_int_equal(mk_seal_message(p->c.s, 2, (const uint8_t *)"two", 3, rec,
                                     sizeof rec, &n),
                     MK_OK);
    tu_buf_put(r2, rec, n);
}

static void expect_bad_mac(tu_pair *p, tu_side *side, size_t delivered)
{
    assert_int_equal(side->err, MK_ERR_BAD_RECORD_MAC);
    assert_int_equal(mk_session_error(side->s), MK_ERR_BAD_RECORD_MAC);
    assert_int_equal(side->nmsgs, delivered);
    (void)p;
}

static void test_replay_reorder_drop(void **st)
{
    tu_buf r1 = {0}, r2 = {0};
    tu_pair p;
    (void)st;

    /* Replay: r1 twice. The first counts, the copy is refused. */
    pair_resumed(&p);
    two_requests(&p, &r1, &r2);
    tu_buf_put(&p.c2s, r1.p, r1.len);
    tu_buf_put(&p.c2s, r1.p, r1.len);
    tu_buf_put(&p.c2s, r2.p, r2.len);
    tu_feed(&p, &p.srv, &p.c2s, &p.s2c);
    expect_bad_mac(&p, &p.srv, 1);
    assert_true(tu_find_msg(&p.srv, 1)->complete);
    assert_null(tu_find_msg(&p.srv, 2));
    tu_pair_free(&p);
    tu_buf_free(&r1);
    tu_buf_free(&r2);

    /* Reorder: r2 before r1. Refused at the first out-of-place record. */
    pair_resumed(&p);
    two_requests(&p, &r1, &r2);
    tu_buf_put(&p.c2s, r2.p, r2.len);
    tu_buf_put(&p.c2s, r1.p, r1.len);
    tu_feed(&p, &p.srv, &p.c2s, &p.s2c);
    expect_bad_mac(&p, &p.srv, 0);
    tu_pair_free(&p);
    tu_buf_free(&r1);
    tu_buf_free(&r2);

    /* Drop: r1 never arrives. */
    pair_resumed(&p);
    two_requests(&p, &r1, &r2);
    tu_buf_put(&p.c2s, r2.p, r2.len);
    tu_feed(&p, &p.srv, &p.c2s, &p.s2c);
    expect_bad_mac(&p, &p.srv, 0);
    tu_pair_free(&p);
    tu_buf_free(&r1);
    tu_buf_free(&r2);

    /* The same three on the server-to-client direction. */
    for (int mode = 0; mode < 3; mode++) {
        uint8_t a[256], b[256];
        size_t na = 0, nb = 0;
        pair_resumed(&p);
        two_requests(&p, &r1, &r2);
        tu_buf_put(&p.c2s, r1.p, r1.len);
        tu_buf_put(&p.c2s, r2.p, r2.len);
        assert_int_equal(tu_pump(&p), 0);
        assert_int_equal(mk_seal_message(p.srv.s, 1, (const uint8_t *)"A", 1, a,
                                         sizeof a, &na),
                         MK_OK);
        assert_int_equal(mk_seal_message(p.srv.s, 2, (const uint8_t *)"B", 1, b,
                                         sizeof b, &nb),
                         MK_OK);
        if (mode == 0) { /* replay */
            tu_buf_put(&p.s2c, a, na);
            tu_buf_put(&p.s2c, a, na);
        } else if (mode == 1) { /* reorder */
            tu_buf_put(&p.s2c, b, nb);
            tu_buf_put(&p.s2c, a, na);
        } else { /* drop */
            tu_buf_put(&p.s2c, b, nb);
        }
        tu_feed(&p, &p.c, &p.s2c, &p.c2s);
        expect_bad_mac(&p, &p.c, mode == 0 ? 1 : 0);
        tu_pair_free(&p);
        tu_buf_free(&r1);
        tu_buf_free(&r2);
    }
}

/* A record sent back to its own sender never verifies: each direction has
 * its own keys. Client DATA and CLOSE to the client, server DATA and CLOSE
 * to the server, at matching sequence numbers. */
static void test_reflection(void **st)
{
    uint8_t rec[256];
    size_t n = 0;
    tu_pair p;
    (void)st;

    /* Client request reflected to the client, which has it in flight: were
     * it accepted it would read as the response. */
    pair_resumed(&p);
    assert_int_equal(mk_seal_message(p.c.s, 1, (const uint8_t *)"hi", 2, rec,
                                     sizeof rec, &n),
                     MK_OK);
    tu_buf_put(&p.s2c, rec, n);
    tu_feed(&p, &p.c, &p.s2c, &p.c2s);
    expect_bad_mac(&p, &p.c, 0);
    tu_pair_free(&p);

    /* Server response reflected to the server, which has request 1. */
    pair_resumed(&p);
    assert_int_equal(tu_send(&p, &p.c, 1, (const uint8_t *)"hi", 2), MK_OK);
    assert_int_equal(tu_pump(&p), 0);
    assert_int_equal(mk_seal_message(p.srv.s, 1, (const uint8_t *)"yo", 2, rec,
                                     sizeof rec, &n),
                     MK_OK);
    tu_buf_put(&p.c2s, rec, n);
    tu_feed(&p, &p.srv, &p.c2s, &p.s2c);
    expect_bad_mac(&p, &p.srv, 1);
    tu_pair_free(&p);

    /* CLOSE reflected both ways. */
    pair_resumed(&p);
    assert_int_equal(mk_seal_close(p.c.s, rec, sizeof rec, &n), MK_OK);
    tu_buf_put(&p.s2c, rec, n);
    tu_feed(&p, &p.c, &p.s2c, &p.c2s);
    expect_bad_mac(&p, &p.c, 0);
    assert_false(p.c.closed);
    tu_pair_free(&p);
    pair_resumed(&p);
    assert_int_equal(mk_seal_close(p.srv.s, rec, sizeof rec, &n), MK_OK);
    tu_buf_put(&p.c2s, rec, n);
    tu_feed(&p, &p.srv, &p.c2s, &p.s2c);
    expect_bad_mac(&p, &p.srv, 0);
    assert_false(p.srv.closed);
    tu_pair_free(&p);
}

/* A record from one session, injected into another that resumed the very
 * same ticket, at the same sequence number and request id: the server's
 * fresh random and share make the keys differ, so it is refused. */
static void test_cross_session(void **st)
{
    uint8_t rec[256];
    size_t n = 0;
    tu_pair a, b;
    (void)st;

    pair_resumed(&a);
    pair_resumed(&b);
    assert_int_equal(
        mk_seal_message(a.c.s, 1, (const uint8_t *)"x", 1, rec, sizeof rec, &n),
        MK_OK);
    tu_buf_put(&b.c2s, rec, n);
    tu_feed(&b, &b.srv, &b.c2s, &b.s2c);
    expect_bad_mac(&b, &b.srv, 0);
    tu_pair_free(&a);
    tu_pair_free(&b);
}

/* Replay a whole recorded client conversation (hello plus request) to a
 * fresh server: the handshake may complete again (tickets are bearer
 * tokens, and a full hello is just a hello), but the server contributes a
 * new random and share, so the recorded request fails its MAC and is never
 * delivered, let alone executed twice. */
static void replay_conversation(const uint8_t *blob, size_t blob_len)
{
    tu_buf rec = {0};
    tu_pair p, q;
    mk_session *s = NULL;
    tu_msg *m;

    pair_new(&p, g_sc, g_cc, blob, blob_len);
    pair_hello(&p);
    tu_buf_put(&rec, p.c2s.p, p.c2s.len);
    assert_int_equal(tu_pump(&p), 0);
    assert_true(p.c.established);
    assert_int_equal(tu_send(&p, &p.c, 1, (const uint8_t *)"pay 100", 7),
                     MK_OK);
    tu_buf_put(&rec, p.c2s.p, p.c2s.len);
    assert_int_equal(tu_pump(&p), 0);
    m = tu_find_msg(&p.srv, 1);
    assert_true(m != NULL && m->complete);
    tu_pair_free(&p);

    /* The attacker replays the recording against a new server session.
     * Nobody answers the server, so the "client" side is a dead session. */
    assert_int_equal(mk_session_new_server(&s, g_sc), MK_OK);
    tu_pair_init(&q, NULL, s);
    tu_buf_put(&q.c2s, rec.p, rec.len);
    tu_feed(&q, &q.srv, &q.c2s, &q.s2c);
    assert_true(q.srv.established);
    expect_bad_mac(&q, &q.srv, 0);
    assert_null(tu_find_msg(&q.srv, 1));
    tu_pair_free(&q);
    tu_buf_free(&rec);
}

static void test_replay_conversation(void **st)
{
    (void)st;
    replay_conversation(g_blob, g_blob_len); /* resumed */
    replay_conversation(NULL, 0);            /* full */
}

/* A response cut at any byte, record boundaries included, never completes
 * the message: completion needs the final record. EOF without CLOSE stays
 * detectable: the session is still ESTABLISHED and no close event came. */
static void test_truncation(void **st)
{
    enum { LEN = 40000 };
    uint8_t *msg = malloc(LEN);
    size_t bounds[8], nb = 0, total, off = 0, ul;
    tu_buf resp = {0};
    tu_pair p;
    (void)st;

    assert_non_null(msg);
    tu_pattern(msg, LEN, 77);
    pair_resumed(&p);
    assert_int_equal(tu_send(&p, &p.c, 1, (const uint8_t *)"get", 3), MK_OK);
    assert_int_equal(tu_pump(&p), 0);
    assert_int_equal(tu_send(&p, &p.srv, 1, msg, LEN), MK_OK);
    /* Take the response off the wire and find its record boundaries. */
    tu_buf_put(&resp, p.s2c.p, p.s2c.len);
    tu_buf_drop(&p.s2c, p.s2c.len);
    total = resp.len;
    while (off < total) {
        assert_int_equal(mk_frame_check(resp.p + off, total - off, &ul), MK_OK);
        off += ul;
        bounds[nb++] = off;
    }
    assert_int_equal(nb, 3);

    /* Byte by byte: after every prefix, incomplete until the very end. */
    for (size_t i = 0; i < total; i++) {
        tu_msg *m;
        int at_bound = 0;
        tu_buf_put(&p.s2c, resp.p + i, 1);
        tu_feed(&p, &p.c, &p.s2c, &p.c2s);
        assert_int_equal(p.c.err, 0);
        m = tu_find_msg(&p.c, 1);
        for (size_t b = 0; b < nb; b++)
            at_bound |= bounds[b] == i + 1;
        if (i + 1 < total) {
            assert_true(m == NULL || !m->complete);
            if (at_bound) {
                /* Cut here, the client sees an ESTABLISHED session, no
                 * close event, and an incomplete message. */
                assert_int_equal(mk_session_state(p.c.s), MK_STATE_ESTABLISHED);
                assert_false(p.c.closed);
                assert_true(m != NULL);
                assert_int_equal(m->data.len,
                                 (size_t)(bounds[0] == i + 1 ? 16384 : 32768));
            }
        } else {
            assert_true(m != NULL && m->complete);
            assert_int_equal(m->data.len, LEN);
            assert_memory_equal(m->data.p, msg, LEN);
        }
    }
    /* The message is whole, but the stream ends without CLOSE: still
     * detectable. */
    assert_int_equal(mk_session_state(p.c.s), MK_STATE_ESTABLISHED);
    assert_false(p.c.closed);

    /* A CLOSE cut short does not count either; whole, it is reported, and
     * the session is CLOSED once both sides have closed. */
    {
        uint8_t rec[128], mine[128];
        size_t n = 0, m = 0;
        assert_int_equal(mk_seal_close(p.srv.s, rec, sizeof rec, &n), MK_OK);
        tu_buf_put(&p.s2c, rec, n - 1);
        tu_feed(&p, &p.c, &p.s2c, &p.c2s);
        assert_false(p.c.closed);
        assert_int_equal(mk_session_state(p.c.s), MK_STATE_ESTABLISHED);
        tu_buf_put(&p.s2c, rec + n - 1, 1);
        tu_feed(&p, &p.c, &p.s2c, &p.c2s);
        assert_true(p.c.closed);
        assert_int_equal(mk_seal_close(p.c.s, mine, sizeof mine, &m), MK_OK);
        assert_int_equal(mk_session_state(p.c.s), MK_STATE_CLOSED);
    }
    tu_pair_free(&p);
    tu_buf_free(&resp);
    free(msg);
}

/* ---------------------------------------------------------------------- */
/* 4. Keys: pinning, impersonation, unknown key-share                      */

/* The client pins other2048; the server holds server2048 only. */
static void test_pin_mismatch(void **st)
{
    mk_client_config *cc = client_cfg(&env.env, "other2048.pub.pem", NULL);
    tu_pair p;
    (void)st;

    pair_new(&p, g_sc, cc, NULL, 0);
    assert_int_equal(tu_connect(&p), MK_ERR_PIN);
    assert_int_equal(p.c.err, MK_ERR_PIN);
    assert_int_equal(mk_session_error(p.c.s), MK_ERR_PIN);
    assert_false(p.srv.established);
    assert_int_equal(p.srv.units, 1); /* one hello, answered with a retry */
    assert_int_equal(p.c2s.len, 0);   /* and no second hello */
    tu_pair_free(&p);
    mk_client_config_unref(cc);
}

/* A man in the middle holding other2048 answers a client that pins
 * server2048: it cannot decrypt the hello, its retry names only its own
 * key, and the client refuses. */
static void test_mitm_other_key(void **st)
{
    mk_server_config *mitm = server_cfg(&env.env, "other2048.pem", NULL, 0);
    tu_buf ch = {0}, reply = {0};
    mk_retry rt;
    uint8_t other_id[MK_KEY_ID_LEN];
    tu_pair p;
    (void)st;

    key_id_of("other2048.pem", other_id);
    pair_new(&p, mitm, g_cc, NULL, 0);
    capture(&p, &ch, &reply);
    assert_int_equal(mk__retry_parse(reply.p, reply.len, &rt), MK_OK);
    assert_int_equal(rt.reason, MK_RETRY_KEY_ID);
    assert_int_equal(rt.nkeys, 1);
    assert_memory_equal(rt.key_ids[0], other_id, MK_KEY_ID_LEN);
    assert_int_equal(tu_pump(&p), MK_ERR_PIN);
    assert_int_equal(p.c.err, MK_ERR_PIN);
    assert_false(p.srv.established);
    tu_pair_free(&p);
    tu_buf_free(&ch);
    tu_buf_free(&reply);
    mk_server_config_unref(mitm);
}

/* Unknown key-share: the man in the middle rewrites the client's hello to
 * name its own key (other2048) with a key transport it made itself, keeps
 * the client's random and share, and has its own server answer. That
 * server completes the handshake, but the client, which pins server2048
 * and holds its own root secret, refuses the SERVER_HELLO. */
static void test_mitm_unknown_key_share(void **st)
{
    mk_server_config *mitm = server_cfg(&env.env, "other2048.pem", NULL, 0);
    uint8_t other_id[MK_KEY_ID_LEN], secret[32], seed[32], kem[256];
    uint8_t forged[MK_UNIT_MAX];
    size_t kem_len = 0, flen = 0, len;
    mkc_rsa *other_pub = NULL;
    uint8_t *pem;
    mk_ch ch;
    tu_pair p;
    (void)st;

    key_id_of("other2048.pem", other_id);
    pem = tl_load(KEYDIR "other2048.pub.pem", &len);
    assert_int_equal(mkc_rsa_load_public(pem, len, &other_pub), MK_OK);
    free(pem);
    memset(secret, 0x5E, sizeof secret);
    memset(seed, 0x5F, sizeof seed);
    assert_int_equal(mkc_oaep_encrypt(other_pub, oaep_label, OAEP_LABEL_LEN,
                                      secret, sizeof secret, seed, kem,
                                      sizeof kem, &kem_len),
                     MK_OK);

    pair_new(&p, mitm, g_cc, NULL, 0);
    pair_hello(&p);
    assert_int_equal(mk__ch_parse(p.c2s.p, p.c2s.len, &ch), MK_OK);
    memcpy(ch.key_id, other_id, MK_KEY_ID_LEN);
    ch.kem = kem;
    ch.kem_len = kem_len;
    assert_int_equal(mk__ch_write(&ch, forged, sizeof forged, &flen), MK_OK);
    tu_buf_drop(&p.c2s, p.c2s.len);
    tu_buf_put(&p.c2s, forged, flen);
    (void)tu_pump(&p);
    assert_true(p.srv.established);
    assert_false(p.c.established);
    assert_int_equal(p.c.err, MK_ERR_SERVER_AUTH);
    tu_pair_free(&p);
    mkc_rsa_free(other_pub);
    mk_server_config_unref(mitm);
}

/* ---------------------------------------------------------------------- */
/* 5. Tickets: forged, expired, unknown key, rotation                      */

static void expect_fallback(tu_pair *p)
{
    mk_session_info ci, si;
    assert_int_equal(tu_connect(p), 0);
    assert_true(p->c.established && p->srv.established);
    mk_session_get_info(p->c.s, &ci);
    mk_session_get_info(p->srv.s, &si);
    assert_false(ci.resumed);
    assert_false(si.resumed);
    assert_int_equal(p->srv.units, 2); /* resuming hello, then full hello */
    roundtrip_ok(p, 9);
}

static void expect_resumed(tu_pair *p)
{
    mk_session_info ci, si;
    assert_int_equal(tu_connect(p), 0);
    mk_session_get_info(p->c.s, &ci);
    mk_session_get_info(p->srv.s, &si);
    assert_true(ci.resumed);
    assert_true(si.resumed);
    assert_int_equal(p->srv.units, 1);
    roundtrip_ok(p, 9);
}

/* A ticket altered anywhere (key name, IV, ciphertext, tag) in the stored
 * session: the client still offers it, the server cannot use it, and the
 * client falls back to a full handshake without an error. */
static void test_ticket_forged(void **st)
{
    static const size_t where[] = {0, 15, 16, 31, 32, 50, 95, 96, 127};
    uint8_t blob[MK_SESSION_BLOB_MAX];
    tu_pair p;
    (void)st;

    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        for (unsigned b = 0; b < 8; b += 7) {
            memcpy(blob, g_blob, g_blob_len);
            flip(blob + BLOB_TICKET_OFF + where[i], b);
            pair_new(&p, g_sc, g_cc, blob, g_blob_len);
            expect_fallback(&p);
            tu_pair_free(&p);
        }
    }
    /* A wrong resumption secret with an intact ticket: the binder fails,
     * and that is an error (the ticket was good; the client is not). */
    memcpy(blob, g_blob, g_blob_len);
    flip(blob + BLOB_SECRET_OFF, 0);
    pair_new(&p, g_sc, g_cc, blob, g_blob_len);
    assert_int_not_equal(tu_connect(&p), 0);
    assert_int_equal(p.srv.err, MK_ERR_BAD_BINDER);
    assert_int_equal(p.c.err, MK_ERR_PEER_HS_FAILED);
    tu_pair_free(&p);
}

/* Expiry is judged by the server's clock. The client's clock stays put (so
 * it still offers the ticket) while the server's moves. */
static void test_ticket_expired(void **st)
{
    tu_env ce, se;
    mk_ticket_key tk;
    mk_server_config *sc;
    mk_client_config *cc;
    uint8_t blob[MK_SESSION_BLOB_MAX];
    size_t blen = 0;
    const uint64_t life = (uint64_t)MK_TICKET_LIFETIME_DEFAULT * 1000u;
    const uint64_t t0 = 1764000000000ull;
    tu_pair p;
    (void)st;

    tu_env_init(&ce, "attacks-expiry-client");
    tu_env_init(&se, "attacks-expiry-server");
    ticket_key(&tk, "expiry-test-key!", 0x21);
    sc = server_cfg(&se.env, "server2048.pem", &tk, 1);
    cc = client_cfg(&ce.env, "server2048.pub.pem", NULL);
    pair_new(&p, sc, cc, NULL, 0);
    assert_int_equal(tu_connect(&p), 0);
    assert_int_equal(mk_session_export(p.c.s, blob, sizeof blob, &blen), MK_OK);
    tu_pair_free(&p);

    /* One millisecond before the end of its lifetime: resumes. */
    se.now_ms = t0 + life - 1;
    pair_new(&p, sc, cc, blob, blen);
    expect_resumed(&p);
    tu_pair_free(&p);
    /* At the end of its lifetime, and long after: full handshake. */
    se.now_ms = t0 + life;
    pair_new(&p, sc, cc, blob, blen);
    expect_fallback(&p);
    tu_pair_free(&p);
    se.now_ms = t0 + 100 * life;
    pair_new(&p, sc, cc, blob, blen);
    expect_fallback(&p);
    tu_pair_free(&p);
    /* Issued in the future beyond the allowed skew (server clock behind by
     * more than five minutes): refused; within the skew: accepted. */
    se.now_ms = t0 - 5 * 60 * 1000 - 1;
    pair_new(&p, sc, cc, blob, blen);
    expect_fallback(&p);
    tu_pair_free(&p);
    se.now_ms = t0 - 5 * 60 * 1000;
    pair_new(&p, sc, cc, blob, blen);
    expect_resumed(&p);
    tu_pair_free(&p);

    /* With one clock for both, the client itself sees the expiry and does
     * not offer the ticket: a single full hello. */
    se.now_ms = t0 + life;
    ce.now_ms = t0 + life;
    pair_new(&p, sc, cc, blob, blen);
    assert_int_equal(tu_connect(&p), 0);
    assert_int_equal(p.srv.units, 1);
    {
        mk_session_info ci;
        mk_session_get_info(p.c.s, &ci);
        assert_false(ci.resumed);
    }
    tu_pair_free(&p);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* A server with other ticket keys (another name; or the same name with
 * another secret) cannot use the ticket: full handshake. A server that
 * rotated keys but still accepts the old one resumes, and issues the next
 * ticket under its new key. */
static void test_ticket_unknown_key(void **st)
{
    mk_ticket_key tks[2];
    mk_server_config *sc;
    uint8_t blob[MK_SESSION_BLOB_MAX];
    size_t blen = 0;
    tu_pair p;
    (void)st;

    ticket_key(&tks[0], "another-key-name", 0x42);
    sc = server_cfg(&env.env, "server2048.pem", tks, 1);
    pair_new(&p, sc, g_cc, g_blob, g_blob_len);
    expect_fallback(&p);
    tu_pair_free(&p);
    mk_server_config_unref(sc);

    ticket_key(&tks[0], "test-ticket-key1", 0x43); /* fixture name */
    sc = server_cfg(&env.env, "server2048.pem", tks, 1);
    pair_new(&p, sc, g_cc, g_blob, g_blob_len);
    expect_fallback(&p);
    tu_pair_free(&p);
    mk_server_config_unref(sc);

    /* Rotation: [new, old]. */
    ticket_key(&tks[0], "rotated-new-key!", 0x44);
    ticket_key(&tks[1], "test-ticket-key1", 0x42); /* the fixture's key */
    sc = server_cfg(&env.env, "server2048.pem", tks, 2);
    pair_new(&p, sc, g_cc, g_blob, g_blob_len);
    expect_resumed(&p);
    assert_int_equal(mk_session_export(p.c.s, blob, sizeof blob, &blen), MK_OK);
    assert_memory_equal(blob + BLOB_TICKET_OFF, "rotated-new-key!", 16);
    tu_pair_free(&p);
    mk_server_config_unref(sc);
    /* The old key retired: the old ticket falls back, the new resumes. */
    sc = server_cfg(&env.env, "server2048.pem", tks, 1);
    pair_new(&p, sc, g_cc, g_blob, g_blob_len);
    expect_fallback(&p);
    tu_pair_free(&p);
    pair_new(&p, sc, g_cc, blob, blen);
    expect_resumed(&p);
    tu_pair_free(&p);
    mk_server_config_unref(sc);
}

/* The session's blob after a handshake (a new ticket every time). */
static void export_blob(tu_pair *p, uint8_t *blob, size_t *len)
{
    assert_int_equal(mk_session_export(p->c.s, blob, MK_SESSION_BLOB_MAX, len),
                     MK_OK);
}

/* The lifetime the blob stores for its ticket (§10): after "MKS2", the key
 * id and the receive time. */
static uint32_t blob_lifetime(const uint8_t *blob)
{
    return mk_get_u32(blob + 4 + MK_KEY_ID_LEN + 8);
}

/* When the client received the blob's ticket, by its own clock (§10). */
static uint64_t blob_received(const uint8_t *blob)
{
    const uint8_t *p = blob + 4 + MK_KEY_ID_LEN;
    return (uint64_t)mk_get_u32(p) << 32 | mk_get_u32(p + 4);
}

static int resumed(const mk_session *s)
{
    mk_session_info info;
    mk_session_get_info(s, &info);
    return info.resumed;
}

/* A stolen session cannot be renewed for ever: every resumption carries
 * the time of the full handshake forward, and once session_max_age has
 * passed since then the server refuses the ticket however fresh it is.
 * The clocks are the injected ones of both sides. */
static void test_session_max_age(void **st)
{
    const uint64_t t0 = 1764000000000ull, hour = 3600u * 1000u;
    uint8_t blob[MK_SESSION_BLOB_MAX], at40[MK_SESSION_BLOB_MAX];
    uint8_t at160[MK_SESSION_BLOB_MAX];
    size_t blen = 0, len40 = 0, len160 = 0;
    mk_server_config *sc, *sc_short;
    mk_client_config *cc;
    mk_ticket_key tk;
    tu_env ce, se;
    tu_pair p;
    (void)st;

    tu_env_init(&ce, "attacks-max-age-client");
    tu_env_init(&se, "attacks-max-age-server");
    ticket_key(&tk, "max-age-test-key", 0x31);
    sc = server_cfg(&se.env, "server2048.pem", &tk, 1);
    cc = client_cfg(&ce.env, "server2048.pub.pem", NULL);
    pair_new(&p, sc, cc, NULL, 0);
    assert_int_equal(tu_connect(&p), 0);
    export_blob(&p, blob, &blen);
    tu_pair_free(&p);

    /* Resumed every 20 hours, each time well within the ticket's 24: the
     * session renews until its 7 days (168 h) are nearly up. The ticket
     * issued at 160 h lives only the 8 hours the session has left. */
    for (uint64_t k = 1; k <= 8; k++) {
        se.now_ms = ce.now_ms = t0 + k * 20 * hour;
        pair_new(&p, sc, cc, blob, blen);
        expect_resumed(&p);
        export_blob(&p, blob, &blen);
        tu_pair_free(&p);
        assert_int_equal(blob_lifetime(blob),
                         k < 8 ? MK_TICKET_LIFETIME_DEFAULT : 8 * 3600);
        if (k == 2) {
            memcpy(at40, blob, blen);
            len40 = blen;
        }
    }
    memcpy(at160, blob, blen);
    len160 = blen;

    /* A client whose clock lags still offers that ticket: the server
     * resumes up to the last millisecond of the 168 hours, then falls back
     * to a full handshake. */
    ce.now_ms = t0 + 160 * hour;
    se.now_ms = t0 + 168 * hour - 1;
    pair_new(&p, sc, cc, at160, len160);
    expect_resumed(&p);
    tu_pair_free(&p);
    se.now_ms = t0 + 168 * hour;
    pair_new(&p, sc, cc, at160, len160);
    expect_fallback(&p);
    tu_pair_free(&p);

    /* With one clock, the client sees its ticket expire and does a full
     * handshake at once; that starts a new session, which resumes. */
    se.now_ms = ce.now_ms = t0 + 180 * hour;
    pair_new(&p, sc, cc, at160, len160);
    assert_int_equal(tu_connect(&p), 0);
    assert_int_equal(p.srv.units, 1);
    assert_true(p.c.established);
    export_blob(&p, blob, &blen);
    tu_pair_free(&p);
    se.now_ms = ce.now_ms = t0 + 190 * hour;
    pair_new(&p, sc, cc, blob, blen);
    expect_resumed(&p);
    tu_pair_free(&p);

    /* A server whose session_max_age was shortened to two days refuses a
     * session older than that, although its ticket (issued at 40 h for 24
     * h) is still valid. */
    sc_short = server_cfg(&se.env, "server2048.pem", &tk, 1);
    assert_int_equal(mk_server_config_set_session_max_age(sc_short, 59),
                     MK_ERR_USAGE);
    assert_int_equal(mk_server_config_set_session_max_age(
                         sc_short, MK_SESSION_MAX_AGE_LIMIT + 1),
                     MK_ERR_USAGE);
    assert_int_equal(mk_server_config_set_session_max_age(sc_short, 2 * 86400),
                     MK_OK);
    se.now_ms = ce.now_ms = t0 + 48 * hour - 1;
    pair_new(&p, sc_short, cc, at40, len40);
    expect_resumed(&p);
    tu_pair_free(&p);
    se.now_ms = ce.now_ms = t0 + 48 * hour;
    pair_new(&p, sc_short, cc, at40, len40);
    expect_fallback(&p);
    tu_pair_free(&p);

    mk_server_config_unref(sc_short);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* A ticket whose server key the server no longer holds is refused (the
 * retired key's sessions end with it), and the client falls back to a
 * full handshake with the key the server now has. */
static void test_ticket_server_key_removed(void **st)
{
    mk_client_config *cc =
        client_cfg(&env.env, "server2048.pub.pem", "other2048.pub.pem");
    mk_server_config *sc;
    mk_ticket_key tk;
    mk_session_info ci;
    uint8_t other[MK_KEY_ID_LEN];
    tu_pair p;
    (void)st;

    /* The fixture's ticket key, under both server keys: resumes. */
    ticket_key(&tk, "test-ticket-key1", 0x42);
    sc = server_cfg(&env.env, "other2048.pem", &tk, 1);
    assert_int_equal(
        mk_server_config_add_key(sc, tu_server_key("server2048.pem")), MK_OK);
    pair_new(&p, sc, cc, g_blob, g_blob_len);
    expect_resumed(&p);
    tu_pair_free(&p);
    mk_server_config_unref(sc);

    /* server2048 retired: the same ticket key, but the session's key is
     * gone. */
    sc = server_cfg(&env.env, "other2048.pem", &tk, 1);
    pair_new(&p, sc, cc, g_blob, g_blob_len);
    expect_fallback(&p);
    mk_session_get_info(p.c.s, &ci);
    key_id_of("other2048.pem", other);
    assert_memory_equal(ci.key_id, other, MK_KEY_ID_LEN);
    tu_pair_free(&p);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* A shorter ticket lifetime applies to tickets already out: the fixture's
 * ticket (24 h) is refused after an hour by a server now configured for
 * one. */
static void test_ticket_lifetime_shortened(void **st)
{
    const uint64_t t0 = env.now_ms;
    mk_server_config *sc = tu_server_config(&env, "server2048.pem", 1);
    tu_pair p;
    (void)st;

    assert_int_equal(mk_server_config_set_limits(sc, MK_MESSAGE_MAX_DEFAULT,
                                                 MK_INFLIGHT_DEFAULT, 3600),
                     MK_OK);
    env.now_ms = t0 + 3600 * 1000 - 1;
    pair_new(&p, sc, g_cc, g_blob, g_blob_len);
    expect_resumed(&p);
    tu_pair_free(&p);
    env.now_ms = t0 + 3600 * 1000;
    pair_new(&p, sc, g_cc, g_blob, g_blob_len);
    expect_fallback(&p);
    tu_pair_free(&p);
    env.now_ms = t0;
    mk_server_config_unref(sc);
}

/* A ticket of the v2.0 format (state version 2: no authentication time),
 * sealed under a ticket key the server holds, is unusable: full
 * handshake. */
static void test_ticket_old_format(void **st)
{
    uint8_t secret[MK_SECRET_LEN], enc[MK_SECRET_LEN], mac[MK_SECRET_LEN];
    uint8_t state[54], blob[MK_SESSION_BLOB_MAX];
    uint8_t *t = blob + BLOB_TICKET_OFF;
    size_t ct_len = 0;
    mkc_iov iov;
    tu_pair p;
    mk_wr w;
    (void)st;

    memset(secret, 0x42, sizeof secret); /* the fixture's ticket key */
    assert_int_equal(mk__expand_label(secret, "ticket enc", NULL, 0, enc, 32),
                     MK_OK);
    assert_int_equal(mk__expand_label(secret, "ticket mac", NULL, 0, mac, 32),
                     MK_OK);
    memcpy(blob, g_blob, g_blob_len);
    mk_wr_init(&w, state, sizeof state);
    mk_wr_u8(&w, 2);
    mk_wr_u8(&w, 0);
    mk_wr_bytes(&w, blob + 4, MK_KEY_ID_LEN);
    mk_wr_u64(&w, env.now_ms);
    mk_wr_u32(&w, MK_TICKET_LIFETIME_DEFAULT);
    mk_wr_bytes(&w, blob + BLOB_SECRET_OFF, MK_SECRET_LEN);
    assert_false(w.bad);
    assert_int_equal(mk_wr_len(&w), sizeof state);
    /* Same name, fresh IV, the old state, a good tag: 128 bytes, as the
     * blob's ticket. */
    t[16] ^= 0x55;
    assert_int_equal(
        mkc_cbc_encrypt(enc, t + 16, state, sizeof state, t + 32, 64, &ct_len),
        MK_OK);
    assert_int_equal(ct_len, 64);
    iov.p = t;
    iov.len = 32 + ct_len;
    assert_int_equal(mkc_hmac_sha256(mac, 32, &iov, 1, t + 32 + ct_len), MK_OK);
    pair_new(&p, g_sc, g_cc, blob, g_blob_len);
    expect_fallback(&p);
    tu_pair_free(&p);
}

/* The ticket field of a resuming hello is 1..256 bytes (§4.1): outside
 * that the hello is malformed (ALERT bad_message); inside it, a ticket the
 * server cannot use is answered with HELLO_RETRY reason 1 (§7). */
static void test_ticket_length(void **st)
{
    static const size_t lens[] = {0, 1, 79, 256, 257, 400};
    uint8_t ticket[400], unit[MK_UNIT_MAX];
    (void)st;

    memset(ticket, 0x3C, sizeof ticket);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        int malformed = lens[i] == 0 || lens[i] > 256;
        mk_session *srv = NULL;
        size_t n = 0;
        mk_alert_msg a;
        mk_retry rt;
        mk_event ev;
        mk_ch ch;

        memset(&ch, 0, sizeof ch);
        ch.mode = MK_MODE_RESUME;
        ch.ticket = ticket;
        ch.ticket_len = lens[i];
        assert_int_equal(mk__ch_write(&ch, unit, sizeof unit, &n), MK_OK);
        assert_int_equal(mk_session_new_server(&srv, g_sc), MK_OK);
        assert_int_equal(
            mk_session_handle(srv, unit, n, g_out, sizeof g_out, &ev),
            malformed ? MK_ERR_BAD_MESSAGE : MK_OK);
        assert_int_equal(ev.type, MK_EV_SEND);
        if (malformed) {
            assert_int_equal(mk__alert_parse(g_out, ev.len, &a), MK_OK);
            assert_int_equal(a.code, MK_ALERT_BAD_MESSAGE);
        } else {
            assert_int_equal(mk__retry_parse(g_out, ev.len, &rt), MK_OK);
            assert_int_equal(rt.reason, MK_RETRY_TICKET);
        }
        mk_session_free(srv);
    }
}

/* What the session blob holds (§10), on the client's own clock: the time
 * its SERVER_HELLO was handled, and the key id of the session's full
 * handshake, which a resumed session keeps. The client's expiry check and
 * its 5-minute tolerance for a blob from its own future. */
static void test_session_blob_fields(void **st)
{
    const uint64_t t0 = 1764000000000ull, minute = 60u * 1000u;
    const uint64_t life = (uint64_t)MK_TICKET_LIFETIME_DEFAULT * 1000u;
    mk_client_config *cc2;
    mk_server_config *sc;
    uint8_t blob[MK_SESSION_BLOB_MAX], blob2[MK_SESSION_BLOB_MAX];
    uint8_t id2048[MK_KEY_ID_LEN];
    size_t blen = 0, blen2 = 0;
    mk_ticket_key tk;
    tu_env ce, se;
    tu_pair p;
    (void)st;

    tu_env_init(&ce, "attacks-blob-client");
    tu_env_init(&se, "attacks-blob-server");
    ticket_key(&tk, "blob-fields-key!", 0x51);
    sc = server_cfg(&se.env, "server2048.pem", &tk, 1);
    assert_int_equal(
        mk_server_config_add_key(sc, tu_server_key("other2048.pem")), MK_OK);
    cc2 = client_cfg(&ce.env, "server2048.pub.pem", "other2048.pub.pem");
    key_id_of("server2048.pem", id2048);
    /* The clocks disagree by 7 s: `received` is the client's. */
    ce.now_ms = t0 + 7000;
    pair_new(&p, sc, cc2, NULL, 0);
    assert_int_equal(tu_connect(&p), 0);
    export_blob(&p, blob, &blen);
    tu_pair_free(&p);
    assert_memory_equal(blob, "MKS2", 4);
    assert_memory_equal(blob + 4, id2048, MK_KEY_ID_LEN);
    assert_true(blob_received(blob) == t0 + 7000);
    assert_int_equal(blob_lifetime(blob), MK_TICKET_LIFETIME_DEFAULT);

    /* Resumed an hour later: a new ticket, received now, under the key id
     * of the full handshake. */
    ce.now_ms = t0 + 60 * minute;
    se.now_ms = t0 + 60 * minute;
    pair_new(&p, sc, cc2, blob, blen);
    expect_resumed(&p);
    export_blob(&p, blob2, &blen2);
    tu_pair_free(&p);
    assert_memory_equal(blob2 + 4, id2048, MK_KEY_ID_LEN);
    assert_true(blob_received(blob2) == t0 + 60 * minute);
    assert_memory_not_equal(blob2 + BLOB_TICKET_OFF, blob + BLOB_TICKET_OFF,
                            16 + 16);

    /* The client's own check, on its clock alone (the server's stays at
     * t0 so that it would accept): expired at received + lifetime; a blob
     * up to 5 minutes in the client's future is used, beyond that not. */
    se.now_ms = t0;
    {
        static const struct {
            int64_t at; /* client clock minus received */
            int offered;
        } cases[] = {
            {-5 * 60 * 1000 - 1, 0}, {-5 * 60 * 1000, 1}, {0, 1}, {-1, 1}};
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            ce.now_ms = (uint64_t)((int64_t)(t0 + 7000) + cases[i].at);
            pair_new(&p, sc, cc2, blob, blen);
            assert_int_equal(tu_connect(&p), 0);
            assert_int_equal(resumed(p.c.s), cases[i].offered);
            tu_pair_free(&p);
        }
    }
    ce.now_ms = t0 + 7000 + life - 1;
    pair_new(&p, sc, cc2, blob, blen);
    expect_resumed(&p);
    tu_pair_free(&p);
    ce.now_ms = t0 + 7000 + life;
    pair_new(&p, sc, cc2, blob, blen);
    assert_int_equal(tu_connect(&p), 0);
    assert_int_equal(p.srv.units, 1); /* not offered: one full hello */
    assert_int_equal(resumed(p.c.s), 0);
    tu_pair_free(&p);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc2);
}

/* client_time is not checked by the server (§4.1): a client without a
 * clock (0) or with a wild one completes a full handshake like any. */
static void test_client_time_ignored(void **st)
{
    static const uint64_t times[] = {0, 1, UINT64_MAX};
    tu_env ce;
    mk_client_config *cc;
    tu_pair p;
    (void)st;

    tu_env_init(&ce, "attacks-client-time");
    cc = client_cfg(&ce.env, "server2048.pub.pem", NULL);
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        mk_ch ch;
        ce.now_ms = times[i];
        pair_new(&p, g_sc, cc, NULL, 0);
        pair_hello(&p);
        assert_int_equal(mk__ch_parse(p.c2s.p, p.c2s.len, &ch), MK_OK);
        assert_true(ch.time_ms == times[i]);
        assert_int_equal(tu_pump(&p), 0);
        assert_true(p.c.established && p.srv.established);
        roundtrip_ok(&p, 5);
        tu_pair_free(&p);
    }
    mk_client_config_unref(cc);
}

/* ---------------------------------------------------------------------- */
/* 6. Declared lengths                                                     */

/* The bounds every unit type may declare, from the message layouts
 * (docs/PROTOCOL.md §3-§5): CLIENT_HELLO magic+mode+flags+random+share+
 * time+key id+u16 block with a 1-byte key transport = 89 up to the
 * largest unit; SERVER_HELLO 136 (IV and one block of extras) up to 392
 * (extras of 14 + 256 bytes, padded to 272); HELLO_RETRY 6 + 8 per key,
 * at most 16; ALERT exactly 10; records request id + IV + tag + 1..1025
 * blocks of ciphertext, an error its code and at most 1024 bytes of text
 * (1026, padded to 1040), a close exactly one block. */
static const struct {
    uint8_t type;
    unsigned min, max;
} unit_bounds[] = {
    {MK_UNIT_CLIENT_HELLO, 89, MK_UNIT_MAX_BODY},
    {MK_UNIT_SERVER_HELLO, 136, 392},
    {MK_UNIT_HELLO_RETRY, 6, 6 + 8 * 16},
    {MK_UNIT_ALERT, 10, 10},
    {MK_UNIT_DATA, 68, 52 + 16384 + 16},
    {MK_UNIT_ERROR, 68, 52 + 1040},
    {MK_UNIT_CLOSE, 68, 68},
};

/* Boundary table: with nothing but the 4-byte header in hand, an
 * impossible length is refused, and a possible one asks for exactly that
 * unit. No caller ever needs to buffer more than the header to refuse. */
static void test_length_boundaries(void **st)
{
    size_t cases = 0;
    (void)st;

    for (size_t t = 0; t < sizeof unit_bounds / sizeof unit_bounds[0]; t++) {
        const unsigned min = unit_bounds[t].min, max = unit_bounds[t].max;
        const unsigned lens[] = {0,       1,   15,  16,      17,
                                 min - 1, min, max, max + 1, 0xFFFF};
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            uint8_t h[4];
            size_t ul = 0;
            unsigned L = lens[i];
            int r;
            if (L > 0xFFFF)
                continue;
            h[0] = unit_bounds[t].type;
            h[1] = 0;
            mk_put_u16(h + 2, (uint16_t)L);
            r = mk_frame_check(h, sizeof h, &ul);
            if (L >= min && L <= max) {
                assert_int_equal(r, MK_WANT_READ);
                assert_int_equal(ul, 4 + L);
                assert_true(ul <= MK_UNIT_MAX);
            } else {
                assert_int_equal(r, MK_ERR_BAD_LENGTH);
            }
            cases++;
        }
    }
    print_message("length boundary table: %zu cases\n", cases);
}

/* Through a session: an oversized header fails the connection after four
 * bytes, before the hello and after the handshake. A unit handed over with
 * a length other than it declares is a caller error. */
static void test_length_in_session(void **st)
{
    uint8_t h[4];
    tu_pair p;
    (void)st;

    pair_new(&p, g_sc, g_cc, NULL, 0);
    h[0] = MK_UNIT_CLIENT_HELLO;
    h[1] = 0;
    mk_put_u16(h + 2, 0xFFFF);
    p.chunk = 4;
    tu_buf_put(&p.c2s, h, 4);
    tu_buf_put(&p.c2s, g_garbage, 1000);
    tu_feed(&p, &p.srv, &p.c2s, &p.s2c);
    assert_int_equal(p.srv.err, MK_ERR_BAD_LENGTH);
    assert_int_equal(p.srv.in.len, 4); /* only the header was taken in */
    tu_pair_free(&p);

    pair_resumed(&p);
    h[0] = MK_UNIT_DATA;
    mk_put_u16(h + 2, 52 + 16384 + 17);
    p.chunk = 4;
    tu_buf_put(&p.c2s, h, 4);
    tu_feed(&p, &p.srv, &p.c2s, &p.s2c);
    assert_int_equal(p.srv.err, MK_ERR_BAD_LENGTH);
    tu_pair_free(&p);

    /* mk_session_handle() re-checks the framing it is given. */
    {
        uint8_t rec[256];
        size_t n = 0;
        mk_event ev;
        pair_resumed(&p);
        assert_int_equal(mk_seal_message(p.c.s, 1, (const uint8_t *)"a", 1, rec,
                                         sizeof rec, &n),
                         MK_OK);
        assert_int_equal(
            mk_session_handle(p.srv.s, rec, n - 1, g_out, sizeof g_out, &ev),
            MK_ERR_USAGE);
        assert_int_equal(mk_session_error(p.srv.s), MK_ERR_USAGE);
        tu_pair_free(&p);
        pair_resumed(&p);
        assert_int_equal(mk_seal_message(p.c.s, 1, (const uint8_t *)"a", 1, rec,
                                         sizeof rec, &n),
                         MK_OK);
        rec[n] = 0;
        assert_int_equal(
            mk_session_handle(p.srv.s, rec, n + 1, g_out, sizeof g_out, &ev),
            MK_ERR_USAGE);
        tu_pair_free(&p);
    }
}

/* ---------------------------------------------------------------------- */
/* 7. RSA-OAEP failures are invisible until key confirmation               */

/* The modulus of a 2048-bit SubjectPublicKeyInfo: the 256 bytes after the
 * INTEGER header 02 82 01 01 00. */
static void modulus_of(const mkc_rsa *k, uint8_t n[256])
{
    uint8_t der[600];
    size_t len = 0;
    static const uint8_t hdr[] = {0x02, 0x82, 0x01, 0x01, 0x00};

    assert_int_equal(mkc_rsa_public_der(k, der, sizeof der, &len), MK_OK);
    for (size_t i = 0; i + sizeof hdr + 256 <= len; i++) {
        if (memcmp(der + i, hdr, sizeof hdr) == 0) {
            memcpy(n, der + i + sizeof hdr, 256);
            assert_true(n[0] & 0x80);
            return;
        }
    }
    fail_msg("no modulus in the public key DER");
}

/* Act as a client that built the hello itself (with the ephemeral key
 * eph) and believes root is its secret: derive what a client derives from
 * the SERVER_HELLO, report whether the server's Finished verifies, and
 * send one request. Returns what the server says to that request; out_ev
 * is its event. */
static int attacker_request(mk_session *srv, const uint8_t *ch, size_t ch_len,
                            const uint8_t *sh, size_t sh_len,
                            const mkc_x25519_key *eph, const uint8_t root[32],
                            int *finished_ok, mk_event *out_ev)
{
    uint8_t early[32], dh[32], hs[32], th[32], fkey[32];
    uint8_t fin[32], rec[256];
    mkc_hash *h = NULL;
    mk_session *c = NULL;
    mk_sh parsed;
    size_t n = 0;
    int r;

    assert_int_equal(mk__sh_parse(sh, sh_len, &parsed), MK_OK);
    assert_int_equal(mk__early_secret(root, early), MK_OK);
    assert_int_equal(mkc_x25519_derive(eph, parsed.share, dh), MK_OK);
    assert_int_equal(mk__hs_secret(early, dh, hs), MK_OK);
    assert_int_equal(mkc_hash_new(&h), MK_OK);
    assert_int_equal(mkc_hash_update(h, ch, ch_len), MK_OK);
    assert_int_equal(mkc_hash_update(h, sh, sh_len - MK_MAC_LEN), MK_OK);
    assert_int_equal(mkc_hash_peek(h, th), MK_OK);
    mkc_hash_free(h);

    /* A client session used only as a record-layer shell. */
    assert_int_equal(mk_session_new_client(&c, g_cc, NULL, 0), MK_OK);
    assert_int_equal(mk__install_keys(c, hs, th, fkey), MK_OK);
    assert_int_equal(mk__finished(fkey, th, fin), MK_OK);
    *finished_ok = memcmp(fin, parsed.finished, MK_MAC_LEN) == 0;
    c->max_message = MK_MESSAGE_MAX_DEFAULT;
    c->max_inflight = MK_INFLIGHT_DEFAULT;
    assert_int_equal(mk__establish(c), MK_OK);
    assert_int_equal(
        mk_seal_message(c, 1, (const uint8_t *)"GET /", 5, rec, sizeof rec, &n),
        MK_OK);
    mk_session_free(c);
    memset(g_out, CANARY, sizeof g_out);
    r = mk_session_handle(srv, rec, n, g_out, sizeof g_out, out_ev);
    return r;
}

/* Malformed key transports in otherwise good hellos: random bytes, the
 * modulus itself, all ones (>= n), zero, valid OAEP of 0, 31 and 33 bytes,
 * valid OAEP of 32 bytes under a wrong or empty label. For each, the
 * server's answer is a SERVER_HELLO of exactly the good one's length and
 * structure, with no alert; the failure shows only when the client's first
 * record fails the server's MAC with MK_ERR_BAD_RECORD_MAC. The good
 * hello, built the same way, passes end to end. */
static void test_oaep_uniformity(void **st)
{
    enum {
        RANDOM,
        MODULUS,
        ONES,
        ZERO,
        LEN0,
        LEN31,
        LEN33,
        LABEL,
        NOLABEL,
        GOOD,
        NCASES
    };
    static const char *const names[] = {"random bytes",     "c == n",
                                        "c = 2^2048-1",     "c = 0",
                                        "OAEP(0 bytes)",    "OAEP(31 bytes)",
                                        "OAEP(33 bytes)",   "OAEP wrong label",
                                        "OAEP empty label", "good"};
    uint8_t key_id[MK_KEY_ID_LEN], n_bytes[256], secret[40], seed[32];
    uint8_t priv[32], share[32], chbuf[MK_UNIT_MAX], good_sh[1100];
    size_t good_len = 0;
    mkc_x25519_key *eph = NULL;
    mkc_rsa *pub = NULL;
    uint8_t *pem;
    size_t len;
    (void)st;

    key_id_of("server2048.pem", key_id);
    pem = tl_load(KEYDIR "server2048.pub.pem", &len);
    assert_int_equal(mkc_rsa_load_public(pem, len, &pub), MK_OK);
    free(pem);
    modulus_of(pub, n_bytes);
    for (size_t i = 0; i < sizeof secret; i++)
        secret[i] = (uint8_t)(0xA0 + i);
    memset(seed, 0x3C, sizeof seed);
    memset(priv, 0x29, sizeof priv);
    /* One ephemeral key for every hello, kept for the derivations as a
     * client keeps its own until the SERVER_HELLO. */
    assert_int_equal(mkc_x25519_new(priv, &eph, share), MK_OK);

    /* The good case first, so that its SERVER_HELLO is the reference. */
    for (int pass = 0; pass < 2; pass++) {
        for (int c = 0; c < NCASES; c++) {
            uint8_t kem[256], root[32];
            size_t kem_len = 256, ch_len = 0;
            mk_session *srv = NULL;
            mk_event ev;
            mk_ch ch;
            mk_sh sh;
            int fin_ok = -1, r;

            if ((pass == 0) != (c == GOOD))
                continue;
            memset(root, 0, sizeof root);
            memcpy(root, secret, 32);
            switch (c) {
            case RANDOM:
                tu_pattern(kem, sizeof kem, 1234);
                break;
            case MODULUS:
                memcpy(kem, n_bytes, 256);
                break;
            case ONES:
                memset(kem, 0xFF, sizeof kem);
                break;
            case ZERO:
                memset(kem, 0, sizeof kem);
                break;
            case LEN0:
            case LEN31:
            case LEN33:
            case GOOD: {
                size_t ml = c == LEN0    ? 0
                            : c == LEN31 ? 31
                            : c == LEN33 ? 33
                                         : 32;
                assert_int_equal(
                    mkc_oaep_encrypt(pub, oaep_label, OAEP_LABEL_LEN, secret,
                                     ml, seed, kem, sizeof kem, &kem_len),
                    MK_OK);
                if (c == LEN31)
                    root[31] = 0; /* the attacker's best guess */
                break;
            }
            case LABEL:
                assert_int_equal(mkc_oaep_encrypt(pub,
                                                  (const uint8_t *)"megaki v1",
                                                  9, secret, 32, seed, kem,
                                                  sizeof kem, &kem_len),
                                 MK_OK);
                break;
            case NOLABEL:
            default:
                assert_int_equal(mkc_oaep_encrypt(pub, NULL, 0, secret, 32,
                                                  seed, kem, sizeof kem,
                                                  &kem_len),
                                 MK_OK);
                break;
            }
            assert_int_equal(kem_len, 256);

            memset(&ch, 0, sizeof ch);
            ch.mode = MK_MODE_FULL;
            memset(ch.random, c, sizeof ch.random);
            memcpy(ch.share, share, sizeof ch.share);
            ch.time_ms = env.now_ms;
            memcpy(ch.key_id, key_id, MK_KEY_ID_LEN);
            ch.kem = kem;
            ch.kem_len = kem_len;
            assert_int_equal(mk__ch_write(&ch, chbuf, sizeof chbuf, &ch_len),
                             MK_OK);

            assert_int_equal(mk_session_new_server(&srv, g_sc), MK_OK);
            r = mk_session_handle(srv, chbuf, ch_len, g_out, sizeof g_out, &ev);
            /* Same event, same length, same structure as the good one. */
            assert_int_equal(r, MK_OK);
            assert_int_equal(ev.type, MK_EV_ESTABLISHED);
            assert_int_equal(mk_session_state(srv), MK_STATE_ESTABLISHED);
            assert_int_equal(mk__sh_parse(g_out, ev.len, &sh), MK_OK);
            assert_int_equal(sh.mode, MK_MODE_FULL);
            assert_int_equal(sh.flags, 0);
            if (c == GOOD) {
                good_len = ev.len;
                memcpy(good_sh, g_out, ev.len);
            } else {
                assert_int_equal(ev.len, good_len);
                assert_memory_equal(g_out, good_sh, 4); /* header */
                assert_memory_equal(g_out + 4, good_sh + 4, 6);
                assert_memory_equal(g_out + SH_XLEN, good_sh + SH_XLEN, 2);
            }
            {
                uint8_t shcopy[1100];
                size_t shl = ev.len;
                memcpy(shcopy, g_out, shl);
                r = attacker_request(srv, chbuf, ch_len, shcopy, shl, eph, root,
                                     &fin_ok, &ev);
            }
            if (c == GOOD) {
                assert_true(fin_ok);
                assert_int_equal(r, MK_OK);
                assert_int_equal(ev.type, MK_EV_DATA);
                assert_int_equal(ev.len, 5);
            } else {
                assert_false(fin_ok);
                assert_int_equal(r, MK_ERR_BAD_RECORD_MAC);
                assert_int_equal(ev.type, MK_EV_NONE);
                assert_int_equal(ev.len, 0);
                assert_true(out_untouched());
                assert_int_equal(mk_session_error(srv), MK_ERR_BAD_RECORD_MAC);
            }
            print_message("OAEP %-18s -> SERVER_HELLO %zu bytes, first "
                          "record: %s\n",
                          names[c], good_len, mk_err_name(r));
            mk_session_free(srv);
        }
    }

    /* The ciphertext length is public: a wrong one may be refused at once,
     * with an alert, and that is the only early refusal. */
    {
        static const size_t lens[] = {1, 255, 257, 512};
        uint8_t kem[512];
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            mk_session *srv = NULL;
            size_t ch_len = 0;
            mk_event ev;
            mk_ch ch;
            memset(&ch, 0, sizeof ch);
            ch.mode = MK_MODE_FULL;
            memcpy(ch.share, share, sizeof ch.share);
            memcpy(ch.key_id, key_id, MK_KEY_ID_LEN);
            memset(kem, 0x11, sizeof kem);
            ch.kem = kem;
            ch.kem_len = lens[i];
            assert_int_equal(mk__ch_write(&ch, chbuf, sizeof chbuf, &ch_len),
                             MK_OK);
            assert_int_equal(mk_session_new_server(&srv, g_sc), MK_OK);
            assert_int_equal(
                mk_session_handle(srv, chbuf, ch_len, g_out, sizeof g_out, &ev),
                MK_ERR_BAD_MESSAGE);
            assert_int_equal(ev.type, MK_EV_SEND);
            assert_int_equal(g_out[0], MK_UNIT_ALERT);
            mk_session_free(srv);
        }
    }
    mkc_x25519_free(eph);
    mkc_rsa_free(pub);
}

/* ---------------------------------------------------------------------- */
/* 8. X25519 small-order shares                                            */

/* Points whose X25519 output is all zeros for every scalar: the u
 * coordinates of small order (RFC 7748 §6.1; 0, 1, the two points of order
 * 8, p-1), and the non-canonical encodings p, p+1 of 0 and 1. */
static const uint8_t small_order[][32] = {
    {0},
    {1},
    {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
     0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
     0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
    {0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1,
     0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c,
     0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
};

/* Server side: a full hello carrying a small-order share is refused with
 * MK_ERR_BAD_KEY_SHARE and a handshake-failed alert. Client side: a
 * SERVER_HELLO carrying one is refused before anything else. */
static void test_small_order_share(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof small_order / sizeof small_order[0]; i++) {
        tu_pair p;
        mk_ch ch;
        mk_event ev;
        mk_alert_msg a;
        uint8_t buf[MK_UNIT_MAX];
        size_t n = 0;
        int r;

        /* Server: the client's real hello with its share replaced. */
        pair_new(&p, g_sc, g_cc, NULL, 0);
        pair_hello(&p);
        assert_int_equal(mk__ch_parse(p.c2s.p, p.c2s.len, &ch), MK_OK);
        memcpy(ch.share, small_order[i], 32);
        assert_int_equal(mk__ch_write(&ch, buf, sizeof buf, &n), MK_OK);
        r = mk_session_handle(p.srv.s, buf, n, g_out, sizeof g_out, &ev);
        assert_int_equal(r, MK_ERR_BAD_KEY_SHARE);
        assert_int_equal(ev.type, MK_EV_SEND);
        assert_int_equal(mk__alert_parse(g_out, ev.len, &a), MK_OK);
        assert_int_equal(a.code, MK_ALERT_HANDSHAKE_FAILED);
        tu_pair_free(&p);

        /* Client: a real SERVER_HELLO with its share replaced. */
        pair_new(&p, g_sc, g_cc, g_blob, g_blob_len);
        pair_hello(&p);
        tu_feed(&p, &p.srv, &p.c2s, &p.s2c);
        assert_true(p.srv.established);
        memcpy(p.s2c.p + 42, small_order[i], 32);
        r = deliver(p.c.s, p.s2c.p, p.s2c.len, &ev);
        assert_int_equal(r, MK_ERR_BAD_KEY_SHARE);
        assert_int_equal(mk_session_error(p.c.s), MK_ERR_BAD_KEY_SHARE);
        tu_pair_free(&p);
    }
}

/* ---------------------------------------------------------------------- */
/* 9. Limits                                                               */

/* A client that ignores the announced maximum message size: the server
 * answers the request with a TOO_LARGE error record and ends the session.
 * In one record and spread over two. Exactly the maximum is fine. */
static void test_message_too_large(void **st)
{
    enum { MAX = 1000 };
    mk_server_config *sc = server_cfg(&env.env, "server2048.pem", NULL, 0);
    uint8_t big[MAX + 1];
    tu_pair p;
    tu_msg *m;
    (void)st;

    assert_int_equal(mk_server_config_set_limits(sc, MAX, 4, 3600), MK_OK);
    memset(big, 'x', sizeof big);
    for (int split = 0; split < 3; split++) {
        pair_new(&p, sc, g_cc, NULL, 0);
        assert_int_equal(tu_connect(&p), 0);
        /* An honest client refuses locally. */
        assert_int_equal(tu_send(&p, &p.c, 1, big, MAX + 1),
                         MK_ERR_MESSAGE_TOO_LARGE);
        assert_int_equal(mk_session_state(p.c.s), MK_STATE_ESTABLISHED);
        /* Exactly the maximum passes. */
        assert_int_equal(tu_send(&p, &p.c, 1, big, MAX), MK_OK);
        assert_int_equal(tu_pump(&p), 0);
        assert_true(tu_find_msg(&p.srv, 1)->complete);
        /* A dishonest one. */
        p.c.s->max_message = 1u << 20;
        if (split == 0) {
            assert_int_equal(tu_send(&p, &p.c, 2, big, MAX + 1), MK_OK);
        } else {
            uint8_t rec[2 * MAX];
            size_t n = 0, half = split == 1 ? 600 : MAX;
            assert_int_equal(
                mk_seal_record(p.c.s, 2, 0, big, half, rec, sizeof rec, &n),
                MK_OK);
            tu_buf_put(&p.c2s, rec, n);
            assert_int_equal(mk_seal_record(p.c.s, 2, 1, big, MAX + 1 - half,
                                            rec, sizeof rec, &n),
                             MK_OK);
            tu_buf_put(&p.c2s, rec, n);
        }
        assert_int_equal(tu_pump(&p), MK_ERR_MESSAGE_TOO_LARGE);
        assert_int_equal(p.srv.err, MK_ERR_MESSAGE_TOO_LARGE);
        m = tu_find_msg(&p.c, 2);
        assert_non_null(m);
        assert_true(m->error);
        assert_int_equal(m->ecode, MK_ECODE_TOO_LARGE);
        m = tu_find_msg(&p.srv, 2);
        assert_true(m == NULL || !m->complete);
        tu_pair_free(&p);
    }
    mk_server_config_unref(sc);
}

/* A server that sends a response larger than the maximum it announced
 * (the daemon answers such a response from its application with an
 * `application` error instead): the client fails the connection, not just
 * the request (§5.4). Exactly the maximum passes. In one record and
 * spread over two. */
static void test_response_too_large(void **st)
{
    enum { MAX = 1000 };
    mk_server_config *sc = server_cfg(&env.env, "server2048.pem", NULL, 0);
    uint8_t big[MAX + 1], rec[2 * MAX];
    tu_pair p;
    (void)st;

    assert_int_equal(mk_server_config_set_limits(sc, MAX, 4, 3600), MK_OK);
    memset(big, 'y', sizeof big);
    for (int split = 0; split < 2; split++) {
        size_t n = 0;
        pair_new(&p, sc, g_cc, NULL, 0);
        assert_int_equal(tu_connect(&p), 0);
        assert_int_equal(tu_send(&p, &p.c, 1, (const uint8_t *)"a", 1), MK_OK);
        assert_int_equal(tu_send(&p, &p.c, 2, (const uint8_t *)"b", 1), MK_OK);
        assert_int_equal(tu_pump(&p), 0);
        /* An honest server cannot seal it. */
        assert_int_equal(tu_send(&p, &p.srv, 1, big, MAX + 1),
                         MK_ERR_MESSAGE_TOO_LARGE);
        assert_int_equal(tu_send(&p, &p.srv, 1, big, MAX), MK_OK);
        assert_int_equal(tu_pump(&p), 0);
        assert_true(tu_find_msg(&p.c, 1)->complete);
        /* A dishonest one. */
        p.srv.s->max_message = 1u << 20;
        if (split == 0) {
            assert_int_equal(tu_send(&p, &p.srv, 2, big, MAX + 1), MK_OK);
        } else {
            assert_int_equal(
                mk_seal_record(p.srv.s, 2, 0, big, 600, rec, sizeof rec, &n),
                MK_OK);
            tu_buf_put(&p.s2c, rec, n);
            assert_int_equal(mk_seal_record(p.srv.s, 2, 1, big, MAX + 1 - 600,
                                            rec, sizeof rec, &n),
                             MK_OK);
            tu_buf_put(&p.s2c, rec, n);
        }
        assert_int_equal(tu_pump(&p), MK_ERR_MESSAGE_TOO_LARGE);
        assert_int_equal(p.c.err, MK_ERR_MESSAGE_TOO_LARGE);
        assert_int_equal(mk_session_state(p.c.s), MK_STATE_FAILED);
        assert_false(tu_find_msg(&p.c, 2) != NULL &&
                     tu_find_msg(&p.c, 2)->complete);
        tu_pair_free(&p);
    }
    mk_server_config_unref(sc);
}

/* Only the last record of a message may be empty (§5.4). An honest sender
 * cannot seal an empty non-final record; a receiver given one fails, in
 * either direction, without output. Short non-final records are fine. */
static void test_empty_nonfinal_record(void **st)
{
    uint8_t rec[256];
    size_t n = 0;
    tu_pair p;
    tu_msg *m;
    (void)st;

    pair_resumed(&p);
    assert_int_equal(mk_seal_record(p.c.s, 1, 0, NULL, 0, rec, sizeof rec, &n),
                     MK_ERR_USAGE);
    assert_int_equal(mk_session_state(p.c.s), MK_STATE_ESTABLISHED);
    /* One byte, then an empty final record: a 1-byte request. */
    assert_int_equal(mk_seal_record(p.c.s, 1, 0, (const uint8_t *)"x", 1, rec,
                                    sizeof rec, &n),
                     MK_OK);
    tu_buf_put(&p.c2s, rec, n);
    assert_int_equal(mk_seal_record(p.c.s, 1, 1, NULL, 0, rec, sizeof rec, &n),
                     MK_OK);
    tu_buf_put(&p.c2s, rec, n);
    assert_int_equal(tu_pump(&p), 0);
    m = tu_find_msg(&p.srv, 1);
    assert_true(m != NULL && m->complete && m->data.len == 1);
    /* Client to server: request 2 opened by an empty non-final record. */
    assert_int_equal(mk__record_seal(p.c.s, MK_UNIT_DATA, 0, 2, NULL, 0, rec,
                                     sizeof rec, &n),
                     MK_OK);
    expect_refused(p.srv.s, rec, n, MK_ERR_BAD_MESSAGE);
    tu_pair_free(&p);

    /* Server to client: the response to request 1 starts empty. */
    pair_resumed(&p);
    assert_int_equal(tu_send(&p, &p.c, 1, (const uint8_t *)"q", 1), MK_OK);
    assert_int_equal(tu_pump(&p), 0);
    assert_int_equal(mk__record_seal(p.srv.s, MK_UNIT_DATA, 0, 1, NULL, 0, rec,
                                     sizeof rec, &n),
                     MK_OK);
    expect_refused(p.c.s, rec, n, MK_ERR_BAD_MESSAGE);
    tu_pair_free(&p);
}

/* The text of an ERROR record is UTF-8 (§5.5). The server's library sends
 * a text up to its first malformed byte; a client that receives malformed
 * text anyway fails the connection, with no text handed out. */
static void test_error_text_utf8(void **st)
{
    static const char mixed[] = "caf\xC3\xA9 \xF0\x9F\x98\x80 \xC0\xAF rest";
    static const uint8_t bad[] = {
        0x00, MK_ECODE_APPLICATION, 'o', 'k', 0xED, 0xA0,
        0x80}; /* a surrogate */
    uint8_t rec[256];
    size_t n = 0;
    mk_event ev;
    tu_pair p;
    (void)st;

    pair_resumed(&p);
    assert_int_equal(tu_send(&p, &p.c, 1, (const uint8_t *)"q", 1), MK_OK);
    assert_int_equal(tu_send(&p, &p.c, 2, (const uint8_t *)"q", 1), MK_OK);
    assert_int_equal(tu_pump(&p), 0);
    assert_int_equal(mk_seal_error(p.srv.s, 1, MK_ECODE_APPLICATION, mixed,
                                   sizeof mixed - 1, rec, sizeof rec, &n),
                     MK_OK);
    assert_int_equal(deliver(p.c.s, rec, n, &ev), MK_OK);
    assert_int_equal(ev.type, MK_EV_ERROR);
    assert_int_equal(ev.len, 11); /* "café 😀 ": cut at the overlong C0 AF */
    assert_memory_equal(g_out, mixed, 11);
    /* An error record sealed around malformed text. */
    assert_int_equal(mk__record_seal(p.srv.s, MK_UNIT_ERROR, MK_FLAG_FINAL, 2,
                                     bad, sizeof bad, rec, sizeof rec, &n),
                     MK_OK);
    memset(g_out, CANARY, sizeof g_out);
    assert_int_equal(deliver(p.c.s, rec, n, &ev), MK_ERR_BAD_MESSAGE);
    assert_int_equal(ev.type, MK_EV_NONE);
    assert_int_equal(ev.len, 0);
    assert_int_equal(mk_session_error(p.c.s), MK_ERR_BAD_MESSAGE);
    /* The decrypted plaintext was wiped, not left for the caller. */
    for (size_t i = 0; i < sizeof bad; i++)
        assert_int_equal(g_out[i], 0);
    tu_pair_free(&p);
}

/* A client that ignores the announced maximum of requests in flight: the
 * server refuses the one too many with an OVERLOADED connection error. */
static void test_too_many_inflight(void **st)
{
    mk_server_config *sc = server_cfg(&env.env, "server2048.pem", NULL, 0);
    tu_pair p;
    tu_msg *m;
    uint8_t rec[128];
    size_t n = 0;
    (void)st;

    assert_int_equal(mk_server_config_set_limits(sc, 1u << 20, 2, 3600), MK_OK);
    pair_new(&p, sc, g_cc, NULL, 0);
    assert_int_equal(tu_connect(&p), 0);
    assert_int_equal(tu_send(&p, &p.c, 1, (const uint8_t *)"a", 1), MK_OK);
    assert_int_equal(tu_send(&p, &p.c, 2, (const uint8_t *)"b", 1), MK_OK);
    /* An honest client refuses a third locally. */
    assert_int_equal(mk_seal_record(p.c.s, 3, 1, (const uint8_t *)"c", 1, rec,
                                    sizeof rec, &n),
                     MK_ERR_LIMIT);
    assert_int_equal(tu_pump(&p), 0);
    assert_int_equal(tu_send(&p, &p.srv, 1, (const uint8_t *)"A", 1), MK_OK);
    assert_int_equal(tu_send(&p, &p.srv, 2, (const uint8_t *)"B", 1), MK_OK);
    assert_int_equal(tu_pump(&p), 0);
    assert_true(tu_find_msg(&p.c, 2)->complete);
    /* A dishonest one, with a bigger table, sends three at once. */
    free(p.c.s->reqs);
    p.c.s->reqs = calloc(8, sizeof *p.c.s->reqs);
    assert_non_null(p.c.s->reqs);
    p.c.s->max_inflight = 8;
    p.c.s->nreqs = 0;
    assert_int_equal(tu_send(&p, &p.c, 11, (const uint8_t *)"a", 1), MK_OK);
    assert_int_equal(tu_send(&p, &p.c, 12, (const uint8_t *)"b", 1), MK_OK);
    assert_int_equal(tu_send(&p, &p.c, 13, (const uint8_t *)"c", 1), MK_OK);
    assert_int_equal(tu_pump(&p), MK_ERR_TOO_MANY_INFLIGHT);
    assert_true(tu_find_msg(&p.srv, 11)->complete);
    assert_true(tu_find_msg(&p.srv, 12)->complete);
    assert_null(tu_find_msg(&p.srv, 13));
    m = tu_find_msg(&p.c, 0);
    assert_non_null(m);
    assert_true(m->error);
    assert_int_equal(m->ecode, MK_ECODE_OVERLOADED);
    assert_int_equal(mk_session_error(p.c.s), MK_ERR_PEER_ERROR);
    tu_pair_free(&p);
    mk_server_config_unref(sc);
}

/* The 64-bit sequence numbers never wrap: the last one is usable, then
 * the sender refuses to seal and the session is over (no reuse of a
 * sequence number under the same keys). A receiver at the end refuses
 * whatever comes. */
static void test_sequence_exhaustion(void **st)
{
    uint8_t rec[128];
    size_t n = 0;
    tu_pair p;
    tu_msg *m;
    (void)st;

    pair_resumed(&p);
    p.c.s->out.seq = UINT64_MAX - 1;
    p.srv.s->in.seq = UINT64_MAX - 1;
    assert_int_equal(tu_send(&p, &p.c, 1, (const uint8_t *)"last", 4), MK_OK);
    assert_int_equal(tu_pump(&p), 0);
    m = tu_find_msg(&p.srv, 1);
    assert_true(m != NULL && m->complete);
    assert_int_equal(
        mk_seal_message(p.c.s, 2, (const uint8_t *)"x", 1, rec, sizeof rec, &n),
        MK_ERR_SEQ_EXHAUSTED);
    assert_int_equal(n, 0);
    assert_int_equal(mk_session_error(p.c.s), MK_ERR_SEQ_EXHAUSTED);
    assert_int_equal(mk_seal_close(p.c.s, rec, sizeof rec, &n),
                     MK_ERR_SEQ_EXHAUSTED);
    tu_pair_free(&p);

    /* Receiver side. */
    pair_resumed(&p);
    assert_int_equal(
        mk_seal_message(p.c.s, 1, (const uint8_t *)"x", 1, rec, sizeof rec, &n),
        MK_OK);
    p.srv.s->in.seq = UINT64_MAX;
    tu_buf_put(&p.c2s, rec, n);
    tu_feed(&p, &p.srv, &p.c2s, &p.s2c);
    assert_int_equal(p.srv.err, MK_ERR_SEQ_EXHAUSTED);
    assert_int_equal(p.srv.nmsgs, 0);
    tu_pair_free(&p);
}

/* ---------------------------------------------------------------------- */
/* 10. Units out of state                                                  */

/* One well-formed unit of each type, taken from real sessions. */
typedef struct units {
    tu_buf ch, sh, hr, alert, data, error, close;
} units;

static void units_capture(units *u)
{
    mk_client_config *cc2 =
        client_cfg(&env.env, "other2048.pub.pem", "server2048.pub.pem");
    uint8_t rec[256];
    size_t n = 0;
    tu_pair p;

    memset(u, 0, sizeof *u);
    pair_new(&p, g_sc, g_cc, g_blob, g_blob_len);
    capture(&p, &u->ch, &u->sh);
    tu_pair_free(&p);
    pair_new(&p, g_sc, cc2, NULL, 0);
    {
        tu_buf ch = {0};
        capture(&p, &ch, &u->hr);
        tu_buf_free(&ch);
    }
    tu_pair_free(&p);
    assert_int_equal(
        mk_write_alert(MK_ALERT_BAD_MESSAGE, 0, rec, sizeof rec, &n), MK_OK);
    tu_buf_put(&u->alert, rec, n);
    pair_resumed(&p);
    assert_int_equal(tu_send(&p, &p.c, 1, (const uint8_t *)"q", 1), MK_OK);
    tu_buf_put(&u->data, p.c2s.p, p.c2s.len);
    assert_int_equal(tu_pump(&p), 0);
    assert_int_equal(mk_seal_error(p.srv.s, 1, MK_ECODE_APPLICATION, "e", 1,
                                   rec, sizeof rec, &n),
                     MK_OK);
    tu_buf_put(&u->error, rec, n);
    assert_int_equal(mk_seal_close(p.srv.s, rec, sizeof rec, &n), MK_OK);
    tu_buf_put(&u->close, rec, n);
    tu_pair_free(&p);
    mk_client_config_unref(cc2);
}

static void units_free(units *u)
{
    tu_buf_free(&u->ch);
    tu_buf_free(&u->sh);
    tu_buf_free(&u->hr);
    tu_buf_free(&u->alert);
    tu_buf_free(&u->data);
    tu_buf_free(&u->error);
    tu_buf_free(&u->close);
}

/* Hand unit to s and expect MK_ERR_UNEXPECTED_MSG, sticky afterwards. */
static void expect_unexpected(mk_session *s, const tu_buf *unit)
{
    mk_event ev;
    assert_int_equal(
        mk_session_handle(s, unit->p, unit->len, g_out, sizeof g_out, &ev),
        MK_ERR_UNEXPECTED_MSG);
    assert_int_equal(mk_session_state(s), MK_STATE_FAILED);
    assert_int_equal(mk_session_error(s), MK_ERR_UNEXPECTED_MSG);
    /* A failed session keeps its first error whatever comes next. */
    assert_int_equal(
        mk_session_handle(s, unit->p, unit->len, g_out, sizeof g_out, &ev),
        MK_ERR_UNEXPECTED_MSG);
    assert_int_equal(ev.type, MK_EV_NONE);
}

enum {
    S_SERVER_NEW,
    S_CLIENT_NEW,
    S_CLIENT_WAIT,
    S_SERVER_EST,
    S_CLIENT_EST,
    NSTATES
};

static mk_session *session_in(int state, tu_pair *p)
{
    mk_session *s = NULL;
    memset(p, 0, sizeof *p);
    switch (state) {
    case S_SERVER_NEW:
        assert_int_equal(mk_session_new_server(&s, g_sc), MK_OK);
        tu_pair_init(p, NULL, s);
        return s;
    case S_CLIENT_NEW:
        assert_int_equal(mk_session_new_client(&s, g_cc, NULL, 0), MK_OK);
        tu_pair_init(p, s, NULL);
        return s;
    case S_CLIENT_WAIT:
        pair_new(p, g_sc, g_cc, g_blob, g_blob_len);
        pair_hello(p);
        return p->c.s;
    case S_SERVER_EST:
        pair_resumed(p);
        return p->srv.s;
    default:
        pair_resumed(p);
        return p->c.s;
    }
}

static void test_out_of_state(void **st)
{
    units u;
    /* Which unit types each state refuses; 1 = refuse. Columns: CH, SH,
     * HR, ALERT, DATA, ERROR, CLOSE. */
    static const int refuse[NSTATES][7] = {
        /* server awaiting hello */ {0, 1, 1, 1, 1, 1, 1},
        /* client before hello   */ {1, 1, 1, 1, 1, 1, 1},
        /* client awaiting reply */ {1, 0, 0, 0, 1, 1, 1},
        /* server established    */ {1, 1, 1, 1, 0, 1, 0},
        /* client established    */ {1, 1, 1, 1, 0, 0, 0},
    };
    size_t checked = 0;
    (void)st;

    units_capture(&u);
    for (int state = 0; state < NSTATES; state++) {
        const tu_buf *list[7] = {&u.ch,   &u.sh,    &u.hr,   &u.alert,
                                 &u.data, &u.error, &u.close};
        for (int t = 0; t < 7; t++) {
            tu_pair p;
            mk_session *s;
            mk_event ev;
            if (!refuse[state][t])
                continue;
            s = session_in(state, &p);
            if (state == S_SERVER_NEW) {
                /* The server still in its handshake says so in an alert. */
                assert_int_equal(mk_session_handle(s, list[t]->p, list[t]->len,
                                                   g_out, sizeof g_out, &ev),
                                 MK_ERR_UNEXPECTED_MSG);
                assert_int_equal(ev.type, MK_EV_SEND);
                assert_int_equal(g_out[0], MK_UNIT_ALERT);
                assert_int_equal(mk_session_error(s), MK_ERR_UNEXPECTED_MSG);
            } else {
                expect_unexpected(s, list[t]);
            }
            checked++;
            tu_pair_free(&p);
        }
    }
    print_message("out of state: %zu (state, unit) pairs refused\n", checked);

    /* After a CLOSE has arrived, nothing more may. */
    {
        tu_pair p;
        uint8_t rec[128];
        size_t n = 0;
        mk_event ev;
        pair_resumed(&p);
        assert_int_equal(tu_send(&p, &p.c, 1, (const uint8_t *)"q", 1), MK_OK);
        assert_int_equal(tu_pump(&p), 0);
        assert_int_equal(mk_seal_close(p.srv.s, rec, sizeof rec, &n), MK_OK);
        assert_int_equal(
            mk_session_handle(p.c.s, rec, n, g_out, sizeof g_out, &ev), MK_OK);
        assert_int_equal(ev.type, MK_EV_CLOSE);
        /* The server cannot seal after its close; a record that was sealed
         * before it but arrives after is refused. */
        assert_int_equal(mk_seal_message(p.srv.s, 1, (const uint8_t *)"a", 1,
                                         rec, sizeof rec, &n),
                         MK_ERR_STATE);
        assert_int_equal(mk_session_handle(p.c.s, u.data.p, u.data.len, g_out,
                                           sizeof g_out, &ev),
                         MK_ERR_UNEXPECTED_MSG);
        tu_pair_free(&p);
    }

    /* mk_client_hello() is a client's, once. */
    {
        tu_pair p;
        uint8_t out[MK_HANDLE_OUT_LEN];
        size_t n = 0;
        mk_session *s = session_in(S_SERVER_NEW, &p);
        assert_int_equal(mk_client_hello(s, out, sizeof out, &n), MK_ERR_STATE);
        tu_pair_free(&p);
        s = session_in(S_CLIENT_WAIT, &p);
        assert_int_equal(mk_client_hello(s, out, sizeof out, &n), MK_ERR_STATE);
        tu_pair_free(&p);
    }
    units_free(&u);
}

/* A record that follows the peer's CLOSE is fatal (§5.6), even when it is
 * authentic and in sequence: a peer that misbehaves so is made to seal
 * one by clearing its own close flag. In both directions, nothing of it
 * reaches the caller. The side that sent CLOSE still receives what is
 * owed to it. */
static void test_records_after_close(void **st)
{
    uint8_t rec[256];
    size_t n = 0;
    mk_event ev;
    tu_pair p;
    tu_msg *m;
    (void)st;

    /* Client closes with request 1 in flight; the server still answers
     * it, then sends a record after its own close. */
    pair_resumed(&p);
    assert_int_equal(tu_send(&p, &p.c, 1, (const uint8_t *)"q", 1), MK_OK);
    assert_int_equal(mk_seal_close(p.c.s, rec, sizeof rec, &n), MK_OK);
    tu_buf_put(&p.c2s, rec, n);
    assert_int_equal(tu_pump(&p), 0);
    assert_true(p.srv.closed);
    assert_int_equal(tu_send(&p, &p.srv, 1, (const uint8_t *)"a", 1), MK_OK);
    assert_int_equal(tu_pump(&p), 0);
    m = tu_find_msg(&p.c, 1);
    assert_true(m != NULL && m->complete);
    assert_int_equal(mk_seal_close(p.srv.s, rec, sizeof rec, &n), MK_OK);
    assert_int_equal(deliver(p.c.s, rec, n, &ev), MK_OK);
    assert_int_equal(ev.type, MK_EV_CLOSE);
    assert_int_equal(mk_session_state(p.c.s), MK_STATE_CLOSED);
    tu_pair_free(&p);

    /* Server to client: DATA after the server's CLOSE. */
    pair_resumed(&p);
    assert_int_equal(tu_send(&p, &p.c, 1, (const uint8_t *)"q", 1), MK_OK);
    assert_int_equal(tu_pump(&p), 0);
    assert_int_equal(mk_seal_close(p.srv.s, rec, sizeof rec, &n), MK_OK);
    assert_int_equal(deliver(p.c.s, rec, n, &ev), MK_OK);
    assert_int_equal(ev.type, MK_EV_CLOSE);
    p.srv.s->close_sent = 0;
    assert_int_equal(mk_seal_message(p.srv.s, 1, (const uint8_t *)"late", 4,
                                     rec, sizeof rec, &n),
                     MK_OK);
    expect_refused(p.c.s, rec, n, MK_ERR_UNEXPECTED_MSG);
    tu_pair_free(&p);

    /* Client to server: a request after the client's CLOSE. */
    pair_resumed(&p);
    assert_int_equal(mk_seal_close(p.c.s, rec, sizeof rec, &n), MK_OK);
    assert_int_equal(deliver(p.srv.s, rec, n, &ev), MK_OK);
    assert_int_equal(ev.type, MK_EV_CLOSE);
    p.c.s->close_sent = 0;
    assert_int_equal(mk_seal_message(p.c.s, 7, (const uint8_t *)"late", 4, rec,
                                     sizeof rec, &n),
                     MK_OK);
    expect_refused(p.srv.s, rec, n, MK_ERR_UNEXPECTED_MSG);
    tu_pair_free(&p);
}

/* A second HELLO_RETRY on one connection is refused by the client; a
 * server that already sent one refuses an unknown key again, and a
 * resumption attempt. A retry for the wrong reason is refused too. */
static void test_second_retry(void **st)
{
    mk_client_config *cc2 =
        client_cfg(&env.env, "other2048.pub.pem", "server2048.pub.pem");
    mk_client_config *cc_other =
        client_cfg(&env.env, "other2048.pub.pem", NULL);
    tu_buf ch = {0}, hr = {0};
    mk_event ev;
    tu_pair p;
    (void)st;

    /* Client: the first retry is followed, a replayed one is refused. */
    pair_new(&p, g_sc, cc2, NULL, 0);
    capture(&p, &ch, &hr);
    tu_feed(&p, &p.c, &p.s2c, &p.c2s);
    assert_int_equal(p.c.err, 0);
    assert_true(p.c2s.len > 0); /* the second hello */
    assert_int_equal(
        mk_session_handle(p.c.s, hr.p, hr.len, g_out, sizeof g_out, &ev),
        MK_ERR_SECOND_RETRY);
    assert_int_equal(mk_session_error(p.c.s), MK_ERR_SECOND_RETRY);
    tu_pair_free(&p);
    tu_buf_free(&ch);

    /* Client: a key-id retry after a resumption attempt is the wrong
     * reason. */
    pair_new(&p, g_sc, g_cc, g_blob, g_blob_len);
    pair_hello(&p);
    assert_int_equal(
        mk_session_handle(p.c.s, hr.p, hr.len, g_out, sizeof g_out, &ev),
        MK_ERR_BAD_MESSAGE);
    tu_pair_free(&p);

    /* Client: so is a ticket retry (reason 1) in answer to a full hello:
     * fatal, and no second hello goes out (§4.3). */
    {
        mk_ticket_key tk;
        mk_server_config *sc_tk;
        tu_buf ch1 = {0}, hr1 = {0};
        ticket_key(&tk, "not-the-fixture!", 0x77);
        sc_tk = server_cfg(&env.env, "server2048.pem", &tk, 1);
        pair_new(&p, sc_tk, g_cc, g_blob, g_blob_len);
        capture(&p, &ch1, &hr1);
        assert_int_equal(hr1.p[0], MK_UNIT_HELLO_RETRY);
        assert_int_equal(hr1.p[8], MK_RETRY_TICKET);
        tu_pair_free(&p);
        pair_new(&p, g_sc, g_cc, NULL, 0);
        pair_hello(&p);
        assert_int_equal(
            mk_session_handle(p.c.s, hr1.p, hr1.len, g_out, sizeof g_out, &ev),
            MK_ERR_BAD_MESSAGE);
        assert_int_equal(ev.type, MK_EV_NONE);
        assert_int_equal(mk_session_state(p.c.s), MK_STATE_FAILED);
        tu_pair_free(&p);
        tu_buf_free(&ch1);
        tu_buf_free(&hr1);
        mk_server_config_unref(sc_tk);
    }

    /* Server: a retry went out, and the next hello names an unknown key
     * again: handshake-failed alert, MK_ERR_PIN. */
    {
        mk_session *c2 = NULL;
        uint8_t out[MK_HANDLE_OUT_LEN];
        size_t n = 0;
        mk_alert_msg a;
        pair_new(&p, g_sc, cc_other, NULL, 0);
        pair_hello(&p);
        tu_feed(&p, &p.srv, &p.c2s, &p.s2c);
        assert_int_equal(p.srv.err, 0);
        assert_int_equal(p.s2c.p[0], MK_UNIT_HELLO_RETRY);
        assert_int_equal(mk_session_new_client(&c2, cc_other, NULL, 0), MK_OK);
        assert_int_equal(mk_client_hello(c2, out, sizeof out, &n), MK_OK);
        assert_int_equal(
            mk_session_handle(p.srv.s, out, n, g_out, sizeof g_out, &ev),
            MK_ERR_PIN);
        assert_int_equal(ev.type, MK_EV_SEND);
        assert_int_equal(mk__alert_parse(g_out, ev.len, &a), MK_OK);
        assert_int_equal(a.code, MK_ALERT_HANDSHAKE_FAILED);
        mk_session_free(c2);
        tu_pair_free(&p);

        /* ... or is a resumption: refused with the same alert as any
         * second hello the server will not serve (§4.3). */
        pair_new(&p, g_sc, cc_other, NULL, 0);
        pair_hello(&p);
        tu_feed(&p, &p.srv, &p.c2s, &p.s2c);
        assert_int_equal(mk_session_new_client(&c2, g_cc, g_blob, g_blob_len),
                         MK_OK);
        assert_int_equal(mk_client_hello(c2, out, sizeof out, &n), MK_OK);
        assert_int_equal(
            mk_session_handle(p.srv.s, out, n, g_out, sizeof g_out, &ev),
            MK_ERR_UNEXPECTED_MSG);
        assert_int_equal(ev.type, MK_EV_SEND);
        assert_int_equal(mk__alert_parse(g_out, ev.len, &a), MK_OK);
        assert_int_equal(a.code, MK_ALERT_HANDSHAKE_FAILED);
        mk_session_free(c2);
        tu_pair_free(&p);
    }
    tu_buf_free(&hr);
    mk_client_config_unref(cc2);
    mk_client_config_unref(cc_other);
}

/* ---------------------------------------------------------------------- */
/* 11. Randomness failure                                                  */

/* An environment that fails the n-th random draw (counting from 1). */
typedef struct fail_env {
    tu_env base;
    mk_env env;
    unsigned long calls, fail_at;
    int fired;
} fail_env;

static int fe_random(void *ctx, uint8_t *out, size_t len)
{
    fail_env *f = ctx;
    if (++f->calls == f->fail_at) {
        f->fired = 1;
        return -1;
    }
    return f->base.env.random(f->base.env.ctx, out, len);
}

static uint64_t fe_now(void *ctx)
{
    fail_env *f = ctx;
    return f->base.env.now_ms(f->base.env.ctx);
}

/* Handshake, one request and one response. Returns the first error. */
static int run_session(tu_pair *p)
{
    int r;
    if ((r = tu_connect(p)) != 0)
        return r;
    if (!p->c.established || !p->srv.established)
        return -1;
    if ((r = tu_send(p, &p->c, 1, (const uint8_t *)"req", 3)) != MK_OK)
        return r;
    if ((r = tu_pump(p)) != 0)
        return r;
    if ((r = tu_send(p, &p->srv, 1, (const uint8_t *)"resp", 4)) != MK_OK)
        return r;
    return tu_pump(p);
}

/* The random source fails at each draw of a full and of a resumed session
 * in turn. Each time, the operation that drew fails with MK_ERR_RANDOM,
 * that session is FAILED with it, and nothing leaks. */
static void test_random_failure(void **st)
{
    static fail_env fe;
    mk_ticket_key tk;
    mk_server_config *sc;
    mk_client_config *cc;
    uint8_t blob[MK_SESSION_BLOB_MAX];
    size_t blen = 0;
    (void)st;

    /* The simple case: the next draw fails. */
    {
        mk_session *c = NULL;
        uint8_t out[MK_HANDLE_OUT_LEN];
        size_t n = 0;
        assert_int_equal(mk_session_new_client(&c, g_cc, NULL, 0), MK_OK);
        env.fail_random = 1;
        assert_int_equal(mk_client_hello(c, out, sizeof out, &n),
                         MK_ERR_RANDOM);
        assert_int_equal(n, 0);
        assert_int_equal(mk_session_state(c), MK_STATE_FAILED);
        assert_int_equal(mk_session_error(c), MK_ERR_RANDOM);
        mk_session_free(c);
    }

    memset(&fe, 0, sizeof fe);
    tu_env_init(&fe.base, "attacks-random-failure");
    fe.env.random = fe_random;
    fe.env.now_ms = fe_now;
    fe.env.ctx = &fe;
    ticket_key(&tk, "random-fail-key!", 0x31);
    sc = server_cfg(&fe.env, "server2048.pem", &tk, 1);
    cc = client_cfg(&fe.env, "server2048.pub.pem", NULL);

    for (int resume = 0; resume < 2; resume++) {
        unsigned long clean;
        tu_pair p;

        /* Count the draws of a clean run. */
        fe.calls = 0;
        fe.fail_at = 0;
        pair_new(&p, sc, cc, resume ? blob : NULL, resume ? blen : 0);
        assert_int_equal(run_session(&p), 0);
        if (!resume)
            assert_int_equal(mk_session_export(p.c.s, blob, sizeof blob, &blen),
                             MK_OK);
        tu_pair_free(&p);
        clean = fe.calls;
        assert_true(clean >= 6);

        for (unsigned long k = 1; k <= clean; k++) {
            int r, cs, ss;
            fe.calls = 0;
            fe.fail_at = k;
            fe.fired = 0;
            pair_new(&p, sc, cc, resume ? blob : NULL, resume ? blen : 0);
            r = run_session(&p);
            assert_true(fe.fired);
            assert_int_equal(r, MK_ERR_RANDOM);
            cs = mk_session_error(p.c.s);
            ss = mk_session_error(p.srv.s);
            /* Exactly one side drew and failed; the other never failed
             * with MK_ERR_RANDOM. */
            assert_true((cs == MK_ERR_RANDOM) != (ss == MK_ERR_RANDOM));
            tu_pair_free(&p);
        }
        print_message("random failure (%s): each of %lu draws failed in "
                      "turn\n",
                      resume ? "resumed" : "full", clean);
    }
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* ---------------------------------------------------------------------- */
/* 12. A failed session stays failed                                       */

/* megaki.h: "A session that has failed stays failed and keeps reporting
 * its first error". A client whose hello failed (here: the random source)
 * must not write a hello on a second try.
 * Regression (fixed in db11b1a): mk_client_hello() only checked hs !=
 * HS_CLIENT_START, which a failed first attempt leaves unchanged, so the
 * second call wrote a full CLIENT_HELLO from the FAILED session and
 * returned MK_OK. */
static void test_failed_hello_is_sticky(void **st)
{
    mk_session *c = NULL;
    uint8_t out[MK_HANDLE_OUT_LEN];
    size_t n = 0;
    int r, state, err;
    (void)st;

    assert_int_equal(mk_session_new_client(&c, g_cc, NULL, 0), MK_OK);
    env.fail_random = 1;
    assert_int_equal(mk_client_hello(c, out, sizeof out, &n), MK_ERR_RANDOM);
    assert_int_equal(mk_session_state(c), MK_STATE_FAILED);
    n = 0;
    r = mk_client_hello(c, out, sizeof out, &n);
    state = mk_session_state(c);
    err = mk_session_error(c);
    mk_session_free(c); /* before asserting: no leak on failure */
    assert_int_equal(r, MK_ERR_RANDOM);
    assert_int_equal(n, 0);
    assert_int_equal(state, MK_STATE_FAILED);
    assert_int_equal(err, MK_ERR_RANDOM);
}

/* A client session that failed after the handshake (here: a reflected
 * record, MK_ERR_BAD_RECORD_MAC) must not hand out a resumption blob.
 * Regression (fixed in db11b1a): mk__fail() wiped resumption_secret but
 * left ticket/ticket_len, and mk_session_export() only checked ticket_len,
 * so it returned MK_OK with a blob whose secret was all zeros (and
 * mk_session_get_info() said has_ticket = 1). Resuming with that blob was
 * a hard failure, not a fallback: the server's binder check failed
 * (MK_ERR_BAD_BINDER) and the client got MK_ERR_PEER_HS_FAILED. */
static void test_export_after_failure(void **st)
{
    uint8_t rec[128], blob[MK_SESSION_BLOB_MAX];
    size_t n = 0, blen = 0;
    mk_session_info ci;
    mk_event ev;
    tu_pair p;
    int r;
    (void)st;

    pair_resumed(&p);
    assert_int_equal(mk_seal_close(p.c.s, rec, sizeof rec, &n), MK_OK);
    assert_int_equal(mk_session_handle(p.c.s, rec, n, g_out, sizeof g_out, &ev),
                     MK_ERR_BAD_RECORD_MAC);
    assert_int_equal(mk_session_state(p.c.s), MK_STATE_FAILED);
    r = mk_session_export(p.c.s, blob, sizeof blob, &blen);
    mk_session_get_info(p.c.s, &ci);
    tu_pair_free(&p);
    if (r == MK_OK) {
        /* Show what the blob does to the next connection. */
        pair_new(&p, g_sc, g_cc, blob, blen);
        (void)tu_connect(&p);
        print_message("exported blob after failure: resumption gives "
                      "client %s, server %s\n",
                      mk_err_name(p.c.err), mk_err_name(p.srv.err));
        tu_pair_free(&p);
    }
    mk_wipe(blob, sizeof blob);
    assert_int_not_equal(r, MK_OK);
    assert_int_equal(blen, 0);
    assert_false(ci.has_ticket);
}

/* ---------------------------------------------------------------------- */

static int setup(void **st)
{
    const char *stride = getenv("MK_ATTACKS_STRIDE");
    tu_pair p;
    (void)st;

    if (stride != NULL)
        g_stride = strtoul(stride, NULL, 10) | 1;
#ifdef HAVE_VALGRIND_H
    else if (RUNNING_ON_VALGRIND)
        g_stride = 9;
#endif
    if (g_stride > 1)
        print_message("bit flips: every bit of the first 8 bytes, then "
                      "every %zuth bit\n",
                      g_stride);
    tu_env_init(&env, "test_attacks");
    tu_pattern(g_garbage, sizeof g_garbage, 4242);
    g_sc = tu_server_config(&env, "server2048.pem", 1);
    g_cc = tu_client_config(&env, "server2048.pub.pem");
    pair_new(&p, g_sc, g_cc, NULL, 0);
    if (tu_connect(&p) != 0 ||
        mk_session_export(p.c.s, g_blob, sizeof g_blob, &g_blob_len) != MK_OK)
        return -1;
    tu_pair_free(&p);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    mk_server_config_unref(g_sc);
    mk_client_config_unref(g_cc);
    mk_wipe(g_blob, sizeof g_blob);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flip_client_hello_full),
        cmocka_unit_test(test_flip_client_hello_resume),
        cmocka_unit_test(test_flip_server_hello_full),
        cmocka_unit_test(test_flip_server_hello_resume),
        cmocka_unit_test(test_flip_hello_retry_key_id),
        cmocka_unit_test(test_flip_hello_retry_ticket),
        cmocka_unit_test(test_flip_data_c2s),
        cmocka_unit_test(test_flip_data_s2c),
        cmocka_unit_test(test_flip_error_s2c),
        cmocka_unit_test(test_flip_close),
        cmocka_unit_test(test_replay_reorder_drop),
        cmocka_unit_test(test_reflection),
        cmocka_unit_test(test_cross_session),
        cmocka_unit_test(test_replay_conversation),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_pin_mismatch),
        cmocka_unit_test(test_mitm_other_key),
        cmocka_unit_test(test_mitm_unknown_key_share),
        cmocka_unit_test(test_ticket_forged),
        cmocka_unit_test(test_ticket_expired),
        cmocka_unit_test(test_ticket_unknown_key),
        cmocka_unit_test(test_session_max_age),
        cmocka_unit_test(test_ticket_server_key_removed),
        cmocka_unit_test(test_ticket_lifetime_shortened),
        cmocka_unit_test(test_ticket_old_format),
        cmocka_unit_test(test_ticket_length),
        cmocka_unit_test(test_session_blob_fields),
        cmocka_unit_test(test_client_time_ignored),
        cmocka_unit_test(test_length_boundaries),
        cmocka_unit_test(test_length_in_session),
        cmocka_unit_test(test_oaep_uniformity),
        cmocka_unit_test(test_small_order_share),
        cmocka_unit_test(test_message_too_large),
        cmocka_unit_test(test_response_too_large),
        cmocka_unit_test(test_empty_nonfinal_record),
        cmocka_unit_test(test_error_text_utf8),
        cmocka_unit_test(test_too_many_inflight),
        cmocka_unit_test(test_sequence_exhaustion),
        cmocka_unit_test(test_out_of_state),
        cmocka_unit_test(test_records_after_close),
        cmocka_unit_test(test_second_retry),
        cmocka_unit_test(test_random_failure),
        cmocka_unit_test(test_failed_hello_is_sticky),
        cmocka_unit_test(test_export_after_failure),
    };
    return cmocka_run_group_tests_name("attacks", tests, setup, teardown);
}
